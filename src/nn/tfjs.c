/*
 * tfjs.c - TF.js graph-model loader: parses model.json (jansson) and the concatenated weight shards,
 * then translates the TensorFlow node graph into the runtime IR of nn.h (HWIO conv filters become
 * OHWI, depthwise filters [1,KH,KW,C*M], MatMul weights [out,in], fused_ops become act fields).
 *
 * The file is untrusted: every size in the manifest is checked against the weights buffer before
 * anything is allocated, node references and the graph order are validated, and every failure ends
 * in a status plus a message naming the node or weight at fault. nn_graph_finalize() is left to the
 * caller (the public wrapper), so the graph returned here is exactly the file's graph in IR form.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/core.h"
#include "nn/nn.h"

/* Hard caps on counts that a hostile file could otherwise use to make us allocate a lot before any
 * other check fails. Real models have a few hundred nodes with a handful of inputs each. */
#define MAX_NODES (1 << 20)
#define MAX_NODE_INPUTS (1 << 16)
#define MAX_WEIGHTS (1 << 20)
#define MAX_WINDOW (1 << 16) /* strides, dilations, kernel sizes, pads, block sizes */
#define MAX_FUSED 4

typedef enum qtype { Q_NONE, Q_F16, Q_U8, Q_U16 } qtype;

/* One weightsManifest entry, with its place in the weights buffer. */
typedef struct wentry {
    const char *name; /* borrowed from the JSON document */
    nn_dtype dtype;
    qtype q;
    double scale, min;
    nn_shape shape;
    int64_t count;
    size_t offset, nbytes;
} wentry;

/* Weight layouts an op may ask a constant for (a Const is decoded lazily, once per layout). */
typedef enum wlayout { W_PLAIN, W_OHWI, W_DW, W_FC_T } wlayout;

typedef struct tnode {
    const char *name, *op; /* borrowed from the JSON document */
    json_t *attr;          /* object or NULL */
    int n_in;              /* data inputs (control inputs "^x" are dropped) */
    int *in_node, *in_port;
    int weight;            /* manifest entry of a Const, else -1 */
    int value;             /* IR value of output 0, -1 until translated / materialised */
    int derived[W_FC_T + 1]; /* IR values of re-laid-out constants, by wlayout */
    int consumed;          /* some node reads it as a data input */
    int state;             /* topological sort: 0 new, 1 on the stack, 2 done */
} tnode;

/* Open-addressing string -> index map over borrowed keys. */
typedef struct hmap {
    const char **key;
    int *val;
    size_t mask;
} hmap;

typedef struct ctx {
    json_t *root;
    const uint8_t *wbuf;
    size_t wlen;
    wentry *w;
    int nw;
    hmap wmap;
    tnode *nodes;
    int nn;
    hmap nmap;
    int *order;
    int norder;
    nn_graph *g;
    char *err;
    size_t errlen;
} ctx;

/* ---------------------------------------------------------------------------------------------- */
/* Errors                                                                                          */
/* ---------------------------------------------------------------------------------------------- */
static fp_status vfail(ctx *c, fp_status st, const tnode *nd, const char *fmt, va_list ap) {
    char msg[512];
    int n = 0;
    if (nd)
        n = snprintf(msg, sizeof msg, "tfjs: node '%s' (%s): ", nd->name, nd->op);
    else
        n = snprintf(msg, sizeof msg, "tfjs: ");
    if (n < 0 || (size_t)n >= sizeof msg) n = 0;
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    if (c->err && c->errlen) snprintf(c->err, c->errlen, "%s", msg);
    return fp_fail(st, "%s", msg);
}

static fp_status fail(ctx *c, fp_status st, const char *fmt, ...) FP_PRINTF(3, 4);
static fp_status fail(ctx *c, fp_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fp_status r = vfail(c, st, NULL, fmt, ap);
    va_end(ap);
    return r;
}

static fp_status nfail(ctx *c, const tnode *nd, fp_status st, const char *fmt, ...) FP_PRINTF(4, 5);
static fp_status nfail(ctx *c, const tnode *nd, fp_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fp_status r = vfail(c, st, nd, fmt, ap);
    va_end(ap);
    return r;
}

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        fp_status st_ = (expr);                                                                    \
        if (st_ != FP_OK) return st_;                                                              \
    } while (0)

/* ---------------------------------------------------------------------------------------------- */
/* Name map                                                                                        */
/* ---------------------------------------------------------------------------------------------- */
static uint64_t hash_str(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static int hmap_init(hmap *m, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    m->key = calloc(cap, sizeof *m->key);
    m->val = calloc(cap, sizeof *m->val);
    m->mask = cap - 1;
    return m->key && m->val ? 0 : -1;
}

static void hmap_free(hmap *m) {
    free(m->key);
    free(m->val);
}

/* Index stored for key[0..len), or -1. */
static int hmap_get(const hmap *m, const char *k, size_t len) {
    if (!m->key) return -1;
    for (size_t i = hash_str(k, len) & m->mask;; i = (i + 1) & m->mask) {
        const char *s = m->key[i];
        if (!s) return -1;
        if (strncmp(s, k, len) == 0 && s[len] == '\0') return m->val[i];
    }
}

/* Inserts; returns the index already stored under this key (a duplicate) or -1 when inserted.
 * The table is sized at init for all keys, so it never fills up. */
static int hmap_put(hmap *m, const char *k, int v) {
    size_t len = strlen(k);
    for (size_t i = hash_str(k, len) & m->mask;; i = (i + 1) & m->mask) {
        if (!m->key[i]) {
            m->key[i] = k;
            m->val[i] = v;
            return -1;
        }
        if (strcmp(m->key[i], k) == 0) return m->val[i];
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* JSON helpers                                                                                    */
/* ---------------------------------------------------------------------------------------------- */
/* TF's JSON writes int64 as strings ("2"); the manifest uses plain numbers. Accept both, exactly. */
static int json_i64(const json_t *j, int64_t *out) {
    if (json_is_integer(j)) {
        *out = (int64_t)json_integer_value(j);
        return 0;
    }
    if (json_is_string(j)) {
        const char *s = json_string_value(j);
        if (!*s || (!(*s >= '0' && *s <= '9') && *s != '-' && *s != '+')) return -1;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || *end || end == s) return -1;
        *out = (int64_t)v;
        return 0;
    }
    return -1;
}

static int b64_val(int ch) {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+' || ch == '-') return 62;
    if (ch == '/' || ch == '_') return 63;
    return -1;
}

/* Decodes base64 (standard or URL alphabet, padding optional) into a NUL-terminated buffer.
 * Returns the length or -1 (malformed, too long or containing NUL). */
static int b64_decode(const char *in, char *out, size_t cap) {
    size_t n = 0, len = strlen(in);
    while (len && in[len - 1] == '=') len--;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_val((unsigned char)in[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            char ch = (char)((acc >> bits) & 0xff);
            if (ch == '\0' || n + 1 >= cap) return -1;
            out[n++] = ch;
        }
    }
    out[n] = '\0';
    return (int)n;
}

static json_t *attr_get(const tnode *nd, const char *key) {
    return nd->attr ? json_object_get(nd->attr, key) : NULL;
}

static fp_status attr_int(ctx *c, const tnode *nd, const char *key, int64_t def, int64_t lo,
                          int64_t hi, int64_t *out) {
    json_t *a = attr_get(nd, key);
    *out = def;
    if (!a) return FP_OK;
    json_t *v = json_object_get(a, "i");
    if (!v) return nfail(c, nd, FP_ERR_FORMAT, "attr '%s' is not an int", key);
    if (json_i64(v, out) != 0 || *out < lo || *out > hi)
        return nfail(c, nd, FP_ERR_FORMAT, "attr '%s' is not an int in [%lld, %lld]", key,
                     (long long)lo, (long long)hi);
    return FP_OK;
}

static fp_status attr_bool(ctx *c, const tnode *nd, const char *key, int *out) {
    json_t *a = attr_get(nd, key);
    *out = 0;
    if (!a) return FP_OK;
    json_t *v = json_object_get(a, "b");
    if (!json_is_boolean(v)) return nfail(c, nd, FP_ERR_FORMAT, "attr '%s' is not a bool", key);
    *out = json_is_true(v);
    return FP_OK;
}

static fp_status attr_float(ctx *c, const tnode *nd, const char *key, float def, float *out) {
    json_t *a = attr_get(nd, key);
    *out = def;
    if (!a) return FP_OK;
    json_t *v = json_object_get(a, "f");
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return nfail(c, nd, FP_ERR_FORMAT, "attr '%s' is not a finite float", key);
    *out = (float)json_number_value(v);
    return FP_OK;
}

/* {"s": base64}; *found = 0 and out = "" when absent. */
static fp_status attr_str(ctx *c, const tnode *nd, const char *key, char *out, size_t cap,
                          int *found) {
    json_t *a = attr_get(nd, key);
    out[0] = '\0';
    *found = 0;
    if (!a) return FP_OK;
    json_t *v = json_object_get(a, "s");
    if (!json_is_string(v) || b64_decode(json_string_value(v), out, cap) < 0)
        return nfail(c, nd, FP_ERR_FORMAT, "attr '%s' is not a short base64 string", key);
    *found = 1;
    return FP_OK;
}

/* {"type": "DT_..."} as a string, or NULL when absent. */
static const char *attr_type(const tnode *nd, const char *key) {
    json_t *a = attr_get(nd, key);
    json_t *v = a ? json_object_get(a, "type") : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* {"list": {"i": [...]}}; *n = -1 when the attr is absent. */
static fp_status attr_ilist(ctx *c, const tnode *nd, const char *key, int64_t *out, int max,
                            int *n) {
    json_t *a = attr_get(nd, key);
    *n = -1;
    if (!a) return FP_OK;
    json_t *l = json_object_get(a, "list");
    if (!json_is_object(l)) return nfail(c, nd, FP_ERR_FORMAT, "attr '%s' is not a list", key);
    json_t *arr = json_object_get(l, "i");
    *n = 0;
    if (!arr) return FP_OK;
    if (!json_is_array(arr) || json_array_size(arr) > (size_t)max)
        return nfail(c, nd, FP_ERR_FORMAT, "attr '%s' is not a list of at most %d ints", key, max);
    for (size_t i = 0; i < json_array_size(arr); i++)
        if (json_i64(json_array_get(arr, i), &out[i]) != 0)
            return nfail(c, nd, FP_ERR_FORMAT, "attr '%s'[%zu] is not an int", key, i);
    *n = (int)json_array_size(arr);
    return FP_OK;
}

/* {"list": {"s": [base64...]}} into fixed slots. */
static fp_status attr_slist(ctx *c, const tnode *nd, const char *key, char out[][32], int max,
                            int *n) {
    json_t *a = attr_get(nd, key);
    *n = 0;
    if (!a) return FP_OK;
    json_t *l = json_object_get(a, "list");
    if (!json_is_object(l)) return nfail(c, nd, FP_ERR_FORMAT, "attr '%s' is not a list", key);
    json_t *arr = json_object_get(l, "s");
    if (!arr) return FP_OK;
    if (!json_is_array(arr) || json_array_size(arr) > (size_t)max)
        return nfail(c, nd, FP_ERR_UNSUPPORTED, "attr '%s' is not a list of at most %d strings",
                     key, max);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *s = json_array_get(arr, i);
        if (!json_is_string(s) || b64_decode(json_string_value(s), out[i], 32) < 0)
            return nfail(c, nd, FP_ERR_FORMAT, "attr '%s'[%zu] is not a short base64 string", key,
                         i);
    }
    *n = (int)json_array_size(arr);
    return FP_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Weights manifest                                                                                */
/* ---------------------------------------------------------------------------------------------- */
static fp_status parse_weight(ctx *c, json_t *jw, wentry *w, size_t *offset) {
    json_t *jn = json_object_get(jw, "name");
    if (!json_is_string(jn)) return fail(c, FP_ERR_FORMAT, "weightsManifest entry without a name");
    w->name = json_string_value(jn);
    json_t *js = json_object_get(jw, "shape");
    if (!json_is_array(js) || json_array_size(js) > NN_MAX_DIMS)
        return fail(c, FP_ERR_FORMAT, "weight '%s': shape is not an array of at most %d dims",
                    w->name, NN_MAX_DIMS);
    /* Every element takes at least one byte, so a count above the buffer size is already an
     * error; bounding by it keeps the product from overflowing. */
    int64_t limit = c->wlen > (size_t)INT64_MAX ? INT64_MAX : (int64_t)c->wlen;
    int64_t count = 1;
    int zero = 0, too_big = 0;
    w->shape.ndim = (int)json_array_size(js);
    for (int i = 0; i < w->shape.ndim; i++) {
        int64_t d;
        if (json_i64(json_array_get(js, (size_t)i), &d) != 0 || d < 0 || d > INT32_MAX)
            return fail(c, FP_ERR_FORMAT, "weight '%s': dim %d is not an int in [0, 2^31)",
                        w->name, i);
        w->shape.d[i] = d;
        if (d == 0) zero = 1;
        else if (!too_big && count > limit / d) too_big = 1;
        else if (!too_big) count *= d;
    }
    if (zero) count = 0;
    else if (too_big)
        return fail(c, FP_ERR_FORMAT,
                    "weight '%s': shape has more elements than the %zu-byte weights buffer",
                    w->name, c->wlen);
    w->count = count;

    json_t *jd = json_object_get(jw, "dtype");
    const char *dt = json_is_string(jd) ? json_string_value(jd) : "";
    if (strcmp(dt, "float32") == 0) w->dtype = NN_F32;
    else if (strcmp(dt, "int32") == 0) w->dtype = NN_I32;
    else return fail(c, FP_ERR_UNSUPPORTED, "weight '%s': dtype '%s' is not supported", w->name, dt);

    size_t bpe = 4;
    w->q = Q_NONE;
    json_t *jq = json_object_get(jw, "quantization");
    if (jq && !json_is_null(jq)) {
        json_t *jqd = json_object_get(jq, "dtype");
        const char *qd = json_is_string(jqd) ? json_string_value(jqd) : "";
        if (strcmp(qd, "float16") == 0) {
            if (w->dtype != NN_F32)
                return fail(c, FP_ERR_UNSUPPORTED, "weight '%s': float16 quantization of %s",
                            w->name, dt);
            w->q = Q_F16;
            bpe = 2;
        } else if (strcmp(qd, "uint8") == 0 || strcmp(qd, "uint16") == 0) {
            w->q = qd[4] == '8' ? Q_U8 : Q_U16;
            bpe = w->q == Q_U8 ? 1 : 2;
            json_t *sc = json_object_get(jq, "scale"), *mn = json_object_get(jq, "min");
            if (!json_is_number(sc) || !json_is_number(mn) ||
                !isfinite(json_number_value(sc)) || !isfinite(json_number_value(mn)))
                return fail(c, FP_ERR_FORMAT, "weight '%s': %s quantization needs finite scale and min",
                            w->name, qd);
            w->scale = json_number_value(sc);
            w->min = json_number_value(mn);
        } else {
            return fail(c, FP_ERR_UNSUPPORTED, "weight '%s': quantization dtype '%s' is not supported",
                        w->name, qd);
        }
    }
    w->nbytes = (size_t)count * bpe; /* count <= wlen, so at most 4 * wlen */
    w->offset = *offset;
    if (w->nbytes > c->wlen - *offset)
        return fail(c, FP_ERR_FORMAT,
                    "weights buffer truncated: weight '%s' needs bytes [%zu, %zu) but the buffer "
                    "has %zu",
                    w->name, *offset, *offset + w->nbytes, c->wlen);
    *offset += w->nbytes;
    return FP_OK;
}

static fp_status parse_manifest(ctx *c) {
    json_t *man = json_object_get(c->root, "weightsManifest");
    if (man && !json_is_array(man)) return fail(c, FP_ERR_FORMAT, "weightsManifest is not an array");
    size_t total = 0;
    for (size_t i = 0; man && i < json_array_size(man); i++) {
        json_t *ws = json_object_get(json_array_get(man, i), "weights");
        if (!json_is_array(ws))
            return fail(c, FP_ERR_FORMAT, "weightsManifest[%zu].weights is not an array", i);
        total += json_array_size(ws);
        if (total > MAX_WEIGHTS)
            return fail(c, FP_ERR_FORMAT, "more than %d weights in the manifest", MAX_WEIGHTS);
    }
    c->w = calloc(total ? total : 1, sizeof *c->w);
    if (!c->w || hmap_init(&c->wmap, total) != 0)
        return fail(c, FP_ERR_NOMEM, "out of memory for %zu manifest entries", total);
    size_t offset = 0;
    int64_t params = 0;
    for (size_t i = 0; man && i < json_array_size(man); i++) {
        json_t *ws = json_object_get(json_array_get(man, i), "weights");
        for (size_t k = 0; k < json_array_size(ws); k++) {
            json_t *jw = json_array_get(ws, k);
            if (!json_is_object(jw))
                return fail(c, FP_ERR_FORMAT, "weightsManifest[%zu].weights[%zu] is not an object",
                            i, k);
            wentry *w = &c->w[c->nw];
            TRY(parse_weight(c, jw, w, &offset));
            if (hmap_put(&c->wmap, w->name, c->nw) >= 0)
                return fail(c, FP_ERR_FORMAT, "weight '%s' appears twice in the manifest", w->name);
            c->nw++;
            params += w->count;
        }
    }
    if (offset != c->wlen)
        return fail(c, FP_ERR_FORMAT,
                    "the manifest describes %zu bytes of weights but the buffer has %zu", offset,
                    c->wlen);
    c->g->n_params = params;
    return FP_OK;
}

/* Decodes a manifest entry to float32 / int32 (malloc'ed, at least 1 byte). */
static fp_status decode_weight(ctx *c, const tnode *nd, const wentry *w, void **out) {
    size_t n = (size_t)w->count;
    void *buf = malloc(n ? n * 4 : 1);
    if (!buf) return nfail(c, nd, FP_ERR_NOMEM, "out of memory for weight '%s'", w->name);
    const uint8_t *src = c->wbuf + w->offset;
    if (w->q == Q_NONE) {
        if (n) memcpy(buf, src, n * 4); /* little-endian host assumed, like the shards */
    } else if (w->q == Q_F16) {
        float *f = buf;
        for (size_t i = 0; i < n; i++)
            f[i] = nn_half_to_float((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
    } else {
        for (size_t i = 0; i < n; i++) {
            unsigned q = w->q == Q_U8 ? src[i] : (unsigned)(src[2 * i] | (src[2 * i + 1] << 8));
            double v = q * w->scale + w->min;
            if (w->dtype == NN_F32) {
                ((float *)buf)[i] = (float)v;
            } else {
                /* as TF.js does: Math.round of the dequantised value */
                double r = floor(v + 0.5);
                if (!(r >= INT32_MIN && r <= INT32_MAX)) {
                    free(buf);
                    return nfail(c, nd, FP_ERR_FORMAT, "weight '%s': dequantised int out of range",
                                 w->name);
                }
                ((int32_t *)buf)[i] = (int32_t)r;
            }
        }
    }
    *out = buf;
    return FP_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Nodes                                                                                           */
/* ---------------------------------------------------------------------------------------------- */
static int is_identity_op(const char *op) {
    return strcmp(op, "Identity") == 0 || strcmp(op, "StopGradient") == 0 ||
           strcmp(op, "Snapshot") == 0;
}

static fp_status parse_nodes(ctx *c) {
    json_t *topo = json_object_get(c->root, "modelTopology");
    json_t *arr = json_is_object(topo) ? json_object_get(topo, "node") : NULL;
    if (!json_is_array(arr)) return fail(c, FP_ERR_FORMAT, "modelTopology.node is not an array");
    size_t n = json_array_size(arr);
    if (n == 0) return fail(c, FP_ERR_FORMAT, "modelTopology.node is empty");
    if (n > MAX_NODES) return fail(c, FP_ERR_FORMAT, "more than %d nodes", MAX_NODES);
    c->nodes = calloc(n, sizeof *c->nodes);
    c->order = malloc(n * sizeof *c->order);
    if (!c->nodes || !c->order || hmap_init(&c->nmap, n) != 0)
        return fail(c, FP_ERR_NOMEM, "out of memory for %zu nodes", n);
    for (size_t i = 0; i < n; i++) {
        json_t *jn = json_array_get(arr, i);
        tnode *nd = &c->nodes[c->nn];
        nd->weight = nd->value = -1;
        for (int k = 0; k <= W_FC_T; k++) nd->derived[k] = -1;
        json_t *name = json_object_get(jn, "name"), *op = json_object_get(jn, "op");
        if (!json_is_string(name) || !*json_string_value(name))
            return fail(c, FP_ERR_FORMAT, "node #%zu has no name", i);
        nd->name = json_string_value(name);
        if (!json_is_string(op)) return fail(c, FP_ERR_FORMAT, "node '%s' has no op", nd->name);
        nd->op = json_string_value(op);
        json_t *attr = json_object_get(jn, "attr");
        if (attr && !json_is_object(attr))
            return nfail(c, nd, FP_ERR_FORMAT, "attr is not an object");
        nd->attr = attr;
        c->nn++; /* counted before the checks below so cleanup frees its input arrays */
        json_t *in = json_object_get(jn, "input");
        if (in && !json_is_array(in)) return nfail(c, nd, FP_ERR_FORMAT, "input is not an array");
        size_t nin = in ? json_array_size(in) : 0;
        if (nin > MAX_NODE_INPUTS)
            return nfail(c, nd, FP_ERR_FORMAT, "more than %d inputs", MAX_NODE_INPUTS);
        nd->in_node = malloc((nin ? nin : 1) * sizeof(int));
        nd->in_port = malloc((nin ? nin : 1) * sizeof(int));
        if (!nd->in_node || !nd->in_port) return nfail(c, nd, FP_ERR_NOMEM, "out of memory");
        if (hmap_put(&c->nmap, nd->name, c->nn - 1) >= 0)
            return nfail(c, nd, FP_ERR_FORMAT, "duplicate node name");
    }
    /* Inputs are resolved in a second pass: a node may name one defined later in the file. */
    for (int i = 0; i < c->nn; i++) {
        tnode *nd = &c->nodes[i];
        json_t *in = json_object_get(json_array_get(arr, (size_t)i), "input");
        for (size_t k = 0; in && k < json_array_size(in); k++) {
            json_t *js = json_array_get(in, k);
            if (!json_is_string(js))
                return nfail(c, nd, FP_ERR_FORMAT, "input #%zu is not a string", k);
            const char *s = json_string_value(js);
            if (s[0] == '^') continue; /* control dependency: ordering only, no data */
            size_t len = strlen(s);
            int64_t port = 0;
            const char *colon = strrchr(s, ':');
            if (colon && colon[1]) {
                const char *p = colon + 1;
                while (*p >= '0' && *p <= '9') p++;
                if (*p == '\0' && p - colon <= 6) {
                    port = strtol(colon + 1, NULL, 10);
                    len = (size_t)(colon - s);
                }
            }
            int src = hmap_get(&c->nmap, s, len);
            if (src < 0)
                return nfail(c, nd, FP_ERR_FORMAT, "input '%s' names a missing node", s);
            nd->in_node[nd->n_in] = src;
            nd->in_port[nd->n_in] = (int)port;
            nd->n_in++;
            c->nodes[src].consumed = 1;
        }
        if (strcmp(nd->op, "Const") == 0) {
            nd->weight = hmap_get(&c->wmap, nd->name, strlen(nd->name));
            if (nd->weight < 0)
                return nfail(c, nd, FP_ERR_FORMAT, "no weight of this name in weightsManifest");
        }
    }
    return FP_OK;
}

/* Depth-first post-order from every node in file order: the file order survives wherever it is
 * already valid, and a back edge is a cycle. Iterative, because chains can be long. */
static fp_status topo_sort(ctx *c) {
    size_t n = c->nn > 0 ? (size_t)c->nn : 1;
    int *stack = malloc(n * sizeof *stack);
    int *next = calloc(n, sizeof *next);
    if (!stack || !next) {
        free(stack);
        free(next);
        return fail(c, FP_ERR_NOMEM, "out of memory for the node order");
    }
    fp_status st = FP_OK;
    for (int r = 0; r < c->nn && st == FP_OK; r++) {
        if (c->nodes[r].state) continue;
        int sp = 0;
        stack[sp++] = r;
        c->nodes[r].state = 1;
        while (sp > 0) {
            int u = stack[sp - 1];
            tnode *nd = &c->nodes[u];
            if (next[u] < nd->n_in) {
                int v = nd->in_node[next[u]++];
                if (c->nodes[v].state == 1) {
                    st = nfail(c, nd, FP_ERR_FORMAT, "cycle: input '%s' depends on this node",
                               c->nodes[v].name);
                    break;
                }
                if (c->nodes[v].state == 0) {
                    c->nodes[v].state = 1;
                    stack[sp++] = v;
                }
            } else {
                nd->state = 2;
                c->order[c->norder++] = u;
                sp--;
            }
        }
    }
    free(stack);
    free(next);
    return st;
}

/* ---------------------------------------------------------------------------------------------- */
/* Values                                                                                          */
/* ---------------------------------------------------------------------------------------------- */
static fp_status nomem(ctx *c, const tnode *nd) {
    return nfail(c, nd, FP_ERR_NOMEM, "out of memory");
}

/* The Const at input i, looking through Identity nodes (converters sometimes leave them on
 * weights); NULL if it is computed. */
static tnode *const_input(ctx *c, const tnode *nd, int i) {
    tnode *m = &c->nodes[nd->in_node[i]];
    for (int depth = 0; depth < 64 && is_identity_op(m->op) && m->n_in == 1; depth++)
        m = &c->nodes[m->in_node[0]];
    return strcmp(m->op, "Const") == 0 ? m : NULL;
}

static fp_status materialise(ctx *c, tnode *k) {
    if (k->value >= 0) return FP_OK;
    const wentry *w = &c->w[k->weight];
    void *data;
    TRY(decode_weight(c, k, w, &data));
    int v = nn_graph_add_value(c->g, k->name, w->dtype, &w->shape, data, (size_t)w->count * 4);
    if (v < 0) {
        free(data);
        return nomem(c, k);
    }
    k->value = v;
    return FP_OK;
}

/* Value of data input i of nd. */
static fp_status input_value(ctx *c, const tnode *nd, int i, int *out) {
    tnode *m = &c->nodes[nd->in_node[i]];
    if (nd->in_port[i] != 0)
        return nfail(c, nd, FP_ERR_FORMAT, "input '%s:%d': that node has a single output", m->name,
                     nd->in_port[i]);
    if (strcmp(m->op, "Const") == 0) TRY(materialise(c, m));
    if (m->value < 0)
        return nfail(c, nd, FP_ERR_FORMAT, "input '%s' (%s) produces no tensor", m->name, m->op);
    *out = m->value;
    return FP_OK;
}

static nn_dtype value_dtype(const ctx *c, int v) { return c->g->values[v].dtype; }

/* A constant in an IR layout (conv OHWI, depthwise [1,KH,KW,C*M], FC [N,K]); the value carries the
 * Const's name since it is that node's tensor, just laid out the way the kernels want it. */
static fp_status weight_value(ctx *c, const tnode *nd, int i, wlayout lay, int *out) {
    tnode *k = const_input(c, nd, i);
    if (!k || nd->in_port[i] != 0)
        return nfail(c, nd, FP_ERR_UNSUPPORTED, "input '%s' must be a constant weight",
                     c->nodes[nd->in_node[i]].name);
    const wentry *w = &c->w[k->weight];
    const nn_shape *s = &w->shape;
    int want = lay == W_FC_T || lay == W_PLAIN ? 2 : 4;
    if (w->dtype != NN_F32 || s->ndim != want || w->count == 0)
        return nfail(c, nd, FP_ERR_FORMAT, "weight '%s' must be a non-empty %d-D float tensor",
                     w->name, want);
    nn_shape ns = *s;
    if (lay == W_OHWI) {
        ns.d[0] = s->d[3];
        ns.d[1] = s->d[0];
        ns.d[2] = s->d[1];
        ns.d[3] = s->d[2];
    } else if (lay == W_DW) {
        ns.d[0] = 1;
        ns.d[1] = s->d[0];
        ns.d[2] = s->d[1];
        ns.d[3] = s->d[2] * s->d[3];
    } else if (lay == W_FC_T) {
        ns.d[0] = s->d[1];
        ns.d[1] = s->d[0];
    }
    if (lay == W_PLAIN) {
        TRY(materialise(c, k));
        *out = k->value;
        return FP_OK;
    }
    if (k->derived[lay] >= 0) {
        *out = k->derived[lay];
        return FP_OK;
    }
    void *raw;
    TRY(decode_weight(c, k, w, &raw));
    float *src = raw, *dst = src;
    if (lay == W_OHWI) {
        size_t kh = (size_t)s->d[0], kw = (size_t)s->d[1], ci = (size_t)s->d[2],
               co = (size_t)s->d[3];
        dst = malloc((size_t)w->count * sizeof *dst);
        if (!dst) {
            free(src);
            return nomem(c, nd);
        }
        for (size_t y = 0; y < kh; y++)
            for (size_t x = 0; x < kw; x++)
                for (size_t ic = 0; ic < ci; ic++)
                    for (size_t oc = 0; oc < co; oc++)
                        dst[((oc * kh + y) * kw + x) * ci + ic] = src[((y * kw + x) * ci + ic) * co + oc];
        free(src);
    } else if (lay == W_FC_T) {
        size_t kk = (size_t)s->d[0], nn = (size_t)s->d[1];
        dst = malloc((size_t)w->count * sizeof *dst);
        if (!dst) {
            free(src);
            return nomem(c, nd);
        }
        for (size_t r = 0; r < kk; r++)
            for (size_t q = 0; q < nn; q++) dst[q * kk + r] = src[r * nn + q];
        free(src);
    } /* W_DW: the memory order of [KH,KW,C,M] already is [1,KH,KW,C*M] */
    int v = nn_graph_add_value(c->g, k->name, NN_F32, &ns, dst, (size_t)w->count * 4);
    if (v < 0) {
        free(dst);
        return nomem(c, nd);
    }
    k->derived[lay] = v;
    *out = v;
    return FP_OK;
}

/* Integer contents of the constant at input i (at most max entries). */
static fp_status const_ints(ctx *c, const tnode *nd, int i, int64_t *out, int max, int *n) {
    tnode *k = const_input(c, nd, i);
    if (!k || nd->in_port[i] != 0)
        return nfail(c, nd, FP_ERR_UNSUPPORTED, "input '%s' must be a constant",
                     c->nodes[nd->in_node[i]].name);
    const wentry *w = &c->w[k->weight];
    if (w->dtype != NN_I32 || w->count > max)
        return nfail(c, nd, FP_ERR_FORMAT, "constant '%s' must be at most %d int32 values", w->name,
                     max);
    void *raw;
    TRY(decode_weight(c, k, w, &raw));
    const int32_t *data = raw;
    for (int64_t j = 0; j < w->count; j++) out[j] = data[j];
    *n = (int)w->count;
    free(raw);
    return FP_OK;
}

/* Appends op `t` whose output value (named vname) is the node's result. */
static fp_status emit_named(ctx *c, tnode *nd, const char *vname, nn_op_type t, const int *in,
                            int n_in, nn_dtype dt, nn_op **opp, int *vout) {
    int v = nn_graph_add_value(c->g, vname, dt, NULL, NULL, 0);
    if (v < 0) return nomem(c, nd);
    nn_op *op = nn_graph_add_op(c->g, t, in, n_in, &v, 1);
    if (!op) return nomem(c, nd);
    if (opp) *opp = op;
    if (vout) *vout = v;
    return FP_OK;
}

static fp_status emit(ctx *c, tnode *nd, nn_op_type t, const int *in, int n_in, nn_dtype dt,
                      nn_op **opp) {
    return emit_named(c, nd, nd->name, t, in, n_in, dt, opp, &nd->value);
}

static fp_status need_inputs(ctx *c, const tnode *nd, int lo, int hi) {
    if (nd->n_in < lo || nd->n_in > hi) {
        if (lo == hi) return nfail(c, nd, FP_ERR_FORMAT, "expects %d inputs, has %d", lo, nd->n_in);
        return nfail(c, nd, FP_ERR_FORMAT, "expects %d..%d inputs, has %d", lo, hi, nd->n_in);
    }
    return FP_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Attribute groups                                                                                */
/* ---------------------------------------------------------------------------------------------- */
static fp_status check_nhwc(ctx *c, const tnode *nd) {
    char fmt[32];
    int found;
    TRY(attr_str(c, nd, "data_format", fmt, sizeof fmt, &found));
    if (found && strcmp(fmt, "NHWC") != 0)
        return nfail(c, nd, FP_ERR_UNSUPPORTED, "data_format '%s' is not supported (NHWC only)", fmt);
    return FP_OK;
}

/* A [1,a,b,1] list attr (strides, dilations, ksize). */
static fp_status attr_hw(ctx *c, const tnode *nd, const char *key, int required, int *a, int *b) {
    int64_t v[4];
    int n = 0;
    TRY(attr_ilist(c, nd, key, v, 4, &n));
    if (n < 0 || n == 0) {
        if (required) return nfail(c, nd, FP_ERR_FORMAT, "attr '%s' is missing", key);
        *a = *b = 1;
        return FP_OK;
    }
    if (n != 4) return nfail(c, nd, FP_ERR_FORMAT, "attr '%s' must have 4 entries", key);
    if (v[0] != 1 || v[3] != 1)
        return nfail(c, nd, FP_ERR_UNSUPPORTED, "attr '%s' on the batch/channel dims is not 1",
                     key);
    if (v[1] < 1 || v[1] > MAX_WINDOW || v[2] < 1 || v[2] > MAX_WINDOW)
        return nfail(c, nd, FP_ERR_FORMAT, "attr '%s' = [1,%lld,%lld,1] is out of range", key,
                     (long long)v[1], (long long)v[2]);
    *a = (int)v[1];
    *b = (int)v[2];
    return FP_OK;
}

static fp_status attr_padding(ctx *c, const tnode *nd, int allow_explicit, nn_padding *pad,
                              int pads[4]) {
    char s[32];
    int found;
    TRY(attr_str(c, nd, "padding", s, sizeof s, &found));
    pads[0] = pads[1] = pads[2] = pads[3] = 0;
    if (!found) return nfail(c, nd, FP_ERR_FORMAT, "attr 'padding' is missing");
    if (strcmp(s, "SAME") == 0) *pad = NN_PAD_SAME;
    else if (strcmp(s, "VALID") == 0) *pad = NN_PAD_VALID;
    else if (strcmp(s, "EXPLICIT") == 0 && allow_explicit) {
        int64_t v[8];
        int n = 0;
        TRY(attr_ilist(c, nd, "explicit_paddings", v, 8, &n));
        if (n != 8)
            return nfail(c, nd, FP_ERR_FORMAT, "EXPLICIT padding needs 8 explicit_paddings");
        if (v[0] || v[1] || v[6] || v[7])
            return nfail(c, nd, FP_ERR_UNSUPPORTED, "explicit padding of the batch/channel dims");
        for (int i = 0; i < 4; i++) {
            if (v[2 + i] < 0 || v[2 + i] > MAX_WINDOW)
                return nfail(c, nd, FP_ERR_FORMAT, "explicit padding %lld is out of range",
                             (long long)v[2 + i]);
            pads[i] = (int)v[2 + i];
        }
        *pad = NN_PAD_EXPLICIT;
    } else {
        return nfail(c, nd, FP_ERR_UNSUPPORTED, "padding '%s' is not supported", s);
    }
    return FP_OK;
}

/* fused_ops of _FusedConv2D / FusedDepthwiseConv2dNative / _FusedMatMul. */
typedef struct fused {
    int bias;        /* BiasAdd present: extra input 0 is the bias */
    nn_act act;
    float alpha;     /* LeakyRelu */
    int post;        /* activation the IR cannot fuse, emitted as a separate op, or -1 */
} fused;

static fp_status parse_fused(ctx *c, const tnode *nd, int fixed, fused *f) {
    char ops[MAX_FUSED][32];
    int n = 0;
    int64_t num_args;
    TRY(attr_slist(c, nd, "fused_ops", ops, MAX_FUSED, &n));
    TRY(attr_int(c, nd, "num_args", 0, 0, MAX_NODE_INPUTS, &num_args));
    f->bias = 0;
    f->act = NN_ACT_NONE;
    f->alpha = 0.2f;
    f->post = -1;
    if (n > 2) return nfail(c, nd, FP_ERR_UNSUPPORTED, "fused_ops with %d entries", n);
    if (n >= 1) {
        if (strcmp(ops[0], "BiasAdd") != 0)
            return nfail(c, nd, FP_ERR_UNSUPPORTED, "fused op '%s' is not supported", ops[0]);
        f->bias = 1;
    }
    if (n == 2) {
        const char *a = ops[1];
        if (strcmp(a, "Relu") == 0) f->act = NN_ACT_RELU;
        else if (strcmp(a, "Relu6") == 0) f->act = NN_ACT_RELU6;
        else if (strcmp(a, "Prelu") == 0) f->act = NN_ACT_PRELU;
        else if (strcmp(a, "LeakyRelu") == 0) {
            f->act = NN_ACT_LEAKY;
            TRY(attr_float(c, nd, "leakyrelu_alpha", 0.2f, &f->alpha));
        } else if (strcmp(a, "Sigmoid") == 0) f->post = NN_OP_SIGMOID;
        else if (strcmp(a, "Tanh") == 0) f->post = NN_OP_TANH;
        else return nfail(c, nd, FP_ERR_UNSUPPORTED, "fused activation '%s' is not supported", a);
    }
    int want = f->bias + (f->act == NN_ACT_PRELU);
    if (num_args != want)
        return nfail(c, nd, FP_ERR_FORMAT, "num_args %lld does not match fused_ops (%d extra inputs)",
                     (long long)num_args, want);
    return need_inputs(c, nd, fixed + want, fixed + want);
}

/* Finishes a conv/FC: in[2] bias, in[3] PReLU alpha, then a separate activation if needed. */
static fp_status fused_inputs(ctx *c, const tnode *nd, const fused *f, int fixed, int in[4],
                              int *n_in) {
    in[2] = -1;
    *n_in = 3;
    if (f->bias) TRY(input_value(c, nd, fixed, &in[2]));
    if (f->act == NN_ACT_PRELU) {
        TRY(input_value(c, nd, fixed + 1, &in[3]));
        *n_in = 4;
    }
    return FP_OK;
}

static char *suffixed(const char *name, const char *suffix) {
    size_t a = strlen(name), b = strlen(suffix);
    char *s = malloc(a + b + 1);
    if (s) {
        memcpy(s, name, a);
        memcpy(s + a, suffix, b + 1);
    }
    return s;
}

/* Emits the main op of a fused node. With an activation the IR cannot fuse, the main op writes
 * "<name>/pre" and finish_fused() adds the activation under the node's name. */
static fp_status emit_fused(ctx *c, tnode *nd, const fused *f, nn_op_type t, const int *in, int n_in,
                            nn_op **opp, int *pre) {
    *pre = -1;
    if (f->post < 0) return emit(c, nd, t, in, n_in, NN_F32, opp);
    char *name = suffixed(nd->name, "/pre");
    if (!name) return nomem(c, nd);
    fp_status st = emit_named(c, nd, name, t, in, n_in, NN_F32, opp, pre);
    free(name);
    return st;
}

static fp_status finish_fused(ctx *c, tnode *nd, const fused *f, int pre) {
    if (f->post < 0) return FP_OK;
    return emit(c, nd, (nn_op_type)f->post, &pre, 1, NN_F32, NULL);
}

/* ---------------------------------------------------------------------------------------------- */
/* Op translation                                                                                  */
/* ---------------------------------------------------------------------------------------------- */
static fp_status parse_tensor_shape(ctx *c, const tnode *nd, json_t *js, nn_shape *s) {
    memset(s, 0, sizeof *s);
    if (!json_is_object(js)) return nfail(c, nd, FP_ERR_FORMAT, "shape is not an object");
    if (json_is_true(json_object_get(js, "unknownRank"))) return FP_OK;
    json_t *dim = json_object_get(js, "dim");
    if (!dim) return FP_OK; /* scalar */
    if (!json_is_array(dim) || json_array_size(dim) > NN_MAX_DIMS)
        return nfail(c, nd, FP_ERR_UNSUPPORTED, "shape has more than %d dims", NN_MAX_DIMS);
    s->ndim = (int)json_array_size(dim);
    for (int i = 0; i < s->ndim; i++) {
        json_t *d = json_array_get(dim, (size_t)i);
        json_t *sz = json_is_object(d) ? json_object_get(d, "size") : NULL;
        int64_t v = 0;
        if (sz && (json_i64(sz, &v) != 0 || v < -1 || v > INT32_MAX))
            return nfail(c, nd, FP_ERR_FORMAT, "shape dim %d is not an int in [-1, 2^31)", i);
        s->d[i] = v; /* an absent size is proto3's default 0 */
    }
    return FP_OK;
}

static fp_status op_placeholder(ctx *c, tnode *nd) {
    const char *dt = attr_type(nd, "dtype");
    if (dt && strcmp(dt, "DT_FLOAT") != 0)
        return nfail(c, nd, FP_ERR_UNSUPPORTED, "input dtype %s is not supported (float only)", dt);
    nn_shape s = {0};
    json_t *a = attr_get(nd, "shape");
    if (a) TRY(parse_tensor_shape(c, nd, json_object_get(a, "shape"), &s));
    /* -1 dims stay -1: the batch is free and the planner sets it per session. */
    int v = nn_graph_add_value(c->g, nd->name, NN_F32, &s, NULL, 0);
    if (v < 0) return nomem(c, nd);
    nd->value = v;
    return FP_OK;
}

static fp_status op_conv(ctx *c, tnode *nd, int depthwise, int fused_form) {
    fused f = {0, NN_ACT_NONE, 0.f, -1};
    if (fused_form) TRY(parse_fused(c, nd, 2, &f));
    else TRY(need_inputs(c, nd, 2, 2));
    TRY(check_nhwc(c, nd));
    nn_conv_params p;
    memset(&p, 0, sizeof p);
    int pads[4];
    TRY(attr_hw(c, nd, "strides", 1, &p.sh, &p.sw));
    TRY(attr_hw(c, nd, "dilations", 0, &p.dh, &p.dw));
    TRY(attr_padding(c, nd, 1, &p.padding, pads));
    p.pad_t = pads[0];
    p.pad_b = pads[1];
    p.pad_l = pads[2];
    p.pad_r = pads[3];
    int in[4];
    int n_in = 0;
    TRY(input_value(c, nd, 0, &in[0]));
    const wentry *w;
    {
        tnode *k = const_input(c, nd, 1);
        if (!k) return nfail(c, nd, FP_ERR_UNSUPPORTED, "the filter must be a constant");
        w = &c->w[k->weight];
    }
    TRY(weight_value(c, nd, 1, depthwise ? W_DW : W_OHWI, &in[1]));
    if (w->shape.d[0] > MAX_WINDOW || w->shape.d[1] > MAX_WINDOW)
        return nfail(c, nd, FP_ERR_FORMAT, "filter %lldx%lld is out of range",
                     (long long)w->shape.d[0], (long long)w->shape.d[1]);
    p.kh = (int)w->shape.d[0];
    p.kw = (int)w->shape.d[1];
    if (depthwise) p.depth_multiplier = (int)w->shape.d[3];
    p.act = f.act;
    p.alpha = f.alpha;
    TRY(fused_inputs(c, nd, &f, 2, in, &n_in));
    nn_op *op = NULL;
    int pre = -1;
    TRY(emit_fused(c, nd, &f, depthwise ? NN_OP_DWCONV2D : NN_OP_CONV2D, in, n_in, &op, &pre));
    op->p.conv = p; /* before finish_fused(): adding an op may move the op array */
    return finish_fused(c, nd, &f, pre);
}

static fp_status op_matmul(ctx *c, tnode *nd, int fused_form) {
    fused f = {0, NN_ACT_NONE, 0.f, -1};
    if (fused_form) TRY(parse_fused(c, nd, 2, &f));
    else TRY(need_inputs(c, nd, 2, 2));
    int ta, tb;
    TRY(attr_bool(c, nd, "transpose_a", &ta));
    TRY(attr_bool(c, nd, "transpose_b", &tb));
    if (ta) return nfail(c, nd, FP_ERR_UNSUPPORTED, "transpose_a is not supported");
    int in[4] = {-1, -1, -1, -1}, n_in = 0;
    TRY(input_value(c, nd, 0, &in[0]));
    /* IR FC wants [N,K]: TF's [K,N] needs a transpose, transpose_b's [N,K] is already right. */
    TRY(weight_value(c, nd, 1, tb ? W_PLAIN : W_FC_T, &in[1]));
    TRY(fused_inputs(c, nd, &f, 2, in, &n_in));
    nn_op *op = NULL;
    int pre = -1;
    TRY(emit_fused(c, nd, &f, NN_OP_FC, in, n_in, &op, &pre));
    op->p.fc.act = f.act;
    op->p.fc.alpha = f.alpha;
    op->p.fc.keep_dims = 0;
    return finish_fused(c, nd, &f, pre);
}

static fp_status op_pool(ctx *c, tnode *nd, nn_op_type t) {
    TRY(need_inputs(c, nd, 1, 1));
    TRY(check_nhwc(c, nd));
    nn_pool_params p;
    memset(&p, 0, sizeof p);
    int pads[4];
    TRY(attr_hw(c, nd, "ksize", 1, &p.kh, &p.kw));
    TRY(attr_hw(c, nd, "strides", 1, &p.sh, &p.sw));
    TRY(attr_padding(c, nd, 0, &p.padding, pads));
    int in;
    TRY(input_value(c, nd, 0, &in));
    nn_op *op = NULL;
    TRY(emit(c, nd, t, &in, 1, NN_F32, &op));
    op->p.pool = p;
    return FP_OK;
}

/* Ops whose inputs all go to the IR op unchanged; the output dtype follows input 0. */
static fp_status op_simple(ctx *c, tnode *nd, nn_op_type t, int n_lo, int n_hi, nn_op **opp) {
    TRY(need_inputs(c, nd, n_lo, n_hi));
    int stack_in[8];
    int *in = nd->n_in <= 8 ? stack_in : malloc((size_t)nd->n_in * sizeof *in);
    if (!in) return nomem(c, nd);
    fp_status st = FP_OK;
    for (int i = 0; i < nd->n_in && st == FP_OK; i++) st = input_value(c, nd, i, &in[i]);
    if (st == FP_OK) {
        nn_dtype dt = nd->n_in ? value_dtype(c, in[0]) : NN_F32;
        st = emit(c, nd, t, in, nd->n_in, dt, opp);
    }
    if (in != stack_in) free(in);
    return st;
}

static fp_status op_concat(ctx *c, tnode *nd, int axis_first) {
    if (nd->n_in < 2) return nfail(c, nd, FP_ERR_FORMAT, "expects tensors plus an axis");
    int ai = axis_first ? 0 : nd->n_in - 1;
    int64_t axis;
    int n = 0;
    TRY(const_ints(c, nd, ai, &axis, 1, &n));
    if (n != 1) return nfail(c, nd, FP_ERR_FORMAT, "axis must be a single int");
    if (axis < -NN_MAX_DIMS || axis >= NN_MAX_DIMS)
        return nfail(c, nd, FP_ERR_FORMAT, "axis %lld is out of range", (long long)axis);
    int64_t nattr;
    TRY(attr_int(c, nd, "N", nd->n_in - 1, 1, MAX_NODE_INPUTS, &nattr));
    if (nattr != nd->n_in - 1)
        return nfail(c, nd, FP_ERR_FORMAT, "attr N = %lld but %d tensors", (long long)nattr,
                     nd->n_in - 1);
    int *in = malloc((size_t)nd->n_in * sizeof *in);
    if (!in) return nomem(c, nd);
    fp_status st = FP_OK;
    int k = 0;
    for (int i = 0; i < nd->n_in && st == FP_OK; i++)
        if (i != ai) st = input_value(c, nd, i, &in[k++]);
    nn_op *op = NULL;
    if (st == FP_OK) st = emit(c, nd, NN_OP_CONCAT, in, k, value_dtype(c, in[0]), &op);
    free(in);
    if (st == FP_OK) op->p.axis = (int)axis; /* negative axes stay: the planner normalises */
    return st;
}

static fp_status op_pad(ctx *c, tnode *nd, int v2) {
    TRY(need_inputs(c, nd, v2 ? 3 : 2, v2 ? 3 : 2));
    if (v2) {
        tnode *k = const_input(c, nd, 2);
        const wentry *w = k ? &c->w[k->weight] : NULL;
        void *val = NULL;
        if (!w || w->count != 1)
            return nfail(c, nd, FP_ERR_UNSUPPORTED, "constant_values must be a constant scalar");
        TRY(decode_weight(c, k, w, &val));
        float f32;
        int32_t i32;
        memcpy(&f32, val, 4);
        memcpy(&i32, val, 4);
        int zero = w->dtype == NN_F32 ? f32 == 0.0f : i32 == 0;
        free(val);
        if (!zero) return nfail(c, nd, FP_ERR_UNSUPPORTED, "only zero padding is supported");
    }
    int in[2];
    TRY(input_value(c, nd, 0, &in[0]));
    TRY(input_value(c, nd, 1, &in[1]));
    return emit(c, nd, NN_OP_PAD, in, 2, value_dtype(c, in[0]), NULL);
}

static fp_status dt_to_nn(const char *dt, nn_dtype *out) {
    if (!dt) return FP_ERR_FORMAT;
    if (strcmp(dt, "DT_FLOAT") == 0) *out = NN_F32;
    else if (strcmp(dt, "DT_INT32") == 0 || strcmp(dt, "DT_INT64") == 0) *out = NN_I32;
    else return FP_ERR_UNSUPPORTED;
    return FP_OK;
}

typedef struct op_map {
    const char *name;
    nn_op_type type;
    int n_in; /* exact input count for the element-wise table */
} op_map;

static const op_map elementwise[] = {
    {"AddV2", NN_OP_ADD, 2},      {"Add", NN_OP_ADD, 2},       {"BiasAdd", NN_OP_ADD, 2},
    {"Sub", NN_OP_SUB, 2},        {"Mul", NN_OP_MUL, 2},       {"RealDiv", NN_OP_DIV, 2},
    {"Div", NN_OP_DIV, 2},        {"Minimum", NN_OP_MIN, 2},   {"Maximum", NN_OP_MAX, 2},
    {"Relu", NN_OP_RELU, 1},      {"Relu6", NN_OP_RELU6, 1},   {"Abs", NN_OP_ABS, 1},
    {"Neg", NN_OP_NEG, 1},        {"Sigmoid", NN_OP_SIGMOID, 1}, {"Tanh", NN_OP_TANH, 1},
    {"Exp", NN_OP_EXP, 1},        {"Sqrt", NN_OP_SQRT, 1},     {"Rsqrt", NN_OP_RSQRT, 1},
    {"Square", NN_OP_SQUARE, 1},  {"Prelu", NN_OP_PRELU, 2},   {"Reshape", NN_OP_RESHAPE, 2},
    {"Identity", NN_OP_IDENTITY, 1}, {"StopGradient", NN_OP_IDENTITY, 1},
    {"Snapshot", NN_OP_IDENTITY, 1},
};

static fp_status translate(ctx *c, tnode *nd) {
    const char *op = nd->op;
    if (strcmp(op, "Const") == 0 || strcmp(op, "NoOp") == 0) return FP_OK; /* lazy / no data */
    if (strcmp(op, "Placeholder") == 0) return op_placeholder(c, nd);
    if (strcmp(op, "Conv2D") == 0) return op_conv(c, nd, 0, 0);
    if (strcmp(op, "_FusedConv2D") == 0) return op_conv(c, nd, 0, 1);
    if (strcmp(op, "DepthwiseConv2dNative") == 0) return op_conv(c, nd, 1, 0);
    if (strcmp(op, "FusedDepthwiseConv2dNative") == 0) return op_conv(c, nd, 1, 1);
    if (strcmp(op, "MatMul") == 0) return op_matmul(c, nd, 0);
    if (strcmp(op, "_FusedMatMul") == 0) return op_matmul(c, nd, 1);
    if (strcmp(op, "MaxPool") == 0) return op_pool(c, nd, NN_OP_MAXPOOL);
    if (strcmp(op, "AvgPool") == 0) return op_pool(c, nd, NN_OP_AVGPOOL);
    if (strcmp(op, "ConcatV2") == 0) return op_concat(c, nd, 0);
    if (strcmp(op, "Concat") == 0) return op_concat(c, nd, 1);
    if (strcmp(op, "Pad") == 0) return op_pad(c, nd, 0);
    if (strcmp(op, "PadV2") == 0) return op_pad(c, nd, 1);
    if (strcmp(op, "Shape") == 0) {
        const char *ot = attr_type(nd, "out_type");
        nn_dtype d;
        if (ot && dt_to_nn(ot, &d) != FP_OK)
            return nfail(c, nd, FP_ERR_UNSUPPORTED, "out_type %s is not supported", ot);
        nn_op *o = NULL;
        TRY(op_simple(c, nd, NN_OP_SHAPE, 1, 1, &o));
        c->g->values[o->out[0]].dtype = NN_I32;
        return FP_OK;
    }
    if (strcmp(op, "BiasAdd") == 0) TRY(check_nhwc(c, nd)); /* then mapped to ADD below */
    for (size_t i = 0; i < sizeof elementwise / sizeof elementwise[0]; i++) {
        if (strcmp(op, elementwise[i].name) != 0) continue;
        nn_op *o = NULL;
        TRY(op_simple(c, nd, elementwise[i].type, elementwise[i].n_in, elementwise[i].n_in, &o));
        o->p.act = NN_ACT_NONE;
        return FP_OK;
    }
    if (strcmp(op, "LeakyRelu") == 0) {
        float a;
        TRY(attr_float(c, nd, "alpha", 0.2f, &a));
        nn_op *o = NULL;
        TRY(op_simple(c, nd, NN_OP_LEAKY_RELU, 1, 1, &o));
        o->p.leaky_alpha = a;
        return FP_OK;
    }
    if (strcmp(op, "Softmax") == 0) {
        nn_op *o = NULL;
        TRY(op_simple(c, nd, NN_OP_SOFTMAX, 1, 1, &o));
        o->p.softmax_beta = 1.0f;
        return FP_OK;
    }
    if (strcmp(op, "Mean") == 0) {
        int keep;
        TRY(attr_bool(c, nd, "keep_dims", &keep));
        nn_op *o = NULL;
        TRY(op_simple(c, nd, NN_OP_MEAN, 2, 2, &o));
        o->p.keep_dims = keep;
        return FP_OK;
    }
    if (strcmp(op, "ResizeBilinear") == 0) {
        int ac, hp;
        TRY(attr_bool(c, nd, "align_corners", &ac));
        TRY(attr_bool(c, nd, "half_pixel_centers", &hp));
        if (ac && hp)
            return nfail(c, nd, FP_ERR_FORMAT, "align_corners and half_pixel_centers both set");
        nn_op *o = NULL;
        TRY(op_simple(c, nd, NN_OP_RESIZE_BILINEAR, 2, 2, &o));
        o->p.resize.align_corners = ac;
        o->p.resize.half_pixel = hp;
        return FP_OK;
    }
    if (strcmp(op, "DepthToSpace") == 0) {
        int64_t b;
        TRY(check_nhwc(c, nd));
        TRY(attr_int(c, nd, "block_size", -1, 2, MAX_WINDOW, &b));
        if (b < 2) return nfail(c, nd, FP_ERR_FORMAT, "attr 'block_size' is missing");
        nn_op *o = NULL;
        TRY(op_simple(c, nd, NN_OP_DEPTH_TO_SPACE, 1, 1, &o));
        o->p.block = (int)b;
        return FP_OK;
    }
    if (strcmp(op, "StridedSlice") == 0) {
        static const char *const keys[5] = {"begin_mask", "end_mask", "ellipsis_mask",
                                            "new_axis_mask", "shrink_axis_mask"};
        int64_t m[5];
        for (int i = 0; i < 5; i++) TRY(attr_int(c, nd, keys[i], 0, 0, INT32_MAX, &m[i]));
        nn_op *o = NULL;
        TRY(op_simple(c, nd, NN_OP_STRIDED_SLICE, 4, 4, &o));
        o->p.slice.begin_mask = (int)m[0];
        o->p.slice.end_mask = (int)m[1];
        o->p.slice.ellipsis_mask = (int)m[2];
        o->p.slice.new_axis_mask = (int)m[3];
        o->p.slice.shrink_axis_mask = (int)m[4];
        return FP_OK;
    }
    if (strcmp(op, "Pack") == 0) {
        int64_t axis, nattr;
        TRY(attr_int(c, nd, "axis", 0, -NN_MAX_DIMS, NN_MAX_DIMS, &axis));
        TRY(attr_int(c, nd, "N", nd->n_in, 1, MAX_NODE_INPUTS, &nattr));
        if (nattr != nd->n_in)
            return nfail(c, nd, FP_ERR_FORMAT, "attr N = %lld but %d inputs", (long long)nattr,
                         nd->n_in);
        nn_op *o = NULL;
        TRY(op_simple(c, nd, NN_OP_PACK, 1, MAX_NODE_INPUTS, &o));
        o->p.axis = (int)axis;
        return FP_OK;
    }
    if (strcmp(op, "Cast") == 0) {
        nn_dtype to;
        const char *dt = attr_type(nd, "DstT");
        fp_status st = dt_to_nn(dt, &to);
        if (st != FP_OK)
            return nfail(c, nd, st, "cast to %s is not supported", dt ? dt : "(missing DstT)");
        nn_op *o = NULL;
        TRY(op_simple(c, nd, NN_OP_CAST, 1, 1, &o));
        o->p.cast_to = to;
        c->g->values[o->out[0]].dtype = to;
        return FP_OK;
    }
    return nfail(c, nd, FP_ERR_UNSUPPORTED, "op '%s' is not supported", op);
}

/* ---------------------------------------------------------------------------------------------- */
/* Graph inputs / outputs                                                                          */
/* ---------------------------------------------------------------------------------------------- */
static json_t *signature(const ctx *c) {
    json_t *sig = json_object_get(c->root, "signature");
    if (!json_is_object(sig)) {
        /* some converters (e.g. iris.json) keep it in userDefinedMetadata */
        json_t *udm = json_object_get(c->root, "userDefinedMetadata");
        sig = json_is_object(udm) ? json_object_get(udm, "signature") : NULL;
    }
    return json_is_object(sig) ? sig : NULL;
}

/* "node:0" -> node index; -1 when missing, -2 for a port > 0. */
static int lookup_tensor(const ctx *c, const char *s) {
    size_t len = strlen(s);
    const char *colon = strrchr(s, ':');
    if (colon) {
        const char *p = colon + 1;
        while (*p >= '0' && *p <= '9') p++;
        if (*p == '\0' && p > colon + 1) {
            len = (size_t)(colon - s);
            if (strtol(colon + 1, NULL, 10) != 0) return hmap_get(&c->nmap, s, len) >= 0 ? -2 : -1;
        }
    }
    return hmap_get(&c->nmap, s, len);
}

static fp_status set_io(ctx *c) {
    json_t *sig = signature(c);
    size_t cap = c->nn > 0 ? (size_t)c->nn : 1;
    int *idx = malloc(cap * sizeof *idx);
    char *used = calloc(cap, 1);
    if (!idx || !used) {
        free(idx);
        free(used);
        return fail(c, FP_ERR_NOMEM, "out of memory");
    }
    fp_status st = FP_OK;
    int n = 0;
    /* Inputs: signature order first, then any other Placeholder in file order. */
    json_t *sin = sig ? json_object_get(sig, "inputs") : NULL;
    const char *key;
    json_t *val;
    if (json_is_object(sin)) {
        json_object_foreach(sin, key, val) {
            json_t *jn = json_is_object(val) ? json_object_get(val, "name") : NULL;
            const char *nm = json_is_string(jn) ? json_string_value(jn) : key;
            int k = lookup_tensor(c, nm);
            if (k < 0 || strcmp(c->nodes[k].op, "Placeholder") != 0) {
                st = fail(c, FP_ERR_FORMAT, "signature input '%s' is not a Placeholder node", nm);
                goto out;
            }
            if (!used[k]) {
                used[k] = 1;
                idx[n++] = c->nodes[k].value;
            }
        }
    }
    for (int i = 0; i < c->nn; i++)
        if (!used[i] && strcmp(c->nodes[i].op, "Placeholder") == 0) idx[n++] = c->nodes[i].value;
    if (n == 0) {
        st = fail(c, FP_ERR_FORMAT, "the graph has no Placeholder input");
        goto out;
    }
    if (nn_graph_set_inputs(c->g, idx, n) != 0) {
        st = fail(c, FP_ERR_NOMEM, "out of memory");
        goto out;
    }
    const nn_shape *s0 = &c->g->values[idx[0]].shape;
    c->g->decl_batch = s0->ndim > 0 && s0->d[0] > 0 && s0->d[0] <= INT_MAX ? (int)s0->d[0] : 1;

    /* Outputs: the signature in file order, else every computed node nobody reads. */
    n = 0;
    json_t *sout = sig ? json_object_get(sig, "outputs") : NULL;
    if (json_is_object(sout) && json_object_size(sout) > 0) {
        if (json_object_size(sout) > (size_t)c->nn) {
            st = fail(c, FP_ERR_FORMAT, "more signature outputs than nodes");
            goto out;
        }
        json_object_foreach(sout, key, val) {
            json_t *jn = json_is_object(val) ? json_object_get(val, "name") : NULL;
            const char *nm = json_is_string(jn) ? json_string_value(jn) : key;
            int k = lookup_tensor(c, nm);
            if (k == -2) {
                st = fail(c, FP_ERR_FORMAT, "signature output '%s': that node has a single output",
                          nm);
                goto out;
            }
            if (k < 0) {
                st = fail(c, FP_ERR_FORMAT, "signature output '%s' names a missing node", nm);
                goto out;
            }
            tnode *nd = &c->nodes[k];
            if (strcmp(nd->op, "Const") == 0 && (st = materialise(c, nd)) != FP_OK) goto out;
            if (nd->value < 0) {
                st = nfail(c, nd, FP_ERR_FORMAT, "signature output '%s' produces no tensor", key);
                goto out;
            }
            idx[n++] = nd->value;
        }
    } else {
        for (int i = 0; i < c->nn; i++) {
            tnode *nd = &c->nodes[i];
            if (!nd->consumed && nd->value >= 0 && strcmp(nd->op, "Const") != 0 &&
                strcmp(nd->op, "Placeholder") != 0)
                idx[n++] = nd->value;
        }
        if (n == 0) {
            st = fail(c, FP_ERR_FORMAT, "no signature and no unconsumed node to use as output");
            goto out;
        }
    }
    if (nn_graph_set_outputs(c->g, idx, n) != 0) st = fail(c, FP_ERR_NOMEM, "out of memory");
out:
    free(idx);
    free(used);
    return st;
}

/* ---------------------------------------------------------------------------------------------- */
/* Entry point                                                                                     */
/* ---------------------------------------------------------------------------------------------- */
static fp_status load(ctx *c, const char *json, size_t json_len) {
    json_error_t jerr;
    c->root = json_loadb(json, json_len, 0, &jerr);
    if (!c->root)
        return fail(c, FP_ERR_FORMAT, "model.json: %s (line %d, column %d)", jerr.text, jerr.line,
                    jerr.column);
    if (!json_is_object(c->root)) return fail(c, FP_ERR_FORMAT, "model.json is not an object");
    json_t *fmt = json_object_get(c->root, "format");
    if (json_is_string(fmt) && strcmp(json_string_value(fmt), "graph-model") != 0)
        return fail(c, FP_ERR_UNSUPPORTED, "format '%s' is not a graph model",
                    json_string_value(fmt));
    c->g = nn_graph_new("tfjs");
    if (!c->g) return fail(c, FP_ERR_NOMEM, "out of memory");
    c->g->decl_batch = 1;
    TRY(parse_manifest(c));
    TRY(parse_nodes(c));
    TRY(topo_sort(c));
    for (int i = 0; i < c->norder; i++) TRY(translate(c, &c->nodes[c->order[i]]));
    return set_io(c);
}

fp_status nn_load_tfjs(const char *json, size_t json_len, const void *weights, size_t weights_len,
                       nn_graph **out, char *err, size_t errlen) {
    ctx c;
    memset(&c, 0, sizeof c);
    c.err = err;
    c.errlen = errlen;
    if (err && errlen) err[0] = '\0';
    if (out) *out = NULL;
    if (!json || !out || (!weights && weights_len))
        return fail(&c, FP_ERR_INVALID_ARG, "nn_load_tfjs: NULL argument");
    c.wbuf = weights;
    c.wlen = weights ? weights_len : 0;
    fp_status st = load(&c, json, json_len);
    if (st == FP_OK) {
        *out = c.g;
        c.g = NULL;
    }
    nn_graph_free(c.g);
    for (int i = 0; i < c.nn; i++) {
        free(c.nodes[i].in_node);
        free(c.nodes[i].in_port);
    }
    free(c.nodes);
    free(c.order);
    free(c.w);
    hmap_free(&c.nmap);
    hmap_free(&c.wmap);
    json_decref(c.root);
    return st;
}
