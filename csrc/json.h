/* Strict JSON (RFC 8259) parsing into a flat list of tokens, for building
 * Lua tables of exactly the right size. Every response body and token
 * payload passes through here, so it is outside input: bounded depth, no
 * trailing bytes, no control characters in strings, no lone surrogates.
 * Raw bytes of 0x80 and above are passed through unchecked (as lua-cjson
 * does): a provider's non-UTF-8 display name must not fail a login. */
#ifndef SA_JSON_H
#define SA_JSON_H

#include <stddef.h>

#include "buf.h"
#include "sa_err.h"

#define SA_JSON_MAX_DEPTH 64

enum {
    SA_JSON_OBJECT = 1, /* n = members; followed by n (string key, value) pairs */
    SA_JSON_ARRAY,      /* n = elements; followed by n values */
    SA_JSON_STRING,     /* decoded bytes at strings.data + off, n bytes */
    SA_JSON_INT,        /* i: an integer that fits in 64 bits, no fraction or exponent */
    SA_JSON_NUMBER,     /* any other number: its text at input + off, n bytes */
    SA_JSON_TRUE,
    SA_JSON_FALSE,
    SA_JSON_NULL
};

typedef struct sa_json_tok {
    int type;
    size_t n;
    size_t off;
    long long i;
} sa_json_tok;

typedef struct sa_json {
    sa_json_tok *toks; /* in document order */
    size_t ntoks, cap;
    sa_buf strings;    /* every decoded string, back to back */
} sa_json;

#define SA_JSON_INIT { NULL, 0, 0, SA_BUF_INIT }

/* Parse s[0..len) (one JSON value, whitespace around it allowed) into j,
 * which is reset first. 0 ok; -1 with err (SA_EVALIDATION naming the byte
 * offset, or SA_ENOMEM). */
int sa_json_parse(sa_json *j, const char *s, size_t len, sa_err *err);

/* Frees j's memory (strings are wiped: bodies hold tokens). */
void sa_json_free(sa_json *j);

#endif
