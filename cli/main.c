/*
 * main.c - entry point of the `facepay` command: dispatches git-style subcommands.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#ifndef FP_SOURCE_DIR
#define FP_SOURCE_DIR "."
#endif

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"models", cmd_models, "list the models (source, licence, size, sha256, MACs) or verify them"},
    {"analyze", cmd_analyze, "find and analyse faces: box, landmarks, pose, quality, liveness cues, embedding"},
    {"key", cmd_key, "generate the key that encrypts face templates at rest"},
    {"enroll", cmd_enroll, "enrol a user from photos, a video or a camera (automatic capture)"},
    {"identify", cmd_identify, "identify the person in photos/video frames (1:N, voting, blink)"},
    {"user", cmd_user, "list users or delete one (templates erased)"},
    {"liveness", cmd_liveness, "active liveness: a challenge (blink, turn) checked over video frames"},
    {"audit", cmd_audit, "verify the hash-chained evidence records and the ledger"},
    {"eval", cmd_eval, "accuracy: verify (LFW protocol, ROC/DET), identify (1:N), calibrate, liveness"},
    {"train", cmd_train, "train the passive liveness (presentation-attack) detector on your own captures"},
    {"serve", cmd_serve, "run the HTTP payment service (API, health, metrics, kiosk page)"},
    {"merchant", cmd_merchant, "merchants, terminals and API keys (issue with scopes, revoke)"},
    {"demo", cmd_demo, "scripted terminal story: enrol, top up, pay, refund, impostor refused"},
    {"bench", cmd_bench, "per-model latency: median of N runs, batch 1/20, 1 and 2 threads"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: facepay <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "  %-10s %s\n", "version", "print the version and the kernel set in use");
    fprintf(f, "\nRun 'facepay <command> --help' for a command's options.\n");
}

int cli_error(const char *what, fp_status st) {
    fprintf(stderr, "facepay: %s: %s: %s\n", what, fp_strerror(st), fp_last_error());
    return 1;
}

const char *cli_manifest_path(void) {
    const char *m = getenv("FACEPAY_MANIFEST");
    return m && *m ? m : FP_SOURCE_DIR "/models/manifest";
}

double cli_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("facepay %s\n", fp_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "facepay: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
