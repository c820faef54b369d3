/*
 * calibration.c - the decision threshold's config: written by `facepay eval calibrate` from measured
 * impostor scores, read by enrollment (look-alike check) and identification, and the gallery-size
 * rule that tightens the threshold as more people are enrolled (rule documented in facepay.h).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "core/core.h"

fp_status fp_calibration_load(const char *path, fp_calibration *c) {
    if (!path || !c) return fp_fail(FP_ERR_INVALID_ARG, "fp_calibration_load: NULL argument");
    memset(c, 0, sizeof *c);
    json_error_t e;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        FILE *f = fopen(path, "r");
        if (!f) return fp_fail(FP_ERR_IO, "%s: cannot open the calibration (run 'facepay eval calibrate')", path);
        fclose(f);
        return fp_fail(FP_ERR_FORMAT, "%s: line %d: %s", path, e.line, e.text);
    }
    fp_status st = FP_OK;
    json_t *far = json_object_get(j, "far"), *thr = json_object_get(j, "thresholds");
    const char *model = json_string_value(json_object_get(j, "model"));
    const char *src = json_string_value(json_object_get(j, "source"));
    if (!json_is_number(json_object_get(j, "threshold")) || !json_is_number(json_object_get(j, "target_far")) ||
        !json_is_array(far) || !json_is_array(thr) || json_array_size(far) != json_array_size(thr) ||
        json_array_size(far) < 1 || json_array_size(far) > FP_CALIB_POINTS || !model) {
        st = fp_fail(FP_ERR_FORMAT, "%s: not a facepay calibration (needs model, target_far, threshold, far[], thresholds[])", path);
        goto done;
    }
    snprintf(c->model_id, sizeof c->model_id, "%s", model);
    snprintf(c->source, sizeof c->source, "%s", src ? src : "");
    c->target_far = json_number_value(json_object_get(j, "target_far"));
    c->threshold = (float)json_number_value(json_object_get(j, "threshold"));
    c->target_fpir = json_is_number(json_object_get(j, "target_fpir")) ? json_number_value(json_object_get(j, "target_fpir")) : 1e-3;
    c->impostor_comparisons = json_integer_value(json_object_get(j, "impostor_comparisons"));
    c->genuine_comparisons = json_integer_value(json_object_get(j, "genuine_comparisons"));
    c->far_claimable = c->impostor_comparisons > 0 ? 3.0 / (double)c->impostor_comparisons : 1;
    c->tar_at_threshold = (float)json_number_value(json_object_get(j, "tar_at_threshold"));
    c->n_points = (int)json_array_size(far);
    for (int i = 0; i < c->n_points; i++) {
        c->far[i] = json_number_value(json_array_get(far, (size_t)i));
        c->thr[i] = (float)json_number_value(json_array_get(thr, (size_t)i));
        if (!(c->far[i] > 0 && c->far[i] <= 1) || !isfinite(c->thr[i]) ||
            (i > 0 && (c->far[i] >= c->far[i - 1] || c->thr[i] < c->thr[i - 1]))) {
            st = fp_fail(FP_ERR_FORMAT, "%s: FAR curve must have decreasing FAR in (0,1] and non-decreasing thresholds (point %d)", path, i);
            goto done;
        }
    }
    if (!(c->threshold > -1 && c->threshold < 1) || !(c->target_far > 0 && c->target_far < 1) ||
        !(c->target_fpir > 0 && c->target_fpir < 1))
        st = fp_fail(FP_ERR_FORMAT, "%s: threshold/target values out of range", path);
done:
    json_decref(j);
    return st;
}

fp_status fp_calibration_save(const char *path, const fp_calibration *c) {
    if (!path || !c || c->n_points < 1 || c->n_points > FP_CALIB_POINTS)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_calibration_save: bad arguments");
    json_t *far = json_array(), *thr = json_array();
    for (int i = 0; i < c->n_points; i++) {
        json_array_append_new(far, json_real(c->far[i]));
        json_array_append_new(thr, json_real(c->thr[i]));
    }
    json_t *j = json_pack("{s:s,s:f,s:f,s:f,s:I,s:I,s:f,s:f,s:o,s:o,s:s}", "model", c->model_id, "target_far",
                          c->target_far, "threshold", (double)c->threshold, "target_fpir", c->target_fpir,
                          "impostor_comparisons", (json_int_t)c->impostor_comparisons, "genuine_comparisons",
                          (json_int_t)c->genuine_comparisons, "far_claimable", c->far_claimable, "tar_at_threshold",
                          (double)c->tar_at_threshold, "far", far, "thresholds", thr, "source", c->source);
    int rc = j ? json_dump_file(j, path, JSON_INDENT(2) | JSON_REAL_PRECISION(8)) : -1;
    json_decref(j);
    return rc ? fp_fail(FP_ERR_IO, "%s: cannot write the calibration", path) : FP_OK;
}

float fp_calibration_threshold_for(const fp_calibration *c, int64_t n_users, int *beyond) {
    if (beyond) *beyond = 0;
    if (!c || c->n_points < 1) return NAN;
    double want = c->target_fpir / (double)(n_users > 1 ? n_users : 1);
    if (want > c->target_far) want = c->target_far;
    float t;
    if (want >= c->far[0]) {
        t = c->thr[0];
    } else if (want <= c->far[c->n_points - 1]) {
        t = c->thr[c->n_points - 1];
        if (beyond) *beyond = want < c->far[c->n_points - 1];
    } else {
        int i = 1;
        while (i < c->n_points - 1 && c->far[i] > want) i++;
        /* interpolate in log FAR between points i-1 and i */
        double a = log(c->far[i - 1]), b = log(c->far[i]), x = log(want);
        double f = b != a ? (x - a) / (b - a) : 0;
        t = (float)(c->thr[i - 1] + f * (c->thr[i] - c->thr[i - 1]));
    }
    if (beyond && want < c->far_claimable) *beyond = 1;
    return t > c->threshold ? t : c->threshold;
}
