/*
 * users.c - users (add, get, status, delete), lookalike pairs and the enrollment audit trail.
 *
 * Deleting a user erases everything biometric (templates, mean templates, lookalike pairs) and
 * the display name, but keeps the users row as a tombstone with status 'deleted': the ledger of
 * later issues references user ids, and an id that once paid must never be handed to another
 * person. The audit keeps its entries (they hold no biometric data) plus one "deleted" entry.
 * Every write here runs in one transaction together with its audit entry.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "store/store.h"

static const char *status_name(int status) {
    switch (status) {
    case FP_USER_ACTIVE: return "active";
    case FP_USER_LOCKED: return "locked";
    case FP_USER_DELETED: return "deleted";
    }
    return NULL;
}

static int status_value(const char *name) {
    if (name && strcmp(name, "active") == 0) return FP_USER_ACTIVE;
    if (name && strcmp(name, "locked") == 0) return FP_USER_LOCKED;
    return FP_USER_DELETED; /* the CHECK constraint allows nothing else */
}

/* Copies a column into a fixed buffer (truncating: the CHECK constraints bound every column). */
static void col_copy(char *dst, size_t cap, sqlite3_stmt *st, int col) {
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

/* Reads a user's status; FP_ERR_NOT_FOUND when the id is unknown. */
static fp_status user_status(fp_store *s, const char *id, int *status) {
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s, "SELECT status FROM users WHERE id = ?", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *status = status_value((const char *)sqlite3_column_text(st, 0));
    else if (rc == SQLITE_DONE)
        res = fp_fail(FP_ERR_NOT_FOUND, "user %s not found", id);
    else
        res = fp_store_sqlfail(s, rc, "reading a user");
    sqlite3_finalize(st);
    return res;
}

/* Runs one statement with up to two text parameters (?1, ?2) that returns no rows; *changes
 * (may be NULL) gets the number of rows it changed. */
static fp_status exec_text(fp_store *s, const char *sql, const char *what, const char *a,
                           const char *b, int *changes) {
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s, sql, &st);
    if (res != FP_OK) return res;
    if (a) sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b) sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) res = fp_store_sqlfail(s, rc, what);
    if (changes) *changes = sqlite3_changes(fp_store_db(s));
    sqlite3_finalize(st);
    return res;
}

/* ------------------------------------------------------------------------------------------ */
/* Audit                                                                                       */
/* ------------------------------------------------------------------------------------------ */

fp_status fp_store_audit_insert(fp_store *s, const char *user_id, const char *event,
                                const char *detail) {
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(
        s, "INSERT INTO audit(user_id, event, detail, time_ms) VALUES (?, ?, ?, ?)", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, event, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, detail ? detail : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, fp_store_now_ms());
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) res = fp_store_sqlfail(s, rc, "writing the audit trail");
    sqlite3_finalize(st);
    return res;
}

typedef struct audit_ctx {
    const char *user_id, *event, *detail;
} audit_ctx;

static fp_status audit_tx(fp_store *s, void *p) {
    audit_ctx *c = p;
    return fp_store_audit_insert(s, c->user_id, c->event, c->detail);
}

fp_status fp_store_audit(fp_store *s, const char *user_id, const char *event, const char *detail) {
    if (!s) return fp_fail(FP_ERR_INVALID_ARG, "fp_store_audit: NULL store");
    fp_status st = fp_store_check_id("fp_store_audit: user", user_id, 0);
    if (st == FP_OK) st = fp_store_check_event("fp_store_audit", event);
    if (st == FP_OK && detail) st = fp_store_check_text("fp_store_audit: detail", detail, 1023);
    if (st != FP_OK) return st;
    audit_ctx c = {user_id, event, detail};
    return fp_store_tx(s, audit_tx, &c);
}

typedef struct audit_each_ctx {
    const char *user_id;
    int (*cb)(void *, const fp_audit_entry *);
    void *ctx;
} audit_each_ctx;

static fp_status audit_each_tx(fp_store *s, void *p) {
    audit_each_ctx *c = p;
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(
        s,
        c->user_id
            ? "SELECT id, user_id, event, detail, time_ms FROM audit WHERE user_id = ? ORDER BY id"
            : "SELECT id, user_id, event, detail, time_ms FROM audit ORDER BY id",
        &st);
    if (res != FP_OK) return res;
    if (c->user_id) sqlite3_bind_text(st, 1, c->user_id, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        fp_audit_entry e;
        memset(&e, 0, sizeof e);
        e.id = sqlite3_column_int64(st, 0);
        col_copy(e.user_id, sizeof e.user_id, st, 1);
        col_copy(e.event, sizeof e.event, st, 2);
        const unsigned char *d = sqlite3_column_text(st, 3);
        e.detail = d ? (const char *)d : "";
        e.time_ms = sqlite3_column_int64(st, 4);
        if (c->cb(c->ctx, &e)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE) res = fp_store_sqlfail(s, rc, "reading the audit trail");
    sqlite3_finalize(st);
    return res;
}

fp_status fp_store_foreach_audit(fp_store *s, const char *user_id,
                                 int (*cb)(void *ctx, const fp_audit_entry *e), void *ctx) {
    if (!s || !cb) return fp_fail(FP_ERR_INVALID_ARG, "fp_store_foreach_audit: NULL argument");
    if (user_id) {
        fp_status st = fp_store_check_id("fp_store_foreach_audit: user", user_id, 0);
        if (st != FP_OK) return st;
    }
    audit_each_ctx c = {user_id, cb, ctx};
    return fp_store_read(s, audit_each_tx, &c);
}

/* ------------------------------------------------------------------------------------------ */
/* Users                                                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef struct user_add_ctx {
    const char *id, *name;
} user_add_ctx;

static fp_status user_add_tx(fp_store *s, void *p) {
    user_add_ctx *c = p;
    int status = 0;
    fp_status res = user_status(s, c->id, &status);
    if (res == FP_OK)
        return fp_fail(FP_ERR_INVALID_ARG,
                       status == FP_USER_DELETED
                           ? "user id %s belonged to a deleted user; ids are never reused"
                           : "user id %s already exists",
                       c->id);
    if (res != FP_ERR_NOT_FOUND) return res;
    sqlite3_stmt *st = NULL;
    res = fp_store_prepare(s,
                           "INSERT INTO users(id, name, created_ms, updated_ms, status) "
                           "VALUES (?1, ?2, ?3, ?3, 'active')",
                           &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, fp_store_now_ms());
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) res = fp_store_sqlfail(s, rc, "adding a user");
    sqlite3_finalize(st);
    if (res != FP_OK) return res;
    /* The name is personal data that deletion erases, so the audit does not copy it. */
    return fp_store_audit_insert(s, c->id, "created", "");
}

fp_status fp_store_user_add(fp_store *s, const char *id, const char *name) {
    if (!s) return fp_fail(FP_ERR_INVALID_ARG, "fp_store_user_add: NULL store");
    fp_status st = fp_store_check_id("fp_store_user_add", id, 0);
    if (st == FP_OK) st = fp_store_check_text("fp_store_user_add: name", name, FP_STORE_NAME_MAX);
    if (st != FP_OK) return st;
    user_add_ctx c = {id, name};
    return fp_store_tx(s, user_add_tx, &c);
}

static const char USER_SELECT[] =
    "SELECT u.id, u.name, u.created_ms, u.status, "
    "(SELECT count(*) FROM templates t WHERE t.user_id = u.id) FROM users u";

static void user_from_row(sqlite3_stmt *st, fp_user *u) {
    memset(u, 0, sizeof *u);
    col_copy(u->id, sizeof u->id, st, 0);
    col_copy(u->name, sizeof u->name, st, 1);
    u->created_ms = sqlite3_column_int64(st, 2);
    u->status = status_value((const char *)sqlite3_column_text(st, 3));
    u->n_templates = sqlite3_column_int(st, 4);
}

typedef struct user_get_ctx {
    const char *id;
    fp_user *out;
} user_get_ctx;

static fp_status user_get_tx(fp_store *s, void *p) {
    user_get_ctx *c = p;
    char sql[sizeof USER_SELECT + 32];
    snprintf(sql, sizeof sql, "%s WHERE u.id = ?", USER_SELECT);
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s, sql, &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        user_from_row(st, c->out);
    else if (rc == SQLITE_DONE)
        res = fp_fail(FP_ERR_NOT_FOUND, "user %s not found", c->id);
    else
        res = fp_store_sqlfail(s, rc, "reading a user");
    sqlite3_finalize(st);
    return res;
}

fp_status fp_store_user_get(fp_store *s, const char *id, fp_user *out) {
    if (!s || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_store_user_get: NULL argument");
    memset(out, 0, sizeof *out);
    fp_status st = fp_store_check_id("fp_store_user_get", id, 0);
    if (st != FP_OK) return st;
    user_get_ctx c = {id, out};
    return fp_store_read(s, user_get_tx, &c);
}

typedef struct user_each_ctx {
    int (*cb)(void *, const fp_user *);
    void *ctx;
} user_each_ctx;

static fp_status user_each_tx(fp_store *s, void *p) {
    user_each_ctx *c = p;
    char sql[sizeof USER_SELECT + 32];
    snprintf(sql, sizeof sql, "%s ORDER BY u.id", USER_SELECT);
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s, sql, &st);
    if (res != FP_OK) return res;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        fp_user u;
        user_from_row(st, &u);
        if (c->cb(c->ctx, &u)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE) res = fp_store_sqlfail(s, rc, "listing users");
    sqlite3_finalize(st);
    return res;
}

fp_status fp_store_foreach_user(fp_store *s, int (*cb)(void *ctx, const fp_user *user), void *ctx) {
    if (!s || !cb) return fp_fail(FP_ERR_INVALID_ARG, "fp_store_foreach_user: NULL argument");
    user_each_ctx c = {cb, ctx};
    return fp_store_read(s, user_each_tx, &c);
}

typedef struct user_status_ctx {
    const char *id;
    int status;
} user_status_ctx;

static fp_status user_set_status_tx(fp_store *s, void *p) {
    user_status_ctx *c = p;
    int old = 0;
    fp_status res = user_status(s, c->id, &old);
    if (res != FP_OK) return res;
    if (old == FP_USER_DELETED)
        return fp_fail(FP_ERR_INVALID_ARG, "user %s is deleted; its status cannot change", c->id);
    if (old == c->status) return FP_OK;
    sqlite3_stmt *st = NULL;
    res = fp_store_prepare(s, "UPDATE users SET status = ?, updated_ms = ? WHERE id = ?", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, status_name(c->status), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, fp_store_now_ms());
    sqlite3_bind_text(st, 3, c->id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) res = fp_store_sqlfail(s, rc, "changing a user's status");
    sqlite3_finalize(st);
    if (res != FP_OK) return res;
    char detail[64];
    snprintf(detail, sizeof detail, "%s -> %s", status_name(old), status_name(c->status));
    return fp_store_audit_insert(s, c->id, "status", detail);
}

fp_status fp_store_user_set_status(fp_store *s, const char *id, int status) {
    if (!s) return fp_fail(FP_ERR_INVALID_ARG, "fp_store_user_set_status: NULL store");
    fp_status st = fp_store_check_id("fp_store_user_set_status", id, 0);
    if (st != FP_OK) return st;
    if (status != FP_USER_ACTIVE && status != FP_USER_LOCKED)
        return fp_fail(FP_ERR_INVALID_ARG,
                       "fp_store_user_set_status: status %d (only active or locked; use "
                       "fp_store_user_delete to delete)",
                       status);
    user_status_ctx c = {id, status};
    return fp_store_tx(s, user_set_status_tx, &c);
}

static fp_status user_delete_tx(fp_store *s, void *p) {
    const char *id = p;
    int old = 0;
    fp_status res = user_status(s, id, &old);
    if (res != FP_OK) return res;
    int n_templates = 0, n_means = 0, n_pairs = 0;
    /* Explicit deletes rather than ON DELETE CASCADE: the users row stays (see the header). */
    res = exec_text(s, "DELETE FROM templates WHERE user_id = ?1", "deleting templates", id, NULL,
                    &n_templates);
    if (res == FP_OK)
        res = exec_text(s, "DELETE FROM user_means WHERE user_id = ?1", "deleting mean templates",
                        id, NULL, &n_means);
    if (res == FP_OK)
        res = exec_text(s, "DELETE FROM lookalikes WHERE user_a = ?1 OR user_b = ?1",
                        "deleting lookalike pairs", id, NULL, &n_pairs);
    if (res != FP_OK || old == FP_USER_DELETED) return res;
    sqlite3_stmt *st = NULL;
    res = fp_store_prepare(
        s, "UPDATE users SET name = '', status = 'deleted', updated_ms = ? WHERE id = ?", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int64(st, 1, fp_store_now_ms());
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) res = fp_store_sqlfail(s, rc, "marking a user deleted");
    sqlite3_finalize(st);
    if (res != FP_OK) return res;
    char detail[128];
    snprintf(detail, sizeof detail, "templates=%d means=%d lookalikes=%d", n_templates, n_means,
             n_pairs);
    return fp_store_audit_insert(s, id, "deleted", detail);
}

fp_status fp_store_user_delete(fp_store *s, const char *id, int vacuum) {
    if (!s) return fp_fail(FP_ERR_INVALID_ARG, "fp_store_user_delete: NULL store");
    fp_status st = fp_store_check_id("fp_store_user_delete", id, 0);
    if (st != FP_OK) return st;
    st = fp_store_tx(s, user_delete_tx, (void *)id);
    if (st == FP_OK && vacuum) st = fp_store_vacuum(s);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Lookalikes                                                                                  */
/* ------------------------------------------------------------------------------------------ */

typedef struct lookalike_ctx {
    const char *a, *b; /* a < b */
    float score;
} lookalike_ctx;

static fp_status lookalike_add_tx(fp_store *s, void *p) {
    lookalike_ctx *c = p;
    const char *ids[2] = {c->a, c->b};
    for (int i = 0; i < 2; i++) {
        int status = 0;
        fp_status res = user_status(s, ids[i], &status);
        if (res != FP_OK) return res;
        if (status == FP_USER_DELETED)
            return fp_fail(FP_ERR_NOT_FOUND, "user %s is deleted", ids[i]);
    }
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(
        s,
        "INSERT INTO lookalikes(user_a, user_b, score, created_ms) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(user_a, user_b) DO UPDATE SET score = excluded.score",
        &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, c->a, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->b, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 3, c->score);
    sqlite3_bind_int64(st, 4, fp_store_now_ms());
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) res = fp_store_sqlfail(s, rc, "adding a lookalike pair");
    sqlite3_finalize(st);
    if (res != FP_OK) return res;
    char detail[128];
    for (int i = 0; i < 2 && res == FP_OK; i++) {
        snprintf(detail, sizeof detail, "with=%s score=%.4f", ids[1 - i], (double)c->score);
        res = fp_store_audit_insert(s, ids[i], "lookalike", detail);
    }
    return res;
}

fp_status fp_store_lookalike_add(fp_store *s, const char *a, const char *b, float score) {
    if (!s) return fp_fail(FP_ERR_INVALID_ARG, "fp_store_lookalike_add: NULL store");
    fp_status st = fp_store_check_id("fp_store_lookalike_add: a", a, 0);
    if (st == FP_OK) st = fp_store_check_id("fp_store_lookalike_add: b", b, 0);
    if (st != FP_OK) return st;
    if (strcmp(a, b) == 0)
        return fp_fail(FP_ERR_INVALID_ARG,
                       "fp_store_lookalike_add: a user cannot look like itself");
    if (!isfinite(score))
        return fp_fail(FP_ERR_INVALID_ARG, "fp_store_lookalike_add: score is not finite");
    /* One row per pair: SQLite's BINARY collation orders like strcmp. */
    lookalike_ctx c = {strcmp(a, b) < 0 ? a : b, strcmp(a, b) < 0 ? b : a, score};
    return fp_store_tx(s, lookalike_add_tx, &c);
}

typedef struct is_lookalike_ctx {
    const char *id;
    int result;
} is_lookalike_ctx;

static fp_status is_lookalike_tx(fp_store *s, void *p) {
    is_lookalike_ctx *c = p;
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(
        s, "SELECT EXISTS (SELECT 1 FROM lookalikes WHERE user_a = ?1 OR user_b = ?1)", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        c->result = sqlite3_column_int(st, 0) != 0;
    else
        res = fp_store_sqlfail(s, rc, "reading lookalike pairs");
    sqlite3_finalize(st);
    return res;
}

int fp_store_is_lookalike(fp_store *s, const char *user_id) {
    if (!s) {
        fp_fail(FP_ERR_INVALID_ARG, "fp_store_is_lookalike: NULL store");
        return -1;
    }
    if (fp_store_check_id("fp_store_is_lookalike", user_id, 0) != FP_OK) return -1;
    is_lookalike_ctx c = {user_id, 0};
    if (fp_store_read(s, is_lookalike_tx, &c) != FP_OK) return -1;
    return c.result;
}
