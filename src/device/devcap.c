// SPDX-License-Identifier: Apache-2.0
/*
 * The development capability on the device: STATE/capability.cbor, verified for this
 * device against the update root at every start and when applied. While one is applied,
 * d->dev_roots holds its development roots (images signed under them may be sideloaded
 * and run).
 */
#include <stdlib.h>
#include <string.h>

#include "pavise/capability.h"
#include "pavise/fs.h"
#include "pavise/log.h"
#include "pavise/platform.h"

#include "daemon.h"

static int capability_path(const pd *d, char out[4096], pv_err *e)
{
    size_t n = strlen(d->state_dir);
    if (n + sizeof(PD_CAPABILITY) + 1 > 4096) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "state directory path too long");
    }
    memcpy(out, d->state_dir, n);
    out[n] = '/';
    memcpy(out + n + 1, PD_CAPABILITY, sizeof(PD_CAPABILITY));
    return PV_OK;
}

/* Verifies bytes for this device now; on success *roots are its development roots. */
static int take(const pd *d, const uint8_t *p, size_t len, pv_trust **roots, int64_t *expires,
                pv_err *e)
{
    *roots = NULL;
    *expires = 0;
    pv_capability cap;
    int r = pv_capability_verify(p, len, d->update_root, d->device_id, pv_time_now(), &cap, e);
    if (r != PV_OK) {
        return r;
    }
    if ((cap.caps & PV_CAP_APP_DEVELOPMENT) == 0) {
        pv_capability_free(&cap);
        return pv_err_set(e, PV_ERR_UNSUPPORTED,
                          "the capability file does not grant AppDevelopment");
    }
    *roots = cap.dev_roots;
    *expires = cap.expires_at;
    cap.dev_roots = NULL;
    pv_capability_free(&cap);
    return PV_OK;
}

void devcap_load(pd *d)
{
    char path[4096];
    uint8_t *data = NULL;
    size_t len = 0;
    pv_err e;
    pv_err_clear(&e);
    if (capability_path(d, path, &e) != PV_OK) {
        return;
    }
    int r = pv_fs_read_file(path, PV_CAPABILITY_MAX_SIZE, &data, &len, &e);
    if (r == PV_ERR_NOT_FOUND) {
        return;
    }
    pv_trust *roots = NULL;
    int64_t expires = 0;
    if (r == PV_OK && (r = take(d, data, len, &roots, &expires, &e)) == PV_OK) {
        pv_trust_free(d->dev_roots);
        d->dev_roots = roots;
        d->dev_expires = expires;
    }
    free(data);
    if (r != PV_OK) {
        pv_warn("%s is not applied (development mode stays off): %s", path, pv_err_msg(&e));
        return;
    }
    pv_info("development capability applied: development images may run");
}

int devcap_apply(pd *d, const uint8_t *p, size_t len, pv_err *e)
{
    char path[4096];
    int r = capability_path(d, path, e);
    if (r != PV_OK) {
        return r;
    }
    /* Verified before it is kept: a file that does not verify changes nothing. */
    pv_trust *roots = NULL;
    int64_t expires = 0;
    if ((r = take(d, p, len, &roots, &expires, e)) != PV_OK) {
        return pv_err_wrap(e, r, "capability file refused");
    }
    if ((r = pv_fs_write_file(path, p, len, 0600, true, e)) != PV_OK) {
        pv_trust_free(roots);
        return r;
    }
    pv_trust_free(d->dev_roots);
    d->dev_roots = roots;
    d->dev_expires = expires;
    pv_info("development capability applied: development images may be sideloaded");
    return PV_OK;
}

const pv_trust *devcap_roots(pd *d)
{
    if (d->dev_roots != NULL && d->dev_expires != 0 && pv_time_now() >= d->dev_expires) {
        pv_warn("the development capability has expired: development mode is off");
        pv_trust_free(d->dev_roots);
        d->dev_roots = NULL;
        d->dev_expires = 0;
    }
    return d->dev_roots;
}
