/*
 * test_store.c - the SQLite template store: keys, open/reopen and migrations, users, encrypted
 * templates and their mean, the gallery walk, lookalikes and audit, and the security properties
 * that matter for biometric data: a wrong key is refused at open, a tampered or moved ciphertext
 * fails authentication, plaintext embeddings never reach the file, and deletion (with VACUUM)
 * leaves no trace of a user's templates. Also WAL readers running while a writer enrolls.
 * Every test works in its own temporary folder under /tmp, removed afterwards.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "facepay.h"
#include "store/store.h"
#include "util/testutil.h"

#define MODEL "mobilefacenet@1"
#define DIM 192

/* ------------------------------------------------------------------------------------------ */
/* Fixture: a temporary folder with a key and a DB path                                        */
/* ------------------------------------------------------------------------------------------ */

typedef struct fx {
    char dir[64];
    char db[128];
    char keyfile[128];
    fp_key key;
} fx;

static int fx_setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/fp_store_test.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof f->db, "%s/store.db", f->dir);
    snprintf(f->keyfile, sizeof f->keyfile, "%s/key", f->dir);
    if (fp_key_generate(f->keyfile) != FP_OK || fp_key_load(f->keyfile, &f->key) != FP_OK) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static void rm_suffix(const char *base, const char *suffix) {
    char p[192];
    snprintf(p, sizeof p, "%s%s", base, suffix);
    unlink(p);
}

static int fx_teardown(void **state) {
    fx *f = *state;
    rm_suffix(f->db, "");
    rm_suffix(f->db, "-wal");
    rm_suffix(f->db, "-shm");
    rm_suffix(f->db, "-journal");
    rm_suffix(f->keyfile, "");
    rm_suffix(f->dir, "/other.key");
    rm_suffix(f->dir, "/raw.key");
    rm_suffix(f->dir, "/bad.key");
    rm_suffix(f->dir, "/foreign.db");
    rm_suffix(f->dir, "/garbage.db");
    rm_suffix(f->dir, "/synthetic.db");
    rmdir(f->dir);
    fp_key_wipe(&f->key);
    free(f);
    return 0;
}

static fp_store *open_ok(fx *f) {
    fp_store *s = NULL;
    fp_status st = fp_store_open(f->db, &f->key, &s);
    if (st != FP_OK) fail_msg("fp_store_open: %s: %s", fp_strerror(st), fp_last_error());
    return s;
}

#define ASSERT_OK(call)                                                                            \
    do {                                                                                           \
        fp_status st_ = (call);                                                                    \
        if (st_ != FP_OK) fail_msg("%s: %s: %s", #call, fp_strerror(st_), fp_last_error());        \
    } while (0)

#define ASSERT_STATUS(call, want)                                                                  \
    do {                                                                                           \
        fp_status st_ = (call);                                                                    \
        if (st_ != (want))                                                                         \
            fail_msg("%s: got %s (%s), want %s", #call, fp_strerror(st_), fp_last_error(),         \
                     fp_strerror(want));                                                           \
    } while (0)

/* Deterministic pseudo-random embedding (not normalised, so the mean's normalisation shows). */
static void make_emb(float *e, int dim, uint32_t seed) {
    uint32_t x = seed * 2654435761u + 12345u;
    for (int i = 0; i < dim; i++) {
        x = x * 1664525u + 1013904223u;
        e[i] = ((float)(x >> 8) / (float)(1u << 24) - 0.5f) * (1.0f + (float)(seed % 3));
    }
}

static double norm(const float *e, int dim) {
    double n = 0;
    for (int i = 0; i < dim; i++) n += (double)e[i] * e[i];
    return sqrt(n);
}

/* normalize(sum_i normalize(t_i)), in double. */
static void expected_mean(float (*t)[DIM], int n, float *out) {
    double sum[DIM] = {0};
    for (int k = 0; k < n; k++) {
        double nk = norm(t[k], DIM);
        for (int i = 0; i < DIM; i++) sum[i] += t[k][i] / nk;
    }
    double m = 0;
    for (int i = 0; i < DIM; i++) m += sum[i] * sum[i];
    m = sqrt(m);
    for (int i = 0; i < DIM; i++) out[i] = (float)(sum[i] / m);
}

/* ------------------------------------------------------------------------------------------ */
/* Raw SQLite access (a second connection, as an attacker or a forensic reader would have)     */
/* ------------------------------------------------------------------------------------------ */

static sqlite3 *raw_open(const char *path) {
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static void raw_exec(sqlite3 *db, const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "raw_exec: %s: %s\n", sql, err ? err : "?");
        sqlite3_free(err);
        fail();
    }
}

static int64_t raw_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Copies a blob column of one row into buf (returns its length). */
static int raw_blob(sqlite3 *db, const char *sql, uint8_t *buf, int cap) {
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_bytes(st, 0);
    assert_true(n <= cap);
    memcpy(buf, sqlite3_column_blob(st, 0), (size_t)n);
    sqlite3_finalize(st);
    return n;
}

static void raw_set_blob(sqlite3 *db, const char *sql, const uint8_t *buf, int n) {
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_blob(st, 1, buf, n, SQLITE_TRANSIENT);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

/* Does the file at path (if it exists) contain the bytes needle[0..n)? */
static int file_contains(const char *path, const void *needle, size_t n) {
    size_t len = 0;
    uint8_t *data = tu_read_all(path, &len);
    if (!data) return 0;
    int found = 0;
    for (size_t i = 0; !found && i + n <= len; i++) found = memcmp(data + i, needle, n) == 0;
    free(data);
    return found;
}

/* Searches the DB file and its -wal companion. */
static int db_contains(const char *db, const void *needle, size_t n) {
    char wal[192];
    snprintf(wal, sizeof wal, "%s-wal", db);
    return file_contains(db, needle, n) || file_contains(wal, needle, n);
}

/* ------------------------------------------------------------------------------------------ */
/* Keys                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void test_keys(void **state) {
    fx *f = *state;
    struct stat sb;
    assert_int_equal(stat(f->keyfile, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* never overwrite a key */
    ASSERT_STATUS(fp_key_generate(f->keyfile), FP_ERR_IO);
    assert_non_null(strstr(fp_last_error(), "refusing to overwrite"));
    fp_key again;
    ASSERT_OK(fp_key_load(f->keyfile, &again));
    assert_memory_equal(again.bytes, f->key.bytes, 32);

    /* raw 32-byte file */
    char raw[160];
    snprintf(raw, sizeof raw, "%s/raw.key", f->dir);
    FILE *fp = fopen(raw, "wb");
    assert_non_null(fp);
    fwrite(f->key.bytes, 1, 32, fp);
    fclose(fp);
    chmod(raw, 0600);
    fp_key k2;
    ASSERT_OK(fp_key_load(raw, &k2));
    assert_memory_equal(k2.bytes, f->key.bytes, 32);
    /* readable by others: refused */
    chmod(raw, 0644);
    ASSERT_STATUS(fp_key_load(raw, &k2), FP_ERR_INVALID_ARG);
    assert_non_null(strstr(fp_last_error(), "chmod 600"));

    /* wrong length */
    char bad[160];
    snprintf(bad, sizeof bad, "%s/bad.key", f->dir);
    fp = fopen(bad, "wb");
    assert_non_null(fp);
    fputs("abcdef\n", fp);
    fclose(fp);
    chmod(bad, 0600);
    ASSERT_STATUS(fp_key_load(bad, &k2), FP_ERR_FORMAT);

    /* environment */
    char hex[65];
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", f->key.bytes[i]);
    setenv("FACEPAY_KEY", hex, 1);
    ASSERT_OK(fp_key_load(NULL, &k2));
    assert_memory_equal(k2.bytes, f->key.bytes, 32);
    setenv("FACEPAY_KEY", "1234", 1);
    ASSERT_STATUS(fp_key_load(NULL, &k2), FP_ERR_INVALID_ARG);
    hex[10] = 'z';
    setenv("FACEPAY_KEY", hex, 1);
    ASSERT_STATUS(fp_key_load(NULL, &k2), FP_ERR_INVALID_ARG);
    unsetenv("FACEPAY_KEY");
    ASSERT_STATUS(fp_key_load(NULL, &k2), FP_ERR_NOT_FOUND);
    ASSERT_STATUS(fp_key_load(f->keyfile, NULL), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_key_generate(NULL), FP_ERR_INVALID_ARG);

    fp_key_wipe(&k2);
    for (int i = 0; i < 32; i++) assert_int_equal(k2.bytes[i], 0);
    fp_key_wipe(NULL);
    fp_key_wipe(&again);
}

/* ------------------------------------------------------------------------------------------ */
/* Open, reopen, migrations                                                                    */
/* ------------------------------------------------------------------------------------------ */

static void test_open_reopen(void **state) {
    fx *f = *state;
    fp_store *s = open_ok(f);
    assert_int_equal(fp_store_schema_version(s), fp_store_latest_version());
    ASSERT_OK(fp_store_user_add(s, "alice", "Alice Martin"));
    fp_store_close(s);
    fp_store_close(NULL);

    struct stat sb;
    assert_int_equal(stat(f->db, &sb), 0);
    assert_int_equal(sb.st_mode & 0077, 0); /* created 0600 */

    /* reopen: nothing re-applied, data still there */
    s = open_ok(f);
    assert_int_equal(fp_store_schema_version(s), fp_store_latest_version());
    fp_user u;
    ASSERT_OK(fp_store_user_get(s, "alice", &u));
    assert_string_equal(u.name, "Alice Martin");
    fp_store_close(s);
    s = open_ok(f);
    fp_store_close(s);

    sqlite3 *db = raw_open(f->db);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM schema_migrations"), fp_store_n_migrations);
    assert_int_equal(raw_int(db, "PRAGMA user_version"), fp_store_latest_version());
    assert_int_equal(raw_int(db, "PRAGMA application_id"), FP_STORE_APPLICATION_ID);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM users"), 1);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM meta WHERE key = 'key_check'"), 1);
    /* every table is STRICT */
    assert_int_equal(raw_int(db,
                             "SELECT count(*) FROM pragma_table_list "
                             "WHERE schema = 'main' AND name NOT LIKE 'sqlite_%' AND strict = 0"),
                     0);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static fp_status synthetic_apply(sqlite3 *db, char *err, size_t err_len) {
    int rc = sqlite3_exec(db, "INSERT INTO t2(x) VALUES (42)", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, err_len, "%s", sqlite3_errmsg(db));
        return FP_ERR_IO;
    }
    return FP_OK;
}

static void test_migrations(void **state) {
    fx *f = *state;
    char path[160];
    snprintf(path, sizeof path, "%s/synthetic.db", f->dir);
    sqlite3 *db = raw_open(path);
    const fp_migration list[] = {
        {1, "t1", "CREATE TABLE t1(a INTEGER) STRICT;", NULL},
        {2, "t2 + data", "CREATE TABLE t2(x INTEGER) STRICT;", synthetic_apply},
        {3, "broken", "CREATE TABLE t3(y INTEGER) STRICT; THIS IS NOT SQL;", NULL},
    };
    ASSERT_OK(fp_store_migrate(db, path, list, 2));
    assert_int_equal(raw_int(db, "PRAGMA user_version"), 2);
    assert_int_equal(raw_int(db, "SELECT x FROM t2"), 42);
    /* idempotent: running again changes nothing */
    ASSERT_OK(fp_store_migrate(db, path, list, 2));
    assert_int_equal(raw_int(db, "SELECT count(*) FROM t2"), 1);
    /* a failing step rolls back completely and leaves the version alone */
    fp_status st = fp_store_migrate(db, path, list, 3);
    assert_int_not_equal(st, FP_OK);
    assert_non_null(strstr(fp_last_error(), "migration 3"));
    assert_int_equal(raw_int(db, "PRAGMA user_version"), 2);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 't3'"), 0);
    /* the code is older than the file */
    ASSERT_STATUS(fp_store_migrate(db, path, list, 1), FP_ERR_UNSUPPORTED);
    /* a list with a gap is a bug */
    const fp_migration gap[] = {{1, "a", "SELECT 1", NULL}, {3, "c", "SELECT 1", NULL}};
    ASSERT_STATUS(fp_store_migrate(db, path, gap, 2), FP_ERR_INTERNAL);
    sqlite3_close(db);
}

static void test_refused_files(void **state) {
    fx *f = *state;
    fp_store *s = open_ok(f);
    fp_store_close(s);

    /* a DB written by a newer facepay */
    sqlite3 *db = raw_open(f->db);
    raw_exec(db, "PRAGMA user_version = 99");
    sqlite3_close(db);
    ASSERT_STATUS(fp_store_open(f->db, &f->key, &s), FP_ERR_UNSUPPORTED);
    assert_null(s);
    assert_non_null(strstr(fp_last_error(), "newer than this build"));

    /* someone else's SQLite file */
    char path[160];
    snprintf(path, sizeof path, "%s/foreign.db", f->dir);
    db = raw_open(path);
    raw_exec(db, "CREATE TABLE notes(x TEXT)");
    sqlite3_close(db);
    ASSERT_STATUS(fp_store_open(path, &f->key, &s), FP_ERR_FORMAT);
    assert_non_null(strstr(fp_last_error(), "not a facepay database"));
    db = raw_open(path);
    raw_exec(db, "PRAGMA application_id = 1234");
    sqlite3_close(db);
    ASSERT_STATUS(fp_store_open(path, &f->key, &s), FP_ERR_FORMAT);

    /* not SQLite at all */
    snprintf(path, sizeof path, "%s/garbage.db", f->dir);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 4096; i++) fputc((i * 7919) & 0xff, fp);
    fclose(fp);
    ASSERT_STATUS(fp_store_open(path, &f->key, &s), FP_ERR_FORMAT);
    assert_null(s);
}

static void test_wrong_key(void **state) {
    fx *f = *state;
    fp_store *s = open_ok(f);
    ASSERT_OK(fp_store_user_add(s, "alice", "Alice"));
    float e[DIM];
    make_emb(e, DIM, 1);
    ASSERT_OK(fp_store_template_add(s, "alice", MODEL, e, DIM, 0.9f, "photo:a.jpg", NULL));
    fp_store_close(s);

    fp_key other = f->key;
    other.bytes[0] ^= 1;
    ASSERT_STATUS(fp_store_open(f->db, &other, &s), FP_ERR_INVALID_ARG);
    assert_null(s);
    assert_non_null(strstr(fp_last_error(), "wrong template key for DB"));
    assert_non_null(strstr(fp_last_error(), f->db));

    /* the right key still works afterwards */
    s = open_ok(f);
    float m[DIM];
    ASSERT_OK(fp_store_user_mean(s, "alice", MODEL, m, DIM));
    fp_store_close(s);

    /* a DB with templates but no key check is not silently re-keyed */
    sqlite3 *db = raw_open(f->db);
    raw_exec(db, "DELETE FROM meta WHERE key = 'key_check'");
    sqlite3_close(db);
    ASSERT_STATUS(fp_store_open(f->db, &other, &s), FP_ERR_FORMAT);
    assert_non_null(strstr(fp_last_error(), "no key check"));
    fp_key_wipe(&other);
}

/* ------------------------------------------------------------------------------------------ */
/* Users                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static int count_users(void *ctx, const fp_user *u) {
    int *n = ctx;
    (void)u;
    (*n)++;
    return 0;
}

static void test_users(void **state) {
    fx *f = *state;
    fp_store *s = open_ok(f);
    int64_t before = fp_store_now_ms();
    ASSERT_OK(fp_store_user_add(s, "alice", "Alice Martin"));
    ASSERT_OK(fp_store_user_add(s, "bob@example.com", "Bob \xc3\x89lie"));
    ASSERT_OK(fp_store_user_add(s, "carol", ""));

    ASSERT_STATUS(fp_store_user_add(s, "alice", "Someone Else"), FP_ERR_INVALID_ARG);
    assert_non_null(strstr(fp_last_error(), "user id alice already exists"));

    fp_user u;
    ASSERT_OK(fp_store_user_get(s, "bob@example.com", &u));
    assert_string_equal(u.id, "bob@example.com");
    assert_string_equal(u.name, "Bob \xc3\x89lie");
    assert_int_equal(u.status, FP_USER_ACTIVE);
    assert_int_equal(u.n_templates, 0);
    assert_true(u.created_ms >= before && u.created_ms <= fp_store_now_ms());

    ASSERT_STATUS(fp_store_user_get(s, "nobody", &u), FP_ERR_NOT_FOUND);
    assert_non_null(strstr(fp_last_error(), "nobody"));

    ASSERT_OK(fp_store_user_set_status(s, "carol", FP_USER_LOCKED));
    ASSERT_OK(fp_store_user_get(s, "carol", &u));
    assert_int_equal(u.status, FP_USER_LOCKED);
    ASSERT_OK(fp_store_user_set_status(s, "carol", FP_USER_ACTIVE));
    ASSERT_STATUS(fp_store_user_set_status(s, "carol", FP_USER_DELETED), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_user_set_status(s, "nobody", FP_USER_LOCKED), FP_ERR_NOT_FOUND);

    int n = 0;
    ASSERT_OK(fp_store_foreach_user(s, count_users, &n));
    assert_int_equal(n, 3);

    /* deleting: tombstone, id never reused, idempotent */
    ASSERT_OK(fp_store_user_delete(s, "carol", 0));
    ASSERT_OK(fp_store_user_get(s, "carol", &u));
    assert_int_equal(u.status, FP_USER_DELETED);
    assert_string_equal(u.name, "");
    ASSERT_OK(fp_store_user_delete(s, "carol", 0));
    ASSERT_STATUS(fp_store_user_add(s, "carol", "New Carol"), FP_ERR_INVALID_ARG);
    assert_non_null(strstr(fp_last_error(), "never reused"));
    ASSERT_STATUS(fp_store_user_delete(s, "nobody", 0), FP_ERR_NOT_FOUND);
    ASSERT_STATUS(fp_store_user_set_status(s, "carol", FP_USER_ACTIVE), FP_ERR_INVALID_ARG);
    fp_store_close(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Templates and the mean                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void assert_close(const float *got, const float *want, int n, double tol) {
    for (int i = 0; i < n; i++)
        if (fabs((double)got[i] - want[i]) > tol)
            fail_msg("element %d: got %.9g want %.9g", i, (double)got[i], (double)want[i]);
}

static int count_templates(void *ctx, const fp_template_info *t) {
    int *n = ctx;
    assert_true(t->id > 0 && t->dim > 0);
    (*n)++;
    return 0;
}

static void test_templates_and_mean(void **state) {
    fx *f = *state;
    fp_store *s = open_ok(f);
    ASSERT_OK(fp_store_user_add(s, "alice", "Alice"));
    float t[3][DIM], m[DIM], want[DIM], back[DIM];
    int64_t ids[3];
    for (int k = 0; k < 3; k++) {
        make_emb(t[k], DIM, 10 + (uint32_t)k);
        char src[64];
        snprintf(src, sizeof src, "video:franck.mp4#frame%d", 100 + k);
        ASSERT_OK(fp_store_template_add(s, "alice", MODEL, t[k], DIM, 0.5f + 0.1f * (float)k, src,
                                        &ids[k]));
        assert_true(ids[k] > 0);
        if (k > 0) assert_true(ids[k] > ids[k - 1]);
        /* the mean is recomputed on every add */
        ASSERT_OK(fp_store_user_mean(s, "alice", MODEL, m, DIM));
        expected_mean(t, k + 1, want);
        assert_close(m, want, DIM, 1e-6);
        assert_true(fabs(norm(m, DIM) - 1.0) < 1e-5);
    }

    /* round trip of one template, bit-exact, with its metadata */
    fp_template_info info;
    ASSERT_OK(fp_store_template_get(s, ids[1], &info, back, DIM));
    assert_memory_equal(back, t[1], sizeof back);
    assert_int_equal(info.id, ids[1]);
    assert_string_equal(info.user_id, "alice");
    assert_string_equal(info.model_id, MODEL);
    assert_string_equal(info.source, "video:franck.mp4#frame101");
    assert_int_equal(info.dim, DIM);
    assert_true(fabsf(info.quality - 0.6f) < 1e-6f);
    ASSERT_STATUS(fp_store_template_get(s, ids[1], NULL, back, DIM - 1), FP_ERR_SHAPE);
    ASSERT_STATUS(fp_store_template_get(s, 999999, NULL, back, DIM), FP_ERR_NOT_FOUND);

    fp_user u;
    ASSERT_OK(fp_store_user_get(s, "alice", &u));
    assert_int_equal(u.n_templates, 3);

    /* delete the middle one: the mean follows */
    ASSERT_OK(fp_store_template_delete(s, ids[1]));
    ASSERT_STATUS(fp_store_template_delete(s, ids[1]), FP_ERR_NOT_FOUND);
    float rest[2][DIM];
    memcpy(rest[0], t[0], sizeof rest[0]);
    memcpy(rest[1], t[2], sizeof rest[1]);
    ASSERT_OK(fp_store_user_mean(s, "alice", MODEL, m, DIM));
    expected_mean(rest, 2, want);
    assert_close(m, want, DIM, 1e-6);

    /* a model keeps one dim; the mean must be asked with it */
    ASSERT_STATUS(fp_store_template_add(s, "alice", MODEL, t[0], DIM - 1, 0.5f, "x", NULL),
                  FP_ERR_SHAPE);
    ASSERT_STATUS(fp_store_user_mean(s, "alice", MODEL, m, DIM - 1), FP_ERR_SHAPE);
    ASSERT_STATUS(fp_store_user_mean(s, "alice", "other-model", m, DIM), FP_ERR_NOT_FOUND);
    /* another model is independent (different dim allowed) */
    ASSERT_OK(fp_store_template_add(s, "alice", "faceres/1", t[0], 64, 0.5f, NULL, NULL));
    ASSERT_OK(fp_store_user_mean(s, "alice", "faceres/1", m, 64));
    assert_true(fabs(norm(m, 64) - 1.0) < 1e-5);

    /* unknown / deleted user */
    ASSERT_STATUS(fp_store_template_add(s, "nobody", MODEL, t[0], DIM, 0.5f, "x", NULL),
                  FP_ERR_NOT_FOUND);

    /* listing metadata */
    int n = 0;
    ASSERT_OK(fp_store_foreach_template(s, "alice", MODEL, count_templates, &n));
    assert_int_equal(n, 2);
    n = 0;
    ASSERT_OK(fp_store_foreach_template(s, "alice", NULL, count_templates, &n));
    assert_int_equal(n, 3);

    /* removing the last template of a model removes its mean */
    ASSERT_OK(fp_store_template_delete(s, ids[0]));
    ASSERT_OK(fp_store_template_delete(s, ids[2]));
    ASSERT_STATUS(fp_store_user_mean(s, "alice", MODEL, m, DIM), FP_ERR_NOT_FOUND);
    fp_store_close(s);
}

typedef struct gallery {
    int n;
    char ids[8][64];
    float first[8];
    int stop_after;
} gallery;

static int collect_mean(void *ctx, const char *user_id, const float *emb, int dim) {
    gallery *g = ctx;
    assert_int_equal(dim, DIM);
    assert_true(fabs(norm(emb, dim) - 1.0) < 1e-5);
    snprintf(g->ids[g->n], sizeof g->ids[0], "%s", user_id);
    g->first[g->n] = emb[0];
    g->n++;
    return g->stop_after && g->n >= g->stop_after;
}

static void test_foreach_mean(void **state) {
    fx *f = *state;
    fp_store *s = open_ok(f);
    const char *users[] = {"dave", "alice", "carol", "bob"};
    float e[DIM], m[DIM];
    for (int i = 0; i < 4; i++) {
        ASSERT_OK(fp_store_user_add(s, users[i], ""));
        for (int k = 0; k < 2; k++) {
            make_emb(e, DIM, 100 * (uint32_t)i + (uint32_t)k);
            ASSERT_OK(fp_store_template_add(s, users[i], MODEL, e, DIM, 1.0f, "photo:x.jpg", NULL));
        }
    }
    ASSERT_OK(fp_store_user_add(s, "eve", "")); /* no template: not in the gallery */
    ASSERT_OK(fp_store_user_set_status(s, "carol", FP_USER_LOCKED));

    gallery g;
    memset(&g, 0, sizeof g);
    ASSERT_OK(fp_store_foreach_mean(s, MODEL, collect_mean, &g));
    assert_int_equal(g.n, 3);
    assert_string_equal(g.ids[0], "alice");
    assert_string_equal(g.ids[1], "bob");
    assert_string_equal(g.ids[2], "dave");
    ASSERT_OK(fp_store_user_mean(s, "bob", MODEL, m, DIM));
    assert_true(g.first[1] == m[0]);

    memset(&g, 0, sizeof g);
    g.stop_after = 2;
    ASSERT_OK(fp_store_foreach_mean(s, MODEL, collect_mean, &g));
    assert_int_equal(g.n, 2);

    memset(&g, 0, sizeof g);
    ASSERT_OK(fp_store_foreach_mean(s, "unknown-model", collect_mean, &g));
    assert_int_equal(g.n, 0);
    fp_store_close(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Tampering and moved ciphertexts                                                             */
/* ------------------------------------------------------------------------------------------ */

static int64_t raw_template_id(sqlite3 *db, const char *user) {
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT min(id) FROM templates WHERE user_id = '%s'", user);
    return raw_int(db, sql);
}

static void test_tamper(void **state) {
    fx *f = *state;
    fp_store *s = open_ok(f);
    ASSERT_OK(fp_store_user_add(s, "alice", "Alice"));
    float e[DIM], back[DIM], m[DIM];
    int64_t id = 0;
    make_emb(e, DIM, 7);
    ASSERT_OK(fp_store_template_add(s, "alice", MODEL, e, DIM, 0.9f, "photo:a.jpg", &id));

    /* flip one byte of the stored ciphertext from a second connection (store still open) */
    sqlite3 *db = raw_open(f->db);
    uint8_t ct[DIM * 4 + 16];
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT ciphertext FROM templates WHERE id = %lld", (long long)id);
    int n = raw_blob(db, sql, ct, sizeof ct);
    assert_int_equal(n, DIM * 4 + 16);
    ct[100] ^= 0x01;
    snprintf(sql, sizeof sql, "UPDATE templates SET ciphertext = ? WHERE id = %lld", (long long)id);
    raw_set_blob(db, sql, ct, n);

    ASSERT_STATUS(fp_store_template_get(s, id, NULL, back, DIM), FP_ERR_FORMAT);
    assert_non_null(strstr(fp_last_error(), "user alice"));
    for (int i = 0; i < DIM; i++) assert_true(back[i] == 0.0f); /* no garbage handed out */
    /* the mean is a separate record and is still fine... */
    ASSERT_OK(fp_store_user_mean(s, "alice", MODEL, m, DIM));
    /* ...but recomputing it (next add) meets the bad record: the add fails and rolls back */
    ASSERT_STATUS(fp_store_template_add(s, "alice", MODEL, e, DIM, 0.9f, "photo:b.jpg", NULL),
                  FP_ERR_FORMAT);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM templates"), 1);

    /* tampered mean */
    uint8_t mct[DIM * 4 + 16];
    n = raw_blob(db, "SELECT ciphertext FROM user_means WHERE user_id = 'alice'", mct, sizeof mct);
    mct[5] ^= 0x80;
    raw_set_blob(db, "UPDATE user_means SET ciphertext = ? WHERE user_id = 'alice'", mct, n);
    ASSERT_STATUS(fp_store_user_mean(s, "alice", MODEL, m, DIM), FP_ERR_FORMAT);
    assert_non_null(strstr(fp_last_error(), "user alice"));
    gallery g;
    memset(&g, 0, sizeof g);
    ASSERT_STATUS(fp_store_foreach_mean(s, MODEL, collect_mean, &g), FP_ERR_FORMAT);

    /* a changed nonce fails too */
    uint8_t nonce[24];
    snprintf(sql, sizeof sql, "SELECT nonce FROM templates WHERE id = %lld", (long long)id);
    raw_blob(db, sql, nonce, sizeof nonce);
    ct[100] ^= 0x01; /* restore the ciphertext, break the nonce */
    nonce[0] ^= 0xff;
    snprintf(sql, sizeof sql, "UPDATE templates SET ciphertext = ? WHERE id = %lld", (long long)id);
    raw_set_blob(db, sql, ct, DIM * 4 + 16);
    snprintf(sql, sizeof sql, "UPDATE templates SET nonce = ? WHERE id = %lld", (long long)id);
    raw_set_blob(db, sql, nonce, 24);
    ASSERT_STATUS(fp_store_template_get(s, id, NULL, back, DIM), FP_ERR_FORMAT);
    nonce[0] ^= 0xff;
    raw_set_blob(db, sql, nonce, 24);
    ASSERT_OK(fp_store_template_get(s, id, NULL, back, DIM));
    assert_memory_equal(back, e, sizeof back);
    sqlite3_close(db);
    fp_store_close(s);
}

static void test_moved_ciphertext(void **state) {
    fx *f = *state;
    fp_store *s = open_ok(f);
    ASSERT_OK(fp_store_user_add(s, "alice", "Alice"));
    ASSERT_OK(fp_store_user_add(s, "mallory", "Mallory"));
    float a[DIM], b[DIM], back[DIM], m[DIM];
    make_emb(a, DIM, 1);
    make_emb(b, DIM, 2);
    ASSERT_OK(fp_store_template_add(s, "alice", MODEL, a, DIM, 0.9f, "photo:a.jpg", NULL));
    ASSERT_OK(fp_store_template_add(s, "alice", MODEL, a, DIM, 0.9f, "photo:a2.jpg", NULL));
    ASSERT_OK(fp_store_template_add(s, "mallory", MODEL, b, DIM, 0.9f, "photo:m.jpg", NULL));
    fp_store_close(s);

    sqlite3 *db = raw_open(f->db);
    int64_t ida = raw_template_id(db, "alice"), idm = raw_template_id(db, "mallory");
    char sql[256];

    /* Mallory copies Alice's template (nonce + ciphertext) into her own row, to pay as Alice. */
    snprintf(sql, sizeof sql,
             "UPDATE templates SET (nonce, ciphertext) = (SELECT nonce, ciphertext FROM templates "
             "WHERE id = %lld) WHERE id = %lld",
             (long long)ida, (long long)idm);
    raw_exec(db, sql);
    /* ... and Alice's mean into her mean row */
    raw_exec(db, "UPDATE user_means SET (nonce, ciphertext) = (SELECT nonce, ciphertext FROM "
                 "user_means WHERE user_id = 'alice') WHERE user_id = 'mallory'");
    /* ... and within Alice's rows, swaps row ids' ciphertexts (same user, other row) */
    raw_exec(db, "UPDATE templates SET (nonce, ciphertext) = (SELECT nonce, ciphertext FROM "
                 "templates WHERE user_id = 'alice' ORDER BY id LIMIT 1) "
                 "WHERE id = (SELECT max(id) FROM templates WHERE user_id = 'alice')");
    sqlite3_close(db);

    s = open_ok(f);
    ASSERT_STATUS(fp_store_template_get(s, idm, NULL, back, DIM), FP_ERR_FORMAT);
    assert_non_null(strstr(fp_last_error(), "user mallory"));
    ASSERT_STATUS(fp_store_user_mean(s, "mallory", MODEL, m, DIM), FP_ERR_FORMAT);
    assert_non_null(strstr(fp_last_error(), "mallory"));
    ASSERT_OK(fp_store_template_get(s, ida, NULL, back, DIM)); /* the original is intact */
    ASSERT_STATUS(fp_store_template_get(s, ida + 1, NULL, back, DIM), FP_ERR_FORMAT);
    ASSERT_OK(fp_store_user_mean(s, "alice", MODEL, m, DIM));
    fp_store_close(s);

    /* Re-owning the row (changing user_id, keeping the ciphertext) fails the same way. */
    db = raw_open(f->db);
    snprintf(sql, sizeof sql, "UPDATE templates SET user_id = 'mallory' WHERE id = %lld",
             (long long)ida);
    raw_exec(db, sql);
    sqlite3_close(db);
    s = open_ok(f);
    ASSERT_STATUS(fp_store_template_get(s, ida, NULL, back, DIM), FP_ERR_FORMAT);
    fp_store_close(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Deletion leaves no trace; plaintext never stored                                            */
/* ------------------------------------------------------------------------------------------ */

typedef struct audit_seen {
    int created, added, deleted, custom;
} audit_seen;

static int audit_cb(void *ctx, const fp_audit_entry *e) {
    audit_seen *a = ctx;
    a->created += strcmp(e->event, "created") == 0;
    a->added += strcmp(e->event, "template_added") == 0;
    a->deleted += strcmp(e->event, "deleted") == 0;
    a->custom += strcmp(e->event, "enroll_rejected") == 0;
    return 0;
}

static void test_delete_and_plaintext(void **state) {
    fx *f = *state;
    fp_store *s = open_ok(f);
    ASSERT_OK(fp_store_user_add(s, "alice", "Alice Martin"));
    ASSERT_OK(fp_store_user_add(s, "bob", "Bob"));
    float e[4][DIM], mean[DIM];
    for (int k = 0; k < 4; k++) {
        make_emb(e[k], DIM, 500 + (uint32_t)k);
        ASSERT_OK(fp_store_template_add(s, k < 3 ? "alice" : "bob", MODEL, e[k], DIM, 0.8f,
                                        "photo:alice.jpg", NULL));
    }
    ASSERT_OK(fp_store_lookalike_add(s, "alice", "bob", 0.61f));
    ASSERT_OK(fp_store_user_mean(s, "alice", MODEL, mean, DIM));

    /* The plaintext is never in the file: neither a template nor the mean (first 16 bytes,
     * as float32 in memory order, which is the order a naive implementation would store). */
    for (int k = 0; k < 4; k++) assert_false(db_contains(f->db, e[k], 16));
    assert_false(db_contains(f->db, mean, 16));
    fp_store_close(s);
    s = open_ok(f); /* after close the WAL is checkpointed into the main file: check again */
    for (int k = 0; k < 4; k++) assert_false(db_contains(f->db, e[k], 16));

    /* Remember Alice's ciphertexts to look for them after the delete. */
    sqlite3 *db = raw_open(f->db);
    uint8_t ct[3][DIM * 4 + 16], mct[DIM * 4 + 16];
    for (int k = 0; k < 3; k++) {
        char sql[160];
        snprintf(sql, sizeof sql,
                 "SELECT ciphertext FROM templates WHERE user_id = 'alice' ORDER BY id LIMIT 1 "
                 "OFFSET %d",
                 k);
        raw_blob(db, sql, ct[k], sizeof ct[k]);
        assert_true(db_contains(f->db, ct[k], 32)); /* the search does find what is there */
    }
    raw_blob(db, "SELECT ciphertext FROM user_means WHERE user_id = 'alice'", mct, sizeof mct);
    sqlite3_close(db);

    ASSERT_OK(fp_store_audit(s, "alice", "enroll_rejected", "blurry frame, sharpness 12.0"));
    ASSERT_OK(fp_store_user_delete(s, "alice", 1));

    db = raw_open(f->db);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM templates WHERE user_id = 'alice'"), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM user_means WHERE user_id = 'alice'"), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM lookalikes"), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM users WHERE id = 'alice' AND name = '' "
                                 "AND status = 'deleted'"),
                     1);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM templates"), 1); /* Bob's is untouched */
    sqlite3_close(db);
    /* the store's own connection zeroes freed pages */
    assert_int_equal(raw_int(fp_store_db(s), "PRAGMA secure_delete"), 1);

    for (int k = 0; k < 3; k++) {
        assert_false(db_contains(f->db, e[k], 16));
        assert_false(db_contains(f->db, ct[k], 32));
    }
    assert_false(db_contains(f->db, mct, 32));
    assert_false(db_contains(f->db, "Alice Martin", 12));

    /* Bob still works; the audit kept Alice's history plus the deletion */
    float m[DIM];
    ASSERT_OK(fp_store_user_mean(s, "bob", MODEL, m, DIM));
    assert_int_equal(fp_store_is_lookalike(s, "bob"), 0);
    audit_seen a = {0};
    ASSERT_OK(fp_store_foreach_audit(s, "alice", audit_cb, &a));
    assert_int_equal(a.created, 1);
    assert_int_equal(a.added, 3);
    assert_int_equal(a.deleted, 1);
    assert_int_equal(a.custom, 1);
    fp_store_close(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Lookalikes and audit                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void test_lookalikes_audit(void **state) {
    fx *f = *state;
    fp_store *s = open_ok(f);
    ASSERT_OK(fp_store_user_add(s, "twin-a", ""));
    ASSERT_OK(fp_store_user_add(s, "twin-b", ""));
    ASSERT_OK(fp_store_user_add(s, "solo", ""));
    ASSERT_OK(fp_store_lookalike_add(s, "twin-b", "twin-a", 0.55f));
    ASSERT_OK(fp_store_lookalike_add(s, "twin-a", "twin-b", 0.58f)); /* same pair: update */
    assert_int_equal(fp_store_is_lookalike(s, "twin-a"), 1);
    assert_int_equal(fp_store_is_lookalike(s, "twin-b"), 1);
    assert_int_equal(fp_store_is_lookalike(s, "solo"), 0);
    assert_int_equal(fp_store_is_lookalike(s, "bad id!"), -1);
    assert_int_equal(fp_store_is_lookalike(NULL, "solo"), -1);
    ASSERT_STATUS(fp_store_lookalike_add(s, "solo", "solo", 0.9f), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_lookalike_add(s, "solo", "ghost", 0.9f), FP_ERR_NOT_FOUND);
    ASSERT_STATUS(fp_store_lookalike_add(s, "solo", "twin-a", NAN), FP_ERR_INVALID_ARG);

    sqlite3 *db = raw_open(f->db);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM lookalikes"), 1);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM lookalikes WHERE user_a = 'twin-a' AND "
                                 "user_b = 'twin-b' AND abs(score - 0.58) < 1e-6"),
                     1);
    sqlite3_close(db);

    /* audit for an id that never became a user, then filtering */
    ASSERT_OK(fp_store_audit(s, "walk-in-17", "enroll_rejected", "no face"));
    ASSERT_OK(fp_store_audit(s, "solo", "enroll_started", NULL));
    audit_seen a = {0};
    ASSERT_OK(fp_store_foreach_audit(s, "walk-in-17", audit_cb, &a));
    assert_int_equal(a.custom, 1);
    assert_int_equal(a.created, 0);
    memset(&a, 0, sizeof a);
    ASSERT_OK(fp_store_foreach_audit(s, NULL, audit_cb, &a));
    assert_int_equal(a.created, 3);
    ASSERT_STATUS(fp_store_audit(s, "solo", "Bad Event", ""), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_audit(s, "solo", "ok", "line\ninjection"), FP_ERR_INVALID_ARG);
    fp_store_close(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Transaction helpers (the internal API the ledger will use)                                  */
/* ------------------------------------------------------------------------------------------ */

static fp_status tx_insert(fp_store *s, void *ctx) {
    const char *event = ctx;
    return fp_store_audit_insert(s, "tx-test", event, "");
}

static fp_status tx_insert_then_fail(fp_store *s, void *ctx) {
    fp_status st = fp_store_audit_insert(s, "tx-test", (const char *)ctx, "");
    if (st != FP_OK) return st;
    return FP_ERR_INVALID_ARG; /* e.g. a business rule refused: everything above is undone */
}

static fp_status tx_outer(fp_store *s, void *ctx) {
    (void)ctx;
    fp_status st = fp_store_tx(s, tx_insert, "outer");
    if (st == FP_OK) {
        /* a nested failure only undoes its own savepoint */
        assert_int_equal(fp_store_tx(s, tx_insert_then_fail, "inner"), FP_ERR_INVALID_ARG);
        /* public calls work inside a transaction too (recursive lock, savepoint) */
        st = fp_store_user_add(s, "tx-user", "");
    }
    if (st == FP_OK) assert_int_equal(fp_store_vacuum(s), FP_ERR_INVALID_ARG);
    return st;
}

static fp_status read_then_write(fp_store *s, void *ctx) {
    (void)ctx;
    assert_non_null(fp_store_db(s));
    return fp_store_tx(s, tx_insert, "from-read");
}

static void test_tx_helpers(void **state) {
    fx *f = *state;
    fp_store *s = open_ok(f);
    ASSERT_OK(fp_store_tx(s, tx_insert, "committed"));
    ASSERT_STATUS(fp_store_tx(s, tx_insert_then_fail, "rolled-back"), FP_ERR_INVALID_ARG);
    ASSERT_OK(fp_store_tx(s, tx_outer, NULL));
    ASSERT_STATUS(fp_store_read(s, read_then_write, NULL), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_tx(NULL, tx_insert, "x"), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_tx(s, NULL, NULL), FP_ERR_INVALID_ARG);
    fp_store_close(s);

    sqlite3 *db = raw_open(f->db);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM audit WHERE event = 'committed'"), 1);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM audit WHERE event = 'rolled-back'"), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM audit WHERE event = 'outer'"), 1);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM audit WHERE event = 'inner'"), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM audit WHERE event = 'from-read'"), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM users WHERE id = 'tx-user'"), 1);
    sqlite3_close(db);
}

/* ------------------------------------------------------------------------------------------ */
/* Concurrency: WAL readers while a writer enrolls                                             */
/* ------------------------------------------------------------------------------------------ */

#define WRITER_USERS 40

typedef struct conc {
    fx *f;
    pthread_barrier_t start; /* the writer starts once every reader has its handle open */
    fp_store *shared;        /* one handle used by a writer and a reader thread together */
    atomic_int done;
    int reads[3];
    int errors;
    pthread_mutex_t mu;
} conc;

static int count_mean(void *ctx, const char *user_id, const float *emb, int dim) {
    int *n = ctx;
    (void)user_id;
    if (dim != DIM || fabs(norm(emb, dim) - 1.0) > 1e-4) return 1; /* stops: counted as error */
    (*n)++;
    return 0;
}

static void conc_error(conc *c, const char *what) {
    pthread_mutex_lock(&c->mu);
    fprintf(stderr, "concurrency: %s: %s\n", what, fp_last_error());
    c->errors++;
    pthread_mutex_unlock(&c->mu);
}

static void *writer(void *p) {
    conc *c = p;
    fp_store *s = NULL;
    if (fp_store_open(c->f->db, &c->f->key, &s) != FP_OK) {
        conc_error(c, "writer open");
        c->done = 1;
        pthread_barrier_wait(&c->start);
        return NULL;
    }
    pthread_barrier_wait(&c->start);
    float e[DIM];
    for (int i = 0; i < WRITER_USERS; i++) {
        char id[32];
        snprintf(id, sizeof id, "user%03d", i);
        /* Pace the enrollments so the readers' walks interleave with them. */
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
        if (fp_store_user_add(s, id, "") != FP_OK) conc_error(c, "user_add");
        for (int k = 0; k < 2; k++) {
            make_emb(e, DIM, (uint32_t)(i * 10 + k));
            if (fp_store_template_add(s, id, MODEL, e, DIM, 0.9f, "photo:w.jpg", NULL) != FP_OK)
                conc_error(c, "template_add");
        }
    }
    fp_store_close(s);
    c->done = 1;
    return NULL;
}

typedef struct reader_arg {
    conc *c;
    int slot;
} reader_arg;

static void *reader(void *p) {
    reader_arg *r = p;
    conc *c = r->c;
    fp_store *s = c->shared;
    if (!s && fp_store_open(c->f->db, &c->f->key, &s) != FP_OK) {
        conc_error(c, "reader open");
        s = NULL;
    }
    if (!c->shared) pthread_barrier_wait(&c->start);
    if (!s) return NULL;
    int last = 0;
    for (;;) {
        int finished = c->done; /* read before the walk, so the last walk sees everything */
        int n = 0;
        if (fp_store_foreach_mean(s, MODEL, count_mean, &n) != FP_OK) conc_error(c, "foreach_mean");
        /* a snapshot never shows fewer users than an earlier one */
        if (n < last) conc_error(c, "gallery shrank");
        last = n;
        r->c->reads[r->slot]++;
        if (finished) break;
    }
    if (last != WRITER_USERS) conc_error(c, "final gallery size");
    if (s != c->shared) fp_store_close(s);
    return NULL;
}

static void test_concurrent_wal(void **state) {
    fx *f = *state;
    fp_store *init = open_ok(f); /* create the schema before the threads race */
    fp_store_close(init);
    conc c;
    memset(&c, 0, sizeof c);
    c.f = f;
    pthread_mutex_init(&c.mu, NULL);
    pthread_barrier_init(&c.start, NULL, 3);
    pthread_t w, r[2];
    reader_arg ra[2] = {{&c, 0}, {&c, 1}};
    assert_int_equal(pthread_create(&w, NULL, writer, &c), 0);
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&r[i], NULL, reader, &ra[i]), 0);
    pthread_join(w, NULL);
    for (int i = 0; i < 2; i++) pthread_join(r[i], NULL);
    assert_int_equal(c.errors, 0);
    /* more than one walk each: at least one ran while the writer was still enrolling */
    assert_true(c.reads[0] >= 2 && c.reads[1] >= 2);
    fprintf(stderr, "concurrency: reader walks %d and %d during %d enrollment transactions\n",
            c.reads[0], c.reads[1], WRITER_USERS * 3);
    pthread_barrier_destroy(&c.start);
    pthread_mutex_destroy(&c.mu);
}

/* Another process holds the write lock for a while: a store write waits (busy timeout and
 * transaction retry) instead of failing. */
typedef struct holder {
    const char *path;
    pthread_barrier_t locked;
} holder;

static void *hold_write_lock(void *p) {
    holder *h = p;
    sqlite3 *db = NULL;
    sqlite3_open(h->path, &db);
    sqlite3_exec(db,
                 "BEGIN IMMEDIATE; INSERT INTO audit(user_id, event, detail, time_ms) "
                 "VALUES ('other', 'other-process', '', 0)",
                 NULL, NULL, NULL);
    pthread_barrier_wait(&h->locked);
    struct timespec ts = {0, 300000000};
    nanosleep(&ts, NULL);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
    return NULL;
}

static void test_busy_wait(void **state) {
    fx *f = *state;
    fp_store *s = open_ok(f);
    holder h = {f->db, {{0}}};
    pthread_barrier_init(&h.locked, NULL, 2);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, hold_write_lock, &h), 0);
    pthread_barrier_wait(&h.locked);
    int64_t t0 = fp_store_now_ms();
    ASSERT_OK(fp_store_user_add(s, "patient", ""));
    int64_t waited = fp_store_now_ms() - t0;
    pthread_join(t, NULL);
    pthread_barrier_destroy(&h.locked);
    assert_true(waited >= 200); /* it really waited for the other writer */
    /* reads never wait for a writer in WAL mode, and both writes landed */
    fp_user u;
    ASSERT_OK(fp_store_user_get(s, "patient", &u));
    assert_int_equal(
        raw_int(fp_store_db(s), "SELECT count(*) FROM audit WHERE event = 'other-process'"), 1);
    fp_store_close(s);
}

/* One handle shared by threads: calls are serialised by its lock. */
static void *shared_writer(void *p) {
    conc *c = p;
    float e[DIM];
    for (int i = 0; i < WRITER_USERS; i++) {
        char id[32];
        snprintf(id, sizeof id, "shared%03d", i);
        if (fp_store_user_add(c->shared, id, "") != FP_OK) conc_error(c, "shared user_add");
        make_emb(e, DIM, (uint32_t)i + 7000);
        if (fp_store_template_add(c->shared, id, MODEL, e, DIM, 0.9f, "photo:s.jpg", NULL) != FP_OK)
            conc_error(c, "shared template_add");
    }
    c->done = 1;
    return NULL;
}

static void test_shared_handle(void **state) {
    fx *f = *state;
    conc c;
    memset(&c, 0, sizeof c);
    c.f = f;
    c.shared = open_ok(f);
    pthread_mutex_init(&c.mu, NULL);
    pthread_t w, r;
    reader_arg ra = {&c, 2};
    assert_int_equal(pthread_create(&w, NULL, shared_writer, &c), 0);
    assert_int_equal(pthread_create(&r, NULL, reader, &ra), 0);
    pthread_join(w, NULL);
    pthread_join(r, NULL);
    assert_int_equal(c.errors, 0);
    fp_store_close(c.shared);
    pthread_mutex_destroy(&c.mu);
}

/* ------------------------------------------------------------------------------------------ */
/* Bad inputs                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static int never(void *ctx, const char *u, const float *e, int d) {
    (void)ctx, (void)u, (void)e, (void)d;
    return 0;
}

static void test_bad_inputs(void **state) {
    fx *f = *state;
    fp_store *s = NULL;
    ASSERT_STATUS(fp_store_open(NULL, &f->key, &s), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_open(f->db, NULL, &s), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_open(f->db, &f->key, NULL), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_open("", &f->key, &s), FP_ERR_INVALID_ARG);
    s = open_ok(f);
    ASSERT_OK(fp_store_user_add(s, "alice", "Alice"));
    float e[DIM], m[DIM];
    make_emb(e, DIM, 3);

    /* ids */
    ASSERT_STATUS(fp_store_user_add(NULL, "x", ""), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_user_add(s, NULL, ""), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_user_add(s, "", ""), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_user_add(s, "x", NULL), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_user_add(s, "with space", ""), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_user_add(s, "quote'", ""), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_user_add(s, "slash/no", ""), FP_ERR_INVALID_ARG);
    char longid[80];
    memset(longid, 'a', sizeof longid);
    longid[64] = 0;
    ASSERT_STATUS(fp_store_user_add(s, longid, ""), FP_ERR_INVALID_ARG);
    longid[63] = 0;
    ASSERT_OK(fp_store_user_add(s, longid, "")); /* 63 bytes is the limit */
    /* names */
    ASSERT_STATUS(fp_store_user_add(s, "n1", "bell\a"), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_user_add(s, "n2", "bad utf8 \xc3("), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_user_add(s, "n3", "overlong \xc0\xaf"), FP_ERR_INVALID_ARG);
    char longname[200];
    memset(longname, 'x', sizeof longname);
    longname[128] = 0;
    ASSERT_STATUS(fp_store_user_add(s, "n4", longname), FP_ERR_INVALID_ARG);

    /* embeddings */
    ASSERT_STATUS(fp_store_template_add(s, "alice", MODEL, NULL, DIM, 1, "", NULL),
                  FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_template_add(s, "alice", MODEL, e, 0, 1, "", NULL), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_template_add(s, "alice", MODEL, e, -3, 1, "", NULL), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_template_add(s, "alice", MODEL, e, FP_STORE_MAX_DIM + 1, 1, "", NULL),
                  FP_ERR_INVALID_ARG);
    float bad[DIM];
    memcpy(bad, e, sizeof bad);
    bad[17] = NAN;
    ASSERT_STATUS(fp_store_template_add(s, "alice", MODEL, bad, DIM, 1, "", NULL),
                  FP_ERR_INVALID_ARG);
    assert_null(strstr(fp_last_error(), "nan")); /* the value itself is never printed */
    bad[17] = INFINITY;
    ASSERT_STATUS(fp_store_template_add(s, "alice", MODEL, bad, DIM, 1, "", NULL),
                  FP_ERR_INVALID_ARG);
    memset(bad, 0, sizeof bad);
    ASSERT_STATUS(fp_store_template_add(s, "alice", MODEL, bad, DIM, 1, "", NULL),
                  FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_template_add(s, "alice", MODEL, e, DIM, NAN, "", NULL),
                  FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_template_add(s, "alice", "", e, DIM, 1, "", NULL), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_template_add(s, "alice", NULL, e, DIM, 1, "", NULL), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_template_add(s, "", MODEL, e, DIM, 1, "", NULL), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_template_add(s, "alice", MODEL, e, DIM, 1, "a\nb", NULL),
                  FP_ERR_INVALID_ARG);
    /* nothing of the above reached the DB */
    fp_user u;
    ASSERT_OK(fp_store_user_get(s, "alice", &u));
    assert_int_equal(u.n_templates, 0);

    ASSERT_STATUS(fp_store_user_get(s, "alice", NULL), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_user_get(s, "", &u), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_user_mean(s, "alice", MODEL, NULL, DIM), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_user_mean(s, "alice", MODEL, m, 0), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_foreach_mean(s, MODEL, NULL, NULL), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_foreach_mean(s, NULL, never, NULL), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_foreach_mean(NULL, MODEL, never, NULL), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_user_delete(s, NULL, 0), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_user_delete(NULL, "alice", 0), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_template_get(NULL, 1, NULL, NULL, 0), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_template_get(s, 1, NULL, m, 0), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_lookalike_add(s, NULL, "alice", 0.5f), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_audit(s, "alice", NULL, NULL), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_audit(s, NULL, "x", NULL), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_store_vacuum(NULL), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_store_schema_version(NULL), -1);
    assert_null(fp_store_db(NULL));
    fp_store_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keys, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_open_reopen, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_migrations, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_refused_files, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_users, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_templates_and_mean, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_foreach_mean, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_tamper, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_moved_ciphertext, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_and_plaintext, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_lookalikes_audit, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_tx_helpers, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_wal, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_shared_handle, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_busy_wait, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_inputs, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
