/*
 * client.c - the minimal HTTP/1.1 client and multipart builder of client.h (used by the demo and
 * the HTTP bench). Responses are read by Content-Length (or to the end of the connection when
 * the server closes it); a connection the server closed is reopened before the next request.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <sodium.h>

#include "server/client.h"

struct http_client {
    char host[64];
    int port;
    int fd;
    char err[160];
    char *rbuf; /* bytes read past the last response */
    size_t rlen, rcap;
};

static int fail(http_client *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->rlen = 0;
    return -1;
}

static int do_connect(http_client *c) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)c->port);
    if (inet_pton(AF_INET, c->host, &sa.sin_addr) != 1) return fail(c, "bad address %s", c->host);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) return fail(c, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa)) return fail(c, "connect %s:%d: %s", c->host, c->port, strerror(errno));
    c->rlen = 0;
    return 0;
}

int http_client_open(const char *host, int port, http_client **out) {
    http_client *c = calloc(1, sizeof *c);
    if (!c) return -1;
    snprintf(c->host, sizeof c->host, "%s", host);
    c->port = port;
    c->fd = -1;
    if (do_connect(c)) {
        free(c);
        return -1;
    }
    *out = c;
    return 0;
}

void http_client_close(http_client *c) {
    if (!c) return;
    if (c->fd >= 0) close(c->fd);
    free(c->rbuf);
    free(c);
}

const char *http_client_error(const http_client *c) { return c->err; }

void http_response_free(http_response *r) {
    free(r->body);
    memset(r, 0, sizeof *r);
}

static int send_all(int fd, const void *p, size_t n) {
    const char *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads more bytes into rbuf; 0 on EOF, -1 on error, else the count. */
static ssize_t fill(http_client *c) {
    if (c->rcap - c->rlen < 65536) {
        size_t cap = c->rcap ? c->rcap * 2 : 131072;
        char *p = realloc(c->rbuf, cap);
        if (!p) return -1;
        c->rbuf = p;
        c->rcap = cap;
    }
    for (;;) {
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen - 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n > 0) c->rlen += (size_t)n;
        return n;
    }
}

static char *find_crlf2(char *p, size_t n) {
    for (size_t i = 0; i + 3 < n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') return p + i;
    return NULL;
}

int http_client_request(http_client *c, const char *method, const char *path, const char *headers,
                        const char *content_type, const void *body, size_t len, http_response *out) {
    memset(out, 0, sizeof *out);
    if (c->fd < 0 && do_connect(c)) return -1;
    char head[4096];
    int hn = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n%s", method, path, c->host, c->port,
                      headers ? headers : "");
    if (content_type)
        hn += snprintf(head + hn, sizeof head - (size_t)hn, "Content-Type: %s\r\nContent-Length: %zu\r\n", content_type, len);
    else if (strcmp(method, "GET") && strcmp(method, "HEAD") && strcmp(method, "DELETE"))
        hn += snprintf(head + hn, sizeof head - (size_t)hn, "Content-Length: 0\r\n");
    if (hn + 3 >= (int)sizeof head) return fail(c, "request headers too long");
    hn += snprintf(head + hn, sizeof head - (size_t)hn, "\r\n");
    /* a keep-alive connection may have been closed by the server since: one reconnect */
    if (send_all(c->fd, head, (size_t)hn) || (len && send_all(c->fd, body, len))) {
        if (do_connect(c) || send_all(c->fd, head, (size_t)hn) || (len && send_all(c->fd, body, len)))
            return fail(c, "send: %s", strerror(errno));
    }
    char *hend;
    while (!(hend = find_crlf2(c->rbuf ? c->rbuf : (char *)"", c->rlen))) {
        ssize_t n = fill(c);
        if (n == 0) return fail(c, "connection closed before the response");
        if (n < 0) return fail(c, "recv: %s", strerror(errno));
    }
    size_t hlen = (size_t)(hend - c->rbuf) + 4;
    c->rbuf[hlen - 2] = 0;
    if (sscanf(c->rbuf, "HTTP/1.%*d %d", &out->status) != 1) return fail(c, "malformed status line");
    long long clen = -1;
    int close_after = 0;
    for (char *l = strstr(c->rbuf, "\r\n"); l && l[2];) {
        l += 2;
        char *e = strstr(l, "\r\n");
        if (e) *e = 0; /* one header line at a time */
        if (!strncasecmp(l, "Content-Length:", 15)) clen = atoll(l + 15);
        else if (!strncasecmp(l, "Connection:", 11) && strstr(l + 11, "close")) close_after = 1;
        else if (!strncasecmp(l, "Idempotent-Replayed:", 20)) out->idempotent_replayed = strstr(l + 20, "true") != NULL;
        if (!e) break;
        l = e;
        *l = '\r';
    }
    int head_only = !strcmp(method, "HEAD") || out->status == 204 || out->status == 304;
    if (head_only) clen = 0;
    if (clen < 0) {
        /* no length: the body runs to the end of the connection */
        for (ssize_t n; (n = fill(c)) > 0;) {
        }
        clen = (long long)(c->rlen - hlen);
        close_after = 1;
    }
    while (c->rlen < hlen + (size_t)clen) {
        ssize_t n = fill(c);
        if (n <= 0) return fail(c, "connection closed in the response body");
    }
    out->body = malloc((size_t)clen + 1);
    if (!out->body) return fail(c, "out of memory");
    memcpy(out->body, c->rbuf + hlen, (size_t)clen);
    out->body[clen] = 0;
    out->len = (size_t)clen;
    size_t used = hlen + (size_t)clen;
    memmove(c->rbuf, c->rbuf + used, c->rlen - used);
    c->rlen -= used;
    if (close_after) {
        close(c->fd);
        c->fd = -1;
        c->rlen = 0;
    }
    return 0;
}

/* ---- multipart ---- */

static void mp_put(http_multipart *m, const void *p, size_t n) {
    if (m->oom) return;
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap : 65536;
        while (cap < m->len + n) cap *= 2;
        uint8_t *q = realloc(m->buf, cap);
        if (!q) {
            m->oom = 1;
            return;
        }
        m->buf = q;
        m->cap = cap;
    }
    memcpy(m->buf + m->len, p, n);
    m->len += n;
}

static void mp_puts(http_multipart *m, const char *s) { mp_put(m, s, strlen(s)); }

void http_multipart_init(http_multipart *m) {
    memset(m, 0, sizeof *m);
    uint8_t r[12];
    randombytes_buf(r, sizeof r);
    char hex[25];
    sodium_bin2hex(hex, sizeof hex, r, sizeof r);
    snprintf(m->boundary, sizeof m->boundary, "----facepay%s", hex);
    snprintf(m->content_type, sizeof m->content_type, "multipart/form-data; boundary=%s", m->boundary);
}

void http_multipart_field(http_multipart *m, const char *name, const char *value) {
    char h[256];
    snprintf(h, sizeof h, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n", m->boundary, name);
    mp_puts(m, h);
    mp_puts(m, value);
    mp_puts(m, "\r\n");
}

void http_multipart_file(http_multipart *m, const char *name, const char *filename, const char *content_type,
                         const void *data, size_t len) {
    char h[512];
    snprintf(h, sizeof h, "--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\nContent-Type: %s\r\n\r\n",
             m->boundary, name, filename, content_type);
    mp_puts(m, h);
    mp_put(m, data, len);
    mp_puts(m, "\r\n");
}

int http_multipart_finish(http_multipart *m) {
    char h[96];
    snprintf(h, sizeof h, "--%s--\r\n", m->boundary);
    mp_puts(m, h);
    return m->oom ? -1 : 0;
}

void http_multipart_free(http_multipart *m) {
    free(m->buf);
    memset(m, 0, sizeof *m);
}
