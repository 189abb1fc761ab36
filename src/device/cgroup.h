/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-app cgroups: a memory limit and a pids limit, with the out-of-memory kills counted.
 * Two backends behind one table: cgroup v2 (the unified hierarchy; what most devices run)
 * and v1 (separate memory and pids hierarchies; the fallback). Callers never branch on
 * the version.
 *
 *   v2: <root>/pavise/apps/<name>   memory.max, memory.swap.max=0, pids.max, memory.events
 *   v1: <memory mount>/pavise/<name> memory.limit_in_bytes (+ memsw when present),
 *       memory.oom_control; <pids mount>/pavise/<name> pids.max
 */
#ifndef PAVISE_DEVICE_CGROUP_H
#define PAVISE_DEVICE_CGROUP_H

#include <stdint.h>
#include <sys/types.h>

#include "pavise/err.h"

typedef struct cg_ctx cg_ctx;     /* the detected hierarchy */
typedef struct cg_group cg_group; /* one app's group */

#define CG_MAX_NAME 64

/* Detects the cgroup version from /proc/self/mountinfo (v2 when a cgroup2 mount,
 * /sys/fs/cgroup first, has the memory and pids controllers in cgroup.controllers; else v1
 * with both controllers mounted) and prepares the pavise parent group(s): v2 enables both
 * controllers down to pavise/apps and moves any process found in pavise to pavise/runtime
 * (a cgroup that holds processes cannot pass controllers on). root: NULL for the detected
 * mount, or a directory to use as the v2 hierarchy (tests: a plain directory stands in for
 * cgroupfs, and the files written are created there). PV_ERR_UNSUPPORTED when neither has
 * both controllers, PV_ERR_IO, PV_ERR_NOMEM. */
int cg_init(const char *root, cg_ctx **out, pv_err *e);
/* Accepts NULL. Every group made with c must be destroyed first. */
void cg_free(cg_ctx *c);
const char *cg_version_name(const cg_ctx *c); /* "v2" or "v1" */

/* Creates the group for name ([A-Za-z0-9-], at most CG_MAX_NAME) with the limits. A group
 * of that name left over by an earlier run is taken over: whatever runs in it is killed
 * (as cg_destroy does), then it is reused with the new limits, its OOM count starting
 * again from 0. memory_bytes 0 or pids_max 0: refused (every app has both).
 * PV_ERR_INVALID_ARG, PV_ERR_IO, PV_ERR_NOMEM. */
int cg_create(cg_ctx *c, const char *name, uint64_t memory_bytes, uint32_t pids_max, cg_group **out,
              pv_err *e);
/* Moves pid (a process, with all its threads) into the group, in every hierarchy.
 * PV_ERR_IO. */
int cg_attach(cg_group *g, pid_t pid, pv_err *e);
/* For a process to join g by itself, which spares the global lock (and its RCU grace period:
 * milliseconds) that moving another process takes. v1: fds[i] is each hierarchy's "tasks"
 * file, opened O_WRONLY|O_CLOEXEC; writing "0" to it moves the writing thread, so the writer
 * must be single-threaded (the compartment's init is). The caller closes them. v2: *n is 0,
 * and the caller clones straight into the group (cg_dir_fd). PV_ERR_IO. */
#define CG_MAX_SELF 2
int cg_self_attach_open(cg_group *g, int fds[CG_MAX_SELF], size_t *n, pv_err *e);
/* v2: the group's directory, for clone3(CLONE_INTO_CGROUP) (borrowed); -1 on v1. */
int cg_dir_fd(const cg_group *g);

/* How many times the kernel's OOM killer has killed in this group since it was created (or
 * taken over). PV_ERR_IO, PV_ERR_FORMAT. */
int cg_oom_kills(cg_group *g, uint64_t *out, pv_err *e);
/* Current memory use in bytes (v2 memory.current, v1 memory.usage_in_bytes). PV_ERR_IO,
 * PV_ERR_FORMAT. */
int cg_memory_current(cg_group *g, uint64_t *out, pv_err *e);
/* Kills every process left in the group (v2: cgroup.kill; v1, or v2 before Linux 5.14:
 * SIGKILL to each listed process, repeated until none is listed), waits (at most 5 s) until
 * it is empty and removes it; then frees g, whatever the outcome. Accepts NULL. PV_ERR_IO
 * when it could not be emptied or removed (the directory then stays; cg_create takes it
 * over next time). */
int cg_destroy(cg_group *g, pv_err *e);

#endif
