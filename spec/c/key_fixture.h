/* Shared by test_key.c and test_jws.c: a counting CHECK, byte helpers, and
 * key fixtures (an OpenSSL key, and the sa_keys made from its PKCS#8 PEM,
 * its SubjectPublicKeyInfo PEM and its exported public JWK members). */
#ifndef SA_TEST_KEY_FIXTURE_H
#define SA_TEST_KEY_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "jws.h"

/* each test uses some of the helpers below */
#pragma GCC diagnostic ignored "-Wunused-function"

static int passed, failed;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (cond) {                                                                      \
            passed++;                                                                    \
        } else {                                                                         \
            failed++;                                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);    \
        }                                                                                \
    } while (0)

/* CHECK with a label, for checks inside loops over algs. */
#define CHECKL(label, cond)                                                              \
    do {                                                                                 \
        if (cond) {                                                                      \
            passed++;                                                                    \
        } else {                                                                         \
            failed++;                                                                    \
            fprintf(stderr, "%s:%d: [%s] CHECK failed: %s\n", __FILE__, __LINE__,        \
                    (label), #cond);                                                     \
        }                                                                                \
    } while (0)

#define U(s) ((const unsigned char *)(s))

/* ------------------------------------------------------------ helpers */

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* Unpadded base64url to bytes; returns the length or (size_t)-1. */
static size_t b64url(const char *s, unsigned char *out, size_t cap)
{
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; *s; s++) {
        int v = b64val((unsigned char)*s);
        if (v < 0)
            return (size_t)-1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= cap)
                return (size_t)-1;
            out[n++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    return n;
}

static char *pem_encode(EVP_PKEY *pk, int selection, const char *structure, size_t *len)
{
    OSSL_ENCODER_CTX *ctx =
        OSSL_ENCODER_CTX_new_for_pkey(pk, selection, "PEM", structure, NULL);
    unsigned char *data = NULL;
    size_t dlen = 0;
    char *s = NULL;
    if (ctx && OSSL_ENCODER_to_data(ctx, &data, &dlen) == 1) {
        s = malloc(dlen + 1);
        if (s) {
            memcpy(s, data, dlen);
            s[dlen] = '\0';
            *len = dlen;
        }
    }
    OPENSSL_free(data);
    OSSL_ENCODER_CTX_free(ctx);
    return s;
}

static size_t bn_bytes(EVP_PKEY *pk, const char *name, unsigned char *out, int pad)
{
    BIGNUM *bn = NULL;
    int n = -1;
    if (EVP_PKEY_get_bn_param(pk, name, &bn) == 1)
        n = pad ? BN_bn2binpad(bn, out, pad) : BN_bn2bin(bn, out);
    BN_clear_free(bn);
    return n < 0 ? (size_t)-1 : (size_t)n;
}

static int contains(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

/* For buffers that are not NUL-terminated (BIO memory). */
static int contains_n(const char *hay, size_t n, const char *needle)
{
    size_t i, m = strlen(needle);
    for (i = 0; m <= n && i <= n - m; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return 1;
    return 0;
}

/* ------------------------------------------------------------ fixtures */

typedef struct {
    const char *name;
    EVP_PKEY *pk;
    sa_key *priv;   /* from PKCS#8 PEM */
    sa_key *pubpem; /* from SubjectPublicKeyInfo PEM */
    sa_key *pub;    /* from exported JWK members */
    sa_jwk_public jwk;
} fixture;

static void fixture_load(fixture *f, const char *name, EVP_PKEY *pk, int type,
                         const char *curve, int bits)
{
    sa_err err;
    size_t len = 0, n;
    char *pem;
    unsigned char buf[2048];
    sa_jwk_public again;

    memset(f, 0, sizeof *f);
    f->name = name;
    f->pk = pk;
    CHECKL(name, pk != NULL);
    if (!pk)
        return;

    pem = pem_encode(pk, EVP_PKEY_KEYPAIR, "PrivateKeyInfo", &len);
    CHECKL(name, pem && contains(pem, "BEGIN PRIVATE KEY"));
    f->priv = pem ? sa_key_pem(pem, len, &err) : NULL;
    CHECKL(name, f->priv != NULL);
    free(pem);
    pem = pem_encode(pk, EVP_PKEY_PUBLIC_KEY, "SubjectPublicKeyInfo", &len);
    CHECKL(name, pem && contains(pem, "BEGIN PUBLIC KEY"));
    f->pubpem = pem ? sa_key_pem(pem, len, &err) : NULL;
    CHECKL(name, f->pubpem != NULL);
    free(pem);
    if (!f->priv || !f->pubpem)
        return;

    CHECKL(name, sa_key_type_of(f->priv) == type && sa_key_type_of(f->pubpem) == type);
    CHECKL(name, sa_key_bits(f->priv) == bits && sa_key_bits(f->pubpem) == bits);
    CHECKL(name, sa_key_has_private(f->priv) == 1);
    CHECKL(name, sa_key_has_private(f->pubpem) == 0);
    if (curve) {
        CHECKL(name, sa_key_curve(f->priv) && strcmp(sa_key_curve(f->priv), curve) == 0);
    } else {
        CHECKL(name, sa_key_curve(f->priv) == NULL);
    }

    /* export, cross-checked against OpenSSL's own view of the key */
    CHECKL(name, sa_key_public_jwk(f->priv, &f->jwk, &err) == 0);
    CHECKL(name, strcmp(f->jwk.kty, sa_key_kty(f->priv)) == 0);
    if (type == SA_KEY_RSA) {
        n = bn_bytes(pk, OSSL_PKEY_PARAM_RSA_N, buf, 0);
        CHECKL(name, n == f->jwk.nlen && memcmp(buf, f->jwk.n, n) == 0);
        n = bn_bytes(pk, OSSL_PKEY_PARAM_RSA_E, buf, 0);
        CHECKL(name, n == f->jwk.elen && memcmp(buf, f->jwk.e, n) == 0);
        CHECKL(name, f->jwk.elen == 3 && f->jwk.e[0] == 1 && f->jwk.e[2] == 1); /* 65537 */
        f->pub = sa_key_rsa(f->jwk.n, f->jwk.nlen, f->jwk.e, f->jwk.elen, &err);
    } else if (type == SA_KEY_EC) {
        int coord = (bits + 7) / 8;
        CHECKL(name, f->jwk.xlen == (size_t)coord && f->jwk.ylen == (size_t)coord);
        n = bn_bytes(pk, OSSL_PKEY_PARAM_EC_PUB_X, buf, coord);
        CHECKL(name, n == f->jwk.xlen && memcmp(buf, f->jwk.x, n) == 0);
        n = bn_bytes(pk, OSSL_PKEY_PARAM_EC_PUB_Y, buf, coord);
        CHECKL(name, n == f->jwk.ylen && memcmp(buf, f->jwk.y, n) == 0);
        f->pub = sa_key_ec(f->jwk.crv, f->jwk.x, f->jwk.xlen, f->jwk.y, f->jwk.ylen, &err);
    } else {
        n = sizeof buf;
        CHECKL(name, EVP_PKEY_get_raw_public_key(pk, buf, &n) == 1);
        CHECKL(name, n == 32 && f->jwk.xlen == 32 && memcmp(buf, f->jwk.x, 32) == 0);
        f->pub = sa_key_okp(f->jwk.crv, f->jwk.x, f->jwk.xlen, &err);
    }
    CHECKL(name, f->pub != NULL);
    if (!f->pub)
        return;
    CHECKL(name, sa_key_has_private(f->pub) == 0 && sa_key_bits(f->pub) == bits);
    /* the rebuilt key exports the same members */
    CHECKL(name, sa_key_public_jwk(f->pub, &again, &err) == 0);
    CHECKL(name, again.nlen == f->jwk.nlen && memcmp(again.n, f->jwk.n, again.nlen) == 0 &&
                     again.elen == f->jwk.elen && memcmp(again.e, f->jwk.e, again.elen) == 0 &&
                     again.xlen == f->jwk.xlen && memcmp(again.x, f->jwk.x, again.xlen) == 0 &&
                     again.ylen == f->jwk.ylen && memcmp(again.y, f->jwk.y, again.ylen) == 0);
}

static void fixture_free(fixture *f)
{
    sa_key_free(f->priv);
    sa_key_free(f->pubpem);
    sa_key_free(f->pub);
    EVP_PKEY_free(f->pk);
}


static const unsigned char INPUT[] =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlIn0";
#define INLEN (sizeof INPUT - 1)

#endif
