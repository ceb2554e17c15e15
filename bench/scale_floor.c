/* The C floor for benchmark 8 (how cost grows): N client_credentials POSTs
 * at once on one libcurl multi handle, no Lua, the way a C program that
 * wants 10,000 transfers in flight writes it: libcurl's socket API
 * (curl_multi_socket_action) over epoll, one easy handle per request, the
 * same multi options as smartauth's engine (csrc/http.c: at most 32 idle
 * connections kept, HTTP/2 multiplexing allowed, no cap per host).
 *
 *   scale_floor URL N
 *
 * One warm-up request first (libcurl and its libraries loaded, the
 * resolver and the connection code paged in), then the peak RSS is reset
 * (/proc/self/clear_refs) and the N requests run. Prints one JSON line:
 * {"n":N,"wall":s,"cpu":s,"rss0":KiB,"hwm":KiB,"ok":count}. Exit 1 on any
 * failure. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/resource.h>

#include <curl/curl.h>

typedef struct {
    char data[512];
    size_t len;
} body_buf;

static int ep = -1;
static long timer_ms = -1;
static struct curl_slist *hdrs;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    body_buf *b = ud;
    size_t n = size * nmemb;
    if (b->len + n >= sizeof b->data)
        return 0;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* VmRSS or VmHWM from /proc/self/status, KiB. */
static long status_kib(const char *key)
{
    char line[256];
    long v = -1;
    size_t k = strlen(key);
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, k) == 0 && line[k] == ':') {
            v = strtol(line + k + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct epoll_event ev;
    (void)easy;
    (void)userp;
    memset(&ev, 0, sizeof ev);
    ev.data.fd = s;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    /* socketp marks a socket already added */
    if (socketp) {
        epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
    } else {
        epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
        curl_multi_assign((CURLM *)userp, s, (void *)1);
    }
    return 0;
}

static int on_timer(CURLM *multi, long ms, void *userp)
{
    (void)multi;
    (void)userp;
    timer_ms = ms;
    return 0;
}

static CURL *make(const char *url, body_buf *b)
{
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    /* what smartauth's engine sets for a client_credentials grant */
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_USERPWD, "bench-client:bench-secret");
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "grant_type=client_credentials");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "c_floor/1");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_PRIVATE, b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 60L);
    return c;
}

/* n requests at once; returns how many answered 200 with a token. */
static long batch(CURLM *m, const char *url, long n)
{
    CURL **easy = calloc((size_t)n, sizeof *easy);
    body_buf *bufs = calloc((size_t)n, sizeof *bufs);
    struct epoll_event evs[256];
    long i, ok = 0;
    int running = 0;
    if (!easy || !bufs)
        return -1;
    for (i = 0; i < n; i++) {
        easy[i] = make(url, &bufs[i]);
        if (!easy[i] || curl_multi_add_handle(m, easy[i]) != CURLM_OK)
            return -1;
    }
    curl_multi_socket_action(m, CURL_SOCKET_TIMEOUT, 0, &running);
    while (running > 0) {
        int k, j;
        CURLMsg *msg;
        int left;
        k = epoll_wait(ep, evs, 256, timer_ms < 0 ? 1000 : (int)timer_ms);
        if (k < 0 && errno != EINTR)
            return -1;
        if (k <= 0) {
            curl_multi_socket_action(m, CURL_SOCKET_TIMEOUT, 0, &running);
        } else {
            for (j = 0; j < k; j++) {
                unsigned e = evs[j].events;
                int how = ((e & (EPOLLIN | EPOLLHUP)) ? CURL_CSELECT_IN : 0) |
                          ((e & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                          ((e & EPOLLERR) ? CURL_CSELECT_ERR : 0);
                curl_multi_socket_action(m, evs[j].data.fd, how, &running);
            }
        }
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            long status = 0;
            body_buf *b = NULL;
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&b);
            if (msg->data.result != CURLE_OK)
                fprintf(stderr, "scale_floor: %s\n", curl_easy_strerror(msg->data.result));
            else if (status == 200 && b && strstr(b->data, "\"access_token\""))
                ok++;
            curl_multi_remove_handle(m, msg->easy_handle);
            curl_easy_cleanup(msg->easy_handle);
        }
    }
    free(easy);
    free(bufs);
    return ok;
}

int main(int argc, char **argv)
{
    CURLM *m;
    long n, ok, rss0, hwm;
    double t0, c0, wall, used;
    FILE *f;

    if (argc != 3 || (n = strtol(argv[2], NULL, 10)) <= 0) {
        fprintf(stderr, "usage: scale_floor URL N\n");
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    ep = epoll_create1(EPOLL_CLOEXEC);
    m = curl_multi_init();
    if (ep < 0 || !m)
        return 1;
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, 32L);
    curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(m, CURLMOPT_MAX_CONCURRENT_STREAMS, 1000L);
    curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(m, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_timer);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    hdrs = curl_slist_append(hdrs, "Content-Type: application/x-www-form-urlencoded");
    hdrs = curl_slist_append(hdrs, "Expect:");

    if (batch(m, argv[1], 1) != 1) {
        fprintf(stderr, "scale_floor: warm-up request failed\n");
        return 1;
    }
    {
        /* 0.3 s idle, as the smartauth worker does (its engine reads the
         * system CA bundle on a thread at start-up): both batches start
         * equally cold */
        struct timespec ts = {0, 300000000L};
        nanosleep(&ts, NULL);
    }
    rss0 = status_kib("VmRSS");
    /* resets VmHWM to the current RSS (Linux 4.0+) */
    f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
    t0 = now();
    c0 = cpu();
    ok = batch(m, argv[1], n);
    wall = now() - t0;
    used = cpu() - c0;
    hwm = status_kib("VmHWM");
    printf("{\"n\":%ld,\"wall\":%.6f,\"cpu\":%.6f,\"rss0\":%ld,\"hwm\":%ld,\"ok\":%ld}\n",
           n, wall, used, rss0, hwm, ok);
    curl_multi_cleanup(m);
    curl_slist_free_all(hdrs);
    curl_global_cleanup();
    return ok == n ? 0 : 1;
}
