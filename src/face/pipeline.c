/*
 * pipeline.c - the face analysis pipeline: engine (models), session (runners), and fp_analyze:
 * letterbox -> BlazeFace -> rotated ROI -> face mesh -> iris (both eyes in one batch) -> rigid head
 * pose -> 5 points -> ArcFace similarity warp -> MobileFaceNet (optionally flip-averaged) ->
 * faceres / passive liveness models -> quality and liveness cues.
 * Conventions follow ../shared/reference/README.md "Pipeline conventions" step by step; where we
 * depart from the reference (candidate choice, flip averaging, detector fallback) it is said below.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"
#include "face/face.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---------------------------------------------------------------------------------------------- */
/* Engine                                                                                          */
/* ---------------------------------------------------------------------------------------------- */
static const struct {
    const char *file;
    const char *outputs[3]; /* output names in the order the pipeline reads them */
} model_files[FP_M_COUNT] = {
    [FP_M_DET_SHORT] = {"face_detection_short_range.tflite", {"regressors", "classificators"}},
    /* the TF.js graph equals face_detection_full_range_sparse.tflite; the dense .tflite is another net */
    [FP_M_DET_FULL] = {"facemesh-detection-full.json", {"Identity"}},
    [FP_M_MESH] = {"face_landmark.tflite", {"conv2d_21", "conv2d_31"}},
    [FP_M_IRIS] = {"iris.json", {"Identity"}},
    [FP_M_EMBED] = {"MobileFaceNet.tflite", {"embeddings"}},
    [FP_M_FACERES] = {"faceres.json", {"gender_pred/Sigmoid", "age_pred/Softmax", "global_pooling/Mean"}},
    [FP_M_ANTISPOOF] = {"antispoof.json", {"Identity"}},
    [FP_M_LIVENESS] = {"liveness.json", {"Identity"}},
};

fp_engine_options fp_engine_options_default(void) {
    fp_engine_options o = {NULL, 1, 1, 1, 1, NULL};
    const char *pad = getenv("FACEPAY_PAD_MODEL");
    if (pad && *pad) o.pad_model = pad;
    return o;
}

static int find_output(const fp_model *m, const char *name) {
    fp_model_info info;
    fp_model_get_info(m, &info);
    size_t n = strlen(name);
    for (int i = 0; i < info.n_outputs; i++) {
        const char *on;
        fp_model_output(m, i, &on, NULL);
        size_t l = strlen(on);
        if (l > 2 && !strcmp(on + l - 2, ":0")) l -= 2;
        if (l == n && !strncmp(on, name, n)) return i;
    }
    return -1;
}

void fp_engine_free(fp_engine *e) {
    if (!e) return;
    for (int i = 0; i < FP_M_COUNT; i++) fp_model_free(e->models[i]);
    fp_pad_model_free(e->pad);
    fp_canonical_free(&e->canonical);
    free(e);
}

fp_status fp_engine_new(const fp_engine_options *opts, fp_engine **out) {
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "fp_engine_new: NULL out");
    *out = NULL;
    fp_engine *e = calloc(1, sizeof *e);
    if (!e) return fp_fail(FP_ERR_NOMEM, "out of memory");
    e->opts = opts ? *opts : fp_engine_options_default();
    if (e->opts.threads < 1) e->opts.threads = 1;
    const char *dir = e->opts.model_dir ? e->opts.model_dir : fp_model_dir();
    fp_status st = FP_OK;
    for (int i = 0; i < FP_M_COUNT && !st; i++) {
        if (i == FP_M_DET_FULL && !e->opts.full_range) continue;
        if (i == FP_M_FACERES && !e->opts.attributes) continue;
        if ((i == FP_M_ANTISPOOF || i == FP_M_LIVENESS) && !e->opts.passive_liveness) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, model_files[i].file);
        if ((st = fp_model_load(path, &e->models[i]))) break;
        for (int k = 0; k < 3 && model_files[i].outputs[k]; k++) {
            e->out_index[i][k] = find_output(e->models[i], model_files[i].outputs[k]);
            if (e->out_index[i][k] < 0)
                st = fp_fail(FP_ERR_FORMAT, "%s: no output named %s", path, model_files[i].outputs[k]);
        }
    }
    if (!st && e->opts.pad_model) st = fp_pad_model_load(e->opts.pad_model, &e->pad);
    if (!st) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, FP_CANONICAL_FILE);
        st = fp_canonical_load_file(path, &e->canonical);
    }
    static const int short_strides[] = {8, 16, 16, 16}, full_strides[] = {4};
    if (!st && (fp_anchors_build(short_strides, 4, 1.0, 128, e->short_anchors, FP_DET_SHORT_ANCHORS) != FP_DET_SHORT_ANCHORS ||
                fp_anchors_build(full_strides, 1, 0.0, 192, e->full_anchors, FP_DET_FULL_ANCHORS) != FP_DET_FULL_ANCHORS))
        st = fp_fail(FP_ERR_INTERNAL, "anchor count mismatch");
    if (st) {
        fp_engine_free(e);
        return st;
    }
    *out = e;
    return FP_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Session                                                                                         */
/* ---------------------------------------------------------------------------------------------- */
void fp_session_free(fp_session *s) {
    if (!s) return;
    for (int i = 0; i < FP_M_COUNT; i++) fp_runner_free(s->runners[i]);
    for (int i = 0; i <= FP_EMBED_CHUNK; i++) fp_runner_free(s->embed[i]);
    free(s->dets);
    free(s->aligned);
    free(s->luma);
    free(s);
}

fp_status fp_session_new(fp_engine *e, fp_session **out) {
    if (!e || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_session_new: NULL argument");
    *out = NULL;
    fp_session *s = calloc(1, sizeof *s);
    if (!s) return fp_fail(FP_ERR_NOMEM, "out of memory");
    s->engine = e;
    fp_status st = FP_OK;
    s->dets = malloc(sizeof *s->dets * (FP_DET_FULL_ANCHORS + FP_DET_SHORT_ANCHORS));
    s->aligned = malloc(112 * 112 * 3 * sizeof(float));
    s->luma = malloc(112 * 112 * sizeof(float));
    if (!s->dets || !s->aligned || !s->luma) st = fp_fail(FP_ERR_NOMEM, "out of memory");
    for (int i = 0; i < FP_M_COUNT && !st; i++) {
        if (!e->models[i] || i == FP_M_EMBED) continue;
        st = fp_runner_new(e->models[i], i == FP_M_IRIS ? 2 : 1, e->opts.threads, &s->runners[i]);
    }
    if (st) {
        fp_session_free(s);
        return st;
    }
    *out = s;
    return FP_OK;
}

static fp_status embed_runner(fp_session *s, int batch, fp_runner **r) {
    if (batch < 1 || batch > FP_EMBED_CHUNK) return fp_fail(FP_ERR_TOO_LARGE, "embedding batch %d exceeds %d", batch, FP_EMBED_CHUNK);
    if (!s->embed[batch]) {
        fp_status st = fp_runner_new(s->engine->models[FP_M_EMBED], batch, s->engine->opts.threads, &s->embed[batch]);
        if (st) return st;
    }
    *r = s->embed[batch];
    return FP_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Detection                                                                                       */
/* ---------------------------------------------------------------------------------------------- */
/* Runs one detector; appends detections (source pixels) to s->dets starting at *n. */
static fp_status run_detector(fp_session *s, const fp_image *img, int full, double min_score, double iou,
                              int *n) {
    fp_engine *e = s->engine;
    int mi = full ? FP_M_DET_FULL : FP_M_DET_SHORT;
    int size = full ? 192 : 128;
    fp_runner *r = s->runners[mi];
    if (!r) return fp_fail(FP_ERR_INVALID_ARG, "the full-range detector is not loaded (engine option full_range)");
    fp_letterbox lb;
    fp_norm norm = fp_norm_uniform(1.0 / 127.5, -1.0);
    fp_status st = fp_letterbox_crop(img, size, &norm, fp_runner_input(r, 0, NULL), &lb);
    if (st || (st = fp_runner_run(r))) return st;
    fp_detection *d = s->dets + *n;
    int cap = FP_DET_FULL_ANCHORS + FP_DET_SHORT_ANCHORS - *n, m;
    if (full) {
        const float *raw = fp_runner_output(r, e->out_index[mi][0], NULL);
        m = fp_decode_detections(raw, 17, raw + 1, 17, e->full_anchors, FP_DET_FULL_ANCHORS, size, min_score, d, cap);
    } else {
        const float *regs = fp_runner_output(r, e->out_index[mi][0], NULL);
        const float *cls = fp_runner_output(r, e->out_index[mi][1], NULL);
        m = fp_decode_detections(cls, 1, regs, 16, e->short_anchors, FP_DET_SHORT_ANCHORS, size, min_score, d, cap);
    }
    m = fp_weighted_nms(d, m, iou);
    for (int i = 0; i < m; i++) {
        fp_letterbox_to_image(&lb, d[i].x0, d[i].y0, &d[i].x0, &d[i].y0);
        fp_letterbox_to_image(&lb, d[i].x1, d[i].y1, &d[i].x1, &d[i].y1);
        for (int k = 0; k < 6; k++) fp_letterbox_to_image(&lb, d[i].kps[k][0], d[i].kps[k][1], &d[i].kps[k][0], &d[i].kps[k][1]);
    }
    *n += m;
    return FP_OK;
}

static void sort_candidates(fp_detection *d, int n, const fp_image *img) {
    /* insertion sort on the priority: n is small and this keeps the comparator reentrant */
    for (int i = 1; i < n; i++) {
        fp_detection t = d[i];
        double pt = fp_candidate_priority(&t, img->width, img->height);
        int j = i - 1;
        while (j >= 0 && fp_candidate_priority(&d[j], img->width, img->height) < pt) {
            d[j + 1] = d[j];
            j--;
        }
        d[j + 1] = t;
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Per-face stages                                                                                 */
/* ---------------------------------------------------------------------------------------------- */
static double norm_rad(double a) { return a - 2 * M_PI * floor((a + M_PI) / (2 * M_PI)); }

/* MediaPipe DetectionsToRects (rotation from the eye keypoints) + RectTransformation (1.5x, square). */
static fp_rect detection_roi(const fp_detection *d) {
    fp_rect r;
    r.angle = norm_rad(0 - atan2(-(d->kps[1][1] - d->kps[0][1]), d->kps[1][0] - d->kps[0][0]));
    double side = fmax(d->x1 - d->x0, d->y1 - d->y0) * 1.5;
    r.cx = (d->x0 + d->x1) / 2;
    r.cy = (d->y0 + d->y1) / 2;
    r.w = r.h = side;
    return r;
}

static fp_rect eye_roi(const float *p0, const float *p1) {
    fp_rect r;
    r.angle = norm_rad(0 - atan2(-((double)p1[1] - p0[1]), (double)p1[0] - p0[0]));
    double side = fmax(fabs((double)p1[0] - p0[0]), fabs((double)p1[1] - p0[1])) * 2.3;
    r.cx = ((double)p0[0] + p1[0]) / 2;
    r.cy = ((double)p0[1] + p1[1]) / 2;
    r.w = r.h = side;
    return r;
}

static fp_status run_mesh(fp_session *s, const fp_image *img, const fp_rect *roi, fp_face *f) {
    fp_engine *e = s->engine;
    fp_runner *r = s->runners[FP_M_MESH];
    fp_norm norm = fp_norm_uniform(1.0 / 255, 0.0);
    fp_status st = fp_crop_rect(img, roi, 192, 192, 0, FP_BORDER_REPLICATE, &norm, fp_runner_input(r, 0, NULL));
    if (st || (st = fp_runner_run(r))) return st;
    const float *mesh = fp_runner_output(r, e->out_index[FP_M_MESH][0], NULL);
    const float *logit = fp_runner_output(r, e->out_index[FP_M_MESH][1], NULL);
    f->presence = (float)(1.0 / (1.0 + exp(-(double)logit[0])));
    for (int i = 0; i < FP_MESH_POINTS; i++) {
        double x, y;
        fp_crop_point_to_image(roi, 192, 192, 0, mesh[3 * i], mesh[3 * i + 1], &x, &y);
        f->mesh[i][0] = (float)x;
        f->mesh[i][1] = (float)y;
        f->mesh[i][2] = (float)(mesh[3 * i + 2] * roi->w / 192);
    }
    f->roi[0] = (float)roi->cx;
    f->roi[1] = (float)roi->cy;
    f->roi[2] = (float)roi->w;
    f->roi[3] = (float)roi->h;
    f->roi[4] = (float)roi->angle;
    return FP_OK;
}

/* Both eyes in one batch of 2: eye A (landmarks 33, 133) as is, eye B (362, 263) mirrored, as the
 * iris model was trained on one eye side. */
static fp_status run_iris(fp_session *s, const fp_image *img, fp_face *f) {
    fp_engine *e = s->engine;
    fp_runner *r = s->runners[FP_M_IRIS];
    static const int corner[2][2] = {{33, 133}, {362, 263}};
    fp_rect roi[2];
    float *in = fp_runner_input(r, 0, NULL);
    fp_norm norm = fp_norm_uniform(1.0 / 255, 0.0);
    for (int eye = 0; eye < 2; eye++) {
        roi[eye] = eye_roi(f->mesh[corner[eye][0]], f->mesh[corner[eye][1]]);
        fp_status st = fp_crop_rect(img, &roi[eye], 64, 64, eye == 1, FP_BORDER_REPLICATE, &norm, in + eye * 64 * 64 * 3);
        if (st) return st;
    }
    fp_status st = fp_runner_run(r);
    if (st) return st;
    const float *o = fp_runner_output(r, e->out_index[FP_M_IRIS][0], NULL);
    for (int eye = 0; eye < 2; eye++) {
        const float *p = o + eye * 228;
        for (int i = 0; i < 76; i++) {
            double x, y;
            fp_crop_point_to_image(&roi[eye], 64, 64, eye == 1, p[3 * i], p[3 * i + 1], &x, &y);
            if (i < 71) {
                f->eye_contour[eye][i][0] = (float)x;
                f->eye_contour[eye][i][1] = (float)y;
            } else {
                f->iris[eye][i - 71][0] = (float)x;
                f->iris[eye][i - 71][1] = (float)y;
            }
        }
    }
    return FP_OK;
}

static const double arcface_112[5][2] = {{38.2946, 51.6963}, {73.5318, 51.5014}, {56.0252, 71.7366},
                                         {41.5493, 92.3655}, {70.7299, 92.2041}};

/* Least-squares similarity (Umeyama, no reflection) src -> ArcFace template, reference align.js. */
static void similarity_to_template(const double src[5][2], double M[6]) {
    double mx = 0, my = 0, nx = 0, ny = 0;
    for (int i = 0; i < 5; i++) {
        mx += src[i][0];
        my += src[i][1];
        nx += arcface_112[i][0];
        ny += arcface_112[i][1];
    }
    mx /= 5;
    my /= 5;
    nx /= 5;
    ny /= 5;
    double sxx = 0, sxy = 0, syx = 0, syy = 0, var = 0;
    for (int i = 0; i < 5; i++) {
        double sx = src[i][0] - mx, sy = src[i][1] - my, dx = arcface_112[i][0] - nx, dy = arcface_112[i][1] - ny;
        sxx += dx * sx;
        sxy += dx * sy;
        syx += dy * sx;
        syy += dy * sy;
        var += sx * sx + sy * sy;
    }
    double a = var > 0 ? (sxx + syy) / var : 1, b = var > 0 ? (syx - sxy) / var : 0;
    M[0] = a;
    M[1] = -b;
    M[2] = nx - (a * mx - b * my);
    M[3] = b;
    M[4] = a;
    M[5] = ny - (b * mx + a * my);
}

/* Five points in ArcFace order: iris centres, nose tip (1), mouth corners (61, 291); swapped when
 * the face is mirrored so point 0 is always the image-left eye. */
static void five_points(fp_face *f, double pts[5][2]) {
    pts[0][0] = f->iris[0][0][0];
    pts[0][1] = f->iris[0][0][1];
    pts[1][0] = f->iris[1][0][0];
    pts[1][1] = f->iris[1][0][1];
    pts[2][0] = f->mesh[1][0];
    pts[2][1] = f->mesh[1][1];
    pts[3][0] = f->mesh[61][0];
    pts[3][1] = f->mesh[61][1];
    pts[4][0] = f->mesh[291][0];
    pts[4][1] = f->mesh[291][1];
    if (pts[0][0] > pts[1][0]) {
        double t[2];
        memcpy(t, pts[0], sizeof t);
        memcpy(pts[0], pts[1], sizeof t);
        memcpy(pts[1], t, sizeof t);
        memcpy(t, pts[3], sizeof t);
        memcpy(pts[3], pts[4], sizeof t);
        memcpy(pts[4], t, sizeof t);
    }
    for (int i = 0; i < 5; i++) {
        f->landmarks5[i][0] = (float)pts[i][0];
        f->landmarks5[i][1] = (float)pts[i][1];
    }
}

static void l2_normalise(float *v, int n) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)v[i] * v[i];
    double inv = ss > 0 ? 1.0 / sqrt(ss) : 0;
    for (int i = 0; i < n; i++) v[i] = (float)(v[i] * inv);
}

static void mirror_112(const float *src, float *dst) {
    for (int y = 0; y < 112; y++)
        for (int x = 0; x < 112; x++)
            memcpy(dst + (y * 112 + x) * 3, src + (y * 112 + (111 - x)) * 3, 3 * sizeof(float));
}

/* Embeds n prepared 112x112x3 inputs (already normalised); with flip each is also embedded mirrored
 * and the two embeddings are summed before normalising (a common trick that makes the template
 * less sensitive to residual yaw). */
static fp_status embed_inputs(fp_session *s, const float *inputs, int n, int flip, float (*emb)[FP_EMBEDDING_DIM]) {
    const size_t per = 112 * 112 * 3;
    int rows = flip ? 2 * n : n;
    float *out = malloc(sizeof(float) * FP_EMBEDDING_DIM * (size_t)rows);
    if (!out) return fp_fail(FP_ERR_NOMEM, "out of memory");
    fp_status st = FP_OK;
    /* in chunks of FP_EMBED_CHUNK rows (face.h says why) */
    for (int r0 = 0; r0 < rows && !st; r0 += FP_EMBED_CHUNK) {
        int nr = rows - r0 < FP_EMBED_CHUNK ? rows - r0 : FP_EMBED_CHUNK;
        fp_runner *r = NULL;
        if ((st = embed_runner(s, nr, &r))) break;
        float *in = fp_runner_input(r, 0, NULL);
        for (int k = 0; k < nr; k++) {
            int row = r0 + k;
            if (row < n) memcpy(in + (size_t)k * per, inputs + (size_t)row * per, per * sizeof(float));
            else mirror_112(inputs + (size_t)(row - n) * per, in + (size_t)k * per);
        }
        if ((st = fp_runner_run(r))) break;
        memcpy(out + (size_t)r0 * FP_EMBEDDING_DIM, fp_runner_output(r, s->engine->out_index[FP_M_EMBED][0], NULL),
               sizeof(float) * FP_EMBEDDING_DIM * (size_t)nr);
    }
    for (int i = 0; i < n && !st; i++) {
        memcpy(emb[i], out + (size_t)i * FP_EMBEDDING_DIM, sizeof emb[i]);
        if (flip) { /* normalise each view first so both weigh the same */
            float b[FP_EMBEDDING_DIM];
            memcpy(b, out + (size_t)(n + i) * FP_EMBEDDING_DIM, sizeof b);
            l2_normalise(emb[i], FP_EMBEDDING_DIM);
            l2_normalise(b, FP_EMBEDDING_DIM);
            for (int k = 0; k < FP_EMBEDDING_DIM; k++) emb[i][k] += b[k];
        }
        l2_normalise(emb[i], FP_EMBEDDING_DIM);
    }
    free(out);
    return st;
}

fp_status fp_embed_aligned(fp_session *s, const fp_image *aligned, int n, int flip,
                           float (*embeddings)[FP_EMBEDDING_DIM]) {
    if (!s || !aligned || !embeddings || n < 1) return fp_fail(FP_ERR_INVALID_ARG, "fp_embed_aligned: bad arguments");
    if (n > FP_MAX_BATCH) return fp_fail(FP_ERR_TOO_LARGE, "fp_embed_aligned: %d faces, at most %d per call", n, FP_MAX_BATCH);
    const size_t per = 112 * 112 * 3;
    float *buf = malloc(per * sizeof(float) * (size_t)n);
    if (!buf) return fp_fail(FP_ERR_NOMEM, "out of memory");
    fp_status st = FP_OK;
    for (int i = 0; i < n && !st; i++) {
        if (aligned[i].width != 112 || aligned[i].height != 112 || !aligned[i].rgb) {
            st = fp_fail(FP_ERR_INVALID_ARG, "fp_embed_aligned: face %d is not a 112x112 RGB image", i);
            break;
        }
        for (size_t k = 0; k < per; k++) buf[i * per + k] = (float)((aligned[i].rgb[k] * (1.0 / 128)) + (-127.5 / 128));
    }
    if (!st) st = embed_inputs(s, buf, n, flip, embeddings);
    free(buf);
    return st;
}

/* faceres, antispoof and liveness read the "human box": detector box centre, 1.4x the long side. */
static fp_rect human_box(const fp_detection *d) {
    fp_rect r;
    double side = fmax(d->x1 - d->x0, d->y1 - d->y0) * 1.4;
    r.cx = (d->x0 + d->x1) / 2;
    r.cy = (d->y0 + d->y1) / 2;
    r.w = r.h = side;
    r.angle = 0;
    return r;
}

static fp_status run_attributes(fp_session *s, const fp_image *img, const fp_rect *hb, fp_face *f) {
    fp_engine *e = s->engine;
    fp_runner *r = s->runners[FP_M_FACERES];
    fp_norm norm = {{1, 1, 1}, {-103.939, -116.779, -123.68}, 1, 0};
    fp_status st = fp_crop_rect(img, hb, 224, 224, 0, FP_BORDER_REPLICATE, &norm, fp_runner_input(r, 0, NULL));
    if (st || (st = fp_runner_run(r))) return st;
    const float *g = fp_runner_output(r, e->out_index[FP_M_FACERES][0], NULL);
    const float *p = fp_runner_output(r, e->out_index[FP_M_FACERES][1], NULL);
    const float *desc = fp_runner_output(r, e->out_index[FP_M_FACERES][2], NULL);
    int am = 0;
    for (int i = 1; i < 100; i++)
        if (p[i] > p[am]) am = i;
    double lo = am > 0 ? p[am - 1] : 0, hi = am < 99 ? p[am + 1] : 0;
    f->age = (float)(round(lo > hi ? 10.0 * am - 100.0 * lo : 10.0 * am + 100.0 * hi) / 10.0);
    f->gender_male = g[0];
    memcpy(f->descriptor, desc, sizeof f->descriptor);
    f->has_descriptor = 1;
    return FP_OK;
}

/* mode: fp_analyze_options.passive_liveness (2: only the models liveness.score reads; else all) */
static fp_status run_passive(fp_session *s, const fp_image *img, const fp_rect *hb, int mode, fp_face *f) {
    fp_engine *e = s->engine;
    fp_norm norm = fp_norm_uniform(1.0 / 255, 0.0);
    fp_runner *a = s->runners[FP_M_ANTISPOOF], *l = s->runners[FP_M_LIVENESS];
    fp_status st = FP_OK;
    if (mode != 2) {
        st = fp_crop_rect(img, hb, 128, 128, 0, FP_BORDER_REPLICATE, &norm, fp_runner_input(a, 0, NULL));
        if (st || (st = fp_runner_run(a))) return st;
        f->liveness.antispoof = fp_runner_output(a, e->out_index[FP_M_ANTISPOOF][0], NULL)[0];
    }
    if (mode != 2 || !e->pad) {
        st = fp_crop_rect(img, hb, 32, 32, 0, FP_BORDER_REPLICATE, &norm, fp_runner_input(l, 0, NULL));
        if (st || (st = fp_runner_run(l))) return st;
        f->liveness.liveness_model = fp_runner_output(l, e->out_index[FP_M_LIVENESS][0], NULL)[0];
    }
    return FP_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* fp_analyze                                                                                      */
/* ---------------------------------------------------------------------------------------------- */
static fp_status analyze_face(fp_session *s, const fp_image *img, const fp_analyze_options *o,
                              const fp_detection *d, fp_face *f, fp_timings *t) {
    memset(f, 0, sizeof *f);
    f->box[0] = (float)d->x0;
    f->box[1] = (float)d->y0;
    f->box[2] = (float)(d->x1 - d->x0);
    f->box[3] = (float)(d->y1 - d->y0);
    f->score = (float)d->score;
    for (int k = 0; k < 6; k++) {
        f->keypoints[k][0] = (float)d->kps[k][0];
        f->keypoints[k][1] = (float)d->kps[k][1];
    }
    f->age = -1;
    f->gender_male = -1;
    f->liveness.antispoof = -1;
    f->liveness.liveness_model = -1;
    f->liveness.trained = -1;
    double t0 = now_ms();
    fp_rect roi = detection_roi(d);
    fp_status st = run_mesh(s, img, &roi, f);
    if (st) return st;
    double t1 = now_ms();
    if ((st = run_iris(s, img, f))) return st;
    double t2 = now_ms();
    float R[9];
    fp_head_pose(f->mesh, &s->engine->canonical, &f->pose, R);
    fp_mesh_to_68(f->mesh, f->landmarks68);
    fp_liveness_geometry(f->mesh, f->iris, f->eye_contour, &f->liveness);
    double t3 = now_ms();
    double pts[5][2], M[6];
    five_points(f, pts);
    similarity_to_template(pts, M);
    for (int k = 0; k < 6; k++) f->align[k] = (float)M[k];
    float *aligned = s->aligned, *luma = s->luma;
    fp_norm mfn = fp_norm_uniform(1.0 / 128, -127.5 / 128);
    st = fp_warp_affine(img, M, 112, 112, &mfn, aligned);
    for (int i = 0; i < 112 * 112 && !st; i++) {
        /* back to 0..255 for the quality measures: luma of the aligned face */
        const float *p = aligned + 3 * i;
        luma[i] = (float)(0.299 * (p[0] * 128 + 127.5) + 0.587 * (p[1] * 128 + 127.5) + 0.114 * (p[2] * 128 + 127.5));
    }
    double t4 = now_ms();
    if (!st && o->embedding) {
        st = embed_inputs(s, aligned, 1, o->flip_embedding, &f->embedding);
        f->has_embedding = !st;
    }
    double t5 = now_ms();
    fp_rect hb = human_box(d);
    if (!st && o->attributes && s->runners[FP_M_FACERES]) st = run_attributes(s, img, &hb, f);
    double t6 = now_ms();
    if (!st && o->passive_liveness && s->runners[FP_M_ANTISPOOF] && s->runners[FP_M_LIVENESS]) st = run_passive(s, img, &hb, o->passive_liveness, f);
    if (!st && s->engine->pad) st = fp_pad_score(s->engine->pad, img, f, &f->liveness.trained);
    fp_liveness_combine(&f->liveness);
    double t7 = now_ms();
    if (!st) fp_quality_measure(img, f, luma, o, &f->quality);
    double t8 = now_ms();
    if (t) {
        t->mesh += t1 - t0;
        t->iris += t2 - t1;
        t->pose_quality += (t3 - t2) + (t8 - t7);
        t->align += t4 - t3;
        t->embed += t5 - t4;
        t->attributes += t6 - t5;
        t->liveness += t7 - t6;
    }
    return st;
}

fp_status fp_analyze(fp_session *s, const fp_image *img, const fp_analyze_options *opts,
                     fp_face *faces, int cap, int *n_faces, fp_timings *timings) {
    if (!s || !img || !img->rgb || img->width < 1 || img->height < 1 || (cap > 0 && !faces) || !n_faces)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_analyze: bad arguments");
    fp_analyze_options o = opts ? *opts : fp_analyze_options_default();
    fp_timings t;
    memset(&t, 0, sizeof t);
    double t0 = now_ms();
    *n_faces = 0;
    int n = 0;
    fp_status st = FP_OK;
    int has_full = s->runners[FP_M_DET_FULL] != NULL;
    float full_score = o.score_threshold > 0.6f ? o.score_threshold : 0.6f;
    if (o.full_range >= 1 && !has_full) return fp_fail(FP_ERR_INVALID_ARG, "full-range detection requested but the engine did not load it");
    int runs = 0;
    if (o.full_range != 1) st = run_detector(s, img, 0, o.score_threshold, o.iou_threshold, &n), runs++;
    if (!st && has_full && (o.full_range >= 1 || (o.full_range == -1 && n == 0)))
        st = run_detector(s, img, 1, full_score, o.iou_threshold, &n), runs++;
    if (!st && o.full_range == 3 && img->width >= 32 && img->height >= 32) {
        /* tiles: 2x2 overlapping crops of 0.6 W x 0.6 H, both detectors, so faces too small for the
         * whole-image letterbox become large enough (group photos, distant customers) */
        int tw = (int)(img->width * 0.6), th = (int)(img->height * 0.6);
        fp_image tile;
        if ((st = fp_image_new(tw, th, &tile))) return st;
        for (int ty = 0; ty < 2 && !st; ty++)
            for (int tx = 0; tx < 2 && !st; tx++) {
                int x0 = tx ? img->width - tw : 0, y0 = ty ? img->height - th : 0;
                for (int y = 0; y < th; y++)
                    memcpy(tile.rgb + (size_t)y * tw * 3, img->rgb + ((size_t)(y0 + y) * img->width + x0) * 3, (size_t)tw * 3);
                for (int full = 0; full < 2 && !st; full++) {
                    int before = n;
                    st = run_detector(s, &tile, full, full ? full_score : o.score_threshold, o.iou_threshold, &n);
                    runs++;
                    for (int i = before; i < n; i++) {
                        fp_detection *d = &s->dets[i];
                        d->x0 += x0, d->x1 += x0, d->y0 += y0, d->y1 += y0;
                        for (int k = 0; k < 6; k++) d->kps[k][0] += x0, d->kps[k][1] += y0;
                    }
                }
            }
        fp_image_release(&tile);
    }
    /* several runs: the same face found twice keeps its best box (hard NMS, no averaging across runs) */
    if (!st && runs > 1) n = fp_hard_nms(s->dets, n, o.iou_threshold);
    if (st) return st;
    sort_candidates(s->dets, n, img);
    t.detect = now_ms() - t0;
    *n_faces = n;
    int todo = n < cap ? n : cap;
    if (o.max_faces >= 0 && todo > o.max_faces) todo = o.max_faces;
    for (int i = 0; i < todo && !st; i++) st = analyze_face(s, img, &o, &s->dets[i], &faces[i], &t);
    t.total = now_ms() - t0;
    if (timings) *timings = t;
    return st;
}

fp_status fp_face_aligned_crop(const fp_image *img, const fp_face *face, fp_image *out) {
    if (!img || !face || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_face_aligned_crop: NULL argument");
    double M[6];
    for (int k = 0; k < 6; k++) M[k] = face->align[k];
    return fp_warp_affine_u8(img, M, 112, 112, out);
}

float fp_cosine(const float *a, const float *b, int dim) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < dim; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa > 0 && bb > 0 ? (float)(ab / sqrt(aa * bb)) : 0.0f;
}
