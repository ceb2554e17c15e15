/* Binding: AES-256-GCM sealing (aead.c) for Lua: a key object made once
 * from a secret (derived and kept in C, wiped on close), sealing and
 * opening bytes with associated data. The stores use aead.c from C; this
 * is for what a program seals itself (a login cookie's state). */
#include <stdlib.h>

#include "aead.h"
#include "lutil.h"

#define AEAD_MT "smartauth.aead_key"

typedef struct {
    sa_aead_key *key; /* NULL once closed */
} laead;

/* core.aead_key(secret) -> key | nil, kind, msg, code (a secret shorter
 * than SA_AEAD_MIN_SECRET bytes). */
static int l_aead_key(lua_State *L)
{
    size_t n;
    const char *secret = luaL_checklstring(L, 1, &n);
    laead *a = lua_newuserdatauv(L, sizeof *a, 0);
    sa_err e;
    a->key = NULL;
    luaL_setmetatable(L, AEAD_MT);
    a->key = malloc(sizeof *a->key);
    if (!a->key)
        return luaL_error(L, "out of memory");
    if (sa_aead_key_derive(a->key, secret, n, &e) != 0) {
        sa_aead_key_wipe(a->key);
        free(a->key);
        a->key = NULL;
        return lu_push_err(L, &e);
    }
    return 1;
}

static const sa_aead_key *check_key(lua_State *L)
{
    laead *a = luaL_checkudata(L, 1, AEAD_MT);
    if (!a->key)
        luaL_error(L, "attempt to use a closed key");
    return a->key;
}

/* key:seal(aad, plaintext) -> sealed bytes */
static int l_aead_seal(lua_State *L)
{
    const sa_aead_key *k = check_key(L);
    size_t alen, plen;
    const char *aad = luaL_checklstring(L, 2, &alen);
    const char *pt = luaL_checklstring(L, 3, &plen);
    sa_buf *b = lu_new_box(L);
    sa_err e;
    if (sa_aead_seal(k, aad, alen, pt, plen, b, &e) != 0)
        return lu_push_err(L, &e);
    return lu_push_buf(L, b);
}

/* key:open(aad, sealed) -> plaintext | nil, kind, msg, code (kind
 * validation: not sealed, another key, or tampered) */
static int l_aead_open(lua_State *L)
{
    const sa_aead_key *k = check_key(L);
    size_t alen, mlen;
    const char *aad = luaL_checklstring(L, 2, &alen);
    const char *msg = luaL_checklstring(L, 3, &mlen);
    sa_buf *b = lu_new_box(L);
    sa_err e;
    if (sa_aead_open(k, aad, alen, msg, mlen, b, &e) != 0)
        return lu_push_err(L, &e);
    return lu_push_buf(L, b);
}

static int l_aead_close(lua_State *L)
{
    laead *a = luaL_checkudata(L, 1, AEAD_MT);
    if (a->key) {
        sa_aead_key_wipe(a->key);
        free(a->key);
        a->key = NULL;
    }
    return 0;
}

static int l_aead_tostring(lua_State *L)
{
    laead *a = luaL_checkudata(L, 1, AEAD_MT);
    lua_pushstring(L, a->key ? "smartauth.aead_key" : "smartauth.aead_key (closed)");
    return 1;
}

static const luaL_Reg aead_methods[] = {
    { "seal", l_aead_seal },
    { "open", l_aead_open },
    { "close", l_aead_close },
    { NULL, NULL }
};

static const luaL_Reg funcs[] = {
    { "aead_key", l_aead_key },
    { NULL, NULL }
};

void laead_open(lua_State *L)
{
    lu_new_class(L, AEAD_MT, aead_methods, l_aead_close, l_aead_tostring);
    luaL_setfuncs(L, funcs, 0);
}
