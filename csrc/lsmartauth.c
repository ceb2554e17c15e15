/* The Lua binding: the only file that knows the Lua stack. It turns Lua
 * arguments into C calls and C results into Lua values, nothing more. */
#include <limits.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include <openssl/crypto.h>

#include "buf.h"
#include "crypto.h"
#include "form.h"
#include "http.h"
#include "jws.h"
#include "lconfig.h"
#include "sa_err.h"

#define ENGINE_MT "smartauth.engine"
#define REQUEST_MT "smartauth.request"
#define BOX_MT "smartauth.buf"
#define MAX_HEADERS_OUT 64

#if defined(__GNUC__)
#define SA_EXPORT __attribute__((visibility("default")))
#else
#define SA_EXPORT
#endif

/* nil, kind, message, code: the Lua layer turns this into an error object. */
static int push_err(lua_State *L, const sa_err *e)
{
    lua_pushnil(L);
    lua_pushstring(L, sa_err_kind_name(e->kind));
    lua_pushstring(L, e->msg);
    lua_pushinteger(L, (lua_Integer)e->code);
    return 4;
}

/* A C buffer owned by a userdata (the box) from before its first byte is
 * allocated: any Lua error (out of memory, a metamethod raising) between
 * filling it and pushing its bytes leaves it to __gc, never leaked. */
static int l_box_gc(lua_State *L)
{
    sa_buf_free(luaL_checkudata(L, 1, BOX_MT));
    return 0;
}

static sa_buf *new_box(lua_State *L)
{
    sa_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
    *b = (sa_buf)SA_BUF_INIT;
    luaL_setmetatable(L, BOX_MT);
    return b;
}

/* b is the box at the top of the stack: replaces it by its bytes. */
static int push_buf(lua_State *L, sa_buf *b)
{
    lua_pushlstring(L, b->data ? b->data : "", b->len);
    sa_buf_free(b);
    lua_remove(L, -2);
    return 1;
}

static int nomem(lua_State *L, sa_buf *b)
{
    sa_buf_free(b);
    return luaL_error(L, "smartauth.core: out of memory");
}

/* ---------------------------------------------------------------- crypto */

static int l_random(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_Buffer B;
    sa_err e;
    unsigned char *p;
    luaL_argcheck(L, n >= 0 && n <= 1 << 20, 1, "length must be 0..1048576");
    p = (unsigned char *)luaL_buffinitsize(L, &B, (size_t)n);
    if (sa_random_bytes(p, (size_t)n, &e) != 0)
        return luaL_error(L, "%s", e.msg);
    luaL_pushresultsize(&B, (size_t)n);
    return 1;
}

static int b64_enc(lua_State *L, int url)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    sa_buf *b = new_box(L);
    if (sa_b64_encode(b, (const unsigned char *)s, n, url) != 0)
        return nomem(L, b);
    return push_buf(L, b);
}

/* Decodes s[0..n) and pushes it; on failure pushes nothing and leaves the
 * message in e. */
static int push_b64(lua_State *L, const char *s, size_t n, int url, sa_err *e)
{
    sa_buf *b = new_box(L);
    if (sa_b64_decode(b, s, n, url, e) != 0) {
        sa_buf_free(b);
        lua_pop(L, 1);
        return -1;
    }
    push_buf(L, b);
    return 0;
}

static int b64_dec(lua_State *L, int url)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    sa_err e;
    if (push_b64(L, s, n, url, &e) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, e.msg);
        return 2;
    }
    return 1;
}

/* jws_parse(compact) -> header, payload, signature (decoded bytes),
 * input_len | nil, part, message. The split every ID token needs, in one
 * call: exactly two dots, a non-empty header and payload, strict base64url;
 * the signing input is the first input_len bytes of compact (key:verify
 * takes it so, without a copy). The JSON stays for the Lua layer. part:
 * "dots", "empty", "header", "payload" or "signature". */
static int l_jws_parse(lua_State *L)
{
    size_t n, i;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *d1 = memchr(s, '.', n), *d2 = NULL;
    static const char *const part[] = { "header", "payload", "signature" };
    sa_err e;
    if (d1)
        d2 = memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - s));
    if (!d2 || memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - s))) {
        lua_pushnil(L);
        lua_pushliteral(L, "dots");
        lua_pushliteral(L, "JWT must be three base64url segments separated by dots");
        return 3;
    }
    if (d1 == s || d2 == d1 + 1) {
        lua_pushnil(L);
        lua_pushliteral(L, "empty");
        lua_pushliteral(L, "JWT has an empty header or payload");
        return 3;
    }
    {
        const char *start[3] = { s, d1 + 1, d2 + 1 };
        size_t len[3] = { (size_t)(d1 - s), (size_t)(d2 - d1 - 1), n - (size_t)(d2 + 1 - s) };
        for (i = 0; i < 3; i++) {
            if (push_b64(L, start[i], len[i], 1, &e) != 0) {
                lua_pushnil(L);
                lua_pushstring(L, part[i]);
                lua_pushstring(L, e.msg);
                return 3;
            }
        }
    }
    lua_pushinteger(L, (lua_Integer)(d2 - s));
    return 4;
}

static int l_b64url_encode(lua_State *L) { return b64_enc(L, 1); }
static int l_b64url_decode(lua_State *L) { return b64_dec(L, 1); }
static int l_b64_encode(lua_State *L) { return b64_enc(L, 0); }
static int l_b64_decode(lua_State *L) { return b64_dec(L, 0); }

static int check_bits(lua_State *L, int arg)
{
    lua_Integer bits = luaL_checkinteger(L, arg);
    luaL_argcheck(L, bits == 256 || bits == 384 || bits == 512, arg,
                  "bits must be 256, 384 or 512");
    return (int)bits;
}

static int l_sha2(lua_State *L)
{
    int bits = check_bits(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    unsigned char md[64];
    int len = sa_sha2(bits, s, n, md);
    if (len < 0)
        return luaL_error(L, "sha%d failed", bits);
    lua_pushlstring(L, (const char *)md, (size_t)len);
    return 1;
}

static int l_hmac(lua_State *L)
{
    int bits = check_bits(L, 1);
    size_t kn, n;
    const char *k = luaL_checklstring(L, 2, &kn);
    const char *s = luaL_checklstring(L, 3, &n);
    unsigned char md[64];
    int len = sa_hmac_sha2(bits, k, kn, s, n, md);
    if (len < 0)
        return luaL_error(L, "hmac-sha%d failed", bits);
    lua_pushlstring(L, (const char *)md, (size_t)len);
    OPENSSL_cleanse(md, sizeof md);
    return 1;
}

static int l_pkce_verifier(lua_State *L)
{
    sa_buf *b = new_box(L);
    sa_err e;
    if (sa_pkce_verifier(b, &e) != 0) {
        sa_buf_free(b);
        return luaL_error(L, "%s", e.msg);
    }
    return push_buf(L, b);
}

static int l_pkce_challenge(lua_State *L)
{
    size_t n;
    const char *v = luaL_checklstring(L, 1, &n);
    sa_buf *b = new_box(L);
    sa_err e;
    if (sa_pkce_challenge(b, v, n, &e) != 0) {
        sa_buf_free(b);
        return luaL_argerror(L, 1, e.msg);
    }
    return push_buf(L, b);
}

static int l_ct_equal(lua_State *L)
{
    size_t an, bn;
    const char *a = luaL_checklstring(L, 1, &an);
    const char *b = luaL_checklstring(L, 2, &bn);
    lua_pushboolean(L, sa_ct_equal(a, an, b, bn));
    return 1;
}

/* ------------------------------------------------------------------- jws */


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
        return push_err(L, e);
    lk->k = k;
    return 1;
}

/* A name argument (alg, crv) as a C string; NULL + e filled when it holds a
 * NUL byte, which would otherwise cut "RS256\0..." to "RS256". */
static const char *check_name(lua_State *L, int i, const char *what, sa_err *e)
{
    size_t len;
    const char *s = luaL_checklstring(L, i, &len);
    if (strlen(s) != len) {
        sa_err_set(e, SA_EVALIDATION, 0, "%s contains a NUL byte", what);
        return NULL;
    }
    return s;
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
        return push_err(L, &e);
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
        return push_err(L, &e);
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
        return push_err(L, &e);
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
        return push_err(L, &e);
    lk = new_lkey(L);
    return key_result(L, lk, sa_key_okp_private(crv, x, xlen, d, dlen, &e), &e);
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
        return push_err(L, &e);
    n = sa_jws_hash_for_alg(alg, data, len, out, &e);
    if (n < 0)
        return push_err(L, &e);
    lua_pushlstring(L, (const char *)out, (size_t)n);
    return 1;
}

/* key:verify(alg, input, sig) -> true | false, msg | nil, kind, msg, code */
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
        luaL_argcheck(L, use >= 0 && (lua_Unsigned)use <= inlen, 5, "out of range");
        inlen = (size_t)use;
    }
    if (!alg)
        return push_err(L, &e);
    rc = sa_jws_verify(k, alg, in, inlen, sig, siglen, &e);
    if (rc < 0)
        return push_err(L, &e);
    lua_pushboolean(L, rc == 1);
    if (rc == 1)
        return 1;
    lua_pushstring(L, e.msg);
    return 2;
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
        return push_err(L, &e);
    out = (unsigned char *)luaL_buffinitsize(L, &b, size);
    if (sa_jws_sign_to(k, alg, in, inlen, out, size, &siglen, &e) != 0)
        return push_err(L, &e);
    luaL_pushresultsize(&b, siglen);
    return 1;
}

/* key:alg_ok(alg) -> true | false, msg */
static int l_key_alg_ok(lua_State *L)
{
    sa_key *k = check_key(L, 1);
    sa_err e;
    const char *alg = check_name(L, 2, "alg", &e);
    if (alg && sa_jws_alg_ok(k, alg, &e) == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_pushstring(L, e.msg);
    return 2;
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
        return push_err(L, &e);
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

static const luaL_Reg key_methods[] = {
    { "verify", l_key_verify },
    { "sign", l_key_sign },
    { "alg_ok", l_key_alg_ok },
    { "type", l_key_type },
    { "has_private", l_key_has_private },
    { "public", l_key_public },
    { "close", l_key_close },
    { NULL, NULL }
};

/* Entries for core_funcs[]. */
#define JWS_CORE_FUNCS                               \
    { "key_rsa", l_key_rsa },                        \
    { "key_ec", l_key_ec },                          \
    { "key_okp", l_key_okp },                        \
    { "key_oct", l_key_oct },                        \
    { "key_pem", l_key_pem },                        \
    { "key_rsa_private", l_key_rsa_private },        \
    { "key_ec_private", l_key_ec_private },          \
    { "key_okp_private", l_key_okp_private },        \
    { "jws_hash", l_jws_hash },


/* ------------------------------------------------------------------ form */

static int l_form_escape(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    sa_buf *b = new_box(L);
    if (sa_form_escape(b, s, n) != 0)
        return nomem(L, b);
    return push_buf(L, b);
}

/* form_encode{ name1, value1, name2, value2, ... }: a flat list (no table
 * per pair, this is on every token request); order kept, so the bytes are
 * fixed. */
static int l_form_encode(lua_State *L)
{
    sa_buf *b;
    lua_Integer i, n;
    luaL_checktype(L, 1, LUA_TTABLE);
    n = luaL_len(L, 1);
    if (n % 2 != 0)
        return luaL_argerror(L, 1, "expected a flat list of names and values");
    lua_settop(L, 1);
    b = new_box(L); /* index 2: lua_geti may run metamethods that raise */
    for (i = 1; i <= n; i += 2) {
        size_t nl, vl;
        const char *name, *value;
        if (lua_geti(L, 1, i) != LUA_TSTRING || lua_geti(L, 1, i + 1) != LUA_TSTRING) {
            sa_buf_free(b);
            return luaL_argerror(L, 1, "form names and values must be strings");
        }
        name = lua_tolstring(L, -2, &nl);
        value = lua_tolstring(L, -1, &vl);
        if (sa_form_add(b, name, nl, value, vl) != 0)
            return nomem(L, b);
        lua_pop(L, 2);
    }
    return push_buf(L, b);
}

/* Appends one pair as length, bytes, length, bytes to the box: no Lua call
 * here, so nothing can raise while sa_form_parse holds its buffers. */
static int form_pair_cb(void *ud, const char *name, size_t nlen,
                        const char *value, size_t vlen)
{
    sa_buf *b = ud;
    if (sa_buf_append(b, &nlen, sizeof nlen) != 0 || sa_buf_append(b, name, nlen) != 0 ||
        sa_buf_append(b, &vlen, sizeof vlen) != 0 || sa_buf_append(b, value, vlen) != 0)
        return -1;
    return 0;
}

/* form_decode(s) -> table (last value of a repeated name wins) | nil, msg */
static int l_form_decode(lua_State *L)
{
    size_t n, pos = 0;
    const char *s = luaL_checklstring(L, 1, &n);
    sa_buf *b = new_box(L);
    sa_err e;
    sa_err_set(&e, SA_ENOMEM, 0, "out of memory");
    if (sa_form_parse(s, n, form_pair_cb, b, &e) != 0) {
        if (e.kind == SA_ENOMEM)
            return nomem(L, b);
        sa_buf_free(b);
        lua_pushnil(L);
        lua_pushstring(L, e.msg);
        return 2;
    }
    lua_newtable(L);
    while (pos < b->len) {
        size_t len[2];
        const char *p[2];
        int k;
        for (k = 0; k < 2; k++) {
            memcpy(&len[k], b->data + pos, sizeof len[k]);
            p[k] = b->data + pos + sizeof len[k];
            pos += sizeof len[k] + len[k];
        }
        lua_pushlstring(L, p[0], len[0]);
        lua_pushlstring(L, p[1], len[1]);
        lua_rawset(L, -3);
    }
    sa_buf_free(b);
    return 1;
}

static int l_basic_auth(lua_State *L)
{
    size_t il, sl;
    const char *id = luaL_checklstring(L, 1, &il);
    const char *secret = luaL_checklstring(L, 2, &sl);
    sa_buf *b = new_box(L);
    if (sa_form_basic_auth(b, id, il, secret, sl) != 0)
        return nomem(L, b);
    return push_buf(L, b);
}

/* ------------------------------------------------------------------ http */

typedef struct {
    sa_http *h;
} lengine;

typedef struct {
    sa_http_req *r;
} lrequest;

static lengine *check_engine(lua_State *L, int i)
{
    lengine *e = luaL_checkudata(L, i, ENGINE_MT);
    if (!e->h)
        luaL_error(L, "attempt to use a closed engine");
    return e;
}

static int l_engine_new(lua_State *L)
{
    sa_err e;
    lengine *le = lua_newuserdatauv(L, sizeof *le, 1);
    le->h = NULL; /* safe to collect before the C resource exists */
    luaL_setmetatable(L, ENGINE_MT);
    lua_newtable(L); /* lightuserdata(req) -> request userdata, while running */
    lua_setiuservalue(L, -2, 1);
    le->h = sa_http_new(&e);
    if (!le->h)
        return push_err(L, &e);
    return 1;
}

static int l_engine_close(lua_State *L)
{
    lengine *le = luaL_checkudata(L, 1, ENGINE_MT);
    if (le->h) {
        /* Requests still alive are detached by sa_http_free; their
         * userdata then report "closed". */
        lua_getiuservalue(L, 1, 1);
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            lrequest *lr = lua_touserdata(L, -1);
            if (lr && lr->r) {
                sa_http_req_free(lr->r);
                lr->r = NULL;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        sa_http_free(le->h);
        le->h = NULL;
    }
    return 0;
}

static int l_engine_tostring(lua_State *L)
{
    lengine *le = luaL_checkudata(L, 1, ENGINE_MT);
    if (le->h)
        lua_pushfstring(L, "smartauth.engine (%p)", (void *)le);
    else
        lua_pushliteral(L, "smartauth.engine (closed)");
    return 1;
}

static long opt_ms(lua_State *L, int t, const char *k)
{
    long v = 0;
    if (lua_getfield(L, t, k) != LUA_TNIL) {
        int isnum;
        lua_Number s = lua_tonumberx(L, -1, &isnum);
        /* written so that NaN fails too: C never converts it */
        if (!isnum || !(s >= 0 && s <= 86400))
            luaL_error(L, "option '%s' must be 0..86400 seconds", k);
        v = (long)(s * 1000.0);
        if (v == 0 && s > 0)
            v = 1;
    }
    lua_pop(L, 1);
    return v;
}

/* Leaves the value on the stack: the caller keeps it there until C is done
 * with the bytes. The table may not hold the string at all (an __index
 * metamethod can build it), so popping it would free it under us. */
static const char *opt_str(lua_State *L, int t, const char *k, size_t *len)
{
    const char *s = NULL;
    if (lua_getfield(L, t, k) != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "option '%s' must be a string", k);
        s = lua_tolstring(L, -1, len);
    }
    return s;
}

/* Reads the request options table at index t and starts the transfer. */
static sa_http_req *start_from_table(lua_State *L, sa_http *h, int t, sa_err *e)
{
    sa_http_opts o;
    const char *hdrs[MAX_HEADERS_OUT];
    size_t nh = 0;
    int top = lua_gettop(L);
    sa_http_req *r;
    memset(&o, 0, sizeof o);
    luaL_checktype(L, t, LUA_TTABLE);
    /* every string read below stays on the stack until sa_http_start */
    luaL_checkstack(L, MAX_HEADERS_OUT + 8, "request options");
    o.url = opt_str(L, t, "url", NULL);
    if (!o.url)
        luaL_error(L, "option 'url' is required");
    o.method = opt_str(L, t, "method", NULL);
    o.body = opt_str(L, t, "body", &o.body_len);
    o.ca_file = opt_str(L, t, "ca_file", NULL);
    o.timeout_ms = opt_ms(L, t, "timeout");
    o.connect_timeout_ms = opt_ms(L, t, "connect_timeout");
    if (lua_getfield(L, t, "max_body") != LUA_TNIL) {
        int isint;
        lua_Integer mb = lua_tointegerx(L, -1, &isint);
        if (!isint || mb <= 0 || (lua_Unsigned)mb > (size_t)-1)
            luaL_error(L, "option 'max_body' must be a positive integer");
        o.max_body = (size_t)mb;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, t, "headers") != LUA_TNIL) {
        lua_Integer i, n;
        int ht = lua_gettop(L);
        luaL_checktype(L, ht, LUA_TTABLE);
        n = luaL_len(L, ht);
        if (n > MAX_HEADERS_OUT)
            luaL_error(L, "too many request headers (max %d)", MAX_HEADERS_OUT);
        for (i = 1; i <= n; i++) {
            size_t hl;
            const char *line;
            lua_geti(L, ht, i); /* stays on the stack, as opt_str's values */
            line = lua_tolstring(L, -1, &hl);
            if (!line || memchr(line, '\r', hl) || memchr(line, '\n', hl) ||
                strlen(line) != hl)
                luaL_error(L, "request header %d is not a single-line string", (int)i);
            hdrs[nh++] = line;
        }
    }
    o.headers = hdrs;
    o.nheaders = nh;
    r = sa_http_start(h, &o, e); /* copies what it keeps */
    lua_settop(L, top);
    return r;
}

static int push_response(lua_State *L, sa_http_req *r)
{
    const sa_err *e;
    const sa_buf *body;
    size_t i, n;
    if (sa_http_req_result(r, &e) != 0)
        return push_err(L, e);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, sa_http_req_status(r));
    lua_setfield(L, -2, "status");
    body = sa_http_req_body(r);
    lua_pushlstring(L, body->data ? body->data : "", body->len);
    lua_setfield(L, -2, "body");
    lua_pushinteger(L, sa_http_req_connects(r));
    lua_setfield(L, -2, "connects");
    n = sa_http_req_nheaders(r);
    lua_createtable(L, 0, n > 64 ? 64 : (int)n); /* a size hint only */
    for (i = 0; i < n; i++) {
        const char *name, *value;
        size_t nl, vl;
        sa_http_req_header(r, i, &name, &nl, &value, &vl);
        lua_pushlstring(L, name, nl);
        if (lua_rawget(L, -2) == LUA_TSTRING) {
            /* Repeated header: join as RFC 9110 §5.3 allows. */
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, value, vl);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, value, vl);
        }
        lua_pushlstring(L, name, nl);
        lua_insert(L, -2);
        lua_rawset(L, -3);
    }
    lua_setfield(L, -2, "headers");
    return 1;
}

/* engine:request(opts) -> response | nil, kind, msg, code. Blocks. */
static int l_engine_request(lua_State *L)
{
    lengine *le = check_engine(L, 1);
    sa_err e;
    int n;
    /* The request (and its body) belongs to a userdata while Lua values are
     * made from it: an out-of-memory error there leaves it to __gc. */
    lrequest *lr = lua_newuserdatauv(L, sizeof *lr, 1);
    lr->r = NULL;
    luaL_setmetatable(L, REQUEST_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    lr->r = start_from_table(L, le->h, 2, &e);
    if (!lr->r)
        return push_err(L, &e);
    if (sa_http_wait(le->h, lr->r, &e) != 0) {
        sa_http_req_free(lr->r);
        lr->r = NULL;
        return push_err(L, &e);
    }
    n = push_response(L, lr->r);
    sa_http_req_free(lr->r);
    lr->r = NULL;
    return n;
}

/* engine:start(opts) -> request userdata | nil, kind, msg, code */
static int l_engine_start(lua_State *L)
{
    lengine *le = check_engine(L, 1);
    sa_err e;
    lrequest *lr = lua_newuserdatauv(L, sizeof *lr, 1);
    lr->r = NULL;
    luaL_setmetatable(L, REQUEST_MT);
    lua_pushvalue(L, 1); /* the request keeps its engine alive */
    lua_setiuservalue(L, -2, 1);
    lr->r = start_from_table(L, le->h, 2, &e);
    if (!lr->r)
        return push_err(L, &e);
    lua_getiuservalue(L, 1, 1);
    lua_pushlightuserdata(L, lr->r);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    return 1;
}

/* engine:step(timeout_seconds) -> number still running */
static int l_engine_step(lua_State *L)
{
    lengine *le = check_engine(L, 1);
    lua_Number t = luaL_optnumber(L, 2, 0);
    sa_err e;
    int n;
    luaL_argcheck(L, t >= 0 && t <= 86400, 2, "timeout must be 0..86400 seconds");
    n = sa_http_step(le->h, (long)(t * 1000.0), &e);
    if (n < 0)
        return push_err(L, &e);
    lua_pushinteger(L, n);
    return 1;
}

/* engine:next_done() -> request userdata | nil */
static int l_engine_next_done(lua_State *L)
{
    lengine *le = check_engine(L, 1);
    sa_http_req *r = sa_http_next_done(le->h);
    if (!r)
        return 0;
    lua_getiuservalue(L, 1, 1);
    lua_pushlightuserdata(L, r);
    lua_rawget(L, -2);
    lua_pushlightuserdata(L, r);
    lua_pushnil(L);
    lua_rawset(L, -4);
    return 1;
}

/* engine:timeout() -> seconds until the engine wants a step, or nil */
static int l_engine_timeout(lua_State *L)
{
    lengine *le = check_engine(L, 1);
    long t = sa_http_timeout(le->h);
    if (t < 0)
        return 0;
    lua_pushnumber(L, (lua_Number)t / 1000.0);
    return 1;
}

/* engine:spin([seconds]) -> the longest busy poll of a blocking request
 * (sa_http_wait), after setting it when given; 0 turns it off. */
static int l_engine_spin(lua_State *L)
{
    lengine *le = check_engine(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        lua_Number v = luaL_checknumber(L, 2);
        luaL_argcheck(L, v >= 0 && v <= 0.01, 2, "0 to 0.01 seconds");
        sa_http_set_spin(le->h, (double)v);
    }
    lua_pushnumber(L, sa_http_spin(le->h));
    return 1;
}

/* engine:fds() -> { {fd=, read=, write=}, ... } for a host's own poll loop */
static int l_engine_fds(lua_State *L)
{
    lengine *le = check_engine(L, 1);
    int buf[2 * 256], *fds = buf, *events = buf + 256, n, i;
    sa_err e;
    n = sa_http_fds(le->h, fds, events, 256, &e);
    if (n > 256) { /* a userdata, so an error below frees it */
        fds = lua_newuserdatauv(L, 2 * (size_t)n * sizeof *fds, 0);
        events = fds + n;
        n = sa_http_fds(le->h, fds, events, n, &e);
    }
    if (n < 0)
        return push_err(L, &e);
    lua_createtable(L, n, 0);
    for (i = 0; i < n; i++) {
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, fds[i]);
        lua_setfield(L, -2, "fd");
        lua_pushboolean(L, events[i] & 1);
        lua_setfield(L, -2, "read");
        lua_pushboolean(L, events[i] & 2);
        lua_setfield(L, -2, "write");
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* core.info() -> { curl=, ssl=, async_dns= } */
static int l_info(lua_State *L)
{
    const char *cv, *sv;
    int adns;
    sa_http_info(&cv, &sv, &adns);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, cv);
    lua_setfield(L, -2, "curl");
    lua_pushstring(L, sv);
    lua_setfield(L, -2, "ssl");
    lua_pushboolean(L, adns);
    lua_setfield(L, -2, "async_dns");
    return 1;
}

static int l_monotonic(lua_State *L)
{
    lua_pushnumber(L, sa_http_monotonic());
    return 1;
}

static int l_engine_running(lua_State *L)
{
    lengine *le = check_engine(L, 1);
    lua_pushinteger(L, sa_http_running(le->h));
    return 1;
}

static lrequest *check_request(lua_State *L, int i)
{
    lrequest *lr = luaL_checkudata(L, i, REQUEST_MT);
    if (!lr->r)
        luaL_error(L, "attempt to use a closed request");
    return lr;
}

static int l_request_done(lua_State *L)
{
    lrequest *lr = check_request(L, 1);
    lua_pushboolean(L, sa_http_req_done(lr->r));
    return 1;
}

static int l_request_result(lua_State *L)
{
    lrequest *lr = check_request(L, 1);
    if (!sa_http_req_done(lr->r))
        return luaL_error(L, "request is still running");
    return push_response(L, lr->r);
}

static int l_request_close(lua_State *L)
{
    lrequest *lr = luaL_checkudata(L, 1, REQUEST_MT);
    if (lr->r) {
        /* Drop the engine's index entry so a cancelled request is gone. */
        if (lua_getiuservalue(L, 1, 1) == LUA_TUSERDATA) {
            lengine *le = luaL_testudata(L, -1, ENGINE_MT);
            if (le && le->h) {
                lua_getiuservalue(L, -1, 1);
                lua_pushlightuserdata(L, lr->r);
                lua_pushnil(L);
                lua_rawset(L, -3);
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
        sa_http_req_free(lr->r);
        lr->r = NULL;
    }
    return 0;
}

static int l_request_tostring(lua_State *L)
{
    lrequest *lr = luaL_checkudata(L, 1, REQUEST_MT);
    lua_pushfstring(L, "smartauth.request (%s)",
                    !lr->r ? "closed" : sa_http_req_done(lr->r) ? "done" : "running");
    return 1;
}

/* ---- store */
/* File store and Redis store (csrc/store_file.c, csrc/store_redis.c); the
 * Lua layer (lua/smartauth/store.lua) encodes entries and maps errors. */

#include "store_file.h"
#include "store_redis.h"

#define FSTORE_MT "smartauth.fstore"
#define FLOCK_MT "smartauth.flock"
#define REDIS_MT "smartauth.redis"

typedef struct {
    sa_fstore *fs;
} lfstore;

typedef struct {
    int fd;
} lflock;

typedef struct {
    sa_redis *r;
} lredis;

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                      lua_CFunction close, lua_CFunction tostring);

/* A string argument that must not hold NUL (paths, host names). */
static const char *check_cstr(lua_State *L, int i, const char *what, sa_err *e)
{
    size_t len;
    const char *s = luaL_checklstring(L, i, &len);
    if (strlen(s) != len) {
        sa_err_set(e, SA_EARG, 0, "%s contains a NUL byte", what);
        return NULL;
    }
    return s;
}

/* nil for absent, the bytes for found, nil, kind, msg, code for an error. */
/* b is the box at the top of the stack (new_box). */
static int push_get(lua_State *L, int rc, sa_buf *b, const sa_err *e)
{
    if (rc <= 0) {
        sa_buf_free(b);
        lua_pop(L, 1);
        if (rc < 0)
            return push_err(L, e);
        lua_pushnil(L);
        return 1;
    }
    return push_buf(L, b);
}

static int push_ok(lua_State *L, int rc, const sa_err *e)
{
    if (rc < 0)
        return push_err(L, e);
    lua_pushboolean(L, 1);
    return 1;
}

static long check_timeout_ms(lua_State *L, int i)
{
    lua_Number s = luaL_checknumber(L, i);
    luaL_argcheck(L, s >= 0 && s <= 86400, i, "must be 0..86400 seconds");
    return (long)(s * 1000.0);
}

/* core.fstore_open(dir [, secret]) -> fstore | nil, kind, msg, code */
static int l_fstore_open(lua_State *L)
{
    sa_err e;
    size_t klen = 0;
    const char *dir = check_cstr(L, 1, "store directory", &e);
    const char *key = luaL_optlstring(L, 2, NULL, &klen);
    lfstore *lf;
    if (!dir)
        return push_err(L, &e);
    lf = lua_newuserdatauv(L, sizeof *lf, 0);
    lf->fs = NULL;
    luaL_setmetatable(L, FSTORE_MT);
    lf->fs = sa_fstore_new(dir, key, klen, &e);
    if (!lf->fs)
        return push_err(L, &e);
    return 1;
}

static sa_fstore *check_fstore(lua_State *L, int i)
{
    lfstore *lf = luaL_checkudata(L, i, FSTORE_MT);
    if (!lf->fs)
        luaL_error(L, "attempt to use a closed store");
    return lf->fs;
}

/* fs:get(name) -> bytes | nil | nil, kind, msg, code */
static int l_fstore_get(lua_State *L)
{
    sa_fstore *fs = check_fstore(L, 1);
    size_t n;
    const char *name = luaL_checklstring(L, 2, &n);
    sa_buf *b = new_box(L);
    sa_err e;
    int rc = sa_fstore_get(fs, name, n, b, &e);
    return push_get(L, rc, b, &e);
}

/* fs:set(name, bytes) -> true | nil, kind, msg, code */
static int l_fstore_set(lua_State *L)
{
    sa_fstore *fs = check_fstore(L, 1);
    size_t n, len;
    const char *name = luaL_checklstring(L, 2, &n);
    const char *data = luaL_checklstring(L, 3, &len);
    sa_err e;
    return push_ok(L, sa_fstore_set(fs, name, n, data, len, &e), &e);
}

/* fs:delete(name) -> true | nil, kind, msg, code */
static int l_fstore_delete(lua_State *L)
{
    sa_fstore *fs = check_fstore(L, 1);
    size_t n;
    const char *name = luaL_checklstring(L, 2, &n);
    sa_err e;
    return push_ok(L, sa_fstore_delete(fs, name, n, &e), &e);
}

/* fs:lock(name, timeout_seconds) -> lock | nil, kind, msg, code. The lock is
 * released by lock:unlock(), by collection, or by the process ending. */
static int l_fstore_lock(lua_State *L)
{
    sa_fstore *fs = check_fstore(L, 1);
    size_t n;
    const char *name = luaL_checklstring(L, 2, &n);
    long ms = check_timeout_ms(L, 3);
    sa_err e;
    int fd;
    lflock *lk = lua_newuserdatauv(L, sizeof *lk, 0);
    lk->fd = -1;
    luaL_setmetatable(L, FLOCK_MT);
    if (sa_fstore_lock(fs, name, n, ms, &fd, &e) != 0)
        return push_err(L, &e);
    lk->fd = fd;
    return 1;
}

/* fs:encrypted() -> boolean */
static int l_fstore_encrypted(lua_State *L)
{
    lua_pushboolean(L, sa_fstore_encrypted(check_fstore(L, 1)));
    return 1;
}

static int l_fstore_close(lua_State *L)
{
    lfstore *lf = luaL_checkudata(L, 1, FSTORE_MT);
    sa_fstore_free(lf->fs);
    lf->fs = NULL;
    return 0;
}

static int l_fstore_tostring(lua_State *L)
{
    lfstore *lf = luaL_checkudata(L, 1, FSTORE_MT);
    if (lf->fs)
        lua_pushfstring(L, "smartauth.fstore (%s%s)", sa_fstore_dir(lf->fs),
                        sa_fstore_encrypted(lf->fs) ? ", encrypted" : "");
    else
        lua_pushliteral(L, "smartauth.fstore (closed)");
    return 1;
}

/* lock:unlock(), __gc, __close: releases once, harmless again. */
static int l_flock_unlock(lua_State *L)
{
    lflock *lk = luaL_checkudata(L, 1, FLOCK_MT);
    sa_fstore_unlock(lk->fd);
    lk->fd = -1;
    return 0;
}

static int l_flock_tostring(lua_State *L)
{
    lflock *lk = luaL_checkudata(L, 1, FLOCK_MT);
    lua_pushstring(L, lk->fd >= 0 ? "smartauth.flock (held)" : "smartauth.flock (released)");
    return 1;
}

static int opt_int(lua_State *L, int t, const char *k, int dflt, int lo, int hi)
{
    int v = dflt;
    if (lua_getfield(L, t, k) != LUA_TNIL) {
        int isint;
        lua_Integer i = lua_tointegerx(L, -1, &isint);
        if (!isint || i < lo || i > hi)
            luaL_error(L, "option '%s' must be an integer %d..%d", k, lo, hi);
        v = (int)i;
    }
    lua_pop(L, 1);
    return v;
}

/* core.redis_open{ host=, port=, username=, password=, db=, connect_timeout=,
 * timeout=, key= } -> redis | nil, kind, msg, code */
static int l_redis_open(lua_State *L)
{
    sa_redis_opts o;
    sa_err e;
    lredis *lr;
    size_t hlen = 0;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    /* the four strings opt_str leaves stay on the stack while C uses them */
    memset(&o, 0, sizeof o);
    o.host = opt_str(L, 1, "host", &hlen);
    if (o.host && strlen(o.host) != hlen)
        luaL_error(L, "option 'host' contains a NUL byte");
    o.port = opt_int(L, 1, "port", 6379, 1, 65535);
    o.db = opt_int(L, 1, "db", 0, 0, 1 << 20);
    o.username = opt_str(L, 1, "username", &o.username_len);
    o.password = opt_str(L, 1, "password", &o.password_len);
    o.secret = opt_str(L, 1, "key", &o.secret_len);
    o.connect_timeout_ms = opt_ms(L, 1, "connect_timeout");
    o.timeout_ms = opt_ms(L, 1, "timeout");
    lr = lua_newuserdatauv(L, sizeof *lr, 0);
    lr->r = NULL;
    luaL_setmetatable(L, REDIS_MT);
    lr->r = sa_redis_new(&o, &e);
    if (!lr->r)
        return push_err(L, &e);
    return 1;
}

static sa_redis *check_redis(lua_State *L, int i)
{
    lredis *lr = luaL_checkudata(L, i, REDIS_MT);
    if (!lr->r)
        luaL_error(L, "attempt to use a closed store");
    return lr->r;
}

/* r:get(key) -> bytes | nil | nil, kind, msg, code */
static int l_redis_get(lua_State *L)
{
    sa_redis *r = check_redis(L, 1);
    size_t n;
    const char *key = luaL_checklstring(L, 2, &n);
    sa_buf *b = new_box(L);
    sa_err e;
    int rc = sa_redis_get(r, key, n, b, &e);
    return push_get(L, rc, b, &e);
}

/* r:set(key, bytes [, ttl_ms]) -> true | nil, kind, msg, code */
static int l_redis_set(lua_State *L)
{
    sa_redis *r = check_redis(L, 1);
    size_t n, len;
    const char *key = luaL_checklstring(L, 2, &n);
    const char *val = luaL_checklstring(L, 3, &len);
    lua_Integer ttl = luaL_optinteger(L, 4, 0);
    sa_err e;
    luaL_argcheck(L, ttl >= 0, 4, "ttl must not be negative");
    return push_ok(L, sa_redis_set(r, key, n, val, len, (long long)ttl, &e), &e);
}

/* r:delete(key) -> true | nil, kind, msg, code */
static int l_redis_delete(lua_State *L)
{
    sa_redis *r = check_redis(L, 1);
    size_t n;
    const char *key = luaL_checklstring(L, 2, &n);
    sa_err e;
    return push_ok(L, sa_redis_del(r, key, n, &e), &e);
}

/* r:lock(key, ttl_ms, wait_seconds) -> owner | nil, kind, msg, code */
static int l_redis_lock(lua_State *L)
{
    sa_redis *r = check_redis(L, 1);
    size_t n;
    const char *key = luaL_checklstring(L, 2, &n);
    lua_Integer ttl = luaL_checkinteger(L, 3);
    long wait = check_timeout_ms(L, 4);
    char owner[SA_REDIS_OWNER_LEN + 1];
    sa_err e;
    luaL_argcheck(L, ttl > 0, 3, "ttl must be positive");
    if (sa_redis_lock(r, key, n, (long long)ttl, wait, owner, &e) != 0)
        return push_err(L, &e);
    lua_pushstring(L, owner);
    return 1;
}

/* r:unlock(key, owner) -> true (released) | false (not ours) | nil, kind, msg, code */
static int l_redis_unlock(lua_State *L)
{
    sa_redis *r = check_redis(L, 1);
    size_t n, olen;
    const char *key = luaL_checklstring(L, 2, &n);
    const char *owner = luaL_checklstring(L, 3, &olen);
    sa_err e;
    int rc = sa_redis_unlock(r, key, n, owner, olen, &e);
    if (rc < 0)
        return push_err(L, &e);
    lua_pushboolean(L, rc);
    return 1;
}

static int l_redis_close(lua_State *L)
{
    lredis *lr = luaL_checkudata(L, 1, REDIS_MT);
    sa_redis_free(lr->r);
    lr->r = NULL;
    return 0;
}

static int l_redis_tostring(lua_State *L)
{
    lredis *lr = luaL_checkudata(L, 1, REDIS_MT);
    lua_pushstring(L, lr->r ? "smartauth.redis (open)" : "smartauth.redis (closed)");
    return 1;
}

static const luaL_Reg fstore_methods[] = {
    { "get", l_fstore_get },
    { "set", l_fstore_set },
    { "delete", l_fstore_delete },
    { "lock", l_fstore_lock },
    { "encrypted", l_fstore_encrypted },
    { "close", l_fstore_close },
    { NULL, NULL }
};

static const luaL_Reg flock_methods[] = {
    { "unlock", l_flock_unlock },
    { NULL, NULL }
};

static const luaL_Reg redis_methods[] = {
    { "get", l_redis_get },
    { "set", l_redis_set },
    { "delete", l_redis_delete },
    { "lock", l_redis_lock },
    { "unlock", l_redis_unlock },
    { "close", l_redis_close },
    { NULL, NULL }
};

/* One line in luaopen: the store classes. */
static void store_classes(lua_State *L)
{
    new_class(L, FSTORE_MT, fstore_methods, l_fstore_close, l_fstore_tostring);
    new_class(L, FLOCK_MT, flock_methods, l_flock_unlock, l_flock_tostring);
    new_class(L, REDIS_MT, redis_methods, l_redis_close, l_redis_tostring);
}

/* Entries for core_funcs[]. */
#define STORE_CORE_FUNCS                             \
    { "fstore_open", l_fstore_open },                \
    { "redis_open", l_redis_open },

/* ---- end store */

/* ------------------------------------------------------------------ open */

static const luaL_Reg engine_methods[] = {
    { "request", l_engine_request },
    { "start", l_engine_start },
    { "step", l_engine_step },
    { "next_done", l_engine_next_done },
    { "timeout", l_engine_timeout },
    { "spin", l_engine_spin },
    { "running", l_engine_running },
    { "fds", l_engine_fds },
    { "close", l_engine_close },
    { NULL, NULL }
};

static const luaL_Reg request_methods[] = {
    { "done", l_request_done },
    { "result", l_request_result },
    { "close", l_request_close },
    { NULL, NULL }
};

static const luaL_Reg core_funcs[] = {
    { "engine", l_engine_new },
    { "monotonic", l_monotonic },
    { "info", l_info },
    { "random", l_random },
    { "b64url_encode", l_b64url_encode },
    { "b64url_decode", l_b64url_decode },
    { "jws_parse", l_jws_parse },
    { "b64_encode", l_b64_encode },
    { "b64_decode", l_b64_decode },
    { "sha2", l_sha2 },
    { "hmac", l_hmac },
    { "pkce_verifier", l_pkce_verifier },
    { "pkce_challenge", l_pkce_challenge },
    { "ct_equal", l_ct_equal },
    { "form_escape", l_form_escape },
    { "form_encode", l_form_encode },
    { "form_decode", l_form_decode },
    { "basic_auth", l_basic_auth },
    JWS_CORE_FUNCS
    STORE_CORE_FUNCS
    { NULL, NULL }
};

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                      lua_CFunction close, lua_CFunction tostring)
{
    luaL_newmetatable(L, name);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
}

SA_EXPORT int luaopen_smartauth_core(lua_State *L)
{
    sa_err e;
    if (sa_http_global_init(&e) != 0)
        return luaL_error(L, "smartauth.core: %s", e.msg);
    new_class(L, ENGINE_MT, engine_methods, l_engine_close, l_engine_tostring);
    new_class(L, REQUEST_MT, request_methods, l_request_close, l_request_tostring);
    luaL_newmetatable(L, BOX_MT);
    lua_pushcfunction(L, l_box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    new_class(L, KEY_MT, key_methods, l_key_close, l_key_tostring);
    store_classes(L);
    luaL_newlib(L, core_funcs);
    sa_lconfig_open(L);
    lua_pushliteral(L, "0.1.0");
    lua_setfield(L, -2, "_VERSION");
    return 1;
}
