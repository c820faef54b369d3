/*
 * shape.c - shape inference for every IR op, and evaluation of the small int32 "shape arithmetic"
 * ops (SHAPE, STRIDED_SLICE, PACK, CAST, RESHAPE/CONCAT/IDENTITY of int32) at plan time.
 * TF.js graphs compute reshape targets from the input's batch at run time; evaluating those
 * int32 chains while planning lets one graph run at any batch without shape ops in the hot loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

#define FAIL(st, ...) (snprintf(err, errlen, __VA_ARGS__), (st))

static const char *const op_names[NN_OP_COUNT] = {
    "CONV2D", "DWCONV2D", "FC", "MAXPOOL", "AVGPOOL", "ADD", "SUB", "MUL", "DIV", "MIN", "MAX",
    "RELU", "RELU6", "ABS", "NEG", "SIGMOID", "TANH", "EXP", "SQRT", "RSQRT", "SQUARE", "PRELU",
    "LEAKY_RELU", "SOFTMAX", "PAD", "CONCAT", "RESHAPE", "MEAN", "RESIZE_BILINEAR",
    "DEPTH_TO_SPACE", "SHAPE", "STRIDED_SLICE", "PACK", "CAST", "IDENTITY"};

const char *nn_op_name(nn_op_type t) {
    return (t >= 0 && t < NN_OP_COUNT) ? op_names[t] : "?";
}

static int64_t count(const nn_shape *s) { return nn_shape_count(s); }

static fp_status need_inputs(const nn_op *op, int n, const nn_shape *const *in, char *err,
                             size_t errlen) {
    if (op->n_in < n) return FAIL(FP_ERR_FORMAT, "%s: needs %d inputs, has %d", nn_op_name(op->type), n, op->n_in);
    for (int i = 0; i < n; i++)
        if (!in[i]) return FAIL(FP_ERR_FORMAT, "%s: input %d missing", nn_op_name(op->type), i);
    return FP_OK;
}

/* numpy broadcasting of a and b into out */
static fp_status broadcast(const nn_shape *a, const nn_shape *b, nn_shape *out, char *err,
                           size_t errlen) {
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    out->ndim = n;
    for (int i = 0; i < n; i++) {
        int ia = i - (n - a->ndim), ib = i - (n - b->ndim);
        int64_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
        if (da == db || db == 1) out->d[i] = da;
        else if (da == 1) out->d[i] = db;
        else return FAIL(FP_ERR_SHAPE, "cannot broadcast dim %d: %lld vs %lld", i, (long long)da, (long long)db);
    }
    return FP_OK;
}

static int32_t *dup_i32(const int32_t *src, int64_t n) {
    int32_t *d = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    if (d && n > 0) memcpy(d, src, sizeof(int32_t) * (size_t)n);
    return d;
}

static fp_status infer_window(const nn_op *op, const nn_shape *x, int kh, int kw, int sh, int sw,
                              int dh, int dw, nn_padding pad, const nn_conv_params *cp,
                              int64_t *oh, int64_t *ow, char *err, size_t errlen) {
    if (x->ndim != 4) return FAIL(FP_ERR_SHAPE, "%s: input must be 4-D NHWC, is %d-D", nn_op_name(op->type), x->ndim);
    if (x->d[1] > 1 << 20 || x->d[2] > 1 << 20) return FAIL(FP_ERR_SHAPE, "%s: input too large", nn_op_name(op->type));
    int pl;
    int h = nn_window_out((int)x->d[1], kh, sh, dh, pad, cp ? cp->pad_t : 0, cp ? cp->pad_b : 0, &pl);
    int w = nn_window_out((int)x->d[2], kw, sw, dw, pad, cp ? cp->pad_l : 0, cp ? cp->pad_r : 0, &pl);
    if (h < 1 || w < 1)
        return FAIL(FP_ERR_SHAPE, "%s: window %dx%d stride %dx%d does not fit input %lldx%lld",
                    nn_op_name(op->type), kh, kw, sh, sw, (long long)x->d[1], (long long)x->d[2]);
    *oh = h;
    *ow = w;
    return FP_OK;
}

fp_status nn_infer_op(const nn_op *op, const nn_shape *const *in, const nn_dtype *in_dtypes,
                      const void *const *in_data, nn_shape *out, nn_dtype *out_dtypes,
                      void **out_data, char *err, size_t errlen) {
    fp_status st;
    for (int k = 0; k < op->n_out; k++) {
        out_dtypes[k] = NN_F32;
        out_data[k] = NULL;
        memset(&out[k], 0, sizeof out[k]);
    }
    if (op->n_in < 1 || !in[0]) return FAIL(FP_ERR_FORMAT, "%s: no input", nn_op_name(op->type));
    const nn_shape *x = in[0];
    nn_shape *o = &out[0];
    switch (op->type) {
    case NN_OP_CONV2D:
    case NN_OP_DWCONV2D: {
        if ((st = need_inputs(op, 2, in, err, errlen))) return st;
        const nn_conv_params *cp = &op->p.conv;
        const nn_shape *w = in[1];
        if (w->ndim != 4) return FAIL(FP_ERR_SHAPE, "%s: weights must be 4-D", nn_op_name(op->type));
        if (cp->sh < 1 || cp->sw < 1 || cp->dh < 1 || cp->dw < 1)
            return FAIL(FP_ERR_FORMAT, "%s: bad stride/dilation", nn_op_name(op->type));
        int64_t cout;
        if (op->type == NN_OP_CONV2D) {
            if (x->ndim == 4 && w->d[3] != x->d[3])
                return FAIL(FP_ERR_SHAPE, "CONV2D: weights expect %lld input channels, input has %lld",
                            (long long)w->d[3], (long long)x->d[3]);
            cout = w->d[0];
        } else {
            int m = cp->depth_multiplier > 0 ? cp->depth_multiplier : 1;
            if (x->ndim == 4 && w->d[3] != x->d[3] * m)
                return FAIL(FP_ERR_SHAPE, "DWCONV2D: weights have %lld channels, input %lld x multiplier %d",
                            (long long)w->d[3], (long long)x->d[3], m);
            cout = w->d[3];
        }
        if (op->n_in > 2 && op->in[2] >= 0 && in[2] && count(in[2]) != cout)
            return FAIL(FP_ERR_SHAPE, "%s: bias has %lld values for %lld channels", nn_op_name(op->type),
                        (long long)count(in[2]), (long long)cout);
        int64_t oh, ow;
        int kh = (int)(op->type == NN_OP_CONV2D ? w->d[1] : w->d[1]), kw = (int)w->d[2];
        if ((st = infer_window(op, x, kh, kw, cp->sh, cp->sw, cp->dh, cp->dw, cp->padding, cp, &oh, &ow, err, errlen)))
            return st;
        *o = (nn_shape){4, {x->d[0], oh, ow, cout}};
        return FP_OK;
    }
    case NN_OP_FC: {
        if ((st = need_inputs(op, 2, in, err, errlen))) return st;
        const nn_shape *w = in[1];
        if (w->ndim != 2 || w->d[1] < 1) return FAIL(FP_ERR_SHAPE, "FC: weights must be [out, in]");
        int64_t k = w->d[1], total = count(x);
        if (x->ndim < 1 || total % k) return FAIL(FP_ERR_SHAPE, "FC: input of %lld values is not a multiple of %lld", (long long)total, (long long)k);
        if (op->p.fc.keep_dims) {
            if (x->d[x->ndim - 1] != k) return FAIL(FP_ERR_SHAPE, "FC: last dim %lld != %lld", (long long)x->d[x->ndim - 1], (long long)k);
            *o = *x;
            o->d[o->ndim - 1] = w->d[0];
        } else {
            *o = (nn_shape){2, {total / k, w->d[0]}};
        }
        return FP_OK;
    }
    case NN_OP_MAXPOOL:
    case NN_OP_AVGPOOL: {
        const nn_pool_params *pp = &op->p.pool;
        int64_t oh, ow;
        if ((st = infer_window(op, x, pp->kh, pp->kw, pp->sh, pp->sw, 1, 1, pp->padding, NULL, &oh, &ow, err, errlen)))
            return st;
        *o = (nn_shape){4, {x->d[0], oh, ow, x->d[3]}};
        return FP_OK;
    }
    case NN_OP_ADD: case NN_OP_SUB: case NN_OP_MUL: case NN_OP_DIV: case NN_OP_MIN: case NN_OP_MAX:
        if ((st = need_inputs(op, 2, in, err, errlen))) return st;
        if (in_dtypes[0] != NN_F32 || in_dtypes[1] != NN_F32)
            return FAIL(FP_ERR_UNSUPPORTED, "%s on int32 tensors", nn_op_name(op->type));
        return broadcast(in[0], in[1], o, err, errlen);
    case NN_OP_PRELU:
        if ((st = need_inputs(op, 2, in, err, errlen))) return st;
        if ((st = broadcast(in[0], in[1], o, err, errlen))) return st;
        if (!nn_shape_eq(o, x)) return FAIL(FP_ERR_SHAPE, "PRELU: alpha does not broadcast into the input");
        return FP_OK;
    case NN_OP_RELU: case NN_OP_RELU6: case NN_OP_ABS: case NN_OP_NEG: case NN_OP_SIGMOID:
    case NN_OP_TANH: case NN_OP_EXP: case NN_OP_SQRT: case NN_OP_RSQRT: case NN_OP_SQUARE:
    case NN_OP_LEAKY_RELU: case NN_OP_SOFTMAX:
        if (in_dtypes[0] != NN_F32) return FAIL(FP_ERR_UNSUPPORTED, "%s on int32", nn_op_name(op->type));
        *o = *x;
        return FP_OK;
    case NN_OP_PAD: {
        if ((st = need_inputs(op, 2, in, err, errlen))) return st;
        const int32_t *p = in_data[1];
        if (!p || in_dtypes[1] != NN_I32) return FAIL(FP_ERR_UNSUPPORTED, "PAD: paddings must be constant int32");
        if (count(in[1]) != 2 * x->ndim) return FAIL(FP_ERR_SHAPE, "PAD: paddings shape does not match rank %d", x->ndim);
        *o = *x;
        for (int i = 0; i < x->ndim; i++) {
            if (p[2 * i] < 0 || p[2 * i + 1] < 0 || p[2 * i] > 1 << 16 || p[2 * i + 1] > 1 << 16)
                return FAIL(FP_ERR_FORMAT, "PAD: bad padding %d/%d", p[2 * i], p[2 * i + 1]);
            o->d[i] += p[2 * i] + p[2 * i + 1];
        }
        return FP_OK;
    }
    case NN_OP_CONCAT: {
        int n = op->n_in, axis = op->p.axis;
        if (axis < 0) axis += x->ndim;
        if (axis < 0 || axis >= x->ndim) return FAIL(FP_ERR_SHAPE, "CONCAT: axis %d out of range", op->p.axis);
        *o = *x;
        o->d[axis] = 0;
        for (int i = 0; i < n; i++) {
            if (!in[i] || in[i]->ndim != x->ndim || in_dtypes[i] != in_dtypes[0])
                return FAIL(FP_ERR_SHAPE, "CONCAT: input %d rank/type differs", i);
            for (int d = 0; d < x->ndim; d++)
                if (d != axis && in[i]->d[d] != x->d[d]) return FAIL(FP_ERR_SHAPE, "CONCAT: input %d dim %d differs", i, d);
            o->d[axis] += in[i]->d[axis];
        }
        if (in_dtypes[0] == NN_I32) {
            out_dtypes[0] = NN_I32;
            if (x->ndim != 1) return FAIL(FP_ERR_UNSUPPORTED, "CONCAT of int32 beyond 1-D");
            int32_t *r = malloc(sizeof(int32_t) * (size_t)(o->d[0] ? o->d[0] : 1));
            if (!r) return FAIL(FP_ERR_NOMEM, "CONCAT: out of memory");
            int64_t at = 0;
            for (int i = 0; i < n; i++) {
                if (!in_data[i]) { free(r); return FAIL(FP_ERR_UNSUPPORTED, "CONCAT: int32 input %d unknown at plan time", i); }
                memcpy(r + at, in_data[i], sizeof(int32_t) * (size_t)in[i]->d[0]);
                at += in[i]->d[0];
            }
            out_data[0] = r;
        }
        return FP_OK;
    }
    case NN_OP_RESHAPE: {
        if ((st = need_inputs(op, 2, in, err, errlen))) return st;
        const int32_t *s = in_data[1];
        if (!s || in_dtypes[1] != NN_I32) return FAIL(FP_ERR_UNSUPPORTED, "RESHAPE: target shape unknown at plan time");
        int64_t k = count(in[1]);
        if (in[1]->ndim > 1 || k > NN_MAX_DIMS) return FAIL(FP_ERR_SHAPE, "RESHAPE: bad target rank");
        int64_t total = count(x), known = 1;
        int minus = -1;
        o->ndim = (int)k;
        for (int i = 0; i < k; i++) {
            if (s[i] == -1) {
                if (minus >= 0) return FAIL(FP_ERR_SHAPE, "RESHAPE: two -1 dims");
                minus = i;
            } else if (s[i] < 0) {
                return FAIL(FP_ERR_SHAPE, "RESHAPE: negative dim %d", s[i]);
            } else {
                known *= s[i];
                if (known > (int64_t)1 << 40) return FAIL(FP_ERR_SHAPE, "RESHAPE: too large");
            }
            o->d[i] = s[i];
        }
        if (minus >= 0) {
            if (known == 0 || total % known) return FAIL(FP_ERR_SHAPE, "RESHAPE: cannot infer -1");
            o->d[minus] = total / known;
        } else if (known != total) {
            return FAIL(FP_ERR_SHAPE, "RESHAPE: %lld values into %lld", (long long)total, (long long)known);
        }
        if (in_dtypes[0] == NN_I32) {
            out_dtypes[0] = NN_I32;
            if (!in_data[0]) return FAIL(FP_ERR_UNSUPPORTED, "RESHAPE: int32 input unknown at plan time");
            if (!(out_data[0] = dup_i32(in_data[0], total))) return FAIL(FP_ERR_NOMEM, "out of memory");
        }
        return FP_OK;
    }
    case NN_OP_MEAN: {
        if ((st = need_inputs(op, 2, in, err, errlen))) return st;
        const int32_t *ax = in_data[1];
        if (!ax) return FAIL(FP_ERR_UNSUPPORTED, "MEAN: axes must be constant");
        int red[NN_MAX_DIMS] = {0};
        for (int64_t i = 0; i < count(in[1]); i++) {
            int a = ax[i] < 0 ? ax[i] + x->ndim : ax[i];
            if (a < 0 || a >= x->ndim) return FAIL(FP_ERR_SHAPE, "MEAN: axis %d out of range", ax[i]);
            red[a] = 1;
        }
        o->ndim = 0;
        for (int d = 0; d < x->ndim; d++) {
            if (!red[d]) o->d[o->ndim++] = x->d[d];
            else if (op->p.keep_dims) o->d[o->ndim++] = 1;
        }
        return FP_OK;
    }
    case NN_OP_RESIZE_BILINEAR: {
        if ((st = need_inputs(op, 2, in, err, errlen))) return st;
        const int32_t *sz = in_data[1];
        if (!sz || count(in[1]) != 2) return FAIL(FP_ERR_UNSUPPORTED, "RESIZE_BILINEAR: size must be 2 constants");
        if (x->ndim != 4 || sz[0] < 1 || sz[1] < 1 || sz[0] > 1 << 15 || sz[1] > 1 << 15)
            return FAIL(FP_ERR_SHAPE, "RESIZE_BILINEAR: bad shape");
        *o = (nn_shape){4, {x->d[0], sz[0], sz[1], x->d[3]}};
        return FP_OK;
    }
    case NN_OP_DEPTH_TO_SPACE: {
        int b = op->p.block;
        if (x->ndim != 4 || b < 1 || x->d[3] % ((int64_t)b * b))
            return FAIL(FP_ERR_SHAPE, "DEPTH_TO_SPACE: channels not divisible by block^2");
        *o = (nn_shape){4, {x->d[0], x->d[1] * b, x->d[2] * b, x->d[3] / ((int64_t)b * b)}};
        return FP_OK;
    }
    case NN_OP_SHAPE: {
        out_dtypes[0] = NN_I32;
        *o = (nn_shape){1, {x->ndim}};
        int32_t *r = malloc(sizeof(int32_t) * (size_t)(x->ndim ? x->ndim : 1));
        if (!r) return FAIL(FP_ERR_NOMEM, "out of memory");
        for (int i = 0; i < x->ndim; i++) r[i] = (int32_t)x->d[i];
        out_data[0] = r;
        return FP_OK;
    }
    case NN_OP_STRIDED_SLICE: {
        if ((st = need_inputs(op, 4, in, err, errlen))) return st;
        const int32_t *v = in_data[0], *b = in_data[1], *e = in_data[2], *s = in_data[3];
        if (in_dtypes[0] != NN_I32 || !v || !b || !e || !s || x->ndim != 1 || count(in[1]) != 1 ||
            count(in[2]) != 1 || count(in[3]) != 1)
            return FAIL(FP_ERR_UNSUPPORTED, "STRIDED_SLICE: only 1-D int32 shape slicing is supported");
        const nn_slice_params *sp = &op->p.slice;
        if (sp->ellipsis_mask || sp->new_axis_mask) return FAIL(FP_ERR_UNSUPPORTED, "STRIDED_SLICE: ellipsis/new-axis masks");
        int64_t n = x->d[0], st1 = s[0];
        if (st1 == 0) return FAIL(FP_ERR_FORMAT, "STRIDED_SLICE: zero stride");
        int64_t lo = b[0], hi = e[0];
        if (lo < 0) lo += n;
        if (hi < 0) hi += n;
        if (sp->begin_mask & 1) lo = st1 > 0 ? 0 : n - 1;
        if (sp->end_mask & 1) hi = st1 > 0 ? n : -1;
        if (st1 > 0) { if (lo < 0) lo = 0; if (hi > n) hi = n; }
        else { if (lo > n - 1) lo = n - 1; if (hi < -1) hi = -1; }
        int32_t tmp[NN_MAX_DIMS * 4];
        int m = 0;
        if (sp->shrink_axis_mask & 1) {
            if (lo < 0 || lo >= n) return FAIL(FP_ERR_SHAPE, "STRIDED_SLICE: index out of range");
            tmp[m++] = v[lo];
            o->ndim = 0;
        } else {
            for (int64_t i = lo; st1 > 0 ? i < hi : i > hi; i += st1)
                if (i >= 0 && i < n && m < (int)(sizeof tmp / sizeof tmp[0])) tmp[m++] = v[i];
            *o = (nn_shape){1, {m}};
        }
        out_dtypes[0] = NN_I32;
        if (!(out_data[0] = dup_i32(tmp, m))) return FAIL(FP_ERR_NOMEM, "out of memory");
        return FP_OK;
    }
    case NN_OP_PACK: {
        int n = op->n_in;
        for (int i = 0; i < n; i++)
            if (!in[i] || in_dtypes[i] != NN_I32 || !in_data[i] || count(in[i]) != 1)
                return FAIL(FP_ERR_UNSUPPORTED, "PACK: only packing int32 scalars known at plan time");
        int32_t tmp[64];
        if (n > 64) return FAIL(FP_ERR_UNSUPPORTED, "PACK: too many inputs");
        for (int i = 0; i < n; i++) tmp[i] = ((const int32_t *)in_data[i])[0];
        *o = (nn_shape){1, {n}};
        out_dtypes[0] = NN_I32;
        if (!(out_data[0] = dup_i32(tmp, n))) return FAIL(FP_ERR_NOMEM, "out of memory");
        return FP_OK;
    }
    case NN_OP_CAST:
    case NN_OP_IDENTITY: {
        *o = *x;
        nn_dtype to = op->type == NN_OP_CAST ? op->p.cast_to : in_dtypes[0];
        out_dtypes[0] = to;
        if (in_dtypes[0] == NN_F32 && to == NN_F32) return FP_OK;
        if (!in_data[0]) return FAIL(FP_ERR_UNSUPPORTED, "%s: int32 value unknown at plan time", nn_op_name(op->type));
        int64_t n = count(x);
        if (n > 1 << 20) return FAIL(FP_ERR_UNSUPPORTED, "%s: int32 tensor too large", nn_op_name(op->type));
        int32_t *r = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
        if (!r) return FAIL(FP_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; i < n; i++) {
            if (in_dtypes[0] == to) r[i] = ((const int32_t *)in_data[0])[i];
            else if (to == NN_F32) { float f = (float)((const int32_t *)in_data[0])[i]; memcpy(&r[i], &f, 4); }
            else r[i] = (int32_t)((const float *)in_data[0])[i];
        }
        out_data[0] = r;
        return FP_OK;
    }
    default:
        return FAIL(FP_ERR_UNSUPPORTED, "op type %d has no shape rule", (int)op->type);
    }
}
