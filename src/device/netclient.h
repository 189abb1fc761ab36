/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavised's side of the network policy (docs/compartments.md §network). The policy itself
 * (nftables, the DNS stub: netpolicy.h) runs in its own process, pavise-netd, the only
 * one that asks nftables for anything; pavised never links libnftables. pavised starts
 * it with nc_start and asks it, over a SOCK_SEQPACKET socket, to add and remove apps and
 * to read their counters.
 *
 *   pavised --(control socket, fd 3)--> pavise-netd --(np_* control socket)--> DNS stub
 *   root, every capability              root, CAP_NET_ADMIN, CAP_NET_BIND_SERVICE,
 *                                       CAP_SETUID, CAP_SETGID, CAP_SETPCAP only
 *
 * When pavise-netd dies (or does not answer within NC_REPLY_MS: it is killed), the next
 * nc_dispatch or request starts another and gives it every app again, so the app manager
 * never notices; at most NC_RESTART_MAX times a minute. Past that, requests fail with
 * PV_ERR_IO and the network stays closed: the table the last pavise-netd made refuses
 * every packet of an app uid without rules, and its rules do not grow.
 *
 * The control protocol: one JSON object per packet (at most NC_MSG_MAX bytes), one reply
 * per request, in order.
 *   {"op":"add", "uid":U, "index":I, "hosts":["name", "192.0.2.1", ...], "ports":[P, ...]}
 *        -> {"ok":true, "stub":"127.77.0.N"}
 *   {"op":"remove", "uid":U}   -> {"ok":true}
 *   {"op":"stats", "uid":U}    -> {"ok":true, "dropped_packets":N, "dropped_bytes":N,
 *                                  "refused_queries":N, "addresses_added":N}
 *   a refusal                  -> {"ok":false, "code":<pv_code>, "error":"what and why"}
 * Unknown ops, unknown or missing members, wrong types and values out of range are
 * refused (PV_ERR_FORMAT) without changing anything.
 */
#ifndef PAVISE_DEVICE_NETCLIENT_H
#define PAVISE_DEVICE_NETCLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "pavise/err.h"
#include "pavise/log.h"
#include "pavise/manifest.h"

#define NC_MSG_MAX        65536 /* a request or reply: 64 host names fit four times over */
#define NC_REPLY_MS       5000  /* np_app_remove alone may wait 2 s for the stub */
#define NC_RESTART_MAX    5     /* restarts of pavise-netd ... */
#define NC_RESTART_WINDOW 60    /* ... in this many seconds */
#define NC_CONTROL_FD     3     /* the control socket's number in pavise-netd */

typedef struct nc_ctx nc_ctx;
typedef struct nc_app nc_app;

typedef struct nc_config {
    int netd_fd;          /* pavise-netd, opened O_PATH at start-up (nc_start dups it) */
    const char *upstream; /* the DNS stub's resolver, "IP[:PORT]"; NULL: resolv.conf's */
    uid_t stub_uid;       /* the DNS stub's uid and gid */
    gid_t stub_gid;
    uid_t app_uid_first; /* the uids apps are given */
    uid_t app_uid_last;
    pv_log_level log_level; /* passed on to pavise-netd */
    bool log_json;
    uint32_t reply_ms;    /* 0: NC_REPLY_MS (tests shorten it) */
    const char *hide_dir; /* covered in its mount namespace (the API socket's), or NULL */
} nc_config;

/* Parses "IPv4[:PORT]" or "IPv6" (a bare IPv6 address: its colons are not a port) into ss
 * and *len; port 53 when none is given. PV_ERR_USAGE naming the text. */
int nc_parse_upstream(const char *s, struct sockaddr_storage *ss, socklen_t *len, pv_err *e);

/* Starts pavise-netd and waits until it has made the table and started the DNS stub.
 * PV_ERR_USAGE (a bad upstream), PV_ERR_IO (fork, exec, or pavise-netd failed: its
 * message says why), PV_ERR_NOMEM. */
int nc_start(const nc_config *cfg, nc_ctx **out, pv_err *e);
/* Closes the control socket (pavise-netd deletes the table, stops the stub and exits),
 * waits for it (SIGKILL after NC_REPLY_MS), and frees every nc_app. Accepts NULL. */
void nc_free(nc_ctx *nc);

/* The fd to watch for POLLIN: readable when pavise-netd died or sent something it should
 * not have; then call nc_dispatch. It stays the same fd for the life of nc (an epoll fd
 * over the current control socket), so a restart does not change what is watched. */
int nc_fd(const nc_ctx *nc);
/* Handles what made nc_fd readable: PV_OK (nothing, or pavise-netd restarted and every
 * app given again), PV_ERR_IO (pavise-netd died too often: the network stays closed). */
int nc_dispatch(nc_ctx *nc, pv_err *e);

/* Adds an app (np_app_add in pavise-netd): uid in the app range, index the stub address
 * slot, caps its AllowedConnections and AllowedTcpServerPorts (copied: given again after
 * a restart). PV_ERR_EXISTS, PV_ERR_INVALID_ARG (as np_app_add), PV_ERR_IO (pavise-netd
 * is not running, or nftables refused), PV_ERR_NOMEM. */
int nc_app_add(nc_ctx *nc, uid_t uid, unsigned index, const pv_capabilities *caps, nc_app **out,
               pv_err *e);
/* Removes the app's rules and stub sockets, and frees a. Accepts NULL. */
void nc_app_remove(nc_ctx *nc, nc_app *a);
/* The app's stub address, dotted ("127.77.0.1"), for its resolv.conf. */
const char *nc_app_stub_address(const nc_app *a);

typedef struct nc_app_stats {
    uint64_t dropped_packets; /* packets of the app refused by its chain */
    uint64_t dropped_bytes;
    uint64_t refused_queries; /* names it asked for that it does not list */
    uint64_t addresses_added; /* resolved addresses put in its sets */
} nc_app_stats;

/* The app's counters since nc_app_add. They never go backwards: what earlier pavise-netd
 * processes counted is kept and added. *out is zeroed on entry. PV_ERR_IO. */
int nc_app_stats_get(nc_ctx *nc, nc_app *a, nc_app_stats *out, pv_err *e);

/* pavise-netd's pid, -1 when none runs (tests). */
pid_t nc_netd_pid(const nc_ctx *nc);

#endif
