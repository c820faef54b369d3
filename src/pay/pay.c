/*
 * pay.c - the fp_pay handle (options, derived secrets, clock), the per-API-key token buckets,
 * constant-time comparison, input validation and the names of the payment enums and statuses.
 *
 * Secrets: the API-key hash key is the caller's 32-byte secret or, by default, a sub-key derived
 * from the store's template key (keyed BLAKE2b of a constant: one secret less to deploy, at the
 * price that rotating the template key invalidates every API key). The phone-digit key is always
 * derived from the template key. Both live in sodium_malloc'ed memory (guard pages, mlock'ed,
 * zeroed on free) for the life of the handle.
 *
 * Rate limiting: one token bucket per API key id, in memory. Why not in the database: a counter
 * written on every request would serialise all requests on the write lock for no money benefit;
 * the cost is that a restart refills the buckets and each process has its own.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/core.h"
#include "pay/pay.h"

/* ------------------------------------------------------------------------------------------ */
/* Names                                                                                       */
/* ------------------------------------------------------------------------------------------ */

const char *fp_pay_strerror(fp_status status) {
    if (status == FP_ERR_PAY_CONFLICT) return "idempotency conflict";
    if (status == FP_ERR_PAY_UNAUTHORIZED) return "unauthorized";
    if (status == FP_ERR_PAY_RATE_LIMITED) return "rate limited";
    if (status == FP_ERR_PAY_STATE) return "not allowed in this state";
    return fp_strerror(status);
}

const char *fp_pay_state_name(fp_pay_state s) {
    switch (s) {
    case FP_PAY_AUTHORISED: return "authorised";
    case FP_PAY_CAPTURED: return "captured";
    case FP_PAY_REFUNDED: return "refunded";
    case FP_PAY_PARTIALLY_REFUNDED: return "partially_refunded";
    case FP_PAY_DECLINED: return "declined";
    }
    return "unknown";
}

const char *fp_pay_verdict_name(fp_pay_verdict v) {
    switch (v) {
    case FP_PAY_ACCEPT: return "accept";
    case FP_PAY_STEPUP: return "stepup";
    case FP_PAY_REFUSE: return "refuse";
    }
    return "unknown";
}

const char *fp_pay_stepup_name(fp_pay_stepup m) {
    switch (m) {
    case FP_STEPUP_NONE: return "none";
    case FP_STEPUP_PIN: return "pin";
    case FP_STEPUP_PHONE4: return "phone4";
    }
    return "unknown";
}

/* ------------------------------------------------------------------------------------------ */
/* Secrets and comparison                                                                      */
/* ------------------------------------------------------------------------------------------ */

static atomic_uint_fast64_t ct_compares;

int fp_pay_ct_equal(const void *a, const void *b, size_t n) {
    atomic_fetch_add(&ct_compares, 1);
    return sodium_memcmp(a, b, n) == 0;
}

uint64_t fp_pay_ct_compare_count(void) { return (uint64_t)atomic_load(&ct_compares); }

void fp_pay_derive_key(const uint8_t key[32], const char *purpose, uint8_t out[32]) {
    crypto_generichash(out, 32, (const unsigned char *)purpose, strlen(purpose), key, 32);
}

const uint8_t *fp_pay_api_hash_key(const fp_pay *pay) { return pay->secrets; }
const uint8_t *fp_pay_phone_hash_key(const fp_pay *pay) { return pay->secrets + 32; }

int64_t fp_pay_now(const fp_pay *pay) {
    if (pay->opt.clock_ms) return pay->opt.clock_ms(pay->opt.clock_ctx);
    return fp_store_now_ms();
}

/* ------------------------------------------------------------------------------------------ */
/* Validation                                                                                  */
/* ------------------------------------------------------------------------------------------ */

fp_status fp_pay_check_currency(const char *what, const char *c) {
    if (!c) return fp_fail(FP_ERR_INVALID_ARG, "%s: NULL currency", what);
    if (strlen(c) != 3 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' || c[2] < 'A' ||
        c[2] > 'Z')
        return fp_fail(FP_ERR_INVALID_ARG,
                       "%s: currency must be an ISO 4217 code (3 uppercase letters)", what);
    return FP_OK;
}

fp_status fp_pay_check_amount(const char *what, int64_t amount) {
    if (amount < 1 || amount > FP_PAY_MAX_AMOUNT)
        return fp_fail(FP_ERR_INVALID_ARG, "%s: amount %lld outside 1..%lld minor units", what,
                       (long long)amount, (long long)FP_PAY_MAX_AMOUNT);
    return FP_OK;
}

fp_status fp_pay_check_label(const char *what, const char *text, size_t max) {
    if (!text) return fp_fail(FP_ERR_INVALID_ARG, "%s: NULL", what);
    size_t n = strlen(text);
    if (n > max) return fp_fail(FP_ERR_INVALID_ARG, "%s: longer than %zu bytes", what, max);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)text[i] < 0x20 || (unsigned char)text[i] > 0x7e)
            return fp_fail(FP_ERR_INVALID_ARG, "%s: byte %zu is not printable ASCII", what, i);
    return FP_OK;
}

fp_status fp_pay_check_idem_key(const char *what, const char *key) {
    if (!key || !*key) return fp_fail(FP_ERR_INVALID_ARG, "%s: missing idempotency key", what);
    return fp_pay_check_label(what, key, FP_PAY_IDEM_MAX);
}

/* ------------------------------------------------------------------------------------------ */
/* SQL helpers                                                                                 */
/* ------------------------------------------------------------------------------------------ */

fp_status fp_pay_step_done(fp_store *s, sqlite3_stmt *st, const char *what) {
    int rc = sqlite3_step(st);
    fp_status res = rc == SQLITE_DONE ? FP_OK : fp_store_sqlfail(s, rc, what);
    sqlite3_finalize(st);
    return res;
}

void fp_pay_col_text(char *dst, size_t cap, sqlite3_stmt *st, int col) {
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
    if (n >= cap) n = cap - 1;
    if (n) memcpy(dst, t, n);
    dst[n] = '\0';
}

/* ------------------------------------------------------------------------------------------ */
/* Token buckets                                                                               */
/* ------------------------------------------------------------------------------------------ */

static unsigned bucket_slot(const char *key_id) {
    /* FNV-1a: key ids are random hex, so any spreading function will do. */
    uint32_t h = 2166136261u;
    for (const char *p = key_id; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
    return h % FP_PAY_BUCKETS;
}

int fp_pay_rate_take(fp_pay *pay, const char *key_id, int64_t now_ms) {
    if (!(pay->opt.rate_per_s > 0)) return 1; /* limit off */
    pthread_mutex_lock(&pay->rl_lock);
    unsigned slot = bucket_slot(key_id);
    fp_pay_bucket *b = pay->buckets[slot];
    while (b && strcmp(b->key_id, key_id) != 0) b = b->next;
    if (!b) {
        /* Buckets are only made for verified keys, so their number is bounded by the keys
         * issued, not by what clients send. */
        b = calloc(1, sizeof *b);
        if (!b) {
            pthread_mutex_unlock(&pay->rl_lock);
            return -1;
        }
        snprintf(b->key_id, sizeof b->key_id, "%s", key_id);
        b->tokens = pay->opt.rate_burst;
        b->last_ms = now_ms;
        b->next = pay->buckets[slot];
        pay->buckets[slot] = b;
    }
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * pay->opt.rate_per_s / 1000.0;
        if (b->tokens > pay->opt.rate_burst) b->tokens = pay->opt.rate_burst;
        b->last_ms = now_ms;
    }
    int ok = b->tokens >= 1.0;
    if (ok) b->tokens -= 1.0;
    pthread_mutex_unlock(&pay->rl_lock);
    return ok;
}

/* ------------------------------------------------------------------------------------------ */
/* Handle                                                                                      */
/* ------------------------------------------------------------------------------------------ */

fp_pay_options fp_pay_options_default(void) {
    fp_pay_options o;
    memset(&o, 0, sizeof o);
    o.policy = fp_pay_policy_default();
    o.api_secret = NULL;
    o.rate_per_s = 20;
    o.rate_burst = 40;
    o.pin_opslimit = crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE;
    o.pin_memlimit = crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE;
    o.default_per_payment_limit = 50000;
    o.default_daily_limit = 100000;
    o.stepup_ttl_ms = 5 * 60 * 1000;
    o.clock_ms = NULL;
    o.clock_ctx = NULL;
    return o;
}

static fp_status check_options(const fp_pay_options *o) {
    const fp_pay_policy *p = &o->policy;
    if (p->stepup_above < 0 || p->phone_stepup_max < 0 || !isfinite(p->min_margin) ||
        !isfinite(p->min_liveness) || !isfinite(p->refuse_liveness) || p->min_frames < 0 ||
        p->max_stepup_failures < 1 || p->max_stepup_failures > 1000)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_open: policy value out of range");
    if (!isfinite(o->rate_per_s) || !isfinite(o->rate_burst) ||
        (o->rate_per_s > 0 && o->rate_burst < 1))
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_open: rate_burst must be >= 1");
    if (o->pin_opslimit < crypto_pwhash_argon2id_OPSLIMIT_MIN ||
        o->pin_opslimit > crypto_pwhash_argon2id_OPSLIMIT_MAX ||
        o->pin_memlimit < crypto_pwhash_argon2id_MEMLIMIT_MIN ||
        o->pin_memlimit > crypto_pwhash_argon2id_MEMLIMIT_MAX)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_open: argon2id limits out of range");
    if (fp_pay_check_amount("fp_pay_open: default_per_payment_limit",
                            o->default_per_payment_limit) != FP_OK ||
        fp_pay_check_amount("fp_pay_open: default_daily_limit", o->default_daily_limit) != FP_OK)
        return FP_ERR_INVALID_ARG;
    if (o->stepup_ttl_ms < 1000)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_open: stepup_ttl_ms below one second");
    return FP_OK;
}

fp_status fp_pay_open(fp_store *store, const fp_pay_options *opts, fp_pay **out) {
    if (out) *out = NULL;
    if (!store || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_open: NULL argument");
    fp_status st = fp_store_crypto_init();
    if (st != FP_OK) return st;
    fp_pay_options o = opts ? *opts : fp_pay_options_default();
    st = check_options(&o);
    if (st != FP_OK) return st;
    int version = fp_store_schema_version(store);
    if (version < FP_PAY_SCHEMA_VERSION)
        return fp_fail(FP_ERR_UNSUPPORTED, "%s: schema version %d has no payment tables",
                       fp_store_path(store), version);

    fp_pay *pay = calloc(1, sizeof *pay);
    if (!pay) return fp_fail(FP_ERR_NOMEM, "fp_pay_open: out of memory");
    pay->secrets = sodium_malloc(64);
    if (!pay->secrets) {
        free(pay);
        return fp_fail(FP_ERR_NOMEM, "fp_pay_open: out of memory");
    }
    const uint8_t *key = fp_store_key(store);
    if (o.api_secret)
        memcpy(pay->secrets, o.api_secret, 32);
    else
        fp_pay_derive_key(key, "facepay api-key secret v1", pay->secrets);
    fp_pay_derive_key(key, "facepay phone4 v1", pay->secrets + 32);
    sodium_mprotect_readonly(pay->secrets);
    o.api_secret = NULL; /* never keep the caller's pointer */
    pay->opt = o;
    pay->store = store;
    pthread_mutex_init(&pay->rl_lock, NULL);
    *out = pay;
    return FP_OK;
}

void fp_pay_close(fp_pay *pay) {
    if (!pay) return;
    for (int i = 0; i < FP_PAY_BUCKETS; i++) {
        fp_pay_bucket *b = pay->buckets[i];
        while (b) {
            fp_pay_bucket *next = b->next;
            free(b);
            b = next;
        }
    }
    pthread_mutex_destroy(&pay->rl_lock);
    sodium_free(pay->secrets); /* zeroes before unmapping */
    free(pay);
}
