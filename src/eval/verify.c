/*
 * verify.c - 1:1 verification metrics (ISO/IEC 19795-1) on genuine and impostor score arrays: the
 * FAR/FRR sweep over every distinct threshold with its EER, AUC, TAR at fixed FARs and the ROC/DET
 * curve; a single operating point; and threshold calibration for a target FAR, including the
 * gallery-size rule that turns a 1:N false-positive budget into a per-comparison FAR.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "eval/eval.h"

static const double far_targets[FP_EVAL_N_FAR] = {1e-3, 1e-4, 1e-5, 1e-6};

static fp_status check_set(const fp_score_set *s) {
    if (!s) return fp_fail(FP_ERR_INVALID_ARG, "eval: NULL score set");
    if (s->n_genuine < 0 || s->n_impostor < 0 || s->fta_genuine < 0 || s->fta_impostor < 0)
        return fp_fail(FP_ERR_INVALID_ARG, "eval: negative count");
    if ((s->n_genuine && !s->genuine) || (s->n_impostor && !s->impostor))
        return fp_fail(FP_ERR_INVALID_ARG, "eval: NULL score array");
    if (s->n_genuine + s->fta_genuine < 1 || s->n_impostor + s->fta_impostor < 1)
        return fp_fail(FP_ERR_INVALID_ARG, "eval: need at least one genuine and one impostor attempt");
    return FP_OK;
}

void fp_verify_report_free(fp_verify_report *r) {
    if (!r) return;
    free(r->curve);
    memset(r, 0, sizeof *r);
}

fp_status fp_eval_verify(const fp_score_set *set, fp_verify_report *out) {
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "eval: NULL report");
    memset(out, 0, sizeof *out);
    fp_status st = check_set(set);
    if (st) return st;
    /* One allocation for both key arrays: 4 bytes per score, the only copy of the data we make. */
    size_t total = (size_t)(set->n_genuine + set->n_impostor);
    uint32_t *keys = malloc((total ? total : 1) * sizeof *keys);
    if (!keys) return fp_fail(FP_ERR_NOMEM, "eval: %zu score keys", total);
    uint32_t *g = keys;
    int64_t ng = ev_keys_from(set->genuine, set->n_genuine, g);
    uint32_t *im = keys + ng;
    int64_t ni = ev_keys_from(set->impostor, set->n_impostor, im);
    if (ng + ni == 0) {
        free(keys);
        return fp_fail(FP_ERR_INVALID_ARG, "eval: no scored comparison (all failed to acquire)");
    }
    int64_t fta_g = set->fta_genuine + (set->n_genuine - ng);
    int64_t fta_i = set->fta_impostor + (set->n_impostor - ni);
    ev_sort_keys(g, ng);
    ev_sort_keys(im, ni);

    int64_t n_g = ng + fta_g, n_i = ni + fta_i;
    ev_sweep sw;
    if ((st = ev_sweep_init(&sw, n_i, n_g))) {
        free(keys);
        return st;
    }
    fp_tradeoff_point at[FP_EVAL_N_FAR];
    int64_t fa[FP_EVAL_N_FAR];
    uint64_t auc2 = 0;
    ev_sweep_two(&sw, g, ng, fta_g, im, ni, fta_i, &auc2, far_targets, FP_EVAL_N_FAR, at, fa);
    ev_sweep_finish(&sw);
    free(keys);

    out->n_genuine = n_g;
    out->n_impostor = n_i;
    out->fta_genuine = fta_g;
    out->fta_impostor = fta_i;
    out->fta_rate = (double)(fta_g + fta_i) / (double)(n_g + n_i);
    out->eer = sw.eer;
    out->eer_threshold = sw.eer_threshold;
    out->auc = (double)auc2 / (2.0 * (double)n_g * (double)n_i);
    out->far_floor95 = 3.0 / (double)n_i;
    for (int j = 0; j < FP_EVAL_N_FAR; j++) { /* the reject-all point always has FAR 0: all found */
        fp_tar_at_far *t = &out->at[j];
        t->target_far = far_targets[j];
        t->threshold = at[j].threshold;
        t->far = at[j].fpr;
        t->frr = at[j].fnr;
        t->tar = 1.0 - at[j].fnr;
        t->false_accepts = fa[j];
        t->far_upper95 = fp_eval_rate_upper_bound(fa[j], n_i, 0.95);
        t->claimable = far_targets[j] >= out->far_floor95;
    }
    out->n_thresholds = sw.n_points;
    out->curve = sw.curve;
    out->n_curve = sw.n_curve;
    return FP_OK;
}

fp_status fp_eval_verify_at(const fp_score_set *set, double threshold, fp_operating_point *out) {
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "eval: NULL operating point");
    memset(out, 0, sizeof *out);
    fp_status st = check_set(set);
    if (st) return st;
    if (isnan(threshold)) return fp_fail(FP_ERR_INVALID_ARG, "eval: NaN threshold");
    int64_t fr = set->fta_genuine, fa = 0, fail_i = set->fta_impostor;
    for (int64_t i = 0; i < set->n_genuine; i++) { /* NaN fails the >= test: a false reject */
        if (!((double)set->genuine[i] >= threshold)) fr++;
    }
    for (int64_t i = 0; i < set->n_impostor; i++) {
        float v = set->impostor[i];
        if (isnan(v)) fail_i++;
        else if ((double)v >= threshold) fa++;
    }
    int64_t n_g = set->n_genuine + set->fta_genuine, n_i = set->n_impostor + set->fta_impostor;
    out->threshold = threshold;
    out->far = (double)fa / (double)n_i;
    out->frr = (double)fr / (double)n_g;
    out->tar = 1.0 - out->frr;
    out->false_accepts = fa;
    out->false_rejects = fr;
    out->accuracy = (double)((n_g - fr) + (n_i - fa - fail_i)) / (double)(n_g + n_i);
    return FP_OK;
}

fp_status fp_eval_threshold_for_gallery(const float *impostor, int64_t n, double target_fpir,
                                        int64_t gallery_size, fp_threshold_estimate *out) {
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "eval: NULL calibration");
    memset(out, 0, sizeof *out);
    if (n < 1 || !impostor) return fp_fail(FP_ERR_INVALID_ARG, "eval: no impostor scores");
    if (!(target_fpir > 0 && target_fpir <= 1))
        return fp_fail(FP_ERR_INVALID_ARG, "eval: target rate %g outside (0, 1]", target_fpir);
    if (gallery_size < 1) return fp_fail(FP_ERR_INVALID_ARG, "eval: gallery size %lld < 1",
                                         (long long)gallery_size);
    uint32_t *keys = malloc((size_t)n * sizeof *keys);
    if (!keys) return fp_fail(FP_ERR_NOMEM, "eval: %lld score keys", (long long)n);
    int64_t m = ev_keys_from(impostor, n, keys);
    if (m == 0) {
        free(keys);
        return fp_fail(FP_ERR_INVALID_ARG, "eval: every impostor score is NaN");
    }
    ev_sort_keys(keys, m);
    /* Union bound: P(any of N comparisons matches) <= N f, so f = target / N is always enough. */
    double far_target = target_fpir / (double)gallery_size;
    int64_t count;
    out->threshold = ev_threshold_for_count(keys, m, ev_allowed(far_target, m), &count);
    free(keys);
    out->target_far = far_target;
    out->false_accepts = count;
    out->n_impostor = m;
    out->n_failed = n - m;
    out->far = (double)count / (double)m;
    out->far_upper95 = fp_eval_rate_upper_bound(count, m, 0.95);
    double need = ceil(3.0 / far_target * (1 - 1e-12));
    out->n_needed = need > 9e18 ? INT64_MAX : (int64_t)need;
    out->claimable = m >= out->n_needed;
    out->gallery_size = gallery_size;
    out->target_fpir = target_fpir;
    out->fpir = -expm1((double)gallery_size * log1p(-out->far));
    out->fpir_upper95 = fmin(1.0, (double)gallery_size * out->far_upper95);
    return FP_OK;
}

fp_status fp_eval_calibrate(const float *impostor, int64_t n, double target_far, fp_threshold_estimate *out) {
    return fp_eval_threshold_for_gallery(impostor, n, target_far, 1, out);
}
