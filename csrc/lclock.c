/* Binding: core.monotonic (clock.c), for the Lua layer's timers and
 * deadlines. In smartauth.core: the engine, the stores and the flows all
 * use it, and it must not pull in libcurl. */
#include "clock.h"
#include "lutil.h"

static int l_monotonic(lua_State *L)
{
    lua_pushnumber(L, sa_clock_monotonic());
    return 1;
}

static const luaL_Reg funcs[] = {
    { "monotonic", l_monotonic },
    { NULL, NULL }
};

void lclock_open(lua_State *L)
{
    luaL_setfuncs(L, funcs, 0);
}
