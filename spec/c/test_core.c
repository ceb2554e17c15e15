/* C core tests: encoders, decoders and PKCE without Lua. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "crypto.h"
#include "form.h"
#include "http.h"

/* The decoder before the table-driven one: bit by bit, obviously right.
 * Returns the decoded length or -1, and the offset of a bad character. */
static long ref_decode(const char *in, size_t n, int url, unsigned char *out, long *bad)
{
    const char *al = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                         : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i, pad = 0;
    unsigned acc = 0;
    int bits = 0;
    long len = 0;
    *bad = -1;
    if (!url) {
        while (pad < 2 && n > 0 && in[n - 1] == '=') {
            n--;
            pad++;
        }
        if (pad && (n + pad) % 4 != 0)
            return -1;
    }
    if (n % 4 == 1)
        return -1;
    for (i = 0; i < n; i++) {
        const char *p = in[i] ? memchr(al, in[i], 64) : NULL;
        if (!p) {
            *bad = (long)i;
            return -1;
        }
        acc = (acc << 6 | (unsigned)(p - al)) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[len++] = (unsigned char)(acc >> bits & 0xff);
        }
    }
    if (bits && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return len;
}

/* Random strings over an alphabet with every kind of character: the
 * decoder must agree with the reference on result, bytes and the offset
 * it names. */
static void test_b64_reference(void)
{
    static const char chars[] = "ABZabz09+/-_= .\xff\x80\n";
    unsigned seed = 12345;
    char in[64], msg[64];
    unsigned char ref[64];
    int round, url, disagree = 0;
    for (round = 0; round < 20000; round++) {
        size_t n, i;
        for (url = 0; url <= 1; url++) {
            sa_buf b = SA_BUF_INIT;
            sa_err e;
            long bad, rl;
            int rc;
            seed = seed * 1103515245u + 12345u;
            n = (seed >> 16) % 13;
            for (i = 0; i < n; i++) {
                seed = seed * 1103515245u + 12345u;
                /* mostly valid characters, so that longer inputs get through */
                in[i] = (seed >> 16) % 4 ? "AZaz09"[(seed >> 20) % 6]
                                         : chars[(seed >> 20) % (sizeof chars - 1)];
            }
            rl = ref_decode(in, n, url, ref, &bad);
            rc = sa_b64_decode(&b, in, n, url, &e);
            snprintf(msg, sizeof msg, "character at offset %ld", bad);
            if ((rc == 0) != (rl >= 0) ||
                (rc == 0 && (b.len != (size_t)rl || memcmp(b.data, ref, b.len) != 0)) ||
                (rc != 0 && bad >= 0 && !strstr(e.msg, msg))) {
                if (!disagree++)
                    fprintf(stderr, "b64 decoder and reference disagree on \"%.*s\" (url %d)\n",
                            (int)n, in, url);
            }
            sa_buf_free(&b);
        }
    }
    CHECK(disagree == 0);
}

static void test_b64url(void)
{
    sa_buf b = SA_BUF_INIT;
    sa_err e;
    /* RFC 4648 §10 vectors, unpadded */
    static const char *in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    static const char *url[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" };
    static const char *std[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
    size_t i;
    for (i = 0; i < sizeof in / sizeof in[0]; i++) {
        sa_buf_reset(&b);
        CHECK(sa_b64_encode(&b, (const unsigned char *)in[i], strlen(in[i]), 1) == 0);
        CHECK(b.len == strlen(url[i]) && memcmp(b.data, url[i], b.len) == 0);
        CHECK(sa_b64url_len(strlen(in[i])) == strlen(url[i]));
        sa_buf_reset(&b);
        CHECK(sa_b64_encode(&b, (const unsigned char *)in[i], strlen(in[i]), 0) == 0);
        CHECK(b.len == strlen(std[i]) && memcmp(b.data, std[i], b.len) == 0);
        sa_buf_reset(&b);
        CHECK(sa_b64_decode(&b, url[i], strlen(url[i]), 1, &e) == 0);
        CHECK(b.len == strlen(in[i]) && memcmp(b.data ? b.data : "", in[i], b.len) == 0);
        sa_buf_reset(&b);
        CHECK(sa_b64_decode(&b, std[i], strlen(std[i]), 0, &e) == 0);
        CHECK(b.len == strlen(in[i]));
    }
    /* url alphabet: bytes 0xfb 0xff -> "-_8" */
    sa_buf_reset(&b);
    CHECK(sa_b64_encode(&b, (const unsigned char *)"\xfb\xff", 2, 1) == 0);
    CHECK_MEM(b.data, b.len, "-_8");
    /* hostile input */
    sa_buf_reset(&b);
    CHECK(sa_b64_decode(&b, "Zm9v+", 5, 1, &e) == -1 && e.kind == SA_EVALIDATION);
    CHECK(sa_b64_decode(&b, "Zm9=", 4, 1, &e) == -1);     /* padding in url form */
    CHECK(sa_b64_decode(&b, "Z", 1, 1, &e) == -1);        /* impossible length */
    CHECK(sa_b64_decode(&b, "Zh", 2, 1, &e) == -1);       /* non-zero trailing bits */
    CHECK(sa_b64_decode(&b, "Zm 9v", 5, 1, &e) == -1);    /* whitespace */
    CHECK(sa_b64_decode(&b, "Zm\0v", 4, 1, &e) == -1);    /* embedded NUL */
    CHECK(sa_b64_decode(&b, "Zg=", 3, 0, &e) == -1);      /* wrong padding */
    CHECK(sa_b64_decode(&b, "Zg===", 5, 0, &e) == -1);
    CHECK(sa_b64_decode(&b, "-_8", 3, 0, &e) == -1);      /* url chars in std */
    sa_buf_free(&b);
}

static void test_pkce(void)
{
    sa_buf b = SA_BUF_INIT;
    sa_err e;
    const char *v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"; /* RFC 7636 App. B */
    CHECK(sa_pkce_challenge(&b, v, strlen(v), &e) == 0);
    CHECK_MEM(b.data, b.len, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    sa_buf_reset(&b);
    CHECK(sa_pkce_challenge(&b, "short", 5, &e) == -1 && e.kind == SA_EARG);
    CHECK(sa_pkce_challenge(&b, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjX+", 43, &e) == -1);
    sa_buf_reset(&b);
    CHECK(sa_pkce_verifier(&b, &e) == 0 && b.len == 43);
    {
        sa_buf c = SA_BUF_INIT, d = SA_BUF_INIT;
        CHECK(sa_pkce_verifier(&d, &e) == 0);
        CHECK(!sa_ct_equal(b.data, b.len, d.data, d.len)); /* fresh each time */
        CHECK(sa_pkce_challenge(&c, b.data, b.len, &e) == 0 && c.len == 43);
        sa_buf_free(&c);
        sa_buf_free(&d);
    }
    sa_buf_free(&b);
}

static void test_ct_equal(void)
{
    CHECK(sa_ct_equal("abc", 3, "abc", 3));
    CHECK(!sa_ct_equal("abc", 3, "abd", 3));
    CHECK(!sa_ct_equal("abc", 3, "abcd", 4));
    CHECK(sa_ct_equal("", 0, "", 0));
}

static void test_sha2(void)
{
    unsigned char md[64];
    sa_buf b = SA_BUF_INIT;
    /* FIPS 180-2 "abc" */
    CHECK(sa_sha2(256, "abc", 3, md) == 32);
    CHECK(sa_b64_encode(&b, md, 32, 1) == 0);
    CHECK_MEM(b.data, b.len, "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    CHECK(sa_sha2(384, "abc", 3, md) == 48);
    CHECK(md[0] == 0xcb && md[1] == 0x00 && md[46] == 0x25 && md[47] == 0xa7);
    CHECK(sa_sha2(512, "abc", 3, md) == 64);
    CHECK(md[0] == 0xdd && md[1] == 0xaf && md[62] == 0xa4 && md[63] == 0x9f);
    /* 1,000,000 x 'a' (FIPS 180-2): more than one block, through Update */
    {
        char *m = malloc(1000000);
        CHECK(m != NULL);
        if (m) {
            memset(m, 'a', 1000000);
            CHECK(sa_sha2(256, m, 1000000, md) == 32);
            CHECK(md[0] == 0xcd && md[1] == 0xc7 && md[30] == 0x2c && md[31] == 0xd0);
            free(m);
        }
    }
    CHECK(sa_sha2(128, "abc", 3, md) == -1);
    /* RFC 4231 test case 2 */
    CHECK(sa_hmac_sha2(256, "Jefe", 4, "what do ya want for nothing?", 28, md) == 32);
    CHECK(md[0] == 0x5b && md[1] == 0xdc && md[31] == 0x43);
    sa_buf_free(&b);
}

struct pairs {
    int n;
    char names[8][32];
    char values[8][32];
};

static int collect(void *ud, const char *name, size_t nlen, const char *value, size_t vlen)
{
    struct pairs *p = ud;
    if (p->n >= 8 || nlen >= 32 || vlen >= 32)
        return 1;
    memcpy(p->names[p->n], name, nlen);
    p->names[p->n][nlen] = '\0';
    memcpy(p->values[p->n], value, vlen);
    p->values[p->n][vlen] = '\0';
    p->n++;
    return 0;
}

static void test_form(void)
{
    sa_buf b = SA_BUF_INIT;
    sa_err e;
    struct pairs p;
    CHECK(sa_vchars("!~azAZ09-._|", 12) == 1);
    CHECK(sa_vchars("", 0) == 1);
    CHECK(sa_vchars("a b", 3) == 0);
    CHECK(sa_vchars("ab\x7f", 3) == 0);
    CHECK(sa_vchars("ab\x80", 3) == 0);
    CHECK(sa_vchars("a\0b", 3) == 0);
    CHECK(sa_vchars("\x20", 1) == 0 && sa_vchars("\x21", 1) == 1 && sa_vchars("\x7e", 1) == 1);
    CHECK(sa_form_escape(&b, "a b+c/~._-\xc3\xbc%:", 14) == 0);
    CHECK_MEM(b.data, b.len, "a%20b%2Bc%2F~._-%C3%BC%25%3A");
    sa_buf_reset(&b);
    CHECK(sa_form_add(&b, "grant_type", 10, "password", 8) == 0);
    CHECK(sa_form_add(&b, "password", 8, "p&w=d", 5) == 0);
    CHECK_MEM(b.data, b.len, "grant_type=password&password=p%26w%3Dd");

    memset(&p, 0, sizeof p);
    CHECK(sa_form_parse("a=1&&b=x+y%21&c&=v", 18, collect, &p, &e) == 0);
    CHECK(p.n == 4);
    CHECK(strcmp(p.names[1], "b") == 0 && strcmp(p.values[1], "x y!") == 0);
    CHECK(strcmp(p.names[2], "c") == 0 && p.values[2][0] == '\0');
    CHECK(p.names[3][0] == '\0' && strcmp(p.values[3], "v") == 0);
    memset(&p, 0, sizeof p);
    CHECK(sa_form_parse("a=%2", 4, collect, &p, &e) == -1 && e.kind == SA_EVALIDATION);
    CHECK(sa_form_parse("a=%", 3, collect, &p, &e) == -1);
    CHECK(sa_form_parse("a=%zz", 5, collect, &p, &e) == -1);
    CHECK(sa_form_parse("%41=%00", 7, collect, &p, &e) == 0);
    /* length-bounded: bytes past n are never read */
    memset(&p, 0, sizeof p);
    CHECK(sa_form_parse("k=v&x=%41", 3, collect, &p, &e) == 0 && p.n == 1);

    /* RFC 6749 §2.3.1: each part form-encoded, then base64 */
    sa_buf_reset(&b);
    CHECK(sa_form_basic_auth(&b, "id:1", 4, "s e%+", 5) == 0);
    CHECK_MEM(b.data, b.len, "Basic aWQlM0ExOnMlMjBlJTI1JTJC");
    sa_buf_free(&b);
}

/* The adaptive spin of blocking waits: on for short waits, off by itself
 * after slow ones, never with spin 0. */
static void test_spin(void)
{
    sa_err e;
    sa_http *h = sa_http_new(&e);
    int i;
    CHECK(h != NULL);
    if (!h)
        return;
    CHECK(sa_http_spin(h) == SA_HTTP_DEFAULT_SPIN);
    CHECK(sa_http_spin_budget(h) > 0 && sa_http_spin_budget(h) <= SA_HTTP_DEFAULT_SPIN);
    for (i = 0; i < 20; i++)
        sa_http_note_wait(h, 30e-6);
    CHECK(sa_http_spin_budget(h) > 55e-6 && sa_http_spin_budget(h) < 65e-6);
    sa_http_note_wait(h, 0.02); /* one slow answer is enough */
    CHECK(sa_http_spin_budget(h) == 0);
    for (i = 0; i < 10; i++)
        sa_http_note_wait(h, 0.02);
    CHECK(sa_http_spin_budget(h) == 0);
    for (i = 0; i < 40; i++)
        sa_http_note_wait(h, 10e-6); /* fast again: back on */
    CHECK(sa_http_spin_budget(h) > 0 && sa_http_spin_budget(h) < 25e-6);
    sa_http_note_wait(h, 1e9); /* capped */
    for (i = 0; i < 60; i++)
        sa_http_note_wait(h, 10e-6);
    CHECK(sa_http_spin_budget(h) > 0);
    sa_http_set_spin(h, 0);
    CHECK(sa_http_spin(h) == 0 && sa_http_spin_budget(h) == 0);
    sa_http_set_spin(h, -1);
    CHECK(sa_http_spin(h) == 0);
    sa_http_free(h);
}

int main(void)
{
    test_b64url();
    test_b64_reference();
    test_pkce();
    test_ct_equal();
    test_sha2();
    test_form();
    test_spin();
    return CHECK_DONE("test_core");
}
