/*
 * file.c - bounded whole-file reads and sha256 digests. Model and image loaders never trust a
 * file's own size claims; they get the bytes from here with a hard cap first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include <sodium.h>

#include "core/core.h"

fp_status fp_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *len) {
    if (!path || !data || !len) return fp_fail(FP_ERR_INVALID_ARG, "fp_read_file: NULL argument");
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return fp_fail(FP_ERR_IO, "%s: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return fp_fail(FP_ERR_IO, "%s: cannot seek", path);
    }
    long size = ftell(f);
    if (size < 0) {
        fclose(f);
        return fp_fail(FP_ERR_IO, "%s: cannot tell size", path);
    }
    if ((unsigned long)size > max_bytes) {
        fclose(f);
        return fp_fail(FP_ERR_TOO_LARGE, "%s: %ld bytes, limit %zu", path, size, max_bytes);
    }
    rewind(f);
    uint8_t *buf = malloc((size_t)size + 1);
    if (!buf) {
        fclose(f);
        return fp_fail(FP_ERR_NOMEM, "%s: cannot allocate %ld bytes", path, size);
    }
    size_t got = fread(buf, 1, (size_t)size, f);
    int err = ferror(f);
    fclose(f);
    if (got != (size_t)size || err) {
        free(buf);
        return fp_fail(FP_ERR_IO, "%s: short read", path);
    }
    buf[got] = 0;
    *data = buf;
    *len = got;
    return FP_OK;
}

void fp_sha256_hex(const void *data, size_t len, char hex[65]) {
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, data, len);
    sodium_bin2hex(hex, 65, h, sizeof h);
}

fp_status fp_sha256_file(const char *path, char hex[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return fp_fail(FP_ERR_IO, "%s: %s", path, strerror(errno));
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) crypto_hash_sha256_update(&st, buf, n);
    int err = ferror(f);
    fclose(f);
    if (err) return fp_fail(FP_ERR_IO, "%s: read error", path);
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(hex, 65, h, sizeof h);
    return FP_OK;
}

fp_status fp_file_sha256(const char *path, char hex[65]) {
    if (!path || !hex) return fp_fail(FP_ERR_INVALID_ARG, "fp_file_sha256: NULL argument");
    return fp_sha256_file(path, hex);
}

static char model_dir[4096];
static pthread_once_t model_dir_once = PTHREAD_ONCE_INIT;

static void model_dir_init(void) {
    const char *m = getenv("FACEPAY_MODELS");
    const char *c = getenv("FACEPAY_CACHE");
    const char *h = getenv("HOME");
    if (m && *m) snprintf(model_dir, sizeof model_dir, "%s", m);
    else if (c && *c) snprintf(model_dir, sizeof model_dir, "%s/models", c);
    else snprintf(model_dir, sizeof model_dir, "%s/.cache/facepay/models", h && *h ? h : ".");
}

const char *fp_model_dir(void) {
    pthread_once(&model_dir_once, model_dir_init);
    return model_dir;
}
