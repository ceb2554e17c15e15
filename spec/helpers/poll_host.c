/* A host with its own poll loop, as the README describes it: it polls the
 * sockets smartauth.fds() names, for as long as smartauth.pending() says,
 * and calls smartauth.step(0) when one is ready or the time is up. Before
 * loading smartauth it opens NFILES descriptors (raising RLIMIT_NOFILE as
 * far as the hard limit allows), so libcurl's sockets get numbers above
 * them; poll(2) has no FD_SETSIZE limit, so nothing here hides a socket.
 * It also makes one blocking request (the engine's own wait). Prints one
 * JSON line.
 *
 *   build/spec/poll_host ROOT URL NFILES
 * Built by spec/engine_spec.lua. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#define MAX_POLL 256

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *setup_lua =
    "local root, url = ...\n"
    "package.path = root .. '/lua/?.lua;' .. root .. '/lua/?/init.lua;' .. package.path\n"
    "package.cpath = root .. '/build/?.so;' .. package.cpath\n"
    "local smartauth = require 'smartauth'\n"
    "local engine = require 'smartauth.engine'\n"
    "local http = require 'smartauth.http'\n"
    "local state = {}\n"
    "local function text(e) return (tostring(e):gsub('[^%w%s%.:,-]', '?')) end\n"
    "local res, err = http.request{ url = url .. '/quick', timeout = 5 }\n"
    "state.blocking = res and res.status or text(err)\n"
    "smartauth.spawn(function()\n"
    "  local r, e = engine.request{ url = url .. '/slow', timeout = 5 }\n"
    "  state.status = r and r.status or text(e)\n"
    "  state.done = true\n"
    "end)\n"
    "local function fds()\n"
    "  local out = {}\n"
    "  for i, f in ipairs(smartauth.fds()) do\n"
    "    out[i] = f.fd * 4 + (f.read and 1 or 0) + (f.write and 2 or 0)\n"
    "  end\n"
    "  return out\n"
    "end\n"
    "return smartauth.step, smartauth.pending, fds, state\n";

static void fail_lua(lua_State *L, const char *what)
{
    fprintf(stderr, "%s: %s\n", what, lua_tostring(L, -1));
    exit(1);
}

int main(int argc, char **argv)
{
    struct rlimit rl;
    struct pollfd pfd[MAX_POLL];
    lua_State *L;
    long nfiles, i;
    int done = 0, max_fd = -1, fd_wakeups = 0, timer_wakeups = 0, steps = 0, high = -1;
    double start, status;
    const char *blocking, *err = "";

    if (argc < 4) {
        fprintf(stderr, "usage: %s ROOT URL NFILES\n", argv[0]);
        return 2;
    }
    nfiles = atol(argv[3]);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)nfiles + 64) {
        rl.rlim_cur = (rlim_t)nfiles + 64;
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
            rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (i = 0; i < nfiles; i++) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fprintf(stderr, "open #%ld failed: cannot hold %ld descriptors\n", i, nfiles);
            return 1;
        }
        high = fd;
    }

    L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_loadstring(L, setup_lua) != LUA_OK)
        fail_lua(L, "load");
    lua_pushstring(L, argv[1]);
    lua_pushstring(L, argv[2]);
    if (lua_pcall(L, 2, 4, 0) != LUA_OK)
        fail_lua(L, "setup");
    /* stack: step, pending, fds, state */
    start = now();
    while (now() - start < 10.0) {
        int n = 0, rc, timeout_ms = 10000;
        lua_pushvalue(L, 1);
        lua_pushnumber(L, 0);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK)
            fail_lua(L, "step");
        steps++;
        lua_getfield(L, 4, "done");
        done = lua_toboolean(L, -1);
        lua_pop(L, 1);
        if (done)
            break;
        lua_pushvalue(L, 2);
        if (lua_pcall(L, 0, 2, 0) != LUA_OK)
            fail_lua(L, "pending");
        if (lua_isnumber(L, -1)) {
            double t = ceil(lua_tonumber(L, -1) * 1000.0);
            if (t < timeout_ms)
                timeout_ms = (int)t;
        }
        lua_pop(L, 2);
        lua_pushvalue(L, 3);
        if (lua_pcall(L, 0, 1, 0) != LUA_OK)
            fail_lua(L, "fds");
        for (n = 0; n < MAX_POLL; n++) {
            lua_Integer v;
            if (lua_rawgeti(L, -1, n + 1) == LUA_TNIL) {
                lua_pop(L, 1);
                break;
            }
            v = lua_tointeger(L, -1);
            lua_pop(L, 1);
            pfd[n].fd = (int)(v / 4);
            pfd[n].events = (short)(((v & 1) ? POLLIN : 0) | ((v & 2) ? POLLOUT : 0));
            pfd[n].revents = 0;
            if (pfd[n].fd > max_fd)
                max_fd = pfd[n].fd;
        }
        lua_pop(L, 1);
        rc = poll(pfd, (nfds_t)n, timeout_ms);
        if (rc > 0)
            fd_wakeups++;
        else if (rc == 0)
            timer_wakeups++;
    }
    lua_getfield(L, 4, "status");
    status = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : 0;
    if (!lua_isnumber(L, -1) && lua_isstring(L, -1))
        err = lua_tostring(L, -1);
    lua_getfield(L, 4, "blocking");
    blocking = lua_tostring(L, -1);
    printf("{\"done\":%s,\"status\":%.0f,\"error\":\"%s\",\"blocking\":\"%s\",\"high_file\":%d,"
           "\"max_fd\":%d,\"fd_wakeups\":%d,\"timer_wakeups\":%d,\"steps\":%d,\"wall_ms\":%.1f}\n",
           done ? "true" : "false", status, err, blocking ? blocking : "", high, max_fd,
           fd_wakeups, timer_wakeups, steps, (now() - start) * 1000.0);
    lua_close(L);
    return 0;
}
