/* OpenSSL helpers for key.c and jws.c; see ossl.h. */
#include "ossl.h"

#include <limits.h>

#include <openssl/err.h>

/* An outside name (alg, crv) made safe to echo: printable ASCII, bounded. */
void sa_ossl_safe_name(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    if (src) {
        for (; src[i] && i + 1 < cap; i++) {
            unsigned char c = (unsigned char)src[i];
            dst[i] = (char)((c >= 0x20 && c < 0x7f && c != '"') ? c : '?');
        }
        if (src[i] && i >= 3) /* cut: mark it */
            dst[i - 1] = dst[i - 2] = dst[i - 3] = '.';
    }
    dst[i] = '\0';
}

/* Report an OpenSSL failure and empty the thread's error queue, so a later
 * TLS operation (libcurl reads the same queue) does not see stale errors. */
int sa_ossl_fail(sa_err *err, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    int rc;
    if (reason)
        rc = sa_err_set(err, SA_EVALIDATION, (long)e, "%s (%s)", what, reason);
    else
        rc = sa_err_set(err, SA_EVALIDATION, (long)e, "%s", what);
    ERR_clear_error();
    return rc;
}

int sa_ossl_nomem(sa_err *err)
{
    ERR_clear_error();
    return sa_err_set(err, SA_ENOMEM, 0, "out of memory");
}

void sa_ossl_strip_zeros(const unsigned char **p, size_t *len)
{
    while (*len > 0 && (*p)[0] == 0) {
        (*p)++;
        (*len)--;
    }
}

/* Big-endian bytes to a BIGNUM, for lengths already bounded by the caller. */
BIGNUM *sa_ossl_bn_from(const unsigned char *p, size_t len, int secret)
{
    BIGNUM *bn = secret ? BN_secure_new() : BN_new();
    if (!bn)
        return NULL;
    if (len > INT_MAX || !BN_bin2bn(p, (int)len, bn)) {
        BN_clear_free(bn);
        return NULL;
    }
    return bn;
}
