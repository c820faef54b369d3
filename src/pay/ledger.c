/*
 * ledger.c - the double-entry ledger: customers and their wallets, merchant and system accounts,
 * top-ups, charges (authorise + capture), step-up verification, cancellation and expiry,
 * refunds, GDPR deletion, statements, and the ledger self-check.
 *
 * How money moves: every change is one SQL transaction (fp_store_tx: BEGIN IMMEDIATE, so two
 * writers, in this process or another, never interleave). Inside it a journal row (pay_txns)
 * gets one posting per account touched, with signed amounts summing to zero, and each account's
 * balance is updated from the value read in the same transaction. The balance check (never below
 * zero, except the funding account) is made in C before the UPDATE, and the CHECK constraint on
 * pay_accounts would abort the transaction should that check ever be wrong. Integer minor units
 * only; every sum that could overflow is checked.
 *
 * Why the step-up holds the money: a payment waiting for the PIN must not be spent twice while the
 * customer types it, so authorisation moves it to the currency's "hold" account; the PIN then
 * captures it to the merchant, or a failure / cancellation / expiry voids it back.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/core.h"
#include "pay/pay.h"

#define DAY_MS INT64_C(86400000)
#define MAX_SECRET 64 /* longer step-up secrets are wrong without being hashed */

static const char *const KIND_NAMES[] = {"customer", "merchant", "funding", "hold"};
static const char *const TXN_NAMES[] = {"topup", "charge", "authorise", "capture",
                                        "void",  "refund", "payout"};

static int parse_name(const char *const *names, int n, const char *text) {
    for (int i = 0; i < n; i++)
        if (text && strcmp(names[i], text) == 0) return i;
    return -1;
}

static fp_pay_state state_value(const char *text) {
    static const char *const names[] = {"authorised", "captured", "refunded", "partially_refunded",
                                        "declined"};
    int v = parse_name(names, 5, text);
    return v < 0 ? FP_PAY_DECLINED : (fp_pay_state)v; /* the CHECK constraint allows nothing else */
}

static fp_pay_verdict verdict_value(const char *text) {
    static const char *const names[] = {"accept", "stepup", "refuse"};
    int v = parse_name(names, 3, text);
    return v < 0 ? FP_PAY_REFUSE : (fp_pay_verdict)v;
}

static fp_pay_stepup stepup_value(const char *text) {
    static const char *const names[] = {"none", "pin", "phone4"};
    int v = parse_name(names, 3, text);
    return v < 0 ? FP_STEPUP_NONE : (fp_pay_stepup)v;
}

/* Runs one single-row statement; FP_ERR_NOT_FOUND (with msg) when it returns no row. The caller
 * reads the row and finalizes. */
static fp_status step_row(fp_store *s, sqlite3_stmt *st, const char *what, const char *missing) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) return FP_OK;
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) return fp_fail(FP_ERR_NOT_FOUND, "%s", missing);
    return fp_store_sqlfail(s, rc, what);
}

/* ------------------------------------------------------------------------------------------ */
/* Accounts                                                                                    */
/* ------------------------------------------------------------------------------------------ */

#define ACCT_SELECT                                                                                \
    "SELECT id, kind, coalesce(user_id, merchant_id, ''), currency, balance, "                     \
    "coalesce(per_payment_limit, 0), coalesce(daily_limit, 0), closed, created_ms FROM "           \
    "pay_accounts "

static void acct_from_row(sqlite3_stmt *st, fp_pay_account *a) {
    memset(a, 0, sizeof *a);
    a->id = sqlite3_column_int64(st, 0);
    int k = parse_name(KIND_NAMES, 4, (const char *)sqlite3_column_text(st, 1));
    a->kind = k < 0 ? FP_ACCOUNT_FUNDING : (fp_pay_account_kind)k;
    fp_pay_col_text(a->owner, sizeof a->owner, st, 2);
    fp_pay_col_text(a->currency, sizeof a->currency, st, 3);
    a->balance = sqlite3_column_int64(st, 4);
    a->per_payment_limit = sqlite3_column_int64(st, 5);
    a->daily_limit = sqlite3_column_int64(st, 6);
    a->closed = sqlite3_column_int(st, 7);
    a->created_ms = sqlite3_column_int64(st, 8);
}

static fp_status acct_load(fp_store *s, int64_t id, fp_pay_account *a) {
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s, ACCT_SELECT "WHERE id = ?", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int64(st, 1, id);
    char missing[64];
    snprintf(missing, sizeof missing, "account %lld not found", (long long)id);
    res = step_row(s, st, "reading an account", missing);
    if (res != FP_OK) return res;
    acct_from_row(st, a);
    sqlite3_finalize(st);
    return FP_OK;
}

/* The account of (kind, owner, currency); owner "" for system accounts. */
static fp_status acct_find(fp_store *s, fp_pay_account_kind kind, const char *owner,
                           const char *currency, fp_pay_account *a) {
    sqlite3_stmt *st = NULL;
    /* The same expression as the unique index, so the lookup uses it. */
    fp_status res = fp_store_prepare(
        s, ACCT_SELECT "WHERE kind = ? AND coalesce(user_id, merchant_id, '') = ? AND currency = ?",
        &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, KIND_NAMES[kind], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, currency, -1, SQLITE_STATIC);
    char missing[160];
    snprintf(missing, sizeof missing, "no %s account%s%s in %s", KIND_NAMES[kind],
             *owner ? " of " : "", owner, currency);
    res = step_row(s, st, "reading an account", missing);
    if (res != FP_OK) return res;
    acct_from_row(st, a);
    sqlite3_finalize(st);
    return FP_OK;
}

/* Finds or opens a merchant or system account (they open on first use). */
static fp_status acct_ensure(fp_store *s, fp_pay_account_kind kind, const char *owner,
                             const char *currency, int64_t now, fp_pay_account *a) {
    fp_status res = acct_find(s, kind, owner, currency, a);
    if (res != FP_ERR_NOT_FOUND) return res;
    sqlite3_stmt *st = NULL;
    res = fp_store_prepare(s,
                           "INSERT INTO pay_accounts(kind, merchant_id, currency, created_ms) "
                           "VALUES (?, ?, ?, ?)",
                           &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, KIND_NAMES[kind], -1, SQLITE_STATIC);
    if (kind == FP_ACCOUNT_MERCHANT) sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, currency, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now);
    res = fp_pay_step_done(s, st, "opening an account");
    if (res != FP_OK) return res;
    return acct_find(s, kind, owner, currency, a);
}

/* ------------------------------------------------------------------------------------------ */
/* Journal                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* One posting: re-reads the balance inside the transaction, refuses to take a non-funding account
 * below zero or any balance past the int64 range, then writes both. */
static fp_status post(fp_store *s, int64_t txn_id, int64_t account_id, int64_t delta, int64_t now) {
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s, "SELECT balance, kind FROM pay_accounts WHERE id = ?", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int64(st, 1, account_id);
    res = step_row(s, st, "reading a balance", "posting to an unknown account");
    if (res != FP_OK) return res;
    int64_t balance = sqlite3_column_int64(st, 0);
    int funding =
        parse_name(KIND_NAMES, 4, (const char *)sqlite3_column_text(st, 1)) == FP_ACCOUNT_FUNDING;
    sqlite3_finalize(st);
    int64_t after;
    if (__builtin_add_overflow(balance, delta, &after))
        return fp_fail(FP_ERR_PAY_STATE, "account %lld: balance would overflow",
                       (long long)account_id);
    if (after < 0 && !funding)
        return fp_fail(FP_ERR_PAY_STATE, "account %lld: insufficient funds (%lld < %lld)",
                       (long long)account_id, (long long)balance, (long long)-delta);
    res = fp_store_prepare(s, "UPDATE pay_accounts SET balance = ? WHERE id = ?", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int64(st, 2, account_id);
    res = fp_pay_step_done(s, st, "updating a balance");
    if (res != FP_OK) return res;
    res = fp_store_prepare(s,
                           "INSERT INTO pay_postings(txn_id, account_id, amount, balance_after, "
                           "created_ms) VALUES (?, ?, ?, ?, ?)",
                           &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int64(st, 1, txn_id);
    sqlite3_bind_int64(st, 2, account_id);
    sqlite3_bind_int64(st, 3, delta);
    sqlite3_bind_int64(st, 4, after);
    sqlite3_bind_int64(st, 5, now);
    return fp_pay_step_done(s, st, "writing a posting");
}

/* A journal entry moving `amount` from one account to another (debit first, so a short balance
 * fails before anything is credited). */
static fp_status transfer(fp_store *s, fp_pay_txn_kind kind, int64_t from, int64_t to,
                          const char *currency, int64_t amount, int64_t payment_id,
                          int64_t refund_id, const char *reference, int64_t now, int64_t *txn_id) {
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s,
                                     "INSERT INTO pay_txns(kind, payment_id, refund_id, currency, "
                                     "amount, reference, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                     &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, TXN_NAMES[kind], -1, SQLITE_STATIC);
    if (payment_id > 0) sqlite3_bind_int64(st, 2, payment_id);
    if (refund_id > 0) sqlite3_bind_int64(st, 3, refund_id);
    sqlite3_bind_text(st, 4, currency, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, amount);
    sqlite3_bind_text(st, 6, reference ? reference : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, now);
    res = fp_pay_step_done(s, st, "writing a transaction");
    if (res != FP_OK) return res;
    int64_t id = sqlite3_last_insert_rowid(fp_store_db(s));
    res = post(s, id, from, -amount, now);
    if (res == FP_OK) res = post(s, id, to, amount, now);
    if (res == FP_OK && txn_id) *txn_id = id;
    return res;
}

/* ------------------------------------------------------------------------------------------ */
/* Customers                                                                                   */
/* ------------------------------------------------------------------------------------------ */

typedef struct cust_row {
    int exists, deleted, face_locked, failures;
    int has_pin, has_phone;
    char pin_hash[crypto_pwhash_argon2id_STRBYTES];
    uint8_t phone_hash[32];
    int64_t created_ms;
} cust_row;

static fp_status cust_load(fp_store *s, const char *user_id, cust_row *c) {
    memset(c, 0, sizeof *c);
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s,
                                     "SELECT pin_hash, phone_hash, stepup_failures, face_locked, "
                                     "deleted, created_ms FROM pay_customers WHERE user_id = ?",
                                     &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        c->exists = 1;
        if (sqlite3_column_type(st, 0) != SQLITE_NULL &&
            (size_t)sqlite3_column_bytes(st, 0) < sizeof c->pin_hash) {
            c->has_pin = 1;
            fp_pay_col_text(c->pin_hash, sizeof c->pin_hash, st, 0);
        }
        if (sqlite3_column_bytes(st, 1) == 32) {
            c->has_phone = 1;
            memcpy(c->phone_hash, sqlite3_column_blob(st, 1), 32);
        }
        c->failures = sqlite3_column_int(st, 2);
        c->face_locked = sqlite3_column_int(st, 3);
        c->deleted = sqlite3_column_int(st, 4);
        c->created_ms = sqlite3_column_int64(st, 5);
    } else if (rc != SQLITE_DONE) {
        res = fp_store_sqlfail(s, rc, "reading a customer");
    }
    sqlite3_finalize(st);
    return res;
}

/* The customer must exist and not be deleted. */
static fp_status cust_require(fp_store *s, const char *user_id, cust_row *c) {
    fp_status res = cust_load(s, user_id, c);
    if (res != FP_OK) return res;
    if (!c->exists) return fp_fail(FP_ERR_NOT_FOUND, "user %s is not a payment customer", user_id);
    if (c->deleted) return fp_fail(FP_ERR_PAY_STATE, "payment customer %s was deleted", user_id);
    return FP_OK;
}

/* Keyed hash of the phone digits, salted with the user id so equal digits of two customers do not
 * give equal stored values. */
static void phone_hash(const fp_pay *pay, const char *user_id, const char *digits,
                       uint8_t out[32]) {
    static const char domain[] = "facepay phone4 v1";
    crypto_generichash_state h;
    crypto_generichash_init(&h, fp_pay_phone_hash_key(pay), 32, 32);
    crypto_generichash_update(&h, (const unsigned char *)domain, sizeof domain);
    crypto_generichash_update(&h, (const unsigned char *)user_id, strlen(user_id) + 1);
    crypto_generichash_update(&h, (const unsigned char *)digits, strlen(digits));
    crypto_generichash_final(&h, out, 32);
}

static int all_digits(const char *s, size_t min, size_t max) {
    size_t n = strnlen(s, max + 1);
    if (n < min || n > max) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

typedef struct cust_ctx {
    fp_pay *pay;
    const char *user_id, *currency;
    int64_t a, b; /* limits */
    const char *pin_hash;
    const uint8_t *phone;
    int64_t now;
    int64_t account_id;
    fp_pay_customer *out;
} cust_ctx;

static fp_status cust_create_tx(fp_store *s, void *p) {
    cust_ctx *c = p;
    c->account_id = 0;
    fp_user u;
    fp_status res = fp_store_user_get(s, c->user_id, &u);
    if (res != FP_OK) return res;
    if (u.status != FP_USER_ACTIVE)
        return fp_fail(FP_ERR_INVALID_ARG, "user %s is not active", c->user_id);
    cust_row cr;
    res = cust_load(s, c->user_id, &cr);
    if (res != FP_OK) return res;
    if (cr.deleted)
        return fp_fail(FP_ERR_INVALID_ARG, "payment customer %s was deleted; ids are never reused",
                       c->user_id);
    sqlite3_stmt *st = NULL;
    if (!cr.exists) {
        res = fp_store_prepare(s,
                               "INSERT INTO pay_customers(user_id, created_ms, updated_ms) "
                               "VALUES (?1, ?2, ?2)",
                               &st);
        if (res != FP_OK) return res;
        sqlite3_bind_text(st, 1, c->user_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, c->now);
        res = fp_pay_step_done(s, st, "adding a payment customer");
        if (res != FP_OK) return res;
    }
    fp_pay_account a;
    res = acct_find(s, FP_ACCOUNT_CUSTOMER, c->user_id, c->currency, &a);
    if (res == FP_OK)
        return fp_fail(FP_ERR_INVALID_ARG, "user %s already has a %s wallet", c->user_id,
                       c->currency);
    if (res != FP_ERR_NOT_FOUND) return res;
    res = fp_store_prepare(s,
                           "INSERT INTO pay_accounts(kind, user_id, currency, per_payment_limit, "
                           "daily_limit, created_ms) VALUES ('customer', ?, ?, ?, ?, ?)",
                           &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, c->user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->currency, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, c->a);
    sqlite3_bind_int64(st, 4, c->b);
    sqlite3_bind_int64(st, 5, c->now);
    res = fp_pay_step_done(s, st, "opening a wallet");
    if (res == FP_OK) c->account_id = sqlite3_last_insert_rowid(fp_store_db(s));
    return res;
}

fp_status fp_pay_customer_create(fp_pay *pay, const char *user_id, const char *currency,
                                 int64_t *account_id) {
    if (account_id) *account_id = 0;
    if (!pay) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_customer_create: NULL handle");
    fp_status st = fp_store_check_id("fp_pay_customer_create: user", user_id, 0);
    if (st == FP_OK) st = fp_pay_check_currency("fp_pay_customer_create", currency);
    if (st != FP_OK) return st;
    cust_ctx c = {pay,
                  user_id,
                  currency,
                  pay->opt.default_per_payment_limit,
                  pay->opt.default_daily_limit,
                  NULL,
                  NULL,
                  fp_pay_now(pay),
                  0,
                  NULL};
    st = fp_store_tx(pay->store, cust_create_tx, &c);
    if (st == FP_OK && account_id) *account_id = c.account_id;
    return st;
}

static fp_status cust_secret_tx(fp_store *s, void *p) {
    cust_ctx *c = p;
    cust_row cr;
    fp_status res = cust_require(s, c->user_id, &cr);
    if (res != FP_OK) return res;
    sqlite3_stmt *st = NULL;
    res = fp_store_prepare(s,
                           c->pin_hash ? "UPDATE pay_customers SET pin_hash = ?, updated_ms = ? "
                                         "WHERE user_id = ?"
                                       : "UPDATE pay_customers SET phone_hash = ?, updated_ms = ? "
                                         "WHERE user_id = ?",
                           &st);
    if (res != FP_OK) return res;
    if (c->pin_hash)
        sqlite3_bind_text(st, 1, c->pin_hash, -1, SQLITE_STATIC);
    else
        sqlite3_bind_blob(st, 1, c->phone, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, c->now);
    sqlite3_bind_text(st, 3, c->user_id, -1, SQLITE_STATIC);
    return fp_pay_step_done(s, st, "storing a step-up secret");
}

fp_status fp_pay_customer_set_pin(fp_pay *pay, const char *user_id, const char *pin) {
    if (!pay || !pin) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_customer_set_pin: NULL argument");
    fp_status st = fp_store_check_id("fp_pay_customer_set_pin: user", user_id, 0);
    if (st != FP_OK) return st;
    if (!all_digits(pin, FP_PAY_PIN_MIN, FP_PAY_PIN_MAX))
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_customer_set_pin: a PIN is %d..%d digits",
                       FP_PAY_PIN_MIN, FP_PAY_PIN_MAX);
    /* argon2id before the transaction: it is slow on purpose and must not hold the write lock. */
    char hash[crypto_pwhash_argon2id_STRBYTES];
    if (crypto_pwhash_argon2id_str(hash, pin, strlen(pin), pay->opt.pin_opslimit,
                                   pay->opt.pin_memlimit) != 0)
        return fp_fail(FP_ERR_NOMEM, "fp_pay_customer_set_pin: argon2id ran out of memory");
    cust_ctx c = {pay, user_id, NULL, 0, 0, hash, NULL, fp_pay_now(pay), 0, NULL};
    st = fp_store_tx(pay->store, cust_secret_tx, &c);
    sodium_memzero(hash, sizeof hash);
    return st;
}

fp_status fp_pay_customer_set_phone(fp_pay *pay, const char *user_id, const char *last4) {
    if (!pay || !last4)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_customer_set_phone: NULL argument");
    fp_status st = fp_store_check_id("fp_pay_customer_set_phone: user", user_id, 0);
    if (st != FP_OK) return st;
    if (!all_digits(last4, 4, 4))
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_customer_set_phone: exactly 4 digits expected");
    uint8_t h[32];
    phone_hash(pay, user_id, last4, h);
    cust_ctx c = {pay, user_id, NULL, 0, 0, NULL, h, fp_pay_now(pay), 0, NULL};
    return fp_store_tx(pay->store, cust_secret_tx, &c);
}

static fp_status cust_limits_tx(fp_store *s, void *p) {
    cust_ctx *c = p;
    cust_row cr;
    fp_status res = cust_require(s, c->user_id, &cr);
    if (res != FP_OK) return res;
    fp_pay_account a;
    res = acct_find(s, FP_ACCOUNT_CUSTOMER, c->user_id, c->currency, &a);
    if (res != FP_OK) return res;
    sqlite3_stmt *st = NULL;
    res = fp_store_prepare(
        s, "UPDATE pay_accounts SET per_payment_limit = ?, daily_limit = ? WHERE id = ?", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int64(st, 1, c->a);
    sqlite3_bind_int64(st, 2, c->b);
    sqlite3_bind_int64(st, 3, a.id);
    return fp_pay_step_done(s, st, "setting limits");
}

fp_status fp_pay_customer_set_limits(fp_pay *pay, const char *user_id, const char *currency,
                                     int64_t per_payment, int64_t daily) {
    if (!pay) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_customer_set_limits: NULL handle");
    fp_status st = fp_store_check_id("fp_pay_customer_set_limits: user", user_id, 0);
    if (st == FP_OK) st = fp_pay_check_currency("fp_pay_customer_set_limits", currency);
    if (st == FP_OK)
        st = fp_pay_check_amount("fp_pay_customer_set_limits: per payment", per_payment);
    if (st == FP_OK) st = fp_pay_check_amount("fp_pay_customer_set_limits: daily", daily);
    if (st != FP_OK) return st;
    cust_ctx c = {pay, user_id, currency, per_payment, daily, NULL, NULL, 0, 0, NULL};
    return fp_store_tx(pay->store, cust_limits_tx, &c);
}

static fp_status cust_get_tx(fp_store *s, void *p) {
    cust_ctx *c = p;
    cust_row cr;
    fp_status res = cust_load(s, c->user_id, &cr);
    if (res != FP_OK) return res;
    if (!cr.exists)
        return fp_fail(FP_ERR_NOT_FOUND, "user %s is not a payment customer", c->user_id);
    fp_pay_customer *o = c->out;
    memset(o, 0, sizeof *o);
    snprintf(o->user_id, sizeof o->user_id, "%s", c->user_id);
    o->has_pin = cr.has_pin;
    o->has_phone = cr.has_phone;
    o->stepup_failures = cr.failures;
    o->face_locked = cr.face_locked;
    o->deleted = cr.deleted;
    o->created_ms = cr.created_ms;
    sodium_memzero(&cr, sizeof cr);
    return FP_OK;
}

fp_status fp_pay_customer_get(fp_pay *pay, const char *user_id, fp_pay_customer *out) {
    if (!pay || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_customer_get: NULL argument");
    memset(out, 0, sizeof *out);
    fp_status st = fp_store_check_id("fp_pay_customer_get: user", user_id, 0);
    if (st != FP_OK) return st;
    cust_ctx c = {pay, user_id, NULL, 0, 0, NULL, NULL, 0, 0, out};
    return fp_store_read(pay->store, cust_get_tx, &c);
}

static fp_status cust_unlock_tx(fp_store *s, void *p) {
    cust_ctx *c = p;
    cust_row cr;
    fp_status res = cust_require(s, c->user_id, &cr);
    if (res != FP_OK) return res;
    sqlite3_stmt *st = NULL;
    res = fp_store_prepare(s,
                           "UPDATE pay_customers SET face_locked = 0, stepup_failures = 0, "
                           "updated_ms = ? WHERE user_id = ?",
                           &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int64(st, 1, c->now);
    sqlite3_bind_text(st, 2, c->user_id, -1, SQLITE_STATIC);
    res = fp_pay_step_done(s, st, "unlocking a customer");
    if (res == FP_OK && cr.face_locked)
        res = fp_store_audit_insert(s, c->user_id, "pay_unlocked", "");
    return res;
}

fp_status fp_pay_customer_unlock(fp_pay *pay, const char *user_id) {
    if (!pay) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_customer_unlock: NULL handle");
    fp_status st = fp_store_check_id("fp_pay_customer_unlock: user", user_id, 0);
    if (st != FP_OK) return st;
    cust_ctx c = {pay, user_id, NULL, 0, 0, NULL, NULL, fp_pay_now(pay), 0, NULL};
    return fp_store_tx(pay->store, cust_unlock_tx, &c);
}

/* ------------------------------------------------------------------------------------------ */
/* Payments                                                                                    */
/* ------------------------------------------------------------------------------------------ */

#define PAY_SELECT                                                                                 \
    "SELECT id, merchant_id, terminal_id, user_id, coalesce(customer_account, 0), currency, "      \
    "amount, captured, refunded, state, verdict, reasons, stepup, decline, evidence_seq, "         \
    "created_ms, updated_ms, expires_ms FROM pay_payments "

static void payment_from_row(sqlite3_stmt *st, fp_payment *p) {
    memset(p, 0, sizeof *p);
    p->id = sqlite3_column_int64(st, 0);
    fp_pay_col_text(p->merchant_id, sizeof p->merchant_id, st, 1);
    fp_pay_col_text(p->terminal_id, sizeof p->terminal_id, st, 2);
    fp_pay_col_text(p->user_id, sizeof p->user_id, st, 3);
    p->customer_account = sqlite3_column_int64(st, 4);
    fp_pay_col_text(p->currency, sizeof p->currency, st, 5);
    p->amount = sqlite3_column_int64(st, 6);
    p->captured = sqlite3_column_int64(st, 7);
    p->refunded = sqlite3_column_int64(st, 8);
    p->state = state_value((const char *)sqlite3_column_text(st, 9));
    p->verdict = verdict_value((const char *)sqlite3_column_text(st, 10));
    p->reasons = (uint32_t)sqlite3_column_int64(st, 11);
    p->stepup = stepup_value((const char *)sqlite3_column_text(st, 12));
    fp_pay_col_text(p->decline, sizeof p->decline, st, 13);
    p->evidence_seq = sqlite3_column_int64(st, 14);
    p->created_ms = sqlite3_column_int64(st, 15);
    p->updated_ms = sqlite3_column_int64(st, 16);
    p->expires_ms = sqlite3_column_int64(st, 17);
    p->stepup_required = p->state == FP_PAY_AUTHORISED;
}

static fp_status payment_load(fp_store *s, int64_t id, fp_payment *p) {
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s, PAY_SELECT "WHERE id = ?", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int64(st, 1, id);
    char missing[64];
    snprintf(missing, sizeof missing, "payment %lld not found", (long long)id);
    res = step_row(s, st, "reading a payment", missing);
    if (res != FP_OK) return res;
    payment_from_row(st, p);
    sqlite3_finalize(st);
    return FP_OK;
}

/* A payment of this merchant: another merchant's payment is "not found", not "forbidden", so ids
 * of other merchants cannot be probed. */
static fp_status payment_of(fp_store *s, const char *merchant_id, int64_t id, fp_payment *p) {
    fp_status res = payment_load(s, id, p);
    if (res == FP_OK && strcmp(p->merchant_id, merchant_id) != 0)
        res = fp_fail(FP_ERR_NOT_FOUND, "payment %lld not found", (long long)id);
    return res;
}

static fp_status payment_set(fp_store *s, int64_t id, fp_pay_state state, int64_t captured,
                             int64_t refunded, const char *decline, int64_t now) {
    sqlite3_stmt *st = NULL;
    fp_status res =
        fp_store_prepare(s,
                         "UPDATE pay_payments SET state = ?, captured = ?, refunded = ?, "
                         "decline = ?, updated_ms = ? WHERE id = ?",
                         &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, fp_pay_state_name(state), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, captured);
    sqlite3_bind_int64(st, 3, refunded);
    sqlite3_bind_text(st, 4, decline, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now);
    sqlite3_bind_int64(st, 6, id);
    return fp_pay_step_done(s, st, "updating a payment");
}

/* Gives an authorised payment's held money back to the wallet and declines it. */
static fp_status payment_void(fp_store *s, const fp_payment *pm, const char *reason, int64_t now) {
    fp_pay_account hold;
    fp_status res = acct_find(s, FP_ACCOUNT_HOLD, "", pm->currency, &hold);
    if (res == FP_OK)
        res = transfer(s, FP_TXN_VOID, hold.id, pm->customer_account, pm->currency, pm->amount,
                       pm->id, 0, reason, now, NULL);
    if (res == FP_OK) res = payment_set(s, pm->id, FP_PAY_DECLINED, 0, 0, reason, now);
    return res;
}

/* Ids of the authorised payments matching `where` (one int64 or text parameter). */
static fp_status authorised_ids(fp_store *s, const char *where, int64_t num, const char *text,
                                int64_t **ids, int *n) {
    *ids = NULL;
    *n = 0;
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT id FROM pay_payments WHERE state = 'authorised' AND %s ORDER BY id", where);
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s, sql, &st);
    if (res != FP_OK) return res;
    if (text)
        sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(st, 1, num);
    int rc, cap = 0;
    /* Collected first: changing rows of the table a SELECT is walking is best avoided. */
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            int64_t *grown = realloc(*ids, sizeof **ids * (size_t)cap);
            if (!grown) {
                sqlite3_finalize(st);
                free(*ids);
                *ids = NULL;
                *n = 0;
                return fp_fail(FP_ERR_NOMEM, "out of memory");
            }
            *ids = grown;
        }
        (*ids)[(*n)++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(*ids);
        *ids = NULL;
        *n = 0;
        return fp_store_sqlfail(s, rc, "listing authorised payments");
    }
    return FP_OK;
}

static fp_status void_all(fp_store *s, const char *where, int64_t num, const char *text,
                          const char *reason, int64_t now, int *count) {
    int64_t *ids = NULL;
    int n = 0;
    fp_status res = authorised_ids(s, where, num, text, &ids, &n);
    for (int i = 0; res == FP_OK && i < n; i++) {
        fp_payment pm;
        res = payment_load(s, ids[i], &pm);
        if (res == FP_OK) res = payment_void(s, &pm, reason, now);
    }
    free(ids);
    if (res == FP_OK && count) *count = n;
    return res;
}

/* ------------------------------------------------------------------------------------------ */
/* Idempotency                                                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct idem_row {
    int found;
    char op[16];
    uint8_t hash[32];
    int64_t payment_id, refund_id;
} idem_row;

static fp_status idem_load(fp_store *s, const char *merchant, const char *key, idem_row *r) {
    memset(r, 0, sizeof *r);
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s,
                                     "SELECT operation, request_hash, payment_id, "
                                     "coalesce(refund_id, 0) FROM pay_idempotency "
                                     "WHERE merchant_id = ? AND key = ?",
                                     &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, merchant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 1) == 32) {
        r->found = 1;
        fp_pay_col_text(r->op, sizeof r->op, st, 0);
        memcpy(r->hash, sqlite3_column_blob(st, 1), 32);
        r->payment_id = sqlite3_column_int64(st, 2);
        r->refund_id = sqlite3_column_int64(st, 3);
    } else if (rc == SQLITE_ROW) {
        res = fp_fail(FP_ERR_FORMAT, "idempotency record is damaged");
    } else if (rc != SQLITE_DONE) {
        res = fp_store_sqlfail(s, rc, "reading an idempotency key");
    }
    sqlite3_finalize(st);
    return res;
}

/* Same key: the same operation and request give the stored result, anything else a conflict. */
static fp_status idem_match(const idem_row *r, const char *op, const uint8_t hash[32],
                            const char *key) {
    if (strcmp(r->op, op) == 0 && memcmp(r->hash, hash, 32) == 0) return FP_OK;
    return fp_fail(FP_ERR_PAY_CONFLICT,
                   "idempotency key \"%.64s\" was already used for a different %s request", key,
                   r->op);
}

static fp_status idem_store(fp_store *s, const char *merchant, const char *key, const char *op,
                            const uint8_t hash[32], int64_t payment_id, int64_t refund_id,
                            int64_t now) {
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s,
                                     "INSERT INTO pay_idempotency(merchant_id, key, operation, "
                                     "request_hash, payment_id, refund_id, created_ms) "
                                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                     &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, merchant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, op, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, payment_id);
    if (refund_id > 0) sqlite3_bind_int64(st, 6, refund_id);
    sqlite3_bind_int64(st, 7, now);
    return fp_pay_step_done(s, st, "storing an idempotency key");
}

/* Length-prefixed fields into a SHA-256: the request hash of idempotency. */
static void h_str(crypto_hash_sha256_state *h, const char *s) {
    uint32_t n = (uint32_t)strlen(s);
    uint8_t len[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    crypto_hash_sha256_update(h, len, 4);
    crypto_hash_sha256_update(h, (const uint8_t *)s, n);
}

static void h_i64(crypto_hash_sha256_state *h, int64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
    crypto_hash_sha256_update(h, b, 8);
}

/* ------------------------------------------------------------------------------------------ */
/* Evidence records                                                                            */
/* ------------------------------------------------------------------------------------------ */

static void ev_base(fp_pay_evidence *ev, const char *event, const fp_payment *pm, int64_t now) {
    memset(ev, 0, sizeof *ev);
    ev->time_ms = now;
    snprintf(ev->event, sizeof ev->event, "%s", event);
    ev->payment_id = pm->id;
    snprintf(ev->merchant_id, sizeof ev->merchant_id, "%s", pm->merchant_id);
    snprintf(ev->terminal_id, sizeof ev->terminal_id, "%s", pm->terminal_id);
    snprintf(ev->user_id, sizeof ev->user_id, "%s", pm->user_id);
    ev->amount = pm->amount;
    snprintf(ev->currency, sizeof ev->currency, "%s", pm->currency);
    ev->threshold = ev->score = ev->margin = ev->liveness = NAN;
}

static void ev_outcome(fp_pay_evidence *ev, fp_pay_state state, const char *decline) {
    if (state == FP_PAY_DECLINED)
        snprintf(ev->outcome, sizeof ev->outcome, "declined:%.22s", decline);
    else
        snprintf(ev->outcome, sizeof ev->outcome, "%s", fp_pay_state_name(state));
}

/* ------------------------------------------------------------------------------------------ */
/* Charge                                                                                      */
/* ------------------------------------------------------------------------------------------ */

typedef struct charge_ctx {
    fp_pay *pay;
    const fp_pay_charge_req *req;
    const char *uid; /* the customer, "" when nobody was identified */
    uint8_t req_hash[32];
    int64_t now;
    fp_payment *out;
} charge_ctx;

static fp_status terminal_check(fp_store *s, const char *merchant, const char *terminal) {
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(
        s, "SELECT active FROM pay_terminals WHERE merchant_id = ? AND id = ?", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, merchant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, terminal, -1, SQLITE_STATIC);
    char missing[192];
    snprintf(missing, sizeof missing, "terminal %s of merchant %s not found", terminal, merchant);
    res = step_row(s, st, "reading a terminal", missing);
    if (res != FP_OK) return res;
    int active = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (!active)
        return fp_fail(FP_ERR_PAY_STATE, "terminal %s of merchant %s is disabled", terminal,
                       merchant);
    return FP_OK;
}

static fp_status daily_spent(fp_store *s, int64_t account, int64_t since, int64_t *spent) {
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s,
                                     "SELECT coalesce(sum(amount), 0) FROM pay_payments "
                                     "WHERE customer_account = ? AND created_ms > ? "
                                     "AND state <> 'declined'",
                                     &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int64(st, 1, account);
    sqlite3_bind_int64(st, 2, since);
    res = step_row(s, st, "summing the day's payments", "no sum");
    if (res != FP_OK) return res;
    *spent = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return FP_OK;
}

static fp_status charge_tx(fp_store *s, void *p) {
    charge_ctx *c = p;
    const fp_pay_charge_req *r = c->req;
    const fp_identify_result *id = r->identify;
    fp_pay *pay = c->pay;
    memset(c->out, 0, sizeof *c->out);

    idem_row ir;
    fp_status res = idem_load(s, r->merchant_id, r->idempotency_key, &ir);
    if (res != FP_OK) return res;
    if (ir.found) {
        res = idem_match(&ir, "charge", c->req_hash, r->idempotency_key);
        if (res == FP_OK) res = payment_load(s, ir.payment_id, c->out);
        c->out->replayed = res == FP_OK;
        return res;
    }
    res = terminal_check(s, r->merchant_id, r->terminal_id);
    if (res != FP_OK) return res;

    /* What the ledger knows of the customer. */
    fp_pay_customer_state cs;
    memset(&cs, 0, sizeof cs);
    fp_pay_account wallet;
    memset(&wallet, 0, sizeof wallet);
    if (c->uid[0]) {
        cust_row cr;
        res = cust_load(s, c->uid, &cr);
        if (res != FP_OK) return res;
        fp_user u;
        fp_status ust = fp_store_user_get(s, c->uid, &u);
        if (ust != FP_OK && ust != FP_ERR_NOT_FOUND) return ust;
        int user_active = ust == FP_OK && u.status == FP_USER_ACTIVE;
        if (cr.exists && !cr.deleted) {
            res = acct_find(s, FP_ACCOUNT_CUSTOMER, c->uid, r->currency, &wallet);
            if (res != FP_OK && res != FP_ERR_NOT_FOUND) return res;
            cs.has_wallet = res == FP_OK && !wallet.closed;
            if (!cs.has_wallet) memset(&wallet, 0, sizeof wallet);
        }
        cs.active = user_active && cr.exists && !cr.deleted;
        cs.face_locked = cr.face_locked;
        cs.has_pin = cr.has_pin;
        cs.has_phone = cr.has_phone;
        if (ust == FP_OK) {
            int la = fp_store_is_lookalike(s, c->uid);
            if (la < 0) return FP_ERR_IO; /* fp_last_error() has the store's message */
            cs.lookalike = la;
        }
        sodium_memzero(&cr, sizeof cr);
    }
    fp_pay_decision d = fp_pay_decide(&pay->opt.policy, id, r->amount, &cs);

    /* The outcome: the policy first, then the wallet's limits and balance, all read inside this
     * transaction, so a concurrent charge cannot slip between the check and the debit. */
    const char *decline = "";
    fp_pay_state state;
    if (d.verdict == FP_PAY_REFUSE) {
        decline = (d.reasons & FP_PAY_WHY_LOCKED) ? "locked" : "refused";
    } else if (r->amount > wallet.per_payment_limit) {
        decline = "limit_per_payment";
    } else {
        int64_t spent = 0;
        res = daily_spent(s, wallet.id, c->now - DAY_MS, &spent);
        if (res != FP_OK) return res;
        if (spent > wallet.daily_limit - r->amount)
            decline = "limit_daily";
        else if (wallet.balance < r->amount)
            decline = "insufficient_funds";
    }
    if (decline[0])
        state = FP_PAY_DECLINED;
    else
        state = d.verdict == FP_PAY_ACCEPT ? FP_PAY_CAPTURED : FP_PAY_AUTHORISED;

    sqlite3_stmt *st = NULL;
    res = fp_store_prepare(
        s,
        "INSERT INTO pay_payments(merchant_id, terminal_id, user_id, "
        "customer_account, currency, amount, captured, refunded, state, verdict, "
        "reasons, stepup, decline, created_ms, updated_ms, expires_ms) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?14)",
        &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, r->merchant_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->terminal_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, c->uid, -1, SQLITE_STATIC);
    if (wallet.id > 0) sqlite3_bind_int64(st, 4, wallet.id);
    sqlite3_bind_text(st, 5, r->currency, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, r->amount);
    sqlite3_bind_int64(st, 7, state == FP_PAY_CAPTURED ? r->amount : 0);
    sqlite3_bind_text(st, 8, fp_pay_state_name(state), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, fp_pay_verdict_name(d.verdict), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, (int64_t)d.reasons);
    sqlite3_bind_text(st, 11, fp_pay_stepup_name(d.stepup), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 12, decline, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 13, c->now);
    sqlite3_bind_int64(st, 14, state == FP_PAY_AUTHORISED ? c->now + pay->opt.stepup_ttl_ms : 0);
    res = fp_pay_step_done(s, st, "recording a payment");
    if (res != FP_OK) return res;
    const int64_t pid = sqlite3_last_insert_rowid(fp_store_db(s));

    if (state == FP_PAY_CAPTURED) {
        fp_pay_account m;
        res = acct_ensure(s, FP_ACCOUNT_MERCHANT, r->merchant_id, r->currency, c->now, &m);
        if (res == FP_OK)
            res = transfer(s, FP_TXN_CHARGE, wallet.id, m.id, r->currency, r->amount, pid, 0, NULL,
                           c->now, NULL);
    } else if (state == FP_PAY_AUTHORISED) {
        fp_pay_account hold;
        res = acct_ensure(s, FP_ACCOUNT_HOLD, "", r->currency, c->now, &hold);
        if (res == FP_OK)
            res = transfer(s, FP_TXN_AUTHORISE, wallet.id, hold.id, r->currency, r->amount, pid, 0,
                           NULL, c->now, NULL);
    }
    if (res != FP_OK) return res;

    /* The evidence of this decision, in the same transaction as the money. */
    res = payment_load(s, pid, c->out);
    if (res != FP_OK) return res;
    fp_pay_evidence ev;
    ev_base(&ev, "charge", c->out, c->now);
    snprintf(ev.models, sizeof ev.models, "%s", r->models ? r->models : FP_EMBEDDER_ID);
    ev.threshold = id->threshold;
    ev.score = id->score;
    ev.margin = id->margin;
    ev.frames_used = id->frames_used;
    ev.votes = id->votes;
    ev.blink = id->blink;
    ev.blinks = id->blinks;
    ev.liveness = id->liveness_score;
    if (r->quality) {
        ev.has_quality = 1;
        ev.q_face_px = r->quality->face_px;
        ev.q_brightness = r->quality->brightness;
        ev.q_contrast = r->quality->contrast;
        ev.q_sharpness = r->quality->sharpness;
        ev.q_occlusion = r->quality->occlusion;
        ev.q_pass = r->quality->pass;
    }
    snprintf(ev.challenge, sizeof ev.challenge, "%s", r->challenge ? r->challenge : "");
    snprintf(ev.decision, sizeof ev.decision, "%s", fp_pay_verdict_name(d.verdict));
    ev.reasons = d.reasons;
    ev_outcome(&ev, state, decline);
    int64_t seq = 0;
    res = fp_pay_evidence_append(s, &ev, r->thumbnail_jpeg,
                                 r->thumbnail_jpeg ? r->thumbnail_len : 0, &seq);
    if (res != FP_OK) return res;
    res = fp_store_prepare(s, "UPDATE pay_payments SET evidence_seq = ? WHERE id = ?", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int64(st, 2, pid);
    res = fp_pay_step_done(s, st, "linking the evidence");
    if (res == FP_OK)
        res = idem_store(s, r->merchant_id, r->idempotency_key, "charge", c->req_hash, pid, 0,
                         c->now);
    if (res == FP_OK) c->out->evidence_seq = seq;
    return res;
}

fp_status fp_pay_charge(fp_pay *pay, const fp_pay_charge_req *req, fp_payment *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!pay || !req || !out || !req->identify)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_charge: NULL argument");
    const fp_identify_result *id = req->identify;
    fp_status st = fp_store_check_id("fp_pay_charge: merchant", req->merchant_id, 0);
    if (st == FP_OK) st = fp_store_check_id("fp_pay_charge: terminal", req->terminal_id, 0);
    if (st == FP_OK) st = fp_pay_check_idem_key("fp_pay_charge", req->idempotency_key);
    if (st == FP_OK) st = fp_pay_check_amount("fp_pay_charge", req->amount);
    if (st == FP_OK) st = fp_pay_check_currency("fp_pay_charge", req->currency);
    if (st == FP_OK && req->models)
        st = fp_pay_check_label("fp_pay_charge: models", req->models, 127);
    if (st == FP_OK && req->challenge)
        st = fp_pay_check_label("fp_pay_charge: challenge", req->challenge, 31);
    if (st != FP_OK) return st;
    if (req->thumbnail_jpeg && (req->thumbnail_len == 0 || req->thumbnail_len > FP_PAY_THUMB_MAX))
        return fp_fail(FP_ERR_TOO_LARGE, "fp_pay_charge: thumbnail of %zu bytes (1..%d)",
                       req->thumbnail_len, FP_PAY_THUMB_MAX);
    /* Who pays: the caller's customer id, else the identified user; when both are given they must
     * agree (charging one person on the strength of another's face is a bug upstream). */
    if (!memchr(id->user_id, '\0', sizeof id->user_id))
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_charge: identify->user_id is not terminated");
    const char *uid = req->user_id ? req->user_id : id->user_id;
    if (uid[0]) {
        st = fp_store_check_id("fp_pay_charge: user", uid, 0);
        if (st != FP_OK) return st;
    }
    if (req->user_id && id->user_id[0] && strcmp(req->user_id, id->user_id) != 0)
        return fp_fail(FP_ERR_INVALID_ARG,
                       "fp_pay_charge: customer %s is not the identified user %s", req->user_id,
                       id->user_id);

    charge_ctx c;
    memset(&c, 0, sizeof c);
    c.pay = pay;
    c.req = req;
    c.uid = uid;
    c.now = fp_pay_now(pay);
    c.out = out;
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    h_str(&h, "facepay charge v1");
    h_str(&h, req->merchant_id);
    h_str(&h, req->terminal_id);
    h_i64(&h, req->amount);
    h_str(&h, req->currency);
    h_str(&h, uid);
    crypto_hash_sha256_final(&h, c.req_hash);
    st = fp_store_tx(pay->store, charge_tx, &c);
    if (st != FP_OK) memset(out, 0, sizeof *out);
    return st;
}

typedef struct charge_find_ctx {
    const char *merchant, *key;
    fp_payment *out;
} charge_find_ctx;

static fp_status charge_find_tx(fp_store *s, void *p) {
    charge_find_ctx *c = p;
    idem_row ir;
    fp_status res = idem_load(s, c->merchant, c->key, &ir);
    if (res != FP_OK) return res;
    if (!ir.found) return fp_fail(FP_ERR_NOT_FOUND, "idempotency key not used");
    if (strcmp(ir.op, "charge") != 0)
        return fp_fail(FP_ERR_PAY_CONFLICT,
                       "idempotency key \"%.64s\" was already used for a %s request", c->key, ir.op);
    res = payment_load(s, ir.payment_id, c->out);
    c->out->replayed = res == FP_OK;
    return res;
}

fp_status fp_pay_charge_find(fp_pay *pay, const char *merchant_id, const char *idempotency_key,
                             fp_payment *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!pay || !merchant_id || !idempotency_key || !out)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_charge_find: NULL argument");
    charge_find_ctx c = {merchant_id, idempotency_key, out};
    fp_status st = fp_store_read(pay->store, charge_find_tx, &c);
    if (st != FP_OK) memset(out, 0, sizeof *out);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Step-up                                                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct stepup_ctx {
    fp_pay *pay;
    const char *merchant;
    int64_t payment_id;
    int verified;
    cust_row cr; /* snapshot read before the secret check */
    fp_payment pm;
    int64_t now;
    fp_pay_stepup_result *out;
} stepup_ctx;

static fp_status stepup_read_tx(fp_store *s, void *p) {
    stepup_ctx *c = p;
    fp_status res = payment_of(s, c->merchant, c->payment_id, &c->pm);
    if (res != FP_OK) return res;
    if (c->pm.state != FP_PAY_AUTHORISED)
        return fp_fail(FP_ERR_PAY_STATE, "payment %lld is %s: no step-up pending",
                       (long long)c->payment_id, fp_pay_state_name(c->pm.state));
    return cust_load(s, c->pm.user_id, &c->cr);
}

static fp_status stepup_apply_tx(fp_store *s, void *p) {
    stepup_ctx *c = p;
    fp_pay_stepup_result *o = c->out;
    memset(o, 0, sizeof *o);
    const int max_fail = c->pay->opt.policy.max_stepup_failures;
    fp_payment pm;
    fp_status res = payment_of(s, c->merchant, c->payment_id, &pm);
    if (res != FP_OK) return res;
    if (pm.state != FP_PAY_AUTHORISED)
        return fp_fail(FP_ERR_PAY_STATE, "payment %lld is %s: no step-up pending",
                       (long long)c->payment_id, fp_pay_state_name(pm.state));
    cust_row cr;
    res = cust_load(s, pm.user_id, &cr);
    if (res != FP_OK) return res;
    /* The secret was checked against the snapshot; if it changed meanwhile, that check says
     * nothing about the current one. */
    if (cr.has_pin != c->cr.has_pin || strcmp(cr.pin_hash, c->cr.pin_hash) != 0 ||
        cr.has_phone != c->cr.has_phone || memcmp(cr.phone_hash, c->cr.phone_hash, 32) != 0) {
        sodium_memzero(&cr, sizeof cr);
        return fp_fail(FP_ERR_PAY_STATE, "the step-up secret changed during verification; retry");
    }
    int failures = cr.failures, locked = cr.face_locked, verified = 0;
    const char *decline = "";
    if (c->now >= pm.expires_ms) {
        decline = "stepup_expired";
        res = payment_void(s, &pm, decline, c->now);
    } else if (locked) {
        decline = "locked";
        res = payment_void(s, &pm, decline, c->now);
    } else if (c->verified) {
        verified = 1;
        failures = 0;
        fp_pay_account hold, m;
        res = acct_find(s, FP_ACCOUNT_HOLD, "", pm.currency, &hold);
        if (res == FP_OK)
            res = acct_ensure(s, FP_ACCOUNT_MERCHANT, pm.merchant_id, pm.currency, c->now, &m);
        if (res == FP_OK)
            res = transfer(s, FP_TXN_CAPTURE, hold.id, m.id, pm.currency, pm.amount, pm.id, 0, NULL,
                           c->now, NULL);
        if (res == FP_OK) res = payment_set(s, pm.id, FP_PAY_CAPTURED, pm.amount, 0, "", c->now);
    } else {
        failures++;
        if (failures >= max_fail) {
            /* Locking voids every pending step-up of the customer, this one included: holding
             * money for payments that can no longer be confirmed would only strand it. */
            locked = 1;
            decline = "locked";
            res =
                void_all(s, "customer_account IN (SELECT id FROM pay_accounts WHERE user_id = ?1)",
                         0, pm.user_id, decline, c->now, NULL);
            if (res == FP_OK) {
                char detail[96];
                snprintf(detail, sizeof detail, "face payment locked after %d failed step-ups",
                         failures);
                res = fp_store_audit_insert(s, pm.user_id, "pay_locked", detail);
            }
        }
    }
    sodium_memzero(&cr, sizeof cr);
    if (res != FP_OK) return res;
    sqlite3_stmt *st = NULL;
    res = fp_store_prepare(s,
                           "UPDATE pay_customers SET stepup_failures = ?, face_locked = ?, "
                           "updated_ms = ? WHERE user_id = ?",
                           &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int(st, 1, failures);
    sqlite3_bind_int(st, 2, locked);
    sqlite3_bind_int64(st, 3, c->now);
    sqlite3_bind_text(st, 4, pm.user_id, -1, SQLITE_STATIC);
    res = fp_pay_step_done(s, st, "recording the step-up");
    if (res != FP_OK) return res;

    res = payment_load(s, pm.id, &o->payment);
    if (res != FP_OK) return res;
    fp_pay_evidence ev;
    ev_base(&ev, "stepup", &o->payment, c->now);
    snprintf(ev.models, sizeof ev.models, "%s",
             pm.stepup == FP_STEPUP_PIN ? "argon2id" : "blake2b-keyed");
    snprintf(ev.challenge, sizeof ev.challenge, "%s", fp_pay_stepup_name(pm.stepup));
    snprintf(ev.decision, sizeof ev.decision, "%s", verified ? "accept" : "refuse");
    ev.reasons = o->payment.reasons;
    ev_outcome(&ev, o->payment.state, o->payment.decline);
    res = fp_pay_evidence_append(s, &ev, NULL, 0, NULL);
    if (res != FP_OK) return res;
    o->verified = verified;
    o->failures = failures;
    o->locked = locked;
    o->attempts_left = locked ? 0 : max_fail - failures;
    return FP_OK;
}

fp_status fp_pay_stepup_verify(fp_pay *pay, const char *merchant_id, int64_t payment_id,
                               const char *secret, fp_pay_stepup_result *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!pay || !secret || !out)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_stepup_verify: NULL argument");
    fp_status st = fp_store_check_id("fp_pay_stepup_verify: merchant", merchant_id, 0);
    if (st != FP_OK) return st;
    stepup_ctx c;
    memset(&c, 0, sizeof c);
    c.pay = pay;
    c.merchant = merchant_id;
    c.payment_id = payment_id;
    c.out = out;
    st = fp_store_read(pay->store, stepup_read_tx, &c);
    if (st != FP_OK) {
        sodium_memzero(&c.cr, sizeof c.cr);
        return st;
    }
    /* The secret check, outside any transaction (argon2id is slow on purpose). */
    size_t n = strnlen(secret, MAX_SECRET + 1);
    if (n <= MAX_SECRET) {
        if (c.pm.stepup == FP_STEPUP_PIN && c.cr.has_pin) {
            c.verified = crypto_pwhash_argon2id_str_verify(c.cr.pin_hash, secret, n) == 0;
        } else if (c.pm.stepup == FP_STEPUP_PHONE4 && c.cr.has_phone) {
            uint8_t h[32];
            phone_hash(pay, c.pm.user_id, secret, h);
            c.verified = fp_pay_ct_equal(h, c.cr.phone_hash, 32) && all_digits(secret, 4, 4);
            sodium_memzero(h, sizeof h);
        }
    }
    c.now = fp_pay_now(pay);
    st = fp_store_tx(pay->store, stepup_apply_tx, &c);
    sodium_memzero(&c.cr, sizeof c.cr);
    if (st != FP_OK) memset(out, 0, sizeof *out);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Cancel, expire                                                                              */
/* ------------------------------------------------------------------------------------------ */

typedef struct simple_ctx {
    const char *merchant, *user_id;
    int64_t payment_id, now;
    int count;
    fp_payment *out;
} simple_ctx;

static fp_status cancel_tx(fp_store *s, void *p) {
    simple_ctx *c = p;
    fp_payment pm;
    fp_status res = payment_of(s, c->merchant, c->payment_id, &pm);
    if (res != FP_OK) return res;
    if (pm.state != FP_PAY_AUTHORISED)
        return fp_fail(FP_ERR_PAY_STATE,
                       "payment %lld is %s: only a pending step-up can be cancelled",
                       (long long)c->payment_id, fp_pay_state_name(pm.state));
    res = payment_void(s, &pm, "cancelled", c->now);
    if (res == FP_OK && c->out) res = payment_load(s, pm.id, c->out);
    return res;
}

fp_status fp_pay_cancel(fp_pay *pay, const char *merchant_id, int64_t payment_id, fp_payment *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!pay) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_cancel: NULL handle");
    fp_status st = fp_store_check_id("fp_pay_cancel: merchant", merchant_id, 0);
    if (st != FP_OK) return st;
    simple_ctx c = {merchant_id, NULL, payment_id, fp_pay_now(pay), 0, out};
    return fp_store_tx(pay->store, cancel_tx, &c);
}

static fp_status expire_tx(fp_store *s, void *p) {
    simple_ctx *c = p;
    c->count = 0;
    return void_all(s, "expires_ms <= ?1", c->now, NULL, "stepup_expired", c->now, &c->count);
}

fp_status fp_pay_expire(fp_pay *pay, int *n_voided) {
    if (n_voided) *n_voided = 0;
    if (!pay) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_expire: NULL handle");
    simple_ctx c = {NULL, NULL, 0, fp_pay_now(pay), 0, NULL};
    fp_status st = fp_store_tx(pay->store, expire_tx, &c);
    if (st == FP_OK && n_voided) *n_voided = c.count;
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Refund                                                                                      */
/* ------------------------------------------------------------------------------------------ */

typedef struct refund_ctx {
    const char *merchant, *key;
    int64_t payment_id, amount, now;
    uint8_t req_hash[32];
    fp_pay_refund_result *out;
} refund_ctx;

static fp_status refund_tx(fp_store *s, void *p) {
    refund_ctx *c = p;
    fp_pay_refund_result *o = c->out;
    memset(o, 0, sizeof *o);
    idem_row ir;
    fp_status res = idem_load(s, c->merchant, c->key, &ir);
    if (res != FP_OK) return res;
    if (ir.found) {
        res = idem_match(&ir, "refund", c->req_hash, c->key);
        if (res == FP_OK) res = payment_load(s, ir.payment_id, &o->payment);
        if (res != FP_OK) return res;
        o->refund_id = ir.refund_id;
        o->amount = c->amount; /* part of the request hash, so equal to the stored refund's */
        o->replayed = 1;
        return FP_OK;
    }
    fp_payment pm;
    res = payment_of(s, c->merchant, c->payment_id, &pm);
    if (res != FP_OK) return res;
    if (pm.state != FP_PAY_CAPTURED && pm.state != FP_PAY_PARTIALLY_REFUNDED)
        return fp_fail(FP_ERR_PAY_STATE, "payment %lld is %s: only captured money can be refunded",
                       (long long)pm.id, fp_pay_state_name(pm.state));
    const int64_t left = pm.captured - pm.refunded;
    if (c->amount > left)
        return fp_fail(FP_ERR_PAY_STATE,
                       "payment %lld: refund of %lld exceeds the %lld still refundable",
                       (long long)pm.id, (long long)c->amount, (long long)left);
    fp_pay_account wallet, m;
    res = acct_load(s, pm.customer_account, &wallet);
    if (res != FP_OK) return res;
    if (wallet.closed)
        return fp_fail(FP_ERR_PAY_STATE,
                       "payment %lld: the customer's wallet is closed (deleted); refund off-system",
                       (long long)pm.id);
    res = acct_find(s, FP_ACCOUNT_MERCHANT, pm.merchant_id, pm.currency, &m);
    if (res != FP_OK) return res;

    sqlite3_stmt *st = NULL;
    res = fp_store_prepare(
        s, "INSERT INTO pay_refunds(payment_id, amount, created_ms) VALUES (?, ?, ?)", &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int64(st, 1, pm.id);
    sqlite3_bind_int64(st, 2, c->amount);
    sqlite3_bind_int64(st, 3, c->now);
    res = fp_pay_step_done(s, st, "recording a refund");
    if (res != FP_OK) return res;
    const int64_t rid = sqlite3_last_insert_rowid(fp_store_db(s));
    res = transfer(s, FP_TXN_REFUND, m.id, wallet.id, pm.currency, c->amount, pm.id, rid, NULL,
                   c->now, NULL);
    if (res != FP_OK) return res;
    const int64_t refunded = pm.refunded + c->amount;
    res =
        payment_set(s, pm.id, refunded == pm.captured ? FP_PAY_REFUNDED : FP_PAY_PARTIALLY_REFUNDED,
                    pm.captured, refunded, "", c->now);
    if (res == FP_OK)
        res = idem_store(s, c->merchant, c->key, "refund", c->req_hash, pm.id, rid, c->now);
    if (res == FP_OK) res = payment_load(s, pm.id, &o->payment);
    if (res != FP_OK) return res;
    o->refund_id = rid;
    o->amount = c->amount;
    return FP_OK;
}

fp_status fp_pay_refund(fp_pay *pay, const char *merchant_id, const char *idempotency_key,
                        int64_t payment_id, int64_t amount, fp_pay_refund_result *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!pay || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_refund: NULL argument");
    fp_status st = fp_store_check_id("fp_pay_refund: merchant", merchant_id, 0);
    if (st == FP_OK) st = fp_pay_check_idem_key("fp_pay_refund", idempotency_key);
    if (st == FP_OK) st = fp_pay_check_amount("fp_pay_refund", amount);
    if (st != FP_OK) return st;
    refund_ctx c;
    memset(&c, 0, sizeof c);
    c.merchant = merchant_id;
    c.key = idempotency_key;
    c.payment_id = payment_id;
    c.amount = amount;
    c.now = fp_pay_now(pay);
    c.out = out;
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    h_str(&h, "facepay refund v1");
    h_str(&h, merchant_id);
    h_i64(&h, payment_id);
    h_i64(&h, amount);
    crypto_hash_sha256_final(&h, c.req_hash);
    st = fp_store_tx(pay->store, refund_tx, &c);
    if (st != FP_OK) memset(out, 0, sizeof *out);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Top-up, deletion                                                                            */
/* ------------------------------------------------------------------------------------------ */

typedef struct topup_ctx {
    const char *user_id, *currency, *reference;
    int64_t amount, now, txn_id;
} topup_ctx;

static fp_status topup_tx(fp_store *s, void *p) {
    topup_ctx *c = p;
    c->txn_id = 0;
    cust_row cr;
    fp_status res = cust_require(s, c->user_id, &cr);
    sodium_memzero(&cr, sizeof cr);
    if (res != FP_OK) return res;
    fp_pay_account wallet, funding;
    res = acct_find(s, FP_ACCOUNT_CUSTOMER, c->user_id, c->currency, &wallet);
    if (res != FP_OK) return res;
    if (wallet.closed)
        return fp_fail(FP_ERR_PAY_STATE, "wallet %lld is closed", (long long)wallet.id);
    res = acct_ensure(s, FP_ACCOUNT_FUNDING, "", c->currency, c->now, &funding);
    if (res != FP_OK) return res;
    return transfer(s, FP_TXN_TOPUP, funding.id, wallet.id, c->currency, c->amount, 0, 0,
                    c->reference, c->now, &c->txn_id);
}

fp_status fp_pay_topup(fp_pay *pay, const char *user_id, const char *currency, int64_t amount,
                       const char *reference, int64_t *txn_id) {
    if (txn_id) *txn_id = 0;
    if (!pay) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_topup: NULL handle");
    fp_status st = fp_store_check_id("fp_pay_topup: user", user_id, 0);
    if (st == FP_OK) st = fp_pay_check_currency("fp_pay_topup", currency);
    if (st == FP_OK) st = fp_pay_check_amount("fp_pay_topup", amount);
    if (st == FP_OK && reference)
        st = fp_store_check_text("fp_pay_topup: reference", reference, 127);
    if (st != FP_OK) return st;
    topup_ctx c = {user_id, currency, reference, amount, fp_pay_now(pay), 0};
    st = fp_store_tx(pay->store, topup_tx, &c);
    if (st == FP_OK && txn_id) *txn_id = c.txn_id;
    return st;
}

static fp_status cust_delete_tx(fp_store *s, void *p) {
    simple_ctx *c = p;
    cust_row cr;
    fp_status res = cust_load(s, c->user_id, &cr);
    sodium_memzero(&cr.pin_hash, sizeof cr.pin_hash);
    if (res != FP_OK) return res;
    if (!cr.exists)
        return fp_fail(FP_ERR_NOT_FOUND, "user %s is not a payment customer", c->user_id);
    if (cr.deleted) return FP_OK;
    /* 1. Pending step-ups give their money back to the wallets. */
    res = void_all(s, "customer_account IN (SELECT id FROM pay_accounts WHERE user_id = ?1)", 0,
                   c->user_id, "customer_deleted", c->now, NULL);
    if (res != FP_OK) return res;
    /* 2. Each wallet's balance goes back to funding (returned to the person off-system), and the
     *    wallet closes. Collected first, then moved. */
    sqlite3_stmt *st = NULL;
    res = fp_store_prepare(s,
                           "SELECT id, currency, balance FROM pay_accounts "
                           "WHERE kind = 'customer' AND user_id = ? AND closed = 0 ORDER BY id",
                           &st);
    if (res != FP_OK) return res;
    sqlite3_bind_text(st, 1, c->user_id, -1, SQLITE_STATIC);
    struct {
        int64_t id, balance;
        char currency[4];
    } w[64];
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == 64) {
            sqlite3_finalize(st);
            return fp_fail(FP_ERR_TOO_LARGE, "user %s has more than 64 wallets", c->user_id);
        }
        w[n].id = sqlite3_column_int64(st, 0);
        fp_pay_col_text(w[n].currency, sizeof w[n].currency, st, 1);
        w[n].balance = sqlite3_column_int64(st, 2);
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return fp_store_sqlfail(s, rc, "listing wallets");
    for (int i = 0; i < n; i++) {
        if (w[i].balance > 0) {
            fp_pay_account funding;
            res = acct_ensure(s, FP_ACCOUNT_FUNDING, "", w[i].currency, c->now, &funding);
            if (res == FP_OK)
                res = transfer(s, FP_TXN_PAYOUT, w[i].id, funding.id, w[i].currency, w[i].balance,
                               0, 0, "customer deleted", c->now, NULL);
            if (res != FP_OK) return res;
        }
        res = fp_store_prepare(s, "UPDATE pay_accounts SET closed = 1 WHERE id = ?", &st);
        if (res != FP_OK) return res;
        sqlite3_bind_int64(st, 1, w[i].id);
        res = fp_pay_step_done(s, st, "closing a wallet");
        if (res != FP_OK) return res;
    }
    /* 3. Personal data: the step-up secrets and the face thumbnails. */
    res = fp_store_prepare(
        s,
        "UPDATE pay_customers SET pin_hash = NULL, phone_hash = NULL, deleted = 1, "
        "updated_ms = ? WHERE user_id = ?",
        &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int64(st, 1, c->now);
    sqlite3_bind_text(st, 2, c->user_id, -1, SQLITE_STATIC);
    res = fp_pay_step_done(s, st, "erasing a customer");
    int thumbs = 0;
    if (res == FP_OK) res = fp_pay_evidence_erase_user(s, c->user_id, &thumbs);
    if (res != FP_OK) return res;
    char detail[96];
    snprintf(detail, sizeof detail, "%d wallet(s) closed, %d thumbnail(s) erased", n, thumbs);
    return fp_store_audit_insert(s, c->user_id, "pay_deleted", detail);
}

fp_status fp_pay_customer_delete(fp_pay *pay, const char *user_id) {
    if (!pay) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_customer_delete: NULL handle");
    fp_status st = fp_store_check_id("fp_pay_customer_delete: user", user_id, 0);
    if (st != FP_OK) return st;
    simple_ctx c = {NULL, user_id, 0, fp_pay_now(pay), 0, NULL};
    return fp_store_tx(pay->store, cust_delete_tx, &c);
}

/* ------------------------------------------------------------------------------------------ */
/* Reads                                                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef struct read_ctx {
    int64_t id;
    const char *owner, *currency;
    fp_pay_account_kind kind;
    fp_pay_account *acct;
    fp_payment *pay;
} read_ctx;

static fp_status payment_get_tx(fp_store *s, void *p) {
    read_ctx *c = p;
    return payment_load(s, c->id, c->pay);
}

fp_status fp_pay_get(fp_pay *pay, int64_t payment_id, fp_payment *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!pay || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_get: NULL argument");
    read_ctx c = {payment_id, NULL, NULL, FP_ACCOUNT_CUSTOMER, NULL, out};
    return fp_store_read(pay->store, payment_get_tx, &c);
}

static fp_status account_get_tx(fp_store *s, void *p) {
    read_ctx *c = p;
    if (c->owner) return acct_find(s, c->kind, c->owner, c->currency, c->acct);
    return acct_load(s, c->id, c->acct);
}

static fp_status account_read(fp_pay *pay, read_ctx *c, const char *what) {
    memset(c->acct, 0, sizeof *c->acct);
    if (c->owner) {
        fp_status st = fp_store_check_id(what, c->owner, 0);
        if (st == FP_OK) st = fp_pay_check_currency(what, c->currency);
        if (st != FP_OK) return st;
    }
    return fp_store_read(pay->store, account_get_tx, c);
}

fp_status fp_pay_wallet(fp_pay *pay, const char *user_id, const char *currency,
                        fp_pay_account *out) {
    if (!pay || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_wallet: NULL argument");
    read_ctx c = {0, user_id ? user_id : "", currency, FP_ACCOUNT_CUSTOMER, out, NULL};
    return account_read(pay, &c, "fp_pay_wallet");
}

fp_status fp_pay_merchant_account(fp_pay *pay, const char *merchant_id, const char *currency,
                                  fp_pay_account *out) {
    if (!pay || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_merchant_account: NULL argument");
    read_ctx c = {0, merchant_id ? merchant_id : "", currency, FP_ACCOUNT_MERCHANT, out, NULL};
    return account_read(pay, &c, "fp_pay_merchant_account");
}

fp_status fp_pay_account_get(fp_pay *pay, int64_t account_id, fp_pay_account *out) {
    if (!pay || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_account_get: NULL argument");
    read_ctx c = {account_id, NULL, NULL, FP_ACCOUNT_CUSTOMER, out, NULL};
    return account_read(pay, &c, "fp_pay_account_get");
}

fp_status fp_pay_balance(fp_pay *pay, int64_t account_id, int64_t *balance) {
    if (balance) *balance = 0;
    if (!balance) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_balance: NULL argument");
    fp_pay_account a;
    fp_status st = fp_pay_account_get(pay, account_id, &a);
    if (st == FP_OK) *balance = a.balance;
    return st;
}

typedef struct postings_ctx {
    int64_t account, after;
    int limit;
    int (*cb)(void *, const fp_pay_posting *);
    void *ctx;
} postings_ctx;

static fp_status postings_tx(fp_store *s, void *p) {
    postings_ctx *c = p;
    fp_pay_account a;
    fp_status res = acct_load(s, c->account, &a);
    if (res != FP_OK) return res;
    sqlite3_stmt *st = NULL;
    res =
        fp_store_prepare(s,
                         "SELECT p.id, p.txn_id, t.kind, p.account_id, coalesce(t.payment_id, 0), "
                         "coalesce(t.refund_id, 0), t.currency, p.amount, p.balance_after, "
                         "p.created_ms FROM pay_postings p JOIN pay_txns t ON t.id = p.txn_id "
                         "WHERE p.account_id = ? AND p.id > ? ORDER BY p.id LIMIT ?",
                         &st);
    if (res != FP_OK) return res;
    sqlite3_bind_int64(st, 1, c->account);
    sqlite3_bind_int64(st, 2, c->after);
    sqlite3_bind_int(st, 3, c->limit > 0 ? c->limit : -1);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        fp_pay_posting q;
        memset(&q, 0, sizeof q);
        q.id = sqlite3_column_int64(st, 0);
        q.txn_id = sqlite3_column_int64(st, 1);
        int k = parse_name(TXN_NAMES, 7, (const char *)sqlite3_column_text(st, 2));
        q.kind = k < 0 ? FP_TXN_TOPUP : (fp_pay_txn_kind)k;
        q.account_id = sqlite3_column_int64(st, 3);
        q.payment_id = sqlite3_column_int64(st, 4);
        q.refund_id = sqlite3_column_int64(st, 5);
        fp_pay_col_text(q.currency, sizeof q.currency, st, 6);
        q.amount = sqlite3_column_int64(st, 7);
        q.balance_after = sqlite3_column_int64(st, 8);
        q.created_ms = sqlite3_column_int64(st, 9);
        if (c->cb(c->ctx, &q)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return fp_store_sqlfail(s, rc, "listing postings");
    return FP_OK;
}

fp_status fp_pay_foreach_posting(fp_pay *pay, int64_t account_id, int64_t after_id, int limit,
                                 int (*cb)(void *ctx, const fp_pay_posting *p), void *ctx) {
    if (!pay || !cb) return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_foreach_posting: NULL argument");
    postings_ctx c = {account_id, after_id, limit, cb, ctx};
    return fp_store_read(pay->store, postings_tx, &c);
}

/* ------------------------------------------------------------------------------------------ */
/* Self-check                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* Each check is a query whose rows are violations: (label, got, want). */
static const struct {
    const char *what;
    const char *sql;
} CHECKS[] = {
    {"postings of a currency do not sum to zero",
     "SELECT a.currency, sum(p.amount), 0 FROM pay_postings p JOIN pay_accounts a "
     "ON a.id = p.account_id GROUP BY a.currency HAVING sum(p.amount) <> 0"},
    {"postings of a transaction do not sum to zero",
     "SELECT 'txn ' || txn_id, sum(amount), 0 FROM pay_postings GROUP BY txn_id "
     "HAVING sum(amount) <> 0"},
    {"transaction with fewer than two postings",
     "SELECT 'txn ' || t.id, (SELECT count(*) FROM pay_postings p WHERE p.txn_id = t.id), 2 "
     "FROM pay_txns t WHERE (SELECT count(*) FROM pay_postings p WHERE p.txn_id = t.id) < 2"},
    {"transaction amount differs from its credits",
     "SELECT 'txn ' || t.id, (SELECT coalesce(sum(amount), 0) FROM pay_postings p "
     "WHERE p.txn_id = t.id AND p.amount > 0), t.amount FROM pay_txns t "
     "WHERE (SELECT coalesce(sum(amount), 0) FROM pay_postings p "
     "WHERE p.txn_id = t.id AND p.amount > 0) <> t.amount"},
    {"posting in another currency than its transaction",
     "SELECT 'posting ' || p.id, 0, 0 FROM pay_postings p "
     "JOIN pay_accounts a ON a.id = p.account_id JOIN pay_txns t ON t.id = p.txn_id "
     "WHERE a.currency <> t.currency"},
    {"balance differs from the sum of its postings",
     "SELECT 'account ' || a.id, a.balance, (SELECT coalesce(sum(amount), 0) FROM pay_postings p "
     "WHERE p.account_id = a.id) FROM pay_accounts a WHERE a.balance <> "
     "(SELECT coalesce(sum(amount), 0) FROM pay_postings p WHERE p.account_id = a.id)"},
    {"negative balance", "SELECT 'account ' || id, balance, 0 FROM pay_accounts "
                         "WHERE kind <> 'funding' AND balance < 0"},
    {"hold account differs from the authorised payments",
     "SELECT 'hold ' || a.currency, a.balance, (SELECT coalesce(sum(amount), 0) "
     "FROM pay_payments p WHERE p.state = 'authorised' AND p.currency = a.currency) "
     "FROM pay_accounts a "
     "WHERE a.kind = 'hold' AND a.balance <> (SELECT coalesce(sum(amount), 0) FROM pay_payments p "
     "WHERE p.state = 'authorised' AND p.currency = a.currency)"},
    {"captured amount differs from the charge/capture transactions",
     "SELECT 'payment ' || p.id, p.captured, (SELECT coalesce(sum(t.amount), 0) FROM pay_txns t "
     "WHERE t.payment_id = p.id AND t.kind IN ('charge', 'capture')) FROM pay_payments p "
     "WHERE p.captured <> (SELECT coalesce(sum(t.amount), 0) FROM pay_txns t "
     "WHERE t.payment_id = p.id AND t.kind IN ('charge', 'capture'))"},
    {"refunded amount differs from the refund transactions",
     "SELECT 'payment ' || p.id, p.refunded, (SELECT coalesce(sum(t.amount), 0) FROM pay_txns t "
     "WHERE t.payment_id = p.id AND t.kind = 'refund') FROM pay_payments p "
     "WHERE p.refunded <> (SELECT coalesce(sum(t.amount), 0) FROM pay_txns t "
     "WHERE t.payment_id = p.id AND t.kind = 'refund')"},
    {"refunds exceed the captured amount",
     "SELECT 'payment ' || id, refunded, captured FROM pay_payments WHERE refunded > captured"},
};

static void problem(fp_ledger_report *r, const char *what, const char *label, long long got,
                    long long want) {
    if (r->problems++ == 0)
        snprintf(r->message, sizeof r->message, "%s: %s (%lld, expected %lld)", what, label, got,
                 want);
    r->ok = 0;
}

static fp_status count_rows(fp_store *s, const char *sql, int64_t *n) {
    sqlite3_stmt *st = NULL;
    fp_status res = fp_store_prepare(s, sql, &st);
    if (res != FP_OK) return res;
    res = step_row(s, st, "counting", "no count");
    if (res != FP_OK) return res;
    *n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return FP_OK;
}

static fp_status check_tx(fp_store *s, void *p) {
    fp_ledger_report *r = p;
    memset(r, 0, sizeof *r);
    r->ok = 1;
    fp_status res = count_rows(s, "SELECT count(*) FROM pay_accounts", &r->accounts);
    if (res == FP_OK) res = count_rows(s, "SELECT count(*) FROM pay_txns", &r->txns);
    if (res == FP_OK) res = count_rows(s, "SELECT count(*) FROM pay_postings", &r->postings);
    if (res == FP_OK) res = count_rows(s, "SELECT count(*) FROM pay_payments", &r->payments);
    if (res != FP_OK) return res;
    for (size_t i = 0; i < sizeof CHECKS / sizeof CHECKS[0]; i++) {
        sqlite3_stmt *st = NULL;
        res = fp_store_prepare(s, CHECKS[i].sql, &st);
        if (res != FP_OK) return res;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            problem(r, CHECKS[i].what, (const char *)sqlite3_column_text(st, 0),
                    (long long)sqlite3_column_int64(st, 1), (long long)sqlite3_column_int64(st, 2));
        sqlite3_finalize(st);
        /* sum() reports an integer overflow as an error: that is a broken ledger too. */
        if (rc != SQLITE_DONE) return fp_store_sqlfail(s, rc, CHECKS[i].what);
    }
    /* Running balances: each posting's balance_after is the sum of the account's postings so far.
     */
    sqlite3_stmt *st = NULL;
    res = fp_store_prepare(
        s, "SELECT account_id, id, amount, balance_after FROM pay_postings ORDER BY account_id, id",
        &st);
    if (res != FP_OK) return res;
    int64_t account = -1, running = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t a = sqlite3_column_int64(st, 0), amount = sqlite3_column_int64(st, 2);
        if (a != account) {
            account = a;
            running = 0;
        }
        if (__builtin_add_overflow(running, amount, &running)) {
            problem(r, "running balance overflows", "account", (long long)a, 0);
            continue;
        }
        int64_t after = sqlite3_column_int64(st, 3);
        if (after != running) {
            char label[48];
            snprintf(label, sizeof label, "posting %lld", (long long)sqlite3_column_int64(st, 1));
            problem(r, "balance_after differs from the running sum", label, (long long)after,
                    (long long)running);
            running = after; /* report each break once, not every posting after it */
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return fp_store_sqlfail(s, rc, "reading postings");
    return FP_OK;
}

fp_status fp_ledger_check(fp_store *store, fp_ledger_report *out) {
    if (!store || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_ledger_check: NULL argument");
    memset(out, 0, sizeof *out);
    return fp_store_read(store, check_tx, out);
}
