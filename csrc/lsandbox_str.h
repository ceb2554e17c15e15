/* The bounded string functions of the config sandbox (lsandbox_str.c), and
 * what they need from the sandbox itself (lconfig.c): its memory cap and its
 * step counter, which reads the clock. */
#ifndef SA_LSANDBOX_STR_H
#define SA_LSANDBOX_STR_H

#include <stddef.h>

#include "lcompat.h"

typedef struct cfg_box cfg_box;

/* The sandbox that owns state S (its allocator's userdata). */
cfg_box *sa_cfg_box_of(lua_State *S);

/* The sandbox's memory cap in bytes. */
size_t sa_cfg_cap(const cfg_box *b);

/* Counts n steps of C work; reads the clock once per CFG_STEPS steps and
 * raises "the config runs too long" once the deadline has passed. */
void sa_cfg_charge(lua_State *S, cfg_box *b, size_t n);

/* Puts the bounded find, match, gmatch, gsub and rep into the string table
 * at index str. */
void sa_sandbox_str_open(lua_State *S, int str);

#endif
