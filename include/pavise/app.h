/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libpavise-app: what an app running under pavised uses to reach the runtime
 * (docs/sdk.md). Every function is safe to call when the app runs outside pavised (no
 * PAVISE_FD): logging goes to stderr, the rest returns PV_APP_ERR_NO_RUNTIME.
 *
 * Link statically (libpavise-app.a): the compartment holds only the libraries the entry
 * point needs, and this one has no dependencies beyond libc.
 */
#ifndef PAVISE_APP_H
#define PAVISE_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Results: 0 or one of these (negative). */
#define PV_APP_OK             0
#define PV_APP_ERR_NO_RUNTIME (-1) /* not started by pavised */
#define PV_APP_ERR_DENIED     (-2) /* the app's manifest does not grant it */
#define PV_APP_ERR_INVALID    (-3) /* a bad argument */
#define PV_APP_ERR_IO         (-4) /* the channel to the runtime failed */
#define PV_APP_ERR_LIMIT      (-5) /* over a bound (deferral beyond 24 h, ...) */
#define PV_APP_ERR_NOT_READY  (-6) /* e.g. no device certificate yet */

/* Log levels. */
#define PV_APP_LOG_DEBUG 0
#define PV_APP_LOG_INFO  1
#define PV_APP_LOG_WARN  2
#define PV_APP_LOG_ERROR 3

/* Events (bit mask for pv_app_events_register; needs SystemEventNotifications, or
 * SoftwareUpdateDeferral for the deferrable ones). */
#define PV_APP_EVENT_UPDATE_READY   (1u << 0) /* an update is staged; deferrable */
#define PV_APP_EVENT_UPDATE_STARTED (1u << 1) /* the app is about to be stopped for it */
#define PV_APP_EVENT_DEVICE_AUTH    (1u << 2) /* the device certificate was renewed */
#define PV_APP_EVENT_ALL            0x7u

/* PowerControls. */
#define PV_APP_POWER_REBOOT      1
#define PV_APP_POWER_POWER_DOWN  2
#define PV_APP_POWER_PROFILE_LOW 3

/* Deferral bound: an update may be put off at most this long in all. */
#define PV_APP_MAX_DEFER_SECONDS (24u * 3600u)

#endif
