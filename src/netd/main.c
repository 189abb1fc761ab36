/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavise-netd: the apps' network policy in a process of its own (docs/compartments.md
 * §network, docs/device-runtime.md). pavised starts it (netclient.c):
 *   pavise-netd --control-fd 3 --stub-uid UID [--stub-gid GID] --app-uid-first UID
 *               --app-uid-last UID [--dns-upstream IP[:PORT]] [--log-level L] [--log-json]
 *
 * It makes the nftables table and forks the DNS stub (np_init), then keeps only what the
 * policy needs: CAP_NET_ADMIN (nftables), CAP_NET_BIND_SERVICE (the stub sockets on port
 * 53), CAP_SETUID and CAP_SETGID (a restarted stub drops to its uid) and CAP_SETPCAP (the
 * stub empties its bounding set), no_new_privs. pavised is the only one that talks to it,
 * over the control socket (netclient.h has the protocol); the DNS stub's messages, which
 * are untrusted, are checked and applied by netpolicy.c as before. When the control socket
 * reaches end of file (pavised gone) or SIGTERM comes, it deletes the table, stops the stub
 * and exits.
 */
#include <errno.h>
#include <malloc.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "pavise/json.h"
#include "pavise/log.h"

#include "netclient.h"
#include "netpolicy.h"
#include "privdrop.h"

#ifndef PAVISE_VERSION
#define PAVISE_VERSION "0.1.0"
#endif

static const cli_opt opts[] = {
    {"control-fd", "FD", true, "the SOCK_SEQPACKET socket pavised talks on"},
    {"stub-uid", "UID", true, "the DNS stub's uid"},
    {"stub-gid", "GID", false, "the DNS stub's gid (default: its uid)"},
    {"app-uid-first", "UID", true, "the first uid pavised gives apps"},
    {"app-uid-last", "UID", true, "the last uid pavised gives apps"},
    {"dns-upstream", "IP[:PORT]", false,
     "the resolver the DNS stub asks (default: the first nameserver of /etc/resolv.conf)"},
    {"log-level", "LEVEL", false, "debug, info (default), warn or error"},
    {"log-json", NULL, false, "log as JSON lines"},
    {NULL, NULL, false, NULL},
};

static int run(const cli_cmd *cmd, const cli_args *args, pv_err *e);

static const cli_cmd netd_cmd = {
    NULL,
    "",
    "The Pavise network policy process",
    "Holds the apps' nftables rules and their DNS stub for pavised, which starts it; not "
    "meant to be run by hand.",
    opts,
    false,
    run,
};

/* The apps pavised added, by index. */
typedef struct netd {
    np_ctx *np;
    int ctl;
    np_app *apps[NP_MAX_APPS];
    uid_t uids[NP_MAX_APPS];
} netd;

/* ==== requests ==== */

static int get_uint(const json_t *o, const char *name, uint64_t max, uint64_t *out, pv_err *e)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max) {
        return pv_err_set(e, PV_ERR_FORMAT, "'%s': expected a whole number up to %llu", name,
                          (unsigned long long)max);
    }
    *out = (uint64_t)json_integer_value(v);
    return PV_OK;
}

static int find_uid(netd *d, const json_t *req, unsigned *index, pv_err *e)
{
    uint64_t uid = 0;
    int r = get_uint(req, "uid", UINT32_MAX, &uid, e);
    if (r != PV_OK) {
        return r;
    }
    for (unsigned i = 0; i < NP_MAX_APPS; i++) {
        if (d->apps[i] != NULL && d->uids[i] == (uid_t)uid) {
            *index = i;
            return PV_OK;
        }
    }
    return pv_err_set(e, PV_ERR_NOT_FOUND, "no app with uid %llu", (unsigned long long)uid);
}

/* The capabilities of an add request: hosts (AllowedConnections) and ports
 * (AllowedTcpServerPorts), bounded as a manifest's. The host names themselves are checked
 * by np_app_add. */
static int get_caps(const json_t *req, pv_capabilities *caps, pv_err *e)
{
    json_t *hosts = json_object_get(req, "hosts"), *ports = json_object_get(req, "ports");
    if (!json_is_array(hosts) || json_array_size(hosts) > PV_MAX_CONNECTIONS) {
        return pv_err_set(e, PV_ERR_FORMAT, "'hosts': expected an array of at most %d",
                          PV_MAX_CONNECTIONS);
    }
    if (!json_is_array(ports) || json_array_size(ports) > PV_MAX_TCP_PORTS) {
        return pv_err_set(e, PV_ERR_FORMAT, "'ports': expected an array of at most %d",
                          PV_MAX_TCP_PORTS);
    }
    size_t i;
    json_t *v;
    json_array_foreach(hosts, i, v)
    {
        size_t len = json_string_length(v);
        if (!json_is_string(v) || len == 0 || len > PV_MAX_HOSTNAME) {
            return pv_err_set(e, PV_ERR_FORMAT, "'hosts' %zu: expected a host name", i);
        }
        if (pv_strlist_add(&caps->allowed_connections, json_string_value(v)) != PV_OK) {
            return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        }
    }
    json_array_foreach(ports, i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535) {
            return pv_err_set(e, PV_ERR_FORMAT, "'ports' %zu: expected a port number", i);
        }
        caps->tcp_server_ports[caps->n_tcp_server_ports++] = (uint16_t)json_integer_value(v);
    }
    return PV_OK;
}

static int op_add(netd *d, const json_t *req, json_t **rep, pv_err *e)
{
    static const char *const members[] = {"op", "uid", "index", "hosts", "ports", NULL};
    int r = PV_ERR_INTERNAL;
    uint64_t uid = 0, index = 0;
    pv_capabilities caps;
    np_app *a = NULL;
    memset(&caps, 0, sizeof(caps));
    if ((r = pv_json_check_fields(req, members, "request", e)) != PV_OK ||
        (r = get_uint(req, "uid", UINT32_MAX - 1, &uid, e)) != PV_OK ||
        (r = get_uint(req, "index", NP_MAX_APPS - 1, &index, e)) != PV_OK ||
        (r = get_caps(req, &caps, e)) != PV_OK) {
        goto out;
    }
    if ((r = np_app_add(d->np, (uid_t)uid, (unsigned)index, &caps, &a, e)) != PV_OK) {
        goto out;
    }
    if ((*rep = json_pack("{s:b, s:s}", "ok", 1, "stub", np_app_stub_address(a))) == NULL) {
        np_app_remove(d->np, a);
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    d->apps[index] = a; /* np_app_add refused an index or uid in use */
    d->uids[index] = (uid_t)uid;
    r = PV_OK;
out:
    pv_strlist_free(&caps.allowed_connections);
    return r;
}

static int op_remove(netd *d, const json_t *req, json_t **rep, pv_err *e)
{
    static const char *const members[] = {"op", "uid", NULL};
    unsigned i = 0;
    int r = pv_json_check_fields(req, members, "request", e);
    if (r != PV_OK || (r = find_uid(d, req, &i, e)) != PV_OK) {
        return r;
    }
    np_app_remove(d->np, d->apps[i]);
    d->apps[i] = NULL;
    if ((*rep = json_pack("{s:b}", "ok", 1)) == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    return PV_OK;
}

static int op_stats(netd *d, const json_t *req, json_t **rep, pv_err *e)
{
    static const char *const members[] = {"op", "uid", NULL};
    unsigned i = 0;
    np_app_stats s;
    int r = pv_json_check_fields(req, members, "request", e);
    if (r != PV_OK || (r = find_uid(d, req, &i, e)) != PV_OK ||
        (r = np_app_stats_get(d->np, d->apps[i], &s, e)) != PV_OK) {
        return r;
    }
    /* json_int_t is signed: a counter never reaches 2^63, but it is capped rather than
     * sent negative. */
#define CAP(x) ((json_int_t)((x) > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : (x)))
    *rep =
        json_pack("{s:b, s:I, s:I, s:I, s:I}", "ok", 1, "dropped_packets", CAP(s.dropped_packets),
                  "dropped_bytes", CAP(s.dropped_bytes), "refused_queries", CAP(s.refused_queries),
                  "addresses_added", CAP(s.addresses_added));
#undef CAP
    return *rep != NULL ? PV_OK : pv_err_set(e, PV_ERR_NOMEM, "out of memory");
}

typedef int (*op_fn)(netd *d, const json_t *req, json_t **rep, pv_err *e);

static const struct {
    const char *name;
    op_fn fn;
} ops[] = {
    {"add", op_add},
    {"remove", op_remove},
    {"stats", op_stats},
};

/* One request: the reply to send (NULL: out of memory). */
static json_t *handle(netd *d, const uint8_t *p, size_t len)
{
    int r = PV_ERR_INTERNAL;
    json_t *req = NULL, *rep = NULL;
    pv_err e;
    pv_err_clear(&e);
    if (len > NC_MSG_MAX) {
        r = pv_err_set(&e, PV_ERR_TOO_LARGE, "request of %zu bytes (at most %d)", len, NC_MSG_MAX);
        goto out;
    }
    if (pv_json_parse((const char *)p, len, &req, &e) != PV_OK || !json_is_object(req)) {
        r = pv_err_set(&e, PV_ERR_FORMAT, "request is not a JSON object");
        goto out;
    }
    const char *op = json_string_value(json_object_get(req, "op"));
    r = pv_err_set(&e, PV_ERR_FORMAT, "unknown op '%.32s'", op != NULL ? op : "");
    for (size_t i = 0; op != NULL && i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (strcmp(ops[i].name, op) == 0) {
            pv_err_clear(&e);
            r = ops[i].fn(d, req, &rep, &e);
            break;
        }
    }
out:
    json_decref(req);
    if (r != PV_OK) {
        json_decref(rep);
        pv_debug("request refused: %s", pv_err_msg(&e));
        rep = json_pack("{s:b, s:i, s:s}", "ok", 0, "code", r, "error", pv_err_msg(&e));
    }
    return rep;
}

static int send_json(int fd, json_t *j)
{
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    int r = text != NULL && send(fd, text, strlen(text), MSG_NOSIGNAL) == (ssize_t)strlen(text)
                ? PV_OK
                : PV_ERR_IO;
    free(text);
    json_decref(j);
    return r;
}

/* Reads and answers one request. PV_ERR_IO: the socket is closed or broken (pavised is
 * gone), time to stop. */
static int serve_one(netd *d, uint8_t *buf)
{
    ssize_t n = recv(d->ctl, buf, NC_MSG_MAX, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return PV_OK;
    }
    if (n <= 0) {
        return PV_ERR_IO;
    }
    json_t *rep = handle(d, buf, (size_t)n);
    if (rep == NULL) {
        /* no reply at all: pavised times out and starts another pavise-netd */
        pv_error("out of memory");
        return PV_ERR_IO;
    }
    int r = send_json(d->ctl, rep);
    /* What a batch took (libnftables' parser and cache) goes back to the system: this
     * process idles between rare requests. */
    malloc_trim(0);
    return r;
}

/* ==== setup ==== */

/* After np_init: keep what the policy needs and nothing else, for good. */
static int drop_privileges(pid_t parent, pv_err *e)
{
    static const int keep[] = {CAP_NET_ADMIN, CAP_NET_BIND_SERVICE, CAP_SETUID, CAP_SETGID,
                               /* the DNS stub, forked from here, empties its bounding set */
                               CAP_SETPCAP};
    int r = pd_keep_caps(keep, sizeof(keep) / sizeof(keep[0]), e);
    if (r != PV_OK) {
        return r;
    }
    /* pavised set it before the exec; set again in case a change above cleared it, then
     * make sure pavised did not go in between. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) != 0 || getppid() != parent) {
        return pv_err_set(e, PV_ERR_IO, "pavised is gone");
    }
    return PV_OK;
}

/* The control socket: an fd pavised gave, a SOCK_SEQPACKET socket whose peer is root. */
static int check_control(int fd, pv_err *e)
{
    int type = 0;
    socklen_t tl = sizeof(type);
    struct ucred cred;
    socklen_t cl = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_SEQPACKET ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 || cred.uid != 0) {
        return pv_err_set(e, PV_ERR_USAGE,
                          "--control-fd %d: not a SOCK_SEQPACKET socket to a root process", fd);
    }
    return PV_OK;
}

static int parse_config(const cli_cmd *cmd, const cli_args *args, np_config *cfg, int *ctl,
                        pv_err *e)
{
    uint64_t fd = 0, su = 0, sg = 0, first = 0, last = 0;
    const char *up = cli_get(cmd, args, "dns-upstream");
    const char *gid = cli_get(cmd, args, "stub-gid");
    memset(cfg, 0, sizeof(*cfg));
    int r = PV_OK;
    if ((r = cli_parse_uint(cli_get(cmd, args, "control-fd"), "--control-fd", 1023, &fd, e)) !=
            PV_OK ||
        (r = cli_parse_uint(cli_get(cmd, args, "stub-uid"), "--stub-uid", UINT32_MAX - 1, &su,
                            e)) != PV_OK ||
        (gid != NULL && (r = cli_parse_uint(gid, "--stub-gid", UINT32_MAX - 1, &sg, e)) != PV_OK) ||
        (r = cli_parse_uint(cli_get(cmd, args, "app-uid-first"), "--app-uid-first", UINT32_MAX - 1,
                            &first, e)) != PV_OK ||
        (r = cli_parse_uint(cli_get(cmd, args, "app-uid-last"), "--app-uid-last", UINT32_MAX - 1,
                            &last, e)) != PV_OK ||
        (up != NULL &&
         (r = nc_parse_upstream(up, &cfg->upstream, &cfg->upstream_len, e)) != PV_OK)) {
        return r;
    }
    if (fd < 3) {
        return pv_err_set(e, PV_ERR_USAGE, "--control-fd: not stdin, stdout or stderr");
    }
    cfg->stub_uid = (uid_t)su;
    cfg->stub_gid = (gid_t)(gid != NULL ? sg : su);
    cfg->app_uid_first = (uid_t)first;
    cfg->app_uid_last = (uid_t)last;
    *ctl = (int)fd;
    return check_control(*ctl, e);
}

/* ==== the loop ==== */

static int serve(netd *d, int sfd)
{
    uint8_t *buf = malloc(NC_MSG_MAX);
    if (buf == NULL) {
        pv_error("out of memory");
        return PV_ERR_NOMEM;
    }
    for (;;) {
        /* np_fd changes when the stub is restarted, and is -1 once it gave up */
        struct pollfd p[3] = {{.fd = d->ctl, .events = POLLIN},
                              {.fd = sfd, .events = POLLIN},
                              {.fd = np_fd(d->np), .events = POLLIN}};
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            pv_error("poll: %s", strerror(errno));
            break;
        }
        if (p[1].revents != 0) {
            pv_info("stopping on a signal");
            break;
        }
        if (p[2].revents != 0) {
            pv_err e;
            pv_err_clear(&e);
            if (np_dispatch(d->np, &e) != PV_OK) {
                pv_warn("DNS stub: %s", pv_err_msg(&e));
            }
        }
        if (p[0].revents != 0 && serve_one(d, buf) != PV_OK) {
            pv_debug("pavised closed the control socket: stopping");
            break;
        }
    }
    free(buf);
    return PV_OK;
}

static int run(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    netd *d = NULL;
    np_config cfg;
    int ctl = -1, sfd = -1;
    pid_t parent = getppid();
    const char *level_s = cli_get(cmd, args, "log-level");
    pv_log_level level = PV_LOG_INFO;
    if (level_s != NULL && pv_log_level_parse(level_s, &level) != PV_OK) {
        return pv_err_set(e, PV_ERR_USAGE, "--log-level '%s': debug, info, warn or error", level_s);
    }
    pv_log_init(level, cli_flag(cmd, args, "log-json"), NULL, "pavise-netd");
    if ((r = parse_config(cmd, args, &cfg, &ctl, e)) != PV_OK) {
        return r;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGPIPE);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sigdelset(&set, SIGPIPE);
    if ((sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "signalfd");
        goto out;
    }
    if ((d = calloc(1, sizeof(*d))) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    d->ctl = ctl;
    if ((r = np_init(&cfg, &d->np, e)) != PV_OK) {
        goto out;
    }
    if ((r = drop_privileges(parent, e)) != PV_OK) {
        goto out;
    }
    malloc_trim(0);
    /* ready: pavised waits for this before it adds anything */
    if (send_json(ctl, json_pack("{s:b}", "ok", 1)) != PV_OK) {
        r = pv_err_set(e, PV_ERR_IO, "pavised is gone");
        goto out;
    }
    r = serve(d, sfd);
out:
    if (r != PV_OK && ctl >= 0) {
        /* pavised shows this as the reason pavise-netd did not start */
        (void)send_json(ctl,
                        json_pack("{s:b, s:i, s:s}", "ok", 0, "code", r, "error", pv_err_msg(e)));
    }
    if (d != NULL) {
        np_free(d->np); /* every app's rules go with the table */
        free(d);
    }
    if (sfd >= 0) {
        close(sfd);
    }
    if (ctl >= 0) {
        close(ctl);
    }
    return r;
}

int main(int argc, char **argv)
{
    return cli_main(&netd_cmd, "pavise-netd", PAVISE_VERSION, argc, argv);
}
