/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The compartment's mount namespace: a read-only tmpfs root holding only the image (/app),
 * the libraries its entry point needs (one file each, at its host path), a handful of
 * device nodes, a private /proc and /tmp, /storage, /etc and the spec's binds.
 * docs/compartments.md §Mount namespace gives the exact list and flags.
 *
 * The parent validates every path and computes the whole plan (sb_plan_build); the child
 * only executes it with system calls (sb_mount_setup). Every source is captured with
 * open_tree(OPEN_TREE_CLONE) before the new root is mounted, so nothing looked up by path
 * can be hidden or redirected by the mounts that follow, and the staging directory can be
 * any directory of the host (SB_STAGE).
 */
#include "sb_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif

#define SB_MAX_MNT   (1 + SB_MAX_LIBS + 5 + 1 + SB_MAX_BINDS)
#define SB_MAX_DIRS  256
#define SB_MAX_RULES (4 + 5 + SB_MAX_BINDS + 2)
/* The root tmpfs holds only directories, empty mount points and the /etc files. */
#define SB_ROOT_OPTS "size=1m,nr_inodes=4096,mode=0755"

/* The device nodes every compartment has, bound from the host. */
static const char *const std_devs[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                       "/dev/urandom"};
/* Symbolic links of /dev that programs expect (they point into /proc). */
static const char *const dev_links[][2] = {{"/proc/self/fd", "/dev/fd"},
                                           {"/proc/self/fd/0", "/dev/stdin"},
                                           {"/proc/self/fd/1", "/dev/stdout"},
                                           {"/proc/self/fd/2", "/dev/stderr"}};

/* ---- strings owned by the plan ---- */

struct sb_arena {
    struct sb_arena *next;
    size_t used, cap;
    char data[];
};

static char *plan_str(sb_plan *p, const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = c != NULL ? strlen(c) : 0, n = la + lb + lc + 1;
    struct sb_arena *ar = p->arena;
    if (ar == NULL || ar->cap - ar->used < n) {
        size_t cap = n > 8192 ? n : 8192;
        ar = malloc(sizeof(*ar) + cap);
        if (ar == NULL) {
            return NULL;
        }
        ar->next = p->arena;
        ar->used = 0;
        ar->cap = cap;
        p->arena = ar;
    }
    char *s = ar->data + ar->used;
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    if (lc > 0) {
        memcpy(s + la + lb, c, lc);
    }
    s[n - 1] = '\0';
    ar->used += n;
    return s;
}

/* ---- validation ---- */

/* An absolute path without empty, "." or ".." components, short enough to be staged. */
static bool plain_abs(const char *p)
{
    size_t n = strlen(p);
    if (n < 2 || n >= PATH_MAX - sizeof(SB_STAGE) || p[0] != '/') {
        return false;
    }
    for (const char *c = p; *c != '\0';) {
        c++;
        size_t k = strcspn(c, "/");
        if (k == 0 || (k == 1 && c[0] == '.') || (k == 2 && c[0] == '.' && c[1] == '.')) {
            return false;
        }
        c += k;
    }
    return true;
}

/* p is dir or below it. */
static bool under(const char *p, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(p, dir, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

/* Where a library or a bind may not go: the mounts and directories the compartment makes
 * itself (a bind there would hide them or need a mount point inside another mount). */
static bool reserved(const char *inner, bool allow_dev)
{
    static const char *const dirs[] = {SB_APP_DIR, "/proc", "/tmp", SB_STORAGE_DIR};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        if (under(inner, dirs[i])) {
            return true;
        }
    }
    return strcmp(inner, "/dev") == 0 || strcmp(inner, "/etc") == 0 ||
           (!allow_dev && under(inner, "/dev"));
}

static bool plain_name(const char *n)
{
    size_t len = strlen(n);
    return len > 0 && len <= 64 && strcmp(n, ".") != 0 && strcmp(n, "..") != 0 &&
           strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len;
}

/* ---- building ---- */

typedef struct builder {
    sb_plan *p;
    const char *inner[SB_MAX_MNT + 8 + SB_MAX_ETC_FILES]; /* everything placed, for overlaps */
    size_t n_inner;
    pv_err *e;
} builder;

static int nomem(builder *b)
{
    return pv_err_set(b->e, PV_ERR_NOMEM, "out of memory");
}

static int add_dir(builder *b, const char *inner, size_t len)
{
    sb_plan *p = b->p;
    char d[PATH_MAX];
    memcpy(d, inner, len);
    d[len] = '\0';
    for (size_t i = 0; i < p->n_dirs; i++) {
        if (strcmp(p->dirs[i] + strlen(SB_STAGE), d) == 0) {
            return PV_OK;
        }
    }
    if (p->n_dirs == SB_MAX_DIRS) {
        return pv_err_set(b->e, PV_ERR_INVALID_ARG, "more than %d directories to create",
                          SB_MAX_DIRS);
    }
    if ((p->dirs[p->n_dirs] = plan_str(p, SB_STAGE, d, NULL)) == NULL) {
        return nomem(b);
    }
    p->n_dirs++;
    return PV_OK;
}

/* Records a path placed in the new root and the directories above it, parents first. */
static int place(builder *b, const char *inner)
{
    for (size_t i = 0; i < b->n_inner; i++) {
        if (under(inner, b->inner[i]) || under(b->inner[i], inner)) {
            return pv_err_set(b->e, PV_ERR_INVALID_ARG, "%s overlaps %s in the compartment", inner,
                              b->inner[i]);
        }
    }
    b->inner[b->n_inner++] = inner;
    for (const char *c = inner + 1; (c = strchr(c, '/')) != NULL; c++) {
        int r = add_dir(b, inner, (size_t)(c - inner));
        if (r != PV_OK) {
            return r;
        }
    }
    return PV_OK;
}

static int add_mnt(builder *b, const char *src, const char *inner, unsigned long flags, bool device)
{
    sb_plan *p = b->p;
    int r = place(b, inner);
    if (r != PV_OK) {
        return r;
    }
    sb_mnt *m = &p->mnt[p->n_mnt];
    m->src = src;
    m->flags = flags;
    m->device = device;
    if ((m->target = plan_str(p, SB_STAGE, inner, NULL)) == NULL) {
        return nomem(b);
    }
    m->label = m->target + strlen(SB_STAGE);
    p->n_mnt++;
    return PV_OK;
}

static int add_rule(builder *b, const char *inner, uint64_t access)
{
    sb_plan *p = b->p;
    p->rules[p->n_rules++] = (sb_ll_rule){.path = inner, .access = access};
    return PV_OK;
}

static int check_spec(const sb_spec *s, pv_err *e)
{
    if (s->name == NULL || s->name[0] == '\0' ||
        strspn(s->name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") !=
            strlen(s->name)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "compartment name: letters, digits and '-' only");
    }
    if (s->image_dir == NULL || s->image_dir[0] != '/' || s->entry_point == NULL ||
        !plain_abs(s->entry_point)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "image directory and entry point: absolute paths");
    }
    if (s->storage_dir != NULL && s->storage_dir[0] != '/') {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "storage directory: an absolute path");
    }
    if (s->n_binds > SB_MAX_BINDS || (s->n_binds > 0 && s->binds == NULL)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "at most %d binds", SB_MAX_BINDS);
    }
    if (s->n_etc > SB_MAX_ETC_FILES || (s->n_etc > 0 && s->etc == NULL)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "at most %d files in /etc", SB_MAX_ETC_FILES);
    }
    if (s->libs != NULL && s->libs->n > SB_MAX_LIBS) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "at most %d libraries", SB_MAX_LIBS);
    }
    if (s->n_bind_ports > 0 && s->bind_ports == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "bind ports missing");
    }
    for (size_t i = 0; i < s->n_bind_ports; i++) {
        if (s->bind_ports[i] == 0) {
            return pv_err_set(e, PV_ERR_INVALID_ARG, "TCP port 0 cannot be granted");
        }
    }
    return PV_OK;
}

static int build_mounts(builder *b, const sb_spec *s)
{
    int r;
    if ((r = add_mnt(b, s->image_dir, SB_APP_DIR, MS_RDONLY | MS_NOSUID | MS_NODEV, false)) !=
        PV_OK) {
        return r;
    }
    for (size_t i = 0; s->libs != NULL && i < s->libs->n; i++) {
        const char *l = s->libs->path[i];
        if (l == NULL || !plain_abs(l) || reserved(l, false)) {
            return pv_err_set(b->e, PV_ERR_INVALID_ARG, "library %s: not a plain host path",
                              l != NULL ? l : "(null)");
        }
        if ((r = add_mnt(b, l, l, MS_RDONLY | MS_NOSUID | MS_NODEV, false)) != PV_OK) {
            return r;
        }
    }
    for (size_t i = 0; i < sizeof(std_devs) / sizeof(std_devs[0]); i++) {
        if ((r = add_mnt(b, std_devs[i], std_devs[i], MS_RDONLY | MS_NOSUID | MS_NOEXEC, true)) !=
            PV_OK) {
            return r;
        }
    }
    if (s->storage_dir != NULL && (r = add_mnt(b, s->storage_dir, SB_STORAGE_DIR,
                                               MS_NOSUID | MS_NODEV | MS_NOEXEC, false)) != PV_OK) {
        return r;
    }
    for (size_t i = 0; i < s->n_binds; i++) {
        const sb_bind *bd = &s->binds[i];
        const char *dst = bd->dst != NULL ? bd->dst : bd->src;
        if (bd->src == NULL || bd->src[0] != '/' || dst == NULL || !plain_abs(dst) ||
            reserved(dst, bd->device)) {
            return pv_err_set(b->e, PV_ERR_INVALID_ARG, "bind %s: not a place it may go",
                              dst != NULL ? dst : "(null)");
        }
        unsigned long f = MS_NOSUID | MS_NOEXEC | (bd->device ? 0 : MS_NODEV);
        /* A device node's I/O does not depend on the mount's read-only flag, but its
         * metadata does: read-only keeps an app from chmod-ing the host's node. Read or
         * write access to a device is Landlock's and the node's mode. */
        if (!bd->writable || bd->device) {
            f |= MS_RDONLY;
        }
        if ((r = add_mnt(b, bd->src, dst, f, bd->device)) != PV_OK) {
            return r;
        }
    }
    return PV_OK;
}

static int build_rules(builder *b, const sb_spec *s)
{
    sb_plan *p = b->p;
    add_rule(b, "/", SB_LL_READ);
    add_rule(b, p->exec_path, SB_LL_EXECUTE | SB_LL_READ_FILE);
    if (s->libs != NULL && s->libs->has_interp && s->libs->n > 0) {
        /* The kernel opens the ELF interpreter for execution too (docs/compartments.md). */
        add_rule(b, s->libs->path[0], SB_LL_EXECUTE | SB_LL_READ_FILE);
    }
    add_rule(b, "/tmp", SB_LL_RW_DIR);
    if (s->storage_dir != NULL) {
        add_rule(b, SB_STORAGE_DIR, SB_LL_RW_DIR);
    }
    for (size_t i = 0; i < sizeof(std_devs) / sizeof(std_devs[0]); i++) {
        add_rule(b, std_devs[i], SB_LL_READ_FILE | SB_LL_WRITE_FILE | SB_LL_TRUNCATE);
    }
    for (size_t i = 0; i < s->n_binds; i++) {
        const sb_bind *bd = &s->binds[i];
        const char *dst = bd->dst != NULL ? bd->dst : bd->src;
        if (bd->device) {
            add_rule(b, dst,
                     SB_LL_READ_FILE |
                         (bd->writable ? SB_LL_WRITE_FILE | SB_LL_TRUNCATE | SB_LL_IOCTL_DEV : 0));
        } else if (bd->writable) {
            add_rule(b, dst, SB_LL_RW_DIR | SB_LL_WRITE_FILE);
        }
    }
    return PV_OK;
}

int sb_plan_build(const sb_spec *s, int abi, sb_plan **out, pv_err *e)
{
    *out = NULL;
    int r = check_spec(s, e);
    if (r != PV_OK) {
        return r;
    }
    builder *b = calloc(1, sizeof(*b));
    sb_plan *p = calloc(1, sizeof(*p));
    if (b == NULL || p == NULL) {
        free(b);
        free(p);
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    b->p = p;
    b->e = e;
    p->spec = s;
    p->abi = abi;
    p->dirs = calloc(SB_MAX_DIRS, sizeof(*p->dirs));
    p->mnt = calloc(SB_MAX_MNT, sizeof(*p->mnt));
    p->links = calloc(2 * sizeof(dev_links) / sizeof(dev_links[0]), sizeof(*p->links));
    p->etc_path = calloc(SB_MAX_ETC_FILES, sizeof(*p->etc_path));
    p->rules = calloc(SB_MAX_RULES, sizeof(*p->rules));
    p->exec_path = plan_str(p, SB_APP_DIR, s->entry_point, NULL);
    p->tmp_target = plan_str(p, SB_STAGE, "/tmp", NULL);
    p->proc_target = plan_str(p, SB_STAGE, "/proc", NULL);
    if (p->dirs == NULL || p->mnt == NULL || p->links == NULL || p->etc_path == NULL ||
        p->rules == NULL || p->exec_path == NULL || p->tmp_target == NULL ||
        p->proc_target == NULL) {
        r = nomem(b);
        goto out;
    }
    /* The directories of the root, then everything placed in it. */
    static const char *const fixed[] = {"/dev", "/etc", "/proc", "/tmp"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if ((r = add_dir(b, fixed[i], strlen(fixed[i]))) != PV_OK) {
            goto out;
        }
    }
    b->inner[b->n_inner++] = "/proc";
    b->inner[b->n_inner++] = "/tmp";
    if ((r = build_mounts(b, s)) != PV_OK) {
        goto out;
    }
    for (size_t i = 0; i < sizeof(dev_links) / sizeof(dev_links[0]); i++) {
        if ((r = place(b, dev_links[i][1])) != PV_OK) {
            goto out;
        }
        p->links[2 * i] = (char *)dev_links[i][0];
        if ((p->links[2 * i + 1] = plan_str(p, SB_STAGE, dev_links[i][1], NULL)) == NULL) {
            r = nomem(b);
            goto out;
        }
        p->n_links++;
    }
    for (size_t i = 0; i < s->n_etc; i++) {
        if (s->etc[i].name == NULL || !plain_name(s->etc[i].name) || s->etc[i].text == NULL ||
            strlen(s->etc[i].text) > SB_MAX_FILE_TEXT) {
            r = pv_err_set(e, PV_ERR_INVALID_ARG,
                           "/etc file %zu: a plain name and at most %d bytes", i, SB_MAX_FILE_TEXT);
            goto out;
        }
        if ((p->etc_path[i] = plan_str(p, SB_STAGE "/etc/", s->etc[i].name, NULL)) == NULL) {
            r = nomem(b);
            goto out;
        }
        if ((r = place(b, p->etc_path[i] + strlen(SB_STAGE))) != PV_OK) {
            goto out;
        }
    }
    uint64_t tmp = s->tmp_bytes != 0 ? s->tmp_bytes : SB_DEFAULT_TMP_BYTES;
    /* One inode per KiB, within reason: a tmpfs inode costs kernel memory the size limit
     * does not count. */
    uint64_t inodes = tmp / 1024 < 256 ? 256 : (tmp / 1024 > 65536 ? 65536 : tmp / 1024);
    snprintf(p->tmp_opts, sizeof(p->tmp_opts), "size=%llu,nr_inodes=%llu,mode=0700,uid=%u,gid=%u",
             (unsigned long long)tmp, (unsigned long long)inodes, (unsigned)s->uid,
             (unsigned)s->gid);
    snprintf(p->hostname, sizeof(p->hostname), "app-%.8s", s->name);
    if ((r = build_rules(b, s)) != PV_OK) {
        goto out;
    }
    *out = p;
    p = NULL;
    r = PV_OK;
out:
    sb_plan_free(p);
    free(b);
    return r;
}

void sb_plan_free(sb_plan *p)
{
    if (p == NULL) {
        return;
    }
    while (p->arena != NULL) {
        struct sb_arena *n = p->arena->next;
        free(p->arena);
        p->arena = n;
    }
    free(p->dirs);
    free(p->mnt);
    free(p->links);
    free(p->etc_path);
    free(p->rules);
    free(p);
}

/* ---- the child's side ---- */

void sb_step(char *step, const char *prefix, const char *path)
{
    size_t o = 0;
    for (const char *c = prefix; *c != '\0' && o < SB_STEP_MAX - 1; c++) {
        step[o++] = *c;
    }
    for (const char *c = path; c != NULL && *c != '\0' && o < SB_STEP_MAX - 1; c++) {
        step[o++] = *c;
    }
    step[o] = '\0';
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Fails the setup: step names it, errno says why. */
#define FAIL(prefix, path)                                                                         \
    do {                                                                                           \
        err = errno;                                                                               \
        sb_step(step, prefix, path);                                                               \
        goto out;                                                                                  \
    } while (0)

int sb_mount_setup(const sb_plan *p, char *step)
{
    const sb_spec *s = p->spec;
    int fds[SB_MAX_MNT];
    bool is_dir[SB_MAX_MNT];
    size_t n_open = 0;
    int err = 0;
    /* Nothing done here may reach the host's mounts. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        FAIL("make mounts private", NULL);
    }
    /* Capture every source before the staging directory is covered. */
    for (; n_open < p->n_mnt; n_open++) {
        const sb_mnt *m = &p->mnt[n_open];
        fds[n_open] = (int)syscall(SYS_open_tree, AT_FDCWD, m->src, OPEN_TREE_CLONE | O_CLOEXEC);
        if (fds[n_open] < 0) {
            FAIL("bind ", m->label);
        }
        struct stat st;
        if (fstat(fds[n_open], &st) != 0) {
            n_open++;
            FAIL("bind ", m->label);
        }
        is_dir[n_open] = S_ISDIR(st.st_mode);
        if (m->device && !S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) {
            n_open++;
            errno = ENODEV;
            FAIL("not a device: ", m->label);
        }
    }
    if (mount("tmpfs", SB_STAGE, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, SB_ROOT_OPTS) != 0) {
        FAIL("mount the root tmpfs", NULL);
    }
    for (size_t i = 0; i < p->n_dirs; i++) {
        if (mkdir(p->dirs[i], 0755) != 0 && errno != EEXIST) {
            FAIL("mkdir ", p->dirs[i] + strlen(SB_STAGE));
        }
    }
    for (size_t i = 0; i < p->n_mnt; i++) {
        const sb_mnt *m = &p->mnt[i];
        int k = is_dir[i] ? mkdir(m->target, 0755) : mknod(m->target, S_IFREG | 0444, 0);
        if (k != 0 && errno != EEXIST) {
            FAIL("mount point ", m->label);
        }
        if (syscall(SYS_move_mount, fds[i], "", AT_FDCWD, m->target, MOVE_MOUNT_F_EMPTY_PATH) !=
            0) {
            FAIL("bind ", m->label);
        }
        if (mount(NULL, m->target, NULL, MS_BIND | MS_REMOUNT | m->flags, NULL) != 0) {
            FAIL("bind flags ", m->label);
        }
    }
    for (size_t i = 0; i < p->n_links; i++) {
        if (symlink(p->links[2 * i], p->links[2 * i + 1]) != 0) {
            FAIL("symlink ", p->links[2 * i + 1] + strlen(SB_STAGE));
        }
    }
    for (size_t i = 0; i < s->n_etc; i++) {
        int fd = open(p->etc_path[i], O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
        if (fd < 0 || write_all(fd, s->etc[i].text, strlen(s->etc[i].text)) != 0) {
            int w = errno;
            if (fd >= 0) {
                close(fd);
            }
            errno = w;
            FAIL("write /etc/", s->etc[i].name);
        }
        close(fd);
    }
    if (mount("tmpfs", p->tmp_target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, p->tmp_opts) !=
        0) {
        FAIL("mount /tmp", NULL);
    }
    /* A proc of the compartment's pid namespace showing only processes (subset=pid: no
     * /proc/sys, /proc/kallsyms, ...) and, of those, only the ones the app may ptrace-read
     * (hidepid=invisible: the non-dumpable init is not even listed). Without both (kernels
     * before 5.8, below the minimum) the compartment is not started: fail closed. */
    const unsigned long pf = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    if (mount("proc", p->proc_target, "proc", pf, "hidepid=invisible,subset=pid") != 0) {
        FAIL("mount /proc", NULL);
    }
    /* pivot_root(".", ".") stacks the old root on the new one; detaching it leaves the new
     * root alone (pivot_root(2)). */
    if (chdir(SB_STAGE) != 0 || syscall(SYS_pivot_root, ".", ".") != 0 ||
        umount2(".", MNT_DETACH) != 0 || chdir("/") != 0) {
        FAIL("pivot_root", NULL);
    }
    if (mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              NULL) != 0) {
        FAIL("remount / read-only", NULL);
    }
    if (chdir(SB_APP_DIR) != 0) {
        FAIL("chdir " SB_APP_DIR, NULL);
    }
out:
    for (size_t i = 0; i < n_open; i++) {
        close(fds[i]);
    }
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}
