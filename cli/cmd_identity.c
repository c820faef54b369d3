/*
 * cmd_identity.c - `facepay key`, `facepay enroll`, `facepay identify` and `facepay user`: enrollment
 * from photos, a video or a camera into the encrypted store, identification over frames with the
 * calibrated threshold, and user listing/deletion. Frames come from one helper (frames_*) whatever
 * the source, so photos and video go through the same enrollment and decision code.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

#ifndef FP_SOURCE_DIR
#define FP_SOURCE_DIR "."
#endif

/* ---- common options ---- */
typedef struct id_opts {
    const char *db, *key_file, *user, *name, *video, *calib;
    char **images;
    int n_images;
    int json, allow_lookalike, target, vacuum, require_blink, max_frames;
    double timeout_ms;
} id_opts;

static const char *calibration_path(const id_opts *o) {
    if (o->calib) return o->calib;
    const char *e = getenv("FACEPAY_CALIBRATION");
    return e && *e ? e : FP_SOURCE_DIR "/config/calibration.json";
}

static int parse(int argc, char **argv, id_opts *o, const char *usage) {
    memset(o, 0, sizeof *o);
    o->images = calloc((size_t)argc + 1, sizeof *o->images);
    o->target = 10;
    o->timeout_ms = 30000;
    o->max_frames = 60;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--db") && more) o->db = argv[++i];
        else if (!strcmp(a, "--key") && more) o->key_file = argv[++i];
        else if (!strcmp(a, "--user") && more) o->user = argv[++i];
        else if (!strcmp(a, "--name") && more) o->name = argv[++i];
        else if (!strcmp(a, "--video") && more) o->video = argv[++i];
        else if (!strcmp(a, "--camera") && more) o->video = argv[++i];
        else if (!strcmp(a, "--calibration") && more) o->calib = argv[++i];
        else if (!strcmp(a, "--frames") && more) o->target = atoi(argv[++i]);
        else if (!strcmp(a, "--max-frames") && more) o->max_frames = atoi(argv[++i]);
        else if (!strcmp(a, "--timeout") && more) o->timeout_ms = atof(argv[++i]) * 1000;
        else if (!strcmp(a, "--allow-lookalike")) o->allow_lookalike = 1;
        else if (!strcmp(a, "--require-blink")) o->require_blink = 1;
        else if (!strcmp(a, "--vacuum")) o->vacuum = 1;
        else if (!strcmp(a, "--json")) o->json = 1;
        else if (a[0] == '-') {
            printf("%s", usage);
            return strcmp(a, "--help") ? 2 : 1;
        } else o->images[o->n_images++] = argv[i];
    }
    return 0;
}

int cli_open_store(const char *db, const char *key_file, fp_store **s) {
    if (!db) {
        fprintf(stderr, "facepay: --db DB is required\n");
        return 2;
    }
    fp_key key;
    fp_status st = fp_key_load(key_file, &key);
    if (st) return cli_error(key_file ? key_file : "template key (set FACEPAY_KEY or --key FILE)", st);
    st = fp_store_open(db, &key, s);
    fp_key_wipe(&key);
    return st ? cli_error(db, st) : 0;
}

static int open_store(const id_opts *o, fp_store **s) { return cli_open_store(o->db, o->key_file, s); }

typedef struct load_ctx {
    fp_gallery *g;
    fp_status st;
} load_ctx;

static int load_mean(void *ctx, const char *user, const float *emb, int dim) {
    load_ctx *c = ctx;
    c->st = fp_gallery_add(c->g, user, emb, dim);
    return c->st != FP_OK;
}

static int load_gallery(fp_store *s, fp_gallery **g) {
    fp_status st = fp_gallery_new(FP_EMBEDDING_DIM, FP_GALLERY_FP16, g);
    if (st) return cli_error("gallery", st);
    load_ctx c = {*g, FP_OK};
    st = fp_store_foreach_mean(s, FP_EMBEDDER_ID, load_mean, &c);
    if (st || c.st) return cli_error("loading the gallery", st ? st : c.st);
    return 0;
}

static int new_pipeline(fp_engine **e, fp_session **s) {
    fp_engine_options eo = fp_engine_options_default();
    eo.attributes = 0; /* identity needs neither age nor gender */
    fp_status st = fp_engine_new(&eo, e);
    if (!st) st = fp_session_new(*e, s);
    return st ? cli_error("loading models", st) : 0;
}

/* Feeds every frame of the source to fn; returns non-zero on a source error. */
typedef int (*frame_fn)(void *ctx, const fp_image *img, double t_ms, const char *source);
static int for_frames(const id_opts *o, frame_fn fn, void *ctx, int (*done)(void *ctx)) {
    if (o->video) {
        fp_video *v;
        fp_status st = fp_video_open(o->video, &v);
        if (st) return cli_error(o->video, st);
        int eof = 0, rc = 0;
        while (!rc && !done(ctx)) {
            fp_image img;
            double t;
            if ((st = fp_video_next(v, &img, &t, &eof))) {
                rc = cli_error(o->video, st);
                break;
            }
            if (eof) break;
            rc = fn(ctx, &img, t, o->video);
            fp_image_release(&img);
        }
        fp_video_close(v);
        return rc;
    }
    if (!o->n_images) {
        fprintf(stderr, "facepay: give IMAGE... or --video FILE (or --camera /dev/videoN)\n");
        return 2;
    }
    for (int i = 0; i < o->n_images && !done(ctx); i++) {
        fp_image img;
        fp_status st = fp_image_load(o->images[i], NULL, &img);
        if (st) return cli_error(o->images[i], st);
        /* photos: one second apart, so time rules (blinks, capture spacing) see them as separate moments */
        int rc = fn(ctx, &img, 1000.0 * i, o->images[i]);
        fp_image_release(&img);
        if (rc) return rc;
    }
    return 0;
}

/* What enroll and identify both need: the store, its gallery, the calibration and a pipeline. */
typedef struct id_ctx {
    fp_store *store;
    fp_gallery *gallery;
    fp_engine *engine;
    fp_session *session;
    fp_calibration calib;
} id_ctx;

static int id_ctx_open(const id_opts *o, id_ctx *c) {
    memset(c, 0, sizeof *c);
    int rc;
    if ((rc = open_store(o, &c->store)) || (rc = load_gallery(c->store, &c->gallery))) return rc;
    fp_status st = fp_calibration_load(calibration_path(o), &c->calib);
    if (st) return cli_error("calibration", st);
    return new_pipeline(&c->engine, &c->session);
}

static void id_ctx_close(id_ctx *c) {
    fp_session_free(c->session);
    fp_engine_free(c->engine);
    fp_gallery_free(c->gallery);
    fp_store_close(c->store);
}

/* ---- facepay key ---- */
int cmd_key(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "generate")) {
        fp_status st = fp_key_generate(argv[2]);
        if (st) return cli_error(argv[2], st);
        printf("wrote a new template key to %s (mode 0600); keep it apart from the database\n", argv[2]);
        return 0;
    }
    printf("usage: facepay key generate FILE\n"
           "  Creates the 32-byte key that encrypts face templates at rest. Commands read it from --key FILE\n"
           "  or from FACEPAY_KEY (64 hex characters).\n");
    return argc >= 2 && !strcmp(argv[1], "--help") ? 0 : 2;
}

/* ---- facepay enroll ---- */
typedef struct enroll_ctx {
    fp_enroller *e;
    fp_enroll_status st;
    int tty;
} enroll_ctx;

static int enroll_frame(void *ctx, const fp_image *img, double t, const char *source) {
    enroll_ctx *c = ctx;
    fp_status st = fp_enroller_add_frame(c->e, img, t, source, &c->st);
    if (st) return cli_error(source, st);
    if (c->tty) {
        int w = 30, fill = c->st.target ? c->st.kept * w / c->st.target : 0;
        if (fill > w) fill = w;
        fprintf(stderr, "\r[%.*s%*s] %d/%d good frames, %d seen", fill, "##############################", w - fill, "",
                c->st.kept, c->st.target, c->st.seen);
        fflush(stderr);
    }
    return 0;
}

static int enroll_done(void *ctx) { return ((enroll_ctx *)ctx)->st.done; }

int cmd_enroll(int argc, char **argv) {
    static const char usage[] =
        "usage: facepay enroll --db DB --user ID [--name NAME] [--key FILE] [--calibration FILE]\n"
        "                      [--frames K (10)] [--timeout SECONDS (30)] [--allow-lookalike] [--json]\n"
        "                      (IMAGE... | --video FILE | --camera /dev/videoN)\n"
        "Keeps frames that pass the quality and pose gates (frontal plus slight left/right), stops at K good\n"
        "frames, and stores the encrypted templates. Refuses when no frame passes, when another face competes,\n"
        "or when the face already matches another user (unless --allow-lookalike: the pair then needs step-up).\n";
    id_opts o;
    int rc = parse(argc, argv, &o, usage);
    if (rc) {
        free(o.images);
        return rc == 1 ? 0 : rc;
    }
    if (!o.user) {
        fprintf(stderr, "facepay enroll: --user ID is required\n");
        free(o.images);
        return 2;
    }
    id_ctx ctx;
    fp_enroller *en = NULL;
    fp_status st;
    if ((rc = id_ctx_open(&o, &ctx))) goto out;
    fp_enroll_options eo = fp_enroll_options_default();
    eo.target = o.target;
    eo.timeout_ms = o.timeout_ms;
    eo.allow_lookalike = o.allow_lookalike;
    if ((st = fp_enroller_new(ctx.session, NULL, &eo, &en))) {
        rc = cli_error("enroll", st);
        goto out;
    }
    enroll_ctx c = {en, {0}, isatty(2)};
    rc = for_frames(&o, enroll_frame, &c, enroll_done);
    if (c.tty) fprintf(stderr, "\n");
    if (rc) goto out;
    fp_enroll_result r;
    st = fp_enroller_commit(en, ctx.store, ctx.gallery, &ctx.calib, o.user, o.name, &r);
    if (o.json) {
        json_t *rej = json_object();
        for (int k = 0; k < FP_REJECT_COUNT; k++) json_object_set_new(rej, fp_reject_name((fp_reject)k), json_integer(r.status.rejected[k]));
        json_t *j = json_pack("{s:s,s:b,s:i,s:i,s:i,s:o,s:{s:i,s:i,s:i},s:f}", "user", o.user, "enrolled", r.enrolled,
                              "frames_seen", r.status.seen, "frames_kept", r.status.kept, "target", r.status.target,
                              "frames_rejected", rej, "poses", "frontal", r.status.kept_frontal, "left",
                              r.status.kept_left, "right", r.status.kept_right, "template_spread", (double)r.template_spread);
        if (r.lookalike_user[0])
            json_object_set_new(j, "lookalike", json_pack("{s:s,s:f}", "user", r.lookalike_user, "score", (double)r.lookalike_score));
        if (st) json_object_set_new(j, "error", json_string(fp_last_error()));
        char *txt = json_dumps(j, JSON_INDENT(2));
        puts(txt);
        free(txt);
        json_decref(j);
    }
    if (st) {
        rc = cli_error("enroll", st);
        goto out;
    }
    if (!o.json)
        printf("enrolled %s: %d good frames of %d (frontal %d, left %d, right %d)%s%s\n", o.user, r.status.kept,
               r.status.seen, r.status.kept_frontal, r.status.kept_left, r.status.kept_right,
               r.lookalike_user[0] ? "; look-alike of " : "", r.lookalike_user);
out:
    fp_enroller_free(en);
    id_ctx_close(&ctx);
    free(o.images);
    return rc;
}

/* ---- facepay identify ---- */
typedef struct ident_ctx {
    fp_identifier *id;
} ident_ctx;

static int ident_frame(void *ctx, const fp_image *img, double t, const char *source) {
    fp_status st = fp_identifier_add_frame(((ident_ctx *)ctx)->id, img, t);
    return st ? cli_error(source, st) : 0;
}

static int never_done(void *ctx) {
    (void)ctx;
    return 0;
}

int cmd_identify(int argc, char **argv) {
    static const char usage[] =
        "usage: facepay identify --db DB [--key FILE] [--calibration FILE] [--max-frames N (60)]\n"
        "                        [--require-blink] [--json] (IMAGE... | --video FILE | --camera /dev/videoN)\n"
        "Prints {\"decision\":\"match\"|\"no_match\"|\"uncertain\",\"user\",\"score\",\"margin\",\"frames_used\",\n"
        "\"frames_rejected\":{reason:count},\"liveness\":{\"blink\",\"score\"},...}; exit 0 for any decision.\n";
    id_opts o;
    int rc = parse(argc, argv, &o, usage);
    if (rc) {
        free(o.images);
        return rc == 1 ? 0 : rc;
    }
    id_ctx ctx;
    fp_identifier *id = NULL;
    fp_status st;
    if ((rc = id_ctx_open(&o, &ctx))) goto out;
    fp_identify_options io = fp_identify_options_default();
    io.require_blink = o.require_blink;
    io.max_frames = o.max_frames;
    if ((st = fp_identifier_new(ctx.session, ctx.gallery, &ctx.calib, NULL, &io, &id))) {
        rc = cli_error("identify", st);
        goto out;
    }
    ident_ctx c = {id};
    if ((rc = for_frames(&o, ident_frame, &c, never_done))) goto out;
    fp_identify_result r;
    if ((st = fp_identifier_decide(id, &r))) {
        rc = cli_error("identify", st);
        goto out;
    }
    json_t *rej = json_object();
    for (int k = 0; k < FP_REJECT_COUNT; k++)
        if (r.frames_rejected[k]) json_object_set_new(rej, fp_reject_name((fp_reject)k), json_integer(r.frames_rejected[k]));
    json_t *j = json_pack("{s:s,s:s?,s:f,s:f,s:f,s:b,s:i,s:i,s:i,s:o,s:{s:b,s:i,s:f},s:I,s:s}", "decision",
                          fp_decision_name(r.decision), "user", r.user_id[0] ? r.user_id : NULL,
                          "score", isfinite(r.score) ? (double)r.score : -1.0, "margin", (double)r.margin,
                          "threshold", (double)r.threshold, "beyond_calibration", r.beyond_calibration,
                          "frames_seen", r.frames_seen, "frames_used", r.frames_used, "votes", r.votes,
                          "frames_rejected", rej, "liveness", "blink", r.blink, "blinks", r.blinks, "score",
                          (double)r.liveness_score, "gallery_size", (json_int_t)fp_gallery_size(ctx.gallery), "reason", r.reason);
    char *txt = json_dumps(j, o.json ? JSON_INDENT(2) : JSON_COMPACT);
    puts(txt);
    free(txt);
    json_decref(j);
out:
    fp_identifier_free(id);
    id_ctx_close(&ctx);
    free(o.images);
    return rc;
}

/* ---- facepay user ---- */
static int print_user(void *ctx, const fp_user *u) {
    (void)ctx;
    static const char *const status[] = {"active", "locked", "deleted"};
    printf("%-24s %-8s %3d templates  %s\n", u->id, u->status >= 0 && u->status <= 2 ? status[u->status] : "?",
           u->n_templates, u->name);
    return 0;
}

int cmd_user(int argc, char **argv) {
    static const char usage[] = "usage: facepay user list --db DB [--key FILE]\n"
                                "       facepay user delete --db DB --user ID [--vacuum] [--key FILE]\n"
                                "delete erases the user's templates, mean template and look-alike pairs (GDPR);\n"
                                "--vacuum also rebuilds the file so no trace of the ciphertexts remains.\n";
    if (argc < 2) {
        printf("%s", usage);
        return 2;
    }
    id_opts o;
    int rc = parse(argc - 1, argv + 1, &o, usage);
    if (rc) {
        free(o.images);
        return rc == 1 ? 0 : rc;
    }
    fp_store *s = NULL;
    if ((rc = open_store(&o, &s))) {
        free(o.images);
        return rc;
    }
    fp_status st = FP_OK;
    if (!strcmp(argv[1], "list")) st = fp_store_foreach_user(s, print_user, NULL);
    else if (!strcmp(argv[1], "delete") && o.user) {
        st = fp_store_user_delete(s, o.user, o.vacuum);
        if (!st) printf("deleted %s: templates and mean template erased%s\n", o.user, o.vacuum ? ", file rebuilt" : "");
    } else {
        printf("%s", usage);
        rc = 2;
    }
    if (st) rc = cli_error(o.user ? o.user : "user", st);
    fp_store_close(s);
    free(o.images);
    return rc;
}

/* ---- facepay audit ---- */
int cmd_audit(int argc, char **argv) {
    static const char usage[] = "usage: facepay audit verify --db DB [--key FILE]\n"
                                "Walks the hash-chained evidence records (and the ledger self-check) and reports the\n"
                                "first edited or deleted record. Exit 0 when everything verifies, 1 otherwise.\n";
    if (argc < 2 || strcmp(argv[1], "verify")) {
        printf("%s", usage);
        return argc >= 2 && !strcmp(argv[1], "--help") ? 0 : 2;
    }
    id_opts o;
    int rc = parse(argc - 1, argv + 1, &o, usage);
    free(o.images);
    if (rc) return rc == 1 ? 0 : rc;
    fp_store *s = NULL;
    if ((rc = open_store(&o, &s))) return rc;
    fp_audit_report ar;
    fp_ledger_report lr;
    fp_status st = fp_audit_verify(s, &ar);
    if (!st) st = fp_ledger_check(s, &lr);
    fp_store_close(s);
    if (st) return cli_error("audit", st);
    printf("evidence chain: %lld record(s): %s%s%s\n", (long long)ar.records, ar.ok ? "ok" : "BROKEN: ", ar.ok ? "" : ar.message,
           "");
    printf("ledger: %lld accounts, %lld transactions, %lld postings: %s%s\n", (long long)lr.accounts, (long long)lr.txns,
           (long long)lr.postings, lr.ok ? "ok" : "BROKEN: ", lr.ok ? "" : lr.message);
    return ar.ok && lr.ok ? 0 : 1;
}
