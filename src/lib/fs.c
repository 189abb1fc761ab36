/* SPDX-License-Identifier: Apache-2.0 */
#include "pavise/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pavise/crypto.h"

int pv_fs_read_file(const char *path, size_t max, uint8_t **data, size_t *len, pv_err *e)
{
    *data = NULL;
    *len = 0;
    int r = PV_ERR_INTERNAL;
    uint8_t *d = NULL;
    /* O_NONBLOCK: a FIFO must be refused below, not waited on. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        return pv_err_sys(e, errno == ENOENT ? PV_ERR_NOT_FOUND : PV_ERR_IO, errno, "%s", path);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", path);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        r = pv_err_set(e, PV_ERR_IO, "%s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        r = pv_err_set(e, PV_ERR_TOO_LARGE, "%s: %lld bytes is larger than the limit of %zu", path,
                       (long long)st.st_size, max);
        goto out;
    }
    size_t n = (size_t)st.st_size;
    d = malloc(n + 1);
    if (d == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    size_t got = 0;
    for (;;) {
        if (got == n) {
            /* The file may have grown since fstat: one more byte means too large. */
            uint8_t extra;
            ssize_t k = read(fd, &extra, 1);
            if (k > 0) {
                r = pv_err_set(e, PV_ERR_TOO_LARGE, "%s: file grew while being read", path);
                goto out;
            }
            break;
        }
        ssize_t k = read(fd, d + got, n - got);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            r = pv_err_sys(e, PV_ERR_IO, errno, "%s", path);
            goto out;
        }
        if (k == 0) {
            break; /* shrank: take what there is */
        }
        got += (size_t)k;
    }
    d[got] = '\0';
    *data = d;
    *len = got;
    d = NULL;
    r = PV_OK;
out:
    free(d);
    close(fd);
    return r;
}

int pv_fs_write_all(int fd, const void *p, size_t n)
{
    const uint8_t *c = p;
    while (n > 0) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            if (k == 0) {
                errno = EIO;
            }
            return PV_ERR_IO;
        }
        c += k;
        n -= (size_t)k;
    }
    return PV_OK;
}

int pv_fs_pread_all(int fd, void *p, size_t n, uint64_t off)
{
    uint8_t *c = p;
    while (n > 0) {
        ssize_t k = pread(fd, c, n, (off_t)off);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            return PV_ERR_IO;
        }
        if (k == 0) {
            return PV_ERR_TRUNCATED;
        }
        c += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return PV_OK;
}

int pv_fs_sync_parent(const char *path, pv_err *e)
{
    char *copy = strdup(path);
    if (copy == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int r = PV_OK;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s: syncing its directory", path);
    }
    if (dfd >= 0) {
        close(dfd);
    }
    free(copy);
    return r;
}

int pv_afile_open(pv_afile *f, const char *path, mode_t mode, bool overwrite, pv_err *e)
{
    memset(f, 0, sizeof(*f));
    f->fd = -1;
    f->overwrite = overwrite;
    /* An early, friendly refusal; pv_afile_commit enforces it atomically. */
    if (!overwrite && access(path, F_OK) == 0) {
        return pv_err_set(e, PV_ERR_EXISTS, "%s: already exists", path);
    }
    uint8_t rnd[8];
    char hex[17];
    if (pv_random_bytes(rnd, sizeof(rnd)) != PV_OK) {
        return pv_err_set(e, PV_ERR_CRYPTO, "%s: no randomness for a temporary name", path);
    }
    pv_hex_encode(rnd, sizeof(rnd), hex, sizeof(hex));
    size_t n = strlen(path) + 32;
    f->path = strdup(path);
    f->tmp_path = malloc(n);
    if (f->path == NULL || f->tmp_path == NULL) {
        pv_afile_abort(f);
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    snprintf(f->tmp_path, n, "%s.tmp-%s", path, hex);
    f->fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (f->fd < 0) {
        int err = errno;
        free(f->tmp_path);
        f->tmp_path = NULL; /* nothing was created: nothing to remove */
        pv_afile_abort(f);
        return pv_err_sys(e, PV_ERR_IO, err, "%s: creating a temporary file", path);
    }
    /* The umask must not widen nor narrow what the caller asked for. */
    if (fchmod(f->fd, mode) != 0) {
        int err = errno;
        pv_afile_abort(f);
        return pv_err_sys(e, PV_ERR_IO, err, "%s", path);
    }
    return PV_OK;
}

int pv_afile_commit(pv_afile *f, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    if (!f->no_sync && fsync(f->fd) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s: fsync", f->path);
        goto out;
    }
    if (close(f->fd) != 0) {
        f->fd = -1;
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s: close", f->path);
        goto out;
    }
    f->fd = -1;
    if (f->overwrite) {
        if (rename(f->tmp_path, f->path) != 0) {
            r = pv_err_sys(e, PV_ERR_IO, errno, "%s: rename", f->path);
            goto out;
        }
    } else if (renameat2(AT_FDCWD, f->tmp_path, AT_FDCWD, f->path, RENAME_NOREPLACE) != 0) {
        /* A file that appeared since pv_afile_open is never replaced. Filesystems without
         * RENAME_NOREPLACE fall back to link(), which cannot replace either. */
        if (errno == EEXIST) {
            r = pv_err_set(e, PV_ERR_EXISTS, "%s: already exists", f->path);
            goto out;
        }
        if ((errno != EINVAL && errno != ENOSYS) || link(f->tmp_path, f->path) != 0) {
            r = pv_err_sys(e, errno == EEXIST ? PV_ERR_EXISTS : PV_ERR_IO, errno, "%s: rename",
                           f->path);
            goto out;
        }
        unlink(f->tmp_path);
    }
    free(f->tmp_path);
    f->tmp_path = NULL;
    r = f->no_sync ? PV_OK : pv_fs_sync_parent(f->path, e);
out:
    pv_afile_abort(f);
    return r;
}

void pv_afile_abort(pv_afile *f)
{
    if (f->fd >= 0 && f->path != NULL) { /* a zeroed pv_afile owns no descriptor */
        close(f->fd);
    }
    if (f->tmp_path != NULL) {
        unlink(f->tmp_path);
    }
    free(f->tmp_path);
    free(f->path);
    f->fd = -1;
    f->tmp_path = NULL;
    f->path = NULL;
}

static int write_file(const char *path, const void *data, size_t len, mode_t mode, bool overwrite,
                      bool no_sync, pv_err *e)
{
    pv_afile f;
    int r = pv_afile_open(&f, path, mode, overwrite, e);
    if (r != PV_OK) {
        return r;
    }
    f.no_sync = no_sync;
    if (pv_fs_write_all(f.fd, data, len) != PV_OK) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s: write", path);
        pv_afile_abort(&f);
        return r;
    }
    return pv_afile_commit(&f, e);
}

int pv_fs_write_file(const char *path, const void *data, size_t len, mode_t mode, bool overwrite,
                     pv_err *e)
{
    return write_file(path, data, len, mode, overwrite, false, e);
}

int pv_fs_replace_boot_data(const char *path, const void *data, size_t len, mode_t mode, pv_err *e)
{
    return write_file(path, data, len, mode, true, true, e);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int rc = (flag == FTW_DP) ? rmdir(path) : unlink(path);
    return (rc != 0 && errno != ENOENT) ? -1 : 0;
}

int pv_fs_remove_tree(const char *path, pv_err *e)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        return errno == ENOENT ? PV_OK : pv_err_sys(e, PV_ERR_IO, errno, "%s", path);
    }
    if (!S_ISDIR(st.st_mode)) {
        return unlink(path) == 0 ? PV_OK : pv_err_sys(e, PV_ERR_IO, errno, "%s", path);
    }
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s: removing", path);
    }
    return PV_OK;
}
