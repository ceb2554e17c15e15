/* Redis token store on hiredis: GET/SET PX/DEL of opaque values, and a lock
 * per key (SET NX PX with a random owner, released by a server-side script
 * only by its owner). One connection per store, made on open and remade on
 * the next call after it breaks; a broken connection is an error for the call
 * in flight and never a half-written value (Redis writes whole values). */
#ifndef SA_STORE_REDIS_H
#define SA_STORE_REDIS_H

#include <stddef.h>

#include "buf.h"
#include "sa_err.h"

#define SA_REDIS_OWNER_LEN 24       /* characters of a lock owner value */
#define SA_REDIS_MAX_VALUE 1048576 /* 1 MiB */

typedef struct sa_redis sa_redis;

typedef struct sa_redis_opts {
    const char *host;               /* NUL-terminated; default "127.0.0.1" */
    int port;                       /* default 6379 */
    const char *username;           /* NULL: AUTH with the password alone */
    size_t username_len;
    const char *password;           /* NULL: no AUTH */
    size_t password_len;
    int db;                         /* SELECT when not 0 */
    long connect_timeout_ms;        /* default 2000 */
    long timeout_ms;                /* per command; default 5000 */
    const void *secret;             /* NULL, or encrypt values (AES-256-GCM) */
    size_t secret_len;
} sa_redis_opts;

/* Copy the options (password wiped on free) and connect; NULL with err when
 * the server cannot be reached, refuses AUTH or SELECT. SA_ENETWORK for
 * connection failures, SA_ESTORAGE for errors the server returns. */
sa_redis *sa_redis_new(const sa_redis_opts *o, sa_err *err);

/* Close and wipe. Accepts NULL. */
void sa_redis_free(sa_redis *r);

/* 1 found (value appended to out, decrypted), 0 absent, -1 err. */
int sa_redis_get(sa_redis *r, const char *key, size_t klen, sa_buf *out, sa_err *err);

/* SET key value [PX ttl_ms] (ttl_ms <= 0: no expiry). 0 ok, -1 err. */
int sa_redis_set(sa_redis *r, const char *key, size_t klen, const void *val, size_t vlen,
                 long long ttl_ms, sa_err *err);

/* DEL key. 0 ok, -1 err. */
int sa_redis_del(sa_redis *r, const char *key, size_t klen, sa_err *err);

/* SET key <random owner> NX PX ttl_ms, once, without waiting: 1 taken (owner
 * filled: SA_REDIS_OWNER_LEN characters + NUL), 0 held by someone else, -1
 * with err. The caller waits between tries (lua/smartauth/store/lock.lua). */
int sa_redis_try_lock(sa_redis *r, const char *key, size_t klen, long long ttl_ms,
                      char owner[SA_REDIS_OWNER_LEN + 1], sa_err *err);

/* Delete key only if it still holds owner (atomic, server-side script).
 * 1 released, 0 not ours (expired or taken over), -1 err. */
int sa_redis_unlock(sa_redis *r, const char *key, size_t klen, const char *owner,
                    size_t olen, sa_err *err);

#endif
