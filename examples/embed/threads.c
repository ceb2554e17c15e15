/* Several Lua states in one process, one per thread, each loading
 * smartauth and making token requests at the same time: the library keeps
 * no shared mutable state besides its once-only global init.
 *
 *   build/embed_threads ROOT TOKEN_URL [THREADS] [REQUESTS_PER_THREAD] */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

typedef struct {
    const char *root, *url;
    int requests, ok;
    char error[256];
} job;

static const char *worker_lua =
    "local root, url, n = ...\n"
    "package.path = root .. '/lua/?.lua;' .. root .. '/lua/?/init.lua;' .. package.path\n"
    "package.cpath = root .. '/build/?.so;' .. package.cpath\n"
    "local smartauth = require 'smartauth'\n"
    "local p = assert(smartauth.provider{ token_endpoint = url, client_id = 'thread',\n"
    "                                     client_secret = 'secret', retry = false })\n"
    "local ok = 0\n"
    "for i = 1, n do\n"
    "  local tok = p:client_credentials()\n"
    "  if tok and #tok.access_token > 0 then ok = ok + 1 end\n"
    "end\n"
    "return ok\n";

static void *run(void *arg)
{
    job *j = arg;
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_loadstring(L, worker_lua) != LUA_OK) {
        snprintf(j->error, sizeof j->error, "%s", lua_tostring(L, -1));
    } else {
        lua_pushstring(L, j->root);
        lua_pushstring(L, j->url);
        lua_pushinteger(L, j->requests);
        if (lua_pcall(L, 3, 1, 0) != LUA_OK)
            snprintf(j->error, sizeof j->error, "%s", lua_tostring(L, -1));
        else
            j->ok = (int)lua_tointeger(L, -1);
    }
    lua_close(L);
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 3 ? atoi(argv[3]) : 4, per = argc > 4 ? atoi(argv[4]) : 20, i, total = 0, bad = 0;
    pthread_t th[64];
    job jobs[64];
    if (argc < 3 || n < 1 || n > 64) {
        fprintf(stderr, "usage: %s ROOT TOKEN_URL [THREADS<=64] [REQUESTS]\n", argv[0]);
        return 2;
    }
    for (i = 0; i < n; i++) {
        jobs[i].root = argv[1];
        jobs[i].url = argv[2];
        jobs[i].requests = per;
        jobs[i].ok = 0;
        jobs[i].error[0] = '\0';
        pthread_create(&th[i], NULL, run, &jobs[i]);
    }
    for (i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        total += jobs[i].ok;
        if (jobs[i].error[0]) {
            fprintf(stderr, "thread %d: %s\n", i, jobs[i].error);
            bad++;
        }
    }
    printf("{\"threads\":%d,\"requests\":%d,\"ok\":%d,\"errors\":%d}\n", n, n * per, total, bad);
    return total == n * per && !bad ? 0 : 1;
}
