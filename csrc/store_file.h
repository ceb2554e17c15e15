/* File token store: one private directory, one file per entry, atomic
 * replacement, a lock file per entry, optional AES-256-GCM at rest.
 *
 * Layout in the directory (mode 0700, owned by the caller's user):
 *   <name>.tok               the entry (mode 0600)
 *   <name>.lock              flock(2) target for refresh coordination (0600)
 *   .<name>.tok.<rand>.tmp   a write in progress (renamed over <name>.tok)
 * where <name> is the entry name with every byte outside [A-Za-z0-9_.-], a
 * leading '.', and '%' written as %XX, so a name can never hold '/', NUL or
 * be "." or "..". */
#ifndef SA_STORE_FILE_H
#define SA_STORE_FILE_H

#include <stddef.h>

#include "buf.h"
#include "sa_err.h"

#define SA_FSTORE_MAX_ENTRY 1048576  /* bytes (1 MiB), before encryption */
#define SA_FSTORE_MAX_NAME 128             /* bytes of an entry name */

typedef struct sa_fstore sa_fstore;

/* Open (creating it 0700, parents included, when missing) the store
 * directory. An existing directory that is not owned by the effective user or
 * is accessible to group or others is refused. secret (NULL for none, else at
 * least SA_AEAD_MIN_SECRET bytes) turns on encryption; it is copied in derived
 * form. Abandoned temporary files older than five minutes are removed.
 * Returns the store (free with sa_fstore_free) or NULL with err (SA_ESTORAGE,
 * code errno where one applies; SA_EARG for a bad secret). */
sa_fstore *sa_fstore_new(const char *dir, const void *secret, size_t secretlen,
                         sa_err *err);

/* Closes the directory and wipes the key. Accepts NULL. */
void sa_fstore_free(sa_fstore *fs);

/* The directory path as given. */
const char *sa_fstore_dir(const sa_fstore *fs);

/* 1 when the store encrypts. */
int sa_fstore_encrypted(const sa_fstore *fs);

/* Read an entry into out (appended, decrypted). 1 found, 0 absent, -1 err:
 * a file with loose permissions or another owner, a symlink, a read error,
 * an empty file, an entry too large, a wrong key, tampering, or an encrypted
 * entry in a store without a key (and the reverse). */
int sa_fstore_get(sa_fstore *fs, const char *name, size_t namelen, sa_buf *out,
                  sa_err *err);

/* Replace an entry atomically: temporary file, write, fsync, rename, fsync of
 * the directory. A process killed at any point leaves the old or the new
 * entry. 0 ok, -1 err. */
int sa_fstore_set(sa_fstore *fs, const char *name, size_t namelen, const void *data,
                  size_t len, sa_err *err);

/* sa_fstore_set on a thread of its own, for a caller that must not wait
 * for the fsyncs (a task inside a host's frame): the job owns copies of the
 * store's directory and key, the name and the data. _done tells without
 * waiting; _finish waits, gives sa_fstore_set's result (0, or -1 with err)
 * and frees the job (the data wiped). NULL with err if it cannot start. */
typedef struct sa_fstore_job sa_fstore_job;
sa_fstore_job *sa_fstore_set_start(sa_fstore *fs, const char *name, size_t namelen,
                                   const void *data, size_t len, sa_err *err);
int sa_fstore_job_done(sa_fstore_job *job);
int sa_fstore_job_finish(sa_fstore_job *job, sa_err *err);

/* Remove an entry (absent is fine). 0 ok, -1 err. */
int sa_fstore_delete(sa_fstore *fs, const char *name, size_t namelen, sa_err *err);

/* Try once to take the exclusive lock of an entry, without waiting: 1 taken
 * (*fd holds it; release with sa_fstore_unlock), 0 held by someone else (*fd
 * is -1; another open of the lock file, in this process or another), -1 with
 * err. The caller waits between tries (lua/smartauth/store/lock.lua). The
 * lock dies with the process, so a crashed holder never blocks others. */
int sa_fstore_try_lock(sa_fstore *fs, const char *name, size_t namelen, int *fd,
                       sa_err *err);

/* Release a lock from sa_fstore_try_lock (fd < 0 is ignored). */
void sa_fstore_unlock(int fd);

/* Encode an entry name into its file-name stem (NUL-terminated, at most
 * cap - 1 bytes). 0 ok, -1 with err (SA_EARG) for an empty or too long name. */
int sa_fstore_encode_name(const char *name, size_t namelen, char *out, size_t cap,
                          sa_err *err);

#endif
