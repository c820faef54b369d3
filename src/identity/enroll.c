/*
 * enroll.c - automatic enrollment capture: frames arrive one by one (photos, a video, a camera), each
 * is analysed and kept only if it passes the quality and pose gates and shows exactly one face; pose
 * bins (frontal, slight left, slight right) have quotas so the template sees the face from more than
 * one angle; the user's template is the normalised mean of the kept embeddings. Before anything is
 * written the template is searched against the gallery: a face that already matches someone else is
 * refused (duplicate account or look-alike) unless the operator allows it, in which case the pair is
 * recorded so payments of either always need step-up.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/core.h"

#define MAX_CANDIDATES 512
#define DIVERSITY_WAIT_MS 4000.0 /* how long to wait for slight left/right turns */
#define FRONTAL_YAW 8.0f /* |yaw| below this is "frontal"; slight turns fill the side bins */

typedef struct candidate {
    float emb[FP_EMBEDDING_DIM];
    float yaw, quality;
    double t_ms;
    char source[128];
    int bin; /* 0 frontal, 1 the subject's left (yaw > 0), 2 right */
    int kept;
} candidate;

struct fp_enroller {
    fp_session *session;
    fp_analyze_options ao;
    fp_enroll_options o;
    fp_enroll_status st;
    candidate *c;
    int n;
    double last_kept_t, first_t;
    double enough_t; /* source time when `target` good frames were first available (NAN before) */
    fp_face *faces;
};

static const char *const reject_names[FP_REJECT_COUNT] = {"no_face", "multiple_faces", "quality", "pose",
                                                          "liveness", "duplicate"};

const char *fp_reject_name(fp_reject r) { return r >= 0 && r < FP_REJECT_COUNT ? reject_names[r] : "?"; }

fp_enroll_options fp_enroll_options_default(void) {
    fp_enroll_options o;
    o.target = 10;
    o.min_interval_ms = 150;
    o.timeout_ms = 30000;
    o.allow_lookalike = 0;
    o.lookalike_threshold = NAN;
    o.max_competing_ratio = 0.6f;
    o.max_competing_frames = 0.2f;
    return o;
}

fp_status fp_enroller_new(fp_session *s, const fp_analyze_options *analyze, const fp_enroll_options *o,
                          fp_enroller **out) {
    if (!s || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_enroller_new: NULL argument");
    *out = NULL;
    fp_enroller *e = calloc(1, sizeof *e);
    if (!e) return fp_fail(FP_ERR_NOMEM, "out of memory");
    e->session = s;
    e->ao = analyze ? *analyze : fp_analyze_options_default();
    e->ao.embedding = 1;
    e->ao.max_faces = 2;
    e->o = o ? *o : fp_enroll_options_default();
    if (e->o.target < 1 || e->o.target > 100) {
        free(e);
        return fp_fail(FP_ERR_INVALID_ARG, "enroll: target frames must be 1..100");
    }
    e->st.target = e->o.target;
    e->c = calloc(MAX_CANDIDATES, sizeof *e->c);
    e->faces = malloc(sizeof *e->faces * 2);
    e->last_kept_t = -1e300;
    e->first_t = NAN;
    e->enough_t = NAN;
    if (!e->c || !e->faces) {
        fp_enroller_free(e);
        return fp_fail(FP_ERR_NOMEM, "out of memory");
    }
    *out = e;
    return FP_OK;
}

void fp_enroller_free(fp_enroller *e) {
    if (!e) return;
    if (e->c) sodium_memzero(e->c, sizeof *e->c * MAX_CANDIDATES); /* biometric data */
    free(e->c);
    free(e->faces);
    free(e);
}

/* Quota of kept frames per pose bin: most frontal, a fifth each side. */
static int quota(const fp_enroller *e, int bin) {
    int side = e->o.target / 5;
    return bin == 0 ? e->o.target - 2 * side : side;
}

static int kept_in(const fp_enroll_status *s, int bin) {
    return bin == 0 ? s->kept_frontal : bin == 1 ? s->kept_left : s->kept_right;
}

static void keep(fp_enroller *e, candidate *c) {
    c->kept = 1;
    e->st.kept++;
    if (c->bin == 0) e->st.kept_frontal++;
    else if (c->bin == 1) e->st.kept_left++;
    else e->st.kept_right++;
    e->last_kept_t = c->t_ms;
}

fp_status fp_enroller_add_frame(fp_enroller *e, const fp_image *frame, double t_ms, const char *source,
                                fp_enroll_status *status) {
    if (!e || !frame) return fp_fail(FP_ERR_INVALID_ARG, "fp_enroller_add_frame: NULL argument");
    if (isnan(e->first_t)) e->first_t = t_ms;
    e->st.seen++;
    int n = 0;
    fp_status st = fp_analyze(e->session, frame, &e->ao, e->faces, 2, &n, NULL);
    if (st) return st;
    fp_reject why = FP_REJECT_COUNT;
    if (n == 0) why = FP_REJECT_NO_FACE;
    else if (n > 1) {
        /* a second face as large as the customer's competes; a small one far behind does not */
        float w0 = fmaxf(e->faces[0].box[2], e->faces[0].box[3]);
        float w1 = fmaxf(e->faces[1].box[2], e->faces[1].box[3]);
        if (w1 >= e->o.max_competing_ratio * w0) {
            e->st.competing_frames++;
            why = FP_REJECT_MULTIPLE_FACES;
        }
    }
    const fp_face *f = &e->faces[0];
    if (why == FP_REJECT_COUNT && !f->quality.pose_ok) why = FP_REJECT_POSE;
    if (why == FP_REJECT_COUNT && !f->quality.pass) why = FP_REJECT_QUALITY;
    if (why == FP_REJECT_COUNT && !f->has_embedding) why = FP_REJECT_QUALITY;
    if (why == FP_REJECT_COUNT && t_ms - e->last_kept_t < e->o.min_interval_ms) why = FP_REJECT_DUPLICATE;
    if (why != FP_REJECT_COUNT) {
        e->st.rejected[why]++;
    } else if (e->n < MAX_CANDIDATES) {
        candidate *c = &e->c[e->n++];
        memcpy(c->emb, f->embedding, sizeof c->emb);
        c->yaw = f->pose.yaw;
        c->quality = f->quality.sharpness;
        c->t_ms = t_ms;
        snprintf(c->source, sizeof c->source, "%s", source ? source : "");
        c->bin = fabsf(c->yaw) < FRONTAL_YAW ? 0 : c->yaw > 0 ? 1 : 2; /* yaw > 0: the subject's left */
        if (kept_in(&e->st, c->bin) < quota(e, c->bin)) keep(e, c);
    }
    if (e->st.kept >= e->o.target) e->st.done = 1;
    /* enough good frames but a side bin still empty: give the customer a few seconds to turn,
     * then stop and fill up with the best frontal frames */
    if (isnan(e->enough_t) && e->n >= e->o.target) e->enough_t = t_ms;
    if (!isnan(e->enough_t) && t_ms - e->enough_t >= DIVERSITY_WAIT_MS) e->st.done = 1;
    if (e->o.timeout_ms > 0 && t_ms - e->first_t >= e->o.timeout_ms) e->st.done = 1;
    if (status) *status = e->st;
    return FP_OK;
}

/* Side bins may stay empty (a customer who does not turn): fill up with the best remaining frames. */
static void fill_up(fp_enroller *e) {
    while (e->st.kept < e->o.target) {
        int best = -1;
        for (int i = 0; i < e->n; i++)
            if (!e->c[i].kept && (best < 0 || e->c[i].quality > e->c[best].quality)) best = i;
        if (best < 0) break;
        keep(e, &e->c[best]);
    }
}

fp_status fp_enroller_commit(fp_enroller *e, fp_store *store, fp_gallery *gallery, const fp_calibration *calib,
                             const char *user_id, const char *name, fp_enroll_result *r) {
    if (!e || !store || !user_id || !r) return fp_fail(FP_ERR_INVALID_ARG, "fp_enroller_commit: NULL argument");
    memset(r, 0, sizeof *r);
    fill_up(e);
    r->status = e->st;
    r->lookalike_score = NAN;
    if (e->st.kept == 0)
        return fp_fail(FP_ERR_INVALID_ARG, "enroll %s: no usable frame in %d (no face %d, several faces %d, pose %d, quality %d)",
                       user_id, e->st.seen, e->st.rejected[FP_REJECT_NO_FACE], e->st.rejected[FP_REJECT_MULTIPLE_FACES],
                       e->st.rejected[FP_REJECT_POSE], e->st.rejected[FP_REJECT_QUALITY]);
    if (e->st.competing_frames > e->o.max_competing_frames * e->st.seen)
        return fp_fail(FP_ERR_INVALID_ARG, "enroll %s: another face competed in %d of %d frames; enrol one person at a time",
                       user_id, e->st.competing_frames, e->st.seen);
    float mean[FP_EMBEDDING_DIM] = {0};
    for (int i = 0; i < e->n; i++)
        if (e->c[i].kept)
            for (int k = 0; k < FP_EMBEDDING_DIM; k++) mean[k] += e->c[i].emb[k];
    double ss = 0;
    for (int k = 0; k < FP_EMBEDDING_DIM; k++) ss += (double)mean[k] * mean[k];
    for (int k = 0; k < FP_EMBEDDING_DIM; k++) mean[k] = (float)(mean[k] / sqrt(ss));
    double spread = 0;
    for (int i = 0; i < e->n; i++)
        if (e->c[i].kept) spread += fp_cosine(mean, e->c[i].emb, FP_EMBEDDING_DIM);
    r->template_spread = (float)(spread / e->st.kept);
    /* look-alike / duplicate check against everyone already enrolled */
    float thr = e->o.lookalike_threshold;
    int64_t users = gallery ? fp_gallery_size(gallery) : 0;
    if (isnan(thr) && calib) thr = fp_calibration_threshold_for(calib, users + 1, NULL);
    r->threshold = thr;
    if (gallery && users > 0) {
        if (isnan(thr)) return fp_fail(FP_ERR_INVALID_ARG, "enroll %s: no calibration for the look-alike check", user_id);
        fp_search_result sr;
        fp_status st = fp_gallery_search(gallery, mean, 1, FP_EMBEDDING_DIM, 2, 1, &sr);
        if (st) return st;
        for (int i = 0; i < sr.n; i++) {
            if (!strcmp(sr.top[i].user_id, user_id)) continue;
            if (sr.top[i].score >= thr) {
                snprintf(r->lookalike_user, sizeof r->lookalike_user, "%s", sr.top[i].user_id);
                r->lookalike_score = sr.top[i].score;
                break;
            }
        }
        if (r->lookalike_user[0] && !e->o.allow_lookalike)
            return fp_fail(FP_ERR_INVALID_ARG,
                           "enroll %s: the face matches existing user %s (score %.3f >= threshold %.3f): duplicate account "
                           "or look-alike; re-run with --allow-lookalike to enrol both with step-up",
                           user_id, r->lookalike_user, r->lookalike_score, thr);
    }
    fp_status st = fp_store_user_add(store, user_id, name ? name : "");
    if (st) return st;
    for (int i = 0; i < e->n && !st; i++)
        if (e->c[i].kept) {
            char src[160];
            snprintf(src, sizeof src, "%s#t=%.0fms", e->c[i].source, e->c[i].t_ms);
            st = fp_store_template_add(store, user_id, FP_EMBEDDER_ID, e->c[i].emb, FP_EMBEDDING_DIM, e->c[i].quality,
                                       src, NULL);
        }
    if (!st && r->lookalike_user[0]) st = fp_store_lookalike_add(store, user_id, r->lookalike_user, r->lookalike_score);
    if (!st) {
        char detail[256];
        snprintf(detail, sizeof detail, "kept %d of %d frames (frontal %d, left %d, right %d), spread %.3f%s%s",
                 e->st.kept, e->st.seen, e->st.kept_frontal, e->st.kept_left, e->st.kept_right, r->template_spread,
                 r->lookalike_user[0] ? ", look-alike of " : "", r->lookalike_user);
        st = fp_store_audit(store, user_id, "enrolled", detail);
    }
    if (!st && gallery) {
        float stored[FP_EMBEDDING_DIM];
        st = fp_store_user_mean(store, user_id, FP_EMBEDDER_ID, stored, FP_EMBEDDING_DIM);
        if (!st) st = fp_gallery_add(gallery, user_id, stored, FP_EMBEDDING_DIM);
    }
    if (st) {
        /* keep the store consistent: a half-enrolled user is removed again */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", fp_last_error());
        fp_store_user_delete(store, user_id, 0);
        return fp_fail(st, "enroll %s: %s", user_id, msg);
    }
    r->enrolled = 1;
    return FP_OK;
}
