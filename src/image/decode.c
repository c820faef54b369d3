/*
 * decode.c - the public fp_image_* functions: JPEG (libturbojpeg, EXIF orientation, DCT-domain
 * downscaling), PNG (libpng), binary and ASCII PGM/PPM, raw camera frames, and PNG output.
 *
 * Input is untrusted (images come from the network in the server), so every decoder checks the
 * declared size against the limits before allocating anything and turns truncated or corrupt
 * data into FP_ERR_FORMAT instead of returning a partly-grey picture:
 *  - JPEG: the scan data must end with an EOI marker (a truncated file never does), fatal
 *    libjpeg errors fail, and so does every libjpeg warning ("premature end of data", "bad
 *    Huffman code", ...) except "extraneous bytes before marker", which many cameras produce on
 *    otherwise intact files. libjpeg would otherwise pad a damaged image with grey, and a face
 *    payment must not run on guessed pixels.
 *  - PNG: everything up to and including IEND is read and CRC-checked.
 *
 * Full-size YCbCr and gray JPEGs are decoded to exactly the pixels of jpeg-js, the reference's
 * decoder (jpegjs.c: libjpeg parses, the IDCT/upsampling/colour steps are jpeg-js's), so model
 * inputs match the golden tensors bit for bit. libjpeg's own output would differ by up to 30
 * levels at colour edges (fancy upsampling) and still by 1..3 in ~6 % of the values with
 * nearest chroma and jpeg-js's colour formulas. The price is speed (scalar IDCT after a
 * coefficient pass: ~25 ms for 900x562 where tjDecompress2 takes ~4 ms) and holding the
 * coefficients in memory (2 bytes per sample, bounded by max_pixels).
 *
 * DCT scaling happens only when limits->target_max_side > 0 (0 = "never downscale", as
 * facepay.h documents): then the smallest turbojpeg factor whose longer side still reaches the
 * target is used, reduced further if the result is still above max_pixels. Progressive JPEGs are
 * never scaled into the limit, because libjpeg keeps their full-size coefficients in memory.
 *
 * NV12 frames are converted with BT.601 full-range (JFIF) coefficients, the convention of
 * Android camera frames and of JPEG itself.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <turbojpeg.h>

#include "core/core.h"
#include "image/image.h"


fp_image_limits fp_image_limits_default(void) {
    fp_image_limits l;
    l.max_pixels = 40 * 1000 * 1000;
    l.max_file_bytes = (size_t)64 << 20;
    l.target_max_side = 0;
    l.exact_jpeg = 0;
    return l;
}

void fp_image_release(fp_image *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}

fp_status fp_image_new(int w, int h, fp_image *out) {
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "fp_image_new: NULL output");
    out->width = out->height = 0;
    out->rgb = NULL;
    if (w <= 0 || h <= 0 || (uint64_t)w * (uint64_t)h > (uint64_t)SIZE_MAX / 3)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_image_new: bad size %dx%d", w, h);
    uint8_t *p = calloc((size_t)w * (size_t)h, 3);
    if (!p) return fp_fail(FP_ERR_NOMEM, "cannot allocate a %dx%d image", w, h);
    out->width = w;
    out->height = h;
    out->rgb = p;
    return FP_OK;
}

/* Megapixels for messages: "400", "40", "5.243", "0.003072" (never 1e+04). */
static void fmt_mp(char *s, size_t n, double px) {
    const double mp = px / 1e6;
    snprintf(s, n, mp >= 1000 ? "%.0f" : "%.4g", mp);
}

/* The pixel-limit refusal, worded the same for every format. Sizes come straight from headers,
 * so up to 2^32 - 1 each: the product is formed in double. */
static fp_status too_large(uint64_t w, uint64_t h, int64_t max_pixels, const char *extra) {
    char a[32], b[32];
    fmt_mp(a, sizeof a, (double)w * (double)h);
    fmt_mp(b, sizeof b, (double)max_pixels);
    return fp_fail(FP_ERR_TOO_LARGE, "image %llux%llu = %s MP exceeds the %s MP limit%s", (unsigned long long)w,
                   (unsigned long long)h, a, b, extra);
}

/* ------------------------------------------------------------------------------------------ */
/* JPEG                                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* What a walk over the JPEG marker segments tells us before libjpeg sees the data. */
typedef struct jpeg_scan {
    int orientation;  /* EXIF 1..8, 1 when absent or invalid */
    int progressive;  /* SOF2/6/10/14: libjpeg then buffers full-size coefficients */
    int has_sos;
    int has_eoi;      /* an EOI marker after the first SOS */
} jpeg_scan;

static unsigned rd16(const uint8_t *p, int le) { return le ? p[0] | (unsigned)p[1] << 8 : (unsigned)p[0] << 8 | p[1]; }
static uint32_t rd32(const uint8_t *p, int le) {
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Orientation tag 0x0112 of IFD0 in an APP1 "Exif\0\0" payload; 0 if absent or malformed. */
static int exif_orientation(const uint8_t *p, size_t n) {
    if (n < 6 + 8 || memcmp(p, "Exif\0\0", 6) != 0) return 0;
    const uint8_t *t = p + 6; /* TIFF header: all offsets are relative to it */
    const size_t tn = n - 6;
    int le;
    if (t[0] == 'I' && t[1] == 'I') le = 1;
    else if (t[0] == 'M' && t[1] == 'M') le = 0;
    else return 0;
    if (rd16(t + 2, le) != 42) return 0;
    const uint32_t ifd = rd32(t + 4, le);
    if (ifd > tn || tn - ifd < 2) return 0;
    const unsigned count = rd16(t + ifd, le);
    if ((tn - ifd - 2) / 12 < count) return 0;
    for (unsigned i = 0; i < count; i++) {
        const uint8_t *e = t + ifd + 2 + 12 * (size_t)i;
        if (rd16(e, le) != 0x0112) continue;
        /* type SHORT, count 1: the value sits in the first two bytes of the value field */
        if (rd16(e + 2, le) != 3 || rd32(e + 4, le) != 1) return 0;
        const unsigned v = rd16(e + 8, le);
        return v >= 1 && v <= 8 ? (int)v : 0;
    }
    return 0;
}

/* Walks the marker segments up to the first SOS (the same tolerant way libjpeg does: stray bytes
 * between markers are skipped), then looks for EOI in the rest. Entropy-coded data escapes 0xFF
 * as FF 00, so FF D9 there can only be the EOI marker. */
static void jpeg_prescan(const uint8_t *d, size_t n, jpeg_scan *s) {
    memset(s, 0, sizeof *s);
    s->orientation = 1;
    size_t pos = 2; /* after SOI */
    int exif_seen = 0;
    while (pos + 1 < n) {
        if (d[pos] != 0xFF) {
            pos++;
            continue;
        }
        const uint8_t m = d[pos + 1];
        if (m == 0xFF) { /* fill byte */
            pos++;
            continue;
        }
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { /* no length field */
            pos += 2;
            continue;
        }
        if (m == 0xD9) return; /* EOI before any scan: no image */
        if (pos + 4 > n) return;
        const size_t seglen = rd16(d + pos + 2, 0);
        if (seglen < 2) return;
        if (m == 0xDA) {
            s->has_sos = 1;
            pos += 2 + seglen;
            break;
        }
        if (pos + 2 + seglen > n) return;
        const uint8_t *payload = d + pos + 4;
        const size_t plen = seglen - 2;
        if (m == 0xE1 && !exif_seen) {
            const int o = exif_orientation(payload, plen);
            if (o) {
                s->orientation = o;
                exif_seen = 1;
            }
        }
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC)
            s->progressive = (m & 3) == 2;
        pos += 2 + seglen;
    }
    for (; pos + 1 < n; pos++)
        if (d[pos] == 0xFF && d[pos + 1] == 0xD9) {
            s->has_eoi = 1;
            return;
        }
}

/* Returns a new buffer with EXIF orientation o (2..8) applied to the w x h RGB pixels; the
 * displayed size is written to *ow, *oh. Formulas: displayed (x, y) <- stored (sx, sy). */
static uint8_t *apply_orientation(const uint8_t *src, int w, int h, int o, int *ow, int *oh) {
    const int swap = o >= 5;
    const int W = swap ? h : w, H = swap ? w : h;
    uint8_t *dst = malloc((size_t)w * (size_t)h * 3);
    if (!dst) return NULL;
    for (int y = 0; y < H; y++) {
        uint8_t *row = dst + (size_t)y * W * 3;
        for (int x = 0; x < W; x++) {
            int sx, sy;
            switch (o) {
            case 2: sx = w - 1 - x; sy = y; break;             /* mirror horizontal */
            case 3: sx = w - 1 - x; sy = h - 1 - y; break;     /* rotate 180 */
            case 4: sx = x; sy = h - 1 - y; break;             /* mirror vertical */
            case 5: sx = y; sy = x; break;                     /* transpose */
            case 6: sx = y; sy = h - 1 - x; break;             /* rotate 90 clockwise */
            case 7: sx = w - 1 - y; sy = h - 1 - x; break;     /* transverse */
            case 8: sx = w - 1 - y; sy = x; break;             /* rotate 90 counter-clockwise */
            default: sx = x; sy = y; break;
            }
            memcpy(row + (size_t)x * 3, src + ((size_t)sy * w + sx) * 3, 3);
        }
    }
    *ow = W;
    *oh = H;
    return dst;
}

/* libjpeg reports damage as warnings and goes on with grey fill; see the policy at the top. */
static fp_status jpeg_check(tjhandle tj, int rc) {
    if (rc == 0) return FP_OK;
    const char *msg = tjGetErrorStr2(tj);
    if (tjGetErrorCode(tj) == TJERR_WARNING && strstr(msg, "extraneous bytes")) return FP_OK;
    return fp_fail(FP_ERR_FORMAT, "JPEG: corrupt data: %s", msg);
}

/* DCT-scaled images and those jpegjs.c does not take (RGB colour space, arithmetic coding...):
 * libjpeg's own conversion, with the chroma replicated like jpeg-js rather than interpolated. */
static fp_status jpeg_decode_rgb(tjhandle tj, const uint8_t *data, size_t len, int w, int h,
                                 uint8_t *rgb) {
    return jpeg_check(tj, tjDecompress2(tj, data, (unsigned long)len, rgb, w, 0, h, TJPF_RGB,
                                        TJFLAG_FASTUPSAMPLE | TJFLAG_ACCURATEDCT));
}

static fp_status decode_jpeg(const uint8_t *data, size_t len, const fp_image_limits *lim,
                             fp_image *out) {
    jpeg_scan scan;
    jpeg_prescan(data, len, &scan);
    if (!scan.has_sos) return fp_fail(FP_ERR_FORMAT, "JPEG: no image data (SOS marker missing)");
    if (!scan.has_eoi) return fp_fail(FP_ERR_FORMAT, "JPEG: truncated (no EOI marker after the scan data)");

    tjhandle tj = tjInitDecompress();
    if (!tj) return fp_fail(FP_ERR_NOMEM, "JPEG: cannot create a decompressor: %s", tjGetErrorStr2(NULL));
    int w = 0, h = 0, subsamp = 0, cs = 0;
    if (tjDecompressHeader3(tj, data, (unsigned long)len, &w, &h, &subsamp, &cs) != 0) {
        fp_status st = fp_fail(FP_ERR_FORMAT, "JPEG: bad header: %s", tjGetErrorStr2(tj));
        tjDestroy(tj);
        return st;
    }
    if (w <= 0 || h <= 0) {
        tjDestroy(tj);
        return fp_fail(FP_ERR_FORMAT, "JPEG: bad size %dx%d", w, h);
    }
    if (cs == TJCS_CMYK || cs == TJCS_YCCK) {
        tjDestroy(tj);
        return fp_fail(FP_ERR_UNSUPPORTED, "JPEG: CMYK/YCCK images are not supported");
    }

    /* Pick the DCT scale. Factors run from 2/1 down to 1/8; only <= 1 matter. */
    int nsf = 0;
    tjscalingfactor *sf = tjGetScalingFactors(&nsf);
    tjscalingfactor best = {1, 1};
    const int64_t full = (int64_t)w * h;
    const int big_side = w > h ? w : h;
    const int may_scale = lim->target_max_side > 0;
    if (may_scale && big_side > lim->target_max_side && sf) {
        /* most reduction whose longer side still reaches the target */
        for (int i = 0; i < nsf; i++) {
            if (sf[i].num > sf[i].denom) continue;
            const int side = TJSCALED(big_side, sf[i]);
            if (side >= lim->target_max_side && sf[i].num * best.denom < best.num * sf[i].denom)
                best = sf[i];
        }
    }
    int sw = TJSCALED(w, best), sh = TJSCALED(h, best);
    if ((int64_t)sw * sh > lim->max_pixels && may_scale && !scan.progressive && sf) {
        /* least reduction that fits the pixel limit */
        tjscalingfactor fit = {0, 1};
        for (int i = 0; i < nsf; i++) {
            if (sf[i].num > sf[i].denom) continue;
            if ((int64_t)TJSCALED(w, sf[i]) * TJSCALED(h, sf[i]) > lim->max_pixels) continue;
            if (fit.num == 0 || sf[i].num * fit.denom > fit.num * sf[i].denom) fit = sf[i];
        }
        if (fit.num) {
            best = fit;
            sw = TJSCALED(w, best);
            sh = TJSCALED(h, best);
        }
    }
    if ((int64_t)sw * sh > lim->max_pixels || (scan.progressive && full > lim->max_pixels)) {
        tjDestroy(tj);
        return too_large(w, h, lim->max_pixels,
                         !may_scale ? ""
                         : scan.progressive
                             ? " (progressive JPEG: DCT scaling does not bound its memory)"
                             : " even at 1/8 DCT scale");
    }

    uint8_t *pix = malloc((size_t)sw * (size_t)sh * 3);
    if (!pix) {
        tjDestroy(tj);
        return fp_fail(FP_ERR_NOMEM, "JPEG: cannot allocate %dx%d pixels", sw, sh);
    }
    /* On request, full-size YCbCr/gray: the reference decoder's exact pixels (jpegjs.c). Anything
     * jpeg-js would not decode that way, every DCT-scaled decode (the reference never scales) and
     * the default fast path go through libjpeg-turbo's own conversion. */
    fp_status st = FP_ERR_UNSUPPORTED;
    if (lim->exact_jpeg && (cs == TJCS_YCbCr || cs == TJCS_GRAY) && best.num == best.denom)
        st = fp_jpeg_decode_jpegjs(data, len, sw, sh, pix);
    if (st == FP_ERR_UNSUPPORTED) st = jpeg_decode_rgb(tj, data, len, sw, sh, pix);
    tjDestroy(tj);
    if (st != FP_OK) {
        free(pix);
        return st;
    }

    if (scan.orientation != 1) {
        int ow = 0, oh = 0;
        uint8_t *rot = apply_orientation(pix, sw, sh, scan.orientation, &ow, &oh);
        free(pix);
        if (!rot) return fp_fail(FP_ERR_NOMEM, "JPEG: cannot allocate %dx%d pixels", sw, sh);
        pix = rot;
        sw = ow;
        sh = oh;
    }
    out->width = sw;
    out->height = sh;
    out->rgb = pix;
    return FP_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* PNG                                                                                         */
/* ------------------------------------------------------------------------------------------ */

/* Decoder state lives in the caller of the function that calls setjmp, so nothing a longjmp
 * skips over is an automatic variable of that function (no volatile needed). */
typedef struct png_ctx {
    const uint8_t *data;
    size_t len, pos;
    const fp_image_limits *lim;
    png_structp png;
    png_infop info;
    uint8_t *pix;
    png_bytep *rows;
    png_uint_32 w, h;
    fp_status st; /* set before a deliberate png_error; FP_OK means "libpng complained" */
    char msg[200];
} png_ctx;

static void png_read_mem(png_structp png, png_bytep dst, png_size_t n) {
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->len - c->pos) png_error(png, "truncated PNG");
    memcpy(dst, c->data + c->pos, n);
    c->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg) {
    char *dst = png_get_error_ptr(png);
    if (dst) snprintf(dst, 200, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* benign (bad ancillary chunk CRC, ...): the image itself is intact */
}

/* Returns 0 on success, 1 after a libpng error (c->st / c->msg say why). */
static int png_read_all(png_ctx *c) {
    png_structp png = c->png;
    png_infop info = c->info;
    if (setjmp(png_jmpbuf(png))) return 1;
    png_set_read_fn(png, c, png_read_mem);
    png_read_info(png, info);
    int depth = 0, color = 0;
    png_get_IHDR(png, info, &c->w, &c->h, &depth, &color, NULL, NULL, NULL);
    if ((uint64_t)c->w * c->h > (uint64_t)c->lim->max_pixels) {
        c->st = too_large(c->w, c->h, c->lim->max_pixels, "");
        png_error(png, "too large");
    }
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_scale_16(png);
    if (color & PNG_COLOR_MASK_ALPHA || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
    if (!(color & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8 ||
        png_get_rowbytes(png, info) != (size_t)c->w * 3) {
        c->st = fp_fail(FP_ERR_INTERNAL, "PNG: unexpected layout after conversion (type %d, depth %d)",
                        color, depth);
        png_error(png, "layout");
    }
    c->pix = malloc((size_t)c->w * c->h * 3);
    c->rows = malloc(sizeof(png_bytep) * c->h);
    if (!c->pix || !c->rows) {
        c->st = fp_fail(FP_ERR_NOMEM, "PNG: cannot allocate %ux%u pixels", (unsigned)c->w, (unsigned)c->h);
        png_error(png, "nomem");
    }
    for (png_uint_32 y = 0; y < c->h; y++) c->rows[y] = c->pix + (size_t)y * c->w * 3;
    png_read_image(png, c->rows);
    png_read_end(png, NULL); /* checks the chunks after IDAT up to IEND: truncation shows here */
    return 0;
}

static fp_status decode_png(const uint8_t *data, size_t len, const fp_image_limits *lim,
                            fp_image *out) {
    /* IHDR must come first: refuse an oversized image from its header alone, even when the file
     * is cut right after it (libpng would only get to the size after the following chunks). */
    if (len >= 24 && memcmp(data + 12, "IHDR", 4) == 0) {
        const uint64_t w = rd32(data + 16, 0), h = rd32(data + 20, 0);
        if (w * h > (uint64_t)lim->max_pixels) return too_large(w, h, lim->max_pixels, "");
    }
    png_ctx c;
    memset(&c, 0, sizeof c);
    c.data = data;
    c.len = len;
    c.lim = lim;
    c.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c.msg, png_on_error, png_on_warning);
    c.info = c.png ? png_create_info_struct(c.png) : NULL;
    if (!c.png || !c.info) {
        png_destroy_read_struct(&c.png, NULL, NULL);
        return fp_fail(FP_ERR_NOMEM, "PNG: cannot create a decoder");
    }
    png_set_user_limits(c.png, PNG_UINT_31_MAX, PNG_UINT_31_MAX); /* our pixel limit decides */
    const int failed = png_read_all(&c);
    png_destroy_read_struct(&c.png, &c.info, NULL);
    free(c.rows);
    if (failed) {
        free(c.pix);
        if (c.st != FP_OK) return c.st;
        return fp_fail(FP_ERR_FORMAT, "PNG: %s", c.msg[0] ? c.msg : "corrupt data");
    }
    out->width = (int)c.w;
    out->height = (int)c.h;
    out->rgb = c.pix;
    return FP_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* PGM / PPM                                                                                   */
/* ------------------------------------------------------------------------------------------ */

typedef struct pnm_reader {
    const uint8_t *d;
    size_t n, pos;
} pnm_reader;

static int pnm_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Skips whitespace and (when allowed) '#' comments; reads a decimal number <= max.
 * Returns 0 on success, -1 on truncation or a non-number, -2 when above max. */
static int pnm_number(pnm_reader *r, uint32_t max, uint32_t *v) {
    for (;;) {
        while (r->pos < r->n && pnm_space(r->d[r->pos])) r->pos++;
        if (r->pos < r->n && r->d[r->pos] == '#') {
            while (r->pos < r->n && r->d[r->pos] != '\n' && r->d[r->pos] != '\r') r->pos++;
            continue;
        }
        break;
    }
    if (r->pos >= r->n || r->d[r->pos] < '0' || r->d[r->pos] > '9') return -1;
    uint64_t x = 0;
    while (r->pos < r->n && r->d[r->pos] >= '0' && r->d[r->pos] <= '9') {
        x = x * 10 + (uint64_t)(r->d[r->pos++] - '0');
        if (x > max) return -2;
    }
    /* a number must end at whitespace, a comment or the end of the data */
    if (r->pos < r->n && !pnm_space(r->d[r->pos]) && r->d[r->pos] != '#') return -1;
    *v = (uint32_t)x;
    return 0;
}

static fp_status decode_pnm(const uint8_t *data, size_t len, const fp_image_limits *lim,
                            fp_image *out) {
    const char kind = (char)data[1];
    const int ascii = kind == '2' || kind == '3';
    const int ch = kind == '3' || kind == '6' ? 3 : 1;
    pnm_reader r = {data, len, 2};
    uint32_t w = 0, h = 0, maxval = 0;
    int e;
    if ((e = pnm_number(&r, 1000000000u, &w)) || (e = pnm_number(&r, 1000000000u, &h)) ||
        (e = pnm_number(&r, 65535u, &maxval)))
        return fp_fail(FP_ERR_FORMAT, e == -2 ? "PNM: header value out of range" : "PNM: truncated or malformed header");
    if (w == 0 || h == 0 || maxval == 0)
        return fp_fail(FP_ERR_FORMAT, "PNM: bad header (%ux%u, maxval %u)", (unsigned)w, (unsigned)h, (unsigned)maxval);
    if ((uint64_t)w * h > (uint64_t)lim->max_pixels) return too_large(w, h, lim->max_pixels, "");
    const uint64_t samples = (uint64_t)w * h * (uint64_t)ch;
    const size_t bps = maxval > 255 ? 2 : 1;
    if (!ascii) {
        if (r.pos >= len || !pnm_space(data[r.pos]))
            return fp_fail(FP_ERR_FORMAT, "PNM: missing whitespace after the header");
        r.pos++; /* exactly one whitespace byte separates header and raster */
        if ((uint64_t)(len - r.pos) / bps < samples)
            return fp_fail(FP_ERR_FORMAT, "PNM: truncated raster (%zu bytes, %llu needed)", len - r.pos,
                           (unsigned long long)(samples * bps));
    } else if ((uint64_t)(len - r.pos) < samples) {
        /* every ASCII sample takes at least one byte: fail before allocating */
        return fp_fail(FP_ERR_FORMAT, "PNM: truncated raster");
    }
    uint8_t *pix = malloc((size_t)w * h * 3);
    if (!pix) return fp_fail(FP_ERR_NOMEM, "PNM: cannot allocate %ux%u pixels", (unsigned)w, (unsigned)h);
    const uint32_t half = maxval / 2;
    for (uint64_t i = 0; i < samples; i++) {
        uint32_t v;
        if (ascii) {
            e = pnm_number(&r, maxval, &v);
            if (e) {
                free(pix);
                return fp_fail(FP_ERR_FORMAT, e == -2 ? "PNM: sample above maxval %u" : "PNM: truncated or malformed raster",
                               (unsigned)maxval);
            }
        } else {
            const uint8_t *p = data + r.pos + i * bps;
            v = bps == 2 ? (uint32_t)p[0] << 8 | p[1] : p[0];
            if (v > maxval) {
                free(pix);
                return fp_fail(FP_ERR_FORMAT, "PNM: sample %u above maxval %u", (unsigned)v, (unsigned)maxval);
            }
        }
        const uint8_t b = (uint8_t)(maxval == 255 ? v : (v * 255 + half) / maxval);
        if (ch == 3) pix[i] = b;
        else pix[3 * i] = pix[3 * i + 1] = pix[3 * i + 2] = b;
    }
    out->width = (int)w;
    out->height = (int)h;
    out->rgb = pix;
    return FP_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Entry points                                                                                */
/* ------------------------------------------------------------------------------------------ */

static fp_status check_limits(const fp_image_limits *lim) {
    if (lim->max_pixels <= 0 || lim->max_file_bytes == 0 || lim->target_max_side < 0)
        return fp_fail(FP_ERR_INVALID_ARG, "image limits: max_pixels and max_file_bytes must be > 0, "
                                           "target_max_side >= 0 (use fp_image_limits_default())");
    return FP_OK;
}

fp_status fp_image_decode(const void *data, size_t len, const fp_image_limits *limits, fp_image *out) {
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "fp_image_decode: NULL output");
    out->width = out->height = 0;
    out->rgb = NULL;
    if (!data && len) return fp_fail(FP_ERR_INVALID_ARG, "fp_image_decode: NULL data");
    const fp_image_limits lim = limits ? *limits : fp_image_limits_default();
    fp_status st = check_limits(&lim);
    if (st != FP_OK) return st;
    if (len > lim.max_file_bytes)
        return fp_fail(FP_ERR_TOO_LARGE, "image file of %zu bytes exceeds the %zu byte limit", len, lim.max_file_bytes);
    const uint8_t *d = data;
    if (len == 0) return fp_fail(FP_ERR_FORMAT, "empty image data");
    if (len >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return decode_jpeg(d, len, &lim, out);
    if (len >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) return decode_png(d, len, &lim, out);
    if (len >= 2 && d[0] == 'P' && (d[1] == '2' || d[1] == '3' || d[1] == '5' || d[1] == '6'))
        return decode_pnm(d, len, &lim, out);
    if (len >= 2 && d[0] == 'P' && (d[1] == '1' || d[1] == '4' || d[1] == '7'))
        return fp_fail(FP_ERR_UNSUPPORTED, "PBM bitmaps and PAM images are not supported");
    return fp_fail(FP_ERR_FORMAT, "unrecognised image format (not JPEG, PNG, PGM or PPM)");
}

fp_status fp_image_load(const char *path, const fp_image_limits *limits, fp_image *out) {
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "fp_image_load: NULL output");
    out->width = out->height = 0;
    out->rgb = NULL;
    if (!path) return fp_fail(FP_ERR_INVALID_ARG, "fp_image_load: NULL path");
    const fp_image_limits lim = limits ? *limits : fp_image_limits_default();
    fp_status st = check_limits(&lim);
    if (st != FP_OK) return st;
    uint8_t *buf = NULL;
    size_t len = 0;
    st = fp_read_file(path, lim.max_file_bytes, &buf, &len);
    if (st != FP_OK) return st;
    st = fp_image_decode(buf, len, &lim, out);
    free(buf);
    if (st != FP_OK) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", fp_last_error());
        return fp_fail(st, "%s: %s", path, msg);
    }
    return FP_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Raw frames                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static uint8_t clamp_u8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

fp_status fp_image_from_raw(const void *data, int width, int height, int stride,
                            fp_pixel_format format, fp_image *out) {
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "fp_image_from_raw: NULL output");
    out->width = out->height = 0;
    out->rgb = NULL;
    if (!data) return fp_fail(FP_ERR_INVALID_ARG, "fp_image_from_raw: NULL data");
    int bpp;
    switch (format) {
    case FP_PIXEL_RGB24:
    case FP_PIXEL_BGR24: bpp = 3; break;
    case FP_PIXEL_GRAY8:
    case FP_PIXEL_NV12: bpp = 1; break;
    default: return fp_fail(FP_ERR_INVALID_ARG, "fp_image_from_raw: unknown pixel format %d", (int)format);
    }
    if (width <= 0 || height <= 0 || (int64_t)stride < (int64_t)width * bpp)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_image_from_raw: bad geometry %dx%d, stride %d", width, height, stride);
    /* NV12 rows hold ceil(w/2) UV pairs, i.e. 2*ceil(w/2) bytes: more than w for odd widths */
    if (format == FP_PIXEL_NV12 && (int64_t)stride < ((int64_t)width + 1) / 2 * 2)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_image_from_raw: NV12 stride %d too small for width %d", stride, width);
    fp_status st = fp_image_new(width, height, out);
    if (st != FP_OK) return st;
    const uint8_t *src = data;
    for (int y = 0; y < height; y++) {
        const uint8_t *s = src + (size_t)y * (size_t)stride;
        uint8_t *d = out->rgb + (size_t)y * width * 3;
        switch (format) {
        case FP_PIXEL_RGB24: memcpy(d, s, (size_t)width * 3); break;
        case FP_PIXEL_BGR24:
            for (int x = 0; x < width; x++) {
                d[3 * x] = s[3 * x + 2];
                d[3 * x + 1] = s[3 * x + 1];
                d[3 * x + 2] = s[3 * x];
            }
            break;
        case FP_PIXEL_GRAY8:
            for (int x = 0; x < width; x++) d[3 * x] = d[3 * x + 1] = d[3 * x + 2] = s[x];
            break;
        case FP_PIXEL_NV12: {
            /* BT.601 full range (JFIF): R = Y + 1.402 V', G = Y - 0.344136 U' - 0.714136 V',
             * B = Y + 1.772 U' with U' = U - 128, V' = V - 128; 16.16 fixed point, rounded. */
            const uint8_t *uv = src + (size_t)height * stride + (size_t)(y / 2) * stride;
            for (int x = 0; x < width; x++) {
                const int Y = s[x] << 16, U = uv[(x / 2) * 2] - 128, V = uv[(x / 2) * 2 + 1] - 128;
                d[3 * x] = clamp_u8((Y + 91881 * V + 32768) >> 16);
                d[3 * x + 1] = clamp_u8((Y - 22554 * U - 46802 * V + 32768) >> 16);
                d[3 * x + 2] = clamp_u8((Y + 116130 * U + 32768) >> 16);
            }
            break;
        }
        }
    }
    return FP_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* PNG output                                                                                  */
/* ------------------------------------------------------------------------------------------ */

typedef struct png_wctx {
    const fp_image *img;
    FILE *f;
    png_structp png;
    png_infop info;
    char msg[200];
} png_wctx;

static int png_write_all(png_wctx *c) {
    if (setjmp(png_jmpbuf(c->png))) return 1;
    png_init_io(c->png, c->f);
    png_set_IHDR(c->png, c->info, (png_uint_32)c->img->width, (png_uint_32)c->img->height, 8,
                 PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(c->png, c->info);
    for (int y = 0; y < c->img->height; y++)
        png_write_row(c->png, c->img->rgb + (size_t)y * c->img->width * 3);
    png_write_end(c->png, NULL);
    return 0;
}

fp_status fp_image_write_png(const fp_image *img, const char *path) {
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0 || !path)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_image_write_png: empty image or NULL path");
    png_wctx c;
    memset(&c, 0, sizeof c);
    c.img = img;
    c.f = fopen(path, "wb");
    if (!c.f) return fp_fail(FP_ERR_IO, "%s: %s", path, strerror(errno));
    c.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, c.msg, png_on_error, png_on_warning);
    c.info = c.png ? png_create_info_struct(c.png) : NULL;
    if (!c.png || !c.info) {
        png_destroy_write_struct(&c.png, NULL);
        fclose(c.f);
        remove(path);
        return fp_fail(FP_ERR_NOMEM, "%s: cannot create a PNG encoder", path);
    }
    const int failed = png_write_all(&c);
    png_destroy_write_struct(&c.png, &c.info);
    const int close_err = fclose(c.f) != 0;
    if (failed || close_err) {
        const int err = errno;
        remove(path);
        return fp_fail(FP_ERR_IO, "%s: cannot write PNG: %s", path, failed ? c.msg : strerror(err));
    }
    return FP_OK;
}
