/*
 * routes_customers.c - the customer routes of the /v1 API: create (store user + payment customer +
 * wallet, optional PIN), read, enrol a face (JPEG frames or one video), top up, list the wallet's
 * transactions, and GDPR deletion (templates and gallery row gone, ledger kept). Also the frame
 * decoding shared with the payment routes.
 *
 * Customers are global to the deployment, not owned by one merchant: any merchant key with the
 * `customers` scope (an enrolment desk) may create, enrol, top up and delete; a till's key
 * (`payments` only) may not. See the OpenAPI file's description for what that implies.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "server/internal.h"

#define DEFAULT_CURRENCY "EUR"

/* ---- shared helpers ---- */

int srv_check_id(const char *what, const char *id, srv_resp *r) {
    size_t n = strlen(id);
    int ok = n >= 1 && n <= FP_STORE_ID_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)id[i]) || strchr("._@:+-", id[i]);
    if (!ok) srv_error(r, 400, "invalid_id", NULL, "%s must be 1..%d characters of [A-Za-z0-9._@:+-]", what, FP_STORE_ID_MAX);
    return ok;
}

static int check_currency(const char *c, srv_resp *r) {
    int ok = strlen(c) == 3 && isupper((unsigned char)c[0]) && isupper((unsigned char)c[1]) && isupper((unsigned char)c[2]);
    if (!ok) srv_error(r, 400, "invalid_currency", NULL, "currency must be an ISO 4217 code such as \"EUR\"");
    return ok;
}

void srv_frames_free(fp_image *imgs, double *t, int n) {
    for (int i = 0; imgs && i < n; i++) fp_image_release(&imgs[i]);
    free(imgs);
    free(t);
}

int srv_decode_frames(fp_server *s, const srv_form *f, double default_step_ms, fp_image **imgs_out, double **t_out,
                      srv_resp *r) {
    int n = f->n_frames;
    fp_image *imgs = calloc((size_t)n + 1, sizeof *imgs);
    double *t = malloc(sizeof(double) * ((size_t)n + 1));
    if (!imgs || !t) {
        free(imgs);
        free(t);
        srv_error(r, 503, "out_of_memory", NULL, "out of memory");
        return 0;
    }
    fp_image_limits lim = fp_image_limits_default();
    lim.max_pixels = s->o.max_pixels;
    lim.target_max_side = s->o.max_side;
    lim.max_file_bytes = s->o.max_body;
    for (int i = 0; i < n; i++) {
        t[i] = isnan(f->frames[i].t_ms) ? i * default_step_ms : f->frames[i].t_ms;
        if (t[i] < 0 || t[i] > 3600e3 || (i && !(t[i] > t[i - 1]))) {
            srv_error(r, 400, "invalid_t_ms", NULL, "frame %d: t_ms must increase strictly, within 0..3600000 ms", i);
            srv_frames_free(imgs, t, n);
            return 0;
        }
        fp_status st = fp_image_decode(f->frames[i].data, f->frames[i].len, &lim, &imgs[i]);
        if (st) {
            if (st == FP_ERR_TOO_LARGE)
                srv_error(r, 413, "frame_too_large", NULL, "frame %d: %s", i, fp_last_error());
            else
                srv_error(r, 400, "invalid_image", NULL, "frame %d: %s", i, fp_last_error());
            srv_frames_free(imgs, t, n);
            return 0;
        }
        int big = imgs[i].width > imgs[i].height ? imgs[i].width : imgs[i].height;
        if (big > s->o.max_side) {
            /* the face models work at 128-256 px: more pixels only cost time */
            fp_image small;
            int w = (int)((long)imgs[i].width * s->o.max_side / big), h = (int)((long)imgs[i].height * s->o.max_side / big);
            st = fp_image_resize(&imgs[i], w < 1 ? 1 : w, h < 1 ? 1 : h, &small);
            if (st) {
                srv_error_status(r, st, "resizing a frame");
                srv_frames_free(imgs, t, n);
                return 0;
            }
            fp_image_release(&imgs[i]);
            imgs[i] = small;
        }
    }
    *imgs_out = imgs;
    *t_out = t;
    return 1;
}

static json_t *rejected_json(const int *rej) {
    json_t *o = json_object();
    for (int k = 0; k < FP_REJECT_COUNT; k++)
        if (rej[k]) json_object_set_new(o, fp_reject_name((fp_reject)k), json_integer(rej[k]));
    return o;
}

/* Store user of a route's {id}: 1 when it exists and is not deleted; else r holds 404/410. */
static int get_user(srv_req *rq, const char *id, fp_user *u, srv_resp *r) {
    if (!srv_check_id("customer id", id, r)) return 0;
    fp_status st = fp_store_user_get(rq->s->store, id, u);
    if (st == FP_ERR_NOT_FOUND) {
        srv_error(r, 404, "customer_not_found", NULL, "no customer '%s'", id);
        return 0;
    }
    if (st) {
        srv_error_status(r, st, "reading the customer");
        return 0;
    }
    if (u->status == FP_USER_DELETED) {
        srv_error(r, 410, "customer_deleted", NULL, "customer '%s' was deleted", id);
        return 0;
    }
    return 1;
}

static json_t *wallet_json(const fp_pay_account *a) {
    return json_pack("{s:I,s:s,s:I,s:I,s:I,s:b}", "account_id", (json_int_t)a->id, "currency", a->currency, "balance",
                     (json_int_t)a->balance, "per_payment_limit", (json_int_t)a->per_payment_limit, "daily_limit",
                     (json_int_t)a->daily_limit, "closed", a->closed);
}

static int count_template(void *ctx, const fp_template_info *t) {
    (void)t;
    (*(int *)ctx)++;
    return 0;
}

/* ---- POST /v1/customers ---- */

void srv_route_customer_create(srv_req *rq, srv_resp *r) {
    fp_server *s = rq->s;
    srv_form f;
    if (!srv_form_parse(rq, &f, 0, r)) return;
    const char *id = NULL, *name = "", *currency = NULL, *pin = NULL, *phone = NULL;
    int64_t per_payment = 0, daily = 0;
    char gen[32];
    if (srv_field_str(&f, "id", &id, r) < 0 || srv_field_str(&f, "name", &name, r) < 0 ||
        srv_field_str(&f, "currency", &currency, r) < 0 || srv_field_str(&f, "pin", &pin, r) < 0 ||
        srv_field_str(&f, "phone_last4", &phone, r) < 0 || srv_field_int(&f, "per_payment_limit", &per_payment, r) < 0 ||
        srv_field_int(&f, "daily_limit", &daily, r) < 0)
        goto out;
    if (!id) {
        uint8_t b[8];
        randombytes_buf(b, sizeof b);
        memcpy(gen, "cus_", 4);
        sodium_bin2hex(gen + 4, sizeof gen - 4, b, sizeof b);
        id = gen;
    }
    if (!srv_check_id("id", id, r)) goto out;
    if (!currency) {
        srv_error(r, 400, "missing_field", NULL, "currency is required (e.g. \"EUR\")");
        goto out;
    }
    if (!check_currency(currency, r)) goto out;
    if (pin) {
        size_t l = strlen(pin);
        int ok = l >= FP_PAY_PIN_MIN && l <= FP_PAY_PIN_MAX;
        for (size_t i = 0; ok && i < l; i++) ok = isdigit((unsigned char)pin[i]);
        if (!ok) {
            srv_error(r, 400, "invalid_pin", NULL, "pin must be %d..%d digits", FP_PAY_PIN_MIN, FP_PAY_PIN_MAX);
            goto out;
        }
    }
    if (phone && (strlen(phone) != 4 || strspn(phone, "0123456789") != 4)) {
        srv_error(r, 400, "invalid_phone", NULL, "phone_last4 must be 4 digits");
        goto out;
    }
    if ((per_payment || daily) && (per_payment < 1 || daily < 1 || per_payment > FP_PAY_MAX_AMOUNT || daily > FP_PAY_MAX_AMOUNT)) {
        srv_error(r, 400, "invalid_limits", NULL, "per_payment_limit and daily_limit must both be given, 1..%lld",
                  (long long)FP_PAY_MAX_AMOUNT);
        goto out;
    }
    fp_user u;
    fp_status st = fp_store_user_get(s->store, id, &u);
    if (st == FP_OK) {
        srv_error(r, 409, "customer_exists", NULL, "customer '%s' already exists%s", id,
                  u.status == FP_USER_DELETED ? " (deleted: ids are never reused)" : "");
        goto out;
    }
    if ((st = fp_store_user_add(s->store, id, name))) {
        /* a concurrent create of the same id lands here too */
        if (fp_store_user_get(s->store, id, &u) == FP_OK) srv_error(r, 409, "customer_exists", NULL, "customer '%s' already exists", id);
        else srv_error_status(r, st, "creating the customer");
        goto out;
    }
    int64_t acct = 0;
    if ((st = fp_pay_customer_create(s->pay, id, currency, &acct)) || (pin && (st = fp_pay_customer_set_pin(s->pay, id, pin))) ||
        (phone && (st = fp_pay_customer_set_phone(s->pay, id, phone))) ||
        (per_payment && (st = fp_pay_customer_set_limits(s->pay, id, currency, per_payment, daily)))) {
        srv_error_status(r, st, "creating the customer's wallet");
        goto out;
    }
    fp_pay_account a;
    json_t *w = fp_pay_wallet(s->pay, id, currency, &a) == FP_OK ? wallet_json(&a) : json_null();
    srv_json(r, 201,
             json_pack("{s:s,s:s,s:s,s:b,s:b,s:b,s:o}", "id", id, "name", name, "currency", currency, "has_pin", pin != NULL,
                       "has_phone", phone != NULL, "enrolled", 0, "wallet", w));
out:
    srv_form_free(&f);
}

/* ---- GET /v1/customers/{id} ---- */

void srv_route_customer_get(srv_req *rq, const char *id, srv_resp *r) {
    fp_server *s = rq->s;
    if (!srv_check_id("customer id", id, r)) return;
    fp_user u;
    fp_status st = fp_store_user_get(s->store, id, &u);
    if (st == FP_ERR_NOT_FOUND) {
        srv_error(r, 404, "customer_not_found", NULL, "no customer '%s'", id);
        return;
    }
    if (st) {
        srv_error_status(r, st, "reading the customer");
        return;
    }
    const char *currency = srv_query(rq, "currency");
    if (!currency) currency = DEFAULT_CURRENCY;
    if (!check_currency(currency, r)) return;
    int templates = 0;
    fp_store_foreach_template(s->store, id, FP_EMBEDDER_ID, count_template, &templates);
    static const char *const status[] = {"active", "locked", "deleted"};
    json_t *j = json_pack("{s:s,s:s,s:s,s:b,s:i}", "id", u.id, "name", u.name,
                          "status", u.status >= 0 && u.status <= 2 ? status[u.status] : "unknown", "enrolled", templates > 0,
                          "templates", templates);
    fp_pay_customer c;
    if (fp_pay_customer_get(s->pay, id, &c) == FP_OK) {
        json_object_set_new(j, "has_pin", json_boolean(c.has_pin));
        json_object_set_new(j, "has_phone", json_boolean(c.has_phone));
        json_object_set_new(j, "face_locked", json_boolean(c.face_locked));
        json_object_set_new(j, "stepup_failures", json_integer(c.stepup_failures));
        json_object_set_new(j, "deleted", json_boolean(c.deleted));
    }
    fp_pay_account a;
    json_object_set_new(j, "wallet", fp_pay_wallet(s->pay, id, currency, &a) == FP_OK ? wallet_json(&a) : json_null());
    srv_json(r, 200, j);
}

/* ---- DELETE /v1/customers/{id} ---- */

void srv_route_customer_delete(srv_req *rq, const char *id, srv_resp *r) {
    fp_server *s = rq->s;
    if (!srv_check_id("customer id", id, r)) return;
    fp_user u;
    fp_status st = fp_store_user_get(s->store, id, &u);
    if (st == FP_ERR_NOT_FOUND) {
        srv_error(r, 404, "customer_not_found", NULL, "no customer '%s'", id);
        return;
    }
    if (st) {
        srv_error_status(r, st, "reading the customer");
        return;
    }
    const char *vac = srv_query(rq, "vacuum");
    int vacuum = vac && (!strcmp(vac, "1") || !strcmp(vac, "true"));
    /* the gallery first: from this moment the face matches no one, whatever happens next */
    pthread_mutex_lock(&s->enroll_lock);
    fp_gallery_remove(s->gallery, id);
    st = fp_pay_customer_delete(s->pay, id);
    if (st == FP_ERR_NOT_FOUND) st = FP_OK; /* enrolled but never a payment customer */
    if (!st) st = fp_store_user_delete(s->store, id, vacuum);
    pthread_mutex_unlock(&s->enroll_lock);
    if (st) {
        srv_error_status(r, st, "deleting the customer");
        return;
    }
    srv_json(r, 200, json_pack("{s:s,s:b,s:b,s:b,s:b}", "id", id, "deleted", 1, "templates_erased", 1, "ledger_kept", 1,
                               "vacuumed", vacuum));
}

/* ---- POST /v1/customers/{id}/enroll ---- */

void srv_route_enroll(srv_req *rq, const char *id, srv_resp *r) {
    fp_server *s = rq->s;
    fp_user u;
    if (!get_user(rq, id, &u, r)) return;
    if (u.status != FP_USER_ACTIVE) {
        srv_error(r, 409, "customer_locked", NULL, "customer '%s' is locked", id);
        return;
    }
    srv_form f;
    if (!srv_form_parse(rq, &f, s->o.max_frames, r)) return;
    int64_t target = 10;
    fp_image *imgs = NULL;
    double *t = NULL;
    char video_path[64] = "";
    fp_session *ses = NULL;
    if (srv_field_int(&f, "target", &target, r) < 0) goto out;
    if (target < 1 || target > 20) {
        srv_error(r, 400, "invalid_field", NULL, "target must be 1..20 good frames");
        goto out;
    }
    if (!!f.n_frames == !!f.video.len) {
        srv_error(r, 400, "no_frames", NULL, "give JPEG 'frame' parts or one 'video' part (not both)");
        goto out;
    }
    if (f.n_frames && !srv_decode_frames(s, &f, 1000.0, &imgs, &t, r)) goto out;
    if (f.video.len) {
        /* FFmpeg reads files: the upload goes to a private temporary file, removed right after */
        const char *tmp = getenv("TMPDIR");
        snprintf(video_path, sizeof video_path, "%s/facepay-enroll-XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
        int fd = mkstemp(video_path);
        if (fd < 0) {
            video_path[0] = 0;
            srv_error(r, 503, "unavailable", NULL, "cannot create a temporary file");
            goto out;
        }
        size_t off = 0;
        while (off < f.video.len) {
            ssize_t w = write(fd, f.video.data + off, f.video.len - off);
            if (w <= 0 && errno != EINTR) break;
            if (w > 0) off += (size_t)w;
        }
        close(fd);
        if (off < f.video.len) {
            srv_error(r, 503, "unavailable", NULL, "cannot write a temporary file");
            goto out;
        }
    }
    if (!(ses = srv_worker_get(s, s->o.worker_wait_ms))) {
        srv_error(r, 503, "busy", NULL, "every analysis worker is busy; retry");
        r->retry_after = 1;
        goto out;
    }
    srv_enroll_outcome o;
    srv_enroll(s, ses, id, imgs, t, f.n_frames, video_path[0] ? video_path : NULL, (int)target, &o);
    srv_worker_put(s, ses);
    fp_enroll_result *er = &o.result;
    json_t *details = json_pack("{s:i,s:i,s:i,s:o,s:{s:i,s:i,s:i}}", "frames_seen", er->status.seen, "frames_kept",
                                er->status.kept, "target", er->status.target, "frames_rejected",
                                rejected_json(er->status.rejected), "poses", "frontal", er->status.kept_frontal, "left",
                                er->status.kept_left, "right", er->status.kept_right);
    if (o.status == FP_OK) {
        atomic_fetch_add(&s->metrics.enrollments[0], 1);
        json_object_set_new(details, "customer_id", json_string(id));
        json_object_set_new(details, "enrolled", json_true());
        json_object_set_new(details, "template_spread", json_real(er->template_spread));
        srv_json(r, 200, details);
    } else if (o.refused) {
        atomic_fetch_add(&s->metrics.enrollments[1], 1);
        if (er->lookalike_user[0]) {
            json_object_set_new(details, "other_customer_id", json_string(er->lookalike_user));
            json_object_set_new(details, "score", json_real(er->lookalike_score));
            json_object_set_new(details, "threshold", json_real(er->threshold));
            srv_error(r, 409, "lookalike", details, "the face matches existing customer '%s' (score %.3f >= %.3f)",
                      er->lookalike_user, er->lookalike_score, er->threshold);
        } else
            srv_error(r, 422, "enrollment_refused", details, "%s", o.message);
    } else {
        json_decref(details);
        if (o.status == FP_ERR_FORMAT || o.status == FP_ERR_UNSUPPORTED)
            srv_error(r, 400, "invalid_video", NULL, "%s", o.message);
        else {
            fp_status st = o.status;
            srv_error_status(r, st, "enrollment");
        }
    }
out:
    if (video_path[0]) unlink(video_path);
    srv_frames_free(imgs, t, f.n_frames);
    srv_form_free(&f);
}

/* ---- POST /v1/customers/{id}/topup ---- */

void srv_route_topup(srv_req *rq, const char *id, srv_resp *r) {
    fp_server *s = rq->s;
    if (!srv_check_id("customer id", id, r)) return;
    const char *key = srv_header(rq, "Idempotency-Key");
    if (!srv_check_idem_key(key, r)) return;
    srv_form f;
    if (!srv_form_parse(rq, &f, 0, r)) return;
    int64_t amount = 0;
    const char *currency = NULL, *reference = NULL;
    int ga = srv_field_int(&f, "amount", &amount, r);
    if (ga < 0 || srv_field_str(&f, "currency", &currency, r) < 0 || srv_field_str(&f, "reference", &reference, r) < 0)
        goto out;
    if (!ga || !currency) {
        srv_error(r, 400, "missing_field", NULL, "amount (integer minor units) and currency are required");
        goto out;
    }
    if (!check_currency(currency, r)) goto out;
    if (amount < 1 || amount > FP_PAY_MAX_AMOUNT) {
        srv_error(r, 400, "invalid_amount", NULL, "amount must be 1..%lld minor units", (long long)FP_PAY_MAX_AMOUNT);
        goto out;
    }
    char ref[128];
    snprintf(ref, sizeof ref, "%s", reference ? reference : "");
    if (!reference) snprintf(ref, sizeof ref, "http top-up by %s", rq->merchant);
    /* the request's meaning, for the idempotency record */
    uint8_t h[32];
    crypto_hash_sha256_state hs;
    crypto_hash_sha256_init(&hs);
    char buf[400];
    int bl = snprintf(buf, sizeof buf, "topup%c%s%c%lld%c%s%c%s", 0, id, 0, (long long)amount, 0, currency, 0, ref);
    crypto_hash_sha256_update(&hs, (const unsigned char *)buf, (size_t)bl);
    crypto_hash_sha256_final(&hs, h);
    /* the memory record answers retries within the server's life (and "in progress"); the ledger's
     * durable key answers them after a restart, and never credits twice */
    if (!srv_idem_begin(s, rq->merchant, key, h, r)) goto out;
    fp_pay_topup_result res;
    fp_status st = fp_pay_topup_idempotent(s->pay, rq->merchant, key, id, currency, amount, ref, &res);
    if (st == FP_ERR_NOT_FOUND) srv_error(r, 404, "customer_not_found", NULL, "%s", fp_last_error());
    else if (st == FP_ERR_PAY_STATE) srv_error(r, 409, "invalid_state", NULL, "top-up: %s", fp_last_error());
    else if (st) srv_error_status(r, st, "top-up");
    else {
        /* balance: right after this top-up (its posting), so a replay answers the same */
        srv_json(r, 200, json_pack("{s:s,s:s,s:I,s:I,s:I,s:b}", "customer_id", id, "currency", currency, "amount",
                                   (json_int_t)res.amount, "txn_id", (json_int_t)res.txn_id, "balance",
                                   (json_int_t)res.balance_after, "replayed", res.replayed));
        r->idem_replayed = res.replayed;
    }
    srv_idem_end(s, rq->merchant, key, r, st == FP_OK);
out:
    srv_form_free(&f);
}

/* ---- GET /v1/customers/{id}/transactions ---- */

static const char *txn_kind_name(fp_pay_txn_kind k) {
    static const char *const names[] = {"topup", "charge", "authorise", "capture", "void", "refund", "payout"};
    return k >= 0 && k <= FP_TXN_PAYOUT ? names[k] : "unknown";
}

static int posting_json(void *ctx, const fp_pay_posting *p) {
    json_t *o = json_pack("{s:I,s:I,s:s,s:I,s:I,s:I}", "id", (json_int_t)p->id, "txn_id", (json_int_t)p->txn_id, "kind",
                          txn_kind_name(p->kind), "amount", (json_int_t)p->amount, "balance_after",
                          (json_int_t)p->balance_after, "created_at", (json_int_t)p->created_ms);
    json_object_set_new(o, "payment_id", p->payment_id ? json_integer(p->payment_id) : json_null());
    json_object_set_new(o, "refund_id", p->refund_id ? json_integer(p->refund_id) : json_null());
    json_array_append_new(ctx, o);
    return 0;
}

void srv_route_transactions(srv_req *rq, const char *id, srv_resp *r) {
    fp_server *s = rq->s;
    if (!srv_check_id("customer id", id, r)) return;
    const char *currency = srv_query(rq, "currency"), *after_s = srv_query(rq, "after"), *limit_s = srv_query(rq, "limit");
    if (!currency) currency = DEFAULT_CURRENCY;
    if (!check_currency(currency, r)) return;
    long long after = 0, limit = 100;
    char *e;
    if (after_s && ((after = strtoll(after_s, &e, 10)) < 0 || *e || !*after_s)) {
        srv_error(r, 400, "invalid_query", NULL, "after must be a posting id >= 0");
        return;
    }
    if (limit_s && ((limit = strtoll(limit_s, &e, 10)) < 1 || limit > 1000 || *e || !*limit_s)) {
        srv_error(r, 400, "invalid_query", NULL, "limit must be 1..1000");
        return;
    }
    fp_pay_account a;
    fp_status st = fp_pay_wallet(s->pay, id, currency, &a);
    if (st == FP_ERR_NOT_FOUND) {
        srv_error(r, 404, "wallet_not_found", NULL, "customer '%s' has no %s wallet", id, currency);
        return;
    }
    if (st) {
        srv_error_status(r, st, "reading the wallet");
        return;
    }
    json_t *list = json_array();
    if ((st = fp_pay_foreach_posting(s->pay, a.id, after, (int)limit, posting_json, list))) {
        json_decref(list);
        srv_error_status(r, st, "reading the transactions");
        return;
    }
    size_t n = json_array_size(list);
    json_t *next = n == (size_t)limit ? json_copy(json_object_get(json_array_get(list, n - 1), "id")) : json_null();
    srv_json(r, 200, json_pack("{s:s,s:s,s:I,s:I,s:b,s:o,s:o}", "customer_id", id, "currency", currency, "account_id",
                               (json_int_t)a.id, "balance", (json_int_t)a.balance, "closed", a.closed, "transactions", list,
                               "next_after", next));
}
