/* flock(2) is BSD, declared by glibc only with _DEFAULT_SOURCE. */
#define _DEFAULT_SOURCE 1

#include "store_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "aead.h"
#include "crypto.h"

#define STEM_CAP 200          /* encoded name; room left for suffixes in NAME_MAX */
#define FILE_CAP (STEM_CAP + 40)
#define STALE_TMP_SECONDS 300

struct sa_fstore {
    int dirfd;
    char *dir;
    int has_key;
    sa_aead_key key;
};

const char *sa_fstore_dir(const sa_fstore *fs) { return fs->dir; }
int sa_fstore_encrypted(const sa_fstore *fs) { return fs->has_key; }

static int sys_err(sa_err *err, int code, const char *what, const char *path)
{
    return sa_err_set(err, SA_ESTORAGE, code, "%s '%s': %s", what, path, strerror(code));
}

static int safe_char(unsigned char c, size_t pos)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return 1;
    return c == '_' || c == '-' || (c == '.' && pos > 0);
}

int sa_fstore_encode_name(const char *name, size_t namelen, char *out, size_t cap,
                          sa_err *err)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i, o = 0;
    if (namelen == 0)
        return sa_err_set(err, SA_EARG, 0, "entry name is empty");
    if (namelen > SA_FSTORE_MAX_NAME)
        return sa_err_set(err, SA_EARG, 0, "entry name is longer than %d bytes",
                          SA_FSTORE_MAX_NAME);
    for (i = 0; i < namelen; i++) {
        unsigned char c = (unsigned char)name[i];
        if (safe_char(c, i)) {
            if (o + 1 >= cap)
                goto toolong;
            out[o++] = (char)c;
        } else {
            if (o + 3 >= cap)
                goto toolong;
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return 0;
toolong:
    return sa_err_set(err, SA_EARG, 0, "entry name is too long once encoded");
}

/* The stem plus a suffix ("tok", "lock") as a file name. */
static int file_name(const char *name, size_t namelen, const char *suffix, char *out,
                     sa_err *err)
{
    char stem[STEM_CAP];
    if (sa_fstore_encode_name(name, namelen, stem, sizeof stem, err) != 0)
        return -1;
    memcpy(out, stem, strlen(stem) + 1);
    out[strlen(stem)] = '.';
    memcpy(out + strlen(stem) + 1, suffix, strlen(suffix) + 1);
    return 0;
}

/* Owner and mode rules shared by the directory, entries and lock files. */
static int check_stat(const struct stat *st, int want_dir, const char *what,
                      const char *path, sa_err *err)
{
    uid_t me = geteuid();
    if (want_dir ? !S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode))
        return sa_err_set(err, SA_ESTORAGE, 0, "%s '%s' is not a %s", what, path,
                          want_dir ? "directory" : "regular file");
    if (st->st_uid != me)
        return sa_err_set(err, SA_ESTORAGE, EPERM,
                          "%s '%s' is owned by uid %lu, not by this user (uid %lu): refused",
                          what, path, (unsigned long)st->st_uid, (unsigned long)me);
    if ((st->st_mode & 077) != 0)
        return sa_err_set(err, SA_ESTORAGE, EPERM,
                          "%s '%s' has mode %03o, open to group or others: refused "
                          "(chmod %s it)",
                          what, path, (unsigned)(st->st_mode & 0777), want_dir ? "700" : "600");
    return 0;
}

static int check_dir(sa_fstore *fs, sa_err *err)
{
    struct stat st;
    if (fstat(fs->dirfd, &st) != 0)
        return sys_err(err, errno, "token store directory", fs->dir);
    if (st.st_nlink == 0)
        return sa_err_set(err, SA_ESTORAGE, ENOENT,
                          "token store directory '%s' was removed", fs->dir);
    return check_stat(&st, 1, "token store directory", fs->dir, err);
}

/* Make a new directory entry durable: fsync the directory holding path. */
static void sync_parent(char *path)
{
    char *slash = strrchr(path, '/');
    int fd;
    if (!slash) {
        fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } else if (slash == path) {
        fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } else {
        *slash = '\0';
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        *slash = '/';
    }
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* mkdir -p with mode 0700; directories made here get exactly 0700 and are
 * made durable in their parent. */
static int make_dirs(const char *dir, sa_err *err)
{
    size_t n = strlen(dir), i;
    char *p = malloc(n + 1);
    int rc = 0;
    if (!p)
        return sa_err_set(err, SA_ENOMEM, 0, "out of memory");
    memcpy(p, dir, n + 1);
    for (i = 1; i <= n && rc == 0; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        if (p[i - 1] == '/')
            continue;
        p[i] = '\0';
        if (mkdir(p, 0700) == 0) {
            if (chmod(p, 0700) != 0)
                rc = sys_err(err, errno, "cannot set mode of directory", p);
            else
                sync_parent(p);
        } else if (errno != EEXIST) {
            rc = sys_err(err, errno, "cannot create directory", p);
        }
        p[i] = i < n ? '/' : '\0';
    }
    free(p);
    return rc;
}

static void sweep_tmp(sa_fstore *fs)
{
    int fd = dup(fs->dirfd);
    DIR *d;
    struct dirent *de;
    time_t now = time(NULL);
    if (fd < 0)
        return;
    d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        struct stat st;
        if (de->d_name[0] != '.' || len < 6 || strcmp(de->d_name + len - 4, ".tmp") != 0)
            continue;
        if (fstatat(fs->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode) && st.st_mtime + STALE_TMP_SECONDS < now)
            unlinkat(fs->dirfd, de->d_name, 0);
    }
    closedir(d);
}

sa_fstore *sa_fstore_new(const char *dir, const void *secret, size_t secretlen,
                         sa_err *err)
{
    sa_fstore *fs;
    size_t n;
    if (!dir || dir[0] == '\0') {
        sa_err_set(err, SA_EARG, 0, "store directory is empty");
        return NULL;
    }
    fs = calloc(1, sizeof *fs);
    if (!fs) {
        sa_err_set(err, SA_ENOMEM, 0, "out of memory");
        return NULL;
    }
    fs->dirfd = -1;
    n = strlen(dir);
    fs->dir = malloc(n + 1);
    if (!fs->dir) {
        sa_err_set(err, SA_ENOMEM, 0, "out of memory");
        goto fail;
    }
    memcpy(fs->dir, dir, n + 1);
    if (secret) {
        if (sa_aead_key_derive(&fs->key, secret, secretlen, err) != 0)
            goto fail;
        fs->has_key = 1;
    }
    if (make_dirs(dir, err) != 0)
        goto fail;
    fs->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fs->dirfd < 0) {
        sys_err(err, errno, "cannot open token store directory", dir);
        goto fail;
    }
    if (check_dir(fs, err) != 0)
        goto fail;
    sweep_tmp(fs);
    return fs;
fail:
    sa_fstore_free(fs);
    return NULL;
}

void sa_fstore_free(sa_fstore *fs)
{
    if (!fs)
        return;
    if (fs->dirfd >= 0)
        close(fs->dirfd);
    sa_aead_key_wipe(&fs->key);
    free(fs->dir);
    free(fs);
}

static int read_all(int fd, sa_buf *out, size_t max, const char *path, sa_err *err)
{
    for (;;) {
        ssize_t r;
        if (sa_buf_reserve(out, 4096) != 0)
            return sa_err_set(err, SA_ENOMEM, 0, "out of memory");
        r = read(fd, out->data + out->len, out->cap - out->len - 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return sys_err(err, errno, "cannot read token file", path);
        }
        if (r == 0)
            break;
        out->len += (size_t)r;
        out->data[out->len] = '\0';
        if (out->len > max)
            return sa_err_set(err, SA_ESTORAGE, EFBIG,
                              "token file '%s' is larger than %lu bytes: refused", path,
                              (unsigned long)max);
    }
    return 0;
}

int sa_fstore_get(sa_fstore *fs, const char *name, size_t namelen, sa_buf *out,
                  sa_err *err)
{
    char fname[FILE_CAP];
    sa_buf raw = SA_BUF_INIT;
    struct stat st;
    int fd, rc = -1;

    if (file_name(name, namelen, "tok", fname, err) != 0 || check_dir(fs, err) != 0)
        return -1;
    /* O_NONBLOCK: a FIFO planted under the name cannot hang the open. */
    fd = openat(fs->dirfd, fname, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        if (errno == ELOOP)
            return sa_err_set(err, SA_ESTORAGE, ELOOP,
                              "token file '%s' is a symbolic link: refused", fname);
        return sys_err(err, errno, "cannot open token file", fname);
    }
    if (fstat(fd, &st) != 0) {
        sys_err(err, errno, "cannot stat token file", fname);
        goto done;
    }
    if (check_stat(&st, 0, "token file", fname, err) != 0)
        goto done;
    if (read_all(fd, &raw, SA_FSTORE_MAX_ENTRY + SA_AEAD_OVERHEAD, fname, err) != 0)
        goto done;
    if (raw.len == 0) {
        sa_err_set(err, SA_ESTORAGE, 0, "token file '%s' is empty (corrupt)", fname);
        goto done;
    }
    if (fs->has_key) {
        sa_err e2;
        if (!sa_aead_is_sealed(raw.data, raw.len)) {
            sa_err_set(err, SA_ESTORAGE, SA_AEAD_EFORMAT,
                       "token file '%s' is not encrypted, but this store has a key: refused",
                       fname);
            goto done;
        }
        if (sa_aead_open(&fs->key, name, namelen, raw.data, raw.len, out, &e2) != 0) {
            sa_err_set(err, SA_ESTORAGE, e2.code, "token file '%s': %s", fname, e2.msg);
            goto done;
        }
    } else {
        if (sa_aead_is_sealed(raw.data, raw.len)) {
            sa_err_set(err, SA_ESTORAGE, SA_AEAD_EFORMAT,
                       "token file '%s' is encrypted, but this store has no key "
                       "(set key= or SMARTAUTH_STORE_KEY)", fname);
            goto done;
        }
        if (sa_buf_append(out, raw.data, raw.len) != 0) {
            sa_err_set(err, SA_ENOMEM, 0, "out of memory");
            goto done;
        }
    }
    rc = 1;
done:
    close(fd);
    sa_buf_free(&raw);
    return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int sa_fstore_set(sa_fstore *fs, const char *name, size_t namelen, const void *data,
                  size_t len, sa_err *err)
{
    char fname[FILE_CAP], tmp[FILE_CAP + 32];
    unsigned char rnd[6];
    sa_buf sealed = SA_BUF_INIT;
    const char *bytes = data;
    size_t nbytes = len;
    int fd = -1, rc = -1;

    if (len > SA_FSTORE_MAX_ENTRY)
        return sa_err_set(err, SA_EARG, 0, "entry is larger than %d bytes",
                          SA_FSTORE_MAX_ENTRY);
    if (file_name(name, namelen, "tok", fname, err) != 0 || check_dir(fs, err) != 0)
        return -1;
    if (fs->has_key) {
        if (sa_aead_seal(&fs->key, name, namelen, data, len, &sealed, err) != 0)
            goto done;
        bytes = sealed.data;
        nbytes = sealed.len;
    }
    if (sa_random_bytes(rnd, sizeof rnd, err) != 0)
        goto done;
    /* fits: tmp has 32 bytes more than the longest fname */
    (void)snprintf(tmp, sizeof tmp, ".%s.%02x%02x%02x%02x%02x%02x.tmp", fname, rnd[0],
                   rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
    fd = openat(fs->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        sys_err(err, errno, "cannot create temporary file in", fs->dir);
        goto done;
    }
    if (fchmod(fd, 0600) != 0 || write_all(fd, bytes, nbytes) != 0 || fsync(fd) != 0) {
        sys_err(err, errno, "cannot write token file", fname);
        goto unlink;
    }
    if (close(fd) != 0) {
        fd = -1;
        sys_err(err, errno, "cannot write token file", fname);
        goto unlink;
    }
    fd = -1;
    if (renameat(fs->dirfd, tmp, fs->dirfd, fname) != 0) {
        sys_err(err, errno, "cannot replace token file", fname);
        goto unlink;
    }
    /* The rename is durable only once the directory is. */
    if (fsync(fs->dirfd) != 0) {
        sys_err(err, errno, "cannot sync token store directory", fs->dir);
        goto done;
    }
    rc = 0;
    goto done;
unlink:
    unlinkat(fs->dirfd, tmp, 0);
done:
    if (fd >= 0)
        close(fd);
    sa_buf_free(&sealed);
    return rc;
}

struct sa_fstore_job {
    pthread_t thread;
    pthread_mutex_t mu;
    int done;
    int rc;
    sa_err err;
    sa_fstore fs;               /* the store's directory (dup'd) and key */
    char *name;
    size_t namelen;
    char *data;
    size_t len;
};

static void job_free(sa_fstore_job *j)
{
    if (j->fs.dirfd >= 0)
        close(j->fs.dirfd);
    sa_aead_key_wipe(&j->fs.key);
    free(j->fs.dir);
    if (j->data)
        OPENSSL_cleanse(j->data, j->len); /* a token entry */
    free(j->data);
    free(j->name);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

static void *job_run(void *arg)
{
    sa_fstore_job *j = arg;
    sa_err e;
    int rc = sa_fstore_set(&j->fs, j->name, j->namelen, j->data, j->len, &e);
    pthread_mutex_lock(&j->mu);
    j->rc = rc;
    if (rc != 0)
        j->err = e;
    j->done = 1;
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

sa_fstore_job *sa_fstore_set_start(sa_fstore *fs, const char *name, size_t namelen,
                                   const void *data, size_t len, sa_err *err)
{
    sa_fstore_job *j = calloc(1, sizeof *j);
    if (!j)
        return sa_err_set(err, SA_ENOMEM, 0, "out of memory"), NULL;
    j->fs.dirfd = -1;
    if (pthread_mutex_init(&j->mu, NULL) != 0) {
        free(j);
        return sa_err_set(err, SA_ENOMEM, 0, "out of memory"), NULL;
    }
    j->fs.has_key = fs->has_key;
    j->fs.key = fs->key;
    j->namelen = namelen;
    j->len = len;
    j->fs.dir = strdup(fs->dir);
    j->name = malloc(namelen + 1);
    j->data = malloc(len + 1);
    if (!j->fs.dir || !j->name || !j->data) {
        job_free(j);
        return sa_err_set(err, SA_ENOMEM, 0, "out of memory"), NULL;
    }
    memcpy(j->name, name, namelen);
    memcpy(j->data, data, len);
    j->fs.dirfd = fcntl(fs->dirfd, F_DUPFD_CLOEXEC, 0);
    if (j->fs.dirfd < 0) {
        sys_err(err, errno, "cannot use token store directory", fs->dir);
        job_free(j);
        return NULL;
    }
    if (pthread_create(&j->thread, NULL, job_run, j) != 0) {
        job_free(j);
        return sa_err_set(err, SA_ENOMEM, 0, "cannot start a thread for the write"), NULL;
    }
    return j;
}

int sa_fstore_job_done(sa_fstore_job *j)
{
    int d;
    pthread_mutex_lock(&j->mu);
    d = j->done;
    pthread_mutex_unlock(&j->mu);
    return d;
}

int sa_fstore_job_finish(sa_fstore_job *j, sa_err *err)
{
    int rc;
    pthread_join(j->thread, NULL);
    rc = j->rc;
    if (rc != 0 && err)
        *err = j->err;
    job_free(j);
    return rc;
}

int sa_fstore_delete(sa_fstore *fs, const char *name, size_t namelen, sa_err *err)
{
    char fname[FILE_CAP];
    if (file_name(name, namelen, "tok", fname, err) != 0 || check_dir(fs, err) != 0)
        return -1;
    if (unlinkat(fs->dirfd, fname, 0) != 0) {
        if (errno == ENOENT)
            return 0;
        return sys_err(err, errno, "cannot remove token file", fname);
    }
    if (fsync(fs->dirfd) != 0)
        return sys_err(err, errno, "cannot sync token store directory", fs->dir);
    return 0;
}

int sa_fstore_try_lock(sa_fstore *fs, const char *name, size_t namelen, int *fdp,
                       sa_err *err)
{
    char fname[FILE_CAP];
    struct stat st;
    int fd;

    *fdp = -1;
    if (file_name(name, namelen, "lock", fname, err) != 0 || check_dir(fs, err) != 0)
        return -1;
    fd = openat(fs->dirfd, fname, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
                0600);
    if (fd < 0)
        return sys_err(err, errno, "cannot open lock file", fname);
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return sys_err(err, e, "cannot stat lock file", fname);
    }
    if (check_stat(&st, 0, "lock file", fname, err) != 0) {
        close(fd);
        return -1;
    }
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EINTR)
            continue;
        close(fd);
        if (e == EWOULDBLOCK)
            return 0;
        return sys_err(err, e, "cannot lock", fname);
    }
    *fdp = fd;
    return 1;
}

void sa_fstore_unlock(int fd)
{
    if (fd >= 0) {
        flock(fd, LOCK_UN);
        close(fd);
    }
}
