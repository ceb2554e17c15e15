/* libFuzzer harness: JWE decryption (sa_jwe_split, sa_jwe_decrypt) with good
 * keys of every kind, fuzzed alg and enc names, epk points, apu/apv and
 * compact tokens; each input's token is also encrypted to the key and
 * decrypted again, so the success path is covered without seeds.
 *
 * Input (see fuzz_input.h for fields):
 *   byte   key   0 RSA-2048, 1 P-256, 2 oct 16 bytes, 3 oct 32, 4 oct 64, 5 X25519
 *   byte   alg   modulo 9: index into the alg list, or (8) a field
 *   byte   enc   modulo 5: index into the enc list, or (4) a field
 *   field  epk x, field epk y (a P-256 point, or with the X25519 key an X25519
 *          x alone; NULL when not a key)
 *   field  apu, field apv
 *   rest   the compact JWE
 * The keys are the fixed test keys of fuzz_jws.c; mkseeds_jwe.lua writes
 * seeds encrypted to them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "crypto.h"
#include "jwe.h"

static const char pem_rsa[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDXkSd8uwertPdo\n"
    "BGEeoa0+nHspgOjaRLwsjzC21mnpr0aQncb1BaisiCi26JsS48XWY2RVk9r1RC2B\n"
    "ubZO4OScJ/cONeQ5hKaagU3nrYhvh8crKYu1UmJFvO0M8AK1sJFtgSxomhhrY5VB\n"
    "AeqxxkgHpP6DH/5d5O4WJ2p+PkgrnRIhWJ+j65CcXYYWG1iPcM1BME1V5FMsghOz\n"
    "VxsbHF1SWgxosjlLpoZH3WuicA8iD+UAt0wekegVPK9yWsN02l9bVxGIz3mBzcAw\n"
    "U1cE/gubNvEfpW+ik7j2qG0lAVg5SYUs1ZBShwX5TKl0zDInuWomeZWkhYPuN2i+\n"
    "eeC0/fexAgMBAAECggEARqBoL5WXjcpcxNeqej6+ZCUgtRhnMhwTCwZfD4hwav/i\n"
    "Pr9y0BRqjxyNOmA7bpTx3Kvz05X9xx3vSvFtqapFPGRbrWw6uh2b+EMlIyLX8LKr\n"
    "rpiODXpQeEjN4c9BFAYln5sS0bKrDYQzAnl+S4CLWPXV7WAuFtVKrDd9zJ7bRm41\n"
    "5DJQrROLxELj/JkqYjL8UKrxWE2mVeUOgwU/I7WJPV7j/96kTFmDQ1Dfe3EzyRYC\n"
    "abQ3HqA70ubXjid65m5ZD54wrqUX46qUsUHJnR6bJOY8hESUycqxUwTZQk3zX7Z2\n"
    "6NUfS71ZkkG5P8oMyxHpEG1Gp318yABgqCPoizwxgQKBgQDxil+88MyNiCWwY0e1\n"
    "SW21XsNj3XaoDNkLVAWpyJkAWwTCB9mzGLT02USeuqvzUNTlh5vlK1P33God+FaY\n"
    "bqLCjFjkszNWqo7tHx8hKOWmpdUd29J/OKq4ve5AAzBr4ff9FW25Ottjcf9YT6cj\n"
    "1wTua2Ol3JmUoCfnB8UNdQA6CwKBgQDkeLv5mSCfmZNNHtSy+JhJDphhnE2jEcos\n"
    "I5C/zwYR9nkjGLT+Py2pgW7Mwi2bsdQ7YAnXp83WbpXIKkpCgz7eEqBRTqx2q7kA\n"
    "hIlZvFTES/iCQec+EoxZhksB716XGWUZ1yqzOCPAGdyhoLfKiM3OHH0NrGcdZ0ZX\n"
    "pRocUj9mswKBgE05OVy1/CAv7CTVyQJb5Jh9IKkYECywVuA5T8o1mT003HOQgPiy\n"
    "qIAzyq2Y7wrOyBJOZfhB/wmazc6hLEZ18NGUf4M3C+3kf+et8Izwf2PlVxrBwi3s\n"
    "lyCTkM2kd2G2kEu5AyiaebP0qXe5l61svGXhra1Et1F+VuOVZ1njE1x7AoGAYwxk\n"
    "keTs28Q8s+Z119EmVCXbshWNIvEHcPNKQZ2CyC7OfYSskrzZEu9mFabpFuKVW9ha\n"
    "6/93oUr37HtJDmTP0H7KufUdl6UC41KSKTEYnrFA31eq5KIt7nHl+sTHgUIlLnq1\n"
    "rFTeSt3rZLbEdy2v63c2T8M6QOkQ+dY956FQkzkCgYBfSlBPdqryePM7dk+dGW+r\n"
    "sx+SFYIQ8lG0UG0jc1CJyfN8YKorPeYJFztTPXU/SBKf9Rebuj1ZzWBGq4aa3PwH\n"
    "GVtVFJBurVKoXlGUCK0LG3gjVWhJc7V+u6KII/iFn5JSZRAqGmfL/8Us+8hhO8A3\n"
    "Gcg6hgNjeEPNmZcny1uurw==\n"
    "-----END PRIVATE KEY-----\n"
    ;
static const char pem_p256[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQguul6Id21MH8QsfG5\n"
    "Yx5Dy/TiRw9g56nyPHpB2yxqsnuhRANCAARiE20pi168hxKIb0+M+A+GIwh/utEh\n"
    "01yytxmuUVKBdEkZ8PoyN0uXNVl9sZ+C70C/LllIAgg7XuUgBtZ1Po9X\n"
    "-----END PRIVATE KEY-----\n"
    ;
static const char *const algs[] = { "RSA-OAEP", "RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A128KW",
                                    "ECDH-ES+A256KW", "A128KW", "A256KW", "dir" };
static const char *const encs[] = { "A128GCM", "A256GCM", "A128CBC-HS256", "A256CBC-HS512" };
#define NALGS (sizeof algs / sizeof algs[0])
#define NENCS (sizeof encs / sizeof encs[0])
#define NKEYS 6
#define X25519_KEY 5

static sa_key *keys[NKEYS];

static void load_keys(void)
{
    static const unsigned char secret[] = "fuzz-jwe-secret-of-64-bytes-0123456789abcdef0123456789abcdefABCD";
    static const size_t lens[3] = { 16, 32, 64 };
    sa_err e;
    size_t i;
    if (!(keys[0] = sa_key_pem(pem_rsa, strlen(pem_rsa), &e)) ||
        !(keys[1] = sa_key_pem(pem_p256, strlen(pem_p256), &e)))
        abort();
    for (i = 0; i < 3; i++)
        if (!(keys[2 + i] = sa_key_oct(secret, lens[i], &e)))
            abort();
    if (!(keys[X25519_KEY] = sa_key_x25519(NULL, 0, secret, 32, &e)))
        abort();
}

/* A base64url "x" or "y" member of the header's epk, decoded; 0 if absent. */
static size_t epk_member(const char *json, size_t n, char name, unsigned char *out, size_t cap)
{
    char pat[6] = { '"', name, '"', ':', '"', 0 };
    const char *p;
    size_t len = 0;
    sa_buf b = SA_BUF_INIT;
    sa_err e;
    for (p = json; p + 5 <= json + n; p++)
        if (memcmp(p, pat, 5) == 0)
            break;
    if (p + 5 > json + n)
        return 0;
    p += 5;
    while (p + len < json + n && p[len] != '"')
        len++;
    if (sa_b64_decode(&b, p, len, 1, &e) != 0 || b.len > cap) {
        sa_buf_free(&b);
        return 0;
    }
    memcpy(out, b.data, b.len);
    len = b.len;
    sa_buf_free(&b);
    return len;
}

/* Encrypt pt to k, decrypt it again: the same bytes, or abort. */
static void roundtrip(sa_key *k, const char *alg, const char *enc, const uint8_t *pt, size_t n)
{
    sa_buf tok = SA_BUF_INIT, hdr = SA_BUF_INIT, out = SA_BUF_INIT;
    sa_jwe_parts p;
    sa_jwe_header h;
    sa_key *epk = NULL;
    unsigned char x[66], y[66];
    size_t xl, yl;
    sa_err e;
    if (sa_jwe_encrypt(k, alg, enc, "kid", "JWT", pt, n, &tok, &e) != 0) {
        /* only a key that cannot do this alg/enc (dir: the CEK size), or
         * an empty plaintext */
        if (n && sa_jwe_alg_ok(k, alg, &e) == 0 && strcmp(alg, "dir") != 0)
            abort();
        return;
    }
    if (sa_jwe_split(tok.data, tok.len, &p, &e) != 0)
        abort();
    memset(&h, 0, sizeof h);
    h.alg = alg;
    h.enc = enc;
    if (strncmp(alg, "ECDH", 4) == 0) {
        if (sa_b64_decode(&hdr, p.seg[0], p.len[0], 1, &e) != 0)
            abort();
        xl = epk_member(hdr.data, hdr.len, 'x', x, sizeof x);
        yl = epk_member(hdr.data, hdr.len, 'y', y, sizeof y);
        epk = k == keys[X25519_KEY] ? sa_key_x25519(x, xl, NULL, 0, &e)
                                    : sa_key_ec("P-256", x, xl, y, yl, &e);
        if (!epk)
            abort();
        h.epk = epk;
    }
    if (sa_jwe_decrypt(k, &h, &p, &out, &e) != 0 || out.len != n || (n && memcmp(out.data, pt, n) != 0))
        abort();
    sa_key_free(epk);
    sa_buf_free(&tok);
    sa_buf_free(&hdr);
    sa_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    char aname[48], ename[48];
    const char *alg, *enc;
    const uint8_t *x, *y, *apu, *apv, *tok;
    size_t xl, yl, apul, apvl, n;
    sa_key *k, *epk;
    sa_jwe_parts p;
    sa_jwe_header h;
    sa_buf out = SA_BUF_INIT;
    sa_err e;
    int a, c, rc;

    if (!keys[0])
        load_keys();
    k = keys[fz_byte(&in) % NKEYS];
    a = fz_byte(&in) % (int)(NALGS + 1);
    c = fz_byte(&in) % (int)(NENCS + 1);
    if ((size_t)a < NALGS) {
        alg = algs[a];
    } else {
        fz_name(&in, aname, sizeof aname);
        alg = aname;
    }
    if ((size_t)c < NENCS) {
        enc = encs[c];
    } else {
        fz_name(&in, ename, sizeof ename);
        enc = ename;
    }
    x = fz_field(&in, &xl);
    y = fz_field(&in, &yl);
    apu = fz_field(&in, &apul);
    apv = fz_field(&in, &apvl);
    tok = fz_rest(&in, &n);
    epk = k == keys[X25519_KEY] ? sa_key_x25519(x, xl, NULL, 0, &e)
                                : sa_key_ec("P-256", x, xl, y, yl, &e);

    if (sa_jwe_split((const char *)tok, n, &p, &e) == 0) {
        memset(&h, 0, sizeof h);
        h.alg = alg;
        h.enc = enc;
        h.epk = epk;
        h.apu = apu;
        h.apulen = apul;
        h.apv = apv;
        h.apvlen = apvl;
        rc = sa_jwe_decrypt(k, &h, &p, &out, &e);
        if (rc != 0 && (rc != -1 || (e.kind != SA_EVALIDATION && e.kind != SA_ENOMEM) || out.len))
            abort();
        /* the plaintext is never longer than the ciphertext */
        if (rc == 0 && out.len > p.len[3])
            abort();
    } else if (e.kind != SA_EVALIDATION && !(n == 0 && e.kind == SA_EARG)) {
        abort();
    }
    sa_buf_free(&out);
    sa_key_free(epk);

    if (n <= 4096 && (size_t)a < NALGS && (size_t)c < NENCS)
        roundtrip(k, alg, enc, tok, n);
    return 0;
}
