/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The network policy end to end, as root, inside a network namespace this test creates
 * (so the host's nftables are never touched): dnsmasq as the upstream resolver on
 * 127.0.0.1:5353, TCP listeners on 127.0.0.2-6, the rules and the DNS stub of np_init, and
 * "apps": children that switch to an app uid and try what an app might.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nftables/libnftables.h>

#include "testutil.h"

#include "dnsmsg.h"
#include "netpolicy.h"

#define STUB_UID 69990
#define APP1     70001
#define APP2     70002
#define APP3     70003
#define PORT     7000
#define DNS_PORT 5353
#define WAIT_MS  15000
#define N_LISTEN 5
#define N_BIG    40 /* addresses of big.test: more than fit in 512 bytes */

static struct fixture {
    char *dir;
    pid_t dnsmasq;
    int listeners[N_LISTEN]; /* 127.0.0.2 .. 127.0.0.6, port PORT */
    np_ctx *np;
    np_app *app1;
} F;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ==== DNS and connections, as a client ==== */

static size_t wire_name(const char *s, uint8_t *out)
{
    size_t n = 0;
    while (*s != '\0') {
        const char *dot = strchr(s, '.');
        size_t l = dot ? (size_t)(dot - s) : strlen(s);
        out[n++] = (uint8_t)l;
        memcpy(out + n, s, l);
        n += l;
        s += l + (dot ? 1 : 0);
    }
    out[n++] = 0;
    return n;
}

static void make_query(dns_query *q, const char *name, uint16_t qtype)
{
    memset(q, 0, sizeof(*q));
    q->id = (uint16_t)(getpid() ^ now_ms());
    q->flags = DNS_FLAG_RD;
    q->q.name_len = wire_name(name, q->q.name);
    q->q.qtype = qtype;
    q->q.qclass = DNS_CLASS_IN;
}

/* Asks server:port over UDP or TCP. Returns 0 with the answer, or an errno (of sendto,
 * connect, a timeout: ETIMEDOUT, a malformed answer: EBADMSG). */
static unsigned last_arcount; /* the additional count of ask's last answer */

static int ask(const char *server, uint16_t port, bool tcp, const char *name, uint16_t qtype,
               dns_answer *ans)
{
    dns_query q;
    make_query(&q, name, qtype);
    uint8_t msg[DNS_MAX_MSG + 2];
    size_t n = dns_query_build(&q, q.id, 0, msg + 2, sizeof(msg) - 2);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, server, &sin.sin_addr);
    int fd = socket(AF_INET, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int err = 0;
    ssize_t got = 0;
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        err = errno;
        goto out;
    }
    if (tcp) {
        msg[0] = (uint8_t)(n >> 8);
        msg[1] = (uint8_t)n;
        if (send(fd, msg, n + 2, 0) != (ssize_t)(n + 2)) {
            err = errno;
            goto out;
        }
        size_t have = 0, want = 2;
        while (have < want) {
            ssize_t r = recv(fd, msg + have, want - have, 0);
            if (r <= 0) {
                err = r == 0 ? ECONNRESET : errno == EAGAIN ? ETIMEDOUT : errno;
                goto out;
            }
            have += (size_t)r;
            if (have == 2) {
                want = 2 + (((size_t)msg[0] << 8) | msg[1]);
            }
        }
        memmove(msg, msg + 2, have - 2);
        got = (ssize_t)(have - 2);
    } else {
        if (send(fd, msg + 2, n, 0) != (ssize_t)n) {
            err = errno;
            goto out;
        }
        got = recv(fd, msg, sizeof(msg), 0);
        if (got < 0) {
            err = errno == EAGAIN ? ETIMEDOUT : errno;
            goto out;
        }
    }
    if (dns_response_parse(msg, (size_t)got, q.id, &q.q, ans, NULL) != PV_OK) {
        err = EBADMSG;
    }
    last_arcount = (unsigned)((msg[10] << 8) | msg[11]);
out:
    close(fd);
    return err;
}

/* Connects to ip:PORT; 0 or the errno (ETIMEDOUT after 3 s). */
static int try_connect(const char *ip)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(PORT)};
    inet_pton(AF_INET, ip, &sin.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int err = 0;
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        err = errno;
        if (err == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            socklen_t l = sizeof(err);
            err = poll(&p, 1, 3000) == 1 ? 0 : ETIMEDOUT;
            if (err == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0) {
                err = errno;
            }
        }
    }
    close(fd);
    return err;
}

/* ==== running as an app ==== */

typedef int (*app_fn)(const void *arg);

/* Reads and applies every message the stub has sent. */
static void drain(void)
{
    struct pollfd p = {.fd = np_fd(F.np), .events = POLLIN};
    while (poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
        pv_err e;
        if (np_dispatch(F.np, &e) != PV_OK) {
            fprintf(stderr, "np_dispatch: %s\n", pv_err_msg(&e));
        }
    }
}

/* Runs fn in a child with the app's uid while this process plays pavised (dispatching
 * the stub's messages); returns fn's result (0: as expected). */
static int as_app(uid_t uid, app_fn fn, const void *arg)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgroups(0, NULL) != 0 || setresgid(uid, uid, uid) != 0 ||
            setresuid(uid, uid, uid) != 0) {
            _exit(99);
        }
        _exit(fn(arg));
    }
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    assert_true(pidfd >= 0);
    int64_t deadline = now_ms() + WAIT_MS;
    for (;;) {
        struct pollfd p[2] = {{.fd = np_fd(F.np), .events = POLLIN},
                              {.fd = pidfd, .events = POLLIN}};
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            kill(pid, SIGKILL);
        }
        if (poll(p, 2, left > 0 ? (int)left : 100) > 0 && (p[0].revents & POLLIN)) {
            pv_err e;
            if (np_dispatch(F.np, &e) != PV_OK) {
                fprintf(stderr, "np_dispatch: %s\n", pv_err_msg(&e));
            }
        }
        if (p[1].revents & POLLIN) {
            break;
        }
    }
    close(pidfd);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    drain();
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

typedef struct dns_check {
    const char *server;
    uint16_t port;
    bool tcp;
    const char *name;
    uint16_t qtype;
    int want_err;        /* errno expected from ask */
    int want_rcode;      /* when want_err is 0 */
    const char *want_ip; /* the first address, or NULL for none */
    size_t want_n;       /* or: this many addresses */
} dns_check;

static int app_dns(const void *arg)
{
    const dns_check *c = arg;
    dns_answer a;
    int err = ask(c->server, c->port, c->tcp, c->name, c->qtype, &a);
    if (err != c->want_err) {
        fprintf(stderr, "%s %s: error %s, expected %s\n", c->name, c->tcp ? "tcp" : "udp",
                strerror(err), strerror(c->want_err));
        return 1;
    }
    if (err != 0) {
        return 0;
    }
    if (a.rcode != c->want_rcode) {
        fprintf(stderr, "%s: rcode %u, expected %d\n", c->name, a.rcode, c->want_rcode);
        return 2;
    }
    if (c->want_n != 0) {
        /* a big answer: truncated over UDP, whole over TCP, without an OPT it was not
         * asked for */
        bool n_ok = c->tcp ? a.n_addrs == c->want_n : a.n_addrs > 0 && a.n_addrs < c->want_n;
        if (!n_ok || a.truncated != !c->tcp || last_arcount != 0) {
            fprintf(stderr, "%s: %zu addresses, tc %d, arcount %u\n", c->name, a.n_addrs,
                    a.truncated, last_arcount);
            return 5;
        }
        return 0;
    }
    if (c->want_ip == NULL) {
        return a.n_addrs == 0 ? 0 : 3;
    }
    char text[INET6_ADDRSTRLEN] = "";
    if (a.n_addrs > 0) {
        inet_ntop(a.addrs[0].family, a.addrs[0].addr, text, sizeof(text));
    }
    if (strcmp(text, c->want_ip) != 0) {
        fprintf(stderr, "%s: address '%s', expected %s\n", c->name, text, c->want_ip);
        return 4;
    }
    return 0;
}

typedef struct conn_check {
    const char *ip;
    int want; /* 0 or the errno */
} conn_check;

static int app_connect(const void *arg)
{
    const conn_check *c = arg;
    int64_t t0 = now_ms();
    int err = try_connect(c->ip);
    if (err != c->want) {
        fprintf(stderr, "connect %s: %s, expected %s\n", c->ip, strerror(err), strerror(c->want));
        return 1;
    }
    /* a drop in the output hook fails at once, not after retransmissions */
    return now_ms() - t0 < 1000 ? 0 : 2;
}

static int dns(uid_t uid, const char *server, uint16_t port, bool tcp, const char *name,
               uint16_t qtype, int want_err, int want_rcode, const char *want_ip)
{
    dns_check c = {server, port, tcp, name, qtype, want_err, want_rcode, want_ip, 0};
    return as_app(uid, app_dns, &c);
}

static int conn_as(uid_t uid, const char *ip, int want)
{
    conn_check c = {ip, want};
    return as_app(uid, app_connect, &c);
}

/* ==== nftables, read back ==== */

/* What `nft list <what>` prints (caller frees), NULL when nft fails. */
static char *nft_list(const char *what)
{
    struct nft_ctx *n = nft_ctx_new(NFT_CTX_DEFAULT);
    nft_ctx_buffer_output(n);
    nft_ctx_buffer_error(n);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "list %s", what);
    char *out = NULL;
    if (nft_run_cmd_from_buffer(n, cmd) == 0) {
        out = strdup(nft_ctx_get_output_buffer(n));
    }
    nft_ctx_free(n);
    return out;
}

static bool nft_has(const char *what, const char *needle)
{
    char *s = nft_list(what);
    bool found = s != NULL && strstr(s, needle) != NULL;
    free(s);
    return found;
}

/* ==== setup ==== */

static void lo_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    assert_int_equal(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
    ifr.ifr_flags |= IFF_UP;
    assert_int_equal(ioctl(fd, SIOCSIFFLAGS, &ifr), 0);
    close(fd);
}

static void start_dnsmasq(void)
{
    char pidfile[512];
    snprintf(pidfile, sizeof(pidfile), "--pid-file=%s/dnsmasq.pid", F.dir);
    char *argv[] = {"dnsmasq",
                    "--keep-in-foreground",
                    "--conf-file=/dev/null",
                    "--no-resolv",
                    "--no-hosts",
                    "--port=5353",
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    "--user=root",
                    "--group=root",
                    "--address=/allowed.test/127.0.0.2",
                    "--address=/other.test/127.0.0.4",
                    "--address=/wild.test/127.0.0.5",
                    "--address=/v6.test/2001:db8::7",
                    "--host-record=target.test,127.0.0.6",
                    "--cname=alias.test,target.test",
                    pidfile,
                    NULL,
                    [17 + N_BIG] = NULL};
    /* big.test: N_BIG addresses, more than fit in 512 bytes */
    char big[N_BIG][48];
    for (int i = 0; i < N_BIG; i++) {
        snprintf(big[i], sizeof(big[i]), "--host-record=big.test,127.1.0.%d", i + 1);
        argv[17 + i] = big[i];
    }
    F.dnsmasq = fork();
    assert_true(F.dnsmasq >= 0);
    if (F.dnsmasq == 0) {
        /* gone with the test, even one that crashes */
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        execv("/usr/sbin/dnsmasq", argv);
        _exit(127);
    }
    /* ready when it answers */
    int64_t deadline = now_ms() + WAIT_MS;
    dns_answer a;
    while (ask("127.0.0.1", DNS_PORT, false, "allowed.test", DNS_TYPE_A, &a) != 0) {
        int st;
        assert_int_equal(waitpid(F.dnsmasq, &st, WNOHANG), 0);
        assert_true(now_ms() < deadline);
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static void start_listeners(void)
{
    for (int i = 0; i < N_LISTEN; i++) {
        char ip[16];
        snprintf(ip, sizeof(ip), "127.0.0.%d", i + 2);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(PORT)};
        inet_pton(AF_INET, ip, &sin.sin_addr);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
        assert_int_equal(listen(fd, 64), 0);
        F.listeners[i] = fd;
    }
}

static np_config config(void)
{
    np_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    struct sockaddr_in *up = (struct sockaddr_in *)&cfg.upstream;
    up->sin_family = AF_INET;
    up->sin_port = htons(DNS_PORT);
    up->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cfg.upstream_len = sizeof(*up);
    cfg.stub_uid = STUB_UID;
    cfg.stub_gid = STUB_UID;
    return cfg;
}

static void caps_of(pv_capabilities *c, const char *const *conns, const uint16_t *ports)
{
    memset(c, 0, sizeof(*c));
    for (; conns != NULL && *conns != NULL; conns++) {
        assert_int_equal(pv_strlist_add(&c->allowed_connections, *conns), PV_OK);
    }
    for (; ports != NULL && *ports != 0; ports++) {
        c->tcp_server_ports[c->n_tcp_server_ports++] = *ports;
    }
}

static int group_setup(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        fprintf(stderr, "netpolicy_test needs root (network namespace, nftables)\n");
        return -1;
    }
    memset(&F, 0, sizeof(F));
    if (unshare(CLONE_NEWNET) != 0) {
        fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
        return -1;
    }
    F.dir = tu_mkdtemp("netpolicy");
    lo_up();
    start_dnsmasq();
    start_listeners();
    np_config cfg = config();
    pv_err e;
    if (np_init(&cfg, &F.np, &e) != PV_OK) {
        fprintf(stderr, "np_init: %s\n", pv_err_msg(&e));
        return -1;
    }
    static const char *const conns[] = {"allowed.test", "127.0.0.3", "alias.test",
                                        "v6.test",      "big.test",  NULL};
    pv_capabilities caps;
    caps_of(&caps, conns, NULL);
    int r = np_app_add(F.np, APP1, 0, &caps, &F.app1, &e);
    pv_strlist_free(&caps.allowed_connections);
    if (r != PV_OK) {
        fprintf(stderr, "np_app_add: %s\n", pv_err_msg(&e));
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    np_app_remove(F.np, F.app1);
    np_free(F.np);
    if (F.dnsmasq > 0) {
        kill(F.dnsmasq, SIGTERM);
        waitpid(F.dnsmasq, NULL, 0);
    }
    for (int i = 0; i < N_LISTEN; i++) {
        if (F.listeners[i] > 0) {
            close(F.listeners[i]);
        }
    }
    if (F.dir != NULL) {
        tu_rmtree(F.dir);
        free(F.dir);
    }
    return 0;
}

/* ==== the tests ==== */

static void test_rules_listed(void **state)
{
    (void)state;
    assert_string_equal(np_app_stub_address(F.app1), "127.77.0.1");
    char *s = nft_list("table inet pavise");
    assert_non_null(s);
    assert_non_null(strstr(s, "meta skuid vmap @apps"));
    assert_non_null(strstr(s, "70001 : jump a70001"));
    /* 70001 = 0x00011171: connections carry the uid that opened them */
    assert_non_null(strstr(s, "ip daddr @a70001_v4 ct mark set 0x00011171 accept"));
    assert_non_null(strstr(s, "ip daddr 127.77.0.1 meta l4proto { tcp, udp } th dport 53 ct mark "
                              "set 0x00011171 accept"));
    assert_non_null(
        strstr(s, "ct state established,related ct direction original ct mark 0x00011171 accept"));
    assert_non_null(strstr(s, "meta skuid 69990 ip daddr 127.0.0.1 udp dport 5353 accept"));
    assert_non_null(strstr(s, "elements = { 127.0.0.3 }"));
    free(s);
}

static void test_resolve_then_connect(void **state)
{
    (void)state;
    /* not reachable before the name is resolved */
    assert_int_equal(conn_as(APP1, "127.0.0.2", EHOSTUNREACH), 0);
    assert_int_equal(dns(APP1, "127.77.0.1", 53, false, "allowed.test", DNS_TYPE_A, 0,
                         DNS_RCODE_NOERROR, "127.0.0.2"),
                     0);
    /* the set held it before the answer was relayed */
    assert_int_equal(conn_as(APP1, "127.0.0.2", 0), 0);
    assert_true(nft_has("set inet pavise a70001_v4", "127.0.0.2 timeout 30s"));
    /* case does not matter */
    assert_int_equal(dns(APP1, "127.77.0.1", 53, false, "ALLOWED.Test", DNS_TYPE_A, 0,
                         DNS_RCODE_NOERROR, "127.0.0.2"),
                     0);
}

static void test_static_and_unlisted(void **state)
{
    (void)state;
    assert_int_equal(conn_as(APP1, "127.0.0.3", 0), 0);
    assert_int_equal(conn_as(APP1, "127.0.0.4", EHOSTUNREACH), 0);
    assert_int_equal(
        dns(APP1, "127.77.0.1", 53, false, "other.test", DNS_TYPE_A, 0, DNS_RCODE_REFUSED, NULL),
        0);
    /* a subdomain of a listed name is another name */
    assert_int_equal(dns(APP1, "127.77.0.1", 53, false, "x.allowed.test", DNS_TYPE_A, 0,
                         DNS_RCODE_REFUSED, NULL),
                     0);
    /* a listed name's other records: no data, not forwarded */
    assert_int_equal(dns(APP1, "127.77.0.1", 53, false, "allowed.test", 16 /* TXT */, 0,
                         DNS_RCODE_NOERROR, NULL),
                     0);
    assert_int_equal(conn_as(APP1, "127.0.0.4", EHOSTUNREACH), 0);
    np_app_stats st;
    pv_err e;
    assert_int_equal(np_app_stats_get(F.np, F.app1, &st, &e), PV_OK);
    assert_true(st.dropped_packets >= 2);
    assert_true(st.refused_queries >= 2);
}

static void test_other_resolvers_dropped(void **state)
{
    (void)state;
    /* straight to the upstream, and to another app's stub address */
    assert_int_equal(
        dns(APP1, "127.0.0.1", DNS_PORT, false, "allowed.test", DNS_TYPE_A, EPERM, 0, NULL), 0);
    assert_int_equal(
        dns(APP1, "127.0.0.1", DNS_PORT, true, "allowed.test", DNS_TYPE_A, EHOSTUNREACH, 0, NULL),
        0);
    assert_int_equal(dns(APP1, "127.77.0.2", 53, false, "allowed.test", DNS_TYPE_A, EPERM, 0, NULL),
                     0);
    /* root is not an app: unaffected */
    dns_answer a;
    assert_int_equal(ask("127.0.0.1", DNS_PORT, false, "other.test", DNS_TYPE_A, &a), 0);
    assert_int_equal(try_connect("127.0.0.4"), 0);
}

static void test_tcp_cname_aaaa(void **state)
{
    (void)state;
    assert_int_equal(dns(APP1, "127.77.0.1", 53, true, "allowed.test", DNS_TYPE_A, 0,
                         DNS_RCODE_NOERROR, "127.0.0.2"),
                     0);
    assert_int_equal(
        dns(APP1, "127.77.0.1", 53, true, "other.test", DNS_TYPE_A, 0, DNS_RCODE_REFUSED, NULL), 0);
    /* alias.test is a CNAME of target.test: its address comes through the chain */
    assert_int_equal(conn_as(APP1, "127.0.0.6", EHOSTUNREACH), 0);
    assert_int_equal(dns(APP1, "127.77.0.1", 53, false, "alias.test", DNS_TYPE_A, 0,
                         DNS_RCODE_NOERROR, "127.0.0.6"),
                     0);
    assert_int_equal(conn_as(APP1, "127.0.0.6", 0), 0);
    assert_int_equal(dns(APP1, "127.77.0.1", 53, false, "v6.test", DNS_TYPE_AAAA, 0,
                         DNS_RCODE_NOERROR, "2001:db8::7"),
                     0);
    assert_true(nft_has("set inet pavise a70001_v6", "2001:db8::7 timeout 30s"));
}

static void test_big_answer(void **state)
{
    (void)state;
    /* over UDP without EDNS: what fits in 512 bytes, with TC (its addresses are added);
     * over TCP: all of them, each in the set before the answer arrives */
    dns_check c = {"127.77.0.1",      53,   false, "big.test", DNS_TYPE_A, 0,
                   DNS_RCODE_NOERROR, NULL, N_BIG};
    assert_int_equal(as_app(APP1, app_dns, &c), 0);
    c.tcp = true;
    assert_int_equal(as_app(APP1, app_dns, &c), 0);
    char last[64];
    snprintf(last, sizeof(last), "127.1.0.%d timeout 30s", N_BIG);
    assert_true(nft_has("set inet pavise a70001_v4", last));
}

/* In a child with its own network namespace: np with the upstream at 127.0.0.1:port (a
 * socket that never answers when silent, else nothing); returns 0 when an app's query for
 * a listed name gets SERVFAIL within [min_ms, max_ms]. */
static int upstream_down(uint16_t port, bool silent, int64_t min_ms, int64_t max_ms)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid != 0) {
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    if (unshare(CLONE_NEWNET) != 0) {
        _exit(90);
    }
    lo_up();
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (silent && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        _exit(91);
    }
    np_config cfg = config();
    ((struct sockaddr_in *)&cfg.upstream)->sin_port = htons(port);
    static const char *const conns[] = {"allowed.test", NULL};
    pv_capabilities caps;
    caps_of(&caps, conns, NULL);
    pv_err e;
    np_app *a = NULL;
    if (np_init(&cfg, &F.np, &e) != PV_OK || np_app_add(F.np, APP1, 0, &caps, &a, &e) != PV_OK) {
        fprintf(stderr, "%s\n", pv_err_msg(&e));
        _exit(92);
    }
    int64_t t0 = now_ms();
    dns_check c = {"127.77.0.1",       53,   false, "allowed.test", DNS_TYPE_A, 0,
                   DNS_RCODE_SERVFAIL, NULL, 0};
    int r = as_app(APP1, app_dns, &c);
    int64_t took = now_ms() - t0;
    if (r == 0 && (took < min_ms || took > max_ms)) {
        fprintf(stderr, "SERVFAIL after %lld ms\n", (long long)took);
        r = 93;
    }
    np_app_remove(F.np, a);
    np_free(F.np);
    _exit(r);
}

static void test_upstream_down(void **state)
{
    (void)state;
    /* silent: SERVFAIL after the 2 s the stub waits; nothing listening: at once */
    assert_int_equal(upstream_down(5399, true, 1900, 4000), 0);
    assert_int_equal(upstream_down(5398, false, 0, 1000), 0);
}

static void test_second_app(void **state)
{
    (void)state;
    static const char *const conns[] = {"other.test", "*.wild.test", NULL};
    static const uint16_t ports[] = {8080, 0};
    pv_capabilities caps;
    caps_of(&caps, conns, ports);
    np_app *a2 = NULL;
    pv_err e;
    assert_int_equal(np_app_add(F.np, APP2, 1, &caps, &a2, &e), PV_OK);
    /* the same index or uid again: refused */
    np_app *dup = NULL;
    assert_int_equal(np_app_add(F.np, APP2, 2, &caps, &dup, &e), PV_ERR_EXISTS);
    assert_int_equal(np_app_add(F.np, APP3, 1, &caps, &dup, &e), PV_ERR_EXISTS);
    assert_int_equal(np_app_add(F.np, 1000, 2, &caps, &dup, &e), PV_ERR_INVALID_ARG);
    assert_null(dup);
    pv_strlist_free(&caps.allowed_connections);
    assert_string_equal(np_app_stub_address(a2), "127.77.0.2");
    assert_true(nft_has("chain inet pavise a70002", "ct direction reply tcp sport 8080 accept"));

    assert_int_equal(dns(APP2, "127.77.0.2", 53, false, "other.test", DNS_TYPE_A, 0,
                         DNS_RCODE_NOERROR, "127.0.0.4"),
                     0);
    assert_int_equal(conn_as(APP2, "127.0.0.4", 0), 0);
    assert_int_equal(
        dns(APP2, "127.77.0.2", 53, false, "allowed.test", DNS_TYPE_A, 0, DNS_RCODE_REFUSED, NULL),
        0);
    assert_int_equal(conn_as(APP2, "127.0.0.3", EHOSTUNREACH), 0);
    /* one label for the star, not zero */
    assert_int_equal(dns(APP2, "127.77.0.2", 53, false, "a.wild.test", DNS_TYPE_A, 0,
                         DNS_RCODE_NOERROR, "127.0.0.5"),
                     0);
    assert_int_equal(
        dns(APP2, "127.77.0.2", 53, false, "wild.test", DNS_TYPE_A, 0, DNS_RCODE_REFUSED, NULL), 0);
    /* app 1 never gets app 2's addresses, nor its stub */
    assert_int_equal(conn_as(APP1, "127.0.0.4", EHOSTUNREACH), 0);
    assert_int_equal(dns(APP2, "127.77.0.1", 53, false, "allowed.test", DNS_TYPE_A, EPERM, 0, NULL),
                     0);

    /* removed: its rules go, and its uid (still in the app range) is dropped */
    np_app_remove(F.np, a2);
    assert_false(nft_has("table inet pavise", "a70002"));
    assert_int_equal(conn_as(APP2, "127.0.0.4", EHOSTUNREACH), 0);
    /* and the index can be used again at once: removal waits for the stub to close the
     * address's sockets */
    caps_of(&caps, conns, NULL);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(np_app_add(F.np, APP3, 1, &caps, &a2, &e), PV_OK);
        np_app_remove(F.np, a2);
    }
    assert_int_equal(np_app_add(F.np, APP3, 1, &caps, &a2, &e), PV_OK);
    pv_strlist_free(&caps.allowed_connections);
    assert_int_equal(dns(APP3, "127.77.0.2", 53, false, "other.test", DNS_TYPE_A, 0,
                         DNS_RCODE_NOERROR, "127.0.0.4"),
                     0);
    np_app_remove(F.np, a2);
}

static void addr4(np_msg_addr *a, const char *ip, uint32_t ttl)
{
    memset(a, 0, sizeof(*a));
    a->family = AF_INET;
    inet_pton(AF_INET, ip, a->addr);
    a->ttl = ttl;
}

static int send_addrs(unsigned index, uint32_t gen, const np_msg_addr *a, size_t n, pv_err *e)
{
    uint8_t msg[NP_MSG_MAX];
    size_t len = np_msg_addrs_encode(1, index, gen, a, n, msg);
    assert_int_not_equal(len, 0);
    return np_stub_message(F.np, msg, len, e);
}

/* NP_MSG_REFUSED for "x." (type A) standing for count refusals. */
static void refusal(uint8_t m[16], unsigned index, uint32_t gen, uint32_t count)
{
    m[0] = NP_MSG_REFUSED;
    m[1] = (uint8_t)(index >> 8);
    m[2] = (uint8_t)index;
    for (int i = 0; i < 4; i++) {
        m[3 + i] = (uint8_t)(gen >> (24 - 8 * i));
        m[7 + i] = (uint8_t)(count >> (24 - 8 * i));
    }
    m[11] = 0;
    m[12] = DNS_TYPE_A;
    memcpy(m + 13, "\x01x", 3); /* with the root label */
}

static void test_control_validation(void **state)
{
    (void)state;
    uint32_t gen = np_app_generation(F.app1);
    np_msg_addr a[2];
    pv_err e;
    uint8_t msg[NP_MSG_MAX];
    size_t len;

    addr4(&a[0], "192.0.2.50", 60);
    assert_int_equal(send_addrs(7, gen, a, 1, &e), PV_ERR_NOT_FOUND);       /* no such app */
    assert_int_equal(send_addrs(0, gen + 100, a, 1, &e), PV_ERR_NOT_FOUND); /* an older one */
    assert_int_equal(send_addrs(NP_MAX_APPS + 5, gen, a, 1, &e), PV_ERR_NOT_FOUND);

    addr4(&a[0], "192.0.2.50", 10); /* below NP_MIN_TTL: the stub clamps, so a lie */
    assert_int_equal(send_addrs(0, gen, a, 1, &e), PV_ERR_FORMAT);
    addr4(&a[0], "192.0.2.50", 10u * 365 * 86400);
    assert_int_equal(send_addrs(0, gen, a, 1, &e), PV_ERR_FORMAT);
    addr4(&a[0], "224.0.0.1", 60);
    assert_int_equal(send_addrs(0, gen, a, 1, &e), PV_ERR_FORMAT);
    addr4(&a[0], "0.0.0.0", 60);
    assert_int_equal(send_addrs(0, gen, a, 1, &e), PV_ERR_FORMAT);

    /* bad family; IPv4 with bytes after it; one bad address spoils the message */
    addr4(&a[0], "192.0.2.50", 60);
    len = np_msg_addrs_encode(1, 0, gen, a, 1, msg);
    msg[12] = 7;
    assert_int_equal(np_stub_message(F.np, msg, len, &e), PV_ERR_FORMAT);
    len = np_msg_addrs_encode(1, 0, gen, a, 1, msg);
    msg[12 + 10] = 1;
    assert_int_equal(np_stub_message(F.np, msg, len, &e), PV_ERR_FORMAT);
    addr4(&a[1], "255.255.255.255", 60);
    assert_int_equal(send_addrs(0, gen, a, 2, &e), PV_ERR_FORMAT);

    /* lengths that disagree with the count; unknown and empty messages */
    len = np_msg_addrs_encode(1, 0, gen, a, 1, msg);
    assert_int_equal(np_stub_message(F.np, msg, len - 1, &e), PV_ERR_FORMAT);
    msg[11] = 2;
    assert_int_equal(np_stub_message(F.np, msg, len, &e), PV_ERR_FORMAT);
    msg[11] = 0;
    assert_int_equal(np_stub_message(F.np, msg, 12, &e), PV_ERR_FORMAT);
    msg[0] = 99;
    assert_int_equal(np_stub_message(F.np, msg, len, &e), PV_ERR_FORMAT);
    assert_int_equal(np_stub_message(F.np, msg, 0, &e), PV_ERR_FORMAT);
    /* a refusal: counted when well formed, refused when its name or count is not */
    np_app_stats st0, st1;
    assert_int_equal(np_app_stats_get(F.np, F.app1, &st0, &e), PV_OK);
    uint8_t refused[16];
    refusal(refused, 0, gen, 3);
    assert_int_equal(np_stub_message(F.np, refused, sizeof(refused), &e), PV_OK);
    assert_int_equal(np_app_stats_get(F.np, F.app1, &st1, &e), PV_OK);
    assert_int_equal(st1.refused_queries, st0.refused_queries + 3);
    refused[13] = 5; /* a label longer than the name */
    assert_int_equal(np_stub_message(F.np, refused, sizeof(refused), &e), PV_ERR_FORMAT);
    refusal(refused, 0, gen, 0);
    assert_int_equal(np_stub_message(F.np, refused, sizeof(refused), &e), PV_ERR_FORMAT);
    refusal(refused, 9, gen, 1);
    assert_int_equal(np_stub_message(F.np, refused, sizeof(refused), &e), PV_ERR_NOT_FOUND);
    refusal(refused, 0, gen, 1);
    assert_int_equal(np_stub_message(F.np, refused, 13, &e), PV_ERR_FORMAT);
    assert_int_equal(np_app_stats_get(F.np, F.app1, &st1, &e), PV_OK);
    assert_int_equal(st1.refused_queries, st0.refused_queries + 3);

    /* nothing of it was added */
    assert_false(nft_has("set inet pavise a70001_v4", "192.0.2.50"));

    /* a good one is; sent again with another TTL it is replaced, and a listed address
     * keeps no timeout */
    addr4(&a[0], "192.0.2.50", 120);
    addr4(&a[1], "127.0.0.3", 60);
    assert_int_equal(send_addrs(0, gen, a, 2, &e), PV_OK);
    assert_true(nft_has("set inet pavise a70001_v4", "192.0.2.50 timeout 2m"));
    addr4(&a[0], "192.0.2.50", 3600);
    assert_int_equal(send_addrs(0, gen, a, 1, &e), PV_OK);
    assert_true(nft_has("set inet pavise a70001_v4", "192.0.2.50 timeout 1h"));
    assert_false(nft_has("set inet pavise a70001_v4", "127.0.0.3 timeout"));
    assert_true(nft_has("set inet pavise a70001_v4", "127.0.0.3"));
}

/* The stub: this process's child with the stub uid. */
static pid_t stub_pid(void)
{
    char path[300], line[256];
    pid_t found = -1;
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d != NULL && found < 0 && (de = readdir(d)) != NULL) {
        pid_t pid = (pid_t)strtol(de->d_name, NULL, 10);
        if (pid <= 0) {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/%s/status", de->d_name);
        FILE *f = fopen(path, "r");
        bool child = false, uid = false;
        while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
            if (strncmp(line, "PPid:", 5) == 0 && strtol(line + 5, NULL, 10) == getpid()) {
                child = true;
            }
            if (strncmp(line, "Uid:", 4) == 0 && strtol(line + 4, NULL, 10) == STUB_UID) {
                uid = true;
            }
        }
        if (f != NULL) {
            fclose(f);
        }
        if (child && uid) {
            found = pid;
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    return found;
}

static bool status_has(pid_t pid, const char *line)
{
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    bool found = false;
    while (f != NULL && fgets(buf, sizeof(buf), f) != NULL) {
        found = found || strncmp(buf, line, strlen(line)) == 0;
    }
    if (f != NULL) {
        fclose(f);
    }
    return found;
}

static void test_stub_confined_and_restarted(void **state)
{
    (void)state;
    pid_t pid = stub_pid();
    assert_true(pid > 0);
    assert_true(status_has(pid, "Uid:\t69990\t69990\t69990\t69990"));
    assert_true(status_has(pid, "Gid:\t69990\t69990\t69990\t69990"));
    assert_true(status_has(pid, "CapEff:\t0000000000000000"));
    assert_true(status_has(pid, "CapPrm:\t0000000000000000"));
    assert_true(status_has(pid, "CapInh:\t0000000000000000"));
    assert_true(status_has(pid, "CapBnd:\t0000000000000000"));
    assert_true(status_has(pid, "CapAmb:\t0000000000000000"));
    assert_true(status_has(pid, "NoNewPrivs:\t1"));
    assert_true(status_has(pid, "Seccomp:\t2"));

    /* it dies: np_dispatch starts another, which has every app's sockets */
    assert_int_equal(kill(pid, SIGKILL), 0);
    struct pollfd p = {.fd = np_fd(F.np), .events = POLLIN};
    assert_int_equal(poll(&p, 1, WAIT_MS), 1);
    pv_err e;
    assert_int_equal(np_dispatch(F.np, &e), PV_OK);
    pid_t again = -1;
    int64_t deadline = now_ms() + WAIT_MS;
    /* found once it has switched to its uid */
    while ((again = stub_pid()) < 0 && now_ms() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_true(again > 0 && again != pid);
    assert_int_equal(dns(APP1, "127.77.0.1", 53, false, "allowed.test", DNS_TYPE_A, 0,
                         DNS_RCODE_NOERROR, "127.0.0.2"),
                     0);
}

static void test_config_refused(void **state)
{
    (void)state;
    np_config cfg = config();
    np_ctx *np = NULL;
    pv_err e;
    cfg.stub_uid = 0;
    assert_int_equal(np_init(&cfg, &np, &e), PV_ERR_INVALID_ARG);
    cfg = config();
    cfg.stub_uid = APP1; /* inside the app range */
    assert_int_equal(np_init(&cfg, &np, &e), PV_ERR_INVALID_ARG);
    cfg = config();
    cfg.upstream.ss_family = AF_UNIX;
    assert_int_equal(np_init(&cfg, &np, &e), PV_ERR_INVALID_ARG);
    cfg = config();
    ((struct sockaddr_in *)&cfg.upstream)->sin_addr.s_addr = htonl(0x7f4d0001); /* 127.77.0.1 */
    assert_int_equal(np_init(&cfg, &np, &e), PV_ERR_INVALID_ARG);
    assert_null(np);
}

/* In a child with its own mount and network namespaces: /etc/resolv.conf replaced by
 * text, np_init without an upstream; returns 0 when the stub's rule names want. */
static int default_upstream_is(const char *text, const char *want)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *path = tu_path(F.dir, "resolv.conf");
        tu_write(path, text, strlen(text), 0644);
        np_config cfg = config();
        cfg.upstream_len = 0;
        np_ctx *np = NULL;
        pv_err e;
        if (unshare(CLONE_NEWNS | CLONE_NEWNET) != 0 ||
            mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
            mount(path, "/etc/resolv.conf", NULL, MS_BIND, NULL) != 0) {
            _exit(90);
        }
        if (np_init(&cfg, &np, &e) != PV_OK) {
            fprintf(stderr, "np_init: %s\n", pv_err_msg(&e));
            _exit(91);
        }
        int r = nft_has("chain inet pavise output", want) ? 0 : 92;
        np_free(np);
        _exit(r);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_default_upstream(void **state)
{
    (void)state;
    assert_int_equal(default_upstream_is("# generated\nsearch example.com\n"
                                         "nameserver fe80::1%eth0\n"
                                         "  nameserver\t192.0.2.53  # the router\n"
                                         "nameserver 192.0.2.54\n",
                                         "ip daddr 192.0.2.53 udp dport 53 accept"),
                     0);
    assert_int_equal(default_upstream_is("nameserver 2001:db8::53\n",
                                         "ip6 daddr 2001:db8::53 udp dport 53 accept"),
                     0);
    assert_int_equal(default_upstream_is("options edns0\n", "ip daddr 127.0.0.1 udp dport 53"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_listed),
        cmocka_unit_test(test_resolve_then_connect),
        cmocka_unit_test(test_static_and_unlisted),
        cmocka_unit_test(test_other_resolvers_dropped),
        cmocka_unit_test(test_tcp_cname_aaaa),
        cmocka_unit_test(test_big_answer),
        cmocka_unit_test(test_upstream_down),
        cmocka_unit_test(test_second_app),
        cmocka_unit_test(test_control_validation),
        cmocka_unit_test(test_stub_confined_and_restarted),
        cmocka_unit_test(test_config_refused),
        cmocka_unit_test(test_default_upstream),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
