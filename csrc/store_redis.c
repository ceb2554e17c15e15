#include "store_redis.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>

#include "aead.h"
#include "clock.h"
#include "crypto.h"

struct sa_redis {
    redisContext *c;
    char *host;
    int port;
    char *username;
    size_t username_len;
    char *password;
    size_t password_len;
    int db;
    long connect_timeout_ms, timeout_ms;
    long cur_timeout_ms;            /* what the socket's timeout is set to now */
    int has_key;
    sa_aead_key key;
};

static const char unlock_script[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('del', KEYS[1]) else return 0 end";

/* ------------------------------------------------------------- SIGPIPE */

/* hiredis writes with write(2): a peer that went away raises SIGPIPE, which
 * would kill the host process. Block it around each call and swallow one that
 * we caused (the technique libpq uses), leaving the host's handling alone. */
typedef struct {
    sigset_t old;
    int was_pending;
    int ok;
} pipe_guard;

static void pipe_block(pipe_guard *g)
{
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    g->ok = pthread_sigmask(SIG_BLOCK, &set, &g->old) == 0;
    g->was_pending = 0;
    if (g->ok && sigpending(&pend) == 0)
        g->was_pending = sigismember(&pend, SIGPIPE) == 1;
}

static void pipe_unblock(pipe_guard *g)
{
    sigset_t set, pend;
    if (!g->ok)
        return;
    if (!g->was_pending && sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE) == 1) {
        struct timespec zero = { 0, 0 };
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* ---------------------------------------------------------- connection */

static struct timeval tv_ms(long ms)
{
    struct timeval tv;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

static void drop(sa_redis *r)
{
    if (r->c) {
        pipe_guard g;
        pipe_block(&g);
        redisFree(r->c);
        pipe_unblock(&g);
        r->c = NULL;
    }
}

static int net_err(sa_redis *r, const char *what, sa_err *err)
{
    const char *why = r->c && r->c->errstr[0] ? r->c->errstr : "connection lost";
    int code = r->c ? r->c->err : 0;
    sa_err_set(err, SA_ENETWORK, code, "redis at %s:%d: %s: %s", r->host, r->port, what,
               why);
    drop(r);
    return -1;
}

static long now_ms(void)
{
    return (long)(sa_clock_monotonic() * 1000.0);
}

/* The socket timeout hiredis applies is per read and per write: lower it to
 * what is left before the deadline (never raise it mid-command). 0, or -1
 * with *timed_out set when nothing is left. */
static int bound(sa_redis *r, long deadline, int *timed_out)
{
    long left = deadline - now_ms();
    if (left <= 0) {
        *timed_out = 1;
        return -1;
    }
    if (left < r->cur_timeout_ms) {
        if (redisSetTimeout(r->c, tv_ms(left)) != REDIS_OK)
            return -1;
        r->cur_timeout_ms = left;
    }
    return 0;
}

/* One command and its whole reply within timeout_ms: hiredis's own blocking
 * call bounds each read only, so a peer trickling a byte at a time could hold
 * one command for minutes. NULL on failure (*timed_out says whether the
 * deadline passed); the connection is then in an unknown state. */
static redisReply *exchange(sa_redis *r, int argc, const char **argv, const size_t *lens,
                            int *timed_out)
{
    long deadline = now_ms() + r->timeout_ms;
    void *reply = NULL;
    int done = 0;
    *timed_out = 0;
    if (r->cur_timeout_ms != r->timeout_ms) {
        if (redisSetTimeout(r->c, tv_ms(r->timeout_ms)) != REDIS_OK)
            return NULL;
        r->cur_timeout_ms = r->timeout_ms;
    }
    if (redisAppendCommandArgv(r->c, argc, argv, lens) != REDIS_OK)
        return NULL;
    while (!done) {
        if (bound(r, deadline, timed_out) != 0)
            return NULL;
        if (redisBufferWrite(r->c, &done) != REDIS_OK)
            goto io_failed;
    }
    for (;;) {
        if (redisGetReplyFromReader(r->c, &reply) != REDIS_OK)
            return NULL;
        if (reply)
            return reply;
        if (bound(r, deadline, timed_out) != 0)
            return NULL;
        if (redisBufferRead(r->c) != REDIS_OK)
            goto io_failed;
    }
io_failed:
    /* the socket timeout (set to the time left) ran out: EAGAIN */
    if (errno == EAGAIN || errno == EWOULDBLOCK || now_ms() >= deadline)
        *timed_out = 1;
    return NULL;
}

/* Runs one command; the reply (never NULL on success) is the caller's. A
 * NULL reply means the connection is broken: it is dropped. */
static redisReply *command(sa_redis *r, int argc, const char **argv, const size_t *lens,
                           const char *what, sa_err *err)
{
    redisReply *rep;
    int timed_out;
    pipe_guard g;
    pipe_block(&g);
    rep = exchange(r, argc, argv, lens, &timed_out);
    pipe_unblock(&g);
    if (!rep && timed_out) {
        sa_err_set(err, SA_ETIMEOUT, ETIMEDOUT, "redis at %s:%d: %s: timed out after %ld ms",
                   r->host, r->port, what, r->timeout_ms);
        drop(r);
        return NULL;
    }
    if (!rep) {
        net_err(r, what, err);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        /* Server error text ("WRONGPASS ...", "NOAUTH ...") carries no secret. */
        sa_err_set(err, SA_ESTORAGE, 0, "redis at %s:%d: %s: %.120s", r->host, r->port, what,
                   rep->str ? rep->str : "error");
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

static int status_ok(redisReply *rep)
{
    return rep->type == REDIS_REPLY_STATUS && rep->len == 2 && memcmp(rep->str, "OK", 2) == 0;
}

static int connect_now(sa_redis *r, sa_err *err)
{
    redisReply *rep;
    pipe_guard g;
    pipe_block(&g);
    r->c = redisConnectWithTimeout(r->host, r->port, tv_ms(r->connect_timeout_ms));
    pipe_unblock(&g);
    if (!r->c)
        return sa_err_set(err, SA_ENOMEM, 0, "out of memory");
    if (r->c->err)
        return net_err(r, "cannot connect", err);
    /* hiredis 0.14 does not ask for it: keep the socket out of children. */
    (void)fcntl(r->c->fd, F_SETFD, fcntl(r->c->fd, F_GETFD) | FD_CLOEXEC);
    if (redisSetTimeout(r->c, tv_ms(r->timeout_ms)) != REDIS_OK)
        return net_err(r, "cannot set timeout", err);
    r->cur_timeout_ms = r->timeout_ms;
    if (r->password) {
        const char *argv[3] = { "AUTH", r->username, r->password };
        size_t lens[3] = { 4, r->username_len, r->password_len };
        if (r->username)
            rep = command(r, 3, argv, lens, "AUTH", err);
        else {
            argv[1] = r->password;
            lens[1] = r->password_len;
            rep = command(r, 2, argv, lens, "AUTH", err);
        }
        if (!rep) {
            drop(r);
            return -1;
        }
        freeReplyObject(rep);
    }
    if (r->db != 0) {
        char num[16];
        const char *argv[2] = { "SELECT", num };
        size_t lens[2] = { 6, 0 };
        lens[1] = (size_t)snprintf(num, sizeof num, "%d", r->db);
        rep = command(r, 2, argv, lens, "SELECT", err);
        if (!rep) {
            drop(r);
            return -1;
        }
        freeReplyObject(rep);
    }
    /* A server that wants a password we do not have says so here, not on
     * the first real command. */
    {
        const char *argv[1] = { "PING" };
        size_t lens[1] = { 4 };
        rep = command(r, 1, argv, lens, "PING", err);
        if (!rep) {
            drop(r);
            return -1;
        }
        freeReplyObject(rep);
    }
    return 0;
}

/* A connection is usable when it exists and the server has not closed it
 * while it sat idle (readable with no request outstanding means EOF or junk):
 * then it is remade before the command, so a restarted server costs no
 * failed call. */
static int ensure(sa_redis *r, sa_err *err)
{
    if (r->c) {
        struct pollfd p;
        p.fd = r->c->fd;
        p.events = POLLIN;
        p.revents = 0;
        if (r->c->err || poll(&p, 1, 0) != 0)
            drop(r);
    }
    if (!r->c)
        return connect_now(r, err);
    return 0;
}

static char *dup_bytes(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

sa_redis *sa_redis_new(const sa_redis_opts *o, sa_err *err)
{
    sa_redis *r = calloc(1, sizeof *r);
    const char *host = o->host ? o->host : "127.0.0.1";
    if (!r) {
        sa_err_set(err, SA_ENOMEM, 0, "out of memory");
        return NULL;
    }
    r->port = o->port ? o->port : 6379;
    r->db = o->db;
    r->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 2000;
    r->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
    r->host = dup_bytes(host, strlen(host));
    if (!r->host)
        goto nomem;
    if (o->username) {
        r->username = dup_bytes(o->username, o->username_len);
        r->username_len = o->username_len;
        if (!r->username)
            goto nomem;
    }
    if (o->password) {
        r->password = dup_bytes(o->password, o->password_len);
        r->password_len = o->password_len;
        if (!r->password)
            goto nomem;
    }
    if (o->secret) {
        if (sa_aead_key_derive(&r->key, o->secret, o->secret_len, err) != 0)
            goto fail;
        r->has_key = 1;
    }
    if (connect_now(r, err) != 0)
        goto fail;
    return r;
nomem:
    sa_err_set(err, SA_ENOMEM, 0, "out of memory");
fail:
    sa_redis_free(r);
    return NULL;
}

void sa_redis_free(sa_redis *r)
{
    if (!r)
        return;
    drop(r);
    if (r->password) {
        OPENSSL_cleanse(r->password, r->password_len);
        free(r->password);
    }
    free(r->username);
    free(r->host);
    sa_aead_key_wipe(&r->key);
    free(r);
}

/* ---------------------------------------------------------------- data */

int sa_redis_get(sa_redis *r, const char *key, size_t klen, sa_buf *out, sa_err *err)
{
    const char *argv[2] = { "GET", key };
    size_t lens[2] = { 3, klen };
    redisReply *rep;
    int rc = -1;
    if (ensure(r, err) != 0 || !(rep = command(r, 2, argv, lens, "GET", err)))
        return -1;
    if (rep->type == REDIS_REPLY_NIL) {
        rc = 0;
    } else if (rep->type != REDIS_REPLY_STRING) {
        sa_err_set(err, SA_ESTORAGE, 0, "redis: GET answered with reply type %d", rep->type);
    } else if (rep->len == 0) {
        sa_err_set(err, SA_ESTORAGE, 0, "redis: entry is empty (corrupt)");
    } else if (r->has_key) {
        sa_err e2;
        if (!sa_aead_is_sealed(rep->str, rep->len))
            sa_err_set(err, SA_ESTORAGE, SA_AEAD_EFORMAT,
                       "redis: entry is not encrypted, but this store has a key: refused");
        else if (sa_aead_open(&r->key, key, klen, rep->str, rep->len, out, &e2) != 0)
            sa_err_set(err, SA_ESTORAGE, e2.code, "redis: %s", e2.msg);
        else
            rc = 1;
    } else if (sa_aead_is_sealed(rep->str, rep->len)) {
        sa_err_set(err, SA_ESTORAGE, SA_AEAD_EFORMAT,
                   "redis: entry is encrypted, but this store has no key");
    } else if (sa_buf_append(out, rep->str, rep->len) != 0) {
        sa_err_set(err, SA_ENOMEM, 0, "out of memory");
    } else {
        rc = 1;
    }
    if (rep->str)
        OPENSSL_cleanse(rep->str, rep->len);
    freeReplyObject(rep);
    return rc;
}

int sa_redis_set(sa_redis *r, const char *key, size_t klen, const void *val, size_t vlen,
                 long long ttl_ms, sa_err *err)
{
    const char *argv[5] = { "SET", key, val, "PX", NULL };
    size_t lens[5] = { 3, klen, vlen, 2, 0 };
    char num[24];
    sa_buf sealed = SA_BUF_INIT;
    redisReply *rep;
    int rc = -1;
    if (vlen > SA_REDIS_MAX_VALUE)
        return sa_err_set(err, SA_EARG, 0, "entry is larger than %d bytes",
                          SA_REDIS_MAX_VALUE);
    if (r->has_key) {
        if (sa_aead_seal(&r->key, key, klen, val, vlen, &sealed, err) != 0)
            goto done;
        argv[2] = sealed.data;
        lens[2] = sealed.len;
    }
    if (ttl_ms > 0) {
        lens[4] = (size_t)snprintf(num, sizeof num, "%lld", ttl_ms);
        argv[4] = num;
    }
    if (ensure(r, err) != 0 || !(rep = command(r, ttl_ms > 0 ? 5 : 3, argv, lens, "SET", err)))
        goto done;
    if (status_ok(rep))
        rc = 0;
    else
        sa_err_set(err, SA_ESTORAGE, 0, "redis: SET was not acknowledged");
    freeReplyObject(rep);
done:
    sa_buf_free(&sealed);
    return rc;
}

int sa_redis_del(sa_redis *r, const char *key, size_t klen, sa_err *err)
{
    const char *argv[2] = { "DEL", key };
    size_t lens[2] = { 3, klen };
    redisReply *rep;
    if (ensure(r, err) != 0 || !(rep = command(r, 2, argv, lens, "DEL", err)))
        return -1;
    freeReplyObject(rep);
    return 0;
}

/* ---------------------------------------------------------------- lock */

int sa_redis_try_lock(sa_redis *r, const char *key, size_t klen, long long ttl_ms,
                      char owner[SA_REDIS_OWNER_LEN + 1], sa_err *err)
{
    unsigned char rnd[18];
    sa_buf b = SA_BUF_INIT;
    char px[24];
    const char *argv[6] = { "SET", key, owner, "NX", "PX", px };
    size_t lens[6] = { 3, klen, SA_REDIS_OWNER_LEN, 2, 2, 0 };
    redisReply *rep;
    int rc;

    if (ttl_ms <= 0)
        return sa_err_set(err, SA_EARG, 0, "lock ttl must be positive");
    if (sa_random_bytes(rnd, sizeof rnd, err) != 0)
        return -1;
    if (sa_b64_encode(&b, rnd, sizeof rnd, 1) != 0 || b.len != SA_REDIS_OWNER_LEN) {
        sa_buf_free(&b);
        return sa_err_set(err, SA_ENOMEM, 0, "out of memory");
    }
    memcpy(owner, b.data, SA_REDIS_OWNER_LEN + 1);
    sa_buf_free(&b);
    lens[5] = (size_t)snprintf(px, sizeof px, "%lld", ttl_ms);
    if (ensure(r, err) != 0 || !(rep = command(r, 6, argv, lens, "SET NX", err)))
        return -1;
    if (status_ok(rep))
        rc = 1;
    else if (rep->type == REDIS_REPLY_NIL)
        rc = 0; /* held by someone else */
    else
        rc = sa_err_set(err, SA_ESTORAGE, 0, "redis: SET NX answered with reply type %d",
                        rep->type);
    freeReplyObject(rep);
    return rc;
}

int sa_redis_unlock(sa_redis *r, const char *key, size_t klen, const char *owner,
                    size_t olen, sa_err *err)
{
    const char *argv[5] = { "EVAL", unlock_script, "1", key, owner };
    size_t lens[5] = { 4, sizeof unlock_script - 1, 1, klen, olen };
    redisReply *rep;
    int rc;
    if (ensure(r, err) != 0 || !(rep = command(r, 5, argv, lens, "EVAL", err)))
        return -1;
    if (rep->type == REDIS_REPLY_INTEGER)
        rc = rep->integer == 1;
    else
        rc = sa_err_set(err, SA_ESTORAGE, 0, "redis: unlock answered with reply type %d",
                        rep->type);
    freeReplyObject(rep);
    return rc;
}
