/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavised's side of the network policy: starts pavise-netd, asks it to add and remove apps,
 * and starts it again when it dies (netclient.h). pavise-netd is pavised's own program,
 * started from the file opened at start-up, so its replies are trusted as far as their
 * meaning goes; their shape is still checked, and a reply that is not what was asked for
 * is treated as the process having failed.
 */
#include "netclient.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "pavise/json.h"
#include "pavise/platform.h"

#include "helperproc.h"
#include "privdrop.h"

#define NC_MAX_APPS  1024 /* the stub address slots (NP_MAX_APPS) */
#define NC_START_MS  10000
#define NC_GROUP_MS  2000        /* for the DNS stub of a killed pavise-netd to be gone */
#define NC_STUB_BASE 0x7f4d0000u /* 127.77.0.0/16 */
#define NC_ARGS      20

struct nc_app {
    uid_t uid;
    unsigned index;
    pv_strlist hosts;
    uint16_t ports[PV_MAX_TCP_PORTS];
    size_t n_ports;
    char stub[INET_ADDRSTRLEN];
    bool applied;      /* the running pavise-netd has it */
    nc_app_stats base; /* counted by pavise-netd processes that are gone */
    nc_app_stats last; /* the running one's counters, as last read */
};

struct nc_ctx {
    int netd_fd;
    char *upstream;
    uid_t stub_uid, app_uid_first, app_uid_last;
    gid_t stub_gid;
    pv_log_level log_level;
    bool log_json;
    uint32_t reply_ms;
    char *hide_dir; /* covered in pavise-netd's mount namespace, or NULL */
    int ep;         /* what nc_fd gives: an epoll fd over ctl, so it never changes */
    int ctl;        /* the control socket, -1 while no pavise-netd runs */
    pid_t pid;
    nc_app *apps[NC_MAX_APPS]; /* by index */
    time_t restart_window;     /* start of the current minute of restarts */
    unsigned restarts;
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int nc_parse_upstream(const char *s, struct sockaddr_storage *ss, socklen_t *len, pv_err *e)
{
    char host[INET6_ADDRSTRLEN + 1];
    unsigned port = 53;
    const char *colon = strrchr(s, ':');
    /* One colon: IPv4:port. More: a bare IPv6 address. */
    size_t hl = colon != NULL && strchr(s, ':') == colon ? (size_t)(colon - s) : strlen(s);
    if (hl == 0 || hl >= sizeof(host)) {
        return pv_err_set(e, PV_ERR_USAGE, "--dns-upstream '%s': not an IP address[:port]", s);
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (hl != strlen(s)) {
        const char *p = colon + 1;
        unsigned long v = 0;
        size_t digits = 0;
        for (; *p >= '0' && *p <= '9' && digits < 6; p++, digits++) {
            v = v * 10 + (unsigned long)(*p - '0');
        }
        if (digits == 0 || *p != '\0' || v == 0 || v > 65535) {
            return pv_err_set(e, PV_ERR_USAGE, "--dns-upstream '%s': bad port", s);
        }
        port = (unsigned)v;
    }
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *len = sizeof(*in4);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*in6);
    } else {
        return pv_err_set(e, PV_ERR_USAGE, "--dns-upstream '%s': not an IP address", s);
    }
    return PV_OK;
}

/* ==== the process ==== */

static const char *level_name(pv_log_level l)
{
    switch (l) {
    case PV_LOG_DEBUG:
        return "debug";
    case PV_LOG_WARN:
        return "warn";
    case PV_LOG_ERROR:
        return "error";
    default:
        return "info";
    }
}

/* In the child, between fork and exec: only async-signal-safe calls. The control socket
 * becomes fd 3, stdin and stdout /dev/null, stderr stays (pavised's log); everything else
 * is closed by the exec. */
static void child_exec(int netd_fd, int ctl, pid_t parent, const char *hide_dir, char *const argv[])
    __attribute__((noreturn));

static void child_exec(int netd_fd, int ctl, pid_t parent, const char *hide_dir, char *const argv[])
{
    static char *const envp[] = {NULL};
    sigset_t none;
    sigemptyset(&none);
    /* Moved out of the way of 0-3 first: either may have one of those numbers. */
    int c = fcntl(ctl, F_DUPFD_CLOEXEC, 10);
    int b = fcntl(netd_fd, F_DUPFD_CLOEXEC, 10);
    /* Not close-on-exec: where it lands on 0 or 1 it must stay (dup2 onto itself keeps
     * the flag); anywhere else, close_range marks it. */
    int null = open("/dev/null", O_RDWR);
    if (c < 0 || b < 0 || null < 0 || dup2(null, 0) != 0 || dup2(null, 1) != 1 ||
        dup2(c, NC_CONTROL_FD) != NC_CONTROL_FD ||
        close_range(NC_CONTROL_FD + 1, ~0u, CLOSE_RANGE_CLOEXEC) != 0) {
        _exit(126);
    }
    /* Its own process group: a terminal's ^C is for pavised, which stops it in order, and
     * killing the group takes its DNS stub too. A mount namespace with /proc/sys and /sys
     * read-only and the API socket's directory covered (privdrop.h). */
    (void)setpgid(0, 0);
    const char *const hide[] = {hide_dir, NULL};
    if (pd_confine(hide_dir != NULL ? hide : NULL) != 0) {
        _exit(126);
    }
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    /* Survives the exec (not a set-uid file); the check covers pavised dying first. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) != 0 || getppid() != parent) {
        _exit(126);
    }
    syscall(SYS_execveat, b, "", argv, envp, AT_EMPTY_PATH);
    _exit(127);
}

/* Stops watching and closes the control socket; what the apps counted so far becomes
 * their base, since the next pavise-netd counts from zero. */
static void netd_detach(nc_ctx *nc)
{
    if (nc->ctl >= 0) {
        epoll_ctl(nc->ep, EPOLL_CTL_DEL, nc->ctl, NULL);
        close(nc->ctl);
        nc->ctl = -1;
    }
    for (unsigned i = 0; i < NC_MAX_APPS; i++) {
        nc_app *a = nc->apps[i];
        if (a != NULL) {
            a->base.dropped_packets += a->last.dropped_packets;
            a->base.dropped_bytes += a->last.dropped_bytes;
            a->base.refused_queries += a->last.refused_queries;
            a->base.addresses_added += a->last.addresses_added;
            memset(&a->last, 0, sizeof(a->last));
            a->applied = false;
        }
    }
}

/* True while a process of group pgid has not exited. A zombie has (its sockets are
 * closed): whether init reaps it soon is not ours to wait for. */
static bool group_running(pid_t pgid)
{
    if (kill(-pgid, 0) != 0) {
        return false; /* gone, zombies included */
    }
    bool running = false;
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d != NULL && !running && (de = readdir(d)) != NULL) {
        char path[64], buf[512];
        if (de->d_name[0] < '1' || de->d_name[0] > '9' ||
            snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name) >= (int)sizeof(path)) {
            continue;
        }
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
        if (fd >= 0) {
            close(fd);
        }
        if (n <= 0) {
            continue;
        }
        buf[n] = '\0';
        /* "pid (comm) state ppid pgrp ...": comm may hold anything, ')' included */
        char *p = strrchr(buf, ')'), *end = NULL;
        if (p == NULL || p[1] != ' ' || p[2] == '\0' || p[3] != ' ') {
            continue;
        }
        char state = p[2];
        (void)strtol(p + 4, &end, 10); /* ppid */
        long pgrp = end != NULL && *end == ' ' ? strtol(end + 1, NULL, 10) : 0;
        running = pgrp == (long)pgid && state != 'Z' && state != 'X';
    }
    if (d != NULL) {
        closedir(d);
    }
    return running;
}

/* Kills pavise-netd and its DNS stub (one process group), and waits until both have
 * exited: the stub's sockets hold the apps' stub addresses, which the next one binds.
 * Returns pavise-netd's wait status. */
static int netd_kill(nc_ctx *nc)
{
    int status = 0;
    netd_detach(nc);
    if (nc->pid <= 0) {
        return 0;
    }
    kill(-nc->pid, SIGKILL);
    kill(nc->pid, SIGKILL);
    while (waitpid(nc->pid, &status, 0) < 0 && errno == EINTR) {
    }
    /* The stub, killed by the same signal (and its parent-death signal), may take a moment
     * to exit; once reparented to init it is no longer ours to wait for. */
    int64_t deadline = pv_monotonic_ms() + NC_GROUP_MS;
    while (group_running(nc->pid) && pv_monotonic_ms() < deadline) {
        sleep_ms(5);
    }
    nc->pid = -1;
    return status;
}

static void status_text(int status, char *out, size_t cap)
{
    if (WIFSIGNALED(status)) {
        snprintf(out, cap, "killed by signal %d", WTERMSIG(status));
    } else {
        snprintf(out, cap, "exited with %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
}

/* Reads one packet within ms: PV_OK with *out (a JSON object), PV_ERR_IO (end of file,
 * timeout: pavise-netd is dead or hung), PV_ERR_FORMAT (not a JSON object of ours). */
static int recv_json(nc_ctx *nc, uint32_t ms, json_t **out, pv_err *e)
{
    *out = NULL;
    int r = PV_ERR_INTERNAL;
    uint8_t *buf = malloc(NC_MSG_MAX);
    if (buf == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int64_t deadline = pv_monotonic_ms() + ms;
    ssize_t n = -1;
    for (;;) {
        int64_t left = deadline - pv_monotonic_ms();
        if (left <= 0) {
            r = pv_err_set(e, PV_ERR_IO, "pavise-netd did not answer within %u ms", ms);
            goto out;
        }
        struct pollfd p = {.fd = nc->ctl, .events = POLLIN};
        int pr = poll(&p, 1, (int)left);
        if (pr < 0 && errno != EINTR) {
            r = pv_err_sys(e, PV_ERR_IO, errno, "pavise-netd: poll");
            goto out;
        }
        if (pr <= 0) {
            continue;
        }
        /* MSG_TRUNC: a longer packet reports its real length and is refused whole. */
        n = recv(nc->ctl, buf, NC_MSG_MAX, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            continue;
        }
        break;
    }
    if (n <= 0) {
        r = n == 0 ? pv_err_set(e, PV_ERR_IO, "pavise-netd closed its control socket")
                   : pv_err_sys(e, PV_ERR_IO, errno, "pavise-netd: recv");
        goto out;
    }
    if ((size_t)n > NC_MSG_MAX) {
        r = pv_err_set(e, PV_ERR_FORMAT, "pavise-netd sent %zd bytes", n);
        goto out;
    }
    json_t *j = NULL;
    if (pv_json_parse((const char *)buf, (size_t)n, &j, NULL) != PV_OK || !json_is_object(j)) {
        json_decref(j);
        r = pv_err_set(e, PV_ERR_FORMAT, "pavise-netd sent something other than a JSON object");
        goto out;
    }
    *out = j;
    r = PV_OK;
out:
    free(buf);
    return r;
}

/* Starts pavise-netd and waits for its first packet, sent once the table and the stub are
 * in place. */
static int netd_spawn(nc_ctx *nc, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    int sv[2] = {-1, -1};
    json_t *hello = NULL;
    char fd_s[12], stub_uid[12], stub_gid[12], first[12], last[12];
    snprintf(fd_s, sizeof(fd_s), "%d", NC_CONTROL_FD);
    snprintf(stub_uid, sizeof(stub_uid), "%u", (unsigned)nc->stub_uid);
    snprintf(stub_gid, sizeof(stub_gid), "%u", (unsigned)nc->stub_gid);
    snprintf(first, sizeof(first), "%u", (unsigned)nc->app_uid_first);
    snprintf(last, sizeof(last), "%u", (unsigned)nc->app_uid_last);
    char *argv[NC_ARGS];
    size_t n = 0;
    argv[n++] = "pavise-netd";
    argv[n++] = "--control-fd";
    argv[n++] = fd_s;
    argv[n++] = "--stub-uid";
    argv[n++] = stub_uid;
    argv[n++] = "--stub-gid";
    argv[n++] = stub_gid;
    argv[n++] = "--app-uid-first";
    argv[n++] = first;
    argv[n++] = "--app-uid-last";
    argv[n++] = last;
    argv[n++] = "--log-level";
    argv[n++] = (char *)level_name(nc->log_level);
    if (nc->upstream != NULL) {
        argv[n++] = "--dns-upstream";
        argv[n++] = nc->upstream;
    }
    if (nc->log_json) {
        argv[n++] = "--log-json";
    }
    argv[n] = NULL;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "pavise-netd: socketpair");
        goto out;
    }
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "pavise-netd: fork");
        goto out;
    }
    if (pid == 0) {
        child_exec(nc->netd_fd, sv[1], parent, nc->hide_dir, argv);
    }
    (void)setpgid(pid, pid); /* as the child does: whichever runs first */
    nc->pid = pid;
    nc->ctl = sv[0];
    sv[0] = -1;
    struct epoll_event ev = {.events = EPOLLIN};
    if (epoll_ctl(nc->ep, EPOLL_CTL_ADD, nc->ctl, &ev) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "pavise-netd: epoll_ctl");
        netd_kill(nc);
        goto out;
    }
    close(sv[1]);
    sv[1] = -1;
    if ((r = recv_json(nc, NC_START_MS, &hello, e)) != PV_OK ||
        (r = hp_answer_result(hello, "pavise-netd", e)) != PV_OK) {
        char how[48];
        status_text(netd_kill(nc), how, sizeof(how));
        if (r == PV_ERR_IO || r == PV_ERR_FORMAT) {
            r = pv_err_wrap(e, PV_ERR_IO, "pavise-netd (%s)", how);
        } else {
            r = pv_err_wrap(e, r, "pavise-netd"); /* it said why it could not start */
        }
        goto out;
    }
    pv_debug("pavise-netd started (pid %d)", (int)nc->pid);
    r = PV_OK;
out:
    json_decref(hello);
    if (sv[0] >= 0) {
        close(sv[0]);
    }
    if (sv[1] >= 0) {
        close(sv[1]);
    }
    return r;
}

/* One request (req is consumed; NULL: out of memory) and its reply. A failure of the
 * exchange itself (pavise-netd dead, hung, or answering nonsense) kills it: PV_ERR_IO with
 * nc->ctl now -1, so the caller knows to start another. A refusal returns its code with
 * nc->ctl still open. */
static int call(nc_ctx *nc, json_t *req, json_t **rep, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    *rep = NULL;
    char *text = NULL;
    if (nc->ctl < 0) {
        r = pv_err_set(e, PV_ERR_IO, "pavise-netd is not running");
        goto out;
    }
    if (req == NULL || (text = json_dumps(req, JSON_COMPACT)) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    size_t len = strlen(text);
    if (len > NC_MSG_MAX) {
        r = pv_err_set(e, PV_ERR_TOO_LARGE, "request to pavise-netd too large");
        goto out;
    }
    /* Nothing is ever queued: the previous reply was read. */
    if (send(nc->ctl, text, len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)len) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "pavise-netd: send");
    } else if ((r = recv_json(nc, nc->reply_ms, rep, e)) == PV_OK) {
        r = hp_answer_result(*rep, "pavise-netd", e);
        if (r == PV_ERR_FORMAT) {
            json_decref(*rep);
            *rep = NULL;
        }
    }
    if (r == PV_ERR_IO || r == PV_ERR_FORMAT) {
        char how[48];
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        /* still running (hung, or confused) or gone by itself: only a look, not a reap */
        bool hung = nc->pid > 0 &&
                    waitid(P_PID, (id_t)nc->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                    si.si_pid == 0;
        status_text(netd_kill(nc), how, sizeof(how));
        pv_warn("network policy: %s; pavise-netd %s", pv_err_msg(e), hung ? "killed" : how);
        r = PV_ERR_IO;
    }
out:
    if (r != PV_OK && *rep != NULL) {
        json_decref(*rep);
        *rep = NULL;
    }
    json_decref(req);
    free(text);
    return r;
}

/* ==== apps ==== */

static json_t *add_request(const nc_app *a)
{
    json_t *hosts = json_array(), *ports = json_array();
    for (size_t i = 0; hosts != NULL && i < a->hosts.n; i++) {
        if (json_array_append_new(hosts, json_string(a->hosts.v[i])) != 0) {
            json_decref(hosts);
            hosts = NULL;
        }
    }
    for (size_t i = 0; ports != NULL && i < a->n_ports; i++) {
        if (json_array_append_new(ports, json_integer(a->ports[i])) != 0) {
            json_decref(ports);
            ports = NULL;
        }
    }
    if (hosts == NULL || ports == NULL) {
        json_decref(hosts);
        json_decref(ports);
        return NULL;
    }
    return json_pack("{s:s, s:I, s:I, s:o, s:o}", "op", "add", "uid", (json_int_t)a->uid, "index",
                     (json_int_t)a->index, "hosts", hosts, "ports", ports);
}

/* The stub address of a reply: one of ours, and the one for the app's slot. */
static int set_stub(nc_app *a, const json_t *rep, pv_err *e)
{
    const char *s = json_string_value(json_object_get(rep, "stub"));
    struct in_addr in;
    if (s == NULL || inet_pton(AF_INET, s, &in) != 1 ||
        ntohl(in.s_addr) != NC_STUB_BASE + a->index + 1 || strlen(s) >= sizeof(a->stub)) {
        return pv_err_set(e, PV_ERR_FORMAT, "pavise-netd gave app uid %u a wrong stub address",
                          (unsigned)a->uid);
    }
    memcpy(a->stub, s, strlen(s) + 1);
    return PV_OK;
}

static int add_call(nc_ctx *nc, nc_app *a, pv_err *e)
{
    json_t *rep = NULL;
    int r = call(nc, add_request(a), &rep, e);
    if (r == PV_OK && (r = set_stub(a, rep, e)) != PV_OK) {
        /* pavise-netd's own program answering nonsense: start again */
        netd_kill(nc);
        r = PV_ERR_IO;
    }
    a->applied = r == PV_OK;
    json_decref(rep);
    return r;
}

/* No pavise-netd runs (it died, or was killed): start another, at most NC_RESTART_MAX times
 * a minute, and give it every app. */
static int revive(nc_ctx *nc, pv_err *e)
{
    while (nc->ctl < 0) {
        time_t now = time(NULL);
        if (now - nc->restart_window >= NC_RESTART_WINDOW) {
            nc->restart_window = now;
            nc->restarts = 0;
        }
        if (nc->restarts >= NC_RESTART_MAX) {
            return pv_err_set(e, PV_ERR_IO,
                              "pavise-netd failed %u times in a minute: apps get no network",
                              nc->restarts);
        }
        nc->restarts++;
        pv_warn("network policy: starting pavise-netd again");
        int r = netd_spawn(nc, e);
        if (r != PV_OK) {
            pv_error("network policy: %s", pv_err_msg(e));
            continue;
        }
        for (unsigned i = 0; i < NC_MAX_APPS && nc->ctl >= 0; i++) {
            nc_app *a = nc->apps[i];
            pv_err ae;
            pv_err_clear(&ae);
            if (a != NULL && add_call(nc, a, &ae) != PV_OK && nc->ctl >= 0) {
                /* Refused this time: the app's uid has no rules, so its traffic is refused. */
                pv_error("network policy: app uid %u not given again: %s", (unsigned)a->uid,
                         pv_err_msg(&ae));
            }
        }
    }
    return PV_OK;
}

/* A request, with one more try after starting pavise-netd again when the exchange failed. */
static int call_retry(nc_ctx *nc, json_t *(*build)(const void *), const void *arg, json_t **rep,
                      pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (nc->ctl < 0 && (r = revive(nc, e)) != PV_OK) {
            return r;
        }
        r = call(nc, build(arg), rep, e);
        if (r != PV_OK && nc->ctl < 0) {
            continue;
        }
        break;
    }
    return r;
}

int nc_app_add(nc_ctx *nc, uid_t uid, unsigned index, const pv_capabilities *caps, nc_app **out,
               pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    nc_app *a = NULL;
    *out = NULL;
    if (index >= NC_MAX_APPS || uid < nc->app_uid_first || uid > nc->app_uid_last) {
        r = pv_err_set(e, PV_ERR_INVALID_ARG,
                       "network policy: app index %u or uid %u out of range (uids %u-%u)", index,
                       (unsigned)uid, (unsigned)nc->app_uid_first, (unsigned)nc->app_uid_last);
        goto out;
    }
    for (unsigned i = 0; i < NC_MAX_APPS; i++) {
        if (nc->apps[i] != NULL && (i == index || nc->apps[i]->uid == uid)) {
            r = pv_err_set(e, PV_ERR_EXISTS, "network policy: app index %u or uid %u in use", index,
                           (unsigned)uid);
            goto out;
        }
    }
    if (caps->allowed_connections.n > PV_MAX_CONNECTIONS ||
        caps->n_tcp_server_ports > PV_MAX_TCP_PORTS) {
        r = pv_err_set(e, PV_ERR_INVALID_ARG, "network policy: app uid %u: too many connections",
                       (unsigned)uid);
        goto out;
    }
    if ((a = calloc(1, sizeof(*a))) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    a->uid = uid;
    a->index = index;
    for (size_t i = 0; i < caps->allowed_connections.n; i++) {
        if (pv_strlist_add(&a->hosts, caps->allowed_connections.v[i]) != PV_OK) {
            r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    memcpy(a->ports, caps->tcp_server_ports, caps->n_tcp_server_ports * sizeof(a->ports[0]));
    a->n_ports = caps->n_tcp_server_ports;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (nc->ctl < 0 && (r = revive(nc, e)) != PV_OK) {
            goto out;
        }
        r = add_call(nc, a, e);
        if (r != PV_OK && nc->ctl < 0) {
            continue;
        }
        break;
    }
    if (r != PV_OK) {
        goto out;
    }
    nc->apps[index] = a;
    *out = a;
    a = NULL;
    r = PV_OK;
out:
    if (a != NULL) {
        pv_strlist_free(&a->hosts);
        free(a);
    }
    return r;
}

static json_t *uid_request(const char *op, uid_t uid)
{
    return json_pack("{s:s, s:I}", "op", op, "uid", (json_int_t)uid);
}

static json_t *remove_request(const void *arg)
{
    return uid_request("remove", *(const uid_t *)arg);
}

static json_t *stats_request(const void *arg)
{
    return uid_request("stats", *(const uid_t *)arg);
}

void nc_app_remove(nc_ctx *nc, nc_app *a)
{
    if (a == NULL) {
        return;
    }
    if (a->index < NC_MAX_APPS && nc->apps[a->index] == a) {
        nc->apps[a->index] = NULL;
    }
    if (a->applied && nc->ctl >= 0) {
        json_t *rep = NULL;
        pv_err e;
        pv_err_clear(&e);
        /* Forgotten first: if pavise-netd has to be started again, it is not given it. */
        if (call(nc, remove_request(&a->uid), &rep, &e) != PV_OK) {
            pv_error("network policy: removing app uid %u: %s", (unsigned)a->uid, pv_err_msg(&e));
            if (nc->ctl < 0 && revive(nc, &e) != PV_OK) {
                pv_error("network policy: %s", pv_err_msg(&e));
            }
        }
        json_decref(rep);
    }
    pv_strlist_free(&a->hosts);
    free(a);
}

const char *nc_app_stub_address(const nc_app *a)
{
    return a->stub;
}

static int get_counter(const json_t *rep, const char *name, uint64_t *out, pv_err *e)
{
    json_t *v = json_object_get(rep, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "pavise-netd's counters: '%s' missing", name);
    }
    *out = (uint64_t)json_integer_value(v);
    return PV_OK;
}

int nc_app_stats_get(nc_ctx *nc, nc_app *a, nc_app_stats *out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    json_t *rep = NULL;
    nc_app_stats s;
    memset(out, 0, sizeof(*out));
    memset(&s, 0, sizeof(s));
    r = call_retry(nc, stats_request, &a->uid, &rep, e);
    if (r == PV_OK && !a->applied) {
        r = pv_err_set(e, PV_ERR_IO, "network policy: app uid %u has no rules", (unsigned)a->uid);
    }
    if (r != PV_OK) {
        goto out;
    }
    if ((r = get_counter(rep, "dropped_packets", &s.dropped_packets, e)) != PV_OK ||
        (r = get_counter(rep, "dropped_bytes", &s.dropped_bytes, e)) != PV_OK ||
        (r = get_counter(rep, "refused_queries", &s.refused_queries, e)) != PV_OK ||
        (r = get_counter(rep, "addresses_added", &s.addresses_added, e)) != PV_OK) {
        goto out;
    }
    a->last = s;
    out->dropped_packets = a->base.dropped_packets + s.dropped_packets;
    out->dropped_bytes = a->base.dropped_bytes + s.dropped_bytes;
    out->refused_queries = a->base.refused_queries + s.refused_queries;
    out->addresses_added = a->base.addresses_added + s.addresses_added;
    r = PV_OK;
out:
    json_decref(rep);
    return r;
}

/* ==== the context ==== */

int nc_start(const nc_config *cfg, nc_ctx **out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    nc_ctx *nc = NULL;
    *out = NULL;
    if (cfg->upstream != NULL) {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        if ((r = nc_parse_upstream(cfg->upstream, &ss, &len, e)) != PV_OK) {
            goto out;
        }
    }
    if ((nc = calloc(1, sizeof(*nc))) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    nc->netd_fd = nc->ep = nc->ctl = -1;
    nc->pid = -1;
    nc->stub_uid = cfg->stub_uid;
    nc->stub_gid = cfg->stub_gid;
    nc->app_uid_first = cfg->app_uid_first;
    nc->app_uid_last = cfg->app_uid_last;
    nc->log_level = cfg->log_level;
    nc->log_json = cfg->log_json;
    nc->reply_ms = cfg->reply_ms != 0 ? cfg->reply_ms : NC_REPLY_MS;
    if ((cfg->upstream != NULL && (nc->upstream = strdup(cfg->upstream)) == NULL) ||
        (cfg->hide_dir != NULL && (nc->hide_dir = strdup(cfg->hide_dir)) == NULL)) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((nc->netd_fd = fcntl(cfg->netd_fd, F_DUPFD_CLOEXEC, 3)) < 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "pavise-netd's file");
        goto out;
    }
    if ((nc->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "epoll_create1");
        goto out;
    }
    if ((r = netd_spawn(nc, e)) != PV_OK) {
        goto out;
    }
    *out = nc;
    nc = NULL;
    r = PV_OK;
out:
    nc_free(nc);
    return r;
}

void nc_free(nc_ctx *nc)
{
    if (nc == NULL) {
        return;
    }
    if (nc->pid > 0) {
        /* End of file tells pavise-netd to delete the table and stop the stub. */
        netd_detach(nc);
        int status = 0;
        pid_t w = 0;
        int64_t deadline = pv_monotonic_ms() + NC_REPLY_MS;
        while ((w = waitpid(nc->pid, &status, WNOHANG)) == 0 && pv_monotonic_ms() < deadline) {
            sleep_ms(5);
        }
        if (w == nc->pid) {
            nc->pid = -1;
        } else {
            pv_warn("network policy: pavise-netd did not stop: killed");
            netd_kill(nc);
        }
    }
    for (unsigned i = 0; i < NC_MAX_APPS; i++) {
        if (nc->apps[i] != NULL) {
            pv_strlist_free(&nc->apps[i]->hosts);
            free(nc->apps[i]);
        }
    }
    if (nc->ep >= 0) {
        close(nc->ep);
    }
    if (nc->netd_fd >= 0) {
        close(nc->netd_fd);
    }
    free(nc->upstream);
    free(nc->hide_dir);
    free(nc);
}

int nc_fd(const nc_ctx *nc)
{
    return nc->ep;
}

pid_t nc_netd_pid(const nc_ctx *nc)
{
    return nc->pid;
}

int nc_dispatch(nc_ctx *nc, pv_err *e)
{
    if (nc->ctl < 0) {
        return revive(nc, e);
    }
    uint8_t b;
    ssize_t n = recv(nc->ctl, &b, 1, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return PV_OK;
    }
    char how[48];
    status_text(netd_kill(nc), how, sizeof(how));
    if (n > 0) {
        pv_warn("network policy: pavise-netd sent a packet nobody asked for: killed");
    } else {
        pv_warn("network policy: pavise-netd %s", how);
    }
    return revive(nc, e);
}
