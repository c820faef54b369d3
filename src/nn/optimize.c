/*
 * optimize.c - nn_graph_finalize: validation, execution order, fusion and weight packing, run
 * once when a model is loaded so the executor's hot loop sees as few ops as possible.
 *
 * Fusions (each only when the intermediate value has a single reader and is not a graph output):
 *  - the MobileFaceNet.tflite PReLU idiom relu(x) + c*(x - |x|)  ->  PRELU(x, alpha = 2c);
 *  - CONV2D/DWCONV2D/FC followed by MUL by a per-channel constant (batch-norm scale) -> scaled weights,
 *    by ADD of a per-channel constant -> bias, by RELU/RELU6/PRELU/LEAKY_RELU -> fused activation,
 *    and RELU followed by MIN(6) [and MAX(0)] (Keras' relu6 in faceres) -> RELU6;
 *  - element-wise binary ops followed by RELU -> fused activation.
 * Folding a scale into weights changes rounding by ~1 ulp per product; the golden tolerances
 * (1e-4 relative) are far above that.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

#define FAIL(st, ...) (snprintf(err, errlen, __VA_ARGS__), (st))

typedef struct usage {
    int *count;    /* readers per value (+1 for graph outputs) */
    int *producer; /* op index producing each value, -1 */
} usage;

static void usage_free(usage *u) {
    free(u->count);
    free(u->producer);
}

static int is_live(const nn_op *op) { return op->n_out > 0; }

static int usage_build(const nn_graph *g, usage *u) {
    u->count = calloc((size_t)g->n_values + 1, sizeof(int));
    u->producer = malloc(sizeof(int) * ((size_t)g->n_values + 1));
    if (!u->count || !u->producer) return -1;
    for (int v = 0; v < g->n_values; v++) u->producer[v] = -1;
    for (int i = 0; i < g->n_ops; i++) {
        const nn_op *op = &g->ops[i];
        if (!is_live(op)) continue;
        for (int k = 0; k < op->n_in; k++)
            if (op->in[k] >= 0) u->count[op->in[k]]++;
        for (int k = 0; k < op->n_out; k++) u->producer[op->out[k]] = i;
    }
    for (int i = 0; i < g->n_outputs; i++) u->count[g->outputs[i]] += 1000;
    return 0;
}

static void kill_op(nn_op *op) { op->n_out = 0; }

/* The only reader of value v, or NULL when v has zero or several readers / is an output. */
static nn_op *sole_reader(nn_graph *g, const usage *u, int v) {
    if (u->count[v] != 1) return NULL;
    for (int i = 0; i < g->n_ops; i++) {
        nn_op *op = &g->ops[i];
        if (!is_live(op)) continue;
        for (int k = 0; k < op->n_in; k++)
            if (op->in[k] == v) return op;
    }
    return NULL;
}

static const float *const_f32(const nn_graph *g, int v) {
    if (v < 0 || !g->values[v].data || g->values[v].dtype != NN_F32) return NULL;
    return g->values[v].data;
}

/* A constant that broadcasts as one value per channel of the last axis (shape [C], [1,1,1,C]...). */
static const float *per_channel(const nn_graph *g, int v, int64_t channels) {
    const float *d = const_f32(g, v);
    if (!d) return NULL;
    const nn_shape *s = &g->values[v].shape;
    if (nn_shape_count(s) != channels || s->ndim < 1 || s->d[s->ndim - 1] != channels) return NULL;
    return d;
}

static int scalar_is(const nn_graph *g, int v, float x) {
    const float *d = const_f32(g, v);
    return d && nn_shape_count(&g->values[v].shape) == 1 && d[0] == x;
}

static int other_input(const nn_op *op, int v) {
    if (op->n_in != 2) return -2;
    if (op->in[0] == v) return op->in[1];
    if (op->in[1] == v) return op->in[0];
    return -2;
}

/* Output channels of a conv/fc op (from its constant weights), or -1. */
static int64_t out_channels(const nn_graph *g, const nn_op *op) {
    if (op->n_in < 2 || !const_f32(g, op->in[1])) return -1;
    const nn_shape *w = &g->values[op->in[1]].shape;
    if (op->type == NN_OP_CONV2D && w->ndim == 4) return w->d[0];
    if (op->type == NN_OP_DWCONV2D && w->ndim == 4) return w->d[3];
    if (op->type == NN_OP_FC && w->ndim == 2) return w->d[0];
    return -1;
}

static nn_act *act_of(nn_op *op) {
    if (op->type == NN_OP_FC) return &op->p.fc.act;
    return &op->p.conv.act;
}

static int add_float_const(nn_graph *g, const char *base, const char *suffix, const nn_shape *shape,
                           float *data) {
    char name[512];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    int v = nn_graph_add_value(g, name, NN_F32, shape, data, sizeof(float) * (size_t)nn_shape_count(shape));
    if (v < 0) free(data);
    return v;
}

static int set_inputs(nn_op *op, int n) {
    if (op->n_in >= n) return 0;
    int *in = realloc(op->in, sizeof(int) * (size_t)n);
    if (!in) return -1;
    for (int k = op->n_in; k < n; k++) in[k] = -1;
    op->in = in;
    op->n_in = n;
    return 0;
}

/* relu(x) + c*(x - |x|) -> PRELU(x, 2c). Returns 1 if rewritten, -1 on allocation failure. */
static int fuse_prelu_idiom(nn_graph *g, usage *u, int x) {
    if (u->count[x] != 3) return 0;
    nn_op *relu = NULL, *abs_ = NULL, *sub = NULL;
    for (int i = 0; i < g->n_ops; i++) {
        nn_op *op = &g->ops[i];
        if (!is_live(op)) continue;
        for (int k = 0; k < op->n_in; k++) {
            if (op->in[k] != x) continue;
            if (op->type == NN_OP_RELU) relu = op;
            else if (op->type == NN_OP_ABS) abs_ = op;
            else if (op->type == NN_OP_SUB && op->p.act == NN_ACT_NONE && op->in[0] == x) sub = op;
            else return 0;
        }
    }
    if (!relu || !abs_ || !sub || sub->in[1] != abs_->out[0] || u->count[abs_->out[0]] != 1) return 0;
    nn_op *mul = sole_reader(g, u, sub->out[0]);
    if (!mul || mul->type != NN_OP_MUL || mul->p.act != NN_ACT_NONE) return 0;
    int c = other_input(mul, sub->out[0]);
    const float *cd = const_f32(g, c);
    if (!cd) return 0;
    nn_op *add = sole_reader(g, u, mul->out[0]);
    if (!add || add->type != NN_OP_ADD || add->p.act != NN_ACT_NONE || u->count[relu->out[0]] != 1 ||
        other_input(add, mul->out[0]) != relu->out[0])
        return 0;
    int64_t n = nn_shape_count(&g->values[c].shape);
    float *alpha = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!alpha) return -1;
    for (int64_t i = 0; i < n; i++) alpha[i] = 2.0f * cd[i];
    nn_shape ashape = g->values[c].shape;
    int y = add->out[0];
    int a = add_float_const(g, g->values[c].name, "/prelu_alpha", &ashape, alpha);
    if (a < 0) return -1;
    /* reuse the ADD op slot as the PRELU */
    add->type = NN_OP_PRELU;
    add->in[0] = x;
    add->in[1] = a;
    add->out[0] = y;
    kill_op(relu);
    kill_op(abs_);
    kill_op(sub);
    kill_op(mul);
    return 1;
}

/* Tries to absorb the sole reader of op's output into op. Returns 1 if it did. */
static int fuse_into_producer(nn_graph *g, usage *u, nn_op *op) {
    int y = op->out[0];
    nn_op *r = sole_reader(g, u, y);
    if (!r) return 0;
    int64_t ch = out_channels(g, op);
    nn_act *act = act_of(op);
    if (ch < 1) return 0;
    const char *wname = g->values[op->in[1]].name;
    if (*act == NN_ACT_NONE && r->type == NN_OP_MUL && r->p.act == NN_ACT_NONE) {
        const float *s = per_channel(g, other_input(r, y), ch);
        int has_bias = op->n_in > 2 && op->in[2] >= 0;
        const float *ob = has_bias ? const_f32(g, op->in[2]) : NULL;
        if (!s || (has_bias && !ob)) return 0;
        const nn_value *w = &g->values[op->in[1]];
        int64_t n = nn_shape_count(&w->shape);
        nn_shape ws = w->shape;
        float *nw = malloc(sizeof(float) * (size_t)n);
        float *nb = has_bias ? malloc(sizeof(float) * (size_t)ch) : NULL;
        if (!nw || (has_bias && !nb)) { free(nw); free(nb); return -1; }
        const float *ow = w->data;
        for (int64_t i = 0; i < n; i++) {
            int64_t c = op->type == NN_OP_DWCONV2D ? i % ch : i / (n / ch);
            nw[i] = ow[i] * s[c];
        }
        for (int64_t c = 0; has_bias && c < ch; c++) nb[c] = ob[c] * s[c];
        /* adding values may move g->values: nothing above is used after this point */
        int nwv = add_float_const(g, wname, "/scaled", &ws, nw);
        if (nwv < 0) { free(nb); return -1; }
        op->in[1] = nwv;
        if (has_bias) {
            nn_shape bs = {1, {ch}};
            int nbv = add_float_const(g, wname, "/scaled_bias", &bs, nb);
            if (nbv < 0) return -1;
            op->in[2] = nbv;
        }
    } else if (*act == NN_ACT_NONE && r->type == NN_OP_ADD && r->p.act == NN_ACT_NONE) {
        const float *b = per_channel(g, other_input(r, y), ch);
        if (!b) return 0;
        float *nb = malloc(sizeof(float) * (size_t)ch);
        if (!nb) return -1;
        const float *ob = op->n_in > 2 && op->in[2] >= 0 ? const_f32(g, op->in[2]) : NULL;
        if (op->n_in > 2 && op->in[2] >= 0 && !ob) { free(nb); return 0; }
        for (int64_t c = 0; c < ch; c++) nb[c] = (ob ? ob[c] : 0.0f) + b[c];
        nn_shape bs = {1, {ch}};
        int nbv = add_float_const(g, wname, "/fused_bias", &bs, nb);
        if (nbv < 0 || set_inputs(op, 3)) return -1;
        op->in[2] = nbv;
    } else if (*act == NN_ACT_NONE && r->type == NN_OP_RELU) {
        *act = NN_ACT_RELU;
    } else if (*act == NN_ACT_NONE && r->type == NN_OP_RELU6) {
        *act = NN_ACT_RELU6;
    } else if (*act == NN_ACT_NONE && r->type == NN_OP_LEAKY_RELU) {
        *act = NN_ACT_LEAKY;
        if (op->type == NN_OP_FC) op->p.fc.alpha = r->p.leaky_alpha;
        else op->p.conv.alpha = r->p.leaky_alpha;
    } else if (*act == NN_ACT_NONE && r->type == NN_OP_PRELU && r->in[0] == y &&
               per_channel(g, r->in[1], ch)) {
        if (set_inputs(op, 4)) return -1;
        *act = NN_ACT_PRELU;
        op->in[3] = r->in[1];
    } else if (*act == NN_ACT_RELU && r->type == NN_OP_MIN && r->p.act == NN_ACT_NONE &&
               scalar_is(g, other_input(r, y), 6.0f)) {
        *act = NN_ACT_RELU6;
    } else if ((*act == NN_ACT_RELU || *act == NN_ACT_RELU6) && r->type == NN_OP_MAX &&
               r->p.act == NN_ACT_NONE && scalar_is(g, other_input(r, y), 0.0f)) {
        /* max(relu(x), 0) == relu(x) */
    } else {
        return 0;
    }
    op->out[0] = r->out[0];
    kill_op(r);
    return 1;
}

static int fuse_binary_relu(nn_graph *g, usage *u, nn_op *op) {
    nn_op *r = sole_reader(g, u, op->out[0]);
    if (!r || r->type != NN_OP_RELU || op->p.act != NN_ACT_NONE) return 0;
    op->p.act = NN_ACT_RELU;
    op->out[0] = r->out[0];
    kill_op(r);
    return 1;
}

static fp_status fuse(nn_graph *g, char *err, size_t errlen) {
    for (int changed = 1; changed;) {
        changed = 0;
        usage u;
        if (usage_build(g, &u)) { usage_free(&u); return FAIL(FP_ERR_NOMEM, "optimiser: out of memory"); }
        for (int i = 0; i < g->n_ops && !changed; i++) {
            nn_op *op = &g->ops[i];
            if (!is_live(op)) continue;
            int r = 0;
            if (op->n_out == 1 && g->values[op->out[0]].dtype == NN_F32)
                r = fuse_prelu_idiom(g, &u, op->out[0]);
            if (!r && (op->type == NN_OP_CONV2D || op->type == NN_OP_DWCONV2D || op->type == NN_OP_FC))
                r = fuse_into_producer(g, &u, op);
            if (!r && (op->type == NN_OP_ADD || op->type == NN_OP_SUB || op->type == NN_OP_MUL ||
                       op->type == NN_OP_MIN || op->type == NN_OP_MAX))
                r = fuse_binary_relu(g, &u, op);
            if (r < 0) { usage_free(&u); return FAIL(FP_ERR_NOMEM, "optimiser: out of memory"); }
            changed = r;
        }
        /* graph inputs that are PRELU-idiom values are handled too */
        for (int i = 0; i < g->n_inputs && !changed; i++) {
            int r = fuse_prelu_idiom(g, &u, g->inputs[i]);
            if (r < 0) { usage_free(&u); return FAIL(FP_ERR_NOMEM, "optimiser: out of memory"); }
            changed = r;
        }
        usage_free(&u);
    }
    return FP_OK;
}

/* Validates indices and puts ops in dependency order (Kahn). */
static fp_status order_ops(nn_graph *g, char *err, size_t errlen) {
    int nv = g->n_values, no = g->n_ops;
    int *producer = malloc(sizeof(int) * (size_t)(nv ? nv : 1));
    int *state = calloc((size_t)(no ? no : 1), sizeof(int));
    nn_op *sorted = malloc(sizeof(nn_op) * (size_t)(no ? no : 1));
    char *ready = calloc((size_t)(nv ? nv : 1), 1);
    fp_status st = FP_OK;
    if (!producer || !state || !sorted || !ready) { st = FAIL(FP_ERR_NOMEM, "out of memory"); goto done; }
    for (int v = 0; v < nv; v++) {
        producer[v] = -1;
        ready[v] = g->values[v].data != NULL;
    }
    for (int i = 0; i < g->n_inputs; i++) {
        int v = g->inputs[i];
        if (v < 0 || v >= nv || g->values[v].data) { st = FAIL(FP_ERR_FORMAT, "graph input %d is invalid", i); goto done; }
        ready[v] = 1;
    }
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] < 0 || g->outputs[i] >= nv) { st = FAIL(FP_ERR_FORMAT, "graph output %d is invalid", i); goto done; }
    for (int i = 0; i < no; i++) {
        const nn_op *op = &g->ops[i];
        if (op->type < 0 || op->type >= NN_OP_COUNT) { st = FAIL(FP_ERR_FORMAT, "op %d: bad type", i); goto done; }
        for (int k = 0; k < op->n_in; k++)
            if (op->in[k] < -1 || op->in[k] >= nv) { st = FAIL(FP_ERR_FORMAT, "op %d (%s): input index %d out of range", i, nn_op_name(op->type), op->in[k]); goto done; }
        if (op->n_out < 1) { st = FAIL(FP_ERR_FORMAT, "op %d: no outputs", i); goto done; }
        for (int k = 0; k < op->n_out; k++) {
            int v = op->out[k];
            if (v < 0 || v >= nv) { st = FAIL(FP_ERR_FORMAT, "op %d: output index %d out of range", i, v); goto done; }
            if (g->values[v].data || ready[v]) { st = FAIL(FP_ERR_FORMAT, "op %d (%s) writes constant or input %s", i, nn_op_name(op->type), g->values[v].name); goto done; }
            if (producer[v] >= 0) { st = FAIL(FP_ERR_FORMAT, "value %s produced by two ops", g->values[v].name); goto done; }
            producer[v] = i;
        }
    }
    int n_sorted = 0;
    for (int progress = 1; progress && n_sorted < no;) {
        progress = 0;
        for (int i = 0; i < no; i++) {
            if (state[i]) continue;
            const nn_op *op = &g->ops[i];
            int ok = 1;
            for (int k = 0; k < op->n_in && ok; k++)
                if (op->in[k] >= 0 && !ready[op->in[k]]) ok = 0;
            if (!ok) continue;
            for (int k = 0; k < op->n_out; k++) ready[op->out[k]] = 1;
            state[i] = 1;
            sorted[n_sorted++] = *op;
            progress = 1;
        }
    }
    if (n_sorted < no) {
        for (int i = 0; i < no; i++)
            if (!state[i]) {
                const nn_op *op = &g->ops[i];
                for (int k = 0; k < op->n_in; k++)
                    if (op->in[k] >= 0 && !ready[op->in[k]]) {
                        st = FAIL(FP_ERR_FORMAT, "op %d (%s): input %s is never computed (missing producer or cycle)",
                                  i, nn_op_name(op->type), g->values[op->in[k]].name);
                        goto done;
                    }
            }
        st = FAIL(FP_ERR_FORMAT, "graph has a cycle");
        goto done;
    }
    memcpy(g->ops, sorted, sizeof(nn_op) * (size_t)no);
done:
    free(producer);
    free(state);
    free(sorted);
    free(ready);
    return st;
}

/* Drops killed ops and ops whose results nobody needs. */
static fp_status prune(nn_graph *g, char *err, size_t errlen) {
    char *needed = calloc((size_t)g->n_values + 1, 1);
    if (!needed) return FAIL(FP_ERR_NOMEM, "out of memory");
    for (int i = 0; i < g->n_outputs; i++) needed[g->outputs[i]] = 1;
    for (int i = g->n_ops - 1; i >= 0; i--) {
        nn_op *op = &g->ops[i];
        int live = 0;
        for (int k = 0; k < op->n_out; k++) live |= needed[op->out[k]];
        if (!live) {
            kill_op(op);
            continue;
        }
        for (int k = 0; k < op->n_in; k++)
            if (op->in[k] >= 0) needed[op->in[k]] = 1;
    }
    int w = 0;
    for (int i = 0; i < g->n_ops; i++) {
        nn_op *op = &g->ops[i];
        if (is_live(op)) {
            g->ops[w++] = *op;
        } else {
            free(op->in);
            if (op->packed && op->packed_free) op->packed_free(op->packed);
        }
    }
    g->n_ops = w;
    /* release constants nobody reads any more (e.g. weights replaced by scaled copies) */
    for (int i = 0; i < g->n_ops; i++)
        for (int k = 0; k < g->ops[i].n_in; k++)
            if (g->ops[i].in[k] >= 0) needed[g->ops[i].in[k]] = 1;
    for (int v = 0; v < g->n_values; v++)
        if (!needed[v] && g->values[v].data) {
            free(g->values[v].data);
            g->values[v].data = NULL;
            g->values[v].nbytes = 0;
        }
    free(needed);
    return FP_OK;
}

fp_status nn_graph_finalize(nn_graph *g, char *err, size_t errlen) {
    fp_status st;
    if (!g) return FAIL(FP_ERR_INVALID_ARG, "no graph");
    if (g->n_inputs < 1 || g->n_outputs < 1) return FAIL(FP_ERR_FORMAT, "graph has no inputs or no outputs");
    if ((st = order_ops(g, err, errlen))) return st;
    if ((st = prune(g, err, errlen))) return st;
    if ((st = nn_plan_check(g, NULL, err, errlen))) return st; /* shapes must hold before rewriting */
    if ((st = fuse(g, err, errlen))) return st;
    if ((st = prune(g, err, errlen))) return st;
    int64_t *macs = calloc((size_t)(g->n_ops ? g->n_ops : 1), sizeof(int64_t));
    if (!macs) return FAIL(FP_ERR_NOMEM, "out of memory");
    st = nn_plan_check(g, macs, err, errlen);
    g->macs = 0;
    for (int i = 0; i < g->n_ops && !st; i++) {
        g->ops[i].macs = macs[i];
        g->macs += macs[i];
    }
    free(macs);
    if (st) return st;
    for (int i = 0; i < g->n_ops; i++) {
        nn_op *op = &g->ops[i];
        if (op->type != NN_OP_CONV2D && op->type != NN_OP_DWCONV2D && op->type != NN_OP_FC) continue;
        if ((st = nn_pack_op(g, op))) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s", fp_last_error());
            return FAIL(st, "packing op %d (%s): %s", i, nn_op_name(op->type), msg);
        }
    }
    return FP_OK;
}
