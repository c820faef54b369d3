/* testutil.c - see testutil.h: locating models/fixtures/shared data and comparing tensors. */
#include "util/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *cache_dir(void) {
    const char *c = getenv("FACEPAY_CACHE");
    static char buf[1024];
    if (c && *c) return c;
    const char *home = getenv("HOME");
    snprintf(buf, sizeof buf, "%s/.cache/facepay", home ? home : ".");
    return buf;
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static const char *slot_path(const char *fmt, const char *a, const char *b) {
    static _Thread_local char bufs[8][1024];
    static _Thread_local int next;
    char *p = bufs[next++ & 7];
    snprintf(p, 1024, fmt, a, b);
    return exists(p) ? p : NULL;
}

const char *tu_model_path(const char *name) { return slot_path("%s/models/%s", cache_dir(), name); }

const char *tu_fixture_path(const char *rel) {
    return slot_path("%s/fixtures/%s", cache_dir(), rel);
}

const char *tu_shared_path(const char *rel) {
    const char *s = getenv("FACEPAY_SHARED");
    if (!s || !*s) s = "../shared";
    return slot_path("%s/%s", s, rel);
}

uint8_t *tu_read_all(const char *path, size_t *len) {
    if (!path) return NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    uint8_t *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    if (len) *len = (size_t)n;
    return buf;
}

float *tu_read_f32(const char *path, size_t *count) {
    size_t len = 0;
    uint8_t *b = tu_read_all(path, &len);
    if (!b) return NULL;
    if (count) *count = len / 4;
    return (float *)b;
}

double tu_max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* NaN propagates as a failure */
    }
    return m;
}

double tu_max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i]) > m) m = fabs(a[i]);
    return m;
}

double tu_cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / (sqrt(aa) * sqrt(bb) + 1e-30);
}

int tu_within_tol(const float *got, const float *ref, size_t n, double rtol, double atol,
                  double *maxdiff) {
    double d = tu_max_abs_diff(got, ref, n);
    if (maxdiff) *maxdiff = d;
    return d <= atol + rtol * tu_max_abs(ref, n);
}
