/* Small crypto primitives on libcrypto: CSPRNG, base64/base64url, SHA-2,
 * PKCE (RFC 7636) and constant-time comparison. */
#ifndef SA_CRYPTO_H
#define SA_CRYPTO_H

#include <stddef.h>

#include "buf.h"
#include "sa_err.h"

/* Fill buf with n bytes from OpenSSL's CSPRNG. 0 ok, -1 failure. */
int sa_random_bytes(unsigned char *buf, size_t n, sa_err *err);

/* Length of the unpadded base64url encoding of n bytes. */
size_t sa_b64url_len(size_t n);

/* Append the encoding of in[0..n) to out. url=1: base64url without padding
 * (RFC 4648 §5); url=0: standard alphabet with padding. 0 ok, -1 no memory. */
int sa_b64_encode(sa_buf *out, const unsigned char *in, size_t n, int url);

/* Strict decode. url=1 accepts only the base64url alphabet, no padding, no
 * whitespace; url=0 accepts the standard alphabet with optional correct
 * padding. Non-zero trailing bits are rejected so every value has exactly one
 * encoding. 0 ok, -1 with err set (validation). */
int sa_b64_decode(sa_buf *out, const char *in, size_t n, int url, sa_err *err);

/* SHA-256/384/512 by bit size; out must hold 64 bytes. Returns the digest
 * length or -1. */
int sa_sha2(int bits, const void *in, size_t n, unsigned char *out);

/* HMAC-SHA-256/384/512 by bit size; out must hold 64 bytes. Returns the
 * digest length or -1. */
int sa_hmac_sha2(int bits, const void *key, size_t keylen, const void *in,
                 size_t n, unsigned char *out);

/* Appends a fresh PKCE code verifier: 32 random bytes as base64url (43
 * characters, inside RFC 7636's 43..128 from the unreserved set). */
int sa_pkce_verifier(sa_buf *out, sa_err *err);

/* S256 challenge: BASE64URL(SHA256(ASCII(verifier))). Verifiers outside
 * RFC 7636 §4.1 (length 43..128, unreserved characters) are refused. */
int sa_pkce_challenge(sa_buf *out, const char *verifier, size_t n, sa_err *err);

/* Constant-time equality: time depends only on the lengths, never on where
 * the contents differ. 1 equal, 0 different. */
int sa_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

#endif
