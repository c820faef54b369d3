/*
 * sample.c - float sampling for the face pipeline (crops, letterbox, affine warps, normalisation).
 * Every formula is written in the same order of operations as the reference's lib/imgproc.js and
 * lib/align.js, in double, with float rounding where the JS stores into a Float32Array, so that
 * given the same decoded pixels the model inputs come out bit-identical (see image.h).
 */
#include <math.h>
#include <stdlib.h>

#include "core/core.h"
#include "image/image.h"

/* Contracting a*b+c into an fma would change the rounding the JS reference does. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* Largest output side we accept: model inputs are at most a few hundred pixels; the bound keeps
 * out_w * out_h * 3 far from overflow for careless callers. */
#define FP_SAMPLE_MAX_SIDE 32768

fp_norm fp_norm_uniform(double mul, double add) {
    fp_norm n;
    for (int k = 0; k < 3; k++) {
        n.mul[k] = mul;
        n.add[k] = add;
    }
    n.bgr = 0;
    n.gray = 0;
    return n;
}

int fp_norm_channels(const fp_norm *norm) { return norm && norm->gray ? 1 : 3; }

static int image_ok(const fp_image *img) {
    return img && img->rgb && img->width > 0 && img->height > 0;
}

/* floor(x) as a tap index, clamped to [-2, n] so that the int conversion is always defined (NaN
 * included) while every tap that was outside the image stays outside, on the same side. */
static long tap_index(double f, int n) {
    if (!(f >= -2.0)) return -2;
    if (f > (double)n) return n;
    return (long)f;
}

/* Gray/normalisation of one bilinear sample s[3], as imgproc.js does after sample(). */
static inline void finish_pixel(const float s[3], const fp_norm *norm, float *dst) {
    if (!norm) {
        dst[0] = s[0];
        dst[1] = s[1];
        dst[2] = s[2];
        return;
    }
    if (norm->gray) {
        /* imgproc.js toGray stores into a Float32Array before normalize() reads it back. */
        const float g = (float)(0.2989 * (double)s[0] + 0.5870 * (double)s[1] + 0.1140 * (double)s[2]);
        dst[0] = (float)((double)g * norm->mul[0] + norm->add[0]);
        return;
    }
    for (int k = 0; k < 3; k++) {
        const float v = s[norm->bgr ? 2 - k : k];
        dst[k] = (float)((double)v * norm->mul[k] + norm->add[k]);
    }
}

/* One output pixel: bilinear taps as in imgproc.js sample(), then gray/normalisation. */
static void sample_pixel(const fp_image *img, double xs, double ys, fp_border border,
                         const fp_norm *norm, float *dst) {
    const int W = img->width, H = img->height;
    const double x0f = floor(xs), y0f = floor(ys);
    const double fx = xs - x0f, fy = ys - y0f;
    long xi[2], yi[2];
    xi[0] = tap_index(x0f, W);
    yi[0] = tap_index(y0f, H);
    xi[1] = xi[0] + 1;
    yi[1] = yi[0] + 1;
    const uint8_t *p[2][2]; /* [row][col], NULL = border zero */
    for (int r = 0; r < 2; r++) {
        for (int c = 0; c < 2; c++) {
            long x = xi[c], y = yi[r];
            if (x < 0 || y < 0 || x >= W || y >= H) {
                if (border == FP_BORDER_ZERO) {
                    p[r][c] = NULL;
                    continue;
                }
                x = x < 0 ? 0 : (x >= W ? W - 1 : x);
                y = y < 0 ? 0 : (y >= H ? H - 1 : y);
            }
            p[r][c] = img->rgb + ((size_t)y * (size_t)W + (size_t)x) * 3;
        }
    }
    float s[3];
    for (int k = 0; k < 3; k++) {
        const double a = p[0][0] ? p[0][0][k] : 0.0;
        const double b = p[0][1] ? p[0][1][k] : 0.0;
        const double c = p[1][0] ? p[1][0][k] : 0.0;
        const double d = p[1][1] ? p[1][1][k] : 0.0;
        s[k] = (float)((a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy);
    }
    finish_pixel(s, norm, dst);
}

static fp_status check_out(const char *fn, const fp_image *img, int out_w, int out_h,
                           const void *out) {
    if (!image_ok(img)) return fp_fail(FP_ERR_INVALID_ARG, "%s: empty or NULL image", fn);
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "%s: NULL output", fn);
    if (out_w <= 0 || out_h <= 0 || out_w > FP_SAMPLE_MAX_SIDE || out_h > FP_SAMPLE_MAX_SIDE)
        return fp_fail(FP_ERR_INVALID_ARG, "%s: bad output size %dx%d", fn, out_w, out_h);
    return FP_OK;
}

/* 0..255 as doubles: a load from a 2 KB table instead of twelve int-to-double conversions a pixel
 * (the values are exact either way). */
#define U8D4(i) (double)(i), (double)((i) + 1), (double)((i) + 2), (double)((i) + 3)
#define U8D16(i) U8D4(i), U8D4((i) + 4), U8D4((i) + 8), U8D4((i) + 12)
#define U8D64(i) U8D16(i), U8D16((i) + 16), U8D16((i) + 32), U8D16((i) + 48)
static const double U8_DOUBLE[256] = {U8D64(0), U8D64(64), U8D64(128), U8D64(192)};

fp_status fp_warp_inverse(const fp_image *img, const double Minv[6], int out_w, int out_h,
                          fp_border border, const fp_norm *norm, float *out) {
    fp_status st = check_out("fp_warp_inverse", img, out_w, out_h, out);
    if (st != FP_OK) return st;
    if (!Minv) return fp_fail(FP_ERR_INVALID_ARG, "fp_warp_inverse: NULL matrix");
    const int ch = fp_norm_channels(norm);
    const int W = img->width, H = img->height;
    /* the normalisation copied into a local: a float store into `out` may alias *norm, so reading it
     * through the caller's pointer reloads every factor for every pixel */
    fp_norm local;
    const fp_norm *nrm = norm ? (local = *norm, &local) : NULL;
    for (int v = 0; v < out_h; v++) {
        /* (Minv[0]*u + Minv[1]*v) + Minv[2], as before: the row products computed once */
        const double rx = Minv[1] * v, ry = Minv[4] * v;
        for (int u = 0; u < out_w; u++) {
            const double xs = Minv[0] * u + rx + Minv[2];
            const double ys = Minv[3] * u + ry + Minv[5];
            float *dst = out + ((size_t)v * out_w + u) * ch;
            /* Most taps are inside the image, where floor() is the truncation and no tap can be a
             * border: the same arithmetic as sample_pixel without the libm call and the checks
             * (crops are ~10 % of a payment's time). */
            if (xs >= 0 && ys >= 0 && xs < W - 1 && ys < H - 1) {
                const long x0 = (long)xs, y0 = (long)ys;
                const double fx = xs - (double)x0, fy = ys - (double)y0, gx = 1 - fx, gy = 1 - fy;
                const uint8_t *p0 = img->rgb + ((size_t)y0 * (size_t)W + (size_t)x0) * 3, *p1 = p0 + (size_t)W * 3;
                float s[3];
                for (int k = 0; k < 3; k++) {
                    const double a = U8_DOUBLE[p0[k]], b = U8_DOUBLE[p0[3 + k]], c = U8_DOUBLE[p1[k]], d = U8_DOUBLE[p1[3 + k]];
                    s[k] = (float)((a * gx + b * fx) * gy + (c * gx + d * fx) * fy);
                }
                finish_pixel(s, nrm, dst);
            } else {
                sample_pixel(img, xs, ys, border, norm, dst);
            }
        }
    }
    return FP_OK;
}

void fp_rect_to_matrix(const fp_rect *r, int out_w, int out_h, int flip, double M[6]) {
    const double cs = cos(r->angle), sn = sin(r->angle);
    const double sx = r->w / out_w * (flip ? -1 : 1), sy = r->h / out_h;
    const double ox0 = flip ? r->w / 2 + 0.5 * sx : -r->w / 2 + 0.5 * sx;
    const double oy0 = -r->h / 2 + 0.5 * sy;
    M[0] = cs * sx;
    M[1] = -sn * sy;
    M[2] = r->cx + cs * ox0 - sn * oy0 - 0.5;
    M[3] = sn * sx;
    M[4] = cs * sy;
    M[5] = r->cy + sn * ox0 + cs * oy0 - 0.5;
}

fp_status fp_crop_rect(const fp_image *img, const fp_rect *r, int out_w, int out_h, int flip,
                       fp_border border, const fp_norm *norm, float *out) {
    if (!r) return fp_fail(FP_ERR_INVALID_ARG, "fp_crop_rect: NULL rect");
    fp_status st = check_out("fp_crop_rect", img, out_w, out_h, out);
    if (st != FP_OK) return st;
    double M[6];
    fp_rect_to_matrix(r, out_w, out_h, flip, M);
    return fp_warp_inverse(img, M, out_w, out_h, border, norm, out);
}

void fp_crop_point_to_image(const fp_rect *r, int W, int H, int flip, double px, double py,
                            double *x, double *y) {
    const double cs = cos(r->angle), sn = sin(r->angle);
    double ox = (px / W - 0.5) * r->w;
    const double oy = (py / H - 0.5) * r->h;
    if (flip) ox = -ox;
    *x = r->cx + cs * ox - sn * oy;
    *y = r->cy + sn * ox + cs * oy;
}

void fp_letterbox_params(int w, int h, int size, fp_letterbox *lb) {
    const double a = (double)size / w, b = (double)size / h;
    lb->size = size;
    lb->scale = a < b ? a : b; /* Math.min: equal values are equal, no NaN here */
    lb->pad_x = (size - w * lb->scale) / 2;
    lb->pad_y = (size - h * lb->scale) / 2;
}

fp_status fp_letterbox_crop(const fp_image *img, int size, const fp_norm *norm, float *out,
                            fp_letterbox *lb) {
    fp_status st = check_out("fp_letterbox_crop", img, size, size, out);
    if (st != FP_OK) return st;
    fp_letterbox l;
    fp_letterbox_params(img->width, img->height, size, &l);
    const double M[6] = {1 / l.scale, 0, (0.5 - l.pad_x) / l.scale - 0.5,
                         0, 1 / l.scale, (0.5 - l.pad_y) / l.scale - 0.5};
    if (lb) *lb = l;
    return fp_warp_inverse(img, M, size, size, FP_BORDER_ZERO, norm, out);
}

void fp_letterbox_to_image(const fp_letterbox *lb, double nx, double ny, double *x, double *y) {
    *x = (nx * lb->size - lb->pad_x) / lb->scale;
    *y = (ny * lb->size - lb->pad_y) / lb->scale;
}

int fp_invert_affine(const double M[6], double inv[6]) {
    const double a = M[0], b = M[1], tx = M[2], c = M[3], d = M[4], ty = M[5];
    const double det = a * d - b * c;
    if (!(det != 0) || !isfinite(det) || !isfinite(tx) || !isfinite(ty)) return 0;
    const double ia = d / det, ib = -b / det, ic = -c / det, id = a / det;
    inv[0] = ia;
    inv[1] = ib;
    inv[2] = -(ia * tx + ib * ty);
    inv[3] = ic;
    inv[4] = id;
    inv[5] = -(ic * tx + id * ty);
    return 1;
}

fp_status fp_warp_affine(const fp_image *img, const double M[6], int out_w, int out_h,
                         const fp_norm *norm, float *out) {
    if (!M) return fp_fail(FP_ERR_INVALID_ARG, "fp_warp_affine: NULL matrix");
    double inv[6];
    if (!fp_invert_affine(M, inv))
        return fp_fail(FP_ERR_INVALID_ARG, "fp_warp_affine: singular or non-finite matrix");
    return fp_warp_inverse(img, inv, out_w, out_h, FP_BORDER_ZERO, norm, out);
}

/* Math.round(Math.max(0, Math.min(255, v))) exactly: round half up, including for values like
 * 0.49999999999999994 where floor(v + 0.5) would round the wrong way. */
static uint8_t round_u8(float v) {
    double x = v;
    if (!(x > 0)) return 0; /* also NaN: JS would store NaN -> 0 in a Buffer */
    if (x > 255) x = 255;
    double r = floor(x);
    if (x - r >= 0.5) r += 1;
    return (uint8_t)r;
}

fp_status fp_warp_affine_u8(const fp_image *img, const double M[6], int out_w, int out_h,
                            fp_image *out) {
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "fp_warp_affine_u8: NULL output");
    out->width = out->height = 0;
    out->rgb = NULL;
    fp_status st = check_out("fp_warp_affine_u8", img, out_w, out_h, out);
    if (st != FP_OK) return st;
    const size_t n = (size_t)out_w * out_h * 3;
    float *tmp = malloc(n * sizeof *tmp);
    if (!tmp) return fp_fail(FP_ERR_NOMEM, "fp_warp_affine_u8: cannot allocate %zu floats", n);
    st = fp_warp_affine(img, M, out_w, out_h, NULL, tmp);
    if (st == FP_OK) st = fp_image_new(out_w, out_h, out);
    if (st == FP_OK)
        for (size_t i = 0; i < n; i++) out->rgb[i] = round_u8(tmp[i]);
    free(tmp);
    return st;
}
