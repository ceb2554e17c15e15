/* Splitting one libFuzzer input into fields, shared by the harnesses.
 * A field is a 2-byte big-endian length followed by that many bytes (cut to
 * what is left), so a seed can be written by hand or by mkseeds.lua. */
#ifndef SA_FUZZ_INPUT_H
#define SA_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const uint8_t *p;
    size_t left;
} fz_in;

static inline int fz_byte(fz_in *in)
{
    int b;
    if (in->left == 0)
        return 0;
    b = in->p[0];
    in->p++;
    in->left--;
    return b;
}

/* The next field; *len gets its length. Never NULL. */
static inline const uint8_t *fz_field(fz_in *in, size_t *len)
{
    size_t n = (size_t)fz_byte(in) << 8;
    const uint8_t *start;
    n |= (size_t)fz_byte(in);
    if (n > in->left)
        n = in->left;
    start = in->p;
    in->p += n;
    in->left -= n;
    *len = n;
    return start;
}

/* Whatever is left. */
static inline const uint8_t *fz_rest(fz_in *in, size_t *len)
{
    const uint8_t *start = in->p;
    *len = in->left;
    in->p += in->left;
    in->left = 0;
    return start;
}

/* A field as a NUL-terminated name (alg, crv) of at most cap - 1 bytes. */
static inline void fz_name(fz_in *in, char *out, size_t cap)
{
    size_t n, i;
    const uint8_t *s = fz_field(in, &n);
    for (i = 0; i < n && i + 1 < cap; i++)
        out[i] = (char)s[i];
    out[i] = '\0';
}

#endif
