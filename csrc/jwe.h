/* JWE, compact serialization (RFC 7516, algorithms of RFC 7518) on OpenSSL 3
 * libcrypto, with keys from key.h.
 *
 * Key management: RSA-OAEP, RSA-OAEP-256 (RSA >= 2048 bits), ECDH-ES,
 * ECDH-ES+A128KW, ECDH-ES+A256KW (P-256/384/521, Concat KDF of RFC 7518
 * 4.6), A128KW, A256KW (RFC 3394), dir. Content encryption: A128GCM,
 * A256GCM, A128CBC-HS256, A256CBC-HS512. RSA1_5 is not offered (the PKCS#1
 * v1.5 padding oracle), nor is any zip.
 *
 * The protected header's JSON is the Lua layer's (the JWS one is too): the
 * caller passes what it read from it (alg, enc, epk, apu, apv), and the
 * header's base64url text is the AAD as it stands in the token.
 *
 * No oracle: once a secret is involved (the key unwrapped, the tag, the
 * padding) every failure is the one message "JWE decryption failed"; a key
 * that does not unwrap is replaced by a random one (RFC 7516 11.5) so it
 * fails at the tag like a tampered token. Key material is wiped.
 *
 * Conventions as in key.h: failures fill err and return -1; no function
 * leaves entries on OpenSSL's error queue. */
#ifndef SA_JWE_H
#define SA_JWE_H

#include <stddef.h>

#include "buf.h"
#include "key.h"
#include "sa_err.h"

/* Caps on outside input (base64url characters). An ID token is a few KiB. */
#define SA_JWE_MAX_TOKEN ((size_t)256 * 1024)
#define SA_JWE_MAX_HEADER ((size_t)8 * 1024)
#define SA_JWE_MAX_EKEY ((size_t)2800) /* a 16384-bit RSA block */
#define SA_JWE_MAX_IV ((size_t)22)    /* 16 bytes */
#define SA_JWE_MAX_TAG ((size_t)43)   /* 32 bytes */

/* The failure message of every secret-dependent step. */
#define SA_JWE_FAILED "JWE decryption failed"

/* A compact JWE cut at its four dots; segments point into the input and are
 * still base64url. */
typedef struct sa_jwe_parts {
    const char *seg[5]; /* header, encrypted key, iv, ciphertext, tag */
    size_t len[5];
} sa_jwe_parts;

extern const char *const sa_jwe_part_name[5];

/* Split s[0..n): exactly four dots, every part within its cap, header, iv,
 * ciphertext and tag non-empty (the encrypted key is empty for dir and
 * ECDH-ES), only base64url characters. 0 ok, -1 SA_EVALIDATION. */
int sa_jwe_split(const char *s, size_t n, sa_jwe_parts *out, sa_err *err);

/* Is this name one of ours? (1 yes, 0 no) */
int sa_jwe_alg_known(const char *alg);
int sa_jwe_enc_known(const char *enc);

/* The i-th supported alg / enc name (i from 0), NULL past the last. */
const char *sa_jwe_alg_at(size_t i);
const char *sa_jwe_enc_at(size_t i);

/* Can this key decrypt (or, public, encrypt) with alg? RSA-OAEP*: RSA >= 2048
 * bits; ECDH-ES*: EC P-256/384/521; AxxxKW: oct of 16/32 bytes; dir: oct
 * (its length is checked against enc). 0 ok, -1 with the reason. */
int sa_jwe_alg_ok(const sa_key *k, const char *alg, sa_err *err);

/* What the protected header said, read by the caller. */
typedef struct sa_jwe_header {
    const char *alg;
    const char *enc;
    const sa_key *epk;          /* ECDH-ES*: the sender's ephemeral public key */
    const unsigned char *apu;   /* decoded "apu", or NULL */
    size_t apulen;
    const unsigned char *apv;   /* decoded "apv", or NULL */
    size_t apvlen;
} sa_jwe_header;

/* Decrypt with the recipient's private key k; the plaintext is appended to
 * out (the caller wipes it with sa_buf_free). 0 ok; -1: SA_EVALIDATION with
 * a reason for what is visible without a secret (alg or enc refused, key
 * unfit, lengths of iv, tag or encrypted key, bad base64url, an epk on
 * another curve or not on its curve) and SA_JWE_FAILED for the rest;
 * SA_ENOMEM. */
int sa_jwe_decrypt(const sa_key *k, const sa_jwe_header *h, const sa_jwe_parts *p,
                   sa_buf *out, sa_err *err);

/* Encrypt pt[0..n) to the recipient's public (or private) key k: the compact
 * JWE appended to out. The header is {"alg","enc"[,"kid"][,"cty"][,"epk"]};
 * kid and cty (NULL for none) must be printable ASCII without '"' or '\\',
 * at most 256 bytes; pt not empty. A fresh CEK and IV each call (dir: k is
 * the CEK).
 * 0 ok, -1. */
int sa_jwe_encrypt(const sa_key *k, const char *alg, const char *enc, const char *kid,
                   const char *cty, const unsigned char *pt, size_t n, sa_buf *out,
                   sa_err *err);

/* RFC 7518 4.6.2 Concat KDF (SHA-256) of the shared secret z: keylen bytes
 * to out for algid (enc for ECDH-ES, alg otherwise). Exposed for the test
 * vector of RFC 7518 Appendix C. 0 ok, -1. */
int sa_jwe_concat_kdf(const unsigned char *z, size_t zlen, const char *algid,
                      const unsigned char *apu, size_t apulen, const unsigned char *apv,
                      size_t apvlen, unsigned char *out, size_t keylen, sa_err *err);

#endif
