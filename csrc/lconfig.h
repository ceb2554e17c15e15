/* Config files run in a Lua state of their own (lconfig.c). */
#ifndef SA_LCONFIG_H
#define SA_LCONFIG_H

#include "lcompat.h"

/* Adds config_load to the module table on top of the stack. */
void sa_lconfig_open(lua_State *L);

#endif
