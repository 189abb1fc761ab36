/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cgroup v1: the memory and pids controllers in hierarchies of their own (or one shared),
 * each app at <hierarchy>/pavise/<name>.
 *
 *   memory.limit_in_bytes        the limit
 *   memory.memsw.limit_in_bytes  the same limit on memory + swap, when swap accounting
 *                                exists; otherwise memory.swappiness 0 keeps the group's
 *                                anonymous memory out of swap
 *   memory.oom_control           "oom_kill N": the OOM kills in the group
 *   memory.usage_in_bytes        current use
 *   pids.max                     the pids limit
 *
 * v1 has no cgroup.kill and no "populated" event: a group is emptied by SIGKILLing what
 * cgroup.procs lists until it lists nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup_internal.h"

#define V1_PARENT "pavise"

/* The directory index of each controller: one shared hierarchy has a single one. */
static size_t v1_mem(const cg_ctx *c)
{
    (void)c;
    return 0;
}

static size_t v1_pids(const cg_ctx *c)
{
    return c->n > 1 ? 1 : 0;
}

static int v1_init(cg_ctx *c, const char *const *roots, pv_err *e)
{
    struct stat st[2];
    for (size_t i = 0; i < 2; i++) {
        if (stat(roots[i], &st[i]) != 0) {
            return pv_err_sys(e, PV_ERR_IO, errno, "%s", roots[i]);
        }
    }
    bool shared = st[0].st_dev == st[1].st_dev && st[0].st_ino == st[1].st_ino;
    c->n = shared ? 1 : 2;
    for (size_t i = 0; i < c->n; i++) {
        if (asprintf(&c->base[i], "%s/%s", roots[i], V1_PARENT) < 0) {
            c->base[i] = NULL;
            return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        }
        if (mkdir(c->base[i], 0755) != 0 && errno != EEXIST) {
            return pv_err_sys(e, PV_ERR_IO, errno, "%s: mkdir", c->base[i]);
        }
        c->fd[i] = open(c->base[i], O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (c->fd[i] < 0) {
            return pv_err_sys(e, PV_ERR_IO, errno, "%s", c->base[i]);
        }
    }
    c->memsw = faccessat(c->fd[v1_mem(c)], "memory.memsw.limit_in_bytes", F_OK, 0) == 0;
    return PV_OK;
}

static void v1_where(const cg_group *g, size_t i, char *where, size_t cap)
{
    snprintf(where, cap, "%s/%s", g->c->base[i], g->name);
}

static int v1_set_limits(cg_group *g, uint64_t memory_bytes, uint32_t pids_max, bool taken_over,
                         pv_err *e)
{
    const cg_ctx *c = g->c;
    size_t m = v1_mem(c), p = v1_pids(c);
    char mw[PATH_MAX], pw[PATH_MAX];
    v1_where(g, m, mw, sizeof(mw));
    v1_where(g, p, pw, sizeof(pw));
    int r;
    if (taken_over) {
        /* The kernel keeps memsw >= limit: lift the old memsw first, so a new limit above it
         * is accepted, and undo anything else an earlier run may have set. */
        if (c->memsw && (r = cg_write(c, g->fd[m], mw, "memory.memsw.limit_in_bytes", "-1", false,
                                      e)) != PV_OK) {
            return r;
        }
        if ((r = cg_write(c, g->fd[m], mw, "memory.oom_control", "0", false, e)) != PV_OK) {
            return r;
        }
    }
    if ((r = cg_write_u64(c, g->fd[m], mw, "memory.limit_in_bytes", memory_bytes, false, e)) !=
        PV_OK) {
        return r;
    }
    if (c->memsw) {
        r = cg_write_u64(c, g->fd[m], mw, "memory.memsw.limit_in_bytes", memory_bytes, false, e);
    } else {
        r = cg_write(c, g->fd[m], mw, "memory.swappiness", "0", false, e);
    }
    if (r != PV_OK) {
        return r;
    }
    return cg_write_u64(c, g->fd[p], pw, "pids.max", pids_max, false, e);
}

static int v1_oom_counter(const cg_group *g, uint64_t *out, pv_err *e)
{
    char where[PATH_MAX], buf[512];
    size_t m = v1_mem(g->c);
    v1_where(g, m, where, sizeof(where));
    int r = cg_read(g->fd[m], where, "memory.oom_control", buf, sizeof(buf), false, e);
    if (r != PV_OK) {
        return r;
    }
    /* oom_kill is there since Linux 4.13. */
    if (cg_key_u64(buf, "oom_kill", out) != PV_OK) {
        return pv_err_set(e, PV_ERR_UNSUPPORTED, "%s/memory.oom_control: no oom_kill count", where);
    }
    return PV_OK;
}

static int v1_memory_current(const cg_group *g, uint64_t *out, pv_err *e)
{
    char where[PATH_MAX], buf[32];
    size_t m = v1_mem(g->c);
    v1_where(g, m, where, sizeof(where));
    int r = cg_read(g->fd[m], where, "memory.usage_in_bytes", buf, sizeof(buf), false, e);
    if (r != PV_OK) {
        return r;
    }
    if (cg_parse_u64(buf, out) != PV_OK) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s/memory.usage_in_bytes: not a number", where);
    }
    return PV_OK;
}

static int v1_empty(cg_group *g, int64_t deadline_ms, pv_err *e)
{
    char where[PATH_MAX];
    v1_where(g, 0, where, sizeof(where));
    /* Both hierarchies: a process may be in one only, when an attach failed halfway. */
    return cg_kill_listed(g->fd, g->c->n, where, deadline_ms, e);
}

const cg_backend cg_backend_v1 = {
    .name = "v1",
    .init = v1_init,
    .set_limits = v1_set_limits,
    .oom_counter = v1_oom_counter,
    .memory_current = v1_memory_current,
    .empty = v1_empty,
};
