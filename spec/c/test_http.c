/* C tests of the HTTP engine that need no Lua: OpenSSL's per-thread error
 * queue after a failed TLS handshake. A stale queued error breaks the next
 * handshake of whoever shares the thread (OpenSSL's SSL_get_error looks at
 * the queue first: nginx's cosockets, LuaSec). The server is a thread on
 * 127.0.0.1 that answers a ClientHello with plain HTTP and closes. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "check.h"
#include "http.h"

#define ROUNDS 3

static void *plain_server(void *arg)
{
    int lfd = *(int *)arg, i;
    static const char answer[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    for (i = 0; i < ROUNDS; i++) {
        char buf[4096];
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            break;
        if (read(c, buf, sizeof buf) > 0 && write(c, answer, sizeof answer - 1) < 0)
            perror("write");
        close(c);
    }
    return NULL;
}

int main(void)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    pthread_t th;
    char url[64];
    int lfd, i;
    sa_err e;
    sa_http *h;

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0) {
        perror("listen");
        return 1;
    }
    snprintf(url, sizeof url, "https://127.0.0.1:%d/token", ntohs(a.sin_port));
    pthread_create(&th, NULL, plain_server, &lfd);

    h = sa_http_new(&e);
    CHECK(h != NULL);
    for (i = 0; h && i < ROUNDS; i++) {
        sa_http_opts o;
        sa_http_req *r;
        const sa_err *re = NULL;
        memset(&o, 0, sizeof o);
        o.url = url;
        o.timeout_ms = 5000;
        ERR_clear_error();
        r = sa_http_start(h, &o, &e);
        CHECK(r != NULL);
        if (!r)
            break;
        /* the blocking wait, then the step API */
        if (i == 0) {
            CHECK(sa_http_wait(h, r, &e) == 0);
        } else {
            while (!sa_http_req_done(r))
                CHECK(sa_http_step(h, i == 1 ? 0 : 100, &e) >= 0);
        }
        CHECK(sa_http_req_result(r, &re) == -1);
        CHECK(re->kind == SA_ETLS || re->kind == SA_ENETWORK);
        sa_http_req_free(r);
        CHECK(ERR_peek_error() == 0);
        if (ERR_peek_error() != 0)
            ERR_print_errors_fp(stderr);
    }
    sa_http_free(h);
    CHECK(ERR_peek_error() == 0);
    pthread_join(th, NULL);
    close(lfd);
    return CHECK_DONE("test_http");
}
