/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavised's state, shared by main.c, the local API (localapi.c) and the development
 * capability (devcap.c).
 */
#ifndef PAVISE_DEVICE_DAEMON_H
#define PAVISE_DEVICE_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include "pavise/rot.h"
#include "pavise/x509.h"

#include "appmgr.h"
#include "appstore.h"
#include "cgroup.h"
#include "failures.h"
#include "loop.h"
#include "netclient.h"
#include "sandbox.h"

#define PD_DEFAULT_SOCKET "/run/pavise/pavised.sock"
#define PD_CAPABILITY     "capability.cbor" /* under the state directory */

typedef struct pd {
    const char *state_dir;
    char device_id[PV_DEVICE_ID_HEX_LEN + 1];
    pv_rot_kind rot_kind;
    pv_trust *update_root;
    pv_trust *dev_roots; /* non-NULL while a development capability is applied */
    int64_t dev_expires; /* its expiry (seconds since the epoch), 0: none */
    lp *loop;
    as_store *store;
    am *apps;
    fl_queue *failures;
    cg_ctx *cgroups;
    nc_ctx *net; /* pavise-netd, the network policy */
    sb_filter *filter;
    int listen_fd;
    int net_fd;        /* nc_fd(net), as watched */
    int certs_timer;   /* quiet period after STATE/certs changed */
    unsigned api_open; /* local API connections open now (at most LA_MAX_CONNECTIONS) */
    bool stopping;
} pd;

/* The development roots while the applied capability is valid, else NULL: a capability
 * that expires while pavised runs is dropped at its first use after the expiry. */
const pv_trust *devcap_roots(pd *d);

/* The trust installs and loads use now. */
static inline as_trust pd_trust(pd *d)
{
    return (as_trust){.prod = d->update_root, .dev = devcap_roots(d)};
}

/* Local API: listens on path (a unix SOCK_SEQPACKET socket, mode 0600 in a 0700 directory;
 * only root peers are served). PV_ERR_IO. */
int la_listen(pd *d, const char *path, pv_err *e);

/* Loads STATE/capability.cbor when present and valid for this device: sets d->dev_roots.
 * An invalid file is reported and ignored (development stays off). */
void devcap_load(pd *d);
/* Verifies a capability file's bytes for this device, stores it, and applies it. */
int devcap_apply(pd *d, const uint8_t *p, size_t len, pv_err *e);

#endif
