/* Binding: bytes and crypto primitives (crypto.c, form.c): random bytes,
 * base64 and base64url, SHA-2, HMAC, PKCE, constant-time compare, form
 * encoding and HTTP Basic credentials. */
#include <string.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "form.h"
#include "lutil.h"

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
    sa_buf *b = lu_new_box(L);
    if (sa_b64_encode(b, (const unsigned char *)s, n, url) != 0)
        return lu_nomem(L, b);
    return lu_push_buf(L, b);
}

/* Decodes s[0..n) and pushes it; on failure pushes nothing and leaves the
 * message in e. Also used by lkey.c for the parts of a compact JWS. */
int lcrypto_push_b64(lua_State *L, const char *s, size_t n, int url, sa_err *e)
{
    sa_buf *b = lu_new_box(L);
    if (sa_b64_decode(b, s, n, url, e) != 0) {
        sa_buf_free(b);
        lua_pop(L, 1);
        return -1;
    }
    lu_push_buf(L, b);
    return 0;
}

static int b64_dec(lua_State *L, int url)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    sa_err e;
    if (lcrypto_push_b64(L, s, n, url, &e) != 0)
        return lu_push_err(L, &e);
    return 1;
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
    sa_buf *b = lu_new_box(L);
    sa_err e;
    if (sa_pkce_verifier(b, &e) != 0) {
        sa_buf_free(b);
        return luaL_error(L, "%s", e.msg);
    }
    return lu_push_buf(L, b);
}

static int l_pkce_challenge(lua_State *L)
{
    size_t n;
    const char *v = luaL_checklstring(L, 1, &n);
    sa_buf *b = lu_new_box(L);
    sa_err e;
    if (sa_pkce_challenge(b, v, n, &e) != 0) {
        sa_buf_free(b);
        return luaL_argerror(L, 1, e.msg);
    }
    return lu_push_buf(L, b);
}

static int l_ct_equal(lua_State *L)
{
    size_t an, bn;
    const char *a = luaL_checklstring(L, 1, &an);
    const char *b = luaL_checklstring(L, 2, &bn);
    lua_pushboolean(L, sa_ct_equal(a, an, b, bn));
    return 1;
}

static int l_form_escape(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    sa_buf *b = lu_new_box(L);
    if (sa_form_escape(b, s, n) != 0)
        return lu_nomem(L, b);
    return lu_push_buf(L, b);
}

/* vchars(s) -> true when every byte of s is printable ASCII without
 * space (0x21-0x7E) */
static int l_vchars(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_pushboolean(L, sa_vchars(s, n));
    return 1;
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
    b = lu_new_box(L); /* index 2: lua_geti may run metamethods that raise */
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
            return lu_nomem(L, b);
        lua_pop(L, 2);
    }
    return lu_push_buf(L, b);
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

/* form_decode(s) -> table (last value of a repeated name wins)
 * | nil, kind, msg, code */
static int l_form_decode(lua_State *L)
{
    size_t n, pos = 0;
    const char *s = luaL_checklstring(L, 1, &n);
    sa_buf *b = lu_new_box(L);
    sa_err e;
    sa_err_set(&e, SA_ENOMEM, 0, "out of memory");
    if (sa_form_parse(s, n, form_pair_cb, b, &e) != 0) {
        if (e.kind == SA_ENOMEM)
            return lu_nomem(L, b);
        sa_buf_free(b);
        return lu_push_err(L, &e);
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
    sa_buf *b = lu_new_box(L);
    if (sa_form_basic_auth(b, id, il, secret, sl) != 0)
        return lu_nomem(L, b);
    return lu_push_buf(L, b);
}


static const luaL_Reg funcs[] = {
    { "random", l_random },
    { "b64url_encode", l_b64url_encode },
    { "b64url_decode", l_b64url_decode },
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
    { "vchars", l_vchars },
    { NULL, NULL }
};

void lcrypto_open(lua_State *L)
{
    luaL_setfuncs(L, funcs, 0);
}
