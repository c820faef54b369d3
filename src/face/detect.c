/*
 * detect.c - BlazeFace post-processing: MediaPipe SSD anchors, box/keypoint decoding, weighted NMS
 * and the payment-candidate ordering. A port of the reference's lib/blazeface.js (itself a port of
 * MediaPipe's ssd_anchors / tensors_to_detections / non_max_suppression calculators), kept in double
 * like the JavaScript so detections match the reference to rounding.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "face/face.h"

int fp_anchors_build(const int *strides, int n_strides, double interpolated_ar, int size,
                     fp_anchor *out, int cap) {
    /* MediaPipe's face detectors use fixed_anchor_size: every anchor is w = h = 1, so the SSD scales
     * (0.1484375 .. 0.75) only decide how many anchors a cell has, never their size. */
    int n = 0;
    for (int layer = 0; layer < n_strides;) {
        int per_cell = 0, last = layer;
        while (last < n_strides && strides[last] == strides[layer]) {
            per_cell++; /* aspect ratio 1.0 */
            if (interpolated_ar > 0) per_cell++;
            last++;
        }
        int stride = strides[layer];
        int fh = (size + stride - 1) / stride, fw = fh;
        for (int y = 0; y < fh; y++)
            for (int x = 0; x < fw; x++)
                for (int a = 0; a < per_cell; a++) {
                    if (n >= cap) return -1;
                    out[n].x = (x + 0.5) / fw;
                    out[n].y = (y + 0.5) / fh;
                    n++;
                }
        layer = last;
    }
    return n;
}

int fp_decode_detections(const float *scores, int score_stride, const float *regs, int reg_stride,
                         const fp_anchor *anchors, int n_anchors, int size, double min_score,
                         fp_detection *out, int cap) {
    int n = 0;
    for (int i = 0; i < n_anchors; i++) {
        double logit = scores[(size_t)i * score_stride];
        if (logit > 100) logit = 100;
        if (logit < -100) logit = -100;
        if (!(logit == logit)) continue; /* NaN from a broken model: no detection */
        double score = 1.0 / (1.0 + exp(-logit));
        if (score < min_score) continue;
        if (n >= cap) break;
        const float *r = regs + (size_t)i * reg_stride;
        const fp_anchor *a = &anchors[i];
        double cx = r[0] / (double)size + a->x, cy = r[1] / (double)size + a->y;
        double w = r[2] / (double)size, h = r[3] / (double)size;
        fp_detection *d = &out[n++];
        d->score = score;
        d->x0 = cx - w / 2;
        d->y0 = cy - h / 2;
        d->x1 = cx + w / 2;
        d->y1 = cy + h / 2;
        for (int k = 0; k < 6; k++) {
            d->kps[k][0] = r[4 + 2 * k] / (double)size + a->x;
            d->kps[k][1] = r[5 + 2 * k] / (double)size + a->y;
        }
        d->merged = 1;
    }
    return n;
}

double fp_detection_iou(const fp_detection *a, const fp_detection *b) {
    double ix = fmax(0, fmin(a->x1, b->x1) - fmax(a->x0, b->x0));
    double iy = fmax(0, fmin(a->y1, b->y1) - fmax(a->y0, b->y0));
    double inter = ix * iy;
    double u = (a->x1 - a->x0) * (a->y1 - a->y0) + (b->x1 - b->x0) * (b->y1 - b->y0) - inter;
    return u > 0 ? inter / u : 0;
}

static int by_score_desc(const void *pa, const void *pb) {
    const fp_detection *a = pa, *b = pb;
    return a->score < b->score ? 1 : a->score > b->score ? -1 : 0;
}

int fp_weighted_nms(fp_detection *d, int n, double iou_threshold) {
    qsort(d, (size_t)n, sizeof *d, by_score_desc);
    char *used = calloc((size_t)(n ? n : 1), 1);
    fp_detection *out = malloc(sizeof *out * (size_t)(n ? n : 1));
    if (!used || !out) {
        free(used);
        free(out);
        return n < 1 ? 0 : 1; /* out of memory: keep the best detection only */
    }
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (used[i]) continue;
        const fp_detection *top = &d[i];
        double W = 0;
        fp_detection acc;
        memset(&acc, 0, sizeof acc);
        int merged = 0;
        for (int j = i; j < n; j++) {
            if (used[j] || fp_detection_iou(top, &d[j]) <= iou_threshold) continue;
            const fp_detection *c = &d[j];
            used[j] = 1;
            merged++;
            W += c->score;
            acc.x0 += c->score * c->x0;
            acc.y0 += c->score * c->y0;
            acc.x1 += c->score * c->x1;
            acc.y1 += c->score * c->y1;
            for (int k = 0; k < 6; k++) {
                acc.kps[k][0] += c->score * c->kps[k][0];
                acc.kps[k][1] += c->score * c->kps[k][1];
            }
        }
        if (!merged) { /* a degenerate box has IoU 0 even with itself */
            used[i] = 1;
            out[m++] = *top;
            continue;
        }
        acc.x0 /= W;
        acc.y0 /= W;
        acc.x1 /= W;
        acc.y1 /= W;
        for (int k = 0; k < 6; k++) {
            acc.kps[k][0] /= W;
            acc.kps[k][1] /= W;
        }
        acc.score = top->score;
        acc.merged = merged;
        out[m++] = acc;
    }
    memcpy(d, out, sizeof *d * (size_t)m);
    free(used);
    free(out);
    return m;
}

double fp_candidate_priority(const fp_detection *d, int img_w, int img_h) {
    double w = d->x1 - d->x0, h = d->y1 - d->y0;
    double cx = (d->x0 + d->x1) / 2 - img_w / 2.0, cy = (d->y0 + d->y1) / 2 - img_h / 2.0;
    double half_diag = 0.5 * sqrt((double)img_w * img_w + (double)img_h * img_h);
    double off = half_diag > 0 ? sqrt(cx * cx + cy * cy) / half_diag : 0;
    if (off > 1) off = 1;
    return fmax(w, h) * (1.0 - 0.5 * off);
}

int fp_hard_nms(fp_detection *d, int n, double iou_threshold) {
    qsort(d, (size_t)n, sizeof *d, by_score_desc);
    int m = 0;
    for (int i = 0; i < n; i++) {
        int keep = 1;
        for (int j = 0; j < m && keep; j++)
            if (fp_detection_iou(&d[j], &d[i]) > iou_threshold) keep = 0;
        if (keep) d[m++] = d[i];
    }
    return m;
}
