/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The application manager (docs/device-runtime.md): starts every installed app in its
 * compartment, restarts one that exits (with backoff), stops one with SIGTERM then SIGKILL
 * after a grace period, and turns what happens to it into failure events. It owns, per
 * app, the cgroup, the storage mount, the network policy entry, the log pipe, the app
 * channel and the seccomp listener.
 */
#ifndef PAVISE_DEVICE_APPMGR_H
#define PAVISE_DEVICE_APPMGR_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "pavise/err.h"

#include "appstore.h"
#include "cgroup.h"
#include "failures.h"
#include "loop.h"
#include "netclient.h"
#include "sandbox.h"
#include "signer.h"

#define AM_DEFAULT_MEMORY_KB (64u * 1024u)
#define AM_DEFAULT_PIDS      64u
#define AM_DEFAULT_NOFILE    256u
#define AM_MAX_BACKOFF_MS    (300u * 1000u)
#define AM_STABLE_MS         (60u * 1000u) /* running this long resets the backoff */
#define AM_MAX_DEFER_S       (24u * 3600u) /* deferral of one update, in all */
#define AM_ANSWER_MS         (60 * 1000)   /* an app silent this long agrees to an update */

typedef struct am_config {
    const char *state_dir;
    lp *loop;
    as_store *store;
    fl_queue *failures;
    cg_ctx *cgroups;
    nc_ctx *net; /* pavise-netd; NULL: apps get no network at all (fail closed) */
    const sb_filter *filter;
    uint32_t restart_min_ms; /* first restart delay (doubles up to AM_MAX_BACKOFF_MS) */
    uint32_t stop_grace_ms;  /* SIGTERM, then SIGKILL after this */
    /* The device nodes this board lets apps have (from the board's integration, never from
     * the state directory): a manifest may declare only these. NULL-terminated; NULL: none. */
    const char *const *peripherals;
    /* The power actions apps with PowerControls may ask for (PV_APP_POWER_*): called with
     * act false to ask whether it can be done now (PV_OK, or PV_ERR_UNSUPPORTED: the app is
     * answered NOT_READY), then, once the app has its answer, with act true. NULL: none. */
    int (*power)(void *ctx, int action, bool act);
    void *power_ctx;
    /* Signs with the device's TLS key for apps with DeviceAuthentication (AC_SIGN); NULL:
     * they are answered NOT_READY. */
    sg_ctx *signer;
} am_config;

typedef struct am am;

int am_new(const am_config *cfg, am **out, pv_err *e);
/* Stops every app (SIGKILL after the grace period) and frees. Accepts NULL. */
void am_free(am *m);

/* Starts every app of the store that is not running. */
void am_start_all(am *m);
/* Starts one (it is marked as wanted running). PV_ERR_NOT_FOUND. Already running: PV_OK. */
int am_start(am *m, const char *cid, pv_err *e);
/* Stops one and keeps it stopped until am_start. PV_ERR_NOT_FOUND. */
int am_stop(am *m, const char *cid, pv_err *e);
/* True once every app is stopped (after am_stop_all). */
void am_stop_all(am *m);
bool am_all_stopped(const am *m);

/* A component was installed: a is the store's new entry, old the entry it replaced (or
 * NULL), which the manager takes over and frees once no run uses it. A new component
 * starts at once. An update of a running app that registered for UPDATE_READY (and may
 * defer) is staged: *pending, the app is sent UPDATE_READY and the update goes ahead when
 * it agrees, when its deferral (AM_MAX_DEFER_S per update in all) runs out, when it does not
 * answer within AM_ANSWER_MS, or when it stops running (docs/protocol/app-channel.md §4.2).
 * Otherwise the old run is stopped (UPDATE_STARTED first to an app that asked for it;
 * SIGTERM, then SIGKILL after the grace period) and the new image starts. */
int am_installed(am *m, as_app *a, as_app *old, bool *pending, pv_err *e);
/* Stops (SIGTERM, then SIGKILL after the grace period) and forgets the component: before
 * as_remove, or before a replaced entry is freed. */
int am_forget(am *m, const char *cid, pv_err *e);

/* The device's certificates in STATE/certs changed (renewed by attestation): every app with
 * DeviceAuthentication gets fresh copies, and those that registered for it the
 * PV_APP_EVENT_DEVICE_AUTH event. */
void am_device_certs_changed(am *m);

/* Status objects for the local API ("state", "pid", "restarts", "memoryKB", "failures",
 * "lastExit", ...). cid NULL: every app, as an array. */
json_t *am_status(am *m, const char *cid);
/* Storage use of an app: PV_ERR_NOT_FOUND when it has none. */
int am_quota(am *m, const char *cid, uint64_t *used_kb, uint64_t *quota_kb, pv_err *e);

#endif
