/*
 * test_golden.c - does our runtime compute what the reference computes? Feeds the golden input
 * tensors of ../shared/reference (golden/ for the TF.js graphs, golden-tflite/ for the .tflite files
 * run by the official TFLite runtime) through the public model API and compares every output with the
 * reference rule maxAbsDiff <= 1e-5 + 1e-4 * max|ref|, at 1 and 2 threads and inside a larger batch.
 * Skips cleanly when ../shared or the model cache is absent.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facepay.h"
#include "util/testutil.h"

#define RTOL 1e-4
#define ATOL 1e-5

static const char *const images[] = {"trump1", "trump2", "sample1"};

/* Index of the output whose name (without a ":0" suffix) equals `name`, or -1. */
static int output_index(const fp_model *m, const char *name) {
    fp_model_info info;
    fp_model_get_info(m, &info);
    size_t n = strlen(name);
    if (n > 2 && !strcmp(name + n - 2, ":0")) n -= 2;
    for (int i = 0; i < info.n_outputs; i++) {
        const char *on;
        fp_model_output(m, i, &on, NULL);
        size_t l = strlen(on);
        if (l > 2 && !strcmp(on + l - 2, ":0")) l -= 2;
        if (l == n && !strncmp(on, name, n)) return i;
    }
    return -1;
}

static fp_model *load_model(const char *file) {
    const char *path = tu_model_path(file);
    TU_REQUIRE(path, file);
    fp_model *m = NULL;
    fp_status st = fp_model_load(path, &m);
    if (st) fprintf(stderr, "%s: %s\n", file, fp_last_error());
    assert_int_equal(st, FP_OK);
    return m;
}

/* Runs `m` on the golden input at `dir/<in>` (batch = rows in the file / per-item size) and compares
 * the outputs named in `names` with `dir/<stem>.output<k>.f32`. */
static void check_case(fp_model *m, const char *dir, const char *stem, const char *const *names,
                       int n_out, int threads) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s.input.f32", dir, stem);
    size_t n_in;
    float *in = tu_read_f32(p, &n_in);
    assert_non_null(in);
    fp_shape decl;
    assert_int_equal(fp_model_input(m, 0, NULL, &decl), FP_OK);
    int64_t per = 1;
    for (int d = 1; d < decl.ndim; d++) per *= decl.dims[d];
    assert_true(per > 0 && n_in % (size_t)per == 0);
    int batch = (int)(n_in / (size_t)per);
    fp_runner *r;
    assert_int_equal(fp_runner_new(m, batch, threads, &r), FP_OK);
    fp_shape s;
    float *buf = fp_runner_input(r, 0, &s);
    assert_int_equal(fp_shape_count(&s), (int64_t)n_in);
    memcpy(buf, in, n_in * sizeof(float));
    assert_int_equal(fp_runner_run(r), FP_OK);
    for (int k = 0; k < n_out; k++) {
        int oi = output_index(m, names[k]);
        if (oi < 0) fprintf(stderr, "%s: no output named %s\n", stem, names[k]);
        assert_true(oi >= 0);
        snprintf(p, sizeof p, "%s/%s.output%d.f32", dir, stem, k);
        size_t n_ref;
        float *ref = tu_read_f32(p, &n_ref);
        assert_non_null(ref);
        const float *got = fp_runner_output(r, oi, &s);
        assert_int_equal(fp_shape_count(&s), (int64_t)n_ref);
        double diff;
        int ok = tu_within_tol(got, ref, n_ref, RTOL, ATOL, &diff);
        fprintf(stderr, "  %-44s %-24s threads %d: max|diff| %.3g (max|ref| %.3g) %s\n", dir + (strlen(dir) > 40 ? strlen(dir) - 40 : 0),
                names[k], threads, diff, tu_max_abs(ref, n_ref), ok ? "ok" : "FAIL");
        assert_true(ok);
        free(ref);
    }
    fp_runner_free(r);
    free(in);
}

static void golden_tfjs(const char *file, const char *stem, const char *const *names, int n_out) {
    TU_REQUIRE(tu_shared_path("reference/golden/trump1/manifest.json"), "../shared/reference");
    fp_model *m = load_model(file);
    for (size_t i = 0; i < sizeof images / sizeof images[0]; i++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", tu_shared_path("reference/golden"), images[i]);
        for (int th = 1; th <= 2; th++) check_case(m, dir, stem, names, n_out, th);
    }
    fp_model_free(m);
}

static void test_detector_tfjs(void **state) {
    (void)state;
    static const char *const out[] = {"Identity"};
    golden_tfjs("facemesh-detection-short.json", "detector", out, 1);
}

static void test_facemesh_tfjs(void **state) {
    (void)state;
    static const char *const out[] = {"Identity_2", "Identity_1", "Identity"};
    golden_tfjs("facemesh.json", "facemesh", out, 3);
}

static void test_iris_tfjs(void **state) {
    (void)state;
    static const char *const out[] = {"Identity"};
    golden_tfjs("iris.json", "iris_eyeA", out, 1);
    golden_tfjs("iris.json", "iris_eyeB", out, 1);
}

static void test_faceres_tfjs(void **state) {
    (void)state;
    static const char *const out[] = {"gender_pred/Sigmoid", "age_pred/Softmax", "global_pooling/Mean"};
    golden_tfjs("faceres.json", "faceres", out, 3);
}

static void test_antispoof_tfjs(void **state) {
    (void)state;
    static const char *const out[] = {"Identity"};
    golden_tfjs("antispoof.json", "antispoof", out, 1);
}

static void test_liveness_tfjs(void **state) {
    (void)state;
    static const char *const out[] = {"Identity"};
    golden_tfjs("liveness.json", "liveness", out, 1);
}

static void golden_tflite(const char *file, const char *sub, const char *const *cases, int n_cases,
                          const char *const *names, int n_out) {
    char rel[256];
    snprintf(rel, sizeof rel, "reference/golden-tflite/%s", sub);
    TU_REQUIRE(tu_shared_path(rel), "../shared/reference/golden-tflite");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_shared_path(rel));
    fp_model *m = load_model(file);
    for (int i = 0; i < n_cases; i++)
        for (int th = 1; th <= 2; th++) check_case(m, dir, cases[i], names, n_out, th);
    fp_model_free(m);
}

static void test_detector_tflite(void **state) {
    (void)state;
    static const char *const cases[] = {"trump1", "trump2", "sample1"};
    static const char *const out[] = {"regressors", "classificators"};
    golden_tflite("face_detection_short_range.tflite", "face_detection_short_range", cases, 3, out, 2);
}

static void test_facemesh_tflite(void **state) {
    (void)state;
    static const char *const cases[] = {"trump1", "trump2", "sample1"};
    static const char *const out[] = {"conv2d_21", "conv2d_31"};
    golden_tflite("face_landmark.tflite", "face_landmark", cases, 3, out, 2);
}

static void test_mobilefacenet_tflite(void **state) {
    (void)state;
    static const char *const cases[] = {"trump1_trump2", "sample1_trump1"};
    static const char *const out[] = {"embeddings"};
    golden_tflite("MobileFaceNet.tflite", "MobileFaceNet", cases, 2, out, 1);
}

/* MobileFaceNet.tflite against the TF.js-graph golden embedding (L2-normalised in that graph):
 * same weights, so after normalisation the cosine must be >= 0.99999 (reference README). */
static void test_mobilefacenet_vs_tfjs_golden(void **state) {
    (void)state;
    TU_REQUIRE(tu_shared_path("reference/golden/trump1/manifest.json"), "../shared/reference");
    fp_model *m = load_model("MobileFaceNet.tflite");
    for (size_t i = 0; i < sizeof images / sizeof images[0]; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s/mobilefacenet_fixed.input.f32", tu_shared_path("reference/golden"), images[i]);
        size_t n;
        float *in = tu_read_f32(p, &n);
        snprintf(p, sizeof p, "%s/%s/mobilefacenet_fixed.output0.f32", tu_shared_path("reference/golden"), images[i]);
        size_t nr;
        float *ref = tu_read_f32(p, &nr);
        assert_non_null(in);
        assert_non_null(ref);
        assert_int_equal(nr, 192);
        fp_runner *r;
        assert_int_equal(fp_runner_new(m, 1, 1, &r), FP_OK);
        memcpy(fp_runner_input(r, 0, NULL), in, n * sizeof(float));
        assert_int_equal(fp_runner_run(r), FP_OK);
        const float *e = fp_runner_output(r, 0, NULL);
        double cos = tu_cosine(e, ref, 192);
        fprintf(stderr, "  MobileFaceNet.tflite vs mobilefacenet-fixed golden (%s): cosine %.8f\n", images[i], cos);
        assert_true(cos >= 0.99999);
        fp_runner_free(r);
        free(in);
        free(ref);
    }
    fp_model_free(m);
}

/* Batch 20 must give, row by row, what batch 1 gives (the embedder runs 20 aligned faces per call). */
static void test_mobilefacenet_batch20(void **state) {
    (void)state;
    TU_REQUIRE(tu_shared_path("reference/golden/trump1/manifest.json"), "../shared/reference");
    fp_model *m = load_model("MobileFaceNet.tflite");
    float *items[3];
    for (int i = 0; i < 3; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s/mobilefacenet_fixed.input.f32", tu_shared_path("reference/golden"), images[i]);
        size_t n;
        items[i] = tu_read_f32(p, &n);
        assert_non_null(items[i]);
        assert_int_equal(n, 112 * 112 * 3);
    }
    const size_t per = 112 * 112 * 3;
    fp_runner *one, *twenty;
    assert_int_equal(fp_runner_new(m, 1, 1, &one), FP_OK);
    assert_int_equal(fp_runner_new(m, 20, 2, &twenty), FP_OK);
    float *bin = fp_runner_input(twenty, 0, NULL);
    for (int b = 0; b < 20; b++) {
        /* vary the items so a row mix-up would show */
        for (size_t k = 0; k < per; k++) bin[b * per + k] = items[b % 3][k] * (1.0f - 0.01f * (float)(b / 3));
    }
    assert_int_equal(fp_runner_run(twenty), FP_OK);
    fp_shape s;
    const float *eb = fp_runner_output(twenty, 0, &s);
    assert_int_equal(s.dims[0], 20);
    for (int b = 0; b < 20; b++) {
        memcpy(fp_runner_input(one, 0, NULL), bin + b * per, per * sizeof(float));
        assert_int_equal(fp_runner_run(one), FP_OK);
        const float *e1 = fp_runner_output(one, 0, NULL);
        double diff;
        assert_true(tu_within_tol(eb + b * 192, e1, 192, RTOL, ATOL, &diff));
    }
    fp_runner_free(one);
    fp_runner_free(twenty);
    for (int i = 0; i < 3; i++) free(items[i]);
    fp_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detector_tflite),
        cmocka_unit_test(test_facemesh_tflite),
        cmocka_unit_test(test_mobilefacenet_tflite),
        cmocka_unit_test(test_mobilefacenet_vs_tfjs_golden),
        cmocka_unit_test(test_mobilefacenet_batch20),
        cmocka_unit_test(test_detector_tfjs),
        cmocka_unit_test(test_facemesh_tfjs),
        cmocka_unit_test(test_iris_tfjs),
        cmocka_unit_test(test_faceres_tfjs),
        cmocka_unit_test(test_antispoof_tfjs),
        cmocka_unit_test(test_liveness_tfjs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
