/*
 * graph.c - the graph IR's builder and shape helpers: growable value/op arrays owned by nn_graph,
 * used by the loaders to translate a file and by the optimiser to rewrite it. Nothing here runs ops.
 */
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

nn_graph *nn_graph_new(const char *format) {
    nn_graph *g = calloc(1, sizeof *g);
    if (g) g->format = format;
    return g;
}

static void op_release(nn_op *op) {
    free(op->in);
    op->in = NULL;
    if (op->packed && op->packed_free) op->packed_free(op->packed);
    op->packed = NULL;
}

void nn_graph_free(nn_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_values; i++) {
        free(g->values[i].name);
        free(g->values[i].data);
    }
    for (int i = 0; i < g->n_ops; i++) op_release(&g->ops[i]);
    free(g->values);
    free(g->ops);
    free(g->inputs);
    free(g->outputs);
    free(g);
}

int nn_graph_add_value(nn_graph *g, const char *name, nn_dtype dtype, const nn_shape *shape,
                       void *data, size_t nbytes) {
    if (g->n_values == g->cap_values) {
        int cap = g->cap_values ? g->cap_values * 2 : 64;
        nn_value *v = realloc(g->values, (size_t)cap * sizeof *v);
        if (!v) return -1;
        g->values = v;
        g->cap_values = cap;
    }
    nn_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = strdup(name ? name : "");
    if (!v->name) return -1;
    v->dtype = dtype;
    if (shape) v->shape = *shape;
    v->data = data;
    v->nbytes = nbytes;
    return g->n_values++;
}

int nn_graph_add_const(nn_graph *g, const char *name, nn_dtype dtype, const nn_shape *shape,
                       const void *data) {
    size_t n = (size_t)nn_shape_count(shape) * 4;
    void *copy = malloc(n ? n : 1);
    if (!copy) return -1;
    if (n) memcpy(copy, data, n);
    int idx = nn_graph_add_value(g, name, dtype, shape, copy, n);
    if (idx < 0) free(copy);
    return idx;
}

nn_op *nn_graph_add_op(nn_graph *g, nn_op_type type, const int *in, int n_in, const int *out,
                       int n_out) {
    if (n_out < 0 || n_out > NN_MAX_OP_OUT || n_in < 0) return NULL;
    if (g->n_ops == g->cap_ops) {
        int cap = g->cap_ops ? g->cap_ops * 2 : 64;
        nn_op *o = realloc(g->ops, (size_t)cap * sizeof *o);
        if (!o) return NULL;
        g->ops = o;
        g->cap_ops = cap;
    }
    nn_op *op = &g->ops[g->n_ops];
    memset(op, 0, sizeof *op);
    op->type = type;
    op->in = malloc(sizeof(int) * (size_t)(n_in ? n_in : 1));
    if (!op->in) return NULL;
    if (n_in) memcpy(op->in, in, sizeof(int) * (size_t)n_in);
    op->n_in = n_in;
    for (int i = 0; i < n_out; i++) op->out[i] = out[i];
    op->n_out = n_out;
    g->n_ops++;
    return op;
}

static int set_list(int **dst, int *ndst, const int *idx, int n) {
    int *copy = malloc(sizeof(int) * (size_t)(n ? n : 1));
    if (!copy) return -1;
    if (n) memcpy(copy, idx, sizeof(int) * (size_t)n);
    free(*dst);
    *dst = copy;
    *ndst = n;
    return 0;
}

int nn_graph_set_inputs(nn_graph *g, const int *idx, int n) {
    return set_list(&g->inputs, &g->n_inputs, idx, n);
}

int nn_graph_set_outputs(nn_graph *g, const int *idx, int n) {
    return set_list(&g->outputs, &g->n_outputs, idx, n);
}

int nn_graph_find(const nn_graph *g, const char *name) {
    for (int i = 0; i < g->n_values; i++)
        if (strcmp(g->values[i].name, name) == 0) return i;
    return -1;
}

int64_t nn_shape_count(const nn_shape *s) {
    if (!s || s->ndim < 0 || s->ndim > NN_MAX_DIMS) return 0;
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) {
        if (s->d[i] < 0) return 0;
        if (s->d[i] && n > INT64_MAX / s->d[i]) return 0;
        n *= s->d[i];
    }
    return n;
}

int nn_shape_eq(const nn_shape *a, const nn_shape *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->d[i] != b->d[i]) return 0;
    return 1;
}

int nn_window_out(int in, int k, int stride, int dilation, nn_padding pad, int pad_lo_explicit,
                  int pad_hi_explicit, int *pad_lo) {
    if (in < 1 || k < 1 || stride < 1 || dilation < 1) return -1;
    int ek = (k - 1) * dilation + 1;
    int out, lo;
    switch (pad) {
    case NN_PAD_SAME: {
        out = (in + stride - 1) / stride;
        int total = (out - 1) * stride + ek - in;
        if (total < 0) total = 0;
        lo = total / 2;
        break;
    }
    case NN_PAD_EXPLICIT:
        lo = pad_lo_explicit;
        out = (in + pad_lo_explicit + pad_hi_explicit - ek) / stride + 1;
        if (in + pad_lo_explicit + pad_hi_explicit < ek) out = 0;
        break;
    default:
        lo = 0;
        out = in >= ek ? (in - ek) / stride + 1 : 0;
        break;
    }
    if (pad_lo) *pad_lo = lo;
    return out >= 1 ? out : -1;
}
