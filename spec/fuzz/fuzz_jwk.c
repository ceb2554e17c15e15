/* libFuzzer harness: JWK members to keys (sa_key_rsa, _ec, _okp, _oct and the
 * private forms), then everything a key can do: inspection, public export,
 * alg checks, verification of a fuzzed signature, and sign-then-verify for
 * private keys (a key that is accepted must work).
 *
 * Input (see fuzz_input.h for fields):
 *   byte  op     0 rsa, 1 ec, 2 okp, 3 oct, 4 rsa private, 5 ec private,
 *                6 okp private
 *   byte  crv    0 P-256, 1 P-384, 2 P-521, 3 Ed25519, else a field
 *   fields       the members in JWK order (n e | x y | x | k | n e d p q dp
 *                dq qi | x y d | x d), an empty x meaning "absent" for okp
 *                private
 *   rest         a signature to verify over a fixed input */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "jws.h"

static const char *const known_crv[] = { "P-256", "P-384", "P-521", "Ed25519" };
static const char *const algs[] = { "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                    "ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384",
                                    "HS512", "none", "", "rs256" };
static const unsigned char msg[] = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmdXp6In0";

static void crv_of(fz_in *in, char *crv, size_t cap)
{
    int c = fz_byte(in);
    if (c < 4) {
        strncpy(crv, known_crv[c], cap - 1);
        crv[cap - 1] = '\0';
    } else {
        fz_name(in, crv, cap);
    }
}

static void exercise(sa_key *k, const unsigned char *sig, size_t siglen)
{
    static sa_jwk_public pub; /* 2.3 KB: not on the stack */
    sa_err e;
    size_t i;
    const char *kty = sa_key_kty(k);
    int bits = sa_key_bits(k);

    if (!kty || bits <= 0 || sa_key_type_of(k) == 0)
        abort();
    if (sa_key_public_jwk(k, &pub, &e) == 0) {
        if (pub.nlen > sizeof pub.n || pub.elen > sizeof pub.e || pub.xlen > sizeof pub.x ||
            pub.ylen > sizeof pub.y)
            abort();
    } else if (sa_key_type_of(k) != SA_KEY_OCT) {
        abort(); /* every asymmetric key that was accepted can be exported */
    }
    for (i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        int ok = sa_jws_alg_ok(k, algs[i], &e) == 0;
        int v = sa_jws_verify(k, algs[i], msg, sizeof msg - 1, sig, siglen, &e);
        if (v < -1 || v > 1 || (ok && v == -1) || (!ok && v != -1))
            abort();
        if (ok && sa_key_has_private(k) && bits <= 4096) {
            unsigned char *s = NULL;
            size_t slen = 0;
            if (sa_jws_sign(k, algs[i], msg, sizeof msg - 1, &s, &slen, &e) != 0)
                abort();
            if (sa_jws_verify(k, algs[i], msg, sizeof msg - 1, s, slen, &e) != 1)
                abort();
            /* one flipped bit must not verify */
            s[slen / 2] ^= 1;
            if (sa_jws_verify(k, algs[i], msg, sizeof msg - 1, s, slen, &e) != 0)
                abort();
            free(s);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    char crv[64];
    const uint8_t *f[8];
    size_t len[8], siglen;
    const uint8_t *sig;
    sa_key *k = NULL;
    sa_err e;
    int op = fz_byte(&in) % 7, i;

    e.kind = -1; /* a failure that forgets to fill err shows up */
    switch (op) {
    case 0:
        f[0] = fz_field(&in, &len[0]);
        f[1] = fz_field(&in, &len[1]);
        k = sa_key_rsa(f[0], len[0], f[1], len[1], &e);
        break;
    case 1:
        crv_of(&in, crv, sizeof crv);
        f[0] = fz_field(&in, &len[0]);
        f[1] = fz_field(&in, &len[1]);
        k = sa_key_ec(crv, f[0], len[0], f[1], len[1], &e);
        break;
    case 2:
        crv_of(&in, crv, sizeof crv);
        f[0] = fz_field(&in, &len[0]);
        k = sa_key_okp(crv, f[0], len[0], &e);
        break;
    case 3:
        f[0] = fz_field(&in, &len[0]);
        k = sa_key_oct(f[0], len[0], &e);
        break;
    case 4: {
        sa_jwk_rsa_priv c;
        for (i = 0; i < 8; i++)
            f[i] = fz_field(&in, &len[i]);
        c.n = f[0], c.nlen = len[0];
        c.e = f[1], c.elen = len[1];
        c.d = f[2], c.dlen = len[2];
        /* absent CRT members are NULL, as the binding passes them */
        c.p = len[3] ? f[3] : NULL, c.plen = len[3];
        c.q = len[4] ? f[4] : NULL, c.qlen = len[4];
        c.dp = len[5] ? f[5] : NULL, c.dplen = len[5];
        c.dq = len[6] ? f[6] : NULL, c.dqlen = len[6];
        c.qi = len[7] ? f[7] : NULL, c.qilen = len[7];
        k = sa_key_rsa_private(&c, &e);
        break;
    }
    case 5:
        crv_of(&in, crv, sizeof crv);
        for (i = 0; i < 3; i++)
            f[i] = fz_field(&in, &len[i]);
        k = sa_key_ec_private(crv, f[0], len[0], f[1], len[1], f[2], len[2], &e);
        break;
    default:
        crv_of(&in, crv, sizeof crv);
        for (i = 0; i < 2; i++)
            f[i] = fz_field(&in, &len[i]);
        k = sa_key_okp_private(crv, len[0] ? f[0] : NULL, len[0], f[1], len[1], &e);
        break;
    }
    sig = fz_rest(&in, &siglen);
    if (!k) {
        if (e.kind != SA_EVALIDATION && e.kind != SA_EARG && e.kind != SA_ENOMEM)
            abort();
        return 0;
    }
    exercise(k, sig, siglen);
    sa_key_free(k);
    return 0;
}
