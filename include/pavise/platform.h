/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Platform seams: the clock and the kernel's boot ID. Tests set a fixed time to drive
 * certificate validity, nonce expiry and the like without waiting, and a boot ID to
 * simulate a reboot.
 */
#ifndef PAVISE_PLATFORM_H
#define PAVISE_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Seconds since the Unix epoch (the override when one is set). */
int64_t pv_time_now(void);

/* Milliseconds of the monotonic clock (for deadlines and intervals; no override). */
int64_t pv_monotonic_ms(void);

/* Sets a fixed time for pv_time_now(); 0 removes the override. For tests. */
void pv_time_set_override(int64_t t);

#define PV_TIME_TEXT_LEN 20 /* "2026-11-22T10:00:00Z" */

/* Formats t as RFC 3339 UTC text ("2026-11-22T10:00:00Z") into out. Returns false (out
 * is then "") for a time outside years 1970 to 9999. */
bool pv_time_format(int64_t t, char out[PV_TIME_TEXT_LEN + 1]);

#define PV_INT_TEXT_LEN 20 /* "-9223372036854775808" */

/* Writes v in decimal and a NUL into out; returns the number of characters (no locale,
 * no printf). */
size_t pv_int_format(int64_t v, char out[PV_INT_TEXT_LEN + 1]);

#define PV_BOOT_ID_LEN 36 /* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", lowercase hex */

/* The kernel's random boot ID (/proc/sys/kernel/random/boot_id), which changes on every
 * boot, or the override when one is set. Writes PV_BOOT_ID_LEN characters and a NUL to
 * out. PV_ERR_IO when it cannot be read, PV_ERR_FORMAT when it is not a UUID in the
 * kernel's lowercase form (the override is checked the same way); out is then "". */
int pv_boot_id(char out[PV_BOOT_ID_LEN + 1]);

/* Sets the value pv_boot_id() returns; NULL removes the override. For tests. */
void pv_boot_id_set_override(const char *id);

#endif
