/*
 * test_tflite_loader.c - tests of the TFLite loader (src/nn/tflite.c): the real face models load
 * into the IR that tools/analyze-tflite.js describes (op counts after DEQUANTIZE folding, params,
 * interface names and shapes), and truncated, mutated or hand-crafted hostile files fail with a
 * clean status. Small models are produced by the tiny flatbuffer writer below, so most tests need
 * no model file; with FACEPAY_TFLITE_SEEDS=<dir> set they are also written there as fuzz seeds.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/testutil.h"

#include "core/core.h"
#include "nn/nn.h"

/* ---------------------------------------------------------------------------------------------- */
/* A forward-only flatbuffer writer: parents are written before children, so every uoffset points */
/* forward as the format requires, and children patch their parent's offset slot.                 */
/* ---------------------------------------------------------------------------------------------- */
typedef struct wb {
    uint8_t *b;
    size_t n, cap;
} wb;

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static size_t wb_put(wb *w, const void *p, size_t n) {
    if (w->n + n > w->cap) {
        size_t c = w->cap ? w->cap : 256;
        while (c < w->n + n) c *= 2;
        w->b = realloc(w->b, c);
        assert_non_null(w->b);
        w->cap = c;
    }
    size_t at = w->n;
    if (p) memcpy(w->b + at, p, n);
    else memset(w->b + at, 0, n);
    w->n += n;
    return at;
}

static void wb_align(wb *w, size_t a) {
    while (w->n % a) wb_put(w, NULL, 1);
}

static size_t wb_u32(wb *w, uint32_t v) {
    uint8_t b[4];
    put32(b, v);
    return wb_put(w, b, 4);
}

static void wb_ref(wb *w, size_t field, size_t target) {
    assert_true(target > field);
    put32(w->b + field, (uint32_t)(target - field));
}

/* A table field: id in the vtable, size 1/2/4/8 for scalars or 0 for a uoffset (patched later). */
typedef struct wf {
    int id, size;
    uint64_t v;
} wf;

/* Writes a vtable and its table; pos[k] receives the position of field f[k]. */
static size_t wb_table(wb *w, int nslots, const wf *f, int nf, size_t *pos) {
    uint16_t slot[16] = {0}, fo[16];
    uint16_t cur = 4;
    for (int k = 0; k < nf; k++) {
        fo[k] = cur;
        cur = (uint16_t)(cur + (f[k].size == 8 ? 8 : 4));
        slot[f[k].id] = fo[k];
    }
    wb_align(w, 4);
    size_t vt = w->n;
    uint8_t hdr[4 + 2 * 16];
    put16(hdr, (uint16_t)(4 + 2 * nslots));
    put16(hdr + 2, cur);
    for (int i = 0; i < nslots; i++) put16(hdr + 4 + 2 * i, slot[i]);
    wb_put(w, hdr, (size_t)(4 + 2 * nslots));
    wb_align(w, 4);
    size_t t = w->n;
    wb_u32(w, (uint32_t)(t - vt));
    for (int k = 0; k < nf; k++) {
        uint8_t v[8] = {0};
        for (int i = 0; i < 8; i++) v[i] = (uint8_t)(f[k].v >> (8 * i));
        pos[k] = wb_put(w, v, f[k].size == 8 ? 8 : 4);
    }
    return t;
}

static size_t wb_vec32(wb *w, const int32_t *v, int n) {
    wb_align(w, 4);
    size_t at = wb_u32(w, (uint32_t)n);
    for (int i = 0; i < n; i++) wb_u32(w, (uint32_t)v[i]);
    return at;
}

static size_t wb_str(wb *w, const char *s) {
    wb_align(w, 4);
    size_t n = strlen(s);
    size_t at = wb_u32(w, (uint32_t)n);
    wb_put(w, s, n);
    wb_put(w, NULL, 1);
    return at;
}

static size_t wb_bytes(wb *w, const void *p, size_t n) {
    while ((w->n + 4) % 16) wb_put(w, NULL, 1);
    size_t at = wb_u32(w, (uint32_t)n);
    wb_put(w, p, n);
    return at;
}

/* Vector of n uoffsets (slot k at result + 4 + 4k, patched by the caller). */
static size_t wb_offvec(wb *w, int n) {
    wb_align(w, 4);
    size_t at = wb_u32(w, (uint32_t)n);
    for (int i = 0; i < n; i++) wb_u32(w, 0);
    return at;
}

/* ---------------------------------------------------------------------------------------------- */
/* Model specs                                                                                    */
/* ---------------------------------------------------------------------------------------------- */
enum { T_F32 = 0, T_F16 = 1, T_I32 = 2, T_U8 = 3, T_I64 = 4, T_BOOL = 6, T_I8 = 9 };

typedef struct mtensor {
    const char *name;
    int type, ndim;
    int dims[6];
    int buffer;
    int quant;
} mtensor;

typedef struct mop {
    int code;
    int dep;          /* deprecated_builtin_code; -1 = min(code, 127) like the converter */
    int n_in, in[6];
    int n_out, out[2];
    int opt_type;     /* BuiltinOptions tag, 0 = none */
    int n_opt;
    wf opt[6];
    int vec_slot;     /* options field holding an int vector (RESHAPE new_shape), -1 = none */
    int n_vec;
    int32_t vec[6];
} mop;

typedef struct mbuffer {
    const void *data;
    size_t n;
} mbuffer;

typedef struct mspec {
    const char *ident;
    uint32_t version;
    int n_sub;
    int n_t;
    mtensor t[16];
    int n_ops;
    mop ops[12];
    int n_b;
    mbuffer b[8];
    int n_in, in[2], n_out, out[2];
} mspec;

/* Positions in a built file, for targeted corruption. */
typedef struct marks {
    size_t subgraphs_slot;  /* uoffset slot of subgraph 0 */
    size_t tensors_vec;     /* length word of the tensors vector */
    size_t tensor0;         /* table of tensor 0 */
    size_t op0;             /* table of operator 0 (first field = opcode_index) */
} marks;

static uint8_t *build(const mspec *s, size_t *len, marks *mk) {
    wb w = {0};
    marks m;
    memset(&m, 0, sizeof m);
    wb_u32(&w, 0);
    wb_put(&w, s->ident ? s->ident : "TFL3", 4);

    wf mf[] = {{0, 4, s->version ? s->version : 3}, {1, 0, 0}, {2, 0, 0}, {3, 0, 0}, {4, 0, 0}};
    size_t mp[5];
    size_t model = wb_table(&w, 5, mf, 5, mp);
    put32(w.b, (uint32_t)model);

    size_t cv = wb_offvec(&w, s->n_ops);
    wb_ref(&w, mp[1], cv);
    for (int i = 0; i < s->n_ops; i++) {
        const mop *o = &s->ops[i];
        int dep = o->dep >= 0 ? o->dep : (o->code < 127 ? o->code : 127);
        wf cf[] = {{0, 1, (uint64_t)dep}, {2, 4, 1}, {3, 4, (uint64_t)o->code}};
        size_t cp[3];
        wb_ref(&w, cv + 4 + 4 * (size_t)i, wb_table(&w, 4, cf, 3, cp));
    }

    int n_sub = s->n_sub ? s->n_sub : 1;
    size_t sv = wb_offvec(&w, n_sub);
    wb_ref(&w, mp[2], sv);
    m.subgraphs_slot = sv + 4;
    wf sf[] = {{0, 0, 0}, {1, 0, 0}, {2, 0, 0}, {3, 0, 0}, {4, 0, 0}};
    size_t sp[5];
    size_t sg = wb_table(&w, 5, sf, 5, sp);
    for (int k = 0; k < n_sub; k++) wb_ref(&w, sv + 4 + 4 * (size_t)k, sg);

    size_t tv = wb_offvec(&w, s->n_t);
    wb_ref(&w, sp[0], tv);
    m.tensors_vec = tv;
    for (int i = 0; i < s->n_t; i++) {
        const mtensor *t = &s->t[i];
        wf tf[] = {{0, 0, 0}, {1, 1, (uint64_t)t->type}, {2, 4, (uint64_t)t->buffer}, {3, 0, 0},
                   {4, 0, 0}};
        size_t tp[5];
        size_t tt = wb_table(&w, 5, tf, t->quant ? 5 : 4, tp);
        if (i == 0) m.tensor0 = tt;
        wb_ref(&w, tv + 4 + 4 * (size_t)i, tt);
        int32_t dims[6];
        for (int k = 0; k < t->ndim; k++) dims[k] = t->dims[k];
        wb_ref(&w, tp[0], wb_vec32(&w, dims, t->ndim));
        wb_ref(&w, tp[3], wb_str(&w, t->name));
        if (t->quant) {
            wf qf[] = {{2, 0, 0}, {3, 0, 0}};
            size_t qp[2];
            wb_ref(&w, tp[4], wb_table(&w, 4, qf, 2, qp));
            float scale = 0.5f;
            int32_t sbits;
            memcpy(&sbits, &scale, 4);
            wb_ref(&w, qp[0], wb_vec32(&w, &sbits, 1));
            int32_t zp[2] = {0, 0}; /* one int64 */
            wb_align(&w, 8);
            size_t zv = wb_u32(&w, 1);
            wb_put(&w, zp, 8);
            wb_ref(&w, qp[1], zv);
        }
    }
    wb_ref(&w, sp[1], wb_vec32(&w, s->in, s->n_in));
    wb_ref(&w, sp[2], wb_vec32(&w, s->out, s->n_out));

    size_t ov = wb_offvec(&w, s->n_ops);
    wb_ref(&w, sp[3], ov);
    for (int i = 0; i < s->n_ops; i++) {
        const mop *o = &s->ops[i];
        wf of[] = {
            {0, 4, (uint64_t)i}, {1, 0, 0}, {2, 0, 0}, {3, 1, (uint64_t)o->opt_type}, {4, 0, 0}};
        size_t op[5];
        size_t ot = wb_table(&w, 5, of, o->opt_type ? 5 : 3, op);
        if (i == 0) m.op0 = ot;
        wb_ref(&w, ov + 4 + 4 * (size_t)i, ot);
        int32_t in[6], out[2];
        for (int k = 0; k < o->n_in; k++) in[k] = o->in[k];
        for (int k = 0; k < o->n_out; k++) out[k] = o->out[k];
        wb_ref(&w, op[1], wb_vec32(&w, in, o->n_in));
        wb_ref(&w, op[2], wb_vec32(&w, out, o->n_out));
        if (o->opt_type) {
            wf f[8];
            size_t fp[8];
            int nf = 0, nslots = 0;
            for (int k = 0; k < o->n_opt; k++) f[nf++] = o->opt[k];
            if (o->vec_slot >= 0 && o->n_vec >= 0 && (o->n_vec > 0 || o->vec_slot > 0))
                f[nf++] = (wf){o->vec_slot, 0, 0};
            for (int k = 0; k < nf; k++)
                if (f[k].id + 1 > nslots) nslots = f[k].id + 1;
            wb_ref(&w, op[4], wb_table(&w, nslots, f, nf, fp));
            if (nf > o->n_opt) wb_ref(&w, fp[nf - 1], wb_vec32(&w, o->vec, o->n_vec));
        }
    }
    wb_ref(&w, sp[4], wb_str(&w, "main"));
    wb_ref(&w, mp[3], wb_str(&w, "hand-written test model"));

    size_t bv = wb_offvec(&w, s->n_b);
    wb_ref(&w, mp[4], bv);
    for (int i = 0; i < s->n_b; i++) {
        wf bf[] = {{0, 0, 0}};
        size_t bp[1];
        size_t bt = wb_table(&w, 1, bf, s->b[i].n ? 1 : 0, bp);
        wb_ref(&w, bv + 4 + 4 * (size_t)i, bt);
        if (s->b[i].n) wb_ref(&w, bp[0], wb_bytes(&w, s->b[i].data, s->b[i].n));
    }
    *len = w.n;
    if (mk) *mk = m;
    return w.b;
}

static mtensor tensor(const char *name, int type, int buffer, int ndim, int d0, int d1, int d2,
                      int d3) {
    mtensor t;
    memset(&t, 0, sizeof t);
    t.name = name;
    t.type = type;
    t.buffer = buffer;
    t.ndim = ndim;
    t.dims[0] = d0;
    t.dims[1] = d1;
    t.dims[2] = d2;
    t.dims[3] = d3;
    return t;
}

static mop op_(int code, int n_in, const int *in, int out0) {
    mop o;
    memset(&o, 0, sizeof o);
    o.code = code;
    o.dep = -1;
    o.vec_slot = -1;
    o.n_in = n_in;
    for (int k = 0; k < n_in; k++) o.in[k] = in[k];
    o.n_out = 1;
    o.out[0] = out0;
    return o;
}

static void opt(mop *o, int tag, int id, int size, uint64_t v) {
    o->opt_type = tag;
    o->opt[o->n_opt++] = (wf){id, size, v};
}

static uint64_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static const float k_b4[4] = {1.0f, 2.0f, 3.0f, 4.0f};

/* y = a + b with b a float32 constant. */
static void spec_add(mspec *s) {
    memset(s, 0, sizeof *s);
    s->n_t = 3;
    s->t[0] = tensor("a", T_F32, 0, 2, 1, 4, 0, 0);
    s->t[1] = tensor("b", T_F32, 1, 2, 1, 4, 0, 0);
    s->t[2] = tensor("y", T_F32, 0, 2, 1, 4, 0, 0);
    s->n_ops = 1;
    s->ops[0] = op_(0, 2, (int[]){0, 1}, 2);
    opt(&s->ops[0], 11, 0, 1, 0);
    s->n_b = 2;
    s->b[1] = (mbuffer){k_b4, sizeof k_b4};
    s->n_in = 1;
    s->in[0] = 0;
    s->n_out = 1;
    s->out[0] = 2;
}

static const uint16_t k_w16[2] = {0x3c00, 0xc000};   /* 1.0, -2.0 */
static const uint16_t k_b16[2] = {0x3800, 0x0001};   /* 0.5, smallest subnormal */

/* CONV_2D 1x1 whose fp16 weight and bias go through DEQUANTIZE, with a fused RELU6. */
static void spec_conv_fp16(mspec *s) {
    memset(s, 0, sizeof *s);
    s->n_t = 6;
    s->t[0] = tensor("x", T_F32, 0, 4, 1, 2, 2, 1);
    s->t[1] = tensor("w16", T_F16, 1, 4, 2, 1, 1, 1);
    s->t[2] = tensor("b16", T_F16, 2, 1, 2, 0, 0, 0);
    s->t[3] = tensor("w", T_F32, 0, 4, 2, 1, 1, 1);
    s->t[4] = tensor("b", T_F32, 0, 1, 2, 0, 0, 0);
    s->t[5] = tensor("y", T_F32, 0, 4, 1, 2, 2, 2);
    s->n_ops = 3;
    s->ops[0] = op_(6, 1, (int[]){1}, 3);
    s->ops[1] = op_(6, 1, (int[]){2}, 4);
    s->ops[2] = op_(3, 3, (int[]){0, 3, 4}, 5);
    opt(&s->ops[2], 1, 0, 1, 1);  /* VALID */
    opt(&s->ops[2], 1, 1, 4, 1);  /* stride_w */
    opt(&s->ops[2], 1, 2, 4, 1);  /* stride_h */
    opt(&s->ops[2], 1, 3, 1, 3);  /* RELU6 */
    s->n_b = 3;
    s->b[1] = (mbuffer){k_w16, sizeof k_w16};
    s->b[2] = (mbuffer){k_b16, sizeof k_b16};
    s->n_in = 1;
    s->in[0] = 0;
    s->n_out = 1;
    s->out[0] = 5;
}

/* CONCATENATION on the last axis (written as -1) with a fused RELU. */
static void spec_concat_relu(mspec *s) {
    memset(s, 0, sizeof *s);
    s->n_t = 3;
    s->t[0] = tensor("a", T_F32, 0, 2, 1, 2, 0, 0);
    s->t[1] = tensor("b", T_F32, 0, 2, 1, 2, 0, 0);
    s->t[2] = tensor("y", T_F32, 0, 2, 1, 4, 0, 0);
    s->n_ops = 1;
    s->ops[0] = op_(2, 2, (int[]){0, 1}, 2);
    opt(&s->ops[0], 10, 0, 4, (uint32_t)-1);
    opt(&s->ops[0], 10, 1, 1, 1);
    s->n_b = 1;
    s->n_in = 2;
    s->in[0] = 0;
    s->in[1] = 1;
    s->n_out = 1;
    s->out[0] = 2;
}

/* RESHAPE [1,2,4] -> [1,8] with the target only in the options, written [1,-1] as BlazeFace does.
 */
static void spec_reshape_opts(mspec *s) {
    memset(s, 0, sizeof *s);
    s->n_t = 2;
    s->t[0] = tensor("x", T_F32, 0, 3, 1, 2, 4, 0);
    s->t[1] = tensor("y", T_F32, 0, 2, 1, 8, 0, 0);
    s->n_ops = 1;
    s->ops[0] = op_(22, 1, (int[]){0}, 1);
    s->ops[0].opt_type = 17;
    s->ops[0].vec_slot = 0;
    s->ops[0].n_vec = 2;
    s->ops[0].vec[0] = 1;
    s->ops[0].vec[1] = -1;
    s->n_b = 1;
    s->n_in = 1;
    s->in[0] = 0;
    s->n_out = 1;
    s->out[0] = 1;
}

static const float k_dw[36] = {0};
static const float k_fw[12] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1};
static const float k_fb[3] = {0.1f, 0.2f, 0.3f};
static const int32_t k_axes[2] = {1, 2};
static uint16_t k_cw16[72];

/* Most float ops in one graph: DEQUANTIZE+CONV, DWCONV, MAXPOOL, MEAN, RESHAPE, FC, SOFTMAX. */
static void spec_zoo(mspec *s) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < 72; i++) k_cw16[i] = (uint16_t)(0x3000 + 37 * i);
    s->n_t = 14;
    s->t[0] = tensor("x", T_F32, 0, 4, 1, 4, 4, 2);
    s->t[1] = tensor("cw16", T_F16, 1, 4, 4, 3, 3, 2);
    s->t[2] = tensor("cw", T_F32, 0, 4, 4, 3, 3, 2);
    s->t[3] = tensor("c", T_F32, 0, 4, 1, 4, 4, 4);
    s->t[4] = tensor("dw", T_F32, 2, 4, 1, 3, 3, 4);
    s->t[5] = tensor("d", T_F32, 0, 4, 1, 4, 4, 4);
    s->t[6] = tensor("p", T_F32, 0, 4, 1, 2, 2, 4);
    s->t[7] = tensor("axes", T_I32, 3, 1, 2, 0, 0, 0);
    s->t[8] = tensor("m", T_F32, 0, 4, 1, 1, 1, 4);
    s->t[9] = tensor("r", T_F32, 0, 2, 1, 4, 0, 0);
    s->t[10] = tensor("fw", T_F32, 4, 2, 3, 4, 0, 0);
    s->t[11] = tensor("fb", T_F32, 5, 1, 3, 0, 0, 0);
    s->t[12] = tensor("f", T_F32, 0, 2, 1, 3, 0, 0);
    s->t[13] = tensor("y", T_F32, 0, 2, 1, 3, 0, 0);
    s->n_ops = 8;
    s->ops[0] = op_(6, 1, (int[]){1}, 2);
    s->ops[1] = op_(3, 3, (int[]){0, 2, -1}, 3);
    opt(&s->ops[1], 1, 0, 1, 0);
    opt(&s->ops[1], 1, 1, 4, 1);
    opt(&s->ops[1], 1, 2, 4, 1);
    opt(&s->ops[1], 1, 3, 1, 1);
    s->ops[2] = op_(4, 2, (int[]){3, 4}, 5);
    opt(&s->ops[2], 2, 0, 1, 0);
    opt(&s->ops[2], 2, 1, 4, 1);
    opt(&s->ops[2], 2, 2, 4, 1);
    opt(&s->ops[2], 2, 3, 4, 1);
    s->ops[3] = op_(17, 1, (int[]){5}, 6);
    opt(&s->ops[3], 5, 0, 1, 1);
    opt(&s->ops[3], 5, 1, 4, 2);
    opt(&s->ops[3], 5, 2, 4, 2);
    opt(&s->ops[3], 5, 3, 4, 2);
    opt(&s->ops[3], 5, 4, 4, 2);
    s->ops[4] = op_(40, 2, (int[]){6, 7}, 8);
    opt(&s->ops[4], 27, 0, 1, 1);
    s->ops[5] = op_(22, 1, (int[]){8}, 9);
    s->ops[5].opt_type = 17;
    s->ops[5].vec_slot = 0;
    s->ops[5].n_vec = 2;
    s->ops[5].vec[0] = 1;
    s->ops[5].vec[1] = 4;
    s->ops[6] = op_(9, 3, (int[]){9, 10, 11}, 12);
    opt(&s->ops[6], 8, 0, 1, 0);
    s->ops[7] = op_(25, 1, (int[]){12}, 13);
    opt(&s->ops[7], 9, 0, 4, fbits(1.0f));
    s->n_b = 6;
    s->b[1] = (mbuffer){k_cw16, sizeof k_cw16};
    s->b[2] = (mbuffer){k_dw, sizeof k_dw};
    s->b[3] = (mbuffer){k_axes, sizeof k_axes};
    s->b[4] = (mbuffer){k_fw, sizeof k_fw};
    s->b[5] = (mbuffer){k_fb, sizeof k_fb};
    s->n_in = 1;
    s->in[0] = 0;
    s->n_out = 1;
    s->out[0] = 13;
}

static const int32_t k_pads[8] = {0, 0, 1, 1, 1, 1, 0, 0};
static const int32_t k_size[2] = {8, 8};
static const float k_alpha[3] = {0.1f, 0.2f, 0.3f};

/* PAD, RESIZE_BILINEAR, LEAKY_RELU, PRELU, LOGISTIC, MUL, CONCATENATION(RELU6), DEPTH_TO_SPACE. */
static void spec_zoo2(mspec *s) {
    memset(s, 0, sizeof *s);
    s->n_t = 12;
    s->t[0] = tensor("x", T_F32, 0, 4, 1, 2, 2, 3);
    s->t[1] = tensor("pads", T_I32, 1, 2, 4, 2, 0, 0);
    s->t[2] = tensor("p", T_F32, 0, 4, 1, 4, 4, 3);
    s->t[3] = tensor("size", T_I32, 2, 1, 2, 0, 0, 0);
    s->t[4] = tensor("r", T_F32, 0, 4, 1, 8, 8, 3);
    s->t[5] = tensor("l", T_F32, 0, 4, 1, 8, 8, 3);
    s->t[6] = tensor("alpha", T_F32, 3, 1, 3, 0, 0, 0);
    s->t[7] = tensor("q", T_F32, 0, 4, 1, 8, 8, 3);
    s->t[8] = tensor("s", T_F32, 0, 4, 1, 8, 8, 3);
    s->t[9] = tensor("m", T_F32, 0, 4, 1, 8, 8, 3);
    s->t[10] = tensor("c", T_F32, 0, 4, 1, 8, 8, 12);
    s->t[11] = tensor("y", T_F32, 0, 4, 1, 16, 16, 3);
    s->n_ops = 8;
    s->ops[0] = op_(34, 2, (int[]){0, 1}, 2);
    s->ops[1] = op_(23, 2, (int[]){2, 3}, 4);
    opt(&s->ops[1], 15, 3, 1, 1);
    s->ops[2] = op_(98, 1, (int[]){4}, 5);
    opt(&s->ops[2], 75, 0, 4, fbits(0.2f));
    s->ops[3] = op_(54, 2, (int[]){5, 6}, 7);
    s->ops[4] = op_(14, 1, (int[]){7}, 8);
    s->ops[5] = op_(18, 2, (int[]){8, 5}, 9);
    opt(&s->ops[5], 21, 0, 1, 0);
    s->ops[6] = op_(2, 4, (int[]){8, 9, 5, 7}, 10);
    opt(&s->ops[6], 10, 0, 4, 3);
    opt(&s->ops[6], 10, 1, 1, 3);
    s->ops[7] = op_(5, 1, (int[]){10}, 11);
    opt(&s->ops[7], 94, 0, 4, 2);
    s->n_b = 4;
    s->b[1] = (mbuffer){k_pads, sizeof k_pads};
    s->b[2] = (mbuffer){k_size, sizeof k_size};
    s->b[3] = (mbuffer){k_alpha, sizeof k_alpha};
    s->n_in = 1;
    s->in[0] = 0;
    s->n_out = 1;
    s->out[0] = 11;
}

static const int32_t k_zero1[1] = {0};
static const int32_t k_one1[1] = {1};
static const int32_t k_four = 4;

/* The plan-time I32 ops: SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE, plus a CAST round trip. */
static void spec_shape_ops(mspec *s) {
    memset(s, 0, sizeof *s);
    s->n_t = 11;
    s->t[0] = tensor("x", T_F32, 0, 2, 1, 4, 0, 0);
    s->t[1] = tensor("shape", T_I32, 0, 1, 2, 0, 0, 0);
    s->t[2] = tensor("begin", T_I32, 1, 1, 1, 0, 0, 0);
    s->t[3] = tensor("end", T_I32, 2, 1, 1, 0, 0, 0);
    s->t[4] = tensor("strides", T_I32, 2, 1, 1, 0, 0, 0);
    s->t[5] = tensor("batch", T_I32, 0, 0, 0, 0, 0, 0);
    s->t[6] = tensor("four", T_I32, 3, 0, 0, 0, 0, 0);
    s->t[7] = tensor("newshape", T_I32, 0, 1, 2, 0, 0, 0);
    s->t[8] = tensor("r", T_F32, 0, 2, 1, 4, 0, 0);
    s->t[9] = tensor("ri", T_I32, 0, 2, 1, 4, 0, 0);
    s->t[10] = tensor("y", T_F32, 0, 2, 1, 4, 0, 0);
    s->n_ops = 6;
    s->ops[0] = op_(77, 1, (int[]){0}, 1);
    s->ops[1] = op_(45, 4, (int[]){1, 2, 3, 4}, 5);
    opt(&s->ops[1], 32, 4, 4, 1);
    s->ops[2] = op_(83, 2, (int[]){5, 6}, 7);
    opt(&s->ops[2], 59, 0, 4, 2);
    s->ops[3] = op_(22, 2, (int[]){0, 7}, 8);
    s->ops[4] = op_(53, 1, (int[]){8}, 9);
    s->ops[5] = op_(53, 1, (int[]){9}, 10);
    s->n_b = 4;
    s->b[1] = (mbuffer){k_zero1, sizeof k_zero1};
    s->b[2] = (mbuffer){k_one1, sizeof k_one1};
    s->b[3] = (mbuffer){&k_four, sizeof k_four};
    s->n_in = 1;
    s->in[0] = 0;
    s->n_out = 1;
    s->out[0] = 10;
}

/* ---------------------------------------------------------------------------------------------- */
/* Helpers                                                                                        */
/* ---------------------------------------------------------------------------------------------- */
/* Loads from an exact-size heap copy so ASan sees any read past the end.                         */
static fp_status load(const uint8_t *bytes, size_t len, nn_graph **g, char *err, size_t errlen) {
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len) memcpy(copy, bytes, len);
    *g = (nn_graph *)(uintptr_t)1; /* must be overwritten */
    fp_status st = nn_load_tflite(copy, len, g, err, errlen);
    free(copy);
    if (st == FP_OK) {
        assert_non_null(*g);
    } else {
        assert_null(*g);
        assert_true(err[0] != 0);
        assert_string_equal(fp_last_error(), err);
    }
    return st;
}

static fp_status load_spec(const mspec *s, nn_graph **g, char *err, size_t errlen) {
    size_t len;
    uint8_t *b = build(s, &len, NULL);
    fp_status st = load(b, len, g, err, errlen);
    free(b);
    return st;
}

static void expect_fail(const mspec *s, fp_status want, const char *needle) {
    nn_graph *g;
    char err[512];
    fp_status st = load_spec(s, &g, err, sizeof err);
    if (st != want || (needle && !strstr(err, needle)))
        fprintf(stderr, "got status %d (%s), want %d with \"%s\"\n", st, err, want,
                needle ? needle : "");
    assert_int_equal(st, want);
    if (needle) assert_non_null(strstr(err, needle));
}

static void expect_fail_bytes(const uint8_t *b, size_t len, fp_status want, const char *needle) {
    nn_graph *g;
    char err[512];
    fp_status st = load(b, len, &g, err, sizeof err);
    if (st != want || (needle && !strstr(err, needle)))
        fprintf(stderr, "got status %d (%s), want %d with \"%s\"\n", st, err, want,
                needle ? needle : "");
    assert_int_equal(st, want);
    if (needle) assert_non_null(strstr(err, needle));
}

static int count_ops(const nn_graph *g, nn_op_type t) {
    int n = 0;
    for (int i = 0; i < g->n_ops; i++) n += g->ops[i].type == t;
    return n;
}

static void assert_shape(const nn_shape *s, int ndim, const int64_t *d) {
    assert_int_equal(s->ndim, ndim);
    for (int k = 0; k < ndim; k++) assert_int_equal(s->d[k], d[k]);
}

/* Loader contract checks that hold for every loaded graph. */
static void check_graph_invariants(const nn_graph *g) {
    assert_string_equal(g->format, "tflite");
    int *producer = malloc(sizeof(int) * (size_t)g->n_values);
    assert_non_null(producer);
    for (int i = 0; i < g->n_values; i++) {
        producer[i] = -1;
        const nn_value *v = &g->values[i];
        assert_non_null(v->name);
        if (v->data) assert_int_equal(v->nbytes, (size_t)nn_shape_count(&v->shape) * 4);
    }
    for (int i = 0; i < g->n_ops; i++) {
        const nn_op *op = &g->ops[i];
        assert_true(op->type >= 0 && op->type < NN_OP_COUNT);
        for (int k = 0; k < op->n_in; k++) assert_true(op->in[k] >= -1 && op->in[k] < g->n_values);
        assert_true(op->n_out >= 1 && op->n_out <= NN_MAX_OP_OUT);
        for (int k = 0; k < op->n_out; k++) {
            int o = op->out[k];
            assert_true(o >= 0 && o < g->n_values);
            assert_null(g->values[o].data);
            assert_int_equal(producer[o], -1);
            producer[o] = i;
        }
        if (op->type == NN_OP_CONV2D || op->type == NN_OP_DWCONV2D) {
            assert_int_equal(op->n_in, 3);
            const nn_value *w = &g->values[op->in[1]];
            assert_int_equal(w->shape.ndim, 4);
            assert_int_equal(op->p.conv.kh, w->shape.d[1]);
            assert_int_equal(op->p.conv.kw, w->shape.d[2]);
            assert_true(op->p.conv.sh >= 1 && op->p.conv.sw >= 1);
        }
    }
    for (int i = 0; i < g->n_inputs; i++) {
        const nn_value *v = &g->values[g->inputs[i]];
        assert_null(v->data);
        assert_int_equal(v->dtype, NN_F32);
        assert_int_equal(producer[g->inputs[i]], -1);
    }
    for (int i = 0; i < g->n_outputs; i++) assert_int_equal(g->values[g->outputs[i]].dtype, NN_F32);
    free(producer);
}

static void maybe_write_seed(const char *name, const mspec *s) {
    const char *dir = getenv("FACEPAY_TFLITE_SEEDS");
    if (!dir || !*dir) return;
    size_t len;
    uint8_t *b = build(s, &len, NULL);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(b, 1, len, f);
        fclose(f);
    }
    free(b);
}

/* ---------------------------------------------------------------------------------------------- */
/* Tests: fp16 and hand-made models                                                               */
/* ---------------------------------------------------------------------------------------------- */
static void test_half_to_float_exhaustive(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        int sign = (h >> 15) & 1, e = (h >> 10) & 31, m = h & 1023;
        double want;
        if (e == 0) want = ldexp((double)m, -24);
        else if (e == 31) want = m ? NAN : INFINITY;
        else want = ldexp(1024.0 + m, e - 25);
        if (sign) want = -want;
        float got = nn_half_to_float((uint16_t)h);
        if (isnan(want)) {
            assert_true(isnan(got));
        } else {
            assert_true((double)got == want);
            assert_int_equal(signbit(got) != 0, sign); /* -0.0 stays negative */
        }
    }
}

static void test_tiny_add(void **state) {
    (void)state;
    mspec s;
    spec_add(&s);
    maybe_write_seed("add.seed", &s);
    nn_graph *g;
    char err[512];
    assert_int_equal(load_spec(&s, &g, err, sizeof err), FP_OK);
    check_graph_invariants(g);
    assert_int_equal(g->n_ops, 1);
    assert_int_equal(g->ops[0].type, NN_OP_ADD);
    assert_int_equal(g->ops[0].p.act, NN_ACT_NONE);
    assert_int_equal(g->n_values, 3);
    assert_int_equal(g->n_inputs, 1);
    assert_int_equal(g->n_outputs, 1);
    assert_string_equal(g->values[g->inputs[0]].name, "a");
    assert_string_equal(g->values[g->outputs[0]].name, "y");
    assert_int_equal(g->decl_batch, 1);
    assert_int_equal(g->n_params, 4);
    const nn_value *b = &g->values[nn_graph_find(g, "b")];
    assert_non_null(b->data);
    assert_memory_equal(b->data, k_b4, sizeof k_b4);
    nn_graph_free(g);
}

static void test_dequantize_fp16_is_folded(void **state) {
    (void)state;
    mspec s;
    spec_conv_fp16(&s);
    maybe_write_seed("conv_fp16.seed", &s);
    nn_graph *g;
    char err[512];
    assert_int_equal(load_spec(&s, &g, err, sizeof err), FP_OK);
    check_graph_invariants(g);
    assert_int_equal(g->n_ops, 1); /* both DEQUANTIZEs folded */
    const nn_op *op = &g->ops[0];
    assert_int_equal(op->type, NN_OP_CONV2D);
    assert_int_equal(op->p.conv.padding, NN_PAD_VALID);
    assert_int_equal(op->p.conv.act, NN_ACT_RELU6);
    assert_int_equal(op->p.conv.kh, 1);
    assert_int_equal(op->p.conv.kw, 1);
    assert_int_equal(op->p.conv.dh, 1);
    const nn_value *w = &g->values[op->in[1]], *b = &g->values[op->in[2]];
    assert_string_equal(w->name, "w");
    assert_int_equal(w->dtype, NN_F32);
    assert_non_null(w->data);
    assert_true(((float *)w->data)[0] == 1.0f && ((float *)w->data)[1] == -2.0f);
    assert_true(((float *)b->data)[0] == 0.5f && ((float *)b->data)[1] == ldexpf(1.0f, -24));
    assert_int_equal(g->n_params, 4); /* the fp16 sources, not the folded copies */
    nn_graph_free(g);
}

static void test_concat_fused_relu(void **state) {
    (void)state;
    mspec s;
    spec_concat_relu(&s);
    maybe_write_seed("concat_relu.seed", &s);
    nn_graph *g;
    char err[512];
    assert_int_equal(load_spec(&s, &g, err, sizeof err), FP_OK);
    check_graph_invariants(g);
    assert_int_equal(g->n_ops, 2);
    assert_int_equal(g->ops[0].type, NN_OP_CONCAT);
    assert_int_equal(g->ops[0].p.axis, 1); /* -1 normalised */
    assert_int_equal(g->ops[1].type, NN_OP_RELU);
    assert_int_equal(g->ops[1].in[0], g->ops[0].out[0]);
    assert_int_equal(g->ops[1].out[0], g->outputs[0]);
    assert_string_equal(g->values[g->outputs[0]].name, "y");
    nn_graph_free(g);

    s.ops[0].opt[1].v = 2; /* RELU_N1_TO_1 */
    expect_fail(&s, FP_ERR_UNSUPPORTED, "RELU_N1_TO_1");
}

static void test_reshape_targets(void **state) {
    (void)state;
    mspec s;
    spec_reshape_opts(&s);
    maybe_write_seed("reshape.seed", &s);
    nn_graph *g;
    char err[512];
    assert_int_equal(load_spec(&s, &g, err, sizeof err), FP_OK);
    check_graph_invariants(g);
    assert_int_equal(g->n_ops, 1);
    const nn_value *shape = &g->values[g->ops[0].in[1]];
    assert_int_equal(shape->dtype, NN_I32);
    assert_int_equal(shape->nbytes, 8);
    assert_int_equal(((int32_t *)shape->data)[0], -1);
    assert_int_equal(((int32_t *)shape->data)[1], 8);
    nn_graph_free(g);

    /* Shape from an INT64 constant input, declared batch 2 (MobileFaceNet's layout). */
    static const int64_t shape64[2] = {2, 8};
    memset(&s.ops[0], 0, sizeof s.ops[0]);
    s.ops[0] = op_(22, 2, (int[]){0, 2}, 1);
    s.t[0].dims[0] = 2;
    s.t[1].dims[0] = 2;
    s.t[1].dims[1] = 8;
    s.t[2] = tensor("shape64", T_I64, 1, 1, 2, 0, 0, 0);
    s.n_t = 3;
    s.n_b = 2;
    s.b[1] = (mbuffer){shape64, sizeof shape64};
    assert_int_equal(load_spec(&s, &g, err, sizeof err), FP_OK);
    assert_int_equal(g->decl_batch, 2);
    shape = &g->values[g->ops[0].in[1]];
    assert_int_equal(((int32_t *)shape->data)[0], -1);
    assert_int_equal(((int32_t *)shape->data)[1], 8);
    assert_int_equal(g->values[2].dtype, NN_I32); /* narrowed */
    nn_graph_free(g);
}

static void test_op_zoo(void **state) {
    (void)state;
    mspec s;
    nn_graph *g;
    char err[512];
    spec_zoo(&s);
    maybe_write_seed("zoo.seed", &s);
    assert_int_equal(load_spec(&s, &g, err, sizeof err), FP_OK);
    check_graph_invariants(g);
    static const nn_op_type want[] = {NN_OP_CONV2D, NN_OP_DWCONV2D, NN_OP_MAXPOOL, NN_OP_MEAN,
                                      NN_OP_RESHAPE, NN_OP_FC, NN_OP_SOFTMAX};
    assert_int_equal(g->n_ops, 7);
    for (int i = 0; i < 7; i++) assert_int_equal(g->ops[i].type, want[i]);
    assert_int_equal(g->ops[0].in[2], -1);
    assert_int_equal(g->ops[0].p.conv.kh, 3);
    assert_int_equal(g->ops[0].p.conv.act, NN_ACT_RELU);
    assert_int_equal(g->ops[1].p.conv.depth_multiplier, 1);
    assert_int_equal(g->ops[1].in[2], -1);
    assert_int_equal(g->ops[2].p.pool.kh, 2);
    assert_int_equal(g->ops[2].p.pool.padding, NN_PAD_VALID);
    assert_int_equal(g->ops[3].p.keep_dims, 1);
    assert_true(g->ops[6].p.softmax_beta == 1.0f);
    assert_int_equal(g->n_params, 72 + 36 + 2 + 12 + 3);
    nn_graph_free(g);

    spec_zoo2(&s);
    maybe_write_seed("zoo2.seed", &s);
    assert_int_equal(load_spec(&s, &g, err, sizeof err), FP_OK);
    check_graph_invariants(g);
    static const nn_op_type want2[] = {NN_OP_PAD, NN_OP_RESIZE_BILINEAR, NN_OP_LEAKY_RELU,
                                       NN_OP_PRELU, NN_OP_SIGMOID, NN_OP_MUL, NN_OP_CONCAT,
                                       NN_OP_RELU6, NN_OP_DEPTH_TO_SPACE};
    assert_int_equal(g->n_ops, 9);
    for (int i = 0; i < 9; i++) assert_int_equal(g->ops[i].type, want2[i]);
    assert_int_equal(g->ops[1].p.resize.half_pixel, 1);
    assert_int_equal(g->ops[1].p.resize.align_corners, 0);
    assert_true(g->ops[2].p.leaky_alpha == 0.2f);
    assert_int_equal(g->ops[6].p.axis, 3);
    assert_int_equal(g->ops[8].p.block, 2);
    nn_graph_free(g);

    spec_shape_ops(&s);
    maybe_write_seed("shape_ops.seed", &s);
    assert_int_equal(load_spec(&s, &g, err, sizeof err), FP_OK);
    check_graph_invariants(g);
    static const nn_op_type want3[] = {NN_OP_SHAPE, NN_OP_STRIDED_SLICE, NN_OP_PACK, NN_OP_RESHAPE,
                                       NN_OP_CAST, NN_OP_CAST};
    assert_int_equal(g->n_ops, 6);
    for (int i = 0; i < 6; i++) assert_int_equal(g->ops[i].type, want3[i]);
    assert_int_equal(g->ops[1].p.slice.shrink_axis_mask, 1);
    assert_int_equal(g->ops[3].in[1], nn_graph_find(g, "newshape")); /* computed: left alone */
    assert_int_equal(g->ops[4].p.cast_to, NN_I32);
    assert_int_equal(g->ops[5].p.cast_to, NN_F32);
    nn_graph_free(g);
}

static void test_opcode_builtin_code_field(void **state) {
    (void)state;
    mspec s;
    nn_graph *g;
    char err[512];
    spec_add(&s);
    s.ops[0].code = 18; /* MUL in builtin_code, deprecated byte 0 (= ADD): max() picks MUL */
    s.ops[0].dep = 0;
    s.ops[0].opt_type = 21;
    assert_int_equal(load_spec(&s, &g, err, sizeof err), FP_OK);
    assert_int_equal(g->ops[0].type, NN_OP_MUL);
    nn_graph_free(g);

    s.ops[0].code = 150; /* GELU: only representable in builtin_code */
    s.ops[0].dep = 127;
    s.ops[0].opt_type = 0;
    expect_fail(&s, FP_ERR_UNSUPPORTED, "GELU");
}

static void test_unsupported_models(void **state) {
    (void)state;
    mspec s;
    spec_add(&s);
    s.ops[0].code = 39; /* TRANSPOSE */
    s.ops[0].opt_type = 0;
    expect_fail(&s, FP_ERR_UNSUPPORTED, "TRANSPOSE (builtin code 39)");
    expect_fail(&s, FP_ERR_UNSUPPORTED, "\"main\"");

    spec_add(&s);
    s.t[0].type = T_I8; /* quantized activations */
    s.t[0].quant = 1;
    expect_fail(&s, FP_ERR_UNSUPPORTED, "quantized INT8");

    spec_add(&s);
    s.t[0].type = T_U8; /* uint8 input, not quantized */
    expect_fail(&s, FP_ERR_UNSUPPORTED, "UINT8");

    spec_add(&s);
    s.n_sub = 2;
    expect_fail(&s, FP_ERR_UNSUPPORTED, "subgraphs");

    spec_add(&s);
    s.version = 2;
    expect_fail(&s, FP_ERR_UNSUPPORTED, "version");

    spec_add(&s);
    s.ops[0].opt[0].v = 4; /* fused TANH */
    expect_fail(&s, FP_ERR_UNSUPPORTED, "TANH");

    spec_add(&s);
    s.ops[0].code = 32; /* CUSTOM */
    s.ops[0].opt_type = 0;
    expect_fail(&s, FP_ERR_UNSUPPORTED, "custom");

    /* DEQUANTIZE of an int8 constant is real quantization, not fp16 storage. */
    spec_conv_fp16(&s);
    static const int8_t q2[2] = {1, 2};
    s.t[1].type = T_I8;
    s.t[1].quant = 1;
    s.b[1] = (mbuffer){q2, sizeof q2};
    expect_fail(&s, FP_ERR_UNSUPPORTED, "DEQUANTIZE");
}

static void test_hostile_handmade(void **state) {
    (void)state;
    mspec s;
    marks m;
    size_t len;
    uint8_t *b;

    spec_add(&s);
    s.ident = "TFL2";
    expect_fail(&s, FP_ERR_FORMAT, "identifier");

    spec_add(&s);
    b = build(&s, &len, &m);
    expect_fail_bytes(b, 0, FP_ERR_FORMAT, "too small");
    expect_fail_bytes(b, 7, FP_ERR_FORMAT, "too small");
    put32(b, (uint32_t)len + 100); /* root table outside the file */
    expect_fail_bytes(b, len, FP_ERR_FORMAT, "outside");
    free(b);

    b = build(&s, &len, &m);
    put32(b + m.subgraphs_slot, 0x7ffffff0u); /* subgraph offset outside the file */
    expect_fail_bytes(b, len, FP_ERR_FORMAT, "outside the file");
    free(b);

    b = build(&s, &len, &m);
    put32(b + m.tensors_vec, 0x7fffffffu); /* huge vector length */
    expect_fail_bytes(b, len, FP_ERR_FORMAT, "runs past the end");
    free(b);

    b = build(&s, &len, &m);
    put32(b + m.tensor0, 0x7fffffffu); /* vtable far before the file start */
    expect_fail_bytes(b, len, FP_ERR_FORMAT, "vtable");
    put32(b + m.tensor0, 0x80000000u); /* ... and far past its end */
    expect_fail_bytes(b, len, FP_ERR_FORMAT, "vtable");
    put32(b + m.tensor0, (uint32_t)-(int32_t)len); /* vtable past the end */
    expect_fail_bytes(b, len, FP_ERR_FORMAT, "vtable");
    free(b);

    b = build(&s, &len, &m);
    put32(b + m.op0 + 4, 99); /* opcode index */
    expect_fail_bytes(b, len, FP_ERR_FORMAT, "opcode index");
    free(b);

    /* Every truncation of a small valid file. */
    b = build(&s, &len, &m);
    for (size_t n = 0; n < len; n++) expect_fail_bytes(b, n, FP_ERR_FORMAT, NULL);
    free(b);

    spec_add(&s);
    s.t[0].dims[1] = -4;
    expect_fail(&s, FP_ERR_FORMAT, "negative dimension");

    spec_add(&s);
    s.t[2].ndim = 4; /* 2^48 elements */
    s.t[2].dims[0] = s.t[2].dims[1] = s.t[2].dims[2] = s.t[2].dims[3] = 4096;
    expect_fail(&s, FP_ERR_FORMAT, "elements");

    spec_add(&s);
    s.ops[0].in[1] = 9;
    expect_fail(&s, FP_ERR_FORMAT, "out of range");

    spec_add(&s);
    s.ops[0].in[1] = -2;
    expect_fail(&s, FP_ERR_FORMAT, "out of range");

    spec_add(&s);
    s.ops[0].out[0] = 1; /* writes the constant */
    expect_fail(&s, FP_ERR_FORMAT, "constant");

    spec_add(&s);
    s.n_ops = 2;
    s.ops[1] = s.ops[0]; /* two producers of y */
    expect_fail(&s, FP_ERR_FORMAT, "written by operators 0 and 1");

    spec_add(&s);
    s.b[1].n = 12; /* 3 floats for a [1,4] tensor */
    expect_fail(&s, FP_ERR_FORMAT, "bytes");

    spec_add(&s);
    s.t[1].buffer = 7;
    expect_fail(&s, FP_ERR_FORMAT, "buffer 7");

    spec_add(&s);
    s.n_in = 0; /* 'a' is read but nothing provides it */
    expect_fail(&s, FP_ERR_FORMAT, "nothing computes");

    spec_add(&s);
    s.out[0] = 5;
    expect_fail(&s, FP_ERR_FORMAT, "out of range");

    spec_add(&s);
    s.ops[0].opt_type = 1; /* Conv2DOptions on an ADD */
    expect_fail(&s, FP_ERR_FORMAT, "options");

    spec_conv_fp16(&s);
    s.ops[2].opt[1].v = 0; /* stride 0 */
    expect_fail(&s, FP_ERR_FORMAT, "stride");

    spec_conv_fp16(&s);
    s.ops[2].n_in = 1; /* no weights */
    expect_fail(&s, FP_ERR_FORMAT, "inputs");

    spec_conv_fp16(&s);
    s.t[3].dims[0] = 3; /* DEQUANTIZE changes the element count */
    expect_fail(&s, FP_ERR_FORMAT, "DEQUANTIZE");
}

/* ---------------------------------------------------------------------------------------------- */
/* Tests: the real models                                                                         */
/* ---------------------------------------------------------------------------------------------- */
typedef struct model_expect {
    const char *file;
    int file_ops, n_dequantize;
    int64_t params;
    int decl_batch;
    const char *in_name;
    int64_t in_shape[4];
    int n_out;
    const char *out_name[2];
    int out_ndim[2];
    int64_t out_shape[2][4];
    int counts[NN_OP_COUNT];
} model_expect;

/* From `node tools/analyze-tflite.js <file>` in the reference tree. */
static const model_expect k_models[] = {
    {"face_detection_short_range.tflite",
     164,
     74,
     101478,
     1,
     "input",
     {1, 128, 128, 3},
     2,
     {"regressors", "classificators"},
     {3, 3},
     {{1, 896, 16}, {1, 896, 1}},
     {[NN_OP_ADD] = 16,
      [NN_OP_CONCAT] = 2,
      [NN_OP_CONV2D] = 21,
      [NN_OP_DWCONV2D] = 16,
      [NN_OP_MAXPOOL] = 3,
      [NN_OP_PAD] = 11,
      [NN_OP_RELU] = 17,
      [NN_OP_RESHAPE] = 4}},
    {"face_detection_full_range.tflite",
     354,
     178,
     514139,
     1,
     "input",
     {1, 192, 192, 3},
     2,
     {"reshaped_regressor_face_4", "reshaped_classifier_face_4"},
     {3, 3},
     {{1, 2304, 16}, {1, 2304, 1}},
     {[NN_OP_ADD] = 23,
      [NN_OP_CONV2D] = 49,
      [NN_OP_DWCONV2D] = 40,
      [NN_OP_MAXPOOL] = 4,
      [NN_OP_PAD] = 8,
      [NN_OP_RELU] = 47,
      [NN_OP_RESHAPE] = 2,
      [NN_OP_RESIZE_BILINEAR] = 3}},
    {"face_landmark.tflite",
     210,
     113,
     604709,
     1,
     "input_1",
     {1, 192, 192, 3},
     2,
     {"conv2d_21", "conv2d_31"},
     {4, 4},
     {{1, 1, 1, 1404}, {1, 1, 1, 1}},
     {[NN_OP_ADD] = 20,
      [NN_OP_CONV2D] = 25,
      [NN_OP_DWCONV2D] = 20,
      [NN_OP_MAXPOOL] = 6,
      [NN_OP_PAD] = 3,
      [NN_OP_PRELU] = 23}},
    {"MobileFaceNet.tflite",
     230,
     0,
     1292994,
     2,
     "input",
     {2, 112, 112, 3},
     1,
     {"embeddings", NULL},
     {2, 0},
     {{2, 192}, {0}},
     {[NN_OP_ABS] = 33,
      [NN_OP_ADD] = 45,
      [NN_OP_CONV2D] = 35,
      [NN_OP_DWCONV2D] = 17,
      [NN_OP_MUL] = 33,
      [NN_OP_RELU] = 33,
      [NN_OP_RESHAPE] = 1,
      [NN_OP_SUB] = 33}},
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void check_model(const model_expect *e) {
    const char *path = tu_model_path(e->file);
    TU_REQUIRE(path, e->file);
    size_t len;
    uint8_t *buf = tu_read_all(path, &len);
    assert_non_null(buf);
    nn_graph *g = NULL;
    char err[512];
    double t0 = now_ms();
    fp_status st = nn_load_tflite(buf, len, &g, err, sizeof err);
    double t1 = now_ms();
    if (st) fprintf(stderr, "%s: %s\n", e->file, err);
    assert_int_equal(st, FP_OK);
    fprintf(stderr, "  %-34s %4d ops (%d in file, %d DEQUANTIZE folded), %lld params, %.2f ms\n",
            e->file, g->n_ops, e->file_ops, e->n_dequantize, (long long)g->n_params, t1 - t0);
    check_graph_invariants(g);
    int total = 0;
    for (int t = 0; t < NN_OP_COUNT; t++) {
        if (count_ops(g, (nn_op_type)t) != e->counts[t])
            fprintf(stderr, "%s: op type %d: %d, want %d\n", e->file, t,
                    count_ops(g, (nn_op_type)t), e->counts[t]);
        assert_int_equal(count_ops(g, (nn_op_type)t), e->counts[t]);
        total += e->counts[t];
    }
    /* Each file op maps to one IR op except the folded DEQUANTIZEs. */
    assert_int_equal(g->n_ops, total);
    assert_int_equal(g->n_ops, e->file_ops - e->n_dequantize);
    assert_int_equal(g->n_params, e->params);
    assert_int_equal(g->decl_batch, e->decl_batch);
    assert_int_equal(g->n_inputs, 1);
    const nn_value *in = &g->values[g->inputs[0]];
    assert_string_equal(in->name, e->in_name);
    assert_shape(&in->shape, 4, e->in_shape);
    assert_int_equal(g->n_outputs, e->n_out);
    for (int i = 0; i < e->n_out; i++) {
        const nn_value *o = &g->values[g->outputs[i]];
        assert_string_equal(o->name, e->out_name[i]);
        assert_shape(&o->shape, e->out_ndim[i], e->out_shape[i]);
    }
    /* All conv/FC weights are F32 constants after folding. */
    for (int i = 0; i < g->n_ops; i++) {
        const nn_op *op = &g->ops[i];
        if (op->type == NN_OP_CONV2D || op->type == NN_OP_DWCONV2D || op->type == NN_OP_FC) {
            const nn_value *w = &g->values[op->in[1]];
            assert_non_null(w->data);
            assert_int_equal(w->dtype, NN_F32);
            assert_true(isfinite(((const float *)w->data)[0]));
            if (op->in[2] >= 0) assert_non_null(g->values[op->in[2]].data);
        }
        /* Re-batchable RESHAPE targets: a leading -1 and no other inferred entry. */
        if (op->type == NN_OP_RESHAPE) {
            const nn_value *sv = &g->values[op->in[1]];
            assert_non_null(sv->data);
            const int32_t *d = sv->data;
            assert_int_equal(d[0], -1);
            for (size_t k = 1; k < sv->nbytes / 4; k++) assert_true(d[k] > 0);
        }
    }
    nn_graph_free(g);
    free(buf);
}

static void test_model_short_range(void **state) { (void)state; check_model(&k_models[0]); }
static void test_model_full_range(void **state) { (void)state; check_model(&k_models[1]); }
static void test_model_landmark(void **state) { (void)state; check_model(&k_models[2]); }
static void test_model_mobilefacenet(void **state) { (void)state; check_model(&k_models[3]); }

static void test_model_mobilefacenet_details(void **state) {
    (void)state;
    const char *path = tu_model_path("MobileFaceNet.tflite");
    TU_REQUIRE(path, "MobileFaceNet.tflite");
    size_t len;
    uint8_t *buf = tu_read_all(path, &len);
    nn_graph *g;
    char err[512];
    assert_int_equal(nn_load_tflite(buf, len, &g, err, sizeof err), FP_OK);
    int r = -1;
    for (int i = 0; i < g->n_ops; i++)
        if (g->ops[i].type == NN_OP_RESHAPE) r = i;
    assert_true(r >= 0);
    const nn_value *sv = &g->values[g->ops[r].in[1]];
    assert_int_equal(sv->nbytes, 8);
    assert_int_equal(((int32_t *)sv->data)[0], -1); /* [2,192] with the declared batch freed */
    assert_int_equal(((int32_t *)sv->data)[1], 192);
    /* The first conv keeps the file's OHWI weights and options. */
    const nn_op *c = &g->ops[0];
    assert_int_equal(c->type, NN_OP_CONV2D);
    assert_int_equal(c->p.conv.sh, 2);
    assert_int_equal(c->p.conv.padding, NN_PAD_SAME);
    assert_int_equal(c->p.conv.kh, 3);
    assert_int_equal(g->values[c->in[1]].shape.d[3], 3);
    nn_graph_free(g);
    free(buf);
}

static void test_model_antispoofing_unsupported(void **state) {
    (void)state;
    const char *path = tu_model_path("FaceAntiSpoofing.tflite");
    TU_REQUIRE(path, "FaceAntiSpoofing.tflite");
    size_t len;
    uint8_t *buf = tu_read_all(path, &len);
    nn_graph *g = NULL;
    char err[512];
    fp_status st = load(buf, len, &g, err, sizeof err);
    fprintf(stderr, "  FaceAntiSpoofing.tflite: %s\n", err);
    assert_int_equal(st, FP_ERR_UNSUPPORTED);
    assert_true(strstr(err, "GREATER_EQUAL") || strstr(err, "LESS"));
    free(buf);
}

/* ---------------------------------------------------------------------------------------------- */
/* Tests: damaged real model                                                                      */
/* ---------------------------------------------------------------------------------------------- */
static void test_truncated_real_model(void **state) {
    (void)state;
    const char *path = tu_model_path("face_detection_short_range.tflite");
    TU_REQUIRE(path, "face_detection_short_range.tflite");
    size_t len;
    uint8_t *buf = tu_read_all(path, &len);
    int tried = 0;
    for (size_t n = 0; n < len; n = n < 512 ? n + 1 : n + 997) {
        nn_graph *g;
        char err[512];
        fp_status st = load(buf, n, &g, err, sizeof err);
        if (st != FP_ERR_FORMAT) fprintf(stderr, "truncated to %zu: status %d (%s)\n", n, st, err);
        assert_int_equal(st, FP_ERR_FORMAT);
        tried++;
    }
    /* The last bytes too: they hold operator codes, the one place a short cut could hide. */
    for (size_t n = len - 64; n < len; n++) {
        nn_graph *g;
        char err[512];
        assert_int_equal(load(buf, n, &g, err, sizeof err), FP_ERR_FORMAT);
        tried++;
    }
    fprintf(stderr, "  %d truncations rejected\n", tried);
    free(buf);
}

static uint64_t rng_next(uint64_t *s) {
    /* xorshift64*: fixed seed, so failures reproduce */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static void test_flipped_bytes_real_model(void **state) {
    (void)state;
    const char *path = tu_model_path("face_detection_short_range.tflite");
    TU_REQUIRE(path, "face_detection_short_range.tflite");
    size_t len;
    uint8_t *buf = tu_read_all(path, &len);
    uint8_t *m = malloc(len);
    assert_non_null(m);
    uint64_t seed = 0x5eed7f11e5ULL;
    int ok = 0, format = 0, unsupported = 0;
    for (int trial = 0; trial < 2000; trial++) {
        memcpy(m, buf, len);
        int flips = 1 + (int)(rng_next(&seed) % 4);
        for (int f = 0; f < flips; f++) {
            size_t pos;
            uint64_t r = rng_next(&seed);
            /* Half the trials aim at the flatbuffer structure (the header and the tables after
             * the weights), where a flip changes offsets rather than weight values. */
            if (trial & 1) pos = (size_t)(r % len);
            else if (r & 1) pos = (size_t)((r >> 1) % 512);
            else pos = len - 1 - (size_t)((r >> 1) % 24576);
            m[pos] ^= (uint8_t)(1u << (rng_next(&seed) % 8));
        }
        nn_graph *g;
        char err[512];
        fp_status st = load(m, len, &g, err, sizeof err);
        if (st == FP_OK) {
            check_graph_invariants(g);
            nn_graph_free(g);
            ok++;
        } else if (st == FP_ERR_FORMAT) {
            format++;
        } else {
            if (st != FP_ERR_UNSUPPORTED)
                fprintf(stderr, "trial %d: status %d (%s)\n", trial, st, err);
            assert_int_equal(st, FP_ERR_UNSUPPORTED);
            unsupported++;
        }
    }
    fprintf(stderr, "  2000 mutants: %d loaded, %d format errors, %d unsupported\n", ok, format,
            unsupported);
    free(m);
    free(buf);
}

static void test_null_arguments(void **state) {
    (void)state;
    nn_graph *g = NULL;
    char err[64];
    assert_int_equal(nn_load_tflite(NULL, 10, &g, err, sizeof err), FP_ERR_INVALID_ARG);
    assert_int_equal(nn_load_tflite("12345678", 8, NULL, err, sizeof err), FP_ERR_INVALID_ARG);
    assert_int_equal(nn_load_tflite(NULL, 0, &g, NULL, 0), FP_ERR_FORMAT);
    assert_null(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half_to_float_exhaustive),
        cmocka_unit_test(test_tiny_add),
        cmocka_unit_test(test_dequantize_fp16_is_folded),
        cmocka_unit_test(test_concat_fused_relu),
        cmocka_unit_test(test_reshape_targets),
        cmocka_unit_test(test_op_zoo),
        cmocka_unit_test(test_opcode_builtin_code_field),
        cmocka_unit_test(test_unsupported_models),
        cmocka_unit_test(test_hostile_handmade),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_model_short_range),
        cmocka_unit_test(test_model_full_range),
        cmocka_unit_test(test_model_landmark),
        cmocka_unit_test(test_model_mobilefacenet),
        cmocka_unit_test(test_model_mobilefacenet_details),
        cmocka_unit_test(test_model_antispoofing_unsupported),
        cmocka_unit_test(test_truncated_real_model),
        cmocka_unit_test(test_flipped_bytes_real_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
