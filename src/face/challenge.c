/*
 * challenge.c - active liveness: a random challenge ("blink twice, then turn left") checked against
 * the frames the terminal captured, plus consistency checks a replayed still or a printed photo cannot
 * pass.
 *
 * Steps must happen in the order asked, each after the previous one was completed:
 *  - blink xN: blinks from the eye-aspect-ratio series (fp_detect_blinks, per-sequence baseline);
 *  - turn left / right: yaw moves at least turn_deg from the sequence's starting yaw (median of the
 *    first frames) towards the subject's left (+yaw) / right (-yaw), then may come back;
 *  - open mouth: mouth opening above mouth_open.
 * Consistency checks, evaluated over the whole sequence:
 *  - identity: every frame's embedding stays within min_identity_cos of the mean of the first frames
 *    (whoever started the challenge; a second person cannot take over half-way);
 *  - 3-D structure: when the head turns, a real face's landmarks move with parallax, a flat photo's
 *    move by a plane homography. We fit a homography from the start frame's 2-D landmarks to the most
 *    turned frame's and measure the residual in units of the inter-ocular distance; a residual below
 *    min_parallax means the "head" is a plane. Measured on NUAA's tilted prints (bench/eval_parallax_nuaa)
 *    this catches ideal planes only: the mesh model moves its landmarks as if a tilted print were a
 *    turning head (residual 0.04-0.07), so prints are stopped by the blink step, not by this check;
 *  - presence: enough frames with exactly one face.
 * Verdicts: passed, failed (with the reason), or not_enough_frames (too few frames / too short).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/core.h"
#include "face/geometry.h"

/* landmarks used by the planarity check: rigid-ish points spread over the face (brows, eye corners,
 * nose bridge and tip, cheeks, chin, jaw corners) */
static const int parallax_points[] = {70, 300, 33, 133, 362, 263, 168, 6, 1, 4, 98, 327, 234, 454, 152, 172, 397, 10,
                                      61, 291, 50, 280, 205, 425};
#define N_PAR (int)(sizeof parallax_points / sizeof parallax_points[0])

fp_challenge_params fp_challenge_params_default(void) {
    fp_challenge_params p;
    p.turn_deg = 15;
    p.mouth_open = 0.35f;
    p.min_identity_cos = 0.5f;
    p.min_parallax = 0.012f;
    p.min_frames = 8;
    p.min_face_fraction = 0.7f;
    p.timeout_ms = 15000;
    return p;
}

static const char *const step_names[] = {"blink", "left", "right", "mouth"};

fp_status fp_challenge_random(fp_challenge *c) {
    if (!c) return fp_fail(FP_ERR_INVALID_ARG, "fp_challenge_random: NULL");
    if (sodium_init() < 0) return fp_fail(FP_ERR_INTERNAL, "libsodium failed to initialise");
    memset(c, 0, sizeof *c);
    /* one blink step (1-2 blinks) and one head turn, in random order: cheap for a customer, and a
     * recorded video of someone else's session answers the wrong challenge */
    int blinks = 1 + (int)randombytes_uniform(2);
    fp_challenge_step turn = randombytes_uniform(2) ? FP_STEP_TURN_LEFT : FP_STEP_TURN_RIGHT;
    int blink_first = (int)randombytes_uniform(2);
    c->n = 2;
    c->step[blink_first ? 0 : 1] = FP_STEP_BLINK;
    c->count[blink_first ? 0 : 1] = blinks;
    c->step[blink_first ? 1 : 0] = turn;
    c->count[blink_first ? 1 : 0] = 1;
    return FP_OK;
}

fp_status fp_challenge_parse(const char *text, fp_challenge *c) {
    if (!text || !c) return fp_fail(FP_ERR_INVALID_ARG, "fp_challenge_parse: NULL");
    memset(c, 0, sizeof *c);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", text);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (c->n >= FP_CHALLENGE_MAX_STEPS) return fp_fail(FP_ERR_INVALID_ARG, "challenge: at most %d steps", FP_CHALLENGE_MAX_STEPS);
        int count = 1;
        char *colon = strchr(tok, ':');
        if (colon) {
            *colon = 0;
            count = atoi(colon + 1);
            if (count < 1 || count > 5) return fp_fail(FP_ERR_INVALID_ARG, "challenge: count of '%s' must be 1..5", tok);
        }
        int s = -1;
        for (int k = 0; k < 4; k++)
            if (!strcmp(tok, step_names[k])) s = k;
        if (s < 0) return fp_fail(FP_ERR_INVALID_ARG, "challenge: unknown step '%s' (blink[:N], left, right, mouth)", tok);
        c->step[c->n] = (fp_challenge_step)s;
        c->count[c->n++] = count;
    }
    if (!c->n) return fp_fail(FP_ERR_INVALID_ARG, "challenge: empty");
    return FP_OK;
}

void fp_challenge_format(const fp_challenge *c, char *out, size_t n) {
    static const char *const words[] = {"once", "twice", "three times", "four times", "five times"};
    size_t at = 0;
    out[0] = 0;
    for (int i = 0; c && i < c->n && at < n; i++) {
        const char *sep = i == 0 ? "" : ", then ";
        switch (c->step[i]) {
        case FP_STEP_BLINK:
            at += (size_t)snprintf(out + at, n - at, "%sblink %s", sep, words[(c->count[i] - 1) % 5]);
            break;
        case FP_STEP_TURN_LEFT: at += (size_t)snprintf(out + at, n - at, "%sturn your head to your left", sep); break;
        case FP_STEP_TURN_RIGHT: at += (size_t)snprintf(out + at, n - at, "%sturn your head to your right", sep); break;
        case FP_STEP_MOUTH_OPEN: at += (size_t)snprintf(out + at, n - at, "%sopen your mouth", sep); break;
        }
    }
}

void fp_challenge_code(const fp_challenge *c, char *out, size_t n) {
    size_t at = 0;
    out[0] = 0;
    for (int i = 0; c && i < c->n && at < n; i++)
        at += (size_t)snprintf(out + at, n - at, c->count[i] > 1 ? "%s%s:%d" : "%s%s", i ? "," : "", step_names[c->step[i]],
                               c->count[i]);
}

void fp_liveness_frame_from_face(const fp_face *f, int n_faces, double t_ms, fp_liveness_frame *out) {
    memset(out, 0, sizeof *out);
    out->t_ms = t_ms;
    out->n_faces = n_faces;
    if (!f || n_faces < 1) return;
    out->ear = 0.5f * (f->liveness.ear_left + f->liveness.ear_right);
    out->yaw = f->pose.yaw;
    out->pitch = f->pose.pitch;
    out->mouth = f->liveness.mouth_open;
    out->has_embedding = f->has_embedding;
    if (f->has_embedding) memcpy(out->embedding, f->embedding, sizeof out->embedding);
    for (int k = 0; k < N_PAR; k++) {
        out->points[k][0] = f->mesh[parallax_points[k]][0];
        out->points[k][1] = f->mesh[parallax_points[k]][1];
    }
}

/* Homography (DLT, 8 unknowns, h33 = 1) from a to b by least squares on normalised points; returns the
 * RMS transfer residual divided by the inter-ocular distance of b, or NAN. */
static double planar_residual(const float (*a)[2], const float (*b)[2], int n) {
    double ma[2] = {0}, mb[2] = {0}, sa = 0, sb = 0;
    for (int i = 0; i < n; i++)
        for (int d = 0; d < 2; d++) {
            ma[d] += a[i][d] / n;
            mb[d] += b[i][d] / n;
        }
    for (int i = 0; i < n; i++) {
        sa += hypot(a[i][0] - ma[0], a[i][1] - ma[1]) / n;
        sb += hypot(b[i][0] - mb[0], b[i][1] - mb[1]) / n;
    }
    if (!(sa > 0) || !(sb > 0)) return NAN;
    /* normal equations A^T A h = A^T y for the 8 parameters */
    double M[8][9] = {{0}};
    for (int i = 0; i < n; i++) {
        double x = (a[i][0] - ma[0]) / sa, y = (a[i][1] - ma[1]) / sa;
        double u = (b[i][0] - mb[0]) / sb, v = (b[i][1] - mb[1]) / sb;
        double r1[9] = {x, y, 1, 0, 0, 0, -u * x, -u * y, u};
        double r2[9] = {0, 0, 0, x, y, 1, -v * x, -v * y, v};
        for (int p = 0; p < 8; p++)
            for (int q = 0; q < 9; q++) M[p][q] += r1[p] * r1[q] + r2[p] * r2[q];
    }
    for (int c = 0; c < 8; c++) { /* Gauss-Jordan with partial pivoting */
        int piv = c;
        for (int r = c + 1; r < 8; r++)
            if (fabs(M[r][c]) > fabs(M[piv][c])) piv = r;
        if (fabs(M[piv][c]) < 1e-12) return NAN;
        for (int q = 0; q < 9; q++) {
            double t = M[c][q];
            M[c][q] = M[piv][q];
            M[piv][q] = t;
        }
        for (int r = 0; r < 8; r++) {
            if (r == c) continue;
            double f = M[r][c] / M[c][c];
            for (int q = c; q < 9; q++) M[r][q] -= f * M[c][q];
        }
    }
    double h[9];
    for (int p = 0; p < 8; p++) h[p] = M[p][8] / M[p][p];
    h[8] = 1;
    double ss = 0;
    for (int i = 0; i < n; i++) {
        double x = (a[i][0] - ma[0]) / sa, y = (a[i][1] - ma[1]) / sa;
        double w = h[6] * x + h[7] * y + h[8];
        double u = (h[0] * x + h[1] * y + h[2]) / w, v = (h[3] * x + h[4] * y + h[5]) / w;
        double du = (u - (b[i][0] - mb[0]) / sb) * sb, dv = (v - (b[i][1] - mb[1]) / sb) * sb;
        ss += du * du + dv * dv;
    }
    /* points 2..5 are the eye corners 33, 133, 362, 263: inter-ocular distance from their midpoints */
    double iod = hypot((b[2][0] + b[3][0]) / 2 - (b[4][0] + b[5][0]) / 2, (b[2][1] + b[3][1]) / 2 - (b[4][1] + b[5][1]) / 2);
    return iod > 0 ? sqrt(ss / n) / iod : NAN;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

fp_status fp_challenge_evaluate(const fp_challenge *c, const fp_challenge_params *params, const fp_liveness_frame *fr,
                                int n, fp_challenge_result *r) {
    if (!c || !fr || !r || n < 0 || c->n < 1 || c->n > FP_CHALLENGE_MAX_STEPS)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_challenge_evaluate: bad arguments");
    fp_challenge_params p = params ? *params : fp_challenge_params_default();
    memset(r, 0, sizeof *r);
    r->verdict = FP_CHALLENGE_NOT_ENOUGH;
    r->parallax = NAN;
    r->min_identity_cos = NAN;
    for (int i = 1; i < n; i++)
        if (!(fr[i].t_ms > fr[i - 1].t_ms)) return fp_fail(FP_ERR_INVALID_ARG, "challenge frames: times must increase (frame %d)", i);
    int one = 0;
    for (int i = 0; i < n; i++) one += fr[i].n_faces == 1;
    r->frames = n;
    r->frames_with_face = one;
    if (n < p.min_frames) {
        snprintf(r->reason, sizeof r->reason, "%d frames, need at least %d", n, p.min_frames);
        return FP_OK;
    }
    if (one < p.min_face_fraction * n) {
        r->verdict = FP_CHALLENGE_FAILED;
        snprintf(r->reason, sizeof r->reason, "exactly one face in only %d of %d frames", one, n);
        return FP_OK;
    }
    double *t = calloc((size_t)n + 1, sizeof(double));
    float *ear = calloc((size_t)n + 1, sizeof(float)), *yaws = calloc((size_t)n + 1, sizeof(float));
    if (!t || !ear || !yaws) {
        free(t);
        free(ear);
        free(yaws);
        return fp_fail(FP_ERR_NOMEM, "out of memory");
    }
    int m = 0, ny = 0;
    for (int i = 0; i < n; i++) {
        t[m] = fr[i].t_ms;
        ear[m++] = fr[i].n_faces == 1 ? fr[i].ear : NAN;
        if (fr[i].n_faces == 1 && ny < 5) yaws[ny++] = fr[i].yaw;
    }
    fp_blink_result br;
    fp_status st = fp_detect_blinks(t, ear, m, NULL, &br);
    free(t);
    free(ear);
    if (st) {
        free(yaws);
        return st;
    }
    r->blinks = br.blinks;
    qsort(yaws, (size_t)ny, sizeof *yaws, cmp_float);
    float yaw0 = ny ? yaws[ny / 2] : 0;
    free(yaws);
    /* identity stability and the most turned frame */
    float mean[FP_EMBEDDING_DIM] = {0};
    int ne = 0, start = -1, turned = -1;
    float turn_max = 0;
    for (int i = 0; i < n; i++) {
        if (fr[i].n_faces != 1) continue;
        if (start < 0) start = i;
        float d = fabsf(fr[i].yaw - yaw0);
        if (d > turn_max) turn_max = d, turned = i;
        if (fr[i].yaw - yaw0 > r->max_left) r->max_left = fr[i].yaw - yaw0;
        if (yaw0 - fr[i].yaw > r->max_right) r->max_right = yaw0 - fr[i].yaw;
        /* the reference identity is whoever started the challenge: the first few frames */
        if (!fr[i].has_embedding || ne >= 5) continue;
        for (int k = 0; k < FP_EMBEDDING_DIM; k++) mean[k] += fr[i].embedding[k];
        ne++;
    }
    r->min_identity_cos = 1;
    for (int i = 0; i < n && ne; i++)
        if (fr[i].n_faces == 1 && fr[i].has_embedding) {
            float cs = fp_cosine(mean, fr[i].embedding, FP_EMBEDDING_DIM);
            if (cs < r->min_identity_cos) r->min_identity_cos = cs;
        }
    r->identity_stable = ne > 0 && r->min_identity_cos >= p.min_identity_cos;
    if (start >= 0 && turned >= 0 && turn_max >= p.turn_deg * 0.5f)
        r->parallax = (float)planar_residual(fr[start].points, fr[turned].points, N_PAR);
    /* walk the steps in order */
    double done_t = -1e300;
    int bi = 0;
    for (int s = 0; s < c->n; s++) {
        int ok = 0;
        if (c->step[s] == FP_STEP_BLINK) {
            int got = 0;
            while (bi < br.blinks && got < c->count[s]) {
                if (br.t_ms[bi] > done_t) {
                    got++;
                    if (got == c->count[s]) done_t = br.t_ms[bi], ok = 1;
                }
                bi++;
            }
        } else {
            for (int i = 0; i < n && !ok; i++) {
                if (fr[i].n_faces != 1 || fr[i].t_ms <= done_t) continue;
                float d = fr[i].yaw - yaw0;
                if ((c->step[s] == FP_STEP_TURN_LEFT && d >= p.turn_deg) || (c->step[s] == FP_STEP_TURN_RIGHT && -d >= p.turn_deg) ||
                    (c->step[s] == FP_STEP_MOUTH_OPEN && fr[i].mouth >= p.mouth_open))
                    ok = 1, done_t = fr[i].t_ms;
            }
        }
        if (!ok) break;
        r->steps_done++;
    }
    double span = fr[n - 1].t_ms - fr[0].t_ms;
    char what[128];
    fp_challenge_format(c, what, sizeof what);
    if (!r->identity_stable) {
        r->verdict = FP_CHALLENGE_FAILED;
        snprintf(r->reason, sizeof r->reason, "the face changed during the challenge (min cosine %.2f)", r->min_identity_cos);
    } else if (r->steps_done < c->n) {
        if (span < p.timeout_ms) {
            r->verdict = FP_CHALLENGE_NOT_ENOUGH;
            snprintf(r->reason, sizeof r->reason, "step %d of %d not seen yet (%.80s)", r->steps_done + 1, c->n, what);
        } else {
            r->verdict = FP_CHALLENGE_FAILED;
            snprintf(r->reason, sizeof r->reason, "step %d of %d (%.80s) not performed within %.0f s", r->steps_done + 1,
                     c->n, what, p.timeout_ms / 1000);
        }
    } else if (isfinite(r->parallax) && r->parallax < p.min_parallax) {
        r->verdict = FP_CHALLENGE_FAILED;
        snprintf(r->reason, sizeof r->reason, "the face moved like a flat picture (parallax %.4f < %.4f)", r->parallax,
                 p.min_parallax);
    } else {
        r->verdict = FP_CHALLENGE_PASSED;
    }
    return FP_OK;
}

const char *fp_challenge_verdict_name(fp_challenge_verdict v) {
    static const char *const names[] = {"passed", "failed", "not_enough_frames"};
    return v >= 0 && v <= 2 ? names[v] : "?";
}
