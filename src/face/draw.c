/*
 * draw.c - overlays for `facepay analyze --draw`: so a person can check at a glance what the
 * pipeline saw (box, 68 landmarks, iris, the 5 alignment points and the head-pose axes).
 */
#include <math.h>

#include "face/face.h"

void fp_draw_faces(fp_image *img, const fp_face *faces, int n) {
    if (!img || !img->rgb || !faces) return;
    for (int i = 0; i < n; i++) {
        const fp_face *f = &faces[i];
        double scale = fmax(f->box[2], f->box[3]);
        int th = scale > 200 ? 2 : 1;
        double dot = fmax(1.0, scale / 120);
        uint32_t box_col = i == 0 ? 0x00ff00 : 0xffff00; /* payment candidate in green */
        fp_draw_rect(img, f->box[0], f->box[1], f->box[0] + f->box[2], f->box[1] + f->box[3], box_col, th);
        fp_rect roi = {f->roi[0], f->roi[1], f->roi[2], f->roi[3], f->roi[4]};
        if (roi.w > 0) fp_draw_rotated_rect(img, &roi, 0x4080ff, 1);
        for (int k = 0; k < 68; k++) fp_draw_circle(img, f->landmarks68[k][0], f->landmarks68[k][1], dot, 0x00ffff);
        for (int e = 0; e < 2; e++) fp_draw_circle(img, f->iris[e][0][0], f->iris[e][0][1], dot * 1.5, 0xff00ff);
        for (int k = 0; k < 5; k++) fp_draw_circle(img, f->landmarks5[k][0], f->landmarks5[k][1], dot * 1.5, 0xff0000);
        /* pose axes from the nose tip: the head frame (x to the subject's left, y up, z out of the face
         * towards the camera, see geometry.h) projected orthographically, y flipped for the image. */
        double R[9];
        fp_pose_to_matrix(&f->pose, R);
        double ox = f->mesh[1][0], oy = f->mesh[1][1], len = scale * 0.5;
        uint32_t col[3] = {0xff0000, 0x00ff00, 0x0000ff};
        for (int a = 0; a < 3; a++)
            if (R[a] == R[a]) fp_draw_line(img, ox, oy, ox + len * R[a], oy - len * R[3 + a], col[a], th + 1);
    }
}
