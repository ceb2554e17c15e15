/* Helpers shared by the binding files; see lutil.h. */
#include "lutil.h"

#include <string.h>

#define BOX_MT "smartauth.buf"

int lu_push_err(lua_State *L, const sa_err *e)
{
    lua_pushnil(L);
    lua_pushstring(L, sa_err_kind_name(e->kind));
    lua_pushstring(L, e->msg);
    lua_pushinteger(L, (lua_Integer)e->code);
    return 4;
}

int lu_push_fail(lua_State *L, int kind, const char *msg)
{
    lua_pushnil(L);
    lua_pushstring(L, sa_err_kind_name(kind));
    lua_pushstring(L, msg);
    lua_pushinteger(L, 0);
    return 4;
}

static int box_gc(lua_State *L)
{
    sa_buf_free(luaL_checkudata(L, 1, BOX_MT));
    return 0;
}

sa_buf *lu_new_box(lua_State *L)
{
    sa_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
    *b = (sa_buf)SA_BUF_INIT;
    luaL_setmetatable(L, BOX_MT);
    return b;
}

int lu_push_buf(lua_State *L, sa_buf *b)
{
    lua_pushlstring(L, b->data ? b->data : "", b->len);
    sa_buf_free(b);
    lua_remove(L, -2);
    return 1;
}

int lu_nomem(lua_State *L, sa_buf *b)
{
    sa_buf_free(b);
    return luaL_error(L, "smartauth.core: out of memory");
}

long lu_opt_ms(lua_State *L, int t, const char *k)
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

const char *lu_opt_str(lua_State *L, int t, const char *k, size_t *len)
{
    const char *s = NULL;
    if (lua_getfield(L, t, k) != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "option '%s' must be a string", k);
        s = lua_tolstring(L, -1, len);
    }
    return s;
}

int lu_opt_int(lua_State *L, int t, const char *k, int dflt, int lo, int hi)
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

const char *lu_check_cstr(lua_State *L, int i, const char *what, int kind, sa_err *e)
{
    size_t len;
    const char *s = luaL_checklstring(L, i, &len);
    if (strlen(s) != len) {
        sa_err_set(e, kind, 0, "%s contains a NUL byte", what);
        return NULL;
    }
    return s;
}

int lu_push_get(lua_State *L, int rc, sa_buf *b, const sa_err *e)
{
    if (rc <= 0) {
        sa_buf_free(b);
        lua_pop(L, 1);
        if (rc < 0)
            return lu_push_err(L, e);
        lua_pushnil(L);
        return 1;
    }
    return lu_push_buf(L, b);
}

int lu_push_ok(lua_State *L, int rc, const sa_err *e)
{
    if (rc < 0)
        return lu_push_err(L, e);
    lua_pushboolean(L, 1);
    return 1;
}


void lu_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
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

void lu_open(lua_State *L)
{
    /* The first module loaded registers it; the others find it (the same
     * code in each module, so whichever __gc runs frees the same way). */
    if (luaL_newmetatable(L, BOX_MT)) {
        lua_pushcfunction(L, box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
}
