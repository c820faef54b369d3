/*
 * fuzz_tflite.c - libFuzzer target for the TFLite loader: any byte string must either load or be
 * rejected with a status, never crash, hang, leak or allocate without bound. Seeds in
 * fuzz/corpus/fuzz_tflite/ are the small models written by tests/test_tflite_loader.c
 * (FACEPAY_TFLITE_SEEDS=<dir>), so the fuzzer starts from valid flatbuffers.
 */
#include <stddef.h>
#include <stdint.h>

#include "nn/nn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nn_graph *g = NULL;
    char err[256];
    if (nn_load_tflite(data, size, &g, err, sizeof err) == FP_OK) {
        /* then what fp_model_load does next: ordering, fusion, shape planning, weight packing */
        (void)nn_graph_finalize(g, err, sizeof err);
        nn_graph_free(g);
    }
    return 0;
}
