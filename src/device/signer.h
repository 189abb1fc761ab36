/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signatures with the device's TLS key for apps granted DeviceAuthentication
 * (docs/protocol/app-channel.md §3.8). The key never enters a compartment: each request
 * runs pavise-store's "sign" (which alone opens the key, in the TPM or its file), and
 * pavised's loop goes on meanwhile. The caller (appmgr) decides who may ask and how often;
 * this module bounds how many helpers run at once and how long each may take.
 */
#ifndef PAVISE_DEVICE_SIGNER_H
#define PAVISE_DEVICE_SIGNER_H

#include <stddef.h>
#include <stdint.h>

#include "pavise/err.h"

#include "appchan.h"
#include "loop.h"
#include "storeclient.h"

#define SG_MAX_JOBS   4    /* helpers signing at once, for all apps together */
#define SG_TIMEOUT_MS 8000 /* one signature, helper start included (the SDK waits 10 s) */

typedef struct sg_ctx sg_ctx;
typedef struct sg_job sg_job;

/* How a signature ended: PV_APP_OK and sig (r || s), PV_APP_ERR_NOT_READY (the device
 * holds no TLS key yet) or PV_APP_ERR_IO (anything else, logged); sig is NULL unless OK. */
typedef void sg_done_fn(void *ctx, int result, const uint8_t *sig);

/* store: how pavise-store is run (copied); its timeout_ms, when below SG_TIMEOUT_MS,
 * bounds one signature, else SG_TIMEOUT_MS does. */
int sg_new(lp *loop, const sc_config *store, sg_ctx **out, pv_err *e);
/* Cancels what is running (no callbacks) and frees. Accepts NULL. */
void sg_free(sg_ctx *s);

/* Starts signing digest (AC_MIN_DIGEST_LEN..AC_MAX_DIGEST_LEN bytes, as ac_parse checked);
 * fn is called once from the loop, unless the job is cancelled first. PV_ERR_LOCKED
 * when SG_MAX_JOBS are running (the app is answered LIMIT), PV_ERR_IO, PV_ERR_NOMEM. */
int sg_start(sg_ctx *s, const uint8_t *digest, size_t len, sg_done_fn *fn, void *ctx, sg_job **job,
             pv_err *e);
/* Kills the job's helper; fn is not called. */
void sg_cancel(sg_ctx *s, sg_job *job);

#endif
