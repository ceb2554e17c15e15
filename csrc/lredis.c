/* Binding: smartauth.core_redis, the Redis store (store_redis.c) as
 * smartauth.redis. Its own module so that only a program using a Redis
 * store maps hiredis. */
#include <string.h>

#include "lutil.h"
#include "store_redis.h"

#define REDIS_MT "smartauth.redis"

typedef struct {
    sa_redis *r;
} lredis;

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
    o.host = lu_opt_str(L, 1, "host", &hlen);
    if (o.host && strlen(o.host) != hlen)
        luaL_error(L, "option 'host' contains a NUL byte");
    o.port = lu_opt_int(L, 1, "port", 6379, 1, 65535);
    o.db = lu_opt_int(L, 1, "db", 0, 0, 1 << 20);
    o.username = lu_opt_str(L, 1, "username", &o.username_len);
    o.password = lu_opt_str(L, 1, "password", &o.password_len);
    o.secret = lu_opt_str(L, 1, "key", &o.secret_len);
    o.connect_timeout_ms = lu_opt_ms(L, 1, "connect_timeout");
    o.timeout_ms = lu_opt_ms(L, 1, "timeout");
    lr = lua_newuserdatauv(L, sizeof *lr, 0);
    lr->r = NULL;
    luaL_setmetatable(L, REDIS_MT);
    lr->r = sa_redis_new(&o, &e);
    if (!lr->r)
        return lu_push_err(L, &e);
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
    sa_buf *b = lu_new_box(L);
    sa_err e;
    int rc = sa_redis_get(r, key, n, b, &e);
    return lu_push_get(L, rc, b, &e);
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
    return lu_push_ok(L, sa_redis_set(r, key, n, val, len, (long long)ttl, &e), &e);
}

/* r:delete(key) -> true | nil, kind, msg, code */
static int l_redis_delete(lua_State *L)
{
    sa_redis *r = check_redis(L, 1);
    size_t n;
    const char *key = luaL_checklstring(L, 2, &n);
    sa_err e;
    return lu_push_ok(L, sa_redis_del(r, key, n, &e), &e);
}

/* r:try_lock(key, ttl_ms) -> owner | false (held by someone else) | nil,
 * kind, msg, code. One try: lua/smartauth/store/lock.lua waits between
 * tries. */
static int l_redis_try_lock(lua_State *L)
{
    sa_redis *r = check_redis(L, 1);
    size_t n;
    const char *key = luaL_checklstring(L, 2, &n);
    lua_Integer ttl = luaL_checkinteger(L, 3);
    char owner[SA_REDIS_OWNER_LEN + 1];
    sa_err e;
    int rc;
    luaL_argcheck(L, ttl > 0, 3, "ttl must be positive");
    rc = sa_redis_try_lock(r, key, n, (long long)ttl, owner, &e);
    if (rc < 0)
        return lu_push_err(L, &e);
    if (rc == 0)
        lua_pushboolean(L, 0);
    else
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
        return lu_push_err(L, &e);
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

static const luaL_Reg redis_methods[] = {
    { "get", l_redis_get },
    { "set", l_redis_set },
    { "delete", l_redis_delete },
    { "try_lock", l_redis_try_lock },
    { "unlock", l_redis_unlock },
    { "close", l_redis_close },
    { NULL, NULL }
};

static const luaL_Reg funcs[] = {
    { "redis_open", l_redis_open },
    { NULL, NULL }
};

/* The module has one binding file, so its luaopen is here. */
SA_EXPORT int luaopen_smartauth_core_redis(lua_State *L)
{
    lu_open(L);
    lu_new_class(L, REDIS_MT, redis_methods, l_redis_close, l_redis_tostring);
    luaL_newlib(L, funcs);
    return 1;
}
