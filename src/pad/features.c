/*
 * features.c - what the presentation-attack detector measures on one analysed face. A recipe (bits
 * FP_PAD_FEAT_*) selects blocks that are concatenated in this order:
 *
 *  LBP_FACE     uniform LBP(8,1) histograms (59 bins) of the selected channels (FP_PAD_FEAT_CH_*:
 *               Y, Cb, Cr, H, S, V) over the aligned 112x112 crop. Colour texture (Boulkenafet et
 *               al., ICIP 2015 / TIFS 2016): a print re-samples the face through ink and paper, which
 *               changes the micro-texture of the chroma in ways the luma alone hides.
 *  LBP_CONTEXT  the same over a box crop twice the face size, resampled to 128x128 (area
 *               averaging): includes the photo's border, the fingers holding it and the background.
 *  LBP_NATIVE   the same over a 96x96 patch at the face centre in *source* pixels, no resampling:
 *               halftone dots and paper grain live at the camera's pixel scale, which any resize
 *               blurs away.
 *  LBP_R2       adds LBP(8,2) (circular, bilinear) next to every LBP(8,1) histogram above.
 *  COLOUR       mean, standard deviation and skewness of all six channels over the aligned crop
 *               (prints have a smaller gamut, lifted blacks and a different saturation distribution).
 *  SPECTRUM     radial power spectrum (16 log bands, Hann window, total power removed) of the
 *               aligned-crop luma and of the native-resolution luma: a recaptured print is blurred
 *               (less high-frequency energy) and halftone or screen moire adds peaks.
 *  DESCRIPTOR   the faceres 1024-d descriptor, L2-normalised (needs fp_face.has_descriptor).
 *
 * Inside an LBP block the histograms go channel by channel (Y, Cb, Cr, H, S, V), radius 1 then 2.
 * Histograms are L1-normalised then square-rooted (Hellinger map) so that a linear model on them
 * behaves like a Bhattacharyya kernel, the usual remedy for comparing histograms with dot products.
 * Everything is computed in fixed order with integer histograms, so a face gives the same features
 * on every run (training reproducibility depends on it).
 *
 * The default recipe (saturation LBP of the aligned crop and of the native patch, plus the colour
 * moments) was chosen by measurement on NUAA (train split, 581 live / 583 print, logistic): EER with
 * subject-disjoint 5-fold CV / training on one capture session and testing on the other:
 *   six-channel LBP, face         1.03 % / 23.2 %     grey LBP, face        12.1 % / 34.9 %
 *   six-channel LBP + colour + spectrum   0.23 % / 20.1 %     colour moments only  0.63 % / 5.7 %
 *   default (S-LBP face + native + colour moments)    0.29 % / 1.0 %
 * All six channels score best when training and test share the capture conditions, but their hue
 * and chroma texture does not survive a change of illumination, where saturation texture and the
 * colour moments hold up.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "pad/pad.h"

#define LBP_BINS 59
#define N_CH 6
#define FACE_SIDE 112
#define CONTEXT_SIDE 128
#define CONTEXT_SCALE 2.0
#define NATIVE_SIDE 96
#define SPEC_N 64
#define SPEC_BANDS 16

static int lbp_blocks(uint32_t recipe) {
    return !!(recipe & FP_PAD_FEAT_LBP_FACE) + !!(recipe & FP_PAD_FEAT_LBP_CONTEXT) +
           !!(recipe & FP_PAD_FEAT_LBP_NATIVE);
}

static int lbp_channels(uint32_t recipe) {
    int n = 0;
    for (int c = 0; c < N_CH; c++) n += !!(recipe & (FP_PAD_FEAT_CH_Y << c));
    return n;
}

int pad_feature_dim(uint32_t recipe) {
    if (recipe == 0 || (recipe & ~(uint32_t)FP_PAD_FEAT_ALL)) return 0;
    /* LBP blocks need channels and channels (or the radius-2 modifier) need a block */
    if (!lbp_blocks(recipe) != !lbp_channels(recipe)) return 0;
    if ((recipe & FP_PAD_FEAT_LBP_R2) && !lbp_blocks(recipe)) return 0;
    int d = lbp_blocks(recipe) * lbp_channels(recipe) * LBP_BINS * ((recipe & FP_PAD_FEAT_LBP_R2) ? 2 : 1);
    if (recipe & FP_PAD_FEAT_COLOUR) d += N_CH * 3;
    if (recipe & FP_PAD_FEAT_SPECTRUM) d += 2 * SPEC_BANDS;
    if (recipe & FP_PAD_FEAT_DESCRIPTOR) d += FP_DESCRIPTOR_DIM;
    return d;
}

int fp_pad_feature_dim(uint32_t recipe) { return pad_feature_dim(recipe); }

/* ---- uniform-pattern table: the 58 codes with at most two 0/1 transitions get bins 0..57 ---- */
static uint8_t uniform_bin[256];
static pthread_once_t uniform_once = PTHREAD_ONCE_INIT;

static void uniform_build(void) {
    int next = 0;
    for (int c = 0; c < 256; c++) {
        int t = 0;
        for (int k = 0; k < 8; k++) t += ((c >> k) & 1) != ((c >> ((k + 1) & 7)) & 1);
        uniform_bin[c] = (uint8_t)(t <= 2 ? next++ : LBP_BINS - 1);
    }
}

/* ---- colour planes ---- */
/* JPEG (full-range BT.601) YCbCr and 8-bit HSV (H scaled to 0..255) of an RGB image, as 6 planes. */
static void to_planes(const fp_image *im, uint8_t *planes) {
    const int n = im->width * im->height;
    for (int i = 0; i < n; i++) {
        const int r = im->rgb[3 * i], g = im->rgb[3 * i + 1], b = im->rgb[3 * i + 2];
        const double y = 0.299 * r + 0.587 * g + 0.114 * b;
        const double cb = 128.0 - 0.168736 * r - 0.331264 * g + 0.5 * b;
        const double cr = 128.0 + 0.5 * r - 0.418688 * g - 0.081312 * b;
        const int mx = r > g ? (r > b ? r : b) : (g > b ? g : b);
        const int mn = r < g ? (r < b ? r : b) : (g < b ? g : b);
        const int d = mx - mn;
        double h = 0;
        if (d > 0) {
            if (mx == r) h = (double)(g - b) / d;
            else if (mx == g) h = 2.0 + (double)(b - r) / d;
            else h = 4.0 + (double)(r - g) / d;
            if (h < 0) h += 6.0;
        }
        const double s = mx > 0 ? 255.0 * d / mx : 0.0;
        planes[0 * n + i] = (uint8_t)(y + 0.5);
        planes[1 * n + i] = (uint8_t)(cb < 0 ? 0 : cb > 255 ? 255 : cb + 0.5);
        planes[2 * n + i] = (uint8_t)(cr < 0 ? 0 : cr > 255 ? 255 : cr + 0.5);
        planes[3 * n + i] = (uint8_t)((int)(h * 255.0 / 6.0 + 0.5) & 255); /* 6.0 wraps to 0 */
        planes[4 * n + i] = (uint8_t)(s + 0.5);
        planes[5 * n + i] = (uint8_t)mx;
    }
}

/* Uniform LBP histogram of one plane, L1-normalised and square-rooted into out[LBP_BINS].
 * radius 1: the 8 neighbours; radius 2: 8 points on a circle, bilinear (OpenCV/skimage style). */
static void lbp_hist(const uint8_t *p, int w, int h, int radius, float *out) {
    int64_t hist[LBP_BINS] = {0};
    int64_t total = 0;
    if (radius == 1) {
        for (int y = 1; y < h - 1; y++)
            for (int x = 1; x < w - 1; x++) {
                const uint8_t *c = p + (size_t)y * w + x;
                const int v = *c;
                const int code = (c[-w - 1] >= v) | (c[-w] >= v) << 1 | (c[-w + 1] >= v) << 2 |
                                 (c[1] >= v) << 3 | (c[w + 1] >= v) << 4 | (c[w] >= v) << 5 |
                                 (c[w - 1] >= v) << 6 | (c[-1] >= v) << 7;
                hist[uniform_bin[code]]++;
                total++;
            }
    } else {
        /* sample k at angle 2 pi k / 8: offsets (dx, dy), bilinear weights on the 4 pixels around */
        int ox[8], oy[8];
        float wt[8][4];
        for (int k = 0; k < 8; k++) {
            const double a = 6.283185307179586 * k / 8.0;
            const double dx = radius * cos(a), dy = -radius * sin(a);
            const double fx = floor(dx + 1e-9), fy = floor(dy + 1e-9);
            const double tx = dx - fx, ty = dy - fy;
            ox[k] = (int)fx;
            oy[k] = (int)fy;
            /* snap weights of on-grid points exactly (cos(pi/2) is 6e-17, not 0) */
            const double ax = tx < 1e-6 ? 0 : tx, ay = ty < 1e-6 ? 0 : ty;
            wt[k][0] = (float)((1 - ax) * (1 - ay));
            wt[k][1] = (float)(ax * (1 - ay));
            wt[k][2] = (float)((1 - ax) * ay);
            wt[k][3] = (float)(ax * ay);
        }
        const int r = radius + 1;
        for (int y = r; y < h - r; y++)
            for (int x = r; x < w - r; x++) {
                const int v = p[(size_t)y * w + x];
                int code = 0;
                for (int k = 0; k < 8; k++) {
                    const uint8_t *q = p + (size_t)(y + oy[k]) * w + (x + ox[k]);
                    const float s = wt[k][0] * q[0] + wt[k][1] * q[1] + wt[k][2] * q[w] + wt[k][3] * q[w + 1];
                    /* the small epsilon as in skimage: a sample equal to the centre counts as >= */
                    code |= (s + 1e-4f >= (float)v) << k;
                }
                hist[uniform_bin[code]]++;
                total++;
            }
    }
    for (int b = 0; b < LBP_BINS; b++) out[b] = total ? (float)sqrt((double)hist[b] / (double)total) : 0.0f;
}

/* LBP histograms of the recipe's channels of an RGB crop; returns floats written. */
static int lbp_block(const fp_image *im, uint8_t *planes, uint32_t recipe, float *out) {
    to_planes(im, planes);
    const int n = im->width * im->height;
    int k = 0;
    for (int c = 0; c < N_CH; c++) {
        if (!(recipe & (FP_PAD_FEAT_CH_Y << c))) continue;
        lbp_hist(planes + (size_t)c * n, im->width, im->height, 1, out + k);
        k += LBP_BINS;
        if (recipe & FP_PAD_FEAT_LBP_R2) {
            lbp_hist(planes + (size_t)c * n, im->width, im->height, 2, out + k);
            k += LBP_BINS;
        }
    }
    return k;
}

/* Axis-aligned square of side `side` source pixels centred on (cx, cy), borders replicated (a face
 * near the frame edge still gets a full crop), box-filtered down to out_side x out_side: each output
 * pixel averages up to 8 x 8 evenly spread source pixels of its cell, so fine texture averages
 * instead of aliasing, and the cost stays bounded whatever the face size (the full-size crop is
 * never materialised). With side == out_side it is a plain copy of the pixels. */
static fp_status square_crop(const fp_image *img, double cx, double cy, double side, int out_side, fp_image *out) {
    out->width = out->height = out_side;
    out->rgb = malloc((size_t)out_side * out_side * 3);
    if (!out->rgb) return fp_fail(FP_ERR_NOMEM, "pad: out of memory (crop %d px)", out_side);
    if (side == out_side) { /* native resolution: the pixels themselves */
        const int ix = (int)floor(cx - side / 2.0), iy = (int)floor(cy - side / 2.0);
        for (int y = 0; y < out_side; y++) {
            int sy = iy + y;
            sy = sy < 0 ? 0 : sy >= img->height ? img->height - 1 : sy;
            for (int x = 0; x < out_side; x++) {
                int sx = ix + x;
                sx = sx < 0 ? 0 : sx >= img->width ? img->width - 1 : sx;
                memcpy(out->rgb + ((size_t)y * out_side + x) * 3, img->rgb + ((size_t)sy * img->width + sx) * 3, 3);
            }
        }
        return FP_OK;
    }
    if (side < 1) side = 1;
    const double x0 = cx - side / 2.0, y0 = cy - side / 2.0, cell = side / out_side;
    int taps = (int)ceil(cell - 1e-9);
    taps = taps < 1 ? 1 : taps > 8 ? 8 : taps;
    for (int v = 0; v < out_side; v++)
        for (int u = 0; u < out_side; u++) {
            int acc[3] = {0, 0, 0};
            for (int j = 0; j < taps; j++) {
                int sy = (int)floor(y0 + (v + (j + 0.5) / taps) * cell);
                sy = sy < 0 ? 0 : sy >= img->height ? img->height - 1 : sy;
                for (int i = 0; i < taps; i++) {
                    int sx = (int)floor(x0 + (u + (i + 0.5) / taps) * cell);
                    sx = sx < 0 ? 0 : sx >= img->width ? img->width - 1 : sx;
                    const uint8_t *p = img->rgb + ((size_t)sy * img->width + sx) * 3;
                    acc[0] += p[0];
                    acc[1] += p[1];
                    acc[2] += p[2];
                }
            }
            const int n = taps * taps;
            uint8_t *d = out->rgb + ((size_t)v * out_side + u) * 3;
            for (int c = 0; c < 3; c++) d[c] = (uint8_t)((acc[c] + n / 2) / n);
        }
    return FP_OK;
}

/* Mean, standard deviation and skewness of each plane (values scaled to 0..1). */
static void colour_moments(const uint8_t *planes, int n, float *out) {
    for (int c = 0; c < N_CH; c++) {
        const uint8_t *p = planes + (size_t)c * n;
        double s = 0;
        for (int i = 0; i < n; i++) s += p[i];
        const double mean = s / n;
        double m2 = 0, m3 = 0;
        for (int i = 0; i < n; i++) {
            const double d = p[i] - mean;
            m2 += d * d;
            m3 += d * d * d;
        }
        m2 /= n;
        m3 /= n;
        const double sd = sqrt(m2);
        out[3 * c] = (float)(mean / 255.0);
        out[3 * c + 1] = (float)(sd / 255.0);
        out[3 * c + 2] = (float)(sd > 1e-6 ? m3 / (sd * sd * sd) : 0.0);
    }
}

/* Radial power spectrum of a SPEC_N x SPEC_N luma patch (row-major doubles): Hann window, mean
 * removed, separable DFT, power averaged over SPEC_BANDS rings of the frequency radius, as log10 of
 * each band's share of the total power (so exposure and contrast cancel out). */
static void radial_spectrum(const double *patch, double *scratch, float *out) {
    double cs[SPEC_N], sn[SPEC_N], hann[SPEC_N]; /* 3 x 64 libm calls: cheaper than sharing a table */
    for (int k = 0; k < SPEC_N; k++) {
        cs[k] = cos(6.283185307179586 * k / SPEC_N);
        sn[k] = sin(6.283185307179586 * k / SPEC_N);
        hann[k] = 0.5 - 0.5 * cos(6.283185307179586 * (k + 0.5) / SPEC_N);
    }
    const int H = SPEC_N / 2 + 1;
    double *x = scratch, *re = x + SPEC_N * SPEC_N, *im = re + SPEC_N * H;
    double mean = 0;
    for (int i = 0; i < SPEC_N * SPEC_N; i++) mean += patch[i];
    mean /= SPEC_N * SPEC_N;
    for (int y = 0; y < SPEC_N; y++)
        for (int xx = 0; xx < SPEC_N; xx++) x[y * SPEC_N + xx] = (patch[y * SPEC_N + xx] - mean) * hann[y] * hann[xx];
    /* rows: only the non-negative horizontal frequencies 0..N/2 (the input is real) */
    for (int y = 0; y < SPEC_N; y++)
        for (int u = 0; u < H; u++) {
            double a = 0, b = 0;
            for (int xx = 0; xx < SPEC_N; xx++) {
                const int k = (u * xx) % SPEC_N;
                a += x[y * SPEC_N + xx] * cs[k];
                b -= x[y * SPEC_N + xx] * sn[k];
            }
            re[y * H + u] = a;
            im[y * H + u] = b;
        }
    double band[SPEC_BANDS] = {0}, total = 0;
    int count[SPEC_BANDS] = {0};
    for (int v = 0; v < SPEC_N; v++)
        for (int u = 0; u < H; u++) {
            double a = 0, b = 0;
            for (int y = 0; y < SPEC_N; y++) {
                const int k = (v * y) % SPEC_N;
                const double r = re[y * H + u], i = im[y * H + u];
                a += r * cs[k] + i * sn[k];
                b += i * cs[k] - r * sn[k];
            }
            const int fv = v <= SPEC_N / 2 ? v : v - SPEC_N;
            const double rad = sqrt((double)u * u + (double)fv * fv) / (SPEC_N / 2); /* 0..1.41 */
            if (rad <= 0 || rad > 1) continue; /* DC (removed) and the corners beyond Nyquist */
            int bi = (int)(rad * SPEC_BANDS);
            if (bi >= SPEC_BANDS) bi = SPEC_BANDS - 1;
            const double pw = a * a + b * b;
            band[bi] += pw;
            count[bi]++;
            total += pw;
        }
    for (int b = 0; b < SPEC_BANDS; b++) {
        const double mean_b = count[b] ? band[b] / count[b] : 0;
        out[b] = (float)log10((mean_b + 1e-12) / (total + 1e-12));
    }
}

static void luma_patch(const fp_image *im, int x0, int y0, double *patch) {
    for (int y = 0; y < SPEC_N; y++)
        for (int x = 0; x < SPEC_N; x++) {
            int sy = y0 + y, sx = x0 + x;
            sy = sy < 0 ? 0 : sy >= im->height ? im->height - 1 : sy;
            sx = sx < 0 ? 0 : sx >= im->width ? im->width - 1 : sx;
            const uint8_t *p = im->rgb + ((size_t)sy * im->width + sx) * 3;
            patch[y * SPEC_N + x] = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        }
}

static int finite_face(const fp_face *f) {
    for (int k = 0; k < 6; k++)
        if (!isfinite(f->align[k])) return 0;
    for (int k = 0; k < 4; k++)
        if (!isfinite(f->box[k])) return 0;
    return f->box[2] > 0 && f->box[3] > 0;
}

fp_status fp_pad_features(uint32_t recipe, const fp_image *img, const fp_face *face, float *out) {
    const int dim = pad_feature_dim(recipe);
    if (!dim) return fp_fail(FP_ERR_INVALID_ARG, "pad: unknown feature recipe 0x%x", (unsigned)recipe);
    if (!img || !img->rgb || img->width < 1 || img->height < 1 || !face || !out)
        return fp_fail(FP_ERR_INVALID_ARG, "pad: NULL or empty image, face or output");
    if (!finite_face(face)) return fp_fail(FP_ERR_INVALID_ARG, "pad: face geometry is not finite");
    if ((recipe & FP_PAD_FEAT_DESCRIPTOR) && !face->has_descriptor)
        return fp_fail(FP_ERR_INVALID_ARG, "pad: the recipe needs the faceres descriptor; analyse with attributes on");
    pthread_once(&uniform_once, uniform_build);
    fp_status st = FP_OK;
    fp_image aligned = {0, 0, NULL}, crop = {0, 0, NULL};
    uint8_t *planes = malloc((size_t)N_CH * CONTEXT_SIDE * CONTEXT_SIDE);
    if (!planes) return fp_fail(FP_ERR_NOMEM, "pad: out of memory");
    const int need_aligned = !!(recipe & (FP_PAD_FEAT_LBP_FACE | FP_PAD_FEAT_COLOUR | FP_PAD_FEAT_SPECTRUM));
    if (need_aligned && (st = fp_face_aligned_crop(img, face, &aligned)) != FP_OK) goto done;
    const double cx = face->box[0] + face->box[2] / 2.0, cy = face->box[1] + face->box[3] / 2.0;
    const double side = face->box[2] > face->box[3] ? face->box[2] : face->box[3];
    int k = 0;
    float moments[N_CH * 3];
    if (recipe & FP_PAD_FEAT_LBP_FACE) {
        k += lbp_block(&aligned, planes, recipe, out + k);
        /* the aligned crop's planes are at hand now: take the colour moments before they are reused */
        if (recipe & FP_PAD_FEAT_COLOUR) colour_moments(planes, FACE_SIDE * FACE_SIDE, moments);
    } else if (recipe & FP_PAD_FEAT_COLOUR) {
        to_planes(&aligned, planes);
        colour_moments(planes, FACE_SIDE * FACE_SIDE, moments);
    }
    if (recipe & FP_PAD_FEAT_LBP_CONTEXT) {
        const double s = side * CONTEXT_SCALE;
        if ((st = square_crop(img, cx, cy, s, CONTEXT_SIDE, &crop)) != FP_OK) goto done;
        k += lbp_block(&crop, planes, recipe, out + k);
        fp_image_release(&crop);
    }
    if (recipe & FP_PAD_FEAT_LBP_NATIVE) {
        if ((st = square_crop(img, cx, cy, NATIVE_SIDE, NATIVE_SIDE, &crop)) != FP_OK) goto done;
        k += lbp_block(&crop, planes, recipe, out + k);
        fp_image_release(&crop);
    }
    if (recipe & FP_PAD_FEAT_COLOUR) {
        memcpy(out + k, moments, sizeof moments);
        k += N_CH * 3;
    }
    if (recipe & FP_PAD_FEAT_SPECTRUM) {
        /* patch, then the DFT's scratch: x [N][N], re and im [N][N/2 + 1] */
        double *patch = malloc(sizeof(double) * (2 * SPEC_N * SPEC_N + 2 * SPEC_N * (SPEC_N / 2 + 1)));
        if (!patch) {
            st = fp_fail(FP_ERR_NOMEM, "pad: out of memory");
            goto done;
        }
        double *scratch = patch + SPEC_N * SPEC_N;
        /* the centre of the aligned crop (eyes to mouth), then the same area in source pixels */
        luma_patch(&aligned, (FACE_SIDE - SPEC_N) / 2, (FACE_SIDE - SPEC_N) / 2 + 4, patch);
        radial_spectrum(patch, scratch, out + k);
        k += SPEC_BANDS;
        luma_patch(img, (int)floor(cx) - SPEC_N / 2, (int)floor(cy) - SPEC_N / 2, patch);
        radial_spectrum(patch, scratch, out + k);
        k += SPEC_BANDS;
        free(patch);
    }
    if (recipe & FP_PAD_FEAT_DESCRIPTOR) {
        double n2 = 0;
        for (int i = 0; i < FP_DESCRIPTOR_DIM; i++) n2 += (double)face->descriptor[i] * face->descriptor[i];
        const double inv = n2 > 0 ? 1.0 / sqrt(n2) : 0.0;
        for (int i = 0; i < FP_DESCRIPTOR_DIM; i++) out[k + i] = (float)(face->descriptor[i] * inv);
        k += FP_DESCRIPTOR_DIM;
    }
    if (k != dim) st = fp_fail(FP_ERR_INTERNAL, "pad: wrote %d features, recipe has %d", k, dim);
    for (int i = 0; i < k && st == FP_OK; i++)
        if (!isfinite(out[i])) st = fp_fail(FP_ERR_INTERNAL, "pad: feature %d is not finite", i);
done:
    fp_image_release(&aligned);
    fp_image_release(&crop);
    free(planes);
    return st;
}
