/*
 * client.h - a minimal blocking HTTP/1.1 client (keep-alive, Content-Length bodies) and a
 * multipart/form-data body builder, for the programs that drive the payment service from C:
 * `facepay demo` and bench/bench_http. Not a general-purpose client: no TLS, no chunked
 * responses (the server never sends them), IPv4 only.
 */
#ifndef FP_SERVER_CLIENT_H
#define FP_SERVER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct http_client http_client;

typedef struct http_response {
    int status;
    char *body; /* NUL-terminated, malloc'ed */
    size_t len;
    int idempotent_replayed; /* "Idempotent-Replayed: true" */
} http_response;

/* Connects (lazily reconnecting after the server closes a connection). 0 on success. */
int http_client_open(const char *host, int port, http_client **out);
void http_client_close(http_client *c);

/* One request. headers: extra "Name: value\r\n" lines (may be NULL); content_type NULL when there
 * is no body. 0 when a response was read (any status), -1 on a transport error (message in
 * http_client_error). */
int http_client_request(http_client *c, const char *method, const char *path, const char *headers,
                        const char *content_type, const void *body, size_t len, http_response *out);
const char *http_client_error(const http_client *c);
void http_response_free(http_response *r);

/* multipart/form-data */
typedef struct http_multipart {
    char boundary[64];
    char content_type[96];
    uint8_t *buf;
    size_t len, cap;
    int oom;
} http_multipart;

void http_multipart_init(http_multipart *m);
void http_multipart_field(http_multipart *m, const char *name, const char *value);
void http_multipart_file(http_multipart *m, const char *name, const char *filename, const char *content_type,
                         const void *data, size_t len);
/* Closes the body; returns 0, or -1 when an allocation failed along the way. */
int http_multipart_finish(http_multipart *m);
void http_multipart_free(http_multipart *m);

#endif /* FP_SERVER_CLIENT_H */
