/*
 * pad.h - internals of the trainable presentation-attack detector (src/pad/): the feature recipes
 * (what is measured on a face), the learners (what is fitted on those measurements), the seeded
 * random generator that keeps training reproducible, and the in-memory model. The public face of
 * all this is the "Presentation attack detection" section of facepay.h.
 */
#ifndef FP_PAD_H
#define FP_PAD_H

#include <stddef.h>
#include <stdint.h>

#include "facepay.h"

/* ---- deterministic random numbers (splitmix64): same seed, same model on every machine ---- */
typedef struct pad_rng {
    uint64_t s;
} pad_rng;

void pad_rng_seed(pad_rng *r, uint64_t seed);
uint64_t pad_rng_next(pad_rng *r);
double pad_rng_uniform(pad_rng *r);          /* [0, 1) */
double pad_rng_normal(pad_rng *r);           /* N(0, 1), Box-Muller */
void pad_rng_shuffle(pad_rng *r, int *v, int n);

/* ---- features (features.c) ---- */
/* Number of floats of a recipe, 0 for an unknown one (bits outside FP_PAD_FEAT_ALL). */
int pad_feature_dim(uint32_t recipe);

/* ---- learners (learn.c) ---- */
/* A trained classifier on standardised features: z = (x - mean) * inv_std, then
 *  logistic / SVM: s = w . z + b;  MLP: s = w2 . tanh(W1 z + b1) + b2;  score = sigmoid(s). */
typedef struct pad_classifier {
    int learner;     /* fp_pad_learner */
    int dim, hidden; /* hidden: MLP units (0 otherwise) */
    float *mean, *inv_std;   /* [dim] */
    float *w;        /* logistic/SVM: [dim + 1] (bias last); MLP: W1 [hidden][dim], b1 [hidden],
                        w2 [hidden], b2 [1] */
    int n_w;
} pad_classifier;

/* Parameters of one fit (already validated by the caller). */
typedef struct pad_fit_params {
    int learner;
    double l2;
    int hidden, epochs;
    uint64_t seed;
} pad_fit_params;

/* Fits on rows idx[0..n) of X (row-major, dim columns); y[i] = 1 bona fide, 0 attack. Classes are
 * weighted to equal total weight, so an unbalanced capture set does not move the decision towards
 * the larger class. */
fp_status pad_fit(const float *X, int dim, const uint8_t *y, const int *idx, int n,
                  const pad_fit_params *p, pad_classifier *out);

/* Liveness score 0..1 of one feature vector. */
float pad_predict(const pad_classifier *c, const float *x);

void pad_classifier_free(pad_classifier *c);

/* Number of weights of a learner for dim / hidden (what the model file must hold). */
int pad_weight_count(int learner, int dim, int hidden);

struct fp_pad_model {
    uint32_t recipe;
    pad_classifier clf;
    float threshold;
    float target_bpcer;
    /* provenance, carried in the file for `facepay` to print; not used for scoring */
    uint32_t seed, folds;
    uint32_t n_bona_fide, n_attack;
    float cv_eer, cv_apcer_at_target;
};

#endif /* FP_PAD_H */
