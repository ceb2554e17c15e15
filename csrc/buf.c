#include "buf.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

int sa_buf_reserve(sa_buf *b, size_t extra)
{
    size_t need, ncap;
    char *nd;
    if (extra > ((size_t)-1) - b->len - 1)
        return -1;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    ncap = b->cap ? b->cap : 64;
    while (ncap < need) {
        if (ncap > ((size_t)-1) / 2) {
            ncap = need;
            break;
        }
        ncap *= 2;
    }
    /* Not realloc: the old block may hold a secret and must be wiped. */
    nd = malloc(ncap);
    if (!nd)
        return -1;
    if (b->data) {
        memcpy(nd, b->data, b->len + 1);
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    } else {
        nd[0] = '\0';
    }
    b->data = nd;
    b->cap = ncap;
    return 0;
}

int sa_buf_append(sa_buf *b, const void *p, size_t n)
{
    if (sa_buf_reserve(b, n) != 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int sa_buf_append_str(sa_buf *b, const char *s)
{
    return sa_buf_append(b, s, strlen(s));
}

int sa_buf_append_char(sa_buf *b, char c)
{
    return sa_buf_append(b, &c, 1);
}

void sa_buf_reset(sa_buf *b)
{
    if (b->data) {
        OPENSSL_cleanse(b->data, b->cap);
        b->data[0] = '\0';
    }
    b->len = 0;
}

void sa_buf_free(sa_buf *b)
{
    if (!b)
        return;
    if (b->data) {
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    }
    b->data = NULL;
    b->len = b->cap = 0;
}
