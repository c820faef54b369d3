/*
 * kernels.c - the portable implementation of every F32 op of the runtime and the entry points the
 * executor calls: nn_scratch_size, nn_pack_op, nn_run_op, nn_kernel_name.
 *
 * Everything here is plain C11 and runs on any CPU. The hot loops (GEMM behind CONV2D/FC, the
 * depthwise convolution and element-wise ops) are handed to kernels_avx2.c when the CPU has
 * AVX2+FMA, unless FACEPAY_KERNELS=scalar is set; shape handling, padding arithmetic, im2col,
 * threading and the rarely hot ops stay here so both kernel sets share one definition of the
 * semantics (TF/TFLite's).
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/core.h"
#include "nn/kernels.h"

/* ---------------------------------------------------------------------------------------------- */
/* Kernel set selection                                                                            */
/* ---------------------------------------------------------------------------------------------- */
static pthread_once_t g_select_once = PTHREAD_ONCE_INIT;
static int g_use_avx2; /* written once by select_init (or by the test-only nn_kernels_select) */

static int cpu_has_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
    if (!nn_avx2_compiled) return 0;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static void select_init(void) {
    const char *e = getenv("FACEPAY_KERNELS");
    int want = !(e && strcmp(e, "scalar") == 0);
    g_use_avx2 = want && cpu_has_avx2();
}

static int use_avx2(void) {
    pthread_once(&g_select_once, select_init);
    return g_use_avx2;
}

void nn_kernels_select(int want_avx2) {
    pthread_once(&g_select_once, select_init);
    g_use_avx2 = want_avx2 && cpu_has_avx2();
}

const char *nn_kernel_name(void) { return use_avx2() ? "avx2+fma" : "scalar"; }

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Threads worth using for `work` units when each thread should get at least `per_thread` of them:
 * a fork/join costs about a microsecond with spinning workers (far more when the other core is
 * busy), so small ops run on the calling thread. Units: MACs for convolutions, elements else. */
static int pick_threads(int threads, int64_t work, int64_t per_thread) {
    int64_t t = work / per_thread;
    if (t > threads) t = threads;
    return t > 1 ? (int)t : 1;
}

/* Per-thread minimum work: about 3-5 us of single-thread time for each kind of op. */
#define NN_PAR_GEMM_MACS 300000
#define NN_PAR_DW_MACS 60000
#define NN_PAR_ELEMS 32768

/* ---------------------------------------------------------------------------------------------- */
/* Small helpers                                                                                   */
/* ---------------------------------------------------------------------------------------------- */
static inline float act_scalar(float v, nn_act act, float slope) {
    switch (act) {
    case NN_ACT_RELU: return v > 0.0f ? v : 0.0f;
    case NN_ACT_RELU6: return v > 0.0f ? (v < 6.0f ? v : 6.0f) : 0.0f;
    case NN_ACT_LEAKY:
    case NN_ACT_PRELU: return v < 0.0f ? v * slope : v;
    default: return v;
    }
}

static const char *op_name(nn_op_type t) {
    static const char *names[NN_OP_COUNT] = {
        "CONV2D", "DWCONV2D", "FC", "MAXPOOL", "AVGPOOL", "ADD", "SUB", "MUL", "DIV", "MIN", "MAX",
        "RELU", "RELU6", "ABS", "NEG", "SIGMOID", "TANH", "EXP", "SQRT", "RSQRT", "SQUARE", "PRELU",
        "LEAKY_RELU", "SOFTMAX", "PAD", "CONCAT", "RESHAPE", "MEAN", "RESIZE_BILINEAR",
        "DEPTH_TO_SPACE", "SHAPE", "STRIDED_SLICE", "PACK", "CAST", "IDENTITY"};
    return (unsigned)t < NN_OP_COUNT ? names[t] : "?";
}

static int in_present(const nn_op *op, int i) { return i < op->n_in && op->in[i] >= 0; }

/* I32 side input (paddings, axes): the graph constant if there is one; otherwise the buffer the
 * executor passed for it, which for an I32 value holds int32 data. */
static const int32_t *i32_input(const nn_exec_ctx *ctx, int i, int64_t *count) {
    const nn_op *op = ctx->op;
    if (!in_present(op, i)) return NULL;
    int vi = op->in[i];
    if (ctx->g && vi < ctx->g->n_values) {
        const nn_value *v = &ctx->g->values[vi];
        if (v->dtype != NN_I32) return NULL;
        if (v->data) {
            *count = (int64_t)(v->nbytes / 4);
            return v->data;
        }
    }
    if (ctx->in[i] && ctx->in_shape[i]) {
        *count = nn_shape_count(ctx->in_shape[i]);
        return (const int32_t *)(const void *)ctx->in[i];
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------------- */
/* Weight packing                                                                                  */
/* ---------------------------------------------------------------------------------------------- */
static int pad8(int n) { return (n + 7) & ~7; }

size_t nn_packed_floats(int kind, int n, int k) {
    size_t npad = (size_t)pad8(n);
    (void)kind; /* both layouts are npad*k weights + bias + alpha */
    return npad * (size_t)k + 2 * npad;
}

void nn_pack_into(nn_packed *p, float *mem, int kind, int n, int k, const float *w,
                  const float *bias, const float *alpha, int64_t n_alpha) {
    int npad = pad8(n);
    p->kind = kind;
    p->n = n;
    p->k = k;
    p->npad = npad;
    p->b = mem;
    p->bias = mem + (size_t)npad * k;
    p->alpha = alpha ? p->bias + npad : NULL;
    if (kind == NN_PACK_GEMM) {
        for (int p0 = 0; p0 < npad; p0 += NN_NR) {
            int wd = npad - p0 < NN_NR ? npad - p0 : NN_NR;
            float *dst = p->b + (size_t)p0 * k;
            for (int kk = 0; kk < k; kk++)
                for (int j = 0; j < wd; j++)
                    dst[(size_t)kk * wd + j] = p0 + j < n ? w[(size_t)(p0 + j) * k + kk] : 0.0f;
        }
    } else {
        for (int t = 0; t < k; t++)
            for (int c = 0; c < npad; c++)
                p->b[(size_t)t * npad + c] = c < n ? w[(size_t)t * n + c] : 0.0f;
    }
    for (int c = 0; c < npad; c++) p->bias[c] = bias && c < n ? bias[c] : 0.0f;
    if (alpha)
        for (int c = 0; c < npad; c++)
            p->alpha[c] = c < n ? alpha[n_alpha == 1 ? 0 : c] : 0.0f;
}

/* Output channels and reduction length of a packable op from its weight shape. */
static int pack_dims(const nn_op *op, const nn_shape *ws, int *kind, int *n, int *k) {
    if (!ws) return -1;
    int64_t nn_, kk;
    if (op->type == NN_OP_CONV2D) {
        if (ws->ndim != 4) return -1;
        *kind = NN_PACK_GEMM;
        nn_ = ws->d[0];
        kk = ws->d[1] * ws->d[2] * ws->d[3];
    } else if (op->type == NN_OP_DWCONV2D) {
        if (ws->ndim != 4 || ws->d[0] != 1) return -1;
        *kind = NN_PACK_DW;
        nn_ = ws->d[3];
        kk = ws->d[1] * ws->d[2];
    } else if (op->type == NN_OP_FC) {
        if (ws->ndim != 2) return -1;
        *kind = NN_PACK_GEMM;
        nn_ = ws->d[0];
        kk = ws->d[1];
    } else {
        return -1;
    }
    if (nn_ < 1 || kk < 1 || nn_ > (1 << 24) || kk > (1 << 24) || nn_ * kk > INT32_MAX) return -1;
    *n = (int)nn_;
    *k = (int)kk;
    return 0;
}

static nn_act op_act(const nn_op *op, float *leaky) {
    if (op->type == NN_OP_FC) {
        *leaky = op->p.fc.alpha;
        return op->p.fc.act;
    }
    *leaky = op->p.conv.alpha;
    return op->p.conv.act;
}

fp_status nn_pack_op(const nn_graph *g, nn_op *op) {
    if (!g || !op) return fp_fail(FP_ERR_INVALID_ARG, "nn_pack_op: NULL argument");
    if (op->type != NN_OP_CONV2D && op->type != NN_OP_DWCONV2D && op->type != NN_OP_FC)
        return FP_OK;
    if (op->n_in < 2 || op->in[0] < 0 || op->in[1] < 0 || op->in[1] >= g->n_values)
        return fp_fail(FP_ERR_FORMAT, "%s: missing weights", op_name(op->type));
    const nn_value *wv = &g->values[op->in[1]];
    int kind, n, k;
    if (pack_dims(op, &wv->shape, &kind, &n, &k) != 0)
        return fp_fail(FP_ERR_SHAPE, "%s: bad weight shape", op_name(op->type));
    /* Weights that are computed at run time are packed into scratch on every run instead. */
    if (!wv->data || wv->dtype != NN_F32) return FP_OK;
    if (wv->nbytes < (size_t)n * (size_t)k * 4)
        return fp_fail(FP_ERR_FORMAT, "%s: weight data too small", op_name(op->type));
    const float *bias = NULL;
    if (in_present(op, 2)) {
        if (op->in[2] >= g->n_values) return fp_fail(FP_ERR_FORMAT, "bad bias index");
        const nn_value *bv = &g->values[op->in[2]];
        if (!bv->data || bv->dtype != NN_F32) return FP_OK;
        if (bv->nbytes != (size_t)n * 4)
            return fp_fail(FP_ERR_SHAPE, "%s: bias has %zu values, want %d", op_name(op->type),
                           bv->nbytes / 4, n);
        bias = bv->data;
    }
    float leaky;
    const float *alpha = NULL;
    int64_t n_alpha = 0;
    if (op_act(op, &leaky) == NN_ACT_PRELU) {
        if (!in_present(op, 3) || op->in[3] >= g->n_values)
            return fp_fail(FP_ERR_FORMAT, "%s: PReLU without alpha", op_name(op->type));
        const nn_value *av = &g->values[op->in[3]];
        if (!av->data || av->dtype != NN_F32) return FP_OK;
        n_alpha = (int64_t)(av->nbytes / 4);
        if (n_alpha != 1 && n_alpha != n)
            return fp_fail(FP_ERR_SHAPE, "%s: PReLU alpha has %lld values, want %d",
                           op_name(op->type), (long long)n_alpha, n);
        alpha = av->data;
    }
    size_t hdr = 64, bytes = hdr + nn_packed_floats(kind, n, k) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    unsigned char *mem = aligned_alloc(64, bytes);
    if (!mem) return fp_fail(FP_ERR_NOMEM, "%s: packing weights", op_name(op->type));
    nn_packed *p = (nn_packed *)(void *)mem;
    nn_pack_into(p, (float *)(void *)(mem + hdr), kind, n, k, wv->data, bias, alpha, n_alpha);
    if (op->packed && op->packed_free) op->packed_free(op->packed);
    op->packed = p;
    op->packed_free = free;
    return FP_OK;
}

/* The packed weights for this run: op->packed, or a fresh packing into scratch (advancing *scr). */
static fp_status get_packed(const nn_exec_ctx *ctx, int kind, int n, int k, nn_packed *tmp,
                            const nn_packed **out, float **scr) {
    const nn_op *op = ctx->op;
    if (op->packed) {
        const nn_packed *p = op->packed;
        if (p->kind != kind || p->n != n || p->k != k)
            return fp_fail(FP_ERR_INTERNAL, "%s: packed weights do not match the shapes",
                           op_name(op->type));
        *out = p;
        return FP_OK;
    }
    if (!ctx->in[1]) return fp_fail(FP_ERR_INVALID_ARG, "%s: no weights", op_name(op->type));
    const float *bias = NULL;
    if (in_present(op, 2) && ctx->in[2]) {
        if (nn_shape_count(ctx->in_shape[2]) != n)
            return fp_fail(FP_ERR_SHAPE, "%s: bias size", op_name(op->type));
        bias = ctx->in[2];
    }
    float leaky;
    const float *alpha = NULL;
    int64_t n_alpha = 0;
    if (op_act(op, &leaky) == NN_ACT_PRELU) {
        if (!in_present(op, 3) || !ctx->in[3])
            return fp_fail(FP_ERR_INVALID_ARG, "%s: PReLU without alpha", op_name(op->type));
        n_alpha = nn_shape_count(ctx->in_shape[3]);
        if (n_alpha != 1 && n_alpha != n)
            return fp_fail(FP_ERR_SHAPE, "%s: PReLU alpha size", op_name(op->type));
        alpha = ctx->in[3];
    }
    nn_pack_into(tmp, *scr, kind, n, k, ctx->in[1], bias, alpha, n_alpha);
    *scr += nn_packed_floats(kind, n, k);
    *out = tmp;
    return FP_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* GEMM                                                                                            */
/* ---------------------------------------------------------------------------------------------- */
static int n_panels(const nn_packed *w) { return (w->npad + NN_NR - 1) / NN_NR; }

void nn_gemm_scalar(const nn_gemm_args *g, int m0, int m1, int p0, int p1) {
    static const ptrdiff_t no_off[1] = {0};
    const nn_packed *w = g->w;
    const int K = w->k;
    const int nseg = g->nseg > 0 ? g->nseg : 1, slen = g->nseg > 0 ? g->seg_len : K;
    const int k0 = g->nseg > 0 ? g->k0 : 0;
    const ptrdiff_t *seg = g->nseg > 0 ? g->seg_off : no_off;
    for (int p = p0; p < p1; p++) {
        int j0 = p * NN_NR;
        int wd = w->npad - j0 < NN_NR ? w->npad - j0 : NN_NR;
        int nv = w->n - j0 < wd ? w->n - j0 : wd;
        const float *bp = w->b + (size_t)j0 * K;
        for (int m = m0; m < m1; m++) {
            float acc[NN_NR];
            for (int j = 0; j < wd; j++) acc[j] = w->bias[j0 + j];
            for (int s = 0; s < nseg; s++) {
                const float *a = g->a + (size_t)m * g->lda + seg[s];
                const float *bs = bp + ((size_t)k0 + (size_t)s * slen) * wd;
                if (wd == NN_NR) {
                    for (int k = 0; k < slen; k++) {
                        const float av = a[k], *bk = bs + (size_t)k * NN_NR;
                        for (int j = 0; j < NN_NR; j++) acc[j] += av * bk[j];
                    }
                } else {
                    for (int k = 0; k < slen; k++) {
                        const float av = a[k], *bk = bs + (size_t)k * wd;
                        for (int j = 0; j < wd; j++) acc[j] += av * bk[j];
                    }
                }
            }
            float *c = g->c + (size_t)m * g->ldc + j0;
            for (int j = 0; j < nv; j++)
                c[j] = act_scalar(acc[j], g->act, w->alpha ? w->alpha[j0 + j] : g->leaky);
        }
    }
}

static void gemm_range(const nn_gemm_args *g, int m0, int m1, int p0, int p1) {
    if (use_avx2())
        nn_gemm_avx2(g, m0, m1, p0, p1);
    else
        nn_gemm_scalar(g, m0, m1, p0, p1);
}

void nn_gemm_run(const nn_gemm_args *g, int threads) {
    const int np = n_panels(g->w), tiles = (g->m + NN_MR - 1) / NN_MR;
    int T = pick_threads(threads, (int64_t)g->m * g->w->n * g->w->k, NN_PAR_GEMM_MACS);
    if (T > tiles * np) T = tiles * np;
    if (T <= 1) {
        gemm_range(g, 0, g->m, 0, np);
        return;
    }
    /* Rows keep each thread's B panels shared in L2 and its A rows private; panels win only when
     * there are too few row tiles to balance (FC at small batch, 7x7 layers). */
    int rchunk = (tiles + T - 1) / T, pchunk = (np + T - 1) / T;
    int by_rows = tiles >= 4 * T || (long)rchunk * T * np <= (long)pchunk * T * tiles;
#pragma omp parallel for num_threads(T) schedule(static) if (T > 1)
    for (int t = 0; t < T; t++) {
        if (by_rows) {
            int m0 = t * rchunk * NN_MR, m1 = (t + 1) * rchunk * NN_MR;
            if (m1 > g->m) m1 = g->m;
            if (m0 < m1) gemm_range(g, m0, m1, 0, np);
        } else {
            int p0 = t * pchunk, p1 = (t + 1) * pchunk;
            if (p1 > np) p1 = np;
            if (p0 < p1) gemm_range(g, 0, g->m, p0, p1);
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* CONV2D / DWCONV2D / FC                                                                          */
/* ---------------------------------------------------------------------------------------------- */
typedef struct conv_geom {
    int n, h, w, cin, cout, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, mult;
} conv_geom;

static fp_status conv_geom_get(const nn_op *op, const nn_shape *xs, const nn_shape *ws,
                               conv_geom *cg) {
    const nn_conv_params *p = &op->p.conv;
    if (!xs || !ws || xs->ndim != 4 || ws->ndim != 4)
        return fp_fail(FP_ERR_SHAPE, "%s: want 4-D input and weights", op_name(op->type));
    for (int i = 0; i < 4; i++)
        if (xs->d[i] < 1 || xs->d[i] > (1 << 24) || ws->d[i] < 1 || ws->d[i] > (1 << 24))
            return fp_fail(FP_ERR_SHAPE, "%s: bad dims", op_name(op->type));
    memset(cg, 0, sizeof *cg);
    cg->n = (int)xs->d[0];
    cg->h = (int)xs->d[1];
    cg->w = (int)xs->d[2];
    cg->cin = (int)xs->d[3];
    cg->kh = (int)ws->d[1];
    cg->kw = (int)ws->d[2];
    if (op->type == NN_OP_DWCONV2D) {
        cg->cout = (int)ws->d[3];
        cg->mult = cg->cout / cg->cin;
        if (cg->mult < 1 || cg->mult * cg->cin != cg->cout ||
            (p->depth_multiplier > 0 && p->depth_multiplier != cg->mult))
            return fp_fail(FP_ERR_SHAPE, "DWCONV2D: %d output channels for %d inputs", cg->cout,
                           cg->cin);
    } else {
        cg->cout = (int)ws->d[0];
        cg->mult = 1;
        if (ws->d[3] != cg->cin)
            return fp_fail(FP_ERR_SHAPE, "CONV2D: weights want %lld input channels, got %d",
                           (long long)ws->d[3], cg->cin);
    }
    cg->sh = p->sh > 0 ? p->sh : 1;
    cg->sw = p->sw > 0 ? p->sw : 1;
    cg->dh = p->dh > 0 ? p->dh : 1;
    cg->dw = p->dw > 0 ? p->dw : 1;
    cg->oh = nn_window_out(cg->h, cg->kh, cg->sh, cg->dh, p->padding, p->pad_t, p->pad_b, &cg->pt);
    cg->ow = nn_window_out(cg->w, cg->kw, cg->sw, cg->dw, p->padding, p->pad_l, p->pad_r, &cg->pl);
    if (cg->oh < 1 || cg->ow < 1)
        return fp_fail(FP_ERR_SHAPE, "%s: empty output", op_name(op->type));
    /* Pixel and row counts are ints in the kernels. */
    if ((int64_t)cg->n * cg->h * cg->w > INT32_MAX || (int64_t)cg->n * cg->oh * cg->ow > INT32_MAX ||
        (int64_t)cg->kh * cg->kw * cg->cin > INT32_MAX)
        return fp_fail(FP_ERR_TOO_LARGE, "%s: tensor too large", op_name(op->type));
    return FP_OK;
}

static fp_status check_out(const nn_exec_ctx *ctx, int64_t d0, int64_t d1, int64_t d2,
                           int64_t d3) {
    const nn_shape *o = ctx->out_shape;
    if (!o || o->ndim != 4 || o->d[0] != d0 || o->d[1] != d1 || o->d[2] != d2 || o->d[3] != d3)
        return fp_fail(FP_ERR_SHAPE, "%s: output shape differs from [%lld,%lld,%lld,%lld]",
                       op_name(ctx->op->type), (long long)d0, (long long)d1, (long long)d2,
                       (long long)d3);
    return FP_OK;
}

static int conv_is_pointwise(const conv_geom *cg) {
    return cg->kh == 1 && cg->kw == 1 && cg->sh == 1 && cg->sw == 1 && cg->pt == 0 &&
           cg->pl == 0 && cg->oh == cg->h && cg->ow == cg->w;
}

/* Gathers output rows [m0, m0+rows) of the convolution's A matrix (one row per output pixel,
 * K = kh*kw*cin in OHWI order; taps outside the image are zeros). */
static void im2col_rows(const conv_geom *cg, const float *x, int m0, int rows, float *dst) {
    const size_t cin = (size_t)cg->cin;
    const int hw = cg->oh * cg->ow;
    for (int r = 0; r < rows; r++) {
        int m = m0 + r, n = m / hw, rem = m % hw, oy = rem / cg->ow, ox = rem % cg->ow;
        float *d = dst + (size_t)r * cg->kh * cg->kw * cin;
        const float *xn = x + (size_t)n * cg->h * cg->w * cin;
        const int ix0 = ox * cg->sw - cg->pl;
        /* Undilated taps of one kernel row are one contiguous span of kw*cin floats: with
         * small cin (first layers, cin = 3) per-tap copies would cost more than the GEMM. */
        const int row_span = cg->dw == 1 && ix0 >= 0 && ix0 + cg->kw <= cg->w;
        for (int ky = 0; ky < cg->kh; ky++) {
            int iy = oy * cg->sh - cg->pt + ky * cg->dh;
            if (row_span) {
                const size_t len = (size_t)cg->kw * cin;
                if (iy < 0 || iy >= cg->h)
                    memset(d, 0, len * sizeof *d);
                else
                    memcpy(d, xn + ((size_t)iy * cg->w + ix0) * cin, len * sizeof *d);
                d += len;
                continue;
            }
            for (int kx = 0; kx < cg->kw; kx++, d += cin) {
                int ix = ox * cg->sw - cg->pl + kx * cg->dw;
                if (iy < 0 || iy >= cg->h || ix < 0 || ix >= cg->w)
                    memset(d, 0, cin * sizeof *d);
                else
                    memcpy(d, xn + ((size_t)iy * cg->w + ix) * cin, cin * sizeof *d);
            }
        }
    }
}

/* Output row r = n*oh + oy of a KxK convolution without im2col for its interior columns
 * [oxa, oxb): their kernel rows are runs of kw*cin input floats, sw*cin apart from pixel to pixel,
 * which the GEMM reads in place (segmented A). Border columns, and rows whose kernel rows all fall
 * in the padding, are gathered into buf (NN_IM2COL_ROWS x K floats) first. */
static void conv_row(const conv_geom *cg, const float *x, const nn_gemm_args *ga, int r, int oxa,
                     int oxb, float *buf, float *out) {
    const int n = r / cg->oh, oy = r % cg->oh, iy0 = oy * cg->sh - cg->pt;
    const size_t cin = (size_t)cg->cin, K = (size_t)cg->kh * cg->kw * cin;
    const int np = n_panels(ga->w);
    int ky0 = 0, ky1 = cg->kh;
    while (ky0 < ky1 && iy0 + ky0 * cg->dh < 0) ky0++;
    while (ky1 > ky0 && iy0 + (ky1 - 1) * cg->dh >= cg->h) ky1--;
    if (ky0 >= ky1) oxa = oxb = 0;
    float *orow = out + (size_t)r * cg->ow * cg->cout;
    if (oxa < oxb) {
        ptrdiff_t seg[NN_CONV_MAX_KH];
        for (int s = 0; s < ky1 - ky0; s++) seg[s] = (ptrdiff_t)s * cg->dh * cg->w * (ptrdiff_t)cin;
        nn_gemm_args g = *ga;
        g.a = x + (((size_t)n * cg->h + (size_t)(iy0 + ky0 * cg->dh)) * cg->w +
                   (size_t)(oxa * cg->sw - cg->pl)) * cin;
        g.lda = (size_t)cg->sw * cin;
        g.seg_off = seg;
        g.nseg = ky1 - ky0;
        g.seg_len = cg->kw * cg->cin;
        g.k0 = ky0 * cg->kw * cg->cin;
        g.c = orow + (size_t)oxa * cg->cout;
        g.m = oxb - oxa;
        gemm_range(&g, 0, g.m, 0, np);
    }
    const int border[2][2] = {{0, oxa}, {oxb, cg->ow}};
    for (int b = 0; b < 2; b++)
        for (int ox = border[b][0]; ox < border[b][1]; ox += NN_IM2COL_ROWS) {
            int cnt = border[b][1] - ox < NN_IM2COL_ROWS ? border[b][1] - ox : NN_IM2COL_ROWS;
            im2col_rows(cg, x, r * cg->ow + ox, cnt, buf);
            nn_gemm_args g = *ga;
            g.a = buf;
            g.lda = K;
            g.c = orow + (size_t)ox * cg->cout;
            g.m = cnt;
            gemm_range(&g, 0, cnt, 0, np);
        }
}

static fp_status run_conv(const nn_exec_ctx *ctx) {
    const nn_op *op = ctx->op;
    conv_geom cg;
    fp_status st = conv_geom_get(op, ctx->in_shape[0], ctx->in_shape[1], &cg);
    if (st) return st;
    if ((st = check_out(ctx, cg.n, cg.oh, cg.ow, cg.cout))) return st;
    const int K = cg.kh * cg.kw * cg.cin;
    float *scr = ctx->scratch;
    nn_packed tmp;
    const nn_packed *w;
    if ((st = get_packed(ctx, NN_PACK_GEMM, cg.cout, K, &tmp, &w, &scr))) return st;
    nn_gemm_args ga = {.w = w, .ldc = (size_t)cg.cout};
    ga.act = op_act(op, &ga.leaky);
    const int M = cg.n * cg.oh * cg.ow;
    if (conv_is_pointwise(&cg)) {
        ga.a = ctx->in[0];
        ga.lda = (size_t)K;
        ga.c = ctx->out;
        ga.m = M;
        nn_gemm_run(&ga, ctx->threads);
        return FP_OK;
    }
    const float *x = ctx->in[0];
    float *out = ctx->out;
    int T = pick_threads(ctx->threads, (int64_t)M * K * cg.cout, NN_PAR_GEMM_MACS);
    if (T > NN_IM2COL_SLOTS) T = NN_IM2COL_SLOTS;
    /* Gather slot per thread, sized as in nn_scratch_size. */
    const size_t slot = (size_t)(M < NN_IM2COL_ROWS ? M : NN_IM2COL_ROWS) * K;
    if (cg.dw == 1 && cg.kh <= NN_CONV_MAX_KH) {
        /* Output columns whose kernel rows lie entirely inside the image: [oxa, oxb). */
        int oxa = (cg.pl + cg.sw - 1) / cg.sw, lim = cg.w - cg.kw + cg.pl;
        int oxb = lim >= 0 ? lim / cg.sw + 1 : 0;
        if (oxa > cg.ow) oxa = cg.ow;
        if (oxb > cg.ow) oxb = cg.ow;
        if (oxb < oxa) oxb = oxa;
        const int rows = cg.n * cg.oh;
        if (T > rows) T = rows;
#pragma omp parallel for num_threads(T) schedule(static) if (T > 1)
        for (int r = 0; r < rows; r++)
            conv_row(&cg, x, &ga, r, oxa, oxb, scr + (size_t)thread_id() * slot, out);
        return FP_OK;
    }
    /* Horizontal dilation: blocks of gathered rows. */
    const int blocks = (M + NN_IM2COL_ROWS - 1) / NN_IM2COL_ROWS;
    if (T > blocks) T = blocks;
    if (T > cg.n * cg.oh) T = cg.n * cg.oh; /* slots in nn_scratch_size */
#pragma omp parallel for num_threads(T) schedule(static) if (T > 1)
    for (int b = 0; b < blocks; b++) {
        int m0 = b * NN_IM2COL_ROWS, rows = M - m0 < NN_IM2COL_ROWS ? M - m0 : NN_IM2COL_ROWS;
        float *buf = scr + (size_t)thread_id() * slot;
        im2col_rows(&cg, x, m0, rows, buf);
        nn_gemm_args gb = ga;
        gb.a = buf;
        gb.lda = (size_t)K;
        gb.c = out + (size_t)m0 * cg.cout;
        gb.m = rows;
        gemm_range(&gb, 0, rows, 0, n_panels(w));
    }
    return FP_OK;
}

void nn_dw_scalar(const nn_dw_args *d, int r0, int r1) {
    const nn_packed *wt = d->wt;
    const int C = d->c, mult = d->mult, Ct = C * mult, npad = wt->npad;
    for (int r = r0; r < r1; r++) {
        int n = r / d->oh, oy = r % d->oh;
        const float *xn = d->x + (size_t)n * d->h * d->w * C;
        for (int ox = 0; ox < d->ow; ox++) {
            float *o = d->y + ((size_t)r * d->ow + ox) * Ct;
            for (int c = 0; c < Ct; c++) o[c] = wt->bias[c];
            for (int ky = 0; ky < d->kh; ky++) {
                int iy = oy * d->sh - d->pad_t + ky * d->dh;
                if (iy < 0 || iy >= d->h) continue;
                for (int kx = 0; kx < d->kw; kx++) {
                    int ix = ox * d->sw - d->pad_l + kx * d->dw;
                    if (ix < 0 || ix >= d->w) continue;
                    const float *xi = xn + ((size_t)iy * d->w + ix) * C;
                    const float *wk = wt->b + (size_t)(ky * d->kw + kx) * npad;
                    if (mult == 1) {
                        for (int c = 0; c < C; c++) o[c] += xi[c] * wk[c];
                    } else {
                        for (int c = 0; c < C; c++)
                            for (int j = 0; j < mult; j++)
                                o[c * mult + j] += xi[c] * wk[c * mult + j];
                    }
                }
            }
            for (int c = 0; c < Ct; c++)
                o[c] = act_scalar(o[c], d->act, wt->alpha ? wt->alpha[c] : d->leaky);
        }
    }
}

static fp_status run_dwconv(const nn_exec_ctx *ctx) {
    const nn_op *op = ctx->op;
    conv_geom cg;
    fp_status st = conv_geom_get(op, ctx->in_shape[0], ctx->in_shape[1], &cg);
    if (st) return st;
    if ((st = check_out(ctx, cg.n, cg.oh, cg.ow, cg.cout))) return st;
    float *scr = ctx->scratch;
    nn_packed tmp;
    const nn_packed *w;
    if ((st = get_packed(ctx, NN_PACK_DW, cg.cout, cg.kh * cg.kw, &tmp, &w, &scr))) return st;
    nn_dw_args d = {.x = ctx->in[0], .n = cg.n, .h = cg.h, .w = cg.w, .c = cg.cin,
                    .mult = cg.mult, .wt = w, .kh = cg.kh, .kw = cg.kw, .sh = cg.sh,
                    .sw = cg.sw, .dh = cg.dh, .dw = cg.dw, .pad_t = cg.pt, .pad_l = cg.pl,
                    .oh = cg.oh, .ow = cg.ow, .y = ctx->out};
    d.act = op_act(op, &d.leaky);
    const int rows = cg.n * cg.oh, avx = use_avx2() && cg.mult == 1;
    int T = pick_threads(ctx->threads, (int64_t)rows * cg.ow * cg.cout * cg.kh * cg.kw,
                         NN_PAR_DW_MACS);
    if (T > rows) T = rows;
#pragma omp parallel for num_threads(T) schedule(static) if (T > 1)
    for (int t = 0; t < T; t++) {
        int r0 = (int)((long)rows * t / T), r1 = (int)((long)rows * (t + 1) / T);
        if (avx)
            nn_dw_avx2(&d, r0, r1);
        else
            nn_dw_scalar(&d, r0, r1);
    }
    return FP_OK;
}

static fp_status run_fc(const nn_exec_ctx *ctx) {
    const nn_op *op = ctx->op;
    const nn_shape *ws = ctx->in_shape[1];
    int kind, n, k;
    if (pack_dims(op, ws, &kind, &n, &k) != 0) return fp_fail(FP_ERR_SHAPE, "FC: bad weights");
    int64_t cnt = nn_shape_count(ctx->in_shape[0]);
    if (cnt % k != 0)
        return fp_fail(FP_ERR_SHAPE, "FC: input of %lld values is not a multiple of %d",
                       (long long)cnt, k);
    int64_t rows = cnt / k;
    if (rows > INT32_MAX) return fp_fail(FP_ERR_TOO_LARGE, "FC: too many rows");
    if (nn_shape_count(ctx->out_shape) != rows * n)
        return fp_fail(FP_ERR_SHAPE, "FC: output shape has %lld values, want %lld",
                       (long long)nn_shape_count(ctx->out_shape), (long long)(rows * n));
    if (rows == 0) return FP_OK;
    float *scr = ctx->scratch;
    nn_packed tmp;
    const nn_packed *w;
    fp_status st = get_packed(ctx, NN_PACK_GEMM, n, k, &tmp, &w, &scr);
    if (st) return st;
    nn_gemm_args ga = {.a = ctx->in[0], .lda = (size_t)k, .w = w, .c = ctx->out,
                       .ldc = (size_t)n, .m = (int)rows};
    ga.act = op_act(op, &ga.leaky);
    nn_gemm_run(&ga, ctx->threads);
    return FP_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Pooling                                                                                         */
/* ---------------------------------------------------------------------------------------------- */
void nn_pool_scalar(const nn_pool_args *p, int r0, int r1) {
    const int C = p->c;
    for (int r = r0; r < r1; r++) {
        int n = r / p->oh, oy = r % p->oh;
        int y0 = oy * p->sh - p->pad_t, ys = y0 > 0 ? y0 : 0, ye = y0 + p->kh < p->h ? y0 + p->kh : p->h;
        for (int ox = 0; ox < p->ow; ox++) {
            int x0 = ox * p->sw - p->pad_l, xs = x0 > 0 ? x0 : 0;
            int xe = x0 + p->kw < p->w ? x0 + p->kw : p->w;
            float *o = p->y + ((size_t)r * p->ow + ox) * C;
            int taps = (ye - ys) * (xe - xs);
            if (taps <= 0) {
                memset(o, 0, (size_t)C * sizeof *o);
                continue;
            }
            for (int iy = ys; iy < ye; iy++)
                for (int ix = xs; ix < xe; ix++) {
                    const float *xi = p->x + (((size_t)n * p->h + iy) * p->w + ix) * C;
                    if (iy == ys && ix == xs)
                        memcpy(o, xi, (size_t)C * sizeof *o);
                    else if (p->is_max)
                        for (int c = 0; c < C; c++) o[c] = xi[c] > o[c] ? xi[c] : o[c];
                    else
                        for (int c = 0; c < C; c++) o[c] += xi[c];
                }
            if (!p->is_max)
                for (int c = 0; c < C; c++) o[c] /= (float)taps;
            if (p->act != NN_ACT_NONE)
                for (int c = 0; c < C; c++) o[c] = act_scalar(o[c], p->act, 0.0f);
        }
    }
}

static fp_status run_pool(const nn_exec_ctx *ctx) {
    const nn_op *op = ctx->op;
    const nn_pool_params *pp = &op->p.pool;
    const nn_shape *xs = ctx->in_shape[0];
    if (!xs || xs->ndim != 4) return fp_fail(FP_ERR_SHAPE, "%s: want 4-D input", op_name(op->type));
    nn_pool_args p = {.x = ctx->in[0], .n = (int)xs->d[0], .h = (int)xs->d[1], .w = (int)xs->d[2],
                      .c = (int)xs->d[3], .kh = pp->kh, .kw = pp->kw,
                      .sh = pp->sh > 0 ? pp->sh : 1, .sw = pp->sw > 0 ? pp->sw : 1,
                      .is_max = op->type == NN_OP_MAXPOOL, .act = pp->act, .y = ctx->out};
    /* Pool params carry no explicit pads: EXPLICIT behaves as VALID. */
    nn_padding pad = pp->padding == NN_PAD_SAME ? NN_PAD_SAME : NN_PAD_VALID;
    p.oh = nn_window_out(p.h, p.kh, p.sh, 1, pad, 0, 0, &p.pad_t);
    p.ow = nn_window_out(p.w, p.kw, p.sw, 1, pad, 0, 0, &p.pad_l);
    if (p.oh < 1 || p.ow < 1) return fp_fail(FP_ERR_SHAPE, "%s: empty output", op_name(op->type));
    fp_status st = check_out(ctx, p.n, p.oh, p.ow, p.c);
    if (st) return st;
    const int rows = p.n * p.oh, avx = use_avx2();
    int T = pick_threads(ctx->threads, (int64_t)rows * p.ow * p.c * p.kh * p.kw, NN_PAR_ELEMS);
    if (T > rows) T = rows;
#pragma omp parallel for num_threads(T) schedule(static) if (T > 1)
    for (int t = 0; t < T; t++) {
        int r0 = (int)((long)rows * t / T), r1 = (int)((long)rows * (t + 1) / T);
        if (avx)
            nn_pool_avx2(&p, r0, r1);
        else
            nn_pool_scalar(&p, r0, r1);
    }
    return FP_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Element-wise                                                                                    */
/* ---------------------------------------------------------------------------------------------- */
#define BIN_ROW(EXPR)                                                                              \
    for (size_t i = 0; i < n; i++) {                                                               \
        const float x = a[i * sa], z = b[i * sb];                                                  \
        o[i] = act_scalar((EXPR), act, 0.0f);                                                      \
    }

static void binary_row_scalar(nn_op_type op, nn_act act, const float *a, size_t sa,
                              const float *b, size_t sb, float *o, size_t n) {
    switch (op) {
    case NN_OP_ADD: BIN_ROW(x + z) break;
    case NN_OP_SUB: BIN_ROW(x - z) break;
    case NN_OP_MUL: BIN_ROW(x * z) break;
    case NN_OP_DIV: BIN_ROW(x / z) break;
    case NN_OP_MIN: BIN_ROW(x < z ? x : z) break;
    case NN_OP_MAX: BIN_ROW(x > z ? x : z) break;
    case NN_OP_PRELU: BIN_ROW(x < 0.0f ? x * z : x) break;
    default: break;
    }
}

static void binary_row(nn_op_type op, nn_act act, const float *a, int sa, const float *b, int sb,
                       float *o, size_t n) {
    if (use_avx2())
        nn_binary_avx2(op, act, a, sa, b, sb, o, n);
    else
        binary_row_scalar(op, act, a, (size_t)sa, b, (size_t)sb, o, n);
}

/* numpy broadcasting: dims are right-aligned, size-1 dims repeat. Runs of dims that broadcast the
 * same way are merged so the common cases (equal shapes, per-channel, scalar) become one or two
 * loops over contiguous rows. */
static fp_status run_binary(const nn_exec_ctx *ctx, nn_op_type type, nn_act act) {
    const nn_shape *as = ctx->in_shape[0], *bs = ctx->in_shape[1], *os = ctx->out_shape;
    if (!as || !bs || !os || !ctx->in[0] || !ctx->in[1])
        return fp_fail(FP_ERR_INVALID_ARG, "%s: missing input", op_name(type));
    if (act == NN_ACT_LEAKY || act == NN_ACT_PRELU)
        return fp_fail(FP_ERR_UNSUPPORTED, "%s: fused activation %d", op_name(type), (int)act);
    const int nd = os->ndim;
    if (nd > NN_MAX_DIMS || as->ndim > nd || bs->ndim > nd)
        return fp_fail(FP_ERR_SHAPE, "%s: rank", op_name(type));
    int64_t dim[NN_MAX_DIMS], sa[NN_MAX_DIMS], sb[NN_MAX_DIMS];
    int64_t ra = 1, rb = 1;
    int k = 0; /* merged dims, stored innermost first */
    for (int i = nd - 1; i >= 0; i--) {
        int64_t d = os->d[i];
        int ia = i - (nd - as->ndim), ib = i - (nd - bs->ndim);
        int64_t da = ia >= 0 ? as->d[ia] : 1, db = ib >= 0 ? bs->d[ib] : 1;
        if ((da != d && da != 1) || (db != d && db != 1) || d < 0)
            return fp_fail(FP_ERR_SHAPE, "%s: shapes do not broadcast", op_name(type));
        if (d == 1) continue;
        int64_t xa = da == 1 ? 0 : ra, xb = db == 1 ? 0 : rb;
        /* Mergeable with the inner dim if both operands continue their inner stride pattern. */
        if (k > 0 && xa == sa[k - 1] * dim[k - 1] && xb == sb[k - 1] * dim[k - 1] &&
            ((xa == 0) == (sa[k - 1] == 0)) && ((xb == 0) == (sb[k - 1] == 0))) {
            dim[k - 1] *= d;
        } else {
            dim[k] = d;
            sa[k] = xa;
            sb[k] = xb;
            k++;
        }
        ra *= da;
        rb *= db;
    }
    const float *A = ctx->in[0], *B = ctx->in[1];
    float *O = ctx->out;
    if (k == 0) {
        binary_row(type, act, A, 0, B, 0, O, 1);
        return FP_OK;
    }
    const int64_t inner = dim[0];
    const int isa = sa[0] != 0, isb = sb[0] != 0;
    int64_t outer = 1;
    for (int i = 1; i < k; i++) outer *= dim[i];
    int T = pick_threads(ctx->threads, outer * inner, NN_PAR_ELEMS);
    if (outer == 1) {
        /* One long row: split it across threads. */
        if (T > 1) {
#pragma omp parallel for num_threads(T) schedule(static)
            for (int t = 0; t < T; t++) {
                int64_t i0 = inner * t / T, i1 = inner * (t + 1) / T;
                binary_row(type, act, A + i0 * isa, isa, B + i0 * isb, isb, O + i0,
                           (size_t)(i1 - i0));
            }
        } else {
            binary_row(type, act, A, isa, B, isb, O, (size_t)inner);
        }
        return FP_OK;
    }
#pragma omp parallel for num_threads(T) schedule(static) if (T > 1)
    for (int64_t r = 0; r < outer; r++) {
        int64_t rem = r, offa = 0, offb = 0;
        for (int i = 1; i < k; i++) {
            int64_t idx = rem % dim[i];
            rem /= dim[i];
            offa += idx * sa[i];
            offb += idx * sb[i];
        }
        binary_row(type, act, A + offa, isa, B + offb, isb, O + r * inner, (size_t)inner);
    }
    return FP_OK;
}

static fp_status run_unary(const nn_exec_ctx *ctx) {
    const nn_op_type t = ctx->op->type;
    const float *x = ctx->in[0];
    float *y = ctx->out;
    const int64_t n = nn_shape_count(ctx->in_shape[0]);
    if (nn_shape_count(ctx->out_shape) != n)
        return fp_fail(FP_ERR_SHAPE, "%s: output size", op_name(t));
    const float alpha = t == NN_OP_LEAKY_RELU ? ctx->op->p.leaky_alpha : 0.0f;
    if (use_avx2() && nn_unary_avx2(t, x, y, (size_t)n, alpha)) return FP_OK;
    switch (t) {
    case NN_OP_RELU: for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f; break;
    case NN_OP_RELU6:
        for (int64_t i = 0; i < n; i++) y[i] = act_scalar(x[i], NN_ACT_RELU6, 0.0f);
        break;
    case NN_OP_ABS: for (int64_t i = 0; i < n; i++) y[i] = fabsf(x[i]); break;
    case NN_OP_NEG: for (int64_t i = 0; i < n; i++) y[i] = -x[i]; break;
    case NN_OP_SIGMOID:
        /* Split by sign so exp never overflows into inf/inf. */
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            if (v >= 0.0f) {
                y[i] = 1.0f / (1.0f + expf(-v));
            } else {
                float e = expf(v);
                y[i] = e / (1.0f + e);
            }
        }
        break;
    case NN_OP_TANH: for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]); break;
    case NN_OP_EXP: for (int64_t i = 0; i < n; i++) y[i] = expf(x[i]); break;
    case NN_OP_SQRT: for (int64_t i = 0; i < n; i++) y[i] = sqrtf(x[i]); break;
    case NN_OP_RSQRT: for (int64_t i = 0; i < n; i++) y[i] = 1.0f / sqrtf(x[i]); break;
    case NN_OP_SQUARE: for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i]; break;
    case NN_OP_LEAKY_RELU:
        for (int64_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? x[i] * alpha : x[i];
        break;
    default: return fp_fail(FP_ERR_UNSUPPORTED, "%s: not a unary op", op_name(t));
    }
    return FP_OK;
}

static fp_status run_softmax(const nn_exec_ctx *ctx) {
    const nn_shape *xs = ctx->in_shape[0];
    if (!xs || xs->ndim < 1) return fp_fail(FP_ERR_SHAPE, "SOFTMAX: scalar input");
    const int64_t inner = xs->d[xs->ndim - 1], total = nn_shape_count(xs);
    if (nn_shape_count(ctx->out_shape) != total) return fp_fail(FP_ERR_SHAPE, "SOFTMAX: output");
    if (inner < 1) return FP_OK;
    const float beta = ctx->op->p.softmax_beta != 0.0f ? ctx->op->p.softmax_beta : 1.0f;
    for (int64_t r = 0; r < total / inner; r++) {
        const float *x = ctx->in[0] + r * inner;
        float *y = ctx->out + r * inner;
        float mx = x[0];
        for (int64_t i = 1; i < inner; i++) mx = x[i] > mx ? x[i] : mx;
        double sum = 0.0;
        for (int64_t i = 0; i < inner; i++) {
            y[i] = expf((x[i] - mx) * beta);
            sum += y[i];
        }
        const float inv = (float)(1.0 / sum);
        for (int64_t i = 0; i < inner; i++) y[i] *= inv;
    }
    return FP_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Data movement                                                                                   */
/* ---------------------------------------------------------------------------------------------- */
static void row_strides(const nn_shape *s, int64_t *st) {
    int64_t r = 1;
    for (int i = s->ndim - 1; i >= 0; i--) {
        st[i] = r;
        r *= s->d[i];
    }
}

/* Short rows (a channel pad copies 24 floats per pixel) would spend more in memcpy/memset
 * calls than in moving data; fixed 32-byte chunks compile to plain vector moves. */
static inline void copy_floats(float *d, const float *s, size_t n) {
    if (n >= 64) {
        memcpy(d, s, n * sizeof *d);
        return;
    }
    size_t i = 0;
    for (; i + 8 <= n; i += 8) memcpy(d + i, s + i, 32);
    for (; i < n; i++) d[i] = s[i];
}

static inline void zero_floats(float *d, size_t n) {
    if (n >= 64) {
        memset(d, 0, n * sizeof *d);
        return;
    }
    size_t i = 0;
    for (; i + 8 <= n; i += 8) memset(d + i, 0, 32);
    for (; i < n; i++) d[i] = 0.0f;
}

static fp_status run_pad(const nn_exec_ctx *ctx) {
    const nn_shape *xs = ctx->in_shape[0], *os = ctx->out_shape;
    int64_t np = 0;
    const int32_t *pads = i32_input(ctx, 1, &np);
    if (!pads) return fp_fail(FP_ERR_UNSUPPORTED, "PAD: paddings are not known");
    const int nd = xs->ndim;
    if (nd < 1 || nd > NN_MAX_DIMS || np != 2 * nd || os->ndim != nd)
        return fp_fail(FP_ERR_SHAPE, "PAD: paddings for %d dims", nd);
    for (int i = 0; i < nd; i++)
        if (pads[2 * i] < 0 || pads[2 * i + 1] < 0 ||
            os->d[i] != xs->d[i] + pads[2 * i] + pads[2 * i + 1])
            return fp_fail(FP_ERR_SHAPE, "PAD: output dim %d", i);
    const int64_t total = nn_shape_count(os), incnt = nn_shape_count(xs);
    if (total == 0) return FP_OK;
    const int64_t oinner = os->d[nd - 1], inner = xs->d[nd - 1], rows = total / oinner;
    const int64_t lo = pads[2 * (nd - 1)], hi = pads[2 * (nd - 1) + 1];
    int64_t ist[NN_MAX_DIMS];
    row_strides(xs, ist);
    /* Every output row is written once: zeros, or zeros | input row | zeros. The outer index is
     * kept as an odometer: a 64-bit division per dim and row would cost more than the copy. */
    int64_t idx[NN_MAX_DIMS] = {0};
    for (int64_t r = 0; r < rows; r++) {
        float *o = ctx->out + r * oinner;
        int64_t src = 0;
        int inside = incnt > 0;
        for (int i = 0; i < nd - 1; i++) {
            int64_t v = idx[i] - pads[2 * i];
            if (v < 0 || v >= xs->d[i]) inside = 0;
            src += v * ist[i];
        }
        for (int i = nd - 2; i >= 0; i--) {
            if (++idx[i] < os->d[i]) break;
            idx[i] = 0;
        }
        if (!inside) {
            zero_floats(o, (size_t)oinner);
            continue;
        }
        zero_floats(o, (size_t)lo);
        copy_floats(o + lo, ctx->in[0] + src, (size_t)inner);
        zero_floats(o + lo + inner, (size_t)hi);
    }
    return FP_OK;
}

static fp_status run_concat(const nn_exec_ctx *ctx) {
    const nn_op *op = ctx->op;
    const nn_shape *os = ctx->out_shape;
    const int nd = os->ndim;
    int axis = op->p.axis < 0 ? op->p.axis + nd : op->p.axis;
    if (axis < 0 || axis >= nd) return fp_fail(FP_ERR_SHAPE, "CONCAT: axis %d", op->p.axis);
    int64_t outer = 1, oinner = 1, sum = 0;
    for (int i = 0; i < axis; i++) outer *= os->d[i];
    for (int i = axis; i < nd; i++) oinner *= os->d[i];
    for (int j = 0; j < op->n_in; j++) {
        const nn_shape *s = ctx->in_shape[j];
        if (!s || !ctx->in[j] || s->ndim != nd) return fp_fail(FP_ERR_SHAPE, "CONCAT: input %d", j);
        for (int i = 0; i < nd; i++)
            if (i != axis && s->d[i] != os->d[i])
                return fp_fail(FP_ERR_SHAPE, "CONCAT: input %d dim %d", j, i);
        sum += s->d[axis];
    }
    if (sum != os->d[axis]) return fp_fail(FP_ERR_SHAPE, "CONCAT: sizes along axis");
    int64_t off = 0;
    for (int j = 0; j < op->n_in; j++) {
        int64_t inner = oinner / (os->d[axis] ? os->d[axis] : 1) * ctx->in_shape[j]->d[axis];
        for (int64_t r = 0; r < outer; r++)
            memcpy(ctx->out + r * oinner + off, ctx->in[j] + r * inner,
                   (size_t)inner * sizeof(float));
        off += inner;
    }
    return FP_OK;
}

static fp_status run_mean(const nn_exec_ctx *ctx) {
    const nn_shape *xs = ctx->in_shape[0], *os = ctx->out_shape;
    const int nd = xs->ndim;
    int red[NN_MAX_DIMS] = {0};
    int64_t na = 0;
    const int32_t *axes = i32_input(ctx, 1, &na);
    if (axes) {
        for (int64_t i = 0; i < na; i++) {
            int a = axes[i] < 0 ? axes[i] + nd : axes[i];
            if (a < 0 || a >= nd) return fp_fail(FP_ERR_SHAPE, "MEAN: axis %d", axes[i]);
            red[a] = 1;
        }
    } else if (ctx->op->p.keep_dims && os->ndim == nd) {
        /* With keep_dims the reduced axes are the ones that became 1; a size-1 axis reduces to
         * itself, so the ambiguity does not matter. */
        for (int i = 0; i < nd; i++) red[i] = os->d[i] == 1;
    } else {
        return fp_fail(FP_ERR_UNSUPPORTED, "MEAN: axes are not known");
    }
    int64_t ostride[NN_MAX_DIMS], r = 1, cnt = 1, ocount = 1;
    for (int i = nd - 1; i >= 0; i--) {
        ostride[i] = red[i] ? 0 : r;
        if (!red[i]) r *= xs->d[i];
        if (red[i]) cnt *= xs->d[i];
    }
    ocount = r;
    if (nn_shape_count(os) != ocount) return fp_fail(FP_ERR_SHAPE, "MEAN: output size");
    double *acc = (double *)(void *)(((uintptr_t)ctx->scratch + 7) & ~(uintptr_t)7);
    for (int64_t i = 0; i < ocount; i++) acc[i] = 0.0;
    const int64_t total = nn_shape_count(xs);
    if (nd == 0 || total == 0) {
        for (int64_t i = 0; i < ocount; i++) ctx->out[i] = total ? ctx->in[0][i] : NAN;
        return FP_OK;
    }
    const int64_t inner = xs->d[nd - 1], rows = total / inner;
    const float *x = ctx->in[0];
    for (int64_t row = 0; row < rows; row++, x += inner) {
        int64_t rem = row, off = 0;
        for (int i = nd - 2; i >= 0; i--) {
            off += rem % xs->d[i] * ostride[i];
            rem /= xs->d[i];
        }
        if (red[nd - 1]) {
            double s = 0.0;
            for (int64_t i = 0; i < inner; i++) s += x[i];
            acc[off] += s;
        } else {
            for (int64_t i = 0; i < inner; i++) acc[off + i] += x[i];
        }
    }
    for (int64_t i = 0; i < ocount; i++) ctx->out[i] = (float)(acc[i] / (double)cnt);
    return FP_OK;
}

static fp_status run_resize(const nn_exec_ctx *ctx) {
    const nn_shape *xs = ctx->in_shape[0], *os = ctx->out_shape;
    if (!xs || xs->ndim != 4 || !os || os->ndim != 4 || os->d[0] != xs->d[0] ||
        os->d[3] != xs->d[3])
        return fp_fail(FP_ERR_SHAPE, "RESIZE_BILINEAR: want NHWC in and out");
    const int N = (int)xs->d[0], H = (int)xs->d[1], W = (int)xs->d[2], C = (int)xs->d[3];
    const int OH = (int)os->d[1], OW = (int)os->d[2];
    const int ac = ctx->op->p.resize.align_corners, hp = ctx->op->p.resize.half_pixel;
    /* TF's CalculateResizeScale and its HalfPixelScaler / LegacyScaler, in float like TF. */
    const float scy = ac && OH > 1 ? (float)(H - 1) / (float)(OH - 1) : (float)H / (float)OH;
    const float scx = ac && OW > 1 ? (float)(W - 1) / (float)(OW - 1) : (float)W / (float)OW;
    const float *x = ctx->in[0];
    for (int n = 0; n < N; n++)
        for (int oy = 0; oy < OH; oy++) {
            float fy = hp ? ((float)oy + 0.5f) * scy - 0.5f : (float)oy * scy;
            float fy0 = floorf(fy);
            int y0 = (int)fy0 > 0 ? (int)fy0 : 0;
            int y1 = (int)ceilf(fy) < H - 1 ? (int)ceilf(fy) : H - 1;
            float ly = fy - fy0;
            const float *r0 = x + ((size_t)n * H + y0) * W * C, *r1 = x + ((size_t)n * H + y1) * W * C;
            for (int ox = 0; ox < OW; ox++) {
                float fx = hp ? ((float)ox + 0.5f) * scx - 0.5f : (float)ox * scx;
                float fx0 = floorf(fx);
                int x0 = (int)fx0 > 0 ? (int)fx0 : 0;
                int x1 = (int)ceilf(fx) < W - 1 ? (int)ceilf(fx) : W - 1;
                float lx = fx - fx0;
                const float *tl = r0 + (size_t)x0 * C, *tr = r0 + (size_t)x1 * C;
                const float *bl = r1 + (size_t)x0 * C, *br = r1 + (size_t)x1 * C;
                float *o = ctx->out + (((size_t)n * OH + oy) * OW + ox) * C;
                for (int c = 0; c < C; c++) {
                    float top = tl[c] + (tr[c] - tl[c]) * lx;
                    float bot = bl[c] + (br[c] - bl[c]) * lx;
                    o[c] = top + (bot - top) * ly;
                }
            }
        }
    return FP_OK;
}

static fp_status run_depth_to_space(const nn_exec_ctx *ctx) {
    const nn_shape *xs = ctx->in_shape[0];
    const int b = ctx->op->p.block;
    if (!xs || xs->ndim != 4 || b < 1 || xs->d[3] % ((int64_t)b * b) != 0)
        return fp_fail(FP_ERR_SHAPE, "DEPTH_TO_SPACE: block %d", b);
    const int64_t N = xs->d[0], H = xs->d[1], W = xs->d[2], C = xs->d[3], OC = C / b / b;
    fp_status st = check_out(ctx, N, H * b, W * b, OC);
    if (st) return st;
    for (int64_t n = 0; n < N; n++)
        for (int64_t y = 0; y < H; y++)
            for (int64_t i = 0; i < b; i++)
                for (int64_t xx = 0; xx < W; xx++) {
                    const float *src = ctx->in[0] + ((n * H + y) * W + xx) * C + i * b * OC;
                    float *dst = ctx->out + ((n * H * b + y * b + i) * W * b + xx * b) * OC;
                    memcpy(dst, src, (size_t)(b * OC) * sizeof(float));
                }
    return FP_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Entry points                                                                                    */
/* ---------------------------------------------------------------------------------------------- */
size_t nn_scratch_size(const nn_op *op, const nn_shape *const *in_shape,
                       const nn_shape *out_shape) {
    if (!op || !in_shape) return 0;
    size_t s = 0;
    switch (op->type) {
    case NN_OP_CONV2D:
    case NN_OP_DWCONV2D:
    case NN_OP_FC: {
        int kind, n, k;
        if (op->n_in < 2 || pack_dims(op, in_shape[1], &kind, &n, &k) != 0) return 0;
        if (!op->packed) s += nn_packed_floats(kind, n, k);
        if (op->type == NN_OP_CONV2D) {
            conv_geom cg;
            if (conv_geom_get(op, in_shape[0], in_shape[1], &cg) != FP_OK)
                return s; /* nn_run_op reports the shape error */
            if (!conv_is_pointwise(&cg)) {
                /* One gather slot per thread (at most NN_IM2COL_SLOTS threads, and never more
                 * than output rows); a slot holds up to NN_IM2COL_ROWS gathered pixels. */
                size_t m = (size_t)cg.n * cg.oh * cg.ow, rows = (size_t)cg.n * cg.oh;
                size_t slots = rows < NN_IM2COL_SLOTS ? rows : NN_IM2COL_SLOTS;
                size_t per = m < NN_IM2COL_ROWS ? m : NN_IM2COL_ROWS;
                s += slots * per * (size_t)k;
            }
        }
        return s;
    }
    case NN_OP_MEAN: return 2 * (size_t)nn_shape_count(out_shape) + 2;
    default: return 0;
    }
}

fp_status nn_run_op(const nn_exec_ctx *ctx) {
    if (!ctx || !ctx->op || !ctx->in || !ctx->in_shape || !ctx->out || !ctx->out_shape)
        return fp_fail(FP_ERR_INVALID_ARG, "nn_run_op: incomplete context");
    const nn_op *op = ctx->op;
    if (op->n_in < 1 || !ctx->in[0] || !ctx->in_shape[0])
        return fp_fail(FP_ERR_INVALID_ARG, "%s: missing input", op_name(op->type));
    switch (op->type) {
    case NN_OP_CONV2D: return run_conv(ctx);
    case NN_OP_DWCONV2D: return run_dwconv(ctx);
    case NN_OP_FC: return run_fc(ctx);
    case NN_OP_MAXPOOL:
    case NN_OP_AVGPOOL: return run_pool(ctx);
    case NN_OP_ADD:
    case NN_OP_SUB:
    case NN_OP_MUL:
    case NN_OP_DIV:
    case NN_OP_MIN:
    case NN_OP_MAX:
        if (op->n_in < 2) return fp_fail(FP_ERR_INVALID_ARG, "%s: 2 inputs", op_name(op->type));
        return run_binary(ctx, op->type, op->p.act);
    case NN_OP_PRELU:
        if (op->n_in < 2) return fp_fail(FP_ERR_INVALID_ARG, "PRELU: 2 inputs");
        return run_binary(ctx, NN_OP_PRELU, NN_ACT_NONE);
    case NN_OP_RELU:
    case NN_OP_RELU6:
    case NN_OP_ABS:
    case NN_OP_NEG:
    case NN_OP_SIGMOID:
    case NN_OP_TANH:
    case NN_OP_EXP:
    case NN_OP_SQRT:
    case NN_OP_RSQRT:
    case NN_OP_SQUARE:
    case NN_OP_LEAKY_RELU: return run_unary(ctx);
    case NN_OP_SOFTMAX: return run_softmax(ctx);
    case NN_OP_PAD: return run_pad(ctx);
    case NN_OP_CONCAT: return run_concat(ctx);
    case NN_OP_RESHAPE:
    case NN_OP_IDENTITY: {
        int64_t n = nn_shape_count(ctx->in_shape[0]);
        if (nn_shape_count(ctx->out_shape) != n)
            return fp_fail(FP_ERR_SHAPE, "%s: %lld values into %lld", op_name(op->type),
                           (long long)n, (long long)nn_shape_count(ctx->out_shape));
        if (ctx->out != ctx->in[0]) memcpy(ctx->out, ctx->in[0], (size_t)n * sizeof(float));
        return FP_OK;
    }
    case NN_OP_MEAN: return run_mean(ctx);
    case NN_OP_RESIZE_BILINEAR: return run_resize(ctx);
    case NN_OP_DEPTH_TO_SPACE: return run_depth_to_space(ctx);
    default:
        return fp_fail(FP_ERR_UNSUPPORTED, "op %s has no F32 kernel", op_name(op->type));
    }
}
