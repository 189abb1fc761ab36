/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-app DNS stub: the one process of the runtime that parses DNS from apps and from
 * the network, so it runs with nothing: its own uid, no capabilities, no_new_privs, no
 * files, and a seccomp allow-list of the few socket calls it makes. What it learns goes to
 * pavise-netd as control messages that pavise-netd checks (netpolicy.c); it cannot change the
 * firewall itself.
 *
 * One thread, one epoll set: the control socket, each app's UDP and TCP sockets, TCP
 * clients, and one connected UDP socket per query in flight upstream (a fresh socket is a
 * fresh random source port; the ID is random too). Every queue is bounded: queries in
 * flight per app and in all, TCP clients per app and in all, message sizes, and time
 * (upstream and pavise-netd's acknowledgement 2 s each, then SERVFAIL; idle TCP clients 10 s).
 */
#include "netpolicy.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pavise/platform.h"

#include <seccomp.h>

#include "dnsmsg.h"

#define CTL_FD           3
#define MAX_PENDING      256
#define APP_PENDING      16
#define MAX_CONNS        64
#define APP_CONNS        4
#define UPSTREAM_MS      2000
#define ACK_MS           2000
#define CONN_IDLE_MS     10000
#define MAX_EVENTS       64
#define UDP_BURST        16
#define CTL_BURST        16
#define REFUSED_PER_S    10
#define STUB_NOFILE      4096
#define EXIT_SETUP       70
#define EXIT_LOOP        71
#define EXIT_PARENT_GONE 0

/* Every address the app is sent is reported, or it could be sent one it cannot reach. */
_Static_assert(NP_MSG_MAX_ADDRS >= DNS_MAX_ADDRS, "an answer's addresses fit one message");

enum ev_kind { EV_CTL = 1, EV_UDP, EV_LISTEN, EV_CONN, EV_UPSTREAM };

typedef struct sapp {
    uint32_t serial;
    uint32_t generation;
    unsigned index;
    int udp_fd, tcp_fd;
    char **names;
    size_t n_names;
    unsigned n_pending, n_conns;
    uint32_t unreported; /* refusals not yet told to pavise-netd */
    int64_t refused_window;
    unsigned refused_sent;
} sapp;

/* Where an answer goes: back to a UDP client's address, or into a TCP client's buffer. */
typedef struct target {
    bool tcp;
    unsigned conn;
    uint32_t conn_serial;
    struct sockaddr_storage from;
    socklen_t from_len;
} target;

enum conn_state { CONN_READ, CONN_WAIT, CONN_WRITE };

typedef struct conn {
    uint32_t serial; /* 0: free */
    unsigned app;
    int fd;
    enum conn_state state;
    uint8_t *in, *out; /* 2 + DNS_MAX_MSG each */
    size_t in_len, out_len, out_off;
    int64_t deadline;
} conn;

enum pend_state { PEND_UPSTREAM, PEND_ACK };

typedef struct pending {
    uint32_t serial; /* 0: free */
    unsigned app;
    uint32_t app_serial;
    enum pend_state state;
    int fd; /* the upstream socket, while PEND_UPSTREAM */
    uint16_t upstream_id;
    dns_query q; /* the app's query */
    target to;
    uint8_t *resp; /* the upstream's response, while PEND_ACK */
    size_t resp_len;
    uint32_t ack_seq;
    int64_t deadline;
    uint32_t ttl_cap; /* the shortest set entry made from this answer (0: none) */
} pending;

static struct stub {
    int ep;
    struct sockaddr_storage upstream;
    socklen_t upstream_len;
    uint32_t next_serial;
    uint32_t next_seq;
    unsigned n_pending, n_conns;
    sapp *apps[NP_MAX_APPS];
    conn conns[MAX_CONNS];
    pending pend[MAX_PENDING];
    uint8_t buf[DNS_MAX_MSG + 1];
    uint8_t ctl[NP_MSG_MAX];
} S;

static uint32_t new_serial(void)
{
    if (++S.next_serial == 0) {
        S.next_serial = 1;
    }
    return S.next_serial;
}

static uint64_t ev_key(enum ev_kind kind, unsigned slot, uint32_t serial)
{
    return ((uint64_t)kind << 56) | ((uint64_t)slot << 32) | serial;
}

static int ep_set(int op, int fd, uint32_t events, uint64_t key)
{
    struct epoll_event ev = {.events = events, .data.u64 = key};
    return epoll_ctl(S.ep, op, fd, &ev);
}

/* Removes fd from the set before closing it: an app's sockets are shared with pavise-netd,
 * so closing our copy alone would leave them registered. */
static void ep_close(int fd)
{
    if (fd >= 0) {
        (void)epoll_ctl(S.ep, EPOLL_CTL_DEL, fd, NULL);
        close(fd);
    }
}

static void ctl_send(const uint8_t *p, size_t n)
{
    /* Non-blocking: if pavise-netd is behind, the message is lost and the query fails, but
     * the stub never stalls on it. */
    (void)send(CTL_FD, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* ==== TCP clients ==== */

static void conn_close(unsigned i)
{
    conn *c = &S.conns[i];
    if (c->serial == 0) {
        return;
    }
    ep_close(c->fd);
    free(c->in);
    free(c->out);
    if (S.apps[c->app] != NULL && S.apps[c->app]->n_conns > 0) {
        S.apps[c->app]->n_conns--;
    }
    memset(c, 0, sizeof(*c));
    S.n_conns--;
}

static void conn_flush(unsigned i, int64_t now)
{
    conn *c = &S.conns[i];
    while (c->out_off < c->out_len) {
        ssize_t n =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            (void)ep_set(EPOLL_CTL_MOD, c->fd, EPOLLOUT, ev_key(EV_CONN, i, c->serial));
            return;
        }
        if (n <= 0) {
            conn_close(i);
            return;
        }
        c->out_off += (size_t)n;
    }
    c->state = CONN_READ;
    c->out_len = c->out_off = 0;
    c->deadline = now + CONN_IDLE_MS;
    (void)ep_set(EPOLL_CTL_MOD, c->fd, EPOLLIN, ev_key(EV_CONN, i, c->serial));
}

/* ==== answers ==== */

static void deliver(const target *to, const dns_query *q, unsigned app, uint8_t *msg, size_t len)
{
    sapp *a = S.apps[app];
    if (to->tcp) {
        conn *c = &S.conns[to->conn];
        if (c->serial != to->conn_serial || c->state != CONN_WAIT || len > DNS_MAX_MSG) {
            return; /* the client left */
        }
        c->out[0] = (uint8_t)(len >> 8);
        c->out[1] = (uint8_t)len;
        memcpy(c->out + 2, msg, len);
        c->out_len = len + 2;
        c->out_off = 0;
        c->state = CONN_WRITE;
        conn_flush(to->conn, pv_monotonic_ms());
        return;
    }
    if (a == NULL) {
        return;
    }
    size_t limit = q->edns ? q->edns_size : DNS_MAX_UDP;
    uint8_t small[DNS_MAX_UDP];
    if (len > limit) {
        /* Too big for the client: the question alone with TC, so it asks again over TCP. */
        size_t n = dns_reply_build(q, true, msg[3] & 0xfu, small, sizeof(small));
        if (n == 0) {
            return;
        }
        small[2] |= DNS_FLAG_TC >> 8;
        msg = small;
        len = n;
    }
    (void)sendto(a->udp_fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL,
                 (const struct sockaddr *)&to->from, to->from_len);
}

static void reply(const target *to, const dns_query *q, unsigned app, bool with_question,
                  uint8_t rcode)
{
    uint8_t out[DNS_MAX_UDP];
    size_t n = dns_reply_build(q, with_question, rcode, out, sizeof(out));
    if (n != 0) {
        deliver(to, q, app, out, n);
    }
}

/* ==== queries in flight ==== */

static void pend_free(unsigned i)
{
    pending *p = &S.pend[i];
    if (p->serial == 0) {
        return;
    }
    ep_close(p->fd);
    free(p->resp);
    sapp *a = S.apps[p->app];
    if (a != NULL && a->serial == p->app_serial && a->n_pending > 0) {
        a->n_pending--;
    }
    memset(p, 0, sizeof(*p));
    p->fd = -1;
    S.n_pending--;
}

static bool pend_app_alive(const pending *p)
{
    return S.apps[p->app] != NULL && S.apps[p->app]->serial == p->app_serial;
}

static void pend_fail(unsigned i)
{
    pending *p = &S.pend[i];
    if (pend_app_alive(p)) {
        reply(&p->to, &p->q, p->app, true, DNS_RCODE_SERVFAIL);
    }
    pend_free(i);
}

static void pend_relay(unsigned i)
{
    pending *p = &S.pend[i];
    if (pend_app_alive(p)) {
        /* The app asked with its ID; everything else is as the upstream answered. */
        p->resp[0] = (uint8_t)(p->q.id >> 8);
        p->resp[1] = (uint8_t)p->q.id;
        if (p->to.tcp && !p->q.edns) {
            p->resp_len = dns_response_strip_opt(p->resp, p->resp_len);
        }
        if (p->ttl_cap != 0) {
            /* No record may outlive the set entry its address got in pavise-netd. */
            (void)dns_response_cap_ttl(p->resp, p->resp_len, p->ttl_cap);
        }
        deliver(&p->to, &p->q, p->app, p->resp, p->resp_len);
    }
    pend_free(i);
}

static uint32_t clamp_ttl(uint32_t ttl)
{
    return ttl < NP_MIN_TTL ? NP_MIN_TTL : ttl > NP_MAX_TTL ? NP_MAX_TTL : ttl;
}

/* The upstream answered: parse it, and either relay it now or first have pavise-netd put
 * its addresses in the app's set. */
static void upstream_read(unsigned i, int64_t now)
{
    pending *p = &S.pend[i];
    for (;;) {
        ssize_t n = recv(p->fd, S.buf, sizeof(S.buf), MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n < 0) {
            pend_fail(i); /* ICMP unreachable on the connected socket, and the like */
            return;
        }
        dns_answer ans;
        if ((size_t)n > DNS_MAX_MSG ||
            dns_response_parse(S.buf, (size_t)n, p->upstream_id, &p->q.q, &ans, NULL) != PV_OK) {
            continue; /* not the answer: wait for the real one until the deadline */
        }
        if ((p->resp = malloc((size_t)n)) == NULL) {
            pend_fail(i);
            return;
        }
        memcpy(p->resp, S.buf, (size_t)n);
        p->resp_len = (size_t)n;
        ep_close(p->fd);
        p->fd = -1;
        if (ans.n_addrs == 0 || !pend_app_alive(p)) {
            pend_relay(i);
            return;
        }
        np_msg_addr addrs[NP_MSG_MAX_ADDRS];
        size_t k = ans.n_addrs < NP_MSG_MAX_ADDRS ? ans.n_addrs : NP_MSG_MAX_ADDRS;
        for (size_t j = 0; j < k; j++) {
            memset(&addrs[j], 0, sizeof(addrs[j]));
            addrs[j].family = ans.addrs[j].family;
            memcpy(addrs[j].addr, ans.addrs[j].addr, ans.addrs[j].family == AF_INET ? 4 : 16);
            addrs[j].ttl = clamp_ttl(ans.addrs[j].ttl);
            if (p->ttl_cap == 0 || addrs[j].ttl < p->ttl_cap) {
                p->ttl_cap = addrs[j].ttl;
            }
        }
        sapp *a = S.apps[p->app];
        p->ack_seq = ++S.next_seq;
        size_t len = np_msg_addrs_encode(p->ack_seq, a->index, a->generation, addrs, k, S.ctl);
        if (len == 0 || send(CTL_FD, S.ctl, len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)len) {
            pend_fail(i);
            return;
        }
        p->state = PEND_ACK;
        p->deadline = now + ACK_MS;
        return;
    }
}

static void ack(uint32_t seq, bool ok)
{
    for (unsigned i = 0; i < MAX_PENDING; i++) {
        pending *p = &S.pend[i];
        if (p->serial != 0 && p->state == PEND_ACK && p->ack_seq == seq) {
            if (ok) {
                pend_relay(i);
            } else {
                pend_fail(i);
            }
            return;
        }
    }
}

static void forward(unsigned app, const dns_query *q, const target *to, int64_t now)
{
    sapp *a = S.apps[app];
    unsigned i = 0;
    if (a->n_pending >= APP_PENDING || S.n_pending >= MAX_PENDING) {
        reply(to, q, app, true, DNS_RCODE_SERVFAIL);
        return;
    }
    while (S.pend[i].serial != 0) {
        i++;
    }
    pending *p = &S.pend[i];
    memset(p, 0, sizeof(*p));
    p->serial = new_serial();
    p->app = app;
    p->app_serial = a->serial;
    p->q = *q;
    p->to = *to;
    p->state = PEND_UPSTREAM;
    p->deadline = now + UPSTREAM_MS;
    p->fd = socket(S.upstream.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    a->n_pending++;
    S.n_pending++;
    /* The upstream is asked for what the client can take: its EDNS size over UDP, plain
     * 512 bytes over UDP without EDNS (so the answer can be relayed as it is), and ours
     * over TCP (the OPT record is taken out again for a client that sent none). */
    uint16_t edns = 0;
    if (to->tcp) {
        edns = DNS_MAX_MSG;
    } else if (q->edns) {
        edns = q->edns_size > DNS_MAX_MSG ? DNS_MAX_MSG : q->edns_size;
    }
    uint8_t msg[DNS_MAX_UDP];
    size_t n = 0;
    if (p->fd < 0 ||
        getrandom(&p->upstream_id, sizeof(p->upstream_id), 0) != (ssize_t)sizeof(p->upstream_id)) {
        pend_fail(i);
        return;
    }
    n = dns_query_build(q, p->upstream_id, edns, msg, sizeof(msg));
    if (n == 0 || connect(p->fd, (const struct sockaddr *)&S.upstream, S.upstream_len) != 0 ||
        send(p->fd, msg, n, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)n ||
        ep_set(EPOLL_CTL_ADD, p->fd, EPOLLIN, ev_key(EV_UPSTREAM, i, p->serial)) != 0) {
        pend_fail(i);
    }
}

static bool app_lists(const sapp *a, const dns_question *q)
{
    for (size_t i = 0; i < a->n_names; i++) {
        if (dns_name_matches(q->name, q->name_len, a->names[i])) {
            return true;
        }
    }
    return false;
}

/* Tells pavise-netd about a refused name: at most REFUSED_PER_S messages a second per app, each
 * carrying the refusals not yet told, so a flood of them can neither fill the control
 * socket that other apps' answers wait on nor pavise-netd's log. */
static void report_refused(sapp *a, const dns_question *q, int64_t now)
{
    a->unreported++;
    if (now - a->refused_window >= 1000) {
        a->refused_window = now;
        a->refused_sent = 0;
    }
    if (a->refused_sent >= REFUSED_PER_S) {
        return;
    }
    uint8_t msg[13 + DNS_MAX_NAME];
    msg[0] = NP_MSG_REFUSED;
    msg[1] = (uint8_t)(a->index >> 8);
    msg[2] = (uint8_t)a->index;
    for (int s = 0; s < 4; s++) {
        msg[3 + s] = (uint8_t)(a->generation >> (24 - 8 * s));
        msg[7 + s] = (uint8_t)(a->unreported >> (24 - 8 * s));
    }
    msg[11] = (uint8_t)(q->qtype >> 8);
    msg[12] = (uint8_t)q->qtype;
    memcpy(msg + 13, q->name, q->name_len);
    ctl_send(msg, 13 + q->name_len);
    a->refused_sent++;
    a->unreported = 0;
}

/* One query from an app, over UDP or TCP. */
static void query_in(unsigned app, const uint8_t *msg, size_t len, const target *to, int64_t now)
{
    sapp *a = S.apps[app];
    uint16_t id, flags;
    if (!dns_header(msg, len, &id, &flags) || (flags & DNS_FLAG_QR) != 0) {
        return; /* nothing to answer: never answer an answer */
    }
    dns_query q;
    int r = dns_query_parse(msg, len, &q, NULL);
    if (r != PV_OK) {
        reply(to, &q, app, false, r == PV_ERR_UNSUPPORTED ? DNS_RCODE_NOTIMP : DNS_RCODE_FORMERR);
    } else if (q.q.qclass != DNS_CLASS_IN || !app_lists(a, &q.q)) {
        report_refused(a, &q.q, now);
        reply(to, &q, app, true, DNS_RCODE_REFUSED);
    } else if (q.q.qtype != DNS_TYPE_A && q.q.qtype != DNS_TYPE_AAAA) {
        /* A listed name, but only its addresses are the app's business: no data. */
        reply(to, &q, app, true, DNS_RCODE_NOERROR);
    } else {
        forward(app, &q, to, now);
    }
}

static void udp_read(unsigned app, int64_t now)
{
    for (int k = 0; k < UDP_BURST; k++) {
        target to = {.tcp = false, .from_len = sizeof(to.from)};
        ssize_t n = recvfrom(S.apps[app]->udp_fd, S.buf, sizeof(S.buf), MSG_DONTWAIT | MSG_TRUNC,
                             (struct sockaddr *)&to.from, &to.from_len);
        if (n < 0) {
            return;
        }
        if ((size_t)n <= DNS_MAX_MSG) {
            query_in(app, S.buf, (size_t)n, &to, now);
        }
        if (S.apps[app] == NULL) {
            return;
        }
    }
}

static void listen_read(unsigned app, int64_t now)
{
    sapp *a = S.apps[app];
    for (int k = 0; k < APP_CONNS; k++) {
        int fd = accept4(a->tcp_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        if (a->n_conns >= APP_CONNS || S.n_conns >= MAX_CONNS) {
            close(fd); /* over the bound: refused, so the backlog drains */
            continue;
        }
        unsigned i = 0;
        while (S.conns[i].serial != 0) {
            i++;
        }
        conn *c = &S.conns[i];
        c->in = malloc(2 + DNS_MAX_MSG);
        c->out = malloc(2 + DNS_MAX_MSG);
        c->serial = new_serial();
        if (c->in == NULL || c->out == NULL ||
            ep_set(EPOLL_CTL_ADD, fd, EPOLLIN, ev_key(EV_CONN, i, c->serial)) != 0) {
            free(c->in);
            free(c->out);
            memset(c, 0, sizeof(*c));
            close(fd);
            continue;
        }
        c->fd = fd;
        c->app = app;
        c->state = CONN_READ;
        c->deadline = now + CONN_IDLE_MS;
        a->n_conns++;
        S.n_conns++;
    }
}

/* Reads a length-prefixed query; a whole one is handled and the connection waits for its
 * answer before reading the next. */
static void conn_read(unsigned i, int64_t now)
{
    conn *c = &S.conns[i];
    size_t want = c->in_len < 2 ? 2 - c->in_len : 0;
    if (c->in_len >= 2) {
        size_t mlen = ((size_t)c->in[0] << 8) | c->in[1];
        want = mlen + 2 - c->in_len;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, want, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
    }
    if (n <= 0) {
        conn_close(i);
        return;
    }
    c->in_len += (size_t)n;
    if (c->in_len < 2) {
        return;
    }
    size_t mlen = ((size_t)c->in[0] << 8) | c->in[1];
    if (mlen < DNS_HEADER_LEN || mlen > DNS_MAX_MSG) {
        conn_close(i);
        return;
    }
    if (c->in_len < mlen + 2) {
        return;
    }
    c->state = CONN_WAIT;
    c->in_len = 0;
    (void)ep_set(EPOLL_CTL_MOD, c->fd, 0, ev_key(EV_CONN, i, c->serial));
    target to = {.tcp = true, .conn = i, .conn_serial = c->serial};
    query_in(c->app, c->in + 2, mlen, &to, now);
    if (c->serial == to.conn_serial && c->state == CONN_WAIT) {
        c->deadline = now + UPSTREAM_MS + ACK_MS + 1000;
    }
}

/* ==== control messages ==== */

static void app_del(unsigned index)
{
    sapp *a = S.apps[index];
    if (a == NULL) {
        return;
    }
    for (unsigned i = 0; i < MAX_CONNS; i++) {
        if (S.conns[i].serial != 0 && S.conns[i].app == index) {
            conn_close(i);
        }
    }
    for (unsigned i = 0; i < MAX_PENDING; i++) {
        if (S.pend[i].serial != 0 && S.pend[i].app == index) {
            pend_free(i);
        }
    }
    ep_close(a->udp_fd);
    ep_close(a->tcp_fd);
    for (size_t i = 0; i < a->n_names; i++) {
        free(a->names[i]);
    }
    free(a->names);
    free(a);
    S.apps[index] = NULL;
}

static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* NP_MSG_APP_ADD: pavise-netd is trusted, but its message is still read with bounds. Takes
 * the fds (closes them when the message is refused). */
static void app_add(const uint8_t *p, size_t len, const int fds[2])
{
    unsigned index = len >= 8 ? (unsigned)((p[1] << 8) | p[2]) : NP_MAX_APPS;
    size_t count = len >= 8 ? p[7] : 0;
    sapp *a = NULL;
    if (index < NP_MAX_APPS && count <= PV_MAX_CONNECTIONS) {
        app_del(index);
        a = calloc(1, sizeof(*a));
    }
    if (a == NULL || (count > 0 && (a->names = calloc(count, sizeof(char *))) == NULL)) {
        free(a);
        close(fds[0]);
        close(fds[1]);
        return;
    }
    a->serial = new_serial();
    a->generation = get32(p + 3);
    a->index = index;
    a->udp_fd = fds[0];
    a->tcp_fd = fds[1];
    S.apps[index] = a;
    size_t off = 8;
    for (size_t i = 0; i < count; i++) {
        size_t n = off < len ? p[off] : 0;
        if (n == 0 || n > PV_MAX_HOSTNAME || n > len - off - 1 ||
            (a->names[i] = strndup((const char *)p + off + 1, n)) == NULL) {
            app_del(index);
            return;
        }
        a->n_names++;
        off += 1 + n;
    }
    if (off != len || ep_set(EPOLL_CTL_ADD, a->udp_fd, EPOLLIN, ev_key(EV_UDP, index, a->serial)) ||
        ep_set(EPOLL_CTL_ADD, a->tcp_fd, EPOLLIN, ev_key(EV_LISTEN, index, a->serial))) {
        app_del(index);
    }
}

static void ctl_read(void)
{
    for (int k = 0; k < CTL_BURST; k++) {
        int fds[2] = {-1, -1};
        size_t nfds = 0;
        union {
            char buf[CMSG_SPACE(2 * sizeof(int))];
            struct cmsghdr align;
        } cm;
        struct iovec iov = {.iov_base = S.ctl, .iov_len = sizeof(S.ctl)};
        struct msghdr mh = {
            .msg_iov = &iov,
            .msg_iovlen = 1,
            .msg_control = cm.buf,
            .msg_controllen = sizeof(cm.buf),
        };
        ssize_t n = recvmsg(CTL_FD, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            return;
        }
        if (n <= 0) {
            _exit(EXIT_PARENT_GONE); /* pavise-netd is gone: so are we */
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                size_t m = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t j = 0; j < m; j++) {
                    int fd;
                    memcpy(&fd, CMSG_DATA(c) + j * sizeof(int), sizeof(fd));
                    if (nfds < 2) {
                        fds[nfds++] = fd;
                    } else {
                        close(fd);
                    }
                }
            }
        }
        bool ok = (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) == 0;
        if (ok && S.ctl[0] == NP_MSG_APP_ADD && nfds == 2) {
            app_add(S.ctl, (size_t)n, fds);
            continue; /* the fds are the app's now (or closed by app_del) */
        }
        if (ok && S.ctl[0] == NP_MSG_APP_DEL && n == 7) {
            unsigned index = (unsigned)((S.ctl[1] << 8) | S.ctl[2]);
            if (index < NP_MAX_APPS && S.apps[index] != NULL &&
                S.apps[index]->generation == get32(S.ctl + 3)) {
                app_del(index);
            }
            S.ctl[0] = NP_MSG_APP_GONE; /* same index and generation */
            ctl_send(S.ctl, 7);
        } else if (ok && S.ctl[0] == NP_MSG_ACK && n == 6) {
            ack(get32(S.ctl + 1), S.ctl[5] == 1);
        }
        for (size_t j = 0; j < nfds; j++) {
            close(fds[j]);
        }
    }
}

/* ==== the loop ==== */

static void expire(int64_t now)
{
    for (unsigned i = 0; i < MAX_PENDING; i++) {
        if (S.pend[i].serial != 0 && S.pend[i].deadline <= now) {
            pend_fail(i);
        }
    }
    for (unsigned i = 0; i < MAX_CONNS; i++) {
        if (S.conns[i].serial != 0 && S.conns[i].deadline <= now) {
            conn_close(i);
        }
    }
}

static int next_timeout(int64_t now)
{
    int64_t next = now + 60000;
    for (unsigned i = 0; i < MAX_PENDING; i++) {
        if (S.pend[i].serial != 0 && S.pend[i].deadline < next) {
            next = S.pend[i].deadline;
        }
    }
    for (unsigned i = 0; i < MAX_CONNS; i++) {
        if (S.conns[i].serial != 0 && S.conns[i].deadline < next) {
            next = S.conns[i].deadline;
        }
    }
    return next <= now ? 0 : (int)(next - now);
}

static void event(const struct epoll_event *ev, int64_t now)
{
    enum ev_kind kind = (enum ev_kind)(ev->data.u64 >> 56);
    unsigned slot = (unsigned)((ev->data.u64 >> 32) & 0xffffffu);
    uint32_t serial = (uint32_t)ev->data.u64;
    switch (kind) {
    case EV_CTL:
        ctl_read();
        break;
    case EV_UDP:
    case EV_LISTEN:
        if (slot < NP_MAX_APPS && S.apps[slot] != NULL && S.apps[slot]->serial == serial) {
            if (kind == EV_UDP) {
                udp_read(slot, now);
            } else {
                listen_read(slot, now);
            }
        }
        break;
    case EV_CONN:
        if (slot < MAX_CONNS && S.conns[slot].serial == serial) {
            if ((ev->events & (EPOLLERR | EPOLLHUP)) != 0) {
                conn_close(slot);
            } else if (S.conns[slot].state == CONN_READ) {
                conn_read(slot, now);
            } else if (S.conns[slot].state == CONN_WRITE) {
                conn_flush(slot, now);
            }
        }
        break;
    case EV_UPSTREAM:
        if (slot < MAX_PENDING && S.pend[slot].serial == serial &&
            S.pend[slot].state == PEND_UPSTREAM) {
            upstream_read(slot, now);
        }
        break;
    }
}

/* ==== dropping everything ==== */

static int allow(scmp_filter_ctx f, int nr)
{
    return seccomp_rule_add(f, SCMP_ACT_ALLOW, nr, 0);
}

/* The calls the loop makes, and no others: no open, no exec, no fork, no new
 * executable memory; sockets only UDP for the upstream; the control socket alone takes
 * messages with descriptors. A call outside the list kills the stub; pavise-netd restarts it. */
static int load_seccomp(void)
{
    int r = -1;
    scmp_filter_ctx f = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (f == NULL) {
        return -1;
    }
    static const int plain[] = {
        SCMP_SYS(epoll_wait),      SCMP_SYS(epoll_pwait),
        SCMP_SYS(epoll_ctl),       SCMP_SYS(recvfrom),
        SCMP_SYS(sendto),          SCMP_SYS(connect),
        SCMP_SYS(accept4),         SCMP_SYS(close),
        SCMP_SYS(getrandom),       SCMP_SYS(brk),
        SCMP_SYS(munmap),          SCMP_SYS(mremap),
        SCMP_SYS(madvise),         SCMP_SYS(clock_gettime),
        SCMP_SYS(gettimeofday),    SCMP_SYS(exit),
        SCMP_SYS(exit_group),      SCMP_SYS(rt_sigreturn),
        SCMP_SYS(restart_syscall),
    };
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        if (allow(f, plain[i]) != 0) {
            goto out;
        }
    }
    if (seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                         SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)) != 0 ||
        seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                         SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)) != 0 ||
        seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(recvmsg), 1, SCMP_A0(SCMP_CMP_EQ, CTL_FD)) !=
            0 ||
        seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(write), 1, SCMP_A0(SCMP_CMP_EQ, 2)) != 0) {
        goto out;
    }
    const int type = SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC;
    if (seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(socket), 3, SCMP_A0(SCMP_CMP_EQ, AF_INET),
                         SCMP_A1(SCMP_CMP_EQ, type), SCMP_A2(SCMP_CMP_EQ, 0)) != 0 ||
        seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(socket), 3, SCMP_A0(SCMP_CMP_EQ, AF_INET6),
                         SCMP_A1(SCMP_CMP_EQ, type), SCMP_A2(SCMP_CMP_EQ, 0)) != 0) {
        goto out;
    }
    r = seccomp_load(f);
out:
    seccomp_release(f);
    return r;
}

/* Everything a forked copy of pavise-netd holds that the stub must not: fds, signal
 * handlers, uid 0, capabilities. Returns 0, or -1 (the stub exits). */
static int drop_privileges(int ctl_fd, uid_t uid, gid_t gid)
{
    pid_t parent = getppid();
    struct sigaction sa = {.sa_handler = SIG_DFL};
    for (int s = 1; s < NSIG; s++) {
        (void)sigaction(s, &sa, NULL);
    }
    sa.sa_handler = SIG_IGN;
    (void)sigaction(SIGPIPE, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);

    if (ctl_fd != CTL_FD) {
        if (dup2(ctl_fd, CTL_FD) != CTL_FD) {
            return -1;
        }
        close(ctl_fd);
    }
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) != 0 || dup2(null, 1) != 1) {
        return -1;
    }
    if (null > CTL_FD) {
        close(null);
    }
    /* stderr stays: a sanitizer's report is the only thing ever written there. */
    if (close_range(CTL_FD + 1, ~0u, 0) != 0) {
        return -1;
    }

    struct rlimit nofile = {STUB_NOFILE, STUB_NOFILE}, zero = {0, 0};
    if (setrlimit(RLIMIT_NOFILE, &nofile) != 0 || setrlimit(RLIMIT_CORE, &zero) != 0 ||
        setrlimit(RLIMIT_FSIZE, &zero) != 0) {
        return -1;
    }
    for (int c = 0; c <= 63; c++) {
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL) {
            return -1;
        }
    }
    if (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0) {
        return -1;
    }
    uid_t ru, eu, su;
    if (getresuid(&ru, &eu, &su) != 0 || ru != uid || eu != uid || su != uid) {
        return -1;
    }
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capset, &hdr, data) != 0 ||
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
        return -1;
    }
    if (setrlimit(RLIMIT_NPROC, &zero) != 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        return -1;
    }
    /* Set after the uid change, which clears it; then make sure pavise-netd did not die
     * before it took effect. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != parent) {
        return -1;
    }
    return 0;
}

void np_stub_main(int ctl_fd, uid_t uid, gid_t gid, const struct sockaddr_storage *upstream,
                  socklen_t upstream_len)
{
    memset(&S, 0, sizeof(S));
    memcpy(&S.upstream, upstream, sizeof(S.upstream));
    S.upstream_len = upstream_len;
    for (unsigned i = 0; i < MAX_PENDING; i++) {
        S.pend[i].fd = -1;
    }
    if (drop_privileges(ctl_fd, uid, gid) != 0) {
        _exit(EXIT_SETUP);
    }
    S.ep = epoll_create1(EPOLL_CLOEXEC);
    if (S.ep < 0 || ep_set(EPOLL_CTL_ADD, CTL_FD, EPOLLIN, ev_key(EV_CTL, 0, 0)) != 0 ||
        load_seccomp() != 0) {
        _exit(EXIT_SETUP);
    }
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(S.ep, evs, MAX_EVENTS, next_timeout(pv_monotonic_ms()));
        if (n < 0 && errno != EINTR) {
            _exit(EXIT_LOOP);
        }
        int64_t now = pv_monotonic_ms();
        for (int i = 0; i < n; i++) {
            event(&evs[i], now);
        }
        expire(now);
    }
}
