/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libpavise-app: what an app running under pavised uses to reach the runtime
 * (docs/sdk.md; the wire format is docs/protocol/app-channel.md).
 *
 * Every function is safe to call when the app runs outside pavised (no PAVISE_FD):
 * logging goes to stderr, functions that need the runtime return PV_APP_ERR_NO_RUNTIME,
 * and the ones that only read what the runtime put in the environment (storage, device
 * certificate) work whenever those variables are set, so an app can be run by hand.
 *
 * The channel is opened on first use. Logging, pv_app_fd, the environment accessors and
 * pv_app_watchdog_kick may be called from any thread at any time. Requests that wait for
 * the runtime's answer (registration, deferral, watchdog start, power, status, signing) and
 * pv_app_dispatch serialise on one lock; they must not be called from a signal handler.
 *
 * Link statically (libpavise-app.a): the compartment holds only the libraries the entry
 * point needs, and this one has no dependencies beyond libc.
 */
#ifndef PAVISE_APP_H
#define PAVISE_APP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Results: 0 or one of these (negative). */
#define PV_APP_OK             0
#define PV_APP_ERR_NO_RUNTIME (-1) /* not started by pavised */
#define PV_APP_ERR_DENIED     (-2) /* the app's manifest does not grant it */
#define PV_APP_ERR_INVALID    (-3) /* a bad argument */
#define PV_APP_ERR_IO         (-4) /* the channel to the runtime failed, or no answer in time */
#define PV_APP_ERR_LIMIT      (-5) /* over a bound (deferral beyond 24 h, ...) */
#define PV_APP_ERR_NOT_READY  (-6) /* e.g. no device certificate yet, no such pending event */

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

/* PowerControls: the manifest names them ForceReboot, ForcePowerDown, SetPowerProfile. */
#define PV_APP_POWER_REBOOT      1
#define PV_APP_POWER_POWER_DOWN  2
#define PV_APP_POWER_PROFILE_LOW 3

/* Deferral bound: an update may be put off at most this long in all. */
#define PV_APP_MAX_DEFER_SECONDS (24u * 3600u)

/* Watchdog timeouts the runtime accepts (0 disarms). */
#define PV_APP_WATCHDOG_MIN_MS 100u
#define PV_APP_WATCHDOG_MAX_MS (3600u * 1000u)

/* How long a request waits for the runtime's answer before PV_APP_ERR_IO (a signature:
 * PV_APP_SIGN_TIMEOUT_MS). */
#define PV_APP_REPLY_TIMEOUT_MS 5000

/* The longest log line the runtime takes, in bytes; longer text is cut at a UTF-8
 * character boundary. */
#define PV_APP_MAX_LOG 1024

/* A short static description of a PV_APP_* result. Never NULL. */
const char *pv_app_strerror(int result);

/* ---- logging ---- */

/* Formats one log line and sends it to the runtime, which records it with the app's
 * name. The text is made safe on the way: invalid UTF-8 becomes '?', control characters
 * (tab excepted) become spaces, a trailing newline is dropped, and it is cut at
 * PV_APP_MAX_LOG bytes on a character boundary. Without the runtime, or when the channel
 * fails, the line goes to stderr instead. Thread-safe; does not allocate.
 * Returns PV_APP_OK (sent), PV_APP_ERR_NO_RUNTIME or PV_APP_ERR_IO (written to stderr
 * instead), PV_APP_ERR_INVALID (bad level or fmt NULL: nothing written). */
int pv_app_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int pv_app_vlog(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* ---- identity and storage (from the environment pavised sets) ---- */

/* The app's name and component ID as the runtime knows them (PAVISE_APP_NAME,
 * PAVISE_COMPONENT_ID), or NULL outside pavised. */
const char *pv_app_name(void);
const char *pv_app_component_id(void);

/* The directory of the app's mutable storage (PAVISE_STORAGE, normally "/storage"), or
 * NULL when the manifest declares no MutableStorage (or outside pavised). */
const char *pv_app_storage_path(void);

/* Space used and available in all in the storage directory's file system, in KiB (the
 * runtime gives each app a file system of its own, so these are the app's figures).
 * Outputs are zeroed first. PV_APP_ERR_INVALID (NULL output), PV_APP_ERR_DENIED (no
 * storage declared), PV_APP_ERR_NO_RUNTIME (no storage and no runtime), PV_APP_ERR_IO
 * (statvfs failed). */
int pv_app_storage_usage(uint64_t *used_kb, uint64_t *quota_kb);

/* ---- device authentication (needs DeviceAuthentication) ---- */

/* The length of a device signature: ECDSA P-256, r || s, each 32 bytes big-endian. */
#define PV_APP_DEVICE_SIG_LEN 64

/* How long pv_app_device_sign waits for its answer (instead of PV_APP_REPLY_TIMEOUT_MS):
 * the runtime runs a helper that signs with the root of trust's kind of key. */
#define PV_APP_SIGN_TIMEOUT_MS 10000

/* The paths of the device's client certificate and of the chain that certificate chains
 * to (PAVISE_DEVICE_CERT, PAVISE_DEVICE_CHAIN). The certificate's private key never
 * enters the app's compartment: pv_app_device_sign uses it. The files may not exist yet:
 * see pv_app_device_auth_ready. Either output may be NULL; the other is set to NULL
 * first. PV_APP_ERR_DENIED (not granted), PV_APP_ERR_NO_RUNTIME. */
int pv_app_device_auth_paths(const char **cert, const char **chain);

/* True when both files exist, are non-empty regular files and this process can read
 * them: the device has attested and holds a current client certificate. The runtime
 * sends PV_APP_EVENT_DEVICE_AUTH when they are renewed. */
bool pv_app_device_auth_ready(void);

/* Asks the runtime to sign digest with the private key of the device's client
 * certificate (the key stays with the runtime and the root of trust). digest is the
 * SHA-256, SHA-384 or SHA-512 of the data (len 32, 48 or 64); sig receives the ECDSA
 * P-256 signature as r || s (PV_APP_DEVICE_SIG_LEN bytes), and is zeroed unless the
 * result is PV_APP_OK. Waits at most PV_APP_SIGN_TIMEOUT_MS.
 * PV_APP_ERR_INVALID (NULL, another length), PV_APP_ERR_DENIED (no DeviceAuthentication),
 * PV_APP_ERR_NOT_READY (the device holds no current client certificate and key), PV_APP_ERR_LIMIT
 * (over the runtime's signing rate for the app), PV_APP_ERR_IO (signing failed, the
 * channel failed, or no answer in time), PV_APP_ERR_NO_RUNTIME. */
int pv_app_device_sign(const uint8_t *digest, size_t len, uint8_t sig[PV_APP_DEVICE_SIG_LEN]);

/* ---- events and update deferral ---- */

typedef struct pv_app_event {
    uint32_t kind;         /* one PV_APP_EVENT_* bit */
    uint64_t id;           /* names the event in pv_app_defer (never 0) */
    uint32_t seconds_left; /* how much longer it may still be deferred (0: not at all) */
} pv_app_event;

typedef void pv_app_event_fn(const pv_app_event *ev, void *ctx);

/* Asks for the events in mask (PV_APP_EVENT_*; 0 stops them all). Waits for the answer.
 * PV_APP_ERR_INVALID (unknown bits), PV_APP_ERR_DENIED (a kind the manifest does not
 * grant), PV_APP_ERR_NO_RUNTIME, PV_APP_ERR_IO. */
int pv_app_events_register(uint32_t mask);

/* The channel's file descriptor, for the app's own poll loop: readable when the runtime
 * has sent something; then call pv_app_dispatch. -1 outside pavised. Never close it. */
int pv_app_fd(void);

/* Delivers the events already received (including those that arrived while a request was
 * waiting for its answer) and those pending on the channel, one fn call each, in order.
 * Does not block. fn may call the other functions (pv_app_defer in particular).
 * Returns the number of events delivered (>= 0), PV_APP_ERR_INVALID (fn NULL),
 * PV_APP_ERR_NO_RUNTIME, PV_APP_ERR_IO (the runtime closed the channel; events received
 * before were delivered). */
int pv_app_dispatch(pv_app_event_fn *fn, void *ctx);

/* Puts off the deferrable event event_id (PV_APP_EVENT_UPDATE_READY) by seconds, or
 * agrees to it now with seconds 0. The runtime allows PV_APP_MAX_DEFER_SECONDS per
 * update in all, however it is split. PV_APP_ERR_LIMIT (seconds over the bound here, or
 * over what is left at the runtime), PV_APP_ERR_INVALID (event_id 0),
 * PV_APP_ERR_NOT_READY (no such pending event), PV_APP_ERR_DENIED (no
 * SoftwareUpdateDeferral), PV_APP_ERR_NO_RUNTIME, PV_APP_ERR_IO. */
int pv_app_defer(uint64_t event_id, uint32_t seconds);

/* ---- watchdog ---- */

/* Arms the runtime's watchdog for this app: when timeout_ms pass without a kick, the
 * runtime kills the app and records a failure (then restarts it as for any failure).
 * Arming again changes the timeout and counts as a kick. PV_APP_ERR_INVALID (outside
 * PV_APP_WATCHDOG_MIN_MS..MAX_MS), PV_APP_ERR_NO_RUNTIME, PV_APP_ERR_IO. */
int pv_app_watchdog_start(uint32_t timeout_ms);
/* Disarms it. PV_APP_ERR_NO_RUNTIME, PV_APP_ERR_IO. */
int pv_app_watchdog_stop(void);
/* Resets the watchdog's timer. Does not wait for an answer (cheap enough for every loop
 * iteration); thread-safe. PV_APP_ERR_NO_RUNTIME, PV_APP_ERR_IO. */
int pv_app_watchdog_kick(void);

/* ---- power (needs PowerControls) ---- */

/* Asks the runtime for a PV_APP_POWER_* action. For a reboot or power-down the answer
 * comes before the runtime starts stopping the apps (this one with SIGTERM among them).
 * PV_APP_ERR_INVALID, PV_APP_ERR_DENIED (the manifest does not list that control),
 * PV_APP_ERR_NO_RUNTIME, PV_APP_ERR_IO. */
int pv_app_power(int action);

/* ---- status ---- */

typedef struct pv_app_status {
    bool device_auth_ready; /* as the runtime sees it: the device holds a current certificate */
    uint64_t storage_used_kb;
    uint64_t storage_quota_kb; /* 0 when no storage is declared */
} pv_app_status;

/* Asks the runtime for the app's status. *out is zeroed first. PV_APP_ERR_INVALID,
 * PV_APP_ERR_NO_RUNTIME, PV_APP_ERR_IO. */
int pv_app_query_status(pv_app_status *out);

#endif
