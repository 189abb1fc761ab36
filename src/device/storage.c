/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mutable storage with a hard quota (storage.h): an ext4 image per app, loop-mounted.
 *
 * Why an image and not a directory with quotas: the quota is then a property of the file
 * system itself. It needs no quota support in the state directory's file system, an app
 * that fills its storage gets ENOSPC from its own file system and cannot fill the state
 * directory, and inode exhaustion stays inside the image too.
 *
 * The image: ext4 without a journal (the data is small and written by one app; a journal
 * would cost more than the data on small quotas), 1 KiB blocks (little waste per small
 * file), no root reservation (-m 0: the app is not root), no resize inode (growth is done
 * offline by resize2fs, which does not need one), one 256-byte inode per 16 KiB. Its
 * blocks are allocated on the state file system up front, so a full state file system
 * never fails a write the app's file system has accepted.
 *
 * One image is never attached to two loop devices at once: two ext4 instances on one image
 * would corrupt it. An app's mount namespace keeps its copy of the mount (and so the loop
 * device) until the app is gone, even after st_release; st_prepare therefore looks for a
 * loop device already backed by the image and mounts that one again (the kernel shares the
 * file system instance), and never runs mke2fs, e2fsck or resize2fs on an image a loop
 * device holds.
 *
 * After a power cut the image may be unclean (no journal to replay). Mounting reads its
 * superblock first (one read): an image not marked clean, or marked with errors, is checked
 * with e2fsck -p, and with e2fsck -fy when preening is not enough; a clean image is mounted
 * at once. A full check of every image at every start would cost start time for nothing:
 * the image is written only by the kernel's ext4, which marks it clean on unmount.
 */
#include "storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/loop.h>
#include <linux/magic.h>
#include <linux/major.h>

#include "pavise/platform.h"
#include "pavise/fs.h"
#include "pavise/log.h"
#include "pavise/manifest.h"

#define ST_MAX_NAME 64

/* The file system's geometry (see the top of the file). */
#define ST_BLOCK          1024u
#define ST_GROUP_BLOCKS   8192u /* 8 * ST_BLOCK: one block bitmap block per group */
#define ST_INODE_SIZE     256u
#define ST_KB_PER_INODE   16u
#define ST_MIN_INODES     32u
#define ST_FIXED_BLOCKS   20u   /* boot block, superblock, descriptors, root, lost+found */
#define ST_RESV_MAX       4096u /* ext4 keeps min(2%, 4096 blocks) for its own use */
#define ST_GROW_TRIES     3
#define ST_LOOP_TRIES     8
#define ST_DETACH_WAIT_MS 2000

#define ST_MOUNT_FLAGS (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME)
#define ST_MOUNT_DATA  "errors=remount-ro"

/* The superblock: 1024 bytes at offset 1024. */
#define ST_SB_OFFSET    1024
#define ST_SB_MAGIC     56 /* le16 0xEF53 */
#define ST_SB_STATE     58 /* le16: 1 cleanly unmounted, 2 errors detected */
#define ST_STATE_VALID  1u
#define ST_STATE_ERRORS 2u

#define ST_TOOL_OUT 400 /* how much of a tool's output an error message keeps */

typedef struct st_paths {
    char *img;     /* STATE/apps/storage/<name>.img */
    char *tmp;     /* STATE/apps/storage/<name>.img.new, while mke2fs runs */
    char *mnt;     /* STATE/run/storage/<name> */
    char *mnt_dir; /* STATE/run/storage */
} st_paths;

static bool st_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > ST_MAX_NAME) {
        return false;
    }
    /* No '/' and no '.': nothing can climb out of the storage directories. */
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_')) {
            return false;
        }
    }
    return true;
}

static void st_paths_free(st_paths *p)
{
    free(p->img);
    free(p->tmp);
    free(p->mnt);
    free(p->mnt_dir);
    memset(p, 0, sizeof(*p));
}

static int st_paths_make(const char *state_dir, const char *name, st_paths *p, pv_err *e)
{
    memset(p, 0, sizeof(*p));
    if (!st_name_ok(name)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "storage name '%.*s': expected 1 to %d of [A-Za-z0-9_-]", ST_MAX_NAME + 1,
                          name, ST_MAX_NAME);
    }
    if (asprintf(&p->img, "%s/apps/storage/%s.img", state_dir, name) < 0 ||
        asprintf(&p->tmp, "%s/apps/storage/%s.img.new", state_dir, name) < 0 ||
        asprintf(&p->mnt, "%s/run/storage/%s", state_dir, name) < 0 ||
        asprintf(&p->mnt_dir, "%s/run/storage", state_dir) < 0) {
        /* asprintf leaves the pointer undefined on failure */
        p->img = p->tmp = p->mnt = p->mnt_dir = NULL;
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    return PV_OK;
}

static int st_mkdirs(const char *state_dir, pv_err *e)
{
    static const char *const dirs[] = {"apps", "apps/storage", "run", "run/storage"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char path[PATH_MAX];
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", state_dir, dirs[i]) >= sizeof(path)) {
            return pv_err_set(e, PV_ERR_INVALID_ARG, "%s: path too long", state_dir);
        }
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            return pv_err_sys(e, PV_ERR_IO, errno, "%s: mkdir", path);
        }
    }
    return PV_OK;
}

static void st_nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- sizing ---- */

static uint64_t st_div_up(uint64_t a, uint64_t b)
{
    return (a + b - 1) / b;
}

static uint32_t st_inodes(uint32_t size_kb)
{
    uint32_t n = size_kb / ST_KB_PER_INODE;
    return n < ST_MIN_INODES ? ST_MIN_INODES : n;
}

/* Blocks of an image whose free space, as statvfs reports it to the app, is at least
 * size_kb: the data plus what ext4 keeps for itself. mke2fs rounds inodes up to whole
 * inode-table blocks per group (and bitmap bytes), drops a last group too small to hold
 * its own metadata, and ext4 reserves min(2%, 4096) blocks. st_prepare measures the
 * result and grows the image when this falls short (another e2fsprogs may lay it out
 * differently). */
static uint64_t st_image_blocks(uint32_t size_kb)
{
    const uint64_t per_block = ST_BLOCK / ST_INODE_SIZE;
    uint64_t inodes = st_inodes(size_kb);
    uint64_t total = (uint64_t)size_kb + ST_FIXED_BLOCKS + inodes / per_block;
    uint64_t ipg_blocks = 0;
    for (int round = 0; round < 4; round++) {
        uint64_t groups = st_div_up(total, ST_GROUP_BLOCKS);
        uint64_t ipg = st_div_up(st_div_up(inodes, groups), 8) * 8;
        ipg_blocks = st_div_up(ipg, per_block);
        uint64_t resv = total / 50 + 1;
        if (resv > ST_RESV_MAX) {
            resv = ST_RESV_MAX;
        }
        /* per group: two bitmaps, and (for the sparse backups) a superblock and descriptors */
        total = (uint64_t)size_kb + ST_FIXED_BLOCKS + groups * (ipg_blocks + 4) + resv;
    }
    uint64_t rem = (total - 1) % ST_GROUP_BLOCKS;
    uint64_t keep = 64 + ipg_blocks;
    if (rem != 0 && rem < keep) {
        total += keep - rem; /* a last group mke2fs would drop */
    }
    return total;
}

/* ---- running e2fsprogs ---- */

/* Runs /sbin/<tool> (or /usr/sbin/<tool>) with args, a clean environment and no stdin;
 * *status is its exit status. Its output (the start of it) goes into the message when the
 * caller reports a failure: out holds it. */
static int st_run(const char *tool, const char *const *args, int *status, char *out, size_t cap,
                  pv_err *e)
{
    static const char *const env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};
    static const char *const dirs[] = {"/sbin", "/usr/sbin"};
    int r = PV_ERR_INTERNAL;
    char path[64];
    const char *argv[24];
    int pfd[2] = {-1, -1};
    bool fa_ok = false, at_ok = false;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    *status = -1;
    out[0] = '\0';
    path[0] = '\0';
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dirs[i], tool);
        if (access(path, X_OK) == 0) {
            break;
        }
        path[0] = '\0';
    }
    if (path[0] == '\0') {
        return pv_err_set(e, PV_ERR_NOT_FOUND, "%s: not found in /sbin or /usr/sbin (e2fsprogs)",
                          tool);
    }
    size_t n = 0;
    argv[n++] = tool;
    for (size_t i = 0; args[i] != NULL; i++) {
        if (n + 1 >= sizeof(argv) / sizeof(argv[0])) {
            return pv_err_set(e, PV_ERR_INTERNAL, "%s: too many arguments", tool);
        }
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s: pipe", tool);
    }
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    if (posix_spawn_file_actions_init(&fa) != 0 || !(fa_ok = true) ||
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, pfd[1], 1) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, pfd[1], 2) != 0 || posix_spawnattr_init(&at) != 0 ||
        !(at_ok = true) ||
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) != 0 ||
        posix_spawnattr_setsigmask(&at, &none) != 0 ||
        posix_spawnattr_setsigdefault(&at, &all) != 0) {
        r = pv_err_set(e, PV_ERR_NOMEM, "%s: out of memory", tool);
        goto out;
    }
    pid_t pid;
    int err = posix_spawn(&pid, path, &fa, &at, (char *const *)argv, (char *const *)env);
    if (err != 0) {
        r = pv_err_sys(e, PV_ERR_IO, err, "%s", path);
        goto out;
    }
    close(pfd[1]);
    pfd[1] = -1;
    size_t have = 0;
    for (;;) {
        char chunk[512];
        ssize_t k = read(pfd[0], chunk, sizeof(chunk));
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            break;
        }
        for (ssize_t i = 0; i < k && have + 1 < cap; i++) {
            out[have++] = chunk[i] == '\n' || chunk[i] == '\t' ? ' ' : chunk[i];
        }
    }
    while (have > 0 && out[have - 1] == ' ') {
        have--;
    }
    out[have] = '\0';
    int ws;
    while (waitpid(pid, &ws, 0) < 0) {
        if (errno != EINTR) {
            r = pv_err_sys(e, PV_ERR_IO, errno, "%s: waitpid", tool);
            goto out;
        }
    }
    if (!WIFEXITED(ws)) {
        r = pv_err_set(e, PV_ERR_IO, "%s: killed by signal %d", tool, WTERMSIG(ws));
        goto out;
    }
    *status = WEXITSTATUS(ws);
    r = PV_OK;
out:
    if (fa_ok) {
        posix_spawn_file_actions_destroy(&fa);
    }
    if (at_ok) {
        posix_spawnattr_destroy(&at);
    }
    if (pfd[0] >= 0) {
        close(pfd[0]);
    }
    if (pfd[1] >= 0) {
        close(pfd[1]);
    }
    return r;
}

/* Runs tool and requires an exit status of at most ok_max. */
static int st_tool(const char *tool, const char *const *args, int ok_max, int *status, pv_err *e)
{
    char out[ST_TOOL_OUT];
    int st = -1;
    int r = st_run(tool, args, &st, out, sizeof(out), e);
    if (status != NULL) {
        *status = st;
    }
    if (r != PV_OK) {
        return r;
    }
    if (st > ok_max) {
        return pv_err_set(e, PV_ERR_IO, "%s exited with %d%s%s", tool, st, out[0] ? ": " : "", out);
    }
    return PV_OK;
}

/* Space for the image on the state file system, allocated now. */
static int st_allocate(int fd, const char *path, uint64_t bytes, pv_err *e)
{
    if (bytes > INT64_MAX) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "%s: size overflows", path);
    }
    if (fallocate(fd, 0, 0, (off_t)bytes) == 0) {
        return PV_OK;
    }
    if (errno != EOPNOTSUPP) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s: allocating %" PRIu64 " bytes", path, bytes);
    }
    /* A file system without fallocate: a sparse image still bounds what the app stores. */
    if (ftruncate(fd, (off_t)bytes) != 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s: truncate", path);
    }
    return PV_OK;
}

/* Makes the image: written as <name>.img.new and renamed into place once mke2fs is done,
 * so a crash leaves either no image or a whole one. *fd: the image, open read-write. */
static int st_create(const st_paths *p, uint32_t size_kb, uid_t uid, gid_t gid, int *fd, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    char inodes[16], ext[64];
    *fd = -1;
    unlink(p->tmp); /* left by a crash during an earlier creation */
    int ifd = open(p->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (ifd < 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s", p->tmp);
    }
    if ((r = st_allocate(ifd, p->tmp, st_image_blocks(size_kb) * ST_BLOCK, e)) != PV_OK) {
        goto out;
    }
    snprintf(inodes, sizeof(inodes), "%" PRIu32, st_inodes(size_kb));
    /* nodiscard: mke2fs would punch the allocated blocks out again. */
    snprintf(ext, sizeof(ext), "root_owner=%u:%u,nodiscard", (unsigned)uid, (unsigned)gid);
    const char *args[] = {"-q",   "-F",   "-t", "ext4", "-O", "^has_journal,^resize_inode",
                          "-b",   "1024", "-m", "0",    "-I", "256",
                          "-N",   inodes, "-E", ext,    "-e", "remount-ro",
                          p->tmp, NULL};
    if ((r = st_tool("mke2fs", args, 0, NULL, e)) != PV_OK) {
        goto out;
    }
    /* Durable before it has its name: a power cut must not leave a named, half-made image. */
    if (fsync(ifd) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s: fsync", p->tmp);
        goto out;
    }
    if (rename(p->tmp, p->img) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s: rename", p->img);
        goto out;
    }
    if ((r = pv_fs_sync_parent(p->img, e)) != PV_OK) {
        goto out;
    }
    pv_info("storage %s: created (%" PRIu32 " KiB usable)", p->img, size_kb);
    *fd = ifd;
    ifd = -1;
    r = PV_OK;
out:
    if (ifd >= 0) {
        close(ifd);
        unlink(p->tmp);
    }
    return r;
}

/* Checks the superblock and repairs an image that was not unmounted cleanly. */
static int st_check(const char *img, int fd, pv_err *e)
{
    uint8_t sb[1024];
    ssize_t k = pread(fd, sb, sizeof(sb), ST_SB_OFFSET);
    if (k != (ssize_t)sizeof(sb)) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s: too short for an ext4 image", img);
    }
    unsigned magic = sb[ST_SB_MAGIC] | (unsigned)sb[ST_SB_MAGIC + 1] << 8;
    unsigned state = sb[ST_SB_STATE] | (unsigned)sb[ST_SB_STATE + 1] << 8;
    if (magic != EXT4_SUPER_MAGIC) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s: not an ext4 image", img);
    }
    if ((state & ST_STATE_VALID) != 0 && (state & ST_STATE_ERRORS) == 0) {
        return PV_OK;
    }
    pv_warn("storage %s: not cleanly unmounted (power cut?); checking it", img);
    const char *preen[] = {"-p", img, NULL};
    int st = -1;
    /* 0: clean, 1: errors corrected, 2: corrected, "reboot" (meaningless for an image). */
    int r = st_tool("e2fsck", preen, 2, &st, e);
    if (r == PV_OK) {
        return PV_OK;
    }
    if (st < 4) {
        return r; /* it did not run, or ran into an operational error */
    }
    /* Preening stops at anything that needs a decision. The app's own data is all there is
     * to lose, and an app whose storage never mounts is worse off than one whose storage
     * lost a damaged file to lost+found. */
    pv_warn("storage %s: %s; repairing with e2fsck -fy", img, pv_err_msg(e));
    pv_err_clear(e);
    const char *repair[] = {"-f", "-y", img, NULL};
    return st_tool("e2fsck", repair, 2, NULL, e);
}

/* Grows the (unattached) image to blocks and its file system with it. */
static int st_grow(const char *img, int fd, uint64_t blocks, pv_err *e)
{
    int r = st_allocate(fd, img, blocks * ST_BLOCK, e);
    if (r != PV_OK) {
        return r;
    }
    /* resize2fs insists on a checked file system; a forced check of a small image is quick. */
    const char *check[] = {"-f", "-p", img, NULL};
    const char *resize[] = {img, NULL};
    if ((r = st_tool("e2fsck", check, 2, NULL, e)) != PV_OK ||
        (r = st_tool("resize2fs", resize, 0, NULL, e)) != PV_OK) {
        return r;
    }
    pv_info("storage %s: grown to %" PRIu64 " KiB", img, blocks * ST_BLOCK / 1024);
    return PV_OK;
}

/* ---- loop devices ---- */

/* True when the loop device open as lfd is backed by the file st describes. */
static bool st_loop_backs(int lfd, const struct stat *st)
{
    struct loop_info64 info;
    memset(&info, 0, sizeof(info));
    if (ioctl(lfd, LOOP_GET_STATUS64, &info) != 0) {
        return false; /* ENXIO: not attached */
    }
    return info.lo_device == (uint64_t)st->st_dev && info.lo_inode == (uint64_t)st->st_ino;
}

/* Finds a loop device the image is attached to already (an app's mount namespace can keep
 * one alive after st_release). *lfd: opened read-only, which holds the device: an
 * autoclear device stays attached while it is open. PV_ERR_NOT_FOUND when there is none. */
static int st_find_loop(const struct stat *st, int *lfd, char *dev, size_t cap, pv_err *e)
{
    *lfd = -1;
    DIR *d = opendir("/sys/block");
    if (d == NULL) {
        return pv_err_sys(e, PV_ERR_IO, errno, "/sys/block");
    }
    int r = PV_ERR_NOT_FOUND;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (strncmp(de->d_name, "loop", 4) != 0 || de->d_name[4] < '0' || de->d_name[4] > '9' ||
            strlen(de->d_name) > 16) {
            continue;
        }
        snprintf(dev, cap, "/dev/%s", de->d_name);
        int fd = open(dev, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        if (st_loop_backs(fd, st)) {
            *lfd = fd;
            r = PV_OK;
            break;
        }
        close(fd);
    }
    closedir(d);
    if (r != PV_OK) {
        dev[0] = '\0';
    }
    return r;
}

/* Waits (bounded) until no loop device is attached to the image: after an unmount, for the
 * autoclear to run. PV_ERR_IO when one still is (an app's namespace still holds it). */
static int st_wait_detached(const char *img, const struct stat *st, pv_err *e)
{
    int64_t deadline = pv_monotonic_ms() + ST_DETACH_WAIT_MS;
    long nap = 1;
    for (;;) {
        int lfd;
        char dev[32];
        int r = st_find_loop(st, &lfd, dev, sizeof(dev), e);
        if (r == PV_ERR_NOT_FOUND) {
            pv_err_clear(e);
            return PV_OK;
        }
        if (r != PV_OK) {
            return r;
        }
        close(lfd);
        if (pv_monotonic_ms() >= deadline) {
            return pv_err_set(e, PV_ERR_IO,
                              "%s: still attached to %s (mounted in a running app's namespace?)",
                              img, dev);
        }
        st_nap_ms(nap);
        nap = nap < 32 ? nap * 2 : 32;
    }
}

/* Attaches the image to a free loop device that detaches itself when its last user (the
 * mount) lets go. *lfd: the device, opened read-only (see st_find_loop). */
static int st_attach(const char *img, int ifd, int *lfd, char *dev, size_t cap, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    *lfd = -1;
    int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "/dev/loop-control");
    }
    int fd = -1;
    for (int attempt = 0; attempt < ST_LOOP_TRIES; attempt++) {
        int n = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (n < 0) {
            r = pv_err_sys(e, PV_ERR_IO, errno, "/dev/loop-control: no free loop device");
            goto out;
        }
        snprintf(dev, cap, "/dev/loop%d", n);
        fd = open(dev, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            r = pv_err_sys(e, PV_ERR_IO, errno, "%s", dev);
            goto out;
        }
        struct loop_config cfg;
        memset(&cfg, 0, sizeof(cfg));
        cfg.fd = (uint32_t)ifd;
        cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
        size_t nl = strlen(img);
        const char *tail = nl < LO_NAME_SIZE ? img : img + nl - (LO_NAME_SIZE - 1);
        memcpy(cfg.info.lo_file_name, tail, strlen(tail)); /* for losetup -l; NUL from memset */
        if (ioctl(fd, LOOP_CONFIGURE, &cfg) == 0) {
            break;
        }
        int err = errno;
        if (err == EINVAL || err == ENOTTY) {
            /* Before Linux 5.8: attach, then set the flags; autoclear is settable there. */
            if (ioctl(fd, LOOP_SET_FD, ifd) == 0) {
                if (ioctl(fd, LOOP_SET_STATUS64, &cfg.info) == 0) {
                    break;
                }
                err = errno;
                ioctl(fd, LOOP_CLR_FD, 0);
            } else {
                err = errno;
            }
        }
        close(fd);
        fd = -1;
        if (err != EBUSY) {
            r = pv_err_sys(e, PV_ERR_IO, err, "%s: attaching %s", dev, img);
            goto out;
        }
        /* EBUSY: another process took the free device first; ask again. */
    }
    if (fd < 0) {
        r = pv_err_set(e, PV_ERR_IO, "%s: no loop device could be attached", img);
        goto out;
    }
    /* Swap the read-write fd for a read-only one: a kernel that refuses to mount a block
     * device open for writing elsewhere (BLK_DEV_WRITE_MOUNTED=n) still mounts this. */
    *lfd = open(dev, O_RDONLY | O_CLOEXEC);
    if (*lfd < 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", dev);
        goto out;
    }
    r = PV_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    close(ctl);
    return r;
}

/* ---- mounts ---- */

/* *dev: the device mounted at mnt, or 0 when mnt is not a mount point of its own. */
static int st_mounted_dev(const st_paths *p, dev_t *dev, pv_err *e)
{
    struct stat m, parent;
    *dev = 0;
    if (lstat(p->mnt, &m) != 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s", p->mnt);
    }
    if (lstat(p->mnt_dir, &parent) != 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s", p->mnt_dir);
    }
    if (!S_ISDIR(m.st_mode)) {
        return pv_err_set(e, PV_ERR_IO, "%s: not a directory", p->mnt);
    }
    if (m.st_dev != parent.st_dev) {
        *dev = m.st_dev;
    }
    return PV_OK;
}

/* Checks that what is mounted at p->mnt (device dev) is the image st describes, with the
 * flags it must have. */
static int st_check_mounted(const st_paths *p, dev_t dev, const struct stat *st, pv_err *e)
{
    char path[32];
    struct stat ds;
    struct statvfs vfs;
    bool ours = false;
    if (major(dev) == LOOP_MAJOR) {
        snprintf(path, sizeof(path), "/dev/loop%u", minor(dev));
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ours = fstat(fd, &ds) == 0 && S_ISBLK(ds.st_mode) && ds.st_rdev == dev &&
                   st_loop_backs(fd, st);
            close(fd);
        }
    }
    if (!ours) {
        return pv_err_set(e, PV_ERR_IO, "%s: something other than %s is mounted there", p->mnt,
                          p->img);
    }
    const unsigned long need = ST_NOSUID | ST_NODEV | ST_NOEXEC;
    if (statvfs(p->mnt, &vfs) != 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s", p->mnt);
    }
    if ((vfs.f_flag & need) != need || (vfs.f_flag & ST_RDONLY) != 0) {
        return pv_err_set(e, PV_ERR_IO, "%s: mounted without nosuid,nodev,noexec or read-only",
                          p->mnt);
    }
    return PV_OK;
}

static int st_unmount(const char *mnt, pv_err *e)
{
    /* Repeated: whatever is stacked there goes (st_prepare never stacks, but a crash between
     * its steps might have). */
    for (int i = 0; i < 8; i++) {
        if (umount2(mnt, UMOUNT_NOFOLLOW) != 0) {
            if (errno == EINVAL || errno == ENOENT) {
                return PV_OK; /* not (or no longer) a mount point */
            }
            return pv_err_sys(e, PV_ERR_IO, errno, "%s: unmount", mnt);
        }
    }
    return pv_err_set(e, PV_ERR_IO, "%s: still mounted after 8 unmounts", mnt);
}

/* The root of the mounted file system belongs to the app, and only to it. */
static int st_fix_root(const char *mnt, dev_t dev, uid_t uid, gid_t gid, pv_err *e)
{
    int r = PV_ERR_IO;
    int fd = open(mnt, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", mnt);
        goto out;
    }
    if (st.st_dev != dev) {
        r = pv_err_set(e, PV_ERR_IO, "%s: the storage is no longer mounted there", mnt);
        goto out;
    }
    if ((st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s: chown", mnt);
        goto out;
    }
    if ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s: chmod", mnt);
        goto out;
    }
    r = PV_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    return r;
}

/* Blocks (of 512 bytes) that name in the directory dirfd occupies; 0 when it is gone. */
static uint64_t st_blocks_of(int dirfd, const char *name)
{
    struct stat st;
    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? (uint64_t)st.st_blocks : 0;
}

/* The app's view of its storage, in KiB: used is what its files take (the file system's
 * own root and lost+found directories are not counted), total is used + what it can still
 * write (statvfs f_bavail: the non-root free space, less ext4's small reservation). */
static int st_measure(const char *mnt, uint64_t *used_kb, uint64_t *total_kb, pv_err *e)
{
    struct statvfs v;
    int fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fstatvfs(fd, &v) != 0) {
        int r = pv_err_sys(e, errno == ENOENT ? PV_ERR_NOT_FOUND : PV_ERR_IO, errno, "%s", mnt);
        if (fd >= 0) {
            close(fd);
        }
        return r;
    }
    uint64_t own = (st_blocks_of(fd, ".") + st_blocks_of(fd, "lost+found")) * 512;
    close(fd);
    uint64_t bs = (uint64_t)v.f_frsize;
    uint64_t used = ((uint64_t)v.f_blocks - (uint64_t)v.f_bfree) * bs;
    used = used > own ? used - own : 0;
    *used_kb = used / 1024;
    *total_kb = *used_kb + (uint64_t)v.f_bavail * bs / 1024;
    return PV_OK;
}

/* Mounts the image (open as ifd, described by st) at p->mnt: on the loop device already
 * attached to it, or on a new one. grow: blocks the image must have first (0: as it is). */
static int st_mount_image(const st_paths *p, int ifd, const struct stat *st, uint64_t grow,
                          bool check, dev_t *dev, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    char ldev[32];
    int lfd = -1;
    struct stat ls;
    r = st_find_loop(st, &lfd, ldev, sizeof(ldev), e);
    if (r == PV_OK) {
        /* Still attached: an app's namespace holds the file system. Mount the same device,
         * so there is one instance of the file system, and leave the image alone. */
        if (grow > 0) {
            r = pv_err_set(e, PV_ERR_IO,
                           "%s: cannot grow while %s holds it (mounted in a running app's "
                           "namespace?); stop the app first",
                           p->img, ldev);
            goto out;
        }
        pv_debug("storage %s: reusing %s", p->img, ldev);
    } else if (r == PV_ERR_NOT_FOUND) {
        pv_err_clear(e);
        if (check && (r = st_check(p->img, ifd, e)) != PV_OK) {
            goto out;
        }
        if (grow > 0 && (r = st_grow(p->img, ifd, grow, e)) != PV_OK) {
            goto out;
        }
        if ((r = st_attach(p->img, ifd, &lfd, ldev, sizeof(ldev), e)) != PV_OK) {
            goto out;
        }
    } else {
        goto out;
    }
    if (fstat(lfd, &ls) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", ldev);
        goto out;
    }
    if (mount(ldev, p->mnt, "ext4", ST_MOUNT_FLAGS, ST_MOUNT_DATA) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "mount %s (%s) at %s", ldev, p->img, p->mnt);
        goto out;
    }
    *dev = ls.st_rdev;
    r = PV_OK;
out:
    /* The mount holds the device now; with autoclear it detaches when that goes. */
    if (lfd >= 0) {
        close(lfd);
    }
    return r;
}

/* After creating or growing: measures what the app can hold and grows the image until it
 * is at least size_kb (the layout estimate may fall short with another e2fsprogs). */
static int st_verify(const st_paths *p, int ifd, uint32_t size_kb, dev_t *dev, pv_err *e)
{
    for (int i = 0;; i++) {
        uint64_t used = 0, total = 0;
        struct stat st;
        int r = st_measure(p->mnt, &used, &total, e);
        if (r != PV_OK) {
            return r;
        }
        if (total >= size_kb) {
            return PV_OK;
        }
        if (i == ST_GROW_TRIES) {
            return pv_err_set(e, PV_ERR_IO, "%s: holds %" PRIu64 " KiB, short of %" PRIu32 " KiB",
                              p->img, total, size_kb);
        }
        pv_debug("storage %s: holds %" PRIu64 " KiB, %" PRIu32 " KiB wanted; growing", p->img,
                 total, size_kb);
        if ((r = st_unmount(p->mnt, e)) != PV_OK) {
            return r;
        }
        if (fstat(ifd, &st) != 0) {
            return pv_err_sys(e, PV_ERR_IO, errno, "%s", p->img);
        }
        if ((r = st_wait_detached(p->img, &st, e)) != PV_OK) {
            return r;
        }
        /* What ext4 keeps grows with the size: ask for the shortfall and a bit more. */
        uint64_t blocks = (uint64_t)st.st_size / ST_BLOCK + (size_kb - total) * 51 / 50 + 8;
        if ((r = st_mount_image(p, ifd, &st, blocks, false, dev, e)) != PV_OK) {
            return r;
        }
    }
}

int st_prepare(const char *state_dir, const char *name, uint32_t size_kb, uid_t uid, gid_t gid,
               char **mount_path, pv_err *e)
{
    *mount_path = NULL;
    int r = PV_ERR_INTERNAL;
    int ifd = -1;
    bool mounted_here = false;
    st_paths p;
    struct stat st;
    dev_t dev = 0;
    if ((r = st_paths_make(state_dir, name, &p, e)) != PV_OK) {
        goto out;
    }
    if (size_kb == 0 || size_kb > PV_MAX_STORAGE_KB) {
        r = pv_err_set(e, PV_ERR_INVALID_ARG, "storage %s: %" PRIu32 " KiB is out of range (1..%u)",
                       name, size_kb, PV_MAX_STORAGE_KB);
        goto out;
    }
    if ((r = st_mkdirs(state_dir, e)) != PV_OK) {
        goto out;
    }
    if (mkdir(p.mnt, 0700) != 0 && errno != EEXIST) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s: mkdir", p.mnt);
        goto out;
    }
    uint64_t want = st_image_blocks(size_kb);
    if ((r = st_mounted_dev(&p, &dev, e)) != PV_OK) {
        goto out;
    }
    if (dev != 0) {
        /* Mounted already (an earlier st_prepare, or a runtime that restarted). */
        if (lstat(p.img, &st) != 0 || !S_ISREG(st.st_mode)) {
            r = pv_err_set(e, PV_ERR_IO, "%s: mounted, but %s is missing", p.mnt, p.img);
            goto out;
        }
        if ((r = st_check_mounted(&p, dev, &st, e)) != PV_OK) {
            goto out;
        }
        if ((uint64_t)st.st_size >= want * ST_BLOCK) {
            goto ready;
        }
        /* Larger SizeKB: grow it offline. */
        if ((r = st_unmount(p.mnt, e)) != PV_OK || (r = st_wait_detached(p.img, &st, e)) != PV_OK) {
            goto out;
        }
    }
    bool fresh = false;
    ifd = open(p.img, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (ifd < 0 && errno == ENOENT) {
        if ((r = st_create(&p, size_kb, uid, gid, &ifd, e)) != PV_OK) {
            goto out;
        }
        fresh = true;
    } else if (ifd < 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", p.img);
        goto out;
    }
    if (fstat(ifd, &st) != 0 || !S_ISREG(st.st_mode)) {
        r = pv_err_set(e, PV_ERR_IO, "%s: not a regular file", p.img);
        goto out;
    }
    uint64_t have = (uint64_t)st.st_size / ST_BLOCK;
    uint64_t grow = have < want ? want : 0;
    if (have > want + want / 16 + 64) {
        pv_warn("storage %s: %" PRIu32 " KiB is less than it holds already; keeping its size "
                "and data",
                p.img, size_kb);
    }
    if ((r = st_mount_image(&p, ifd, &st, grow, !fresh, &dev, e)) != PV_OK) {
        goto out;
    }
    mounted_here = true;
    if ((fresh || grow > 0) && (r = st_verify(&p, ifd, size_kb, &dev, e)) != PV_OK) {
        goto out;
    }
ready:
    if ((r = st_fix_root(p.mnt, dev, uid, gid, e)) != PV_OK) {
        goto out;
    }
    if ((*mount_path = strdup(p.mnt)) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    mounted_here = false;
    r = PV_OK;
out:
    if (mounted_here) {
        st_unmount(p.mnt, NULL);
    }
    if (ifd >= 0) {
        close(ifd);
    }
    if (r != PV_OK && r != PV_ERR_INVALID_ARG) {
        pv_err_wrap(e, r, "storage %s", name);
    }
    st_paths_free(&p);
    return r;
}

int st_usage(const char *mount_path, uint64_t *used_kb, uint64_t *total_kb, pv_err *e)
{
    *used_kb = 0;
    *total_kb = 0;
    struct statfs fs;
    struct stat m, parent;
    char up[PATH_MAX];
    if ((size_t)snprintf(up, sizeof(up), "%s/..", mount_path) >= sizeof(up)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "%s: path too long", mount_path);
    }
    if (statfs(mount_path, &fs) != 0 || stat(mount_path, &m) != 0 || stat(up, &parent) != 0) {
        return pv_err_sys(e, errno == ENOENT ? PV_ERR_NOT_FOUND : PV_ERR_IO, errno, "%s",
                          mount_path);
    }
    if (fs.f_type != EXT4_SUPER_MAGIC || m.st_dev == parent.st_dev) {
        return pv_err_set(e, PV_ERR_NOT_FOUND, "%s: the storage is not mounted", mount_path);
    }
    return st_measure(mount_path, used_kb, total_kb, e);
}

int st_release(const char *state_dir, const char *name, pv_err *e)
{
    st_paths p;
    int r = st_paths_make(state_dir, name, &p, e);
    if (r == PV_OK && (r = st_unmount(p.mnt, e)) != PV_OK) {
        pv_err_wrap(e, r, "storage %s", name);
    }
    st_paths_free(&p);
    return r;
}

int st_delete(const char *state_dir, const char *name, pv_err *e)
{
    st_paths p;
    int r = st_paths_make(state_dir, name, &p, e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = st_unmount(p.mnt, e)) != PV_OK) {
        goto out;
    }
    /* An app namespace that still holds the image keeps its inode until it is gone. */
    if (unlink(p.img) != 0 && errno != ENOENT) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", p.img);
        goto out;
    }
    if (unlink(p.tmp) != 0 && errno != ENOENT) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", p.tmp);
        goto out;
    }
    if (rmdir(p.mnt) != 0 && errno != ENOENT) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", p.mnt);
        goto out;
    }
    r = PV_OK;
out:
    if (r != PV_OK) {
        pv_err_wrap(e, r, "storage %s", name);
    }
    st_paths_free(&p);
    return r;
}
