/* Helpers shared by the binding files (csrc/l*.c). Each C module
 * (smartauth.core, core_http, core_redis) compiles its own copy, hidden
 * like everything but luaopen_*. */
#ifndef SA_LUTIL_H
#define SA_LUTIL_H

#include <stddef.h>

#include "lcompat.h"

#include "buf.h"
#include "sa_err.h"

#if defined(__GNUC__)
#define SA_EXPORT __attribute__((visibility("default")))
#else
#define SA_EXPORT
#endif

/* The one failure shape of every binding function: nil, kind, message, code
 * (read in Lua by errors.from_core). Returns 4. */
int lu_push_err(lua_State *L, const sa_err *e);

/* Same, from a kind and a fixed message (code 0). Returns 4. */
int lu_push_fail(lua_State *L, int kind, const char *msg);

/* A C buffer owned by a userdata (the box) from before its first byte is
 * allocated: any Lua error (out of memory, a metamethod raising) between
 * filling it and pushing its bytes leaves it to __gc, never leaked. The box
 * is pushed; lu_open must have run in this state. */
sa_buf *lu_new_box(lua_State *L);

/* b is the box at the top of the stack: replaces it by its bytes. Returns 1. */
int lu_push_buf(lua_State *L, sa_buf *b);

/* Frees b and raises "out of memory". */
int lu_nomem(lua_State *L, sa_buf *b);

/* Option readers for a table at index t; a wrong type raises (a programming
 * mistake). lu_opt_str leaves the value on the stack: the caller keeps it
 * there until C is done with the bytes (an __index metamethod may have built
 * it, so popping it could free it). */
long lu_opt_ms(lua_State *L, int t, const char *k);
const char *lu_opt_str(lua_State *L, int t, const char *k, size_t *len);
int lu_opt_int(lua_State *L, int t, const char *k, int dflt, int lo, int hi);

/* A string argument that must not hold NUL (paths, host names, alg and
 * curve names): NULL with e filled (kind) when it does. */
const char *lu_check_cstr(lua_State *L, int i, const char *what, int kind, sa_err *e);

/* Store results: rc as the stores return it (1 found, 0 absent, -1 error)
 * with b the box at the top of the stack (lu_new_box): the bytes, nil, or
 * nil, kind, msg, code. */
int lu_push_get(lua_State *L, int rc, sa_buf *b, const sa_err *e);
/* rc 0: true; -1: nil, kind, msg, code. */
int lu_push_ok(lua_State *L, int rc, const sa_err *e);

/* Registers a userdata class: methods as __index, close as __gc and
 * __close (one function, harmless on a second call), and __tostring. */
void lu_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                  lua_CFunction close, lua_CFunction tostring);

/* Registers what the helpers need in this state (the box metatable). */
void lu_open(lua_State *L);

/* The binding files: each registers its classes and adds its functions to
 * the module table at the top of the stack. */
void lcrypto_open(lua_State *L); /* lcrypto.c, smartauth.core */
void lkey_open(lua_State *L);    /* lkey.c, smartauth.core */
void lstore_open(lua_State *L);  /* lstore.c, smartauth.core */
void lclock_open(lua_State *L);  /* lclock.c, smartauth.core */
void laead_open(lua_State *L);   /* laead.c, smartauth.core */

/* lcrypto.c: base64 (url = 1: base64url) of s[0..n) decoded and pushed; 0,
 * or -1 with nothing pushed and e filled. */
int lcrypto_push_b64(lua_State *L, const char *s, size_t n, int url, sa_err *e);

#endif
