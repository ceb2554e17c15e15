/* Growable byte buffer. Owns its memory; sa_buf_free wipes it first because
 * buffers routinely hold secrets (form bodies, tokens). */
#ifndef SA_BUF_H
#define SA_BUF_H

#include <stddef.h>

typedef struct sa_buf {
    char *data;   /* always NUL-terminated when non-NULL, for convenience only */
    size_t len;
    size_t cap;
} sa_buf;

#define SA_BUF_INIT { NULL, 0, 0 }

int sa_buf_reserve(sa_buf *b, size_t extra);           /* 0 ok, -1 no memory */
int sa_buf_append(sa_buf *b, const void *p, size_t n); /* 0 ok, -1 no memory */
int sa_buf_append_str(sa_buf *b, const char *s);
int sa_buf_append_char(sa_buf *b, char c);
void sa_buf_reset(sa_buf *b);   /* len = 0, memory kept and wiped */
void sa_buf_free(sa_buf *b);    /* wipes and frees; safe on a zeroed buffer */

#endif
