/* The request object and the internal calls shared by the HTTP engine's
 * three files: http.c (the engine: the multi handle, its loop, the done
 * queue, the request lifecycle), http_setup.c (setting a handle up for a
 * request: options, sockets, proxy, client certificate and key) and
 * http_resp.c (what comes back: body, headers within their limits, and the
 * failure classes). Internal: callers see sa_http_req as opaque (http.h). */
#ifndef SA_HTTP_IMPL_H
#define SA_HTTP_IMPL_H

#include <stddef.h>

#include <curl/curl.h>

#include "buf.h"
#include "http.h"
#include "sa_err.h"

#define SA_MAX_HEADERS 200
/* All header lines of a transfer (1xx answers included). Below libcurl's
 * own total (300 KiB) by more than its longest line (100 KiB), so this
 * check always fires first and reports the server's answer as the cause. */
#define SA_MAX_HEADER_BYTES 196608u /* 192 KiB */

/* A response header: offsets into the request's header buffer (which may
 * move as it grows); lengths count any NUL byte the server sent. */
typedef struct sa_ca sa_ca;

typedef struct sa_hdr {
    size_t name, nlen;
    size_t value, vlen;
} sa_hdr;

#define SA_INLINE_HEADERS 16

struct sa_http_req {
    sa_http *h;                 /* NULL once detached */
    CURL *easy;
    struct curl_slist *hdrs;
    sa_buf body;
    /* Every header of the final response in one buffer: one allocation
     * per request instead of two per header. */
    sa_buf hbuf;
    sa_buf key;                 /* the options, as sa_http_setup_key wrote them */
    sa_buf keypem;              /* client key in clear: the handle's SSLKEY_BLOB */
    sa_hdr *resp_hdrs;          /* hdr_inline until more are needed */
    size_t nresp, capresp;
    sa_hdr hdr_inline[SA_INLINE_HEADERS];
    size_t max_body;
    size_t header_bytes;        /* every header line so far, 1xx included */
    int too_large;
    int too_many_headers;
    int headers_too_large;
    int done;
    int ready;                  /* its handle was taken set up (take_idle, http.c) */
    int queued;                 /* in the engine's done queue */
    int parked;                 /* waits for its CA bundle (http_ca.c) */
    sa_ca *ca;                  /* the bundle its handshake uses, or NULL */
    long status;
    long connects;
    long tag;
    sa_err err;
    char errbuf[CURL_ERROR_SIZE];
    sa_http_req *prev, *next;   /* engine's list of attached requests */
    sa_http_req *qnext;         /* done queue */
};

/* http_setup.c */
/* Writes every option of a request into k: equal keys, identical setup. */
int sa_http_setup_key(sa_buf *k, const sa_http_opts *o, const char *method, size_t max_body);
int sa_http_setup(sa_http_req *r, const sa_http_opts *o, const char *method, sa_err *err);
int sa_http_point(sa_http_req *r, sa_err *err);

/* http_resp.c: libcurl's CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION,
 * and the request's error for a failed transfer (rc from libcurl). */
size_t sa_http_on_body(char *ptr, size_t size, size_t nmemb, void *ud);
size_t sa_http_on_header(char *ptr, size_t size, size_t nmemb, void *ud);
int sa_http_set_failed(sa_http_req *r, CURLcode rc);

/* http_ca.c: CA bundles read once per process on a thread of their own.
 * sa_http_ca_get starts reading path (NULL if it cannot: libcurl reads it
 * then); the state is SA_CA_LOADING until the thread is done. */
#define SA_CA_LOADING 0
#define SA_CA_READY 1
#define SA_CA_FAILED 2
sa_ca *sa_http_ca_get(const char *path);
int sa_http_ca_state(sa_ca *c);
const char *sa_http_ca_path(const sa_ca *c);
const char *sa_http_ca_default(void); /* libcurl's built-in bundle, or NULL */
void sa_http_ca_quiesce(void);        /* waits until no bundle is being read */
CURLcode sa_http_ca_sslctx(CURL *easy, void *sslctx, void *parm);
int sa_http_ca_unpark(sa_http_req *r); /* http_setup.c: 0 once it may start */

#endif
