/*
 * draw.c - minimal overlay drawing for the CLI's --draw output (boxes, ROIs, landmark dots).
 * Coordinates are doubles because they come straight from the pipeline; lines are clipped to the
 * image in floating point before rasterising, so off-screen or huge coordinates cost nothing and
 * never reach an integer conversion out of range.
 */
#include <math.h>
#include <stdlib.h>

#include "image/image.h"

static void put(fp_image *img, long x, long y, uint32_t color) {
    if (x < 0 || y < 0 || x >= img->width || y >= img->height) return;
    uint8_t *p = img->rgb + ((size_t)y * (size_t)img->width + (size_t)x) * 3;
    p[0] = (uint8_t)(color >> 16);
    p[1] = (uint8_t)(color >> 8);
    p[2] = (uint8_t)color;
}

/* A thickness x thickness square centred on (x, y): cheap thick lines without gaps. */
static void stamp(fp_image *img, long x, long y, int t, uint32_t color) {
    const long lo = -(long)((t - 1) / 2), hi = lo + t;
    for (long dy = lo; dy < hi; dy++)
        for (long dx = lo; dx < hi; dx++) put(img, x + dx, y + dy, color);
}

static int usable(const fp_image *img) { return img && img->rgb && img->width > 0 && img->height > 0; }

/* Liang-Barsky clip of the segment to [xmin, xmax] x [ymin, ymax]; 0 if nothing is left. */
static int clip(double *x0, double *y0, double *x1, double *y1, double xmin, double ymin,
                double xmax, double ymax) {
    const double dx = *x1 - *x0, dy = *y1 - *y0;
    const double p[4] = {-dx, dx, -dy, dy};
    const double q[4] = {*x0 - xmin, xmax - *x0, *y0 - ymin, ymax - *y0};
    double t0 = 0, t1 = 1;
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0) {
            if (q[i] < 0) return 0;
            continue;
        }
        const double t = q[i] / p[i];
        if (p[i] < 0) {
            if (t > t1) return 0;
            if (t > t0) t0 = t;
        } else {
            if (t < t0) return 0;
            if (t < t1) t1 = t;
        }
    }
    const double ax = *x0 + t0 * dx, ay = *y0 + t0 * dy;
    *x1 = *x0 + t1 * dx;
    *y1 = *y0 + t1 * dy;
    *x0 = ax;
    *y0 = ay;
    return 1;
}

void fp_draw_line(fp_image *img, double x0, double y0, double x1, double y1, uint32_t color,
                  int thickness) {
    if (!usable(img) || !isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1)) return;
    const int t = thickness < 1 ? 1 : thickness > 64 ? 64 : thickness;
    const double m = t; /* keep the parts whose stamp still reaches the image */
    if (!clip(&x0, &y0, &x1, &y1, -m, -m, img->width - 1 + m, img->height - 1 + m)) return;
    long ax = lround(x0), ay = lround(y0);
    const long bx = lround(x1), by = lround(y1);
    const long dx = labs(bx - ax), dy = -labs(by - ay);
    const long sx = ax < bx ? 1 : -1, sy = ay < by ? 1 : -1;
    long err = dx + dy;
    for (;;) { /* Bresenham */
        stamp(img, ax, ay, t, color);
        if (ax == bx && ay == by) break;
        const long e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            ax += sx;
        }
        if (e2 <= dx) {
            err += dx;
            ay += sy;
        }
    }
}

void fp_draw_rect(fp_image *img, double x0, double y0, double x1, double y1, uint32_t color,
                  int thickness) {
    fp_draw_line(img, x0, y0, x1, y0, color, thickness);
    fp_draw_line(img, x1, y0, x1, y1, color, thickness);
    fp_draw_line(img, x1, y1, x0, y1, color, thickness);
    fp_draw_line(img, x0, y1, x0, y0, color, thickness);
}

void fp_draw_rotated_rect(fp_image *img, const fp_rect *r, uint32_t color, int thickness) {
    if (!r) return;
    /* corners in crop units of a 1x1 crop: (0,0) (1,0) (1,1) (0,1) */
    double x[4], y[4];
    static const double cu[4] = {0, 1, 1, 0}, cv[4] = {0, 0, 1, 1};
    for (int i = 0; i < 4; i++) fp_crop_point_to_image(r, 1, 1, 0, cu[i], cv[i], &x[i], &y[i]);
    for (int i = 0; i < 4; i++) fp_draw_line(img, x[i], y[i], x[(i + 1) & 3], y[(i + 1) & 3], color, thickness);
}

void fp_draw_circle(fp_image *img, double cx, double cy, double radius, uint32_t color) {
    if (!usable(img) || !isfinite(cx) || !isfinite(cy) || !isfinite(radius) || radius < 0) return;
    if (radius > 1e4) radius = 1e4;
    const double r2 = radius * radius;
    double ylo = floor(cy - radius), yhi = ceil(cy + radius);
    double xlo = floor(cx - radius), xhi = ceil(cx + radius);
    if (yhi < 0 || xhi < 0 || ylo >= img->height || xlo >= img->width) return;
    if (ylo < 0) ylo = 0;
    if (xlo < 0) xlo = 0;
    if (yhi > img->height - 1) yhi = img->height - 1;
    if (xhi > img->width - 1) xhi = img->width - 1;
    for (long y = (long)ylo; y <= (long)yhi; y++)
        for (long x = (long)xlo; x <= (long)xhi; x++) {
            const double ddx = x - cx, ddy = y - cy;
            if (ddx * ddx + ddy * ddy <= r2 + 0.25) put(img, x, y, color);
        }
}
