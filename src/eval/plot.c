/*
 * plot.c - the evaluation plots drawn with cairo: ROC (TAR against a log FAR axis), DET on log-log
 * axes (verification, 1:N and liveness), and CMC; PNG, SVG or PDF by file extension. Several series
 * share one plot so variants can be compared; the legend carries each series' EER / AUC / rank-1.
 * Text uses cairo's toy font API: enough for tick labels and legends, no layout engine needed.
 * Drawing only: every number comes from the reports of src/eval/.
 */
#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <cairo.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/core.h"
#include "eval/eval.h"

#define PW 800.0 /* page size in pixels (PNG) or points (SVG, PDF) */
#define PH 600.0
#define LEFT 84.0 /* plot area margins: room for tick labels and axis titles */
#define RIGHT 24.0
#define TOP 48.0
#define BOTTOM 62.0
#define LOG_FLOOR 1e-8 /* no axis goes below 1e-8: 100 million comparisons is beyond any data set here */

/* tab10: distinct for the first ten series; later ones repeat the colours dashed */
static const double palette[10][3] = {
    {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
    {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
    {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812}};

typedef struct axis {
    int log;        /* log10 scale */
    double lo, hi;  /* value range */
    double p0, p1;  /* pixel of lo, of hi */
} axis;

typedef enum plot_kind { PLOT_ROC, PLOT_DET, PLOT_CMC } plot_kind;

typedef enum legend_corner { BOTTOM_RIGHT, BOTTOM_LEFT } legend_corner;

static double ax_pos(const axis *a, double v) {
    double t = a->log ? (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo))
                      : (v - a->lo) / (a->hi - a->lo);
    return a->p0 + t * (a->p1 - a->p0);
}

/* Can v be placed on the axis at all (log axes have no place for 0)? */
static int ax_ok(const axis *a, double v) { return isfinite(v) && (!a->log || v > 0); }

/* ---- surfaces ------------------------------------------------------------------------------ */
typedef enum fmt { FMT_PNG, FMT_SVG, FMT_PDF } fmt;

static int has_ext(const char *path, const char *ext) {
    size_t n = strlen(path), e = strlen(ext);
    return n > e && strcasecmp(path + n - e, ext) == 0;
}

static fp_status open_surface(const char *path, cairo_surface_t **out, fmt *f) {
    cairo_surface_t *s;
    if (has_ext(path, ".png")) {
        *f = FMT_PNG;
        s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)PW, (int)PH);
    } else if (has_ext(path, ".svg")) {
        *f = FMT_SVG;
        s = cairo_svg_surface_create(path, PW, PH);
    } else if (has_ext(path, ".pdf")) {
        *f = FMT_PDF;
        s = cairo_pdf_surface_create(path, PW, PH);
    } else {
        return fp_fail(FP_ERR_UNSUPPORTED, "%s: plot format by extension: .png, .svg or .pdf", path);
    }
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        fp_status st = fp_fail(FP_ERR_IO, "%s: %s", path, cairo_status_to_string(cairo_surface_status(s)));
        cairo_surface_destroy(s);
        return st;
    }
    *out = s;
    return FP_OK;
}

static fp_status close_surface(const char *path, cairo_surface_t *s, fmt f) {
    cairo_status_t cs;
    if (f == FMT_PNG) cs = cairo_surface_write_to_png(s, path);
    else {
        cairo_surface_finish(s); /* vector surfaces write the file here */
        cs = cairo_surface_status(s);
    }
    cairo_surface_destroy(s);
    if (cs != CAIRO_STATUS_SUCCESS) return fp_fail(FP_ERR_IO, "%s: %s", path, cairo_status_to_string(cs));
    return FP_OK;
}

/* ---- text ---------------------------------------------------------------------------------- */
static void font(cairo_t *cr, double size, int bold) {
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

/* Draws text with its anchor at (x, y): ax, ay in 0..1 pick left/centre/right and top/middle/bottom. */
static void text_at(cairo_t *cr, const char *s, double x, double y, double ax, double ay) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - e.x_bearing - ax * e.width, y - e.y_bearing - ay * e.height);
    cairo_show_text(cr, s);
}

static void tick_label(char *buf, size_t n, double v, int log, double step) {
    if (log) {
        int k = (int)lround(log10(v));
        if (k >= -2) snprintf(buf, n, "%g", v); /* 1, 0.1, 0.01 read better than 1e-2 */
        else snprintf(buf, n, "1e%d", k);
    } else {
        int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
        snprintf(buf, n, "%.*f", dec, v);
    }
}

/* 1, 2 or 5 times a power of ten, about range / 8 */
static double nice_step(double range) {
    double raw = range / 8, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

/* ---- frame --------------------------------------------------------------------------------- */
static void grid_line(cairo_t *cr, int vertical, double p, const axis *other, double grey) {
    cairo_set_source_rgb(cr, grey, grey, grey);
    cairo_set_line_width(cr, 1);
    if (vertical) {
        cairo_move_to(cr, floor(p) + 0.5, other->p0);
        cairo_line_to(cr, floor(p) + 0.5, other->p1);
    } else {
        cairo_move_to(cr, other->p0, floor(p) + 0.5);
        cairo_line_to(cr, other->p1, floor(p) + 0.5);
    }
    cairo_stroke(cr);
}

/* Grid lines and tick labels of one axis (vertical = the x axis, whose grid lines are vertical). */
static void draw_ticks(cairo_t *cr, const axis *a, const axis *other, int vertical) {
    char buf[32];
    font(cr, 11, 0);
    if (a->log) {
        int k0 = (int)floor(log10(a->lo) + 1e-9), k1 = (int)ceil(log10(a->hi) - 1e-9);
        for (int k = k0; k <= k1; k++) {
            double d = pow(10, k);
            for (int m = 2; m <= 9 && k < k1; m++) grid_line(cr, vertical, ax_pos(a, m * d), other, 0.93);
            if (d < a->lo * (1 - 1e-9) || d > a->hi * (1 + 1e-9)) continue;
            double p = ax_pos(a, d);
            grid_line(cr, vertical, p, other, 0.80);
            tick_label(buf, sizeof buf, d, 1, 0);
            cairo_set_source_rgb(cr, 0, 0, 0);
            if (vertical) text_at(cr, buf, p, other->p0 + 6, 0.5, 0);
            else text_at(cr, buf, other->p0 - 6, p, 1, 0.5);
        }
    } else {
        double step = nice_step(a->hi - a->lo);
        for (double v = ceil(a->lo / step - 1e-9) * step; v <= a->hi + step * 1e-6; v += step) {
            double p = ax_pos(a, v);
            grid_line(cr, vertical, p, other, 0.85);
            tick_label(buf, sizeof buf, fabs(v) < step * 1e-6 ? 0 : v, 0, step);
            cairo_set_source_rgb(cr, 0, 0, 0);
            if (vertical) text_at(cr, buf, p, other->p0 + 6, 0.5, 0);
            else text_at(cr, buf, other->p0 - 6, p, 1, 0.5);
        }
    }
}

static void draw_frame(cairo_t *cr, const char *title, const char *xl, const char *yl, const axis *x,
                       const axis *y) {
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    draw_ticks(cr, x, y, 1);
    draw_ticks(cr, y, x, 0);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, x->p0 + 0.5, y->p1 + 0.5, x->p1 - x->p0, y->p0 - y->p1);
    cairo_stroke(cr);
    font(cr, 16, 1);
    text_at(cr, title, PW / 2, TOP / 2, 0.5, 0.5);
    font(cr, 13, 0);
    text_at(cr, xl, (x->p0 + x->p1) / 2, PH - 12, 0.5, 1);
    cairo_save(cr);
    cairo_translate(cr, 18, (y->p0 + y->p1) / 2);
    cairo_rotate(cr, -M_PI / 2);
    text_at(cr, yl, 0, 0, 0.5, 0.5);
    cairo_restore(cr);
}

static void series_style(cairo_t *cr, int i) {
    const double *c = palette[i % 10];
    cairo_set_source_rgb(cr, c[0], c[1], c[2]);
    cairo_set_line_width(cr, 2);
    static const double dash[2] = {7, 4};
    cairo_set_dash(cr, dash, i >= 10 ? 2 : 0, 0);
}

static void legend_text(char *buf, size_t n, const fp_plot_series *s, int i, plot_kind kind) {
    char extra[96] = "";
    if (kind == PLOT_CMC) {
        if (s->cmc && s->n_ranks > 0) snprintf(extra, sizeof extra, " (rank-1 %.2f %%)", 100 * s->cmc[0]);
    } else if (!isnan(s->eer) && !isnan(s->auc)) {
        snprintf(extra, sizeof extra, " (EER %.2f %%, AUC %.4f)", 100 * s->eer, s->auc);
    } else if (!isnan(s->eer)) {
        snprintf(extra, sizeof extra, " (EER %.2f %%)", 100 * s->eer);
    } else if (!isnan(s->auc)) {
        snprintf(extra, sizeof extra, " (AUC %.4f)", s->auc);
    }
    if (s->label) snprintf(buf, n, "%s%s", s->label, extra);
    else snprintf(buf, n, "series %d%s", i + 1, extra);
}

static void draw_legend(cairo_t *cr, const fp_plot_series *s, int n, plot_kind kind, const axis *x,
                        const axis *y, legend_corner corner) {
    char buf[320];
    font(cr, 12, 0);
    double wmax = 0, row = 18, pad = 8, swatch = 26;
    for (int i = 0; i < n; i++) {
        cairo_text_extents_t e;
        legend_text(buf, sizeof buf, &s[i], i, kind);
        cairo_text_extents(cr, buf, &e);
        if (e.x_advance > wmax) wmax = e.x_advance;
    }
    double w = pad * 3 + swatch + wmax, h = pad * 2 + row * n;
    double x0 = corner == BOTTOM_RIGHT ? x->p1 - 10 - w : x->p0 + 10, y0 = y->p0 - 10 - h;
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_rectangle(cr, x0 + 0.5, y0 + 0.5, w, h);
    cairo_set_source_rgba(cr, 1, 1, 1, 0.9);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    for (int i = 0; i < n; i++) {
        double cy = y0 + pad + row * (i + 0.5);
        series_style(cr, i);
        cairo_move_to(cr, x0 + pad, cy);
        cairo_line_to(cr, x0 + pad + swatch, cy);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        legend_text(buf, sizeof buf, &s[i], i, kind);
        text_at(cr, buf, x0 + pad * 2 + swatch, cy, 0, 0.5);
    }
}

/* ---- the plots ----------------------------------------------------------------------------- */
/* value of point p on the x / y axis of a trade-off plot */
static double pt_x(const fp_tradeoff_point *p) { return p->fpr; }
static double pt_y(const fp_tradeoff_point *p, plot_kind kind) { return kind == PLOT_ROC ? 1 - p->fnr : p->fnr; }

/* Lowest decade holding a positive value of the series, clamped to [LOG_FLOOR, 0.1]. */
static double log_floor(const fp_plot_series *s, int n, int use_y, plot_kind kind) {
    double mn = INFINITY;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < s[i].n_points; k++) {
            double v = use_y ? pt_y(&s[i].points[k], kind) : pt_x(&s[i].points[k]);
            if (v > 0 && v < mn) mn = v;
        }
    if (!isfinite(mn)) return 1e-4;
    return fmin(0.1, fmax(LOG_FLOOR, pow(10, floor(log10(mn) + 1e-9))));
}

/* Linear axis from a tenth below the smallest value (>= 0) to 1: TAR and CMC crowd near the top. */
static double lin_floor(double mn) {
    if (!isfinite(mn)) return 0;
    return fmin(0.9, fmax(0, floor(mn * 10 + 1e-9) / 10));
}

static fp_status check_args(const char *path, const fp_plot_series *s, int n, plot_kind kind) {
    if (!path) return fp_fail(FP_ERR_INVALID_ARG, "plot: NULL path");
    if (!s || n < 1) return fp_fail(FP_ERR_INVALID_ARG, "%s: no series to plot", path);
    for (int i = 0; i < n; i++) {
        if (kind == PLOT_CMC ? (s[i].n_ranks < 0 || (s[i].n_ranks && !s[i].cmc))
                             : (s[i].n_points < 0 || (s[i].n_points && !s[i].points)))
            return fp_fail(FP_ERR_INVALID_ARG, "%s: series %d has no data array", path, i);
    }
    return FP_OK;
}

static fp_status plot_tradeoff(const char *path, const char *title, const char *xl, const char *yl,
                               const fp_plot_series *s, int n, plot_kind kind) {
    fp_status st = check_args(path, s, n, kind);
    if (st) return st;
    axis x = {1, log_floor(s, n, 0, kind), 1, LEFT, PW - RIGHT};
    axis y = {kind == PLOT_DET, 0, 1, PH - BOTTOM, TOP};
    if (kind == PLOT_DET) {
        y.lo = log_floor(s, n, 1, kind);
    } else { /* ROC: TAR over the visible FAR range */
        double mn = INFINITY;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < s[i].n_points; k++)
                if (s[i].points[k].fpr >= x.lo) mn = fmin(mn, 1 - s[i].points[k].fnr);
        y.lo = lin_floor(mn);
    }
    cairo_surface_t *surf;
    fmt f;
    if ((st = open_surface(path, &surf, &f))) return st;
    cairo_t *cr = cairo_create(surf);
    draw_frame(cr, title, xl, yl, &x, &y);
    cairo_save(cr);
    cairo_rectangle(cr, x.p0, y.p1, x.p1 - x.p0, y.p0 - y.p1);
    cairo_clip(cr);
    if (kind == PLOT_DET) { /* the diagonal FAR = FRR: a curve meets it at its EER */
        double v0 = fmax(x.lo, y.lo);
        cairo_set_source_rgb(cr, 0.55, 0.55, 0.55);
        cairo_set_line_width(cr, 1);
        static const double dash[2] = {3, 3};
        cairo_set_dash(cr, dash, 2, 0);
        cairo_move_to(cr, ax_pos(&x, v0), ax_pos(&y, v0));
        cairo_line_to(cr, ax_pos(&x, 1), ax_pos(&y, 1));
        cairo_stroke(cr);
    }
    for (int i = 0; i < n; i++) {
        series_style(cr, i);
        int pen = 0; /* 0: the next drawable point starts a new stroke (after a log-0 gap) */
        for (int k = 0; k < s[i].n_points; k++) {
            double vx = pt_x(&s[i].points[k]), vy = pt_y(&s[i].points[k], kind);
            if (!ax_ok(&x, vx) || !ax_ok(&y, vy)) {
                pen = 0;
                continue;
            }
            if (pen) cairo_line_to(cr, ax_pos(&x, vx), ax_pos(&y, vy));
            else cairo_move_to(cr, ax_pos(&x, vx), ax_pos(&y, vy));
            pen = 1;
        }
        cairo_stroke(cr);
    }
    cairo_restore(cr);
    draw_legend(cr, s, n, kind, &x, &y, kind == PLOT_DET ? BOTTOM_LEFT : BOTTOM_RIGHT);
    cairo_destroy(cr);
    return close_surface(path, surf, f);
}

fp_status fp_plot_roc(const char *path, const char *title, const fp_plot_series *series, int n) {
    return plot_tradeoff(path, title ? title : "ROC", "FAR (log scale)", "TAR = 1 - FRR", series, n,
                         PLOT_ROC);
}

fp_status fp_plot_det(const char *path, const char *title, const char *x_label, const char *y_label,
                      const fp_plot_series *series, int n) {
    char xl[96], yl[96];
    snprintf(xl, sizeof xl, "%s (log scale)", x_label ? x_label : "FAR");
    snprintf(yl, sizeof yl, "%s (log scale)", y_label ? y_label : "FRR");
    return plot_tradeoff(path, title ? title : "DET", xl, yl, series, n, PLOT_DET);
}

fp_status fp_plot_pad_det(const char *path, const char *title, const fp_plot_series *series, int n) {
    return fp_plot_det(path, title ? title : "Liveness DET", "APCER (max over attack types)", "BPCER",
                       series, n);
}

fp_status fp_plot_cmc(const char *path, const char *title, const fp_plot_series *s, int n) {
    fp_status st = check_args(path, s, n, PLOT_CMC);
    if (st) return st;
    int rmax = 2;
    double mn = INFINITY;
    for (int i = 0; i < n; i++) {
        if (s[i].n_ranks > rmax) rmax = s[i].n_ranks;
        for (int r = 0; r < s[i].n_ranks; r++)
            if (isfinite(s[i].cmc[r])) mn = fmin(mn, s[i].cmc[r]);
    }
    axis x = {0, 1, rmax, LEFT, PW - RIGHT};
    axis y = {0, lin_floor(mn), 1, PH - BOTTOM, TOP};
    cairo_surface_t *surf;
    fmt f;
    if ((st = open_surface(path, &surf, &f))) return st;
    cairo_t *cr = cairo_create(surf);
    draw_frame(cr, title ? title : "CMC", "rank", "identification rate", &x, &y);
    cairo_save(cr);
    cairo_rectangle(cr, x.p0 - 4, y.p1 - 4, x.p1 - x.p0 + 8, y.p0 - y.p1 + 8);
    cairo_clip(cr);
    for (int i = 0; i < n; i++) {
        series_style(cr, i);
        int pen = 0;
        for (int r = 0; r < s[i].n_ranks; r++) {
            if (!isfinite(s[i].cmc[r])) {
                pen = 0;
                continue;
            }
            double px = ax_pos(&x, r + 1), py = ax_pos(&y, s[i].cmc[r]);
            if (pen) cairo_line_to(cr, px, py);
            else cairo_move_to(cr, px, py);
            pen = 1;
        }
        cairo_stroke(cr);
        for (int r = 0; r < s[i].n_ranks; r++) /* dots mark the ranks: CMC is defined only there */
            if (isfinite(s[i].cmc[r])) {
                cairo_arc(cr, ax_pos(&x, r + 1), ax_pos(&y, s[i].cmc[r]), 3, 0, 2 * M_PI);
                cairo_fill(cr);
            }
    }
    cairo_restore(cr);
    draw_legend(cr, s, n, PLOT_CMC, &x, &y, BOTTOM_RIGHT);
    cairo_destroy(cr);
    return close_surface(path, surf, f);
}

/* ---- series from reports ------------------------------------------------------------------- */
fp_plot_series fp_verify_series(const fp_verify_report *r, const char *label) {
    fp_plot_series s = {label, NULL, 0, NULL, 0, NAN, NAN};
    if (r) {
        s.points = r->curve;
        s.n_points = r->n_curve;
        s.eer = r->eer;
        s.auc = r->auc;
    }
    return s;
}

fp_plot_series fp_ident_series(const fp_ident_report *r, const char *label) {
    fp_plot_series s = {label, NULL, 0, NULL, 0, NAN, NAN};
    if (r) {
        s.points = r->curve;
        s.n_points = r->n_curve;
        s.cmc = r->cmc;
        s.n_ranks = FP_EVAL_CMC_RANKS;
    }
    return s;
}

fp_plot_series fp_pad_series(const fp_pad_report *r, const char *label) {
    fp_plot_series s = {label, NULL, 0, NULL, 0, NAN, NAN};
    if (r) {
        s.points = r->curve;
        s.n_points = r->n_curve;
        s.eer = r->eer;
    }
    return s;
}

/* ---- process exit -------------------------------------------------------------------------- */
/* The toy text API goes through fontconfig, whose caches live until exit (a bounded amount: they do
 * not grow with the number of plots) and look like leaks to LeakSanitizer. FcFini is looked up at run
 * time because the library links cairo only; fontconfig is already loaded as cairo's dependency. */
void fp_plot_shutdown(void) {
    cairo_debug_reset_static_data();
    void *fc = dlopen("libfontconfig.so.1", RTLD_LAZY);
    if (!fc) return;
    void *sym = dlsym(fc, "FcFini");
    void (*fini)(void);
    memcpy(&fini, &sym, sizeof fini); /* object -> function pointer without a cast ISO C forbids */
    if (fini) fini();
    dlclose(fc);
}
