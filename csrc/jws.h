/* JWS signatures (RFC 7515/7518, EdDSA per RFC 8037) on OpenSSL 3 libcrypto.
 *
 * A sa_key is parsed once (from JWK components or PEM) and reused for any
 * number of verifications; verify never re-parses key material. The key is
 * read-only after construction, so one key may be used from several threads.
 *
 * Conventions: every function that fails fills err (kind SA_EVALIDATION for
 * bad input, SA_EARG for unusable arguments, SA_ENOMEM) and returns NULL or
 * -1. Byte inputs carry their length; only alg and crv names are C strings.
 * No function leaves entries on OpenSSL's per-thread error queue. */
#ifndef SA_JWS_H
#define SA_JWS_H

#include <stddef.h>

#include "sa_err.h"

typedef struct sa_key sa_key; /* opaque: EVP_PKEY (or HMAC secret) plus kind */

typedef enum { SA_KEY_RSA = 1, SA_KEY_EC, SA_KEY_OKP, SA_KEY_OCT } sa_key_type;

/* ---- construction (returns a new key, free with sa_key_free; NULL + err on failure) */

/* Public keys from JWK members, base64url-decoded to big-endian bytes.
 * RSA: n and e (leading zero bytes ignored); n odd, at most 16384 bits; e odd,
 *      3 <= e, at most 256 bits. Small moduli are accepted here and refused by
 *      sa_jws_alg_ok (RS and PS need >= 2048 bits).
 * EC:  crv "P-256", "P-384" or "P-521"; x and y exactly 32, 48 or 66 bytes;
 *      points not on the curve are refused.
 * OKP: crv "Ed25519"; x exactly 32 bytes. */
sa_key *sa_key_rsa(const unsigned char *n, size_t nlen, const unsigned char *e,
                   size_t elen, sa_err *err);
sa_key *sa_key_ec(const char *crv, const unsigned char *x, size_t xlen,
                  const unsigned char *y, size_t ylen, sa_err *err);
sa_key *sa_key_okp(const char *crv, const unsigned char *x, size_t xlen, sa_err *err);

/* HMAC secret (JWK "k" or a client_secret): copied, wiped on free. Must not be
 * empty; at most 65536 bytes. */
sa_key *sa_key_oct(const unsigned char *k, size_t klen, sa_err *err);

/* A PEM private or public key: PKCS#8 "PRIVATE KEY", "PUBLIC KEY"
 * (SubjectPublicKeyInfo), or the traditional "RSA PRIVATE KEY",
 * "RSA PUBLIC KEY", "EC PRIVATE KEY". RSA, EC on P-256/P-384/P-521 (named
 * curves only) and Ed25519. Encrypted PEM is refused (never prompts). */
sa_key *sa_key_pem(const char *pem, size_t len, sa_err *err);

/* Private keys from JWK members, for signing client assertions
 * (private_key_jwt). */
typedef struct sa_jwk_rsa_priv {
    const unsigned char *n, *e, *d;        /* required */
    const unsigned char *p, *q, *dp, *dq, *qi; /* all five or none (NULL) */
    size_t nlen, elen, dlen, plen, qlen, dplen, dqlen, qilen;
} sa_jwk_rsa_priv;
/* The members are checked for consistency (n = p*q, e*d = 1 mod p-1 and q-1,
 * dp, dq, qi; without the CRT members, d against n and e), cheaply: no
 * primality tests. */
sa_key *sa_key_rsa_private(const sa_jwk_rsa_priv *c, sa_err *err);
/* d exactly the coordinate size; x and y must be the public point of d. */
sa_key *sa_key_ec_private(const char *crv, const unsigned char *x, size_t xlen,
                          const unsigned char *y, size_t ylen,
                          const unsigned char *d, size_t dlen, sa_err *err);
/* Ed25519: d is the 32-byte seed; x (32 bytes) is checked against it when
 * given, or may be NULL/0. */
sa_key *sa_key_okp_private(const char *crv, const unsigned char *x, size_t xlen,
                           const unsigned char *d, size_t dlen, sa_err *err);

void sa_key_free(sa_key *k); /* accepts NULL; wipes an HMAC secret */

/* ---- inspection */

int sa_key_type_of(const sa_key *k);       /* sa_key_type, 0 for NULL */
const char *sa_key_kty(const sa_key *k);   /* "RSA", "EC", "OKP", "oct"; NULL for NULL */
const char *sa_key_curve(const sa_key *k); /* "P-256", "P-384", "P-521", "Ed25519" or NULL */
int sa_key_bits(const sa_key *k);          /* modulus / curve / secret size in bits */
int sa_key_has_private(const sa_key *k);   /* 1 if it can sign (oct keys always) */

/* Public JWK members of an RSA, EC or OKP key, as big-endian bytes (the caller
 * base64url-encodes them). Fixed-size, no allocation, nothing to free. */
#define SA_JWK_N_MAX 2048 /* 16384-bit modulus */
typedef struct sa_jwk_public {
    const char *kty;                  /* "RSA", "EC", "OKP" */
    const char *crv;                  /* EC/OKP curve, NULL for RSA */
    unsigned char n[SA_JWK_N_MAX];    /* RSA modulus, no leading zero bytes */
    size_t nlen;
    unsigned char e[32];              /* RSA exponent, no leading zero bytes */
    size_t elen;
    unsigned char x[66];              /* EC: coordinate size; OKP: 32 bytes */
    size_t xlen;
    unsigned char y[66];              /* EC only */
    size_t ylen;
} sa_jwk_public;
/* 0 ok, -1 (oct keys have no public part to publish) */
int sa_key_public_jwk(const sa_key *k, sa_jwk_public *out, sa_err *err);

/* ---- JWS */

/* Is alg usable with this key? RS256/384/512 and PS256/384/512 need RSA of at
 * least 2048 bits, ES256/ES384/ES512 need EC P-256/P-384/P-521, EdDSA needs
 * Ed25519, HS256/384/512 need an oct key. Everything else ("none", "",
 * lower case, unknown) is refused. 0 ok, -1 with a message naming the mismatch. */
int sa_jws_alg_ok(const sa_key *k, const char *alg, sa_err *err);

/* Verify sig (decoded signature bytes) over input (the ASCII signing input
 * "b64header.b64payload"). 1 valid; 0 invalid, err says "signature mismatch"
 * (also for a signature of the wrong length); -1 error (alg refused for this
 * key, bad arguments). ES*: raw R||S of exactly 2 * coordinate size bytes.
 * PS*: RSA-PSS, MGF1 with the same hash, salt length = hash length (exactly).
 * HS*: HMAC compared in constant time.
 * k keeps a verification context between calls (not const): a key must not
 * verify in two threads at once. */
int sa_jws_verify(sa_key *k, const char *alg, const unsigned char *input,
                  size_t inlen, const unsigned char *sig, size_t siglen, sa_err *err);

/* Size of the signature sa_jws_sign_to will write for alg with this key
 * (RS/PS: modulus bytes, ES: 2 * coordinate size, EdDSA: 64, HS: hash size).
 * Checks the alg and that the key can sign. 0 ok, -1. */
int sa_jws_sign_size(const sa_key *k, const char *alg, size_t *size, sa_err *err);

/* Sign into out (outcap >= sa_jws_sign_size); *outlen gets the length.
 * ES* output is raw R||S, fixed length. 0 ok, -1. */
int sa_jws_sign_to(const sa_key *k, const char *alg, const unsigned char *input,
                   size_t inlen, unsigned char *out, size_t outcap, size_t *outlen,
                   sa_err *err);

/* Same, with *sig malloc'ed (caller frees). 0 ok, -1 (*sig = NULL). */
int sa_jws_sign(const sa_key *k, const char *alg, const unsigned char *input,
                size_t inlen, unsigned char **sig, size_t *siglen, sa_err *err);

/* The hash of alg for OIDC at_hash / c_hash (OIDC Core 3.1.3.6): SHA-256 for
 * *256, SHA-384 for *384, SHA-512 for *512 and for EdDSA (Ed25519). Writes
 * the digest to out; returns its length (32, 48, 64) or -1 (unknown/"none"). */
int sa_jws_hash_for_alg(const char *alg, const unsigned char *in, size_t inlen,
                        unsigned char out[64], sa_err *err);

#endif
