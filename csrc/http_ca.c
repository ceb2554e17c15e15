/* CA bundles parsed off the caller's thread. libcurl parses a bundle inside
 * the first TLS handshake of each multi handle, 20-40 ms for the system
 * bundle: inside a host's smartauth.step(0), a frame or two lost at a
 * game's first login. Here a thread parses each bundle once per process
 * into an X509_STORE that every handshake shares (OpenSSL stores are safe
 * to share across threads); a request that needs a bundle still being read
 * waits outside libcurl (http.c parks it), so no step ever parses one. */
#define _GNU_SOURCE /* dladdr */ // NOLINT(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp)
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "http_impl.h"

struct sa_ca {
    char *path;
    X509_STORE *store;          /* set once the load succeeded */
    int state;                  /* SA_CA_LOADING, SA_CA_READY or SA_CA_FAILED */
    int joined;                 /* its thread was joined (sa_http_ca_quiesce) */
    pthread_t thread;
    sa_ca *next;
};

/* Entries live as long as the process: handles point at them through
 * CURLOPT_SSL_CTX_DATA, and a bundle is read once per process (a changed
 * bundle is seen after a restart). */
static pthread_mutex_t ca_mu = PTHREAD_MUTEX_INITIALIZER;
static sa_ca *ca_list;
static int ca_pinned;
static int ca_atexit;

static void *ca_load(void *arg)
{
    sa_ca *c = arg;
    X509_STORE *st = X509_STORE_new();
    int ok = st && X509_STORE_load_file(st, c->path) == 1;
    /* libcurl's own flags for a store it fills (openssl.c, 7.88) */
    if (ok)
        ok = X509_STORE_set_flags(st, X509_V_FLAG_TRUSTED_FIRST | X509_V_FLAG_PARTIAL_CHAIN) == 1;
    if (!ok) {
        X509_STORE_free(st);
        st = NULL;
    }
    OPENSSL_thread_stop(); /* this thread's error queue, freed now */
    pthread_mutex_lock(&ca_mu);
    c->store = st;
    c->state = ok ? SA_CA_READY : SA_CA_FAILED;
    pthread_mutex_unlock(&ca_mu);
    return NULL;
}

/* The module stays mapped for good once a thread may run in it: Lua
 * unloads C modules when a state closes, and entries are process-wide. */
static void pin_self(void)
{
    Dl_info info;
    if (ca_pinned)
        return;
    ca_pinned = 1;
    if (dladdr((void *)pin_self, &info) && info.dli_fname)
        (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

sa_ca *sa_http_ca_get(const char *path)
{
    sa_ca *c;
    int started = 0;
    if (!path || !*path)
        return NULL;
    pthread_mutex_lock(&ca_mu);
    for (c = ca_list; c && strcmp(c->path, path) != 0; c = c->next)
        ;
    if (!c && (c = calloc(1, sizeof *c)) != NULL) {
        c->path = strdup(path);
        c->state = SA_CA_LOADING;
        if (c->path) {
            pin_self();
            started = pthread_create(&c->thread, NULL, ca_load, c) == 0;
            /* a script may exit (os.exit without closing its state) while a
             * bundle is still being read: OpenSSL's own atexit cleanup must
             * not run under the thread. Handlers run last-registered first,
             * and this one is registered after OpenSSL's (the module is
             * pinned, so the handler stays mapped). */
            if (started && !ca_atexit)
                ca_atexit = atexit(sa_http_ca_quiesce) == 0;
        }
        if (!started) { /* libcurl reads the bundle itself, as before */
            free(c->path);
            free(c);
            c = NULL;
        } else {
            c->next = ca_list;
            ca_list = c;
        }
    }
    pthread_mutex_unlock(&ca_mu);
    return c;
}

const char *sa_http_ca_default(void)
{
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    return v->cainfo;
}

int sa_http_ca_state(sa_ca *c)
{
    int s;
    pthread_mutex_lock(&ca_mu);
    s = c->state;
    pthread_mutex_unlock(&ca_mu);
    return s;
}

const char *sa_http_ca_path(const sa_ca *c) { return c->path; }

/* Joins every reader thread, running or done: none outlives the last
 * engine, so none runs while the process exits (OpenSSL cleans up then). */
void sa_http_ca_quiesce(void)
{
    sa_ca *c;
    pthread_mutex_lock(&ca_mu);
    for (;;) { /* from the start each time: the list may grow meanwhile */
        for (c = ca_list; c && c->joined; c = c->next)
            ;
        if (!c)
            break;
        c->joined = 1;
        pthread_mutex_unlock(&ca_mu);
        pthread_join(c->thread, NULL);
        pthread_mutex_lock(&ca_mu);
    }
    pthread_mutex_unlock(&ca_mu);
}

/* CURLOPT_SSL_CTX_FUNCTION: runs after libcurl filled the context's store
 * (from no file: CURLOPT_CAINFO is unset) and replaces it with the shared
 * one. A request only starts once its store is ready (http.c). */
CURLcode sa_http_ca_sslctx(CURL *easy, void *sslctx, void *parm)
{
    sa_ca *c = parm;
    X509_STORE *st;
    (void)easy;
    pthread_mutex_lock(&ca_mu);
    st = c->state == SA_CA_READY ? c->store : NULL;
    pthread_mutex_unlock(&ca_mu);
    if (!st || X509_STORE_up_ref(st) != 1)
        return CURLE_SSL_CACERT_BADFILE;
    SSL_CTX_set_cert_store(sslctx, st);
    return CURLE_OK;
}
