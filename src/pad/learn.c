/*
 * learn.c - the learners of the presentation-attack detector, all on standardised features
 * (z-scores with the training rows' mean and standard deviation, stored in the model):
 *
 *  logistic    L2-regularised logistic regression fitted by Newton's method (IRLS) with a
 *              backtracking line search: the optimum is unique, so the fit does not depend on the
 *              seed, an initial learning rate or an epoch count, and converges in ~10 steps.
 *  linear SVM  L2-regularised squared-hinge SVM by dual coordinate descent (Hsieh et al., ICML
 *              2008, liblinear's solver); the margin goes through a sigmoid to give a 0..1 score.
 *  MLP         one tanh hidden layer, sigmoid output, weighted cross-entropy + L2, Adam on seeded
 *              mini-batches.
 *
 * Both classes get the same total weight (weight n / (2 n_class) per row) so the score is not pulled
 * towards whichever class the operator captured more of. Sums run in a fixed order in double
 * precision, so a fit is deterministic for a given seed.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "pad/pad.h"

int pad_weight_count(int learner, int dim, int hidden) {
    if (dim < 1) return 0;
    if (learner == FP_PAD_MLP) return hidden >= 1 ? hidden * dim + hidden + hidden + 1 : 0;
    if (learner == FP_PAD_LOGISTIC || learner == FP_PAD_LINEAR_SVM) return dim + 1;
    return 0;
}

void pad_classifier_free(pad_classifier *c) {
    if (!c) return;
    free(c->mean);
    free(c->inv_std);
    free(c->w);
    memset(c, 0, sizeof *c);
}

static double sigmoid(double s) { return s >= 0 ? 1.0 / (1.0 + exp(-s)) : exp(s) / (1.0 + exp(s)); }

float pad_predict(const pad_classifier *c, const float *x) {
    const int d = c->dim;
    double s;
    if (c->learner == FP_PAD_MLP) {
        const int h = c->hidden;
        const float *W1 = c->w, *b1 = c->w + (size_t)h * d, *w2 = b1 + h, *b2 = w2 + h;
        s = *b2;
        for (int j = 0; j < h; j++) {
            double a = b1[j];
            const float *row = W1 + (size_t)j * d;
            for (int i = 0; i < d; i++) a += row[i] * ((x[i] - c->mean[i]) * c->inv_std[i]);
            s += w2[j] * tanh(a);
        }
    } else {
        s = c->w[d];
        for (int i = 0; i < d; i++) s += c->w[i] * ((x[i] - c->mean[i]) * c->inv_std[i]);
    }
    return (float)sigmoid(s);
}

/* ---- shared: standardised copy of the training rows ---- */
typedef struct fitdata {
    int n, d;
    double *Z;  /* [n][d] z-scores */
    double *t;  /* [n] target 1 / 0 */
    double *c;  /* [n] class weight */
} fitdata;

static void fitdata_free(fitdata *f) {
    free(f->Z);
    free(f->t);
    free(f->c);
}

static fp_status standardise(const float *X, int dim, const uint8_t *y, const int *idx, int n, pad_classifier *out,
                             fitdata *f) {
    memset(f, 0, sizeof *f);
    f->n = n;
    f->d = dim;
    out->mean = malloc(sizeof(float) * (size_t)dim);
    out->inv_std = malloc(sizeof(float) * (size_t)dim);
    f->Z = malloc(sizeof(double) * (size_t)n * dim);
    f->t = malloc(sizeof(double) * (size_t)n);
    f->c = malloc(sizeof(double) * (size_t)n);
    double *mu = calloc((size_t)dim, sizeof(double)), *var = calloc((size_t)dim, sizeof(double));
    if (!out->mean || !out->inv_std || !f->Z || !f->t || !f->c || !mu || !var) {
        free(mu);
        free(var);
        return fp_fail(FP_ERR_NOMEM, "pad: out of memory (%d x %d training matrix)", n, dim);
    }
    int npos = 0;
    for (int r = 0; r < n; r++) {
        const float *x = X + (size_t)idx[r] * dim;
        for (int i = 0; i < dim; i++) mu[i] += x[i];
        npos += y[idx[r]] != 0;
    }
    for (int i = 0; i < dim; i++) mu[i] /= n;
    for (int r = 0; r < n; r++) {
        const float *x = X + (size_t)idx[r] * dim;
        for (int i = 0; i < dim; i++) var[i] += (x[i] - mu[i]) * (x[i] - mu[i]);
    }
    for (int i = 0; i < dim; i++) {
        const double sd = sqrt(var[i] / n);
        out->mean[i] = (float)mu[i];
        /* a constant feature (e.g. an LBP bin never hit) gets weight 0 through inv_std 0 */
        out->inv_std[i] = sd > 1e-7 ? (float)(1.0 / sd) : 0.0f;
    }
    free(mu);
    free(var);
    const double wpos = n / (2.0 * npos), wneg = n / (2.0 * (n - npos));
    for (int r = 0; r < n; r++) {
        const float *x = X + (size_t)idx[r] * dim;
        double *z = f->Z + (size_t)r * dim;
        /* same float arithmetic as pad_predict, so training and scoring see identical inputs */
        for (int i = 0; i < dim; i++) z[i] = (float)((x[i] - out->mean[i]) * out->inv_std[i]);
        f->t[r] = y[idx[r]] ? 1.0 : 0.0;
        f->c[r] = y[idx[r]] ? wpos : wneg;
    }
    return FP_OK;
}

/* ---- logistic regression, Newton / IRLS ---- */
static double logistic_objective(const fitdata *f, const double *w, double l2, double *s_out) {
    const int n = f->n, d = f->d;
    double loss = 0;
    for (int r = 0; r < n; r++) {
        const double *z = f->Z + (size_t)r * d;
        double s = w[d];
        for (int i = 0; i < d; i++) s += w[i] * z[i];
        if (s_out) s_out[r] = s;
        /* log(1 + e^-m) for margin m = +-s, stable for large |s| */
        const double m = f->t[r] > 0.5 ? s : -s;
        loss += f->c[r] * (m > 0 ? log1p(exp(-m)) : -m + log1p(exp(m)));
    }
    double reg = 0;
    for (int i = 0; i < d; i++) reg += w[i] * w[i];
    return loss / n + 0.5 * l2 * reg;
}

/* Cholesky solve of the symmetric positive definite A x = b (A overwritten); 0 if not SPD. */
static int cholesky_solve(double *A, int m, double *b) {
    for (int j = 0; j < m; j++) {
        double s = A[(size_t)j * m + j];
        for (int k = 0; k < j; k++) s -= A[(size_t)j * m + k] * A[(size_t)j * m + k];
        if (!(s > 0)) return 0;
        const double l = sqrt(s);
        A[(size_t)j * m + j] = l;
        for (int i = j + 1; i < m; i++) {
            double t = A[(size_t)i * m + j];
            const double *ri = A + (size_t)i * m, *rj = A + (size_t)j * m;
            for (int k = 0; k < j; k++) t -= ri[k] * rj[k];
            A[(size_t)i * m + j] = t / l;
        }
    }
    for (int i = 0; i < m; i++) { /* L y = b */
        double t = b[i];
        for (int k = 0; k < i; k++) t -= A[(size_t)i * m + k] * b[k];
        b[i] = t / A[(size_t)i * m + i];
    }
    for (int i = m - 1; i >= 0; i--) { /* L^T x = y */
        double t = b[i];
        for (int k = i + 1; k < m; k++) t -= A[(size_t)k * m + i] * b[k];
        b[i] = t / A[(size_t)i * m + i];
    }
    return 1;
}

static fp_status fit_logistic(const fitdata *f, double l2, double *w) {
    const int n = f->n, d = f->d, m = d + 1;
    double *H = malloc(sizeof(double) * (size_t)m * m), *g = malloc(sizeof(double) * (size_t)m),
           *s = malloc(sizeof(double) * (size_t)n), *wn = malloc(sizeof(double) * (size_t)m),
           *zr = malloc(sizeof(double) * (size_t)m);
    fp_status st = FP_OK;
    if (!H || !g || !s || !wn || !zr) {
        st = fp_fail(FP_ERR_NOMEM, "pad: out of memory (Hessian %d x %d)", m, m);
        goto done;
    }
    memset(w, 0, sizeof(double) * (size_t)m);
    double obj = logistic_objective(f, w, l2, s);
    for (int it = 0; it < 50; it++) {
        memset(H, 0, sizeof(double) * (size_t)m * m);
        memset(g, 0, sizeof(double) * (size_t)m);
        for (int r = 0; r < n; r++) {
            const double p = sigmoid(s[r]);
            const double gr = f->c[r] * (p - f->t[r]) / n, hr = f->c[r] * p * (1 - p) / n;
            memcpy(zr, f->Z + (size_t)r * d, sizeof(double) * (size_t)d);
            zr[d] = 1.0;
            for (int i = 0; i < m; i++) {
                g[i] += gr * zr[i];
                const double a = hr * zr[i];
                double *Hi = H + (size_t)i * m;
                for (int j = 0; j <= i; j++) Hi[j] += a * zr[j]; /* lower triangle is all Cholesky reads */
            }
        }
        for (int i = 0; i < d; i++) {
            g[i] += l2 * w[i];
            H[(size_t)i * m + i] += l2;
        }
        H[(size_t)d * m + d] += 1e-9; /* the bias is not regularised; keep H definite anyway */
        double gmax = 0;
        for (int i = 0; i < m; i++) gmax = fmax(gmax, fabs(g[i]));
        if (gmax < 1e-9) break;
        if (!cholesky_solve(H, m, g)) {
            st = fp_fail(FP_ERR_INTERNAL, "pad: logistic Hessian not positive definite (l2 %g)", l2);
            goto done;
        }
        /* backtracking: halve the Newton step until the objective does not rise */
        double step = 1.0, nobj = obj;
        int accepted = 0;
        for (int ls = 0; ls < 40; ls++, step *= 0.5) {
            for (int i = 0; i < m; i++) wn[i] = w[i] - step * g[i];
            nobj = logistic_objective(f, wn, l2, NULL);
            if (nobj <= obj + 1e-12) {
                accepted = 1;
                break;
            }
        }
        if (!accepted) break;
        memcpy(w, wn, sizeof(double) * (size_t)m);
        const double gain = obj - nobj;
        obj = logistic_objective(f, w, l2, s);
        if (gain < 1e-10 * (1 + fabs(obj))) break;
    }
done:
    free(H);
    free(g);
    free(s);
    free(wn);
    free(zr);
    return st;
}

/* ---- linear SVM, squared hinge, dual coordinate descent ---- */
static fp_status fit_svm(const fitdata *f, double l2, uint64_t seed, int epochs, double *w) {
    const int n = f->n, d = f->d, m = d + 1;
    double *alpha = calloc((size_t)n, sizeof(double)), *qii = malloc(sizeof(double) * (size_t)n);
    int *order = malloc(sizeof(int) * (size_t)n);
    if (!alpha || !qii || !order) {
        free(alpha);
        free(qii);
        free(order);
        return fp_fail(FP_ERR_NOMEM, "pad: out of memory (SVM, %d rows)", n);
    }
    /* primal: l2/2 |w|^2 + (1/n) sum c_i max(0, 1 - y_i w.x_i)^2, i.e. liblinear's C_i = c_i / (n l2)
     * after dividing by l2; the bias is an extra constant feature (regularised, as in liblinear) */
    memset(w, 0, sizeof(double) * (size_t)m);
    for (int r = 0; r < n; r++) {
        const double *z = f->Z + (size_t)r * d;
        double q = 1.0;
        for (int i = 0; i < d; i++) q += z[i] * z[i];
        const double Ci = f->c[r] / (n * l2);
        qii[r] = q + 0.5 / Ci;
        order[r] = r;
    }
    pad_rng rng;
    pad_rng_seed(&rng, seed);
    for (int ep = 0; ep < epochs; ep++) {
        pad_rng_shuffle(&rng, order, n);
        double maxpg = 0;
        for (int k = 0; k < n; k++) {
            const int r = order[k];
            const double *z = f->Z + (size_t)r * d;
            const double y = f->t[r] > 0.5 ? 1.0 : -1.0;
            const double Ci = f->c[r] / (n * l2);
            double s = w[d];
            for (int i = 0; i < d; i++) s += w[i] * z[i];
            const double G = y * s - 1.0 + alpha[r] * 0.5 / Ci;
            const double pg = alpha[r] == 0 ? fmin(G, 0) : G;
            maxpg = fmax(maxpg, fabs(pg));
            if (pg == 0) continue;
            const double old = alpha[r];
            alpha[r] = fmax(old - G / qii[r], 0.0);
            const double delta = (alpha[r] - old) * y;
            for (int i = 0; i < d; i++) w[i] += delta * z[i];
            w[d] += delta;
        }
        if (maxpg < 1e-4) break;
    }
    free(alpha);
    free(qii);
    free(order);
    return FP_OK;
}

/* ---- MLP: d -> hidden tanh -> 1, Adam ---- */
static fp_status fit_mlp(const fitdata *f, double l2, int hidden, int epochs, uint64_t seed, double *w) {
    const int n = f->n, d = f->d, h = hidden;
    const int nw = h * d + h + h + 1;
    enum { BATCH = 32 };
    double *mo = calloc((size_t)nw, sizeof(double)), *ve = calloc((size_t)nw, sizeof(double)),
           *gr = malloc(sizeof(double) * (size_t)nw), *act = malloc(sizeof(double) * (size_t)h);
    int *order = malloc(sizeof(int) * (size_t)n);
    if (!mo || !ve || !gr || !act || !order) {
        free(mo);
        free(ve);
        free(gr);
        free(act);
        free(order);
        return fp_fail(FP_ERR_NOMEM, "pad: out of memory (MLP %d x %d)", h, d);
    }
    double *W1 = w, *b1 = w + (size_t)h * d, *w2 = b1 + h, *b2 = w2 + h;
    pad_rng rng;
    pad_rng_seed(&rng, seed);
    const double s1 = sqrt(1.0 / d), s2 = sqrt(1.0 / h); /* LeCun init for tanh */
    for (int i = 0; i < h * d; i++) W1[i] = s1 * pad_rng_normal(&rng);
    for (int j = 0; j < h; j++) b1[j] = 0, w2[j] = s2 * pad_rng_normal(&rng);
    *b2 = 0;
    for (int r = 0; r < n; r++) order[r] = r;
    const double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    long step = 0;
    for (int ep = 0; ep < epochs; ep++) {
        pad_rng_shuffle(&rng, order, n);
        for (int b0 = 0; b0 < n; b0 += BATCH) {
            const int bn = n - b0 < BATCH ? n - b0 : BATCH;
            memset(gr, 0, sizeof(double) * (size_t)nw);
            double *gW1 = gr, *gb1 = gr + (size_t)h * d, *gw2 = gb1 + h, *gb2 = gw2 + h;
            for (int k = 0; k < bn; k++) {
                const int r = order[b0 + k];
                const double *z = f->Z + (size_t)r * d;
                double s = *b2;
                for (int j = 0; j < h; j++) {
                    double a = b1[j];
                    const double *row = W1 + (size_t)j * d;
                    for (int i = 0; i < d; i++) a += row[i] * z[i];
                    act[j] = tanh(a);
                    s += w2[j] * act[j];
                }
                const double e = f->c[r] * (sigmoid(s) - f->t[r]) / bn; /* dLoss/ds */
                *gb2 += e;
                for (int j = 0; j < h; j++) {
                    gw2[j] += e * act[j];
                    const double da = e * w2[j] * (1 - act[j] * act[j]);
                    gb1[j] += da;
                    double *grow = gW1 + (size_t)j * d;
                    for (int i = 0; i < d; i++) grow[i] += da * z[i];
                }
            }
            for (int i = 0; i < h * d; i++) gW1[i] += l2 * W1[i];
            for (int j = 0; j < h; j++) gw2[j] += l2 * w2[j];
            step++;
            const double c1 = 1 - pow(beta1, (double)step), c2 = 1 - pow(beta2, (double)step);
            for (int i = 0; i < nw; i++) {
                mo[i] = beta1 * mo[i] + (1 - beta1) * gr[i];
                ve[i] = beta2 * ve[i] + (1 - beta2) * gr[i] * gr[i];
                w[i] -= lr * (mo[i] / c1) / (sqrt(ve[i] / c2) + eps);
            }
        }
    }
    free(mo);
    free(ve);
    free(gr);
    free(act);
    free(order);
    return FP_OK;
}

fp_status pad_fit(const float *X, int dim, const uint8_t *y, const int *idx, int n, const pad_fit_params *p,
                  pad_classifier *out) {
    memset(out, 0, sizeof *out);
    const int nw = pad_weight_count(p->learner, dim, p->hidden);
    if (!nw) return fp_fail(FP_ERR_INVALID_ARG, "pad: learner %d with %d hidden units", p->learner, p->hidden);
    int npos = 0;
    for (int r = 0; r < n; r++) npos += y[idx[r]] != 0;
    if (npos == 0 || npos == n)
        return fp_fail(FP_ERR_INVALID_ARG, "pad: training rows hold only %s presentations",
                       npos ? "bona fide" : "attack");
    fitdata f;
    fp_status st = standardise(X, dim, y, idx, n, out, &f);
    double *w = calloc((size_t)nw, sizeof(double));
    if (st == FP_OK && !w) st = fp_fail(FP_ERR_NOMEM, "pad: out of memory (%d weights)", nw);
    if (st == FP_OK) {
        if (p->learner == FP_PAD_LOGISTIC) st = fit_logistic(&f, p->l2, w);
        else if (p->learner == FP_PAD_LINEAR_SVM) st = fit_svm(&f, p->l2, p->seed, p->epochs, w);
        else st = fit_mlp(&f, p->l2, p->hidden, p->epochs, p->seed, w);
    }
    if (st == FP_OK && !(out->w = malloc(sizeof(float) * (size_t)nw)))
        st = fp_fail(FP_ERR_NOMEM, "pad: out of memory (%d weights)", nw);
    if (st == FP_OK) {
        for (int i = 0; i < nw; i++) {
            out->w[i] = (float)w[i];
            if (!isfinite(out->w[i])) st = fp_fail(FP_ERR_INTERNAL, "pad: weight %d diverged", i);
        }
        out->learner = p->learner;
        out->dim = dim;
        out->hidden = p->learner == FP_PAD_MLP ? p->hidden : 0;
        out->n_w = nw;
    }
    free(w);
    fitdata_free(&f);
    if (st != FP_OK) pad_classifier_free(out);
    return st;
}
