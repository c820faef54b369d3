/*
 * kernels.h - internal contract between the portable kernels (kernels.c, which also owns the
 * nn_run_op dispatcher, shape handling and weight packing) and the AVX2/FMA hot loops
 * (kernels_avx2.c). Nothing outside src/nn/kernels*.c, the kernel tests and the kernel bench
 * should include it.
 *
 * One packed-weight layout serves both kernel sets, so a graph packed once can be run with either
 * (the tests switch sets with nn_kernels_select() without re-packing).
 */
#ifndef FP_NN_KERNELS_H
#define FP_NN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "nn/nn.h"

/* GEMM register tile: NN_MR output rows x NN_NR output channels (two ymm per row). */
#define NN_MR 6
#define NN_NR 16

/* KxK convolutions gather the pixels that need it (image borders; every pixel when dilated
 * horizontally) into a per-thread scratch slot of up to NN_IM2COL_ROWS rows of K floats, small
 * enough to still be in L2 when the GEMM reads it. nn_scratch_size() does not know the thread
 * count, so it reserves NN_IM2COL_SLOTS slots and such convolutions use at most that many
 * threads. */
#define NN_IM2COL_ROWS 96
#define NN_IM2COL_SLOTS 8

/* Kernel heights up to this run as implicit GEMM (one A run per kernel row); taller ones and
 * horizontally dilated ones are gathered with im2col. */
#define NN_CONV_MAX_KH 16

enum { NN_PACK_GEMM = 1, NN_PACK_DW = 2 };

/* Pre-packed weights (op->packed, or a copy in scratch when the weights are not constants).
 * GEMM (CONV2D, FC): B = W^T as panels of NN_NR output channels; panel p starts at
 *   b + p*NN_NR*k and is [k][w] with w = min(NN_NR, npad - p*NN_NR) (16, or 8 for the last one),
 *   zero-filled beyond n. The channel order inside K is the OHWI order (ky, kx, cin).
 * DW (DWCONV2D): b is [taps][npad] (taps = KH*KW), zero-filled beyond n.
 * bias and alpha are [npad]; bias is zeros when the op has none, alpha is NULL unless the op has a
 * fused PReLU (a single slope is replicated). */
typedef struct nn_packed {
    int kind;
    int n;    /* output channels */
    int k;    /* GEMM: reduction length; DW: taps */
    int npad; /* n rounded up to a multiple of 8 */
    float *b;
    float *bias;
    float *alpha;
} nn_packed;

/* Floats that the arrays of a packed op need (the header itself is separate). */
size_t nn_packed_floats(int kind, int n, int k);

/* Fills p's arrays from mem (>= nn_packed_floats floats). w is OHWI / [out,in] for GEMM and
 * [1,KH,KW,n] for DW; bias may be NULL; alpha may be NULL (n_alpha 1 or n). */
void nn_pack_into(nn_packed *p, float *mem, int kind, int n, int k, const float *w,
                  const float *bias, const float *alpha, int64_t n_alpha);

/* C[m, 0..n) = act(A[m, 0..k) * B + bias) for the rows/panels given; PReLU slopes come from the
 * packed weights, the LEAKY slope from `leaky`. */
typedef struct nn_gemm_args {
    const float *a;
    size_t lda;
    const nn_packed *w;
    float *c;
    size_t ldc;
    int m;
    nn_act act;
    float leaky; /* NN_ACT_LEAKY slope */
    /* Implicit im2col (nseg > 0): row m of A is the concatenation of nseg runs of seg_len floats
     * at a + m*lda + seg_off[s], multiplied with rows k0 .. k0 + nseg*seg_len of B. A convolution
     * reads its interior pixels straight from the input this way: one run per kernel row. */
    const ptrdiff_t *seg_off;
    int nseg, seg_len, k0;
} nn_gemm_args;

/* Depthwise convolution over rows r = n*oh + oy of the output. */
typedef struct nn_dw_args {
    const float *x;
    int n, h, w, c; /* input, NHWC */
    int mult;       /* depth multiplier: output channel c*mult+j reads input channel c */
    const nn_packed *wt;
    int kh, kw, sh, sw, dh, dw, pad_t, pad_l, oh, ow;
    float *y;
    nn_act act;
    float leaky;
} nn_dw_args;

/* MAXPOOL / AVGPOOL over output rows r = n*oh + oy (AVG divides by the taps inside the image). */
typedef struct nn_pool_args {
    const float *x;
    int n, h, w, c;
    int kh, kw, sh, sw, pad_t, pad_l, oh, ow;
    int is_max;
    nn_act act;
    float *y;
} nn_pool_args;

/* --- AVX2/FMA versions (kernels_avx2.c); call only when nn_avx2_compiled and the CPU has both --- */
extern const int nn_avx2_compiled;
void nn_gemm_avx2(const nn_gemm_args *g, int m0, int m1, int p0, int p1);
/* Only for mult == 1. */
void nn_dw_avx2(const nn_dw_args *d, int r0, int r1);
void nn_pool_avx2(const nn_pool_args *p, int r0, int r1);
/* o[i] = act(a[i*sa] OP b[i*sb]), sa/sb in {0,1}; op is ADD..MAX or PRELU (act NONE). */
void nn_binary_avx2(nn_op_type op, nn_act act, const float *a, int sa, const float *b, int sb,
                    float *o, size_t n);
/* y = f(x) for the unary ops that are exact in AVX2 (RELU RELU6 ABS NEG SQRT RSQRT SQUARE
 * LEAKY_RELU); returns 0 (and does nothing) for others. */
int nn_unary_avx2(nn_op_type op, const float *x, float *y, size_t n, float alpha);

/* --- Portable versions (kernels.c), used by the dispatcher and exposed for the bench --- */
void nn_gemm_scalar(const nn_gemm_args *g, int m0, int m1, int p0, int p1);
void nn_dw_scalar(const nn_dw_args *d, int r0, int r1);
void nn_pool_scalar(const nn_pool_args *p, int r0, int r1);

/* Runs a GEMM with the selected kernel set over `threads` threads (splits rows, or panels when
 * there are too few rows). */
void nn_gemm_run(const nn_gemm_args *g, int threads);

/* Selects the kernel set: 1 = AVX2/FMA if the CPU has it, 0 = scalar. Test/bench only: not
 * thread-safe with respect to concurrently running ops. */
void nn_kernels_select(int use_avx2);

#endif /* FP_NN_KERNELS_H */
