/* Every C path that fails inside OpenSSL leaves the thread's error queue
 * empty: a stale entry breaks the next TLS handshake on the same thread
 * (libcurl's, or an nginx cosocket's sslhandshake). OpenSSL's allocator is
 * made to fail after N allocations, for N = 0, 1, ... until the call
 * succeeds, so every failure point inside OpenSSL is reached; after each
 * failed call the queue must be empty and nothing may leak (valgrind-c).
 *
 * Run: build/test_errqueue  (prints "test_errqueue: N passed, M failed") */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "aead.h"
#include "check.h"
#include "crypto.h"
#include "jws.h"

static long fail_after = -1; /* -1: never fail */
static long allocs;

static int failing(void)
{
    return fail_after >= 0 && allocs++ >= fail_after;
}

static void *t_malloc(size_t n, const char *file, int line)
{
    (void)file, (void)line;
    return failing() ? NULL : malloc(n);
}

static void *t_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file, (void)line;
    return failing() ? NULL : realloc(p, n);
}

static void t_free(void *p, const char *file, int line)
{
    (void)file, (void)line;
    free(p);
}

static const unsigned char INPUT[] = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0";
#define INLEN (sizeof INPUT - 1)
#define SECRET "a store secret of at least thirty-two bytes"

typedef struct {
    sa_key *rsa, *ec, *ed, *oct;
    char *rsa_pem, *ec_pub_pem;
    size_t rsa_pem_len, ec_pub_pem_len;
    sa_jwk_public rsa_jwk, ec_jwk, ed_jwk;
    unsigned char rs_sig[512], ps_sig[512], es_sig[64], ed_sig[64];
    size_t rs_len, ps_len, es_len, ed_len;
    sa_buf sealed;
    sa_aead_key ak;
} fixture;

static fixture F;

/* One operation: 0 on success, -1 on failure; frees what it made. */
typedef int (*op_fn)(void);

static int done_key(sa_key *k)
{
    sa_key_free(k);
    return k ? 0 : -1;
}

static int op_sha2(void)
{
    unsigned char md[64];
    return sa_sha2(256, INPUT, INLEN, md) == 32 ? 0 : -1;
}

static int op_hmac(void)
{
    unsigned char md[64];
    return sa_hmac_sha2(384, "k", 1, INPUT, INLEN, md) == 48 ? 0 : -1;
}

static int op_random(void)
{
    unsigned char b[32];
    sa_err e;
    return sa_random_bytes(b, sizeof b, &e);
}

static int op_pkce(void)
{
    sa_buf b = SA_BUF_INIT;
    sa_err e;
    int rc = sa_pkce_challenge(&b, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", 43, &e);
    sa_buf_free(&b);
    return rc;
}

static int op_aead_derive(void)
{
    sa_aead_key k;
    sa_err e;
    int rc = sa_aead_key_derive(&k, SECRET, strlen(SECRET), &e);
    sa_aead_key_wipe(&k);
    return rc;
}

static int op_aead_seal(void)
{
    sa_buf b = SA_BUF_INIT;
    sa_err e;
    int rc = sa_aead_seal(&F.ak, "n", 1, "payload", 7, &b, &e);
    sa_buf_free(&b);
    return rc;
}

static int op_aead_open(void)
{
    sa_buf b = SA_BUF_INIT;
    sa_err e;
    int rc = sa_aead_open(&F.ak, "n", 1, F.sealed.data, F.sealed.len, &b, &e);
    sa_buf_free(&b);
    return rc;
}

static int op_pem_rsa(void)
{
    sa_err e;
    return done_key(sa_key_pem(F.rsa_pem, F.rsa_pem_len, &e));
}

static int op_pem_ec(void)
{
    sa_err e;
    return done_key(sa_key_pem(F.ec_pub_pem, F.ec_pub_pem_len, &e));
}

static int op_key_rsa(void)
{
    sa_err e;
    return done_key(sa_key_rsa(F.rsa_jwk.n, F.rsa_jwk.nlen, F.rsa_jwk.e, F.rsa_jwk.elen, &e));
}

static int op_key_ec(void)
{
    sa_err e;
    return done_key(sa_key_ec("P-256", F.ec_jwk.x, F.ec_jwk.xlen, F.ec_jwk.y, F.ec_jwk.ylen,
                              &e));
}

static int op_key_okp(void)
{
    sa_err e;
    return done_key(sa_key_okp("Ed25519", F.ed_jwk.x, F.ed_jwk.xlen, &e));
}

static int op_key_oct(void)
{
    sa_err e;
    return done_key(sa_key_oct((const unsigned char *)SECRET, strlen(SECRET), &e));
}

static int op_public_jwk(void)
{
    sa_jwk_public j;
    sa_err e;
    return sa_key_public_jwk(F.rsa, &j, &e) == 0 && sa_key_public_jwk(F.ec, &j, &e) == 0 ? 0
                                                                                         : -1;
}

static int sign_verify(sa_key *k, const char *alg)
{
    unsigned char *sig = NULL;
    size_t len = 0;
    sa_err e;
    int rc = sa_jws_sign(k, alg, INPUT, INLEN, &sig, &len, &e);
    free(sig);
    return rc;
}

/* A fresh key each time, so the kept verification context is set up under
 * the failing allocator too. */
static int verify_fresh(const char *alg, const unsigned char *sig, size_t len)
{
    sa_err e;
    sa_key *k = NULL;
    int rc;
    if (alg[0] == 'E' && alg[1] == 'S')
        k = sa_key_ec("P-256", F.ec_jwk.x, F.ec_jwk.xlen, F.ec_jwk.y, F.ec_jwk.ylen, &e);
    else if (alg[0] == 'E')
        k = sa_key_okp("Ed25519", F.ed_jwk.x, F.ed_jwk.xlen, &e);
    else
        k = sa_key_rsa(F.rsa_jwk.n, F.rsa_jwk.nlen, F.rsa_jwk.e, F.rsa_jwk.elen, &e);
    if (!k)
        return -1;
    rc = sa_jws_verify(k, alg, INPUT, INLEN, sig, len, &e) == 1 ? 0 : -1;
    sa_key_free(k);
    return rc;
}

static int op_sign_rs(void) { return sign_verify(F.rsa, "RS256"); }
static int op_sign_ps(void) { return sign_verify(F.rsa, "PS256"); }
static int op_sign_es(void) { return sign_verify(F.ec, "ES256"); }
static int op_sign_ed(void) { return sign_verify(F.ed, "EdDSA"); }
static int op_sign_hs(void) { return sign_verify(F.oct, "HS256"); }
static int op_verify_rs(void) { return verify_fresh("RS256", F.rs_sig, F.rs_len); }
static int op_verify_ps(void) { return verify_fresh("PS256", F.ps_sig, F.ps_len); }
static int op_verify_es(void) { return verify_fresh("ES256", F.es_sig, F.es_len); }
static int op_verify_ed(void) { return verify_fresh("EdDSA", F.ed_sig, F.ed_len); }

static int op_verify_hs(void)
{
    unsigned char sig[32];
    size_t len = 0;
    sa_err e;
    if (sa_jws_sign_to(F.oct, "HS256", INPUT, INLEN, sig, sizeof sig, &len, &e) != 0)
        return -1;
    return sa_jws_verify(F.oct, "HS256", INPUT, INLEN, sig, len, &e) == 1 ? 0 : -1;
}

static int op_hash(void)
{
    unsigned char out[64];
    sa_err e;
    return sa_jws_hash_for_alg("ES384", INPUT, INLEN, out, &e) == 48 ? 0 : -1;
}

static char *pem_of(EVP_PKEY *pk, int selection, const char *structure, size_t *len)
{
    OSSL_ENCODER_CTX *c = OSSL_ENCODER_CTX_new_for_pkey(pk, selection, "PEM", structure, NULL);
    unsigned char *p = NULL;
    *len = 0;
    if (!c || OSSL_ENCODER_to_data(c, &p, len) != 1)
        p = NULL;
    OSSL_ENCODER_CTX_free(c);
    return (char *)p;
}

static int fixture_load(void)
{
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    char *edpem;
    size_t edlen;
    sa_err e;
    sa_buf sb = SA_BUF_INIT;
    int ok;

    F.rsa_pem = pem_of(rsa, EVP_PKEY_KEYPAIR, "PrivateKeyInfo", &F.rsa_pem_len);
    F.ec_pub_pem = pem_of(ec, EVP_PKEY_PUBLIC_KEY, "SubjectPublicKeyInfo", &F.ec_pub_pem_len);
    edpem = pem_of(ed, EVP_PKEY_KEYPAIR, "PrivateKeyInfo", &edlen);
    F.rsa = F.rsa_pem ? sa_key_pem(F.rsa_pem, F.rsa_pem_len, &e) : NULL;
    {
        char *ecpem;
        size_t eclen;
        ecpem = pem_of(ec, EVP_PKEY_KEYPAIR, "PrivateKeyInfo", &eclen);
        F.ec = ecpem ? sa_key_pem(ecpem, eclen, &e) : NULL;
        OPENSSL_free(ecpem);
    }
    F.ed = edpem ? sa_key_pem(edpem, edlen, &e) : NULL;
    OPENSSL_free(edpem);
    F.oct = sa_key_oct((const unsigned char *)SECRET, strlen(SECRET), &e);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ed);
    ok = F.rsa && F.ec && F.ed && F.oct && F.ec_pub_pem &&
         sa_key_public_jwk(F.rsa, &F.rsa_jwk, &e) == 0 &&
         sa_key_public_jwk(F.ec, &F.ec_jwk, &e) == 0 &&
         sa_key_public_jwk(F.ed, &F.ed_jwk, &e) == 0 &&
         sa_jws_sign_to(F.rsa, "RS256", INPUT, INLEN, F.rs_sig, sizeof F.rs_sig, &F.rs_len,
                        &e) == 0 &&
         sa_jws_sign_to(F.rsa, "PS256", INPUT, INLEN, F.ps_sig, sizeof F.ps_sig, &F.ps_len,
                        &e) == 0 &&
         sa_jws_sign_to(F.ec, "ES256", INPUT, INLEN, F.es_sig, sizeof F.es_sig, &F.es_len,
                        &e) == 0 &&
         sa_jws_sign_to(F.ed, "EdDSA", INPUT, INLEN, F.ed_sig, sizeof F.ed_sig, &F.ed_len,
                        &e) == 0 &&
         sa_aead_key_derive(&F.ak, SECRET, strlen(SECRET), &e) == 0 &&
         sa_aead_seal(&F.ak, "n", 1, "payload", 7, &sb, &e) == 0;
    F.sealed = sb;
    return ok;
}

static void fixture_free(void)
{
    sa_key_free(F.rsa);
    sa_key_free(F.ec);
    sa_key_free(F.ed);
    sa_key_free(F.oct);
    OPENSSL_free(F.rsa_pem);
    OPENSSL_free(F.ec_pub_pem);
    sa_buf_free(&F.sealed);
    sa_aead_key_wipe(&F.ak);
}

/* Runs op with OpenSSL's allocator failing after 0, 1, 2, ... allocations
 * until it succeeds; after every failure the error queue must be empty. */
static void exhaust(const char *name, op_fn op)
{
    long n, total, step;
    int rc = -1, dirty = 0, fails = 0;
    /* how many allocations a good run makes: every failure point up to 400,
     * then about 400 of them spread evenly (a PEM decode makes thousands) */
    allocs = 0;
    fail_after = 1L << 30;
    rc = op();
    fail_after = -1;
    total = allocs;
    CHECK(rc == 0);
    if (getenv("SA_ERRQUEUE_VERBOSE"))
        fprintf(stderr, "  %s: %ld allocations\n", name, total);
    rc = -1;
    for (n = 0; n <= total && rc != 0; n += step) {
        step = n < 400 || total <= 800 ? 1 : total / 400;
        ERR_clear_error();
        allocs = 0;
        fail_after = n;
        rc = op();
        fail_after = -1;
        if (rc != 0) {
            fails++;
            if (ERR_peek_error() != 0) {
                if (!dirty)
                    fprintf(stderr, "  %s: error queue not empty after a failure at "
                                    "allocation %ld\n", name, n);
                dirty++;
            }
        }
    }
    if (rc != 0 && n <= total)
        fprintf(stderr, "  %s: still failing after %ld allocations\n", name, n);
    CHECK(rc == 0 || n > total);
    if (dirty)
        fprintf(stderr, "  %s: %d of %d failures left the queue dirty\n", name, dirty, fails);
    CHECK(dirty == 0);
    /* and the success itself leaves nothing behind */
    ERR_clear_error();
    CHECK(op() == 0 && ERR_peek_error() == 0);
}

int main(void)
{
    static const struct {
        const char *name;
        op_fn op;
    } ops[] = {
        { "sha2", op_sha2 },           { "hmac", op_hmac },
        { "random", op_random },       { "pkce", op_pkce },
        { "aead_derive", op_aead_derive }, { "aead_seal", op_aead_seal },
        { "aead_open", op_aead_open }, { "pem_rsa", op_pem_rsa },
        { "pem_ec", op_pem_ec },       { "key_rsa", op_key_rsa },
        { "key_ec", op_key_ec },       { "key_okp", op_key_okp },
        { "key_oct", op_key_oct },     { "public_jwk", op_public_jwk },
        { "sign_rs", op_sign_rs },     { "sign_ps", op_sign_ps },
        { "sign_es", op_sign_es },     { "sign_ed", op_sign_ed },
        { "sign_hs", op_sign_hs },     { "verify_rs", op_verify_rs },
        { "verify_ps", op_verify_ps }, { "verify_es", op_verify_es },
        { "verify_ed", op_verify_ed }, { "verify_hs", op_verify_hs },
        { "hash", op_hash },
    };
    size_t i;

    /* before OpenSSL allocates anything */
    if (!CRYPTO_set_mem_functions(t_malloc, t_realloc, t_free)) {
        fprintf(stderr, "CRYPTO_set_mem_functions refused\n");
        return 1;
    }
    CHECK(fixture_load());
    /* one good run of each first: OpenSSL's once-only initialisations (error
     * strings, providers, method caches) are not what is tested here */
    for (i = 0; i < sizeof ops / sizeof ops[0]; i++)
        CHECK(ops[i].op() == 0);
    for (i = 0; i < sizeof ops / sizeof ops[0]; i++)
        exhaust(ops[i].name, ops[i].op);
    fixture_free();
    return CHECK_DONE("test_errqueue");
}
