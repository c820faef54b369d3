/*
 * server.h - the HTTP payment service behind `facepay serve` (libmicrohttpd + jansson): what the
 * CLI, the demo, the tests and the HTTP bench need to start one in-process and to reach the
 * objects it owns. The routes themselves are documented in api/openapi.yaml.
 *
 * One fp_server owns: the store (opened with the template key), the fp_pay handle on it, the face
 * engine (models loaded once) with a pool of `workers` fp_sessions, the in-memory gallery loaded
 * from the store at start, the calibration, the challenge sessions, the idempotency cache and the
 * set of frame hashes already used for payments. Requests run on libmicrohttpd's internal thread
 * pool (epoll); face work borrows a session from the pool.
 */
#ifndef FP_SERVER_SERVER_H
#define FP_SERVER_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "facepay.h"

typedef struct fp_server fp_server;

typedef struct fp_server_options {
    const char *db_path;        /* required: the SQLite store (created if missing) */
    const char *key_file;       /* template key file; NULL: $FACEPAY_KEY */
    const fp_key *key;          /* or the key itself (wins over key_file; copied) */
    const char *calibration;    /* calibration JSON (required) */
    const char *web_dir;        /* static files served at / (NULL or missing folder: none) */
    const char *model_dir;      /* NULL: fp_model_dir() */
    const char *bind;           /* listen address, "0.0.0.0" (all) by default; "127.0.0.1" in tests */
    int port;                   /* 0: an ephemeral port (read it with fp_server_port) */
    int workers;                /* face-analysis workers = fp_sessions (default 2) */
    int http_threads;           /* libmicrohttpd pool size; 0: workers + 2, so health checks and
                                   light requests are answered while every worker is busy */
    size_t max_body;            /* request body limit in bytes (16 MB) -> 413 */
    int max_frames;             /* frames per payment / enrollment request (200) -> 413 */
    int max_pixels;             /* decoded pixels per frame (8 MP); larger JPEGs are scaled down in
                                   the DCT domain to max_side, others refused */
    int max_side;               /* longest side frames are decoded to (1280) */
    int session_ttl_s;          /* a challenge session expires after this (60) */
    int connection_timeout_s;   /* idle connection timeout (30) */
    int request_timeout_s;      /* a request body must arrive within this (60) -> 408 */
    int worker_wait_ms;         /* waiting for a free analysis worker (20000) -> 503 */
    int identify_frames;        /* frames handed to the identifier per payment (8) */
    int enroll_video_max_frames;/* frames read from an uploaded enrollment video (900) */
    /* Test-only: lets POST /v1/sessions ask for a chosen challenge ("none" = no active liveness, or
     * a code like "blink:2,left"). Anyone holding a merchant key could then pay with still photos:
     * production never sets it (`facepay serve --insecure-test-challenges` prints a warning). */
    int insecure_test_challenges;
    int quiet;                  /* no access log on stderr */
    fp_pay_options pay;         /* policy, rate limit, PIN cost, clock (defaults: fp_pay_options_default) */
} fp_server_options;

fp_server_options fp_server_options_default(void);

/* Opens the store, loads the models, the gallery and the calibration, and starts listening.
 * Errors are fp_status with fp_last_error() naming the cause ("port 8080: Address in use", ...). */
fp_status fp_server_start(const fp_server_options *opts, fp_server **out);

/* Stops listening, waits for the requests in progress, frees everything. NULL-safe. */
void fp_server_stop(fp_server *s);

/* The port it listens on (the ephemeral one when options.port was 0). */
int fp_server_port(const fp_server *s);

/* The objects it owns, for in-process set-up (merchants, terminals, keys) by the demo, the tests
 * and the bench. Valid until fp_server_stop; thread-safe like the objects themselves. */
fp_store *fp_server_store(fp_server *s);
fp_pay *fp_server_pay(fp_server *s);
fp_gallery *fp_server_gallery(fp_server *s);

/* Creates a challenge session for a merchant with a challenge chosen by the caller (in-process
 * only: the demo replays a recorded video whose challenge is known). c NULL: no active liveness.
 * id receives the session id (at least 40 bytes). */
fp_status fp_server_session_new(fp_server *s, const char *merchant_id, const fp_challenge *c, char *id,
                                size_t id_cap);

#endif /* FP_SERVER_SERVER_H */
