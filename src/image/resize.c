/*
 * resize.c - 8-bit RGB resizing for thumbnails and previews (not used to build model inputs, which
 * go through sample.c to match the reference). Separable: each axis gets a table of source taps
 * and weights, bilinear when enlarging or shrinking by at most 2x, an area average beyond that
 * (plain bilinear would skip source pixels and alias).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/core.h"
#include "image/image.h"

typedef struct taps {
    int n;        /* taps per output sample */
    int *idx;     /* [out * n] source indices */
    float *wgt;   /* [out * n] weights, summing to 1 */
} taps;

static void taps_free(taps *t) {
    free(t->idx);
    free(t->wgt);
}

static int taps_make(int src, int dst, taps *t) {
    const double scale = (double)src / dst;
    t->n = scale > 2.0 ? (int)ceil(scale) + 1 : 2;
    t->idx = calloc((size_t)dst * t->n, sizeof *t->idx);
    t->wgt = calloc((size_t)dst * t->n, sizeof *t->wgt);
    if (!t->idx || !t->wgt) return 0;
    for (int o = 0; o < dst; o++) {
        int *ix = t->idx + (size_t)o * t->n;
        float *wt = t->wgt + (size_t)o * t->n;
        if (scale > 2.0) {
            /* the output pixel covers source interval [a, b): weight = overlap length */
            const double a = o * scale, b = (o + 1) * scale;
            int k = 0;
            for (int s = (int)floor(a); s < b && k < t->n; s++, k++) {
                const double lo = s > a ? s : a, hi = s + 1 < b ? s + 1 : b;
                ix[k] = s < src ? s : src - 1;
                wt[k] = (float)((hi - lo) / scale);
            }
        } else {
            const double x = (o + 0.5) * scale - 0.5;
            const double x0 = floor(x);
            const double f = x - x0;
            int i0 = (int)x0, i1 = i0 + 1;
            i0 = i0 < 0 ? 0 : i0 >= src ? src - 1 : i0;
            i1 = i1 < 0 ? 0 : i1 >= src ? src - 1 : i1;
            ix[0] = i0;
            ix[1] = i1;
            wt[0] = (float)(1 - f);
            wt[1] = (float)f;
        }
    }
    return 1;
}

fp_status fp_image_resize(const fp_image *img, int w, int h, fp_image *out) {
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "fp_image_resize: NULL output");
    out->width = out->height = 0;
    out->rgb = NULL;
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_image_resize: empty or NULL image");
    fp_status st = fp_image_new(w, h, out);
    if (st != FP_OK) return st;
    const int W = img->width, H = img->height;
    if ((uint64_t)w * (uint64_t)H > (uint64_t)SIZE_MAX / (3 * sizeof(float))) {
        fp_image_release(out);
        return fp_fail(FP_ERR_INVALID_ARG, "fp_image_resize: %dx%d -> %dx%d is too large", W, H, w, h);
    }
    taps tx = {0}, ty = {0};
    float *mid = NULL;
    if (!taps_make(W, w, &tx) || !taps_make(H, h, &ty) ||
        !(mid = malloc((size_t)w * H * 3 * sizeof *mid))) {
        taps_free(&tx);
        taps_free(&ty);
        fp_image_release(out);
        return fp_fail(FP_ERR_NOMEM, "fp_image_resize: out of memory (%dx%d -> %dx%d)", W, H, w, h);
    }
    /* horizontal pass: H rows of w pixels, float */
    for (int y = 0; y < H; y++) {
        const uint8_t *s = img->rgb + (size_t)y * W * 3;
        float *m = mid + (size_t)y * w * 3;
        for (int x = 0; x < w; x++) {
            float acc[3] = {0, 0, 0};
            for (int k = 0; k < tx.n; k++) {
                const float wt = tx.wgt[(size_t)x * tx.n + k];
                const uint8_t *p = s + (size_t)tx.idx[(size_t)x * tx.n + k] * 3;
                acc[0] += wt * p[0];
                acc[1] += wt * p[1];
                acc[2] += wt * p[2];
            }
            m[3 * x] = acc[0];
            m[3 * x + 1] = acc[1];
            m[3 * x + 2] = acc[2];
        }
    }
    /* vertical pass */
    for (int y = 0; y < h; y++) {
        uint8_t *d = out->rgb + (size_t)y * w * 3;
        for (int i = 0; i < w * 3; i++) {
            float acc = 0;
            for (int k = 0; k < ty.n; k++)
                acc += ty.wgt[(size_t)y * ty.n + k] * mid[(size_t)ty.idx[(size_t)y * ty.n + k] * w * 3 + i];
            const float r = acc + 0.5f;
            d[i] = (uint8_t)(r <= 0 ? 0 : r >= 255 ? 255 : (int)r);
        }
    }
    free(mid);
    taps_free(&tx);
    taps_free(&ty);
    return FP_OK;
}
