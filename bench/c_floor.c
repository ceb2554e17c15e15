/* The floor for benchmark 1: the same client_credentials POST that
 * smartauth sends, from C, with one libcurl easy handle reused for every
 * request (so one connection, one CA store load).
 *
 *   c_floor URL CA_FILE|- [get]
 *
 * With "get", the floor of an API call with a token in hand (p:request's
 * line): a GET with a fixed "Authorization: Bearer" header on the same
 * reused handle, any answer with status 200 accepted.
 *
 * A worker like bench/client_smartauth.lua: reads a count per line on
 * stdin, does that many requests and answers "<seconds> <count> <cpu
 * seconds>" (wall time, and this process's CPU time); "q" or
 * end of input ends it. Exit 1 on any failure.
 * CA handling matches smartauth's: no CA path, CAINFO = the given file. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

typedef struct {
    char data[4096];
    size_t len;
} body_buf;

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

static int get_mode;

static int one(CURL *c, body_buf *b)
{
    long status = 0;
    CURLcode rc;
    b->len = 0;
    b->data[0] = '\0';
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        fprintf(stderr, "c_floor: %s\n", curl_easy_strerror(rc));
        return -1;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200 || (!get_mode && !strstr(b->data, "\"access_token\""))) {
        fprintf(stderr, "c_floor: HTTP %ld: %s\n", status, b->data);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    CURL *c;
    struct curl_slist *h = NULL;
    body_buf b;
    char line[64];

    if (argc < 3 || argc > 4 || (argc == 4 && strcmp(argv[3], "get") != 0)) {
        fprintf(stderr, "usage: c_floor URL CA_FILE|- [get]\n");
        return 2;
    }
    get_mode = argc == 4;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    c = curl_easy_init();
    if (!c)
        return 1;
    if (get_mode) {
        /* What p:request sends for a GET with a cached token. */
        h = curl_slist_append(h, "Authorization: Bearer 2YotnFZFEjr1zCsicMWpAA-bench-token-0123456789");
        curl_easy_setopt(c, CURLOPT_URL, argv[1]);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    } else {
        /* The headers smartauth sends for a client_credentials grant with
         * client_auth "basic" (Authorization is added by CURLOPT_USERPWD). */
        h = curl_slist_append(h, "Accept: application/json");
        h = curl_slist_append(h, "Content-Type: application/x-www-form-urlencoded");
        h = curl_slist_append(h, "Expect:");
        curl_easy_setopt(c, CURLOPT_URL, argv[1]);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_USERPWD, "bench-client:bench-secret");
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "grant_type=client_credentials");
    }
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "c_floor/1");
    curl_easy_setopt(c, CURLOPT_CAPATH, (char *)NULL);
    if (strcmp(argv[2], "-") != 0)
        curl_easy_setopt(c, CURLOPT_CAINFO, argv[2]);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);

    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);

    while (fgets(line, sizeof line, stdin)) {
        char *end;
        long n = strtol(line, &end, 10), i;
        double t0;
        clock_t c0;
        if (end == line || n <= 0)
            break;
        t0 = now();
        c0 = clock();
        for (i = 0; i < n; i++)
            if (one(c, &b) != 0)
                return 1;
        printf("%.9f %ld %.6f\n", now() - t0, n, (double)(clock() - c0) / CLOCKS_PER_SEC);
        fflush(stdout);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    curl_global_cleanup();
    return 0;
}
