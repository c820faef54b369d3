/*
 * test_pay.c - the payment service (src/pay/): the decision policy rule by rule, exact integer
 * ledger arithmetic, no negative balance under concurrent charges from two connections,
 * idempotent replays and conflicts, refunds never above the captured amount, per-payment and daily
 * limits, step-up by PIN (argon2id) and phone digits with the lock after 5 failures, expiry and
 * cancellation, API keys (keyed hashes, constant-time compare, revocation, rate limit, scopes),
 * durable top-up idempotency (also across a reopen), a charge found by its key, the upgrade of a schema-2 file (old keys keep
 * every scope, old idempotency records still replay), the evidence chain (an edited or deleted
 * record is found by its seq), GDPR deletion, and a long random run (fixed seed) after which the
 * ledger self-check passes, until a posting is altered.
 * Every test works in its own temporary folder under /tmp, removed afterwards.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "facepay.h"
#include "pay/pay.h"
#include "store/store.h"
#include "util/testutil.h"

#define ASSERT_OK(call)                                                                            \
    do {                                                                                           \
        fp_status st_ = (call);                                                                    \
        if (st_ != FP_OK) fail_msg("%s: %s: %s", #call, fp_pay_strerror(st_), fp_last_error());    \
    } while (0)

#define ASSERT_STATUS(call, want)                                                                  \
    do {                                                                                           \
        fp_status st_ = (call);                                                                    \
        if (st_ != (want))                                                                         \
            fail_msg("%s: got %s (%s), want %s", #call, fp_pay_strerror(st_), fp_last_error(),     \
                     fp_pay_strerror(want));                                                       \
    } while (0)

/* ------------------------------------------------------------------------------------------ */
/* Fixture: a temporary folder, a key, a store with users, a merchant with a terminal          */
/* ------------------------------------------------------------------------------------------ */

typedef struct fx {
    char dir[64];
    char db[128];
    char keyfile[128];
    fp_key key;
    fp_store *store;
    fp_pay *pay;
    _Atomic int64_t now; /* the injected clock */
} fx;

static int64_t fx_clock(void *ctx) { return atomic_load(&((fx *)ctx)->now); }

static fp_pay_options test_options(fx *f) {
    fp_pay_options o = fp_pay_options_default();
    /* The cheapest argon2id: the tests check the logic, not the cost, and run under ASan. */
    o.pin_opslimit = crypto_pwhash_argon2id_OPSLIMIT_MIN;
    o.pin_memlimit = crypto_pwhash_argon2id_MEMLIMIT_MIN;
    o.rate_per_s = 0; /* off, except in the rate-limit test */
    o.clock_ms = fx_clock;
    o.clock_ctx = f;
    return o;
}

static int fx_setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/fp_pay_test.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof f->db, "%s/pay.db", f->dir);
    snprintf(f->keyfile, sizeof f->keyfile, "%s/key", f->dir);
    atomic_store(&f->now, INT64_C(1700000000000));
    if (fp_key_generate(f->keyfile) != FP_OK || fp_key_load(f->keyfile, &f->key) != FP_OK ||
        fp_store_open(f->db, &f->key, &f->store) != FP_OK) {
        fprintf(stderr, "setup: %s\n", fp_last_error());
        free(f);
        return -1;
    }
    fp_pay_options o = test_options(f);
    if (fp_pay_open(f->store, &o, &f->pay) != FP_OK) {
        fprintf(stderr, "setup: %s\n", fp_last_error());
        fp_store_close(f->store);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static void rm_suffix(const char *base, const char *suffix) {
    char p[192];
    snprintf(p, sizeof p, "%s%s", base, suffix);
    unlink(p);
}

static int fx_teardown(void **state) {
    fx *f = *state;
    fp_pay_close(f->pay);
    fp_store_close(f->store);
    rm_suffix(f->db, "");
    rm_suffix(f->db, "-wal");
    rm_suffix(f->db, "-shm");
    rm_suffix(f->db, "-journal");
    rm_suffix(f->keyfile, "");
    rmdir(f->dir);
    fp_key_wipe(&f->key);
    free(f);
    return 0;
}

/* A store user who is a payment customer with a EUR wallet (and a PIN when pin != NULL). */
static int64_t add_customer(fx *f, const char *user, const char *pin) {
    ASSERT_OK(fp_store_user_add(f->store, user, ""));
    int64_t acct = 0;
    ASSERT_OK(fp_pay_customer_create(f->pay, user, "EUR", &acct));
    assert_true(acct > 0);
    if (pin) ASSERT_OK(fp_pay_customer_set_pin(f->pay, user, pin));
    return acct;
}

static void add_merchant(fx *f, const char *merchant) {
    ASSERT_OK(fp_pay_merchant_create(f->pay, merchant, "Test shop"));
    ASSERT_OK(fp_pay_terminal_create(f->pay, merchant, "till-1", "Till 1"));
}

/* A confident, live match of `user`: the policy accepts it for small amounts. */
static fp_identify_result good_match(const char *user) {
    fp_identify_result r;
    memset(&r, 0, sizeof r);
    r.decision = FP_DECISION_MATCH;
    snprintf(r.user_id, sizeof r.user_id, "%s", user);
    r.score = 0.82f;
    r.margin = 0.35f;
    r.threshold = 0.55f;
    r.frames_seen = 12;
    r.frames_used = 10;
    r.votes = 10;
    r.blink = 1;
    r.blinks = 2;
    r.liveness_score = 0.8f;
    return r;
}

static fp_pay_customer_state good_customer(void) {
    fp_pay_customer_state c;
    memset(&c, 0, sizeof c);
    c.has_wallet = 1;
    c.active = 1;
    c.has_pin = 1;
    return c;
}

static fp_pay_charge_req charge_req(const char *merchant, const char *key, int64_t amount,
                                    const fp_identify_result *id) {
    fp_pay_charge_req r;
    memset(&r, 0, sizeof r);
    r.merchant_id = merchant;
    r.terminal_id = "till-1";
    r.idempotency_key = key;
    r.amount = amount;
    r.currency = "EUR";
    r.identify = id;
    r.challenge = "blink";
    return r;
}

/* Charges `amount` from user's wallet with a good match; returns the payment. */
static fp_payment charge(fx *f, const char *merchant, const char *key, const char *user,
                         int64_t amount) {
    fp_identify_result id = good_match(user);
    fp_pay_charge_req r = charge_req(merchant, key, amount, &id);
    fp_payment p;
    ASSERT_OK(fp_pay_charge(f->pay, &r, &p));
    return p;
}

static int64_t wallet_balance(fx *f, const char *user, const char *currency) {
    fp_pay_account a;
    ASSERT_OK(fp_pay_wallet(f->pay, user, currency, &a));
    return a.balance;
}

static int64_t merchant_balance(fx *f, const char *merchant, const char *currency) {
    fp_pay_account a;
    fp_status st = fp_pay_merchant_account(f->pay, merchant, currency, &a);
    if (st == FP_ERR_NOT_FOUND) return 0; /* opened at the first capture */
    ASSERT_OK(st);
    return a.balance;
}

static void assert_ledger_ok(fx *f) {
    fp_ledger_report r;
    ASSERT_OK(fp_ledger_check(f->store, &r));
    if (!r.ok) fail_msg("ledger check: %lld problem(s): %s", (long long)r.problems, r.message);
}

static void assert_audit_ok(fx *f) {
    fp_audit_report r;
    ASSERT_OK(fp_audit_verify(f->store, &r));
    if (!r.ok) fail_msg("audit verify: %s", r.message);
}

/* ------------------------------------------------------------------------------------------ */
/* Raw SQLite access (a second connection: what an attacker with the file would have)          */
/* ------------------------------------------------------------------------------------------ */

static sqlite3 *raw_open(const char *path) {
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static void raw_exec(sqlite3 *db, const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "raw_exec: %s: %s\n", sql, err ? err : "?");
        sqlite3_free(err);
        fail();
    }
}

/* The SQLite result of a statement that is expected to fail (trigger, CHECK). */
static int raw_try(sqlite3 *db, const char *sql) { return sqlite3_exec(db, sql, NULL, NULL, NULL); }

static int64_t raw_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int file_contains(const char *path, const void *needle, size_t n) {
    size_t len = 0;
    uint8_t *data = tu_read_all(path, &len);
    if (!data) return 0;
    int found = 0;
    for (size_t i = 0; !found && i + n <= len; i++) found = memcmp(data + i, needle, n) == 0;
    free(data);
    return found;
}

static int db_contains(const char *db, const void *needle, size_t n) {
    char wal[192];
    snprintf(wal, sizeof wal, "%s-wal", db);
    return file_contains(db, needle, n) || file_contains(wal, needle, n);
}

/* ------------------------------------------------------------------------------------------ */
/* Schema, open                                                                                */
/* ------------------------------------------------------------------------------------------ */

static void test_schema_and_open(void **state) {
    fx *f = *state;
    assert_true(fp_store_schema_version(f->store) >= FP_PAY_SCHEMA_VERSION);
    sqlite3 *db = raw_open(f->db);
    const char *tables[] = {"pay_merchants",   "pay_terminals", "pay_api_keys",
                            "pay_customers",   "pay_accounts",  "pay_payments",
                            "pay_refunds",     "pay_txns",      "pay_postings",
                            "pay_idempotency", "pay_evidence",  "pay_evidence_head"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        char sql[160];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '%s'",
                 tables[i]);
        assert_int_equal(raw_int(db, sql), 1);
    }
    sqlite3_close(db);

    /* Reopening keeps the schema; bad options are refused. */
    fp_pay_options o = test_options(f);
    o.policy.max_stepup_failures = 0;
    fp_pay *p2 = NULL;
    ASSERT_STATUS(fp_pay_open(f->store, &o, &p2), FP_ERR_INVALID_ARG);
    assert_null(p2);
    o = test_options(f);
    o.pin_memlimit = 1;
    ASSERT_STATUS(fp_pay_open(f->store, &o, &p2), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_pay_open(NULL, NULL, &p2), FP_ERR_INVALID_ARG);
    fp_pay_close(NULL);

    /* Names of the payment statuses and enums. */
    assert_string_equal(fp_pay_strerror(FP_ERR_PAY_CONFLICT), "idempotency conflict");
    assert_string_equal(fp_pay_strerror(FP_ERR_PAY_RATE_LIMITED), "rate limited");
    assert_string_equal(fp_pay_strerror(FP_ERR_NOT_FOUND), "not found");
    assert_string_equal(fp_pay_state_name(FP_PAY_PARTIALLY_REFUNDED), "partially_refunded");
    assert_string_equal(fp_pay_verdict_name(FP_PAY_STEPUP), "stepup");
    assert_string_equal(fp_pay_stepup_name(FP_STEPUP_PHONE4), "phone4");
}

/* ------------------------------------------------------------------------------------------ */
/* Policy (pure function)                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void expect_decision(const fp_pay_decision *d, fp_pay_verdict v, uint32_t reasons,
                            fp_pay_stepup m) {
    if (d->verdict != v || d->reasons != reasons || d->stepup != m)
        fail_msg("decision %s reasons 0x%x stepup %s, want %s 0x%x %s",
                 fp_pay_verdict_name(d->verdict), d->reasons, fp_pay_stepup_name(d->stepup),
                 fp_pay_verdict_name(v), reasons, fp_pay_stepup_name(m));
}

static void test_policy_rules(void **state) {
    (void)state;
    const fp_pay_policy p = fp_pay_policy_default();
    assert_int_equal(p.max_stepup_failures, 5);
    fp_identify_result id = good_match("alice");
    fp_pay_customer_state c = good_customer();
    fp_pay_decision d;

    /* Baseline: accept, and the boundary amount is still "not above". */
    d = fp_pay_decide(&p, &id, p.stepup_above, &c);
    expect_decision(&d, FP_PAY_ACCEPT, 0, FP_STEPUP_NONE);
    d = fp_pay_decide(NULL, &id, 100, &c); /* NULL policy: the defaults */
    expect_decision(&d, FP_PAY_ACCEPT, 0, FP_STEPUP_NONE);

    /* Each step-up trigger on its own. */
    d = fp_pay_decide(&p, &id, p.stepup_above + 1, &c);
    expect_decision(&d, FP_PAY_STEPUP, FP_PAY_WHY_AMOUNT, FP_STEPUP_PIN);
    fp_identify_result m = id;
    m.margin = p.min_margin - 0.01f;
    d = fp_pay_decide(&p, &m, 100, &c);
    expect_decision(&d, FP_PAY_STEPUP, FP_PAY_WHY_MARGIN, FP_STEPUP_PIN);
    m.margin = NAN;
    d = fp_pay_decide(&p, &m, 100, &c);
    expect_decision(&d, FP_PAY_STEPUP, FP_PAY_WHY_MARGIN, FP_STEPUP_PIN);
    fp_pay_customer_state la = c;
    la.lookalike = 1;
    d = fp_pay_decide(&p, &id, 100, &la);
    expect_decision(&d, FP_PAY_STEPUP, FP_PAY_WHY_LOOKALIKE, FP_STEPUP_PIN);
    fp_identify_result nb = id;
    nb.blink = 0;
    nb.blinks = 0;
    d = fp_pay_decide(&p, &nb, 100, &c);
    expect_decision(&d, FP_PAY_STEPUP, FP_PAY_WHY_LIVENESS, FP_STEPUP_PIN);
    fp_pay_policy pb = p;
    pb.require_blink = 0;
    d = fp_pay_decide(&pb, &nb, 100, &c);
    expect_decision(&d, FP_PAY_ACCEPT, 0, FP_STEPUP_NONE);
    fp_identify_result wl = id;
    wl.liveness_score = 0.3f; /* between refuse_liveness and min_liveness */
    d = fp_pay_decide(&p, &wl, 100, &c);
    expect_decision(&d, FP_PAY_STEPUP, FP_PAY_WHY_LIVENESS, FP_STEPUP_PIN);
    fp_identify_result un = id;
    un.decision = FP_DECISION_UNCERTAIN;
    d = fp_pay_decide(&p, &un, 100, &c);
    expect_decision(&d, FP_PAY_STEPUP, FP_PAY_WHY_UNCERTAIN, FP_STEPUP_PIN);
    /* Several at once are all reported. */
    d = fp_pay_decide(&p, &nb, p.stepup_above + 1, &la);
    expect_decision(&d, FP_PAY_STEPUP,
                    FP_PAY_WHY_AMOUNT | FP_PAY_WHY_LOOKALIKE | FP_PAY_WHY_LIVENESS, FP_STEPUP_PIN);

    /* Step-up method: PIN first; the phone digits only for small amounts. */
    fp_pay_customer_state ph = c;
    ph.has_pin = 0;
    ph.has_phone = 1;
    d = fp_pay_decide(&p, &m, p.phone_stepup_max, &ph);
    expect_decision(&d, FP_PAY_STEPUP, FP_PAY_WHY_MARGIN, FP_STEPUP_PHONE4);
    d = fp_pay_decide(&p, &m, p.phone_stepup_max + 1, &ph);
    expect_decision(&d, FP_PAY_REFUSE, FP_PAY_WHY_MARGIN | FP_PAY_WHY_NO_STEPUP, FP_STEPUP_NONE);
    ph.has_phone = 0;
    d = fp_pay_decide(&p, &m, 100, &ph);
    expect_decision(&d, FP_PAY_REFUSE, FP_PAY_WHY_MARGIN | FP_PAY_WHY_NO_STEPUP, FP_STEPUP_NONE);
    d = fp_pay_decide(&p, &id, 100, &ph); /* no doubt: no step-up method needed */
    expect_decision(&d, FP_PAY_ACCEPT, 0, FP_STEPUP_NONE);

    /* Refusals, which no PIN fixes. */
    fp_identify_result nm = id;
    nm.decision = FP_DECISION_NO_MATCH;
    d = fp_pay_decide(&p, &nm, 100, &c);
    expect_decision(&d, FP_PAY_REFUSE, FP_PAY_WHY_NO_MATCH, FP_STEPUP_NONE);
    fp_identify_result nu = id;
    nu.user_id[0] = '\0';
    d = fp_pay_decide(&p, &nu, 100, &c);
    expect_decision(&d, FP_PAY_REFUSE, FP_PAY_WHY_NO_MATCH, FP_STEPUP_NONE);
    fp_identify_result lo = id;
    lo.score = lo.threshold - 0.01f;
    d = fp_pay_decide(&p, &lo, 100, &c);
    expect_decision(&d, FP_PAY_REFUSE, FP_PAY_WHY_SCORE, FP_STEPUP_NONE);
    lo.score = NAN;
    d = fp_pay_decide(&p, &lo, 100, &c);
    expect_decision(&d, FP_PAY_REFUSE, FP_PAY_WHY_SCORE, FP_STEPUP_NONE);
    fp_identify_result fr = id;
    fr.frames_used = p.min_frames - 1;
    d = fp_pay_decide(&p, &fr, 100, &c);
    expect_decision(&d, FP_PAY_REFUSE, FP_PAY_WHY_FRAMES, FP_STEPUP_NONE);
    fp_identify_result sp = id;
    sp.liveness_score = 0.05f;
    d = fp_pay_decide(&p, &sp, 100, &c);
    expect_decision(&d, FP_PAY_REFUSE, FP_PAY_WHY_SPOOF | FP_PAY_WHY_LIVENESS, FP_STEPUP_NONE);
    fp_pay_customer_state lk = c;
    lk.face_locked = 1;
    d = fp_pay_decide(&p, &id, 100, &lk);
    expect_decision(&d, FP_PAY_REFUSE, FP_PAY_WHY_LOCKED, FP_STEPUP_NONE);
    fp_pay_customer_state in = c;
    in.active = 0;
    d = fp_pay_decide(&p, &id, 100, &in);
    expect_decision(&d, FP_PAY_REFUSE, FP_PAY_WHY_CUSTOMER, FP_STEPUP_NONE);
    fp_pay_customer_state nw = c;
    nw.has_wallet = 0;
    d = fp_pay_decide(&p, &id, 100, &nw);
    expect_decision(&d, FP_PAY_REFUSE, FP_PAY_WHY_CUSTOMER, FP_STEPUP_NONE);
    /* A non-matching face is refused even when a PIN could be asked (a stolen PIN alone). */
    lo.score = 0.1f;
    d = fp_pay_decide(&p, &lo, p.stepup_above + 1, &c);
    expect_decision(&d, FP_PAY_REFUSE, FP_PAY_WHY_SCORE | FP_PAY_WHY_AMOUNT, FP_STEPUP_NONE);
    /* Missing inputs. */
    d = fp_pay_decide(&p, NULL, 100, &c);
    assert_int_equal(d.verdict, FP_PAY_REFUSE);
    d = fp_pay_decide(&p, &id, 100, NULL);
    assert_int_equal(d.verdict, FP_PAY_REFUSE);
    /* Pure: the same inputs give the same answer. */
    fp_pay_decision d1 = fp_pay_decide(&p, &un, 7000, &la), d2 = fp_pay_decide(&p, &un, 7000, &la);
    assert_memory_equal(&d1, &d2, sizeof d1);
}

/* ------------------------------------------------------------------------------------------ */
/* Exact arithmetic                                                                            */
/* ------------------------------------------------------------------------------------------ */

typedef struct sum_ctx {
    int n;
    int64_t sum, last_after;
    fp_pay_txn_kind kinds[64];
} sum_ctx;

static int sum_posting(void *ctx, const fp_pay_posting *p) {
    sum_ctx *c = ctx;
    if (c->n < 64) c->kinds[c->n] = p->kind;
    c->n++;
    c->sum += p->amount;
    c->last_after = p->balance_after;
    return 0;
}

static void test_topup_and_charge_exact(void **state) {
    fx *f = *state;
    add_merchant(f, "shop");
    int64_t acct = add_customer(f, "alice", NULL);
    int64_t txn = 0;
    ASSERT_OK(fp_pay_topup(f->pay, "alice", "EUR", 12345, "card 4242", &txn));
    assert_true(txn > 0);
    assert_int_equal(wallet_balance(f, "alice", "EUR"), 12345);

    /* 37 charges of 1..37 cents: 703 in all, to the cent. */
    int64_t total = 0;
    for (int i = 1; i <= 37; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%d", i);
        fp_payment p = charge(f, "shop", key, "alice", i);
        assert_int_equal(p.state, FP_PAY_CAPTURED);
        assert_int_equal(p.captured, i);
        assert_int_equal(p.verdict, FP_PAY_ACCEPT);
        assert_false(p.stepup_required);
        assert_true(p.evidence_seq > 0);
        total += i;
    }
    assert_int_equal(total, 703);
    assert_int_equal(wallet_balance(f, "alice", "EUR"), 12345 - 703);
    assert_int_equal(merchant_balance(f, "shop", "EUR"), 703);
    int64_t bal = 0;
    ASSERT_OK(fp_pay_balance(f->pay, acct, &bal));
    assert_int_equal(bal, 11642);

    /* The statement: the top-up then 37 debits, summing to the balance. */
    sum_ctx c;
    memset(&c, 0, sizeof c);
    ASSERT_OK(fp_pay_foreach_posting(f->pay, acct, 0, 0, sum_posting, &c));
    assert_int_equal(c.n, 38);
    assert_int_equal(c.kinds[0], FP_TXN_TOPUP);
    assert_int_equal(c.kinds[1], FP_TXN_CHARGE);
    assert_int_equal(c.sum, 11642);
    assert_int_equal(c.last_after, 11642);
    memset(&c, 0, sizeof c);
    ASSERT_OK(fp_pay_foreach_posting(f->pay, acct, 0, 5, sum_posting, &c)); /* a page */
    assert_int_equal(c.n, 5);

    /* Exactly the balance can be spent; one cent more cannot (and nothing is held). */
    ASSERT_OK(fp_pay_customer_set_pin(f->pay, "alice", "2468"));
    fp_payment p = charge(f, "shop", "all", "alice", 11642 + 1);
    assert_int_equal(p.state, FP_PAY_DECLINED);
    assert_string_equal(p.decline, "insufficient_funds");
    assert_int_equal(wallet_balance(f, "alice", "EUR"), 11642);
    p = charge(f, "shop", "all2", "alice", 11642);
    assert_int_equal(p.state, FP_PAY_AUTHORISED); /* above 50.00: step-up, money held */
    assert_int_equal(wallet_balance(f, "alice", "EUR"), 0);
    fp_pay_stepup_result sr;
    ASSERT_OK(fp_pay_stepup_verify(f->pay, "shop", p.id, "2468", &sr));
    assert_int_equal(sr.payment.state, FP_PAY_CAPTURED);
    assert_int_equal(merchant_balance(f, "shop", "EUR"), 12345);

    /* The funding account is minus the money issued; everything sums to zero. */
    sqlite3 *db = raw_open(f->db);
    assert_int_equal(raw_int(db, "SELECT balance FROM pay_accounts WHERE kind = 'funding'"),
                     -12345);
    assert_int_equal(raw_int(db, "SELECT sum(amount) FROM pay_postings"), 0);
    /* No floating point in money columns. */
    assert_int_equal(
        raw_int(db, "SELECT count(*) FROM pay_postings WHERE typeof(amount) <> 'integer'"), 0);
    /* The CHECK constraint backs the code: a negative wallet cannot be written even by hand. */
    assert_int_not_equal(
        raw_try(db, "UPDATE pay_accounts SET balance = -1 WHERE kind = 'customer'"), SQLITE_OK);
    assert_int_not_equal(raw_try(db, "UPDATE pay_accounts SET currency = 'eur'"), SQLITE_OK);
    sqlite3_close(db);
    assert_ledger_ok(f);
    assert_audit_ok(f);
}

/* ------------------------------------------------------------------------------------------ */
/* Concurrency: two connections, money for one charge                                          */
/* ------------------------------------------------------------------------------------------ */

typedef struct race_arg {
    const char *db;
    const fp_key *key;
    pthread_barrier_t *barrier;
    char idem[32];
    fp_status st;
    fp_payment p;
} race_arg;

static void *race_thread(void *p) {
    race_arg *a = p;
    fp_store *s = NULL;
    fp_pay *pay = NULL;
    a->st = fp_store_open(a->db, a->key, &s);
    fp_pay_options o = fp_pay_options_default();
    o.rate_per_s = 0;
    if (a->st == FP_OK) a->st = fp_pay_open(s, &o, &pay);
    pthread_barrier_wait(a->barrier); /* both connections ready: now race */
    if (a->st == FP_OK) {
        fp_identify_result id = good_match("bob");
        fp_pay_charge_req r = charge_req("shop", a->idem, 1000, &id);
        a->st = fp_pay_charge(pay, &r, &a->p);
    }
    fp_pay_close(pay);
    fp_store_close(s);
    return NULL;
}

static void test_concurrent_charges(void **state) {
    fx *f = *state;
    add_merchant(f, "shop");
    add_customer(f, "bob", NULL);
    int captured_total = 0;
    for (int round = 0; round < 8; round++) {
        ASSERT_OK(fp_pay_topup(f->pay, "bob", "EUR", 1000, NULL, NULL)); /* enough for one */
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, 2);
        race_arg a[2];
        pthread_t t[2];
        for (int i = 0; i < 2; i++) {
            memset(&a[i], 0, sizeof a[i]);
            a[i].db = f->db;
            a[i].key = &f->key;
            a[i].barrier = &barrier;
            snprintf(a[i].idem, sizeof a[i].idem, "race-%d-%d", round, i);
            assert_int_equal(pthread_create(&t[i], NULL, race_thread, &a[i]), 0);
        }
        for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
        pthread_barrier_destroy(&barrier);
        int captured = 0, declined = 0;
        for (int i = 0; i < 2; i++) {
            if (a[i].st != FP_OK) fail_msg("thread %d: %s", i, fp_pay_strerror(a[i].st));
            if (a[i].p.state == FP_PAY_CAPTURED) captured++;
            if (a[i].p.state == FP_PAY_DECLINED) {
                declined++;
                assert_string_equal(a[i].p.decline, "insufficient_funds");
            }
        }
        assert_int_equal(captured, 1);
        assert_int_equal(declined, 1);
        captured_total += captured;
        assert_int_equal(wallet_balance(f, "bob", "EUR"), 0);
    }
    assert_int_equal(merchant_balance(f, "shop", "EUR"), 1000 * captured_total);
    assert_ledger_ok(f);
    assert_audit_ok(f);
}

/* ------------------------------------------------------------------------------------------ */
/* Idempotency                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void test_idempotency(void **state) {
    fx *f = *state;
    add_merchant(f, "shop");
    add_merchant(f, "cafe");
    add_customer(f, "carol", NULL);
    ASSERT_OK(fp_pay_topup(f->pay, "carol", "EUR", 5000, NULL, NULL));

    fp_payment p1 = charge(f, "shop", "order-17", "carol", 1200);
    assert_int_equal(p1.state, FP_PAY_CAPTURED);
    assert_false(p1.replayed);
    /* The same request again (a retry after a timeout): same payment, one debit. The frame was
     * re-captured, so the scores differ: they are not part of the request. */
    fp_identify_result id = good_match("carol");
    id.score = 0.77f;
    fp_pay_charge_req r = charge_req("shop", "order-17", 1200, &id);
    fp_payment p2;
    ASSERT_OK(fp_pay_charge(f->pay, &r, &p2));
    assert_true(p2.replayed);
    assert_int_equal(p2.id, p1.id);
    assert_int_equal(p2.state, FP_PAY_CAPTURED);
    assert_int_equal(p2.evidence_seq, p1.evidence_seq); /* no new decision was made */
    assert_int_equal(wallet_balance(f, "carol", "EUR"), 3800);

    /* Same key, different request: a distinct error, nothing written. */
    r.amount = 1300;
    ASSERT_STATUS(fp_pay_charge(f->pay, &r, &p2), FP_ERR_PAY_CONFLICT);
    assert_int_equal(p2.id, 0);
    r.amount = 1200;
    r.terminal_id = "till-2";
    ASSERT_OK(fp_pay_terminal_create(f->pay, "shop", "till-2", "Till 2"));
    ASSERT_STATUS(fp_pay_charge(f->pay, &r, &p2), FP_ERR_PAY_CONFLICT);
    /* The same key for a refund is another request too. */
    fp_pay_refund_result rr;
    ASSERT_STATUS(fp_pay_refund(f->pay, "shop", "order-17", p1.id, 100, &rr), FP_ERR_PAY_CONFLICT);
    assert_int_equal(wallet_balance(f, "carol", "EUR"), 3800);

    /* Keys are per merchant: another merchant may use the same text. */
    fp_payment p3 = charge(f, "cafe", "order-17", "carol", 1200);
    assert_false(p3.replayed);
    assert_int_not_equal(p3.id, p1.id);
    assert_int_equal(wallet_balance(f, "carol", "EUR"), 2600);

    /* A declined charge keeps its key: the retry gets the same decline, even after a top-up. */
    fp_payment d1 = charge(f, "shop", "big", "carol", 4000);
    assert_int_equal(d1.state, FP_PAY_DECLINED);
    ASSERT_OK(fp_pay_topup(f->pay, "carol", "EUR", 10000, NULL, NULL));
    fp_payment d2 = charge(f, "shop", "big", "carol", 4000);
    assert_true(d2.replayed);
    assert_int_equal(d2.id, d1.id);
    assert_int_equal(d2.state, FP_PAY_DECLINED);

    /* Replays of a refund. */
    ASSERT_OK(fp_pay_refund(f->pay, "shop", "refund-1", p1.id, 200, &rr));
    assert_false(rr.replayed);
    fp_pay_refund_result rr2;
    ASSERT_OK(fp_pay_refund(f->pay, "shop", "refund-1", p1.id, 200, &rr2));
    assert_true(rr2.replayed);
    assert_int_equal(rr2.refund_id, rr.refund_id);
    assert_int_equal(rr2.payment.refunded, 200);
    ASSERT_STATUS(fp_pay_refund(f->pay, "shop", "refund-1", p1.id, 300, &rr2), FP_ERR_PAY_CONFLICT);
    assert_int_equal(wallet_balance(f, "carol", "EUR"), 2600 + 10000 + 200);
    assert_ledger_ok(f);
}

/* ------------------------------------------------------------------------------------------ */
/* Refunds                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void test_refunds(void **state) {
    fx *f = *state;
    add_merchant(f, "shop");
    add_merchant(f, "other");
    add_customer(f, "dave", NULL);
    ASSERT_OK(fp_pay_topup(f->pay, "dave", "EUR", 5000, NULL, NULL));
    /* An earlier payment gives the merchant money of its own, so only the payment's refundable
     * amount (not the merchant's balance) can stop an over-refund below. */
    fp_payment p0 = charge(f, "shop", "c0", "dave", 2000);
    fp_payment p = charge(f, "shop", "c1", "dave", 1000);
    assert_int_equal(p0.state, FP_PAY_CAPTURED);
    assert_int_equal(p.state, FP_PAY_CAPTURED);
    fp_pay_refund_result r;

    ASSERT_OK(fp_pay_refund(f->pay, "shop", "r1", p.id, 300, &r));
    assert_int_equal(r.payment.state, FP_PAY_PARTIALLY_REFUNDED);
    assert_int_equal(r.payment.refunded, 300);
    assert_int_equal(r.amount, 300);
    /* More than what is left (700) is refused, and changes nothing. */
    ASSERT_STATUS(fp_pay_refund(f->pay, "shop", "r2", p.id, 701, &r), FP_ERR_PAY_STATE);
    assert_non_null(strstr(fp_last_error(), "exceeds"));
    ASSERT_OK(fp_pay_refund(f->pay, "shop", "r3", p.id, 700, &r));
    assert_int_equal(r.payment.state, FP_PAY_REFUNDED);
    assert_int_equal(r.payment.refunded, 1000);
    ASSERT_STATUS(fp_pay_refund(f->pay, "shop", "r4", p.id, 1, &r), FP_ERR_PAY_STATE);
    assert_int_equal(wallet_balance(f, "dave", "EUR"), 3000);
    assert_int_equal(merchant_balance(f, "shop", "EUR"), 2000);

    /* A full refund in one go. */
    fp_payment q = charge(f, "shop", "c2", "dave", 450);
    ASSERT_OK(fp_pay_refund(f->pay, "shop", "r5", q.id, 450, &r));
    assert_int_equal(r.payment.state, FP_PAY_REFUNDED);
    /* Another merchant cannot see, let alone refund, this payment. */
    fp_payment z = charge(f, "shop", "c3", "dave", 100);
    ASSERT_STATUS(fp_pay_refund(f->pay, "other", "r6", z.id, 50, &r), FP_ERR_NOT_FOUND);
    /* Declined or pending payments have nothing captured to refund. */
    fp_payment d = charge(f, "shop", "c4", "dave", 99999);
    assert_int_equal(d.state, FP_PAY_DECLINED);
    ASSERT_STATUS(fp_pay_refund(f->pay, "shop", "r7", d.id, 1, &r), FP_ERR_PAY_STATE);
    ASSERT_OK(fp_pay_customer_set_pin(f->pay, "dave", "1357"));
    ASSERT_OK(fp_pay_topup(f->pay, "dave", "EUR", 10000, NULL, NULL));
    fp_payment a = charge(f, "shop", "c5", "dave", 6000);
    assert_int_equal(a.state, FP_PAY_AUTHORISED);
    ASSERT_STATUS(fp_pay_refund(f->pay, "shop", "r8", a.id, 1, &r), FP_ERR_PAY_STATE);
    ASSERT_STATUS(fp_pay_refund(f->pay, "shop", "r9", 424242, 1, &r), FP_ERR_NOT_FOUND);
    ASSERT_STATUS(fp_pay_refund(f->pay, "shop", "r10", z.id, 0, &r), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_pay_refund(f->pay, "shop", "r11", z.id, -5, &r), FP_ERR_INVALID_ARG);

    /* The database refuses an over-refund even when written by hand. */
    sqlite3 *db = raw_open(f->db);
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE pay_payments SET refunded = 101 WHERE id = %lld",
             (long long)z.id);
    assert_int_not_equal(raw_try(db, sql), SQLITE_OK);
    sqlite3_close(db);
    assert_ledger_ok(f);
}

/* ------------------------------------------------------------------------------------------ */
/* Limits                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void test_limits(void **state) {
    fx *f = *state;
    add_merchant(f, "shop");
    add_customer(f, "erin", NULL);
    ASSERT_OK(fp_pay_topup(f->pay, "erin", "EUR", 100000, NULL, NULL));
    ASSERT_OK(fp_pay_customer_set_limits(f->pay, "erin", "EUR", 1000, 1500));
    fp_pay_account w;
    ASSERT_OK(fp_pay_wallet(f->pay, "erin", "EUR", &w));
    assert_int_equal(w.per_payment_limit, 1000);
    assert_int_equal(w.daily_limit, 1500);

    fp_payment p = charge(f, "shop", "a", "erin", 1001);
    assert_int_equal(p.state, FP_PAY_DECLINED);
    assert_string_equal(p.decline, "limit_per_payment");
    p = charge(f, "shop", "b", "erin", 1000);
    assert_int_equal(p.state, FP_PAY_CAPTURED);
    p = charge(f, "shop", "c", "erin", 501);
    assert_int_equal(p.state, FP_PAY_DECLINED);
    assert_string_equal(p.decline, "limit_daily");
    fp_payment d = charge(f, "shop", "d", "erin", 500); /* exactly up to the limit */
    assert_int_equal(d.state, FP_PAY_CAPTURED);
    p = charge(f, "shop", "e", "erin", 1);
    assert_string_equal(p.decline, "limit_daily");
    /* A refund does not give the day's allowance back. */
    fp_pay_refund_result r;
    ASSERT_OK(fp_pay_refund(f->pay, "shop", "r", d.id, 500, &r));
    p = charge(f, "shop", "f", "erin", 1);
    assert_string_equal(p.decline, "limit_daily");
    /* The window is rolling 24 hours. */
    atomic_fetch_add(&f->now, INT64_C(86400000) - 1);
    p = charge(f, "shop", "g", "erin", 1);
    assert_string_equal(p.decline, "limit_daily");
    atomic_fetch_add(&f->now, 1);
    p = charge(f, "shop", "h", "erin", 1000);
    assert_int_equal(p.state, FP_PAY_CAPTURED);
    assert_int_equal(wallet_balance(f, "erin", "EUR"), 100000 - 1000 - 500 + 500 - 1000);
    ASSERT_STATUS(fp_pay_customer_set_limits(f->pay, "erin", "EUR", 0, 10), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_pay_customer_set_limits(f->pay, "erin", "USD", 10, 10), FP_ERR_NOT_FOUND);
    assert_ledger_ok(f);
}

/* ------------------------------------------------------------------------------------------ */
/* Step-up                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static fp_payment charge_with(fx *f, const char *key, const fp_identify_result *id,
                              int64_t amount) {
    fp_pay_charge_req r = charge_req("shop", key, amount, id);
    fp_payment p;
    ASSERT_OK(fp_pay_charge(f->pay, &r, &p));
    return p;
}

static void test_stepup_triggers(void **state) {
    fx *f = *state;
    add_merchant(f, "shop");
    add_customer(f, "gina", "4321");
    add_customer(f, "gino", "8765");
    ASSERT_OK(fp_pay_topup(f->pay, "gina", "EUR", 50000, NULL, NULL));
    const fp_pay_policy pol = fp_pay_policy_default();

    fp_identify_result id = good_match("gina");
    fp_payment p = charge_with(f, "ok", &id, 100);
    assert_int_equal(p.state, FP_PAY_CAPTURED);

    p = charge_with(f, "amount", &id, pol.stepup_above + 1);
    assert_int_equal(p.state, FP_PAY_AUTHORISED);
    assert_true(p.stepup_required);
    assert_int_equal(p.stepup, FP_STEPUP_PIN);
    assert_int_equal(p.reasons, FP_PAY_WHY_AMOUNT);
    assert_true(p.expires_ms > atomic_load(&f->now));

    fp_identify_result m = id;
    m.margin = 0.02f;
    p = charge_with(f, "margin", &m, 100);
    assert_int_equal(p.state, FP_PAY_AUTHORISED);
    assert_int_equal(p.reasons, FP_PAY_WHY_MARGIN);

    fp_identify_result nb = id;
    nb.blink = 0;
    p = charge_with(f, "blink", &nb, 100);
    assert_int_equal(p.reasons, FP_PAY_WHY_LIVENESS);
    fp_identify_result un = id;
    un.decision = FP_DECISION_UNCERTAIN;
    p = charge_with(f, "uncertain", &un, 100);
    assert_int_equal(p.reasons, FP_PAY_WHY_UNCERTAIN);

    /* The look-alike pair comes from the store. */
    ASSERT_OK(fp_store_lookalike_add(f->store, "gina", "gino", 0.71f));
    p = charge_with(f, "lookalike", &id, 100);
    assert_int_equal(p.state, FP_PAY_AUTHORISED);
    assert_int_equal(p.reasons, FP_PAY_WHY_LOOKALIKE);

    /* Five payments are held: 5001 + 4 x 100 out of the wallet, into the hold account. */
    assert_int_equal(wallet_balance(f, "gina", "EUR"), 50000 - 100 - 5001 - 400);
    sqlite3 *db = raw_open(f->db);
    assert_int_equal(raw_int(db, "SELECT balance FROM pay_accounts WHERE kind = 'hold'"), 5401);
    sqlite3_close(db);

    /* Refusals recorded as declined payments. */
    fp_identify_result lo = id;
    lo.score = 0.2f;
    p = charge_with(f, "low", &lo, 100);
    assert_int_equal(p.state, FP_PAY_DECLINED);
    assert_string_equal(p.decline, "refused");
    assert_true(p.reasons & FP_PAY_WHY_SCORE);
    /* A user store-locked at the identity level cannot pay. */
    ASSERT_OK(fp_store_user_set_status(f->store, "gina", FP_USER_LOCKED));
    p = charge_with(f, "store-locked", &id, 100);
    assert_int_equal(p.state, FP_PAY_DECLINED);
    assert_true(p.reasons & FP_PAY_WHY_CUSTOMER);
    ASSERT_OK(fp_store_user_set_status(f->store, "gina", FP_USER_ACTIVE));
    /* Nobody identified: declined, with no customer. */
    fp_identify_result nm;
    memset(&nm, 0, sizeof nm);
    nm.decision = FP_DECISION_NO_MATCH;
    p = charge_with(f, "nobody", &nm, 100);
    assert_int_equal(p.state, FP_PAY_DECLINED);
    assert_string_equal(p.user_id, "");
    assert_int_equal(p.customer_account, 0);
    assert_true(p.reasons & FP_PAY_WHY_NO_MATCH);
    /* A wallet in another currency does not count. */
    fp_pay_charge_req r = charge_req("shop", "usd", 100, &id);
    r.currency = "USD";
    ASSERT_OK(fp_pay_charge(f->pay, &r, &p));
    assert_int_equal(p.state, FP_PAY_DECLINED);
    assert_true(p.reasons & FP_PAY_WHY_CUSTOMER);
    assert_ledger_ok(f);
    assert_audit_ok(f);
}

static void test_stepup_pin_and_phone(void **state) {
    fx *f = *state;
    add_merchant(f, "shop");
    add_merchant(f, "other");
    add_customer(f, "hal", "135790");
    ASSERT_OK(fp_pay_topup(f->pay, "hal", "EUR", 20000, NULL, NULL));
    /* The PIN is stored as an argon2id hash, never as digits. */
    sqlite3 *db = raw_open(f->db);
    assert_int_equal(
        raw_int(db, "SELECT pin_hash LIKE '$argon2id$%' FROM pay_customers WHERE user_id = 'hal'"),
        1);
    sqlite3_close(db);
    assert_false(db_contains(f->db, "135790", 6));
    ASSERT_STATUS(fp_pay_customer_set_pin(f->pay, "hal", "12a4"), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_pay_customer_set_pin(f->pay, "hal", "123"), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_pay_customer_set_pin(f->pay, "nobody", "1234"), FP_ERR_NOT_FOUND);

    fp_payment p = charge(f, "shop", "big", "hal", 8000);
    assert_int_equal(p.state, FP_PAY_AUTHORISED);
    fp_pay_stepup_result r;
    /* Another merchant cannot step it up. */
    ASSERT_STATUS(fp_pay_stepup_verify(f->pay, "other", p.id, "135790", &r), FP_ERR_NOT_FOUND);
    ASSERT_OK(fp_pay_stepup_verify(f->pay, "shop", p.id, "000000", &r));
    assert_false(r.verified);
    assert_int_equal(r.failures, 1);
    assert_int_equal(r.attempts_left, 4);
    assert_int_equal(r.payment.state, FP_PAY_AUTHORISED);
    ASSERT_OK(fp_pay_stepup_verify(f->pay, "shop", p.id, "135790", &r));
    assert_true(r.verified);
    assert_int_equal(r.failures, 0); /* a success resets the count */
    assert_int_equal(r.payment.state, FP_PAY_CAPTURED);
    assert_int_equal(r.payment.captured, 8000);
    assert_false(r.payment.stepup_required);
    assert_int_equal(wallet_balance(f, "hal", "EUR"), 12000);
    assert_int_equal(merchant_balance(f, "shop", "EUR"), 8000);
    /* Captured: no second step-up. */
    ASSERT_STATUS(fp_pay_stepup_verify(f->pay, "shop", p.id, "135790", &r), FP_ERR_PAY_STATE);
    fp_pay_customer c;
    ASSERT_OK(fp_pay_customer_get(f->pay, "hal", &c));
    assert_int_equal(c.stepup_failures, 0);
    assert_true(c.has_pin);

    /* The phone's last 4 digits, for a customer without a PIN and a small amount. */
    add_customer(f, "ivy", NULL);
    ASSERT_OK(fp_pay_topup(f->pay, "ivy", "EUR", 5000, NULL, NULL));
    ASSERT_OK(fp_pay_customer_set_phone(f->pay, "ivy", "0042"));
    ASSERT_STATUS(fp_pay_customer_set_phone(f->pay, "ivy", "42"), FP_ERR_INVALID_ARG);
    fp_identify_result id = good_match("ivy");
    id.margin = 0.03f;
    fp_payment q = charge_with(f, "phone", &id, 1500);
    assert_int_equal(q.state, FP_PAY_AUTHORISED);
    assert_int_equal(q.stepup, FP_STEPUP_PHONE4);
    ASSERT_OK(fp_pay_stepup_verify(f->pay, "shop", q.id, "0043", &r));
    assert_false(r.verified);
    ASSERT_OK(fp_pay_stepup_verify(f->pay, "shop", q.id, "0042", &r));
    assert_true(r.verified);
    assert_int_equal(r.payment.state, FP_PAY_CAPTURED);
    /* Above phone_stepup_max the digits are not enough and there is no PIN: refused. */
    q = charge_with(f, "phone-big", &id, 2500);
    assert_int_equal(q.state, FP_PAY_DECLINED);
    assert_true(q.reasons & FP_PAY_WHY_NO_STEPUP);

    /* Each step-up attempt is an evidence record. */
    fp_pay_evidence e;
    ASSERT_OK(fp_pay_evidence_get(f->store, r.payment.evidence_seq + 2, &e));
    assert_string_equal(e.event, "stepup");
    assert_string_equal(e.challenge, "phone4");
    assert_string_equal(e.decision, "accept");
    assert_string_equal(e.outcome, "captured");
    assert_ledger_ok(f);
    assert_audit_ok(f);
}

static void test_lock_after_failures(void **state) {
    fx *f = *state;
    add_merchant(f, "shop");
    add_customer(f, "jack", "97531");
    ASSERT_OK(fp_pay_topup(f->pay, "jack", "EUR", 30000, NULL, NULL));
    fp_payment a = charge(f, "shop", "a", "jack", 6000);
    fp_payment b = charge(f, "shop", "b", "jack", 7000);
    assert_int_equal(a.state, FP_PAY_AUTHORISED);
    assert_int_equal(b.state, FP_PAY_AUTHORISED);
    assert_int_equal(wallet_balance(f, "jack", "EUR"), 17000);

    fp_pay_stepup_result r;
    for (int i = 1; i <= 4; i++) {
        ASSERT_OK(fp_pay_stepup_verify(f->pay, "shop", a.id, "11111", &r));
        assert_false(r.verified);
        assert_false(r.locked);
        assert_int_equal(r.failures, i);
        assert_int_equal(r.attempts_left, 5 - i);
    }
    /* The 5th failure locks face payment and voids every pending step-up of the customer. */
    ASSERT_OK(fp_pay_stepup_verify(f->pay, "shop", b.id, "22222", &r));
    assert_true(r.locked);
    assert_int_equal(r.failures, 5);
    assert_int_equal(r.attempts_left, 0);
    assert_int_equal(r.payment.state, FP_PAY_DECLINED);
    assert_string_equal(r.payment.decline, "locked");
    fp_payment ga;
    ASSERT_OK(fp_pay_get(f->pay, a.id, &ga));
    assert_int_equal(ga.state, FP_PAY_DECLINED);
    assert_string_equal(ga.decline, "locked");
    assert_int_equal(wallet_balance(f, "jack", "EUR"), 30000); /* all held money back */
    /* Even the right PIN does nothing now. */
    ASSERT_STATUS(fp_pay_stepup_verify(f->pay, "shop", a.id, "97531", &r), FP_ERR_PAY_STATE);
    fp_pay_customer c;
    ASSERT_OK(fp_pay_customer_get(f->pay, "jack", &c));
    assert_true(c.face_locked);
    /* Locked: refused outright, whatever the amount. */
    fp_payment p = charge(f, "shop", "c", "jack", 10);
    assert_int_equal(p.state, FP_PAY_DECLINED);
    assert_string_equal(p.decline, "locked");
    assert_true(p.reasons & FP_PAY_WHY_LOCKED);

    /* The lock is in the store's audit trail; an operator unlocks. */
    ASSERT_OK(fp_pay_customer_unlock(f->pay, "jack"));
    ASSERT_OK(fp_pay_customer_get(f->pay, "jack", &c));
    assert_false(c.face_locked);
    assert_int_equal(c.stepup_failures, 0);
    p = charge(f, "shop", "d", "jack", 10);
    assert_int_equal(p.state, FP_PAY_CAPTURED);
    sqlite3 *db = raw_open(f->db);
    assert_int_equal(
        raw_int(db, "SELECT count(*) FROM audit WHERE user_id = 'jack' AND event = 'pay_locked'"),
        1);
    assert_int_equal(
        raw_int(db, "SELECT count(*) FROM audit WHERE user_id = 'jack' AND event = 'pay_unlocked'"),
        1);
    sqlite3_close(db);
    assert_ledger_ok(f);
    assert_audit_ok(f);
}

static void test_expiry_and_cancel(void **state) {
    fx *f = *state;
    add_merchant(f, "shop");
    add_customer(f, "kim", "2580");
    ASSERT_OK(fp_pay_topup(f->pay, "kim", "EUR", 30000, NULL, NULL));
    fp_payment a = charge(f, "shop", "a", "kim", 6000);
    fp_payment b = charge(f, "shop", "b", "kim", 6000);
    fp_payment c = charge(f, "shop", "c", "kim", 6000);
    assert_int_equal(wallet_balance(f, "kim", "EUR"), 12000);

    fp_payment out;
    ASSERT_OK(fp_pay_cancel(f->pay, "shop", a.id, &out));
    assert_int_equal(out.state, FP_PAY_DECLINED);
    assert_string_equal(out.decline, "cancelled");
    ASSERT_STATUS(fp_pay_cancel(f->pay, "shop", a.id, &out), FP_ERR_PAY_STATE);
    assert_int_equal(wallet_balance(f, "kim", "EUR"), 18000);

    /* Past the step-up's lifetime the right PIN no longer captures. */
    atomic_fetch_add(&f->now, fp_pay_options_default().stepup_ttl_ms);
    fp_pay_stepup_result r;
    ASSERT_OK(fp_pay_stepup_verify(f->pay, "shop", b.id, "2580", &r));
    assert_false(r.verified);
    assert_int_equal(r.payment.state, FP_PAY_DECLINED);
    assert_string_equal(r.payment.decline, "stepup_expired");
    /* The housekeeping call voids the rest. */
    int n = 0;
    ASSERT_OK(fp_pay_expire(f->pay, &n));
    assert_int_equal(n, 1);
    ASSERT_OK(fp_pay_get(f->pay, c.id, &out));
    assert_string_equal(out.decline, "stepup_expired");
    ASSERT_OK(fp_pay_expire(f->pay, &n));
    assert_int_equal(n, 0);
    assert_int_equal(wallet_balance(f, "kim", "EUR"), 30000);
    assert_ledger_ok(f);
}

/* Top-ups under an idempotency key: one credit per key, replays give the first top-up, another
 * request (or the key of a charge) is a conflict, a failed top-up keeps no key, and all of it
 * holds after the store is closed and opened again (the record is in the file, not in memory). */
static void test_topup_idempotent(void **state) {
    fx *f = *state;
    add_merchant(f, "shop");
    add_merchant(f, "cafe");
    add_customer(f, "tina", NULL);
    fp_pay_topup_result t1, t2;
    ASSERT_OK(fp_pay_topup_idempotent(f->pay, "shop", "tu-1", "tina", "EUR", 2500, "cash", &t1));
    assert_false(t1.replayed);
    assert_true(t1.txn_id > 0);
    assert_int_equal(t1.amount, 2500);
    assert_int_equal(t1.balance_after, 2500);
    ASSERT_OK(fp_pay_topup(f->pay, "tina", "EUR", 100, NULL, NULL)); /* moves the balance on */
    ASSERT_OK(fp_pay_topup_idempotent(f->pay, "shop", "tu-1", "tina", "EUR", 2500, "cash", &t2));
    assert_true(t2.replayed);
    assert_int_equal(t2.txn_id, t1.txn_id);
    assert_int_equal(t2.amount, 2500);
    assert_int_equal(t2.balance_after, 2500); /* the first answer, not today's balance */
    assert_int_equal(wallet_balance(f, "tina", "EUR"), 2600);

    /* another request under the same key: amount, reference, customer, currency */
    add_customer(f, "ugo", NULL);
    ASSERT_STATUS(fp_pay_topup_idempotent(f->pay, "shop", "tu-1", "tina", "EUR", 2600, "cash", &t2),
                  FP_ERR_PAY_CONFLICT);
    assert_int_equal(t2.txn_id, 0);
    ASSERT_STATUS(fp_pay_topup_idempotent(f->pay, "shop", "tu-1", "tina", "EUR", 2500, "card", &t2),
                  FP_ERR_PAY_CONFLICT);
    ASSERT_STATUS(fp_pay_topup_idempotent(f->pay, "shop", "tu-1", "ugo", "EUR", 2500, "cash", &t2),
                  FP_ERR_PAY_CONFLICT);
    ASSERT_STATUS(fp_pay_topup_idempotent(f->pay, "shop", "tu-1", "tina", "USD", 2500, "cash", &t2),
                  FP_ERR_PAY_CONFLICT);
    ASSERT_STATUS(fp_pay_topup_idempotent(f->pay, "shop", "tu-1", "tina", "EUR", 2500, NULL, &t2),
                  FP_ERR_PAY_CONFLICT);
    assert_int_equal(wallet_balance(f, "tina", "EUR"), 2600);
    assert_int_equal(wallet_balance(f, "ugo", "EUR"), 0);
    /* one key space per merchant: a charge's key is not a top-up's, and the other way round */
    fp_payment p = charge(f, "shop", "order-1", "tina", 300);
    assert_int_equal(p.state, FP_PAY_CAPTURED);
    ASSERT_STATUS(fp_pay_topup_idempotent(f->pay, "shop", "order-1", "tina", "EUR", 300, NULL, &t2),
                  FP_ERR_PAY_CONFLICT);
    fp_identify_result id = good_match("tina");
    fp_pay_charge_req r = charge_req("shop", "tu-1", 2500, &id);
    fp_payment p2;
    ASSERT_STATUS(fp_pay_charge(f->pay, &r, &p2), FP_ERR_PAY_CONFLICT);
    fp_pay_refund_result rr;
    ASSERT_STATUS(fp_pay_refund(f->pay, "shop", "tu-1", p.id, 100, &rr), FP_ERR_PAY_CONFLICT);
    /* another merchant may use the same text */
    ASSERT_OK(fp_pay_topup_idempotent(f->pay, "cafe", "tu-1", "tina", "EUR", 2500, "cash", &t2));
    assert_false(t2.replayed);
    assert_int_not_equal(t2.txn_id, t1.txn_id);
    assert_int_equal(wallet_balance(f, "tina", "EUR"), 2600 - 300 + 2500);

    /* a top-up that fails keeps no key: the same key works once the cause is gone */
    ASSERT_STATUS(fp_pay_topup_idempotent(f->pay, "shop", "tu-2", "vic", "EUR", 700, NULL, &t2),
                  FP_ERR_NOT_FOUND);
    add_customer(f, "vic", NULL);
    ASSERT_OK(fp_pay_topup_idempotent(f->pay, "shop", "tu-2", "vic", "EUR", 700, NULL, &t2));
    assert_false(t2.replayed);
    assert_int_equal(wallet_balance(f, "vic", "EUR"), 700);
    /* bad input */
    ASSERT_STATUS(fp_pay_topup_idempotent(f->pay, "shop", "", "vic", "EUR", 700, NULL, &t2),
                  FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_pay_topup_idempotent(f->pay, "shop", "tu-3", "vic", "EUR", 0, NULL, &t2),
                  FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_pay_topup_idempotent(f->pay, "shop", "tu-3", "vic", "EUR", 1, NULL, NULL),
                  FP_ERR_INVALID_ARG);

    /* durable: close everything, open the file again, replay */
    fp_pay_close(f->pay);
    fp_store_close(f->store);
    f->pay = NULL;
    f->store = NULL;
    ASSERT_OK(fp_store_open(f->db, &f->key, &f->store));
    fp_pay_options o = test_options(f);
    ASSERT_OK(fp_pay_open(f->store, &o, &f->pay));
    ASSERT_OK(fp_pay_topup_idempotent(f->pay, "shop", "tu-1", "tina", "EUR", 2500, "cash", &t2));
    assert_true(t2.replayed);
    assert_int_equal(t2.txn_id, t1.txn_id);
    assert_int_equal(t2.balance_after, 2500);
    ASSERT_STATUS(fp_pay_topup_idempotent(f->pay, "shop", "tu-1", "tina", "EUR", 9999, "cash", &t2),
                  FP_ERR_PAY_CONFLICT);
    assert_int_equal(wallet_balance(f, "tina", "EUR"), 2600 - 300 + 2500);
    /* a charge found by its key alone (what a server asks when a retry outlived its memory) */
    fp_payment byk;
    ASSERT_OK(fp_pay_charge_by_key(f->pay, "shop", "order-1", &byk));
    assert_true(byk.replayed);
    assert_int_equal(byk.id, p.id);
    assert_int_equal(byk.amount, 300);
    assert_string_equal(byk.terminal_id, "till-1");
    ASSERT_STATUS(fp_pay_charge_by_key(f->pay, "shop", "tu-1", &byk), FP_ERR_PAY_CONFLICT);
    assert_int_equal(byk.id, 0);
    ASSERT_STATUS(fp_pay_charge_by_key(f->pay, "cafe", "order-1", &byk), FP_ERR_NOT_FOUND);
    ASSERT_STATUS(fp_pay_charge_by_key(f->pay, "shop", "", &byk), FP_ERR_INVALID_ARG);
    assert_ledger_ok(f);
}

/* ------------------------------------------------------------------------------------------ */
/* API keys                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static void test_api_keys(void **state) {
    fx *f = *state;
    add_merchant(f, "shop");
    char key[FP_PAY_KEY_LEN + 1], id[FP_PAY_KEY_ID_LEN + 1], merchant[FP_STORE_ID_MAX + 1];
    char kid[FP_PAY_KEY_ID_LEN + 1];
    ASSERT_OK(fp_pay_key_issue(f->pay, "shop", key, id));
    assert_int_equal(strlen(key), FP_PAY_KEY_LEN);
    assert_int_equal(strlen(id), FP_PAY_KEY_ID_LEN);
    assert_memory_equal(key, "fpk_", 4);
    ASSERT_STATUS(fp_pay_key_issue(f->pay, "nope", key, NULL), FP_ERR_NOT_FOUND);
    ASSERT_OK(fp_pay_key_issue(f->pay, "shop", key, id)); /* (the failed call wiped key) */

    uint64_t n0 = fp_pay_ct_compare_count();
    ASSERT_OK(fp_pay_key_verify(f->pay, key, merchant, kid));
    assert_string_equal(merchant, "shop");
    assert_string_equal(kid, id);
    assert_true(fp_pay_ct_compare_count() == n0 + 1); /* compared through sodium_memcmp */

    /* One character off in the secret: refused, again through the constant-time compare. */
    char bad[FP_PAY_KEY_LEN + 1];
    memcpy(bad, key, sizeof bad);
    bad[FP_PAY_KEY_LEN - 1] = bad[FP_PAY_KEY_LEN - 1] == 'A' ? 'B' : 'A';
    ASSERT_STATUS(fp_pay_key_verify(f->pay, bad, merchant, NULL), FP_ERR_PAY_UNAUTHORIZED);
    assert_string_equal(merchant, "");
    assert_true(fp_pay_ct_compare_count() == n0 + 2);
    /* An unknown key id costs the same comparison (against a dummy). */
    memcpy(bad, key, sizeof bad);
    bad[4] = bad[4] == 'a' ? 'b' : 'a';
    ASSERT_STATUS(fp_pay_key_verify(f->pay, bad, merchant, NULL), FP_ERR_PAY_UNAUTHORIZED);
    assert_true(fp_pay_ct_compare_count() == n0 + 3);
    /* Malformed keys. */
    ASSERT_STATUS(fp_pay_key_verify(f->pay, "", merchant, NULL), FP_ERR_PAY_UNAUTHORIZED);
    ASSERT_STATUS(fp_pay_key_verify(f->pay, NULL, merchant, NULL), FP_ERR_PAY_UNAUTHORIZED);
    memcpy(bad, key, sizeof bad);
    bad[30] = '!';
    ASSERT_STATUS(fp_pay_key_verify(f->pay, bad, merchant, NULL), FP_ERR_PAY_UNAUTHORIZED);
    char longer[FP_PAY_KEY_LEN + 2];
    snprintf(longer, sizeof longer, "%sx", key);
    ASSERT_STATUS(fp_pay_key_verify(f->pay, longer, merchant, NULL), FP_ERR_PAY_UNAUTHORIZED);

    /* Only a keyed hash is stored: neither the key nor its secret part is in the file. */
    assert_false(db_contains(f->db, key, strlen(key)));
    assert_false(db_contains(f->db, key + 21, 43));

    /* A second key of the same merchant; revoking one leaves the other working. */
    char key2[FP_PAY_KEY_LEN + 1], id2[FP_PAY_KEY_ID_LEN + 1];
    ASSERT_OK(fp_pay_key_issue(f->pay, "shop", key2, id2));
    assert_string_not_equal(key2, key);
    ASSERT_OK(fp_pay_key_revoke(f->pay, id));
    ASSERT_STATUS(fp_pay_key_verify(f->pay, key, merchant, NULL), FP_ERR_PAY_UNAUTHORIZED);
    ASSERT_OK(fp_pay_key_revoke(f->pay, id)); /* twice is fine */
    ASSERT_OK(fp_pay_key_verify(f->pay, key2, merchant, NULL));
    ASSERT_STATUS(fp_pay_key_revoke(f->pay, "0123456789abcdef"), FP_ERR_NOT_FOUND);
    ASSERT_STATUS(fp_pay_key_revoke(f->pay, "xyz"), FP_ERR_INVALID_ARG);

    /* A handle with another secret does not accept these keys. */
    fp_pay_options o = test_options(f);
    uint8_t secret[32];
    memset(secret, 7, sizeof secret);
    o.api_secret = secret;
    fp_pay *other = NULL;
    ASSERT_OK(fp_pay_open(f->store, &o, &other));
    ASSERT_STATUS(fp_pay_key_verify(other, key2, merchant, NULL), FP_ERR_PAY_UNAUTHORIZED);
    fp_pay_close(other);
}

/* Scopes are stored with the key and come back from verification; the names parse both ways. */
static void test_api_key_scopes(void **state) {
    fx *f = *state;
    add_merchant(f, "shop");
    char key[FP_PAY_KEY_LEN + 1], id[FP_PAY_KEY_ID_LEN + 1], merchant[FP_STORE_ID_MAX + 1];
    unsigned scopes = 0;
    const unsigned each[] = {FP_PAY_SCOPE_PAYMENTS, FP_PAY_SCOPE_REFUNDS, FP_PAY_SCOPE_CUSTOMERS,
                             FP_PAY_SCOPE_PAYMENTS | FP_PAY_SCOPE_REFUNDS, FP_PAY_SCOPE_ALL};
    for (size_t i = 0; i < sizeof each / sizeof each[0]; i++) {
        ASSERT_OK(fp_pay_key_issue_scoped(f->pay, "shop", each[i], key, id));
        ASSERT_OK(fp_pay_key_verify_scoped(f->pay, key, merchant, NULL, &scopes));
        assert_int_equal(scopes, each[i]);
        assert_string_equal(merchant, "shop");
    }
    /* the plain calls: a key with every scope, verification without asking for them */
    ASSERT_OK(fp_pay_key_issue(f->pay, "shop", key, id));
    ASSERT_OK(fp_pay_key_verify_scoped(f->pay, key, merchant, NULL, &scopes));
    assert_int_equal(scopes, FP_PAY_SCOPE_ALL);
    ASSERT_OK(fp_pay_key_verify(f->pay, key, merchant, NULL));
    /* no scope, unknown bits: refused, nothing stored */
    sqlite3 *db = raw_open(f->db);
    int64_t keys = raw_int(db, "SELECT count(*) FROM pay_api_keys");
    ASSERT_STATUS(fp_pay_key_issue_scoped(f->pay, "shop", 0, key, id), FP_ERR_INVALID_ARG);
    assert_string_equal(key, "");
    ASSERT_STATUS(fp_pay_key_issue_scoped(f->pay, "shop", 0x8, key, id), FP_ERR_INVALID_ARG);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM pay_api_keys"), keys);
    /* the database refuses a scope set outside 1..7 too */
    assert_int_not_equal(raw_try(db, "UPDATE pay_api_keys SET scopes = 8"), SQLITE_OK);
    assert_int_not_equal(raw_try(db, "UPDATE pay_api_keys SET scopes = 0"), SQLITE_OK);
    /* a failed verification gives no scope */
    char bad[FP_PAY_KEY_LEN + 1];
    memcpy(bad, key, sizeof bad);
    bad[FP_PAY_KEY_LEN - 1] = bad[FP_PAY_KEY_LEN - 1] == 'A' ? 'B' : 'A';
    scopes = 99;
    ASSERT_STATUS(fp_pay_key_verify_scoped(f->pay, bad, merchant, NULL, &scopes),
                  FP_ERR_PAY_UNAUTHORIZED);
    assert_int_equal(scopes, 0);
    sqlite3_close(db);

    /* names */
    ASSERT_OK(fp_pay_scopes_parse("payments", &scopes));
    assert_int_equal(scopes, FP_PAY_SCOPE_PAYMENTS);
    ASSERT_OK(fp_pay_scopes_parse(" customers, Refunds ", &scopes));
    assert_int_equal(scopes, FP_PAY_SCOPE_CUSTOMERS | FP_PAY_SCOPE_REFUNDS);
    ASSERT_OK(fp_pay_scopes_parse("all", &scopes));
    assert_int_equal(scopes, FP_PAY_SCOPE_ALL);
    ASSERT_STATUS(fp_pay_scopes_parse("payments,admin", &scopes), FP_ERR_INVALID_ARG);
    assert_non_null(strstr(fp_last_error(), "admin"));
    ASSERT_STATUS(fp_pay_scopes_parse(" , ", &scopes), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_pay_scopes_parse(NULL, &scopes), FP_ERR_INVALID_ARG);
    char text[64];
    fp_pay_scopes_format(FP_PAY_SCOPE_ALL, text, sizeof text);
    assert_string_equal(text, "payments,refunds,customers");
    fp_pay_scopes_format(FP_PAY_SCOPE_CUSTOMERS | FP_PAY_SCOPE_PAYMENTS, text, sizeof text);
    assert_string_equal(text, "payments,customers");
    fp_pay_scopes_format(0, text, sizeof text);
    assert_string_equal(text, "");
    fp_pay_scopes_format(FP_PAY_SCOPE_ALL, text, 12); /* too small: whole names only */
    assert_string_equal(text, "payments");
    ASSERT_OK(fp_pay_scopes_parse("payments,refunds,customers", &scopes)); /* round trip */
    fp_pay_scopes_format(scopes, text, sizeof text);
    assert_string_equal(text, "payments,refunds,customers");
}

/* A database written before schema 3 (no key scopes, charge/refund-only idempotency table) is
 * brought up to date on open: its keys keep working with every scope, its idempotency records
 * still replay, and top-ups join the same key space. The old file is made by running migrations 1
 * and 2 only and copying the rows of a live database into it. */
static void test_schema_3_upgrade(void **state) {
    fx *f = *state;
    add_merchant(f, "shop");
    add_customer(f, "wes", NULL);
    char key[FP_PAY_KEY_LEN + 1], merchant[FP_STORE_ID_MAX + 1];
    ASSERT_OK(fp_pay_key_issue_scoped(f->pay, "shop", FP_PAY_SCOPE_PAYMENTS, key, NULL));
    ASSERT_OK(fp_pay_topup(f->pay, "wes", "EUR", 5000, NULL, NULL));
    fp_payment p1 = charge(f, "shop", "order-1", "wes", 1000);
    assert_int_equal(p1.state, FP_PAY_CAPTURED);
    fp_pay_refund_result rr;
    ASSERT_OK(fp_pay_refund(f->pay, "shop", "refund-1", p1.id, 200, &rr));
    fp_pay_close(f->pay);
    fp_store_close(f->store);
    f->pay = NULL;
    f->store = NULL;

    char old[96];
    snprintf(old, sizeof old, "%.80s/v2.db", f->dir);
    sqlite3 *db = raw_open(old);
    ASSERT_OK(fp_store_migrate(db, old, fp_store_migrations, 2));
    char sql[512];
    snprintf(sql, sizeof sql, "ATTACH '%s' AS a", f->db);
    raw_exec(db, sql);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT name FROM main.sqlite_schema WHERE type = 'table' "
                                        "AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    char names[32][64];
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW && n < 32)
        snprintf(names[n++], sizeof names[0], "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    assert_true(n >= 12);
    for (int i = 0; i < n; i++) {
        if (!strcmp(names[i], "pay_api_keys"))
            snprintf(sql, sizeof sql,
                     "INSERT INTO main.pay_api_keys SELECT id, merchant_id, hash, created_ms, "
                     "revoked_ms FROM a.pay_api_keys");
        else if (!strcmp(names[i], "pay_idempotency"))
            snprintf(sql, sizeof sql,
                     "INSERT INTO main.pay_idempotency SELECT merchant_id, key, operation, "
                     "request_hash, payment_id, refund_id, created_ms FROM a.pay_idempotency");
        else
            snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO main.%.63s SELECT * FROM a.%.63s", names[i],
                     names[i]);
        raw_exec(db, sql);
    }
    raw_exec(db, "DETACH a");
    assert_int_equal(raw_int(db, "PRAGMA user_version"), 2);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM pragma_table_info('pay_api_keys') "
                                 "WHERE name = 'scopes'"),
                     0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM pay_idempotency"), 2);
    sqlite3_close(db);

    ASSERT_OK(fp_store_open(old, &f->key, &f->store));
    assert_int_equal(fp_store_schema_version(f->store), fp_store_latest_version()); /* 3, then 4 */
    fp_pay_options o = test_options(f);
    ASSERT_OK(fp_pay_open(f->store, &o, &f->pay));
    /* the key (a payments-only key before the copy dropped its scopes) now has all of them */
    unsigned scopes = 0;
    ASSERT_OK(fp_pay_key_verify_scoped(f->pay, key, merchant, NULL, &scopes));
    assert_int_equal(scopes, FP_PAY_SCOPE_ALL);
    /* old records replay; their keys stay taken for top-ups */
    fp_payment p2 = charge(f, "shop", "order-1", "wes", 1000);
    assert_true(p2.replayed);
    assert_int_equal(p2.id, p1.id);
    ASSERT_OK(fp_pay_refund(f->pay, "shop", "refund-1", p1.id, 200, &rr));
    assert_true(rr.replayed);
    fp_pay_topup_result t;
    ASSERT_STATUS(fp_pay_topup_idempotent(f->pay, "shop", "order-1", "wes", "EUR", 1000, NULL, &t),
                  FP_ERR_PAY_CONFLICT);
    ASSERT_OK(fp_pay_topup_idempotent(f->pay, "shop", "tu-1", "wes", "EUR", 1000, NULL, &t));
    assert_false(t.replayed);
    assert_int_equal(t.balance_after, 5000 - 1000 + 200 + 1000);
    assert_ledger_ok(f);
    assert_audit_ok(f);
    fp_pay_close(f->pay);
    fp_store_close(f->store);
    f->pay = NULL;
    f->store = NULL;
    rm_suffix(old, "");
    rm_suffix(old, "-wal");
    rm_suffix(old, "-shm");
}

static void test_rate_limit(void **state) {
    fx *f = *state;
    add_merchant(f, "shop");
    fp_pay_options o = test_options(f);
    o.rate_per_s = 2;
    o.rate_burst = 3;
    fp_pay *pay = NULL;
    ASSERT_OK(fp_pay_open(f->store, &o, &pay));
    char key[FP_PAY_KEY_LEN + 1], key2[FP_PAY_KEY_LEN + 1], m[FP_STORE_ID_MAX + 1];
    ASSERT_OK(fp_pay_key_issue(pay, "shop", key, NULL));
    ASSERT_OK(fp_pay_key_issue(pay, "shop", key2, NULL));
    for (int i = 0; i < 3; i++) ASSERT_OK(fp_pay_key_verify(pay, key, m, NULL)); /* the burst */
    ASSERT_STATUS(fp_pay_key_verify(pay, key, m, NULL), FP_ERR_PAY_RATE_LIMITED);
    ASSERT_OK(fp_pay_key_verify(pay, key2, m, NULL)); /* per key */
    atomic_fetch_add(&f->now, 250);                   /* half a token */
    ASSERT_STATUS(fp_pay_key_verify(pay, key, m, NULL), FP_ERR_PAY_RATE_LIMITED);
    atomic_fetch_add(&f->now, 250); /* 2 tokens per second: one whole token after 500 ms */
    ASSERT_OK(fp_pay_key_verify(pay, key, m, NULL));
    ASSERT_STATUS(fp_pay_key_verify(pay, key, m, NULL), FP_ERR_PAY_RATE_LIMITED);
    atomic_fetch_add(&f->now, 60000); /* refills up to the burst, not beyond */
    for (int i = 0; i < 3; i++) ASSERT_OK(fp_pay_key_verify(pay, key, m, NULL));
    ASSERT_STATUS(fp_pay_key_verify(pay, key, m, NULL), FP_ERR_PAY_RATE_LIMITED);
    fp_pay_close(pay);
}

/* The replay guard: frames of another session are a replay, the same session's retry is not,
 * rows expire after their ttl, and the record survives closing and reopening the store. */
static void test_frames_replay_guard(void **state) {
    fx *f = *state;
    uint8_t h[4][16];
    for (int i = 0; i < 4; i++) memset(h[i], 'a' + i, 16);
    int rep = -1;
    ASSERT_OK(fp_pay_frames_check(f->pay, (const uint8_t(*)[16])h, 2, "sess-A", 1000, &rep));
    assert_int_equal(rep, 0);
    ASSERT_OK(fp_pay_frames_check(f->pay, (const uint8_t(*)[16])h, 2, "sess-A", 1000, &rep)); /* a retry */
    assert_int_equal(rep, 0);
    ASSERT_OK(fp_pay_frames_check(f->pay, (const uint8_t(*)[16])&h[1], 3, "sess-B", 1000, &rep)); /* h[1] is A's */
    assert_int_equal(rep, 1);
    ASSERT_OK(fp_pay_frames_check(f->pay, (const uint8_t(*)[16])&h[2], 2, "sess-C", 1000, &rep)); /* B recorded them */
    assert_int_equal(rep, 1);
    /* the same frame twice in one attempt is not a replay of itself */
    uint8_t twice[2][16];
    memset(twice, 'z', sizeof twice);
    ASSERT_OK(fp_pay_frames_check(f->pay, (const uint8_t(*)[16])twice, 2, "sess-D", 1000, &rep));
    assert_int_equal(rep, 0);
    /* kept across a reopen */
    fp_pay_close(f->pay);
    fp_store_close(f->store);
    ASSERT_OK(fp_store_open(f->db, &f->key, &f->store));
    fp_pay_options o = test_options(f);
    ASSERT_OK(fp_pay_open(f->store, &o, &f->pay));
    ASSERT_OK(fp_pay_frames_check(f->pay, (const uint8_t(*)[16])h, 1, "sess-E", 1000, &rep));
    assert_int_equal(rep, 1);
    /* forgotten after the ttl */
    atomic_fetch_add(&f->now, 1000);
    ASSERT_OK(fp_pay_frames_check(f->pay, (const uint8_t(*)[16])h, 1, "sess-F", 1000, &rep));
    assert_int_equal(rep, 0);
    /* bad arguments */
    ASSERT_STATUS(fp_pay_frames_check(NULL, (const uint8_t(*)[16])h, 1, "s", 1000, &rep), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_pay_frames_check(f->pay, NULL, 1, "s", 1000, &rep), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_pay_frames_check(f->pay, (const uint8_t(*)[16])h, -1, "s", 1000, &rep), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_pay_frames_check(f->pay, (const uint8_t(*)[16])h, FP_PAY_MAX_FRAME_HASHES + 1, "s", 1000, &rep),
                  FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_pay_frames_check(f->pay, (const uint8_t(*)[16])h, 1, "", 1000, &rep), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_pay_frames_check(f->pay, (const uint8_t(*)[16])h, 1, NULL, 1000, &rep), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_pay_frames_check(f->pay, (const uint8_t(*)[16])h, 1, "s", 0, &rep), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_pay_frames_check(f->pay, (const uint8_t(*)[16])h, 1, "s", 1000, NULL), FP_ERR_INVALID_ARG);
}

/* ------------------------------------------------------------------------------------------ */
/* Evidence chain                                                                              */
/* ------------------------------------------------------------------------------------------ */

static const char THUMB[] = "\xff\xd8\xff\xe0 fake JPEG thumbnail UNIQUE-MARKER-5e1f \xff\xd9";

/* Ten charge decisions with thumbnails and quality values. */
static void make_evidence(fx *f) {
    add_merchant(f, "shop");
    add_customer(f, "lee", "1111");
    ASSERT_OK(fp_pay_topup(f->pay, "lee", "EUR", 100000, NULL, NULL));
    fp_quality q;
    memset(&q, 0, sizeof q);
    q.face_px = 240;
    q.brightness = 128.5f;
    q.contrast = 44;
    q.sharpness = 91.25f;
    q.occlusion = 0.03f;
    q.pass = 1;
    for (int i = 0; i < 10; i++) {
        char key[16];
        snprintf(key, sizeof key, "e%d", i);
        fp_identify_result id = good_match("lee");
        id.score = 0.6f + 0.03f * (float)i;
        fp_pay_charge_req r = charge_req("shop", key, i == 4 ? 9000 : 100 + i, &id);
        r.quality = &q;
        r.models = "blazeface-short@1 mobilefacenet-tflite@1 antispoof@1";
        r.thumbnail_jpeg = (const uint8_t *)THUMB;
        r.thumbnail_len = sizeof THUMB - 1;
        fp_payment p;
        ASSERT_OK(fp_pay_charge(f->pay, &r, &p));
        assert_int_equal(p.evidence_seq, i + 1);
    }
}

static void test_evidence_chain_edit(void **state) {
    fx *f = *state;
    make_evidence(f);
    assert_audit_ok(f);
    fp_audit_report ar;
    ASSERT_OK(fp_audit_verify(f->store, &ar));
    assert_int_equal(ar.records, 10);

    /* The record holds what was decided, and the thumbnail decrypts to the input bytes. */
    fp_pay_evidence e;
    ASSERT_OK(fp_pay_evidence_get(f->store, 5, &e));
    assert_int_equal(e.seq, 5);
    assert_string_equal(e.event, "charge");
    assert_string_equal(e.user_id, "lee");
    assert_int_equal(e.amount, 9000);
    assert_string_equal(e.currency, "EUR");
    assert_string_equal(e.decision, "stepup");
    assert_string_equal(e.outcome, "authorised");
    assert_string_equal(e.challenge, "blink");
    assert_string_equal(e.models, "blazeface-short@1 mobilefacenet-tflite@1 antispoof@1");
    assert_true(e.reasons & FP_PAY_WHY_AMOUNT);
    assert_true(fabs(e.score - (double)(0.6f + 0.12f)) < 1e-6);
    assert_true(fabs(e.threshold - (double)0.55f) < 1e-9);
    assert_int_equal(e.frames_used, 10);
    assert_true(e.blink);
    assert_true(e.has_quality);
    assert_true(e.q_sharpness == 91.25);
    assert_true(e.has_thumbnail);
    fp_pay_evidence e4;
    ASSERT_OK(fp_pay_evidence_get(f->store, 4, &e4));
    assert_memory_equal(e.prev_hash, e4.hash, 32);
    uint8_t *jpeg = NULL;
    size_t len = 0;
    ASSERT_OK(fp_pay_evidence_thumbnail(f->store, 5, &jpeg, &len));
    assert_int_equal(len, sizeof THUMB - 1);
    assert_memory_equal(jpeg, THUMB, len);
    free(jpeg);
    /* Encrypted at rest. */
    assert_false(db_contains(f->db, "UNIQUE-MARKER-5e1f", 18));
    ASSERT_STATUS(fp_pay_evidence_get(f->store, 99, &e), FP_ERR_NOT_FOUND);

    /* Append-only: a plain UPDATE or DELETE is refused by the triggers. */
    sqlite3 *db = raw_open(f->db);
    assert_int_not_equal(raw_try(db, "UPDATE pay_evidence SET score = 0.99 WHERE seq = 3"),
                         SQLITE_OK);
    assert_int_not_equal(raw_try(db, "DELETE FROM pay_evidence WHERE seq = 3"), SQLITE_OK);
    assert_int_not_equal(raw_try(db, "UPDATE pay_evidence SET thumb_ct = x'00' WHERE seq = 3"),
                         SQLITE_OK);
    assert_int_not_equal(raw_try(db, "UPDATE pay_postings SET amount = 1 WHERE id = 1"), SQLITE_OK);
    /* An attacker with the file drops the trigger and edits record 3's score. */
    raw_exec(db, "CREATE TEMP TABLE keep AS SELECT score, mac FROM pay_evidence WHERE seq = 3");
    raw_exec(db, "DROP TRIGGER pay_evidence_no_update");
    raw_exec(db, "UPDATE pay_evidence SET score = 0.99 WHERE seq = 3");
    ASSERT_OK(fp_audit_verify(f->store, &ar));
    assert_false(ar.ok);
    assert_int_equal(ar.problem, FP_AUDIT_EDITED);
    assert_int_equal(ar.first_bad, 3);
    assert_int_equal(ar.records, 3);
    assert_non_null(strstr(ar.message, "evidence record 3"));
    assert_non_null(strstr(ar.message, "content does not match its hash"));

    /* Putting the value back makes the chain whole again: detection is about content. */
    raw_exec(db, "UPDATE pay_evidence SET score = (SELECT score FROM keep) WHERE seq = 3");
    assert_audit_ok(f);
    /* The MAC is checked too (a record re-hashed with the public SHA-256 but without the key
     * has a MAC that does not match): here record 8 gets record 3's MAC. */
    raw_exec(db, "UPDATE pay_evidence SET mac = (SELECT mac FROM keep) WHERE seq = 8");
    ASSERT_OK(fp_audit_verify(f->store, &ar));
    assert_false(ar.ok);
    assert_int_equal(ar.problem, FP_AUDIT_EDITED);
    assert_int_equal(ar.first_bad, 8);
    assert_non_null(strstr(ar.message, "MAC"));
    sqlite3_close(db);
}

static void test_evidence_chain_delete(void **state) {
    fx *f = *state;
    make_evidence(f);
    assert_audit_ok(f);
    sqlite3 *db = raw_open(f->db);
    raw_exec(db, "DROP TRIGGER pay_evidence_no_delete");
    raw_exec(db, "DELETE FROM pay_evidence WHERE seq = 6");
    fp_audit_report ar;
    ASSERT_OK(fp_audit_verify(f->store, &ar));
    assert_false(ar.ok);
    assert_int_equal(ar.problem, FP_AUDIT_DELETED);
    assert_int_equal(ar.first_bad, 6);
    assert_int_equal(ar.records, 6); /* 1..5 verified, then 7 out of sequence */

    /* Closing the gap by renumbering breaks the hashes instead. */
    raw_exec(db, "DROP TRIGGER pay_evidence_no_update");
    raw_exec(db, "UPDATE pay_evidence SET seq = seq - 1 WHERE seq > 6");
    ASSERT_OK(fp_audit_verify(f->store, &ar));
    assert_false(ar.ok);
    assert_int_equal(ar.first_bad, 6);
    assert_int_equal(ar.problem, FP_AUDIT_EDITED);
    /* Dropping the newest records: the head notices. */
    raw_exec(db, "DELETE FROM pay_evidence WHERE seq >= 6");
    ASSERT_OK(fp_audit_verify(f->store, &ar));
    assert_false(ar.ok);
    assert_int_equal(ar.problem, FP_AUDIT_TRUNCATED);
    assert_int_equal(ar.first_bad, 6);
    /* A swapped thumbnail is reported as such. */
    raw_exec(db, "DROP TRIGGER pay_evidence_thumb_erase_only");
    raw_exec(db,
             "UPDATE pay_evidence SET thumb_ct = (SELECT thumb_ct FROM pay_evidence WHERE seq = 1) "
             "WHERE seq = 2");
    ASSERT_OK(fp_audit_verify(f->store, &ar));
    assert_int_equal(ar.problem, FP_AUDIT_THUMBNAIL);
    assert_int_equal(ar.first_bad, 2);
    uint8_t *jpeg = NULL;
    size_t len = 0;
    ASSERT_STATUS(fp_pay_evidence_thumbnail(f->store, 2, &jpeg, &len), FP_ERR_FORMAT);
    assert_null(jpeg);
    sqlite3_close(db);
}

/* ------------------------------------------------------------------------------------------ */
/* GDPR deletion                                                                               */
/* ------------------------------------------------------------------------------------------ */

static void test_customer_delete(void **state) {
    fx *f = *state;
    make_evidence(f); /* "lee": 10 payments, one of them (seq 5, 9000) pending a step-up */
    ASSERT_OK(fp_pay_customer_set_phone(f->pay, "lee", "9876"));
    fp_pay_account w;
    ASSERT_OK(fp_pay_wallet(f->pay, "lee", "EUR", &w));
    int64_t spent = 100 + 101 + 102 + 103 + 105 + 106 + 107 + 108 + 109;
    assert_int_equal(w.balance, 100000 - spent - 9000);
    fp_payment captured;
    ASSERT_OK(fp_pay_get(f->pay, 1, &captured));

    ASSERT_OK(fp_pay_customer_delete(f->pay, "lee"));
    ASSERT_OK(fp_store_user_delete(f->store, "lee", 0)); /* the caller's half: the templates */
    ASSERT_OK(fp_pay_customer_delete(f->pay, "lee"));    /* twice is fine */

    /* Money: the held payment voided, the rest paid out to funding, the wallet closed at 0. */
    ASSERT_OK(fp_pay_wallet(f->pay, "lee", "EUR", &w));
    assert_true(w.closed);
    assert_int_equal(w.balance, 0);
    fp_payment p;
    ASSERT_OK(fp_pay_get(f->pay, 5, &p));
    assert_int_equal(p.state, FP_PAY_DECLINED);
    assert_string_equal(p.decline, "customer_deleted");
    assert_string_equal(p.user_id, "lee"); /* the ledger keeps the opaque id */
    sqlite3 *db = raw_open(f->db);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM pay_txns WHERE kind = 'payout'"), 1);
    assert_int_equal(raw_int(db, "SELECT amount FROM pay_txns WHERE kind = 'payout'"),
                     100000 - spent);
    assert_int_equal(
        raw_int(db,
                "SELECT count(*) FROM pay_postings p JOIN pay_accounts a ON a.id = p.account_id "
                "WHERE a.user_id = 'lee'"),
        1 + 9 + 1 + 1 + 1); /* top-up, 9 charges, authorise, void, payout */
    /* Personal data gone: secrets and thumbnails. */
    assert_int_equal(raw_int(db, "SELECT count(*) FROM pay_customers WHERE pin_hash IS NOT NULL OR "
                                 "phone_hash IS NOT NULL"),
                     0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM pay_evidence WHERE thumb_ct IS NOT NULL"),
                     0);
    sqlite3_close(db);
    uint8_t *jpeg = NULL;
    size_t len = 0;
    ASSERT_STATUS(fp_pay_evidence_thumbnail(f->store, 5, &jpeg, &len), FP_ERR_NOT_FOUND);
    fp_pay_customer c;
    ASSERT_OK(fp_pay_customer_get(f->pay, "lee", &c));
    assert_true(c.deleted);
    assert_false(c.has_pin);
    assert_false(c.has_phone);
    /* The chain and the ledger still verify. */
    assert_audit_ok(f);
    assert_ledger_ok(f);

    /* Afterwards: no charge, no top-up, no refund into the closed wallet, no new customer. */
    fp_payment q = charge(f, "shop", "after", "lee", 10);
    assert_int_equal(q.state, FP_PAY_DECLINED);
    assert_true(q.reasons & FP_PAY_WHY_CUSTOMER);
    ASSERT_STATUS(fp_pay_topup(f->pay, "lee", "EUR", 10, NULL, NULL), FP_ERR_PAY_STATE);
    fp_pay_refund_result rr;
    ASSERT_STATUS(fp_pay_refund(f->pay, "shop", "rr", captured.id, 10, &rr), FP_ERR_PAY_STATE);
    ASSERT_STATUS(fp_pay_customer_create(f->pay, "lee", "EUR", NULL), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_pay_customer_delete(f->pay, "nobody"), FP_ERR_NOT_FOUND);
    assert_ledger_ok(f);
}

/* ------------------------------------------------------------------------------------------ */
/* Input checks                                                                                */
/* ------------------------------------------------------------------------------------------ */

static void test_invalid_input(void **state) {
    fx *f = *state;
    add_merchant(f, "shop");
    add_customer(f, "max", NULL);
    ASSERT_OK(fp_pay_topup(f->pay, "max", "EUR", 1000, NULL, NULL));
    fp_identify_result id = good_match("max");
    fp_payment p;
    fp_pay_charge_req r;
    const char *bad_currencies[] = {"eur", "EU", "EURO", "E1R", ""};
    for (size_t i = 0; i < sizeof bad_currencies / sizeof bad_currencies[0]; i++) {
        r = charge_req("shop", "x", 10, &id);
        r.currency = bad_currencies[i];
        ASSERT_STATUS(fp_pay_charge(f->pay, &r, &p), FP_ERR_INVALID_ARG);
    }
    const int64_t bad_amounts[] = {0, -1, FP_PAY_MAX_AMOUNT + 1, INT64_MIN};
    for (size_t i = 0; i < sizeof bad_amounts / sizeof bad_amounts[0]; i++) {
        r = charge_req("shop", "x", bad_amounts[i], &id);
        ASSERT_STATUS(fp_pay_charge(f->pay, &r, &p), FP_ERR_INVALID_ARG);
        ASSERT_STATUS(fp_pay_topup(f->pay, "max", "EUR", bad_amounts[i], NULL, NULL),
                      FP_ERR_INVALID_ARG);
    }
    r = charge_req("shop", "", 10, &id);
    ASSERT_STATUS(fp_pay_charge(f->pay, &r, &p), FP_ERR_INVALID_ARG);
    r = charge_req("shop", "tab\there", 10, &id);
    ASSERT_STATUS(fp_pay_charge(f->pay, &r, &p), FP_ERR_INVALID_ARG);
    r = charge_req("shop", "x", 10, NULL);
    ASSERT_STATUS(fp_pay_charge(f->pay, &r, &p), FP_ERR_INVALID_ARG);
    r = charge_req("shop", "x", 10, &id);
    r.user_id = "someone-else";
    ASSERT_STATUS(fp_pay_charge(f->pay, &r, &p), FP_ERR_INVALID_ARG);
    r = charge_req("shop", "x", 10, &id);
    r.thumbnail_jpeg = (const uint8_t *)"x";
    r.thumbnail_len = FP_PAY_THUMB_MAX + 1;
    ASSERT_STATUS(fp_pay_charge(f->pay, &r, &p), FP_ERR_TOO_LARGE);
    r = charge_req("nope", "x", 10, &id);
    ASSERT_STATUS(fp_pay_charge(f->pay, &r, &p), FP_ERR_NOT_FOUND);
    r = charge_req("shop", "x", 10, &id);
    r.terminal_id = "till-9";
    ASSERT_STATUS(fp_pay_charge(f->pay, &r, &p), FP_ERR_NOT_FOUND);
    ASSERT_OK(fp_pay_terminal_disable(f->pay, "shop", "till-1"));
    r = charge_req("shop", "x", 10, &id);
    ASSERT_STATUS(fp_pay_charge(f->pay, &r, &p), FP_ERR_PAY_STATE);
    assert_int_equal(wallet_balance(f, "max", "EUR"), 1000); /* nothing moved */

    ASSERT_STATUS(fp_pay_merchant_create(f->pay, "shop", "again"), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_pay_merchant_create(f->pay, "bad id", "x"), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_pay_terminal_create(f->pay, "shop", "till-1", "dup"), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_pay_terminal_create(f->pay, "nope", "t", "x"), FP_ERR_NOT_FOUND);
    ASSERT_STATUS(fp_pay_customer_create(f->pay, "max", "EUR", NULL), FP_ERR_INVALID_ARG);
    ASSERT_STATUS(fp_pay_customer_create(f->pay, "ghost", "EUR", NULL), FP_ERR_NOT_FOUND);
    ASSERT_OK(fp_pay_customer_create(f->pay, "max", "USD", NULL)); /* a second currency */
    ASSERT_STATUS(fp_pay_topup(f->pay, "max", "GBP", 10, NULL, NULL), FP_ERR_NOT_FOUND);
    ASSERT_STATUS(fp_pay_topup(f->pay, "ghost", "EUR", 10, NULL, NULL), FP_ERR_NOT_FOUND);
    /* Large amounts stay exact. */
    for (int i = 0; i < 9; i++)
        ASSERT_OK(fp_pay_topup(f->pay, "max", "USD", FP_PAY_MAX_AMOUNT, NULL, NULL));
    assert_int_equal(wallet_balance(f, "max", "USD"), 9 * FP_PAY_MAX_AMOUNT);
    fp_pay_account a;
    ASSERT_STATUS(fp_pay_account_get(f->pay, 999999, &a), FP_ERR_NOT_FOUND);
    ASSERT_STATUS(fp_pay_get(f->pay, 999999, &p), FP_ERR_NOT_FOUND);
    assert_ledger_ok(f);
}

/* ------------------------------------------------------------------------------------------ */
/* A long random run, then a tampered posting                                                  */
/* ------------------------------------------------------------------------------------------ */

#define R_USERS 6
#define R_MERCHANTS 2
#define R_OPS 400

static uint32_t rng_next(uint64_t *s) {
    /* splitmix64: fixed seed, same sequence everywhere */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

typedef struct model {
    int64_t wallet[R_USERS][2]; /* [user][EUR, USD] */
    int64_t merchant[R_MERCHANTS][2];
    int64_t funding[2];
    int64_t pending[64], n_pending;
    int64_t captured_ids[512];
    int n_captured;
} model;

static const char *const CUR[2] = {"EUR", "USD"};

static int cur_index(const char *c) { return strcmp(c, "USD") == 0; }
static int user_index(const char *u) { return u[1] - '0'; }
static int merchant_index(const char *m) { return m[1] - '0'; }

/* Folds a payment's new state into the model (held money is in neither wallet nor merchant). */
static void model_settle_pending(fx *f, model *m) {
    for (int64_t i = 0; i < m->n_pending;) {
        fp_payment p;
        ASSERT_OK(fp_pay_get(f->pay, m->pending[i], &p));
        if (p.state == FP_PAY_AUTHORISED) {
            i++;
            continue;
        }
        int c = cur_index(p.currency);
        if (p.state == FP_PAY_CAPTURED) {
            m->merchant[merchant_index(p.merchant_id)][c] += p.amount;
            if (m->n_captured < 512) m->captured_ids[m->n_captured++] = p.id;
        } else {
            assert_int_equal(p.state, FP_PAY_DECLINED);
            m->wallet[user_index(p.user_id)][c] += p.amount;
        }
        m->pending[i] = m->pending[--m->n_pending];
    }
}

static void test_ledger_random_and_tamper(void **state) {
    fx *f = *state;
    model m;
    memset(&m, 0, sizeof m);
    for (int i = 0; i < R_MERCHANTS; i++) {
        char id[8];
        snprintf(id, sizeof id, "m%d", i);
        ASSERT_OK(fp_pay_merchant_create(f->pay, id, "shop"));
        ASSERT_OK(fp_pay_terminal_create(f->pay, id, "till-1", "till"));
    }
    for (int i = 0; i < R_USERS; i++) {
        char id[8];
        snprintf(id, sizeof id, "u%d", i);
        ASSERT_OK(fp_store_user_add(f->store, id, ""));
        ASSERT_OK(fp_pay_customer_create(f->pay, id, "EUR", NULL));
        ASSERT_OK(fp_pay_customer_create(f->pay, id, "USD", NULL));
        ASSERT_OK(fp_pay_customer_set_pin(f->pay, id, "1234"));
    }
    /* Tight limits for one customer, so limit declines happen too. */
    ASSERT_OK(fp_pay_customer_set_limits(f->pay, "u0", "EUR", 6000, 15000));
    uint64_t seed = 20240611;
    int replays = 0, conflicts = 0, over_refunds = 0, stepups = 0;
    int locked[R_USERS] = {0};
    for (int op = 0; op < R_OPS; op++) {
        if (op % 25 == 0) /* the operator's round: unlock everyone locked */
            for (int i = 0; i < R_USERS; i++)
                if (locked[i]) {
                    char id[8];
                    snprintf(id, sizeof id, "u%d", i);
                    ASSERT_OK(fp_pay_customer_unlock(f->pay, id));
                    locked[i] = 0;
                }
        uint32_t kind = rng_next(&seed) % 10;
        char user[8], merchant[8], key[32];
        int u = (int)(rng_next(&seed) % R_USERS), mi = (int)(rng_next(&seed) % R_MERCHANTS);
        int c = (int)(rng_next(&seed) % 2);
        snprintf(user, sizeof user, "u%d", u);
        snprintf(merchant, sizeof merchant, "m%d", mi);
        if (kind <= 1) { /* top-up */
            int64_t amount = 1 + rng_next(&seed) % 20000;
            ASSERT_OK(fp_pay_topup(f->pay, user, CUR[c], amount, NULL, NULL));
            m.wallet[u][c] += amount;
            m.funding[c] -= amount;
        } else if (kind <= 5) { /* charge, sometimes replayed */
            int64_t amount = 1 + rng_next(&seed) % 9000;
            snprintf(key, sizeof key, "op%d", op);
            fp_identify_result id = good_match(user);
            if (rng_next(&seed) % 5 == 0) id.margin = 0.01f;
            fp_pay_charge_req r = charge_req(merchant, key, amount, &id);
            r.currency = CUR[c];
            fp_payment p;
            ASSERT_OK(fp_pay_charge(f->pay, &r, &p));
            if (p.state == FP_PAY_CAPTURED) {
                m.wallet[u][c] -= amount;
                m.merchant[mi][c] += amount;
                if (m.n_captured < 512) m.captured_ids[m.n_captured++] = p.id;
            } else if (p.state == FP_PAY_AUTHORISED) {
                m.wallet[u][c] -= amount;
                if (m.n_pending < 64)
                    m.pending[m.n_pending++] = p.id;
                else {
                    fp_payment out;
                    ASSERT_OK(fp_pay_cancel(f->pay, merchant, p.id, &out));
                    m.wallet[u][c] += amount;
                }
            }
            if (rng_next(&seed) % 4 == 0) { /* the terminal retries */
                fp_payment again;
                ASSERT_OK(fp_pay_charge(f->pay, &r, &again));
                assert_true(again.replayed);
                assert_int_equal(again.id, p.id);
                replays++;
                r.amount = amount + 1;
                ASSERT_STATUS(fp_pay_charge(f->pay, &r, &again), FP_ERR_PAY_CONFLICT);
                conflicts++;
            }
        } else if (kind <= 7 && m.n_pending > 0) { /* step-up: mostly the right PIN */
            int64_t pid = m.pending[rng_next(&seed) % (uint32_t)m.n_pending];
            fp_payment p;
            ASSERT_OK(fp_pay_get(f->pay, pid, &p));
            fp_pay_stepup_result r;
            if (rng_next(&seed) % 8 == 0) {
                /* Someone guessing: wrong PINs until the lock (or until the payment is over). */
                do {
                    ASSERT_OK(fp_pay_stepup_verify(f->pay, p.merchant_id, pid, "0000", &r));
                    stepups++;
                } while (!r.locked && r.payment.state == FP_PAY_AUTHORISED);
            } else {
                const char *pin = rng_next(&seed) % 5 < 3 ? "1234" : "9999";
                ASSERT_OK(fp_pay_stepup_verify(f->pay, p.merchant_id, pid, pin, &r));
                stepups++;
            }
            if (r.locked) {
                /* Locked customers are refused until an operator unlocks; let a few charges
                 * meet the lock first. */
                locked[user_index(p.user_id)] = 1;
            }
            model_settle_pending(f, &m);
        } else if (kind == 8 && m.n_captured > 0) { /* refund part of a captured payment */
            int64_t pid = m.captured_ids[rng_next(&seed) % (uint32_t)m.n_captured];
            fp_payment p;
            ASSERT_OK(fp_pay_get(f->pay, pid, &p));
            int64_t left = p.captured - p.refunded;
            int64_t amount = 1 + (int64_t)(rng_next(&seed) % (uint32_t)(p.captured));
            snprintf(key, sizeof key, "rf%d", op);
            fp_pay_refund_result rr;
            fp_status st = fp_pay_refund(f->pay, p.merchant_id, key, pid, amount, &rr);
            if (amount > left) {
                assert_int_equal(st, FP_ERR_PAY_STATE);
                over_refunds++;
            } else {
                ASSERT_OK(st);
                int pc = cur_index(p.currency);
                m.wallet[user_index(p.user_id)][pc] += amount;
                m.merchant[merchant_index(p.merchant_id)][pc] -= amount;
            }
        } else { /* time passes (now and then past the step-up lifetime); stale step-ups expire */
            atomic_fetch_add(&f->now, rng_next(&seed) % 6 ? (int64_t)(rng_next(&seed) % 60000)
                                                          : INT64_C(600000));
            if (rng_next(&seed) % 3 == 0) {
                ASSERT_OK(fp_pay_expire(f->pay, NULL));
                model_settle_pending(f, &m);
            }
        }
    }
    /* The run went through every path (the seed is fixed, so these counts are too). */
    assert_true(replays > 10);
    assert_int_equal(conflicts, replays);
    assert_true(stepups > 10);
    assert_true(over_refunds > 0);
    sqlite3 *db = raw_open(f->db);
    assert_true(raw_int(db, "SELECT count(*) FROM audit WHERE event = 'pay_locked'") > 0);
    const char *declines[] = {"insufficient_funds", "limit_per_payment", "limit_daily", "locked",
                              "stepup_expired"};
    for (size_t i = 0; i < sizeof declines / sizeof declines[0]; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM pay_payments WHERE decline = '%s'",
                 declines[i]);
        if (raw_int(db, sql) == 0) fail_msg("the random run never declined with %s", declines[i]);
    }
    assert_true(
        raw_int(db, "SELECT count(*) FROM pay_payments WHERE state = 'partially_refunded'") > 0);
    assert_true(raw_int(db, "SELECT count(*) FROM pay_txns WHERE kind = 'capture'") > 0);

    /* Every balance equals the model, to the cent. */
    int64_t held[2] = {0, 0};
    for (int64_t i = 0; i < m.n_pending; i++) {
        fp_payment p;
        ASSERT_OK(fp_pay_get(f->pay, m.pending[i], &p));
        assert_int_equal(p.state, FP_PAY_AUTHORISED);
        held[cur_index(p.currency)] += p.amount;
    }
    for (int u = 0; u < R_USERS; u++)
        for (int c = 0; c < 2; c++) {
            char user[8];
            snprintf(user, sizeof user, "u%d", u);
            assert_int_equal(wallet_balance(f, user, CUR[c]), m.wallet[u][c]);
        }
    for (int mi = 0; mi < R_MERCHANTS; mi++)
        for (int c = 0; c < 2; c++) {
            char merchant[8];
            snprintf(merchant, sizeof merchant, "m%d", mi);
            assert_int_equal(merchant_balance(f, merchant, CUR[c]), m.merchant[mi][c]);
        }
    for (int c = 0; c < 2; c++) {
        char sql[128];
        snprintf(sql, sizeof sql,
                 "SELECT balance FROM pay_accounts WHERE kind = 'funding' AND currency = '%s'",
                 CUR[c]);
        assert_int_equal(raw_int(db, sql), m.funding[c]);
        snprintf(sql, sizeof sql,
                 "SELECT coalesce((SELECT balance FROM pay_accounts WHERE kind = 'hold' AND "
                 "currency = '%s'), 0)",
                 CUR[c]);
        assert_int_equal(raw_int(db, sql), held[c]);
    }
    assert_ledger_ok(f);
    assert_audit_ok(f);

    /* One posting altered by one cent behind the ledger's back: the self-check fails. */
    raw_exec(db, "DROP TRIGGER pay_postings_no_update");
    raw_exec(db, "CREATE TEMP TABLE victim AS SELECT min(id) AS id FROM pay_postings "
                 "WHERE id >= 7 AND amount > 0");
    raw_exec(db, "UPDATE pay_postings SET amount = amount + 1 WHERE id = (SELECT id FROM victim)");
    fp_ledger_report r;
    ASSERT_OK(fp_ledger_check(f->store, &r));
    assert_false(r.ok);
    assert_true(r.problems >= 2); /* currency sum and transaction sum, at least */
    assert_true(r.postings > 100);
    assert_non_null(strstr(r.message, "do not sum to zero"));
    raw_exec(db, "UPDATE pay_postings SET amount = amount - 1 WHERE id = (SELECT id FROM victim)");
    assert_ledger_ok(f);
    /* A statement line (balance_after) altered: the running-balance walk finds it. */
    raw_exec(db, "UPDATE pay_postings SET balance_after = balance_after + 1 "
                 "WHERE id = (SELECT id FROM victim)");
    ASSERT_OK(fp_ledger_check(f->store, &r));
    assert_false(r.ok);
    assert_non_null(strstr(r.message, "balance_after differs from the running sum"));
    raw_exec(db, "UPDATE pay_postings SET balance_after = balance_after - 1 "
                 "WHERE id = (SELECT id FROM victim)");
    assert_ledger_ok(f);
    /* A balance edited without a posting: only the balance-vs-postings check can see it. */
    raw_exec(db, "UPDATE pay_accounts SET balance = balance + 1 WHERE kind = 'customer' AND "
                 "user_id = 'u3' AND currency = 'EUR'");
    sqlite3_close(db);
    ASSERT_OK(fp_ledger_check(f->store, &r));
    assert_false(r.ok);
    assert_int_equal(r.problems, 1);
    assert_non_null(strstr(r.message, "balance differs from the sum of its postings"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema_and_open, fx_setup, fx_teardown),
        cmocka_unit_test(test_policy_rules),
        cmocka_unit_test_setup_teardown(test_topup_and_charge_exact, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_charges, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_refunds, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_limits, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_stepup_triggers, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_stepup_pin_and_phone, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_lock_after_failures, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_expiry_and_cancel, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_topup_idempotent, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_api_keys, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_api_key_scopes, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_schema_3_upgrade, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_frames_replay_guard, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_evidence_chain_edit, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_evidence_chain_delete, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_customer_delete, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_invalid_input, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_ledger_random_and_tamper, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
