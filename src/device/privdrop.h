/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Least privilege for pavised's helper processes (pavise-store, pavise-netd): they keep
 * running as root for the files and sockets that are root's, but with only the
 * capabilities their work needs, none in the bounding set beyond those, and no_new_privs.
 */
#ifndef PAVISE_DEVICE_PRIVDROP_H
#define PAVISE_DEVICE_PRIVDROP_H

#include <stddef.h>

#include "pavise/err.h"

/* Drops every capability but the n in keep (CAP_* numbers) from the bounding, permitted,
 * effective and inheritable sets (ambient cleared), and sets no_new_privs. PV_ERR_IO. */
int pd_keep_caps(const int *keep, size_t n, pv_err *e);

/* For a helper's child between fork and exec, while it is still privileged: a private
 * mount namespace where /proc/sys and /sys are read-only (uid 0 writes sysctls such as
 * core_pattern, and cgroup files, by file mode alone, with no capability), and each
 * existing path of hide (NULL-terminated; may be NULL) covered: a directory by an empty
 * read-only tmpfs, anything else by /dev/null (pavised's API socket: a helper runs as
 * uid 0, whom the API serves).
 * Returns -1 with errno on failure. */
int pd_confine(const char *const *hide);

#endif
