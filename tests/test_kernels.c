/*
 * test_kernels.c - every F32 kernel of the runtime (src/nn/kernels*.c) against naive references
 * written here (plain loops, double accumulation, TF semantics re-derived independently), for the
 * scalar and, when the CPU has it, the AVX2/FMA kernel set, with 1 and 2 threads. Self-contained:
 * tiny graphs are built with the graph.c builder, inputs come from a fixed-seed generator.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/kernels.h"
#include "nn/nn.h"
#include "util/testutil.h"

/* ---------------------------------------------------------------------------------------------- */
/* Helpers                                                                                         */
/* ---------------------------------------------------------------------------------------------- */
static unsigned g_seed = 1u;
static float frand(void) { /* uniform in [-1, 1) */
    g_seed = g_seed * 1103515245u + 12345u;
    return (float)((g_seed >> 8) & 0xffffff) / 8388608.0f - 1.0f;
}
static float *rnd(int64_t n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

static nn_shape S(int nd, ...) {
    nn_shape s = {.ndim = nd};
    va_list ap;
    va_start(ap, nd);
    for (int i = 0; i < nd; i++) s.d[i] = va_arg(ap, int);
    va_end(ap);
    return s;
}

/* Kernel sets to test: scalar always, AVX2 when the CPU has it. */
static int n_sets(void) {
    nn_kernels_select(1);
    int avx = strcmp(nn_kernel_name(), "avx2+fma") == 0;
    nn_kernels_select(0);
    return avx ? 2 : 1;
}

/* Max |got-ref| must stay within tol * max(1, max|ref|). */
static void check_close(const float *got, const double *ref, int64_t n, double tol,
                        const char *what) {
    double md = 0, mr = 1;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (isnan(d)) { /* an output never written stays NaN */
            md = INFINITY, at = i;
            break;
        }
        if (d > md) md = d, at = i;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    if (!(md <= tol * mr)) {
        fprintf(stderr, "%s [%s]: max diff %g at %lld (got %g want %g), scale %g\n", what,
                nn_kernel_name(), md, (long long)at, (double)got[at], ref[at], mr);
        fail();
    }
}

/* Per-element relative check for transcendental ops. */
static void check_rel(const float *got, const double *ref, int64_t n, double tol,
                      const char *what) {
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= tol * fmax(1.0, fabs(ref[i])))) {
            fprintf(stderr, "%s [%s]: at %lld got %.9g want %.9g\n", what, nn_kernel_name(),
                    (long long)i, (double)got[i], ref[i]);
            fail();
        }
    }
}

/* A one-op graph and the buffers of its inputs. */
typedef struct tb {
    nn_graph *g;
    int n;
    int vi[8];
    const float *data[8]; /* F32 buffers passed to the kernel (NULL for I32 / absent) */
    nn_shape shape[8];
    int out;
} tb;

static void tb_init(tb *t) {
    memset(t, 0, sizeof *t);
    t->g = nn_graph_new("test");
    assert_non_null(t->g);
}

/* A computed input: the test keeps ownership of data. */
static void tb_input(tb *t, nn_shape s, const float *data) {
    t->vi[t->n] = nn_graph_add_value(t->g, "x", NN_F32, &s, NULL, 0);
    t->data[t->n] = data;
    t->shape[t->n++] = s;
}

static void tb_const(tb *t, nn_shape s, const float *data) {
    int v = nn_graph_add_const(t->g, "c", NN_F32, &s, data);
    assert_true(v >= 0);
    t->vi[t->n] = v;
    t->data[t->n] = t->g->values[v].data;
    t->shape[t->n++] = s;
}

static void tb_const_i32(tb *t, nn_shape s, const int32_t *data) {
    int v = nn_graph_add_const(t->g, "i", NN_I32, &s, data);
    assert_true(v >= 0);
    t->vi[t->n] = v;
    t->data[t->n] = NULL;
    t->shape[t->n++] = s;
}

/* A computed I32 input (a plan-time value): the executor passes its int32 contents as the buffer. */
static void tb_input_i32(tb *t, nn_shape s, const int32_t *data) {
    t->vi[t->n] = nn_graph_add_value(t->g, "i", NN_I32, &s, NULL, 0);
    t->data[t->n] = (const float *)(const void *)data;
    t->shape[t->n++] = s;
}

static void tb_absent(tb *t) {
    t->vi[t->n] = -1;
    t->data[t->n] = NULL;
    t->shape[t->n++] = (nn_shape){0};
}

static nn_op *tb_op(tb *t, nn_op_type type) {
    t->out = nn_graph_add_value(t->g, "y", NN_F32, NULL, NULL, 0);
    nn_op *op = nn_graph_add_op(t->g, type, t->vi, t->n, &t->out, 1);
    assert_non_null(op);
    return op;
}

static fp_status tb_try(tb *t, nn_shape out, int threads, float *y) {
    const nn_shape *sp[8];
    for (int i = 0; i < t->n; i++) sp[i] = t->vi[i] >= 0 ? &t->shape[i] : NULL;
    const nn_op *op = &t->g->ops[0];
    size_t sc = nn_scratch_size(op, sp, &out);
    float *scratch = malloc((sc ? sc : 1) * sizeof *scratch);
    nn_exec_ctx ctx = {.op = op, .g = t->g, .in = t->data, .in_shape = sp, .out = y,
                       .out_shape = &out, .scratch = scratch, .threads = threads};
    fp_status st = nn_run_op(&ctx);
    free(scratch);
    return st;
}

static float *tb_run(tb *t, nn_shape out, int threads) {
    int64_t n = nn_shape_count(&out);
    float *y = malloc((size_t)(n ? n : 1) * sizeof *y);
    for (int64_t i = 0; i < n; i++) y[i] = NAN; /* every output must be written */
    fp_status st = tb_try(t, out, threads, y);
    if (st != FP_OK) fprintf(stderr, "run failed: %s\n", fp_last_error());
    assert_int_equal(st, FP_OK);
    return y;
}

static void tb_free(tb *t) { nn_graph_free(t->g); }

/* Runs the op with every kernel set and 1/2 threads and compares with ref. */
static void run_all(tb *t, nn_shape out, const double *ref, double tol, const char *what) {
    int sets = n_sets();
    for (int s = 0; s < sets; s++) {
        nn_kernels_select(s);
        for (int th = 1; th <= 2; th++) {
            float *y = tb_run(t, out, th);
            check_close(y, ref, nn_shape_count(&out), tol, what);
            free(y);
        }
    }
    nn_kernels_select(1);
}

static double ref_act(double v, nn_act act, double slope) {
    switch (act) {
    case NN_ACT_RELU: return v > 0 ? v : 0;
    case NN_ACT_RELU6: return v < 0 ? 0 : v > 6 ? 6 : v;
    case NN_ACT_LEAKY:
    case NN_ACT_PRELU: return v < 0 ? v * slope : v;
    default: return v;
    }
}

/* TF's window arithmetic, re-derived here rather than taken from nn_window_out. */
static void ref_window(int in, int k, int s, int d, nn_padding pad, int plo, int phi, int *out,
                       int *lo) {
    int ek = (k - 1) * d + 1;
    if (pad == NN_PAD_SAME) {
        *out = (in + s - 1) / s;
        int total = (*out - 1) * s + ek - in;
        *lo = total > 0 ? total / 2 : 0;
    } else if (pad == NN_PAD_EXPLICIT) {
        *out = (in + plo + phi - ek) / s + 1;
        *lo = plo;
    } else {
        *out = (in - ek) / s + 1;
        *lo = 0;
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* CONV2D / DWCONV2D                                                                               */
/* ---------------------------------------------------------------------------------------------- */
typedef struct conv_case {
    int dw; /* 0: CONV2D, 1: DWCONV2D */
    int n, h, w, cin, cout, kh, kw, sh, sw, dh, dwl;
    nn_padding pad;
    int pt, pb, pl, pr;
    nn_act act;
    int bias;
} conv_case;

static void conv_one(const conv_case *c) {
    int oh, ow, pt, pl;
    ref_window(c->h, c->kh, c->sh, c->dh, c->pad, c->pt, c->pb, &oh, &pt);
    ref_window(c->w, c->kw, c->sw, c->dwl, c->pad, c->pl, c->pr, &ow, &pl);
    nn_shape xs = S(4, c->n, c->h, c->w, c->cin);
    nn_shape ws = c->dw ? S(4, 1, c->kh, c->kw, c->cout) : S(4, c->cout, c->kh, c->kw, c->cin);
    nn_shape cs = S(1, c->cout), os = S(4, c->n, oh, ow, c->cout);
    float *x = rnd(nn_shape_count(&xs)), *w = rnd(nn_shape_count(&ws)), *b = rnd(c->cout);
    float *al = rnd(c->cout);
    const float leaky = 0.2f;
    const int mult = c->cout / c->cin;

    double *ref = malloc((size_t)nn_shape_count(&os) * sizeof *ref);
    for (int n = 0; n < c->n; n++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int co = 0; co < c->cout; co++) {
                    double acc = c->bias ? b[co] : 0.0;
                    for (int ky = 0; ky < c->kh; ky++)
                        for (int kx = 0; kx < c->kw; kx++) {
                            int iy = oy * c->sh - pt + ky * c->dh;
                            int ix = ox * c->sw - pl + kx * c->dwl;
                            if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w) continue;
                            const float *xp = x + (((size_t)n * c->h + iy) * c->w + ix) * c->cin;
                            if (c->dw) {
                                acc += (double)xp[co / mult] *
                                       w[((size_t)ky * c->kw + kx) * c->cout + co];
                            } else {
                                const float *wp =
                                    w + (((size_t)co * c->kh + ky) * c->kw + kx) * c->cin;
                                for (int ci = 0; ci < c->cin; ci++)
                                    acc += (double)xp[ci] * wp[ci];
                            }
                        }
                    ref[(((size_t)n * oh + oy) * ow + ox) * c->cout + co] =
                        ref_act(acc, c->act, c->act == NN_ACT_PRELU ? al[co] : leaky);
                }

    /* Once with weights packed at load (the executor's path), once packed at run time. */
    for (int packed = 0; packed <= 1; packed++) {
        tb t;
        tb_init(&t);
        tb_input(&t, xs, x);
        if (packed) {
            tb_const(&t, ws, w);
            if (c->bias) tb_const(&t, cs, b); else tb_absent(&t);
            if (c->act == NN_ACT_PRELU) tb_const(&t, cs, al);
        } else {
            tb_input(&t, ws, w);
            if (c->bias) tb_input(&t, cs, b); else tb_absent(&t);
            if (c->act == NN_ACT_PRELU) tb_input(&t, cs, al);
        }
        nn_op *op = tb_op(&t, c->dw ? NN_OP_DWCONV2D : NN_OP_CONV2D);
        op->p.conv = (nn_conv_params){.kh = c->kh, .kw = c->kw, .sh = c->sh, .sw = c->sw,
                                      .dh = c->dh, .dw = c->dwl, .padding = c->pad,
                                      .pad_t = c->pt, .pad_b = c->pb, .pad_l = c->pl,
                                      .pad_r = c->pr, .depth_multiplier = c->dw ? mult : 0,
                                      .act = c->act, .alpha = leaky};
        assert_int_equal(nn_pack_op(t.g, op), FP_OK);
        if (packed) assert_non_null(op->packed);
        else assert_null(op->packed);
        char what[160];
        snprintf(what, sizeof what, "%s n%d %dx%d cin%d cout%d k%dx%d s%d,%d d%d,%d pad%d act%d %s",
                 c->dw ? "dw" : "conv", c->n, c->h, c->w, c->cin, c->cout, c->kh, c->kw, c->sh,
                 c->sw, c->dh, c->dwl, (int)c->pad, (int)c->act, packed ? "packed" : "unpacked");
        run_all(&t, os, ref, 1e-5, what);
        tb_free(&t);
    }
    free(x), free(w), free(b), free(al), free(ref);
}

static void test_conv2d(void **state) {
    (void)state;
    const conv_case cases[] = {
        /* 1x1 pointwise = straight GEMM: M and N off the 6x16 tile, 8-wide last panel */
        {0, 1, 7, 5, 13, 37, 1, 1, 1, 1, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_RELU6, 1},
        {0, 3, 6, 6, 16, 24, 1, 1, 1, 1, 1, 1, NN_PAD_VALID, 0, 0, 0, 0, NN_ACT_PRELU, 1},
        {0, 1, 28, 28, 64, 96, 1, 1, 1, 1, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_NONE, 1},
        {0, 2, 7, 7, 300, 20, 1, 1, 1, 1, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_LEAKY, 1},
        {0, 1, 3, 4, 520, 8, 1, 1, 1, 1, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_RELU, 0},
        /* 1x1 stride 2 (gathered rows) */
        {0, 2, 9, 9, 8, 8, 1, 1, 2, 2, 1, 1, NN_PAD_VALID, 0, 0, 0, 0, NN_ACT_RELU, 1},
        {0, 1, 10, 10, 5, 3, 1, 1, 2, 2, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_NONE, 1},
        /* KxK through im2col */
        {0, 2, 9, 11, 5, 19, 3, 3, 1, 1, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_LEAKY, 1},
        {0, 1, 10, 10, 3, 16, 3, 3, 2, 2, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_RELU, 1},
        {0, 3, 11, 9, 4, 20, 3, 3, 2, 2, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_PRELU, 1},
        {0, 1, 16, 16, 3, 24, 5, 5, 2, 2, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_RELU, 1},
        {0, 1, 17, 15, 3, 24, 5, 5, 2, 2, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_RELU, 1},
        {0, 1, 12, 10, 6, 10, 3, 3, 1, 1, 2, 2, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_NONE, 1},
        {0, 1, 13, 13, 7, 9, 3, 3, 3, 3, 1, 1, NN_PAD_VALID, 0, 0, 0, 0, NN_ACT_RELU6, 0},
        {0, 2, 8, 8, 4, 12, 3, 3, 1, 1, 1, 1, NN_PAD_EXPLICIT, 1, 2, 0, 1, NN_ACT_NONE, 1},
        {0, 1, 12, 12, 40, 33, 3, 3, 1, 1, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_PRELU, 1},
        {0, 1, 6, 9, 5, 7, 1, 3, 1, 2, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_NONE, 1},
        {0, 1, 4, 4, 2, 3, 5, 5, 1, 1, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_NONE, 1},
        /* first output row entirely inside the padding: bias + act only */
        {0, 2, 5, 5, 3, 4, 2, 2, 1, 1, 1, 1, NN_PAD_EXPLICIT, 3, 0, 1, 1, NN_ACT_RELU, 1},
        /* vertical-only and horizontal-only dilation */
        {0, 1, 9, 8, 3, 5, 3, 3, 1, 1, 2, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_NONE, 1},
        {0, 2, 8, 9, 3, 5, 3, 3, 1, 1, 1, 2, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_RELU6, 1},
        /* a row of 130 pixels: more border + interior pixels than one gather slot */
        {0, 1, 3, 130, 2, 7, 3, 3, 1, 1, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_NONE, 1},
        {0, 1, 2, 100, 2, 7, 1, 3, 1, 1, 1, 40, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_NONE, 1},
        /* big enough to run on 2 threads: dilated (gathered blocks) and implicit paths */
        {0, 1, 24, 24, 16, 16, 3, 3, 1, 1, 1, 2, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_RELU, 1},
        {0, 2, 20, 20, 8, 40, 3, 3, 2, 2, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_PRELU, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) conv_one(&cases[i]);
}

static void test_dwconv2d(void **state) {
    (void)state;
    const conv_case cases[] = {
        {1, 2, 9, 7, 13, 13, 3, 3, 1, 1, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_RELU, 1},
        {1, 1, 10, 10, 24, 24, 3, 3, 2, 2, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_PRELU, 1},
        {1, 3, 11, 11, 8, 8, 3, 3, 2, 2, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_RELU6, 1},
        {1, 1, 12, 12, 20, 20, 5, 5, 1, 1, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_LEAKY, 1},
        {1, 1, 16, 16, 24, 24, 5, 5, 2, 2, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_RELU, 1},
        {1, 1, 10, 9, 16, 16, 3, 3, 1, 1, 2, 2, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_NONE, 1},
        {1, 2, 6, 6, 5, 10, 3, 3, 1, 1, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_PRELU, 1},
        {1, 1, 7, 8, 3, 6, 3, 3, 2, 2, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_NONE, 0},
        {1, 3, 7, 7, 40, 40, 7, 7, 1, 1, 1, 1, NN_PAD_VALID, 0, 0, 0, 0, NN_ACT_NONE, 1},
        {1, 1, 8, 8, 17, 17, 3, 3, 1, 1, 1, 1, NN_PAD_VALID, 0, 0, 0, 0, NN_ACT_NONE, 0},
        {1, 1, 3, 2, 9, 9, 3, 3, 1, 1, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_RELU, 1},
        {1, 2, 9, 10, 12, 12, 3, 3, 1, 1, 1, 1, NN_PAD_EXPLICIT, 2, 0, 1, 3, NN_ACT_NONE, 1},
        {1, 1, 20, 23, 64, 64, 3, 3, 1, 1, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_PRELU, 1},
        {1, 1, 9, 9, 4, 4, 3, 3, 3, 3, 1, 1, NN_PAD_SAME, 0, 0, 0, 0, NN_ACT_NONE, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) conv_one(&cases[i]);
}

static void fc_one(nn_shape xs, int nout, nn_act act, int bias) {
    int64_t cnt = nn_shape_count(&xs);
    int k = (int)(cnt / xs.d[0]);
    int rows = (int)xs.d[0];
    float *x = rnd(cnt), *w = rnd((int64_t)nout * k), *b = rnd(nout), *al = rnd(nout);
    double *ref = malloc((size_t)rows * nout * sizeof *ref);
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < nout; o++) {
            double acc = bias ? b[o] : 0;
            for (int i = 0; i < k; i++) acc += (double)x[(size_t)r * k + i] * w[(size_t)o * k + i];
            ref[(size_t)r * nout + o] = ref_act(acc, act, act == NN_ACT_PRELU ? al[o] : 0.1);
        }
    for (int packed = 0; packed <= 1; packed++) {
        tb t;
        tb_init(&t);
        tb_input(&t, xs, x);
        nn_shape wsh = S(2, nout, k), bs = S(1, nout);
        if (packed) tb_const(&t, wsh, w); else tb_input(&t, wsh, w);
        if (!bias) tb_absent(&t); else if (packed) tb_const(&t, bs, b); else tb_input(&t, bs, b);
        if (act == NN_ACT_PRELU) {
            if (packed) tb_const(&t, bs, al); else tb_input(&t, bs, al);
        }
        nn_op *op = tb_op(&t, NN_OP_FC);
        op->p.fc = (nn_fc_params){.act = act, .alpha = 0.1f};
        assert_int_equal(nn_pack_op(t.g, op), FP_OK);
        run_all(&t, S(2, rows, nout), ref, 1e-5, "fc");
        tb_free(&t);
    }
    free(x), free(w), free(b), free(al), free(ref);
}

static void test_fc(void **state) {
    (void)state;
    fc_one(S(2, 3, 50), 37, NN_ACT_RELU, 1);
    fc_one(S(4, 2, 2, 2, 5), 7, NN_ACT_NONE, 0);
    fc_one(S(2, 1, 512), 128, NN_ACT_PRELU, 1);
    fc_one(S(2, 20, 64), 130, NN_ACT_LEAKY, 1);
    fc_one(S(2, 3, 512), 1000, NN_ACT_RELU6, 1); /* few rows: threads split the panels */
}

/* ---------------------------------------------------------------------------------------------- */
/* Pooling                                                                                         */
/* ---------------------------------------------------------------------------------------------- */
static void pool_one(nn_op_type type, int n, int h, int w, int c, int k, int s, nn_padding pad,
                     nn_act act) {
    int oh, ow, pt, pl;
    ref_window(h, k, s, 1, pad, 0, 0, &oh, &pt);
    ref_window(w, k, s, 1, pad, 0, 0, &ow, &pl);
    nn_shape xs = S(4, n, h, w, c), os = S(4, n, oh, ow, c);
    float *x = rnd(nn_shape_count(&xs));
    double *ref = malloc((size_t)nn_shape_count(&os) * sizeof *ref);
    for (int b = 0; b < n; b++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int ch = 0; ch < c; ch++) {
                    double acc = type == NN_OP_MAXPOOL ? -INFINITY : 0;
                    int taps = 0;
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy * s - pt + ky, ix = ox * s - pl + kx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                            double v = x[(((size_t)b * h + iy) * w + ix) * c + ch];
                            acc = type == NN_OP_MAXPOOL ? fmax(acc, v) : acc + v;
                            taps++;
                        }
                    if (type == NN_OP_AVGPOOL) acc /= taps;
                    ref[(((size_t)b * oh + oy) * ow + ox) * c + ch] = ref_act(acc, act, 0);
                }
    tb t;
    tb_init(&t);
    tb_input(&t, xs, x);
    nn_op *op = tb_op(&t, type);
    op->p.pool = (nn_pool_params){.kh = k, .kw = k, .sh = s, .sw = s, .padding = pad, .act = act};
    run_all(&t, os, ref, 1e-6, type == NN_OP_MAXPOOL ? "maxpool" : "avgpool");
    tb_free(&t);
    free(x), free(ref);
}

static void test_pool(void **state) {
    (void)state;
    for (int m = 0; m < 2; m++) {
        nn_op_type ty = m ? NN_OP_AVGPOOL : NN_OP_MAXPOOL;
        pool_one(ty, 2, 7, 7, 5, 2, 2, NN_PAD_SAME, NN_ACT_NONE);
        pool_one(ty, 1, 8, 8, 11, 3, 2, NN_PAD_SAME, NN_ACT_RELU);
        pool_one(ty, 1, 6, 5, 3, 3, 1, NN_PAD_SAME, NN_ACT_NONE);
        pool_one(ty, 3, 9, 9, 4, 2, 2, NN_PAD_VALID, NN_ACT_RELU6);
        pool_one(ty, 1, 7, 7, 16, 7, 1, NN_PAD_VALID, NN_ACT_NONE);
        pool_one(ty, 2, 64, 64, 20, 2, 2, NN_PAD_SAME, NN_ACT_NONE); /* 2 threads */
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Element-wise                                                                                    */
/* ---------------------------------------------------------------------------------------------- */
static double ref_bin(nn_op_type t, double a, double b) {
    switch (t) {
    case NN_OP_ADD: return a + b;
    case NN_OP_SUB: return a - b;
    case NN_OP_MUL: return a * b;
    case NN_OP_DIV: return a / b;
    case NN_OP_MIN: return a < b ? a : b;
    case NN_OP_MAX: return a > b ? a : b;
    case NN_OP_PRELU: return a < 0 ? a * b : a;
    default: return NAN;
    }
}

/* Index of `o` (output multi-index, rank nd) into an operand of shape s (right-aligned). */
static int64_t bidx(const nn_shape *s, const int64_t *o, int nd) {
    int64_t idx = 0;
    for (int i = 0; i < s->ndim; i++) {
        int oi = i + nd - s->ndim;
        idx = idx * s->d[i] + (s->d[i] == 1 ? 0 : o[oi]);
    }
    return idx;
}

static void binary_one(nn_op_type type, nn_shape as, nn_shape bs, nn_act act) {
    int nd = as.ndim > bs.ndim ? as.ndim : bs.ndim;
    nn_shape os = {.ndim = nd};
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - as.ndim), ib = i - (nd - bs.ndim);
        int64_t da = ia >= 0 ? as.d[ia] : 1, db = ib >= 0 ? bs.d[ib] : 1;
        os.d[i] = da > db ? da : db;
    }
    float *a = rnd(nn_shape_count(&as)), *b = rnd(nn_shape_count(&bs));
    if (type == NN_OP_DIV) /* keep divisors away from 0 */
        for (int64_t i = 0; i < nn_shape_count(&bs); i++) b[i] = b[i] < 0 ? b[i] - 0.5f : b[i] + 0.5f;
    int64_t n = nn_shape_count(&os);
    double *ref = malloc((size_t)n * sizeof *ref);
    for (int64_t i = 0; i < n; i++) {
        int64_t o[NN_MAX_DIMS], rem = i;
        for (int d = nd - 1; d >= 0; d--) o[d] = rem % os.d[d], rem /= os.d[d];
        ref[i] = ref_act(ref_bin(type, a[bidx(&as, o, nd)], b[bidx(&bs, o, nd)]), act, 0);
    }
    tb t;
    tb_init(&t);
    tb_input(&t, as, a);
    tb_input(&t, bs, b);
    nn_op *op = tb_op(&t, type);
    if (type != NN_OP_PRELU) op->p.act = act;
    run_all(&t, os, ref, 1e-6, "binary");
    tb_free(&t);
    free(a), free(b), free(ref);
}

static void test_binary(void **state) {
    (void)state;
    const nn_op_type ops[] = {NN_OP_ADD, NN_OP_SUB, NN_OP_MUL, NN_OP_DIV, NN_OP_MIN, NN_OP_MAX};
    const nn_act acts[] = {NN_ACT_NONE, NN_ACT_RELU, NN_ACT_RELU6};
    const nn_shape pairs[][2] = {
        {S(4, 2, 5, 7, 3), S(4, 2, 5, 7, 3)}, {S(4, 2, 5, 7, 3), S(1, 3)},
        {S(4, 2, 5, 7, 3), S(4, 1, 1, 7, 1)}, {S(4, 2, 5, 7, 3), S(0)},
        {S(1, 1), S(4, 2, 5, 7, 3)},          {S(1, 3), S(4, 2, 5, 7, 3)},
        {S(4, 2, 1, 7, 1), S(4, 1, 5, 1, 3)}, {S(6, 2, 1, 3, 1, 2, 5), S(6, 1, 4, 1, 2, 1, 5)},
        {S(2, 3, 1003), S(2, 3, 1003)},       {S(3, 4, 9, 17), S(3, 4, 1, 17)},
        {S(0), S(0)},
    };
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
        for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++)
            binary_one(ops[o], pairs[p][0], pairs[p][1], acts[(o + p) % 3]);
    /* Big enough for the threaded split of one long row and of many rows. */
    binary_one(NN_OP_ADD, S(4, 1, 64, 64, 24), S(4, 1, 64, 64, 24), NN_ACT_RELU);
    binary_one(NN_OP_MUL, S(4, 1, 64, 64, 24), S(1, 24), NN_ACT_NONE);
}

static void test_prelu(void **state) {
    (void)state;
    binary_one(NN_OP_PRELU, S(4, 2, 5, 7, 3), S(1, 3), NN_ACT_NONE);
    binary_one(NN_OP_PRELU, S(4, 2, 5, 7, 3), S(3, 1, 1, 3), NN_ACT_NONE);
    binary_one(NN_OP_PRELU, S(4, 2, 5, 7, 19), S(3, 5, 7, 19), NN_ACT_NONE);
    binary_one(NN_OP_PRELU, S(4, 1, 6, 6, 1), S(1, 1), NN_ACT_NONE);
}

static void test_unary(void **state) {
    (void)state;
    const nn_op_type ops[] = {NN_OP_RELU, NN_OP_RELU6, NN_OP_ABS,  NN_OP_NEG,
                              NN_OP_SIGMOID, NN_OP_TANH, NN_OP_EXP, NN_OP_SQRT,
                              NN_OP_RSQRT, NN_OP_SQUARE, NN_OP_LEAKY_RELU};
    const int n = 1003;
    float *x = rnd(n);
    double *ref = malloc(n * sizeof *ref);
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        nn_op_type ty = ops[o];
        float *xi = malloc(n * sizeof *xi);
        for (int i = 0; i < n; i++) {
            xi[i] = x[i] * 8.0f; /* past 6 for RELU6, into the tails of sigmoid/tanh */
            if (ty == NN_OP_SQRT || ty == NN_OP_RSQRT) xi[i] = fabsf(xi[i]) + 0.01f;
            if (ty == NN_OP_SIGMOID && i < 4) xi[i] = i < 2 ? -100.0f : 100.0f;
            double v = xi[i];
            switch (ty) {
            case NN_OP_RELU: ref[i] = v > 0 ? v : 0; break;
            case NN_OP_RELU6: ref[i] = v < 0 ? 0 : v > 6 ? 6 : v; break;
            case NN_OP_ABS: ref[i] = fabs(v); break;
            case NN_OP_NEG: ref[i] = -v; break;
            case NN_OP_SIGMOID: ref[i] = 1.0 / (1.0 + exp(-v)); break;
            case NN_OP_TANH: ref[i] = tanh(v); break;
            case NN_OP_EXP: ref[i] = exp(v); break;
            case NN_OP_SQRT: ref[i] = sqrt(v); break;
            case NN_OP_RSQRT: ref[i] = 1.0 / sqrt(v); break;
            case NN_OP_SQUARE: ref[i] = v * v; break;
            default: ref[i] = v < 0 ? v * 0.3 : v; break;
            }
        }
        tb t;
        tb_init(&t);
        tb_input(&t, S(2, 17, 59), xi);
        nn_op *op = tb_op(&t, ty);
        op->p.leaky_alpha = 0.3f;
        int sets = n_sets();
        for (int s = 0; s < sets; s++) {
            nn_kernels_select(s);
            float *y = tb_run(&t, S(2, 17, 59), 1);
            check_rel(y, ref, n, 1e-6, "unary");
            free(y);
        }
        nn_kernels_select(1);
        tb_free(&t);
        free(xi);
    }
    free(x), free(ref);
}

/* ---------------------------------------------------------------------------------------------- */
/* SOFTMAX, PAD, CONCAT, RESHAPE, MEAN                                                             */
/* ---------------------------------------------------------------------------------------------- */
static void test_softmax(void **state) {
    (void)state;
    const float betas[] = {1.0f, 0.5f};
    for (int bi = 0; bi < 2; bi++) {
        nn_shape xs = S(3, 2, 3, 10);
        float *x = rnd(60);
        for (int i = 0; i < 10; i++) x[i] = 100.0f + (float)i * 3.0f; /* exp would overflow */
        double *ref = malloc(60 * sizeof *ref);
        for (int r = 0; r < 6; r++) {
            double mx = -INFINITY, sum = 0;
            for (int i = 0; i < 10; i++) mx = fmax(mx, x[r * 10 + i]);
            for (int i = 0; i < 10; i++) sum += exp((x[r * 10 + i] - mx) * betas[bi]);
            for (int i = 0; i < 10; i++) ref[r * 10 + i] = exp((x[r * 10 + i] - mx) * betas[bi]) / sum;
        }
        tb t;
        tb_init(&t);
        tb_input(&t, xs, x);
        tb_op(&t, NN_OP_SOFTMAX)->p.softmax_beta = betas[bi];
        run_all(&t, xs, ref, 1e-6, "softmax");
        tb_free(&t);
        free(x), free(ref);
    }
}

static void pad_one(nn_shape xs, const int32_t *pads, int computed) {
    nn_shape os = xs;
    for (int i = 0; i < xs.ndim; i++) os.d[i] += pads[2 * i] + pads[2 * i + 1];
    float *x = rnd(nn_shape_count(&xs));
    int64_t n = nn_shape_count(&os);
    double *ref = malloc((size_t)n * sizeof *ref);
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i, src = 0, mul = 1;
        int inside = 1;
        for (int d = os.ndim - 1; d >= 0; d--) {
            int64_t o = rem % os.d[d] - pads[2 * d];
            rem /= os.d[d];
            if (o < 0 || o >= xs.d[d]) inside = 0;
            src += o * mul;
            mul *= xs.d[d];
        }
        ref[i] = inside ? x[src] : 0.0;
    }
    tb t;
    tb_init(&t);
    tb_input(&t, xs, x);
    if (computed)
        tb_input_i32(&t, S(2, xs.ndim, 2), pads);
    else
        tb_const_i32(&t, S(2, xs.ndim, 2), pads);
    tb_op(&t, NN_OP_PAD);
    run_all(&t, os, ref, 0, "pad");
    tb_free(&t);
    free(x), free(ref);
}

static void test_pad(void **state) {
    (void)state;
    const int32_t p4[] = {0, 0, 1, 2, 0, 1, 2, 0};
    pad_one(S(4, 2, 3, 4, 5), p4, 0);
    pad_one(S(4, 2, 3, 4, 5), p4, 1);
    const int32_t pc[] = {0, 0, 0, 0, 0, 0, 0, 4}; /* BlazeFace channel padding */
    pad_one(S(4, 1, 8, 8, 24), pc, 0);
    const int32_t p1[] = {3, 1};
    pad_one(S(1, 5), p1, 0);
    const int32_t p6[] = {1, 0, 0, 1, 1, 1, 0, 0, 2, 0, 0, 1};
    pad_one(S(6, 1, 2, 2, 3, 1, 2), p6, 0);
}

static void test_concat(void **state) {
    (void)state;
    const int axes[] = {0, 1, 2, 3, -1, -3};
    for (size_t ai = 0; ai < sizeof axes / sizeof axes[0]; ai++) {
        int ax = axes[ai] < 0 ? axes[ai] + 4 : axes[ai];
        nn_shape s[3];
        float *x[3];
        for (int j = 0; j < 3; j++) {
            s[j] = S(4, 2, 3, 4, 5);
            s[j].d[ax] = j + 1;
            x[j] = rnd(nn_shape_count(&s[j]));
        }
        nn_shape os = S(4, 2, 3, 4, 5);
        os.d[ax] = 6;
        int64_t n = nn_shape_count(&os);
        double *ref = malloc((size_t)n * sizeof *ref);
        for (int64_t i = 0; i < n; i++) {
            int64_t o[4], rem = i;
            for (int d = 3; d >= 0; d--) o[d] = rem % os.d[d], rem /= os.d[d];
            int j = 0;
            while (o[ax] >= s[j].d[ax]) o[ax] -= s[j].d[ax], j++;
            int64_t src = ((o[0] * s[j].d[1] + o[1]) * s[j].d[2] + o[2]) * s[j].d[3] + o[3];
            ref[i] = x[j][src];
        }
        tb t;
        tb_init(&t);
        for (int j = 0; j < 3; j++) tb_input(&t, s[j], x[j]);
        tb_op(&t, NN_OP_CONCAT)->p.axis = axes[ai];
        run_all(&t, os, ref, 0, "concat");
        tb_free(&t);
        for (int j = 0; j < 3; j++) free(x[j]);
        free(ref);
    }
}

static void test_reshape(void **state) {
    (void)state;
    float *x = rnd(60);
    double ref[60];
    for (int i = 0; i < 60; i++) ref[i] = x[i];
    tb t;
    tb_init(&t);
    tb_input(&t, S(3, 3, 4, 5), x);
    const int32_t shp[] = {-1, 20};
    tb_const_i32(&t, S(1, 2), shp);
    tb_op(&t, NN_OP_RESHAPE);
    run_all(&t, S(2, 3, 20), ref, 0, "reshape");
    tb_free(&t);
    free(x);
}

/* how: 0 = constant axes, 1 = computed axes buffer, 2 = axes unknown (keep_dims inference) */
static void mean_one(nn_shape xs, const int32_t *axes, int na, int keep, int how) {
    int red[NN_MAX_DIMS] = {0};
    for (int i = 0; i < na; i++) red[axes[i] < 0 ? axes[i] + xs.ndim : axes[i]] = 1;
    nn_shape os = {0}, ks = xs;
    for (int i = 0; i < xs.ndim; i++) {
        if (red[i]) ks.d[i] = 1;
        if (!red[i] || keep) os.d[os.ndim++] = red[i] ? 1 : xs.d[i];
    }
    float *x = rnd(nn_shape_count(&xs));
    int64_t n = nn_shape_count(&ks), cnt = nn_shape_count(&xs) / n;
    double *ref = calloc((size_t)n, sizeof *ref);
    for (int64_t i = 0; i < nn_shape_count(&xs); i++) {
        int64_t rem = i, o = 0, mul = 1;
        for (int d = xs.ndim - 1; d >= 0; d--) {
            int64_t v = rem % xs.d[d];
            rem /= xs.d[d];
            o += (red[d] ? 0 : v) * mul;
            mul *= ks.d[d];
        }
        ref[o] += x[i];
    }
    for (int64_t i = 0; i < n; i++) ref[i] /= (double)cnt;
    tb t;
    tb_init(&t);
    tb_input(&t, xs, x);
    if (how == 0)
        tb_const_i32(&t, S(1, na), axes);
    else if (how == 1)
        tb_input_i32(&t, S(1, na), axes);
    else
        tb_input_i32(&t, S(1, na), NULL);
    tb_op(&t, NN_OP_MEAN)->p.keep_dims = keep;
    run_all(&t, os, ref, 1e-6, "mean");
    tb_free(&t);
    free(x), free(ref);
}

static void test_mean(void **state) {
    (void)state;
    const int32_t a12[] = {1, 2}, am1[] = {-1}, a03[] = {0, 3}, all[] = {0, 1, 2, 3};
    for (int keep = 0; keep <= 1; keep++) {
        mean_one(S(4, 2, 4, 5, 6), a12, 2, keep, 0);
        mean_one(S(4, 2, 4, 5, 6), am1, 1, keep, 1);
        mean_one(S(4, 2, 4, 5, 6), a03, 2, keep, 0);
        mean_one(S(4, 2, 4, 5, 6), all, 4, keep, 0);
        mean_one(S(4, 3, 7, 7, 512), a12, 2, keep, 0);
    }
    mean_one(S(4, 3, 7, 7, 40), a12, 2, 1, 2);
}

/* ---------------------------------------------------------------------------------------------- */
/* RESIZE_BILINEAR, DEPTH_TO_SPACE                                                                 */
/* ---------------------------------------------------------------------------------------------- */
static void resize_ref(const float *x, int n, int h, int w, int c, int oh, int ow, int ac, int hp,
                       double *ref) {
    /* TF resize_bilinear_op.cc: scale in float, HalfPixelScaler / LegacyScaler, lerp in float. */
    float sy = ac && oh > 1 ? (float)(h - 1) / (float)(oh - 1) : (float)h / (float)oh;
    float sx = ac && ow > 1 ? (float)(w - 1) / (float)(ow - 1) : (float)w / (float)ow;
    for (int b = 0; b < n; b++)
        for (int y = 0; y < oh; y++) {
            float fy = hp ? ((float)y + 0.5f) * sy - 0.5f : (float)y * sy;
            int y0 = (int)floorf(fy) < 0 ? 0 : (int)floorf(fy);
            int y1 = (int)ceilf(fy) > h - 1 ? h - 1 : (int)ceilf(fy);
            double ly = fy - floorf(fy);
            for (int xx = 0; xx < ow; xx++) {
                float fx = hp ? ((float)xx + 0.5f) * sx - 0.5f : (float)xx * sx;
                int x0 = (int)floorf(fx) < 0 ? 0 : (int)floorf(fx);
                int x1 = (int)ceilf(fx) > w - 1 ? w - 1 : (int)ceilf(fx);
                double lx = fx - floorf(fx);
                for (int ch = 0; ch < c; ch++) {
#define PX(yy, xv) (double)x[(((size_t)b * h + (yy)) * w + (xv)) * c + ch]
                    double top = PX(y0, x0) + (PX(y0, x1) - PX(y0, x0)) * lx;
                    double bot = PX(y1, x0) + (PX(y1, x1) - PX(y1, x0)) * lx;
#undef PX
                    ref[(((size_t)b * oh + y) * ow + xx) * c + ch] = top + (bot - top) * ly;
                }
            }
        }
}

static void resize_run(const float *x, nn_shape xs, int oh, int ow, int ac, int hp,
                       const double *ref, double tol) {
    tb t;
    tb_init(&t);
    tb_input(&t, xs, x);
    const int32_t size[2] = {oh, ow};
    tb_const_i32(&t, S(1, 2), size);
    nn_op *op = tb_op(&t, NN_OP_RESIZE_BILINEAR);
    op->p.resize.align_corners = ac;
    op->p.resize.half_pixel = hp;
    run_all(&t, S(4, (int)xs.d[0], oh, ow, (int)xs.d[3]), ref, tol, "resize");
    tb_free(&t);
}

static void test_resize(void **state) {
    (void)state;
    /* Hand-computed 2x2 -> 4x4 / 3x3 cases for [[1,2],[3,4]]. */
    const float x4[] = {1, 2, 3, 4};
    const double half[] = {1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5,
                           2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4};
    const double legacy[] = {1, 1.5, 2, 2, 2, 2.5, 3, 3, 3, 3.5, 4, 4, 3, 3.5, 4, 4};
    const double corners[] = {1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4};
    resize_run(x4, S(4, 1, 2, 2, 1), 4, 4, 0, 1, half, 1e-7);
    resize_run(x4, S(4, 1, 2, 2, 1), 4, 4, 0, 0, legacy, 1e-7);
    resize_run(x4, S(4, 1, 2, 2, 1), 3, 3, 1, 0, corners, 1e-7);
    /* Random up/down scales in every mode, batch 2. */
    const int sizes[][4] = {{5, 7, 9, 4}, {9, 8, 4, 3}, {6, 6, 6, 6}, {3, 5, 1, 7}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int mode = 0; mode < 3; mode++) {
            int ac = mode == 1, hp = mode == 2;
            nn_shape xs = S(4, 2, sizes[s][0], sizes[s][1], 3);
            float *x = rnd(nn_shape_count(&xs));
            int oh = sizes[s][2], ow = sizes[s][3];
            double *ref = malloc((size_t)2 * oh * ow * 3 * sizeof *ref);
            resize_ref(x, 2, sizes[s][0], sizes[s][1], 3, oh, ow, ac, hp, ref);
            resize_run(x, xs, oh, ow, ac, hp, ref, 1e-6);
            free(x), free(ref);
        }
}

static void test_depth_to_space(void **state) {
    (void)state;
    const float x4[] = {1, 2, 3, 4};
    const double hand[] = {1, 2, 3, 4};
    tb t;
    tb_init(&t);
    tb_input(&t, S(4, 1, 1, 1, 4), x4);
    tb_op(&t, NN_OP_DEPTH_TO_SPACE)->p.block = 2;
    run_all(&t, S(4, 1, 2, 2, 1), hand, 0, "d2s hand");
    tb_free(&t);

    const int b = 2, N = 2, H = 3, W = 4, C = 12, OC = C / (b * b);
    float *x = rnd(N * H * W * C);
    double *ref = malloc((size_t)N * H * W * C * sizeof *ref);
    for (int n = 0; n < N; n++)
        for (int y = 0; y < H * b; y++)
            for (int xx = 0; xx < W * b; xx++)
                for (int c = 0; c < OC; c++)
                    ref[(((size_t)n * H * b + y) * W * b + xx) * OC + c] =
                        x[(((size_t)n * H + y / b) * W + xx / b) * C +
                          ((y % b) * b + xx % b) * OC + c];
    tb_init(&t);
    tb_input(&t, S(4, N, H, W, C), x);
    tb_op(&t, NN_OP_DEPTH_TO_SPACE)->p.block = b;
    run_all(&t, S(4, N, H * b, W * b, OC), ref, 0, "d2s");
    tb_free(&t);
    free(x), free(ref);
}

/* ---------------------------------------------------------------------------------------------- */
/* Entry points                                                                                    */
/* ---------------------------------------------------------------------------------------------- */
static void test_unsupported(void **state) {
    (void)state;
    float x[4] = {1, 2, 3, 4}, y[4];
    tb t;
    tb_init(&t);
    tb_input(&t, S(1, 4), x);
    tb_op(&t, NN_OP_SHAPE);
    assert_int_equal(tb_try(&t, S(1, 1), 1, y), FP_ERR_UNSUPPORTED);
    tb_free(&t);
    /* A fused activation a binary op cannot carry. */
    tb_init(&t);
    tb_input(&t, S(1, 4), x);
    tb_input(&t, S(1, 4), x);
    tb_op(&t, NN_OP_ADD)->p.act = NN_ACT_PRELU;
    assert_int_equal(tb_try(&t, S(1, 4), 1, y), FP_ERR_UNSUPPORTED);
    tb_free(&t);
}

static void test_kernel_name(void **state) {
    (void)state;
    nn_kernels_select(0);
    assert_string_equal(nn_kernel_name(), "scalar");
    nn_kernels_select(1);
    const char *n = nn_kernel_name();
    assert_true(strcmp(n, "scalar") == 0 || strcmp(n, "avx2+fma") == 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_name), cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_dwconv2d),    cmocka_unit_test(test_fc),
        cmocka_unit_test(test_pool),        cmocka_unit_test(test_binary),
        cmocka_unit_test(test_prelu),       cmocka_unit_test(test_unary),
        cmocka_unit_test(test_softmax),     cmocka_unit_test(test_pad),
        cmocka_unit_test(test_concat),      cmocka_unit_test(test_reshape),
        cmocka_unit_test(test_mean),        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_depth_to_space), cmocka_unit_test(test_unsupported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
