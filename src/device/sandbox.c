/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The compartment's process shape (sandbox.h): pavised clones the init into new mount, pid,
 * ipc and uts namespaces; the init builds the root (sb_mount.c), drops every privilege,
 * applies Landlock (sb_landlock.c) and forks the app, which loads the seccomp filter
 * (sb_seccomp.c), hands its listener to pavised and execs the entry point.
 *
 * The child runs only system calls (see sb_internal.h): the clone is a raw clone3, so no
 * fork handler of the C library runs and no lock held by another thread of pavised is ever
 * waited for; credentials change through raw system calls, because the C library's
 * wrappers would signal every thread it believes exists and wait for them.
 */
#include "sb_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT           47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

/* Where the init keeps what it needs, and where the app has it before execve. */
enum {
    FD_STATUS = 10,
    FD_JOIN0 = 11, /* the cgroup v1 "tasks" files the init writes "0" to */
    FD_JOIN1 = 15,
    FD_OUT = 12,
    FD_ERR = 13,
    FD_CHAN = 14,
    FD_APP_STATUS = 4,
    FD_APP_EXEC = 5,
};

/* What the app process reports on the exec pipe when it fails before or at execve. */
typedef struct exec_rec {
    int32_t step;
    int32_t err;
} exec_rec;

static const char *const app_steps[] = {"app descriptors", "rlimit nofile", "seccomp",
                                        "send the seccomp listener", "execve"};
enum { APP_FDS, APP_NOFILE, APP_SECCOMP, APP_SEND, APP_EXEC };

/* Locked securebits: root is never special again (NOROOT), capabilities are always dropped
 * on a uid change (fixups on, keep_caps off) and no ambient capability can be raised. */
#define SB_SECUREBITS                                                                              \
    (SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED |                        \
     SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED)

#define SB_DEFAULT_NPROC  64
#define SB_DEFAULT_NOFILE 256

static long clone3_raw(struct clone_args *a)
{
    return syscall(SYS_clone3, a, sizeof(*a));
}

/* ---- the child ---- */

static void send_wire(int fd, uint32_t kind, int32_t value, const char *step)
{
    sb_wire w;
    memset(&w, 0, sizeof(w));
    w.magic = SB_WIRE_MAGIC;
    w.kind = kind;
    w.value = value;
    if (step != NULL) {
        sb_step(w.step, step, NULL);
    }
    while (send(fd, &w, sizeof(w), MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
}

__attribute__((noreturn)) static void fail(int status_fd, const char *step, int err)
{
    send_wire(status_fd, SB_EV_SETUP_FAILED, err > 0 && err < 4096 ? err : EIO, step);
    _exit(1);
}

/* Moves src[i] to dst[i] (-1: dst[i] is closed), whatever the overlaps: everything is first
 * duplicated above all of them. The originals stay open. */
static int fd_place(const int *src, const int *dst, const bool *cloexec, int n)
{
    int hi = 0, tmp[8];
    for (int i = 0; i < n; i++) {
        hi = src[i] > hi ? src[i] : hi;
        hi = dst[i] > hi ? dst[i] : hi;
    }
    for (int i = 0; i < n; i++) {
        tmp[i] = src[i] < 0 ? -1 : fcntl(src[i], F_DUPFD_CLOEXEC, hi + 1);
        if (src[i] >= 0 && tmp[i] < 0) {
            return -1;
        }
    }
    for (int i = 0; i < n; i++) {
        if (tmp[i] < 0) {
            close(dst[i]);
        } else if (dup3(tmp[i], dst[i], cloexec[i] ? O_CLOEXEC : 0) < 0) {
            return -1;
        }
    }
    for (int i = 0; i < n; i++) {
        if (tmp[i] >= 0) {
            close(tmp[i]);
        }
    }
    return 0;
}

static int set_limit(int res, rlim_t v)
{
    struct rlimit l = {.rlim_cur = v, .rlim_max = v};
    return setrlimit(res, &l);
}

/* The app's identity with nothing else: no groups, no capability in any set, locked
 * securebits, no_new_privs. Fails the setup on any error, and if the result is not exactly
 * that. */
static void drop_privileges(const sb_spec *s)
{
    uint32_t nproc = s->nproc != 0 ? s->nproc : SB_DEFAULT_NPROC;
    if (set_limit(RLIMIT_CORE, 0) != 0 || set_limit(RLIMIT_NPROC, nproc) != 0) {
        fail(FD_STATUS, "rlimit", errno);
    }
    /* Every capability up to the kernel's last (the kernel says EINVAL past it). */
    for (unsigned long cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
            if (errno == EINVAL && cap > 0) {
                break;
            }
            fail(FD_STATUS, "drop the bounding set", errno);
        }
    }
    if (prctl(PR_SET_SECUREBITS, SB_SECUREBITS, 0, 0, 0) != 0) {
        fail(FD_STATUS, "securebits", errno);
    }
    if (syscall(SYS_setgroups, 0, NULL) != 0) {
        fail(FD_STATUS, "setgroups", errno);
    }
    if (syscall(SYS_setresgid, s->gid, s->gid, s->gid) != 0) {
        fail(FD_STATUS, "setresgid", errno);
    }
    if (syscall(SYS_setresuid, s->uid, s->uid, s->uid) != 0) {
        fail(FD_STATUS, "setresuid", errno);
    }
    /* The uid change emptied the permitted and effective sets; inheritable stays unless
     * cleared. */
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof(d));
    if (syscall(SYS_capset, &h, d) != 0) {
        fail(FD_STATUS, "capset", errno);
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
        fail(FD_STATUS, "clear ambient capabilities", errno);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        fail(FD_STATUS, "no_new_privs", errno);
    }
    /* Check, rather than trust, the result. */
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    memset(d, 0xff, sizeof(d));
    if (syscall(SYS_getresuid, &ru, &eu, &su) != 0 || syscall(SYS_getresgid, &rg, &eg, &sg) != 0 ||
        syscall(SYS_capget, &h, d) != 0) {
        fail(FD_STATUS, "verify credentials", errno);
    }
    if (ru != s->uid || eu != s->uid || su != s->uid || rg != s->gid || eg != s->gid ||
        sg != s->gid || syscall(SYS_getgroups, 0, NULL) != 0 ||
        (d[0].effective | d[1].effective | d[0].permitted | d[1].permitted | d[0].inheritable |
         d[1].inheritable) != 0 ||
        prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
        fail(FD_STATUS, "verify credentials", EPERM);
    }
    for (unsigned long cap = 0; cap < 64; cap++) {
        int in = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (in < 0) {
            break; /* past the last capability */
        }
        if (in != 0) {
            fail(FD_STATUS, "verify credentials", EPERM);
        }
    }
}

__attribute__((noreturn)) static void app_fail(int fd, int step, int err)
{
    exec_rec rec = {.step = step, .err = err};
    while (write(fd, &rec, sizeof(rec)) < 0 && errno == EINTR) {
    }
    _exit(127);
}

/* Sends the seccomp listener to pavised (SB_EV_LISTENER). */
static int send_listener(int status, int listener)
{
    sb_wire w;
    memset(&w, 0, sizeof(w));
    w.magic = SB_WIRE_MAGIC;
    w.kind = SB_EV_LISTENER;
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } c;
    memset(&c, 0, sizeof(c));
    struct iovec iov = {.iov_base = &w, .iov_len = sizeof(w)};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof(c.buf)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &listener, sizeof(int));
    ssize_t n;
    do {
        n = sendmsg(status, &m, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof(w) ? 0 : -1;
}

/* The app (pid 2): its descriptors, the seccomp filter, execve. */
__attribute__((noreturn)) static void app_main(const sb_plan *p, int devnull, int exec_w)
{
    const sb_spec *s = p->spec;
    int src[6] = {devnull,
                  s->stdout_fd >= 0 ? FD_OUT : devnull,
                  s->stderr_fd >= 0 ? FD_ERR : devnull,
                  s->chan_fd >= 0 ? FD_CHAN : -1,
                  FD_STATUS,
                  exec_w};
    static const int dst[6] = {0, 1, 2, SB_CHAN_FD, FD_APP_STATUS, FD_APP_EXEC};
    static const bool cloexec[6] = {false, false, false, false, true, true};
    if (fd_place(src, dst, cloexec, 6) != 0) {
        app_fail(exec_w, APP_FDS, errno);
    }
    if (close_range(FD_APP_EXEC + 1, ~0u, 0) != 0) {
        app_fail(FD_APP_EXEC, APP_FDS, errno);
    }
    if (set_limit(RLIMIT_NOFILE, s->nofile != 0 ? s->nofile : SB_DEFAULT_NOFILE) != 0) {
        app_fail(FD_APP_EXEC, APP_NOFILE, errno);
    }
    int listener = sb_seccomp_load(s->filter);
    if (listener < 0) {
        app_fail(FD_APP_EXEC, APP_SECCOMP, errno);
    }
    /* From here on every system call is filtered: only allowed ones follow. */
    if (send_listener(FD_APP_STATUS, listener) != 0) {
        app_fail(FD_APP_EXEC, APP_SEND, errno);
    }
    close(listener);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(p->exec_path, s->argv, s->envp);
    app_fail(FD_APP_EXEC, APP_EXEC, errno);
}

static void reap_children(pid_t app)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        if (pid == app) {
            send_wire(FD_STATUS, SB_EV_EXITED, st, NULL);
            _exit(0);
        }
    }
}

/* The init after the fork: RUNNING once execve succeeded (the exec pipe closes without a
 * record), then forwards signals and reaps until the app exits. */
__attribute__((noreturn)) static void init_loop(pid_t app, int exec_r)
{
    exec_rec rec;
    ssize_t n;
    do {
        n = read(exec_r, &rec, sizeof(rec));
    } while (n < 0 && errno == EINTR);
    close(exec_r);
    if (n == (ssize_t)sizeof(rec)) {
        size_t k = sizeof(app_steps) / sizeof(app_steps[0]);
        const char *step = rec.step >= 0 && (size_t)rec.step < k ? app_steps[rec.step] : "app";
        send_wire(FD_STATUS, SB_EV_SETUP_FAILED, rec.err > 0 && rec.err < 4096 ? rec.err : EIO,
                  step);
        while (waitpid(app, NULL, 0) < 0 && errno == EINTR) {
        }
        _exit(1);
    }
    send_wire(FD_STATUS, SB_EV_RUNNING, 0, NULL);
    sigset_t all;
    sigfillset(&all);
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&all, &si);
        if (sig == SIGCHLD) {
            reap_children(app);
        } else if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
            kill(app, sig);
        }
    }
}

/* pid 1 of the compartment. Never returns. */
__attribute__((noreturn)) static void child_init(const sb_plan *p, int status,
                                                 const int join[CG_MAX_SELF], size_t n_join)
{
    const sb_spec *s = p->spec;
    char step[SB_STEP_MAX];
    /* Signals wait for sigwaitinfo (a pid namespace's init ignores default-action signals
     * otherwise); handlers inherited from pavised are reset. */
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            sigaction(sig, &dfl, NULL);
        }
    }
    /* Without pavised nobody watches this compartment: end with it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    umask(022);
    /* Keep only the status socket, the cgroup files, the app's stdout, stderr and channel. */
    int src[6] = {status,     n_join > 0 ? join[0] : -1, s->stdout_fd, s->stderr_fd,
                  s->chan_fd, n_join > 1 ? join[1] : -1};
    static const int dst[6] = {FD_STATUS, FD_JOIN0, FD_OUT, FD_ERR, FD_CHAN, FD_JOIN1};
    static const bool cloexec[6] = {true, true, true, true, true, true};
    if (fd_place(src, dst, cloexec, 6) != 0) {
        fail(status, "descriptors", errno);
    }
    if (close_range(0, FD_STATUS - 1, 0) != 0 || close_range(FD_JOIN1 + 1, ~0u, 0) != 0) {
        fail(FD_STATUS, "close descriptors", errno);
    }
    /* The namespace is built before this process joins the app's cgroup (below): this is
     * pavised's own code, allocating little, and nothing of the app runs before the join. */
    if (sethostname(p->hostname, strlen(p->hostname)) != 0) {
        fail(FD_STATUS, "sethostname", errno);
    }
    if (sb_mount_setup(p, step) != 0) {
        fail(FD_STATUS, step, errno);
    }
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0) {
        fail(FD_STATUS, "open /dev/null", errno);
    }
    /* Join the app's cgroup (v1) by writing "0" to each hierarchy's tasks file: this
     * process is single-threaded, and a thread moving itself takes no global lock. (On v2
     * the clone put it there already.) Nothing of the app runs before this. */
    for (size_t i = 0; i < n_join; i++) {
        int fd = i == 0 ? FD_JOIN0 : FD_JOIN1;
        if (write(fd, "0", 1) != 1) {
            fail(FD_STATUS, "join the cgroup", errno);
        }
        close(fd);
    }
    /* In its cgroup now: make that the root of what /proc/self/cgroup shows, so the host's
     * hierarchy is not revealed (needs CAP_SYS_ADMIN: before the drop). */
    if (unshare(CLONE_NEWCGROUP) != 0) {
        fail(FD_STATUS, "cgroup namespace", errno);
    }
    drop_privileges(s);
    const char *bad = NULL;
    if (sb_landlock_apply(p->abi, p->rules, p->n_rules, s->bind_ports, s->n_bind_ports, &bad) !=
        0) {
        int err = errno;
        sb_step(step, "landlock ", bad);
        fail(FD_STATUS, step, err);
    }
    /* The uid change cleared both; the app (same uid) must not read or trace this process. */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        fail(FD_STATUS, "dumpable", errno);
    }
    int ex[2];
    if (pipe2(ex, O_CLOEXEC) != 0) {
        fail(FD_STATUS, "exec pipe", errno);
    }
    struct clone_args ca = {.exit_signal = SIGCHLD};
    long app = clone3_raw(&ca);
    if (app < 0) {
        fail(FD_STATUS, "fork the app", errno);
    }
    if (app == 0) {
        close(ex[0]);
        app_main(p, devnull, ex[1]);
    }
    close(ex[1]);
    close(devnull);
    close(FD_OUT);
    close(FD_ERR);
    close(FD_CHAN);
    init_loop((pid_t)app, ex[0]);
}

/* ---- pavised's side ---- */

static int check_spec(const sb_spec *s, pv_err *e)
{
    if (s == NULL || s->filter == NULL || s->argv == NULL || s->argv[0] == NULL ||
        s->envp == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "compartment: filter, argv and envp required");
    }
    if (s->uid == 0 || s->gid == 0 || s->uid == (uid_t)-1 || s->gid == (gid_t)-1) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "compartment %s: never as root or uid -1",
                          s->name != NULL ? s->name : "");
    }
    if ((s->nproc != 0 && s->nproc < 2) || (s->nofile != 0 && s->nofile < 16)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "compartment: nproc at least 2 (init and app), nofile at least 16");
    }
    return PV_OK;
}

int sb_start(const sb_spec *s, sb_proc *out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    sb_plan *plan = NULL;
    int sv[2] = {-1, -1}, join[CG_MAX_SELF] = {-1, -1}, pidfd = -1;
    size_t n_join = 0;
    long pid = -1;
    out->pid = -1;
    out->pidfd = -1;
    out->status_fd = -1;
    if ((r = check_spec(s, e)) != PV_OK) {
        return r;
    }
    if ((r = sb_plan_build(s, sb_landlock_abi(), &plan, e)) != PV_OK) {
        return pv_err_wrap(e, r, "compartment %s", s->name);
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "compartment %s: socketpair", s->name);
        goto out;
    }
    if (s->cgroup != NULL && (r = cg_self_attach_open(s->cgroup, join, &n_join, e)) != PV_OK) {
        pv_err_wrap(e, r, "compartment %s", s->name);
        goto out;
    }
    struct clone_args ca = {
        .flags = CLONE_PIDFD | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS,
        .pidfd = (uint64_t)(uintptr_t)&pidfd,
        .exit_signal = SIGCHLD,
    };
    int cgfd = s->cgroup != NULL ? cg_dir_fd(s->cgroup) : -1;
    if (cgfd >= 0) {
        /* cgroup v2: born in the app's group. */
        ca.flags |= CLONE_INTO_CGROUP;
        ca.cgroup = (uint64_t)cgfd;
    } else if (s->cgroup != NULL && n_join == 0) {
        r = pv_err_set(e, PV_ERR_INTERNAL, "compartment %s: no way into the cgroup", s->name);
        goto out;
    }
    pid = clone3_raw(&ca);
    if (pid < 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "compartment %s: clone3", s->name);
        goto out;
    }
    if (pid == 0) {
        close(sv[0]);
        child_init(plan, sv[1], join, n_join);
    }
    close(sv[1]);
    sv[1] = -1;
    out->pid = (pid_t)pid;
    out->pidfd = pidfd;
    out->status_fd = sv[0];
    pid = -1;
    pidfd = sv[0] = -1;
    r = PV_OK;
out:
    if (pid > 0) {
        /* Cloned but not handed over: it must not run. */
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        while (waitpid((pid_t)pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    for (int i = 0; i < 2; i++) {
        if (sv[i] >= 0) {
            close(sv[i]);
        }
        if (join[i] >= 0) {
            close(join[i]);
        }
    }
    if (pidfd >= 0) {
        close(pidfd);
    }
    sb_plan_free(plan);
    return r;
}

/* Checks one message against the layout of its kind. */
static int check_wire(const sb_wire *w, size_t nfd, pv_err *e)
{
    if (w->magic != SB_WIRE_MAGIC) {
        return pv_err_set(e, PV_ERR_FORMAT, "status message: bad magic");
    }
    bool step_empty = true;
    for (size_t i = 0; i < sizeof(w->step); i++) {
        step_empty = step_empty && w->step[i] == '\0';
    }
    switch (w->kind) {
    case SB_EV_RUNNING:
        if (w->value != 0 || !step_empty || nfd != 0) {
            return pv_err_set(e, PV_ERR_FORMAT, "status message: malformed RUNNING");
        }
        return PV_OK;
    case SB_EV_LISTENER:
        if (w->value != 0 || !step_empty || nfd != 1) {
            return pv_err_set(e, PV_ERR_FORMAT, "status message: malformed LISTENER");
        }
        return PV_OK;
    case SB_EV_EXITED: {
        int st = w->value;
        bool exited = (st & 0x7f) == 0 && (st & ~0xff00) == 0;
        bool signaled =
            (st & 0x7f) != 0 && (st & 0x7f) != 0x7f && (st & 0x7f) < 65 && (st & ~0xff) == 0;
        if (!(exited || signaled) || !step_empty || nfd != 0) {
            return pv_err_set(e, PV_ERR_FORMAT, "status message: malformed EXITED");
        }
        return PV_OK;
    }
    case SB_EV_SETUP_FAILED: {
        size_t len = strnlen(w->step, sizeof(w->step));
        if (w->value <= 0 || w->value >= 4096 || len == 0 || len == sizeof(w->step) || nfd != 0) {
            return pv_err_set(e, PV_ERR_FORMAT, "status message: malformed SETUP_FAILED");
        }
        for (size_t i = 0; i < sizeof(w->step); i++) {
            unsigned char c = (unsigned char)w->step[i];
            if (i < len ? (c < 0x20 || c > 0x7e) : c != 0) {
                return pv_err_set(e, PV_ERR_FORMAT, "status message: step is not plain text");
            }
        }
        return PV_OK;
    }
    default:
        return pv_err_set(e, PV_ERR_FORMAT, "status message: unknown kind %u", w->kind);
    }
}

#define SB_MAX_FDS_IN 4

int sb_read_event(int status_fd, sb_event *ev, pv_err *e)
{
    memset(ev, 0, sizeof(*ev));
    ev->fd = -1;
    int r = PV_ERR_INTERNAL;
    uint8_t buf[sizeof(sb_wire) + 1]; /* one more: a longer message shows as longer */
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * SB_MAX_FDS_IN)];
    } c;
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof(c.buf)};
    ssize_t n;
    do {
        n = recvmsg(status_fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return pv_err_set(e, PV_ERR_NOT_FOUND, "no status message");
        }
        return pv_err_sys(e, PV_ERR_IO, errno, "status socket");
    }
    /* Take every descriptor that came, so none leaks whatever the verdict. */
    int fds[SB_MAX_FDS_IN];
    size_t nfd = 0;
    bool other = false;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm != NULL; cm = CMSG_NXTHDR(&m, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len >= CMSG_LEN(0)) {
            size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k && nfd < SB_MAX_FDS_IN; i++) {
                memcpy(&fds[nfd++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            }
        } else {
            other = true;
        }
    }
    sb_wire w;
    if (n == 0 && nfd == 0 && !other && (m.msg_flags & MSG_CTRUNC) == 0) {
        return pv_err_set(e, PV_ERR_TRUNCATED, "status socket closed");
    }
    if (n != (ssize_t)sizeof(w) || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 || other) {
        r = pv_err_set(e, PV_ERR_FORMAT, "status message of %zd bytes", n);
        goto out;
    }
    memcpy(&w, buf, sizeof(w));
    if ((r = check_wire(&w, nfd, e)) != PV_OK) {
        goto out;
    }
    if (w.kind == SB_EV_LISTENER) {
        /* A seccomp listener answers ENOENT for an id it never issued; anything else does
         * not know the request. */
        uint64_t id = 0;
        if (ioctl(fds[0], SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 || errno != ENOENT) {
            r = pv_err_set(e, PV_ERR_FORMAT, "status message: LISTENER is not a seccomp listener");
            goto out;
        }
        ev->fd = fds[0];
        nfd = 0;
    }
    ev->kind = (sb_event_kind)w.kind;
    if (w.kind == SB_EV_EXITED) {
        ev->status = w.value;
    } else if (w.kind == SB_EV_SETUP_FAILED) {
        ev->err = w.value;
        memcpy(ev->step, w.step, sizeof(ev->step));
    }
    r = PV_OK;
out:
    for (size_t i = 0; i < nfd; i++) {
        close(fds[i]);
    }
    return r;
}

int sb_signal(const sb_proc *p, int sig)
{
    if (p == NULL || p->pidfd < 0) {
        return PV_ERR_INVALID_ARG;
    }
    if (syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) != 0) {
        return errno == ESRCH ? PV_ERR_NOT_FOUND : PV_ERR_IO;
    }
    return PV_OK;
}

void sb_proc_close(sb_proc *p)
{
    if (p == NULL) {
        return;
    }
    if (p->pidfd >= 0) {
        close(p->pidfd);
    }
    if (p->status_fd >= 0) {
        close(p->status_fd);
    }
    p->pidfd = p->status_fd = -1;
}
