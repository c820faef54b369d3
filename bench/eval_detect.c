/*
 * eval_detect.c - face detection recall and 68-point landmark error through the public API.
 *
 * 1. dlib-faces (DIR/dlib-faces/{training,testing}_with_face_landmarks.xml: dlib imglab XML, 43 faces
 *    in 9 photos, hand-marked boxes and 68 points that the XML says come from dlib's
 *    shape_predictor_68_face_landmarks; the plain training/testing.xml hold the same boxes).
 *    For each detector mode (short, full, both = fp_analyze_options.full_range 0 / 1 / 2, and auto = -1)
 *    every face of the image is analysed; a labelled face is found if a detection overlaps it with
 *    IoU >= 0.5 (one-to-one, greedy by IoU). Our box is put into dlib's convention in three ways:
 *      raw     the detector box as is
 *      fit     cx' = cx + dx*w, cy' = cy + dy*h, w' = k*w, h' = k*h: (k, dx, dy) fitted by least
 *              squares on the *training* faces (18, matched by nearest centre) for each mode and
 *              applied to all; recall is given on all 43 and on the 25 testing faces (held out)
 *      lm68    the same kind of fit, applied to the bounding box of fp_face.landmarks68
 *    Landmarks: NME = mean point-to-point error of the 68 points / distance of the outer eye
 *    corners (points 36 and 45) of the labels, on the faces found (fit convention); missed faces
 *    are listed, and also counted as NME 1.0 in "NME with FTA" and as failures in the failure rate
 *    (NME > 0.08) and the CED AUC up to 0.08.
 *    Note: the jaw points (0-16) of the mesh->68 mapping were chosen on these same 43 faces
 *    (src/face/geometry.c), so the jaw part of the NME is in-sample; "NME 17-67" excludes it.
 * 2. LFW (DIR/lfw/images/<name>/<name>_NNNN.jpg, every image): the fraction of images with >= 1 face
 *    per mode, how many have more than one, and how often the payment candidate (faces[0]) is the
 *    labelled person: LFW crops are 250x250 centred on that person, so the labelled face = the
 *    detection whose box centre is nearest the image centre (also: candidate box holds the centre).
 *
 * usage: eval_detect [--data DIR (../shared/data)] [--json] [--threads N] [--lfw-limit N] [--no-lfw]
 *                    [--modes short,full,both,auto,tiles] [--lfw-modes short,auto,both] [--list]
 *   modes: fp_analyze_options.full_range = 0 short, 1 full, 2 both, -1 auto; "tiles" = both on the
 *   whole image and on 2x2 overlapping tiles, merged here (an experiment for small faces)
 */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "facepay.h"

#define MAXF 64
#define MAXGT 64

typedef struct {
    char file[128];
    int test;           /* from testing*.xml */
    double box[4];      /* x, y, w, h (dlib: left, top, width, height) */
    double pts[68][2];
} gt_face;

typedef struct {
    double box[4];      /* raw detector box */
    double lm_box[4];   /* bounding box of landmarks68 */
    float lm[68][2];
} det_face;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double attr(const char *tag, const char *name) {
    char key[32];
    snprintf(key, sizeof key, " %s='", name);
    const char *p = strstr(tag, key);
    return p ? atof(p + strlen(key)) : NAN;
}

/* Minimal imglab parser: <image file='..'>, <box top left width height>, <part name x y/>. */
static int parse_xml(const char *path, int test, gt_face *gt, int n, int cap) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    char line[1024], file[128] = "";
    while (fgets(line, sizeof line, f)) {
        char *p;
        if ((p = strstr(line, "<image file='"))) {
            p += 13;
            size_t l = strcspn(p, "'");
            snprintf(file, sizeof file, "%.*s", (int)l, p);
        } else if (strstr(line, "<box ") && n < cap) {
            gt_face *g = &gt[n++];
            memset(g, 0, sizeof *g);
            snprintf(g->file, sizeof g->file, "%s", file);
            g->test = test;
            g->box[0] = attr(line, "left"), g->box[1] = attr(line, "top");
            g->box[2] = attr(line, "width"), g->box[3] = attr(line, "height");
            for (int k = 0; k < 68; k++) g->pts[k][0] = g->pts[k][1] = NAN;
        } else if ((p = strstr(line, "<part ")) && n > 0) {
            int k = (int)attr(line, "name");
            if (k >= 0 && k < 68) gt[n - 1].pts[k][0] = attr(line, "x"), gt[n - 1].pts[k][1] = attr(line, "y");
        }
    }
    fclose(f);
    return n;
}

static double iou(const double *a, const double *b) {
    double x0 = fmax(a[0], b[0]), y0 = fmax(a[1], b[1]);
    double x1 = fmin(a[0] + a[2], b[0] + b[2]), y1 = fmin(a[1] + a[3], b[1] + b[3]);
    double in = fmax(0, x1 - x0) * fmax(0, y1 - y0), un = a[2] * a[3] + b[2] * b[3] - in;
    return un > 0 ? in / un : 0;
}

typedef struct {
    double k, dx, dy;
} box_map;

static void map_box(const double *b, const box_map *m, double *out) {
    double cx = b[0] + b[2] / 2 + m->dx * b[2], cy = b[1] + b[3] / 2 + m->dy * b[3];
    out[2] = m->k * b[2], out[3] = m->k * b[3];
    out[0] = cx - out[2] / 2, out[1] = cy - out[3] / 2;
}

/* Least-squares (k, dx, dy) of the map from our boxes to the labelled ones. */
static box_map fit_map(const double (*ours)[4], const double (*gt)[4], int n) {
    box_map m = {1, 0, 0};
    double so = 0, sg = 0;
    for (int i = 0; i < n; i++) {
        so += ours[i][2] * ours[i][2] + ours[i][3] * ours[i][3];
        sg += ours[i][2] * gt[i][2] + ours[i][3] * gt[i][3];
        m.dx += ((gt[i][0] + gt[i][2] / 2) - (ours[i][0] + ours[i][2] / 2)) / ours[i][2] / n;
        m.dy += ((gt[i][1] + gt[i][3] / 2) - (ours[i][1] + ours[i][3] / 2)) / ours[i][3] / n;
    }
    if (so > 0) m.k = sg / so;
    return m;
}

/* Detections of one image with fp_analyze, offset by (ox, oy) (for tiles). */
static int analyse(fp_session *s, const fp_image *img, int mode, double ox, double oy, det_face *d, float *score, int cap, double *ms) {
    static fp_face faces[MAXF];
    fp_analyze_options o = fp_analyze_options_default();
    o.full_range = mode;
    o.max_faces = MAXF;
    o.embedding = o.attributes = o.passive_liveness = 0;
    int n = 0;
    fp_timings t;
    fp_status st = fp_analyze(s, img, &o, faces, MAXF, &n, &t);
    if (st) {
        fprintf(stderr, "fp_analyze: %s: %s\n", fp_strerror(st), fp_last_error());
        return 0;
    }
    *ms += t.total;
    if (n > cap) n = cap;
    for (int i = 0; i < n; i++) {
        double x0 = 1e9, y0 = 1e9, x1 = -1e9, y1 = -1e9;
        for (int k = 0; k < 4; k++) d[i].box[k] = faces[i].box[k] + (k == 0 ? ox : k == 1 ? oy : 0);
        for (int k = 0; k < 68; k++) {
            d[i].lm[k][0] = (float)(faces[i].landmarks68[k][0] + ox), d[i].lm[k][1] = (float)(faces[i].landmarks68[k][1] + oy);
            x0 = fmin(x0, d[i].lm[k][0]), x1 = fmax(x1, d[i].lm[k][0]);
            y0 = fmin(y0, d[i].lm[k][1]), y1 = fmax(y1, d[i].lm[k][1]);
        }
        d[i].lm_box[0] = x0, d[i].lm_box[1] = y0, d[i].lm_box[2] = x1 - x0, d[i].lm_box[3] = y1 - y0;
        score[i] = faces[i].score;
    }
    return n;
}

/* Detections of one image in one mode; mode 3 ("tiles") = both detectors on the whole image and on
 * 2x2 tiles of 60 % of each side (20 % overlap, so each tile is magnified 1.67x in the detector
 * input), then greedy NMS (IoU > 0.3, highest detector score kept). */
static int detect(fp_session *s, const fp_image *img, int mode, det_face *d, double *ms) {
    static float score[4 * MAXF];
    static det_face all[4 * MAXF];
    if (mode != 3) return analyse(s, img, mode, 0, 0, d, score, MAXF, ms);
    int n = analyse(s, img, 2, 0, 0, all, score, MAXF, ms);
    int tw = (int)(0.6 * img->width), th = (int)(0.6 * img->height);
    for (int ty = 0; ty < 2; ty++)
        for (int tx = 0; tx < 2; tx++) {
            int x0 = tx ? img->width - tw : 0, y0 = ty ? img->height - th : 0;
            fp_image tile = {tw, th, malloc((size_t)tw * th * 3)};
            for (int y = 0; y < th; y++) memcpy(tile.rgb + (size_t)y * tw * 3, img->rgb + ((size_t)(y0 + y) * img->width + x0) * 3, (size_t)tw * 3);
            n += analyse(s, &tile, 2, x0, y0, all + n, score + n, MAXF < 4 * MAXF - n ? MAXF : 4 * MAXF - n, ms);
            free(tile.rgb);
        }
    int m = 0, keep[4 * MAXF] = {0};
    for (;;) { /* pick the best remaining, drop what overlaps it */
        int b = -1;
        for (int i = 0; i < n; i++)
            if (!keep[i] && (b < 0 || score[i] > score[b])) b = i;
        if (b < 0 || m == MAXF) break;
        d[m++] = all[b];
        keep[b] = 1;
        for (int i = 0; i < n; i++)
            if (!keep[i] && iou(all[i].box, all[b].box) > 0.3) keep[i] = -1;
    }
    return m;
}

/* Greedy one-to-one matching by IoU >= 0.5; match[g] = detection index or -1, best[g] = best IoU. */
static void match_faces(const gt_face *gt, int ng, const det_face *d, int nd, int conv, const box_map *m, int *match, double *best) {
    int used[MAXF] = {0};
    for (int g = 0; g < ng; g++) match[g] = -1, best[g] = 0;
    for (;;) {
        double bi = 0.5 - 1e-12;
        int bg = -1, bd = -1;
        for (int g = 0; g < ng; g++)
            for (int j = 0; j < nd; j++) {
                double b[4];
                map_box(conv == 2 ? d[j].lm_box : d[j].box, &m[conv], b);
                double v = iou(b, gt[g].box);
                if (v > best[g] && match[g] < 0) best[g] = v;
                if (match[g] < 0 && !used[j] && v > bi) bi = v, bg = g, bd = j;
            }
        if (bg < 0) break;
        match[bg] = bd, used[bd] = 1;
    }
}

static double nme(const gt_face *g, const float lm[68][2], int from) {
    double io = hypot(g->pts[36][0] - g->pts[45][0], g->pts[36][1] - g->pts[45][1]), e = 0;
    for (int k = from; k < 68; k++) e += hypot(lm[k][0] - g->pts[k][0], lm[k][1] - g->pts[k][1]);
    return e / (68 - from) / io;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static const char *mode_name(int m) { return m == 0 ? "short" : m == 1 ? "full" : m == 2 ? "both" : m == 3 ? "tiles" : "auto"; }

/* ---------------------------------------------------------------------------------------------- */
/* dlib-faces                                                                                      */
/* ---------------------------------------------------------------------------------------------- */
static json_t *eval_dlib(fp_session *s, const char *dir, int mode, int list, int json) {
    static gt_face gt[MAXGT];
    char path[4096];
    snprintf(path, sizeof path, "%s/dlib-faces/training_with_face_landmarks.xml", dir);
    int ng = parse_xml(path, 0, gt, 0, MAXGT);
    snprintf(path, sizeof path, "%s/dlib-faces/testing_with_face_landmarks.xml", dir);
    if (ng >= 0) ng = parse_xml(path, 1, gt, ng, MAXGT);
    if (ng <= 0) return NULL;
    /* detections per labelled image (faces of the same file are consecutive) */
    static det_face det[MAXGT][MAXF];
    int nd[MAXGT] = {0}, first[MAXGT], n_det = 0, n_img = 0;
    double ms = 0;
    for (int g = 0; g < ng; g++) {
        first[g] = g > 0 && !strcmp(gt[g].file, gt[g - 1].file) ? first[g - 1] : g;
        if (first[g] != g) continue;
        fp_image img = {0};
        snprintf(path, sizeof path, "%.3000s/dlib-faces/%.127s", dir, gt[g].file);
        if (fp_image_load(path, NULL, &img)) {
            fprintf(stderr, "%s: %s\n", path, fp_last_error());
            continue;
        }
        nd[g] = detect(s, &img, mode, det[g], &ms);
        n_img++;
        n_det += nd[g];
        fp_image_release(&img);
    }
    /* fit the two maps on the training faces: nearest detection whose box holds the label centre */
    box_map m[3] = {{1, 0, 0}, {1, 0, 0}, {1, 0, 0}};
    for (int conv = 1; conv <= 2; conv++) {
        double ours[MAXGT][4], lab[MAXGT][4];
        int n = 0;
        for (int g = 0; g < ng; g++) {
            if (gt[g].test) continue;
            double gx = gt[g].box[0] + gt[g].box[2] / 2, gy = gt[g].box[1] + gt[g].box[3] / 2, bd = 1e18;
            int bj = -1;
            for (int j = 0; j < nd[first[g]]; j++) {
                const double *b = det[first[g]][j].box;
                double dd = hypot(b[0] + b[2] / 2 - gx, b[1] + b[3] / 2 - gy);
                if (gx > b[0] && gx < b[0] + b[2] && gy > b[1] && gy < b[1] + b[3] && dd < bd) bd = dd, bj = j;
            }
            if (bj < 0) continue;
            memcpy(ours[n], conv == 2 ? det[first[g]][bj].lm_box : det[first[g]][bj].box, sizeof ours[n]);
            memcpy(lab[n++], gt[g].box, sizeof lab[0]);
        }
        if (n >= 3) m[conv] = fit_map((const double(*)[4])ours, (const double(*)[4])lab, n);
    }
    json_t *out = json_object();
    json_object_set_new(out, "mode", json_string(mode_name(mode)));
    json_object_set_new(out, "faces", json_integer(ng));
    json_object_set_new(out, "detections", json_integer(n_det));
    json_object_set_new(out, "ms_per_image", json_real(ms / (n_img ? n_img : 1)));
    static const char *conv_name[3] = {"raw", "fit", "lm68"};
    double nmes[MAXGT], nme_in[MAXGT];
    int matched_fit[MAXGT];
    double missed_iou[MAXGT];
    for (int conv = 0; conv < 3; conv++) {
        int found = 0, found_test = 0, n_test = 0, match[MAXGT];
        double best[MAXGT];
        for (int g = 0; g < ng; g++) {
            if (first[g] != g) continue;
            int cnt = 1;
            while (g + cnt < ng && first[g + cnt] == g) cnt++;
            match_faces(gt + g, cnt, det[g], nd[g], conv, m, match + g, best + g);
        }
        for (int g = 0; g < ng; g++) {
            found += match[g] >= 0, n_test += gt[g].test, found_test += gt[g].test && match[g] >= 0;
            if (conv == 1) {
                matched_fit[g] = match[g] >= 0;
                nmes[g] = match[g] >= 0 ? nme(&gt[g], det[first[g]][match[g]].lm, 0) : INFINITY;
                nme_in[g] = match[g] >= 0 ? nme(&gt[g], det[first[g]][match[g]].lm, 17) : INFINITY;
                missed_iou[g] = best[g];
            }
        }
        json_t *c = json_pack("{s:i,s:f,s:i,s:f,s:f,s:f,s:f}", "found", found, "recall", (double)found / ng, "found_test", found_test,
                              "recall_test", n_test ? (double)found_test / n_test : 0.0, "k", m[conv].k, "dx", m[conv].dx, "dy", m[conv].dy);
        json_object_set_new(out, conv_name[conv], c);
        if (!json)
            printf("  %-5s %-4s recall %2d/%d = %5.1f %%  (testing %2d/%d = %5.1f %%)  map k %.3f dx %+.3f dy %+.3f\n", mode_name(mode),
                   conv_name[conv], found, ng, 100.0 * found / ng, found_test, n_test, n_test ? 100.0 * found_test / n_test : 0.0, m[conv].k,
                   m[conv].dx, m[conv].dy);
    }
    /* NME on the faces found with the fitted box convention */
    double sorted[MAXGT], sum = 0, sum_in = 0, sum_fta = 0, auc = 0;
    int nm = 0, fail = 0;
    for (int g = 0; g < ng; g++) {
        if (matched_fit[g]) sorted[nm++] = nmes[g], sum += nmes[g], sum_in += nme_in[g];
        sum_fta += matched_fit[g] ? fmin(nmes[g], 1.0) : 1.0;
        fail += !(nmes[g] <= 0.08);
        /* CED AUC up to 0.08, normalised: mean over faces of max(0, 1 - nme / 0.08) */
        auc += isfinite(nmes[g]) ? fmax(0, 1 - nmes[g] / 0.08) / ng : 0;
    }
    qsort(sorted, nm, sizeof sorted[0], cmp_d);
    double med = nm ? (nm % 2 ? sorted[nm / 2] : 0.5 * (sorted[nm / 2 - 1] + sorted[nm / 2])) : NAN;
    json_object_set_new(out, "nme", json_pack("{s:i,s:f,s:f,s:f,s:f,s:f,s:f}", "faces", nm, "mean", nm ? sum / nm : NAN, "median", med,
                                              "mean_17_67", nm ? sum_in / nm : NAN, "mean_fta_as_1", sum_fta / ng, "failure_rate_0_08",
                                              (double)fail / ng, "auc_0_08", auc));
    if (!json)
        printf("  %-5s NME on %d found faces: mean %.4f median %.4f (points 17-67: %.4f); with the %d missed as 1.0: %.4f; "
               "failure rate (NME > 0.08 or missed) %.1f %%, CED AUC@0.08 %.3f; %d detections, %.1f ms/image\n",
               mode_name(mode), nm, nm ? sum / nm : NAN, med, nm ? sum_in / nm : NAN, ng - nm, sum_fta / ng, 100.0 * fail / ng, auc, n_det,
               ms / (n_img ? n_img : 1));
    json_t *missed = json_array();
    for (int g = 0; g < ng; g++) {
        if (matched_fit[g]) continue;
        json_array_append_new(missed, json_pack("{s:s,s:[f,f,f,f],s:f}", "file", gt[g].file, "box", gt[g].box[0], gt[g].box[1], gt[g].box[2],
                                                gt[g].box[3], "best_iou", missed_iou[g]));
        if (list && !json)
            printf("    missed: %s box %.0f,%.0f %.0fx%.0f (best IoU %.2f)\n", gt[g].file, gt[g].box[0], gt[g].box[1], gt[g].box[2],
                   gt[g].box[3], missed_iou[g]);
    }
    json_object_set_new(out, "missed", missed);
    return out;
}

/* ---------------------------------------------------------------------------------------------- */
/* LFW                                                                                             */
/* ---------------------------------------------------------------------------------------------- */
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char **list_lfw(const char *dir, int *n, int limit) {
    char path[4096];
    snprintf(path, sizeof path, "%s/lfw/images", dir);
    DIR *d = opendir(path);
    if (!d) return NULL;
    char **files = NULL;
    int cap = 0;
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%.3000s/%.255s", path, e->d_name);
        DIR *d2 = opendir(sub);
        struct dirent *e2;
        while (d2 && (e2 = readdir(d2))) {
            size_t l = strlen(e2->d_name);
            if (l < 5 || strcmp(e2->d_name + l - 4, ".jpg")) continue;
            if (*n == cap) files = realloc(files, sizeof *files * (cap = cap ? 2 * cap : 4096));
            files[*n] = malloc(strlen(sub) + l + 2);
            sprintf(files[(*n)++], "%s/%s", sub, e2->d_name);
        }
        if (d2) closedir(d2);
    }
    closedir(d);
    qsort(files, *n, sizeof *files, cmp_str);
    if (limit > 0 && *n > limit) *n = limit; /* (the rest leaks until exit) */
    return files;
}

static json_t *eval_lfw_detect(fp_session *s, char **files, int n, int mode, int json) {
    static det_face det[MAXF];
    int found = 0, multi = 0, central = 0, contains = 0, errors = 0;
    double ms = 0, t0 = now_s();
    for (int i = 0; i < n; i++) {
        fp_image img = {0};
        if (fp_image_load(files[i], NULL, &img)) {
            errors++;
            continue;
        }
        int nd = detect(s, &img, mode, det, &ms);
        if (nd > 0) {
            double cx = img.width / 2.0, cy = img.height / 2.0, bd = 1e18;
            int bj = 0;
            for (int j = 0; j < nd; j++) {
                double dd = hypot(det[j].box[0] + det[j].box[2] / 2 - cx, det[j].box[1] + det[j].box[3] / 2 - cy);
                if (dd < bd) bd = dd, bj = j;
            }
            found++;
            multi += nd > 1;
            central += bj == 0;
            contains += cx > det[0].box[0] && cx < det[0].box[0] + det[0].box[2] && cy > det[0].box[1] && cy < det[0].box[1] + det[0].box[3];
        }
        fp_image_release(&img);
    }
    double sec = now_s() - t0;
    if (!json)
        printf("  %-5s LFW images with a face %d/%d = %.2f %% (FTA %d, decode errors %d); >1 face %d (%.1f %%); candidate = most central "
               "detection %d/%d = %.2f %%, candidate box holds the centre %.2f %%; %.1f ms/image (analyse %.1f)\n",
               mode_name(mode), found, n, 100.0 * found / n, n - found, errors, multi, 100.0 * multi / n, central, found,
               100.0 * central / (found ? found : 1), 100.0 * contains / (found ? found : 1), 1e3 * sec / n, ms / n);
    return json_pack("{s:s,s:i,s:i,s:f,s:i,s:i,s:i,s:f}", "mode", mode_name(mode), "images", n, "with_face", found, "detection_rate",
                     (double)found / n, "multi_face", multi, "candidate_central", central, "candidate_holds_centre", contains,
                     "ms_per_image", 1e3 * sec / n);
}

/* "short,full" -> mode codes (up to 8) */
static int parse_modes(const char *p, int *out) {
    int n = 0;
    for (; *p && n < 8; p += strcspn(p, ","), p += *p == ',') {
        size_t l = strcspn(p, ",");
        for (int m = -1; m <= 3; m++)
            if (strlen(mode_name(m)) == l && !strncmp(p, mode_name(m), l)) out[n++] = m;
    }
    return n;
}

int main(int argc, char **argv) {
    const char *dir = "../shared/data", *modes = "short,full,both,auto,tiles", *lfw_modes = "short,auto,both";
    int json = 0, threads = 1, lfw_limit = 0, lfw = 1, list = 0;
    for (int i = 1; i < argc; i++) {
        int more = i + 1 < argc;
        if (!strcmp(argv[i], "--data") && more) dir = argv[++i];
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--threads") && more) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--lfw-limit") && more) lfw_limit = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-lfw")) lfw = 0;
        else if (!strcmp(argv[i], "--modes") && more) modes = argv[++i];
        else if (!strcmp(argv[i], "--lfw-modes") && more) lfw_modes = argv[++i];
        else if (!strcmp(argv[i], "--list")) list = 1;
        else {
            fprintf(stderr, "usage: eval_detect [--data DIR] [--json] [--threads N] [--lfw-limit N] [--no-lfw]\n"
                            "                   [--modes M,..] [--lfw-modes M,..] [--list]   (M: short full both auto tiles)\n");
            return 2;
        }
    }
    fp_engine_options eo = fp_engine_options_default();
    eo.threads = threads < 1 ? 1 : threads;
    eo.attributes = eo.passive_liveness = 0;
    fp_engine *e = NULL;
    fp_session *s = NULL;
    fp_status st;
    if ((st = fp_engine_new(&eo, &e)) || (st = fp_session_new(e, &s))) {
        fprintf(stderr, "engine: %s: %s\n", fp_strerror(st), fp_last_error());
        return 1;
    }
    int mlist[8], nm = parse_modes(modes, mlist), llist[8], nl = parse_modes(lfw_modes, llist);
    json_t *root = json_object(), *dl = json_array(), *lf = json_array();
    if (!json) printf("dlib-faces (%s/dlib-faces): IoU >= 0.5, one-to-one\n", dir);
    for (int i = 0; i < nm; i++) {
        json_t *r = eval_dlib(s, dir, mlist[i], list, json);
        if (!r) {
            fprintf(stderr, "dlib-faces not found under %s\n", dir);
            break;
        }
        json_array_append_new(dl, r);
    }
    int n = 0;
    char **files = lfw ? list_lfw(dir, &n, lfw_limit) : NULL;
    if (files && n > 0) {
        if (!json) printf("LFW (%s/lfw/images, %d images)\n", dir, n);
        for (int i = 0; i < nl; i++) json_array_append_new(lf, eval_lfw_detect(s, files, n, llist[i], json));
    }
    for (int i = 0; files && i < n; i++) free(files[i]);
    free(files);
    json_object_set_new(root, "dlib_faces", dl);
    json_object_set_new(root, "lfw", lf);
    if (json) {
        json_dumpf(root, stdout, JSON_INDENT(1));
        printf("\n");
    }
    json_decref(root);
    fp_session_free(s);
    fp_engine_free(e);
    return 0;
}
