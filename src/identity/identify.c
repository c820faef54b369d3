/*
 * identify.c - the identification decision over the frames of one customer (the seed's batched
 * frames with voting). Each frame is gated (one face, pose, quality, optional passive liveness);
 * usable frames are searched against the gallery in batches of FP_MAX_BATCH as one matrix product;
 * every frame votes for its best user if that score clears the threshold of the calibration's
 * gallery-size rule; the result is
 *   match      the winner has >= min_vote_fraction of the usable frames (and >= min_frames votes),
 *              its mean margin over the runner-up is >= min_margin, and a blink was seen when required;
 *   uncertain  some frames voted but one of those conditions failed (the caller asks for a PIN);
 *   no_match   no usable frame cleared the threshold, or too few usable frames.
 * Blinks come from the eye-aspect-ratio series of every frame with exactly one face.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/core.h"

#define MAX_FRAMES 600

struct fp_identifier {
    fp_session *session;
    const fp_gallery *gallery;
    fp_calibration calib;
    fp_analyze_options ao;
    fp_identify_options o;
    fp_face *faces;
    float (*emb)[FP_EMBEDDING_DIM]; /* usable frames */
    float *live;
    int n_used;
    double *t;                       /* EAR series over frames with one face */
    float *ear;
    int n_ear;
    int seen;
    int rejected[FP_REJECT_COUNT];
};

static const char *const decision_names[] = {"no_match", "match", "uncertain"};
const char *fp_decision_name(fp_decision d) { return d >= 0 && d <= 2 ? decision_names[d] : "?"; }

fp_identify_options fp_identify_options_default(void) {
    fp_identify_options o;
    o.min_frames = 3;
    o.min_vote_fraction = 0.6f;
    o.min_margin = 0.05f;
    o.min_liveness = 0;
    o.require_blink = 0;
    o.max_frames = 60;
    return o;
}

void fp_identifier_free(fp_identifier *id) {
    if (!id) return;
    if (id->emb) sodium_memzero(id->emb, sizeof *id->emb * MAX_FRAMES);
    free(id->emb);
    free(id->live);
    free(id->t);
    free(id->ear);
    free(id->faces);
    free(id);
}

fp_status fp_identifier_new(fp_session *s, const fp_gallery *gallery, const fp_calibration *calib,
                            const fp_analyze_options *analyze, const fp_identify_options *o, fp_identifier **out) {
    if (!s || !gallery || !calib || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_identifier_new: NULL argument");
    *out = NULL;
    fp_identifier *id = calloc(1, sizeof *id);
    if (!id) return fp_fail(FP_ERR_NOMEM, "out of memory");
    id->session = s;
    id->gallery = gallery;
    id->calib = *calib;
    id->ao = analyze ? *analyze : fp_analyze_options_default();
    id->ao.embedding = 1;
    id->ao.max_faces = 2;
    id->o = o ? *o : fp_identify_options_default();
    if (id->o.max_frames < 1 || id->o.max_frames > MAX_FRAMES) id->o.max_frames = MAX_FRAMES;
    id->faces = malloc(sizeof *id->faces * 2);
    id->emb = malloc(sizeof *id->emb * MAX_FRAMES);
    id->live = malloc(sizeof(float) * MAX_FRAMES);
    id->t = malloc(sizeof(double) * MAX_FRAMES);
    id->ear = malloc(sizeof(float) * MAX_FRAMES);
    if (!id->faces || !id->emb || !id->live || !id->t || !id->ear) {
        fp_identifier_free(id);
        return fp_fail(FP_ERR_NOMEM, "out of memory");
    }
    *out = id;
    return FP_OK;
}

/* Shared by both entry points: the frame's time is checked before any work is done on it. */
static fp_status check_frame_time(const fp_identifier *id, double t_ms) {
    if (id->n_ear > 0 && !(t_ms > id->t[id->n_ear - 1]))
        return fp_fail(FP_ERR_INVALID_ARG, "identify: frame times must increase (%.1f after %.1f ms)", t_ms, id->t[id->n_ear - 1]);
    return FP_OK;
}

static fp_status add_analysed(fp_identifier *id, const fp_face *faces, int n, double t_ms) {
    id->seen++;
    if (n == 0) {
        id->rejected[FP_REJECT_NO_FACE]++;
        return FP_OK;
    }
    if (n > 1) { /* at a till, a second face means we cannot know who pays */
        id->rejected[FP_REJECT_MULTIPLE_FACES]++;
        return FP_OK;
    }
    const fp_face *f = &faces[0];
    id->t[id->n_ear] = t_ms;
    id->ear[id->n_ear++] = 0.5f * (f->liveness.ear_left + f->liveness.ear_right);
    if (!f->quality.pose_ok) id->rejected[FP_REJECT_POSE]++;
    else if (!f->quality.pass || !f->has_embedding) id->rejected[FP_REJECT_QUALITY]++;
    else if (id->o.min_liveness > 0 && f->liveness.score < id->o.min_liveness) id->rejected[FP_REJECT_LIVENESS]++;
    else {
        memcpy(id->emb[id->n_used], f->embedding, sizeof id->emb[0]);
        id->live[id->n_used++] = f->liveness.score;
    }
    return FP_OK;
}

fp_status fp_identifier_add_frame(fp_identifier *id, const fp_image *frame, double t_ms) {
    if (!id || !frame) return fp_fail(FP_ERR_INVALID_ARG, "fp_identifier_add_frame: NULL argument");
    if (id->seen >= id->o.max_frames) return FP_OK; /* enough: later frames are ignored, not an error */
    fp_status st = check_frame_time(id, t_ms);
    int n = 0;
    if (!st) st = fp_analyze(id->session, frame, &id->ao, id->faces, 2, &n, NULL);
    return st ? st : add_analysed(id, id->faces, n, t_ms);
}

fp_status fp_identifier_add_faces(fp_identifier *id, const fp_face *faces, int n_faces, double t_ms) {
    if (!id || n_faces < 0 || (n_faces > 0 && !faces))
        return fp_fail(FP_ERR_INVALID_ARG, "fp_identifier_add_faces: bad arguments");
    if (id->seen >= id->o.max_frames) return FP_OK;
    /* a lone face analysed without its embedding is the caller's mistake, not a bad frame: counting it
     * as a quality rejection would quietly turn a payment into "no match" */
    if (n_faces == 1 && !faces[0].has_embedding && faces[0].quality.pass)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_identifier_add_faces: the face was analysed without its embedding");
    fp_status st = check_frame_time(id, t_ms);
    return st ? st : add_analysed(id, faces, n_faces, t_ms);
}

fp_status fp_identifier_decide(fp_identifier *id, fp_identify_result *r) {
    if (!id || !r) return fp_fail(FP_ERR_INVALID_ARG, "fp_identifier_decide: NULL argument");
    memset(r, 0, sizeof *r);
    r->frames_seen = id->seen;
    r->frames_used = id->n_used;
    memcpy(r->frames_rejected, id->rejected, sizeof r->frames_rejected);
    r->threshold = fp_calibration_threshold_for(&id->calib, fp_gallery_size(id->gallery), &r->beyond_calibration);
    fp_blink_result br;
    fp_status st = fp_detect_blinks(id->t, id->ear, id->n_ear, NULL, &br);
    if (st) return st;
    r->blinks = br.blinks;
    r->blink = br.blinks > 0;
    double live = 0;
    for (int i = 0; i < id->n_used; i++) live += id->live[i];
    r->liveness_score = id->n_used ? (float)(live / id->n_used) : 0;
    r->decision = FP_DECISION_NO_MATCH;
    if (id->n_used < id->o.min_frames) {
        snprintf(r->reason, sizeof r->reason, "only %d usable frame(s), need %d", id->n_used, id->o.min_frames);
        return FP_OK;
    }
    fp_search_result *sr = malloc(sizeof *sr * (size_t)id->n_used);
    if (!sr) return fp_fail(FP_ERR_NOMEM, "out of memory");
    for (int i = 0; i < id->n_used && !st; i += FP_MAX_BATCH) {
        int n = id->n_used - i < FP_MAX_BATCH ? id->n_used - i : FP_MAX_BATCH;
        st = fp_gallery_search(id->gallery, &id->emb[i][0], n, FP_EMBEDDING_DIM, 2, 1, sr + i);
    }
    if (st) {
        free(sr);
        return st;
    }
    /* vote: frames whose best user clears the threshold */
    int best = -1, best_votes = 0;
    for (int i = 0; i < id->n_used; i++) {
        if (sr[i].n < 1 || sr[i].top[0].score < r->threshold) continue;
        int votes = 0;
        for (int j = 0; j < id->n_used; j++)
            if (sr[j].n > 0 && sr[j].top[0].score >= r->threshold && !strcmp(sr[j].top[0].user_id, sr[i].top[0].user_id))
                votes++;
        if (votes > best_votes) {
            best_votes = votes;
            best = i;
        }
    }
    if (best < 0) {
        float top = -1;
        for (int i = 0; i < id->n_used; i++)
            if (sr[i].n > 0 && sr[i].top[0].score > top) top = sr[i].top[0].score;
        r->score = top;
        snprintf(r->reason, sizeof r->reason, "no frame reached the threshold %.3f (best %.3f)", r->threshold, top);
        free(sr);
        return FP_OK;
    }
    const char *winner = sr[best].top[0].user_id;
    snprintf(r->user_id, sizeof r->user_id, "%s", winner);
    double score = 0, margin = 0;
    for (int i = 0; i < id->n_used; i++)
        if (sr[i].n > 0 && sr[i].top[0].score >= r->threshold && !strcmp(sr[i].top[0].user_id, winner)) {
            score += sr[i].top[0].score;
            margin += sr[i].margin;
        }
    r->votes = best_votes;
    r->score = (float)(score / best_votes);
    r->margin = (float)(margin / best_votes);
    free(sr);
    if (best_votes < id->o.min_frames || best_votes < id->o.min_vote_fraction * id->n_used) {
        r->decision = FP_DECISION_UNCERTAIN;
        snprintf(r->reason, sizeof r->reason, "%d of %d usable frames voted for %s", best_votes, id->n_used, winner);
    } else if (r->margin < id->o.min_margin) {
        r->decision = FP_DECISION_UNCERTAIN;
        snprintf(r->reason, sizeof r->reason, "margin %.3f to the next user is below %.3f", r->margin, id->o.min_margin);
    } else if (id->o.require_blink && !r->blink) {
        r->decision = FP_DECISION_UNCERTAIN;
        snprintf(r->reason, sizeof r->reason, "no blink in %d frames", id->n_ear);
    } else {
        r->decision = FP_DECISION_MATCH;
    }
    return FP_OK;
}
