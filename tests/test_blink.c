/*
 * test_blink.c - blink detection on synthetic eye-aspect-ratio series with known blinks, at several
 * frame rates, with noise and dropped frames, and on still-photo series that must show none.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "facepay.h"
#include "util/testutil.h"

static unsigned rng = 12345;
static float noise(float amp) {
    rng = rng * 1103515245u + 12345u;
    return amp * (((rng >> 8) & 0xffff) / 32768.0f - 1.0f);
}

/* EAR of an open eye `open`, with blinks (closed for `dur` ms, ramping) starting at times[] */
static int make_series(double fps, double seconds, float open, const double *times, int nb, double dur,
                       float amp, double *t, float *ear) {
    int n = (int)(fps * seconds);
    for (int i = 0; i < n; i++) {
        t[i] = i * 1000.0 / fps;
        float e = open;
        for (int b = 0; b < nb; b++) {
            double dt = t[i] - times[b];
            if (dt >= 0 && dt < dur) e = open * 0.25f; /* closed */
            else if (dt >= -40 && dt < 0) e = open * 0.6f;
            else if (dt >= dur && dt < dur + 40) e = open * 0.6f;
        }
        ear[i] = e + noise(amp);
    }
    return n;
}

static void test_known_blinks_at_frame_rates(void **state) {
    (void)state;
    static const double fps[] = {10, 15, 24, 30, 60};
    static const double times[] = {800, 2100, 3500};
    double t[1000];
    float e[1000];
    for (size_t k = 0; k < sizeof fps / sizeof fps[0]; k++) {
        for (int open = 0; open < 2; open++) {
            float o = open ? 0.36f : 0.22f; /* people differ */
            int n = make_series(fps[k], 5.0, o, times, 3, 150, 0.01f, t, e);
            fp_blink_result r;
            assert_int_equal(fp_detect_blinks(t, e, n, NULL, &r), FP_OK);
            if (r.blinks != 3) fprintf(stderr, "fps %.0f open %.2f: %d blinks\n", fps[k], o, r.blinks);
            assert_int_equal(r.blinks, 3);
            for (int b = 0; b < 3; b++) assert_true(fabs(r.t_ms[b] - times[b]) < 1000.0 / fps[k] + 60);
        }
    }
}

static void test_still_photo_has_no_blinks(void **state) {
    (void)state;
    double t[600];
    float e[600];
    /* a photo shown for 10 s: the EAR only jitters with landmark noise */
    for (int amp = 0; amp < 3; amp++) {
        int n = make_series(30, 10, 0.28f, NULL, 0, 0, 0.01f * amp, t, e);
        fp_blink_result r;
        assert_int_equal(fp_detect_blinks(t, e, n, NULL, &r), FP_OK);
        assert_int_equal(r.blinks, 0);
    }
    /* a photo with closed eyes: nothing to compare with */
    int n = make_series(30, 5, 0.07f, NULL, 0, 0, 0.005f, t, e);
    fp_blink_result r;
    assert_int_equal(fp_detect_blinks(t, e, n, NULL, &r), FP_OK);
    assert_int_equal(r.blinks, 0);
}

static void test_dropped_frames_and_gaps(void **state) {
    (void)state;
    static const double times[] = {1000, 2500};
    double t[400];
    float e[400];
    int n = make_series(30, 4, 0.3f, times, 2, 150, 0.01f, t, e);
    /* drop random single frames (face lost): still two blinks */
    for (int i = 5; i < n; i += 7) e[i] = NAN;
    fp_blink_result r;
    assert_int_equal(fp_detect_blinks(t, e, n, NULL, &r), FP_OK);
    assert_int_equal(r.blinks, 2);
    /* lose the face for 600 ms across the first blink: it cannot be counted */
    n = make_series(30, 4, 0.3f, times, 2, 150, 0.01f, t, e);
    for (int i = 0; i < n; i++)
        if (t[i] > 800 && t[i] < 1400) e[i] = NAN;
    assert_int_equal(fp_detect_blinks(t, e, n, NULL, &r), FP_OK);
    assert_int_equal(r.blinks, 1);
}

static void test_long_closure_is_not_a_blink(void **state) {
    (void)state;
    static const double times[] = {1000};
    double t[400];
    float e[400];
    int n = make_series(30, 4, 0.3f, times, 1, 1500, 0.0f, t, e);
    fp_blink_result r;
    assert_int_equal(fp_detect_blinks(t, e, n, NULL, &r), FP_OK);
    assert_int_equal(r.blinks, 0);
    assert_int_equal(r.long_closures, 1);
}

static void test_bad_input(void **state) {
    (void)state;
    double t[3] = {0, 10, 5};
    float e[3] = {0.3f, 0.3f, 0.3f};
    fp_blink_result r;
    assert_int_equal(fp_detect_blinks(t, e, 3, NULL, &r), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_detect_blinks(NULL, e, 3, NULL, &r), FP_ERR_INVALID_ARG);
    fp_blink_params p = fp_blink_params_default();
    p.close_ratio = 0.9f;
    t[2] = 20;
    assert_int_equal(fp_detect_blinks(t, e, 3, &p, &r), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_detect_blinks(t, e, 0, NULL, &r), FP_OK);
    assert_int_equal(r.blinks, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_blinks_at_frame_rates),
        cmocka_unit_test(test_still_photo_has_no_blinks),
        cmocka_unit_test(test_dropped_frames_and_gaps),
        cmocka_unit_test(test_long_closure_is_not_a_blink),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
