/*
 * pay.h - internal interface shared by the files of src/pay/ (handle, ledger, merchants, policy,
 * evidence). The public calls are in facepay.h, section "Payments (src/pay/)".
 *
 * Rules every file here follows:
 *  - Money changes run inside fp_store_tx (one BEGIN IMMEDIATE transaction each); bodies may be
 *    retried after SQLITE_BUSY, so they only write the database and their own output struct
 *    (which they clear first). Slow or external work (argon2id, rate limiting) stays outside.
 *  - Secrets are compared with fp_pay_ct_equal (sodium_memcmp), never memcmp.
 *  - Amounts are int64 minor units; every addition is overflow-checked.
 */
#ifndef FP_PAY_PAY_H
#define FP_PAY_PAY_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "facepay.h"
#include "store/store.h"

/* Schema version this code needs (src/store/migrations.c): 2 added the pay_* tables, 3 the API
 * key scopes and top-up idempotency keys, 4 the frames of the replay guard. */
#define FP_PAY_SCHEMA_VERSION 4

#define FP_PAY_BUCKETS 256 /* hash slots of the per-key token buckets */

typedef struct fp_pay_bucket {
    char key_id[FP_PAY_KEY_ID_LEN + 1];
    double tokens;
    int64_t last_ms;
    struct fp_pay_bucket *next;
} fp_pay_bucket;

struct fp_pay {
    fp_store *store;         /* borrowed */
    fp_pay_options opt;      /* api_secret cleared: the copy lives in secrets */
    uint8_t *secrets;        /* sodium_malloc'ed: [0, 32) API-key hash key, [32, 64) phone key */
    pthread_mutex_t rl_lock; /* guards buckets */
    fp_pay_bucket *buckets[FP_PAY_BUCKETS];
};

/* The handle's clock (unix ms). */
int64_t fp_pay_now(const fp_pay *pay);

/* Keys for the keyed hashes of API keys and phone digits. */
const uint8_t *fp_pay_api_hash_key(const fp_pay *pay);
const uint8_t *fp_pay_phone_hash_key(const fp_pay *pay);

/* 32-byte sub-key for one purpose: keyed BLAKE2b-256(key, purpose). Keys for different purposes
 * are independent, so a leak of one (e.g. the API-key secret) says nothing about the others. */
void fp_pay_derive_key(const uint8_t key[32], const char *purpose, uint8_t out[32]);

/* Constant-time equality of two n-byte secrets (sodium_memcmp): 1 equal, 0 not. Every call is
 * counted so the tests can check that the verify paths go through it. */
int fp_pay_ct_equal(const void *a, const void *b, size_t n);
uint64_t fp_pay_ct_compare_count(void);

/* Token bucket: 1 when a token was taken, 0 when the bucket is empty, -1 out of memory. */
int fp_pay_rate_take(fp_pay *pay, const char *key_id, int64_t now_ms);

/* ------------------------------------------------------------------------------------------ */
/* Validation: FP_OK or FP_ERR_INVALID_ARG naming `what`                                       */
/* ------------------------------------------------------------------------------------------ */

fp_status fp_pay_check_currency(const char *what, const char *currency);
fp_status fp_pay_check_amount(const char *what, int64_t amount);
fp_status fp_pay_check_idem_key(const char *what, const char *key);
/* Printable ASCII of at most max bytes (0 allowed): evidence labels such as challenge, models. */
fp_status fp_pay_check_label(const char *what, const char *text, size_t max);

/* ------------------------------------------------------------------------------------------ */
/* SQL helpers (inside fp_store_tx / fp_store_read bodies)                                     */
/* ------------------------------------------------------------------------------------------ */

/* Steps a statement that returns no row, then finalizes it. */
fp_status fp_pay_step_done(fp_store *s, sqlite3_stmt *st, const char *what);

/* Copies a text column into a fixed buffer (the schema's CHECKs bound every column). */
void fp_pay_col_text(char *dst, size_t cap, sqlite3_stmt *st, int col);

/* ------------------------------------------------------------------------------------------ */
/* Evidence (evidence.c)                                                                       */
/* ------------------------------------------------------------------------------------------ */

/* Appends rec (seq, hash and prev_hash are assigned here; the other fields are the caller's) with
 * its optional JPEG thumbnail, encrypted under the store key and bound to the record. Runs inside
 * the caller's write transaction, so the record commits or rolls back with the payment it
 * describes. *seq receives the new record's number. */
fp_status fp_pay_evidence_append(fp_store *s, const fp_pay_evidence *rec, const uint8_t *jpeg,
                                 size_t jpeg_len, int64_t *seq);

/* Erases the encrypted thumbnails of a user's records (GDPR); *n (may be NULL) gets the count. */
fp_status fp_pay_evidence_erase_user(fp_store *s, const char *user_id, int *n);

#endif /* FP_PAY_PAY_H */
