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
 * component ID text. PV_ERR_INVALID_ARG, PV_ERR_IO (mke2fs, loop, mount). */
int st_prepare(const char *state_dir, const char *name, uint32_t size_kb, uid_t uid, gid_t gid,
               char **mount_path, pv_err *e);
/* Space used and usable in the mounted file system, in KiB. */
int st_usage(const char *mount_path, uint64_t *used_kb, uint64_t *total_kb, pv_err *e);
/* Unmounts (the loop device goes with it). Not mounted: PV_OK. */
int st_release(const char *state_dir, const char *name, pv_err *e);
/* Unmounts and deletes the image: the app's data is gone. */
int st_delete(const char *state_dir, const char *name, pv_err *e);

#endif
