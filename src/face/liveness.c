/*
 * liveness.c - the single-frame liveness score: one number per frame from the passive anti-spoof
 * models. Both downloaded models are close to chance on print attacks (reference: EER 51 % antispoof,
 * 39 % liveness on NUAA), so this score alone must never admit a payment: the decision layer pairs it
 * with active challenges over frames (blink, head turn) and, once trained, the operator's detector.
 *
 * score = mean of the available passive scores (antispoof "real", liveness "live"), each in 0..1;
 *         0.5 ("unknown") when no passive model ran.
 */
#include "face/face.h"

void fp_liveness_combine(fp_liveness_cues *c) {
    double sum = 0;
    int n = 0;
    if (c->antispoof >= 0) {
        sum += c->antispoof;
        n++;
    }
    if (c->liveness_model >= 0) {
        sum += c->liveness_model;
        n++;
    }
    c->score = n ? (float)(sum / n) : 0.5f;
}
