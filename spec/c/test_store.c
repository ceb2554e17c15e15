/* C core tests for token storage: AES-256-GCM at rest, the file store
 * (permissions, atomic writes, names, locks, tampering) and the Redis store
 * against a real redis-server started here on a free loopback port. */
#define _DEFAULT_SOURCE 1

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "aead.h"
#include "check.h"
#include "store_file.h"
#include "store_redis.h"

static const char SECRET[] = "0123456789abcdef-test-secret";
static const char OTHER[] = "fedcba9876543210-other-secret";

/* memmem is a GNU extension: a plain search for the checks. */
static int contains(const void *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle), i;
    for (i = 0; m <= n && i <= n - m; i++)
        if (memcmp((const char *)hay + i, needle, m) == 0)
            return 1;
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ aead */

static void test_aead(void)
{
    sa_aead_key k, k2;
    sa_buf s = SA_BUF_INIT, s2 = SA_BUF_INIT, p = SA_BUF_INIT;
    sa_err e;
    size_t i;
    const char *msg = "{\"access_token\":\"at-secret\"}";

    CHECK(sa_aead_key_derive(&k, "short", 5, &e) == -1 && e.kind == SA_EARG);
    CHECK(sa_aead_key_derive(&k, SECRET, strlen(SECRET), &e) == 0);
    CHECK(sa_aead_key_derive(&k2, OTHER, strlen(OTHER), &e) == 0);

    CHECK(sa_aead_seal(&k, "name", 4, msg, strlen(msg), &s, &e) == 0);
    CHECK(s.len == strlen(msg) + SA_AEAD_OVERHEAD);
    CHECK(sa_aead_is_sealed(s.data, s.len));
    CHECK(memcmp(s.data, "SAE\x01", 4) == 0);
    CHECK(!contains(s.data, s.len, "at-secret")); /* no plaintext leaks */
    CHECK(sa_aead_open(&k, "name", 4, s.data, s.len, &p, &e) == 0);
    CHECK(p.len == strlen(msg) && memcmp(p.data, msg, p.len) == 0);

    /* a fresh nonce each time */
    CHECK(sa_aead_seal(&k, "name", 4, msg, strlen(msg), &s2, &e) == 0);
    CHECK(s2.len == s.len && memcmp(s.data + 8, s2.data + 8, 12) != 0);

    /* wrong name (AAD), wrong key */
    sa_buf_reset(&p);
    CHECK(sa_aead_open(&k, "nome", 4, s.data, s.len, &p, &e) == -1 &&
          e.code == SA_AEAD_EAUTH && p.len == 0);
    CHECK(sa_aead_open(&k2, "name", 4, s.data, s.len, &p, &e) == -1 && e.code == SA_AEAD_EKEY);
    CHECK(strstr(e.msg, "different key") != NULL);

    /* every single flipped byte after the magic is caught */
    for (i = 4; i < s.len; i++) {
        int failed;
        s.data[i] ^= 0x20;
        sa_buf_reset(&p);
        failed = sa_aead_open(&k, "name", 4, s.data, s.len, &p, &e) == -1;
        CHECK(failed && p.len == 0);
        if (i >= 8)
            CHECK(e.code == SA_AEAD_EAUTH);
        s.data[i] ^= 0x20;
    }
    /* truncations, a future version, not sealed at all */
    for (i = 0; i < s.len; i += 7)
        CHECK(sa_aead_open(&k, "name", 4, s.data, i, &p, &e) == -1);
    s.data[3] = 2;
    CHECK(sa_aead_open(&k, "name", 4, s.data, s.len, &p, &e) == -1 && e.code == SA_AEAD_EFORMAT);
    CHECK(strstr(e.msg, "version 2") != NULL);
    s.data[3] = 1;
    CHECK(sa_aead_open(&k, "name", 4, msg, strlen(msg), &p, &e) == -1 && e.code == SA_AEAD_EFORMAT);

    /* nothing of a refused entry stays on OpenSSL's error queue */
    ERR_clear_error();
    for (i = 0; i < s.len; i++) {
        s.data[i] ^= 0x01;
        sa_buf_reset(&p);
        CHECK(sa_aead_open(&k, "name", 4, s.data, s.len, &p, &e) == -1);
        CHECK(ERR_peek_error() == 0);
        s.data[i] ^= 0x01;
    }
    CHECK(sa_aead_open(&k, "other", 5, s.data, s.len, &p, &e) == -1);
    CHECK(ERR_peek_error() == 0);

    /* empty plaintext */
    sa_buf_reset(&s);
    sa_buf_reset(&p);
    CHECK(sa_aead_seal(&k, NULL, 0, "", 0, &s, &e) == 0 && s.len == SA_AEAD_OVERHEAD);
    CHECK(sa_aead_open(&k, NULL, 0, s.data, s.len, &p, &e) == 0 && p.len == 0);

    sa_aead_key_wipe(&k);
    sa_aead_key_wipe(&k2);
    sa_aead_key_wipe(NULL);
    sa_buf_free(&s);
    sa_buf_free(&s2);
    sa_buf_free(&p);
}

/* ------------------------------------------------------------ file store */

static char root[64];

static void path_of(char *out, size_t cap, const char *rel)
{
    snprintf(out, cap, "%s/%s", root, rel);
}

static mode_t mode_of(const char *rel)
{
    char p[256];
    struct stat st;
    path_of(p, sizeof p, rel);
    if (lstat(p, &st) != 0)
        return (mode_t)-1;
    return st.st_mode & 07777;
}

static void write_raw(const char *rel, const void *data, size_t len, mode_t mode)
{
    char p[256];
    int fd;
    path_of(p, sizeof p, rel);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd >= 0) {
        CHECK(write(fd, data, len) == (ssize_t)len);
        CHECK(fchmod(fd, mode) == 0);
        close(fd);
    } else {
        CHECK(!"cannot write test file");
    }
}

static size_t read_raw(const char *rel, char *buf, size_t cap)
{
    char p[256];
    int fd;
    ssize_t n;
    path_of(p, sizeof p, rel);
    fd = open(p, O_RDONLY);
    if (fd < 0)
        return 0;
    n = read(fd, buf, cap);
    close(fd);
    return n > 0 ? (size_t)n : 0;
}

static int count_tmp(const char *rel_dir)
{
    char cmd[300];
    FILE *f;
    int n = -1;
    snprintf(cmd, sizeof cmd, "ls -A '%s/%s' | grep -c '\\.tmp$'", root, rel_dir);
    f = popen(cmd, "r");
    if (f) {
        if (fscanf(f, "%d", &n) != 1)
            n = -1;
        pclose(f);
    }
    return n;
}

static void test_names(void)
{
    char out[64];
    sa_err e;
    CHECK(sa_fstore_encode_name("gh.AbC-_9", 9, out, sizeof out, &e) == 0);
    CHECK(strcmp(out, "gh.AbC-_9") == 0);
    CHECK(sa_fstore_encode_name("../x", 4, out, sizeof out, &e) == 0);
    CHECK(strcmp(out, "%2E.%2Fx") == 0);
    CHECK(sa_fstore_encode_name("..", 2, out, sizeof out, &e) == 0 && strcmp(out, "%2E.") == 0);
    CHECK(sa_fstore_encode_name("a\0b%", 4, out, sizeof out, &e) == 0);
    CHECK(strcmp(out, "a%00b%25") == 0);
    CHECK(sa_fstore_encode_name("", 0, out, sizeof out, &e) == -1 && e.kind == SA_EARG);
    CHECK(sa_fstore_encode_name("////////////////////////", 24, out, sizeof out, &e) == -1);
}

static void test_file_basic(void)
{
    sa_fstore *fs;
    sa_buf b = SA_BUF_INIT;
    sa_err e;
    char raw[512];
    size_t n;

    CHECK(sa_fstore_new("", NULL, 0, &e) == NULL && e.kind == SA_EARG);
    fs = sa_fstore_new(root, NULL, 0, &e); /* root exists, made 0700 by mkdtemp */
    CHECK(fs != NULL);
    sa_fstore_free(fs);

    /* created with parents, 0700 whatever the umask */
    {
        char p[256];
        mode_t old = umask(0);
        path_of(p, sizeof p, "plain/deeper");
        fs = sa_fstore_new(p, NULL, 0, &e);
        umask(old);
    }
    CHECK(fs != NULL);
    if (!fs)
        return;
    CHECK(mode_of("plain") == 0700 && mode_of("plain/deeper") == 0700);
    CHECK(!sa_fstore_encrypted(fs));

    CHECK(sa_fstore_get(fs, "gh.k", 4, &b, &e) == 0 && b.len == 0);
    CHECK(sa_fstore_set(fs, "gh.k", 4, "{\"a\":1}", 7, &e) == 0);
    CHECK(mode_of("plain/deeper/gh.k.tok") == 0600);
    CHECK(sa_fstore_get(fs, "gh.k", 4, &b, &e) == 1);
    CHECK_MEM(b.data, b.len, "{\"a\":1}");
    sa_buf_reset(&b);
    CHECK(sa_fstore_set(fs, "gh.k", 4, "{\"a\":2}", 7, &e) == 0);
    CHECK(sa_fstore_get(fs, "gh.k", 4, &b, &e) == 1);
    CHECK_MEM(b.data, b.len, "{\"a\":2}");
    CHECK(count_tmp("plain/deeper") == 0);

    /* hostile names stay inside the directory */
    CHECK(sa_fstore_set(fs, "../evil", 7, "x", 1, &e) == 0);
    CHECK(mode_of("plain/evil.tok") == (mode_t)-1);
    CHECK(mode_of("plain/deeper/%2E.%2Fevil.tok") == 0600);
    CHECK(sa_fstore_set(fs, "", 0, "x", 1, &e) == -1 && e.kind == SA_EARG);

    /* delete, twice */
    CHECK(sa_fstore_delete(fs, "gh.k", 4, &e) == 0);
    CHECK(sa_fstore_delete(fs, "gh.k", 4, &e) == 0);
    sa_buf_reset(&b);
    CHECK(sa_fstore_get(fs, "gh.k", 4, &b, &e) == 0);

    /* an empty file is corrupt, not an empty entry */
    write_raw("plain/deeper/empty.tok", "", 0, 0600);
    CHECK(sa_fstore_get(fs, "empty", 5, &b, &e) == -1 && strstr(e.msg, "empty") != NULL);

    /* too large */
    {
        size_t big = SA_FSTORE_MAX_ENTRY + 1;
        char *p = calloc(1, big);
        if (p) {
            CHECK(sa_fstore_set(fs, "big", 3, p, big, &e) == -1 && e.kind == SA_EARG);
            free(p);
        }
    }

    /* a plaintext store refuses an encrypted entry */
    {
        sa_fstore *enc;
        char p[256];
        path_of(p, sizeof p, "plain/deeper");
        enc = sa_fstore_new(p, SECRET, strlen(SECRET), &e);
        CHECK(enc != NULL && sa_fstore_encrypted(enc));
        if (enc) {
            CHECK(sa_fstore_set(enc, "sealed", 6, "{\"s\":1}", 7, &e) == 0);
            n = read_raw("plain/deeper/sealed.tok", raw, sizeof raw);
            CHECK(n == 7 + SA_AEAD_OVERHEAD && memcmp(raw, "SAE\x01", 4) == 0);
            sa_buf_reset(&b);
            CHECK(sa_fstore_get(fs, "sealed", 6, &b, &e) == -1 && b.len == 0);
            CHECK(strstr(e.msg, "has no key") != NULL);
            /* and the encrypted store refuses a plaintext one */
            CHECK(sa_fstore_get(enc, "../evil", 7, &b, &e) == -1 && b.len == 0);
            CHECK(strstr(e.msg, "not encrypted") != NULL);
        }
        sa_fstore_free(enc);
    }
    sa_fstore_free(fs);
    sa_fstore_free(NULL);
    sa_buf_free(&b);
}

static void test_file_permissions(void)
{
    sa_fstore *fs;
    sa_buf b = SA_BUF_INIT;
    sa_err e;
    char p[256], q[256];

    /* a looser existing directory is refused, not fixed */
    path_of(p, sizeof p, "loose");
    CHECK(mkdir(p, 0755) == 0 && chmod(p, 0755) == 0);
    CHECK(sa_fstore_new(p, NULL, 0, &e) == NULL && e.kind == SA_ESTORAGE);
    CHECK(strstr(e.msg, "mode 755") != NULL && strstr(e.msg, "chmod 700") != NULL);
    CHECK(mode_of("loose") == 0755);

    /* a directory that turns loose after opening is refused on use */
    path_of(p, sizeof p, "later");
    fs = sa_fstore_new(p, NULL, 0, &e);
    CHECK(fs != NULL);
    if (fs) {
        CHECK(sa_fstore_set(fs, "k", 1, "{}", 2, &e) == 0);
        CHECK(chmod(p, 0750) == 0);
        CHECK(sa_fstore_get(fs, "k", 1, &b, &e) == -1 && strstr(e.msg, "mode 750") != NULL);
        CHECK(sa_fstore_set(fs, "k", 1, "{}", 2, &e) == -1);
        CHECK(chmod(p, 0700) == 0);
        /* a looser file */
        path_of(q, sizeof q, "later/k.tok");
        CHECK(chmod(q, 0644) == 0);
        CHECK(sa_fstore_get(fs, "k", 1, &b, &e) == -1 && strstr(e.msg, "mode 644") != NULL &&
              b.len == 0);
        CHECK(chmod(q, 0600) == 0);
        CHECK(sa_fstore_get(fs, "k", 1, &b, &e) == 1);
        /* a symlink planted under an entry's name */
        path_of(q, sizeof q, "later/link.tok");
        CHECK(symlink("k.tok", q) == 0);
        CHECK(sa_fstore_get(fs, "link", 4, &b, &e) == -1 && strstr(e.msg, "symbolic link") != NULL);
        /* a FIFO does not hang the reader */
        path_of(q, sizeof q, "later/fifo.tok");
        CHECK(mkfifo(q, 0600) == 0);
        CHECK(sa_fstore_get(fs, "fifo", 4, &b, &e) == -1 && strstr(e.msg, "regular file") != NULL);
        /* owned by another user (only root can arrange that) */
        if (geteuid() == 0) {
            path_of(q, sizeof q, "later/k.tok");
            CHECK(chown(q, 65534, 65534) == 0);
            CHECK(sa_fstore_get(fs, "k", 1, &b, &e) == -1 && strstr(e.msg, "owned by uid 65534") != NULL);
            CHECK(chown(p, 65534, 65534) == 0);
            CHECK(sa_fstore_set(fs, "k", 1, "{}", 2, &e) == -1 && strstr(e.msg, "owned by") != NULL);
            sa_fstore_free(fs);
            fs = sa_fstore_new(p, NULL, 0, &e);
            CHECK(fs == NULL && strstr(e.msg, "owned by uid 65534") != NULL);
            CHECK(chown(p, 0, 0) == 0);
        }
        sa_fstore_free(fs);
    }
    /* not a directory */
    path_of(p, sizeof p, "afile");
    write_raw("afile", "x", 1, 0600);
    CHECK(sa_fstore_new(p, NULL, 0, &e) == NULL && e.kind == SA_ESTORAGE);
    sa_buf_free(&b);
}

static void test_file_encrypted(void)
{
    sa_fstore *fs, *other, *plain;
    sa_buf b = SA_BUF_INIT;
    sa_err e;
    char p[256], raw[512];
    size_t n;

    path_of(p, sizeof p, "enc");
    CHECK(sa_fstore_new(p, "short", 5, &e) == NULL && e.kind == SA_EARG);
    fs = sa_fstore_new(p, SECRET, strlen(SECRET), &e);
    other = sa_fstore_new(p, OTHER, strlen(OTHER), &e);
    plain = sa_fstore_new(p, NULL, 0, &e);
    CHECK(fs && other && plain);
    if (!fs || !other || !plain)
        goto done;
    CHECK(sa_fstore_set(fs, "svc.x", 5, "{\"access_token\":\"at-1\"}", 23, &e) == 0);
    n = read_raw("enc/svc.x.tok", raw, sizeof raw);
    CHECK(n == 23 + SA_AEAD_OVERHEAD && !contains(raw, n, "at-1"));
    CHECK(sa_fstore_get(fs, "svc.x", 5, &b, &e) == 1);
    CHECK_MEM(b.data, b.len, "{\"access_token\":\"at-1\"}");

    /* wrong key: a clear error and nothing returned */
    sa_buf_reset(&b);
    CHECK(sa_fstore_get(other, "svc.x", 5, &b, &e) == -1 && b.len == 0);
    CHECK(e.kind == SA_ESTORAGE && e.code == SA_AEAD_EKEY && strstr(e.msg, "different key"));
    CHECK(sa_fstore_get(plain, "svc.x", 5, &b, &e) == -1 && strstr(e.msg, "SMARTAUTH_STORE_KEY"));

    /* tampered: one flipped byte in the ciphertext */
    raw[n / 2 + 10] ^= 1;
    write_raw("enc/svc.x.tok", raw, n, 0600);
    CHECK(sa_fstore_get(fs, "svc.x", 5, &b, &e) == -1 && b.len == 0);
    CHECK(e.code == SA_AEAD_EAUTH && strstr(e.msg, "tampered"));
    raw[n / 2 + 10] ^= 1;

    /* an entry copied under another name fails (the name is the AAD) */
    write_raw("enc/svc.y.tok", raw, n, 0600);
    CHECK(sa_fstore_get(fs, "svc.y", 5, &b, &e) == -1 && e.code == SA_AEAD_EAUTH);
    write_raw("enc/svc.x.tok", raw, n, 0600);
    CHECK(sa_fstore_get(fs, "svc.x", 5, &b, &e) == 1);

    /* truncated */
    write_raw("enc/svc.x.tok", raw, 10, 0600);
    sa_buf_reset(&b);
    CHECK(sa_fstore_get(fs, "svc.x", 5, &b, &e) == -1 && b.len == 0);
done:
    sa_fstore_free(fs);
    sa_fstore_free(other);
    sa_fstore_free(plain);
    sa_buf_free(&b);
}

static void test_file_lock_and_sweep(void)
{
    sa_fstore *fs;
    sa_err e;
    char p[256];
    int fd1 = -1, fd2 = -1, probe;

    path_of(p, sizeof p, "locks");
    fs = sa_fstore_new(p, NULL, 0, &e);
    CHECK(fs != NULL);
    if (!fs)
        return;
    CHECK(sa_fstore_try_lock(fs, "k", 1, &fd1, &e) == 1 && fd1 >= 0);
    CHECK(mode_of("locks/k.lock") == 0600);
    /* flock locks belong to the open file, so a second open finds it held:
     * at once, without an error, and without keeping a descriptor (the
     * caller's loop waits and tries again) */
    probe = dup(0);
    close(probe);
    fd2 = 7;
    CHECK(sa_fstore_try_lock(fs, "k", 1, &fd2, &e) == 0 && fd2 == -1);
    {
        int after = dup(0);
        CHECK(after == probe);
        close(after);
    }
    /* another key is free */
    CHECK(sa_fstore_try_lock(fs, "other", 5, &fd2, &e) == 1);
    sa_fstore_unlock(fd2);
    sa_fstore_unlock(fd1);
    sa_fstore_unlock(-1);
    CHECK(sa_fstore_try_lock(fs, "k", 1, &fd2, &e) == 1);
    sa_fstore_unlock(fd2);
    /* a lock file open to others is refused */
    {
        char q[256];
        path_of(q, sizeof q, "locks/k.lock");
        CHECK(chmod(q, 0666) == 0);
        CHECK(sa_fstore_try_lock(fs, "k", 1, &fd2, &e) == -1 && strstr(e.msg, "mode 666") &&
              fd2 == -1);
    }
    sa_fstore_free(fs);

    /* temporaries of killed writers: old ones are swept on open, fresh ones kept */
    write_raw("locks/.k.tok.0123456789ab.tmp", "x", 1, 0600);
    write_raw("locks/.k.tok.ba9876543210.tmp", "x", 1, 0600);
    {
        char q[256];
        struct timespec old[2];
        old[0].tv_sec = old[1].tv_sec = time(NULL) - 3600;
        old[0].tv_nsec = old[1].tv_nsec = 0;
        path_of(q, sizeof q, "locks/.k.tok.0123456789ab.tmp");
        CHECK(utimensat(AT_FDCWD, q, old, 0) == 0);
    }
    fs = sa_fstore_new(p, NULL, 0, &e);
    CHECK(fs != NULL);
    CHECK(mode_of("locks/.k.tok.0123456789ab.tmp") == (mode_t)-1);
    CHECK(mode_of("locks/.k.tok.ba9876543210.tmp") == 0600);
    sa_fstore_free(fs);
}

/* Kill a child that rewrites one entry in a loop, many times: the entry must
 * always read back whole, old or new. */
static void test_file_kill(void)
{
    sa_fstore *fs;
    sa_err e;
    char p[256];
    int i, complete = 0, left_tmp;
    path_of(p, sizeof p, "kill");
    fs = sa_fstore_new(p, SECRET, strlen(SECRET), &e);
    CHECK(fs != NULL);
    if (!fs)
        return;
    CHECK(sa_fstore_set(fs, "k", 1, "v:0000000000", 12, &e) == 0);
    for (i = 0; i < 40; i++) {
        sa_buf b = SA_BUF_INIT;
        pid_t pid = fork();
        if (pid == 0) {
            sa_fstore *cfs = sa_fstore_new(p, SECRET, strlen(SECRET), NULL);
            char val[4096];
            unsigned n = 0;
            if (!cfs)
                _exit(1);
            for (;;) {
                size_t len = 12 + (n * 997u) % 4000u;
                memset(val, 'a' + (int)(n % 26), len);
                snprintf(val, 13, "v:%010u", n);
                val[12] = (char)('a' + (int)(n % 26));
                sa_fstore_set(cfs, "k", 1, val, len, NULL);
                n++;
            }
        }
        sleep_ms(2 + (i * 7) % 15);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        if (sa_fstore_get(fs, "k", 1, &b, &e) == 1 && b.len >= 12 && memcmp(b.data, "v:", 2) == 0) {
            size_t j;
            int same = 1;
            for (j = 12; j < b.len; j++)
                same &= b.data[j] == b.data[12];
            complete += same;
        }
        sa_buf_free(&b);
    }
    CHECK(complete == 40);
    left_tmp = count_tmp("kill");
    CHECK(left_tmp >= 0);
    printf("file kill test: %d/40 complete after SIGKILL, %d temporary files left behind\n",
           complete, left_tmp);
    sa_fstore_free(fs);
}

/* ----------------------------------------------------------- redis store */

static pid_t redis_pid = -1;
static int redis_port;
static char redis_dir[96];

static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int s = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    if (s < 0)
        return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(s);
    return port;
}

static int port_open(int port)
{
    struct sockaddr_in a;
    int s = socket(AF_INET, SOCK_STREAM, 0), ok;
    if (s < 0)
        return 0;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)port);
    ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

static int redis_start(void)
{
    char port[16];
    int i;
    snprintf(port, sizeof port, "%d", redis_port);
    redis_pid = fork();
    if (redis_pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", redis_dir, (char *)NULL);
        _exit(127);
    }
    for (i = 0; i < 500; i++) {
        int status;
        if (port_open(redis_port))
            return 0;
        if (waitpid(redis_pid, &status, WNOHANG) == redis_pid) {
            redis_pid = -1;
            return -1;
        }
        sleep_ms(10);
    }
    return -1;
}

static void redis_stop(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
        redis_pid = -1;
    }
}

static void test_redis(void)
{
    sa_redis_opts o;
    sa_redis *r, *r2, *enc;
    sa_buf b = SA_BUF_INIT;
    sa_err e;
    char owner[SA_REDIS_OWNER_LEN + 1], owner2[SA_REDIS_OWNER_LEN + 1];

    snprintf(redis_dir, sizeof redis_dir, "%s/redis", root);
    mkdir(redis_dir, 0700);
    redis_port = free_port();
    if (redis_port <= 0 || redis_start() != 0) {
        printf("test_store: redis-server not available, redis tests skipped\n");
        return;
    }
    memset(&o, 0, sizeof o);
    o.port = redis_port;
    o.timeout_ms = 2000;

    /* nobody listening: a network error naming host and port */
    {
        sa_redis_opts bad = o;
        bad.port = free_port();
        CHECK(sa_redis_new(&bad, &e) == NULL && e.kind == SA_ENETWORK);
        CHECK(strstr(e.msg, "127.0.0.1:") != NULL);
    }

    r = sa_redis_new(&o, &e);
    r2 = sa_redis_new(&o, &e);
    o.secret = SECRET;
    o.secret_len = strlen(SECRET);
    enc = sa_redis_new(&o, &e);
    CHECK(r && r2 && enc);
    if (!r || !r2 || !enc)
        goto done;

    CHECK(sa_redis_get(r, "k", 1, &b, &e) == 0);
    CHECK(sa_redis_set(r, "k", 1, "v\0x", 3, 0, &e) == 0);
    CHECK(sa_redis_get(r, "k", 1, &b, &e) == 1 && b.len == 3 && memcmp(b.data, "v\0x", 3) == 0);
    CHECK(sa_redis_del(r, "k", 1, &e) == 0);
    sa_buf_reset(&b);
    CHECK(sa_redis_get(r, "k", 1, &b, &e) == 0);

    /* PX: entries expire with their ttl */
    CHECK(sa_redis_set(r, "short", 5, "v", 1, 60, &e) == 0);
    CHECK(sa_redis_get(r2, "short", 5, &b, &e) == 1);
    sleep_ms(120);
    CHECK(sa_redis_get(r2, "short", 5, &b, &e) == 0);

    /* encrypted values */
    sa_buf_reset(&b);
    CHECK(sa_redis_set(enc, "e", 1, "secret", 6, 0, &e) == 0);
    CHECK(sa_redis_get(enc, "e", 1, &b, &e) == 1);
    CHECK_MEM(b.data, b.len, "secret");
    sa_buf_reset(&b);
    CHECK(sa_redis_get(r, "e", 1, &b, &e) == -1 && strstr(e.msg, "encrypted") && b.len == 0);
    CHECK(sa_redis_get(enc, "k2", 2, &b, &e) == 0);
    CHECK(sa_redis_set(r, "plain", 5, "x", 1, 0, &e) == 0);
    CHECK(sa_redis_get(enc, "plain", 5, &b, &e) == -1 && strstr(e.msg, "not encrypted"));

    /* the lock: exclusive, owner-released, expiring; one try, never a wait */
    CHECK(sa_redis_try_lock(r, "L", 1, 5000, owner, &e) == 1 && strlen(owner) == SA_REDIS_OWNER_LEN);
    CHECK(sa_redis_try_lock(r2, "L", 1, 5000, owner2, &e) == 0); /* held: no error */
    CHECK(sa_redis_unlock(r2, "L", 1, "not-the-owner", 13, &e) == 0);
    CHECK(sa_redis_try_lock(r2, "L", 1, 5000, owner2, &e) == 0);
    CHECK(sa_redis_unlock(r, "L", 1, owner, strlen(owner), &e) == 1);
    CHECK(sa_redis_unlock(r, "L", 1, owner, strlen(owner), &e) == 0);
    CHECK(sa_redis_try_lock(r2, "L", 1, 50, owner2, &e) == 1 && strcmp(owner, owner2) != 0);
    CHECK(sa_redis_try_lock(r, "L", 1, 5000, owner, &e) == 0);
    sleep_ms(120);
    CHECK(sa_redis_try_lock(r, "L", 1, 5000, owner, &e) == 1); /* after r2's expired */
    CHECK(sa_redis_unlock(r2, "L", 1, owner2, strlen(owner2), &e) == 0); /* not r2's any more */
    CHECK(sa_redis_unlock(r, "L", 1, owner, strlen(owner), &e) == 1);
    CHECK(sa_redis_try_lock(r, "L", 1, 0, owner, &e) == -1 && e.kind == SA_EARG);

    /* server gone: errors, no crash (SIGPIPE included); back: reconnects */
    CHECK(sa_redis_set(r, "k", 1, "v", 1, 0, &e) == 0);
    redis_stop();
    sa_buf_reset(&b);
    CHECK(sa_redis_get(r, "k", 1, &b, &e) == -1 && e.kind == SA_ENETWORK && b.len == 0);
    CHECK(sa_redis_set(r2, "k", 1, "v", 1, 0, &e) == -1 && e.kind == SA_ENETWORK);
    CHECK(sa_redis_try_lock(r, "L", 1, 1000, owner, &e) == -1 && e.kind == SA_ENETWORK);
    CHECK(redis_start() == 0);
    CHECK(sa_redis_get(r, "k", 1, &b, &e) == 0); /* no persistence: gone, but a clean answer */
    CHECK(sa_redis_set(r2, "k", 1, "w", 1, 0, &e) == 0);
    CHECK(sa_redis_get(r, "k", 1, &b, &e) == 1);
    CHECK_MEM(b.data, b.len, "w");
    /* restart while idle: the next call just works */
    redis_stop();
    CHECK(redis_start() == 0);
    sleep_ms(20);
    sa_buf_reset(&b);
    CHECK(sa_redis_get(r, "k", 1, &b, &e) == 0);
done:
    sa_redis_free(r);
    sa_redis_free(r2);
    sa_redis_free(enc);
    sa_redis_free(NULL);
    sa_buf_free(&b);
    redis_stop();
}

int main(void)
{
    char cmd[128];
    int rc;
    snprintf(root, sizeof root, "/tmp/sa-test-store.XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    test_aead();
    test_names();
    test_file_basic();
    test_file_permissions();
    test_file_encrypted();
    test_file_lock_and_sweep();
    test_file_kill();
    test_redis();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    rc = system(cmd);
    (void)rc;
    return CHECK_DONE("test_store");
}
