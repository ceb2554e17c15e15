/* JWE on OpenSSL 3 (EVP only): the compact split, key management, content
 * encryption. See jwe.h for the contract. */
#include "jwe.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "crypto.h"
#include "jwe_impl.h"
#include "key_impl.h"
#include "ossl.h"

#define NAME_MAX_LEN 256

const char *const sa_jwe_part_name[5] = { "header", "encrypted key", "iv", "ciphertext", "tag" };

/* ------------------------------------------------------------ the tables */


static const alg_info algs[] = {
    { "RSA-OAEP", 0, KM_RSA, 1 },
    { "RSA-OAEP-256", 0, KM_RSA, 256 },
    { "ECDH-ES", 0, KM_ECDH, 0 },
    { "ECDH-ES+A128KW", 16, KM_ECDH_KW, 0 },
    { "ECDH-ES+A256KW", 32, KM_ECDH_KW, 0 },
    { "A128KW", 16, KM_KW, 0 },
    { "A256KW", 32, KM_KW, 0 },
    { "dir", 0, KM_DIR, 0 },
};


static const enc_info encs[] = {
    { "A128GCM", 16, 12, 16, 1, 0 },
    { "A256GCM", 32, 12, 16, 1, 0 },
    { "A128CBC-HS256", 32, 16, 16, 0, 256 },
    { "A256CBC-HS512", 64, 16, 32, 0, 512 },
};

static const alg_info *find_alg(const char *name)
{
    size_t i;
    if (!name)
        return NULL;
    for (i = 0; i < sizeof algs / sizeof algs[0]; i++)
        if (strcmp(algs[i].name, name) == 0)
            return &algs[i];
    return NULL;
}

static const enc_info *find_enc(const char *name)
{
    size_t i;
    if (!name)
        return NULL;
    for (i = 0; i < sizeof encs / sizeof encs[0]; i++)
        if (strcmp(encs[i].name, name) == 0)
            return &encs[i];
    return NULL;
}

int sa_jwe_alg_known(const char *alg) { return find_alg(alg) != NULL; }
int sa_jwe_enc_known(const char *enc) { return find_enc(enc) != NULL; }

const char *sa_jwe_alg_at(size_t i)
{
    return i < sizeof algs / sizeof algs[0] ? algs[i].name : NULL;
}

const char *sa_jwe_enc_at(size_t i)
{
    return i < sizeof encs / sizeof encs[0] ? encs[i].name : NULL;
}

static int refuse_name(sa_err *err, const char *what, const char *name)
{
    char safe[SA_OSSL_NAME_MAX];
    sa_ossl_safe_name(safe, sizeof safe, name ? name : "(none)");
    return sa_err_set(err, SA_EVALIDATION, 0, "JWE %s '%s' is not supported", what, safe);
}

static int is_x25519(const sa_key *k)
{
    return k->type == SA_KEY_OKP && k->curve && strcmp(k->curve, "X25519") == 0;
}

static int alg_ok(const sa_key *k, const alg_info *a, sa_err *err)
{
    if (!k)
        return sa_err_set(err, SA_EARG, 0, "no key");
    switch (a->kind) {
    case KM_RSA:
        if (k->type != SA_KEY_RSA || k->bits < 2048)
            return sa_err_set(err, SA_EVALIDATION, 0, "%s needs an RSA key of at least 2048 bits",
                              a->name);
        return 0;
    case KM_ECDH:
    case KM_ECDH_KW:
        if (k->type != SA_KEY_EC && !is_x25519(k))
            return sa_err_set(err, SA_EVALIDATION, 0, "%s needs an EC key (P-256, P-384, P-521) "
                              "or an X25519 key", a->name);
        return 0;
    case KM_KW:
        if (k->type != SA_KEY_OCT || k->secretlen != a->kwlen)
            return sa_err_set(err, SA_EVALIDATION, 0, "%s needs a symmetric key of %u bytes",
                              a->name, (unsigned)a->kwlen);
        return 0;
    default: /* KM_DIR */
        if (k->type != SA_KEY_OCT)
            return sa_err_set(err, SA_EVALIDATION, 0, "dir needs a symmetric key");
        return 0;
    }
}

int sa_jwe_alg_ok(const sa_key *k, const char *alg, sa_err *err)
{
    const alg_info *a = find_alg(alg);
    if (!a)
        return refuse_name(err, "alg", alg);
    return alg_ok(k, a, err);
}

/* ------------------------------------------------------------ the split */

static int b64url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

int sa_jwe_split(const char *s, size_t n, sa_jwe_parts *out, sa_err *err)
{
    static const size_t caps[5] = { SA_JWE_MAX_HEADER, SA_JWE_MAX_EKEY, SA_JWE_MAX_IV,
                                    SA_JWE_MAX_TOKEN, SA_JWE_MAX_TAG };
    size_t i, part = 0, start = 0;
    if (!s || !out)
        return sa_err_set(err, SA_EARG, 0, "no input");
    if (n > SA_JWE_MAX_TOKEN)
        return sa_err_set(err, SA_EVALIDATION, 0, "JWE is longer than %u bytes",
                          (unsigned)SA_JWE_MAX_TOKEN);
    for (i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (part >= 5)
                return sa_err_set(err, SA_EVALIDATION, 0, "JWE has more than five parts");
            out->seg[part] = s + start;
            out->len[part] = i - start;
            part++;
            start = i + 1;
        } else if (part >= 5) { /* a sixth part, whatever it holds */
            return sa_err_set(err, SA_EVALIDATION, 0, "JWE has more than five parts");
        } else if (!b64url_char((unsigned char)s[i])) {
            return sa_err_set(err, SA_EVALIDATION, 0, "JWE %s is not base64url",
                              sa_jwe_part_name[part]);
        }
    }
    if (part != 5)
        return sa_err_set(err, SA_EVALIDATION, 0, "JWE must have five parts, has %u",
                          (unsigned)part);
    for (i = 0; i < 5; i++) {
        if (out->len[i] > caps[i])
            return sa_err_set(err, SA_EVALIDATION, 0, "JWE %s is too long", sa_jwe_part_name[i]);
        if (i != 1 && out->len[i] == 0)
            return sa_err_set(err, SA_EVALIDATION, 0, "JWE %s is empty", sa_jwe_part_name[i]);
    }
    return 0;
}

/* ------------------------------------------------------------ decrypt */

static int decode_part(const sa_jwe_parts *p, int i, sa_buf *b, sa_err *err)
{
    sa_err e;
    if (sa_b64_decode(b, p->seg[i], p->len[i], 1, &e) != 0)
        return sa_err_set(err, e.kind == SA_ENOMEM ? SA_ENOMEM : SA_EVALIDATION, 0,
                          "JWE %s: %s", sa_jwe_part_name[i], e.msg);
    return 0;
}

/* The key the ECDH-ES family agrees on: the CEK (ECDH-ES) or the KEK. */
static int ecdh_key(const sa_key *mine, const sa_key *theirs, const alg_info *a,
                    const enc_info *e, const sa_jwe_header *h, unsigned char *out,
                    size_t *outlen, sa_err *err)
{
    unsigned char z[133];
    size_t zlen = 0, keylen = a->kind == KM_ECDH ? e->keylen : a->kwlen;
    int rc;
    if (!theirs || theirs->type != mine->type || !mine->curve || !theirs->curve ||
        strcmp(mine->curve, theirs->curve) != 0)
        return sa_err_set(err, SA_EVALIDATION, 0, "JWE epk is not a key on the recipient's curve");
    if (sa_jwe_ecdh(mine->pkey, theirs->pkey, z, sizeof z, &zlen, err) != 0)
        return -1;
    rc = sa_jwe_concat_kdf(z, zlen, a->kind == KM_ECDH ? e->name : a->name, h->apu, h->apulen,
                           h->apv, h->apvlen, out, keylen, err);
    OPENSSL_cleanse(z, sizeof z);
    *outlen = keylen;
    return rc;
}

int sa_jwe_decrypt(const sa_key *k, const sa_jwe_header *h, const sa_jwe_parts *p,
                   sa_buf *out, sa_err *err)
{
    const alg_info *a;
    const enc_info *e;
    sa_buf ek = SA_BUF_INIT, iv = SA_BUF_INIT, ct = SA_BUF_INIT, tag = SA_BUF_INIT;
    unsigned char cek[CEK_MAX], kek[CEK_MAX];
    unsigned char *big = NULL;
    size_t ceklen = 0, keklen = 0, biglen = 0;
    int rc = -1, r, unwrapped = 0;

    if (!h || !p || !out)
        return sa_err_set(err, SA_EARG, 0, "bad arguments");
    if (!(a = find_alg(h->alg)))
        return refuse_name(err, "alg", h->alg);
    if (!(e = find_enc(h->enc)))
        return refuse_name(err, "enc", h->enc);
    if (alg_ok(k, a, err) != 0)
        return -1;
    if ((a->kind == KM_RSA || a->kind == KM_ECDH_KW || a->kind == KM_ECDH) && !k->priv)
        return sa_err_set(err, SA_EVALIDATION, 0, "JWE %s needs a private key", a->name);
    if (a->kind == KM_DIR && k->secretlen != e->keylen)
        return sa_err_set(err, SA_EVALIDATION, 0, "dir with %s needs a key of %u bytes", e->name,
                          (unsigned)e->keylen);
    if ((a->kind == KM_DIR || a->kind == KM_ECDH) != (p->len[1] == 0))
        return sa_err_set(err, SA_EVALIDATION, 0, p->len[1] ? "JWE %s takes no encrypted key"
                                                            : "JWE %s needs an encrypted key",
                          a->name);
    if ((a->kind == KM_ECDH || a->kind == KM_ECDH_KW) && !h->epk)
        return sa_err_set(err, SA_EVALIDATION, 0, "JWE %s needs an epk", a->name);
    if (decode_part(p, 1, &ek, err) || decode_part(p, 2, &iv, err) ||
        decode_part(p, 3, &ct, err) || decode_part(p, 4, &tag, err))
        goto done;
    if (iv.len != e->ivlen || tag.len != e->taglen) {
        sa_err_set(err, SA_EVALIDATION, 0, "JWE %s has the wrong length for %s",
                   iv.len != e->ivlen ? "iv" : "tag", e->name);
        goto done;
    }
    if ((a->kind == KM_KW || a->kind == KM_ECDH_KW) && ek.len != e->keylen + 8) {
        sa_err_set(err, SA_EVALIDATION, 0, "JWE encrypted key has the wrong length");
        goto done;
    }
    if (a->kind == KM_RSA && ek.len != (size_t)(k->bits + 7) / 8) {
        sa_err_set(err, SA_EVALIDATION, 0, "JWE encrypted key has the wrong length");
        goto done;
    }

    switch (a->kind) {
    case KM_DIR:
        memcpy(cek, k->secret, e->keylen);
        unwrapped = 1;
        break;
    case KM_ECDH:
        if (ecdh_key(k, h->epk, a, e, h, cek, &ceklen, err) != 0)
            goto done;
        unwrapped = 1;
        break;
    case KM_ECDH_KW:
    case KM_KW:
        if (a->kind == KM_ECDH_KW) {
            if (ecdh_key(k, h->epk, a, e, h, kek, &keklen, err) != 0)
                goto done;
        } else {
            memcpy(kek, k->secret, a->kwlen);
            keklen = a->kwlen;
        }
        unwrapped = sa_jwe_aes_kw(0, kek, keklen, (const unsigned char *)ek.data, ek.len, cek,
                           &ceklen) == 0 && ceklen == e->keylen;
        break;
    default: /* KM_RSA */
        biglen = ek.len;
        if (!(big = OPENSSL_secure_malloc(biglen))) {
            sa_ossl_nomem(err);
            goto done;
        }
        unwrapped = sa_jwe_rsa_oaep(0, k->pkey, a->oaep_bits, (const unsigned char *)ek.data, ek.len,
                             big, biglen, &ceklen) == 0 && ceklen == e->keylen;
        if (unwrapped)
            memcpy(cek, big, ceklen);
        break;
    }
    /* RFC 7516 11.5: a key that does not unwrap goes on as a random one and
     * fails at the tag, like a tampered token: one path, one message */
    if (!unwrapped && sa_random_bytes(cek, e->keylen, err) != 0)
        goto done;
    r = sa_jwe_content_decrypt(e, cek, p->seg[0], p->len[0], (const unsigned char *)iv.data,
                        (const unsigned char *)ct.data, ct.len, (const unsigned char *)tag.data,
                        out);
    if (r == -2) {
        sa_err_set(err, SA_ENOMEM, 0, "out of memory");
        goto done;
    }
    if (r != 0 || !unwrapped) {
        sa_err_set(err, SA_EVALIDATION, 0, SA_JWE_FAILED);
        goto done;
    }
    rc = 0;
done:
    OPENSSL_cleanse(cek, sizeof cek);
    OPENSSL_cleanse(kek, sizeof kek);
    if (big)
        OPENSSL_secure_clear_free(big, biglen);
    sa_buf_free(&ek);
    sa_buf_free(&iv);
    sa_buf_free(&ct);
    sa_buf_free(&tag);
    return rc;
}

/* ------------------------------------------------------------ encrypt */

static int name_ok(const char *s)
{
    size_t i;
    for (i = 0; s[i]; i++)
        if (i >= NAME_MAX_LEN || s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
            return 0;
    return 1;
}

/* A fresh key on k's curve; its public point as x and y (coord bytes each). */
static EVP_PKEY *ephemeral(const sa_key *k, unsigned char *x, unsigned char *y, sa_err *err)
{
    const sa_ec_curve *cv;
    unsigned char pt[1 + 2 * 66];
    size_t len = 0;
    EVP_PKEY *eph;
    (void)y;
    if (is_x25519(k)) { /* RFC 8037: the epk is x alone */
        if (!(eph = EVP_PKEY_Q_keygen(NULL, NULL, "X25519"))) {
            sa_ossl_fail(err, "ECDH-ES key generation");
            return NULL;
        }
        len = k->coord;
        if (EVP_PKEY_get_raw_public_key(eph, x, &len) != 1 || len != k->coord) {
            EVP_PKEY_free(eph);
            sa_ossl_fail(err, "ECDH-ES public key");
            return NULL;
        }
        return eph;
    }
    if (!(cv = sa_curve_by_jwk(k->curve))) { /* key.c's curve table */
        sa_err_set(err, SA_EVALIDATION, 0, "ECDH-ES: unsupported curve");
        return NULL;
    }
    if (!(eph = EVP_PKEY_Q_keygen(NULL, NULL, "EC", cv->ossl))) {
        sa_ossl_fail(err, "ECDH-ES key generation");
        return NULL;
    }
    if (EVP_PKEY_get_octet_string_param(eph, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &len) != 1 ||
        len != 1 + 2 * k->coord || pt[0] != 4) {
        EVP_PKEY_free(eph);
        sa_ossl_fail(err, "ECDH-ES public key");
        return NULL;
    }
    memcpy(x, pt + 1, k->coord);
    memcpy(y, pt + 1 + k->coord, k->coord);
    return eph;
}

static int append_b64(sa_buf *b, const unsigned char *p, size_t n)
{
    return sa_b64_encode(b, p, n, 1);
}

int sa_jwe_encrypt(const sa_key *k, const char *alg, const char *enc, const char *kid,
                   const char *cty, const unsigned char *pt, size_t n, sa_buf *out,
                   sa_err *err)
{
    const alg_info *a = find_alg(alg);
    const enc_info *e = find_enc(enc);
    sa_buf hdr = SA_BUF_INIT;
    unsigned char cek[CEK_MAX], kek[CEK_MAX], iv[16], tag[32], x[66], y[66];
    unsigned char *ek = NULL, *ct = NULL;
    size_t eklen = 0, ekcap = 0, ctlen = 0, keklen = 0, hstart = 0, start = out ? out->len : 0;
    EVP_PKEY *eph = NULL;
    sa_key ephk;
    sa_jwe_header h;
    int rc = -1, ok = 1;

    if (!a)
        return refuse_name(err, "alg", alg);
    if (!e)
        return refuse_name(err, "enc", enc);
    if (!out || (!pt && n))
        return sa_err_set(err, SA_EARG, 0, "bad arguments");
    if (alg_ok(k, a, err) != 0)
        return -1;
    if (a->kind == KM_DIR && k->secretlen != e->keylen)
        return sa_err_set(err, SA_EVALIDATION, 0, "dir with %s needs a key of %u bytes", e->name,
                          (unsigned)e->keylen);
    if ((kid && !name_ok(kid)) || (cty && !name_ok(cty)))
        return sa_err_set(err, SA_EARG, 0, "JWE kid or cty: printable ASCII without quotes");
    if (n > SA_JWE_MAX_TOKEN)
        return sa_err_set(err, SA_EARG, 0, "plaintext too long");
    if (n == 0) /* GCM would make an empty ciphertext, which the split refuses */
        return sa_err_set(err, SA_EARG, 0, "empty plaintext");

    /* the CEK, and the key management's part of the header */
    if (a->kind == KM_DIR)
        memcpy(cek, k->secret, e->keylen);
    else if (a->kind != KM_ECDH && sa_random_bytes(cek, e->keylen, err) != 0)
        goto done;
    memset(&h, 0, sizeof h);
    if (a->kind == KM_ECDH || a->kind == KM_ECDH_KW) {
        if (!(eph = ephemeral(k, x, y, err)))
            goto done;
        /* the agreement from our side: our ephemeral private key, their key */
        memset(&ephk, 0, sizeof ephk);
        ephk.type = k->type;
        ephk.curve = k->curve;
        ephk.coord = k->coord;
        ephk.pkey = eph;
        if (a->kind == KM_ECDH) {
            if (ecdh_key(&ephk, k, a, e, &h, cek, &keklen, err) != 0)
                goto done;
        } else if (ecdh_key(&ephk, k, a, e, &h, kek, &keklen, err) != 0) {
            goto done;
        }
    }
    if (a->kind == KM_KW) {
        memcpy(kek, k->secret, a->kwlen);
        keklen = a->kwlen;
    }
    if (a->kind == KM_KW || a->kind == KM_ECDH_KW || a->kind == KM_RSA) {
        ekcap = a->kind == KM_RSA ? (size_t)(k->bits + 7) / 8 : e->keylen + 8;
        if (!(ek = malloc(ekcap))) {
            sa_ossl_nomem(err);
            goto done;
        }
        if (a->kind == KM_RSA)
            ok = sa_jwe_rsa_oaep(1, k->pkey, a->oaep_bits, cek, e->keylen, ek, ekcap, &eklen) == 0;
        else
            ok = sa_jwe_aes_kw(1, kek, keklen, cek, e->keylen, ek, &eklen) == 0;
        if (!ok) {
            sa_err_set(err, SA_EVALIDATION, 0, "JWE %s: key encryption failed", a->name);
            goto done;
        }
    }

    /* the protected header */
    ok = sa_buf_append_str(&hdr, "{\"alg\":\"") == 0 && sa_buf_append_str(&hdr, a->name) == 0 &&
         sa_buf_append_str(&hdr, "\",\"enc\":\"") == 0 && sa_buf_append_str(&hdr, e->name) == 0 &&
         sa_buf_append_char(&hdr, '"') == 0;
    if (ok && kid)
        ok = sa_buf_append_str(&hdr, ",\"kid\":\"") == 0 && sa_buf_append_str(&hdr, kid) == 0 &&
             sa_buf_append_char(&hdr, '"') == 0;
    if (ok && cty)
        ok = sa_buf_append_str(&hdr, ",\"cty\":\"") == 0 && sa_buf_append_str(&hdr, cty) == 0 &&
             sa_buf_append_char(&hdr, '"') == 0;
    if (ok && eph)
        ok = sa_buf_append_str(&hdr, is_x25519(k) ? ",\"epk\":{\"kty\":\"OKP\",\"crv\":\""
                                                  : ",\"epk\":{\"kty\":\"EC\",\"crv\":\"") == 0 &&
             sa_buf_append_str(&hdr, k->curve) == 0 &&
             sa_buf_append_str(&hdr, "\",\"x\":\"") == 0 && append_b64(&hdr, x, k->coord) == 0 &&
             (is_x25519(k) || (sa_buf_append_str(&hdr, "\",\"y\":\"") == 0 &&
                               append_b64(&hdr, y, k->coord) == 0)) &&
             sa_buf_append_str(&hdr, "\"}") == 0;
    ok = ok && sa_buf_append_char(&hdr, '}') == 0;
    hstart = out->len;
    ok = ok && append_b64(out, (const unsigned char *)hdr.data, hdr.len) == 0;
    if (!ok) {
        sa_ossl_nomem(err);
        goto done;
    }

    /* content */
    if (sa_random_bytes(iv, e->ivlen, err) != 0)
        goto done;
    if (!(ct = malloc(n + 32))) {
        sa_ossl_nomem(err);
        goto done;
    }
    if (sa_jwe_content_encrypt(e, cek, out->data + hstart, out->len - hstart, iv, pt, n, ct, &ctlen,
                        tag) != 0) {
        sa_err_set(err, SA_EVALIDATION, 0, "JWE content encryption failed");
        goto done;
    }
    ok = sa_buf_append_char(out, '.') == 0 && (!eklen || append_b64(out, ek, eklen) == 0) &&
         sa_buf_append_char(out, '.') == 0 && append_b64(out, iv, e->ivlen) == 0 &&
         sa_buf_append_char(out, '.') == 0 && append_b64(out, ct, ctlen) == 0 &&
         sa_buf_append_char(out, '.') == 0 && append_b64(out, tag, e->taglen) == 0;
    if (!ok) {
        sa_ossl_nomem(err);
        goto done;
    }
    rc = 0;
done:
    if (rc != 0 && out && out->data) { /* only what this call appended */
        OPENSSL_cleanse(out->data + start, out->len - start);
        out->len = start;
        out->data[start] = '\0';
    }
    OPENSSL_cleanse(cek, sizeof cek);
    OPENSSL_cleanse(kek, sizeof kek);
    free(ek);
    if (ct) {
        OPENSSL_cleanse(ct, n + 32);
        free(ct);
    }
    sa_buf_free(&hdr);
    EVP_PKEY_free(eph);
    return rc;
}
