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

static int b64_value(unsigned char c, int url)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (url) {
        if (c == '-') return 62;
        if (c == '_') return 63;
    } else {
        if (c == '+') return 62;
        if (c == '/') return 63;
    }
    return -1;
}

int sa_b64_decode(sa_buf *out, const char *in, size_t n, int url, sa_err *err)
{
    size_t i, pad = 0, full;
    unsigned acc = 0;
    int bits = 0;

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
    for (i = 0; i < n; i++) {
        int v = b64_value((unsigned char)in[i], url);
        if (v < 0)
            return sa_err_set(err, SA_EVALIDATION, 0,
                              "invalid base64%s character at offset %zu",
                              url ? "url" : "", i);
        acc = (acc << 6 | (unsigned)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            sa_buf_append_char(out, (char)(acc >> bits & 0xff));
        }
    }
    /* Leftover bits must be zero: otherwise two encodings decode alike. */
    if (bits && (acc & ((1u << bits) - 1)) != 0)
        return sa_err_set(err, SA_EVALIDATION, 0, "invalid base64%s trailing bits",
                          url ? "url" : "");
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
