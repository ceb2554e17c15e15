/* C core tests: the strict JSON parser (csrc/json.c) and its token list. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json.h"

/* One expected token: type, then n (counts, or byte length of a STRING or
 * NUMBER), the bytes of a STRING (decoded) or NUMBER (raw text), and the
 * value of an INT. */
typedef struct {
    int type;
    size_t n;
    const char *text;
    long long i;
} want;

#define W_OBJ(n) { SA_JSON_OBJECT, (n), NULL, 0 }
#define W_ARR(n) { SA_JSON_ARRAY, (n), NULL, 0 }
#define W_STR(s) { SA_JSON_STRING, sizeof(s) - 1, (s), 0 }
#define W_NUM(s) { SA_JSON_NUMBER, sizeof(s) - 1, (s), 0 }
#define W_INT(v) { SA_JSON_INT, 0, NULL, (v) }
#define W_TRUE { SA_JSON_TRUE, 0, NULL, 0 }
#define W_FALSE { SA_JSON_FALSE, 0, NULL, 0 }
#define W_NULL { SA_JSON_NULL, 0, NULL, 0 }
#define NWANT(w) (sizeof(w) / sizeof((w)[0]))

/* j (parsed from in[0..len)) holds exactly the tokens w, and its strings
 * are laid out back to back in document order: the first at offset 0, the
 * last ending at strings.len. Prints the first difference. */
static int layout_is(const sa_json *j, const char *in, size_t len, const want *w, size_t nw)
{
    size_t k, off = 0;
    if (j->ntoks != nw) {
        fprintf(stderr, "  %zu tokens, want %zu\n", j->ntoks, nw);
        return 0;
    }
    for (k = 0; k < nw; k++) {
        const sa_json_tok *t = &j->toks[k];
        int ok = t->type == w[k].type;
        if (ok) {
            switch (t->type) {
            case SA_JSON_OBJECT:
            case SA_JSON_ARRAY:
                ok = t->n == w[k].n;
                break;
            case SA_JSON_STRING:
                ok = t->off == off && t->n == w[k].n && t->off + t->n <= j->strings.len &&
                     memcmp(j->strings.data + t->off, w[k].text, t->n) == 0;
                off += t->n;
                break;
            case SA_JSON_NUMBER:
                ok = t->n == w[k].n && t->off + t->n <= len &&
                     memcmp(in + t->off, w[k].text, t->n) == 0;
                break;
            case SA_JSON_INT:
                ok = t->i == w[k].i;
                break;
            default:
                break;
            }
        }
        if (!ok) {
            fprintf(stderr, "  token %zu: type %d n %zu off %zu i %lld, want type %d n %zu\n", k,
                    t->type, t->n, t->off, t->i, w[k].type, w[k].n);
            return 0;
        }
    }
    if (off != j->strings.len) {
        fprintf(stderr, "  strings.len %zu, want %zu\n", j->strings.len, off);
        return 0;
    }
    return 1;
}

/* Parses s[0..len) into a fresh sa_json and compares it with w. */
static int parses_as_n(const char *s, size_t len, const want *w, size_t nw)
{
    sa_json j = SA_JSON_INIT;
    sa_err e;
    int ok = sa_json_parse(&j, s, len, &e) == 0;
    if (!ok)
        fprintf(stderr, "  \"%.*s\": %s\n", (int)len, s, e.msg);
    else
        ok = layout_is(&j, s, len, w, nw);
    sa_json_free(&j);
    return ok;
}

#define PARSES_AS(lit, w) parses_as_n((lit), sizeof(lit) - 1, (w), NWANT(w))

/* s[0..len) is refused as malformed: -1, SA_EVALIDATION, and a message
 * naming a byte offset within the input. */
static int rejects_n(const char *s, size_t len)
{
    sa_json j = SA_JSON_INIT;
    sa_err e;
    unsigned long at = 0;
    int ok;
    memset(&e, 0, sizeof e);
    ok = sa_json_parse(&j, s, len, &e) == -1 && e.kind == SA_EVALIDATION &&
         sscanf(e.msg, "invalid JSON at byte %lu:", &at) == 1 && at <= len;
    if (!ok)
        fprintf(stderr, "  \"%.*s\" (%zu bytes) not rejected properly: %s\n", (int)len, s, len,
                e.kind ? e.msg : "accepted");
    sa_json_free(&j);
    return ok;
}

static int rejects(const char *s)
{
    return rejects_n(s, strlen(s));
}

/* Every string in list is rejected (one CHECK for the lot). */
static int rejects_all(const char *const *list, size_t n)
{
    size_t k;
    int ok = 1;
    for (k = 0; k < n; k++)
        ok &= rejects(list[k]);
    return ok;
}

/* The message for s, rejected, is exactly msg. */
static int error_is(const char *s, size_t len, const char *msg)
{
    sa_json j = SA_JSON_INIT;
    sa_err e;
    int ok = sa_json_parse(&j, s, len, &e) == -1 && strcmp(e.msg, msg) == 0;
    if (!ok)
        fprintf(stderr, "  \"%.*s\": got \"%s\", want \"%s\"\n", (int)len, s, e.msg, msg);
    sa_json_free(&j);
    return ok;
}

static void test_values(void)
{
    static const char doc[] = "{\"a\":1,\"b\":[true,false,null],\"c\":\"x\",\"d\":1.5,\"e\":{},"
                              "\"f\":[]}";
    static const want w[] = { W_OBJ(6),     W_STR("a"), W_INT(1),   W_STR("b"), W_ARR(3),
                              W_TRUE,       W_FALSE,    W_NULL,     W_STR("c"), W_STR("x"),
                              W_STR("d"),   W_NUM("1.5"), W_STR("e"), W_OBJ(0), W_STR("f"),
                              W_ARR(0) };
    static const want nested[] = { W_ARR(3), W_ARR(0),   W_OBJ(1), W_STR("k"), W_ARR(2),
                                   W_INT(-7), W_STR(""), W_OBJ(0) };
    static const want t[] = { W_TRUE }, f[] = { W_FALSE }, nu[] = { W_NULL };
    static const want s[] = { W_STR("hi") }, i[] = { W_INT(42) }, n[] = { W_NUM("-2.5") };
    static const want es[] = { W_STR("") };
    /* duplicate names are all kept, in order: choosing one is the binding's job */
    static const want dup[] = { W_OBJ(2), W_STR("a"), W_INT(1), W_STR("a"), W_INT(2) };
    /* a token response, as a provider sends it */
    static const char tr[] = "{\"access_token\":\"SlAV32hkKG\",\"token_type\":\"Bearer\","
                             "\"expires_in\":3600,\"scope\":[\"openid\",\"email\"],"
                             "\"id_token\":null}";
    static const want trw[] = { W_OBJ(5),
                                W_STR("access_token"), W_STR("SlAV32hkKG"),
                                W_STR("token_type"), W_STR("Bearer"),
                                W_STR("expires_in"), W_INT(3600),
                                W_STR("scope"), W_ARR(2), W_STR("openid"), W_STR("email"),
                                W_STR("id_token"), W_NULL };

    CHECK(PARSES_AS(doc, w));
    CHECK(PARSES_AS("[[],{\"k\":[-7,\"\"]},{}]", nested));
    CHECK(PARSES_AS("true", t) && PARSES_AS("false", f) && PARSES_AS("null", nu));
    CHECK(PARSES_AS("\"hi\"", s) && PARSES_AS("42", i) && PARSES_AS("-2.5", n) &&
          PARSES_AS("\"\"", es));
    CHECK(PARSES_AS("{\"a\":1,\"a\":2}", dup));
    CHECK(PARSES_AS(tr, trw));
    /* NUMBER offsets point into the input, not at a copy */
    {
        sa_json j = SA_JSON_INIT;
        sa_err e;
        static const char in[] = "[1, 2.25, \"x\", -3e2]";
        CHECK(sa_json_parse(&j, in, sizeof in - 1, &e) == 0 && j.ntoks == 5 &&
              j.toks[2].type == SA_JSON_NUMBER && j.toks[2].off == 4 && j.toks[2].n == 4 &&
              j.toks[4].type == SA_JSON_NUMBER && j.toks[4].off == 15 && j.toks[4].n == 4);
        sa_json_free(&j);
    }
}

static void test_strings(void)
{
    static const want simple[] = { W_STR("\"\\/\b\f\n\r\t") };
    static const want nul[] = { W_STR("\0") }, nul3[] = { W_STR("a\0b") };
    static const want e9[] = { W_STR("\xc3\xa9") }, euro[] = { W_STR("\xe2\x82\xac") };
    static const want smile[] = { W_STR("\xf0\x9f\x98\x80") };
    static const want edges[] = { W_ARR(6),         W_STR("\x7f"),         W_STR("\xc2\x80"),
                                  W_STR("\xdf\xbf"), W_STR("\xe0\xa0\x80"), W_STR("\xef\xbf\xbf"),
                                  W_STR("\xf4\x8f\xbf\xbf") };
    static const want key[] = { W_OBJ(1), W_STR("\0k\xc3\xa9"), W_STR("v") };
    static const char *const bad[] = {
        "\"\\ud83d\"",         /* lone high surrogate */
        "\"\\ud83dx\"",
        "\"\\ud83d\\u0041\"",  /* high then not a low */
        "\"\\ud83d\\ud83d\"",
        "\"\\ud83d\\",
        "\"\\ud83d\\u",
        "\"\\ud83d\\ude0\"",
        "\"\\ude00\"",         /* lone low surrogate */
        "\"\\ude00\\ud83d\"",  /* the pair the wrong way round */
        "\"\\udfff\"",
        "\"\\x41\"",           /* escapes JSON does not have */
        "\"\\'\"",
        "\"\\U0041\"",
        "\"\\a\"",
        "\"\\0\"",
        "\"\\u12\"",
        "\"\\u12g4\"",
        "\"\\u-123\"",
        "\"\\",
        "\"abc",
        "\"",
        "'abc'",
        "{\"a\\q\":1}",
    };
    char buf[8], hi[256];
    int c, ok = 1;

    CHECK(PARSES_AS("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", simple));
    CHECK(PARSES_AS("\"\\u0000\"", nul) && PARSES_AS("\"a\\u0000b\"", nul3));
    CHECK(PARSES_AS("\"\\u00e9\"", e9) && PARSES_AS("\"\\u00E9\"", e9) &&
          PARSES_AS("\"\\u20ac\"", euro));
    CHECK(PARSES_AS("\"\\ud83d\\ude00\"", smile) && PARSES_AS("\"\\uD83D\\uDE00\"", smile));
    /* the edges of each UTF-8 length, and the largest code point */
    CHECK(PARSES_AS("[\"\\u007f\",\"\\u0080\",\"\\u07ff\",\"\\u0800\",\"\\uffff\","
                    "\"\\udbff\\udfff\"]",
                    edges));
    CHECK(PARSES_AS("{\"\\u0000k\\u00e9\":\"v\"}", key));
    CHECK(rejects_all(bad, sizeof bad / sizeof bad[0]));

    /* every raw control character is refused, in a value and in a name;
     * DEL (0x7f) is not a control character to JSON */
    for (c = 0; c < 0x20; c++) {
        char obj[16];
        buf[0] = '"';
        buf[1] = 'a';
        buf[2] = (char)c;
        buf[3] = '"';
        memcpy(obj, "{\"k\x01\":1}", 9);
        obj[3] = (char)c;
        ok &= rejects_n(buf, 4) && rejects_n(obj, 9);
    }
    CHECK(ok);
    {
        static const want del[] = { W_STR("\x7f") };
        CHECK(PARSES_AS("\"\x7f\"", del));
    }
    CHECK(error_is("\"a\x01\"", 4, "invalid JSON at byte 2: control character in string"));

    /* bytes 0x80..0xff pass through untouched, valid UTF-8 or not */
    hi[0] = '"';
    for (c = 0x80; c <= 0xff; c++)
        hi[c - 0x80 + 1] = (char)c;
    hi[129] = '"';
    {
        static const char mixed[] = "\"\\n\x80\xc0\xaf\xe2\x82\"";
        sa_json j = SA_JSON_INIT;
        sa_err e;
        ok = sa_json_parse(&j, hi, 130, &e) == 0 && j.ntoks == 1 &&
             j.toks[0].type == SA_JSON_STRING && j.toks[0].n == 128 &&
             memcmp(j.strings.data + j.toks[0].off, hi + 1, 128) == 0;
        /* and mixed with escapes: a lone continuation byte, an overlong
         * form, a truncated sequence */
        ok = ok && sa_json_parse(&j, mixed, sizeof mixed - 1, &e) == 0 &&
             j.toks[0].n == 6 && memcmp(j.strings.data, "\n\x80\xc0\xaf\xe2\x82", 6) == 0;
        CHECK(ok);
        sa_json_free(&j);
    }
}

static void test_numbers(void)
{
    static const want zero[] = { W_INT(0) }, m123[] = { W_INT(-123) }, big[] = { W_INT(LLONG_MAX) };
    static const want small[] = { W_INT(LLONG_MIN) };
    static const want over[] = { W_NUM("9223372036854775808") };
    static const want under[] = { W_NUM("-9223372036854775809") };
    static const want uover[] = { W_NUM("18446744073709551616") };
    static const want huge[] = { W_NUM("123456789012345678901234567890") };
    static const want f1[] = { W_NUM("1.5e-3") }, f2[] = { W_NUM("1E+2") }, f3[] = { W_NUM("0.0") };
    static const want f4[] = { W_NUM("1e5") }, f5[] = { W_NUM("-0.5") }, f6[] = { W_NUM("-0e0") };
    static const want f7[] = { W_NUM("1e400") };
    static const want arr[] = { W_ARR(4), W_INT(0), W_INT(-1), W_NUM("2.0"), W_INT(10) };
    static const char *const bad[] = {
        "01", "-01", "00", "-00", "1.", "-1.", ".5", "-.5", "+1", "1e", "1e+", "1E-", "-",
        "--1", "1.e3", "0x10", "1.5.2", "1e2.5", "Infinity", "-Infinity", "NaN", "inf", "1 2",
        "[1.]", "[01]", "[-]", "{\"a\":+1}", "[1e]", "- 1", "1_000",
    };

    CHECK(PARSES_AS("0", zero) && PARSES_AS("-0", zero) && PARSES_AS("-123", m123));
    CHECK(PARSES_AS("9223372036854775807", big) && PARSES_AS("-9223372036854775808", small));
    CHECK(PARSES_AS("9223372036854775808", over) && PARSES_AS("-9223372036854775809", under) &&
          PARSES_AS("18446744073709551616", uover) &&
          PARSES_AS("123456789012345678901234567890", huge));
    CHECK(PARSES_AS("1.5e-3", f1) && PARSES_AS("1E+2", f2) && PARSES_AS("0.0", f3) &&
          PARSES_AS("1e5", f4) && PARSES_AS("-0.5", f5) && PARSES_AS("-0e0", f6) &&
          PARSES_AS("1e400", f7));
    CHECK(PARSES_AS("[0,-1,2.0,10]", arr));
    CHECK(rejects_all(bad, sizeof bad / sizeof bad[0]));
}

static void test_literals_and_space(void)
{
    static const want arr[] = { W_ARR(2), W_INT(1), W_INT(2) };
    static const want obj[] = { W_OBJ(1), W_STR("a"), W_TRUE };
    static const char *const bad_lit[] = {
        "tru", "t", "nul", "nulll", "fals", "falsey", "True", "NULL", "[tru]", "{\"a\":nul}",
        "truefalse", "nil", "undefined", "[true false]",
    };
    /* only space, tab, CR and LF are whitespace */
    static const char *const bad_ws[] = {
        "\f1", "1\f", "[1,\f2]", "\v1", "{\"a\"\f:1}", "\xc2\xa0\x31", "1\xc2\xa0", "[1\x1c]",
    };
    static const char *const trailing[] = {
        "1 2", "{}x", "[]]", "{}{}", "\"a\"\"b\"", "null,", "true false", "[] //", "{} ,",
        "0 0", "{}}",
    };
    static const char *const empty[] = { "", " ", "\n", " \t\r\n " };
    static const char *const syntax[] = {
        "[", "]", "{", "}", "[1,]", "[,1]", "[1 2]", "{,}", "{\"a\":1,}", "{\"a\"}",
        "{\"a\":}", "{\"a\" 1}", "{a:1}", "{1:1}", "{\"a\":1 \"b\":2}", "[1:2]", "{\"a\",1}",
        ",", ":", "[]{}", "{\"a\"::1}", "[[]", "[}", "{]",
    };
    sa_json j = SA_JSON_INIT;
    sa_err e;

    CHECK(PARSES_AS(" \t\r\n[ 1 ,\t2 ]\r\n ", arr));
    CHECK(PARSES_AS("{ \"a\" :\ttrue\n}", obj));
    CHECK(rejects_all(bad_lit, sizeof bad_lit / sizeof bad_lit[0]));
    CHECK(rejects_all(bad_ws, sizeof bad_ws / sizeof bad_ws[0]));
    CHECK(rejects_all(trailing, sizeof trailing / sizeof trailing[0]));
    /* a NUL after the value is a trailing byte too (lua-cjson stops there) */
    CHECK(rejects_n("{}\0", 3) && rejects_n("1\0" "2", 3) && rejects_n("\0", 1) &&
          rejects_n("[1\0]", 4));
    CHECK(rejects_all(empty, sizeof empty / sizeof empty[0]));
    CHECK(rejects_all(syntax, sizeof syntax / sizeof syntax[0]));
    /* messages name the offending byte */
    CHECK(error_is("[1,]", 4, "invalid JSON at byte 3: unexpected character") &&
          error_is("{\"a\" 1}", 7, "invalid JSON at byte 5: expected ':'") &&
          error_is("1 2", 3, "invalid JSON at byte 2: trailing characters") &&
          error_is("", 0, "invalid JSON at byte 0: unexpected end") &&
          error_is("[1 2]", 5, "invalid JSON at byte 3: expected ',' or ']'"));
    /* a NULL pointer is the caller's mistake, not bad input */
    CHECK(sa_json_parse(&j, NULL, 0, &e) == -1 && e.kind == SA_EARG);
    sa_json_free(&j);
}

/* n arrays (or objects {"a":...}) nested, innermost empty */
static char *nest(size_t n, int objects, size_t *len)
{
    size_t k, pos = 0, per = objects ? 5 : 1;
    char *s = malloc(n * (per + 1) + 1);
    if (!s)
        return NULL;
    for (k = 0; k < n; k++) {
        if (objects && k + 1 < n) {
            memcpy(s + pos, "{\"a\":", 5);
            pos += 5;
        } else {
            s[pos++] = objects ? '{' : '[';
        }
    }
    for (k = 0; k < n; k++)
        s[pos++] = objects ? '}' : ']';
    s[pos] = '\0';
    *len = pos;
    return s;
}

/* inner inside levels arrays */
static size_t wrap(char *buf, size_t levels, const char *inner)
{
    size_t k, pos = 0, n = strlen(inner);
    for (k = 0; k < levels; k++)
        buf[pos++] = '[';
    memcpy(buf + pos, inner, n);
    pos += n;
    for (k = 0; k < levels; k++)
        buf[pos++] = ']';
    buf[pos] = '\0';
    return pos;
}

static void test_depth(void)
{
    sa_json j = SA_JSON_INIT;
    sa_err e;
    size_t len, k;
    char *s;
    int ok;

    s = nest(SA_JSON_MAX_DEPTH, 0, &len);
    ok = s && sa_json_parse(&j, s, len, &e) == 0 && j.ntoks == SA_JSON_MAX_DEPTH;
    for (k = 0; ok && k < j.ntoks; k++)
        ok = j.toks[k].type == SA_JSON_ARRAY && j.toks[k].n == (k + 1 < j.ntoks ? 1u : 0u);
    CHECK(ok);
    free(s);

    s = nest(SA_JSON_MAX_DEPTH + 1, 0, &len);
    CHECK(s && sa_json_parse(&j, s, len, &e) == -1 && e.kind == SA_EVALIDATION &&
          strstr(e.msg, "nested too deeply") && strstr(e.msg, "at byte 64:"));
    free(s);

    s = nest(SA_JSON_MAX_DEPTH, 1, &len);
    CHECK(s && sa_json_parse(&j, s, len, &e) == 0 &&
          j.ntoks == 2 * SA_JSON_MAX_DEPTH - 1);
    free(s);
    s = nest(SA_JSON_MAX_DEPTH + 1, 1, &len);
    CHECK(s && sa_json_parse(&j, s, len, &e) == -1 && strstr(e.msg, "nested too deeply"));
    free(s);

    /* depth counts containers, not values: 63 levels, then a flat array
     * as level 64 is fine; one more container inside it is not */
    {
        char buf[SA_JSON_MAX_DEPTH * 2 + 16];
        len = wrap(buf, SA_JSON_MAX_DEPTH - 1, "[1,2,3,4]");
        ok = sa_json_parse(&j, buf, len, &e) == 0 && j.ntoks == SA_JSON_MAX_DEPTH + 4 &&
             j.toks[SA_JSON_MAX_DEPTH - 1].n == 4;
        len = wrap(buf, SA_JSON_MAX_DEPTH - 1, "[1,2,3,[]]");
        ok = ok && sa_json_parse(&j, buf, len, &e) == -1 && strstr(e.msg, "nested too deeply");
        CHECK(ok);
    }

    /* 100000 '[' is refused early, without recursing that deep */
    s = malloc(100000);
    if (s) {
        memset(s, '[', 100000);
        CHECK(sa_json_parse(&j, s, 100000, &e) == -1 && strstr(e.msg, "nested too deeply"));
        memset(s, '{', 100000);
        CHECK(sa_json_parse(&j, s, 100000, &e) == -1 && e.kind == SA_EVALIDATION);
    }
    free(s);
    sa_json_free(&j);
}

/* Every proper prefix of a document fails cleanly; the whole succeeds. */
static int prefixes_fail(const char *doc)
{
    sa_json j = SA_JSON_INIT;
    sa_err e;
    size_t len = strlen(doc), k;
    int ok = 1;
    for (k = 0; k < len; k++) {
        /* on the heap at its exact size, so that reading past the end shows */
        char *p = malloc(k ? k : 1);
        if (!p)
            return 0;
        memcpy(p, doc, k);
        if (!rejects_n(p, k)) {
            fprintf(stderr, "  prefix of %zu bytes accepted\n", k);
            ok = 0;
        }
        /* and through a reused parser */
        if (sa_json_parse(&j, p, k, &e) != -1)
            ok = 0;
        free(p);
    }
    ok = ok && sa_json_parse(&j, doc, len, &e) == 0;
    sa_json_free(&j);
    return ok;
}

static void test_truncated(void)
{
    static const char tr[] =
        "{\"access_token\":\"eyJhbGciOiJSUzI1NiJ9.e30.sig\",\"token_type\":\"Bearer\","
        "\"expires_in\":3600,\"refresh_token\":\"8xLOxBtZp8\",\"scope\":\"openid email\","
        "\"ratio\":-1.25e+2,\"ok\":true,\"no\":false,\"nothing\":null}";
    static const char idt[] =
        "{\"iss\":\"https://op.example\",\"sub\":\"\\u00e9\\ud83d\\ude00\\\"\\\\\\n\","
        "\"aud\":[\"a\",\"b\"],\"exp\":1700000000,\"nested\":{\"x\":[[],{},[0.5]]}}";
    static const char *const docs[] = {
        tr,
        idt,
        "[1,-2,3.5e1,\"s\",[true,[false,[null]]],{\"k\":{}}]",
        "\"\\ud83d\\ude00 text \\u0000 more\"",
    };
    size_t k;
    int ok = 1;
    for (k = 0; k < sizeof docs / sizeof docs[0]; k++)
        ok &= prefixes_fail(docs[k]);
    CHECK(ok);
}

static void test_large(void)
{
    sa_json j = SA_JSON_INIT;
    sa_err e;
    sa_buf b = SA_BUF_INIT;
    size_t k;
    int ok = 1;
    char num[32];

    ok &= sa_buf_append_char(&b, '[') == 0;
    for (k = 0; k < 100000; k++) {
        snprintf(num, sizeof num, k ? ",%zu" : "%zu", k);
        ok &= sa_buf_append_str(&b, num) == 0;
    }
    ok &= sa_buf_append_char(&b, ']') == 0;
    ok = ok && sa_json_parse(&j, b.data, b.len, &e) == 0 && j.ntoks == 100001 &&
         j.toks[0].type == SA_JSON_ARRAY && j.toks[0].n == 100000;
    for (k = 1; ok && k < j.ntoks; k++)
        ok = j.toks[k].type == SA_JSON_INT && j.toks[k].i == (long long)(k - 1);
    CHECK(ok);

    /* a 1 MiB string, escapes spread through it */
    sa_buf_reset(&b);
    ok = sa_buf_append_char(&b, '"') == 0;
    for (k = 0; ok && k < 1024 * 1024; k++) {
        if (k % 4096 == 0)
            ok = sa_buf_append_str(&b, "\\n") == 0;
        else
            ok = sa_buf_append_char(&b, (char)('a' + k % 26)) == 0;
    }
    ok = ok && sa_buf_append_char(&b, '"') == 0;
    ok = ok && sa_json_parse(&j, b.data, b.len, &e) == 0 && j.ntoks == 1 &&
         j.toks[0].n == 1024 * 1024 && j.strings.data[0] == '\n' && j.strings.data[1] == 'b' &&
         j.strings.data[4096] == '\n';
    CHECK(ok);
    sa_buf_free(&b);
    sa_json_free(&j);
}

static void test_reuse(void)
{
    static const char a[] = "{\"name\":\"Ada\",\"n\":[1,2]}";
    static const want wa[] = { W_OBJ(2), W_STR("name"), W_STR("Ada"), W_STR("n"), W_ARR(2),
                               W_INT(1), W_INT(2) };
    static const char b[] = "[\"x\",2.5]";
    static const want wb[] = { W_ARR(2), W_STR("x"), W_NUM("2.5") };
    sa_json j = SA_JSON_INIT, z;
    sa_err e;
    int ok;

    ok = sa_json_parse(&j, a, sizeof a - 1, &e) == 0 && layout_is(&j, a, sizeof a - 1, wa, NWANT(wa));
    ok = ok && sa_json_parse(&j, b, sizeof b - 1, &e) == 0 &&
         layout_is(&j, b, sizeof b - 1, wb, NWANT(wb));
    /* a failure half way leaves it usable */
    ok = ok && sa_json_parse(&j, "[\"partial\",1,", 13, &e) == -1;
    ok = ok && sa_json_parse(&j, a, sizeof a - 1, &e) == 0 &&
         layout_is(&j, a, sizeof a - 1, wa, NWANT(wa));
    ok = ok && sa_json_parse(&j, "7", 1, &e) == 0 && j.ntoks == 1 && j.strings.len == 0;
    CHECK(ok);
    sa_json_free(&j);
    CHECK(j.toks == NULL && j.ntoks == 0 && j.cap == 0 && j.strings.data == NULL);
    /* freeing twice, a zeroed struct, and NULL are all fine */
    sa_json_free(&j);
    memset(&z, 0, sizeof z);
    sa_json_free(&z);
    sa_json_free(NULL);
    /* and a freed one can parse again */
    CHECK(sa_json_parse(&j, b, sizeof b - 1, &e) == 0 &&
          layout_is(&j, b, sizeof b - 1, wb, NWANT(wb)));
    sa_json_free(&j);
}

int main(void)
{
    test_values();
    test_strings();
    test_numbers();
    test_literals_and_space();
    test_depth();
    test_truncated();
    test_large();
    test_reuse();
    return CHECK_DONE("test_json");
}
