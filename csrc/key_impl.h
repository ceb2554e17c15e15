/* The key object, shared by key.c (which makes and inspects keys) and
 * jws.c (which signs and verifies with them, and keeps its verification
 * context in the key). Internal: callers see sa_key as opaque (key.h). */
#ifndef SA_KEY_IMPL_H
#define SA_KEY_IMPL_H

#include <stddef.h>

#include <openssl/core.h>
#include <openssl/evp.h>

#include "key.h"

#define ED25519_LEN 32 /* Ed25519 public key and seed bytes */

/* The EC curves keys may use (key.c's table). */
typedef struct {
    const char *jwk;  /* JWK crv */
    const char *ossl; /* OpenSSL group name */
    const char *alias;
    size_t coord;
    int bits;
} sa_ec_curve;

struct sa_key {
    int type;              /* sa_key_type */
    int bits;
    int priv;              /* can sign */
    const char *curve;     /* static JWK curve name or NULL */
    size_t coord;          /* EC coordinate bytes, 0 otherwise */
    EVP_PKEY *pkey;        /* NULL for SA_KEY_OCT */
    unsigned char *secret; /* SA_KEY_OCT only; wiped on free */
    size_t secretlen;
    /* RS/PS/ES verification context, set up for valg: setting one up costs
     * about a fifth of an RSA-2048 verification, so it is kept. */
    EVP_PKEY_CTX *vctx;
    const void *valg;
    EVP_MD_CTX *vmd;       /* for the digest, kept for the same reason */
    EVP_MD *vmdt;          /* valg's digest, fetched once (not by name per use) */
};

/* key.c, for key_gen.c: a curve by its JWK name (NULL if not one we use),
 * and a zeroed key object of a type (NULL and err on no memory). */
const sa_ec_curve *sa_curve_by_jwk(const char *crv);
sa_key *sa_key_alloc(int type, sa_err *err);

/* key.c, for key_x25519.c: the PEM decoders' passphrase callback, which
 * refuses (an encrypted PEM fails, never a prompt on a terminal). */
int sa_no_passphrase(char *pass, size_t size, size_t *len, const OSSL_PARAM params[],
                     void *arg);

#endif
