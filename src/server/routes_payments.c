/*
 * routes_payments.c - challenge sessions and the payment routes of the /v1 API: create a session
 * (a random challenge bound to the merchant, single use, short-lived), pay with the customer's
 * frames, read a payment, step-up with the PIN, refund, cancel; and the idempotency records.
 *
 * A payment request, in order: authenticate; parse and validate; idempotency (a key already
 * answered with the same request replays the stored response, with another request is 409; a key
 * only the ledger knows, after a restart, replays the payment it made); claim
 * the session (unknown 404, expired 410, used 409); decode the frames; check their pixel hashes
 * against frames already used in other sessions (a replayed capture) and record them; analyse on a
 * worker (challenge over all frames, identifier on the best ones); decide and move money in one
 * ledger transaction (fp_pay_charge, which applies fp_pay_decide with the stored customer state);
 * keep the response for the idempotency key.
 *
 * A failed or incomplete challenge and a replayed frame set are presentation attacks as far as the
 * policy is concerned: the identify result goes to fp_pay_charge with liveness 0, so the payment is
 * refused ("spoof") and still recorded with its evidence, the identified victim included. The
 * server's own reasons (challenge_failed, frames_replayed, ...) are added to the response.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/core.h"
#include "server/internal.h"

#define IDEM_TTL_MS (24LL * 3600 * 1000)
#define FRAME_TTL_MS (24LL * 3600 * 1000)
#define SESSION_GRACE_MS (10LL * 60 * 1000) /* expired sessions are remembered a while: 410, not 404 */

/* ------------------------------------------------------------------------------------------ */
/* Idempotency                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void idem_map_key(const char *merchant, const char *key, char *out, size_t cap) {
    snprintf(out, cap, "%s\x1f%s", merchant, key);
}

int srv_idem_begin(fp_server *s, const char *merchant, const char *key, const uint8_t hash[32], srv_resp *r) {
    char k[FP_STORE_ID_MAX + FP_PAY_IDEM_MAX + 4];
    idem_map_key(merchant, key, k, sizeof k);
    pthread_mutex_lock(&s->idem.lock);
    srv_map_expire(&s->idem, srv_now_ms());
    srv_entry *e = srv_map_get(&s->idem, k);
    if (e) {
        srv_idem *v = e->val;
        if (sodium_memcmp(v->hash, hash, 32) != 0)
            srv_error(r, 409, "idempotency_conflict", NULL, "this Idempotency-Key was used for a different request");
        else if (v->state == IDEM_PENDING) {
            srv_error(r, 409, "idempotency_in_progress", NULL, "a request with this Idempotency-Key is still in progress");
            r->retry_after = 1;
        } else {
            free(r->body);
            r->body = malloc(v->len + 1);
            if (r->body) {
                memcpy(r->body, v->body, v->len);
                r->body[v->len] = 0;
                r->len = v->len;
                r->status = v->status;
                r->content_type = "application/json";
                r->idem_replayed = 1;
                atomic_fetch_add(&s->metrics.idem_replays, 1);
            } else
                srv_error(r, 503, "out_of_memory", NULL, "out of memory");
        }
        pthread_mutex_unlock(&s->idem.lock);
        return 0;
    }
    srv_idem *v = calloc(1, sizeof *v);
    if (!v || !srv_map_put(&s->idem, k, v, srv_now_ms() + IDEM_TTL_MS)) {
        free(v);
        pthread_mutex_unlock(&s->idem.lock);
        srv_error(r, 503, "out_of_memory", NULL, "out of memory");
        return 0;
    }
    memcpy(v->hash, hash, 32);
    v->state = IDEM_PENDING;
    pthread_mutex_unlock(&s->idem.lock);
    return 1;
}

void srv_idem_end(fp_server *s, const char *merchant, const char *key, const srv_resp *r, int keep) {
    char k[FP_STORE_ID_MAX + FP_PAY_IDEM_MAX + 4];
    idem_map_key(merchant, key, k, sizeof k);
    pthread_mutex_lock(&s->idem.lock);
    srv_entry *e = srv_map_get(&s->idem, k);
    if (e) {
        srv_idem *v = e->val;
        if (keep && r->body && (v->body = malloc(r->len + 1))) {
            memcpy(v->body, r->body, r->len);
            v->len = r->len;
            v->status = r->status;
            v->state = IDEM_DONE;
        } else
            srv_map_remove(&s->idem, e); /* nothing was written: the key may be used again */
    }
    pthread_mutex_unlock(&s->idem.lock);
}

int srv_check_idem_key(const char *key, srv_resp *r) {
    size_t n = key ? strlen(key) : 0;
    int ok = n >= 1 && n <= FP_PAY_IDEM_MAX;
    for (size_t i = 0; ok && i < n; i++) ok = key[i] >= 0x20 && key[i] <= 0x7e;
    if (!ok)
        srv_error(r, 400, "missing_idempotency_key", NULL,
                  "an Idempotency-Key header (1..%d printable ASCII characters) is required", FP_PAY_IDEM_MAX);
    return ok;
}

/* ------------------------------------------------------------------------------------------ */
/* Payment JSON                                                                                */
/* ------------------------------------------------------------------------------------------ */

static json_t *reasons_json(uint32_t bits) {
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {
        {FP_PAY_WHY_AMOUNT, "amount"},     {FP_PAY_WHY_MARGIN, "margin"},       {FP_PAY_WHY_LOOKALIKE, "lookalike"},
        {FP_PAY_WHY_LIVENESS, "liveness"}, {FP_PAY_WHY_UNCERTAIN, "uncertain"}, {FP_PAY_WHY_NO_MATCH, "no_match"},
        {FP_PAY_WHY_SCORE, "score"},       {FP_PAY_WHY_FRAMES, "frames"},       {FP_PAY_WHY_SPOOF, "spoof"},
        {FP_PAY_WHY_LOCKED, "locked"},     {FP_PAY_WHY_CUSTOMER, "customer"},   {FP_PAY_WHY_NO_STEPUP, "no_stepup"},
    };
    json_t *a = json_array();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (bits & names[i].bit) json_array_append_new(a, json_string(names[i].name));
    return a;
}

/* Current status as a terminal reads it. */
static const char *status_of(const fp_payment *p) {
    switch (p->state) {
    case FP_PAY_AUTHORISED: return "step_up_required";
    case FP_PAY_DECLINED: return "declined";
    default: return "approved";
    }
}

/* The decision at charge time (the state may have moved on since: captured after a step-up,
 * voided, refunded). */
static const char *decision_of(const fp_payment *p) {
    if (p->verdict == FP_PAY_REFUSE) return "declined";
    static const char *const at_charge[] = {"refused", "insufficient_funds", "limit_per_payment", "limit_daily"};
    for (size_t i = 0; i < sizeof at_charge / sizeof at_charge[0]; i++)
        if (!strcmp(p->decline, at_charge[i])) return "declined";
    return p->verdict == FP_PAY_STEPUP ? "step_up_required" : "approved";
}

json_t *srv_payment_json(const fp_payment *p) {
    json_t *j = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:I,s:s,s:I,s:I,s:s,s:s,s:o}", "id", (json_int_t)p->id, "object",
                          "payment", "status", status_of(p), "state", fp_pay_state_name(p->state), "decision",
                          decision_of(p), "verdict", fp_pay_verdict_name(p->verdict), "amount", (json_int_t)p->amount,
                          "currency", p->currency, "captured", (json_int_t)p->captured, "refunded",
                          (json_int_t)p->refunded, "merchant_id", p->merchant_id, "terminal_id", p->terminal_id, "reasons",
                          reasons_json(p->reasons));
    json_object_set_new(j, "customer_id", p->user_id[0] ? json_string(p->user_id) : json_null());
    json_object_set_new(j, "decline_reason", p->decline[0] ? json_string(p->decline) : json_null());
    json_object_set_new(j, "step_up",
                        p->state == FP_PAY_AUTHORISED
                            ? json_pack("{s:s,s:I}", "method", fp_pay_stepup_name(p->stepup), "expires_at", (json_int_t)p->expires_ms)
                            : json_null());
    json_object_set_new(j, "evidence_seq", json_integer(p->evidence_seq));
    json_object_set_new(j, "created_at", json_integer(p->created_ms));
    json_object_set_new(j, "updated_at", json_integer(p->updated_ms));
    return j;
}

static int parse_payment_id(const char *s, int64_t *id, srv_resp *r) {
    char *e;
    long long v = s && *s ? strtoll(s, &e, 10) : 0;
    if (!s || !*s || *e || v < 1) {
        srv_error(r, 404, "payment_not_found", NULL, "no such payment");
        return 0;
    }
    *id = v;
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Sessions                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static fp_status session_put(fp_server *s, const char *merchant, const char *terminal, const fp_challenge *c, char *id,
                             size_t cap, int64_t *expires_ms) {
    srv_session *ss = calloc(1, sizeof *ss);
    if (!ss) return FP_ERR_NOMEM;
    snprintf(ss->merchant, sizeof ss->merchant, "%s", merchant);
    snprintf(ss->terminal, sizeof ss->terminal, "%s", terminal ? terminal : "");
    ss->none = c == NULL;
    if (c) ss->challenge = *c;
    ss->created_ms = srv_now_ms();
    ss->expires_ms = ss->created_ms + (int64_t)s->o.session_ttl_s * 1000;
    if (expires_ms) *expires_ms = ss->expires_ms;
    uint8_t b[16];
    randombytes_buf(b, sizeof b);
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, b, sizeof b);
    snprintf(id, cap, "ses_%s", hex);
    pthread_mutex_lock(&s->sessions.lock);
    srv_map_expire(&s->sessions, ss->created_ms);
    srv_entry *e = srv_map_put(&s->sessions, id, ss, ss->expires_ms + SESSION_GRACE_MS);
    pthread_mutex_unlock(&s->sessions.lock);
    if (!e) {
        free(ss);
        return FP_ERR_NOMEM;
    }
    return FP_OK;
}

fp_status fp_server_session_new(fp_server *s, const char *merchant_id, const fp_challenge *c, char *id, size_t id_cap) {
    if (!s || !merchant_id || !id || id_cap < 40)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_server_session_new: NULL argument or id buffer under 40 bytes");
    return session_put(s, merchant_id, NULL, c, id, id_cap, NULL);
}

static const char *terminal_of(srv_req *rq, const srv_form *f, srv_resp *r, int *bad) {
    const char *t = NULL;
    *bad = 0;
    if (srv_field_str(f, "terminal_id", &t, r) < 0) {
        *bad = 1;
        return NULL;
    }
    if (!t) t = srv_header(rq, "X-Terminal-Id");
    if (t && !srv_check_id("terminal_id", t, r)) {
        *bad = 1;
        return NULL;
    }
    return t;
}

static json_t *steps_json(const fp_challenge *c) {
    static const char *const names[] = {"blink", "turn_left", "turn_right", "open_mouth"};
    json_t *a = json_array();
    for (int i = 0; c && i < c->n; i++)
        json_array_append_new(a, json_pack("{s:s,s:i}", "step", names[c->step[i] & 3], "count", c->count[i]));
    return a;
}

void srv_route_session_create(srv_req *rq, srv_resp *r) {
    fp_server *s = rq->s;
    srv_form f;
    if (!srv_form_parse(rq, &f, 0, r)) return;
    int bad;
    const char *terminal = terminal_of(rq, &f, r, &bad), *want = NULL;
    if (bad || srv_field_str(&f, "challenge", &want, r) < 0) goto out;
    fp_challenge c;
    int none = 0;
    if (want) {
        if (!s->o.insecure_test_challenges) {
            srv_error(r, 400, "challenge_not_allowed",
                      NULL, "the challenge is chosen by the server (clients may choose only on a test server)");
            goto out;
        }
        if (!strcmp(want, "none")) none = 1;
        else if (fp_challenge_parse(want, &c) || c.n < 1) {
            srv_error(r, 400, "invalid_challenge", NULL, "challenge: %s", fp_last_error());
            goto out;
        }
    } else if (fp_challenge_random(&c)) {
        srv_error_status(r, FP_ERR_INTERNAL, "challenge");
        goto out;
    }
    char id[48];
    int64_t expires = 0;
    if (session_put(s, rq->merchant, terminal, none ? NULL : &c, id, sizeof id, &expires)) {
        srv_error(r, 503, "out_of_memory", NULL, "out of memory");
        goto out;
    }
    char code[64] = "none", prompt[160] = "look at the camera";
    if (!none) {
        fp_challenge_code(&c, code, sizeof code);
        fp_challenge_format(&c, prompt, sizeof prompt);
    }
    /* max_frames: the terminal sizes its capture to what POST /v1/payments will take (413 above) */
    srv_json(r, 201,
             json_pack("{s:s,s:s,s:s,s:o,s:I,s:i,s:i,s:s?}", "session_id", id, "challenge", code, "prompt", prompt,
                       "steps", steps_json(none ? NULL : &c), "expires_at", (json_int_t)expires, "expires_in_s",
                       s->o.session_ttl_s, "max_frames", s->o.max_frames, "terminal_id", terminal));
out:
    srv_form_free(&f);
}

/* Claims a session for one payment attempt. 1: claimed (*out gets a copy); 0: r holds the error. */
static int session_claim(fp_server *s, const char *merchant, const char *terminal, const char *id, srv_session *out,
                         srv_resp *r) {
    int ok = 0;
    pthread_mutex_lock(&s->sessions.lock);
    srv_entry *e = srv_map_get(&s->sessions, id);
    srv_session *ss = e ? e->val : NULL;
    int64_t now = srv_now_ms();
    if (!ss || strcmp(ss->merchant, merchant))
        srv_error(r, 404, "session_not_found", NULL, "no such session; create one with POST /v1/sessions");
    else if (ss->state == SESSION_USED)
        srv_error(r, 409, "session_used", NULL, "this session was already used for a payment; create a new one");
    else if (ss->state == SESSION_CLAIMED)
        srv_error(r, 409, "session_in_use", NULL, "a payment with this session is in progress");
    else if (now >= ss->expires_ms)
        srv_error(r, 410, "session_expired", NULL, "this session expired; create a new one");
    else if (ss->terminal[0] && strcmp(ss->terminal, terminal))
        srv_error(r, 409, "session_mismatch", NULL, "this session belongs to terminal '%s'", ss->terminal);
    else {
        ss->state = SESSION_CLAIMED;
        *out = *ss;
        ok = 1;
    }
    pthread_mutex_unlock(&s->sessions.lock);
    return ok;
}

static void session_release(fp_server *s, const char *id, int used, int64_t payment_id) {
    pthread_mutex_lock(&s->sessions.lock);
    srv_entry *e = srv_map_get(&s->sessions, id);
    if (e) {
        srv_session *ss = e->val;
        ss->state = used ? SESSION_USED : SESSION_NEW;
        ss->payment_id = payment_id;
    }
    pthread_mutex_unlock(&s->sessions.lock);
}

/* ------------------------------------------------------------------------------------------ */
/* POST /v1/payments                                                                           */
/* ------------------------------------------------------------------------------------------ */

/* The request's meaning for the idempotency record: the same fields and frames (bytes and times)
 * give the same hash whatever the encoding of the body (multipart boundary, JSON spacing). */
static void payment_hash(const char *terminal, int64_t amount, const char *currency, const char *session,
                         const srv_form *f, uint8_t out[32]) {
    crypto_hash_sha256_state hs;
    crypto_hash_sha256_init(&hs);
    char buf[512];
    int n = snprintf(buf, sizeof buf, "payment%c%s%c%lld%c%s%c%s%c%d", 0, terminal, 0, (long long)amount, 0, currency, 0,
                     session, 0, f->n_frames);
    crypto_hash_sha256_update(&hs, (const unsigned char *)buf, (size_t)n);
    for (int i = 0; i < f->n_frames; i++) {
        uint8_t h[32];
        crypto_hash_sha256(h, f->frames[i].data, f->frames[i].len);
        crypto_hash_sha256_update(&hs, h, sizeof h);
        n = isnan(f->frames[i].t_ms) ? snprintf(buf, sizeof buf, "-") : snprintf(buf, sizeof buf, "%.17g", f->frames[i].t_ms);
        crypto_hash_sha256_update(&hs, (const unsigned char *)buf, (size_t)n + 1);
    }
    crypto_hash_sha256_final(&hs, out);
}

/* A retry the server's memory does not know (it restarted, or the record aged out): the ledger's
 * record of the key answers, before the session is looked at (sessions live in memory and die with
 * the process). The frames cannot be compared (the ledger keeps their decision, not their bytes),
 * so terminal, amount and currency must match. 1: go on with a new payment; 0: r holds the answer
 * (*keep set when it is a replay worth remembering). */
static int ledger_replay(fp_server *s, const char *merchant, const char *idem, const char *terminal, int64_t amount,
                         const char *currency, srv_resp *r, int *keep) {
    fp_payment prev;
    fp_status st = fp_pay_charge_by_key(s->pay, merchant, idem, &prev);
    if (st == FP_ERR_NOT_FOUND) return 1;
    if (st == FP_ERR_PAY_CONFLICT)
        srv_error(r, 409, "idempotency_conflict", NULL, "%s", fp_last_error());
    else if (st)
        srv_error_status(r, st, "reading the idempotency key");
    else if (strcmp(prev.terminal_id, terminal) || prev.amount != amount || strcmp(prev.currency, currency))
        srv_error(r, 409, "idempotency_conflict", NULL, "this Idempotency-Key was used for a different request");
    else {
        json_t *j = srv_payment_json(&prev);
        json_object_set_new(j, "payment_id", json_integer(prev.id));
        json_object_set_new(j, "replayed", json_true());
        srv_json(r, prev.state == FP_PAY_AUTHORISED ? 402 : 200, j);
        r->idem_replayed = 1;
        atomic_fetch_add(&s->metrics.idem_replays, 1);
        *keep = 1;
    }
    return 0;
}

void srv_route_payment_create(srv_req *rq, srv_resp *r) {
    fp_server *s = rq->s;
    srv_form f;
    if (!srv_form_parse(rq, &f, s->o.max_frames, r)) return;
    const char *idem = srv_header(rq, "Idempotency-Key");
    const char *currency = NULL, *session = NULL, *terminal;
    int64_t amount = 0;
    int bad, idem_open = 0, keep = 0, claimed = 0, used = 0;
    int64_t payment_id = 0;
    fp_image *imgs = NULL;
    double *t = NULL;
    uint8_t(*hash)[16] = NULL;
    srv_session ss;
    srv_pay_analysis an;
    memset(&an, 0, sizeof an);
    if (!srv_check_idem_key(idem, r)) goto out;
    terminal = terminal_of(rq, &f, r, &bad);
    if (bad) goto out;
    int ga = srv_field_int(&f, "amount", &amount, r);
    if (ga < 0 || srv_field_str(&f, "currency", &currency, r) < 0 || srv_field_str(&f, "session_id", &session, r) < 0)
        goto out;
    if (!ga || !currency || !session || !terminal) {
        srv_error(r, 400, "missing_field", NULL,
                  "amount (integer minor units), currency, session_id and terminal_id (or X-Terminal-Id) are required");
        goto out;
    }
    if (amount < 1 || amount > FP_PAY_MAX_AMOUNT) {
        srv_error(r, 400, "invalid_amount", NULL, "amount must be 1..%lld minor units", (long long)FP_PAY_MAX_AMOUNT);
        goto out;
    }
    if (strlen(currency) != 3 || strspn(currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3) {
        srv_error(r, 400, "invalid_currency", NULL, "currency must be an ISO 4217 code such as \"EUR\"");
        goto out;
    }
    if (strlen(session) > 64) {
        srv_error(r, 404, "session_not_found", NULL, "no such session");
        goto out;
    }
    if (f.n_frames < 1) {
        srv_error(r, 400, "no_frames", NULL, "send the customer's frames as JPEG 'frame' parts (or JSON base64 'frames')");
        goto out;
    }
    uint8_t h[32];
    payment_hash(terminal, amount, currency, session, &f, h);
    if (!srv_idem_begin(s, rq->merchant, idem, h, r)) goto out;
    idem_open = 1;
    if (!ledger_replay(s, rq->merchant, idem, terminal, amount, currency, r, &keep)) goto out;
    if (!session_claim(s, rq->merchant, terminal, session, &ss, r)) goto out;
    claimed = 1;
    if (!srv_decode_frames(s, &f, 100.0, &imgs, &t, r)) goto out;
    hash = malloc(sizeof *hash * (size_t)f.n_frames);
    if (!hash) {
        srv_error(r, 503, "out_of_memory", NULL, "out of memory");
        goto out;
    }
    for (int i = 0; i < f.n_frames; i++) srv_frame_hash(&imgs[i], hash[i]);
    /* the replay guard lives in the database (fp_pay_frames_check): a capture used before a restart
     * is still recognised after it; a retry in the same session (after a 503) is not a replay */
    int replayed = 0;
    fp_status fst = fp_pay_frames_check(s->pay, (const uint8_t(*)[16])hash, f.n_frames, session, FRAME_TTL_MS, &replayed);
    if (fst) {
        srv_error_status(r, fst, "recording the frames");
        goto out;
    }
    fp_session *ses = srv_worker_get(s, s->o.worker_wait_ms);
    if (!ses) {
        srv_error(r, 503, "busy", NULL, "every analysis worker is busy; retry");
        r->retry_after = 1;
        goto out;
    }
    used = 1; /* from here on the session is spent, whatever happens */
    fp_status st = srv_analyze_payment(s, ses, imgs, t, f.n_frames, ss.none ? NULL : &ss.challenge, &an);
    srv_worker_put(s, ses);
    if (st) {
        srv_error_status(r, st, "analysing the frames");
        goto out;
    }
    /* liveness: a capture that fails its challenge, or replays frames, counts as a spoof */
    fp_identify_result id = an.id;
    json_t *extra = json_array();
    const char *verdict = "skipped";
    if (an.challenge_ran) {
        verdict = fp_challenge_verdict_name(an.challenge.verdict);
        atomic_fetch_add(&s->metrics.challenges[an.challenge.verdict <= 2 ? an.challenge.verdict : 1], 1);
        if (an.challenge.verdict == FP_CHALLENGE_PASSED) {
            if (an.challenge.blinks > id.blinks) id.blinks = an.challenge.blinks;
            id.blink = id.blink || an.challenge.blinks > 0;
        } else {
            id.liveness_score = 0;
            json_array_append_new(extra, json_string(an.challenge.verdict == FP_CHALLENGE_NOT_ENOUGH
                                                         ? "challenge_incomplete"
                                                         : "challenge_failed"));
        }
    }
    if (replayed) {
        id.liveness_score = 0;
        atomic_fetch_add(&s->metrics.frame_replays, 1);
        json_array_append_new(extra, json_string("frames_replayed"));
    }
    char code[64] = "none";
    if (!ss.none) fp_challenge_code(&ss.challenge, code, sizeof code);
    fp_pay_charge_req req;
    memset(&req, 0, sizeof req);
    req.merchant_id = rq->merchant;
    req.terminal_id = terminal;
    req.idempotency_key = idem;
    req.amount = amount;
    req.currency = currency;
    req.identify = &id;
    req.quality = an.has_quality ? &an.quality : NULL;
    req.challenge = code;
    req.thumbnail_jpeg = an.thumbnail;
    req.thumbnail_len = an.thumbnail_len;
    fp_payment p;
    st = fp_pay_charge(s->pay, &req, &p);
    if (st) {
        json_decref(extra);
        if (st == FP_ERR_NOT_FOUND) srv_error(r, 404, "terminal_not_found", NULL, "%s", fp_last_error());
        else if (st == FP_ERR_PAY_STATE) srv_error(r, 409, "terminal_disabled", NULL, "%s", fp_last_error());
        else srv_error_status(r, st, "charge");
        goto out;
    }
    payment_id = p.id;
    json_t *j = srv_payment_json(&p);
    json_t *reasons = json_object_get(j, "reasons");
    json_array_extend(reasons, extra);
    json_decref(extra);
    json_object_set_new(j, "replayed", json_boolean(p.replayed));
    json_object_set_new(j, "identification",
                        json_pack("{s:s,s:f,s:f,s:f,s:i,s:i,s:i,s:o,s:s}", "decision", fp_decision_name(an.id.decision),
                                  "score", isfinite(an.id.score) ? (double)an.id.score : -1.0, "margin",
                                  isfinite(an.id.margin) ? (double)an.id.margin : -1.0, "threshold", (double)an.id.threshold,
                                  "frames_seen", an.id.frames_seen, "frames_used", an.id.frames_used, "votes", an.id.votes,
                                  "frames_rejected", json_object(), "reason", an.id.reason));
    json_t *rej = json_object_get(json_object_get(j, "identification"), "frames_rejected");
    for (int k = 0; k < FP_REJECT_COUNT; k++)
        if (an.id.frames_rejected[k]) json_object_set_new(rej, fp_reject_name((fp_reject)k), json_integer(an.id.frames_rejected[k]));
    json_object_set_new(j, "liveness",
                        json_pack("{s:s,s:s,s:s,s:i,s:f,s:b,s:i,s:i}", "challenge", code, "verdict", verdict, "reason",
                                  an.challenge_ran ? an.challenge.reason : "", "blinks",
                                  an.challenge_ran ? an.challenge.blinks : an.id.blinks, "passive_score",
                                  (double)an.id.liveness_score, "frames_replayed", replayed, "frames", f.n_frames,
                                  "frames_with_one_face", an.frames_with_one_face));
    int http = 200, decision = PAYMENT_APPROVED;
    if (p.state == FP_PAY_AUTHORISED) {
        http = 402; /* Payment Required: the terminal asks for the PIN, then POSTs .../stepup */
        decision = PAYMENT_STEPUP;
    } else if (p.state == FP_PAY_DECLINED)
        decision = PAYMENT_DECLINED;
    json_object_set_new(j, "payment_id", json_integer(p.id));
    if (!p.replayed) atomic_fetch_add(&s->metrics.payments[decision], 1);
    srv_json(r, http, j);
    r->idem_replayed = p.replayed; /* the ledger's record (e.g. after a restart): nothing moved */
    keep = 1;
out:
    if (idem_open) srv_idem_end(s, rq->merchant, idem, r, keep);
    if (claimed) session_release(s, session, used, payment_id);
    srv_pay_analysis_free(&an);
    free(hash);
    srv_frames_free(imgs, t, f.n_frames);
    srv_form_free(&f);
}

/* ------------------------------------------------------------------------------------------ */
/* Payment follow-ups                                                                          */
/* ------------------------------------------------------------------------------------------ */

void srv_route_payment_get(srv_req *rq, const char *id_s, srv_resp *r) {
    int64_t id;
    if (!parse_payment_id(id_s, &id, r)) return;
    fp_payment p;
    fp_status st = fp_pay_get(rq->s->pay, id, &p);
    if (st == FP_ERR_NOT_FOUND || (!st && strcmp(p.merchant_id, rq->merchant))) {
        srv_error(r, 404, "payment_not_found", NULL, "no such payment");
        return;
    }
    if (st) {
        srv_error_status(r, st, "reading the payment");
        return;
    }
    srv_json(r, 200, srv_payment_json(&p));
}

void srv_route_stepup(srv_req *rq, const char *id_s, srv_resp *r) {
    fp_server *s = rq->s;
    int64_t id;
    if (!parse_payment_id(id_s, &id, r)) return;
    srv_form f;
    if (!srv_form_parse(rq, &f, 0, r)) return;
    const char *secret = NULL;
    int g = srv_field_str(&f, "pin", &secret, r);
    if (g == 0) g = srv_field_str(&f, "phone_last4", &secret, r);
    if (g <= 0) {
        if (g == 0) srv_error(r, 400, "missing_field", NULL, "pin (or phone_last4) is required");
        goto out;
    }
    fp_pay_stepup_result res;
    fp_status st = fp_pay_stepup_verify(s->pay, rq->merchant, id, secret, &res);
    if (st == FP_ERR_NOT_FOUND) srv_error(r, 404, "payment_not_found", NULL, "no such payment");
    else if (st == FP_ERR_PAY_STATE) srv_error(r, 409, "invalid_state", NULL, "%s", fp_last_error());
    else if (st) srv_error_status(r, st, "step-up");
    else {
        atomic_fetch_add(&s->metrics.stepups[res.verified ? 0 : 1], 1);
        srv_json(r, res.verified ? 200 : 402,
                 json_pack("{s:b,s:i,s:i,s:b,s:s,s:o}", "verified", res.verified, "failures", res.failures, "attempts_left",
                           res.attempts_left, "locked", res.locked, "status", status_of(&res.payment), "payment",
                           srv_payment_json(&res.payment)));
    }
out:
    srv_form_free(&f);
}

void srv_route_refund(srv_req *rq, const char *id_s, srv_resp *r) {
    fp_server *s = rq->s;
    int64_t id;
    if (!parse_payment_id(id_s, &id, r)) return;
    const char *idem = srv_header(rq, "Idempotency-Key");
    if (!srv_check_idem_key(idem, r)) return;
    srv_form f;
    if (!srv_form_parse(rq, &f, 0, r)) return;
    int64_t amount = 0;
    int ga = srv_field_int(&f, "amount", &amount, r);
    if (ga <= 0) {
        if (ga == 0) srv_error(r, 400, "missing_field", NULL, "amount (integer minor units) is required");
        goto out;
    }
    if (amount < 1 || amount > FP_PAY_MAX_AMOUNT) {
        srv_error(r, 400, "invalid_amount", NULL, "amount must be 1..%lld minor units", (long long)FP_PAY_MAX_AMOUNT);
        goto out;
    }
    uint8_t h[32];
    char buf[128];
    int n = snprintf(buf, sizeof buf, "refund%c%lld%c%lld", 0, (long long)id, 0, (long long)amount);
    crypto_hash_sha256(h, (const unsigned char *)buf, (size_t)n);
    if (!srv_idem_begin(s, rq->merchant, idem, h, r)) goto out;
    fp_pay_refund_result res;
    fp_status st = fp_pay_refund(s->pay, rq->merchant, idem, id, amount, &res);
    if (st == FP_ERR_NOT_FOUND) srv_error(r, 404, "payment_not_found", NULL, "no such payment");
    else if (st == FP_ERR_PAY_STATE) srv_error(r, 409, "invalid_state", NULL, "%s", fp_last_error());
    else if (st) srv_error_status(r, st, "refund");
    else {
        if (!res.replayed) atomic_fetch_add(&s->metrics.refunds, 1);
        srv_json(r, 201, json_pack("{s:I,s:I,s:b,s:o}", "refund_id", (json_int_t)res.refund_id, "amount",
                                   (json_int_t)res.amount, "replayed", res.replayed, "payment", srv_payment_json(&res.payment)));
        r->idem_replayed = res.replayed;
    }
    srv_idem_end(s, rq->merchant, idem, r, st == FP_OK);
out:
    srv_form_free(&f);
}

void srv_route_cancel(srv_req *rq, const char *id_s, srv_resp *r) {
    int64_t id;
    if (!parse_payment_id(id_s, &id, r)) return;
    fp_payment p;
    fp_status st = fp_pay_cancel(rq->s->pay, rq->merchant, id, &p);
    if (st == FP_ERR_NOT_FOUND) srv_error(r, 404, "payment_not_found", NULL, "no such payment");
    else if (st == FP_ERR_PAY_STATE) srv_error(r, 409, "invalid_state", NULL, "%s", fp_last_error());
    else if (st) srv_error_status(r, st, "cancel");
    else srv_json(r, 200, srv_payment_json(&p));
}
