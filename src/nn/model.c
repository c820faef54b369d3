/*
 * model.c - the public face of the runtime (fp_model_*, fp_runner_*): reads model files with size
 * caps, picks the loader by content, finalises the graph, and wraps sessions. For TF.js graph models
 * the weight shards named in model.json are read from the json's folder and concatenated here, so
 * the loader itself only ever sees memory (which is what the fuzzers feed it).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/core.h"
#include "nn/nn.h"

#define MODEL_MAX_BYTES ((size_t)512 << 20)

struct fp_model {
    nn_graph *g;
};

struct fp_runner {
    const fp_model *model;
    nn_session *s;
};

static fp_status finish(nn_graph *g, fp_status st, const char *what, char *err, fp_model **out) {
    if (!st) st = nn_graph_finalize(g, err, 512);
    if (st) {
        nn_graph_free(g);
        return fp_fail(st, "%s: %s", what, err);
    }
    fp_model *m = calloc(1, sizeof *m);
    if (!m) {
        nn_graph_free(g);
        return fp_fail(FP_ERR_NOMEM, "%s: out of memory", what);
    }
    m->g = g;
    *out = m;
    return FP_OK;
}

fp_status fp_model_load_tflite_memory(const void *data, size_t size, fp_model **out) {
    if (!data || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_model_load_tflite_memory: NULL argument");
    *out = NULL;
    char err[512] = "";
    nn_graph *g = NULL;
    fp_status st = nn_load_tflite(data, size, &g, err, sizeof err);
    if (st) {
        nn_graph_free(g);
        return fp_fail(st, "%s", err);
    }
    return finish(g, st, "tflite", err, out);
}

fp_status fp_model_load_tfjs_memory(const char *json, size_t json_len, const void *weights,
                                    size_t weights_len, fp_model **out) {
    if (!json || !out || (!weights && weights_len)) return fp_fail(FP_ERR_INVALID_ARG, "fp_model_load_tfjs_memory: NULL argument");
    *out = NULL;
    char err[512] = "";
    nn_graph *g = NULL;
    fp_status st = nn_load_tfjs(json, json_len, weights ? weights : "", weights_len, &g, err, sizeof err);
    if (st) {
        nn_graph_free(g);
        return fp_fail(st, "%s", err);
    }
    return finish(g, st, "tfjs", err, out);
}

/* Reads every shard listed in the manifest of a TF.js model.json (relative to its folder). */
static fp_status read_shards(const char *path, const char *json, size_t json_len, uint8_t **out,
                             size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    json_error_t jerr;
    json_t *root = json_loadb(json, json_len, 0, &jerr);
    if (!root) return fp_fail(FP_ERR_FORMAT, "%s: line %d: %s", path, jerr.line, jerr.text);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) slash[1] = 0;
    else dir[0] = 0;
    fp_status st = FP_OK;
    uint8_t *all = NULL;
    size_t total = 0;
    json_t *groups = json_object_get(root, "weightsManifest");
    if (!json_is_array(groups)) {
        st = fp_fail(FP_ERR_FORMAT, "%s: no weightsManifest array", path);
        goto done;
    }
    size_t gi, pi;
    json_t *grp, *p;
    json_array_foreach(groups, gi, grp) {
        json_t *paths = json_object_get(grp, "paths");
        if (!json_is_array(paths)) { st = fp_fail(FP_ERR_FORMAT, "%s: weightsManifest[%zu] has no paths", path, gi); goto done; }
        json_array_foreach(paths, pi, p) {
            const char *rel = json_string_value(p);
            if (!rel || strstr(rel, "..") || rel[0] == '/') { st = fp_fail(FP_ERR_FORMAT, "%s: bad shard path", path); goto done; }
            char full[8192];
            snprintf(full, sizeof full, "%s%s", dir, rel);
            uint8_t *buf;
            size_t len;
            if ((st = fp_read_file(full, MODEL_MAX_BYTES - total, &buf, &len))) goto done;
            uint8_t *grown = realloc(all, total + len + 1);
            if (!grown) { free(buf); st = fp_fail(FP_ERR_NOMEM, "%s: out of memory", full); goto done; }
            all = grown;
            memcpy(all + total, buf, len);
            total += len;
            free(buf);
        }
    }
done:
    json_decref(root);
    if (st) free(all);
    else {
        *out = all;
        *out_len = total;
    }
    return st;
}

fp_status fp_model_load(const char *path, fp_model **out) {
    if (!path || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_model_load: NULL argument");
    *out = NULL;
    uint8_t *data;
    size_t len;
    fp_status st = fp_read_file(path, MODEL_MAX_BYTES, &data, &len);
    if (st) return st;
    if (len >= 8 && memcmp(data + 4, "TFL3", 4) == 0) {
        st = fp_model_load_tflite_memory(data, len, out);
    } else {
        size_t i = 0;
        while (i < len && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t')) i++;
        if (i < len && data[i] == '{') {
            uint8_t *w;
            size_t wlen;
            st = read_shards(path, (const char *)data, len, &w, &wlen);
            if (!st) st = fp_model_load_tfjs_memory((const char *)data, len, w, wlen, out);
            free(w);
        } else {
            st = fp_fail(FP_ERR_FORMAT, "%s: neither a TFLite flatbuffer nor a TF.js model.json", path);
        }
    }
    free(data);
    if (st) {
        char msg[640];
        snprintf(msg, sizeof msg, "%s", fp_last_error());
        if (strncmp(msg, path, strlen(path)) != 0) fp_fail(st, "%s: %s", path, msg);
    }
    return st;
}

void fp_model_free(fp_model *m) {
    if (!m) return;
    nn_graph_free(m->g);
    free(m);
}

fp_status fp_model_get_info(const fp_model *m, fp_model_info *info) {
    if (!m || !info) return fp_fail(FP_ERR_INVALID_ARG, "fp_model_get_info: NULL argument");
    info->format = m->g->format;
    info->n_inputs = m->g->n_inputs;
    info->n_outputs = m->g->n_outputs;
    info->n_ops = m->g->n_ops;
    info->n_params = m->g->n_params;
    info->macs = m->g->macs;
    return FP_OK;
}

static fp_status io_info(const fp_model *m, int i, int input, const char **name, fp_shape *shape) {
    if (!m) return fp_fail(FP_ERR_INVALID_ARG, "NULL model");
    int n = input ? m->g->n_inputs : m->g->n_outputs;
    if (i < 0 || i >= n) return fp_fail(FP_ERR_INVALID_ARG, "%s %d out of range (model has %d)", input ? "input" : "output", i, n);
    const nn_value *v = &m->g->values[input ? m->g->inputs[i] : m->g->outputs[i]];
    if (name) *name = v->name;
    if (shape) {
        memset(shape, 0, sizeof *shape);
        shape->ndim = v->shape.ndim;
        for (int d = 0; d < v->shape.ndim; d++) shape->dims[d] = v->shape.d[d];
        if (input && shape->ndim > 0) shape->dims[0] = -1;
    }
    return FP_OK;
}

fp_status fp_model_input(const fp_model *m, int i, const char **name, fp_shape *shape) {
    return io_info(m, i, 1, name, shape);
}

fp_status fp_model_output(const fp_model *m, int i, const char **name, fp_shape *shape) {
    return io_info(m, i, 0, name, shape);
}

fp_status fp_runner_new(const fp_model *m, int batch, int threads, fp_runner **out) {
    if (!m || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_runner_new: NULL argument");
    *out = NULL;
    fp_runner *r = calloc(1, sizeof *r);
    if (!r) return fp_fail(FP_ERR_NOMEM, "out of memory");
    char err[512] = "";
    fp_status st = nn_session_new(m->g, batch, threads, &r->s, err, sizeof err);
    if (st) {
        free(r);
        return fp_fail(st, "runner: %s", err);
    }
    r->model = m;
    *out = r;
    return FP_OK;
}

void fp_runner_free(fp_runner *r) {
    if (!r) return;
    nn_session_free(r->s);
    free(r);
}

static void to_fp_shape(const nn_shape *s, fp_shape *out) {
    memset(out, 0, sizeof *out);
    out->ndim = s->ndim;
    for (int d = 0; d < s->ndim; d++) out->dims[d] = s->d[d];
}

float *fp_runner_input(fp_runner *r, int i, fp_shape *shape) {
    if (!r) return NULL;
    nn_shape s;
    float *p = nn_session_input(r->s, i, &s);
    if (p && shape) to_fp_shape(&s, shape);
    return p;
}

const float *fp_runner_output(const fp_runner *r, int i, fp_shape *shape) {
    if (!r) return NULL;
    nn_shape s;
    const float *p = nn_session_output(r->s, i, &s);
    if (p && shape) to_fp_shape(&s, shape);
    return p;
}

fp_status fp_runner_run(fp_runner *r) {
    if (!r) return fp_fail(FP_ERR_INVALID_ARG, "fp_runner_run: NULL runner");
    char err[512] = "";
    fp_status st = nn_session_run(r->s, err, sizeof err);
    return st ? fp_fail(st, "%s", err) : FP_OK;
}

int64_t fp_shape_count(const fp_shape *shape) {
    if (!shape || shape->ndim < 0 || shape->ndim > FP_MAX_DIMS) return 0;
    int64_t n = 1;
    for (int d = 0; d < shape->ndim; d++) {
        if (shape->dims[d] < 0) return 0;
        n *= shape->dims[d];
    }
    return n;
}

static char version[64];
static pthread_once_t version_once = PTHREAD_ONCE_INIT;

static void version_init(void) {
    snprintf(version, sizeof version, "%d.%d.%d (%s)", FP_VERSION_MAJOR, FP_VERSION_MINOR,
             FP_VERSION_PATCH, nn_kernel_name());
}

const char *fp_version(void) {
    pthread_once(&version_once, version_init);
    return version;
}
