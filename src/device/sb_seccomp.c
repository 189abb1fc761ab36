/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The compartment's seccomp filter: an allow-list of what a dynamically linked glibc
 * program with threads, sockets, TLS, timers and file I/O needs, compiled once with
 * libseccomp and exported as BPF. Everything else raises a user notification that pavised
 * reads (sb_seccomp_take), records and answers by killing the compartment.
 * docs/compartments.md §seccomp lists the groups and why each is there or not.
 */
#include "sb_internal.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#endif

/* Allowed whatever their arguments. */
static const int allow_any[] = {
    /* memory */
    SCMP_SYS(brk),
    SCMP_SYS(mmap),
    SCMP_SYS(munmap),
    SCMP_SYS(mremap),
    SCMP_SYS(mprotect),
    SCMP_SYS(madvise),
    SCMP_SYS(msync),
    SCMP_SYS(mincore),
    SCMP_SYS(membarrier),
    SCMP_SYS(pkey_alloc),
    SCMP_SYS(pkey_free),
    SCMP_SYS(pkey_mprotect),
    /* threads and processes of its own */
    SCMP_SYS(set_tid_address),
    SCMP_SYS(set_robust_list),
    SCMP_SYS(futex),
    SCMP_SYS(futex_waitv),
    SCMP_SYS(rseq),
    SCMP_SYS(sched_yield),
    SCMP_SYS(sched_getaffinity),
    SCMP_SYS(sched_setaffinity),
    SCMP_SYS(sched_getparam),
    SCMP_SYS(sched_getscheduler),
    SCMP_SYS(sched_get_priority_max),
    SCMP_SYS(sched_get_priority_min),
    SCMP_SYS(getcpu),
    SCMP_SYS(fork),
    SCMP_SYS(vfork),
    SCMP_SYS(execve),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
    SCMP_SYS(wait4),
    SCMP_SYS(waitid),
    SCMP_SYS(arch_prctl),
    /* identity (read only) and limits */
    SCMP_SYS(getpid),
    SCMP_SYS(gettid),
    SCMP_SYS(getppid),
    SCMP_SYS(getuid),
    SCMP_SYS(geteuid),
    SCMP_SYS(getgid),
    SCMP_SYS(getegid),
    SCMP_SYS(getresuid),
    SCMP_SYS(getresgid),
    SCMP_SYS(getgroups),
    SCMP_SYS(getpgrp),
    SCMP_SYS(getpgid),
    SCMP_SYS(getsid),
    SCMP_SYS(setsid),
    SCMP_SYS(setpgid),
    SCMP_SYS(capget),
    SCMP_SYS(getrlimit),
    SCMP_SYS(setrlimit),
    SCMP_SYS(getrusage),
    SCMP_SYS(getpriority),
    SCMP_SYS(uname),
    SCMP_SYS(sysinfo),
    SCMP_SYS(times),
    SCMP_SYS(umask),
    /* signals (the pid namespace, the uid and Landlock keep them inside the compartment) */
    SCMP_SYS(rt_sigaction),
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(rt_sigpending),
    SCMP_SYS(rt_sigsuspend),
    SCMP_SYS(rt_sigtimedwait),
    SCMP_SYS(rt_sigqueueinfo),
    SCMP_SYS(rt_tgsigqueueinfo),
    SCMP_SYS(sigaltstack),
    SCMP_SYS(signalfd),
    SCMP_SYS(signalfd4),
    SCMP_SYS(kill),
    SCMP_SYS(tgkill),
    SCMP_SYS(tkill),
    SCMP_SYS(pause),
    SCMP_SYS(restart_syscall),
    /* time and timers (reading; setting the clock is not here) */
    SCMP_SYS(clock_gettime),
    SCMP_SYS(clock_getres),
    SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep),
    SCMP_SYS(gettimeofday),
    SCMP_SYS(time),
    SCMP_SYS(alarm),
    SCMP_SYS(getitimer),
    SCMP_SYS(setitimer),
    SCMP_SYS(timer_create),
    SCMP_SYS(timer_settime),
    SCMP_SYS(timer_gettime),
    SCMP_SYS(timer_getoverrun),
    SCMP_SYS(timer_delete),
    SCMP_SYS(timerfd_create),
    SCMP_SYS(timerfd_settime),
    SCMP_SYS(timerfd_gettime),
    /* files (Landlock and the mounts decide which) */
    SCMP_SYS(read),
    SCMP_SYS(write),
    SCMP_SYS(readv),
    SCMP_SYS(writev),
    SCMP_SYS(pread64),
    SCMP_SYS(pwrite64),
    SCMP_SYS(preadv),
    SCMP_SYS(pwritev),
    SCMP_SYS(preadv2),
    SCMP_SYS(pwritev2),
    SCMP_SYS(open),
    SCMP_SYS(openat),
    SCMP_SYS(openat2),
    SCMP_SYS(creat),
    SCMP_SYS(close),
    SCMP_SYS(close_range),
    SCMP_SYS(lseek),
    SCMP_SYS(fstat),
    SCMP_SYS(stat),
    SCMP_SYS(lstat),
    SCMP_SYS(newfstatat),
    SCMP_SYS(statx),
    SCMP_SYS(statfs),
    SCMP_SYS(fstatfs),
    SCMP_SYS(access),
    SCMP_SYS(faccessat),
    SCMP_SYS(faccessat2),
    SCMP_SYS(fcntl),
    SCMP_SYS(dup),
    SCMP_SYS(dup2),
    SCMP_SYS(dup3),
    SCMP_SYS(pipe),
    SCMP_SYS(pipe2),
    SCMP_SYS(getdents),
    SCMP_SYS(getdents64),
    SCMP_SYS(readlink),
    SCMP_SYS(readlinkat),
    SCMP_SYS(getcwd),
    SCMP_SYS(chdir),
    SCMP_SYS(fchdir),
    SCMP_SYS(mkdir),
    SCMP_SYS(mkdirat),
    SCMP_SYS(rmdir),
    SCMP_SYS(unlink),
    SCMP_SYS(unlinkat),
    SCMP_SYS(rename),
    SCMP_SYS(renameat),
    SCMP_SYS(renameat2),
    SCMP_SYS(link),
    SCMP_SYS(linkat),
    SCMP_SYS(symlink),
    SCMP_SYS(symlinkat),
    SCMP_SYS(chmod),
    SCMP_SYS(fchmod),
    SCMP_SYS(fchmodat),
    SCMP_SYS(truncate),
    SCMP_SYS(ftruncate),
    SCMP_SYS(fallocate),
    SCMP_SYS(fsync),
    SCMP_SYS(fdatasync),
    SCMP_SYS(fadvise64),
    SCMP_SYS(readahead),
    SCMP_SYS(flock),
    SCMP_SYS(utimensat),
    SCMP_SYS(sendfile),
    SCMP_SYS(copy_file_range),
    SCMP_SYS(eventfd),
    SCMP_SYS(eventfd2),
    SCMP_SYS(inotify_init),
    SCMP_SYS(inotify_init1),
    SCMP_SYS(inotify_add_watch),
    SCMP_SYS(inotify_rm_watch),
    /* polling */
    SCMP_SYS(poll),
    SCMP_SYS(ppoll),
    SCMP_SYS(select),
    SCMP_SYS(pselect6),
    SCMP_SYS(epoll_create),
    SCMP_SYS(epoll_create1),
    SCMP_SYS(epoll_ctl),
    SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait),
    SCMP_SYS(epoll_pwait2),
    /* sockets once made (socket() itself is filtered below; the firewall decides hosts) */
    SCMP_SYS(connect),
    SCMP_SYS(bind),
    SCMP_SYS(listen),
    SCMP_SYS(accept),
    SCMP_SYS(accept4),
    SCMP_SYS(getsockname),
    SCMP_SYS(getpeername),
    SCMP_SYS(sendto),
    SCMP_SYS(recvfrom),
    SCMP_SYS(sendmsg),
    SCMP_SYS(recvmsg),
    SCMP_SYS(sendmmsg),
    SCMP_SYS(recvmmsg),
    SCMP_SYS(shutdown),
    SCMP_SYS(setsockopt),
    SCMP_SYS(getsockopt),
    /* randomness */
    SCMP_SYS(getrandom),
};

/* prctl options an ordinary program uses; none changes privileges or another process. */
static const int prctl_ok[] = {
    PR_SET_NAME,         PR_GET_NAME,         PR_GET_DUMPABLE, PR_SET_PDEATHSIG,  PR_GET_PDEATHSIG,
    PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS, PR_CAPBSET_READ, PR_GET_SECUREBITS, PR_SET_TIMERSLACK,
    PR_GET_TIMERSLACK,   PR_SET_VMA,          PR_GET_KEEPCAPS,
};

/* Namespace flags clone() must not carry: a new user namespace (the one an unprivileged
 * process can create) opens most of the kernel's attack surface. */
#define SB_CLONE_NS                                                                                \
    ((uint64_t)(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |      \
                CLONE_NEWPID | CLONE_NEWNET))

/* Adds a rule, skipping syscalls this architecture does not have (negative pseudo numbers). */
static int rule(scmp_filter_ctx c, uint32_t action, int nr, unsigned n,
                const struct scmp_arg_cmp *args)
{
    if (nr < 0) {
        return 0;
    }
    return seccomp_rule_add_exact_array(c, action, nr, n, args);
}

static int add_socket_rules(scmp_filter_ctx c)
{
    int rc = 0;
    const uint32_t A = SCMP_ACT_ALLOW;
    /* AF_UNIX of any type; its peers are inside the compartment or named by pavised. */
    struct scmp_arg_cmp unix_[] = {SCMP_A0_64(SCMP_CMP_EQ, AF_UNIX)};
    rc |= rule(c, A, SCMP_SYS(socket), 1, unix_);
    rc |= rule(c, A, SCMP_SYS(socketpair), 1, unix_);
    /* TCP and UDP over IPv4 and IPv6: no raw, packet or ICMP sockets. The type is compared
     * without SOCK_NONBLOCK and SOCK_CLOEXEC (the low four bits are the type). */
    const int domains[] = {AF_INET, AF_INET6};
    const struct {
        int type, proto;
    } kinds[] = {
        {SOCK_STREAM, 0}, {SOCK_STREAM, IPPROTO_TCP}, {SOCK_DGRAM, 0}, {SOCK_DGRAM, IPPROTO_UDP}};
    for (size_t d = 0; d < 2; d++) {
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
            struct scmp_arg_cmp a[] = {SCMP_A0_64(SCMP_CMP_EQ, (uint64_t)domains[d]),
                                       SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xf, (uint64_t)kinds[k].type),
                                       SCMP_A2_64(SCMP_CMP_EQ, (uint64_t)kinds[k].proto)};
            rc |= rule(c, A, SCMP_SYS(socket), 3, a);
        }
    }
    /* Netlink for the routing table only (getaddrinfo's AI_ADDRCONFIG, if_nameindex). */
    struct scmp_arg_cmp nl[] = {SCMP_A0_64(SCMP_CMP_EQ, AF_NETLINK),
                                SCMP_A2_64(SCMP_CMP_EQ, NETLINK_ROUTE)};
    rc |= rule(c, A, SCMP_SYS(socket), 2, nl);
    return rc;
}

static int add_filtered_rules(scmp_filter_ctx c)
{
    int rc = 0;
    const uint32_t A = SCMP_ACT_ALLOW;
    /* clone: threads and fork, never a namespace. clone3 passes its flags in memory, which
     * a filter cannot read: ENOSYS makes glibc fall back to clone. */
    struct scmp_arg_cmp cl[] = {SCMP_A0_64(SCMP_CMP_MASKED_EQ, SB_CLONE_NS, 0)};
    rc |= rule(c, A, SCMP_SYS(clone), 1, cl);
    rc |= rule(c, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0, NULL);
    /* ioctl: everything but injecting input into a terminal (TIOCSTI) or the console
     * (TIOCLINUX). The kernel reads the request as 32 bits, so those two are refused
     * whatever the upper bits; any other request must have them clear (so no value can be
     * made to look like another one). The refusals come first in libseccomp's output
     * (sb_seccomp_test checks they win). */
    struct scmp_arg_cmp sti[] = {SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI)};
    struct scmp_arg_cmp lnx[] = {SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCLINUX)};
    struct scmp_arg_cmp any[] = {SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xffffffff00000000ull, 0)};
    rc |= rule(c, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1, sti);
    rc |= rule(c, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1, lnx);
    rc |= rule(c, A, SCMP_SYS(ioctl), 1, any);
    for (size_t i = 0; i < sizeof(prctl_ok) / sizeof(prctl_ok[0]); i++) {
        struct scmp_arg_cmp a[] = {SCMP_A0_64(SCMP_CMP_EQ, (uint64_t)prctl_ok[i])};
        rc |= rule(c, A, SCMP_SYS(prctl), 1, a);
    }
    /* Its own limits only (pid 0). */
    struct scmp_arg_cmp self[] = {SCMP_A0_64(SCMP_CMP_EQ, 0)};
    rc |= rule(c, A, SCMP_SYS(prlimit64), 1, self);
    /* personality: the default, or the query; not READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE... */
    struct scmp_arg_cmp per0[] = {SCMP_A0_64(SCMP_CMP_EQ, 0)};
    struct scmp_arg_cmp perq[] = {SCMP_A0_64(SCMP_CMP_EQ, 0xffffffffu)};
    rc |= rule(c, A, SCMP_SYS(personality), 1, per0);
    rc |= rule(c, A, SCMP_SYS(personality), 1, perq);
    return rc;
}

/* Exports the compiled filter through a memfd and reads it back. */
static int export_bpf(scmp_filter_ctx c, sb_filter *f, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    int fd = memfd_create("pavise-seccomp", MFD_CLOEXEC);
    if (fd < 0) {
        return pv_err_sys(e, PV_ERR_INTERNAL, errno, "memfd_create");
    }
    int rc = seccomp_export_bpf(c, fd);
    if (rc != 0) {
        r = pv_err_sys(e, PV_ERR_INTERNAL, -rc, "seccomp_export_bpf");
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        r = pv_err_sys(e, PV_ERR_INTERNAL, errno, "fstat");
        goto out;
    }
    size_t n = (size_t)st.st_size;
    if (n == 0 || n % sizeof(struct sock_filter) != 0 ||
        n / sizeof(struct sock_filter) > BPF_MAXINSNS) {
        r = pv_err_set(e, PV_ERR_INTERNAL, "libseccomp exported %zu bytes of BPF", n);
        goto out;
    }
    f->insns = malloc(n);
    if (f->insns == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t got = 0; got < n;) {
        ssize_t k = pread(fd, (uint8_t *)f->insns + got, n - got, (off_t)got);
        if (k <= 0) {
            r = pv_err_sys(e, PV_ERR_INTERNAL, k < 0 ? errno : EIO, "reading the BPF back");
            goto out;
        }
        got += (size_t)k;
    }
    f->len = (unsigned short)(n / sizeof(struct sock_filter));
    r = PV_OK;
out:
    close(fd);
    return r;
}

int sb_seccomp_build(sb_filter **out, pv_err *e)
{
    *out = NULL;
    int r = PV_ERR_INTERNAL;
    sb_filter *f = calloc(1, sizeof(*f));
    scmp_filter_ctx c = seccomp_init(SCMP_ACT_NOTIFY);
    if (f == NULL || c == NULL) {
        r = pv_err_set(e, f == NULL ? PV_ERR_NOMEM : PV_ERR_INTERNAL, "seccomp_init failed");
        goto out;
    }
    /* Another architecture's syscall numbers (x32, i386 on x86_64) mean something else:
     * kill rather than match them against this table. */
    int rc = seccomp_attr_set(c, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    for (size_t i = 0; rc == 0 && i < sizeof(allow_any) / sizeof(allow_any[0]); i++) {
        rc = rule(c, SCMP_ACT_ALLOW, allow_any[i], 0, NULL);
    }
    if (rc == 0) {
        rc = add_socket_rules(c);
    }
    if (rc == 0) {
        rc = add_filtered_rules(c);
    }
    if (rc != 0) {
        r = pv_err_set(e, PV_ERR_INTERNAL, "libseccomp refused a rule of the allow-list");
        goto out;
    }
    if ((r = export_bpf(c, f, e)) != PV_OK) {
        goto out;
    }
    *out = f;
    f = NULL;
    r = PV_OK;
out:
    if (c != NULL) {
        seccomp_release(c);
    }
    sb_filter_free(f);
    return r;
}

void sb_filter_free(sb_filter *f)
{
    if (f != NULL) {
        free(f->insns);
        free(f);
    }
}

int sb_seccomp_load(const sb_filter *f)
{
    struct sock_fprog prog = {.len = f->len, .filter = f->insns};
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
                        &prog);
}

int sb_seccomp_take(int listener, int *syscall_nr, pid_t *pid, pv_err *e)
{
    *syscall_nr = -1;
    *pid = 0;
    /* Never block: the caller's event loop said the listener is readable, but the
     * notification may have been cancelled since (the task was killed). */
    struct pollfd p = {.fd = listener, .events = POLLIN};
    int n = poll(&p, 1, 0);
    if (n < 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "poll on the seccomp listener");
    }
    if (n == 0 || (p.revents & POLLIN) == 0) {
        return pv_err_set(e, PV_ERR_NOT_FOUND, "no seccomp notification pending");
    }
    struct seccomp_notif req;
    memset(&req, 0, sizeof(req)); /* the kernel insists */
    while (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) {
        if (errno == EINTR) {
            memset(&req, 0, sizeof(req));
            continue;
        }
        if (errno == ENOENT) {
            return pv_err_set(e, PV_ERR_NOT_FOUND, "the seccomp notification was cancelled");
        }
        return pv_err_sys(e, PV_ERR_IO, errno, "SECCOMP_IOCTL_NOTIF_RECV");
    }
    /* The task may have died (and its pid been reused) since: trust req only while its id
     * is still valid. */
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &req.id) != 0) {
        return pv_err_set(e, PV_ERR_NOT_FOUND, "the seccomp notification was cancelled");
    }
    /* No answer: the task stays blocked in the syscall until the caller kills the
     * compartment, so not one more instruction of the app runs after the violation. */
    *syscall_nr = req.data.nr;
    *pid = (pid_t)req.pid;
    return PV_OK;
}
