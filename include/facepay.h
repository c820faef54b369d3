/*
 * facepay.h - the one public C API of facepay, a face-payment engine.
 *
 * Everything a program (the `facepay` CLI, the HTTP server, the tests) may use is declared here:
 * opaque handles, status codes and plain structs. Nothing else in src/ is part of the contract.
 *
 * Conventions
 *  - Every fallible call returns an fp_status; FP_OK is 0. fp_strerror() names the code and
 *    fp_last_error() gives the detailed message of the last failure on the calling thread
 *    (e.g. "MobileFaceNet.tflite: tensor 12 buffer out of range").
 *  - Handles are created by *_load / *_new and released by the matching *_free; *_free(NULL) is a no-op.
 *  - A loaded fp_model is immutable and may be shared by any number of threads; an fp_runner
 *    (the per-thread execution state of one model) must be used by one thread at a time.
 *  - Tensors are float32, row-major, NHWC.
 */
#ifndef FACEPAY_H
#define FACEPAY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FP_VERSION_MAJOR 0
#define FP_VERSION_MINOR 1
#define FP_VERSION_PATCH 0

/* ------------------------------------------------------------------------------------------ */
/* Status codes                                                                                */
/* ------------------------------------------------------------------------------------------ */
typedef enum fp_status {
    FP_OK = 0,
    FP_ERR_INVALID_ARG = 1, /* a NULL handle, an out-of-range index, a bad option value */
    FP_ERR_NOMEM = 2,       /* allocation failed */
    FP_ERR_IO = 3,          /* a file could not be opened, read or written */
    FP_ERR_FORMAT = 4,      /* corrupt, truncated or hostile file (model, image, JSON) */
    FP_ERR_UNSUPPORTED = 5, /* valid file, but uses something this build does not implement */
    FP_ERR_CHECKSUM = 6,    /* a file's sha256 differs from the pinned one */
    FP_ERR_TOO_LARGE = 7,   /* input beyond a configured limit (pixels, bytes, batch) */
    FP_ERR_SHAPE = 8,       /* tensor shapes do not fit together */
    FP_ERR_NOT_FOUND = 9,   /* a named thing (model, tensor, user) does not exist */
    FP_ERR_INTERNAL = 10    /* a bug: please report with fp_last_error() */
} fp_status;

/* Short, stable name of a status ("format error", ...). Never NULL. */
const char *fp_strerror(fp_status status);

/* Detailed message of the last failing call on this thread ("" when none). Never NULL.
 * The pointer stays valid until the next facepay call on this thread. */
const char *fp_last_error(void);

/* "0.1.0 (avx2+fma)": version and the kernel set chosen for this CPU. */
const char *fp_version(void);

/* ------------------------------------------------------------------------------------------ */
/* Neural-network runtime: load a model file and run it                                       */
/* ------------------------------------------------------------------------------------------ */
#define FP_MAX_DIMS 6

typedef struct fp_model fp_model;   /* a loaded, validated, pre-packed graph (immutable, shareable) */
typedef struct fp_runner fp_runner; /* buffers + plan for one batch size (one thread at a time) */

/* Shape of a tensor; dims[0] is the batch and is -1 in a model's declared input when the batch
 * is free (every model here is run with any batch >= 1, whatever the file declares). */
typedef struct fp_shape {
    int ndim;
    int64_t dims[FP_MAX_DIMS];
} fp_shape;

/* Static facts about a loaded model. */
typedef struct fp_model_info {
    const char *format;   /* "tflite" or "tfjs" */
    int n_inputs, n_outputs;
    int n_ops;            /* after fusion */
    int64_t n_params;     /* number of weight values */
    int64_t macs;         /* multiply-accumulates of one batch-1 run */
} fp_model_info;

/* Loads a model: a .tflite flatbuffer, or a TF.js graph model (model.json; its weight shards are
 * read from the same folder). The format is chosen by content, not by name. */
fp_status fp_model_load(const char *path, fp_model **out);

/* Loads a TFLite flatbuffer from memory (the bytes are copied). */
fp_status fp_model_load_tflite_memory(const void *data, size_t size, fp_model **out);

/* Loads a TF.js graph model from memory: the model.json text and the concatenation of its
 * weight shards in manifest order (the bytes are copied). */
fp_status fp_model_load_tfjs_memory(const char *json, size_t json_len, const void *weights,
                                    size_t weights_len, fp_model **out);

void fp_model_free(fp_model *model);

fp_status fp_model_get_info(const fp_model *model, fp_model_info *info);

/* Name and declared shape of input/output i (outputs in the order the file declares them). */
fp_status fp_model_input(const fp_model *model, int i, const char **name, fp_shape *shape);
fp_status fp_model_output(const fp_model *model, int i, const char **name, fp_shape *shape);

/* A runner executes one model for a fixed batch size with up to `threads` threads (>= 1).
 * Create one per thread (they are cheap next to the model: activations only). */
fp_status fp_runner_new(const fp_model *model, int batch, int threads, fp_runner **out);
void fp_runner_free(fp_runner *runner);

/* Input buffer i of the runner: fill it before fp_runner_run. `shape` (may be NULL) receives the
 * concrete shape (batch substituted). The buffer stays valid until fp_runner_free. */
float *fp_runner_input(fp_runner *runner, int i, fp_shape *shape);

/* Runs the model on the current inputs. */
fp_status fp_runner_run(fp_runner *runner);

/* Output buffer i after fp_runner_run (valid until the next run or fp_runner_free). */
const float *fp_runner_output(const fp_runner *runner, int i, fp_shape *shape);

/* Number of elements of a shape (product of dims; 0 for an invalid shape). */
int64_t fp_shape_count(const fp_shape *shape);

/* Folder holding the model files fetched by scripts/setup.sh: $FACEPAY_MODELS if set, else
 * $FACEPAY_CACHE/models, else $HOME/.cache/facepay/models. Never NULL. */
const char *fp_model_dir(void);

/* sha256 of a file as 64 lowercase hex characters. */
fp_status fp_file_sha256(const char *path, char hex[65]);

/* ------------------------------------------------------------------------------------------ */
/* Images                                                                                      */
/* ------------------------------------------------------------------------------------------ */
/* An 8-bit RGB image, row-major, 3 bytes per pixel, no row padding. Owned by whoever filled it;
 * release with fp_image_release. */
typedef struct fp_image {
    int width, height;
    uint8_t *rgb;
} fp_image;

typedef enum fp_pixel_format {
    FP_PIXEL_RGB24 = 0,
    FP_PIXEL_BGR24 = 1,
    FP_PIXEL_GRAY8 = 2,
    FP_PIXEL_NV12 = 3   /* Y plane (stride bytes per row) followed by interleaved UV at half size */
} fp_pixel_format;

/* Decoding limits: images above max_pixels are refused with FP_ERR_TOO_LARGE unless they are
 * JPEGs that can be scaled down in the DCT domain (1/2, 1/4, 1/8) to fit `target_max_side`
 * (0 = never downscale). Defaults: fp_image_limits_default(). */
typedef struct fp_image_limits {
    int64_t max_pixels;     /* decoded pixel count limit (default 40 MP) */
    size_t max_file_bytes;  /* default 64 MB */
    int target_max_side;    /* default 0 (full resolution) */
} fp_image_limits;

fp_image_limits fp_image_limits_default(void);

/* Decodes JPEG (EXIF orientation applied), PNG (8/16-bit, palette, gray, alpha dropped) or
 * binary/ASCII PGM/PPM, chosen by content. limits may be NULL (defaults). */
fp_status fp_image_decode(const void *data, size_t len, const fp_image_limits *limits,
                          fp_image *out);
fp_status fp_image_load(const char *path, const fp_image_limits *limits, fp_image *out);

/* Copies a raw frame from memory (stride in bytes; for NV12 the stride of the Y plane). */
fp_status fp_image_from_raw(const void *data, int width, int height, int stride,
                            fp_pixel_format format, fp_image *out);

/* Writes an RGB PNG. */
fp_status fp_image_write_png(const fp_image *img, const char *path);

void fp_image_release(fp_image *img);

#ifdef __cplusplus
}
#endif
#endif /* FACEPAY_H */
