/* libFuzzer harness: the response header and body callbacks of the HTTP
 * engine (sa_http_on_header, sa_http_on_body in csrc/http_resp.c). libcurl
 * hands on_header one raw header line at a time, line ending included; the
 * harness does the same with every '\n'-terminated piece of the input, then
 * checks the table the binding reads.
 * Input: byte 0 picks the body limit (0..255 bytes), the rest is the header
 * block and doubles as the body. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sa_http_req r;
    size_t pos, i, limit;

    if (size < 1)
        return 0;
    memset(&r, 0, sizeof r);
    r.resp_hdrs = r.hdr_inline; /* as sa_http_start sets it up */
    r.capresp = SA_INLINE_HEADERS;
    limit = data[0];
    data++;
    size--;
    r.max_body = limit;

    for (pos = 0; pos < size;) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t n = nl ? (size_t)(nl - (data + pos)) + 1 : size - pos;
        /* a copy of exactly n bytes, so ASan sees any read past the line */
        char *line = malloc(n);
        if (!line)
            return 0;
        memcpy(line, data + pos, n);
        if (sa_http_on_header(line, 1, n, &r) != n) {
            free(line);
            if (!r.too_many_headers && !r.headers_too_large)
                abort();
            break;
        }
        free(line);
        pos += n;
    }
    if (r.nresp > SA_MAX_HEADERS)
        abort();
    for (i = 0; i < r.nresp; i++) {
        const char *name, *value;
        size_t nlen, vlen, j;
        sa_http_req_header(&r, i, &name, &nlen, &value, &vlen);
        for (j = 0; j < nlen; j++)
            if (isupper((unsigned char)name[j]))
                abort();
        if (vlen && (value[0] == ' ' || value[vlen - 1] == '\n' || value[vlen - 1] == '\r'))
            abort();
    }

    /* The body in two chunks: never more than the limit is kept. */
    {
        size_t half = size / 2;
        char *chunk = malloc(size ? size : 1);
        if (chunk) {
            memcpy(chunk, data, size);
            if (sa_http_on_body(chunk, 1, half, &r) == half)
                sa_http_on_body(chunk + half, 1, size - half, &r);
            free(chunk);
        }
        if (r.body.len > limit || (r.too_large && size <= limit))
            abort();
    }
    if (r.resp_hdrs != r.hdr_inline)
        free(r.resp_hdrs);
    sa_buf_free(&r.hbuf);
    sa_buf_free(&r.body);
    return 0;
}
