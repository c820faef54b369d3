/*
 * geometry.h - pure geometry and statistics on the face pipeline's arrays: MediaPipe's canonical face
 * model (a small protobuf reader), head pose by a weighted rigid fit of that model and by the
 * reference's 4-landmark construction, the 300-W 68-point subset of the mesh, the geometric liveness
 * cues (eye aspect ratio, mouth opening, gaze) and the quality gates (quality.c). No neural networks
 * and no global state: the pipeline calls these per face, from any thread.
 *
 * Frames used below
 *   image   source pixels: x right, y down; mesh z in pixels scaled like x, SMALLER = CLOSER to the
 *           camera (the nose tip has the most negative z; checked on the golden meshes).
 *   camera  right-handed "metric-like" frame of the rigid fit: X = x, Y = -y, Z = -z, i.e. x right,
 *           y up, z out of the screen toward the viewer. The flip of two axes is a proper rotation,
 *           so no reflection enters the fit.
 *   model   MediaPipe's canonical face (centimetres): x toward the subject's left (image right when
 *           the face looks at the camera), y up, z out of the face. Identity pose = frontal face.
 */
#ifndef FP_GEOMETRY_H
#define FP_GEOMETRY_H

#include <stddef.h>
#include <stdint.h>

#include "facepay.h"

/* ------------------------------------------------------------------------------------------ */
/* Canonical face model                                                                        */
/* ------------------------------------------------------------------------------------------ */
/* Model file fetched by scripts/setup.sh (manifest row geometry_pipeline_metadata_landmarks). */
#define FP_CANONICAL_FILE "geometry_pipeline_metadata_landmarks.binarypb"
#define FP_CANONICAL_MAX_TRIANGLES 1024 /* the shipped mesh has 898 */

/* mediapipe/modules/face_geometry/protos/geometry_pipeline_metadata.proto, as found in the bytes:
 *   GeometryPipelineMetadata { Mesh3d canonical_mesh = 1; repeated WeightedLandmarkRef
 *     procrustes_landmark_basis = 2; InputSource input_source = 3; }
 *   Mesh3d { VertexType vertex_type = 1; PrimitiveType primitive_type = 2;
 *            repeated float vertex_buffer = 3; repeated uint32 index_buffer = 4; }
 *   WeightedLandmarkRef { uint32 landmark_id = 1; float weight = 2; }
 * (field numbers read off the bytes: canonical_mesh is 1, the basis 2. The file stores the repeated
 * scalars UNpacked, one tag per value; a conforming reader must accept packed too: both are read.) */
typedef struct fp_canonical {
    float vertex[FP_MESH_POINTS][3]; /* model frame, cm */
    float uv[FP_MESH_POINTS][2];     /* texture coordinates 0..1 */
    int n_basis;                     /* Procrustes landmarks (33 in the shipped file) */
    uint16_t basis_id[FP_MESH_POINTS];
    float basis_weight[FP_MESH_POINTS];
    int n_triangles;
    uint16_t triangle[FP_CANONICAL_MAX_TRIANGLES][3];
    int input_source; /* 0 DEFAULT, 1 FACE_LANDMARK_PIPELINE (shipped), 2 FACE_DETECTION_PIPELINE */
} fp_canonical;

/* Parses a GeometryPipelineMetadata message. Truncated or garbled input, a vertex count other than
 * 468, out-of-range indices, non-finite values or a basis of fewer than 3 landmarks with positive
 * weight give FP_ERR_FORMAT; an unknown vertex/primitive type gives FP_ERR_UNSUPPORTED. */
fp_status fp_canonical_load(const void *buf, size_t len, fp_canonical *out);
fp_status fp_canonical_load_file(const char *path, fp_canonical *out);
/* Counterpart of the loaders for owners that release what they load: the struct is self-contained
 * (nothing allocated), so this only zeroes it. NULL is a no-op. */
void fp_canonical_free(fp_canonical *c);

/* ------------------------------------------------------------------------------------------ */
/* Head pose                                                                                   */
/* ------------------------------------------------------------------------------------------ */
/* Euler convention of fp_pose (facepay.h), for R = the rotation taking the model frame to the camera
 * frame:  R = Rx(-pitch) * Rz(-roll) * Ry(yaw), with Rx, Ry, Rz the usual right-handed rotations.
 *   yaw   > 0: the subject turns to their left, the nose moves to the image right;
 *   pitch > 0: chin up, the nose moves up in the image;
 *   roll  > 0: the head tilts clockwise on screen (the image-right eye goes down).
 * The x-z-y order is the order the reference's construction decomposes in, so the two methods differ
 * only by how the head frame is estimated (and by the reference's opposite pitch/yaw signs, below). */
void fp_pose_from_matrix(const double R[9], fp_pose *out);
void fp_pose_to_matrix(const fp_pose *pose, double R[9]);

/* SVD of a 3x3 row-major matrix, A = U diag(S) V^T, S descending and >= 0, U and V orthogonal
 * (det may be -1). One-sided Jacobi in double; rank-deficient input still gives orthogonal U. */
void fp_svd3(const double A[9], double U[9], double S[3], double V[9]);

/* Weighted least-squares similarity dst_i ~ scale * R * src_i + t (Umeyama 1991 with weights w_i,
 * w NULL = all 1), R a proper rotation (reflection guarded). rms (may be NULL) is the weighted RMS
 * residual in dst units. FP_ERR_INVALID_ARG for n < 3, bad weights, non-finite or degenerate
 * (collinear) points. */
fp_status fp_similarity_fit3(const double (*src)[3], const double (*dst)[3], const double *w, int n,
                             double R[9], double *scale, double t[3], double *rms);

/* Head pose by fitting the canonical model to the observed mesh (image frame, converted to the camera
 * frame as above) with MediaPipe's Procrustes landmark weights, orthographic (the mesh z is already
 * scaled like x). R (may be NULL) receives the model->camera rotation, row-major. On failure (model
 * not loaded, degenerate or non-finite mesh) *out and R are NaN, so a pose gate fails closed. */
fp_status fp_head_pose(const float mesh[FP_MESH_POINTS][3], const fp_canonical *c, fp_pose *out,
                       float R[9]);

/* The reference's pose (README step 5, @vladmandic/human angles.ts) from landmarks 10, 152, 234,
 * 454, computed in double exactly as lib/pipeline.js headPose() does (NaN on degenerate input).
 * CAUTION: its signs are the reference's, not fp_pose's: pitch and yaw are NEGATED relative to the
 * convention above (reference pitch > 0 = chin down, yaw > 0 = nose to the image left); roll agrees.
 * At rest it reads about 0.7 deg more chin-down than the rigid fit, because landmark 10 sits 0.22 cm
 * further forward than 152 in the canonical face; and it follows the chin (152), which moves when the
 * mouth opens, while the rigid fit weights mostly upper-face and cheek landmarks (of its 33 only
 * 136/365 lie on the jaw). */
fp_status fp_head_pose_reference(const float mesh[FP_MESH_POINTS][3], fp_pose *out);

/* ------------------------------------------------------------------------------------------ */
/* 68-point (300-W / iBUG) subset                                                              */
/* ------------------------------------------------------------------------------------------ */
/* fp_mesh68_index[k] = the mesh vertices averaged for 300-W point k (second = first when single).
 * The table and where it comes from are documented in geometry.c. */
extern const uint16_t fp_mesh68_index[68][2];

void fp_mesh_to_68(const float mesh[FP_MESH_POINTS][3], float out[68][2]);

/* ------------------------------------------------------------------------------------------ */
/* Liveness cues                                                                               */
/* ------------------------------------------------------------------------------------------ */
/* Classic 6-point eye landmarks p1..p6 of Soukupova & Cech (p1, p4 corners; p2, p3 upper lid; p6, p5
 * the lower lid below p2, p3). Subject's right eye = image-left eye, subject's left = image right. */
extern const uint16_t fp_eye6_right[6]; /* subject's right eye: 33, 160, 158, 133, 153, 144 */
extern const uint16_t fp_eye6_left[6];  /* subject's left eye: 362, 385, 387, 263, 373, 380 */

/* Fills ear_left, ear_right, mouth_open, gaze_x, gaze_y of *out (the other fields are untouched):
 *   ear_*       (|p2-p6| + |p3-p5|) / (2 |p1-p4|) on the mesh, in the image plane (open ~0.25-0.35,
 *               closed < ~0.15); ear_left is the SUBJECT's left eye (image right).
 *   mouth_open  |13-14| / |61-291|: inner-lip gap over the mouth-corner width (closed ~0).
 *   gaze_x/y    iris centre minus the eye-corner midpoint, in eye widths, averaged over both eyes, in
 *               the eyes' own axes: x along the line from the subject's right eye to their left eye
 *               (image right for an upright face), y perpendicular to it pointing image-down, so head
 *               roll does not read as gaze. Corners come
 *               from eye_contour (points 0 and 8, the iris model's own corners) when it is given,
 *               else from the mesh (33/133, 362/263).
 * iris ([eye][centre + 4]) and eye_contour ([eye][71]) may be NULL (gaze is then 0 / mesh corners);
 * each eye's entry is matched to the mesh eye nearest to it, so their order does not matter.
 * On failure (non-finite or degenerate input) the fields that could not be measured are NaN (a bad
 * iris or contour spoils only the gaze). */
fp_status fp_liveness_geometry(const float mesh[FP_MESH_POINTS][3], const float iris[2][5][2],
                               const float eye_contour[2][71][2], fp_liveness_cues *out);

/* ------------------------------------------------------------------------------------------ */
/* Quality (quality.c)                                                                         */
/* ------------------------------------------------------------------------------------------ */
/* Measures face->box / mesh / presence / pose against o (NULL = fp_analyze_options_default()) and
 * fills every field of *q. aligned112_luma: the 112x112 ArcFace crop as luma 0..255, row-major
 * (e.g. fp_warp_affine with an fp_norm of gray = 1, mul 1, add 0); NULL = the detector box is
 * resampled to 112x112 instead. Details and defaults in quality.c. */
fp_status fp_quality_measure(const fp_image *img, const fp_face *face, const float *aligned112_luma,
                             const fp_analyze_options *o, fp_quality *q);

/* Variance of the 4-neighbour Laplacian over the interior of a w x h luma image (the sharpness
 * measure of fp_quality_measure); 0 for images smaller than 3x3. */
float fp_laplacian_variance(const float *luma, int w, int h);

#endif /* FP_GEOMETRY_H */
