/* libFuzzer harness: JWS signature verification (sa_jws_verify) with good
 * keys of every type, fuzzed alg names, signing inputs and signatures; the
 * at_hash/c_hash digest (sa_jws_hash_for_alg); the compact split
 * (sa_jws_split) of the signing input. Each input is also signed and
 * verified, so the success path is covered without seeds.
 *
 * Input (see fuzz_input.h for fields):
 *   byte   key   0 RSA-2048, 1 P-256, 2 P-384, 3 P-521, 4 Ed25519, 5 oct
 *   byte   alg   modulo 15: index into the alg list, or (14) a field
 *   field  the signing input
 *   rest   the signature
 * The keys are fixed test keys generated for this harness only. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "jws.h"

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
static const char pem_p384[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDBzsf0YQR0bIgrnXmCT\n"
    "b/YuuKZ6c38P7yIos+WkZNPXJQx0RekRfKaRLav5VBN6yUWhZANiAATh3qbgfPoC\n"
    "wppiz2Z+e4nKOX30+LhDS9+2Fd5lulv9UZClD77ORehEcpYHBc2Ap9DwDHRkIo4k\n"
    "0AvGXoA6p0XB7x8D6rCoLvzd++4GH1JYcYd1H3Fdu4rEHmee6hA9tck=\n"
    "-----END PRIVATE KEY-----\n"
    ;
static const char pem_p521[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIHuAgEAMBAGByqGSM49AgEGBSuBBAAjBIHWMIHTAgEBBEIAX/n/PKUbbu/IpG4H\n"
    "g4FBOzo9o3m5txaLqxKtpNV2NXMxNvnA95IeY4EBSRsmdokwz5+Iq5XIihD4u9jT\n"
    "sZREzimhgYkDgYYABAHSbMAGszosr8U5+qUr00AAGc48DX2fZhJejzUS8pxfZLGa\n"
    "mYtL512QoaXbSBCQKRZUqN9EVtBJ+OZ84/34/HsamAH3iPMzLw4etv2A9WhSZuvD\n"
    "xYZgwQAoHOTag0DLQG9iKbLhL6umUlYrApY+RfGmMdDVJEZ4KK8xV9LWGEqcQe4H\n"
    "1w==\n"
    "-----END PRIVATE KEY-----\n"
    ;
static const char pem_ed[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEID+nYxZvBU7Zeslzb/CjvTDuX+iGNTdufCZP0i7+AL7I\n"
    "-----END PRIVATE KEY-----\n"
    ;

static const char *const algs[] = { "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                    "ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384",
                                    "HS512", "none" };
#define NALGS (sizeof algs / sizeof algs[0])
#define NKEYS 6

static sa_key *keys[NKEYS];

static void load_keys(void)
{
    static const char *const pems[] = { pem_rsa, pem_p256, pem_p384, pem_p521, pem_ed };
    static const unsigned char secret[] = "fuzz-hmac-secret-of-32-bytes-...";
    sa_err e;
    size_t i;
    for (i = 0; i < 5; i++)
        if (!(keys[i] = sa_key_pem(pems[i], strlen(pems[i]), &e)) || !sa_key_has_private(keys[i]))
            abort();
    if (!(keys[5] = sa_key_oct(secret, sizeof secret - 1, &e)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    char name[48];
    const char *alg;
    sa_key *k;
    const uint8_t *input, *sig;
    size_t inlen, siglen, slen = 0;
    unsigned char *s = NULL;
    unsigned char md[64];
    sa_err e;
    int a, v, ok;

    if (!keys[0])
        load_keys();
    k = keys[fz_byte(&in) % NKEYS];
    a = fz_byte(&in) % (int)(NALGS + 1);
    if ((size_t)a < NALGS) {
        alg = algs[a];
    } else {
        fz_name(&in, name, sizeof name);
        alg = name;
    }
    input = fz_field(&in, &inlen);
    sig = fz_rest(&in, &siglen);

    ok = sa_jws_alg_ok(k, alg, &e) == 0;
    v = sa_jws_verify(k, alg, input, inlen, sig, siglen, &e);
    if (v < -1 || v > 1 || (ok && v == -1) || (!ok && v != -1))
        abort();
    if (v == 0 && strcmp(e.msg, "signature mismatch") != 0)
        abort();

    {
        /* the split's segments lie inside the input, cut at its dots */
        sa_jws_parts p;
        const char *c = (const char *)input;
        if (!c) {
            /* no bytes at all: nothing to split */
        } else if (sa_jws_split(c, inlen, &p, &e) == 0) {
            if (p.seg[0] != c || p.len[0] == 0 || p.len[1] == 0 ||
                p.seg[1] != c + p.len[0] + 1 || p.seg[2] != p.seg[1] + p.len[1] + 1 ||
                p.input_len != p.len[0] + 1 + p.len[1] || p.input_len + 1 + p.len[2] != inlen ||
                c[p.len[0]] != '.' || c[p.input_len] != '.')
                abort();
        } else if (e.kind != SA_EVALIDATION) {
            abort();
        }
    }

    v = sa_jws_hash_for_alg(alg, input, inlen, md, &e);
    if (v != -1 && v != 32 && v != 48 && v != 64)
        abort();

    if (ok) {
        if (sa_jws_sign(k, alg, input, inlen, &s, &slen, &e) != 0)
            abort();
        if (sa_jws_verify(k, alg, input, inlen, s, slen, &e) != 1)
            abort();
        /* The fuzzed signature verifies only if it is the real one (or, for
         * the randomised algs, another valid one: nothing to check then). */
        free(s);
    }
    return 0;
}
