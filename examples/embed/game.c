/* A "game" that embeds Lua and smartauth: 60 frames a second, one
 * smartauth.step(0) per frame, 100 token requests running behind the frames.
 * Prints one JSON line: requests finished, wall time, longest frame.
 *
 *   build/embed_game ROOT TOKEN_URL [REQUESTS]
 * ROOT is the checkout (for lua/ and build/), TOKEN_URL a token endpoint. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

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
    "local root, url, n = ...\n"
    "package.path = root .. '/lua/?.lua;' .. root .. '/lua/?/init.lua;' .. package.path\n"
    "package.cpath = root .. '/build/?.so;' .. package.cpath\n"
    "local smartauth = require 'smartauth'\n"
    "local p = assert(smartauth.provider{ token_endpoint = url, client_id = 'game',\n"
    "                                     client_secret = 'secret', retry = false })\n"
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
    double start, frame_start, longest = 0, next;
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
    if (lua_pcall(L, 3, 2, 0) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        return 1;
    }
    /* stack: step, state */
    next = now();
    while (done + failed < n && now() - start < 30.0) {
        frame_start = now();
        lua_pushvalue(L, 1);
        lua_pushnumber(L, 0);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
            fprintf(stderr, "step: %s\n", lua_tostring(L, -1));
            return 1;
        }
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
    printf("{\"requests\":%d,\"done\":%d,\"failed\":%d,\"frames\":%d,"
           "\"wall_ms\":%.1f,\"longest_frame_ms\":%.3f}\n",
           n, done, failed, frames, (now() - start) * 1000.0, longest * 1000.0);
    lua_close(L);
    return done == n ? 0 : 1;
}
