/*
 * cmd_liveness.c - `facepay liveness`: active liveness over a frame sequence (a video window or a
 * list of photos): blinks, head turns, the challenge verdict with its reason, and the consistency
 * checks (identity across frames, 3-D parallax).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

#define MAX_FRAMES 2000

int cmd_liveness(int argc, char **argv) {
    static const char usage[] =
        "usage: facepay liveness [--challenge STEPS | --random] [--start S] [--duration S] [--json]\n"
        "                        (--video FILE | --camera /dev/videoN | IMAGE...)\n"
        "STEPS: comma-separated blink[:N], left, right, mouth (e.g. \"blink:2,left\"); default blink:1.\n"
        "Photos are taken as frames 100 ms apart. Exit 0 whatever the verdict; 1 when the input is unusable.\n";
    const char *video = NULL, *spec = "blink";
    int json = 0, random = 0, n_img = 0;
    double start = 0, duration = 1e9;
    char **imgs = calloc((size_t)argc + 1, sizeof *imgs);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if ((!strcmp(a, "--video") || !strcmp(a, "--camera")) && more) video = argv[++i];
        else if (!strcmp(a, "--challenge") && more) spec = argv[++i];
        else if (!strcmp(a, "--random")) random = 1;
        else if (!strcmp(a, "--start") && more) start = atof(argv[++i]) * 1000;
        else if (!strcmp(a, "--duration") && more) duration = atof(argv[++i]) * 1000;
        else if (!strcmp(a, "--json")) json = 1;
        else if (a[0] == '-') {
            printf("%s", usage);
            free(imgs);
            return strcmp(a, "--help") ? 2 : 0;
        } else imgs[n_img++] = argv[i];
    }
    fp_challenge ch;
    fp_status st = random ? fp_challenge_random(&ch) : fp_challenge_parse(spec, &ch);
    if (st || (!video && !n_img)) {
        if (st) cli_error("challenge", st);
        else printf("%s", usage);
        free(imgs);
        return 2;
    }
    fp_engine_options eo = fp_engine_options_default();
    eo.attributes = 0;
    fp_engine *e = NULL;
    fp_session *s = NULL;
    if ((st = fp_engine_new(&eo, &e)) || (st = fp_session_new(e, &s))) {
        fp_engine_free(e);
        free(imgs);
        return cli_error("loading models", st);
    }
    fp_analyze_options ao = fp_analyze_options_default();
    ao.attributes = 0;
    ao.max_faces = 2;
    fp_liveness_frame *fr = malloc(sizeof *fr * MAX_FRAMES);
    fp_face *faces = malloc(sizeof *faces * 2);
    int n = 0, rc = 0;
    fp_video *v = NULL;
    if (video && (st = fp_video_open(video, &v))) rc = cli_error(video, st);
    for (int i = 0; !rc && n < MAX_FRAMES; i++) {
        fp_image img;
        double t;
        if (v) {
            int eof = 0;
            if ((st = fp_video_next(v, &img, &t, &eof))) {
                rc = cli_error(video, st);
                break;
            }
            if (eof) break;
            if (t < start) {
                fp_image_release(&img);
                continue;
            }
            if (t > start + duration) {
                fp_image_release(&img);
                break;
            }
        } else {
            if (i >= n_img) break;
            if ((st = fp_image_load(imgs[i], NULL, &img))) {
                rc = cli_error(imgs[i], st);
                break;
            }
            t = 100.0 * i;
        }
        int nf = 0;
        if ((st = fp_analyze(s, &img, &ao, faces, 2, &nf, NULL))) rc = cli_error("analyze", st);
        else fp_liveness_frame_from_face(faces, nf, t, &fr[n++]);
        fp_image_release(&img);
    }
    fp_video_close(v);
    fp_challenge_result r;
    if (!rc && (st = fp_challenge_evaluate(&ch, NULL, fr, n, &r))) rc = cli_error("challenge", st);
    if (!rc) {
        char code[128], text[160];
        fp_challenge_code(&ch, code, sizeof code);
        fp_challenge_format(&ch, text, sizeof text);
        json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:i,s:f,s:f,s:b,s:f,s:o?,s:i,s:i}", "challenge", code, "prompt", text,
                              "verdict", fp_challenge_verdict_name(r.verdict), "reason", r.reason, "steps_done",
                              r.steps_done, "steps", ch.n, "blinks", r.blinks, "max_left_deg", (double)r.max_left,
                              "max_right_deg", (double)r.max_right, "identity_stable", r.identity_stable,
                              "min_identity_cos", (double)r.min_identity_cos, "parallax",
                              isfinite(r.parallax) ? json_real(r.parallax) : NULL, "frames", r.frames,
                              "frames_with_face", r.frames_with_face);
        char *txt = json_dumps(j, json ? JSON_INDENT(2) : JSON_COMPACT);
        puts(txt);
        free(txt);
        json_decref(j);
    }
    free(fr);
    free(faces);
    free(imgs);
    fp_session_free(s);
    fp_engine_free(e);
    return rc;
}
