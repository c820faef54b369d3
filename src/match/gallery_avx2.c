/*
 * gallery_avx2.c - the hand-written AVX2/F16C/FMA kernels of the 1:N search: scores of one 32-row
 * panel (4 blocks of 8 rows, match.h layout) against 1..20 queries, plus F16C row conversion.
 * Compiled with -mavx2 -mfma -mf16c and called only after the CPU check in gallery.c.
 *
 * fp16 rows, two paths chosen by the number of queries:
 *  - one query (the memory-bound case): four blocks = 32 rows per iteration, four independent
 *    FMA chains, each step converting 8 stored values of a block to fp32 (_mm256_cvtph_ps:
 *    8 halves -> 8 floats) and multiplying them with the broadcast query element (software
 *    prefetch measured, see FPG_PREFETCH_PANELS);
 *  - a batch: register tiles of (blocks x queries) accumulators (2x6, 4x3, ...) reuse every
 *    converted row vector for several queries and every broadcast query element for several
 *    rows, so the gallery is streamed from memory once for the whole batch and the loop is
 *    FMA-bound (measured ~94% of the FMA peak on cached data). Converting in registers, not into
 *    an fp32 copy of the panel, is what gets there: the conversion uses other ports than the FMAs,
 *    while the copy cost ~30% in stores and L1 space (re-measured: 136 vs 111 ns per panel and
 *    query cached, 152 vs 122 streamed). Streaming 1M rows costs ~10% over cached panels;
 *    prefetching 2 or 3 panels ahead, an L1 prefetch in the last tile, or pinning the
 *    accumulators (as the int8 tile does) all measured within noise. The floor is the FMA count:
 *    1M x 192 x 20 multiply-adds at 16 per cycle = 3.3 ms per query at 3.66 GHz, so an fp16 batch
 *    cannot reach 3 ms per query on one core; int8 rows can (below).
 * Both paths accumulate each dot product in the same order with the same FMAs, so a query gives
 * bit-identical scores alone or inside a batch.
 *
 * int8 rows are multiplied with int16 queries (quantised once per search, match.h) in exact
 * integer arithmetic: _mm256_madd_epi16 multiplies 16 int16 pairs and adds each pair into an
 * int32 lane, i.e. 8 rows x 2 dimensions per instruction, 16 multiply-adds where an fp32 FMA
 * does 8; it issues on the same two pipes as the FMA, so the batch kernel's ceiling is twice the
 * fp32 one (1M x 192 x 20: ~3.8 ms of FMAs per query, ~1.9 ms of madds). The operands must hold
 * (row r, dims 2p and 2p+1) in each 32-bit lane, while the panel stores one dimension per 32-byte
 * line: the batch path therefore widens the panel once (interleave two dimension lines, sign-
 * extend to int16) into L1 scratch, and every register tile (blocks x queries) then reads it
 * with plain loads, the widening amortised over all the queries of the batch. The single query
 * widens in registers (it waits on memory anyway).
 * int16 x int16 instead of the _mm256_maddubs_epi16 route (u8 x s8, 32 per instruction, but its
 * int16 pair sums need a second madd to widen them, so the same 16 per multiply-pipe slot): that
 * route saves one add per 32 multiply-adds (a synthetic loop: 29 vs 26 multiply-adds per cycle),
 * and needs a 7-bit query (to keep the u8 x s8 pair sums from saturating without a sign op per
 * product), whose error (~5e-4 per score) would match the rows'; the int16 query adds < 1e-5.
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
/* int8 batch path: while a panel is widened, the panel FPG_I8_PREFETCH_PANELS ahead is prefetched
 * into L2, one line per pair (6 KB at dim 192). Measured on 31,250 panels x 20 queries (1M rows,
 * ns per panel and query, 3 runs): no prefetch 103-106, into L1 (T0) 1 panel ahead 100-105,
 * into L2 (T1) 1, 2, 3 or 4 panels ahead 82-85, 6 ahead 86-92; the same panels from L1: 77. A
 * burst of 96 L1 prefetches while widening seems to queue behind the L1 miss buffers. */
#ifndef FPG_I8_PREFETCH_PANELS
#define FPG_I8_PREFETCH_PANELS 2
#endif
#ifndef FPG_PREFETCH_PANELS
#define FPG_PREFETCH_PANELS 0
#endif

FPG_INLINE __m256 load_row8(const void *base, size_t idx) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + idx)));
}

/* Threshold mask of the 8 scores of block j for query qi (stored already). */
FPG_INLINE uint32_t mask8(__m256 v, int j, int qi, const float *thr, uint32_t *masks) {
    if (!thr) return 0;
    uint32_t m = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_set1_ps(thr[qi]), _CMP_GT_OQ));
    m <<= j * FPG_LANES;
    masks[qi] |= m;
    return m;
}

/* fp16: stores the 8 scores of block j for query qi and returns their threshold mask. */
FPG_INLINE uint32_t finish(__m256 acc, int j, int qi, const float *thr, float *scores,
                           uint32_t *masks) {
    _mm256_storeu_ps(scores + qi * FPG_PANEL_ROWS + j * FPG_LANES, acc);
    return mask8(acc, j, qi, thr, masks);
}

/* int8: (float)idot * row scale * query scale, the order of the scalar kernel (match.h). */
FPG_INLINE uint32_t finish_i8(__m256i acc, int j, int qi, const float *scales, const float *iscale,
                              const float *thr, float *scores, uint32_t *masks) {
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), _mm256_loadu_ps(scales + j * FPG_LANES));
    v = _mm256_mul_ps(v, _mm256_set1_ps(iscale[qi]));
    _mm256_storeu_ps(scores + qi * FPG_PANEL_ROWS + j * FPG_LANES, v);
    return mask8(v, j, qi, thr, masks);
}

/* ---------------------------------------------------------------------------------------------- */
/* fp16 rows                                                                                       */
/* ---------------------------------------------------------------------------------------------- */
/* One query, a full panel: per dimension one 64-byte line holds element d of all 32 rows, so the
 * panel is one sequential stream; four FMA chains (one per block of 8 rows). */
FPG_INLINE uint32_t direct4(const void *blocks, int dim, const float *q, const float *thr,
                            float *scores, uint32_t *masks) {
    const size_t line = FPG_PANEL_ROWS * 2; /* bytes per dimension step */
    const char *pf = (const char *)blocks + FPG_PREFETCH_PANELS * (size_t)dim * line;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int d = 0;
    for (; d + 4 <= dim; d += 4) {
        if (FPG_PREFETCH_PANELS > 0) {
            /* the lines of these 4 steps, FPG_PREFETCH_PANELS panels ahead */
            const char *p = pf + (size_t)d * line;
            _mm_prefetch(p, _MM_HINT_T0);
            _mm_prefetch(p + 64, _MM_HINT_T0);
            _mm_prefetch(p + 128, _MM_HINT_T0);
            _mm_prefetch(p + 192, _MM_HINT_T0);
        }
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            const size_t e = (size_t)(d + u) * FPG_PANEL_ROWS;
            const __m256 b = _mm256_broadcast_ss(q + d + u);
            a0 = _mm256_fmadd_ps(load_row8(blocks, e), b, a0);
            a1 = _mm256_fmadd_ps(load_row8(blocks, e + 8), b, a1);
            a2 = _mm256_fmadd_ps(load_row8(blocks, e + 16), b, a2);
            a3 = _mm256_fmadd_ps(load_row8(blocks, e + 24), b, a3);
        }
    }
    for (; d < dim; d++) {
        const size_t e = (size_t)d * FPG_PANEL_ROWS;
        const __m256 b = _mm256_broadcast_ss(q + d);
        a0 = _mm256_fmadd_ps(load_row8(blocks, e), b, a0);
        a1 = _mm256_fmadd_ps(load_row8(blocks, e + 8), b, a1);
        a2 = _mm256_fmadd_ps(load_row8(blocks, e + 16), b, a2);
        a3 = _mm256_fmadd_ps(load_row8(blocks, e + 24), b, a3);
    }
    uint32_t any = finish(a0, 0, 0, thr, scores, masks);
    any |= finish(a1, 1, 0, thr, scores, masks);
    any |= finish(a2, 2, 0, thr, scores, masks);
    any |= finish(a3, 3, 0, thr, scores, masks);
    return any;
}

/* Register tile: NB blocks (from j0) x NQ queries (from q0), converting the stored rows on the
 * fly (the conversions run on other ports than the FMAs, so they are free here, while an fp32
 * copy of the panel would cost load/store bandwidth and L1 space). NB and NQ are constants at
 * every call site, so the loops unroll and acc lives in registers (NB*NQ + NB + 1 <= 16 ymm).
 * pf (may be NULL): 64 bytes of it are prefetched into L2 per dimension step. */
FPG_INLINE uint32_t tile(const void *blocks, int dim, const float *q, int j0, int q0, int NB,
                         int NQ, const float *thr, float *scores, uint32_t *masks,
                         const char *pf) {
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
            r[j] = load_row8(blocks, (size_t)d * FPG_PANEL_ROWS + (size_t)(j0 + j) * FPG_LANES);
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
        for (int i = 0; i < NQ; i++) any |= finish(acc[j][i], j0 + j, q0 + i, thr, scores, masks);
    return any;
}

/* A full panel (4 blocks) against nq >= 2 queries. 2 blocks x 6 queries is the main tile: 12
 * accumulators, 2 conversions + 6 broadcasts per 12 FMAs. The panel (12 KB at dim 192) and the
 * queries (15 KB for 20) stay in L1 while every query group passes over them. While the first
 * tile runs, the next panel (dim x 64 bytes) is prefetched into L2, one line per step. */
FPG_INLINE uint32_t batch_panel(const void *blocks, int dim, const float *q, int nq,
                                const float *thr, float *scores, uint32_t *masks) {
#define T(j0, q0, NB, NQ, pf) tile(blocks, dim, q, j0, q0, NB, NQ, thr, scores, masks, pf)
    const char *next = (const char *)blocks + (size_t)dim * FPG_PANEL_ROWS * 2;
    const int q6 = nq - nq % 6, rem = nq - q6;
    uint32_t any = 0;
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
FPG_INLINE uint32_t partial_panel(const void *blocks, int nblk, int dim, const float *q, int nq,
                                  const float *thr, float *scores, uint32_t *masks) {
#define T(NQ) any |= tile(blocks, dim, q, j, q0, 1, NQ, thr, scores, masks, NULL)
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

/* ---------------------------------------------------------------------------------------------- */
/* int8 rows x int16 queries                                                                       */
/* ---------------------------------------------------------------------------------------------- */
/* 8 rows x dims (2p, 2p+1) as int16 pairs, from 8 bytes of each dimension line. */
FPG_INLINE __m256i pair8(__m128i d0, __m128i d1) {
    return _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(d0, d1));
}

/* Query pair (2p, 2p+1) in every 32-bit lane. */
FPG_INLINE __m256i qpair(const int16_t *q, int p) {
    int32_t v;
    __builtin_memcpy(&v, q + 2 * p, 4);
    return _mm256_set1_epi32(v);
}

/* Widens the first nblk blocks of a panel into int16 pairs:
 *     w[(p * FPG_PANEL_ROWS + row) * 2 + k] = element 2p + k of row     (0 past an odd dim)
 * so one aligned 32-byte load of w is a madd operand (8 rows x 2 dims). pf (may be NULL): a later
 * panel, one 64-byte line prefetched per pair (an int8 panel is dim x 32 bytes). */
FPG_INLINE void widen_panel(const int8_t *blocks, int nblk, int dim, int16_t *w, const char *pf) {
    const int np = (dim + 1) / 2;
    for (int p = 0; p < np; p++) {
        const int8_t *l0 = blocks + (size_t)(2 * p) * FPG_PANEL_ROWS, *l1 = l0 + FPG_PANEL_ROWS;
        const int has1 = 2 * p + 1 < dim;
        int16_t *o = w + (size_t)p * FPG_PANEL_ROWS * 2;
        if (pf) _mm_prefetch(pf + (size_t)p * 64, _MM_HINT_T1);
        if (nblk == FPG_PANEL_BLOCKS) {
            for (int h = 0; h < 2; h++) {
                const __m128i a = _mm_loadu_si128((const __m128i *)(l0 + 16 * h));
                const __m128i b = has1 ? _mm_loadu_si128((const __m128i *)(l1 + 16 * h))
                                       : _mm_setzero_si128();
                _mm256_store_si256((__m256i *)(o + 32 * h), _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(a, b)));
                _mm256_store_si256((__m256i *)(o + 32 * h + 16),
                                   _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(a, b)));
            }
        } else {
            for (int j = 0; j < nblk; j++) { /* 8-byte loads: later blocks may be being written */
                const __m128i a = _mm_loadl_epi64((const __m128i *)(l0 + FPG_LANES * j));
                const __m128i b = has1 ? _mm_loadl_epi64((const __m128i *)(l1 + FPG_LANES * j))
                                       : _mm_setzero_si128();
                _mm256_store_si256((__m256i *)(o + 16 * j), pair8(a, b));
            }
        }
    }
}

/* Register tile over the widened panel: NB blocks (from j0) x NQ queries (from q0), one madd + one
 * add per accumulator and pair; NB*NQ accumulators + NB rows + query + product <= 16 ymm.
 * The empty asm pins each accumulator to a register at the end of every step: without it GCC 12
 * splits their live ranges and keeps half of them on the stack inside the loop (53 instead of 80
 * G multiply-adds/s on a cached panel). With it the loop is the plain 2 loads, 6 broadcasts, 12
 * madds and 12 adds per pair; a hand-written asm version of that loop was no faster (82 vs 77 ns
 * per panel and query), and the madd + add mix itself tops out at ~1.6 madds per cycle on this
 * Zen 4 (the tile sustains ~1.4: 77 ns per panel and query at 3.66 GHz). */
FPG_INLINE uint32_t tile_i8(const int16_t *w, int dim, const fpg_queries *q, int j0, int q0,
                            int NB, int NQ, const float *scales, const float *thr,
                            float *scores, uint32_t *masks) {
    const int np = (dim + 1) / 2, qs = fpg_q16_stride(dim);
    const int16_t *qq = q->i16 + (size_t)q0 * qs;
    __m256i acc[4][6];
#pragma GCC unroll 4
    for (int j = 0; j < NB; j++)
#pragma GCC unroll 6
        for (int i = 0; i < NQ; i++) acc[j][i] = _mm256_setzero_si256();
    for (int p = 0; p < np; p++) {
        __m256i r[4];
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++)
            r[j] = _mm256_load_si256((const __m256i *)(w + ((size_t)p * FPG_PANEL_ROWS + (size_t)(j0 + j) * FPG_LANES) * 2));
#pragma GCC unroll 6
        for (int i = 0; i < NQ; i++) {
            const __m256i b = qpair(qq + (size_t)i * qs, p);
#pragma GCC unroll 4
            for (int j = 0; j < NB; j++)
                acc[j][i] = _mm256_add_epi32(acc[j][i], _mm256_madd_epi16(r[j], b));
        }
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++)
#pragma GCC unroll 6
            for (int i = 0; i < NQ; i++) __asm__("" : "+x"(acc[j][i]));
    }
    uint32_t any = 0;
#pragma GCC unroll 4
    for (int j = 0; j < NB; j++)
#pragma GCC unroll 6
        for (int i = 0; i < NQ; i++)
            any |= finish_i8(acc[j][i], j0 + j, q0 + i, scales, q->iscale, thr, scores, masks);
    return any;
}

/* A full widened panel against nq >= 2 queries: 2 blocks x 6 queries is the main tile (all 16
 * ymm; 2 x 5 measured the same), 4 blocks x 1..2 for the rest. The widened panel (12 KB at dim
 * 192) and the int16 queries (7.7 KB for 20) stay in L1 across the tiles. */
FPG_INLINE uint32_t batch_panel_i8(const int16_t *w, int dim, const fpg_queries *q, int nq,
                                   const float *scales, const float *thr, float *scores,
                                   uint32_t *masks) {
#define T(j0, q0, NB, NQ) tile_i8(w, dim, q, j0, q0, NB, NQ, scales, thr, scores, masks)
    const int q6 = nq - nq % 6, rem = nq - q6;
    uint32_t any = 0;
    for (int j0 = 0; j0 < FPG_PANEL_BLOCKS; j0 += 2) {
        for (int q0 = 0; q0 < q6; q0 += 6) any |= T(j0, q0, 2, 6);
        if (rem == 5) any |= T(j0, q6, 2, 5);
        if (rem == 4) any |= T(j0, q6, 2, 4);
        if (rem == 3) any |= T(j0, q6, 2, 3);
    }
    if (rem == 1) any |= T(0, q6, 4, 1);
    if (rem == 2) any |= T(0, q6, 4, 2);
    return any;
#undef T
}

FPG_INLINE uint32_t partial_panel_i8(const int16_t *w, int nblk, int dim, const fpg_queries *q,
                                     int nq, const float *scales, const float *thr,
                                     float *scores, uint32_t *masks) {
#define T(NQ) any |= tile_i8(w, dim, q, j, q0, 1, NQ, scales, thr, scores, masks)
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

/* One query, a full panel: widened in registers (4 x 16-byte loads, 4 unpacks, 4 sign extensions
 * per pair; the scan waits on memory, not on these). */
FPG_INLINE uint32_t direct4_i8(const int8_t *blocks, int dim, const fpg_queries *q,
                               const float *scales, const float *thr, float *scores,
                               uint32_t *masks) {
    const int np = dim / 2;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (int p = 0; p < np; p++) {
        const int8_t *l0 = blocks + (size_t)(2 * p) * FPG_PANEL_ROWS, *l1 = l0 + FPG_PANEL_ROWS;
        const __m256i b = qpair(q->i16, p);
        const __m128i x0 = _mm_loadu_si128((const __m128i *)l0);
        const __m128i y0 = _mm_loadu_si128((const __m128i *)l1);
        const __m128i x1 = _mm_loadu_si128((const __m128i *)(l0 + 16));
        const __m128i y1 = _mm_loadu_si128((const __m128i *)(l1 + 16));
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_unpacklo_epi8(x0, y0)), b));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_unpackhi_epi8(x0, y0)), b));
        a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_unpacklo_epi8(x1, y1)), b));
        a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_unpackhi_epi8(x1, y1)), b));
    }
    if (dim & 1) { /* the last dimension pairs with 0 (the query's pad element is 0 too) */
        const int8_t *l0 = blocks + (size_t)(dim - 1) * FPG_PANEL_ROWS;
        const __m256i b = qpair(q->i16, np);
        const __m128i z = _mm_setzero_si128();
        const __m128i x0 = _mm_loadu_si128((const __m128i *)l0);
        const __m128i x1 = _mm_loadu_si128((const __m128i *)(l0 + 16));
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_unpacklo_epi8(x0, z)), b));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_unpackhi_epi8(x0, z)), b));
        a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_unpacklo_epi8(x1, z)), b));
        a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_unpackhi_epi8(x1, z)), b));
    }
    uint32_t any = finish_i8(a0, 0, 0, scales, q->iscale, thr, scores, masks);
    any |= finish_i8(a1, 1, 0, scales, q->iscale, thr, scores, masks);
    any |= finish_i8(a2, 2, 0, scales, q->iscale, thr, scores, masks);
    any |= finish_i8(a3, 3, 0, scales, q->iscale, thr, scores, masks);
    return any;
}

uint32_t fpg_panel_avx2(int fmt, const void *blocks, const float *scales, int nblk, int dim,
                        const fpg_queries *q, int nq, const float *thr, float *scores,
                        uint32_t *masks, void *scratch) {
    if (thr)
        for (int i = 0; i < nq; i++) masks[i] = 0;
    if (fmt == FP_GALLERY_INT8) {
        const int full = nblk == FPG_PANEL_BLOCKS;
        if (full && nq == 1)
            return direct4_i8(blocks, dim, q, scales, thr, scores, masks);
        const char *ahead = (const char *)blocks + FPG_I8_PREFETCH_PANELS * (size_t)dim * FPG_PANEL_ROWS;
        widen_panel(blocks, nblk, dim, scratch, full && FPG_I8_PREFETCH_PANELS > 0 ? ahead : NULL);
        if (full) return batch_panel_i8(scratch, dim, q, nq, scales, thr, scores, masks);
        return partial_panel_i8(scratch, nblk, dim, q, nq, scales, thr, scores, masks);
    }
    (void)scratch; /* fp16 rows are converted in registers */
    if (nblk < FPG_PANEL_BLOCKS) return partial_panel(blocks, nblk, dim, q->f, nq, thr, scores, masks);
    if (nq == 1) return direct4(blocks, dim, q->f, thr, scores, masks);
    return batch_panel(blocks, dim, q->f, nq, thr, scores, masks);
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
                        const fpg_queries *q, int nq, const float *thr, float *scores,
                        uint32_t *masks, void *scratch) {
    return fpg_panel_scalar(fmt, blocks, scales, nblk, dim, q, nq, thr, scores, masks, scratch);
}
void fpg_f32_to_f16_avx2(const float *src, uint16_t *dst, int n) {
    for (int i = 0; i < n; i++) dst[i] = fpg_f32_to_f16(src[i]);
}
void fpg_f16_to_f32_avx2(const uint16_t *src, float *dst, int n) {
    for (int i = 0; i < n; i++) dst[i] = fpg_f16_to_f32(src[i]);
}

#endif
