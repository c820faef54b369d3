/*
 * validate.c - input checks for the store's public calls. Ids end up in SQL parameters, audit
 * lines, log messages and the associated data of ciphertexts, so they are kept to a small
 * printable charset; free text (names, sources, audit details) must be valid UTF-8 without
 * control characters so it cannot forge lines in logs or terminals.
 */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "store/store.h"

fp_status fp_store_check_id(const char *what, const char *id, int allow_slash) {
    if (!id) return fp_fail(FP_ERR_INVALID_ARG, "%s: NULL id", what);
    size_t n = strlen(id);
    if (n == 0) return fp_fail(FP_ERR_INVALID_ARG, "%s: empty id", what);
    if (n > FP_STORE_ID_MAX)
        return fp_fail(FP_ERR_INVALID_ARG, "%s: id longer than %d bytes", what, FP_STORE_ID_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 strchr("._@:+-", c) != NULL || (allow_slash && c == '/');
        /* The id is not echoed: it may be hostile bytes. */
        if (!ok)
            return fp_fail(FP_ERR_INVALID_ARG,
                           "%s: id has a character outside [A-Za-z0-9._@:+-%s] at byte %zu", what,
                           allow_slash ? "/" : "", i);
    }
    return FP_OK;
}

/* Length of the UTF-8 sequence at p (1..4), 0 if invalid (overlong, surrogate, > U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, size_t left) {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned cp, min;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else
        return 0;
    if (left < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    if (cp >= 0x80 && cp <= 0x9f) return 0; /* C1 controls */
    return n;
}

fp_status fp_store_check_text(const char *what, const char *text, size_t max_bytes) {
    if (!text) return fp_fail(FP_ERR_INVALID_ARG, "%s: NULL text", what);
    size_t n = strlen(text);
    if (n > max_bytes)
        return fp_fail(FP_ERR_INVALID_ARG, "%s: longer than %zu bytes", what, max_bytes);
    const unsigned char *p = (const unsigned char *)text;
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x20 || p[i] == 0x7f)
            return fp_fail(FP_ERR_INVALID_ARG, "%s: control character at byte %zu", what, i);
        size_t k = utf8_seq(p + i, n - i);
        if (!k) return fp_fail(FP_ERR_INVALID_ARG, "%s: invalid UTF-8 at byte %zu", what, i);
        i += k;
    }
    return FP_OK;
}

fp_status fp_store_check_event(const char *what, const char *event) {
    if (!event) return fp_fail(FP_ERR_INVALID_ARG, "%s: NULL event", what);
    size_t n = strlen(event);
    if (n == 0 || n > 31) return fp_fail(FP_ERR_INVALID_ARG, "%s: event must be 1..31 bytes", what);
    for (size_t i = 0; i < n; i++) {
        char c = event[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return fp_fail(FP_ERR_INVALID_ARG, "%s: event has a character outside [a-z0-9_.-]",
                           what);
    }
    return FP_OK;
}

fp_status fp_store_check_embedding(const char *what, const float *emb, int dim) {
    if (!emb) return fp_fail(FP_ERR_INVALID_ARG, "%s: NULL embedding", what);
    if (dim < 1 || dim > FP_STORE_MAX_DIM)
        return fp_fail(FP_ERR_INVALID_ARG, "%s: dim %d outside 1..%d", what, dim, FP_STORE_MAX_DIM);
    int nonzero = 0;
    for (int i = 0; i < dim; i++) {
        /* Only the position is reported: embedding values never reach a message. */
        if (!isfinite(emb[i]))
            return fp_fail(FP_ERR_INVALID_ARG, "%s: embedding value %d is not finite", what, i);
        nonzero |= emb[i] != 0.0f;
    }
    if (!nonzero) return fp_fail(FP_ERR_INVALID_ARG, "%s: embedding is all zeros", what);
    return FP_OK;
}
