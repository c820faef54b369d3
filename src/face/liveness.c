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
 * With a trained detector configured (`facepay train liveness`, FACEPAY_PAD_MODEL / fp_engine_options.pad_model)
 * its score replaces both: on NUAA by subject-disjoint cross-validation it reaches EER 0.17 % where the
 * best downloaded model is at 31 %, and averaging a 31 %-EER score into it could only dilute it.
 *
 * score = trained detector's score if configured, else the liveness model's "live" probability;
 *         0.5 ("unknown") when neither ran.
 */
#include "face/face.h"

void fp_liveness_combine(fp_liveness_cues *c) {
    c->score = c->trained >= 0 ? c->trained : c->liveness_model >= 0 ? c->liveness_model : 0.5f;
}
