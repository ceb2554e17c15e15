/* X25519 keys (RFC 8037: OKP, crv "X25519"), for ECDH-ES key agreement
 * only (jwe.c): from JWK members and from PEM. Kept apart from key.c's
 * constructors, which make keys that sign and verify: sa_key_okp and
 * sa_key_pem still refuse X25519, so no key set, client assertion or DPoP
 * key can hold one. */
#include "key.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "key_impl.h"
#include "ossl.h"

#define X25519_LEN 32

/* Takes pkey (freed on failure). */
static sa_key *x25519_key(EVP_PKEY *pkey, int priv, sa_err *err)
{
    sa_key *k = sa_key_alloc(SA_KEY_OKP, err);
    if (!k) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    k->curve = "X25519";
    k->bits = 256;
    k->coord = X25519_LEN;
    k->priv = priv;
    k->pkey = pkey;
    return k;
}

sa_key *sa_key_x25519(const unsigned char *x, size_t xlen, const unsigned char *d, size_t dlen,
                      sa_err *err)
{
    unsigned char pub[X25519_LEN];
    size_t publen = sizeof pub;
    EVP_PKEY *pkey;

    if ((x || xlen) && (!x || xlen != X25519_LEN)) {
        sa_err_set(err, SA_EVALIDATION, 0, "X25519 public key x must be %d bytes, got %zu",
                   X25519_LEN, x ? xlen : 0);
        return NULL;
    }
    if ((d || dlen) && (!d || dlen != X25519_LEN)) {
        sa_err_set(err, SA_EVALIDATION, 0, "X25519 private key d must be %d bytes, got %zu",
                   X25519_LEN, d ? dlen : 0);
        return NULL;
    }
    if (!x && !d) {
        sa_err_set(err, SA_EVALIDATION, 0, "X25519 key needs x or d");
        return NULL;
    }
    if (!d) {
        if (!(pkey = EVP_PKEY_new_raw_public_key_ex(NULL, "X25519", NULL, x, xlen))) {
            sa_ossl_fail(err, "invalid X25519 public key");
            return NULL;
        }
        return x25519_key(pkey, 0, err);
    }
    if (!(pkey = EVP_PKEY_new_raw_private_key_ex(NULL, "X25519", NULL, d, dlen))) {
        sa_ossl_fail(err, "invalid X25519 private key");
        return NULL;
    }
    if (x && (EVP_PKEY_get_raw_public_key(pkey, pub, &publen) != 1 || publen != X25519_LEN ||
              CRYPTO_memcmp(pub, x, X25519_LEN) != 0)) {
        EVP_PKEY_free(pkey);
        ERR_clear_error();
        sa_err_set(err, SA_EVALIDATION, 0, "X25519 private key d does not match x");
        return NULL;
    }
    return x25519_key(pkey, 1, err);
}

sa_key *sa_key_x25519_pem(const char *pem, size_t len, sa_err *err)
{
    OSSL_DECODER_CTX *dctx;
    const unsigned char *data = (const unsigned char *)pem;
    size_t left = len, rawlen = 0;
    EVP_PKEY *pkey = NULL;
    int priv;

    if (!pem || len == 0) {
        sa_err_set(err, SA_EVALIDATION, 0, "PEM key is empty");
        return NULL;
    }
    dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, "X25519", 0, NULL, NULL);
    if (!dctx || OSSL_DECODER_CTX_set_passphrase_cb(dctx, sa_no_passphrase, NULL) != 1) {
        OSSL_DECODER_CTX_free(dctx);
        sa_ossl_nomem(err);
        return NULL;
    }
    if (OSSL_DECODER_from_data(dctx, &data, &left) != 1 || !pkey || !EVP_PKEY_is_a(pkey, "X25519")) {
        OSSL_DECODER_CTX_free(dctx);
        EVP_PKEY_free(pkey);
        sa_ossl_fail(err, "cannot read an X25519 key from the PEM data");
        return NULL;
    }
    OSSL_DECODER_CTX_free(dctx);
    priv = EVP_PKEY_get_raw_private_key(pkey, NULL, &rawlen) == 1 && rawlen == X25519_LEN;
    ERR_clear_error(); /* the probe fails by design on a public key */
    return x25519_key(pkey, priv, err);
}
