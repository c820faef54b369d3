/*
 * kfold.c - k-fold protocol accuracy, as LFW View 2 prescribes: each fold is scored with the threshold
 * that maximises accuracy on the other folds, so no fold ever sees a threshold tuned on itself; the
 * report gives the mean, the sample standard deviation and each fold's threshold. Pairs that failed to
 * acquire (NaN score) are wrong at any threshold, so a pipeline cannot gain by failing hard pairs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "eval/eval.h"

typedef struct pair {
    uint32_t key;
    int same;
    int fold;
} pair;

static int cmp_pair(const void *a, const void *b) {
    uint32_t x = ((const pair *)a)->key, y = ((const pair *)b)->key;
    return (x > y) - (x < y);
}

void fp_kfold_report_free(fp_kfold_report *r) {
    if (!r) return;
    free(r->accuracy);
    free(r->threshold);
    free(r->n_pairs);
    memset(r, 0, sizeof *r);
}

/* Threshold maximising training accuracy over the pairs of every fold but `held` (sorted by score).
 * Accuracy only changes when the threshold crosses a score, so the candidates are the lowest score
 * (accept all), the midpoints between consecutive distinct scores and just above the highest. */
static double train_threshold(const pair *p, int64_t m, int held) {
    int64_t correct = 0;
    int64_t first = -1;
    for (int64_t i = 0; i < m; i++)
        if (p[i].fold != held) {
            correct += p[i].same != 0; /* at the lowest threshold every scored pair is accepted */
            if (first < 0) first = i;
        }
    if (first < 0) return 0.0; /* unreachable: the caller checks every fold has scored pairs */
    double best_thr = (double)ev_unkey(p[first].key);
    int64_t best = correct;
    int64_t i = first;
    while (i < m) {
        uint32_t v = p[i].key;
        int64_t j = i;
        for (; j < m && p[j].key == v; j++) /* pairs at v become rejected */
            if (p[j].fold != held) correct += p[j].same ? -1 : 1;
        while (j < m && p[j].fold == held) j++;
        double thr = j < m ? 0.5 * ((double)ev_unkey(v) + (double)ev_unkey(p[j].key))
                           : ev_above(ev_unkey(v));
        if (correct > best) { /* strictly better: ties keep the lowest threshold */
            best = correct;
            best_thr = thr;
        }
        i = j;
    }
    return best_thr;
}

fp_status fp_eval_kfold(const float *score, const int *same, const int *fold, int64_t n, int n_folds,
                        fp_kfold_report *out) {
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "eval: NULL report");
    memset(out, 0, sizeof *out);
    if (!score || !same || !fold || n < 1) return fp_fail(FP_ERR_INVALID_ARG, "eval: no pairs");
    if (n_folds < 2) return fp_fail(FP_ERR_INVALID_ARG, "eval: %d folds (need >= 2)", n_folds);
    for (int64_t i = 0; i < n; i++)
        if (fold[i] < 0 || fold[i] >= n_folds)
            return fp_fail(FP_ERR_INVALID_ARG, "eval: pair %lld in fold %d of %d", (long long)i,
                           fold[i], n_folds);
    pair *p = malloc((size_t)n * sizeof *p);
    out->accuracy = calloc((size_t)n_folds, sizeof *out->accuracy);
    out->threshold = calloc((size_t)n_folds, sizeof *out->threshold);
    out->n_pairs = calloc((size_t)n_folds, sizeof *out->n_pairs);
    int64_t *scored = calloc((size_t)n_folds, sizeof *scored);
    if (!p || !out->accuracy || !out->threshold || !out->n_pairs || !scored) {
        free(p);
        free(scored);
        fp_kfold_report_free(out);
        return fp_fail(FP_ERR_NOMEM, "eval: k-fold buffers for %lld pairs", (long long)n);
    }
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        out->n_pairs[fold[i]]++;
        if (isnan(score[i])) {
            out->n_fta++;
            continue;
        }
        scored[fold[i]]++;
        p[m++] = (pair){ev_key(score[i]), same[i] != 0, fold[i]};
    }
    fp_status st = FP_OK;
    for (int f = 0; f < n_folds && !st; f++)
        if (out->n_pairs[f] == 0) st = fp_fail(FP_ERR_INVALID_ARG, "eval: fold %d has no pairs", f);
    if (!st && m == 0) st = fp_fail(FP_ERR_INVALID_ARG, "eval: no scored pair (all failed to acquire)");
    /* every fold's training set needs a scored pair to place a threshold */
    for (int f = 0; f < n_folds && !st; f++)
        if (m - scored[f] == 0) st = fp_fail(FP_ERR_INVALID_ARG, "eval: no scored pair outside fold %d", f);
    free(scored);
    if (st) {
        free(p);
        fp_kfold_report_free(out);
        return st;
    }
    qsort(p, (size_t)m, sizeof *p, cmp_pair);

    out->n_folds = n_folds;
    for (int f = 0; f < n_folds; f++) {
        double thr = train_threshold(p, m, f);
        int64_t correct = 0; /* failed pairs of fold f are never correct */
        for (int64_t i = 0; i < m; i++)
            if (p[i].fold == f) correct += ((double)ev_unkey(p[i].key) >= thr) == (p[i].same != 0);
        out->threshold[f] = thr;
        out->accuracy[f] = (double)correct / (double)out->n_pairs[f];
    }
    free(p);
    double sum = 0, ss = 0;
    for (int f = 0; f < n_folds; f++) sum += out->accuracy[f];
    out->mean_accuracy = sum / n_folds;
    for (int f = 0; f < n_folds; f++) {
        double d = out->accuracy[f] - out->mean_accuracy;
        ss += d * d;
    }
    out->std_accuracy = sqrt(ss / (n_folds - 1));
    out->std_error = out->std_accuracy / sqrt((double)n_folds);
    return FP_OK;
}
