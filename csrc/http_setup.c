/* Setting an easy handle up for a request: the key that tells an idle
 * handle set up for the same request, close-on-exec sockets, the options,
 * the proxy, and the client certificate with its key read, decrypted and
 * wiped here. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "http_impl.h"

/* Every option of a request, length-prefixed so that no two different
 * requests write the same bytes: equal keys mean an identical setup. */
static int key_str(sa_buf *k, const char *s, size_t n)
{
    size_t len = s ? n : (size_t)-1;
    if (sa_buf_append(k, &len, sizeof len) != 0)
        return -1;
    return s ? sa_buf_append(k, s, n) : 0;
}

int sa_http_setup_key(sa_buf *k, const sa_http_opts *o, const char *method, size_t max_body)
{
    long num[3];
    size_t i;
    num[0] = o->timeout_ms;
    num[1] = o->connect_timeout_ms;
    num[2] = (long)(max_body > (size_t)LONG_MAX ? LONG_MAX : max_body);
    if (key_str(k, method, strlen(method)) != 0 ||
        key_str(k, o->url, strlen(o->url)) != 0 ||
        key_str(k, o->ca_file, o->ca_file ? strlen(o->ca_file) : 0) != 0 ||
        sa_buf_append(k, num, sizeof num) != 0 ||
        key_str(k, o->body, o->body_len) != 0 ||
        key_str(k, o->proxy, o->proxy ? strlen(o->proxy) : 0) != 0 ||
        key_str(k, o->no_proxy, o->no_proxy ? strlen(o->no_proxy) : 0) != 0 ||
        key_str(k, o->client_cert, o->client_cert_len) != 0 ||
        key_str(k, o->client_key, o->client_key_len) != 0 ||
        key_str(k, o->client_key_password, o->client_key_password_len) != 0 ||
        sa_buf_append(k, &o->nheaders, sizeof o->nheaders) != 0)
        return -1;
    for (i = 0; i < o->nheaders; i++)
        if (key_str(k, o->headers[i], strlen(o->headers[i])) != 0)
            return -1;
    return 0;
}

/* CURLOPT_OPENSOCKETFUNCTION: sockets close on exec, so a child process (a
 * browser the CLI opens, a hook's shell) never holds a connection to the
 * token server. Atomic with SOCK_CLOEXEC, for hosts that fork in threads. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    curl_socket_t s;
    (void)clientp;
    (void)purpose;
#ifdef SOCK_CLOEXEC
    s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (s != CURL_SOCKET_BAD || errno != EINVAL)
        return s;
#endif
    s = socket(a->family, a->socktype, a->protocol);
    if (s != CURL_SOCKET_BAD && fcntl(s, F_SETFD, FD_CLOEXEC) != 0) {
        close(s);
        return CURL_SOCKET_BAD;
    }
    return s;
}

/* Whether a client_cert or client_key option is PEM text, not a path. */
static int is_pem_text(const char *s, size_t n)
{
    static const char tag[] = "-----BEGIN";
    size_t i;
    for (i = 0; i + sizeof tag - 1 <= n; i++)
        if (memcmp(s + i, tag, sizeof tag - 1) == 0)
            return 1;
    return 0;
}

static int contains(const char *s, size_t n, const char *what)
{
    size_t i, w = strlen(what);
    for (i = 0; i + w <= n; i++)
        if (memcmp(s + i, what, w) == 0)
            return 1;
    return 0;
}

#define SA_MAX_PEM 1048576u /* a key file larger than this is not one */

/* Reads a PEM file unbuffered (no stdio buffer keeps a copy of the key)
 * into out, which the caller frees (wiped). */
static int read_pem_file(const char *path, size_t plen, const char *what, sa_buf *out, sa_err *err)
{
    char chunk[4096];
    size_t n;
    int rc = 0;
    FILE *f;
    if (strlen(path) != plen)
        return sa_err_set(err, SA_EARG, 0, "%s: a path must not contain a NUL byte", what);
    f = fopen(path, "rbe");
    if (!f)
        return sa_err_set(err, SA_EARG, (long)errno, "%s: cannot read %s: %s", what, path,
                          strerror(errno));
    /* unbuffered: no copy of the key left in stdio's buffer */
    if (setvbuf(f, NULL, _IONBF, 0) != 0) {
        (void)fclose(f);
        return sa_err_set(err, SA_EARG, 0, "%s: cannot read %s unbuffered", what, path);
    }
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (out->len + n > SA_MAX_PEM)
            rc = sa_err_set(err, SA_EARG, 0, "%s: %s is too large for a PEM file", what, path);
        else if (sa_buf_append(out, chunk, n) != 0)
            rc = sa_err_set(err, SA_ENOMEM, 0, "out of memory");
    }
    if (rc == 0 && ferror(f))
        rc = sa_err_set(err, SA_EARG, (long)errno, "%s: cannot read %s: %s", what, path,
                        strerror(errno));
    (void)fclose(f); /* read only: nothing to lose on close */
    OPENSSL_cleanse(chunk, sizeof chunk);
    return rc;
}

typedef struct sa_pw {
    const char *pw;
    size_t len;
} sa_pw;

/* OpenSSL's PEM password callback: the caller's password, or a failure
 * when there is none (OpenSSL's own callback would ask on a terminal). */
static int pem_password(char *buf, int size, int rwflag, void *u)
{
    const sa_pw *p = u;
    (void)rwflag;
    if (!p->pw || size < 0 || p->len > (size_t)size)
        return -1;
    memcpy(buf, p->pw, p->len); /* OpenSSL wipes buf after use */
    return (int)p->len;
}

/* The client key (client_key, else the key in client_cert), decrypted here
 * with client_key_password, into r->keypem as unencrypted PEM: libcurl then
 * never sees the password, and every copy of the key is wiped. Failures
 * name the option, never the password or the key. */
static int load_client_key(sa_http_req *r, const sa_http_opts *o, sa_err *err)
{
    const char *what = o->client_key ? "client_key" : "client_cert";
    const char *src = o->client_key ? o->client_key : o->client_cert;
    size_t len = o->client_key ? o->client_key_len : o->client_cert_len;
    sa_buf file = SA_BUF_INIT;
    sa_pw pw;
    BIO *in = NULL, *out = NULL;
    EVP_PKEY *pk = NULL;
    char *pem = NULL;
    long pem_len;
    int rc = -1;

    pw.pw = o->client_key_password;
    pw.len = o->client_key_password_len;
    if (!is_pem_text(src, len)) {
        if (read_pem_file(src, len, what, &file, err) != 0)
            goto done;
        src = file.data ? file.data : "";
        len = file.len;
    }
    if (len > INT_MAX) {
        sa_err_set(err, SA_EARG, 0, "%s is too large for a PEM key", what);
        goto done;
    }
    in = BIO_new_mem_buf(src, (int)len); /* read-only, not a copy */
    if (!in) {
        sa_err_set(err, SA_ENOMEM, 0, "out of memory");
        goto done;
    }
    pk = PEM_read_bio_PrivateKey(in, NULL, pem_password, &pw);
    if (!pk) {
        if (!contains(src, len, "ENCRYPTED"))
            sa_err_set(err, SA_EARG, 0, "%s: no PEM private key in it", what);
        else if (!pw.pw)
            sa_err_set(err, SA_EARG, 0, "%s: the private key is encrypted: set client_key_password",
                       what);
        else
            sa_err_set(err, SA_EARG, 0,
                       "%s: the private key cannot be decrypted: wrong client_key_password?", what);
        goto done;
    }
    /* secure memory: OpenSSL wipes it when the BIO is freed */
    out = BIO_new(BIO_s_secmem());
    if (!out || !PEM_write_bio_PrivateKey(out, pk, NULL, NULL, 0, NULL, NULL) ||
        (pem_len = BIO_get_mem_data(out, &pem)) <= 0 ||
        sa_buf_append(&r->keypem, pem, (size_t)pem_len) != 0) {
        sa_err_set(err, SA_ENOMEM, 0, "out of memory");
        goto done;
    }
    rc = 0;
done:
    BIO_free(in);
    BIO_free(out);
    EVP_PKEY_free(pk);
    sa_buf_free(&file);
    ERR_clear_error(); /* a stale error would fail the next handshake */
    return rc;
}

#define SETOPT(opt, val)                                                         \
    do {                                                                         \
        CURLcode c_ = curl_easy_setopt(r->easy, opt, val);                       \
        if (c_ != CURLE_OK) {                                                    \
            sa_err_set(err, c_ == CURLE_OUT_OF_MEMORY ? SA_ENOMEM : SA_EARG,     \
                       (long)c_, "curl option " #opt ": %s",                     \
                       curl_easy_strerror(c_));                                  \
            return -1;                                                           \
        }                                                                        \
    } while (0)

/* The bundle comes from http_ca.c's shared store, read on its own thread,
 * instead of libcurl parsing it inside a step. Without the callback (or if
 * the load fails: sa_http_ca_unpark) libcurl reads CAINFO as before. */
static void sa_http_setup_ca(sa_http_req *r, const char *path)
{
    sa_ca *c = sa_http_ca_get(path);
    if (!c || sa_http_ca_state(c) == SA_CA_FAILED)
        return;
    if (curl_easy_setopt(r->easy, CURLOPT_SSL_CTX_FUNCTION, sa_http_ca_sslctx) != CURLE_OK ||
        curl_easy_setopt(r->easy, CURLOPT_SSL_CTX_DATA, (void *)c) != CURLE_OK ||
        curl_easy_setopt(r->easy, CURLOPT_CAINFO, (char *)NULL) != CURLE_OK ||
        /* Only so that libcurl reuses a connection for the same bundle
         * alone: it compares CAINFO and CAPATH, not the callback. OpenSSL
         * reads a CA path lazily, and the callback replaces that store. */
        curl_easy_setopt(r->easy, CURLOPT_CAPATH, path) != CURLE_OK) {
        curl_easy_setopt(r->easy, CURLOPT_SSL_CTX_FUNCTION, (void *)NULL);
        curl_easy_setopt(r->easy, CURLOPT_CAPATH, (char *)NULL);
        curl_easy_setopt(r->easy, CURLOPT_CAINFO, path);
        return;
    }
    r->ca = c;
}

/* A parked request's bundle is read: 0 to start it, or the bundle could
 * not be read and libcurl reads it itself (and reports why it cannot). */
int sa_http_ca_unpark(sa_http_req *r)
{
    if (sa_http_ca_state(r->ca) == SA_CA_LOADING)
        return -1;
    if (sa_http_ca_state(r->ca) == SA_CA_FAILED) {
        curl_easy_setopt(r->easy, CURLOPT_SSL_CTX_FUNCTION, (void *)NULL);
        curl_easy_setopt(r->easy, CURLOPT_CAPATH, (char *)NULL);
        curl_easy_setopt(r->easy, CURLOPT_CAINFO, sa_http_ca_path(r->ca));
        r->ca = NULL;
    }
    r->parked = 0;
    return 0;
}

/* Sets up a reset handle for the request: everything but the pointers to
 * r, which change with every request. */
int sa_http_setup(sa_http_req *r, const sa_http_opts *o, const char *method, sa_err *err)
{
    size_t i;
    SETOPT(CURLOPT_URL, o->url);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);   /* never follow: token requests must not */
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_OPENSOCKETFUNCTION, open_socket);
    /* HTTP/2 where TLS (ALPN) offers it, HTTP/1.1 otherwise. Over TLS a
     * request waits for a connection still in its handshake rather than
     * opening another: once ALPN says h2, it is multiplexed on it; if
     * http/1.1, it opens its own. Not over plain HTTP, where libcurl would
     * only know from the first answer, after the server's whole delay. */
    SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    if (strncasecmp(o->url, "https://", 8) == 0)
        SETOPT(CURLOPT_PIPEWAIT, 1L);
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    /* Debian sets a default CA path, which disables libcurl's CA-store cache
     * and costs ~20 ms per new connection; the bundle file alone is cached. */
    SETOPT(CURLOPT_CAPATH, (char *)NULL);
    if (o->ca_file)
        SETOPT(CURLOPT_CAINFO, o->ca_file);
    if (strncasecmp(o->url, "https://", 8) == 0)
        sa_http_setup_ca(r, o->ca_file ? o->ca_file : sa_http_ca_default());
    SETOPT(CURLOPT_TIMEOUT_MS, o->timeout_ms > 0 ? o->timeout_ms : 30000L);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS,
           o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000L);
    SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_body);
    /* No Accept-Encoding: OAuth answers are small, and a compressed body
     * would be a decompression-bomb surface for nothing. */
    SETOPT(CURLOPT_WRITEFUNCTION, sa_http_on_body);
    SETOPT(CURLOPT_HEADERFUNCTION, sa_http_on_header);
    SETOPT(CURLOPT_USERAGENT, "smartauth/0.1");
    /* Without them libcurl reads its environment variables (http_proxy,
     * https_proxy, all_proxy, no_proxy) for every transfer. */
    if (o->proxy)
        SETOPT(CURLOPT_PROXY, o->proxy);
    if (o->no_proxy)
        SETOPT(CURLOPT_NOPROXY, o->no_proxy);
    if (o->client_cert || o->client_key || o->client_key_password) {
        struct curl_blob blob;
        if (!o->client_cert)
            return sa_err_set(err, SA_EARG, 0, "client_key and client_key_password need client_cert");
        if (is_pem_text(o->client_cert, o->client_cert_len)) {
            blob.data = (void *)(uintptr_t)o->client_cert; /* copied: libcurl never writes it */
            blob.len = o->client_cert_len;
            blob.flags = CURL_BLOB_COPY;
            SETOPT(CURLOPT_SSLCERT_BLOB, &blob);
        } else {
            if (strlen(o->client_cert) != o->client_cert_len)
                return sa_err_set(err, SA_EARG, 0, "client_cert: a path must not contain a NUL byte");
            SETOPT(CURLOPT_SSLCERT, o->client_cert);
        }
        SETOPT(CURLOPT_SSLCERTTYPE, "PEM");
        if (load_client_key(r, o, err) != 0)
            return -1;
        /* Not copied: libcurl would free its copy without wiping it. The
         * key stays with the handle (and its idle slot) until a reset. */
        blob.data = r->keypem.data;
        blob.len = r->keypem.len;
        blob.flags = CURL_BLOB_NOCOPY;
        SETOPT(CURLOPT_SSLKEY_BLOB, &blob);
        SETOPT(CURLOPT_SSLKEYTYPE, "PEM");
    }

    if (strcmp(method, "GET") == 0) {
        SETOPT(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else {
        SETOPT(CURLOPT_CUSTOMREQUEST, method);
    }
    if (o->body || strcmp(method, "POST") == 0) {
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
        SETOPT(CURLOPT_COPYPOSTFIELDS, o->body ? o->body : "");
        if (strcmp(method, "POST") != 0)
            SETOPT(CURLOPT_CUSTOMREQUEST, method);
    }
    for (i = 0; i < o->nheaders; i++) {
        struct curl_slist *n = curl_slist_append(r->hdrs, o->headers[i]);
        if (!n) {
            sa_err_set(err, SA_ENOMEM, 0, "out of memory");
            return -1;
        }
        r->hdrs = n;
    }
    {
        /* A round trip saved on every POST over 1 KiB. */
        struct curl_slist *n = curl_slist_append(r->hdrs, "Expect:");
        if (!n) {
            sa_err_set(err, SA_ENOMEM, 0, "out of memory");
            return -1;
        }
        r->hdrs = n;
    }
    SETOPT(CURLOPT_HTTPHEADER, r->hdrs);
    return 0;
}

/* Points a handle at its request; also on a handle taken set up. */
int sa_http_point(sa_http_req *r, sa_err *err)
{
    SETOPT(CURLOPT_WRITEDATA, r);
    SETOPT(CURLOPT_HEADERDATA, r);
    SETOPT(CURLOPT_ERRORBUFFER, r->errbuf);
    SETOPT(CURLOPT_PRIVATE, r);
    return 0;
}
