/* The Lua binding under a failing allocator: a lua_State whose allocator
 * refuses every growth after N allocations, for N = 0, 1, 2, ... until the
 * scenario runs through. Each scenario (form decoding and encoding, base64
 * and the JWS split, a response pushed from a real HTTP exchange, a store
 * read) must end in a Lua error or success and never leak the C buffers the
 * binding holds while it makes Lua values: the heap in use is the same
 * before the state is created and after it is closed (checked here with
 * mallinfo2; `make valgrind-c` and `make sanitize` check it again with
 * their own leak detectors).
 *
 * Run: build/test_oom  (prints "test_oom: N passed, M failed") */
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "check.h"

int luaopen_smartauth_core(lua_State *L);
int luaopen_smartauth_core_http(lua_State *L);

/* ------------------------------------------------------------ allocator */

static int measure = 1;       /* heap in use compared with mallinfo2 */
static long fail_after = -1; /* -1: never fail */
static long grows;

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    /* only growth fails: Lua may assume a shrink succeeds */
    if (!ptr || nsize > osize) {
        long i = grows++;
        if (fail_after >= 0 && i >= fail_after)
            return NULL;
    }
    return realloc(ptr, nsize);
}

/* ---------------------------------------------------------- HTTP server */

/* A forked loopback server: one canned answer per connection, with a
 * repeated header (joined by the binding) and a body of some size. */
static const char ANSWER_HEAD[] = "HTTP/1.1 200 OK\r\n"
                                  "Content-Type: application/json\r\n"
                                  "X-Repeat: one\r\n"
                                  "X-Repeat: two\r\n"
                                  "Cache-Control: no-store\r\n"
                                  "Connection: close\r\n"
                                  "Content-Length: 2048\r\n\r\n";

static void serve(int ls)
{
    char req[4096], body[2048];
    memset(body, 'b', sizeof body);
    for (;;) {
        size_t got = 0;
        int c = accept(ls, NULL, NULL);
        if (c < 0)
            continue;
        while (got < sizeof req - 1) {
            ssize_t n = read(c, req + got, sizeof req - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
            req[got] = '\0';
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        if (write(c, ANSWER_HEAD, sizeof ANSWER_HEAD - 1) < 0 ||
            write(c, body, sizeof body) < 0) {
            /* the client may be gone: nothing to do */
        }
        close(c);
    }
}

static pid_t start_server(int *port)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    pid_t pid;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 16) != 0 ||
        getsockname(ls, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    pid = fork();
    if (pid == 0) {
        serve(ls);
        _exit(0);
    }
    close(ls);
    return pid;
}

/* ------------------------------------------------------------ scenarios */

static const char FORM[] =
    "local core = ...\n"
    "local t = assert(core.form_decode('access_token=at%2Bx&token_type=Bearer&'\n"
    "  .. 'scope=openid%20email&expires_in=3600&state=' .. ('s'):rep(300)))\n"
    "assert(t.scope == 'openid email' and #t.state == 300)\n"
    "assert(core.form_decode('a=%zz') == nil)\n"
    "local body = core.form_encode { 'grant_type', 'authorization_code', 'code', ('c'):rep(200),\n"
    "  'redirect_uri', 'http://127.0.0.1:1/cb?x=1&y=2' }\n"
    "assert(#body > 200)\n"
    "assert(core.form_escape('a b&c') == 'a%20b%26c')\n"
    "assert(core.basic_auth('client id', 'secret/x'):sub(1, 6) == 'Basic ')\n"
    "return true\n";

static const char B64[] =
    "local core = ...\n"
    "local raw = ('\\1\\2\\3\\255'):rep(100)\n"
    "assert(core.b64_decode(core.b64_encode(raw)) == raw)\n"
    "assert(core.b64url_decode(core.b64url_encode(raw)) == raw)\n"
    "local v, kind, msg, code = core.b64url_decode('!!')\n"
    "assert(v == nil and kind == 'validation' and #msg > 0 and code == 0)\n"
    "local _, jkind, jmsg = core.jws_parse('e30.!!.c2ln')\n"
    "assert(jkind == 'validation' and jmsg:find('^JWT payload: '))\n"
    "assert(core.jws_algs().ES256.crv == 'P-256')\n"
    "local h, p, s, n = core.jws_parse('eyJhbGciOiJIUzI1NiJ9.' .. core.b64url_encode(raw) .. '.c2ln')\n"
    "assert(h == '{\"alg\":\"HS256\"}' and p == raw and s == 'sig' and n > 0)\n"
    "local v = core.pkce_verifier()\n"
    "assert(#core.pkce_challenge(v) == 43)\n"
    "return true\n";

static const char RESPONSE[] =
    "local _, url = ...\n"
    "local e = require('smartauth.core_http').engine()\n"
    "local r = assert(e:request { url = url .. '/token', headers = { 'Accept: application/json' } })\n"
    "assert(r.status == 200 and #r.body == 2048 and r.headers['x-repeat'] == 'one, two')\n"
    "local q = assert(e:start { url = url .. '/again' })\n"
    "while not q:done() do e:step(0.05) end\n"
    "local r2 = assert(q:result())\n"
    "assert(r2.headers['cache-control'] == 'no-store')\n"
    "q:close()\n"
    "e:close()\n"
    "return true\n";

static const char STORE[] =
    "local core, dir = ...\n"
    "local fs = assert(core.fstore_open(dir))\n"
    "assert(fs:get('entry') == ('v'):rep(500))\n"
    "assert(fs:get('absent') == nil)\n"
    "fs:close()\n"
    "return true\n";

/* Runs chunk with arg in a new state whose allocator fails after n
 * growths (-1: never). Returns 1 when it ran through, 0 when it raised;
 * *leak gets the heap bytes still in use after lua_close. */
static int run(const char *chunk, const char *arg, long n, long *count, long *leak)
{
    struct mallinfo2 before, after;
    lua_State *L;
    int ok;

    before = mallinfo2();
    L = lua_newstate(l_alloc, NULL);
    if (!L)
        return -1;
    luaL_openlibs(L);
    /* the engine's module comes from require, as in the Lua layer */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_smartauth_core_http);
    lua_setfield(L, -2, "smartauth.core_http");
    lua_pop(L, 1);
    luaL_requiref(L, "smartauth.core", luaopen_smartauth_core, 0);
    if (luaL_loadstring(L, chunk) != LUA_OK) {
        fprintf(stderr, "chunk: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return -1;
    }
    lua_pushvalue(L, -2);
    lua_pushstring(L, arg);
    grows = 0;
    fail_after = n;
    ok = lua_pcall(L, 2, 1, 0) == LUA_OK && lua_toboolean(L, -1);
    fail_after = -1;
    if (count)
        *count = grows;
    if (!ok && n < 0)
        fprintf(stderr, "scenario failed: %s\n", lua_tostring(L, -1));
    lua_close(L);
    after = mallinfo2();
    *leak = measure ? (long)after.uordblks - (long)before.uordblks : 0;
    return ok;
}

/* N = 0, 1, ... until the scenario runs through; no N may leak. */
static void exhaust(const char *name, const char *chunk, const char *arg)
{
    long n, total = 0, leak = 0, leaked_at = -1, leaked = 0;
    int ok = 0, runs = 0;
    /* warm-up: once-only library initialisation is not a leak */
    CHECK(run(chunk, arg, -1, &total, &leak) == 1);
    CHECK(run(chunk, arg, -1, &total, &leak) == 1);
    for (n = 0; n <= total + 1 && !ok; n++) {
        ok = run(chunk, arg, n, NULL, &leak) == 1;
        runs++;
        if (leak != 0 && leaked_at < 0) {
            leaked_at = n;
            leaked = leak;
        }
    }
    if (leaked_at >= 0)
        fprintf(stderr, "  %s: %ld bytes left after a failure at allocation %ld\n", name,
                leaked, leaked_at);
    CHECK(leaked_at < 0);
    CHECK(ok);
    printf("  %s: %d runs, every allocation of %ld failed once\n", name, runs, total);
}

int main(int argc, char **argv)
{
    char url[64], dir[] = "/tmp/sa-test-oom.XXXXXX", path[128];
    int port = 0;
    pid_t srv;
    FILE *f;

    /* glibc's per-thread cache keeps freed blocks counted as in use: off,
     * so mallinfo2 sees every free (one re-exec with the tunable set).
     * Under valgrind its own allocator and leak check take over. */
    const char *pre = getenv("LD_PRELOAD"), *tun = getenv("GLIBC_TUNABLES");
    (void)argc;
    if (pre && strstr(pre, "vgpreload")) {
        measure = 0;
    } else if (!tun) {
        setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0", 1);
        execv("/proc/self/exe", argv);
        measure = 0; /* no re-exec: the leak detectors still check */
    } else {
        measure = strstr(tun, "glibc.malloc.tcache_count=0") != NULL;
    }
    srv = start_server(&port);

    CHECK(srv > 0);
    if (srv <= 0)
        return CHECK_DONE("test_oom");
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    CHECK(mkdtemp(dir) != NULL);

    /* a store entry written in clear (no key), read back by the scenario */
    {
        lua_State *L = luaL_newstate();
        luaL_openlibs(L);
        luaL_requiref(L, "smartauth.core", luaopen_smartauth_core, 0);
        CHECK(luaL_loadstring(L, "local core, dir = ...\n"
                                 "local fs = assert(core.fstore_open(dir))\n"
                                 "assert(fs:set('entry', ('v'):rep(500)))\n"
                                 "fs:close()\n") == LUA_OK);
        lua_pushvalue(L, -2);
        lua_pushstring(L, dir);
        CHECK(lua_pcall(L, 2, 0, 0) == LUA_OK);
        lua_close(L);
    }

    exhaust("form", FORM, "");
    exhaust("base64", B64, "");
    exhaust("response", RESPONSE, url);
    exhaust("store", STORE, dir);

    kill(srv, SIGKILL);
    waitpid(srv, NULL, 0);
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    f = popen(path, "r");
    if (f)
        pclose(f);
    return CHECK_DONE("test_oom");
}
