/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Between cgroup.c (detection, names, the group's life cycle, file helpers) and its two
 * backends (cgroup_v1.c, cgroup_v2.c). Not for callers outside the module, except the unit
 * test, which drives the pieces the real v2 hierarchy of its machine cannot.
 */
#ifndef PAVISE_DEVICE_CGROUP_INTERNAL_H
#define PAVISE_DEVICE_CGROUP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pavise/err.h"

#include "cgroup.h"

/* Directories of one group: v2 has one, v1 one per hierarchy (memory, pids). */
#define CG_MAX_DIRS 2

/* The cgroup mounts found in mountinfo. */
#define CG_MAX_V2_MOUNTS 4
typedef struct cg_mounts {
    char *v2[CG_MAX_V2_MOUNTS]; /* cgroup2 mount points, /sys/fs/cgroup first */
    size_t n_v2;
    char *v1_memory; /* the v1 hierarchy with the memory controller */
    char *v1_pids;   /* the v1 hierarchy with the pids controller */
} cg_mounts;

typedef struct cg_backend {
    const char *name;
    /* Prepares the parent(s) of the app groups under the hierarchy root(s) (v2: roots[0];
     * v1: roots[0] memory, roots[1] pids) and fills c->fd, c->base and c->n. */
    int (*init)(cg_ctx *c, const char *const *roots, pv_err *e);
    /* Writes the limits into g's directories. taken_over: the group was left over from an
     * earlier run (now empty) and may hold other values. */
    int (*set_limits)(cg_group *g, uint64_t memory_bytes, uint32_t pids_max, bool taken_over,
                      pv_err *e);
    /* The kernel's OOM kill counter of the group, as it reads now. */
    int (*oom_counter)(const cg_group *g, uint64_t *out, pv_err *e);
    int (*memory_current)(const cg_group *g, uint64_t *out, pv_err *e);
    /* Kills everything in the group and waits until it is empty (deadline: CLOCK_MONOTONIC
     * milliseconds). */
    int (*empty)(cg_group *g, int64_t deadline_ms, pv_err *e);
} cg_backend;

extern const cg_backend cg_backend_v1;
extern const cg_backend cg_backend_v2;

struct cg_ctx {
    const cg_backend *be;
    int fd[CG_MAX_DIRS];     /* the parents of the app groups (O_PATH directories) */
    char *base[CG_MAX_DIRS]; /* their paths, for messages */
    size_t n;                /* how many of fd and base are used */
    bool plain;              /* a plain directory stands in for cgroupfs (tests): written files
                                are created, removed groups are emptied of files first */
    bool memsw;              /* v1: memory.memsw.limit_in_bytes exists (swap accounting) */
};

struct cg_group {
    cg_ctx *c;
    int fd[CG_MAX_DIRS]; /* the group's directories, one per parent in c */
    uint64_t oom_base;   /* the OOM counter when a left-over group was taken over */
    char name[CG_MAX_NAME + 1];
};

/* Finds the cgroup mounts in a mountinfo file (the kernel's format, octal escapes in mount
 * points undone). Lines that do not parse are skipped. PV_ERR_IO, PV_ERR_NOMEM. */
int cg_find_mounts(const char *mountinfo, cg_mounts *out, pv_err *e);
void cg_mounts_free(cg_mounts *m);

/* Writes text to file in dirfd with one write(). A missing file is PV_ERR_NOT_FOUND with
 * no message when optional (in plain mode too: optional files are never created; plain files are
 * truncated), else PV_ERR_IO. where names the directory in messages. */
int cg_write(const cg_ctx *c, int dirfd, const char *where, const char *file, const char *text,
             bool optional, pv_err *e);
int cg_write_u64(const cg_ctx *c, int dirfd, const char *where, const char *file, uint64_t v,
                 bool optional, pv_err *e);
/* Reads a small file whole into buf (NUL-terminated). A missing file reads as "" when
 * optional. PV_ERR_TOO_LARGE when it does not fit, PV_ERR_IO. */
int cg_read(int dirfd, const char *where, const char *file, char *buf, size_t cap, bool optional,
            pv_err *e);
/* The same from an open file, read from its start (a file polled and read again). */
int cg_read_fd_at(int fd, const char *where, const char *file, char *buf, size_t cap, pv_err *e);
/* The value of the line "key <value>" in text (memory.events, memory.oom_control,
 * cgroup.events). PV_ERR_NOT_FOUND when there is no such line, PV_ERR_FORMAT. */
int cg_key_u64(const char *text, const char *key, uint64_t *out);
/* A decimal number followed by optional whitespace. PV_ERR_FORMAT. */
int cg_parse_u64(const char *text, uint64_t *out);
/* True when the space-separated list text (cgroup.controllers) names word. */
bool cg_has_word(const char *text, const char *word);

/* Calls fn for every pid in file (cgroup.procs) of dirfd; stops at fn's first error.
 * *count: how many were listed. */
int cg_each_pid(int dirfd, const char *where, const char *file,
                int (*fn)(pid_t pid, void *arg, pv_err *e), void *arg, size_t *count, pv_err *e);

/* SIGKILLs every process listed in cgroup.procs of each of the n directories, again and
 * again, until every list is empty. PV_ERR_IO at the deadline. */
int cg_kill_listed(const int *fds, size_t n, const char *where, int64_t deadline_ms, pv_err *e);

/* v2: kills everything in the group directory dirfd (cgroup.kill, or cg_kill_listed where
 * the kernel has no cgroup.kill) and waits until cgroup.events says "populated 0". */
int cg_v2_empty_dir(const cg_ctx *c, int dirfd, const char *where, int64_t deadline_ms, pv_err *e);

#endif
