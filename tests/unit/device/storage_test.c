/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Quota-bound storage: real ext4 images on real loop devices (root needed; skipped
 * otherwise). Everything is mounted in a mount namespace of the test's own, made private,
 * so nothing reaches the host's mount table; the loop devices detach themselves when the
 * mounts (or this process) go.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#include "storage.h"

#define APP_UID   70001
#define OTHER_UID 70002
#define KIB       1024

static bool g_ok; /* root, in a private mount namespace */

static int setup(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        return 0;
    }
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        print_message("no private mount namespace: %s\n", strerror(errno));
        return 0;
    }
    g_ok = true;
    return 0;
}

#define NEED_ROOT()                                                                                \
    do {                                                                                           \
        if (!g_ok) {                                                                               \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
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

/* What a child running as uid did in the storage. */
typedef struct fill_result {
    long long written;
    int err;
} fill_result;

static void become(uid_t uid)
{
    if (setgroups(0, NULL) != 0 || setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0) {
        _exit(80);
    }
}

/* As uid, writes file (1 KiB at a time, byte i of the file being i % 251) until an error
 * or max bytes; returns how much was written and the error. The storage directory is
 * opened by root first: the app reaches it the same way, by a bind mount, not by the state
 * directory's path. */
static fill_result fill_as(uid_t uid, const char *dir, const char *file, long long max)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        become(uid);
        fill_result res = {0, 0};
        int fd = openat(dfd, file, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd < 0) {
            res.err = errno;
        }
        char buf[KIB];
        while (fd >= 0 && res.written < max) {
            for (size_t i = 0; i < sizeof(buf); i++) {
                buf[i] = (char)((res.written + (long long)i) % 251);
            }
            ssize_t k = write(fd, buf, sizeof(buf));
            if (k < 0) {
                res.err = errno;
                break;
            }
            res.written += k;
            if (k < (ssize_t)sizeof(buf)) {
                continue; /* the next write says why */
            }
        }
        if (fd >= 0 && fsync(fd) != 0 && res.err == 0) {
            res.err = errno;
        }
        if (write(p[1], &res, sizeof(res)) != (ssize_t)sizeof(res)) {
            _exit(81);
        }
        _exit(0);
    }
    close(p[1]);
    close(dfd);
    fill_result res = {-1, -1};
    assert_int_equal(read(p[0], &res, sizeof(res)), (ssize_t)sizeof(res));
    close(p[0]);
    int ws = wait_status(pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    return res;
}

/* Checks that path holds n bytes of the fill pattern. */
static void assert_pattern(const char *dir, const char *file, long long n)
{
    char *path = tu_path(dir, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, n);
    char buf[KIB];
    for (long long off = 0; off < n;) {
        ssize_t k = read(fd, buf, sizeof(buf));
        assert_true(k > 0);
        for (ssize_t i = 0; i < k; i++) {
            assert_int_equal((unsigned char)buf[i], (unsigned)((off + i) % 251));
        }
        off += k;
    }
    close(fd);
    free(path);
}

static char *img_path(const char *state, const char *name)
{
    char rel[128];
    snprintf(rel, sizeof(rel), "apps/storage/%s.img", name);
    return tu_path(state, rel);
}

static dev_t mounted_dev(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_dev;
}

static bool is_mount_point(const char *path)
{
    char *up = tu_path(path, "..");
    struct stat a, b;
    bool r = stat(path, &a) == 0 && stat(up, &b) == 0 && a.st_dev != b.st_dev;
    free(up);
    return r;
}

/* True while the loop device dev is attached to something. */
static bool loop_attached(dev_t dev)
{
    char p[96];
    snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/loop/backing_file", major(dev), minor(dev));
    return tu_exists(p);
}

static void wait_detached(dev_t dev)
{
    for (int i = 0; i < 2000 && loop_attached(dev); i++) {
        sleep_ms(1);
    }
    assert_false(loop_attached(dev));
}

static void run_tool(const char *const *argv)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int ws = wait_status(pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
}

/* ---- tests ---- */

static void test_refuses_bad_arguments(void **state)
{
    (void)state;
    NEED_ROOT();
    char *dir = tu_mkdtemp("storage");
    static const char *const bad[] = {
        "",     "a/b", "..",  ".",
        "../x", "a.b", "a b", "0123456789012345678901234567890123456789012345678901234567890123X"};
    char *path = (char *)1;
    pv_err e;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(st_prepare(dir, bad[i], 64, APP_UID, APP_UID, &path, &e),
                         PV_ERR_INVALID_ARG);
        assert_null(path);
        assert_int_equal(st_release(dir, bad[i], &e), PV_ERR_INVALID_ARG);
        assert_int_equal(st_delete(dir, bad[i], &e), PV_ERR_INVALID_ARG);
    }
    assert_int_equal(st_prepare(dir, "app", 0, APP_UID, APP_UID, &path, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(st_prepare(dir, "app", 64 * 1024 + 1, APP_UID, APP_UID, &path, &e),
                     PV_ERR_INVALID_ARG);
    assert_int_equal(tu_count_entries(dir), 0); /* nothing made for a refused request */
    uint64_t used, total;
    assert_int_equal(st_usage(dir, &used, &total, &e), PV_ERR_NOT_FOUND);
    tu_rmtree(dir);
    free(dir);
}

static void test_quota_persistence_delete(void **state)
{
    (void)state;
    NEED_ROOT();
    char *dir = tu_mkdtemp("storage");
    char *path = NULL, *again = NULL;
    pv_err e;
    assert_int_equal(st_prepare(dir, "app-1", 64, APP_UID, APP_UID, &path, &e), PV_OK);
    char *img = img_path(dir, "app-1");
    struct stat st;
    assert_int_equal(stat(img, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_uid, 0);

    /* The mount and the root of the app's file system. */
    struct statvfs v;
    assert_int_equal(statvfs(path, &v), 0);
    assert_true(v.f_flag & ST_NOSUID);
    assert_true(v.f_flag & ST_NODEV);
    assert_true(v.f_flag & ST_NOEXEC);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, APP_UID);
    assert_int_equal(st.st_gid, APP_UID);
    assert_int_equal(st.st_mode & 07777, 0700);

    /* The app fills it: at least the quota fits, and not much more. */
    fill_result r = fill_as(APP_UID, path, "data", 1 << 20);
    assert_int_equal(r.err, ENOSPC);
    print_message("64 KiB storage: the app wrote %lld KiB\n", r.written / KIB);
    assert_true(r.written >= 64 * KIB);
    assert_true(r.written <= 64 * KIB + 16 * KIB);
    uint64_t used = 0, total = 0;
    assert_int_equal(st_usage(path, &used, &total, &e), PV_OK);
    assert_true(used >= 64);
    assert_true(total >= used && total - used < 4);
    /* Another uid cannot even look in. */
    fill_result other = fill_as(OTHER_UID, path, "other", KIB);
    assert_int_equal(other.err, EACCES);

    /* Preparing again is a no-op that finds the same mount. */
    dev_t dev = mounted_dev(path);
    assert_int_equal(st_prepare(dir, "app-1", 64, APP_UID, APP_UID, &again, &e), PV_OK);
    assert_string_equal(again, path);
    assert_int_equal(mounted_dev(again), dev);
    free(again);

    /* Released: unmounted (once was enough: nothing stacked), the loop device gone. */
    assert_int_equal(st_release(dir, "app-1", &e), PV_OK);
    assert_false(is_mount_point(path));
    assert_int_equal(st_usage(path, &used, &total, &e), PV_ERR_NOT_FOUND);
    wait_detached(dev);
    assert_int_equal(st_release(dir, "app-1", &e), PV_OK); /* not mounted: fine */

    /* Prepared again: the data is there. */
    assert_int_equal(st_prepare(dir, "app-1", 64, APP_UID, APP_UID, &again, &e), PV_OK);
    assert_pattern(again, "data", r.written);
    free(again);

    /* Deleted: image and mount point gone. */
    dev = mounted_dev(path);
    assert_int_equal(st_delete(dir, "app-1", &e), PV_OK);
    assert_false(tu_exists(img));
    assert_false(tu_exists(path));
    wait_detached(dev);
    assert_int_equal(st_delete(dir, "app-1", &e), PV_OK);
    free(img);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_grow_keep_shrink(void **state)
{
    (void)state;
    NEED_ROOT();
    char *dir = tu_mkdtemp("storage");
    char *path = NULL, *again = NULL;
    pv_err e;
    assert_int_equal(st_prepare(dir, "grow", 64, APP_UID, APP_UID, &path, &e), PV_OK);
    fill_result a = fill_as(APP_UID, path, "a", 32 * KIB);
    assert_int_equal(a.err, 0);

    /* A larger SizeKB while mounted: unmounted, grown, mounted again, data kept. */
    assert_int_equal(st_prepare(dir, "grow", 256, APP_UID, APP_UID, &again, &e), PV_OK);
    assert_pattern(again, "a", a.written);
    fill_result b = fill_as(APP_UID, again, "b", 1 << 20);
    assert_int_equal(b.err, ENOSPC);
    print_message("grown to 256 KiB: the app wrote %lld + %lld KiB\n", a.written / KIB,
                  b.written / KIB);
    assert_true(a.written + b.written >= 256 * KIB);
    assert_true(a.written + b.written <= 256 * KIB + 24 * KIB);
    free(again);

    /* A smaller one keeps the size and the data. */
    assert_int_equal(st_release(dir, "grow", &e), PV_OK);
    assert_int_equal(st_prepare(dir, "grow", 64, APP_UID, APP_UID, &again, &e), PV_OK);
    assert_pattern(again, "a", a.written);
    assert_pattern(again, "b", b.written);
    uint64_t used, total;
    assert_int_equal(st_usage(again, &used, &total, &e), PV_OK);
    assert_true(total >= 256);
    free(again);
    assert_int_equal(st_delete(dir, "grow", &e), PV_OK);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_sizes(void **state)
{
    (void)state;
    NEED_ROOT();
    char *dir = tu_mkdtemp("storage");
    static const uint32_t sizes[] = {1, 100, 1000, 8100, 10000, 65536};
    pv_err e;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char *path = NULL;
        assert_int_equal(st_prepare(dir, "size", sizes[i], 0, 0, &path, &e), PV_OK);
        struct statvfs v;
        assert_int_equal(statvfs(path, &v), 0);
        uint64_t avail = (uint64_t)v.f_bavail * v.f_frsize / KIB;
        print_message("%u KiB asked: %llu KiB free\n", sizes[i], (unsigned long long)avail);
        assert_true(avail >= sizes[i]);
        /* mke2fs has a floor: a group holds its own metadata and 50 blocks more */
        assert_true(avail <= sizes[i] + sizes[i] / 50 + 48);
        assert_int_equal(st_delete(dir, "size", &e), PV_OK);
        free(path);
    }
    tu_rmtree(dir);
    free(dir);
}

static void test_unclean_image_is_checked(void **state)
{
    (void)state;
    NEED_ROOT();
    char *dir = tu_mkdtemp("storage");
    char *path = NULL, *again = NULL;
    pv_err e;
    assert_int_equal(st_prepare(dir, "unclean", 64, APP_UID, APP_UID, &path, &e), PV_OK);
    fill_result a = fill_as(APP_UID, path, "a", 8 * KIB);
    dev_t dev = mounted_dev(path);
    assert_int_equal(st_release(dir, "unclean", &e), PV_OK);
    wait_detached(dev);
    /* What a power cut leaves: the superblock not marked clean. */
    char *img = img_path(dir, "unclean");
    const char *debugfs[] = {"/sbin/debugfs", "-w", "-R", "ssv state 0", img, NULL};
    run_tool(debugfs);
    assert_int_equal(st_prepare(dir, "unclean", 64, APP_UID, APP_UID, &again, &e), PV_OK);
    assert_pattern(again, "a", a.written);
    free(again);
    dev = mounted_dev(path);
    assert_int_equal(st_release(dir, "unclean", &e), PV_OK);
    wait_detached(dev);
    /* Checked and, after a clean unmount, marked clean again. */
    int fd = open(img, O_RDONLY);
    assert_true(fd >= 0);
    unsigned char s[2];
    assert_int_equal(pread(fd, s, 2, 1024 + 58), 2);
    assert_int_equal(s[0] & 3, 1);
    close(fd);
    assert_int_equal(st_delete(dir, "unclean", &e), PV_OK);
    free(img);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

/* An app's namespace keeps the file system after st_release: preparing again must mount
 * that same instance (one loop device), and growing must wait for the app. */
static void test_image_held_by_an_app_namespace(void **state)
{
    (void)state;
    NEED_ROOT();
    char *dir = tu_mkdtemp("storage");
    char *path = NULL, *again = NULL;
    pv_err e;
    assert_int_equal(st_prepare(dir, "held", 64, APP_UID, APP_UID, &path, &e), PV_OK);
    fill_result a = fill_as(APP_UID, path, "a", 4 * KIB);
    dev_t dev = mounted_dev(path);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t app = fork();
    assert_true(app >= 0);
    if (app == 0) {
        close(p[0]);
        if (unshare(CLONE_NEWNS) != 0 || write(p[1], "r", 1) != 1) {
            _exit(82);
        }
        for (;;) {
            pause();
        }
    }
    close(p[1]);
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    close(p[0]);

    assert_int_equal(st_release(dir, "held", &e), PV_OK);
    assert_true(loop_attached(dev)); /* the app's copy of the mount holds it */
    assert_int_equal(st_prepare(dir, "held", 64, APP_UID, APP_UID, &again, &e), PV_OK);
    assert_int_equal(mounted_dev(again), dev);
    assert_pattern(again, "a", a.written);
    free(again);
    /* No offline growth under a live file system. */
    assert_int_equal(st_prepare(dir, "held", 1024, APP_UID, APP_UID, &again, &e), PV_ERR_IO);
    assert_non_null(strstr(e.msg, "still attached"));
    assert_null(again);

    kill(app, SIGKILL);
    wait_status(app);
    wait_detached(dev);
    assert_int_equal(st_prepare(dir, "held", 1024, APP_UID, APP_UID, &again, &e), PV_OK);
    assert_pattern(again, "a", a.written);
    free(again);
    assert_int_equal(st_delete(dir, "held", &e), PV_OK);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_foreign_mount_refused(void **state)
{
    (void)state;
    NEED_ROOT();
    char *dir = tu_mkdtemp("storage");
    char *path = NULL;
    pv_err e;
    /* Made once so the directories exist, then something else is mounted in its place. */
    assert_int_equal(st_prepare(dir, "foreign", 16, APP_UID, APP_UID, &path, &e), PV_OK);
    dev_t dev = mounted_dev(path);
    assert_int_equal(st_release(dir, "foreign", &e), PV_OK);
    wait_detached(dev);
    assert_int_equal(mount("tmpfs", path, "tmpfs", 0, "size=64k"), 0);
    char *again = NULL;
    assert_int_equal(st_prepare(dir, "foreign", 16, APP_UID, APP_UID, &again, &e), PV_ERR_IO);
    assert_non_null(strstr(e.msg, "something other"));
    assert_null(again);
    assert_int_equal(umount(path), 0);
    assert_int_equal(st_delete(dir, "foreign", &e), PV_OK);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refuses_bad_arguments),
        cmocka_unit_test(test_quota_persistence_delete),
        cmocka_unit_test(test_grow_keep_shrink),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_unclean_image_is_checked),
        cmocka_unit_test(test_image_held_by_an_app_namespace),
        cmocka_unit_test(test_foreign_mount_refused),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
