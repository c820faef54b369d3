/*
 * quality.c - the capture-quality gates of one analysed face (size, exposure, contrast, blur, cut-off,
 * occlusion, pose) and fp_analyze_options_default(). A payment terminal refuses a frame that fails any
 * gate and asks the customer to retry, so each measure is cheap, deterministic and explainable.
 *
 * Defaults (fp_analyze_options_default) against SeetaFace6's QualityAssessor, whose rules use a low
 * and a high threshold per measure (below low = LOW, between = MEDIUM, beyond high = HIGH):
 *
 *   measure          SeetaFace6 rule (low / high)                        facepay gate (fail if ...)
 *   brightness       v0..v3 = 70 / 100 / 210 / 230: HIGH in [100, 210],  brightness < 70 or > 210
 *                    MEDIUM in [70, 100) or (210, 230], else LOW
 *   resolution       80 / 120 px: LOW < 80, HIGH >= 120                  face_px < 80
 *   yaw              25 / 10 deg: LOW >= 25, HIGH < 10                   |yaw| > 25
 *   pitch            20 / 10 deg: LOW >= 20, HIGH < 10                   |pitch| > 20
 *   roll             33.33 / 16.67 deg                                   |roll| > 30
 *   clarity          re-blur ratio 0.1 / 0.2 (not comparable)            Laplacian variance < 30
 *   integrity        box inside the image                                edge_margin < 0.0
 *   (none)                                                               contrast < 20,
 *                                                                        dark or bright fraction > 0.25,
 *                                                                        occlusion > 0.5
 *
 * Luma is 0.2989 R + 0.5870 G + 0.1140 B, the same weights as the pipeline's gray sampler, so the
 * statistics here and on the aligned crop agree.
 */
#include <math.h>
#include <stdlib.h>

#include "core/core.h"
#include "face/geometry.h"
#include "image/image.h"

fp_analyze_options fp_analyze_options_default(void) {
    fp_analyze_options o;
    o.max_faces = 8;
    o.full_range = -1;
    o.score_threshold = 0.5f;
    o.iou_threshold = 0.3f;
    o.embedding = 1;
    o.flip_embedding = 1;
    o.attributes = 1;
    o.passive_liveness = 1;
    o.max_yaw = 25;
    o.max_pitch = 20;
    o.max_roll = 30;
    o.min_face_px = 80;
    o.min_brightness = 70;
    o.max_brightness = 210;
    o.min_contrast = 20;
    o.min_sharpness = 30;
    o.max_exposure_fraction = 0.25f;
    o.min_edge_margin = 0.0f;
    o.max_occlusion = 0.5f;
    return o;
}

#define ALIGNED 112

float fp_laplacian_variance(const float *luma, int w, int h) {
    if (!luma || w < 3 || h < 3) return 0;
    double s = 0, s2 = 0;
    for (int y = 1; y < h - 1; y++) {
        const float *r = luma + (size_t)y * w;
        for (int x = 1; x < w - 1; x++) {
            const double l = (double)r[x - 1] + r[x + 1] + r[x - w] + r[x + w] - 4.0 * r[x];
            s += l;
            s2 += l * l;
        }
    }
    const double n = (double)(w - 2) * (h - 2), m = s / n;
    const double v = s2 / n - m * m;
    return (float)(v > 0 ? v : 0);
}

/* MediaPipe's FACEMESH_FACE_OVAL loop: the face without hair, background or neck, which a box
 * always includes some of (and those, not the face, would then decide brightness and contrast). */
static const uint16_t face_oval[36] = {10,  338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288,
                                       397, 365, 379, 378, 400, 377, 152, 148, 176, 149, 150, 136,
                                       172, 58,  132, 93,  234, 127, 162, 21,  54,  103, 67,  109};

typedef struct luma_stats {
    double sum, sum2;
    long n, dark, bright;
} luma_stats;

static void stats_add(luma_stats *s, const uint8_t *p) {
    const double y = 0.2989 * p[0] + 0.5870 * p[1] + 0.1140 * p[2];
    s->sum += y;
    s->sum2 += y * y;
    s->n++;
    s->dark += y < 16;
    s->bright += y > 240;
}

/* Faces of a few hundred pixels hold ~100k pixels; a grid of ~200 samples across is plenty for means
 * and fractions and keeps the cost flat for 4k frames. */
static int sample_step(double extent) {
    const int s = (int)(extent / 200);
    return s < 1 ? 1 : s;
}

/* Pixel centres (integer coordinates) inside the oval polygon, even-odd rule, one scanline at a time. */
static void stats_polygon(const fp_image *img, const float mesh[FP_MESH_POINTS][3], luma_stats *s) {
    double px[36], py[36], x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY, area = 0;
    for (int i = 0; i < 36; i++) {
        px[i] = mesh[face_oval[i]][0];
        py[i] = mesh[face_oval[i]][1];
        if (!isfinite(px[i]) || !isfinite(py[i])) return;
        x0 = fmin(x0, px[i]);
        x1 = fmax(x1, px[i]);
        y0 = fmin(y0, py[i]);
        y1 = fmax(y1, py[i]);
    }
    for (int i = 0, j = 35; i < 36; j = i++)
        area += px[j] * py[i] - px[i] * py[j];
    if (!(fabs(area) / 2 >= 16)) return; /* no usable mesh: the caller falls back to the box */
    const int step = sample_step(fmax(x1 - x0, y1 - y0));
    const int ya = (int)fmax(0, ceil(y0)), yb = (int)fmin(img->height - 1, floor(y1));
    for (int y = ya; y <= yb; y += step) {
        double xs[36];
        int n = 0;
        for (int i = 0, j = 35; i < 36; j = i++) {
            if ((py[i] <= y && y < py[j]) || (py[j] <= y && y < py[i])) {
                const double x = px[i] + (y - py[i]) * (px[j] - px[i]) / (py[j] - py[i]);
                int k = n++;
                while (k > 0 && xs[k - 1] > x) { /* insertion sort: at most a few crossings */
                    xs[k] = xs[k - 1];
                    k--;
                }
                xs[k] = x;
            }
        }
        for (int k = 0; k + 1 < n; k += 2) {
            const int xa = (int)fmax(0, ceil(xs[k])),
                      xb = (int)fmin(img->width - 1, floor(xs[k + 1]));
            for (int x = xa; x <= xb; x += step)
                stats_add(s, img->rgb + ((size_t)y * img->width + x) * 3);
        }
    }
}

static void stats_box(const fp_image *img, const float box[4], luma_stats *s) {
    const int xa = (int)fmax(0, ceil(box[0])), ya = (int)fmax(0, ceil(box[1]));
    const int xb = (int)fmin(img->width - 1, floor(box[0] + box[2]));
    const int yb = (int)fmin(img->height - 1, floor(box[1] + box[3]));
    const int step = sample_step(fmax(box[2], box[3]));
    for (int y = ya; y <= yb; y += step)
        for (int x = xa; x <= xb; x += step)
            stats_add(s, img->rgb + ((size_t)y * img->width + x) * 3);
}

/* The box resampled to 112x112 luma, as a stand-in for the aligned crop: same size, so the same
 * sharpness threshold applies. Border replicate, so a box cut off by the frame edge does not get a
 * sharp artificial edge. */
static fp_status box_luma(const fp_image *img, const float box[4], float *out) {
    const double side = fmax(box[2], box[3]), s = side / ALIGNED;
    const double cx = box[0] + box[2] / 2.0, cy = box[1] + box[3] / 2.0;
    const double Minv[6] = {s, 0, cx - s * (ALIGNED / 2.0), 0, s, cy - s * (ALIGNED / 2.0)};
    fp_norm gray = fp_norm_uniform(1.0, 0.0);
    gray.gray = 1;
    return fp_warp_inverse(img, Minv, ALIGNED, ALIGNED, FP_BORDER_REPLICATE, &gray, out);
}

fp_status fp_quality_measure(const fp_image *img, const fp_face *face, const float *aligned112_luma,
                             const fp_analyze_options *o, fp_quality *q) {
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0 || !face || !q)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_quality_measure: NULL or empty argument");
    const float *b = face->box;
    if (!(isfinite(b[0]) && isfinite(b[1]) && b[2] > 0 && b[3] > 0 && isfinite(b[2]) &&
          isfinite(b[3])))
        return fp_fail(FP_ERR_INVALID_ARG, "fp_quality_measure: bad face box");
    const fp_analyze_options def = fp_analyze_options_default();
    if (!o) o = &def;

    q->face_px = fmaxf(b[2], b[3]);

    luma_stats st = {0, 0, 0, 0, 0};
    stats_polygon(img, face->mesh, &st);
    if (st.n < 16) {
        st = (luma_stats){0, 0, 0, 0, 0};
        stats_box(img, b, &st);
    }
    if (st.n > 0) {
        const double m = st.sum / st.n, v = st.sum2 / st.n - m * m;
        q->brightness = (float)m;
        q->contrast = (float)sqrt(v > 0 ? v : 0);
        q->exposure_dark = (float)((double)st.dark / st.n);
        q->exposure_bright = (float)((double)st.bright / st.n);
    } else { /* face entirely outside the frame: nothing to measure, every exposure gate fails */
        q->brightness = q->contrast = 0;
        q->exposure_dark = q->exposure_bright = 1;
    }

    if (aligned112_luma) {
        q->sharpness = fp_laplacian_variance(aligned112_luma, ALIGNED, ALIGNED);
    } else {
        float *tmp = malloc(sizeof(float) * ALIGNED * ALIGNED);
        if (!tmp) return fp_fail(FP_ERR_NOMEM, "fp_quality_measure: out of memory");
        fp_status s = box_luma(img, b, tmp);
        q->sharpness = s == FP_OK ? fp_laplacian_variance(tmp, ALIGNED, ALIGNED) : 0;
        free(tmp);
        if (s != FP_OK) return s;
    }

    const double margin = fmin(fmin(b[0], b[1]), fmin(img->width - ((double)b[0] + b[2]),
                                                      img->height - ((double)b[1] + b[3])));
    q->edge_margin = (float)(margin / b[2]);
    const float presence = face->presence < 0 ? 0 : (face->presence > 1 ? 1 : face->presence);
    q->occlusion = 1 - presence;

    q->size_ok = q->face_px >= o->min_face_px;
    q->brightness_ok = q->brightness >= o->min_brightness && q->brightness <= o->max_brightness;
    q->contrast_ok = q->contrast >= o->min_contrast;
    q->sharpness_ok = q->sharpness >= o->min_sharpness;
    q->exposure_ok = q->exposure_dark <= o->max_exposure_fraction &&
                     q->exposure_bright <= o->max_exposure_fraction;
    q->edge_ok = q->edge_margin >= o->min_edge_margin;
    q->occlusion_ok = q->occlusion <= o->max_occlusion; /* a NaN presence stays NaN: fails */
    q->pose_ok = fabsf(face->pose.yaw) <= o->max_yaw && fabsf(face->pose.pitch) <= o->max_pitch &&
                 fabsf(face->pose.roll) <= o->max_roll;
    q->pass = q->size_ok && q->brightness_ok && q->contrast_ok && q->sharpness_ok &&
              q->exposure_ok && q->edge_ok && q->occlusion_ok && q->pose_ok;
    return FP_OK;
}
