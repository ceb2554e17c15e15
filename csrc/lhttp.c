/* Binding: smartauth.core_http, the libcurl engine (http.c): the engine
 * and request userdata, blocking and host-driven transfers, the host-loop
 * API (fds, timeout, step) and libcurl's version. Loaded on the first
 * transfer, so a program that never makes one never maps libcurl. */
#include <string.h>

#include "http.h"
#include "lutil.h"

#define ENGINE_MT "smartauth.engine"
#define REQUEST_MT "smartauth.request"
#define MAX_HEADERS_OUT 64

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
        return lu_push_err(L, &e);
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

/* A string option libcurl takes as a C string: one NUL inside would cut it
 * short without a word. Stays on the stack, as lu_opt_str's values. */
static const char *opt_cstr(lua_State *L, int t, const char *k)
{
    size_t n;
    const char *s = lu_opt_str(L, t, k, &n);
    if (s && strlen(s) != n)
        luaL_error(L, "option '%s' must not contain a NUL byte", k);
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
    luaL_checkstack(L, MAX_HEADERS_OUT + 16, "request options");
    o.url = lu_opt_str(L, t, "url", NULL);
    if (!o.url)
        luaL_error(L, "option 'url' is required");
    o.method = lu_opt_str(L, t, "method", NULL);
    o.body = lu_opt_str(L, t, "body", &o.body_len);
    o.ca_file = lu_opt_str(L, t, "ca_file", NULL);
    o.proxy = opt_cstr(L, t, "proxy");
    o.no_proxy = opt_cstr(L, t, "no_proxy");
    o.client_cert = lu_opt_str(L, t, "client_cert", &o.client_cert_len);
    o.client_key = lu_opt_str(L, t, "client_key", &o.client_key_len);
    o.client_key_password = lu_opt_str(L, t, "client_key_password", &o.client_key_password_len);
    o.timeout_ms = lu_opt_ms(L, t, "timeout");
    o.connect_timeout_ms = lu_opt_ms(L, t, "connect_timeout");
    if (lua_getfield(L, t, "max_body") != LUA_TNIL) {
        int isint;
        lua_Integer mb = lua_tointegerx(L, -1, &isint);
        if (!isint || mb <= 0 || (unsigned long long)mb > (size_t)-1)
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
        return lu_push_err(L, e);
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
        lua_pushlstring(L, name, nl); /* made once, used as key twice */
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TSTRING) {
            /* Repeated header: join as RFC 9110 §5.3 allows. */
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, value, vl);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, value, vl);
        }
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
        return lu_push_err(L, &e);
    if (sa_http_wait(le->h, lr->r, &e) != 0) {
        sa_http_req_free(lr->r);
        lr->r = NULL;
        return lu_push_err(L, &e);
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
        return lu_push_err(L, &e);
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
        return lu_push_err(L, &e);
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
        return lu_push_err(L, &e);
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

static const luaL_Reg funcs[] = {
    { "engine", l_engine_new },
    { "info", l_info },
    { NULL, NULL }
};

/* The module has one binding file, so its luaopen is here. */
SA_EXPORT int luaopen_smartauth_core_http(lua_State *L)
{
    sa_err e;
    if (sa_http_global_init(&e) != 0)
        return luaL_error(L, "smartauth.core_http: %s", e.msg);
    lu_open(L);
    lu_new_class(L, ENGINE_MT, engine_methods, l_engine_close, l_engine_tostring);
    lu_new_class(L, REQUEST_MT, request_methods, l_request_close, l_request_tostring);
    luaL_newlib(L, funcs);
    return 1;
}
