/*
 * kernels_avx2.c - AVX2/FMA versions of the runtime's hot loops: the packed GEMM behind CONV2D and
 * FC (also in its implicit-im2col form for KxK convolutions), the depthwise convolution, pooling
 * and the element-wise ops. Compiled with -mavx2 -mfma -mf16c; kernels.c calls into this file only
 * after checking the CPU at run time.
 *
 * GEMM: a 6x16 register tile (12 ymm accumulators) over B pre-packed into 16-channel panels (bias
 * and PReLU slopes padded beside them), bias + activation applied while the tile is still in
 * registers. A is read in place: NHWC activations already are the GEMM's rows, and packing A only
 * pays off when it is reused over many more panels than these layers have. Blocking: 72 rows of A
 * times K chunks of <= 256, so a B panel chunk (<= 16 KB) stays in L1 across the row block
 * (48/120 rows and 128/512 K measured the same within noise).
 *
 * Measured against BLIS 0.9.0 (bli_sgemm, Debian libblis4-openmp) on the same shapes with
 * bench/bench_kernels.c, 2-core AMD EPYC (Zen 4) VM, GFLOP/s for 1 thread / 2 threads:
 *       M     K     N     ours        BLIS
 *    3136    64   128   110 / 217    65 / 126    MobileFaceNet 56x56 expand
 *     784   128    64   114 / 223    84 / 166    28x28 project
 *     196   256   128   115 / 219    96 / 184    14x14
 *      49   512   128   108 / 182    95 / 169    7x7
 *      20   512   128   103 / 179    97 / 176    FC at batch 20
 *       1   512   128    33 /  33    33 /  44    FC at batch 1 (bound by reading B)
 *    4096    24    24    95 / 186    38 /  76    BlazeFace 64x64
 *     256    96    96   113 / 213    78 / 151    BlazeFace 16x16
 *    3136    27    64   108 / 213    34 /  67    3x3 stem as GEMM (K = 27)
 *     784   512   512   107 / 211   104 / 204    large square
 * Ours is faster or equal in every shape class the models have (BLIS packs both operands on every
 * call, which does not amortise at K <= 512, and it has no fused epilogue), so BLIS stays a bench
 * reference only and the library does not link it. Single-thread FMA peak here is ~115 GFLOP/s.
 */
#include <immintrin.h>
#include <stdint.h>

#include "nn/kernels.h"

#if defined(__AVX2__) && defined(__FMA__)

const int nn_avx2_compiled = 1;

#define AI static inline __attribute__((always_inline))

static const int32_t g_mask_tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* Lane mask with the first n (0..8) lanes set. */
AI __m256i tail_mask(int n) { return _mm256_loadu_si256((const __m256i *)(g_mask_tab + 8 - n)); }

AI __m256 act_v(__m256 v, nn_act act, __m256 slope) {
    const __m256 zero = _mm256_setzero_ps();
    switch (act) {
    case NN_ACT_RELU: return _mm256_max_ps(v, zero);
    case NN_ACT_RELU6: return _mm256_min_ps(_mm256_max_ps(v, zero), _mm256_set1_ps(6.0f));
    case NN_ACT_LEAKY:
    case NN_ACT_PRELU:
        return _mm256_blendv_ps(v, _mm256_mul_ps(v, slope), _mm256_cmp_ps(v, zero, _CMP_LT_OQ));
    default: return v;
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* GEMM                                                                                            */
/* ---------------------------------------------------------------------------------------------- */
/* Loads/stores one output row of a 16-wide tile of which nv (1..16) columns are real. */
AI void load_row16(const float *c, int nv, __m256 *v0, __m256 *v1) {
    if (nv >= 16) {
        *v0 = _mm256_loadu_ps(c);
        *v1 = _mm256_loadu_ps(c + 8);
    } else if (nv > 8) {
        *v0 = _mm256_loadu_ps(c);
        *v1 = _mm256_maskload_ps(c + 8, tail_mask(nv - 8));
    } else {
        *v0 = _mm256_maskload_ps(c, tail_mask(nv));
        *v1 = _mm256_setzero_ps();
    }
}

AI void store_row16(float *c, int nv, __m256 v0, __m256 v1) {
    if (nv >= 16) {
        _mm256_storeu_ps(c, v0);
        _mm256_storeu_ps(c + 8, v1);
    } else if (nv > 8) {
        _mm256_storeu_ps(c, v0);
        _mm256_maskstore_ps(c + 8, tail_mask(nv - 8), v1);
    } else {
        _mm256_maskstore_ps(c, tail_mask(nv), v0);
    }
}

AI __m256 load8(const float *c, int nv) {
    return nv >= 8 ? _mm256_loadu_ps(c) : _mm256_maskload_ps(c, tail_mask(nv));
}

AI void store8(float *c, int nv, __m256 v) {
    if (nv >= 8)
        _mm256_storeu_ps(c, v);
    else
        _mm256_maskstore_ps(c, tail_mask(nv), v);
}

/* Per-call constants of one GEMM tile. */
typedef struct tile_ctx {
    size_t lda, ldc;
    const ptrdiff_t *seg; /* A runs: nseg offsets of kc floats each */
    int nseg, kc, nv, first, last;
    const float *bias, *alpha;
    nn_act act;
    float leaky;
} tile_ctx;

/* mr x 16 tile: 12 accumulators + 2 B vectors + 1 broadcast = 15 of the 16 ymm registers.
 * mr is a constant at every call site, so the unused rows vanish. */
#define ROW16(r)                                                                                   \
    if (mr > r) {                                                                                  \
        const __m256 av = _mm256_broadcast_ss(a##r + k);                                           \
        c##r##0 = _mm256_fmadd_ps(av, b0, c##r##0);                                                \
        c##r##1 = _mm256_fmadd_ps(av, b1, c##r##1);                                                \
    }

AI void ukr16(const int mr, const tile_ctx *t, const float *a, const float *b, float *c) {
    const __m256 bi0 = _mm256_loadu_ps(t->bias), bi1 = _mm256_loadu_ps(t->bias + 8);
    __m256 c00 = bi0, c01 = bi1, c10 = bi0, c11 = bi1, c20 = bi0, c21 = bi1;
    __m256 c30 = bi0, c31 = bi1, c40 = bi0, c41 = bi1, c50 = bi0, c51 = bi1;
    const size_t lda = t->lda, ldc = t->ldc;
    const int nv = t->nv;
    if (!t->first) {
        if (mr > 0) load_row16(c + 0 * ldc, nv, &c00, &c01);
        if (mr > 1) load_row16(c + 1 * ldc, nv, &c10, &c11);
        if (mr > 2) load_row16(c + 2 * ldc, nv, &c20, &c21);
        if (mr > 3) load_row16(c + 3 * ldc, nv, &c30, &c31);
        if (mr > 4) load_row16(c + 4 * ldc, nv, &c40, &c41);
        if (mr > 5) load_row16(c + 5 * ldc, nv, &c50, &c51);
    }
    const int kc = t->kc;
    for (int s = 0; s < t->nseg; s++) {
        const float *as = a + t->seg[s];
        const float *a0 = as, *a1 = mr > 1 ? as + lda : as, *a2 = mr > 2 ? as + 2 * lda : as;
        const float *a3 = mr > 3 ? as + 3 * lda : as, *a4 = mr > 4 ? as + 4 * lda : as;
        const float *a5 = mr > 5 ? as + 5 * lda : as;
#pragma GCC unroll 4
        for (int k = 0; k < kc; k++) {
            const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
            b += 16;
            ROW16(0) ROW16(1) ROW16(2) ROW16(3) ROW16(4) ROW16(5)
        }
    }
    if (t->last && t->act != NN_ACT_NONE) {
        __m256 s0 = _mm256_set1_ps(t->leaky), s1 = s0;
        if (t->alpha) {
            s0 = _mm256_loadu_ps(t->alpha);
            s1 = _mm256_loadu_ps(t->alpha + 8);
        }
        const nn_act act = t->act;
        c00 = act_v(c00, act, s0), c01 = act_v(c01, act, s1);
        if (mr > 1) c10 = act_v(c10, act, s0), c11 = act_v(c11, act, s1);
        if (mr > 2) c20 = act_v(c20, act, s0), c21 = act_v(c21, act, s1);
        if (mr > 3) c30 = act_v(c30, act, s0), c31 = act_v(c31, act, s1);
        if (mr > 4) c40 = act_v(c40, act, s0), c41 = act_v(c41, act, s1);
        if (mr > 5) c50 = act_v(c50, act, s0), c51 = act_v(c51, act, s1);
    }
    if (mr > 0) store_row16(c + 0 * ldc, nv, c00, c01);
    if (mr > 1) store_row16(c + 1 * ldc, nv, c10, c11);
    if (mr > 2) store_row16(c + 2 * ldc, nv, c20, c21);
    if (mr > 3) store_row16(c + 3 * ldc, nv, c30, c31);
    if (mr > 4) store_row16(c + 4 * ldc, nv, c40, c41);
    if (mr > 5) store_row16(c + 5 * ldc, nv, c50, c51);
}

/* mr x 8 tile for a last panel of 8 channels (e.g. 24 = 16 + 8 channels). */
#define ROW8(r)                                                                                    \
    if (mr > r) c##r = _mm256_fmadd_ps(_mm256_broadcast_ss(a##r + k), b0, c##r);

AI void ukr8(const int mr, const tile_ctx *t, const float *a, const float *b, float *c) {
    const __m256 bi = _mm256_loadu_ps(t->bias);
    __m256 c0 = bi, c1 = bi, c2 = bi, c3 = bi, c4 = bi, c5 = bi;
    const size_t lda = t->lda, ldc = t->ldc;
    const int nv = t->nv;
    if (!t->first) {
        if (mr > 0) c0 = load8(c + 0 * ldc, nv);
        if (mr > 1) c1 = load8(c + 1 * ldc, nv);
        if (mr > 2) c2 = load8(c + 2 * ldc, nv);
        if (mr > 3) c3 = load8(c + 3 * ldc, nv);
        if (mr > 4) c4 = load8(c + 4 * ldc, nv);
        if (mr > 5) c5 = load8(c + 5 * ldc, nv);
    }
    const int kc = t->kc;
    for (int s = 0; s < t->nseg; s++) {
        const float *as = a + t->seg[s];
        const float *a0 = as, *a1 = mr > 1 ? as + lda : as, *a2 = mr > 2 ? as + 2 * lda : as;
        const float *a3 = mr > 3 ? as + 3 * lda : as, *a4 = mr > 4 ? as + 4 * lda : as;
        const float *a5 = mr > 5 ? as + 5 * lda : as;
#pragma GCC unroll 4
        for (int k = 0; k < kc; k++) {
            const __m256 b0 = _mm256_loadu_ps(b);
            b += 8;
            ROW8(0) ROW8(1) ROW8(2) ROW8(3) ROW8(4) ROW8(5)
        }
    }
    if (t->last && t->act != NN_ACT_NONE) {
        const __m256 s = t->alpha ? _mm256_loadu_ps(t->alpha) : _mm256_set1_ps(t->leaky);
        c0 = act_v(c0, t->act, s);
        if (mr > 1) c1 = act_v(c1, t->act, s);
        if (mr > 2) c2 = act_v(c2, t->act, s);
        if (mr > 3) c3 = act_v(c3, t->act, s);
        if (mr > 4) c4 = act_v(c4, t->act, s);
        if (mr > 5) c5 = act_v(c5, t->act, s);
    }
    if (mr > 0) store8(c + 0 * ldc, nv, c0);
    if (mr > 1) store8(c + 1 * ldc, nv, c1);
    if (mr > 2) store8(c + 2 * ldc, nv, c2);
    if (mr > 3) store8(c + 3 * ldc, nv, c3);
    if (mr > 4) store8(c + 4 * ldc, nv, c4);
    if (mr > 5) store8(c + 5 * ldc, nv, c5);
}

static void tile16(int mr, const tile_ctx *t, const float *a, const float *b, float *c) {
    switch (mr) {
    case 6: ukr16(6, t, a, b, c); break;
    case 5: ukr16(5, t, a, b, c); break;
    case 4: ukr16(4, t, a, b, c); break;
    case 3: ukr16(3, t, a, b, c); break;
    case 2: ukr16(2, t, a, b, c); break;
    default: ukr16(1, t, a, b, c); break;
    }
}

static void tile8(int mr, const tile_ctx *t, const float *a, const float *b, float *c) {
    switch (mr) {
    case 6: ukr8(6, t, a, b, c); break;
    case 5: ukr8(5, t, a, b, c); break;
    case 4: ukr8(4, t, a, b, c); break;
    case 3: ukr8(3, t, a, b, c); break;
    case 2: ukr8(2, t, a, b, c); break;
    default: ukr8(1, t, a, b, c); break;
    }
}

/* Cache blocking: a block of GEMM_MC rows of A (MC x kc floats) is reused from L1/L2 across all
 * panels, and one B panel (kc x 16 floats, <= 16 KB) stays in L1 across the block's tiles. K is
 * split evenly into chunks of at most GEMM_KC so a 16-wide panel chunk never exceeds 16 KB. */
#ifndef GEMM_MC
#define GEMM_MC 72
#endif
#ifndef GEMM_KC
#define GEMM_KC 256
#endif

void nn_gemm_avx2(const nn_gemm_args *g, int m0, int m1, int p0, int p1) {
    static const ptrdiff_t no_off[1] = {0};
    const nn_packed *w = g->w;
    const int K = w->k;
    /* K blocks: plain A splits K evenly into <= GEMM_KC chunks; segmented A takes whole runs,
     * as many as fit in GEMM_KC (at least one). */
    const int segd = g->nseg > 0;
    const int runs_per_blk = segd ? (g->seg_len < GEMM_KC ? GEMM_KC / g->seg_len : 1) : 1;
    const int nkb = segd ? (g->nseg + runs_per_blk - 1) / runs_per_blk : (K + GEMM_KC - 1) / GEMM_KC;
    const int kstep = segd ? g->seg_len : (K + nkb - 1) / nkb;
    tile_ctx t = {.lda = g->lda, .ldc = g->ldc, .act = g->act, .leaky = g->leaky};
    for (int mb = m0; mb < m1; mb += GEMM_MC) {
        const int me = mb + GEMM_MC < m1 ? mb + GEMM_MC : m1;
        for (int kb = 0; kb < nkb; kb++) {
            int brow, aoff; /* first row of B, offset into each A row */
            if (segd) {
                const int s0 = kb * runs_per_blk;
                t.seg = g->seg_off + s0;
                t.nseg = g->nseg - s0 < runs_per_blk ? g->nseg - s0 : runs_per_blk;
                t.kc = g->seg_len;
                brow = g->k0 + s0 * g->seg_len;
                aoff = 0;
            } else {
                t.seg = no_off;
                t.nseg = 1;
                t.kc = K - kb * kstep < kstep ? K - kb * kstep : kstep;
                brow = kb * kstep;
                aoff = brow;
            }
            t.first = kb == 0;
            t.last = kb == nkb - 1;
            for (int p = p0; p < p1; p++) {
                const int j0 = p * NN_NR;
                const int wd = w->npad - j0 < NN_NR ? w->npad - j0 : NN_NR;
                t.nv = w->n - j0 < wd ? w->n - j0 : wd;
                t.bias = w->bias + j0;
                t.alpha = w->alpha ? w->alpha + j0 : NULL;
                const float *bp = w->b + (size_t)j0 * K + (size_t)brow * wd;
                for (int m = mb; m < me; m += NN_MR) {
                    const int mr = me - m < NN_MR ? me - m : NN_MR;
                    const float *a = g->a + (size_t)m * g->lda + aoff;
                    float *c = g->c + (size_t)m * g->ldc + j0;
                    if (wd == NN_NR)
                        tile16(mr, &t, a, bp, c);
                    else
                        tile8(mr, &t, a, bp, c);
                }
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Depthwise convolution                                                                           */
/* ---------------------------------------------------------------------------------------------- */
/* One output pixel over the taps inside the image (rows ky0..ky1, columns kx0..kx1), 32 channels
 * at a time so four FMA chains are in flight; a partial last group uses masked loads, which also
 * keeps the padded weight rows from being over-read. kw is a constant at the call sites. */
AI void dw_px1(const nn_dw_args *d, const float *xn, int iy0, int ky0, int ky1, int ix0, int kx0,
               int kx1, float *o, const int kw) {
    const nn_packed *wt = d->wt;
    const int C = d->c, Cp = wt->npad, W = d->w;
    const size_t dstep = (size_t)d->dw * C;
    const __m256 lk = _mm256_set1_ps(d->leaky);
    for (int cb = 0; cb < C; cb += 32) {
        const int left = C - cb;
        __m256i m[4];
        for (int i = 0; i < 4; i++) m[i] = tail_mask(left - 8 * i < 0 ? 0 : left - 8 * i > 8 ? 8 : left - 8 * i);
        __m256 a[4];
        for (int i = 0; i < 4; i++) a[i] = _mm256_maskload_ps(wt->bias + cb + 8 * i, m[i]);
        for (int ky = ky0; ky < ky1; ky++) {
            const float *xr = xn + ((size_t)(iy0 + ky * d->dh) * W + ix0) * C + cb;
            const float *wr = wt->b + (size_t)ky * kw * Cp + cb;
#pragma GCC unroll 8
            for (int kx = 0; kx < kw; kx++) {
                if (kx < kx0 || kx >= kx1) continue;
                const float *xp = xr + kx * dstep, *wp = wr + (size_t)kx * Cp;
                if (left >= 32) {
#pragma GCC unroll 4
                    for (int i = 0; i < 4; i++)
                        a[i] = _mm256_fmadd_ps(_mm256_loadu_ps(xp + 8 * i),
                                               _mm256_loadu_ps(wp + 8 * i), a[i]);
                } else {
#pragma GCC unroll 4
                    for (int i = 0; i < 4; i++)
                        a[i] = _mm256_fmadd_ps(_mm256_maskload_ps(xp + 8 * i, m[i]),
                                               _mm256_maskload_ps(wp + 8 * i, m[i]), a[i]);
                }
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            if (left <= 8 * i) break;
            const int nc = left - 8 * i > 8 ? 8 : left - 8 * i;
            const __m256 sl = wt->alpha ? _mm256_maskload_ps(wt->alpha + cb + 8 * i, m[i]) : lk;
            store8(o + cb + 8 * i, nc, act_v(a[i], d->act, sl));
        }
    }
}

static void dw_px1_k3(const nn_dw_args *d, const float *xn, int iy0, int ky0, int ky1, int ix0,
                      int kx0, int kx1, float *o) {
    dw_px1(d, xn, iy0, ky0, ky1, ix0, kx0, kx1, o, 3);
}
static void dw_px1_k5(const nn_dw_args *d, const float *xn, int iy0, int ky0, int ky1, int ix0,
                      int kx0, int kx1, float *o) {
    dw_px1(d, xn, iy0, ky0, ky1, ix0, kx0, kx1, o, 5);
}
static void dw_px1_kn(const nn_dw_args *d, const float *xn, int iy0, int ky0, int ky1, int ix0,
                      int kx0, int kx1, float *o) {
    dw_px1(d, xn, iy0, ky0, ky1, ix0, kx0, kx1, o, d->kw);
}

/* Four horizontally adjacent interior pixels (all taps inside the image columns; rows ky0..ky1
 * inside): one weight load feeds four FMAs. kw is a constant at the specialised call sites. */
AI void dw_px4(const nn_dw_args *d, const float *xn, int iy0, int ky0, int ky1, int ox, float *o,
               const int kw) {
    const nn_packed *wt = d->wt;
    const int C = d->c, Cp = wt->npad, W = d->w;
    const size_t xstep = (size_t)d->sw * C, dstep = (size_t)d->dw * C;
    const int ix0 = ox * d->sw - d->pad_l;
    const __m256 lk = _mm256_set1_ps(d->leaky);
    const int cfull = C & ~7;
    for (int cb = 0; cb < cfull; cb += 8) {
        const __m256 bias = _mm256_loadu_ps(wt->bias + cb);
        __m256 acc0 = bias, acc1 = bias, acc2 = bias, acc3 = bias;
        for (int ky = ky0; ky < ky1; ky++) {
            const float *xr = xn + ((size_t)(iy0 + ky * d->dh) * W + ix0) * C + cb;
            const float *wr = wt->b + (size_t)ky * kw * Cp + cb;
#pragma GCC unroll 8
            for (int kx = 0; kx < kw; kx++) {
                const __m256 wv = _mm256_loadu_ps(wr + (size_t)kx * Cp);
                const float *xp = xr + kx * dstep;
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(xp), wv, acc0);
                acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(xp + xstep), wv, acc1);
                acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(xp + 2 * xstep), wv, acc2);
                acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(xp + 3 * xstep), wv, acc3);
            }
        }
        const __m256 s = wt->alpha ? _mm256_loadu_ps(wt->alpha + cb) : lk;
        _mm256_storeu_ps(o + cb, act_v(acc0, d->act, s));
        _mm256_storeu_ps(o + C + cb, act_v(acc1, d->act, s));
        _mm256_storeu_ps(o + 2 * C + cb, act_v(acc2, d->act, s));
        _mm256_storeu_ps(o + 3 * C + cb, act_v(acc3, d->act, s));
    }
    if (cfull < C) {
        const int cb = cfull, nc = C - cb;
        const __m256i m = tail_mask(nc);
        const __m256 bias = _mm256_loadu_ps(wt->bias + cb);
        __m256 acc0 = bias, acc1 = bias, acc2 = bias, acc3 = bias;
        for (int ky = ky0; ky < ky1; ky++) {
            const float *xr = xn + ((size_t)(iy0 + ky * d->dh) * W + ix0) * C + cb;
            const float *wr = wt->b + (size_t)ky * kw * Cp + cb;
            for (int kx = 0; kx < kw; kx++) {
                const __m256 wv = _mm256_loadu_ps(wr + (size_t)kx * Cp);
                const float *xp = xr + kx * dstep;
                acc0 = _mm256_fmadd_ps(_mm256_maskload_ps(xp, m), wv, acc0);
                acc1 = _mm256_fmadd_ps(_mm256_maskload_ps(xp + xstep, m), wv, acc1);
                acc2 = _mm256_fmadd_ps(_mm256_maskload_ps(xp + 2 * xstep, m), wv, acc2);
                acc3 = _mm256_fmadd_ps(_mm256_maskload_ps(xp + 3 * xstep, m), wv, acc3);
            }
        }
        const __m256 s = wt->alpha ? _mm256_loadu_ps(wt->alpha + cb) : lk;
        _mm256_maskstore_ps(o + cb, m, act_v(acc0, d->act, s));
        _mm256_maskstore_ps(o + C + cb, m, act_v(acc1, d->act, s));
        _mm256_maskstore_ps(o + 2 * C + cb, m, act_v(acc2, d->act, s));
        _mm256_maskstore_ps(o + 3 * C + cb, m, act_v(acc3, d->act, s));
    }
}

/* N horizontally adjacent interior pixels for undilated kernels with stride S and width kw (all
 * constants at the call sites): pixel i, tap kx reads input column i*S + kx, so each input vector
 * is loaded once and feeds every tap that uses it (13 loads for 24 FMAs at 3x3 s1, N = 8, instead
 * of 36). N <= 8 accumulators + kw weights + 1 input stay in registers for kw <= 5; the input
 * pointer is bumped column by column so no per-column offsets compete for registers. `nc` < 8
 * (the channel tail) uses masked loads; it is a separate instantiation so the full-block loop
 * does not carry the mask. */
AI void dw_pxn_block(const nn_dw_args *d, const float *xn, int iy0, int ky0, int ky1, int ix0,
                     int cb, float *o, const int N, const int S, const int kw, const int masked) {
    const nn_packed *wt = d->wt;
    const size_t C = (size_t)d->c, Cp = (size_t)wt->npad, W = (size_t)d->w;
    const int nc = masked ? d->c - cb : 8;
    const __m256i m = tail_mask(nc);
    const __m256 bias = _mm256_loadu_ps(wt->bias + cb);
    __m256 acc[8];
#pragma GCC unroll 8
    for (int i = 0; i < N; i++) acc[i] = bias;
    for (int ky = ky0; ky < ky1; ky++) {
        const float *xq = xn + ((size_t)(iy0 + ky * d->dh) * W + (size_t)ix0) * C + cb;
        const float *wr = wt->b + (size_t)ky * kw * Cp + cb;
        __m256 wv[5];
#pragma GCC unroll 5
        for (int kx = 0; kx < kw; kx++) wv[kx] = _mm256_loadu_ps(wr + (size_t)kx * Cp);
#pragma GCC unroll 24
        for (int j = 0; j < (N - 1) * S + kw; j++) {
            const __m256 xv = masked ? _mm256_maskload_ps(xq, m) : _mm256_loadu_ps(xq);
            xq += C;
#pragma GCC unroll 5
            for (int kx = 0; kx < kw; kx++)
                if ((j - kx) % S == 0 && j - kx >= 0 && (j - kx) / S < N)
                    acc[(j - kx) / S] = _mm256_fmadd_ps(xv, wv[kx], acc[(j - kx) / S]);
        }
    }
    const __m256 s = wt->alpha ? _mm256_loadu_ps(wt->alpha + cb) : _mm256_set1_ps(d->leaky);
#pragma GCC unroll 8
    for (int i = 0; i < N; i++) {
        const __m256 v = act_v(acc[i], d->act, s);
        if (masked)
            _mm256_maskstore_ps(o + (size_t)i * C + cb, m, v);
        else
            _mm256_storeu_ps(o + (size_t)i * C + cb, v);
    }
}

#define DW_PXN(name, N, S, KW)                                                                     \
    static __attribute__((noinline)) void name##_tail(const nn_dw_args *d, const float *xn,       \
                                                       int iy0, int ky0, int ky1, int ix0, int cb, \
                                                       float *o) {                                 \
        dw_pxn_block(d, xn, iy0, ky0, ky1, ix0, cb, o, N, S, KW, 1);                               \
    }                                                                                              \
    static void name(const nn_dw_args *d, const float *xn, int iy0, int ky0, int ky1, int ox,      \
                     float *o) {                                                                   \
        const int ix0 = ox * S - d->pad_l, cfull = d->c & ~7;                                      \
        for (int cb = 0; cb < cfull; cb += 8)                                                      \
            dw_pxn_block(d, xn, iy0, ky0, ky1, ix0, cb, o, N, S, KW, 0);                           \
        if (cfull < d->c) name##_tail(d, xn, iy0, ky0, ky1, ix0, cfull, o);                        \
    }

/* Pixels per step at stride 2: 4, 6 and 8 measured alike (the loads dominate); 4 keeps the
 * accumulators and weights in registers without spills. */
#define DW_N2 4
DW_PXN(dw_pxn_s1k3, 8, 1, 3)
DW_PXN(dw_pxn_s2k3, DW_N2, 2, 3)
DW_PXN(dw_pxn_s1k5, 8, 1, 5)
DW_PXN(dw_pxn_s2k5, DW_N2, 2, 5)

static void dw_px4_k3(const nn_dw_args *d, const float *xn, int iy0, int ky0, int ky1, int ox,
                      float *o) {
    dw_px4(d, xn, iy0, ky0, ky1, ox, o, 3);
}
static void dw_px4_k5(const nn_dw_args *d, const float *xn, int iy0, int ky0, int ky1, int ox,
                      float *o) {
    dw_px4(d, xn, iy0, ky0, ky1, ox, o, 5);
}
static void dw_px4_kn(const nn_dw_args *d, const float *xn, int iy0, int ky0, int ky1, int ox,
                      float *o) {
    dw_px4(d, xn, iy0, ky0, ky1, ox, o, d->kw);
}

void nn_dw_avx2(const nn_dw_args *d, int r0, int r1) {
    const int C = d->c, OW = d->ow;
    typedef void (*px_fn)(const nn_dw_args *, const float *, int, int, int, int, float *);
    px_fn px4 = d->kw == 3 ? dw_px4_k3 : d->kw == 5 ? dw_px4_k5 : dw_px4_kn, pxn = NULL;
    if (d->dw == 1 && (d->sw == 1 || d->sw == 2) && (d->kw == 3 || d->kw == 5))
        pxn = d->sw == 1 ? (d->kw == 3 ? dw_pxn_s1k3 : dw_pxn_s1k5)
                         : (d->kw == 3 ? dw_pxn_s2k3 : dw_pxn_s2k5);
    const int npx = d->sw == 1 ? 8 : DW_N2;
    void (*px1)(const nn_dw_args *, const float *, int, int, int, int, int, int, float *) =
        d->kw == 3 ? dw_px1_k3 : d->kw == 5 ? dw_px1_k5 : dw_px1_kn;
    /* Output columns whose taps are all inside the image: [oxa, oxb). */
    int oxa = (d->pad_l + d->sw - 1) / d->sw;
    int lim = d->w - 1 - (d->kw - 1) * d->dw + d->pad_l;
    int oxb = lim >= 0 ? lim / d->sw + 1 : 0;
    if (oxa > OW) oxa = OW;
    if (oxb > OW) oxb = OW;
    if (oxb < oxa) oxb = oxa;
    for (int r = r0; r < r1; r++) {
        const int n = r / d->oh, oy = r % d->oh;
        const float *xn = d->x + (size_t)n * d->h * d->w * C;
        float *yr = d->y + (size_t)r * OW * C;
        const int iy0 = oy * d->sh - d->pad_t;
        int ky0 = 0, ky1 = d->kh;
        while (ky0 < ky1 && iy0 + ky0 * d->dh < 0) ky0++;
        while (ky1 > ky0 && iy0 + (ky1 - 1) * d->dh >= d->h) ky1--;
        for (int ox = 0; ox < OW;) {
            const int ix0 = ox * d->sw - d->pad_l;
            if (pxn && ox >= oxa && ox + npx <= oxb) {
                pxn(d, xn, iy0, ky0, ky1, ox, yr + (size_t)ox * C);
                ox += npx;
                continue;
            }
            if (ox >= oxa && ox + 4 <= oxb) {
                px4(d, xn, iy0, ky0, ky1, ox, yr + (size_t)ox * C);
                ox += 4;
                continue;
            }
            int kx0 = 0, kx1 = d->kw;
            while (kx0 < kx1 && ix0 + kx0 * d->dw < 0) kx0++;
            while (kx1 > kx0 && ix0 + (kx1 - 1) * d->dw >= d->w) kx1--;
            px1(d, xn, iy0, ky0, ky1, ix0, kx0, kx1, yr + (size_t)ox * C);
            ox++;
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Pooling                                                                                         */
/* ---------------------------------------------------------------------------------------------- */
/* Taps outer, channels inner: the output pixel is the accumulator (it stays in L1), so every tap
 * is a plain stream of loads and max/add. is_max is a constant at the call sites. */
AI void pool_rows(const nn_pool_args *p, int r0, int r1, const int is_max) {
    const int C = p->c, W = p->w, cfull = C & ~7;
    const __m256i tm = tail_mask(C - cfull);
    const __m256 zero = _mm256_setzero_ps();
    for (int r = r0; r < r1; r++) {
        const int n = r / p->oh, oy = r % p->oh;
        const int y0 = oy * p->sh - p->pad_t, ys = y0 > 0 ? y0 : 0;
        const int ye = y0 + p->kh < p->h ? y0 + p->kh : p->h;
        const float *xn = p->x + (size_t)n * p->h * W * C;
        for (int ox = 0; ox < p->ow; ox++) {
            const int x0 = ox * p->sw - p->pad_l, xs = x0 > 0 ? x0 : 0;
            const int xe = x0 + p->kw < W ? x0 + p->kw : W;
            float *o = p->y + ((size_t)r * p->ow + ox) * C;
            const int taps = (ye - ys) * (xe - xs);
            if (taps <= 0) {
                for (int cb = 0; cb < C; cb += 8) store8(o + cb, C - cb, zero);
                continue;
            }
            int first = 1;
            for (int iy = ys; iy < ye; iy++) {
                const float *xr = xn + (size_t)iy * W * C;
                for (int ix = xs; ix < xe; ix++) {
                    const float *xp = xr + (size_t)ix * C;
                    if (first) {
                        for (int cb = 0; cb < cfull; cb += 8)
                            _mm256_storeu_ps(o + cb, _mm256_loadu_ps(xp + cb));
                        if (cfull < C)
                            _mm256_maskstore_ps(o + cfull, tm, _mm256_maskload_ps(xp + cfull, tm));
                        first = 0;
                        continue;
                    }
                    for (int cb = 0; cb < cfull; cb += 8) {
                        const __m256 v = _mm256_loadu_ps(xp + cb), a = _mm256_loadu_ps(o + cb);
                        _mm256_storeu_ps(o + cb, is_max ? _mm256_max_ps(v, a) : _mm256_add_ps(a, v));
                    }
                    if (cfull < C) {
                        const __m256 v = _mm256_maskload_ps(xp + cfull, tm);
                        const __m256 a = _mm256_maskload_ps(o + cfull, tm);
                        _mm256_maskstore_ps(o + cfull, tm,
                                            is_max ? _mm256_max_ps(v, a) : _mm256_add_ps(a, v));
                    }
                }
            }
            if (is_max && p->act == NN_ACT_NONE) continue;
            const __m256 vt = _mm256_set1_ps((float)taps);
            for (int cb = 0; cb < C; cb += 8) {
                const int nc = C - cb < 8 ? C - cb : 8;
                __m256 a = load8(o + cb, nc);
                if (!is_max) a = _mm256_div_ps(a, vt);
                store8(o + cb, nc, act_v(a, p->act, zero));
            }
        }
    }
}

void nn_pool_avx2(const nn_pool_args *p, int r0, int r1) {
    if (p->is_max)
        pool_rows(p, r0, r1, 1);
    else
        pool_rows(p, r0, r1, 0);
}

/* ---------------------------------------------------------------------------------------------- */
/* Element-wise                                                                                    */
/* ---------------------------------------------------------------------------------------------- */
AI __m256 bin_v(nn_op_type op, __m256 x, __m256 z) {
    switch (op) {
    case NN_OP_ADD: return _mm256_add_ps(x, z);
    case NN_OP_SUB: return _mm256_sub_ps(x, z);
    case NN_OP_MUL: return _mm256_mul_ps(x, z);
    case NN_OP_DIV: return _mm256_div_ps(x, z);
    case NN_OP_MIN: return _mm256_min_ps(x, z);
    case NN_OP_MAX: return _mm256_max_ps(x, z);
    case NN_OP_PRELU:
        return _mm256_blendv_ps(x, _mm256_mul_ps(x, z),
                                _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
    default: return x;
    }
}

AI void bin_loop(nn_op_type op, nn_act act, const float *a, const int sa, const float *b,
                 const int sb, float *o, size_t n) {
    const __m256 va = _mm256_set1_ps(a[0]), vb = _mm256_set1_ps(b[0]), zero = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = sa ? _mm256_loadu_ps(a + i) : va, z = sb ? _mm256_loadu_ps(b + i) : vb;
        _mm256_storeu_ps(o + i, act_v(bin_v(op, x, z), act, zero));
    }
    if (i < n) {
        const __m256i m = tail_mask((int)(n - i));
        __m256 x = sa ? _mm256_maskload_ps(a + i, m) : va;
        __m256 z = sb ? _mm256_maskload_ps(b + i, m) : vb;
        _mm256_maskstore_ps(o + i, m, act_v(bin_v(op, x, z), act, zero));
    }
}

AI void bin_strides(nn_op_type op, nn_act act, const float *a, int sa, const float *b, int sb,
                    float *o, size_t n) {
    if (sa && sb)
        bin_loop(op, act, a, 1, b, 1, o, n);
    else if (sa)
        bin_loop(op, act, a, 1, b, 0, o, n);
    else if (sb)
        bin_loop(op, act, a, 0, b, 1, o, n);
    else
        bin_loop(op, act, a, 0, b, 0, o, n);
}

void nn_binary_avx2(nn_op_type op, nn_act act, const float *a, int sa, const float *b, int sb,
                    float *o, size_t n) {
    switch (op) {
    case NN_OP_ADD: bin_strides(NN_OP_ADD, act, a, sa, b, sb, o, n); break;
    case NN_OP_SUB: bin_strides(NN_OP_SUB, act, a, sa, b, sb, o, n); break;
    case NN_OP_MUL: bin_strides(NN_OP_MUL, act, a, sa, b, sb, o, n); break;
    case NN_OP_DIV: bin_strides(NN_OP_DIV, act, a, sa, b, sb, o, n); break;
    case NN_OP_MIN: bin_strides(NN_OP_MIN, act, a, sa, b, sb, o, n); break;
    case NN_OP_MAX: bin_strides(NN_OP_MAX, act, a, sa, b, sb, o, n); break;
    case NN_OP_PRELU: bin_strides(NN_OP_PRELU, NN_ACT_NONE, a, sa, b, sb, o, n); break;
    default: break;
    }
}

AI __m256 un_v(nn_op_type op, __m256 x, __m256 alpha) {
    const __m256 zero = _mm256_setzero_ps();
    switch (op) {
    case NN_OP_RELU: return _mm256_max_ps(x, zero);
    case NN_OP_RELU6: return _mm256_min_ps(_mm256_max_ps(x, zero), _mm256_set1_ps(6.0f));
    case NN_OP_ABS: return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
    case NN_OP_NEG: return _mm256_xor_ps(_mm256_set1_ps(-0.0f), x);
    case NN_OP_SQRT: return _mm256_sqrt_ps(x);
    case NN_OP_RSQRT: return _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_sqrt_ps(x));
    case NN_OP_SQUARE: return _mm256_mul_ps(x, x);
    case NN_OP_LEAKY_RELU:
        return _mm256_blendv_ps(x, _mm256_mul_ps(x, alpha), _mm256_cmp_ps(x, zero, _CMP_LT_OQ));
    default: return x;
    }
}

AI void un_loop(nn_op_type op, const float *x, float *y, size_t n, float alpha) {
    const __m256 al = _mm256_set1_ps(alpha);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, un_v(op, _mm256_loadu_ps(x + i), al));
    if (i < n) {
        const __m256i m = tail_mask((int)(n - i));
        _mm256_maskstore_ps(y + i, m, un_v(op, _mm256_maskload_ps(x + i, m), al));
    }
}

int nn_unary_avx2(nn_op_type op, const float *x, float *y, size_t n, float alpha) {
    switch (op) {
    case NN_OP_RELU: un_loop(NN_OP_RELU, x, y, n, alpha); return 1;
    case NN_OP_RELU6: un_loop(NN_OP_RELU6, x, y, n, alpha); return 1;
    case NN_OP_ABS: un_loop(NN_OP_ABS, x, y, n, alpha); return 1;
    case NN_OP_NEG: un_loop(NN_OP_NEG, x, y, n, alpha); return 1;
    case NN_OP_SQRT: un_loop(NN_OP_SQRT, x, y, n, alpha); return 1;
    case NN_OP_RSQRT: un_loop(NN_OP_RSQRT, x, y, n, alpha); return 1;
    case NN_OP_SQUARE: un_loop(NN_OP_SQUARE, x, y, n, alpha); return 1;
    case NN_OP_LEAKY_RELU: un_loop(NN_OP_LEAKY_RELU, x, y, n, alpha); return 1;
    default: return 0;
    }
}

#else /* built without AVX2/FMA (non-x86 or a compiler without the flags): never selected */

const int nn_avx2_compiled = 0;

void nn_gemm_avx2(const nn_gemm_args *g, int m0, int m1, int p0, int p1) {
    nn_gemm_scalar(g, m0, m1, p0, p1);
}
void nn_dw_avx2(const nn_dw_args *d, int r0, int r1) { nn_dw_scalar(d, r0, r1); }
void nn_pool_avx2(const nn_pool_args *p, int r0, int r1) { nn_pool_scalar(p, r0, r1); }
void nn_binary_avx2(nn_op_type op, nn_act act, const float *a, int sa, const float *b, int sb,
                    float *o, size_t n) {
    (void)op, (void)act, (void)a, (void)sa, (void)b, (void)sb, (void)o, (void)n;
}
int nn_unary_avx2(nn_op_type op, const float *x, float *y, size_t n, float alpha) {
    (void)op, (void)x, (void)y, (void)n, (void)alpha;
    return 0;
}

#endif
