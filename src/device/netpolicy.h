/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The network policy of the apps (docs/compartments.md §network): each app reaches only
 * the hosts its manifest lists (AllowedConnections), and answers connections only on its
 * declared TCP ports (AllowedTcpServerPorts).
 *
 * nftables, through libnftables, in a table of our own (`inet pavise`); every change of an
 * app is one batch, so it applies whole or not at all. The output hook:
 *   - the DNS stub's uid may send only to the upstream resolver (udp), and answer the
 *     apps' TCP connections to the stub addresses;
 *   - packets of a socket owned by an app's uid (meta skuid) jump to its chain
 *     (`a<uid>`), where they are accepted when they belong to a connection the app
 *     opened (ct state established,related, direction original), answer a connection to
 *     one of its declared TCP server ports (direction reply), are DNS to that app's own
 *     stub address (127.77.x.y:53, udp and tcp), or go to an address in its sets
 *     (`a<uid>_v4`, `a<uid>_v6`: the listed IP addresses permanently, resolved names with
 *     a timeout); everything else is counted and refused (an ICMP admin-prohibited to the
 *     app itself, so a connect fails at once), other DNS servers included;
 *   - packets of any other uid of the app range (an app without rules) are refused.
 * There is no input rule: which ports an app may bind is the sandbox's part (Landlock);
 * the reply-direction rule above keeps an app from answering anything it was sent on a
 * port it was not granted, UDP included.
 *
 * All of it runs in pavise-netd (src/netd/main.c), the only process that asks nftables
 * anything; pavised asks pavise-netd through netclient.h and never links libnftables.
 *
 * The DNS stub (dnsstub.c): one unprivileged process forked by np_init (its own uid, no
 * capabilities, no_new_privs, a seccomp allow-list) with one UDP and one TCP socket per
 * app, bound by pavise-netd on the app's stub address and passed to it. A query for a
 * name the app lists is forwarded to the upstream resolver; the A/AAAA answers (after any
 * CNAMEs) are sent to pavise-netd, which adds them to the app's set for their TTL (clamped
 * to [NP_MIN_TTL, NP_MAX_TTL]), and only then is the answer relayed to the app. Any other
 * name is answered REFUSED. The stub never touches nftables: pavise-netd checks every
 * message it is sent (the app exists, the family, address and TTL are sane) before adding
 * anything.
 */
#ifndef PAVISE_DEVICE_NETPOLICY_H
#define PAVISE_DEVICE_NETPOLICY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pavise/err.h"
#include "pavise/manifest.h"

#define NP_MIN_TTL  30
#define NP_MAX_TTL  86400
#define NP_MAX_APPS 1024
#define NP_SET_SIZE 1024 /* addresses in each of an app's sets */

/* The app uids when np_config leaves them 0: 70000 and the 65536 after it. */
#define NP_APP_UID_FIRST 70000u
#define NP_APP_UID_COUNT 65536u

typedef struct np_ctx np_ctx;
typedef struct np_app np_app;

typedef struct np_config {
    struct sockaddr_storage upstream; /* the resolver the stub asks (upstream_len 0: the
                                       * first nameserver of /etc/resolv.conf, else
                                       * 127.0.0.1; port 53 when the address has none) */
    socklen_t upstream_len;
    uid_t stub_uid; /* the stub process's uid and gid: not 0, outside the app range */
    gid_t stub_gid;
    uid_t app_uid_first; /* the uids pavised gives apps (both 0: the defaults above); */
    uid_t app_uid_last;  /* a packet of one without an app is refused */
} np_config;

/* Creates (replacing one left by an earlier run) the table, and forks the DNS stub. Call
 * it early, before the process holds anything secret: the stub starts as a copy of it.
 * PV_ERR_INVALID_ARG (stub uid 0 or in the app range, bad upstream), PV_ERR_IO (nftables
 * refused, fork), PV_ERR_UNSUPPORTED (no nf_tables). */
int np_init(const np_config *cfg, np_ctx **out, pv_err *e);
/* Deletes the table and stops the stub. Accepts NULL. */
void np_free(np_ctx *np);

/* The fd pavise-netd polls (POLLIN) for the stub's messages, -1 when there is no stub;
 * np_dispatch reads one and applies it: PV_OK (applied, or nothing to read),
 * PV_ERR_FORMAT / PV_ERR_NOT_FOUND (a message refused: nothing changed; the stub was
 * told), PV_ERR_IO (nftables failed; or the stub died and could not be restarted — a stub
 * that dies is restarted, at most 5 times a minute, and given every app's sockets again),
 * PV_ERR_NOMEM. pavise-netd logs a refusal and carries on: the stub is untrusted, and one bad
 * message is no reason to stop. */
int np_fd(const np_ctx *np);
int np_dispatch(np_ctx *np, pv_err *e);

/* Adds an app: its sets, chain, rules and stub sockets. uid must be in the app range;
 * index (0..NP_MAX_APPS-1) picks the stub address 127.77.0.0 + index + 1
 * (np_app_stub_address). caps gives AllowedConnections (host names, `*.example.com`
 * wildcards, IP addresses) and AllowedTcpServerPorts. PV_ERR_EXISTS (uid or index in
 * use), PV_ERR_INVALID_ARG, PV_ERR_IO (binding the stub sockets, nftables). */
int np_app_add(np_ctx *np, uid_t uid, unsigned index, const pv_capabilities *caps, np_app **out,
               pv_err *e);
/* Removes its rules, sets and stub sockets; returns once the stub has closed them (at most
 * 2 s: a stub that does not answer is restarted), so the index can be given again at
 * once. Accepts NULL. */
void np_app_remove(np_ctx *np, np_app *a);
/* The app's stub address, dotted ("127.77.0.1"), for its resolv.conf. */
const char *np_app_stub_address(const np_app *a);

typedef struct np_app_stats {
    uint64_t dropped_packets; /* packets of the app dropped by its chain */
    uint64_t dropped_bytes;
    uint64_t refused_queries; /* names it asked for that it does not list */
    uint64_t addresses_added; /* resolved addresses put in its sets */
} np_app_stats;

/* Reads the app's counters (the drop counter from nftables). *out is zeroed on entry.
 * PV_ERR_IO. */
int np_app_stats_get(np_ctx *np, const np_app *a, np_app_stats *out, pv_err *e);

/*
 * ==== Inside the module: the control protocol between pavise-netd and the stub ====
 *
 * One message per SOCK_SEQPACKET packet, integers big-endian, first byte the type.
 *   stub -> pavise-netd
 *     NP_MSG_ADDRS    seq(4) index(2) generation(4) count(1, 1..NP_MSG_MAX_ADDRS)
 *                     count x { family(1: 4 or 6) address(16: IPv4 in the first 4, the
 *                     rest zero) ttl(4, NP_MIN_TTL..NP_MAX_TTL) }
 *                     pavise-netd answers NP_MSG_ACK with the same seq once the set holds
 *                     them (ok 1) or when it refused them (ok 0).
 *     NP_MSG_REFUSED  index(2) generation(4) count(4, >= 1: the refusals this message
 *                     stands for) qtype(2) name(the rest: the last name refused, wire form)
 *     NP_MSG_APP_GONE index(2) generation(4): the answer to NP_MSG_APP_DEL, once the
 *                     stub has closed the app's sockets (np_app_remove waits for it)
 *   pavise-netd -> stub
 *     NP_MSG_APP_ADD  index(2) generation(4) count(1) count x { length(1) host name },
 *                     with the app's UDP and TCP sockets (SCM_RIGHTS, in that order)
 *     NP_MSG_APP_DEL  index(2) generation(4)
 *     NP_MSG_ACK      seq(4) ok(1)
 * The generation is pavise-netd's number for one np_app_add, so a message about an app that
 * was removed is never applied to another app given the same index later.
 */
enum {
    NP_MSG_ADDRS = 1,
    NP_MSG_REFUSED = 2,
    NP_MSG_APP_GONE = 3,
    NP_MSG_APP_ADD = 16,
    NP_MSG_APP_DEL = 17,
    NP_MSG_ACK = 18,
};
#define NP_MSG_MAX_ADDRS 255 /* all a DNS_MAX_MSG answer can hold */
#define NP_MSG_ADDR_LEN  21  /* family, address, ttl */
#define NP_MSG_MAX       17408

typedef struct np_msg_addr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    uint32_t ttl;
} np_msg_addr;

/* Encodes NP_MSG_ADDRS; returns its length, or 0 when n is 0 or too many. */
size_t np_msg_addrs_encode(uint32_t seq, unsigned index, uint32_t generation,
                           const np_msg_addr *addrs, size_t n, uint8_t out[NP_MSG_MAX]);

/* Applies one message from the stub, as np_dispatch does with each it reads (tests call
 * it directly). Return codes as np_dispatch. */
int np_stub_message(np_ctx *np, const uint8_t *p, size_t len, pv_err *e);

/* The generation np_app_add gave a (tests build messages with it). */
uint32_t np_app_generation(const np_app *a);

/* The stub process (dnsstub.c): drops to uid/gid (no capabilities, no_new_privs, closes
 * every fd but ctl_fd, seccomp) and serves until ctl_fd reaches end of file. Never
 * returns. */
void np_stub_main(int ctl_fd, uid_t uid, gid_t gid, const struct sockaddr_storage *upstream,
                  socklen_t upstream_len) __attribute__((noreturn));

#endif
