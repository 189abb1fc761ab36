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

#endif
