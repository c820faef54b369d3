/*
 * cmd_serve.c - `facepay serve`: runs the HTTP payment service (src/server/) until SIGINT or
 * SIGTERM. Prints the URL it listens on; --bootstrap creates a merchant and a terminal if needed
 * and issues an API key for them (printed once), so a fresh database can take payments at once.
 * The key has every scope unless --scopes says otherwise: the kiosk pages of web/ enrol, top up
 * and pay with one key, which is right for a demo and wrong for a till in a shop (--scopes payments).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "../src/server/server.h" /* the CLI sees only include/; the server API is internal */

#ifndef FP_SOURCE_DIR
#define FP_SOURCE_DIR "."
#endif

static const char usage[] =
    "usage: facepay serve --db DB [--port 8080] [--bind ADDR (0.0.0.0)] [--key FILE] [--web DIR]\n"
    "                     [--threads N (2)] [--calibration FILE] [--max-frames N (200)] [--max-body MB (16)]\n"
    "                     [--session-ttl S (60)] [--bootstrap MERCHANT[:TERMINAL]] [--scopes LIST (all)]\n"
    "                     [--quiet] [--insecure-test-challenges]\n"
    "Serves the payment API (/v1/..., see api/openapi.yaml), /healthz, /metrics, and the kiosk page from\n"
    "--web DIR (default: the source tree's web/). --threads is the number of face-analysis workers.\n"
    "The template key comes from --key FILE or FACEPAY_KEY (create one with `facepay key generate FILE`).\n"
    "--bootstrap shop1:till1 creates merchant shop1 and terminal till1 when missing and prints a new API key.\n"
    "--scopes sets what that key may do: payments (sessions, payments, step-up, cancel, read a payment),\n"
    "refunds, customers (create, enrol, top up, read, delete), comma-separated, or all (the default: the\n"
    "kiosk pages enrol, top up and pay with one key). A till in a shop needs only payments.\n"
    "--insecure-test-challenges lets clients choose the liveness challenge (\"none\" included): tests only,\n"
    "never in production (anyone with an API key could then pay with a photo).\n";

static int bootstrap(fp_server *srv, const char *spec, unsigned scopes) {
    char merchant[128], terminal[128] = "till-1";
    snprintf(merchant, sizeof merchant, "%s", spec);
    char *colon = strchr(merchant, ':');
    if (colon) {
        *colon = 0;
        snprintf(terminal, sizeof terminal, "%s", colon + 1);
    }
    fp_pay *pay = fp_server_pay(srv);
    /* an existing merchant or terminal is fine: creation then fails with "exists", which we ignore
     * after checking that the key can still be issued */
    fp_pay_merchant_create(pay, merchant, merchant);
    fp_pay_terminal_create(pay, merchant, terminal, terminal);
    char key[FP_PAY_KEY_LEN + 1], key_id[FP_PAY_KEY_ID_LEN + 1];
    fp_status st = fp_pay_key_issue_scoped(pay, merchant, scopes, key, key_id);
    if (st) return cli_error("issuing an API key", st);
    char names[64];
    fp_pay_scopes_format(scopes, names, sizeof names);
    printf("merchant %s, terminal %s: new API key %s, scopes %s (shown once, keep it secret):\n  %s\n", merchant,
           terminal, key_id, names, key);
    return 0;
}

int cmd_serve(int argc, char **argv) {
    fp_server_options o = fp_server_options_default();
    o.web_dir = FP_SOURCE_DIR "/web";
    const char *calib = getenv("FACEPAY_CALIBRATION");
    o.calibration = calib && *calib ? calib : FP_SOURCE_DIR "/config/calibration.json";
    const char *boot = NULL, *scopes_text = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--db") && more) o.db_path = argv[++i];
        else if (!strcmp(a, "--port") && more) o.port = atoi(argv[++i]);
        else if (!strcmp(a, "--bind") && more) o.bind = argv[++i];
        else if (!strcmp(a, "--key") && more) o.key_file = argv[++i];
        else if (!strcmp(a, "--web") && more) o.web_dir = argv[++i];
        else if (!strcmp(a, "--threads") && more) o.workers = atoi(argv[++i]);
        else if (!strcmp(a, "--calibration") && more) o.calibration = argv[++i];
        else if (!strcmp(a, "--max-frames") && more) o.max_frames = atoi(argv[++i]);
        else if (!strcmp(a, "--max-body") && more) o.max_body = (size_t)atol(argv[++i]) << 20;
        else if (!strcmp(a, "--session-ttl") && more) o.session_ttl_s = atoi(argv[++i]);
        else if (!strcmp(a, "--bootstrap") && more) boot = argv[++i];
        else if (!strcmp(a, "--scopes") && more) scopes_text = argv[++i];
        else if (!strcmp(a, "--quiet")) o.quiet = 1;
        else if (!strcmp(a, "--insecure-test-challenges")) o.insecure_test_challenges = 1;
        else {
            printf("%s", usage);
            return strcmp(a, "--help") ? 2 : 0;
        }
    }
    if (!o.db_path) {
        fprintf(stderr, "facepay serve: --db DB is required\n%s", usage);
        return 2;
    }
    unsigned scopes = FP_PAY_SCOPE_ALL;
    if (scopes_text && !boot) {
        fprintf(stderr, "facepay serve: --scopes applies to the key of --bootstrap\n%s", usage);
        return 2;
    }
    if (scopes_text && fp_pay_scopes_parse(scopes_text, &scopes)) {
        fprintf(stderr, "facepay serve: --scopes: %s\n", fp_last_error());
        return 2;
    }
    /* Signals are taken by sigwait in this thread: block them before any thread starts so the
     * server's threads inherit the mask. SIGPIPE: a client closing mid-response is not fatal. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    fp_server *srv = NULL;
    fp_status st = fp_server_start(&o, &srv);
    if (st) return cli_error("serve", st);
    if (boot && bootstrap(srv, boot, scopes)) {
        fp_server_stop(srv);
        return 1;
    }
    const char *host = !strcmp(o.bind, "0.0.0.0") ? "127.0.0.1" : o.bind;
    int port = fp_server_port(srv);
    if (o.insecure_test_challenges)
        fprintf(stderr, "facepay serve: WARNING: --insecure-test-challenges: clients may skip active liveness\n");
    printf("facepay serve: listening on http://%s:%d/ (bound to %s; %d workers, gallery %lld users)\n", host, port, o.bind,
           o.workers, (long long)fp_gallery_size(fp_server_gallery(srv)));
    printf("  kiosk page: http://%s:%d/%s%s%s   API: http://%s:%d/v1/   health: http://%s:%d/healthz\n", host, port,
           access(o.web_dir, R_OK) ? " (no web folder at " : "", access(o.web_dir, R_OK) ? o.web_dir : "",
           access(o.web_dir, R_OK) ? ")" : "", host, port, host, port);
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "facepay serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    fp_server_stop(srv);
    return 0;
}
