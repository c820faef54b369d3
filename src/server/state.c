/*
 * state.c - the server's in-memory state helpers: the insertion-ordered hash map behind challenge
 * sessions, idempotency records and used-frame hashes, the clocks, and the pool of face-analysis
 * sessions (one fp_session per worker; a request borrows one for its face work).
 *
 * Why insertion-ordered: each map has a single TTL, so the oldest entry is also the first to
 * expire; expiring is popping from the head (no scan), and when a map is full the entry evicted is
 * the one closest to expiry anyway. Maps are bounded so a flood of requests cannot grow memory
 * without limit.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/internal.h"

int64_t srv_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double srv_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- map ---- */

static size_t hash_key(const char *k) {
    /* FNV-1a: keys are random ids or hashes (or chosen by an authenticated merchant, bounded), so
     * a keyed hash would buy little; chains stay short because n <= cap ~ n_buckets. */
    size_t h = (size_t)1469598103934665603ULL;
    for (; *k; k++) h = (h ^ (unsigned char)*k) * (size_t)1099511628211ULL;
    return h;
}

int srv_map_init(srv_map *m, size_t n_buckets, size_t cap, void (*free_val)(void *)) {
    memset(m, 0, sizeof *m);
    m->buckets = calloc(n_buckets, sizeof *m->buckets);
    if (!m->buckets) return -1;
    m->n_buckets = n_buckets;
    m->cap = cap;
    m->free_val = free_val;
    pthread_mutex_init(&m->lock, NULL);
    return 0;
}

static void entry_free(srv_map *m, srv_entry *e) {
    if (m->free_val) m->free_val(e->val);
    free(e->key);
    free(e);
}

void srv_map_destroy(srv_map *m) {
    if (!m->buckets) return;
    for (srv_entry *e = m->head, *next; e; e = next) {
        next = e->next;
        entry_free(m, e);
    }
    free(m->buckets);
    pthread_mutex_destroy(&m->lock);
    memset(m, 0, sizeof *m);
}

srv_entry *srv_map_get(srv_map *m, const char *key) {
    for (srv_entry *e = m->buckets[hash_key(key) % m->n_buckets]; e; e = e->hnext)
        if (!strcmp(e->key, key)) return e;
    return NULL;
}

void srv_map_remove(srv_map *m, srv_entry *e) {
    srv_entry **pp = &m->buckets[hash_key(e->key) % m->n_buckets];
    while (*pp && *pp != e) pp = &(*pp)->hnext;
    if (*pp) *pp = e->hnext;
    if (e->prev) e->prev->next = e->next;
    else m->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else m->tail = e->prev;
    m->n--;
    entry_free(m, e);
}

srv_entry *srv_map_put(srv_map *m, const char *key, void *val, int64_t expires_ms) {
    while (m->n >= m->cap && m->head) srv_map_remove(m, m->head);
    srv_entry *e = calloc(1, sizeof *e);
    if (!e || !(e->key = strdup(key))) {
        free(e);
        return NULL;
    }
    e->val = val;
    e->expires_ms = expires_ms;
    size_t b = hash_key(key) % m->n_buckets;
    e->hnext = m->buckets[b];
    m->buckets[b] = e;
    e->prev = m->tail;
    if (m->tail) m->tail->next = e;
    else m->head = e;
    m->tail = e;
    m->n++;
    return e;
}

void srv_map_expire(srv_map *m, int64_t now_ms) {
    while (m->head && m->head->expires_ms <= now_ms) srv_map_remove(m, m->head);
}

/* ---- worker pool ---- */

fp_session *srv_worker_get(fp_server *s, int wait_ms) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += wait_ms / 1000;
    dl.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->pool_lock);
    while (s->n_free == 0) {
        int rc = pthread_cond_timedwait(&s->pool_cv, &s->pool_lock, &dl);
        if (rc == ETIMEDOUT && s->n_free == 0) {
            pthread_mutex_unlock(&s->pool_lock);
            return NULL;
        }
    }
    fp_session *ses = s->sessions_free[--s->n_free];
    pthread_mutex_unlock(&s->pool_lock);
    atomic_fetch_add(&s->metrics.workers_busy, 1);
    return ses;
}

void srv_worker_put(fp_server *s, fp_session *ses) {
    if (!ses) return;
    atomic_fetch_sub(&s->metrics.workers_busy, 1);
    pthread_mutex_lock(&s->pool_lock);
    s->sessions_free[s->n_free++] = ses;
    pthread_cond_signal(&s->pool_cv);
    pthread_mutex_unlock(&s->pool_lock);
}
