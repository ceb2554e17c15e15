/* A "game" that embeds Lua and smartauth: 60 frames a second, one
 * smartauth.step(0) per frame, 100 token requests running behind the frames.
 * Prints one JSON line: requests finished, wall time, longest frame, and
 * the worst and 99th-percentile smartauth.step(0).
 *
 *   build/embed_game ROOT TOKEN_URL [REQUESTS [CA_FILE [STORE_DIR [FRAMES]]]]
 * ROOT is the checkout (for lua/ and build/), TOKEN_URL a token endpoint;
 * CA_FILE ("" for libcurl's default bundle) checks an HTTPS endpoint,
 * STORE_DIR keeps the tokens in a file store, and the game runs at least
 * FRAMES frames (steps after the requests finished count too). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
    double d = t - now();
    if (d > 0) {
        struct timespec ts;
        ts.tv_sec = (time_t)d;
        ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
        nanosleep(&ts, NULL);
    }
}

/* Game code, in Lua: start the requests, count what finished. */
static const char *setup_lua =
    "local root, url, n, ca, dir = ...\n"
    "package.path = root .. '/lua/?.lua;' .. root .. '/lua/?/init.lua;' .. package.path\n"
    "package.cpath = root .. '/build/?.so;' .. package.cpath\n"
    "local smartauth = require 'smartauth'\n"
    "local store = dir ~= '' and assert(smartauth.store.file{ dir = dir }) or nil\n"
    "local p = assert(smartauth.provider{ token_endpoint = url, client_id = 'game',\n"
    "                                     client_secret = 'secret', retry = false,\n"
    "                                     ca_file = ca ~= '' and ca or nil, store = store })\n"
    "local state = { done = 0, failed = 0 }\n"
    "for i = 1, n do\n"
    "  smartauth.spawn(function()\n"
    "    local tok, err = p:client_credentials{ scope = 'player' .. i }\n"
    "    if tok then state.done = state.done + 1 else state.failed = state.failed + 1 end\n"
    "  end)\n"
    "end\n"
    "return smartauth.step, state\n";

int main(int argc, char **argv)
{
    lua_State *L;
    int n = argc > 3 ? atoi(argv[3]) : 100, frames = 0, done = 0, failed = 0;
    int min_frames = argc > 6 ? atoi(argv[6]) : 0, maxsteps = 36000;
    double start, frame_start, longest = 0, next, t, *steps;
    const double frame = 1.0 / 60.0;

    if (argc < 3) {
        fprintf(stderr, "usage: %s ROOT TOKEN_URL [REQUESTS]\n", argv[0]);
        return 2;
    }
    L = luaL_newstate();
    luaL_openlibs(L);
    start = now();
    if (luaL_loadstring(L, setup_lua) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        return 1;
    }
    lua_pushstring(L, argv[1]);
    lua_pushstring(L, argv[2]);
    lua_pushinteger(L, n);
    lua_pushstring(L, argc > 4 ? argv[4] : "");
    lua_pushstring(L, argc > 5 ? argv[5] : "");
    steps = malloc((size_t)maxsteps * sizeof *steps);
    if (!steps || lua_pcall(L, 5, 2, 0) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        return 1;
    }
    /* stack: step, state */
    next = now();
    while ((done + failed < n || frames < min_frames) && frames < maxsteps &&
           now() - start < 60.0) {
        frame_start = now();
        lua_pushvalue(L, 1);
        lua_pushnumber(L, 0);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
            fprintf(stderr, "step: %s\n", lua_tostring(L, -1));
            return 1;
        }
        steps[frames] = now() - frame_start;
        lua_getfield(L, 2, "done");
        done = (int)lua_tointeger(L, -1);
        lua_getfield(L, 2, "failed");
        failed = (int)lua_tointeger(L, -1);
        lua_pop(L, 2);
        /* the rest of the frame: rendering, physics... */
        if (now() - frame_start > longest)
            longest = now() - frame_start;
        frames++;
        next += frame;
        sleep_until(next);
    }
    t = (now() - start) * 1000.0;
    qsort(steps, (size_t)frames, sizeof *steps, cmp_double);
    printf("{\"requests\":%d,\"done\":%d,\"failed\":%d,\"frames\":%d,"
           "\"wall_ms\":%.1f,\"longest_frame_ms\":%.3f,"
           "\"worst_step_ms\":%.3f,\"p99_step_ms\":%.3f}\n",
           n, done, failed, frames, t, longest * 1000.0,
           frames ? steps[frames - 1] * 1000.0 : 0.0,
           frames ? steps[(size_t)((frames - 1) * 0.99)] * 1000.0 : 0.0);
    free(steps);
    lua_close(L);
    return done == n ? 0 : 1;
}
