/*
 * jpegjs.c - JPEG to RGB with exactly the pixels of jpeg-js 0.4.4, the decoder of the reference
 * pipeline, so that the engine's model inputs (and hence every downstream number) can be
 * compared with the golden files bit for bit instead of within a decoder-noise tolerance.
 *
 * libjpeg-turbo still does all the parsing and entropy decoding (tjTransform with a coefficient
 * callback, nothing re-encoded); only the last steps are redone the jpeg-js way: dequantisation,
 * its integer IDCT (a port of poppler's Loeffler-Ligtenberg-Moschytz IDCT), nearest-neighbour
 * chroma upsampling and float YCbCr->RGB with truncation. The IDCT keeps JavaScript's integer
 * semantics (values are doubles, `>>`/`<<` and Int32Array stores wrap to int32), so even
 * absurd coefficients give the same bytes as the reference.
 */
#include <stdlib.h>
#include <string.h>

#include <turbojpeg.h>

#include "core/core.h"
#include "image/image.h"

#define MAXC 4

typedef struct jctx {
    int ncomp;
    int h[MAXC], v[MAXC], tq[MAXC];
    int maxh, maxv;
    uint16_t qt[4][64]; /* natural order */
    int have_qt[4];
    uint8_t *plane[MAXC];
    int pw[MAXC], ph[MAXC];
    int bad;
} jctx;

static unsigned be16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }

static const uint8_t zigzag[64] = {0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,
                                   12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6,  7,  14, 21, 28,
                                   35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
                                   58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63};

/* Reads DQT tables and the frame's components (sampling factors, table ids) from the marker
 * segments before the first scan. Returns 0 if the file is not something this path handles. */
static int parse_headers(const uint8_t *d, size_t n, jctx *c) {
    size_t pos = 2;
    int have_sof = 0;
    while (pos + 4 <= n) {
        if (d[pos] != 0xFF) {
            pos++;
            continue;
        }
        const uint8_t m = d[pos + 1];
        if (m == 0xFF) {
            pos++;
            continue;
        }
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {
            pos += 2;
            continue;
        }
        if (m == 0xD9 || m == 0xDA) break;
        const size_t len = be16(d + pos + 2);
        if (len < 2 || pos + 2 + len > n) return 0;
        const uint8_t *s = d + pos + 4, *e = d + pos + 2 + len;
        if (m == 0xDB) {
            while (s < e) {
                const int prec = s[0] >> 4, id = s[0] & 15;
                s++;
                if (id > 3 || prec > 1 || (size_t)(e - s) < (size_t)(prec ? 128 : 64)) return 0;
                for (int j = 0; j < 64; j++) c->qt[id][zigzag[j]] = (uint16_t)(prec ? be16(s + 2 * j) : s[j]);
                s += prec ? 128 : 64;
                c->have_qt[id] = 1;
            }
        } else if (m == 0xC0 || m == 0xC1 || m == 0xC2) { /* Huffman DCT frames, what jpeg-js reads */
            if (have_sof || e - s < 6) return 0;
            have_sof = 1;
            c->ncomp = s[5];
            if ((c->ncomp != 1 && c->ncomp != 3) || e - s < 6 + 3 * c->ncomp) return 0;
            c->maxh = c->maxv = 1;
            for (int i = 0; i < c->ncomp; i++) {
                const uint8_t *q = s + 6 + 3 * i;
                c->h[i] = q[1] >> 4;
                c->v[i] = q[1] & 15;
                c->tq[i] = q[2];
                if (c->h[i] < 1 || c->h[i] > 4 || c->v[i] < 1 || c->v[i] > 4 || c->tq[i] > 3) return 0;
                if (c->h[i] > c->maxh) c->maxh = c->h[i];
                if (c->v[i] > c->maxv) c->maxv = c->v[i];
            }
        } else if (m >= 0xC3 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
            return 0; /* lossless / arithmetic / hierarchical: not jpeg-js territory */
        }
        pos += 2 + len;
    }
    if (!have_sof) return 0;
    for (int i = 0; i < c->ncomp; i++)
        if (!c->have_qt[c->tq[i]]) return 0;
    return 1;
}

/* JavaScript ToInt32, and the shifts that go through it. Right shifts of negative values are
 * arithmetic in gcc and clang, as `>>` is in JavaScript. */
static inline int32_t i32(int64_t v) { return (int32_t)(uint32_t)(uint64_t)v; }
static inline int32_t sar(int64_t v, int s) { return i32(v) >> s; }
static inline int32_t shl4(int32_t v) { return i32((int64_t)((uint64_t)(uint32_t)v << 4)); }

enum { C1 = 4017, S1 = 799, C3 = 3406, S3 = 2276, C6 = 1567, S6 = 3784, SQ2 = 5793, SQ1D2 = 2896 };

/* jpeg-js quantizeAndInverse(), statement for statement. */
static void idct_block(const short *zz, const uint16_t *qt, uint8_t *out, int stride) {
    int32_t p[64];
    int64_t v0, v1, v2, v3, v4, v5, v6, v7, t;
    for (int i = 0; i < 64; i++) p[i] = i32((int64_t)zz[i] * qt[i]);
    for (int i = 0; i < 8; i++) {
        int32_t *r = p + 8 * i;
        if (r[1] == 0 && r[2] == 0 && r[3] == 0 && r[4] == 0 && r[5] == 0 && r[6] == 0 && r[7] == 0) {
            const int32_t dc = sar((int64_t)SQ2 * r[0] + 512, 10);
            for (int k = 0; k < 8; k++) r[k] = dc;
            continue;
        }
        v0 = sar((int64_t)SQ2 * r[0] + 128, 8);
        v1 = sar((int64_t)SQ2 * r[4] + 128, 8);
        v2 = r[2];
        v3 = r[6];
        v4 = sar((int64_t)SQ1D2 * ((int64_t)r[1] - r[7]) + 128, 8);
        v7 = sar((int64_t)SQ1D2 * ((int64_t)r[1] + r[7]) + 128, 8);
        v5 = shl4(r[3]);
        v6 = shl4(r[5]);
        t = sar(v0 - v1 + 1, 1);
        v0 = sar(v0 + v1 + 1, 1);
        v1 = t;
        t = sar(v2 * S6 + v3 * C6 + 128, 8);
        v2 = sar(v2 * C6 - v3 * S6 + 128, 8);
        v3 = t;
        t = sar(v4 - v6 + 1, 1);
        v4 = sar(v4 + v6 + 1, 1);
        v6 = t;
        t = sar(v7 + v5 + 1, 1);
        v5 = sar(v7 - v5 + 1, 1);
        v7 = t;
        t = sar(v0 - v3 + 1, 1);
        v0 = sar(v0 + v3 + 1, 1);
        v3 = t;
        t = sar(v1 - v2 + 1, 1);
        v1 = sar(v1 + v2 + 1, 1);
        v2 = t;
        t = sar(v4 * S3 + v7 * C3 + 2048, 12);
        v4 = sar(v4 * C3 - v7 * S3 + 2048, 12);
        v7 = t;
        t = sar(v5 * S1 + v6 * C1 + 2048, 12);
        v5 = sar(v5 * C1 - v6 * S1 + 2048, 12);
        v6 = t;
        r[0] = i32(v0 + v7);
        r[7] = i32(v0 - v7);
        r[1] = i32(v1 + v6);
        r[6] = i32(v1 - v6);
        r[2] = i32(v2 + v5);
        r[5] = i32(v2 - v5);
        r[3] = i32(v3 + v4);
        r[4] = i32(v3 - v4);
    }
    for (int col = 0; col < 8; col++) {
        int32_t *c = p + col;
        if (c[8] == 0 && c[16] == 0 && c[24] == 0 && c[32] == 0 && c[40] == 0 && c[48] == 0 && c[56] == 0) {
            const int32_t dc = sar((int64_t)SQ2 * c[0] + 8192, 14);
            for (int k = 0; k < 8; k++) c[8 * k] = dc;
            continue;
        }
        v0 = sar((int64_t)SQ2 * c[0] + 2048, 12);
        v1 = sar((int64_t)SQ2 * c[32] + 2048, 12);
        v2 = c[16];
        v3 = c[48];
        v4 = sar((int64_t)SQ1D2 * ((int64_t)c[8] - c[56]) + 2048, 12);
        v7 = sar((int64_t)SQ1D2 * ((int64_t)c[8] + c[56]) + 2048, 12);
        v5 = c[24];
        v6 = c[40];
        t = sar(v0 - v1 + 1, 1);
        v0 = sar(v0 + v1 + 1, 1);
        v1 = t;
        t = sar(v2 * S6 + v3 * C6 + 2048, 12);
        v2 = sar(v2 * C6 - v3 * S6 + 2048, 12);
        v3 = t;
        t = sar(v4 - v6 + 1, 1);
        v4 = sar(v4 + v6 + 1, 1);
        v6 = t;
        t = sar(v7 + v5 + 1, 1);
        v5 = sar(v7 - v5 + 1, 1);
        v7 = t;
        t = sar(v0 - v3 + 1, 1);
        v0 = sar(v0 + v3 + 1, 1);
        v3 = t;
        t = sar(v1 - v2 + 1, 1);
        v1 = sar(v1 + v2 + 1, 1);
        v2 = t;
        t = sar(v4 * S3 + v7 * C3 + 2048, 12);
        v4 = sar(v4 * C3 - v7 * S3 + 2048, 12);
        v7 = t;
        t = sar(v5 * S1 + v6 * C1 + 2048, 12);
        v5 = sar(v5 * C1 - v6 * S1 + 2048, 12);
        v6 = t;
        c[0] = i32(v0 + v7);
        c[56] = i32(v0 - v7);
        c[8] = i32(v1 + v6);
        c[48] = i32(v1 - v6);
        c[16] = i32(v2 + v5);
        c[40] = i32(v2 - v5);
        c[24] = i32(v3 + v4);
        c[32] = i32(v3 - v4);
    }
    for (int i = 0; i < 64; i++) {
        const int32_t s = 128 + sar((int64_t)p[i] + 8, 4);
        out[(i >> 3) * stride + (i & 7)] = (uint8_t)(s < 0 ? 0 : s > 255 ? 255 : s);
    }
}

/* tjTransform hands us one row of coefficient blocks of one component per call. */
static int on_coeffs(short *coeffs, tjregion arr, tjregion plane, int ci, int ti, tjtransform *xf) {
    (void)ti;
    jctx *c = xf->data;
    if (ci < 0 || ci >= c->ncomp || plane.w <= 0 || plane.h <= 0 || arr.x != 0 || arr.w != plane.w ||
        arr.h != 8 || arr.y < 0 || plane.w % 8 || plane.h % 8) {
        c->bad = 1;
        return -1;
    }
    /* libjpeg pads the last MCU row with blocks below the plane: nothing to decode there */
    if (arr.y >= plane.h) return 0;
    if (!c->plane[ci]) {
        c->plane[ci] = calloc((size_t)plane.w, (size_t)plane.h);
        if (!c->plane[ci]) {
            c->bad = 1;
            return -1;
        }
        c->pw[ci] = plane.w;
        c->ph[ci] = plane.h;
    } else if (c->pw[ci] != plane.w || c->ph[ci] != plane.h) {
        c->bad = 1;
        return -1;
    }
    const uint16_t *qt = c->qt[c->tq[ci]];
    uint8_t *row = c->plane[ci] + (size_t)arr.y * plane.w;
    for (int b = 0; b < arr.w / 8; b++) idct_block(coeffs + 64 * b, qt, row + 8 * b, plane.w);
    return 0;
}

/* jpeg-js clampTo8bit() stored into a Uint8Array, which truncates. Truncating first and clamping
 * the int gives the same byte for every |v| < 2^31 (here |v| < 500) and compiles branch-free. */
static inline uint8_t trunc_u8(double v) {
    int i = (int)v;
    i = i < 0 ? 0 : i;
    return (uint8_t)(i > 255 ? 255 : i);
}

fp_status fp_jpeg_decode_jpegjs(const uint8_t *data, size_t len, int w, int h, uint8_t *rgb) {
    jctx c;
    memset(&c, 0, sizeof c);
    if (!parse_headers(data, len, &c)) return FP_ERR_UNSUPPORTED; /* caller falls back, no message */
    tjhandle tj = tjInitTransform();
    if (!tj) return fp_fail(FP_ERR_NOMEM, "JPEG: cannot create a transformer");
    tjtransform xf;
    memset(&xf, 0, sizeof xf);
    xf.op = TJXOP_NONE;
    xf.options = TJXOPT_NOOUTPUT;
    xf.data = &c;
    xf.customFilter = on_coeffs;
    unsigned char *dst = NULL;
    unsigned long dstlen = 0;
    fp_status st = FP_OK;
    if (tjTransform(tj, data, (unsigned long)len, 1, &dst, &dstlen, &xf, 0) != 0) {
        const char *msg = tjGetErrorStr2(tj);
        if (c.bad) st = FP_ERR_UNSUPPORTED; /* a layout this file does not assume: let libjpeg do it */
        else if (tjGetErrorCode(tj) == TJERR_FATAL || !strstr(msg, "extraneous bytes"))
            st = fp_fail(FP_ERR_FORMAT, "JPEG: corrupt data: %s", msg);
    }
    tjFree(dst);
    tjDestroy(tj);
    /* every component must cover the image at its sampling rate (jpeg-js indexing below);
     * if libjpeg laid it out otherwise, fall back rather than guess */
    for (int i = 0; st == FP_OK && i < c.ncomp; i++) {
        const double sx = (double)c.h[i] / c.maxh, sy = (double)c.v[i] / c.maxv;
        if (!c.plane[i] || (int)((w - 1) * sx) >= c.pw[i] || (int)((h - 1) * sy) >= c.ph[i])
            st = FP_ERR_UNSUPPORTED;
    }
    if (st == FP_OK) {
        const int nc = c.ncomp;
        /* jpeg-js's products, tabulated per chroma value (same doubles, same order of use) */
        double cr_r[256], cb_g[256], cr_g[256], cb_b[256];
        for (int v = 0; v < 256; v++) {
            cr_r[v] = 1.402 * (v - 128);
            cb_g[v] = 0.3441363 * (v - 128);
            cr_g[v] = 0.71413636 * (v - 128);
            cb_b[v] = 1.772 * (v - 128);
        }
        double sx[3], sy[3];
        for (int i = 0; i < nc; i++) {
            sx[i] = (double)c.h[i] / c.maxh;
            sy[i] = (double)c.v[i] / c.maxv;
        }
        int *xi = malloc(sizeof(int) * (size_t)w * nc);
        if (!xi) st = fp_fail(FP_ERR_NOMEM, "JPEG: out of memory");
        for (int i = 0; st == FP_OK && i < nc; i++)
            for (int x = 0; x < w; x++) xi[i * w + x] = (int)(x * sx[i] * 1.0); /* 0 | (x * scaleX * 1) */
        for (int y = 0; st == FP_OK && y < h; y++) {
            const uint8_t *l[3];
            for (int i = 0; i < nc; i++) l[i] = c.plane[i] + (size_t)(int)(y * sy[i] * 1.0) * c.pw[i];
            uint8_t *o = rgb + (size_t)y * w * 3;
            if (nc == 1) {
                for (int x = 0; x < w; x++) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = l[0][xi[x]];
                continue;
            }
            for (int x = 0; x < w; x++) {
                const double Y = l[0][xi[x]];
                const int cb = l[1][xi[w + x]], cr = l[2][xi[2 * w + x]];
                o[3 * x] = trunc_u8(Y + cr_r[cr]);
                o[3 * x + 1] = trunc_u8(Y - cb_g[cb] - cr_g[cr]);
                o[3 * x + 2] = trunc_u8(Y + cb_b[cb]);
            }
        }
        free(xi);
    }
    for (int i = 0; i < MAXC; i++) free(c.plane[i]);
    return st;
}
