/* Keys on OpenSSL 3 (EVP, OSSL_PARAM, OSSL_DECODER; no deprecated
 * RSA_/EC_KEY APIs): from JWK members and PEM, inspection, public JWK
 * export. See key.h for the contract. */
#include "key.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "key_impl.h"
#include "ossl.h"

#define RSA_MAX_BYTES 2048  /* 16384 bits, OpenSSL's own verify limit */
#define RSA_E_MAX_BYTES 32  /* 256 bits, SP 800-56B */
#define OCT_MAX_BYTES 65536


static const sa_ec_curve curves[] = {
    { "P-256", "prime256v1", "secp256r1", 32, 256 },
    { "P-384", "secp384r1", "secp384r1", 48, 384 },
    { "P-521", "secp521r1", "secp521r1", 66, 521 },
};


/* ------------------------------------------------------------- helpers */

const sa_ec_curve *sa_curve_by_jwk(const char *crv)
{
    size_t i;
    if (!crv)
        return NULL;
    for (i = 0; i < sizeof curves / sizeof curves[0]; i++)
        if (strcmp(curves[i].jwk, crv) == 0)
            return &curves[i];
    return NULL;
}

static const sa_ec_curve *curve_by_ossl(const char *name)
{
    size_t i;
    for (i = 0; i < sizeof curves / sizeof curves[0]; i++)
        if (strcmp(curves[i].ossl, name) == 0 || strcmp(curves[i].alias, name) == 0 ||
            strcmp(curves[i].jwk, name) == 0)
            return &curves[i];
    return NULL;
}

static const char *kty_name(int type)
{
    switch (type) {
    case SA_KEY_RSA: return "RSA";
    case SA_KEY_EC: return "EC";
    case SA_KEY_OKP: return "OKP";
    case SA_KEY_OCT: return "oct";
    default: return "unknown";
    }
}

sa_key *sa_key_alloc(int type, sa_err *err)
{
    sa_key *k = calloc(1, sizeof *k);
    if (!k) {
        sa_ossl_nomem(err);
        return NULL;
    }
    k->type = type;
    return k;
}

void sa_key_free(sa_key *k)
{
    if (!k)
        return;
    EVP_PKEY_CTX_free(k->vctx);
    EVP_MD_CTX_free(k->vmd);
    EVP_MD_free(k->vmdt);
    EVP_PKEY_free(k->pkey);
    if (k->secret) {
        OPENSSL_cleanse(k->secret, k->secretlen);
        free(k->secret);
    }
    OPENSSL_cleanse(k, sizeof *k);
    free(k);
}

/* Build a key of OpenSSL type `type` from params; selection as for
 * EVP_PKEY_fromdata. */
static EVP_PKEY *pkey_fromdata(const char *type, int selection, OSSL_PARAM *params)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (ctx && EVP_PKEY_fromdata_init(ctx) == 1)
        if (EVP_PKEY_fromdata(ctx, &pkey, selection, params) != 1)
            pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

/* ------------------------------------------------------------------ RSA */

static int rsa_check_public(const unsigned char *n, size_t nlen, const unsigned char *e,
                            size_t elen, sa_err *err)
{
    if (nlen == 0)
        return sa_err_set(err, SA_EVALIDATION, 0, "RSA modulus n is empty");
    if (nlen > RSA_MAX_BYTES)
        return sa_err_set(err, SA_EVALIDATION, 0, "RSA modulus n is too large (%zu bytes, "
                          "at most %d)", nlen, RSA_MAX_BYTES);
    if ((n[nlen - 1] & 1) == 0)
        return sa_err_set(err, SA_EVALIDATION, 0, "RSA modulus n is even");
    if (elen == 0 || (elen == 1 && e[0] == 1))
        return sa_err_set(err, SA_EVALIDATION, 0, "RSA exponent e is 0 or 1");
    if (elen > RSA_E_MAX_BYTES || elen >= nlen)
        return sa_err_set(err, SA_EVALIDATION, 0, "RSA exponent e is too large");
    if ((e[elen - 1] & 1) == 0)
        return sa_err_set(err, SA_EVALIDATION, 0, "RSA exponent e is even");
    return 0;
}

/* Fill k->bits from the modulus and check its size. */
static int rsa_finish(sa_key *k, sa_err *err)
{
    k->bits = EVP_PKEY_get_bits(k->pkey);
    if (k->bits <= 0)
        return sa_ossl_fail(err, "cannot read the RSA key size");
    if (k->bits > RSA_MAX_BYTES * 8)
        return sa_err_set(err, SA_EVALIDATION, 0, "RSA key is too large (%d bits)", k->bits);
    return 0;
}

sa_key *sa_key_rsa(const unsigned char *n, size_t nlen, const unsigned char *e,
                   size_t elen, sa_err *err)
{
    sa_key *k = NULL;
    BIGNUM *bn = NULL, *be = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;

    if ((!n && nlen) || (!e && elen)) {
        sa_err_set(err, SA_EARG, 0, "sa_key_rsa: NULL component");
        return NULL;
    }
    sa_ossl_strip_zeros(&n, &nlen);
    sa_ossl_strip_zeros(&e, &elen);
    if (rsa_check_public(n, nlen, e, elen, err) != 0)
        return NULL;
    if (!(k = sa_key_alloc(SA_KEY_RSA, err)))
        return NULL;
    bn = sa_ossl_bn_from(n, nlen, 0);
    be = sa_ossl_bn_from(e, elen, 0);
    bld = OSSL_PARAM_BLD_new();
    if (!bn || !be || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) ||
        !(params = OSSL_PARAM_BLD_to_param(bld))) {
        sa_ossl_nomem(err);
        goto fail;
    }
    k->pkey = pkey_fromdata("RSA", EVP_PKEY_PUBLIC_KEY, params);
    if (!k->pkey) {
        sa_ossl_fail(err, "invalid RSA public key");
        goto fail;
    }
    if (rsa_finish(k, err) != 0)
        goto fail;
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    return k;
fail:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    sa_key_free(k);
    return NULL;
}

static const char *const rsa_param_names[8] = {
    OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
    OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
    OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
    OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
};

/* Consistency of an RSA private key, cheaply: OpenSSL's pairwise check also
 * tests p and q for primality, about 45 ms for 2048 bits. With the CRT
 * members: n = p*q, e*d = 1 mod p-1 and mod q-1, dp = d mod p-1,
 * dq = d mod q-1, qi*q = 1 mod p (RFC 8017 3.2). Without: (2^d)^e = 2 mod n.
 * Catches a corrupted or mismatched member of any kind. */
static int rsa_consistent(EVP_PKEY *pkey)
{
    BIGNUM *v[8] = { NULL };
    BIGNUM *t, *two, *pm1, *qm1;
    BN_CTX *ctx = BN_CTX_secure_new();
    int i, ok = 0;

    for (i = 0; i < 8; i++)
        if (EVP_PKEY_get_bn_param(pkey, rsa_param_names[i], &v[i]) != 1)
            v[i] = NULL;
    if (!ctx || !v[0] || !v[1] || !v[2]) {
        BN_CTX_free(ctx);
        goto done;
    }
    BN_CTX_start(ctx);
    t = BN_CTX_get(ctx);
    two = BN_CTX_get(ctx);
    pm1 = BN_CTX_get(ctx);
    qm1 = BN_CTX_get(ctx);
    if (!qm1)
        goto end;
    if (v[3] || v[4] || v[5] || v[6] || v[7]) {
        ok = v[3] && v[4] && v[5] && v[6] && v[7] &&
             BN_mul(t, v[3], v[4], ctx) && BN_cmp(t, v[0]) == 0 &&
             BN_sub(pm1, v[3], BN_value_one()) && BN_sub(qm1, v[4], BN_value_one()) &&
             BN_mod_mul(t, v[1], v[2], pm1, ctx) && BN_is_one(t) &&
             BN_mod_mul(t, v[1], v[2], qm1, ctx) && BN_is_one(t) &&
             BN_mod(t, v[2], pm1, ctx) && BN_cmp(t, v[5]) == 0 &&
             BN_mod(t, v[2], qm1, ctx) && BN_cmp(t, v[6]) == 0 &&
             BN_mod_mul(t, v[7], v[4], v[3], ctx) && BN_is_one(t);
    } else {
        ok = BN_set_word(two, 2) &&
             BN_mod_exp_mont_consttime(t, two, v[2], v[0], ctx, NULL) &&
             BN_mod_exp(t, t, v[1], v[0], ctx) && BN_is_word(t, 2);
    }
end:
    BN_CTX_end(ctx);
    BN_CTX_free(ctx);
done:
    for (i = 0; i < 8; i++)
        BN_clear_free(v[i]);
    ERR_clear_error(); /* absent CRT members fail their lookup by design */
    return ok;
}

/* Key consistency check (EC: the public point is d*G). */
static int pairwise_ok(EVP_PKEY *pkey)
{
    int ok = 0;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (ctx)
        ok = EVP_PKEY_pairwise_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

sa_key *sa_key_rsa_private(const sa_jwk_rsa_priv *c, sa_err *err)
{
    const unsigned char *v[8];
    size_t len[8];
    BIGNUM *bn[8] = { NULL };
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    sa_key *k = NULL;
    int i, ncomp, ncrt = 0;

    if (!c) {
        sa_err_set(err, SA_EARG, 0, "sa_key_rsa_private: NULL components");
        return NULL;
    }
    v[0] = c->n, len[0] = c->nlen;
    v[1] = c->e, len[1] = c->elen;
    v[2] = c->d, len[2] = c->dlen;
    v[3] = c->p, len[3] = c->plen;
    v[4] = c->q, len[4] = c->qlen;
    v[5] = c->dp, len[5] = c->dplen;
    v[6] = c->dq, len[6] = c->dqlen;
    v[7] = c->qi, len[7] = c->qilen;
    for (i = 0; i < 8; i++) {
        if (!v[i] && len[i]) {
            sa_err_set(err, SA_EARG, 0, "sa_key_rsa_private: NULL component");
            return NULL;
        }
        if (!v[i])
            len[i] = 0;
        sa_ossl_strip_zeros(&v[i], &len[i]);
        if (i >= 3 && len[i] > 0)
            ncrt++;
    }
    if (rsa_check_public(v[0], len[0], v[1], len[1], err) != 0)
        return NULL;
    if (len[2] == 0 || len[2] > len[0]) {
        sa_err_set(err, SA_EVALIDATION, 0, "RSA private exponent d is missing or too large");
        return NULL;
    }
    if (ncrt != 0 && ncrt != 5) {
        sa_err_set(err, SA_EVALIDATION, 0, "RSA private key needs all of p, q, dp, dq, qi "
                   "or none of them");
        return NULL;
    }
    for (i = 3; i < 8; i++) {
        if (len[i] > len[0]) {
            sa_err_set(err, SA_EVALIDATION, 0, "RSA private key member is too large");
            return NULL;
        }
    }
    ncomp = ncrt ? 8 : 3;
    if (!(k = sa_key_alloc(SA_KEY_RSA, err)))
        return NULL;
    if (!(bld = OSSL_PARAM_BLD_new())) {
        sa_ossl_nomem(err);
        goto fail;
    }
    for (i = 0; i < ncomp; i++) {
        bn[i] = sa_ossl_bn_from(v[i], len[i], i >= 2);
        if (!bn[i] || !OSSL_PARAM_BLD_push_BN(bld, rsa_param_names[i], bn[i])) {
            sa_ossl_nomem(err);
            goto fail;
        }
    }
    if (!(params = OSSL_PARAM_BLD_to_param(bld))) {
        sa_ossl_nomem(err);
        goto fail;
    }
    k->pkey = pkey_fromdata("RSA", EVP_PKEY_KEYPAIR, params);
    if (!k->pkey) {
        sa_ossl_fail(err, "invalid RSA private key");
        goto fail;
    }
    if (!rsa_consistent(k->pkey)) {
        sa_ossl_fail(err, "inconsistent RSA private key");
        goto fail;
    }
    if (rsa_finish(k, err) != 0)
        goto fail;
    k->priv = 1;
    OSSL_PARAM_free(params); /* wipes the secure (private) part */
    OSSL_PARAM_BLD_free(bld);
    for (i = 0; i < 8; i++)
        BN_clear_free(bn[i]);
    return k;
fail:
    OSSL_PARAM_free(params); /* wipes the secure (private) part */
    OSSL_PARAM_BLD_free(bld);
    for (i = 0; i < 8; i++)
        BN_clear_free(bn[i]);
    sa_key_free(k);
    return NULL;
}

/* ------------------------------------------------------------------- EC */

/* Not at infinity, coordinates below p, on the curve. The "quick" check
 * skips order * Q = infinity, which only matters for curves with a cofactor
 * (P-256/384/521 have none) and costs ~0.4 ms on P-384. */
static int ec_public_ok(EVP_PKEY *pkey)
{
    int ok = 0;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (ctx)
        ok = EVP_PKEY_public_check_quick(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

static sa_key *ec_build(const char *crv, const unsigned char *x, size_t xlen,
                        const unsigned char *y, size_t ylen, const unsigned char *d,
                        size_t dlen, int priv, sa_err *err)
{
    unsigned char pt[1 + 2 * 66];
    char cname[SA_OSSL_NAME_MAX];
    const sa_ec_curve *cv = sa_curve_by_jwk(crv);
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    BIGNUM *bd = NULL;
    sa_key *k = NULL;

    if (!cv) {
        sa_ossl_safe_name(cname, sizeof cname, crv);
        sa_err_set(err, SA_EVALIDATION, 0, "unsupported EC curve \"%s\" "
                   "(P-256, P-384, P-521)", cname);
        return NULL;
    }
    if ((!x && xlen) || (!y && ylen) || (!d && dlen)) {
        sa_err_set(err, SA_EARG, 0, "sa_key_ec: NULL component");
        return NULL;
    }
    if (!x || !y || xlen != cv->coord || ylen != cv->coord) {
        sa_err_set(err, SA_EVALIDATION, 0, "EC %s coordinates must be %zu bytes, got x %zu, "
                   "y %zu", cv->jwk, cv->coord, xlen, ylen);
        return NULL;
    }
    if (priv && dlen != cv->coord) {
        sa_err_set(err, SA_EVALIDATION, 0, "EC %s private key d must be %zu bytes, got %zu",
                   cv->jwk, cv->coord, dlen);
        return NULL;
    }
    pt[0] = 0x04; /* uncompressed point */
    memcpy(pt + 1, x, xlen);
    memcpy(pt + 1 + xlen, y, ylen);
    if (!(k = sa_key_alloc(SA_KEY_EC, err)))
        return NULL;
    k->curve = cv->jwk;
    k->coord = cv->coord;
    k->bits = cv->bits;
    bld = OSSL_PARAM_BLD_new();
    if (!bld ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, cv->ossl, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * cv->coord) ||
        (priv && (!(bd = sa_ossl_bn_from(d, dlen, 1)) ||
                  !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, bd))) ||
        !(params = OSSL_PARAM_BLD_to_param(bld))) {
        sa_ossl_nomem(err);
        goto fail;
    }
    /* Decoding the point already refuses one that is not on the curve. */
    k->pkey = pkey_fromdata("EC", priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params);
    if (!k->pkey) {
        sa_ossl_fail(err, "invalid EC public key (point not on the curve)");
        goto fail;
    }
    if (!ec_public_ok(k->pkey)) {
        sa_ossl_fail(err, "invalid EC public key (point not on the curve)");
        goto fail;
    }
    if (priv && !pairwise_ok(k->pkey)) {
        sa_ossl_fail(err, "EC private key d does not match x, y");
        goto fail;
    }
    k->priv = priv;
    OSSL_PARAM_free(params); /* wipes the secure (private) part */
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(bd);
    return k;
fail:
    OSSL_PARAM_free(params); /* wipes the secure (private) part */
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(bd);
    sa_key_free(k);
    return NULL;
}

sa_key *sa_key_ec(const char *crv, const unsigned char *x, size_t xlen,
                  const unsigned char *y, size_t ylen, sa_err *err)
{
    return ec_build(crv, x, xlen, y, ylen, NULL, 0, 0, err);
}

sa_key *sa_key_ec_private(const char *crv, const unsigned char *x, size_t xlen,
                          const unsigned char *y, size_t ylen,
                          const unsigned char *d, size_t dlen, sa_err *err)
{
    return ec_build(crv, x, xlen, y, ylen, d, dlen, 1, err);
}

/* ------------------------------------------------------------------ OKP */

static int okp_curve_ok(const char *crv, sa_err *err)
{
    char cname[SA_OSSL_NAME_MAX];
    if (crv && strcmp(crv, "Ed25519") == 0)
        return 0;
    sa_ossl_safe_name(cname, sizeof cname, crv);
    return sa_err_set(err, SA_EVALIDATION, 0, "unsupported OKP curve \"%s\" (Ed25519)", cname);
}

sa_key *sa_key_okp(const char *crv, const unsigned char *x, size_t xlen, sa_err *err)
{
    sa_key *k;
    if (okp_curve_ok(crv, err) != 0)
        return NULL;
    if (!x || xlen != ED25519_LEN) {
        sa_err_set(err, SA_EVALIDATION, 0, "Ed25519 public key x must be %d bytes, got %zu",
                   ED25519_LEN, x ? xlen : 0);
        return NULL;
    }
    if (!(k = sa_key_alloc(SA_KEY_OKP, err)))
        return NULL;
    k->curve = "Ed25519";
    k->bits = 256;
    k->pkey = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x, xlen);
    if (!k->pkey) {
        sa_ossl_fail(err, "invalid Ed25519 public key");
        sa_key_free(k);
        return NULL;
    }
    return k;
}

sa_key *sa_key_okp_private(const char *crv, const unsigned char *x, size_t xlen,
                           const unsigned char *d, size_t dlen, sa_err *err)
{
    unsigned char pub[ED25519_LEN];
    size_t publen = sizeof pub;
    sa_key *k;

    if (okp_curve_ok(crv, err) != 0)
        return NULL;
    if (!d || dlen != ED25519_LEN) {
        sa_err_set(err, SA_EVALIDATION, 0, "Ed25519 private key d must be %d bytes, got %zu",
                   ED25519_LEN, d ? dlen : 0);
        return NULL;
    }
    if ((x || xlen) && (!x || xlen != ED25519_LEN)) {
        sa_err_set(err, SA_EVALIDATION, 0, "Ed25519 public key x must be %d bytes, got %zu",
                   ED25519_LEN, x ? xlen : 0);
        return NULL;
    }
    if (!(k = sa_key_alloc(SA_KEY_OKP, err)))
        return NULL;
    k->curve = "Ed25519";
    k->bits = 256;
    k->pkey = EVP_PKEY_new_raw_private_key_ex(NULL, "ED25519", NULL, d, dlen);
    if (!k->pkey) {
        sa_ossl_fail(err, "invalid Ed25519 private key");
        goto fail;
    }
    if (x) {
        if (EVP_PKEY_get_raw_public_key(k->pkey, pub, &publen) != 1 ||
            publen != ED25519_LEN) {
            sa_ossl_fail(err, "cannot derive the Ed25519 public key");
            goto fail;
        }
        if (CRYPTO_memcmp(pub, x, ED25519_LEN) != 0) {
            sa_err_set(err, SA_EVALIDATION, 0, "Ed25519 private key d does not match x");
            goto fail;
        }
    }
    k->priv = 1;
    return k;
fail:
    sa_key_free(k);
    return NULL;
}

/* ------------------------------------------------------------------ oct */

sa_key *sa_key_oct(const unsigned char *key, size_t klen, sa_err *err)
{
    sa_key *k;
    if (!key || klen == 0) {
        sa_err_set(err, SA_EVALIDATION, 0, "HMAC key is empty");
        return NULL;
    }
    if (klen > OCT_MAX_BYTES) {
        sa_err_set(err, SA_EVALIDATION, 0, "HMAC key is too large (%zu bytes)", klen);
        return NULL;
    }
    if (!(k = sa_key_alloc(SA_KEY_OCT, err)))
        return NULL;
    if (!(k->secret = malloc(klen))) {
        sa_ossl_nomem(err);
        sa_key_free(k);
        return NULL;
    }
    memcpy(k->secret, key, klen);
    k->secretlen = klen;
    k->bits = (int)(klen * 8);
    k->priv = 1;
    return k;
}

/* ------------------------------------------------------------------ PEM */

/* Encrypted PEM: refuse instead of letting OpenSSL prompt on a terminal. */
int sa_no_passphrase(char *pass, size_t size, size_t *len, const OSSL_PARAM params[],
                     void *arg)
{
    (void)pass;
    (void)size;
    (void)params;
    (void)arg;
    *len = 0;
    return 0;
}

static int has_bn_param(EVP_PKEY *pkey, const char *name)
{
    BIGNUM *bn = NULL;
    int ok = EVP_PKEY_get_bn_param(pkey, name, &bn) == 1 && bn != NULL;
    BN_clear_free(bn);
    return ok;
}

static int classify_pem_key(sa_key *k, sa_err *err)
{
    EVP_PKEY *pkey = k->pkey;
    if (EVP_PKEY_is_a(pkey, "RSA-PSS")) {
        return sa_err_set(err, SA_EVALIDATION, 0, "RSA-PSS-restricted keys are not supported "
                          "(use a plain RSA key)");
    } else if (EVP_PKEY_is_a(pkey, "RSA")) {
        BIGNUM *e = NULL;
        int ebits;
        k->type = SA_KEY_RSA;
        if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) != 1)
            return sa_ossl_fail(err, "cannot read the RSA exponent");
        ebits = BN_num_bits(e);
        BN_free(e);
        if (ebits > RSA_E_MAX_BYTES * 8)
            return sa_err_set(err, SA_EVALIDATION, 0, "RSA exponent e is too large");
        if (rsa_finish(k, err) != 0)
            return -1;
        k->priv = has_bn_param(pkey, OSSL_PKEY_PARAM_RSA_D);
        if (k->priv && !rsa_consistent(pkey))
            return sa_ossl_fail(err, "inconsistent RSA private key");
    } else if (EVP_PKEY_is_a(pkey, "EC")) {
        char gname[64];
        size_t glen = 0;
        const sa_ec_curve *cv;
        k->type = SA_KEY_EC;
        if (EVP_PKEY_get_group_name(pkey, gname, sizeof gname, &glen) != 1)
            return sa_ossl_fail(err, "EC key without a named curve");
        if (!(cv = curve_by_ossl(gname)))
            return sa_err_set(err, SA_EVALIDATION, 0, "unsupported EC curve %s "
                              "(P-256, P-384, P-521)", gname);
        k->curve = cv->jwk;
        k->coord = cv->coord;
        k->bits = cv->bits;
        k->priv = has_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY);
        glen = 0;
        if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, NULL, 0, &glen) != 1 ||
            glen == 0)
            return sa_err_set(err, SA_EVALIDATION, 0, "the PEM holds EC parameters, not a key");
        if (!ec_public_ok(pkey))
            return sa_ossl_fail(err, "invalid EC public key (point not on the curve)");
        if (k->priv && !pairwise_ok(pkey))
            return sa_ossl_fail(err, "EC private key does not match its public key");
    } else if (EVP_PKEY_is_a(pkey, "ED25519")) {
        size_t len = 0;
        k->type = SA_KEY_OKP;
        k->curve = "Ed25519";
        k->bits = 256;
        k->priv = EVP_PKEY_get_raw_private_key(pkey, NULL, &len) == 1 && len == ED25519_LEN;
    } else {
        return sa_err_set(err, SA_EVALIDATION, 0, "unsupported key type %s in PEM "
                          "(RSA, EC, Ed25519)", EVP_PKEY_get0_type_name(pkey)
                          ? EVP_PKEY_get0_type_name(pkey) : "?");
    }
    ERR_clear_error(); /* the has_* probes fail by design on public keys */
    return 0;
}

sa_key *sa_key_pem(const char *pem, size_t len, sa_err *err)
{
    OSSL_DECODER_CTX *dctx;
    const unsigned char *data = (const unsigned char *)pem;
    size_t left = len;
    sa_key *k;

    if (!pem || len == 0) {
        sa_err_set(err, SA_EVALIDATION, 0, "PEM key is empty");
        return NULL;
    }
    if (!(k = sa_key_alloc(SA_KEY_RSA, err)))
        return NULL;
    dctx = OSSL_DECODER_CTX_new_for_pkey(&k->pkey, "PEM", NULL, NULL, 0, NULL, NULL);
    if (!dctx || OSSL_DECODER_CTX_set_passphrase_cb(dctx, sa_no_passphrase, NULL) != 1) {
        OSSL_DECODER_CTX_free(dctx);
        sa_ossl_nomem(err);
        sa_key_free(k);
        return NULL;
    }
    if (OSSL_DECODER_from_data(dctx, &data, &left) != 1 || !k->pkey) {
        OSSL_DECODER_CTX_free(dctx);
        sa_ossl_fail(err, "cannot read a key from the PEM data "
                       "(not a PEM key, damaged, or encrypted)");
        sa_key_free(k);
        return NULL;
    }
    OSSL_DECODER_CTX_free(dctx);
    if (classify_pem_key(k, err) != 0) {
        ERR_clear_error();
        sa_key_free(k);
        return NULL;
    }
    return k;
}

/* ----------------------------------------------------------- inspection */

int sa_key_type_of(const sa_key *k) { return k ? k->type : 0; }
const char *sa_key_kty(const sa_key *k) { return k ? kty_name(k->type) : NULL; }
const char *sa_key_curve(const sa_key *k) { return k ? k->curve : NULL; }
int sa_key_bits(const sa_key *k) { return k ? k->bits : 0; }
int sa_key_has_private(const sa_key *k) { return k ? k->priv : 0; }
