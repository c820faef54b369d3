/*
 * evidence.c - the evidence chain: one append-only record per payment decision (what the models,
 * thresholds and scores were, the liveness and quality values, the challenge, the decision, an
 * encrypted face thumbnail), each hash-chained to the one before, and fp_audit_verify, which walks
 * the chain and names the first record that was edited or deleted.
 *
 * Canonical record bytes (what the hash covers), version 1:
 *     "facepay evidence v1\0", then for every column of EV_COLS in that order one value:
 *       NULL            'N'
 *       INTEGER         'I' + 8 bytes, big-endian two's complement
 *       REAL            'R' + 8 bytes, big-endian IEEE-754 binary64 (-0.0 written as +0.0)
 *       TEXT / BLOB     'T' / 'B' + 4-byte big-endian length + the bytes
 *     hash = SHA-256(prev_hash || canonical bytes), prev_hash of record 1 = 32 zero bytes.
 * Why this shape: type tags and length prefixes make the encoding injective (no two records give
 * the same bytes), and the values are the ones SQLite hands back (integers and doubles round-trip
 * exactly; NaN is stored as NULL, so it is written as NULL from the start). The writer and the
 * verifier build the same value list, one from C values, one from the row.
 *
 * The thumbnail ciphertext is not in the canonical bytes, its SHA-256 (thumb_hash) is: GDPR
 * erasure sets the ciphertext to NULL and the chain still verifies, while swapping a ciphertext
 * shows up as a thumbnail mismatch.
 *
 * SHA-256 alone is public: whoever can write the file could edit a record and re-hash everything
 * after it. So each record also carries mac = keyed BLAKE2b-256(hash) under a key derived from the
 * template key, which such a writer does not have. A head row (last seq and hash) catches the
 * deletion of the newest records; anchoring the head outside the DB (exporting it now and then)
 * is what makes even a key holder's rewrite visible.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/core.h"
#include "pay/pay.h"

/* ------------------------------------------------------------------------------------------ */
/* Columns and values                                                                          */
/* ------------------------------------------------------------------------------------------ */

typedef struct ev_col {
    const char *name;
    char type; /* 'I' integer, 'R' real, 'T' text, 'B' blob */
} ev_col;

/* Canonical order. Never reorder or insert: a new column means a new version of the encoding. */
static const ev_col EV_COLS[] = {
    {"seq", 'I'},         {"time_ms", 'I'},     {"event", 'T'},       {"payment_id", 'I'},
    {"merchant_id", 'T'}, {"terminal_id", 'T'}, {"user_id", 'T'},     {"amount", 'I'},
    {"currency", 'T'},    {"models", 'T'},      {"threshold", 'R'},   {"score", 'R'},
    {"margin", 'R'},      {"frames_used", 'I'}, {"votes", 'I'},       {"blink", 'I'},
    {"blinks", 'I'},      {"liveness", 'R'},    {"q_face_px", 'R'},   {"q_brightness", 'R'},
    {"q_contrast", 'R'},  {"q_sharpness", 'R'}, {"q_occlusion", 'R'}, {"q_pass", 'I'},
    {"challenge", 'T'},   {"decision", 'T'},    {"reasons", 'I'},     {"outcome", 'T'},
    {"thumb_hash", 'B'},
};
#define EV_N ((int)(sizeof EV_COLS / sizeof EV_COLS[0]))
/* Columns after the canonical ones, in this order in every SELECT / INSERT below. */
#define EV_EXTRA "thumb_nonce, thumb_ct, prev_hash, hash, mac"
enum { X_NONCE = 0, X_CT, X_PREV, X_HASH, X_MAC, X_N };

enum {
    C_SEQ,
    C_TIME,
    C_EVENT,
    C_PAYMENT,
    C_MERCHANT,
    C_TERMINAL,
    C_USER,
    C_AMOUNT,
    C_CURRENCY,
    C_MODELS,
    C_THRESHOLD,
    C_SCORE,
    C_MARGIN,
    C_FRAMES,
    C_VOTES,
    C_BLINK,
    C_BLINKS,
    C_LIVENESS,
    C_QFACE,
    C_QBRIGHT,
    C_QCONTRAST,
    C_QSHARP,
    C_QOCCL,
    C_QPASS,
    C_CHALLENGE,
    C_DECISION,
    C_REASONS,
    C_OUTCOME,
    C_THUMB_HASH
};
_Static_assert(C_THUMB_HASH + 1 == EV_N, "EV_COLS and the C_ indices must agree");

typedef struct ev_val {
    int null;
    int64_t i;
    double r;
    const uint8_t *p;
    size_t n;
} ev_val;

static const uint8_t ZERO32[32];

/* "seq, time_ms, ..., thumb_hash" */
static void column_list(char *buf, size_t cap) {
    size_t off = 0;
    for (int c = 0; c < EV_N; c++)
        off += (size_t)snprintf(buf + off, cap - off, "%s%s", c ? ", " : "", EV_COLS[c].name);
}

static void v_int(ev_val *v, int64_t x) {
    memset(v, 0, sizeof *v);
    v->i = x;
}

static void v_real(ev_val *v, double x) {
    memset(v, 0, sizeof *v);
    v->null = !isfinite(x); /* SQLite would store NaN as NULL anyway; infinities are not data */
    v->r = x;
}

static void v_text(ev_val *v, const char *s) {
    memset(v, 0, sizeof *v);
    v->p = (const uint8_t *)s;
    v->n = strlen(s);
}

/* The value list of a record about to be written. */
static void rec_values(const fp_pay_evidence *r, int64_t seq, const uint8_t *thumb_hash,
                       ev_val v[EV_N]) {
    v_int(&v[C_SEQ], seq);
    v_int(&v[C_TIME], r->time_ms);
    v_text(&v[C_EVENT], r->event);
    v_int(&v[C_PAYMENT], r->payment_id);
    v_text(&v[C_MERCHANT], r->merchant_id);
    v_text(&v[C_TERMINAL], r->terminal_id);
    v_text(&v[C_USER], r->user_id);
    v_int(&v[C_AMOUNT], r->amount);
    v_text(&v[C_CURRENCY], r->currency);
    v_text(&v[C_MODELS], r->models);
    v_real(&v[C_THRESHOLD], r->threshold);
    v_real(&v[C_SCORE], r->score);
    v_real(&v[C_MARGIN], r->margin);
    v_int(&v[C_FRAMES], r->frames_used);
    v_int(&v[C_VOTES], r->votes);
    v_int(&v[C_BLINK], r->blink);
    v_int(&v[C_BLINKS], r->blinks);
    v_real(&v[C_LIVENESS], r->liveness);
    v_real(&v[C_QFACE], r->q_face_px);
    v_real(&v[C_QBRIGHT], r->q_brightness);
    v_real(&v[C_QCONTRAST], r->q_contrast);
    v_real(&v[C_QSHARP], r->q_sharpness);
    v_real(&v[C_QOCCL], r->q_occlusion);
    v_int(&v[C_QPASS], r->q_pass);
    if (!r->has_quality)
        for (int c = C_QFACE; c <= C_QPASS; c++) v[c].null = 1;
    v_text(&v[C_CHALLENGE], r->challenge);
    v_text(&v[C_DECISION], r->decision);
    v_int(&v[C_REASONS], (int64_t)r->reasons);
    v_text(&v[C_OUTCOME], r->outcome);
    memset(&v[C_THUMB_HASH], 0, sizeof v[0]);
    v[C_THUMB_HASH].null = thumb_hash == NULL;
    v[C_THUMB_HASH].p = thumb_hash;
    v[C_THUMB_HASH].n = thumb_hash ? 32 : 0;
}

/* The value list of a row read with "SELECT <column_list>, ..." (pointers valid until the next
 * step or finalize). The declared type decides how a column is read, not the stored one. */
static void row_values(sqlite3_stmt *st, ev_val v[EV_N]) {
    for (int c = 0; c < EV_N; c++) {
        memset(&v[c], 0, sizeof v[c]);
        if (sqlite3_column_type(st, c) == SQLITE_NULL) {
            v[c].null = 1;
            continue;
        }
        switch (EV_COLS[c].type) {
        case 'I': v[c].i = sqlite3_column_int64(st, c); break;
        case 'R': v[c].r = sqlite3_column_double(st, c); break;
        case 'T':
            v[c].p = sqlite3_column_text(st, c);
            v[c].n = (size_t)sqlite3_column_bytes(st, c);
            break;
        default:
            v[c].p = sqlite3_column_blob(st, c);
            v[c].n = (size_t)sqlite3_column_bytes(st, c);
            break;
        }
    }
}

static void put_be64(crypto_hash_sha256_state *h, uint64_t x) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(x >> (56 - 8 * i));
    crypto_hash_sha256_update(h, b, 8);
}

/* hash = SHA-256(prev || canonical bytes of v). */
static void chain_hash(const uint8_t prev[32], const ev_val v[EV_N], uint8_t out[32]) {
    static const char magic[] = "facepay evidence v1"; /* the NUL is part of the prefix */
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, prev, 32);
    crypto_hash_sha256_update(&h, (const uint8_t *)magic, sizeof magic);
    for (int c = 0; c < EV_N; c++) {
        uint8_t tag = 'N';
        if (!v[c].null) tag = (uint8_t)EV_COLS[c].type;
        if (EV_COLS[c].type == 'R' && !v[c].null && isnan(v[c].r)) tag = 'N';
        crypto_hash_sha256_update(&h, &tag, 1);
        if (tag == 'I') {
            put_be64(&h, (uint64_t)v[c].i);
        } else if (tag == 'R') {
            double d = v[c].r == 0 ? 0.0 : v[c].r; /* one zero: SQLite may hand back +0 for -0 */
            uint64_t bits;
            memcpy(&bits, &d, 8);
            put_be64(&h, bits);
        } else if (tag == 'T' || tag == 'B') {
            uint8_t len[4] = {(uint8_t)(v[c].n >> 24), (uint8_t)(v[c].n >> 16),
                              (uint8_t)(v[c].n >> 8), (uint8_t)v[c].n};
            crypto_hash_sha256_update(&h, len, 4);
            if (v[c].n) crypto_hash_sha256_update(&h, v[c].p, v[c].n);
        }
    }
    crypto_hash_sha256_final(&h, out);
}

static void chain_mac(fp_store *s, const uint8_t hash[32], uint8_t out[32]) {
    uint8_t key[32];
    fp_pay_derive_key(fp_store_key(s), "facepay evidence mac v1", key);
    crypto_generichash(out, 32, hash, 32, key, 32);
    sodium_memzero(key, sizeof key);
}

/* Associated data of a record's thumbnail: pins the ciphertext to its record. */
static size_t thumb_ad(uint8_t ad[64], int64_t seq, int64_t payment_id) {
    static const char tag[] = "facepay evidence thumbnail v1";
    size_t n = sizeof tag; /* with its NUL */
    memcpy(ad, tag, n);
    for (int i = 0; i < 8; i++) ad[n++] = (uint8_t)((uint64_t)seq >> (8 * i));
    for (int i = 0; i < 8; i++) ad[n++] = (uint8_t)((uint64_t)payment_id >> (8 * i));
    return n;
}

static void thumb_hash_of(const uint8_t *nonce, const uint8_t *ct, size_t ct_len, uint8_t out[32]) {
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, nonce, FP_STORE_NONCE_BYTES);
    crypto_hash_sha256_update(&h, ct, ct_len);
    crypto_hash_sha256_final(&h, out);
}

/* ------------------------------------------------------------------------------------------ */
/* Append                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static fp_status read_head(fp_store *s, int64_t *seq, uint8_t hash[32]) {
    sqlite3_stmt *st = NULL;
    fp_status res =
        fp_store_prepare(s, "SELECT seq, hash FROM pay_evidence_head WHERE id = 1", &st);
    if (res != FP_OK) return res;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 1) == 32) {
        *seq = sqlite3_column_int64(st, 0);
        memcpy(hash, sqlite3_column_blob(st, 1), 32);
    } else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        res = fp_fail(FP_ERR_FORMAT, "%s: evidence chain head is missing or damaged",
                      fp_store_path(s));
    } else {
        res = fp_store_sqlfail(s, rc, "reading the evidence head");
    }
    sqlite3_finalize(st);
    return res;
}

fp_status fp_pay_evidence_append(fp_store *s, const fp_pay_evidence *rec, const uint8_t *jpeg,
                                 size_t jpeg_len, int64_t *seq_out) {
    if (jpeg && (jpeg_len == 0 || jpeg_len > FP_PAY_THUMB_MAX))
        return fp_fail(FP_ERR_TOO_LARGE, "evidence thumbnail of %zu bytes (1..%d)", jpeg_len,
                       FP_PAY_THUMB_MAX);
    int64_t last = 0;
    uint8_t prev[32];
    fp_status res = read_head(s, &last, prev);
    if (res != FP_OK) return res;
    const int64_t seq = last + 1;

    uint8_t nonce[FP_STORE_NONCE_BYTES], th[32];
    uint8_t *ct = NULL;
    size_t ct_len = 0;
    if (jpeg) {
        ct_len = jpeg_len + FP_STORE_TAG_BYTES;
        ct = malloc(ct_len);
        if (!ct) return fp_fail(FP_ERR_NOMEM, "evidence thumbnail: out of memory");
        uint8_t ad[64];
        size_t ad_len = thumb_ad(ad, seq, rec->payment_id);
        randombytes_buf(nonce, sizeof nonce);
        unsigned long long clen = 0;
        crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &clen, jpeg, jpeg_len, ad, ad_len, NULL,
                                                   nonce, fp_store_key(s));
        thumb_hash_of(nonce, ct, ct_len, th);
    }
    ev_val v[EV_N];
    rec_values(rec, seq, jpeg ? th : NULL, v);
    uint8_t hash[32], mac[32];
    chain_hash(prev, v, hash);
    chain_mac(s, hash, mac);

    char cols[1024], sql[2048];
    column_list(cols, sizeof cols);
    size_t off = (size_t)snprintf(sql, sizeof sql,
                                  "INSERT INTO pay_evidence(%s, " EV_EXTRA ") VALUES (", cols);
    for (int c = 0; c < EV_N + X_N; c++)
        off += (size_t)snprintf(sql + off, sizeof sql - off, c ? ", ?" : "?");
    snprintf(sql + off, sizeof sql - off, ")");
    sqlite3_stmt *st = NULL;
    res = fp_store_prepare(s, sql, &st);
    if (res != FP_OK) {
        free(ct);
        return res;
    }
    for (int c = 0; c < EV_N; c++) {
        int k = c + 1;
        if (v[c].null)
            sqlite3_bind_null(st, k);
        else if (EV_COLS[c].type == 'I')
            sqlite3_bind_int64(st, k, v[c].i);
        else if (EV_COLS[c].type == 'R')
            sqlite3_bind_double(st, k, v[c].r);
        else if (EV_COLS[c].type == 'T')
            sqlite3_bind_text(st, k, (const char *)v[c].p, (int)v[c].n, SQLITE_STATIC);
        else
            sqlite3_bind_blob(st, k, v[c].p, (int)v[c].n, SQLITE_STATIC);
    }
    if (ct) {
        sqlite3_bind_blob(st, EV_N + 1 + X_NONCE, nonce, (int)sizeof nonce, SQLITE_STATIC);
        sqlite3_bind_blob(st, EV_N + 1 + X_CT, ct, (int)ct_len, SQLITE_STATIC);
    }
    sqlite3_bind_blob(st, EV_N + 1 + X_PREV, prev, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, EV_N + 1 + X_HASH, hash, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, EV_N + 1 + X_MAC, mac, 32, SQLITE_STATIC);
    res = fp_pay_step_done(s, st, "appending an evidence record");
    free(ct);
    if (res != FP_OK) return res;

    res = fp_store_prepare(s, "UPDATE pay_evidence_head SET seq = ?, hash = ? WHERE id = 1", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_blob(st, 2, hash, 32, SQLITE_STATIC);
    res = fp_pay_step_done(s, st, "moving the evidence head");
    if (res == FP_OK && seq_out) *seq_out = seq;
    return res;
}

fp_status fp_pay_evidence_erase_user(fp_store *s, const char *user_id, int *n) {
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s,
                                     "UPDATE pay_evidence SET thumb_nonce = NULL, thumb_ct = NULL "
                                     "WHERE user_id = ? AND thumb_ct IS NOT NULL",
                                     &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
    res = fp_pay_step_done(s, st, "erasing evidence thumbnails");
    if (res == FP_OK && n) *n = sqlite3_changes(fp_store_db(s));
    return res;
}

/* ------------------------------------------------------------------------------------------ */
/* Read                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void copy_val_text(char *dst, size_t cap, const ev_val *v) {
    size_t n = v->null ? 0 : v->n;
    if (n >= cap) n = cap - 1;
    if (n) memcpy(dst, v->p, n);
    dst[n] = '\0';
}

static double val_real(const ev_val *v) { return v->null ? NAN : v->r; }

typedef struct get_ctx {
    int64_t seq;
    fp_pay_evidence *out;
} get_ctx;

static fp_status get_tx(fp_store *s, void *p) {
    get_ctx *c = p;
    char cols[1024], sql[1400];
    column_list(cols, sizeof cols);
    snprintf(sql, sizeof sql, "SELECT %s, " EV_EXTRA " FROM pay_evidence WHERE seq = ?", cols);
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s, sql, &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int64(st, 1, c->seq);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        res = rc == SQLITE_DONE
                  ? fp_fail(FP_ERR_NOT_FOUND, "evidence record %lld not found", (long long)c->seq)
                  : fp_store_sqlfail(s, rc, "reading an evidence record");
        sqlite3_finalize(st);
        return res;
    }
    ev_val v[EV_N];
    row_values(st, v);
    fp_pay_evidence *e = c->out;
    memset(e, 0, sizeof *e);
    e->seq = v[C_SEQ].i;
    e->time_ms = v[C_TIME].i;
    copy_val_text(e->event, sizeof e->event, &v[C_EVENT]);
    e->payment_id = v[C_PAYMENT].i;
    copy_val_text(e->merchant_id, sizeof e->merchant_id, &v[C_MERCHANT]);
    copy_val_text(e->terminal_id, sizeof e->terminal_id, &v[C_TERMINAL]);
    copy_val_text(e->user_id, sizeof e->user_id, &v[C_USER]);
    e->amount = v[C_AMOUNT].i;
    copy_val_text(e->currency, sizeof e->currency, &v[C_CURRENCY]);
    copy_val_text(e->models, sizeof e->models, &v[C_MODELS]);
    e->threshold = val_real(&v[C_THRESHOLD]);
    e->score = val_real(&v[C_SCORE]);
    e->margin = val_real(&v[C_MARGIN]);
    e->frames_used = (int)v[C_FRAMES].i;
    e->votes = (int)v[C_VOTES].i;
    e->blink = (int)v[C_BLINK].i;
    e->blinks = (int)v[C_BLINKS].i;
    e->liveness = val_real(&v[C_LIVENESS]);
    e->has_quality = !v[C_QPASS].null;
    e->q_face_px = val_real(&v[C_QFACE]);
    e->q_brightness = val_real(&v[C_QBRIGHT]);
    e->q_contrast = val_real(&v[C_QCONTRAST]);
    e->q_sharpness = val_real(&v[C_QSHARP]);
    e->q_occlusion = val_real(&v[C_QOCCL]);
    e->q_pass = (int)v[C_QPASS].i;
    copy_val_text(e->challenge, sizeof e->challenge, &v[C_CHALLENGE]);
    copy_val_text(e->decision, sizeof e->decision, &v[C_DECISION]);
    e->reasons = (uint32_t)v[C_REASONS].i;
    copy_val_text(e->outcome, sizeof e->outcome, &v[C_OUTCOME]);
    e->has_thumbnail = sqlite3_column_type(st, EV_N + X_CT) != SQLITE_NULL;
    if (sqlite3_column_bytes(st, EV_N + X_PREV) == 32)
        memcpy(e->prev_hash, sqlite3_column_blob(st, EV_N + X_PREV), 32);
    if (sqlite3_column_bytes(st, EV_N + X_HASH) == 32)
        memcpy(e->hash, sqlite3_column_blob(st, EV_N + X_HASH), 32);
    sqlite3_finalize(st);
    return FP_OK;
}

fp_status fp_pay_evidence_get(fp_store *store, int64_t seq, fp_pay_evidence *out) {
    if (!store || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_evidence_get: NULL argument");
    memset(out, 0, sizeof *out);
    get_ctx c = {seq, out};
    return fp_store_read(store, get_tx, &c);
}

typedef struct thumb_ctx {
    int64_t seq;
    uint8_t *jpeg;
    size_t len;
} thumb_ctx;

static fp_status thumb_tx(fp_store *s, void *p) {
    thumb_ctx *c = p;
    free(c->jpeg); /* a retried body starts over */
    c->jpeg = NULL;
    c->len = 0;
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(
        s, "SELECT payment_id, thumb_nonce, thumb_ct FROM pay_evidence WHERE seq = ?", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int64(st, 1, c->seq);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        res = rc == SQLITE_DONE
                  ? fp_fail(FP_ERR_NOT_FOUND, "evidence record %lld not found", (long long)c->seq)
                  : fp_store_sqlfail(s, rc, "reading an evidence thumbnail");
        sqlite3_finalize(st);
        return res;
    }
    int64_t payment_id = sqlite3_column_int64(st, 0);
    const uint8_t *nonce = sqlite3_column_blob(st, 1);
    int nonce_len = sqlite3_column_bytes(st, 1);
    const uint8_t *ct = sqlite3_column_blob(st, 2);
    size_t ct_len = (size_t)sqlite3_column_bytes(st, 2);
    if (!ct || sqlite3_column_type(st, 2) == SQLITE_NULL) {
        sqlite3_finalize(st);
        return fp_fail(FP_ERR_NOT_FOUND,
                       "evidence record %lld has no thumbnail (none given, or erased)",
                       (long long)c->seq);
    }
    if (nonce_len != FP_STORE_NONCE_BYTES || ct_len <= FP_STORE_TAG_BYTES) {
        sqlite3_finalize(st);
        return fp_fail(FP_ERR_FORMAT, "evidence record %lld: thumbnail is damaged",
                       (long long)c->seq);
    }
    uint8_t *pt = malloc(ct_len - FP_STORE_TAG_BYTES);
    if (!pt) {
        sqlite3_finalize(st);
        return fp_fail(FP_ERR_NOMEM, "evidence thumbnail: out of memory");
    }
    uint8_t ad[64];
    size_t ad_len = thumb_ad(ad, c->seq, payment_id);
    unsigned long long got = 0;
    int ok = crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &got, NULL, ct, ct_len, ad, ad_len,
                                                        nonce, fp_store_key(s)) == 0;
    sqlite3_finalize(st);
    if (!ok) {
        free(pt);
        return fp_fail(FP_ERR_FORMAT,
                       "evidence record %lld: thumbnail fails authentication (tampered or moved)",
                       (long long)c->seq);
    }
    c->jpeg = pt;
    c->len = (size_t)got;
    return FP_OK;
}

fp_status fp_pay_evidence_thumbnail(fp_store *store, int64_t seq, uint8_t **jpeg, size_t *len) {
    if (jpeg) *jpeg = NULL;
    if (len) *len = 0;
    if (!store || !jpeg || !len)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_evidence_thumbnail: NULL argument");
    thumb_ctx c = {seq, NULL, 0};
    fp_status st = fp_store_read(store, thumb_tx, &c);
    if (st != FP_OK) {
        free(c.jpeg);
        return st;
    }
    *jpeg = c.jpeg;
    *len = c.len;
    return FP_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Verify                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void report(fp_audit_report *r, fp_audit_problem problem, int64_t seq, const char *what) {
    r->ok = 0;
    r->problem = problem;
    r->first_bad = seq;
    snprintf(r->message, sizeof r->message, "evidence record %lld: %s", (long long)seq, what);
}

static fp_status verify_tx(fp_store *s, void *p) {
    fp_audit_report *r = p;
    memset(r, 0, sizeof *r);
    r->ok = 1;
    char cols[1024], sql[1400];
    column_list(cols, sizeof cols);
    snprintf(sql, sizeof sql, "SELECT %s, " EV_EXTRA " FROM pay_evidence ORDER BY seq", cols);
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s, sql, &st);
    if (res != FP_OK) return res;
    uint8_t key[32];
    fp_pay_derive_key(fp_store_key(s), "facepay evidence mac v1", key);
    uint8_t prev[32];
    memcpy(prev, ZERO32, 32);
    int64_t expect = 1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ev_val v[EV_N];
        row_values(st, v);
        r->records++;
        const int64_t seq = v[C_SEQ].i;
        if (seq != expect) {
            /* Rows come in seq order, so a larger seq means expect .. seq-1 are gone. */
            report(r, FP_AUDIT_DELETED, expect,
                   seq > expect ? "missing (deleted)" : "missing (sequence rewritten)");
            break;
        }
        const uint8_t *stored_prev = sqlite3_column_blob(st, EV_N + X_PREV);
        const uint8_t *stored_hash = sqlite3_column_blob(st, EV_N + X_HASH);
        const uint8_t *stored_mac = sqlite3_column_blob(st, EV_N + X_MAC);
        if (sqlite3_column_bytes(st, EV_N + X_PREV) != 32 ||
            sqlite3_column_bytes(st, EV_N + X_HASH) != 32 ||
            sqlite3_column_bytes(st, EV_N + X_MAC) != 32) {
            report(r, FP_AUDIT_EDITED, seq, "hash columns damaged");
            break;
        }
        uint8_t hash[32], mac[32];
        chain_hash(prev, v, hash);
        if (memcmp(stored_prev, prev, 32) != 0) {
            report(r, FP_AUDIT_EDITED, seq, "does not link to the record before it");
            break;
        }
        if (memcmp(stored_hash, hash, 32) != 0) {
            report(r, FP_AUDIT_EDITED, seq, "content does not match its hash (edited)");
            break;
        }
        crypto_generichash(mac, 32, hash, 32, key, 32);
        if (!fp_pay_ct_equal(stored_mac, mac, 32)) {
            report(r, FP_AUDIT_EDITED, seq, "MAC does not verify (re-hashed without the key)");
            break;
        }
        if (sqlite3_column_type(st, EV_N + X_CT) != SQLITE_NULL) {
            const uint8_t *nonce = sqlite3_column_blob(st, EV_N + X_NONCE);
            const uint8_t *ct = sqlite3_column_blob(st, EV_N + X_CT);
            size_t ct_len = (size_t)sqlite3_column_bytes(st, EV_N + X_CT);
            uint8_t th[32];
            if (!nonce || sqlite3_column_bytes(st, EV_N + X_NONCE) != FP_STORE_NONCE_BYTES ||
                v[C_THUMB_HASH].null || v[C_THUMB_HASH].n != 32 || !ct) {
                report(r, FP_AUDIT_THUMBNAIL, seq, "thumbnail without a valid hash or nonce");
                break;
            }
            thumb_hash_of(nonce, ct, ct_len, th);
            if (memcmp(th, v[C_THUMB_HASH].p, 32) != 0) {
                report(r, FP_AUDIT_THUMBNAIL, seq, "thumbnail was replaced");
                break;
            }
        }
        memcpy(prev, hash, 32);
        expect++;
    }
    sodium_memzero(key, sizeof key);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        res = fp_store_sqlfail(s, rc, "reading the evidence");
    sqlite3_finalize(st);
    if (res != FP_OK || !r->ok) return res;

    int64_t head_seq = 0;
    uint8_t head_hash[32];
    res = read_head(s, &head_seq, head_hash);
    if (res != FP_OK) return res;
    if (head_seq > expect - 1)
        report(r, FP_AUDIT_TRUNCATED, expect, "missing (the newest records were deleted)");
    else if (head_seq != expect - 1 || memcmp(head_hash, prev, 32) != 0)
        report(r, FP_AUDIT_EDITED, expect - 1, "the chain head does not match the last record");
    return FP_OK;
}

fp_status fp_audit_verify(fp_store *store, fp_audit_report *out) {
    if (!store || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_audit_verify: NULL argument");
    memset(out, 0, sizeof *out);
    return fp_store_read(store, verify_tx, out);
}
