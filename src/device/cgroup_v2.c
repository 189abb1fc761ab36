/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cgroup v2: one hierarchy, each app at <root>/pavise/apps/<name>.
 *
 *   <root>/cgroup.subtree_control         +memory +pids (when not already there)
 *   <root>/pavise/cgroup.subtree_control  +memory +pids
 *   <root>/pavise/apps/...                +memory +pids, so every app group has both
 *   <app>/memory.max, pids.max            the limits
 *   <app>/memory.swap.max = 0             the memory limit is not escaped into swap
 *   <app>/memory.oom.group = 1            an OOM kill takes the whole compartment, so the
 *                                         app is not left half-alive with its init
 *   <app>/memory.events                   "oom_kill N"
 *   <app>/cgroup.kill, cgroup.events      destroy: kill all at once, wait for populated 0
 *
 * The no-internal-process rule: a cgroup other than the root that holds processes cannot
 * pass controllers to its children. pavise and pavise/apps only hold groups; a process
 * found in pavise (a service manager may start pavised there) is moved to
 * pavise/runtime, a leaf, before the controllers are enabled.
 *
 * Not exercised against real controllers on the development machine (its memory and pids
 * are bound to v1); the unit test drives it against a plain directory standing in for the
 * hierarchy, and runs the kill and wait on the machine's real, controller-less cgroup2.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "pavise/platform.h"

#include <linux/magic.h>

#include "cgroup_internal.h"

#define V2_CONTROLLERS "+memory +pids"
#define V2_POLL_MAX_MS 100 /* poll slice: plain files never signal */

/* Enables memory and pids for the children of dirfd, unless already enabled. */
static int v2_enable(const cg_ctx *c, int dirfd, const char *where, pv_err *e)
{
    char buf[512];
    int r = cg_read(dirfd, where, "cgroup.subtree_control", buf, sizeof(buf), c->plain, e);
    if (r != PV_OK) {
        return r;
    }
    if (cg_has_word(buf, "memory") && cg_has_word(buf, "pids")) {
        return PV_OK;
    }
    r = cg_write(c, dirfd, where, "cgroup.subtree_control", V2_CONTROLLERS, false, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r,
                           "enabling the memory and pids controllers (a cgroup that holds "
                           "processes cannot pass them on)");
    }
    return PV_OK;
}

typedef struct v2_move {
    const cg_ctx *c;
    int fd;
    const char *where;
} v2_move;

static int v2_move_one(pid_t pid, void *arg, pv_err *e)
{
    v2_move *mv = arg;
    char text[16];
    snprintf(text, sizeof(text), "%d", (int)pid);
    int r = cg_write(mv->c, mv->fd, mv->where, "cgroup.procs", text, false, e);
    /* ESRCH surfaces as PV_ERR_IO too; a process that exited meanwhile is not an error. */
    if (r != PV_OK && kill(pid, 0) != 0) {
        pv_err_clear(e);
        return PV_OK;
    }
    return r;
}

/* Moves whatever runs in the pavise parent to pavise/runtime. */
static int v2_evict(const cg_ctx *c, int pfd, const char *where, pv_err *e)
{
    char rwhere[PATH_MAX];
    size_t count = 0;
    if (c->plain && faccessat(pfd, "cgroup.procs", F_OK, 0) != 0) {
        return PV_OK;
    }
    int r = cg_each_pid(pfd, where, "cgroup.procs", NULL, NULL, &count, e);
    if (r != PV_OK || count == 0) {
        return r;
    }
    snprintf(rwhere, sizeof(rwhere), "%s/runtime", where);
    if (mkdirat(pfd, "runtime", 0755) != 0 && errno != EEXIST) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s: mkdir", rwhere);
    }
    int rfd = openat(pfd, "runtime", O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (rfd < 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s", rwhere);
    }
    v2_move mv = {c, rfd, rwhere};
    r = cg_each_pid(pfd, where, "cgroup.procs", v2_move_one, &mv, &count, e);
    close(rfd);
    return r;
}

/* Makes (or opens) dir under pfd: an O_PATH fd, its path in *path. */
static int v2_subdir(int pfd, const char *pwhere, const char *dir, int *fd, char **path, pv_err *e)
{
    if (asprintf(path, "%s/%s", pwhere, dir) < 0) {
        *path = NULL;
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    if (mkdirat(pfd, dir, 0755) != 0 && errno != EEXIST) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s: mkdir", *path);
    }
    *fd = openat(pfd, dir, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (*fd < 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s", *path);
    }
    return PV_OK;
}

static int v2_init(cg_ctx *c, const char *const *roots, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    const char *root = roots[0];
    int rootfd = -1, pfd = -1;
    char *pwhere = NULL;
    char buf[512];
    struct statfs sfs;
    rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0 || fstatfs(rootfd, &sfs) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", root);
        goto out;
    }
    c->plain = sfs.f_type != CGROUP2_SUPER_MAGIC;
    if ((r = cg_read(rootfd, root, "cgroup.controllers", buf, sizeof(buf), false, e)) != PV_OK) {
        goto out;
    }
    if (!cg_has_word(buf, "memory") || !cg_has_word(buf, "pids")) {
        r = pv_err_set(e, PV_ERR_UNSUPPORTED,
                       "%s: the memory and pids controllers are not available (cgroup.controllers: "
                       "'%.200s')",
                       root, buf);
        goto out;
    }
    if ((r = v2_enable(c, rootfd, root, e)) != PV_OK ||
        (r = v2_subdir(rootfd, root, "pavise", &pfd, &pwhere, e)) != PV_OK ||
        (r = v2_evict(c, pfd, pwhere, e)) != PV_OK || (r = v2_enable(c, pfd, pwhere, e)) != PV_OK ||
        (r = v2_subdir(pfd, pwhere, "apps", &c->fd[0], &c->base[0], e)) != PV_OK ||
        (r = v2_enable(c, c->fd[0], c->base[0], e)) != PV_OK) {
        goto out;
    }
    c->n = 1;
    r = PV_OK;
out:
    if (rootfd >= 0) {
        close(rootfd);
    }
    if (pfd >= 0) {
        close(pfd);
    }
    free(pwhere);
    return r;
}

static void v2_where(const cg_group *g, char *where, size_t cap)
{
    snprintf(where, cap, "%s/%s", g->c->base[0], g->name);
}

static int v2_set_limits(cg_group *g, uint64_t memory_bytes, uint32_t pids_max, bool taken_over,
                         pv_err *e)
{
    (void)taken_over; /* v2's limits are independent: each is simply written again */
    const cg_ctx *c = g->c;
    int fd = g->fd[0];
    char where[PATH_MAX];
    v2_where(g, where, sizeof(where));
    int r;
    if ((r = cg_write_u64(c, fd, where, "memory.max", memory_bytes, false, e)) != PV_OK) {
        return r;
    }
    /* Missing only in a kernel without swap support: then there is nothing to escape to. */
    r = cg_write(c, fd, where, "memory.swap.max", "0", true, e);
    if (r != PV_OK && r != PV_ERR_NOT_FOUND) {
        return r;
    }
    if ((r = cg_write(c, fd, where, "memory.oom.group", "1", false, e)) != PV_OK) {
        return r;
    }
    return cg_write_u64(c, fd, where, "pids.max", pids_max, false, e);
}

static int v2_oom_counter(const cg_group *g, uint64_t *out, pv_err *e)
{
    char where[PATH_MAX], buf[512];
    v2_where(g, where, sizeof(where));
    int r = cg_read(g->fd[0], where, "memory.events", buf, sizeof(buf), false, e);
    if (r != PV_OK) {
        return r;
    }
    if (cg_key_u64(buf, "oom_kill", out) != PV_OK) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s/memory.events: no oom_kill count", where);
    }
    return PV_OK;
}

static int v2_memory_current(const cg_group *g, uint64_t *out, pv_err *e)
{
    char where[PATH_MAX], buf[32];
    v2_where(g, where, sizeof(where));
    int r = cg_read(g->fd[0], where, "memory.current", buf, sizeof(buf), false, e);
    if (r != PV_OK) {
        return r;
    }
    if (cg_parse_u64(buf, out) != PV_OK) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s/memory.current: not a number", where);
    }
    return PV_OK;
}

int cg_v2_empty_dir(const cg_ctx *c, int dirfd, const char *where, int64_t deadline_ms, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    char buf[256];
    /* cgroup.kill (Linux 5.14) kills the whole group at once, forks in flight included. */
    int kr = cg_write(c, dirfd, where, "cgroup.kill", "1", true, e);
    if (kr != PV_OK && kr != PV_ERR_NOT_FOUND) {
        return kr;
    }
    bool killed = kr == PV_OK;
    int efd = openat(dirfd, "cgroup.events", O_RDONLY | O_CLOEXEC);
    if (efd < 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s/cgroup.events", where);
    }
    for (;;) {
        uint64_t populated = 1;
        if ((r = cg_read_fd_at(efd, where, "cgroup.events", buf, sizeof(buf), e)) != PV_OK) {
            goto out;
        }
        if (cg_key_u64(buf, "populated", &populated) != PV_OK) {
            r = pv_err_set(e, PV_ERR_FORMAT, "%s/cgroup.events: no populated line", where);
            goto out;
        }
        if (populated == 0) {
            break;
        }
        if (!killed) {
            if ((r = cg_kill_listed(&dirfd, 1, where, deadline_ms, e)) != PV_OK) {
                goto out;
            }
        }
        int64_t left = deadline_ms - pv_monotonic_ms();
        if (left <= 0) {
            r = pv_err_set(e, PV_ERR_IO, "%s: still populated after SIGKILL", where);
            goto out;
        }
        /* The kernel signals a change of cgroup.events with POLLPRI. */
        struct pollfd pfd = {.fd = efd, .events = POLLPRI};
        if (poll(&pfd, 1, (int)(left < V2_POLL_MAX_MS ? left : V2_POLL_MAX_MS)) < 0 &&
            errno != EINTR) {
            r = pv_err_sys(e, PV_ERR_IO, errno, "%s/cgroup.events: poll", where);
            goto out;
        }
    }
    r = PV_OK;
out:
    close(efd);
    return r;
}

static int v2_empty(cg_group *g, int64_t deadline_ms, pv_err *e)
{
    char where[PATH_MAX];
    v2_where(g, where, sizeof(where));
    return cg_v2_empty_dir(g->c, g->fd[0], where, deadline_ms, e);
}

const cg_backend cg_backend_v2 = {
    .name = "v2",
    .init = v2_init,
    .set_limits = v2_set_limits,
    .oom_counter = v2_oom_counter,
    .memory_current = v2_memory_current,
    .empty = v2_empty,
};
