/*
 * store.c - opening and closing the SQLite store, its connection settings, the transaction
 * helpers every store call (and later the ledger) goes through, and the key check.
 *
 * Connection settings, and why:
 *  - WAL: readers never block the writer, and a payment terminal reads the gallery while an
 *    enrollment writes.
 *  - synchronous=FULL: a committed payment or enrollment survives a power cut.
 *  - foreign_keys=ON: SQLite leaves them off by default, per connection.
 *  - secure_delete=ON: freed pages are overwritten with zeros, so a deleted template does not
 *    linger in free pages of the file.
 *  - busy_timeout: another process holding the write lock makes us wait, not fail.
 *  - defensive mode, trusted_schema=OFF, cell_size_check: a hostile file cannot make the
 *    connection corrupt it further or run functions hidden in the schema.
 * One handle is safe to share between threads: every call takes the handle's (recursive) lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "core/core.h"
#include "store/store.h"

#define BUSY_TIMEOUT_MS 5000
#define TX_ATTEMPTS 6 /* whole-transaction attempts after SQLITE_BUSY (each after the timeout) */

struct fp_store {
    sqlite3 *db;
    char *path;
    uint8_t *key;         /* 32 bytes in sodium_malloc'ed (guarded, mlock'ed) memory */
    pthread_mutex_t lock; /* recursive: a tx body may call other store functions */
    int depth;            /* nesting of fp_store_tx / fp_store_read on this handle */
    int reading;          /* > 0 inside fp_store_read: writes are refused */
    int busy;             /* set by fp_store_sqlfail on SQLITE_BUSY: retry the transaction */
    int savepoint;        /* counter for nested savepoint names */
};

sqlite3 *fp_store_db(fp_store *s) { return s ? s->db : NULL; }
const char *fp_store_path(const fp_store *s) { return s ? s->path : ""; }
const uint8_t *fp_store_key(const fp_store *s) { return s->key; }

int64_t fp_store_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------------------------ */
/* SQL helpers                                                                                 */
/* ------------------------------------------------------------------------------------------ */

fp_status fp_store_sqlfail(fp_store *s, int rc, const char *what) {
    fp_status st;
    switch (rc & 0xff) {
    case SQLITE_NOMEM: st = FP_ERR_NOMEM; break;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT: st = FP_ERR_FORMAT; break;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
    case SQLITE_RANGE: st = FP_ERR_INVALID_ARG; break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        s->busy = 1;
        st = FP_ERR_IO;
        break;
    default: st = FP_ERR_IO; break;
    }
    return fp_fail(st, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

fp_status fp_store_prepare(fp_store *s, const char *sql, sqlite3_stmt **st) {
    *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) return fp_store_sqlfail(s, rc, "preparing a statement");
    return FP_OK;
}

fp_status fp_store_exec(fp_store *s, const char *sql) {
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) return fp_store_sqlfail(s, rc, "executing SQL");
    return FP_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Transactions                                                                                */
/* ------------------------------------------------------------------------------------------ */

static void backoff(int attempt) {
    /* 10, 20, 40, ... ms plus jitter so competing processes do not retry in lockstep. */
    long ms = (10L << attempt) + (long)randombytes_uniform(10);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Nested call: a savepoint inside the running transaction. */
static fp_status run_savepoint(fp_store *s, fp_store_tx_fn fn, void *ctx) {
    char sql[64];
    int id = s->savepoint++;
    snprintf(sql, sizeof sql, "SAVEPOINT fp_sp%d", id);
    fp_status st = fp_store_exec(s, sql);
    if (st != FP_OK) return st;
    s->depth++;
    st = fn(s, ctx);
    s->depth--;
    if (st != FP_OK) {
        snprintf(sql, sizeof sql, "ROLLBACK TO fp_sp%d; RELEASE fp_sp%d", id, id);
        sqlite3_exec(s->db, sql, NULL, NULL, NULL); /* keep fn's message */
        return st;
    }
    snprintf(sql, sizeof sql, "RELEASE fp_sp%d", id);
    return fp_store_exec(s, sql);
}

static fp_status run_tx(fp_store *s, fp_store_tx_fn fn, void *ctx, int write) {
    fp_status st = FP_OK;
    for (int attempt = 0; attempt < TX_ATTEMPTS; attempt++) {
        if (attempt > 0) backoff(attempt - 1);
        s->busy = 0;
        int rc = sqlite3_exec(s->db, write ? "BEGIN IMMEDIATE" : "BEGIN", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            st = fp_store_sqlfail(s, rc, "starting a transaction");
            if (s->busy) continue;
            return st;
        }
        s->depth++;
        if (!write) s->reading++;
        st = fn(s, ctx);
        if (!write) s->reading--;
        s->depth--;
        if (st == FP_OK) {
            /* COMMIT can meet SQLITE_BUSY (e.g. a checkpoint); the transaction is still open
             * then, so retrying the COMMIT itself is enough. */
            for (int c = 0; c < TX_ATTEMPTS; c++) {
                rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
                if ((rc & 0xff) != SQLITE_BUSY) break;
                backoff(c);
            }
            if (rc == SQLITE_OK) return FP_OK;
            st = fp_store_sqlfail(s, rc, "committing");
        }
        if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        if (!s->busy) return st;
    }
    return st; /* still busy after every attempt: the last message says so */
}

fp_status fp_store_tx(fp_store *s, fp_store_tx_fn fn, void *ctx) {
    if (!s || !fn) return fp_fail(FP_ERR_INVALID_ARG, "fp_store_tx: NULL argument");
    pthread_mutex_lock(&s->lock);
    fp_status st;
    if (s->reading)
        st =
            fp_fail(FP_ERR_INVALID_ARG, "%s: write attempted inside a read-only callback", s->path);
    else if (s->depth > 0)
        st = run_savepoint(s, fn, ctx);
    else
        st = run_tx(s, fn, ctx, 1);
    pthread_mutex_unlock(&s->lock);
    return st;
}

fp_status fp_store_read(fp_store *s, fp_store_tx_fn fn, void *ctx) {
    if (!s || !fn) return fp_fail(FP_ERR_INVALID_ARG, "fp_store_read: NULL argument");
    pthread_mutex_lock(&s->lock);
    fp_status st;
    if (s->depth > 0) {
        /* Already inside a transaction: its snapshot (and write lock, if any) covers the read. */
        s->depth++;
        s->reading++;
        st = fn(s, ctx);
        s->reading--;
        s->depth--;
    } else {
        st = run_tx(s, fn, ctx, 0);
    }
    pthread_mutex_unlock(&s->lock);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* VACUUM                                                                                      */
/* ------------------------------------------------------------------------------------------ */

fp_status fp_store_vacuum(fp_store *s) {
    if (!s) return fp_fail(FP_ERR_INVALID_ARG, "fp_store_vacuum: NULL store");
    pthread_mutex_lock(&s->lock);
    fp_status st = FP_OK;
    if (s->depth > 0) {
        /* VACUUM cannot run inside a transaction, i.e. from a tx or foreach callback. */
        st = fp_fail(FP_ERR_INVALID_ARG, "%s: VACUUM requested inside a transaction", s->path);
        goto out;
    }
    for (int attempt = 0;; attempt++) {
        s->busy = 0;
        st = fp_store_exec(s, "VACUUM");
        if (st == FP_OK || !s->busy || attempt + 1 >= TX_ATTEMPTS) break;
        backoff(attempt);
    }
    if (st != FP_OK) goto out;
    /* In WAL mode the rebuilt pages sit in the -wal file until a checkpoint copies them over the
     * old ones; TRUNCATE also empties the -wal file. Readers still using old pages block it. */
    sqlite3_stmt *q = NULL;
    st = fp_store_prepare(s, "PRAGMA wal_checkpoint(TRUNCATE)", &q);
    if (st != FP_OK) goto out;
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_int(q, 0) != 0)
            st = fp_fail(FP_ERR_IO,
                         "%s: vacuumed, but readers blocked the WAL checkpoint; old pages stay in "
                         "the file until the next fp_store_vacuum",
                         s->path);
    } else {
        st = fp_store_sqlfail(s, rc, "checkpointing the WAL");
    }
    sqlite3_finalize(q);
out:
    pthread_mutex_unlock(&s->lock);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Key check                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* Compares the stored key check with ours. ctx (int *) says whether a missing value may be
 * written now (write transaction) or only reported (*ctx set to 2, read transaction). A DB that
 * already holds encrypted rows but lost its key check is refused rather than silently re-keyed. */
static fp_status key_check_tx(fp_store *s, void *ctx) {
    int *mode = ctx;
    uint8_t want[32];
    fp_store_key_check(s->key, want);
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s, "SELECT value FROM meta WHERE key = 'key_check'", &st);
    if (res != FP_OK) return res;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const void *have = sqlite3_column_blob(st, 0);
        int n = sqlite3_column_bytes(st, 0);
        if (n != 32 || !have)
            res = fp_fail(FP_ERR_FORMAT, "%s: key check value is damaged", s->path);
        else if (sodium_memcmp(have, want, 32) != 0)
            res = fp_fail(FP_ERR_INVALID_ARG,
                          "wrong template key for DB %s (the key check stored in the DB does not "
                          "match this key)",
                          s->path);
        sqlite3_finalize(st);
        return res;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return fp_store_sqlfail(s, rc, "reading the key check");

    res = fp_store_prepare(
        s, "SELECT (SELECT count(*) FROM templates) + (SELECT count(*) FROM user_means)", &st);
    if (res != FP_OK) return res;
    rc = sqlite3_step(st);
    int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    if (n < 0) return fp_store_sqlfail(s, rc, "counting templates");
    if (n > 0)
        return fp_fail(FP_ERR_FORMAT, "%s: holds %lld encrypted records but no key check value",
                       s->path, (long long)n);
    if (*mode != 1) {
        *mode = 2; /* missing: the caller retries in a write transaction */
        return FP_OK;
    }
    res = fp_store_prepare(s, "INSERT INTO meta(key, value) VALUES ('key_check', ?)", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_blob(st, 1, want, 32, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return fp_store_sqlfail(s, rc, "storing the key check");
    return FP_OK;
}

/* Checks the key; writes the key check value only when the DB has none (a fresh file), so
 * ordinary opens take no write lock. */
static fp_status check_key(fp_store *s) {
    int mode = 0;
    fp_status st = fp_store_read(s, key_check_tx, &mode);
    if (st == FP_OK && mode == 2) {
        mode = 1;
        st = fp_store_tx(s, key_check_tx, &mode); /* re-reads: another opener may have won */
    }
    return st;
}

static fp_status key_check_present(fp_store *s, void *ctx) {
    int *present = ctx;
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(
        s, "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'meta'", &st);
    if (res != FP_OK) return res;
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return fp_store_sqlfail(s, rc, "reading the schema");
    *present = rc == SQLITE_ROW;
    return FP_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Open / close                                                                                */
/* ------------------------------------------------------------------------------------------ */

void fp_store_close(fp_store *s) {
    if (!s) return;
    if (s->db) sqlite3_close_v2(s->db);
    if (s->key) sodium_free(s->key); /* zeroes the key before unmapping */
    free(s->path);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int fp_store_schema_version(fp_store *s) {
    if (!s) return -1;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    return v;
}

/* The per-connection settings of the header comment. */
static fp_status configure(fp_store *s) {
    sqlite3 *db = s->db;
    int on = 1;
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, &on);
    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, &on);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FKEY, 1, &on);
    if (!on) return fp_fail(FP_ERR_UNSUPPORTED, "%s: SQLite built without foreign keys", s->path);
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(db, 1);
    fp_status st = fp_store_exec(s, "PRAGMA foreign_keys = ON;"
                                    "PRAGMA secure_delete = ON;"
                                    "PRAGMA cell_size_check = ON;"
                                    "PRAGMA synchronous = FULL;");
    if (st != FP_OK) return st;
    /* Before switching to WAL (which is written into the file header): do not touch a file
     * that is not ours or is too new for us. */
    st = fp_store_check_version(db, s->path, fp_store_latest_version());
    if (st != FP_OK) return st;
    /* journal_mode answers with the mode in force; an in-memory DB stays "memory". */
    sqlite3_stmt *q = NULL;
    st = fp_store_prepare(s, "PRAGMA journal_mode = WAL", &q);
    if (st != FP_OK) return st;
    int rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        st = fp_store_sqlfail(s, rc, "switching to WAL");
    } else {
        const char *mode = (const char *)sqlite3_column_text(q, 0);
        if (!mode || (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0))
            st = fp_fail(FP_ERR_IO, "%s: cannot use WAL journal (mode %s)", s->path,
                         mode ? mode : "?");
    }
    sqlite3_finalize(q);
    return st;
}

fp_status fp_store_open(const char *path, const fp_key *key, fp_store **out) {
    if (out) *out = NULL;
    if (!path || !*path || !key || !out)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_store_open: NULL or empty argument");
    fp_status st = fp_store_crypto_init();
    if (st != FP_OK) return st;
    if (sqlite3_libversion_number() < 3037000)
        return fp_fail(FP_ERR_UNSUPPORTED, "SQLite %s is too old (STRICT tables need 3.37)",
                       sqlite3_libversion());
    if (!sqlite3_threadsafe())
        return fp_fail(FP_ERR_UNSUPPORTED, "SQLite is built without thread support");

    /* Create the file ourselves so it starts as 0600: SQLite would use 0644 (minus umask), and
     * it gives the -wal/-shm files the permissions of the main file. */
    if (strcmp(path, ":memory:") != 0) {
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
        else if (errno != EEXIST)
            return fp_fail(FP_ERR_IO, "%s: %s", path, strerror(errno));
    }

    fp_store *s = calloc(1, sizeof *s);
    if (!s) return fp_fail(FP_ERR_NOMEM, "fp_store_open: out of memory");
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&s->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    s->path = strdup(path);
    s->key = sodium_malloc(32);
    if (!s->path || !s->key) {
        fp_store_close(s);
        return fp_fail(FP_ERR_NOMEM, "fp_store_open: out of memory");
    }
    memcpy(s->key, key->bytes, 32);
    sodium_mprotect_readonly(s->key);

    /* NOMUTEX: the handle's own lock already serialises every use of the connection. */
    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        st = fp_fail(FP_ERR_IO, "%s: cannot open: %s", path,
                     s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        fp_store_close(s);
        return st;
    }
    st = configure(s);
    /* With an existing schema, check the key before migrating, so a wrong key changes nothing. */
    int present = 0;
    if (st == FP_OK) st = fp_store_read(s, key_check_present, &present);
    if (st == FP_OK && present) st = check_key(s);
    if (st == FP_OK) st = fp_store_migrate(s->db, path, fp_store_migrations, fp_store_n_migrations);
    if (st == FP_OK && !present) st = check_key(s);
    if (st != FP_OK) {
        fp_store_close(s);
        return st;
    }
    *out = s;
    return FP_OK;
}
