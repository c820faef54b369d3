/*
 * core.h - small shared services of the library: the thread-local error message behind
 * fp_last_error(), whole-file reading with a size limit, and sha256 of files (libsodium).
 * Every module reports failures through fp_fail() so a caller always gets a status plus a message.
 */
#ifndef FP_CORE_H
#define FP_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "facepay.h"

#if defined(__GNUC__)
#define FP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FP_PRINTF(a, b)
#endif

/* Records a printf-style message as this thread's last error and returns `status`. */
fp_status fp_fail(fp_status status, const char *fmt, ...) FP_PRINTF(2, 3);

/* Clears this thread's last error. */
void fp_clear_error(void);

/* Reads a whole file into a malloc'ed buffer (NUL-terminated, the NUL not counted in *len).
 * Files above max_bytes give FP_ERR_TOO_LARGE. Sets the last error on failure. */
fp_status fp_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *len);

/* sha256 of a buffer / a file as 64 lowercase hex chars + NUL. */
void fp_sha256_hex(const void *data, size_t len, char hex[65]);
fp_status fp_sha256_file(const char *path, char hex[65]);

#endif /* FP_CORE_H */
