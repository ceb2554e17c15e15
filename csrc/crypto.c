#include "crypto.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int sa_random_bytes(unsigned char *buf, size_t n, sa_err *err)
{
    while (n > 0) {
        int chunk = n > 65536 ? 65536 : (int)n;
        if (RAND_bytes(buf, chunk) != 1) {
            /* a failure inside OpenSSL leaves the thread's error queue as
             * it found it: a stale entry breaks the next TLS handshake */
            ERR_clear_error();
            return sa_err_set(err, SA_EVALIDATION, 0, "random generator failed");
        }
        buf += chunk;
        n -= (size_t)chunk;
    }
    return 0;
}

size_t sa_b64url_len(size_t n)
{
    return (n / 3) * 4 + (n % 3 ? n % 3 + 1 : 0);
}

int sa_b64_encode(sa_buf *out, const unsigned char *in, size_t n, int url)
{
    const char *al = url ? b64_url : b64_std;
    size_t i = 0;
    if (sa_buf_reserve(out, (n + 2) / 3 * 4) != 0)
        return -1;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        char q[4] = { al[v >> 18 & 63], al[v >> 12 & 63], al[v >> 6 & 63], al[v & 63] };
        sa_buf_append(out, q, 4);
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        char q[4] = { al[v >> 18 & 63], al[v >> 12 & 63], '=', '=' };
        sa_buf_append(out, q, url ? 2 : 4);
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        char q[4] = { al[v >> 18 & 63], al[v >> 12 & 63], al[v >> 6 & 63], '=' };
        sa_buf_append(out, q, url ? 3 : 4);
    }
    return 0;
}

/* Character -> 6-bit value for both alphabets at once (b64_std / b64_url
 * above): 0x40 marks the standard alphabet's own characters (+ /), 0x80 the
 * URL-safe ones (- _), 0xc0 anything else. A table, not a branch per
 * character: ID tokens are decoded on every verification. */
#define DEC_STD_ONLY 0x40
#define DEC_URL_ONLY 0x80
static const unsigned char dec[256] = {
    0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0,
    0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0,
    0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0x7e, 0xc0, 0xbe, 0xc0, 0x7f,
    0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0,
    0xc0, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
    0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0xc0, 0xc0, 0xc0, 0xc0, 0xbf,
    0xc0, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0,
    0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0,
    0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0,
    0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0,
    0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0,
    0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0,
    0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0,
    0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0,
    0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0,
};

/* The offset of the first character not in the alphabet, from from on. */
static int bad_char(const char *in, size_t from, size_t n, unsigned reject, int url,
                    sa_err *err)
{
    size_t i;
    for (i = from; i < n && !(dec[(unsigned char)in[i]] & reject); i++)
        ;
    return sa_err_set(err, SA_EVALIDATION, 0, "invalid base64%s character at offset %zu",
                      url ? "url" : "", i);
}

int sa_b64_decode(sa_buf *out, const char *in, size_t n, int url, sa_err *err)
{
    size_t i, pad = 0, full;
    /* a character of the other alphabet, or of none, is refused */
    unsigned reject = url ? DEC_STD_ONLY : DEC_URL_ONLY;
    unsigned char *o;
    unsigned v, rest;
    int rc;

    if (!url) {
        /* Padding is optional, but when present it must be right. */
        while (pad < 2 && n > 0 && in[n - 1] == '=') {
            n--;
            pad++;
        }
        if (pad && (n + pad) % 4 != 0)
            return sa_err_set(err, SA_EVALIDATION, 0, "invalid base64 padding");
    }
    if (n % 4 == 1)
        return sa_err_set(err, SA_EVALIDATION, 0, "invalid base64%s length",
                          url ? "url" : "");
    full = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (sa_buf_reserve(out, full) != 0)
        return sa_err_set(err, SA_ENOMEM, 0, "out of memory");
    o = (unsigned char *)out->data + out->len;
    for (i = 0; i + 4 <= n; i += 4) {
        unsigned a = dec[(unsigned char)in[i]], b = dec[(unsigned char)in[i + 1]],
                 c = dec[(unsigned char)in[i + 2]], d = dec[(unsigned char)in[i + 3]];
        if ((a | b | c | d) & reject) {
            rc = bad_char(in, i, n, reject, url, err);
            goto refused;
        }
        v = (a & 63) << 18 | (b & 63) << 12 | (c & 63) << 6 | (d & 63);
        *o++ = (unsigned char)(v >> 16);
        *o++ = (unsigned char)(v >> 8);
        *o++ = (unsigned char)v;
    }
    rest = (unsigned)(n - i); /* 0, 2 or 3 characters */
    if (rest) {
        unsigned a = dec[(unsigned char)in[i]], b = dec[(unsigned char)in[i + 1]],
                 c = rest == 3 ? dec[(unsigned char)in[i + 2]] : 0;
        if ((a | b | c) & reject) {
            rc = bad_char(in, i, n, reject, url, err);
            goto refused;
        }
        v = (a & 63) << 18 | (b & 63) << 12 | (c & 63) << 6;
        /* Leftover bits must be zero: otherwise two encodings decode alike. */
        if ((rest == 2 && (v & 0xffff)) || (rest == 3 && (v & 0xff))) {
            rc = sa_err_set(err, SA_EVALIDATION, 0, "invalid base64%s trailing bits",
                            url ? "url" : "");
            goto refused;
        }
        *o++ = (unsigned char)(v >> 16);
        if (rest == 3)
            *o++ = (unsigned char)(v >> 8);
    }
    out->len += full;
    out->data[out->len] = '\0';
    return 0;
refused:
    /* a refused input leaves none of its decoded bytes behind len */
    OPENSSL_cleanse(out->data + out->len, (size_t)(o - (unsigned char *)out->data) - out->len);
    return rc;
}

static const EVP_MD *sha2_md(int bits)
{
    switch (bits) {
    case 256: return EVP_sha256();
    case 384: return EVP_sha384();
    case 512: return EVP_sha512();
    default: return NULL;
    }
}

#ifndef OPENSSL_NO_DEPRECATED_3_0
/* SHA-2 through OpenSSL's plain functions (the default provider's SHA-2
 * calls the same ones): no provider fetch, no context allocated, and no
 * library initialisation, which reads openssl.cnf and loads the default
 * provider (5M instructions: a sixth of a `smartauth token` call whose only
 * crypto is its store key's digest). A build without the deprecated API
 * takes the EVP path below. The context is wiped: it holds input (a store
 * key's digest covers an API key). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static int plain_sha2(int bits, const void *in, size_t n, unsigned char *out)
{
    int ok = 0, len = -1;
    if (bits == 256) {
        SHA256_CTX c;
        ok = SHA256_Init(&c) && SHA256_Update(&c, in, n) && SHA256_Final(out, &c);
        OPENSSL_cleanse(&c, sizeof c);
        len = 32;
    } else if (bits == 384 || bits == 512) {
        SHA512_CTX c;
        if (bits == 384)
            ok = SHA384_Init(&c) && SHA384_Update(&c, in, n) && SHA384_Final(out, &c);
        else
            ok = SHA512_Init(&c) && SHA512_Update(&c, in, n) && SHA512_Final(out, &c);
        OPENSSL_cleanse(&c, sizeof c);
        len = bits / 8;
    }
    return ok ? len : -1;
}
#pragma GCC diagnostic pop
#endif

int sa_sha2(int bits, const void *in, size_t n, unsigned char *out)
{
#ifndef OPENSSL_NO_DEPRECATED_3_0
    return plain_sha2(bits, in, n, out);
#else
    const EVP_MD *md = sha2_md(bits);
    unsigned int len = 0;
    if (!md)
        return -1;
    if (EVP_Digest(in, n, out, &len, md, NULL) != 1) {
        ERR_clear_error();
        return -1;
    }
    return (int)len;
#endif
}

int sa_hmac_sha2(int bits, const void *key, size_t keylen, const void *in,
                 size_t n, unsigned char *out)
{
    const EVP_MD *md = sha2_md(bits);
    unsigned int len = 0;
    if (!md || keylen > 0x7fffffff)
        return -1;
    if (!HMAC(md, key, (int)keylen, in, n, out, &len)) {
        ERR_clear_error();
        return -1;
    }
    return (int)len;
}

int sa_pkce_verifier(sa_buf *out, sa_err *err)
{
    unsigned char raw[32];
    int rc;
    if (sa_random_bytes(raw, sizeof raw, err) != 0)
        return -1;
    rc = sa_b64_encode(out, raw, sizeof raw, 1);
    OPENSSL_cleanse(raw, sizeof raw);
    if (rc != 0)
        return sa_err_set(err, SA_ENOMEM, 0, "out of memory");
    return 0;
}

static int pkce_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

int sa_pkce_challenge(sa_buf *out, const char *verifier, size_t n, sa_err *err)
{
    unsigned char md[64];
    size_t i;
    if (n < 43 || n > 128)
        return sa_err_set(err, SA_EARG, 0,
                          "code_verifier must be 43 to 128 characters (got %zu)", n);
    for (i = 0; i < n; i++)
        if (!pkce_unreserved((unsigned char)verifier[i]))
            return sa_err_set(err, SA_EARG, 0,
                              "code_verifier has a character outside RFC 7636's set");
    if (sa_sha2(256, verifier, n, md) != 32)
        return sa_err_set(err, SA_EVALIDATION, 0, "sha256 failed");
    if (sa_b64_encode(out, md, 32, 1) != 0)
        return sa_err_set(err, SA_ENOMEM, 0, "out of memory");
    return 0;
}

int sa_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen)
        return 0;
    return alen == 0 || CRYPTO_memcmp(a, b, alen) == 0;
}
