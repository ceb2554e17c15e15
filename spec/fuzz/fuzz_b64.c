/* libFuzzer harness: strict base64 / base64url decoding (sa_b64_decode) and
 * the encode/decode round trip. Input: first byte selects the alphabet
 * (bit 0: 1 = base64url), the rest is decoded. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sa_buf dec = SA_BUF_INIT, enc = SA_BUF_INIT, back = SA_BUF_INIT;
    sa_err e;
    int url;
    const char *s;
    size_t n;

    if (size < 1)
        return 0;
    url = data[0] & 1;
    s = (const char *)data + 1;
    n = size - 1;

    if (sa_b64_decode(&dec, s, n, url, &e) == 0) {
        /* One encoding per value: re-encoding gives the input back (for
         * the standard alphabet, up to the optional padding). */
        size_t want = n;
        if (dec.len > n)
            abort();
        if (sa_b64_encode(&enc, (const unsigned char *)(dec.data ? dec.data : ""), dec.len,
                          url) != 0)
            abort();
        if (!url) {
            while (want > 0 && s[want - 1] == '=')
                want--;
            while (enc.len > 0 && enc.data[enc.len - 1] == '=')
                enc.len--;
        }
        if (enc.len != want || (want && memcmp(enc.data, s, want) != 0))
            abort();
        if (url && enc.len != sa_b64url_len(dec.len))
            abort();
    } else if (e.kind != SA_EVALIDATION && e.kind != SA_ENOMEM) {
        abort();
    }
    sa_buf_reset(&enc);

    /* Any bytes survive encode then decode. */
    if (sa_b64_encode(&enc, (const unsigned char *)s, n, url) != 0)
        abort();
    if (sa_b64_decode(&back, enc.data ? enc.data : "", enc.len, url, &e) != 0)
        abort();
    if (back.len != n || (n && memcmp(back.data, s, n) != 0))
        abort();

    sa_buf_free(&dec);
    sa_buf_free(&enc);
    sa_buf_free(&back);
    return 0;
}
