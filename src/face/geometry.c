/*
 * geometry.c - the canonical face model reader, head pose (rigid fit and the reference's formula),
 * the 68-point subset and the geometric liveness cues. See geometry.h for the frames and conventions.
 */
#include "face/geometry.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define DEG_PER_RAD (180.0 / 3.14159265358979323846)

/* ------------------------------------------------------------------------------------------ */
/* Protobuf wire format: just enough for GeometryPipelineMetadata                              */
/* ------------------------------------------------------------------------------------------ */
/* The file is 19 kB from a pinned package, but the reader still treats it as hostile: every read is
 * bounds-checked against the end of its enclosing message, so a garbled length can never walk out. */
typedef struct pb_reader {
    const uint8_t *p, *end;
} pb_reader;

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

static int pb_varint(pb_reader *r, uint64_t *v) {
    uint64_t x = 0;
    for (int i = 0; i < 10; i++) {
        if (r->p >= r->end) return 0;
        const uint8_t b = *r->p++;
        if (i == 9 && b > 1) return 0; /* more than 64 bits */
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

static int pb_fixed32(pb_reader *r, uint32_t *v) {
    if (r->end - r->p < 4) return 0;
    *v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
         (uint32_t)r->p[3] << 24;
    r->p += 4;
    return 1;
}

static int pb_float(pb_reader *r, float *f) {
    uint32_t u;
    if (!pb_fixed32(r, &u)) return 0;
    memcpy(f, &u, sizeof *f);
    return 1;
}

static int pb_sub(pb_reader *r, pb_reader *sub) {
    uint64_t n;
    if (!pb_varint(r, &n) || n > (uint64_t)(r->end - r->p)) return 0;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return 1;
}

static int pb_tag(pb_reader *r, uint32_t *field, int *wire) {
    uint64_t k;
    if (!pb_varint(r, &k)) return 0;
    *field = (uint32_t)(k >> 3);
    *wire = (int)(k & 7);
    return (k >> 3) != 0 && (k >> 3) <= 0x1fffffff;
}

/* Groups (wire types 3, 4) are deprecated and absent from this message: treated as garbage. */
static int pb_skip(pb_reader *r, int wire) {
    uint64_t v;
    pb_reader s;
    switch (wire) {
    case PB_VARINT: return pb_varint(r, &v);
    case PB_I64:
        if (r->end - r->p < 8) return 0;
        r->p += 8;
        return 1;
    case PB_LEN: return pb_sub(r, &s);
    case PB_I32:
        if (r->end - r->p < 4) return 0;
        r->p += 4;
        return 1;
    default: return 0;
    }
}

/* Accumulates repeated fields across occurrences (protobuf merge semantics: repeated = append). */
typedef struct canon_acc {
    float vbuf[FP_MESH_POINTS * 5];
    size_t n_v;
    size_t n_i;
    uint64_t vertex_type, primitive_type;
} canon_acc;

#define FMT_ERR(...) fp_fail(FP_ERR_FORMAT, "canonical face model: " __VA_ARGS__)

static fp_status add_vertex_float(canon_acc *a, float f) {
    if (a->n_v >= FP_MESH_POINTS * 5) return FMT_ERR("more than %d vertices", FP_MESH_POINTS);
    if (!isfinite(f)) return FMT_ERR("non-finite vertex value");
    a->vbuf[a->n_v++] = f;
    return FP_OK;
}

static fp_status add_index(canon_acc *a, fp_canonical *out, uint64_t v) {
    if (v >= FP_MESH_POINTS)
        return FMT_ERR("triangle index %llu out of range", (unsigned long long)v);
    if (a->n_i >= (size_t)FP_CANONICAL_MAX_TRIANGLES * 3)
        return fp_fail(FP_ERR_UNSUPPORTED, "canonical face model: more than %d triangles",
                       FP_CANONICAL_MAX_TRIANGLES);
    out->triangle[a->n_i / 3][a->n_i % 3] = (uint16_t)v;
    a->n_i++;
    return FP_OK;
}

static fp_status parse_mesh(pb_reader *r, canon_acc *a, fp_canonical *out) {
    while (r->p < r->end) {
        uint32_t field;
        int wire;
        if (!pb_tag(r, &field, &wire)) return FMT_ERR("bad tag in canonical_mesh");
        fp_status st = FP_OK;
        if ((field == 1 || field == 2) && wire == PB_VARINT) {
            if (!pb_varint(r, field == 1 ? &a->vertex_type : &a->primitive_type))
                return FMT_ERR("truncated mesh type");
        } else if (field == 3 && wire == PB_I32) {
            float f;
            if (!pb_float(r, &f)) return FMT_ERR("truncated vertex_buffer");
            st = add_vertex_float(a, f);
        } else if (field == 3 && wire == PB_LEN) { /* packed */
            pb_reader s;
            if (!pb_sub(r, &s) || (s.end - s.p) % 4) return FMT_ERR("bad packed vertex_buffer");
            float f;
            while (st == FP_OK && pb_float(&s, &f))
                st = add_vertex_float(a, f);
        } else if (field == 4 && wire == PB_VARINT) {
            uint64_t v;
            if (!pb_varint(r, &v)) return FMT_ERR("truncated index_buffer");
            st = add_index(a, out, v);
        } else if (field == 4 && wire == PB_LEN) { /* packed */
            pb_reader s;
            if (!pb_sub(r, &s)) return FMT_ERR("bad packed index_buffer");
            while (st == FP_OK && s.p < s.end) {
                uint64_t v;
                if (!pb_varint(&s, &v)) return FMT_ERR("bad packed index_buffer");
                st = add_index(a, out, v);
            }
        } else if (field <= 4) {
            return FMT_ERR("canonical_mesh field %u has wire type %d", field, wire);
        } else if (!pb_skip(r, wire)) {
            return FMT_ERR("cannot skip canonical_mesh field %u", field);
        }
        if (st != FP_OK) return st;
    }
    return FP_OK;
}

static fp_status parse_basis(pb_reader *r, fp_canonical *out) {
    uint64_t id = 0;
    float w = 0;
    while (r->p < r->end) {
        uint32_t field;
        int wire;
        if (!pb_tag(r, &field, &wire)) return FMT_ERR("bad tag in procrustes_landmark_basis");
        if (field == 1 && wire == PB_VARINT) {
            if (!pb_varint(r, &id)) return FMT_ERR("truncated landmark_id");
        } else if (field == 2 && wire == PB_I32) {
            if (!pb_float(r, &w)) return FMT_ERR("truncated weight");
        } else if (field <= 2) {
            return FMT_ERR("procrustes_landmark_basis field %u has wire type %d", field, wire);
        } else if (!pb_skip(r, wire)) {
            return FMT_ERR("cannot skip procrustes_landmark_basis field %u", field);
        }
    }
    if (id >= FP_MESH_POINTS)
        return FMT_ERR("landmark_id %llu out of range", (unsigned long long)id);
    if (!isfinite(w) || w < 0)
        return FMT_ERR("bad weight %g for landmark %llu", (double)w, (unsigned long long)id);
    if (out->n_basis >= FP_MESH_POINTS)
        return fp_fail(FP_ERR_UNSUPPORTED, "canonical face model: more than %d basis landmarks",
                       FP_MESH_POINTS);
    out->basis_id[out->n_basis] = (uint16_t)id;
    out->basis_weight[out->n_basis] = w;
    out->n_basis++;
    return FP_OK;
}

static fp_status canonical_parse(const uint8_t *buf, size_t len, fp_canonical *out) {
    canon_acc *a = calloc(1, sizeof *a);
    if (!a) return fp_fail(FP_ERR_NOMEM, "canonical face model: out of memory");
    pb_reader r = {buf, buf + len};
    uint64_t source = 0;
    fp_status st = FP_OK;
    while (st == FP_OK && r.p < r.end) {
        uint32_t field;
        int wire;
        pb_reader s;
        if (!pb_tag(&r, &field, &wire)) {
            st = FMT_ERR("bad tag at byte %td", r.p - buf);
        } else if ((field == 1 || field == 2) && wire == PB_LEN) {
            if (!pb_sub(&r, &s))
                st = FMT_ERR("truncated field %u", field);
            else
                st = field == 1 ? parse_mesh(&s, a, out) : parse_basis(&s, out);
        } else if (field == 3 && wire == PB_VARINT) {
            if (!pb_varint(&r, &source)) st = FMT_ERR("truncated input_source");
        } else if (field <= 3) {
            st = FMT_ERR("field %u has wire type %d", field, wire);
        } else if (!pb_skip(&r, wire)) {
            st = FMT_ERR("cannot skip field %u", field);
        }
    }
    if (st == FP_OK && a->n_v != FP_MESH_POINTS * 5)
        st = FMT_ERR("%zu vertex floats, want %d (468 x [x y z u v])", a->n_v, FP_MESH_POINTS * 5);
    if (st == FP_OK && (a->n_i % 3 || a->n_i == 0))
        st = FMT_ERR("%zu triangle indices (not a positive multiple of 3)", a->n_i);
    if (st == FP_OK && (a->vertex_type != 0 || a->primitive_type != 0))
        st = fp_fail(FP_ERR_UNSUPPORTED,
                     "canonical face model: vertex type %llu / primitive type "
                     "%llu (want VERTEX_PT / TRIANGLE)",
                     (unsigned long long)a->vertex_type, (unsigned long long)a->primitive_type);
    if (st == FP_OK && source > 2)
        st = FMT_ERR("input_source %llu unknown", (unsigned long long)source);
    if (st == FP_OK) {
        double wsum = 0;
        int npos = 0;
        for (int i = 0; i < out->n_basis; i++) {
            wsum += out->basis_weight[i];
            npos += out->basis_weight[i] > 0;
        }
        if (npos < 3 || !(wsum > 0))
            st = FMT_ERR("%d basis landmarks with positive weight, want >= 3", npos);
    }
    if (st == FP_OK) {
        for (int v = 0; v < FP_MESH_POINTS; v++) {
            for (int k = 0; k < 3; k++)
                out->vertex[v][k] = a->vbuf[v * 5 + k];
            out->uv[v][0] = a->vbuf[v * 5 + 3];
            out->uv[v][1] = a->vbuf[v * 5 + 4];
        }
        out->n_triangles = (int)(a->n_i / 3);
        out->input_source = (int)source;
    }
    free(a);
    return st;
}

fp_status fp_canonical_load(const void *buf, size_t len, fp_canonical *out) {
    if (!out || (!buf && len))
        return fp_fail(FP_ERR_INVALID_ARG, "fp_canonical_load: NULL argument");
    memset(out, 0, sizeof *out);
    if (len == 0) return fp_fail(FP_ERR_FORMAT, "canonical face model: empty");
    fp_status st = canonical_parse(buf, len, out);
    if (st != FP_OK) memset(out, 0, sizeof *out);
    return st;
}

void fp_canonical_free(fp_canonical *c) {
    if (c) memset(c, 0, sizeof *c);
}

fp_status fp_canonical_load_file(const char *path, fp_canonical *out) {
    if (!path || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_canonical_load_file: NULL argument");
    uint8_t *data = NULL;
    size_t len = 0;
    fp_status st = fp_read_file(path, (size_t)1 << 20, &data, &len);
    if (st == FP_OK) {
        st = fp_canonical_load(data, len, out);
        if (st != FP_OK) {
            char msg[400]; /* fp_last_error's buffer cannot be both source and destination */
            snprintf(msg, sizeof msg, "%s", fp_last_error());
            fp_fail(st, "%s: %s", path, msg);
        }
    }
    free(data);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Rotations, SVD, similarity fit                                                              */
/* ------------------------------------------------------------------------------------------ */
static void mat3_mul(const double A[9], const double B[9], double C[9]) {
    double T[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            T[i * 3 + j] = A[i * 3] * B[j] + A[i * 3 + 1] * B[3 + j] + A[i * 3 + 2] * B[6 + j];
    memcpy(C, T, sizeof T);
}

static double det3(const double A[9]) {
    return A[0] * (A[4] * A[8] - A[5] * A[7]) - A[1] * (A[3] * A[8] - A[5] * A[6]) +
           A[2] * (A[3] * A[7] - A[4] * A[6]);
}

static void rot_axis(int axis, double deg, double R[9]) {
    const double t = deg / DEG_PER_RAD, c = cos(t), s = sin(t);
    static const double I[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    memcpy(R, I, sizeof I);
    const int a = (axis + 1) % 3, b = (axis + 2) % 3; /* x: (y, z), y: (z, x), z: (x, y) */
    R[a * 3 + a] = c;
    R[a * 3 + b] = -s;
    R[b * 3 + a] = s;
    R[b * 3 + b] = c;
}

void fp_pose_to_matrix(const fp_pose *pose, double R[9]) {
    double X[9], Y[9], Z[9];
    rot_axis(0, -pose->pitch, X);
    rot_axis(1, pose->yaw, Y);
    rot_axis(2, -pose->roll, Z);
    mat3_mul(X, Z, R);
    mat3_mul(R, Y, R);
}

/* For R = Rx(a) Rz(c) Ry(b): R01 = -sin c, R00 = cos c cos b, R02 = cos c sin b, R11 = cos a cos c,
 * R21 = sin a cos c; pitch = -a, yaw = b, roll = -c. */
void fp_pose_from_matrix(const double R[9], fp_pose *out) {
    out->pitch = (float)(-atan2(R[7], R[4]) * DEG_PER_RAD);
    out->yaw = (float)(atan2(R[2], R[0]) * DEG_PER_RAD);
    out->roll = (float)(atan2(R[1], hypot(R[0], R[2])) * DEG_PER_RAD);
}

/* One-sided (Hestenes) Jacobi: rotate column pairs of A until they are orthogonal; the rotations
 * accumulate into V and the column norms are the singular values. For 3x3 it converges in a handful
 * of sweeps to full double precision, which LAPACK would not improve on. */
void fp_svd3(const double A[9], double U[9], double S[3], double V[9]) {
    double B[9], W[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    memcpy(B, A, sizeof B);
    static const int pairs[3][2] = {{0, 1}, {0, 2}, {1, 2}};
    for (int sweep = 0; sweep < 60; sweep++) {
        int rotated = 0;
        for (int k = 0; k < 3; k++) {
            const int p = pairs[k][0], q = pairs[k][1];
            double alpha = 0, beta = 0, gamma = 0;
            for (int r = 0; r < 3; r++) {
                alpha += B[r * 3 + p] * B[r * 3 + p];
                beta += B[r * 3 + q] * B[r * 3 + q];
                gamma += B[r * 3 + p] * B[r * 3 + q];
            }
            if (!(fabs(gamma) > 1e-15 * sqrt(alpha * beta))) continue; /* also stops on NaN */
            rotated = 1;
            const double zeta = (beta - alpha) / (2 * gamma);
            const double t = (zeta >= 0 ? 1.0 : -1.0) / (fabs(zeta) + hypot(1.0, zeta));
            const double c = 1 / hypot(1.0, t), s = c * t;
            for (int r = 0; r < 3; r++) {
                const double bp = B[r * 3 + p], bq = B[r * 3 + q];
                B[r * 3 + p] = c * bp - s * bq;
                B[r * 3 + q] = s * bp + c * bq;
                const double wp = W[r * 3 + p], wq = W[r * 3 + q];
                W[r * 3 + p] = c * wp - s * wq;
                W[r * 3 + q] = s * wp + c * wq;
            }
        }
        if (!rotated) break;
    }
    double sv[3];
    int order[3] = {0, 1, 2};
    for (int j = 0; j < 3; j++)
        sv[j] = sqrt(B[j] * B[j] + B[3 + j] * B[3 + j] + B[6 + j] * B[6 + j]);
    for (int i = 0; i < 3; i++) /* sort descending (3 elements) */
        for (int j = i + 1; j < 3; j++)
            if (sv[order[j]] > sv[order[i]]) {
                const int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    for (int j = 0; j < 3; j++) {
        const int o = order[j];
        S[j] = sv[o];
        for (int r = 0; r < 3; r++) {
            V[r * 3 + j] = W[r * 3 + o];
            U[r * 3 + j] = S[j] > 0 ? B[r * 3 + o] / S[j] : 0;
        }
    }
    /* Columns of U for (near-)zero singular values carry no information: complete the basis. */
    const double tiny = 1e-13 * S[0];
    if (!(S[0] > 0)) {
        static const double I[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
        memcpy(U, I, sizeof I);
        return;
    }
    if (!(S[1] > tiny)) { /* any unit vector orthogonal to u0: cross with the axis least aligned */
        const double u0[3] = {U[0], U[3], U[6]};
        int m = 0;
        for (int k = 1; k < 3; k++)
            if (fabs(u0[k]) < fabs(u0[m])) m = k;
        double e[3] = {0, 0, 0}, u1[3];
        e[m] = 1;
        u1[0] = u0[1] * e[2] - u0[2] * e[1];
        u1[1] = u0[2] * e[0] - u0[0] * e[2];
        u1[2] = u0[0] * e[1] - u0[1] * e[0];
        const double n = sqrt(u1[0] * u1[0] + u1[1] * u1[1] + u1[2] * u1[2]);
        for (int r = 0; r < 3; r++)
            U[r * 3 + 1] = u1[r] / n;
    }
    if (!(S[2] > tiny)) {
        U[2] = U[3] * U[7] - U[6] * U[4];
        U[5] = U[6] * U[1] - U[0] * U[7];
        U[8] = U[0] * U[4] - U[3] * U[1];
    }
}

fp_status fp_similarity_fit3(const double (*src)[3], const double (*dst)[3], const double *w, int n,
                             double R[9], double *scale, double t[3], double *rms) {
    if (!src || !dst || !R || !scale || !t || n < 3)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_similarity_fit3: NULL argument or n = %d < 3", n);
    double W = 0, ms[3] = {0, 0, 0}, md[3] = {0, 0, 0};
    for (int i = 0; i < n; i++) {
        const double wi = w ? w[i] : 1.0;
        if (!(wi >= 0) || !isfinite(wi))
            return fp_fail(FP_ERR_INVALID_ARG, "fp_similarity_fit3: bad weight %d", i);
        for (int k = 0; k < 3; k++) {
            if (!isfinite(src[i][k]) || !isfinite(dst[i][k]))
                return fp_fail(FP_ERR_INVALID_ARG, "fp_similarity_fit3: point %d not finite", i);
            ms[k] += wi * src[i][k];
            md[k] += wi * dst[i][k];
        }
        W += wi;
    }
    if (!(W > 0)) return fp_fail(FP_ERR_INVALID_ARG, "fp_similarity_fit3: weights sum to 0");
    for (int k = 0; k < 3; k++) {
        ms[k] /= W;
        md[k] /= W;
    }
    double H[9] = {0}, var_s = 0;
    for (int i = 0; i < n; i++) {
        const double wi = (w ? w[i] : 1.0) / W;
        double s[3], d[3];
        for (int k = 0; k < 3; k++) {
            s[k] = src[i][k] - ms[k];
            d[k] = dst[i][k] - md[k];
            var_s += wi * s[k] * s[k];
        }
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
                H[a * 3 + b] += wi * d[a] * s[b];
    }
    double U[9], S[3], V[9];
    fp_svd3(H, U, S, V);
    if (!(var_s > 0) || !(S[1] > 1e-12 * S[0]))
        return fp_fail(FP_ERR_INVALID_ARG, "fp_similarity_fit3: degenerate (collinear) points");
    /* Reflection guard (Umeyama): if the best orthogonal map is a reflection, flip the direction
     * of least covariance so R stays a rotation. */
    const double dsign = det3(U) * det3(V) < 0 ? -1.0 : 1.0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            R[a * 3 + b] = U[a * 3] * V[b * 3] + U[a * 3 + 1] * V[b * 3 + 1] +
                           dsign * U[a * 3 + 2] * V[b * 3 + 2];
    *scale = (S[0] + S[1] + dsign * S[2]) / var_s;
    for (int a = 0; a < 3; a++)
        t[a] = md[a] - *scale * (R[a * 3] * ms[0] + R[a * 3 + 1] * ms[1] + R[a * 3 + 2] * ms[2]);
    if (rms) {
        double e2 = 0;
        for (int i = 0; i < n; i++) {
            const double wi = (w ? w[i] : 1.0) / W;
            for (int a = 0; a < 3; a++) {
                const double p = *scale * (R[a * 3] * src[i][0] + R[a * 3 + 1] * src[i][1] +
                                           R[a * 3 + 2] * src[i][2]) +
                                 t[a];
                e2 += wi * (p - dst[i][a]) * (p - dst[i][a]);
            }
        }
        *rms = sqrt(e2);
    }
    return FP_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Head pose                                                                                   */
/* ------------------------------------------------------------------------------------------ */
fp_status fp_head_pose(const float mesh[FP_MESH_POINTS][3], const fp_canonical *c, fp_pose *out,
                       float R[9]) {
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "fp_head_pose: NULL argument");
    out->pitch = out->yaw = out->roll = NAN;
    if (R)
        for (int k = 0; k < 9; k++)
            R[k] = NAN;
    if (!mesh || !c) return fp_fail(FP_ERR_INVALID_ARG, "fp_head_pose: NULL argument");
    const int n = c->n_basis;
    if (n < 3 || n > FP_MESH_POINTS)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_head_pose: canonical model not loaded");
    double src[FP_MESH_POINTS][3], dst[FP_MESH_POINTS][3], w[FP_MESH_POINTS];
    for (int i = 0; i < n; i++) {
        const int id = c->basis_id[i];
        if (id >= FP_MESH_POINTS) return fp_fail(FP_ERR_INVALID_ARG, "fp_head_pose: bad basis id");
        for (int k = 0; k < 3; k++)
            src[i][k] = c->vertex[id][k];
        /* image (x right, y down, z away from the camera) -> camera frame (x right, y up, z toward
         * the camera): negating two axes is a rotation by 180 deg about x, not a reflection. */
        dst[i][0] = mesh[id][0];
        dst[i][1] = -(double)mesh[id][1];
        dst[i][2] = -(double)mesh[id][2];
        w[i] = c->basis_weight[i];
    }
    double Rd[9], scale, t[3];
    fp_status st = fp_similarity_fit3((const double(*)[3])src, (const double(*)[3])dst, w, n, Rd,
                                      &scale, t, NULL);
    if (st != FP_OK)
        return fp_fail(st, "fp_head_pose: mesh does not fit (degenerate or not finite)");
    fp_pose_from_matrix(Rd, out);
    if (R)
        for (int k = 0; k < 9; k++)
            R[k] = (float)Rd[k];
    return FP_OK;
}

fp_status fp_head_pose_reference(const float mesh[FP_MESH_POINTS][3], fp_pose *out) {
    if (!mesh || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_head_pose_reference: NULL argument");
    double y[3], x[3], z[3], xn, yn, zn;
    for (int k = 0; k < 3; k++) {
        y[k] = (double)mesh[152][k] - (double)mesh[10][k];
        x[k] = (double)mesh[454][k] - (double)mesh[234][k];
    }
    yn = sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2]);
    xn = sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2]);
    for (int k = 0; k < 3; k++) {
        y[k] /= yn;
        x[k] /= xn;
    }
    z[0] = x[1] * y[2] - x[2] * y[1];
    z[1] = x[2] * y[0] - x[0] * y[2];
    z[2] = x[0] * y[1] - x[1] * y[0];
    zn = sqrt(z[0] * z[0] + z[1] * z[1] + z[2] * z[2]);
    for (int k = 0; k < 3; k++)
        z[k] /= zn;
    x[0] = y[1] * z[2] - y[2] * z[1];
    x[1] = y[2] * z[0] - y[0] * z[2];
    x[2] = y[0] * z[1] - y[1] * z[0];
    const double r00 = x[0], r10 = y[0], r11 = y[1], r12 = y[2], r20 = z[0];
    const double tz = atan2(r10, sqrt(r00 * r00 + r20 * r20));
    const double ty = atan2(-r20, r00);
    const double tx = atan2(-r12, r11);
    const double pi = 3.14159265358979323846;
    out->pitch = (float)(-tx * 180 / pi);
    out->yaw = (float)(-ty * 180 / pi);
    out->roll = (float)(-tz * 180 / pi);
    if (!isfinite(out->pitch) || !isfinite(out->yaw) || !isfinite(out->roll))
        return fp_fail(FP_ERR_INVALID_ARG, "fp_head_pose_reference: degenerate landmarks");
    return FP_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* 68-point subset                                                                             */
/* ------------------------------------------------------------------------------------------ */
/*
 * 300-W / iBUG 68 points from the 468-point mesh. "a b" = mean of two vertices.
 *
 *   jaw (image left -> chin -> image right)
 *     0 127    1 234    2 93     3 132    4 58     5 136    6 150 149  7 176 148  8 152
 *     9 400 377  10 379 378  11 365  12 288  13 361  14 323  15 454  16 356
 *   brows (upper contour)  17 70   18 63   19 105  20 66   21 107
 *                          22 336  23 296  24 334  25 293  26 300
 *   nose  27 168 6   28 197 195   29 5   30 4   31 75   32 97   33 2   34 326   35 305
 *   eyes  36 33  37 160  38 158  39 133  40 153  41 144   (subject's right, image left)
 *         42 362 43 385  44 387  45 263  46 373  47 380   (subject's left, image right)
 *   mouth outer 48 61  49 39  50 37  51 0  52 267  53 269  54 291  55 321  56 314  57 17  58 84  59 91
 *   mouth inner 60 78  61 82  62 13  63 312  64 308  65 317  66 14  67 87
 *
 * Points 17-67 are the widely used correspondence of PeizhiYan/Mediapipe_2_Dlib_Landmarks (semantic
 * matches: lid, lip and brow contours, eye and mouth corners). The jaw is not semantic - 300-W marks
 * the visible silhouette - so it was chosen from data: the 43 dlib example faces (68 points each,
 * ../shared/data/dlib-faces) were mapped by a 2-D similarity on their eye corners and nose onto the
 * frontal projection of the canonical face, averaged and mirror-symmetrised, and each mean jaw point
 * took the nearest vertex of MediaPipe's face oval (two vertices where the mean fell halfway between
 * them: 6, 7, 9, 10). This reproduces the common table's 0-2, 8, 14-16 and moves 3-7 / 9-13 by at
 * most one oval vertex. Only the image-plane x, y are returned.
 */
/* clang-format off */
const uint16_t fp_mesh68_index[68][2] = {
    {127, 127}, {234, 234}, {93, 93},   {132, 132}, {58, 58},   {136, 136}, {150, 149},
    {176, 148}, {152, 152}, {400, 377}, {379, 378}, {365, 365}, {288, 288}, {361, 361},
    {323, 323}, {454, 454}, {356, 356},                                            /* jaw 0-16 */
    {70, 70},   {63, 63},   {105, 105}, {66, 66},   {107, 107},                    /* 17-21 */
    {336, 336}, {296, 296}, {334, 334}, {293, 293}, {300, 300},                    /* 22-26 */
    {168, 6},   {197, 195}, {5, 5},     {4, 4},     {75, 75},   {97, 97},   {2, 2},
    {326, 326}, {305, 305},                                                        /* 27-35 */
    {33, 33},   {160, 160}, {158, 158}, {133, 133}, {153, 153}, {144, 144},        /* 36-41 */
    {362, 362}, {385, 385}, {387, 387}, {263, 263}, {373, 373}, {380, 380},        /* 42-47 */
    {61, 61},   {39, 39},   {37, 37},   {0, 0},     {267, 267}, {269, 269}, {291, 291},
    {321, 321}, {314, 314}, {17, 17},   {84, 84},   {91, 91},                      /* 48-59 */
    {78, 78},   {82, 82},   {13, 13},   {312, 312}, {308, 308}, {317, 317}, {14, 14},
    {87, 87},                                                                      /* 60-67 */
};
/* clang-format on */

void fp_mesh_to_68(const float mesh[FP_MESH_POINTS][3], float out[68][2]) {
    for (int k = 0; k < 68; k++) {
        const int a = fp_mesh68_index[k][0], b = fp_mesh68_index[k][1];
        out[k][0] = 0.5f * (mesh[a][0] + mesh[b][0]);
        out[k][1] = 0.5f * (mesh[a][1] + mesh[b][1]);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Liveness cues                                                                               */
/* ------------------------------------------------------------------------------------------ */
const uint16_t fp_eye6_right[6] = {33, 160, 158, 133, 153, 144};
const uint16_t fp_eye6_left[6] = {362, 385, 387, 263, 373, 380};

static double dist2d(const float *a, const float *b) {
    return hypot((double)a[0] - b[0], (double)a[1] - b[1]);
}

static double ear6(const float mesh[FP_MESH_POINTS][3], const uint16_t e[6]) {
    const double width = dist2d(mesh[e[0]], mesh[e[3]]);
    return (dist2d(mesh[e[1]], mesh[e[5]]) + dist2d(mesh[e[2]], mesh[e[4]])) / (2 * width);
}

static int finite2(const float *p) { return isfinite(p[0]) && isfinite(p[1]); }

/* 1 if entry 0 of a pair of per-eye arrays belongs to the subject's LEFT eye (image right), judged
 * by which assignment puts both entries nearer their mesh eye centres. */
static int swapped(const double c0[2], const double c1[2], const double right[2],
                   const double left[2]) {
    const double keep =
        hypot(c0[0] - right[0], c0[1] - right[1]) + hypot(c1[0] - left[0], c1[1] - left[1]);
    const double swap =
        hypot(c0[0] - left[0], c0[1] - left[1]) + hypot(c1[0] - right[0], c1[1] - right[1]);
    return swap < keep;
}

/* Eye openness and mouth stay valid when only the gaze inputs are bad. */
static fp_status gaze_fail(fp_liveness_cues *out, const char *why) {
    out->gaze_x = out->gaze_y = NAN;
    return fp_fail(FP_ERR_INVALID_ARG, "fp_liveness_geometry: %s", why);
}

fp_status fp_liveness_geometry(const float mesh[FP_MESH_POINTS][3], const float iris[2][5][2],
                               const float eye_contour[2][71][2], fp_liveness_cues *out) {
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "fp_liveness_geometry: NULL argument");
    out->ear_left = out->ear_right = out->mouth_open = out->gaze_x = out->gaze_y = NAN;
    if (!mesh) return fp_fail(FP_ERR_INVALID_ARG, "fp_liveness_geometry: NULL argument");
    static const uint16_t used[] = {33,  160, 158, 133, 153, 144, 362, 385,
                                    387, 263, 373, 380, 13,  14,  61,  291};
    for (size_t i = 0; i < sizeof used / sizeof used[0]; i++)
        if (!finite2(mesh[used[i]]))
            return fp_fail(FP_ERR_INVALID_ARG, "fp_liveness_geometry: mesh not finite");
    const double wr = dist2d(mesh[33], mesh[133]), wl = dist2d(mesh[362], mesh[263]);
    const double wm = dist2d(mesh[61], mesh[291]);
    if (!(wr > 0) || !(wl > 0) || !(wm > 0))
        return fp_fail(FP_ERR_INVALID_ARG, "fp_liveness_geometry: degenerate eyes or mouth");
    out->ear_right = (float)ear6(mesh, fp_eye6_right);
    out->ear_left = (float)ear6(mesh, fp_eye6_left);
    out->mouth_open = (float)(dist2d(mesh[13], mesh[14]) / wm);
    out->gaze_x = out->gaze_y = 0;
    if (!iris) return FP_OK;

    /* [0] = subject's right eye (image left), [1] = subject's left eye. */
    double centre[2][2], corner[2][2][2];
    const uint16_t mc[2][2] = {{33, 133}, {362, 263}};
    for (int e = 0; e < 2; e++)
        for (int k = 0; k < 2; k++) {
            corner[e][0][k] = mesh[mc[e][0]][k];
            corner[e][1][k] = mesh[mc[e][1]][k];
            centre[e][k] = 0.5 * (corner[e][0][k] + corner[e][1][k]);
        }
    if (eye_contour) {
        double cc[2][2] = {{0, 0}, {0, 0}};
        for (int e = 0; e < 2; e++)
            for (int i = 0; i < 16; i++) { /* 0-15: the eyelid outline */
                if (!finite2(eye_contour[e][i])) return gaze_fail(out, "eye contour not finite");
                cc[e][0] += eye_contour[e][i][0] / 16.0;
                cc[e][1] += eye_contour[e][i][1] / 16.0;
            }
        const int sw = swapped(cc[0], cc[1], centre[0], centre[1]);
        for (int e = 0; e < 2; e++)
            for (int k = 0; k < 2; k++) { /* points 0 and 8 are the two eye corners */
                corner[e][0][k] = eye_contour[e ^ sw][0][k];
                corner[e][1][k] = eye_contour[e ^ sw][8][k];
            }
    }
    double ic[2][2];
    for (int e = 0; e < 2; e++) {
        if (!finite2(iris[e][0])) return gaze_fail(out, "iris not finite");
        ic[e][0] = iris[e][0][0];
        ic[e][1] = iris[e][0][1];
    }
    const int sw = swapped(ic[0], ic[1], centre[0], centre[1]);
    /* Gaze axes from the inter-eye line rather than image axes, so a rolled head does not read as a
     * sideways glance; x points from the subject's right eye to their left (image right). */
    double ux = centre[1][0] - centre[0][0], uy = centre[1][1] - centre[0][1];
    const double un = hypot(ux, uy);
    if (!(un > 0)) return gaze_fail(out, "eyes coincide");
    ux /= un;
    uy /= un;
    double gx = 0, gy = 0;
    for (int e = 0; e < 2; e++) {
        const double *a = corner[e][0], *b = corner[e][1];
        const double width = hypot(a[0] - b[0], a[1] - b[1]);
        if (!(width > 0)) return gaze_fail(out, "zero eye width");
        const double dx = ic[e ^ sw][0] - 0.5 * (a[0] + b[0]),
                     dy = ic[e ^ sw][1] - 0.5 * (a[1] + b[1]);
        gx += (dx * ux + dy * uy) / width;
        gy += (-dx * uy + dy * ux) / width;
    }
    out->gaze_x = (float)(gx / 2);
    out->gaze_y = (float)(gy / 2);
    return FP_OK;
}
