/*
 * encode.c - JPEG encoding (libturbojpeg) for thumbnails, evidence crops and benchmark inputs.
 */
#include <stdlib.h>
#include <string.h>

#include <turbojpeg.h>

#include "core/core.h"

fp_status fp_image_encode_jpeg(const fp_image *img, int quality, uint8_t **out, size_t *out_len) {
    if (!img || !img->rgb || img->width < 1 || img->height < 1 || !out || !out_len)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_image_encode_jpeg: bad arguments");
    if (quality < 1 || quality > 100) return fp_fail(FP_ERR_INVALID_ARG, "JPEG quality %d outside 1..100", quality);
    tjhandle h = tjInitCompress();
    if (!h) return fp_fail(FP_ERR_NOMEM, "turbojpeg: cannot initialise the encoder");
    unsigned char *buf = NULL;
    unsigned long len = 0;
    int rc = tjCompress2(h, img->rgb, img->width, 0, img->height, TJPF_RGB, &buf, &len, TJSAMP_420, quality,
                         TJFLAG_ACCURATEDCT);
    fp_status st = FP_OK;
    if (rc != 0) {
        st = fp_fail(FP_ERR_INTERNAL, "turbojpeg: %s", tjGetErrorStr2(h));
    } else if (!(*out = malloc(len))) {
        st = fp_fail(FP_ERR_NOMEM, "out of memory");
    } else {
        memcpy(*out, buf, len);
        *out_len = len;
    }
    tjFree(buf);
    tjDestroy(h);
    return st;
}
