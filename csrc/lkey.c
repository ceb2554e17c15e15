/* Binding: smartauth.key, keys from JWK members and PEM (key.c), and JWS
 * with them (jws.c): sign, verify, alg checks, the compact split, the
 * at_hash digest and the alg table; JWE with them (jwe.c): decrypt,
 * encrypt, the compact split. */
#include <string.h>

#include <openssl/crypto.h>

#include "buf.h"
#include "crypto.h"
#include "jwe.h"
#include "jws.h"
#include "key.h"
#include "lutil.h"

#define KEY_MT "smartauth.key"

typedef struct {
    sa_key *k;
} lkey;

/* The userdata is created empty (safe to collect) before the key exists. */
static lkey *new_lkey(lua_State *L)
{
    lkey *lk = lua_newuserdatauv(L, sizeof *lk, 0);
    lk->k = NULL;
    luaL_setmetatable(L, KEY_MT);
    return lk;
}

static sa_key *check_key(lua_State *L, int i)
{
    lkey *lk = luaL_checkudata(L, i, KEY_MT);
    if (!lk->k)
        luaL_error(L, "attempt to use a closed key");
    return lk->k;
}

/* The userdata at the top on success, else nil, kind, msg, code. */
static int key_result(lua_State *L, lkey *lk, sa_key *k, const sa_err *e)
{
    if (!k)
        return lu_push_err(L, e);
    lk->k = k;
    return 1;
}

/* A name argument (alg, crv) as a C string; NULL + e filled when it holds a
 * NUL byte, which would otherwise cut "RS256\0..." to "RS256". */
static const char *check_name(lua_State *L, int i, const char *what, sa_err *e)
{
    return lu_check_cstr(L, i, what, SA_EVALIDATION, e);
}

static const unsigned char *check_bytes(lua_State *L, int i, size_t *len)
{
    return (const unsigned char *)luaL_checklstring(L, i, len);
}

static const unsigned char *opt_bytes(lua_State *L, int i, size_t *len)
{
    if (lua_isnoneornil(L, i)) {
        *len = 0;
        return NULL;
    }
    return check_bytes(L, i, len);
}

/* core.key_rsa(n, e) */
static int l_key_rsa(lua_State *L)
{
    size_t nlen, elen;
    const unsigned char *n = check_bytes(L, 1, &nlen), *ex = check_bytes(L, 2, &elen);
    sa_err e;
    lkey *lk = new_lkey(L);
    return key_result(L, lk, sa_key_rsa(n, nlen, ex, elen, &e), &e);
}

/* core.key_ec(crv, x, y) */
static int l_key_ec(lua_State *L)
{
    size_t xlen, ylen;
    sa_err e;
    const char *crv = check_name(L, 1, "crv", &e);
    const unsigned char *x = check_bytes(L, 2, &xlen), *y = check_bytes(L, 3, &ylen);
    lkey *lk;
    if (!crv)
        return lu_push_err(L, &e);
    lk = new_lkey(L);
    return key_result(L, lk, sa_key_ec(crv, x, xlen, y, ylen, &e), &e);
}

/* core.key_okp(crv, x) */
static int l_key_okp(lua_State *L)
{
    size_t xlen;
    sa_err e;
    const char *crv = check_name(L, 1, "crv", &e);
    const unsigned char *x = check_bytes(L, 2, &xlen);
    lkey *lk;
    if (!crv)
        return lu_push_err(L, &e);
    lk = new_lkey(L);
    return key_result(L, lk, sa_key_okp(crv, x, xlen, &e), &e);
}

/* core.key_oct(k): the secret is copied into C memory (wiped on close). */
static int l_key_oct(lua_State *L)
{
    size_t klen;
    const unsigned char *k = check_bytes(L, 1, &klen);
    sa_err e;
    lkey *lk = new_lkey(L);
    return key_result(L, lk, sa_key_oct(k, klen, &e), &e);
}

/* core.key_pem(pem) */
static int l_key_pem(lua_State *L)
{
    size_t len;
    const char *pem = luaL_checklstring(L, 1, &len);
    sa_err e;
    lkey *lk = new_lkey(L);
    return key_result(L, lk, sa_key_pem(pem, len, &e), &e);
}

/* core.key_x25519(x|nil, d|nil), core.key_x25519_pem(pem): X25519 keys
 * for ECDH-ES (key_x25519.c) */
static int l_key_x25519(lua_State *L)
{
    size_t xlen, dlen;
    const unsigned char *x = opt_bytes(L, 1, &xlen), *d = opt_bytes(L, 2, &dlen);
    sa_err e;
    lkey *lk = new_lkey(L);
    return key_result(L, lk, sa_key_x25519(x, xlen, d, dlen, &e), &e);
}

static int l_key_x25519_pem(lua_State *L)
{
    size_t len;
    const char *pem = luaL_checklstring(L, 1, &len);
    sa_err e;
    lkey *lk = new_lkey(L);
    return key_result(L, lk, sa_key_x25519_pem(pem, len, &e), &e);
}

/* core.key_rsa_private{ n=, e=, d= [, p=, q=, dp=, dq=, qi=] } */
static int l_key_rsa_private(lua_State *L)
{
    static const char *const fields[8] = { "n", "e", "d", "p", "q", "dp", "dq", "qi" };
    const unsigned char *v[8];
    size_t len[8];
    sa_jwk_rsa_priv c;
    sa_err e;
    lkey *lk;
    int i;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    for (i = 0; i < 8; i++) { /* values stay on the stack while used */
        int t = lua_getfield(L, 1, fields[i]);
        if (t == LUA_TNIL) {
            v[i] = NULL;
            len[i] = 0;
        } else if (t == LUA_TSTRING) {
            v[i] = (const unsigned char *)lua_tolstring(L, -1, &len[i]);
        } else {
            return luaL_error(L, "bad field '%s' (string expected, got %s)", fields[i],
                              luaL_typename(L, -1));
        }
    }
    c.n = v[0], c.nlen = len[0];
    c.e = v[1], c.elen = len[1];
    c.d = v[2], c.dlen = len[2];
    c.p = v[3], c.plen = len[3];
    c.q = v[4], c.qlen = len[4];
    c.dp = v[5], c.dplen = len[5];
    c.dq = v[6], c.dqlen = len[6];
    c.qi = v[7], c.qilen = len[7];
    lk = new_lkey(L);
    return key_result(L, lk, sa_key_rsa_private(&c, &e), &e);
}

/* core.key_ec_private(crv, x, y, d) */
static int l_key_ec_private(lua_State *L)
{
    size_t xlen, ylen, dlen;
    sa_err e;
    const char *crv = check_name(L, 1, "crv", &e);
    const unsigned char *x = check_bytes(L, 2, &xlen), *y = check_bytes(L, 3, &ylen);
    const unsigned char *d = check_bytes(L, 4, &dlen);
    lkey *lk;
    if (!crv)
        return lu_push_err(L, &e);
    lk = new_lkey(L);
    return key_result(L, lk, sa_key_ec_private(crv, x, xlen, y, ylen, d, dlen, &e), &e);
}

/* core.key_okp_private(crv, x|nil, d) */
static int l_key_okp_private(lua_State *L)
{
    size_t xlen, dlen;
    sa_err e;
    const char *crv = check_name(L, 1, "crv", &e);
    const unsigned char *x = opt_bytes(L, 2, &xlen), *d = check_bytes(L, 3, &dlen);
    lkey *lk;
    if (!crv)
        return lu_push_err(L, &e);
    lk = new_lkey(L);
    return key_result(L, lk, sa_key_okp_private(crv, x, xlen, d, dlen, &e), &e);
}

/* core.key_generate(kty, crv): a new private key from the CSPRNG (EC
 * P-256/384/521, OKP Ed25519), the same userdata the constructors make. */
static int l_key_generate(lua_State *L)
{
    sa_err e;
    const char *kty = check_name(L, 1, "kty", &e);
    const char *crv = kty ? check_name(L, 2, "crv", &e) : NULL;
    lkey *lk;
    if (!kty || !crv)
        return lu_push_err(L, &e);
    lk = new_lkey(L);
    return key_result(L, lk, sa_key_generate(kty, crv, &e), &e);
}

/* core.jws_hash(alg, data) -> digest (for at_hash / c_hash) */
static int l_jws_hash(lua_State *L)
{
    unsigned char out[64];
    size_t len;
    sa_err e;
    const char *alg = check_name(L, 1, "alg", &e);
    const unsigned char *data = check_bytes(L, 2, &len);
    int n;
    if (!alg)
        return lu_push_err(L, &e);
    n = sa_jws_hash_for_alg(alg, data, len, out, &e);
    if (n < 0)
        return lu_push_err(L, &e);
    lua_pushlstring(L, (const char *)out, (size_t)n);
    return 1;
}

/* key:verify(alg, input, sig [, input_len]) -> true | false (the signature
 * does not match: an answer, not a failure) | nil, kind, msg, code (alg
 * refused for this key, bad arguments) */
static int l_key_verify(lua_State *L)
{
    sa_key *k = check_key(L, 1);
    size_t inlen, siglen;
    sa_err e;
    const char *alg = check_name(L, 2, "alg", &e);
    const unsigned char *in = check_bytes(L, 3, &inlen), *sig = check_bytes(L, 4, &siglen);
    int rc;
    if (!lua_isnoneornil(L, 5)) {
        /* the input is a prefix of arg 3 (a compact JWS: no copy) */
        lua_Integer use = luaL_checkinteger(L, 5);
        luaL_argcheck(L, use >= 0 && (unsigned long long)use <= inlen, 5, "out of range");
        inlen = (size_t)use;
    }
    if (!alg)
        return lu_push_err(L, &e);
    rc = sa_jws_verify(k, alg, in, inlen, sig, siglen, &e);
    if (rc < 0)
        return lu_push_err(L, &e);
    lua_pushboolean(L, rc == 1);
    return 1;
}

/* key:sign(alg, input) -> sig | nil, kind, msg, code. The Lua buffer is
 * made before signing, so a memory error cannot leak a C allocation. */
static int l_key_sign(lua_State *L)
{
    sa_key *k = check_key(L, 1);
    size_t inlen, size = 0, siglen = 0;
    sa_err e;
    const char *alg = check_name(L, 2, "alg", &e);
    const unsigned char *in = check_bytes(L, 3, &inlen);
    luaL_Buffer b;
    unsigned char *out;
    if (!alg || sa_jws_sign_size(k, alg, &size, &e) != 0)
        return lu_push_err(L, &e);
    out = (unsigned char *)luaL_buffinitsize(L, &b, size);
    if (sa_jws_sign_to(k, alg, in, inlen, out, size, &siglen, &e) != 0)
        return lu_push_err(L, &e);
    luaL_pushresultsize(&b, siglen);
    return 1;
}

/* key:alg_ok(alg) -> true | nil, kind, msg, code */
static int l_key_alg_ok(lua_State *L)
{
    sa_key *k = check_key(L, 1);
    sa_err e;
    const char *alg = check_name(L, 2, "alg", &e);
    if (!alg || sa_jws_alg_ok(k, alg, &e) != 0)
        return lu_push_err(L, &e);
    lua_pushboolean(L, 1);
    return 1;
}

/* key:default_alg() -> alg | nil, kind, msg, code: the alg to sign with
 * when none is configured (the first in the alg table this key can use). */
static int l_key_default_alg(lua_State *L)
{
    sa_err e;
    const char *alg = sa_jws_default_alg(check_key(L, 1), &e);
    if (!alg)
        return lu_push_err(L, &e);
    lua_pushstring(L, alg);
    return 1;
}

/* key:type() -> kty, bits, crv|nil */
static int l_key_type(lua_State *L)
{
    sa_key *k = check_key(L, 1);
    const char *crv = sa_key_curve(k);
    lua_pushstring(L, sa_key_kty(k));
    lua_pushinteger(L, sa_key_bits(k));
    if (crv)
        lua_pushstring(L, crv);
    else
        lua_pushnil(L);
    return 3;
}

/* key:has_private() -> boolean */
static int l_key_has_private(lua_State *L)
{
    lua_pushboolean(L, sa_key_has_private(check_key(L, 1)));
    return 1;
}

static void set_bytes(lua_State *L, const char *name, const unsigned char *p, size_t len)
{
    if (len) {
        lua_pushlstring(L, (const char *)p, len);
        lua_setfield(L, -2, name);
    }
}

/* key:public() -> { kty=, crv=, n=, e=, x=, y= } */
static int l_key_public(lua_State *L)
{
    sa_key *k = check_key(L, 1);
    sa_jwk_public *j;
    sa_err e;
    /* ~2.3 KB: a userdata rather than the C stack, collected as usual */
    j = lua_newuserdatauv(L, sizeof *j, 0);
    if (sa_key_public_jwk(k, j, &e) != 0)
        return lu_push_err(L, &e);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, j->kty);
    lua_setfield(L, -2, "kty");
    if (j->crv) {
        lua_pushstring(L, j->crv);
        lua_setfield(L, -2, "crv");
    }
    set_bytes(L, "n", j->n, j->nlen);
    set_bytes(L, "e", j->e, j->elen);
    set_bytes(L, "x", j->x, j->xlen);
    set_bytes(L, "y", j->y, j->ylen);
    return 1;
}

/* Sets field name of the table at the top to the base64url encoding of
 * p[0..n); the buffer is wiped when freed (sa_buf). */
static void set_b64(lua_State *L, const char *name, const unsigned char *p, size_t n)
{
    sa_buf *b = lu_new_box(L);
    if (sa_b64_encode(b, p, n, 1) != 0)
        lu_nomem(L, b);
    lu_push_buf(L, b);
    lua_setfield(L, -2, name);
}

/* key:private_jwk() -> { kty=, crv=, x=, [y=,] d= } (members base64url
 * encoded), EC and Ed25519 private keys only | nil, kind, msg, code. The
 * raw private bytes live only in a C buffer, wiped before returning. */
static int l_key_private_jwk(lua_State *L)
{
    sa_key *k = check_key(L, 1);
    unsigned char d[SA_KEY_D_MAX];
    size_t dlen = 0;
    sa_jwk_public *j;
    sa_buf *db;
    sa_err e;
    int rc;
    j = lua_newuserdatauv(L, sizeof *j, 0);
    if (sa_key_public_jwk(k, j, &e) != 0)
        return lu_push_err(L, &e);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, j->kty);
    lua_setfield(L, -2, "kty");
    lua_pushstring(L, j->crv);
    lua_setfield(L, -2, "crv");
    set_b64(L, "x", j->x, j->xlen);
    if (j->ylen)
        set_b64(L, "y", j->y, j->ylen);
    /* every allocation that may raise comes before or after d is held */
    db = lu_new_box(L);
    if (sa_key_private_d(k, d, sizeof d, &dlen, &e) != 0)
        return lu_push_err(L, &e);
    rc = sa_b64_encode(db, d, dlen, 1);
    OPENSSL_cleanse(d, sizeof d);
    if (rc != 0)
        return lu_nomem(L, db);
    lu_push_buf(L, db);
    lua_setfield(L, -2, "d");
    return 1;
}

/* key:close(), __gc, __close: frees (and wipes) once, harmless again. */
static int l_key_close(lua_State *L)
{
    lkey *lk = luaL_checkudata(L, 1, KEY_MT);
    sa_key_free(lk->k);
    lk->k = NULL;
    return 0;
}

static int l_key_tostring(lua_State *L)
{
    lkey *lk = luaL_checkudata(L, 1, KEY_MT);
    if (!lk->k) {
        lua_pushliteral(L, "smartauth.key (closed)");
    } else {
        const char *crv = sa_key_curve(lk->k);
        const char *priv = sa_key_has_private(lk->k) ? ", private" : "";
        if (crv)
            lua_pushfstring(L, "smartauth.key (%s %s%s)", sa_key_kty(lk->k), crv, priv);
        else
            lua_pushfstring(L, "smartauth.key (%s %d%s)", sa_key_kty(lk->k),
                            sa_key_bits(lk->k), priv);
    }
    return 1;
}

/* key:jwe_decrypt(compact, alg, enc [, epk [, apu [, apv]]]) -> plaintext |
 * nil, kind, msg, code. The header's JSON is read by the Lua layer, which
 * passes what it said (epk a key made from the header's JWK; apu and apv
 * decoded); the header's base64url text in compact is the AAD. */
static int l_key_jwe_decrypt(lua_State *L)
{
    sa_key *k = check_key(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    sa_err e;
    const char *alg = check_name(L, 3, "alg", &e);
    const char *enc = alg ? check_name(L, 4, "enc", &e) : NULL;
    sa_jwe_header h;
    sa_jwe_parts parts;
    sa_buf *b;
    memset(&h, 0, sizeof h);
    h.alg = alg;
    h.enc = enc;
    if (!lua_isnoneornil(L, 5))
        h.epk = check_key(L, 5);
    h.apu = opt_bytes(L, 6, &h.apulen);
    h.apv = opt_bytes(L, 7, &h.apvlen);
    if (!alg || !enc)
        return lu_push_err(L, &e);
    if (sa_jwe_split(s, n, &parts, &e) != 0)
        return lu_push_err(L, &e);
    b = lu_new_box(L); /* the plaintext: wiped when freed */
    if (sa_jwe_decrypt(k, &h, &parts, b, &e) != 0) {
        sa_buf_free(b);
        return lu_push_err(L, &e);
    }
    return lu_push_buf(L, b);
}

/* key:jwe_encrypt(alg, enc, plaintext [, kid [, cty]]) -> compact JWE |
 * nil, kind, msg, code */
static int l_key_jwe_encrypt(lua_State *L)
{
    sa_key *k = check_key(L, 1);
    size_t n;
    sa_err e;
    const char *alg = check_name(L, 2, "alg", &e);
    const char *enc = alg ? check_name(L, 3, "enc", &e) : NULL;
    const unsigned char *pt = check_bytes(L, 4, &n);
    const char *kid = NULL, *cty = NULL;
    sa_buf *b;
    if (!alg || !enc)
        return lu_push_err(L, &e);
    if (!lua_isnoneornil(L, 5) && !(kid = check_name(L, 5, "kid", &e)))
        return lu_push_err(L, &e);
    if (!lua_isnoneornil(L, 6) && !(cty = check_name(L, 6, "cty", &e)))
        return lu_push_err(L, &e);
    b = lu_new_box(L);
    if (sa_jwe_encrypt(k, alg, enc, kid, cty, pt, n, b, &e) != 0) {
        sa_buf_free(b);
        return lu_push_err(L, &e);
    }
    return lu_push_buf(L, b);
}

/* key:jwe_alg_ok(alg) -> true | nil, kind, msg, code */
static int l_key_jwe_alg_ok(lua_State *L)
{
    sa_key *k = check_key(L, 1);
    sa_err e;
    const char *alg = check_name(L, 2, "alg", &e);
    if (!alg || sa_jwe_alg_ok(k, alg, &e) != 0)
        return lu_push_err(L, &e);
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg key_methods[] = {
    { "jwe_decrypt", l_key_jwe_decrypt },
    { "jwe_encrypt", l_key_jwe_encrypt },
    { "jwe_alg_ok", l_key_jwe_alg_ok },
    { "verify", l_key_verify },
    { "sign", l_key_sign },
    { "alg_ok", l_key_alg_ok },
    { "default_alg", l_key_default_alg },
    { "type", l_key_type },
    { "has_private", l_key_has_private },
    { "public", l_key_public },
    { "private_jwk", l_key_private_jwk },
    { "close", l_key_close },
    { NULL, NULL }
};

/* jws_parse(compact) -> header, payload, signature (decoded bytes),
 * input_len | nil, kind, msg, code. The split (jws.c) and the base64url
 * decoding every ID token needs, in one call; the signing input is the
 * first input_len bytes of compact (key:verify takes it so, without a
 * copy). The JSON stays for the Lua layer. */
static int l_jws_parse(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    sa_jws_parts parts;
    sa_err e;
    int i;
    if (sa_jws_split(s, n, &parts, &e) != 0)
        return lu_push_err(L, &e);
    for (i = 0; i < 3; i++) {
        if (lcrypto_push_b64(L, parts.seg[i], parts.len[i], 1, &e) != 0) {
            sa_err named; /* name the part, keep the reason */
            sa_err_set(&named, e.kind, e.code, "JWT %s: %s", sa_jws_part_name[i], e.msg);
            return lu_push_err(L, &named);
        }
    }
    lua_pushinteger(L, (lua_Integer)parts.input_len);
    return 4;
}

/* jws_algs() -> { [alg] = { kty=, crv=|nil, hash= } }: the one alg table
 * (jws.c), for the Lua layer's allow-lists and key choice. */
static int l_jws_algs(lua_State *L)
{
    const sa_jws_alg_info *a;
    size_t i;
    lua_newtable(L);
    for (i = 0; (a = sa_jws_alg_at(i)) != NULL; i++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, a->kty);
        lua_setfield(L, -2, "kty");
        if (a->crv) {
            lua_pushstring(L, a->crv);
            lua_setfield(L, -2, "crv");
        }
        lua_pushinteger(L, a->hash_bits);
        lua_setfield(L, -2, "hash");
        lua_setfield(L, -2, a->name);
    }
    return 1;
}

/* jwe_parse(compact) -> header JSON (decoded) | nil, kind, msg, code: the
 * split with every cap (jwe.c) and the header decoded, for the Lua layer
 * to read before choosing a key. */
static int l_jwe_parse(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    sa_jwe_parts parts;
    sa_err e;
    if (sa_jwe_split(s, n, &parts, &e) != 0)
        return lu_push_err(L, &e);
    if (lcrypto_push_b64(L, parts.seg[0], parts.len[0], 1, &e) != 0) {
        sa_err named;
        sa_err_set(&named, e.kind, e.code, "JWE header: %s", e.msg);
        return lu_push_err(L, &named);
    }
    return 1;
}

/* jwe_algs() -> { alg, ... }, { enc, ... }: what jwe.c supports */
static int l_jwe_algs(lua_State *L)
{
    const char *name;
    size_t i;
    lua_newtable(L);
    for (i = 0; (name = sa_jwe_alg_at(i)) != NULL; i++) {
        lua_pushstring(L, name);
        lua_rawseti(L, -2, (int)i + 1); /* int on 5.1/LuaJIT; the tables are small */
    }
    lua_newtable(L);
    for (i = 0; (name = sa_jwe_enc_at(i)) != NULL; i++) {
        lua_pushstring(L, name);
        lua_rawseti(L, -2, (int)i + 1); /* int on 5.1/LuaJIT; the tables are small */
    }
    return 2;
}

static const luaL_Reg funcs[] = {
    { "jwe_parse", l_jwe_parse },
    { "jwe_algs", l_jwe_algs },
    { "key_rsa", l_key_rsa },
    { "key_ec", l_key_ec },
    { "key_okp", l_key_okp },
    { "key_oct", l_key_oct },
    { "key_pem", l_key_pem },
    { "key_x25519", l_key_x25519 },
    { "key_x25519_pem", l_key_x25519_pem },
    { "key_rsa_private", l_key_rsa_private },
    { "key_ec_private", l_key_ec_private },
    { "key_okp_private", l_key_okp_private },
    { "key_generate", l_key_generate },
    { "jws_hash", l_jws_hash },
    { "jws_parse", l_jws_parse },
    { "jws_algs", l_jws_algs },
    { NULL, NULL }
};

void lkey_open(lua_State *L)
{
    lu_new_class(L, KEY_MT, key_methods, l_key_close, l_key_tostring);
    luaL_setfuncs(L, funcs, 0);
}
