/*
 * face.h - internals of the face pipeline shared by its files: detector post-processing types,
 * the engine (loaded models, shared read-only) and session (per-thread runners and buffers).
 * The face pipeline knows nothing of money or identities; it turns pixels into fp_face records.
 */
#ifndef FP_FACE_H
#define FP_FACE_H

#include "facepay.h"
#include "face/geometry.h"
#include "image/image.h"

/* ---- detector post-processing (detect.c) ---- */
typedef struct fp_anchor {
    double x, y; /* centre, normalised to the model input */
} fp_anchor;

typedef struct fp_detection {
    double score;
    double x0, y0, x1, y1; /* box corners (normalised input coords, later source pixels) */
    double kps[6][2];      /* eye image-left, eye image-right, nose, mouth, ear image-left, ear image-right */
    int merged;            /* detections merged by weighted NMS */
} fp_detection;

/* SSD anchors (MediaPipe SsdAnchorsCalculator, fixed anchor size). Returns the count or -1 if cap
 * is too small. */
int fp_anchors_build(const int *strides, int n_strides, double interpolated_ar, int size,
                     fp_anchor *out, int cap);

/* Decodes raw rows (score logits and 16 box/keypoint regressors per anchor) into detections with
 * score >= min_score. Returns the count. */
int fp_decode_detections(const float *scores, int score_stride, const float *regs, int reg_stride,
                         const fp_anchor *anchors, int n_anchors, int size, double min_score,
                         fp_detection *out, int cap);

double fp_detection_iou(const fp_detection *a, const fp_detection *b);

/* MediaPipe weighted NMS in place; returns the number kept (sorted by score). */
int fp_weighted_nms(fp_detection *d, int n, double iou_threshold);

/* Greedy NMS in place keeping the best-scoring box of each overlapping group unchanged: used to
 * merge the outputs of several detector runs (averaging a short-range box into a full-range box of
 * the same face can shift it off the face). Returns the number kept. */
int fp_hard_nms(fp_detection *d, int n, double iou_threshold);

/* Payment-candidate priority: box size discounted by up to 50 % for distance from the image centre,
 * so a large central customer beats a bystander at the edge. Higher is better. */
double fp_candidate_priority(const fp_detection *d, int img_w, int img_h);

/* Fills c->score from the cues already measured (liveness.c; the rule is documented there). */
void fp_liveness_combine(fp_liveness_cues *c);

/* ---- engine and session (pipeline.c) ---- */
enum { FP_M_DET_SHORT, FP_M_DET_FULL, FP_M_MESH, FP_M_IRIS, FP_M_EMBED, FP_M_FACERES,
       FP_M_ANTISPOOF, FP_M_LIVENESS, FP_M_COUNT };

#define FP_DET_SHORT_ANCHORS 896
/* The embedder runs in chunks of this many rows: per face, batch 1-4 cost the same and batch 20 is
 * ~25 % slower (its activations no longer fit in cache), so 20 faces are 5 runs of 4. */
#define FP_EMBED_CHUNK 4
#define FP_DET_FULL_ANCHORS 2304

struct fp_engine {
    fp_engine_options opts;
    fp_model *models[FP_M_COUNT];     /* NULL when not loaded */
    int out_index[FP_M_COUNT][3];     /* output indices in the order the pipeline reads them */
    fp_anchor short_anchors[FP_DET_SHORT_ANCHORS];
    fp_anchor full_anchors[FP_DET_FULL_ANCHORS];
    fp_canonical canonical;           /* canonical face mesh for the rigid pose fit */
    fp_pad_model *pad;                /* the operator's trained presentation-attack detector, or NULL */
};

struct fp_session {
    fp_engine *engine;
    fp_runner *runners[FP_M_COUNT];   /* batch 1 (iris: batch 2) */
    fp_runner *embed[FP_EMBED_CHUNK + 1]; /* embedder runners by batch size 1..FP_EMBED_CHUNK, on demand */
    float *aligned;                   /* 112x112x3 aligned crop of the face being analysed */
    float *luma;                      /* its 112x112 luma, for the quality measures */
    fp_detection *dets;               /* detector scratch, FP_DET_FULL_ANCHORS + FP_DET_SHORT_ANCHORS */
};

#endif
