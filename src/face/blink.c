/*
 * blink.c - blink detection from a per-frame eye-aspect-ratio series (Soukupova & Cech 2016), the
 * liveness cue a printed photo cannot produce.
 *
 * Why this shape: people's open-eye EAR differs (0.2 to 0.4) and the camera's frame rate differs
 * (10 to 60 fps), so the detector is calibrated per sequence and works in time, not frames:
 *  - baseline = the 75th percentile of the valid EAR values (eyes are open most of the time);
 *  - a blink starts when the EAR falls below close_ratio x baseline and ends when it climbs back
 *    above open_ratio x baseline (hysteresis, so noise around one threshold cannot count twice);
 *  - the closed phase must last between min_ms and max_ms measured between frame timestamps
 *    (a blink is ~100-400 ms; at 10 fps it may show in a single frame, so a one-frame dip counts
 *    when its neighbours are open and close enough in time); longer closures are eyes shut, not
 *    blinks;
 *  - a gap between frames longer than max_gap_ms (dropped frames, lost face) cancels a blink in
 *    progress: we cannot tell a blink from a look away across the gap;
 *  - the series must hold open eyes on both sides of the dip: a sequence that starts closed, or a
 *    constant series (a still photo), has no blinks.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

fp_blink_params fp_blink_params_default(void) {
    fp_blink_params p;
    p.close_ratio = 0.70f;
    p.open_ratio = 0.85f;
    p.min_ms = 30;
    p.max_ms = 700;
    p.max_gap_ms = 400;
    p.min_baseline = 0.15f;
    return p;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

fp_status fp_detect_blinks(const double *t_ms, const float *ear, int n, const fp_blink_params *params,
                           fp_blink_result *out) {
    if (!t_ms || !ear || !out || n < 0) return fp_fail(FP_ERR_INVALID_ARG, "fp_detect_blinks: bad arguments");
    fp_blink_params p = params ? *params : fp_blink_params_default();
    if (!(p.close_ratio > 0 && p.close_ratio < p.open_ratio && p.open_ratio <= 1))
        return fp_fail(FP_ERR_INVALID_ARG, "blink params: need 0 < close_ratio < open_ratio <= 1");
    memset(out, 0, sizeof *out);
    for (int i = 1; i < n; i++)
        if (!(t_ms[i] > t_ms[i - 1])) return fp_fail(FP_ERR_INVALID_ARG, "blink series: timestamps must increase (frame %d)", i);
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!v) return fp_fail(FP_ERR_NOMEM, "out of memory");
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(ear[i]) && ear[i] > 0) v[m++] = ear[i];
    out->valid_frames = m;
    if (m < 3) {
        free(v);
        return FP_OK;
    }
    qsort(v, (size_t)m, sizeof *v, cmp_float);
    float base = v[(m * 3) / 4];
    free(v);
    out->baseline = base;
    if (base < p.min_baseline) return FP_OK; /* eyes never clearly open: nothing to compare with */
    float lo = p.close_ratio * base, hi = p.open_ratio * base;
    /* state machine over valid frames */
    enum { UNKNOWN, OPEN, CLOSED } state = UNKNOWN;
    double last_t = -1, open_t = -1, closed_start = -1;
    float min_in_dip = 0;
    for (int i = 0; i < n; i++) {
        if (!(isfinite(ear[i]) && ear[i] > 0)) continue;
        double t = t_ms[i];
        if (last_t >= 0 && t - last_t > p.max_gap_ms) {
            state = UNKNOWN; /* a gap: whatever was going on is unknowable */
        }
        float e = ear[i];
        switch (state) {
        case UNKNOWN:
            if (e >= hi) state = OPEN, open_t = t;
            break;
        case OPEN:
            if (e >= hi) open_t = t;
            else if (e < lo) {
                state = CLOSED;
                /* the eye closed somewhere between the last open frame and now */
                closed_start = 0.5 * (open_t + t);
                min_in_dip = e;
            }
            break;
        case CLOSED:
            if (e < min_in_dip) min_in_dip = e;
            if (e >= hi) {
                double dur = 0.5 * (last_t + t) - closed_start;
                if (dur >= p.min_ms && dur <= p.max_ms && out->blinks < FP_MAX_BLINKS) {
                    out->t_ms[out->blinks] = closed_start;
                    out->depth[out->blinks] = 1.0f - min_in_dip / base;
                    out->blinks++;
                } else if (dur > p.max_ms) {
                    out->long_closures++;
                }
                state = OPEN;
                open_t = t;
            } else if (t - closed_start > p.max_ms) {
                /* still shut after max_ms: eyes closed, wait for them to open before counting again */
                out->long_closures++;
                state = UNKNOWN;
            }
            break;
        }
        last_t = t;
    }
    return FP_OK;
}
