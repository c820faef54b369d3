/*
 * store.h - internal interface of the SQLite store for the modules that keep their own tables in
 * the same database (payments ledger, accounts, ...). The public calls are in facepay.h.
 *
 * What it owns: the connection, the per-handle lock, the transaction helpers, the schema
 * migrations and the template key. What it must never do: log or return plaintext embeddings or
 * key bytes outside the calls that exist to return them.
 *
 * Using the database from another module:
 *  - Write through fp_store_tx(): it takes the handle's lock, runs the function inside one
 *    BEGIN IMMEDIATE transaction (retrying when the database is busy) and commits when the
 *    function returns FP_OK, rolls back otherwise. Nested calls become savepoints.
 *  - Read through fp_store_read(): same lock, one deferred (snapshot) transaction.
 *  - fp_store_db() gives the raw sqlite3 handle: use it only inside those callbacks.
 *  - New tables come from a new entry at the end of the migration list in migrations.c.
 */
#ifndef FP_STORE_STORE_H
#define FP_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "facepay.h"

/* ------------------------------------------------------------------------------------------ */
/* Connection and transactions                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* The raw connection (foreign keys on, WAL, secure_delete, busy timeout already set). */
sqlite3 *fp_store_db(fp_store *s);

/* The path the store was opened with (for messages). */
const char *fp_store_path(const fp_store *s);

/* Body of a transaction. It may run more than once (after SQLITE_BUSY the whole transaction is
 * retried), so it must not have effects outside the database other than outputs in ctx that it
 * rewrites on every run. */
typedef fp_status (*fp_store_tx_fn)(fp_store *s, void *ctx);

/* Runs fn in one IMMEDIATE transaction with retry on SQLITE_BUSY; commit on FP_OK, rollback on
 * any other status (which is returned, with fn's message). Inside another fp_store_tx it runs as
 * a savepoint; inside fp_store_read it is refused (FP_ERR_INVALID_ARG): a read snapshot cannot be
 * upgraded safely. */
fp_status fp_store_tx(fp_store *s, fp_store_tx_fn fn, void *ctx);

/* Runs fn in one deferred read transaction (a consistent snapshot) under the handle's lock. */
fp_status fp_store_read(fp_store *s, fp_store_tx_fn fn, void *ctx);

/* Turns a failed SQLite result code into an fp_status plus a message "<path>: <what>: <sqlite
 * message>", and remembers SQLITE_BUSY so fp_store_tx retries the transaction. */
fp_status fp_store_sqlfail(fp_store *s, int rc, const char *what);

/* Prepares one statement (SQLITE_PREPARE_PERSISTENT is not used: statements are short-lived). */
fp_status fp_store_prepare(fp_store *s, const char *sql, sqlite3_stmt **st);

/* Executes SQL without results (one or more statements). */
fp_status fp_store_exec(fp_store *s, const char *sql);

/* Wall-clock time, unix milliseconds. */
int64_t fp_store_now_ms(void);

/* Appends an audit entry inside the caller's transaction (no validation: internal use). */
fp_status fp_store_audit_insert(fp_store *s, const char *user_id, const char *event,
                                const char *detail);

/* ------------------------------------------------------------------------------------------ */
/* Input validation (validate.c): each returns FP_OK or FP_ERR_INVALID_ARG with a message that   */
/* names `what` (e.g. "fp_store_user_add: id")                                                 */
/* ------------------------------------------------------------------------------------------ */

/* 1..FP_STORE_ID_MAX bytes of [A-Za-z0-9._@:+-], plus '/' when allow_slash (model ids). */
fp_status fp_store_check_id(const char *what, const char *id, int allow_slash);

/* Valid UTF-8 without control characters, at most max_bytes bytes (0 bytes allowed). */
fp_status fp_store_check_text(const char *what, const char *text, size_t max_bytes);

/* 1..31 bytes of [a-z0-9_.-] (audit event names). */
fp_status fp_store_check_event(const char *what, const char *event);

/* dim in 1..FP_STORE_MAX_DIM, every value finite, not all zero. */
fp_status fp_store_check_embedding(const char *what, const float *emb, int dim);

/* ------------------------------------------------------------------------------------------ */
/* Schema migrations (migrations.c)                                                            */
/* ------------------------------------------------------------------------------------------ */

/* One schema step. Versions run 1, 2, 3, ... with no gap; each is applied in its own IMMEDIATE
 * transaction together with PRAGMA user_version = version and a row in schema_migrations. */
typedef struct fp_migration {
    int version;
    const char *name; /* one line: what it adds */
    const char *sql;  /* DDL/DML, may be NULL when apply does the work */
    fp_status (*apply)(sqlite3 *db, char *err, size_t err_len); /* optional data step, after sql */
} fp_migration;

/* The store's list (migrations.c) and its length. */
extern const fp_migration fp_store_migrations[];
extern const int fp_store_n_migrations;

/* The schema version this build writes (the last entry's version). */
int fp_store_latest_version(void);

/* Brings db up to the last version of list[0..n): refuses a DB whose user_version is above it
 * (FP_ERR_UNSUPPORTED) or whose application_id belongs to another program (FP_ERR_FORMAT).
 * Exposed with an explicit list so tests can run synthetic migrations. */
fp_status fp_store_migrate(sqlite3 *db, const char *path, const fp_migration *list, int n);

/* Refuses a file whose application_id belongs to another program or that has tables but no
 * schema version (FP_ERR_FORMAT), or whose user_version is above `latest` (FP_ERR_UNSUPPORTED).
 * Reads only: run before anything that would change the file. */
fp_status fp_store_check_version(sqlite3 *db, const char *path, int latest);

/* 32-bit application_id written into the database header ("FPAY"). */
#define FP_STORE_APPLICATION_ID 0x46504159

/* ------------------------------------------------------------------------------------------ */
/* Record encryption (crypto.c)                                                                */
/* ------------------------------------------------------------------------------------------ */

#define FP_STORE_NONCE_BYTES 24 /* crypto_aead_xchacha20poly1305_ietf_NPUBBYTES */
#define FP_STORE_TAG_BYTES 16   /* crypto_aead_xchacha20poly1305_ietf_ABYTES */

/* Runs sodium_init() once per process; FP_ERR_INTERNAL if libsodium cannot start. */
fp_status fp_store_crypto_init(void);

/* Associated data of a record: a purpose tag plus the fields that pin it to one place. The fields
 * are length-prefixed so two different tuples never give the same bytes. */
typedef struct fp_store_ad {
    uint8_t bytes[256];
    size_t len;
} fp_store_ad;

/* AD of template row `template_id` of user_id (model and dim included). */
void fp_store_ad_template(fp_store_ad *ad, const char *user_id, int64_t template_id,
                          const char *model_id, int dim);
/* AD of the mean template of (user_id, model_id). */
void fp_store_ad_mean(fp_store_ad *ad, const char *user_id, const char *model_id, int dim);

/* Encrypts dim floats (stored little-endian) with a fresh random nonce. ct must hold
 * dim * 4 + FP_STORE_TAG_BYTES bytes. */
void fp_store_seal(const uint8_t key[32], const fp_store_ad *ad, const float *emb, int dim,
                   uint8_t nonce[FP_STORE_NONCE_BYTES], uint8_t *ct);

/* Decrypts and authenticates; returns 0 on success, -1 when authentication fails (emb is then
 * zeroed). ct_len must be dim * 4 + FP_STORE_TAG_BYTES (checked by the caller). */
int fp_store_unseal(const uint8_t key[32], const fp_store_ad *ad, const uint8_t *nonce,
                    const uint8_t *ct, size_t ct_len, float *emb, int dim);

/* Key check value stored in the DB: keyed BLAKE2b-256 of a constant. Reveals nothing about the
 * key, but tells a wrong key from data corruption at open time. */
void fp_store_key_check(const uint8_t key[32], uint8_t out[32]);

/* The store's key (locked memory owned by the handle). */
const uint8_t *fp_store_key(const fp_store *s);

#endif /* FP_STORE_STORE_H */
