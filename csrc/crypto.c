#include "crypto.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int sa_random_bytes(unsigned char *buf, size_t n, sa_err *err)
{
    while (n > 0) {
        int chunk = n > 65536 ? 65536 : (int)n;
        if (RAND_bytes(buf, chunk) != 1)
            return sa_err_set(err, SA_EVALIDATION, 0, "random generator failed");
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

/* Character -> 6-bit value, 255 outside the alphabet (b64_std / b64_url
 * above). A table, not a branch per character: ID tokens are decoded on
 * every verification. */
static const unsigned char dec_std[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,  62, 255, 255, 255,  63,
     52,  53,  54,  55,  56,  57,  58,  59,  60,  61, 255, 255, 255, 255, 255, 255,
    255,   0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,
     15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25, 255, 255, 255, 255, 255,
    255,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
     41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
};
static const unsigned char dec_url[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,  62, 255, 255,
     52,  53,  54,  55,  56,  57,  58,  59,  60,  61, 255, 255, 255, 255, 255, 255,
    255,   0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,
     15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25, 255, 255, 255, 255,  63,
    255,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
     41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
};

static int bad_char(const unsigned char *tab, const char *in, size_t from, size_t n,
                    int url, sa_err *err)
{
    size_t i;
    for (i = from; i < n && tab[(unsigned char)in[i]] != 0xff; i++)
        ;
    return sa_err_set(err, SA_EVALIDATION, 0, "invalid base64%s character at offset %zu",
                      url ? "url" : "", i);
}

int sa_b64_decode(sa_buf *out, const char *in, size_t n, int url, sa_err *err)
{
    size_t i, pad = 0, full;
    const unsigned char *tab;
    unsigned char *o;
    unsigned v, rest;

    tab = url ? dec_url : dec_std;
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
        unsigned a = tab[(unsigned char)in[i]], b = tab[(unsigned char)in[i + 1]],
                 c = tab[(unsigned char)in[i + 2]], d = tab[(unsigned char)in[i + 3]];
        if ((a | b | c | d) & 0x80) {
            /* a refused input leaves none of its decoded bytes behind len */
            OPENSSL_cleanse(out->data + out->len, (size_t)(o - (unsigned char *)out->data) - out->len);
            return bad_char(tab, in, i, n, url, err);
        }
        v = a << 18 | b << 12 | c << 6 | d;
        *o++ = (unsigned char)(v >> 16);
        *o++ = (unsigned char)(v >> 8);
        *o++ = (unsigned char)v;
    }
    rest = (unsigned)(n - i); /* 0, 2 or 3 characters */
    if (rest) {
        unsigned a = tab[(unsigned char)in[i]], b = tab[(unsigned char)in[i + 1]],
                 c = rest == 3 ? tab[(unsigned char)in[i + 2]] : 0;
        if ((a | b | c) & 0x80) {
            OPENSSL_cleanse(out->data + out->len, (size_t)(o - (unsigned char *)out->data) - out->len);
            return bad_char(tab, in, i, n, url, err);
        }
        v = a << 18 | b << 12 | c << 6;
        /* Leftover bits must be zero: otherwise two encodings decode alike. */
        if ((rest == 2 && (v & 0xffff)) || (rest == 3 && (v & 0xff))) {
            OPENSSL_cleanse(out->data + out->len, (size_t)(o - (unsigned char *)out->data) - out->len);
            return sa_err_set(err, SA_EVALIDATION, 0, "invalid base64%s trailing bits",
                              url ? "url" : "");
        }
        *o++ = (unsigned char)(v >> 16);
        if (rest == 3)
            *o++ = (unsigned char)(v >> 8);
    }
    out->len += full;
    out->data[out->len] = '\0';
    return 0;
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

int sa_sha2(int bits, const void *in, size_t n, unsigned char *out)
{
    const EVP_MD *md = sha2_md(bits);
    unsigned int len = 0;
    if (!md || EVP_Digest(in, n, out, &len, md, NULL) != 1)
        return -1;
    return (int)len;
}

int sa_hmac_sha2(int bits, const void *key, size_t keylen, const void *in,
                 size_t n, unsigned char *out)
{
    const EVP_MD *md = sha2_md(bits);
    unsigned int len = 0;
    if (!md || keylen > 0x7fffffff)
        return -1;
    if (!HMAC(md, key, (int)keylen, in, n, out, &len))
        return -1;
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
