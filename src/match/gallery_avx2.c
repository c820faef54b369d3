/*
 * gallery_avx2.c - the hand-written AVX2/F16C/FMA kernel of the 1:N search: scores of one 32-row
 * panel (4 blocks of 8 rows, match.h layout) against 1..20 queries, plus F16C row conversion.
 * Compiled with -mavx2 -mfma -mf16c and called only after the CPU check in gallery.c.
 *
 * Two paths, chosen by the number of queries:
 *  - one query (the memory-bound case): four blocks = 32 rows per iteration, four independent
 *    FMA chains, each step converting 8 stored values of a block to fp32 (_mm256_cvtph_ps:
 *    8 halves -> 8 floats) and multiplying them with the broadcast query element (software
 *    prefetch measured, see FPG_PREFETCH_PANELS);
 *  - a batch: register tiles of (blocks x queries) accumulators (2x6, 4x3, ...) reuse every
 *    converted row vector for several queries and every broadcast query element for several
 *    rows, so the gallery is streamed from memory once for the whole batch and the loop is
 *    FMA-bound (measured ~94% of the FMA peak on cached data). Converting in registers, not into
 *    an fp32 copy of the panel, is what gets there: the conversion uses other ports than the FMAs,
 *    while the copy cost ~30% in stores and L1 space.
 * Both paths accumulate each dot product in the same order with the same FMAs, so a query gives
 * bit-identical scores alone or inside a batch.
 */
#include "match/match.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

const int fpg_avx2_compiled = 1;

#define FPG_INLINE static inline __attribute__((always_inline))

/* Software prefetch. Batch path: the next panel is prefetched into L2 while the first tile of
 * the current one runs (1M x 20 queries: 98 -> 77 ms on one thread). Single-query path: off by
 * default (FPG_PREFETCH_PANELS panels ahead when > 0): with the panel layout the scan is one
 * sequential stream that the hardware prefetcher already follows, and on this Zen 4 every
 * distance tried (1, 2, 4, 8 panels) was 10-20% slower than none (16.2 vs 18-20 ms CPU per
 * 1M-row query), the loop being bound by one conversion per cycle plus memory. */
#ifndef FPG_BATCH_PREFETCH
#define FPG_BATCH_PREFETCH 1
#endif
#ifndef FPG_PREFETCH_PANELS
#define FPG_PREFETCH_PANELS 0
#endif

FPG_INLINE __m256 load_row8(int fmt, const void *base, size_t idx) {
    if (fmt == FP_GALLERY_INT8) {
        const int8_t *p = (const int8_t *)base + idx;
        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
    }
    const uint16_t *p = (const uint16_t *)base + idx;
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

/* Scales (int8), stores the 8 scores of block j for query qi and returns their threshold mask. */
FPG_INLINE uint32_t finish(__m256 acc, int j, int qi, const float *scales, const float *thr,
                           float *scores, uint32_t *masks) {
    if (scales) acc = _mm256_mul_ps(acc, _mm256_loadu_ps(scales + j * FPG_LANES));
    _mm256_storeu_ps(scores + qi * FPG_PANEL_ROWS + j * FPG_LANES, acc);
    if (!thr) return 0;
    uint32_t m = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(acc, _mm256_set1_ps(thr[qi]), _CMP_GT_OQ));
    m <<= j * FPG_LANES;
    masks[qi] |= m;
    return m;
}

/* One query, a full panel: per dimension one 64-byte line (fp16) holds element d of all 32 rows,
 * so the panel is one sequential stream; four FMA chains (one per block of 8 rows). */
FPG_INLINE uint32_t direct4(int fmt, const void *blocks, const float *scales, int dim,
                            const float *q, const float *thr, float *scores, uint32_t *masks) {
    const size_t esz = fmt == FP_GALLERY_INT8 ? 1 : 2;
    const size_t line = FPG_PANEL_ROWS * esz; /* bytes per dimension step */
    const char *pf = (const char *)blocks + FPG_PREFETCH_PANELS * (size_t)dim * line;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int d = 0;
    for (; d + 4 <= dim; d += 4) {
        if (FPG_PREFETCH_PANELS > 0) {
            /* the lines of these 4 steps, FPG_PREFETCH_PANELS panels ahead */
            const char *p = pf + (size_t)d * line;
            _mm_prefetch(p, _MM_HINT_T0);
            _mm_prefetch(p + 64, _MM_HINT_T0);
            if (esz == 2) {
                _mm_prefetch(p + 128, _MM_HINT_T0);
                _mm_prefetch(p + 192, _MM_HINT_T0);
            }
        }
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            const size_t e = (size_t)(d + u) * FPG_PANEL_ROWS;
            const __m256 b = _mm256_broadcast_ss(q + d + u);
            a0 = _mm256_fmadd_ps(load_row8(fmt, blocks, e), b, a0);
            a1 = _mm256_fmadd_ps(load_row8(fmt, blocks, e + 8), b, a1);
            a2 = _mm256_fmadd_ps(load_row8(fmt, blocks, e + 16), b, a2);
            a3 = _mm256_fmadd_ps(load_row8(fmt, blocks, e + 24), b, a3);
        }
    }
    for (; d < dim; d++) {
        const size_t e = (size_t)d * FPG_PANEL_ROWS;
        const __m256 b = _mm256_broadcast_ss(q + d);
        a0 = _mm256_fmadd_ps(load_row8(fmt, blocks, e), b, a0);
        a1 = _mm256_fmadd_ps(load_row8(fmt, blocks, e + 8), b, a1);
        a2 = _mm256_fmadd_ps(load_row8(fmt, blocks, e + 16), b, a2);
        a3 = _mm256_fmadd_ps(load_row8(fmt, blocks, e + 24), b, a3);
    }
    uint32_t any = finish(a0, 0, 0, scales, thr, scores, masks);
    any |= finish(a1, 1, 0, scales, thr, scores, masks);
    any |= finish(a2, 2, 0, scales, thr, scores, masks);
    any |= finish(a3, 3, 0, scales, thr, scores, masks);
    return any;
}

/* Register tile: NB blocks (from j0) x NQ queries (from q0), converting the stored rows on the
 * fly (the conversions run on other ports than the FMAs, so they are free here, while an fp32
 * copy of the panel would cost load/store bandwidth and L1 space). NB and NQ are constants at
 * every call site, so the loops unroll and acc lives in registers (NB*NQ + NB + 1 <= 16 ymm).
 * pf (may be NULL): 64 bytes of it are prefetched into L2 per dimension step. */
FPG_INLINE uint32_t tile(int fmt, const void *blocks, int dim, const float *q, int j0, int q0,
                         int NB, int NQ, const float *scales, const float *thr, float *scores,
                         uint32_t *masks, const char *pf) {
    __m256 acc[4][6];
#pragma GCC unroll 4
    for (int j = 0; j < NB; j++)
#pragma GCC unroll 6
        for (int i = 0; i < NQ; i++) acc[j][i] = _mm256_setzero_ps();
    const float *qq = q + (size_t)q0 * dim;
    for (int d = 0; d < dim; d++) {
        if (pf) _mm_prefetch(pf + (size_t)d * 64, _MM_HINT_T1);
        __m256 r[4];
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++)
            r[j] = load_row8(fmt, blocks, (size_t)d * FPG_PANEL_ROWS + (size_t)(j0 + j) * FPG_LANES);
#pragma GCC unroll 6
        for (int i = 0; i < NQ; i++) {
            const __m256 b = _mm256_broadcast_ss(qq + (size_t)i * dim + d);
#pragma GCC unroll 4
            for (int j = 0; j < NB; j++) acc[j][i] = _mm256_fmadd_ps(r[j], b, acc[j][i]);
        }
    }
    uint32_t any = 0;
#pragma GCC unroll 4
    for (int j = 0; j < NB; j++)
#pragma GCC unroll 6
        for (int i = 0; i < NQ; i++)
            any |= finish(acc[j][i], j0 + j, q0 + i, scales, thr, scores, masks);
    return any;
}

/* A full panel (4 blocks) against nq >= 2 queries. 2 blocks x 6 queries is the main tile: 12
 * accumulators, 2 conversions + 6 broadcasts per 12 FMAs. The panel (12 KB at dim 192, fp16) and
 * the queries (15 KB for 20) stay in L1 while every query group passes over them. While the first
 * tile runs, the next panel (dim x 64 bytes) is prefetched into L2, one line per step. */
FPG_INLINE uint32_t batch_panel(int fmt, const void *blocks, int dim, const float *q, int nq,
                                const float *scales, const float *thr, float *scores,
                                uint32_t *masks) {
#define T(j0, q0, NB, NQ, pf) tile(fmt, blocks, dim, q, j0, q0, NB, NQ, scales, thr, scores, masks, pf)
    const size_t esz = fmt == FP_GALLERY_INT8 ? 1 : 2;
    const char *next = (const char *)blocks + (size_t)dim * FPG_PANEL_ROWS * esz;
    const int q6 = nq - nq % 6, rem = nq - q6;
    uint32_t any = 0;
    /* the prefetch covers 64 * dim bytes: the whole next panel for fp16 (dim x 32 rows x 2 B),
     * and for int8 (half that) the one after too */
    const char *pf = FPG_BATCH_PREFETCH ? next : NULL;
    for (int j0 = 0; j0 < FPG_PANEL_BLOCKS; j0 += 2) {
        for (int q0 = 0; q0 < q6; q0 += 6) {
            any |= T(j0, q0, 2, 6, pf);
            pf = NULL;
        }
        if (rem == 4) any |= T(j0, q6, 2, 4, pf);
        if (rem == 5) any |= T(j0, q6, 2, 5, pf);
        if (rem >= 4) pf = NULL;
    }
    /* 1..3 left over: 4 blocks x rem keeps 4..12 FMA chains in flight */
    if (rem == 1) any |= T(0, q6, 4, 1, pf);
    if (rem == 2) any |= T(0, q6, 4, 2, pf);
    if (rem == 3) any |= T(0, q6, 4, 3, pf);
    return any;
#undef T
}

/* Fewer than 4 blocks (the end of a range): one block at a time, queries in groups of 6. */
FPG_INLINE uint32_t partial_panel(int fmt, const void *blocks, int nblk, int dim, const float *q,
                                  int nq, const float *scales, const float *thr, float *scores,
                                  uint32_t *masks) {
#define T(NQ) any |= tile(fmt, blocks, dim, q, j, q0, 1, NQ, scales, thr, scores, masks, NULL)
    uint32_t any = 0;
    for (int j = 0; j < nblk; j++)
        for (int q0 = 0; q0 < nq; q0 += 6) {
            switch (nq - q0) {
            case 1: T(1); break;
            case 2: T(2); break;
            case 3: T(3); break;
            case 4: T(4); break;
            case 5: T(5); break;
            default: T(6); break;
            }
        }
    return any;
#undef T
}

uint32_t fpg_panel_avx2(int fmt, const void *blocks, const float *scales, int nblk, int dim,
                        const float *q, int nq, const float *thr, float *scores, uint32_t *masks,
                        float *scratch) {
    (void)scratch; /* the rows are converted in registers */
    if (thr)
        for (int i = 0; i < nq; i++) masks[i] = 0;
    if (fmt == FP_GALLERY_INT8) {
        if (nblk < FPG_PANEL_BLOCKS)
            return partial_panel(FP_GALLERY_INT8, blocks, nblk, dim, q, nq, scales, thr, scores, masks);
        if (nq == 1) return direct4(FP_GALLERY_INT8, blocks, scales, dim, q, thr, scores, masks);
        return batch_panel(FP_GALLERY_INT8, blocks, dim, q, nq, scales, thr, scores, masks);
    }
    if (nblk < FPG_PANEL_BLOCKS)
        return partial_panel(FP_GALLERY_FP16, blocks, nblk, dim, q, nq, scales, thr, scores, masks);
    if (nq == 1) return direct4(FP_GALLERY_FP16, blocks, scales, dim, q, thr, scores, masks);
    return batch_panel(FP_GALLERY_FP16, blocks, dim, q, nq, scales, thr, scores, masks);
}

void fpg_f32_to_f16_avx2(const float *src, uint16_t *dst, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = (uint16_t)_cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

void fpg_f16_to_f32_avx2(const uint16_t *src, float *dst, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = _cvtsh_ss(src[i]);
}

#else /* not x86: the scalar kernel is the only one */

const int fpg_avx2_compiled = 0;

uint32_t fpg_panel_avx2(int fmt, const void *blocks, const float *scales, int nblk, int dim,
                        const float *q, int nq, const float *thr, float *scores, uint32_t *masks,
                        float *scratch) {
    return fpg_panel_scalar(fmt, blocks, scales, nblk, dim, q, nq, thr, scores, masks, scratch);
}
void fpg_f32_to_f16_avx2(const float *src, uint16_t *dst, int n) {
    for (int i = 0; i < n; i++) dst[i] = fpg_f32_to_f16(src[i]);
}
void fpg_f16_to_f32_avx2(const uint16_t *src, float *dst, int n) {
    for (int i = 0; i < n; i++) dst[i] = fpg_f16_to_f32(src[i]);
}

#endif
