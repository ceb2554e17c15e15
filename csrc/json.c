#include "json.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

typedef struct {
    const char *s;
    size_t len, pos;
    sa_json *j;
    sa_err *err;
    int depth;
} parser;

static int fail(parser *p, const char *what)
{
    return sa_err_set(p->err, SA_EVALIDATION, 0, "invalid JSON at byte %zu: %s", p->pos, what);
}

static int oom(parser *p)
{
    return sa_err_set(p->err, SA_ENOMEM, 0, "out of memory");
}

static void ws(parser *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

/* Appends a token; its index, or (size_t)-1 without memory. Indexes, not
 * pointers: the array moves as it grows. */
static size_t push(parser *p, int type)
{
    sa_json *j = p->j;
    if (j->ntoks == j->cap) {
        size_t ncap = j->cap ? j->cap * 2 : 32;
        sa_json_tok *nt;
        if (ncap > ((size_t)-1) / sizeof *nt)
            return (size_t)-1;
        nt = realloc(j->toks, ncap * sizeof *nt);
        if (!nt)
            return (size_t)-1;
        j->toks = nt;
        j->cap = ncap;
    }
    memset(&j->toks[j->ntoks], 0, sizeof j->toks[0]);
    j->toks[j->ntoks].type = type;
    return j->ntoks++;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static int put_utf8(sa_buf *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12);
        u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | cp >> 18);
        u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return sa_buf_append(b, u, n);
}

/* A string at p->pos (the opening quote). */
static int string(parser *p)
{
    sa_buf *b = &p->j->strings;
    size_t t = push(p, SA_JSON_STRING), start;
    if (t == (size_t)-1)
        return oom(p);
    p->j->toks[t].off = b->len;
    p->pos++;
    for (;;) {
        unsigned char c;
        start = p->pos;
        /* the plain run up to a quote, backslash or control character */
        while (p->pos < p->len) {
            c = (unsigned char)p->s[p->pos];
            if (c == '"' || c == '\\' || c < 0x20)
                break;
            p->pos++;
        }
        if (p->pos > start && sa_buf_append(b, p->s + start, p->pos - start) != 0)
            return oom(p);
        if (p->pos >= p->len)
            return fail(p, "unterminated string");
        c = (unsigned char)p->s[p->pos];
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(p, "control character in string");
        /* an escape */
        if (p->pos + 1 >= p->len)
            return fail(p, "unterminated string");
        p->pos++;
        c = (unsigned char)p->s[p->pos];
        {
            char out = 0;
            switch (c) {
            case '"': out = '"'; break;
            case '\\': out = '\\'; break;
            case '/': out = '/'; break;
            case 'b': out = '\b'; break;
            case 'f': out = '\f'; break;
            case 'n': out = '\n'; break;
            case 'r': out = '\r'; break;
            case 't': out = '\t'; break;
            case 'u': break;
            default:
                return fail(p, "invalid escape");
            }
            if (c != 'u') {
                if (sa_buf_append_char(b, out) != 0)
                    return oom(p);
                p->pos++;
                continue;
            }
        }
        {
            unsigned cp, lo;
            if (p->len - p->pos < 5 || hex4(p->s + p->pos + 1, &cp) != 0)
                return fail(p, "invalid \\u escape");
            p->pos += 5;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return fail(p, "lone low surrogate");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (p->len - p->pos < 6 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
                    hex4(p->s + p->pos + 2, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
                    return fail(p, "lone high surrogate");
                p->pos += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (put_utf8(b, cp) != 0)
                return oom(p);
        }
    }
    p->pos++; /* the closing quote */
    p->j->toks[t].n = b->len - p->j->toks[t].off;
    return 0;
}

static int digits(parser *p)
{
    size_t start = p->pos;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
        p->pos++;
    return p->pos > start;
}

static int number(parser *p)
{
    size_t start = p->pos, t;
    int neg = 0, integral = 1;
    unsigned long long acc = 0;
    size_t i;
    if (p->s[p->pos] == '-') {
        neg = 1;
        p->pos++;
    }
    if (p->pos < p->len && p->s[p->pos] == '0')
        p->pos++;
    else if (!digits(p))
        return fail(p, "invalid number");
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        integral = 0;
        if (!digits(p))
            return fail(p, "invalid number");
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        integral = 0;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        if (!digits(p))
            return fail(p, "invalid number");
    }
    if ((t = push(p, SA_JSON_NUMBER)) == (size_t)-1)
        return oom(p);
    p->j->toks[t].off = start;
    p->j->toks[t].n = p->pos - start;
    if (!integral)
        return 0;
    for (i = start + (size_t)neg; i < p->pos; i++) {
        unsigned d = (unsigned)(p->s[i] - '0');
        if (acc > (ULLONG_MAX - d) / 10)
            return 0; /* too large: stays a NUMBER */
        acc = acc * 10 + d;
    }
    if (neg ? acc > (unsigned long long)LLONG_MAX + 1 : acc > (unsigned long long)LLONG_MAX)
        return 0;
    p->j->toks[t].type = SA_JSON_INT;
    if (!neg)
        p->j->toks[t].i = (long long)acc;
    else if (acc == (unsigned long long)LLONG_MAX + 1)
        p->j->toks[t].i = LLONG_MIN;
    else
        p->j->toks[t].i = -(long long)acc;
    return 0;
}

static int literal(parser *p, const char *word, int type)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return fail(p, "invalid literal");
    if (push(p, type) == (size_t)-1)
        return oom(p);
    p->pos += n;
    return 0;
}

static int value(parser *p);

/* An object or array at p->pos; close is '}' or ']'. */
static int container(parser *p, int type, char close)
{
    size_t t = push(p, type);
    if (t == (size_t)-1)
        return oom(p);
    if (++p->depth > SA_JSON_MAX_DEPTH)
        return fail(p, "nested too deeply");
    p->pos++;
    ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        p->depth--;
        return 0;
    }
    for (;;) {
        if (type == SA_JSON_OBJECT) {
            ws(p);
            if (p->pos >= p->len || p->s[p->pos] != '"')
                return fail(p, "expected a member name");
            if (string(p) != 0)
                return -1;
            ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':')
                return fail(p, "expected ':'");
            p->pos++;
        }
        if (value(p) != 0)
            return -1;
        p->j->toks[t].n++;
        ws(p);
        if (p->pos >= p->len)
            return fail(p, "unexpected end");
        if (p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->s[p->pos] == close) {
            p->pos++;
            p->depth--;
            return 0;
        }
        return fail(p, type == SA_JSON_OBJECT ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int value(parser *p)
{
    ws(p);
    if (p->pos >= p->len)
        return fail(p, "unexpected end");
    switch (p->s[p->pos]) {
    case '{':
        return container(p, SA_JSON_OBJECT, '}');
    case '[':
        return container(p, SA_JSON_ARRAY, ']');
    case '"':
        return string(p);
    case 't':
        return literal(p, "true", SA_JSON_TRUE);
    case 'f':
        return literal(p, "false", SA_JSON_FALSE);
    case 'n':
        return literal(p, "null", SA_JSON_NULL);
    default:
        if (p->s[p->pos] == '-' || (p->s[p->pos] >= '0' && p->s[p->pos] <= '9'))
            return number(p);
        return fail(p, "unexpected character");
    }
}

int sa_json_parse(sa_json *j, const char *s, size_t len, sa_err *err)
{
    parser p;
    j->ntoks = 0;
    sa_buf_clear(&j->strings); /* only appended to */
    if (!s)
        return sa_err_set(err, SA_EARG, 0, "sa_json_parse: NULL input");
    p.s = s;
    p.len = len;
    p.pos = 0;
    p.j = j;
    p.err = err;
    p.depth = 0;
    /* Reserve so a token-sized body needs one allocation for its strings. */
    if (sa_buf_reserve(&j->strings, len < 4096 ? len : 4096) != 0)
        return oom(&p);
    if (value(&p) != 0)
        return -1;
    ws(&p);
    if (p.pos != len)
        return fail(&p, "trailing characters");
    return 0;
}

void sa_json_free(sa_json *j)
{
    if (!j)
        return;
    free(j->toks);
    j->toks = NULL;
    j->ntoks = j->cap = 0;
    sa_buf_free(&j->strings);
}
