/* JWS signatures (RFC 7515/7518, EdDSA per RFC 8037) on OpenSSL 3 libcrypto,
 * with keys from key.h.
 *
 * Conventions as in key.h: every function that fails fills err and returns
 * NULL or -1; byte inputs carry their length; only alg names are C strings;
 * no function leaves entries on OpenSSL's per-thread error queue. */
#ifndef SA_JWS_H
#define SA_JWS_H

#include <stddef.h>

#include "key.h"
#include "sa_err.h"

/* ---- the alg table: the one place that says which key goes with an alg */

typedef struct sa_jws_alg_info {
    const char *name; /* "RS256", ..., "EdDSA", "HS512" */
    const char *kty;  /* "RSA", "EC", "OKP", "oct" */
    const char *crv;  /* EC/OKP curve ("P-256", ..., "Ed25519"), NULL otherwise */
    int hash_bits;    /* 256, 384 or 512: the signature hash, and the at_hash /
                         c_hash hash (512 for EdDSA) */
} sa_jws_alg_info;

/* The i-th supported alg (i from 0), or NULL past the last one. */
const sa_jws_alg_info *sa_jws_alg_at(size_t i);

/* ---- compact serialization */

/* A compact JWS cut at its dots; the three segments point into the input and
 * are still base64url (not decoded). */
typedef struct sa_jws_parts {
    const char *seg[3];   /* header, payload, signature */
    size_t len[3];
    size_t input_len;     /* the signing input is the first input_len bytes */
} sa_jws_parts;

/* Split s[0..n) (RFC 7515 7.1): exactly two dots and a non-empty header and
 * payload (the signature may be empty). 0 ok, -1 with SA_EVALIDATION. */
int sa_jws_split(const char *s, size_t n, sa_jws_parts *out, sa_err *err);

/* Names of the three segments, for messages: "header", "payload", "signature". */
extern const char *const sa_jws_part_name[3];

/* ---- sign and verify */


/* Is alg usable with this key? RS256/384/512 and PS256/384/512 need RSA of at
 * least 2048 bits, ES256/ES384/ES512 need EC P-256/P-384/P-521, EdDSA needs
 * Ed25519, HS256/384/512 need an oct key. Everything else ("none", "",
 * lower case, unknown) is refused. 0 ok, -1 with a message naming the mismatch. */
int sa_jws_alg_ok(const sa_key *k, const char *alg, sa_err *err);

/* The alg this key signs with when none is chosen: the first in the alg
 * table the key can use (RS256 for RSA, ES256/ES384/ES512 by curve, EdDSA,
 * HS256 for oct). A static name, or NULL with err saying why (an RSA key
 * under 2048 bits). */
const char *sa_jws_default_alg(const sa_key *k, sa_err *err);

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
