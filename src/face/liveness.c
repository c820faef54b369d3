/*
 * liveness.c - the single-frame liveness score: one number per frame from the passive models that
 * help, by measurement. On the NUAA print-attack train split (1,164 images, bench/eval_liveness_nuaa):
 *   liveness (leokwu/livenessnet)  EER 31.4 %, AUC 0.73  -> used;
 *   antispoof (Kaggle fake-face)   EER 81.8 %, AUC 0.09: it ranks prints as *more* real than live
 *                                  faces, so averaging it in made the score worse (EER 40 %) -> reported,
 *                                  not used. We do not flip it: that would be tuning on the test set.
 * Neither is fit to admit a payment on its own: the decision pairs this score with the active
 * challenge over frames (blinks, head turn, 3-D parallax) and, when configured, the trained detector.
 *
 * score = the liveness model's "live" probability; 0.5 ("unknown") when it did not run.
 */
#include "face/face.h"

void fp_liveness_combine(fp_liveness_cues *c) {
    c->score = c->liveness_model >= 0 ? c->liveness_model : 0.5f;
}
