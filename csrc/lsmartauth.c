/* smartauth.core: the C module that links libcrypto only (crypto, keys and
 * JWS, forms, the file store with AES-GCM, the clock, the config sandbox).
 * It only assembles its binding files; the engine is smartauth.core_http
 * (lhttp.c) and the Redis store smartauth.core_redis (lredis.c), so that
 * neither libcurl nor hiredis is mapped before a program needs it. */
#include "lconfig.h"
#include "lutil.h"

SA_EXPORT int luaopen_smartauth_core(lua_State *L)
{
    lu_open(L);
    lua_newtable(L);
    lcrypto_open(L);
    lkey_open(L);
    lstore_open(L);
    lclock_open(L);
    laead_open(L);
    sa_lconfig_open(L);
    lua_pushliteral(L, "0.1.0");
    lua_setfield(L, -2, "_VERSION");
    return 1;
}
