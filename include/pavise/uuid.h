/* SPDX-License-Identifier: Apache-2.0 */
/* UUIDs (RFC 9562) as 16 bytes, parsed and printed in the 8-4-4-4-12 lowercase form. */
#ifndef PAVISE_UUID_H
#define PAVISE_UUID_H

#include <stdint.h>

#include "pavise/err.h"

#define PV_UUID_LEN     16
#define PV_UUID_STR_LEN 37 /* 36 characters and a NUL */

/* Parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (hex, either case); anything else is
 * PV_ERR_FORMAT. The all-zero UUID is refused too (PV_ERR_FORMAT): it identifies nothing. */
int pv_uuid_parse(const char *s, uint8_t out[PV_UUID_LEN]);
void pv_uuid_format(const uint8_t u[PV_UUID_LEN], char out[PV_UUID_STR_LEN]);
/* A random (version 4) UUID from the OpenSSL CSPRNG. PV_ERR_CRYPTO. */
int pv_uuid_generate(uint8_t out[PV_UUID_LEN]);

#endif
