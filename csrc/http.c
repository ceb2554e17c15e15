/* The libcurl multi engine: process-wide init, the multi handle and its
 * socket and timer callbacks, the loop (step, wait, fds, timeout), the done
 * queue, idle handles kept for reuse, and a request's lifecycle. Setting a
 * handle up is in http_setup.c, reading the answer in http_resp.c; the
 * request object they share is in http_impl.h, the engine stays here. */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#include "clock.h"
#include "http_impl.h"

#define SA_IDLE_EASY 8

/* An easy handle kept for reuse, still set up for its last request: the
 * same request again (a token grant, a polled API call) skips the reset
 * and the setup, as a program reusing one handle would. */
typedef struct sa_idle {
    CURL *easy;
    struct curl_slist *hdrs;    /* still its CURLOPT_HTTPHEADER */
    sa_buf key;                 /* empty: unknown state, reset before use */
    sa_buf keypem;              /* still its CURLOPT_SSLKEY_BLOB (not copied) */
} sa_idle;

/* A socket libcurl wants watched (its socket callback): what is
 * CURL_POLL_IN, _OUT or _INOUT. */
typedef struct sa_sock {
    curl_socket_t fd;
    int what;
} sa_sock;

struct sa_http {
    CURLM *multi;
    /* libcurl's socket API, not curl_multi_fdset/_wait: any descriptor
     * number works (an fd_set stops at FD_SETSIZE, 1024). */
    sa_sock *socks;
    size_t nsocks, capsocks;
    struct pollfd *pfds;        /* poll's copy of socks, capsocks long */
    double timer_at;            /* monotonic deadline of libcurl's timer; <0 none */
    sa_http_req *reqs;          /* attached (running or done, not yet freed) */
    sa_http_req *qhead, *qtail; /* finished, not yet handed out */
    int running;
    /* Easy handles of freed requests, reset and kept: creating and setting
     * up a fresh one costs about a fifth of a loopback round trip. */
    sa_idle idle[SA_IDLE_EASY];
    int nidle;
    int nparked;                /* requests waiting for their CA bundle */
    double spin_max;            /* seconds; 0 = never spin (sa_http_set_spin) */
    double wait_est;            /* moving average of blocking waits, seconds */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init_once(void)
{
    /* curl_global_init initialises OpenSSL too; it is never undone because
     * other code in the process may still use libcurl (libcurl-thread(3)). */
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int sa_http_global_init(sa_err *err)
{
    pthread_once(&global_once, global_init_once);
    if (global_rc != CURLE_OK)
        return sa_err_set(err, SA_ENETWORK, (long)global_rc,
                          "libcurl initialisation failed: %s",
                          curl_easy_strerror(global_rc));
    return 0;
}

/* CURLMOPT_SOCKETFUNCTION: keeps the list of sockets to watch. Each
 * socket's place in socks is kept with libcurl (curl_multi_assign, as
 * index + 1): with 10,000 sockets a scan per call made this quadratic. */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    sa_http *h = userp;
    size_t i = (size_t)(uintptr_t)socketp;
    (void)easy;
    if (i > 0 && i <= h->nsocks && h->socks[i - 1].fd == s) {
        i--;
    } else {
        /* not assigned (a new socket), or a stale place: look for it */
        for (i = 0; i < h->nsocks && h->socks[i].fd != s; i++)
            ;
    }
    if (what == CURL_POLL_REMOVE) {
        if (i < h->nsocks) {
            h->socks[i] = h->socks[--h->nsocks];
            if (i < h->nsocks) /* the last one moved into the gap */
                curl_multi_assign(h->multi, h->socks[i].fd, (void *)(uintptr_t)(i + 1));
        }
        return 0;
    }
    if (i == h->nsocks) {
        if (h->nsocks == h->capsocks) {
            size_t ncap = h->capsocks ? h->capsocks * 2 : 8;
            sa_sock *ns = realloc(h->socks, ncap * sizeof *ns);
            struct pollfd *np;
            if (!ns)
                return -1; /* libcurl fails the transfers: CURLM_ABORTED_BY_CALLBACK */
            h->socks = ns;
            np = realloc(h->pfds, ncap * sizeof *np);
            if (!np)
                return -1;
            h->pfds = np;
            h->capsocks = ncap;
        }
        h->socks[h->nsocks++].fd = s;
        curl_multi_assign(h->multi, s, (void *)(uintptr_t)(i + 1));
    }
    h->socks[i].what = what;
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: when libcurl wants curl_multi_socket_action
 * with CURL_SOCKET_TIMEOUT (0: as soon as possible). */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    sa_http *h = userp;
    (void)multi;
    h->timer_at = timeout_ms < 0 ? -1 : sa_clock_monotonic() + (double)timeout_ms / 1000.0;
    return 0;
}

/* libcurl's OpenSSL calls can leave errors queued (a failed handshake
 * leaves "shutdown while in init"); a stale one makes the next handshake on
 * this thread fail (SSL_get_error reads the queue first: nginx, LuaSec). */
static void clear_tls_errors(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/* libcurl 7.88 creates a wakeup socketpair in curl_multi_init (for
 * curl_multi_poll and _wakeup, which this engine does not use) without
 * close-on-exec. The pair takes the lowest free descriptors: found here
 * beforehand, and marked after if they then hold sockets that lack the
 * flag (newer libcurl sets it itself). */
#define SA_PROBE_FDS 4
static CURLM *multi_init_cloexec(void)
{
    int probe[SA_PROBE_FDS], n, i;
    CURLM *m;
    for (n = 0; n < SA_PROBE_FDS; n++)
        if ((probe[n] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
            break;
    for (i = 0; i < n; i++)
        close(probe[i]);
    m = curl_multi_init();
    for (i = 0; m && i < n; i++) {
        struct stat st;
        int fl = fcntl(probe[i], F_GETFD);
        if (fl >= 0 && !(fl & FD_CLOEXEC) && fstat(probe[i], &st) == 0 && S_ISSOCK(st.st_mode))
            fcntl(probe[i], F_SETFD, fl | FD_CLOEXEC);
    }
    return m;
}

sa_http *sa_http_new(sa_err *err)
{
    sa_http *h;
    if (sa_http_global_init(err) != 0)
        return NULL;
    h = calloc(1, sizeof *h);
    if (!h) {
        sa_err_set(err, SA_ENOMEM, 0, "out of memory");
        return NULL;
    }
    h->multi = multi_init_cloexec();
    if (!h->multi) {
        free(h);
        sa_err_set(err, SA_ENOMEM, 0, "curl_multi_init failed");
        return NULL;
    }
    /* Keep enough idle connections for a process that talks to a handful of
     * providers and APIs at once. */
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, 32L);
    /* HTTP/2: concurrent requests to one server share a connection, as
     * many as the server allows (its SETTINGS) up to 1000. High, because
     * libcurl 7.88 gives every transfer beyond a full connection a new
     * connection of its own (it waits only for the very first handshake).
     * No cap on connections per host: an HTTP/1.1 server still gets one
     * connection per request in flight, as before. */
    curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, 1000L);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    h->timer_at = -1;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    h->spin_max = SA_HTTP_DEFAULT_SPIN;
    h->wait_est = SA_HTTP_DEFAULT_SPIN / 2;
    /* The default bundle is read now, on its own thread: by the first
     * HTTPS request it is usually ready (http_ca.c). */
    (void)sa_http_ca_get(sa_http_ca_default());
    return h;
}

/* Header lines carry credentials (Authorization). */
static void free_slist(struct curl_slist *l)
{
    for (struct curl_slist *s = l; s; s = s->next)
        OPENSSL_cleanse(s->data, strlen(s->data));
    curl_slist_free_all(l);
}

static void idle_clear(sa_idle *i)
{
    free_slist(i->hdrs);
    i->hdrs = NULL;
    sa_buf_free(&i->key); /* it holds the body and headers: wiped */
    sa_buf_free(&i->keypem);
}

static void req_detach(sa_http_req *r)
{
    sa_http *h = r->h;
    if (!h)
        return;
    if (r->parked) {
        r->parked = 0;
        h->nparked--;
    } else if (r->easy) {
        curl_multi_remove_handle(h->multi, r->easy); /* may close a TLS connection */
        clear_tls_errors();
    }
    if (!r->done)
        h->running--;
    if (r->prev)
        r->prev->next = r->next;
    else
        h->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    if (r->queued) {
        sa_http_req **pp = &h->qhead;
        h->qtail = NULL;
        while (*pp) {
            if (*pp == r)
                *pp = r->qnext;
            else {
                h->qtail = *pp;
                pp = &(*pp)->qnext;
            }
        }
        r->queued = 0;
    }
    r->prev = r->next = r->qnext = NULL;
    r->h = NULL;
}

void sa_http_free(sa_http *h)
{
    if (!h)
        return;
    while (h->reqs)
        req_detach(h->reqs);
    while (h->nidle > 0) {
        sa_idle *i = &h->idle[--h->nidle];
        curl_easy_cleanup(i->easy);
        idle_clear(i);
    }
    curl_multi_cleanup(h->multi); /* calls on_socket: h is still whole */
    clear_tls_errors();
    sa_http_ca_quiesce(); /* no bundle thread outlives the last engine */
    free(h->socks);
    free(h->pfds);
    free(h);
}

/* An idle handle for the request: one set up for the very same options
 * if there is one (taken as is), else the newest, reset. */
static void take_idle(sa_http *h, sa_http_req *r)
{
    int i, pick = h->nidle - 1;
    sa_idle tmp;
    for (i = h->nidle - 1; i >= 0; i--) {
        sa_idle *c = &h->idle[i];
        if (c->key.len == r->key.len && c->key.len > 0 &&
            memcmp(c->key.data, r->key.data, r->key.len) == 0) {
            pick = i;
            break;
        }
    }
    tmp = h->idle[pick];
    h->idle[pick] = h->idle[h->nidle - 1];
    h->nidle--;
    r->easy = tmp.easy;
    if (i >= 0) {
        r->hdrs = tmp.hdrs;  /* still what the handle sends */
        r->keypem = tmp.keypem;
        r->ready = 1;
    } else {
        curl_easy_reset(r->easy);
        free_slist(tmp.hdrs);
        sa_buf_free(&tmp.keypem); /* the reset handle no longer points at it */
    }
    sa_buf_free(&tmp.key);
}

sa_http_req *sa_http_start(sa_http *h, const sa_http_opts *o, sa_err *err)
{
    sa_http_req *r;
    const char *method = o->method ? o->method : "GET";

    if (!h || !o->url)
        return sa_err_set(err, SA_EARG, 0, "no engine or no url"), NULL;
    r = calloc(1, sizeof *r);
    if (!r)
        return sa_err_set(err, SA_ENOMEM, 0, "out of memory"), NULL;
    r->max_body = o->max_body ? o->max_body : SA_HTTP_DEFAULT_MAX_BODY;
    r->resp_hdrs = r->hdr_inline;
    r->capresp = SA_INLINE_HEADERS;
    if (sa_http_setup_key(&r->key, o, method, r->max_body) != 0) {
        sa_err_set(err, SA_ENOMEM, 0, "out of memory");
        goto fail;
    }
    if (h->nidle > 0)
        take_idle(h, r);
    else
        r->easy = curl_easy_init();
    if (!r->easy) {
        sa_err_set(err, SA_ENOMEM, 0, "curl_easy_init failed");
        goto fail;
    }
    if ((!r->ready && sa_http_setup(r, o, method, err) != 0) || sa_http_point(r, err) != 0)
        goto fail;

    if (r->ca && sa_http_ca_state(r->ca) == SA_CA_LOADING) {
        r->parked = 1; /* started by a step once its bundle is read */
        h->nparked++;
    } else if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
        sa_err_set(err, SA_ENOMEM, 0, "curl_multi_add_handle failed");
        goto fail;
    }
    r->h = h;
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
    h->running++;
    return r;
fail:
    r->ready = 0; /* a half set-up handle is reset before any reuse */
    sa_http_req_free(r);
    return NULL;
}

/* Moves finished transfers to the done queue; returns how many. */
static int collect(sa_http *h)
{
    CURLMsg *m;
    int left, n = 0;
    while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
        sa_http_req *r = NULL;
        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        if (!r || r->done)
            continue;
        r->done = 1;
        h->running--;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
        curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &r->connects);
        if (m->data.result != CURLE_OK)
            sa_http_set_failed(r, m->data.result);
        /* The connection stays in the multi's cache after removal. */
        curl_multi_remove_handle(h->multi, r->easy);
        r->queued = 1;
        r->qnext = NULL;
        if (h->qtail)
            h->qtail->qnext = r;
        else
            h->qhead = r;
        h->qtail = r;
        n++;
    }
    return n;
}

/* Hands libcurl what poll found in pfds[0..n), then its timer if due. */
static CURLMcode dispatch(sa_http *h, size_t n)
{
    CURLMcode mc = CURLM_OK;
    size_t i;
    int still;
    for (i = 0; i < n && mc == CURLM_OK; i++) {
        short re = h->pfds[i].revents;
        int ev = ((re & (POLLIN | POLLHUP)) ? CURL_CSELECT_IN : 0) |
                 ((re & POLLOUT) ? CURL_CSELECT_OUT : 0) |
                 ((re & (POLLERR | POLLNVAL)) ? CURL_CSELECT_ERR : 0);
        /* on_socket may change socks meanwhile: pfds is a copy; a socket
         * libcurl dropped in between is ignored by it */
        if (ev)
            mc = curl_multi_socket_action(h->multi, h->pfds[i].fd, ev, &still);
    }
    if (mc == CURLM_OK && h->timer_at >= 0 && h->timer_at <= sa_clock_monotonic()) {
        /* This run uses the timer up. libcurl (7.88) calls on_timer again
         * if it still has one, but never with -1 after a timeout run: it
         * forgets what it last told us, so it would leave this deadline. */
        h->timer_at = -1;
        mc = curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &still);
    }
    return mc;
}

/* Waits up to timeout_ms (0: only looks) for the sockets libcurl watches,
 * then lets it act on them and on its timer. */
static int drive(sa_http *h, long timeout_ms, sa_err *err)
{
    size_t i, n = 0;
    CURLMcode mc;
    for (i = 0; i < h->nsocks; i++) {
        int w = h->socks[i].what;
        if (!(w & CURL_POLL_INOUT))
            continue;
        h->pfds[n].fd = h->socks[i].fd;
        h->pfds[n].events = (short)(((w & CURL_POLL_IN) ? POLLIN : 0) |
                                    ((w & CURL_POLL_OUT) ? POLLOUT : 0));
        h->pfds[n].revents = 0;
        n++;
    }
    if (n > 0 || timeout_ms > 0) {
        int rc = poll(h->pfds, (nfds_t)n, timeout_ms > INT_MAX ? INT_MAX : (int)timeout_ms);
        if (rc < 0 && errno != EINTR)
            return sa_err_set(err, SA_ENETWORK, (long)errno, "poll failed: %s", strerror(errno));
        if (rc <= 0)
            n = 0;
    }
    mc = dispatch(h, n);
    if (mc != CURLM_OK)
        return sa_err_set(err, SA_ENETWORK, (long)mc, "curl multi: %s", curl_multi_strerror(mc));
    return 0;
}

/* Starts the parked requests whose CA bundle is now read. */
static void unpark(sa_http *h)
{
    sa_http_req *r;
    for (r = h->reqs; r; r = r->next) {
        if (!r->parked || sa_http_ca_unpark(r) != 0)
            continue;
        h->nparked--;
        if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
            sa_err_set(&r->err, SA_ENOMEM, 0, "curl_multi_add_handle failed");
            r->done = 1;
            h->running--;
            r->queued = 1;
            r->qnext = NULL;
            if (h->qtail)
                h->qtail->qnext = r;
            else
                h->qhead = r;
            h->qtail = r;
        }
    }
}

int sa_http_step(sa_http *h, long timeout_ms, sa_err *err)
{
    int rc;
    if (h->nparked > 0)
        unpark(h);
    rc = drive(h, 0, err);
    /* Waits even with nothing running: a host's step(timeout) is also its
     * idle wait (poll sleeps when it has no sockets). But a transfer that
     * just finished must be handed out now, not after the wait (that cost
     * a blocking request up to a second). */
    if (rc == 0 && collect(h) == 0 && timeout_ms > 0) {
        long t = sa_http_timeout(h);
        if (t < 0 || t > timeout_ms)
            t = timeout_ms;
        rc = drive(h, t, err);
        if (rc == 0)
            collect(h);
    }
    clear_tls_errors();
    return rc == 0 ? h->running : -1;
}

/* How long a blocking wait may poll without sleeping: when this engine's
 * recent waits were shorter than spin_max (a token server on loopback or
 * the LAN), up to twice their average. Going to sleep and being woken
 * costs 10-20 µs on a virtual machine, a third of a loopback round trip;
 * waits on slower servers raise the average and turn spinning off; a host
 * that would rather sleep sets spin_max to 0. */
double sa_http_spin_budget(const sa_http *h)
{
    if (h->wait_est >= h->spin_max)
        return 0;
    return 2 * h->wait_est < h->spin_max ? 2 * h->wait_est : h->spin_max;
}

/* Feeds a blocking wait's duration into the average (capped at 1 s so one
 * hung server does not turn spinning off for the rest of the run). */
void sa_http_note_wait(sa_http *h, double took)
{
    h->wait_est = 0.75 * h->wait_est + 0.25 * (took < 1 ? took : 1);
}

int sa_http_wait(sa_http *h, sa_http_req *r, sa_err *err)
{
    double t0 = sa_clock_monotonic(), budget = sa_http_spin_budget(h);
    for (unsigned spins = 1; !r->done && budget > 0; spins++) {
        if (sa_http_step(h, 0, err) < 0)
            return -1;
        if (r->done || sa_clock_monotonic() - t0 >= budget)
            break;
        if (spins % 4 == 0)
            sched_yield(); /* now and then: a server sharing this CPU runs */
    }
    while (!r->done) {
        if (sa_http_step(h, 1000, err) < 0)
            return -1;
    }
    sa_http_note_wait(h, sa_clock_monotonic() - t0);
    return 0;
}

void sa_http_set_spin(sa_http *h, double max_seconds)
{
    h->spin_max = max_seconds > 0 ? max_seconds : 0;
}

double sa_http_spin(const sa_http *h) { return h->spin_max; }

long sa_http_timeout(sa_http *h)
{
    double left;
    if (h->nparked > 0) /* a bundle being read: look again soon */
        return h->timer_at < 0 || h->timer_at - sa_clock_monotonic() > 0.001 ? 1 : 0;
    if (h->timer_at < 0)
        return -1;
    left = ceil((h->timer_at - sa_clock_monotonic()) * 1000.0);
    return left <= 0 ? 0 : left >= (double)LONG_MAX ? LONG_MAX : (long)left;
}

int sa_http_fds(sa_http *h, int *fds, int *events, int max, sa_err *err)
{
    size_t i;
    int n = 0;
    (void)err;
    for (i = 0; i < h->nsocks; i++) {
        int ev = h->socks[i].what & CURL_POLL_INOUT; /* 1 read, 2 write, 3 both */
        if (!ev)
            continue;
        if (n < max) {
            fds[n] = (int)h->socks[i].fd;
            events[n] = ev;
        }
        n++;
    }
    return n;
}

void sa_http_info(const char **curl_version, const char **ssl_version, int *async_dns)
{
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    *curl_version = v->version;
    *ssl_version = v->ssl_version ? v->ssl_version : "";
    *async_dns = (v->features & CURL_VERSION_ASYNCHDNS) != 0;
}

int sa_http_running(const sa_http *h)
{
    return h->running;
}

sa_http_req *sa_http_next_done(sa_http *h)
{
    sa_http_req *r = h->qhead;
    if (!r)
        return NULL;
    h->qhead = r->qnext;
    if (!h->qhead)
        h->qtail = NULL;
    r->qnext = NULL;
    r->queued = 0;
    return r;
}

int sa_http_req_done(const sa_http_req *r) { return r->done; }

int sa_http_req_result(const sa_http_req *r, const sa_err **err)
{
    if (err)
        *err = &r->err;
    return r->err.kind == SA_OK ? 0 : -1;
}

long sa_http_req_status(const sa_http_req *r) { return r->status; }
const sa_buf *sa_http_req_body(const sa_http_req *r) { return &r->body; }
size_t sa_http_req_nheaders(const sa_http_req *r) { return r->nresp; }
long sa_http_req_connects(const sa_http_req *r) { return r->connects; }
void sa_http_req_set_tag(sa_http_req *r, long tag) { r->tag = tag; }
long sa_http_req_tag(const sa_http_req *r) { return r->tag; }

void sa_http_req_header(const sa_http_req *r, size_t i, const char **name,
                        size_t *nlen, const char **value, size_t *vlen)
{
    *name = r->hbuf.data + r->resp_hdrs[i].name;
    *nlen = r->resp_hdrs[i].nlen;
    *value = r->hbuf.data + r->resp_hdrs[i].value;
    *vlen = r->resp_hdrs[i].vlen;
}

void sa_http_req_free(sa_http_req *r)
{
    sa_http *h;
    if (!r)
        return;
    h = r->h;
    req_detach(r);
    if (r->easy) {
        if (h && h->nidle < SA_IDLE_EASY) {
            sa_idle *i = &h->idle[h->nidle++];
            i->easy = r->easy;
            /* The pointers into r go; the setup stays for the same request
             * again, unless the transfer did not end cleanly. */
            curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, (void *)NULL);
            curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, (void *)NULL);
            curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, (char *)NULL);
            curl_easy_setopt(r->easy, CURLOPT_PRIVATE, (void *)NULL);
            i->hdrs = r->hdrs;
            r->hdrs = NULL;
            i->key = r->key;
            r->key = (sa_buf)SA_BUF_INIT;
            i->keypem = r->keypem;
            r->keypem = (sa_buf)SA_BUF_INIT;
            if (!r->done || r->err.kind != SA_OK)
                sa_buf_reset(&i->key);
        } else {
            curl_easy_cleanup(r->easy);
        }
    }
    free_slist(r->hdrs);
    sa_buf_free(&r->key);
    sa_buf_free(&r->keypem); /* after the cleanup above: libcurl pointed at it */
    sa_buf_free(&r->hbuf);
    if (r->resp_hdrs != r->hdr_inline)
        free(r->resp_hdrs);
    sa_buf_free(&r->body);
    OPENSSL_cleanse(r->errbuf, sizeof r->errbuf);
    free(r);
}
