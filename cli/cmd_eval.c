/*
 * cmd_eval.c - `facepay eval verify|identify|calibrate|liveness`: accuracy of the whole pipeline on a
 * folder of photos (one sub-folder per person, LFW layout), end to end: decode -> detect -> align ->
 * embed -> compare. Every comparison score goes through the same gallery kernel the terminal uses
 * (fp_gallery_scores / fp_gallery_search). Images where no face is found are failures to acquire
 * and count against every figure; they are never dropped.
 */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli.h"

#ifndef FP_SOURCE_DIR
#define FP_SOURCE_DIR "."
#endif

typedef struct item {
    char *path;
    int person;   /* index into people */
    int ok;       /* a face was found and embedded */
    float emb[FP_EMBEDDING_DIM];
    float live, antispoof, liveness_model;
} item;

typedef struct dataset {
    item *items;
    int n;
    char **people;
    int n_people;
    int *first, *count; /* per person: first item, number of items */
} dataset;

typedef struct eval_opts {
    const char *images, *pairs, *labels, *plot, *cache, *out;
    int json, gallery_per_id, threads, no_flip, limit, split;
    double target_far;
} eval_opts;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted regular files (images) or sub-folders of dir. */
static char **list_dir(const char *dir, int want_dirs, int *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    int cap = 64;
    char **v = malloc(sizeof *v * (size_t)cap);
    struct dirent *e;
    while (v && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) || (want_dirs ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) continue;
        const char *dot = strrchr(e->d_name, '.');
        if (!want_dirs && (!dot || (strcasecmp(dot, ".jpg") && strcasecmp(dot, ".jpeg") && strcasecmp(dot, ".png") &&
                                    strcasecmp(dot, ".pgm") && strcasecmp(dot, ".ppm"))))
            continue;
        if (*n == cap) {
            char **g = realloc(v, sizeof *v * (size_t)(cap *= 2));
            if (!g) break;
            v = g;
        }
        v[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (v) qsort(v, (size_t)*n, sizeof *v, cmp_str);
    return v;
}

static void dataset_free(dataset *ds) {
    for (int i = 0; i < ds->n; i++) free(ds->items[i].path);
    for (int i = 0; i < ds->n_people; i++) free(ds->people[i]);
    free(ds->items);
    free(ds->people);
    free(ds->first);
    free(ds->count);
}

/* DIR/<person>/<image>: every person folder with at least one image. */
static int dataset_scan(const char *dir, int limit, dataset *ds) {
    memset(ds, 0, sizeof *ds);
    int np;
    char **people = list_dir(dir, 1, &np);
    if (!people || np == 0) {
        fprintf(stderr, "facepay eval: %s: no person folders (expected DIR/<person>/<image>)\n", dir);
        free(people);
        return 2;
    }
    if (limit > 0 && np > limit) np = limit;
    ds->people = calloc((size_t)np, sizeof *ds->people);
    ds->first = calloc((size_t)np, sizeof(int));
    ds->count = calloc((size_t)np, sizeof(int));
    int cap = 1024;
    ds->items = malloc(sizeof *ds->items * (size_t)cap);
    for (int p = 0; p < np; p++) {
        char pd[4096];
        snprintf(pd, sizeof pd, "%s/%s", dir, people[p]);
        int nf;
        char **files = list_dir(pd, 0, &nf);
        if (!files || !nf) {
            free(files);
            continue;
        }
        int idx = ds->n_people++;
        ds->people[idx] = strdup(people[p]);
        ds->first[idx] = ds->n;
        ds->count[idx] = nf;
        for (int f = 0; f < nf; f++) {
            if (ds->n == cap) ds->items = realloc(ds->items, sizeof *ds->items * (size_t)(cap *= 2));
            item *it = &ds->items[ds->n++];
            memset(it, 0, sizeof *it);
            char ip[8192];
            snprintf(ip, sizeof ip, "%s/%s", pd, files[f]);
            it->path = strdup(ip);
            it->person = idx;
            free(files[f]);
        }
        free(files);
    }
    for (int p = 0; p < np; p++) free(people[p]);
    free(people);
    if (!ds->n) {
        fprintf(stderr, "facepay eval: %s: no images\n", dir);
        return 2;
    }
    return 0;
}

/* ---- embedding all items on worker threads, each with its own session ---- */
typedef struct worker {
    fp_engine *engine;
    dataset *ds;
    int from, step;
    const fp_analyze_options *ao;
    int errors;
} worker;

static void *embed_worker(void *arg) {
    worker *w = arg;
    fp_session *s;
    if (fp_session_new(w->engine, &s)) {
        w->errors++;
        return NULL;
    }
    fp_face *f = malloc(sizeof *f);
    for (int i = w->from; i < w->ds->n; i += w->step) {
        item *it = &w->ds->items[i];
        fp_image img;
        if (fp_image_load(it->path, NULL, &img)) {
            fprintf(stderr, "facepay eval: %s: %s (counted as a failure to acquire)\n", it->path, fp_last_error());
            continue;
        }
        int n = 0;
        if (!fp_analyze(s, &img, w->ao, f, 1, &n, NULL) && n > 0 && f->has_embedding) {
            memcpy(it->emb, f->embedding, sizeof it->emb);
            it->live = f->liveness.score;
            it->antispoof = f->liveness.antispoof;
            it->liveness_model = f->liveness.liveness_model;
            it->ok = 1;
        }
        fp_image_release(&img);
    }
    free(f);
    fp_session_free(s);
    return NULL;
}

/* Cache of embeddings (path, ok, values) so several eval commands do not re-run the pipeline. */
static int cache_load(const char *file, dataset *ds, const char *tag) {
    FILE *f = file ? fopen(file, "rb") : NULL;
    if (!f) return 0;
    char head[256] = "";
    int hit = 0;
    if (fgets(head, sizeof head, f) && !strncmp(head, tag, strlen(tag))) {
        int n = 0;
        if (fread(&n, sizeof n, 1, f) == 1 && n == ds->n) {
            hit = 1;
            for (int i = 0; i < n && hit; i++) {
                item *it = &ds->items[i];
                if (fread(&it->ok, sizeof it->ok, 1, f) != 1 || fread(it->emb, sizeof it->emb, 1, f) != 1 ||
                    fread(&it->live, sizeof(float), 1, f) != 1 || fread(&it->antispoof, sizeof(float), 1, f) != 1 ||
                    fread(&it->liveness_model, sizeof(float), 1, f) != 1)
                    hit = 0;
            }
        }
    }
    fclose(f);
    return hit;
}

static void cache_save(const char *file, const dataset *ds, const char *tag) {
    FILE *f = file ? fopen(file, "wb") : NULL;
    if (!f) return;
    fprintf(f, "%s\n", tag);
    fwrite(&ds->n, sizeof ds->n, 1, f);
    for (int i = 0; i < ds->n; i++) {
        const item *it = &ds->items[i];
        fwrite(&it->ok, sizeof it->ok, 1, f);
        fwrite(it->emb, sizeof it->emb, 1, f);
        fwrite(&it->live, sizeof(float), 1, f);
        fwrite(&it->antispoof, sizeof(float), 1, f);
        fwrite(&it->liveness_model, sizeof(float), 1, f);
    }
    fclose(f);
}

static int embed_all(dataset *ds, const eval_opts *o, int passive) {
    char tag[256];
    snprintf(tag, sizeof tag, "facepay-eval-cache v1 %s flip=%d passive=%d n=%d", FP_EMBEDDER_ID, !o->no_flip, passive, ds->n);
    if (cache_load(o->cache, ds, tag)) {
        fprintf(stderr, "facepay eval: %d embeddings from the cache %s\n", ds->n, o->cache);
        return 0;
    }
    fp_engine_options eo = fp_engine_options_default();
    eo.attributes = 0;
    eo.passive_liveness = passive;
    fp_engine *e;
    fp_status st = fp_engine_new(&eo, &e);
    if (st) return cli_error("loading models", st);
    fp_analyze_options ao = fp_analyze_options_default();
    ao.max_faces = 1;
    ao.attributes = 0;
    ao.passive_liveness = passive;
    ao.flip_embedding = !o->no_flip;
    int nt = o->threads > 0 ? o->threads : 2;
    worker w[16];
    pthread_t th[16];
    double t0 = cli_now_ms();
    for (int i = 0; i < nt; i++) {
        w[i] = (worker){e, ds, i, nt, &ao, 0};
        pthread_create(&th[i], NULL, embed_worker, &w[i]);
    }
    int errors = 0;
    for (int i = 0; i < nt; i++) {
        pthread_join(th[i], NULL);
        errors += w[i].errors;
    }
    fp_engine_free(e);
    if (errors) return cli_error("session", FP_ERR_NOMEM);
    int ok = 0;
    for (int i = 0; i < ds->n; i++) ok += ds->items[i].ok;
    fprintf(stderr, "facepay eval: %d images analysed in %.1f s (%d threads), %d without a face\n", ds->n,
            (cli_now_ms() - t0) / 1e3, nt, ds->n - ok);
    cache_save(o->cache, ds, tag);
    return 0;
}

/* ---- all pairs through the gallery kernel ---- */
typedef struct all_pairs {
    float *genuine, *impostor;
    int64_t n_genuine, n_impostor, fta_genuine, fta_impostor;
    double pairs_per_s;
} all_pairs;

/* Scores every pair (i < j) of items whose person passes `use` (NULL: all). */
static int score_all_pairs(const dataset *ds, const char *use, all_pairs *ap) {
    memset(ap, 0, sizeof *ap);
    int *idx = malloc(sizeof(int) * (size_t)ds->n);
    int m = 0;
    int64_t g_all = 0, i_all = 0;
    for (int i = 0; i < ds->n; i++)
        if (!use || use[ds->items[i].person]) idx[m++] = i;
    /* counts first, so failures can be counted exactly */
    int64_t *per_person_ok = calloc((size_t)ds->n_people, sizeof(int64_t));
    int64_t *per_person_all = calloc((size_t)ds->n_people, sizeof(int64_t));
    int64_t ok_total = 0;
    for (int k = 0; k < m; k++) {
        const item *it = &ds->items[idx[k]];
        per_person_all[it->person]++;
        if (it->ok) per_person_ok[it->person]++, ok_total++;
    }
    int64_t g_ok = 0, all_total = m;
    for (int p = 0; p < ds->n_people; p++) {
        g_all += per_person_all[p] * (per_person_all[p] - 1) / 2;
        g_ok += per_person_ok[p] * (per_person_ok[p] - 1) / 2;
    }
    i_all = all_total * (all_total - 1) / 2 - g_all;
    int64_t i_ok = ok_total * (ok_total - 1) / 2 - g_ok;
    ap->fta_genuine = g_all - g_ok;
    ap->fta_impostor = i_all - i_ok;
    ap->genuine = malloc(sizeof(float) * (size_t)(g_ok ? g_ok : 1));
    ap->impostor = malloc(sizeof(float) * (size_t)(i_ok ? i_ok : 1));
    fp_gallery *g;
    fp_status st = fp_gallery_new(FP_EMBEDDING_DIM, FP_GALLERY_FP16, &g);
    int *okidx = malloc(sizeof(int) * (size_t)(ok_total ? ok_total : 1));
    int n_ok = 0;
    for (int k = 0; k < m && !st; k++)
        if (ds->items[idx[k]].ok) {
            char uid[32];
            snprintf(uid, sizeof uid, "r%d", n_ok);
            okidx[n_ok++] = idx[k];
            st = fp_gallery_append(g, uid, ds->items[idx[k]].emb, FP_EMBEDDING_DIM);
        }
    float *q = malloc(sizeof(float) * FP_EMBEDDING_DIM * FP_MAX_BATCH);
    float *out = malloc(sizeof(float) * (size_t)FP_MAX_BATCH * (size_t)(n_ok ? n_ok : 1));
    double t0 = cli_now_ms();
    for (int a = 0; a < n_ok && !st; a += FP_MAX_BATCH) {
        int nb = n_ok - a < FP_MAX_BATCH ? n_ok - a : FP_MAX_BATCH;
        for (int b = 0; b < nb; b++) memcpy(q + b * FP_EMBEDDING_DIM, ds->items[okidx[a + b]].emb, sizeof(float) * FP_EMBEDDING_DIM);
        st = fp_gallery_scores(g, q, nb, FP_EMBEDDING_DIM, n_ok, out, 2);
        for (int b = 0; b < nb && !st; b++) {
            int i = a + b, pi = ds->items[okidx[i]].person;
            const float *row = out + (size_t)b * n_ok;
            for (int j = i + 1; j < n_ok; j++) {
                if (ds->items[okidx[j]].person == pi) ap->genuine[ap->n_genuine++] = row[j];
                else ap->impostor[ap->n_impostor++] = row[j];
            }
        }
    }
    double dt = cli_now_ms() - t0;
    ap->pairs_per_s = dt > 0 ? (double)(ap->n_genuine + ap->n_impostor) / (dt / 1e3) : 0;
    free(q);
    free(out);
    free(okidx);
    free(idx);
    free(per_person_ok);
    free(per_person_all);
    fp_gallery_free(g);
    return st ? cli_error("scoring", st) : 0;
}

static void all_pairs_free(all_pairs *ap) {
    free(ap->genuine);
    free(ap->impostor);
}

static int find_item(const dataset *ds, const char *name, int num) {
    for (int p = 0; p < ds->n_people; p++) {
        if (strcmp(ds->people[p], name)) continue;
        char want[512];
        snprintf(want, sizeof want, "%s_%04d.", name, num);
        for (int k = 0; k < ds->count[p]; k++) {
            const char *base = strrchr(ds->items[ds->first[p] + k].path, '/');
            if (base && !strncmp(base + 1, want, strlen(want))) return ds->first[p] + k;
        }
    }
    return -1;
}

static float pair_score(const dataset *ds, int a, int b) {
    if (a < 0 || b < 0 || !ds->items[a].ok || !ds->items[b].ok) return NAN;
    return fp_cosine(ds->items[a].emb, ds->items[b].emb, FP_EMBEDDING_DIM);
}

static json_t *tar_json(const fp_verify_report *r) {
    json_t *o = json_object();
    static const char *const keys[FP_EVAL_N_FAR] = {"1e-3", "1e-4", "1e-5", "1e-6"};
    for (int k = 0; k < FP_EVAL_N_FAR; k++)
        json_object_set_new(o, keys[k], json_pack("{s:f,s:f,s:b}", "tar", r->at[k].tar, "threshold", r->at[k].threshold,
                                                  "claimable", r->at[k].claimable));
    return o;
}

static void print_json(json_t *j) {
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    puts(s);
    free(s);
}

/* ---- eval verify ---- */
static int eval_verify(const eval_opts *o) {
    if (!o->pairs || !o->images) {
        fprintf(stderr, "facepay eval verify: --pairs pairs.txt and --images DIR are required\n");
        return 2;
    }
    FILE *pf = fopen(o->pairs, "r");
    if (!pf) {
        fprintf(stderr, "facepay eval verify: cannot open %s\n", o->pairs);
        return 2;
    }
    dataset ds;
    int rc = dataset_scan(o->images, o->limit, &ds);
    if (rc) {
        fclose(pf);
        return rc;
    }
    int sets = 0, per = 0;
    if (fscanf(pf, "%d %d", &sets, &per) != 2 || sets < 2 || sets > 100 || per < 1 || per > 100000) {
        fprintf(stderr, "facepay eval verify: %s: first line must be '<sets> <pairs per set>'\n", o->pairs);
        fclose(pf);
        dataset_free(&ds);
        return 2;
    }
    int64_t np = (int64_t)sets * per * 2;
    int *pa = malloc(sizeof(int) * (size_t)np), *pb = malloc(sizeof(int) * (size_t)np);
    int *same = malloc(sizeof(int) * (size_t)np), *fold = malloc(sizeof(int) * (size_t)np);
    float *score = malloc(sizeof(float) * (size_t)np);
    int64_t k = 0, missing = 0;
    for (int s = 0; s < sets && !rc; s++)
        for (int m = 0; m < 2 * per && !rc; m++, k++) {
            char n1[256], n2[256];
            int a, b;
            if (m < per) {
                if (fscanf(pf, "%255s %d %d", n1, &a, &b) != 3) rc = 2;
                strcpy(n2, n1);
            } else if (fscanf(pf, "%255s %d %255s %d", n1, &a, n2, &b) != 4) {
                rc = 2;
            }
            if (rc) {
                fprintf(stderr, "facepay eval verify: %s: pair %lld of set %d is malformed\n", o->pairs, (long long)m + 1, s + 1);
                break;
            }
            pa[k] = find_item(&ds, n1, a);
            pb[k] = find_item(&ds, n2, b);
            if (pa[k] < 0 || pb[k] < 0) missing++;
            same[k] = m < per;
            fold[k] = s;
        }
    fclose(pf);
    if (!rc && missing) {
        fprintf(stderr, "facepay eval verify: %lld pair(s) name images not in %s (wrong --images for this pairs file?)\n",
                (long long)missing, o->images);
        rc = 2;
    }
    if (!rc) rc = embed_all(&ds, o, 0);
    all_pairs ap = {0};
    fp_kfold_report kr = {0};
    fp_verify_report vr = {0};
    if (!rc) {
        for (int64_t i = 0; i < np; i++) score[i] = pair_score(&ds, pa[i], pb[i]);
        fp_status st = fp_eval_kfold(score, same, fold, np, sets, &kr);
        if (!st && !(rc = score_all_pairs(&ds, NULL, &ap))) {
            fp_score_set ss = {ap.genuine, ap.n_genuine, ap.impostor, ap.n_impostor, ap.fta_genuine, ap.fta_impostor};
            st = fp_eval_verify(&ss, &vr);
        }
        if (st) rc = cli_error("eval verify", st);
    }
    if (!rc) {
        int fta = 0;
        for (int i = 0; i < ds.n; i++) fta += !ds.items[i].ok;
        double thr = 0;
        for (int f = 0; f < kr.n_folds; f++) thr += kr.threshold[f] / kr.n_folds;
        json_t *j = json_pack("{s:f,s:f,s:i,s:I,s:f,s:f,s:o,s:I,s:I,s:I,s:I,s:i,s:i,s:f,s:f}", "accuracy", kr.mean_accuracy,
                              "accuracy_std", kr.std_accuracy, "folds", kr.n_folds, "pairs_fta", (json_int_t)kr.n_fta,
                              "eer", vr.eer, "auc", vr.auc, "tar_at_far", tar_json(&vr), "genuine",
                              (json_int_t)vr.n_genuine, "impostor", (json_int_t)vr.n_impostor, "fta_genuine",
                              (json_int_t)vr.fta_genuine, "fta_impostor", (json_int_t)vr.fta_impostor, "fta", fta,
                              "images", ds.n, "threshold", thr, "pairs_per_second", ap.pairs_per_s);
        if (o->json) print_json(j);
        else {
            printf("%d-fold accuracy %.2f %% +- %.2f (threshold %.3f); %lld pair(s) with an image without a face\n", kr.n_folds,
                   100 * kr.mean_accuracy, 100 * kr.std_accuracy, thr, (long long)kr.n_fta);
            printf("all pairs of %d images (%d without a face): %lld genuine, %lld impostor (%.1f M pairs/s)\n", ds.n, fta,
                   (long long)vr.n_genuine, (long long)vr.n_impostor, ap.pairs_per_s / 1e6);
            printf("EER %.3f %%  AUC %.5f\n", 100 * vr.eer, vr.auc);
            for (int i = 0; i < FP_EVAL_N_FAR; i++)
                printf("TAR @ FAR %.0e: %.2f %% (threshold %.3f)%s\n", vr.at[i].target_far, 100 * vr.at[i].tar,
                       vr.at[i].threshold, vr.at[i].claimable ? "" : "  [too few impostor pairs to claim this FAR]");
        }
        json_decref(j);
        if (o->plot) {
            fp_plot_series s = fp_verify_series(&vr, "facepay (MobileFaceNet)");
            char det[4096];
            const char *dot = strrchr(o->plot, '.');
            snprintf(det, sizeof det, "%.*s-det%s", dot ? (int)(dot - o->plot) : (int)strlen(o->plot), o->plot, dot ? dot : ".png");
            fp_status st = fp_plot_roc(o->plot, "Verification ROC", &s, 1);
            if (!st) st = fp_plot_det(det, "Verification DET", "FAR", "FRR", &s, 1);
            if (st) rc = cli_error(o->plot, st);
            fp_plot_shutdown();
        }
    }
    fp_kfold_report_free(&kr);
    fp_verify_report_free(&vr);
    all_pairs_free(&ap);
    free(pa);
    free(pb);
    free(same);
    free(fold);
    free(score);
    dataset_free(&ds);
    return rc;
}

/* ---- eval identify ---- */
static int eval_identify(const eval_opts *o) {
    if (!o->images) {
        fprintf(stderr, "facepay eval identify: --images DIR is required\n");
        return 2;
    }
    dataset ds;
    int rc = dataset_scan(o->images, o->limit, &ds);
    if (!rc) rc = embed_all(&ds, o, 0);
    if (rc) {
        dataset_free(&ds);
        return rc;
    }
    int gpi = o->gallery_per_id > 0 ? o->gallery_per_id : 1;
    fp_gallery *g;
    fp_status st = fp_gallery_new(FP_EMBEDDING_DIM, FP_GALLERY_FP16, &g);
    /* enrolled: people with more than gpi images; their first gpi images (with a face) form the gallery */
    char *enrolled = calloc((size_t)ds.n_people, 1);
    char *in_gallery = calloc((size_t)ds.n, 1);
    int64_t fta_enrol = 0;
    for (int p = 0; p < ds.n_people && !st; p++) {
        if (ds.count[p] <= gpi) continue;
        int added = 0;
        for (int k = 0; k < ds.count[p] && added < gpi && !st; k++) {
            item *it = &ds.items[ds.first[p] + k];
            in_gallery[ds.first[p] + k] = 1;
            if (!it->ok) {
                fta_enrol++;
                continue;
            }
            st = fp_gallery_append(g, ds.people[p], it->emb, FP_EMBEDDING_DIM);
            added++;
        }
        enrolled[p] = added > 0;
    }
    fp_mated_search *mated = malloc(sizeof *mated * (size_t)ds.n);
    float *nonmated = malloc(sizeof(float) * (size_t)ds.n);
    int64_t nm = 0, nn = 0;
    double t0 = cli_now_ms();
    for (int i = 0; i < ds.n && !st; i++) {
        if (in_gallery[i]) continue;
        const item *it = &ds.items[i];
        int is_mated = enrolled[it->person];
        if (ds.count[it->person] > gpi && !is_mated) continue; /* enrolment failed entirely: not a clean probe */
        if (!it->ok) {
            if (is_mated) mated[nm++] = (fp_mated_search){0, NAN, NAN};
            else nonmated[nn++] = NAN;
            continue;
        }
        fp_search_result r;
        if ((st = fp_gallery_search(g, it->emb, 1, FP_EMBEDDING_DIM, FP_GALLERY_MAX_K, 1, &r))) break;
        if (is_mated) {
            fp_mated_search m = {0, NAN, NAN};
            for (int k = 0; k < r.n; k++) {
                if (!strcmp(r.top[k].user_id, ds.people[it->person])) {
                    if (!m.rank) m.rank = k + 1, m.mate_score = r.top[k].score;
                } else if (isnan(m.nonmate_score)) {
                    m.nonmate_score = r.top[k].score;
                }
            }
            mated[nm++] = m;
        } else {
            nonmated[nn++] = r.n ? r.top[0].score : NAN;
        }
    }
    double dt = cli_now_ms() - t0;
    fp_ident_report ir = {0};
    if (!st) {
        fp_ident_scores sc = {mated, nm, nonmated, nn, 0, 0};
        st = fp_eval_identify(&sc, &ir);
    }
    if (st) rc = cli_error("eval identify", st);
    else {
        json_t *at = json_object();
        static const char *const keys[FP_EVAL_N_FPIR] = {"0.01", "0.003", "0.001"};
        for (int k = 0; k < FP_EVAL_N_FPIR; k++)
            json_object_set_new(at, keys[k], json_pack("{s:f,s:f,s:f,s:b}", "fnir", ir.at[k].fnir, "threshold",
                                                       ir.at[k].threshold, "misid", ir.at[k].misid, "claimable", ir.at[k].claimable));
        json_t *cmc = json_array();
        for (int r = 0; r < FP_EVAL_CMC_RANKS; r++) json_array_append_new(cmc, json_real(ir.cmc[r]));
        json_t *j = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:o,s:o,s:f}", "gallery_users", (json_int_t)fp_gallery_size(g),
                              "mated_probes", (json_int_t)ir.n_mated, "nonmated_probes", (json_int_t)ir.n_nonmated,
                              "fta_mated", (json_int_t)ir.fta_mated, "fta_nonmated", (json_int_t)ir.fta_nonmated,
                              "fta_enrolment", (json_int_t)fta_enrol, "rank1", ir.rank1, "fnir_at_fpir", at, "cmc", cmc,
                              "ms_per_search", (nm + nn) ? dt / (double)(nm + nn) : 0);
        if (o->json) print_json(j);
        else {
            printf("gallery %lld users (%d per id); %lld mated probes, %lld non-mated probes; failures to acquire: %lld mated, %lld non-mated, %lld enrolment\n",
                   (long long)fp_gallery_size(g), gpi, (long long)ir.n_mated, (long long)ir.n_nonmated,
                   (long long)ir.fta_mated, (long long)ir.fta_nonmated, (long long)fta_enrol);
            printf("rank-1 %.2f %%, rank-5 %.2f %%\n", 100 * ir.rank1, 100 * ir.cmc[4]);
            for (int k = 0; k < FP_EVAL_N_FPIR; k++)
                printf("FNIR @ FPIR %s: %.2f %% (threshold %.3f)%s\n", keys[k], 100 * ir.at[k].fnir, ir.at[k].threshold,
                       ir.at[k].claimable ? "" : "  [too few non-mated probes to claim]");
        }
        json_decref(j);
        if (o->plot) {
            fp_plot_series s = fp_ident_series(&ir, "facepay (MobileFaceNet)");
            char cmcp[4096];
            const char *dot = strrchr(o->plot, '.');
            snprintf(cmcp, sizeof cmcp, "%.*s-cmc%s", dot ? (int)(dot - o->plot) : (int)strlen(o->plot), o->plot, dot ? dot : ".png");
            st = fp_plot_det(o->plot, "Open-set identification DET", "FPIR", "FNIR", &s, 1);
            if (!st) st = fp_plot_cmc(cmcp, "Closed-set CMC", &s, 1);
            if (st) rc = cli_error(o->plot, st);
            fp_plot_shutdown();
        }
    }
    fp_ident_report_free(&ir);
    free(mated);
    free(nonmated);
    free(enrolled);
    free(in_gallery);
    fp_gallery_free(g);
    dataset_free(&ds);
    return rc;
}

/* ---- eval calibrate ---- */
static int eval_calibrate(const eval_opts *o) {
    if (!o->images) {
        fprintf(stderr, "facepay eval calibrate: --images DIR is required\n");
        return 2;
    }
    if (!(o->target_far > 0 && o->target_far < 1)) {
        fprintf(stderr, "facepay eval calibrate: --target-far must be in (0, 1)\n");
        return 2;
    }
    dataset ds;
    int rc = dataset_scan(o->images, o->limit, &ds);
    if (!rc) rc = embed_all(&ds, o, 0);
    if (rc) {
        dataset_free(&ds);
        return rc;
    }
    /* --split: calibrate on even-numbered people, check on odd-numbered ones */
    char *cal = malloc((size_t)ds.n_people), *hold = malloc((size_t)ds.n_people);
    for (int p = 0; p < ds.n_people; p++) {
        cal[p] = !o->split || p % 2 == 0;
        hold[p] = o->split && p % 2 == 1;
    }
    all_pairs ap = {0}, hp = {0};
    rc = score_all_pairs(&ds, cal, &ap);
    fp_calibration c;
    memset(&c, 0, sizeof c);
    fp_threshold_estimate te;
    fp_status st = rc ? FP_OK : fp_eval_calibrate(ap.impostor, ap.n_impostor, o->target_far, &te);
    if (!rc && !st) {
        snprintf(c.model_id, sizeof c.model_id, "%s", FP_EMBEDDER_ID);
        c.target_far = o->target_far;
        c.threshold = (float)te.threshold;
        c.target_fpir = 1e-3;
        c.impostor_comparisons = ap.n_impostor;
        c.genuine_comparisons = ap.n_genuine;
        c.far_claimable = ap.n_impostor ? 3.0 / (double)ap.n_impostor : 1;
        int64_t acc = 0;
        for (int64_t i = 0; i < ap.n_genuine; i++) acc += ap.genuine[i] >= c.threshold;
        c.tar_at_threshold = ap.n_genuine ? (float)((double)acc / (double)(ap.n_genuine + ap.fta_genuine)) : 0;
        /* the FAR curve for the gallery-size rule: decades and half-decades down to what was measured */
        for (double far = 1e-1; far >= c.far_claimable * 0.999 && c.n_points < FP_CALIB_POINTS && !st; far /= sqrt(10.0)) {
            fp_threshold_estimate p;
            st = fp_eval_calibrate(ap.impostor, ap.n_impostor, far, &p);
            if (!st && (c.n_points == 0 || (float)p.threshold >= c.thr[c.n_points - 1])) {
                c.far[c.n_points] = far;
                c.thr[c.n_points++] = (float)p.threshold;
            }
        }
        snprintf(c.source, sizeof c.source, "facepay eval calibrate --images %s --target-far %g%s (%d people, %d images)",
                 o->images, o->target_far, o->split ? " --split" : "", ds.n_people, ds.n);
    }
    if (st) rc = cli_error("eval calibrate", st);
    double hold_far = NAN;
    int64_t hold_fa = 0;
    if (!rc && o->split && !(rc = score_all_pairs(&ds, hold, &hp))) {
        for (int64_t i = 0; i < hp.n_impostor; i++) hold_fa += hp.impostor[i] >= c.threshold;
        hold_far = hp.n_impostor ? (double)hold_fa / (double)(hp.n_impostor + hp.fta_impostor) : NAN;
    }
    if (!rc) {
        const char *out = o->out ? o->out : FP_SOURCE_DIR "/config/calibration.json";
        if ((st = fp_calibration_save(out, &c))) rc = cli_error(out, st);
        json_t *j = json_pack("{s:f,s:f,s:f,s:I,s:I,s:b,s:f,s:s}", "target_far", o->target_far, "threshold",
                              (double)c.threshold, "far_upper95", te.far_upper95, "impostor", (json_int_t)ap.n_impostor,
                              "n_needed", (json_int_t)te.n_needed, "claimable", te.claimable, "tar_at_threshold",
                              (double)c.tar_at_threshold, "written", out);
        if (o->split)
            json_object_set_new(j, "holdout", json_pack("{s:f,s:I,s:I}", "far", hold_far, "false_accepts", (json_int_t)hold_fa,
                                                       "impostor", (json_int_t)hp.n_impostor));
        if (o->json) print_json(j);
        else {
            printf("threshold %.4f for FAR %.0e on %lld impostor pairs (%lld needed to claim it: %s; 95 %% upper bound %.2e); TAR there %.2f %%\n",
                   c.threshold, o->target_far, (long long)ap.n_impostor, (long long)te.n_needed,
                   te.claimable ? "claimable" : "NOT claimable", te.far_upper95, 100 * c.tar_at_threshold);
            if (o->split)
                printf("held-out identities: FAR %.2e (%lld of %lld impostor pairs)\n", hold_far, (long long)hold_fa,
                       (long long)hp.n_impostor);
            printf("written to %s\n", out);
        }
        json_decref(j);
    }
    all_pairs_free(&ap);
    all_pairs_free(&hp);
    free(cal);
    free(hold);
    dataset_free(&ds);
    return rc;
}

/* ---- eval liveness ---- */
static int eval_liveness(const eval_opts *o) {
    if (!o->labels || !o->images) {
        fprintf(stderr, "facepay eval liveness: --labels labels.csv and --images DIR are required\n");
        return 2;
    }
    FILE *f = fopen(o->labels, "r");
    if (!f) {
        fprintf(stderr, "facepay eval liveness: cannot open %s\n", o->labels);
        return 2;
    }
    dataset ds;
    memset(&ds, 0, sizeof ds);
    char line[4096];
    int cap = 1024, n_types = 0, rc = 0;
    char *types[64];
    int *type = malloc(sizeof(int) * (size_t)cap);
    ds.items = malloc(sizeof *ds.items * (size_t)cap);
    ds.n_people = 1;
    ds.people = calloc(1, sizeof *ds.people);
    ds.people[0] = strdup("-");
    ds.first = calloc(1, sizeof(int));
    ds.count = calloc(1, sizeof(int));
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        char *path = strtok(line, ","), *label = strtok(NULL, ",");
        if (!path || !label) continue;
        if (lineno == 1 && !strcmp(path, "path")) continue; /* header */
        if (ds.n == cap) {
            cap *= 2;
            ds.items = realloc(ds.items, sizeof *ds.items * (size_t)cap);
            type = realloc(type, sizeof(int) * (size_t)cap);
        }
        item *it = &ds.items[ds.n];
        memset(it, 0, sizeof *it);
        char p[8192];
        snprintf(p, sizeof p, "%s/%s", o->images, path);
        it->path = strdup(p);
        int t = -1;
        if (strcmp(label, "live") && strcmp(label, "bona_fide")) {
            for (int k = 0; k < n_types; k++)
                if (!strcmp(types[k], label)) t = k;
            if (t < 0 && n_types < 64) types[t = n_types++] = strdup(label);
        }
        type[ds.n++] = t;
        if (o->limit > 0 && ds.n >= o->limit) break;
    }
    fclose(f);
    ds.count[0] = ds.n;
    if (!ds.n) {
        fprintf(stderr, "facepay eval liveness: %s lists no images (path,label)\n", o->labels);
        rc = 2;
    }
    if (!rc) rc = embed_all(&ds, o, 1);
    fp_pad_report pr[3];
    memset(pr, 0, sizeof pr);
    static const char *const names[3] = {"score", "antispoof", "liveness"};
    if (!rc) {
        float *bona = malloc(sizeof(float) * (size_t)ds.n), *att = malloc(sizeof(float) * (size_t)ds.n);
        int *att_t = malloc(sizeof(int) * (size_t)ds.n);
        json_t *j = json_object();
        for (int v = 0; v < 3 && !rc; v++) {
            int64_t nb = 0, na = 0;
            for (int i = 0; i < ds.n; i++) {
                const item *it = &ds.items[i];
                /* no face: NaN, a failure to acquire (rejected, so it counts against BPCER) */
                float s = !it->ok ? NAN : v == 0 ? it->live : v == 1 ? it->antispoof : it->liveness_model;
                if (type[i] < 0) bona[nb++] = s;
                else att[na] = s, att_t[na++] = type[i];
            }
            fp_pad_scores sc = {bona, nb, att, att_t, na, n_types > 0 ? n_types : 1};
            fp_status st = fp_eval_pad(&sc, 0.5, &pr[v]);
            if (st) {
                rc = cli_error("eval liveness", st);
                break;
            }
            json_t *apcer = json_object();
            for (int k = 0; k < n_types; k++) json_object_set_new(apcer, types[k], json_real(pr[v].apcer[k]));
            json_object_set_new(j, names[v], json_pack("{s:f,s:o,s:f,s:f,s:f,s:f,s:f,s:I,s:I}", "threshold", 0.5, "apcer", apcer,
                                                      "bpcer", pr[v].bpcer, "acer", pr[v].acer, "eer", pr[v].eer,
                                                      "apcer_at_bpcer_1pct", pr[v].at[0].apcer, "apcer_at_bpcer_5pct",
                                                      pr[v].at[1].apcer, "bona_fide", (json_int_t)pr[v].n_bona_fide,
                                                      "fta_bona_fide", (json_int_t)pr[v].fta_bona_fide));
            if (!o->json)
                printf("%-10s APCER %.2f %%  BPCER %.2f %%  ACER %.2f %% (threshold 0.5)  EER %.2f %%  APCER@BPCER5%% %.2f %%\n",
                       names[v], 100 * pr[v].apcer_max, 100 * pr[v].bpcer, 100 * pr[v].acer, 100 * pr[v].eer,
                       100 * pr[v].at[1].apcer);
        }
        if (!rc && o->json) print_json(j);
        json_decref(j);
        if (!rc && o->plot) {
            fp_plot_series s[3];
            for (int v = 0; v < 3; v++) s[v] = fp_pad_series(&pr[v], names[v]);
            fp_status st = fp_plot_pad_det(o->plot, "Presentation attack detection DET", s, 3);
            if (st) rc = cli_error(o->plot, st);
            fp_plot_shutdown();
        }
        free(bona);
        free(att);
        free(att_t);
    }
    for (int v = 0; v < 3; v++) fp_pad_report_free(&pr[v]);
    for (int k = 0; k < n_types; k++) free(types[k]);
    free(type);
    dataset_free(&ds);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    static const char usage[] =
        "usage: facepay eval verify    --pairs pairs.txt --images DIR [--json] [--plot roc.png|.svg]\n"
        "       facepay eval identify  --images DIR [--gallery-per-id 1] [--json] [--plot det.png]\n"
        "       facepay eval calibrate --images DIR --target-far 1e-5 [--split] [--out config/calibration.json]\n"
        "       facepay eval liveness  --labels labels.csv --images DIR [--json] [--plot det.png]\n"
        "common: [--cache FILE] (reuse embeddings) [--threads N (2)] [--no-flip] [--limit N people/images]\n"
        "DIR holds one folder per person (LFW layout). Images without a face are failures to acquire and\n"
        "count as errors in every figure.\n";
    if (argc < 2) {
        printf("%s", usage);
        return 2;
    }
    eval_opts o;
    memset(&o, 0, sizeof o);
    o.target_far = 1e-5;
    o.threads = 2;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--images") && more) o.images = argv[++i];
        else if (!strcmp(a, "--pairs") && more) o.pairs = argv[++i];
        else if (!strcmp(a, "--labels") && more) o.labels = argv[++i];
        else if (!strcmp(a, "--plot") && more) o.plot = argv[++i];
        else if (!strcmp(a, "--cache") && more) o.cache = argv[++i];
        else if (!strcmp(a, "--out") && more) o.out = argv[++i];
        else if (!strcmp(a, "--gallery-per-id") && more) o.gallery_per_id = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && more) o.threads = atoi(argv[++i]);
        else if (!strcmp(a, "--limit") && more) o.limit = atoi(argv[++i]);
        else if (!strcmp(a, "--target-far") && more) o.target_far = atof(argv[++i]);
        else if (!strcmp(a, "--json")) o.json = 1;
        else if (!strcmp(a, "--no-flip")) o.no_flip = 1;
        else if (!strcmp(a, "--split")) o.split = 1;
        else {
            printf("%s", usage);
            return strcmp(a, "--help") ? 2 : 0;
        }
    }
    if (o.threads < 1 || o.threads > 16) o.threads = 2;
    if (!strcmp(argv[1], "verify")) return eval_verify(&o);
    if (!strcmp(argv[1], "identify")) return eval_identify(&o);
    if (!strcmp(argv[1], "calibrate")) return eval_calibrate(&o);
    if (!strcmp(argv[1], "liveness")) return eval_liveness(&o);
    printf("%s", usage);
    return 2;
}
