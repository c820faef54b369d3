/*
 * server.c - the HTTP layer of `facepay serve`: libmicrohttpd daemon (internal thread pool, epoll),
 * request bodies with a size limit and a deadline, routing of the versioned /v1 API, JSON responses
 * and errors, Bearer authentication and per-route key scopes, /healthz, /metrics, static files for
 * the kiosk page, start-up (store, payments, models, gallery, calibration) and shutdown, and the
 * housekeeping thread.
 *
 * Threads: libmicrohttpd runs `http_threads` threads, each with its own epoll set; a handler runs
 * to completion on the thread that received the request. Face work (hundreds of ms) borrows one of
 * `workers` fp_sessions, so at most `workers` payments analyse at once and the spare HTTP threads
 * keep answering health checks and light requests meanwhile.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <sodium.h>

#include "core/core.h"
#include "server/internal.h"

fp_server_options fp_server_options_default(void) {
    fp_server_options o;
    memset(&o, 0, sizeof o);
    o.bind = "0.0.0.0";
    o.port = 8080;
    o.workers = 2;
    o.max_body = (size_t)16 << 20;
    o.max_frames = 200; /* a two-step challenge filmed at 25 fps for 8 s: blinks need the frame rate */
    o.max_pixels = 8 * 1000 * 1000;
    o.max_side = 1280;
    o.session_ttl_s = 60;
    o.connection_timeout_s = 30;
    o.request_timeout_s = 60;
    o.worker_wait_ms = 20000;
    o.identify_frames = 8;
    o.enroll_video_max_frames = 900;
    o.pay = fp_pay_options_default();
    return o;
}

/* ------------------------------------------------------------------------------------------ */
/* Responses                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void resp_reset(srv_resp *r) {
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

void srv_json(srv_resp *r, int status, json_t *j) {
    resp_reset(r);
    r->status = status;
    r->content_type = "application/json";
    r->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (!r->body) {
        r->status = 500;
        r->body = strdup("{\"error\":{\"code\":\"internal\",\"message\":\"could not encode the response\"}}");
    }
    r->len = r->body ? strlen(r->body) : 0;
    json_decref(j);
}

void srv_error(srv_resp *r, int status, const char *code, json_t *extra, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *e = json_pack("{s:s,s:s}", "code", code, "message", msg);
    if (!e) e = json_pack("{s:s,s:s}", "code", code, "message", "(message not valid UTF-8)");
    if (extra) {
        json_object_update(e, extra);
        json_decref(extra);
    }
    srv_json(r, status, json_pack("{s:o}", "error", e));
}

void srv_error_status(srv_resp *r, fp_status st, const char *what) {
    const char *detail = fp_last_error();
    if (st == FP_ERR_PAY_CONFLICT) srv_error(r, 409, "idempotency_conflict", NULL, "%s: %s", what, detail);
    else if (st == FP_ERR_PAY_UNAUTHORIZED) srv_error(r, 401, "unauthorized", NULL, "%s", detail);
    else if (st == FP_ERR_PAY_RATE_LIMITED) {
        srv_error(r, 429, "rate_limited", NULL, "too many requests for this API key");
        r->retry_after = 1;
    } else if (st == FP_ERR_PAY_STATE) srv_error(r, 409, "invalid_state", NULL, "%s: %s", what, detail);
    else if (st == FP_ERR_INVALID_ARG) srv_error(r, 400, "invalid_request", NULL, "%s: %s", what, detail);
    else if (st == FP_ERR_NOT_FOUND) srv_error(r, 404, "not_found", NULL, "%s: %s", what, detail);
    else if (st == FP_ERR_TOO_LARGE) srv_error(r, 413, "too_large", NULL, "%s: %s", what, detail);
    else if (st == FP_ERR_FORMAT || st == FP_ERR_UNSUPPORTED)
        srv_error(r, 400, "invalid_input", NULL, "%s: %s", what, detail);
    else if (st == FP_ERR_NOMEM) {
        srv_error(r, 503, "out_of_memory", NULL, "%s: out of memory", what);
        r->retry_after = 1;
    } else {
        /* internal details (paths, SQL) go to the log, not to the client */
        fprintf(stderr, "facepay serve: %s: %s: %s\n", what, fp_pay_strerror(st), detail);
        srv_error(r, 500, "internal", NULL, "%s failed (%s); see the server log", what, fp_pay_strerror(st));
    }
}

const char *srv_header(srv_req *rq, const char *name) {
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

const char *srv_query(srv_req *rq, const char *name) {
    return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

int srv_authenticate(srv_req *rq, srv_resp *r) {
    const char *h = srv_header(rq, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7)) {
        atomic_fetch_add(&rq->s->metrics.auth_failures, 1);
        srv_error(r, 401, "unauthorized", NULL, "missing 'Authorization: Bearer <api key>'");
        r->www_authenticate = 1;
        return 0;
    }
    const char *key = h + 7;
    while (*key == ' ') key++;
    fp_status st = fp_pay_key_verify_scoped(rq->s->pay, key, rq->merchant, NULL, &rq->scopes);
    if (st == FP_OK) return 1;
    if (st == FP_ERR_PAY_RATE_LIMITED) {
        atomic_fetch_add(&rq->s->metrics.rate_limited, 1);
        srv_error(r, 429, "rate_limited", NULL, "too many requests for this API key; retry later");
        r->retry_after = 1;
        return 0;
    }
    atomic_fetch_add(&rq->s->metrics.auth_failures, 1);
    if (st == FP_ERR_PAY_UNAUTHORIZED) {
        srv_error(r, 401, "unauthorized", NULL, "invalid or revoked API key");
        r->www_authenticate = 1;
    } else
        srv_error_status(r, st, "authentication");
    return 0;
}

/* Least privilege per key: a till's key pays but cannot create, credit or erase customers; an
 * enrolment desk's key manages customers but cannot take payments; refunds are a back-office
 * right. Reading a payment is open to both who take and who refund it. */
unsigned srv_route_scopes(int route, const char *method) {
    switch (route) {
    case R_CUSTOMERS:
    case R_CUSTOMER:
    case R_ENROLL:
    case R_TOPUP:
    case R_TRANSACTIONS: return FP_PAY_SCOPE_CUSTOMERS;
    case R_SESSIONS:
    case R_PAYMENTS:
    case R_STEPUP:
    case R_CANCEL: return FP_PAY_SCOPE_PAYMENTS;
    case R_PAYMENT: return FP_PAY_SCOPE_PAYMENTS | FP_PAY_SCOPE_REFUNDS;
    case R_REFUNDS: return FP_PAY_SCOPE_REFUNDS;
    default: break;
    }
    (void)method; /* every method of a route needs the same scope today */
    return 0;
}

static json_t *scopes_json(unsigned scopes) {
    static const unsigned bits[] = {FP_PAY_SCOPE_PAYMENTS, FP_PAY_SCOPE_REFUNDS, FP_PAY_SCOPE_CUSTOMERS};
    json_t *a = json_array();
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
        if (scopes & bits[i]) {
            char name[16];
            fp_pay_scopes_format(bits[i], name, sizeof name);
            json_array_append_new(a, json_string(name));
        }
    return a;
}

int srv_authorize(srv_req *rq, const char *method, srv_resp *r) {
    unsigned need = srv_route_scopes(rq->route, method);
    if (!need || (rq->scopes & need)) return 1;
    char want[64];
    fp_pay_scopes_format(need, want, sizeof want);
    srv_error(r, 403, "insufficient_scope",
              json_pack("{s:o,s:o}", "required_scopes", scopes_json(need), "key_scopes", scopes_json(rq->scopes)),
              "this API key may not call %s %s: that needs the scope %s", method, srv_route_name(rq->route),
              need == (FP_PAY_SCOPE_PAYMENTS | FP_PAY_SCOPE_REFUNDS) ? "payments or refunds" : want);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Health, metrics, static files                                                               */
/* ------------------------------------------------------------------------------------------ */

void srv_route_healthz(srv_req *rq, srv_resp *r) {
    fp_server *s = rq->s;
    int schema = fp_store_schema_version(s->store);
    int ok = schema > 0 && s->engine && s->gallery;
    json_t *j = json_pack("{s:s,s:s,s:{s:b,s:s,s:i,s:i},s:{s:b,s:i},s:{s:I}}", "status", ok ? "ok" : "unavailable",
                          "version", fp_version(), "models", "loaded", s->engine != NULL, "embedder", FP_EMBEDDER_ID,
                          "workers", s->n_workers, "workers_busy", atomic_load(&s->metrics.workers_busy), "db", "ok",
                          schema > 0, "schema", schema, "gallery", "users", (json_int_t)fp_gallery_size(s->gallery));
    srv_json(r, ok ? 200 : 503, j);
}

void srv_route_metrics(srv_req *rq, srv_resp *r) {
    resp_reset(r);
    r->body = srv_metrics_render(rq->s, &r->len);
    if (!r->body) {
        srv_error(r, 503, "out_of_memory", NULL, "out of memory");
        return;
    }
    r->status = 200;
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static const char *content_type_of(const char *path) {
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},   {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"}, {".json", "application/json"},
        {".map", "application/json"},          {".png", "image/png"},
        {".jpg", "image/jpeg"},                {".jpeg", "image/jpeg"},
        {".gif", "image/gif"},                 {".svg", "image/svg+xml"},
        {".ico", "image/x-icon"},              {".webp", "image/webp"},
        {".wasm", "application/wasm"},         {".txt", "text/plain; charset=utf-8"},
        {".woff2", "font/woff2"},              {".woff", "font/woff"},
        {".webmanifest", "application/manifest+json"}, {".mp4", "video/mp4"},
    };
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (!strcasecmp(dot, types[i].ext)) return types[i].type;
    return "application/octet-stream";
}

void srv_route_static(srv_req *rq, srv_resp *r) {
    fp_server *s = rq->s;
    const char *p = rq->path;
    if (!s->web_root[0]) {
        srv_error(r, 404, "not_found", NULL, "no web folder is served");
        return;
    }
    /* refuse anything that could leave the folder before touching the file system: "..", ".",
     * backslashes, empty segments; then resolve and check the prefix (symlinks) */
    if (p[0] != '/' || strchr(p, '\\') || strlen(p) > 1024) {
        srv_error(r, 404, "not_found", NULL, "no such file");
        return;
    }
    for (const char *seg = p + 1; *seg;) {
        const char *e = strchr(seg, '/');
        size_t l = e ? (size_t)(e - seg) : strlen(seg);
        if ((l == 1 && seg[0] == '.') || (l == 2 && seg[0] == '.' && seg[1] == '.') || (l == 0 && e) ||
            (l && seg[0] == '.')) {
            srv_error(r, 404, "not_found", NULL, "no such file");
            return;
        }
        if (!e) break;
        seg = e + 1;
    }
    char full[PATH_MAX], real[PATH_MAX];
    int n = snprintf(full, sizeof full, "%s%s", s->web_root, p);
    if (n < 0 || (size_t)n >= sizeof full - 16) {
        srv_error(r, 404, "not_found", NULL, "no such file");
        return;
    }
    struct stat sb;
    if (stat(full, &sb) == 0 && S_ISDIR(sb.st_mode)) strcat(full, full[strlen(full) - 1] == '/' ? "index.html" : "/index.html");
    size_t rl = strlen(s->web_root);
    if (!realpath(full, real) || strncmp(real, s->web_root, rl) || (real[rl] != '/' && real[rl] != 0)) {
        srv_error(r, 404, "not_found", NULL, "no such file");
        return;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        if (fd >= 0) close(fd);
        srv_error(r, 404, "not_found", NULL, "no such file");
        return;
    }
    resp_reset(r);
    r->status = 200;
    r->fd = fd;
    r->fd_size = (uint64_t)sb.st_size;
    r->content_type = content_type_of(real);
}

/* ------------------------------------------------------------------------------------------ */
/* Routing                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* Splits "/v1/customers/abc/enroll" into at most 6 segments (pointers into buf). */
static int split_path(const char *path, char *buf, size_t cap, char **seg, int max) {
    snprintf(buf, cap, "%s", path);
    int n = 0;
    for (char *p = buf; *p && n <= max;) {
        while (*p == '/') p++;
        if (!*p) break;
        seg[n++] = p;
        char *e = strchr(p, '/');
        if (!e) break;
        *e = 0;
        p = e + 1;
    }
    return n;
}

static int method_is(const srv_req *rq, const char *m) { return !strcmp(rq->method, m); }

static void not_allowed(srv_resp *r, const char *allow) {
    srv_error(r, 405, "method_not_allowed", NULL, "method not allowed here (allowed: %s)", allow);
    r->allow = allow;
}

/* Picks the route (for metrics and dispatch) without running it. */
static int classify(srv_req *rq, char **seg, int n) {
    if (n == 1 && !strcmp(seg[0], "healthz")) return R_HEALTHZ;
    if (n == 1 && !strcmp(seg[0], "metrics")) return R_METRICS;
    if (n < 1 || strcmp(seg[0], "v1")) return R_STATIC;
    if (n == 2 && !strcmp(seg[1], "customers")) return R_CUSTOMERS;
    if (n == 3 && !strcmp(seg[1], "customers")) return R_CUSTOMER;
    if (n == 4 && !strcmp(seg[1], "customers") && !strcmp(seg[3], "enroll")) return R_ENROLL;
    if (n == 4 && !strcmp(seg[1], "customers") && !strcmp(seg[3], "topup")) return R_TOPUP;
    if (n == 4 && !strcmp(seg[1], "customers") && !strcmp(seg[3], "transactions")) return R_TRANSACTIONS;
    if (n == 2 && !strcmp(seg[1], "sessions")) return R_SESSIONS;
    if (n == 2 && !strcmp(seg[1], "payments")) return R_PAYMENTS;
    if (n == 3 && !strcmp(seg[1], "payments")) return R_PAYMENT;
    if (n == 4 && !strcmp(seg[1], "payments") && !strcmp(seg[3], "stepup")) return R_STEPUP;
    if (n == 4 && !strcmp(seg[1], "payments") && !strcmp(seg[3], "refunds")) return R_REFUNDS;
    if (n == 4 && !strcmp(seg[1], "payments") && !strcmp(seg[3], "cancel")) return R_CANCEL;
    (void)rq;
    return R_UNKNOWN;
}

static void dispatch(srv_req *rq, srv_resp *r) {
    char buf[1100], *seg[8];
    if (strlen(rq->path) >= sizeof buf - 1) {
        srv_error(r, 414, "uri_too_long", NULL, "path too long");
        return;
    }
    int n = split_path(rq->path, buf, sizeof buf, seg, 6);
    int route = rq->route = classify(rq, seg, n);
    static const struct {
        int route;
        const char *allow;
    } allowed[] = {
        {R_HEALTHZ, "GET, HEAD"}, {R_METRICS, "GET, HEAD"}, {R_CUSTOMERS, "POST"}, {R_CUSTOMER, "GET, DELETE"},
        {R_ENROLL, "POST"},       {R_TOPUP, "POST"},        {R_TRANSACTIONS, "GET"}, {R_SESSIONS, "POST"},
        {R_PAYMENTS, "POST"},     {R_PAYMENT, "GET"},       {R_STEPUP, "POST"},      {R_REFUNDS, "POST"},
        {R_CANCEL, "POST"},       {R_STATIC, "GET, HEAD"},
    };
    if (route == R_UNKNOWN) {
        srv_error(r, 404, "not_found", NULL, "no such route: %s %s", rq->method, rq->path);
        return;
    }
    const char *allow = "";
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        if (allowed[i].route == route) allow = allowed[i].allow;
    /* HEAD is GET without the body (libmicrohttpd drops it) */
    const char *m = method_is(rq, "HEAD") ? "GET" : rq->method;
    char mm[16];
    snprintf(mm, sizeof mm, "%s", m);
    int ok = 0;
    for (const char *a = allow; *a;) {
        size_t l = strcspn(a, ",");
        if (l == strlen(mm) && !strncmp(a, mm, l)) ok = 1;
        a += l;
        while (*a == ',' || *a == ' ') a++;
    }
    if (!ok) {
        not_allowed(r, allow);
        return;
    }
    switch (route) {
    case R_HEALTHZ: srv_route_healthz(rq, r); return;
    case R_METRICS: srv_route_metrics(rq, r); return;
    case R_STATIC: srv_route_static(rq, r); return;
    default: break;
    }
    if (!srv_authenticate(rq, r) || !srv_authorize(rq, mm, r)) return;
    const char *id = n >= 3 ? seg[2] : NULL;
    switch (route) {
    case R_CUSTOMERS: srv_route_customer_create(rq, r); break;
    case R_CUSTOMER:
        if (!strcmp(mm, "GET")) srv_route_customer_get(rq, id, r);
        else srv_route_customer_delete(rq, id, r);
        break;
    case R_ENROLL: srv_route_enroll(rq, id, r); break;
    case R_TOPUP: srv_route_topup(rq, id, r); break;
    case R_TRANSACTIONS: srv_route_transactions(rq, id, r); break;
    case R_SESSIONS: srv_route_session_create(rq, r); break;
    case R_PAYMENTS: srv_route_payment_create(rq, r); break;
    case R_PAYMENT: srv_route_payment_get(rq, id, r); break;
    case R_STEPUP: srv_route_stepup(rq, id, r); break;
    case R_REFUNDS: srv_route_refund(rq, id, r); break;
    case R_CANCEL: srv_route_cancel(rq, id, r); break;
    default: srv_error(r, 404, "not_found", NULL, "no such route"); break;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* libmicrohttpd glue                                                                          */
/* ------------------------------------------------------------------------------------------ */

static enum MHD_Result send_resp(srv_req *rq, srv_resp *r) {
    struct MHD_Response *resp;
    if (r->status < 100 && r->fd < 0) /* a handler that answered nothing is a bug, not a hang */
        srv_error(r, 500, "internal", NULL, "no response");
    if (r->fd >= 0) {
        resp = MHD_create_response_from_fd64(r->fd_size, r->fd);
        if (!resp) close(r->fd);
        r->fd = -1;
    } else {
        resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
        if (resp) r->body = NULL; /* owned by the response now */
    }
    if (!resp) {
        resp_reset(r);
        return MHD_NO;
    }
    int api = rq->route != R_STATIC;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type ? r->content_type : "application/json");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, api ? "no-store" : "no-cache");
    if (!api) {
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    }
    if (r->allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (r->www_authenticate) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"facepay\"");
    if (r->retry_after) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (r->idem_replayed) MHD_add_response_header(resp, "Idempotent-Replayed", "true");
    enum MHD_Result ret = MHD_queue_response(rq->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    double ms = srv_mono_ms() - rq->t0;
    srv_metrics_request(&rq->s->metrics, rq->route, r->status, ms);
    if (!rq->s->o.quiet)
        fprintf(stderr, "%s %s %d %.1f ms%s%s\n", rq->method, rq->path, r->status, ms, rq->merchant[0] ? " merchant=" : "",
                rq->merchant);
    return ret;
}

static enum MHD_Result early_error(srv_req *rq, int status, const char *code, const char *msg) {
    srv_resp r = {0};
    r.fd = -1;
    srv_error(&r, status, code, NULL, "%s", msg);
    rq->responded = 1;
    enum MHD_Result ret = send_resp(rq, &r);
    resp_reset(&r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    fp_server *s = cls;
    srv_req *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        rq->s = s;
        rq->conn = conn;
        rq->method = method;
        rq->path = strdup(url ? url : "/");
        rq->t0 = srv_mono_ms();
        rq->route = R_UNKNOWN;
        *con_cls = rq;
        if (!rq->path) return MHD_NO;
        {
            char buf[1100], *seg[8];
            int n = strlen(rq->path) < sizeof buf - 1 ? split_path(rq->path, buf, sizeof buf, seg, 6) : 0;
            rq->route = classify(rq, seg, n);
        }
        /* refuse an announced oversized body before reading it (with "Expect: 100-continue" the
         * client does not even send it) */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *e;
            errno = 0;
            unsigned long long v = strtoull(cl, &e, 10);
            if (errno || *e || v > s->o.max_body) {
                char msg[128];
                snprintf(msg, sizeof msg, "request body larger than %zu bytes", s->o.max_body);
                return early_error(rq, 413, "body_too_large", msg);
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rq->responded) return MHD_YES;
        if (srv_mono_ms() - rq->t0 > s->o.request_timeout_s * 1000.0) {
            rq->timed_out = 1;
            return MHD_NO; /* a trickling body: drop the connection (no response can be queued mid-body) */
        }
        if (rq->too_large || rq->len + n > s->o.max_body) {
            rq->too_large = 1; /* chunked body over the limit: read and drop the rest, then 413 */
            return MHD_YES;
        }
        if (rq->len + n + 1 > rq->cap) {
            size_t cap = rq->cap ? rq->cap : 65536;
            while (cap < rq->len + n + 1) cap *= 2;
            if (cap > s->o.max_body + 1) cap = s->o.max_body + 1;
            char *b = realloc(rq->body, cap);
            if (!b) return MHD_NO;
            rq->body = b;
            rq->cap = cap;
        }
        memcpy(rq->body + rq->len, upload_data, n);
        rq->len += n;
        rq->body[rq->len] = 0;
        return MHD_YES;
    }
    if (rq->responded) return MHD_YES;
    if (rq->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body larger than %zu bytes", s->o.max_body);
        return early_error(rq, 413, "body_too_large", msg);
    }
    srv_resp r = {0};
    r.fd = -1;
    dispatch(rq, &r);
    rq->responded = 1;
    enum MHD_Result ret = send_resp(rq, &r);
    resp_reset(&r);
    if (r.fd >= 0) close(r.fd);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    srv_req *rq = *con_cls;
    if (!rq) return;
    free(rq->path);
    free(rq->body);
    free(rq);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    fp_server *s = cls;
    if (s->o.quiet) return;
    fprintf(stderr, "facepay serve: libmicrohttpd: ");
    vfprintf(stderr, fmt, ap);
}

/* ------------------------------------------------------------------------------------------ */
/* Housekeeping                                                                                */
/* ------------------------------------------------------------------------------------------ */

/* Every 5 s: voids step-ups that expired (their held money goes back) and drops expired entries
 * of the in-memory maps. */
static void *housekeeper(void *arg) {
    fp_server *s = arg;
    pthread_mutex_lock(&s->hk_lock);
    while (!s->stopping) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 5;
        pthread_cond_timedwait(&s->hk_cv, &s->hk_lock, &dl);
        if (s->stopping) break;
        pthread_mutex_unlock(&s->hk_lock);
        int voided = 0;
        if (fp_pay_expire(s->pay, &voided) != FP_OK)
            fprintf(stderr, "facepay serve: expiring step-ups: %s\n", fp_last_error());
        else if (voided && !s->o.quiet)
            fprintf(stderr, "facepay serve: %d expired step-up(s) voided\n", voided);
        int64_t now = srv_now_ms();
        srv_map *maps[] = {&s->sessions, &s->idem};
        for (size_t i = 0; i < 2; i++) {
            pthread_mutex_lock(&maps[i]->lock);
            srv_map_expire(maps[i], now);
            pthread_mutex_unlock(&maps[i]->lock);
        }
        pthread_mutex_lock(&s->hk_lock);
    }
    pthread_mutex_unlock(&s->hk_lock);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Start and stop                                                                              */
/* ------------------------------------------------------------------------------------------ */

typedef struct load_ctx {
    fp_gallery *g;
    fp_status st;
} load_ctx;

static int load_mean(void *ctx, const char *user, const float *emb, int dim) {
    load_ctx *c = ctx;
    c->st = fp_gallery_add(c->g, user, emb, dim);
    return c->st != FP_OK;
}

static void free_idem(void *v) {
    srv_idem *i = v;
    if (i) free(i->body);
    free(i);
}

static char *dup_opt(const char *s) { return s ? strdup(s) : NULL; }

fp_store *fp_server_store(fp_server *s) { return s ? s->store : NULL; }
fp_pay *fp_server_pay(fp_server *s) { return s ? s->pay : NULL; }
fp_gallery *fp_server_gallery(fp_server *s) { return s ? s->gallery : NULL; }
int fp_server_port(const fp_server *s) { return s ? s->port : 0; }

void fp_server_stop(fp_server *s) {
    if (!s) return;
    if (s->daemon) MHD_stop_daemon(s->daemon); /* waits for the handlers in progress */
    if (s->housekeeper_started) {
        pthread_mutex_lock(&s->hk_lock);
        s->stopping = 1;
        pthread_cond_broadcast(&s->hk_cv);
        pthread_mutex_unlock(&s->hk_lock);
        pthread_join(s->housekeeper, NULL);
    }
    for (int i = 0; i < s->n_workers; i++) fp_session_free(s->all_sessions[i]);
    free(s->all_sessions);
    free(s->sessions_free);
    fp_engine_free(s->engine);
    fp_gallery_free(s->gallery);
    fp_pay_close(s->pay);
    fp_store_close(s->store);
    srv_map_destroy(&s->sessions);
    srv_map_destroy(&s->idem);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_cond_destroy(&s->pool_cv);
    pthread_mutex_destroy(&s->enroll_lock);
    pthread_mutex_destroy(&s->hk_lock);
    pthread_cond_destroy(&s->hk_cv);
    free(s->db_path);
    free(s->web_dir_opt);
    free(s->calib_path);
    free(s->model_dir);
    free(s->bind);
    sodium_memzero(&s->o.pay, sizeof s->o.pay);
    free(s);
}

fp_status fp_server_start(const fp_server_options *opts, fp_server **out) {
    if (!opts || !out || !opts->db_path || !opts->calibration)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_server_start: db_path and calibration are required");
    *out = NULL;
    if (opts->workers < 1 || opts->workers > 256 || opts->max_frames < 1 || opts->max_body < 1024 ||
        opts->identify_frames < 3 || opts->session_ttl_s < 1 || opts->port < 0 || opts->port > 65535)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_server_start: workers 1..256, max_frames >= 1, max_body >= 1 KB, "
                                           "identify_frames >= 3, session_ttl_s >= 1, port 0..65535");
    fp_server *s = calloc(1, sizeof *s);
    if (!s) return fp_fail(FP_ERR_NOMEM, "out of memory");
    s->o = *opts;
    s->db_path = dup_opt(opts->db_path);
    s->calib_path = dup_opt(opts->calibration);
    s->web_dir_opt = dup_opt(opts->web_dir);
    s->model_dir = dup_opt(opts->model_dir);
    s->bind = dup_opt(opts->bind ? opts->bind : "0.0.0.0");
    s->o.db_path = s->db_path;
    s->o.calibration = s->calib_path;
    s->o.web_dir = s->web_dir_opt;
    s->o.model_dir = s->model_dir;
    s->o.bind = s->bind;
    s->o.key = NULL;
    s->o.key_file = NULL;
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_cond_init(&s->pool_cv, NULL);
    pthread_mutex_init(&s->enroll_lock, NULL);
    pthread_mutex_init(&s->hk_lock, NULL);
    pthread_cond_init(&s->hk_cv, NULL);
    fp_status st = FP_OK;
    if (srv_map_init(&s->sessions, 1 << 16, 100000, free) || srv_map_init(&s->idem, 1 << 16, 100000, free_idem)) {
        st = fp_fail(FP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (s->o.http_threads <= 0) s->o.http_threads = s->o.workers + 2;

    /* store + payments */
    fp_key key;
    if (opts->key) key = *opts->key;
    else if ((st = fp_key_load(opts->key_file, &key))) goto fail;
    st = fp_store_open(opts->db_path, &key, &s->store);
    fp_key_wipe(&key);
    if (st) goto fail;
    if ((st = fp_pay_open(s->store, &opts->pay, &s->pay))) goto fail;

    /* calibration, gallery */
    if ((st = fp_calibration_load(opts->calibration, &s->calib))) goto fail;
    if ((st = fp_gallery_new(FP_EMBEDDING_DIM, FP_GALLERY_FP16, &s->gallery))) goto fail;
    load_ctx lc = {s->gallery, FP_OK};
    if ((st = fp_store_foreach_mean(s->store, FP_EMBEDDER_ID, load_mean, &lc)) || (st = lc.st)) goto fail;

    /* models once, one session per worker */
    fp_engine_options eo = fp_engine_options_default();
    eo.model_dir = opts->model_dir;
    eo.attributes = 0; /* payments need neither age nor gender */
    if ((st = fp_engine_new(&eo, &s->engine))) goto fail;
    s->all_sessions = calloc((size_t)opts->workers, sizeof *s->all_sessions);
    s->sessions_free = calloc((size_t)opts->workers, sizeof *s->sessions_free);
    if (!s->all_sessions || !s->sessions_free) {
        st = fp_fail(FP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < opts->workers; i++) {
        if ((st = fp_session_new(s->engine, &s->all_sessions[i]))) goto fail;
        s->n_workers++;
        s->sessions_free[s->n_free++] = s->all_sessions[i];
    }

    /* static folder: resolved once; a missing folder only disables static files */
    if (opts->web_dir && realpath(opts->web_dir, s->web_root)) {
        struct stat sb;
        if (stat(s->web_root, &sb) || !S_ISDIR(sb.st_mode)) s->web_root[0] = 0;
    } else
        s->web_root[0] = 0;

    /* listen */
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)opts->port);
    if (inet_pton(AF_INET, s->bind, &sa.sin_addr) != 1) {
        st = fp_fail(FP_ERR_INVALID_ARG, "bind address '%s' is not an IPv4 address", s->bind);
        goto fail;
    }
    s->daemon = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, (uint16_t)opts->port, NULL, NULL, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, /* first, or early messages bypass it */
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned int)s->o.http_threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)(opts->connection_timeout_s > 0 ? opts->connection_timeout_s : 30), MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)1024, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_LISTEN_BACKLOG_SIZE,
        (unsigned int)256, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!s->daemon) {
        st = fp_fail(FP_ERR_IO, "cannot listen on %s:%d (address in use, or not permitted)", s->bind, opts->port);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : opts->port;

    if (pthread_create(&s->housekeeper, NULL, housekeeper, s) == 0) s->housekeeper_started = 1;
    else {
        st = fp_fail(FP_ERR_INTERNAL, "cannot start the housekeeping thread");
        goto fail;
    }
    *out = s;
    return FP_OK;
fail: {
    /* keep the message: freeing may overwrite the thread's last error */
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fp_last_error());
    fp_server_stop(s);
    return fp_fail(st, "%s", msg);
}
}
