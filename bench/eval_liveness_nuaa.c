/*
 * eval_liveness_nuaa.c - passive (single-frame) liveness on NUAA Photograph Imposter DB through the
 * public API: per image of DIR/labels.csv (path, label = live | print_attack, ...) fp_analyze with the
 * passive models, and the payment candidate's (faces[0]) fp_face.liveness.antispoof,
 * .liveness_model and combined .score (all "bona fide" scores in 0..1, higher = live).
 *
 * Per score: APCER = attacks accepted / attacks, BPCER = bona fide rejected / bona fide, at the
 * threshold 0.5 (accept if score >= 0.5); EER by sweeping the threshold; AUC (P(live score > attack
 * score)). Images without a detected face (FTA) are rejected at every threshold: an attack FTA is
 * not an APCER error, a live FTA is a BPCER error; they are reported separately, and APCER/BPCER are
 * also given over the detected faces only.
 *
 * usage: eval_liveness_nuaa [--data DIR (../shared/data/nuaa)] [--json] [--threads N] [--limit N]
 *                           [--detector short|auto|full|both] [--csv OUT]  (per-image scores)
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "facepay.h"

typedef struct {
    int live, fta;
    double v[3]; /* antispoof, liveness_model, score */
} sample;

static const char *score_name[3] = {"antispoof", "liveness_model", "score"};

typedef struct {
    double s;
    int live;
} sv;

static int cmp_sv(const void *a, const void *b) {
    double x = ((const sv *)a)->s, y = ((const sv *)b)->s;
    return (x > y) - (x < y);
}

typedef struct {
    double apcer, bpcer, apcer_det, bpcer_det, eer, eer_thr, auc;
} metrics;

static metrics evaluate(const sample *d, int n, int k) {
    metrics m = {0};
    int att = 0, bf = 0, att_det = 0, bf_det = 0, att_acc = 0, bf_rej = 0, bf_rej_det = 0, att_acc_det = 0;
    sv *v = malloc(sizeof *v * (n ? n : 1));
    for (int i = 0; i < n; i++) {
        double s = d[i].fta ? -INFINITY : d[i].v[k];
        int acc = s >= 0.5;
        v[i].s = s, v[i].live = d[i].live;
        if (d[i].live) bf++, bf_rej += !acc, bf_det += !d[i].fta, bf_rej_det += !d[i].fta && !acc;
        else att++, att_acc += acc, att_det += !d[i].fta, att_acc_det += !d[i].fta && acc;
    }
    m.apcer = att ? (double)att_acc / att : 0, m.bpcer = bf ? (double)bf_rej / bf : 0;
    m.apcer_det = att_det ? (double)att_acc_det / att_det : 0, m.bpcer_det = bf_det ? (double)bf_rej_det / bf_det : 0;
    /* threshold sweep: accept s > t; start below everything (APCER 1, BPCER 0) */
    qsort(v, n, sizeof *v, cmp_sv);
    int rej_bf = 0, acc_att = att, below_att = 0;
    m.eer = 1;
    double auc = 0;
    for (int i = 0; i < n && bf && att;) {
        int j = i, tb = 0, ta = 0;
        while (j < n && v[j].s == v[i].s) tb += v[j].live, ta += !v[j].live, j++;
        auc += tb * (below_att + 0.5 * ta);
        below_att += ta;
        rej_bf += tb, acc_att -= ta;
        double e = fmax((double)rej_bf / bf, (double)acc_att / att);
        if (e < m.eer) m.eer = e, m.eer_thr = v[i].s;
        i = j;
    }
    m.auc = bf && att ? auc / ((double)bf * att) : 0;
    free(v);
    return m;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    const char *dir = "../shared/data/nuaa", *det = "auto", *csv = NULL;
    int json = 0, threads = 1, limit = 0;
    for (int i = 1; i < argc; i++) {
        int more = i + 1 < argc;
        if (!strcmp(argv[i], "--data") && more) dir = argv[++i];
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--threads") && more) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--limit") && more) limit = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--detector") && more) det = argv[++i];
        else if (!strcmp(argv[i], "--csv") && more) csv = argv[++i];
        else {
            fprintf(stderr, "usage: eval_liveness_nuaa [--data DIR] [--json] [--threads N] [--limit N] [--detector short|auto|full|both] [--csv OUT]\n");
            return 2;
        }
    }
    char path[4096], line[1024];
    snprintf(path, sizeof path, "%s/labels.csv", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s (data absent: skipped)\n", path);
        return 77;
    }
    fp_engine_options eo = fp_engine_options_default();
    eo.threads = threads < 1 ? 1 : threads;
    eo.attributes = 0;
    fp_engine *e = NULL;
    fp_session *s = NULL;
    fp_status st;
    if ((st = fp_engine_new(&eo, &e)) || (st = fp_session_new(e, &s))) {
        fprintf(stderr, "engine: %s: %s\n", fp_strerror(st), fp_last_error());
        return 1;
    }
    fp_analyze_options o = fp_analyze_options_default();
    o.full_range = !strcmp(det, "short") ? 0 : !strcmp(det, "full") ? 1 : !strcmp(det, "both") ? 2 : -1;
    o.max_faces = 1;
    o.embedding = o.attributes = 0;
    FILE *out = csv ? fopen(csv, "w") : NULL;
    if (out) fprintf(out, "path,label,faces,antispoof,liveness_model,score\n");
    sample *d = NULL;
    int n = 0, cap = 0, errors = 0, multi = 0;
    double t0 = now_s(), ms = 0;
    fp_face *face = malloc(sizeof *face);
    if (!fgets(line, sizeof line, f)) line[0] = 0; /* header */
    while (fgets(line, sizeof line, f) && (!limit || n < limit)) {
        char rel[512], label[64];
        if (sscanf(line, "%511[^,],%63[^,\n]", rel, label) != 2) continue;
        if (n == cap) d = realloc(d, sizeof *d * (cap = cap ? 2 * cap : 1024));
        sample *x = &d[n++];
        memset(x, 0, sizeof *x);
        x->live = !strcmp(label, "live");
        snprintf(path, sizeof path, "%.3000s/%.511s", dir, rel);
        fp_image img = {0};
        int nf = 0;
        fp_timings t;
        if ((st = fp_image_load(path, NULL, &img)) || (st = fp_analyze(s, &img, &o, face, 1, &nf, &t))) {
            fprintf(stderr, "%s: %s: %s\n", path, fp_strerror(st), fp_last_error());
            errors++;
        } else {
            ms += t.total;
        }
        x->fta = st || nf == 0;
        multi += nf > 1;
        if (!x->fta) x->v[0] = face->liveness.antispoof, x->v[1] = face->liveness.liveness_model, x->v[2] = face->liveness.score;
        if (out)
            fprintf(out, "%s,%s,%d,%.6f,%.6f,%.6f\n", rel, label, nf, x->fta ? NAN : x->v[0], x->fta ? NAN : x->v[1], x->fta ? NAN : x->v[2]);
        fp_image_release(&img);
    }
    fclose(f);
    if (out) fclose(out);
    double sec = now_s() - t0;
    int live = 0, fta_live = 0, fta_att = 0;
    double mean[2][3] = {{0}};
    for (int i = 0; i < n; i++) {
        live += d[i].live;
        fta_live += d[i].live && d[i].fta, fta_att += !d[i].live && d[i].fta;
        for (int k = 0; k < 3 && !d[i].fta; k++) mean[d[i].live][k] += d[i].v[k];
    }
    int att = n - live;
    for (int k = 0; k < 3; k++) mean[1][k] /= live - fta_live ? live - fta_live : 1, mean[0][k] /= att - fta_att ? att - fta_att : 1;
    json_t *root = json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:f}", "data", dir, "images", n, "live", live, "print_attack", att, "fta_live",
                             fta_live, "fta_attack", fta_att, "errors", errors, "multi_face", multi, "seconds", sec);
    if (!json) {
        printf("NUAA (%s): %d images = %d live + %d print_attack; FTA %d live, %d attack (%d errors); >1 face %d; detector %s\n", dir, n, live,
               att, fta_live, fta_att, errors, multi, det);
        printf("threshold 0.5, accept if score >= 0.5; FTA = rejected (APCER/BPCER), in brackets over detected faces only\n");
        printf("%-15s %16s %16s %7s %9s %7s %17s\n", "score", "APCER %", "BPCER %", "EER %", "EER thr", "AUC", "mean live/attack");
    }
    for (int k = 0; k < 3; k++) {
        metrics m = evaluate(d, n, k);
        if (!json)
            printf("%-15s %6.2f (%6.2f) %6.2f (%6.2f) %7.2f %9.4f %7.4f %8.3f/%.3f\n", score_name[k], 100 * m.apcer, 100 * m.apcer_det,
                   100 * m.bpcer, 100 * m.bpcer_det, 100 * m.eer, m.eer_thr, m.auc, mean[1][k], mean[0][k]);
        json_object_set_new(root, score_name[k],
                            json_pack("{s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "apcer", m.apcer, "bpcer", m.bpcer, "apcer_detected", m.apcer_det,
                                      "bpcer_detected", m.bpcer_det, "eer", m.eer, "eer_threshold", m.eer_thr, "auc", m.auc, "mean_live",
                                      mean[1][k], "mean_attack", mean[0][k]));
    }
    if (json) {
        json_dumpf(root, stdout, JSON_INDENT(1));
        printf("\n");
    } else {
        printf("time: %.1f s, %.1f ms/image (analyse %.1f)\n", sec, 1e3 * sec / (n ? n : 1), ms / (n ? n : 1));
    }
    json_decref(root);
    free(face);
    free(d);
    fp_session_free(s);
    fp_engine_free(e);
    return 0;
}
