/*
 * image.h - internal image helpers for the face pipeline: float sampling that reproduces the
 * reference's lib/imgproc.js bit for bit (rotated-rect crops, letterbox, OpenCV-style affine warp,
 * normalisation), plus uint8 helpers for thumbnails, aligned-crop output and --draw overlays.
 *
 * Numerics: the reference runs in JavaScript, i.e. every coordinate and weight is a double and every
 * intermediate image is a Float32Array. To get the same floats we compute in double and round to
 * float exactly where the JS stores into a Float32Array: once after bilinear sampling, once after
 * gray conversion (if any) and once after the mul/add normalisation. Normalisation constants are
 * doubles for the same reason: pass the very expressions the JS uses (1.0 / 127.5, -1.0 ...).
 */
#ifndef FP_IMAGE_H
#define FP_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "facepay.h"

/* A rotated rectangle in source pixels: centre, size, angle in radians (positive = clockwise on
 * screen, since the image y axis points down). Same as the reference's `rect`. */
typedef struct fp_rect {
    double cx, cy, w, h, angle;
} fp_rect;

/* What the sampler writes for each output pixel, after bilinear sampling in 0..255 space:
 *   3 channels (gray == 0): out[k] = sample[ch(k)] * mul[k] + add[k], ch(k) = k, or 2 - k if bgr
 *   1 channel  (gray != 0): g = 0.2989 R + 0.5870 G + 0.1140 B, out = g * mul[0] + add[0]
 * mul/add are indexed by *output* channel, so for the faceres caffe preprocessing (BGR minus
 * [103.939, 116.779, 123.68]) use bgr = 1, mul = 1, add = {-103.939, -116.779, -123.68}. */
typedef struct fp_norm {
    double mul[3];
    double add[3];
    int bgr;
    int gray;
} fp_norm;

/* Same mul/add for every channel, RGB order. The reference's presets:
 *   detector       fp_norm_uniform(1.0 / 127.5, -1.0)
 *   mesh/iris/...  fp_norm_uniform(1.0 / 255, 0.0)
 *   MobileFaceNet  fp_norm_uniform(1.0 / 128, -127.5 / 128)
 *   0..255         fp_norm_uniform(1.0, 0.0)        (add .bgr = 1 for mobileface)  */
fp_norm fp_norm_uniform(double mul, double add);

/* Number of floats per output pixel for this normalisation (1 or 3). NULL means identity RGB. */
int fp_norm_channels(const fp_norm *norm);

/* Border handling of bilinear taps outside the image (values chosen so 0/1 read as "border_zero"). */
typedef enum fp_border { FP_BORDER_REPLICATE = 0, FP_BORDER_ZERO = 1 } fp_border;

/* Generic warp, the reference's warpAffine: Minv = [a, b, tx, c, d, ty] maps OUTPUT pixel (u, v) to
 * the SOURCE point (a u + b v + tx, c u + d v + ty), sampled bilinearly (integer = pixel centre).
 * out holds out_w * out_h * fp_norm_channels(norm) floats, HWC. norm NULL = RGB 0..255. */
fp_status fp_warp_inverse(const fp_image *img, const double Minv[6], int out_w, int out_h,
                          fp_border border, const fp_norm *norm, float *out);

/* The output->source matrix of a rotated-rect crop (reference rectToMatrix; flip = mirror the
 * crop horizontally, as for the iris model's second eye). */
void fp_rect_to_matrix(const fp_rect *r, int out_w, int out_h, int flip, double Minv[6]);

/* MediaPipe-style rotated-rect crop (reference cropRect): output pixel centres are spread evenly
 * over the rect and the source is sampled at (x - 0.5, y - 0.5). */
fp_status fp_crop_rect(const fp_image *img, const fp_rect *r, int out_w, int out_h, int flip,
                       fp_border border, const fp_norm *norm, float *out);

/* Maps a point given in crop pixel units (continuous, 0..W, no half-pixel shift) of a W x H crop
 * of r back to source pixels (reference cropPointToImage). */
void fp_crop_point_to_image(const fp_rect *r, int W, int H, int flip, double px, double py,
                            double *x, double *y);

/* Letterbox mapping: scale = min(size/W, size/H), pad = (size - W*scale)/2. */
typedef struct fp_letterbox {
    int size;
    double scale, pad_x, pad_y;
} fp_letterbox;

/* Fills *lb for an image of w x h into size x size. */
void fp_letterbox_params(int w, int h, int size, fp_letterbox *lb);

/* Detector input: the whole image letterboxed into size x size, border zero (reference letterbox).
 * lb (may be NULL) receives the mapping. */
fp_status fp_letterbox_crop(const fp_image *img, int size, const fp_norm *norm, float *out,
                            fp_letterbox *lb);

/* Letterbox coordinates normalised to 0..1 -> source pixels: x = (nx * size - pad_x) / scale. */
void fp_letterbox_to_image(const fp_letterbox *lb, double nx, double ny, double *x, double *y);

/* Inverse of a 2x3 affine [a, b, tx, c, d, ty] the way the reference's align.js inverts it.
 * Returns 0 when the matrix is singular or not finite (inv untouched), 1 otherwise. */
int fp_invert_affine(const double M[6], double inv[6]);

/* OpenCV warpAffine convention: M maps SOURCE -> OUTPUT (e.g. the ArcFace similarity); output pixel
 * (u, v), integer, no half-pixel shift, samples the source at M^-1 (u, v), bilinear, border 0. */
fp_status fp_warp_affine(const fp_image *img, const double M[6], int out_w, int out_h,
                         const fp_norm *norm, float *out);

/* Same warp to an 8-bit RGB image (for saving aligned crops): each sample is rounded the way the
 * reference's encodeJpeg does (Math.round of the clamped float). *out must be released. */
fp_status fp_warp_affine_u8(const fp_image *img, const double M[6], int out_w, int out_h,
                            fp_image *out);

/* Allocates a w x h RGB image filled with zeros. */
fp_status fp_image_new(int w, int h, fp_image *out);

/* Resizes to w x h: bilinear (pixel-centre aligned, edges replicated); along an axis shrunk by more
 * than 2x it averages the covered source area instead, so thumbnails do not alias. */
fp_status fp_image_resize(const fp_image *img, int w, int h, fp_image *out);

/* Drawing for --draw output. Colours are 0xRRGGBB; everything is clipped to the image, and
 * non-finite coordinates draw nothing. thickness < 1 counts as 1. */
void fp_draw_line(fp_image *img, double x0, double y0, double x1, double y1, uint32_t color,
                  int thickness);
/* Axis-aligned outline between corners (x0, y0) and (x1, y1), inclusive. */
void fp_draw_rect(fp_image *img, double x0, double y0, double x1, double y1, uint32_t color,
                  int thickness);
/* Outline of a rotated rect (e.g. a face ROI). */
void fp_draw_rotated_rect(fp_image *img, const fp_rect *r, uint32_t color, int thickness);
/* Filled disc of the given radius centred on (cx, cy) (a landmark dot). */
void fp_draw_circle(fp_image *img, double cx, double cy, double radius, uint32_t color);

/* Decoder-internal (jpegjs.c, used by decode.c): decodes a full-size YCbCr or gray JPEG of
 * w x h into rgb with exactly jpeg-js 0.4.4's pixels. FP_ERR_UNSUPPORTED (no message) means
 * "not a file jpeg-js would decode this way, use libjpeg's own conversion". */
fp_status fp_jpeg_decode_jpegjs(const uint8_t *data, size_t len, int w, int h, uint8_t *rgb);

#endif /* FP_IMAGE_H */
