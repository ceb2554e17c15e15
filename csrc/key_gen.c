/* Keys made here from OpenSSL's CSPRNG, and the private part of an EC or
 * Ed25519 key exported (a generated DPoP key is kept, encrypted, in a
 * token's store entry). Split from key.c, which parses and inspects keys. */
#include "key.h"

#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "key_impl.h"
#include "ossl.h"

sa_key *sa_key_generate(const char *kty, const char *crv, sa_err *err)
{
    char cname[SA_OSSL_NAME_MAX];
    const sa_ec_curve *cv = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    sa_key *k;
    int ec = kty && strcmp(kty, "EC") == 0;

    if (ec) {
        if (!(cv = sa_curve_by_jwk(crv))) {
            sa_ossl_safe_name(cname, sizeof cname, crv);
            sa_err_set(err, SA_EVALIDATION, 0, "unsupported EC curve \"%s\" "
                       "(P-256, P-384, P-521)", cname);
            return NULL;
        }
    } else if (!(kty && strcmp(kty, "OKP") == 0 && crv && strcmp(crv, "Ed25519") == 0)) {
        sa_ossl_safe_name(cname, sizeof cname, kty);
        sa_err_set(err, SA_EVALIDATION, 0, "cannot generate a key of type \"%s\" "
                   "(EC P-256, P-384, P-521, or OKP Ed25519)", cname);
        return NULL;
    }
    if (!(k = sa_key_alloc(ec ? SA_KEY_EC : SA_KEY_OKP, err)))
        return NULL;
    /* EVP key generation draws on OpenSSL's private CSPRNG (RAND_priv_bytes) */
    ctx = EVP_PKEY_CTX_new_from_name(NULL, ec ? "EC" : "ED25519", NULL);
    if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 ||
        (ec && EVP_PKEY_CTX_set_group_name(ctx, cv->ossl) != 1) ||
        EVP_PKEY_generate(ctx, &k->pkey) != 1 || !k->pkey) {
        EVP_PKEY_CTX_free(ctx);
        sa_ossl_fail(err, "key generation failed");
        sa_key_free(k);
        return NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    if (ec) {
        k->curve = cv->jwk;
        k->coord = cv->coord;
        k->bits = cv->bits;
    } else {
        k->curve = "Ed25519";
        k->bits = 256;
    }
    k->priv = 1;
    return k;
}

int sa_key_private_d(const sa_key *k, unsigned char *out, size_t cap, size_t *outlen,
                     sa_err *err)
{
    if (!k || !out || !outlen)
        return sa_err_set(err, SA_EARG, 0, "sa_key_private_d: NULL argument");
    *outlen = 0;
    if (!k->priv || (k->type != SA_KEY_EC && k->type != SA_KEY_OKP))
        return sa_err_set(err, SA_EARG, 0, "the key has no exportable private part "
                          "(EC and Ed25519 private keys only)");
    if (k->type == SA_KEY_EC) {
        BIGNUM *d = NULL;
        int ok = cap >= k->coord && EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_PRIV_KEY, &d) == 1 &&
                 BN_bn2binpad(d, out, (int)k->coord) == (int)k->coord;
        BN_clear_free(d);
        if (!ok) {
            OPENSSL_cleanse(out, cap);
            return sa_ossl_fail(err, "cannot export the EC private key");
        }
        *outlen = k->coord;
        return 0;
    }
    *outlen = cap;
    if (EVP_PKEY_get_raw_private_key(k->pkey, out, outlen) != 1 || *outlen != ED25519_LEN) {
        OPENSSL_cleanse(out, cap);
        *outlen = 0;
        return sa_ossl_fail(err, "cannot export the Ed25519 private key");
    }
    return 0;
}
