/*
 * bench_gallery.c - speed and memory of the 1:N gallery (src/match/gallery*.c): a gallery of
 * random unit rows (default 1,000,000, fp16 and int8), single-query latency on 1 and 2 threads
 * (median of 50), per-query latency in batches of 20, memory, enrolment rate, and the all-pairs
 * evaluation rate (fp_gallery_scores, 6,000 queries x 6,000 rows). Prints a markdown table.
 *
 *   bench_gallery [rows] [--no-int8] [--no-scalar] [--pairs-only]
 *
 * Targets (issue "Identity", item 3): single query <= 25 ms on one thread, <= 3 ms per query in
 * batches of 20, <= 420 MB for 1M fp16 rows of dim 192.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "facepay.h"
#include "match/match.h"

#define DIM FP_EMBEDDING_DIM

static uint64_t rng = 0x243F6A8885A308D3ull;
static float frand(void) { /* uniform [-1, 1) */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (float)((double)((rng * 0x2545F4914F6CDD1Dull) >> 40) / 8388608.0 - 1.0);
}
static void rand_vec(float *v) { /* the gallery normalises; direction is all that matters */
    for (int d = 0; d < DIM; d++) v[d] = frand();
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

static void die(fp_status st, const char *what) {
    fprintf(stderr, "bench_gallery: %s: %s (%s)\n", what, fp_strerror(st), fp_last_error());
    exit(1);
}

enum { NQ = 50, BATCH = FP_MAX_BATCH, BATCH_RUNS = 10 };

static double g_min; /* fastest run of the last measurement */
static double g_cpu; /* median CPU time of the last measurement: the time the scan really ran,
                        without the waits for a CPU that other jobs on the machine cause */

static int g_threads; /* threads of the measurement running now */

/* CPU time of this thread (1 thread) or of the process (all threads of a 2-thread search). */
static double cpu_ms(void) {
    struct timespec ts;
    clock_gettime(g_threads > 1 ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *loadavg(void) {
    static char buf[64];
    FILE *f = fopen("/proc/loadavg", "r");
    buf[0] = '\0';
    if (f) {
        if (!fgets(buf, sizeof buf, f)) buf[0] = '\0';
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

/* Median single-query latency (ms) over NQ queries: half genuine (noisy copies of rows). */
static double single_ms(const fp_gallery *g, const float *qs, int threads, int runs) {
    double t[NQ], c[NQ];
    fp_search_result r;
    g_threads = threads;
    fp_status st = fp_gallery_search(g, qs, 1, DIM, 5, threads, &r); /* warm-up */
    if (st) die(st, "search");
    for (int i = 0; i < runs; i++) {
        double t0 = now_ms(), c0 = cpu_ms();
        st = fp_gallery_search(g, qs + (size_t)i * DIM, 1, DIM, 5, threads, &r);
        t[i] = now_ms() - t0;
        c[i] = cpu_ms() - c0;
        if (st) die(st, "search");
    }
    const double m = median(t, runs);
    g_min = t[0];
    g_cpu = median(c, runs);
    return m;
}

/* Median per-query latency (ms) of batches of BATCH queries. */
static double batch_ms(const fp_gallery *g, const float *qs, int threads) {
    double t[BATCH_RUNS], c[BATCH_RUNS];
    fp_search_result r[BATCH];
    g_threads = threads;
    for (int i = 0; i < BATCH_RUNS; i++) {
        double t0 = now_ms(), c0 = cpu_ms();
        fp_status st = fp_gallery_search(g, qs + (size_t)(i % 2) * BATCH * DIM, BATCH, DIM, 5,
                                          threads, r);
        t[i] = (now_ms() - t0) / BATCH;
        c[i] = (cpu_ms() - c0) / BATCH;
        if (st) die(st, "batch search");
    }
    const double m = median(t, BATCH_RUNS);
    g_min = t[0];
    g_cpu = median(c, BATCH_RUNS);
    return m;
}

static void run_format(fp_gallery_format fmt, int64_t rows, int scalar) {
    const char *name = fmt == FP_GALLERY_FP16 ? "fp16" : "int8";
    const long rss0 = rss_kb();
    fp_gallery *g = NULL;
    fp_status st = fp_gallery_new(DIM, fmt, &g);
    if (st) die(st, "new");
    float v[DIM];
    char id[32];
    /* keep a few rows to build genuine queries from */
    float *keep = malloc((size_t)NQ * DIM * sizeof *keep);
    double t0 = now_ms();
    for (int64_t i = 0; i < rows; i++) {
        rand_vec(v);
        if (i % (rows / NQ + 1) == 0 && i / (rows / NQ + 1) < NQ)
            memcpy(keep + (size_t)(i / (rows / NQ + 1)) * DIM, v, sizeof v);
        snprintf(id, sizeof id, "u%07lld", (long long)i);
        if ((st = fp_gallery_add(g, id, v, DIM))) die(st, "add");
    }
    const double build = now_ms() - t0;
    const double mem_mb = fp_gallery_memory(g) / 1e6;
    const long rss = rss_kb() - rss0;

    /* queries: even = noisy copy of an enrolled row (a genuine top match), odd = impostor */
    float *qs = malloc((size_t)(NQ > 2 * BATCH ? NQ : 2 * BATCH) * DIM * sizeof *qs);
    for (int i = 0; i < NQ; i++)
        for (int d = 0; d < DIM; d++)
            qs[(size_t)i * DIM + d] = (i % 2) ? frand() : keep[(size_t)i * DIM + d] + 0.3f * frand();

    const double scan_mb = (double)rows * DIM * (fmt == FP_GALLERY_FP16 ? 2 : 1) / 1e6;
    double m;
    m = single_ms(g, qs, 1, NQ);
    printf("| %s | single query, 1 thread (median of %d) | %.2f ms | min %.2f ms, CPU %.2f ms, "
           "%.1f GB/s |\n", name, NQ, m, g_min, g_cpu, scan_mb / m);
    m = single_ms(g, qs, 2, NQ);
    printf("| %s | single query, 2 threads (median of %d) | %.2f ms | min %.2f ms, CPU %.2f ms "
           "(both threads), %.1f GB/s |\n", name, NQ, m, g_min, g_cpu, scan_mb / m);
    m = batch_ms(g, qs, 1);
    printf("| %s | batch of %d, 1 thread, per query (median of %d) | %.2f ms | min %.2f ms, CPU "
           "%.2f ms, batch %.1f ms |\n", name, BATCH, BATCH_RUNS, m, g_min, g_cpu, m * BATCH);
    m = batch_ms(g, qs, 2);
    printf("| %s | batch of %d, 2 threads, per query (median of %d) | %.2f ms | min %.2f ms, CPU "
           "%.2f ms (both threads), batch %.1f ms |\n", name, BATCH, BATCH_RUNS, m, g_min, g_cpu,
           m * BATCH);
    printf("| %s | memory (fp_gallery_memory / RSS growth) | %.1f MB | %.1f MB RSS, %.1f B/row |\n",
           name, mem_mb, rss / 1e3, fp_gallery_memory(g) / (double)rows);
    printf("| %s | enrolment (fp_gallery_add) | %.0f rows/s | %.2f s for %lld rows |\n", name,
           rows / (build / 1e3), build / 1e3, (long long)rows);
    if (scalar) {
        fpg_kernels_select(0);
        const double sc = single_ms(g, qs, 1, 5);
        fpg_kernels_select(1);
        printf("| %s | single query, 1 thread, scalar kernel (median of 5) | %.2f ms | min %.2f ms |\n",
               name, sc, g_min);
    }
    fflush(stdout);
    free(qs);
    free(keep);
    fp_gallery_free(g);
#ifdef __GLIBC__
    malloc_trim(0); /* give the heap back, so the next gallery's RSS growth is its own */
#endif
}

static void run_all_pairs(void) {
    enum { N = 6000 };
    fp_gallery *g = NULL;
    fp_status st = fp_gallery_new(DIM, FP_GALLERY_FP16, &g);
    if (st) die(st, "new");
    float *qs = malloc((size_t)N * DIM * sizeof *qs);
    float *out = malloc((size_t)N * N * sizeof *out);
    if (!qs || !out) die(FP_ERR_NOMEM, "all-pairs buffers");
    char id[32];
    for (int i = 0; i < N; i++) {
        rand_vec(qs + (size_t)i * DIM);
        snprintf(id, sizeof id, "p%05d", i);
        if ((st = fp_gallery_add(g, id, qs + (size_t)i * DIM, DIM))) die(st, "add");
    }
    for (int threads = 1; threads <= 2; threads++) {
        double best = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now_ms();
            if ((st = fp_gallery_scores(g, qs, N, DIM, N, out, threads))) die(st, "scores");
            double t = now_ms() - t0;
            if (t < best) best = t;
        }
        const double pairs = (double)N * N;
        printf("| fp16 | all pairs %d x %d (fp_gallery_scores), %d thread%s, best of 3 | %.1f ms | "
               "%.0f M pairs/s |\n",
               N, N, threads, threads > 1 ? "s" : "", best, pairs / best / 1e3);
    }
    free(qs);
    free(out);
    fp_gallery_free(g);
}

int main(int argc, char **argv) {
    int64_t rows = 1000000;
    int int8 = 1, scalar = 1, big = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-int8") == 0)
            int8 = 0;
        else if (strcmp(argv[i], "--no-scalar") == 0)
            scalar = 0;
        else if (strcmp(argv[i], "--pairs-only") == 0)
            big = 0;
        else
            rows = atoll(argv[i]);
    }
    if (rows < 1) rows = 1;
    char load0[64];
    snprintf(load0, sizeof load0, "%s", loadavg());
    printf("facepay gallery bench: %lld rows x %d dims, kernel %s, %s\n\n", (long long)rows, DIM,
           fpg_kernel_name(), fp_version());
    printf("| format | measure | value | note |\n|---|---|---|---|\n");
    fflush(stdout);
    if (big) run_format(FP_GALLERY_FP16, rows, scalar);
    if (big && int8) run_format(FP_GALLERY_INT8, rows, scalar);
    run_all_pairs();
    printf("\nload average before: %s, after: %s (2 CPUs; other jobs share them)\n", load0,
           loadavg());
    return 0;
}
