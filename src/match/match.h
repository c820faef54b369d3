/*
 * match.h - internal contract between the gallery (gallery.c: storage, top-k, threads, the
 * portable scalar kernel) and its AVX2/F16C/FMA kernel (gallery_avx2.c). Nothing outside
 * src/match/gallery*.c, tests/test_gallery.c and bench/bench_gallery.c should include it.
 *
 * Storage layout shared by both kernel sets. The gallery is a row matrix (one row per enrolled
 * template) kept as *32-row panels* stored dimension-major:
 *     panel[d * 32 + lane] = row (32p + lane), element d        (fp16 bits, or int8)
 * Lanes 8j..8j+7 form block j (0..3) of the panel. One 16-byte load (fp16) or 8-byte load (int8)
 * gives element d of eight rows, and one FMA with the broadcast query element d advances eight
 * dot products at once: a ymm accumulator holds the scores of eight rows, so there are no
 * horizontal sums and the top-k filter is one vector compare against the current k-th best score
 * per 8 rows. Element d of the whole panel is one 64-byte line (fp16), so a scan is a single
 * sequential stream, the hardware prefetcher's best case, which matters because 1:N over a large
 * gallery is memory-bound (1M x 192 x 2 B = 384 MB per query scan).
 * int8 rows are scored in integers against int16-quantised queries: the kernels interleave the
 * lines of dimensions 2p and 2p+1 so that one _mm256_madd_epi16 advances eight rows by two
 * dimensions (gallery_avx2.c); the stored layout is the same.
 */
#ifndef FP_MATCH_H
#define FP_MATCH_H

#include <stddef.h>
#include <stdint.h>

#include "facepay.h"

#define FPG_LANES 8            /* rows per block (one ymm of fp32 scores) */
#define FPG_PANEL_BLOCKS 4     /* blocks per kernel call */
#define FPG_PANEL_ROWS (FPG_LANES * FPG_PANEL_BLOCKS)
#define FPG_CHUNK_SHIFT 12
#define FPG_CHUNK_ROWS (1 << FPG_CHUNK_SHIFT) /* rows per chunk (a multiple of FPG_PANEL_ROWS) */
#define FPG_MAX_DIM 4096
/* A scan uses at most one thread per this many rows x queries (~1 ms of one core's single-query
 * scan), so waking a thread (microseconds when a core is idle, a scheduler slice when it is not)
 * stays cheap next to the work it takes over. */
#define FPG_ROWS_PER_THREAD 65536

/* The queries of one scan, as each storage format's kernels want them.
 *  - fp16 galleries: f, nq x dim fp32 (unit norm);
 *  - int8 galleries: i16, nq x fpg_q16_stride(dim) int16, each query quantised once per search
 *    (fpg_quantise_queries) so the kernels take exact integer dot products with the int8 rows
 *    (_mm256_madd_epi16: 16 multiply-adds per instruction, twice the fp32 FMA rate); the score is
 *    (float)idot * row_scale * iscale[q], in that order everywhere (both kernel sets, any nq, the
 *    trailing partial block), so it is bit-identical whatever path computed it. */
typedef struct fpg_queries {
    const float *f;
    const int16_t *i16;
    const float *iscale;
} fpg_queries;

/* int16 elements per quantised query: dim rounded up to even (the pair kernel reads 2 at a time;
 * the pad element is 0). */
static inline int fpg_q16_stride(int dim) { return (dim + 1) & ~1; }

/* Largest quantised query element for dim: |sum_d row[d] * q[d]| <= 127 * qmax * dim must fit an
 * int32 (the accumulators) at every partial sum; 32767 (int16) for dim <= 516. */
static inline int fpg_q16_max(int dim) {
    const long m = 2147483647L / (127L * (long)fpg_q16_stride(dim));
    return m < 32767 ? (int)m : 32767;
}

/* Quantises nq unit queries q[nq][dim] into out[nq][fpg_q16_stride(dim)] (round to nearest, the
 * largest |element| of each query to fpg_q16_max(dim)) and iscale[nq] = 1 / ||out row||, so a
 * score is the cosine of the quantised query with the stored row. The rounding error of an
 * element is <= 1/(2 * 32767) of the query's largest element (dim <= 516): ~1e-5 of a score,
 * negligible next to the int8 rows' own error. */
void fpg_quantise_queries(const float *q, int nq, int dim, int16_t *out, float *iscale);

/* Scores of one panel: its first nblk (1..FPG_PANEL_BLOCKS) blocks (the panel starts at `blocks`;
 * format fmt, dim elements per row, layout above; lanes of later blocks are never read, a writer
 * may be filling them) against nq (1..FP_MAX_BATCH) queries q (fpg_queries for fmt).
 * scales: int8 only, one factor per row of the panel (NULL for fp16).
 * scores[qi * FPG_PANEL_ROWS + row] receives the scores (rows beyond nblk*8 are not
 * written). When thr is non-NULL, masks[qi] receives the bit set of rows whose score > thr[qi]
 * and the return value is the OR of all masks (0: nothing in this panel beats any threshold);
 * with thr NULL the return value is 0 and masks is untouched.
 * scratch: dim * FPG_PANEL_ROWS floats, 32-byte aligned (the scalar fp16 kernel converts the panel
 * into it once; the AVX2 int8 batch kernel widens the panel into int16 pairs there).
 *
 * fp16: every dot product is accumulated in fp32, element 0 to dim-1 in order, one fused
 * multiply-add per element, whatever nq is: a batch gives bit-identical scores to the same queries
 * one at a time. The scalar kernel uses separate multiply and add (no FMA hardware assumed), so it
 * agrees with the AVX2 one to rounding (~1e-7), not bit for bit.
 * int8: exact int32 dot products (see fpg_queries), so scalar, AVX2, single and batch all agree
 * bit for bit. */
uint32_t fpg_panel_avx2(int fmt, const void *blocks, const float *scales, int nblk, int dim,
                        const fpg_queries *q, int nq, const float *thr, float *scores,
                        uint32_t *masks, void *scratch);
uint32_t fpg_panel_scalar(int fmt, const void *blocks, const float *scales, int nblk, int dim,
                          const fpg_queries *q, int nq, const float *thr, float *scores,
                          uint32_t *masks, void *scratch);

/* 1 when gallery_avx2.c was compiled with its kernels (x86), else 0. */
extern const int fpg_avx2_compiled;

/* fp16 <-> fp32, round to nearest even, subnormals kept (bit-identical to F16C). */
uint16_t fpg_f32_to_f16(float f);
float fpg_f16_to_f32(uint16_t h);
/* n values with F16C (only after the CPU check). */
void fpg_f32_to_f16_avx2(const float *src, uint16_t *dst, int n);
void fpg_f16_to_f32_avx2(const uint16_t *src, float *dst, int n);

/* Kernel set of the gallery: AVX2+F16C+FMA when the CPU has them and FACEPAY_KERNELS is not
 * "scalar". fpg_kernels_select forces a set (tests; want_avx2 is ignored without CPU support)
 * and returns the set now in use (1 = AVX2). Safe to call while other threads search: each
 * search reads the choice once. */
int fpg_kernels_select(int want_avx2);
int fpg_kernels_avx2(void);
const char *fpg_kernel_name(void);

#endif /* FP_MATCH_H */
