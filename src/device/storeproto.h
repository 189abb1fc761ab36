/* SPDX-License-Identifier: Apache-2.0 */
/* What pavised (storeclient.c) and pavise-store (src/store/main.c) agree on. */
#ifndef PAVISE_DEVICE_STOREPROTO_H
#define PAVISE_DEVICE_STOREPROTO_H

#include "appstore.h"
#include "pavise/manifest.h"

#define SP_CAPABILITY_FILE "capability.cbor" /* under the state directory */

/* The longest answer pavised reads: every app's description (a base64 manifest at most and
 * its paths) and the device's fields. */
#define SP_MAX_ANSWER ((size_t)AS_MAX_APPS * (PV_MANIFEST_MAX_SIZE / 3 * 4 + 8192) + 8192)

/* The longest answer of the other operations: one app's description at most. */
#define SP_MAX_SMALL_ANSWER ((size_t)PV_MANIFEST_MAX_SIZE / 3 * 4 + 16384)

/* The longest answer of "sign": {"signature": 128 hex digits} and room for a refusal. */
#define SP_MAX_SIGN_ANSWER 4096

/* How long one operation may take (a large package is verified and extracted). */
#define SP_TIMEOUT_MS 120000

#endif
