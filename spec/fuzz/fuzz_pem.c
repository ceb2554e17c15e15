/* libFuzzer harness: PEM keys (sa_key_pem) of every kind OpenSSL's decoders
 * know, then what a key can do: inspection, public export, and for a
 * private key, sign-then-verify with each alg it allows.
 * Input: the PEM text (any bytes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jws.h"

static const char *const algs[] = { "RS256", "PS384", "ES256", "ES384", "ES512", "EdDSA",
                                    "HS256" };
static const unsigned char msg[] = "eyJhbGciOiJFUzI1NiJ9.e30";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sa_jwk_public pub;
    sa_err e;
    sa_key *k;
    size_t i;

    e.kind = -1;
    k = sa_key_pem((const char *)data, size, &e);
    if (!k) {
        if (e.kind != SA_EVALIDATION && e.kind != SA_ENOMEM)
            abort();
        return 0;
    }
    if (!sa_key_kty(k) || sa_key_bits(k) <= 0)
        abort();
    if (sa_key_public_jwk(k, &pub, &e) != 0)
        abort();
    for (i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        unsigned char *s = NULL;
        size_t slen = 0;
        if (sa_jws_alg_ok(k, algs[i], &e) != 0 || !sa_key_has_private(k) ||
            sa_key_bits(k) > 4096)
            continue;
        if (sa_jws_sign(k, algs[i], msg, sizeof msg - 1, &s, &slen, &e) != 0)
            abort();
        if (sa_jws_verify(k, algs[i], msg, sizeof msg - 1, s, slen, &e) != 1)
            abort();
        free(s);
    }
    sa_key_free(k);
    return 0;
}
