/*
 * cmd_models.c - `facepay models [list|verify] [--json]`: what models the engine uses, where they
 * come from (package, upstream, licence), their size, sha256 and MACs, and a verification that
 * every pinned file in the cache matches models/manifest and loads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli.h"

typedef struct row {
    char kind[16], name[64], file[128], sha[80], package[96], path[160], licence[96], source[256];
} row;

static int read_manifest(row **rows, int *n) {
    const char *path = cli_manifest_path();
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "facepay: cannot open manifest %s (set FACEPAY_MANIFEST)\n", path);
        return -1;
    }
    char line[2048];
    int cap = 0;
    *rows = NULL;
    *n = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, "\r\n")] = 0;
        char *col[10] = {0};
        int c = 0;
        for (char *p = line; c < 10;) {
            col[c++] = p;
            char *t = strchr(p, '\t');
            if (!t) break;
            *t = 0;
            p = t + 1;
        }
        if (c < 10) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 32;
            row *r = realloc(*rows, sizeof(row) * (size_t)cap);
            if (!r) { fclose(f); return -1; }
            *rows = r;
        }
        row *r = &(*rows)[(*n)++];
        snprintf(r->kind, sizeof r->kind, "%s", col[0]);
        snprintf(r->name, sizeof r->name, "%s", col[1]);
        snprintf(r->file, sizeof r->file, "%s", col[2]);
        snprintf(r->sha, sizeof r->sha, "%s", col[3]);
        snprintf(r->package, sizeof r->package, "%s", col[4]);
        snprintf(r->path, sizeof r->path, "%s", col[5]);
        snprintf(r->licence, sizeof r->licence, "%s", col[8]);
        snprintf(r->source, sizeof r->source, "%s", col[9]);
    }
    fclose(f);
    return 0;
}

static void file_path(const row *r, char *out, size_t n) {
    if (!strcmp(r->kind, "model")) snprintf(out, n, "%s/%s", fp_model_dir(), r->file);
    else snprintf(out, n, "%s/../fixtures/%s", fp_model_dir(), r->file);
}

/* the loadable file of a model: the .tflite or the .json (the .bin shards belong to it) */
static int is_entry(const row *r) {
    size_t l = strlen(r->file);
    return !strcmp(r->kind, "model") && l > 5 &&
           (!strcmp(r->file + l - 7, ".tflite") || !strcmp(r->file + l - 5, ".json"));
}

static int64_t model_bytes(const row *rows, int n, const row *r) {
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(rows[i].kind, "model") || strcmp(rows[i].name, r->name)) continue;
        char p[4096];
        struct stat st;
        file_path(&rows[i], p, sizeof p);
        if (stat(p, &st) == 0) total += st.st_size;
    }
    return total;
}

int cmd_models(int argc, char **argv) {
    int verify = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "verify")) verify = 1;
        else if (!strcmp(argv[i], "list")) verify = 0;
        else if (!strcmp(argv[i], "--json")) json = 1;
        else {
            printf("usage: facepay models [list|verify] [--json]\n"
                   "  list    (default) models with package, upstream source, licence, size, sha256, MACs\n"
                   "  verify  check every model and fixture file against models/manifest and load each model\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    row *rows;
    int n;
    if (read_manifest(&rows, &n)) return 1;
    int bad = 0;
    if (verify) {
        for (int i = 0; i < n; i++) {
            char p[4096], hex[65];
            file_path(&rows[i], p, sizeof p);
            fp_status st = fp_file_sha256(p, hex);
            if (st) {
                fprintf(stderr, "MISSING  %s (%s): run scripts/setup.sh\n", rows[i].file, fp_last_error());
                bad++;
            } else if (strcmp(hex, rows[i].sha)) {
                fprintf(stderr, "MISMATCH %s: sha256 %s, manifest pins %s\n", rows[i].file, hex, rows[i].sha);
                bad++;
            } else if (!json) {
                printf("ok       %-8s %s\n", rows[i].kind, rows[i].file);
            }
        }
    }
    json_t *arr = json_array();
    if (!json)
        printf("%-26s %-7s %9s %8s %8s  %-12s %-44s %s\n", "model", "format", "size", "MMACs", "params",
               "sha256", "package", "licence / upstream");
    for (int i = 0; i < n; i++) {
        if (!is_entry(&rows[i])) continue;
        char p[4096];
        file_path(&rows[i], p, sizeof p);
        fp_model *m = NULL;
        fp_model_info info = {0};
        double t0 = cli_now_ms();
        fp_status st = fp_model_load(p, &m);
        double load_ms = cli_now_ms() - t0;
        if (!st) fp_model_get_info(m, &info);
        else if (verify) {
            fprintf(stderr, "LOAD     %s: %s: %s\n", rows[i].file, fp_strerror(st), fp_last_error());
            bad++;
        }
        int64_t bytes = model_bytes(rows, n, &rows[i]);
        if (json) {
            json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:s}", "name", rows[i].name, "file", rows[i].file,
                                  "package", rows[i].package, "licence", rows[i].licence, "source",
                                  rows[i].source, "sha256", rows[i].sha, "bytes", (json_int_t)bytes, "status",
                                  st ? fp_strerror(st) : "ok");
            if (!st) {
                json_object_set_new(o, "format", json_string(info.format));
                json_object_set_new(o, "macs", json_integer(info.macs));
                json_object_set_new(o, "params", json_integer(info.n_params));
                json_object_set_new(o, "ops", json_integer(info.n_ops));
                json_object_set_new(o, "load_ms", json_real(load_ms));
            }
            json_array_append_new(arr, o);
        } else {
            char mm[32] = "-", pp[32] = "-";
            if (!st) {
                snprintf(mm, sizeof mm, "%.1f", info.macs / 1e6);
                snprintf(pp, sizeof pp, "%.2fM", info.n_params / 1e6);
            }
            printf("%-26s %-7s %8.2fM %8s %8s  %.12s %-44s %s / %s%s\n", rows[i].name, st ? "-" : info.format,
                   bytes / 1048576.0, mm, pp, rows[i].sha, rows[i].package, rows[i].licence, rows[i].source,
                   st ? "  [does not load: see 'facepay models verify']" : "");
        }
        fp_model_free(m);
    }
    if (json) {
        json_t *root = json_pack("{s:o,s:b}", "models", arr, "verified", verify ? bad == 0 : 0);
        char *s = json_dumps(root, JSON_INDENT(2));
        puts(s);
        free(s);
        json_decref(root);
    } else {
        json_decref(arr);
    }
    free(rows);
    if (verify) {
        if (bad) fprintf(stderr, "facepay: models verify: %d problem(s)\n", bad);
        else if (!json) printf("all %d files match models/manifest and every model loads\n", n);
    }
    return bad ? 1 : 0;
}
