/*
 * merchants.c - merchants, their terminals and their API keys.
 *
 * API keys look like "fpk_<16 hex>_<43 base64url>": the hex part is a public key id (for logs and
 * revocation, and to find the row without scanning), the rest 32 random bytes. The database keeps
 * only BLAKE2b-256(key text) keyed with the server secret (pay.c), so a copy of the file does not
 * give working keys, and a plain hash of a 256-bit random secret needs no slow password hash.
 * Verification compares in constant time and does the same work for an unknown key id (against a
 * dummy hash), then charges the key's token bucket.
 *
 * Scopes are stored with the key (a bit set, FP_PAY_SCOPE_*) and handed back by verification: which
 * scope an operation needs is the HTTP layer's knowledge, so the check is made there, per route.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "core/core.h"
#include "pay/pay.h"

#define KEY_PREFIX "fpk_"
#define KEY_SECRET_B64 43 /* base64url, no padding, of 32 bytes */
_Static_assert(sizeof KEY_PREFIX - 1 + FP_PAY_KEY_ID_LEN + 1 + KEY_SECRET_B64 == FP_PAY_KEY_LEN,
               "API key layout");

/* ------------------------------------------------------------------------------------------ */
/* Merchants and terminals                                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct ids_ctx {
    const char *merchant, *terminal, *name;
    int64_t now;
} ids_ctx;

static fp_status merchant_exists(fp_store *s, const char *merchant_id) {
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s, "SELECT 1 FROM pay_merchants WHERE id = ?", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, merchant_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        res = fp_fail(FP_ERR_NOT_FOUND, "merchant %s not found", merchant_id);
    else if (rc != SQLITE_ROW)
        res = fp_store_sqlfail(s, rc, "reading a merchant");
    sqlite3_finalize(st);
    return res;
}

static fp_status merchant_create_tx(fp_store *s, void *p) {
    ids_ctx *c = p;
    fp_status res = merchant_exists(s, c->merchant);
    if (res == FP_OK) return fp_fail(FP_ERR_INVALID_ARG, "merchant %s already exists", c->merchant);
    if (res != FP_ERR_NOT_FOUND) return res;
    sqlite3_stmt *st = NULL;
    res = fp_store_prepare(s, "INSERT INTO pay_merchants(id, name, created_ms) VALUES (?, ?, ?)",
                           &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, c->merchant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, c->now);
    return fp_pay_step_done(s, st, "adding a merchant");
}

fp_status fp_pay_merchant_create(fp_pay *pay, const char *merchant_id, const char *name) {
    if (!pay) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_merchant_create: NULL handle");
    fp_status st = fp_store_check_id("fp_pay_merchant_create: merchant", merchant_id, 0);
    if (st == FP_OK)
        st = fp_store_check_text("fp_pay_merchant_create: name", name, FP_STORE_NAME_MAX);
    if (st != FP_OK) return st;
    ids_ctx c = {merchant_id, NULL, name, fp_pay_now(pay)};
    return fp_store_tx(pay->store, merchant_create_tx, &c);
}

static fp_status terminal_create_tx(fp_store *s, void *p) {
    ids_ctx *c = p;
    fp_status res = merchant_exists(s, c->merchant);
    if (res != FP_OK) return res;
    sqlite3_stmt *st = NULL;
    res = fp_store_prepare(s, "SELECT 1 FROM pay_terminals WHERE merchant_id = ? AND id = ?", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, c->merchant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->terminal, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return fp_fail(FP_ERR_INVALID_ARG, "terminal %s of merchant %s already exists", c->terminal,
                       c->merchant);
    if (rc != SQLITE_DONE) return fp_store_sqlfail(s, rc, "reading a terminal");
    res = fp_store_prepare(s,
                           "INSERT INTO pay_terminals(merchant_id, id, name, active, created_ms) "
                           "VALUES (?, ?, ?, 1, ?)",
                           &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, c->merchant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->terminal, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, c->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, c->now);
    return fp_pay_step_done(s, st, "adding a terminal");
}

fp_status fp_pay_terminal_create(fp_pay *pay, const char *merchant_id, const char *terminal_id,
                                 const char *name) {
    if (!pay) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_terminal_create: NULL handle");
    fp_status st = fp_store_check_id("fp_pay_terminal_create: merchant", merchant_id, 0);
    if (st == FP_OK) st = fp_store_check_id("fp_pay_terminal_create: terminal", terminal_id, 0);
    if (st == FP_OK)
        st = fp_store_check_text("fp_pay_terminal_create: name", name, FP_STORE_NAME_MAX);
    if (st != FP_OK) return st;
    ids_ctx c = {merchant_id, terminal_id, name, fp_pay_now(pay)};
    return fp_store_tx(pay->store, terminal_create_tx, &c);
}

static fp_status terminal_disable_tx(fp_store *s, void *p) {
    ids_ctx *c = p;
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(
        s, "UPDATE pay_terminals SET active = 0 WHERE merchant_id = ? AND id = ?", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, c->merchant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->terminal, -1, SQLITE_STATIC);
    res = fp_pay_step_done(s, st, "disabling a terminal");
    if (res == FP_OK && sqlite3_changes(fp_store_db(s)) == 0)
        res = fp_fail(FP_ERR_NOT_FOUND, "terminal %s of merchant %s not found", c->terminal,
                      c->merchant);
    return res;
}

fp_status fp_pay_terminal_disable(fp_pay *pay, const char *merchant_id, const char *terminal_id) {
    if (!pay) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_terminal_disable: NULL handle");
    fp_status st = fp_store_check_id("fp_pay_terminal_disable: merchant", merchant_id, 0);
    if (st == FP_OK) st = fp_store_check_id("fp_pay_terminal_disable: terminal", terminal_id, 0);
    if (st != FP_OK) return st;
    ids_ctx c = {merchant_id, terminal_id, NULL, 0};
    return fp_store_tx(pay->store, terminal_disable_tx, &c);
}

/* ------------------------------------------------------------------------------------------ */
/* API keys                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* Keyed hash of the whole key text, with a domain prefix so the same secret used for another
 * purpose could never produce these values. */
static void key_hash(const fp_pay *pay, const char *key, uint8_t out[32]) {
    static const char domain[] = "facepay api key v1";
    crypto_generichash_state h;
    crypto_generichash_init(&h, fp_pay_api_hash_key(pay), 32, 32);
    crypto_generichash_update(&h, (const unsigned char *)domain, sizeof domain);
    crypto_generichash_update(&h, (const unsigned char *)key, strlen(key));
    crypto_generichash_final(&h, out, 32);
}

/* Strict shape check; copies the key id out. 0 when well-formed. */
static int parse_key(const char *key, char id[FP_PAY_KEY_ID_LEN + 1]) {
    if (!key || strnlen(key, FP_PAY_KEY_LEN + 1) != FP_PAY_KEY_LEN) return -1;
    if (memcmp(key, KEY_PREFIX, sizeof KEY_PREFIX - 1) != 0) return -1;
    const char *p = key + sizeof KEY_PREFIX - 1;
    for (int i = 0; i < FP_PAY_KEY_ID_LEN; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) return -1;
    if (p[FP_PAY_KEY_ID_LEN] != '_') return -1;
    const char *b = p + FP_PAY_KEY_ID_LEN + 1;
    for (int i = 0; i < KEY_SECRET_B64; i++) {
        char ch = b[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return -1;
    }
    memcpy(id, p, FP_PAY_KEY_ID_LEN);
    id[FP_PAY_KEY_ID_LEN] = '\0';
    return 0;
}

static const struct {
    unsigned bit;
    const char *name;
} SCOPES[] = {
    {FP_PAY_SCOPE_PAYMENTS, "payments"},
    {FP_PAY_SCOPE_REFUNDS, "refunds"},
    {FP_PAY_SCOPE_CUSTOMERS, "customers"},
};

fp_status fp_pay_scopes_parse(const char *text, unsigned *scopes) {
    if (scopes) *scopes = 0;
    if (!text || !scopes) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_scopes_parse: NULL argument");
    unsigned bits = 0;
    for (const char *p = text; *p;) {
        p += strspn(p, ", ");
        size_t n = strcspn(p, ", ");
        if (!n) break;
        unsigned bit = 0;
        if (n == 3 && !strncasecmp(p, "all", 3)) bit = FP_PAY_SCOPE_ALL;
        for (size_t i = 0; i < sizeof SCOPES / sizeof SCOPES[0]; i++)
            if (strlen(SCOPES[i].name) == n && !strncasecmp(p, SCOPES[i].name, n)) bit = SCOPES[i].bit;
        if (!bit)
            return fp_fail(FP_ERR_INVALID_ARG,
                           "unknown scope \"%.*s\" (scopes: payments, refunds, customers, all)",
                           (int)(n > 32 ? 32 : n), p);
        bits |= bit;
        p += n;
    }
    if (!bits)
        return fp_fail(FP_ERR_INVALID_ARG, "no scope given (scopes: payments, refunds, customers, all)");
    *scopes = bits;
    return FP_OK;
}

void fp_pay_scopes_format(unsigned scopes, char *buf, size_t cap) {
    if (!buf || !cap) return;
    buf[0] = '\0';
    size_t len = 0;
    for (size_t i = 0; i < sizeof SCOPES / sizeof SCOPES[0]; i++) {
        if (!(scopes & SCOPES[i].bit)) continue;
        int n = snprintf(buf + len, cap - len, "%s%s", len ? "," : "", SCOPES[i].name);
        if (n < 0 || (size_t)n >= cap - len) {
            buf[len] = '\0'; /* never a cut name: a partial list is still a list of real scopes */
            return;
        }
        len += (size_t)n;
    }
}

typedef struct key_issue_ctx {
    const char *merchant;
    const char *id;
    const uint8_t *hash;
    unsigned scopes;
    int64_t now;
} key_issue_ctx;

static fp_status key_issue_tx(fp_store *s, void *p) {
    key_issue_ctx *c = p;
    fp_status res = merchant_exists(s, c->merchant);
    if (res != FP_OK) return res;
    sqlite3_stmt *st = NULL;
    res = fp_store_prepare(s,
                           "INSERT INTO pay_api_keys(id, merchant_id, hash, created_ms, scopes) "
                           "VALUES (?, ?, ?, ?, ?)",
                           &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->merchant, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, c->hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, c->now);
    sqlite3_bind_int64(st, 5, (int64_t)c->scopes);
    return fp_pay_step_done(s, st, "storing an API key");
}

fp_status fp_pay_key_issue(fp_pay *pay, const char *merchant_id, char key[FP_PAY_KEY_LEN + 1],
                           char key_id[FP_PAY_KEY_ID_LEN + 1]) {
    return fp_pay_key_issue_scoped(pay, merchant_id, FP_PAY_SCOPE_ALL, key, key_id);
}

fp_status fp_pay_key_issue_scoped(fp_pay *pay, const char *merchant_id, unsigned scopes,
                                  char key[FP_PAY_KEY_LEN + 1], char key_id[FP_PAY_KEY_ID_LEN + 1]) {
    if (key) key[0] = '\0';
    if (key_id) key_id[0] = '\0';
    if (!pay || !key) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_key_issue: NULL argument");
    if (scopes < 1 || scopes > FP_PAY_SCOPE_ALL)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_key_issue: scopes 0x%x are not 1..0x%x", scopes,
                       FP_PAY_SCOPE_ALL);
    fp_status st = fp_store_check_id("fp_pay_key_issue: merchant", merchant_id, 0);
    if (st != FP_OK) return st;
    uint8_t idb[FP_PAY_KEY_ID_LEN / 2], secret[32], hash[32];
    char id[FP_PAY_KEY_ID_LEN + 1], b64[KEY_SECRET_B64 + 1];
    randombytes_buf(idb, sizeof idb);
    randombytes_buf(secret, sizeof secret);
    sodium_bin2hex(id, sizeof id, idb, sizeof idb);
    sodium_bin2base64(b64, sizeof b64, secret, sizeof secret,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(key, FP_PAY_KEY_LEN + 1, "%s%s_%s", KEY_PREFIX, id, b64);
    sodium_memzero(secret, sizeof secret);
    sodium_memzero(b64, sizeof b64);
    key_hash(pay, key, hash);
    key_issue_ctx c = {merchant_id, id, hash, scopes, fp_pay_now(pay)};
    st = fp_store_tx(pay->store, key_issue_tx, &c);
    if (st != FP_OK) {
        sodium_memzero(key, FP_PAY_KEY_LEN + 1);
        return st;
    }
    if (key_id) snprintf(key_id, FP_PAY_KEY_ID_LEN + 1, "%s", id);
    return FP_OK;
}

typedef struct key_row_ctx {
    const char *id;
    int found, revoked;
    unsigned scopes;
    uint8_t hash[32];
    char merchant[FP_STORE_ID_MAX + 1];
} key_row_ctx;

static fp_status key_row_tx(fp_store *s, void *p) {
    key_row_ctx *c = p;
    c->found = c->revoked = 0;
    c->scopes = 0;
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s,
                                     "SELECT merchant_id, hash, revoked_ms IS NOT NULL, scopes "
                                     "FROM pay_api_keys WHERE id = ?",
                                     &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 1) == 32) {
        c->found = 1;
        fp_pay_col_text(c->merchant, sizeof c->merchant, st, 0);
        memcpy(c->hash, sqlite3_column_blob(st, 1), 32);
        c->revoked = sqlite3_column_int(st, 2);
        /* the schema's CHECK bounds it; masking keeps a damaged row from granting unknown bits */
        c->scopes = (unsigned)sqlite3_column_int64(st, 3) & FP_PAY_SCOPE_ALL;
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        res = fp_store_sqlfail(s, rc, "reading an API key");
    }
    sqlite3_finalize(st);
    return res;
}

fp_status fp_pay_key_verify(fp_pay *pay, const char *key, char merchant_id[FP_STORE_ID_MAX + 1],
                            char key_id[FP_PAY_KEY_ID_LEN + 1]) {
    return fp_pay_key_verify_scoped(pay, key, merchant_id, key_id, NULL);
}

fp_status fp_pay_key_verify_scoped(fp_pay *pay, const char *key,
                                   char merchant_id[FP_STORE_ID_MAX + 1],
                                   char key_id[FP_PAY_KEY_ID_LEN + 1], unsigned *scopes) {
    if (merchant_id) merchant_id[0] = '\0';
    if (key_id) key_id[0] = '\0';
    if (scopes) *scopes = 0;
    if (!pay || !merchant_id)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_key_verify: NULL argument");
    char id[FP_PAY_KEY_ID_LEN + 1];
    /* The key text itself is never echoed into messages: it is a credential. */
    if (parse_key(key, id) != 0) return fp_fail(FP_ERR_PAY_UNAUTHORIZED, "API key is malformed");
    key_row_ctx c;
    memset(&c, 0, sizeof c);
    c.id = id;
    fp_status st = fp_store_read(pay->store, key_row_tx, &c);
    if (st != FP_OK) return st;
    uint8_t want[32];
    key_hash(pay, key, want);
    /* Unknown id: compare against a dummy anyway, so both paths do the same work. */
    static const uint8_t dummy[32] = {0};
    int equal = fp_pay_ct_equal(want, c.found ? c.hash : dummy, 32) && c.found;
    sodium_memzero(want, sizeof want);
    if (!equal) return fp_fail(FP_ERR_PAY_UNAUTHORIZED, "API key %s is not valid", id);
    if (c.revoked) return fp_fail(FP_ERR_PAY_UNAUTHORIZED, "API key %s was revoked", id);
    int took = fp_pay_rate_take(pay, id, fp_pay_now(pay));
    if (took < 0) return fp_fail(FP_ERR_NOMEM, "fp_pay_key_verify: out of memory");
    if (took == 0) return fp_fail(FP_ERR_PAY_RATE_LIMITED, "API key %s: rate limit reached", id);
    snprintf(merchant_id, FP_STORE_ID_MAX + 1, "%s", c.merchant);
    if (key_id) snprintf(key_id, FP_PAY_KEY_ID_LEN + 1, "%s", id);
    if (scopes) *scopes = c.scopes;
    return FP_OK;
}

typedef struct key_revoke_ctx {
    const char *id;
    int64_t now;
} key_revoke_ctx;

static fp_status key_revoke_tx(fp_store *s, void *p) {
    key_revoke_ctx *c = p;
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s, "SELECT 1 FROM pay_api_keys WHERE id = ?", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) return fp_fail(FP_ERR_NOT_FOUND, "API key %s not found", c->id);
    if (rc != SQLITE_ROW) return fp_store_sqlfail(s, rc, "reading an API key");
    res = fp_store_prepare(
        s, "UPDATE pay_api_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int64(st, 1, c->now);
    sqlite3_bind_text(st, 2, c->id, -1, SQLITE_STATIC);
    return fp_pay_step_done(s, st, "revoking an API key");
}

fp_status fp_pay_key_revoke(fp_pay *pay, const char *key_id) {
    if (!pay || !key_id) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_key_revoke: NULL argument");
    char id[FP_PAY_KEY_ID_LEN + 1];
    if (strnlen(key_id, FP_PAY_KEY_ID_LEN + 1) != FP_PAY_KEY_ID_LEN)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_key_revoke: key id must be %d hex characters",
                       FP_PAY_KEY_ID_LEN);
    for (int i = 0; i < FP_PAY_KEY_ID_LEN; i++) {
        char ch = key_id[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_key_revoke: key id must be lowercase hex");
        id[i] = ch;
    }
    id[FP_PAY_KEY_ID_LEN] = '\0';
    key_revoke_ctx c = {id, fp_pay_now(pay)};
    return fp_store_tx(pay->store, key_revoke_tx, &c);
}
