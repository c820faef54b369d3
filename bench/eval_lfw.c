/*
 * eval_lfw.c - LFW View-2 face verification, end to end through the public API:
 * decode -> fp_analyze (detect, mesh, iris, 5 points, ArcFace warp, MobileFaceNet) -> cosine.
 *
 * Every image named by pairs.txt is analysed once; the payment candidate (faces[0]: largest, most
 * central) is the face of the image. Protocol: 5 sets of 600 pairs; for each set the threshold that
 * maximises accuracy on the other 4 is applied to it; mean +- std (sample std, n-1) over the 5 sets.
 * Also: best single threshold on all 3000 pairs, AUC, EER. An image without a face (FTA) makes every
 * pair it is in wrong at every threshold: such a pair gets the score +inf if mismatched, -inf if
 * matched (so it also counts against AUC and EER), it is never dropped.
 *
 * Variants (--variant NAME, or "all" for the comparison table). NAME = ALIGN[+faceres]:
 *   lib        fp_face.embedding exactly as the library computes it (iris centres) for the flip mode
 *              asked (--no-flip); the other flip mode in the "all" table is our re-embedding of
 *              fp_face_aligned_crop (the same crop rounded to 8 bits)
 *   iris       landmarks5 (iris centres, nose 1, mouth 61/291), re-warped by us (sanity: == lib)
 *   corners    eye centre = midpoint of the mesh eye corners 33/133 and 362/263
 *   contour    eye centre = mean of the 16 mesh eye-contour points of each eye
 *   ...-c      the same points shifted by -0.5 px before solving the similarity: mesh/iris points are
 *              continuous coordinates (pixel i covers [i, i+1)), the ArcFace warp samples the source
 *              in OpenCV convention (pixel i centred on i)
 *   +faceres   score = z(MobileFaceNet cosine) + z(faceres 1024-d descriptor cosine), z-normalised
 *              with the mean/std of the training sets' pair scores ("+faceres*" : weight of the
 *              faceres term chosen on the training sets too, grid 0..2 step 0.1)
 *   faceres    faceres descriptor cosine alone
 * Our own alignments solve the least-squares similarity onto the ArcFace template (as the library)
 * and warp with fp_face_aligned_crop (the library warp) given that matrix; embeddings come from
 * fp_embed_aligned on the crop and its mirror (flip-average = normalise(e + e_mirror)).
 *
 * usage: eval_lfw [--data DIR] [--no-flip] [--json] [--threads N] [--limit N] [--variant NAME|all]
 *                 [--detector short|auto|full|both] [--cache FILE] [--scores FILE] [--tta] [--exact-jpeg]
 *   --limit N     first N pairs of each matched/mismatched block (quick runs; N <= 300)
 *   --cache FILE  store/load the per-image features (all variants) to re-score without re-running
 *   --exact-jpeg  decode JPEGs bit-exactly like the reference (jpeg-js) instead of libjpeg-turbo
 *   --tta         our alignments also embed 4 crops shifted by 1 px and average (experiment)
 *   --scores FILE per-pair CSV of the selected variant: set, same, image 1, image 2, MobileFaceNet
 *                 cosine, faceres cosine (+faceres variants), faces found in image 1, 2
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "facepay.h"

#define SETS 5
#define MAXNAME 96
#define DESC FP_DESCRIPTOR_DIM
#define EMB FP_EMBEDDING_DIM

enum { AL_LIB, AL_IRIS, AL_IRIS_C, AL_CORNERS, AL_CORNERS_C, AL_CONTOUR, AL_CONTOUR_C, AL_COUNT };
static const char *al_name[AL_COUNT] = {"lib", "iris", "iris-c", "corners", "corners-c", "contour", "contour-c"};

typedef struct {
    char path[2 * MAXNAME + 32];
    int status;                 /* 0 ok, 1 no face, 2 decode/analyze error */
    int n_faces;
    float emb[AL_COUNT][2][EMB]; /* [alignment][0 = no flip, 1 = flip-averaged] */
    float desc[DESC];
} image_rec;

typedef struct {
    int img[2], same, set;
} pair_rec;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------------------------------------- */
/* pairs.txt                                                                                       */
/* ---------------------------------------------------------------------------------------------- */
static char (*g_names)[2 * MAXNAME + 32];
static int g_n_names, g_cap_names;

static int cmp_str(const void *a, const void *b) { return strcmp(a, b); }

static void add_name(const char *path) {
    if (g_n_names == g_cap_names) {
        g_cap_names = g_cap_names ? 2 * g_cap_names : 1024;
        g_names = realloc(g_names, sizeof *g_names * g_cap_names);
    }
    snprintf(g_names[g_n_names++], sizeof g_names[0], "%s", path);
}

static int read_pairs(const char *dir, int limit, pair_rec **out_pairs, int *out_n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/pairs.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    int sets, per;
    if (fscanf(f, "%d %d", &sets, &per) != 2 || sets != SETS || per < 1) {
        fprintf(stderr, "%s: expected a first line \"5 N\"\n", path);
        fclose(f);
        return -1;
    }
    pair_rec *pairs = calloc((size_t)sets * per * 2, sizeof *pairs);
    char (*raw)[2][2 * MAXNAME + 32] = calloc((size_t)sets * per * 2, sizeof *raw);
    int n = 0;
    char line[512];
    if (!fgets(line, sizeof line, f)) line[0] = 0; /* rest of the first line */
    for (int i = 0; i < sets * per * 2 && fgets(line, sizeof line, f); i++) {
        char a[MAXNAME], b[MAXNAME];
        int n1, n2, k = i % (2 * per), same = k < per;
        if (same ? sscanf(line, "%95s %d %d", a, &n1, &n2) != 3 : sscanf(line, "%95s %d %95s %d", a, &n1, b, &n2) != 4) {
            fprintf(stderr, "%s: bad line %d: %s", path, i + 2, line);
            fclose(f);
            return -1;
        }
        if (same) strcpy(b, a);
        if (limit > 0 && k % per >= limit) continue;
        snprintf(raw[n][0], sizeof raw[0][0], "%s/%s_%04d.jpg", a, a, n1);
        snprintf(raw[n][1], sizeof raw[0][1], "%s/%s_%04d.jpg", b, b, n2);
        pairs[n].same = same;
        pairs[n].set = i / (2 * per);
        n++;
    }
    fclose(f);
    if (n == 0) return -1;
    /* unique image list (sorted), then pair -> image index */
    for (int i = 0; i < n; i++) add_name(raw[i][0]), add_name(raw[i][1]); /* then sort, unique */
    qsort(g_names, g_n_names, sizeof g_names[0], cmp_str);
    int u = 0;
    for (int i = 0; i < g_n_names; i++)
        if (!u || strcmp(g_names[i], g_names[u - 1])) memmove(g_names[u++], g_names[i], sizeof g_names[0]);
    g_n_names = u;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 2; j++) {
            char *hit = bsearch(raw[i][j], g_names, g_n_names, sizeof g_names[0], cmp_str);
            pairs[i].img[j] = (int)((hit - (char *)g_names) / sizeof g_names[0]);
        }
    free(raw);
    *out_pairs = pairs;
    *out_n = n;
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Our alignments: 5 points -> similarity onto the ArcFace template -> library warp -> embed       */
/* ---------------------------------------------------------------------------------------------- */
static const double arcface[5][2] = {{38.2946, 51.6963}, {73.5318, 51.5014}, {56.0252, 71.7366},
                                     {41.5493, 92.3655}, {70.7299, 92.2041}};
static const int eye16[2][16] = {
    {33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246},
    {263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466}};

/* Umeyama similarity without reflection (as the library): M = [a -b tx; b a ty]. */
static void similarity(const double p[5][2], float M[6]) {
    double mx = 0, my = 0, nx = 0, ny = 0, sab = 0, sba = 0, var = 0;
    for (int i = 0; i < 5; i++) mx += p[i][0] / 5, my += p[i][1] / 5, nx += arcface[i][0] / 5, ny += arcface[i][1] / 5;
    for (int i = 0; i < 5; i++) {
        double sx = p[i][0] - mx, sy = p[i][1] - my, dx = arcface[i][0] - nx, dy = arcface[i][1] - ny;
        sab += dx * sx + dy * sy;
        sba += dy * sx - dx * sy;
        var += sx * sx + sy * sy;
    }
    double a = var > 0 ? sab / var : 1, b = var > 0 ? sba / var : 0;
    M[0] = (float)a, M[1] = (float)-b, M[2] = (float)(nx - (a * mx - b * my));
    M[3] = (float)b, M[4] = (float)a, M[5] = (float)(ny - (b * mx + a * my));
}

static void five_points(const fp_face *f, int al, double p[5][2]) {
    for (int e = 0; e < 2; e++) {
        double x = 0, y = 0;
        if (al == AL_IRIS || al == AL_IRIS_C) {
            x = f->iris[e][0][0], y = f->iris[e][0][1];
        } else if (al == AL_CORNERS || al == AL_CORNERS_C) {
            const int a = e ? 362 : 33, b = e ? 263 : 133;
            x = 0.5 * (f->mesh[a][0] + f->mesh[b][0]), y = 0.5 * (f->mesh[a][1] + f->mesh[b][1]);
        } else {
            for (int k = 0; k < 16; k++) x += f->mesh[eye16[e][k]][0] / 16.0, y += f->mesh[eye16[e][k]][1] / 16.0;
        }
        p[e][0] = x, p[e][1] = y;
    }
    const int other[3] = {1, 61, 291};
    for (int k = 0; k < 3; k++) p[2 + k][0] = f->mesh[other[k]][0], p[2 + k][1] = f->mesh[other[k]][1];
    if (p[0][0] > p[1][0]) /* mirrored face: keep point 0 on the image left (as the library) */
        for (int c = 0; c < 2; c++) {
            double t = p[0][c];
            p[0][c] = p[1][c], p[1][c] = t;
            t = p[3][c], p[3][c] = p[4][c], p[4][c] = t;
        }
    const int centred = al == AL_IRIS_C || al == AL_CORNERS_C || al == AL_CONTOUR_C;
    for (int k = 0; centred && k < 5; k++) p[k][0] -= 0.5, p[k][1] -= 0.5;
}

/* Embeddings of the crop and of its mirror (each L2-normalised) -> out[0] plain, out[1] flip-average
 * = normalise(e + e_mirror). With --tta the crop is also taken shifted by 1 px (112-crop units) left,
 * right, up and down, and out[] average all the shifted views. */
static int g_tta = 0;

static fp_status embed_alignment(fp_session *s, const fp_image *img, const fp_face *face, int al, float out[2][EMB]) {
    static const float shift[5][2] = {{0, 0}, {-1, 0}, {1, 0}, {0, -1}, {0, 1}};
    const int views = g_tta ? 5 : 1;
    fp_face g = *face;
    if (al != AL_LIB) {
        double p[5][2];
        five_points(face, al, p);
        similarity(p, g.align);
    }
    fp_image crop[10] = {{0}};
    float e[10][EMB];
    fp_status st = FP_OK;
    for (int v = 0; v < views && !st; v++) {
        fp_face h = g;
        h.align[2] += shift[v][0], h.align[5] += shift[v][1];
        if ((st = fp_face_aligned_crop(img, &h, &crop[2 * v]))) break;
        fp_image *m = &crop[2 * v + 1];
        m->width = m->height = 112;
        m->rgb = malloc(112 * 112 * 3);
        for (int y = 0; y < 112; y++)
            for (int x = 0; x < 112; x++) memcpy(m->rgb + (y * 112 + x) * 3, crop[2 * v].rgb + (y * 112 + 111 - x) * 3, 3);
    }
    if (!st) st = fp_embed_aligned(s, crop, 2 * views, 0, e);
    for (int f = 0; f < 2 && !st; f++) { /* f = 0: plain views only; f = 1: plain and mirrored */
        double n = 0, acc[EMB] = {0};
        for (int v = 0; v < 2 * views; v++)
            for (int k = 0; k < EMB && (f || v % 2 == 0); k++) acc[k] += e[v][k];
        for (int k = 0; k < EMB; k++) n += acc[k] * acc[k];
        for (int k = 0; k < EMB; k++) out[f][k] = (float)(acc[k] / sqrt(n));
    }
    for (int v = 0; v < 2 * views; v++) {
        if (v % 2) free(crop[v].rgb);
        else fp_image_release(&crop[v]);
    }
    return st;
}

/* ---------------------------------------------------------------------------------------------- */
/* Scores and metrics                                                                              */
/* ---------------------------------------------------------------------------------------------- */
typedef struct {
    double mean, std, fold[SETS], thr[SETS], best_all, best_thr, auc, eer;
    double dprime; /* (mean same - mean diff) / sqrt((var same + var diff) / 2), finite scores only */
    int wrong;     /* pairs wrong at the cross-validated thresholds */
} metrics;

typedef struct {
    double s;
    int same;
} scored;

static int cmp_scored(const void *a, const void *b) {
    double x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return (x > y) - (x < y);
}

/* Best threshold (predict same if s > t) on the pairs with use[i]; returns the accuracy. */
static double best_threshold(const double *s, const pair_rec *p, int n, const int *use, double *thr) {
    scored *v = malloc(sizeof *v * n);
    int m = 0, pos = 0;
    for (int i = 0; i < n; i++)
        if (use[i]) v[m].s = s[i], v[m].same = p[i].same, pos += p[i].same, m++;
    qsort(v, m, sizeof *v, cmp_scored);
    /* threshold below v[0]: every pair "same" -> correct = pos; moving past v[i] flips it */
    int correct = pos, best = pos;
    *thr = m ? v[0].s - 1e-6 : 0;
    for (int i = 0; i < m; i++) {
        correct += v[i].same ? -1 : 1;
        if ((i + 1 == m || v[i + 1].s > v[i].s) && correct > best) {
            best = correct;
            *thr = i + 1 < m && isfinite(v[i + 1].s) && isfinite(v[i].s) ? 0.5 * (v[i].s + v[i + 1].s) : v[i].s;
        }
    }
    free(v);
    return m ? (double)best / m : 0;
}

/* Threshold chosen on the sets other than k, accuracy on set k. */
static double fold_accuracy(const double *s, const pair_rec *p, int n, int k, double *thr) {
    int *use = calloc(n, sizeof *use), ok = 0, m = 0;
    for (int i = 0; i < n; i++) use[i] = p[i].set != k;
    best_threshold(s, p, n, use, thr);
    for (int i = 0; i < n; i++)
        if (p[i].set == k) ok += (s[i] > *thr) == p[i].same, m++;
    free(use);
    return m ? (double)ok / m : 0;
}

static void fold_summary(metrics *r, int n) {
    r->mean = r->std = 0;
    for (int k = 0; k < SETS; k++) r->mean += r->fold[k] / SETS;
    r->wrong = (int)lround((1 - r->mean) * n);
    for (int k = 0; k < SETS; k++) r->std += (r->fold[k] - r->mean) * (r->fold[k] - r->mean) / (SETS - 1);
    r->std = sqrt(r->std);
}

static metrics evaluate(const double *s, const pair_rec *p, int n) {
    metrics r;
    memset(&r, 0, sizeof r);
    for (int k = 0; k < SETS; k++) r.fold[k] = fold_accuracy(s, p, n, k, &r.thr[k]);
    fold_summary(&r, n);
    int *use = calloc(n, sizeof *use);
    for (int i = 0; i < n; i++) use[i] = 1;
    r.best_all = best_threshold(s, p, n, use, &r.best_thr);
    free(use);
    /* AUC (Mann-Whitney, ties count 1/2) and EER on the sorted scores */
    scored *v = malloc(sizeof *v * n);
    int pos = 0;
    for (int i = 0; i < n; i++) v[i].s = s[i], v[i].same = p[i].same, pos += p[i].same;
    qsort(v, n, sizeof *v, cmp_scored);
    int neg = n - pos, negs_below = 0;
    double auc = 0;
    for (int i = 0; i < n;) {
        int j = i, tp = 0, tn = 0;
        while (j < n && v[j].s == v[i].s) tp += v[j].same, tn += !v[j].same, j++;
        auc += tp * (negs_below + 0.5 * tn);
        negs_below += tn;
        i = j;
    }
    r.auc = pos && neg ? auc / ((double)pos * neg) : 0;
    double m[2][3] = {{0}}; /* count, sum, sum of squares of [different, same] */
    for (int i = 0; i < n; i++)
        if (isfinite(s[i])) m[p[i].same][0]++, m[p[i].same][1] += s[i], m[p[i].same][2] += s[i] * s[i];
    double mu[2], var[2];
    for (int c = 0; c < 2; c++) mu[c] = m[c][1] / m[c][0], var[c] = m[c][2] / m[c][0] - mu[c] * mu[c];
    r.dprime = (mu[1] - mu[0]) / sqrt(0.5 * (var[0] + var[1]));
    /* EER: raise the threshold past each score; FRR rises, FAR falls; min of max(FRR, FAR) */
    int fr = 0, fa = neg;
    r.eer = 1;
    for (int i = 0; i < n; i++) {
        if (v[i].same) fr++;
        else fa--;
        double e = fmax((double)fr / pos, (double)fa / neg);
        if (e < r.eer) r.eer = e;
    }
    free(v);
    return r;
}

/* Cosine per pair for (alignment, flip); FTA pairs get -inf (matched) / +inf (mismatched). */
static void pair_scores(const image_rec *im, const pair_rec *p, int n, int al, int flip, int faceres, double *s) {
    for (int i = 0; i < n; i++) {
        const image_rec *a = &im[p[i].img[0]], *b = &im[p[i].img[1]];
        if (a->status || b->status) s[i] = p[i].same ? -INFINITY : INFINITY;
        else s[i] = faceres ? fp_cosine(a->desc, b->desc, DESC) : fp_cosine(a->emb[al][flip], b->emb[al][flip], EMB);
    }
}

/* z(s1) + w z(s2) with the mean/std of the finite scores of the sets in use[]. */
static void fuse(const double *s1, const double *s2, const pair_rec *p, int n, int skip_set, double w, double *out) {
    double st[2][3] = {{0}}; /* count, sum, sum of squares */
    for (int i = 0; i < n; i++)
        if (p[i].set != skip_set && isfinite(s1[i]))
            for (int c = 0; c < 2; c++) {
                double x = c ? s2[i] : s1[i];
                st[c][0]++, st[c][1] += x, st[c][2] += x * x;
            }
    double mu[2], sd[2];
    for (int c = 0; c < 2; c++) mu[c] = st[c][1] / st[c][0], sd[c] = sqrt(st[c][2] / st[c][0] - mu[c] * mu[c]);
    for (int i = 0; i < n; i++) out[i] = isfinite(s1[i]) ? (s1[i] - mu[0]) / sd[0] + w * (s2[i] - mu[1]) / sd[1] : s1[i];
}

/* Fused score; weight fixed (w_fixed >= 0) or, per held-out set, the one of 0, 0.1 .. 2 that is best
 * on the other sets. Per held-out set k, the z statistics, the weight and the threshold all come from
 * the other sets. best-all, AUC and EER use statistics of all pairs and the mean weight. */
static metrics evaluate_fused(const double *s1, const double *s2, const pair_rec *p, int n, double w_fixed, double *w_used) {
    double *g = malloc(sizeof *g * n), thr;
    int *use = calloc(n, sizeof *use);
    double fold[SETS], thrs[SETS], wsum = 0;
    for (int k = 0; k < SETS; k++) {
        double best_w = w_fixed, best_acc = -1;
        for (int i = 0; i < n; i++) use[i] = p[i].set != k;
        for (int wi = 0; w_fixed < 0 && wi <= 20; wi++) {
            fuse(s1, s2, p, n, k, 0.1 * wi, g);
            double acc = best_threshold(g, p, n, use, &thr);
            if (acc > best_acc + 1e-12) best_acc = acc, best_w = 0.1 * wi;
        }
        fuse(s1, s2, p, n, k, best_w, g);
        fold[k] = fold_accuracy(g, p, n, k, &thrs[k]);
        wsum += best_w;
    }
    *w_used = wsum / SETS;
    fuse(s1, s2, p, n, -1, *w_used, g);
    metrics r = evaluate(g, p, n);
    memcpy(r.fold, fold, sizeof fold);
    memcpy(r.thr, thrs, sizeof thrs);
    fold_summary(&r, n);
    free(g), free(use);
    return r;
}

/* ---------------------------------------------------------------------------------------------- */
/* Main                                                                                            */
/* ---------------------------------------------------------------------------------------------- */
static void usage(void) {
    fprintf(stderr, "usage: eval_lfw [--data DIR] [--no-flip] [--json] [--threads N] [--limit N] [--variant NAME|all]\n"
                    "                [--detector short|auto|full|both] [--cache FILE] [--scores FILE] [--tta] [--exact-jpeg]\n"
                    "variants: lib iris iris-c corners corners-c contour contour-c, each optionally +faceres or\n"
                    "          +faceres* (tuned weight); faceres; all\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *data = "../shared/data/lfw", *variant = "lib", *cache = NULL, *det = "auto", *scores_out = NULL;
    int flip = 1, json = 0, threads = 1, limit = 0, exact_jpeg = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--data") && more) data = argv[++i];
        else if (!strcmp(a, "--no-flip")) flip = 0;
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--threads") && more) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--limit") && more) limit = atoi(argv[++i]);
        else if (!strcmp(a, "--variant") && more) variant = argv[++i];
        else if (!strcmp(a, "--detector") && more) det = argv[++i];
        else if (!strcmp(a, "--cache") && more) cache = argv[++i];
        else if (!strcmp(a, "--scores") && more) scores_out = argv[++i];
        else if (!strcmp(a, "--tta")) g_tta = 1;
        else if (!strcmp(a, "--exact-jpeg")) exact_jpeg = 1;
        else usage();
    }
    int full_range = !strcmp(det, "short") ? 0 : !strcmp(det, "full") ? 1 : !strcmp(det, "both") ? 2 : -1;
    /* parse the variant: ALIGN[+faceres[*]] | faceres | all */
    int all = !strcmp(variant, "all"), v_al = -1, v_fr = 0, v_fr_only = !strcmp(variant, "faceres");
    if (!all && !v_fr_only) {
        const char *plus = strchr(variant, '+');
        size_t len = plus ? (size_t)(plus - variant) : strlen(variant);
        for (int k = 0; k < AL_COUNT; k++)
            if (strlen(al_name[k]) == len && !strncmp(variant, al_name[k], len)) v_al = k;
        if (plus) v_fr = !strcmp(plus, "+faceres") ? 1 : !strcmp(plus, "+faceres*") ? 2 : -1;
        if (v_al < 0 || v_fr < 0) usage();
    }
    int need_desc = all || v_fr || v_fr_only;

    pair_rec *pairs;
    int n_pairs;
    if (read_pairs(data, limit, &pairs, &n_pairs)) return 77;
    int n_img = g_n_names;
    image_rec *im = calloc(n_img, sizeof *im);
    for (int i = 0; i < n_img; i++) snprintf(im[i].path, sizeof im[i].path, "%s", g_names[i]);

    /* cache: key = data dir, detector, limit; holds every alignment and the descriptor */
    char key[512];
    snprintf(key, sizeof key, "eval_lfw %zu %s det=%d limit=%d n=%d tta=%d%s", sizeof(image_rec), data, full_range, limit, n_img, g_tta,
             exact_jpeg ? " exact" : "");
    int loaded = 0;
    FILE *cf = cache ? fopen(cache, "rb") : NULL;
    if (cf) {
        char k2[512] = "";
        if (fread(k2, 1, sizeof k2, cf) == sizeof k2 && !strcmp(k2, key) &&
            fread(im, sizeof *im, n_img, cf) == (size_t)n_img)
            loaded = 1;
        fclose(cf);
        if (loaded) fprintf(stderr, "loaded features from %s\n", cache);
        else fprintf(stderr, "cache %s does not match \"%s\", recomputing\n", cache, key);
    }
    int compute_all = (cache && !loaded) || all; /* a cache holds every variant */
    if (compute_all) need_desc = 1;

    fp_engine_options eo = fp_engine_options_default();
    eo.threads = threads < 1 ? 1 : threads;
    eo.attributes = need_desc;
    eo.passive_liveness = 0;
    eo.full_range = full_range != 0;
    fp_engine *eng = NULL;
    fp_session *ses = NULL;
    fp_status st;
    double t_load = now_s();
    if (!loaded && ((st = fp_engine_new(&eo, &eng)) || (st = fp_session_new(eng, &ses)))) {
        fprintf(stderr, "engine: %s: %s\n", fp_strerror(st), fp_last_error());
        return 1;
    }
    t_load = now_s() - t_load;

    fp_analyze_options ao = fp_analyze_options_default();
    ao.full_range = full_range;
    ao.max_faces = 1; /* only the payment candidate is analysed; n_faces still counts every detection */
    ao.flip_embedding = flip;
    ao.attributes = need_desc;
    ao.passive_liveness = 0;
    fp_image_limits lim = fp_image_limits_default();
    lim.exact_jpeg = exact_jpeg;
    fp_timings tsum;
    memset(&tsum, 0, sizeof tsum);
    double t0 = now_s(), t_extra = 0, t_decode = 0;
    fp_face *face = malloc(sizeof *face);
    for (int i = 0; i < n_img && !loaded; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/images/%s", data, im[i].path);
        fp_image img = {0};
        double td = now_s();
        st = fp_image_load(path, &lim, &img);
        t_decode += now_s() - td;
        int nf = 0;
        fp_timings t;
        if (!st) st = fp_analyze(ses, &img, &ao, face, 1, &nf, &t);
        if (st) {
            fprintf(stderr, "%s: %s: %s\n", path, fp_strerror(st), fp_last_error());
            im[i].status = 2;
        } else {
            double *a = &t.detect, *b = &tsum.detect;
            for (size_t k = 0; k < sizeof t / sizeof(double); k++) b[k] += a[k];
            im[i].n_faces = nf;
            im[i].status = nf ? 0 : 1;
        }
        if (!im[i].status) {
            memcpy(im[i].emb[AL_LIB][flip], face->embedding, sizeof face->embedding);
            memcpy(im[i].desc, face->descriptor, sizeof im[i].desc);
            double te = now_s();
            for (int al = 0; al < AL_COUNT && !st; al++)
                if (compute_all || al == v_al) {
                    float e[2][EMB];
                    st = embed_alignment(ses, &img, face, al, e);
                    /* lib: keep the library's own embedding for its flip mode, ours for the other */
                    for (int fl = 0; fl < 2 && !st; fl++)
                        if (al != AL_LIB || fl != flip) memcpy(im[i].emb[al][fl], e[fl], sizeof e[fl]);
                }
            t_extra += now_s() - te;
            if (st) {
                fprintf(stderr, "%s: embedding: %s\n", path, fp_last_error());
                return 1;
            }
        }
        fp_image_release(&img);
        if ((i + 1) % 500 == 0) fprintf(stderr, "  %d/%d images, %.1f s\n", i + 1, n_img, now_s() - t0);
    }
    double t_total = now_s() - t0;
    free(face);
    fp_session_free(ses);
    fp_engine_free(eng);
    if (cache && !loaded) {
        cf = fopen(cache, "wb");
        if (cf) {
            fwrite(key, 1, sizeof key, cf);
            fwrite(im, sizeof *im, n_img, cf);
            fclose(cf);
        }
    }

    int fta = 0, errors = 0, multi = 0, fta_pairs = 0;
    for (int i = 0; i < n_img; i++) fta += im[i].status != 0, errors += im[i].status == 2, multi += im[i].n_faces > 1;
    for (int i = 0; i < n_pairs; i++) fta_pairs += im[pairs[i].img[0]].status || im[pairs[i].img[1]].status;

    json_t *root = json_object(), *rows = json_array();
    if (!json) {
        printf("LFW View-2 (%s): %d pairs in %d sets, %d images; detector %s, flip %s\n", data, n_pairs, SETS, n_img, det,
               flip ? "on" : "off");
        printf("images without a face (FTA): %d (%d decode/analyse errors); pairs touched: %d; images with >1 face: %d (%.1f %%)\n",
               fta, errors, fta_pairs, multi, 100.0 * multi / n_img);
        if (!loaded)
            printf("time: %.1f s for %d images (%.1f ms/image: decode %.1f, detect %.1f, mesh %.1f, iris %.1f, align %.1f, embed %.1f, "
                   "faceres %.1f, extra alignments %.1f); engine load %.2f s\n",
                   t_total, n_img, 1e3 * t_total / n_img, 1e3 * t_decode / n_img, tsum.detect / n_img, tsum.mesh / n_img, tsum.iris / n_img,
                   tsum.align / n_img, tsum.embed / n_img, tsum.attributes / n_img, 1e3 * t_extra / n_img, t_load);
        printf("%-20s %4s %15s %6s %8s %7s %6s %6s %5s\n", "variant", "flip", "5-fold acc %", "wrong", "best-all", "AUC", "EER %", "d'", "w");
    }
    double *s1 = malloc(sizeof *s1 * n_pairs), *s2 = malloc(sizeof *s2 * n_pairs);
    for (int al = 0; al < AL_COUNT; al++)
        for (int fl = 1; fl >= 0; fl--)
            for (int fr = 0; fr <= 2; fr++) {
                if (!all && (al != v_al || fl != flip || fr != v_fr || v_fr_only)) continue;
                if (all && fr == 2 && al != AL_CORNERS_C && al != AL_LIB) continue; /* keep the table short */
                pair_scores(im, pairs, n_pairs, al, fl, 0, s1);
                double w = 0;
                metrics m;
                if (fr) {
                    pair_scores(im, pairs, n_pairs, al, fl, 1, s2);
                    m = evaluate_fused(s1, s2, pairs, n_pairs, fr == 2 ? -1 : 1, &w);
                } else {
                    m = evaluate(s1, pairs, n_pairs);
                }
                if (scores_out && !all) {
                    FILE *so = fopen(scores_out, "w");
                    for (int i = 0; so && i < n_pairs; i++) {
                        const image_rec *a = &im[pairs[i].img[0]], *b = &im[pairs[i].img[1]];
                        fprintf(so, "%d,%d,%s,%s,%.6f,%.6f,%d,%d\n", pairs[i].set, pairs[i].same, a->path, b->path, s1[i], fr ? s2[i] : NAN,
                                a->n_faces, b->n_faces);
                    }
                    if (so) fclose(so);
                }
                char name[64];
                snprintf(name, sizeof name, "%s%s", al_name[al], fr == 1 ? "+faceres" : fr == 2 ? "+faceres*" : "");
                if (!json)
                    printf("%-20s %4s %7.2f +- %4.2f %6d %7.2f%% %7.4f %6.2f %6.3f %5.2f\n", name, fl ? "on" : "off", 100 * m.mean,
                           100 * m.std, m.wrong, 100 * m.best_all, m.auc, 100 * m.eer, m.dprime, w);
                json_t *row = json_pack("{s:s,s:b,s:f,s:f,s:i,s:f,s:f,s:f,s:f,s:f}", "variant", name, "flip", fl, "accuracy", m.mean,
                                        "std", m.std, "wrong", m.wrong, "dprime", m.dprime, "best_threshold_accuracy", m.best_all,
                                        "auc", m.auc, "eer", m.eer, "faceres_weight", w);
                json_t *folds = json_array(), *thr = json_array();
                for (int k = 0; k < SETS; k++)
                    json_array_append_new(folds, json_real(m.fold[k])), json_array_append_new(thr, json_real(m.thr[k]));
                json_object_set_new(row, "folds", folds);
                json_object_set_new(row, "thresholds", thr);
                json_array_append_new(rows, row);
            }
    if (all || v_fr_only) {
        pair_scores(im, pairs, n_pairs, 0, 0, 1, s1);
        metrics m = evaluate(s1, pairs, n_pairs);
        if (!json)
            printf("%-20s %4s %7.2f +- %4.2f %6d %7.2f%% %7.4f %6.2f %6.3f\n", "faceres", "-", 100 * m.mean, 100 * m.std, m.wrong,
                   100 * m.best_all, m.auc, 100 * m.eer, m.dprime);
        json_array_append_new(rows, json_pack("{s:s,s:f,s:f,s:i,s:f,s:f,s:f,s:f}", "variant", "faceres", "accuracy", m.mean, "std", m.std,
                                              "wrong", m.wrong, "dprime", m.dprime,
                                              "best_threshold_accuracy", m.best_all, "auc", m.auc, "eer", m.eer));
    }
    if (json) {
        json_object_set_new(root, "data", json_string(data));
        json_object_set_new(root, "pairs", json_integer(n_pairs));
        json_object_set_new(root, "images", json_integer(n_img));
        json_object_set_new(root, "detector", json_string(det));
        json_object_set_new(root, "fta_images", json_integer(fta));
        json_object_set_new(root, "fta_pairs", json_integer(fta_pairs));
        json_object_set_new(root, "multi_face_images", json_integer(multi));
        if (!loaded) json_object_set_new(root, "seconds", json_real(t_total));
        json_object_set_new(root, "results", rows);
        json_dumpf(root, stdout, JSON_INDENT(1));
        printf("\n");
    } else {
        json_decref(rows);
    }
    json_decref(root);
    free(s1), free(s2), free(im), free(pairs), free(g_names);
    return 0;
}
