/*
 * parse.c - request bodies: JSON (jansson, duplicate keys refused) and multipart/form-data
 * (RFC 7578, parsed on the complete, size-limited body), turned into one srv_form: the scalar
 * fields as a JSON object and the binary parts (JPEG frames with their optional times, or one
 * video) as blobs. JSON clients send frames as base64 strings (a data: URL prefix is accepted, so a
 * browser's canvas.toDataURL() can be posted as is).
 *
 * Why our own multipart parser: the body is already complete in memory (we need it whole for
 * the size limit and the idempotency hash), and a parser over one buffer is short enough to read
 * in full; libmicrohttpd's streaming post processor would add callbacks and copies for nothing.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "server/internal.h"

#define MAX_PARTS 512
#define MAX_PART_HEADERS 8192

/* ---- multipart ---- */

/* memmem is a GNU extension; the build is plain POSIX, and bodies are at most max_body bytes. */
static const uint8_t *find(const uint8_t *hay, size_t n, const void *needle, size_t m) {
    if (m == 0 || n < m) return NULL;
    const uint8_t *nd = needle;
    for (const uint8_t *p = hay, *last = hay + (n - m); p <= last; p++) {
        p = memchr(p, nd[0], (size_t)(last - p) + 1);
        if (!p) return NULL;
        if (!memcmp(p, nd, m)) return p;
    }
    return NULL;
}

/* Copies at most cap-1 bytes and terminates (deliberate truncation of over-long header values). */
static void copy_trunc(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* Value of parameter `param` in a header value like `form-data; name="a"; filename="b"`. */
static int header_param(const char *v, const char *param, char *out, size_t cap) {
    size_t pl = strlen(param);
    const char *p = v;
    while ((p = strchr(p, ';'))) {
        p++;
        while (*p == ' ' || *p == '\t') p++;
        if (strncasecmp(p, param, pl) || p[pl] != '=') continue;
        p += pl + 1;
        size_t n = 0;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1]) p++;
                if (n + 1 < cap) out[n++] = *p;
                p++;
            }
        } else {
            while (*p && *p != ';' && *p != ' ' && *p != '\t') {
                if (n + 1 < cap) out[n++] = *p;
                p++;
            }
        }
        out[n] = 0;
        return 1;
    }
    return 0;
}

int srv_multipart_parse(const char *content_type, const uint8_t *body, size_t len, srv_part *parts,
                        int cap, int *n, char *err, size_t err_cap) {
    *n = 0;
    char boundary[80];
    if (!header_param(content_type, "boundary", boundary, sizeof boundary) || !boundary[0] ||
        strlen(boundary) > 70) {
        snprintf(err, err_cap, "multipart/form-data without a valid boundary parameter");
        return -1;
    }
    char delim[84];
    int dl = snprintf(delim, sizeof delim, "\r\n--%s", boundary);
    /* the first delimiter may come without the leading CRLF (no preamble) */
    const uint8_t *p, *end = body + len;
    if (len >= (size_t)dl - 2 && !memcmp(body, delim + 2, (size_t)dl - 2)) p = body + dl - 2;
    else {
        p = find(body, len, delim, (size_t)dl);
        if (!p) {
            snprintf(err, err_cap, "multipart body without its boundary");
            return -1;
        }
        p += dl;
    }
    for (;;) {
        /* after a delimiter: "--" closes the body, else (transport padding) CRLF starts a part */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') return 0;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            snprintf(err, err_cap, "multipart body truncated or malformed after a boundary");
            return -1;
        }
        p += 2;
        const uint8_t *hend = find(p, (size_t)(end - p), "\r\n\r\n", 4);
        const uint8_t *hstart = p;
        if (p + 2 <= end && p[0] == '\r' && p[1] == '\n') hend = p - 2; /* a part without headers */
        if (!hend || hend - hstart > MAX_PART_HEADERS) {
            snprintf(err, err_cap, "multipart part headers missing or too long");
            return -1;
        }
        if (*n >= cap) {
            snprintf(err, err_cap, "more than %d multipart parts", cap);
            return -2;
        }
        srv_part *pt = &parts[*n];
        memset(pt, 0, sizeof *pt);
        /* headers: one per line */
        for (const uint8_t *l = hstart; l < hend;) {
            const uint8_t *le = find(l, (size_t)(hend - l), "\r\n", 2);
            if (!le) le = hend;
            char line[1024];
            size_t ll = (size_t)(le - l) < sizeof line - 1 ? (size_t)(le - l) : sizeof line - 1;
            memcpy(line, l, ll);
            line[ll] = 0;
            if (!strncasecmp(line, "Content-Disposition:", 20)) {
                if (!header_param(line + 20, "name", pt->name, sizeof pt->name)) {
                    snprintf(err, err_cap, "multipart part without a name");
                    return -1;
                }
                header_param(line + 20, "filename", pt->filename, sizeof pt->filename);
            } else if (!strncasecmp(line, "Content-Type:", 13)) {
                const char *v = line + 13;
                while (*v == ' ' || *v == '\t') v++;
                copy_trunc(pt->content_type, sizeof pt->content_type, v);
            }
            l = le + 2;
        }
        if (!pt->name[0]) {
            snprintf(err, err_cap, "multipart part without Content-Disposition name");
            return -1;
        }
        const uint8_t *data = hend + 4;
        if (data > end) {
            snprintf(err, err_cap, "multipart part truncated");
            return -1;
        }
        const uint8_t *next = find(data, (size_t)(end - data), delim, (size_t)dl);
        if (!next) {
            snprintf(err, err_cap, "multipart body not closed by its boundary");
            return -1;
        }
        pt->data = data;
        pt->len = (size_t)(next - data);
        (*n)++;
        p = next + dl;
    }
}

/* ---- base64 ---- */

static int b64_decode(const char *s, size_t n, srv_blob *out) {
    /* data:image/jpeg;base64,.... */
    if (n > 5 && !strncmp(s, "data:", 5)) {
        const char *comma = memchr(s, ',', n);
        if (!comma) return -1;
        n -= (size_t)(comma + 1 - s);
        s = comma + 1;
    }
    size_t cap = n / 4 * 3 + 3;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) return -1;
    static const int variants[] = {sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
                                   sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        size_t bl = 0;
        const char *e = NULL;
        if (sodium_base642bin(buf, cap, s, n, " \r\n\t", &bl, &e, variants[v]) == 0 && e == s + n && bl > 0) {
            out->data = buf;
            out->len = bl;
            out->owned = 1;
            return 0;
        }
    }
    free(buf);
    return -1;
}

/* ---- forms ---- */

void srv_form_free(srv_form *f) {
    json_decref(f->fields);
    for (int i = 0; i < f->n_frames; i++)
        if (f->frames[i].owned) free(f->frames[i].data);
    free(f->frames);
    if (f->video.owned) free(f->video.data);
    memset(f, 0, sizeof *f);
}

/* Strict decimal integer (optional '-') filling the whole string. */
static int parse_int(const char *s, int64_t *out) {
    if (!*s) return 0;
    const char *p = s;
    if (*p == '-') p++;
    if (!*p) return 0;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q)) return 0;
    errno = 0;
    char *e;
    long long v = strtoll(s, &e, 10);
    if (errno || *e) return 0;
    *out = v;
    return 1;
}

static int parse_ms(const char *s, double *out) {
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (errno || e == s || *e || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

static int parse_multipart(srv_req *rq, const char *ctype, srv_form *f, int max_frames, srv_resp *r) {
    srv_part *parts = malloc(sizeof *parts * MAX_PARTS);
    if (!parts) {
        srv_error(r, 503, "out_of_memory", NULL, "out of memory");
        return 0;
    }
    int n = 0, ok = 0;
    char err[160];
    int rc = srv_multipart_parse(ctype, (const uint8_t *)rq->body, rq->len, parts, MAX_PARTS, &n, err, sizeof err);
    if (rc == -2) {
        srv_error(r, 413, "too_many_parts", NULL, "%s", err);
        goto out;
    }
    if (rc) {
        srv_error(r, 400, "malformed_multipart", NULL, "%s", err);
        goto out;
    }
    f->fields = json_object();
    f->frames = calloc((size_t)n + 1, sizeof *f->frames);
    double *t = malloc(sizeof(double) * ((size_t)n + 1));
    int n_t = 0;
    if (!f->fields || !f->frames || !t) {
        free(t);
        srv_error(r, 503, "out_of_memory", NULL, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        srv_part *pt = &parts[i];
        if (!strcmp(pt->name, "frame")) {
            if (f->n_frames >= max_frames) {
                free(t);
                srv_error(r, 413, "too_many_frames", NULL, "more than %d frames in one request", max_frames);
                goto out;
            }
            f->frames[f->n_frames].data = (uint8_t *)pt->data; /* points into rq->body */
            f->frames[f->n_frames].len = pt->len;
            f->frames[f->n_frames].t_ms = NAN;
            f->n_frames++;
        } else if (!strcmp(pt->name, "video")) {
            if (f->video.len) {
                free(t);
                srv_error(r, 400, "invalid_request", NULL, "only one video part is allowed");
                goto out;
            }
            f->video.data = (uint8_t *)pt->data;
            f->video.len = pt->len;
        } else if (!strcmp(pt->name, "t_ms")) {
            char buf[64];
            size_t l = pt->len < sizeof buf - 1 ? pt->len : sizeof buf - 1;
            memcpy(buf, pt->data, l);
            buf[l] = 0;
            if (pt->len >= sizeof buf || !parse_ms(buf, &t[n_t])) {
                free(t);
                srv_error(r, 400, "invalid_t_ms", NULL, "t_ms must be a number of milliseconds");
                goto out;
            }
            n_t++;
        } else {
            if (pt->len > 4096 || memchr(pt->data, 0, pt->len)) {
                free(t);
                srv_error(r, 400, "invalid_field", NULL, "field '%s' is not short text", pt->name);
                goto out;
            }
            json_t *v = json_stringn((const char *)pt->data, pt->len);
            if (!v) {
                free(t);
                srv_error(r, 400, "invalid_field", NULL, "field '%s' is not UTF-8 text", pt->name);
                goto out;
            }
            if (json_object_get(f->fields, pt->name)) {
                json_decref(v);
                free(t);
                srv_error(r, 400, "invalid_field", NULL, "field '%s' is repeated", pt->name);
                goto out;
            }
            json_object_set_new(f->fields, pt->name, v);
        }
    }
    if (n_t && n_t != f->n_frames) {
        free(t);
        srv_error(r, 400, "invalid_t_ms", NULL, "%d t_ms fields for %d frames: give one per frame or none", n_t,
                  f->n_frames);
        goto out;
    }
    for (int i = 0; i < n_t; i++) f->frames[i].t_ms = t[i];
    free(t);
    f->multipart = 1;
    ok = 1;
out:
    free(parts);
    return ok;
}

static int parse_json(srv_req *rq, srv_form *f, int max_frames, srv_resp *r) {
    json_error_t je;
    json_t *j = rq->len ? json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &je) : json_object();
    if (!j) {
        srv_error(r, 400, "malformed_json", NULL, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
        return 0;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        srv_error(r, 400, "malformed_json", NULL, "the body must be a JSON object");
        return 0;
    }
    f->fields = j;
    json_t *frames = json_object_get(j, "frames");
    if (frames) {
        if (!json_is_array(frames)) {
            srv_error(r, 400, "invalid_frames", NULL, "frames must be an array");
            return 0;
        }
        size_t n = json_array_size(frames);
        if (n > (size_t)max_frames) {
            srv_error(r, 413, "too_many_frames", NULL, "more than %d frames in one request", max_frames);
            return 0;
        }
        f->frames = calloc(n + 1, sizeof *f->frames);
        if (!f->frames) {
            srv_error(r, 503, "out_of_memory", NULL, "out of memory");
            return 0;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *it = json_array_get(frames, i), *data = it, *t = NULL;
            if (json_is_object(it)) {
                data = json_object_get(it, "jpeg");
                if (!data) data = json_object_get(it, "data");
                t = json_object_get(it, "t_ms");
            }
            srv_blob *b = &f->frames[f->n_frames];
            b->t_ms = NAN;
            if (!json_is_string(data) || b64_decode(json_string_value(data), json_string_length(data), b)) {
                srv_error(r, 400, "invalid_frames", NULL, "frame %zu: expected base64 JPEG data (a string, or {\"jpeg\":...})", i);
                return 0;
            }
            f->n_frames++;
            if (t) {
                if (!json_is_number(t) || !isfinite(json_number_value(t))) {
                    srv_error(r, 400, "invalid_t_ms", NULL, "frame %zu: t_ms must be a number", i);
                    return 0;
                }
                b->t_ms = json_number_value(t);
            }
        }
        /* t_ms is all or nothing, like in multipart bodies */
        int with_t = 0;
        for (int i = 0; i < f->n_frames; i++) with_t += !isnan(f->frames[i].t_ms);
        if (with_t && with_t != f->n_frames) {
            srv_error(r, 400, "invalid_t_ms", NULL, "give t_ms for every frame or for none");
            return 0;
        }
    }
    json_t *video = json_object_get(j, "video");
    if (video && (!json_is_string(video) || b64_decode(json_string_value(video), json_string_length(video), &f->video))) {
        srv_error(r, 400, "invalid_video", NULL, "video must be base64 data");
        return 0;
    }
    return 1;
}

int srv_form_parse(srv_req *rq, srv_form *f, int max_frames, srv_resp *r) {
    memset(f, 0, sizeof *f);
    const char *ct = srv_header(rq, MHD_HTTP_HEADER_CONTENT_TYPE);
    int ok;
    if (!ct || !rq->len) {
        if (rq->len && !ct) {
            srv_error(r, 415, "unsupported_media_type", NULL,
                      "Content-Type must be application/json or multipart/form-data");
            return 0;
        }
        ok = parse_json(rq, f, max_frames, r);
    } else if (!strncasecmp(ct, "application/json", 16)) {
        ok = parse_json(rq, f, max_frames, r);
    } else if (!strncasecmp(ct, "multipart/form-data", 19)) {
        ok = parse_multipart(rq, ct, f, max_frames, r);
    } else {
        srv_error(r, 415, "unsupported_media_type", NULL, "Content-Type must be application/json or multipart/form-data");
        return 0;
    }
    if (!ok) srv_form_free(f);
    return ok;
}

int srv_field_str(const srv_form *f, const char *name, const char **out, srv_resp *r) {
    json_t *v = json_object_get(f->fields, name);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v) || memchr(json_string_value(v), 0, json_string_length(v))) {
        srv_error(r, 400, "invalid_field", NULL, "%s must be a string", name);
        return -1;
    }
    *out = json_string_value(v);
    return 1;
}

int srv_field_int(const srv_form *f, const char *name, int64_t *out, srv_resp *r) {
    json_t *v = json_object_get(f->fields, name);
    if (!v || json_is_null(v)) return 0;
    /* money is an integer of minor units: JSON numbers with a fraction or an exponent are refused,
     * and only multipart (where everything is text) may spell it as a string */
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 1;
    }
    if (f->multipart && json_is_string(v) && parse_int(json_string_value(v), out)) return 1;
    srv_error(r, 400, "invalid_field", NULL, "%s must be an integer", name);
    return -1;
}
