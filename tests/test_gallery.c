/*
 * test_gallery.c - the gallery and 1:N search (src/match/gallery*.c): search against a naive
 * double-precision scan of random unit vectors (sizes that are not multiples of the 8-row block
 * or the 32-row panel, both storage formats, both kernel sets, 1 and 2 threads, single queries
 * and batches of every size, k from 1 to more than the gallery), batch = single queries, scalar =
 * AVX2 (bit for bit for int8), the int8 scores within a per-pair bound derived from the actual
 * quantisation of row and query, the fp16 conversion against F16C, add/replace/append/remove/
 * compact semantics, per-user best and margin among distinct users, softmax confidence, bad
 * inputs, and searches racing an enrolling writer.
 * FP_TEST_FILTER=<cmocka pattern> runs a subset (e.g. the concurrency test under TSan).
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "facepay.h"
#include "match/match.h"

#define DIM FP_EMBEDDING_DIM
/* Score tolerances against the exact cosine, as documented in facepay.h (fp_gallery_format):
 * fp16 ~1e-4 (2e-3 leaves room for the fp32 sums), int8 ~2e-3: the row quantisation error of a
 * Gaussian row of dim 192 has a standard deviation of ~4.6e-4 (step max|row|/127 ~ 1.6e-3, times
 * 1/sqrt(12)), and the largest error among the scores compared in test_search_vs_naive is 2.0e-3,
 * so 2.5e-3; the int16 query adds < 1e-5. test_int8_error_bound checks int8 against a rigorous
 * per-pair bound. */
#define TOL_FP16 2e-3
#define TOL_INT8 2.5e-3

/* ---------------------------------------------------------------------------------------------- */
/* Helpers                                                                                         */
/* ---------------------------------------------------------------------------------------------- */
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static double urand(void) { /* [0, 1) */
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (double)((g_rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}
static void rand_unit(float *v, int dim) {
    double ss = 0.0;
    for (int d = 0; d < dim; d++) {
        /* Box-Muller: Gaussian components give directions uniform on the sphere */
        double u1 = urand(), u2 = urand();
        v[d] = (float)(sqrt(-2.0 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2));
        ss += (double)v[d] * v[d];
    }
    for (int d = 0; d < dim; d++) v[d] = (float)(v[d] / sqrt(ss));
}
static float *rand_units(int n, int dim) {
    float *v = malloc((size_t)n * dim * sizeof *v);
    assert_non_null(v);
    for (int i = 0; i < n; i++) rand_unit(v + (size_t)i * dim, dim);
    return v;
}
static void uid(char *buf, int i) { snprintf(buf, 32, "user%05d", i); }

/* Gallery of n users, user i = row i = rows[i]. */
static fp_gallery *make_gallery(const float *rows, int n, fp_gallery_format fmt) {
    fp_gallery *g = NULL;
    assert_int_equal(fp_gallery_new(DIM, fmt, &g), FP_OK);
    char id[32];
    for (int i = 0; i < n; i++) {
        uid(id, i);
        assert_int_equal(fp_gallery_add(g, id, rows + (size_t)i * DIM, DIM), FP_OK);
    }
    return g;
}

typedef struct ref_score {
    double s;
    int i;
} ref_score;
static int cmp_ref(const void *a, const void *b) {
    const ref_score *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? 1 : -1;
    return x->i - y->i;
}
/* Naive double-precision scores of q against all rows, sorted best first. */
static ref_score *naive(const float *rows, int n, const float *q) {
    ref_score *r = malloc((size_t)n * sizeof *r);
    assert_non_null(r);
    for (int i = 0; i < n; i++) {
        double s = 0.0, nr = 0.0, nq = 0.0;
        for (int d = 0; d < DIM; d++) {
            s += (double)rows[(size_t)i * DIM + d] * q[d];
            nr += (double)rows[(size_t)i * DIM + d] * rows[(size_t)i * DIM + d];
            nq += (double)q[d] * q[d];
        }
        r[i].s = s / sqrt(nr * nq);
        r[i].i = i;
    }
    qsort(r, (size_t)n, sizeof *r, cmp_ref);
    return r;
}

/* Kernel sets to test: scalar always, AVX2 when the CPU has it. */
static int n_sets(void) {
    int avx2 = fpg_kernels_select(1);
    return avx2 ? 2 : 1;
}
static void use_set(int s) { fpg_kernels_select(s == 1); }
static void restore_set(void) { fpg_kernels_select(1); }

/* Checks one search result against the naive ranking: scores within tol, ids where the naive
 * ranking has a gap > tol on both sides (so fp16 ties may swap). */
static void check_against(const fp_search_result *r, const ref_score *ref, int n, int k,
                          double tol) {
    assert_int_equal(r->n, n < k ? n : k);
    for (int i = 0; i < r->n; i++) {
        double diff = fabs(r->top[i].score - ref[i].s);
        if (diff > tol)
            fail_msg("rank %d: score %.6f, naive %.6f (diff %.2e > %.1e)", i, r->top[i].score,
                     ref[i].s, diff, tol);
        int clear = (i == 0 || ref[i - 1].s - ref[i].s > tol) &&
                    (i + 1 >= n || ref[i].s - ref[i + 1].s > tol);
        if (clear) {
            char id[32];
            uid(id, ref[i].i);
            assert_string_equal(r->top[i].user_id, id);
            assert_int_equal(r->top[i].row, ref[i].i);
        }
        if (i > 0) assert_true(r->top[i].score <= r->top[i - 1].score);
    }
    if (r->n >= 2) assert_float_equal(r->margin, r->top[0].score - r->top[1].score, 1e-7);
    if (r->n == 1 && n == 1) assert_float_equal(r->margin, r->top[0].score + 1.0f, 1e-7);
    assert_true(r->confidence > 0.0f && r->confidence <= 1.0f);
}

/* ---------------------------------------------------------------------------------------------- */
/* Tests                                                                                           */
/* ---------------------------------------------------------------------------------------------- */
static void test_f16_conversion(void **state) {
    (void)state;
    /* every half -> float, and back (exact round trip for every non-NaN half) */
    for (uint32_t h = 0; h < 65536; h++) {
        const int is_nan = (h & 0x7C00u) == 0x7C00u && (h & 0x3FFu);
        float f = fpg_f16_to_f32((uint16_t)h);
        if (is_nan) {
            assert_true(isnan(f));
            continue;
        }
        assert_int_equal(fpg_f32_to_f16(f), h);
    }
    /* rounding: halfway cases go to even, overflow to inf, tiny values to subnormals / zero */
    assert_int_equal(fpg_f32_to_f16(1.0f + 0x1.0p-11f), 0x3C00); /* tie -> even (1.0) */
    assert_int_equal(fpg_f32_to_f16(1.0f + 0x1.8p-11f), 0x3C01); /* 0.75 ulp -> up */
    assert_int_equal(fpg_f32_to_f16(1.0f + 0x1.8p-10f), 0x3C02); /* 1.5 ulp: tie -> even */
    assert_int_equal(fpg_f32_to_f16(70000.0f), 0x7C00);
    assert_int_equal(fpg_f32_to_f16(0x1.0p-24f), 0x0001);
    assert_int_equal(fpg_f32_to_f16(0x1.0p-26f), 0x0000);
    if (!fpg_kernels_select(1)) {
        fprintf(stderr, "SKIP part: no AVX2/F16C, F16C comparison not run\n");
        return;
    }
    /* the portable conversion gives the F16C bits, both directions */
    enum { N = 1 << 16 };
    float *f = malloc(N * sizeof *f), *back = malloc(N * sizeof *back);
    uint16_t *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    assert_true(f && back && a && b);
    for (int i = 0; i < N; i++) {
        double e = urand() * 40.0 - 30.0; /* 2^-30 .. 2^10: subnormal, normal, overflow */
        f[i] = (float)((urand() < 0.5 ? -1 : 1) * pow(2.0, e) * (1.0 + urand()));
    }
    f[0] = 0.0f;
    f[1] = -0.0f;
    f[2] = INFINITY;
    f[3] = 65519.0f; /* rounds to the largest half */
    f[4] = 65520.0f; /* rounds to inf */
    fpg_f32_to_f16_avx2(f, a, N);
    for (int i = 0; i < N; i++) {
        b[i] = fpg_f32_to_f16(f[i]);
        if (a[i] != b[i]) fail_msg("f32 %a: F16C %04x, portable %04x", (double)f[i], a[i], b[i]);
    }
    for (int i = 0; i < N; i++) a[i] = (uint16_t)i;
    fpg_f16_to_f32_avx2(a, back, N);
    for (int i = 0; i < N; i++) {
        float s = fpg_f16_to_f32((uint16_t)i);
        if (isnan(s)) {
            assert_true(isnan(back[i]));
            continue;
        }
        assert_memory_equal(&s, &back[i], sizeof s);
    }
    free(f);
    free(back);
    free(a);
    free(b);
}

static void test_search_vs_naive(void **state) {
    (void)state;
    /* 1 and 7: less than a block; 33, 100: a panel and a partial panel / trailing rows; 4097: a
     * chunk + 1 row; 4120: a chunk + a 3-block partial panel; 5000: panels, partial panel (1
     * block) and nothing trailing */
    const int sizes[] = {1, 7, 33, 100, 4097, 4120, 5000};
    const int nsizes = (int)(sizeof sizes / sizeof *sizes);
    const fp_gallery_format fmts[] = {FP_GALLERY_FP16, FP_GALLERY_INT8};
    const double tols[] = {TOL_FP16, TOL_INT8};
    const int ks[] = {1, 2, 7, FP_GALLERY_MAX_K}; /* 7 and 16 exceed the smallest galleries */
    enum { NQ = FP_MAX_BATCH, NSINGLE = 3 };
    for (int si = 0; si < nsizes; si++) {
        const int n = sizes[si];
        float *rows = rand_units(n, DIM);
        float *qs = rand_units(NQ, DIM);
        /* half the queries are noisy copies of enrolled rows (a genuine at the top) */
        for (int qi = 0; qi < NQ; qi += 2) {
            const float *src = rows + (size_t)((qi * 7919) % n) * DIM;
            for (int d = 0; d < DIM; d++) qs[(size_t)qi * DIM + d] = src[d] + 0.05f * qs[(size_t)qi * DIM + d];
        }
        ref_score *ref[NQ];
        for (int qi = 0; qi < NQ; qi++) ref[qi] = naive(rows, n, qs + (size_t)qi * DIM);
        for (int fi = 0; fi < 2; fi++) {
            fp_gallery *g = make_gallery(rows, n, fmts[fi]);
            assert_int_equal(fp_gallery_size(g), n);
            assert_int_equal(fp_gallery_rows(g), n);
            double worst = 0.0;
            for (int set = 0; set < n_sets(); set++) {
                use_set(set);
                for (int threads = 1; threads <= 2; threads++) {
                    for (int ki = 0; ki < 4; ki++) {
                        const int k = ks[ki];
                        fp_search_result res[NQ];
                        /* one batch of 20 (every tile of the batch kernels) */
                        assert_int_equal(fp_gallery_search(g, qs, NQ, DIM, k, threads, res), FP_OK);
                        for (int qi = 0; qi < NQ; qi++) {
                            check_against(&res[qi], ref[qi], n, k, tols[fi]);
                            for (int i = 0; i < res[qi].n; i++)
                                worst = fmax(worst, fabs(res[qi].top[i].score - ref[qi][i].s));
                        }
                        /* single queries (the one-query kernels) */
                        for (int qi = 0; qi < NSINGLE; qi++) {
                            assert_int_equal(fp_gallery_search(g, qs + (size_t)qi * DIM, 1, DIM, k,
                                                               threads, res), FP_OK);
                            check_against(&res[0], ref[qi], n, k, tols[fi]);
                        }
                    }
                }
            }
            restore_set();
            fprintf(stderr, "  N=%d %s: max |score - naive double| = %.2e\n", n,
                    fmts[fi] == FP_GALLERY_FP16 ? "fp16" : "int8", worst);
            fp_gallery_free(g);
        }
        for (int qi = 0; qi < NQ; qi++) free(ref[qi]);
        free(rows);
        free(qs);
    }
}

static void test_batch_equals_single(void **state) {
    (void)state;
    enum { N = 5003, NQ = FP_MAX_BATCH }; /* 5003: a partial trailing block too */
    float *rows = rand_units(N, DIM);
    float *qs = rand_units(NQ, DIM);
    for (int fi = 0; fi < 2; fi++) {
        fp_gallery *g = make_gallery(rows, N, fi ? FP_GALLERY_INT8 : FP_GALLERY_FP16);
        for (int set = 0; set < n_sets(); set++) {
            use_set(set);
            for (int nq = 1; nq <= NQ; nq++) { /* every tile shape of the batch kernel */
                fp_search_result batch[NQ], one;
                assert_int_equal(fp_gallery_search(g, qs, nq, DIM, 16, 1, batch), FP_OK);
                for (int qi = 0; qi < nq; qi++) {
                    assert_int_equal(fp_gallery_search(g, qs + (size_t)qi * DIM, 1, DIM, 16, 1, &one),
                                     FP_OK);
                    assert_memory_equal(&one, &batch[qi], sizeof one);
                }
            }
        }
        restore_set();
        fp_gallery_free(g);
    }
    free(rows);
    free(qs);
}

static void test_scalar_vs_avx2(void **state) {
    (void)state;
    if (!fpg_kernels_select(1)) {
        fprintf(stderr, "SKIP: no AVX2/FMA/F16C on this CPU\n");
        skip();
    }
    enum { N = 4123, NQ = 7 }; /* full panels, a 3-block partial panel, 3 trailing rows */
    float *rows = rand_units(N, DIM);
    float *qs = rand_units(NQ, DIM);
    for (int fi = 0; fi < 2; fi++) {
        fp_gallery *g = make_gallery(rows, N, fi ? FP_GALLERY_INT8 : FP_GALLERY_FP16);
        float *a = malloc((size_t)NQ * N * sizeof *a), *s = malloc((size_t)NQ * N * sizeof *s);
        assert_true(a && s);
        use_set(1);
        assert_int_equal(fp_gallery_scores(g, qs, NQ, DIM, N, a, 1), FP_OK);
        fp_search_result ra[NQ], rs[NQ];
        assert_int_equal(fp_gallery_search(g, qs, NQ, DIM, 16, 1, ra), FP_OK);
        use_set(0);
        assert_int_equal(fp_gallery_scores(g, qs, NQ, DIM, N, s, 1), FP_OK);
        assert_int_equal(fp_gallery_search(g, qs, NQ, DIM, 16, 1, rs), FP_OK);
        restore_set();
        double worst = 0.0;
        for (size_t i = 0; i < (size_t)NQ * N; i++) worst = fmax(worst, fabs(a[i] - s[i]));
        fprintf(stderr, "  %s: max |avx2 - scalar| = %.2e\n", fi ? "int8" : "fp16", worst);
        assert_true(worst <= 1e-5);
        if (fi) /* int8: exact integer dot products, the same float steps after them */
            assert_memory_equal(a, s, (size_t)NQ * N * sizeof *a);
        for (int qi = 0; qi < NQ; qi++) {
            assert_int_equal(ra[qi].n, rs[qi].n);
            for (int i = 0; i < ra[qi].n; i++) {
                assert_float_equal(ra[qi].top[i].score, rs[qi].top[i].score, 1e-5);
                int clear = (i == 0 || ra[qi].top[i - 1].score - ra[qi].top[i].score > 1e-5) &&
                            (i + 1 >= ra[qi].n || ra[qi].top[i].score - ra[qi].top[i + 1].score > 1e-5);
                if (clear) assert_string_equal(ra[qi].top[i].user_id, rs[qi].top[i].user_id);
            }
        }
        free(a);
        free(s);
        fp_gallery_free(g);
    }
    free(rows);
    free(qs);
}

static void test_threads_equal(void **state) {
    (void)state;
    /* enough rows x queries for 4 threads (FPG_ROWS_PER_THREAD each), and a partial block */
    enum { N = FPG_ROWS_PER_THREAD / 2 + 13, NQ = 8 };
    float *rows = rand_units(N, DIM);
    float *qs = rand_units(NQ, DIM);
    fp_gallery *g = make_gallery(rows, N, FP_GALLERY_FP16);
    for (int set = 0; set < n_sets(); set++) {
        use_set(set);
        fp_search_result r1[NQ], r2[NQ], r3[NQ];
        assert_int_equal(fp_gallery_search(g, qs, NQ, DIM, 16, 1, r1), FP_OK);
        assert_int_equal(fp_gallery_search(g, qs, NQ, DIM, 16, 2, r2), FP_OK);
        assert_int_equal(fp_gallery_search(g, qs, NQ, DIM, 16, 3, r3), FP_OK);
        assert_memory_equal(r1, r2, sizeof r1);
        assert_memory_equal(r1, r3, sizeof r1);
        float *s1 = malloc((size_t)NQ * N * sizeof *s1), *s2 = malloc((size_t)NQ * N * sizeof *s2);
        assert_true(s1 && s2);
        assert_int_equal(fp_gallery_scores(g, qs, NQ, DIM, N, s1, 1), FP_OK);
        assert_int_equal(fp_gallery_scores(g, qs, NQ, DIM, N, s2, 2), FP_OK);
        assert_memory_equal(s1, s2, (size_t)NQ * N * sizeof *s1);
        /* the search's scores are the dense scores, bit for bit */
        for (int qi = 0; qi < NQ; qi++)
            for (int i = 0; i < r1[qi].n; i++)
                assert_memory_equal(&r1[qi].top[i].score, &s1[(size_t)qi * N + r1[qi].top[i].row],
                                    sizeof(float));
        free(s1);
        free(s2);
    }
    restore_set();
    fp_gallery_free(g);
    free(rows);
    free(qs);
}

static void test_scores_vs_naive(void **state) {
    (void)state;
    enum { N = 1001, NQ = 45 }; /* more queries than one batch */
    float *rows = rand_units(N, DIM);
    float *qs = rand_units(NQ, DIM);
    fp_gallery *g = make_gallery(rows, N, FP_GALLERY_FP16);
    float *out = malloc((size_t)NQ * N * sizeof *out);
    assert_non_null(out);
    for (int set = 0; set < n_sets(); set++) {
        use_set(set);
        assert_int_equal(fp_gallery_scores(g, qs, NQ, DIM, N, out, 2), FP_OK);
        for (int qi = 0; qi < NQ; qi++)
            for (int r = 0; r < N; r++) {
                double s = 0.0;
                for (int d = 0; d < DIM; d++) s += (double)qs[(size_t)qi * DIM + d] * rows[(size_t)r * DIM + d];
                assert_float_equal(out[(size_t)qi * N + r], s, TOL_FP16);
            }
        /* a prefix of the rows */
        assert_int_equal(fp_gallery_scores(g, qs, 3, DIM, 10, out, 1), FP_OK);
    }
    restore_set();
    assert_int_equal(fp_gallery_scores(g, qs, 1, DIM, N + 1, out, 1), FP_ERR_INVALID_ARG);
    free(out);
    fp_gallery_free(g);
    free(rows);
    free(qs);
}

static void test_odd_dims(void **state) {
    (void)state;
    /* dims that exercise every remainder loop (not multiples of 4 or 8), and the largest */
    const int dims[] = {1, 3, 37, 193, 4096};
    enum { N = 77, NQ = 7 };
    for (int di = 0; di < 5; di++) {
        const int dim = dims[di];
        float *rows = rand_units(N, dim), *qs = rand_units(NQ, dim);
        float *out = malloc((size_t)NQ * N * sizeof *out);
        assert_non_null(out);
        for (int fi = 0; fi < 2; fi++) {
            fp_gallery *g = NULL;
            assert_int_equal(fp_gallery_new(dim, fi ? FP_GALLERY_INT8 : FP_GALLERY_FP16, &g), FP_OK);
            char id[32];
            for (int i = 0; i < N; i++) {
                uid(id, i);
                assert_int_equal(fp_gallery_add(g, id, rows + (size_t)i * dim, dim), FP_OK);
            }
            for (int set = 0; set < n_sets(); set++) {
                use_set(set);
                assert_int_equal(fp_gallery_scores(g, qs, NQ, dim, N, out, 1), FP_OK);
                fp_search_result res[NQ];
                assert_int_equal(fp_gallery_search(g, qs, NQ, dim, 3, 1, res), FP_OK);
                for (int qi = 0; qi < NQ; qi++) {
                    double best = -2.0;
                    for (int r = 0; r < N; r++) {
                        double sd = 0.0;
                        for (int d = 0; d < dim; d++)
                            sd += (double)qs[(size_t)qi * dim + d] * rows[(size_t)r * dim + d];
                        /* int8 error grows with the spread of the row's elements (dim 1: exact) */
                        assert_float_equal(out[(size_t)qi * N + r], sd, fi ? 1e-2 : 2e-3);
                        best = fmax(best, sd);
                    }
                    assert_int_equal(res[qi].n, 3);
                    assert_float_equal(res[qi].top[0].score, best, fi ? 1e-2 : 2e-3);
                    assert_memory_equal(&res[qi].top[0].score,
                                        &out[(size_t)qi * N + res[qi].top[0].row], sizeof(float));
                }
            }
            restore_set();
            fp_gallery_free(g);
        }
        free(out);
        free(rows);
        free(qs);
    }
}

/* Angle between x and its quantisation to integers with the largest |element| at qmax (the
 * rule of the gallery's int8 rows, qmax 127, and of its int16 queries, fpg_q16_max): with
 * a = x * qmax / max|x| and e = round(a) - a, the distance from a to the line through a + e is at
 * most ||e||, so sin(angle) <= ||e|| / ||a||. A rounding tie counts as |e| = 0.5 either way. */
static double quant_angle(const float *x, int dim, double qmax) {
    double mx = 0.0;
    for (int d = 0; d < dim; d++) mx = fmax(mx, fabs((double)x[d]));
    double ea = 0.0, aa = 0.0;
    for (int d = 0; d < dim; d++) {
        const double a = x[d] * qmax / mx;
        double e = fabs(rint(a) - a);
        if (e > 0.4999) e = 0.5;
        ea += e * e;
        aa += a * a;
    }
    return asin(fmin(1.0, sqrt(ea / aa)));
}

/* int8 scores are the cosine of the quantised query and the quantised row, so each one is within
 * angle(q) + angle(row) (+ float rounding) of the exact cosine: a rigorous per-pair bound, checked
 * for every pair on random rows and on rows built to stress the quantisation (one dominant
 * element, sparse, one-hot, two-valued), in partial panels and trailing rows, for both kernel
 * sets; and the search's top-1 must be the exact top-1 whenever the bounds cannot overlap. */
static void test_int8_error_bound(void **state) {
    (void)state;
    const int dims[] = {DIM, 37};
    enum { N = 203, NQ = FP_MAX_BATCH }; /* 6 panels, a 1-block partial panel, 3 trailing rows */
    for (int di = 0; di < 2; di++) {
        const int dim = dims[di];
        float *rows = rand_units(N, dim), *qs = rand_units(NQ, dim);
        for (int i = 0; i < N; i += 5) { /* every 5th row: a structured one */
            float *r = rows + (size_t)i * dim;
            switch ((i / 5) % 4) {
            case 0: r[i % dim] = 8.0f; break;                                   /* dominant */
            case 1: for (int d = 0; d < dim; d++) if (d % 7) r[d] = 0.0f; break; /* sparse */
            case 2: memset(r, 0, (size_t)dim * sizeof *r); r[(i * 3) % dim] = -1.0f; break;
            default: for (int d = 0; d < dim; d++) r[d] = (d % 3) ? 0.25f : -1.0f; break;
            }
        }
        for (int qi = 0; qi < NQ; qi += 3) /* some genuine queries */
            for (int d = 0; d < dim; d++)
                qs[(size_t)qi * dim + d] = rows[(size_t)((qi * 37) % N) * dim + d] + 0.02f * qs[(size_t)qi * dim + d];
        fp_gallery *g = NULL;
        assert_int_equal(fp_gallery_new(dim, FP_GALLERY_INT8, &g), FP_OK);
        char id[32];
        for (int i = 0; i < N; i++) {
            uid(id, i);
            assert_int_equal(fp_gallery_add(g, id, rows + (size_t)i * dim, dim), FP_OK);
        }
        double *exact = malloc((size_t)NQ * N * sizeof *exact), *bound = malloc((size_t)NQ * N * sizeof *bound);
        float *out = malloc((size_t)NQ * N * sizeof *out);
        assert_true(exact && bound && out);
        double worst_ratio = 0.0, worst_err = 0.0;
        for (int qi = 0; qi < NQ; qi++) {
            const float *q = qs + (size_t)qi * dim;
            const double aq = quant_angle(q, dim, fpg_q16_max(dim));
            assert_true(aq < 2e-4); /* the int16 query is all but exact, even a spiky one */
            for (int r = 0; r < N; r++) {
                const float *v = rows + (size_t)r * dim;
                double s = 0.0, nv = 0.0, nq = 0.0;
                for (int d = 0; d < dim; d++) {
                    s += (double)q[d] * v[d];
                    nv += (double)v[d] * v[d];
                    nq += (double)q[d] * q[d];
                }
                exact[(size_t)qi * N + r] = s / sqrt(nv * nq);
                bound[(size_t)qi * N + r] = aq + quant_angle(v, dim, 127.0) + 2e-6;
            }
        }
        for (int set = 0; set < n_sets(); set++) {
            use_set(set);
            assert_int_equal(fp_gallery_scores(g, qs, NQ, dim, N, out, 1), FP_OK);
            for (size_t i = 0; i < (size_t)NQ * N; i++) {
                const double err = fabs(out[i] - exact[i]);
                if (err > bound[i])
                    fail_msg("query %zu row %zu: score %.7f, exact %.7f, error %.2e > bound %.2e",
                             i / N, i % N, out[i], exact[i], err, bound[i]);
                worst_ratio = fmax(worst_ratio, err / bound[i]);
                worst_err = fmax(worst_err, err);
            }
            fp_search_result res[NQ];
            assert_int_equal(fp_gallery_search(g, qs, NQ, dim, 1, 1, res), FP_OK);
            for (int qi = 0; qi < NQ; qi++) {
                const double *e = exact + (size_t)qi * N, *b = bound + (size_t)qi * N;
                int top = 0, clear = 1;
                for (int r = 1; r < N; r++)
                    if (e[r] > e[top]) top = r;
                for (int r = 0; r < N; r++)
                    if (r != top && e[top] - b[top] <= e[r] + b[r]) clear = 0;
                assert_int_equal(res[qi].n, 1);
                assert_true(fabs(res[qi].top[0].score - e[res[qi].top[0].row]) <= b[res[qi].top[0].row]);
                if (clear) assert_int_equal(res[qi].top[0].row, top);
            }
        }
        restore_set();
        fprintf(stderr, "  dim %d: max int8 error %.2e, at most %.0f%% of its pair's bound\n", dim,
                worst_err, 100.0 * worst_ratio);
        free(exact);
        free(bound);
        free(out);
        fp_gallery_free(g);
        free(rows);
        free(qs);
    }
}

/* The int32 accumulators cannot overflow (fpg_q16_max): the largest dim with every element at
 * its extreme, query parallel or antiparallel to the row. */
static void test_int8_extremes(void **state) {
    (void)state;
    enum { D = FPG_MAX_DIM };
    float *row = malloc(D * sizeof *row), *q = malloc(2 * D * sizeof *q);
    assert_true(row && q);
    for (int d = 0; d < D; d++) {
        row[d] = (d % 2) ? -1.0f : 1.0f;
        q[d] = row[d];
        q[D + d] = -row[d];
    }
    fp_gallery *g = NULL;
    assert_int_equal(fp_gallery_new(D, FP_GALLERY_INT8, &g), FP_OK);
    char id[32];
    for (int i = 0; i < 41; i++) { /* a full panel, a partial one, a trailing row */
        uid(id, i);
        assert_int_equal(fp_gallery_add(g, id, row, D), FP_OK);
    }
    float out[2 * 41];
    for (int set = 0; set < n_sets(); set++) {
        use_set(set);
        assert_int_equal(fp_gallery_scores(g, q, 2, D, 41, out, 1), FP_OK);
        for (int i = 0; i < 41; i++) {
            assert_float_equal(out[i], 1.0f, 1e-6);
            assert_float_equal(out[41 + i], -1.0f, 1e-6);
        }
        fp_search_result r[2];
        assert_int_equal(fp_gallery_search(g, q, 2, D, 3, 1, r), FP_OK);
        assert_float_equal(r[0].top[0].score, 1.0f, 1e-6);
        assert_float_equal(r[1].top[0].score, -1.0f, 1e-6);
    }
    restore_set();
    fp_gallery_free(g);
    free(row);
    free(q);
}

static void test_add_replace_remove(void **state) {
    (void)state;
    float *v = rand_units(6, DIM);
    float *a1 = v, *a2 = v + DIM, *b = v + 2 * DIM, *c = v + 3 * DIM;
    fp_gallery *g = NULL;
    assert_int_equal(fp_gallery_new(DIM, FP_GALLERY_FP16, &g), FP_OK);
    assert_int_equal(fp_gallery_dim(g), DIM);
    const size_t mem0 = fp_gallery_memory(g);
    assert_int_equal(fp_gallery_add(g, "alice", a1, DIM), FP_OK);
    assert_int_equal(fp_gallery_add(g, "bob", b, DIM), FP_OK);
    assert_int_equal(fp_gallery_size(g), 2);
    assert_true(fp_gallery_memory(g) > mem0);
    fp_search_result r;
    assert_int_equal(fp_gallery_search(g, a1, 1, DIM, 5, 1, &r), FP_OK);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.top[0].user_id, "alice");
    assert_true(r.top[0].score > 0.999f);
    /* not normalised input is normalised (a template mean is not a unit vector) */
    float scaled[DIM];
    for (int d = 0; d < DIM; d++) scaled[d] = 3.0f * c[d];
    assert_int_equal(fp_gallery_add(g, "carol", scaled, DIM), FP_OK);
    assert_int_equal(fp_gallery_search(g, c, 1, DIM, 1, 1, &r), FP_OK);
    assert_string_equal(r.top[0].user_id, "carol");
    assert_float_equal(r.top[0].score, 1.0f, 2e-3);

    /* replace: alice's row becomes a2; the old row is a tombstone */
    assert_int_equal(fp_gallery_add(g, "alice", a2, DIM), FP_OK);
    assert_int_equal(fp_gallery_size(g), 3);
    assert_int_equal(fp_gallery_rows(g), 4);
    assert_int_equal(fp_gallery_search(g, a2, 1, DIM, 16, 1, &r), FP_OK);
    assert_int_equal(r.n, 3); /* alice once, not twice */
    assert_string_equal(r.top[0].user_id, "alice");
    assert_int_equal(r.top[0].row, 3);
    assert_int_equal(fp_gallery_search(g, a1, 1, DIM, 16, 1, &r), FP_OK);
    for (int i = 0; i < r.n; i++) assert_true(r.top[i].score < 0.9f); /* old template gone */
    char id[FP_GALLERY_ID_LEN];
    int live = -1;
    assert_int_equal(fp_gallery_row_user(g, 0, id, &live), FP_OK);
    assert_string_equal(id, "alice");
    assert_int_equal(live, 0);
    assert_int_equal(fp_gallery_row_user(g, 3, id, &live), FP_OK);
    assert_int_equal(live, 1);
    assert_int_equal(fp_gallery_row_user(g, 4, id, &live), FP_ERR_INVALID_ARG);

    /* remove */
    assert_int_equal(fp_gallery_remove(g, "alice"), FP_OK);
    assert_int_equal(fp_gallery_size(g), 2);
    assert_int_equal(fp_gallery_remove(g, "alice"), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_gallery_remove(g, "nobody"), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_gallery_search(g, a2, 1, DIM, 16, 1, &r), FP_OK);
    assert_int_equal(r.n, 2);
    for (int i = 0; i < r.n; i++) assert_string_not_equal(r.top[i].user_id, "alice");
    /* re-enrol after removal */
    assert_int_equal(fp_gallery_add(g, "alice", a1, DIM), FP_OK);
    assert_int_equal(fp_gallery_size(g), 3);
    assert_int_equal(fp_gallery_search(g, a1, 1, DIM, 1, 1, &r), FP_OK);
    assert_string_equal(r.top[0].user_id, "alice");

    /* compact: live rows only, same answers */
    fp_gallery *h = NULL;
    assert_int_equal(fp_gallery_compact(g, &h), FP_OK);
    assert_int_equal(fp_gallery_rows(h), 3);
    assert_int_equal(fp_gallery_size(h), 3);
    fp_search_result r2;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(fp_gallery_search(g, v + (size_t)i * DIM, 1, DIM, 3, 1, &r), FP_OK);
        assert_int_equal(fp_gallery_search(h, v + (size_t)i * DIM, 1, DIM, 3, 1, &r2), FP_OK);
        assert_int_equal(r.n, r2.n);
        for (int j = 0; j < r.n; j++) {
            assert_string_equal(r.top[j].user_id, r2.top[j].user_id);
            assert_memory_equal(&r.top[j].score, &r2.top[j].score, sizeof(float));
        }
    }
    assert_int_equal(fp_gallery_add(h, "dave", v + 4 * DIM, DIM), FP_OK); /* still writable */
    assert_int_equal(fp_gallery_size(h), 4);
    fp_gallery_free(h);

    /* removing everybody: an empty answer, not an error */
    assert_int_equal(fp_gallery_remove(g, "alice"), FP_OK);
    assert_int_equal(fp_gallery_remove(g, "bob"), FP_OK);
    assert_int_equal(fp_gallery_remove(g, "carol"), FP_OK);
    assert_int_equal(fp_gallery_size(g), 0);
    assert_int_equal(fp_gallery_search(g, a1, 1, DIM, 5, 2, &r), FP_OK);
    assert_int_equal(r.n, 0);
    fp_gallery_free(g);
    free(v);
}

static void test_many_users_hash(void **state) {
    (void)state;
    /* enough users to grow the hash table, the arena and the chunk directory several times */
    enum { N = 70000 };
    float *v = rand_units(1, DIM);
    fp_gallery *g = NULL;
    assert_int_equal(fp_gallery_new(DIM, FP_GALLERY_INT8, &g), FP_OK);
    char id[40];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "customer-%d-with-a-longer-id", i);
        v[i % DIM] += 0.01f;
        assert_int_equal(fp_gallery_add(g, id, v, DIM), FP_OK);
    }
    for (int i = 0; i < N; i += 2) {
        snprintf(id, sizeof id, "customer-%d-with-a-longer-id", i);
        assert_int_equal(fp_gallery_remove(g, id), FP_OK);
    }
    assert_int_equal(fp_gallery_size(g), N / 2);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "customer-%d-with-a-longer-id", i);
        assert_int_equal(fp_gallery_remove(g, id), (i % 2) ? FP_OK : FP_ERR_NOT_FOUND);
    }
    assert_int_equal(fp_gallery_size(g), 0);
    const size_t mem = fp_gallery_memory(g);
    assert_true(mem >= (size_t)N * DIM); /* int8: at least a byte per element */
    assert_true(mem < (size_t)N * DIM * 2);
    fp_gallery_free(g);
    free(v);
}

static void test_multirow_margin(void **state) {
    (void)state;
    /* controlled cosines: q = e0, row(c, j) = c e0 + sqrt(1 - c^2) e_j */
    float q[DIM] = {1.0f};
    float row[DIM];
#define ROW(c, j)                                                                                  \
    do {                                                                                           \
        memset(row, 0, sizeof row);                                                                \
        row[0] = (c);                                                                              \
        row[j] = sqrtf(1.0f - (c) * (c));                                                          \
    } while (0)
    fp_gallery *g = NULL;
    assert_int_equal(fp_gallery_new(DIM, FP_GALLERY_FP16, &g), FP_OK);
    ROW(0.80f, 1);
    assert_int_equal(fp_gallery_add(g, "alice", row, DIM), FP_OK);
    ROW(0.90f, 2);
    assert_int_equal(fp_gallery_append(g, "alice", row, DIM), FP_OK); /* her better template */
    ROW(0.85f, 3);
    assert_int_equal(fp_gallery_append(g, "alice", row, DIM), FP_OK);
    ROW(0.60f, 4);
    assert_int_equal(fp_gallery_add(g, "bob", row, DIM), FP_OK);
    ROW(0.50f, 5);
    assert_int_equal(fp_gallery_add(g, "carol", row, DIM), FP_OK);
    assert_int_equal(fp_gallery_size(g), 3);
    assert_int_equal(fp_gallery_rows(g), 5);
    fp_search_result r;
    assert_int_equal(fp_gallery_search(g, q, 1, DIM, 16, 1, &r), FP_OK);
    assert_int_equal(r.n, 3); /* users, not rows */
    assert_string_equal(r.top[0].user_id, "alice");
    assert_int_equal(r.top[0].row, 1);
    assert_float_equal(r.top[0].score, 0.90f, 1e-3);
    assert_string_equal(r.top[1].user_id, "bob"); /* not alice's 0.85 row */
    assert_float_equal(r.margin, 0.30f, 2e-3);
    assert_float_equal(r.margin, r.top[0].score - r.top[1].score, 1e-7);
    /* k = 1 still measures the margin against the runner-up */
    assert_int_equal(fp_gallery_search(g, q, 1, DIM, 1, 1, &r), FP_OK);
    assert_int_equal(r.n, 1);
    assert_float_equal(r.margin, 0.30f, 2e-3);
    assert_true(r.confidence < 1.0f);
    /* removing alice removes all three rows */
    assert_int_equal(fp_gallery_remove(g, "alice"), FP_OK);
    assert_int_equal(fp_gallery_search(g, q, 1, DIM, 16, 1, &r), FP_OK);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.top[0].user_id, "bob");
    /* add = replace every row: one row left */
    ROW(0.70f, 6);
    assert_int_equal(fp_gallery_append(g, "bob", row, DIM), FP_OK);
    ROW(0.40f, 7);
    assert_int_equal(fp_gallery_add(g, "bob", row, DIM), FP_OK);
    assert_int_equal(fp_gallery_search(g, q, 1, DIM, 16, 1, &r), FP_OK);
    assert_string_equal(r.top[0].user_id, "carol");
    assert_string_equal(r.top[1].user_id, "bob");
    assert_float_equal(r.top[1].score, 0.40f, 1e-3);
    fp_gallery_free(g);
}

static void test_confidence(void **state) {
    (void)state;
    float q[DIM] = {1.0f};
    float row[DIM];
    const float tops[] = {0.45f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 0.99f};
    float prev = 0.0f;
    for (int t = 0; t < 7; t++) {
        fp_gallery *g = NULL;
        assert_int_equal(fp_gallery_new(DIM, FP_GALLERY_FP16, &g), FP_OK);
        ROW(tops[t], 1);
        assert_int_equal(fp_gallery_add(g, "target", row, DIM), FP_OK);
        char id[16];
        for (int i = 0; i < 5; i++) {
            snprintf(id, sizeof id, "other%d", i);
            ROW(0.40f - 0.05f * i, 2 + i);
            assert_int_equal(fp_gallery_add(g, id, row, DIM), FP_OK);
        }
        fp_search_result r;
        assert_int_equal(fp_gallery_search(g, q, 1, DIM, 5, 1, &r), FP_OK);
        assert_string_equal(r.top[0].user_id, "target");
        assert_true(r.confidence > prev); /* a clearer winner, a higher confidence */
        prev = r.confidence;
        /* a lower temperature sharpens it */
        assert_int_equal(fp_gallery_set_temperature(g, 0.01f), FP_OK);
        fp_search_result sharp;
        assert_int_equal(fp_gallery_search(g, q, 1, DIM, 5, 1, &sharp), FP_OK);
        assert_true(sharp.confidence >= r.confidence);
        /* softmax by hand */
        double z = 0.0;
        for (int i = 0; i < sharp.n; i++) z += exp((sharp.top[i].score - sharp.top[0].score) / 0.01);
        assert_float_equal(sharp.confidence, 1.0 / z, 1e-5);
        fp_gallery_free(g);
    }
    assert_true(prev > 0.99f);
    /* one user: confidence 1, margin against the floor -1 */
    fp_gallery *g = NULL;
    assert_int_equal(fp_gallery_new(DIM, FP_GALLERY_FP16, &g), FP_OK);
    ROW(0.3f, 1);
    assert_int_equal(fp_gallery_add(g, "solo", row, DIM), FP_OK);
    fp_search_result r;
    assert_int_equal(fp_gallery_search(g, q, 1, DIM, 3, 1, &r), FP_OK);
    assert_int_equal(r.n, 1);
    assert_float_equal(r.confidence, 1.0f, 1e-7);
    assert_float_equal(r.margin, r.top[0].score + 1.0f, 1e-7);
    assert_int_equal(fp_gallery_set_temperature(g, 0.0f), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_gallery_set_temperature(g, NAN), FP_ERR_INVALID_ARG);
    fp_gallery_free(g);
#undef ROW
}

static void test_bad_inputs(void **state) {
    (void)state;
    fp_gallery *g = NULL;
    assert_int_equal(fp_gallery_new(0, FP_GALLERY_FP16, &g), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_gallery_new(4097, FP_GALLERY_FP16, &g), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_gallery_new(DIM, (fp_gallery_format)7, &g), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_gallery_new(DIM, FP_GALLERY_FP16, NULL), FP_ERR_INVALID_ARG);
    assert_null(g);
    assert_int_equal(fp_gallery_new(DIM, FP_GALLERY_FP16, &g), FP_OK);
    float v[2 * FP_MAX_BATCH + 2][DIM];
    for (int i = 0; i < 2 * FP_MAX_BATCH + 2; i++) rand_unit(v[i], DIM);
    fp_search_result res[2 * FP_MAX_BATCH + 2];
    float out[8];

    /* empty gallery: n = 0 results, not an error */
    assert_int_equal(fp_gallery_search(g, v[0], 3, DIM, 4, 1, res), FP_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(res[i].n, 0);
        assert_float_equal(res[i].confidence, 0.0f, 0.0);
    }
    assert_int_equal(fp_gallery_scores(g, v[0], 1, DIM, 0, out, 1), FP_OK);
    assert_int_equal(fp_gallery_remove(g, "x"), FP_ERR_NOT_FOUND);

    assert_int_equal(fp_gallery_add(g, "u", v[0], DIM), FP_OK);
    /* NULLs */
    assert_int_equal(fp_gallery_add(NULL, "u", v[0], DIM), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_gallery_add(g, NULL, v[0], DIM), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_gallery_add(g, "u", NULL, DIM), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_gallery_remove(NULL, "u"), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_gallery_remove(g, NULL), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_gallery_search(NULL, v[0], 1, DIM, 1, 1, res), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_gallery_search(g, NULL, 1, DIM, 1, 1, res), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_gallery_search(g, v[0], 1, DIM, 1, 1, NULL), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_gallery_scores(g, v[0], 1, DIM, 1, NULL, 1), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_gallery_compact(NULL, &g), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_gallery_row_user(g, 0, NULL, NULL), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_gallery_size(NULL), 0);
    assert_int_equal(fp_gallery_memory(NULL), 0);
    fp_gallery_free(NULL);
    /* dim mismatch */
    assert_int_equal(fp_gallery_add(g, "u", v[0], DIM - 1), FP_ERR_SHAPE);
    assert_int_equal(fp_gallery_search(g, v[0], 1, FP_DESCRIPTOR_DIM, 1, 1, res), FP_ERR_SHAPE);
    assert_int_equal(fp_gallery_scores(g, v[0], 1, DIM + 1, 1, out, 1), FP_ERR_SHAPE);
    /* batch limit: 20 queries per search (one pass over the gallery); 21 is too large */
    assert_int_equal(fp_gallery_search(g, v[0], FP_MAX_BATCH, DIM, 1, 1, res), FP_OK);
    assert_int_equal(fp_gallery_search(g, v[0], FP_MAX_BATCH + 1, DIM, 1, 1, res), FP_ERR_TOO_LARGE);
    assert_int_equal(fp_gallery_search(g, v[0], 0, DIM, 1, 1, res), FP_ERR_INVALID_ARG);
    /* k, threads */
    assert_int_equal(fp_gallery_search(g, v[0], 1, DIM, 0, 1, res), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_gallery_search(g, v[0], 1, DIM, FP_GALLERY_MAX_K + 1, 1, res), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_gallery_search(g, v[0], 1, DIM, 1, 0, res), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_gallery_search(g, v[0], 1, DIM, 1, 64, res), FP_OK); /* clamped */
    /* ids */
    char longid[FP_GALLERY_ID_LEN + 1];
    memset(longid, 'a', sizeof longid - 1);
    longid[FP_GALLERY_ID_LEN] = '\0';
    assert_int_equal(fp_gallery_add(g, longid, v[0], DIM), FP_ERR_INVALID_ARG);
    longid[FP_GALLERY_ID_LEN - 1] = '\0'; /* 63 bytes: the longest allowed */
    assert_int_equal(fp_gallery_add(g, longid, v[1], DIM), FP_OK);
    assert_int_equal(fp_gallery_search(g, v[1], 1, DIM, 1, 1, res), FP_OK);
    assert_string_equal(res[0].top[0].user_id, longid);
    assert_int_equal(fp_gallery_add(g, "", v[0], DIM), FP_ERR_INVALID_ARG);
    /* vectors: zero, NaN, inf */
    float bad[DIM];
    memset(bad, 0, sizeof bad);
    assert_int_equal(fp_gallery_add(g, "z", bad, DIM), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_gallery_search(g, bad, 1, DIM, 1, 1, res), FP_ERR_INVALID_ARG);
    bad[3] = NAN;
    assert_int_equal(fp_gallery_add(g, "z", bad, DIM), FP_ERR_INVALID_ARG);
    bad[3] = INFINITY;
    assert_int_equal(fp_gallery_scores(g, bad, 1, DIM, 1, out, 1), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_gallery_size(g), 2); /* nothing bad got in */
    assert_int_equal(fp_gallery_rows(g), 2);
    assert_true(strlen(fp_last_error()) > 0);
    fp_gallery_free(g);
}

/* Two searchers race a writer. Stable users never change; "churn" users are re-enrolled over and
 * over with the same template (sometimes with a second template appended in between), so every
 * search for them must still find them (the replace protocol never hides a user); "temp" users
 * come and go; the searchers compact the gallery now and then. */
enum { C_STABLE = 600, C_CHURN = 40, C_TEMP = 200, C_ROUNDS = 12000 };
typedef struct race {
    fp_gallery *g;
    float *stable, *churn, *temp;
    atomic_int done;
    atomic_int failures;
    atomic_long searches;
} race;

static void *race_writer(void *arg) {
    race *r = arg;
    char id[32];
    const struct timespec pause = {0, 20000}; /* spread the writes over the readers' run */
    for (int it = 0; it < C_ROUNDS; it++) {
        if (it % 4 == 0) nanosleep(&pause, NULL);
        int c = it % C_CHURN;
        snprintf(id, sizeof id, "churn%d", c);
        if (fp_gallery_add(r->g, id, r->churn + (size_t)c * DIM, DIM) != FP_OK) atomic_fetch_add(&r->failures, 1);
        if (it % 7 == 0) /* a second template for a churn user (dropped by its next add) */
            if (fp_gallery_append(r->g, id, r->temp + (size_t)(it % C_TEMP) * DIM, DIM) != FP_OK)
                atomic_fetch_add(&r->failures, 1);
        int t = (it * 7) % C_TEMP;
        snprintf(id, sizeof id, "temp%d", t);
        if ((it / C_TEMP) % 2 == 0) {
            if (fp_gallery_add(r->g, id, r->temp + (size_t)t * DIM, DIM) != FP_OK) atomic_fetch_add(&r->failures, 1);
        } else {
            fp_gallery_remove(r->g, id); /* NOT_FOUND is fine */
        }
    }
    atomic_store(&r->done, 1);
    return NULL;
}

static void *race_reader(void *arg) {
    race *r = arg;
    float qs[4 * DIM];
    fp_search_result res[4];
    unsigned seed = (unsigned)(uintptr_t)&qs;
    long n = 0;
    while (!atomic_load(&r->done) || n < 50) {
        seed = seed * 1103515245u + 12345u;
        int s = (int)((seed >> 8) % C_STABLE), c = (int)((seed >> 4) % C_CHURN);
        memcpy(qs, r->stable + (size_t)s * DIM, DIM * sizeof(float));
        memcpy(qs + DIM, r->churn + (size_t)c * DIM, DIM * sizeof(float));
        memcpy(qs + 2 * DIM, r->temp + (size_t)(seed % C_TEMP) * DIM, DIM * sizeof(float));
        memcpy(qs + 3 * DIM, r->stable + (size_t)((s + 1) % C_STABLE) * DIM, DIM * sizeof(float));
        const int nq = (n % 2) ? 4 : 2;
        if (fp_gallery_search(r->g, qs, nq, DIM, 4, 1, res) != FP_OK) {
            atomic_fetch_add(&r->failures, 1);
            continue;
        }
        char want[32];
        snprintf(want, sizeof want, "stable%d", s);
        if (res[0].n < 1 || strcmp(res[0].top[0].user_id, want) != 0 || res[0].top[0].score < 0.99f)
            atomic_fetch_add(&r->failures, 1);
        snprintf(want, sizeof want, "churn%d", c);
        if (res[1].n < 1 || strcmp(res[1].top[0].user_id, want) != 0 || res[1].top[0].score < 0.99f)
            atomic_fetch_add(&r->failures, 1);
        for (int q = 0; q < nq; q++)
            for (int i = 0; i < res[q].n; i++)
                if (!(res[q].top[i].score <= 1.01f && res[q].top[i].score >= -1.01f) ||
                    !res[q].top[i].user_id[0] || (i && res[q].top[i].score > res[q].top[i - 1].score))
                    atomic_fetch_add(&r->failures, 1);
        if (n % 300 == 299) { /* compaction is a reader of g (and waits for its writer) */
            fp_gallery *h = NULL;
            if (fp_gallery_compact(r->g, &h) != FP_OK ||
                fp_gallery_search(h, qs, 1, DIM, 1, 1, res) != FP_OK || res[0].n != 1 ||
                res[0].top[0].score < 0.99f || fp_gallery_rows(h) > fp_gallery_rows(r->g))
                atomic_fetch_add(&r->failures, 1);
            fp_gallery_free(h);
        }
        n++;
    }
    atomic_fetch_add(&r->searches, n);
    return NULL;
}

static void race_format(fp_gallery_format fmt) {
    race r = {0};
    r.stable = rand_units(C_STABLE, DIM);
    r.churn = rand_units(C_CHURN, DIM);
    r.temp = rand_units(C_TEMP, DIM);
    atomic_init(&r.done, 0);
    atomic_init(&r.failures, 0);
    atomic_init(&r.searches, 0);
    assert_int_equal(fp_gallery_new(DIM, fmt, &r.g), FP_OK);
    char id[32];
    for (int i = 0; i < C_STABLE; i++) {
        snprintf(id, sizeof id, "stable%d", i);
        assert_int_equal(fp_gallery_add(r.g, id, r.stable + (size_t)i * DIM, DIM), FP_OK);
    }
    for (int i = 0; i < C_CHURN; i++) {
        snprintf(id, sizeof id, "churn%d", i);
        assert_int_equal(fp_gallery_add(r.g, id, r.churn + (size_t)i * DIM, DIM), FP_OK);
    }
    pthread_t w, rd[2];
    assert_int_equal(pthread_create(&rd[0], NULL, race_reader, &r), 0);
    assert_int_equal(pthread_create(&rd[1], NULL, race_reader, &r), 0);
    assert_int_equal(pthread_create(&w, NULL, race_writer, &r), 0);
    pthread_join(w, NULL);
    pthread_join(rd[0], NULL);
    pthread_join(rd[1], NULL);
    fprintf(stderr, "  %s: %ld searches while the writer ran %d rounds, %lld rows (tombstones incl.)\n",
            fmt == FP_GALLERY_FP16 ? "fp16" : "int8", atomic_load(&r.searches), C_ROUNDS,
            (long long)fp_gallery_rows(r.g));
    assert_int_equal(atomic_load(&r.failures), 0);
    assert_int_equal(fp_gallery_size(r.g), C_STABLE + C_CHURN + (C_ROUNDS / C_TEMP % 2 ? C_TEMP : 0));
    fp_gallery_free(r.g);
    free(r.stable);
    free(r.churn);
    free(r.temp);
}

/* Both formats: the int8 searches also quantise their queries and widen panels while the writer
 * fills the partial panel's lanes. */
static void test_concurrent_enrol_search(void **state) {
    (void)state;
    race_format(FP_GALLERY_FP16);
    race_format(FP_GALLERY_INT8);
}

int main(void) {
    const char *filter = getenv("FP_TEST_FILTER");
    if (filter && *filter) cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_conversion),
        cmocka_unit_test(test_search_vs_naive),
        cmocka_unit_test(test_batch_equals_single),
        cmocka_unit_test(test_scalar_vs_avx2),
        cmocka_unit_test(test_threads_equal),
        cmocka_unit_test(test_scores_vs_naive),
        cmocka_unit_test(test_odd_dims),
        cmocka_unit_test(test_int8_error_bound),
        cmocka_unit_test(test_int8_extremes),
        cmocka_unit_test(test_add_replace_remove),
        cmocka_unit_test(test_many_users_hash),
        cmocka_unit_test(test_multirow_margin),
        cmocka_unit_test(test_confidence),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_concurrent_enrol_search),
    };
    return cmocka_run_group_tests_name("gallery", tests, NULL, NULL);
}
