/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The compartment, started for real (root only). Two entry points run inside it: a tiny
 * static ELF written by the test (exits 0), and this very binary copied into the image,
 * which acts as the payload when its first argument is --payload: it checks from inside
 * what the compartment must look like, or tries something forbidden.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/io_uring.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#include "pavise/fs.h"
#include "sandbox.h"
#include "sb_internal.h"

extern char **environ;

#define T_NAME       "0123abcd-5678-4000-8000-00000000feed"
#define T_PORTS_BASE 20000

/* ====================================================================================== */
/* The payload: runs inside the compartment. Failures go to stderr, one line each.        */
/* ====================================================================================== */

static int p_fail;

#define P_CHECK(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __func__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, " (errno %s)\n", strerror(errno));                                     \
            p_fail++;                                                                              \
        }                                                                                          \
    } while (0)

static long env_num(const char *name)
{
    const char *v = getenv(name);
    return v != NULL ? strtol(v, NULL, 10) : -1;
}

static bool in_list(const char *n, const char *const *list)
{
    for (; *list != NULL; list++) {
        if (strcmp(n, *list) == 0) {
            return true;
        }
    }
    return false;
}

/* Every entry of dir is in allowed. */
static void p_only(const char *dir, const char *const *allowed)
{
    DIR *d = opendir(dir);
    P_CHECK(d != NULL, "opendir %s", dir);
    if (d == NULL) {
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            P_CHECK(in_list(de->d_name, allowed), "%s/%s should not be there", dir, de->d_name);
        }
    }
    closedir(d);
}

static void p_status(void)
{
    char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    P_CHECK(fd >= 0, "open /proc/self/status");
    if (fd < 0) {
        return;
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    long uid = env_num("SB_T_UID"), gid = env_num("SB_T_GID");
    char want[128];
    snprintf(want, sizeof(want), "Uid:\t%ld\t%ld\t%ld\t%ld\n", uid, uid, uid, uid);
    P_CHECK(strstr(buf, want) != NULL, "%s", want);
    snprintf(want, sizeof(want), "Gid:\t%ld\t%ld\t%ld\t%ld\n", gid, gid, gid, gid);
    P_CHECK(strstr(buf, want) != NULL, "%s", want);
    static const char *const zero[] = {"CapInh:\t0000000000000000\n",
                                       "CapPrm:\t0000000000000000\n",
                                       "CapEff:\t0000000000000000\n",
                                       "CapBnd:\t0000000000000000\n",
                                       "CapAmb:\t0000000000000000\n",
                                       "NoNewPrivs:\t1\n",
                                       "Seccomp:\t2\n",
                                       "Groups:\t \n"};
    for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++) {
        P_CHECK(strstr(buf, zero[i]) != NULL, "/proc/self/status lacks %s", zero[i]);
    }
}

/* The options of the mount at point, from /proc/self/mountinfo. */
static bool mount_opts(const char *point, char *opts, size_t size)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[1024];
    bool found = false;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        /* id parent major:minor root point options ... */
        char *save = NULL, *tok = strtok_r(line, " ", &save);
        for (int i = 0; tok != NULL && i < 4; i++) {
            tok = strtok_r(NULL, " ", &save);
        }
        if (tok != NULL && strcmp(tok, point) == 0) {
            char *o = strtok_r(NULL, " ", &save);
            snprintf(opts, size, ",%s,", o != NULL ? o : "");
            found = true; /* the last one wins: the top of a stack */
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return found;
}

static void p_mount_has(const char *point, const char *const *want)
{
    char opts[512];
    P_CHECK(mount_opts(point, opts, sizeof(opts)), "no mount at %s", point);
    for (; *want != NULL; want++) {
        char w[64];
        snprintf(w, sizeof(w), ",%s,", *want);
        P_CHECK(strstr(opts, w) != NULL, "%s mounted %s, not %s", point, opts, *want);
    }
}

static void p_cannot_write(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    P_CHECK(fd < 0, "could create %s", path);
    if (fd >= 0) {
        close(fd);
    }
}

static void p_cannot_exec(const char *path)
{
    char *args[] = {(char *)path, NULL};
    execve(path, args, environ);
    P_CHECK(errno == EACCES || errno == EPERM, "exec %s failed with an unexpected error", path);
}

static void p_write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    P_CHECK(fd >= 0, "create %s", path);
    if (fd >= 0) {
        P_CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text), "write %s", path);
        close(fd);
    }
}

static void *p_thread(void *arg)
{
    return arg;
}

static int p_check(void)
{
    /* identity and privileges */
    P_CHECK(getuid() == (uid_t)env_num("SB_T_UID") && geteuid() == getuid(), "uid");
    P_CHECK(getgid() == (gid_t)env_num("SB_T_GID") && getegid() == getgid(), "gid");
    P_CHECK(getgroups(0, NULL) == 0, "supplementary groups");
    p_status();
    P_CHECK(getpid() == 2 && getppid() == 1, "pid %d ppid %d", (int)getpid(), (int)getppid());
    char host[64] = "";
    gethostname(host, sizeof(host));
    P_CHECK(strcmp(host, "app-0123abcd") == 0, "hostname %s", host);
    char cwd[256] = "";
    P_CHECK(getcwd(cwd, sizeof(cwd)) != NULL && strcmp(cwd, "/app") == 0, "cwd %s", cwd);
    /* environment: exactly what was given */
    size_t n_env = 0;
    for (char **e = environ; *e != NULL; e++) {
        n_env++;
    }
    P_CHECK(n_env == (size_t)env_num("SB_T_NENV") && getenv("PATH") == NULL, "environment");
    /* rlimits */
    struct rlimit l;
    P_CHECK(getrlimit(RLIMIT_CORE, &l) == 0 && l.rlim_cur == 0 && l.rlim_max == 0, "core");
    P_CHECK(getrlimit(RLIMIT_NPROC, &l) == 0 && l.rlim_max == (rlim_t)env_num("SB_T_NPROC"),
            "nproc");
    P_CHECK(getrlimit(RLIMIT_NOFILE, &l) == 0 && l.rlim_max == (rlim_t)env_num("SB_T_NOFILE"),
            "nofile");
    /* descriptors: 0-3 and the one listing them */
    int fd;
    DIR *d = opendir("/proc/self/fd");
    P_CHECK(d != NULL, "opendir /proc/self/fd");
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] != '.') {
                int n = atoi(de->d_name);
                P_CHECK(n <= 3 || n == dirfd(d), "fd %d open", n);
            }
        }
        closedir(d);
    }
    /* what is visible */
    static const char *const root[] = {"app", "dev",   "etc", "proc", "tmp", "storage",
                                       "lib", "lib64", "usr", "run",  NULL};
    p_only("/", root);
    static const char *const dev[] = {"null",  "zero",   "full",   "random",  "urandom", "fd",
                                      "stdin", "stdout", "stderr", "periph0", NULL};
    p_only("/dev", dev);
    static const char *const etc[] = {"resolv.conf", "hosts", NULL};
    p_only("/etc", etc);
    P_CHECK(access("/bin/sh", F_OK) != 0 && access("/usr/bin", F_OK) != 0, "a shell is visible");
    P_CHECK(access("/proc/1", F_OK) != 0, "the init is visible in /proc");
    P_CHECK(access("/proc/sys", F_OK) != 0, "/proc/sys is visible");
    P_CHECK(access("/proc/self/status", R_OK) == 0, "/proc/self");
    /* its cgroup is the root of its cgroup namespace: no host path */
    char cg[512] = "";
    fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
    ssize_t cgn = fd >= 0 ? read(fd, cg, sizeof(cg) - 1) : -1;
    cg[cgn > 0 ? cgn : 0] = '\0';
    P_CHECK(cgn > 0, "read /proc/self/cgroup");
    if (fd >= 0) {
        close(fd);
    }
    for (char *line = cg, *nl; *line != '\0'; line = nl + 1) {
        nl = strchr(line, '\n');
        if (nl == NULL) {
            break;
        }
        *nl = '\0';
        size_t len = strlen(line);
        P_CHECK(len >= 2 && strcmp(line + len - 2, ":/") == 0, "/proc/self/cgroup: %s", line);
    }
    /* mounts */
    p_mount_has("/", (const char *const[]){"ro", "nosuid", "nodev", "noexec", NULL});
    p_mount_has("/app", (const char *const[]){"ro", "nosuid", "nodev", NULL});
    p_mount_has("/tmp", (const char *const[]){"rw", "nosuid", "nodev", "noexec", NULL});
    p_mount_has("/storage", (const char *const[]){"rw", "nosuid", "nodev", "noexec", NULL});
    p_mount_has("/proc", (const char *const[]){"nosuid", "nodev", "noexec", NULL});
    p_mount_has("/dev/null", (const char *const[]){"nosuid", "noexec", NULL});
    p_mount_has("/run/cert.pem", (const char *const[]){"ro", "nosuid", "nodev", "noexec", NULL});
    /* writes only in /tmp and /storage */
    p_cannot_write("/planted");
    p_cannot_write("/app/planted");
    p_cannot_write("/etc/planted");
    p_cannot_write("/etc/hosts");
    p_cannot_write("/dev/planted");
    p_cannot_write("/run/cert.pem");
    p_cannot_write("/proc/self/comm");
    P_CHECK(mkdir("/lib/planted", 0755) != 0, "mkdir in /lib");
    p_write_file("/tmp/t", "tmp");
    p_write_file("/storage/s", "storage");
    P_CHECK(mkdir("/storage/d", 0700) == 0, "mkdir in /storage");
    P_CHECK(rename("/storage/s", "/storage/d/s") == 0 || env_num("SB_T_ABI") < 2,
            "rename in /storage");
    char buf[64] = "";
    fd = open("/run/cert.pem", O_RDONLY | O_CLOEXEC);
    P_CHECK(fd >= 0 && read(fd, buf, sizeof(buf)) == 5 && memcmp(buf, "CERT\n", 5) == 0,
            "read the bound certificate");
    if (fd >= 0) {
        close(fd);
    }
    fd = open("/dev/periph0", O_RDWR | O_CLOEXEC);
    P_CHECK(fd >= 0 && write(fd, "x", 1) == 1, "use the declared device");
    if (fd >= 0) {
        close(fd);
    }
    /* exec only the entry point */
    p_cannot_exec("/app/bin/other");
    const char *lib = getenv("SB_T_LIB");
    if (lib != NULL) {
        p_cannot_exec(lib);
    }
    int src = open("/app/bin/other", O_RDONLY | O_CLOEXEC);
    int dst = open("/tmp/copy", O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
    P_CHECK(src >= 0 && dst >= 0, "copy a binary to /tmp");
    for (ssize_t k; src >= 0 && dst >= 0 && (k = read(src, buf, sizeof(buf))) > 0;) {
        if (write(dst, buf, (size_t)k) != k) {
            break;
        }
    }
    close(src);
    close(dst);
    p_cannot_exec("/tmp/copy");
    /* signals: the init ignores what it has no use for, and keeps running */
    kill(1, SIGKILL);
    /* seccomp, with arguments */
    errno = 0;
    P_CHECK(ioctl(0, TIOCSTI, "x") < 0 && errno == EPERM, "TIOCSTI");
    errno = 0;
    P_CHECK(syscall(SYS_ioctl, 0, (1ul << 32) | TIOCSTI, "x") < 0 && errno == EPERM,
            "TIOCSTI with upper bits set");
    pthread_t t;
    P_CHECK(pthread_create(&t, NULL, p_thread, NULL) == 0 && pthread_join(t, NULL) == 0, "threads");
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    P_CHECK(s >= 0, "TCP socket");
    if (s >= 0 && env_num("SB_T_ABI") >= 4) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        a.sin_port = htons((uint16_t)env_num("SB_T_PORT_DENIED"));
        errno = 0;
        P_CHECK(bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 && errno == EACCES,
                "bind to an undeclared port");
        a.sin_port = htons((uint16_t)env_num("SB_T_PORT"));
        P_CHECK(bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 || errno == EADDRINUSE,
                "bind to a declared port");
    }
    if (s >= 0) {
        close(s);
    }
    s = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    P_CHECK(s >= 0, "UDP socket");
    close(s);
    s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0);
    P_CHECK(s >= 0, "route netlink socket");
    close(s);
    return p_fail == 0 ? 0 : 1;
}

static int p_forbidden(const char *what)
{
    long r = -1;
    if (strcmp(what, "ptrace") == 0) {
        r = syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
    } else if (strcmp(what, "mount") == 0) {
        r = mount("none", "/tmp", "tmpfs", 0, NULL);
    } else if (strcmp(what, "unshare") == 0) {
        r = unshare(CLONE_NEWUSER);
    } else if (strcmp(what, "clone-userns") == 0) {
        r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    } else if (strcmp(what, "packet") == 0) {
        r = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    } else if (strcmp(what, "raw") == 0) {
        r = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    } else if (strcmp(what, "bpf") == 0) {
        r = syscall(SYS_bpf, 0, NULL, 0);
    } else if (strcmp(what, "io_uring") == 0) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        r = syscall(SYS_io_uring_setup, 1, &p);
    } else if (strcmp(what, "keyctl") == 0) {
        r = syscall(SYS_keyctl, 0, 0, 0, 0, 0);
    } else if (strcmp(what, "memfd") == 0) {
        r = memfd_create("x", 0);
    } else if (strcmp(what, "personality") == 0) {
        r = syscall(SYS_personality, 0x0040000 /* ADDR_NO_RANDOMIZE */);
    } else if (strcmp(what, "setns") == 0) {
        r = syscall(SYS_setns, 0, 0);
    }
    /* Answered EPERM by pavised (it then kills the compartment). */
    return r < 0 && errno == EPERM ? 3 : 4;
}

static int payload(int argc, char **argv)
{
    const char *mode = argc > 0 ? argv[0] : "";
    if (strcmp(mode, "check") == 0) {
        return p_check();
    }
    if (strcmp(mode, "out") == 0) {
        if (write(1, "to stdout\n", 10) != 10 || write(2, "to stderr\n", 10) != 10 ||
            write(SB_CHAN_FD, "to the channel", 14) != 14) {
            return 1;
        }
        return 0;
    }
    if (strcmp(mode, "forkmany") == 0) {
        /* as many children as the limits allow (at most 16); the count is the exit code */
        pid_t kids[16];
        int n = 0;
        for (; n < 16; n++) {
            kids[n] = fork();
            if (kids[n] == 0) {
                pause();
                _exit(0);
            }
            if (kids[n] < 0) {
                break;
            }
        }
        for (int i = 0; i < n; i++) {
            kill(kids[i], SIGKILL);
            waitpid(kids[i], NULL, 0);
        }
        return n;
    }
    if (strcmp(mode, "wait") == 0) {
        for (;;) {
            pause();
        }
    }
    if (strcmp(mode, "forbidden") == 0 && argc > 1) {
        return p_forbidden(argv[1]);
    }
    return 2;
}

/* ====================================================================================== */
/* The tests                                                                              */
/* ====================================================================================== */

static sb_filter *g_filter;

/* A static x86_64 or aarch64 ELF that calls exit_group(0): two headers and three
 * instructions. */
static size_t tiny_elf(uint8_t *out)
{
#if defined(__x86_64__)
    static const uint8_t code[] = {0x31, 0xff, 0xb8, 0xe7, 0x00, 0x00, 0x00, 0x0f, 0x05};
    const uint16_t machine = 62;
#elif defined(__aarch64__)
    static const uint8_t code[] = {0x00, 0x00, 0x80, 0xd2, 0xc8, 0x0b,
                                   0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4};
    const uint16_t machine = 183;
#else
    static const uint8_t code[] = {0};
    const uint16_t machine = 0;
    return 0;
#endif
    const uint64_t base = 0x400000, entry = base + 64 + 56;
    size_t len = 64 + 56 + sizeof(code);
    memset(out, 0, len);
    memcpy(out,
           "\x7f"
           "ELF\x02\x01\x01",
           7);
    out[16] = 2; /* ET_EXEC */
    out[18] = (uint8_t)machine;
    out[19] = (uint8_t)(machine >> 8);
    out[20] = 1;
    memcpy(out + 24, &entry, 8);
    out[32] = 64; /* e_phoff */
    out[52] = 64; /* e_ehsize */
    out[54] = 56; /* e_phentsize */
    out[56] = 1;  /* e_phnum */
    uint8_t *ph = out + 64;
    ph[0] = 1; /* PT_LOAD */
    ph[4] = 5; /* R + X */
    memcpy(ph + 16, &base, 8);
    memcpy(ph + 24, &base, 8);
    uint64_t sz = len;
    memcpy(ph + 32, &sz, 8);
    memcpy(ph + 40, &sz, 8);
    uint64_t align = 0x1000;
    memcpy(ph + 48, &align, 8);
    memcpy(out + 64 + 56, code, sizeof(code));
    return len;
}

typedef struct tenv {
    char *dir, *image, *storage, *cert;
    sb_libs libs;
    uid_t uid;
    uint16_t port;
} tenv;

static void copy_self(const char *to)
{
    size_t len;
    uint8_t *d = tu_read("/proc/self/exe", &len);
    tu_write(to, d, len, 0755);
    free(d);
}

static int setup(void **state)
{
    if (geteuid() != 0) {
        print_message("sandbox tests need root: skipped\n");
        return 0;
    }
    tenv *t = calloc(1, sizeof(*t));
    t->dir = tu_mkdtemp("sandbox");
    t->image = tu_path(t->dir, "image");
    t->storage = tu_path(t->dir, "storage");
    t->cert = tu_path(t->dir, "cert.pem");
    char *bin = tu_path(t->image, "bin");
    assert_int_equal(mkdir(t->image, 0755), 0);
    assert_int_equal(mkdir(bin, 0755), 0);
    char *payload = tu_path(bin, "payload"), *other = tu_path(bin, "other");
    char *tiny = tu_path(bin, "tiny");
    copy_self(payload);
    copy_self(other);
    uint8_t elf[256];
    size_t n = tiny_elf(elf);
    if (n > 0) {
        tu_write(tiny, elf, n, 0755);
    }
    tu_write(t->cert, "CERT\n", 5, 0644);
    t->uid = (uid_t)(61000 + getpid() % 4000);
    t->port = (uint16_t)(T_PORTS_BASE + (getpid() % 10000) * 2);
    assert_int_equal(mkdir(t->storage, 0700), 0);
    assert_int_equal(chown(t->storage, t->uid, t->uid), 0);
    pv_err e;
    int r = sb_elf_libs(t->image, "/bin/payload", &t->libs, &e);
    if (r != PV_OK) {
        fail_msg("sb_elf_libs: %s", pv_err_msg(&e));
    }
    free(bin);
    free(payload);
    free(other);
    free(tiny);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    tenv *t = *state;
    if (t == NULL) {
        return 0;
    }
    sb_libs_free(&t->libs);
    tu_rmtree(t->dir);
    free(t->dir);
    free(t->image);
    free(t->storage);
    free(t->cert);
    free(t);
    return 0;
}

#define SKIP_UNLESS_ROOT(state)                                                                    \
    do {                                                                                           \
        if (*(state) == NULL) {                                                                    \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* What happened to one compartment. */
typedef struct run {
    bool running, setup_failed, exited, listener;
    int status; /* EXITED's wait status */
    int err;    /* SETUP_FAILED */
    char step[SB_STEP_MAX];
    int nr;     /* the seccomp notification's syscall, -1 */
    int reaped; /* the init's own wait status */
    char out[4096], errout[8192], chan[256];
} run;

typedef struct opts {
    const char *entry;       /* default /bin/payload */
    const char *const *args; /* after argv[0] */
    const sb_bind *binds;
    size_t n_binds;
    bool term_on_running; /* SIGTERM once RUNNING arrives */
    cg_group *cgroup;
} opts;

static void drain(int fd, char *buf, size_t size)
{
    size_t len = strlen(buf);
    for (;;) {
        ssize_t k = read(fd, buf + len, size - 1 - len);
        if (k <= 0) {
            break;
        }
        len += (size_t)k;
    }
    buf[len] = '\0';
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void start_and_wait(tenv *t, const opts *o, run *res)
{
    memset(res, 0, sizeof(*res));
    res->nr = -1;
    res->status = -1;
    int outp[2], errp[2], chan[2];
    assert_int_equal(pipe2(outp, O_CLOEXEC | O_NONBLOCK), 0);
    assert_int_equal(pipe2(errp, O_CLOEXEC | O_NONBLOCK), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, chan),
                     0);
    char *argv[16] = {"payload"};
    size_t na = 1;
    for (size_t i = 0; o->args != NULL && o->args[i] != NULL && na < 15; i++) {
        argv[na++] = (char *)o->args[i];
    }
    argv[na] = NULL;
    char env[8][64];
    char *envp[12];
    int ne = 0;
    snprintf(env[ne++], 64, "SB_T_UID=%u", (unsigned)t->uid);
    snprintf(env[ne++], 64, "SB_T_GID=%u", (unsigned)t->uid);
    snprintf(env[ne++], 64, "SB_T_NPROC=%d", 32);
    snprintf(env[ne++], 64, "SB_T_NOFILE=%d", 64);
    snprintf(env[ne++], 64, "SB_T_ABI=%d", sb_landlock_abi());
    snprintf(env[ne++], 64, "SB_T_PORT=%u", (unsigned)t->port);
    snprintf(env[ne++], 64, "SB_T_PORT_DENIED=%u", (unsigned)t->port + 1);
    /* LeakSanitizer stops the world with ptrace, which the compartment forbids. */
    snprintf(env[ne++], 64, "ASAN_OPTIONS=detect_leaks=0");
    for (int i = 0; i < ne; i++) {
        envp[i] = env[i];
    }
    char nenv[32], lib[4200];
    snprintf(nenv, sizeof(nenv), "SB_T_NENV=%d", ne + 2);
    envp[ne] = nenv;
    snprintf(lib, sizeof(lib), "SB_T_LIB=%s", t->libs.n > 1 ? t->libs.path[t->libs.n - 1] : "");
    envp[ne + 1] = lib;
    envp[ne + 2] = NULL;
    static const sb_file etc[] = {{"resolv.conf", "nameserver 127.0.0.1\n"},
                                  {"hosts", "127.0.0.1 localhost\n"}};
    uint16_t ports[] = {t->port};
    const char *entry = o->entry != NULL ? o->entry : "/bin/payload";
    bool dynamic = strcmp(entry, "/bin/payload") == 0;
    sb_spec s = {
        .name = T_NAME,
        .uid = t->uid,
        .gid = t->uid,
        .image_dir = t->image,
        .entry_point = entry,
        .argv = argv,
        .envp = envp,
        .storage_dir = t->storage,
        .libs = dynamic ? &t->libs : NULL,
        .binds = o->binds,
        .n_binds = o->n_binds,
        .etc = etc,
        .n_etc = 2,
        .tmp_bytes = 1u << 20,
        .bind_ports = ports,
        .n_bind_ports = 1,
        .nproc = 32,
        .nofile = 64,
        .filter = g_filter,
        .stdout_fd = outp[1],
        .stderr_fd = errp[1],
        .chan_fd = chan[1],
        .cgroup = o->cgroup,
    };
    sb_proc p;
    pv_err e;
    int r = sb_start(&s, &p, &e);
    if (r != PV_OK) {
        fail_msg("sb_start: %s", pv_err_msg(&e));
    }
    close(outp[1]);
    close(errp[1]);
    close(chan[1]);
    int listener = -1;
    bool init_gone = false;
    long deadline = now_ms() + 30000;
    while (!init_gone) {
        struct pollfd pf[6] = {
            {.fd = p.status_fd, .events = POLLIN}, {.fd = p.pidfd, .events = POLLIN},
            {.fd = listener, .events = POLLIN},    {.fd = outp[0], .events = POLLIN},
            {.fd = errp[0], .events = POLLIN},     {.fd = chan[0], .events = POLLIN}};
        long left = deadline - now_ms();
        if (left <= 0) {
            sb_signal(&p, SIGKILL);
            fail_msg("the compartment did not finish in time");
        }
        if (poll(pf, 6, (int)left) < 0 && errno != EINTR) {
            fail_msg("poll: %s", strerror(errno));
        }
        drain(outp[0], res->out, sizeof(res->out));
        drain(errp[0], res->errout, sizeof(res->errout));
        drain(chan[0], res->chan, sizeof(res->chan));
        if (pf[2].revents & POLLIN) {
            int nr;
            pid_t pid;
            if (sb_seccomp_take(listener, &nr, &pid, &e) == PV_OK) {
                res->nr = nr;
                assert_true(pid > 0);
                assert_int_equal(sb_signal(&p, SIGKILL), PV_OK);
            }
        }
        if (pf[1].revents & POLLIN) {
            init_gone = true; /* read what is left below */
        }
        for (;;) {
            sb_event ev;
            r = sb_read_event(p.status_fd, &ev, &e);
            if (r == PV_ERR_NOT_FOUND || r == PV_ERR_TRUNCATED) {
                break;
            }
            if (r != PV_OK) {
                fail_msg("sb_read_event: %s", pv_err_msg(&e));
            }
            switch (ev.kind) {
            case SB_EV_LISTENER:
                assert_false(res->listener);
                assert_false(res->running); /* the listener comes first */
                res->listener = true;
                listener = ev.fd;
                break;
            case SB_EV_RUNNING:
                res->running = true;
                if (o->term_on_running) {
                    assert_int_equal(sb_signal(&p, SIGTERM), PV_OK);
                }
                break;
            case SB_EV_SETUP_FAILED:
                res->setup_failed = true;
                res->err = ev.err;
                memcpy(res->step, ev.step, sizeof(res->step));
                break;
            case SB_EV_EXITED:
                res->exited = true;
                res->status = ev.status;
                break;
            }
        }
    }
    pid_t w;
    while ((w = waitpid(p.pid, &res->reaped, 0)) < 0 && errno == EINTR) {
    }
    assert_int_equal(w, p.pid);
    assert_int_equal(sb_signal(&p, SIGTERM), PV_ERR_NOT_FOUND);
    sb_proc_close(&p);
    if (listener >= 0) {
        close(listener);
    }
    drain(outp[0], res->out, sizeof(res->out));
    drain(errp[0], res->errout, sizeof(res->errout));
    drain(chan[0], res->chan, sizeof(res->chan));
    close(outp[0]);
    close(errp[0]);
    close(chan[0]);
}

static void test_static_entry_point(void **state)
{
    SKIP_UNLESS_ROOT(state);
    tenv *t = *state;
    uint8_t elf[256];
    if (tiny_elf(elf) == 0) {
        skip(); /* no hand-made ELF for this architecture */
    }
    sb_libs none;
    pv_err e;
    assert_int_equal(sb_elf_libs(t->image, "/bin/tiny", &none, &e), PV_OK);
    assert_int_equal(none.n, 0);
    run res;
    start_and_wait(t, &(opts){.entry = "/bin/tiny"}, &res);
    assert_true(res.listener);
    assert_true(res.running);
    assert_true(res.exited);
    assert_false(res.setup_failed);
    assert_true(WIFEXITED(res.status));
    assert_int_equal(WEXITSTATUS(res.status), 0);
    assert_true(WIFEXITED(res.reaped));
}

static void test_dynamic_inside(void **state)
{
    SKIP_UNLESS_ROOT(state);
    tenv *t = *state;
    const sb_bind binds[] = {
        {.src = t->cert, .dst = "/run/cert.pem"},
        {.src = "/dev/null", .dst = "/dev/periph0", .writable = true, .device = true}};
    run res;
    start_and_wait(t,
                   &(opts){.args = (const char *const[]){"--payload", "check", NULL},
                           .binds = binds,
                           .n_binds = 2},
                   &res);
    if (!res.exited || res.status != 0) {
        print_error("payload stderr:\n%s\nstep %s err %d nr %d\n", res.errout, res.step, res.err,
                    res.nr);
    }
    assert_true(res.running);
    assert_true(res.exited);
    assert_int_equal(res.status, 0);
    assert_int_equal(res.nr, -1);
    /* what it wrote in /storage is in the host's directory, owned by the app */
    char *d = tu_path(t->storage, "d/s");
    struct stat st;
    assert_int_equal(stat(d, &st), 0);
    assert_int_equal(st.st_uid, t->uid);
    free(d);
}

static void test_stdio_and_channel(void **state)
{
    SKIP_UNLESS_ROOT(state);
    tenv *t = *state;
    run res;
    start_and_wait(t, &(opts){.args = (const char *const[]){"--payload", "out", NULL}}, &res);
    assert_true(res.exited);
    assert_int_equal(res.status, 0);
    assert_string_equal(res.out, "to stdout\n");
    assert_string_equal(res.errout, "to stderr\n");
    assert_string_equal(res.chan, "to the channel");
}

static void test_forbidden_syscalls(void **state)
{
    SKIP_UNLESS_ROOT(state);
    tenv *t = *state;
    static const struct {
        const char *what;
        long nr;
    } cases[] = {
        {"ptrace", SYS_ptrace},
        {"mount", SYS_mount},
        {"unshare", SYS_unshare},
        {"clone-userns", SYS_clone},
        {"packet", SYS_socket},
        {"raw", SYS_socket},
        {"bpf", SYS_bpf},
        {"io_uring", SYS_io_uring_setup},
        {"keyctl", SYS_keyctl},
        {"memfd", SYS_memfd_create},
        {"personality", SYS_personality},
        {"setns", SYS_setns},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run res;
        start_and_wait(
            t,
            &(opts){.args = (const char *const[]){"--payload", "forbidden", cases[i].what, NULL}},
            &res);
        if (res.nr != cases[i].nr) {
            print_error("%s: notified %d, want %ld; stderr: %s\n", cases[i].what, res.nr,
                        cases[i].nr, res.errout);
        }
        assert_int_equal(res.nr, cases[i].nr);
        assert_true(res.listener);
        assert_false(res.setup_failed);
        /* RUNNING may not have come: the app can reach the call before the init sends it,
         * and the kill ends the init. */
        /* Answered EPERM, then killed: either the kill ends the init first, or the app got to
         * exit on the EPERM (3) just before. */
        assert_true((WIFSIGNALED(res.reaped) && WTERMSIG(res.reaped) == SIGKILL) ||
                    (res.exited && WIFEXITED(res.status) && WEXITSTATUS(res.status) == 3));
    }
}

static void test_sigterm_reaches_the_app(void **state)
{
    SKIP_UNLESS_ROOT(state);
    tenv *t = *state;
    run res;
    start_and_wait(
        t,
        &(opts){.args = (const char *const[]){"--payload", "wait", NULL}, .term_on_running = true},
        &res);
    assert_true(res.exited);
    assert_true(WIFSIGNALED(res.status));
    assert_int_equal(WTERMSIG(res.status), SIGTERM);
    assert_true(WIFEXITED(res.reaped)); /* the init itself exits normally */
}

/* In a real cgroup (the machine's hierarchy, as the cgroup module's tests use it): the app is
 * created inside it, so its pids limit counts the init, the app and its children. */
static void test_cgroup_limits_the_app(void **state)
{
    SKIP_UNLESS_ROOT(state);
    tenv *t = *state;
    cg_ctx *c = NULL;
    pv_err e;
    if (cg_init(NULL, &c, &e) != PV_OK) {
        print_message("no usable cgroup hierarchy (%s): skipped\n", pv_err_msg(&e));
        skip();
    }
    char name[32];
    snprintf(name, sizeof(name), "sbtest-%d", (int)getpid());
    cg_group *g = NULL;
    if (cg_create(c, name, 64u << 20, 4, &g, &e) != PV_OK) {
        cg_free(c);
        fail_msg("cg_create: %s", pv_err_msg(&e));
    }
    run res;
    start_and_wait(
        t, &(opts){.args = (const char *const[]){"--payload", "forkmany", NULL}, .cgroup = g},
        &res);
    assert_true(res.exited);
    assert_true(WIFEXITED(res.status));
    assert_int_equal(WEXITSTATUS(res.status), 2); /* 4 = init + app + 2 children */
    assert_int_equal(cg_destroy(g, &e), PV_OK);
    cg_free(c);
}

static void test_setup_failures(void **state)
{
    SKIP_UNLESS_ROOT(state);
    tenv *t = *state;
    run res;
    /* the entry point is missing */
    start_and_wait(t, &(opts){.entry = "/bin/missing"}, &res);
    assert_true(res.setup_failed);
    assert_false(res.running);
    assert_int_equal(res.err, ENOENT);
    assert_non_null(
        strstr(res.step, sb_landlock_abi() > 0 ? "landlock /app/bin/missing" : "execve"));
    /* a bind whose source is missing */
    const sb_bind missing[] = {{.src = "/nonexistent/file", .dst = "/run/x"}};
    start_and_wait(t, &(opts){.entry = "/bin/tiny", .binds = missing, .n_binds = 1}, &res);
    assert_true(res.setup_failed);
    assert_int_equal(res.err, ENOENT);
    assert_string_equal(res.step, "bind /run/x");
    /* a "device" that is not one */
    const sb_bind notdev[] = {{.src = t->cert, .dst = "/dev/ttyS9", .device = true}};
    start_and_wait(t, &(opts){.entry = "/bin/tiny", .binds = notdev, .n_binds = 1}, &res);
    assert_true(res.setup_failed);
    assert_int_equal(res.err, ENODEV);
    assert_string_equal(res.step, "not a device: /dev/ttyS9");
}

static void test_invalid_specs(void **state)
{
    (void)state;
    static char *argv[] = {"x", NULL}, *envp[] = {NULL};
    sb_filter *f = g_filter;
    const sb_spec good = {.name = "app",
                          .uid = 1000,
                          .gid = 1000,
                          .image_dir = "/nonexistent",
                          .entry_point = "/bin/x",
                          .argv = argv,
                          .envp = envp,
                          .filter = f,
                          .stdout_fd = -1,
                          .stderr_fd = -1,
                          .chan_fd = -1};
    sb_spec s;
    sb_proc p;
    pv_err e;
#define BAD(field_assignments)                                                                     \
    do {                                                                                           \
        s = good;                                                                                  \
        field_assignments;                                                                         \
        assert_int_equal(sb_start(&s, &p, &e), PV_ERR_INVALID_ARG);                                \
        assert_int_equal(p.pid, -1);                                                               \
    } while (0)
    BAD(s.uid = 0);
    BAD(s.gid = 0);
    BAD(s.filter = NULL);
    BAD(s.argv = NULL);
    BAD(s.name = "a/b");
    BAD(s.entry_point = "bin/x");
    BAD(s.entry_point = "/bin/../x");
    BAD(s.nofile = 4);
    BAD(s.nproc = 1);
    sb_bind b = {.src = "/etc/hostname"};
    BAD(b.dst = "/app/x"; s.binds = &b; s.n_binds = 1);
    BAD(b.dst = "/proc"; s.binds = &b; s.n_binds = 1);
    BAD(b.dst = "/dev/null"; s.binds = &b; s.n_binds = 1);
    BAD(b.dst = "/dev/x"; s.binds = &b; s.n_binds = 1); /* under /dev: devices only */
    BAD(b.dst = "/run/../etc"; s.binds = &b; s.n_binds = 1);
    sb_bind two[] = {{.src = "/a", .dst = "/run/a"}, {.src = "/b", .dst = "/run/a/b"}};
    BAD(s.binds = two; s.n_binds = 2);
    sb_libs libs = {.n = 1, .path = {"/tmp/libx.so"}};
    BAD(s.libs = &libs);
    sb_file etc = {"../passwd", "x"};
    BAD(s.etc = &etc; s.n_etc = 1);
    uint16_t port0 = 0;
    BAD(s.bind_ports = &port0; s.n_bind_ports = 1);
#undef BAD
}

/* Bad messages on the status socket are refused, and their descriptors closed. */
static int count_fds(void)
{
    return tu_count_entries("/proc/self/fd");
}

static void send_raw(int fd, const void *p, size_t n, const int *fds, size_t nfd)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * 4)];
    } c;
    memset(&c, 0, sizeof(c));
    struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfd > 0) {
        m.msg_control = c.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * nfd);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfd);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfd);
    }
    assert_int_equal(sendmsg(fd, &m, 0), (ssize_t)n);
}

static void test_bad_status_messages(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    sb_event ev;
    pv_err e;
    assert_int_equal(sb_read_event(sv[0], &ev, &e), PV_ERR_NOT_FOUND); /* never blocks */
    int before = count_fds();
    int pp[2];
    assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
    sb_wire ok = {.magic = SB_WIRE_MAGIC, .kind = SB_EV_RUNNING};
    struct {
        sb_wire w;
        size_t len;
        size_t nfd;
    } bad[20];
    size_t n = 0;
    uint8_t big[sizeof(sb_wire) + 8];
    memset(big, 0, sizeof(big));
#define ADD(expr, l, k)                                                                            \
    do {                                                                                           \
        bad[n].w = ok;                                                                             \
        expr;                                                                                      \
        bad[n].len = (l);                                                                          \
        bad[n].nfd = (k);                                                                          \
        n++;                                                                                       \
    } while (0)
    ADD((void)0, 10, 0);                                  /* short */
    ADD(bad[n].w.magic = 0x12345678, sizeof(sb_wire), 0); /* magic */
    ADD(bad[n].w.kind = 0, sizeof(sb_wire), 0);
    ADD(bad[n].w.kind = 99, sizeof(sb_wire), 0);
    ADD(bad[n].w.value = 5, sizeof(sb_wire), 0); /* RUNNING with a value */
    ADD((void)0, sizeof(sb_wire), 1);            /* RUNNING with a descriptor */
    ADD(bad[n].w.kind = SB_EV_LISTENER, sizeof(sb_wire), 0);
    ADD(bad[n].w.kind = SB_EV_LISTENER, sizeof(sb_wire), 1); /* a pipe, not a listener */
    ADD(bad[n].w.kind = SB_EV_LISTENER, sizeof(sb_wire), 2);
    ADD(bad[n].w.kind = SB_EV_EXITED; bad[n].w.value = 0x137f, sizeof(sb_wire), 0); /* stopped */
    ADD(bad[n].w.kind = SB_EV_EXITED; bad[n].w.value = 0x10000, sizeof(sb_wire), 0);
    ADD(bad[n].w.kind = SB_EV_EXITED; bad[n].w.value = 0x7f, sizeof(sb_wire), 0);
    ADD(bad[n].w.kind = SB_EV_SETUP_FAILED; bad[n].w.value = 2, sizeof(sb_wire), 0); /* no step */
    ADD(bad[n].w.kind = SB_EV_SETUP_FAILED; bad[n].w.value = 0;
        strcpy(bad[n].w.step, "x"), sizeof(sb_wire), 0);
    ADD(bad[n].w.kind = SB_EV_SETUP_FAILED; bad[n].w.value = 5000;
        strcpy(bad[n].w.step, "x"), sizeof(sb_wire), 0);
    ADD(bad[n].w.kind = SB_EV_SETUP_FAILED; bad[n].w.value = 2;
        memset(bad[n].w.step, 'a', sizeof(bad[n].w.step)), sizeof(sb_wire), 0); /* unterminated */
    ADD(bad[n].w.kind = SB_EV_SETUP_FAILED; bad[n].w.value = 2;
        strcpy(bad[n].w.step, "a\nb"), sizeof(sb_wire), 0);
    ADD(bad[n].w.kind = SB_EV_SETUP_FAILED; bad[n].w.value = 2; strcpy(bad[n].w.step, "ab");
        bad[n].w.step[5] = 'z', sizeof(sb_wire), 0); /* garbage after the NUL */
#undef ADD
    for (size_t i = 0; i < n; i++) {
        int fds[2] = {pp[0], pp[1]};
        send_raw(sv[1], &bad[i].w, bad[i].len, fds, bad[i].nfd);
        assert_int_equal(sb_read_event(sv[0], &ev, &e), PV_ERR_FORMAT);
        assert_int_equal(ev.fd, -1);
    }
    send_raw(sv[1], big, sizeof(big), NULL, 0); /* too long */
    assert_int_equal(sb_read_event(sv[0], &ev, &e), PV_ERR_FORMAT);
    close(pp[0]);
    close(pp[1]);
    assert_int_equal(count_fds(), before); /* every descriptor that came was closed */
    /* good ones pass */
    sb_wire w = ok;
    send_raw(sv[1], &w, sizeof(w), NULL, 0);
    assert_int_equal(sb_read_event(sv[0], &ev, &e), PV_OK);
    assert_int_equal(ev.kind, SB_EV_RUNNING);
    w.kind = SB_EV_EXITED;
    w.value = 0x0900; /* exit 9 */
    send_raw(sv[1], &w, sizeof(w), NULL, 0);
    assert_int_equal(sb_read_event(sv[0], &ev, &e), PV_OK);
    assert_int_equal(ev.kind, SB_EV_EXITED);
    assert_int_equal(WEXITSTATUS(ev.status), 9);
    w.kind = SB_EV_SETUP_FAILED;
    w.value = ENOENT;
    strcpy(w.step, "bind /run/x");
    send_raw(sv[1], &w, sizeof(w), NULL, 0);
    assert_int_equal(sb_read_event(sv[0], &ev, &e), PV_OK);
    assert_int_equal(ev.err, ENOENT);
    assert_string_equal(ev.step, "bind /run/x");
    close(sv[1]);
    assert_int_equal(sb_read_event(sv[0], &ev, &e), PV_ERR_TRUNCATED);
    close(sv[0]);
}

/* The filter's argument checks, loaded in a child without a compartment: what it refuses
 * with an error, and that libseccomp put those refusals before the general ioctl rule. */
static void test_filter_arguments(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
            _exit(10);
        }
        int l = sb_seccomp_load(g_filter);
        if (l < 0) {
            _exit(11);
        }
        close(l); /* nobody listens: what is not allowed fails with ENOSYS */
        int code = 0;
        errno = 0;
        if (ioctl(0, TIOCSTI, "x") == 0 || errno != EPERM) {
            code |= 1;
        }
        errno = 0;
        if (syscall(SYS_ioctl, 0, (1ul << 32) | TIOCSTI, "x") == 0 || errno != EPERM) {
            code |= 2;
        }
        int pp[2], avail = -1;
        if (pipe(pp) != 0 || ioctl(pp[0], FIONREAD, &avail) != 0 || avail != 0) {
            code |= 4;
        }
        errno = 0;
        if (syscall(SYS_clone3, NULL, 0) == 0 || errno != ENOSYS) {
            code |= 8;
        }
        errno = 0;
        if (socket(AF_PACKET, SOCK_RAW, 0) >= 0 || errno != ENOSYS) {
            code |= 16;
        }
        if (socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) < 0) {
            code |= 32;
        }
        errno = 0;
        if (socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) >= 0 || errno != ENOSYS) {
            code |= 64;
        }
        _exit(code);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static int group_setup(void **state)
{
    (void)state;
    pv_err e;
    if (sb_seccomp_build(&g_filter, &e) != PV_OK) {
        fprintf(stderr, "sb_seccomp_build: %s\n", pv_err_msg(&e));
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    sb_filter_free(g_filter);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--payload") == 0) {
        return payload(argc - 2, argv + 2);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_specs),
        cmocka_unit_test(test_bad_status_messages),
        cmocka_unit_test(test_filter_arguments),
        cmocka_unit_test_setup_teardown(test_static_entry_point, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dynamic_inside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stdio_and_channel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forbidden_syscalls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_reaches_the_app, setup, teardown),
        cmocka_unit_test_setup_teardown(test_setup_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cgroup_limits_the_app, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
