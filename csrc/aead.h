/* AES-256-GCM for entries at rest: seal and open with associated data, a
 * random 12-byte nonce per message, and a versioned header.
 *
 * Sealed layout (all lengths in bytes):
 *   "SAE" 0x01   magic and format version                          4
 *   key id       first 4 bytes of HMAC-SHA256(secret, label)       4
 *   nonce        random                                           12
 *   ciphertext   same length as the plaintext                      n
 *   tag          GCM tag                                          16
 * The GCM associated data is the first 8 bytes (magic, version, key id)
 * followed by the caller's AAD, so neither the header nor the entry name can
 * be changed without the tag failing. The key id only lets a wrong key be
 * told apart from a damaged file; it reveals nothing usable about the key. */
#ifndef SA_AEAD_H
#define SA_AEAD_H

#include <stddef.h>

#include "buf.h"
#include "sa_err.h"

#define SA_AEAD_HEADER_LEN 20  /* magic + version + key id + nonce */
#define SA_AEAD_TAG_LEN 16
#define SA_AEAD_OVERHEAD (SA_AEAD_HEADER_LEN + SA_AEAD_TAG_LEN)
#define SA_AEAD_MIN_SECRET 16

/* Codes in sa_err.code for a failed open (kind SA_EVALIDATION). */
enum {
    SA_AEAD_EFORMAT = 1,  /* not a sealed message, or a version we do not read */
    SA_AEAD_EKEY = 2,     /* sealed under a different key */
    SA_AEAD_EAUTH = 3     /* tag mismatch: tampered or damaged */
};

typedef struct sa_aead_key {
    unsigned char k[32];
    unsigned char id[4];
} sa_aead_key;

/* Derive the AES key and key id from a caller secret (at least
 * SA_AEAD_MIN_SECRET bytes; a random value, not a password: it is not
 * stretched). 0 ok, -1 with err (SA_EARG). */
int sa_aead_key_derive(sa_aead_key *key, const void *secret, size_t len, sa_err *err);

/* Wipe a key (safe on NULL). */
void sa_aead_key_wipe(sa_aead_key *key);

/* 1 when data starts with the sealed-message magic (any version). */
int sa_aead_is_sealed(const void *data, size_t len);

/* Append the sealed form of pt to out. 0 ok, -1 with err. */
int sa_aead_seal(const sa_aead_key *key, const void *aad, size_t aadlen,
                 const void *pt, size_t ptlen, sa_buf *out, sa_err *err);

/* Append the plaintext of a sealed message to out. Nothing is appended
 * unless the tag verifies. 0 ok, -1 with err (code SA_AEAD_E*). */
int sa_aead_open(const sa_aead_key *key, const void *aad, size_t aadlen,
                 const void *msg, size_t len, sa_buf *out, sa_err *err);

#endif
