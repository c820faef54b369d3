/*
 * bench_kernels.c - speed of the runtime's kernels, not part of ctest: the packed GEMM against BLIS
 * (when built with it) on the 1x1-conv shapes of MobileFaceNet and BlazeFace, the depthwise conv,
 * and a MobileFaceNet-like / BlazeFace-like layer sequence run through nn_run_op, each with 1 and
 * 2 threads. Prints tables with GFLOP/s (2 flops per MAC) and ms.
 *
 * usage: bench_kernels [scalar]   (default: the kernel set the CPU supports)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/kernels.h"
#include "nn/nn.h"

#ifdef FP_HAVE_BLIS
#include <blis.h>
#endif

/* FP_BENCH_CPUTIME=1 measures the calling thread's CPU time instead of wall time: steadier for
 * single-thread A/B comparisons on a shared machine (meaningless for the 2-thread columns). */
static clockid_t g_clock = CLOCK_MONOTONIC;

static double now(void) {
    struct timespec ts;
    clock_gettime(g_clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static unsigned g_rng = 12345u;
static float frand(void) {
    g_rng = g_rng * 1664525u + 1013904223u;
    return (float)((g_rng >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static float *rand_buf(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

/* Best time per call over many short batches (~2 ms each): the machine may be shared, and the
 * minimum of short batches is the one least disturbed by preemption. */
typedef void (*bench_fn)(void *arg);
static double best_time(bench_fn fn, void *arg) {
    fn(arg);
    double t0 = now();
    int reps = 0;
    do {
        fn(arg);
        reps++;
    } while (now() - t0 < 0.002);
    double best = 1e30;
    for (int trial = 0; trial < 40; trial++) {
        double s = now();
        for (int i = 0; i < reps; i++) fn(arg);
        double t = (now() - s) / reps;
        if (t < best) best = t;
    }
    return best;
}

/* ------------------------------------------------------------------------------------------ */
/* GEMM vs BLIS                                                                                */
/* ------------------------------------------------------------------------------------------ */
typedef struct gemm_case {
    nn_gemm_args ga;
    int threads;
    const float *a, *w;
    float *c;
    int m, n, k;
} gemm_case;

static void run_ours(void *p) {
    gemm_case *g = p;
    nn_gemm_run(&g->ga, g->threads);
}

#ifdef FP_HAVE_BLIS
static void run_blis(void *p) {
    gemm_case *g = p;
    float one = 1.0f, zero = 0.0f;
    /* B = W^T with W [n][k] row-major: row stride 1, column stride k. */
    bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, g->m, g->n, g->k, &one, (float *)g->a, g->k, 1,
              (float *)g->w, 1, g->k, &zero, g->c, g->n, 1);
}
#endif

static void bench_gemm(void) {
    static const int shapes[][3] = {
        /* M, K, N: MobileFaceNet 1x1 convs (expand / project) */
        {3136, 64, 128}, {784, 128, 64}, {784, 64, 128}, {784, 64, 256}, {196, 256, 128},
        {196, 128, 256}, {196, 128, 512}, {49, 512, 128}, {49, 128, 256}, {49, 256, 128},
        {49, 128, 512}, {1, 512, 128}, {20, 512, 128},
        /* BlazeFace 1x1 convs */
        {4096, 24, 24}, {4096, 24, 28}, {1024, 48, 56}, {256, 88, 96}, {256, 96, 96},
        {64, 96, 96},
        /* first 3x3 conv of MobileFaceNet as im2col GEMM, and a large square */
        {3136, 27, 64}, {784, 512, 512},
        /* batch 20 of the MobileFaceNet 56x56 and 28x28 layers */
        {62720, 64, 128}, {15680, 128, 64}, {15680, 64, 128}};
    printf("\nGEMM C[M,N] = A[M,K] * W^T (+bias, epilogue) — GFLOP/s, kernel set %s\n",
           nn_kernel_name());
    printf("%6s %5s %5s | %8s %8s | %8s %8s | %6s\n", "M", "K", "N", "ours 1T", "blis 1T",
           "ours 2T", "blis 2T", "2T/1T");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        gemm_case g = {0};
        g.m = shapes[s][0];
        g.k = shapes[s][1];
        g.n = shapes[s][2];
        float *a = rand_buf((size_t)g.m * g.k), *w = rand_buf((size_t)g.n * g.k);
        float *bias = rand_buf((size_t)g.n);
        float *c = malloc((size_t)g.m * g.n * sizeof *c);
        float *mem = malloc(nn_packed_floats(NN_PACK_GEMM, g.n, g.k) * sizeof *mem);
        nn_packed pk;
        nn_pack_into(&pk, mem, NN_PACK_GEMM, g.n, g.k, w, bias, NULL, 0);
        g.ga = (nn_gemm_args){.a = a, .lda = (size_t)g.k, .w = &pk, .c = c, .ldc = (size_t)g.n,
                              .m = g.m, .act = NN_ACT_RELU};
        g.a = a;
        g.w = w;
        g.c = c;
        double flops = 2.0 * g.m * g.n * g.k, r[4] = {0, 0, 0, 0};
        for (int t = 1; t <= 2; t++) {
            g.threads = t;
            r[(t - 1) * 2] = flops / best_time(run_ours, &g) * 1e-9;
#ifdef FP_HAVE_BLIS
            bli_thread_set_num_threads(t);
            r[(t - 1) * 2 + 1] = flops / best_time(run_blis, &g) * 1e-9;
#endif
        }
        printf("%6d %5d %5d | %8.1f %8.1f | %8.1f %8.1f | %6.2f\n", g.m, g.k, g.n, r[0], r[1],
               r[2], r[3], r[2] / r[0]);
        free(a), free(w), free(bias), free(c), free(mem);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Layers through nn_run_op                                                                    */
/* ------------------------------------------------------------------------------------------ */
typedef struct layer {
    nn_graph *g;
    int op;
    float *in[4];
    nn_shape shp[4];
    const nn_shape *shpp[4];
    float *out;
    nn_shape oshape;
    float *scratch;
    int threads;
    double macs;
    const char *what;
} layer;

static void run_layer(void *p) {
    layer *l = p;
    nn_exec_ctx ctx = {.op = &l->g->ops[l->op], .g = l->g, .in = (const float *const *)l->in,
                       .in_shape = l->shpp, .out = l->out, .out_shape = &l->oshape,
                       .scratch = l->scratch, .threads = l->threads};
    if (nn_run_op(&ctx) != FP_OK) {
        fprintf(stderr, "%s failed\n", l->what);
        exit(1);
    }
}

static nn_shape shape4(int a, int b, int c, int d) {
    nn_shape s = {.ndim = 4, .d = {a, b, c, d}};
    return s;
}

/* CONV2D (dw = 0) or DWCONV2D (dw = 1), SAME padding, fused PReLU or ReLU. */
static layer *make_conv(int dw, int n, int h, int w, int cin, int cout, int k, int s, nn_act act,
                        const char *what) {
    layer *l = calloc(1, sizeof *l);
    l->g = nn_graph_new("bench");
    nn_shape xs = shape4(n, h, w, cin);
    nn_shape ws = dw ? shape4(1, k, k, cout) : shape4(cout, k, k, cin);
    nn_shape bs = {.ndim = 1, .d = {cout}};
    int xi = nn_graph_add_value(l->g, "x", NN_F32, &xs, NULL, 0);
    size_t wn = (size_t)nn_shape_count(&ws);
    float *wd = rand_buf(wn), *bd = rand_buf((size_t)cout), *ad = rand_buf((size_t)cout);
    int wi = nn_graph_add_value(l->g, "w", NN_F32, &ws, wd, wn * 4);
    int bi = nn_graph_add_value(l->g, "b", NN_F32, &bs, bd, (size_t)cout * 4);
    int ai = nn_graph_add_value(l->g, "a", NN_F32, &bs, ad, (size_t)cout * 4);
    int yi = nn_graph_add_value(l->g, "y", NN_F32, NULL, NULL, 0);
    int ins[4] = {xi, wi, bi, ai};
    nn_op *op = nn_graph_add_op(l->g, dw ? NN_OP_DWCONV2D : NN_OP_CONV2D, ins, 4, &yi, 1);
    op->p.conv = (nn_conv_params){.kh = k, .kw = k, .sh = s, .sw = s, .dh = 1, .dw = 1,
                                  .padding = NN_PAD_SAME, .depth_multiplier = 1, .act = act};
    nn_pack_op(l->g, op);
    int oh = (h + s - 1) / s, ow = (w + s - 1) / s;
    l->oshape = shape4(n, oh, ow, cout);
    l->shp[0] = xs, l->shp[1] = ws, l->shp[2] = bs, l->shp[3] = bs;
    for (int i = 0; i < 4; i++) l->shpp[i] = &l->shp[i];
    l->in[0] = rand_buf((size_t)nn_shape_count(&xs));
    l->in[1] = wd, l->in[2] = bd, l->in[3] = ad;
    l->out = malloc((size_t)nn_shape_count(&l->oshape) * sizeof(float));
    size_t sc = nn_scratch_size(op, l->shpp, &l->oshape);
    l->scratch = malloc((sc ? sc : 1) * sizeof(float));
    l->macs = (double)nn_shape_count(&l->oshape) * k * k * (dw ? 1 : cin);
    l->what = what;
    return l;
}

static void free_layer(layer *l) {
    free(l->in[0]);
    free(l->out);
    free(l->scratch);
    nn_graph_free(l->g); /* owns w, b, a */
    free(l);
}

static void bench_dw(void) {
    static const int cases[][5] = {/* h, w, c, k, s */
                                   {56, 56, 64, 3, 1},  {56, 56, 128, 3, 2}, {28, 28, 128, 3, 1},
                                   {28, 28, 256, 3, 2}, {14, 14, 256, 3, 1}, {7, 7, 256, 3, 1},
                                   {64, 64, 24, 5, 1},  {32, 32, 48, 5, 1},  {16, 16, 96, 5, 1},
                                   {64, 64, 24, 3, 1}};
    printf("\nDepthwise conv (SAME, bias + PReLU), batch 1: GFLOP/s and GB/s (input + output)\n");
    printf("%4s %4s %4s %2s %2s | %8s %7s | %8s %7s | %6s\n", "H", "W", "C", "k", "s", "1T GF/s",
           "GB/s", "2T GF/s", "GB/s", "2T/1T");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int *c = cases[i];
        layer *l = make_conv(1, 1, c[0], c[1], c[2], c[2], c[3], c[4], NN_ACT_PRELU, "dw");
        double bytes = 4.0 * ((double)nn_shape_count(&l->shp[0]) + nn_shape_count(&l->oshape));
        double r[2];
        for (int t = 1; t <= 2; t++) {
            l->threads = t;
            r[t - 1] = best_time(run_layer, l);
        }
        printf("%4d %4d %4d %2d %2d | %8.1f %7.1f | %8.1f %7.1f | %6.2f\n", c[0], c[1], c[2], c[3],
               c[4], 2 * l->macs / r[0] * 1e-9, bytes / r[0] * 1e-9, 2 * l->macs / r[1] * 1e-9,
               bytes / r[1] * 1e-9, r[0] / r[1]);
        free_layer(l);
    }
}

/* A network-shaped sequence of conv layers: times every layer and sums (element-wise adds and
 * pads are left out; they are a few % of the time). */
typedef struct net_layer {
    int dw, h, cin, cout, k, s;
} net_layer;

static void bench_net(const char *name, const net_layer *ls, int n, int batch, nn_act act) {
    double tot[2] = {0, 0}, macs = 0, t_pw[2] = {0, 0}, t_dw[2] = {0, 0}, t_kx[2] = {0, 0};
    for (int i = 0; i < n; i++) {
        const net_layer *q = &ls[i];
        layer *l = make_conv(q->dw, batch, q->h, q->h, q->cin, q->cout, q->k, q->s, act, name);
        if (q->k == 7 && q->dw) { /* the GDC layer: VALID 7x7 */
            nn_op *op = &l->g->ops[0];
            op->p.conv.padding = NN_PAD_VALID;
            l->oshape = shape4(batch, 1, 1, q->cout);
            l->macs = (double)batch * q->cout * 49;
        }
        macs += l->macs;
        for (int t = 1; t <= 2; t++) {
            l->threads = t;
            double s = best_time(run_layer, l);
            tot[t - 1] += s;
            if (q->dw)
                t_dw[t - 1] += s;
            else if (q->k == 1)
                t_pw[t - 1] += s;
            else
                t_kx[t - 1] += s;
        }
        free_layer(l);
    }
    printf("%-22s batch %2d: %7.1f MMAC | 1T %7.3f ms (%5.1f GF/s) [1x1 %.3f dw %.3f kxk %.3f] | "
           "2T %7.3f ms (%.2fx)\n",
           name, batch, macs * 1e-6, tot[0] * 1e3, 2 * macs / tot[0] * 1e-9, t_pw[0] * 1e3,
           t_dw[0] * 1e3, t_kx[0] * 1e3, tot[1] * 1e3, tot[0] / tot[1]);
}

static int mobilefacenet(net_layer *L) {
    int n = 0;
    L[n++] = (net_layer){0, 112, 3, 64, 3, 2};
    L[n++] = (net_layer){1, 56, 64, 64, 3, 1};
    /* bottlenecks: t, c, n, s */
    static const int cfg[][4] = {{2, 64, 5, 2}, {4, 128, 1, 2}, {2, 128, 6, 1}, {4, 128, 1, 2},
                                 {2, 128, 2, 1}};
    int h = 56, c = 64;
    for (int b = 0; b < 5; b++)
        for (int r = 0; r < cfg[b][2]; r++) {
            int s = r == 0 ? cfg[b][3] : 1, e = c * cfg[b][0];
            L[n++] = (net_layer){0, h, c, e, 1, 1};
            L[n++] = (net_layer){1, h, e, e, 3, s};
            h = (h + s - 1) / s;
            L[n++] = (net_layer){0, h, e, cfg[b][1], 1, 1};
            c = cfg[b][1];
        }
    L[n++] = (net_layer){0, h, c, 512, 1, 1};
    L[n++] = (net_layer){1, h, 512, 512, 7, 1}; /* GDC */
    L[n++] = (net_layer){0, 1, 512, 128, 1, 1};
    return n;
}

static int blazeface(net_layer *L) {
    int n = 0;
    L[n++] = (net_layer){0, 128, 3, 24, 5, 2};
    static const int blocks[][2] = {{24, 1}, {28, 1}, {32, 2}, {36, 1}, {42, 1}, {48, 2},
                                    {56, 1}, {64, 1}, {72, 1}, {80, 1}, {88, 1}, {96, 2},
                                    {96, 1}, {96, 1}, {96, 1}, {96, 1}};
    int h = 64, c = 24;
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
        int s = blocks[b][1];
        L[n++] = (net_layer){1, h, c, c, 3, s};
        h = (h + s - 1) / s;
        L[n++] = (net_layer){0, h, c, blocks[b][0], 1, 1};
        c = blocks[b][0];
    }
    return n;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "scalar") == 0) nn_kernels_select(0);
    if (getenv("FP_BENCH_CPUTIME")) g_clock = CLOCK_THREAD_CPUTIME_ID;
    const char *only = argc > 2 ? argv[2] : "";
#ifdef FP_HAVE_BLIS
    bli_init();
#endif
    if (!*only || !strcmp(only, "gemm")) bench_gemm();
    if (!*only || !strcmp(only, "dw")) bench_dw();
    if (!*only || !strcmp(only, "net")) {
        net_layer L[128];
        printf("\nLayer sequences through nn_run_op (conv/dw only, fused bias + PReLU/ReLU)\n");
        int n = mobilefacenet(L);
        bench_net("MobileFaceNet-like", L, n, 1, NN_ACT_PRELU);
        bench_net("MobileFaceNet-like", L, n, 20, NN_ACT_PRELU);
        n = blazeface(L);
        bench_net("BlazeFace-like", L, n, 1, NN_ACT_RELU);
    }
    return 0;
}
