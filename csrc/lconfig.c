/* Config files run in a Lua state of their own, so a hostile or broken
 * config cannot hang or exhaust the process that loads it:
 *
 *   memory  every allocation of the state goes through cfg_alloc, which
 *           refuses to go past a cap (16 MiB by default);
 *   time    a count hook reads CLOCK_MONOTONIC every CFG_HOOK_COUNT VM
 *           instructions and stops the chunk at its deadline (1 s by default);
 *   C calls a hook only runs between instructions, so every C function the
 *           chunk can reach must itself be bounded. The libraries are cut to
 *           a list (base: assert error ipairs next pairs select tonumber
 *           tostring type; string; table; math): nothing that loads code,
 *           touches files, catches errors (pcall would let a chunk swallow
 *           its own deadline), sets metatables (a __gc finaliser runs with
 *           hooks off) or runs a loop that neither allocates nor returns
 *           (table.move over 2^50 empty slots). What is left costs at most
 *           time proportional to the memory cap per call (so one VM
 *           instruction, a concatenation or a string comparison included, is
 *           bounded too), except these, which are ours: rep (an empty string
 *           repeated 2^53 times loops without allocating in Lua's); sort
 *           (a C comparison such as string.rep would run unhooked, and one
 *           long string referenced 10^5 times costs hours to sort: ours takes
 *           Lua comparisons only, or charges its own by string length); and
 *           find, match, gmatch and gsub, which run a copy of Lua 5.4's
 *           matcher that charges every step (each match call, each character
 *           tried, each character of a class, of a back-reference, of a %b
 *           scan and of a plain search) and reads the clock every CFG_STEPS
 *           steps: backtracking such as ("a"):rep(40):find(("a*"):rep(20) ..
 *           "b") meets the same deadline as a loop does. gsub calling a C
 *           function per match is bounded by its output, which the memory
 *           cap bounds. The matcher keeps Lua 5.4's semantics on every Lua
 *           version.
 *
 * The chunk's result then comes back as plain data only: tables without
 * metatables, strings, finite numbers and booleans, keys strings or numbers,
 * no cycles, at most CFG_MAX_DEPTH deep and CFG_MAX_VALUES entries. It is
 * checked inside the sandbox (protected) before anything is created in the
 * caller, and the copy reads the sandbox without allocating in it.
 *
 * The sandbox state is owned by a userdata in the caller's state, so an
 * error there (out of memory while copying) still closes it (__gc).
 *
 * Builds against Lua 5.1 to 5.4 and LuaJIT: the few API differences are the
 * #if LUA_VERSION_NUM blocks below.
 *
 * The matcher (cfg_match and helpers) is derived from lstrlib.c of Lua 5.4,
 * Copyright (C) 1994-2022 Lua.org, PUC-Rio, MIT licence. */
#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lcompat.h"
#include <lualib.h>

#include "lconfig.h"

#define CFG_MT "smartauth.config_sandbox"
#define CFG_MIB ((size_t)1 << 20)
#define CFG_DEFAULT_CAP ((lua_Integer)16 << 20)
#define CFG_MIN_CAP ((lua_Integer)64 << 10)
#define CFG_MAX_CAP ((lua_Integer)1 << 30)
#define CFG_HOOK_COUNT 64    /* VM instructions between clock reads */
#define CFG_STEPS 4096       /* matcher steps between clock reads */
#define CFG_MAX_DEPTH 16     /* nesting of returned tables */
#define CFG_MAX_VALUES 65536 /* key/value pairs returned, in all tables */
#define CFG_PATH_MAX 160
#define CFG_MSG_MAX 400

typedef struct cfg_box {
    lua_State *S;            /* the sandbox, NULL once closed */
    size_t used, cap;        /* bytes the sandbox holds, and its limit */
    int load_oom;            /* the chunk could not be compiled for lack of memory */
    int timed_out;
    size_t steps;            /* matcher steps left before the next clock read */
    struct timespec deadline;
    double timeout;
    const char *text;        /* the chunk: a string kept alive by the caller's stack */
    size_t len;
    const char *name;
} cfg_box;

/* ------------------------------------------------------------ limits */

static void *cfg_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    cfg_box *b = (cfg_box *)ud;
    size_t old = ptr ? osize : 0; /* without ptr, osize is a type tag */
    void *np;
    if (nsize == 0) {
        free(ptr);
        b->used -= old;
        return NULL;
    }
    if (nsize > old && nsize - old > b->cap - b->used)
        return NULL;
    np = realloc(ptr, nsize);
    if (np == NULL)
        return NULL;
    b->used = b->used - old + nsize;
    return np;
}

static cfg_box *cfg_box_of(lua_State *S)
{
    void *ud = NULL;
    (void)lua_getallocf(S, &ud);
    return (cfg_box *)ud;
}

static int cfg_expired(const cfg_box *b)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > b->deadline.tv_sec ||
           (now.tv_sec == b->deadline.tv_sec && now.tv_nsec >= b->deadline.tv_nsec);
}

static void cfg_check_time(lua_State *S, cfg_box *b)
{
    if (b->timed_out || cfg_expired(b)) {
        b->timed_out = 1;
        luaL_error(S, "the config runs too long");
    }
}

static void cfg_hook(lua_State *S, lua_Debug *ar)
{
    (void)ar;
    cfg_check_time(S, cfg_box_of(S));
}

/* Count n steps of C work; the clock is read once per CFG_STEPS. */
static void cfg_charge(lua_State *S, cfg_box *b, size_t n)
{
    if (n < b->steps) {
        b->steps -= n;
        return;
    }
    b->steps = CFG_STEPS;
    cfg_check_time(S, b);
}

/* ------------------------------------------------------------ string.rep */

/* Lua's rep loops n times even when nothing is copied; this one refuses a
 * result above the cap before doing any work. */
static int cfg_rep(lua_State *S)
{
    size_t l, lsep, unit, total, i;
    const char *s = luaL_checklstring(S, 1, &l);
    lua_Integer n = luaL_checkinteger(S, 2);
    const char *sep = luaL_optlstring(S, 3, "", &lsep);
    cfg_box *b = cfg_box_of(S);
    char *out, *p;
    if (n <= 0 || l + lsep == 0) {
        lua_pushliteral(S, "");
        return 1;
    }
    unit = l + lsep; /* no overflow: both are strings of this state, each below the cap */
    if (n > (lua_Integer)((b->cap + lsep) / unit)) {
        /* larger than the cap: ask for more than the cap, which fails as
         * out of memory like any other allocation */
        (void)lua_newuserdata(S, b->cap + 1);
        return luaL_error(S, "not enough memory");
    }
    total = (size_t)n * unit - lsep;
    p = out = (char *)lua_newuserdata(S, total);
    for (i = 0; i < (size_t)n; i++) {
        memcpy(p, s, l);
        p += l;
        if (lsep > 0 && i + 1 < (size_t)n) {
            memcpy(p, sep, lsep);
            p += lsep;
        }
    }
    lua_pushlstring(S, out, total);
    return 1;
}

/* ------------------------------------------------------------ table.sort */

/* A C function called from C runs no instruction, so the hook never sees
 * it: table.sort takes a Lua comparison (hooked) or this one, which charges
 * each comparison by the length of the strings it compares (sorting many
 * references to one long string would otherwise run for hours). */
static int cfg_less(lua_State *S)
{
    size_t la = 0, lb = 0;
    if (lua_type(S, 1) == LUA_TSTRING && lua_type(S, 2) == LUA_TSTRING) {
        (void)lua_tolstring(S, 1, &la);
        (void)lua_tolstring(S, 2, &lb);
    }
    cfg_charge(S, cfg_box_of(S), 1 + (la < lb ? la : lb));
#if LUA_VERSION_NUM >= 502
    lua_pushboolean(S, lua_compare(S, 1, 2, LUA_OPLT));
#else
    lua_pushboolean(S, lua_lessthan(S, 1, 2));
#endif
    return 1;
}

static int cfg_sort(lua_State *S)
{
    luaL_checktype(S, 1, LUA_TTABLE);
    if (lua_isnoneornil(S, 2)) {
        lua_settop(S, 1);
        lua_pushcfunction(S, cfg_less);
    } else {
        luaL_checktype(S, 2, LUA_TFUNCTION);
        luaL_argcheck(S, !lua_iscfunction(S, 2), 2, "a config sorts with a Lua function");
        lua_settop(S, 2);
    }
    lua_pushvalue(S, lua_upvalueindex(1)); /* Lua's own sort */
    lua_insert(S, 1);
    lua_call(S, 2, 0);
    return 0;
}

/* ------------------------------------------------------------ matcher */

#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
#define MAXCAPTURES 32
#define MAXMATCHDEPTH 200
#define L_ESC '%'
#define SPECIALS "^$*+?.([%-"
#define uchar(c) ((unsigned char)(c))

typedef struct MatchState {
    const char *src_init;
    const char *src_end;
    const char *p_end;
    lua_State *L;
    cfg_box *box;
    int matchdepth;
    int level;
    struct {
        const char *init;
        ptrdiff_t len;
    } capture[MAXCAPTURES];
} MatchState;

static const char *cfg_match(MatchState *ms, const char *s, const char *p);

static void ms_charge(MatchState *ms, size_t n)
{
    cfg_charge(ms->L, ms->box, n);
}

static int check_capture(MatchState *ms, int l)
{
    l -= '1';
    if (l < 0 || l >= ms->level || ms->capture[l].len == CAP_UNFINISHED)
        return luaL_error(ms->L, "invalid capture index %%%d", l + 1);
    return l;
}

static int capture_to_close(MatchState *ms)
{
    int level = ms->level;
    for (level--; level >= 0; level--)
        if (ms->capture[level].len == CAP_UNFINISHED)
            return level;
    return luaL_error(ms->L, "invalid pattern capture");
}

static const char *classend(MatchState *ms, const char *p)
{
    const char *start = p;
    switch (*p++) {
    case L_ESC:
        if (p == ms->p_end)
            luaL_error(ms->L, "malformed pattern (ends with '%%')");
        return p + 1;
    case '[':
        if (*p == '^')
            p++;
        do {
            if (p == ms->p_end)
                luaL_error(ms->L, "malformed pattern (missing ']')");
            if (*(p++) == L_ESC && p < ms->p_end)
                p++;
        } while (*p != ']');
        ms_charge(ms, (size_t)(p - start));
        return p + 1;
    default:
        return p;
    }
}

static int match_class(int c, int cl)
{
    int res;
    switch (tolower(cl)) {
    case 'a': res = isalpha(c); break;
    case 'c': res = iscntrl(c); break;
    case 'd': res = isdigit(c); break;
    case 'g': res = isgraph(c); break;
    case 'l': res = islower(c); break;
    case 'p': res = ispunct(c); break;
    case 's': res = isspace(c); break;
    case 'u': res = isupper(c); break;
    case 'w': res = isalnum(c); break;
    case 'x': res = isxdigit(c); break;
    case 'z': res = (c == 0); break;
    default: return (cl == c);
    }
    return islower(cl) ? res : !res;
}

static int matchbracketclass(MatchState *ms, int c, const char *p, const char *ec)
{
    int sig = 1;
    ms_charge(ms, (size_t)(ec - p));
    if (*(p + 1) == '^') {
        sig = 0;
        p++;
    }
    while (++p < ec) {
        if (*p == L_ESC) {
            p++;
            if (match_class(c, uchar(*p)))
                return sig;
        } else if (*(p + 1) == '-' && p + 2 < ec) {
            p += 2;
            if (uchar(*(p - 2)) <= c && c <= uchar(*p))
                return sig;
        } else if (uchar(*p) == c) {
            return sig;
        }
    }
    return !sig;
}

static int singlematch(MatchState *ms, const char *s, const char *p, const char *ep)
{
    int c;
    if (s >= ms->src_end)
        return 0;
    ms_charge(ms, 1);
    c = uchar(*s);
    switch (*p) {
    case '.': return 1;
    case L_ESC: return match_class(c, uchar(*(p + 1)));
    case '[': return matchbracketclass(ms, c, p, ep - 1);
    default: return uchar(*p) == c;
    }
}

static const char *matchbalance(MatchState *ms, const char *s, const char *p)
{
    const char *start = s;
    int b, e, cont = 1;
    if (p >= ms->p_end - 1)
        luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= ms->src_end || *s != *p)
        return NULL;
    b = uchar(*p);
    e = uchar(*(p + 1));
    while (++s < ms->src_end) {
        if (uchar(*s) == e) {
            if (--cont == 0) {
                ms_charge(ms, (size_t)(s - start));
                return s + 1;
            }
        } else if (uchar(*s) == b) {
            cont++;
        }
    }
    ms_charge(ms, (size_t)(s - start));
    return NULL;
}

static const char *max_expand(MatchState *ms, const char *s, const char *p, const char *ep)
{
    ptrdiff_t i = 0;
    while (singlematch(ms, s + i, p, ep))
        i++;
    while (i >= 0) {
        const char *res = cfg_match(ms, s + i, ep + 1);
        if (res)
            return res;
        i--;
    }
    return NULL;
}

static const char *min_expand(MatchState *ms, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *res = cfg_match(ms, s, ep + 1);
        if (res != NULL)
            return res;
        else if (singlematch(ms, s, p, ep))
            s++;
        else
            return NULL;
    }
}

static const char *start_capture(MatchState *ms, const char *s, const char *p, int what)
{
    const char *res;
    int level = ms->level;
    if (level >= MAXCAPTURES)
        luaL_error(ms->L, "too many captures");
    ms->capture[level].init = s;
    ms->capture[level].len = what;
    ms->level = level + 1;
    if ((res = cfg_match(ms, s, p)) == NULL)
        ms->level--;
    return res;
}

static const char *end_capture(MatchState *ms, const char *s, const char *p)
{
    int l = capture_to_close(ms);
    const char *res;
    ms->capture[l].len = s - ms->capture[l].init;
    if ((res = cfg_match(ms, s, p)) == NULL)
        ms->capture[l].len = CAP_UNFINISHED;
    return res;
}

static const char *match_capture(MatchState *ms, const char *s, int l)
{
    size_t len;
    l = check_capture(ms, l);
    if (ms->capture[l].len < 0)
        return NULL; /* a position capture is no text to repeat */
    len = (size_t)ms->capture[l].len;
    ms_charge(ms, len);
    if ((size_t)(ms->src_end - s) >= len && memcmp(ms->capture[l].init, s, len) == 0)
        return s + len;
    return NULL;
}

static const char *cfg_match(MatchState *ms, const char *s, const char *p)
{
    if (ms->matchdepth-- == 0)
        luaL_error(ms->L, "pattern too complex");
init:
    ms_charge(ms, 1);
    if (p != ms->p_end) {
        switch (*p) {
        case '(':
            if (*(p + 1) == ')')
                s = start_capture(ms, s, p + 2, CAP_POSITION);
            else
                s = start_capture(ms, s, p + 1, CAP_UNFINISHED);
            break;
        case ')':
            s = end_capture(ms, s, p + 1);
            break;
        case '$':
            if ((p + 1) != ms->p_end)
                goto dflt;
            s = (s == ms->src_end) ? s : NULL;
            break;
        case L_ESC:
            switch (*(p + 1)) {
            case 'b':
                s = matchbalance(ms, s, p + 2);
                if (s != NULL) {
                    p += 4;
                    goto init;
                }
                break;
            case 'f': {
                const char *ep;
                int previous;
                p += 2;
                if (*p != '[')
                    luaL_error(ms->L, "missing '[' after '%%f' in pattern");
                ep = classend(ms, p);
                previous = (s == ms->src_init) ? 0 : uchar(*(s - 1));
                if (!matchbracketclass(ms, previous, p, ep - 1) &&
                    matchbracketclass(ms, s < ms->src_end ? uchar(*s) : 0, p, ep - 1)) {
                    p = ep;
                    goto init;
                }
                s = NULL;
                break;
            }
            case '0': case '1': case '2': case '3': case '4':
            case '5': case '6': case '7': case '8': case '9':
                s = match_capture(ms, s, uchar(*(p + 1)));
                if (s != NULL) {
                    p += 2;
                    goto init;
                }
                break;
            default:
                goto dflt;
            }
            break;
        default:
        dflt: {
            const char *ep = classend(ms, p);
            if (!singlematch(ms, s, p, ep)) {
                if (*ep == '*' || *ep == '?' || *ep == '-') {
                    p = ep + 1;
                    goto init;
                }
                s = NULL;
            } else {
                switch (*ep) {
                case '?': {
                    const char *res;
                    if ((res = cfg_match(ms, s + 1, ep + 1)) != NULL) {
                        s = res;
                    } else {
                        p = ep + 1;
                        goto init;
                    }
                    break;
                }
                case '+':
                    s++;
                    /* fall through */
                case '*':
                    s = max_expand(ms, s, p, ep);
                    break;
                case '-':
                    s = min_expand(ms, s, p, ep);
                    break;
                default:
                    s++;
                    p = ep;
                    goto init;
                }
            }
            break;
        }
        }
    }
    ms->matchdepth++;
    return s;
}

/* A plain search, charged like the matcher: memcmp at every candidate. */
static const char *cfg_memfind(MatchState *ms, const char *s1, size_t l1, const char *s2, size_t l2)
{
    if (l2 == 0)
        return s1;
    if (l2 > l1)
        return NULL;
    l2--;
    l1 -= l2;
    while (l1 > 0) {
        const char *init = (const char *)memchr(s1, *s2, l1);
        if (init == NULL)
            return NULL;
        init++;
        ms_charge(ms, (size_t)(init - s1) + l2);
        if (memcmp(init, s2 + 1, l2) == 0)
            return init - 1;
        l1 -= (size_t)(init - s1);
        s1 = init;
    }
    return NULL;
}

static ptrdiff_t get_onecapture(MatchState *ms, int i, const char *s, const char *e, const char **cap)
{
    ptrdiff_t capl;
    if (i >= ms->level) {
        if (i != 0)
            luaL_error(ms->L, "invalid capture index %%%d", i + 1);
        *cap = s;
        return e - s;
    }
    capl = ms->capture[i].len;
    *cap = ms->capture[i].init;
    if (capl == CAP_UNFINISHED)
        luaL_error(ms->L, "unfinished capture");
    else if (capl == CAP_POSITION)
        lua_pushinteger(ms->L, (lua_Integer)(ms->capture[i].init - ms->src_init) + 1);
    return capl;
}

static void push_onecapture(MatchState *ms, int i, const char *s, const char *e)
{
    const char *cap;
    ptrdiff_t l = get_onecapture(ms, i, s, e, &cap);
    if (l != CAP_POSITION)
        lua_pushlstring(ms->L, cap, (size_t)l);
}

static int push_captures(MatchState *ms, const char *s, const char *e)
{
    int i;
    int nlevels = (ms->level == 0 && s) ? 1 : ms->level;
    luaL_checkstack(ms->L, nlevels, "too many captures");
    for (i = 0; i < nlevels; i++)
        push_onecapture(ms, i, s, e);
    return nlevels;
}

static int nospecials(const char *p, size_t l)
{
    size_t upto = 0;
    do {
        if (strpbrk(p + upto, SPECIALS))
            return 0;
        upto += strlen(p + upto) + 1;
    } while (upto <= l);
    return 1;
}

static void prepstate(MatchState *ms, lua_State *L, const char *s, size_t ls, const char *p, size_t lp)
{
    ms->L = L;
    ms->box = cfg_box_of(L);
    ms->matchdepth = MAXMATCHDEPTH;
    ms->src_init = s;
    ms->src_end = s + ls;
    ms->p_end = p + lp;
    ms->level = 0;
}

static size_t posrelat(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos;
    if (pos == 0)
        return 1;
    if (pos < -(lua_Integer)len)
        return 1;
    return len - (size_t)(-pos) + 1;
}

static int str_find_aux(lua_State *L, int find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = posrelat(luaL_optinteger(L, 3, 1), ls) - 1;
    MatchState ms;
    if (init > ls) {
        lua_pushnil(L);
        return 1;
    }
    prepstate(&ms, L, s, ls, p, lp);
    ms_charge(&ms, lp);
    if (find && (lua_toboolean(L, 4) || nospecials(p, lp))) {
        const char *s2 = cfg_memfind(&ms, s + init, ls - init, p, lp);
        if (s2) {
            lua_pushinteger(L, (lua_Integer)(s2 - s) + 1);
            lua_pushinteger(L, (lua_Integer)(s2 - s) + (lua_Integer)lp);
            return 2;
        }
    } else {
        const char *s1 = s + init;
        int anchor = (*p == '^');
        if (anchor) {
            p++;
            lp--;
            ms.p_end = p + lp;
        }
        do {
            const char *res;
            ms.level = 0;
            if ((res = cfg_match(&ms, s1, p)) != NULL) {
                if (find) {
                    lua_pushinteger(L, (lua_Integer)(s1 - s) + 1);
                    lua_pushinteger(L, (lua_Integer)(res - s));
                    return push_captures(&ms, NULL, 0) + 2;
                }
                return push_captures(&ms, s1, res);
            }
        } while (s1++ < ms.src_end && !anchor);
    }
    lua_pushnil(L);
    return 1;
}

static int cfg_find(lua_State *L)
{
    return str_find_aux(L, 1);
}

static int cfg_str_match(lua_State *L)
{
    return str_find_aux(L, 0);
}

typedef struct GMatchState {
    const char *src;
    const char *p;
    const char *lastmatch;
    MatchState ms;
} GMatchState;

static int gmatch_aux(lua_State *L)
{
    GMatchState *gm = (GMatchState *)lua_touserdata(L, lua_upvalueindex(3));
    const char *src;
    gm->ms.L = L;
    for (src = gm->src; src <= gm->ms.src_end; src++) {
        const char *e;
        gm->ms.level = 0;
        if ((e = cfg_match(&gm->ms, src, gm->p)) != NULL && e != gm->lastmatch) {
            gm->src = gm->lastmatch = e;
            return push_captures(&gm->ms, src, e);
        }
    }
    gm->src = gm->ms.src_end + 1;
    return 0;
}

static int cfg_gmatch(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = posrelat(luaL_optinteger(L, 3, 1), ls) - 1;
    GMatchState *gm;
    lua_settop(L, 2); /* the closure keeps both strings alive */
    gm = (GMatchState *)lua_newuserdata(L, sizeof(GMatchState));
    if (init > ls)
        init = ls + 1;
    prepstate(&gm->ms, L, s, ls, p, lp);
    gm->src = s + init;
    gm->p = p;
    gm->lastmatch = NULL;
    lua_pushcclosure(L, gmatch_aux, 3);
    return 1;
}

static void add_s(MatchState *ms, luaL_Buffer *b, const char *s, const char *e)
{
    size_t l;
    lua_State *L = ms->L;
    const char *news = lua_tolstring(L, 3, &l);
    const char *p;
    ms_charge(ms, l + 1);
    while ((p = (const char *)memchr(news, L_ESC, l)) != NULL) {
        luaL_addlstring(b, news, (size_t)(p - news));
        p++;
        if (*p == L_ESC) {
            luaL_addlstring(b, p, 1);
        } else if (*p == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (isdigit(uchar(*p))) {
            const char *cap;
            ptrdiff_t resl = get_onecapture(ms, *p - '1', s, e, &cap);
            if (resl == CAP_POSITION)
                luaL_addvalue(b);
            else
                luaL_addlstring(b, cap, (size_t)resl);
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", L_ESC);
        }
        l -= (size_t)(p + 1 - news);
        news = p + 1;
    }
    luaL_addlstring(b, news, l);
}

static int add_value(MatchState *ms, luaL_Buffer *b, const char *s, const char *e, int tr)
{
    lua_State *L = ms->L;
    switch (tr) {
    case LUA_TFUNCTION: {
        int n;
        lua_pushvalue(L, 3);
        n = push_captures(ms, s, e);
        lua_call(L, n, 1);
        break;
    }
    case LUA_TTABLE:
        push_onecapture(ms, 0, s, e);
        lua_gettable(L, 3);
        break;
    default:
        add_s(ms, b, s, e);
        return 1;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return 0;
    }
    if (!lua_isstring(L, -1))
        return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return 1;
}

static int cfg_gsub(lua_State *L)
{
    size_t srcl, lp;
    const char *src = luaL_checklstring(L, 1, &srcl);
    const char *p = luaL_checklstring(L, 2, &lp);
    const char *lastmatch = NULL;
    int tr = lua_type(L, 3);
    lua_Integer max_s = luaL_optinteger(L, 4, (lua_Integer)srcl + 1);
    int anchor = (*p == '^');
    lua_Integer n = 0;
    int changed = 0;
    MatchState ms;
    luaL_Buffer b;
    luaL_argcheck(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
                  "string/function/table expected");
    luaL_buffinit(L, &b);
    if (anchor) {
        p++;
        lp--;
    }
    prepstate(&ms, L, src, srcl, p, lp);
    while (n < max_s) {
        const char *e;
        ms.level = 0;
        if ((e = cfg_match(&ms, src, p)) != NULL && e != lastmatch) {
            n++;
            changed = add_value(&ms, &b, src, e, tr) | changed;
            src = lastmatch = e;
        } else if (src < ms.src_end) {
            luaL_addlstring(&b, src++, 1);
        } else {
            break;
        }
        if (anchor)
            break;
    }
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

/* ------------------------------------------------------------ the sandbox */

static const char *const BASE_KEEP[] = { "assert", "error", "ipairs", "next", "pairs", "select", "tonumber",
                                         "tostring", "type", "string", "table", "math", NULL };
static const char *const STRING_KEEP[] = { "byte", "char", "format", "len", "lower", "reverse", "sub", "upper",
                                           NULL };
static const char *const TABLE_KEEP[] = { "concat", "insert", "remove", "sort", "unpack", NULL };

static void cfg_openlib(lua_State *S, const char *name, lua_CFunction f)
{
#if LUA_VERSION_NUM >= 502
    luaL_requiref(S, name, f, 1);
    lua_pop(S, 1);
#else
    lua_pushcfunction(S, f);
    lua_pushstring(S, name);
    lua_call(S, 1, 0);
#endif
}

static int cfg_listed(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (strcmp(*list, name) == 0)
            return 1;
    return 0;
}

/* Removes every field of the table at idx whose name is not in keep. */
static void cfg_keep_only(lua_State *S, int idx, const char *const *keep)
{
    lua_pushnil(S);
    while (lua_next(S, idx)) {
        lua_pop(S, 1);
        if (lua_type(S, -1) != LUA_TSTRING || !cfg_listed(keep, lua_tostring(S, -1))) {
            lua_pushvalue(S, -1);
            lua_pushnil(S);
            lua_rawset(S, idx); /* clearing a field during lua_next is allowed */
        }
    }
}

static void cfg_pushglobals(lua_State *S)
{
#if LUA_VERSION_NUM >= 502
    lua_pushglobaltable(S);
#else
    lua_pushvalue(S, LUA_GLOBALSINDEX);
#endif
}

static void cfg_setfunc(lua_State *S, int idx, const char *name, lua_CFunction f)
{
    lua_pushcfunction(S, f);
    lua_setfield(S, idx, name);
}

static void cfg_libraries(lua_State *S)
{
    int g;
    cfg_openlib(S, "_G", luaopen_base);
    cfg_openlib(S, LUA_STRLIBNAME, luaopen_string);
    cfg_openlib(S, LUA_TABLIBNAME, luaopen_table);
    cfg_openlib(S, LUA_MATHLIBNAME, luaopen_math);
    cfg_pushglobals(S);
    g = lua_gettop(S);
    cfg_keep_only(S, g, BASE_KEEP);
    /* string is also the __index of every string: change it in place */
    lua_getfield(S, g, LUA_STRLIBNAME);
    cfg_keep_only(S, g + 1, STRING_KEEP);
    cfg_setfunc(S, g + 1, "find", cfg_find);
    cfg_setfunc(S, g + 1, "match", cfg_str_match);
    cfg_setfunc(S, g + 1, "gmatch", cfg_gmatch);
    cfg_setfunc(S, g + 1, "gsub", cfg_gsub);
    cfg_setfunc(S, g + 1, "rep", cfg_rep);
    lua_getfield(S, g, LUA_TABLIBNAME);
    cfg_keep_only(S, g + 2, TABLE_KEEP);
    lua_getfield(S, g + 2, "sort");
    lua_pushcclosure(S, cfg_sort, 1);
    lua_setfield(S, g + 2, "sort");
    lua_settop(S, g - 1);
}

/* ---------------------------------------------- checking the result */

typedef struct cfg_walk {
    size_t values;
    int depth;
    const void *open[CFG_MAX_DEPTH + 1]; /* the tables being walked: a cycle returns to one */
    char path[CFG_PATH_MAX];
    size_t pathlen;
} cfg_walk;

static const char *walk_where(cfg_walk *w)
{
    return w->pathlen ? w->path : "the top level";
}

/* Appends the key at idx to the path (shortened when too long). */
static void walk_push_key(lua_State *S, cfg_walk *w, int idx)
{
    char piece[64];
    size_t n, room;
    if (lua_type(S, idx) == LUA_TSTRING) {
        size_t len, i, ident = 1;
        const char *k = lua_tolstring(S, idx, &len);
        for (i = 0; i < len; i++)
            if (!(isalnum(uchar(k[i])) || k[i] == '_'))
                ident = 0;
        if (len == 0 || isdigit(uchar(k[0])))
            ident = 0;
        if (ident && len < 40) {
            (void)snprintf(piece, sizeof piece, "%s%s", w->pathlen ? "." : "", k);
        } else {
            char safe[41];
            for (i = 0; i < len && i < 40; i++)
                safe[i] = isprint(uchar(k[i])) && k[i] != '"' ? k[i] : '?';
            safe[i] = '\0';
            (void)snprintf(piece, sizeof piece, "[\"%s%s\"]", safe, len > 40 ? "..." : "");
        }
    } else {
        (void)snprintf(piece, sizeof piece, "[%.14g]", (double)lua_tonumber(S, idx));
    }
    n = strlen(piece);
    room = sizeof w->path - 1 - w->pathlen;
    if (n > room)
        n = room;
    memcpy(w->path + w->pathlen, piece, n);
    w->pathlen += n;
    w->path[w->pathlen] = '\0';
}

static int walk_fail(lua_State *S, cfg_walk *w, const char *what)
{
    return luaL_error(S, "%s at %s (a config holds only tables, strings, finite numbers and booleans)", what,
                      walk_where(w));
}

static int cfg_finite(lua_Number x)
{
    return isfinite(x);
}

static void walk_value(lua_State *S, cfg_walk *w, int idx);

static void walk_table(lua_State *S, cfg_walk *w, int idx)
{
    const void *self = lua_topointer(S, idx);
    int i;
    for (i = 0; i < w->depth; i++)
        if (w->open[i] == self)
            walk_fail(S, w, "a cycle");
    if (w->depth >= CFG_MAX_DEPTH)
        luaL_error(S, "tables nested deeper than %d at %s", CFG_MAX_DEPTH, walk_where(w));
    if (lua_getmetatable(S, idx))
        walk_fail(S, w, "a table with a metatable");
    /* the copy walks the same tables without allocating here: room for it */
    luaL_checkstack(S, 4, "config nested too deep");
    w->open[w->depth++] = self;
    lua_pushnil(S);
    while (lua_next(S, idx)) {
        size_t saved = w->pathlen;
        int top = lua_gettop(S);
        int kt = lua_type(S, top - 1);
        if (++w->values > CFG_MAX_VALUES)
            luaL_error(S, "the config holds more than %d values", CFG_MAX_VALUES);
        if (kt == LUA_TNUMBER) {
            if (!cfg_finite(lua_tonumber(S, top - 1)))
                walk_fail(S, w, "a key that is not a finite number");
        } else if (kt != LUA_TSTRING) {
            char what[48];
            (void)snprintf(what, sizeof what, "a key that is a %s", lua_typename(S, kt));
            walk_fail(S, w, what);
        }
        walk_push_key(S, w, top - 1);
        walk_value(S, w, top);
        w->pathlen = saved;
        w->path[saved] = '\0';
        lua_pop(S, 1);
    }
    w->depth--;
}

static void walk_value(lua_State *S, cfg_walk *w, int idx)
{
    int t = lua_type(S, idx);
    switch (t) {
    case LUA_TNIL: case LUA_TBOOLEAN: case LUA_TSTRING:
        break;
    case LUA_TNUMBER:
        if (!cfg_finite(lua_tonumber(S, idx)))
            walk_fail(S, w, "a number that is not finite");
        break;
    case LUA_TTABLE:
        walk_table(S, w, idx);
        break;
    default: {
        char what[48];
        (void)snprintf(what, sizeof what, "a %s", lua_typename(S, t));
        walk_fail(S, w, what);
    }
    }
}

/* ---------------------------------------------- running the chunk */

static const char CFG_RESULT_KEY = 0; /* its address keys the result in the registry */

static int cfg_run(lua_State *S)
{
    cfg_box *b = (cfg_box *)lua_touserdata(S, 1);
    cfg_walk w;
    int status;
    lua_settop(S, 0);
    cfg_libraries(S);
    if (b->len > 0 && b->text[0] == '\033')
        return luaL_error(S, "a config must be text, not a binary chunk");
#if LUA_VERSION_NUM >= 502
    status = luaL_loadbufferx(S, b->text, b->len, b->name, "t");
#else
    status = luaL_loadbuffer(S, b->text, b->len, b->name);
#endif
    if (status != 0) {
        if (status == LUA_ERRMEM)
            b->load_oom = 1; /* lua_error below re-raises it as a plain error */
        return lua_error(S);
    }
    lua_sethook(S, cfg_hook, LUA_MASKCOUNT, CFG_HOOK_COUNT);
    lua_call(S, 0, 1);
    lua_sethook(S, NULL, 0, 0);
    /* keep the result where the caller finds it without allocating */
    lua_pushlightuserdata(S, (void *)&CFG_RESULT_KEY);
    lua_pushvalue(S, 1);
    lua_rawset(S, LUA_REGISTRYINDEX);
    memset(&w, 0, sizeof w);
    walk_value(S, &w, 1);
    /* the copy needs two slots per level; nothing allocates after this */
    luaL_checkstack(S, 2 * CFG_MAX_DEPTH + 8, "config nested too deep");
    return 0;
}

static int cfg_pcall(lua_State *S, lua_CFunction f, void *ud)
{
#if LUA_VERSION_NUM >= 502
    lua_pushcfunction(S, f); /* a light function: no allocation */
    lua_pushlightuserdata(S, ud);
    return lua_pcall(S, 1, 0, 0);
#else
    return lua_cpcall(S, f, ud);
#endif
}

/* Pushes onto L a copy of the (checked) value at idx of S. S is only read. */
static void cfg_copy(lua_State *S, int idx, lua_State *L)
{
    switch (lua_type(S, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(S, idx, &n);
        lua_pushlstring(L, s, n);
        break;
    }
    case LUA_TNUMBER:
#if LUA_VERSION_NUM >= 503
        if (lua_isinteger(S, idx)) {
            lua_pushinteger(L, lua_tointeger(S, idx));
            break;
        }
#endif
        lua_pushnumber(L, lua_tonumber(S, idx));
        break;
    case LUA_TBOOLEAN:
        lua_pushboolean(L, lua_toboolean(S, idx));
        break;
    case LUA_TTABLE:
        luaL_checkstack(L, 4, "config nested too deep");
        lua_newtable(L);
        lua_pushnil(S);
        while (lua_next(S, idx)) {
            int top = lua_gettop(S);
            cfg_copy(S, top - 1, L);
            cfg_copy(S, top, L);
            lua_rawset(L, -3);
            lua_pop(S, 1);
        }
        break;
    default:
        lua_pushnil(L);
        break;
    }
}

static void cfg_close(cfg_box *b)
{
    if (b->S) {
        lua_close(b->S);
        b->S = NULL;
    }
}

static int cfg_gc(lua_State *L)
{
    cfg_close((cfg_box *)luaL_checkudata(L, 1, CFG_MT));
    return 0;
}

/* nil, "config", message: the message says which limit, or what the chunk
 * raised (shortened, as it may quote the file). */
static int cfg_fail(lua_State *L, cfg_box *b, int status)
{
    char msg[CFG_MSG_MAX];
    if (b->timed_out) {
        (void)snprintf(msg, sizeof msg, "the config runs too long (stopped after %g s)", b->timeout);
    } else if (status == LUA_ERRMEM || b->load_oom || b->S == NULL) {
        if (b->cap % CFG_MIB == 0)
            (void)snprintf(msg, sizeof msg, "the config needs more than %lu MiB of memory",
                     (unsigned long)(b->cap / CFG_MIB));
        else
            (void)snprintf(msg, sizeof msg, "the config needs more than %lu bytes of memory", (unsigned long)b->cap);
    } else if (lua_type(b->S, -1) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(b->S, -1, &n);
        if (n >= sizeof msg)
            n = sizeof msg - 1;
        memcpy(msg, s, n);
        msg[n] = '\0';
    } else {
        (void)snprintf(msg, sizeof msg, "(error object is a %s value)", lua_typename(b->S, lua_type(b->S, -1)));
    }
    cfg_close(b);
    lua_pushnil(L);
    lua_pushliteral(L, "config");
    lua_pushstring(L, msg);
    return 3;
}

/* config_load(text, chunkname [, max_memory [, timeout]]) -> value | nil, "config", msg
 * Runs text as a Lua chunk in a fresh capped state (see the top of the file)
 * and returns a plain copy of what it returns. */
static int l_config_load(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    const char *name = luaL_checkstring(L, 2);
    lua_Integer cap = luaL_optinteger(L, 3, CFG_DEFAULT_CAP);
    lua_Number timeout = luaL_optnumber(L, 4, 1.0);
    struct timespec now;
    cfg_box *b;
    int status;
    luaL_argcheck(L, cap >= CFG_MIN_CAP && cap <= CFG_MAX_CAP, 3, "must be 65536 .. 1073741824 bytes");
    luaL_argcheck(L, timeout > 0 && timeout <= 3600, 4, "must be more than 0 and at most 3600 seconds");
    b = (cfg_box *)lua_newuserdata(L, sizeof *b);
    memset(b, 0, sizeof *b);
    luaL_getmetatable(L, CFG_MT);
    lua_setmetatable(L, -2);
    b->cap = (size_t)cap;
    b->timeout = (double)timeout;
    b->text = text;
    b->len = len;
    b->name = name;
    b->steps = CFG_STEPS;
    clock_gettime(CLOCK_MONOTONIC, &now);
    {
        double whole = (double)(long)b->timeout;
        long ns = now.tv_nsec + (long)((b->timeout - whole) * 1e9);
        b->deadline.tv_sec = now.tv_sec + (time_t)whole + ns / 1000000000L;
        b->deadline.tv_nsec = ns % 1000000000L;
    }
    b->S = lua_newstate(cfg_alloc, b);
    if (b->S == NULL)
        return cfg_fail(L, b, LUA_ERRMEM);
    status = cfg_pcall(b->S, cfg_run, b);
    if (status != 0)
        return cfg_fail(L, b, status);
    lua_settop(b->S, 0);
    /* cfg_run grew the stack already and nothing allocated since: this only
     * records the room, and failing it cannot raise in 5.2+ */
    if (!lua_checkstack(b->S, 2 * CFG_MAX_DEPTH + 8))
        return cfg_fail(L, b, LUA_ERRMEM);
    lua_pushlightuserdata(b->S, (void *)&CFG_RESULT_KEY);
    lua_rawget(b->S, LUA_REGISTRYINDEX);
    cfg_copy(b->S, 1, L);
    cfg_close(b);
    return 1;
}

void sa_lconfig_open(lua_State *L)
{
    if (luaL_newmetatable(L, CFG_MT)) {
        lua_pushcfunction(L, cfg_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_config_load);
    lua_setfield(L, -2, "config_load");
}
