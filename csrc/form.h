/* application/x-www-form-urlencoded and URL query handling (RFC 3986
 * percent-encoding; RFC 6749 Appendix B). */
#ifndef SA_FORM_H
#define SA_FORM_H

#include <stddef.h>

#include "buf.h"
#include "sa_err.h"

/* Append s percent-encoded: RFC 3986 unreserved characters (ALPHA DIGIT
 * - . _ ~) stay, every other byte becomes %XX (upper-case hex). Space is
 * %20, which every form decoder reads as a space. 0 ok, -1 no memory. */
int sa_form_escape(sa_buf *out, const char *s, size_t n);

/* Append "name=value", preceded by '&' when out is not empty. */
int sa_form_add(sa_buf *out, const char *name, size_t nlen,
                const char *value, size_t vlen);

/* Decode one form component: '+' is a space, %XX a byte. Malformed escapes
 * (% not followed by two hex digits) are errors, not passed through. */
int sa_form_unescape(sa_buf *out, const char *s, size_t n, sa_err *err);

/* Walk "a=1&b=2" calling cb for each pair with decoded name and value.
 * Empty segments are skipped; a segment without '=' has an empty value.
 * Stops and returns cb's non-zero result, or -1 on a malformed escape. */
typedef int (*sa_form_cb)(void *ud, const char *name, size_t nlen,
                          const char *value, size_t vlen);
int sa_form_parse(const char *s, size_t n, sa_form_cb cb, void *ud, sa_err *err);

/* 1 if each of the n bytes is a VCHAR (RFC 5234: 0x21-0x7E, printable
 * ASCII without space), else 0: what a token may hold to go into a header
 * or a shell. One pass; a Lua pattern with a class cost ~160 instructions
 * a byte, on every token answer. */
int sa_vchars(const char *s, size_t n);

/* "Basic " + base64(escape(id) ":" escape(secret)) as RFC 6749 §2.3.1 says. */
int sa_form_basic_auth(sa_buf *out, const char *id, size_t idlen,
                       const char *secret, size_t slen);

#endif
