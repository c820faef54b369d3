/*
 * internal.h - what the files of src/server/ share: the server struct, the request and response
 * types the route handlers work with, the in-memory maps (challenge sessions, idempotency records,
 * frame hashes), the worker pool, the body parsers and the metrics. Nothing here is public API.
 */
#ifndef FP_SERVER_INTERNAL_H
#define FP_SERVER_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

#include "facepay.h"
#include "server/server.h"

/* ------------------------------------------------------------------------------------------ */
/* Maps: string key -> value, insertion-ordered so the oldest entry is evicted first            */
/* ------------------------------------------------------------------------------------------ */
/* Every map here has one TTL for all its entries, so insertion order is expiry order and expiring
 * is popping from the head. Callers lock `lock` around compound operations. */
typedef struct srv_entry {
    char *key;
    int64_t expires_ms;
    void *val;
    struct srv_entry *hnext;       /* hash chain */
    struct srv_entry *prev, *next; /* insertion order */
} srv_entry;

typedef struct srv_map {
    pthread_mutex_t lock;
    srv_entry **buckets;
    size_t n_buckets, n, cap;
    srv_entry *head, *tail;
    void (*free_val)(void *);
} srv_map;

int srv_map_init(srv_map *m, size_t n_buckets, size_t cap, void (*free_val)(void *));
void srv_map_destroy(srv_map *m);
/* The following expect m->lock held. */
srv_entry *srv_map_get(srv_map *m, const char *key);
/* Inserts (key must be absent); evicts the oldest entry when full. NULL when out of memory. */
srv_entry *srv_map_put(srv_map *m, const char *key, void *val, int64_t expires_ms);
void srv_map_remove(srv_map *m, srv_entry *e);
/* Drops entries whose expires_ms <= now (from the head). */
void srv_map_expire(srv_map *m, int64_t now_ms);

/* ------------------------------------------------------------------------------------------ */
/* State kept per entry                                                                         */
/* ------------------------------------------------------------------------------------------ */
enum { SESSION_NEW = 0, SESSION_CLAIMED = 1, SESSION_USED = 2 };

typedef struct srv_session {
    char merchant[FP_STORE_ID_MAX + 1];
    char terminal[FP_STORE_ID_MAX + 1]; /* "" : any terminal of the merchant */
    int none;                           /* test-only: no active liveness */
    fp_challenge challenge;
    int state;
    int64_t created_ms, expires_ms;
    int64_t payment_id;                 /* once used */
} srv_session;

enum { IDEM_PENDING = 0, IDEM_DONE = 1 };

typedef struct srv_idem {
    uint8_t hash[32]; /* of the request's meaning (see route_payments.c) */
    int state;
    int status;
    char *body;
    size_t len;
} srv_idem;

/* ------------------------------------------------------------------------------------------ */
/* Metrics                                                                                      */
/* ------------------------------------------------------------------------------------------ */
enum srv_route {
    R_HEALTHZ, R_METRICS, R_CUSTOMERS, R_CUSTOMER, R_ENROLL, R_TOPUP, R_TRANSACTIONS, R_SESSIONS,
    R_PAYMENTS, R_PAYMENT, R_STEPUP, R_REFUNDS, R_CANCEL, R_STATIC, R_UNKNOWN, R_COUNT
};
#define SRV_N_STATUS 21  /* the codes we send, plus "other" */
#define SRV_N_BUCKETS 14 /* latency histogram buckets, +Inf apart */

enum { PAYMENT_APPROVED = 0, PAYMENT_STEPUP = 1, PAYMENT_DECLINED = 2 };

typedef struct srv_metrics {
    atomic_uint_fast64_t requests[R_COUNT][SRV_N_STATUS];
    atomic_uint_fast64_t latency[R_COUNT][SRV_N_BUCKETS + 1]; /* non-cumulative; +Inf last */
    atomic_uint_fast64_t latency_us[R_COUNT];
    atomic_uint_fast64_t payments[3];         /* by decision, new charges only */
    atomic_uint_fast64_t idem_replays;
    atomic_uint_fast64_t frame_replays;
    atomic_uint_fast64_t challenges[3];       /* passed, failed, not_enough_frames */
    atomic_uint_fast64_t enrollments[2];      /* enrolled, refused */
    atomic_uint_fast64_t stepups[2];          /* verified, failed */
    atomic_uint_fast64_t refunds;
    atomic_uint_fast64_t auth_failures;
    atomic_uint_fast64_t rate_limited;
    atomic_int workers_busy;
} srv_metrics;

const char *srv_route_name(int route);
void srv_metrics_request(srv_metrics *m, int route, int status, double ms);
/* Prometheus text exposition (malloc'ed). */
char *srv_metrics_render(fp_server *s, size_t *len);

/* ------------------------------------------------------------------------------------------ */
/* The server                                                                                   */
/* ------------------------------------------------------------------------------------------ */
struct fp_server {
    fp_server_options o;
    char *db_path, *web_dir_opt, *calib_path, *model_dir, *bind;
    char web_root[PATH_MAX]; /* realpath of web_dir ("" : no static files) */
    struct MHD_Daemon *daemon;
    int port;

    fp_store *store;
    fp_pay *pay;
    fp_engine *engine;
    fp_gallery *gallery;
    fp_calibration calib;

    /* worker pool: one fp_session per analysis worker */
    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cv;
    fp_session **sessions_free;
    int n_free, n_workers;
    fp_session **all_sessions;

    srv_map sessions; /* challenge sessions by id */
    srv_map idem;     /* idempotency records by merchant "\x1f" key */

    pthread_mutex_t enroll_lock; /* look-alike check + template writes of one enrollment at a time */

    srv_metrics metrics;

    pthread_t housekeeper;
    int housekeeper_started;
    pthread_mutex_t hk_lock;
    pthread_cond_t hk_cv;
    int stopping;
};

int64_t srv_now_ms(void);  /* wall clock, unix ms */
double srv_mono_ms(void);  /* monotonic ms */

fp_session *srv_worker_get(fp_server *s, int wait_ms);
void srv_worker_put(fp_server *s, fp_session *ses);

/* ------------------------------------------------------------------------------------------ */
/* Requests and responses                                                                       */
/* ------------------------------------------------------------------------------------------ */
typedef struct srv_req {
    fp_server *s;
    struct MHD_Connection *conn;
    const char *method;
    char *path;        /* copy of the (decoded) URL path */
    char *body;
    size_t len, cap;
    int too_large;
    int timed_out;
    int responded;     /* a response was queued early (413, 408) */
    double t0;
    int route;
    char merchant[FP_STORE_ID_MAX + 1]; /* after authentication */
    unsigned scopes;                    /* the key's FP_PAY_SCOPE_* bits, after authentication */
} srv_req;

typedef struct srv_resp {
    int status;
    char *body; /* malloc'ed */
    size_t len;
    const char *content_type;
    const char *allow;      /* 405 */
    int retry_after;        /* seconds, 0: none */
    int www_authenticate;   /* 401 */
    int idem_replayed;
    int fd;                 /* static file, -1: none */
    uint64_t fd_size;
} srv_resp;

/* Sets a JSON response (steals j). */
void srv_json(srv_resp *r, int status, json_t *j);
/* {"error":{"code","message"}} plus the fields of extra (stolen, may be NULL). */
void srv_error(srv_resp *r, int status, const char *code, json_t *extra, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Maps a library status to an HTTP error; `what` prefixes the message. */
void srv_error_status(srv_resp *r, fp_status st, const char *what);

const char *srv_header(srv_req *rq, const char *name);
const char *srv_query(srv_req *rq, const char *name);

/* Checks the Bearer key (fp_pay_key_verify_scoped); on failure fills r (401 / 429) and returns 0.
 * On success rq->merchant and rq->scopes are set. */
int srv_authenticate(srv_req *rq, srv_resp *r);

/* The scopes a route accepts (any one of them will do; 0 for routes without a key). */
unsigned srv_route_scopes(int route, const char *method);

/* 1 when the authenticated key holds one of the route's scopes; else fills r (403
 * insufficient_scope) and returns 0. */
int srv_authorize(srv_req *rq, const char *method, srv_resp *r);

/* ------------------------------------------------------------------------------------------ */
/* Bodies                                                                                       */
/* ------------------------------------------------------------------------------------------ */
typedef struct srv_blob {
    uint8_t *data; /* owned when `owned` */
    size_t len;
    int owned;
    double t_ms;   /* NaN when not given */
} srv_blob;

typedef struct srv_form {
    json_t *fields;   /* object: the JSON body, or the text parts of a multipart body (strings) */
    int multipart;
    srv_blob *frames; /* `frame` parts, or JSON "frames" (base64) */
    int n_frames;
    srv_blob video;   /* `video` part or JSON "video" (base64); len 0 when none */
} srv_form;

/* Parses a JSON or multipart/form-data body. An empty body gives an empty object. Fills r with
 * 400 / 413 / 415 and returns 0 on failure. */
int srv_form_parse(srv_req *rq, srv_form *f, int max_frames, srv_resp *r);
void srv_form_free(srv_form *f);

/* Field accessors: 1 found and valid, 0 absent, -1 invalid (r filled with 400). */
int srv_field_str(const srv_form *f, const char *name, const char **out, srv_resp *r);
int srv_field_int(const srv_form *f, const char *name, int64_t *out, srv_resp *r);

/* Decodes the form's frames (JPEG/PNG) within the server's pixel limits, scaling large ones down
 * to max_side. Times: the given t_ms (must increase strictly) or i * default_step_ms. Fills r and
 * returns 0 on failure; on success *imgs and *t are malloc'ed (free with srv_frames_free). */
int srv_decode_frames(fp_server *s, const srv_form *f, double default_step_ms, fp_image **imgs, double **t,
                      srv_resp *r);
void srv_frames_free(fp_image *imgs, double *t, int n);

/* Validates an id of the store's alphabet (1..63 of [A-Za-z0-9._@:+-]); fills r (400) when bad. */
int srv_check_id(const char *what, const char *id, srv_resp *r);

/* Multipart parsing on a complete body (exposed for the tests through the server only). */
typedef struct srv_part {
    char name[64];
    char filename[128];
    char content_type[64];
    const uint8_t *data;
    size_t len;
} srv_part;
int srv_multipart_parse(const char *content_type, const uint8_t *body, size_t len, srv_part *parts,
                        int cap, int *n, char *err, size_t err_cap);

/* ------------------------------------------------------------------------------------------ */
/* Face work (face.c)                                                                           */
/* ------------------------------------------------------------------------------------------ */
typedef struct srv_pay_analysis {
    fp_identify_result id;
    int challenge_ran;
    fp_challenge_result challenge;
    int frames_with_one_face;
    int has_quality;
    fp_quality quality;  /* of the best frame */
    uint8_t *thumbnail;  /* JPEG of the best face (malloc'ed) */
    size_t thumbnail_len;
} srv_pay_analysis;

/* Analyses the frames (first pass: faces, challenge frames), evaluates the challenge (c NULL: none),
 * runs the identifier on up to o.identify_frames of the best frames, and makes the thumbnail. */
fp_status srv_analyze_payment(fp_server *s, fp_session *ses, const fp_image *imgs, const double *t_ms,
                              int n, const fp_challenge *c, srv_pay_analysis *out);
void srv_pay_analysis_free(srv_pay_analysis *a);

typedef struct srv_enroll_outcome {
    fp_enroll_result result;
    fp_status status;
    char message[512];
    int refused;          /* a decision (no usable frame, competing faces, look-alike), not a fault */
} srv_enroll_outcome;

/* Enrols an existing store user from decoded frames or a video file (one of the two). */
void srv_enroll(fp_server *s, fp_session *ses, const char *user_id, const fp_image *imgs, const double *t_ms,
                int n, const char *video_path, int target, srv_enroll_outcome *out);

/* Pixel hash (BLAKE2b-128 of size and pixels) of a frame: what the replay guard remembers. */
void srv_frame_hash(const fp_image *img, uint8_t out[16]);

/* ------------------------------------------------------------------------------------------ */
/* Routes                                                                                       */
/* ------------------------------------------------------------------------------------------ */
void srv_route_healthz(srv_req *rq, srv_resp *r);
void srv_route_metrics(srv_req *rq, srv_resp *r);
void srv_route_static(srv_req *rq, srv_resp *r);
void srv_route_customer_create(srv_req *rq, srv_resp *r);
void srv_route_customer_get(srv_req *rq, const char *id, srv_resp *r);
void srv_route_customer_delete(srv_req *rq, const char *id, srv_resp *r);
void srv_route_enroll(srv_req *rq, const char *id, srv_resp *r);
void srv_route_topup(srv_req *rq, const char *id, srv_resp *r);
void srv_route_transactions(srv_req *rq, const char *id, srv_resp *r);
void srv_route_session_create(srv_req *rq, srv_resp *r);
void srv_route_payment_create(srv_req *rq, srv_resp *r);
void srv_route_payment_get(srv_req *rq, const char *id, srv_resp *r);
void srv_route_stepup(srv_req *rq, const char *id, srv_resp *r);
void srv_route_refund(srv_req *rq, const char *id, srv_resp *r);
void srv_route_cancel(srv_req *rq, const char *id, srv_resp *r);

/* Idempotency (route_payments.c): looks the key up. Returns 1 when the caller should go on (a
 * pending record now holds the key), 0 when r was filled (a replay, or 409). */
int srv_idem_begin(fp_server *s, const char *merchant, const char *key, const uint8_t hash[32], srv_resp *r);
/* Stores the final response (keep != 0) or forgets the pending record (keep == 0). */
void srv_idem_end(fp_server *s, const char *merchant, const char *key, const srv_resp *r, int keep);

/* Idempotency-Key: 1..255 printable ASCII bytes; fills r (400) when missing or bad. */
int srv_check_idem_key(const char *key, srv_resp *r);

/* JSON of a payment as every payment route returns it. */
json_t *srv_payment_json(const fp_payment *p);

#endif /* FP_SERVER_INTERNAL_H */
