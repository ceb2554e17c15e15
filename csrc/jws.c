/* JWS signatures on OpenSSL 3: the one alg table, alg checks, verify (with
 * a kept context), sign, and the at_hash / c_hash digest. See jws.h for the
 * contract; keys come from key.c. */
#include "jws.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "key_impl.h"
#include "ossl.h"

#define RSA_MIN_BITS 2048   /* RFC 7518 3.3 */

enum { FAM_RS = 1, FAM_PS, FAM_ES, FAM_ED, FAM_HS };

typedef struct {
    sa_jws_alg_info info; /* what the binding exports: name, kty, crv, hash */
    int fam;
    const char *md;     /* signature digest; NULL for EdDSA (pure) */
    const char *hashmd; /* at_hash / c_hash digest */
    size_t mdlen;
} jws_alg;

/* The one alg table (exported to Lua as core.jws_algs()). */
static const jws_alg algs[] = {
    { { "RS256", "RSA", NULL, 256 }, FAM_RS, "SHA256", "SHA256", 32 },
    { { "RS384", "RSA", NULL, 384 }, FAM_RS, "SHA384", "SHA384", 48 },
    { { "RS512", "RSA", NULL, 512 }, FAM_RS, "SHA512", "SHA512", 64 },
    { { "PS256", "RSA", NULL, 256 }, FAM_PS, "SHA256", "SHA256", 32 },
    { { "PS384", "RSA", NULL, 384 }, FAM_PS, "SHA384", "SHA384", 48 },
    { { "PS512", "RSA", NULL, 512 }, FAM_PS, "SHA512", "SHA512", 64 },
    { { "ES256", "EC", "P-256", 256 }, FAM_ES, "SHA256", "SHA256", 32 },
    { { "ES384", "EC", "P-384", 384 }, FAM_ES, "SHA384", "SHA384", 48 },
    { { "ES512", "EC", "P-521", 512 }, FAM_ES, "SHA512", "SHA512", 64 },
    { { "EdDSA", "OKP", "Ed25519", 512 }, FAM_ED, NULL, "SHA512", 64 },
    { { "HS256", "oct", NULL, 256 }, FAM_HS, "SHA256", "SHA256", 32 },
    { { "HS384", "oct", NULL, 384 }, FAM_HS, "SHA384", "SHA384", 48 },
    { { "HS512", "oct", NULL, 512 }, FAM_HS, "SHA512", "SHA512", 64 },
};

#define NALGS (sizeof algs / sizeof algs[0])

const char *const sa_jws_part_name[3] = { "header", "payload", "signature" };

const sa_jws_alg_info *sa_jws_alg_at(size_t i)
{
    return i < NALGS ? &algs[i].info : NULL;
}

static const jws_alg *alg_find(const char *name)
{
    size_t i;
    if (!name)
        return NULL;
    for (i = 0; i < NALGS; i++)
        if (strcmp(algs[i].info.name, name) == 0)
            return &algs[i];
    return NULL;
}

int sa_jws_split(const char *s, size_t n, sa_jws_parts *out, sa_err *err)
{
    const char *d1, *d2 = NULL;
    if (!s || !out)
        return sa_err_set(err, SA_EARG, 0, "sa_jws_split: NULL argument");
    d1 = memchr(s, '.', n);
    if (d1)
        d2 = memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - s));
    if (!d2 || memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - s)))
        return sa_err_set(err, SA_EVALIDATION, 0,
                          "JWT must be three base64url segments separated by dots");
    if (d1 == s || d2 == d1 + 1)
        return sa_err_set(err, SA_EVALIDATION, 0, "JWT has an empty header or payload");
    out->seg[0] = s;
    out->len[0] = (size_t)(d1 - s);
    out->seg[1] = d1 + 1;
    out->len[1] = (size_t)(d2 - d1 - 1);
    out->seg[2] = d2 + 1;
    out->len[2] = n - (size_t)(d2 + 1 - s);
    out->input_len = (size_t)(d2 - s);
    return 0;
}

/* ------------------------------------------------------------------ JWS */

/* The alg entry if alg is usable with k, else NULL with err filled. */
static const jws_alg *alg_for_key(const sa_key *k, const char *alg, sa_err *err)
{
    char name[SA_OSSL_NAME_MAX];
    const jws_alg *a;
    const char *kty;

    if (!k) {
        sa_err_set(err, SA_EARG, 0, "no key");
        return NULL;
    }
    if (!alg || !alg[0]) {
        sa_err_set(err, SA_EVALIDATION, 0, "alg is missing");
        return NULL;
    }
    if (strcmp(alg, "none") == 0) {
        sa_err_set(err, SA_EVALIDATION, 0, "alg \"none\" is refused");
        return NULL;
    }
    if (!(a = alg_find(alg))) {
        sa_ossl_safe_name(name, sizeof name, alg);
        sa_err_set(err, SA_EVALIDATION, 0, "alg \"%s\" is not supported", name);
        return NULL;
    }
    kty = sa_key_kty(k);
    switch (a->fam) {
    case FAM_RS:
    case FAM_PS:
        if (k->type != SA_KEY_RSA) {
            sa_err_set(err, SA_EVALIDATION, 0, "alg %s needs an RSA key, got an %s key",
                       a->info.name, kty);
            return NULL;
        }
        if (k->bits < RSA_MIN_BITS) {
            sa_err_set(err, SA_EVALIDATION, 0, "alg %s needs an RSA key of at least %d bits, "
                       "got %d", a->info.name, RSA_MIN_BITS, k->bits);
            return NULL;
        }
        return a;
    case FAM_ES:
        if (k->type != SA_KEY_EC || !k->curve || strcmp(k->curve, a->info.crv) != 0) {
            sa_err_set(err, SA_EVALIDATION, 0, "alg %s needs an EC %s key, got %s%s%s",
                       a->info.name, a->info.crv, k->type == SA_KEY_EC ? "EC " : "an ",
                       k->type == SA_KEY_EC ? (k->curve ? k->curve : "?") : kty,
                       k->type == SA_KEY_EC ? "" : " key");
            return NULL;
        }
        return a;
    case FAM_ED:
        if (k->type != SA_KEY_OKP || !k->curve || strcmp(k->curve, a->info.crv) != 0) {
            sa_err_set(err, SA_EVALIDATION, 0, "alg EdDSA needs an OKP Ed25519 key, got an %s "
                       "key", kty);
            return NULL;
        }
        return a;
    case FAM_HS:
        if (k->type != SA_KEY_OCT) {
            sa_err_set(err, SA_EVALIDATION, 0, "alg %s needs a symmetric (oct) key, got an %s "
                       "key", a->info.name, kty);
            return NULL;
        }
        return a;
    default:
        sa_err_set(err, SA_EVALIDATION, 0, "alg is not supported");
        return NULL;
    }
}

int sa_jws_alg_ok(const sa_key *k, const char *alg, sa_err *err)
{
    return alg_for_key(k, alg, err) ? 0 : -1;
}

const char *sa_jws_default_alg(const sa_key *k, sa_err *err)
{
    size_t i;
    const char *kty = sa_key_kty(k);
    int tried = 0;
    for (i = 0; i < NALGS; i++) {
        if (kty && strcmp(algs[i].info.kty, kty) != 0)
            continue;
        tried = 1;
        if (alg_for_key(k, algs[i].info.name, err)) /* else err says why */
            return algs[i].info.name;
    }
    if (!tried)
        sa_err_set(err, k ? SA_EVALIDATION : SA_EARG, 0, "no alg fits this key");
    return NULL;
}

static int mismatch(sa_err *err)
{
    ERR_clear_error();
    sa_err_set(err, SA_EVALIDATION, 0, "signature mismatch");
    return 0;
}

static int pss_setup(EVP_PKEY_CTX *pctx, const char *md)
{
    return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0 &&
           EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, md, NULL) > 0;
}

static int hmac(const sa_key *k, const jws_alg *a, const unsigned char *in, size_t inlen,
                unsigned char *out, size_t cap, size_t *outlen)
{
    return EVP_Q_mac(NULL, "HMAC", NULL, a->md, NULL, k->secret, k->secretlen, in, inlen,
                     out, cap, outlen) != NULL;
}

/* Raw R||S (each coord bytes) to a DER ECDSA-Sig-Value. */
static int ec_raw_to_der(const unsigned char *sig, size_t coord, unsigned char **der,
                         int *derlen)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = sa_ossl_bn_from(sig, coord, 0), *s = sa_ossl_bn_from(sig + coord, coord, 0);
    int ok = 0;
    *der = NULL;
    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* owned by es now */
        *derlen = i2d_ECDSA_SIG(es, der);
        ok = *derlen > 0;
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return ok;
}

/* k's verification context for alg a (RS, PS or ES) and its digest, set up
 * once per key and alg: an implicit fetch by name on every use, and a new
 * context each time, were a fifth of an RSA-2048 verification in OpenSSL 3.
 * Per key, not process-wide: nothing outlives the keys (a module unloaded
 * with its Lua state leaves nothing behind). */
static EVP_PKEY_CTX *verify_ctx(sa_key *k, const jws_alg *a)
{
    EVP_PKEY_CTX *c;
    if (k->vctx && k->valg == a)
        return k->vctx;
    EVP_PKEY_CTX_free(k->vctx);
    EVP_MD_free(k->vmdt);
    k->vctx = NULL;
    k->valg = NULL;
    if (!(k->vmdt = EVP_MD_fetch(NULL, a->md, NULL)))
        return NULL;
    if (!k->vmd && !(k->vmd = EVP_MD_CTX_new()))
        return NULL;
    if (!(c = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL)))
        return NULL;
    if (EVP_PKEY_verify_init(c) != 1 || EVP_PKEY_CTX_set_signature_md(c, k->vmdt) != 1 ||
        (a->fam == FAM_RS && EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) != 1) ||
        (a->fam == FAM_PS && !pss_setup(c, a->md))) {
        EVP_PKEY_CTX_free(c);
        return NULL;
    }
    k->vctx = c;
    k->valg = a;
    return c;
}

int sa_jws_verify(sa_key *k, const char *alg, const unsigned char *input,
                  size_t inlen, const unsigned char *sig, size_t siglen, sa_err *err)
{
    const jws_alg *a;
    EVP_MD_CTX *mctx;
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *der = NULL;
    int derlen = 0, rc;

    if ((!input && inlen) || (!sig && siglen))
        return sa_err_set(err, SA_EARG, 0, "sa_jws_verify: NULL buffer");
    if (!(a = alg_for_key(k, alg, err)))
        return -1;
    if (!input)
        input = (const unsigned char *)"";
    if (!sig)
        sig = (const unsigned char *)"";

    if (a->fam == FAM_HS) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        size_t maclen = 0;
        if (!hmac(k, a, input, inlen, mac, sizeof mac, &maclen))
            return sa_ossl_fail(err, "HMAC failed");
        rc = siglen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0;
        OPENSSL_cleanse(mac, sizeof mac);
        return rc ? 1 : mismatch(err);
    }
    if (a->fam == FAM_ES) {
        if (siglen != 2 * k->coord)
            return mismatch(err);
        if (!ec_raw_to_der(sig, k->coord, &der, &derlen))
            return sa_ossl_nomem(err);
        sig = der;
        siglen = (size_t)derlen;
    }
    if (a->fam != FAM_ED) {
        /* Hash here, then the bare public-key operation on a kept context. */
        unsigned char dig[EVP_MAX_MD_SIZE];
        unsigned int diglen = 0;
        if (!(pctx = verify_ctx(k, a))) {
            OPENSSL_free(der);
            return sa_ossl_fail(err, "cannot set up signature verification");
        }
        if (EVP_DigestInit_ex2(k->vmd, k->vmdt, NULL) != 1 ||
            EVP_DigestUpdate(k->vmd, input, inlen) != 1 ||
            EVP_DigestFinal_ex(k->vmd, dig, &diglen) != 1) {
            OPENSSL_free(der);
            return sa_ossl_fail(err, "hash failed");
        }
        /* Key and alg are known good here: any failure is a bad signature. */
        rc = EVP_PKEY_verify(pctx, sig, siglen, dig, diglen);
        OPENSSL_free(der);
        return rc == 1 ? 1 : mismatch(err);
    }
    if (!(mctx = EVP_MD_CTX_new())) {
        OPENSSL_free(der);
        return sa_ossl_nomem(err);
    }
    if (EVP_DigestVerifyInit_ex(mctx, &pctx, a->md, NULL, NULL, k->pkey, NULL) != 1 ||
        (a->fam == FAM_PS && !pss_setup(pctx, a->md))) {
        EVP_MD_CTX_free(mctx);
        OPENSSL_free(der);
        return sa_ossl_fail(err, "cannot set up signature verification");
    }
    /* Key and alg are known good here: any failure is a bad signature. */
    rc = EVP_DigestVerify(mctx, sig, siglen, input, inlen);
    EVP_MD_CTX_free(mctx);
    OPENSSL_free(der);
    if (rc != 1)
        return mismatch(err);
    return 1;
}

/* The alg entry if k can sign with alg, and the signature size. */
static const jws_alg *sign_alg(const sa_key *k, const char *alg, size_t *size, sa_err *err)
{
    const jws_alg *a = alg_for_key(k, alg, err);
    int n;
    if (!a)
        return NULL;
    if (!k->priv) {
        sa_err_set(err, SA_EARG, 0, "cannot sign with %s: the key has no private part",
                   a->info.name);
        return NULL;
    }
    switch (a->fam) {
    case FAM_HS: *size = a->mdlen; break;
    case FAM_ES: *size = 2 * k->coord; break;
    case FAM_ED: *size = 64; break;
    default:
        n = EVP_PKEY_get_size(k->pkey);
        if (n <= 0) {
            sa_ossl_fail(err, "cannot read the key size");
            return NULL;
        }
        *size = (size_t)n;
    }
    return a;
}

int sa_jws_sign_size(const sa_key *k, const char *alg, size_t *size, sa_err *err)
{
    size_t n = 0;
    if (!size)
        return sa_err_set(err, SA_EARG, 0, "sa_jws_sign_size: NULL size");
    if (!sign_alg(k, alg, &n, err))
        return -1;
    *size = n;
    return 0;
}

/* DER ECDSA signature to raw R||S of 2 * coord bytes. */
static int ec_der_to_raw(const unsigned char *der, size_t derlen, size_t coord,
                         unsigned char *out)
{
    const unsigned char *p = der;
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG *es;
    int ok = 0;
    if (derlen > INT_MAX || !(es = d2i_ECDSA_SIG(NULL, &p, (long)derlen)))
        return 0;
    ECDSA_SIG_get0(es, &r, &s);
    if (r && s && BN_bn2binpad(r, out, (int)coord) == (int)coord &&
        BN_bn2binpad(s, out + coord, (int)coord) == (int)coord)
        ok = 1;
    ECDSA_SIG_free(es);
    return ok;
}

int sa_jws_sign_to(const sa_key *k, const char *alg, const unsigned char *input,
                   size_t inlen, unsigned char *out, size_t outcap, size_t *outlen,
                   sa_err *err)
{
    const jws_alg *a;
    size_t size = 0, len;
    EVP_MD_CTX *mctx;
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char der[256]; /* DER ECDSA P-521 signature is at most 139 bytes */
    int ok;

    if ((!input && inlen) || !out || !outlen)
        return sa_err_set(err, SA_EARG, 0, "sa_jws_sign_to: NULL buffer");
    *outlen = 0;
    if (!(a = sign_alg(k, alg, &size, err)))
        return -1;
    if (outcap < size)
        return sa_err_set(err, SA_EARG, 0, "signature buffer too small (%zu < %zu)", outcap,
                          size);
    if (!input)
        input = (const unsigned char *)"";

    if (a->fam == FAM_HS) {
        if (!hmac(k, a, input, inlen, out, outcap, &len) || len != size)
            return sa_ossl_fail(err, "HMAC failed");
        *outlen = len;
        return 0;
    }
    if (!(mctx = EVP_MD_CTX_new()))
        return sa_ossl_nomem(err);
    ok = EVP_DigestSignInit_ex(mctx, &pctx, a->md, NULL, NULL, k->pkey, NULL) == 1 &&
         (a->fam != FAM_PS || pss_setup(pctx, a->md));
    if (ok && a->fam == FAM_ES) {
        len = sizeof der;
        ok = EVP_DigestSign(mctx, der, &len, input, inlen) == 1 &&
             ec_der_to_raw(der, len, k->coord, out);
        len = size;
    } else if (ok) {
        len = outcap;
        ok = EVP_DigestSign(mctx, out, &len, input, inlen) == 1 && len == size;
    }
    EVP_MD_CTX_free(mctx);
    if (!ok) {
        OPENSSL_cleanse(out, outcap);
        return sa_ossl_fail(err, "signing failed");
    }
    *outlen = len;
    return 0;
}

int sa_jws_sign(const sa_key *k, const char *alg, const unsigned char *input,
                size_t inlen, unsigned char **sig, size_t *siglen, sa_err *err)
{
    size_t size = 0;
    unsigned char *buf;
    if (!sig || !siglen)
        return sa_err_set(err, SA_EARG, 0, "sa_jws_sign: NULL output");
    *sig = NULL;
    *siglen = 0;
    if (sa_jws_sign_size(k, alg, &size, err) != 0)
        return -1;
    if (!(buf = malloc(size)))
        return sa_ossl_nomem(err);
    if (sa_jws_sign_to(k, alg, input, inlen, buf, size, siglen, err) != 0) {
        free(buf);
        return -1;
    }
    *sig = buf;
    return 0;
}

int sa_jws_hash_for_alg(const char *alg, const unsigned char *in, size_t inlen,
                        unsigned char out[64], sa_err *err)
{
    char name[SA_OSSL_NAME_MAX];
    const jws_alg *a = alg_find(alg);
    size_t len = 0;
    if (!a) {
        sa_ossl_safe_name(name, sizeof name, alg);
        return sa_err_set(err, SA_EVALIDATION, 0, "no hash for alg \"%s\"", name);
    }
    if ((!in && inlen) || !out)
        return sa_err_set(err, SA_EARG, 0, "sa_jws_hash_for_alg: NULL buffer");
    if (!in)
        in = (const unsigned char *)"";
    if (EVP_Q_digest(NULL, a->hashmd, NULL, in, inlen, out, &len) != 1 || len > 64)
        return sa_ossl_fail(err, "hash failed");
    return (int)len;
}
