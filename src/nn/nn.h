/*
 * nn.h - the tensor runtime's internal interface: graph IR, builder for the loaders, optimiser,
 * planner/executor and the kernel entry points.
 *
 * The runtime knows nothing of faces. A graph is a list of values (constants or computed tensors)
 * and a list of ops in execution order. Loaders (tflite.c, tfjs.c) translate a file into this IR
 * using the builder below and must normalise every op to the conventions documented on nn_op_type
 * (e.g. conv weights always OHWI, fully-connected weights always [out, in]); after that the
 * optimiser (optimize.c) folds constants, fuses bias/activations/PReLU patterns and pre-packs weights,
 * and the executor (exec.c) plans buffers for a batch size and runs the ops.
 *
 * Ownership: the graph owns every value's name and constant data. A loaded graph is immutable after
 * nn_graph_finalize() and is shared by many sessions (thread-safe reads only).
 */
#ifndef FP_NN_H
#define FP_NN_H

#include <stddef.h>
#include <stdint.h>

#include "facepay.h"

#define NN_MAX_DIMS FP_MAX_DIMS

/* ---------------------------------------------------------------------------------------------- */
/* Values                                                                                          */
/* ---------------------------------------------------------------------------------------------- */
typedef enum nn_dtype { NN_F32 = 0, NN_I32 = 1 } nn_dtype;

typedef struct nn_shape {
    int ndim;
    int64_t d[NN_MAX_DIMS];
} nn_shape;

/* A value is a tensor in the graph: either a constant (data != NULL, owned by the graph) or the
 * result of an op / a graph input (data == NULL; its buffer lives in a session).
 * For computed values `shape` is the shape at batch 1 as far as the loader knows it; the planner
 * recomputes every computed shape for the session's batch, so loaders may leave it ndim = 0. */
typedef struct nn_value {
    char *name;       /* from the file, for messages and lookup; never NULL after add_value */
    nn_dtype dtype;
    nn_shape shape;
    void *data;       /* constant contents (float or int32, row-major), or NULL */
    size_t nbytes;    /* size of data */
} nn_value;

/* ---------------------------------------------------------------------------------------------- */
/* Ops                                                                                             */
/* ---------------------------------------------------------------------------------------------- */
/* Input conventions (in[] indices into graph values; -1 = absent optional input):
 *  CONV2D       in: x [N,H,W,Cin], w [Cout,KH,KW,Cin] (OHWI), bias [Cout] or -1.     p.conv
 *  DWCONV2D     in: x [N,H,W,C],  w [1,KH,KW,C*mult],      bias [C*mult] or -1.      p.conv
 *  FC           in: x [..,K] (flattened to [N,K] with N = first dim), w [Nout,K], bias [Nout] or -1.
 *               out: [N,Nout].                                                           p.fc
 *  MAXPOOL/AVGPOOL  in: x.                                                               p.pool
 *               (AVGPOOL with SAME padding divides by the number of valid taps, as TF does.)
 *  ADD SUB MUL DIV MIN MAX  in: a, b with numpy broadcasting; out = act(a op b).          p.act
 *  RELU RELU6 ABS NEG SIGMOID TANH EXP SQRT RSQRT SQUARE  in: x.
 *  PRELU        in: x, alpha (broadcast against x's trailing dims).
 *  LEAKY_RELU   in: x.                                                                   p.leaky_alpha
 *  SOFTMAX      in: x; over the last axis, logits scaled by p.softmax_beta.
 *  PAD          in: x, paddings I32 [ndim,2] (constant or plan-time value); pads with 0.
 *  CONCAT       in: x0..xn-1.                                                           p.axis
 *  RESHAPE      in: x, shape I32 [k] (constant or plan-time value; one -1 allowed, inferred).
 *               A constant shape whose first entry equals the batch-1 batch is re-batched by the
 *               planner only if the loader wrote -1 there: loaders write -1 for the batch dim.
 *  MEAN         in: x, axes I32 [k].                                                     p.keep_dims
 *  RESIZE_BILINEAR in: x, size I32 [2] (new H, W).                     p.resize.{align_corners,half_pixel}
 *  DEPTH_TO_SPACE in: x.                                                                 p.block
 *  Plan-time I32 ops (evaluated while planning, because they only depend on shapes and constants):
 *  SHAPE        in: x -> I32 [ndim].
 *  STRIDED_SLICE in: x, begin, end, strides (I32 consts).  p.slice masks (TF semantics).
 *  PACK         in: scalars/tensors of equal shape -> stacked on p.axis.
 *  CAST         in: x -> p.cast_to (I32 <-> F32).
 *  IDENTITY     in: x (the optimiser removes it).
 *  Fused forms produced by the optimiser (loaders may also emit them directly): CONV2D, DWCONV2D
 *  and FC carry p.conv.act / p.fc.act; with NN_ACT_PRELU the alpha value is op->in[3].
 */
typedef enum nn_op_type {
    NN_OP_CONV2D,
    NN_OP_DWCONV2D,
    NN_OP_FC,
    NN_OP_MAXPOOL,
    NN_OP_AVGPOOL,
    NN_OP_ADD,
    NN_OP_SUB,
    NN_OP_MUL,
    NN_OP_DIV,
    NN_OP_MIN,
    NN_OP_MAX,
    NN_OP_RELU,
    NN_OP_RELU6,
    NN_OP_ABS,
    NN_OP_NEG,
    NN_OP_SIGMOID,
    NN_OP_TANH,
    NN_OP_EXP,
    NN_OP_SQRT,
    NN_OP_RSQRT,
    NN_OP_SQUARE,
    NN_OP_PRELU,
    NN_OP_LEAKY_RELU,
    NN_OP_SOFTMAX,
    NN_OP_PAD,
    NN_OP_CONCAT,
    NN_OP_RESHAPE,
    NN_OP_MEAN,
    NN_OP_RESIZE_BILINEAR,
    NN_OP_DEPTH_TO_SPACE,
    NN_OP_SHAPE,
    NN_OP_STRIDED_SLICE,
    NN_OP_PACK,
    NN_OP_CAST,
    NN_OP_IDENTITY,
    NN_OP_COUNT
} nn_op_type;

typedef enum nn_act {
    NN_ACT_NONE = 0,
    NN_ACT_RELU,
    NN_ACT_RELU6,
    NN_ACT_LEAKY, /* x < 0 ? alpha*x : x with p.*.alpha */
    NN_ACT_PRELU  /* per-channel alpha, value op->in[3] */
} nn_act;

typedef enum nn_padding {
    NN_PAD_VALID = 0,
    NN_PAD_SAME = 1,    /* TF SAME: total = max((ceil(in/s)-1)*s + (k-1)*d + 1 - in, 0); top = total/2 */
    NN_PAD_EXPLICIT = 2 /* pads[] below */
} nn_padding;

typedef struct nn_conv_params {
    int kh, kw;          /* kernel size (filled from the weight shape by the builder if 0) */
    int sh, sw;          /* strides */
    int dh, dw;          /* dilations (1 = none) */
    nn_padding padding;
    int pad_t, pad_b, pad_l, pad_r; /* for NN_PAD_EXPLICIT */
    int depth_multiplier;           /* DWCONV2D only */
    nn_act act;
    float alpha;                    /* NN_ACT_LEAKY */
} nn_conv_params;

typedef struct nn_pool_params {
    int kh, kw, sh, sw;
    nn_padding padding;
    nn_act act;
} nn_pool_params;

typedef struct nn_fc_params {
    nn_act act;
    float alpha;
    int keep_dims; /* TFLite keep_num_dims; otherwise output is [N, Nout] */
} nn_fc_params;

typedef struct nn_slice_params {
    int begin_mask, end_mask, ellipsis_mask, new_axis_mask, shrink_axis_mask;
} nn_slice_params;

typedef struct nn_resize_params {
    int align_corners, half_pixel;
} nn_resize_params;

typedef union nn_params {
    nn_conv_params conv;
    nn_pool_params pool;
    nn_fc_params fc;
    nn_slice_params slice;
    nn_resize_params resize;
    nn_act act;          /* element-wise binary ops: fused activation */
    float leaky_alpha;
    float softmax_beta;
    int axis;            /* CONCAT, PACK */
    int keep_dims;       /* MEAN */
    int block;           /* DEPTH_TO_SPACE */
    nn_dtype cast_to;    /* CAST */
} nn_params;

#define NN_MAX_OP_OUT 4

typedef struct nn_op {
    nn_op_type type;
    int n_in;
    int *in;                   /* n_in value indices (-1 = absent optional input); owned */
    int n_out;
    int out[NN_MAX_OP_OUT];
    nn_params p;
    void *packed;              /* kernel-specific pre-packed weights (set by nn_pack_op), owned */
    void (*packed_free)(void *);
    int64_t macs;              /* at batch 1, filled by the planner of the first session / info */
} nn_op;

typedef struct nn_graph {
    const char *format;        /* "tflite" / "tfjs" (static string) */
    nn_value *values;          /* n_values, growable */
    int n_values, cap_values;
    nn_op *ops;                /* in execution order */
    int n_ops, cap_ops;
    int *inputs, n_inputs;     /* graph inputs (F32 values without data) */
    int *outputs, n_outputs;   /* graph outputs in declared order */
    int decl_batch;            /* batch the file declares for input 0 (e.g. 2 for MobileFaceNet.tflite,
                                  1 usually). RESHAPE ops with a constant shape whose first entry equals
                                  it are re-batched by the planner; loaders keep file shapes as-is. */
    int64_t n_params;          /* weight values as stored in the file (before folding) */
    int64_t macs;              /* batch-1 MACs, computed at finalize */
} nn_graph;

/* ---------------------------------------------------------------------------------------------- */
/* Builder (used by loaders)                                                                       */
/* ---------------------------------------------------------------------------------------------- */
nn_graph *nn_graph_new(const char *format);
void nn_graph_free(nn_graph *g);

/* Adds a value; returns its index or -1 on allocation failure. `data` (may be NULL) is taken over
 * by the graph (must come from malloc). `shape` may be NULL (unknown: ndim = 0). */
int nn_graph_add_value(nn_graph *g, const char *name, nn_dtype dtype, const nn_shape *shape,
                       void *data, size_t nbytes);

/* Adds a constant with a copy of `data`. */
int nn_graph_add_const(nn_graph *g, const char *name, nn_dtype dtype, const nn_shape *shape,
                       const void *data);

/* Appends an op; `in` is copied. Returns the op (valid until the next add_op) or NULL. */
nn_op *nn_graph_add_op(nn_graph *g, nn_op_type type, const int *in, int n_in, const int *out,
                       int n_out);

int nn_graph_set_inputs(nn_graph *g, const int *idx, int n);
int nn_graph_set_outputs(nn_graph *g, const int *idx, int n);

/* Looks a value up by name (-1 if absent). Linear scan: for loaders and tests, not hot paths. */
int nn_graph_find(const nn_graph *g, const char *name);

/* Validates and prepares the graph: checks indices and that every op's inputs are produced before
 * it (ops are reordered topologically if needed), folds constant sub-graphs, fuses activations and
 * PReLU patterns, removes dead ops, infers batch-1 shapes, counts MACs and pre-packs weights.
 * On error returns a status and writes a message to err. */
fp_status nn_graph_finalize(nn_graph *g, char *err, size_t errlen);

/* ---------------------------------------------------------------------------------------------- */
/* Shapes                                                                                          */
/* ---------------------------------------------------------------------------------------------- */
int64_t nn_shape_count(const nn_shape *s);
const char *nn_op_name(nn_op_type t);
int nn_shape_eq(const nn_shape *a, const nn_shape *b);

/* Output shape of SAME/VALID/explicit padded windows; computes the leading pad. Returns -1 if the
 * result would be < 1. */
int nn_window_out(int in, int k, int stride, int dilation, nn_padding pad, int pad_lo_explicit,
                  int pad_hi_explicit, int *pad_lo);

/* Infers the output shapes of op `op` from the (already known) shapes of its inputs.
 * `in_shapes[i]` may be NULL for absent inputs; `in_data[i]` is the contents of I32 inputs when
 * known (constants or plan-time values), else NULL. For plan-time I32 ops, the output data is
 * computed too and returned in out_data[k] (malloc'ed, caller frees). */
fp_status nn_infer_op(const nn_op *op, const nn_shape *const *in_shapes, const nn_dtype *in_dtypes,
                      const void *const *in_data, nn_shape *out_shapes, nn_dtype *out_dtypes,
                      void **out_data, char *err, size_t errlen);

/* ---------------------------------------------------------------------------------------------- */
/* Kernels (kernels.c = portable scalar reference, kernels_avx2.c = AVX2/FMA, dispatched at run time) */
/* ---------------------------------------------------------------------------------------------- */
/* Everything the executor needs to run one op with concrete shapes. */
typedef struct nn_exec_ctx {
    const nn_op *op;
    const nn_graph *g;
    const float *const *in;      /* input buffers (F32) per op input; NULL for absent */
    const nn_shape *const *in_shape;
    float *out;                  /* out[0] buffer */
    const nn_shape *out_shape;
    float *scratch;              /* scratch space of nn_scratch_size() floats */
    int threads;                 /* how many threads this op may use */
} nn_exec_ctx;

/* Floats of scratch space an op needs for the given shapes (e.g. im2col). */
size_t nn_scratch_size(const nn_op *op, const nn_shape *const *in_shape, const nn_shape *out_shape);

/* Runs one F32 op. */
fp_status nn_run_op(const nn_exec_ctx *ctx);

/* Pre-packs constant weights of CONV2D / DWCONV2D / FC ops for the selected kernels. */
fp_status nn_pack_op(const nn_graph *g, nn_op *op);

/* Kernel set in use: "scalar" or "avx2+fma". FACEPAY_KERNELS=scalar in the environment forces the
 * portable path (used by tests to check both paths). */
const char *nn_kernel_name(void);

/* ---------------------------------------------------------------------------------------------- */
/* Executor                                                                                        */
/* ---------------------------------------------------------------------------------------------- */
typedef struct nn_session nn_session;

fp_status nn_session_new(const nn_graph *g, int batch, int threads, nn_session **out, char *err,
                         size_t errlen);
void nn_session_free(nn_session *s);
float *nn_session_input(nn_session *s, int i, nn_shape *shape);
const float *nn_session_output(const nn_session *s, int i, nn_shape *shape);
fp_status nn_session_run(nn_session *s, char *err, size_t errlen);

/* Plans the graph at batch 1 without buffers: validates every shape and fills op_macs_out[n_ops]
 * (may be NULL). Used by nn_graph_finalize. */
fp_status nn_plan_check(const nn_graph *g, int64_t *op_macs_out, char *err, size_t errlen);

/* ---------------------------------------------------------------------------------------------- */
/* Loaders                                                                                         */
/* ---------------------------------------------------------------------------------------------- */
/* Parse a TFLite flatbuffer (buffer is not retained). Every offset, size and index is validated. */
fp_status nn_load_tflite(const void *buf, size_t len, nn_graph **out, char *err, size_t errlen);

/* Parse a TF.js graph model: model.json text + the concatenated weight shards in manifest order. */
fp_status nn_load_tfjs(const char *json, size_t json_len, const void *weights, size_t weights_len,
                       nn_graph **out, char *err, size_t errlen);

/* fp16 -> fp32 (IEEE half, incl. subnormals, inf, nan). */
float nn_half_to_float(uint16_t h);

#endif /* FP_NN_H */
