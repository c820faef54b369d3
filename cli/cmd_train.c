/*
 * cmd_train.c - `facepay train liveness`: trains the passive presentation-attack detector (src/pad/)
 * on an operator's own live and attack captures and reports what subject-disjoint cross-validation
 * measured (per fold and pooled: APCER, BPCER, ACER at the chosen threshold, EER, APCER at BPCER 1 %
 * and 5 %), then writes the model file.
 *
 * Input is a labels.csv in the NUAA layout: a header naming at least `path` and `label` (and
 * `subject`, strongly advised), paths relative to --images. label `live` (or `bona_fide`, `real`) is
 * a bona fide presentation, anything else names an attack species (print_attack, replay, ...).
 * Without a subject column the parent folder of each image stands for the subject. Every image is
 * analysed once (detector, mesh, alignment) on --threads sessions, its features extracted once, and
 * all training runs on that feature matrix. An image without a face is a failure to acquire: it is
 * never fitted and counts in every rate as a rejection.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

#define TRAIN_MAX_TYPES 64

typedef struct trow {
    char *path;
    char *rel;
    int label;   /* -1 bona fide, else species */
    int subject; /* index into subjects */
} trow;

typedef struct tset {
    trow *rows;
    int n, cap;
    char *types[TRAIN_MAX_TYPES];
    int n_types;
    char **subjects;
    int n_subjects, cap_subjects;
} tset;

typedef struct topts {
    const char *labels, *images, *out, *cache, *plot, *scores;
    int json, threads, limit;
    uint32_t recipe;
    fp_pad_train_options t;
} topts;

static void tset_free(tset *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->rows[i].path);
        free(s->rows[i].rel);
    }
    free(s->rows);
    for (int k = 0; k < s->n_types; k++) free(s->types[k]);
    for (int k = 0; k < s->n_subjects; k++) free(s->subjects[k]);
    free(s->subjects);
}

static int intern_subject(tset *s, const char *name) {
    for (int k = 0; k < s->n_subjects; k++)
        if (!strcmp(s->subjects[k], name)) return k;
    if (s->n_subjects == s->cap_subjects) {
        int cap = s->cap_subjects ? 2 * s->cap_subjects : 64;
        char **g = realloc(s->subjects, sizeof *g * (size_t)cap);
        if (!g) return -1;
        s->subjects = g;
        s->cap_subjects = cap;
    }
    s->subjects[s->n_subjects] = strdup(name);
    return s->subjects[s->n_subjects] ? s->n_subjects++ : -1;
}

/* Splits a CSV line on commas in place (no quoting: paths and labels here never hold commas). */
static int split_csv(char *line, char **f, int max) {
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++)
        if (*p == ',') *p = 0, f[n++] = p + 1;
    return n;
}

static int read_labels(const topts *o, tset *s) {
    memset(s, 0, sizeof *s);
    FILE *f = fopen(o->labels, "r");
    if (!f) {
        fprintf(stderr, "facepay train liveness: cannot open %s\n", o->labels);
        return 2;
    }
    char line[8192], *fld[64];
    int col_path = 0, col_label = 1, col_subject = -1, lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        const int nf = split_csv(line, fld, 64);
        if (lineno == 1 && (!strcmp(fld[0], "path") || !strcmp(fld[0], "file"))) {
            col_label = -1;
            for (int k = 0; k < nf; k++) {
                if (!strcmp(fld[k], "path") || !strcmp(fld[k], "file")) col_path = k;
                else if (!strcmp(fld[k], "label")) col_label = k;
                else if (!strcmp(fld[k], "subject")) col_subject = k;
            }
            if (col_label < 0) {
                fprintf(stderr, "facepay train liveness: %s: the header has no 'label' column\n", o->labels);
                rc = 2;
                break;
            }
            continue;
        }
        if (col_path >= nf || col_label >= nf || (col_subject >= 0 && col_subject >= nf) || !fld[col_path][0]) {
            fprintf(stderr, "facepay train liveness: %s:%d: expected path,label%s\n", o->labels, lineno,
                    col_subject >= 0 ? ",subject" : "");
            rc = 2;
            break;
        }
        const char *label = fld[col_label];
        int t = -1;
        if (strcmp(label, "live") && strcmp(label, "bona_fide") && strcmp(label, "real")) {
            for (int k = 0; k < s->n_types; k++)
                if (!strcmp(s->types[k], label)) t = k;
            if (t < 0) {
                if (s->n_types == TRAIN_MAX_TYPES) {
                    fprintf(stderr, "facepay train liveness: %s: more than %d attack types\n", o->labels, TRAIN_MAX_TYPES);
                    rc = 2;
                    break;
                }
                s->types[t = s->n_types++] = strdup(label);
            }
        }
        /* subject: the column, else the folder holding the image (NUAA: ClientRaw/0001/x.jpg -> 0001) */
        char subj[1024];
        if (col_subject >= 0) snprintf(subj, sizeof subj, "%s", fld[col_subject]);
        else {
            snprintf(subj, sizeof subj, "%s", fld[col_path]);
            char *slash = strrchr(subj, '/');
            if (slash) {
                *slash = 0;
                char *up = strrchr(subj, '/');
                if (up) memmove(subj, up + 1, strlen(up + 1) + 1);
            } else snprintf(subj, sizeof subj, ".");
        }
        if (s->n == s->cap) {
            int cap = s->cap ? 2 * s->cap : 1024;
            trow *g = realloc(s->rows, sizeof *g * (size_t)cap);
            if (!g) {
                rc = cli_error("labels", FP_ERR_NOMEM);
                break;
            }
            s->rows = g;
            s->cap = cap;
        }
        trow *r = &s->rows[s->n];
        const size_t len = strlen(o->images) + strlen(fld[col_path]) + 2;
        r->path = malloc(len);
        r->rel = strdup(fld[col_path]);
        r->label = t;
        r->subject = intern_subject(s, subj);
        if (!r->path || !r->rel || r->subject < 0) {
            free(r->path);
            free(r->rel);
            rc = cli_error("labels", FP_ERR_NOMEM);
            break;
        }
        snprintf(r->path, len, "%s/%s", o->images, fld[col_path]);
        s->n++;
        if (o->limit > 0 && s->n >= o->limit) break;
    }
    fclose(f);
    if (!rc && s->n == 0) {
        fprintf(stderr, "facepay train liveness: %s lists no images\n", o->labels);
        rc = 2;
    }
    if (!rc && col_subject < 0)
        fprintf(stderr, "facepay train liveness: %s has no 'subject' column: the image's folder stands for the "
                "subject (%d subjects)\n", o->labels, s->n_subjects);
    return rc;
}

/* ---- feature extraction on worker threads, one session each ---- */
typedef struct fjob {
    fp_engine *engine;
    const tset *set;
    const topts *o;
    int dim, from, step;
    float *features;
    uint8_t *acquired;
    double feat_ms;
    int n_feat, errors;
    fp_status st;
} fjob;

static void *feature_worker(void *arg) {
    fjob *j = arg;
    fp_session *s = NULL;
    fp_face *face = malloc(sizeof *face);
    if (!face || (j->st = fp_session_new(j->engine, &s)) != FP_OK) {
        if (!face) j->st = FP_ERR_NOMEM;
        free(face);
        return NULL;
    }
    fp_analyze_options ao = fp_analyze_options_default();
    ao.max_faces = 1; /* the payment candidate: largest, most central */
    ao.embedding = 0;
    ao.passive_liveness = 0;
    ao.attributes = !!(j->o->recipe & FP_PAD_FEAT_DESCRIPTOR);
    for (int i = j->from; i < j->set->n; i += j->step) {
        const trow *r = &j->set->rows[i];
        fp_image img;
        if (fp_image_load(r->path, NULL, &img) != FP_OK) {
            fprintf(stderr, "facepay train liveness: %s: %s (counted as a failure to acquire)\n", r->path, fp_last_error());
            j->errors++;
            continue;
        }
        int nf = 0;
        if (fp_analyze(s, &img, &ao, face, 1, &nf, NULL) == FP_OK && nf > 0) {
            const double t0 = cli_now_ms();
            if (fp_pad_features(j->o->recipe, &img, face, j->features + (size_t)i * j->dim) == FP_OK) {
                j->acquired[i] = 1;
                j->feat_ms += cli_now_ms() - t0;
                j->n_feat++;
            } else
                fprintf(stderr, "facepay train liveness: %s: %s (counted as a failure to acquire)\n", r->path,
                        fp_last_error());
        }
        fp_image_release(&img);
    }
    free(face);
    fp_session_free(s);
    return NULL;
}

/* Cache of the feature matrix, keyed by the recipe and the exact list of files (sha256 of the paths),
 * so repeated training runs (other learners, seeds, folds) skip the analysis. */
static void cache_key(const tset *set, const topts *o, int dim, char *tag, size_t cap) {
    size_t len = 0;
    for (int i = 0; i < set->n; i++) len += strlen(set->rows[i].path) + 1;
    char *all = malloc(len + 1), hex[65] = "none";
    if (all) {
        size_t k = 0;
        for (int i = 0; i < set->n; i++) {
            const size_t l = strlen(set->rows[i].path);
            memcpy(all + k, set->rows[i].path, l);
            all[k + l] = '\n';
            k += l + 1;
        }
        /* hash through a temporary file would be clumsy; the public API hashes files only, so use FNV-1a */
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t i = 0; i < k; i++) h = (h ^ (uint8_t)all[i]) * 0x100000001b3ull;
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
        free(all);
    }
    snprintf(tag, cap, "facepay-pad-features v1 %s recipe=0x%x dim=%d n=%d paths=%s", fp_version(), (unsigned)o->recipe,
             dim, set->n, hex);
}

static int cache_load(const char *file, const char *tag, int n, int dim, float *features, uint8_t *acquired) {
    FILE *f = file ? fopen(file, "rb") : NULL;
    if (!f) return 0;
    char head[512] = "";
    int hit = fgets(head, sizeof head, f) && !strncmp(head, tag, strlen(tag)) && head[strlen(tag)] == '\n' &&
              fread(acquired, 1, (size_t)n, f) == (size_t)n &&
              fread(features, sizeof(float), (size_t)n * dim, f) == (size_t)n * dim;
    fclose(f);
    return hit;
}

static void cache_save(const char *file, const char *tag, int n, int dim, const float *features, const uint8_t *acquired) {
    FILE *f = file ? fopen(file, "wb") : NULL;
    if (!f) return;
    fprintf(f, "%s\n", tag);
    fwrite(acquired, 1, (size_t)n, f);
    fwrite(features, sizeof(float), (size_t)n * dim, f);
    if (fclose(f) != 0) fprintf(stderr, "facepay train liveness: could not write the cache %s\n", file);
}

/* ---- reporting ---- */
static int64_t attacks_of(const fp_pad_report *r) {
    int64_t a = 0;
    for (int k = 0; k < r->n_types; k++) a += r->n_attack[k];
    return a;
}

static int64_t attack_fta_of(const fp_pad_report *r) {
    int64_t a = 0;
    for (int k = 0; k < r->n_types; k++) a += r->fta_attack[k];
    return a;
}

static json_t *report_json(const fp_pad_report *r, char *const *types) {
    json_t *apcer = json_object();
    for (int k = 0; k < r->n_types; k++) json_object_set_new(apcer, types[k], json_real(r->apcer[k]));
    return json_pack("{s:I,s:I,s:I,s:I,s:o,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "bona_fide", (json_int_t)r->n_bona_fide,
                     "fta_bona_fide", (json_int_t)r->fta_bona_fide, "attack",
                     (json_int_t)attacks_of(r), "fta_attack", (json_int_t)attack_fta_of(r), "apcer", apcer, "apcer_max", r->apcer_max,
                     "bpcer", r->bpcer, "acer", r->acer, "eer", r->eer, "apcer_at_bpcer_1pct", r->at[0].apcer,
                     "threshold_at_bpcer_1pct", r->at[0].threshold, "apcer_at_bpcer_5pct", r->at[1].apcer,
                     "threshold_at_bpcer_5pct", r->at[1].threshold);
}

static void print_row(const char *name, const char *subjects, const fp_pad_report *r) {
    if (r->n_types == 0) {
        printf("%-7s %-22s  (one class only: no rates)\n", name, subjects);
        return;
    }
    printf("%-7s %-22s %5lld %6lld  %6.2f  %6.2f  %6.2f  %6.2f  %8.2f  %8.2f\n", name, subjects, (long long)r->n_bona_fide,
           (long long)attacks_of(r), 100 * r->apcer_max, 100 * r->bpcer, 100 * r->acer, 100 * r->eer,
           100 * r->at[0].apcer, 100 * r->at[1].apcer);
}

static const char *learner_name(int l) { return l == FP_PAD_MLP ? "mlp" : l == FP_PAD_LINEAR_SVM ? "svm" : "logistic"; }

static const struct {
    const char *name;
    uint32_t bits;
} recipe_names[] = {
    {"face", FP_PAD_FEAT_LBP_FACE},    {"context", FP_PAD_FEAT_LBP_CONTEXT}, {"native", FP_PAD_FEAT_LBP_NATIVE},
    {"r2", FP_PAD_FEAT_LBP_R2},        {"colour", FP_PAD_FEAT_COLOUR},       {"spectrum", FP_PAD_FEAT_SPECTRUM},
    {"descriptor", FP_PAD_FEAT_DESCRIPTOR},
    {"y", FP_PAD_FEAT_CH_Y},           {"cb", FP_PAD_FEAT_CH_CB},            {"cr", FP_PAD_FEAT_CH_CR},
    {"h", FP_PAD_FEAT_CH_H},           {"s", FP_PAD_FEAT_CH_S},              {"v", FP_PAD_FEAT_CH_V},
    {"color", FP_PAD_FEAT_COLOUR},     {"ycbcr", FP_PAD_FEAT_CH_Y | FP_PAD_FEAT_CH_CB | FP_PAD_FEAT_CH_CR},
    {"hsv", FP_PAD_FEAT_CH_H | FP_PAD_FEAT_CH_S | FP_PAD_FEAT_CH_V},       {"default", FP_PAD_FEAT_DEFAULT},
};
#define N_RECIPE_BITS 13 /* the first entries name one bit each */

/* "face,native,colour,s" -> bits; LBP blocks without a channel get all six (the literature's
 * colour texture). */
static int parse_recipe(const char *s, uint32_t *out) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    uint32_t r = 0;
    for (char *t = strtok(buf, ",+"); t; t = strtok(NULL, ",+")) {
        int found = 0;
        for (size_t k = 0; k < sizeof recipe_names / sizeof recipe_names[0]; k++)
            if (!strcmp(t, recipe_names[k].name)) r |= recipe_names[k].bits, found = 1;
        if (!found) return 0;
    }
    if ((r & (FP_PAD_FEAT_LBP_FACE | FP_PAD_FEAT_LBP_CONTEXT | FP_PAD_FEAT_LBP_NATIVE)) && !(r & FP_PAD_FEAT_CH_ALL))
        r |= FP_PAD_FEAT_CH_ALL;
    *out = r;
    return fp_pad_feature_dim(r) > 0;
}

static void recipe_name(uint32_t r, char *buf, size_t cap) {
    buf[0] = 0;
    for (int k = 0; k < N_RECIPE_BITS; k++)
        if (r & recipe_names[k].bits) {
            const size_t l = strlen(buf);
            snprintf(buf + l, cap - l, "%s%s", l ? "," : "", recipe_names[k].name);
        }
}

static int train_liveness(const topts *o) {
    if (!o->labels || !o->images || !o->out) {
        fprintf(stderr, "facepay train liveness: --labels labels.csv, --images DIR and --out model.fpl are required\n");
        return 2;
    }
    tset set;
    int rc = read_labels(o, &set);
    if (rc) {
        tset_free(&set);
        return rc;
    }
    const int dim = fp_pad_feature_dim(o->recipe);
    float *features = calloc((size_t)set.n * dim, sizeof(float));
    uint8_t *acquired = calloc((size_t)set.n, 1);
    int *label = malloc(sizeof(int) * (size_t)set.n), *subject = malloc(sizeof(int) * (size_t)set.n);
    fp_pad_model *model = NULL;
    fp_pad_cv_report cv;
    memset(&cv, 0, sizeof cv);
    if (!features || !acquired || !label || !subject) {
        rc = cli_error("training set", FP_ERR_NOMEM);
        goto done;
    }
    int nb = 0, na = 0;
    for (int i = 0; i < set.n; i++) {
        label[i] = set.rows[i].label;
        subject[i] = set.rows[i].subject;
        nb += label[i] < 0;
        na += label[i] >= 0;
    }
    char rname[128];
    recipe_name(o->recipe, rname, sizeof rname);
    fprintf(stderr, "facepay train liveness: %d images (%d bona fide, %d attack in %d species), %d subjects; features %s (%d-d)\n",
            set.n, nb, na, set.n_types, set.n_subjects, rname, dim);

    char tag[512];
    cache_key(&set, o, dim, tag, sizeof tag);
    double analyse_s = 0, feat_ms = 0;
    const double t_start = cli_now_ms();
    if (cache_load(o->cache, tag, set.n, dim, features, acquired)) {
        fprintf(stderr, "facepay train liveness: features of %d images from the cache %s\n", set.n, o->cache);
    } else {
        fp_engine_options eo = fp_engine_options_default();
        eo.passive_liveness = 0;
        eo.attributes = !!(o->recipe & FP_PAD_FEAT_DESCRIPTOR);
        fp_engine *engine;
        fp_status st = fp_engine_new(&eo, &engine);
        if (st) {
            rc = cli_error("loading models", st);
            goto done;
        }
        fjob jobs[16];
        pthread_t th[16];
        const int nt = o->threads;
        int started = 0;
        for (int k = 0; k < nt; k++) {
            jobs[k] = (fjob){engine, &set, o, dim, k, nt, features, acquired, 0, 0, 0, FP_OK};
            if (pthread_create(&th[k], NULL, feature_worker, &jobs[k]) != 0) break;
            started++;
        }
        int n_feat = 0;
        fp_status wst = started == nt ? FP_OK : FP_ERR_NOMEM;
        for (int k = 0; k < started; k++) {
            pthread_join(th[k], NULL);
            feat_ms += jobs[k].feat_ms;
            n_feat += jobs[k].n_feat;
            if (jobs[k].st) wst = jobs[k].st;
        }
        fp_engine_free(engine);
        if (wst) {
            rc = cli_error("analysis session", wst);
            goto done;
        }
        analyse_s = (cli_now_ms() - t_start) / 1e3;
        feat_ms = n_feat ? feat_ms / n_feat : 0;
        fprintf(stderr, "facepay train liveness: analysed in %.1f s (%d threads), features %.2f ms per face\n", analyse_s,
                nt, feat_ms);
        cache_save(o->cache, tag, set.n, dim, features, acquired);
    }

    const fp_pad_dataset data = {o->recipe, dim, set.n, features, acquired, label, set.n_types > 0 ? set.n_types : 1, subject};
    const double t_train = cli_now_ms();
    fp_status st = fp_pad_train(&data, &o->t, &model, &cv);
    const double train_s = (cli_now_ms() - t_train) / 1e3;
    if (st) {
        rc = cli_error("train liveness", st);
        goto done;
    }
    if ((st = fp_pad_model_save(model, o->out))) {
        rc = cli_error(o->out, st);
        goto done;
    }

    /* fold membership, for the table and the JSON */
    char **fold_subj = calloc((size_t)cv.n_folds, sizeof *fold_subj);
    for (int f = 0; fold_subj && f < cv.n_folds; f++) {
        size_t len = 1;
        for (int s = 0; s < set.n_subjects; s++) len += strlen(set.subjects[s]) + 1;
        if (!(fold_subj[f] = calloc(1, len))) continue;
        for (int s = 0; s < set.n_subjects; s++) {
            int in = 0;
            for (int i = 0; i < set.n && !in; i++) in = set.rows[i].subject == s && cv.fold_of[i] == f;
            if (in) {
                if (fold_subj[f][0]) strcat(fold_subj[f], ",");
                strcat(fold_subj[f], set.subjects[s]);
            }
        }
    }
    const fp_pad_report *pr = cv.pooled;
    char *const *types = set.n_types ? set.types : (char *const[]){"attack"};
    if (o->json) {
        json_t *j = json_object(), *folds = json_array();
        for (int f = 0; f < cv.n_folds; f++) {
            json_t *fj = cv.fold[f].n_types ? report_json(&cv.fold[f], types) : json_object();
            json_object_set_new(fj, "subjects", json_string(fold_subj && fold_subj[f] ? fold_subj[f] : ""));
            json_array_append_new(folds, fj);
        }
        json_object_set_new(j, "images", json_integer(set.n));
        json_object_set_new(j, "subjects", json_integer(set.n_subjects));
        json_object_set_new(j, "features", json_string(rname));
        json_object_set_new(j, "recipe", json_integer(o->recipe));
        json_object_set_new(j, "dim", json_integer(dim));
        json_object_set_new(j, "learner", json_string(learner_name(o->t.learner)));
        json_object_set_new(j, "l2", json_real(o->t.l2));
        json_object_set_new(j, "seed", json_integer(o->t.seed));
        json_object_set_new(j, "folds", json_integer(cv.n_folds));
        json_object_set_new(j, "target_bpcer", json_real(o->t.target_bpcer));
        json_object_set_new(j, "threshold", json_real(cv.threshold));
        json_object_set_new(j, "pooled", report_json(pr, types));
        json_object_set_new(j, "per_fold", folds);
        json_object_set_new(j, "time_s", json_pack("{s:f,s:f,s:f,s:f}", "analyse", analyse_s, "features_ms_per_face",
                                                    feat_ms, "train", train_s, "total", (cli_now_ms() - t_start) / 1e3));
        json_object_set_new(j, "model", json_string(o->out));
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        if (s) puts(s);
        free(s);
        json_decref(j);
    } else {
        printf("subject-disjoint cross-validation: %d folds, seed %d, %s (l2 %g), features %s (%d-d)\n", cv.n_folds,
               o->t.seed, learner_name(o->t.learner), o->t.l2, rname, dim);
        printf("images: %lld bona fide (FTA %lld), %lld attack (FTA %lld)\n", (long long)cv.n_bona_fide,
               (long long)cv.fta_bona_fide, (long long)cv.n_attack, (long long)cv.fta_attack);
        printf("threshold %.4f: BPCER <= %.1f %% on the pooled out-of-fold scores; rates in %%, APCER = max over species\n",
               cv.threshold, 100 * o->t.target_bpcer);
        printf("%-7s %-22s %5s %6s  %6s  %6s  %6s  %6s  %8s  %8s\n", "fold", "subjects", "bona", "attack", "APCER", "BPCER",
               "ACER", "EER", "APCER@B1", "APCER@B5");
        for (int f = 0; f < cv.n_folds; f++) {
            char name[16];
            snprintf(name, sizeof name, "%d", f + 1);
            print_row(name, fold_subj && fold_subj[f] ? fold_subj[f] : "", &cv.fold[f]);
        }
        print_row("pooled", "all", pr);
        for (int k = 0; k < pr->n_types && pr->n_types > 1; k++)
            printf("  APCER %-20s %6.2f %%\n", types[k], 100 * pr->apcer[k]);
        printf("time: analysis %.1f s, features %.2f ms per face, training %.1f s (%d fits)\n", analyse_s, feat_ms, train_s,
               cv.n_folds + 1);
        printf("model: %s (threshold %.4f)\n", o->out, cv.threshold);
    }
    if (o->scores) {
        FILE *sf = fopen(o->scores, "w");
        if (!sf) fprintf(stderr, "facepay train liveness: cannot write %s\n", o->scores);
        else {
            fprintf(sf, "path,label,subject,fold,score\n");
            for (int i = 0; i < set.n; i++)
                fprintf(sf, "%s,%s,%s,%d,%.6f\n", set.rows[i].rel, label[i] < 0 ? "live" : types[label[i]],
                        set.subjects[subject[i]], cv.fold_of[i] + 1, cv.score[i]);
            fclose(sf);
        }
    }
    if (o->plot) {
        fp_plot_series s[17];
        char names[16][32];
        int ns = 0;
        s[ns++] = fp_pad_series(pr, "pooled out-of-fold");
        for (int f = 0; f < cv.n_folds && ns < 17; f++)
            if (cv.fold[f].n_types) {
                snprintf(names[ns - 1], sizeof names[0], "fold %d", f + 1);
                s[ns] = fp_pad_series(&cv.fold[f], names[ns - 1]);
                ns++;
            }
        st = fp_plot_pad_det(o->plot, "Liveness: subject-disjoint cross-validation", s, ns);
        if (st) rc = cli_error(o->plot, st);
        fp_plot_shutdown();
    }
    for (int f = 0; fold_subj && f < cv.n_folds; f++) free(fold_subj[f]);
    free(fold_subj);
done:
    fp_pad_cv_report_free(&cv);
    fp_pad_model_free(model);
    free(features);
    free(acquired);
    free(label);
    free(subject);
    tset_free(&set);
    return rc;
}

int cmd_train(int argc, char **argv) {
    static const char usage[] =
        "usage: facepay train liveness --labels labels.csv --images DIR --out model.fpl\n"
        "         [--seed N (1)] [--folds K (5)] [--target-bpcer 0.05] [--features LIST (default)]\n"
        "         [--learner logistic|svm|mlp] [--l2 X (0.1)] [--hidden H (32)] [--epochs E (100)]\n"
        "         [--threads T (2)] [--cache FILE] [--json] [--plot det.png] [--scores out.csv] [--limit N]\n"
        "Trains the passive presentation-attack detector on your own captures. labels.csv: a header with\n"
        "path,label[,subject,...] (NUAA layout); label 'live' is bona fide, any other value an attack\n"
        "species. Cross-validation never tests on a subject it trained on; the threshold meets the target\n"
        "BPCER on the out-of-fold scores. --features: comma list of blocks face, context, native, r2,\n"
        "colour, spectrum, descriptor and LBP channels y, cb, cr, h, s, v (or ycbcr, hsv); default is\n"
        "face,native,colour,s (src/pad/features.c). --cache keeps the extracted features for reruns.\n";
    if (argc < 2 || strcmp(argv[1], "liveness")) {
        const int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
        fputs(usage, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    topts o;
    memset(&o, 0, sizeof o);
    o.t = fp_pad_train_options_default();
    o.threads = 2;
    o.recipe = FP_PAD_FEAT_DEFAULT;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const int more = i + 1 < argc;
        char *end = NULL;
        if (!strcmp(a, "--labels") && more) o.labels = argv[++i];
        else if (!strcmp(a, "--images") && more) o.images = argv[++i];
        else if (!strcmp(a, "--out") && more) o.out = argv[++i];
        else if (!strcmp(a, "--cache") && more) o.cache = argv[++i];
        else if (!strcmp(a, "--plot") && more) o.plot = argv[++i];
        else if (!strcmp(a, "--scores") && more) o.scores = argv[++i];
        else if (!strcmp(a, "--seed") && more) o.t.seed = (int)strtol(argv[++i], &end, 10);
        else if (!strcmp(a, "--folds") && more) o.t.folds = (int)strtol(argv[++i], &end, 10);
        else if (!strcmp(a, "--hidden") && more) o.t.hidden = (int)strtol(argv[++i], &end, 10);
        else if (!strcmp(a, "--epochs") && more) o.t.epochs = (int)strtol(argv[++i], &end, 10);
        else if (!strcmp(a, "--threads") && more) o.threads = (int)strtol(argv[++i], &end, 10);
        else if (!strcmp(a, "--limit") && more) o.limit = (int)strtol(argv[++i], &end, 10);
        else if (!strcmp(a, "--target-bpcer") && more) o.t.target_bpcer = strtod(argv[++i], &end);
        else if (!strcmp(a, "--l2") && more) o.t.l2 = strtod(argv[++i], &end);
        else if (!strcmp(a, "--json")) o.json = 1;
        else if (!strcmp(a, "--learner") && more) {
            const char *l = argv[++i];
            if (!strcmp(l, "logistic")) o.t.learner = FP_PAD_LOGISTIC;
            else if (!strcmp(l, "svm")) o.t.learner = FP_PAD_LINEAR_SVM;
            else if (!strcmp(l, "mlp")) o.t.learner = FP_PAD_MLP;
            else {
                fprintf(stderr, "facepay train liveness: unknown learner '%s' (logistic, svm, mlp)\n", l);
                return 2;
            }
        } else if (!strcmp(a, "--features") && more) {
            if (!parse_recipe(argv[++i], &o.recipe)) {
                fprintf(stderr, "facepay train liveness: bad --features '%s'\n", argv[i]);
                return 2;
            }
        } else {
            const int help = !strcmp(a, "--help") || !strcmp(a, "-h");
            if (!help) fprintf(stderr, "facepay train liveness: unknown or incomplete option '%s'\n\n", a);
            fputs(usage, help ? stdout : stderr);
            return help ? 0 : 2;
        }
        if (end && *end) {
            fprintf(stderr, "facepay train liveness: %s: '%s' is not a number\n", a, argv[i]);
            return 2;
        }
    }
    if (o.threads < 1 || o.threads > 16) {
        fprintf(stderr, "facepay train liveness: --threads %d (1..16)\n", o.threads);
        return 2;
    }
    return train_liveness(&o);
}
