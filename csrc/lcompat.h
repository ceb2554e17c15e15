/* The Lua C API of 5.4 on every runtime smartauth builds for (5.1, 5.2,
 * 5.3, 5.4, LuaJIT 2.1): the binding files include this instead of lua.h.
 * compat-5.3 (Debian's lua-compat53-dev; the Makefile and the rockspec add
 * its directory after the runtime's own) brings 5.1 and 5.2 up to 5.3;
 * the few 5.4 calls the bindings use are below. On 5.4 this is lua.h and
 * lauxlib.h and nothing else. */
#ifndef SA_LCOMPAT_H
#define SA_LCOMPAT_H

#include <lauxlib.h>
#include <lua.h>

#if LUA_VERSION_NUM < 503
/* compat-5.3's own code is not written for -Wconversion -Wshadow. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <compat-5.3.h>
#pragma GCC diagnostic pop
#endif

#if LUA_VERSION_NUM < 504
/* 5.4 gives a userdata n user values; 5.1-5.3 one (5.1: a table, its
 * environment; 5.2: a table or nil). Here the n values live in a table
 * held as that one value, created with the userdata. */
static inline void *sa_newuserdatauv(lua_State *L, size_t size, int nuv)
{
    void *p = lua_newuserdata(L, size);
    if (nuv > 0) {
        lua_createtable(L, nuv, 0);
        lua_setuservalue(L, -2);
    }
    return p;
}

/* Pushes user value n (nil if none) and returns its type. */
static inline int sa_getiuservalue(lua_State *L, int idx, int n)
{
    lua_getuservalue(L, idx);
    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_pushnil(L);
        return LUA_TNONE;
    }
    lua_rawgeti(L, -1, n);
    lua_remove(L, -2);
    return lua_type(L, -1);
}

/* Pops a value into user value n; 0 if the userdata has none. */
static inline int sa_setiuservalue(lua_State *L, int idx, int n)
{
    idx = lua_absindex(L, idx);
    lua_getuservalue(L, idx);
    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 2);
        return 0;
    }
    lua_insert(L, -2);
    lua_rawseti(L, -2, n);
    lua_pop(L, 1);
    return 1;
}

/* luaL_checkinteger of 5.1 and 5.2 truncates 1.5 to 1: refuse what 5.3
 * refuses (a fraction, NaN, infinities, anything out of range). */
static inline lua_Integer sa_checkinteger(lua_State *L, int arg)
{
    lua_Number n = luaL_checknumber(L, arg);
    if (!(n >= -9223372036854775808.0 && n < 9223372036854775808.0)
        || n != (lua_Number)(lua_Integer)n)
        luaL_argerror(L, arg, "number has no integer representation");
    return (lua_Integer)n;
}

static inline lua_Integer sa_optinteger(lua_State *L, int arg, lua_Integer def)
{
    return lua_isnoneornil(L, arg) ? def : sa_checkinteger(L, arg);
}

#undef luaL_checkinteger
#undef luaL_optinteger
#define luaL_checkinteger sa_checkinteger
#define luaL_optinteger sa_optinteger
#define lua_newuserdatauv sa_newuserdatauv
#define lua_getiuservalue sa_getiuservalue
#define lua_setiuservalue sa_setiuservalue
#endif

#endif
