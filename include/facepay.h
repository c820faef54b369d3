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
    int exact_jpeg;         /* 1: decode baseline/progressive JPEGs bit-identically to the reference's
                               jpeg-js (about 6x slower; for golden comparisons). Default 0: libjpeg-turbo */
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

/* Resizes to w x h (bilinear; area-averaging along an axis shrunk by more than 2x). */
fp_status fp_image_resize(const fp_image *img, int w, int h, fp_image *out);

/* Encodes a JPEG (quality 1..100, 4:2:0) into a malloc'ed buffer (free() it). */
fp_status fp_image_encode_jpeg(const fp_image *img, int quality, uint8_t **out, size_t *out_len);

/* Writes an RGB PNG. */
fp_status fp_image_write_png(const fp_image *img, const char *path);

void fp_image_release(fp_image *img);

/* ------------------------------------------------------------------------------------------ */
/* Face analysis                                                                               */
/* ------------------------------------------------------------------------------------------ */
/* An fp_engine holds every loaded face model (immutable, shared by threads); an fp_session holds
 * one thread's runners and scratch buffers. Coordinates are source-image pixels, x right, y down. */
typedef struct fp_engine fp_engine;
typedef struct fp_session fp_session;

#define FP_MESH_POINTS 468
#define FP_EMBEDDING_DIM 192
#define FP_DESCRIPTOR_DIM 1024
#define FP_MAX_BATCH 20

typedef struct fp_engine_options {
    const char *model_dir; /* NULL: fp_model_dir() */
    int threads;           /* per session, >= 1 (default 1) */
    int attributes;        /* load faceres (age, gender, 1024-d descriptor); default 1 */
    int passive_liveness;  /* load antispoof + liveness models; default 1 */
    int full_range;        /* load the full-range detector too (for distant faces); default 1 */
} fp_engine_options;

fp_engine_options fp_engine_options_default(void);
fp_status fp_engine_new(const fp_engine_options *opts, fp_engine **out);
void fp_engine_free(fp_engine *engine);
fp_status fp_session_new(fp_engine *engine, fp_session **out);
void fp_session_free(fp_session *session);

typedef struct fp_pose {
    float pitch, yaw, roll; /* degrees. yaw > 0: the subject turns to their left (face points to
                               the image right); pitch > 0: chin up; roll > 0: head tilted clockwise
                               on screen. See README "Head pose". */
} fp_pose;

/* Quality measures of one face and their pass/fail against fp_analyze_options thresholds. */
typedef struct fp_quality {
    float face_px;        /* inter-ocular-based face size: max(box w, h) in px */
    float brightness;     /* mean luma of the face region, 0..255 */
    float contrast;       /* std-dev of luma in the face region */
    float sharpness;      /* variance of the Laplacian of the aligned 112x112 luma (blur: low) */
    float exposure_dark;  /* fraction of face pixels with luma < 16 */
    float exposure_bright;/* fraction of face pixels with luma > 240 */
    float edge_margin;    /* distance of the face box from the nearest image edge, in face widths
                             (negative = cut off) */
    float occlusion;      /* 1 - face-presence score of the mesh model (high = occluded/not a face) */
    int size_ok, brightness_ok, contrast_ok, sharpness_ok, exposure_ok, edge_ok, occlusion_ok,
        pose_ok;
    int pass;             /* all of the above */
} fp_quality;

typedef struct fp_liveness_cues {
    float ear_left, ear_right; /* eye aspect ratio of the subject's left/right eye (open ~0.3) */
    float mouth_open;          /* inner-lip gap / mouth width */
    float gaze_x, gaze_y;      /* iris offset from the eye centre, in eye widths (+x image right) */
    float antispoof;           /* antispoof model "real" score 0..1 (-1 if not run) */
    float liveness_model;      /* liveness model "live" score 0..1 (-1 if not run) */
    float score;               /* combined single-frame liveness score 0..1 (README "Liveness") */
} fp_liveness_cues;

typedef struct fp_face {
    float box[4];             /* x, y, w, h of the detector box */
    float score;              /* detector confidence */
    float keypoints[6][2];    /* detector: right eye, left eye (image left/right), nose, mouth, ears */
    float roi[5];             /* mesh ROI: cx, cy, w, h, angle (radians) */
    float presence;           /* face-mesh face-presence score 0..1 */
    float mesh[FP_MESH_POINTS][3]; /* 468 points, x y in px, z in px (scaled like x) */
    float landmarks68[68][2]; /* 300-W-style 68-point subset of the mesh (README mapping) */
    float iris[2][5][2];      /* [image-left eye, image-right eye][centre + 4 contour points] */
    float eye_contour[2][71][2];
    float landmarks5[5][2];   /* alignment points: eye centres (iris), nose tip, mouth corners */
    float align[6];           /* similarity src -> 112x112 ArcFace crop, [a b tx; c d ty] */
    fp_pose pose;
    fp_quality quality;
    fp_liveness_cues liveness;
    float age;                /* years (-1 if attributes off) */
    float gender_male;        /* P(male) 0..1 (-1 if off) */
    int has_embedding;
    float embedding[FP_EMBEDDING_DIM]; /* MobileFaceNet, L2-normalised */
    int has_descriptor;
    float descriptor[FP_DESCRIPTOR_DIM]; /* faceres descriptor (not normalised) */
} fp_face;

typedef struct fp_analyze_options {
    int max_faces;          /* faces fully analysed (mesh, pose, ...), largest-central first; default 8 */
    int full_range;         /* 1: full-range detector (distant faces); -1: auto (short range, then
                               full range when nothing found); 0: short range only. Default -1 */
    float score_threshold;  /* detector, default 0.5 */
    float iou_threshold;    /* weighted NMS, default 0.3 */
    int embedding;          /* compute MobileFaceNet embeddings, default 1 */
    int flip_embedding;     /* average with the mirrored crop's embedding, default 1 */
    int attributes;         /* age/gender/descriptor, default 1 (if the engine has faceres) */
    int passive_liveness;   /* antispoof/liveness models, default 1 (if loaded) */
    /* frontal gate, degrees */
    float max_yaw, max_pitch, max_roll;          /* 25, 20, 30 */
    /* quality gates (SeetaFace6-style defaults, README "Quality") */
    float min_face_px;                           /* 80 */
    float min_brightness, max_brightness;        /* 70, 210 */
    float min_contrast;                          /* 20 */
    float min_sharpness;                         /* 30 */
    float max_exposure_fraction;                 /* 0.25 */
    float min_edge_margin;                       /* 0.0 */
    float max_occlusion;                         /* 0.5 */
} fp_analyze_options;

fp_analyze_options fp_analyze_options_default(void);

/* Per-stage wall time of the last fp_analyze call, milliseconds. */
typedef struct fp_timings {
    double detect, mesh, iris, pose_quality, align, embed, attributes, liveness, total;
} fp_timings;

/* Finds and analyses the faces of one image. faces[] receives up to `cap` faces, ordered with the
 * payment candidate first (largest, most central); *n_faces is the number of faces *detected*
 * (may exceed cap: the terminal uses it to refuse crowded frames). No face is not an error. */
fp_status fp_analyze(fp_session *s, const fp_image *img, const fp_analyze_options *opts,
                     fp_face *faces, int cap, int *n_faces, fp_timings *timings);

/* Embeds up to FP_MAX_BATCH already-aligned 112x112 RGB faces in one batched call. */
fp_status fp_embed_aligned(fp_session *s, const fp_image *aligned, int n, int flip,
                           float (*embeddings)[FP_EMBEDDING_DIM]);

/* Aligned 112x112 RGB crop of an analysed face (ArcFace template). */
fp_status fp_face_aligned_crop(const fp_image *img, const fp_face *face, fp_image *out);

/* Cosine similarity of two embeddings. */
float fp_cosine(const float *a, const float *b, int dim);

/* Blink detection over a sequence of frames from the eye aspect ratio (mean of both eyes per frame;
 * NaN for frames without a face). Works in time, not frames (10-60 fps), with a per-sequence open-eye
 * baseline; the rules are documented in src/face/blink.c. */
#define FP_MAX_BLINKS 32
typedef struct fp_blink_params {
    float close_ratio;   /* eye counts as closed below close_ratio x baseline (0.70) */
    float open_ratio;    /* and open again above open_ratio x baseline (0.85) */
    double min_ms, max_ms; /* closed-phase duration of a blink (30 .. 700 ms) */
    double max_gap_ms;   /* a longer gap between valid frames cancels a blink in progress (400) */
    float min_baseline;  /* no blink detection unless the open-eye EAR reaches this (0.15) */
} fp_blink_params;

typedef struct fp_blink_result {
    int blinks;                 /* complete blinks found */
    double t_ms[FP_MAX_BLINKS]; /* when each blink started */
    float depth[FP_MAX_BLINKS]; /* 1 - min EAR / baseline */
    int long_closures;          /* eyes shut longer than max_ms */
    float baseline;             /* open-eye EAR used */
    int valid_frames;
} fp_blink_result;

fp_blink_params fp_blink_params_default(void);
fp_status fp_detect_blinks(const double *t_ms, const float *ear, int n, const fp_blink_params *params,
                           fp_blink_result *out);

/* Draws boxes, landmarks, iris and pose axes of the faces onto img (for --draw). */
void fp_draw_faces(fp_image *img, const fp_face *faces, int n);

/* ------------------------------------------------------------------------------------------ */
/* Video and camera frames (src/video/)                                                        */
/* ------------------------------------------------------------------------------------------ */
/* Frames of a video file (anything FFmpeg reads) or a V4L2 camera ("/dev/videoN"), in RGB with a
 * presentation time in milliseconds. One fp_video is used by one thread. */
typedef struct fp_video fp_video;

fp_status fp_video_open(const char *source, fp_video **out);
void fp_video_close(fp_video *video);

/* Frame size and nominal frame rate (0 when unknown). */
fp_status fp_video_info(const fp_video *video, int *width, int *height, double *fps);

/* Next frame into *frame (release with fp_image_release) and its time; at the end *eof = 1 and no
 * frame is returned. A corrupt stream is FP_ERR_FORMAT. */
fp_status fp_video_next(fp_video *video, fp_image *frame, double *t_ms, int *eof);

/* ------------------------------------------------------------------------------------------ */
/* Template store (src/store/)                                                                 */
/* ------------------------------------------------------------------------------------------ */
/* Enrolled users and their face templates in one SQLite database (WAL; other modules add their
 * tables to the same file). Embeddings are stored encrypted with XChaCha20-Poly1305 under a
 * 32-byte key that never enters the database; each record is bound (associated data) to its user,
 * row and purpose, so a ciphertext copied to another user or row fails to decrypt.
 *
 *  - One fp_store may be shared by threads: calls on it are serialised by an internal lock. For
 *    reads that run in parallel, open one handle per thread (WAL readers never block the writer).
 *  - Ids (users, models) are 1..63 bytes of [A-Za-z0-9._@:+-] (models may also use '/').
 *  - Embeddings are float32, dim 1..FP_STORE_MAX_DIM, finite, not all zero.
 *  - A deleted user keeps a tombstone row (status FP_USER_DELETED, empty name, no biometric data)
 *    so ledger and audit references stay valid; its id is never reused.
 *  - Callbacks of the fp_store_foreach_* calls must not write through the same handle; they
 *    return non-zero to stop early (the call then still returns FP_OK). */
#define FP_STORE_ID_MAX 63      /* bytes of a user / model id, without the NUL */
#define FP_STORE_NAME_MAX 127   /* bytes of a display name (UTF-8), without the NUL */
#define FP_STORE_SOURCE_MAX 255 /* bytes of a template source ("photo:a.jpg", "video:f.mp4#12") */
#define FP_STORE_MAX_DIM 4096

typedef struct fp_store fp_store;

/* A template-encryption key. Wipe copies with fp_key_wipe() when done. */
typedef struct fp_key {
    uint8_t bytes[32];
} fp_key;

/* Loads the key from key_file (32 raw bytes, or 64 hex characters plus optional whitespace; the
 * file must not be readable by group/others), or, when key_file is NULL, from the environment
 * variable FACEPAY_KEY (64 hex characters). */
fp_status fp_key_load(const char *key_file, fp_key *out);

/* Writes a new random key as 64 hex characters to key_file, created with mode 0600. Refuses to
 * overwrite an existing file (FP_ERR_IO). */
fp_status fp_key_generate(const char *key_file);

/* Zeroes a key (the compiler may not drop it). NULL-safe. */
void fp_key_wipe(fp_key *key);

/* Opens the database at path, creating it (mode 0600) and applying schema migrations as needed.
 * The key is copied into locked memory. A key other than the one the DB was created with gives
 * FP_ERR_INVALID_ARG ("wrong template key for DB ..."); a DB written by a newer facepay gives
 * FP_ERR_UNSUPPORTED; a file that is not a facepay DB gives FP_ERR_FORMAT. */
fp_status fp_store_open(const char *path, const fp_key *key, fp_store **out);

/* Closes the DB and wipes the key copy. NULL-safe. */
void fp_store_close(fp_store *s);

/* Schema version of an open store (PRAGMA user_version); -1 on error. */
int fp_store_schema_version(fp_store *s);

typedef enum fp_user_status {
    FP_USER_ACTIVE = 0,  /* may pay */
    FP_USER_LOCKED = 1,  /* kept, but not in the gallery (fp_store_foreach_mean skips it) */
    FP_USER_DELETED = 2  /* tombstone: biometric data and name erased */
} fp_user_status;

typedef struct fp_user {
    char id[FP_STORE_ID_MAX + 1];
    char name[FP_STORE_NAME_MAX + 1];
    int64_t created_ms;   /* unix time, milliseconds */
    int status;           /* fp_user_status */
    int n_templates;      /* over every model */
} fp_user;

/* Adds an active user. An id already in use (or once used by a deleted user) gives
 * FP_ERR_INVALID_ARG. name may be "" (not NULL). */
fp_status fp_store_user_add(fp_store *s, const char *id, const char *name);

/* FP_ERR_NOT_FOUND for an unknown id; a deleted user is returned with status FP_USER_DELETED. */
fp_status fp_store_user_get(fp_store *s, const char *id, fp_user *out);

/* Sets FP_USER_ACTIVE or FP_USER_LOCKED (deletion goes through fp_store_user_delete). */
fp_status fp_store_user_set_status(fp_store *s, const char *id, int status);

/* Erases a user's templates, mean templates, lookalike pairs and display name, leaving a tombstone
 * and an audit entry "deleted". Freed pages are always zeroed (secure_delete); with vacuum != 0 the
 * file is also rebuilt (VACUUM + WAL checkpoint) so no trace of the old ciphertexts stays in it.
 * Deleting an already deleted user is FP_OK; an unknown id is FP_ERR_NOT_FOUND. */
fp_status fp_store_user_delete(fp_store *s, const char *id, int vacuum);

/* Every user (deleted ones included) in id order. */
fp_status fp_store_foreach_user(fp_store *s, int (*cb)(void *ctx, const fp_user *user), void *ctx);

/* Rebuilds the file (VACUUM, then a truncating WAL checkpoint). */
fp_status fp_store_vacuum(fp_store *s);

/* Metadata of one stored template (never the embedding). */
typedef struct fp_template_info {
    int64_t id;
    char user_id[FP_STORE_ID_MAX + 1];
    char model_id[FP_STORE_ID_MAX + 1]; /* model name and version, e.g. "mobilefacenet@1" */
    int dim;
    float quality;
    char source[FP_STORE_SOURCE_MAX + 1];
    int64_t created_ms;
} fp_template_info;

/* Stores an embedding for an existing, not deleted user and recomputes the user's mean template
 * for model_id, in one transaction. *template_id (may be NULL) receives the new row id. */
fp_status fp_store_template_add(fp_store *s, const char *user_id, const char *model_id,
                                const float *emb, int dim, float quality, const char *source,
                                int64_t *template_id);

/* Decrypts template `id`: info (may be NULL) gets its metadata, emb (may be NULL) its dim values
 * (cap must be >= dim, else FP_ERR_SHAPE). A ciphertext that fails authentication (tampered, or
 * moved from another row) gives FP_ERR_FORMAT naming the user. */
fp_status fp_store_template_get(fp_store *s, int64_t id, fp_template_info *info, float *emb,
                                int cap);

/* Deletes template `id` and recomputes (or removes) the user's mean for its model. */
fp_status fp_store_template_delete(fp_store *s, int64_t id);

/* Metadata of a user's templates in id order (model_id NULL: every model). */
fp_status fp_store_foreach_template(fp_store *s, const char *user_id, const char *model_id,
                                    int (*cb)(void *ctx, const fp_template_info *t), void *ctx);

/* The user's mean template for model_id: the L2-normalised mean of the user's L2-normalised
 * templates of that model. dim must equal the stored dim (FP_ERR_SHAPE); FP_ERR_NOT_FOUND when the
 * user has no template of that model. */
fp_status fp_store_user_mean(fp_store *s, const char *user_id, const char *model_id, float *emb,
                             int dim);

/* Calls cb with the mean template of every active user for model_id, in user-id order (gallery
 * loading). The emb buffer is only valid during the call. A record that fails authentication stops
 * the walk with FP_ERR_FORMAT. */
fp_status fp_store_foreach_mean(fp_store *s, const char *model_id,
                                int (*cb)(void *ctx, const char *user_id, const float *emb,
                                          int dim),
                                void *ctx);

/* Records that users a and b look alike (score: their similarity); a second call updates the
 * score. Both must exist and not be deleted; a == b is FP_ERR_INVALID_ARG. */
fp_status fp_store_lookalike_add(fp_store *s, const char *a, const char *b, float score);

/* 1 if the user is in any lookalike pair, 0 if not, -1 on error (see fp_last_error). */
int fp_store_is_lookalike(fp_store *s, const char *user_id);

/* Appends an enrollment audit entry. event: 1..31 bytes of [a-z0-9_.-]; detail: up to 1023 bytes
 * of printable UTF-8 (may be NULL), never biometric data. The user need not exist. The store
 * writes its own entries too: "created", "template_added", "template_deleted", "status",
 * "lookalike", "deleted". */
fp_status fp_store_audit(fp_store *s, const char *user_id, const char *event, const char *detail);

typedef struct fp_audit_entry {
    int64_t id;
    char user_id[FP_STORE_ID_MAX + 1];
    char event[32];
    const char *detail; /* valid during the callback */
    int64_t time_ms;
} fp_audit_entry;

/* Audit entries in insertion order (user_id NULL: every user). */
fp_status fp_store_foreach_audit(fp_store *s, const char *user_id,
                                 int (*cb)(void *ctx, const fp_audit_entry *e), void *ctx);

/* ------------------------------------------------------------------------------------------ */
/* 1:N search (src/match/)                                                                     */
/* ------------------------------------------------------------------------------------------ */
/* @@MATCH@@ (declarations owned by the match module) */

#ifdef __cplusplus
}
#endif
#endif /* FACEPAY_H */
