/* Tests for csrc/key.c and key_jwk.c: keys generated with OpenSSL at run
 * time, their public JWK members exported and rebuilt into sa_keys; bad
 * members, bad PEM, private JWKs checked for consistency.
 *
 * Run: build/test_key  (prints "test_key: N passed, M failed") */
#include "key_fixture.h"

static void test_ec_keys(fixture *p256, fixture *p384)
{
    sa_err err;
    unsigned char x[66], y[66];
    sa_key *k;

    if (!p256->pub || !p384->pub)
        return;
    memcpy(x, p256->jwk.x, 32);
    memcpy(y, p256->jwk.y, 32);
    /* point not on the curve: y off by one bit */
    y[31] ^= 0x01;
    k = sa_key_ec("P-256", x, 32, y, 32, &err);
    CHECK(k == NULL && contains(err.msg, "not on the curve"));
    sa_key_free(k);
    /* (0, 0) and all-0xff */
    memset(x, 0, sizeof x);
    memset(y, 0, sizeof y);
    CHECK((k = sa_key_ec("P-256", x, 32, y, 32, &err)) == NULL);
    sa_key_free(k);
    memset(x, 0xff, sizeof x);
    memset(y, 0xff, sizeof y);
    CHECK((k = sa_key_ec("P-256", x, 32, y, 32, &err)) == NULL);
    sa_key_free(k);
    /* a P-384 point presented as P-256 (and the reverse) */
    CHECK((k = sa_key_ec("P-256", p384->jwk.x, 48, p384->jwk.y, 48, &err)) == NULL);
    CHECK(contains(err.msg, "32 bytes"));
    sa_key_free(k);
    CHECK((k = sa_key_ec("P-384", p256->jwk.x, 32, p256->jwk.y, 32, &err)) == NULL);
    sa_key_free(k);
    /* wrong coordinate lengths */
    CHECK((k = sa_key_ec("P-256", p256->jwk.x, 31, p256->jwk.y, 32, &err)) == NULL);
    sa_key_free(k);
    CHECK((k = sa_key_ec("P-256", p256->jwk.x, 32, p256->jwk.y, 31, &err)) == NULL);
    sa_key_free(k);
    memset(x, 0, sizeof x);
    memcpy(x + 1, p256->jwk.x, 32); /* leading zero: 33 bytes */
    CHECK((k = sa_key_ec("P-256", x, 33, p256->jwk.y, 32, &err)) == NULL);
    sa_key_free(k);
    /* unknown curves */
    CHECK((k = sa_key_ec("P-192", p256->jwk.x, 32, p256->jwk.y, 32, &err)) == NULL);
    CHECK(contains(err.msg, "P-192"));
    sa_key_free(k);
    CHECK((k = sa_key_ec("secp256k1", p256->jwk.x, 32, p256->jwk.y, 32, &err)) == NULL);
    sa_key_free(k);
    CHECK((k = sa_key_ec("prime256v1", p256->jwk.x, 32, p256->jwk.y, 32, &err)) == NULL);
    sa_key_free(k);
    CHECK((k = sa_key_ec(NULL, p256->jwk.x, 32, p256->jwk.y, 32, &err)) == NULL);
    sa_key_free(k);
    CHECK((k = sa_key_ec("P-256", NULL, 32, p256->jwk.y, 32, &err)) == NULL);
    sa_key_free(k);
    /* the original is fine */
    k = sa_key_ec("P-256", p256->jwk.x, 32, p256->jwk.y, 32, &err);
    CHECK(k != NULL && sa_key_bits(k) == 256 && strcmp(sa_key_kty(k), "EC") == 0);
    sa_key_free(k);
    CHECK(ERR_peek_error() == 0);
}

static void test_rsa_keys(fixture *rsa)
{
    sa_err err;
    unsigned char n[600], e[40];
    sa_key *k;
    size_t nlen = rsa->jwk.nlen;

    if (!rsa->pub)
        return;
    memcpy(n, rsa->jwk.n, nlen);
    /* leading zero bytes in n and e are tolerated */
    memset(e, 0, sizeof e);
    e[3] = 1, e[4] = 0, e[5] = 1;
    memmove(n + 2, n, nlen);
    n[0] = n[1] = 0;
    k = sa_key_rsa(n, nlen + 2, e, 6, &err);
    CHECK(k != NULL && sa_key_bits(k) == 2048);
    sa_key_free(k);
    memcpy(n, rsa->jwk.n, nlen);
    /* even modulus, e = 1, e even, e empty, n empty, e >= n */
    n[nlen - 1] &= 0xfe;
    CHECK((k = sa_key_rsa(n, nlen, rsa->jwk.e, rsa->jwk.elen, &err)) == NULL);
    sa_key_free(k);
    n[nlen - 1] |= 1;
    e[0] = 1;
    CHECK((k = sa_key_rsa(n, nlen, e, 1, &err)) == NULL);
    sa_key_free(k);
    e[0] = 4;
    CHECK((k = sa_key_rsa(n, nlen, e, 1, &err)) == NULL);
    sa_key_free(k);
    CHECK((k = sa_key_rsa(n, nlen, e, 0, &err)) == NULL);
    sa_key_free(k);
    CHECK((k = sa_key_rsa(n, 0, rsa->jwk.e, rsa->jwk.elen, &err)) == NULL);
    sa_key_free(k);
    memset(e, 0xff, sizeof e);
    CHECK((k = sa_key_rsa(n, nlen, e, 33, &err)) == NULL);
    sa_key_free(k);
    CHECK((k = sa_key_rsa(n, nlen, NULL, 3, &err)) == NULL);
    sa_key_free(k);
    CHECK(ERR_peek_error() == 0);
}

static void test_okp_keys(fixture *ed)
{
    sa_err err;
    sa_key *k;
    if (!ed->pub)
        return;
    CHECK((k = sa_key_okp("Ed448", ed->jwk.x, 32, &err)) == NULL);
    CHECK(contains(err.msg, "Ed448"));
    sa_key_free(k);
    CHECK((k = sa_key_okp("X25519", ed->jwk.x, 32, &err)) == NULL);
    sa_key_free(k);
    CHECK((k = sa_key_okp("Ed25519", ed->jwk.x, 31, &err)) == NULL);
    sa_key_free(k);
    CHECK((k = sa_key_okp("Ed25519", ed->jwk.x, 33, &err)) == NULL);
    sa_key_free(k);
    CHECK((k = sa_key_okp(NULL, ed->jwk.x, 32, &err)) == NULL);
    sa_key_free(k);
    CHECK((k = sa_key_okp("Ed25519", NULL, 32, &err)) == NULL);
    sa_key_free(k);
    k = sa_key_okp("Ed25519", ed->jwk.x, 32, &err);
    CHECK(k && strcmp(sa_key_kty(k), "OKP") == 0 && strcmp(sa_key_curve(k), "Ed25519") == 0);
    sa_key_free(k);
}

static void test_pem(fixture *rsa, fixture *p384, fixture *ed)
{
    sa_err err;
    sa_key *k;
    char *pem, *cut;
    size_t len = 0;
    static const char garbage[] = "-----BEGIN PUBLIC KEY-----\nnot base64 at all!!\n"
                                  "-----END PUBLIC KEY-----\n";
    static const char header_only[] = "-----BEGIN PRIVATE KEY-----\n";
    static const char cert_like[] = "-----BEGIN CERTIFICATE-----\nMIIB\n"
                                    "-----END CERTIFICATE-----\n";
    BIO *bio;
    EVP_PKEY *other;

    CHECK((k = sa_key_pem("", 0, &err)) == NULL);
    CHECK((k = sa_key_pem(NULL, 10, &err)) == NULL);
    CHECK((k = sa_key_pem("hello", 5, &err)) == NULL);
    CHECK((k = sa_key_pem(garbage, sizeof garbage - 1, &err)) == NULL);
    CHECK((k = sa_key_pem(header_only, sizeof header_only - 1, &err)) == NULL);
    CHECK((k = sa_key_pem(cert_like, sizeof cert_like - 1, &err)) == NULL);
    CHECK(err.msg[0] != '\0');

    /* truncated: half a valid PEM; and a valid PEM with length one short of the footer */
    if (rsa->pk && (pem = pem_encode(rsa->pk, EVP_PKEY_KEYPAIR, "PrivateKeyInfo", &len))) {
        CHECK((k = sa_key_pem(pem, len / 2, &err)) == NULL);
        CHECK((k = sa_key_pem(pem, len - 10, &err)) == NULL);
        /* the length is honoured: no reading past it, no NUL needed */
        cut = malloc(len);
        if (cut) {
            memcpy(cut, pem, len);
            k = sa_key_pem(cut, len, &err);
            CHECK(k != NULL && sa_key_has_private(k));
            sa_key_free(k);
            free(cut);
        }
        /* one base64 character corrupted in the body */
        pem[len / 2] = pem[len / 2] == 'A' ? 'B' : 'A';
        CHECK((k = sa_key_pem(pem, len, &err)) == NULL);
        sa_key_free(k);
        free(pem);
    }

    /* traditional forms: RSA PRIVATE KEY, RSA PUBLIC KEY, EC PRIVATE KEY */
    if (rsa->pk && (pem = pem_encode(rsa->pk, EVP_PKEY_KEYPAIR, "type-specific", &len))) {
        CHECK(contains(pem, "BEGIN RSA PRIVATE KEY"));
        k = sa_key_pem(pem, len, &err);
        CHECK(k && sa_key_type_of(k) == SA_KEY_RSA && sa_key_has_private(k));
        sa_key_free(k);
        free(pem);
    }
    if (rsa->pk && (pem = pem_encode(rsa->pk, EVP_PKEY_PUBLIC_KEY, "type-specific", &len))) {
        CHECK(contains(pem, "BEGIN RSA PUBLIC KEY"));
        k = sa_key_pem(pem, len, &err);
        CHECK(k && sa_key_type_of(k) == SA_KEY_RSA && !sa_key_has_private(k));
        sa_key_free(k);
        free(pem);
    }
    if (p384->pk && (pem = pem_encode(p384->pk, EVP_PKEY_KEYPAIR, "type-specific", &len))) {
        CHECK(contains(pem, "BEGIN EC PRIVATE KEY"));
        k = sa_key_pem(pem, len, &err);
        CHECK(k && sa_key_type_of(k) == SA_KEY_EC && sa_key_has_private(k) &&
              strcmp(sa_key_curve(k), "P-384") == 0 && sa_key_bits(k) == 384);
        sa_key_free(k);
        free(pem);
    }

    /* encrypted PEM is refused, without prompting for a passphrase */
    if (ed->pk && (bio = BIO_new(BIO_s_mem()))) {
        char *data;
        long dl;
        if (PEM_write_bio_PKCS8PrivateKey(bio, ed->pk, EVP_aes_256_cbc(), "secretpw", 8, NULL,
                                          NULL) == 1) {
            dl = BIO_get_mem_data(bio, &data);
            CHECK(dl > 0 && contains_n(data, (size_t)dl, "ENCRYPTED PRIVATE KEY"));
            k = sa_key_pem(data, (size_t)dl, &err);
            CHECK(k == NULL && contains(err.msg, "encrypted"));
            sa_key_free(k);
        } else {
            CHECK(0);
        }
        BIO_free(bio);
    }

    /* EC parameters are not a key */
    if (p384->pk && (pem = pem_encode(p384->pk, EVP_PKEY_KEY_PARAMETERS, "type-specific", &len))) {
        CHECK(contains(pem, "BEGIN EC PARAMETERS"));
        CHECK((k = sa_key_pem(pem, len, &err)) == NULL && contains(err.msg, "parameters"));
        free(pem);
    } else {
        CHECK(0);
    }

    /* key types it does not do: secp256k1, X25519, RSA-PSS-restricted keys */
    other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
    if (other && (pem = pem_encode(other, EVP_PKEY_PUBLIC_KEY, "SubjectPublicKeyInfo", &len))) {
        CHECK((k = sa_key_pem(pem, len, &err)) == NULL && contains(err.msg, "curve"));
        free(pem);
    }
    EVP_PKEY_free(other);
    other = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    if (other && (pem = pem_encode(other, EVP_PKEY_KEYPAIR, "PrivateKeyInfo", &len))) {
        CHECK((k = sa_key_pem(pem, len, &err)) == NULL && contains(err.msg, "X25519"));
        free(pem);
    }
    EVP_PKEY_free(other);
    other = NULL;
    {
        EVP_PKEY_CTX *gc = EVP_PKEY_CTX_new_from_name(NULL, "RSA-PSS", NULL);
        CHECK(gc && EVP_PKEY_keygen_init(gc) == 1 &&
              EVP_PKEY_CTX_set_rsa_keygen_bits(gc, 2048) == 1 &&
              EVP_PKEY_generate(gc, &other) == 1);
        EVP_PKEY_CTX_free(gc);
    }
    if (other && (pem = pem_encode(other, EVP_PKEY_PUBLIC_KEY, "SubjectPublicKeyInfo", &len))) {
        CHECK((k = sa_key_pem(pem, len, &err)) == NULL && contains(err.msg, "RSA-PSS"));
        free(pem);
    } else {
        CHECK(0);
    }
    EVP_PKEY_free(other);
    CHECK(ERR_peek_error() == 0);
}

/* Generated keys: usable, distinct, private part exported padded and
 * rebuilding the same key; the refused kinds. */
static void test_generate(void)
{
    sa_err err;
    sa_jwk_public pub;
    unsigned char d[SA_KEY_D_MAX], d2[SA_KEY_D_MAX];
    size_t dlen = 0, d2len = 0;
    sa_key *k = sa_key_generate("EC", "P-256", &err), *k2, *k3;
    CHECK(k != NULL && sa_key_has_private(k) && sa_key_bits(k) == 256 &&
          strcmp(sa_key_curve(k), "P-256") == 0);
    CHECK(sa_key_private_d(k, d, sizeof d, &dlen, &err) == 0 && dlen == 32);
    CHECK(sa_key_public_jwk(k, &pub, &err) == 0);
    k3 = sa_key_ec_private("P-256", pub.x, pub.xlen, pub.y, pub.ylen, d, dlen, &err);
    CHECK(k3 != NULL);
    k2 = sa_key_generate("EC", "P-256", &err);
    CHECK(k2 != NULL && sa_key_private_d(k2, d2, sizeof d2, &d2len, &err) == 0);
    CHECK(d2len == 32 && memcmp(d, d2, 32) != 0);
    sa_key_free(k2);
    sa_key_free(k3);
    CHECK(sa_key_private_d(k, d, 31, &dlen, &err) == -1 && dlen == 0);
    sa_key_free(k);
    CHECK((k = sa_key_generate("EC", "P-521", &err)) != NULL);
    CHECK(sa_key_private_d(k, d, sizeof d, &dlen, &err) == 0 && dlen == 66);
    sa_key_free(k);
    CHECK((k = sa_key_generate("OKP", "Ed25519", &err)) != NULL);
    CHECK(sa_key_private_d(k, d, sizeof d, &dlen, &err) == 0 && dlen == 32);
    CHECK(sa_key_public_jwk(k, &pub, &err) == 0 && pub.xlen == 32);
    sa_key_free(k);
    CHECK(sa_key_generate("RSA", NULL, &err) == NULL && err.kind == SA_EVALIDATION);
    CHECK(sa_key_generate("EC", "P-192", &err) == NULL && contains(err.msg, "P-192"));
    CHECK(sa_key_generate("OKP", "X25519", &err) == NULL);
    CHECK(sa_key_generate(NULL, NULL, &err) == NULL);
    CHECK(sa_key_private_d(NULL, d, sizeof d, &dlen, &err) == -1);
    CHECK(ERR_peek_error() == 0);
}

static void test_private_jwk(fixture *rsa, fixture *rsa2, fixture *p256, fixture *p256b,
                             fixture *ed)
{
    sa_err err;
    unsigned char b[8][300], d[66], *sig = NULL;
    size_t l[8], siglen = 0, dl;
    static const char *const names[8] = {
        OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
        OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
        OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
        OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
    };
    sa_jwk_rsa_priv c;
    sa_key *k;
    int i;

    if (!rsa->pub || !rsa2->pub || !p256->pub || !p256b->pub || !ed->pub)
        return;
    for (i = 0; i < 8; i++) {
        l[i] = bn_bytes(rsa->pk, names[i], b[i], 0);
        CHECK(l[i] != (size_t)-1);
    }
    memset(&c, 0, sizeof c);
    c.n = b[0], c.nlen = l[0];
    c.e = b[1], c.elen = l[1];
    c.d = b[2], c.dlen = l[2];
    c.p = b[3], c.plen = l[3];
    c.q = b[4], c.qlen = l[4];
    c.dp = b[5], c.dplen = l[5];
    c.dq = b[6], c.dqlen = l[6];
    c.qi = b[7], c.qilen = l[7];
    /* full CRT key */
    k = sa_key_rsa_private(&c, &err);
    CHECK(k && sa_key_has_private(k) && sa_key_bits(k) == 2048);
    if (k) {
        CHECK(sa_jws_sign(k, "RS256", INPUT, INLEN, &sig, &siglen, &err) == 0);
        CHECK(sig && sa_jws_verify(rsa->pub, "RS256", INPUT, INLEN, sig, siglen, &err) == 1);
        free(sig);
        sig = NULL;
        CHECK(sa_jws_sign(k, "PS384", INPUT, INLEN, &sig, &siglen, &err) == 0);
        CHECK(sig && sa_jws_verify(rsa->pub, "PS384", INPUT, INLEN, sig, siglen, &err) == 1);
        free(sig);
        sig = NULL;
    }
    sa_key_free(k);
    /* n, e, d only */
    c.p = c.q = c.dp = c.dq = c.qi = NULL;
    c.plen = c.qlen = c.dplen = c.dqlen = c.qilen = 0;
    k = sa_key_rsa_private(&c, &err);
    CHECK(k && sa_key_has_private(k));
    if (k) {
        CHECK(sa_jws_sign(k, "RS512", INPUT, INLEN, &sig, &siglen, &err) == 0);
        CHECK(sig && sa_jws_verify(rsa->pub, "RS512", INPUT, INLEN, sig, siglen, &err) == 1);
        free(sig);
        sig = NULL;
    }
    sa_key_free(k);
    /* only some CRT members */
    c.p = b[3], c.plen = l[3];
    CHECK((k = sa_key_rsa_private(&c, &err)) == NULL && contains(err.msg, "p, q"));
    /* inconsistent: q of another key */
    c.q = b[4], c.qlen = l[4];
    c.dp = b[5], c.dplen = l[5];
    c.dq = b[6], c.dqlen = l[6];
    c.qi = b[7], c.qilen = l[7];
    {
        unsigned char q2[300];
        size_t q2len = bn_bytes(rsa2->pk, OSSL_PKEY_PARAM_RSA_FACTOR2, q2, 0);
        c.q = q2, c.qlen = q2len;
        CHECK((k = sa_key_rsa_private(&c, &err)) == NULL);
        c.q = b[4], c.qlen = l[4];
    }
    /* inconsistent: d off by two */
    b[2][l[2] - 1] ^= 0x02;
    CHECK((k = sa_key_rsa_private(&c, &err)) == NULL);
    b[2][l[2] - 1] ^= 0x02;
    CHECK((k = sa_key_rsa_private(NULL, &err)) == NULL);

    /* EC: d of the key, and d of another key with this x, y */
    dl = bn_bytes(p256->pk, OSSL_PKEY_PARAM_PRIV_KEY, d, 32);
    CHECK(dl == 32);
    k = sa_key_ec_private("P-256", p256->jwk.x, 32, p256->jwk.y, 32, d, dl, &err);
    CHECK(k && sa_key_has_private(k));
    if (k) {
        CHECK(sa_jws_sign(k, "ES256", INPUT, INLEN, &sig, &siglen, &err) == 0 && siglen == 64);
        CHECK(sig && sa_jws_verify(p256->pub, "ES256", INPUT, INLEN, sig, siglen, &err) == 1);
        free(sig);
        sig = NULL;
    }
    sa_key_free(k);
    CHECK((k = sa_key_ec_private("P-256", p256->jwk.x, 32, p256->jwk.y, 32, d, 31, &err)) == NULL);
    dl = bn_bytes(p256b->pk, OSSL_PKEY_PARAM_PRIV_KEY, d, 32);
    k = sa_key_ec_private("P-256", p256->jwk.x, 32, p256->jwk.y, 32, d, dl, &err);
    CHECK(k == NULL && contains(err.msg, "does not match"));
    sa_key_free(k);

    /* Ed25519: seed with and without x; seed with a wrong x */
    dl = sizeof d;
    CHECK(EVP_PKEY_get_raw_private_key(ed->pk, d, &dl) == 1 && dl == 32);
    k = sa_key_okp_private("Ed25519", ed->jwk.x, 32, d, 32, &err);
    CHECK(k && sa_key_has_private(k));
    if (k) {
        CHECK(sa_jws_sign(k, "EdDSA", INPUT, INLEN, &sig, &siglen, &err) == 0 && siglen == 64);
        CHECK(sig && sa_jws_verify(ed->pub, "EdDSA", INPUT, INLEN, sig, siglen, &err) == 1);
        free(sig);
        sig = NULL;
    }
    sa_key_free(k);
    k = sa_key_okp_private("Ed25519", NULL, 0, d, 32, &err);
    CHECK(k != NULL);
    sa_key_free(k);
    d[0] ^= 1;
    CHECK((k = sa_key_okp_private("Ed25519", ed->jwk.x, 32, d, 32, &err)) == NULL);
    CHECK((k = sa_key_okp_private("Ed25519", NULL, 0, d, 31, &err)) == NULL);
    CHECK(ERR_peek_error() == 0);
}

int main(void)
{
    fixture rsa, rsa2, p256, p256b, p384, ed;

    fixture_load(&rsa, "rsa2048", EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048), SA_KEY_RSA,
                 NULL, 2048);
    fixture_load(&rsa2, "rsa2048b", EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048),
                 SA_KEY_RSA, NULL, 2048);
    fixture_load(&p256, "p256", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), SA_KEY_EC,
                 "P-256", 256);
    fixture_load(&p256b, "p256b", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), SA_KEY_EC,
                 "P-256", 256);
    fixture_load(&p384, "p384", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"), SA_KEY_EC,
                 "P-384", 384);
    fixture_load(&ed, "ed25519", EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), SA_KEY_OKP,
                 "Ed25519", 256);

    test_ec_keys(&p256, &p384);
    test_rsa_keys(&rsa);
    test_okp_keys(&ed);
    test_pem(&rsa, &p384, &ed);
    test_private_jwk(&rsa, &rsa2, &p256, &p256b, &ed);
    test_generate();

    fixture_free(&rsa);
    fixture_free(&rsa2);
    fixture_free(&p256);
    fixture_free(&p256b);
    fixture_free(&p384);
    fixture_free(&ed);

    printf("test_key: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
