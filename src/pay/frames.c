/*
 * frames.c - the replay guard's memory of captured frames (table pay_frames_seen, schema 4): which
 * payment session first used a frame, by a hash of its pixels, for a day. It lives in the database,
 * not in the server's memory, so a frame set recorded before a crash or a restart is still refused
 * after it. It knows nothing of faces: a hash is 16 opaque bytes.
 */
#include <string.h>

#include "core/core.h"
#include "pay/pay.h"

typedef struct frames_ctx {
    const uint8_t (*hashes)[16];
    int n;
    const char *session;
    int64_t now, expires;
    int replayed;
} frames_ctx;

static fp_status frames_tx(fp_store *s, void *p) {
    frames_ctx *c = p;
    c->replayed = 0;
    sqlite3_stmt *del = NULL, *get = NULL, *put = NULL;
    fp_status res = fp_store_prepare(s, "DELETE FROM pay_frames_seen WHERE expires_ms <= ?", &del);
    if (res == FP_OK) {
        sqlite3_bind_int64(del, 1, c->now);
        res = fp_pay_step_done(s, del, "forgetting expired frames");
    }
    if (res == FP_OK) res = fp_store_prepare(s, "SELECT session FROM pay_frames_seen WHERE hash = ?", &get);
    if (res == FP_OK)
        res = fp_store_prepare(s, "INSERT INTO pay_frames_seen(hash, session, expires_ms) VALUES (?, ?, ?)", &put);
    for (int i = 0; i < c->n && res == FP_OK; i++) {
        sqlite3_reset(get);
        sqlite3_bind_blob(get, 1, c->hashes[i], 16, SQLITE_STATIC);
        int rc = sqlite3_step(get);
        if (rc == SQLITE_ROW) {
            const char *who = (const char *)sqlite3_column_text(get, 0);
            c->replayed |= !who || strcmp(who, c->session) != 0;
        } else if (rc == SQLITE_DONE) {
            sqlite3_reset(put);
            sqlite3_bind_blob(put, 1, c->hashes[i], 16, SQLITE_STATIC);
            sqlite3_bind_text(put, 2, c->session, -1, SQLITE_STATIC);
            sqlite3_bind_int64(put, 3, c->expires);
            rc = sqlite3_step(put);
            /* the same frame twice in one attempt is one row */
            if (rc != SQLITE_DONE && (rc & 0xff) != SQLITE_CONSTRAINT) res = fp_store_sqlfail(s, rc, "recording a frame");
        } else {
            res = fp_store_sqlfail(s, rc, "looking up a frame");
        }
    }
    sqlite3_finalize(get);
    sqlite3_finalize(put);
    return res;
}

fp_status fp_pay_frames_check(fp_pay *pay, const uint8_t (*hashes)[16], int n, const char *session,
                              int64_t ttl_ms, int *replayed) {
    if (replayed) *replayed = 0;
    if (!pay || !replayed || n < 0 || n > FP_PAY_MAX_FRAME_HASHES || (n > 0 && !hashes) || ttl_ms < 1)
        return fp_fail(FP_ERR_INVALID_ARG, "fp_pay_frames_check: bad arguments");
    fp_status st = fp_store_check_text("fp_pay_frames_check: session", session, 127);
    if (st == FP_OK && !session[0]) st = fp_fail(FP_ERR_INVALID_ARG, "fp_pay_frames_check: empty session");
    if (st != FP_OK) return st;
    int64_t now = fp_pay_now(pay);
    frames_ctx c = {hashes, n, session, now, now + ttl_ms, 0};
    st = fp_store_tx(pay->store, frames_tx, &c);
    if (st == FP_OK) *replayed = c.replayed;
    return st;
}
