/* HTTP engine on libcurl's multi interface. One engine keeps one connection
 * cache, so requests to the same host reuse their TCP/TLS connection; the
 * blocking API runs the multi loop until one transfer ends, the step API lets
 * a host drive many transfers without blocking. */
#ifndef SA_HTTP_H
#define SA_HTTP_H

#include <stddef.h>

#include "buf.h"
#include "sa_err.h"

typedef struct sa_http sa_http;
typedef struct sa_http_req sa_http_req;

#define SA_HTTP_DEFAULT_MAX_BODY 1048576u /* 1 MiB */

typedef struct sa_http_opts {
    const char *method;            /* "GET" when NULL */
    const char *url;
    const char *const *headers;    /* "Name: value" lines */
    size_t nheaders;
    const char *body;              /* copied; may be NULL */
    size_t body_len;
    long timeout_ms;               /* total; 0 = default 30 s */
    long connect_timeout_ms;       /* 0 = default 10 s */
    size_t max_body;               /* 0 = SA_HTTP_DEFAULT_MAX_BODY */
    const char *ca_file;           /* NULL = system bundle */
    /* "http://[user:password@]host:port" or https://; NULL = libcurl's
     * environment variables (http_proxy, https_proxy, NO_PROXY, ...). */
    const char *proxy;
    const char *no_proxy;          /* "host,host"; NULL = NO_PROXY's */
    /* Mutual TLS: each a PEM file path or PEM text (told apart by its
     * "-----BEGIN"); the key is read here, decrypted with the password and
     * handed to libcurl in clear from memory this engine wipes. NULL key:
     * in client_cert. The password never reaches libcurl or an error. */
    const char *client_cert;
    size_t client_cert_len;
    const char *client_key;
    size_t client_key_len;
    const char *client_key_password;
    size_t client_key_password_len;
} sa_http_opts;

/* Process-wide libcurl/OpenSSL init, done once and thread-safely; never
 * undone. 0 ok. */
int sa_http_global_init(sa_err *err);

sa_http *sa_http_new(sa_err *err);
/* Frees the engine and every request still attached to it. NULL is fine. */
void sa_http_free(sa_http *h);

/* Start a transfer; it makes progress in sa_http_step / sa_http_wait. The
 * request belongs to the caller (sa_http_req_free), the engine only drives it. */
sa_http_req *sa_http_start(sa_http *h, const sa_http_opts *o, sa_err *err);

/* One round of the event loop: wait up to timeout_ms for socket activity (0
 * never blocks), move transfers forward, mark finished ones. Returns the
 * number still running or -1. */
int sa_http_step(sa_http *h, long timeout_ms, sa_err *err);

/* Run the loop until r is done (other transfers progress too). */
int sa_http_wait(sa_http *h, sa_http_req *r, sa_err *err);

/* Longest busy poll of a blocking wait, used only while recent waits were
 * shorter (see sa_http_wait); 0 turns it off. */
#define SA_HTTP_DEFAULT_SPIN 100e-6
void sa_http_set_spin(sa_http *h, double max_seconds);
double sa_http_spin(const sa_http *h);
double sa_http_spin_budget(const sa_http *h);
void sa_http_note_wait(sa_http *h, double took);

/* Milliseconds until libcurl wants to be called again (-1: no timer). */
long sa_http_timeout(sa_http *h);
/* Number of transfers started and not yet finished. */
int sa_http_running(const sa_http *h);

/* Sockets the engine waits on, for hosts that run their own poll loop (any
 * descriptor number: poll or epoll them, not select): fills fds[i] and
 * events[i] (1 read, 2 write, 3 both) for up to max sockets; returns how
 * many there are (more than max: call again with room for all), or -1. */
int sa_http_fds(sa_http *h, int *fds, int *events, int max, sa_err *err);

/* libcurl's version and TLS library, and whether name resolution runs off
 * the caller's thread (the threaded resolver), which step(0) relies on. */
void sa_http_info(const char **curl_version, const char **ssl_version, int *async_dns);

/* Finished requests, oldest first, each returned once; NULL when none. */
sa_http_req *sa_http_next_done(sa_http *h);

int sa_http_req_done(const sa_http_req *r);
/* Only meaningful once done. Non-zero status of the transfer itself: 0 ok
 * (any HTTP status), -1 failure described by *err. */
int sa_http_req_result(const sa_http_req *r, const sa_err **err);
long sa_http_req_status(const sa_http_req *r);
const sa_buf *sa_http_req_body(const sa_http_req *r);
/* Response headers of the final response: n pairs, lower-cased names. */
size_t sa_http_req_nheaders(const sa_http_req *r);
void sa_http_req_header(const sa_http_req *r, size_t i, const char **name,
                        size_t *nlen, const char **value, size_t *vlen);
/* New connections this transfer had to open (0 when one was reused). */
long sa_http_req_connects(const sa_http_req *r);
/* Opaque slot for the binding (a registry reference, say). */
void sa_http_req_set_tag(sa_http_req *r, long tag);
long sa_http_req_tag(const sa_http_req *r);

/* Detaches from the engine if still running, wipes and frees. NULL is fine. */
void sa_http_req_free(sa_http_req *r);

#endif
