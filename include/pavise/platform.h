/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Platform seams: the clock. Tests set a fixed time to drive certificate validity,
 * nonce expiry and the like without waiting.
 */
#ifndef PAVISE_PLATFORM_H
#define PAVISE_PLATFORM_H

#include <stdint.h>

/* Seconds since the Unix epoch (the override when one is set). */
int64_t pv_time_now(void);

/* Sets a fixed time for pv_time_now(); 0 removes the override. For tests. */
void pv_time_set_override(int64_t t);

#endif
