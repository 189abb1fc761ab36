/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mutable storage with a hard quota: each app that declares MutableStorage gets a file
 * system image of its own (ext4 without a journal, made by mke2fs from e2fsprogs) sized
 * so that at least SizeKB are usable, loop-mounted nosuid,nodev,noexec while the app is
 * installed. A write beyond the quota fails with ENOSPC inside the app's own file system;
 * no other app and not the state directory can be filled through it.
 *
 *   STATE/apps/storage/<name>.img   the image (0600, root)
 *   STATE/run/storage/<name>/       its mount point; the root directory of the file system
 *                                   is owned by the app's uid/gid, mode 0700
 */
#ifndef PAVISE_DEVICE_STORAGE_H
#define PAVISE_DEVICE_STORAGE_H

#include <stdint.h>
#include <sys/types.h>

#include "pavise/err.h"

/* Creates the image when missing (a larger SizeKB grows it; a smaller one keeps the data
 * and the old size, and says so in a warning), mounts it when not mounted, and sets the
 * owner of its root. *mount_path (caller frees) is where it is mounted. name: the
 * component ID text ([A-Za-z0-9_-], at most 64). size_kb: 1 to PV_MAX_STORAGE_KB. An image
 * still attached to a loop device (an app's mount namespace outlives st_release) is mounted
 * again on that device; it cannot be grown until the app is gone. An image not unmounted
 * cleanly (power cut) is checked with e2fsck first. PV_ERR_INVALID_ARG, PV_ERR_IO (mke2fs,
 * e2fsck, resize2fs, loop, mount; something else mounted at the mount point),
 * PV_ERR_FORMAT (the image is not ext4), PV_ERR_NOT_FOUND (e2fsprogs missing),
 * PV_ERR_NOMEM. */
int st_prepare(const char *state_dir, const char *name, uint32_t size_kb, uid_t uid, gid_t gid,
               char **mount_path, pv_err *e);
/* The app's view of its storage, in KiB: used is what its files take, total is used plus
 * what it can still write (at least SizeKB). PV_ERR_NOT_FOUND when nothing is mounted at
 * mount_path, PV_ERR_IO. */
int st_usage(const char *mount_path, uint64_t *used_kb, uint64_t *total_kb, pv_err *e);
/* Unmounts (the loop device goes with it, once no app namespace holds the file system).
 * Not mounted: PV_OK. PV_ERR_INVALID_ARG, PV_ERR_IO. */
int st_release(const char *state_dir, const char *name, pv_err *e);
/* Unmounts and deletes the image and the mount point: the app's data is gone. Missing:
 * PV_OK. PV_ERR_INVALID_ARG, PV_ERR_IO. */
int st_delete(const char *state_dir, const char *name, pv_err *e);

#endif
