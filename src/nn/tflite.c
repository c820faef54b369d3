/*
 * tflite.c - the TFLite loader: a small bounds-checked flatbuffer reader and the translation of a
 * float TFLite model (one subgraph) into the graph IR of nn.h, plus nn_half_to_float.
 *
 * Model files are untrusted input. Loading runs in two phases so that damage is always reported
 * as FP_ERR_FORMAT rather than as a misleading "unsupported":
 *   1. parse: every table, vector, string and buffer the loader uses is located and validated
 *      against the file length (and a read budget proportional to it), and the index structure
 *      of the subgraph is checked (tensor indices, one producer per tensor, ...);
 *   2. build: tensors become values and operators become IR ops; anything valid but outside what
 *      the runtime implements (quantized tensors, unknown ops, ...) is FP_ERR_UNSUPPORTED.
 * Every allocation is bounded by the file size (element counts are capped and checked against the
 * buffers that hold them), and every loop by a vector length that was checked against the file.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "nn/nn.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tflite.c copies little-endian tensor data as is; add byte swapping for big-endian hosts"
#endif

/* Limits far above any real model (the face models have < 1000 tensors, < 600 ops and no tensor
 * above 2^21 elements) that keep a hostile file from making us allocate per-entry state for
 * millions of entries or describe tensors no session could ever hold. */
#define TFL_MAX_TENSORS (1 << 18)
#define TFL_MAX_OPS (1 << 18)
#define TFL_MAX_OP_IO 4096
#define TFL_MAX_ELEMS ((int64_t)1 << 28)
#define TFL_MAX_FILE ((size_t)1 << 40)

/* TensorType */
enum {
    TT_FLOAT32 = 0, TT_FLOAT16 = 1, TT_INT32 = 2, TT_UINT8 = 3, TT_INT64 = 4, TT_STRING = 5,
    TT_BOOL = 6, TT_INT16 = 7, TT_COMPLEX64 = 8, TT_INT8 = 9, TT_FLOAT64 = 10, TT_COMPLEX128 = 11,
    TT_UINT64 = 12, TT_RESOURCE = 13, TT_VARIANT = 14, TT_UINT32 = 15, TT_UINT16 = 16, TT_INT4 = 17
};

/* BuiltinOperator codes this loader maps (the rest are only named in messages). */
enum {
    OP_ADD = 0, OP_AVERAGE_POOL_2D = 1, OP_CONCATENATION = 2, OP_CONV_2D = 3,
    OP_DEPTHWISE_CONV_2D = 4, OP_DEPTH_TO_SPACE = 5, OP_DEQUANTIZE = 6, OP_FULLY_CONNECTED = 9,
    OP_LOGISTIC = 14, OP_MAX_POOL_2D = 17, OP_MUL = 18, OP_RELU = 19, OP_RELU6 = 21,
    OP_RESHAPE = 22, OP_RESIZE_BILINEAR = 23, OP_SOFTMAX = 25, OP_TANH = 28, OP_CUSTOM = 32,
    OP_PAD = 34, OP_MEAN = 40, OP_SUB = 41, OP_DIV = 42, OP_STRIDED_SLICE = 45, OP_EXP = 47,
    OP_CAST = 53, OP_PRELU = 54, OP_MAXIMUM = 55, OP_MINIMUM = 57, OP_NEG = 59, OP_PADV2 = 60,
    OP_SQRT = 75, OP_RSQRT = 76, OP_SHAPE = 77, OP_PACK = 83, OP_SQUARE = 92, OP_LEAKY_RELU = 98,
    OP_ABS = 101
};

/* BuiltinOptions union tags of the options tables read here. */
enum {
    BO_CONV2D = 1, BO_DWCONV2D = 2, BO_POOL2D = 5, BO_FC = 8, BO_SOFTMAX = 9, BO_CONCAT = 10,
    BO_ADD = 11, BO_RESIZE_BILINEAR = 15, BO_RESHAPE = 17, BO_MUL = 21, BO_REDUCER = 27,
    BO_SUB = 28, BO_DIV = 29, BO_STRIDED_SLICE = 32, BO_PACK = 59, BO_LEAKY_RELU = 75,
    BO_DEPTH_TO_SPACE = 94
};

static const char *const op_names[] = {
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE",
    "DEQUANTIZE", "EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED", "HASHTABLE_LOOKUP",
    "L2_NORMALIZATION", "L2_POOL_2D", "LOCAL_RESPONSE_NORMALIZATION", "LOGISTIC", "LSH_PROJECTION",
    "LSTM", "MAX_POOL_2D", "MUL", "RELU", "RELU_N1_TO_1", "RELU6", "RESHAPE", "RESIZE_BILINEAR",
    "RNN", "SOFTMAX", "SPACE_TO_DEPTH", "SVDF", "TANH", "CONCAT_EMBEDDINGS", "SKIP_GRAM", "CALL",
    "CUSTOM", "EMBEDDING_LOOKUP_SPARSE", "PAD", "UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER",
    "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "TRANSPOSE", "MEAN", "SUB", "DIV", "SQUEEZE",
    "UNIDIRECTIONAL_SEQUENCE_LSTM", "STRIDED_SLICE", "BIDIRECTIONAL_SEQUENCE_RNN", "EXP", "TOPK_V2",
    "SPLIT", "LOG_SOFTMAX", "DELEGATE", "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST", "PRELU", "MAXIMUM",
    "ARG_MAX", "MINIMUM", "LESS", "NEG", "PADV2", "GREATER", "GREATER_EQUAL", "LESS_EQUAL",
    "SELECT", "SLICE", "SIN", "TRANSPOSE_CONV", "SPARSE_TO_DENSE", "TILE", "EXPAND_DIMS", "EQUAL",
    "NOT_EQUAL", "LOG", "SUM", "SQRT", "RSQRT", "SHAPE", "POW", "ARG_MIN", "FAKE_QUANT",
    "REDUCE_PROD", "REDUCE_MAX", "PACK", "LOGICAL_OR", "ONE_HOT", "LOGICAL_AND", "LOGICAL_NOT",
    "UNPACK", "REDUCE_MIN", "FLOOR_DIV", "REDUCE_ANY", "SQUARE", "ZEROS_LIKE", "FILL", "FLOOR_MOD",
    "RANGE", "RESIZE_NEAREST_NEIGHBOR", "LEAKY_RELU", "SQUARED_DIFFERENCE", "MIRROR_PAD", "ABS",
    "SPLIT_V", "UNIQUE", "CEIL", "REVERSE_V2", "ADD_N", "GATHER_ND", "COS", "WHERE", "RANK", "ELU",
    "REVERSE_SEQUENCE", "MATRIX_DIAG", "QUANTIZE", "MATRIX_SET_DIAG", "ROUND", "HARD_SWISH", "IF",
    "WHILE", "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5", "SCATTER_ND", "SELECT_V2",
    "DENSIFY", "SEGMENT_SUM", "BATCH_MATMUL", "PLACEHOLDER_FOR_GREATER_OP_CODES", "CUMSUM",
    "CALL_ONCE", "BROADCAST_TO", "RFFT2D", "CONV_3D", "IMAG", "REAL", "COMPLEX_ABS", "HASHTABLE",
    "HASHTABLE_FIND", "HASHTABLE_IMPORT", "HASHTABLE_SIZE", "REDUCE_ALL", "CONV_3D_TRANSPOSE",
    "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "BROADCAST_ARGS", "RANDOM_STANDARD_NORMAL",
    "BUCKETIZE", "RANDOM_UNIFORM", "MULTINOMIAL", "GELU", "DYNAMIC_UPDATE_SLICE", "RELU_0_TO_1",
    "UNSORTED_SEGMENT_PROD", "UNSORTED_SEGMENT_MAX", "UNSORTED_SEGMENT_SUM", "ATAN2",
    "UNSORTED_SEGMENT_MIN", "SIGN", "BITCAST", "BITWISE_XOR", "RIGHT_SHIFT"
};

static const char *const type_names[] = {
    "FLOAT32", "FLOAT16", "INT32", "UINT8", "INT64", "STRING", "BOOL", "INT16", "COMPLEX64",
    "INT8", "FLOAT64", "COMPLEX128", "UINT64", "RESOURCE", "VARIANT", "UINT32", "UINT16", "INT4"
};

static const char *op_name(int code) {
    if (code >= 0 && code < (int)(sizeof op_names / sizeof op_names[0])) return op_names[code];
    return "?";
}

static const char *type_name(int type) {
    if (type >= 0 && type < (int)(sizeof type_names / sizeof type_names[0]))
        return type_names[type];
    return "unknown type";
}

/* Bytes per element of a dense tensor of `type`, 0 when its size is not fixed or not known. */
static int type_size(int type) {
    switch (type) {
    case TT_FLOAT32: case TT_INT32: case TT_UINT32: return 4;
    case TT_FLOAT16: case TT_INT16: case TT_UINT16: return 2;
    case TT_UINT8: case TT_INT8: case TT_BOOL: return 1;
    case TT_INT64: case TT_FLOAT64: case TT_COMPLEX64: case TT_UINT64: return 8;
    case TT_COMPLEX128: return 16;
    default: return 0;
    }
}

float nn_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {
            /* Subnormal half: shift the mantissa up until its implicit bit appears; every value
             * is a normal float32. */
            uint32_t e = 0;
            while (!(man & 0x400u)) {
                man <<= 1;
                e++;
            }
            bits = sign | ((113u - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13); /* inf, or nan keeping its payload */
    } else {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ---------------------------------------------------------------------------------------------- */
/* Bounds-checked flatbuffer reader                                                               */
/* ---------------------------------------------------------------------------------------------- */
/* Errors are sticky: the first failure wins and later reads return defaults, so parsing code can
 * read several fields and check the status once. */
typedef struct rd {
    const uint8_t *p;
    size_t len;
    fp_status st;
    char msg[320];
    /* Bytes of vectors and strings we may still read. A valid file reads each byte about once;
     * shared (aliased) vectors could otherwise make the work and the copies quadratic. */
    uint64_t budget;
} rd;

static void failv(rd *r, fp_status st, const char *fmt, va_list ap) {
    if (r->st != FP_OK) return;
    r->st = st;
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
}

static int bad(rd *r, const char *fmt, ...) FP_PRINTF(2, 3);
static int bad(rd *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    failv(r, FP_ERR_FORMAT, fmt, ap);
    va_end(ap);
    return 0;
}

static uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t ld32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t ld64(const uint8_t *p) { return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32; }
static int32_t ldi32(const uint8_t *p) {
    uint32_t u = ld32(p);
    int32_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}
static int64_t ldi64(const uint8_t *p) {
    uint64_t u = ld64(p);
    int64_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

typedef struct fbt {
    size_t pos;       /* table start (where its soffset to the vtable is) */
    size_t vt;        /* vtable start */
    uint32_t vsize;   /* vtable bytes */
    uint32_t tsize;   /* table bytes, starting at pos */
} fbt;

typedef struct fbv {
    size_t base;      /* first element */
    uint32_t n;
} fbv;

static int spend(rd *r, uint64_t bytes) {
    if (bytes > r->budget)
        return bad(r, "file references more data than it holds (aliased vectors?)");
    r->budget -= bytes;
    return 1;
}

static int fb_table(rd *r, uint64_t pos, fbt *t, const char *what) {
    memset(t, 0, sizeof *t);
    if (pos > r->len - 4) return bad(r, "%s: table offset %llu outside the file", what,
                                     (unsigned long long)pos);
    int64_t vt = (int64_t)pos - ldi32(r->p + pos);
    if (vt < 0 || (uint64_t)vt > r->len - 4)
        return bad(r, "%s: vtable of table at %llu outside the file", what,
                   (unsigned long long)pos);
    uint32_t vsize = ld16(r->p + vt), tsize = ld16(r->p + vt + 2);
    if (vsize < 4 || (vsize & 1) || vsize > r->len - (uint64_t)vt)
        return bad(r, "%s: bad vtable size %u at %lld", what, (unsigned)vsize, (long long)vt);
    if (tsize < 4 || tsize > r->len - pos)
        return bad(r, "%s: table at %llu (%u bytes) runs past the end of the file", what,
                   (unsigned long long)pos, (unsigned)tsize);
    t->pos = (size_t)pos;
    t->vt = (size_t)vt;
    t->vsize = vsize;
    t->tsize = tsize;
    return 1;
}

/* Position of field `id` (of `sz` bytes) or 0 when absent: 0 can never be a field position since
 * the file starts with the root offset. A field must lie inside its table. */
static size_t fb_field(rd *r, const fbt *t, int id, uint32_t sz) {
    if (!t->tsize) return 0; /* table that failed to parse */
    uint32_t vo = 4u + 2u * (uint32_t)id;
    if (vo + 2 > t->vsize) return 0;
    uint32_t fo = ld16(r->p + t->vt + vo);
    if (!fo) return 0;
    if (fo < 4 || fo + sz > t->tsize) {
        bad(r, "field %d of the table at %zu lies outside that table", id, t->pos);
        return 0;
    }
    return t->pos + fo;
}

static int fb_has(rd *r, const fbt *t, int id) { return fb_field(r, t, id, 1) != 0; }

static uint8_t fb_u8(rd *r, const fbt *t, int id, uint8_t def) {
    size_t p = fb_field(r, t, id, 1);
    return p ? r->p[p] : def;
}

static int8_t fb_i8(rd *r, const fbt *t, int id, int8_t def) {
    size_t p = fb_field(r, t, id, 1);
    return p ? (int8_t)(r->p[p] >= 128 ? (int)r->p[p] - 256 : (int)r->p[p]) : def;
}

static uint32_t fb_u32(rd *r, const fbt *t, int id, uint32_t def) {
    size_t p = fb_field(r, t, id, 4);
    return p ? ld32(r->p + p) : def;
}

static int32_t fb_i32(rd *r, const fbt *t, int id, int32_t def) {
    size_t p = fb_field(r, t, id, 4);
    return p ? ldi32(r->p + p) : def;
}

static uint64_t fb_u64(rd *r, const fbt *t, int id, uint64_t def) {
    size_t p = fb_field(r, t, id, 8);
    return p ? ld64(r->p + p) : def;
}

static float fb_f32(rd *r, const fbt *t, int id, float def) {
    size_t p = fb_field(r, t, id, 4);
    if (!p) return def;
    uint32_t u = ld32(r->p + p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Target of the uoffset in field `id`, or 0 when absent. Leaves room for a length word. */
static size_t fb_ref(rd *r, const fbt *t, int id, const char *what) {
    size_t p = fb_field(r, t, id, 4);
    if (!p) return 0;
    uint64_t tgt = (uint64_t)p + ld32(r->p + p);
    if (tgt > r->len - 4) {
        bad(r, "%s: offset at %zu points outside the file", what, p);
        return 0;
    }
    return (size_t)tgt;
}

/* Vector (or string, esz 1) in field `id`; absent gives n = 0. Returns 0 only on error. */
static int fb_vec(rd *r, const fbt *t, int id, uint32_t esz, fbv *v, const char *what) {
    v->base = 0;
    v->n = 0;
    size_t tgt = fb_ref(r, t, id, what);
    if (!tgt) return r->st == FP_OK;
    uint32_t n = ld32(r->p + tgt);
    uint64_t bytes = (uint64_t)n * esz;
    if (bytes > r->len - tgt - 4)
        return bad(r, "%s: vector of %u elements at %zu runs past the end of the file", what,
                   (unsigned)n, tgt);
    if (!spend(r, bytes)) return 0;
    v->base = tgt + 4;
    v->n = n;
    return 1;
}

static int fb_vec_table(rd *r, const fbv *v, uint32_t i, fbt *t, const char *what) {
    size_t p = v->base + (size_t)4 * i;
    return fb_table(r, (uint64_t)p + ld32(r->p + p), t, what);
}

static int32_t fb_vec_i32(rd *r, const fbv *v, uint32_t i) {
    return ldi32(r->p + v->base + 4 * (size_t)i);
}

/* ---------------------------------------------------------------------------------------------- */
/* Phase 1: the parsed model                                                                      */
/* ---------------------------------------------------------------------------------------------- */
typedef struct tfl_tensor {
    int ndim;                  /* as in the file; may exceed NN_MAX_DIMS */
    int64_t d[NN_MAX_DIMS];
    int64_t count;             /* elements (product over all dims) */
    int type;
    fbv name;                  /* string in the file */
    const uint8_t *data;       /* constant contents, NULL if none */
    size_t nbytes;
    int quantized, variable, sparse;
} tfl_tensor;

typedef struct tfl_op {
    uint32_t opcode_index;
    int code;
    int n_in, n_out;
    int *in, *out;
    uint8_t opt_type;
    int has_opt;
    fbt opt;
} tfl_op;

typedef struct tfl_code {
    int code;
    fbv custom;
} tfl_code;

typedef struct tfl_buf {
    const uint8_t *data;
    size_t n;
} tfl_buf;

typedef enum bad_reason {
    BAD_NONE = 0, BAD_TYPE, BAD_CONST_TYPE, BAD_RANK, BAD_SPARSE, BAD_VARIABLE, BAD_QUANTIZED
} bad_reason;

typedef struct loader {
    rd r;
    uint32_t version;
    uint32_t n_subgraphs;
    fbv description, sg_name;
    tfl_code *codes;
    uint32_t n_codes;
    tfl_buf *bufs;
    uint32_t n_bufs;
    tfl_tensor *t;
    int n_t;
    tfl_op *ops;
    int n_ops;
    int *gin, n_gin, *gout, n_gout;
    int *producer;             /* per tensor: index of the op writing it, or -1 */
    /* build */
    char model[80];            /* how messages name the model */
    nn_graph *g;
    int *fold_src;             /* per tensor: source tensor of a folded DEQUANTIZE, or -1 */
    unsigned char *bad;        /* per tensor: bad_reason */
    uint64_t const_budget;     /* bytes of constant data we may still materialise */
} loader;

static int parse_int_vec(loader *L, const fbt *t, int id, int **out, int *n, int max,
                         const char *what) {
    rd *r = &L->r;
    fbv v;
    *out = NULL;
    *n = 0;
    if (!fb_vec(r, t, id, 4, &v, what)) return 0;
    if (v.n > (uint32_t)max) return bad(r, "%s: %u entries (limit %d)", what, (unsigned)v.n, max);
    *out = malloc(sizeof(int) * (v.n ? v.n : 1));
    if (!*out) {
        r->st = FP_ERR_NOMEM;
        snprintf(r->msg, sizeof r->msg, "out of memory");
        return 0;
    }
    for (uint32_t i = 0; i < v.n; i++) (*out)[i] = fb_vec_i32(r, &v, i);
    *n = (int)v.n;
    return 1;
}

static int nomem(rd *r) {
    if (r->st == FP_OK) {
        r->st = FP_ERR_NOMEM;
        snprintf(r->msg, sizeof r->msg, "out of memory");
    }
    return 0;
}

static int parse_tensor(loader *L, int i, const fbt *tt) {
    rd *r = &L->r;
    tfl_tensor *t = &L->t[i];
    fbv shape;
    char what[48];
    snprintf(what, sizeof what, "tensor %d", i);
    if (!fb_vec(r, tt, 0, 4, &shape, what)) return 0;
    t->ndim = (int)(shape.n > 64 ? 64 : shape.n);
    if (shape.n > 64) return bad(r, "tensor %d: rank %u", i, (unsigned)shape.n);
    t->count = 1;
    for (uint32_t k = 0; k < shape.n; k++) {
        int32_t dim = fb_vec_i32(r, &shape, k);
        if (dim < 0) return bad(r, "tensor %d: negative dimension %d", i, (int)dim);
        if (k < NN_MAX_DIMS) t->d[k] = dim;
        if (dim && t->count > TFL_MAX_ELEMS / dim)
            return bad(r, "tensor %d: more than %lld elements", i, (long long)TFL_MAX_ELEMS);
        t->count *= dim;
    }
    t->type = fb_i8(r, tt, 1, 0);
    uint32_t buffer = fb_u32(r, tt, 2, 0);
    if (!fb_vec(r, tt, 3, 1, &t->name, what)) return 0;
    size_t q = fb_ref(r, tt, 4, what);
    if (q) {
        fbt qt;
        fbv scale;
        if (!fb_table(r, q, &qt, what) || !fb_vec(r, &qt, 2, 4, &scale, what)) return 0;
        t->quantized = scale.n > 0;
    }
    t->variable = fb_u8(r, tt, 5, 0) != 0;
    t->sparse = fb_has(r, tt, 6);
    if (r->st) return 0;
    if (buffer >= L->n_bufs) {
        if (buffer == 0) return 1; /* a file without a buffers vector has no constants */
        return bad(r, "tensor %d: buffer %u out of range (%u buffers)", i, (unsigned)buffer,
                   (unsigned)L->n_bufs);
    }
    t->data = L->bufs[buffer].data;
    t->nbytes = L->bufs[buffer].n;
    if (!t->nbytes) {
        t->data = NULL;
        return 1;
    }
    int esz = type_size(t->type);
    if (!t->sparse && esz && (uint64_t)t->count * (uint64_t)esz != t->nbytes)
        return bad(r, "tensor %d: buffer %u holds %zu bytes, shape needs %lld x %d", i,
                   (unsigned)buffer, t->nbytes, (long long)t->count, esz);
    return 1;
}

static int parse_op(loader *L, int i, const fbt *ot) {
    rd *r = &L->r;
    tfl_op *op = &L->ops[i];
    char what[48];
    snprintf(what, sizeof what, "operator %d", i);
    op->opcode_index = fb_u32(r, ot, 0, 0);
    if (!parse_int_vec(L, ot, 1, &op->in, &op->n_in, TFL_MAX_OP_IO, what)) return 0;
    if (!parse_int_vec(L, ot, 2, &op->out, &op->n_out, TFL_MAX_OP_IO, what)) return 0;
    op->opt_type = fb_u8(r, ot, 3, 0);
    size_t o = fb_ref(r, ot, 4, what);
    if (o) {
        if (!fb_table(r, o, &op->opt, what)) return 0;
        op->has_opt = 1;
    }
    if (r->st) return 0;
    if (op->opcode_index >= L->n_codes)
        return bad(r, "operator %d: opcode index %u out of range (%u codes)", i,
                   (unsigned)op->opcode_index, (unsigned)L->n_codes);
    op->code = L->codes[op->opcode_index].code;
    return 1;
}

static int parse_model(loader *L) {
    rd *r = &L->r;
    fbt root, sg;
    fbv v;
    if (r->len < 8) return bad(r, "file too small for a flatbuffer (%zu bytes)", r->len);
    if (memcmp(r->p + 4, "TFL3", 4) != 0)
        return bad(r, "not a TFLite model (file identifier is not \"TFL3\")");
    if (!fb_table(r, ld32(r->p), &root, "model")) return 0;
    L->version = fb_u32(r, &root, 0, 0);

    if (!fb_vec(r, &root, 1, 4, &v, "operator_codes")) return 0;
    if (v.n > TFL_MAX_OPS) return bad(r, "%u operator codes", (unsigned)v.n);
    L->n_codes = v.n;
    L->codes = calloc(v.n ? v.n : 1, sizeof *L->codes);
    if (!L->codes) return nomem(r);
    for (uint32_t i = 0; i < v.n; i++) {
        fbt ct;
        if (!fb_vec_table(r, &v, i, &ct, "operator code")) return 0;
        int dep = fb_i8(r, &ct, 0, 0);
        int32_t bc = fb_i32(r, &ct, 3, 0);
        /* Codes above 127 live only in builtin_code; old files only have the deprecated byte. */
        L->codes[i].code = bc > dep ? bc : dep;
        if (!fb_vec(r, &ct, 1, 1, &L->codes[i].custom, "custom_code")) return 0;
    }

    if (!fb_vec(r, &root, 4, 4, &v, "buffers")) return 0;
    L->n_bufs = v.n;
    L->bufs = calloc(v.n ? v.n : 1, sizeof *L->bufs);
    if (!L->bufs) return nomem(r);
    for (uint32_t i = 0; i < v.n; i++) {
        fbt bt;
        fbv data;
        if (!fb_vec_table(r, &v, i, &bt, "buffer") || !fb_vec(r, &bt, 0, 1, &data, "buffer data"))
            return 0;
        if (data.n) {
            L->bufs[i].data = r->p + data.base;
            L->bufs[i].n = data.n;
            continue;
        }
        /* Files above 2 GB keep tensor data after the flatbuffer, addressed by offset/size
         * (offset 1 is the converter's placeholder meaning "none"). */
        uint64_t off = fb_u64(r, &bt, 1, 0), size = fb_u64(r, &bt, 2, 0);
        if (r->st) return 0;
        if (off > 1 && size) {
            if (off > r->len || size > r->len - off)
                return bad(r, "buffer %u: data at %llu+%llu outside the file", (unsigned)i,
                           (unsigned long long)off, (unsigned long long)size);
            if (!spend(r, size)) return 0;
            L->bufs[i].data = r->p + off;
            L->bufs[i].n = (size_t)size;
        }
    }

    if (!fb_vec(r, &root, 3, 1, &L->description, "description")) return 0;
    if (!fb_vec(r, &root, 2, 4, &v, "subgraphs")) return 0;
    if (v.n == 0) return bad(r, "model has no subgraph");
    L->n_subgraphs = v.n;
    if (!fb_vec_table(r, &v, 0, &sg, "subgraph 0")) return 0;
    if (!fb_vec(r, &sg, 4, 1, &L->sg_name, "subgraph name")) return 0;

    if (!fb_vec(r, &sg, 0, 4, &v, "tensors")) return 0;
    if (v.n > TFL_MAX_TENSORS)
        return bad(r, "%u tensors (limit %d)", (unsigned)v.n, TFL_MAX_TENSORS);
    L->n_t = (int)v.n;
    L->t = calloc(v.n ? v.n : 1, sizeof *L->t);
    if (!L->t) return nomem(r);
    for (uint32_t i = 0; i < v.n; i++) {
        fbt tt;
        if (!fb_vec_table(r, &v, i, &tt, "tensor") || !parse_tensor(L, (int)i, &tt)) return 0;
    }
    if (!parse_int_vec(L, &sg, 1, &L->gin, &L->n_gin, TFL_MAX_TENSORS, "subgraph inputs") ||
        !parse_int_vec(L, &sg, 2, &L->gout, &L->n_gout, TFL_MAX_TENSORS, "subgraph outputs"))
        return 0;

    if (!fb_vec(r, &sg, 3, 4, &v, "operators")) return 0;
    if (v.n > TFL_MAX_OPS) return bad(r, "%u operators (limit %d)", (unsigned)v.n, TFL_MAX_OPS);
    L->ops = calloc(v.n ? v.n : 1, sizeof *L->ops);
    if (!L->ops) return nomem(r);
    L->n_ops = (int)v.n;
    for (uint32_t i = 0; i < v.n; i++) {
        fbt ot;
        if (!fb_vec_table(r, &v, i, &ot, "operator") || !parse_op(L, (int)i, &ot)) return 0;
    }
    return r->st == FP_OK;
}

/* Index structure of the subgraph: everything the IR builder relies on. */
static int check_structure(loader *L) {
    rd *r = &L->r;
    L->producer = malloc(sizeof(int) * (size_t)(L->n_t ? L->n_t : 1));
    if (!L->producer) return nomem(r);
    for (int i = 0; i < L->n_t; i++) L->producer[i] = -1;
    for (int i = 0; i < L->n_gin; i++)
        if (L->gin[i] < 0 || L->gin[i] >= L->n_t)
            return bad(r, "subgraph input %d: tensor index %d out of range (%d tensors)", i,
                       L->gin[i], L->n_t);
    for (int i = 0; i < L->n_gout; i++)
        if (L->gout[i] < 0 || L->gout[i] >= L->n_t)
            return bad(r, "subgraph output %d: tensor index %d out of range (%d tensors)", i,
                       L->gout[i], L->n_t);
    for (int i = 0; i < L->n_ops; i++) {
        const tfl_op *op = &L->ops[i];
        for (int k = 0; k < op->n_in; k++)
            if (op->in[k] < -1 || op->in[k] >= L->n_t)
                return bad(r, "operator %d (%s): input %d is tensor %d, out of range (%d tensors)",
                           i, op_name(op->code), k, op->in[k], L->n_t);
        for (int k = 0; k < op->n_out; k++) {
            int o = op->out[k];
            if (o < 0 || o >= L->n_t)
                return bad(r, "operator %d (%s): output %d is tensor %d, out of range (%d tensors)",
                           i, op_name(op->code), k, o, L->n_t);
            if (L->t[o].data)
                return bad(r, "operator %d (%s) writes constant tensor %d", i, op_name(op->code),
                           o);
            if (L->producer[o] >= 0)
                return bad(r, "tensor %d is written by operators %d and %d", o, L->producer[o], i);
            L->producer[o] = i;
        }
    }
    for (int i = 0; i < L->n_gin; i++) {
        int t = L->gin[i];
        if (L->producer[t] >= 0)
            return bad(r, "subgraph input tensor %d is written by operator %d", t, L->producer[t]);
    }
    /* A tensor read but never written, not constant and not an input would be garbage. */
    char *is_input = calloc((size_t)(L->n_t ? L->n_t : 1), 1);
    if (!is_input) return nomem(r);
    for (int i = 0; i < L->n_gin; i++) is_input[L->gin[i]] = 1;
    int ok = 1;
    for (int i = 0; i < L->n_ops && ok; i++) {
        const tfl_op *op = &L->ops[i];
        for (int k = 0; k < op->n_in && ok; k++) {
            int t = op->in[k];
            if (t >= 0 && L->producer[t] < 0 && !L->t[t].data && !is_input[t])
                ok = bad(r, "operator %d (%s) reads tensor %d, which nothing computes", i,
                         op_name(op->code), t);
        }
    }
    for (int i = 0; i < L->n_gout && ok; i++) {
        int t = L->gout[i];
        if (L->producer[t] < 0 && !L->t[t].data && !is_input[t])
            ok = bad(r, "subgraph output tensor %d is never computed", t);
    }
    free(is_input);
    return ok;
}

/* ---------------------------------------------------------------------------------------------- */
/* Phase 2: building the IR                                                                       */
/* ---------------------------------------------------------------------------------------------- */
static int fail(loader *L, fp_status st, const char *fmt, ...) FP_PRINTF(3, 4);
static int fail(loader *L, fp_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    failv(&L->r, st, fmt, ap);
    va_end(ap);
    return 0;
}

/* malloc'ed NUL-terminated copy of a string in the file. */
static char *str_dup(loader *L, const fbv *s) {
    char *c = malloc((size_t)s->n + 1);
    if (!c) return NULL;
    if (s->n) memcpy(c, L->r.p + s->base, s->n);
    c[s->n] = 0;
    return c;
}

static void set_model_name(loader *L) {
    const fbv *s = L->sg_name.n ? &L->sg_name : &L->description;
    size_t n = s->n < sizeof L->model - 3 ? s->n : sizeof L->model - 3;
    if (!n) {
        snprintf(L->model, sizeof L->model, "tflite model");
        return;
    }
    L->model[0] = '"';
    for (size_t i = 0; i < n; i++) {
        char c = (char)L->r.p[s->base + i];
        L->model[1 + i] = (c >= 32 && c < 127) ? c : '?';
    }
    L->model[1 + n] = '"';
    L->model[2 + n] = 0;
}

/* Name of tensor i for messages (truncated copy in a small caller buffer). */
static const char *tname(loader *L, int i, char *buf, size_t n) {
    if (i < 0 || i >= L->n_t || !L->t[i].name.n) {
        snprintf(buf, n, "#%d", i);
        return buf;
    }
    const fbv *s = &L->t[i].name;
    size_t k = s->n < n - 1 ? s->n : n - 1;
    for (size_t j = 0; j < k; j++) {
        char c = (char)L->r.p[s->base + j];
        buf[j] = (c >= 32 && c < 127) ? c : '?';
    }
    buf[k] = 0;
    return buf;
}

static int take_const(loader *L, uint64_t bytes, void **out) {
    *out = NULL;
    if (bytes > L->const_budget)
        return fail(L, FP_ERR_FORMAT, "constants take more memory than the file can describe");
    L->const_budget -= bytes;
    *out = malloc(bytes ? (size_t)bytes : 1);
    return *out ? 1 : nomem(&L->r);
}

/* F32 contents of constant tensor `src` (FLOAT32 or FLOAT16), malloc'ed. */
static int const_f32(loader *L, const tfl_tensor *src, float **out, size_t *nbytes) {
    void *p;
    uint64_t n = (uint64_t)src->count;
    if (!take_const(L, n * 4, &p)) return 0;
    float *f = p;
    if (src->type == TT_FLOAT32) {
        memcpy(f, src->data, (size_t)n * 4);
    } else {
        for (uint64_t k = 0; k < n; k++) f[k] = nn_half_to_float(ld16(src->data + 2 * k));
    }
    *out = f;
    *nbytes = (size_t)n * 4;
    return 1;
}

static int add_values(loader *L, int64_t *n_params) {
    rd *r = &L->r;
    for (int i = 0; i < L->n_t; i++) {
        const tfl_tensor *t = &L->t[i];
        nn_shape shape;
        memset(&shape, 0, sizeof shape);
        nn_dtype dt = NN_F32;
        void *data = NULL;
        size_t nbytes = 0;
        bad_reason why = BAD_NONE;
        if (t->data) *n_params += t->count;
        if (t->ndim > NN_MAX_DIMS) {
            why = BAD_RANK;
        } else {
            shape.ndim = t->ndim;
            for (int k = 0; k < t->ndim; k++) shape.d[k] = t->d[k];
        }
        int src = L->fold_src[i];
        if (why) {
        } else if (src >= 0) {
            float *f;
            if (!const_f32(L, &L->t[src], &f, &nbytes)) return 0;
            data = f;
        } else if (t->sparse) {
            why = BAD_SPARSE;
        } else if (t->variable) {
            why = BAD_VARIABLE;
        } else if (t->data) {
            if (t->type == TT_FLOAT32 || t->type == TT_FLOAT16) {
                float *f;
                if (!const_f32(L, t, &f, &nbytes)) return 0;
                data = f;
            } else if (t->type == TT_INT32 || t->type == TT_INT64) {
                /* INT64 constants (shapes, axes from some converters) narrow when they fit. */
                int esz = t->type == TT_INT32 ? 4 : 8;
                int fits = 1;
                for (int64_t k = 0; esz == 8 && k < t->count && fits; k++) {
                    int64_t x = ldi64(t->data + 8 * k);
                    fits = x >= INT32_MIN && x <= INT32_MAX;
                }
                if (!fits) {
                    why = BAD_CONST_TYPE;
                } else {
                    void *p;
                    if (!take_const(L, (uint64_t)t->count * 4, &p)) return 0;
                    int32_t *d = p;
                    for (int64_t k = 0; k < t->count; k++)
                        d[k] = esz == 4 ? ldi32(t->data + 4 * k)
                                        : (int32_t)ldi64(t->data + 8 * k);
                    data = d;
                    nbytes = (size_t)t->count * 4;
                    dt = NN_I32;
                }
            } else {
                why = t->quantized ? BAD_QUANTIZED : BAD_CONST_TYPE;
            }
        } else if (t->type == TT_FLOAT32) {
            dt = NN_F32;
        } else if (t->type == TT_INT32) {
            dt = NN_I32;
        } else {
            why = t->quantized ? BAD_QUANTIZED : BAD_TYPE;
        }
        /* A value the IR cannot represent still gets its slot, so value i stays tensor i; it is
         * only an error if an op or the graph interface actually uses it. */
        L->bad[i] = (unsigned char)why;
        char *name = str_dup(L, &t->name);
        if (!name) {
            free(data);
            return nomem(r);
        }
        int idx = nn_graph_add_value(L->g, name, dt, &shape, data, nbytes);
        free(name);
        if (idx < 0) {
            free(data);
            return nomem(r);
        }
    }
    return 1;
}

/* Checks that value v (tensor or loader-made value) can serve in `role` of operator opi. */
enum { WANT_F32 = 1, WANT_I32 = 2, WANT_ANY = 3 };

static int check_val(loader *L, int opi, int v, int want, const char *role) {
    const tfl_op *op = &L->ops[opi];
    char nb[96];
    if (v < 0) return 1;
    if (v < L->n_t && L->bad[v]) {
        const tfl_tensor *t = &L->t[v];
        const char *what;
        char tb[64];
        switch (L->bad[v]) {
        case BAD_RANK: snprintf(tb, sizeof tb, "has rank %d (max %d)", t->ndim, NN_MAX_DIMS); break;
        case BAD_SPARSE: snprintf(tb, sizeof tb, "is sparse"); break;
        case BAD_VARIABLE: snprintf(tb, sizeof tb, "is a variable"); break;
        case BAD_QUANTIZED: snprintf(tb, sizeof tb, "is quantized %s", type_name(t->type)); break;
        default: snprintf(tb, sizeof tb, "has type %s", type_name(t->type)); break;
        }
        what = tb;
        return fail(
            L, FP_ERR_UNSUPPORTED,
            "%s: operator %d (%s): %s tensor %d '%s' %s (only float32 models are supported)",
            L->model, opi, op_name(op->code), role, v, tname(L, v, nb, sizeof nb), what);
    }
    nn_dtype dt = L->g->values[v].dtype;
    if ((want == WANT_F32 && dt != NN_F32) || (want == WANT_I32 && dt != NN_I32))
        return fail(L, FP_ERR_UNSUPPORTED,
                    "%s: operator %d (%s): %s tensor %d '%s' is %s, expected %s", L->model, opi,
                    op_name(op->code), role, v, tname(L, v, nb, sizeof nb),
                    dt == NN_F32 ? "float32" : "int32", want == WANT_F32 ? "float32" : "int32");
    return 1;
}

/* Options table of operator opi if it has the expected union tag; absent options give 0 (the
 * caller then uses the schema defaults), a table of another type is a format error. */
static int get_opts(loader *L, int opi, int tag, fbt *o) {
    const tfl_op *op = &L->ops[opi];
    if (op->opt_type && op->opt_type != tag)
        return fail(L, FP_ERR_FORMAT, "operator %d (%s): options of type %u, expected %d", opi,
                    op_name(op->code), (unsigned)op->opt_type, tag);
    if (!op->opt_type || !op->has_opt) return 0;
    *o = op->opt;
    return 1;
}

static int map_act(loader *L, int opi, int code, nn_act *act) {
    static const char *const names[] = {"NONE",  "RELU", "RELU_N1_TO_1",
                                        "RELU6", "TANH", "SIGN_BIT"};
    switch (code) {
    case 0: *act = NN_ACT_NONE; return 1;
    case 1: *act = NN_ACT_RELU; return 1;
    case 3: *act = NN_ACT_RELU6; return 1;
    case 2: case 4: case 5:
        return fail(L, FP_ERR_UNSUPPORTED,
                    "%s: operator %d (%s): fused activation %s is not supported", L->model, opi,
                    op_name(L->ops[opi].code), names[code]);
    default:
        return fail(L, FP_ERR_FORMAT, "operator %d (%s): unknown fused activation %d", opi,
                    op_name(L->ops[opi].code), code);
    }
}

static int map_padding(loader *L, int opi, int code, nn_padding *pad) {
    if (code == 0) *pad = NN_PAD_SAME;
    else if (code == 1) *pad = NN_PAD_VALID;
    else return fail(L, FP_ERR_FORMAT, "operator %d (%s): unknown padding %d", opi,
                     op_name(L->ops[opi].code), code);
    return 1;
}

/* Convolutions and pools cannot do without their options (strides, window). */
static int missing_opts(loader *L, int opi) {
    if (L->r.st) return 0;
    return fail(L, FP_ERR_FORMAT, "operator %d (%s) has no options", opi,
                op_name(L->ops[opi].code));
}

static int need_io(loader *L, int opi, int min_in, int max_in, int n_out) {
    const tfl_op *op = &L->ops[opi];
    if (op->n_in < min_in || (max_in >= 0 && op->n_in > max_in) || op->n_out != n_out)
        return fail(L, FP_ERR_FORMAT, "operator %d (%s): %d inputs / %d outputs", opi,
                    op_name(op->code), op->n_in, op->n_out);
    for (int k = 0; k < min_in; k++)
        if (op->in[k] < 0)
            return fail(L, FP_ERR_FORMAT, "operator %d (%s): required input %d is missing", opi,
                        op_name(op->code), k);
    return 1;
}

static nn_op *emit(loader *L, nn_op_type type, const int *in, int n_in, const int *out, int n_out) {
    nn_op *o = nn_graph_add_op(L->g, type, in, n_in, out, n_out);
    if (!o) nomem(&L->r);
    return o;
}

/* Adds a value the file does not have, named after tensor `t` + `suffix`; `data` (malloc'ed or
 * NULL) is taken over, even on failure. Returns its index or -1. */
static int add_derived(loader *L, int t, const char *suffix, nn_dtype dt, const nn_shape *shape,
                       void *data, size_t nbytes) {
    char *base = str_dup(L, &L->t[t].name);
    size_t ln = (base ? strlen(base) : 0) + strlen(suffix) + 1;
    char *name = base ? malloc(ln) : NULL;
    int idx = -1;
    if (name) {
        snprintf(name, ln, "%s%s", base, suffix);
        idx = nn_graph_add_value(L->g, name, dt, shape, data, nbytes);
    }
    free(base);
    free(name);
    if (idx < 0) {
        free(data);
        nomem(&L->r);
    }
    return idx;
}

/* Adds an I32 constant [n] named after tensor `t` + `suffix`. */
static int add_i32_const(loader *L, int t, const char *suffix, const int32_t *vals, int n) {
    void *p;
    if (!take_const(L, (uint64_t)n * 4, &p)) return -1;
    if (n) memcpy(p, vals, (size_t)n * 4);
    nn_shape s;
    memset(&s, 0, sizeof s);
    s.ndim = 1;
    s.d[0] = n;
    return add_derived(L, t, suffix, NN_I32, &s, p, (size_t)n * 4);
}

/* RESHAPE target. nn.h has the planner re-batch a constant shape only through a leading -1, so a
 * leading entry equal to the declared batch becomes -1 (as the reference runtime does, which
 * reshapes to the output tensor's shape with the input's batch). At the declared batch this
 * means exactly what the file says. */
static int reshape_shape(loader *L, int opi, int *shape_val) {
    const tfl_op *op = &L->ops[opi];
    rd *r = &L->r;
    int32_t *vals = NULL;
    int n = 0, src = -1;
    if (op->n_in >= 2 && op->in[1] >= 0) {
        src = op->in[1];
        if (!check_val(L, opi, src, WANT_I32, "shape")) return 0;
        const nn_value *v = &L->g->values[src];
        if (!v->data || v->shape.ndim != 1) {
            *shape_val = src; /* computed at plan time, or a legacy layout left to the planner */
            return 1;
        }
        n = (int)(v->nbytes / 4);
        vals = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
        if (!vals) return nomem(r);
        memcpy(vals, v->data, (size_t)n * 4);
    } else {
        fbt o;
        fbv ns;
        if (!get_opts(L, opi, BO_RESHAPE, &o)) {
            if (r->st) return 0;
            return fail(L, FP_ERR_FORMAT, "operator %d (RESHAPE): no shape input and no options",
                        opi);
        }
        if (!fb_vec(r, &o, 0, 4, &ns, "RESHAPE new_shape")) return 0;
        if (ns.n > NN_MAX_DIMS)
            return fail(L, FP_ERR_UNSUPPORTED, "%s: operator %d (RESHAPE) to rank %u", L->model,
                        opi, (unsigned)ns.n);
        n = (int)ns.n;
        vals = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
        if (!vals) return nomem(r);
        for (int k = 0; k < n; k++) vals[k] = fb_vec_i32(r, &ns, (uint32_t)k);
    }
    int rewrite = n > 0 && vals[0] == L->g->decl_batch;
    if (rewrite) {
        /* Other -1 entries (BlazeFace writes [1,-1,16]) are pinned to the file's output shape,
         * leaving the batch as the one inferred dimension. Without that shape, a second -1
         * would make the target ambiguous, so the entry then stays as the file has it. */
        const tfl_tensor *y = &L->t[op->out[0]];
        int pinned = y->ndim == n && n <= NN_MAX_DIMS;
        for (int k = 1; k < n && pinned; k++)
            pinned = (vals[k] == -1 || vals[k] == y->d[k]) && y->d[k] <= INT32_MAX;
        if (pinned) {
            for (int k = 1; k < n; k++) vals[k] = (int32_t)y->d[k];
        } else {
            for (int k = 1; k < n && rewrite; k++) rewrite = vals[k] != -1;
        }
    }
    if (src >= 0 && !rewrite) {
        free(vals);
        *shape_val = src;
        return 1;
    }
    if (rewrite) vals[0] = -1;
    *shape_val = add_i32_const(L, op->out[0], "/shape", vals, n);
    free(vals);
    return *shape_val >= 0;
}

static int map_op(loader *L, int i) {
    rd *r = &L->r;
    const tfl_op *op = &L->ops[i];
    const int code = op->code;
    nn_op *o = NULL;
    fbt opt;
    int has;
    int out0 = op->n_out > 0 ? op->out[0] : -1;
    int in3[3];
    nn_act act = NN_ACT_NONE;

    switch (code) {
    case OP_DEQUANTIZE:
        if (!need_io(L, i, 1, 1, 1)) return 0;
        if (L->fold_src[out0] >= 0) return 1; /* folded into a constant at load */
        return fail(L, FP_ERR_UNSUPPORTED,
                    "%s: operator %d (DEQUANTIZE) of a non-constant or quantized tensor", L->model,
                    i);

    case OP_CONV_2D:
    case OP_DEPTHWISE_CONV_2D: {
        int dw = code == OP_DEPTHWISE_CONV_2D;
        if (!need_io(L, i, 2, 3, 1)) return 0;
        has = get_opts(L, i, dw ? BO_DWCONV2D : BO_CONV2D, &opt);
        if (!has) return missing_opts(L, i);
        nn_conv_params c;
        memset(&c, 0, sizeof c);
        if (!map_padding(L, i, fb_u8(r, &opt, 0, 0), &c.padding)) return 0;
        c.sw = fb_i32(r, &opt, 1, 0);
        c.sh = fb_i32(r, &opt, 2, 0);
        int mult = dw ? fb_i32(r, &opt, 3, 0) : 0;
        if (!map_act(L, i, fb_i8(r, &opt, dw ? 4 : 3, 0), &c.act)) return 0;
        c.dw = fb_i32(r, &opt, dw ? 5 : 4, 1);
        c.dh = fb_i32(r, &opt, dw ? 6 : 5, 1);
        if (r->st) return 0;
        if (c.sw < 1 || c.sh < 1 || c.dw < 1 || c.dh < 1)
            return fail(L, FP_ERR_FORMAT, "operator %d (%s): stride %dx%d, dilation %dx%d", i,
                        op_name(code), c.sh, c.sw, c.dh, c.dw);
        const tfl_tensor *w = &L->t[op->in[1]], *x = &L->t[op->in[0]];
        if (w->ndim != 4 || w->d[1] < 1 || w->d[2] < 1 || w->d[1] > INT_MAX || w->d[2] > INT_MAX)
            return fail(L, FP_ERR_FORMAT, "operator %d (%s): weights are not a 4-D kernel", i,
                        op_name(code));
        c.kh = (int)w->d[1];
        c.kw = (int)w->d[2];
        if (dw) {
            /* TFLite derives the multiplier from the shapes (old files may store 0). */
            if (x->ndim == 4 && x->d[3] > 0) {
                if (w->d[3] % x->d[3])
                    return fail(L, FP_ERR_FORMAT,
                                "operator %d (%s): %lld output channels for %lld inputs", i,
                                op_name(code), (long long)w->d[3], (long long)x->d[3]);
                if (w->d[3] / x->d[3] > INT_MAX)
                    return fail(L, FP_ERR_FORMAT, "operator %d (%s): depth multiplier too large", i,
                                op_name(code));
                mult = (int)(w->d[3] / x->d[3]);
            }
            if (mult < 1)
                return fail(L, FP_ERR_FORMAT, "operator %d (%s): depth multiplier %d", i,
                            op_name(code), mult);
            c.depth_multiplier = mult;
        }
        in3[0] = op->in[0];
        in3[1] = op->in[1];
        in3[2] = op->n_in > 2 ? op->in[2] : -1;
        if (!check_val(L, i, in3[0], WANT_F32, "input") ||
            !check_val(L, i, in3[1], WANT_F32, "weight") ||
            !check_val(L, i, in3[2], WANT_F32, "bias") ||
            !check_val(L, i, out0, WANT_F32, "output"))
            return 0;
        if (!(o = emit(L, dw ? NN_OP_DWCONV2D : NN_OP_CONV2D, in3, 3, &out0, 1))) return 0;
        o->p.conv = c;
        return 1;
    }

    case OP_FULLY_CONNECTED: {
        if (!need_io(L, i, 2, 3, 1)) return 0;
        nn_fc_params f;
        memset(&f, 0, sizeof f);
        has = get_opts(L, i, BO_FC, &opt);
        if (r->st) return 0;
        if (has) {
            if (!map_act(L, i, fb_i8(r, &opt, 0, 0), &f.act)) return 0;
            if (fb_i8(r, &opt, 1, 0) != 0)
                return fail(L, FP_ERR_UNSUPPORTED,
                            "%s: operator %d (FULLY_CONNECTED) with shuffled weights", L->model, i);
            f.keep_dims = fb_u8(r, &opt, 2, 0) != 0;
        }
        if (L->t[op->in[1]].ndim != 2)
            return fail(L, FP_ERR_FORMAT, "operator %d (FULLY_CONNECTED): weights are not 2-D", i);
        in3[0] = op->in[0];
        in3[1] = op->in[1];
        in3[2] = op->n_in > 2 ? op->in[2] : -1;
        if (!check_val(L, i, in3[0], WANT_F32, "input") ||
            !check_val(L, i, in3[1], WANT_F32, "weight") ||
            !check_val(L, i, in3[2], WANT_F32, "bias") ||
            !check_val(L, i, out0, WANT_F32, "output"))
            return 0;
        if (!(o = emit(L, NN_OP_FC, in3, 3, &out0, 1))) return 0;
        o->p.fc = f;
        return !r->st;
    }

    case OP_MAX_POOL_2D:
    case OP_AVERAGE_POOL_2D: {
        if (!need_io(L, i, 1, 1, 1)) return 0;
        if (!get_opts(L, i, BO_POOL2D, &opt)) return missing_opts(L, i);
        nn_pool_params pp;
        memset(&pp, 0, sizeof pp);
        if (!map_padding(L, i, fb_u8(r, &opt, 0, 0), &pp.padding)) return 0;
        pp.sw = fb_i32(r, &opt, 1, 0);
        pp.sh = fb_i32(r, &opt, 2, 0);
        pp.kw = fb_i32(r, &opt, 3, 0);
        pp.kh = fb_i32(r, &opt, 4, 0);
        if (!map_act(L, i, fb_i8(r, &opt, 5, 0), &pp.act)) return 0;
        if (r->st) return 0;
        if (pp.sw < 1 || pp.sh < 1 || pp.kw < 1 || pp.kh < 1)
            return fail(L, FP_ERR_FORMAT, "operator %d (%s): window %dx%d stride %dx%d", i,
                        op_name(code), pp.kh, pp.kw, pp.sh, pp.sw);
        if (!check_val(L, i, op->in[0], WANT_F32, "input") ||
            !check_val(L, i, out0, WANT_F32, "output"))
            return 0;
        if (!(o = emit(L, code == OP_MAX_POOL_2D ? NN_OP_MAXPOOL : NN_OP_AVGPOOL, op->in, 1, &out0,
                       1)))
            return 0;
        o->p.pool = pp;
        return 1;
    }

    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_MINIMUM: case OP_MAXIMUM: {
        nn_op_type ty;
        int tag;
        switch (code) {
        case OP_ADD: ty = NN_OP_ADD; tag = BO_ADD; break;
        case OP_SUB: ty = NN_OP_SUB; tag = BO_SUB; break;
        case OP_MUL: ty = NN_OP_MUL; tag = BO_MUL; break;
        case OP_DIV: ty = NN_OP_DIV; tag = BO_DIV; break;
        case OP_MINIMUM: ty = NN_OP_MIN; tag = 0; break;
        default: ty = NN_OP_MAX; tag = 0; break;
        }
        if (!need_io(L, i, 2, 2, 1)) return 0;
        if (tag && get_opts(L, i, tag, &opt) && !map_act(L, i, fb_i8(r, &opt, 0, 0), &act))
            return 0;
        if (r->st) return 0;
        if (!check_val(L, i, op->in[0], WANT_F32, "input") ||
            !check_val(L, i, op->in[1], WANT_F32, "input") ||
            !check_val(L, i, out0, WANT_F32, "output"))
            return 0;
        if (!(o = emit(L, ty, op->in, 2, &out0, 1))) return 0;
        o->p.act = act;
        return 1;
    }

    case OP_RELU: case OP_RELU6: case OP_ABS: case OP_NEG: case OP_LOGISTIC: case OP_TANH:
    case OP_EXP: case OP_SQRT: case OP_RSQRT: case OP_SQUARE: {
        nn_op_type ty;
        switch (code) {
        case OP_RELU: ty = NN_OP_RELU; break;
        case OP_RELU6: ty = NN_OP_RELU6; break;
        case OP_ABS: ty = NN_OP_ABS; break;
        case OP_NEG: ty = NN_OP_NEG; break;
        case OP_LOGISTIC: ty = NN_OP_SIGMOID; break;
        case OP_TANH: ty = NN_OP_TANH; break;
        case OP_EXP: ty = NN_OP_EXP; break;
        case OP_SQRT: ty = NN_OP_SQRT; break;
        case OP_RSQRT: ty = NN_OP_RSQRT; break;
        default: ty = NN_OP_SQUARE; break;
        }
        if (!need_io(L, i, 1, 1, 1)) return 0;
        if (!check_val(L, i, op->in[0], WANT_F32, "input") ||
            !check_val(L, i, out0, WANT_F32, "output"))
            return 0;
        return emit(L, ty, op->in, 1, &out0, 1) != NULL;
    }

    case OP_PRELU:
        if (!need_io(L, i, 2, 2, 1)) return 0;
        if (!check_val(L, i, op->in[0], WANT_F32, "input") ||
            !check_val(L, i, op->in[1], WANT_F32, "alpha") ||
            !check_val(L, i, out0, WANT_F32, "output"))
            return 0;
        return emit(L, NN_OP_PRELU, op->in, 2, &out0, 1) != NULL;

    case OP_LEAKY_RELU:
    case OP_SOFTMAX: {
        int leaky = code == OP_LEAKY_RELU;
        if (!need_io(L, i, 1, 1, 1)) return 0;
        /* Schema defaults (alpha = beta = 0) when the options are absent, as TFLite does. */
        float val = 0.0f;
        if (get_opts(L, i, leaky ? BO_LEAKY_RELU : BO_SOFTMAX, &opt))
            val = fb_f32(r, &opt, 0, 0.0f);
        if (r->st) return 0;
        if (!check_val(L, i, op->in[0], WANT_F32, "input") ||
            !check_val(L, i, out0, WANT_F32, "output"))
            return 0;
        if (!(o = emit(L, leaky ? NN_OP_LEAKY_RELU : NN_OP_SOFTMAX, op->in, 1, &out0, 1))) return 0;
        if (leaky) o->p.leaky_alpha = val;
        else o->p.softmax_beta = val;
        return 1;
    }

    case OP_PAD:
    case OP_PADV2: {
        if (!need_io(L, i, 2, code == OP_PADV2 ? 3 : 2, 1)) return 0;
        if (!check_val(L, i, op->in[0], WANT_F32, "input") ||
            !check_val(L, i, op->in[1], WANT_I32, "paddings") ||
            !check_val(L, i, out0, WANT_F32, "output"))
            return 0;
        if (op->n_in > 2 && op->in[2] >= 0) {
            int cv = op->in[2];
            if (!check_val(L, i, cv, WANT_F32, "constant_values")) return 0;
            const nn_value *v = &L->g->values[cv];
            int zero = v->data != NULL && v->nbytes >= 4;
            for (size_t k = 0; zero && k < v->nbytes / 4; k++)
                zero = ((const float *)v->data)[k] == 0.0f;
            if (!zero)
                return fail(L, FP_ERR_UNSUPPORTED,
                            "%s: operator %d (PADV2) pads with a non-zero or "
                            "non-constant value",
                            L->model, i);
        }
        return emit(L, NN_OP_PAD, op->in, 2, &out0, 1) != NULL;
    }

    case OP_CONCATENATION: {
        if (!need_io(L, i, 1, -1, 1)) return 0;
        int axis = 0;
        if (get_opts(L, i, BO_CONCAT, &opt)) {
            axis = fb_i32(r, &opt, 0, 0);
            if (!map_act(L, i, fb_i8(r, &opt, 1, 0), &act)) return 0;
        }
        if (r->st) return 0;
        for (int k = 0; k < op->n_in; k++) {
            if (op->in[k] < 0)
                return fail(L, FP_ERR_FORMAT, "operator %d (CONCATENATION): input %d missing", i,
                            k);
            if (!check_val(L, i, op->in[k], WANT_F32, "input")) return 0;
        }
        if (!check_val(L, i, out0, WANT_F32, "output")) return 0;
        int rank = L->t[out0].ndim;
        if (rank > 0) {
            if (axis < -rank || axis >= rank)
                return fail(L, FP_ERR_FORMAT, "operator %d (CONCATENATION): axis %d for rank %d", i,
                            axis, rank);
            if (axis < 0) axis += rank;
        }
        int dst = out0;
        if (act != NN_ACT_NONE) {
            /* The IR's CONCAT has no fused activation: concatenate into a fresh value and apply
             * the activation as its own op, which writes the file's output tensor. */
            nn_shape s = L->g->values[out0].shape; /* copied: adding a value may move the array */
            dst = add_derived(L, out0, "/concat", NN_F32, &s, NULL, 0);
            if (dst < 0) return 0;
        }
        if (!(o = emit(L, NN_OP_CONCAT, op->in, op->n_in, &dst, 1))) return 0;
        o->p.axis = axis;
        if (act != NN_ACT_NONE &&
            !emit(L, act == NN_ACT_RELU ? NN_OP_RELU : NN_OP_RELU6, &dst, 1, &out0, 1))
            return 0;
        return 1;
    }

    case OP_RESHAPE: {
        if (!need_io(L, i, 1, 2, 1)) return 0;
        if (!check_val(L, i, op->in[0], WANT_ANY, "input") ||
            !check_val(L, i, out0, WANT_ANY, "output"))
            return 0;
        if (L->g->values[op->in[0]].dtype != L->g->values[out0].dtype)
            return fail(L, FP_ERR_FORMAT, "operator %d (RESHAPE) changes the element type", i);
        int in2[2] = {op->in[0], -1};
        if (!reshape_shape(L, i, &in2[1])) return 0;
        return emit(L, NN_OP_RESHAPE, in2, 2, &out0, 1) != NULL;
    }

    case OP_MEAN: {
        if (!need_io(L, i, 2, 2, 1)) return 0;
        int keep = 0;
        if (get_opts(L, i, BO_REDUCER, &opt)) keep = fb_u8(r, &opt, 0, 0) != 0;
        if (r->st) return 0;
        if (!check_val(L, i, op->in[0], WANT_F32, "input") ||
            !check_val(L, i, op->in[1], WANT_I32, "axes") ||
            !check_val(L, i, out0, WANT_F32, "output"))
            return 0;
        if (!(o = emit(L, NN_OP_MEAN, op->in, 2, &out0, 1))) return 0;
        o->p.keep_dims = keep;
        return 1;
    }

    case OP_RESIZE_BILINEAR: {
        if (!need_io(L, i, 2, 2, 1)) return 0;
        nn_resize_params rp = {0, 0};
        if (get_opts(L, i, BO_RESIZE_BILINEAR, &opt)) {
            rp.align_corners = fb_u8(r, &opt, 2, 0) != 0;
            rp.half_pixel = fb_u8(r, &opt, 3, 0) != 0;
        }
        if (r->st) return 0;
        if (!check_val(L, i, op->in[0], WANT_F32, "input") ||
            !check_val(L, i, op->in[1], WANT_I32, "size") ||
            !check_val(L, i, out0, WANT_F32, "output"))
            return 0;
        if (!(o = emit(L, NN_OP_RESIZE_BILINEAR, op->in, 2, &out0, 1))) return 0;
        o->p.resize = rp;
        return 1;
    }

    case OP_DEPTH_TO_SPACE: {
        if (!need_io(L, i, 1, 1, 1)) return 0;
        int block = 0;
        if (get_opts(L, i, BO_DEPTH_TO_SPACE, &opt)) block = fb_i32(r, &opt, 0, 0);
        if (r->st) return 0;
        if (block < 1 || block > 65536)
            return fail(L, FP_ERR_FORMAT, "operator %d (DEPTH_TO_SPACE): block size %d", i, block);
        if (!check_val(L, i, op->in[0], WANT_F32, "input") ||
            !check_val(L, i, out0, WANT_F32, "output"))
            return 0;
        if (!(o = emit(L, NN_OP_DEPTH_TO_SPACE, op->in, 1, &out0, 1))) return 0;
        o->p.block = block;
        return 1;
    }

    case OP_STRIDED_SLICE: {
        if (!need_io(L, i, 4, 4, 1)) return 0;
        nn_slice_params sp;
        memset(&sp, 0, sizeof sp);
        if (get_opts(L, i, BO_STRIDED_SLICE, &opt)) {
            sp.begin_mask = fb_i32(r, &opt, 0, 0);
            sp.end_mask = fb_i32(r, &opt, 1, 0);
            sp.ellipsis_mask = fb_i32(r, &opt, 2, 0);
            sp.new_axis_mask = fb_i32(r, &opt, 3, 0);
            sp.shrink_axis_mask = fb_i32(r, &opt, 4, 0);
            if (fb_u8(r, &opt, 5, 0))
                return fail(L, FP_ERR_UNSUPPORTED,
                            "%s: operator %d (STRIDED_SLICE) with offset=true", L->model, i);
        }
        if (r->st) return 0;
        if (!check_val(L, i, op->in[0], WANT_ANY, "input") ||
            !check_val(L, i, op->in[1], WANT_I32, "begin") ||
            !check_val(L, i, op->in[2], WANT_I32, "end") ||
            !check_val(L, i, op->in[3], WANT_I32, "strides") ||
            !check_val(L, i, out0, WANT_ANY, "output"))
            return 0;
        if (L->g->values[op->in[0]].dtype != L->g->values[out0].dtype)
            return fail(L, FP_ERR_FORMAT, "operator %d (STRIDED_SLICE) changes the element type",
                        i);
        if (!(o = emit(L, NN_OP_STRIDED_SLICE, op->in, 4, &out0, 1))) return 0;
        o->p.slice = sp;
        return 1;
    }

    case OP_CAST:
        if (!need_io(L, i, 1, 1, 1)) return 0;
        if (!check_val(L, i, op->in[0], WANT_ANY, "input") ||
            !check_val(L, i, out0, WANT_ANY, "output"))
            return 0;
        if (!(o = emit(L, NN_OP_CAST, op->in, 1, &out0, 1))) return 0;
        o->p.cast_to = L->g->values[out0].dtype;
        return 1;

    case OP_PACK: {
        if (!need_io(L, i, 1, -1, 1)) return 0;
        int axis = 0;
        if (get_opts(L, i, BO_PACK, &opt)) {
            int count = fb_i32(r, &opt, 0, 0);
            axis = fb_i32(r, &opt, 1, 0);
            if (!r->st && count != op->n_in)
                return fail(L, FP_ERR_FORMAT, "operator %d (PACK): values_count %d for %d inputs",
                            i, count, op->n_in);
        }
        if (r->st) return 0;
        if (!check_val(L, i, out0, WANT_ANY, "output")) return 0;
        for (int k = 0; k < op->n_in; k++) {
            if (op->in[k] < 0)
                return fail(L, FP_ERR_FORMAT, "operator %d (PACK): input %d missing", i, k);
            if (!check_val(L, i, op->in[k], WANT_ANY, "input")) return 0;
            if (L->g->values[op->in[k]].dtype != L->g->values[out0].dtype)
                return fail(L, FP_ERR_FORMAT, "operator %d (PACK): mixed element types", i);
        }
        int rank = L->t[out0].ndim;
        if (rank > 0) {
            if (axis < -rank || axis >= rank)
                return fail(L, FP_ERR_FORMAT, "operator %d (PACK): axis %d for rank %d", i, axis,
                            rank);
            if (axis < 0) axis += rank;
        }
        if (!(o = emit(L, NN_OP_PACK, op->in, op->n_in, &out0, 1))) return 0;
        o->p.axis = axis;
        return 1;
    }

    case OP_SHAPE:
        if (!need_io(L, i, 1, 1, 1)) return 0;
        if (!check_val(L, i, op->in[0], WANT_ANY, "input") ||
            !check_val(L, i, out0, WANT_I32, "output"))
            return 0;
        return emit(L, NN_OP_SHAPE, op->in, 1, &out0, 1) != NULL;

    case OP_CUSTOM: {
        char cb[96];
        const fbv *cn = &L->codes[op->opcode_index].custom;
        size_t k = cn->n < sizeof cb - 1 ? cn->n : sizeof cb - 1;
        for (size_t j = 0; j < k; j++) {
            char c = (char)r->p[cn->base + j];
            cb[j] = (c >= 32 && c < 127) ? c : '?';
        }
        cb[k] = 0;
        return fail(L, FP_ERR_UNSUPPORTED, "%s: operator %d is custom op '%s', not supported",
                    L->model, i, cb);
    }

    default:
        return fail(L, FP_ERR_UNSUPPORTED,
                    "%s: operator %d: op %s (builtin code %d) is not supported", L->model, i,
                    op_name(code), code);
    }
}

/* DEQUANTIZE of a constant float16 (or float32) tensor only exists so TFLite can keep weights in
 * half precision; the output becomes an F32 constant and the op disappears. */
static int plan_folds(loader *L) {
    for (int i = 0; i < L->n_t; i++) L->fold_src[i] = -1;
    for (int i = 0; i < L->n_ops; i++) {
        const tfl_op *op = &L->ops[i];
        if (op->code != OP_DEQUANTIZE || op->n_in != 1 || op->n_out != 1 || op->in[0] < 0) continue;
        const tfl_tensor *s = &L->t[op->in[0]], *d = &L->t[op->out[0]];
        if (!s->data || s->sparse || (s->type != TT_FLOAT16 && s->type != TT_FLOAT32)) continue;
        if (d->type != TT_FLOAT32) continue;
        if (d->count != s->count)
            return fail(L, FP_ERR_FORMAT, "operator %d (DEQUANTIZE): %lld elements in, %lld out", i,
                        (long long)s->count, (long long)d->count);
        L->fold_src[op->out[0]] = op->in[0];
    }
    return 1;
}

/* Builtin codes map_op translates. */
static int op_mapped(int code) {
    switch (code) {
    case OP_ADD: case OP_AVERAGE_POOL_2D: case OP_CONCATENATION: case OP_CONV_2D:
    case OP_DEPTHWISE_CONV_2D: case OP_DEPTH_TO_SPACE: case OP_DEQUANTIZE: case OP_FULLY_CONNECTED:
    case OP_LOGISTIC:
    case OP_MAX_POOL_2D:
    case OP_MUL:
    case OP_RELU:
    case OP_RELU6:
    case OP_RESHAPE:
    case OP_RESIZE_BILINEAR: case OP_SOFTMAX: case OP_TANH: case OP_PAD: case OP_MEAN: case OP_SUB:
    case OP_DIV: case OP_STRIDED_SLICE: case OP_EXP: case OP_CAST: case OP_PRELU: case OP_MAXIMUM:
    case OP_MINIMUM: case OP_NEG: case OP_PADV2: case OP_SQRT: case OP_RSQRT: case OP_SHAPE:
    case OP_PACK: case OP_SQUARE: case OP_LEAKY_RELU: case OP_ABS:
        return 1;
    default:
        return 0;
    }
}

static int build(loader *L) {
    rd *r = &L->r;
    set_model_name(L);
    if (L->version != 3)
        return fail(L, FP_ERR_UNSUPPORTED, "%s: TFLite schema version %u (only 3 is supported)",
                    L->model, (unsigned)L->version);
    if (L->n_subgraphs != 1)
        return fail(L, FP_ERR_UNSUPPORTED,
                    "%s: %u subgraphs (only single-subgraph models are supported)", L->model,
                    (unsigned)L->n_subgraphs);
    if (L->n_gin < 1) return fail(L, FP_ERR_UNSUPPORTED, "%s: model has no inputs", L->model);
    if (L->n_gout < 1) return fail(L, FP_ERR_UNSUPPORTED, "%s: model has no outputs", L->model);

    L->g = nn_graph_new("tflite");
    L->fold_src = malloc(sizeof(int) * (size_t)(L->n_t ? L->n_t : 1));
    L->bad = calloc((size_t)(L->n_t ? L->n_t : 1), 1);
    if (!L->g || !L->fold_src || !L->bad) return nomem(r);
    const tfl_tensor *in0 = &L->t[L->gin[0]];
    L->g->decl_batch =
        (in0->ndim >= 1 && in0->d[0] >= 1 && in0->d[0] <= INT_MAX) ? (int)in0->d[0] : 1;

    /* An unknown op rejects the model before megabytes of weights get converted. map_op only
     * formats the message for these codes, which needs no values yet. */
    for (int i = 0; i < L->n_ops; i++)
        if (!op_mapped(L->ops[i].code)) return map_op(L, i);

    if (!plan_folds(L)) return 0;
    int64_t n_params = 0;
    if (!add_values(L, &n_params)) return 0;
    L->g->n_params = n_params;

    for (int i = 0; i < L->n_ops; i++)
        if (!map_op(L, i)) return 0;

    char nb[96];
    for (int i = 0; i < L->n_gin; i++) {
        int t = L->gin[i];
        if (L->bad[t] || L->g->values[t].dtype != NN_F32 || L->g->values[t].data)
            return fail(L, FP_ERR_UNSUPPORTED, "%s: input %d '%s' is not a float32 tensor (%s%s)",
                        L->model, i, tname(L, t, nb, sizeof nb), type_name(L->t[t].type),
                        L->t[t].data ? ", constant" : "");
    }
    for (int i = 0; i < L->n_gout; i++) {
        int t = L->gout[i];
        if (L->bad[t] || L->g->values[t].dtype != NN_F32)
            return fail(L, FP_ERR_UNSUPPORTED, "%s: output %d '%s' is not a float32 tensor (%s)",
                        L->model, i, tname(L, t, nb, sizeof nb), type_name(L->t[t].type));
    }
    if (nn_graph_set_inputs(L->g, L->gin, L->n_gin) ||
        nn_graph_set_outputs(L->g, L->gout, L->n_gout))
        return nomem(r);
    return r->st == FP_OK;
}

static void loader_free(loader *L) {
    if (L->ops)
        for (int i = 0; i < L->n_ops; i++) {
            free(L->ops[i].in);
            free(L->ops[i].out);
        }
    free(L->ops);
    free(L->t);
    free(L->codes);
    free(L->bufs);
    free(L->gin);
    free(L->gout);
    free(L->producer);
    free(L->fold_src);
    free(L->bad);
}

fp_status nn_load_tflite(const void *buf, size_t len, nn_graph **out, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (out) *out = NULL;
    if (!out || (!buf && len)) {
        if (err && errlen) snprintf(err, errlen, "nn_load_tflite: NULL argument");
        return fp_fail(FP_ERR_INVALID_ARG, "nn_load_tflite: NULL argument");
    }
    if (len > TFL_MAX_FILE) {
        if (err && errlen) snprintf(err, errlen, "tflite: file of %zu bytes is too large", len);
        return fp_fail(FP_ERR_TOO_LARGE, "tflite: file of %zu bytes is too large", len);
    }
    loader L;
    memset(&L, 0, sizeof L);
    L.r.p = buf;
    L.r.len = len;
    L.r.budget = 4 * (uint64_t)len + (1u << 20);
    /* fp16 weights double when expanded, and a folded DEQUANTIZE keeps its fp16 source too. */
    L.const_budget = 8 * (uint64_t)len + (1u << 20);

    if (parse_model(&L) && check_structure(&L)) build(&L);

    fp_status st = L.r.st;
    if (st != FP_OK) {
        nn_graph_free(L.g);
        L.g = NULL;
        const char *prefix = st == FP_ERR_FORMAT ? "tflite: corrupt model: " : "tflite: ";
        if (err && errlen) snprintf(err, errlen, "%s%s", prefix, L.r.msg);
        fp_fail(st, "%s%s", prefix, L.r.msg);
    }
    *out = L.g;
    loader_free(&L);
    return st;
}
