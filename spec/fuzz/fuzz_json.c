/* libFuzzer harness: strict JSON parsing (sa_json_parse). Input: the whole
 * of it is one JSON text.
 *
 * On success the token list must be a well-formed tree: walking it from
 * token 0 consumes exactly ntoks tokens, object members are (STRING, value)
 * pairs, depth stays within SA_JSON_MAX_DEPTH, every STRING lies inside
 * strings, every NUMBER lies inside the input and is a JSON number (INT
 * otherwise), and parsing again with the same sa_json gives the same list.
 * On failure the error is SA_EVALIDATION (or SA_ENOMEM) naming a byte
 * offset within the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* s[0..n) matches -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and is
 * not a plain integer in the 64-bit range (those are INT tokens). */
static int json_number(const char *s, size_t n)
{
    size_t i = 0, d;
    int integral = 1;
    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0') {
        i++;
    } else {
        if (i >= n || s[i] < '1' || s[i] > '9')
            return 0;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < n && s[i] == '.') {
        integral = 0;
        i++;
        for (d = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            ;
        if (i == d)
            return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        integral = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        for (d = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            ;
        if (i == d)
            return 0;
    }
    if (i != n)
        return 0;
    if (integral) {
        /* an integer that fits would have been an INT: this one must not
         * fit (no leading zeros, so longer means larger) */
        int neg = s[0] == '-';
        size_t digits = n - (size_t)neg;
        const char *lim = neg ? "9223372036854775808" : "9223372036854775807";
        if (digits < 19 || (digits == 19 && memcmp(s + neg, lim, 19) <= 0))
            return 0;
    }
    return 1;
}

/* Walks the value at *k; 0 ok, -1 if the list is not a tree. */
static int walk(const sa_json *j, const char *in, size_t len, size_t *k, int depth)
{
    const sa_json_tok *t;
    size_t m;
    if (*k >= j->ntoks)
        return -1;
    t = &j->toks[(*k)++];
    switch (t->type) {
    case SA_JSON_OBJECT:
    case SA_JSON_ARRAY:
        if (depth >= SA_JSON_MAX_DEPTH)
            return -1;
        for (m = 0; m < t->n; m++) {
            if (t->type == SA_JSON_OBJECT) {
                if (*k >= j->ntoks || j->toks[*k].type != SA_JSON_STRING)
                    return -1;
                if (walk(j, in, len, k, depth + 1) != 0)
                    return -1;
            }
            if (walk(j, in, len, k, depth + 1) != 0)
                return -1;
        }
        return 0;
    case SA_JSON_STRING:
        if (t->off > j->strings.len || t->n > j->strings.len - t->off)
            return -1;
        return 0;
    case SA_JSON_NUMBER:
        if (t->off > len || t->n > len - t->off || !json_number(in + t->off, t->n))
            return -1;
        return 0;
    case SA_JSON_INT:
    case SA_JSON_TRUE:
    case SA_JSON_FALSE:
    case SA_JSON_NULL:
        return 0;
    default:
        return -1;
    }
}

static int same_tokens(const sa_json_tok *a, size_t na, const sa_json *b)
{
    size_t k;
    if (na != b->ntoks)
        return 0;
    for (k = 0; k < na; k++)
        if (a[k].type != b->toks[k].type || a[k].n != b->toks[k].n ||
            a[k].off != b->toks[k].off || a[k].i != b->toks[k].i)
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sa_json j = SA_JSON_INIT;
    sa_err e;
    const char *s = (const char *)data;
    size_t k = 0;
    unsigned long at;

    if (sa_json_parse(&j, s, size, &e) == 0) {
        sa_json_tok *copy;
        char *strings;
        size_t ntoks = j.ntoks, slen = j.strings.len;

        if (j.ntoks == 0 || walk(&j, s, size, &k, 0) != 0 || k != j.ntoks)
            abort();
        /* the same input through the same sa_json: the same tokens and the
         * same decoded strings */
        copy = malloc(ntoks * sizeof *copy);
        strings = malloc(slen + 1);
        if (!copy || !strings)
            abort();
        memcpy(copy, j.toks, ntoks * sizeof *copy);
        memcpy(strings, j.strings.data ? j.strings.data : "", slen);
        if (sa_json_parse(&j, s, size, &e) != 0 || !same_tokens(copy, ntoks, &j) ||
            j.strings.len != slen || (slen && memcmp(j.strings.data, strings, slen) != 0))
            abort();
        free(copy);
        free(strings);
    } else if (e.kind == SA_EVALIDATION) {
        if (sscanf(e.msg, "invalid JSON at byte %lu:", &at) != 1 || at > size)
            abort();
        /* a failure leaves the sa_json usable */
        if (sa_json_parse(&j, "[\"ok\",1]", 8, &e) != 0 || j.ntoks != 3)
            abort();
    } else if (e.kind != SA_ENOMEM) {
        abort();
    }
    sa_json_free(&j);
    return 0;
}
