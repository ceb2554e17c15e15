/* Error reporting shared by the C core: every fallible function fills one of
 * these; the binding turns it into the Lua error object. */
#ifndef SA_ERR_H
#define SA_ERR_H

#include <stddef.h>

typedef enum {
    SA_OK = 0,
    SA_ENETWORK,    /* could not connect, connection reset, DNS */
    SA_ETLS,        /* certificate or handshake failure */
    SA_ETIMEOUT,    /* connect or total timeout */
    SA_EHTTP,       /* protocol-level problem (size limit, bad response) */
    SA_EVALIDATION, /* bad signature, malformed input */
    SA_ESTORAGE,    /* file or redis store */
    SA_ENOMEM,
    SA_EARG         /* caller passed something unusable */
} sa_kind;

typedef struct sa_err {
    int kind;       /* sa_kind */
    long code;      /* library-specific code (CURLcode, errno, ...) or 0 */
    char msg[256];  /* human readable, never contains a secret */
} sa_err;

/* Fill err (if not NULL); returns -1 so callers can `return sa_err_set(...)`. */
int sa_err_set(sa_err *err, int kind, long code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

void sa_err_clear(sa_err *err);

/* Kind names as the Lua layer spells them ("network", "tls", ...). */
const char *sa_err_kind_name(int kind);

#endif
