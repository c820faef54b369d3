/*
 * model.c - the PAD model file and scoring with it. The file is self-describing so that a model can
 * never be applied to features it was not trained on:
 *
 *   offset  size       field
 *   0       8          magic "FPPADMDL"
 *   8       4          version (1)
 *   12      4 x 9      recipe, dim, learner, hidden, n_weights, seed, folds, n_bona_fide, n_attack
 *   48      4 x 4      threshold, target_bpcer, cv_eer, cv_apcer (float32)
 *   64      4 x dim    feature means          (float32)
 *           4 x dim    1 / standard deviations (float32)
 *           4 x n_w    weights (float32, layout of pad_classifier)
 *   end-4   4          CRC-32 (IEEE) of every byte before it
 *
 * All integers little-endian. Loading checks, in this order, the length, magic, version, checksum,
 * that the recipe is one this build computes with exactly `dim` features, the learner and weight
 * count, and that every float is finite: any failure is FP_ERR_FORMAT naming the reason.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "pad/pad.h"

#define PAD_MAGIC "FPPADMDL"
#define PAD_VERSION 1u
#define PAD_HEADER 64
#define PAD_MAX_FILE (64u << 20)

static uint32_t crc32_ieee(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_f32(uint8_t *p, float f) {
    uint32_t v;
    memcpy(&v, &f, 4);
    put_u32(p, v);
}

static float get_f32(const uint8_t *p) {
    const uint32_t v = get_u32(p);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

void fp_pad_model_free(fp_pad_model *m) {
    if (!m) return;
    pad_classifier_free(&m->clf);
    free(m);
}

static size_t file_size(int dim, int n_w) { return PAD_HEADER + 4 * ((size_t)2 * dim + (size_t)n_w) + 4; }

fp_status fp_pad_model_save(const fp_pad_model *m, const char *path) {
    if (!m || !path) return fp_fail(FP_ERR_INVALID_ARG, "fp_pad_model_save: NULL argument");
    const int dim = m->clf.dim, nw = m->clf.n_w;
    const size_t len = file_size(dim, nw);
    uint8_t *b = calloc(1, len);
    if (!b) return fp_fail(FP_ERR_NOMEM, "%s: out of memory", path);
    memcpy(b, PAD_MAGIC, 8);
    const uint32_t hdr[10] = {PAD_VERSION,           m->recipe, (uint32_t)dim,  (uint32_t)m->clf.learner,
                              (uint32_t)m->clf.hidden, (uint32_t)nw, m->seed,       m->folds,
                              m->n_bona_fide,        m->n_attack};
    for (int i = 0; i < 10; i++) put_u32(b + 8 + 4 * i, hdr[i]);
    put_f32(b + 48, m->threshold);
    put_f32(b + 52, m->target_bpcer);
    put_f32(b + 56, m->cv_eer);
    put_f32(b + 60, m->cv_apcer_at_target);
    uint8_t *p = b + PAD_HEADER;
    for (int i = 0; i < dim; i++, p += 4) put_f32(p, m->clf.mean[i]);
    for (int i = 0; i < dim; i++, p += 4) put_f32(p, m->clf.inv_std[i]);
    for (int i = 0; i < nw; i++, p += 4) put_f32(p, m->clf.w[i]);
    put_u32(p, crc32_ieee(b, len - 4));
    /* write a sibling file and rename it over the target, so a crash never leaves half a model */
    char *tmp = malloc(strlen(path) + 8);
    if (!tmp) {
        free(b);
        return fp_fail(FP_ERR_NOMEM, "%s: out of memory", path);
    }
    sprintf(tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    fp_status st = FP_OK;
    if (!f) st = fp_fail(FP_ERR_IO, "%s: cannot create", tmp);
    else {
        const int ok = fwrite(b, 1, len, f) == len;
        if (fclose(f) != 0 || !ok) st = fp_fail(FP_ERR_IO, "%s: write failed", tmp);
        else if (rename(tmp, path) != 0) st = fp_fail(FP_ERR_IO, "%s: cannot rename to %s", tmp, path);
        if (st != FP_OK) remove(tmp);
    }
    free(tmp);
    free(b);
    return st;
}

fp_status fp_pad_model_load(const char *path, fp_pad_model **out) {
    if (!path || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_pad_model_load: NULL argument");
    *out = NULL;
    uint8_t *b = NULL;
    size_t len = 0;
    fp_status st = fp_read_file(path, PAD_MAX_FILE, &b, &len);
    if (st != FP_OK) return st;
    fp_pad_model *m = NULL;
#define BAD(...)                                                                                   \
    do {                                                                                           \
        st = fp_fail(FP_ERR_FORMAT, __VA_ARGS__);                                                  \
        goto done;                                                                                 \
    } while (0)
    if (len < 8 || memcmp(b, PAD_MAGIC, 8) != 0) BAD("%s: not a facepay PAD model (bad magic)", path);
    if (len < PAD_HEADER + 4) BAD("%s: truncated PAD model (%zu bytes, header needs %d)", path, len, PAD_HEADER + 4);
    const uint32_t version = get_u32(b + 8);
    if (version != PAD_VERSION) BAD("%s: PAD model version %u, this build reads version %u", path, version, PAD_VERSION);
    const uint32_t recipe = get_u32(b + 12), dim = get_u32(b + 16), learner = get_u32(b + 20),
                   hidden = get_u32(b + 24), nw = get_u32(b + 28);
    if (dim > (1u << 20) || nw > (1u << 26) || file_size((int)dim, (int)nw) != len)
        BAD("%s: PAD model is %zu bytes, its header announces %u features and %u weights (truncated or "
            "corrupt)", path, len, dim, nw);
    if (get_u32(b + len - 4) != crc32_ieee(b, len - 4)) BAD("%s: PAD model checksum mismatch (corrupt file)", path);
    if (pad_feature_dim(recipe) == 0 || (uint32_t)pad_feature_dim(recipe) != dim)
        BAD("%s: PAD model feature recipe 0x%x with %u features is not one this build computes", path,
            (unsigned)recipe, dim);
    if (learner > FP_PAD_MLP || hidden > 4096 || (learner != FP_PAD_MLP && hidden != 0) ||
        pad_weight_count((int)learner, (int)dim, (int)hidden) != (int)nw)
        BAD("%s: PAD model learner %u / %u hidden units does not match %u weights", path, learner, hidden, nw);
    if (!(m = calloc(1, sizeof *m))) {
        st = fp_fail(FP_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    m->recipe = recipe;
    m->seed = get_u32(b + 32);
    m->folds = get_u32(b + 36);
    m->n_bona_fide = get_u32(b + 40);
    m->n_attack = get_u32(b + 44);
    m->threshold = get_f32(b + 48);
    m->target_bpcer = get_f32(b + 52);
    m->cv_eer = get_f32(b + 56);
    m->cv_apcer_at_target = get_f32(b + 60);
    if (!(m->threshold >= 0 && m->threshold <= 1)) BAD("%s: PAD model threshold %g outside 0..1", path, m->threshold);
    m->clf.learner = (int)learner;
    m->clf.dim = (int)dim;
    m->clf.hidden = (int)hidden;
    m->clf.n_w = (int)nw;
    m->clf.mean = malloc(4 * (size_t)dim);
    m->clf.inv_std = malloc(4 * (size_t)dim);
    m->clf.w = malloc(4 * (size_t)nw);
    if (!m->clf.mean || !m->clf.inv_std || !m->clf.w) {
        st = fp_fail(FP_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    const uint8_t *p = b + PAD_HEADER;
    for (uint32_t i = 0; i < dim; i++, p += 4) m->clf.mean[i] = get_f32(p);
    for (uint32_t i = 0; i < dim; i++, p += 4) m->clf.inv_std[i] = get_f32(p);
    for (uint32_t i = 0; i < nw; i++, p += 4) m->clf.w[i] = get_f32(p);
    for (uint32_t i = 0; i < dim; i++)
        if (!isfinite(m->clf.mean[i]) || !isfinite(m->clf.inv_std[i])) BAD("%s: PAD model normalisation %u is not finite", path, i);
    for (uint32_t i = 0; i < nw; i++)
        if (!isfinite(m->clf.w[i])) BAD("%s: PAD model weight %u is not finite", path, i);
#undef BAD
done:
    free(b);
    if (st != FP_OK) fp_pad_model_free(m);
    else *out = m;
    return st;
}

float fp_pad_model_threshold(const fp_pad_model *m) { return m ? m->threshold : NAN; }

fp_status fp_pad_model_get_info(const fp_pad_model *m, fp_pad_model_info *out) {
    if (!m || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_pad_model_get_info: NULL argument");
    memset(out, 0, sizeof *out);
    out->recipe = m->recipe;
    out->dim = m->clf.dim;
    out->learner = m->clf.learner;
    out->hidden = m->clf.hidden;
    out->threshold = m->threshold;
    out->target_bpcer = m->target_bpcer;
    out->seed = (int)m->seed;
    out->folds = (int)m->folds;
    out->n_bona_fide = m->n_bona_fide;
    out->n_attack = m->n_attack;
    out->cv_eer = m->cv_eer;
    out->cv_apcer = m->cv_apcer_at_target;
    return FP_OK;
}

fp_status fp_pad_score_features(const fp_pad_model *m, const float *features, int dim, float *score) {
    if (!m || !features || !score) return fp_fail(FP_ERR_INVALID_ARG, "fp_pad_score_features: NULL argument");
    if (dim != m->clf.dim)
        return fp_fail(FP_ERR_SHAPE, "fp_pad_score_features: %d features, the model takes %d", dim, m->clf.dim);
    for (int i = 0; i < dim; i++)
        if (!isfinite(features[i])) return fp_fail(FP_ERR_INVALID_ARG, "fp_pad_score_features: feature %d not finite", i);
    *score = pad_predict(&m->clf, features);
    return FP_OK;
}

fp_status fp_pad_score(const fp_pad_model *m, const fp_image *img, const fp_face *face, float *score) {
    if (!m || !score) return fp_fail(FP_ERR_INVALID_ARG, "fp_pad_score: NULL argument");
    *score = NAN;
    float *x = malloc(sizeof(float) * (size_t)m->clf.dim);
    if (!x) return fp_fail(FP_ERR_NOMEM, "fp_pad_score: out of memory");
    fp_status st = fp_pad_features(m->recipe, img, face, x);
    if (st == FP_OK) *score = pad_predict(&m->clf, x);
    free(x);
    return st;
}
