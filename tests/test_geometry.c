/*
 * test_geometry.c - the pure geometry of the face pipeline (src/face/geometry.h): the canonical face
 * model reader (real file, packed re-encoding, garbled input), the 3x3 SVD and similarity fit, head
 * pose on synthetic rotations of the canonical face and on the reference's golden meshes, the 68-point
 * subset, the liveness cues and the quality gates. Needs the model cache for the canonical file and
 * ../shared for the golden meshes; each test skips cleanly without them.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "face/geometry.h"
#include "image/image.h"
#include "util/testutil.h"

static const char *const golden_names[] = {"trump1", "trump2", "sample1"};

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                     */
/* ------------------------------------------------------------------------------------------ */
static uint32_t lcg_state = 12345;
static double urand(void) { /* deterministic 0..1 */
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return (lcg_state >> 8) / 16777216.0;
}

static fp_canonical *load_canonical(void) {
    const char *path = tu_model_path(FP_CANONICAL_FILE);
    TU_REQUIRE(path, FP_CANONICAL_FILE " (run scripts/setup.sh)");
    fp_canonical *c = malloc(sizeof *c);
    assert_non_null(c);
    fp_status st = fp_canonical_load_file(path, c);
    if (st) fprintf(stderr, "%s\n", fp_last_error());
    assert_int_equal(st, FP_OK);
    return c;
}

typedef struct golden {
    float mesh[FP_MESH_POINTS][3];
    double pose[3]; /* pitch, yaw, roll as the reference reports them */
    float box[4];   /* x, y, w, h */
    float iris[2][5][2];
    float contour[2][71][2];
    double align[6];
    float presence;
    char image[256];
} golden;

static int json_points(json_t *arr, int n, int dim, float *out) {
    if (!json_is_array(arr) || (int)json_array_size(arr) < n) return 0;
    for (int i = 0; i < n; i++) {
        json_t *p = json_array_get(arr, (size_t)i);
        for (int k = 0; k < dim; k++) {
            json_t *v = json_array_get(p, (size_t)k);
            if (!json_is_number(v)) return 0;
            out[i * dim + k] = (float)json_number_value(v);
        }
    }
    return 1;
}

/* NULL when ../shared is absent (caller skips). */
static golden *load_golden(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "reference/golden/%s/manifest.json", name);
    const char *path = tu_shared_path(rel);
    if (!path) return NULL;
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    assert_non_null(root);
    golden *g = calloc(1, sizeof *g);
    assert_non_null(g);
    json_t *res = json_object_get(root, "result");
    json_t *face = json_array_get(json_object_get(res, "faces"), 0);
    assert_true(json_points(json_object_get(face, "mesh"), FP_MESH_POINTS, 3, &g->mesh[0][0]));
    json_t *pose = json_object_get(face, "pose");
    g->pose[0] = json_number_value(json_object_get(pose, "pitch"));
    g->pose[1] = json_number_value(json_object_get(pose, "yaw"));
    g->pose[2] = json_number_value(json_object_get(pose, "roll"));
    float corners[4];
    json_t *box = json_object_get(json_object_get(face, "detection"), "box");
    for (int k = 0; k < 4; k++)
        corners[k] = (float)json_number_value(json_array_get(box, (size_t)k));
    g->box[0] = corners[0];
    g->box[1] = corners[1];
    g->box[2] = corners[2] - corners[0];
    g->box[3] = corners[3] - corners[1];
    json_t *iris = json_object_get(face, "iris");
    const char *eyes[2] = {"eyeA", "eyeB"};
    for (int e = 0; e < 2; e++) {
        json_t *eye = json_object_get(iris, eyes[e]);
        float tmp[71 * 3];
        assert_true(json_points(json_object_get(eye, "iris"), 5, 3, tmp));
        for (int i = 0; i < 5; i++) {
            g->iris[e][i][0] = tmp[i * 3];
            g->iris[e][i][1] = tmp[i * 3 + 1];
        }
        assert_true(json_points(json_object_get(eye, "contour"), 71, 3, tmp));
        for (int i = 0; i < 71; i++) {
            g->contour[e][i][0] = tmp[i * 3];
            g->contour[e][i][1] = tmp[i * 3 + 1];
        }
    }
    json_t *am = json_object_get(face, "alignMatrix");
    for (int k = 0; k < 6; k++)
        g->align[k] = json_number_value(json_array_get(am, (size_t)k));
    g->presence = (float)json_number_value(json_object_get(face, "faceScore"));
    snprintf(g->image, sizeof g->image, "%s", json_string_value(json_object_get(root, "image")));
    json_decref(root);
    return g;
}

/* The canonical face posed by `pose`, seen by an orthographic camera: scale k px/cm, centred on
 * (cx, cy), y flipped (image y down), z = -k Z (+ an arbitrary depth offset the fit must ignore). */
static void project_canonical(const fp_canonical *c, const fp_pose *pose, double k, double cx,
                              double cy, float mesh[FP_MESH_POINTS][3]) {
    double R[9];
    fp_pose_to_matrix(pose, R);
    for (int i = 0; i < FP_MESH_POINTS; i++) {
        const float *v = c->vertex[i];
        double p[3];
        for (int a = 0; a < 3; a++)
            p[a] = R[a * 3] * v[0] + R[a * 3 + 1] * v[1] + R[a * 3 + 2] * v[2];
        mesh[i][0] = (float)(cx + k * p[0]);
        mesh[i][1] = (float)(cy - k * p[1]);
        mesh[i][2] = (float)(-k * p[2] + 37.0);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* canonical model                                                                             */
/* ------------------------------------------------------------------------------------------ */
static void test_canonical_file(void **state) {
    (void)state;
    fp_canonical *c = load_canonical();
    assert_int_equal(c->n_triangles, 898);
    assert_int_equal(c->n_basis, 33);
    assert_int_equal(c->input_source, 1);
    double wsum = 0;
    for (int i = 0; i < c->n_basis; i++)
        wsum += c->basis_weight[i];
    assert_true(fabs(wsum - 1.055) < 1e-3);
    assert_int_equal(c->basis_id[0], 4);
    assert_true(fabsf(c->basis_weight[0] - 0.0709099f) < 1e-6f);
    /* nose tip in front, chin below, forehead above, subject's left (263) at +x: the frame of
     * geometry.h (x to the subject's left, y up, z toward the camera). */
    assert_true(fabsf(c->vertex[1][0]) < 1e-6f && c->vertex[1][2] > 7.4f);
    assert_true(c->vertex[152][1] < -9 && c->vertex[10][1] > 8);
    assert_true(c->vertex[263][0] > 4 && c->vertex[33][0] < -4);
    /* mirror symmetric: 33 <-> 263, 234 <-> 454 */
    assert_true(fabsf(c->vertex[33][0] + c->vertex[263][0]) < 1e-5f);
    assert_true(fabsf(c->vertex[234][1] - c->vertex[454][1]) < 1e-5f);
    for (int t = 0; t < c->n_triangles; t++)
        for (int k = 0; k < 3; k++)
            assert_true(c->triangle[t][k] < FP_MESH_POINTS);
    free(c);
}

/* A tiny protobuf writer, to feed the reader the packed encoding and hand-made damage. */
typedef struct pbw {
    uint8_t *b;
    size_t n, cap;
} pbw;

static void w_byte(pbw *w, uint8_t v) {
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 256;
        w->b = realloc(w->b, w->cap);
        assert_non_null(w->b);
    }
    w->b[w->n++] = v;
}
static void w_varint(pbw *w, uint64_t v) {
    while (v >= 0x80) {
        w_byte(w, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    w_byte(w, (uint8_t)v);
}
static void w_tag(pbw *w, unsigned field, int wire) {
    w_varint(w, (uint64_t)field << 3 | (unsigned)wire);
}
static void w_f32(pbw *w, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    for (int i = 0; i < 4; i++)
        w_byte(w, (uint8_t)(u >> (8 * i)));
}
static void w_bytes(pbw *w, unsigned field, const pbw *sub) {
    w_tag(w, field, 2);
    w_varint(w, sub->n);
    for (size_t i = 0; i < sub->n; i++)
        w_byte(w, sub->b[i]);
}

/* Packed re-encoding, basis before mesh, unknown fields of every wire type sprinkled in. */
static pbw encode_packed(const fp_canonical *c, int n_vertices, int vertex_type) {
    pbw mesh = {0}, vb = {0}, ib = {0}, out = {0};
    if (vertex_type) {
        w_tag(&mesh, 1, 0);
        w_varint(&mesh, (uint64_t)vertex_type);
    }
    for (int v = 0; v < n_vertices; v++) {
        for (int k = 0; k < 3; k++)
            w_f32(&vb, c->vertex[v][k]);
        w_f32(&vb, c->uv[v][0]);
        w_f32(&vb, c->uv[v][1]);
    }
    for (int t = 0; t < c->n_triangles; t++)
        for (int k = 0; k < 3; k++)
            w_varint(&ib, c->triangle[t][k]);
    w_bytes(&mesh, 3, &vb);
    w_tag(&mesh, 9, 1); /* unknown fixed64 */
    for (int i = 0; i < 8; i++)
        w_byte(&mesh, 0xAB);
    w_bytes(&mesh, 4, &ib);
    for (int i = 0; i < c->n_basis; i++) {
        pbw ref = {0};
        w_tag(&ref, 1, 0);
        w_varint(&ref, c->basis_id[i]);
        w_tag(&ref, 7, 5); /* unknown fixed32 */
        w_f32(&ref, 1.0f);
        w_tag(&ref, 2, 5);
        w_f32(&ref, c->basis_weight[i]);
        w_bytes(&out, 2, &ref);
        free(ref.b);
    }
    w_tag(&out, 15, 0); /* unknown varint */
    w_varint(&out, 123456789);
    w_bytes(&out, 1, &mesh);
    w_tag(&out, 3, 0);
    w_varint(&out, (uint64_t)c->input_source);
    free(mesh.b);
    free(vb.b);
    free(ib.b);
    return out;
}

static void test_canonical_packed(void **state) {
    (void)state;
    fp_canonical *c = load_canonical();
    fp_canonical *d = malloc(sizeof *d);
    assert_non_null(d);
    pbw enc = encode_packed(c, FP_MESH_POINTS, 0);
    assert_int_equal(fp_canonical_load(enc.b, enc.n, d), FP_OK);
    assert_memory_equal(c, d, sizeof *c);
    free(enc.b);
    /* 467 vertices: wrong model; vertex type 1 (VERTEX_PT is 0): unsupported */
    enc = encode_packed(c, FP_MESH_POINTS - 1, 0);
    assert_int_equal(fp_canonical_load(enc.b, enc.n, d), FP_ERR_FORMAT);
    free(enc.b);
    enc = encode_packed(c, FP_MESH_POINTS, 1);
    assert_int_equal(fp_canonical_load(enc.b, enc.n, d), FP_ERR_UNSUPPORTED);
    free(enc.b);
    free(d);
    free(c);
}

static void check_invariants(const fp_canonical *d) {
    assert_true(d->n_basis >= 3 && d->n_basis <= FP_MESH_POINTS);
    assert_true(d->n_triangles > 0 && d->n_triangles <= FP_CANONICAL_MAX_TRIANGLES);
    for (int i = 0; i < d->n_basis; i++)
        assert_true(d->basis_id[i] < FP_MESH_POINTS);
    for (int t = 0; t < d->n_triangles; t++)
        for (int k = 0; k < 3; k++)
            assert_true(d->triangle[t][k] < FP_MESH_POINTS);
    for (int v = 0; v < FP_MESH_POINTS; v++)
        for (int k = 0; k < 3; k++)
            assert_true(isfinite(d->vertex[v][k]));
}

static void test_canonical_garbled(void **state) {
    (void)state;
    const char *path = tu_model_path(FP_CANONICAL_FILE);
    TU_REQUIRE(path, FP_CANONICAL_FILE);
    size_t len;
    uint8_t *buf = tu_read_all(path, &len);
    assert_non_null(buf);
    fp_canonical *d = malloc(sizeof *d);
    assert_non_null(d);

    /* Every prefix. Protobuf has no end marker, so a cut exactly between two top-level fields after
     * the mesh and 3+ basis entries is a valid shorter message; anything cut inside the mesh is not. */
    size_t ok = 0;
    for (size_t n = 0; n < len; n++) {
        fp_status st = fp_canonical_load(buf, n, d);
        assert_true(st == FP_OK || st == FP_ERR_FORMAT);
        if (st == FP_OK) {
            ok++;
            assert_true(n > 19050);
            check_invariants(d);
        }
    }
    assert_true(ok <= 33);

    /* Random damage: 1-3 bytes overwritten. Must never crash, read out of bounds or return junk. */
    uint8_t *m = malloc(len);
    assert_non_null(m);
    int n_ok = 0, n_fmt = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(m, buf, len);
        const int hits = 1 + (int)(urand() * 3);
        for (int h = 0; h < hits; h++) {
            /* bias toward the headers, where damage changes structure rather than a float */
            size_t at = urand() < 0.5 ? (size_t)(urand() * 8) : (size_t)(urand() * len);
            if (at >= len) at = len - 1;
            m[at] = (uint8_t)(urand() * 256);
        }
        fp_status st = fp_canonical_load(m, len, d);
        assert_true(st == FP_OK || st == FP_ERR_FORMAT || st == FP_ERR_UNSUPPORTED);
        if (st == FP_OK) {
            n_ok++;
            check_invariants(d);
        } else {
            n_fmt++;
        }
    }
    assert_true(n_fmt > 0);

    /* Hand-made damage. */
    static const uint8_t long_varint[] = {0x18, 0x80, 0x80, 0x80, 0x80, 0x80,
                                          0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    static const uint8_t huge_len[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00};
    static const uint8_t group[] = {0x0b, 0x0c};
    static const uint8_t field0[] = {0x00, 0x01};
    static const uint8_t bad_packed[] = {0x0a, 0x04, 0x1a,
                                         0x02, 0x00, 0x00};            /* 2 bytes of floats */
    static const uint8_t bad_index[] = {0x0a, 0x03, 0x20, 0xd4, 0x03}; /* index 468 */
    static const uint8_t wrong_wire[] = {0x08, 0x01};                  /* mesh as a varint */
    const struct {
        const uint8_t *b;
        size_t n;
    } cases[] = {{long_varint, sizeof long_varint},
                 {huge_len, sizeof huge_len},
                 {group, sizeof group},
                 {field0, sizeof field0},
                 {bad_packed, sizeof bad_packed},
                 {bad_index, sizeof bad_index},
                 {wrong_wire, sizeof wrong_wire}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(fp_canonical_load(cases[i].b, cases[i].n, d), FP_ERR_FORMAT);

    /* A NaN vertex value (the first x, stored unpacked right after the mesh header) */
    memcpy(m, buf, len);
    size_t at = 0;
    for (size_t i = 0; i + 5 <= len; i++)
        if (m[i] == 0x1d) { /* tag field 3, wire type 5 */
            at = i + 1;
            break;
        }
    assert_true(at > 0);
    const float nan = NAN;
    memcpy(m + at, &nan, 4);
    assert_int_equal(fp_canonical_load(m, len, d), FP_ERR_FORMAT);

    assert_int_equal(fp_canonical_load(NULL, 5, d), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_canonical_load(buf, len, NULL), FP_ERR_INVALID_ARG);
    assert_int_equal(fp_canonical_load_file("/nonexistent/x.binarypb", d), FP_ERR_IO);
    fprintf(stderr,
            "garbled: %zu valid prefixes (cut between fields), random damage %d ok / %d refused\n",
            ok, n_ok, n_fmt);
    free(m);
    free(d);
    free(buf);
}

/* ------------------------------------------------------------------------------------------ */
/* SVD and similarity fit                                                                      */
/* ------------------------------------------------------------------------------------------ */
static void check_svd(const double A[9]) {
    double U[9], S[3], V[9], scale = 0;
    fp_svd3(A, U, S, V);
    for (int k = 0; k < 9; k++)
        scale = fmax(scale, fabs(A[k]));
    assert_true(S[0] >= S[1] && S[1] >= S[2] && S[2] >= 0);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            double r = 0, uu = 0, vv = 0;
            for (int k = 0; k < 3; k++) {
                r += U[i * 3 + k] * S[k] * V[j * 3 + k];
                uu += U[k * 3 + i] * U[k * 3 + j];
                vv += V[k * 3 + i] * V[k * 3 + j];
            }
            assert_true(fabs(r - A[i * 3 + j]) <= 1e-12 * (scale + 1e-300) + 1e-300);
            assert_true(fabs(uu - (i == j)) < 1e-12);
            assert_true(fabs(vv - (i == j)) < 1e-12);
        }
}

static void test_svd3(void **state) {
    (void)state;
    for (int it = 0; it < 2000; it++) {
        double A[9];
        for (int k = 0; k < 9; k++)
            A[k] = urand() * 2 - 1;
        if (it % 4 == 1) /* rank 1 */
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++)
                    A[i * 3 + j] = A[i] * A[3 + j];
        if (it % 4 == 2) /* rank 2: third row = a mix of the first two */
            for (int j = 0; j < 3; j++)
                A[6 + j] = 0.3 * A[j] - 0.7 * A[3 + j];
        check_svd(A);
    }
    const double zero[9] = {0}, diag[9] = {2, 0, 0, 0, 2, 0, 0, 0, 2};
    const double reflect[9] = {-1, 0, 0, 0, 1, 0, 0, 0, 1},
                 big[9] = {1e8, 1, 0, 0, 1e-8, 0, 0, 0, 3};
    check_svd(zero);
    check_svd(diag);
    check_svd(reflect);
    check_svd(big);
}

static void test_similarity_fit(void **state) {
    (void)state;
    double src[40][3], dst[40][3], w[40], R[9], s, t[3], rms;
    const fp_pose p = {12, -33, 51};
    double Rt[9];
    fp_pose_to_matrix(&p, Rt);
    for (int i = 0; i < 40; i++) {
        for (int k = 0; k < 3; k++)
            src[i][k] = urand() * 10 - 5;
        for (int a = 0; a < 3; a++)
            dst[i][a] = 2.5 * (Rt[a * 3] * src[i][0] + Rt[a * 3 + 1] * src[i][1] +
                               Rt[a * 3 + 2] * src[i][2]) +
                        (a + 1) * 10;
        w[i] = urand();
    }
    assert_int_equal(
        fp_similarity_fit3((const double(*)[3])src, (const double(*)[3])dst, w, 40, R, &s, t, &rms),
        FP_OK);
    for (int k = 0; k < 9; k++)
        assert_true(fabs(R[k] - Rt[k]) < 1e-10);
    assert_true(fabs(s - 2.5) < 1e-10 && fabs(t[0] - 10) < 1e-9 && fabs(t[2] - 30) < 1e-9 &&
                rms < 1e-9);
    /* a mirrored target: the best proper rotation is returned, never a reflection */
    for (int i = 0; i < 40; i++)
        dst[i][0] = -dst[i][0];
    assert_int_equal(fp_similarity_fit3((const double(*)[3])src, (const double(*)[3])dst, NULL, 40,
                                        R, &s, t, &rms),
                     FP_OK);
    double det = R[0] * (R[4] * R[8] - R[5] * R[7]) - R[1] * (R[3] * R[8] - R[5] * R[6]) +
                 R[2] * (R[3] * R[7] - R[4] * R[6]);
    assert_true(fabs(det - 1) < 1e-10 && rms > 1);
    /* collinear points and bad input are refused */
    for (int i = 0; i < 40; i++)
        for (int k = 0; k < 3; k++)
            src[i][k] = i * (k + 1);
    assert_int_equal(fp_similarity_fit3((const double(*)[3])src, (const double(*)[3])dst, NULL, 40,
                                        R, &s, t, NULL),
                     FP_ERR_INVALID_ARG);
    assert_int_equal(fp_similarity_fit3((const double(*)[3])src, (const double(*)[3])dst, NULL, 2,
                                        R, &s, t, NULL),
                     FP_ERR_INVALID_ARG);
}

/* ------------------------------------------------------------------------------------------ */
/* head pose                                                                                   */
/* ------------------------------------------------------------------------------------------ */
static void test_pose_matrix(void **state) {
    (void)state;
    for (int it = 0; it < 1000; it++) {
        fp_pose p = {(float)(urand() * 160 - 80), (float)(urand() * 160 - 80),
                     (float)(urand() * 160 - 80)},
                q;
        double R[9];
        fp_pose_to_matrix(&p, R);
        fp_pose_from_matrix(R, &q);
        assert_true(fabsf(p.pitch - q.pitch) < 1e-3f && fabsf(p.yaw - q.yaw) < 1e-3f &&
                    fabsf(p.roll - q.roll) < 1e-3f);
    }
    /* the documented signs, in the camera frame (x right, y up, z toward the camera) */
    double R[9];
    fp_pose_to_matrix(&(fp_pose){0, 20, 0}, R);
    assert_true(R[2] > 0.3); /* yaw > 0: the nose axis (0,0,1) swings to +x, the image right */
    fp_pose_to_matrix(&(fp_pose){20, 0, 0}, R);
    assert_true(R[5] > 0.3); /* pitch > 0: the nose axis swings up (+y): chin up */
    fp_pose_to_matrix(&(fp_pose){0, 0, 20}, R);
    assert_true(R[3] < -0.3); /* roll > 0: the subject's left (+x) goes down: clockwise on screen */
}

static void test_head_pose_synthetic(void **state) {
    (void)state;
    fp_canonical *c = load_canonical();
    float(*mesh)[3] = malloc(sizeof(float) * FP_MESH_POINTS * 3);
    float(*front)[3] = malloc(sizeof(float) * FP_MESH_POINTS * 3);
    assert_non_null(mesh);
    assert_non_null(front);
    const fp_pose zero = {0, 0, 0};
    project_canonical(c, &zero, 20, 320, 240, front);
    const fp_pose cases[] = {{30, 0, 0},     {-30, 0, 0},    {0, 30, 0},    {0, -30, 0},
                             {0, 0, 30},     {0, 0, -30},    {30, 30, 30},  {-30, 30, -30},
                             {30, -30, -30}, {-30, -30, 30}, {20, -25, 15}, {-15, 10, 28},
                             {0, 0, 0}};
    double worst = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const fp_pose *p = &cases[i];
        project_canonical(c, p, 20 + 3 * i, 320 + 7 * i, 240 - 5 * i, mesh);
        fp_pose got, ref;
        float R[9];
        assert_int_equal(fp_head_pose((const float(*)[3])mesh, c, &got, R), FP_OK);
        assert_int_equal(fp_head_pose_reference((const float(*)[3])mesh, &ref), FP_OK);
        const double e = fmax(fabs(got.pitch - p->pitch),
                              fmax(fabs(got.yaw - p->yaw), fabs(got.roll - p->roll)));
        worst = fmax(worst, e);
        fprintf(stderr,
                "synthetic pitch %6.1f yaw %6.1f roll %6.1f -> fit %8.4f %8.4f %8.4f | reference "
                "formula %7.2f %7.2f %7.2f\n",
                p->pitch, p->yaw, p->roll, got.pitch, got.yaw, got.roll, ref.pitch, ref.yaw,
                ref.roll);
        assert_true(e < 0.5);
    }
    fprintf(stderr, "synthetic worst error %.2g deg\n", worst);

    /* Signs by what the image shows, not by the matrix algebra: */
    const double eye_y0 = (front[33][1] + front[263][1]) / 2, nose_up0 = eye_y0 - front[1][1];
    fp_pose got;
    project_canonical(c, &(fp_pose){0, 20, 0}, 20, 320, 240, mesh);
    assert_true(mesh[1][0] > (mesh[234][0] + mesh[454][0]) / 2 + 10); /* nose to the image right */
    assert_true(mesh[454][2] >
                mesh[234][2]); /* the subject's left cheek turned away (z larger = farther) */
    fp_head_pose((const float(*)[3])mesh, c, &got, NULL);
    assert_true(got.yaw > 19.9f);
    project_canonical(c, &(fp_pose){20, 0, 0}, 20, 320, 240, mesh);
    assert_true(((mesh[33][1] + mesh[263][1]) / 2 - mesh[1][1]) >
                nose_up0 + 10);                /* nose rises toward the eyes */
    assert_true(mesh[152][2] < front[152][2]); /* the chin comes toward the camera */
    fp_head_pose((const float(*)[3])mesh, c, &got, NULL);
    assert_true(got.pitch > 19.9f);
    project_canonical(c, &(fp_pose){0, 0, 20}, 20, 320, 240, mesh);
    assert_true(mesh[263][1] > mesh[33][1] + 20); /* image-right eye lower: clockwise on screen */
    fp_head_pose((const float(*)[3])mesh, c, &got, NULL);
    assert_true(got.roll > 19.9f);

    /* Landmark noise of +-1 px on a ~300 px face: still within a degree or so. */
    const fp_pose p = {10, -20, 5};
    project_canonical(c, &p, 20, 320, 240, mesh);
    for (int i = 0; i < FP_MESH_POINTS; i++)
        for (int k = 0; k < 3; k++)
            mesh[i][k] += (float)(urand() * 2 - 1);
    fp_head_pose((const float(*)[3])mesh, c, &got, NULL);
    fprintf(stderr, "noisy (+-1 px): want 10 -20 5, got %.2f %.2f %.2f\n", got.pitch, got.yaw,
            got.roll);
    assert_true(fabsf(got.pitch - 10) < 1.5f && fabsf(got.yaw + 20) < 1.5f &&
                fabsf(got.roll - 5) < 1.5f);

    /* Degenerate input is an error, not garbage. */
    memset(mesh, 0, sizeof(float) * FP_MESH_POINTS * 3);
    float R[9] = {0};
    assert_int_equal(fp_head_pose((const float(*)[3])mesh, c, &got, R), FP_ERR_INVALID_ARG);
    assert_true(isnan(got.pitch) && isnan(got.yaw) && isnan(got.roll) && isnan(R[0]));
    fp_canonical empty;
    memset(&empty, 0, sizeof empty);
    assert_int_equal(fp_head_pose((const float(*)[3])front, &empty, &got, NULL),
                     FP_ERR_INVALID_ARG);
    free(mesh);
    free(front);
    free(c);
}

/* rms residual of the weighted fit with the depth axis taken as -z (documented) or +z. */
static double fit_rms(const fp_canonical *c, const float mesh[FP_MESH_POINTS][3], double zsign) {
    double src[FP_MESH_POINTS][3], dst[FP_MESH_POINTS][3], w[FP_MESH_POINTS], R[9], s, t[3], rms;
    for (int i = 0; i < c->n_basis; i++) {
        const int id = c->basis_id[i];
        for (int k = 0; k < 3; k++)
            src[i][k] = c->vertex[id][k];
        dst[i][0] = mesh[id][0];
        dst[i][1] = -mesh[id][1];
        dst[i][2] = zsign * mesh[id][2];
        w[i] = c->basis_weight[i];
    }
    assert_int_equal(fp_similarity_fit3((const double(*)[3])src, (const double(*)[3])dst, w,
                                        c->n_basis, R, &s, t, &rms),
                     FP_OK);
    return rms / s; /* in canonical cm */
}

static void test_head_pose_golden(void **state) {
    (void)state;
    fp_canonical *c = load_canonical();
    int seen = 0;
    for (size_t i = 0; i < sizeof golden_names / sizeof golden_names[0]; i++) {
        golden *g = load_golden(golden_names[i]);
        if (!g) continue;
        seen++;
        fp_pose ref, fit;
        assert_int_equal(fp_head_pose_reference((const float(*)[3])g->mesh, &ref), FP_OK);
        const double dref = fmax(fabs(ref.pitch - g->pose[0]),
                                 fmax(fabs(ref.yaw - g->pose[1]), fabs(ref.roll - g->pose[2])));
        assert_true(dref < 1e-3);
        assert_int_equal(fp_head_pose((const float(*)[3])g->mesh, c, &fit, NULL), FP_OK);
        /* the reference's pitch and yaw have the opposite sign of fp_pose (geometry.h) */
        const double dp = fit.pitch - (-g->pose[0]), dy = fit.yaw - (-g->pose[1]),
                     dr = fit.roll - g->pose[2];
        const double rms_neg = fit_rms(c, (const float(*)[3])g->mesh, -1),
                     rms_pos = fit_rms(c, (const float(*)[3])g->mesh, +1);
        fprintf(stderr,
                "%-8s reference (pitch yaw roll) %7.3f %7.3f %7.3f  ours-formula diff %.1e | rigid "
                "fit %7.3f %7.3f %7.3f"
                "  vs (-pitch, -yaw, roll): %+5.2f %+5.2f %+5.2f | fit rms %.3f cm (z -> -z) vs "
                "%.3f cm (z -> +z)\n",
                golden_names[i], g->pose[0], g->pose[1], g->pose[2], dref, fit.pitch, fit.yaw,
                fit.roll, dp, dy, dr, rms_neg, rms_pos);
        assert_true(fabs(dp) < 6 && fabs(dy) < 6 && fabs(dr) < 4);
        /* smaller z = closer: reading the depth axis that way fits the rigid face far better */
        assert_true(rms_neg * 2 < rms_pos);
        /* the nose tip is the closest point of the mesh (most negative z) among the face centre line */
        assert_true(g->mesh[1][2] < g->mesh[10][2] && g->mesh[1][2] < g->mesh[152][2]);
        free(g);
    }
    free(c);
    TU_REQUIRE(seen, "../shared/reference/golden");
}

/* ------------------------------------------------------------------------------------------ */
/* 68 points                                                                                   */
/* ------------------------------------------------------------------------------------------ */
/* Rotates points about their centroid by -roll so the checks below hold for tilted heads. */
static void derolled68(const float mesh[FP_MESH_POINTS][3], float p[68][2]) {
    fp_mesh_to_68(mesh, p);
    const double a = atan2(mesh[263][1] - mesh[33][1], mesh[263][0] - mesh[33][0]);
    const double ca = cos(-a), sa = sin(-a);
    for (int k = 0; k < 68; k++) {
        const double x = p[k][0], y = p[k][1];
        p[k][0] = (float)(ca * x - sa * y);
        p[k][1] = (float)(sa * x + ca * y);
    }
}

static void check68(const float p[68][2], int strict_jaw) {
    /* left -> right */
    assert_true(p[0][0] < p[8][0] && p[8][0] < p[16][0]);
    assert_true(p[17][0] < p[21][0] && p[21][0] < p[22][0] && p[22][0] < p[26][0]);
    assert_true(p[36][0] < p[39][0] && p[39][0] < p[42][0] && p[42][0] < p[45][0]);
    assert_true(p[31][0] < p[33][0] && p[33][0] < p[35][0]);
    assert_true(p[48][0] < p[51][0] && p[51][0] < p[54][0] && p[60][0] < p[64][0]);
    /* top -> bottom: brows, eyes, nose tip, mouth, chin */
    assert_true(p[19][1] < p[37][1] && p[24][1] < p[44][1]);
    assert_true(p[27][1] < p[30][1] && p[30][1] < p[33][1]);
    assert_true(p[37][1] < p[41][1] && p[44][1] < p[46][1]); /* upper lid above lower lid */
    assert_true(p[33][1] < p[51][1] && p[51][1] < p[62][1] && p[62][1] <= p[66][1] &&
                p[66][1] < p[57][1]);
    assert_true(p[57][1] < p[8][1]);
    for (int k = 36; k < 48; k++)
        assert_true(p[k][1] < p[48][1] && p[k][1] < p[54][1]); /* eyes above mouth */
    if (strict_jaw) /* frontal: the jaw runs monotonically from image left to image right */
        for (int k = 0; k < 16; k++)
            assert_true(p[k][0] < p[k + 1][0]);
    /* down to the chin, then up */
    for (int k = 0; k < 8; k++)
        assert_true(p[k][1] < p[k + 1][1]);
    for (int k = 8; k < 16; k++)
        assert_true(p[k][1] > p[k + 1][1]);
}

static void test_mesh68(void **state) {
    (void)state;
    /* the table refers to valid, distinct-enough vertices */
    for (int k = 0; k < 68; k++)
        assert_true(fp_mesh68_index[k][0] < FP_MESH_POINTS &&
                    fp_mesh68_index[k][1] < FP_MESH_POINTS);
    fp_canonical *c = load_canonical();
    float(*mesh)[3] = malloc(sizeof(float) * FP_MESH_POINTS * 3);
    assert_non_null(mesh);
    float p[68][2];
    project_canonical(c, &(fp_pose){0, 0, 0}, 20, 320, 240, mesh);
    fp_mesh_to_68((const float(*)[3])mesh, p);
    check68((const float(*)[2])p, 1);
    /* mirror symmetry of the frontal canonical face: k <-> 16 - k for the jaw, 36 <-> 45, 48 <-> 54 */
    for (int k = 0; k < 17; k++) {
        assert_true(fabsf((p[k][0] - 320) + (p[16 - k][0] - 320)) < 1e-3f);
        assert_true(fabsf(p[k][1] - p[16 - k][1]) < 1e-3f);
    }
    assert_true(fabsf((p[36][0] - 320) + (p[45][0] - 320)) < 1e-3f);
    assert_true(fabsf((p[48][0] - 320) + (p[54][0] - 320)) < 1e-3f);
    int seen = 0;
    for (size_t i = 0; i < sizeof golden_names / sizeof golden_names[0]; i++) {
        golden *g = load_golden(golden_names[i]);
        if (!g) continue;
        seen++;
        derolled68((const float(*)[3])g->mesh, p);
        check68((const float(*)[2])p, 0);
        free(g);
    }
    free(mesh);
    free(c);
    TU_REQUIRE(seen, "../shared/reference/golden");
}

/* ------------------------------------------------------------------------------------------ */
/* liveness cues                                                                               */
/* ------------------------------------------------------------------------------------------ */
static void test_liveness(void **state) {
    (void)state;
    int seen = 0;
    for (size_t i = 0; i < sizeof golden_names / sizeof golden_names[0]; i++) {
        golden *g = load_golden(golden_names[i]);
        if (!g) continue;
        seen++;
        fp_liveness_cues lc, lc2, lc3;
        memset(&lc, 0, sizeof lc);
        lc.antispoof = 0.25f;
        assert_int_equal(fp_liveness_geometry((const float(*)[3])g->mesh,
                                              (const float(*)[5][2])g->iris,
                                              (const float(*)[71][2])g->contour, &lc),
                         FP_OK);
        assert_true(lc.antispoof == 0.25f); /* fields it does not own are untouched */
        fprintf(stderr, "%-8s EAR right %.3f left %.3f  mouth %.3f  gaze %+.3f %+.3f",
                golden_names[i], lc.ear_right, lc.ear_left, lc.mouth_open, lc.gaze_x, lc.gaze_y);
        assert_true(lc.ear_right > 0.18f && lc.ear_right < 0.45f);
        assert_true(lc.ear_left > 0.18f && lc.ear_left < 0.45f);
        assert_true(fabsf(lc.gaze_x) < 0.25f && fabsf(lc.gaze_y) < 0.25f);
        /* eye order does not matter: swap both per-eye arrays */
        float iris_sw[2][5][2], cont_sw[2][71][2];
        memcpy(iris_sw[0], g->iris[1], sizeof iris_sw[0]);
        memcpy(iris_sw[1], g->iris[0], sizeof iris_sw[1]);
        memcpy(cont_sw[0], g->contour[1], sizeof cont_sw[0]);
        memcpy(cont_sw[1], g->contour[0], sizeof cont_sw[1]);
        assert_int_equal(fp_liveness_geometry((const float(*)[3])g->mesh,
                                              (const float(*)[5][2])iris_sw,
                                              (const float(*)[71][2])cont_sw, &lc2),
                         FP_OK);
        assert_true(fabsf(lc2.gaze_x - lc.gaze_x) < 1e-6f && fabsf(lc2.gaze_y - lc.gaze_y) < 1e-6f);
        /* without the contour the mesh corners are used: similar, not identical (the iris model's
         * corners sit a few px from the mesh's, ~0.1 eye widths on sample1) */
        assert_int_equal(fp_liveness_geometry((const float(*)[3])g->mesh,
                                              (const float(*)[5][2])g->iris, NULL, &lc3),
                         FP_OK);
        fprintf(stderr, "  (mesh corners: gaze %+.3f %+.3f)\n", lc3.gaze_x, lc3.gaze_y);
        assert_true(fabsf(lc3.gaze_x - lc.gaze_x) < 0.15f && fabsf(lc3.gaze_y - lc.gaze_y) < 0.15f);

        /* Closed eyes: upper lid onto the lower lid. */
        float(*m)[3] = malloc(sizeof g->mesh);
        assert_non_null(m);
        memcpy(m, g->mesh, sizeof g->mesh);
        const int up[4] = {160, 158, 385, 387}, lo[4] = {144, 153, 380, 373};
        for (int k = 0; k < 4; k++) {
            m[up[k]][0] = m[lo[k]][0] + 0.3f;
            m[up[k]][1] = m[lo[k]][1] - 0.2f;
        }
        assert_int_equal(fp_liveness_geometry((const float(*)[3])m, NULL, NULL, &lc3), FP_OK);
        assert_true(lc3.ear_left < 0.05f && lc3.ear_right < 0.05f);
        assert_true(lc3.gaze_x == 0 && lc3.gaze_y == 0);
        /* Open mouth: lower inner lip down by half a mouth width. */
        const float mw = hypotf(m[291][0] - m[61][0], m[291][1] - m[61][1]);
        m[14][1] = m[13][1] + 0.5f * mw;
        m[14][0] = m[13][0];
        assert_int_equal(fp_liveness_geometry((const float(*)[3])m, NULL, NULL, &lc3), FP_OK);
        assert_true(fabsf(lc3.mouth_open - 0.5f) <
                    0.05f); /* not exactly: the mouth line may be rolled */
        free(m);
        free(g);
    }
    TU_REQUIRE(seen, "../shared/reference/golden");
}

static void test_gaze_synthetic(void **state) {
    (void)state;
    fp_canonical *c = load_canonical();
    float(*mesh)[3] = malloc(sizeof(float) * FP_MESH_POINTS * 3);
    assert_non_null(mesh);
    for (int r = 0; r < 2; r++) { /* upright, then rolled 25 deg: gaze is in the eyes' own axes */
        project_canonical(c, &(fp_pose){0, 0, r ? 25.0f : 0.0f}, 20, 320, 240, mesh);
        float iris[2][5][2];
        const int corners[2][2] = {{33, 133}, {362, 263}};
        const double a = atan2(mesh[263][1] - mesh[33][1], mesh[263][0] - mesh[33][0]);
        for (int e = 0; e < 2; e++) {
            const float *p = mesh[corners[e][0]], *q = mesh[corners[e][1]];
            const double w = hypot(p[0] - q[0], p[1] - q[1]);
            /* iris 0.1 eye widths toward the image right and 0.05 down, in the eye's frame */
            const double gx = 0.1 * w, gy = 0.05 * w;
            for (int k = 0; k < 5; k++) {
                iris[e][k][0] = (float)((p[0] + q[0]) / 2 + cos(a) * gx - sin(a) * gy);
                iris[e][k][1] = (float)((p[1] + q[1]) / 2 + sin(a) * gx + cos(a) * gy);
            }
        }
        fp_liveness_cues lc;
        assert_int_equal(
            fp_liveness_geometry((const float(*)[3])mesh, (const float(*)[5][2])iris, NULL, &lc),
            FP_OK);
        assert_true(fabsf(lc.gaze_x - 0.1f) < 1e-3f && fabsf(lc.gaze_y - 0.05f) < 1e-3f);
        /* canonical open eyes */
        assert_true(lc.ear_left > 0.2f && lc.ear_left < 0.45f &&
                    fabsf(lc.ear_left - lc.ear_right) < 1e-4f);
    }
    /* a NaN iris spoils the gaze only; a collapsed mesh spoils everything */
    project_canonical(c, &(fp_pose){0, 0, 0}, 20, 320, 240, mesh);
    float bad_iris[2][5][2];
    for (int e = 0; e < 2; e++)
        for (int k = 0; k < 5; k++)
            bad_iris[e][k][0] = bad_iris[e][k][1] = NAN;
    fp_liveness_cues lc;
    assert_int_equal(
        fp_liveness_geometry((const float(*)[3])mesh, (const float(*)[5][2])bad_iris, NULL, &lc),
        FP_ERR_INVALID_ARG);
    assert_true(isnan(lc.gaze_x) && isnan(lc.gaze_y) && lc.ear_left > 0.2f && lc.mouth_open >= 0);
    memset(mesh, 0, sizeof(float) * FP_MESH_POINTS * 3);
    assert_int_equal(fp_liveness_geometry((const float(*)[3])mesh, NULL, NULL, &lc),
                     FP_ERR_INVALID_ARG);
    assert_true(isnan(lc.ear_left) && isnan(lc.ear_right) && isnan(lc.mouth_open) &&
                isnan(lc.gaze_x));
    free(mesh);
    free(c);
}

/* ------------------------------------------------------------------------------------------ */
/* quality                                                                                     */
/* ------------------------------------------------------------------------------------------ */
typedef enum { FLAT, CHECKER, NOISE } pattern;

static fp_image make_image(int w, int h, pattern pat, int lo, int hi) {
    fp_image img;
    assert_int_equal(fp_image_new(w, h, &img), FP_OK);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int v = lo;
            if (pat == CHECKER) v = ((x / 4 + y / 4) & 1) ? hi : lo;
            if (pat == NOISE) v = lo + (int)(urand() * (hi - lo + 1));
            if (pat == FLAT) v = lo;
            uint8_t *p = img.rgb + ((size_t)y * w + x) * 3;
            p[0] = p[1] = p[2] = (uint8_t)(v > 255 ? 255 : v);
        }
    return img;
}

/* A face record with the canonical mesh filling the box (frontal), high presence, frontal pose. */
static fp_face *make_face(const fp_canonical *c, float x, float y, float side) {
    fp_face *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->box[0] = x;
    f->box[1] = y;
    f->box[2] = f->box[3] = side;
    f->presence = 0.99f;
    if (c)
        project_canonical(c, &(fp_pose){0, 0, 0}, side / 17.0, x + side / 2, y + side / 2, f->mesh);
    return f;
}

static void test_quality_defaults(void **state) {
    (void)state;
    const fp_analyze_options o = fp_analyze_options_default();
    assert_int_equal(o.max_faces, 8);
    assert_int_equal(o.full_range, -1);
    assert_true(o.score_threshold == 0.5f && o.iou_threshold == 0.3f);
    assert_true(o.embedding == 1 && o.flip_embedding == 1 && o.attributes == 1 &&
                o.passive_liveness == 1);
    assert_true(o.max_yaw == 25 && o.max_pitch == 20 && o.max_roll == 30);
    assert_true(o.min_face_px == 80 && o.min_brightness == 70 && o.max_brightness == 210);
    assert_true(o.min_contrast == 20 && o.min_sharpness == 30 && o.max_exposure_fraction == 0.25f);
    assert_true(o.min_edge_margin == 0.0f && o.max_occlusion == 0.5f);
}

static void test_quality_synthetic(void **state) {
    (void)state;
    const char *cpath = tu_model_path(FP_CANONICAL_FILE);
    fp_canonical *c = cpath ? load_canonical() : NULL; /* without it: box statistics only */
    fp_quality q;
    fp_face *f = make_face(c, 220, 140, 200);

    /* flat grey: bright enough, but no contrast and no detail */
    fp_image img = make_image(640, 480, FLAT, 128, 128);
    assert_int_equal(fp_quality_measure(&img, f, NULL, NULL, &q), FP_OK);
    assert_true(fabsf(q.brightness - 128 * (0.2989f + 0.587f + 0.114f)) < 0.1f);
    assert_true(q.contrast < 1e-3f && q.sharpness < 1e-3f);
    assert_true(q.brightness_ok && !q.contrast_ok && !q.sharpness_ok && q.exposure_ok &&
                q.size_ok && q.edge_ok && q.occlusion_ok && q.pose_ok && !q.pass);
    fp_image_release(&img);

    /* checkerboard 60/190: contrast and detail, everything passes */
    img = make_image(640, 480, CHECKER, 60, 190);
    assert_int_equal(fp_quality_measure(&img, f, NULL, NULL, &q), FP_OK);
    fprintf(stderr, "checker: brightness %.1f contrast %.1f sharpness %.0f\n", q.brightness,
            q.contrast, q.sharpness);
    assert_true(q.contrast > 50 && q.sharpness > 1000 && q.pass);
    /* the same with an aligned crop passed in: flat crop -> blurred verdict */
    float *flat = calloc(112 * 112, sizeof(float));
    assert_non_null(flat);
    for (int i = 0; i < 112 * 112; i++)
        flat[i] = 120;
    assert_int_equal(fp_quality_measure(&img, f, flat, NULL, &q), FP_OK);
    assert_true(q.sharpness < 1e-3f && !q.sharpness_ok && !q.pass);
    for (int i = 0; i < 112 * 112; i++)
        flat[i] = ((i % 112 + i / 112) & 1) ? 100.0f : 140.0f;
    assert_int_equal(fp_quality_measure(&img, f, flat, NULL, &q), FP_OK);
    assert_true(fabsf(q.sharpness - 160.0f * 160.0f) < 1.0f &&
                q.sharpness_ok); /* |L| = 4*40 everywhere */
    free(flat);

    /* pose, occlusion and size gates */
    f->pose.yaw = 26;
    assert_int_equal(fp_quality_measure(&img, f, NULL, NULL, &q), FP_OK);
    assert_true(!q.pose_ok && !q.pass);
    f->pose.yaw = -24;
    f->pose.roll = 31;
    assert_int_equal(fp_quality_measure(&img, f, NULL, NULL, &q), FP_OK);
    assert_true(!q.pose_ok);
    f->pose.roll = 0;
    f->presence = 0.3f;
    assert_int_equal(fp_quality_measure(&img, f, NULL, NULL, &q), FP_OK);
    assert_true(fabsf(q.occlusion - 0.7f) < 1e-6f && !q.occlusion_ok && q.pose_ok && !q.pass);
    fp_image_release(&img);
    free(f);

    /* dark: brightness fails; very dark: exposure fails too */
    f = make_face(c, 220, 140, 200);
    img = make_image(640, 480, NOISE, 20, 60);
    assert_int_equal(fp_quality_measure(&img, f, NULL, NULL, &q), FP_OK);
    assert_true(q.brightness < 45 && !q.brightness_ok && q.exposure_ok && !q.pass);
    fp_image_release(&img);
    img = make_image(640, 480, NOISE, 0, 12);
    assert_int_equal(fp_quality_measure(&img, f, NULL, NULL, &q), FP_OK);
    assert_true(q.exposure_dark > 0.99f && !q.exposure_ok && !q.brightness_ok);
    fp_image_release(&img);
    img = make_image(640, 480, NOISE, 245, 255);
    assert_int_equal(fp_quality_measure(&img, f, NULL, NULL, &q), FP_OK);
    assert_true(q.exposure_bright > 0.99f && !q.exposure_ok && !q.brightness_ok);
    fp_image_release(&img);
    free(f);

    /* edges: cut off on the left (negative margin) fails; 10 px inside passes; small face fails size */
    img = make_image(640, 480, NOISE, 60, 190);
    f = make_face(c, -20, 140, 200);
    assert_int_equal(fp_quality_measure(&img, f, NULL, NULL, &q), FP_OK);
    assert_true(fabsf(q.edge_margin + 0.1f) < 1e-5f && !q.edge_ok && !q.pass);
    free(f);
    f = make_face(c, 430, 270, 200); /* 10 px from the right and bottom edges */
    assert_int_equal(fp_quality_measure(&img, f, NULL, NULL, &q), FP_OK);
    assert_true(fabsf(q.edge_margin - 0.05f) < 1e-5f && q.edge_ok);
    assert_true(q.pass);
    free(f);
    f = make_face(c, 300, 200, 50);
    assert_int_equal(fp_quality_measure(&img, f, NULL, NULL, &q), FP_OK);
    assert_true(q.face_px == 50 && !q.size_ok && !q.pass);
    free(f);
    /* a face entirely outside the frame is measurable (and fails), a bad box is an error */
    f = make_face(NULL, 900, 900, 100);
    assert_int_equal(fp_quality_measure(&img, f, NULL, NULL, &q), FP_OK);
    assert_true(!q.edge_ok && !q.exposure_ok && !q.pass);
    f->box[2] = 0;
    assert_int_equal(fp_quality_measure(&img, f, NULL, NULL, &q), FP_ERR_INVALID_ARG);
    free(f);
    fp_image_release(&img);
    free(c);
}

/* The real golden faces: aligned crop through the reference's similarity, all gates reported. */
static void test_quality_golden(void **state) {
    (void)state;
    fp_canonical *c = load_canonical();
    int seen = 0;
    for (size_t i = 0; i < sizeof golden_names / sizeof golden_names[0]; i++) {
        golden *g = load_golden(golden_names[i]);
        if (!g) continue;
        char rel[300];
        snprintf(rel, sizeof rel, "reference/%s", g->image);
        const char *ipath = tu_shared_path(rel);
        if (!ipath) {
            free(g);
            continue;
        }
        seen++;
        fp_image img;
        assert_int_equal(fp_image_load(ipath, NULL, &img), FP_OK);
        fp_face *f = calloc(1, sizeof *f);
        assert_non_null(f);
        memcpy(f->box, g->box, sizeof f->box);
        memcpy(f->mesh, g->mesh, sizeof f->mesh);
        f->presence = g->presence;
        assert_int_equal(fp_head_pose((const float(*)[3])f->mesh, c, &f->pose, NULL), FP_OK);
        float *luma = malloc(sizeof(float) * 112 * 112);
        assert_non_null(luma);
        fp_norm gray = fp_norm_uniform(1.0, 0.0);
        gray.gray = 1;
        assert_int_equal(fp_warp_affine(&img, g->align, 112, 112, &gray, luma), FP_OK);
        fp_quality q, qb;
        assert_int_equal(fp_quality_measure(&img, f, luma, NULL, &q), FP_OK);
        assert_int_equal(fp_quality_measure(&img, f, NULL, NULL, &qb), FP_OK);
        fprintf(stderr,
                "%-8s px %.0f bright %.1f contrast %.1f sharp %.0f (box %.0f) dark %.3f bright "
                "%.3f edge %.2f "
                "occl %.4f pose %.1f/%.1f/%.1f -> ok size %d bright %d contr %d sharp %d expo %d "
                "edge %d occl %d "
                "pose %d pass %d\n",
                golden_names[i], q.face_px, q.brightness, q.contrast, q.sharpness, qb.sharpness,
                q.exposure_dark, q.exposure_bright, q.edge_margin, q.occlusion, f->pose.pitch,
                f->pose.yaw, f->pose.roll, q.size_ok, q.brightness_ok, q.contrast_ok,
                q.sharpness_ok, q.exposure_ok, q.edge_ok, q.occlusion_ok, q.pose_ok, q.pass);
        /* real, in-focus photos of uncovered faces */
        assert_true(q.sharpness_ok && q.contrast_ok && q.occlusion_ok && q.exposure_ok &&
                    q.edge_ok);
        free(luma);
        free(f);
        fp_image_release(&img);
        free(g);
    }
    free(c);
    TU_REQUIRE(seen, "../shared/reference golden images");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_file),
        cmocka_unit_test(test_canonical_packed),
        cmocka_unit_test(test_canonical_garbled),
        cmocka_unit_test(test_svd3),
        cmocka_unit_test(test_similarity_fit),
        cmocka_unit_test(test_pose_matrix),
        cmocka_unit_test(test_head_pose_synthetic),
        cmocka_unit_test(test_head_pose_golden),
        cmocka_unit_test(test_mesh68),
        cmocka_unit_test(test_liveness),
        cmocka_unit_test(test_gaze_synthetic),
        cmocka_unit_test(test_quality_defaults),
        cmocka_unit_test(test_quality_synthetic),
        cmocka_unit_test(test_quality_golden),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
