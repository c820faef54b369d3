/*
 * pad.c - presentation attack detection metrics (ISO/IEC 30107-3) on liveness scores: APCER per
 * attack species and its maximum, BPCER, ACER at an operating threshold, the EER of the max-APCER vs
 * BPCER curve, APCER at fixed BPCER, and that curve itself. The maximum over species is the standard's
 * choice because an attacker picks the weakest spot: a detector that stops prints but not replays is
 * judged by the replays.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "eval/eval.h"

#define PAD_MAX_TYPES 1024

static const double bpcer_targets[FP_EVAL_N_BPCER] = {0.01, 0.05};

void fp_pad_report_free(fp_pad_report *r) {
    if (!r) return;
    free(r->n_attack);
    free(r->fta_attack);
    free(r->apcer);
    free(r->curve);
    memset(r, 0, sizeof *r);
}

/* Max APCER over species with attacks; *which gets the species (-1 if none). `passing[t]` attacks of
 * species t pass out of n_attack[t]. */
static double max_apcer(const int64_t *passing, const int64_t *n_attack, int n_types, int *which) {
    double best = 0;
    *which = -1;
    for (int t = 0; t < n_types; t++) {
        if (n_attack[t] == 0) continue;
        double a = (double)passing[t] / (double)n_attack[t];
        if (*which < 0 || a > best) {
            best = a;
            *which = t;
        }
    }
    return best;
}

fp_status fp_eval_pad(const fp_pad_scores *in, double threshold, fp_pad_report *out) {
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "eval: NULL report");
    memset(out, 0, sizeof *out);
    if (!in || in->n_bona_fide < 1 || in->n_attack < 1 || !in->bona_fide || !in->attack ||
        !in->attack_type)
        return fp_fail(FP_ERR_INVALID_ARG, "eval: need bona fide and attack scores");
    if (in->n_types < 1 || in->n_types > PAD_MAX_TYPES)
        return fp_fail(FP_ERR_INVALID_ARG, "eval: %d attack types (1..%d)", in->n_types, PAD_MAX_TYPES);
    const int nt = in->n_types;
    for (int64_t i = 0; i < in->n_attack; i++)
        if (in->attack_type[i] < 0 || in->attack_type[i] >= nt)
            return fp_fail(FP_ERR_INVALID_ARG, "eval: attack %lld has type %d of %d", (long long)i,
                           in->attack_type[i], nt);

    out->n_types = nt;
    out->n_attack = calloc((size_t)nt, sizeof *out->n_attack);
    out->fta_attack = calloc((size_t)nt, sizeof *out->fta_attack);
    out->apcer = calloc((size_t)nt, sizeof *out->apcer);
    /* per species: start offset of its keys, read head during the sweep, scored count */
    int64_t *start = calloc((size_t)nt * 3, sizeof *start);
    uint32_t *keys = malloc((size_t)(in->n_bona_fide + in->n_attack) * sizeof *keys);
    if (!out->n_attack || !out->fta_attack || !out->apcer || !start || !keys) {
        free(start);
        free(keys);
        fp_pad_report_free(out);
        return fp_fail(FP_ERR_NOMEM, "eval: PAD buffers");
    }
    int64_t *head = start + nt, *scored = start + 2 * nt;
    uint32_t *bf = keys;
    int64_t n_bf = ev_keys_from(in->bona_fide, in->n_bona_fide, bf);
    ev_sort_keys(bf, n_bf);
    out->n_bona_fide = in->n_bona_fide;
    out->fta_bona_fide = in->n_bona_fide - n_bf;
    /* attacks grouped by species (a counting sort), each group sorted */
    for (int64_t i = 0; i < in->n_attack; i++) {
        int t = in->attack_type[i];
        out->n_attack[t]++;
        if (isnan(in->attack[i])) out->fta_attack[t]++;
        else scored[t]++;
    }
    uint32_t *atk = keys + n_bf;
    int64_t off = 0, n_fp = 1;
    for (int t = 0; t < nt; t++) {
        start[t] = head[t] = off;
        off += scored[t];
        if (out->n_attack[t] > n_fp) n_fp = out->n_attack[t];
    }
    for (int64_t i = 0; i < in->n_attack; i++)
        if (!isnan(in->attack[i])) atk[head[in->attack_type[i]]++] = ev_key(in->attack[i]);
    for (int t = 0; t < nt; t++) {
        ev_sort_keys(atk + start[t], scored[t]);
        head[t] = start[t];
    }
    const int64_t n_atk_scored = off;
    fp_status st = FP_OK;
    if (n_bf + n_atk_scored == 0) st = fp_fail(FP_ERR_INVALID_ARG, "eval: every PAD score is NaN");

    /* sweep: at threshold v, attacks of species t at or above v pass (scored[t] - consumed) */
    ev_sweep sw;
    if (!st) st = ev_sweep_init(&sw, n_fp, in->n_bona_fide);
    if (st) {
        free(start);
        free(keys);
        fp_pad_report_free(out);
        return st;
    }
    int64_t *passing = malloc((size_t)nt * sizeof *passing);
    if (!passing) {
        free(start);
        free(keys);
        ev_sweep_release(&sw);
        fp_pad_report_free(out);
        return fp_fail(FP_ERR_NOMEM, "eval: PAD buffers");
    }
    int found[FP_EVAL_N_BPCER] = {0};
    const double nbf = (double)in->n_bona_fide;
    int64_t bi = 0, left = n_bf + n_atk_scored;
    uint32_t last = 0;
    for (;;) {
        int end = left == 0, which;
        double thr, bpcer;
        if (end) {
            thr = ev_above(ev_unkey(last));
            for (int t = 0; t < nt; t++) passing[t] = 0;
            bpcer = 1.0;
        } else {
            uint32_t v = UINT32_MAX;
            if (bi < n_bf) v = bf[bi];
            for (int t = 0; t < nt; t++)
                if (head[t] < start[t] + scored[t] && atk[head[t]] < v) v = atk[head[t]];
            last = v;
            thr = (double)ev_unkey(v);
            for (int t = 0; t < nt; t++) passing[t] = start[t] + scored[t] - head[t];
            bpcer = (double)(bi + out->fta_bona_fide) / nbf;
        }
        double apcer = max_apcer(passing, out->n_attack, nt, &which);
        ev_sweep_push(&sw, thr, apcer, bpcer);
        for (int j = 0; j < FP_EVAL_N_BPCER; j++) /* BPCER rises with S: keep the last that fits */
            if (bpcer <= bpcer_targets[j]) {
                found[j] = 1;
                out->at[j] = (fp_apcer_at_bpcer){bpcer_targets[j], thr, bpcer, apcer};
            }
        if (end) break;
        while (bi < n_bf && bf[bi] == last) bi++, left--;
        for (int t = 0; t < nt; t++)
            while (head[t] < start[t] + scored[t] && atk[head[t]] == last) head[t]++, left--;
    }
    ev_sweep_finish(&sw);
    for (int j = 0; j < FP_EVAL_N_BPCER; j++)
        if (!found[j]) /* bona fide failures alone exceed the target: no threshold meets it */
            out->at[j] = (fp_apcer_at_bpcer){bpcer_targets[j], NAN, NAN, NAN};
    out->eer = sw.eer;
    out->eer_threshold = sw.eer_threshold;
    out->curve = sw.curve;
    out->n_curve = sw.n_curve;

    /* the operating point, counted directly */
    if (isnan(threshold)) threshold = out->eer_threshold;
    out->threshold = threshold;
    for (int t = 0; t < nt; t++) passing[t] = 0;
    for (int64_t i = 0; i < in->n_attack; i++)
        if ((double)in->attack[i] >= threshold) passing[in->attack_type[i]]++; /* NaN never passes */
    int64_t rejected = out->fta_bona_fide;
    for (int64_t i = 0; i < in->n_bona_fide; i++) rejected += (double)in->bona_fide[i] < threshold;
    for (int t = 0; t < nt; t++)
        out->apcer[t] = out->n_attack[t] ? (double)passing[t] / (double)out->n_attack[t] : NAN;
    out->apcer_max = max_apcer(passing, out->n_attack, nt, &out->apcer_max_type);
    out->bpcer = (double)rejected / nbf;
    out->acer = 0.5 * (out->apcer_max + out->bpcer);
    free(passing);
    free(start);
    free(keys);
    return FP_OK;
}
