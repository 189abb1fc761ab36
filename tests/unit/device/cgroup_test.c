/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-app cgroups. The v1 tests use the machine's real memory and pids hierarchies (root
 * needed; skipped otherwise). The machine's memory and pids controllers are bound to v1, so
 * the v2 backend runs against a plain directory standing in for the hierarchy, with a
 * thread playing the kernel's part (emptying cgroup.procs, flipping cgroup.events); its
 * kill-and-wait runs for real on the machine's controller-less cgroup2.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pavise/platform.h"
#include "testutil.h"

#include "cgroup.h"
#include "cgroup_internal.h"

#define MIB ((uint64_t)1 << 20)

static cg_ctx *g_ctx; /* the real hierarchy, or NULL when the v1 tests cannot run */

/* ---- helpers ---- */

static char *uniq(const char *tag)
{
    char *s = malloc(CG_MAX_NAME + 1);
    assert_non_null(s);
    snprintf(s, CG_MAX_NAME + 1, "pvtest-%d-%s", (int)getpid(), tag);
    return s;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A child that waits for a byte on go, then runs fn (which reports on its own). */
typedef void (*child_fn)(int report);

static pid_t spawn(child_fn fn, int *go, int *report)
{
    int g[2], rp[2];
    assert_int_equal(pipe(g), 0);
    assert_int_equal(pipe(rp), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(g[1]);
        close(rp[0]);
        char c;
        if (read(g[0], &c, 1) != 1) {
            _exit(90);
        }
        fn(rp[1]);
        _exit(0);
    }
    close(g[0]);
    close(rp[1]);
    *go = g[1];
    *report = rp[0];
    return pid;
}

static void go(int fd)
{
    assert_int_equal(write(fd, "g", 1), 1);
    close(fd);
}

static int wait_status(pid_t pid)
{
    int ws;
    pid_t r;
    while ((r = waitpid(pid, &ws, 0)) < 0 && errno == EINTR) {
    }
    assert_int_equal(r, pid);
    return ws;
}

static void child_sleep(int report)
{
    (void)report;
    for (;;) {
        pause();
    }
}

/* Reads a small file; cgroupfs files report a size of 0, so no size check. */
static char *read_text(const char *path)
{
    char *buf = calloc(1, 4096);
    assert_non_null(buf);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, 4095);
    assert_true(n >= 0);
    close(fd);
    return buf;
}

static void assert_file(const char *dir, const char *name, const char *want)
{
    char *p = tu_path(dir, name);
    char *t = read_text(p);
    assert_string_equal(t, want);
    free(t);
    free(p);
}

static int setup(void **state)
{
    (void)state;
    pv_err e;
    if (geteuid() != 0) {
        return 0;
    }
    int r = cg_init(NULL, &g_ctx, &e);
    if (r != PV_OK) {
        print_message("cgroups unavailable: %s\n", e.msg);
        g_ctx = NULL;
    }
    /* Orphans of the fork-bomb child come back to us to be reaped. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cg_free(g_ctx);
    return 0;
}

#define NEED_REAL()                                                                                \
    do {                                                                                           \
        if (g_ctx == NULL) {                                                                       \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* ---- v1 on the machine ---- */

static void test_detects_v1(void **state)
{
    (void)state;
    NEED_REAL();
    /* This machine: v1 memory and pids, and an empty cgroup2 at /sys/fs/cgroup/unified. */
    assert_string_equal(cg_version_name(g_ctx), "v1");
}

static void test_refuses_bad_arguments(void **state)
{
    (void)state;
    NEED_REAL();
    static const char *const bad[] = {
        "",     "a/b",  "..",
        ".",    "a_b",  "a b",
        "../x", "x\ny", "0123456789012345678901234567890123456789012345678901234567890123X"};
    cg_group *g = (cg_group *)1;
    pv_err e;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cg_create(g_ctx, bad[i], 16 * MIB, 8, &g, &e), PV_ERR_INVALID_ARG);
        assert_null(g);
    }
    char *name = uniq("bad");
    assert_int_equal(cg_create(g_ctx, name, 0, 8, &g, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(cg_create(g_ctx, name, 16 * MIB, 0, &g, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(cg_destroy(NULL, &e), PV_OK);
    free(name);
}

static char g_expect[2][256];

static void child_check_cgroup(int report)
{
    char buf[4096];
    int fd = open("/proc/self/cgroup", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
    if (n <= 0) {
        _exit(91);
    }
    buf[n] = '\0';
    char ok = strstr(buf, g_expect[0]) != NULL && strstr(buf, g_expect[1]) != NULL ? 'y' : 'n';
    if (write(report, &ok, 1) != 1) {
        _exit(92);
    }
}

static void test_attach(void **state)
{
    (void)state;
    NEED_REAL();
    char *name = uniq("attach");
    cg_group *g;
    pv_err e;
    assert_int_equal(cg_create(g_ctx, name, 16 * MIB, 8, &g, &e), PV_OK);
    snprintf(g_expect[0], sizeof(g_expect[0]), ":memory:/pavise/%s\n", name);
    snprintf(g_expect[1], sizeof(g_expect[1]), ":pids:/pavise/%s\n", name);
    int gofd, rep;
    pid_t pid = spawn(child_check_cgroup, &gofd, &rep);
    assert_int_equal(cg_attach(g, pid, &e), PV_OK);
    go(gofd);
    char ok = 0;
    assert_int_equal(read(rep, &ok, 1), 1);
    assert_int_equal(ok, 'y');
    int ws = wait_status(pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    close(rep);
    assert_int_equal(cg_destroy(g, &e), PV_OK);
    free(name);
}

static void child_hog(int report)
{
    (void)report;
    size_t n = 64 * MIB;
    volatile char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        _exit(93);
    }
    for (size_t i = 0; i < n; i += 4096) {
        p[i] = 1;
    }
    _exit(0); /* not reached: the OOM killer is */
}

static void test_oom_kill_counted(void **state)
{
    (void)state;
    NEED_REAL();
    char *name = uniq("oom");
    cg_group *g;
    pv_err e;
    uint64_t kills = 99;
    assert_int_equal(cg_create(g_ctx, name, 16 * MIB, 8, &g, &e), PV_OK);
    assert_int_equal(cg_oom_kills(g, &kills, &e), PV_OK);
    assert_int_equal(kills, 0);
    int gofd, rep;
    pid_t pid = spawn(child_hog, &gofd, &rep);
    assert_int_equal(cg_attach(g, pid, &e), PV_OK);
    go(gofd);
    int ws = wait_status(pid);
    close(rep);
    assert_true(WIFSIGNALED(ws));
    assert_int_equal(WTERMSIG(ws), SIGKILL);
    assert_int_equal(cg_oom_kills(g, &kills, &e), PV_OK);
    assert_true(kills >= 1);
    assert_int_equal(cg_destroy(g, &e), PV_OK);
    free(name);
}

static void child_fork_bomb(int report)
{
    int forked = 0, err = 0;
    for (int i = 0; i < 64; i++) {
        pid_t p = fork();
        if (p == 0) {
            for (;;) {
                pause();
            }
        }
        if (p < 0) {
            err = errno;
            break;
        }
        forked++;
    }
    int msg[2] = {forked, err};
    if (write(report, msg, sizeof(msg)) != (ssize_t)sizeof(msg)) {
        _exit(94);
    }
    for (;;) {
        pause();
    }
}

static void reap_all(void)
{
    /* The group is gone, so every child of ours (and adopted orphan) has died. */
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {
    }
}

static void test_pids_limit_stops_fork(void **state)
{
    (void)state;
    NEED_REAL();
    char *name = uniq("pids");
    cg_group *g;
    pv_err e;
    assert_int_equal(cg_create(g_ctx, name, 16 * MIB, 8, &g, &e), PV_OK);
    int gofd, rep;
    pid_t pid = spawn(child_fork_bomb, &gofd, &rep);
    assert_int_equal(cg_attach(g, pid, &e), PV_OK);
    go(gofd);
    int msg[2] = {0, 0};
    assert_int_equal(read(rep, msg, sizeof(msg)), (ssize_t)sizeof(msg));
    close(rep);
    assert_int_equal(msg[1], EAGAIN);
    assert_true(msg[0] <= 7); /* 8 pids, the child itself one of them */
    assert_int_equal(cg_destroy(g, &e), PV_OK);
    reap_all();
    free(name);
}

static void child_use_memory(int report)
{
    size_t n = 8 * MIB;
    volatile char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        _exit(95);
    }
    for (size_t i = 0; i < n; i += 4096) {
        p[i] = 1;
    }
    if (write(report, "d", 1) != 1) {
        _exit(96);
    }
    for (;;) {
        pause();
    }
}

static void test_memory_current_grows(void **state)
{
    (void)state;
    NEED_REAL();
    char *name = uniq("mem");
    cg_group *g;
    pv_err e;
    uint64_t before = 0, after = 0;
    assert_int_equal(cg_create(g_ctx, name, 64 * MIB, 8, &g, &e), PV_OK);
    int gofd, rep;
    pid_t pid = spawn(child_use_memory, &gofd, &rep);
    assert_int_equal(cg_attach(g, pid, &e), PV_OK);
    assert_int_equal(cg_memory_current(g, &before, &e), PV_OK);
    go(gofd);
    char d;
    assert_int_equal(read(rep, &d, 1), 1);
    close(rep);
    assert_int_equal(cg_memory_current(g, &after, &e), PV_OK);
    assert_true(after >= before + 6 * MIB);
    assert_int_equal(cg_destroy(g, &e), PV_OK);
    int ws = wait_status(pid);
    assert_true(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    free(name);
}

static void child_sleep_family(int report)
{
    /* A grandchild too: destroy must find every process, not only the one attached. */
    pid_t p = fork();
    if (p == 0) {
        for (;;) {
            pause();
        }
    }
    if (write(report, "r", 1) != 1) {
        _exit(97);
    }
    for (;;) {
        pause();
    }
}

static void assert_gone(const char *name)
{
    for (size_t i = 0; i < g_ctx->n; i++) {
        char *p = tu_path(g_ctx->base[i], name);
        assert_false(tu_exists(p));
        free(p);
    }
}

static void test_destroy_kills_everything(void **state)
{
    (void)state;
    NEED_REAL();
    char *name = uniq("destroy");
    cg_group *g;
    pv_err e;
    assert_int_equal(cg_create(g_ctx, name, 16 * MIB, 8, &g, &e), PV_OK);
    int gofd, rep;
    pid_t pid = spawn(child_sleep_family, &gofd, &rep);
    assert_int_equal(cg_attach(g, pid, &e), PV_OK);
    go(gofd);
    char r;
    assert_int_equal(read(rep, &r, 1), 1);
    close(rep);
    assert_int_equal(cg_destroy(g, &e), PV_OK);
    assert_gone(name);
    int ws = wait_status(pid);
    assert_true(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    reap_all();
    free(name);
}

/* What a runtime that died leaves: the group, its processes, its counters. */
static void forget(cg_group *g)
{
    for (size_t i = 0; i < CG_MAX_DIRS; i++) {
        if (g->fd[i] >= 0) {
            close(g->fd[i]);
        }
    }
    free(g);
}

static void test_takes_over_leftover(void **state)
{
    (void)state;
    NEED_REAL();
    char *name = uniq("leftover");
    cg_group *g;
    pv_err e;
    uint64_t kills = 0;
    assert_int_equal(cg_create(g_ctx, name, 16 * MIB, 8, &g, &e), PV_OK);
    int gofd, rep;
    pid_t hog = spawn(child_hog, &gofd, &rep);
    assert_int_equal(cg_attach(g, hog, &e), PV_OK);
    go(gofd);
    close(rep);
    wait_status(hog);
    pid_t sleeper = spawn(child_sleep, &gofd, &rep);
    assert_int_equal(cg_attach(g, sleeper, &e), PV_OK);
    go(gofd);
    close(rep);
    assert_int_equal(cg_oom_kills(g, &kills, &e), PV_OK);
    assert_true(kills >= 1);
    forget(g);

    /* The next run: the sleeper is killed, the OOM count starts again, the limits are new. */
    assert_int_equal(cg_create(g_ctx, name, 32 * MIB, 16, &g, &e), PV_OK);
    int ws = wait_status(sleeper);
    assert_true(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    assert_int_equal(cg_oom_kills(g, &kills, &e), PV_OK);
    assert_int_equal(kills, 0);
    char *dir = tu_path(g_ctx->base[0], name);
    assert_file(dir, "memory.limit_in_bytes", "33554432\n");
    free(dir);
    dir = tu_path(g_ctx->base[g_ctx->n - 1], name);
    assert_file(dir, "pids.max", "16\n");
    free(dir);
    assert_int_equal(cg_destroy(g, &e), PV_OK);
    assert_gone(name);
    free(name);
}

/* ---- mountinfo ---- */

static void test_mountinfo(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("cgroup");
    char *path = tu_path(dir, "mountinfo");
    const char *text =
        "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
        "31 23 0:28 / /sys/fs/cgroup rw,relatime shared:9 - tmpfs tmpfs rw,mode=755\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw\n"
        "35 31 0:32 / /sys/fs/cgroup/mem\\040ory rw,relatime shared:11 master:3 - cgroup cgroup "
        "rw,memory\n"
        "36 31 0:33 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu,cpuacct\n"
        "37 31 0:34 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
        "38 31 0:35 / /sys/fs/cgroup/pids2 rw - cgroup cgroup rw,pids\n"
        "39 31 0:36 / /short\n"
        "40 31 0:37 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate";
    tu_write(path, text, strlen(text), 0600);
    cg_mounts m;
    pv_err e;
    assert_int_equal(cg_find_mounts(path, &m, &e), PV_OK);
    assert_int_equal(m.n_v2, 2);
    assert_string_equal(m.v2[0], "/sys/fs/cgroup"); /* the conventional one first */
    assert_string_equal(m.v2[1], "/sys/fs/cgroup/unified");
    assert_string_equal(m.v1_memory, "/sys/fs/cgroup/mem ory");
    assert_string_equal(m.v1_pids, "/sys/fs/cgroup/pids");
    cg_mounts_free(&m);

    /* Both controllers in one v1 hierarchy. */
    const char *shared = "35 31 0:32 / /cg rw - cgroup cgroup rw,pids,memory\n";
    tu_write(path, shared, strlen(shared), 0600);
    assert_int_equal(cg_find_mounts(path, &m, &e), PV_OK);
    assert_int_equal(m.n_v2, 0);
    assert_string_equal(m.v1_memory, "/cg");
    assert_string_equal(m.v1_pids, "/cg");
    cg_mounts_free(&m);

    /* A line longer than the reader's buffer is skipped, the next one still read. */
    size_t big = 9000;
    char *huge = malloc(big + 200);
    assert_non_null(huge);
    memset(huge, 'x', big);
    huge[0] = '1';
    huge[1] = ' ';
    strcpy(huge + big, "\n35 31 0:32 / /m rw - cgroup cgroup rw,memory\n");
    tu_write(path, huge, strlen(huge), 0600);
    free(huge);
    assert_int_equal(cg_find_mounts(path, &m, &e), PV_OK);
    assert_string_equal(m.v1_memory, "/m");
    cg_mounts_free(&m);

    char *missing = tu_path(dir, "missing");
    assert_int_equal(cg_find_mounts(missing, &m, &e), PV_ERR_IO);
    free(missing);
    tu_rmtree(dir);
    free(path);
    free(dir);
}

static void test_parsers(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_int_equal(cg_parse_u64("18446744073709551615\n", &v), PV_OK);
    assert_true(v == UINT64_MAX);
    assert_int_equal(cg_parse_u64("18446744073709551616", &v), PV_ERR_FORMAT);
    assert_int_equal(cg_parse_u64("max\n", &v), PV_ERR_FORMAT);
    assert_int_equal(cg_parse_u64("", &v), PV_ERR_FORMAT);
    assert_int_equal(cg_parse_u64("12x", &v), PV_ERR_FORMAT);
    const char *events = "low 0\nhigh 3\nmax 7\noom 2\noom_kill 4\noom_group_kill 1\n";
    assert_int_equal(cg_key_u64(events, "oom_kill", &v), PV_OK);
    assert_int_equal(v, 4);
    assert_int_equal(cg_key_u64(events, "oom", &v), PV_OK);
    assert_int_equal(v, 2);
    assert_int_equal(cg_key_u64(events, "oom_", &v), PV_ERR_NOT_FOUND);
    assert_int_equal(cg_key_u64("oom_kill \n", "oom_kill", &v), PV_ERR_FORMAT);
    assert_true(cg_has_word("cpuset cpu io memory pids\n", "pids"));
    assert_true(cg_has_word("cpuset cpu io memory pids\n", "cpu"));
    assert_false(cg_has_word("cpuset io memory\n", "cpu"));
}

/* ---- v2 against a stand-in directory ---- */

static char *mkdirs(const char *dir, const char *rel)
{
    char *p = tu_path(dir, rel);
    assert_int_equal(mkdir(p, 0755), 0);
    return p;
}

static void put(const char *dir, const char *name, const char *text)
{
    char *p = tu_path(dir, name);
    tu_write(p, text, strlen(text), 0644);
    free(p);
}

static char *v2_root(void)
{
    char *root = tu_mkdtemp("cgroup2");
    put(root, "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
    put(root, "cgroup.subtree_control", "cpu\n");
    return root;
}

static void test_v2_init_layout(void **state)
{
    (void)state;
    char *root = v2_root();
    /* A process in the pavise parent (pavised started there), and apps already enabled. */
    char *pavise = mkdirs(root, "pavise");
    char pid[16];
    snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    put(pavise, "cgroup.procs", pid);
    char *apps = mkdirs(pavise, "apps");
    put(apps, "cgroup.subtree_control", "memory pids\n");
    cg_ctx *c;
    pv_err e;
    assert_int_equal(cg_init(root, &c, &e), PV_OK);
    assert_string_equal(cg_version_name(c), "v2");
    assert_true(c->plain);
    assert_file(root, "cgroup.subtree_control", "+memory +pids");
    assert_file(pavise, "cgroup.subtree_control", "+memory +pids");
    assert_file(apps, "cgroup.subtree_control", "memory pids\n"); /* not written again */
    char *runtime = tu_path(pavise, "runtime");
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    assert_file(runtime, "cgroup.procs", pid);
    cg_free(c);
    free(runtime);
    free(apps);
    free(pavise);
    tu_rmtree(root);
    free(root);
}

static void test_v2_needs_controllers(void **state)
{
    (void)state;
    char *root = tu_mkdtemp("cgroup2");
    put(root, "cgroup.controllers", "cpu io memory\n");
    cg_ctx *c = (cg_ctx *)1;
    pv_err e;
    assert_int_equal(cg_init(root, &c, &e), PV_ERR_UNSUPPORTED);
    assert_null(c);
    assert_non_null(strstr(e.msg, "pids"));
    tu_rmtree(root);
    free(root);
}

/* The kernel's part, for a stand-in directory: when the group is killed (cgroup.kill set
 * to 1, or the child killed by cg_kill_listed), reap the child and report the group empty. */
typedef struct fake_kernel {
    char *dir;
    pid_t child;
    bool use_kill_file;
    int status;
} fake_kernel;

static bool file_has(const char *dir, const char *name, const char *text)
{
    char *p = tu_path(dir, name);
    char buf[64] = {0};
    int fd = open(p, O_RDONLY);
    free(p);
    if (fd < 0) {
        return false;
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    return n > 0 && strstr(buf, text) != NULL;
}

static void *fake_kernel_run(void *arg)
{
    fake_kernel *k = arg;
    if (k->use_kill_file) {
        for (int i = 0; i < 5000 && !file_has(k->dir, "cgroup.kill", "1"); i++) {
            sleep_ms(1);
        }
        kill(k->child, SIGKILL);
    }
    waitpid(k->child, &k->status, 0); /* cg_kill_listed sends the SIGKILL in the other case */
    if (!WIFSIGNALED(k->status)) {
        return NULL;
    }
    put(k->dir, "cgroup.procs", "");
    /* In place, the same length: a reader never sees the file empty, as with cgroupfs. */
    char *p = tu_path(k->dir, "cgroup.events");
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    const char *text = "populated 0\nfrozen 0\n";
    if (fd < 0 || pwrite(fd, text, strlen(text), 0) != (ssize_t)strlen(text)) {
        k->status = -1;
    }
    if (fd >= 0) {
        close(fd);
    }
    free(p);
    return NULL;
}

static void destroy_with_fake_kernel(cg_group *g, const char *dir, pid_t child, bool kill_file)
{
    put(dir, "cgroup.events", "populated 1\nfrozen 0\n");
    fake_kernel k = {(char *)dir, child, kill_file, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fake_kernel_run, &k), 0);
    pv_err e;
    int r = cg_destroy(g, &e);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(r, PV_OK);
    assert_true(WIFSIGNALED(k.status) && WTERMSIG(k.status) == SIGKILL);
    assert_false(tu_exists(dir));
}

static void test_v2_group_files(void **state)
{
    (void)state;
    char *root = v2_root();
    cg_ctx *c;
    cg_group *g;
    pv_err e;
    uint64_t v = 0;
    assert_int_equal(cg_init(root, &c, &e), PV_OK);
    assert_int_equal(cg_create(c, "app1", 16 * MIB, 8, &g, &e), PV_OK);
    char *dir = tu_path(root, "pavise/apps/app1");
    assert_file(dir, "memory.max", "16777216");
    assert_file(dir, "pids.max", "8");
    assert_file(dir, "memory.oom.group", "1");
    char *swap = tu_path(dir, "memory.swap.max");
    assert_false(tu_exists(swap)); /* optional: never created, only written where it exists */
    free(swap);

    put(dir, "memory.events", "low 0\nhigh 0\nmax 9\noom 3\noom_kill 2\noom_group_kill 1\n");
    assert_int_equal(cg_oom_kills(g, &v, &e), PV_OK);
    assert_int_equal(v, 2);
    put(dir, "memory.current", "123456\n");
    assert_int_equal(cg_memory_current(g, &v, &e), PV_OK);
    assert_int_equal(v, 123456);
    put(dir, "memory.events", "oom 1\n");
    assert_int_equal(cg_oom_kills(g, &v, &e), PV_ERR_FORMAT);

    int gofd, rep;
    pid_t pid = spawn(child_sleep, &gofd, &rep);
    assert_int_equal(cg_attach(g, pid, &e), PV_OK);
    char text[16];
    snprintf(text, sizeof(text), "%d", (int)pid);
    assert_file(dir, "cgroup.procs", text);
    go(gofd);
    close(rep);
    /* No cgroup.kill (a kernel before 5.14): the listed processes are SIGKILLed. */
    destroy_with_fake_kernel(g, dir, pid, false);
    cg_free(c);
    free(dir);
    tu_rmtree(root);
    free(root);
}

static void test_v2_takeover_and_kill(void **state)
{
    (void)state;
    char *root = v2_root();
    cg_ctx *c;
    cg_group *g;
    pv_err e;
    uint64_t v = 99;
    assert_int_equal(cg_init(root, &c, &e), PV_OK);
    /* Left over: empty, with an OOM count and swap allowed. */
    char *dir = tu_path(root, "pavise/apps/app2");
    assert_int_equal(mkdir(dir, 0755), 0);
    put(dir, "cgroup.kill", "");
    put(dir, "cgroup.events", "populated 0\nfrozen 0\n");
    put(dir, "memory.events", "oom 2\noom_kill 2\n");
    put(dir, "memory.swap.max", "max\n");
    assert_int_equal(cg_create(c, "app2", 32 * MIB, 4, &g, &e), PV_OK);
    assert_file(dir, "memory.max", "33554432");
    assert_file(dir, "memory.swap.max", "0");
    assert_file(dir, "cgroup.kill", "1"); /* emptied with cgroup.kill */
    assert_int_equal(cg_oom_kills(g, &v, &e), PV_OK);
    assert_int_equal(v, 0);
    put(dir, "memory.events", "oom 5\noom_kill 5\n");
    assert_int_equal(cg_oom_kills(g, &v, &e), PV_OK);
    assert_int_equal(v, 3);

    put(dir, "cgroup.kill", "");
    int gofd, rep;
    pid_t pid = spawn(child_sleep, &gofd, &rep);
    assert_int_equal(cg_attach(g, pid, &e), PV_OK);
    go(gofd);
    close(rep);
    destroy_with_fake_kernel(g, dir, pid, true);
    cg_free(c);
    free(dir);
    tu_rmtree(root);
    free(root);
}

/* ---- v2 kill and wait on the machine's real cgroup2 (no controllers needed) ---- */

static char *real_v2_group(const char *tag, int *fd)
{
    cg_mounts m;
    pv_err e;
    *fd = -1;
    if (geteuid() != 0 || cg_find_mounts("/proc/self/mountinfo", &m, &e) != PV_OK) {
        return NULL;
    }
    char *dir = NULL;
    if (m.n_v2 > 0) {
        char *name = uniq(tag);
        dir = tu_path(m.v2[0], name);
        free(name);
        if (mkdir(dir, 0755) != 0) {
            free(dir);
            dir = NULL;
        } else {
            *fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
            assert_true(*fd >= 0);
        }
    }
    cg_mounts_free(&m);
    return dir;
}

static void run_real_v2(bool use_kill_file)
{
    int fd;
    char *dir = real_v2_group(use_kill_file ? "v2kill" : "v2list", &fd);
    if (dir == NULL) {
        skip();
    }
    cg_ctx c;
    memset(&c, 0, sizeof(c));
    pv_err e;
    int gofd, rep;
    pid_t pid = spawn(child_sleep_family, &gofd, &rep);
    char *procs = tu_path(dir, "cgroup.procs");
    char text[16];
    snprintf(text, sizeof(text), "%d", (int)pid);
    tu_write(procs, text, strlen(text), 0644);
    go(gofd);
    char r;
    assert_int_equal(read(rep, &r, 1), 1); /* the grandchild exists, in the group too */
    close(rep);
    int64_t deadline = pv_monotonic_ms() + 5000;
    if (use_kill_file) {
        assert_int_equal(cg_v2_empty_dir(&c, fd, dir, deadline, &e), PV_OK);
    } else {
        assert_int_equal(cg_kill_listed(&fd, 1, dir, deadline, &e), PV_OK);
    }
    char *left = read_text(procs);
    assert_string_equal(left, "");
    free(left);
    int ws = wait_status(pid);
    assert_true(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    reap_all();
    close(fd);
    assert_int_equal(rmdir(dir), 0);
    free(procs);
    free(dir);
}

static void test_v2_real_cgroup_kill(void **state)
{
    (void)state;
    run_real_v2(true);
}

static void test_v2_real_kill_listed(void **state)
{
    (void)state;
    run_real_v2(false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detects_v1),
        cmocka_unit_test(test_refuses_bad_arguments),
        cmocka_unit_test(test_attach),
        cmocka_unit_test(test_oom_kill_counted),
        cmocka_unit_test(test_pids_limit_stops_fork),
        cmocka_unit_test(test_memory_current_grows),
        cmocka_unit_test(test_destroy_kills_everything),
        cmocka_unit_test(test_takes_over_leftover),
        cmocka_unit_test(test_mountinfo),
        cmocka_unit_test(test_parsers),
        cmocka_unit_test(test_v2_init_layout),
        cmocka_unit_test(test_v2_needs_controllers),
        cmocka_unit_test(test_v2_group_files),
        cmocka_unit_test(test_v2_takeover_and_kill),
        cmocka_unit_test(test_v2_real_cgroup_kill),
        cmocka_unit_test(test_v2_real_kill_listed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
