/* JWE's primitives on OpenSSL 3 (EVP only), for jwe.c: the Concat KDF,
 * ECDH, AES key wrap, RSA-OAEP, and content encryption (AES-GCM and
 * AES-CBC with HMAC, its tag compared in constant time). */
#include "jwe.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "crypto.h"
#include "jwe_impl.h"
#include "ossl.h"

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

int sa_jwe_concat_kdf(const unsigned char *z, size_t zlen, const char *algid,
                      const unsigned char *apu, size_t apulen, const unsigned char *apv,
                      size_t apvlen, unsigned char *out, size_t keylen, sa_err *err)
{
    EVP_MD_CTX *md = NULL;
    unsigned char ctr[4], len4[4], dig[32];
    size_t done = 0, idlen = strlen(algid);
    uint32_t round = 1;
    int rc = -1;
    if (keylen > CEK_MAX || zlen > 1024 || apulen > 0xffffffffu || apvlen > 0xffffffffu)
        return sa_err_set(err, SA_EARG, 0, "Concat KDF: bad lengths");
    if (!(md = EVP_MD_CTX_new()))
        return sa_ossl_nomem(err);
    while (done < keylen) {
        size_t take = keylen - done < sizeof dig ? keylen - done : sizeof dig;
        int ok = 1;
        put32(ctr, round);
        ok &= EVP_DigestInit_ex(md, EVP_sha256(), NULL);
        ok &= EVP_DigestUpdate(md, ctr, 4);
        ok &= EVP_DigestUpdate(md, z, zlen);
        put32(len4, (uint32_t)idlen);
        ok &= EVP_DigestUpdate(md, len4, 4);
        ok &= EVP_DigestUpdate(md, algid, idlen);
        put32(len4, (uint32_t)apulen);
        ok &= EVP_DigestUpdate(md, len4, 4);
        if (apulen)
            ok &= EVP_DigestUpdate(md, apu, apulen);
        put32(len4, (uint32_t)apvlen);
        ok &= EVP_DigestUpdate(md, len4, 4);
        if (apvlen)
            ok &= EVP_DigestUpdate(md, apv, apvlen);
        put32(len4, (uint32_t)(keylen * 8)); /* SuppPubInfo: keydatalen in bits */
        ok &= EVP_DigestUpdate(md, len4, 4);
        ok &= EVP_DigestFinal_ex(md, dig, NULL);
        if (!ok) {
            sa_ossl_fail(err, "Concat KDF");
            goto done;
        }
        memcpy(out + done, dig, take);
        done += take;
        round++;
    }
    rc = 0;
done:
    OPENSSL_cleanse(dig, sizeof dig);
    EVP_MD_CTX_free(md);
    return rc;
}

/* Constant time in the length only. */
static int all_zero(const unsigned char *p, size_t n)
{
    unsigned char acc = 0;
    size_t i;
    for (i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

/* ECDH shared secret of priv with peer; the peer is checked (on the curve,
 * same group) by OpenSSL as well as by the caller. */
int sa_jwe_ecdh(EVP_PKEY *priv, EVP_PKEY *peer, unsigned char *z, size_t cap, size_t *zlen,
                sa_err *err)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, peer, NULL);
    size_t len = 0;
    int rc = -1;
    if (!c || !pc) {
        sa_ossl_nomem(err);
        goto done;
    }
    /* invalid-curve attacks: the point must be on the curve (and not at
     * infinity). P-256/384/521 have cofactor 1, so every such point has the
     * group's order: the quick check is the whole check, and the peer needs
     * no second validation (each would cost a scalar multiplication). An
     * X25519 peer is any 32 bytes (RFC 7748): only the secret is checked */
    if (EVP_PKEY_public_check_quick(pc) != 1) {
        sa_ossl_fail(err, "JWE epk is not a valid point");
        goto done;
    }
    if (EVP_PKEY_derive_init(c) != 1 || EVP_PKEY_derive_set_peer_ex(c, peer, 0) != 1 ||
        EVP_PKEY_derive(c, NULL, &len) != 1 || len > cap ||
        EVP_PKEY_derive(c, z, &len) != 1) {
        sa_ossl_fail(err, "JWE key agreement (epk)");
        goto done;
    }
    /* X25519 (RFC 7748 §6.1): a point of small order gives the all-zero
     * secret whatever our key; OpenSSL refuses it too. It says nothing of
     * our key, so the distinct message is no oracle. */
    if (all_zero(z, len)) {
        OPENSSL_cleanse(z, len);
        sa_err_set(err, SA_EVALIDATION, 0, "JWE epk is a point of small order");
        goto done;
    }
    *zlen = len;
    rc = 0;
done:
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_CTX_free(pc);
    return rc;
}

/* AES key wrap (enc = 1) or unwrap of in with kek; out holds inlen + 8. */
int sa_jwe_aes_kw(int enc, const unsigned char *kek, size_t keklen, const unsigned char *in,
                  size_t inlen, unsigned char *out, size_t *outlen)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    const EVP_CIPHER *ci = keklen == 16 ? EVP_aes_128_wrap() : EVP_aes_256_wrap();
    int l1 = 0, l2 = 0, ok;
    if (!c)
        return -1;
    EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    ok = inlen <= INT_MAX && EVP_CipherInit_ex(c, ci, NULL, kek, NULL, enc) == 1 &&
         EVP_CipherUpdate(c, out, &l1, in, (int)inlen) == 1 &&
         EVP_CipherFinal_ex(c, out + l1, &l2) == 1;
    EVP_CIPHER_CTX_free(c);
    ERR_clear_error();
    if (!ok)
        return -1;
    *outlen = (size_t)l1 + (size_t)l2;
    return 0;
}

/* RSA-OAEP encrypt (enc = 1) or decrypt; out holds the modulus size. */
int sa_jwe_rsa_oaep(int enc, EVP_PKEY *pk, int bits, const unsigned char *in, size_t inlen,
                    unsigned char *out, size_t cap, size_t *outlen)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    const EVP_MD *md = bits == 256 ? EVP_sha256() : EVP_sha1();
    size_t len = cap;
    int ok;
    if (!c)
        return -1;
    ok = (enc ? EVP_PKEY_encrypt_init(c) : EVP_PKEY_decrypt_init(c)) == 1 &&
         EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_oaep_md(c, md) == 1 && EVP_PKEY_CTX_set_rsa_mgf1_md(c, md) == 1 &&
         (enc ? EVP_PKEY_encrypt(c, out, &len, in, inlen)
              : EVP_PKEY_decrypt(c, out, &len, in, inlen)) == 1;
    EVP_PKEY_CTX_free(c);
    ERR_clear_error();
    if (!ok)
        return -1;
    *outlen = len;
    return 0;
}

static const EVP_CIPHER *content_cipher(const enc_info *e)
{
    if (e->gcm)
        return e->keylen == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm();
    return e->keylen == 32 ? EVP_aes_128_cbc() : EVP_aes_256_cbc();
}

/* CBC-HS tag: the first taglen bytes of HMAC(mac key, AAD || IV || C || AL). */
static int cbc_tag(const enc_info *e, const unsigned char *cek, const char *aad, size_t aadlen,
                   const unsigned char *iv, const unsigned char *ct, size_t ctlen,
                   unsigned char *tag)
{
    unsigned char al[8], mac[64];
    uint64_t bits = (uint64_t)aadlen * 8;
    sa_buf in = SA_BUF_INIT;
    int i, rc = -1;
    for (i = 7; i >= 0; i--) {
        al[i] = (unsigned char)bits;
        bits >>= 8;
    }
    if (sa_buf_append(&in, aad, aadlen) != 0 || sa_buf_append(&in, iv, e->ivlen) != 0 ||
        sa_buf_append(&in, ct, ctlen) != 0 || sa_buf_append(&in, al, 8) != 0)
        goto done;
    if (sa_hmac_sha2(e->hmac_bits, cek, e->keylen / 2, in.data, in.len, mac) < 0)
        goto done;
    memcpy(tag, mac, e->taglen);
    rc = 0;
done:
    OPENSSL_cleanse(mac, sizeof mac);
    sa_buf_free(&in);
    return rc;
}

/* Content decryption into out; -1 for any failure (the caller says
 * SA_JWE_FAILED), -2 out of memory. */
int sa_jwe_content_decrypt(const enc_info *e, const unsigned char *cek, const char *aad,
                           size_t aadlen, const unsigned char *iv, const unsigned char *ct,
                           size_t ctlen, const unsigned char *tag, sa_buf *out)
{
    EVP_CIPHER_CTX *c = NULL;
    unsigned char want[32];
    int l1 = 0, l2 = 0, rc = -1;
    if (ctlen > INT_MAX - 32 || aadlen > INT_MAX)
        return -1;
    if (!e->gcm) {
        if (cbc_tag(e, cek, aad, aadlen, iv, ct, ctlen, want) != 0)
            return -2;
        if (CRYPTO_memcmp(want, tag, e->taglen) != 0)
            return -1;
    }
    if (sa_buf_reserve(out, ctlen + 32) != 0 || !(c = EVP_CIPHER_CTX_new())) {
        rc = -2;
        goto done;
    }
    if (EVP_DecryptInit_ex(c, content_cipher(e), NULL, NULL, NULL) != 1)
        goto done;
    if (e->gcm && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, (int)e->ivlen, NULL) != 1)
        goto done;
    if (EVP_DecryptInit_ex(c, NULL, NULL, e->gcm ? cek : cek + e->keylen / 2, iv) != 1)
        goto done;
    if (e->gcm && EVP_DecryptUpdate(c, NULL, &l1, (const unsigned char *)aad, (int)aadlen) != 1)
        goto done;
    if (EVP_DecryptUpdate(c, (unsigned char *)out->data + out->len, &l1, ct, (int)ctlen) != 1)
        goto done;
    if (e->gcm &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, (int)e->taglen, (void *)tag) != 1)
        goto done;
    if (EVP_DecryptFinal_ex(c, (unsigned char *)out->data + out->len + l1, &l2) != 1)
        goto done;
    out->len += (size_t)l1 + (size_t)l2;
    out->data[out->len] = '\0';
    rc = 0;
done:
    if (rc != 0 && out->data) /* a failed tag: no unverified plaintext stays */
        OPENSSL_cleanse(out->data + out->len, out->cap - out->len);
    OPENSSL_cleanse(want, sizeof want);
    EVP_CIPHER_CTX_free(c);
    ERR_clear_error();
    return rc;
}

/* Content encryption: ciphertext to ct (ptlen + 16 bytes), tag to tag. */
int sa_jwe_content_encrypt(const enc_info *e, const unsigned char *cek, const char *aad,
                           size_t aadlen, const unsigned char *iv, const unsigned char *pt,
                           size_t ptlen, unsigned char *ct, size_t *ctlen, unsigned char *tag)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0, ok;
    if (!c)
        return -1;
    ok = ptlen <= INT_MAX - 32 && aadlen <= INT_MAX &&
         EVP_EncryptInit_ex(c, content_cipher(e), NULL, NULL, NULL) == 1 &&
         (!e->gcm || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, (int)e->ivlen, NULL) == 1) &&
         EVP_EncryptInit_ex(c, NULL, NULL, e->gcm ? cek : cek + e->keylen / 2, iv) == 1 &&
         (!e->gcm ||
          EVP_EncryptUpdate(c, NULL, &l1, (const unsigned char *)aad, (int)aadlen) == 1) &&
         EVP_EncryptUpdate(c, ct, &l1, pt, (int)ptlen) == 1 &&
         EVP_EncryptFinal_ex(c, ct + l1, &l2) == 1 &&
         (!e->gcm || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, (int)e->taglen, tag) == 1);
    EVP_CIPHER_CTX_free(c);
    ERR_clear_error();
    if (!ok)
        return -1;
    *ctlen = (size_t)l1 + (size_t)l2;
    if (!e->gcm)
        return cbc_tag(e, cek, aad, aadlen, iv, ct, *ctlen, tag);
    return 0;
}

