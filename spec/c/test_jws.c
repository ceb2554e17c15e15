/* Tests for csrc/jws.c: every alg signed and verified with keys made by
 * OpenSSL at run time (test_key.c tests the keys themselves); tampering,
 * alg/key mismatches, the compact split, the alg table, two published test
 * vectors (RFC 7515 A.1 HS256, RFC 8037 A.4 Ed25519) and the OIDC Core
 * at_hash example.
 *
 * Run: build/test_jws  (prints "test_jws: N passed, M failed") */
#include "key_fixture.h"

/* Sign with f->priv, verify with every form of the key, then tamper. */
static void roundtrip(const char *alg, fixture *f, sa_key *other, size_t want_len)
{
    sa_err err;
    unsigned char *sig = NULL, *sig2 = NULL, *bad;
    size_t siglen = 0, sig2len = 0, size = 0;
    unsigned char in[INLEN];
    char label[64];

    snprintf(label, sizeof label, "%s/%s", alg, f->name);
    if (!f->priv || !f->pub || !f->pubpem) {
        CHECKL(label, 0);
        return;
    }
    CHECKL(label, sa_jws_alg_ok(f->pub, alg, &err) == 0);
    CHECKL(label, sa_jws_sign_size(f->priv, alg, &size, &err) == 0 && size == want_len);
    CHECKL(label, sa_jws_sign(f->priv, alg, INPUT, INLEN, &sig, &siglen, &err) == 0);
    if (!sig) {
        fprintf(stderr, "  %s: %s\n", label, err.msg);
        return;
    }
    CHECKL(label, siglen == want_len);
    CHECKL(label, sa_jws_verify(f->pub, alg, INPUT, INLEN, sig, siglen, &err) == 1);
    CHECKL(label, sa_jws_verify(f->pubpem, alg, INPUT, INLEN, sig, siglen, &err) == 1);
    CHECKL(label, sa_jws_verify(f->priv, alg, INPUT, INLEN, sig, siglen, &err) == 1);

    /* a second signature: deterministic for RS and EdDSA, randomized for PS and ES */
    CHECKL(label, sa_jws_sign(f->priv, alg, INPUT, INLEN, &sig2, &sig2len, &err) == 0);
    if (sig2) {
        int same = sig2len == siglen && memcmp(sig, sig2, siglen) == 0;
        CHECKL(label, (alg[0] == 'R' || (alg[0] == 'E' && alg[1] == 'd')) ? same : !same);
        CHECKL(label, sa_jws_verify(f->pub, alg, INPUT, INLEN, sig2, sig2len, &err) == 1);
        free(sig2);
    }

    /* one bit of the signature flipped, first and last byte */
    bad = malloc(siglen + 1);
    if (bad) {
        memcpy(bad, sig, siglen);
        bad[0] ^= 0x01;
        err.msg[0] = '\0';
        CHECKL(label, sa_jws_verify(f->pub, alg, INPUT, INLEN, bad, siglen, &err) == 0);
        CHECKL(label, strcmp(err.msg, "signature mismatch") == 0);
        CHECKL(label, err.kind == SA_EVALIDATION);
        memcpy(bad, sig, siglen);
        bad[siglen - 1] ^= 0x80;
        CHECKL(label, sa_jws_verify(f->pub, alg, INPUT, INLEN, bad, siglen, &err) == 0);
        /* wrong lengths: truncated, extended, empty */
        CHECKL(label, sa_jws_verify(f->pub, alg, INPUT, INLEN, sig, siglen - 1, &err) == 0);
        memcpy(bad, sig, siglen);
        bad[siglen] = 0;
        CHECKL(label, sa_jws_verify(f->pub, alg, INPUT, INLEN, bad, siglen + 1, &err) == 0);
        CHECKL(label, sa_jws_verify(f->pub, alg, INPUT, INLEN, sig, 0, &err) == 0);
        CHECKL(label, sa_jws_verify(f->pub, alg, INPUT, INLEN, NULL, 0, &err) == 0);
        /* all zero, all 0xff */
        memset(bad, 0, siglen);
        CHECKL(label, sa_jws_verify(f->pub, alg, INPUT, INLEN, bad, siglen, &err) == 0);
        memset(bad, 0xff, siglen);
        CHECKL(label, sa_jws_verify(f->pub, alg, INPUT, INLEN, bad, siglen, &err) == 0);
        free(bad);
    }

    /* one bit of the input flipped; input cut short */
    memcpy(in, INPUT, INLEN);
    in[INLEN / 2] ^= 0x01;
    CHECKL(label, sa_jws_verify(f->pub, alg, in, INLEN, sig, siglen, &err) == 0);
    CHECKL(label, sa_jws_verify(f->pub, alg, INPUT, INLEN - 1, sig, siglen, &err) == 0);
    CHECKL(label, sa_jws_verify(f->pub, alg, INPUT, 0, sig, siglen, &err) == 0);

    /* another key of the same kind */
    if (other)
        CHECKL(label, sa_jws_verify(other, alg, INPUT, INLEN, sig, siglen, &err) == 0);

    /* public keys cannot sign */
    CHECKL(label, sa_jws_sign(f->pub, alg, INPUT, INLEN, &sig2, &sig2len, &err) == -1);
    CHECKL(label, sig2 == NULL && contains(err.msg, "no private part"));

    /* nothing left on OpenSSL's error queue (libcurl shares it) */
    CHECKL(label, ERR_peek_error() == 0);
    free(sig);
}

static void hs_roundtrip(const char *alg, sa_key *k, sa_key *other, size_t want)
{
    sa_err err;
    unsigned char *sig = NULL;
    size_t siglen = 0;
    unsigned char bad[64];

    CHECKL(alg, sa_jws_sign(k, alg, INPUT, INLEN, &sig, &siglen, &err) == 0);
    if (!sig)
        return;
    CHECKL(alg, siglen == want);
    CHECKL(alg, sa_jws_verify(k, alg, INPUT, INLEN, sig, siglen, &err) == 1);
    CHECKL(alg, sa_jws_verify(other, alg, INPUT, INLEN, sig, siglen, &err) == 0);
    memcpy(bad, sig, siglen);
    bad[siglen - 1] ^= 1;
    CHECKL(alg, sa_jws_verify(k, alg, INPUT, INLEN, bad, siglen, &err) == 0);
    CHECKL(alg, strcmp(err.msg, "signature mismatch") == 0);
    /* a truncated MAC is not accepted, nor an empty one */
    CHECKL(alg, sa_jws_verify(k, alg, INPUT, INLEN, sig, siglen / 2, &err) == 0);
    CHECKL(alg, sa_jws_verify(k, alg, INPUT, INLEN, sig, 0, &err) == 0);
    CHECKL(alg, sa_jws_verify(k, alg, INPUT, INLEN - 1, sig, siglen, &err) == 0);
    free(sig);
}

/* ---------------------------------------- signatures made by plain EVP */

/* Sign with OpenSSL directly (DER for ECDSA), as another JOSE library would. */
static size_t evp_sign(EVP_PKEY *pk, const char *md, int pss_saltlen, const unsigned char *in,
                       size_t inlen, unsigned char *out, size_t cap)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    size_t len = cap;
    int ok = m && EVP_DigestSignInit_ex(m, &pc, md, NULL, NULL, pk, NULL) == 1;
    if (ok && pss_saltlen != 0)
        ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, pss_saltlen) > 0;
    ok = ok && EVP_DigestSign(m, out, &len, in, inlen) == 1;
    EVP_MD_CTX_free(m);
    return ok ? len : 0;
}

static int evp_verify(EVP_PKEY *pk, const char *md, const unsigned char *in, size_t inlen,
                      const unsigned char *sig, size_t siglen)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    int ok = m && EVP_DigestVerifyInit_ex(m, NULL, md, NULL, NULL, pk, NULL) == 1 &&
             EVP_DigestVerify(m, sig, siglen, in, inlen) == 1;
    EVP_MD_CTX_free(m);
    return ok;
}

static void test_interop(fixture *rsa, fixture *p256, fixture *p521)
{
    sa_err err;
    unsigned char der[1024], raw[132], *sig = NULL;
    const unsigned char *p;
    const BIGNUM *r, *s;
    size_t n, siglen = 0;
    ECDSA_SIG *es;
    int i;

    if (!rsa->pub || !p256->pub || !p521->pub)
        return;
    /* RS256 by plain EVP */
    n = evp_sign(rsa->pk, "SHA256", 0, INPUT, INLEN, der, sizeof der);
    CHECK(n == 256 && sa_jws_verify(rsa->pub, "RS256", INPUT, INLEN, der, n, &err) == 1);
    /* PS256 by plain EVP: salt = hash length is accepted, any other salt is not */
    n = evp_sign(rsa->pk, "SHA256", RSA_PSS_SALTLEN_DIGEST, INPUT, INLEN, der, sizeof der);
    CHECK(n == 256 && sa_jws_verify(rsa->pub, "PS256", INPUT, INLEN, der, n, &err) == 1);
    n = evp_sign(rsa->pk, "SHA256", RSA_PSS_SALTLEN_MAX, INPUT, INLEN, der, sizeof der);
    CHECK(n == 256 && sa_jws_verify(rsa->pub, "PS256", INPUT, INLEN, der, n, &err) == 0);
    /* a PKCS#1 v1.5 signature is not a PSS one and vice versa */
    n = evp_sign(rsa->pk, "SHA256", 0, INPUT, INLEN, der, sizeof der);
    CHECK(sa_jws_verify(rsa->pub, "PS256", INPUT, INLEN, der, n, &err) == 0);
    CHECK(sa_jws_verify(rsa->pub, "RS384", INPUT, INLEN, der, n, &err) == 0);

    /* ES256 / ES512: DER from plain EVP converted to R||S by hand */
    for (i = 0; i < 2; i++) {
        fixture *f = i ? p521 : p256;
        const char *md = i ? "SHA512" : "SHA256", *alg = i ? "ES512" : "ES256";
        int coord = i ? 66 : 32;
        n = evp_sign(f->pk, md, 0, INPUT, INLEN, der, sizeof der);
        p = der;
        es = n ? d2i_ECDSA_SIG(NULL, &p, (long)n) : NULL;
        CHECKL(alg, es != NULL);
        if (!es)
            continue;
        ECDSA_SIG_get0(es, &r, &s);
        CHECKL(alg, BN_bn2binpad(r, raw, coord) == coord &&
                        BN_bn2binpad(s, raw + coord, coord) == coord);
        ECDSA_SIG_free(es);
        CHECKL(alg, sa_jws_verify(f->pub, alg, INPUT, INLEN, raw, (size_t)(2 * coord), &err) == 1);
        /* and the DER form itself is refused: JWS wants R||S */
        CHECKL(alg, sa_jws_verify(f->pub, alg, INPUT, INLEN, der, n, &err) == 0);

        /* our R||S converted to DER by hand verifies with plain EVP */
        CHECKL(alg, sa_jws_sign(f->priv, alg, INPUT, INLEN, &sig, &siglen, &err) == 0);
        if (!sig)
            continue;
        es = ECDSA_SIG_new();
        if (es) {
            unsigned char *d = NULL;
            int dl;
            BIGNUM *br = BN_bin2bn(sig, coord, NULL), *bs = BN_bin2bn(sig + coord, coord, NULL);
            ECDSA_SIG_set0(es, br, bs);
            dl = i2d_ECDSA_SIG(es, &d);
            CHECKL(alg, dl > 0 && evp_verify(f->pk, md, INPUT, INLEN, d, (size_t)dl));
            OPENSSL_free(d);
            ECDSA_SIG_free(es);
        }
        free(sig);
        sig = NULL;
    }
    ERR_clear_error();
}

/* ------------------------------------------------------------- tests */

static void test_mismatch(fixture *rsa, fixture *rsa1024, fixture *p256, fixture *p384,
                          fixture *ed, sa_key *oct)
{
    sa_err err;
    unsigned char sig[64] = { 0 };
    static const char *const refused[] = { "none", "", "None", "NONE", "rs256", "RS", "RS1",
                                           "RS2560", "HS1", "ES256K", "Ed25519", "EDDSA",
                                           "PS256 ", "XS256", "A128KW", "dir" };
    size_t i;

    /* RS256 with an EC key */
    CHECK(sa_jws_alg_ok(p256->pub, "RS256", &err) == -1);
    CHECK(contains(err.msg, "RS256") && contains(err.msg, "RSA"));
    CHECK(sa_jws_verify(p256->pub, "RS256", INPUT, INLEN, sig, 64, &err) == -1);
    CHECK(sa_jws_verify(p256->pub, "PS256", INPUT, INLEN, sig, 64, &err) == -1);
    /* ES256 with a P-384 key, ES384 with P-256 */
    CHECK(sa_jws_alg_ok(p384->pub, "ES256", &err) == -1);
    CHECK(contains(err.msg, "P-256") && contains(err.msg, "P-384"));
    CHECK(sa_jws_verify(p384->pub, "ES256", INPUT, INLEN, sig, 64, &err) == -1);
    CHECK(sa_jws_alg_ok(p256->pub, "ES384", &err) == -1);
    CHECK(sa_jws_alg_ok(p256->pub, "ES512", &err) == -1);
    CHECK(sa_jws_alg_ok(rsa->pub, "ES256", &err) == -1);
    /* HS256 with an RSA key: no HMAC key from a public key */
    CHECK(sa_jws_alg_ok(rsa->pub, "HS256", &err) == -1);
    CHECK(contains(err.msg, "HS256") && contains(err.msg, "oct"));
    CHECK(sa_jws_verify(rsa->pub, "HS256", INPUT, INLEN, sig, 32, &err) == -1);
    CHECK(sa_jws_alg_ok(p256->pub, "HS256", &err) == -1);
    CHECK(sa_jws_alg_ok(ed->pub, "HS512", &err) == -1);
    /* EdDSA needs Ed25519 */
    CHECK(sa_jws_alg_ok(p256->pub, "EdDSA", &err) == -1);
    CHECK(sa_jws_alg_ok(rsa->pub, "EdDSA", &err) == -1);
    CHECK(sa_jws_alg_ok(ed->pub, "ES256", &err) == -1);
    CHECK(sa_jws_alg_ok(ed->pub, "RS256", &err) == -1);
    /* oct keys only do HS* */
    CHECK(sa_jws_alg_ok(oct, "RS256", &err) == -1);
    CHECK(sa_jws_alg_ok(oct, "ES256", &err) == -1);
    CHECK(sa_jws_alg_ok(oct, "EdDSA", &err) == -1);
    /* "none", empty, wrong case, unknown */
    for (i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        CHECKL(refused[i], sa_jws_alg_ok(rsa->pub, refused[i], &err) == -1);
        CHECKL(refused[i], sa_jws_alg_ok(oct, refused[i], &err) == -1);
        CHECKL(refused[i], sa_jws_verify(rsa->pub, refused[i], INPUT, INLEN, sig, 0, &err) == -1);
        CHECKL(refused[i], sa_jws_verify(oct, refused[i], INPUT, INLEN, sig, 0, &err) == -1);
        CHECKL(refused[i], err.kind == SA_EVALIDATION);
    }
    CHECK(sa_jws_alg_ok(rsa->pub, "none", &err) == -1 && contains(err.msg, "none"));
    CHECK(sa_jws_alg_ok(rsa->pub, NULL, &err) == -1);
    CHECK(sa_jws_verify(rsa->pub, NULL, INPUT, INLEN, sig, 0, &err) == -1);
    CHECK(sa_jws_alg_ok(NULL, "RS256", &err) == -1);
    CHECK(sa_jws_verify(NULL, "RS256", INPUT, INLEN, sig, 0, &err) == -1);
    /* an alg from a token header is echoed only in a safe, bounded form */
    CHECK(sa_jws_alg_ok(rsa->pub, "X\n\x01\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &err) == -1);
    CHECK(!contains(err.msg, "\n") && !contains(err.msg, "\x01") && strlen(err.msg) < 80);
    /* RSA keys under 2048 bits are refused for RS and PS */
    if (rsa1024->pub) {
        CHECK(sa_key_bits(rsa1024->pub) == 1024);
        CHECK(sa_jws_alg_ok(rsa1024->pub, "RS256", &err) == -1);
        CHECK(contains(err.msg, "2048") && contains(err.msg, "1024"));
        CHECK(sa_jws_alg_ok(rsa1024->pub, "PS512", &err) == -1);
        CHECK(sa_jws_verify(rsa1024->pub, "RS256", INPUT, INLEN, sig, 64, &err) == -1);
        CHECK(sa_jws_sign_size(rsa1024->priv, "RS256", &i, &err) == -1);
    }
    CHECK(ERR_peek_error() == 0);
}

/* x + p for a P-521 point still fits 66 bytes: a non-canonical coordinate
 * for the same point must be refused. */
static void test_ec_noncanonical(fixture *p521)
{
    sa_err err;
    unsigned char x[66];
    BIGNUM *bx = NULL, *bp = NULL;
    sa_key *k;

    if (!p521->pub)
        return;
    bx = BN_bin2bn(p521->jwk.x, 66, NULL);
    bp = BN_new();
    CHECK(bx && bp && BN_set_bit(bp, 521) && BN_sub_word(bp, 1) && BN_add(bx, bx, bp) &&
          BN_bn2binpad(bx, x, 66) == 66);
    k = sa_key_ec("P-521", x, 66, p521->jwk.y, 66, &err);
    CHECK(k == NULL);
    sa_key_free(k);
    BN_free(bx);
    BN_free(bp);
    CHECK(ERR_peek_error() == 0);
}

static void test_vectors(void)
{
    sa_err err;
    unsigned char key[128], sig[128], x[64], d[64], *mine = NULL;
    size_t klen, siglen, xlen, dlen, minelen = 0;
    sa_key *k;

    /* RFC 7515 Appendix A.1: HS256 */
    static const char a1_input[] =
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
    klen = b64url("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
                  key, sizeof key);
    siglen = b64url("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", sig, sizeof sig);
    CHECK(klen == 64 && siglen == 32);
    k = sa_key_oct(key, klen, &err);
    CHECK(k && sa_jws_verify(k, "HS256", U(a1_input), sizeof a1_input - 1, sig, siglen, &err) == 1);
    CHECK(k && sa_jws_sign(k, "HS256", U(a1_input), sizeof a1_input - 1, &mine, &minelen, &err) == 0 &&
          minelen == 32 && memcmp(mine, sig, 32) == 0);
    free(mine);
    mine = NULL;
    sa_key_free(k);

    /* RFC 8037 Appendix A.4: Ed25519 (deterministic, so the signature is reproduced) */
    static const char a4_input[] = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    xlen = b64url("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", x, sizeof x);
    dlen = b64url("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A", d, sizeof d);
    siglen = b64url("hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
                    sig, sizeof sig);
    CHECK(xlen == 32 && dlen == 32 && siglen == 64);
    k = sa_key_okp("Ed25519", x, xlen, &err);
    CHECK(k && sa_jws_verify(k, "EdDSA", U(a4_input), sizeof a4_input - 1, sig, siglen, &err) == 1);
    sig[10] ^= 4;
    CHECK(k && sa_jws_verify(k, "EdDSA", U(a4_input), sizeof a4_input - 1, sig, siglen, &err) == 0);
    sig[10] ^= 4;
    sa_key_free(k);
    k = sa_key_okp_private("Ed25519", x, xlen, d, dlen, &err); /* x checked against d */
    CHECK(k && sa_jws_sign(k, "EdDSA", U(a4_input), sizeof a4_input - 1, &mine, &minelen, &err) == 0 &&
          minelen == 64 && memcmp(mine, sig, 64) == 0);
    free(mine);
    sa_key_free(k);
}

static void test_hash(void)
{
    sa_err err;
    unsigned char out[64], want[32];
    static const char abc256[] =
        "\xba\x78\x16\xbf\x8f\x01\xcf\xea\x41\x41\x40\xde\x5d\xae\x22\x23"
        "\xb0\x03\x61\xa3\x96\x17\x7a\x9c\xb4\x10\xff\x61\xf2\x00\x15\xad";
    static const char tok[] = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
    size_t wl;

    CHECK(sa_jws_hash_for_alg("RS256", U("abc"), 3, out, &err) == 32 && memcmp(out, abc256, 32) == 0);
    CHECK(sa_jws_hash_for_alg("ES256", U("abc"), 3, out, &err) == 32 && memcmp(out, abc256, 32) == 0);
    CHECK(sa_jws_hash_for_alg("HS256", U("abc"), 3, out, &err) == 32);
    CHECK(sa_jws_hash_for_alg("PS384", U("abc"), 3, out, &err) == 48);
    CHECK(sa_jws_hash_for_alg("ES512", U("abc"), 3, out, &err) == 64);
    CHECK(sa_jws_hash_for_alg("EdDSA", U("abc"), 3, out, &err) == 64);
    CHECK(sa_jws_hash_for_alg("RS256", NULL, 0, out, &err) == 32);
    CHECK(sa_jws_hash_for_alg("none", U("abc"), 3, out, &err) == -1);
    CHECK(sa_jws_hash_for_alg("", U("abc"), 3, out, &err) == -1);
    CHECK(sa_jws_hash_for_alg(NULL, U("abc"), 3, out, &err) == -1);
    CHECK(sa_jws_hash_for_alg("XS256", U("abc"), 3, out, &err) == -1);
    /* OpenID Connect Core 1.0, Appendix A.3/A.4: at_hash of the example access token */
    wl = b64url("77QmUPtjPfzWtF2AnpK9RQ", want, sizeof want);
    CHECK(wl == 16);
    CHECK(sa_jws_hash_for_alg("RS256", U(tok), sizeof tok - 1, out, &err) == 32 &&
          memcmp(out, want, 16) == 0);
}

/* ------------------------------------------------- OpenSSL error queue */

/* Every refused key, PEM and signature leaves the thread's OpenSSL error
 * queue empty: a stale entry breaks the next TLS handshake on the thread
 * (libcurl's, or an nginx cosocket's). Each case starts from an empty queue. */
#define QUEUE_EMPTY(label, call)                                                  \
    do {                                                                          \
        ERR_clear_error();                                                        \
        (void)(call);                                                             \
        CHECKL((label), ERR_peek_error() == 0);                                   \
    } while (0)

static void test_err_queue(fixture *rsa, fixture *p256, fixture *ed)
{
    sa_err err;
    sa_key *k = NULL;
    sa_jwk_rsa_priv c;
    char *pem;
    size_t len = 0, siglen = 0, i;
    unsigned char x[32], y[32], d[32], one[1] = { 1 }, big[300], sig[256];
    static const char garbage[] = "-----BEGIN PUBLIC KEY-----\nnot base64 at all!!\n"
                                  "-----END PUBLIC KEY-----\n";
    static const char bad_der[] = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOC\n"
                                  "-----END PUBLIC KEY-----\n";
    static const char cert_like[] = "-----BEGIN CERTIFICATE-----\nMIIB\n"
                                    "-----END CERTIFICATE-----\n";
    static const char enc[] = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0w\n"
                              "-----END ENCRYPTED PRIVATE KEY-----\n";
    static const char *const algs[] = { "RS256", "PS256", "ES256", "EdDSA" };

    /* PEM: garbage, a damaged body, truncated, a certificate, encrypted */
    QUEUE_EMPTY("pem garbage", k = sa_key_pem(garbage, sizeof garbage - 1, &err));
    sa_key_free(k);
    QUEUE_EMPTY("pem bad der", k = sa_key_pem(bad_der, sizeof bad_der - 1, &err));
    sa_key_free(k);
    QUEUE_EMPTY("pem cert", k = sa_key_pem(cert_like, sizeof cert_like - 1, &err));
    sa_key_free(k);
    QUEUE_EMPTY("pem encrypted", k = sa_key_pem(enc, sizeof enc - 1, &err));
    sa_key_free(k);
    QUEUE_EMPTY("pem text", k = sa_key_pem("hello", 5, &err));
    sa_key_free(k);
    if (rsa->pk && (pem = pem_encode(rsa->pk, EVP_PKEY_KEYPAIR, "PrivateKeyInfo", &len))) {
        QUEUE_EMPTY("pem truncated", k = sa_key_pem(pem, len / 2, &err));
        sa_key_free(k);
        pem[len / 2] = pem[len / 2] == 'A' ? 'B' : 'A';
        QUEUE_EMPTY("pem damaged", k = sa_key_pem(pem, len, &err));
        sa_key_free(k);
        free(pem);
    }
    /* and a good PEM leaves nothing behind either (the decoder tries formats) */
    if (p256->pk && (pem = pem_encode(p256->pk, EVP_PKEY_PUBLIC_KEY, "SubjectPublicKeyInfo",
                                       &len))) {
        QUEUE_EMPTY("pem good", k = sa_key_pem(pem, len, &err));
        CHECK(k != NULL);
        sa_key_free(k);
        free(pem);
    }

    /* EC: a point off the curve, a d that does not match */
    memset(x, 0x11, sizeof x);
    memset(y, 0x22, sizeof y);
    memset(d, 0x33, sizeof d);
    QUEUE_EMPTY("ec off curve", k = sa_key_ec("P-256", x, 32, y, 32, &err));
    sa_key_free(k);
    if (p256->pub) {
        QUEUE_EMPTY("ec d mismatch", k = sa_key_ec_private("P-256", p256->jwk.x, 32, p256->jwk.y,
                                                           32, d, 32, &err));
        CHECK(k == NULL);
        sa_key_free(k);
        memset(d, 0xff, sizeof d); /* d >= n */
        QUEUE_EMPTY("ec d too big", k = sa_key_ec_private("P-256", p256->jwk.x, 32,
                                                          p256->jwk.y, 32, d, 32, &err));
        sa_key_free(k);
    }
    /* Ed25519: a d that does not match x */
    if (ed->pub) {
        memset(d, 0x44, sizeof d);
        QUEUE_EMPTY("okp d mismatch", k = sa_key_okp_private("Ed25519", ed->jwk.x, 32, d, 32,
                                                             &err));
        sa_key_free(k);
    }
    /* RSA: a modulus of bytes that is not a key; a private key whose parts
     * do not fit together */
    memset(big, 0xa5, sizeof big);
    big[255] |= 1;
    QUEUE_EMPTY("rsa odd junk", k = sa_key_rsa(big, 256, U("\x01\x00\x01"), 3, &err));
    sa_key_free(k);
    if (rsa->pub) {
        memset(&c, 0, sizeof c);
        c.n = rsa->jwk.n, c.nlen = rsa->jwk.nlen;
        c.e = rsa->jwk.e, c.elen = rsa->jwk.elen;
        c.d = big, c.dlen = 200;
        QUEUE_EMPTY("rsa d mismatch", k = sa_key_rsa_private(&c, &err));
        CHECK(k == NULL);
        sa_key_free(k);
        c.p = big, c.plen = 128;
        c.q = big, c.qlen = 128;
        c.dp = big, c.dplen = 128;
        c.dq = big, c.dqlen = 128;
        c.qi = one, c.qilen = 1;
        QUEUE_EMPTY("rsa crt junk", k = sa_key_rsa_private(&c, &err));
        sa_key_free(k);
    }

    /* signatures of every shape against every kind of key */
    for (i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        sa_key *pub = i < 2 ? rsa->pub : i == 2 ? p256->pub : ed->pub;
        sa_key *priv = i < 2 ? rsa->priv : i == 2 ? p256->priv : ed->priv;
        size_t n;
        if (!pub || !priv)
            continue;
        CHECK(sa_jws_sign_size(priv, algs[i], &n, &err) == 0 && n <= sizeof sig);
        for (siglen = 0; siglen <= n; siglen += n / 4 ? n / 4 : 1) {
            memset(sig, (int)(0x5a ^ siglen), sizeof sig);
            QUEUE_EMPTY(algs[i], sa_jws_verify(pub, algs[i], INPUT, INLEN, sig, siglen, &err));
        }
        memset(sig, 0xff, sizeof sig); /* r, s >= n; s >= L for EdDSA */
        QUEUE_EMPTY(algs[i], sa_jws_verify(pub, algs[i], INPUT, INLEN, sig, n, &err));
        /* wrong alg for the key; a public key asked to sign */
        QUEUE_EMPTY(algs[i], sa_jws_verify(pub, i == 3 ? "RS256" : "EdDSA", INPUT, INLEN, sig,
                                           n, &err));
        QUEUE_EMPTY(algs[i], sa_jws_sign_to(pub, algs[i], INPUT, INLEN, sig, sizeof sig, &siglen,
                                            &err));
    }
    ERR_clear_error();
}

static void test_misc(fixture *rsa)
{
    sa_err err;
    unsigned char small[8];
    size_t outlen = 1;
    sa_jwk_public j;

    sa_key_free(NULL);
    CHECK(sa_key_type_of(NULL) == 0 && sa_key_bits(NULL) == 0 && sa_key_curve(NULL) == NULL &&
          sa_key_kty(NULL) == NULL && sa_key_has_private(NULL) == 0);
    CHECK(sa_key_public_jwk(NULL, &j, &err) == -1);
    if (!rsa->priv)
        return;
    CHECK(sa_jws_sign_to(rsa->priv, "RS256", INPUT, INLEN, small, sizeof small, &outlen,
                         &err) == -1 && outlen == 0 && contains(err.msg, "too small"));
    CHECK(sa_jws_sign(rsa->priv, "RS256", INPUT, INLEN, NULL, &outlen, &err) == -1);
    CHECK(sa_jws_verify(rsa->pub, "RS256", NULL, 5, small, 8, &err) == -1);
    CHECK(sa_jws_verify(rsa->pub, "RS256", INPUT, INLEN, NULL, 5, &err) == -1);
    /* sa_err may be NULL */
    CHECK(sa_jws_verify(rsa->pub, "none", INPUT, INLEN, small, 8, NULL) == -1);
    CHECK(sa_jws_verify(rsa->pub, "RS256", INPUT, INLEN, small, 8, NULL) == 0);
    CHECK(sa_key_pem("x", 1, NULL) == NULL);
}

static void test_oct(void)
{
    sa_err err;
    sa_key *k, *k2;
    sa_jwk_public j;
    unsigned char *sig = NULL;
    size_t siglen = 0;
    static const unsigned char secret[] =
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    static const unsigned char secret2[] =
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeF";

    CHECK(sizeof secret == 65 && sizeof secret2 == 65);
    k = sa_key_oct(secret, 64, &err);
    k2 = sa_key_oct(secret2, 64, &err);
    CHECK(k && k2);
    if (!k || !k2) {
        sa_key_free(k);
        sa_key_free(k2);
        return;
    }
    CHECK(sa_key_type_of(k) == SA_KEY_OCT && strcmp(sa_key_kty(k), "oct") == 0);
    CHECK(sa_key_bits(k) == 512 && sa_key_curve(k) == NULL && sa_key_has_private(k));
    hs_roundtrip("HS256", k, k2, 32);
    hs_roundtrip("HS384", k, k2, 48);
    hs_roundtrip("HS512", k, k2, 64);
    /* an HS256 MAC does not pass as HS384/HS512 */
    CHECK(sa_jws_sign(k, "HS256", INPUT, INLEN, &sig, &siglen, &err) == 0);
    CHECK(sig && sa_jws_verify(k, "HS384", INPUT, INLEN, sig, siglen, &err) == 0);
    free(sig);
    CHECK(sa_key_public_jwk(k, &j, &err) == -1);
    CHECK((sa_key_oct(secret, 0, &err)) == NULL);
    CHECK((sa_key_oct(NULL, 4, &err)) == NULL);
    sa_key_free(k);
    sa_key_free(k2);
}

/* The compact split (RFC 7515 7.1) that jws_parse uses. */
static void test_split(void)
{
    static const char ok[] = "aGVhZA.cGF5bG9hZA.c2ln";
    static const char nosig[] = "aGVhZA.cGF5bG9hZA.";
    static const char *const bad[] = { "", "a", "a.b", "a.b.c.d", ".b.c", "a..c", "..", "a.b.c." };
    sa_jws_parts p;
    sa_err err;
    size_t i;

    CHECK(sa_jws_split(ok, sizeof ok - 1, &p, &err) == 0);
    CHECK(p.seg[0] == ok && p.len[0] == 6);
    CHECK(p.seg[1] == ok + 7 && p.len[1] == 10);
    CHECK(p.seg[2] == ok + 18 && p.len[2] == 4);
    CHECK(p.input_len == 17);
    CHECK(sa_jws_split(nosig, sizeof nosig - 1, &p, &err) == 0 && p.len[2] == 0);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECKL(bad[i], sa_jws_split(bad[i], strlen(bad[i]), &p, &err) == -1);
        CHECKL(bad[i], err.kind == SA_EVALIDATION && contains(err.msg, "JWT"));
    }
    /* lengths are honoured: a dot past n does not count */
    CHECK(sa_jws_split(ok, 12, &p, &err) == -1);
    CHECK(sa_jws_split(NULL, 0, &p, &err) == -1 && err.kind == SA_EARG);
    CHECK(strcmp(sa_jws_part_name[1], "payload") == 0);
}

/* The one alg table agrees with what keys accept. */
static void test_alg_table(fixture *rsa, fixture *rsa1024, fixture *p256, fixture *p384,
                           fixture *p521, fixture *ed, sa_key *oct)
{
    const sa_jws_alg_info *a;
    sa_err err;
    size_t i, n = 0;
    unsigned char md[64];

    for (i = 0; (a = sa_jws_alg_at(i)) != NULL; i++, n++) {
        sa_key *k = strcmp(a->kty, "RSA") == 0 ? rsa->pub
                    : strcmp(a->kty, "OKP") == 0 ? ed->pub
                    : strcmp(a->kty, "oct") == 0 ? oct
                    : !a->crv ? NULL
                    : strcmp(a->crv, "P-256") == 0 ? p256->pub
                    : strcmp(a->crv, "P-384") == 0 ? p384->pub : p521->pub;
        CHECKL(a->name, k != NULL && sa_jws_alg_ok(k, a->name, &err) == 0);
        CHECKL(a->name, (a->crv != NULL) == (strcmp(a->kty, "EC") == 0 ||
                                             strcmp(a->kty, "OKP") == 0));
        CHECKL(a->name, sa_jws_hash_for_alg(a->name, INPUT, INLEN, md, &err) ==
                            a->hash_bits / 8);
    }
    CHECK(n == 13);
    CHECK(sa_jws_alg_at(n) == NULL);
    CHECK(strcmp(sa_jws_alg_at(0)->name, "RS256") == 0);

    CHECK(sa_jws_default_alg(rsa->pub, &err) && strcmp(sa_jws_default_alg(rsa->pub, &err), "RS256") == 0);
    CHECK(sa_jws_default_alg(p384->pub, &err) && strcmp(sa_jws_default_alg(p384->pub, &err), "ES384") == 0);
    CHECK(sa_jws_default_alg(p521->pub, &err) && strcmp(sa_jws_default_alg(p521->pub, &err), "ES512") == 0);
    CHECK(sa_jws_default_alg(ed->pub, &err) && strcmp(sa_jws_default_alg(ed->pub, &err), "EdDSA") == 0);
    CHECK(sa_jws_default_alg(oct, &err) && strcmp(sa_jws_default_alg(oct, &err), "HS256") == 0);
    CHECK(sa_jws_default_alg(rsa1024->pub, &err) == NULL && contains(err.msg, "2048"));
    CHECK(sa_jws_default_alg(NULL, &err) == NULL && err.kind == SA_EARG);
}

int main(void)
{
    fixture rsa, rsa2, rsa1024, p256, p256b, p384, p521, ed, ed2;
    sa_key *oct;
    sa_err err;
    static const struct {
        const char *alg;
        int which; /* 0 rsa, 1 p256, 2 p384, 3 p521, 4 ed */
        size_t len;
    } cases[] = {
        { "RS256", 0, 256 }, { "RS384", 0, 256 }, { "RS512", 0, 256 },
        { "PS256", 0, 256 }, { "PS384", 0, 256 }, { "PS512", 0, 256 },
        { "ES256", 1, 64 },  { "ES384", 2, 96 },  { "ES512", 3, 132 },
        { "EdDSA", 4, 64 },
    };
    size_t i;

    fixture_load(&rsa, "rsa2048", EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048), SA_KEY_RSA,
                 NULL, 2048);
    fixture_load(&rsa2, "rsa2048b", EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048),
                 SA_KEY_RSA, NULL, 2048);
    fixture_load(&rsa1024, "rsa1024", EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024),
                 SA_KEY_RSA, NULL, 1024);
    fixture_load(&p256, "p256", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), SA_KEY_EC,
                 "P-256", 256);
    fixture_load(&p256b, "p256b", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), SA_KEY_EC,
                 "P-256", 256);
    fixture_load(&p384, "p384", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"), SA_KEY_EC,
                 "P-384", 384);
    fixture_load(&p521, "p521", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521"), SA_KEY_EC,
                 "P-521", 521);
    fixture_load(&ed, "ed25519", EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), SA_KEY_OKP,
                 "Ed25519", 256);
    fixture_load(&ed2, "ed25519b", EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), SA_KEY_OKP,
                 "Ed25519", 256);
    oct = sa_key_oct(U("a shared secret of at least 32 bytes!"), 37, &err);
    CHECK(oct != NULL);

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fixture *f = cases[i].which == 0 ? &rsa : cases[i].which == 1 ? &p256
                   : cases[i].which == 2 ? &p384 : cases[i].which == 3 ? &p521 : &ed;
        sa_key *other = cases[i].which == 0 ? rsa2.pub : cases[i].which == 1 ? p256b.pub
                            : cases[i].which == 4 ? ed2.pub : NULL;
        roundtrip(cases[i].alg, f, other, cases[i].len);
    }
    test_interop(&rsa, &p256, &p521);
    if (oct)
        test_mismatch(&rsa, &rsa1024, &p256, &p384, &ed, oct);
    test_ec_noncanonical(&p521);
    test_oct();
    test_split();
    if (oct)
        test_alg_table(&rsa, &rsa1024, &p256, &p384, &p521, &ed, oct);
    test_vectors();
    test_hash();
    test_misc(&rsa);
    test_err_queue(&rsa, &p256, &ed);

    sa_key_free(oct);
    fixture_free(&rsa);
    fixture_free(&rsa2);
    fixture_free(&rsa1024);
    fixture_free(&p256);
    fixture_free(&p256b);
    fixture_free(&p384);
    fixture_free(&p521);
    fixture_free(&ed);
    fixture_free(&ed2);

    printf("test_jws: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

