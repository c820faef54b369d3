/*
 * sweep.c - the machinery every metric of src/eval/ shares: float scores as order-preserving 32-bit
 * keys, an in-place radix sort (20 million impostor scores sort in a fraction of a second with no
 * second buffer), the threshold for an allowed error count, the streaming threshold sweep (EER,
 * down-sampled curve, operating points at target rates, the exact Mann-Whitney count), and the
 * Clopper-Pearson bound used to say how far a measured rate can be trusted.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "eval/eval.h"

/* ---- keys ---------------------------------------------------------------------------------- */
uint32_t ev_key(float f) {
    if (f == 0.0f) f = 0.0f; /* -0 == +0 as scores: one key, or ties would split */
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

float ev_unkey(uint32_t k) {
    uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

int64_t ev_keys_from(const float *src, int64_t n, uint32_t *keys) {
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (!isnan(src[i])) keys[m++] = ev_key(src[i]);
    return m;
}

static void insertion_sort(uint32_t *a, int64_t n) {
    for (int64_t i = 1; i < n; i++) {
        uint32_t v = a[i];
        int64_t j = i;
        for (; j > 0 && a[j - 1] > v; j--) a[j] = a[j - 1];
        a[j] = v;
    }
}

/* American flag sort on the byte at `shift`, then each bucket on the next byte. The permutation
 * runs in place by cycles (each key moves once per level), so memory stays at the key array. */
static void flag_sort(uint32_t *a, int64_t n, int shift) {
    if (n <= 48) {
        insertion_sort(a, n);
        return;
    }
    int64_t count[256] = {0}, next[256], end[256];
    for (int64_t i = 0; i < n; i++) count[(a[i] >> shift) & 255u]++;
    int64_t pos = 0;
    for (int b = 0; b < 256; b++) {
        next[b] = pos;
        pos += count[b];
        end[b] = pos;
    }
    for (int b = 0; b < 256; b++) {
        while (next[b] < end[b]) {
            uint32_t v = a[next[b]];
            unsigned d = (v >> shift) & 255u;
            while (d != (unsigned)b) { /* carry v to its bucket, pick up the key it displaces */
                uint32_t t = a[next[d]];
                a[next[d]++] = v;
                v = t;
                d = (v >> shift) & 255u;
            }
            a[next[b]++] = v;
        }
    }
    if (shift == 0) return;
    for (int b = 0; b < 256; b++)
        if (count[b] > 1) flag_sort(a + end[b] - count[b], count[b], shift - 8);
}

void ev_sort_keys(uint32_t *keys, int64_t n) {
    if (n > 1) flag_sort(keys, n, 24);
}

int64_t ev_run(const uint32_t *keys, int64_t n, int64_t i) {
    int64_t j = i;
    while (j < n && keys[j] == keys[i]) j++;
    return j - i;
}

double ev_above(float max_score) { return (double)nextafterf(max_score, INFINITY); }

double ev_threshold_for_count(const uint32_t *keys, int64_t n, int64_t k, int64_t *count) {
    if (k >= n) { /* every score may pass: accept all */
        *count = n;
        return (double)ev_unkey(keys[0]);
    }
    /* x, the (k+1)-th largest score, must be rejected; the threshold is the next distinct score
     * above it (ties with x would push the count past k), or just above x when x is the largest. */
    int64_t i = n - k - 1;
    int64_t j = i + ev_run(keys, n, i);
    if (j < n) {
        *count = n - j;
        return (double)ev_unkey(keys[j]);
    }
    *count = 0;
    return ev_above(ev_unkey(keys[i]));
}

int64_t ev_allowed(double target, int64_t denominator) {
    if (target >= 1.0) return denominator;
    if (!(target > 0.0)) return 0;
    double k = floor(target * (double)denominator * (1.0 + 1e-12));
    if (k > (double)denominator) return denominator;
    return (int64_t)k;
}

/* ---- sweep --------------------------------------------------------------------------------- */
/* 480 steps per criterion x 4 criteria + first, last and the two "leaves zero" points < 2000. */
#define EV_STEPS 480.0

fp_status ev_sweep_init(ev_sweep *s, int64_t n_fp, int64_t n_fn) {
    memset(s, 0, sizeof *s);
    s->curve = malloc(FP_EVAL_MAX_CURVE * sizeof *s->curve);
    if (!s->curve) return fp_fail(FP_ERR_NOMEM, "eval: curve of %d points", FP_EVAL_MAX_CURVE);
    s->step_lin = 1.0 / EV_STEPS;
    /* The smallest non-zero rate is 1/n, so log10(n) decades are the whole log range. */
    s->ratio_fpr = pow(10.0, fmax(log10((double)(n_fp > 1 ? n_fp : 1)), 1.0) / EV_STEPS);
    s->ratio_fnr = pow(10.0, fmax(log10((double)(n_fn > 1 ? n_fn : 1)), 1.0) / EV_STEPS);
    s->eer = NAN;
    s->eer_threshold = NAN;
    return FP_OK;
}

void ev_sweep_push(ev_sweep *s, double threshold, double fpr, double fnr) {
    fp_tradeoff_point p = {threshold, fpr, fnr};
    if (!s->eer_done && fpr <= fnr) {
        if (s->n_points == 0) { /* no crossing: the best max(fpr, fnr) is here, and it is fnr */
            s->eer = fnr;
            s->eer_threshold = threshold;
        } else { /* prev had fpr > fnr: cut the segment prev -> p with the line fpr = fnr */
            double dp = s->prev.fpr - s->prev.fnr, dc = fpr - fnr;
            double t = dp / (dp - dc);
            s->eer = s->prev.fpr + t * (fpr - s->prev.fpr);
            s->eer_threshold = s->prev.threshold + t * (threshold - s->prev.threshold);
        }
        s->eer_done = 1;
    }
    int keep = s->n_curve == 0;
    if (!keep) {
        const fp_tradeoff_point *k = &s->kept;
        keep = (k->fpr > 0 && fpr <= 0) || (k->fnr <= 0 && fnr > 0) ||
               fabs(fpr - k->fpr) >= s->step_lin || fabs(fnr - k->fnr) >= s->step_lin ||
               (fpr > 0 && k->fpr >= fpr * s->ratio_fpr) || (k->fnr > 0 && fnr >= k->fnr * s->ratio_fnr);
    }
    if (keep && s->n_curve < FP_EVAL_MAX_CURVE - 1) { /* the last slot waits for the final point */
        s->curve[s->n_curve++] = p;
        s->kept = p;
    }
    s->prev = p;
    s->n_points++;
}

void ev_sweep_finish(ev_sweep *s) {
    if (s->n_points == 0) return;
    if (s->n_curve == 0 || memcmp(&s->kept, &s->prev, sizeof s->prev) != 0)
        s->curve[s->n_curve++] = s->prev;
    if (!s->eer_done) { /* never crossed (only with infinite scores): best effort */
        s->eer = 0.5 * (s->prev.fpr + s->prev.fnr);
        s->eer_threshold = s->prev.threshold;
    }
}

void ev_sweep_release(ev_sweep *s) {
    free(s->curve);
    s->curve = NULL;
    s->n_curve = 0;
}

#define EV_MAX_TARGETS 16

void ev_sweep_two(ev_sweep *s, const uint32_t *pos, int64_t n_pos, int64_t fail_pos,
                  const uint32_t *neg, int64_t n_neg, int64_t fail_neg, uint64_t *auc2,
                  const double *targets, int n_targets, fp_tradeoff_point *at, int64_t *fp_count) {
    const double np = (double)(n_pos + fail_pos), nn = (double)(n_neg + fail_neg);
    int found[EV_MAX_TARGETS] = {0};
    if (n_targets > EV_MAX_TARGETS) n_targets = EV_MAX_TARGETS;
    int64_t pi = 0, ni = 0;
    uint64_t a2 = 0;
    uint32_t last = 0;
    for (;;) {
        int end = pi >= n_pos && ni >= n_neg;
        double thr, fpr, fnr;
        int64_t passing;
        if (end) { /* the reject-all point */
            thr = ev_above(ev_unkey(last));
            passing = 0;
            fnr = 1.0;
        } else {
            last = (pi < n_pos && (ni >= n_neg || pos[pi] <= neg[ni])) ? pos[pi] : neg[ni];
            thr = (double)ev_unkey(last);
            passing = n_neg - ni;
            fnr = (double)(pi + fail_pos) / np;
        }
        fpr = (double)passing / nn;
        ev_sweep_push(s, thr, fpr, fnr);
        for (int j = 0; j < n_targets; j++)
            if (!found[j] && fpr <= targets[j]) {
                found[j] = 1;
                at[j] = (fp_tradeoff_point){thr, fpr, fnr};
                fp_count[j] = passing;
            }
        if (end) break;
        int64_t cp = pi < n_pos && pos[pi] == last ? ev_run(pos, n_pos, pi) : 0;
        int64_t cn = ni < n_neg && neg[ni] == last ? ev_run(neg, n_neg, ni) : 0;
        a2 += (uint64_t)cp * (uint64_t)(2 * ni + cn); /* pos at `last` beat ni negatives, tie cn */
        pi += cp;
        ni += cn;
    }
    /* failures score -infinity: scored positives beat failed negatives, failures tie each other */
    a2 += 2u * (uint64_t)n_pos * (uint64_t)fail_neg + (uint64_t)fail_pos * (uint64_t)fail_neg;
    if (auc2) *auc2 = a2;
}

/* ---- Clopper-Pearson ----------------------------------------------------------------------- */
/* Continued fraction of the regularised incomplete beta (modified Lentz, as in Numerical Recipes
 * 6.4); converges in O(sqrt(max(a, b))) terms, a few thousand for a billion trials. */
static double beta_cf(double a, double b, double x) {
    const double tiny = 1e-300;
    double qab = a + b, qap = a + 1, qam = a - 1, c = 1, d = 1 - qab * x / qap;
    if (fabs(d) < tiny) d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 200000; m++) {
        double m2 = 2.0 * m, aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-15) break;
    }
    return h;
}

/* I_x(a, b). */
static double inc_beta(double a, double b, double x) {
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    double lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    double bt = exp(lbt);
    if (x < (a + 1) / (a + b + 2)) return bt * beta_cf(a, b, x) / a;
    return 1 - bt * beta_cf(b, a, 1 - x) / b;
}

double fp_eval_rate_upper_bound(int64_t errors, int64_t trials, double confidence) {
    if (trials <= 0 || !(confidence > 0 && confidence < 1)) return 1.0;
    if (errors < 0) errors = 0;
    if (errors >= trials) return 1.0;
    if (errors == 0) return -expm1(log1p(-confidence) / (double)trials);
    /* The upper limit p solves P(X <= errors | trials, p) = 1 - confidence, i.e.
     * I_p(errors + 1, trials - errors) = confidence; I_p rises with p, so bisect. */
    double a = (double)errors + 1, b = (double)(trials - errors);
    double lo = (double)errors / (double)trials, hi = 1.0;
    for (int it = 0; it < 200 && hi - lo > 1e-15 * hi; it++) {
        double mid = 0.5 * (lo + hi);
        if (inc_beta(a, b, mid) < confidence) lo = mid;
        else hi = mid;
    }
    return hi;
}
