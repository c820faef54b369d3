/*
 * crypto.c - the template key (load, generate, wipe) and the record encryption of the store:
 * XChaCha20-Poly1305-IETF with a random 24-byte nonce per record and associated data that binds a
 * ciphertext to its user, row and purpose. A random nonce is safe at this size (192 bits), so no
 * counter has to survive crashes or be shared between processes.
 *
 * Key bytes and plaintext embeddings are never logged or put in error messages; every temporary
 * copy is wiped with sodium_memzero before it is released.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/core.h"
#include "store/store.h"

_Static_assert(FP_STORE_NONCE_BYTES == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "nonce size");
_Static_assert(FP_STORE_TAG_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag size");
_Static_assert(sizeof(float) == 4, "float32");

/* ------------------------------------------------------------------------------------------ */
/* libsodium start-up                                                                          */
/* ------------------------------------------------------------------------------------------ */

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static int sodium_ok;

static void sodium_start(void) { sodium_ok = sodium_init() >= 0; }

fp_status fp_store_crypto_init(void) {
    pthread_once(&sodium_once, sodium_start);
    if (!sodium_ok) return fp_fail(FP_ERR_INTERNAL, "libsodium: sodium_init failed");
    return FP_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Keys                                                                                        */
/* ------------------------------------------------------------------------------------------ */

void fp_key_wipe(fp_key *key) {
    if (key) sodium_memzero(key->bytes, sizeof key->bytes);
}

/* Not strchr(" \t\r\n", c): that would also match a NUL byte in the file. */
static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Parses 64 hex characters, optionally surrounded by whitespace. 0 on success. */
static int parse_hex_key(const char *text, size_t len, uint8_t out[32]) {
    size_t a = 0, b = len;
    while (a < b && is_space(text[a])) a++;
    while (b > a && is_space(text[b - 1])) b--;
    if (b - a != 64) return -1;
    size_t got = 0;
    const char *end = NULL;
    if (sodium_hex2bin(out, 32, text + a, 64, NULL, &got, &end) != 0 || got != 32 ||
        end != text + b) {
        sodium_memzero(out, 32);
        return -1;
    }
    return 0;
}

fp_status fp_key_load(const char *key_file, fp_key *out) {
    if (!out) return fp_fail(FP_ERR_INVALID_ARG, "fp_key_load: NULL key");
    memset(out, 0, sizeof *out);
    fp_status st = fp_store_crypto_init();
    if (st != FP_OK) return st;

    if (!key_file) {
        const char *env = getenv("FACEPAY_KEY");
        if (!env || !*env)
            return fp_fail(FP_ERR_NOT_FOUND,
                           "no template key: FACEPAY_KEY is not set and no key file given");
        if (parse_hex_key(env, strlen(env), out->bytes) != 0)
            return fp_fail(FP_ERR_INVALID_ARG, "FACEPAY_KEY must be 64 hex characters (32 bytes)");
        return FP_OK;
    }

    int fd = open(key_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return fp_fail(FP_ERR_IO, "key file %s: %s", key_file, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return fp_fail(FP_ERR_IO, "key file %s: not a regular file", key_file);
    }
    /* Like ssh with private keys: a key others can read is already leaked, so refuse to use it. */
    if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
        close(fd);
        return fp_fail(FP_ERR_INVALID_ARG, "key file %s: readable by group/others (chmod 600 it)",
                       key_file);
    }
    /* Longest accepted form: 64 hex + whitespace; anything much larger is not a key file. */
    char buf[160];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            sodium_memzero(buf, sizeof buf);
            return fp_fail(FP_ERR_IO, "key file %s: %s", key_file, strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
        if (n == sizeof buf) break;
    }
    close(fd);
    fp_status res = FP_OK;
    if (n == 32) {
        memcpy(out->bytes, buf, 32);
    } else if (n == sizeof buf || parse_hex_key(buf, n, out->bytes) != 0) {
        res = fp_fail(FP_ERR_FORMAT, "key file %s: expected 32 raw bytes or 64 hex characters",
                      key_file);
    }
    sodium_memzero(buf, sizeof buf);
    return res;
}

fp_status fp_key_generate(const char *key_file) {
    if (!key_file || !*key_file) return fp_fail(FP_ERR_INVALID_ARG, "fp_key_generate: no path");
    fp_status st = fp_store_crypto_init();
    if (st != FP_OK) return st;
    /* O_EXCL: never replace a key, since every template encrypted under it would be lost. */
    int fd = open(key_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return fp_fail(FP_ERR_IO, "key file %s already exists; refusing to overwrite it",
                           key_file);
        return fp_fail(FP_ERR_IO, "key file %s: %s", key_file, strerror(errno));
    }
    uint8_t key[32];
    char hex[65];
    randombytes_buf(key, sizeof key);
    sodium_bin2hex(hex, sizeof hex, key, sizeof key);
    sodium_memzero(key, sizeof key);
    hex[64] = '\n';
    size_t off = 0;
    int err = 0;
    while (off < sizeof hex) {
        ssize_t w = write(fd, hex + off, sizeof hex - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            err = errno ? errno : EIO;
            break;
        }
        off += (size_t)w;
    }
    sodium_memzero(hex, sizeof hex);
    if (!err && fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && !err) err = errno;
    if (err) {
        unlink(key_file); /* a half-written key must not be mistaken for a usable one */
        return fp_fail(FP_ERR_IO, "key file %s: %s", key_file, strerror(err));
    }
    return FP_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Associated data                                                                             */
/* ------------------------------------------------------------------------------------------ */

static void ad_put(fp_store_ad *ad, const void *p, size_t n) {
    /* Callers only pass validated ids (<= 63 bytes), so the 256-byte buffer always suffices. */
    if (ad->len + n > sizeof ad->bytes) n = sizeof ad->bytes - ad->len;
    memcpy(ad->bytes + ad->len, p, n);
    ad->len += n;
}

static void ad_str(fp_store_ad *ad, const char *str) {
    size_t n = strlen(str);
    uint8_t len = (uint8_t)(n > 255 ? 255 : n);
    ad_put(ad, &len, 1);
    ad_put(ad, str, len);
}

static void ad_i64(fp_store_ad *ad, int64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)v >> (8 * i));
    ad_put(ad, b, 8);
}

void fp_store_ad_template(fp_store_ad *ad, const char *user_id, int64_t template_id,
                          const char *model_id, int dim) {
    ad->len = 0;
    ad_str(ad, "facepay template v1");
    ad_str(ad, user_id);
    ad_i64(ad, template_id);
    ad_str(ad, model_id);
    ad_i64(ad, dim);
}

void fp_store_ad_mean(fp_store_ad *ad, const char *user_id, const char *model_id, int dim) {
    ad->len = 0;
    ad_str(ad, "facepay mean v1");
    ad_str(ad, user_id);
    ad_str(ad, model_id);
    ad_i64(ad, dim);
}

/* ------------------------------------------------------------------------------------------ */
/* Seal / unseal                                                                               */
/* ------------------------------------------------------------------------------------------ */

/* Floats are stored little-endian whatever the host, so a DB file moves between machines. */
static void floats_to_le(const float *f, int n, uint8_t *out) {
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &f[i], 4);
        out[4 * i + 0] = (uint8_t)u;
        out[4 * i + 1] = (uint8_t)(u >> 8);
        out[4 * i + 2] = (uint8_t)(u >> 16);
        out[4 * i + 3] = (uint8_t)(u >> 24);
    }
}

static void le_to_floats(const uint8_t *in, int n, float *f) {
    for (int i = 0; i < n; i++) {
        uint32_t u = (uint32_t)in[4 * i] | (uint32_t)in[4 * i + 1] << 8 |
                     (uint32_t)in[4 * i + 2] << 16 | (uint32_t)in[4 * i + 3] << 24;
        memcpy(&f[i], &u, 4);
    }
}

void fp_store_seal(const uint8_t key[32], const fp_store_ad *ad, const float *emb, int dim,
                   uint8_t nonce[FP_STORE_NONCE_BYTES], uint8_t *ct) {
    size_t plen = (size_t)dim * 4;
    /* Serialise straight into the output buffer and encrypt in place (libsodium allows it), so
     * no second plaintext copy exists. */
    floats_to_le(emb, dim, ct);
    randombytes_buf(nonce, FP_STORE_NONCE_BYTES);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &clen, ct, plen, ad->bytes, ad->len, NULL, nonce,
                                               key);
}

int fp_store_unseal(const uint8_t key[32], const fp_store_ad *ad, const uint8_t *nonce,
                    const uint8_t *ct, size_t ct_len, float *emb, int dim) {
    size_t plen = (size_t)dim * 4;
    if (ct_len != plen + FP_STORE_TAG_BYTES) {
        memset(emb, 0, plen);
        return -1;
    }
    /* Decrypt straight into the caller's buffer (libsodium checks the tag before writing any
     * plaintext), then turn the little-endian bytes into floats in place: element i is read
     * completely before it is written, so no temporary copy of the embedding is needed. */
    uint8_t *pt = (uint8_t *)emb;
    unsigned long long got = 0;
    int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &got, NULL, ct, ct_len, ad->bytes,
                                                        ad->len, nonce, key);
    if (rc != 0 || got != plen) {
        sodium_memzero(emb, plen);
        return -1;
    }
    le_to_floats(pt, dim, emb);
    return 0;
}

void fp_store_key_check(const uint8_t key[32], uint8_t out[32]) {
    static const char constant[] = "facepay template key check v1";
    crypto_generichash(out, 32, (const unsigned char *)constant, sizeof constant - 1, key, 32);
}
