/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavised's state, shared by main.c and the local API (localapi.c).
 */
#ifndef PAVISE_DEVICE_DAEMON_H
#define PAVISE_DEVICE_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include "pavise/rot.h"

#include "appmgr.h"
#include "appstore.h"
#include "cgroup.h"
#include "failures.h"
#include "loop.h"
#include "netclient.h"
#include "sandbox.h"
#include "signer.h"
#include "storeclient.h"

#define PD_DEFAULT_SOCKET "/run/pavise/pavised.sock"

typedef struct pd {
    const char *state_dir;
    char device_id[PV_DEVICE_ID_HEX_LEN + 1];
    char rot_kind[16];   /* the root of trust's kind, as pavise-store named it */
    bool development;    /* a development capability is applied */
    int64_t dev_expires; /* its expiry, 0: none */
    sc_config store_cfg; /* how pavise-store is run */
    lp *loop;
    as_store *store;
    am *apps;
    fl_queue *failures;
    cg_ctx *cgroups;
    nc_ctx *net;    /* pavise-netd, the network policy */
    sg_ctx *signer; /* signatures with the device's TLS key for apps */
    sb_filter *filter;
    int listen_fd;
    int net_fd;        /* nc_fd(net), as watched */
    int certs_timer;   /* quiet period after STATE/certs changed */
    unsigned api_open; /* local API connections open now (at most LA_MAX_CONNECTIONS) */
    bool stopping;
    bool power_kernel; /* --power kernel: apps' power actions are carried out */
    int power_action;  /* PV_APP_POWER_REBOOT or _POWER_DOWN once asked for, else 0 */
} pd;

/* Whether the development capability is applied and not expired: one that expires while
 * pavised runs stops counting at its first use after the expiry (pavise-store verifies it
 * again, at the time of each operation, before it trusts a development image). */
bool devcap_active(pd *d);

/* Local API: listens on path (a unix SOCK_SEQPACKET socket, mode 0600 in a 0700 directory;
 * only root peers are served). PV_ERR_IO. */
int la_listen(pd *d, const char *path, pv_err *e);

#endif
