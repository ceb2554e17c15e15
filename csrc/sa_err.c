#include "sa_err.h"

#include <stdarg.h>
#include <stdio.h>

int sa_err_set(sa_err *err, int kind, long code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->kind = kind;
        err->code = code;
        va_start(ap, fmt);
        /* a message longer than msg is cut, which is all a message needs */
        (void)vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void sa_err_clear(sa_err *err)
{
    if (err) {
        err->kind = SA_OK;
        err->code = 0;
        err->msg[0] = '\0';
    }
}

const char *sa_err_kind_name(int kind)
{
    switch (kind) {
    case SA_OK: return "ok";
    case SA_ENETWORK: return "network";
    case SA_ETLS: return "tls";
    case SA_ETIMEOUT: return "timeout";
    case SA_EHTTP: return "http";
    case SA_EVALIDATION: return "validation";
    case SA_ESTORAGE: return "storage";
    case SA_ENOMEM: return "memory";
    case SA_EARG: return "argument";
    default: return "unknown";
    }
}
