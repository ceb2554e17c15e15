/* Tests for csrc/jwe.c: every alg x enc encrypted and decrypted with keys made
 * by OpenSSL at run time, tampering of each part (one message for every
 * secret-dependent failure), alg/key mismatches, epk on another curve, the
 * compact split and its caps, the Concat KDF example of RFC 7518
 * Appendix C, and X25519 keys (RFC 8037: key_x25519.c, low-order points).
 * (The RFC 7520 vectors run in spec/jwe_spec.lua.)
 *
 * Run: build/test_jwe  (prints "test_jwe: N passed, M failed") */
#include "key_fixture.h"

#include "crypto.h"
#include "jwe.h"

static const char PLAIN[] = "{\"iss\":\"https://idp.example\",\"sub\":\"alice\"}";
#define PLEN (sizeof PLAIN - 1)

/* The value of "name":"..." inside the epk of a decoded header. */
static size_t member(const char *json, const char *name, unsigned char *out, size_t cap)
{
    char pat[16], val[128];
    const char *p = strstr(json, "\"epk\"");
    size_t n = 0;
    snprintf(pat, sizeof pat, "\"%s\":\"", name);
    p = p ? strstr(p, pat) : NULL;
    if (!p)
        return (size_t)-1;
    p += strlen(pat);
    while (p[n] && p[n] != '"' && n + 1 < sizeof val) {
        val[n] = p[n];
        n++;
    }
    val[n] = '\0';
    return b64url(val, out, cap);
}

/* Decrypt tok (a compact JWE) with k: the header's epk read back for
 * ECDH-ES*. 0 and the plaintext in out, or -1 with err. */
static int decrypt(const sa_key *k, const char *alg, const char *enc, const char *tok,
                   sa_buf *out, sa_err *err)
{
    sa_jwe_parts p;
    sa_jwe_header h;
    sa_buf hdr = SA_BUF_INIT;
    sa_key *epk = NULL;
    unsigned char x[66], y[66];
    size_t xl, yl;
    int rc;
    if (sa_jwe_split(tok, strlen(tok), &p, err) != 0)
        return -1;
    memset(&h, 0, sizeof h);
    h.alg = alg;
    h.enc = enc;
    if (strncmp(alg, "ECDH", 4) == 0) {
        if (sa_b64_decode(&hdr, p.seg[0], p.len[0], 1, err) != 0)
            return -1;
        xl = member(hdr.data, "x", x, sizeof x);
        yl = member(hdr.data, "y", y, sizeof y);
        if (strcmp(sa_key_curve(k), "X25519") == 0)
            epk = yl == (size_t)-1 ? sa_key_x25519(x, xl, NULL, 0, err) : NULL;
        else
            epk = sa_key_ec(sa_key_curve(k), x, xl, y, yl, err);
        sa_buf_free(&hdr);
        if (!epk)
            return -1;
        h.epk = epk;
    }
    rc = sa_jwe_decrypt(k, &h, &p, out, err);
    sa_key_free(epk);
    return rc;
}

/* tok with part i's decoded byte j (from the end when negative) changed */
static char *tamper(const char *tok, int part, int j)
{
    sa_jwe_parts p;
    sa_err e;
    sa_buf raw = SA_BUF_INIT, out = SA_BUF_INIT;
    char *s;
    int i;
    if (sa_jwe_split(tok, strlen(tok), &p, &e) != 0)
        return NULL;
    for (i = 0; i < 5; i++) {
        if (i)
            sa_buf_append_char(&out, '.');
        if (i != part) {
            sa_buf_append(&out, p.seg[i], p.len[i]);
            continue;
        }
        sa_b64_decode(&raw, p.seg[i], p.len[i], 1, &e);
        if (raw.len) {
            size_t at = j >= 0 ? (size_t)j : raw.len - (size_t)(-j);
            raw.data[at] = (char)(raw.data[at] ^ 1);
        }
        sa_b64_encode(&out, (unsigned char *)raw.data, raw.len, 1);
    }
    s = strdup(out.data);
    sa_buf_free(&raw);
    sa_buf_free(&out);
    return s;
}

static void roundtrip(const char *alg, const char *enc, const sa_key *enckey, const sa_key *deckey,
                      const sa_key *wrong)
{
    char label[64];
    sa_buf tok = SA_BUF_INIT, pt = SA_BUF_INIT;
    sa_err err;
    int part;
    snprintf(label, sizeof label, "%s/%s", alg, enc);
    sa_buf_append_str(&tok, "kept:"); /* encrypt appends */
    CHECKL(label, sa_jwe_encrypt(enckey, alg, enc, "k1", "JWT", U(PLAIN), PLEN, &tok, &err) == 0);
    if (tok.len <= 5) {
        fprintf(stderr, "  %s: %s\n", label, err.msg);
        sa_buf_free(&tok);
        return;
    }
    CHECKL(label, strncmp(tok.data, "kept:", 5) == 0);
    CHECKL(label, decrypt(deckey, alg, enc, tok.data + 5, &pt, &err) == 0);
    CHECKL(label, pt.len == PLEN && memcmp(pt.data, PLAIN, PLEN) == 0);
    /* each part tampered (the encrypted key only when there is one) */
    for (part = 0; part < 5; part++) {
        char *bad = tamper(tok.data + 5, part, part == 0 ? 2 : -1);
        sa_buf_reset(&pt);
        if (!bad)
            continue;
        if (part == 1 && strstr(bad, "..")) {
            free(bad);
            continue;
        }
        CHECKL(label, decrypt(deckey, alg, enc, bad, &pt, &err) == -1);
        CHECKL(label, part == 0 || strcmp(err.msg, SA_JWE_FAILED) == 0);
        CHECKL(label, pt.len == 0);
        free(bad);
    }
    if (wrong) {
        sa_buf_reset(&pt);
        CHECKL(label, decrypt(wrong, alg, enc, tok.data + 5, &pt, &err) == -1);
        CHECKL(label, strcmp(err.msg, SA_JWE_FAILED) == 0);
    }
    sa_buf_free(&tok);
    sa_buf_free(&pt);
}

static void test_split(void)
{
    sa_jwe_parts p;
    sa_err err;
    char big[SA_JWE_MAX_TOKEN + 2];
    CHECK(sa_jwe_split("a.b.c.d.e", 9, &p, &err) == 0);
    CHECK(p.len[0] == 1 && p.seg[4][0] == 'e');
    CHECK(sa_jwe_split("a..c.d.e", 8, &p, &err) == 0 && p.len[1] == 0);
    CHECK(sa_jwe_split("a.b.c.d", 7, &p, &err) == -1 && contains(err.msg, "five parts"));
    CHECK(sa_jwe_split("a.b.c.d.e.f", 11, &p, &err) == -1 && contains(err.msg, "more than five"));
    /* found by fuzz_jwe: a bad character after a fifth dot named a sixth part */
    CHECK(sa_jwe_split("a.b.c.d.e.=", 11, &p, &err) == -1 && contains(err.msg, "more than five"));
    CHECK(sa_jwe_split("a.b.c.d.e..", 10, &p, &err) == -1 && contains(err.msg, "more than five"));
    CHECK(sa_jwe_split("a.b.c.d.", 8, &p, &err) == -1 && contains(err.msg, "tag is empty"));
    CHECK(sa_jwe_split(".b.c.d.e", 8, &p, &err) == -1 && contains(err.msg, "header is empty"));
    CHECK(sa_jwe_split("a.b..d.e", 8, &p, &err) == -1 && contains(err.msg, "iv is empty"));
    CHECK(sa_jwe_split("a.b.c..e", 8, &p, &err) == -1 && contains(err.msg, "ciphertext is empty"));
    CHECK(sa_jwe_split("a.b.c=.d.e", 10, &p, &err) == -1 && contains(err.msg, "iv is not base64url"));
    CHECK(sa_jwe_split("a.b.c.d.e\0", 10, &p, &err) == -1 && err.kind == SA_EVALIDATION);
    CHECK(sa_jwe_split("", 0, &p, &err) == -1);
    CHECK(sa_jwe_split(NULL, 0, &p, &err) == -1 && err.kind == SA_EARG);
    memset(big, 'A', sizeof big);
    CHECK(sa_jwe_split(big, sizeof big, &p, &err) == -1 && contains(err.msg, "longer than"));
    /* each part's cap */
    memcpy(big, "a.b.", 4);
    memset(big + 4, 'A', SA_JWE_MAX_IV + 1);
    memcpy(big + 4 + SA_JWE_MAX_IV + 1, ".d.e", 4);
    CHECK(sa_jwe_split(big, 4 + SA_JWE_MAX_IV + 5, &p, &err) == -1 && contains(err.msg, "iv is too long"));
    memset(big, 'A', SA_JWE_MAX_HEADER + 1);
    memcpy(big + SA_JWE_MAX_HEADER + 1, ".b.c.d.e", 8);
    CHECK(sa_jwe_split(big, SA_JWE_MAX_HEADER + 9, &p, &err) == -1 &&
          contains(err.msg, "header is too long"));
}

/* RFC 7518 Appendix C: ECDH-ES with A128GCM, apu "Alice", apv "Bob". */
static void test_concat_kdf(void)
{
    static const unsigned char z[] = { 158, 86,  217, 29,  129, 113, 53,  211, 114, 131, 66,
                                       131, 191, 132, 38,  156, 251, 49,  110, 163, 218, 128,
                                       106, 72,  246, 218, 167, 121, 140, 254, 144, 196 };
    static const unsigned char want[] = { 86, 170, 141, 234, 248, 35,  109, 32,
                                          92, 34,  40,  205, 113, 167, 16,  26 };
    unsigned char out[64];
    sa_err err;
    CHECK(sa_jwe_concat_kdf(z, sizeof z, "A128GCM", U("Alice"), 5, U("Bob"), 3, out, 16, &err) == 0);
    CHECK(memcmp(out, want, 16) == 0);
    /* two rounds for a 64-byte key: the first 32 bytes are the one-round key */
    {
        unsigned char one[32], two[64];
        CHECK(sa_jwe_concat_kdf(z, sizeof z, "X", NULL, 0, NULL, 0, one, 32, &err) == 0);
        CHECK(sa_jwe_concat_kdf(z, sizeof z, "X", NULL, 0, NULL, 0, two, 64, &err) == 0);
        CHECK(memcmp(one, two, 32) != 0); /* keydatalen is in the input */
    }
    CHECK(sa_jwe_concat_kdf(z, sizeof z, "X", NULL, 0, NULL, 0, out, 65, &err) == -1);
}

static void test_refusals(fixture *rsa, fixture *rsa1024, fixture *p256, fixture *p384,
                          fixture *ed, sa_key *k16)
{
    sa_buf tok = SA_BUF_INIT, pt = SA_BUF_INIT;
    sa_jwe_parts p;
    sa_jwe_header h;
    sa_err err;

    CHECK(sa_jwe_alg_ok(rsa->pub, "RSA-OAEP-256", &err) == 0);
    CHECK(sa_jwe_alg_ok(rsa1024->pub, "RSA-OAEP-256", &err) == -1 && contains(err.msg, "2048"));
    CHECK(sa_jwe_alg_ok(p256->pub, "RSA-OAEP", &err) == -1);
    CHECK(sa_jwe_alg_ok(rsa->pub, "ECDH-ES", &err) == -1);
    CHECK(sa_jwe_alg_ok(ed->priv, "ECDH-ES", &err) == -1);
    CHECK(sa_jwe_alg_ok(k16, "A256KW", &err) == -1 && contains(err.msg, "32 bytes"));
    CHECK(sa_jwe_alg_ok(k16, "A128KW", &err) == 0);
    CHECK(sa_jwe_alg_ok(rsa->pub, "RSA1_5", &err) == -1 && contains(err.msg, "not supported"));
    CHECK(sa_jwe_alg_ok(rsa->pub, "PBES2-HS256+A128KW", &err) == -1);
    CHECK(sa_jwe_alg_ok(rsa->pub, NULL, &err) == -1);
    CHECK(!sa_jwe_alg_known("RSA1_5") && sa_jwe_alg_known("dir") && sa_jwe_enc_known("A128GCM"));
    CHECK(!sa_jwe_enc_known("A192GCM"));

    /* encrypt refusals leave out as it was */
    sa_buf_append_str(&tok, "x");
    CHECK(sa_jwe_encrypt(rsa->pub, "RSA1_5", "A128GCM", NULL, NULL, U("a"), 1, &tok, &err) == -1);
    CHECK(sa_jwe_encrypt(rsa->pub, "RSA-OAEP", "A192GCM", NULL, NULL, U("a"), 1, &tok, &err) == -1);
    CHECK(sa_jwe_encrypt(rsa->pub, "RSA-OAEP", "A128GCM", "a\"b", NULL, U("a"), 1, &tok, &err) == -1);
    CHECK(sa_jwe_encrypt(rsa->pub, "RSA-OAEP", "A128GCM", NULL, "\\", U("a"), 1, &tok, &err) == -1);
    CHECK(sa_jwe_encrypt(k16, "dir", "A256GCM", NULL, NULL, U("a"), 1, &tok, &err) == -1 &&
          contains(err.msg, "32 bytes"));
    CHECK(sa_jwe_encrypt(rsa->pub, "RSA-OAEP", "A128GCM", NULL, NULL, U(""), 0, &tok, &err) == -1 &&
          contains(err.msg, "empty"));
    CHECK(tok.len == 1 && tok.data[0] == 'x');

    /* decrypting needs the private key, the epk on the key's curve */
    sa_buf_reset(&tok);
    CHECK(sa_jwe_encrypt(p256->pub, "ECDH-ES", "A128GCM", NULL, NULL, U(PLAIN), PLEN, &tok, &err) == 0);
    CHECK(sa_jwe_split(tok.data, tok.len, &p, &err) == 0);
    memset(&h, 0, sizeof h);
    h.alg = "ECDH-ES";
    h.enc = "A128GCM";
    CHECK(sa_jwe_decrypt(p256->priv, &h, &p, &pt, &err) == -1 && contains(err.msg, "needs an epk"));
    h.epk = p384->pub;
    CHECK(sa_jwe_decrypt(p256->priv, &h, &p, &pt, &err) == -1 && contains(err.msg, "curve"));
    h.epk = rsa->pub;
    CHECK(sa_jwe_decrypt(p256->priv, &h, &p, &pt, &err) == -1 && contains(err.msg, "curve"));
    h.epk = p256->pub; /* a valid point, but not the sender's: the generic failure */
    CHECK(sa_jwe_decrypt(p256->priv, &h, &p, &pt, &err) == -1 && strcmp(err.msg, SA_JWE_FAILED) == 0);
    CHECK(sa_jwe_decrypt(p256->pub, &h, &p, &pt, &err) == -1 && contains(err.msg, "private"));
    h.alg = "RSA-OAEP"; /* an encrypted key is needed, and the header's alg must fit */
    CHECK(sa_jwe_decrypt(rsa->priv, &h, &p, &pt, &err) == -1 && contains(err.msg, "encrypted key"));
    h.alg = "RSA1_5";
    CHECK(sa_jwe_decrypt(rsa->priv, &h, &p, &pt, &err) == -1 && contains(err.msg, "not supported"));
    h.alg = "ECDH-ES";
    h.enc = "A128CBC-HS256"; /* iv length differs */
    CHECK(sa_jwe_decrypt(p256->priv, &h, &p, &pt, &err) == -1 && contains(err.msg, "iv"));
    CHECK(pt.len == 0);
    sa_buf_free(&tok);
    sa_buf_free(&pt);
}

/* An X25519 key pair made by OpenSSL, as sa_key_x25519 builds it from raw
 * bytes (the JWK's x and d). */
static void x25519_pair(sa_key **priv, sa_key **pub)
{
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    unsigned char d[32], x[32];
    size_t dl = sizeof d, xl = sizeof x;
    sa_err err;
    CHECK(pk && EVP_PKEY_get_raw_private_key(pk, d, &dl) == 1 &&
          EVP_PKEY_get_raw_public_key(pk, x, &xl) == 1);
    CHECK((*priv = sa_key_x25519(x, xl, d, dl, &err)) != NULL);
    CHECK((*pub = sa_key_x25519(x, xl, NULL, 0, &err)) != NULL);
    CHECK(sa_key_has_private(*priv) && !sa_key_has_private(*pub));
    CHECK(strcmp(sa_key_kty(*pub), "OKP") == 0 && strcmp(sa_key_curve(*pub), "X25519") == 0);
    OPENSSL_cleanse(d, sizeof d);
    EVP_PKEY_free(pk);
}

static void test_x25519(fixture *p256, fixture *ed, sa_key *k16)
{
    /* RFC 7748 §6.1's points of small order (0, 1, and one of order 8) */
    static const unsigned char order8[32] = {
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
        0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00 };
    static const char *const ecdh[] = { "ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A256KW" };
    static const char *const encs[] = { "A128GCM", "A256GCM", "A128CBC-HS256", "A256CBC-HS512" };
    unsigned char zero[32], one[32], buf[32];
    sa_key *priv, *pub, *priv2, *pub2, *low;
    sa_buf tok = SA_BUF_INIT, pt = SA_BUF_INIT;
    sa_jwe_parts p;
    sa_jwe_header h;
    sa_err err;
    size_t a, e, bl = sizeof buf;
    char *pem;
    BIO *bio;
    EVP_PKEY *pk;

    x25519_pair(&priv, &pub);
    x25519_pair(&priv2, &pub2);
    for (a = 0; a < 3; a++)
        for (e = 0; e < 4; e++)
            roundtrip(ecdh[a], encs[e], pub, priv, priv2);

    CHECK(sa_jwe_alg_ok(pub, "ECDH-ES+A128KW", &err) == 0);
    CHECK(sa_jwe_alg_ok(pub, "RSA-OAEP", &err) == -1 && sa_jwe_alg_ok(pub, "A128KW", &err) == -1);
    CHECK(sa_jwe_alg_ok(ed->priv, "ECDH-ES", &err) == -1 && contains(err.msg, "X25519"));

    /* constructor refusals */
    memset(zero, 0, sizeof zero);
    memset(one, 0, sizeof one);
    one[0] = 1;
    CHECK(sa_key_x25519(zero, 31, NULL, 0, &err) == NULL && contains(err.msg, "32 bytes"));
    CHECK(sa_key_x25519(NULL, 0, one, 33, &err) == NULL && contains(err.msg, "32 bytes"));
    CHECK(sa_key_x25519(NULL, 0, NULL, 0, &err) == NULL && contains(err.msg, "x or d"));
    CHECK(sa_key_public_jwk(pub, &(sa_jwk_public){ 0 }, &err) == 0);
    CHECK(sa_key_x25519(zero, 32, one, 32, &err) == NULL && contains(err.msg, "does not match"));
    CHECK(sa_key_okp("X25519", one, 32, &err) == NULL); /* never a signing key */

    /* decrypting: epk on the recipient's curve, never of small order */
    CHECK(sa_jwe_encrypt(pub, "ECDH-ES", "A128GCM", NULL, NULL, U(PLAIN), PLEN, &tok, &err) == 0);
    CHECK(sa_jwe_split(tok.data, tok.len, &p, &err) == 0);
    memset(&h, 0, sizeof h);
    h.alg = "ECDH-ES";
    h.enc = "A128GCM";
    h.epk = p256->pub;
    CHECK(sa_jwe_decrypt(priv, &h, &p, &pt, &err) == -1 && contains(err.msg, "curve"));
    h.epk = pub;
    CHECK(sa_jwe_decrypt(p256->priv, &h, &p, &pt, &err) == -1 && contains(err.msg, "curve"));
    h.epk = pub2; /* a valid point, not the sender's: the generic failure */
    CHECK(sa_jwe_decrypt(priv, &h, &p, &pt, &err) == -1 && strcmp(err.msg, SA_JWE_FAILED) == 0);
    CHECK(sa_jwe_decrypt(pub, &h, &p, &pt, &err) == -1 && contains(err.msg, "private"));
    CHECK((low = sa_key_x25519(zero, 32, NULL, 0, &err)) != NULL);
    h.epk = low;
    CHECK(sa_jwe_decrypt(priv, &h, &p, &pt, &err) == -1 && contains(err.msg, "epk"));
    sa_key_free(low);
    CHECK((low = sa_key_x25519(one, 32, NULL, 0, &err)) != NULL);
    h.epk = low;
    CHECK(sa_jwe_decrypt(priv, &h, &p, &pt, &err) == -1 && contains(err.msg, "epk"));
    sa_key_free(low);
    CHECK((low = sa_key_x25519(order8, 32, NULL, 0, &err)) != NULL);
    h.epk = low;
    CHECK(sa_jwe_decrypt(priv, &h, &p, &pt, &err) == -1 && contains(err.msg, "epk"));
    sa_key_free(low);
    CHECK(pt.len == 0);
    (void)k16;

    /* PEM: a private and a public X25519 key; any other type refused */
    pk = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    bio = BIO_new(BIO_s_mem());
    CHECK(pk && bio && PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL) == 1);
    pem = NULL;
    bl = (size_t)BIO_get_mem_data(bio, &pem);
    CHECK((low = sa_key_x25519_pem(pem, bl, &err)) != NULL && sa_key_has_private(low));
    CHECK(sa_key_pem(pem, bl, &err) == NULL); /* never through the signing keys' reader */
    sa_key_free(low);
    (void)BIO_reset(bio);
    CHECK(PEM_write_bio_PUBKEY(bio, pk) == 1);
    bl = (size_t)BIO_get_mem_data(bio, &pem);
    CHECK((low = sa_key_x25519_pem(pem, bl, &err)) != NULL && !sa_key_has_private(low));
    sa_key_free(low);
    (void)BIO_reset(bio);
    CHECK(PEM_write_bio_PrivateKey(bio, ed->pk, NULL, NULL, 0, NULL, NULL) == 1);
    bl = (size_t)BIO_get_mem_data(bio, &pem);
    CHECK(sa_key_x25519_pem(pem, bl, &err) == NULL && contains(err.msg, "X25519"));
    CHECK(sa_key_x25519_pem("", 0, &err) == NULL && sa_key_x25519_pem("junk", 4, &err) == NULL);
    BIO_free(bio);
    EVP_PKEY_free(pk);

    sa_key_free(priv);
    sa_key_free(pub);
    sa_key_free(priv2);
    sa_key_free(pub2);
    sa_buf_free(&tok);
    sa_buf_free(&pt);
}

int main(void)
{
    static const char *const algs[] = { "RSA-OAEP", "RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A128KW",
                                        "ECDH-ES+A256KW", "A128KW", "A256KW", "dir" };
    static const char *const encs[] = { "A128GCM", "A256GCM", "A128CBC-HS256", "A256CBC-HS512" };
    static const size_t ceklen[] = { 16, 32, 32, 64 };
    fixture rsa, rsa2, rsa1024, p256, p256b, p384, p521, ed;
    sa_key *k16, *k32, *k16b, *k32b;
    sa_err err;
    unsigned char sec[64];
    size_t a, e;

    fixture_load(&rsa, "rsa2048", EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048), SA_KEY_RSA,
                 NULL, 2048);
    fixture_load(&rsa2, "rsa2048b", EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048), SA_KEY_RSA,
                 NULL, 2048);
    fixture_load(&rsa1024, "rsa1024", EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024),
                 SA_KEY_RSA, NULL, 1024);
    fixture_load(&p256, "p256", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), SA_KEY_EC, "P-256", 256);
    fixture_load(&p256b, "p256b", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), SA_KEY_EC, "P-256",
                 256);
    fixture_load(&p384, "p384", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"), SA_KEY_EC, "P-384", 384);
    fixture_load(&p521, "p521", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521"), SA_KEY_EC, "P-521", 521);
    fixture_load(&ed, "ed25519", EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), SA_KEY_OKP, "Ed25519", 256);
    memset(sec, 0x5a, sizeof sec);
    k16 = sa_key_oct(sec, 16, &err);
    k32 = sa_key_oct(sec, 32, &err);
    sec[0] = 1;
    k16b = sa_key_oct(sec, 16, &err);
    k32b = sa_key_oct(sec, 32, &err);

    for (a = 0; a < sizeof algs / sizeof algs[0]; a++) {
        for (e = 0; e < sizeof encs / sizeof encs[0]; e++) {
            const char *alg = algs[a], *enc = encs[e];
            if (strncmp(alg, "RSA", 3) == 0) {
                roundtrip(alg, enc, rsa.pub, rsa.priv, rsa2.priv);
            } else if (strncmp(alg, "ECDH", 4) == 0) {
                roundtrip(alg, enc, p256.pub, p256.priv, p256b.priv);
                roundtrip(alg, enc, p384.priv, p384.priv, NULL);
                roundtrip(alg, enc, p521.pub, p521.priv, NULL);
            } else if (strcmp(alg, "A128KW") == 0) {
                roundtrip(alg, enc, k16, k16, k16b);
            } else if (strcmp(alg, "A256KW") == 0) {
                roundtrip(alg, enc, k32, k32, k32b);
            } else {
                sa_key *d, *d2;
                unsigned char s2[64];
                memset(s2, 7, sizeof s2);
                d = sa_key_oct(sec, ceklen[e], &err);
                d2 = sa_key_oct(s2, ceklen[e], &err);
                roundtrip(alg, enc, d, d, d2);
                sa_key_free(d);
                sa_key_free(d2);
            }
        }
    }
    test_split();
    test_concat_kdf();
    test_refusals(&rsa, &rsa1024, &p256, &p384, &ed, k16);
    test_x25519(&p256, &ed, k16);

    fixture_free(&rsa);
    fixture_free(&rsa2);
    fixture_free(&rsa1024);
    fixture_free(&p256);
    fixture_free(&p256b);
    fixture_free(&p384);
    fixture_free(&p521);
    fixture_free(&ed);
    sa_key_free(k16);
    sa_key_free(k32);
    sa_key_free(k16b);
    sa_key_free(k32b);
    printf("test_jwe: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
