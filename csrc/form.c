#include "form.h"

#include "crypto.h"

static const char hexdig[] = "0123456789ABCDEF";

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

int sa_form_escape(sa_buf *out, const char *s, size_t n)
{
    size_t i;
    if (sa_buf_reserve(out, n) != 0)
        return -1;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c)) {
            if (sa_buf_append_char(out, (char)c) != 0)
                return -1;
        } else {
            char e[3] = { '%', hexdig[c >> 4], hexdig[c & 15] };
            if (sa_buf_append(out, e, 3) != 0)
                return -1;
        }
    }
    return 0;
}

int sa_form_add(sa_buf *out, const char *name, size_t nlen,
                const char *value, size_t vlen)
{
    if (out->len && sa_buf_append_char(out, '&') != 0)
        return -1;
    if (sa_form_escape(out, name, nlen) != 0 || sa_buf_append_char(out, '=') != 0)
        return -1;
    return sa_form_escape(out, value, vlen);
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int sa_form_unescape(sa_buf *out, const char *s, size_t n, sa_err *err)
{
    size_t i;
    if (sa_buf_reserve(out, n) != 0)
        return sa_err_set(err, SA_ENOMEM, 0, "out of memory");
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi, lo;
            if (i + 2 >= n)
                return sa_err_set(err, SA_EVALIDATION, 0,
                                  "truncated percent-escape at offset %zu", i);
            hi = hexval((unsigned char)s[i + 1]);
            lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return sa_err_set(err, SA_EVALIDATION, 0,
                                  "invalid percent-escape at offset %zu", i);
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        sa_buf_append_char(out, (char)c);
    }
    return 0;
}

int sa_form_parse(const char *s, size_t n, sa_form_cb cb, void *ud, sa_err *err)
{
    size_t pos = 0;
    sa_buf name = SA_BUF_INIT, value = SA_BUF_INIT;
    int rc = 0;
    while (pos < n && rc == 0) {
        size_t end = pos, eq;
        while (end < n && s[end] != '&')
            end++;
        eq = pos;
        while (eq < end && s[eq] != '=')
            eq++;
        if (end > pos) {
            sa_buf_reset(&name);
            sa_buf_reset(&value);
            if (sa_form_unescape(&name, s + pos, eq - pos, err) != 0 ||
                (eq < end &&
                 sa_form_unescape(&value, s + eq + 1, end - eq - 1, err) != 0)) {
                rc = -1;
                break;
            }
            rc = cb(ud, name.data ? name.data : "", name.len,
                    value.data ? value.data : "", value.len);
        }
        pos = end + 1;
    }
    sa_buf_free(&name);
    sa_buf_free(&value);
    return rc;
}

int sa_vchars(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

int sa_form_basic_auth(sa_buf *out, const char *id, size_t idlen,
                       const char *secret, size_t slen)
{
    sa_buf raw = SA_BUF_INIT;
    int rc = -1;
    if (sa_form_escape(&raw, id, idlen) == 0 && sa_buf_append_char(&raw, ':') == 0 &&
        sa_form_escape(&raw, secret, slen) == 0 &&
        sa_buf_append_str(out, "Basic ") == 0 &&
        sa_b64_encode(out, (const unsigned char *)raw.data, raw.len, 0) == 0)
        rc = 0;
    sa_buf_free(&raw);
    return rc;
}
