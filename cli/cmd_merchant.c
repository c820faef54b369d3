/*
 * cmd_merchant.c - `facepay merchant`: the operator's side of merchants, terminals and API keys, on
 * the same SQLite file a running `facepay serve` uses (WAL: the server sees a new or revoked key on
 * its next request, since it reads keys from the DB on every request). Keys are shown once; the DB
 * keeps only their keyed hash, derived from the template key like the server's, so the same --key
 * FILE / FACEPAY_KEY must be given.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: facepay merchant add MERCHANT [--name NAME]            --db DB [--key FILE]\n"
    "       facepay merchant terminal MERCHANT TERMINAL [--name NAME] --db DB [--key FILE]\n"
    "       facepay merchant disable-terminal MERCHANT TERMINAL     --db DB [--key FILE]\n"
    "       facepay merchant issue-key MERCHANT [--scopes LIST (payments)] --db DB [--key FILE]\n"
    "       facepay merchant revoke-key KEY_ID                      --db DB [--key FILE]\n"
    "Scopes: payments (a till: sessions, payments, step-up, cancel, read a payment), refunds, customers\n"
    "(create, enrol, top up, read, delete), comma-separated, or all. A new key defaults to payments only:\n"
    "give each till its own key and the enrolment desk or back office the wider scopes.\n"
    "issue-key prints the key id, then the key itself on its own line (shown once, keep it secret).\n";

/* The key text must not linger on the stack; volatile so the stores are not optimised away. */
static void wipe(char *p, size_t n) {
    volatile char *v = p;
    while (n--) *v++ = 0;
}

int cmd_merchant(int argc, char **argv) {
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("%s", usage);
        return 0;
    }
    const char *db = NULL, *key_file = NULL, *name = NULL, *scopes_text = NULL, *pos[2] = {NULL, NULL};
    const char *verb = argc >= 2 ? argv[1] : NULL;
    int n_pos = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--db") && more) db = argv[++i];
        else if (!strcmp(a, "--key") && more) key_file = argv[++i];
        else if (!strcmp(a, "--name") && more) name = argv[++i];
        else if (!strcmp(a, "--scopes") && more) scopes_text = argv[++i];
        else if (a[0] != '-' && n_pos < 2) pos[n_pos++] = a;
        else {
            fprintf(stderr, "facepay merchant: unexpected argument '%s'\n%s", a, usage);
            return 2;
        }
    }
    int want = !verb                                                          ? -1
               : !strcmp(verb, "add") || !strcmp(verb, "issue-key") || !strcmp(verb, "revoke-key") ? 1
               : !strcmp(verb, "terminal") || !strcmp(verb, "disable-terminal")                    ? 2
                                                                                                   : -1;
    if (want < 0 || n_pos != want || (scopes_text && strcmp(verb, "issue-key")) ||
        (name && strcmp(verb, "add") && strcmp(verb, "terminal"))) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    unsigned scopes = FP_PAY_SCOPE_PAYMENTS;
    if (scopes_text && fp_pay_scopes_parse(scopes_text, &scopes)) {
        fprintf(stderr, "facepay merchant: --scopes: %s\n", fp_last_error());
        return 2;
    }
    fp_store *s = NULL;
    int rc = cli_open_store(db, key_file, &s);
    if (rc) return rc;
    fp_pay *pay = NULL;
    fp_pay_options po = fp_pay_options_default();
    fp_status st = fp_pay_open(s, &po, &pay);
    if (!st) {
        if (!strcmp(verb, "add")) {
            if (!(st = fp_pay_merchant_create(pay, pos[0], name ? name : pos[0]))) printf("merchant %s created\n", pos[0]);
        } else if (!strcmp(verb, "terminal")) {
            if (!(st = fp_pay_terminal_create(pay, pos[0], pos[1], name ? name : pos[1])))
                printf("terminal %s of merchant %s created\n", pos[1], pos[0]);
        } else if (!strcmp(verb, "disable-terminal")) {
            if (!(st = fp_pay_terminal_disable(pay, pos[0], pos[1])))
                printf("terminal %s of merchant %s disabled\n", pos[1], pos[0]);
        } else if (!strcmp(verb, "issue-key")) {
            char key[FP_PAY_KEY_LEN + 1], id[FP_PAY_KEY_ID_LEN + 1], sc[64];
            if (!(st = fp_pay_key_issue_scoped(pay, pos[0], scopes, key, id))) {
                fp_pay_scopes_format(scopes, sc, sizeof sc);
                printf("merchant %s: API key %s, scopes %s (shown once, keep it secret):\n%s\n", pos[0], id, sc, key);
            }
            wipe(key, sizeof key);
        } else {
            if (!(st = fp_pay_key_revoke(pay, pos[0]))) printf("API key %s revoked\n", pos[0]);
        }
    }
    if (st) rc = cli_error(verb, st);
    fp_pay_close(pay);
    fp_store_close(s);
    return rc;
}
