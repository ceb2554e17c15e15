/* Public JWK members of a key (sa_key_public_jwk, key.h): the bytes a
 * caller base64url-encodes to publish the key. */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "key_impl.h"
#include "ossl.h"

static int bn_param_out(EVP_PKEY *pkey, const char *name, unsigned char *out, size_t cap,
                        size_t *outlen, int pad)
{
    BIGNUM *bn = NULL;
    int n, ok = 0;
    if (EVP_PKEY_get_bn_param(pkey, name, &bn) == 1) {
        n = BN_num_bytes(bn);
        if (pad > 0) {
            if (n <= pad && BN_bn2binpad(bn, out, pad) == pad) {
                *outlen = (size_t)pad;
                ok = 1;
            }
        } else if (n >= 0 && (size_t)n <= cap) {
            *outlen = (size_t)BN_bn2bin(bn, out);
            ok = 1;
        }
    }
    BN_free(bn);
    return ok;
}

int sa_key_public_jwk(const sa_key *k, sa_jwk_public *out, sa_err *err)
{
    if (!k || !out)
        return sa_err_set(err, SA_EARG, 0, "sa_key_public_jwk: NULL argument");
    memset(out, 0, sizeof *out);
    out->kty = sa_key_kty(k);
    out->crv = k->curve;
    switch (k->type) {
    case SA_KEY_RSA:
        if (!bn_param_out(k->pkey, OSSL_PKEY_PARAM_RSA_N, out->n, sizeof out->n, &out->nlen, 0) ||
            !bn_param_out(k->pkey, OSSL_PKEY_PARAM_RSA_E, out->e, sizeof out->e, &out->elen, 0))
            return sa_ossl_fail(err, "cannot export the RSA public key");
        return 0;
    case SA_KEY_EC:
        if (!bn_param_out(k->pkey, OSSL_PKEY_PARAM_EC_PUB_X, out->x, sizeof out->x, &out->xlen,
                          (int)k->coord) ||
            !bn_param_out(k->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, out->y, sizeof out->y, &out->ylen,
                          (int)k->coord))
            return sa_ossl_fail(err, "cannot export the EC public key");
        return 0;
    case SA_KEY_OKP:
        out->xlen = sizeof out->x;
        if (EVP_PKEY_get_raw_public_key(k->pkey, out->x, &out->xlen) != 1 ||
            out->xlen != ED25519_LEN)
            return sa_ossl_fail(err, "cannot export the Ed25519 public key");
        return 0;
    default:
        memset(out, 0, sizeof *out);
        return sa_err_set(err, SA_EARG, 0, "an oct (HMAC) key has no public part");
    }
}

