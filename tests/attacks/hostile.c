// SPDX-License-Identifier: Apache-2.0
/*
 * A hostile app for the compartment attack tests (compartment_attacks.sh): one binary, one
 * attack per run, chosen by its CmdArgs. It prints one line
 *     RESULT <attack> blocked|ESCAPED|ok <detail>
 * and exits 3 when the attack was stopped with an error (so the runtime records a failure),
 * or sleeps when it got through (the test then fails on the ESCAPED line). Attacks the
 * kernel answers by killing the process print nothing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *attack;

static void forever(void)
{
    for (;;) {
        pause();
    }
}

static void result(int blocked, int err, const char *detail)
{
    printf("RESULT %s %s %s (%s)\n", attack, blocked ? "blocked" : "ESCAPED", detail,
           err != 0 ? strerror(err) : "no error");
    fflush(stdout);
    if (blocked) {
        exit(3);
    }
    forever();
}

static void ok(const char *detail)
{
    printf("RESULT %s ok %s\n", attack, detail);
    fflush(stdout);
    forever();
}

/* A TCP connect with a deadline: 0 or errno. */
static int tcp_connect(const struct sockaddr *sa, socklen_t len)
{
    int s = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) {
        return errno;
    }
    int r = connect(s, sa, len);
    if (r != 0 && errno == EINPROGRESS) {
        struct pollfd p = {.fd = s, .events = POLLOUT};
        int err = 0;
        socklen_t el = sizeof(err);
        if (poll(&p, 1, 3000) != 1) {
            close(s);
            return ETIMEDOUT;
        }
        getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el);
        close(s);
        return err;
    }
    int err = r == 0 ? 0 : errno;
    close(s);
    return err;
}

static int ip_connect(const char *ip, const char *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
        return EINVAL;
    }
    return tcp_connect((struct sockaddr *)&sa, sizeof(sa));
}

static void dns_direct(const char *ip, const char *port)
{
    /* a query for "allowed.test" A */
    static const unsigned char q[] = {0x12, 0x34, 1,   0,   0,   1,   0,   0,   0,   0,
                                      0,    0,    7,   'a', 'l', 'l', 'o', 'w', 'e', 'd',
                                      4,    't',  'e', 's', 't', 0,   0,   1,   0,   1};
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    inet_pton(AF_INET, ip, &sa.sin_addr);
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        result(1, errno, "socket");
    }
    if (sendto(s, q, sizeof(q), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        result(1, errno, "sendto");
    }
    struct pollfd p = {.fd = s, .events = POLLIN};
    if (poll(&p, 1, 3000) != 1) {
        result(1, ETIMEDOUT, "no answer");
    }
    result(0, 0, "the other resolver answered");
}

/* Reuses the connection tracking entry the DNS stub left for its upstream query: asks the
 * stub for a listed name (so it queries upstream from some port P and closes that socket),
 * then sends its own query to the upstream from every port of the ephemeral range, in
 * batches, and waits for an answer. */
static void udp_reuse(const char *ip, const char *port)
{
    static const unsigned char q[] = {0x43, 0x21, 1,   0,   0, 1,   0,   0,   0,   0, 0, 0, 5, 'o',
                                      't',  'h',  'e', 'r', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1};
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM}, *ai = NULL;
    if (getaddrinfo("allowed.test", "53", &hints, &ai) != 0) {
        result(1, 0, "the listed name did not resolve");
    }
    struct sockaddr_in up = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    inet_pton(AF_INET, ip, &up.sin_addr);
    enum { BATCH = 200 };
    struct pollfd p[BATCH];
    for (int base = 32768; base < 61000; base += BATCH) {
        int n = 0;
        for (int i = 0; i < BATCH && base + i < 61000; i++) {
            int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            struct sockaddr_in me = {.sin_family = AF_INET,
                                     .sin_port = htons((uint16_t)(base + i))};
            if (s < 0) {
                continue;
            }
            if (bind(s, (struct sockaddr *)&me, sizeof(me)) != 0) {
                close(s);
                continue;
            }
            sendto(s, q, sizeof(q), 0, (struct sockaddr *)&up, sizeof(up));
            p[n++] = (struct pollfd){.fd = s, .events = POLLIN};
        }
        int got = poll(p, (nfds_t)n, 30);
        for (int i = 0; i < n; i++) {
            close(p[i].fd);
        }
        if (got > 0) {
            result(0, 0, "the upstream resolver answered through a reused entry");
        }
    }
    result(1, 0, "no port reached the upstream resolver");
}

/* Sends one raw app-channel packet (the hostile app speaks the wire itself, not through the
 * SDK) and reads one answer: its length, 0 when the runtime closed the channel, -1 when
 * nothing came within 15 s. */
/* The app channel's descriptor, -1 outside pavised. */
static int chan_fd(void)
{
    const char *env = getenv("PAVISE_FD");
    return env != NULL ? atoi(env) : -1;
}

static ssize_t chan_request(const uint8_t *pkt, size_t n, uint8_t *ans, size_t cap)
{
    int fd = chan_fd();
    if (fd < 0 || send(fd, pkt, n, MSG_NOSIGNAL) != (ssize_t)n) {
        return -1;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 15000) != 1) {
        return -1;
    }
    ssize_t got = recv(fd, ans, cap, 0);
    return got < 0 ? 0 : got;
}

/* The result code of an answer "01 42 0005 <type> <result>", or 1 for anything else. */
static int result_code(const uint8_t *a, ssize_t n)
{
    if (n != 9 || a[0] != 1 || a[1] != 0x42) {
        return 1;
    }
    return (int)(int32_t)(((uint32_t)a[5] << 24) | ((uint32_t)a[6] << 16) | ((uint32_t)a[7] << 8) |
                          a[8]);
}

/* Asks the runtime to sign with the device key: without DeviceAuthentication ("denied"), as
 * fast as it can ("flood", until it is refused LIMIT), or with a digest of a length no hash
 * has ("malformed", which must end its channel). */
static void sign_attack(const char *how)
{
    uint8_t pkt[4 + 64], ans[2100];
    memset(pkt, 0x5a, sizeof(pkt));
    pkt[0] = 1;
    pkt[1] = 8;
    pkt[2] = 0;
    pkt[3] = 32;
    if (strcmp(how, "denied") == 0) {
        ssize_t n = chan_request(pkt, 36, ans, sizeof(ans));
        result(result_code(ans, n) == -2, 0, "sign without DeviceAuthentication");
    } else if (strcmp(how, "flood") == 0) {
        for (int i = 0; i < 100; i++) {
            ssize_t n = chan_request(pkt, 36, ans, sizeof(ans));
            if (n > 0 && result_code(ans, n) == -5) {
                char d[64];
                snprintf(d, sizeof(d), "refused LIMIT after %d signatures", i);
                result(1, 0, d);
            }
            if (n <= 0) {
                result(0, 0, "the runtime stopped answering");
            }
        }
        result(0, 0, "100 signatures, never refused");
    } else if (strcmp(how, "order") == 0) {
        /* A sign and a status query sent together: the sign is answered first (the runtime
         * reads nothing more while it signs), then the status. */
        static const uint8_t status[] = {1, 6, 0, 0};
        int fd = chan_fd();
        if (fd < 0 || send(fd, pkt, 36, MSG_NOSIGNAL) != 36 ||
            send(fd, status, sizeof(status), MSG_NOSIGNAL) != (ssize_t)sizeof(status)) {
            result(1, errno, "requests not sent");
        }
        ssize_t n[2] = {-1, -1};
        uint8_t got[2][2100];
        for (int i = 0; i < 2; i++) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            n[i] = poll(&p, 1, 15000) == 1 ? recv(fd, got[i], sizeof(got[i]), 0) : -1;
        }
        bool sign_first =
            (n[0] == 68 && got[0][1] == 0x43) || (n[0] == 9 && got[0][1] == 0x42 && got[0][4] == 8);
        if (sign_first && n[1] == 21 && got[1][1] == 0x41) {
            ok("the sign was answered before the status");
        }
        printf("RESULT sign FAILED answers of %zd and %zd bytes\n", n[0], n[1]);
        fflush(stdout);
        exit(4);
    } else if (strcmp(how, "exit") == 0) {
        /* Asks, and is gone before the answer: the runtime drops the signature it started. */
        (void)send(chan_fd(), pkt, 36, MSG_NOSIGNAL);
        result(1, 0, "asked for a signature and exited");
    } else {
        pkt[3] = 33;
        ssize_t n = chan_request(pkt, 37, ans, sizeof(ans));
        result(n == 0, 0, "a 33-byte digest");
    }
}

static void on_alarm(int sig)
{
    (void)sig;
}

/* Calls a forbidden syscall over and over, interrupting each with a timer signal, hoping a
 * withdrawn notification goes unpunished. */
static void seccomp_retry(void)
{
    struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART */
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {.it_interval = {0, 200}, .it_value = {0, 200}};
    setitimer(ITIMER_REAL, &it, NULL);
    long interrupted = 0;
    for (int i = 0; i < 20000; i++) {
        if (syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -1, 0) < 0 && errno == EINTR) {
            interrupted++;
        }
    }
    char d[64];
    snprintf(d, sizeof(d), "%ld forbidden calls interrupted, still alive", interrupted);
    result(0, 0, d);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: hostile ATTACK [ARG...]\n");
        return 2;
    }
    attack = argv[1];
    const char *a1 = argc > 2 ? argv[2] : "";
    const char *a2 = argc > 3 ? argv[3] : "";
    if (strcmp(attack, "idle") == 0) {
        printf("RESULT idle ok running\n");
        fflush(stdout);
        forever();
    } else if (strcmp(attack, "read") == 0) {
        int fd = open(a1, O_RDONLY | O_CLOEXEC);
        result(fd < 0, fd < 0 ? errno : 0, a1);
    } else if (strcmp(attack, "write") == 0) {
        int fd = open(a1, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        result(fd < 0, fd < 0 ? errno : 0, a1);
    } else if (strcmp(attack, "fill") == 0) {
        /* write until the file system says no; a1: the quota in KiB, a2: the tolerance */
        long quota = atol(a1), slack = atol(a2);
        int fd = open("/storage/fill", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        char buf[1024];
        long kb = 0;
        memset(buf, 'x', sizeof(buf));
        if (fd < 0) {
            result(1, errno, "open /storage/fill");
        }
        while (write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf)) {
            kb++;
        }
        int err = errno;
        char d[64];
        snprintf(d, sizeof(d), "wrote %ld KiB", kb);
        result(err == ENOSPC && kb >= quota - 1 && kb <= quota + slack, err, d);
    } else if (strcmp(attack, "exec") == 0) {
        char *args[] = {(char *)a1, NULL};
        execve(a1, args, NULL);
        result(1, errno, a1);
    } else if (strcmp(attack, "forkbomb") == 0) {
        long n = 0;
        for (;;) {
            pid_t p = fork();
            if (p == 0) {
                forever();
            }
            if (p < 0) {
                break;
            }
            n++;
        }
        int err = errno;
        printf("RESULT forkbomb blocked stopped after %ld processes (%s)\n", n, strerror(err));
        fflush(stdout);
        kill(0, SIGKILL); /* the children and itself */
        return 3;
    } else if (strcmp(attack, "memory") == 0) {
        size_t mb = (size_t)atol(a1);
        for (size_t i = 0; i < mb; i++) {
            char *p = malloc(1 << 20);
            if (p == NULL) {
                result(1, ENOMEM, "malloc failed");
            }
            memset(p, (int)i, 1 << 20);
        }
        result(0, 0, "allocated it all");
    } else if (strcmp(attack, "raw-socket") == 0) {
        int s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
        result(s < 0, s < 0 ? errno : 0, "AF_INET SOCK_RAW");
    } else if (strcmp(attack, "packet-socket") == 0) {
        int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
        result(s < 0, s < 0 ? errno : 0, "AF_PACKET");
    } else if (strcmp(attack, "ptrace") == 0) {
        long r = ptrace(PTRACE_ATTACH, (pid_t)atoi(a1[0] != '\0' ? a1 : "1"), NULL, NULL);
        result(r != 0, r != 0 ? errno : 0, "PTRACE_ATTACH");
    } else if (strcmp(attack, "mount") == 0) {
        int r = mount("none", "/tmp", "tmpfs", 0, NULL);
        result(r != 0, r != 0 ? errno : 0, "tmpfs on /tmp");
    } else if (strcmp(attack, "connect") == 0) {
        int err = ip_connect(a1, a2);
        result(err != 0, err, a1);
    } else if (strcmp(attack, "reach") == 0) {
        /* a listed host, by name: must work */
        struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
        int g = getaddrinfo(a1, a2, &hints, &ai);
        if (g != 0) {
            printf("RESULT reach FAILED resolve %s: %s\n", a1, gai_strerror(g));
            fflush(stdout);
            return 4;
        }
        int err = tcp_connect(ai->ai_addr, ai->ai_addrlen);
        if (err != 0) {
            printf("RESULT reach FAILED connect %s: %s\n", a1, strerror(err));
            fflush(stdout);
            return 4;
        }
        ok(a1);
    } else if (strcmp(attack, "resolve") == 0) {
        /* an unlisted host, by name */
        struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
        int g = getaddrinfo(a1, a2, &hints, &ai);
        if (g != 0) {
            result(1, 0, gai_strerror(g));
        }
        int err = tcp_connect(ai->ai_addr, ai->ai_addrlen);
        result(err != 0, err, "resolved, then connect");
    } else if (strcmp(attack, "dns") == 0) {
        dns_direct(a1, a2);
    } else if (strcmp(attack, "seccomp-retry") == 0) {
        seccomp_retry();
    } else if (strcmp(attack, "udp-reuse") == 0) {
        udp_reuse(a1, a2);
    } else if (strcmp(attack, "device") == 0) {
        int fd = open(a1, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0 && strcmp(a2, "declared") == 0) {
            ok(a1);
        }
        result(fd < 0, fd < 0 ? errno : 0, a1);
    } else if (strcmp(attack, "sign") == 0) {
        sign_attack(a1);
    } else if (strcmp(attack, "signal") == 0) {
        /* every process it may signal: only its own compartment's */
        int r = kill(-1, SIGKILL);
        result(1, r != 0 ? errno : 0, "kill(-1, SIGKILL) returned");
    }
    fprintf(stderr, "hostile: unknown attack %s\n", attack);
    return 2;
}
