/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-app cgroups (cgroup.h): detection of the hierarchy, the life cycle of a group
 * (create or take over, attach, destroy) and the file helpers both backends use. What
 * differs between v1 and v2 (file names, parents, how to empty a group) is in
 * cgroup_v1.c and cgroup_v2.c behind cg_backend.
 *
 * Every app start and exit goes through cg_create, cg_attach and cg_destroy, so these
 * keep to a few syscalls: the parents stay open as directory fds, a group's files are
 * opened relative to its own directory fd, and nothing is exec'd.
 */
#include "cgroup_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pavise/platform.h"
#include "pavise/log.h"

/* How long cg_create (taking over) and cg_destroy wait for a group to empty. Killed
 * processes leave in milliseconds; the bound is for one stuck in uninterruptible sleep. */
#define CG_EMPTY_TIMEOUT_MS 5000
#define CG_LINE_MAX         4096
#define CG_MOUNTINFO        "/proc/self/mountinfo"

/* ---- parsing ---- */

int cg_parse_u64(const char *text, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = text;
    if (*p < '0' || *p > '9') {
        return PV_ERR_FORMAT;
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return PV_ERR_FORMAT;
        }
        v = v * 10 + d;
    }
    for (; *p == ' ' || *p == '\n' || *p == '\t'; p++) {
    }
    if (*p != '\0') {
        return PV_ERR_FORMAT;
    }
    *out = v;
    return PV_OK;
}

int cg_key_u64(const char *text, const char *key, uint64_t *out)
{
    size_t klen = strlen(key);
    for (const char *line = text; *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        if (len > klen && memcmp(line, key, klen) == 0 && line[klen] == ' ') {
            char num[24];
            size_t n = len - klen - 1;
            if (n == 0 || n >= sizeof(num)) {
                return PV_ERR_FORMAT;
            }
            memcpy(num, line + klen + 1, n);
            num[n] = '\0';
            return cg_parse_u64(num, out);
        }
        if (end == NULL) {
            break;
        }
        line = end + 1;
    }
    return PV_ERR_NOT_FOUND;
}

bool cg_has_word(const char *text, const char *word)
{
    size_t wlen = strlen(word);
    for (const char *p = text; *p != '\0';) {
        size_t n = strcspn(p, " \t\n");
        if (n == wlen && memcmp(p, word, wlen) == 0) {
            return true;
        }
        p += n;
        p += strspn(p, " \t\n");
    }
    return false;
}

/* Calls fn for each line of fd (without its newline, NUL-terminated in buf). A line longer
 * than buf is skipped: nothing we look for is that long. */
static int cg_each_line(int fd, const char *what, char *buf, size_t cap,
                        int (*fn)(char *line, void *arg, pv_err *e), void *arg, pv_err *e)
{
    size_t have = 0;
    bool skipping = false;
    for (;;) {
        ssize_t k = read(fd, buf + have, cap - 1 - have);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            return pv_err_sys(e, PV_ERR_IO, errno, "%s", what);
        }
        bool eof = k == 0;
        have += (size_t)k;
        size_t start = 0;
        for (;;) {
            char *nl = memchr(buf + start, '\n', have - start);
            if (nl == NULL && !(eof && have > start)) {
                break;
            }
            size_t end = nl != NULL ? (size_t)(nl - buf) : have;
            buf[end] = '\0';
            if (!skipping) {
                int r = fn(buf + start, arg, e);
                if (r != PV_OK) {
                    return r;
                }
            }
            skipping = false;
            start = nl != NULL ? end + 1 : have;
        }
        if (eof) {
            return PV_OK;
        }
        memmove(buf, buf + start, have - start);
        have -= start;
        if (have == cap - 1) {
            skipping = true; /* an over-long line: drop what we have of it */
            have = 0;
        }
    }
}

/* Undoes the kernel's octal escapes (\040 for a space, \011, \012, \134) in place. */
static void cg_unescape(char *s)
{
    char *w = s;
    for (const char *p = s; *p != '\0';) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
            p[3] >= '0' && p[3] <= '7') {
            *w++ = (char)(((p[1] - '0') << 6) | ((p[2] - '0') << 3) | (p[3] - '0'));
            p += 4;
        } else {
            *w++ = *p++;
        }
    }
    *w = '\0';
}

/* True when the comma-separated options name opt. */
static bool cg_has_option(const char *opts, const char *opt)
{
    size_t olen = strlen(opt);
    for (const char *p = opts; *p != '\0';) {
        size_t n = strcspn(p, ",");
        if (n == olen && memcmp(p, opt, olen) == 0) {
            return true;
        }
        p += n;
        if (*p == ',') {
            p++;
        }
    }
    return false;
}

static int cg_mountinfo_line(char *line, void *arg, pv_err *e)
{
    cg_mounts *m = arg;
    /* id parent major:minor root mount-point options [optional...] - fstype source super */
    char *mp = NULL, *fstype = NULL, *super = NULL;
    size_t field = 0, after_dash = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save)) {
        if (after_dash > 0) {
            if (after_dash == 1) {
                fstype = t;
            } else if (after_dash == 3) {
                super = t;
                break;
            }
            after_dash++;
        } else if (field >= 6 && strcmp(t, "-") == 0) {
            after_dash = 1;
        } else {
            if (field == 4) {
                mp = t;
            }
            field++;
        }
    }
    if (mp == NULL || fstype == NULL || super == NULL) {
        return PV_OK;
    }
    bool v2 = strcmp(fstype, "cgroup2") == 0;
    bool v1 = strcmp(fstype, "cgroup") == 0;
    if (!v2 && !v1) {
        return PV_OK;
    }
    cg_unescape(mp);
    /* v1 controllers may share a hierarchy (memory,pids): each takes its first mount. */
    char **slots[2] = {NULL, NULL};
    if (v2 && m->n_v2 < CG_MAX_V2_MOUNTS) {
        slots[0] = &m->v2[m->n_v2];
    } else if (v1) {
        if (m->v1_memory == NULL && cg_has_option(super, "memory")) {
            slots[0] = &m->v1_memory;
        }
        if (m->v1_pids == NULL && cg_has_option(super, "pids")) {
            slots[1] = &m->v1_pids;
        }
    }
    for (size_t i = 0; i < 2; i++) {
        if (slots[i] == NULL) {
            continue;
        }
        if ((*slots[i] = strdup(mp)) == NULL) {
            return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        }
    }
    if (v2 && slots[0] != NULL) {
        /* The conventional place first: on hybrid systems it is the one with controllers. */
        char *copy = *slots[0];
        if (strcmp(copy, "/sys/fs/cgroup") == 0 && m->n_v2 > 0) {
            m->v2[m->n_v2] = m->v2[0];
            m->v2[0] = copy;
        }
        m->n_v2++;
    }
    return PV_OK;
}

int cg_find_mounts(const char *mountinfo, cg_mounts *out, pv_err *e)
{
    memset(out, 0, sizeof(*out));
    int fd = open(mountinfo, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s", mountinfo);
    }
    char *buf = malloc(CG_LINE_MAX);
    int r = buf == NULL ? pv_err_set(e, PV_ERR_NOMEM, "out of memory")
                        : cg_each_line(fd, mountinfo, buf, CG_LINE_MAX, cg_mountinfo_line, out, e);
    free(buf);
    close(fd);
    if (r != PV_OK) {
        cg_mounts_free(out);
    }
    return r;
}

void cg_mounts_free(cg_mounts *m)
{
    for (size_t i = 0; i < m->n_v2; i++) {
        free(m->v2[i]);
    }
    free(m->v1_memory);
    free(m->v1_pids);
    memset(m, 0, sizeof(*m));
}

/* ---- files ---- */

int cg_write(const cg_ctx *c, int dirfd, const char *where, const char *file, const char *text,
             bool optional, pv_err *e)
{
    int flags = O_WRONLY | O_CLOEXEC;
    if (c->plain) {
        /* A plain file keeps old bytes past a shorter write; cgroupfs replaces the value. */
        flags |= O_TRUNC | (optional ? 0 : O_CREAT);
    }
    int fd = openat(dirfd, file, flags, 0644);
    if (fd < 0 && errno == ENOENT && optional) {
        return PV_ERR_NOT_FOUND;
    }
    if (fd < 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s/%s", where, file);
    }
    /* cgroupfs takes a value in one write; a short write is a refusal, not a partial. */
    size_t n = strlen(text);
    ssize_t k = write(fd, text, n);
    int err = errno;
    close(fd);
    if (k < 0) {
        return pv_err_sys(e, PV_ERR_IO, err, "%s/%s: writing '%s'", where, file, text);
    }
    if ((size_t)k != n) {
        return pv_err_set(e, PV_ERR_IO, "%s/%s: short write of '%s'", where, file, text);
    }
    return PV_OK;
}

int cg_write_u64(const cg_ctx *c, int dirfd, const char *where, const char *file, uint64_t v,
                 bool optional, pv_err *e)
{
    char text[24];
    snprintf(text, sizeof(text), "%" PRIu64, v);
    return cg_write(c, dirfd, where, file, text, optional, e);
}

/* Reads fd from its start into buf (NUL-terminated). */
int cg_read_fd_at(int fd, const char *where, const char *file, char *buf, size_t cap, pv_err *e)
{
    size_t have = 0;
    for (;;) {
        if (have == cap - 1) {
            char extra;
            ssize_t k = pread(fd, &extra, 1, (off_t)have);
            if (k > 0) {
                return pv_err_set(e, PV_ERR_TOO_LARGE, "%s/%s: longer than %zu bytes", where, file,
                                  cap - 1);
            }
            break;
        }
        /* pread from the offset: cgroup files are read again from the start after a poll */
        ssize_t k = pread(fd, buf + have, cap - 1 - have, (off_t)have);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            return pv_err_sys(e, PV_ERR_IO, errno, "%s/%s", where, file);
        }
        if (k == 0) {
            break;
        }
        have += (size_t)k;
    }
    buf[have] = '\0';
    return PV_OK;
}

int cg_read(int dirfd, const char *where, const char *file, char *buf, size_t cap, bool optional,
            pv_err *e)
{
    buf[0] = '\0';
    int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && optional) {
        return PV_OK;
    }
    if (fd < 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s/%s", where, file);
    }
    int r = cg_read_fd_at(fd, where, file, buf, cap, e);
    close(fd);
    return r;
}

typedef struct cg_pid_walk {
    int (*fn)(pid_t pid, void *arg, pv_err *e);
    void *arg;
    size_t count;
} cg_pid_walk;

static int cg_pid_line(char *line, void *arg, pv_err *e)
{
    cg_pid_walk *w = arg;
    uint64_t v;
    if (line[0] == '\0') {
        return PV_OK;
    }
    if (cg_parse_u64(line, &v) != PV_OK || v == 0 || v > INT32_MAX) {
        return pv_err_set(e, PV_ERR_FORMAT, "cgroup.procs: '%.24s' is not a pid", line);
    }
    w->count++;
    return w->fn != NULL ? w->fn((pid_t)v, w->arg, e) : PV_OK;
}

int cg_each_pid(int dirfd, const char *where, const char *file,
                int (*fn)(pid_t pid, void *arg, pv_err *e), void *arg, size_t *count, pv_err *e)
{
    *count = 0;
    int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s/%s", where, file);
    }
    char buf[512]; /* a line is one pid: a small buffer streams any number of them */
    cg_pid_walk w = {fn, arg, 0};
    int r = cg_each_line(fd, file, buf, sizeof(buf), cg_pid_line, &w, e);
    close(fd);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "%s", where);
    }
    *count = w.count;
    return PV_OK;
}

/* One round of kills: the pidfds of the processes killed, to wait on their exit. */
#define CG_WAIT_MAX 64
typedef struct cg_kill_round {
    struct pollfd pfd[CG_WAIT_MAX];
    size_t n;
} cg_kill_round;

static int cg_kill_one(pid_t pid, void *arg, pv_err *e)
{
    cg_kill_round *k = arg;
    /* Through a pidfd the signal reaches the process pidfd_open found, and its exit can be
     * waited on. Between the read of cgroup.procs and pidfd_open the pid could only be
     * reused if the whole pid space wrapped in that instant (v2 avoids even that with
     * cgroup.kill). */
    int fd = k->n < CG_WAIT_MAX ? pidfd_open(pid, 0) : -1;
    if (fd >= 0) {
        if (pidfd_send_signal(fd, SIGKILL, NULL, 0) != 0 && errno != ESRCH) {
            int err = errno;
            close(fd);
            return pv_err_sys(e, PV_ERR_IO, err, "kill %d", (int)pid);
        }
        k->pfd[k->n].fd = fd;
        k->pfd[k->n].events = POLLIN;
        k->pfd[k->n].revents = 0;
        k->n++;
        return PV_OK;
    }
    if (kill(pid, SIGKILL) != 0 && errno != ESRCH) {
        return pv_err_sys(e, PV_ERR_IO, errno, "kill %d", (int)pid);
    }
    return PV_OK;
}

/* Sleeps ms milliseconds (when there is no pidfd to wait on). */
static void cg_nap(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Waits until every process of the round has exited (a pidfd polls readable once its
 * process has left its cgroup) or the deadline passes; closes the pidfds. */
static void cg_wait_round(cg_kill_round *k, int64_t deadline_ms)
{
    for (size_t i = 0; i < k->n; i++) {
        for (;;) {
            int64_t left = deadline_ms - pv_monotonic_ms();
            int pr = poll(&k->pfd[i], 1, left > 0 ? (int)left : 0);
            if (pr >= 0 || errno != EINTR) {
                break;
            }
        }
        close(k->pfd[i].fd);
    }
    k->n = 0;
}

int cg_kill_listed(const int *fds, size_t n, const char *where, int64_t deadline_ms, pv_err *e)
{
    int64_t nap = 1;
    cg_kill_round k;
    k.n = 0;
    for (;;) {
        size_t total = 0;
        int r = PV_OK;
        for (size_t i = 0; r == PV_OK && i < n; i++) {
            size_t count = 0;
            r = cg_each_pid(fds[i], where, "cgroup.procs", cg_kill_one, &k, &count, e);
            total += count;
        }
        bool waited = k.n > 0;
        cg_wait_round(&k, r == PV_OK ? deadline_ms : 0);
        if (r != PV_OK) {
            return r;
        }
        if (total == 0) {
            return PV_OK;
        }
        /* A process forked between the read and the kill is caught by the next round; the
         * pids limit bounds how many there can be. */
        int64_t left = deadline_ms - pv_monotonic_ms();
        if (left <= 0) {
            return pv_err_set(e, PV_ERR_IO, "%s: %zu processes still there after SIGKILL", where,
                              total);
        }
        if (!waited) {
            cg_nap(nap < left ? nap : left);
            nap = nap < 16 ? nap * 2 : 16;
        }
    }
}

/* ---- the module's interface ---- */

static bool cg_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > CG_MAX_NAME) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-')) {
            return false;
        }
    }
    return true;
}

/* True when the v2 hierarchy at root offers both controllers. */
static bool cg_v2_usable(const char *root)
{
    char buf[512];
    int dfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        return false;
    }
    int r = cg_read(dfd, root, "cgroup.controllers", buf, sizeof(buf), false, NULL);
    close(dfd);
    return r == PV_OK && cg_has_word(buf, "memory") && cg_has_word(buf, "pids");
}

int cg_init(const char *root, cg_ctx **out, pv_err *e)
{
    *out = NULL;
    int r = PV_ERR_INTERNAL;
    cg_mounts m = {0};
    cg_ctx *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < CG_MAX_DIRS; i++) {
        c->fd[i] = -1;
    }
    const char *roots[CG_MAX_DIRS] = {NULL, NULL};
    if (root != NULL) {
        c->be = &cg_backend_v2;
        roots[0] = root;
    } else {
        if ((r = cg_find_mounts(CG_MOUNTINFO, &m, e)) != PV_OK) {
            goto out;
        }
        for (size_t i = 0; i < m.n_v2 && c->be == NULL; i++) {
            if (cg_v2_usable(m.v2[i])) {
                c->be = &cg_backend_v2;
                roots[0] = m.v2[i];
            }
        }
        if (c->be == NULL && m.v1_memory != NULL && m.v1_pids != NULL) {
            c->be = &cg_backend_v1;
            roots[0] = m.v1_memory;
            roots[1] = m.v1_pids;
        }
        if (c->be == NULL) {
            r = pv_err_set(e, PV_ERR_UNSUPPORTED,
                           "cgroups: neither a cgroup2 mount with the memory and pids "
                           "controllers (%s) nor cgroup v1 hierarchies of both (memory: %s, "
                           "pids: %s)",
                           m.n_v2 > 0 ? m.v2[0] : "none", m.v1_memory ? m.v1_memory : "none",
                           m.v1_pids ? m.v1_pids : "none");
            goto out;
        }
    }
    if ((r = c->be->init(c, roots, e)) != PV_OK) {
        goto out;
    }
    pv_debug("cgroups: %s at %s", c->be->name, c->base[0]);
    *out = c;
    c = NULL;
    r = PV_OK;
out:
    cg_mounts_free(&m);
    cg_free(c);
    return r;
}

void cg_free(cg_ctx *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < CG_MAX_DIRS; i++) {
        if (c->fd[i] >= 0) {
            close(c->fd[i]);
        }
        free(c->base[i]);
    }
    free(c);
}

const char *cg_version_name(const cg_ctx *c)
{
    return c->be->name;
}

/* Removes the group's directory from parent i. Plain mode: the stand-in directory holds
 * real files, which cgroupfs directories never block on. */
static int cg_remove_dir(cg_group *g, size_t i, pv_err *e)
{
    cg_ctx *c = g->c;
    if (c->plain) {
        int dfd = openat(c->fd[i], g->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
        if (d == NULL && dfd >= 0) {
            close(dfd);
        }
        for (struct dirent *de; d != NULL && (de = readdir(d)) != NULL;) {
            if (de->d_type == DT_REG) {
                unlinkat(dirfd(d), de->d_name, 0);
            }
        }
        if (d != NULL) {
            closedir(d);
        }
    }
    if (unlinkat(c->fd[i], g->name, AT_REMOVEDIR) != 0 && errno != ENOENT) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s/%s: rmdir", c->base[i], g->name);
    }
    return PV_OK;
}

static void cg_group_close(cg_group *g)
{
    for (size_t i = 0; i < CG_MAX_DIRS; i++) {
        if (g->fd[i] >= 0) {
            close(g->fd[i]);
            g->fd[i] = -1;
        }
    }
}

int cg_create(cg_ctx *c, const char *name, uint64_t memory_bytes, uint32_t pids_max, cg_group **out,
              pv_err *e)
{
    *out = NULL;
    int r = PV_ERR_INTERNAL;
    bool made[CG_MAX_DIRS] = {false, false};
    bool taken_over = false;
    if (!cg_name_ok(name)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "cgroup name '%.*s': expected 1 to %d of [A-Za-z0-9-]", CG_MAX_NAME + 1,
                          name, CG_MAX_NAME);
    }
    if (memory_bytes == 0 || pids_max == 0) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "cgroup %s: a memory and a pids limit are required", name);
    }
    cg_group *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    g->c = c;
    memcpy(g->name, name, strlen(name) + 1);
    for (size_t i = 0; i < CG_MAX_DIRS; i++) {
        g->fd[i] = -1;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (mkdirat(c->fd[i], name, 0755) == 0) {
            made[i] = true;
        } else if (errno == EEXIST) {
            taken_over = true;
        } else {
            r = pv_err_sys(e, PV_ERR_IO, errno, "%s/%s: mkdir", c->base[i], name);
            goto out;
        }
        g->fd[i] = openat(c->fd[i], name, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (g->fd[i] < 0) {
            r = pv_err_sys(e, PV_ERR_IO, errno, "%s/%s", c->base[i], name);
            goto out;
        }
    }
    if (taken_over) {
        /* Left over by a runtime that died without cleaning up: whatever runs there is no
         * longer ours to manage. */
        pv_warn("cgroup %s/%s: left over from an earlier run; emptying it", c->base[0], name);
        if ((r = c->be->empty(g, pv_monotonic_ms() + CG_EMPTY_TIMEOUT_MS, e)) != PV_OK) {
            goto out;
        }
        /* The kernel's counter is not reset; count from here. */
        if ((r = c->be->oom_counter(g, &g->oom_base, e)) != PV_OK) {
            goto out;
        }
    }
    if ((r = c->be->set_limits(g, memory_bytes, pids_max, taken_over, e)) != PV_OK) {
        goto out;
    }
    *out = g;
    g = NULL;
    r = PV_OK;
out:
    if (g != NULL) {
        cg_group_close(g);
        for (size_t i = 0; i < c->n; i++) {
            if (made[i]) {
                cg_remove_dir(g, i, NULL);
            }
        }
        free(g);
    }
    return r;
}

int cg_attach(cg_group *g, pid_t pid, pv_err *e)
{
    cg_ctx *c = g->c;
    for (size_t i = 0; i < c->n; i++) {
        char where[PATH_MAX];
        snprintf(where, sizeof(where), "%s/%s", c->base[i], g->name);
        char text[16];
        snprintf(text, sizeof(text), "%d", (int)pid);
        int r = cg_write(c, g->fd[i], where, "cgroup.procs", text, false, e);
        if (r != PV_OK) {
            return r;
        }
    }
    return PV_OK;
}

int cg_self_attach_open(cg_group *g, int fds[CG_MAX_SELF], size_t *n, pv_err *e)
{
    *n = 0;
    if (g->c->be != &cg_backend_v1) {
        return PV_OK;
    }
    for (size_t i = 0; i < g->c->n && i < CG_MAX_SELF; i++) {
        int fd = openat(g->fd[i], "tasks", O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            for (size_t j = 0; j < *n; j++) {
                close(fds[j]);
            }
            *n = 0;
            return pv_err_sys(e, PV_ERR_IO, err, "%s/%s/tasks", g->c->base[i], g->name);
        }
        fds[(*n)++] = fd;
    }
    return PV_OK;
}

int cg_dir_fd(const cg_group *g)
{
    return g->c->be == &cg_backend_v2 && !g->c->plain ? g->fd[0] : -1;
}

int cg_oom_kills(cg_group *g, uint64_t *out, pv_err *e)
{
    *out = 0;
    uint64_t v = 0;
    int r = g->c->be->oom_counter(g, &v, e);
    if (r != PV_OK) {
        return r;
    }
    *out = v >= g->oom_base ? v - g->oom_base : 0;
    return PV_OK;
}

int cg_memory_current(cg_group *g, uint64_t *out, pv_err *e)
{
    *out = 0;
    return g->c->be->memory_current(g, out, e);
}

int cg_destroy(cg_group *g, pv_err *e)
{
    if (g == NULL) {
        return PV_OK;
    }
    cg_ctx *c = g->c;
    int r = c->be->empty(g, pv_monotonic_ms() + CG_EMPTY_TIMEOUT_MS, e);
    cg_group_close(g);
    for (size_t i = 0; r == PV_OK && i < c->n; i++) {
        r = cg_remove_dir(g, i, e);
    }
    free(g);
    return r;
}
