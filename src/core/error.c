/*
 * error.c - status names and the per-thread "last error" message. A thread-local buffer keeps
 * concurrent sessions from overwriting each other's messages.
 */
#include <stdarg.h>
#include <stdio.h>

#include "core/core.h"

static _Thread_local char last_error[512];

const char *fp_strerror(fp_status status) {
    switch (status) {
    case FP_OK: return "ok";
    case FP_ERR_INVALID_ARG: return "invalid argument";
    case FP_ERR_NOMEM: return "out of memory";
    case FP_ERR_IO: return "i/o error";
    case FP_ERR_FORMAT: return "format error";
    case FP_ERR_UNSUPPORTED: return "unsupported";
    case FP_ERR_CHECKSUM: return "checksum mismatch";
    case FP_ERR_TOO_LARGE: return "too large";
    case FP_ERR_SHAPE: return "shape mismatch";
    case FP_ERR_NOT_FOUND: return "not found";
    case FP_ERR_INTERNAL: return "internal error";
    case FP_ERR_PAY_CONFLICT: return "idempotency conflict";
    case FP_ERR_PAY_UNAUTHORIZED: return "unauthorized";
    case FP_ERR_PAY_RATE_LIMITED: return "rate limited";
    case FP_ERR_PAY_STATE: return "invalid payment state";
    }
    return "unknown status";
}

const char *fp_last_error(void) { return last_error; }

void fp_clear_error(void) { last_error[0] = '\0'; }

fp_status fp_fail(fp_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}
