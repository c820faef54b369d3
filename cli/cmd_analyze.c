/*
 * cmd_analyze.c - `facepay analyze [--json] [--draw OUT.png] [--embedding] [--mesh] IMAGE...`:
 * runs the face pipeline on each image and prints what it found. Exit 0 when every image was read
 * (an image without a face is a result, not an error); 1 with a message per unreadable image.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

#define MAX_FACES 32

static json_t *points(const float *p, int n, int dims) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        json_t *q = json_array();
        for (int d = 0; d < dims; d++) json_array_append_new(q, json_real(round(p[i * dims + d] * 100) / 100));
        json_array_append_new(a, q);
    }
    return a;
}

static json_t *r3(double v) { return json_real(round(v * 1000) / 1000); }

static json_t *face_json(const fp_face *f, int mesh, int embedding) {
    json_t *o = json_object();
    json_object_set_new(o, "box", json_pack("[o,o,o,o]", r3(f->box[0]), r3(f->box[1]), r3(f->box[2]), r3(f->box[3])));
    json_object_set_new(o, "score", r3(f->score));
    json_object_set_new(o, "presence", r3(f->presence));
    json_object_set_new(o, "landmarks5", points(&f->landmarks5[0][0], 5, 2));
    json_object_set_new(o, "landmarks68", points(&f->landmarks68[0][0], 68, 2));
    json_object_set_new(o, "iris", json_pack("[o,o]", points(&f->iris[0][0][0], 1, 2), points(&f->iris[1][0][0], 1, 2)));
    if (mesh) json_object_set_new(o, "mesh468", points(&f->mesh[0][0], FP_MESH_POINTS, 3));
    json_object_set_new(o, "pose", json_pack("{s:o,s:o,s:o}", "pitch", r3(f->pose.pitch), "yaw", r3(f->pose.yaw), "roll", r3(f->pose.roll)));
    const fp_quality *q = &f->quality;
    json_object_set_new(o, "quality",
        json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:{s:b,s:b,s:b,s:b,s:b,s:b,s:b,s:b},s:b}",
                  "face_px", r3(q->face_px), "brightness", r3(q->brightness), "contrast", r3(q->contrast),
                  "sharpness", r3(q->sharpness), "exposure_dark", r3(q->exposure_dark),
                  "exposure_bright", r3(q->exposure_bright), "edge_margin", r3(q->edge_margin),
                  "occlusion", r3(q->occlusion), "ok", "size", q->size_ok, "brightness", q->brightness_ok,
                  "contrast", q->contrast_ok, "sharpness", q->sharpness_ok, "exposure", q->exposure_ok,
                  "edge", q->edge_ok, "occlusion", q->occlusion_ok, "pose", q->pose_ok, "pass", q->pass));
    const fp_liveness_cues *l = &f->liveness;
    json_t *lv = json_pack("{s:o,s:o,s:o,s:o,s:o}", "ear_left", r3(l->ear_left), "ear_right", r3(l->ear_right),
                           "mouth_open", r3(l->mouth_open), "gaze_x", r3(l->gaze_x), "gaze_y", r3(l->gaze_y));
    json_t *passive = json_object();
    if (l->antispoof >= 0) json_object_set_new(passive, "antispoof", r3(l->antispoof));
    if (l->liveness_model >= 0) json_object_set_new(passive, "liveness", r3(l->liveness_model));
    if (l->trained >= 0) json_object_set_new(passive, "trained", r3(l->trained));
    json_object_set_new(lv, "passive", passive);
    json_object_set_new(lv, "score", r3(l->score));
    json_object_set_new(o, "liveness", lv);
    if (f->age >= 0) json_object_set_new(o, "age", json_real(round(f->age * 10) / 10));
    if (f->gender_male >= 0)
        json_object_set_new(o, "gender", json_pack("{s:s,s:o}", "label", f->gender_male >= 0.5 ? "male" : "female",
                                                   "score", r3(f->gender_male >= 0.5 ? f->gender_male : 1 - f->gender_male)));
    if (embedding && f->has_embedding) {
        json_t *e = json_array();
        for (int k = 0; k < FP_EMBEDDING_DIM; k++) json_array_append_new(e, json_real(round(f->embedding[k] * 1e6) / 1e6));
        json_object_set_new(o, "embedding", e);
    }
    return o;
}

static void draw_name(char *out, size_t n, const char *draw, int index, int total) {
    if (total <= 1) {
        snprintf(out, n, "%s", draw);
        return;
    }
    const char *dot = strrchr(draw, '.');
    int stem = dot ? (int)(dot - draw) : (int)strlen(draw);
    snprintf(out, n, "%.*s-%d%s", stem, draw, index + 1, dot ? dot : ".png");
}

int cmd_analyze(int argc, char **argv) {
    int json = 0, emb = 0, mesh = 0, far = 2;
    const char *draw = NULL;
    char **files = calloc((size_t)argc, sizeof *files);
    int nf = 0;
    fp_analyze_options ao = fp_analyze_options_default();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--embedding")) emb = 1;
        else if (!strcmp(argv[i], "--mesh")) mesh = 1;
        else if (!strcmp(argv[i], "--far")) far = 1;
        else if (!strcmp(argv[i], "--near")) far = 0;
        else if (!strcmp(argv[i], "--all-detectors")) far = 2;
        else if (!strcmp(argv[i], "--auto")) far = -1;
        else if (!strcmp(argv[i], "--tiles")) far = 3;
        else if (!strcmp(argv[i], "--draw") && i + 1 < argc) draw = argv[++i];
        else if (!strcmp(argv[i], "--score") && i + 1 < argc) ao.score_threshold = (float)atof(argv[++i]);
        else if (!strcmp(argv[i], "--max-faces") && i + 1 < argc) ao.max_faces = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-flip")) ao.flip_embedding = 0;
        else if (argv[i][0] == '-' && argv[i][1]) {
            printf("usage: facepay analyze [--json] [--draw OUT.png] [--embedding] [--mesh]\n"
                   "                       [--all-detectors|--near|--far|--auto|--tiles] [--score S] [--max-faces N]\n"
                   "                       [--no-flip] IMAGE...\n"
                   "  --all-detectors  (default) short- and full-range detectors, merged\n"
                   "  --near / --far   short range only (faces within ~2 m) / full range only\n"
                   "  --auto           short range, full range only when nothing was found (the payment path)\n"
                   "  --tiles          both detectors on the image and on 2x2 overlapping tiles (small faces)\n"
                   "  --draw OUT.png   write the image with boxes, 68 landmarks, iris, 5 points and pose axes\n"
                   "                   (OUT-1.png, OUT-2.png ... for several images)\n");
            free(files);
            return strcmp(argv[i], "--help") ? 2 : 0;
        } else files[nf++] = argv[i];
    }
    if (!nf) {
        fprintf(stderr, "facepay analyze: no image given (try --help)\n");
        free(files);
        return 2;
    }
    ao.full_range = far;
    fp_engine *e;
    fp_engine_options eo = fp_engine_options_default();
    fp_status st = fp_engine_new(&eo, &e);
    if (st) {
        free(files);
        return cli_error("loading models", st);
    }
    fp_session *s;
    if ((st = fp_session_new(e, &s))) {
        fp_engine_free(e);
        free(files);
        return cli_error("session", st);
    }
    fp_face *faces = malloc(sizeof *faces * MAX_FACES);
    int bad = 0;
    json_t *all = json_array();
    for (int i = 0; i < nf && faces; i++) {
        fp_image img;
        double t0 = cli_now_ms();
        st = fp_image_load(files[i], NULL, &img);
        double t_decode = cli_now_ms() - t0;
        if (st) {
            fprintf(stderr, "facepay analyze: %s: %s: %s\n", files[i], fp_strerror(st), fp_last_error());
            bad++;
            continue;
        }
        int n = 0;
        fp_timings t;
        st = fp_analyze(s, &img, &ao, faces, MAX_FACES, &n, &t);
        if (st) {
            fprintf(stderr, "facepay analyze: %s: %s: %s\n", files[i], fp_strerror(st), fp_last_error());
            bad++;
            fp_image_release(&img);
            continue;
        }
        int shown = n < MAX_FACES ? n : MAX_FACES;
        if (ao.max_faces >= 0 && shown > ao.max_faces) shown = ao.max_faces;
        if (json) {
            json_t *fa = json_array();
            for (int k = 0; k < shown; k++) json_array_append_new(fa, face_json(&faces[k], mesh, emb));
            json_t *ms = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "decode", r3(t_decode), "detect", r3(t.detect),
                                   "mesh", r3(t.mesh), "iris", r3(t.iris), "pose_quality", r3(t.pose_quality),
                                   "align", r3(t.align), "embed", r3(t.embed), "attributes", r3(t.attributes),
                                   "liveness", r3(t.liveness), "total", r3(t.total + t_decode));
            json_array_append_new(all, json_pack("{s:s,s:i,s:i,s:i,s:o,s:o}", "file", files[i], "width", img.width,
                                                 "height", img.height, "faces_detected", n, "faces", fa, "ms", ms));
        } else {
            printf("%s: %dx%d, %d face(s) (%.1f ms)\n", files[i], img.width, img.height, n, t.total + t_decode);
            for (int k = 0; k < shown; k++) {
                const fp_face *f = &faces[k];
                printf("  face %d: box %.0f,%.0f %.0fx%.0f score %.2f  pose pitch %+.1f yaw %+.1f roll %+.1f  "
                       "quality %s  liveness %.2f", k, f->box[0], f->box[1], f->box[2], f->box[3], f->score,
                       f->pose.pitch, f->pose.yaw, f->pose.roll, f->quality.pass ? "pass" : "FAIL", f->liveness.score);
                if (f->age >= 0) printf("  age %.0f %s", f->age, f->gender_male >= 0.5 ? "male" : "female");
                printf("\n");
            }
        }
        if (draw) {
            char out[4096];
            draw_name(out, sizeof out, draw, i, nf);
            fp_draw_faces(&img, faces, shown);
            if ((st = fp_image_write_png(&img, out))) {
                fprintf(stderr, "facepay analyze: %s: %s\n", out, fp_last_error());
                bad++;
            }
        }
        fp_image_release(&img);
    }
    if (json) {
        char *txt = json_dumps(nf == 1 && json_array_size(all) == 1 ? json_array_get(all, 0) : all, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
        if (txt) puts(txt);
        free(txt);
    }
    json_decref(all);
    free(faces);
    free(files);
    fp_session_free(s);
    fp_engine_free(e);
    return bad ? 1 : 0;
}
