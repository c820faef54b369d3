/*
 * eval.h - internals shared by the evaluation metrics (src/eval/): scores turned into sortable 32-bit
 * keys, an in-place radix sort for tens of millions of them, the threshold rule for a target rate,
 * and the streaming "sweep" that turns a run of operating points into an EER and a down-sampled
 * curve without ever holding every point. Pure math on arrays: no images, no models, no I/O.
 */
#ifndef FP_EVAL_H
#define FP_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "facepay.h"

/* ---- score keys ---------------------------------------------------------------------------- */
/* A float maps to a uint32 whose unsigned order is the float order (-0 folded onto +0), so sorting
 * and tie detection run on integers and a key is exactly one score: 4 bytes per comparison. */
uint32_t ev_key(float f);
float ev_unkey(uint32_t k);

/* Copies the non-NaN scores of src[0..n) into keys (capacity n) and returns how many were copied. */
int64_t ev_keys_from(const float *src, int64_t n, uint32_t *keys);

/* Sorts keys ascending in place: most-significant-byte radix sort (American flag), O(n), no buffer. */
void ev_sort_keys(uint32_t *keys, int64_t n);

/* Number of keys equal to keys[i] from i on (keys sorted). */
int64_t ev_run(const uint32_t *keys, int64_t n, int64_t i);

/* The "reject all" threshold just above a score. */
double ev_above(float max_score);

/* Smallest threshold S, among the sorted scores and the value just above the largest, with at most
 * `k` scores >= S. *count receives the number of scores >= S. keys must be sorted, n >= 1. */
double ev_threshold_for_count(const uint32_t *keys, int64_t n, int64_t k, int64_t *count);

/* Largest error count allowed by a target rate on `denominator` trials: floor(target * d), with a
 * relative 1e-12 nudge so that 1e-3 * 1000 gives 1, not 0 after rounding. */
int64_t ev_allowed(double target, int64_t denominator);

/* ---- streaming sweep ----------------------------------------------------------------------- */
/* Operating points pushed by rising threshold: fpr never rises, fnr never falls. The sweep keeps
 * the first and last points and any point that moved far enough from the last one kept, in linear
 * or log units of either rate; the steps are set so the curve cannot exceed FP_EVAL_MAX_CURVE
 * points (each criterion is monotone, so it can fire at most range / step times: 4 x 480 + 4). */
typedef struct ev_sweep {
    fp_tradeoff_point *curve; /* [FP_EVAL_MAX_CURVE], owned by the caller until handed to a report */
    int n_curve;
    fp_tradeoff_point kept;   /* last point stored */
    fp_tradeoff_point prev;   /* last point pushed */
    int64_t n_points;         /* points pushed */
    double step_lin;          /* linear step for either rate */
    double ratio_fpr;         /* log step of fpr as a ratio, 10^(log10(n_fp) / 480) */
    double ratio_fnr;
    int eer_done;
    double eer, eer_threshold;
} ev_sweep;

/* n_fp, n_fn: denominators of the two rates (the smallest non-zero rate is 1/n). */
fp_status ev_sweep_init(ev_sweep *s, int64_t n_fp, int64_t n_fn);
void ev_sweep_push(ev_sweep *s, double threshold, double fpr, double fnr);
/* Stores the last point if it was not kept; after this, s->curve/n_curve are final. */
void ev_sweep_finish(ev_sweep *s);
/* Frees the curve when it was not handed over. */
void ev_sweep_release(ev_sweep *s);

/* Sweep of positives against negatives, both sorted keys: pushes every distinct threshold plus the
 * reject-all one. fail_pos positives never pass, fail_neg negatives never pass. If auc2 is not NULL it
 * receives 2 x the Mann-Whitney count (pairs pos > neg count 2, ties 1; failures act as -infinity),
 * exact in 64 bits. targets[0..n_targets) are fpr targets: at[j] receives the first point with
 * fpr <= targets[j] and fp_count[j] its number of passing negatives. */
void ev_sweep_two(ev_sweep *s, const uint32_t *pos, int64_t n_pos, int64_t fail_pos,
                  const uint32_t *neg, int64_t n_neg, int64_t fail_neg, uint64_t *auc2,
                  const double *targets, int n_targets, fp_tradeoff_point *at, int64_t *fp_count);

#endif /* FP_EVAL_H */
