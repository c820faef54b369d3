/*
 * cli.h - shared declarations of the `facepay` command: one function per subcommand (git style),
 * plus the few helpers they share. Subcommands use only the public API in facepay.h.
 */
#ifndef FP_CLI_H
#define FP_CLI_H

#include "facepay.h"

int cmd_models(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_enroll(int argc, char **argv);
int cmd_identify(int argc, char **argv);
int cmd_user(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_liveness(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_merchant(int argc, char **argv);

/* Prints "facepay: <what>: <status>: <detail>" to stderr and returns 1. */
int cli_error(const char *what, fp_status st);

/* Path of the model manifest: $FACEPAY_MANIFEST, else the source tree's models/manifest. */
const char *cli_manifest_path(void);

/* Opens the store DB with the template key from key_file (NULL: $FACEPAY_KEY); 0, or the exit code
 * after printing the error (2 when db is NULL). */
int cli_open_store(const char *db, const char *key_file, fp_store **s);

/* Current monotonic time in milliseconds. */
double cli_now_ms(void);

#endif
