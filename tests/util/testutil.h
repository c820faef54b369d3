/*
 * testutil.h - helpers shared by the cmocka test binaries: where the models, npm fixtures and the
 * optional ../shared folder are, reading .f32 golden files, and tolerance checks.
 * Tests that need something absent call skip() (cmocka) so ctest reports them as skipped.
 */
#ifndef FP_TESTUTIL_H
#define FP_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

/* Path of a model file in the setup cache ($FACEPAY_CACHE/models/NAME), or NULL if missing.
 * Returns a static buffer (one per call slot; copy it if you need two at once). */
const char *tu_model_path(const char *name);

/* Path of a fixture from the npm fixture packages ($FACEPAY_CACHE/fixtures/REL), or NULL. */
const char *tu_fixture_path(const char *rel);

/* Path under ../shared ($FACEPAY_SHARED/REL), or NULL if absent. */
const char *tu_shared_path(const char *rel);

/* Reads a raw little-endian float32 file; returns malloc'ed floats and the count, NULL if missing. */
float *tu_read_f32(const char *path, size_t *count);

/* Reads a whole file (malloc'ed), NULL if missing. */
uint8_t *tu_read_all(const char *path, size_t *len);

/* max |a-b| */
double tu_max_abs_diff(const float *a, const float *b, size_t n);
/* max |a| */
double tu_max_abs(const float *a, size_t n);
/* cosine similarity */
double tu_cosine(const float *a, const float *b, size_t n);

/* The reference's tolerance rule: maxAbsDiff <= atol + rtol * max|ref| (rtol 1e-4, atol 1e-5). */
int tu_within_tol(const float *got, const float *ref, size_t n, double rtol, double atol,
                  double *maxdiff);

/* Skip the current test (cmocka skip) with a message on stderr when ptr is NULL. */
#define TU_REQUIRE(ptr, what)                                                                      \
    do {                                                                                           \
        if (!(ptr)) {                                                                              \
            fprintf(stderr, "SKIP: %s not available\n", (what));                                   \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

#endif
