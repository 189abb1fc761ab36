/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#include "pavise/fs.h"

static void test_read_limits(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("fs");
    char *path = tu_path(dir, "f");
    uint8_t *d;
    size_t len;
    pv_err e;
    assert_int_equal(pv_fs_read_file(path, 10, &d, &len, &e), PV_ERR_NOT_FOUND);
    assert_non_null(strstr(e.msg, path));
    tu_write(path, "0123456789", 10, 0644);
    assert_int_equal(pv_fs_read_file(path, 10, &d, &len, &e), 0);
    assert_int_equal(len, 10);
    assert_int_equal(d[10], '\0');
    free(d);
    assert_int_equal(pv_fs_read_file(path, 9, &d, &len, &e), PV_ERR_TOO_LARGE);
    assert_null(d);
    assert_int_equal(pv_fs_read_file(dir, 100, &d, &len, &e), PV_ERR_IO); /* a directory */
    /* A FIFO is refused at once rather than waited on. */
    char *fifo = tu_path(dir, "fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(pv_fs_read_file(fifo, 100, &d, &len, &e), PV_ERR_IO);
    free(fifo);
    tu_rmtree(dir);
    free(path);
    free(dir);
}

static void test_no_overwrite_is_atomic(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("fs");
    char *path = tu_path(dir, "key");
    pv_afile f;
    pv_err e;
    assert_int_equal(pv_afile_open(&f, path, 0600, false, &e), 0);
    assert_int_equal(pv_fs_write_all(f.fd, "new", 3), 0);
    /* Someone else creates the file between open and commit: it is kept. */
    tu_write(path, "theirs", 6, 0600);
    assert_int_equal(pv_afile_commit(&f, &e), PV_ERR_EXISTS);
    size_t len;
    uint8_t *d = tu_read(path, &len);
    assert_int_equal(len, 6);
    assert_memory_equal(d, "theirs", 6);
    free(d);
    assert_int_equal(tu_count_entries(dir), 1); /* no temporary file left */
    pv_afile zero = {0};
    pv_afile_abort(&zero); /* a zeroed pv_afile owns nothing, closes nothing */
    tu_rmtree(dir);
    free(path);
    free(dir);
}

static void test_atomic_write(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("fs");
    char *path = tu_path(dir, "out");
    pv_err e;
    assert_int_equal(pv_fs_write_file(path, "one", 3, 0600, false, &e), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* No overwrite unless asked; the original is untouched. */
    assert_int_equal(pv_fs_write_file(path, "two", 3, 0600, false, &e), PV_ERR_EXISTS);
    size_t len;
    uint8_t *d = tu_read(path, &len);
    assert_memory_equal(d, "one", 3);
    free(d);
    assert_int_equal(pv_fs_write_file(path, "three", 5, 0644, true, &e), 0);
    d = tu_read(path, &len);
    assert_int_equal(len, 5);
    free(d);
    /* An aborted file leaves nothing behind. */
    pv_afile f;
    char *other = tu_path(dir, "aborted");
    assert_int_equal(pv_afile_open(&f, other, 0644, false, &e), 0);
    assert_int_equal(pv_fs_write_all(f.fd, "partial", 7), 0);
    pv_afile_abort(&f);
    pv_afile_abort(&f); /* twice is harmless */
    assert_false(tu_exists(other));
    assert_int_equal(tu_count_entries(dir), 1);
    /* A directory that does not exist: a clear error, nothing created. */
    char *nodir = tu_path(dir, "missing/out");
    assert_int_equal(pv_fs_write_file(nodir, "x", 1, 0644, false, &e), PV_ERR_IO);
    assert_non_null(strstr(e.msg, "missing/out"));
    tu_rmtree(dir);
    free(nodir);
    free(other);
    free(path);
    free(dir);
}

static void test_replace_boot_data(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("fs");
    char *path = tu_path(dir, "log");
    pv_err e;
    size_t len;
    assert_int_equal(pv_fs_replace_boot_data(path, "first", 5, 0600, &e), PV_OK);
    assert_int_equal(pv_fs_replace_boot_data(path, "second", 6, 0600, &e), PV_OK);
    uint8_t *d = tu_read(path, &len);
    assert_int_equal(len, 6);
    assert_memory_equal(d, "second", 6);
    free(d);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(tu_count_entries(dir), 1); /* no temporary left */
    tu_rmtree(dir);
    free(path);
    free(dir);
}

static void test_pread_and_remove_tree(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("fs");
    char *path = tu_path(dir, "f");
    tu_write(path, "abcdef", 6, 0644);
    int fd = open(path, O_RDONLY);
    char buf[4];
    assert_int_equal(pv_fs_pread_all(fd, buf, 4, 2), 0);
    assert_memory_equal(buf, "cdef", 4);
    assert_int_equal(pv_fs_pread_all(fd, buf, 4, 3), PV_ERR_TRUNCATED);
    close(fd);
    /* remove_tree does not follow links out of the tree. */
    char *outside = tu_mkdtemp("fs-outside");
    char *keep = tu_path(outside, "keep");
    tu_write(keep, "k", 1, 0644);
    char *sub = tu_path(dir, "sub");
    assert_int_equal(mkdir(sub, 0755), 0);
    char *link = tu_path(sub, "link");
    assert_int_equal(symlink(outside, link), 0);
    assert_int_equal(pv_fs_remove_tree(dir, NULL), 0);
    assert_false(tu_exists(dir));
    assert_true(tu_exists(keep));
    assert_int_equal(pv_fs_remove_tree(dir, NULL), 0); /* missing is fine */
    tu_rmtree(outside);
    free(keep);
    free(outside);
    free(sub);
    free(link);
    free(path);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_limits),
        cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_no_overwrite_is_atomic),
        cmocka_unit_test(test_pread_and_remove_tree),
        cmocka_unit_test(test_replace_boot_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
