/* Config files run in a Lua state of their own, so a hostile or broken
 * config cannot hang or exhaust the process that loads it:
 *
 *   memory  every allocation of the state goes through cfg_alloc, which
 *           refuses to go past a cap (16 MiB by default);
 *   time    a count hook reads the monotonic clock (clock.c) every
 *           CFG_HOOK_COUNT VM instructions and stops the chunk at its
 *           deadline (1 s by default);
 *   C calls a hook only runs between instructions, so every C function the
 *           chunk can reach must itself be bounded. The libraries are cut to
 *           a list (base: assert error ipairs next pairs select tonumber
 *           tostring type; string; table; math): nothing that loads code,
 *           touches files, catches errors (pcall would let a chunk swallow
 *           its own deadline), sets metatables (a __gc finaliser runs with
 *           hooks off) or runs a loop that neither allocates nor returns
 *           (table.move over 2^50 empty slots). What is left costs at most
 *           time proportional to the memory cap per call (so one VM
 *           instruction, a concatenation or a string comparison included, is
 *           bounded too), except these, which are ours: sort (cfg_sort
 *           below: a C comparison such as string.rep would run unhooked, and
 *           one long string referenced 10^5 times costs hours to sort: ours
 *           takes Lua comparisons only, or charges its own by string length),
 *           and rep, find, match, gmatch and gsub (lsandbox_str.c), which
 *           charge their steps to sa_cfg_charge below.
 *
 * The chunk's result then comes back as plain data only: tables without
 * metatables, strings, finite numbers and booleans, keys strings or numbers,
 * no cycles, at most CFG_MAX_DEPTH deep and CFG_MAX_VALUES entries. It is
 * checked inside the sandbox (protected) before anything is created in the
 * caller, and the copy reads the sandbox without allocating in it.
 *
 * The sandbox state is owned by a userdata in the caller's state, so an
 * error there (out of memory while copying) still closes it (__gc).
 *
 * Builds against Lua 5.1 to 5.4 and LuaJIT: the few API differences are the
 * #if LUA_VERSION_NUM blocks below. */
#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>

#include "lcompat.h"
#include "sa_err.h"
#include <lualib.h>

#include "clock.h"
#include "lconfig.h"
#include "lsandbox_str.h"
#include "lutil.h"

#define CFG_MT "smartauth.config_sandbox"
#define CFG_MIB ((size_t)1 << 20)
#define CFG_DEFAULT_CAP ((lua_Integer)16 << 20)
#define CFG_MIN_CAP ((lua_Integer)64 << 10)
#define CFG_MAX_CAP ((lua_Integer)1 << 30)
#define CFG_HOOK_COUNT 64    /* VM instructions between clock reads */
#define CFG_STEPS 4096       /* matcher steps between clock reads */
#define CFG_MAX_DEPTH 16     /* nesting of returned tables */
#define CFG_MAX_VALUES 65536 /* key/value pairs returned, in all tables */
#define CFG_PATH_MAX 160
#define CFG_MSG_MAX 400
#define uchar(c) ((unsigned char)(c))

struct cfg_box {
    lua_State *S;            /* the sandbox, NULL once closed */
    size_t used, cap;        /* bytes the sandbox holds, and its limit */
    int load_oom;            /* the chunk could not be compiled for lack of memory */
    int timed_out;
    size_t steps;            /* matcher steps left before the next clock read */
    double deadline;         /* sa_clock_monotonic() seconds */
    double timeout;
    const char *text;        /* the chunk: a string kept alive by the caller's stack */
    size_t len;
    const char *name;
};

/* ------------------------------------------------------------ limits */

static void *cfg_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    cfg_box *b = (cfg_box *)ud;
    size_t old = ptr ? osize : 0; /* without ptr, osize is a type tag */
    void *np;
    if (nsize == 0) {
        free(ptr);
        b->used -= old;
        return NULL;
    }
    if (nsize > old && nsize - old > b->cap - b->used)
        return NULL;
    np = realloc(ptr, nsize);
    if (np == NULL)
        return NULL;
    b->used = b->used - old + nsize;
    return np;
}

cfg_box *sa_cfg_box_of(lua_State *S)
{
    void *ud = NULL;
    (void)lua_getallocf(S, &ud);
    return (cfg_box *)ud;
}

static int cfg_expired(const cfg_box *b)
{
    return sa_clock_monotonic() >= b->deadline;
}

static void cfg_check_time(lua_State *S, cfg_box *b)
{
    if (b->timed_out || cfg_expired(b)) {
        b->timed_out = 1;
        luaL_error(S, "the config runs too long");
    }
}

static void cfg_hook(lua_State *S, lua_Debug *ar)
{
    (void)ar;
    cfg_check_time(S, sa_cfg_box_of(S));
}

size_t sa_cfg_cap(const cfg_box *b)
{
    return b->cap;
}

void sa_cfg_charge(lua_State *S, cfg_box *b, size_t n)
{
    if (n < b->steps) {
        b->steps -= n;
        return;
    }
    b->steps = CFG_STEPS;
    cfg_check_time(S, b);
}

/* ------------------------------------------------------------ table.sort */

/* A C function called from C runs no instruction, so the hook never sees
 * it: table.sort takes a Lua comparison (hooked) or this one, which charges
 * each comparison by the length of the strings it compares (sorting many
 * references to one long string would otherwise run for hours). */
static int cfg_less(lua_State *S)
{
    size_t la = 0, lb = 0;
    if (lua_type(S, 1) == LUA_TSTRING && lua_type(S, 2) == LUA_TSTRING) {
        (void)lua_tolstring(S, 1, &la);
        (void)lua_tolstring(S, 2, &lb);
    }
    sa_cfg_charge(S, sa_cfg_box_of(S), 1 + (la < lb ? la : lb));
#if LUA_VERSION_NUM >= 502
    lua_pushboolean(S, lua_compare(S, 1, 2, LUA_OPLT));
#else
    lua_pushboolean(S, lua_lessthan(S, 1, 2));
#endif
    return 1;
}

static int cfg_sort(lua_State *S)
{
    luaL_checktype(S, 1, LUA_TTABLE);
    if (lua_isnoneornil(S, 2)) {
        lua_settop(S, 1);
        lua_pushcfunction(S, cfg_less);
    } else {
        luaL_checktype(S, 2, LUA_TFUNCTION);
        luaL_argcheck(S, !lua_iscfunction(S, 2), 2, "a config sorts with a Lua function");
        lua_settop(S, 2);
    }
    lua_pushvalue(S, lua_upvalueindex(1)); /* Lua's own sort */
    lua_insert(S, 1);
    lua_call(S, 2, 0);
    return 0;
}

/* ------------------------------------------------------------ the sandbox */

static const char *const BASE_KEEP[] = { "assert", "error", "ipairs", "next", "pairs", "select", "tonumber",
                                         "tostring", "type", "string", "table", "math", NULL };
static const char *const STRING_KEEP[] = { "byte", "char", "format", "len", "lower", "reverse", "sub", "upper",
                                           NULL };
static const char *const TABLE_KEEP[] = { "concat", "insert", "remove", "sort", "unpack", NULL };

static void cfg_openlib(lua_State *S, const char *name, lua_CFunction f)
{
#if LUA_VERSION_NUM >= 502
    luaL_requiref(S, name, f, 1);
    lua_pop(S, 1);
#else
    lua_pushcfunction(S, f);
    lua_pushstring(S, name);
    lua_call(S, 1, 0);
#endif
}

static int cfg_listed(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (strcmp(*list, name) == 0)
            return 1;
    return 0;
}

/* Removes every field of the table at idx whose name is not in keep. */
static void cfg_keep_only(lua_State *S, int idx, const char *const *keep)
{
    lua_pushnil(S);
    while (lua_next(S, idx)) {
        lua_pop(S, 1);
        if (lua_type(S, -1) != LUA_TSTRING || !cfg_listed(keep, lua_tostring(S, -1))) {
            lua_pushvalue(S, -1);
            lua_pushnil(S);
            lua_rawset(S, idx); /* clearing a field during lua_next is allowed */
        }
    }
}

static void cfg_pushglobals(lua_State *S)
{
#if LUA_VERSION_NUM >= 502
    lua_pushglobaltable(S);
#else
    lua_pushvalue(S, LUA_GLOBALSINDEX);
#endif
}

static void cfg_libraries(lua_State *S)
{
    int g;
    cfg_openlib(S, "_G", luaopen_base);
    cfg_openlib(S, LUA_STRLIBNAME, luaopen_string);
    cfg_openlib(S, LUA_TABLIBNAME, luaopen_table);
    cfg_openlib(S, LUA_MATHLIBNAME, luaopen_math);
    cfg_pushglobals(S);
    g = lua_gettop(S);
    cfg_keep_only(S, g, BASE_KEEP);
    /* string is also the __index of every string: change it in place */
    lua_getfield(S, g, LUA_STRLIBNAME);
    cfg_keep_only(S, g + 1, STRING_KEEP);
    sa_sandbox_str_open(S, g + 1);
    lua_getfield(S, g, LUA_TABLIBNAME);
    cfg_keep_only(S, g + 2, TABLE_KEEP);
    lua_getfield(S, g + 2, "sort");
    lua_pushcclosure(S, cfg_sort, 1);
    lua_setfield(S, g + 2, "sort");
    lua_settop(S, g - 1);
}

/* ---------------------------------------------- checking the result */

typedef struct cfg_walk {
    size_t values;
    int depth;
    const void *open[CFG_MAX_DEPTH + 1]; /* the tables being walked: a cycle returns to one */
    char path[CFG_PATH_MAX];
    size_t pathlen;
} cfg_walk;

static const char *walk_where(cfg_walk *w)
{
    return w->pathlen ? w->path : "the top level";
}

/* Appends the key at idx to the path (shortened when too long). */
static void walk_push_key(lua_State *S, cfg_walk *w, int idx)
{
    char piece[64];
    size_t n, room;
    if (lua_type(S, idx) == LUA_TSTRING) {
        size_t len, i, ident = 1;
        const char *k = lua_tolstring(S, idx, &len);
        for (i = 0; i < len; i++)
            if (!(isalnum(uchar(k[i])) || k[i] == '_'))
                ident = 0;
        if (len == 0 || isdigit(uchar(k[0])))
            ident = 0;
        if (ident && len < 40) {
            (void)snprintf(piece, sizeof piece, "%s%s", w->pathlen ? "." : "", k);
        } else {
            char safe[41];
            for (i = 0; i < len && i < 40; i++)
                safe[i] = isprint(uchar(k[i])) && k[i] != '"' ? k[i] : '?';
            safe[i] = '\0';
            (void)snprintf(piece, sizeof piece, "[\"%s%s\"]", safe, len > 40 ? "..." : "");
        }
    } else {
        (void)snprintf(piece, sizeof piece, "[%.14g]", (double)lua_tonumber(S, idx));
    }
    n = strlen(piece);
    room = sizeof w->path - 1 - w->pathlen;
    if (n > room)
        n = room;
    memcpy(w->path + w->pathlen, piece, n);
    w->pathlen += n;
    w->path[w->pathlen] = '\0';
}

static int walk_fail(lua_State *S, cfg_walk *w, const char *what)
{
    return luaL_error(S, "%s at %s (a config holds only tables, strings, finite numbers and booleans)", what,
                      walk_where(w));
}

static int cfg_finite(lua_Number x)
{
    return isfinite(x);
}

static void walk_value(lua_State *S, cfg_walk *w, int idx);

static void walk_table(lua_State *S, cfg_walk *w, int idx)
{
    const void *self = lua_topointer(S, idx);
    int i;
    for (i = 0; i < w->depth; i++)
        if (w->open[i] == self)
            walk_fail(S, w, "a cycle");
    if (w->depth >= CFG_MAX_DEPTH)
        luaL_error(S, "tables nested deeper than %d at %s", CFG_MAX_DEPTH, walk_where(w));
    if (lua_getmetatable(S, idx))
        walk_fail(S, w, "a table with a metatable");
    /* the copy walks the same tables without allocating here: room for it */
    luaL_checkstack(S, 4, "config nested too deep");
    w->open[w->depth++] = self;
    lua_pushnil(S);
    while (lua_next(S, idx)) {
        size_t saved = w->pathlen;
        int top = lua_gettop(S);
        int kt = lua_type(S, top - 1);
        if (++w->values > CFG_MAX_VALUES)
            luaL_error(S, "the config holds more than %d values", CFG_MAX_VALUES);
        if (kt == LUA_TNUMBER) {
            if (!cfg_finite(lua_tonumber(S, top - 1)))
                walk_fail(S, w, "a key that is not a finite number");
        } else if (kt != LUA_TSTRING) {
            char what[48];
            (void)snprintf(what, sizeof what, "a key that is a %s", lua_typename(S, kt));
            walk_fail(S, w, what);
        }
        walk_push_key(S, w, top - 1);
        walk_value(S, w, top);
        w->pathlen = saved;
        w->path[saved] = '\0';
        lua_pop(S, 1);
    }
    w->depth--;
}

static void walk_value(lua_State *S, cfg_walk *w, int idx)
{
    int t = lua_type(S, idx);
    switch (t) {
    case LUA_TNIL: case LUA_TBOOLEAN: case LUA_TSTRING:
        break;
    case LUA_TNUMBER:
        if (!cfg_finite(lua_tonumber(S, idx)))
            walk_fail(S, w, "a number that is not finite");
        break;
    case LUA_TTABLE:
        walk_table(S, w, idx);
        break;
    default: {
        char what[48];
        (void)snprintf(what, sizeof what, "a %s", lua_typename(S, t));
        walk_fail(S, w, what);
    }
    }
}

/* ---------------------------------------------- running the chunk */

static const char CFG_RESULT_KEY = 0; /* its address keys the result in the registry */

static int cfg_run(lua_State *S)
{
    cfg_box *b = (cfg_box *)lua_touserdata(S, 1);
    cfg_walk w;
    int status;
    lua_settop(S, 0);
    cfg_libraries(S);
    if (b->len > 0 && b->text[0] == '\033')
        return luaL_error(S, "a config must be text, not a binary chunk");
#if LUA_VERSION_NUM >= 502
    status = luaL_loadbufferx(S, b->text, b->len, b->name, "t");
#else
    status = luaL_loadbuffer(S, b->text, b->len, b->name);
#endif
    if (status != 0) {
        if (status == LUA_ERRMEM)
            b->load_oom = 1; /* lua_error below re-raises it as a plain error */
        return lua_error(S);
    }
    lua_sethook(S, cfg_hook, LUA_MASKCOUNT, CFG_HOOK_COUNT);
    lua_call(S, 0, 1);
    lua_sethook(S, NULL, 0, 0);
    /* keep the result where the caller finds it without allocating */
    lua_pushlightuserdata(S, (void *)&CFG_RESULT_KEY);
    lua_pushvalue(S, 1);
    lua_rawset(S, LUA_REGISTRYINDEX);
    memset(&w, 0, sizeof w);
    walk_value(S, &w, 1);
    /* the copy needs two slots per level; nothing allocates after this */
    luaL_checkstack(S, 2 * CFG_MAX_DEPTH + 8, "config nested too deep");
    return 0;
}

static int cfg_pcall(lua_State *S, lua_CFunction f, void *ud)
{
#if LUA_VERSION_NUM >= 502
    lua_pushcfunction(S, f); /* a light function: no allocation */
    lua_pushlightuserdata(S, ud);
    return lua_pcall(S, 1, 0, 0);
#else
    return lua_cpcall(S, f, ud);
#endif
}

/* Pushes onto L a copy of the (checked) value at idx of S. S is only read. */
static void cfg_copy(lua_State *S, int idx, lua_State *L)
{
    switch (lua_type(S, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(S, idx, &n);
        lua_pushlstring(L, s, n);
        break;
    }
    case LUA_TNUMBER:
#if LUA_VERSION_NUM >= 503
        if (lua_isinteger(S, idx)) {
            lua_pushinteger(L, lua_tointeger(S, idx));
            break;
        }
#endif
        lua_pushnumber(L, lua_tonumber(S, idx));
        break;
    case LUA_TBOOLEAN:
        lua_pushboolean(L, lua_toboolean(S, idx));
        break;
    case LUA_TTABLE:
        luaL_checkstack(L, 4, "config nested too deep");
        lua_newtable(L);
        lua_pushnil(S);
        while (lua_next(S, idx)) {
            int top = lua_gettop(S);
            cfg_copy(S, top - 1, L);
            cfg_copy(S, top, L);
            lua_rawset(L, -3);
            lua_pop(S, 1);
        }
        break;
    default:
        lua_pushnil(L);
        break;
    }
}

static void cfg_close(cfg_box *b)
{
    if (b->S) {
        lua_close(b->S);
        b->S = NULL;
    }
}

static int cfg_gc(lua_State *L)
{
    cfg_close((cfg_box *)luaL_checkudata(L, 1, CFG_MT));
    return 0;
}

/* nil, "config", message: the message says which limit, or what the chunk
 * raised (shortened, as it may quote the file). */
static int cfg_fail(lua_State *L, cfg_box *b, int status)
{
    char msg[CFG_MSG_MAX];
    if (b->timed_out) {
        (void)snprintf(msg, sizeof msg, "the config runs too long (stopped after %g s)", b->timeout);
    } else if (status == LUA_ERRMEM || b->load_oom || b->S == NULL) {
        if (b->cap % CFG_MIB == 0)
            (void)snprintf(msg, sizeof msg, "the config needs more than %lu MiB of memory",
                     (unsigned long)(b->cap / CFG_MIB));
        else
            (void)snprintf(msg, sizeof msg, "the config needs more than %lu bytes of memory", (unsigned long)b->cap);
    } else if (lua_type(b->S, -1) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(b->S, -1, &n);
        if (n >= sizeof msg)
            n = sizeof msg - 1;
        memcpy(msg, s, n);
        msg[n] = '\0';
    } else {
        (void)snprintf(msg, sizeof msg, "(error object is a %s value)", lua_typename(b->S, lua_type(b->S, -1)));
    }
    cfg_close(b);
    lua_pushnil(L);
    lua_pushliteral(L, "config");
    lua_pushstring(L, msg);
    return 3;
}

/* config_load(text, chunkname [, max_memory [, timeout]]) -> value | nil, "config", msg
 * Runs text as a Lua chunk in a fresh capped state (see the top of the file)
 * and returns a plain copy of what it returns. */
static int l_config_load(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    const char *name = luaL_checkstring(L, 2);
    lua_Integer cap = luaL_optinteger(L, 3, CFG_DEFAULT_CAP);
    lua_Number timeout = luaL_optnumber(L, 4, 1.0);
    cfg_box *b;
    int status;
    luaL_argcheck(L, cap >= CFG_MIN_CAP && cap <= CFG_MAX_CAP, 3, "must be 65536 .. 1073741824 bytes");
    luaL_argcheck(L, timeout > 0 && timeout <= 3600, 4, "must be more than 0 and at most 3600 seconds");
    b = (cfg_box *)lua_newuserdata(L, sizeof *b);
    memset(b, 0, sizeof *b);
    luaL_getmetatable(L, CFG_MT);
    lua_setmetatable(L, -2);
    b->cap = (size_t)cap;
    b->timeout = (double)timeout;
    b->text = text;
    b->len = len;
    b->name = name;
    b->steps = CFG_STEPS;
    b->deadline = sa_clock_monotonic() + b->timeout;
    b->S = lua_newstate(cfg_alloc, b);
    if (b->S == NULL)
        return cfg_fail(L, b, LUA_ERRMEM);
    status = cfg_pcall(b->S, cfg_run, b);
    if (status != 0)
        return cfg_fail(L, b, status);
    lua_settop(b->S, 0);
    /* cfg_run grew the stack already and nothing allocated since: this only
     * records the room, and failing it cannot raise in 5.2+ */
    if (!lua_checkstack(b->S, 2 * CFG_MAX_DEPTH + 8))
        return cfg_fail(L, b, LUA_ERRMEM);
    lua_pushlightuserdata(b->S, (void *)&CFG_RESULT_KEY);
    lua_rawget(b->S, LUA_REGISTRYINDEX);
    cfg_copy(b->S, 1, L);
    cfg_close(b);
    return 1;
}

/* core.file_mode(path) -> permission bits (0644 is 420) | nil, kind, msg,
 * errno. The config loader warns about secrets others can read: one
 * lstat(2) here, where it ran `stat -c %a` through a shell (a fork and two
 * execs, most of a CLI call's CPU). lstat, as stat(1) without -L: the bits
 * of a symbolic link itself. */
static int l_file_mode(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (lstat(path, &st) != 0) {
        sa_err e;
        sa_err_set(&e, SA_ESTORAGE, errno, "cannot stat '%s': %s", path, strerror(errno));
        return lu_push_err(L, &e);
    }
    lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
    return 1;
}

void sa_lconfig_open(lua_State *L)
{
    if (luaL_newmetatable(L, CFG_MT)) {
        lua_pushcfunction(L, cfg_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_config_load);
    lua_setfield(L, -2, "config_load");
    lua_pushcfunction(L, l_file_mode);
    lua_setfield(L, -2, "file_mode");
}
