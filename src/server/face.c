/*
 * face.c - the face work behind the payment and enrollment routes, on a worker's fp_session.
 *
 * Payment: a short capture (at most `identify_frames` frames, e.g. a terminal's 5 still frames) is
 * analysed once, fully (unflipped embedding: see below; passive liveness), and each analysis goes both to the challenge
 * evaluation and to the identifier (fp_identifier_add_faces: gates, 1:N search, vote). A long challenge
 * capture (100-200 frames at 10-25 fps) gets a cheaper first pass (faces, pose, quality, eye/mouth
 * cues, and on every third frame an unflipped embedding for the challenge's identity-stability
 * check); then the identifier analyses `identify_frames` of the good frames, spread over the capture,
 * itself: a handful of good frames is what the vote needs, and fully analysing every frame of a long
 * capture would cost more than the second pass on a few. The thumbnail kept as evidence is the face
 * of the most frontal good frame.
 *
 * Enrollment: frames (or a video) go through fp_enroller. fp_enroller_commit creates the store
 * user itself, but a payment customer must exist (with a wallet) before its face is enrolled, so
 * the commit goes into a scratch in-memory store: it still runs the look-alike check against the
 * live gallery and computes the template; the kept templates are then copied to the real store
 * under the existing user, replacing the old ones.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "server/internal.h"

#define THUMB_SIDE 128 /* evidence thumbnails: enough to recognise a face, small enough to keep */

void srv_frame_hash(const fp_image *img, uint8_t out[16]) {
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 16);
    int32_t wh[2] = {img->width, img->height};
    crypto_generichash_update(&st, (const unsigned char *)wh, sizeof wh);
    crypto_generichash_update(&st, img->rgb, (size_t)img->width * (size_t)img->height * 3);
    crypto_generichash_final(&st, out, 16);
}

void srv_pay_analysis_free(srv_pay_analysis *a) {
    if (!a) return;
    free(a->thumbnail);
    a->thumbnail = NULL;
}

/* The face box enlarged by half on each axis, clipped, resized to at most THUMB_SIDE, as JPEG. */
static fp_status make_thumbnail(const fp_image *img, const float box[4], uint8_t **jpeg, size_t *len) {
    float cx = box[0] + box[2] / 2, cy = box[1] + box[3] / 2, side = 1.5f * (box[2] > box[3] ? box[2] : box[3]);
    int x0 = (int)floorf(cx - side / 2), y0 = (int)floorf(cy - side / 2);
    int x1 = (int)ceilf(cx + side / 2), y1 = (int)ceilf(cy + side / 2);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > img->width) x1 = img->width;
    if (y1 > img->height) y1 = img->height;
    if (x1 - x0 < 8 || y1 - y0 < 8) return FP_ERR_INVALID_ARG;
    fp_image crop = {x1 - x0, y1 - y0, malloc((size_t)(x1 - x0) * (size_t)(y1 - y0) * 3)};
    if (!crop.rgb) return FP_ERR_NOMEM;
    for (int y = y0; y < y1; y++)
        memcpy(crop.rgb + (size_t)(y - y0) * crop.width * 3, img->rgb + ((size_t)y * img->width + x0) * 3,
               (size_t)crop.width * 3);
    fp_image small = {0, 0, NULL};
    const fp_image *src = &crop;
    fp_status st = FP_OK;
    int big = crop.width > crop.height ? crop.width : crop.height;
    if (big > THUMB_SIDE) {
        int w = (int)lroundf((float)crop.width * THUMB_SIDE / big), h = (int)lroundf((float)crop.height * THUMB_SIDE / big);
        st = fp_image_resize(&crop, w < 1 ? 1 : w, h < 1 ? 1 : h, &small);
        src = &small;
    }
    if (!st) st = fp_image_encode_jpeg(src, 80, jpeg, len);
    fp_image_release(&small);
    fp_image_release(&crop);
    return st;
}

typedef struct frame_info {
    int n_faces;
    int good;         /* exactly one face passing the quality and pose gates */
    float frontal;    /* |yaw| + |pitch| */
    float face_px;
    float box[4];
    fp_quality quality;
} frame_info;

fp_status srv_analyze_payment(fp_server *s, fp_session *ses, const fp_image *imgs, const double *t_ms, int n,
                              const fp_challenge *c, srv_pay_analysis *out) {
    memset(out, 0, sizeof *out);
    frame_info *fi = calloc((size_t)n, sizeof *fi);
    fp_liveness_frame *lf = calloc((size_t)n, sizeof *lf);
    fp_face *faces = malloc(sizeof *faces * 2);
    int *pick = malloc(sizeof(int) * (size_t)n);
    fp_identifier *idf = NULL;
    fp_status st = FP_OK;
    if (!fi || !lf || !faces || !pick) {
        st = FP_ERR_NOMEM;
        goto out;
    }
    /* the identifier's analysis: only the passive models that make liveness.score, and unflipped
     * probe embeddings. The templates stay flip-averaged (enrollment); measured on LFW folds 1-5, all
     * 37.9 M ordered impostor pairs, an unflipped probe against flip-averaged templates has FAR 9.95e-6
     * at the calibrated 1e-5 threshold (flipped: 9.98e-6) and single-frame TAR 95.28 % (95.53 %), for
     * one MobileFaceNet run per frame instead of two: the vote over frames covers the 0.25 points. */
    fp_analyze_options ia = fp_analyze_options_default();
    ia.attributes = 0;
    ia.passive_liveness = 2;
    ia.flip_embedding = 0;
    fp_identify_options io = fp_identify_options_default();
    int k = s->o.identify_frames;
    io.max_frames = k;
    if ((st = fp_identifier_new(ses, s->gallery, &s->calib, &ia, &io, &idf))) goto out;
    /* a short capture goes to the identifier whole, so its frames are analysed once, fully; a long
     * challenge capture gets a cheaper first pass and a second one on the frames picked below */
    int one_pass = n <= k;
    fp_analyze_options ao = ia;
    ao.max_faces = 2;
    if (!one_pass) ao.passive_liveness = 0;
    for (int i = 0; i < n; i++) {
        int nf = 0;
        /* the challenge's identity-stability check needs embeddings, but not of every frame: every
         * third one (8 a second at 25 fps) catches a change of person and saves a quarter of the time */
        ao.embedding = one_pass || (c != NULL && i % 3 == 0);
        if ((st = fp_analyze(ses, &imgs[i], &ao, faces, 2, &nf, NULL))) goto out;
        if (one_pass && (st = fp_identifier_add_faces(idf, faces, nf, t_ms[i]))) goto out;
        fp_liveness_frame_from_face(nf ? &faces[0] : NULL, nf, t_ms[i], &lf[i]);
        fi[i].n_faces = nf;
        if (nf >= 1) {
            fi[i].good = nf == 1 && faces[0].quality.pass;
            fi[i].frontal = fabsf(faces[0].pose.yaw) + fabsf(faces[0].pose.pitch);
            fi[i].face_px = faces[0].quality.face_px;
            memcpy(fi[i].box, faces[0].box, sizeof fi[i].box);
            fi[i].quality = faces[0].quality;
        }
        out->frames_with_one_face += nf == 1;
    }
    if (c) {
        if ((st = fp_challenge_evaluate(c, NULL, lf, n, &out->challenge))) goto out;
        out->challenge_ran = 1;
    }
    int n_good = 0;
    for (int i = 0; i < n; i++) n_good += fi[i].good;
    if (!one_pass) {
        /* frames for the identifier: k good ones spread evenly over the capture, in time order */
        char *chosen = calloc((size_t)n, 1);
        int n_pick = 0;
        if (!chosen) {
            st = FP_ERR_NOMEM;
            goto out;
        }
        if (n_good > k) {
            for (int j = 0, g = 0, i = 0; i < n && j < k; i++)
                if (fi[i].good) {
                    if (g == (int)((long)j * n_good / k)) {
                        chosen[i] = 1;
                        j++;
                    }
                    g++;
                }
        } else { /* too few good ones: topped up with others, which the identifier rejects and counts */
            for (int i = 0; i < n; i++) chosen[i] = (char)fi[i].good;
            for (int i = 0, have = n_good; i < n && have < k; i++)
                if (!chosen[i]) {
                    chosen[i] = 1;
                    have++;
                }
        }
        for (int i = 0; i < n; i++)
            if (chosen[i]) pick[n_pick++] = i;
        free(chosen);
        for (int j = 0; j < n_pick; j++)
            if ((st = fp_identifier_add_frame(idf, &imgs[pick[j]], t_ms[pick[j]]))) goto out;
    }
    if ((st = fp_identifier_decide(idf, &out->id))) goto out;
    /* evidence: the most frontal good frame (else the largest single face) */
    int best = -1;
    for (int i = 0; i < n; i++)
        if (fi[i].good && (best < 0 || fi[i].frontal < fi[best].frontal)) best = i;
    if (best < 0)
        for (int i = 0; i < n; i++)
            if (fi[i].n_faces == 1 && (best < 0 || fi[i].face_px > fi[best].face_px)) best = i;
    if (best >= 0) {
        out->has_quality = 1;
        out->quality = fi[best].quality;
        if (make_thumbnail(&imgs[best], fi[best].box, &out->thumbnail, &out->thumbnail_len) != FP_OK) {
            free(out->thumbnail);
            out->thumbnail = NULL;
            out->thumbnail_len = 0;
        }
        if (out->thumbnail_len > FP_PAY_THUMB_MAX) {
            free(out->thumbnail);
            out->thumbnail = NULL;
            out->thumbnail_len = 0;
        }
    }
out:
    fp_identifier_free(idf);
    free(fi);
    if (lf) sodium_memzero(lf, sizeof *lf * (size_t)n); /* embeddings are biometric data */
    free(lf);
    if (faces) sodium_memzero(faces, sizeof *faces * 2);
    free(faces);
    free(pick);
    return st;
}

/* ---- enrollment ---- */

typedef struct id_list {
    int64_t *ids;
    int n, cap;
    int oom;
} id_list;

static int collect_template(void *ctx, const fp_template_info *t) {
    id_list *l = ctx;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        int64_t *p = realloc(l->ids, sizeof *p * (size_t)cap);
        if (!p) {
            l->oom = 1;
            return 1;
        }
        l->ids = p;
        l->cap = cap;
    }
    l->ids[l->n++] = t->id;
    return 0;
}

/* Puts the user's gallery row back to what the real store holds (after a failed copy). */
static void gallery_restore(fp_server *s, const char *user_id) {
    float mean[FP_EMBEDDING_DIM];
    if (fp_store_user_mean(s->store, user_id, FP_EMBEDDER_ID, mean, FP_EMBEDDING_DIM) == FP_OK)
        fp_gallery_add(s->gallery, user_id, mean, FP_EMBEDDING_DIM);
    else
        fp_gallery_remove(s->gallery, user_id);
    sodium_memzero(mean, sizeof mean);
}

static void fail_out(srv_enroll_outcome *o, fp_status st, int refused) {
    o->status = st;
    o->refused = refused;
    snprintf(o->message, sizeof o->message, "%s", fp_last_error());
}

/* Copies the scratch store's templates of user_id into the real store, then drops the user's older
 * templates there (new first, so a failure half-way never leaves the user without a template). */
static fp_status copy_templates(fp_server *s, fp_store *scratch, const char *user_id) {
    id_list old = {0}, fresh = {0};
    fp_status st = fp_store_foreach_template(s->store, user_id, FP_EMBEDDER_ID, collect_template, &old);
    if (!st) st = fp_store_foreach_template(scratch, user_id, FP_EMBEDDER_ID, collect_template, &fresh);
    if (!st && (old.oom || fresh.oom)) st = FP_ERR_NOMEM;
    float emb[FP_EMBEDDING_DIM];
    for (int i = 0; i < fresh.n && !st; i++) {
        fp_template_info info;
        st = fp_store_template_get(scratch, fresh.ids[i], &info, emb, FP_EMBEDDING_DIM);
        if (!st) st = fp_store_template_add(s->store, user_id, FP_EMBEDDER_ID, emb, info.dim, info.quality, info.source, NULL);
    }
    sodium_memzero(emb, sizeof emb);
    for (int i = 0; i < old.n && !st; i++) st = fp_store_template_delete(s->store, old.ids[i]);
    free(old.ids);
    free(fresh.ids);
    return st;
}

void srv_enroll(fp_server *s, fp_session *ses, const char *user_id, const fp_image *imgs, const double *t_ms, int n,
                const char *video_path, int target, srv_enroll_outcome *out) {
    memset(out, 0, sizeof *out);
    fp_analyze_options ao = fp_analyze_options_default();
    ao.attributes = 0;
    fp_enroll_options eo = fp_enroll_options_default();
    eo.target = target;
    fp_enroller *e = NULL;
    fp_status st = fp_enroller_new(ses, &ao, &eo, &e);
    if (st) {
        fail_out(out, st, 0);
        return;
    }
    fp_enroll_status es;
    memset(&es, 0, sizeof es);
    if (video_path) {
        fp_video *v = NULL;
        if ((st = fp_video_open(video_path, &v))) {
            fail_out(out, st == FP_ERR_IO ? FP_ERR_FORMAT : st, 0);
            fp_enroller_free(e);
            return;
        }
        for (int i = 0; i < s->o.enroll_video_max_frames && !es.done; i++) {
            fp_image img;
            double t;
            int eof = 0;
            if ((st = fp_video_next(v, &img, &t, &eof)) || eof) break;
            st = fp_enroller_add_frame(e, &img, t, "video", &es);
            fp_image_release(&img);
            if (st) break;
        }
        fp_video_close(v);
    } else {
        for (int i = 0; i < n && !es.done && !st; i++) {
            char src[32];
            snprintf(src, sizeof src, "frame:%d", i);
            st = fp_enroller_add_frame(e, &imgs[i], t_ms[i], src, &es);
        }
    }
    if (st) {
        fail_out(out, st, 0);
        fp_enroller_free(e);
        return;
    }
    /* scratch store for fp_enroller_commit (see the top of the file); a random key, never stored */
    fp_key k;
    randombytes_buf(k.bytes, sizeof k.bytes);
    fp_store *scratch = NULL;
    st = fp_store_open(":memory:", &k, &scratch);
    fp_key_wipe(&k);
    if (st) {
        fail_out(out, st, 0);
        fp_enroller_free(e);
        return;
    }
    pthread_mutex_lock(&s->enroll_lock);
    st = fp_enroller_commit(e, scratch, s->gallery, &s->calib, user_id, "", &out->result);
    if (st) {
        /* commit refuses with FP_ERR_INVALID_ARG (nothing usable, competing faces, look-alike) */
        fail_out(out, st, st == FP_ERR_INVALID_ARG);
    } else if ((st = copy_templates(s, scratch, user_id))) {
        fail_out(out, st, 0);
        gallery_restore(s, user_id);
    } else {
        /* the gallery row is the real store's mean, exactly what a restart will load */
        gallery_restore(s, user_id);
        char detail[160];
        snprintf(detail, sizeof detail, "http: kept %d of %d frames, spread %.3f", out->result.status.kept,
                 out->result.status.seen, out->result.template_spread);
        fp_store_audit(s->store, user_id, "enrolled", detail);
    }
    pthread_mutex_unlock(&s->enroll_lock);
    fp_store_close(scratch);
    fp_enroller_free(e);
}
