/* A tiny assertion kit for the C core tests: counts, never aborts. */
#ifndef SA_CHECK_H
#define SA_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (cond) {                                                             \
            check_passed++;                                                     \
        } else {                                                                \
            check_failed++;                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                       \
    } while (0)

#define CHECK_MEM(buf, len, lit)                                                \
    CHECK((len) == sizeof(lit) - 1 && memcmp((buf), (lit), (len)) == 0)

#define CHECK_DONE(name)                                                        \
    (printf("%s: %d passed, %d failed\n", (name), check_passed, check_failed),  \
     check_failed ? 1 : 0)

#endif
