/* OpenSSL helpers shared by key.c and jws.c (internal: not part of the
 * core's contract). The dependency runs one way: jws.c -> key.c -> ossl.c. */
#ifndef SA_OSSL_H
#define SA_OSSL_H

#include <stddef.h>

#include <openssl/bn.h>

#include "sa_err.h"

#define SA_OSSL_NAME_MAX 32 /* longest outside name (alg, crv) echoed in a message */

/* An outside name (alg, crv) made safe to echo: printable ASCII, bounded,
 * a cut marked with "...". cap >= 1. */
void sa_ossl_safe_name(char *dst, size_t cap, const char *src);

/* Report an OpenSSL failure as SA_EVALIDATION (with OpenSSL's reason when it
 * has one) and empty the thread's error queue, so a later TLS operation
 * (libcurl reads the same queue) does not see stale errors. Returns -1. */
int sa_ossl_fail(sa_err *err, const char *what);

/* SA_ENOMEM, queue emptied likewise. Returns -1. */
int sa_ossl_nomem(sa_err *err);

/* Skip leading zero bytes of a big-endian number. */
void sa_ossl_strip_zeros(const unsigned char **p, size_t *len);

/* Big-endian bytes to a BIGNUM (BN_secure_new when secret), for lengths
 * already bounded by the caller; NULL on failure. Free with BN_clear_free. */
BIGNUM *sa_ossl_bn_from(const unsigned char *p, size_t len, int secret);

#endif
