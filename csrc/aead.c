#include "aead.h"

#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "crypto.h"

static const unsigned char magic[4] = { 'S', 'A', 'E', 0x01 };

#define ENC_LABEL "smartauth store aes-256-gcm v1"
#define ID_LABEL "smartauth store key id v1"
#define NONCE_LEN 12
#define AAD_HEAD 8

int sa_aead_key_derive(sa_aead_key *key, const void *secret, size_t len, sa_err *err)
{
    unsigned char md[64];
    if (!secret || len < SA_AEAD_MIN_SECRET)
        return sa_err_set(err, SA_EARG, 0, "encryption key must be at least %d bytes",
                          SA_AEAD_MIN_SECRET);
    if (sa_hmac_sha2(256, ENC_LABEL, sizeof ENC_LABEL - 1, secret, len, md) != 32)
        return sa_err_set(err, SA_EVALIDATION, 0, "key derivation failed");
    memcpy(key->k, md, 32);
    if (sa_hmac_sha2(256, ID_LABEL, sizeof ID_LABEL - 1, secret, len, md) != 32) {
        OPENSSL_cleanse(key, sizeof *key);
        return sa_err_set(err, SA_EVALIDATION, 0, "key derivation failed");
    }
    memcpy(key->id, md, 4);
    OPENSSL_cleanse(md, sizeof md);
    return 0;
}

void sa_aead_key_wipe(sa_aead_key *key)
{
    if (key)
        OPENSSL_cleanse(key, sizeof *key);
}

int sa_aead_is_sealed(const void *data, size_t len)
{
    return data && len >= 3 && memcmp(data, magic, 3) == 0;
}

/* Feed the 8 header bytes then the caller's AAD. */
static int add_aad(EVP_CIPHER_CTX *c, const unsigned char *head, const void *aad,
                   size_t aadlen)
{
    int outl;
    if (EVP_CipherUpdate(c, NULL, &outl, head, AAD_HEAD) != 1)
        return -1;
    while (aadlen > 0) {
        int chunk = aadlen > INT_MAX / 2 ? INT_MAX / 2 : (int)aadlen;
        if (EVP_CipherUpdate(c, NULL, &outl, aad, chunk) != 1)
            return -1;
        aad = (const unsigned char *)aad + chunk;
        aadlen -= (size_t)chunk;
    }
    return 0;
}

int sa_aead_seal(const sa_aead_key *key, const void *aad, size_t aadlen,
                 const void *pt, size_t ptlen, sa_buf *out, sa_err *err)
{
    EVP_CIPHER_CTX *c = NULL;
    unsigned char *p;
    size_t start = out->len, done = 0;
    int outl, rc = -1;

    if (ptlen > ((size_t)INT_MAX) - SA_AEAD_OVERHEAD)
        return sa_err_set(err, SA_EARG, 0, "entry too large to encrypt");
    if (sa_buf_reserve(out, SA_AEAD_OVERHEAD + ptlen) != 0)
        return sa_err_set(err, SA_ENOMEM, 0, "out of memory");
    p = (unsigned char *)out->data + start;
    memcpy(p, magic, 4);
    memcpy(p + 4, key->id, 4);
    if (sa_random_bytes(p + 8, NONCE_LEN, err) != 0)
        return -1;
    c = EVP_CIPHER_CTX_new();
    if (!c || EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(c, NULL, NULL, key->k, p + 8) != 1 ||
        add_aad(c, p, aad, aadlen) != 0)
        goto fail;
    if (ptlen > 0) {
        if (EVP_EncryptUpdate(c, p + SA_AEAD_HEADER_LEN, &outl, pt, (int)ptlen) != 1)
            goto fail;
        done = (size_t)outl;
    }
    if (EVP_EncryptFinal_ex(c, p + SA_AEAD_HEADER_LEN + done, &outl) != 1)
        goto fail;
    done += (size_t)outl;
    if (done != ptlen ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SA_AEAD_TAG_LEN,
                            p + SA_AEAD_HEADER_LEN + ptlen) != 1)
        goto fail;
    out->len = start + SA_AEAD_OVERHEAD + ptlen;
    out->data[out->len] = '\0';
    rc = 0;
fail:
    if (rc != 0) {
        ERR_clear_error(); /* no stale entry for the thread's next TLS call */
        sa_err_set(err, SA_EVALIDATION, 0, "encryption failed");
    }
    EVP_CIPHER_CTX_free(c);
    return rc;
}

int sa_aead_open(const sa_aead_key *key, const void *aad, size_t aadlen,
                 const void *msg, size_t len, sa_buf *out, sa_err *err)
{
    const unsigned char *m = msg;
    EVP_CIPHER_CTX *c = NULL;
    unsigned char tag[SA_AEAD_TAG_LEN];
    unsigned char *p;
    size_t ctlen, start = out->len, done = 0;
    int outl, rc = -1;

    if (!sa_aead_is_sealed(m, len))
        return sa_err_set(err, SA_EVALIDATION, SA_AEAD_EFORMAT, "not an encrypted entry");
    if (len < SA_AEAD_OVERHEAD)
        return sa_err_set(err, SA_EVALIDATION, SA_AEAD_EFORMAT,
                          "encrypted entry is truncated");
    if (m[3] != magic[3])
        return sa_err_set(err, SA_EVALIDATION, SA_AEAD_EFORMAT,
                          "encrypted entry has format version %u, this build reads 1",
                          (unsigned)m[3]);
    if (CRYPTO_memcmp(m + 4, key->id, 4) != 0)
        return sa_err_set(err, SA_EVALIDATION, SA_AEAD_EKEY,
                          "entry was encrypted with a different key");
    ctlen = len - SA_AEAD_OVERHEAD;
    if (ctlen > (size_t)INT_MAX)
        return sa_err_set(err, SA_EVALIDATION, SA_AEAD_EFORMAT, "encrypted entry too large");
    if (sa_buf_reserve(out, ctlen) != 0)
        return sa_err_set(err, SA_ENOMEM, 0, "out of memory");
    p = (unsigned char *)out->data + start;
    memcpy(tag, m + len - SA_AEAD_TAG_LEN, SA_AEAD_TAG_LEN);
    c = EVP_CIPHER_CTX_new();
    if (!c || EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(c, NULL, NULL, key->k, m + 8) != 1 ||
        add_aad(c, m, aad, aadlen) != 0) {
        sa_err_set(err, SA_EVALIDATION, 0, "decryption failed");
        goto done;
    }
    if (ctlen > 0) {
        if (EVP_DecryptUpdate(c, p, &outl, m + SA_AEAD_HEADER_LEN, (int)ctlen) != 1) {
            sa_err_set(err, SA_EVALIDATION, 0, "decryption failed");
            goto done;
        }
        done = (size_t)outl;
    }
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, SA_AEAD_TAG_LEN, tag) != 1 ||
        EVP_DecryptFinal_ex(c, p + done, &outl) != 1) {
        sa_err_set(err, SA_EVALIDATION, SA_AEAD_EAUTH,
                   "encrypted entry failed authentication (tampered or damaged)");
        goto done;
    }
    done += (size_t)outl;
    if (done != ctlen) {
        sa_err_set(err, SA_EVALIDATION, 0, "decryption failed");
        goto done;
    }
    out->len = start + ctlen;
    out->data[out->len] = '\0';
    rc = 0;
done:
    if (rc != 0) { /* unverified plaintext never stays in memory */
        OPENSSL_cleanse(p, ctlen);
        ERR_clear_error(); /* no stale entry for the thread's next TLS call */
    }
    EVP_CIPHER_CTX_free(c);
    return rc;
}
