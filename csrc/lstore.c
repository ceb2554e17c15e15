/* Binding: the file store (store_file.c): smartauth.fstore and its lock,
 * smartauth.flock. The Lua layer (lua/smartauth/store.lua) encodes entries
 * and maps errors. */
#include "lutil.h"
#include "store_file.h"

#define FSTORE_MT "smartauth.fstore"
#define FLOCK_MT "smartauth.flock"
#define FJOB_MT "smartauth.fstore_job"

typedef struct {
    sa_fstore *fs;
} lfstore;

typedef struct {
    int fd;
} lflock;

typedef struct {
    sa_fstore_job *job;         /* NULL once finished */
    int rc;
    sa_err err;
} lfjob;

/* core.fstore_open(dir [, secret]) -> fstore | nil, kind, msg, code */
static int l_fstore_open(lua_State *L)
{
    sa_err e;
    size_t klen = 0;
    const char *dir = lu_check_cstr(L, 1, "store directory", SA_EARG, &e);
    const char *key = luaL_optlstring(L, 2, NULL, &klen);
    lfstore *lf;
    if (!dir)
        return lu_push_err(L, &e);
    lf = lua_newuserdatauv(L, sizeof *lf, 0);
    lf->fs = NULL;
    luaL_setmetatable(L, FSTORE_MT);
    lf->fs = sa_fstore_new(dir, key, klen, &e);
    if (!lf->fs)
        return lu_push_err(L, &e);
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
    sa_buf *b = lu_new_box(L);
    sa_err e;
    int rc = sa_fstore_get(fs, name, n, b, &e);
    return lu_push_get(L, rc, b, &e);
}

/* fs:set(name, bytes) -> true | nil, kind, msg, code */
static int l_fstore_set(lua_State *L)
{
    sa_fstore *fs = check_fstore(L, 1);
    size_t n, len;
    const char *name = luaL_checklstring(L, 2, &n);
    const char *data = luaL_checklstring(L, 3, &len);
    sa_err e;
    return lu_push_ok(L, sa_fstore_set(fs, name, n, data, len, &e), &e);
}

/* fs:set_start(name, bytes) -> job | nil, kind, msg, code: fs:set on a
 * thread of its own (store_file.c); a task polls job:done() while it
 * yields, then job:result(). */
static int l_fstore_set_start(lua_State *L)
{
    sa_fstore *fs = check_fstore(L, 1);
    size_t n, len;
    const char *name = luaL_checklstring(L, 2, &n);
    const char *data = luaL_checklstring(L, 3, &len);
    lfjob *lj = lua_newuserdatauv(L, sizeof *lj, 0);
    lj->job = NULL;
    lj->rc = 0;
    luaL_setmetatable(L, FJOB_MT);
    lj->job = sa_fstore_set_start(fs, name, n, data, len, &lj->err);
    if (!lj->job)
        return lu_push_err(L, &lj->err);
    return 1;
}

/* Waits for the write if it still runs (also __gc and __close: no thread
 * outlives its job). */
static lfjob *fjob_finish(lua_State *L)
{
    lfjob *lj = luaL_checkudata(L, 1, FJOB_MT);
    if (lj->job) {
        lj->rc = sa_fstore_job_finish(lj->job, &lj->err);
        lj->job = NULL;
    }
    return lj;
}

static int l_fjob_gc(lua_State *L)
{
    fjob_finish(L);
    return 0;
}

/* job:done() -> boolean, without waiting */
static int l_fjob_done(lua_State *L)
{
    lfjob *lj = luaL_checkudata(L, 1, FJOB_MT);
    lua_pushboolean(L, !lj->job || sa_fstore_job_done(lj->job));
    return 1;
}

/* job:result() -> true | nil, kind, msg, code; waits if not done */
static int l_fjob_result(lua_State *L)
{
    lfjob *lj = fjob_finish(L);
    return lu_push_ok(L, lj->rc, &lj->err);
}

static int l_fjob_tostring(lua_State *L)
{
    lfjob *lj = luaL_checkudata(L, 1, FJOB_MT);
    lua_pushstring(L, lj->job ? "smartauth.fstore_job (running)" : "smartauth.fstore_job (finished)");
    return 1;
}

/* fs:delete(name) -> true | nil, kind, msg, code */
static int l_fstore_delete(lua_State *L)
{
    sa_fstore *fs = check_fstore(L, 1);
    size_t n;
    const char *name = luaL_checklstring(L, 2, &n);
    sa_err e;
    return lu_push_ok(L, sa_fstore_delete(fs, name, n, &e), &e);
}

/* fs:try_lock(name) -> lock | false (held by someone else) | nil, kind, msg,
 * code. One try: lua/smartauth/store/lock.lua waits between tries. The lock
 * is released by lock:unlock(), by collection, or by the process ending. */
static int l_fstore_try_lock(lua_State *L)
{
    sa_fstore *fs = check_fstore(L, 1);
    size_t n;
    const char *name = luaL_checklstring(L, 2, &n);
    sa_err e;
    int fd, rc;
    lflock *lk = lua_newuserdatauv(L, sizeof *lk, 0);
    lk->fd = -1;
    luaL_setmetatable(L, FLOCK_MT);
    rc = sa_fstore_try_lock(fs, name, n, &fd, &e);
    if (rc < 0)
        return lu_push_err(L, &e);
    if (rc == 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
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

static const luaL_Reg fstore_methods[] = {
    { "get", l_fstore_get },
    { "set", l_fstore_set },
    { "set_start", l_fstore_set_start },
    { "delete", l_fstore_delete },
    { "try_lock", l_fstore_try_lock },
    { "encrypted", l_fstore_encrypted },
    { "close", l_fstore_close },
    { NULL, NULL }
};

static const luaL_Reg flock_methods[] = {
    { "unlock", l_flock_unlock },
    { NULL, NULL }
};

static const luaL_Reg fjob_methods[] = {
    { "done", l_fjob_done },
    { "result", l_fjob_result },
    { NULL, NULL }
};

static const luaL_Reg funcs[] = {
    { "fstore_open", l_fstore_open },
    { NULL, NULL }
};

void lstore_open(lua_State *L)
{
    lu_new_class(L, FSTORE_MT, fstore_methods, l_fstore_close, l_fstore_tostring);
    lu_new_class(L, FLOCK_MT, flock_methods, l_flock_unlock, l_flock_tostring);
    lu_new_class(L, FJOB_MT, fjob_methods, l_fjob_gc, l_fjob_tostring);
    luaL_setfuncs(L, funcs, 0);
}
