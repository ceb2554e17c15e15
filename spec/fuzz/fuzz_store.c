/* libFuzzer harness: the file store's entry decoder. Each input is written
 * as a token file (as a damaged or hostile file on disk would be) and read
 * back with sa_fstore_get, with and without a key; sa_aead_open is also fed
 * directly; entry names go through sa_fstore_encode_name; and any bytes
 * sealed with sa_aead_seal open to the same bytes, while one flipped byte
 * makes the open fail.
 *
 * Input (see fuzz_input.h for fields):
 *   field  entry name (also the AEAD associated data)
 *   rest   the token file's contents */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aead.h"
#include "fuzz_input.h"
#include "store_file.h"

static const char secret[] = "fuzz-store-secret-0123456789abcdef";
static char dir[64];
static sa_fstore *plain, *sealed;
static sa_aead_key key;

static void cleanup(void)
{
    char path[128];
    sa_fstore_free(plain);
    sa_fstore_free(sealed);
    snprintf(path, sizeof path, "%s/fuzz.tok", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/fuzz.lock", dir);
    unlink(path);
    rmdir(dir);
}

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    sa_err e;
    snprintf(dir, sizeof dir, "%s/sa-fuzz-store.XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
    if (!mkdtemp(dir))
        abort();
    plain = sa_fstore_new(dir, NULL, 0, &e);
    sealed = sa_fstore_new(dir, secret, sizeof secret - 1, &e);
    if (!plain || !sealed || sa_aead_key_derive(&key, secret, sizeof secret - 1, &e) != 0)
        abort();
    atexit(cleanup);
}

static void put_file(const uint8_t *p, size_t n)
{
    char path[128];
    int fd;
    snprintf(path, sizeof path, "%s/fuzz.tok", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        abort();
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            abort();
        p += w;
        n -= (size_t)w;
    }
    close(fd);
}

static void check_name(const uint8_t *name, size_t nlen)
{
    char stem[400];
    sa_err e;
    size_t i, n;
    if (sa_fstore_encode_name((const char *)name, nlen, stem, sizeof stem, &e) != 0)
        return;
    n = strlen(stem);
    if (n == 0 || stem[0] == '.' || n < nlen)
        abort();
    for (i = 0; i < n; i++) {
        char c = stem[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == '%'))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    const uint8_t *name, *body;
    size_t nlen, blen;
    sa_buf out = SA_BUF_INIT, box = SA_BUF_INIT;
    sa_err e;
    int rc;

    if (!plain)
        setup();
    name = fz_field(&in, &nlen);
    body = fz_rest(&in, &blen);
    check_name(name, nlen);

    /* Directly: a sealed message under the store's key and this name. */
    e.kind = -1;
    rc = sa_aead_open(&key, name, nlen, body, blen, &out, &e);
    if (rc == 0 ? out.len != blen - SA_AEAD_OVERHEAD : (e.kind == -1 || out.len != 0))
        abort();
    sa_buf_reset(&out);

    /* From disk, through both stores. */
    put_file(body, blen);
    e.kind = -1;
    rc = sa_fstore_get(plain, "fuzz", 4, &out, &e);
    if (rc == 1 ? (out.len != blen || memcmp(out.data, body, blen) != 0)
                : (rc != -1 || e.kind == -1 || out.len != 0))
        abort();
    sa_buf_reset(&out);
    e.kind = -1;
    rc = sa_fstore_get(sealed, "fuzz", 4, &out, &e);
    if (rc == 1 ? out.len != blen - SA_AEAD_OVERHEAD : (rc != -1 || e.kind == -1 || out.len != 0))
        abort();
    sa_buf_reset(&out);

    /* Round trip, and tampering is caught. */
    if (blen <= 4096) {
        if (sa_aead_seal(&key, name, nlen, body, blen, &box, &e) != 0)
            abort();
        if (sa_aead_open(&key, name, nlen, box.data, box.len, &out, &e) != 0 ||
            out.len != blen || (blen && memcmp(out.data, body, blen) != 0))
            abort();
        sa_buf_reset(&out);
        box.data[blen % box.len] ^= 0x20;
        if (sa_aead_open(&key, name, nlen, box.data, box.len, &out, &e) == 0 || out.len != 0)
            abort();
    }
    sa_buf_free(&out);
    sa_buf_free(&box);
    return 0;
}
