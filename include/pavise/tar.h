/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The payload archive of an image package: a POSIX tar written deterministically from
 * a directory, and a safe extractor that refuses the whole archive when any entry is
 * unsafe (docs/formats/image-package.md §6).
 */
#ifndef PAVISE_TAR_H
#define PAVISE_TAR_H

#include <stdint.h>
#include <sys/types.h>

#include "pavise/crypto.h"
#include "pavise/err.h"

#define PV_TAR_MAX_ENTRIES 16384
#define PV_TAR_MAX_PATH    1024
#define PV_TAR_MAX_DEPTH   32

/* Writes a tar of every file, directory and symbolic link under dir to out_fd, in
 * sorted order with owner 0:0, mtime 0 and modes reduced to 0755/0644, so the same tree
 * gives the same bytes. Refuses (PV_ERR_UNSAFE) device nodes, FIFOs, sockets,
 * setuid/setgid/sticky files, symbolic links that are absolute or could point outside
 * dir (see pv_tar_extract), names with control characters; a file with several hard
 * links is stored as a plain file. Updates hash with every byte written and sets
 * *size to the number of bytes. */
int pv_tar_pack_dir(const char *dir, int out_fd, pv_sha256 *hash, uint64_t *size, pv_err *e);

/* Supplies the archive's bytes: sets *buf to the next block and returns its length,
 * 0 at the end, -1 on error. */
typedef ssize_t (*pv_tar_read_fn)(void *ctx, const void **buf);

/* Extracts an archive into dest_dir, which must be an existing empty directory. Every
 * entry is checked before anything of it is written; the first unsafe one stops the
 * extraction with PV_ERR_UNSAFE naming the entry: absolute path, a '..' component, a
 * path through a symbolic link, a symbolic link whose target is absolute, has a '..'
 * after its first plain component, or climbs above dest_dir, a hard link to anything but an earlier
 * regular file of the archive, a device node, FIFO or socket, a sparse file, a setuid/setgid/sticky
 * bit, a duplicate entry (after removing '.' components and trailing '/'), a path longer than
 * PV_TAR_MAX_PATH or deeper than PV_TAR_MAX_DEPTH, more than PV_TAR_MAX_ENTRIES entries. The caller
 * removes dest_dir's contents on failure. PV_ERR_FORMAT for a malformed archive, PV_ERR_IO. */
int pv_tar_extract(pv_tar_read_fn read, void *ctx, const char *dest_dir, pv_err *e);

#endif
