/*
 * train.c - fp_pad_train: subject-disjoint cross-validation, the operating threshold, the final fit.
 *
 * Why by subject: consecutive webcam frames of one person are near duplicates, so a random split
 * would score test frames with a model that saw their neighbours and report a flattering error rate.
 * Subjects are shuffled with the seed and dealt round-robin into folds; every row of a subject lands
 * in the same fold. Each fold is scored by a model (normalisation included) fitted on the other folds
 * only; the pooled out-of-fold scores then give the threshold for the target BPCER and the reported
 * rates, and the final model is fitted on every acquired row with that threshold. A row whose face was
 * not found stays in every denominator as a NaN score (ISO/IEC 30107-3: a bona fide failure is a
 * rejection, an attack failure is never an acceptance).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "pad/pad.h"

fp_pad_train_options fp_pad_train_options_default(void) {
    fp_pad_train_options o;
    memset(&o, 0, sizeof o);
    o.seed = 1;
    o.folds = 5;
    o.target_bpcer = 0.05;
    o.learner = FP_PAD_LOGISTIC;
    o.l2 = 0.1;
    o.hidden = 32;
    o.epochs = 100;
    return o;
}

void fp_pad_cv_report_free(fp_pad_cv_report *r) {
    if (!r) return;
    if (r->pooled) fp_pad_report_free(r->pooled);
    free(r->pooled);
    for (int f = 0; r->fold && f < r->n_folds; f++) fp_pad_report_free(&r->fold[f]);
    free(r->fold);
    free(r->fold_of);
    free(r->score);
    memset(r, 0, sizeof *r);
}

static int cmp_int(const void *a, const void *b) {
    const int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Largest threshold S (a bona fide score) with BPCER(S) = (bona fide scores < S + failures) / n <=
 * target; the lowest bona fide score when even that is above target (the best achievable). */
static double threshold_for_bpcer(const float *score, const int *label, int64_t n, double target) {
    int64_t nb = 0, nan = 0;
    float *b = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!b) return NAN;
    for (int64_t i = 0; i < n; i++) {
        if (label[i] >= 0) continue;
        if (isnan(score[i])) nan++;
        else b[nb++] = score[i];
    }
    double t = NAN;
    if (nb > 0) {
        qsort(b, (size_t)nb, sizeof *b, cmp_float);
        /* with S = b[k], the scores below S are at most k (fewer with ties) */
        int64_t k = (int64_t)floor(target * (double)(nb + nan) * (1 + 1e-12)) - nan;
        if (k < 0) k = 0;
        if (k >= nb) k = nb - 1;
        t = b[k];
    }
    free(b);
    return t;
}

/* fp_eval_pad over rows with fold_of == fold (fold < 0: all rows). FP_ERR_INVALID_ARG from the
 * metrics (a fold with one class only) leaves a zeroed report and is not an error here. */
static fp_status report_rows(const fp_pad_dataset *d, const float *score, const int *fold_of, int fold, double thr,
                             fp_pad_report *out, int allow_empty) {
    float *bona = malloc(sizeof(float) * (size_t)d->n), *att = malloc(sizeof(float) * (size_t)d->n);
    int *type = malloc(sizeof(int) * (size_t)d->n);
    fp_status st = FP_OK;
    memset(out, 0, sizeof *out);
    if (!bona || !att || !type) st = fp_fail(FP_ERR_NOMEM, "pad: out of memory");
    int64_t nb = 0, na = 0;
    for (int64_t i = 0; st == FP_OK && i < d->n; i++) {
        if (fold >= 0 && fold_of[i] != fold) continue;
        if (d->label[i] < 0) bona[nb++] = score[i];
        else att[na] = score[i], type[na++] = d->label[i];
    }
    if (st == FP_OK && (nb == 0 || na == 0)) {
        if (!allow_empty) st = fp_fail(FP_ERR_INVALID_ARG, "pad: no %s rows to evaluate", nb ? "attack" : "bona fide");
    } else if (st == FP_OK) {
        const fp_pad_scores sc = {bona, nb, att, type, na, d->n_types};
        st = fp_eval_pad(&sc, thr, out);
    }
    free(bona);
    free(att);
    free(type);
    return st;
}

static fp_status validate(const fp_pad_dataset *d, const fp_pad_train_options *o) {
    if (!d) return fp_fail(FP_ERR_INVALID_ARG, "fp_pad_train: NULL data set");
    if (d->n < 1 || !d->features || !d->label || !d->subject)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pad_train: empty training set (no rows)");
    if (d->n > 100000000) return fp_fail(FP_ERR_TOO_LARGE, "fp_pad_train: %lld rows", (long long)d->n);
    if (pad_feature_dim(d->recipe) == 0 || pad_feature_dim(d->recipe) != d->dim)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pad_train: recipe 0x%x has %d features, the data %d", (unsigned)d->recipe,
                       pad_feature_dim(d->recipe), d->dim);
    if (d->n_types < 1 || d->n_types > 1024)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pad_train: %d attack types (1..1024)", d->n_types);
    if (o->folds < 2) return fp_fail(FP_ERR_INVALID_ARG, "fp_pad_train: %d folds (need >= 2)", o->folds);
    if (!(o->target_bpcer > 0 && o->target_bpcer < 1))
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pad_train: target BPCER %g outside (0, 1)", o->target_bpcer);
    if (o->learner < FP_PAD_LOGISTIC || o->learner > FP_PAD_MLP)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pad_train: unknown learner %d", o->learner);
    if (!(o->l2 > 0 && o->l2 < 1e6)) return fp_fail(FP_ERR_INVALID_ARG, "fp_pad_train: l2 %g (need > 0)", o->l2);
    if (o->learner == FP_PAD_MLP && (o->hidden < 1 || o->hidden > 4096))
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pad_train: %d hidden units (1..4096)", o->hidden);
    if (o->learner != FP_PAD_LOGISTIC && (o->epochs < 1 || o->epochs > 100000))
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pad_train: %d epochs (1..100000)", o->epochs);
    int64_t nb = 0, na = 0;
    for (int64_t i = 0; i < d->n; i++) {
        if (d->label[i] < -1 || d->label[i] >= d->n_types)
            return fp_fail(FP_ERR_INVALID_ARG, "fp_pad_train: row %lld has label %d (-1 or 0..%d)", (long long)i,
                           d->label[i], d->n_types - 1);
        if (d->acquired && !d->acquired[i]) continue;
        const float *x = d->features + (size_t)i * d->dim;
        for (int k = 0; k < d->dim; k++)
            if (!isfinite(x[k]))
                return fp_fail(FP_ERR_INVALID_ARG, "fp_pad_train: row %lld feature %d is not finite", (long long)i, k);
        if (d->label[i] < 0) nb++;
        else na++;
    }
    if (nb == 0 || na == 0)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pad_train: need both classes, got %lld bona fide and %lld attack "
                       "presentations with a face", (long long)nb, (long long)na);
    return FP_OK;
}

fp_status fp_pad_train(const fp_pad_dataset *d, const fp_pad_train_options *opts, fp_pad_model **out,
                       fp_pad_cv_report *cv) {
    if (cv) memset(cv, 0, sizeof *cv);
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "fp_pad_train: NULL output");
    *out = NULL;
    const fp_pad_train_options o = opts ? *opts : fp_pad_train_options_default();
    fp_status st = validate(d, &o);
    if (st != FP_OK) return st;
    const int64_t n = d->n;
    const int dim = d->dim;

    /* distinct subjects, sorted, then shuffled with the seed and dealt into folds */
    int *subj = malloc(sizeof(int) * (size_t)n), *fold_of = malloc(sizeof(int) * (size_t)n),
        *subj_fold = NULL, *idx = malloc(sizeof(int) * (size_t)n), *perm = NULL;
    uint8_t *y = malloc((size_t)n);
    float *score = malloc(sizeof(float) * (size_t)n);
    fp_pad_report *fold_rep = NULL, *pooled = calloc(1, sizeof *pooled);
    fp_pad_model *m = NULL;
    pad_classifier clf;
    memset(&clf, 0, sizeof clf);
    int n_subj = 0, n_folds = 0;
    if (!subj || !fold_of || !idx || !y || !score || !pooled) {
        st = fp_fail(FP_ERR_NOMEM, "fp_pad_train: out of memory (%lld rows)", (long long)n);
        goto done;
    }
    memcpy(subj, d->subject, sizeof(int) * (size_t)n);
    qsort(subj, (size_t)n, sizeof(int), cmp_int);
    for (int64_t i = 0; i < n; i++)
        if (i == 0 || subj[i] != subj[n_subj - 1]) subj[n_subj++] = subj[i];
    if (n_subj < 2) {
        st = fp_fail(FP_ERR_INVALID_ARG, "fp_pad_train: all rows are of one subject; subject-disjoint "
                     "cross-validation needs at least 2");
        goto done;
    }
    n_folds = o.folds < n_subj ? o.folds : n_subj;
    perm = malloc(sizeof(int) * (size_t)n_subj);
    subj_fold = malloc(sizeof(int) * (size_t)n_subj);
    fold_rep = calloc((size_t)n_folds, sizeof *fold_rep);
    if (!perm || !subj_fold || !fold_rep) {
        st = fp_fail(FP_ERR_NOMEM, "fp_pad_train: out of memory");
        goto done;
    }
    pad_rng rng;
    pad_rng_seed(&rng, (uint64_t)(uint32_t)o.seed);
    for (int s = 0; s < n_subj; s++) perm[s] = s;
    pad_rng_shuffle(&rng, perm, n_subj);
    for (int k = 0; k < n_subj; k++) subj_fold[perm[k]] = k % n_folds;
    for (int64_t i = 0; i < n; i++) {
        const int *hit = bsearch(&d->subject[i], subj, (size_t)n_subj, sizeof(int), cmp_int);
        fold_of[i] = subj_fold[hit - subj];
        y[i] = d->label[i] < 0;
        score[i] = NAN;
    }
    const pad_fit_params fp = {o.learner, o.l2, o.hidden, o.epochs, pad_rng_next(&rng)};

    for (int f = 0; f < n_folds; f++) {
        int nt = 0;
        for (int64_t i = 0; i < n; i++)
            if (fold_of[i] != f && (!d->acquired || d->acquired[i])) idx[nt++] = (int)i;
        st = pad_fit(d->features, dim, y, idx, nt, &fp, &clf);
        if (st != FP_OK) {
            /* e.g. the other folds hold only live captures: name the fold so the operator can act */
            char why[400];
            snprintf(why, sizeof why, "%s", fp_last_error()); /* fp_fail writes the same buffer */
            st = fp_fail(st, "fp_pad_train: fold %d of %d: %s", f + 1, n_folds, why);
            goto done;
        }
        for (int64_t i = 0; i < n; i++)
            if (fold_of[i] == f && (!d->acquired || d->acquired[i]))
                score[i] = pad_predict(&clf, d->features + (size_t)i * dim);
        pad_classifier_free(&clf);
    }
    const double thr = threshold_for_bpcer(score, d->label, n, o.target_bpcer);
    if (!isfinite(thr)) {
        st = fp_fail(FP_ERR_INVALID_ARG, "fp_pad_train: no bona fide row was scored");
        goto done;
    }
    if ((st = report_rows(d, score, fold_of, -1, thr, pooled, 0)) != FP_OK) goto done;
    for (int f = 0; f < n_folds; f++)
        if ((st = report_rows(d, score, fold_of, f, thr, &fold_rep[f], 1)) != FP_OK) goto done;

    /* final model on every acquired row */
    int nt = 0;
    int64_t nb = 0, na = 0;
    for (int64_t i = 0; i < n; i++)
        if (!d->acquired || d->acquired[i]) {
            idx[nt++] = (int)i;
            if (y[i]) nb++;
            else na++;
        }
    if (!(m = calloc(1, sizeof *m))) {
        st = fp_fail(FP_ERR_NOMEM, "fp_pad_train: out of memory");
        goto done;
    }
    if ((st = pad_fit(d->features, dim, y, idx, nt, &fp, &m->clf)) != FP_OK) goto done;
    m->recipe = d->recipe;
    m->threshold = (float)thr;
    m->target_bpcer = (float)o.target_bpcer;
    m->seed = (uint32_t)o.seed;
    m->folds = (uint32_t)n_folds;
    m->n_bona_fide = (uint32_t)nb;
    m->n_attack = (uint32_t)na;
    m->cv_eer = (float)pooled->eer;
    m->cv_apcer_at_target = (float)pooled->apcer_max;
    if (cv) {
        cv->n_folds = n_folds;
        cv->threshold = thr;
        cv->pooled = pooled;
        cv->fold = fold_rep;
        cv->fold_of = fold_of;
        cv->score = score;
        for (int64_t i = 0; i < n; i++) {
            const int fta = d->acquired && !d->acquired[i];
            if (d->label[i] < 0) cv->n_bona_fide++, cv->fta_bona_fide += fta;
            else cv->n_attack++, cv->fta_attack += fta;
        }
        pooled = NULL;
        fold_rep = NULL;
        fold_of = NULL;
        score = NULL;
    }
    *out = m;
    m = NULL;
done:
    pad_classifier_free(&clf);
    fp_pad_model_free(m);
    if (pooled) fp_pad_report_free(pooled);
    free(pooled);
    for (int f = 0; fold_rep && f < n_folds; f++) fp_pad_report_free(&fold_rep[f]);
    free(fold_rep);
    free(subj);
    free(fold_of);
    free(subj_fold);
    free(idx);
    free(perm);
    free(y);
    free(score);
    return st;
}
