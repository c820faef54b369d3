/*
 * test_eval.c - the evaluation metrics of src/eval/ on synthetic scores whose answers are known: small
 * hand-computed cases (FAR/FRR, EER, AUC, TAR@FAR, k-fold, FNIR/FPIR, CMC, APCER/BPCER/ACER, failures
 * to acquire), statistical ones with a fixed seed (calibration on Gaussian impostors, the
 * Clopper-Pearson bound against its own definition), the radix sort against qsort, and the plots'
 * output files. No data files; runs in well under a second.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/eval.h"
#include "util/testutil.h"

/* ---------------------------------------------------------------------------------------------- */
/* helpers                                                                                         */
/* ---------------------------------------------------------------------------------------------- */
static uint64_t rng_state;
static uint64_t splitmix(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double uniform(void) { return ((splitmix() >> 11) + 0.5) / 9007199254740992.0; } /* (0, 1) */
static double normal(void) { /* Box-Muller */
    return sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform());
}

static fp_score_set set_of(const float *g, int64_t ng, const float *im, int64_t ni) {
    fp_score_set s = {g, ng, im, ni, 0, 0};
    return s;
}

#define NEAR(a, b, tol) assert_true(fabs((double)(a) - (double)(b)) <= (tol))

/* P(X <= k) for X ~ Binomial(n, p), summed in logs: the definition the bound must satisfy. */
static double binom_cdf(int64_t k, int64_t n, double p) {
    double s = 0;
    for (int64_t i = 0; i <= k; i++)
        s += exp(lgamma(n + 1.0) - lgamma(i + 1.0) - lgamma(n - i + 1.0) + i * log(p) + (n - i) * log1p(-p));
    return s;
}

/* ---------------------------------------------------------------------------------------------- */
/* keys and sort                                                                                   */
/* ---------------------------------------------------------------------------------------------- */
static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void test_keys_and_sort(void **state) {
    (void)state;
    const float v[] = {-INFINITY, -1.0f, -0.25f, -0.0f, 0.0f, 1e-30f, 0.5f, 1.0f, INFINITY};
    for (size_t i = 0; i + 1 < sizeof v / sizeof v[0]; i++) {
        if (v[i] == v[i + 1]) assert_int_equal(ev_key(v[i]), ev_key(v[i + 1])); /* -0 == +0 */
        else assert_true(ev_key(v[i]) < ev_key(v[i + 1]));
        assert_true(ev_unkey(ev_key(v[i])) == v[i]);
    }
    const float with_nan[] = {0.5f, NAN, -0.5f};
    uint32_t k3[3];
    assert_int_equal(ev_keys_from(with_nan, 3, k3), 2);

    rng_state = 7;
    const int64_t n = 200000;
    uint32_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    for (int64_t i = 0; i < n; i++) { /* many ties (rounded) and the full range */
        float f = i % 3 ? (float)normal() : roundf((float)normal() * 20) / 20;
        a[i] = b[i] = ev_key(f);
    }
    ev_sort_keys(a, n);
    qsort(b, n, sizeof *b, cmp_u32);
    assert_memory_equal(a, b, n * sizeof *a);
    free(a);
    free(b);
}

/* ---------------------------------------------------------------------------------------------- */
/* verification                                                                                    */
/* ---------------------------------------------------------------------------------------------- */
static void test_far_frr_at_threshold(void **state) {
    (void)state;
    const float g[] = {0.9f, 0.8f, 0.7f, 0.4f}, im[] = {0.1f, 0.3f, 0.5f, 0.75f, 0.2f};
    fp_score_set s = set_of(g, 4, im, 5);
    fp_operating_point op;
    assert_int_equal(fp_eval_verify_at(&s, 0.6, &op), FP_OK);
    NEAR(op.frr, 1.0 / 4, 1e-12); /* 0.4 < 0.6 */
    NEAR(op.far, 1.0 / 5, 1e-12); /* 0.75 >= 0.6 */
    NEAR(op.tar, 3.0 / 4, 1e-12);
    NEAR(op.accuracy, 7.0 / 9, 1e-12);
    assert_int_equal(op.false_accepts, 1);
    assert_int_equal(op.false_rejects, 1);
    /* the seed's inequalities: a genuine AT the threshold is accepted, an impostor at it too */
    assert_int_equal(fp_eval_verify_at(&s, (double)0.75f, &op), FP_OK);
    NEAR(op.frr, 2.0 / 4, 1e-12);
    NEAR(op.far, 1.0 / 5, 1e-12);
    assert_int_equal(fp_eval_verify_at(&s, (double)0.7f, &op), FP_OK);
    NEAR(op.frr, 1.0 / 4, 1e-12);
}

static void test_eer(void **state) {
    (void)state;
    fp_verify_report r;
    /* FAR and FRR meet exactly at a data point: S = 0.6 gives FAR = FRR = 1/5 */
    const float g1[] = {0.4f, 0.6f, 0.7f, 0.8f, 0.9f}, i1[] = {0.1f, 0.2f, 0.3f, 0.5f, 0.65f};
    fp_score_set s = set_of(g1, 5, i1, 5);
    assert_int_equal(fp_eval_verify(&s, &r), FP_OK);
    NEAR(r.eer, 0.2, 1e-12);
    NEAR(r.eer_threshold, 0.6f, 1e-12);
    fp_verify_report_free(&r);
    assert_null(r.curve);

    /* a symmetric case (genuine = 1 - impostor) crossing between points: (FAR, FRR) goes from
     * (1/2, 1/4) at S = 0.5 to (1/4, 1/2) at S = 0.7; the segment meets FAR = FRR half way */
    const float g2[] = {0.3f, 0.5f, 0.8f, 0.9f}, i2[] = {0.1f, 0.2f, 0.5f, 0.7f};
    s = set_of(g2, 4, i2, 4);
    assert_int_equal(fp_eval_verify(&s, &r), FP_OK);
    NEAR(r.eer, 0.375, 1e-12);
    NEAR(r.eer_threshold, 0.5 * ((double)0.5f + (double)0.7f), 1e-12);
    fp_verify_report_free(&r);

    /* mirror-image uniform grids, genuine on [0.2, 1.2), impostor on [-0.2, 0.8): at S = 0.5
     * FRR = FAR = 0.3 (to within the 1/n grid step) */
    enum { N = 1000 };
    float *g3 = malloc(N * sizeof *g3), *i3 = malloc(N * sizeof *i3);
    for (int i = 0; i < N; i++) {
        g3[i] = 0.2f + (i + 0.5f) / N;
        i3[i] = (i + 0.5f) / N - 0.2f;
    }
    s = set_of(g3, N, i3, N);
    assert_int_equal(fp_eval_verify(&s, &r), FP_OK);
    NEAR(r.eer, 0.3, 1.0 / N);
    NEAR(r.eer_threshold, 0.5, 2.0 / N);
    fp_verify_report_free(&r);
    free(g3);
    free(i3);
}

static void test_auc(void **state) {
    (void)state;
    fp_verify_report r;
    /* perfect separation */
    const float g1[] = {0.7f, 0.8f, 0.9f}, i1[] = {0.1f, 0.2f, 0.3f};
    fp_score_set s = set_of(g1, 3, i1, 3);
    assert_int_equal(fp_eval_verify(&s, &r), FP_OK);
    NEAR(r.auc, 1.0, 1e-15);
    NEAR(r.eer, 0.0, 1e-15);
    fp_verify_report_free(&r);

    /* 3 x 3 by hand: 0.9 beats all 3, 0.6 beats all 3, 0.4 beats 0.1 and ties 0.4: 7.5 / 9 */
    const float g2[] = {0.9f, 0.6f, 0.4f}, i2[] = {0.5f, 0.4f, 0.1f};
    s = set_of(g2, 3, i2, 3);
    assert_int_equal(fp_eval_verify(&s, &r), FP_OK);
    NEAR(r.auc, 7.5 / 9, 1e-15);
    fp_verify_report_free(&r);

    /* identical arrays: every pair either ties or is mirrored by another: exactly 1/2 */
    float same[50];
    for (int i = 0; i < 50; i++) same[i] = (float)(i % 7) / 7;
    s = set_of(same, 50, same, 50);
    assert_int_equal(fp_eval_verify(&s, &r), FP_OK);
    NEAR(r.auc, 0.5, 1e-15);
    fp_verify_report_free(&r);

    /* two samples of one distribution: about 1/2 (sd of the estimate ~ 0.009 here) */
    enum { N = 2000 };
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    rng_state = 11;
    for (int i = 0; i < N; i++) {
        a[i] = (float)(0.1 * normal());
        b[i] = (float)(0.1 * normal());
    }
    s = set_of(a, N, b, N);
    assert_int_equal(fp_eval_verify(&s, &r), FP_OK);
    NEAR(r.auc, 0.5, 0.04);
    NEAR(r.eer, 0.5, 0.04);
    fp_verify_report_free(&r);
    free(a);
    free(b);
}

static void test_tar_at_far(void **state) {
    (void)state;
    enum { NI = 1000 };
    float im[NI];
    for (int i = 0; i < NI; i++) im[i] = (float)i / 1000.0f; /* 0, 0.001, ..., 0.999 */
    const float g[] = {0.5f, 0.9985f, 0.9995f, 1.0f};
    fp_score_set s = set_of(g, 4, im, NI);
    fp_verify_report r;
    assert_int_equal(fp_eval_verify(&s, &r), FP_OK);
    /* FAR <= 1e-3 allows one impostor (0.999); the smallest threshold doing it is the genuine 0.9985 */
    fp_tar_at_far *t = &r.at[0];
    NEAR(t->target_far, 1e-3, 0);
    NEAR(t->threshold, 0.9985f, 0);
    NEAR(t->far, 1e-3, 1e-15);
    NEAR(t->tar, 0.75, 1e-15);
    assert_int_equal(t->false_accepts, 1);
    assert_false(t->claimable); /* 3 / 1000 > 1e-3 */
    NEAR(t->far_upper95, fp_eval_rate_upper_bound(1, NI, 0.95), 0);
    /* FAR <= 1e-4 allows none: the next threshold above 0.999 is the genuine 0.9995 */
    t = &r.at[1];
    NEAR(t->threshold, 0.9995f, 0);
    NEAR(t->far, 0, 0);
    NEAR(t->tar, 0.5, 1e-15);
    NEAR(t->far_upper95, 1 - pow(0.05, 1.0 / NI), 1e-12); /* the rule of three, ~3/1000 */
    NEAR(r.far_floor95, 3e-3, 1e-15);
    for (int j = 2; j < FP_EVAL_N_FAR; j++) NEAR(r.at[j].threshold, 0.9995f, 0);
    /* the curve: accept-all first, reject-all last, monotone */
    assert_true(r.n_curve >= 2 && r.n_curve <= FP_EVAL_MAX_CURVE);
    NEAR(r.curve[0].fpr, 1, 0);
    NEAR(r.curve[0].fnr, 0, 0);
    NEAR(r.curve[r.n_curve - 1].fpr, 0, 0);
    NEAR(r.curve[r.n_curve - 1].fnr, 1, 0);
    assert_true(r.curve[r.n_curve - 1].threshold > 1.0);
    assert_int_equal(r.n_thresholds, NI + 3 + 1); /* 0.5 is also an impostor score */
    for (int k = 1; k < r.n_curve; k++) {
        assert_true(r.curve[k].threshold > r.curve[k - 1].threshold);
        assert_true(r.curve[k].fpr <= r.curve[k - 1].fpr);
        assert_true(r.curve[k].fnr >= r.curve[k - 1].fnr);
    }
    fp_verify_report_free(&r);
}

static void test_rule_of_three(void **state) {
    (void)state;
    /* zero errors: exactly 1 - 0.05^(1/n), within 0.2 % of 3/n */
    double u0 = fp_eval_rate_upper_bound(0, 1000000, 0.95);
    NEAR(u0, -expm1(log(0.05) / 1e6), 1e-18);
    NEAR(u0, 3e-6, 0.002 * 3e-6);
    NEAR(fp_eval_rate_upper_bound(0, 300000, 0.95), 1e-5, 0.002e-5); /* GUIDE: 300,000 for 1e-5 */
    /* one error in 10^6: Poisson limit 4.7439 / n */
    NEAR(fp_eval_rate_upper_bound(1, 1000000, 0.95), 4.7439e-6, 1e-9);
    /* small n: the bound p solves P(X <= k | n, p) = 0.05 (checked against the binomial sum) */
    const int64_t cases[][2] = {{1, 10}, {3, 20}, {5, 1000}, {50, 2000}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double p = fp_eval_rate_upper_bound(cases[c][0], cases[c][1], 0.95);
        assert_true(p > (double)cases[c][0] / cases[c][1]);
        NEAR(binom_cdf(cases[c][0], cases[c][1], p), 0.05, 1e-9);
    }
    NEAR(fp_eval_rate_upper_bound(5, 5, 0.95), 1, 0);
    NEAR(fp_eval_rate_upper_bound(0, 0, 0.95), 1, 0);
}

static void test_fta(void **state) {
    (void)state;
    /* 2 scored genuines + 1 failed (count); 2 scored impostors + 1 failed (NaN) */
    const float g[] = {0.9f, 0.8f}, im[] = {0.1f, 0.2f, NAN};
    fp_score_set s = {g, 2, im, 3, 1, 0};
    fp_operating_point op;
    assert_int_equal(fp_eval_verify_at(&s, 0.5, &op), FP_OK);
    NEAR(op.frr, 1.0 / 3, 1e-15); /* the failed genuine is a false reject */
    NEAR(op.far, 0, 0);           /* the failed impostor is not a false accept */
    assert_int_equal(op.false_rejects, 1);
    NEAR(op.accuracy, 4.0 / 6, 1e-15); /* but no failure counts as a correct decision */
    fp_verify_report r;
    assert_int_equal(fp_eval_verify(&s, &r), FP_OK);
    assert_int_equal(r.n_genuine, 3);
    assert_int_equal(r.n_impostor, 3);
    assert_int_equal(r.fta_genuine, 1);
    assert_int_equal(r.fta_impostor, 1);
    NEAR(r.fta_rate, 2.0 / 6, 1e-15);
    /* even the lowest threshold leaves FRR at 1/3 and FAR at 2/3; S = 0.2 gives 1/3 each */
    NEAR(r.curve[0].fpr, 2.0 / 3, 1e-15);
    NEAR(r.curve[0].fnr, 1.0 / 3, 1e-15);
    NEAR(r.eer, 1.0 / 3, 1e-15);
    NEAR(r.eer_threshold, 0.2f, 0);
    /* failures as -inf: 0.9 and 0.8 beat all three impostors, the two failures tie: 6.5 / 9 */
    NEAR(r.auc, 6.5 / 9, 1e-15);
    fp_verify_report_free(&r);
    /* a set with nothing but failures is refused */
    const float nan1[] = {NAN};
    fp_score_set bad = {nan1, 1, nan1, 1, 0, 0};
    assert_int_equal(fp_eval_verify(&bad, &r), FP_ERR_INVALID_ARG);
    fp_score_set none = {g, 2, NULL, 0, 0, 0};
    assert_int_equal(fp_eval_verify(&none, &r), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_eval_verify(NULL, &r), FP_ERR_INVALID_ARG);
}

/* ---------------------------------------------------------------------------------------------- */
/* k-fold                                                                                          */
/* ---------------------------------------------------------------------------------------------- */
static void test_kfold(void **state) {
    (void)state;
    /* 3 folds of 4 pairs; fold 2 has one failure to acquire. By hand (see the comments):
     * fold 0: train on folds 1+2, best accuracy 6/8 at the midpoint of 0.56 and 0.7; applied to
     *         fold 0 it rejects the same pair 0.6: 3/4.
     * fold 1: train on 0+2, 7/8 between 0.56 and 0.6; fold 1 loses the same pair 0.4: 3/4.
     * fold 2: train on 0+1, 7/8 between 0.5 and 0.6; fold 2 accepts the different pair 0.56 and
     *         the failed pair is wrong: 2/4. */
    const float score[] = {0.9f, 0.6f, 0.5f, 0.2f, 0.8f, 0.4f, 0.45f, 0.1f, 0.7f, 0.56f, 0.35f, NAN};
    const int same[] = {1, 1, 0, 0, 1, 1, 0, 0, 1, 0, 0, 1};
    const int fold[] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2};
    fp_kfold_report r;
    assert_int_equal(fp_eval_kfold(score, same, fold, 12, 3, &r), FP_OK);
    assert_int_equal(r.n_folds, 3);
    assert_int_equal(r.n_fta, 1);
    NEAR(r.accuracy[0], 0.75, 1e-15);
    NEAR(r.accuracy[1], 0.75, 1e-15);
    NEAR(r.accuracy[2], 0.50, 1e-15);
    NEAR(r.threshold[0], 0.5 * ((double)0.56f + (double)0.7f), 1e-15);
    NEAR(r.threshold[1], 0.5 * ((double)0.56f + (double)0.6f), 1e-15);
    NEAR(r.threshold[2], 0.5 * ((double)0.5f + (double)0.6f), 1e-15);
    for (int f = 0; f < 3; f++) assert_int_equal(r.n_pairs[f], 4);
    NEAR(r.mean_accuracy, 2.0 / 3, 1e-15);
    NEAR(r.std_accuracy, sqrt((2 * (1.0 / 12) * (1.0 / 12) + (1.0 / 6) * (1.0 / 6)) / 2), 1e-12);
    NEAR(r.std_error, r.std_accuracy / sqrt(3), 1e-15);
    fp_kfold_report_free(&r);
    assert_null(r.accuracy);

    const int bad_fold[] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3};
    assert_int_equal(fp_eval_kfold(score, same, bad_fold, 12, 3, &r), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_eval_kfold(score, same, fold, 12, 4, &r), FP_ERR_INVALID_ARG); /* empty fold */
}

/* ---------------------------------------------------------------------------------------------- */
/* calibration                                                                                     */
/* ---------------------------------------------------------------------------------------------- */
static void test_calibration_gaussian(void **state) {
    (void)state;
    enum { N = 1000000 };
    float *im = malloc(N * sizeof *im);
    assert_non_null(im);
    rng_state = 2024;
    for (int i = 0; i < N; i++) im[i] = (float)(0.1 * normal());
    /* normal(0, 0.1): P(X >= 0.30902) = 1e-3. The sample quantile's sd is
     * sqrt(p (1 - p) / n) / pdf(q) ~ 0.00094: 4 sd */
    fp_threshold_estimate c;
    assert_int_equal(fp_eval_calibrate(im, N, 1e-3, &c), FP_OK);
    NEAR(c.threshold, 0.309023, 0.004);
    assert_int_equal(c.false_accepts, 1000);
    NEAR(c.far, 1e-3, 1e-15);
    assert_true(c.far_upper95 > 1.04e-3 && c.far_upper95 < 1.07e-3);
    assert_int_equal(c.n_impostor, N);
    assert_int_equal(c.n_needed, 3000);
    assert_true(c.claimable);
    assert_int_equal(c.gallery_size, 1);
    /* the threshold is exact on the sample: 1000 scores at or above, 1001 at or above the one below */
    int64_t above = 0;
    for (int i = 0; i < N; i++) above += (double)im[i] >= c.threshold;
    assert_int_equal(above, 1000);
    double thr_1e3 = c.threshold;

    /* 1e-5 from 10^6: allowed, but 3 / 1e-5 = 300,000 is the least to claim it (we have enough);
     * 1e-7 is not claimable */
    assert_int_equal(fp_eval_calibrate(im, N, 1e-5, &c), FP_OK);
    NEAR(c.threshold, 0.1 * 4.264891, 0.025); /* 10 scores in the tail: sd ~ 0.007 */
    assert_int_equal(c.false_accepts, 10);
    assert_true(c.claimable);
    assert_int_equal(fp_eval_calibrate(im, N, 1e-7, &c), FP_OK);
    assert_int_equal(c.false_accepts, 0);
    assert_false(c.claimable);
    assert_int_equal(c.n_needed, 30000000);
    NEAR(c.far_upper95, 3e-6, 0.01e-6);

    /* the gallery rule: FPIR 1 % over 10 identities needs FAR 1e-3 per comparison */
    assert_int_equal(fp_eval_threshold_for_gallery(im, N, 0.01, 10, &c), FP_OK);
    NEAR(c.target_far, 1e-3, 1e-18);
    NEAR(c.threshold, thr_1e3, 0);
    NEAR(c.fpir, 1 - pow(1 - 1e-3, 10), 1e-12);
    assert_true(c.fpir <= 0.01);
    NEAR(c.fpir_upper95, 10 * c.far_upper95, 1e-15);
    assert_int_equal(fp_eval_threshold_for_gallery(im, N, 1e-3, 10000, &c), FP_OK);
    NEAR(c.target_far, 1e-7, 1e-20);
    assert_false(c.claimable);

    /* verification on the same impostors: claimable down to 3e-6, the TAR@1e-3 operating point
     * has the calibrated FAR, at a threshold no higher than the calibrated one */
    enum { NG = 20000 };
    float *g = malloc(NG * sizeof *g);
    for (int i = 0; i < NG; i++) g[i] = (float)(0.4 + 0.1 * normal());
    fp_score_set s = set_of(g, NG, im, N);
    fp_verify_report r;
    assert_int_equal(fp_eval_verify(&s, &r), FP_OK);
    NEAR(r.far_floor95, 3e-6, 1e-18);
    assert_true(r.at[0].claimable && r.at[1].claimable && r.at[2].claimable && !r.at[3].claimable);
    NEAR(r.at[0].far, 1e-3, 1e-15);
    assert_true(r.at[0].threshold <= thr_1e3);
    NEAR(r.at[0].tar, 0.8186, 0.02); /* P(N(0.4, 0.1) >= 0.309) */
    /* EER of two unit-separated normals (d' = 4): Phi(-2) = 2.275 % */
    NEAR(r.eer, 0.02275, 0.003);
    assert_true(r.n_curve > 100 && r.n_curve <= FP_EVAL_MAX_CURVE);
    assert_int_equal(r.n_thresholds > 900000, 1);
    fp_verify_report_free(&r);
    free(g);
    free(im);

    const float one[] = {0.1f};
    assert_int_equal(fp_eval_calibrate(one, 1, 0, &c), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_eval_threshold_for_gallery(one, 1, 0.01, 0, &c), FP_ERR_INVALID_ARG);
}

/* ---------------------------------------------------------------------------------------------- */
/* identification                                                                                  */
/* ---------------------------------------------------------------------------------------------- */
static void test_identify(void **state) {
    (void)state;
    enum { NN = 1000 };
    float nonmated[NN];
    for (int i = 0; i < NN; i++) nonmated[i] = (float)i / 1000.0f;
    /* FPIR 0.01 allows 10 of the 1000 non-mated top scores: threshold 0.990; 0.003 -> 0.997;
     * 0.001 -> 0.999 */
    const fp_mated_search mated[] = {
        {1, 0.995f, 0.4f},  /* A: found at rank 1, passes 0.990 only */
        {1, 0.9995f, 0.3f}, /* B: passes everything */
        {2, 0.6f, 0.993f},  /* C: a wrong identity on top, above 0.990: misidentified there */
        {0, NAN, NAN},      /* D: search failed */
        {3, 0.5f, 0.7f},    /* E: rank 3, top non-mate below every threshold */
    };
    fp_ident_scores in = {mated, 5, nonmated, NN, 1, 0}; /* plus one more failed mated search */
    fp_ident_report r;
    assert_int_equal(fp_eval_identify(&in, &r), FP_OK);
    assert_int_equal(r.n_mated, 6);
    assert_int_equal(r.n_nonmated, NN);
    assert_int_equal(r.fta_mated, 2);
    assert_int_equal(r.fta_nonmated, 0);
    NEAR(r.rank1, 2.0 / 6, 1e-15);
    NEAR(r.cmc[0], 2.0 / 6, 1e-15);
    NEAR(r.cmc[1], 3.0 / 6, 1e-15);
    NEAR(r.cmc[2], 4.0 / 6, 1e-15);
    NEAR(r.cmc[FP_EVAL_CMC_RANKS - 1], 4.0 / 6, 1e-15);

    NEAR(r.at[0].target_fpir, 0.01, 0);
    NEAR(r.at[0].threshold, nonmated[990], 0);
    NEAR(r.at[0].fpir, 0.01, 1e-15);
    assert_int_equal(r.at[0].false_positives, 10);
    NEAR(r.at[0].fnir, 4.0 / 6, 1e-15);
    NEAR(r.at[0].misid, 1.0 / 6, 1e-15);
    assert_true(r.at[0].claimable);

    NEAR(r.at[1].threshold, nonmated[997], 0);
    NEAR(r.at[1].fpir, 0.003, 1e-15);
    NEAR(r.at[1].fnir, 5.0 / 6, 1e-15);
    NEAR(r.at[1].misid, 0, 0);
    assert_true(r.at[1].claimable);

    NEAR(r.at[2].threshold, nonmated[999], 0);
    NEAR(r.at[2].fnir, 5.0 / 6, 1e-15);
    assert_false(r.at[2].claimable);
    NEAR(r.at[2].fpir_upper95, fp_eval_rate_upper_bound(1, NN, 0.95), 0);

    /* the 1:N DET runs from FPIR 1 (FNIR = misses that no threshold fixes, 4/6) to FPIR 0 */
    assert_true(r.n_curve >= 2);
    NEAR(r.curve[0].fpr, 1, 0);
    NEAR(r.curve[0].fnr, 4.0 / 6, 1e-15);
    NEAR(r.curve[r.n_curve - 1].fpr, 0, 0);
    NEAR(r.curve[r.n_curve - 1].fnr, 1, 0);
    fp_ident_report_free(&r);

    /* closed-set only: CMC without open-set numbers */
    fp_ident_scores closed = {mated, 5, NULL, 0, 0, 0};
    assert_int_equal(fp_eval_identify(&closed, &r), FP_OK);
    NEAR(r.rank1, 2.0 / 5, 1e-15);
    assert_true(isnan(r.at[0].fnir));
    assert_int_equal(r.n_curve, 0);
    fp_ident_report_free(&r);
}

/* ---------------------------------------------------------------------------------------------- */
/* presentation attack detection                                                                   */
/* ---------------------------------------------------------------------------------------------- */
static void test_pad(void **state) {
    (void)state;
    const float bf[] = {0.9f, 0.8f, 0.7f, 0.6f, 0.3f};
    const float atk[] = {0.1f, 0.2f, 0.65f, 0.4f, 0.5f, 0.75f, NAN};
    const int type[] = {0, 0, 0, 0, 1, 1, 1}; /* 0: print, 1: replay (one replay failed to acquire) */
    fp_pad_scores in = {bf, 5, atk, type, 7, 2};
    fp_pad_report r;
    assert_int_equal(fp_eval_pad(&in, 0.55, &r), FP_OK);
    assert_int_equal(r.n_attack[0], 4);
    assert_int_equal(r.n_attack[1], 3);
    assert_int_equal(r.fta_attack[1], 1);
    assert_int_equal(r.fta_bona_fide, 0);
    NEAR(r.apcer[0], 1.0 / 4, 1e-15); /* 0.65 */
    NEAR(r.apcer[1], 1.0 / 3, 1e-15); /* 0.75; the failed replay is not accepted */
    NEAR(r.apcer_max, 1.0 / 3, 1e-15);
    assert_int_equal(r.apcer_max_type, 1);
    NEAR(r.bpcer, 1.0 / 5, 1e-15); /* 0.3 */
    NEAR(r.acer, 0.5 * (1.0 / 3 + 1.0 / 5), 1e-15);
    /* EER: at S = 0.6 (max APCER 1/3, BPCER 1/5), at 0.65 (1/3, 2/5): crossing 2/3 of the way */
    NEAR(r.eer, 1.0 / 3, 1e-12);
    NEAR(r.eer_threshold, (double)0.6f + 2.0 / 3 * ((double)0.65f - (double)0.6f), 1e-9);
    /* BPCER <= 1 % and <= 5 %: only while no bona fide is rejected, i.e. S <= 0.3 */
    for (int j = 0; j < FP_EVAL_N_BPCER; j++) {
        NEAR(r.at[j].threshold, 0.3f, 0);
        NEAR(r.at[j].bpcer, 0, 0);
        NEAR(r.at[j].apcer, 2.0 / 3, 1e-15); /* replays 0.5 and 0.75 pass */
    }
    NEAR(r.curve[0].fpr, 1, 0);
    NEAR(r.curve[r.n_curve - 1].fnr, 1, 0);
    fp_pad_report_free(&r);
    assert_null(r.apcer);

    /* NaN threshold: the EER operating point */
    assert_int_equal(fp_eval_pad(&in, NAN, &r), FP_OK);
    NEAR(r.threshold, r.eer_threshold, 0);
    NEAR(r.apcer_max, 1.0 / 3, 1e-15);
    NEAR(r.bpcer, 2.0 / 5, 1e-15);
    fp_pad_report_free(&r);

    const int bad[] = {0, 0, 0, 0, 1, 1, 2};
    fp_pad_scores b = {bf, 5, atk, bad, 7, 2};
    assert_int_equal(fp_eval_pad(&b, 0.5, &r), FP_ERR_INVALID_ARG);
}

/* ---------------------------------------------------------------------------------------------- */
/* plots                                                                                           */
/* ---------------------------------------------------------------------------------------------- */
static int file_starts(const char *path, const void *magic, size_t n) {
    uint8_t buf[16];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    return got == n && memcmp(buf, magic, n) == 0;
}

static int file_contains(const char *path, const char *needle) {
    size_t len;
    uint8_t *d = tu_read_all(path, &len);
    if (!d) return 0;
    int found = 0;
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= len && !found; i++) found = memcmp(d + i, needle, k) == 0;
    free(d);
    return found;
}

static void test_plots(void **state) {
    (void)state;
    char dir[] = "/tmp/fp_test_eval_XXXXXX";
    assert_non_null(mkdtemp(dir));
    enum { N = 20000 };
    float *g = malloc(N * sizeof *g), *im = malloc(N * sizeof *im), *g2 = malloc(N * sizeof *g2);
    rng_state = 99;
    for (int i = 0; i < N; i++) {
        g[i] = (float)(0.5 + 0.1 * normal());
        g2[i] = (float)(0.35 + 0.1 * normal());
        im[i] = (float)(0.1 * normal());
    }
    fp_verify_report r1, r2;
    fp_score_set s1 = set_of(g, N, im, N), s2 = set_of(g2, N, im, N);
    assert_int_equal(fp_eval_verify(&s1, &r1), FP_OK);
    assert_int_equal(fp_eval_verify(&s2, &r2), FP_OK);
    fp_plot_series vs[2] = {fp_verify_series(&r1, "model A"), fp_verify_series(&r2, "model B")};

    float nonmated[500];
    fp_mated_search mated[300];
    for (int i = 0; i < 500; i++) nonmated[i] = (float)(0.2 + 0.08 * normal());
    for (int i = 0; i < 300; i++)
        mated[i] = (fp_mated_search){1 + (int)(uniform() * uniform() * 8), (float)(0.6 + 0.1 * normal()),
                                     (float)(0.3 + 0.05 * normal())};
    fp_ident_scores is = {mated, 300, nonmated, 500, 0, 0};
    fp_ident_report ir;
    assert_int_equal(fp_eval_identify(&is, &ir), FP_OK);
    fp_plot_series ids = fp_ident_series(&ir, "gallery 1k");

    float bf[400], atk[600];
    int type[600];
    for (int i = 0; i < 400; i++) bf[i] = (float)(0.8 + 0.1 * normal());
    for (int i = 0; i < 600; i++) {
        type[i] = i % 3;
        atk[i] = (float)(0.3 + 0.1 * type[i] + 0.12 * normal());
    }
    fp_pad_scores ps = {bf, 400, atk, type, 600, 3};
    fp_pad_report pr;
    assert_int_equal(fp_eval_pad(&ps, NAN, &pr), FP_OK);
    fp_plot_series pads = fp_pad_series(&pr, "passive liveness");

    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const char *ext[2] = {"png", "svg"};
    char path[256];
    for (int e = 0; e < 2; e++) {
        const char *names[4] = {"roc", "det", "cmc", "pad"};
        for (int k = 0; k < 4; k++) {
            snprintf(path, sizeof path, "%s/%s.%s", dir, names[k], ext[e]);
            fp_status st = k == 0   ? fp_plot_roc(path, "Verification ROC", vs, 2)
                           : k == 1 ? fp_plot_det(path, NULL, NULL, NULL, vs, 2)
                           : k == 2 ? fp_plot_cmc(path, "CMC", &ids, 1)
                                    : fp_plot_pad_det(path, NULL, &pads, 1);
            if (st) fprintf(stderr, "%s\n", fp_last_error());
            assert_int_equal(st, FP_OK);
            if (e == 0) assert_true(file_starts(path, png_sig, 8));
            else assert_true(file_contains(path, "<svg"));
            if (getenv("FP_KEEP_PLOTS")) fprintf(stderr, "kept %s\n", path);
            else unlink(path);
        }
    }
    snprintf(path, sizeof path, "%s/ident_det.pdf", dir);
    assert_int_equal(fp_plot_det(path, "1:N DET", "FPIR", "FNIR", &ids, 1), FP_OK);
    assert_true(file_starts(path, "%PDF", 4));
    unlink(path);
    /* an unknown extension, a folder that does not exist, nothing to draw */
    snprintf(path, sizeof path, "%s/roc.bmp", dir);
    assert_int_equal(fp_plot_roc(path, NULL, vs, 2), FP_ERR_UNSUPPORTED);
    assert_int_equal(fp_plot_roc("/nonexistent-dir/roc.png", NULL, vs, 2), FP_ERR_IO);
    assert_int_equal(fp_plot_roc("/nonexistent-dir/roc.svg", NULL, vs, 2), FP_ERR_IO);
    assert_int_equal(fp_plot_roc(path, NULL, vs, 0), FP_ERR_INVALID_ARG);
    if (!getenv("FP_KEEP_PLOTS")) rmdir(dir);

    fp_verify_report_free(&r1);
    fp_verify_report_free(&r2);
    fp_ident_report_free(&ir);
    fp_pad_report_free(&pr);
    free(g);
    free(g2);
    free(im);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_and_sort),
        cmocka_unit_test(test_far_frr_at_threshold),
        cmocka_unit_test(test_eer),
        cmocka_unit_test(test_auc),
        cmocka_unit_test(test_tar_at_far),
        cmocka_unit_test(test_rule_of_three),
        cmocka_unit_test(test_fta),
        cmocka_unit_test(test_kfold),
        cmocka_unit_test(test_calibration_gaussian),
        cmocka_unit_test(test_identify),
        cmocka_unit_test(test_pad),
        cmocka_unit_test(test_plots),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    fp_plot_shutdown(); /* fontconfig's caches, for the leak check of the ASan build */
    return failed;
}
