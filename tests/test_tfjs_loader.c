/*
 * test_tfjs_loader.c - nn_load_tfjs() on the seven TF.js graph models (op mapping, counts, weight
 * layouts checked against the raw .bin) and on hostile input: truncated / garbled JSON, truncated
 * weights, inconsistent manifests, dangling inputs, cycles and unknown ops, built from a small
 * synthetic model so each case is targeted. Needs only the model files (skipped when missing).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "nn/nn.h"
#include "util/testutil.h"

/* ---------------------------------------------------------------------------------------------- */
/* Helpers                                                                                         */
/* ---------------------------------------------------------------------------------------------- */
static int count_ops(const nn_graph *g, nn_op_type t) {
    int n = 0;
    for (int i = 0; i < g->n_ops; i++) n += g->ops[i].type == t;
    return n;
}

/* The op producing the value named `name`, or NULL. */
static const nn_op *op_for(const nn_graph *g, const char *name) {
    int v = nn_graph_find(g, name);
    for (int i = 0; v >= 0 && i < g->n_ops; i++)
        if (g->ops[i].out[0] == v) return &g->ops[i];
    return NULL;
}

/* Every op input is a constant, a graph input or produced by an earlier op. */
static void assert_exec_order(const nn_graph *g) {
    char *ready = calloc((size_t)g->n_values, 1);
    assert_non_null(ready);
    for (int i = 0; i < g->n_values; i++) ready[i] = g->values[i].data != NULL;
    for (int i = 0; i < g->n_inputs; i++) ready[g->inputs[i]] = 1;
    for (int i = 0; i < g->n_ops; i++) {
        for (int k = 0; k < g->ops[i].n_in; k++) {
            int v = g->ops[i].in[k];
            if (v < 0) continue;
            assert_true(v < g->n_values);
            assert_true(ready[v]);
        }
        for (int k = 0; k < g->ops[i].n_out; k++) ready[g->ops[i].out[k]] = 1;
    }
    free(ready);
}

/* Independent fp16 decoder (not the runtime's) for the spot checks. */
static float half_ref(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0) v = ldexpf((float)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexpf((float)(m | 1024), e - 25);
    return s ? -v : v;
}

/* Walks the manifest like TF.js does: where a weight starts in the concatenated shards. */
static int manifest_find(const char *json, size_t len, const char *name, size_t *offset,
                         int64_t shape[6], int *ndim, int *f16) {
    json_t *root = json_loadb(json, len, 0, NULL);
    if (!root) return -1;
    size_t off = 0;
    int found = -1;
    json_t *g;
    size_t gi;
    json_array_foreach(json_object_get(root, "weightsManifest"), gi, g) {
        json_t *w;
        size_t wi;
        json_array_foreach(json_object_get(g, "weights"), wi, w) {
            json_t *sh = json_object_get(w, "shape");
            int64_t count = 1;
            for (size_t k = 0; k < json_array_size(sh); k++)
                count *= json_integer_value(json_array_get(sh, k));
            json_t *q = json_object_get(w, "quantization");
            const char *qd = q ? json_string_value(json_object_get(q, "dtype")) : NULL;
            size_t bpe = !qd ? 4 : strcmp(qd, "uint8") == 0 ? 1 : 2;
            if (found < 0 && strcmp(json_string_value(json_object_get(w, "name")), name) == 0) {
                *offset = off;
                *ndim = (int)json_array_size(sh);
                for (int k = 0; k < *ndim; k++)
                    shape[k] = json_integer_value(json_array_get(sh, (size_t)k));
                *f16 = qd && strcmp(qd, "float16") == 0;
                found = 0;
            }
            off += (size_t)count * bpe;
        }
    }
    json_decref(root);
    return found;
}

static float raw_elem(const uint8_t *bin, size_t offset, int f16, size_t i) {
    if (f16) return half_ref((uint16_t)(bin[offset + 2 * i] | bin[offset + 2 * i + 1] << 8));
    float f;
    memcpy(&f, bin + offset + 4 * i, 4);
    return f;
}

typedef struct model_files {
    char *json;
    size_t json_len;
    uint8_t *bin;
    size_t bin_len;
} model_files;

static int read_model(const char *name, model_files *m) {
    char file[256];
    snprintf(file, sizeof file, "%s.json", name);
    const char *pj = tu_model_path(file);
    snprintf(file, sizeof file, "%s.bin", name);
    const char *pb = tu_model_path(file);
    memset(m, 0, sizeof *m);
    if (!pj || !pb) return -1;
    m->json = (char *)tu_read_all(pj, &m->json_len);
    m->bin = tu_read_all(pb, &m->bin_len);
    return m->json && m->bin ? 0 : -1;
}

static void free_model(model_files *m) {
    free(m->json);
    free(m->bin);
}

#define REQUIRE_MODEL(name, m)                                                                     \
    do {                                                                                           \
        if (read_model((name), (m)) != 0) {                                                        \
            free_model(m);                                                                         \
            TU_REQUIRE(NULL, name);                                                                \
        }                                                                                          \
    } while (0)

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* ---------------------------------------------------------------------------------------------- */
/* The seven models                                                                                */
/* ---------------------------------------------------------------------------------------------- */
typedef struct op_count {
    nn_op_type t;
    int n;
} op_count;

typedef struct model_expect {
    const char *name;
    const char *input;
    int64_t in_shape[4];
    const char *outputs[3];
    int64_t params;
    op_count ops[16]; /* terminated by n == 0 */
} model_expect;

static const model_expect models[] = {
    {"facemesh-detection-short", "input", {-1, 128, 128, 3}, {"Identity"}, 100523,
     {{NN_OP_CONV2D, 21}, {NN_OP_DWCONV2D, 16}, {NN_OP_ADD, 16}, {NN_OP_RELU, 16},
      {NN_OP_PAD, 11}, {NN_OP_MAXPOOL, 3}, {NN_OP_SHAPE, 4}, {NN_OP_STRIDED_SLICE, 4},
      {NN_OP_PACK, 4}, {NN_OP_RESHAPE, 4}, {NN_OP_CONCAT, 3}, {NN_OP_IDENTITY, 1}}},
    {"facemesh-detection-full", "input", {-1, 192, 192, 3}, {"Identity_1", "Identity"}, 512708,
     {{NN_OP_CONV2D, 51}, {NN_OP_DWCONV2D, 44}, {NN_OP_PAD, 45}, {NN_OP_ADD, 19}, {NN_OP_RELU, 16},
      {NN_OP_RESIZE_BILINEAR, 3}, {NN_OP_DEPTH_TO_SPACE, 4}, {NN_OP_SHAPE, 4},
      {NN_OP_STRIDED_SLICE, 4}, {NN_OP_PACK, 4}, {NN_OP_RESHAPE, 4}, {NN_OP_CONCAT, 2},
      {NN_OP_IDENTITY, 2}}},
    {"facemesh", "input_1", {-1, 192, 192, 3}, {"Identity_2", "Identity_1", "Identity"}, 738949,
     {{NN_OP_CONV2D, 31}, {NN_OP_DWCONV2D, 24}, {NN_OP_ADD, 24}, {NN_OP_PRELU, 24},
      {NN_OP_MAXPOOL, 7}, {NN_OP_PAD, 3}, {NN_OP_SIGMOID, 1}, {NN_OP_RESHAPE, 3},
      {NN_OP_IDENTITY, 3}}},
    {"iris", "input_1", {-1, 64, 64, 3}, {"Identity"}, 649773,
     {{NN_OP_CONV2D, 55}, {NN_OP_DWCONV2D, 26}, {NN_OP_ADD, 26}, {NN_OP_PRELU, 26},
      {NN_OP_MAXPOOL, 6}, {NN_OP_PAD, 1}, {NN_OP_CONCAT, 1}, {NN_OP_IDENTITY, 1}}},
    {"faceres", "input_1", {-1, 224, 224, 3},
     {"gender_pred/Sigmoid", "global_pooling/Mean", "age_pred/Softmax"}, 3489405,
     {{NN_OP_CONV2D, 14}, {NN_OP_DWCONV2D, 13}, {NN_OP_ADD, 27}, {NN_OP_RELU, 27},
      {NN_OP_MIN, 27}, {NN_OP_MAX, 27}, {NN_OP_MUL, 13}, {NN_OP_MEAN, 1}, {NN_OP_FC, 3},
      {NN_OP_SIGMOID, 1}, {NN_OP_SOFTMAX, 1}}},
    {"antispoof", "conv2d_input", {-1, 128, 128, 3}, {"Identity"}, 426547,
     {{NN_OP_CONV2D, 3}, {NN_OP_MAXPOOL, 3}, {NN_OP_RELU, 3}, {NN_OP_RESHAPE, 1}, {NN_OP_FC, 2},
      {NN_OP_SIGMOID, 1}, {NN_OP_IDENTITY, 1}}},
    {"liveness", "conv2d_1_input", {-1, 32, 32, 3}, {"Identity"}, 148244,
     {{NN_OP_CONV2D, 4}, {NN_OP_MUL, 5}, {NN_OP_ADD, 5}, {NN_OP_MAXPOOL, 2}, {NN_OP_RESHAPE, 1},
      {NN_OP_FC, 2}, {NN_OP_SOFTMAX, 1}, {NN_OP_IDENTITY, 1}}},
};

static void test_model_loads(void **state) {
    const model_expect *e = *state;
    model_files m;
    REQUIRE_MODEL(e->name, &m);
    nn_graph *g = NULL;
    char err[512];
    double t0 = now_ms();
    fp_status st = nn_load_tfjs(m.json, m.json_len, m.bin, m.bin_len, &g, err, sizeof err);
    double ms = now_ms() - t0;
    if (st != FP_OK) fprintf(stderr, "%s: %s\n", e->name, err);
    assert_int_equal(st, FP_OK);
    assert_non_null(g);
    assert_string_equal(g->format, "tfjs");
    assert_int_equal(g->decl_batch, 1);
    assert_int_equal(g->n_params, e->params);

    assert_int_equal(g->n_inputs, 1);
    const nn_value *in = &g->values[g->inputs[0]];
    assert_string_equal(in->name, e->input);
    assert_null(in->data);
    assert_int_equal(in->dtype, NN_F32);
    assert_int_equal(in->shape.ndim, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(in->shape.d[i], e->in_shape[i]);

    int n_out = 0;
    while (n_out < 3 && e->outputs[n_out]) n_out++;
    assert_int_equal(g->n_outputs, n_out);
    for (int i = 0; i < n_out; i++)
        assert_string_equal(g->values[g->outputs[i]].name, e->outputs[i]);

    int total = 0;
    for (int i = 0; e->ops[i].n; i++) {
        int got = count_ops(g, e->ops[i].t);
        if (got != e->ops[i].n)
            fprintf(stderr, "%s: op type %d: %d, expected %d\n", e->name, (int)e->ops[i].t, got,
                    e->ops[i].n);
        assert_int_equal(got, e->ops[i].n);
        total += got;
    }
    assert_int_equal(g->n_ops, total);
    assert_exec_order(g);

    /* Conventions every loader must keep: conv/FC weights are constants in IR layout. */
    for (int i = 0; i < g->n_ops; i++) {
        const nn_op *op = &g->ops[i];
        if (op->type != NN_OP_CONV2D && op->type != NN_OP_DWCONV2D && op->type != NN_OP_FC)
            continue;
        const nn_value *w = &g->values[op->in[1]];
        assert_non_null(w->data);
        assert_int_equal(w->nbytes, (size_t)nn_shape_count(&w->shape) * 4);
        if (op->type == NN_OP_FC) {
            assert_int_equal(w->shape.ndim, 2);
            assert_int_equal(op->n_in, op->p.fc.act == NN_ACT_PRELU ? 4 : 3);
            continue;
        }
        assert_int_equal(w->shape.ndim, 4);
        assert_int_equal(op->p.conv.kh, w->shape.d[1]);
        assert_int_equal(op->p.conv.kw, w->shape.d[2]);
        assert_true(op->p.conv.sh >= 1 && op->p.conv.sw >= 1);
        assert_true(op->p.conv.dh == 1 && op->p.conv.dw == 1);
        assert_int_equal(op->n_in, op->p.conv.act == NN_ACT_PRELU ? 4 : 3);
        if (op->type == NN_OP_DWCONV2D) {
            assert_int_equal(w->shape.d[0], 1);
            assert_true(op->p.conv.depth_multiplier >= 1);
        }
    }
    int counts[NN_OP_COUNT] = {0};
    for (int i = 0; i < g->n_ops; i++) counts[g->ops[i].type]++;
    fprintf(stderr, "%-26s load %7.2f ms  ops %3d  values %3d  params %8lld  [", e->name, ms,
            g->n_ops, g->n_values, (long long)g->n_params);
    for (int t = 0; t < NN_OP_COUNT; t++)
        if (counts[t]) fprintf(stderr, " %d:%d", t, counts[t]);
    fprintf(stderr, " ]\n");
    nn_graph_free(g);
    free_model(&m);
}

/* Compares an IR conv filter (OHWI, or [1,KH,KW,C*M] for depthwise) with the raw HWIO / HWCM
 * bytes of the .bin, element by element. */
static void check_filter(const model_files *m, const nn_graph *g, const char *node,
                         const char *weight, nn_op_type type) {
    const nn_op *op = op_for(g, node);
    assert_non_null(op);
    assert_int_equal(op->type, type);
    const nn_value *w = &g->values[op->in[1]];
    assert_string_equal(w->name, weight);
    size_t off;
    int64_t s[6];
    int ndim, f16;
    assert_int_equal(manifest_find(m->json, m->json_len, weight, &off, s, &ndim, &f16), 0);
    assert_int_equal(ndim, 4);
    const float *f = w->data;
    int64_t kh = s[0], kw = s[1], ci = s[2], co = s[3];
    if (type == NN_OP_CONV2D) {
        assert_int_equal(w->shape.d[0], co);
        assert_int_equal(w->shape.d[1], kh);
        assert_int_equal(w->shape.d[2], kw);
        assert_int_equal(w->shape.d[3], ci);
        for (int64_t y = 0; y < kh; y++)
            for (int64_t x = 0; x < kw; x++)
                for (int64_t i = 0; i < ci; i++)
                    for (int64_t o = 0; o < co; o++) {
                        float want = raw_elem(m->bin, off, f16, (size_t)(((y * kw + x) * ci + i) * co + o));
                        float got = f[((o * kh + y) * kw + x) * ci + i];
                        assert_memory_equal(&got, &want, sizeof got);
                    }
    } else {
        assert_int_equal(w->shape.d[0], 1);
        assert_int_equal(w->shape.d[1], kh);
        assert_int_equal(w->shape.d[2], kw);
        assert_int_equal(w->shape.d[3], ci * co);
        assert_int_equal(op->p.conv.depth_multiplier, co);
        for (int64_t i = 0; i < kh * kw * ci * co; i++) {
            float want = raw_elem(m->bin, off, f16, (size_t)i);
            assert_memory_equal(&f[i], &want, sizeof want);
        }
    }
}

static void test_filter_layouts(void **state) {
    (void)state;
    model_files m;
    nn_graph *g = NULL;
    char err[512];

    /* facemesh: fp16 weights, PReLU-fused strided conv, a depthwise conv */
    REQUIRE_MODEL("facemesh", &m);
    assert_int_equal(nn_load_tfjs(m.json, m.json_len, m.bin, m.bin_len, &g, err, sizeof err), FP_OK);
    const char *c1 = "StatefulPartitionedCall/model_1/batch_normalization_1/FusedBatchNormV3";
    check_filter(&m, g, c1, "StatefulPartitionedCall/model_1/conv2d_1/Conv2D_weights", NN_OP_CONV2D);
    const nn_op *op = op_for(g, c1);
    assert_int_equal(op->p.conv.act, NN_ACT_PRELU);
    assert_int_equal(op->n_in, 4);
    assert_string_equal(g->values[op->in[2]].name,
                        "StatefulPartitionedCall/model_1/conv2d_1/Conv2D_bn_offset");
    assert_string_equal(g->values[op->in[3]].name, "StatefulPartitionedCall/model_1/p_re_lu_1/Neg");
    assert_int_equal(op->p.conv.sh, 2);
    assert_int_equal(op->p.conv.sw, 2);
    assert_int_equal(op->p.conv.padding, NN_PAD_SAME);
    check_filter(&m, g, "StatefulPartitionedCall/model_1/depthwise_conv2d_1/depthwise",
                 "StatefulPartitionedCall/model_1/depthwise_conv2d_1/depthwise/ReadVariableOp",
                 NN_OP_DWCONV2D);
    /* the PReLU alpha keeps its file shape; the planner broadcasts it */
    const nn_value *alpha = &g->values[op->in[3]];
    assert_int_equal(alpha->shape.ndim, 3);
    nn_graph_free(g);
    free_model(&m);

    /* iris: fp32 weights */
    REQUIRE_MODEL("iris", &m);
    assert_int_equal(nn_load_tfjs(m.json, m.json_len, m.bin, m.bin_len, &g, err, sizeof err), FP_OK);
    int checked = 0;
    for (int i = 0; i < g->n_ops && checked < 3; i++) {
        const nn_op *o = &g->ops[i];
        if (o->type != NN_OP_CONV2D && o->type != NN_OP_DWCONV2D) continue;
        char node[512], weight[512];
        snprintf(node, sizeof node, "%s", g->values[o->out[0]].name);
        snprintf(weight, sizeof weight, "%s", g->values[o->in[1]].name);
        check_filter(&m, g, node, weight, o->type);
        checked++;
    }
    assert_int_equal(checked, 3);
    nn_graph_free(g);
    free_model(&m);

    /* faceres: plain Conv2D has no bias; FC weights [K,N] become [N,K] */
    REQUIRE_MODEL("faceres", &m);
    assert_int_equal(nn_load_tfjs(m.json, m.json_len, m.bin, m.bin_len, &g, err, sizeof err), FP_OK);
    op = op_for(g, "conv1_bn/batchnorm_1/mul_1");
    assert_non_null(op);
    assert_int_equal(op->type, NN_OP_CONV2D);
    assert_int_equal(op->in[2], -1);
    assert_int_equal(op->p.conv.act, NN_ACT_NONE);
    op = op_for(g, "feats/Relu");
    assert_non_null(op);
    assert_int_equal(op->type, NN_OP_FC);
    assert_int_equal(op->p.fc.act, NN_ACT_RELU);
    const nn_value *w = &g->values[op->in[1]];
    size_t off;
    int64_t s[6];
    int ndim, f16;
    assert_int_equal(manifest_find(m.json, m.json_len, "feats/kernel", &off, s, &ndim, &f16), 0);
    assert_int_equal(w->shape.d[0], s[1]);
    assert_int_equal(w->shape.d[1], s[0]);
    const float *f = w->data;
    for (int64_t k = 0; k < s[0]; k += 7)
        for (int64_t n = 0; n < s[1]; n += 3) {
            float want = raw_elem(m.bin, off, f16, (size_t)(k * s[1] + n));
            assert_memory_equal(&f[n * s[0] + k], &want, sizeof want);
        }
    op = op_for(g, "global_pooling/Mean");
    assert_int_equal(op->type, NN_OP_MEAN);
    assert_int_equal(op->p.keep_dims, 0);
    nn_graph_free(g);
    free_model(&m);

    /* facemesh-detection-full: depthwise with bias, resize flags, depth-to-space */
    REQUIRE_MODEL("facemesh-detection-full", &m);
    assert_int_equal(nn_load_tfjs(m.json, m.json_len, m.bin, m.bin_len, &g, err, sizeof err), FP_OK);
    op = op_for(g, "StatefulPartitionedCall/model/up_sampling2d/resize/ResizeBilinear");
    assert_non_null(op);
    assert_int_equal(op->p.resize.half_pixel, 1);
    assert_int_equal(op->p.resize.align_corners, 0);
    op = op_for(g, "StatefulPartitionedCall/model/d2sp_classifier_face_4/d2sp_classifier_face_4");
    assert_non_null(op);
    assert_int_equal(op->p.block, 2);
    op = op_for(g, "StatefulPartitionedCall/model/depthwise_conv2d_40/depthwise");
    assert_int_equal(op->type, NN_OP_DWCONV2D);
    assert_true(op->in[2] >= 0);
    assert_int_equal(op->p.conv.sh, 2);
    nn_graph_free(g);
    free_model(&m);
}

/* Every 4099th truncation of each .bin, and one byte too many, fail cleanly. */
static void test_truncated_bins(void **state) {
    (void)state;
    int any = 0;
    for (size_t k = 0; k < sizeof models / sizeof models[0]; k++) {
        model_files m;
        if (read_model(models[k].name, &m) != 0) {
            free_model(&m);
            continue;
        }
        any = 1;
        char err[512];
        for (size_t len = 0; len < m.bin_len; len += 4099) {
            nn_graph *g = (nn_graph *)1;
            err[0] = 0;
            fp_status st = nn_load_tfjs(m.json, m.json_len, m.bin, len, &g, err, sizeof err);
            assert_int_equal(st, FP_ERR_FORMAT);
            assert_null(g);
            assert_non_null(strstr(err, "weight"));
        }
        uint8_t *longer = malloc(m.bin_len + 1);
        memcpy(longer, m.bin, m.bin_len);
        longer[m.bin_len] = 0;
        nn_graph *g = NULL;
        assert_int_equal(nn_load_tfjs(m.json, m.json_len, longer, m.bin_len + 1, &g, err, sizeof err),
                         FP_ERR_FORMAT);
        assert_non_null(strstr(err, "bytes"));
        free(longer);
        free_model(&m);
    }
    TU_REQUIRE(any ? "" : NULL, "TF.js models");
}

/* ---------------------------------------------------------------------------------------------- */
/* Synthetic model                                                                                 */
/* ---------------------------------------------------------------------------------------------- */
/* Written with ' for " to stay readable; json_of() swaps them. Placeholder x [-1,4,4,2] ->
 * _FusedConv2D (w fp32 [3,3,2,3], b fp16 [3]) -> Relu -> Identity "out", listed out of order. */
static const char synth_template[] =
    "{'format':'graph-model','generatedBy':'test',"
    "'signature':{'inputs':{'x:0':{'name':'x:0','dtype':'DT_FLOAT'}},"
    "'outputs':{'y':{'name':'out:0','dtype':'DT_FLOAT'}}},"
    "'modelTopology':{'node':["
    "{'name':'out','op':'Identity','input':['relu'],'attr':{'T':{'type':'DT_FLOAT'}}},"
    "{'name':'x','op':'Placeholder','attr':{'dtype':{'type':'DT_FLOAT'},"
    "'shape':{'shape':{'dim':[{'size':'-1'},{'size':'4'},{'size':'4'},{'size':'2'}]}}}},"
    "{'name':'w','op':'Const','attr':{'dtype':{'type':'DT_FLOAT'},'value':{'tensor':{"
    "'dtype':'DT_FLOAT','tensorShape':{'dim':[{'size':'3'},{'size':'3'},{'size':'2'},{'size':'3'}]}}}}},"
    "{'name':'b','op':'Const','attr':{'dtype':{'type':'DT_FLOAT'}}},"
    "{'name':'conv','op':'_FusedConv2D','input':['x','w','b','^x'],'attr':{"
    "'T':{'type':'DT_FLOAT'},'strides':{'list':{'i':['1','1','1','1']}},"
    "'dilations':{'list':{'i':['1','1','1','1']}},'padding':{'s':'U0FNRQ=='},"
    "'explicit_paddings':{'list':{}},'data_format':{'s':'TkhXQw=='},"
    "'fused_ops':{'list':{'s':['Qmlhc0FkZA==']}},'num_args':{'i':'1'},'epsilon':{'f':0}}},"
    "{'name':'relu','op':'Relu','input':['conv:0'],'attr':{'T':{'type':'DT_FLOAT'}}}"
    "],'versions':{'producer':1}},"
    "'weightsManifest':[{'paths':['m.bin'],'weights':["
    "{'name':'w','shape':[3,3,2,3],'dtype':'float32'},"
    "{'name':'b','shape':[3],'dtype':'float32','quantization':{'dtype':'float16','original_dtype':'float32'}}"
    "]}]}";

#define SYNTH_W 54
#define SYNTH_BYTES (SYNTH_W * 4 + 3 * 2)

static char *json_of(const char *tmpl) {
    char *s = strdup(tmpl);
    assert_non_null(s);
    for (char *p = s; *p; p++)
        if (*p == '\'') *p = '"';
    return s;
}

/* tmpl with the first occurrence of `from` replaced (both in ' notation); fails if absent. */
static char *subst(const char *tmpl, const char *from, const char *to) {
    const char *at = strstr(tmpl, from);
    if (!at) fprintf(stderr, "subst: '%s' not in template\n", from);
    assert_non_null(at);
    size_t a = (size_t)(at - tmpl), lf = strlen(from), lt = strlen(to), lr = strlen(at + lf);
    char *s = malloc(a + lt + lr + 1);
    assert_non_null(s);
    memcpy(s, tmpl, a);
    memcpy(s + a, to, lt);
    memcpy(s + a + lt, at + lf, lr + 1);
    return s;
}

static uint8_t synth_bin[SYNTH_BYTES + 64];

static void make_synth_bin(void) {
    for (int i = 0; i < SYNTH_W; i++) {
        float f = (float)i * 0.25f - 3.0f;
        memcpy(synth_bin + 4 * i, &f, 4);
    }
    static const uint16_t b16[3] = {0x3c00 /* 1 */, 0xc000 /* -2 */, 0x3800 /* 0.5 */};
    for (int i = 0; i < 3; i++) {
        synth_bin[SYNTH_W * 4 + 2 * i] = (uint8_t)(b16[i] & 0xff);
        synth_bin[SYNTH_W * 4 + 2 * i + 1] = (uint8_t)(b16[i] >> 8);
    }
}

/* Loads a ' template with `wlen` bytes of the synthetic weights; returns the status. */
static fp_status load_tmpl(const char *tmpl, size_t wlen, nn_graph **g, char *err, size_t errlen) {
    char *json = json_of(tmpl);
    *g = NULL;
    fp_status st = nn_load_tfjs(json, strlen(json), synth_bin, wlen, g, err, errlen);
    free(json);
    if (st != FP_OK) assert_null(*g);
    return st;
}

/* Expects failure `want` with a message containing both needles (NULL = don't care). */
static void expect_fail(const char *tmpl, size_t wlen, fp_status want, const char *n1,
                        const char *n2) {
    nn_graph *g;
    char err[512] = "";
    fp_status st = load_tmpl(tmpl, wlen, &g, err, sizeof err);
    if (st != want || (n1 && !strstr(err, n1)) || (n2 && !strstr(err, n2)))
        fprintf(stderr, "got status %d, message: %s\n", (int)st, err);
    assert_int_equal(st, want);
    if (n1) assert_non_null(strstr(err, n1));
    if (n2) assert_non_null(strstr(err, n2));
    assert_non_null(strstr(fp_last_error(), err));
    nn_graph_free(g);
}

static void expect_subst_fail(const char *from, const char *to, fp_status want, const char *n1,
                              const char *n2) {
    char *t = subst(synth_template, from, to);
    expect_fail(t, SYNTH_BYTES, want, n1, n2);
    free(t);
}

static nn_graph *load_subst_ok(const char *from, const char *to, size_t wlen) {
    char *t = from ? subst(synth_template, from, to) : strdup(synth_template);
    nn_graph *g;
    char err[512] = "";
    fp_status st = load_tmpl(t, wlen, &g, err, sizeof err);
    if (st != FP_OK) fprintf(stderr, "unexpected failure: %s\n", err);
    assert_int_equal(st, FP_OK);
    free(t);
    assert_exec_order(g);
    return g;
}

static void test_synth_ok(void **state) {
    (void)state;
    nn_graph *g = load_subst_ok(NULL, NULL, SYNTH_BYTES);
    assert_int_equal(g->n_params, SYNTH_W + 3);
    assert_int_equal(g->n_ops, 3);
    assert_int_equal(g->ops[0].type, NN_OP_CONV2D);
    assert_int_equal(g->ops[1].type, NN_OP_RELU);
    assert_int_equal(g->ops[2].type, NN_OP_IDENTITY);
    assert_int_equal(g->n_outputs, 1);
    assert_string_equal(g->values[g->outputs[0]].name, "out");
    assert_string_equal(g->values[g->inputs[0]].name, "x");
    const nn_op *c = &g->ops[0];
    assert_int_equal(c->n_in, 3);
    assert_int_equal(c->p.conv.kh, 3);
    assert_int_equal(c->p.conv.kw, 3);
    assert_int_equal(c->p.conv.sh, 1);
    assert_int_equal(c->p.conv.padding, NN_PAD_SAME);
    assert_int_equal(c->p.conv.act, NN_ACT_NONE);
    const nn_value *w = &g->values[c->in[1]];
    const int64_t ws[4] = {3, 3, 3, 2};
    for (int i = 0; i < 4; i++) assert_int_equal(w->shape.d[i], ws[i]);
    const float *f = w->data;
    for (int o = 0; o < 3; o++)
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 3; x++)
                for (int i = 0; i < 2; i++)
                    assert_true(f[((o * 3 + y) * 3 + x) * 2 + i] ==
                                (float)(((y * 3 + x) * 2 + i) * 3 + o) * 0.25f - 3.0f);
    const nn_value *b = &g->values[c->in[2]];
    assert_string_equal(b->name, "b");
    const float *bf = b->data;
    assert_true(bf[0] == 1.0f && bf[1] == -2.0f && bf[2] == 0.5f);
    nn_graph_free(g);

    /* no signature: outputs are the nodes nobody consumes */
    g = load_subst_ok("'signature'", "'signaturX'", SYNTH_BYTES);
    assert_int_equal(g->n_outputs, 1);
    assert_string_equal(g->values[g->outputs[0]].name, "out");
    nn_graph_free(g);

    /* outputs may name a node without ":0"; extra signature entries keep file order */
    g = load_subst_ok("'outputs':{'y':{'name':'out:0','dtype':'DT_FLOAT'}}",
                      "'outputs':{'z':{'name':'relu'},'y':{'name':'out:0'}}", SYNTH_BYTES);
    assert_int_equal(g->n_outputs, 2);
    assert_string_equal(g->values[g->outputs[0]].name, "relu");
    assert_string_equal(g->values[g->outputs[1]].name, "out");
    nn_graph_free(g);

    /* a declared batch of 2 */
    g = load_subst_ok("{'size':'-1'},{'size':'4'}", "{'size':'2'},{'size':'4'}", SYNTH_BYTES);
    assert_int_equal(g->decl_batch, 2);
    nn_graph_free(g);

    /* bad arguments */
    nn_graph *out = NULL;
    assert_int_equal(nn_load_tfjs(NULL, 0, NULL, 0, &out, NULL, 0), FP_ERR_INVALID_ARG);
    assert_int_equal(nn_load_tfjs("{}", 2, NULL, 5, &out, NULL, 0), FP_ERR_INVALID_ARG);
}

static void test_synth_fused_variants(void **state) {
    (void)state;
    const char *fused = "'fused_ops':{'list':{'s':['Qmlhc0FkZA==']}},'num_args':{'i':'1'}";
    /* BiasAdd + Relu */
    nn_graph *g = load_subst_ok(fused,
                                "'fused_ops':{'list':{'s':['Qmlhc0FkZA==','UmVsdQ==']}},"
                                "'num_args':{'i':'1'}",
                                SYNTH_BYTES);
    assert_int_equal(g->ops[0].p.conv.act, NN_ACT_RELU);
    nn_graph_free(g);
    /* BiasAdd + LeakyRelu with its alpha */
    g = load_subst_ok(fused,
                      "'fused_ops':{'list':{'s':['Qmlhc0FkZA==','TGVha3lSZWx1']}},"
                      "'num_args':{'i':'1'},'leakyrelu_alpha':{'f':0.125}",
                      SYNTH_BYTES);
    assert_int_equal(g->ops[0].p.conv.act, NN_ACT_LEAKY);
    assert_true(g->ops[0].p.conv.alpha == 0.125f);
    nn_graph_free(g);
    /* BiasAdd + Sigmoid: no fused form in the IR, a separate op keeps the node's name */
    g = load_subst_ok(fused,
                      "'fused_ops':{'list':{'s':['Qmlhc0FkZA==','U2lnbW9pZA==']}},"
                      "'num_args':{'i':'1'}",
                      SYNTH_BYTES);
    assert_int_equal(g->n_ops, 4);
    assert_int_equal(g->ops[0].type, NN_OP_CONV2D);
    assert_int_equal(g->ops[1].type, NN_OP_SIGMOID);
    assert_string_equal(g->values[g->ops[0].out[0]].name, "conv/pre");
    assert_string_equal(g->values[g->ops[1].out[0]].name, "conv");
    nn_graph_free(g);
    /* BiasAdd + Prelu: alpha is the 4th input (b reused as alpha here) */
    {
        char *t1 = subst(synth_template, fused,
                         "'fused_ops':{'list':{'s':['Qmlhc0FkZA==','UHJlbHU=']}},'num_args':{'i':'2'}");
        char *t2 = subst(t1, "'input':['x','w','b','^x']", "'input':['x','w','b','b']");
        nn_graph *gp;
        char err[256];
        assert_int_equal(load_tmpl(t2, SYNTH_BYTES, &gp, err, sizeof err), FP_OK);
        assert_int_equal(gp->ops[0].p.conv.act, NN_ACT_PRELU);
        assert_int_equal(gp->ops[0].n_in, 4);
        assert_string_equal(gp->values[gp->ops[0].in[3]].name, "b");
        nn_graph_free(gp);
        /* the wrong num_args for Prelu */
        char *t3 = subst(t2, "'num_args':{'i':'2'}", "'num_args':{'i':'1'}");
        expect_fail(t3, SYNTH_BYTES, FP_ERR_FORMAT, "'conv'", "num_args");
        free(t1);
        free(t2);
        free(t3);
    }
    /* EXPLICIT padding in NHWC order, dilations */
    {
        char *t1 = subst(synth_template, "'padding':{'s':'U0FNRQ=='},'explicit_paddings':{'list':{}}",
                         "'padding':{'s':'RVhQTElDSVQ='},"
                         "'explicit_paddings':{'list':{'i':['0','0','1','2','3','4','0','0']}}");
        char *t2 = subst(t1, "'dilations':{'list':{'i':['1','1','1','1']}}",
                         "'dilations':{'list':{'i':['1','2','3','1']}}");
        nn_graph *gp;
        char err[256];
        assert_int_equal(load_tmpl(t2, SYNTH_BYTES, &gp, err, sizeof err), FP_OK);
        const nn_conv_params *p = &gp->ops[0].p.conv;
        assert_int_equal(p->padding, NN_PAD_EXPLICIT);
        assert_true(p->pad_t == 1 && p->pad_b == 2 && p->pad_l == 3 && p->pad_r == 4);
        assert_true(p->dh == 2 && p->dw == 3);
        nn_graph_free(gp);
        free(t1);
        free(t2);
    }
    /* Plain Conv2D with no bias, then depthwise: [3,3,2,3] -> [1,3,3,6], multiplier 3 */
    {
        char *t1 = subst(synth_template, "'op':'_FusedConv2D','input':['x','w','b','^x']",
                         "'op':'DepthwiseConv2dNative','input':['x','w']");
        char *t2 = subst(t1, fused, "'use_cudnn_on_gpu':{'b':true}");
        nn_graph *gp;
        char err[256];
        assert_int_equal(load_tmpl(t2, SYNTH_BYTES, &gp, err, sizeof err), FP_OK);
        const nn_op *o = &gp->ops[0];
        assert_int_equal(o->type, NN_OP_DWCONV2D);
        assert_int_equal(o->in[2], -1);
        assert_int_equal(o->p.conv.depth_multiplier, 3);
        const nn_value *w = &gp->values[o->in[1]];
        const int64_t ws[4] = {1, 3, 3, 6};
        for (int i = 0; i < 4; i++) assert_int_equal(w->shape.d[i], ws[i]);
        for (int i = 0; i < SYNTH_W; i++)
            assert_true(((const float *)w->data)[i] == (float)i * 0.25f - 3.0f);
        nn_graph_free(gp);
        free(t1);
        free(t2);
    }
}

/* A MatMul graph: x [-1,6] -> MatMul(w) -> BiasAdd(b) -> Softmax, plus plan-time shape ops. */
static const char matmul_template[] =
    "{'modelTopology':{'node':["
    "{'name':'x','op':'Placeholder','attr':{'shape':{'shape':{'dim':[{'size':'-1'},{'size':'6'}]}}}},"
    "{'name':'w','op':'Const'},{'name':'b','op':'Const'},{'name':'k','op':'Const'},"
    "{'name':'mm','op':'MatMul','input':['x','w'],'attr':{'transpose_a':{'b':false},"
    "'transpose_b':{'b':false}}},"
    "{'name':'ba','op':'BiasAdd','input':['mm','b'],'attr':{'data_format':{'s':'TkhXQw=='}}},"
    "{'name':'sm','op':'Softmax','input':['ba']},"
    "{'name':'sh','op':'Shape','input':['sm'],'attr':{'out_type':{'type':'DT_INT32'}}},"
    "{'name':'ss','op':'StridedSlice','input':['sh','k','k','k'],'attr':{'begin_mask':{'i':'1'},"
    "'shrink_axis_mask':{'i':'2'}}},"
    "{'name':'pk','op':'Pack','input':['ss','ss'],'attr':{'axis':{'i':'-1'},'N':{'i':'2'}}},"
    "{'name':'ct','op':'Cast','input':['pk'],'attr':{'SrcT':{'type':'DT_INT32'},"
    "'DstT':{'type':'DT_FLOAT'}}},"
    "{'name':'cc','op':'ConcatV2','input':['sm','sm','k'],'attr':{'N':{'i':'2'}}},"
    "{'name':'lr','op':'LeakyRelu','input':['cc'],'attr':{'alpha':{'f':0.3}}}"
    "]},"
    "'weightsManifest':[{'paths':['a.bin','b.bin'],'weights':["
    "{'name':'w','shape':[6,4],'dtype':'float32'},"
    "{'name':'b','shape':[4],'dtype':'float32','quantization':{'dtype':'uint8','scale':0.5,'min':-1}},"
    "{'name':'k','shape':[],'dtype':'int32','quantization':{'dtype':'uint16','scale':1,'min':-2}}"
    "]}]}";

static void test_synth_matmul_and_misc(void **state) {
    (void)state;
    char *json = json_of(matmul_template);
    uint8_t bin[24 * 4 + 4 + 2];
    for (int i = 0; i < 24; i++) {
        float f = (float)i;
        memcpy(bin + 4 * i, &f, 4);
    }
    bin[96] = 0;
    bin[97] = 1;
    bin[98] = 2;
    bin[99] = 255;
    bin[100] = 1; /* k = 1 - 2 = -1 */
    bin[101] = 0;
    nn_graph *g = NULL;
    char err[256];
    fp_status st = nn_load_tfjs(json, strlen(json), bin, sizeof bin, &g, err, sizeof err);
    if (st != FP_OK) fprintf(stderr, "%s\n", err);
    assert_int_equal(st, FP_OK);
    assert_exec_order(g);
    const nn_op *fc = op_for(g, "mm");
    assert_int_equal(fc->type, NN_OP_FC);
    assert_int_equal(fc->in[2], -1);
    const nn_value *w = &g->values[fc->in[1]];
    assert_int_equal(w->shape.d[0], 4);
    assert_int_equal(w->shape.d[1], 6);
    for (int n = 0; n < 4; n++)
        for (int k = 0; k < 6; k++) assert_true(((float *)w->data)[n * 6 + k] == (float)(k * 4 + n));
    const nn_op *ba = op_for(g, "ba");
    assert_int_equal(ba->type, NN_OP_ADD);
    const float *bv = g->values[ba->in[1]].data;
    assert_true(bv[0] == -1.0f && bv[1] == -0.5f && bv[2] == 0.0f && bv[3] == 126.5f);
    assert_true(op_for(g, "sm")->p.softmax_beta == 1.0f);
    const nn_op *sh = op_for(g, "sh");
    assert_int_equal(g->values[sh->out[0]].dtype, NN_I32);
    const nn_op *ss = op_for(g, "ss");
    assert_int_equal(ss->type, NN_OP_STRIDED_SLICE);
    assert_int_equal(ss->n_in, 4);
    assert_int_equal(ss->p.slice.begin_mask, 1);
    assert_int_equal(ss->p.slice.shrink_axis_mask, 2);
    assert_int_equal(g->values[ss->out[0]].dtype, NN_I32);
    const nn_value *k = &g->values[ss->in[1]];
    assert_int_equal(k->dtype, NN_I32);
    assert_int_equal(k->shape.ndim, 0);
    assert_int_equal(*(const int32_t *)k->data, -1);
    assert_int_equal(op_for(g, "pk")->p.axis, -1);
    assert_int_equal(op_for(g, "ct")->p.cast_to, NN_F32);
    const nn_op *cc = op_for(g, "cc");
    assert_int_equal(cc->type, NN_OP_CONCAT);
    assert_int_equal(cc->n_in, 2);
    assert_int_equal(cc->p.axis, -1); /* negative axes are kept for the planner */
    assert_true(op_for(g, "lr")->p.leaky_alpha == 0.3f);
    /* no signature: the unconsumed computed nodes, in file order */
    assert_int_equal(g->n_outputs, 2);
    assert_string_equal(g->values[g->outputs[0]].name, "ct");
    assert_string_equal(g->values[g->outputs[1]].name, "lr");
    nn_graph_free(g);
    free(json);

    /* transpose_b: [N,K] is already the IR layout */
    char *t = subst(matmul_template, "'transpose_b':{'b':false}", "'transpose_b':{'b':true}");
    char *t2 = subst(t, "{'name':'w','shape':[6,4]", "{'name':'w','shape':[4,6]");
    json = json_of(t2);
    assert_int_equal(nn_load_tfjs(json, strlen(json), bin, sizeof bin, &g, err, sizeof err), FP_OK);
    w = &g->values[op_for(g, "mm")->in[1]];
    assert_int_equal(w->shape.d[0], 4);
    assert_int_equal(w->shape.d[1], 6);
    assert_true(((float *)w->data)[7] == 7.0f);
    nn_graph_free(g);
    free(json);
    free(t);
    free(t2);

    /* transpose_a is refused */
    t = subst(matmul_template, "'transpose_a':{'b':false}", "'transpose_a':{'b':true}");
    json = json_of(t);
    assert_int_equal(nn_load_tfjs(json, strlen(json), bin, sizeof bin, &g, err, sizeof err),
                     FP_ERR_UNSUPPORTED);
    assert_non_null(strstr(err, "'mm'"));
    free(json);
    free(t);
}

static void test_synth_shared_weights_and_padv2(void **state) {
    (void)state;
    /* a filter reached through an Identity, and a second conv sharing it: one OHWI copy */
    char *t1 = subst(synth_template, "'input':['x','w','b','^x']", "'input':['x','wid','b']");
    char *t2 = subst(t1, "{'name':'b','op':'Const'",
                     "{'name':'wid','op':'Identity','input':['w']},"
                     "{'name':'conv2','op':'Conv2D','input':['x','w'],'attr':{"
                     "'strides':{'list':{'i':['1','2','2','1']}},'padding':{'s':'VkFMSUQ='}}},"
                     "{'name':'b','op':'Const'");
    nn_graph *g;
    char err[256];
    assert_int_equal(load_tmpl(t2, SYNTH_BYTES, &g, err, sizeof err), FP_OK);
    assert_exec_order(g);
    const nn_op *c1 = op_for(g, "conv"), *c2 = op_for(g, "conv2");
    assert_non_null(c1);
    assert_non_null(c2);
    assert_int_equal(c1->in[1], c2->in[1]);
    assert_int_equal(g->values[c1->in[1]].shape.d[0], 3);
    assert_int_equal(c2->p.conv.sh, 2);
    assert_int_equal(c2->p.conv.padding, NN_PAD_VALID);
    assert_int_equal(c2->in[2], -1);
    nn_graph_free(g);
    free(t1);
    free(t2);

    static const char pad_template[] =
        "{'modelTopology':{'node':["
        "{'name':'x','op':'Placeholder','attr':{'shape':{'shape':{'dim':[{'size':'1'},{'size':'2'}]}}}},"
        "{'name':'p','op':'Const'},{'name':'z','op':'Const'},"
        "{'name':'pad','op':'PadV2','input':['x','p','z']}]},"
        "'weightsManifest':[{'paths':[],'weights':[{'name':'p','shape':[2,2],'dtype':'int32'},"
        "{'name':'z','shape':[],'dtype':'float32'}]}]}";
    char *json = json_of(pad_template);
    uint8_t bin[20] = {0};
    bin[4] = 1; /* paddings [[0,1],[0,0]] */
    assert_int_equal(nn_load_tfjs(json, strlen(json), bin, sizeof bin, &g, err, sizeof err), FP_OK);
    assert_int_equal(g->n_ops, 1);
    assert_int_equal(g->ops[0].type, NN_OP_PAD);
    assert_int_equal(g->ops[0].n_in, 2);
    assert_int_equal(g->decl_batch, 1);
    nn_graph_free(g);
    const float one = 1.5f;
    memcpy(bin + 16, &one, 4);
    assert_int_equal(nn_load_tfjs(json, strlen(json), bin, sizeof bin, &g, err, sizeof err),
                     FP_ERR_UNSUPPORTED);
    assert_non_null(strstr(err, "'pad'"));
    assert_non_null(strstr(err, "zero"));
    free(json);
}

static void test_synth_errors(void **state) {
    (void)state;
    /* missing node input */
    expect_subst_fail("'input':['conv:0']", "'input':['nope']", FP_ERR_FORMAT, "'relu'", "'nope'");
    /* output port that does not exist */
    expect_subst_fail("'input':['conv:0']", "'input':['conv:1']", FP_ERR_FORMAT, "'relu'", "conv:1");
    /* a cycle relu -> out -> relu */
    expect_subst_fail("'input':['conv:0']", "'input':['out']", FP_ERR_FORMAT, "cycle", NULL);
    /* self loop */
    expect_subst_fail("'input':['conv:0']", "'input':['relu']", FP_ERR_FORMAT, "'relu'", "cycle");
    /* unsupported op */
    expect_subst_fail("'op':'Relu'", "'op':'Elu'", FP_ERR_UNSUPPORTED, "'relu'", "Elu");
    /* NCHW */
    expect_subst_fail("'data_format':{'s':'TkhXQw=='}", "'data_format':{'s':'TkNIVw=='}",
                      FP_ERR_UNSUPPORTED, "'conv'", "NCHW");
    /* unsupported fused op */
    expect_subst_fail("'s':['Qmlhc0FkZA==']", "'s':['RnVzZWRCYXRjaE5vcm0=']", FP_ERR_UNSUPPORTED,
                      "'conv'", "FusedBatchNorm");
    /* num_args disagreeing with the inputs */
    expect_subst_fail("'num_args':{'i':'1'}", "'num_args':{'i':'3'}", FP_ERR_FORMAT, "'conv'",
                      "num_args");
    /* missing strides, bad strides, bad padding */
    expect_subst_fail("'strides':{'list':{'i':['1','1','1','1']}},", "", FP_ERR_FORMAT, "'conv'",
                      "strides");
    expect_subst_fail("'strides':{'list':{'i':['1','1','1','1']}}",
                      "'strides':{'list':{'i':['1','0','1','1']}}", FP_ERR_FORMAT, "'conv'",
                      "strides");
    expect_subst_fail("'strides':{'list':{'i':['1','1','1','1']}}",
                      "'strides':{'list':{'i':['1','1','1']}}", FP_ERR_FORMAT, "'conv'", "strides");
    expect_subst_fail("'padding':{'s':'U0FNRQ=='}", "'padding':{'s':'%%%'}", FP_ERR_FORMAT,
                      "'conv'", "padding");
    expect_subst_fail("'padding':{'s':'U0FNRQ=='}", "'padding':{'s':'RVhQTElDSVQ='}",
                      FP_ERR_FORMAT, "'conv'", "explicit_paddings");
    /* the filter is not a constant */
    expect_subst_fail("'input':['x','w','b','^x']", "'input':['x','x','b']", FP_ERR_UNSUPPORTED,
                      "'conv'", "constant");
    /* too few inputs */
    expect_subst_fail("'input':['x','w','b','^x']", "'input':['x','w']", FP_ERR_FORMAT, "'conv'",
                      "inputs");
    /* Const without a manifest entry, weight without a node is fine (counted as a param) */
    expect_subst_fail("{'name':'w','shape'", "{'name':'w2','shape'", FP_ERR_FORMAT, "'w'",
                      "weightsManifest");
    /* duplicate node and weight names */
    expect_subst_fail("{'name':'relu','op':'Relu'", "{'name':'conv','op':'Relu'", FP_ERR_FORMAT,
                      "'conv'", "duplicate");
    expect_subst_fail("{'name':'b','shape':[3]", "{'name':'w','shape':[3]", FP_ERR_FORMAT, "'w'",
                      "twice");
    /* signature pointing nowhere */
    expect_subst_fail("'name':'out:0'", "'name':'gone:0'", FP_ERR_FORMAT, "gone", NULL);
    expect_subst_fail("'name':'x:0'", "'name':'relu:0'", FP_ERR_FORMAT, "relu", "Placeholder");
    /* Placeholder of another dtype */
    expect_subst_fail("'dtype':{'type':'DT_FLOAT'},'shape'", "'dtype':{'type':'DT_INT32'},'shape'",
                      FP_ERR_UNSUPPORTED, "'x'", "DT_INT32");
    /* not a graph model / not an object / no nodes */
    expect_subst_fail("'format':'graph-model'", "'format':'layers-model'", FP_ERR_UNSUPPORTED,
                      "layers-model", NULL);
    expect_fail("[1,2,3]", 0, FP_ERR_FORMAT, "object", NULL);
    expect_fail("{'modelTopology':{'node':[]}}", 0, FP_ERR_FORMAT, "empty", NULL);
    expect_fail("{'modelTopology':{'node':{}}}", 0, FP_ERR_FORMAT, "node", NULL);
    expect_fail("{'modelTopology':{'node':[{'name':'c','op':'Const'}]}}", 0, FP_ERR_FORMAT, "'c'",
                NULL);
    expect_fail("{'modelTopology':{'node':[{'op':'Relu'}]}}", 0, FP_ERR_FORMAT, "name", NULL);
    expect_fail("{'modelTopology':{'node':[{'name':'p','op':'Placeholder'}]}}", 0, FP_ERR_FORMAT,
                "output", NULL);
    expect_fail("{'modelTopology':{'node':[{'name':'r','op':'Relu'}]}}", 0, FP_ERR_FORMAT, "'r'",
                "inputs");
}

static void test_synth_manifest(void **state) {
    (void)state;
    /* every truncation of the weights */
    for (size_t len = 0; len < SYNTH_BYTES; len++) {
        nn_graph *g;
        char err[512];
        assert_int_equal(load_tmpl(synth_template, len, &g, err, sizeof err), FP_ERR_FORMAT);
        assert_non_null(strstr(err, len < SYNTH_W * 4 ? "'w'" : "'b'"));
    }
    expect_fail(synth_template, SYNTH_BYTES + 1, FP_ERR_FORMAT, "222", "223");
    /* shapes disagreeing with the bytes, both ways */
    expect_subst_fail("'shape':[3,3,2,3]", "'shape':[3,3,2,4]", FP_ERR_FORMAT, "'w'", "truncated");
    expect_subst_fail("'shape':[3,3,2,3]", "'shape':[3,3,2,2]", FP_ERR_FORMAT, "150", "222");
    /* overflowing, negative, fractional, too many dims */
    expect_subst_fail("'shape':[3,3,2,3]", "'shape':[2147483647,2147483647,2147483647,2147483647]",
                      FP_ERR_FORMAT, "'w'", NULL);
    expect_subst_fail("'shape':[3,3,2,3]", "'shape':[4294967296,4294967296,1,0]", FP_ERR_FORMAT,
                      "'w'", NULL);
    expect_subst_fail("'shape':[3,3,2,3]", "'shape':[3,-3,2,3]", FP_ERR_FORMAT, "'w'", NULL);
    expect_subst_fail("'shape':[3,3,2,3]", "'shape':[3,3.5,2,3]", FP_ERR_FORMAT, "'w'", NULL);
    expect_subst_fail("'shape':[3,3,2,3]", "'shape':[1,1,1,1,1,1,1]", FP_ERR_FORMAT, "'w'", NULL);
    expect_subst_fail("'shape':[3,3,2,3]", "'shape':'3'", FP_ERR_FORMAT, "'w'", NULL);
    /* unknown dtypes */
    expect_subst_fail("'shape':[3,3,2,3],'dtype':'float32'", "'shape':[3,3,2,3],'dtype':'complex64'",
                      FP_ERR_UNSUPPORTED, "'w'", "complex64");
    expect_subst_fail("'shape':[3,3,2,3],'dtype':'float32'", "'shape':[3,3,2,3]",
                      FP_ERR_UNSUPPORTED, "'w'", "dtype");
    expect_subst_fail("'quantization':{'dtype':'float16'", "'quantization':{'dtype':'int4'",
                      FP_ERR_UNSUPPORTED, "'b'", "int4");
    expect_subst_fail("'quantization':{'dtype':'float16'", "'quantization':{'dtype':'uint8'",
                      FP_ERR_FORMAT, "'b'", "scale");
    expect_subst_fail("'weightsManifest':[{", "'weightsManifest':[{'weights':5},{", FP_ERR_FORMAT,
                      "weights", NULL);
    /* a zero-sized filter is refused when the conv needs it */
    {
        char *t1 = subst(synth_template, "'shape':[3,3,2,3]", "'shape':[3,3,0,3]");
        expect_fail(t1, 6, FP_ERR_FORMAT, "'conv'", "'w'");
        free(t1);
    }
}

/* Every strict prefix of the synthetic JSON is invalid; garbled bytes must never crash. */
static void test_synth_json_corruption(void **state) {
    (void)state;
    char *json = json_of(synth_template);
    size_t len = strlen(json);
    for (size_t cut = 0; cut < len; cut++) {
        nn_graph *g = (nn_graph *)1;
        char err[512] = "";
        fp_status st = nn_load_tfjs(json, cut, synth_bin, SYNTH_BYTES, &g, err, sizeof err);
        assert_int_equal(st, FP_ERR_FORMAT);
        assert_null(g);
        assert_true(err[0] != '\0');
    }
    static const char garble[] = {'"', '}', ']', '0', 'x', ':', ',', '\0', '\\', '9', '-', (char)0xff};
    char *copy = malloc(len);
    int ok = 0, bad = 0;
    for (size_t pos = 0; pos < len; pos++) {
        for (size_t k = 0; k < sizeof garble; k++) {
            memcpy(copy, json, len);
            copy[pos] = garble[k];
            nn_graph *g = NULL;
            char err[512] = "";
            fp_status st = nn_load_tfjs(copy, len, synth_bin, SYNTH_BYTES, &g, err, sizeof err);
            if (st == FP_OK) {
                assert_non_null(g);
                ok++;
            } else {
                assert_null(g);
                assert_true(err[0] != '\0');
                bad++;
            }
            nn_graph_free(g);
        }
    }
    fprintf(stderr, "garbled JSON: %d loaded, %d refused\n", ok, bad);
    assert_true(bad > 0);
    free(copy);
    free(json);
}

int main(void) {
    make_synth_bin();
    struct CMUnitTest tests[sizeof models / sizeof models[0] + 16];
    size_t n = 0;
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        struct CMUnitTest t = {models[i].name, test_model_loads, NULL, NULL, (void *)&models[i]};
        tests[n++] = t;
    }
    const struct CMUnitTest rest[] = {
        cmocka_unit_test(test_filter_layouts),
        cmocka_unit_test(test_truncated_bins),
        cmocka_unit_test(test_synth_ok),
        cmocka_unit_test(test_synth_fused_variants),
        cmocka_unit_test(test_synth_matmul_and_misc),
        cmocka_unit_test(test_synth_shared_weights_and_padv2),
        cmocka_unit_test(test_synth_errors),
        cmocka_unit_test(test_synth_manifest),
        cmocka_unit_test(test_synth_json_corruption),
    };
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) tests[n++] = rest[i];
    return _cmocka_run_group_tests("tfjs_loader", tests, n, NULL, NULL);
}
