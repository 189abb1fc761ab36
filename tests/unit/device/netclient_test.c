/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavised's side of the network policy with the real pavise-netd of this build, as root,
 * in a network and mount namespace this test creates (the host's nftables are never
 * touched): apps added and removed, their stub address and counters, requests refused,
 * pavise-netd confined, killed, hung and started again with every app given back, and
 * what happens once it keeps dying.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <nftables/libnftables.h>

#include "testutil.h"

#include "netclient.h"

#ifndef PV_BIN_DIR
#error "PV_BIN_DIR: the build's bin directory (tests/CMakeLists.txt)"
#endif

#define STUB_UID 69990
#define APP1     70001
#define APP2     70002
#define APP3     70003
#define WAIT_MS  15000
#define REPLY_MS 1500
/* CAP_SETGID 6, CAP_SETUID 7, CAP_SETPCAP 8, CAP_NET_BIND_SERVICE 10, CAP_NET_ADMIN 12 */
#define NETD_CAPS "00000000000015c0"

static struct fixture {
    int netd_fd;
    nc_ctx *nc;
    nc_app *app1, *app2;
} F;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

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

static bool table_has(const char *needle)
{
    char *s = nft_list("table inet pavise");
    bool found = s != NULL && strstr(s, needle) != NULL;
    free(s);
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

/* The DNS stub: the child of parent running as STUB_UID (once it has dropped to it). */
static pid_t stub_of(pid_t parent)
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
            child = child ||
                    (strncmp(line, "PPid:", 5) == 0 && strtol(line + 5, NULL, 10) == (long)parent);
            uid = uid || (strncmp(line, "Uid:", 4) == 0 && strtol(line + 4, NULL, 10) == STUB_UID);
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

static pid_t wait_stub(pid_t parent, pid_t not )
{
    int64_t deadline = now_ms() + WAIT_MS;
    pid_t p;
    while (((p = stub_of(parent)) < 0 || p == not ) && now_ms() < deadline) {
        pause_ms(10);
    }
    return p;
}

/* Asks a stub address for an A record of name over UDP; returns the answer's rcode, or -1
 * (no answer within the deadline). */
static int stub_rcode(const char *stub, const char *name)
{
    uint8_t q[300] = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}, a[512];
    size_t n = 12;
    for (const char *s = name; *s != '\0';) {
        const char *dot = strchr(s, '.');
        size_t l = dot != NULL ? (size_t)(dot - s) : strlen(s);
        q[n++] = (uint8_t)l;
        memcpy(q + n, s, l);
        n += l;
        s += l + (dot != NULL ? 1 : 0);
    }
    q[n++] = 0;
    q[n++] = 0, q[n++] = 1, q[n++] = 0, q[n++] = 1; /* A, IN */
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(53)};
    inet_pton(AF_INET, stub, &sin.sin_addr);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int rcode = -1;
    if (sendto(fd, q, n, 0, (struct sockaddr *)&sin, sizeof(sin)) == (ssize_t)n) {
        ssize_t got = recv(fd, a, sizeof(a), 0);
        if (got >= 12 && a[0] == 0x12 && a[1] == 0x34) {
            rcode = a[3] & 0x0f;
        }
    }
    close(fd);
    return rcode;
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

static int add(uid_t uid, unsigned index, const char *const *conns, const uint16_t *ports,
               nc_app **out, pv_err *e)
{
    pv_capabilities caps;
    caps_of(&caps, conns, ports);
    int r = nc_app_add(F.nc, uid, index, &caps, out, e);
    pv_strlist_free(&caps.allowed_connections);
    return r;
}

static nc_config config(void)
{
    nc_config cfg = {.netd_fd = F.netd_fd,
                     .upstream = "127.0.0.1:5353",
                     .stub_uid = STUB_UID,
                     .stub_gid = STUB_UID,
                     .app_uid_first = APP1,
                     .app_uid_last = APP1 + 99,
                     .log_level = PV_LOG_WARN,
                     .reply_ms = REPLY_MS};
    return cfg;
}

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

static int group_setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof(F));
    F.netd_fd = -1;
    if (geteuid() != 0) {
        fprintf(stderr, "netclient_test needs root (network namespace, nftables)\n");
        return -1;
    }
    if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        fprintf(stderr, "unshare: %s\n", strerror(errno));
        return -1;
    }
    lo_up();
    /* A killed pavise-netd's DNS stub is orphaned: reaped here, not left to init. */
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    F.netd_fd = open(PV_BIN_DIR "/pavise-netd", O_PATH | O_CLOEXEC);
    if (F.netd_fd < 0) {
        fprintf(stderr, "%s: %s\n", PV_BIN_DIR "/pavise-netd", strerror(errno));
        return -1;
    }
    nc_config cfg = config();
    pv_err e;
    if (nc_start(&cfg, &F.nc, &e) != PV_OK) {
        fprintf(stderr, "nc_start: %s\n", pv_err_msg(&e));
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    nc_app_remove(F.nc, F.app1);
    nc_app_remove(F.nc, F.app2);
    nc_free(F.nc);
    if (F.netd_fd >= 0) {
        close(F.netd_fd);
    }
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    return 0;
}

/* ==== the tests ==== */

static void test_add(void **state)
{
    (void)state;
    static const char *const conns[] = {"allowed.test", "192.0.2.7", NULL};
    static const uint16_t ports[] = {8080, 0};
    pv_err e;
    assert_int_equal(add(APP1, 0, conns, ports, &F.app1, &e), PV_OK);
    assert_string_equal(nc_app_stub_address(F.app1), "127.77.0.1");
    assert_int_equal(add(APP2, 5, NULL, NULL, &F.app2, &e), PV_OK);
    assert_string_equal(nc_app_stub_address(F.app2), "127.77.0.6");
    assert_true(table_has("70001 : jump a70001"));
    assert_true(table_has("70002 : jump a70002"));
    assert_true(table_has("elements = { 192.0.2.7 }"));
    assert_true(table_has("tcp sport 8080 accept"));
    assert_true(table_has("meta skuid 69990 ip daddr 127.0.0.1 udp dport 5353 accept"));
    /* the stub answers on the app's address: a name it does not list is refused */
    assert_int_equal(stub_rcode("127.77.0.1", "unlisted.test"), 5);
}

static void test_refused(void **state)
{
    (void)state;
    static const char *const bad_host[] = {"bad_host!", NULL};
    static const char *const ok[] = {"x.test", NULL};
    nc_app *a = NULL;
    pv_err e;
    pid_t pid = nc_netd_pid(F.nc);
    /* refused by pavise-netd (np_app_add): it keeps running */
    assert_int_equal(add(APP3, 7, bad_host, NULL, &a, &e), PV_ERR_INVALID_ARG);
    assert_null(a);
    assert_non_null(strstr(pv_err_msg(&e), "allowed connection 0"));
    /* refused here: uid or index in use, uid outside the range */
    assert_int_equal(add(APP1, 7, ok, NULL, &a, &e), PV_ERR_EXISTS);
    assert_int_equal(add(APP3, 0, ok, NULL, &a, &e), PV_ERR_EXISTS);
    assert_int_equal(add(APP1 + 100, 8, ok, NULL, &a, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(add(APP3, 1024, ok, NULL, &a, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(nc_netd_pid(F.nc), pid);
    assert_false(table_has("a70003"));
    /* a pavise-netd that cannot start says why (np_init refuses before touching nftables) */
    nc_config cfg = config();
    cfg.upstream = "127.77.0.1";
    nc_ctx *nc = NULL;
    assert_int_equal(nc_start(&cfg, &nc, &e), PV_ERR_INVALID_ARG);
    assert_null(nc);
    assert_non_null(strstr(pv_err_msg(&e), "pavise-netd: network policy: the upstream resolver is "
                                           "a DNS stub address"));
    cfg.upstream = "192.0.2.1:99999";
    assert_int_equal(nc_start(&cfg, &nc, &e), PV_ERR_USAGE);
    assert_true(table_has("70001 : jump a70001"));
}

/* pavise-netd started by hand, in a network namespace of its own, sent what pavised never
 * sends: each is refused and it keeps serving. Returns 0, or the number of the step that
 * failed. */
static int raw_requests(void)
{
    static const struct {
        const char *req;
        int code;
    } cases[] = {
        {"not json", PV_ERR_FORMAT},
        {"[1, 2]", PV_ERR_FORMAT},
        {"{\"op\":\"frob\",\"uid\":70001}", PV_ERR_FORMAT},
        {"{\"uid\":70001}", PV_ERR_FORMAT},
        {"{\"op\":\"remove\",\"uid\":\"70001\"}", PV_ERR_FORMAT},
        {"{\"op\":\"remove\",\"uid\":-1}", PV_ERR_FORMAT},
        {"{\"op\":\"remove\",\"uid\":70001}", PV_ERR_NOT_FOUND},
        {"{\"op\":\"stats\",\"uid\":70001,\"extra\":1}", PV_ERR_FORMAT},
        {"{\"op\":\"stats\",\"op\":\"stats\",\"uid\":70001}", PV_ERR_FORMAT},
        {"{\"op\":\"add\",\"uid\":70001,\"index\":0,\"hosts\":\"a.test\",\"ports\":[]}",
         PV_ERR_FORMAT},
        {"{\"op\":\"add\",\"uid\":70001,\"index\":0,\"hosts\":[1],\"ports\":[]}", PV_ERR_FORMAT},
        {"{\"op\":\"add\",\"uid\":70001,\"index\":0,\"hosts\":[],\"ports\":[0]}", PV_ERR_FORMAT},
        {"{\"op\":\"add\",\"uid\":70001,\"index\":0,\"hosts\":[],\"ports\":[65536]}",
         PV_ERR_FORMAT},
        {"{\"op\":\"add\",\"uid\":70001,\"index\":1024,\"hosts\":[],\"ports\":[]}", PV_ERR_FORMAT},
        {"{\"op\":\"add\",\"uid\":70001,\"index\":0,\"hosts\":[\"a\\u0000b\"],\"ports\":[]}",
         PV_ERR_FORMAT},
        {"{\"op\":\"add\",\"uid\":70001,\"index\":0,\"hosts\":[],\"ports\":[]} x", PV_ERR_FORMAT},
        {"{\"op\":\"add\",\"uid\":1,\"index\":0,\"hosts\":[],\"ports\":[]}", PV_ERR_INVALID_ARG},
        {"{\"op\":\"add\",\"uid\":70001,\"index\":0,\"hosts\":[\"a.test\"],\"ports\":[22]}", PV_OK},
        {"{\"op\":\"stats\",\"uid\":70001}", PV_OK},
        {"{\"op\":\"remove\",\"uid\":70001}", PV_OK},
    };
    int sv[2];
    if (unshare(CLONE_NEWNET) != 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        return 1;
    }
    lo_up();
    pid_t pid = fork();
    if (pid == 0) {
        /* only the control socket, as fd 3, is inherited */
        if (sv[1] == 3 ? fcntl(3, F_SETFD, 0) != 0 : dup2(sv[1], 3) != 3) {
            _exit(126);
        }
        char *argv[] = {"pavise-netd",
                        "--control-fd",
                        "3",
                        "--stub-uid",
                        "69990",
                        "--app-uid-first",
                        "70000",
                        "--app-uid-last",
                        "70099",
                        "--dns-upstream",
                        "127.0.0.1:5353",
                        "--log-level",
                        "error",
                        NULL};
        execv(PV_BIN_DIR "/pavise-netd", argv);
        _exit(127);
    }
    close(sv[1]);
    char *buf = malloc(NC_MSG_MAX + 2);
    int step = 2;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t n = recv(sv[0], buf, NC_MSG_MAX, 0);
    if (n != 11 || memcmp(buf, "{\"ok\":true}", 11) != 0) {
        goto out;
    }
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        step = 10 + (int)i;
        size_t len = strlen(cases[i].req);
        if (send(sv[0], cases[i].req, len, 0) != (ssize_t)len ||
            (n = recv(sv[0], buf, NC_MSG_MAX, 0)) <= 0) {
            goto out;
        }
        buf[n] = '\0';
        json_t *rep = json_loads(buf, 0, NULL);
        bool ok = json_is_true(json_object_get(rep, "ok"));
        int code = (int)json_integer_value(json_object_get(rep, "code"));
        bool good = cases[i].code == PV_OK ? ok
                                           : (!ok && code == cases[i].code &&
                                              json_is_string(json_object_get(rep, "error")));
        json_decref(rep);
        if (!good) {
            fprintf(stderr, "request %s: answer %s\n", cases[i].req, buf);
            goto out;
        }
    }
    /* too large: refused whole, and the next request is served */
    step = 50;
    memset(buf, ' ', NC_MSG_MAX + 1);
    if (send(sv[0], buf, NC_MSG_MAX + 1, 0) != NC_MSG_MAX + 1 ||
        (n = recv(sv[0], buf, NC_MSG_MAX, 0)) <= 0 || memmem(buf, (size_t)n, "-6", 2) == NULL) {
        goto out;
    }
    step = 51;
    if (send(sv[0], "{\"op\":\"stats\",\"uid\":1}", 22, 0) != 22 ||
        (n = recv(sv[0], buf, NC_MSG_MAX, 0)) <= 0 || memmem(buf, (size_t)n, "-15", 3) == NULL) {
        goto out;
    }
    /* end of file: it deletes the table and exits 0 */
    step = 52;
    close(sv[0]);
    sv[0] = -1;
    int st = 0;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        goto out;
    }
    pid = -1;
    step = 53;
    char *s = nft_list("table inet pavise");
    free(s);
    if (s != NULL) {
        goto out;
    }
    step = 0;
out:
    free(buf);
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return step;
}

static void test_raw_requests(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        _exit(raw_requests());
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_confined(void **state)
{
    (void)state;
    pid_t pid = nc_netd_pid(F.nc);
    assert_true(pid > 0);
    assert_true(status_has(pid, "CapEff:\t" NETD_CAPS));
    assert_true(status_has(pid, "CapPrm:\t" NETD_CAPS));
    assert_true(status_has(pid, "CapBnd:\t" NETD_CAPS));
    assert_true(status_has(pid, "CapInh:\t0000000000000000"));
    assert_true(status_has(pid, "CapAmb:\t0000000000000000"));
    assert_true(status_has(pid, "NoNewPrivs:\t1"));
    /* its stub has nothing at all */
    pid_t stub = wait_stub(pid, -1);
    assert_true(stub > 0);
    assert_true(status_has(stub, "CapBnd:\t0000000000000000"));
    assert_true(status_has(stub, "CapEff:\t0000000000000000"));
    assert_true(status_has(stub, "Seccomp:\t2"));
    /* the stub dies: pavise-netd, with only its capabilities left, starts another that
     * has every app's sockets */
    assert_int_equal(kill(stub, SIGKILL), 0);
    pid_t again = wait_stub(pid, stub);
    assert_true(again > 0 && again != stub);
    assert_true(status_has(again, "CapBnd:\t0000000000000000"));
    assert_int_equal(stub_rcode("127.77.0.1", "unlisted.test"), 5);
    assert_int_equal(stub_rcode("127.77.0.6", "unlisted.test"), 5);
    assert_int_equal(nc_netd_pid(F.nc), pid);
}

static nc_app_stats stats_when(nc_app *a, uint64_t min_refused)
{
    nc_app_stats s;
    pv_err e;
    int64_t deadline = now_ms() + WAIT_MS;
    do {
        assert_int_equal(nc_app_stats_get(F.nc, a, &s, &e), PV_OK);
    } while (s.refused_queries < min_refused && now_ms() < deadline && (pause_ms(10), true));
    return s;
}

static void test_stats(void **state)
{
    (void)state;
    nc_app_stats s = stats_when(F.app1, 2); /* test_add's and test_confined's queries */
    assert_true(s.refused_queries >= 2);
    assert_int_equal(s.addresses_added, 0);
    assert_int_equal(stub_rcode("127.77.0.1", "unlisted2.test"), 5);
    s = stats_when(F.app1, 3);
    assert_int_equal(s.refused_queries, 3);
}

/* Waits until pavise-netd runs again with both apps (nc_dispatch on nc_fd, as pavised). */
static void restarted(pid_t old)
{
    struct pollfd p = {.fd = nc_fd(F.nc), .events = POLLIN};
    assert_int_equal(poll(&p, 1, WAIT_MS), 1);
    pv_err e;
    assert_int_equal(nc_dispatch(F.nc, &e), PV_OK);
    pid_t pid = nc_netd_pid(F.nc);
    assert_true(pid > 0 && pid != old);
    assert_true(table_has("70001 : jump a70001"));
    assert_true(table_has("70002 : jump a70002"));
    assert_true(table_has("elements = { 192.0.2.7 }"));
    assert_true(table_has("tcp sport 8080 accept"));
    assert_string_equal(nc_app_stub_address(F.app1), "127.77.0.1");
    assert_int_equal(stub_rcode("127.77.0.6", "unlisted.test"), 5);
}

static void test_killed(void **state)
{
    (void)state;
    nc_app_stats before = stats_when(F.app1, 3);
    int fd = nc_fd(F.nc);
    pid_t pid = nc_netd_pid(F.nc);
    assert_int_equal(kill(pid, SIGKILL), 0);
    restarted(pid);
    assert_int_equal(nc_fd(F.nc), fd); /* what pavised watches stays the same */
    /* the counters do not go backwards, and count on */
    nc_app_stats s = stats_when(F.app1, 0);
    assert_int_equal(s.refused_queries, before.refused_queries);
    assert_int_equal(stub_rcode("127.77.0.1", "unlisted3.test"), 5);
    s = stats_when(F.app1, before.refused_queries + 1);
    assert_int_equal(s.refused_queries, before.refused_queries + 1);
}

static void test_hung(void **state)
{
    (void)state;
    pid_t pid = nc_netd_pid(F.nc);
    nc_app_stats s;
    pv_err e;
    assert_int_equal(kill(pid, SIGSTOP), 0);
    /* no answer within REPLY_MS: killed, started again, asked again */
    int64_t t0 = now_ms();
    assert_int_equal(nc_app_stats_get(F.nc, F.app2, &s, &e), PV_OK);
    assert_true(now_ms() - t0 >= REPLY_MS);
    assert_true(nc_netd_pid(F.nc) > 0 && nc_netd_pid(F.nc) != pid);
    assert_int_equal(kill(pid, 0), -1);
    assert_true(table_has("70001 : jump a70001"));
    assert_true(table_has("70002 : jump a70002"));
}

static void test_remove(void **state)
{
    (void)state;
    nc_app_remove(F.nc, F.app2);
    F.app2 = NULL;
    assert_false(table_has("a70002"));
    assert_true(table_has("70001 : jump a70001"));
    /* the address can be given again at once */
    static const char *const conns[] = {"again.test", NULL};
    pv_err e;
    assert_int_equal(add(APP2, 5, conns, NULL, &F.app2, &e), PV_OK);
    assert_int_equal(stub_rcode("127.77.0.6", "unlisted.test"), 5);
}

/* nc_free: pavise-netd deletes the table, stops its stub and exits. */
static void test_shutdown(void **state)
{
    (void)state;
    pid_t pid = nc_netd_pid(F.nc);
    pid_t stub = stub_of(pid);
    assert_true(stub > 0);
    nc_app_remove(F.nc, F.app2);
    F.app2 = NULL;
    F.app1 = NULL; /* freed by nc_free */
    nc_free(F.nc);
    F.nc = NULL;
    assert_int_equal(kill(pid, 0), -1);
    char *s = nft_list("table inet pavise");
    assert_null(s);
    int64_t deadline = now_ms() + WAIT_MS;
    while (kill(stub, 0) == 0 && now_ms() < deadline) {
        pause_ms(10);
    }
    assert_int_equal(kill(stub, 0), -1);
    /* a fresh one for the next test */
    nc_config cfg = config();
    pv_err e;
    assert_int_equal(nc_start(&cfg, &F.nc, &e), PV_OK);
}

/* Dying over and over: at most NC_RESTART_MAX starts a minute, then requests fail and the
 * apps' uids stay refused. */
static void test_restart_limit(void **state)
{
    (void)state;
    static const char *const conns[] = {"a.test", NULL};
    pv_err e;
    assert_int_equal(add(APP1, 0, conns, NULL, &F.app1, &e), PV_OK);
    int r = PV_OK;
    unsigned kills = 0;
    while (r == PV_OK && kills <= NC_RESTART_MAX) {
        pid_t pid = nc_netd_pid(F.nc);
        assert_true(pid > 0);
        assert_int_equal(kill(pid, SIGKILL), 0);
        kills++;
        struct pollfd p = {.fd = nc_fd(F.nc), .events = POLLIN};
        assert_int_equal(poll(&p, 1, WAIT_MS), 1);
        r = nc_dispatch(F.nc, &e);
    }
    assert_int_equal(r, PV_ERR_IO);
    assert_int_equal(kills, NC_RESTART_MAX + 1);
    assert_int_equal(nc_netd_pid(F.nc), -1);
    nc_app *a = NULL;
    assert_int_equal(add(APP3, 7, conns, NULL, &a, &e), PV_ERR_IO);
    assert_null(a);
    nc_app_stats s;
    assert_int_equal(nc_app_stats_get(F.nc, F.app1, &s, &e), PV_ERR_IO);
    /* what the last one left keeps refusing every app uid without rules */
    assert_true(table_has("meta skuid 70001-70100"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add),          cmocka_unit_test(test_refused),
        cmocka_unit_test(test_raw_requests), cmocka_unit_test(test_confined),
        cmocka_unit_test(test_stats),        cmocka_unit_test(test_killed),
        cmocka_unit_test(test_hung),         cmocka_unit_test(test_remove),
        cmocka_unit_test(test_shutdown),     cmocka_unit_test(test_restart_limit),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
