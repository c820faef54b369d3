/*
 * exec.c - the planner and executor. A session binds an immutable graph to one batch size:
 * it infers every shape for that batch, evaluates int32 shape arithmetic once, assigns activation
 * buffers by liveness (a buffer is reused once its last reader has run) and then runs only the
 * float ops. Sessions share the graph read-only, so one loaded model serves many threads.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

#define FAIL(st, ...) (snprintf(err, errlen, __VA_ARGS__), (st))

typedef struct block {
    size_t floats;  /* capacity */
    int free_after; /* run index of the last reader of the value currently in it */
    float *mem;
} block;

struct nn_session {
    const nn_graph *g;
    int batch, threads;
    nn_shape *shapes;   /* per value */
    nn_dtype *dtypes;   /* per value */
    void **pdata;       /* plan-time int32 contents per value (owned), else NULL */
    float **buf;        /* per computed F32 value: its buffer */
    int *run;           /* op indices executed per run */
    int n_run;
    int64_t *op_macs;   /* per op, for this batch */
    block *blocks;
    int n_blocks;
    float *scratch;
    size_t scratch_floats;
};

static int is_const(const nn_graph *g, int v) { return v >= 0 && g->values[v].data != NULL; }

static void release_members(nn_session *s) {
    if (s->pdata)
        for (int i = 0; i < s->g->n_values; i++) free(s->pdata[i]);
    for (int i = 0; i < s->n_blocks; i++) free(s->blocks[i].mem);
    free(s->blocks);
    free(s->pdata);
    free(s->shapes);
    free(s->dtypes);
    free(s->buf);
    free(s->run);
    free(s->op_macs);
    free(s->scratch);
}

void nn_session_free(nn_session *s) {
    if (!s) return;
    release_members(s);
    free(s);
}

static int64_t op_macs(const nn_op *op, const nn_shape *const *in, const nn_shape *out) {
    switch (op->type) {
    case NN_OP_CONV2D:
        return nn_shape_count(out) * in[1]->d[1] * in[1]->d[2] * in[1]->d[3];
    case NN_OP_DWCONV2D:
        return nn_shape_count(out) * in[1]->d[1] * in[1]->d[2];
    case NN_OP_FC:
        return nn_shape_count(out) * in[1]->d[1];
    default:
        return 0;
    }
}

/* Picks a free block for `need` floats at run index i: smallest that fits, else the largest free
 * one (grown), else a new one. Returns the block index or -1. */
static int take_block(nn_session *s, size_t need, int i, int free_after) {
    int best = -1, largest = -1;
    for (int b = 0; b < s->n_blocks; b++) {
        block *bl = &s->blocks[b];
        if (bl->free_after >= i) continue;
        if (bl->floats >= need && (best < 0 || bl->floats < s->blocks[best].floats)) best = b;
        if (largest < 0 || bl->floats > s->blocks[largest].floats) largest = b;
    }
    if (best < 0 && largest >= 0) {
        best = largest;
        s->blocks[best].floats = need;
    }
    if (best < 0) {
        block *nb = realloc(s->blocks, sizeof *nb * (size_t)(s->n_blocks + 1));
        if (!nb) return -1;
        s->blocks = nb;
        best = s->n_blocks++;
        s->blocks[best] = (block){need, -1, NULL};
    }
    s->blocks[best].free_after = free_after;
    return best;
}

static float *alloc_floats(size_t n) {
    size_t bytes = ((n ? n : 1) * sizeof(float) + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

/* Plans the graph for `batch`; with alloc == 0 only shapes/MACs are computed (used by finalize). */
static fp_status plan(nn_session *s, int alloc, char *err, size_t errlen) {
    const nn_graph *g = s->g;
    int nv = g->n_values, no = g->n_ops;
    s->shapes = calloc((size_t)nv, sizeof *s->shapes);
    s->dtypes = calloc((size_t)nv, sizeof *s->dtypes);
    s->pdata = calloc((size_t)nv, sizeof *s->pdata);
    s->buf = calloc((size_t)nv, sizeof *s->buf);
    s->run = calloc((size_t)(no ? no : 1), sizeof *s->run);
    s->op_macs = calloc((size_t)(no ? no : 1), sizeof *s->op_macs);
    int *value_block = malloc(sizeof(int) * (size_t)(nv ? nv : 1));
    int *last_use = malloc(sizeof(int) * (size_t)(nv ? nv : 1));
    char *known = calloc((size_t)(nv ? nv : 1), 1);
    fp_status st = FP_OK;
    if (!s->shapes || !s->dtypes || !s->pdata || !s->buf || !s->run || !s->op_macs || !value_block ||
        !last_use || !known) {
        st = FAIL(FP_ERR_NOMEM, "planner: out of memory");
        goto done;
    }
    for (int v = 0; v < nv; v++) {
        value_block[v] = -1;
        last_use[v] = -1;
        if (is_const(g, v)) {
            s->shapes[v] = g->values[v].shape;
            s->dtypes[v] = g->values[v].dtype;
            known[v] = 1;
        }
    }
    for (int i = 0; i < g->n_inputs; i++) {
        int v = g->inputs[i];
        nn_shape sh = g->values[v].shape;
        if (sh.ndim < 1) { st = FAIL(FP_ERR_SHAPE, "input %s has no shape", g->values[v].name); goto done; }
        sh.d[0] = s->batch;
        for (int d = 1; d < sh.ndim; d++)
            if (sh.d[d] < 1) { st = FAIL(FP_ERR_SHAPE, "input %s: dim %d unknown", g->values[v].name, d); goto done; }
        s->shapes[v] = sh;
        s->dtypes[v] = NN_F32;
        known[v] = 1;
    }
    /* shapes, plan-time values, and the list of ops to run */
    for (int i = 0; i < no; i++) {
        const nn_op *op = &g->ops[i];
        const nn_shape *ins[64];
        nn_dtype indt[64];
        const void *indata[64];
        int32_t rebatched[NN_MAX_DIMS];
        nn_shape rebatched_shape;
        if (op->n_in > 64) { st = FAIL(FP_ERR_UNSUPPORTED, "op %d: more than 64 inputs", i); goto done; }
        for (int k = 0; k < op->n_in; k++) {
            int v = op->in[k];
            if (v < 0) { ins[k] = NULL; indt[k] = NN_F32; indata[k] = NULL; continue; }
            if (!known[v]) { st = FAIL(FP_ERR_FORMAT, "op %d (%s): input %s used before it is computed", i, nn_op_name(op->type), g->values[v].name); goto done; }
            ins[k] = &s->shapes[v];
            indt[k] = s->dtypes[v];
            indata[k] = is_const(g, v) ? g->values[v].data : s->pdata[v];
        }
        /* Files bake their declared batch into reshape targets; follow the session's batch instead. */
        if (op->type == NN_OP_RESHAPE && op->n_in >= 2 && indata[1] && indt[1] == NN_I32 &&
            ins[1]->ndim == 1 && ins[1]->d[0] >= 1 && ins[1]->d[0] <= NN_MAX_DIMS && g->decl_batch > 0 &&
            ins[0] && ins[0]->ndim >= 1 && ins[0]->d[0] == s->batch) {
            memcpy(rebatched, indata[1], sizeof(int32_t) * (size_t)ins[1]->d[0]);
            if (rebatched[0] == g->decl_batch) rebatched[0] = s->batch;
            indata[1] = rebatched;
            rebatched_shape = *ins[1];
            ins[1] = &rebatched_shape;
        }
        nn_shape outs[NN_MAX_OP_OUT];
        nn_dtype outdt[NN_MAX_OP_OUT];
        void *outdata[NN_MAX_OP_OUT] = {0};
        char msg[256];
        st = nn_infer_op(op, ins, indt, indata, outs, outdt, outdata, msg, sizeof msg);
        if (st) { st = FAIL(st, "op %d (%s -> %s): %s", i, nn_op_name(op->type), g->values[op->out[0]].name, msg); goto done; }
        int runtime = 0;
        for (int k = 0; k < op->n_out; k++) {
            int v = op->out[k];
            s->shapes[v] = outs[k];
            s->dtypes[v] = outdt[k];
            s->pdata[v] = outdata[k];
            known[v] = 1;
            if (outdt[k] == NN_F32) runtime = 1;
        }
        if (runtime) {
            for (int k = 0; k < op->n_in; k++)
                if (op->in[k] >= 0 && !is_const(g, op->in[k]) && s->dtypes[op->in[k]] != NN_F32 &&
                    op->type != NN_OP_RESHAPE && op->type != NN_OP_PAD && op->type != NN_OP_MEAN &&
                    op->type != NN_OP_RESIZE_BILINEAR) {
                    st = FAIL(FP_ERR_UNSUPPORTED, "op %d (%s): float op with a computed int32 input", i, nn_op_name(op->type));
                    goto done;
                }
            s->op_macs[i] = op_macs(op, ins, &outs[0]);
            s->run[s->n_run++] = i;
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        if (!known[v]) { st = FAIL(FP_ERR_FORMAT, "output %s is never computed", g->values[v].name); goto done; }
        if (s->dtypes[v] != NN_F32) { st = FAIL(FP_ERR_UNSUPPORTED, "output %s is not float", g->values[v].name); goto done; }
    }
    if (!alloc) goto done;

    /* liveness over the run list */
    for (int r = 0; r < s->n_run; r++) {
        const nn_op *op = &g->ops[s->run[r]];
        for (int k = 0; k < op->n_in; k++)
            if (op->in[k] >= 0) last_use[op->in[k]] = r;
        for (int k = 0; k < op->n_out; k++)
            if (last_use[op->out[k]] < r) last_use[op->out[k]] = r;
    }
    for (int i = 0; i < g->n_inputs; i++) last_use[g->inputs[i]] = INT_MAX;
    for (int i = 0; i < g->n_outputs; i++) last_use[g->outputs[i]] = INT_MAX;
    for (int i = 0; i < g->n_inputs; i++) {
        int v = g->inputs[i];
        int b = take_block(s, (size_t)nn_shape_count(&s->shapes[v]), INT_MIN + 1, INT_MAX);
        if (b < 0) { st = FAIL(FP_ERR_NOMEM, "planner: out of memory"); goto done; }
        value_block[v] = b;
    }
    for (int r = 0; r < s->n_run; r++) {
        const nn_op *op = &g->ops[s->run[r]];
        const nn_shape *ins[64];
        for (int k = 0; k < op->n_in; k++) ins[k] = op->in[k] >= 0 ? &s->shapes[op->in[k]] : NULL;
        size_t sc = nn_scratch_size(op, ins, &s->shapes[op->out[0]]);
        if (sc > s->scratch_floats) s->scratch_floats = sc;
        for (int k = 0; k < op->n_out; k++) {
            int v = op->out[k];
            if (value_block[v] >= 0) continue;
            int b = take_block(s, (size_t)nn_shape_count(&s->shapes[v]), r, last_use[v]);
            if (b < 0) { st = FAIL(FP_ERR_NOMEM, "planner: out of memory"); goto done; }
            value_block[v] = b;
        }
    }
    for (int b = 0; b < s->n_blocks; b++)
        if (!(s->blocks[b].mem = alloc_floats(s->blocks[b].floats))) { st = FAIL(FP_ERR_NOMEM, "activations: out of memory"); goto done; }
    if (s->scratch_floats && !(s->scratch = alloc_floats(s->scratch_floats))) { st = FAIL(FP_ERR_NOMEM, "scratch: out of memory"); goto done; }
    for (int v = 0; v < nv; v++) {
        if (is_const(g, v)) s->buf[v] = (float *)g->values[v].data;
        else if (value_block[v] >= 0) s->buf[v] = s->blocks[value_block[v]].mem;
    }
done:
    free(value_block);
    free(last_use);
    free(known);
    return st;
}

fp_status nn_session_new(const nn_graph *g, int batch, int threads, nn_session **out, char *err,
                         size_t errlen) {
    *out = NULL;
    if (batch < 1 || batch > 4096) return FAIL(FP_ERR_INVALID_ARG, "batch %d out of range 1..4096", batch);
    if (threads < 1) threads = 1;
    nn_session *s = calloc(1, sizeof *s);
    if (!s) return FAIL(FP_ERR_NOMEM, "out of memory");
    s->g = g;
    s->batch = batch;
    s->threads = threads;
    fp_status st = plan(s, 1, err, errlen);
    if (st) {
        nn_session_free(s);
        return st;
    }
    *out = s;
    return FP_OK;
}

/* Shape validation and MAC count at batch 1 (no buffers), for nn_graph_finalize. */
fp_status nn_plan_check(const nn_graph *g, int64_t *op_macs_out, char *err, size_t errlen) {
    nn_session s = {.g = g, .batch = 1, .threads = 1};
    fp_status st = plan(&s, 0, err, errlen);
    if (!st && op_macs_out) memcpy(op_macs_out, s.op_macs, sizeof(int64_t) * (size_t)g->n_ops);
    release_members(&s);
    return st;
}

float *nn_session_input(nn_session *s, int i, nn_shape *shape) {
    if (!s || i < 0 || i >= s->g->n_inputs) return NULL;
    int v = s->g->inputs[i];
    if (shape) *shape = s->shapes[v];
    return s->buf[v];
}

const float *nn_session_output(const nn_session *s, int i, nn_shape *shape) {
    if (!s || i < 0 || i >= s->g->n_outputs) return NULL;
    int v = s->g->outputs[i];
    if (shape) *shape = s->shapes[v];
    return s->buf[v];
}

fp_status nn_session_run(nn_session *s, char *err, size_t errlen) {
    const nn_graph *g = s->g;
    for (int r = 0; r < s->n_run; r++) {
        const nn_op *op = &g->ops[s->run[r]];
        const float *in[64];
        const nn_shape *ins[64];
        for (int k = 0; k < op->n_in; k++) {
            int v = op->in[k];
            in[k] = v < 0 ? NULL : is_const(g, v) ? g->values[v].data : s->pdata[v] ? s->pdata[v] : s->buf[v];
            ins[k] = v < 0 ? NULL : &s->shapes[v];
        }
        int o = op->out[0];
        if (op->type == NN_OP_IDENTITY || op->type == NN_OP_RESHAPE || op->type == NN_OP_CAST) {
            memcpy(s->buf[o], in[0], sizeof(float) * (size_t)nn_shape_count(&s->shapes[o]));
            continue;
        }
        nn_exec_ctx ctx = {.op = op, .g = g, .in = in, .in_shape = ins, .out = s->buf[o],
                           .out_shape = &s->shapes[o], .scratch = s->scratch, .threads = s->threads};
        fp_status st = nn_run_op(&ctx);
        if (st) return FAIL(st, "op %d (%s -> %s) failed", s->run[r], nn_op_name(op->type), g->values[o].name);
    }
    return FP_OK;
}
