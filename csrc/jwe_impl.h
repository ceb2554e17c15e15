/* What jwe.c and jwe_crypto.c share: the algorithm and encryption tables'
 * row types, and the primitives (key agreement, key wrap, RSA-OAEP, content
 * encryption) jwe_crypto.c implements for jwe.c. Internal. */
#ifndef SA_JWE_IMPL_H
#define SA_JWE_IMPL_H

#include <stddef.h>

#include <openssl/evp.h>

#include "buf.h"
#include "sa_err.h"

enum { KM_RSA, KM_ECDH, KM_ECDH_KW, KM_KW, KM_DIR };

typedef struct {
    const char *name;
    size_t kwlen;  /* AES key wrap key bytes (KW, ECDH+KW) */
    int kind;
    int oaep_bits; /* RSA-OAEP hash: 1 (SHA-1) or 256 */
} alg_info;

typedef struct {
    const char *name;
    size_t keylen; /* CEK bytes */
    size_t ivlen;
    size_t taglen;
    int gcm;
    int hmac_bits; /* CBC-HS only */
} enc_info;

#define CEK_MAX 64 /* content-encryption key bytes at most (A256CBC-HS512) */

/* ECDH shared secret of priv with peer; the peer is checked (on the curve,
 * same group) by OpenSSL as well as by the caller. */
int sa_jwe_ecdh(EVP_PKEY *priv, EVP_PKEY *peer, unsigned char *z, size_t cap, size_t *zlen,
                sa_err *err);

/* AES key wrap (enc = 1) or unwrap of in with kek; out holds inlen + 8. */
int sa_jwe_aes_kw(int enc, const unsigned char *kek, size_t keklen, const unsigned char *in,
                  size_t inlen, unsigned char *out, size_t *outlen);

/* RSA-OAEP encrypt (enc = 1) or decrypt; out holds the modulus size. */
int sa_jwe_rsa_oaep(int enc, EVP_PKEY *pk, int bits, const unsigned char *in, size_t inlen,
                    unsigned char *out, size_t cap, size_t *outlen);

/* Content decryption into out; -1 for any failure (the caller says
 * SA_JWE_FAILED), -2 out of memory. */
int sa_jwe_content_decrypt(const enc_info *e, const unsigned char *cek, const char *aad,
                           size_t aadlen, const unsigned char *iv, const unsigned char *ct,
                           size_t ctlen, const unsigned char *tag, sa_buf *out);

/* Content encryption: ciphertext to ct (ptlen + 16 bytes), tag to tag. */
int sa_jwe_content_encrypt(const enc_info *e, const unsigned char *cek, const char *aad,
                           size_t aadlen, const unsigned char *iv, const unsigned char *pt,
                           size_t ptlen, unsigned char *ct, size_t *ctlen, unsigned char *tag);

#endif
