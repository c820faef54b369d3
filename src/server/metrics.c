/*
 * metrics.c - the counters behind GET /metrics and their Prometheus text exposition (format
 * 0.0.4): requests by route and status, a latency histogram per route, payments by decision,
 * challenge verdicts, replays, step-ups, refunds, enrollments, authentication failures, gallery
 * size and busy workers. Counters are lock-free atomics: recording costs a few atomic adds per
 * request, whatever the thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/internal.h"

static const int status_codes[SRV_N_STATUS - 1] = {200, 201, 204, 304, 400, 401, 402, 403, 404, 405,
                                                   408, 409, 410, 413, 414, 415, 422, 429, 500, 503};
static const double buckets_ms[SRV_N_BUCKETS] = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 20000, 30000, 60000};

static const char *const route_names[R_COUNT] = {
    "/healthz", "/metrics", "/v1/customers", "/v1/customers/{id}", "/v1/customers/{id}/enroll",
    "/v1/customers/{id}/topup", "/v1/customers/{id}/transactions", "/v1/sessions", "/v1/payments",
    "/v1/payments/{id}", "/v1/payments/{id}/stepup", "/v1/payments/{id}/refunds", "/v1/payments/{id}/cancel",
    "static", "unknown"};

const char *srv_route_name(int route) { return route >= 0 && route < R_COUNT ? route_names[route] : "unknown"; }

void srv_metrics_request(srv_metrics *m, int route, int status, double ms) {
    if (route < 0 || route >= R_COUNT) route = R_UNKNOWN;
    int si = SRV_N_STATUS - 1;
    for (int i = 0; i < SRV_N_STATUS - 1; i++)
        if (status_codes[i] == status) si = i;
    atomic_fetch_add(&m->requests[route][si], 1);
    int b = SRV_N_BUCKETS;
    for (int i = 0; i < SRV_N_BUCKETS; i++)
        if (ms <= buckets_ms[i]) {
            b = i;
            break;
        }
    atomic_fetch_add(&m->latency[route][b], 1);
    atomic_fetch_add(&m->latency_us[route], (uint_fast64_t)(ms * 1000.0 + 0.5));
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

__attribute__((format(printf, 2, 3))) static void put(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 16384;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

char *srv_metrics_render(fp_server *s, size_t *len) {
    srv_metrics *m = &s->metrics;
    sbuf b = {0};
    put(&b, "# HELP facepay_http_requests_total HTTP requests by route and status code.\n"
            "# TYPE facepay_http_requests_total counter\n");
    for (int r = 0; r < R_COUNT; r++)
        for (int i = 0; i < SRV_N_STATUS; i++) {
            uint64_t v = atomic_load(&m->requests[r][i]);
            if (!v) continue;
            if (i < SRV_N_STATUS - 1)
                put(&b, "facepay_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", route_names[r], status_codes[i],
                    (unsigned long long)v);
            else
                put(&b, "facepay_http_requests_total{route=\"%s\",status=\"other\"} %llu\n", route_names[r],
                    (unsigned long long)v);
        }
    put(&b, "# HELP facepay_http_request_duration_seconds Time from the request's headers to its response.\n"
            "# TYPE facepay_http_request_duration_seconds histogram\n");
    for (int r = 0; r < R_COUNT; r++) {
        uint64_t total = 0, cum = 0;
        for (int i = 0; i <= SRV_N_BUCKETS; i++) total += atomic_load(&m->latency[r][i]);
        if (!total) continue;
        for (int i = 0; i < SRV_N_BUCKETS; i++) {
            cum += atomic_load(&m->latency[r][i]);
            put(&b, "facepay_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", route_names[r],
                buckets_ms[i] / 1000.0, (unsigned long long)cum);
        }
        put(&b, "facepay_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", route_names[r],
            (unsigned long long)total);
        put(&b, "facepay_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", route_names[r],
            (double)atomic_load(&m->latency_us[r]) / 1e6);
        put(&b, "facepay_http_request_duration_seconds_count{route=\"%s\"} %llu\n", route_names[r],
            (unsigned long long)total);
    }
    static const char *const decisions[] = {"approved", "step_up_required", "declined"};
    put(&b, "# HELP facepay_payments_total New payments by decision at charge time (idempotent replays excluded).\n"
            "# TYPE facepay_payments_total counter\n");
    for (int i = 0; i < 3; i++)
        put(&b, "facepay_payments_total{decision=\"%s\"} %llu\n", decisions[i], (unsigned long long)atomic_load(&m->payments[i]));
    static const char *const verdicts[] = {"passed", "failed", "not_enough_frames"};
    put(&b, "# HELP facepay_challenges_total Active liveness challenges evaluated, by verdict.\n"
            "# TYPE facepay_challenges_total counter\n");
    for (int i = 0; i < 3; i++)
        put(&b, "facepay_challenges_total{verdict=\"%s\"} %llu\n", verdicts[i], (unsigned long long)atomic_load(&m->challenges[i]));
    put(&b, "# HELP facepay_enrollments_total Enrollments by outcome.\n# TYPE facepay_enrollments_total counter\n");
    put(&b, "facepay_enrollments_total{outcome=\"enrolled\"} %llu\n", (unsigned long long)atomic_load(&m->enrollments[0]));
    put(&b, "facepay_enrollments_total{outcome=\"refused\"} %llu\n", (unsigned long long)atomic_load(&m->enrollments[1]));
    put(&b, "# HELP facepay_stepups_total Step-up attempts by outcome.\n# TYPE facepay_stepups_total counter\n");
    put(&b, "facepay_stepups_total{outcome=\"verified\"} %llu\n", (unsigned long long)atomic_load(&m->stepups[0]));
    put(&b, "facepay_stepups_total{outcome=\"failed\"} %llu\n", (unsigned long long)atomic_load(&m->stepups[1]));
    put(&b, "# HELP facepay_refunds_total Refunds made.\n# TYPE facepay_refunds_total counter\n"
            "facepay_refunds_total %llu\n",
        (unsigned long long)atomic_load(&m->refunds));
    put(&b, "# HELP facepay_idempotent_replays_total Responses replayed from an idempotency record.\n"
            "# TYPE facepay_idempotent_replays_total counter\nfacepay_idempotent_replays_total %llu\n",
        (unsigned long long)atomic_load(&m->idem_replays));
    put(&b, "# HELP facepay_frame_replays_total Payments whose frames had been used in another session.\n"
            "# TYPE facepay_frame_replays_total counter\nfacepay_frame_replays_total %llu\n",
        (unsigned long long)atomic_load(&m->frame_replays));
    put(&b, "# HELP facepay_auth_failures_total Requests refused for a missing, wrong or revoked API key.\n"
            "# TYPE facepay_auth_failures_total counter\nfacepay_auth_failures_total %llu\n",
        (unsigned long long)atomic_load(&m->auth_failures));
    put(&b, "# HELP facepay_rate_limited_total Requests refused by the per-key rate limit.\n"
            "# TYPE facepay_rate_limited_total counter\nfacepay_rate_limited_total %llu\n",
        (unsigned long long)atomic_load(&m->rate_limited));
    put(&b, "# HELP facepay_gallery_users Enrolled users in the in-memory gallery.\n"
            "# TYPE facepay_gallery_users gauge\nfacepay_gallery_users %lld\n",
        (long long)fp_gallery_size(s->gallery));
    put(&b, "# HELP facepay_workers Face-analysis workers.\n# TYPE facepay_workers gauge\nfacepay_workers %d\n",
        s->n_workers);
    put(&b, "# HELP facepay_workers_busy Face-analysis workers in use.\n# TYPE facepay_workers_busy gauge\n"
            "facepay_workers_busy %d\n",
        atomic_load(&m->workers_busy));
    pthread_mutex_lock(&s->sessions.lock);
    size_t n_sessions = s->sessions.n;
    pthread_mutex_unlock(&s->sessions.lock);
    put(&b, "# HELP facepay_sessions Challenge sessions in memory (expired ones are kept 10 minutes).\n"
            "# TYPE facepay_sessions gauge\nfacepay_sessions %zu\n",
        n_sessions);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
