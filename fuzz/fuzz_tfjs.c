/*
 * fuzz_tfjs.c - libFuzzer target for the TF.js graph-model loader. The input is split into the
 * model.json text and the weights buffer: the first 4 bytes (little-endian) give the JSON length,
 * clamped to what is there, the JSON follows and the rest is the weights. Splitting this way lets
 * the fuzzer mutate the manifest and the bytes it describes independently.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    size_t jlen = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 |
                  (size_t)data[3] << 24;
    if (jlen > size - 4) jlen = size - 4;
    /* Copies to exact-size heap blocks so ASan sees any read past either buffer. */
    char *json = malloc(jlen ? jlen : 1);
    size_t wlen = size - 4 - jlen;
    uint8_t *weights = malloc(wlen ? wlen : 1);
    if (!json || !weights) {
        free(json);
        free(weights);
        return 0;
    }
    memcpy(json, data + 4, jlen);
    memcpy(weights, data + 4 + jlen, wlen);
    nn_graph *g = NULL;
    char err[256];
    fp_status st = nn_load_tfjs(json, jlen, weights, wlen, &g, err, sizeof err);
    if (st == FP_OK) {
        /* touch what a caller would read: every value and op index must be in range */
        for (int i = 0; i < g->n_ops; i++)
            for (int k = 0; k < g->ops[i].n_in; k++)
                if (g->ops[i].in[k] < -1 || g->ops[i].in[k] >= g->n_values) abort();
        for (int i = 0; i < g->n_outputs; i++)
            if (g->outputs[i] < 0 || g->outputs[i] >= g->n_values) abort();
        for (int i = 0; i < g->n_inputs; i++)
            if (g->inputs[i] < 0 || g->inputs[i] >= g->n_values) abort();
        for (int i = 0; i < g->n_values; i++)
            if (g->values[i].data && g->values[i].nbytes != (size_t)nn_shape_count(&g->values[i].shape) * 4)
                abort();
        /* then what fp_model_load does next: ordering, fusion, shape planning, weight packing */
        (void)nn_graph_finalize(g, err, sizeof err);
    } else if (g != NULL || err[0] == '\0') {
        abort();
    }
    nn_graph_free(g);
    free(json);
    free(weights);
    return 0;
}
