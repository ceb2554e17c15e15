/* libFuzzer harness: application/x-www-form-urlencoded and query parsing
 * (sa_form_parse, sa_form_unescape) plus the escape/unescape round trip.
 * Input: any bytes, read as a form body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"

typedef struct {
    size_t in_len;
    size_t pairs;
} walk;

static int on_pair(void *ud, const char *name, size_t nlen, const char *value, size_t vlen)
{
    walk *w = ud;
    /* Decoding never grows a component, and both are NUL-terminated. */
    if (nlen > w->in_len || vlen > w->in_len || name[nlen] != '\0' || value[vlen] != '\0')
        abort();
    w->pairs++;
    return 0;
}

static int stop_early(void *ud, const char *name, size_t nlen, const char *value, size_t vlen)
{
    (void)ud, (void)name, (void)nlen, (void)value, (void)vlen;
    return 7;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    walk w = { size, 0 };
    sa_buf a = SA_BUF_INIT, b = SA_BUF_INIT;
    sa_err e;
    int rc;

    rc = sa_form_parse(s, size, on_pair, &w, &e);
    if (rc != 0 && rc != -1)
        abort();
    if (w.pairs > size)
        abort();
    rc = sa_form_parse(s, size, stop_early, NULL, &e);
    if (rc != 0 && rc != 7 && rc != -1)
        abort();

    /* A whole-input unescape: on success the output is never longer. */
    if (sa_form_unescape(&a, s, size, &e) == 0 && a.len > size)
        abort();
    sa_buf_reset(&a);

    /* escape then unescape gives the input back, byte for byte. */
    if (sa_form_escape(&a, s, size) != 0)
        abort();
    if (a.len < size)
        abort();
    if (sa_form_unescape(&b, a.data ? a.data : "", a.len, &e) != 0)
        abort();
    if (b.len != size || (size && memcmp(b.data, data, size) != 0))
        abort();
    sa_buf_free(&a);
    sa_buf_free(&b);
    return 0;
}
