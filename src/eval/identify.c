/*
 * identify.c - open-set 1:N identification metrics (ISO/IEC 19795-1, NIST FRVT 1:N style): FNIR at
 * fixed FPIR with the threshold set on non-mated searches only (as a deployment would set it), the
 * mated searches answered with a wrong identity (the error that charges someone else), the closed-set
 * CMC and rank-1 rate, and the FPIR/FNIR trade-off curve.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "eval/eval.h"

static const double fpir_targets[FP_EVAL_N_FPIR] = {0.01, 0.003, 0.001};

void fp_ident_report_free(fp_ident_report *r) {
    if (!r) return;
    free(r->curve);
    memset(r, 0, sizeof *r);
}

/* A mated search the caller could not complete, or whose mate was not returned. */
static int mate_returned(const fp_mated_search *m) { return m->rank >= 1 && !isnan(m->mate_score); }

fp_status fp_eval_identify(const fp_ident_scores *in, fp_ident_report *out) {
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "eval: NULL report");
    memset(out, 0, sizeof *out);
    if (!in || in->n_mated < 0 || in->n_nonmated < 0 || in->fta_mated < 0 || in->fta_nonmated < 0 ||
        (in->n_mated && !in->mated) || (in->n_nonmated && !in->nonmated))
        return fp_fail(FP_ERR_INVALID_ARG, "eval: bad identification scores");
    int64_t n_m = in->n_mated + in->fta_mated, n_nm = in->n_nonmated + in->fta_nonmated;
    if (n_m < 1) return fp_fail(FP_ERR_INVALID_ARG, "eval: no mated search");

    size_t cap = (size_t)(in->n_mated + in->n_nonmated);
    uint32_t *keys = malloc((cap ? cap : 1) * sizeof *keys);
    if (!keys) return fp_fail(FP_ERR_NOMEM, "eval: %zu score keys", cap);
    /* positives of the trade-off curve: mates found at rank 1; every other mated search is a miss */
    uint32_t *pos = keys;
    int64_t n_pos = 0;
    int64_t at_rank[FP_EVAL_CMC_RANKS] = {0};
    for (int64_t i = 0; i < in->n_mated; i++) {
        const fp_mated_search *m = &in->mated[i];
        if (!mate_returned(m)) continue;
        if (m->rank == 1) pos[n_pos++] = ev_key(m->mate_score);
        if (m->rank <= FP_EVAL_CMC_RANKS) at_rank[m->rank - 1]++;
    }
    uint32_t *neg = keys + n_pos;
    int64_t n_neg = ev_keys_from(in->nonmated, in->n_nonmated, neg);
    ev_sort_keys(pos, n_pos);
    ev_sort_keys(neg, n_neg);

    out->n_mated = n_m;
    out->n_nonmated = n_nm;
    out->fta_mated = in->fta_mated;
    for (int64_t i = 0; i < in->n_mated; i++) out->fta_mated += in->mated[i].rank <= 0 && isnan(in->mated[i].nonmate_score);
    out->fta_nonmated = n_nm - n_neg;
    int64_t cum = 0;
    for (int r = 0; r < FP_EVAL_CMC_RANKS; r++) {
        cum += at_rank[r];
        out->cmc[r] = (double)cum / (double)n_m;
    }
    out->rank1 = out->cmc[0];

    for (int j = 0; j < FP_EVAL_N_FPIR; j++) {
        fp_fnir_at_fpir *a = &out->at[j];
        a->target_fpir = fpir_targets[j];
        if (n_nm == 0) { /* closed-set data only: no open-set numbers */
            a->threshold = a->fpir = a->fpir_upper95 = a->fnir = a->misid = NAN;
            continue;
        }
        int64_t fp = 0;
        /* all non-mated searches failed: nothing can be a false positive, any threshold will do */
        a->threshold = n_neg ? ev_threshold_for_count(neg, n_neg, ev_allowed(fpir_targets[j], n_nm), &fp)
                             : -INFINITY;
        a->false_positives = fp;
        a->fpir = (double)fp / (double)n_nm;
        a->fpir_upper95 = fp_eval_rate_upper_bound(fp, n_nm, 0.95);
        a->claimable = fpir_targets[j] >= 3.0 / (double)n_nm;
        int64_t hits = 0, misid = 0;
        for (int64_t i = 0; i < in->n_mated; i++) {
            const fp_mated_search *m = &in->mated[i];
            if (mate_returned(m) && m->rank == 1) hits += (double)m->mate_score >= a->threshold;
            else misid += !isnan(m->nonmate_score) && (double)m->nonmate_score >= a->threshold;
        }
        a->fnir = (double)(n_m - hits) / (double)n_m;
        a->misid = (double)misid / (double)n_m;
    }

    fp_status st = FP_OK;
    if (n_nm > 0 && n_pos + n_neg > 0) {
        ev_sweep sw;
        if (!(st = ev_sweep_init(&sw, n_nm, n_m))) {
            ev_sweep_two(&sw, pos, n_pos, n_m - n_pos, neg, n_neg, n_nm - n_neg, NULL, NULL, 0, NULL, NULL);
            ev_sweep_finish(&sw);
            out->curve = sw.curve;
            out->n_curve = sw.n_curve;
        }
    }
    free(keys);
    if (st) fp_ident_report_free(out);
    return st;
}
