/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavise-netd's side of the network policy: the nftables table, the apps' chains and sets, the
 * stub sockets, and the control messages of the DNS stub (which is untrusted once it has
 * parsed a packet: every message is checked here before nftables is asked anything).
 */
#include "netpolicy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <nftables/libnftables.h>

#include "pavise/platform.h"
#include "pavise/buf.h"
#include "pavise/fs.h"
#include "pavise/log.h"

#include "dnsmsg.h"

#define TABLE            "inet pavise"
#define BATCH_MAX        (256u * 1024u) /* one app's rules and static elements fit easily */
#define BATCH_LINE       640
#define STUB_BACKLOG     16
#define RESTART_WINDOW_S 60
#define RESTART_MAX      5
#define STUB_GONE_MS     2000
#define REFUSED_LOG_S    10
#define STUB_ADDR_BASE   0x7f4d0000u /* 127.77.0.0 */
#define RESOLV_CONF      "/etc/resolv.conf"
/* Refused packets are dropped with an ICMP "administratively prohibited" to the sender
 * itself: a TCP connect fails at once (EHOSTUNREACH) instead of retrying for minutes, and
 * a UDP send fails with EPERM as with a plain drop. */
#define REJECT "reject with icmpx admin-prohibited"

struct np_app {
    uid_t uid;
    unsigned index;
    uint32_t generation;
    int udp_fd, tcp_fd; /* kept, so a restarted stub can be given them again */
    char stub_addr[INET_ADDRSTRLEN];
    pv_strlist names; /* host names and wildcards, for the stub */
    struct in_addr static4[PV_MAX_CONNECTIONS];
    size_t n_static4;
    struct in6_addr static6[PV_MAX_CONNECTIONS];
    size_t n_static6;
    uint64_t refused, added;
    time_t refused_log_at;
};

struct np_ctx {
    struct nft_ctx *nft;
    struct sockaddr_storage upstream;
    socklen_t upstream_len;
    uid_t stub_uid;
    gid_t stub_gid;
    uid_t uid_first, uid_last;
    bool table_made;
    pid_t stub_pid;
    int ctl_fd;
    np_app *apps[NP_MAX_APPS]; /* by index */
    uint32_t next_generation;
    time_t restart_window; /* start of the current minute of restarts */
    unsigned restarts;
};

static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* ==== nftables ==== */

static int batch_add(pv_buf *b, const char *fmt, ...) PV_PRINTF(2, 3);

/* Appends one command line. Everything formatted here is ours or was checked (numbers,
 * addresses from inet_ntop, host names never reach nftables). */
static int batch_add(pv_buf *b, const char *fmt, ...)
{
    char line[BATCH_LINE];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) - 1) {
        return PV_ERR_TOO_LARGE;
    }
    line[n++] = '\n';
    return pv_buf_append(b, line, (size_t)n);
}

/* Runs a batch (one transaction: all or nothing). */
static int nft_run(np_ctx *np, pv_buf *b, const char *what, pv_err *e)
{
    if (pv_buf_append_u8(b, 0) != PV_OK) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "%s: nftables batch too large", what);
    }
    (void)nft_ctx_get_error_buffer(np->nft); /* rewinds what an earlier run left */
    if (nft_run_cmd_from_buffer(np->nft, (const char *)pv_buf_data(b)) != 0) {
        const char *msg = nft_ctx_get_error_buffer(np->nft);
        char first[300];
        size_t i = 0;
        for (; msg != NULL && msg[i] != '\0' && msg[i] != '\n' && i < sizeof(first) - 1; i++) {
            first[i] = msg[i];
        }
        first[i] = '\0';
        int code = (strstr(first, "not supported") != NULL) ? PV_ERR_UNSUPPORTED : PV_ERR_IO;
        return pv_err_set(e, code, "%s: nftables refused the change: %s", what,
                          i > 0 ? first : "no reason given");
    }
    return PV_OK;
}

static bool addr_text(int family, const void *addr, char *out, size_t cap)
{
    return inet_ntop(family, addr, out, (socklen_t)cap) != NULL;
}

/* The stub's own rules: it may send only to the upstream, over UDP, and answer the apps'
 * TCP connections. */
static int batch_base(np_ctx *np, pv_buf *b)
{
    char up[INET6_ADDRSTRLEN];
    const char *fam;
    uint16_t port;
    if (np->upstream.ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)&np->upstream;
        fam = "ip";
        port = ntohs(s->sin_port);
        if (!addr_text(AF_INET, &s->sin_addr, up, sizeof(up))) {
            return PV_ERR_INTERNAL;
        }
    } else {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&np->upstream;
        fam = "ip6";
        port = ntohs(s->sin6_port);
        if (!addr_text(AF_INET6, &s->sin6_addr, up, sizeof(up))) {
            return PV_ERR_INTERNAL;
        }
    }
    int r = PV_OK;
    /* add + delete + add: replaces a table an earlier run left, in the same transaction
     * (nftables 1.0.6 has no `destroy`). */
    r = r ? r : batch_add(b, "add table " TABLE);
    r = r ? r : batch_add(b, "delete table " TABLE);
    r = r ? r : batch_add(b, "add table " TABLE);
    r = r ? r
          : batch_add(b, "add map " TABLE " apps { type uid : verdict ; size %u ; }", NP_MAX_APPS);
    r = r ? r : batch_add(b, "add counter " TABLE " stub_drop");
    r = r ? r : batch_add(b, "add counter " TABLE " orphan_drop");
    r = r ? r
          : batch_add(b, "add chain " TABLE
                         " output { type filter hook output priority 0 ; policy accept ; }");
    r = r ? r
          : batch_add(b, "add rule " TABLE " output meta skuid %u %s daddr %s udp dport %u accept",
                      (unsigned)np->stub_uid, fam, up, port);
    /* A TCP client's socket is the stub's own (accept made it): its answers are replies
     * from a stub address. */
    r = r ? r
          : batch_add(b,
                      "add rule " TABLE " output meta skuid %u ip saddr 127.77.0.0/16 tcp sport 53 "
                      "ct direction reply accept",
                      (unsigned)np->stub_uid);
    r = r ? r
          : batch_add(b,
                      "add rule " TABLE " output meta skuid %u counter name \"stub_drop\" " REJECT,
                      (unsigned)np->stub_uid);
    r = r ? r : batch_add(b, "add rule " TABLE " output meta skuid vmap @apps");
    r = r ? r
          : batch_add(b,
                      "add rule " TABLE
                      " output meta skuid %u-%u counter name \"orphan_drop\" " REJECT,
                      (unsigned)np->uid_first, (unsigned)np->uid_last);
    return r;
}

static int batch_app_add(const np_app *a, const pv_capabilities *caps, pv_buf *b)
{
    unsigned u = (unsigned)a->uid;
    int r = PV_OK;
    r = r ? r
          : batch_add(b, "add set " TABLE " a%u_v4 { type ipv4_addr ; flags timeout ; size %u ; }",
                      u, NP_SET_SIZE);
    r = r ? r
          : batch_add(b, "add set " TABLE " a%u_v6 { type ipv6_addr ; flags timeout ; size %u ; }",
                      u, NP_SET_SIZE);
    /* Whatever an earlier run left of this uid (a removal that failed) is emptied in the
     * same batch, so adding never appends to old rules or keeps old addresses. */
    r = r ? r : batch_add(b, "flush set " TABLE " a%u_v4", u);
    r = r ? r : batch_add(b, "flush set " TABLE " a%u_v6", u);
    r = r ? r : batch_add(b, "add counter " TABLE " a%u_drop", u);
    r = r ? r : batch_add(b, "add chain " TABLE " a%u", u);
    r = r ? r : batch_add(b, "flush chain " TABLE " a%u", u);
    /* Its own connections go on once open (even after a resolved address timed out). Its
     * own: the connection tracking entry carries the uid that opened it (ct mark, set by the
     * accepting rules below), since an entry is not tied to a socket: a UDP entry of a
     * closed socket lives on, and another uid binding the freed port would match it (the
     * stub's upstream queries, another app's flows). */
    r = r ? r
          : batch_add(b,
                      "add rule " TABLE
                      " a%u ct state established,related ct direction original ct mark %u accept",
                      u, u);
    if (r == PV_OK && caps->n_tcp_server_ports > 0) {
        /* Answers only on the ports it declared: a port it bound anyway (UDP, or where
         * Landlock cannot restrict binding) cannot be used to talk back. */
        char ports[PV_MAX_TCP_PORTS * 7 + 1];
        size_t n = 0;
        for (size_t i = 0; i < caps->n_tcp_server_ports && i < PV_MAX_TCP_PORTS; i++) {
            n += (size_t)snprintf(ports + n, sizeof(ports) - n, "%s%u", i ? ", " : "",
                                  caps->tcp_server_ports[i]);
        }
        r = batch_add(b, "add rule " TABLE " a%u ct direction reply tcp sport { %s } accept", u,
                      ports);
    }
    r = r ? r
          : batch_add(
                b,
                "add rule " TABLE
                " a%u ip daddr %s meta l4proto { tcp, udp } th dport 53 ct mark set %u accept",
                u, a->stub_addr, u);
    r = r ? r
          : batch_add(b, "add rule " TABLE " a%u ip daddr @a%u_v4 ct mark set %u accept", u, u, u);
    r = r ? r
          : batch_add(b, "add rule " TABLE " a%u ip6 daddr @a%u_v6 ct mark set %u accept", u, u, u);
    r = r ? r : batch_add(b, "add rule " TABLE " a%u counter name \"a%u_drop\" " REJECT, u, u);
    char text[INET6_ADDRSTRLEN];
    for (size_t i = 0; r == PV_OK && i < a->n_static4; i++) {
        r = addr_text(AF_INET, &a->static4[i], text, sizeof(text))
                ? batch_add(b, "add element " TABLE " a%u_v4 { %s }", u, text)
                : PV_ERR_INTERNAL;
    }
    for (size_t i = 0; r == PV_OK && i < a->n_static6; i++) {
        r = addr_text(AF_INET6, &a->static6[i], text, sizeof(text))
                ? batch_add(b, "add element " TABLE " a%u_v6 { %s }", u, text)
                : PV_ERR_INTERNAL;
    }
    r = r ? r : batch_add(b, "add element " TABLE " apps { %u : jump a%u }", u, u);
    return r;
}

static int batch_app_remove(const np_app *a, pv_buf *b)
{
    unsigned u = (unsigned)a->uid;
    int r = PV_OK;
    r = r ? r : batch_add(b, "delete element " TABLE " apps { %u }", u);
    r = r ? r : batch_add(b, "flush chain " TABLE " a%u", u);
    r = r ? r : batch_add(b, "delete chain " TABLE " a%u", u);
    r = r ? r : batch_add(b, "delete set " TABLE " a%u_v4", u);
    r = r ? r : batch_add(b, "delete set " TABLE " a%u_v6", u);
    r = r ? r : batch_add(b, "delete counter " TABLE " a%u_drop", u);
    return r;
}

/* ==== the stub process ==== */

static void stub_kill(np_ctx *np)
{
    if (np->ctl_fd >= 0) {
        close(np->ctl_fd);
        np->ctl_fd = -1;
    }
    if (np->stub_pid > 0) {
        kill(np->stub_pid, SIGKILL);
        while (waitpid(np->stub_pid, NULL, 0) < 0 && errno == EINTR) {
        }
        np->stub_pid = -1;
    }
}

/* Tells the stub about an app and hands it the app's sockets. */
static int stub_send_app(np_ctx *np, const np_app *a, pv_err *e)
{
    uint8_t *msg = malloc(NP_MSG_MAX);
    if (msg == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    size_t n = 0;
    msg[n++] = NP_MSG_APP_ADD;
    msg[n++] = (uint8_t)(a->index >> 8);
    msg[n++] = (uint8_t)a->index;
    for (int s = 24; s >= 0; s -= 8) {
        msg[n++] = (uint8_t)(a->generation >> s);
    }
    msg[n++] = (uint8_t)a->names.n;
    for (size_t i = 0; i < a->names.n; i++) {
        size_t len = strlen(a->names.v[i]); /* <= PV_MAX_HOSTNAME, checked at add */
        msg[n++] = (uint8_t)len;
        memcpy(msg + n, a->names.v[i], len);
        n += len;
    }
    int fds[2] = {a->udp_fd, a->tcp_fd};
    union {
        char buf[CMSG_SPACE(sizeof(fds))];
        struct cmsghdr align;
    } cm;
    memset(&cm, 0, sizeof(cm));
    struct iovec iov = {.iov_base = msg, .iov_len = n};
    struct msghdr mh = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = cm.buf,
        .msg_controllen = sizeof(cm.buf),
    };
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(fds));
    memcpy(CMSG_DATA(c), fds, sizeof(fds));
    ssize_t w = sendmsg(np->ctl_fd, &mh, MSG_NOSIGNAL);
    int err = errno;
    free(msg);
    if (w != (ssize_t)n) {
        return pv_err_sys(e, PV_ERR_IO, err, "handing app %u's sockets to the DNS stub", a->index);
    }
    return PV_OK;
}

static void stub_send_small(np_ctx *np, const uint8_t *msg, size_t n)
{
    if (np->ctl_fd >= 0 && send(np->ctl_fd, msg, n, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)n) {
        pv_warn("network policy: message to the DNS stub lost: %s", strerror(errno));
    }
}

static void stub_send_del(np_ctx *np, unsigned index, uint32_t generation)
{
    uint8_t msg[7] = {NP_MSG_APP_DEL,
                      (uint8_t)(index >> 8),
                      (uint8_t)index,
                      (uint8_t)(generation >> 24),
                      (uint8_t)(generation >> 16),
                      (uint8_t)(generation >> 8),
                      (uint8_t)generation};
    stub_send_small(np, msg, sizeof(msg));
}

static void stub_send_ack(np_ctx *np, uint32_t seq, bool ok)
{
    uint8_t msg[6] = {NP_MSG_ACK,          (uint8_t)(seq >> 24), (uint8_t)(seq >> 16),
                      (uint8_t)(seq >> 8), (uint8_t)seq,         ok ? 1 : 0};
    stub_send_small(np, msg, sizeof(msg));
}

/* Forks the stub and gives it every app. */
static int stub_start(np_ctx *np, pv_err *e)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "DNS stub: socketpair");
    }
    /* Room for a whole burst of queries' messages; a full socket loses answers, not
     * safety. */
    int sz = 1 << 20;
    (void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    (void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(sv[0]);
        close(sv[1]);
        return pv_err_sys(e, PV_ERR_IO, err, "DNS stub: fork");
    }
    if (pid == 0) {
        close(sv[0]);
        np_stub_main(sv[1], np->stub_uid, np->stub_gid, &np->upstream, np->upstream_len);
    }
    close(sv[1]);
    if (fcntl(sv[0], F_SETFL, O_NONBLOCK) != 0) {
        int err = errno;
        close(sv[0]);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return pv_err_sys(e, PV_ERR_IO, err, "DNS stub: control socket");
    }
    np->ctl_fd = sv[0];
    np->stub_pid = pid;
    for (unsigned i = 0; i < NP_MAX_APPS; i++) {
        if (np->apps[i] != NULL) {
            int r = stub_send_app(np, np->apps[i], e);
            if (r != PV_OK) {
                stub_kill(np);
                return r;
            }
        }
    }
    return PV_OK;
}

/* The stub is gone (it crashed, or seccomp killed it): start another, unless it keeps
 * dying. */
static int stub_restart(np_ctx *np, pv_err *e)
{
    int status = 0;
    pid_t pid = np->stub_pid;
    if (np->ctl_fd >= 0) {
        close(np->ctl_fd);
        np->ctl_fd = -1;
    }
    if (pid > 0) {
        /* A stub that only closed its end (taken over) would otherwise keep running and
         * keep this wait from returning. */
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        np->stub_pid = -1;
    }
    char how[48];
    if (WIFSIGNALED(status)) {
        snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(status));
    } else {
        snprintf(how, sizeof(how), "exited with %d", WEXITSTATUS(status));
    }
    time_t now = time(NULL);
    if (now - np->restart_window >= RESTART_WINDOW_S) {
        np->restart_window = now;
        np->restarts = 0;
    }
    if (++np->restarts > RESTART_MAX) {
        return pv_err_set(e, PV_ERR_IO, "DNS stub %s, and restarted too often: apps get no DNS",
                          how);
    }
    pv_warn("network policy: DNS stub %s; restarting it", how);
    int r = stub_start(np, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "DNS stub %s; restarting it", how);
    }
    return PV_OK;
}

/* Waits until the stub has closed a removed app's sockets (NP_MSG_APP_GONE), so the stub
 * address can be bound again at once; the messages that come first are applied as
 * np_dispatch would. A stub that does not answer within STUB_GONE_MS is killed and
 * restarted (a dead stub holds nothing). */
static void stub_wait_gone(np_ctx *np, unsigned index, uint32_t generation)
{
    pv_err e;
    pv_err_clear(&e);
    int64_t deadline = pv_monotonic_ms() + STUB_GONE_MS;
    uint8_t *msg = malloc(NP_MSG_MAX);
    while (msg != NULL && np->ctl_fd >= 0) {
        int64_t left = deadline - pv_monotonic_ms();
        if (left <= 0) {
            pv_warn("network policy: the DNS stub did not release app %u's sockets", index);
            kill(np->stub_pid, SIGKILL);
            if (stub_restart(np, &e) != PV_OK) {
                pv_error("%s", pv_err_msg(&e));
            }
            break;
        }
        struct pollfd p = {.fd = np->ctl_fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0) {
            continue;
        }
        ssize_t n = recv(np->ctl_fd, msg, NP_MSG_MAX, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            continue;
        }
        if (n <= 0) {
            if (stub_restart(np, &e) != PV_OK) {
                pv_error("%s", pv_err_msg(&e));
            }
            break;
        }
        if (n == 7 && msg[0] == NP_MSG_APP_GONE && (unsigned)((msg[1] << 8) | msg[2]) == index &&
            get32(msg + 3) == generation) {
            break;
        }
        if ((size_t)n <= NP_MSG_MAX && np_stub_message(np, msg, (size_t)n, &e) != PV_OK) {
            pv_warn("%s", pv_err_msg(&e));
        }
    }
    free(msg);
}

/* ==== setup ==== */

/* The first usable nameserver of /etc/resolv.conf (port 53), else 127.0.0.1. */
static void default_upstream(struct sockaddr_storage *ss, socklen_t *len)
{
    uint8_t *data = NULL;
    size_t n = 0;
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof(*ss));
    s4->sin_family = AF_INET;
    s4->sin_port = htons(53);
    s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *len = sizeof(*s4);
    if (pv_fs_read_file(RESOLV_CONF, 64 * 1024, &data, &n, NULL) != PV_OK) {
        return;
    }
    const char *p = (const char *)data, *end = p + n;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *next = eol != NULL ? eol + 1 : end;
        while (p < next && (*p == ' ' || *p == '\t')) {
            p++;
        }
        if ((size_t)(next - p) > 11 && memcmp(p, "nameserver", 10) == 0 &&
            (p[10] == ' ' || p[10] == '\t')) {
            p += 11;
            while (p < next && (*p == ' ' || *p == '\t')) {
                p++;
            }
            char tok[INET6_ADDRSTRLEN];
            size_t t = 0;
            while (p + t < next && t < sizeof(tok) - 1 && p[t] != ' ' && p[t] != '\t' &&
                   p[t] != '\n' && p[t] != '\r') {
                tok[t] = p[t];
                t++;
            }
            tok[t] = '\0';
            struct in_addr a4;
            struct in6_addr a6;
            if (inet_pton(AF_INET, tok, &a4) == 1) {
                s4->sin_addr = a4;
                break;
            }
            if (inet_pton(AF_INET6, tok, &a6) == 1) {
                memset(ss, 0, sizeof(*ss));
                s6->sin6_family = AF_INET6;
                s6->sin6_port = htons(53);
                s6->sin6_addr = a6;
                *len = sizeof(*s6);
                break;
            }
        }
        p = next;
    }
    free(data);
}

static int check_config(const np_config *cfg, np_ctx *np, pv_err *e)
{
    np->uid_first = cfg->app_uid_first;
    np->uid_last = cfg->app_uid_last;
    if (np->uid_first == 0 && np->uid_last == 0) {
        np->uid_first = NP_APP_UID_FIRST;
        np->uid_last = NP_APP_UID_FIRST + NP_APP_UID_COUNT - 1;
    }
    if (np->uid_first == 0 || np->uid_last < np->uid_first) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "network policy: bad app uid range %u-%u",
                          (unsigned)np->uid_first, (unsigned)np->uid_last);
    }
    if (cfg->stub_uid == 0 || cfg->stub_gid == 0 ||
        (cfg->stub_uid >= np->uid_first && cfg->stub_uid <= np->uid_last)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "network policy: the DNS stub needs its own uid and gid (not root, "
                          "not an app's): %u/%u",
                          (unsigned)cfg->stub_uid, (unsigned)cfg->stub_gid);
    }
    np->stub_uid = cfg->stub_uid;
    np->stub_gid = cfg->stub_gid;
    if (cfg->upstream_len == 0) {
        default_upstream(&np->upstream, &np->upstream_len);
    } else if (cfg->upstream.ss_family == AF_INET &&
               cfg->upstream_len >= sizeof(struct sockaddr_in)) {
        memcpy(&np->upstream, &cfg->upstream, sizeof(struct sockaddr_in));
        np->upstream_len = sizeof(struct sockaddr_in);
        struct sockaddr_in *s = (struct sockaddr_in *)&np->upstream;
        if (s->sin_port == 0) {
            s->sin_port = htons(53);
        }
    } else if (cfg->upstream.ss_family == AF_INET6 &&
               cfg->upstream_len >= sizeof(struct sockaddr_in6)) {
        memcpy(&np->upstream, &cfg->upstream, sizeof(struct sockaddr_in6));
        np->upstream_len = sizeof(struct sockaddr_in6);
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&np->upstream;
        if (s->sin6_port == 0) {
            s->sin6_port = htons(53);
        }
    } else {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "network policy: the upstream resolver is not "
                          "an IPv4 or IPv6 address");
    }
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&np->upstream;
    if (np->upstream.ss_family == AF_INET &&
        (ntohl(s4->sin_addr.s_addr) & 0xffff0000u) == STUB_ADDR_BASE) {
        /* a stub address as the upstream: the stub would ask itself */
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "network policy: the upstream resolver is a DNS stub address");
    }
    return PV_OK;
}

int np_init(const np_config *cfg, np_ctx **out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    np_ctx *np = NULL;
    pv_buf *b = NULL;
    *out = NULL;
    if ((np = calloc(1, sizeof(*np))) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    np->ctl_fd = -1;
    np->stub_pid = -1;
    if ((r = check_config(cfg, np, e)) != PV_OK) {
        goto out;
    }
    if ((np->nft = nft_ctx_new(NFT_CTX_DEFAULT)) == NULL) {
        r = pv_err_set(e, PV_ERR_IO, "network policy: libnftables context");
        goto out;
    }
    if (nft_ctx_buffer_output(np->nft) != 0 || nft_ctx_buffer_error(np->nft) != 0) {
        r = pv_err_set(e, PV_ERR_IO, "network policy: libnftables buffers");
        goto out;
    }
    if ((b = pv_buf_new(BATCH_MAX)) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((r = batch_base(np, b)) != PV_OK) {
        r = pv_err_set(e, r, "network policy: building the base rules");
        goto out;
    }
    if ((r = nft_run(np, b, "network policy: creating table " TABLE, e)) != PV_OK) {
        goto out;
    }
    np->table_made = true;
    if ((r = stub_start(np, e)) != PV_OK) {
        goto out;
    }
    *out = np;
    np = NULL;
    r = PV_OK;
out:
    pv_buf_free(b);
    np_free(np);
    return r;
}

static void app_free(np_app *a)
{
    if (a == NULL) {
        return;
    }
    if (a->udp_fd >= 0) {
        close(a->udp_fd);
    }
    if (a->tcp_fd >= 0) {
        close(a->tcp_fd);
    }
    pv_strlist_free(&a->names);
    free(a);
}

void np_free(np_ctx *np)
{
    if (np == NULL) {
        return;
    }
    stub_kill(np);
    for (unsigned i = 0; i < NP_MAX_APPS; i++) {
        app_free(np->apps[i]);
        np->apps[i] = NULL;
    }
    if (np->table_made) {
        pv_buf *b = pv_buf_new(1024);
        pv_err e;
        pv_err_clear(&e);
        if (b == NULL || batch_add(b, "delete table " TABLE) != PV_OK ||
            nft_run(np, b, "network policy: deleting table " TABLE, &e) != PV_OK) {
            /* Left behind, it still drops what it dropped: the next np_init replaces it. */
            pv_warn("network policy: table " TABLE " left in place");
        }
        pv_buf_free(b);
    }
    if (np->nft != NULL) {
        nft_ctx_free(np->nft);
    }
    free(np);
}

int np_fd(const np_ctx *np)
{
    return np->ctl_fd;
}

/* ==== apps ==== */

static int bind_stub_socket(const np_app *a, int type, int *out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    *out = -1;
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(53)};
    sin.sin_addr.s_addr = htonl(STUB_ADDR_BASE + a->index + 1);
    int one = 1;
    const char *what = type == SOCK_STREAM ? "TCP" : "UDP";
    if (fd < 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "DNS stub %s socket", what);
        goto out;
    }
    if (type == SOCK_STREAM && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "DNS stub %s socket", what);
        goto out;
    }
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "binding %s:53/%s", a->stub_addr, what);
        goto out;
    }
    if (type == SOCK_STREAM && listen(fd, STUB_BACKLOG) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "listening on %s:53/tcp", a->stub_addr);
        goto out;
    }
    /* The stub shares the open file, so this is its mode too: it never blocks. */
    if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "DNS stub %s socket", what);
        goto out;
    }
    *out = fd;
    fd = -1;
    r = PV_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    return r;
}

/* Sorts AllowedConnections into static addresses and host names. */
static int app_connections(np_app *a, const pv_capabilities *caps, pv_err *e)
{
    if (caps->allowed_connections.n > PV_MAX_CONNECTIONS) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "more than %d allowed connections",
                          PV_MAX_CONNECTIONS);
    }
    for (size_t i = 0; i < caps->allowed_connections.n; i++) {
        const char *s = caps->allowed_connections.v[i];
        int r;
        if (inet_pton(AF_INET, s, &a->static4[a->n_static4]) == 1) {
            a->n_static4++;
        } else if (inet_pton(AF_INET6, s, &a->static6[a->n_static6]) == 1) {
            a->n_static6++;
        } else if ((r = pv_manifest_check_hostname(s, e)) != PV_OK) {
            return pv_err_wrap(e, PV_ERR_INVALID_ARG, "allowed connection %zu", i);
        } else if (pv_strlist_add(&a->names, s) != PV_OK) {
            return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        }
    }
    if (caps->n_tcp_server_ports > PV_MAX_TCP_PORTS) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "more than %d TCP server ports", PV_MAX_TCP_PORTS);
    }
    return PV_OK;
}

int np_app_add(np_ctx *np, uid_t uid, unsigned index, const pv_capabilities *caps, np_app **out,
               pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    np_app *a = NULL;
    pv_buf *b = NULL;
    *out = NULL;
    if (index >= NP_MAX_APPS || uid < np->uid_first || uid > np->uid_last) {
        r = pv_err_set(e, PV_ERR_INVALID_ARG,
                       "network policy: app index %u or uid %u out of range (uids %u-%u)", index,
                       (unsigned)uid, (unsigned)np->uid_first, (unsigned)np->uid_last);
        goto out;
    }
    for (unsigned i = 0; i < NP_MAX_APPS; i++) {
        if (np->apps[i] != NULL && (i == index || np->apps[i]->uid == uid)) {
            r = pv_err_set(e, PV_ERR_EXISTS, "network policy: app index %u or uid %u in use", index,
                           (unsigned)uid);
            goto out;
        }
    }
    if ((a = calloc(1, sizeof(*a))) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    a->udp_fd = a->tcp_fd = -1;
    a->uid = uid;
    a->index = index;
    a->generation = ++np->next_generation;
    struct in_addr sa = {.s_addr = htonl(STUB_ADDR_BASE + index + 1)};
    if (!addr_text(AF_INET, &sa, a->stub_addr, sizeof(a->stub_addr))) {
        goto out;
    }
    if ((r = app_connections(a, caps, e)) != PV_OK) {
        r = pv_err_wrap(e, r, "network policy: app uid %u", (unsigned)uid);
        goto out;
    }
    if ((r = bind_stub_socket(a, SOCK_DGRAM, &a->udp_fd, e)) != PV_OK ||
        (r = bind_stub_socket(a, SOCK_STREAM, &a->tcp_fd, e)) != PV_OK) {
        r = pv_err_wrap(e, r, "network policy: app uid %u", (unsigned)uid);
        goto out;
    }
    if ((b = pv_buf_new(BATCH_MAX)) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((r = batch_app_add(a, caps, b)) != PV_OK) {
        r = pv_err_set(e, r, "network policy: app uid %u: building its rules", (unsigned)uid);
        goto out;
    }
    char what[64];
    snprintf(what, sizeof(what), "network policy: adding app uid %u", (unsigned)uid);
    if ((r = nft_run(np, b, what, e)) != PV_OK) {
        goto out;
    }
    np->apps[index] = a;
    /* The rules are in place; without the stub the app only lacks DNS until np_dispatch
     * restarts it. */
    if (np->ctl_fd >= 0 && stub_send_app(np, a, e) != PV_OK) {
        pv_warn("%s", pv_err_msg(e));
        pv_err_clear(e);
    }
    *out = a;
    a = NULL;
    r = PV_OK;
out:
    pv_buf_free(b);
    app_free(a);
    return r;
}

void np_app_remove(np_ctx *np, np_app *a)
{
    if (a == NULL) {
        return;
    }
    pv_buf *b = pv_buf_new(4096);
    pv_err e;
    pv_err_clear(&e);
    char what[64];
    snprintf(what, sizeof(what), "network policy: removing app uid %u", (unsigned)a->uid);
    if (b == NULL || batch_app_remove(a, b) != PV_OK || nft_run(np, b, what, &e) != PV_OK) {
        /* Its uid keeps its chain: still confined, never more open. */
        pv_error("%s: %s", what, b == NULL ? "out of memory" : pv_err_msg(&e));
    }
    pv_buf_free(b);
    if (a->index < NP_MAX_APPS && np->apps[a->index] == a) {
        np->apps[a->index] = NULL;
    }
    unsigned index = a->index;
    uint32_t generation = a->generation;
    app_free(a); /* our copies of its sockets: the stub holds the others */
    stub_send_del(np, index, generation);
    stub_wait_gone(np, index, generation);
}

const char *np_app_stub_address(const np_app *a)
{
    return a->stub_addr;
}

uint32_t np_app_generation(const np_app *a)
{
    return a->generation;
}

static int read_counter(np_ctx *np, const np_app *a, uint64_t *packets, uint64_t *bytes, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    json_t *root = NULL;
    pv_buf *b = pv_buf_new(256);
    unsigned flags = nft_ctx_output_get_flags(np->nft);
    nft_ctx_output_set_flags(np->nft, flags | NFT_CTX_OUTPUT_JSON);
    (void)nft_ctx_get_output_buffer(np->nft);
    if (b == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((r = batch_add(b, "list counter " TABLE " a%u_drop", (unsigned)a->uid)) != PV_OK ||
        (r = nft_run(np, b, "network policy: reading a drop counter", e)) != PV_OK) {
        goto out;
    }
    const char *text = nft_ctx_get_output_buffer(np->nft);
    json_error_t je;
    root = json_loads(text != NULL ? text : "", JSON_REJECT_DUPLICATES, &je);
    json_t *items = json_object_get(root, "nftables");
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        json_t *c = json_object_get(it, "counter");
        json_t *p = json_object_get(c, "packets"), *y = json_object_get(c, "bytes");
        if (json_is_integer(p) && json_is_integer(y) && json_integer_value(p) >= 0 &&
            json_integer_value(y) >= 0) {
            *packets = (uint64_t)json_integer_value(p);
            *bytes = (uint64_t)json_integer_value(y);
            r = PV_OK;
            goto out;
        }
    }
    r = pv_err_set(e, PV_ERR_IO, "network policy: nftables listed no counter a%u_drop",
                   (unsigned)a->uid);
out:
    nft_ctx_output_set_flags(np->nft, flags);
    json_decref(root);
    pv_buf_free(b);
    return r;
}

int np_app_stats_get(np_ctx *np, const np_app *a, np_app_stats *out, pv_err *e)
{
    memset(out, 0, sizeof(*out));
    np_app_stats s = {.refused_queries = a->refused, .addresses_added = a->added};
    int r = read_counter(np, a, &s.dropped_packets, &s.dropped_bytes, e);
    if (r == PV_OK) {
        *out = s;
    }
    return r;
}

/* ==== the stub's messages ==== */

size_t np_msg_addrs_encode(uint32_t seq, unsigned index, uint32_t generation,
                           const np_msg_addr *addrs, size_t n, uint8_t out[NP_MSG_MAX])
{
    if (n == 0 || n > NP_MSG_MAX_ADDRS || index > 0xffff) {
        return 0;
    }
    size_t o = 0;
    out[o++] = NP_MSG_ADDRS;
    for (int s = 24; s >= 0; s -= 8) {
        out[o++] = (uint8_t)(seq >> s);
    }
    out[o++] = (uint8_t)(index >> 8);
    out[o++] = (uint8_t)index;
    for (int s = 24; s >= 0; s -= 8) {
        out[o++] = (uint8_t)(generation >> s);
    }
    out[o++] = (uint8_t)n;
    for (size_t i = 0; i < n; i++) {
        out[o++] = addrs[i].family == AF_INET6 ? 6 : 4;
        memcpy(out + o, addrs[i].addr, 16);
        o += 16;
        for (int s = 24; s >= 0; s -= 8) {
            out[o++] = (uint8_t)(addrs[i].ttl >> s);
        }
    }
    return o;
}

/* The app a message names, when it still exists as the same np_app_add. */
static np_app *msg_app(np_ctx *np, const uint8_t *p, pv_err *e)
{
    unsigned index = (unsigned)((p[0] << 8) | p[1]);
    uint32_t gen = get32(p + 2);
    if (index >= NP_MAX_APPS || np->apps[index] == NULL || np->apps[index]->generation != gen) {
        pv_err_set(e, PV_ERR_NOT_FOUND, "DNS stub names app %u/%u, which does not exist", index,
                   gen);
        return NULL;
    }
    return np->apps[index];
}

static bool is_static(const np_app *a, int family, const uint8_t *addr)
{
    if (family == AF_INET) {
        for (size_t i = 0; i < a->n_static4; i++) {
            if (memcmp(&a->static4[i], addr, 4) == 0) {
                return true;
            }
        }
        return false;
    }
    for (size_t i = 0; i < a->n_static6; i++) {
        if (memcmp(&a->static6[i], addr, 16) == 0) {
            return true;
        }
    }
    return false;
}

/* One address of an NP_MSG_ADDRS, checked. The stub clamps TTLs, so one outside the
 * range means it is not behaving: refused, as is an address no host can be reached at. */
static int check_addr(const uint8_t *p, np_msg_addr *out, pv_err *e)
{
    static const uint8_t zero[16];
    memset(out, 0, sizeof(*out));
    out->ttl = get32(p + 17);
    if (p[0] == 4) {
        out->family = AF_INET;
        if (memcmp(p + 5, zero, 12) != 0) {
            return pv_err_set(e, PV_ERR_FORMAT, "IPv4 address with trailing bytes");
        }
        uint8_t first = p[1];
        bool bcast = p[1] == 255 && p[2] == 255 && p[3] == 255 && p[4] == 255;
        if (first == 0 || first >= 224 || bcast) {
            return pv_err_set(e, PV_ERR_FORMAT, "IPv4 address %u.%u.%u.%u is not a host's", p[1],
                              p[2], p[3], p[4]);
        }
    } else if (p[0] == 6) {
        out->family = AF_INET6;
        if (memcmp(p + 1, zero, 16) == 0 || p[1] == 0xff) {
            return pv_err_set(e, PV_ERR_FORMAT, "IPv6 address is unspecified or multicast");
        }
    } else {
        return pv_err_set(e, PV_ERR_FORMAT, "address family %u", p[0]);
    }
    if (out->ttl < NP_MIN_TTL || out->ttl > NP_MAX_TTL) {
        return pv_err_set(e, PV_ERR_FORMAT, "TTL %u outside %u..%u", out->ttl, NP_MIN_TTL,
                          NP_MAX_TTL);
    }
    memcpy(out->addr, p + 1, 16);
    return PV_OK;
}

/* Adds resolved addresses for their TTL. An element's timeout cannot be changed in place,
 * so each is added (a no-op when present), deleted and added again in the same
 * transaction; addresses the manifest lists are left alone (they never expire). */
static int apply_addrs(np_ctx *np, np_app *a, const np_msg_addr *addrs, size_t n, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    size_t added = 0;
    pv_buf *b = pv_buf_new(BATCH_MAX);
    if (b == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    unsigned u = (unsigned)a->uid;
    for (size_t i = 0; i < n; i++) {
        const np_msg_addr *x = &addrs[i];
        if (is_static(a, x->family, x->addr)) {
            continue;
        }
        char text[INET6_ADDRSTRLEN];
        if (!addr_text(x->family, x->addr, text, sizeof(text))) {
            goto out;
        }
        const char *set = x->family == AF_INET ? "v4" : "v6";
        if ((r = batch_add(b, "add element " TABLE " a%u_%s { %s timeout %us }", u, set, text,
                           x->ttl)) != PV_OK ||
            (r = batch_add(b, "delete element " TABLE " a%u_%s { %s }", u, set, text)) != PV_OK ||
            (r = batch_add(b, "add element " TABLE " a%u_%s { %s timeout %us }", u, set, text,
                           x->ttl)) != PV_OK) {
            r = pv_err_set(e, r, "network policy: building an update");
            goto out;
        }
        added++;
    }
    if (added > 0) {
        char what[64];
        snprintf(what, sizeof(what), "network policy: app uid %u: resolved addresses", u);
        if ((r = nft_run(np, b, what, e)) != PV_OK) {
            goto out;
        }
    }
    a->added += added;
    r = PV_OK;
out:
    pv_buf_free(b);
    return r;
}

static int msg_addrs(np_ctx *np, const uint8_t *p, size_t len, pv_err *e)
{
    if (len < 12) {
        return pv_err_set(e, PV_ERR_FORMAT, "DNS stub: short address message");
    }
    uint32_t seq = get32(p + 1);
    int r = PV_ERR_INTERNAL;
    np_msg_addr addrs[NP_MSG_MAX_ADDRS];
    size_t n = p[11];
    np_app *a = msg_app(np, p + 5, e);
    if (a == NULL) {
        r = PV_ERR_NOT_FOUND;
        goto out;
    }
    if (n == 0 || n > NP_MSG_MAX_ADDRS || len != 12 + n * NP_MSG_ADDR_LEN) {
        r = pv_err_set(e, PV_ERR_FORMAT, "DNS stub: address message of %zu bytes for %zu", len, n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((r = check_addr(p + 12 + i * NP_MSG_ADDR_LEN, &addrs[i], e)) != PV_OK) {
            r = pv_err_wrap(e, r, "DNS stub: app uid %u: address %zu", (unsigned)a->uid, i);
            goto out;
        }
    }
    r = apply_addrs(np, a, addrs, n, e);
out:
    stub_send_ack(np, seq, r == PV_OK);
    return r;
}

static int msg_refused(np_ctx *np, const uint8_t *p, size_t len, pv_err *e)
{
    if (len < 14 || len > 13 + DNS_MAX_NAME) {
        return pv_err_set(e, PV_ERR_FORMAT, "DNS stub: refusal message of %zu bytes", len);
    }
    np_app *a = msg_app(np, p + 1, e);
    if (a == NULL) {
        return PV_ERR_NOT_FOUND;
    }
    uint32_t count = get32(p + 7);
    char name[DNS_MAX_NAME * 4 + 2];
    if (count == 0 || !dns_name_text(p + 13, len - 13, name, sizeof(name))) {
        return pv_err_set(e, PV_ERR_FORMAT, "DNS stub: malformed refusal message");
    }
    a->refused += count;
    /* One line per app every REFUSED_LOG_S at most: the count says the rest. */
    time_t now = time(NULL);
    if (now >= a->refused_log_at) {
        a->refused_log_at = now + REFUSED_LOG_S;
        pv_info("network policy: app uid %u asked for %s (type %u), which it does not list "
                "(%" PRIu64 " such queries so far)",
                (unsigned)a->uid, name, (unsigned)((p[11] << 8) | p[12]), a->refused);
    }
    return PV_OK;
}

int np_stub_message(np_ctx *np, const uint8_t *p, size_t len, pv_err *e)
{
    if (len == 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "DNS stub: empty message");
    }
    switch (p[0]) {
    case NP_MSG_ADDRS:
        return msg_addrs(np, p, len, e);
    case NP_MSG_REFUSED:
        return msg_refused(np, p, len, e);
    case NP_MSG_APP_GONE:
        /* the answer to an np_app_remove that stopped waiting for it */
        return len == 7 ? PV_OK : pv_err_set(e, PV_ERR_FORMAT, "DNS stub: bad app-gone message");
    default:
        return pv_err_set(e, PV_ERR_FORMAT, "DNS stub: unknown message type %u", p[0]);
    }
}

int np_dispatch(np_ctx *np, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    if (np->ctl_fd < 0) {
        return pv_err_set(e, PV_ERR_IO, "network policy: no DNS stub");
    }
    uint8_t *msg = malloc(NP_MSG_MAX);
    if (msg == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    /* MSG_TRUNC: a longer packet reports its real length and is refused whole. */
    ssize_t n = recv(np->ctl_fd, msg, NP_MSG_MAX, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        r = PV_OK;
    } else if (n <= 0) {
        r = stub_restart(np, e);
    } else if ((size_t)n > NP_MSG_MAX) {
        r = pv_err_set(e, PV_ERR_FORMAT, "DNS stub: message of %zd bytes", n);
    } else {
        r = np_stub_message(np, msg, (size_t)n, e);
    }
    free(msg);
    return r;
}
