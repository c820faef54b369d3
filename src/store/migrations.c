/*
 * migrations.c - the database schema as a numbered list of migrations, and the runner that
 * brings a database file up to date.
 *
 * The version lives in PRAGMA user_version (in the file header, so it changes atomically with the
 * DDL of the same transaction); schema_migrations, created by the runner, keeps a readable history
 * of when each step ran.
 * Every step runs in its own BEGIN IMMEDIATE transaction that re-reads the version first, so two
 * processes opening a fresh file at once cannot both apply a step. A file whose version is above
 * the last step of this build is refused: an older binary must not write into a schema it does
 * not know.
 *
 * ADDING A MIGRATION (e.g. the payments ledger): append one entry to fp_store_migrations[] below
 * with the next version number. Never edit or reorder an entry that has shipped: databases in the
 * field have already applied it. Use STRICT tables, and REFERENCES users(id) for user links
 * (users rows are never deleted: a deleted user stays as a tombstone).
 */
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "store/store.h"

/* ------------------------------------------------------------------------------------------ */
/* The list                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* Version 1: identity (issue "Identity", item 1). */
static const char MIGRATION_1[] =
    /* Small facts about the file; 'key_check' holds the keyed BLAKE2b of the template key. */
    "CREATE TABLE meta("
    "  key TEXT PRIMARY KEY,"
    "  value BLOB NOT NULL"
    ") STRICT, WITHOUT ROWID;"
    /* Users: the id is chosen by the caller. status 'deleted' is a tombstone (name emptied, no
     * biometric rows) kept so ledger and audit references stay valid. */
    "CREATE TABLE users("
    "  id TEXT PRIMARY KEY NOT NULL CHECK (length(CAST(id AS BLOB)) BETWEEN 1 AND 63),"
    "  name TEXT NOT NULL CHECK (length(CAST(name AS BLOB)) <= 127),"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'locked', 'deleted'))"
    ") STRICT;"
    /* One encrypted embedding per row. AUTOINCREMENT: an id is never reused, so an old
     * ciphertext can never match the associated data of a later row. */
    "CREATE TABLE templates("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  model_id TEXT NOT NULL CHECK (length(CAST(model_id AS BLOB)) BETWEEN 1 AND 63),"
    "  dim INTEGER NOT NULL CHECK (dim BETWEEN 1 AND 4096),"
    "  quality REAL NOT NULL,"
    "  source TEXT NOT NULL CHECK (length(CAST(source AS BLOB)) <= 255),"
    "  created_ms INTEGER NOT NULL,"
    "  nonce BLOB NOT NULL CHECK (length(nonce) = 24),"
    "  ciphertext BLOB NOT NULL CHECK (length(ciphertext) = dim * 4 + 16)"
    ") STRICT;"
    "CREATE INDEX templates_by_user ON templates(user_id, model_id);"
    /* Per-user, per-model mean template (the gallery row), recomputed on every add/delete. */
    "CREATE TABLE user_means("
    "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  model_id TEXT NOT NULL,"
    "  dim INTEGER NOT NULL CHECK (dim BETWEEN 1 AND 4096),"
    "  n_templates INTEGER NOT NULL CHECK (n_templates >= 1),"
    "  updated_ms INTEGER NOT NULL,"
    "  nonce BLOB NOT NULL CHECK (length(nonce) = 24),"
    "  ciphertext BLOB NOT NULL CHECK (length(ciphertext) = dim * 4 + 16),"
    "  PRIMARY KEY (user_id, model_id)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE INDEX user_means_by_model ON user_means(model_id, user_id);"
    /* Pairs of users the matcher confuses; stored once with user_a < user_b. */
    "CREATE TABLE lookalikes("
    "  user_a TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  user_b TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  score REAL NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (user_a, user_b),"
    "  CHECK (user_a < user_b)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE INDEX lookalikes_by_b ON lookalikes(user_b);"
    /* Enrollment audit trail. No foreign key on purpose: entries outlive what they describe and
     * may name ids that never became users (a rejected enrollment). Never biometric data. */
    "CREATE TABLE audit("
    "  id INTEGER PRIMARY KEY,"
    "  user_id TEXT NOT NULL,"
    "  event TEXT NOT NULL,"
    "  detail TEXT NOT NULL DEFAULT '',"
    "  time_ms INTEGER NOT NULL"
    ") STRICT;"
    "CREATE INDEX audit_by_user ON audit(user_id, id);";

const fp_migration fp_store_migrations[] = {
    {1, "identity: users, encrypted templates, mean templates, lookalikes, audit", MIGRATION_1,
     NULL},
    /* Next: {2, "ledger: ...", MIGRATION_2, NULL}, */
    /* Version 2: payments (issue "Payment service"; src/pay/). Money is INTEGER minor units with
     * an ISO 4217 code; CHECK constraints back the balance checks the code makes inside each
     * transaction; triggers make the journal and the evidence chain append-only. */
    {2, "payments: merchants, terminals, API keys, customers, double-entry ledger, evidence chain",
     /* Merchants and their terminals (ids chosen by the operator / the merchant). */
     "CREATE TABLE pay_merchants("
     "  id TEXT PRIMARY KEY NOT NULL CHECK (length(CAST(id AS BLOB)) BETWEEN 1 AND 63),"
     "  name TEXT NOT NULL CHECK (length(CAST(name AS BLOB)) <= 127),"
     "  created_ms INTEGER NOT NULL"
     ") STRICT;"
     "CREATE TABLE pay_terminals("
     "  merchant_id TEXT NOT NULL REFERENCES pay_merchants(id),"
     "  id TEXT NOT NULL CHECK (length(CAST(id AS BLOB)) BETWEEN 1 AND 63),"
     "  name TEXT NOT NULL CHECK (length(CAST(name AS BLOB)) <= 127),"
     "  active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),"
     "  created_ms INTEGER NOT NULL,"
     "  PRIMARY KEY (merchant_id, id)"
     ") STRICT, WITHOUT ROWID;"
     /* API keys: only the keyed BLAKE2b-256 of the key text; id is its public part. */
     "CREATE TABLE pay_api_keys("
     "  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 16),"
     "  merchant_id TEXT NOT NULL REFERENCES pay_merchants(id),"
     "  hash BLOB NOT NULL CHECK (length(hash) = 32),"
     "  created_ms INTEGER NOT NULL,"
     "  revoked_ms INTEGER"
     ") STRICT;"
     "CREATE INDEX pay_api_keys_by_merchant ON pay_api_keys(merchant_id);"
     /* Payment customers: store users by opaque id. pin_hash is an argon2id string, phone_hash a
      * keyed BLAKE2b of the phone number's last 4 digits; both are erased on deletion. */
     "CREATE TABLE pay_customers("
     "  user_id TEXT PRIMARY KEY NOT NULL REFERENCES users(id),"
     "  pin_hash TEXT CHECK (pin_hash IS NULL OR length(pin_hash) BETWEEN 1 AND 255),"
     "  phone_hash BLOB CHECK (phone_hash IS NULL OR length(phone_hash) = 32),"
     "  stepup_failures INTEGER NOT NULL DEFAULT 0 CHECK (stepup_failures >= 0),"
     "  face_locked INTEGER NOT NULL DEFAULT 0 CHECK (face_locked IN (0, 1)),"
     "  deleted INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),"
     "  created_ms INTEGER NOT NULL,"
     "  updated_ms INTEGER NOT NULL,"
     "  CHECK (deleted = 0 OR (pin_hash IS NULL AND phone_hash IS NULL))"
     ") STRICT;"
     /* Accounts. funding is the only one allowed below zero (minus the money issued). */
     "CREATE TABLE pay_accounts("
     "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  kind TEXT NOT NULL CHECK (kind IN ('customer', 'merchant', 'funding', 'hold')),"
     "  user_id TEXT REFERENCES pay_customers(user_id),"
     "  merchant_id TEXT REFERENCES pay_merchants(id),"
     "  currency TEXT NOT NULL CHECK (currency GLOB '[A-Z][A-Z][A-Z]'),"
     "  balance INTEGER NOT NULL DEFAULT 0,"
     "  per_payment_limit INTEGER CHECK (per_payment_limit > 0),"
     "  daily_limit INTEGER CHECK (daily_limit > 0),"
     "  closed INTEGER NOT NULL DEFAULT 0 CHECK (closed IN (0, 1)),"
     "  created_ms INTEGER NOT NULL,"
     "  CHECK ((kind = 'customer') = (user_id IS NOT NULL)),"
     "  CHECK ((kind = 'merchant') = (merchant_id IS NOT NULL)),"
     "  CHECK ((kind = 'customer') = (per_payment_limit IS NOT NULL AND daily_limit IS NOT NULL)),"
     "  CHECK (kind = 'funding' OR balance >= 0),"
     "  CHECK (closed = 0 OR balance = 0)"
     ") STRICT;"
     "CREATE UNIQUE INDEX pay_accounts_unique"
     "  ON pay_accounts(kind, coalesce(user_id, merchant_id, ''), currency);"
     /* Payments: one row per charge request, whatever the outcome. */
     "CREATE TABLE pay_payments("
     "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  merchant_id TEXT NOT NULL,"
     "  terminal_id TEXT NOT NULL,"
     "  user_id TEXT NOT NULL CHECK (length(CAST(user_id AS BLOB)) <= 63),"
     "  customer_account INTEGER REFERENCES pay_accounts(id),"
     "  currency TEXT NOT NULL CHECK (currency GLOB '[A-Z][A-Z][A-Z]'),"
     "  amount INTEGER NOT NULL CHECK (amount > 0),"
     "  captured INTEGER NOT NULL DEFAULT 0 CHECK (captured IN (0, amount)),"
     "  refunded INTEGER NOT NULL DEFAULT 0 CHECK (refunded BETWEEN 0 AND captured),"
     "  state TEXT NOT NULL CHECK (state IN"
     "    ('authorised', 'captured', 'refunded', 'partially_refunded', 'declined')),"
     "  verdict TEXT NOT NULL CHECK (verdict IN ('accept', 'stepup', 'refuse')),"
     "  reasons INTEGER NOT NULL DEFAULT 0,"
     "  stepup TEXT NOT NULL DEFAULT 'none' CHECK (stepup IN ('none', 'pin', 'phone4')),"
     "  decline TEXT NOT NULL DEFAULT '' CHECK (length(decline) <= 31),"
     "  evidence_seq INTEGER NOT NULL DEFAULT 0,"
     "  created_ms INTEGER NOT NULL,"
     "  updated_ms INTEGER NOT NULL,"
     "  expires_ms INTEGER NOT NULL DEFAULT 0,"
     "  FOREIGN KEY (merchant_id, terminal_id) REFERENCES pay_terminals(merchant_id, id),"
     "  CHECK (state IN ('authorised', 'declined') OR captured = amount),"
     "  CHECK (state NOT IN ('authorised', 'declined') OR (captured = 0 AND refunded = 0)),"
     "  CHECK (state <> 'captured' OR refunded = 0),"
     "  CHECK (state <> 'partially_refunded' OR (refunded > 0 AND refunded < captured)),"
     "  CHECK (state <> 'refunded' OR refunded = captured),"
     "  CHECK (state <> 'authorised' OR (stepup <> 'none' AND customer_account IS NOT NULL)),"
     "  CHECK ((state = 'declined') = (decline <> ''))"
     ") STRICT;"
     "CREATE INDEX pay_payments_by_customer ON pay_payments(customer_account, created_ms);"
     "CREATE INDEX pay_payments_by_state ON pay_payments(state, expires_ms);"
     "CREATE TABLE pay_refunds("
     "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  payment_id INTEGER NOT NULL REFERENCES pay_payments(id),"
     "  amount INTEGER NOT NULL CHECK (amount > 0),"
     "  created_ms INTEGER NOT NULL"
     ") STRICT;"
     "CREATE INDEX pay_refunds_by_payment ON pay_refunds(payment_id);"
     /* The journal: a transaction and its postings (signed amounts that sum to zero). */
     "CREATE TABLE pay_txns("
     "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  kind TEXT NOT NULL CHECK (kind IN"
     "    ('topup', 'charge', 'authorise', 'capture', 'void', 'refund', 'payout')),"
     "  payment_id INTEGER REFERENCES pay_payments(id),"
     "  refund_id INTEGER REFERENCES pay_refunds(id),"
     "  currency TEXT NOT NULL CHECK (currency GLOB '[A-Z][A-Z][A-Z]'),"
     "  amount INTEGER NOT NULL CHECK (amount > 0),"
     "  reference TEXT NOT NULL DEFAULT '' CHECK (length(CAST(reference AS BLOB)) <= 127),"
     "  created_ms INTEGER NOT NULL"
     ") STRICT;"
     "CREATE INDEX pay_txns_by_payment ON pay_txns(payment_id);"
     "CREATE TABLE pay_postings("
     "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  txn_id INTEGER NOT NULL REFERENCES pay_txns(id),"
     "  account_id INTEGER NOT NULL REFERENCES pay_accounts(id),"
     "  amount INTEGER NOT NULL CHECK (amount <> 0),"
     "  balance_after INTEGER NOT NULL,"
     "  created_ms INTEGER NOT NULL"
     ") STRICT;"
     "CREATE INDEX pay_postings_by_account ON pay_postings(account_id, id);"
     "CREATE INDEX pay_postings_by_txn ON pay_postings(txn_id);"
     /* Idempotency keys, unique per merchant over every operation. */
     "CREATE TABLE pay_idempotency("
     "  merchant_id TEXT NOT NULL REFERENCES pay_merchants(id),"
     "  key TEXT NOT NULL CHECK (length(CAST(key AS BLOB)) BETWEEN 1 AND 255),"
     "  operation TEXT NOT NULL CHECK (operation IN ('charge', 'refund')),"
     "  request_hash BLOB NOT NULL CHECK (length(request_hash) = 32),"
     "  payment_id INTEGER NOT NULL REFERENCES pay_payments(id),"
     "  refund_id INTEGER REFERENCES pay_refunds(id),"
     "  created_ms INTEGER NOT NULL,"
     "  PRIMARY KEY (merchant_id, key)"
     ") STRICT, WITHOUT ROWID;"
     /* Evidence chain: seq 1, 2, 3, ... (a gap is a deleted record); see src/pay/evidence.c for
      * the canonical bytes. The head row holds the last seq and hash (tail truncation). */
     "CREATE TABLE pay_evidence("
     "  seq INTEGER PRIMARY KEY CHECK (seq >= 1),"
     "  time_ms INTEGER NOT NULL,"
     "  event TEXT NOT NULL CHECK (event IN ('charge', 'stepup')),"
     "  payment_id INTEGER NOT NULL,"
     "  merchant_id TEXT NOT NULL CHECK (length(CAST(merchant_id AS BLOB)) <= 63),"
     "  terminal_id TEXT NOT NULL CHECK (length(CAST(terminal_id AS BLOB)) <= 63),"
     "  user_id TEXT NOT NULL CHECK (length(CAST(user_id AS BLOB)) <= 63),"
     "  amount INTEGER NOT NULL,"
     "  currency TEXT NOT NULL CHECK (length(currency) = 3),"
     "  models TEXT NOT NULL CHECK (length(CAST(models AS BLOB)) <= 127),"
     "  threshold REAL, score REAL, margin REAL,"
     "  frames_used INTEGER NOT NULL, votes INTEGER NOT NULL,"
     "  blink INTEGER NOT NULL, blinks INTEGER NOT NULL,"
     "  liveness REAL,"
     "  q_face_px REAL, q_brightness REAL, q_contrast REAL, q_sharpness REAL, q_occlusion REAL,"
     "  q_pass INTEGER,"
     "  challenge TEXT NOT NULL CHECK (length(CAST(challenge AS BLOB)) <= 31),"
     "  decision TEXT NOT NULL CHECK (length(decision) <= 15),"
     "  reasons INTEGER NOT NULL,"
     "  outcome TEXT NOT NULL CHECK (length(outcome) <= 31),"
     "  thumb_hash BLOB CHECK (thumb_hash IS NULL OR length(thumb_hash) = 32),"
     "  thumb_nonce BLOB CHECK (thumb_nonce IS NULL OR length(thumb_nonce) = 24),"
     "  thumb_ct BLOB,"
     "  prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),"
     "  hash BLOB NOT NULL CHECK (length(hash) = 32),"
     "  mac BLOB NOT NULL CHECK (length(mac) = 32)"
     ") STRICT;"
     "CREATE INDEX pay_evidence_by_user ON pay_evidence(user_id);"
     "CREATE INDEX pay_evidence_by_payment ON pay_evidence(payment_id);"
     "CREATE TABLE pay_evidence_head("
     "  id INTEGER PRIMARY KEY CHECK (id = 1),"
     "  seq INTEGER NOT NULL,"
     "  hash BLOB NOT NULL CHECK (length(hash) = 32)"
     ") STRICT;"
     "INSERT INTO pay_evidence_head(id, seq, hash) VALUES (1, 0, zeroblob(32));"
     /* Append-only: a correction is a new transaction, never an edit. Only an evidence record's
      * thumbnail may change, and only to NULL (GDPR erasure). */
     "CREATE TRIGGER pay_txns_no_update BEFORE UPDATE ON pay_txns"
     "  BEGIN SELECT RAISE(ABORT, 'pay_txns is append-only'); END;"
     "CREATE TRIGGER pay_txns_no_delete BEFORE DELETE ON pay_txns"
     "  BEGIN SELECT RAISE(ABORT, 'pay_txns is append-only'); END;"
     "CREATE TRIGGER pay_postings_no_update BEFORE UPDATE ON pay_postings"
     "  BEGIN SELECT RAISE(ABORT, 'pay_postings is append-only'); END;"
     "CREATE TRIGGER pay_postings_no_delete BEFORE DELETE ON pay_postings"
     "  BEGIN SELECT RAISE(ABORT, 'pay_postings is append-only'); END;"
     "CREATE TRIGGER pay_refunds_no_update BEFORE UPDATE ON pay_refunds"
     "  BEGIN SELECT RAISE(ABORT, 'pay_refunds is append-only'); END;"
     "CREATE TRIGGER pay_refunds_no_delete BEFORE DELETE ON pay_refunds"
     "  BEGIN SELECT RAISE(ABORT, 'pay_refunds is append-only'); END;"
     "CREATE TRIGGER pay_evidence_no_delete BEFORE DELETE ON pay_evidence"
     "  BEGIN SELECT RAISE(ABORT, 'pay_evidence is append-only'); END;"
     "CREATE TRIGGER pay_evidence_no_update BEFORE UPDATE OF seq, time_ms, event, payment_id,"
     "  merchant_id, terminal_id, user_id, amount, currency, models, threshold, score, margin,"
     "  frames_used, votes, blink, blinks, liveness, q_face_px, q_brightness, q_contrast,"
     "  q_sharpness, q_occlusion, q_pass, challenge, decision, reasons, outcome, thumb_hash,"
     "  prev_hash, hash, mac ON pay_evidence"
     "  BEGIN SELECT RAISE(ABORT, 'pay_evidence is append-only'); END;"
     "CREATE TRIGGER pay_evidence_thumb_erase_only BEFORE UPDATE OF thumb_nonce, thumb_ct"
     "  ON pay_evidence WHEN NEW.thumb_nonce IS NOT NULL OR NEW.thumb_ct IS NOT NULL"
     "  BEGIN SELECT RAISE(ABORT, 'an evidence thumbnail can only be erased'); END;",
     NULL},
    /* Version 3: API key scopes and durable top-up idempotency (issue 6; src/pay/). Keys issued
     * before it keep every scope (7 = payments | refunds | customers): they could do everything, and
     * taking rights away from a deployed terminal on upgrade would stop it. pay_idempotency is
     * rebuilt (SQLite cannot change a CHECK) so top-ups share the per-merchant key space of charges
     * and refunds: a top-up row names its transaction instead of a payment. */
    {3, "payments: API key scopes, top-up idempotency keys",
     "ALTER TABLE pay_api_keys ADD COLUMN scopes INTEGER NOT NULL DEFAULT 7"
     "  CHECK (scopes BETWEEN 1 AND 7);"
     "CREATE TABLE pay_idempotency_v3("
     "  merchant_id TEXT NOT NULL REFERENCES pay_merchants(id),"
     "  key TEXT NOT NULL CHECK (length(CAST(key AS BLOB)) BETWEEN 1 AND 255),"
     "  operation TEXT NOT NULL CHECK (operation IN ('charge', 'refund', 'topup')),"
     "  request_hash BLOB NOT NULL CHECK (length(request_hash) = 32),"
     "  payment_id INTEGER REFERENCES pay_payments(id),"
     "  refund_id INTEGER REFERENCES pay_refunds(id),"
     "  txn_id INTEGER REFERENCES pay_txns(id),"
     "  created_ms INTEGER NOT NULL,"
     "  PRIMARY KEY (merchant_id, key),"
     "  CHECK ((operation = 'topup') = (payment_id IS NULL)),"
     "  CHECK ((operation = 'topup') = (txn_id IS NOT NULL))"
     ") STRICT, WITHOUT ROWID;"
     "INSERT INTO pay_idempotency_v3(merchant_id, key, operation, request_hash, payment_id,"
     "  refund_id, created_ms)"
     "  SELECT merchant_id, key, operation, request_hash, payment_id, refund_id, created_ms"
     "  FROM pay_idempotency;"
     "DROP TABLE pay_idempotency;"
     "ALTER TABLE pay_idempotency_v3 RENAME TO pay_idempotency;",
     NULL},
    /* Version 4: the replay guard's memory of captured frames (issue 6; src/pay/frames.c), so a
     * frame set used before a server restart is still recognised after it. A row per frame: its
     * pixel hash, the payment session that first used it, and when the row may be forgotten. */
    {4, "payments: frames used by payment attempts (replay guard)",
     "CREATE TABLE pay_frames_seen("
     "  hash BLOB PRIMARY KEY CHECK (length(hash) = 16),"
     "  session TEXT NOT NULL CHECK (length(CAST(session AS BLOB)) BETWEEN 1 AND 127),"
     "  expires_ms INTEGER NOT NULL"
     ") STRICT, WITHOUT ROWID;"
     "CREATE INDEX pay_frames_seen_by_expiry ON pay_frames_seen(expires_ms);",
     NULL},
};
const int fp_store_n_migrations = (int)(sizeof fp_store_migrations / sizeof fp_store_migrations[0]);

int fp_store_latest_version(void) { return fp_store_migrations[fp_store_n_migrations - 1].version; }

/* ------------------------------------------------------------------------------------------ */
/* The runner                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* Maps an SQLite result code to a status with "<path>: <what>: <message>". */
static fp_status sql_fail(sqlite3 *db, const char *path, int rc, const char *what) {
    fp_status st;
    switch (rc & 0xff) {
    case SQLITE_NOMEM: st = FP_ERR_NOMEM; break;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT: st = FP_ERR_FORMAT; break;
    default: st = FP_ERR_IO; break;
    }
    return fp_fail(st, "%s: %s: %s", path, what, sqlite3_errmsg(db));
}

/* Reads an integer PRAGMA (user_version, application_id). */
static int pragma_int(sqlite3 *db, const char *pragma, int64_t *out) {
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA %s", pragma);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Applies list[i] if the file is still below its version. Runs inside BEGIN IMMEDIATE. */
static fp_status apply_one(sqlite3 *db, const char *path, const fp_migration *m, int latest) {
    /* Re-checked under the write lock: another process may have migrated since the first look. */
    fp_status res = fp_store_check_version(db, path, latest);
    if (res != FP_OK) return res;
    int64_t version = 0;
    int rc = pragma_int(db, "user_version", &version);
    if (rc != SQLITE_OK) return sql_fail(db, path, rc, "reading the schema version");
    if (version >= m->version) return FP_OK; /* already applied (maybe by another process) */
    if (version != m->version - 1)
        return fp_fail(FP_ERR_INTERNAL, "%s: schema version %lld cannot take migration %d", path,
                       (long long)version, m->version);
    char what[96];
    snprintf(what, sizeof what, "migration %d (%s)", m->version, m->name);
    if (m->sql) {
        rc = sqlite3_exec(db, m->sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK) return sql_fail(db, path, rc, what);
    }
    if (m->apply) {
        char err[256] = "";
        fp_status st = m->apply(db, err, sizeof err);
        if (st != FP_OK) return fp_fail(st, "%s: %s: %s", path, what, err);
    }
    char sql[160];
    snprintf(sql, sizeof sql, "PRAGMA application_id = %d; PRAGMA user_version = %d;",
             FP_STORE_APPLICATION_ID, m->version);
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) return sql_fail(db, path, rc, what);
    /* The history table belongs to the runner, not to any one step. */
    rc = sqlite3_exec(db,
                      "CREATE TABLE IF NOT EXISTS schema_migrations("
                      "  version INTEGER PRIMARY KEY,"
                      "  name TEXT NOT NULL,"
                      "  applied_ms INTEGER NOT NULL"
                      ") STRICT",
                      NULL, NULL, NULL);
    if (rc != SQLITE_OK) return sql_fail(db, path, rc, what);
    sqlite3_stmt *ins = NULL;
    rc = sqlite3_prepare_v2(
        db, "INSERT INTO schema_migrations(version, name, applied_ms) VALUES (?, ?, ?)", -1, &ins,
        NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int(ins, 1, m->version);
        sqlite3_bind_text(ins, 2, m->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 3, fp_store_now_ms());
        rc = sqlite3_step(ins);
        if (rc == SQLITE_DONE) rc = SQLITE_OK;
    }
    sqlite3_finalize(ins);
    if (rc != SQLITE_OK) return sql_fail(db, path, rc, what);
    return FP_OK;
}

fp_status fp_store_check_version(sqlite3 *db, const char *path, int latest) {
    int64_t version = 0, app = 0;
    int rc = pragma_int(db, "user_version", &version);
    if (rc == SQLITE_OK) rc = pragma_int(db, "application_id", &app);
    if (rc != SQLITE_OK) return sql_fail(db, path, rc, "reading the schema version");
    if (app != 0 && app != FP_STORE_APPLICATION_ID)
        return fp_fail(FP_ERR_FORMAT, "%s: not a facepay database (application_id 0x%08llx)", path,
                       (unsigned long long)app);
    if (version > latest)
        return fp_fail(FP_ERR_UNSUPPORTED,
                       "%s: schema version %lld is newer than this build's %d; upgrade facepay",
                       path, (long long)version, latest);
    if (version == 0) {
        /* No schema version: the file must be empty, or it belongs to someone else. */
        sqlite3_stmt *st = NULL;
        rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_schema", -1, &st, NULL);
        int64_t n = 0;
        if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            n = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_OK) return sql_fail(db, path, rc, "reading the schema");
        if (n != 0 && app != FP_STORE_APPLICATION_ID)
            return fp_fail(FP_ERR_FORMAT,
                           "%s: not a facepay database (foreign tables, no schema version)", path);
    }
    return FP_OK;
}

fp_status fp_store_migrate(sqlite3 *db, const char *path, const fp_migration *list, int n) {
    if (!db || !path || !list || n < 1)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_store_migrate: no migrations");
    for (int i = 0; i < n; i++)
        if (list[i].version != i + 1)
            return fp_fail(FP_ERR_INTERNAL, "migration list: entry %d has version %d (want %d)", i,
                           list[i].version, i + 1);
    const int latest = list[n - 1].version;

    /* Cheap check outside a transaction first, so a too-new or foreign file is refused without
     * taking the write lock (or writing anything). */
    fp_status st = fp_store_check_version(db, path, latest);
    if (st != FP_OK) return st;
    int64_t version = 0;
    int rc = pragma_int(db, "user_version", &version);
    if (rc != SQLITE_OK) return sql_fail(db, path, rc, "reading the schema version");

    for (int i = (int)version; i < n; i++) {
        /* busy_timeout makes BEGIN IMMEDIATE wait for another writer. */
        rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc != SQLITE_OK) return sql_fail(db, path, rc, "starting a migration");
        st = apply_one(db, path, &list[i], latest);
        if (st == FP_OK) {
            rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
            if (rc != SQLITE_OK) st = sql_fail(db, path, rc, "committing a migration");
        }
        if (st != FP_OK) {
            if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return st;
        }
    }
    return FP_OK;
}
