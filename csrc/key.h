/* Keys for JWS (RFC 7517/7518, Ed25519 per RFC 8037) on OpenSSL 3 libcrypto:
 * from JWK members or PEM, inspection, public JWK export.
 *
 * A sa_key is parsed once (from JWK components or PEM) and reused for any
 * number of verifications (jws.h); verify never re-parses key material. The
 * key material is read-only after construction.
 *
 * Conventions: every function that fails fills err (kind SA_EVALIDATION for
 * bad input, SA_EARG for unusable arguments, SA_ENOMEM) and returns NULL or
 * -1. Byte inputs carry their length; only crv names are C strings.
 * No function leaves entries on OpenSSL's per-thread error queue. */
#ifndef SA_KEY_H
#define SA_KEY_H

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

/* X25519 (RFC 8037 OKP "X25519") keys, for ECDH-ES only (key_x25519.c): x
 * and/or d exactly 32 bytes (d checked against x when both are given); a
 * PEM "PRIVATE KEY" or "PUBLIC KEY" holding one. sa_key_okp and sa_key_pem
 * refuse X25519, so keys that sign and verify never are one. */
sa_key *sa_key_x25519(const unsigned char *x, size_t xlen, const unsigned char *d, size_t dlen,
                      sa_err *err);
sa_key *sa_key_x25519_pem(const char *pem, size_t len, sa_err *err);

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


/* ---- generation and private export */

/* A new private key from OpenSSL's CSPRNG: kty "EC" with crv "P-256",
 * "P-384" or "P-521", or kty "OKP" with crv "Ed25519". */
sa_key *sa_key_generate(const char *kty, const char *crv, sa_err *err);

/* The private member d of an EC key (big-endian, padded to the coordinate
 * size) or the seed of an Ed25519 key, into out (at least 66 bytes). The
 * caller wipes out. 0 ok, -1 (no private part, RSA or oct key). */
#define SA_KEY_D_MAX 66
int sa_key_private_d(const sa_key *k, unsigned char *out, size_t cap, size_t *outlen,
                     sa_err *err);

#endif
