/*
 * gallery.c - the gallery of enrolled templates and the 1:N search ("Identity", item 3).
 *
 * What it is. A row matrix W of L2-normalised templates (fp16, or int8 with a per-row factor), one
 * row per template with a user per row, stored as 32-row panels (layout in match.h). A search is
 * the seed's "1:N as one matrix product": the n query vectors Q (a batch of up to FP_MAX_BATCH
 * frames or customers) are multiplied with W in one stream over the gallery, each panel loaded
 * once for all queries, optionally split over threads by row range; a vector compare against the
 * current k-th best score per query skips almost every panel, and the survivors go through a
 * small insertion list of distinct users (per-user best, k <= 16). The per-thread lists are
 * merged at the end.
 *
 * Storage. Rows live in chunks of FPG_CHUNK_ROWS rows that are allocated once and never move or
 * shrink; a directory (array of chunk pointers) is replaced by a larger copy when full, the old
 * copy being kept until fp_gallery_free (so a reader holding it stays valid). User ids live in an
 * append-only arena of 1 MB chunks (same directory scheme); a record is [u32 newest row][id NUL]
 * and its 32-bit arena offset ("uref") identifies the user. Each row has:
 *   uref[r]   its user (immutable once published),
 *   fate[r]   atomic: FATE_LIVE, FATE_REMOVED (0), or the index of the row that replaced it,
 *   next[r]   writer-only chain to the user's previous row (allocated only for multi-row users).
 * The id -> user map is an open-addressing hash table (SipHash with a per-gallery random key, so
 * chosen ids cannot force long probe chains) touched only by writers.
 *
 * Concurrency and memory ordering (readers take no lock; writers hold wlock):
 *  1. A writer fills the new row r completely (encoded elements, scale, uref, fate = LIVE, and, if
 *     needed, a new chunk / directory / arena chunk published with memory_order_release), and only
 *     then stores n_rows = r + 1 with memory_order_release.
 *  2. A reader loads n_rows with memory_order_acquire (its snapshot n), then the directories with
 *     acquire. Every write of step 1 for rows < n happens-before the reader's loads, so it sees
 *     complete rows, their chunks, and a directory at least as new as the one that held them
 *     (coherence: the directory store happens-before the n_rows store it read). Rows < n are
 *     never written again, so the bulk kernel reads them with plain SIMD loads without a race.
 *     The 8-row block that holds row n-1 may still be being filled: the writer stores row n
 *     element by element into its own lanes, so the reader scores such a trailing partial block
 *     row by row through scalar loads of the published rows' lanes only (distinct bytes).
 *  3. Replacing a user's row: the new row r is published first (step 1), then each old row's fate
 *     is set to r (relaxed). A reader with snapshot n treats a row as visible iff fate >= n, i.e.
 *     live, or replaced by a row outside its snapshot. So a concurrent search sees the old row
 *     (new one not in its snapshot), the new one, or transiently both (same user: per-user best)
 *     - never neither. Removal stores FATE_REMOVED (0 < every n >= 1), hiding the row at once.
 *     fate needs no ordering stronger than relaxed: no other data is read on the strength of it,
 *     and a caller that orders a search after a removal through its own synchronisation gets
 *     happens-before, under which coherence forbids reading the older fate.
 *  4. Counters read by fp_gallery_size / _memory are relaxed atomics (statistics).
 * Replaced and removed rows stay as tombstones until fp_gallery_compact.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "core/core.h"
#include "match/match.h"

#define FATE_LIVE UINT32_MAX
#define FATE_REMOVED 0u
#define ROW_NONE UINT32_MAX
#define MAX_ROWS ((int64_t)1 << 31) /* row indices fit in fate below FATE_LIVE */
#define ARENA_SHIFT 20
#define ARENA_CHUNK ((uint32_t)1 << ARENA_SHIFT)
#define ARENA_MAX_CHUNKS 4096     /* 32-bit user refs */
#define ARENA_FIRST 8u            /* ref 0 means "empty" in the hash table */
#define MAX_THREADS 256

typedef struct fpg_chunk {
    void *data;       /* [FPG_CHUNK_ROWS/8][dim][8] fp16 bits or int8, 64-byte aligned */
    float *scale;     /* int8: per-row factor 1/||row_int||, else NULL */
    uint32_t *next;   /* writer-only, NULL until a row here gets a previous row of its user */
    uint32_t uref[FPG_CHUNK_ROWS];
    _Atomic uint32_t fate[FPG_CHUNK_ROWS];
} fpg_chunk;

struct fp_gallery {
    int dim;
    int fmt;
    size_t elem; /* bytes per element */
    /* read side */
    _Atomic int64_t n_rows;
    _Atomic(void **) chunks; /* fpg_chunk * [] */
    _Atomic(void **) arena;  /* char * [] */
    _Atomic int64_t n_users;
    _Atomic size_t bytes;
    _Atomic uint32_t temp_bits;
    /* write side, under wlock */
    pthread_mutex_t wlock;
    int chunk_cap, n_chunks;
    int arena_cap, n_arena;
    uint32_t arena_used; /* bytes used in the last arena chunk */
    void **retired;
    int n_retired, retired_cap;
    uint32_t *hash;
    uint32_t hash_cap, hash_n;
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    float *wrow;  /* normalised row being added */
    void *wenc;   /* its encoding */
};

/* ---------------------------------------------------------------------------------------------- */
/* Kernel selection                                                                                */
/* ---------------------------------------------------------------------------------------------- */
static pthread_once_t g_kernel_once = PTHREAD_ONCE_INIT;
static _Atomic int g_use_avx2;

static int cpu_has_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
    if (!fpg_avx2_compiled) return 0;
    __builtin_cpu_init();
    /* F16C by cpuid: clang 14's __builtin_cpu_supports does not know "f16c" (the fuzz build);
     * the AVX2 check already covers the OS saving ymm state */
    unsigned a, b, c, d;
    const int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
#else
    return 0;
#endif
}

static void kernel_init(void) {
    const char *e = getenv("FACEPAY_KERNELS");
    int want = !(e && strcmp(e, "scalar") == 0);
    atomic_store(&g_use_avx2, want && cpu_has_avx2());
}

int fpg_kernels_avx2(void) {
    pthread_once(&g_kernel_once, kernel_init);
    return atomic_load_explicit(&g_use_avx2, memory_order_relaxed);
}

int fpg_kernels_select(int want_avx2) {
    pthread_once(&g_kernel_once, kernel_init);
    atomic_store(&g_use_avx2, want_avx2 && cpu_has_avx2());
    return atomic_load(&g_use_avx2);
}

const char *fpg_kernel_name(void) { return fpg_kernels_avx2() ? "avx2+fma+f16c" : "scalar"; }

/* ---------------------------------------------------------------------------------------------- */
/* fp16 conversion (portable; same bits as F16C, round to nearest even)                            */
/* ---------------------------------------------------------------------------------------------- */
static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The rounding is done by the FPU: scaling |f| up by 2^112 and back down by 2^-110 leaves the
 * value rounded to the 11 significant bits of its fp16 exponent range when added to a power of
 * two aligned with that range (the classic branch-free technique of the FP16 library). */
uint16_t fpg_f32_to_f16(float f) {
    const float scale_to_inf = 0x1.0p+112f, scale_to_zero = 0x1.0p-110f;
    float base = (fabsf(f) * scale_to_inf) * scale_to_zero;
    const uint32_t w = f32_bits(f), shl1_w = w + w, sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = bits_f32((bias >> 1) + 0x07800000u) + base;
    const uint32_t b = f32_bits(base);
    const uint32_t nonsign = ((b >> 13) & 0x00007C00u) + (b & 0x00000FFFu);
    return (uint16_t)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

float fpg_f16_to_f32(uint16_t h) {
    const uint32_t w = (uint32_t)h << 16, sign = w & 0x80000000u, two_w = w + w;
    const float normalized = bits_f32((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    const float denormalized = bits_f32((two_w >> 17) | (126u << 23)) - 0.5f;
    return bits_f32(sign | (two_w < (1u << 27) ? f32_bits(denormalized) : f32_bits(normalized)));
}

/* ---------------------------------------------------------------------------------------------- */
/* Scalar panel kernel (the contract is in match.h)                                               */
/* ---------------------------------------------------------------------------------------------- */
uint32_t fpg_panel_scalar(int fmt, const void *blocks, const float *scales, int nblk, int dim,
                          const fpg_queries *q, int nq, const float *thr, float *scores,
                          uint32_t *masks, void *scratch) {
    /* the full blocks only: lanes of a partial block may be being written */
    const int w = nblk * FPG_LANES;
    uint32_t any = 0;
    if (fmt == FP_GALLERY_INT8) {
        const int8_t *b = blocks;
        const int qs = fpg_q16_stride(dim);
        for (int qi = 0; qi < nq; qi++) {
            const int16_t *qq = q->i16 + (size_t)qi * qs;
            int32_t acc[FPG_PANEL_ROWS] = {0}; /* exact: |sum| < 2^31 by fpg_q16_max */
            for (int d = 0; d < dim; d++) {
                const int32_t v = qq[d];
                const int8_t *e = b + (size_t)d * FPG_PANEL_ROWS;
                for (int l = 0; l < w; l++) acc[l] += e[l] * v;
            }
            uint32_t m = 0;
            for (int r = 0; r < w; r++) {
                const float v = (float)acc[r] * scales[r] * q->iscale[qi];
                scores[qi * FPG_PANEL_ROWS + r] = v;
                if (thr && v > thr[qi]) m |= (uint32_t)1 << r;
            }
            if (thr) {
                masks[qi] = m;
                any |= m;
            }
        }
        return any;
    }
    float *f = scratch; /* the panel in fp32, converted once for all queries */
    for (int d = 0; d < dim; d++) {
        const size_t e = (size_t)d * FPG_PANEL_ROWS;
        for (int l = 0; l < w; l++) f[e + l] = fpg_f16_to_f32(((const uint16_t *)blocks)[e + l]);
    }
    for (int qi = 0; qi < nq; qi++) {
        const float *qq = q->f + (size_t)qi * dim;
        float acc[FPG_PANEL_ROWS] = {0};
        for (int d = 0; d < dim; d++) {
            const float b = qq[d];
            const float *s = f + (size_t)d * FPG_PANEL_ROWS;
            for (int l = 0; l < w; l++) acc[l] += s[l] * b;
        }
        uint32_t m = 0;
        for (int r = 0; r < w; r++) {
            scores[qi * FPG_PANEL_ROWS + r] = acc[r];
            if (thr && acc[r] > thr[qi]) m |= (uint32_t)1 << r;
        }
        if (thr) {
            masks[qi] = m;
            any |= m;
        }
    }
    return any;
}

void fpg_quantise_queries(const float *q, int nq, int dim, int16_t *out, float *iscale) {
    const int qs = fpg_q16_stride(dim), qmax = fpg_q16_max(dim);
    for (int i = 0; i < nq; i++) {
        const float *x = q + (size_t)i * dim;
        int16_t *o = out + (size_t)i * qs;
        float mx = 0.0f;
        for (int d = 0; d < dim; d++) mx = fmaxf(mx, fabsf(x[d]));
        const float m = (float)qmax / mx; /* mx > 0: a unit vector */
        double ss = 0.0;
        for (int d = 0; d < dim; d++) {
            long v = lrintf(x[d] * m);
            if (v > qmax) v = qmax;
            if (v < -qmax) v = -qmax;
            o[d] = (int16_t)v;
            ss += (double)v * (double)v;
        }
        for (int d = dim; d < qs; d++) o[d] = 0;
        iscale[i] = (float)(1.0 / sqrt(ss));
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Small helpers                                                                                   */
/* ---------------------------------------------------------------------------------------------- */
static void acct(const fp_gallery *g, ptrdiff_t delta) {
    fp_gallery *gm = (fp_gallery *)g; /* the counter is the only thing changed */
    if (delta >= 0)
        atomic_fetch_add_explicit(&gm->bytes, (size_t)delta, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&gm->bytes, (size_t)-delta, memory_order_relaxed);
}

static size_t chunk_data_bytes(const fp_gallery *g) {
    size_t b = (size_t)FPG_CHUNK_ROWS * (size_t)g->dim * g->elem;
    return (b + 63) & ~(size_t)63;
}

/* Element index of (row pos in its chunk, dimension d) in the chunk's data (match.h layout). */
static size_t elem_index(int dim, uint32_t pos, int d) {
    return ((size_t)(pos / FPG_PANEL_ROWS) * (size_t)dim + (size_t)d) * FPG_PANEL_ROWS +
           (pos % FPG_PANEL_ROWS);
}

static char *arena_rec(void *const *arena, uint32_t ref) {
    return (char *)arena[ref >> ARENA_SHIFT] + (ref & (ARENA_CHUNK - 1));
}
static uint32_t rec_head(void *const *arena, uint32_t ref) {
    uint32_t h;
    memcpy(&h, arena_rec(arena, ref), 4);
    return h;
}
static void rec_set_head(void *const *arena, uint32_t ref, uint32_t head) {
    memcpy(arena_rec(arena, ref), &head, 4);
}
static const char *rec_id(void *const *arena, uint32_t ref) { return arena_rec(arena, ref) + 4; }

static void copy_id(char dst[FP_GALLERY_ID_LEN], const char *src) {
    size_t l = strnlen(src, FP_GALLERY_ID_LEN - 1);
    memcpy(dst, src, l);
    dst[l] = '\0';
}

static fp_status check_id(const char *id, size_t *len) {
    if (!id) return fp_fail(FP_ERR_INVALID_ARG, "gallery: user id is NULL");
    *len = strnlen(id, FP_GALLERY_ID_LEN);
    if (*len == 0 || *len >= FP_GALLERY_ID_LEN)
        return fp_fail(FP_ERR_INVALID_ARG, "gallery: user id must be 1..%d bytes",
                       FP_GALLERY_ID_LEN - 1);
    return FP_OK;
}

/* Normalises n vectors of dim floats into dst; rejects zero, NaN and infinite vectors. */
static fp_status normalise(const float *src, int n, int dim, float *dst, const char *what) {
    for (int i = 0; i < n; i++) {
        const float *x = src + (size_t)i * dim;
        double ss = 0.0;
        for (int d = 0; d < dim; d++) {
            if (!isfinite(x[d]))
                return fp_fail(FP_ERR_INVALID_ARG, "gallery: %s %d has a non-finite element", what, i);
            ss += (double)x[d] * x[d];
        }
        if (!(ss > 0.0) || !isfinite(ss))
            return fp_fail(FP_ERR_INVALID_ARG, "gallery: %s %d has zero or overflowing norm", what, i);
        const double inv = 1.0 / sqrt(ss);
        for (int d = 0; d < dim; d++) dst[(size_t)i * dim + d] = (float)(x[d] * inv);
    }
    return FP_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Writer-side structures                                                                          */
/* ---------------------------------------------------------------------------------------------- */
/* Keeps an old directory alive until fp_gallery_free; reserve before publishing its successor. */
static fp_status retire_reserve(fp_gallery *g) {
    if (g->n_retired < g->retired_cap) return FP_OK;
    int cap = g->retired_cap ? g->retired_cap * 2 : 16;
    void **r = realloc(g->retired, (size_t)cap * sizeof *r);
    if (!r) return fp_fail(FP_ERR_NOMEM, "gallery: out of memory");
    acct(g, (ptrdiff_t)(cap - g->retired_cap) * (ptrdiff_t)sizeof *r);
    g->retired = r;
    g->retired_cap = cap;
    return FP_OK;
}

/* Stores item at index n of a published directory, growing it (copy + release publish) if full. */
static fp_status dir_push(fp_gallery *g, _Atomic(void **) *dir, int *cap, int n, void *item) {
    void **d = atomic_load_explicit(dir, memory_order_relaxed);
    if (n < *cap) {
        d[n] = item; /* readers reach index n only after the n_rows release that follows */
        return FP_OK;
    }
    if (retire_reserve(g) != FP_OK) return FP_ERR_NOMEM;
    int nc = *cap ? *cap * 2 : 16;
    void **nd = calloc((size_t)nc, sizeof *nd);
    if (!nd) return fp_fail(FP_ERR_NOMEM, "gallery: out of memory");
    if (n) memcpy(nd, d, (size_t)n * sizeof *nd);
    nd[n] = item;
    atomic_store_explicit(dir, nd, memory_order_release);
    if (d) g->retired[g->n_retired++] = d;
    acct(g, (ptrdiff_t)nc * (ptrdiff_t)sizeof *nd);
    *cap = nc;
    return FP_OK;
}

static void chunk_free(fpg_chunk *c) {
    if (!c) return;
    free(c->data);
    free(c->scale);
    free(c->next);
    free(c);
}

static fp_status chunk_add(fp_gallery *g) {
    fpg_chunk *c = calloc(1, sizeof *c);
    if (!c) return fp_fail(FP_ERR_NOMEM, "gallery: out of memory");
    const size_t db = chunk_data_bytes(g);
    c->data = aligned_alloc(64, db);
    if (c->data) memset(c->data, 0, db);
    if (g->fmt == FP_GALLERY_INT8) c->scale = calloc(FPG_CHUNK_ROWS, sizeof *c->scale);
    if (!c->data || (g->fmt == FP_GALLERY_INT8 && !c->scale)) {
        chunk_free(c);
        return fp_fail(FP_ERR_NOMEM, "gallery: out of memory for %zu bytes", db);
    }
    if (dir_push(g, &g->chunks, &g->chunk_cap, g->n_chunks, c) != FP_OK) {
        chunk_free(c);
        return FP_ERR_NOMEM;
    }
    g->n_chunks++;
    acct(g, (ptrdiff_t)(sizeof *c + db +
                        (c->scale ? FPG_CHUNK_ROWS * sizeof *c->scale : 0)));
    return FP_OK;
}

static uint64_t id_hash(const fp_gallery *g, const char *id, size_t len) {
    unsigned char h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const unsigned char *)id, len, g->hash_key);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return v;
}

/* Slot holding user `id`, or the empty slot where it would go. */
static uint32_t *hash_slot(fp_gallery *g, void *const *arena, const char *id, uint64_t h) {
    const uint32_t mask = g->hash_cap - 1;
    uint32_t i = (uint32_t)h & mask;
    while (g->hash[i] && strcmp(rec_id(arena, g->hash[i]), id) != 0) i = (i + 1) & mask;
    return &g->hash[i];
}

static fp_status hash_grow(fp_gallery *g) {
    void *const *arena = atomic_load_explicit(&g->arena, memory_order_relaxed);
    if (g->hash_cap >= (uint32_t)1 << 31) return fp_fail(FP_ERR_TOO_LARGE, "gallery: too many users");
    uint32_t cap = g->hash_cap * 2;
    uint32_t *nh = calloc(cap, sizeof *nh);
    if (!nh) return fp_fail(FP_ERR_NOMEM, "gallery: out of memory");
    for (uint32_t i = 0; i < g->hash_cap; i++) {
        uint32_t ref = g->hash[i];
        if (!ref) continue;
        const char *id = rec_id(arena, ref);
        uint32_t j = (uint32_t)id_hash(g, id, strlen(id)) & (cap - 1);
        while (nh[j]) j = (j + 1) & (cap - 1);
        nh[j] = ref;
    }
    free(g->hash);
    acct(g, (ptrdiff_t)(cap - g->hash_cap) * (ptrdiff_t)sizeof *nh);
    g->hash = nh;
    g->hash_cap = cap;
    return FP_OK;
}

/* The user record of id, created (with no rows) when create is set; 0 when absent. */
static fp_status user_ref(fp_gallery *g, const char *id, size_t len, int create, uint32_t *ref) {
    *ref = 0;
    void *const *arena = atomic_load_explicit(&g->arena, memory_order_relaxed);
    const uint64_t h = id_hash(g, id, len);
    uint32_t *slot = hash_slot(g, arena, id, h);
    if (*slot || !create) {
        *ref = *slot;
        return FP_OK;
    }
    if ((uint64_t)(g->hash_n + 1) * 2 > g->hash_cap) { /* keep the load <= 1/2: short probes */
        fp_status st = hash_grow(g);
        if (st != FP_OK) return st;
        slot = hash_slot(g, arena, id, h);
    }
    const uint32_t need = 4u + (uint32_t)len + 1u;
    if (g->n_arena == 0 || g->arena_used + need > ARENA_CHUNK) {
        if (g->n_arena >= ARENA_MAX_CHUNKS)
            return fp_fail(FP_ERR_TOO_LARGE, "gallery: user id space exhausted");
        char *c = malloc(ARENA_CHUNK);
        if (!c) return fp_fail(FP_ERR_NOMEM, "gallery: out of memory");
        if (dir_push(g, &g->arena, &g->arena_cap, g->n_arena, c) != FP_OK) {
            free(c);
            return FP_ERR_NOMEM;
        }
        acct(g, ARENA_CHUNK);
        g->arena_used = g->n_arena == 0 ? ARENA_FIRST : 0;
        g->n_arena++;
        arena = atomic_load_explicit(&g->arena, memory_order_relaxed);
    }
    const uint32_t r = ((uint32_t)(g->n_arena - 1) << ARENA_SHIFT) | g->arena_used;
    char *rec = arena_rec(arena, r);
    const uint32_t none = ROW_NONE;
    memcpy(rec, &none, 4);
    memcpy(rec + 4, id, len + 1);
    g->arena_used += need;
    *slot = r;
    g->hash_n++;
    *ref = r;
    return FP_OK;
}

static fpg_chunk *row_chunk(void *const *chunks, int64_t row) {
    return (fpg_chunk *)chunks[row >> FPG_CHUNK_SHIFT];
}

static uint32_t row_next(void *const *chunks, uint32_t row) {
    const fpg_chunk *c = row_chunk(chunks, row);
    return c->next ? c->next[row & (FPG_CHUNK_ROWS - 1)] : ROW_NONE;
}

/* Encodes the normalised g->wrow into g->wenc; returns the int8 row factor (1 for fp16). */
static float encode_row(fp_gallery *g) {
    const int dim = g->dim;
    if (g->fmt == FP_GALLERY_FP16) {
        uint16_t *h = g->wenc;
        if (fpg_kernels_avx2())
            fpg_f32_to_f16_avx2(g->wrow, h, dim);
        else
            for (int d = 0; d < dim; d++) h[d] = fpg_f32_to_f16(g->wrow[d]);
        return 1.0f;
    }
    int8_t *q = g->wenc;
    float mx = 0.0f;
    for (int d = 0; d < dim; d++) mx = fmaxf(mx, fabsf(g->wrow[d]));
    const float inv = 127.0f / mx; /* mx > 0: the row is a unit vector */
    double ss = 0.0;
    for (int d = 0; d < dim; d++) {
        long v = lrintf(g->wrow[d] * inv);
        if (v > 127) v = 127;
        if (v < -127) v = -127;
        q[d] = (int8_t)v;
        ss += (double)v * (double)v;
    }
    /* score = q . (s * row_int) / ||s * row_int|| = (q . row_int) / ||row_int||: a true cosine
     * with the dequantised row, whatever the quantisation did to its norm. */
    return (float)(1.0 / sqrt(ss));
}

/* Appends an encoded row (g->wenc, factor scale) for user uref and publishes it; with replace,
 * the user's previous rows become tombstones replaced by it. Caller holds wlock. */
static fp_status insert_row(fp_gallery *g, uint32_t uref, float scale, int replace) {
    const int64_t r = atomic_load_explicit(&g->n_rows, memory_order_relaxed);
    if (r >= MAX_ROWS) return fp_fail(FP_ERR_TOO_LARGE, "gallery: row limit reached");
    if ((r >> FPG_CHUNK_SHIFT) >= g->n_chunks && chunk_add(g) != FP_OK) return FP_ERR_NOMEM;
    void *const *chunks = atomic_load_explicit(&g->chunks, memory_order_relaxed);
    void *const *arena = atomic_load_explicit(&g->arena, memory_order_relaxed);
    fpg_chunk *c = row_chunk(chunks, r);
    const uint32_t pos = (uint32_t)(r & (FPG_CHUNK_ROWS - 1));
    const uint32_t head = rec_head(arena, uref);
    const uint32_t prev = replace ? ROW_NONE : head;
    if (prev != ROW_NONE && !c->next) {
        c->next = malloc(FPG_CHUNK_ROWS * sizeof *c->next);
        if (!c->next) return fp_fail(FP_ERR_NOMEM, "gallery: out of memory");
        memset(c->next, 0xFF, FPG_CHUNK_ROWS * sizeof *c->next);
        acct(g, FPG_CHUNK_ROWS * sizeof *c->next);
    }
    if (c->next) c->next[pos] = prev;

    /* step 1: the whole row, then publication */
    if (g->fmt == FP_GALLERY_FP16) {
        uint16_t *dst = c->data;
        const uint16_t *src = g->wenc;
        for (int d = 0; d < g->dim; d++) dst[elem_index(g->dim, pos, d)] = src[d];
    } else {
        int8_t *dst = c->data;
        const int8_t *src = g->wenc;
        for (int d = 0; d < g->dim; d++) dst[elem_index(g->dim, pos, d)] = src[d];
        c->scale[pos] = scale;
    }
    c->uref[pos] = uref;
    atomic_store_explicit(&c->fate[pos], FATE_LIVE, memory_order_relaxed);
    atomic_store_explicit(&g->n_rows, r + 1, memory_order_release);

    /* step 3: retire the rows this one replaces */
    if (replace)
        for (uint32_t o = head; o != ROW_NONE; o = row_next(chunks, o))
            atomic_store_explicit(&row_chunk(chunks, o)->fate[o & (FPG_CHUNK_ROWS - 1)],
                                  (uint32_t)r, memory_order_relaxed);
    if (head == ROW_NONE) atomic_fetch_add_explicit(&g->n_users, 1, memory_order_relaxed);
    rec_set_head(arena, uref, (uint32_t)r);
    return FP_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Public: lifetime and writers                                                                    */
/* ---------------------------------------------------------------------------------------------- */
fp_status fp_gallery_new(int dim, fp_gallery_format fmt, fp_gallery **out) {
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "gallery: out is NULL");
    *out = NULL;
    if (dim < 1 || dim > FPG_MAX_DIM)
        return fp_fail(FP_ERR_INVALID_ARG, "gallery: dim %d outside 1..%d", dim, FPG_MAX_DIM);
    if (fmt != FP_GALLERY_FP16 && fmt != FP_GALLERY_INT8)
        return fp_fail(FP_ERR_INVALID_ARG, "gallery: unknown format %d", (int)fmt);
    if (sodium_init() < 0) return fp_fail(FP_ERR_INTERNAL, "gallery: libsodium init failed");
    fp_gallery *g = calloc(1, sizeof *g);
    if (!g) return fp_fail(FP_ERR_NOMEM, "gallery: out of memory");
    g->dim = dim;
    g->fmt = fmt;
    g->elem = fmt == FP_GALLERY_INT8 ? 1 : 2;
    atomic_init(&g->n_rows, 0);
    atomic_init(&g->chunks, NULL);
    atomic_init(&g->arena, NULL);
    atomic_init(&g->n_users, 0);
    atomic_init(&g->bytes, 0);
    atomic_init(&g->temp_bits, f32_bits(FP_GALLERY_TEMPERATURE));
    g->hash_cap = 1024;
    g->hash = calloc(g->hash_cap, sizeof *g->hash);
    g->wrow = malloc((size_t)dim * sizeof *g->wrow);
    g->wenc = malloc((size_t)dim * g->elem);
    if (!g->hash || !g->wrow || !g->wenc || pthread_mutex_init(&g->wlock, NULL) != 0) {
        free(g->hash);
        free(g->wrow);
        free(g->wenc);
        free(g);
        return fp_fail(FP_ERR_NOMEM, "gallery: out of memory");
    }
    randombytes_buf(g->hash_key, sizeof g->hash_key);
    atomic_store_explicit(&g->bytes,
                          sizeof *g + g->hash_cap * sizeof *g->hash + (size_t)dim * sizeof *g->wrow +
                              (size_t)dim * g->elem,
                          memory_order_relaxed);
    *out = g;
    return FP_OK;
}

void fp_gallery_free(fp_gallery *g) {
    if (!g) return;
    void **chunks = atomic_load(&g->chunks);
    for (int i = 0; i < g->n_chunks; i++) chunk_free(chunks[i]);
    free(chunks);
    void **arena = atomic_load(&g->arena);
    for (int i = 0; i < g->n_arena; i++) free(arena[i]);
    free(arena);
    for (int i = 0; i < g->n_retired; i++) free(g->retired[i]);
    free(g->retired);
    free(g->hash);
    free(g->wrow);
    free(g->wenc);
    pthread_mutex_destroy(&g->wlock);
    free(g);
}

static fp_status add_common(fp_gallery *g, const char *user_id, const float *emb, int dim,
                            int replace) {
    if (!g || !emb) return fp_fail(FP_ERR_INVALID_ARG, "gallery: NULL argument");
    size_t len;
    fp_status st = check_id(user_id, &len);
    if (st != FP_OK) return st;
    if (dim != g->dim)
        return fp_fail(FP_ERR_SHAPE, "gallery: template has dim %d, gallery %d", dim, g->dim);
    pthread_mutex_lock(&g->wlock);
    st = normalise(emb, 1, dim, g->wrow, "template");
    uint32_t ref = 0;
    if (st == FP_OK) st = user_ref(g, user_id, len, 1, &ref);
    if (st == FP_OK) {
        const float scale = encode_row(g);
        st = insert_row(g, ref, scale, replace);
    }
    pthread_mutex_unlock(&g->wlock);
    return st;
}

fp_status fp_gallery_add(fp_gallery *g, const char *user_id, const float *emb, int dim) {
    return add_common(g, user_id, emb, dim, 1);
}

fp_status fp_gallery_append(fp_gallery *g, const char *user_id, const float *emb, int dim) {
    return add_common(g, user_id, emb, dim, 0);
}

fp_status fp_gallery_remove(fp_gallery *g, const char *user_id) {
    if (!g) return fp_fail(FP_ERR_INVALID_ARG, "gallery: NULL gallery");
    size_t len;
    fp_status st = check_id(user_id, &len);
    if (st != FP_OK) return st;
    pthread_mutex_lock(&g->wlock);
    uint32_t ref = 0;
    user_ref(g, user_id, len, 0, &ref);
    void *const *arena = atomic_load_explicit(&g->arena, memory_order_relaxed);
    const uint32_t head = ref ? rec_head(arena, ref) : ROW_NONE;
    if (head == ROW_NONE) {
        st = fp_fail(FP_ERR_NOT_FOUND, "gallery: user '%s' is not enrolled", user_id);
    } else {
        void *const *chunks = atomic_load_explicit(&g->chunks, memory_order_relaxed);
        for (uint32_t o = head; o != ROW_NONE; o = row_next(chunks, o))
            atomic_store_explicit(&row_chunk(chunks, o)->fate[o & (FPG_CHUNK_ROWS - 1)],
                                  FATE_REMOVED, memory_order_relaxed);
        rec_set_head(arena, ref, ROW_NONE);
        atomic_fetch_sub_explicit(&g->n_users, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&g->wlock);
    return st;
}

fp_status fp_gallery_set_temperature(fp_gallery *g, float t) {
    if (!g) return fp_fail(FP_ERR_INVALID_ARG, "gallery: NULL gallery");
    if (!(t > 0.0f && t <= 10.0f))
        return fp_fail(FP_ERR_INVALID_ARG, "gallery: temperature %g outside (0, 10]", (double)t);
    atomic_store_explicit(&g->temp_bits, f32_bits(t), memory_order_relaxed);
    return FP_OK;
}

fp_status fp_gallery_compact(const fp_gallery *g, fp_gallery **out) {
    if (!g || !out) return fp_fail(FP_ERR_INVALID_ARG, "gallery: NULL argument");
    *out = NULL;
    fp_gallery *gm = (fp_gallery *)g; /* the writer lock is the only state touched */
    fp_gallery *ng = NULL;
    fp_status st = fp_gallery_new(g->dim, (fp_gallery_format)g->fmt, &ng);
    if (st != FP_OK) return st;
    atomic_store(&ng->temp_bits, atomic_load(&g->temp_bits));
    pthread_mutex_lock(&gm->wlock);
    const int64_t n = atomic_load_explicit(&g->n_rows, memory_order_relaxed);
    void *const *chunks = atomic_load_explicit(&g->chunks, memory_order_relaxed);
    void *const *arena = atomic_load_explicit(&g->arena, memory_order_relaxed);
    for (int64_t r = 0; r < n && st == FP_OK; r++) {
        const fpg_chunk *c = row_chunk(chunks, r);
        const uint32_t pos = (uint32_t)(r & (FPG_CHUNK_ROWS - 1));
        if (atomic_load_explicit(&c->fate[pos], memory_order_relaxed) != FATE_LIVE) continue;
        const char *id = rec_id(arena, c->uref[pos]);
        uint32_t ref;
        st = user_ref(ng, id, strlen(id), 1, &ref);
        if (st != FP_OK) break;
        float scale = 1.0f;
        if (g->fmt == FP_GALLERY_FP16) {
            const uint16_t *src = c->data;
            uint16_t *dst = ng->wenc;
            for (int d = 0; d < g->dim; d++) dst[d] = src[elem_index(g->dim, pos, d)];
        } else {
            const int8_t *src = c->data;
            int8_t *dst = ng->wenc;
            for (int d = 0; d < g->dim; d++) dst[d] = src[elem_index(g->dim, pos, d)];
            scale = c->scale[pos];
        }
        st = insert_row(ng, ref, scale, 0);
    }
    pthread_mutex_unlock(&gm->wlock);
    if (st != FP_OK) {
        fp_gallery_free(ng);
        return st;
    }
    *out = ng;
    return FP_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Public: readers                                                                                 */
/* ---------------------------------------------------------------------------------------------- */
typedef struct snapshot {
    int64_t n;            /* rows visible to this reader */
    void *const *chunks;
    void *const *arena;
} snapshot;

static snapshot take_snapshot(const fp_gallery *g) {
    fp_gallery *gm = (fp_gallery *)g; /* atomic loads only */
    snapshot s;
    s.n = atomic_load_explicit(&gm->n_rows, memory_order_acquire);
    s.chunks = atomic_load_explicit(&gm->chunks, memory_order_acquire);
    s.arena = atomic_load_explicit(&gm->arena, memory_order_acquire);
    return s;
}

int64_t fp_gallery_size(const fp_gallery *g) {
    return g ? atomic_load_explicit(&((fp_gallery *)g)->n_users, memory_order_relaxed) : 0;
}

int64_t fp_gallery_rows(const fp_gallery *g) {
    return g ? atomic_load_explicit(&((fp_gallery *)g)->n_rows, memory_order_acquire) : 0;
}

size_t fp_gallery_memory(const fp_gallery *g) {
    return g ? atomic_load_explicit(&((fp_gallery *)g)->bytes, memory_order_relaxed) : 0;
}

int fp_gallery_dim(const fp_gallery *g) { return g ? g->dim : 0; }

static uint32_t row_fate(void *const *chunks, int64_t row) {
    fpg_chunk *c = row_chunk(chunks, row);
    return atomic_load_explicit(&c->fate[row & (FPG_CHUNK_ROWS - 1)], memory_order_relaxed);
}

fp_status fp_gallery_row_user(const fp_gallery *g, int64_t row, char user_id[FP_GALLERY_ID_LEN],
                              int *live) {
    if (!g || !user_id) return fp_fail(FP_ERR_INVALID_ARG, "gallery: NULL argument");
    const snapshot s = take_snapshot(g);
    if (row < 0 || row >= s.n)
        return fp_fail(FP_ERR_INVALID_ARG, "gallery: row %lld outside 0..%lld", (long long)row,
                       (long long)s.n - 1);
    const fpg_chunk *c = row_chunk(s.chunks, row);
    copy_id(user_id, rec_id(s.arena, c->uref[row & (FPG_CHUNK_ROWS - 1)]));
    if (live) *live = row_fate(s.chunks, row) == FATE_LIVE;
    return FP_OK;
}

/* Top list of distinct users, best first; ties keep the earlier row. */
typedef struct topk {
    int n, cap;
    float s[FP_GALLERY_MAX_K];
    uint32_t u[FP_GALLERY_MAX_K];
    uint32_t r[FP_GALLERY_MAX_K];
} topk;

static float topk_thr(const topk *t) { return t->n < t->cap ? -INFINITY : t->s[t->cap - 1]; }

static void topk_insert(topk *t, float s, uint32_t u, uint32_t r) {
    for (int i = 0; i < t->n; i++) {
        if (t->u[i] != u) continue;
        if (s <= t->s[i]) return; /* the user already has a better (or equal, earlier) row */
        for (int j = i; j + 1 < t->n; j++) { /* drop the old entry, reinserted below */
            t->s[j] = t->s[j + 1];
            t->u[j] = t->u[j + 1];
            t->r[j] = t->r[j + 1];
        }
        t->n--;
        break;
    }
    if (t->n == t->cap && s <= t->s[t->n - 1]) return;
    int p = t->n < t->cap ? t->n : t->cap - 1;
    while (p > 0 && t->s[p - 1] < s) {
        t->s[p] = t->s[p - 1];
        t->u[p] = t->u[p - 1];
        t->r[p] = t->r[p - 1];
        p--;
    }
    t->s[p] = s;
    t->u[p] = u;
    t->r[p] = r;
    if (t->n < t->cap) t->n++;
}

typedef struct scan {
    const fp_gallery *g;
    snapshot snap;
    int64_t nfull; /* rows in complete 8-row blocks */
    int avx2;
    fpg_queries q; /* all nq queries */
    int nq;
    topk *tk;      /* search: [thread][nq]; NULL for dense scores */
    float *out;    /* dense: out[q * out_rows + row] */
    int64_t out_rows;
} scan;

typedef uint32_t (*panel_fn)(int, const void *, const float *, int, int, const fpg_queries *, int,
                             const float *, float *, uint32_t *, void *);

/* Queries q0.. of a scan's set. */
static fpg_queries queries_from(const fpg_queries *q, int dim, int q0) {
    fpg_queries r = {.f = q->f + (size_t)q0 * dim};
    if (q->i16) {
        r.i16 = q->i16 + (size_t)q0 * fpg_q16_stride(dim);
        r.iscale = q->iscale + q0;
    }
    return r;
}

/* Search: scores panels [r0, r1) (panel-aligned r0) for the nq queries into tk[nq]. */
static void scan_search(const scan *s, int64_t r0, int64_t r1, topk *tk, float *scratch,
                        float *sc) {
    const fp_gallery *g = s->g;
    const panel_fn panel = s->avx2 ? fpg_panel_avx2 : fpg_panel_scalar;
    float thr[FP_MAX_BATCH];
    uint32_t masks[FP_MAX_BATCH];
    for (int qi = 0; qi < s->nq; qi++) thr[qi] = topk_thr(&tk[qi]);
    for (int64_t p = r0; p < r1; p += FPG_PANEL_ROWS) {
        fpg_chunk *c = row_chunk(s->snap.chunks, p);
        const uint32_t pos = (uint32_t)(p & (FPG_CHUNK_ROWS - 1));
        const int64_t left = (r1 - p) / FPG_LANES;
        const int nblk = left < FPG_PANEL_BLOCKS ? (int)left : FPG_PANEL_BLOCKS;
        const void *blk = (const char *)c->data + (size_t)pos * g->dim * g->elem; /* panel start */
        const float *scales = c->scale ? c->scale + pos : NULL;
        if (!panel(g->fmt, blk, scales, nblk, g->dim, &s->q, s->nq, thr, sc, masks, scratch))
            continue;
        for (int qi = 0; qi < s->nq; qi++) {
            for (uint32_t m = masks[qi]; m; m &= m - 1) {
                const int b = __builtin_ctz(m);
                const float v = sc[qi * FPG_PANEL_ROWS + b];
                if (!(v > thr[qi])) continue; /* an earlier row of this panel raised the bar */
                if ((int64_t)atomic_load_explicit(&c->fate[pos + (uint32_t)b], memory_order_relaxed) <
                    s->snap.n)
                    continue; /* removed, or replaced by a row inside this snapshot */
                topk_insert(&tk[qi], v, c->uref[pos + (uint32_t)b], (uint32_t)(p + b));
                thr[qi] = topk_thr(&tk[qi]);
            }
        }
    }
}

/* Dense: every score of rows [r0, r1) for all queries, in groups of FP_MAX_BATCH queries (the
 * group outside, so the thread's rows are re-read from cache, not the queries). */
static void scan_dense(const scan *s, int64_t r0, int64_t r1, float *scratch, float *sc) {
    const fp_gallery *g = s->g;
    const panel_fn panel = s->avx2 ? fpg_panel_avx2 : fpg_panel_scalar;
    for (int q0 = 0; q0 < s->nq; q0 += FP_MAX_BATCH) {
        const int nq = s->nq - q0 < FP_MAX_BATCH ? s->nq - q0 : FP_MAX_BATCH;
        const fpg_queries qg = queries_from(&s->q, g->dim, q0);
        for (int64_t p = r0; p < r1; p += FPG_PANEL_ROWS) {
            const fpg_chunk *c = row_chunk(s->snap.chunks, p);
            const uint32_t pos = (uint32_t)(p & (FPG_CHUNK_ROWS - 1));
            const int64_t left = (r1 - p) / FPG_LANES;
            const int nblk = left < FPG_PANEL_BLOCKS ? (int)left : FPG_PANEL_BLOCKS;
            const void *blk = (const char *)c->data + (size_t)pos * g->dim * g->elem;
            panel(g->fmt, blk, c->scale ? c->scale + pos : NULL, nblk, g->dim, &qg, nq, NULL, sc,
                  NULL, scratch);
            for (int qi = 0; qi < nq; qi++)
                memcpy(s->out + (size_t)(q0 + qi) * s->out_rows + p, sc + qi * FPG_PANEL_ROWS,
                       (size_t)nblk * FPG_LANES * sizeof *sc);
        }
    }
}

/* Score of one row of a partial block, reading only that row's lanes (see step 2 above). Same
 * code for every kernel set and batch size, so it never breaks batch/single equality. */
static float row_score(const fp_gallery *g, const snapshot *s, int64_t row, const fpg_queries *q,
                       int qi) {
    const fpg_chunk *c = row_chunk(s->chunks, row);
    const uint32_t pos = (uint32_t)(row & (FPG_CHUNK_ROWS - 1));
    if (g->fmt == FP_GALLERY_FP16) {
        const uint16_t *p = c->data;
        const float *qq = q->f + (size_t)qi * g->dim;
        float acc = 0.0f;
        for (int d = 0; d < g->dim; d++) acc += fpg_f16_to_f32(p[elem_index(g->dim, pos, d)]) * qq[d];
        return acc;
    }
    const int8_t *p = c->data;
    const int16_t *qq = q->i16 + (size_t)qi * fpg_q16_stride(g->dim);
    int32_t acc = 0;
    for (int d = 0; d < g->dim; d++) acc += p[elem_index(g->dim, pos, d)] * (int32_t)qq[d];
    return (float)acc * c->scale[pos] * q->iscale[qi];
}

/* Threads for a scan of nfull rows x nq queries: one per FPG_ROWS_PER_THREAD row-queries (so an
 * all-pairs evaluation of 6,000 x 6,000 splits, a single query over 10,000 rows does not), at
 * most one per panel. */
static int choose_threads(int threads, int64_t nfull, int nq) {
    int64_t t = nfull * nq / FPG_ROWS_PER_THREAD;
    const int64_t panels = (nfull + FPG_PANEL_ROWS - 1) / FPG_PANEL_ROWS;
    if (t > panels) t = panels;
    if (t < 1) t = 1;
    if (t > threads) t = threads;
    if (t > MAX_THREADS) t = MAX_THREADS;
    return (int)t;
}

static size_t scratch_floats(int dim) {
    /* panel in fp32 (scalar fp16 kernel) or widened to int16 pairs (AVX2 int8 batch kernel, at
     * most as large) + per-query panel scores, rounded to whole cache lines */
    size_t n = (size_t)dim * FPG_PANEL_ROWS + (size_t)FP_MAX_BATCH * FPG_PANEL_ROWS;
    return (n + 15) & ~(size_t)15;
}

/* Runs the scan over the full blocks on nt threads (each a contiguous, panel-aligned range). */
static void run_scan(const scan *s, int nt, float *scratch) {
    const size_t sf = scratch_floats(s->g->dim);
    const size_t pf = (size_t)s->g->dim * FPG_PANEL_ROWS;
    const int64_t npan = (s->nfull + FPG_PANEL_ROWS - 1) / FPG_PANEL_ROWS;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int t = 0, team = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        team = omp_get_num_threads();
#endif
        const int64_t p0 = npan * t / team, p1 = npan * (t + 1) / team;
        int64_t r1 = p1 * FPG_PANEL_ROWS;
        if (r1 > s->nfull) r1 = s->nfull;
        float *sc = scratch + (size_t)t * sf;
        if (s->tk)
            scan_search(s, p0 * FPG_PANEL_ROWS, r1, s->tk + (size_t)t * s->nq, sc, sc + pf);
        else
            scan_dense(s, p0 * FPG_PANEL_ROWS, r1, sc, sc + pf);
    }
    (void)nt;
}

static void fill_result(const snapshot *snap, const topk *t, int k, float temp,
                        fp_search_result *out) {
    memset(out, 0, sizeof *out);
    out->n = t->n < k ? t->n : k;
    for (int i = 0; i < out->n; i++) {
        const fpg_chunk *c = row_chunk(snap->chunks, t->r[i]);
        copy_id(out->top[i].user_id, rec_id(snap->arena, c->uref[t->r[i] & (FPG_CHUNK_ROWS - 1)]));
        out->top[i].score = t->s[i];
        out->top[i].row = t->r[i];
    }
    if (t->n == 0) return;
    out->margin = t->s[0] - (t->n >= 2 ? t->s[1] : -1.0f);
    double z = 0.0;
    for (int i = 0; i < t->n; i++) z += exp(((double)t->s[i] - t->s[0]) / temp);
    out->confidence = (float)(1.0 / z);
}

static fp_status check_queries(const fp_gallery *g, const float *queries, int n, int dim,
                               int threads) {
    if (!g || !queries) return fp_fail(FP_ERR_INVALID_ARG, "gallery: NULL argument");
    if (dim != g->dim)
        return fp_fail(FP_ERR_SHAPE, "gallery: queries have dim %d, gallery %d", dim, g->dim);
    if (n < 1) return fp_fail(FP_ERR_INVALID_ARG, "gallery: %d queries", n);
    if (threads < 1) return fp_fail(FP_ERR_INVALID_ARG, "gallery: threads %d < 1", threads);
    return FP_OK;
}

/* Normalised queries (and, for int8 galleries, their int16 quantisation and scales) and
 * per-thread scratch in one allocation; the caller frees *qbuf. */
static fp_status alloc_work(int n, int dim, int fmt, int nt, float **qbuf, fpg_queries *q,
                            float **scratch) {
    const size_t qf = ((size_t)n * dim + 15) & ~(size_t)15;
    const size_t qi = fmt == FP_GALLERY_INT8
                          ? (((size_t)n * fpg_q16_stride(dim) + 1) / 2 + (size_t)n + 15) & ~(size_t)15
                          : 0; /* int16 pairs and the scales, in floats */
    const size_t total = (qf + qi + (size_t)nt * scratch_floats(dim)) * sizeof(float);
    float *w = aligned_alloc(64, (total + 63) & ~(size_t)63);
    if (!w) return fp_fail(FP_ERR_NOMEM, "gallery: out of memory for %zu bytes", total);
    *qbuf = w;
    q->f = w;
    q->i16 = NULL;
    q->iscale = NULL;
    if (qi) {
        q->iscale = w + qf;
        q->i16 = (const int16_t *)(w + qf + n);
    }
    *scratch = w + qf + qi;
    return FP_OK;
}

/* Normalises the n queries into q->f and, for an int8 gallery, quantises them (once per search:
 * every panel then reuses the int16 copy). */
static fp_status prepare_queries(const fp_gallery *g, const float *queries, int n, float *qbuf,
                                 const fpg_queries *q) {
    fp_status st = normalise(queries, n, g->dim, qbuf, "query");
    if (st == FP_OK && q->i16)
        fpg_quantise_queries(qbuf, n, g->dim, (int16_t *)q->i16, (float *)q->iscale);
    return st;
}

fp_status fp_gallery_search(const fp_gallery *g, const float *queries, int n, int dim, int k,
                            int threads, fp_search_result *out) {
    fp_status st = check_queries(g, queries, n, dim, threads);
    if (st != FP_OK) return st;
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "gallery: out is NULL");
    if (n > FP_MAX_BATCH)
        return fp_fail(FP_ERR_TOO_LARGE, "gallery: %d queries in one search (max %d)", n,
                       FP_MAX_BATCH);
    if (k < 1 || k > FP_GALLERY_MAX_K)
        return fp_fail(FP_ERR_INVALID_ARG, "gallery: k %d outside 1..%d", k, FP_GALLERY_MAX_K);

    scan s = {.g = g, .snap = take_snapshot(g), .avx2 = fpg_kernels_avx2(), .nq = n};
    s.nfull = s.snap.n & ~(int64_t)(FPG_LANES - 1);
    const int nt = choose_threads(threads, s.nfull, n);
    float *qbuf, *scratch;
    if ((st = alloc_work(n, dim, g->fmt, nt, &qbuf, &s.q, &scratch)) != FP_OK) return st;
    topk *tk = calloc((size_t)nt * n, sizeof *tk);
    if (!tk) {
        free(qbuf);
        return fp_fail(FP_ERR_NOMEM, "gallery: out of memory");
    }
    if ((st = prepare_queries(g, queries, n, qbuf, &s.q)) != FP_OK) goto done;
    const int kk = k < 2 ? 2 : k; /* the runner-up is needed for the margin even when k = 1 */
    for (int i = 0; i < nt * n; i++) tk[i].cap = kk;
    s.tk = tk;
    if (s.nfull > 0) run_scan(&s, nt, scratch);

    /* the trailing partial block, into the last thread's lists (highest rows merge last) */
    topk *last = tk + (size_t)(nt - 1) * n;
    for (int64_t r = s.nfull; r < s.snap.n; r++) {
        if ((int64_t)row_fate(s.snap.chunks, r) < s.snap.n) continue;
        const uint32_t u = row_chunk(s.snap.chunks, r)->uref[r & (FPG_CHUNK_ROWS - 1)];
        for (int qi = 0; qi < n; qi++) {
            const float v = row_score(g, &s.snap, r, &s.q, qi);
            if (v > topk_thr(&last[qi])) topk_insert(&last[qi], v, u, (uint32_t)r);
        }
    }

    const float temp = bits_f32(atomic_load_explicit(&((fp_gallery *)g)->temp_bits,
                                                     memory_order_relaxed));
    for (int qi = 0; qi < n; qi++) {
        topk m = {.cap = kk};
        for (int t = 0; t < nt; t++) {
            const topk *tt = &tk[(size_t)t * n + qi];
            for (int i = 0; i < tt->n; i++)
                if (tt->s[i] > topk_thr(&m)) topk_insert(&m, tt->s[i], tt->u[i], tt->r[i]);
        }
        fill_result(&s.snap, &m, k, temp, &out[qi]);
    }
done:
    free(tk);
    free(qbuf);
    return st;
}

fp_status fp_gallery_scores(const fp_gallery *g, const float *queries, int n, int dim,
                            int64_t n_rows, float *out, int threads) {
    fp_status st = check_queries(g, queries, n, dim, threads);
    if (st != FP_OK) return st;
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "gallery: out is NULL");
    scan s = {.g = g, .snap = take_snapshot(g), .avx2 = fpg_kernels_avx2(), .nq = n};
    if (n_rows < 0 || n_rows > s.snap.n)
        return fp_fail(FP_ERR_INVALID_ARG, "gallery: %lld rows asked, %lld stored",
                       (long long)n_rows, (long long)s.snap.n);
    if (n_rows == 0) return FP_OK;
    s.snap.n = n_rows; /* rows beyond are not scored */
    s.nfull = n_rows & ~(int64_t)(FPG_LANES - 1);
    s.out = out;
    s.out_rows = n_rows;
    const int nt = choose_threads(threads, s.nfull, n);
    float *qbuf, *scratch;
    if ((st = alloc_work(n, dim, g->fmt, nt, &qbuf, &s.q, &scratch)) != FP_OK) return st;
    if ((st = prepare_queries(g, queries, n, qbuf, &s.q)) == FP_OK) {
        if (s.nfull > 0) run_scan(&s, nt, scratch);
        for (int64_t r = s.nfull; r < n_rows; r++)
            for (int qi = 0; qi < n; qi++)
                out[(size_t)qi * n_rows + r] = row_score(g, &s.snap, r, &s.q, qi);
    }
    free(qbuf);
    return st;
}
