/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Filesystem helpers: whole reads with a size limit, and atomic writes (temporary file
 * beside the destination, fsync, rename, fsync of the directory) so that no partial
 * output is ever left behind.
 */
#ifndef PAVISE_FS_H
#define PAVISE_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pavise/err.h"

/* Reads a whole regular file of at most max bytes into a new allocation (free with
 * free(); a NUL is appended after the data, not counted in *len).
 * PV_ERR_NOT_FOUND, PV_ERR_IO, PV_ERR_TOO_LARGE, PV_ERR_NOMEM. */
int pv_fs_read_file(const char *path, size_t max, uint8_t **data, size_t *len, pv_err *e);

/* Writes all n bytes to fd, retrying short writes and EINTR. PV_ERR_IO (errno kept). */
int pv_fs_write_all(int fd, const void *p, size_t n);
/* Reads exactly n bytes at offset off. PV_ERR_TRUNCATED at end of file, PV_ERR_IO. */
int pv_fs_pread_all(int fd, void *p, size_t n, uint64_t off);

/* An atomic output file. Write to fd; pv_afile_commit() makes it appear under its
 * final name with all its contents, or not at all. */
typedef struct pv_afile {
    int fd;
    char *path;     /* final path */
    char *tmp_path; /* temporary path in the same directory */
    bool overwrite; /* false: commit never replaces a file, even one created meanwhile */
    bool no_sync;   /* true: commit renames without fsync (see pv_fs_replace_boot_data) */
} pv_afile;

/* Creates the temporary file with the given mode. When overwrite is false and path
 * exists, fails with PV_ERR_EXISTS. */
int pv_afile_open(pv_afile *f, const char *path, mode_t mode, bool overwrite, pv_err *e);
/* fsync, rename to path (without replacing an existing file unless opened with
 * overwrite: PV_ERR_EXISTS), fsync the directory, close. On failure the temporary file is
 * removed. Always releases f. */
int pv_afile_commit(pv_afile *f, pv_err *e);
/* Removes the temporary file and releases f. Safe on a zeroed or released pv_afile. */
void pv_afile_abort(pv_afile *f);

/* Writes data atomically to path with mode (see pv_afile_open for overwrite). */
int pv_fs_write_file(const char *path, const void *data, size_t len, mode_t mode, bool overwrite,
                     pv_err *e);

/* Replaces path atomically (readers see the old or the new contents, never a mix) but
 * without fsync: for data that means nothing after a reboot, such as this boot's event
 * log, where a power cut may lose the file but a reader never sees a partial one.
 * Avoids a flash write and two cache flushes per update. */
int pv_fs_replace_boot_data(const char *path, const void *data, size_t len, mode_t mode, pv_err *e);

/* Removes a directory tree without following symbolic links. Missing is not an error. */
int pv_fs_remove_tree(const char *path, pv_err *e);

/* fsyncs the directory that holds path. */
int pv_fs_sync_parent(const char *path, pv_err *e);

#endif
