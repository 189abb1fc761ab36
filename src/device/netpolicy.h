/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The network policy of the apps (docs/compartments.md §network): each app reaches only
 * the hosts its manifest lists (AllowedConnections), and listens only on its declared TCP
 * ports (AllowedTcpServerPorts).
 *
 * nftables, through libnftables, in a table of our own (`inet pavise`), output hook:
 *   - packets of a socket owned by an app's uid (meta skuid) are accepted when they are
 *     replies on an established connection, DNS to that app's own stub address
 *     (127.77.x.y:53, udp and tcp), or to an address in the app's sets
 *     (`a<uid>_v4`, `a<uid>_v6`: the listed IP addresses permanently, resolved names with
 *     a timeout); everything else of that uid is dropped, other DNS servers included;
 *   - input: new TCP connections to a port are accepted only when an app declared it
 *     (the rule set never opens more than the host's own policy allows: it only drops).
 *
 * The DNS stub: one unprivileged process (forked by pavised; its own uid, no capabilities,
 * seccomp) with one UDP and one TCP socket per app, bound by pavised on the app's stub
 * address and passed to it. A query for a name the app lists is forwarded to the upstream
 * resolver; the A/AAAA answers (after any CNAMEs) are sent to pavised, which adds them to
 * the app's set for their TTL (at least NP_MIN_TTL), and only then is the answer relayed to
 * the app. Any other name is answered REFUSED. The stub never touches nftables: pavised
 * checks every address it is sent (the app index is the stub's, the family and length are
 * right) before adding it.
 */
#ifndef PAVISE_DEVICE_NETPOLICY_H
#define PAVISE_DEVICE_NETPOLICY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "pavise/err.h"
#include "pavise/manifest.h"

#define NP_MIN_TTL  30
#define NP_MAX_TTL  86400
#define NP_MAX_APPS 1024

typedef struct np_ctx np_ctx;
typedef struct np_app np_app;

typedef struct np_config {
    struct sockaddr_storage upstream; /* the resolver the stub asks (default: the first
                                       * nameserver of /etc/resolv.conf, else 127.0.0.1) */
    socklen_t upstream_len;
    uid_t stub_uid; /* the stub process's uid and gid */
    gid_t stub_gid;
} np_config;

/* Creates (replacing one left by an earlier run) the table, and forks the DNS stub.
 * PV_ERR_IO (nftables refused, fork), PV_ERR_UNSUPPORTED (no nf_tables). */
int np_init(const np_config *cfg, np_ctx **out, pv_err *e);
/* Deletes the table and stops the stub. Accepts NULL. */
void np_free(np_ctx *np);

/* The fd pavised polls for the stub's messages; np_dispatch reads and applies them. */
int np_fd(const np_ctx *np);
int np_dispatch(np_ctx *np, pv_err *e);

/* Adds an app: its sets, rules and stub sockets. index (0..NP_MAX_APPS-1) picks the stub
 * address 127.77.0.0 + index + 1 (np_app_stub_address). caps gives
 * AllowedConnections and AllowedTcpServerPorts. PV_ERR_EXISTS (uid or index in use),
 * PV_ERR_IO. */
int np_app_add(np_ctx *np, uid_t uid, unsigned index, const pv_capabilities *caps, np_app **out,
               pv_err *e);
/* Removes its rules, sets and stub sockets. Accepts NULL. */
void np_app_remove(np_ctx *np, np_app *a);
/* The app's stub address, dotted ("127.77.0.1"), for its resolv.conf. */
const char *np_app_stub_address(const np_app *a);

#endif
