/*
 * templates.c - encrypted face templates and the per-user mean template that the gallery loads.
 *
 * A template row holds one embedding sealed under the store key with associated data
 * (user id, row id, model id, dim): moving the ciphertext to another row or user, or editing
 * those columns, makes decryption fail, which is reported as FP_ERR_FORMAT naming the user.
 * The mean template of (user, model) is the L2-normalised mean of the user's L2-normalised
 * templates of that model (each capture weighs the same whatever its raw norm); it is recomputed
 * inside the same transaction as every template add or delete, so the two never disagree.
 * Decrypted embeddings live only in buffers that are wiped before they are freed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/core.h"
#include "store/store.h"

/* Reads an id column into a fixed buffer (the schema bounds its length). */
static void col_copy(char *dst, size_t cap, sqlite3_stmt *st, int col) {
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

/* A zeroed float buffer that is wiped on release (it holds plaintext embeddings). */
static float *secret_alloc(int n) { return calloc((size_t)n, sizeof(float)); }

static void secret_free(float *p, int n) {
    if (!p) return;
    sodium_memzero(p, (size_t)n * sizeof(float));
    free(p);
}

/* Decrypts the (nonce, ciphertext) columns nonce_col, nonce_col + 1 of a row. */
static int unseal_row(fp_store *s, sqlite3_stmt *st, int nonce_col, const fp_store_ad *ad,
                      float *emb, int dim) {
    const void *nonce = sqlite3_column_blob(st, nonce_col);
    int nonce_len = sqlite3_column_bytes(st, nonce_col);
    const void *ct = sqlite3_column_blob(st, nonce_col + 1);
    int ct_len = sqlite3_column_bytes(st, nonce_col + 1);
    if (!nonce || nonce_len != FP_STORE_NONCE_BYTES || !ct || ct_len < FP_STORE_TAG_BYTES) {
        memset(emb, 0, (size_t)dim * sizeof(float));
        return -1;
    }
    return fp_store_unseal(fp_store_key(s), ad, nonce, ct, (size_t)ct_len, emb, dim);
}

/* The model's dim as already stored (0 when the model has no template yet): one model id must
 * always mean one embedding size, or the gallery could not stack its rows. */
static fp_status model_dim(fp_store *s, const char *model_id, int *dim) {
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s,
                                     "SELECT dim FROM templates WHERE model_id = ?1 UNION ALL "
                                     "SELECT dim FROM user_means WHERE model_id = ?1 LIMIT 1",
                                     &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, model_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *dim = 0;
    if (rc == SQLITE_ROW)
        *dim = sqlite3_column_int(st, 0);
    else if (rc != SQLITE_DONE)
        res = fp_store_sqlfail(s, rc, "reading a model's dim");
    sqlite3_finalize(st);
    return res;
}

/* ------------------------------------------------------------------------------------------ */
/* Mean template                                                                               */
/* ------------------------------------------------------------------------------------------ */

/* Recomputes (or removes, when no template is left) the mean of (user_id, model_id). Runs inside
 * the caller's write transaction. */
static fp_status recompute_mean(fp_store *s, const char *user_id, const char *model_id) {
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(
        s,
        "SELECT id, dim, nonce, ciphertext FROM templates WHERE user_id = ? AND model_id = ? "
        "ORDER BY id",
        &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, model_id, -1, SQLITE_STATIC);

    int dim = 0, n = 0, rc;
    float *emb = NULL;
    double *sum = NULL; /* double: a user may have many templates */
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        int d = sqlite3_column_int(st, 1);
        if (d < 1 || d > FP_STORE_MAX_DIM) { /* CHECK guards writes, not a hand-edited file */
            res = fp_fail(FP_ERR_FORMAT, "template %lld of user %s: bad dim %d", (long long)id,
                          user_id, d);
            break;
        }
        if (!emb) {
            dim = d;
            emb = secret_alloc(dim);
            sum = calloc((size_t)dim, sizeof(double));
            if (!emb || !sum) {
                res = fp_fail(FP_ERR_NOMEM, "mean template: out of memory");
                break;
            }
        }
        if (d != dim) {
            res = fp_fail(FP_ERR_FORMAT, "user %s: templates of model %s disagree on dim (%d, %d)",
                          user_id, model_id, dim, d);
            break;
        }
        fp_store_ad ad;
        fp_store_ad_template(&ad, user_id, id, model_id, dim);
        if (unseal_row(s, st, 2, &ad, emb, dim) != 0) {
            res =
                fp_fail(FP_ERR_FORMAT,
                        "template %lld of user %s: authentication failed (tampered, or moved from "
                        "another row or user)",
                        (long long)id, user_id);
            break;
        }
        double norm = 0;
        for (int i = 0; i < dim; i++) norm += (double)emb[i] * emb[i];
        norm = sqrt(norm);
        if (!(norm > 0)) {
            res = fp_fail(FP_ERR_FORMAT, "template %lld of user %s has zero norm", (long long)id,
                          user_id);
            break;
        }
        for (int i = 0; i < dim; i++) sum[i] += emb[i] / norm;
        n++;
    }
    if (res == FP_OK && rc != SQLITE_DONE) res = fp_store_sqlfail(s, rc, "reading templates");
    sqlite3_finalize(st);

    if (res == FP_OK && n == 0) {
        res = fp_store_prepare(s, "DELETE FROM user_means WHERE user_id = ? AND model_id = ?", &st);
        if (res == FP_OK) {
            sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, model_id, -1, SQLITE_STATIC);
            rc = sqlite3_step(st);
            if (rc != SQLITE_DONE) res = fp_store_sqlfail(s, rc, "removing a mean template");
            sqlite3_finalize(st);
        }
    } else if (res == FP_OK) {
        double norm = 0;
        for (int i = 0; i < dim; i++) norm += sum[i] * sum[i];
        norm = sqrt(norm);
        /* Unit vectors that cancel out (t and -t) have no direction to match against. */
        if (!(norm > 1e-6 * n))
            res = fp_fail(FP_ERR_INVALID_ARG,
                          "user %s: the templates of model %s cancel out (mean is zero)", user_id,
                          model_id);
        for (int i = 0; res == FP_OK && i < dim; i++) emb[i] = (float)(sum[i] / norm);
        size_t ct_len = (size_t)dim * 4 + FP_STORE_TAG_BYTES;
        uint8_t *ct = res == FP_OK ? malloc(ct_len) : NULL;
        if (res == FP_OK && !ct) res = fp_fail(FP_ERR_NOMEM, "mean template: out of memory");
        if (res == FP_OK) {
            uint8_t nonce[FP_STORE_NONCE_BYTES];
            fp_store_ad ad;
            fp_store_ad_mean(&ad, user_id, model_id, dim);
            fp_store_seal(fp_store_key(s), &ad, emb, dim, nonce, ct);
            res = fp_store_prepare(
                s,
                "INSERT INTO user_means(user_id, model_id, dim, n_templates, updated_ms, nonce, "
                "ciphertext) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(user_id, model_id) DO UPDATE SET dim = excluded.dim, "
                "n_templates = excluded.n_templates, updated_ms = excluded.updated_ms, "
                "nonce = excluded.nonce, ciphertext = excluded.ciphertext",
                &st);
            if (res == FP_OK) {
                sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, model_id, -1, SQLITE_STATIC);
                sqlite3_bind_int(st, 3, dim);
                sqlite3_bind_int(st, 4, n);
                sqlite3_bind_int64(st, 5, fp_store_now_ms());
                sqlite3_bind_blob(st, 6, nonce, sizeof nonce, SQLITE_STATIC);
                sqlite3_bind_blob(st, 7, ct, (int)ct_len, SQLITE_STATIC);
                rc = sqlite3_step(st);
                if (rc != SQLITE_DONE) res = fp_store_sqlfail(s, rc, "storing a mean template");
                sqlite3_finalize(st);
            }
        }
        free(ct);
    }
    secret_free(emb, dim);
    if (sum) {
        sodium_memzero(sum, (size_t)dim * sizeof(double));
        free(sum);
    }
    return res;
}

/* ------------------------------------------------------------------------------------------ */
/* Add                                                                                         */
/* ------------------------------------------------------------------------------------------ */

typedef struct template_add_ctx {
    const char *user_id, *model_id, *source;
    const float *emb;
    int dim;
    float quality;
    int64_t id; /* output, rewritten on every run */
} template_add_ctx;

static fp_status template_add_tx(fp_store *s, void *p) {
    template_add_ctx *c = p;
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s, "SELECT status FROM users WHERE id = ?", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, c->user_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        res = fp_fail(FP_ERR_NOT_FOUND, "user %s not found", c->user_id);
    else if (rc != SQLITE_ROW)
        res = fp_store_sqlfail(s, rc, "reading a user");
    else if (!sqlite3_column_text(st, 0) ||
             strcmp((const char *)sqlite3_column_text(st, 0), "deleted") == 0)
        res = fp_fail(FP_ERR_NOT_FOUND, "user %s is deleted", c->user_id);
    sqlite3_finalize(st);
    if (res != FP_OK) return res;

    int have_dim = 0;
    res = model_dim(s, c->model_id, &have_dim);
    if (res != FP_OK) return res;
    if (have_dim && have_dim != c->dim)
        return fp_fail(FP_ERR_SHAPE, "model %s stores %d-d templates, got %d", c->model_id,
                       have_dim, c->dim);

    /* The row id is part of the associated data, so it is chosen before encrypting: the next
     * AUTOINCREMENT value, safe because BEGIN IMMEDIATE holds the write lock. */
    res = fp_store_prepare(s,
                           "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = "
                           "'templates'), 0), coalesce((SELECT max(id) FROM templates), 0)) + 1",
                           &st);
    if (res != FP_OK) return res;
    rc = sqlite3_step(st);
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) return fp_store_sqlfail(s, rc, "choosing a template id");

    size_t ct_len = (size_t)c->dim * 4 + FP_STORE_TAG_BYTES;
    uint8_t *ct = malloc(ct_len);
    if (!ct) return fp_fail(FP_ERR_NOMEM, "template: out of memory");
    uint8_t nonce[FP_STORE_NONCE_BYTES];
    fp_store_ad ad;
    fp_store_ad_template(&ad, c->user_id, id, c->model_id, c->dim);
    fp_store_seal(fp_store_key(s), &ad, c->emb, c->dim, nonce, ct);

    res = fp_store_prepare(s,
                           "INSERT INTO templates(id, user_id, model_id, dim, quality, source, "
                           "created_ms, nonce, ciphertext) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           &st);
    if (res == FP_OK) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_text(st, 2, c->user_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, c->model_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, c->dim);
        sqlite3_bind_double(st, 5, c->quality);
        sqlite3_bind_text(st, 6, c->source, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, fp_store_now_ms());
        sqlite3_bind_blob(st, 8, nonce, sizeof nonce, SQLITE_STATIC);
        sqlite3_bind_blob(st, 9, ct, (int)ct_len, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) res = fp_store_sqlfail(s, rc, "storing a template");
        sqlite3_finalize(st);
    }
    free(ct);
    if (res != FP_OK) return res;

    res = recompute_mean(s, c->user_id, c->model_id);
    if (res != FP_OK) return res;
    char detail[FP_STORE_SOURCE_MAX + FP_STORE_ID_MAX + 96];
    snprintf(detail, sizeof detail, "id=%lld model=%s dim=%d quality=%.3f source=%s", (long long)id,
             c->model_id, c->dim, (double)c->quality, c->source);
    res = fp_store_audit_insert(s, c->user_id, "template_added", detail);
    if (res == FP_OK) c->id = id;
    return res;
}

fp_status fp_store_template_add(fp_store *s, const char *user_id, const char *model_id,
                                const float *emb, int dim, float quality, const char *source,
                                int64_t *template_id) {
    if (template_id) *template_id = 0;
    if (!s) return fp_fail(FP_ERR_INVALID_ARG, "fp_store_template_add: NULL store");
    fp_status st = fp_store_check_id("fp_store_template_add: user", user_id, 0);
    if (st == FP_OK) st = fp_store_check_id("fp_store_template_add: model", model_id, 1);
    if (st == FP_OK) st = fp_store_check_embedding("fp_store_template_add", emb, dim);
    if (st == FP_OK && !source) source = "";
    if (st == FP_OK)
        st = fp_store_check_text("fp_store_template_add: source", source, FP_STORE_SOURCE_MAX);
    if (st == FP_OK && !isfinite(quality))
        st = fp_fail(FP_ERR_INVALID_ARG, "fp_store_template_add: quality is not finite");
    if (st != FP_OK) return st;
    template_add_ctx c = {user_id, model_id, source, emb, dim, quality, 0};
    st = fp_store_tx(s, template_add_tx, &c);
    if (st == FP_OK && template_id) *template_id = c.id;
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Get / delete / list                                                                         */
/* ------------------------------------------------------------------------------------------ */

static const char TEMPLATE_SELECT[] =
    "SELECT id, user_id, model_id, dim, quality, source, created_ms, nonce, ciphertext "
    "FROM templates";

static void info_from_row(sqlite3_stmt *st, fp_template_info *t) {
    memset(t, 0, sizeof *t);
    t->id = sqlite3_column_int64(st, 0);
    col_copy(t->user_id, sizeof t->user_id, st, 1);
    col_copy(t->model_id, sizeof t->model_id, st, 2);
    t->dim = sqlite3_column_int(st, 3);
    t->quality = (float)sqlite3_column_double(st, 4);
    col_copy(t->source, sizeof t->source, st, 5);
    t->created_ms = sqlite3_column_int64(st, 6);
}

typedef struct template_get_ctx {
    int64_t id;
    fp_template_info *info;
    float *emb;
    int cap;
} template_get_ctx;

static fp_status template_get_tx(fp_store *s, void *p) {
    template_get_ctx *c = p;
    char sql[sizeof TEMPLATE_SELECT + 32];
    snprintf(sql, sizeof sql, "%s WHERE id = ?", TEMPLATE_SELECT);
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s, sql, &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int64(st, 1, c->id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        res = fp_fail(FP_ERR_NOT_FOUND, "template %lld not found", (long long)c->id);
    } else if (rc != SQLITE_ROW) {
        res = fp_store_sqlfail(s, rc, "reading a template");
    } else {
        fp_template_info t;
        info_from_row(st, &t);
        if (t.dim < 1 || t.dim > FP_STORE_MAX_DIM) {
            res = fp_fail(FP_ERR_FORMAT, "template %lld of user %s: bad dim %d", (long long)t.id,
                          t.user_id, t.dim);
        } else if (c->emb && c->cap < t.dim) {
            res = fp_fail(FP_ERR_SHAPE, "template %lld has dim %d, buffer holds %d",
                          (long long)c->id, t.dim, c->cap);
        } else if (c->emb) {
            fp_store_ad ad;
            fp_store_ad_template(&ad, t.user_id, t.id, t.model_id, t.dim);
            if (unseal_row(s, st, 7, &ad, c->emb, t.dim) != 0)
                res = fp_fail(FP_ERR_FORMAT,
                              "template %lld of user %s: authentication failed (tampered, or moved "
                              "from another row or user)",
                              (long long)t.id, t.user_id);
        }
        if (c->info) *c->info = t;
    }
    sqlite3_finalize(st);
    return res;
}

fp_status fp_store_template_get(fp_store *s, int64_t id, fp_template_info *info, float *emb,
                                int cap) {
    if (info) memset(info, 0, sizeof *info);
    if (!s) return fp_fail(FP_ERR_INVALID_ARG, "fp_store_template_get: NULL store");
    if (emb && cap < 1) return fp_fail(FP_ERR_INVALID_ARG, "fp_store_template_get: cap %d", cap);
    template_get_ctx c = {id, info, emb, cap};
    return fp_store_read(s, template_get_tx, &c);
}

static fp_status template_delete_tx(fp_store *s, void *p) {
    const int64_t *id = p;
    sqlite3_stmt *st = NULL;
    fp_status res =
        fp_store_prepare(s, "SELECT user_id, model_id FROM templates WHERE id = ?", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int64(st, 1, *id);
    int rc = sqlite3_step(st);
    char user_id[FP_STORE_ID_MAX + 1], model_id[FP_STORE_ID_MAX + 1];
    if (rc == SQLITE_ROW) {
        col_copy(user_id, sizeof user_id, st, 0);
        col_copy(model_id, sizeof model_id, st, 1);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return fp_fail(FP_ERR_NOT_FOUND, "template %lld not found", (long long)*id);
    if (rc != SQLITE_ROW) return fp_store_sqlfail(s, rc, "reading a template");

    res = fp_store_prepare(s, "DELETE FROM templates WHERE id = ?", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int64(st, 1, *id);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return fp_store_sqlfail(s, rc, "deleting a template");
    res = recompute_mean(s, user_id, model_id);
    if (res != FP_OK) return res;
    char detail[FP_STORE_ID_MAX + 48];
    snprintf(detail, sizeof detail, "id=%lld model=%s", (long long)*id, model_id);
    return fp_store_audit_insert(s, user_id, "template_deleted", detail);
}

fp_status fp_store_template_delete(fp_store *s, int64_t id) {
    if (!s) return fp_fail(FP_ERR_INVALID_ARG, "fp_store_template_delete: NULL store");
    return fp_store_tx(s, template_delete_tx, &id);
}

typedef struct template_each_ctx {
    const char *user_id, *model_id;
    int (*cb)(void *, const fp_template_info *);
    void *ctx;
} template_each_ctx;

static fp_status template_each_tx(fp_store *s, void *p) {
    template_each_ctx *c = p;
    char sql[sizeof TEMPLATE_SELECT + 96];
    snprintf(sql, sizeof sql, "%s WHERE user_id = ?1 AND (?2 IS NULL OR model_id = ?2) ORDER BY id",
             TEMPLATE_SELECT);
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s, sql, &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, c->user_id, -1, SQLITE_STATIC);
    if (c->model_id) sqlite3_bind_text(st, 2, c->model_id, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        fp_template_info t;
        info_from_row(st, &t);
        if (c->cb(c->ctx, &t)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE) res = fp_store_sqlfail(s, rc, "listing templates");
    sqlite3_finalize(st);
    return res;
}

fp_status fp_store_foreach_template(fp_store *s, const char *user_id, const char *model_id,
                                    int (*cb)(void *ctx, const fp_template_info *t), void *ctx) {
    if (!s || !cb) return fp_fail(FP_ERR_INVALID_ARG, "fp_store_foreach_template: NULL argument");
    fp_status st = fp_store_check_id("fp_store_foreach_template: user", user_id, 0);
    if (st == FP_OK && model_id)
        st = fp_store_check_id("fp_store_foreach_template: model", model_id, 1);
    if (st != FP_OK) return st;
    template_each_ctx c = {user_id, model_id, cb, ctx};
    return fp_store_read(s, template_each_tx, &c);
}

/* ------------------------------------------------------------------------------------------ */
/* Mean templates: one user, every active user                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct mean_get_ctx {
    const char *user_id, *model_id;
    float *emb;
    int dim;
} mean_get_ctx;

static fp_status mean_get_tx(fp_store *s, void *p) {
    mean_get_ctx *c = p;
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(
        s, "SELECT dim, nonce, ciphertext FROM user_means WHERE user_id = ? AND model_id = ?", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, c->user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->model_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        res = fp_fail(FP_ERR_NOT_FOUND, "user %s has no template of model %s", c->user_id,
                      c->model_id);
    } else if (rc != SQLITE_ROW) {
        res = fp_store_sqlfail(s, rc, "reading a mean template");
    } else {
        int dim = sqlite3_column_int(st, 0);
        if (dim != c->dim) {
            res = fp_fail(FP_ERR_SHAPE, "mean template of user %s (model %s) has dim %d, asked %d",
                          c->user_id, c->model_id, dim, c->dim);
        } else {
            fp_store_ad ad;
            fp_store_ad_mean(&ad, c->user_id, c->model_id, dim);
            if (unseal_row(s, st, 1, &ad, c->emb, dim) != 0)
                res = fp_fail(FP_ERR_FORMAT,
                              "mean template of user %s (model %s): authentication failed "
                              "(tampered, or moved from another user)",
                              c->user_id, c->model_id);
        }
    }
    sqlite3_finalize(st);
    return res;
}

fp_status fp_store_user_mean(fp_store *s, const char *user_id, const char *model_id, float *emb,
                             int dim) {
    if (!s || !emb) return fp_fail(FP_ERR_INVALID_ARG, "fp_store_user_mean: NULL argument");
    fp_status st = fp_store_check_id("fp_store_user_mean: user", user_id, 0);
    if (st == FP_OK) st = fp_store_check_id("fp_store_user_mean: model", model_id, 1);
    if (st == FP_OK && (dim < 1 || dim > FP_STORE_MAX_DIM))
        st = fp_fail(FP_ERR_INVALID_ARG, "fp_store_user_mean: dim %d outside 1..%d", dim,
                     FP_STORE_MAX_DIM);
    if (st != FP_OK) return st;
    mean_get_ctx c = {user_id, model_id, emb, dim};
    return fp_store_read(s, mean_get_tx, &c);
}

typedef struct mean_each_ctx {
    const char *model_id;
    int (*cb)(void *, const char *, const float *, int);
    void *ctx;
} mean_each_ctx;

static fp_status mean_each_tx(fp_store *s, void *p) {
    mean_each_ctx *c = p;
    sqlite3_stmt *st = NULL;
    fp_status res =
        fp_store_prepare(s,
                         "SELECT m.user_id, m.dim, m.nonce, m.ciphertext FROM user_means m "
                         "JOIN users u ON u.id = m.user_id "
                         "WHERE m.model_id = ? AND u.status = 'active' ORDER BY m.user_id",
                         &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, c->model_id, -1, SQLITE_STATIC);
    /* One buffer for the whole walk, sized for the largest dim allowed, wiped at the end. */
    float *emb = secret_alloc(FP_STORE_MAX_DIM);
    if (!emb) {
        sqlite3_finalize(st);
        return fp_fail(FP_ERR_NOMEM, "fp_store_foreach_mean: out of memory");
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char user_id[FP_STORE_ID_MAX + 1];
        col_copy(user_id, sizeof user_id, st, 0);
        int dim = sqlite3_column_int(st, 1);
        if (dim < 1 || dim > FP_STORE_MAX_DIM) {
            res = fp_fail(FP_ERR_FORMAT, "mean template of user %s: bad dim %d", user_id, dim);
            break;
        }
        fp_store_ad ad;
        fp_store_ad_mean(&ad, user_id, c->model_id, dim);
        if (unseal_row(s, st, 2, &ad, emb, dim) != 0) {
            res = fp_fail(FP_ERR_FORMAT,
                          "mean template of user %s (model %s): authentication failed (tampered, "
                          "or moved from another user)",
                          user_id, c->model_id);
            break;
        }
        if (c->cb(c->ctx, user_id, emb, dim)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (res == FP_OK && rc != SQLITE_DONE) res = fp_store_sqlfail(s, rc, "reading mean templates");
    sqlite3_finalize(st);
    secret_free(emb, FP_STORE_MAX_DIM);
    return res;
}

fp_status fp_store_foreach_mean(fp_store *s, const char *model_id,
                                int (*cb)(void *ctx, const char *user_id, const float *emb,
                                          int dim),
                                void *ctx) {
    if (!s || !cb) return fp_fail(FP_ERR_INVALID_ARG, "fp_store_foreach_mean: NULL argument");
    fp_status st = fp_store_check_id("fp_store_foreach_mean: model", model_id, 1);
    if (st != FP_OK) return st;
    mean_each_ctx c = {model_id, cb, ctx};
    return fp_store_read(s, mean_each_tx, &c);
}
