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
    FP_ERR_INTERNAL = 10,   /* a bug: please report with fp_last_error() */
    /* payments (src/pay/) */
    FP_ERR_PAY_CONFLICT = 100,     /* same idempotency key, different request (HTTP 409) */
    FP_ERR_PAY_UNAUTHORIZED = 101, /* unknown, revoked or wrong API key (HTTP 401) */
    FP_ERR_PAY_RATE_LIMITED = 102, /* API key over its rate limit (HTTP 429) */
    FP_ERR_PAY_STATE = 103         /* operation not allowed in the payment's state (HTTP 409) */
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
typedef struct fp_pad_model fp_pad_model; /* see "Presentation attack detection" */

#define FP_MESH_POINTS 468
#define FP_EMBEDDING_DIM 192
#define FP_DESCRIPTOR_DIM 1024
#define FP_MAX_BATCH 20
/* Model id stored with every template: embedder + preprocessing version. Templates of another id
 * are never compared with these. */
#define FP_EMBEDDER_ID "mobilefacenet-tflite@1"

typedef struct fp_engine_options {
    const char *model_dir; /* NULL: fp_model_dir() */
    int threads;           /* per session, >= 1 (default 1) */
    int attributes;        /* load faceres (age, gender, 1024-d descriptor); default 1 */
    int passive_liveness;  /* load antispoof + liveness models; default 1 */
    int full_range;        /* load the full-range detector too (for distant faces); default 1 */
    const char *pad_model; /* trained presentation-attack detector (`facepay train liveness`); default
                              $FACEPAY_PAD_MODEL or NULL (none). When set it drives liveness.score */
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
    float trained;             /* the operator's trained detector, 0..1 (-1 if none configured) */
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
    int full_range;         /* 0: short range only; 1: full range only (distant faces); 2: both,
                               merged; 3: both on the whole image and on 2x2 overlapping tiles (group
                               photos with small faces; about 3x slower); -1: auto (short range, full
                               range when nothing was found). Default -1 */
    float score_threshold;  /* detector, default 0.5 */
    float iou_threshold;    /* weighted NMS, default 0.3 */
    int embedding;          /* compute MobileFaceNet embeddings, default 1 */
    int flip_embedding;     /* average with the mirrored crop's embedding, default 1 */
    int attributes;         /* age/gender/descriptor, default 1 (if the engine has faceres) */
    int passive_liveness;   /* passive models (if loaded): 0 none; 1 all of them, default; 2 only those
                               that make liveness.score (skips antispoof, reported but unused: README
                               "Liveness"; and the liveness model when a trained detector replaces it) */
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

/* Active liveness: a random challenge checked against the captured frames, plus consistency checks a
 * still or a printed photo cannot pass (identity stable across frames, 3-D parallax when the head
 * turns). Rules in src/face/challenge.c. */
#define FP_CHALLENGE_MAX_STEPS 4
typedef enum fp_challenge_step { FP_STEP_BLINK = 0, FP_STEP_TURN_LEFT, FP_STEP_TURN_RIGHT, FP_STEP_MOUTH_OPEN } fp_challenge_step;
typedef struct fp_challenge {
    int n;
    fp_challenge_step step[FP_CHALLENGE_MAX_STEPS];
    int count[FP_CHALLENGE_MAX_STEPS]; /* blinks asked for (1 for the other steps) */
} fp_challenge;

typedef struct fp_challenge_params {
    float turn_deg;          /* head turn from the starting yaw (15) */
    float mouth_open;        /* mouth opening ratio (0.35) */
    float min_identity_cos;  /* every frame vs the sequence mean (0.5) */
    float min_parallax;      /* planar-fit residual / inter-ocular distance below which it is a flat picture (0.012;
                                real tilted prints measure 0.04-0.07, above it: README "Active liveness") */
    int min_frames;          /* (8) */
    float min_face_fraction; /* frames with exactly one face (0.7) */
    double timeout_ms;       /* steps not done within this span fail (15000) */
} fp_challenge_params;

#define FP_PARALLAX_POINTS 24
/* What the challenge needs from one frame (fill with fp_liveness_frame_from_face). */
typedef struct fp_liveness_frame {
    double t_ms;
    int n_faces;
    float ear, yaw, pitch, mouth;
    int has_embedding;
    float embedding[FP_EMBEDDING_DIM];
    float points[FP_PARALLAX_POINTS][2];
} fp_liveness_frame;

typedef enum fp_challenge_verdict { FP_CHALLENGE_PASSED = 0, FP_CHALLENGE_FAILED = 1, FP_CHALLENGE_NOT_ENOUGH = 2 } fp_challenge_verdict;

typedef struct fp_challenge_result {
    fp_challenge_verdict verdict;
    char reason[160];
    int steps_done;
    int blinks;
    float max_left, max_right;   /* yaw change from the start, degrees */
    int identity_stable;
    float min_identity_cos;
    float parallax;              /* NAN when the head did not turn enough to measure it */
    int frames, frames_with_face;
} fp_challenge_result;

fp_challenge_params fp_challenge_params_default(void);
/* Random (libsodium randombytes): a blink step (1-2 blinks) and a head turn, in random order. */
fp_status fp_challenge_random(fp_challenge *c);
/* "blink:2,left" <-> challenge; human text "blink twice, then turn your head to your left". */
fp_status fp_challenge_parse(const char *text, fp_challenge *c);
void fp_challenge_code(const fp_challenge *c, char *out, size_t n);
void fp_challenge_format(const fp_challenge *c, char *out, size_t n);
void fp_liveness_frame_from_face(const fp_face *face, int n_faces, double t_ms, fp_liveness_frame *out);
fp_status fp_challenge_evaluate(const fp_challenge *c, const fp_challenge_params *params,
                                const fp_liveness_frame *frames, int n, fp_challenge_result *out);
const char *fp_challenge_verdict_name(fp_challenge_verdict v);

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
 * file is also rebuilt (VACUUM + WAL checkpoint) so no trace of the old ciphertexts stays in it;
 * if only that rebuild fails, the deletion itself is committed and fp_store_vacuum can be retried.
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
/* Gallery of enrolled templates and 1:N search (src/match/gallery.c). The gallery is a row matrix
 * of L2-normalised templates stored in fp16 (or int8 + a per-row scale), one row per template and
 * a user id per row; a search scores every row with one streamed matrix product W.Q and returns
 * the best rows per *user*. Thread safety: any number of threads may search (and call the other
 * read functions) while writers add or remove: readers take no lock and see the rows published
 * when they started (a user being re-enrolled meanwhile counts with its old or new template, or
 * the better of both, never with none); writers serialise among themselves on a mutex.
 * fp_gallery_free needs exclusive access.
 * Replaced and removed rows stay as tombstones (skipped by search, still counted by
 * fp_gallery_rows and fp_gallery_memory) until fp_gallery_compact copies the live rows. */
typedef struct fp_gallery fp_gallery;

typedef enum fp_gallery_format {
    FP_GALLERY_FP16 = 0, /* 2 bytes per element (default; scores within ~1e-4 of fp64) */
    FP_GALLERY_INT8 = 1  /* 1 byte per element + a 4-byte row scale: half the memory and scan
                            time, scores within ~2e-3 of fp64 */
} fp_gallery_format;

#define FP_GALLERY_MAX_K 16     /* top-k per query */
#define FP_GALLERY_ID_LEN 64    /* user ids are 1..63 bytes + NUL */
#define FP_GALLERY_TEMPERATURE 0.05f /* default softmax temperature (cosine units) */

/* dim: 1..4096 (FP_EMBEDDING_DIM for MobileFaceNet). */
fp_status fp_gallery_new(int dim, fp_gallery_format fmt, fp_gallery **out);
void fp_gallery_free(fp_gallery *g);

/* Enrols user_id with template emb[dim] (any non-zero finite vector; normalised here), replacing
 * every row the user had: afterwards the user has exactly this one row. A search running
 * concurrently sees the old row(s), the new one, or both (per-user best), never neither. */
fp_status fp_gallery_add(fp_gallery *g, const char *user_id, const float *emb, int dim);
/* Adds one more row for user_id, keeping its other rows (several templates per user). */
fp_status fp_gallery_append(fp_gallery *g, const char *user_id, const float *emb, int dim);
/* Removes every row of user_id; FP_ERR_NOT_FOUND if the user has none. */
fp_status fp_gallery_remove(fp_gallery *g, const char *user_id);

int64_t fp_gallery_size(const fp_gallery *g);   /* users with at least one live row */
int64_t fp_gallery_rows(const fp_gallery *g);   /* rows stored, tombstones included */
size_t fp_gallery_memory(const fp_gallery *g);  /* bytes allocated by the gallery */
int fp_gallery_dim(const fp_gallery *g);
/* User of row `row` (< fp_gallery_rows) and whether the row is live (1) or a tombstone (0). */
fp_status fp_gallery_row_user(const fp_gallery *g, int64_t row, char user_id[FP_GALLERY_ID_LEN],
                              int *live);

/* Softmax temperature of the search confidence (> 0, <= 10; default FP_GALLERY_TEMPERATURE). */
fp_status fp_gallery_set_temperature(fp_gallery *g, float t);

typedef struct fp_match {
    char user_id[FP_GALLERY_ID_LEN];
    float score;   /* cosine of the query and the user's best row */
    int64_t row;   /* that row (for fp_gallery_scores / fp_gallery_row_user) */
} fp_match;

typedef struct fp_search_result {
    int n;                          /* matches in top[] (0: empty gallery) */
    fp_match top[FP_GALLERY_MAX_K]; /* distinct users, best first */
    float margin;     /* best - second-best score among different users; a missing second user
                         counts as -1 (so one enrolled user gives score + 1) */
    float confidence; /* softmax of the best score over the top max(k, 2) users' scores / T.
                         Not the seed's softmax over all N similarities: with 1M rows that sum is
                         dominated by the impostor tail and says more about N than about the
                         match; the top-k logits keep only the competitors that matter. */
} fp_search_result;

/* Searches n (1..FP_MAX_BATCH, else FP_ERR_TOO_LARGE) queries[n][dim] (normalised here) in one
 * pass over the gallery: each gallery block is loaded once and scored against all n queries.
 * k: 1..FP_GALLERY_MAX_K; threads >= 1: up to that many OpenMP threads over row ranges (top-k
 * merged), at most one per 65,536 rows x queries. out[n]. An empty gallery is not an error: every
 * out[i].n is 0. */
fp_status fp_gallery_search(const fp_gallery *g, const float *queries, int n, int dim, int k,
                            int threads, fp_search_result *out);

/* Every score through the same kernel (evaluation, all-pairs): out[q * n_rows + row] for the
 * first n_rows rows (n_rows <= fp_gallery_rows; tombstones are scored too, see
 * fp_gallery_row_user), n >= 1 queries of any count (in batches of FP_MAX_BATCH). */
fp_status fp_gallery_scores(const fp_gallery *g, const float *queries, int n, int dim,
                            int64_t n_rows, float *out, int threads);

/* A new gallery holding only the live rows of g (same format, encoded rows copied bit for bit,
 * row order kept). Safe while others search g; writers of g wait. Swapping the handles is the
 * caller's business. */
fp_status fp_gallery_compact(const fp_gallery *g, fp_gallery **out);

/* ------------------------------------------------------------------------------------------ */
/* Identity: thresholds, enrollment, identification over frames (src/identity/)                */
/* ------------------------------------------------------------------------------------------ */
/* The decision threshold is not a magic number: `facepay eval calibrate` measures the impostor
 * score distribution and writes this config (JSON). threshold_for(N) applies the gallery-size rule:
 * a non-mated probe is compared with all N enrolled users, so FPIR ~= N x FAR(S); to keep FPIR at
 * target_fpir the per-comparison FAR must be target_fpir / N, read off the calibrated FAR curve
 * (never looser than the 1:1 threshold for target_far). Beyond the smallest FAR the calibration
 * could measure (3 / impostor comparisons, rule of three) the curve is not extrapolated: the last
 * measured threshold is used and `beyond_calibration` is reported. */
#define FP_CALIB_POINTS 64
typedef struct fp_calibration {
    char model_id[64];          /* e.g. "mobilefacenet@1+flip" */
    double target_far;          /* 1:1 target, e.g. 1e-5 */
    float threshold;            /* cosine threshold at target_far */
    double target_fpir;         /* open-set target for the whole gallery, e.g. 1e-3 */
    int64_t impostor_comparisons, genuine_comparisons;
    double far_claimable;       /* 3 / impostor_comparisons */
    float tar_at_threshold;     /* genuine acceptance at `threshold` on the calibration set */
    int n_points;               /* FAR curve: far[i] decreasing, thr[i] increasing */
    double far[FP_CALIB_POINTS];
    float thr[FP_CALIB_POINTS];
    char source[256];           /* data set and command that produced it */
} fp_calibration;

fp_status fp_calibration_load(const char *path, fp_calibration *out);
fp_status fp_calibration_save(const char *path, const fp_calibration *c);
/* Threshold for a gallery of n_users (see above); *beyond (may be NULL) = 1 when the rule asked for a
 * FAR below what the calibration measured. */
float fp_calibration_threshold_for(const fp_calibration *c, int64_t n_users, int *beyond);

/* Why a frame was not used (counts in results, JSON names in fp_reject_name). */
typedef enum fp_reject {
    FP_REJECT_NO_FACE = 0, FP_REJECT_MULTIPLE_FACES, FP_REJECT_QUALITY, FP_REJECT_POSE,
    FP_REJECT_LIVENESS, FP_REJECT_DUPLICATE, FP_REJECT_COUNT
} fp_reject;
const char *fp_reject_name(fp_reject r);

/* Enrollment: frames come in one by one (photos, a video, a camera); the enroller keeps those that
 * pass the quality and pose gates, prefers diverse poses (frontal plus slight left and right), stops
 * at `target` good frames, and commits the user with the normalised mean of the kept embeddings. */
typedef struct fp_enroll_options {
    int target;                 /* good frames to keep (10) */
    double min_interval_ms;     /* between kept frames of a video (150) */
    double timeout_ms;          /* stop after this much source time (30000; 0 = none) */
    int allow_lookalike;        /* enrol even if the face matches another user (records the pair) */
    float lookalike_threshold;  /* NAN: the calibration's threshold for the gallery size */
    float max_competing_ratio;  /* a second face this large (width ratio) competes (0.6) */
    float max_competing_frames; /* refuse when more than this fraction of frames had one (0.2) */
} fp_enroll_options;

fp_enroll_options fp_enroll_options_default(void);

typedef struct fp_enroll_status {
    int seen, kept, target;
    int rejected[FP_REJECT_COUNT];
    int competing_frames;
    int kept_frontal, kept_left, kept_right;
    int done;                   /* target reached */
} fp_enroll_status;

typedef struct fp_enroller fp_enroller;
fp_status fp_enroller_new(fp_session *s, const fp_analyze_options *analyze, const fp_enroll_options *o,
                          fp_enroller **out);
void fp_enroller_free(fp_enroller *e);
/* Analyses one frame (t_ms: source time; photos can pass 0, 1000, 2000...). */
fp_status fp_enroller_add_frame(fp_enroller *e, const fp_image *frame, double t_ms, const char *source,
                                fp_enroll_status *status);

typedef struct fp_enroll_result {
    fp_enroll_status status;
    int enrolled;                 /* 1 when the user was written */
    char lookalike_user[64];      /* best other user above the threshold ("" if none) */
    float lookalike_score;
    float threshold;              /* identification threshold used for the look-alike check */
    float template_spread;        /* mean cosine of kept embeddings to their mean */
} fp_enroll_result;

/* Decides and, on success, writes user + templates into the store and the mean into the gallery
 * (if not NULL). Refusals (nothing kept, competing faces, look-alike) return FP_ERR_INVALID_ARG with
 * the reason in fp_last_error() and the details in *result. */
fp_status fp_enroller_commit(fp_enroller *e, fp_store *store, fp_gallery *gallery,
                             const fp_calibration *calib, const char *user_id, const char *name,
                             fp_enroll_result *result);

/* Identification over a sequence of frames of one customer: per-frame gates, blink detection over
 * the eye-aspect-ratio series, 1:N search of every usable frame in batches, majority vote. */
typedef enum fp_decision { FP_DECISION_NO_MATCH = 0, FP_DECISION_MATCH = 1, FP_DECISION_UNCERTAIN = 2 } fp_decision;
const char *fp_decision_name(fp_decision d);

typedef struct fp_identify_options {
    int min_frames;          /* usable frames needed for any decision (3) */
    float min_vote_fraction; /* the winner must take this share of usable frames (0.6) */
    float min_margin;        /* best - second user; below it the result is uncertain (0.05) */
    float min_liveness;      /* per-frame passive liveness gate (0: off, the passive models are weak) */
    int require_blink;       /* no blink -> uncertain (0) */
    int max_frames;          /* frames considered (60) */
} fp_identify_options;

fp_identify_options fp_identify_options_default(void);

typedef struct fp_identify_result {
    fp_decision decision;
    char user_id[64];
    float score;             /* mean score of the winner over its votes */
    float margin;            /* mean margin over the winner's frames */
    float threshold;         /* used (gallery-size rule) */
    int beyond_calibration;
    int frames_seen, frames_used, votes;
    int frames_rejected[FP_REJECT_COUNT];
    int blink;               /* at least one blink */
    int blinks;
    float liveness_score;    /* mean single-frame liveness of the used frames */
    char reason[128];        /* why uncertain / no match */
} fp_identify_result;

typedef struct fp_identifier fp_identifier;
fp_status fp_identifier_new(fp_session *s, const fp_gallery *gallery, const fp_calibration *calib,
                            const fp_analyze_options *analyze, const fp_identify_options *o,
                            fp_identifier **out);
void fp_identifier_free(fp_identifier *id);
fp_status fp_identifier_add_frame(fp_identifier *id, const fp_image *frame, double t_ms);
/* The same for a frame the caller has already analysed (fp_analyze with max_faces >= 2, embedding on,
 * and the analyze options the identifier would use): faces/n_faces exactly as fp_analyze returned
 * them (n_faces counts every face found). Saves analysing a frame twice when the caller needed the
 * analysis anyway (a payment terminal evaluating its liveness challenge). */
fp_status fp_identifier_add_faces(fp_identifier *id, const fp_face *faces, int n_faces, double t_ms);
fp_status fp_identifier_decide(fp_identifier *id, fp_identify_result *out);

/* ------------------------------------------------------------------------------------------ */
/* Payments (src/pay/)                                                                         */
/* ------------------------------------------------------------------------------------------ */
/* The ledger, merchants and their API keys, the payment decision policy and the evidence chain,
 * all in the store's SQLite file (tables pay_*, schema migrations 2 and 3). An fp_pay handle wraps
 * an open fp_store, which it borrows (close the fp_pay first); one handle may be shared by threads.
 *
 * Money
 *  - Amounts are int64 minor units (cents) of an ISO 4217 alphabetic code ("EUR": exactly three
 *    uppercase letters). No floating point touches money. One operation moves 1..FP_PAY_MAX_AMOUNT.
 *  - Double entry: a money movement is one transaction (fp_pay_txn_kind) of postings that sum to
 *    zero, written with the balances it changes in one SQL transaction (BEGIN IMMEDIATE). A posting
 *    amount is signed: > 0 raises the account's balance, < 0 lowers it.
 *  - Accounts (fp_pay_account_kind): one customer wallet per (user, currency); one merchant account
 *    per (merchant, currency), opened at its first capture; two system accounts per currency:
 *    "funding" (top-ups come from it; the only account below zero: minus the money issued) and
 *    "hold" (money authorised while a step-up is pending).
 *  - No balance but funding's can go negative: checked inside the transaction, and by CHECK
 *    constraints should a check ever be missed. Postings and transactions are append-only
 *    (triggers refuse UPDATE and DELETE).
 *  - Customers are store users (fp_store_user_add), linked by their opaque id only: no name and no
 *    biometric data in the ledger.
 *  - Limits per customer wallet: per payment and per rolling 24 hours (the sum of the amounts of
 *    the payments not declined, created in the last 86,400,000 ms; refunds do not give it back).
 *
 * Payment life cycle (fp_pay_state)
 *   charge: accept                 -> captured  (customer -> merchant, one transaction)
 *   charge: step-up                -> authorised (customer -> hold) until fp_pay_stepup_verify:
 *           right PIN / digits     -> captured  (hold -> merchant)
 *           5th failure, cancel,
 *           expiry                 -> declined  (hold -> customer: "void")
 *   charge: refuse, limit, funds   -> declined  (nothing moves; kept with its evidence)
 *   refund (captured or partially_refunded) -> partially_refunded / refunded (merchant -> customer)
 *
 * Idempotency: each charge and refund (and a top-up through fp_pay_topup_idempotent) carries a
 * key, unique per merchant (any operation). The same key with the same request (SHA-256 over
 * operation, terminal, amount, currency and customer, payment and amount for a refund, customer,
 * currency, amount and reference for a top-up) returns the stored result with `replayed` = 1
 * and writes nothing; the same key with another request is FP_ERR_PAY_CONFLICT. A declined charge
 * keeps its key (a retry gets the same decline; use a new key for a new attempt). The biometric
 * inputs are not part of the request hash: a terminal retrying after a timeout may send a
 * re-captured frame, and the first decision stands.
 *
 * Status codes of the payment calls, beyond the common ones. They are not members of enum
 * fp_status (whose list belongs to the core); compare them with ==, not in a switch (a case label
 * outside the enumeration warns under -Wswitch). fp_pay_strerror names them.                    */
/* idempotency key reused for another request (HTTP 409) */
/* API key malformed, unknown, wrong or revoked (HTTP 401) */
/* the key's token bucket is empty (HTTP 429) */
/* not allowed in the current state: over-refund, refund of a declined payment, step-up of a
 * captured one, top-up of a closed wallet, charge on a disabled terminal, ... (HTTP 409/422) */

/* fp_strerror plus the names of the FP_ERR_PAY_* codes. Never NULL. (fp_strerror itself says
 * "unknown status" for them until the core's list takes them in.) */
const char *fp_pay_strerror(fp_status status);

#define FP_PAY_MAX_AMOUNT INT64_C(1000000000000000) /* 10^15 minor units per operation */
#define FP_PAY_KEY_LEN 64      /* API key: "fpk_" + 16 hex (key id) + "_" + 43 base64url chars */
#define FP_PAY_KEY_ID_LEN 16   /* the public part that names a key (logs, revocation) */
#define FP_PAY_IDEM_MAX 255    /* idempotency key: 1..255 printable ASCII bytes */
#define FP_PAY_PIN_MIN 4       /* PIN: 4..12 ASCII digits */
#define FP_PAY_PIN_MAX 12
#define FP_PAY_THUMB_MAX (256 * 1024) /* JPEG thumbnail bytes kept in an evidence record */

typedef struct fp_pay fp_pay;

/* ---- Decision policy (src/pay/policy.c) ---- */

typedef enum fp_pay_verdict {
    FP_PAY_ACCEPT = 0, /* pay now */
    FP_PAY_STEPUP = 1, /* hold the money; ask for the PIN (or the phone number's last 4 digits) */
    FP_PAY_REFUSE = 2
} fp_pay_verdict;

typedef enum fp_pay_stepup {
    FP_STEPUP_NONE = 0,
    FP_STEPUP_PIN = 1,
    FP_STEPUP_PHONE4 = 2 /* the last 4 digits of the phone number */
} fp_pay_stepup;

/* Why: bits of fp_pay_decision.reasons (several may be set). */
#define FP_PAY_WHY_AMOUNT (1u << 0)     /* step-up: amount above stepup_above */
#define FP_PAY_WHY_MARGIN (1u << 1)     /* step-up: top-1/top-2 margin below min_margin (or NaN) */
#define FP_PAY_WHY_LOOKALIKE (1u << 2)  /* step-up: the customer is in a look-alike pair */
#define FP_PAY_WHY_LIVENESS (1u << 3)   /* step-up: no blink (require_blink) or a liveness score
                                           below min_liveness */
#define FP_PAY_WHY_UNCERTAIN (1u << 4)  /* step-up: the identifier answered "uncertain" */
#define FP_PAY_WHY_NO_MATCH (1u << 8)   /* refuse: no match, or no candidate user */
#define FP_PAY_WHY_SCORE (1u << 9)      /* refuse: score below the identification threshold (NaN) */
#define FP_PAY_WHY_FRAMES (1u << 10)    /* refuse: fewer usable frames than min_frames */
#define FP_PAY_WHY_SPOOF (1u << 11)     /* refuse: liveness score below refuse_liveness */
#define FP_PAY_WHY_LOCKED (1u << 12)    /* refuse: face payment locked after failed step-ups */
#define FP_PAY_WHY_CUSTOMER (1u << 13)  /* refuse: no open wallet in this currency, or the user is
                                           not active (store status locked/deleted) */
#define FP_PAY_WHY_NO_STEPUP (1u << 14) /* refuse: a step-up is needed but the customer has no
                                           usable method (no PIN; no phone digits, or the amount
                                           is above phone_stepup_max) */

/* The policy's knobs. Amounts are minor units of the payment's currency (one set of numbers for
 * every currency: deployments with currencies of very different unit value use one fp_pay per
 * currency, or per-customer limits). Defaults: fp_pay_policy_default(). */
typedef struct fp_pay_policy {
    int64_t stepup_above;     /* amounts strictly above need a step-up (5000 = 50.00) */
    int64_t phone_stepup_max; /* the phone's last 4 digits count as a step-up up to this amount;
                                 above it only a PIN does (2000): four public digits are weak */
    float min_margin;         /* margin below this asks for a step-up (0.10; the identifier itself
                                 answers "uncertain" below its own 0.05) */
    float min_liveness;       /* liveness score below this is "uncertain": step-up (0.5, which is
                                 what the score is when no passive model ran) */
    float refuse_liveness;    /* liveness score below this is refused outright (0.10). Low on
                                 purpose: the passive models are weak (README "Liveness") */
    int require_blink;        /* no blink over the frames is "uncertain liveness": step-up (1) */
    int min_frames;           /* fewer usable frames are refused (3) */
    int max_stepup_failures;  /* failed step-ups in a row that lock face payment (5) */
} fp_pay_policy;

fp_pay_policy fp_pay_policy_default(void);

/* What the ledger knows of the customer when deciding. */
typedef struct fp_pay_customer_state {
    int has_wallet;  /* an open wallet in the payment's currency */
    int active;      /* store user active and payment customer not deleted */
    int face_locked; /* locked after max_stepup_failures failed step-ups */
    int lookalike;   /* fp_store_is_lookalike() == 1 */
    int has_pin, has_phone;
} fp_pay_customer_state;

typedef struct fp_pay_decision {
    fp_pay_verdict verdict;
    uint32_t reasons;     /* FP_PAY_WHY_* */
    fp_pay_stepup stepup; /* method asked for when verdict is FP_PAY_STEPUP (PIN when the customer
                             has one), else FP_STEPUP_NONE */
} fp_pay_decision;

/* Pure function of its inputs (no I/O, no clock). p NULL: defaults; id or c NULL: refuse.
 * Refused: locked, inactive or wallet-less customer, no match / no user, score below the
 * threshold (a PIN never turns a non-matching face into a payment: a stolen PIN must not pay with
 * someone else's face), too few frames, liveness below refuse_liveness, or a needed step-up
 * without a usable method. Otherwise step-up when the amount is above stepup_above, the margin is
 * below min_margin, the customer is in a look-alike pair, liveness is uncertain or the identifier
 * was uncertain; accept when none of these holds. All reasons found are reported. */
fp_pay_decision fp_pay_decide(const fp_pay_policy *p, const fp_identify_result *id, int64_t amount,
                              const fp_pay_customer_state *c);

/* ---- The handle ---- */

typedef struct fp_pay_options {
    fp_pay_policy policy;
    /* Secret of the API-key hashes (BLAKE2b-256 keyed). NULL: derived from the store's template key
     * (keyed BLAKE2b of a constant), so one secret less to deploy; pass a separate random 32-byte
     * secret to keep API keys valid across a template-key rotation. Copied into locked memory. */
    const uint8_t *api_secret;
    /* Per-API-key token bucket (in memory, per fp_pay: a restart refills it, and N server processes
     * allow N times the rate). Tokens per second and bucket size; rate <= 0 turns the limit off. */
    double rate_per_s;  /* 20 */
    double rate_burst;  /* 40 */
    /* argon2id cost of PIN hashes (crypto_pwhash_argon2id_*; defaults: the INTERACTIVE limits).
     * A stored hash carries its own cost, so lowering these only affects new PINs. */
    unsigned long long pin_opslimit;
    size_t pin_memlimit;
    int64_t default_per_payment_limit; /* new wallets: 50000 (500.00) */
    int64_t default_daily_limit;       /* new wallets: 100000 (1000.00) per rolling 24 h */
    int64_t stepup_ttl_ms;             /* a pending step-up expires after this (300000 = 5 min) */
    /* Clock, unix milliseconds (NULL: wall clock). Tests inject one to cross days. */
    int64_t (*clock_ms)(void *ctx);
    void *clock_ctx;
} fp_pay_options;

fp_pay_options fp_pay_options_default(void);

/* Opens the payment service on an open store (whose schema already holds the pay_* tables). */
fp_status fp_pay_open(fp_store *store, const fp_pay_options *opts, fp_pay **out);
void fp_pay_close(fp_pay *pay); /* wipes the secrets; NULL-safe */

/* ---- Merchants, terminals, API keys ---- */

/* Ids are store-style ids (1..63 bytes of [A-Za-z0-9._@:+-]); names printable UTF-8, <= 127 bytes.
 * An existing id gives FP_ERR_INVALID_ARG. Terminal ids are per merchant. */
fp_status fp_pay_merchant_create(fp_pay *pay, const char *merchant_id, const char *name);
fp_status fp_pay_terminal_create(fp_pay *pay, const char *merchant_id, const char *terminal_id,
                                 const char *name);
/* A disabled terminal cannot charge (existing payments stay). */
fp_status fp_pay_terminal_disable(fp_pay *pay, const char *merchant_id, const char *terminal_id);

/* API key scopes (bits): what a key may do; the HTTP server checks them per route. A terminal
 * needs only PAYMENTS; enrolment desks and back offices get CUSTOMERS and/or REFUNDS. */
#define FP_PAY_SCOPE_PAYMENTS 0x1u  /* sessions, payments, read a payment, step-up, cancel */
#define FP_PAY_SCOPE_REFUNDS 0x2u   /* refunds (and reading payments) */
#define FP_PAY_SCOPE_CUSTOMERS 0x4u /* customers: create, read, enrol, top up, postings, delete */
#define FP_PAY_SCOPE_ALL 0x7u       /* also what keys issued before schema 3 (scopes) have */

/* "payments,refunds" (comma- or space-separated names, or "all") -> bits. FP_ERR_INVALID_ARG for
 * an unknown name or an empty list. */
fp_status fp_pay_scopes_parse(const char *text, unsigned *scopes);
/* bits -> "payments,refunds,customers" (the names in that order; "" for none). */
void fp_pay_scopes_format(unsigned scopes, char *buf, size_t cap);

/* Issues a new API key for the merchant: key (FP_PAY_KEY_LEN chars + NUL) is shown once and never
 * stored; the DB keeps only its keyed hash. key_id (may be NULL) receives its public id.
 * fp_pay_key_issue gives every scope (FP_PAY_SCOPE_ALL); fp_pay_key_issue_scoped the ones asked
 * for (1..FP_PAY_SCOPE_ALL, else FP_ERR_INVALID_ARG). */
fp_status fp_pay_key_issue(fp_pay *pay, const char *merchant_id, char key[FP_PAY_KEY_LEN + 1],
                           char key_id[FP_PAY_KEY_ID_LEN + 1]);
fp_status fp_pay_key_issue_scoped(fp_pay *pay, const char *merchant_id, unsigned scopes,
                                  char key[FP_PAY_KEY_LEN + 1], char key_id[FP_PAY_KEY_ID_LEN + 1]);
/* Checks a presented key: the hash is compared in constant time (sodium_memcmp), also for unknown
 * key ids (against a dummy) so timing does not tell which ids exist. Then takes one token from the
 * key's bucket. FP_OK fills merchant_id (and key_id, may be NULL); FP_ERR_PAY_UNAUTHORIZED for a
 * malformed, unknown, wrong or revoked key; FP_ERR_PAY_RATE_LIMITED when the bucket is empty.
 * fp_pay_key_verify_scoped also gives the key's scopes (may be NULL); checking them is the
 * caller's part (the library does not know which operation a request is for). */
fp_status fp_pay_key_verify(fp_pay *pay, const char *key, char merchant_id[FP_STORE_ID_MAX + 1],
                            char key_id[FP_PAY_KEY_ID_LEN + 1]);
fp_status fp_pay_key_verify_scoped(fp_pay *pay, const char *key,
                                   char merchant_id[FP_STORE_ID_MAX + 1],
                                   char key_id[FP_PAY_KEY_ID_LEN + 1], unsigned *scopes);
/* Revokes a key for good (FP_ERR_NOT_FOUND if unknown; revoking twice is FP_OK). */
fp_status fp_pay_key_revoke(fp_pay *pay, const char *key_id);

/* ---- Replay guard for captured frames ---- */

/* A payment attempt's frames, as 16-byte hashes of their decoded pixels: *replayed = 1 when any was
 * already used by an attempt of another session within its ttl (a replayed capture), else 0. The
 * new hashes are recorded for `session` (1..127 bytes) in the same transaction, so two attempts
 * racing with the same frames cannot both pass, and the record survives a restart; the same
 * session sending its frames again (a retry) is not a replay. Expired rows are dropped on the way.
 * n: 0..FP_PAY_MAX_FRAME_HASHES. */
#define FP_PAY_MAX_FRAME_HASHES 1000
fp_status fp_pay_frames_check(fp_pay *pay, const uint8_t (*hashes)[16], int n, const char *session,
                              int64_t ttl_ms, int *replayed);

/* ---- Customers and accounts ---- */

typedef enum fp_pay_account_kind {
    FP_ACCOUNT_CUSTOMER = 0, FP_ACCOUNT_MERCHANT = 1, FP_ACCOUNT_FUNDING = 2, FP_ACCOUNT_HOLD = 3
} fp_pay_account_kind;

typedef struct fp_pay_account {
    int64_t id;
    fp_pay_account_kind kind;
    char owner[FP_STORE_ID_MAX + 1]; /* user id (customer), merchant id (merchant), "" (system) */
    char currency[4];
    int64_t balance;                 /* minor units */
    int64_t per_payment_limit;       /* customer wallets; 0 for the others */
    int64_t daily_limit;
    int closed;                      /* customer wallet closed by fp_pay_customer_delete */
    int64_t created_ms;
} fp_pay_account;

typedef struct fp_pay_customer {
    char user_id[FP_STORE_ID_MAX + 1];
    int has_pin, has_phone;
    int stepup_failures; /* failed step-ups in a row */
    int face_locked;
    int deleted;
    int64_t created_ms;
} fp_pay_customer;

/* Makes an existing, active store user a payment customer (first call) and opens a wallet in
 * currency with the default limits; *account_id (may be NULL) receives it. An unknown store user is
 * FP_ERR_NOT_FOUND; a user not active, a second wallet in the same currency, or a deleted customer
 * FP_ERR_INVALID_ARG. The calls below give FP_ERR_NOT_FOUND for a user who is not a customer and
 * FP_ERR_PAY_STATE for a deleted one. */
fp_status fp_pay_customer_create(fp_pay *pay, const char *user_id, const char *currency,
                                 int64_t *account_id);
/* Sets the step-up PIN (FP_PAY_PIN_MIN..MAX digits), stored as an argon2id hash (crypto_pwhash). */
fp_status fp_pay_customer_set_pin(fp_pay *pay, const char *user_id, const char *pin);
/* Sets the last 4 digits of the phone number, stored as a keyed BLAKE2b hash. */
fp_status fp_pay_customer_set_phone(fp_pay *pay, const char *user_id, const char *last4);
/* Limits of the wallet in currency (both 1..FP_PAY_MAX_AMOUNT). */
fp_status fp_pay_customer_set_limits(fp_pay *pay, const char *user_id, const char *currency,
                                     int64_t per_payment, int64_t daily);
fp_status fp_pay_customer_get(fp_pay *pay, const char *user_id, fp_pay_customer *out);
/* Clears the lock and the failure count (an operator's call, after checking the customer). */
fp_status fp_pay_customer_unlock(fp_pay *pay, const char *user_id);
/* GDPR erasure, one transaction: voids pending step-ups, pays each wallet's balance back to the
 * funding account ("payout", to be returned off-system), closes the wallets, erases the PIN and
 * phone hashes and the encrypted thumbnails of the customer's evidence records. Postings, payments
 * and evidence keep the opaque user id (the chain still verifies: records hash the thumbnail's
 * hash, not the thumbnail). The caller deletes the templates too (fp_store_user_delete). The id can
 * never become a customer again. Deleting twice is FP_OK. */
fp_status fp_pay_customer_delete(fp_pay *pay, const char *user_id);

/* Accounts by owner (FP_ERR_NOT_FOUND when none: a merchant account opens at its first capture)
 * or by id. */
fp_status fp_pay_wallet(fp_pay *pay, const char *user_id, const char *currency,
                        fp_pay_account *out);
fp_status fp_pay_merchant_account(fp_pay *pay, const char *merchant_id, const char *currency,
                                  fp_pay_account *out);
fp_status fp_pay_account_get(fp_pay *pay, int64_t account_id, fp_pay_account *out);
fp_status fp_pay_balance(fp_pay *pay, int64_t account_id, int64_t *balance);

typedef enum fp_pay_txn_kind {
    FP_TXN_TOPUP = 0,     /* funding -> wallet */
    FP_TXN_CHARGE = 1,    /* wallet -> merchant (accepted without step-up) */
    FP_TXN_AUTHORISE = 2, /* wallet -> hold (step-up pending) */
    FP_TXN_CAPTURE = 3,   /* hold -> merchant (step-up passed) */
    FP_TXN_VOID = 4,      /* hold -> wallet (step-up failed, cancelled or expired) */
    FP_TXN_REFUND = 5,    /* merchant -> wallet */
    FP_TXN_PAYOUT = 6     /* wallet -> funding (customer deleted) */
} fp_pay_txn_kind;

typedef struct fp_pay_posting {
    int64_t id;
    int64_t txn_id;
    fp_pay_txn_kind kind;
    int64_t account_id;
    int64_t payment_id;    /* 0 when none (top-up, payout) */
    int64_t refund_id;     /* 0 when none */
    char currency[4];
    int64_t amount;        /* signed: > 0 credit (balance up), < 0 debit */
    int64_t balance_after;
    int64_t created_ms;
} fp_pay_posting;

/* The account's postings in id order, after `after_id` (0: from the start), at most `limit` (0:
 * all). cb returns non-zero to stop early. */
fp_status fp_pay_foreach_posting(fp_pay *pay, int64_t account_id, int64_t after_id, int limit,
                                 int (*cb)(void *ctx, const fp_pay_posting *p), void *ctx);

/* ---- Money ---- */

/* Credits the wallet from the currency's funding account. reference: operator's text (may be NULL,
 * printable UTF-8, <= 127 bytes). FP_ERR_PAY_STATE for a closed wallet. */
fp_status fp_pay_topup(fp_pay *pay, const char *user_id, const char *currency, int64_t amount,
                       const char *reference, int64_t *txn_id);

typedef struct fp_pay_topup_result {
    int64_t txn_id;
    int64_t amount;
    int64_t balance_after; /* the wallet's balance right after this top-up (its posting's) */
    int replayed;          /* returned from the idempotency record; nothing written */
} fp_pay_topup_result;

/* fp_pay_topup under an idempotency key of the merchant asking for it (the same key space as its
 * charges and refunds, durable in the DB): the same key with the same request (customer, currency,
 * amount, reference) returns the first top-up with `replayed` = 1 and credits nothing; with another
 * request (or a key already used for a charge or refund) FP_ERR_PAY_CONFLICT. A failed top-up keeps
 * no key. */
fp_status fp_pay_topup_idempotent(fp_pay *pay, const char *merchant_id, const char *idempotency_key,
                                  const char *user_id, const char *currency, int64_t amount,
                                  const char *reference, fp_pay_topup_result *out);

typedef enum fp_pay_state {
    FP_PAY_AUTHORISED = 0,         /* money held, waiting for the step-up */
    FP_PAY_CAPTURED = 1,
    FP_PAY_REFUNDED = 2,           /* refunded in full */
    FP_PAY_PARTIALLY_REFUNDED = 3,
    FP_PAY_DECLINED = 4
} fp_pay_state;

const char *fp_pay_state_name(fp_pay_state s); /* "authorised", "captured", ... */
const char *fp_pay_verdict_name(fp_pay_verdict v); /* "accept", "stepup", "refuse" */
const char *fp_pay_stepup_name(fp_pay_stepup m);   /* "none", "pin", "phone4" */

typedef struct fp_payment {
    int64_t id;
    char merchant_id[FP_STORE_ID_MAX + 1];
    char terminal_id[FP_STORE_ID_MAX + 1];
    char user_id[FP_STORE_ID_MAX + 1]; /* "" when no one was identified */
    int64_t customer_account;          /* 0 when none */
    char currency[4];
    int64_t amount;
    int64_t captured;                  /* amount once captured, else 0 */
    int64_t refunded;                  /* sum of refunds, <= captured */
    fp_pay_state state;
    fp_pay_verdict verdict;            /* the policy's answer at charge time */
    uint32_t reasons;                  /* FP_PAY_WHY_* */
    fp_pay_stepup stepup;              /* method asked for (FP_STEPUP_NONE if none) */
    int stepup_required;               /* state authorised: call fp_pay_stepup_verify */
    char decline[32];                  /* why declined: "refused", "insufficient_funds",
                                          "limit_per_payment", "limit_daily", "locked",
                                          "stepup_expired", "cancelled", "customer_deleted";
                                          else "" */
    int64_t evidence_seq;              /* evidence record of the charge decision */
    int64_t created_ms, updated_ms;
    int64_t expires_ms;                /* authorised: when the pending step-up expires */
    int replayed;                      /* returned from the idempotency record; nothing written */
} fp_payment;

typedef struct fp_pay_charge_req {
    const char *merchant_id;
    const char *terminal_id;
    const char *idempotency_key;        /* 1..FP_PAY_IDEM_MAX printable ASCII bytes */
    int64_t amount;                     /* 1..FP_PAY_MAX_AMOUNT minor units */
    const char *currency;               /* "EUR" */
    const char *user_id;                /* customer; NULL: identify->user_id (must agree if both) */
    const fp_identify_result *identify; /* the decision inputs (required) */
    const fp_quality *quality;          /* quality of the best frame, for the evidence (or NULL) */
    const char *models;                 /* model versions for the evidence (NULL: FP_EMBEDDER_ID),
                                           printable ASCII, <= 127 bytes */
    const char *challenge;              /* active liveness challenge shown, e.g. "blink" (NULL: "");
                                           printable ASCII, <= 31 bytes */
    const uint8_t *thumbnail_jpeg;      /* face thumbnail for the evidence (may be NULL) */
    size_t thumbnail_len;               /* <= FP_PAY_THUMB_MAX */
} fp_pay_charge_req;

/* Decides (fp_pay_decide with the stored customer state) and, in one transaction, records the
 * payment, moves the money (accept: captured; step-up: authorised and held), checks the limits and
 * the balance inside the transaction (declining when short: never a negative balance), and appends
 * the evidence record. A declined payment is FP_OK with out->state FP_PAY_DECLINED; errors are
 * bad input (FP_ERR_INVALID_ARG), an unknown merchant/terminal (FP_ERR_NOT_FOUND), a disabled
 * terminal (FP_ERR_PAY_STATE) and FP_ERR_PAY_CONFLICT. */
fp_status fp_pay_charge(fp_pay *pay, const fp_pay_charge_req *req, fp_payment *out);

typedef struct fp_pay_stepup_result {
    fp_payment payment;   /* after the attempt */
    int verified;         /* the secret was right: the payment is captured */
    int failures;         /* failed step-ups in a row for this customer after the attempt */
    int attempts_left;    /* before the lock */
    int locked;           /* face payment locked (this attempt or earlier) */
} fp_pay_stepup_result;

/* Checks the step-up secret (PIN or the phone's last 4 digits, per payment.stepup) of an authorised
 * payment of this merchant. Right: captured, failures reset. Wrong: failures + 1; the
 * max_stepup_failures-th locks face payment and voids every pending step-up of the customer.
 * Expired: voided (declined "stepup_expired"). Each attempt appends an evidence record. The
 * argon2id check runs outside the write transaction (it takes tens of ms); the transaction then
 * re-reads the payment and the hash, so a concurrent change is never overwritten.
 * FP_ERR_PAY_STATE when the payment is not authorised (already captured, declined, ...). */
fp_status fp_pay_stepup_verify(fp_pay *pay, const char *merchant_id, int64_t payment_id,
                               const char *secret, fp_pay_stepup_result *out);

/* Voids an authorised payment of this merchant (customer walked away): declined "cancelled". */
fp_status fp_pay_cancel(fp_pay *pay, const char *merchant_id, int64_t payment_id, fp_payment *out);

/* Voids every authorised payment whose step-up expired (housekeeping; a timer of the server).
 * *n_voided (may be NULL) receives how many. */
fp_status fp_pay_expire(fp_pay *pay, int *n_voided);

typedef struct fp_pay_refund_result {
    int64_t refund_id;
    int64_t amount;
    fp_payment payment; /* after the refund */
    int replayed;
} fp_pay_refund_result;

/* Refunds `amount` (1..captured - refunded) of a captured or partially refunded payment of this
 * merchant to the customer's wallet. More than what is left, or a payment not captured, is
 * FP_ERR_PAY_STATE; a closed (deleted) customer wallet too (refund off-system). */
fp_status fp_pay_refund(fp_pay *pay, const char *merchant_id, const char *idempotency_key,
                        int64_t payment_id, int64_t amount, fp_pay_refund_result *out);

/* Any payment by id (the caller checks out->merchant_id against the authenticated merchant). */
fp_status fp_pay_get(fp_pay *pay, int64_t payment_id, fp_payment *out);
/* The payment a charge under this merchant's idempotency key made, with out->replayed = 1: for a
 * terminal retrying after the server forgot the request (a restart), before it needs anything the
 * retry may lack. FP_ERR_NOT_FOUND when the key is unused; FP_ERR_PAY_CONFLICT when a refund or a
 * top-up used it. The caller compares what it can (terminal, amount, currency) with the retry. */
fp_status fp_pay_charge_by_key(fp_pay *pay, const char *merchant_id, const char *idempotency_key,
                               fp_payment *out);

/* ---- Evidence chain and self-checks (src/pay/evidence.c, src/pay/ledger.c) ---- */

/* One record per payment decision (charge, step-up attempt), append-only, hash-chained:
 * hash = SHA-256(prev_hash || canonical record bytes), where the canonical bytes are a fixed-order,
 * type-tagged, length-prefixed encoding of every column but the thumbnail itself (its SHA-256 is
 * included instead, so a GDPR erasure of the thumbnail keeps the chain valid). Each record also
 * stores mac = BLAKE2b-256 over the hash, keyed with a key derived from the template key: someone
 * who can write the file but has no key cannot re-hash an edited chain. Records are numbered
 * seq = 1, 2, 3, ... without gaps; a head row keeps the last seq and hash (tail truncation).
 * Records are append-only (triggers); only a thumbnail may be erased (set to NULL). The chain
 * proves nothing against someone holding the template key who rewrites everything after an edit:
 * export the last record's hash now and then to anchor it outside the DB.
 * A "stepup" record has challenge = the method ("pin", "phone4"), models = the verifier
 * ("argon2id", "blake2b-keyed"), decision "accept" (right) or "refuse" (wrong, expired, locked),
 * and no scores (NaN), frames or thumbnail. */
typedef struct fp_pay_evidence {
    int64_t seq;
    int64_t time_ms;
    char event[16];                    /* "charge" or "stepup" */
    int64_t payment_id;
    char merchant_id[FP_STORE_ID_MAX + 1], terminal_id[FP_STORE_ID_MAX + 1];
    char user_id[FP_STORE_ID_MAX + 1];
    int64_t amount;
    char currency[4];
    char models[128];                  /* model versions */
    double threshold, score, margin;   /* NaN when not applicable */
    int frames_used, votes, blink, blinks;
    double liveness;                   /* NaN when not applicable */
    int has_quality;
    double q_face_px, q_brightness, q_contrast, q_sharpness, q_occlusion;
    int q_pass;
    char challenge[32];                /* liveness challenge, or the step-up method */
    char decision[16];                 /* "accept", "stepup", "refuse" */
    uint32_t reasons;
    char outcome[32];                  /* payment state after the decision ("captured",
                                          "declined:insufficient_funds", ...) */
    int has_thumbnail;                 /* 0 once erased (or never given) */
    uint8_t hash[32], prev_hash[32];
} fp_pay_evidence;

fp_status fp_pay_evidence_get(fp_store *store, int64_t seq, fp_pay_evidence *out);
/* Decrypts a record's thumbnail (XChaCha20-Poly1305 under the template key, bound to the record)
 * into a malloc'ed buffer (free() it). FP_ERR_NOT_FOUND when it has none (never given, or erased);
 * FP_ERR_FORMAT when it fails authentication (tampered or moved). */
fp_status fp_pay_evidence_thumbnail(fp_store *store, int64_t seq, uint8_t **jpeg, size_t *len);

typedef enum fp_audit_problem {
    FP_AUDIT_OK = 0,
    FP_AUDIT_EDITED = 1,    /* the record's content, hash, link or MAC does not verify */
    FP_AUDIT_DELETED = 2,   /* a record is missing from the sequence (first_bad = its seq) */
    FP_AUDIT_TRUNCATED = 3, /* records after the last one present were deleted (head disagrees) */
    FP_AUDIT_THUMBNAIL = 4  /* a stored thumbnail does not match its hash */
} fp_audit_problem;

typedef struct fp_audit_report {
    int ok;                 /* 1: every record verified */
    int64_t records;        /* records read */
    int64_t first_bad;      /* seq (= record id) of the first edited or deleted record; 0 if ok */
    fp_audit_problem problem;
    char message[256];
} fp_audit_report;

/* Walks the evidence chain from seq 1 and stops at the first problem. FP_OK whenever the walk ran
 * (read out->ok); an error status only when the DB could not be read. */
fp_status fp_audit_verify(fp_store *store, fp_audit_report *out);

typedef struct fp_ledger_report {
    int ok;
    int64_t accounts, txns, postings, payments;
    int64_t problems;       /* number of failed checks */
    char message[256];      /* the first problem ("" if ok) */
} fp_ledger_report;

/* Ledger self-check in one read snapshot: postings sum to zero per currency and per transaction;
 * each posting's currency is its account's; each balance equals the sum of its postings and each
 * posting's balance_after the running sum; no negative balance but funding's; each hold account
 * equals the authorised payments; each payment's captured/refunded equal its postings. FP_OK
 * whenever the check ran (read out->ok). */
fp_status fp_ledger_check(fp_store *store, fp_ledger_report *out);

/* ------------------------------------------------------------------------------------------ */
/* Presentation attack detection (src/pad/)                                                    */
/* ------------------------------------------------------------------------------------------ */
/* A passive (single-frame) presentation-attack detector trained here, on the operator's own live and
 * attack captures, because the downloadable passive models are near chance on printed photos.
 * Features are measured once per analysed face (fp_pad_features: colour-texture histograms and
 * friends, chosen by a recipe), a linear or small neural learner is fitted on the feature matrix
 * (fp_pad_train), and the model file carries everything scoring needs: the recipe, the feature
 * normalisation, the weights and the operating threshold.
 *
 * Scores are liveness scores in 0..1, higher = more live; a presentation is accepted as bona fide when
 * score >= fp_pad_model_threshold(). Training is cross-validated *by subject* (no subject is ever
 * scored by a model that saw it) and the threshold is the one that meets the target BPCER on those
 * out-of-fold scores, so the reported APCER/BPCER are what a new customer should see, not a fit to the
 * training photos. Everything is deterministic for a given seed (same seed, byte-identical file).
 * A loaded model is immutable and may be shared by threads. */
typedef struct fp_pad_model fp_pad_model;

/* Feature recipe: blocks (concatenated in this order) and the colour channels the LBP blocks use;
 * src/pad/features.c documents each. An LBP block needs at least one channel bit. */
#define FP_PAD_FEAT_LBP_FACE    0x0001u /* LBP(8,1) u2 histograms over the aligned 112x112 crop */
#define FP_PAD_FEAT_LBP_CONTEXT 0x0002u /* the same over a 2x face-box crop (print border, hands), 128x128 */
#define FP_PAD_FEAT_LBP_NATIVE  0x0004u /* the same over 96x96 source pixels at the face centre (no resize) */
#define FP_PAD_FEAT_LBP_R2      0x0008u /* adds LBP(8,2) to every LBP histogram selected */
#define FP_PAD_FEAT_COLOUR      0x0010u /* mean, std, skewness of Y,Cb,Cr,H,S,V (aligned crop) */
#define FP_PAD_FEAT_SPECTRUM    0x0020u /* radial log power spectrum of the luma (blur, halftone, moire) */
#define FP_PAD_FEAT_DESCRIPTOR  0x0040u /* faceres 1024-d descriptor (needs fp_face.has_descriptor) */
#define FP_PAD_FEAT_CH_Y        0x0100u /* LBP channels: JPEG YCbCr ... */
#define FP_PAD_FEAT_CH_CB       0x0200u
#define FP_PAD_FEAT_CH_CR       0x0400u
#define FP_PAD_FEAT_CH_H        0x0800u /* ... and 8-bit HSV */
#define FP_PAD_FEAT_CH_S        0x1000u
#define FP_PAD_FEAT_CH_V        0x2000u
#define FP_PAD_FEAT_CH_ALL      0x3f00u
#define FP_PAD_FEAT_ALL         0x3f7fu
/* Saturation texture of the aligned crop and of the native-resolution patch, plus the colour
 * moments: 136 floats, chosen on NUAA (see src/pad/features.c) because it meets the targets
 * under subject-disjoint cross-validation and, unlike the six-channel texture, survives a change of
 * capture session (illumination). */
#define FP_PAD_FEAT_DEFAULT (FP_PAD_FEAT_LBP_FACE | FP_PAD_FEAT_LBP_NATIVE | FP_PAD_FEAT_COLOUR | FP_PAD_FEAT_CH_S)

/* Floats per face of a recipe; 0 for an invalid recipe. */
int fp_pad_feature_dim(uint32_t recipe);

/* Features of one analysed face of img (its box and alignment; the descriptor if the recipe asks for
 * it) into out[fp_pad_feature_dim(recipe)]. About 1-2 ms per face for the default recipe. */
fp_status fp_pad_features(uint32_t recipe, const fp_image *img, const fp_face *face, float *out);

typedef enum fp_pad_learner {
    FP_PAD_LOGISTIC = 0,   /* L2 logistic regression (Newton): the default */
    FP_PAD_LINEAR_SVM = 1, /* L2 squared-hinge linear SVM (dual coordinate descent) */
    FP_PAD_MLP = 2         /* one tanh hidden layer, Adam */
} fp_pad_learner;

/* The training set: one row per capture, features already extracted. */
typedef struct fp_pad_dataset {
    uint32_t recipe;          /* the recipe the features were extracted with */
    int dim;                  /* = fp_pad_feature_dim(recipe) */
    int64_t n;                /* rows */
    const float *features;    /* [n][dim] */
    const uint8_t *acquired;  /* [n] 0 = no face found (failure to acquire): never fitted, a NaN
                                 score in every report (a rejected attempt). NULL: all acquired */
    const int *label;         /* [n] -1 bona fide (live), else the attack species 0..n_types-1 */
    int n_types;              /* attack species (1 for NUAA's print_attack) */
    const int *subject;       /* [n] person id: cross-validation never splits a subject */
} fp_pad_dataset;

typedef struct fp_pad_train_options {
    int seed;                 /* every random choice (folds, initialisation, order); default 1 */
    int folds;                /* subject-disjoint folds, >= 2 (lowered to the number of subjects); 5 */
    double target_bpcer;      /* operating threshold: BPCER on the out-of-fold scores <= this; 0.05 */
    int learner;              /* fp_pad_learner; FP_PAD_LOGISTIC */
    double l2;                /* L2 penalty on standardised features; default 0.1 */
    int hidden;               /* MLP hidden units (32) */
    int epochs;               /* MLP epochs / SVM passes (100) */
} fp_pad_train_options;

fp_pad_train_options fp_pad_train_options_default(void);

/* What cross-validation measured. Rates follow fp_eval_pad (the reports are fp_pad_report). */
typedef struct fp_pad_cv_report {
    int n_folds;
    double threshold;              /* chosen on the pooled out-of-fold scores for target_bpcer */
    struct fp_pad_report *pooled;  /* all out-of-fold scores at `threshold` */
    struct fp_pad_report *fold;    /* [n_folds] each held-out fold at the same threshold (a fold
                                      without bona fide or attack rows is zeroed, n_types 0) */
    int *fold_of;                  /* [n] fold that scored row i */
    float *score;                  /* [n] out-of-fold score, NaN = failure to acquire */
    int64_t n_bona_fide, n_attack; /* rows, failures included */
    int64_t fta_bona_fide, fta_attack;
} fp_pad_cv_report;

/* Cross-validates by subject, picks the threshold, then fits the final model on every acquired row
 * (the threshold chosen out of fold is applied to it). opts NULL: defaults; cv may be NULL. Needs
 * bona fide and attack rows with a face, from at least 2 subjects; otherwise FP_ERR_INVALID_ARG with
 * the reason. Cost: folds + 1 fits; logistic on the default 136 features and ~1,200 rows: < 1 s. */
fp_status fp_pad_train(const fp_pad_dataset *data, const fp_pad_train_options *opts, fp_pad_model **out,
                       fp_pad_cv_report *cv);
void fp_pad_cv_report_free(fp_pad_cv_report *r);

/* Model file: magic, version, recipe, learner, normalisation, weights, threshold, CRC-32. A truncated,
 * corrupt or foreign file, or one of another version, is FP_ERR_FORMAT naming the problem. */
fp_status fp_pad_model_load(const char *path, fp_pad_model **out);
fp_status fp_pad_model_save(const fp_pad_model *m, const char *path);
void fp_pad_model_free(fp_pad_model *m);

typedef struct fp_pad_model_info {
    uint32_t recipe;
    int dim, learner, hidden;
    float threshold, target_bpcer;
    int seed, folds;
    int64_t n_bona_fide, n_attack;   /* training rows */
    float cv_eer, cv_apcer;          /* out-of-fold EER and APCER at the threshold */
} fp_pad_model_info;

fp_status fp_pad_model_get_info(const fp_pad_model *m, fp_pad_model_info *out);
float fp_pad_model_threshold(const fp_pad_model *m); /* NaN for NULL */

/* Liveness score 0..1 of one analysed face of img (higher = live; compare with the threshold). */
fp_status fp_pad_score(const fp_pad_model *m, const fp_image *img, const fp_face *face, float *score);
/* The same from features already extracted with the model's recipe (dim = fp_pad_feature_dim). */
fp_status fp_pad_score_features(const fp_pad_model *m, const float *features, int dim, float *score);

/* ------------------------------------------------------------------------------------------ */
/* Evaluation metrics (src/eval/)                                                              */
/* ------------------------------------------------------------------------------------------ */
/* Biometric accuracy computed on plain score arrays, with the vocabulary of ISO/IEC 19795-1
 * (verification, identification) and ISO/IEC 30107-3 (presentation attack detection). Nothing here
 * knows about images or models: `facepay eval` computes the scores and hands them over.
 *
 * Conventions
 *  - Scores are similarities (cosine for identity, liveness score for PAD): higher = more alike /
 *    more live. A comparison is accepted at threshold S when score >= S.
 *  - FAR(S) = impostor comparisons with score >= S / all impostor comparisons;
 *    FRR(S) = genuine comparisons with score < S / all genuine comparisons (the seed's definitions).
 *  - Failures to acquire (FTA: an attempt that produced no score; passed as a count or as a NaN score)
 *    stay in the denominators. A failed genuine attempt is a false reject at every threshold; a failed
 *    impostor attempt is never a false accept (nothing was accepted). This is ISO/IEC 19795-1's
 *    system-level FAR = FMR * (1 - FTA) and FRR = FTA + FNMR * (1 - FTA); without failures FAR = FMR
 *    and FRR = FNMR. Reports give the FTA counts separately as well.
 *  - Thresholds swept are the distinct score values (floats, widened to double) plus a "reject all"
 *    threshold just above the largest score (nextafterf(max, +inf)).
 *  - A rate f measured with zero errors in n trials can be claimed at 95 % confidence only down to
 *    about 3/n (rule of three: FAR 1e-5 needs >= 300,000 impostor comparisons); reports carry the
 *    one-sided 95 % Clopper-Pearson upper bound of each rate they quote (exactly 1 - 0.05^(1/n),
 *    about 3/n, when no error was observed).
 *  - Report arrays are malloc'ed, owned by the report and released by its *_free (NULL-safe; the
 *    struct is zeroed). Every function is reentrant; none keeps global state. */

#define FP_EVAL_MAX_CURVE 2000 /* curves are down-sampled to at most this many points */
#define FP_EVAL_N_FAR 4        /* fp_verify_report.at: FAR 1e-3, 1e-4, 1e-5, 1e-6 */
#define FP_EVAL_N_FPIR 3       /* fp_ident_report.at: FPIR 0.01, 0.003, 0.001 */
#define FP_EVAL_N_BPCER 2      /* fp_pad_report.at: BPCER 0.01, 0.05 */
#define FP_EVAL_CMC_RANKS 20   /* fp_ident_report.cmc: ranks 1..20 */

/* One operating point of an error trade-off curve at threshold S. */
typedef struct fp_tradeoff_point {
    double threshold;
    double fpr; /* false-positive side: FAR (verification), FPIR (1:N), max-over-types APCER (PAD) */
    double fnr; /* false-negative side: FRR, FNIR, BPCER; the ROC's TAR is 1 - fnr */
} fp_tradeoff_point;

/* Verification scores. Arrays may hold NaN: a NaN score is one more failure to acquire. */
typedef struct fp_score_set {
    const float *genuine;  /* mated comparisons (same person) */
    int64_t n_genuine;
    const float *impostor; /* non-mated comparisons; up to tens of millions */
    int64_t n_impostor;
    int64_t fta_genuine;   /* further genuine attempts that could not be scored */
    int64_t fta_impostor;  /* further impostor attempts that could not be scored */
} fp_score_set;

/* TAR at one target FAR: the ROC operating point. */
typedef struct fp_tar_at_far {
    double target_far;
    double threshold;      /* smallest swept threshold with FAR <= target_far */
    double far, frr, tar;  /* at that threshold; tar = 1 - frr */
    int64_t false_accepts; /* impostor scores >= threshold */
    double far_upper95;    /* 95 % Clopper-Pearson upper bound of the true FAR at threshold */
    int claimable;         /* target_far >= 3 / n_impostor (rule of three); 0: too few impostors to
                              claim this FAR, whatever was observed */
} fp_tar_at_far;

typedef struct fp_verify_report {
    int64_t n_genuine, n_impostor;     /* attempts, failures included (the FRR / FAR denominators) */
    int64_t fta_genuine, fta_impostor; /* attempts that gave no score (counts + NaN scores) */
    double fta_rate;                   /* (fta_genuine + fta_impostor) / (n_genuine + n_impostor) */
    double eer;                        /* equal error rate, linearly interpolated (see fp_eval_verify) */
    double eer_threshold;              /* threshold interpolated the same way */
    double auc;                        /* area under the ROC = P(genuine > impostor) + P(tie) / 2 */
    double far_floor95;                /* 3 / n_impostor: lowest FAR claimable at 95 % */
    fp_tar_at_far at[FP_EVAL_N_FAR];   /* FAR 1e-3, 1e-4, 1e-5, 1e-6 */
    int64_t n_thresholds;              /* operating points swept (distinct scores + 1) */
    fp_tradeoff_point *curve;          /* [n_curve] ROC/DET points by rising threshold: fpr = FAR,
                                          fnr = FRR; first (accept all) and last (reject all) kept */
    int n_curve;
} fp_verify_report;

/* Sweeps every distinct threshold (20 million impostor scores: about 1 s). Cost: one copy of the scores as 32-bit keys (4 bytes per score:
 * 80 MB for 20 million impostors) and an in-place O(n) radix sort; the curve is down-sampled while
 * sweeping, so it never holds more than FP_EVAL_MAX_CURVE points.
 *  - EER: at the first operating point k where FAR <= FRR, the crossing of the segment joining
 *    points k-1 and k with the line FAR = FRR (linear interpolation in (FAR, FRR); the threshold is
 *    interpolated with the same weight). If FAR <= FRR already at the lowest threshold (possible only
 *    with many genuine FTA) the EER is that point's FRR, i.e. min over S of max(FAR, FRR).
 *  - AUC: exact Mann-Whitney statistic over all genuine x impostor pairs, ties counted half; failed
 *    attempts act as a score of -infinity (consistent with the FAR/FRR rule above).
 * Needs n_genuine + fta_genuine >= 1, n_impostor + fta_impostor >= 1 and one scored comparison. */
fp_status fp_eval_verify(const fp_score_set *scores, fp_verify_report *out);
void fp_verify_report_free(fp_verify_report *r);

/* One threshold, counted directly (no sort): what the seed calls the plain accuracy. */
typedef struct fp_operating_point {
    double threshold;
    double far, frr, tar;
    double accuracy;       /* (genuine accepted + impostor rejected) / all attempts; unlike FAR, an
                              impostor FTA is not a correct decision here (as in fp_eval_kfold) */
    int64_t false_accepts; /* impostor scores >= threshold */
    int64_t false_rejects; /* genuine scores < threshold + genuine FTA */
} fp_operating_point;

fp_status fp_eval_verify_at(const fp_score_set *scores, double threshold, fp_operating_point *out);

/* One-sided Clopper-Pearson upper bound (confidence in (0, 1), e.g. 0.95) on an error rate after
 * `errors` errors in `trials` trials. errors == 0 gives 1 - (1 - confidence)^(1/trials), about
 * 3/trials at 95 % (the rule of three). */
double fp_eval_rate_upper_bound(int64_t errors, int64_t trials, double confidence);

/* k-fold protocol accuracy (LFW View 2: 10 folds of 300 same + 300 different pairs). */
typedef struct fp_kfold_report {
    int n_folds;
    double mean_accuracy;  /* mean of the held-out fold accuracies */
    double std_accuracy;   /* sample standard deviation (n_folds - 1 denominator), the sigma of
                              LFW's protocol; note numpy.std, used by many papers, divides by n */
    double std_error;      /* std_accuracy / sqrt(n_folds) (LFW's S_E) */
    double *accuracy;      /* [n_folds] accuracy on the held-out fold */
    double *threshold;     /* [n_folds] threshold chosen on the other folds */
    int64_t *n_pairs;      /* [n_folds] pairs per fold, failures included */
    int64_t n_fta;         /* pairs with a NaN score (always wrong) */
} fp_kfold_report;

/* For each fold f: the threshold maximising accuracy over the pairs of every other fold is applied to
 * fold f. Pair i has score[i] (NaN = failure to acquire: wrong whatever the threshold), same[i] != 0
 * for a same-person pair, fold[i] in [0, n_folds). Candidate thresholds are the lowest training
 * score (accept all), the midpoints between consecutive distinct training scores, and just above the
 * highest (reject all); among equally accurate candidates the lowest wins. */
fp_status fp_eval_kfold(const float *score, const int *same, const int *fold, int64_t n, int n_folds,
                        fp_kfold_report *out);
void fp_kfold_report_free(fp_kfold_report *r);

/* Threshold calibration for a target FAR (the seed's "automatic parameter tuning"). */
typedef struct fp_threshold_estimate {
    double target_far;     /* per-comparison FAR aimed at (target_fpir / gallery_size for the gallery rule) */
    double threshold;      /* smallest threshold S (an impostor score, or just above the largest) with
                              FAR(S) <= target_far on these scores */
    double far;            /* FAR observed at threshold */
    double far_upper95;    /* its 95 % Clopper-Pearson upper bound (rule of three when 0 accepts) */
    int64_t false_accepts; /* impostor scores >= threshold */
    int64_t n_impostor;    /* scored impostor comparisons used */
    int64_t n_failed;      /* NaN scores, left out (see fp_eval_calibrate) */
    int64_t n_needed;      /* impostor comparisons needed to claim target_far at 95 %: ceil(3 / target_far) */
    int claimable;         /* n_impostor >= n_needed */
    int64_t gallery_size;  /* N of the gallery rule; 1 for fp_eval_calibrate */
    double target_fpir;    /* FPIR aimed at; = target_far when gallery_size is 1 */
    double fpir;           /* predicted FPIR at threshold, 1 - (1 - far)^N (independent comparisons) */
    double fpir_upper95;   /* min(1, N * far_upper95): union bound, needs no independence */
} fp_threshold_estimate;

/* Threshold for a target FAR from impostor scores. Calibrates the matcher's false *match* rate: NaN
 * scores are left out of the denominator (counting them as correct rejections would lower the
 * threshold; leaving them out is the conservative side). target_far in (0, 1]. */
fp_status fp_eval_calibrate(const float *impostor, int64_t n, double target_far, fp_threshold_estimate *out);

/* Gallery-size rule for open-set 1:N. A non-mated probe is falsely identified when it matches any of
 * the N enrolled identities; with a per-comparison false match rate f at S,
 * FPIR = 1 - (1 - f)^N ~= N f, and by the union bound FPIR <= N f holds even for dependent
 * comparisons. So FPIR <= target_fpir is guaranteed by calibrating f = target_fpir / N: this is
 * fp_eval_calibrate at target_fpir / gallery_size (a gallery of 10,000 at FPIR 1e-3 needs FAR 1e-7,
 * hence >= 30 million impostor comparisons to claim it). */
fp_status fp_eval_threshold_for_gallery(const float *impostor, int64_t n, double target_fpir,
                                        int64_t gallery_size, fp_threshold_estimate *out);

/* Open-set identification (1:N). */
typedef struct fp_mated_search {
    int rank;            /* 1-based rank of the probe's true identity in the candidate list;
                            <= 0 = not returned / no search (failure to acquire) */
    float mate_score;    /* score of the true identity (NaN if not returned) */
    float nonmate_score; /* best score among the other identities (NaN if none) */
} fp_mated_search;

typedef struct fp_ident_scores {
    const fp_mated_search *mated; /* probes whose identity is enrolled */
    int64_t n_mated;
    const float *nonmated;        /* top score of each probe whose identity is not enrolled (NaN = failed) */
    int64_t n_nonmated;
    int64_t fta_mated, fta_nonmated; /* further searches that could not be run */
} fp_ident_scores;

typedef struct fp_fnir_at_fpir {
    double target_fpir;
    double threshold;      /* from the non-mated scores only: smallest S with FPIR(S) <= target */
    double fpir;           /* observed at threshold */
    double fpir_upper95;   /* 95 % Clopper-Pearson upper bound */
    double fnir;           /* mated searches whose mate is not at rank 1 with score >= threshold */
    double misid;          /* mated searches answered with a wrong identity: rank != 1 and top
                              non-mate score >= threshold (the payment charged to someone else) */
    int64_t false_positives;
    int claimable;         /* target_fpir >= 3 / non-mated searches */
} fp_fnir_at_fpir;

typedef struct fp_ident_report {
    int64_t n_mated, n_nonmated;     /* searches, failures included */
    int64_t fta_mated;               /* fta_mated passed + mated entries with rank <= 0 and a NaN
                                        non-mate score (nothing returned) */
    int64_t fta_nonmated;            /* fta_nonmated passed + NaN non-mated scores */
    double rank1;                    /* closed-set rank-1 identification rate (= cmc[0]) */
    double cmc[FP_EVAL_CMC_RANKS];   /* cmc[r-1]: mated searches with 1 <= rank <= r / n_mated */
    fp_fnir_at_fpir at[FP_EVAL_N_FPIR]; /* FPIR 0.01, 0.003, 0.001 */
    fp_tradeoff_point *curve;        /* [n_curve] fpr = FPIR, fnr = FNIR (rank 1): the 1:N DET */
    int n_curve;
} fp_ident_report;

/* FPIR(S) = non-mated searches with top score >= S / n_nonmated; FNIR(S) = mated searches whose mate
 * is not returned at rank 1 with score >= S / n_mated. Failed searches count in the denominators: a
 * failed mated search is a miss, a failed non-mated search is never a false positive. */
fp_status fp_eval_identify(const fp_ident_scores *scores, fp_ident_report *out);
void fp_ident_report_free(fp_ident_report *r);

/* Presentation attack detection (ISO/IEC 30107-3). A presentation is classified bona fide when its
 * liveness score >= S. APCER of a PAI species (attack type) = its attacks classified bona fide / its
 * attacks; the reported APCER is the maximum over species, as 30107-3 requires. BPCER = bona fide
 * presentations classified as attacks / bona fide presentations. NaN scores are failures: a bona fide
 * one counts as a BPCER error, an attack one is never accepted (both stay in the denominators). */
typedef struct fp_pad_scores {
    const float *bona_fide;
    int64_t n_bona_fide;
    const float *attack;
    const int *attack_type; /* [n_attack] species index in [0, n_types) (print, replay, mask, ...) */
    int64_t n_attack;
    int n_types;            /* 1..1024 */
} fp_pad_scores;

typedef struct fp_apcer_at_bpcer {
    double target_bpcer;
    double threshold;       /* largest swept threshold with BPCER <= target */
    double bpcer, apcer;    /* at that threshold (apcer: max over species) */
} fp_apcer_at_bpcer;

typedef struct fp_pad_report {
    int n_types;
    int64_t n_bona_fide, fta_bona_fide;
    int64_t *n_attack, *fta_attack;  /* [n_types] attacks per species, of which failed */
    double threshold;                /* operating threshold of the rates below */
    double *apcer;                   /* [n_types] at threshold; NaN for a species without attacks */
    double apcer_max;                /* max over species */
    int apcer_max_type;
    double bpcer;
    double acer;                     /* (apcer_max + bpcer) / 2: for comparison with OULU-NPU-style
                                        results only; 30107-3 advises against averaging the two */
    double eer, eer_threshold;       /* max-APCER vs BPCER, interpolated as in fp_eval_verify */
    fp_apcer_at_bpcer at[FP_EVAL_N_BPCER]; /* BPCER 1 %, 5 % */
    fp_tradeoff_point *curve;        /* [n_curve] fpr = max APCER, fnr = BPCER */
    int n_curve;
} fp_pad_report;

/* threshold: the operating point of apcer/bpcer/acer; NaN = use the EER threshold. */
fp_status fp_eval_pad(const fp_pad_scores *scores, double threshold, fp_pad_report *out);
void fp_pad_report_free(fp_pad_report *r);

/* Plots (cairo). The format follows the file extension: .png (800x600), .svg or .pdf. Several series
 * per plot compare variants; each gets a colour and a legend entry "label (EER x %, AUC y)" (the
 * values shown unless NaN; CMC shows the rank-1 rate). Points with a zero rate are left out of log
 * axes (log 0 is -infinity). Series borrow their arrays: keep the reports alive while plotting. */
typedef struct fp_plot_series {
    const char *label;
    const fp_tradeoff_point *points; /* ROC / DET */
    int n_points;
    const double *cmc;               /* CMC: cmc[r-1] for rank r */
    int n_ranks;
    double eer, auc;                 /* legend values; NaN = not shown */
} fp_plot_series;

fp_plot_series fp_verify_series(const fp_verify_report *r, const char *label);
fp_plot_series fp_ident_series(const fp_ident_report *r, const char *label); /* DET + CMC */
fp_plot_series fp_pad_series(const fp_pad_report *r, const char *label);

/* ROC: TAR (1 - fnr, linear) against FAR (log10 axis). */
fp_status fp_plot_roc(const char *path, const char *title, const fp_plot_series *series, int n);
/* DET on log-log axes (fnr against fpr, both log10; chosen over probit axes because decades read
 * directly as "1 in 10^k"), with the FAR = FRR diagonal. Axis labels default to "FAR" and "FRR" when
 * NULL (e.g. "FPIR"/"FNIR" for 1:N). */
fp_status fp_plot_det(const char *path, const char *title, const char *x_label, const char *y_label,
                      const fp_plot_series *series, int n);
/* Liveness DET: fp_plot_det with APCER (max over species) and BPCER axes. */
fp_status fp_plot_pad_det(const char *path, const char *title, const fp_plot_series *series, int n);
/* CMC: identification rate (linear) against rank 1..max n_ranks. */
fp_status fp_plot_cmc(const char *path, const char *title, const fp_plot_series *series, int n);

/* Frees the font caches cairo's text rendering (fontconfig) keeps for the life of the process: a fixed
 * amount, but LeakSanitizer reports it. Call at most once, at exit, when no thread is plotting any more
 * (no plot may follow); programs that do not run under a leak checker need not call it. */
void fp_plot_shutdown(void);

#ifdef __cplusplus
}
#endif
#endif /* FACEPAY_H */
