/* The HTTP engine's side of a response: the body and header callbacks
 * (every limit checked as the bytes arrive) and a failed transfer's error
 * class and message. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "http_impl.h"

size_t sa_http_on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    sa_http_req *r = ud;
    size_t n = size * nmemb;
    if (r->body.len + n > r->max_body) {
        r->too_large = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    /* most answers here are small: one allocation for them */
    if ((!r->body.cap && sa_buf_reserve(&r->body, 1023) != 0) ||
        sa_buf_append(&r->body, ptr, n) != 0)
        return 0;
    return n;
}

static void free_resp_headers(sa_http_req *r)
{
    sa_buf_reset(&r->hbuf);
    r->nresp = 0;
}

/* s[0..n) without surrounding blanks and line end. */
static const char *trim(const char *s, size_t n, size_t *len)
{
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        n--;
    *len = n;
    return s;
}

size_t sa_http_on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    sa_http_req *r = ud;
    size_t n = size * nmemb, nlen, vlen, need, i;
    const char *colon, *name, *value;
    sa_hdr *hd;
    r->header_bytes += n;
    if (r->header_bytes > SA_MAX_HEADER_BYTES) {
        r->headers_too_large = 1;
        return 0;
    }
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        /* A new status line: only the final response's headers count
         * (after 100 Continue or a 1xx). */
        free_resp_headers(r);
        return n;
    }
    colon = memchr(ptr, ':', n);
    if (!colon)
        return n; /* the blank line, or an obs-fold we do not need */
    if (r->nresp >= SA_MAX_HEADERS) {
        r->too_many_headers = 1;
        return 0;
    }
    if (r->nresp == r->capresp) {
        size_t ncap = r->capresp * 2;
        sa_hdr *nh = malloc(ncap * sizeof *nh);
        if (!nh)
            return 0;
        memcpy(nh, r->resp_hdrs, r->nresp * sizeof *nh);
        if (r->resp_hdrs != r->hdr_inline)
            free(r->resp_hdrs);
        r->resp_hdrs = nh;
        r->capresp = ncap;
    }
    name = trim(ptr, (size_t)(colon - ptr), &nlen);
    value = trim(colon + 1, n - (size_t)(colon - ptr) - 1, &vlen);
    /* name NUL value NUL: the NULs are for convenience only. A typical
     * header block fits the first allocation. */
    need = nlen + vlen + 2;
    if (sa_buf_reserve(&r->hbuf, !r->hbuf.cap && need < 1023 ? 1023 : need) != 0)
        return 0;
    hd = &r->resp_hdrs[r->nresp];
    hd->name = r->hbuf.len;
    hd->nlen = nlen;
    for (i = 0; i < nlen; i++)
        r->hbuf.data[r->hbuf.len++] = (char)tolower((unsigned char)name[i]);
    r->hbuf.data[r->hbuf.len++] = '\0';
    hd->value = r->hbuf.len;
    hd->vlen = vlen;
    memcpy(r->hbuf.data + r->hbuf.len, value, vlen);
    r->hbuf.len += vlen;
    r->hbuf.data[r->hbuf.len++] = '\0';
    r->nresp++;
    return n;
}

static int classify(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return SA_ETIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        return SA_ETLS;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return SA_EARG;
    default:
        return SA_ENETWORK;
    }
}

/* Whether the request went out: then a failure that libcurl names by
 * protocol or memory is about the server's answer, not the caller's URL. */
static int request_sent(const sa_http_req *r)
{
    long sent = 0;
    return curl_easy_getinfo(r->easy, CURLINFO_REQUEST_SIZE, &sent) == CURLE_OK && sent > 0;
}

int sa_http_set_failed(sa_http_req *r, CURLcode rc)
{
    const char *what = curl_easy_strerror(rc), *sep = r->errbuf[0] ? ": " : "";
    if (r->too_large || rc == CURLE_FILESIZE_EXCEEDED)
        return sa_err_set(&r->err, SA_EHTTP, (long)rc,
                          "response body exceeds the limit of %zu bytes", r->max_body);
    if (r->too_many_headers)
        return sa_err_set(&r->err, SA_EHTTP, (long)rc,
                          "response has more than %d headers", SA_MAX_HEADERS);
    if (r->headers_too_large)
        return sa_err_set(&r->err, SA_EHTTP, (long)rc,
                          "response headers exceed the limit of %u bytes", SA_MAX_HEADER_BYTES);
    switch (rc) {
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
        return sa_err_set(&r->err, SA_EHTTP, (long)rc, "malformed response: %s%s%s",
                          what, sep, r->errbuf);
    case CURLE_UNSUPPORTED_PROTOCOL:
        /* libcurl's words for a bad status line ("HTTP/0.9", status 199 or
         * 1000); before sending, the URL's scheme is not allowed */
        if (request_sent(r))
            return sa_err_set(&r->err, SA_EHTTP, (long)rc, "malformed response: %s%s%s",
                              what, sep, r->errbuf);
        break;
#if LIBCURL_VERSION_NUM >= 0x080600
    case CURLE_TOO_LARGE:
#endif
    case CURLE_OUT_OF_MEMORY:
        /* Before 8.6 libcurl says "out of memory" for a header line over
         * its limit (100 KiB); a real allocation failure while reading an
         * answer is much rarer, and is not worth retrying either. */
        if (request_sent(r))
            return sa_err_set(&r->err, SA_EHTTP, (long)rc,
                              "response header too large (one line over libcurl's "
                              "limit) or out of memory");
        return sa_err_set(&r->err, SA_ENOMEM, (long)rc, "out of memory");
    default:
        break;
    }
    return sa_err_set(&r->err, classify(rc), (long)rc, "%s%s%s", what, sep, r->errbuf);
}
