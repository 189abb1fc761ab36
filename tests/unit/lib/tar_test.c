/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "testutil.h"

#include "pavise/tar.h"

typedef struct tent {
    const char *path;
    unsigned type; /* AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR, AE_IFIFO; 0 = hard link */
    unsigned mode;
    const char *target; /* symlink or hard link target */
} tent;

#define TAR_CAP (1 << 20)

/* Writes the entries as a tar into buf; returns its length. */
static size_t make_tar(const tent *ents, size_t n, uint8_t *buf)
{
    struct archive *a = archive_write_new();
    size_t used = 0;
    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_memory(a, buf, TAR_CAP, &used), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, ents[i].path);
        archive_entry_set_mode(e, (ents[i].type ? ents[i].type : AE_IFREG) | ents[i].mode);
        if (ents[i].type == AE_IFLNK) {
            archive_entry_set_symlink(e, ents[i].target);
        } else if (ents[i].type == 0) {
            archive_entry_set_hardlink(e, ents[i].target);
        } else if (ents[i].type == AE_IFREG) {
            archive_entry_set_size(e, 5);
        } else if (ents[i].type == AE_IFCHR) {
            archive_entry_set_rdev(e, makedev(1, 3));
        }
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (ents[i].type == AE_IFREG) {
            assert_int_equal(archive_write_data(a, "hello", 5), 5);
        }
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    return used;
}

typedef struct mem_src {
    const uint8_t *p;
    size_t len, off;
} mem_src;

static ssize_t mem_read(void *ctx, const void **buf)
{
    mem_src *m = ctx;
    size_t n = m->len - m->off < 1000 ? m->len - m->off : 1000; /* odd-sized blocks */
    *buf = m->p + m->off;
    m->off += n;
    return (ssize_t)n;
}

/* Extracts into a fresh directory inside a fresh parent; returns the code and checks
 * that nothing appeared in the parent besides the destination. */
static int extract(const tent *ents, size_t n, pv_err *e, char **parent_out, char **dest_out)
{
    static uint8_t buf[TAR_CAP];
    size_t len = make_tar(ents, n, buf);
    char *parent = tu_mkdtemp("tar");
    char *dest = tu_path(parent, "dest");
    assert_int_equal(mkdir(dest, 0755), 0);
    mem_src src = {buf, len, 0};
    pv_err_clear(e);
    int r = pv_tar_extract(mem_read, &src, dest, e);
    assert_int_equal(tu_count_entries(parent), 1);
    *parent_out = parent;
    *dest_out = dest;
    return r;
}

static void expect_unsafe(const tent *ents, size_t n, const char *needle)
{
    pv_err e;
    char *parent, *dest;
    int r = extract(ents, n, &e, &parent, &dest);
    if (r != PV_ERR_UNSAFE || strstr(e.msg, needle) == NULL) {
        fail_msg("expected PV_ERR_UNSAFE with '%s', got %d '%s'", needle, r, e.msg);
    }
    /* The escape targets named in the cases below never appear. */
    char *outside = tu_path(parent, "evil");
    assert_false(tu_exists(outside));
    free(outside);
    tu_rmtree(parent);
    free(parent);
    free(dest);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_safe_archive(void **state)
{
    (void)state;
    const tent ok[] = {
        {"./", AE_IFDIR, 0755, NULL},
        {"bin/", AE_IFDIR, 0755, NULL},
        {"bin/app", AE_IFREG, 0755, NULL},
        {"share/data/file", AE_IFREG, 0600, NULL},
        {"share", AE_IFDIR, 0700, NULL}, /* after an implicit parent: fine */
        {"lib/libx.so", AE_IFLNK, 0777, "../share/data/file"},
        {"share/data/again", 0, 0644, "share/data/file"},
        {"cur", AE_IFLNK, 0777, "./bin/app"},
    };
    pv_err e;
    char *parent, *dest;
    assert_int_equal(extract(ok, N(ok), &e, &parent, &dest), 0);
    char *app = tu_path(dest, "bin/app");
    struct stat st;
    assert_int_equal(stat(app, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    char *data = tu_path(dest, "share/data/file");
    assert_int_equal(stat(data, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644); /* modes are ours, not the archive's */
    char *link = tu_path(dest, "lib/libx.so");
    char target[64] = {0};
    assert_true(readlink(link, target, sizeof(target) - 1) > 0);
    assert_string_equal(target, "../share/data/file");
    free(app);
    free(data);
    free(link);
    tu_rmtree(parent);
    free(parent);
    free(dest);
}

static void test_refusals(void **state)
{
    (void)state;
    const tent abs[] = {{"/tmp/evil", AE_IFREG, 0644, NULL}};
    expect_unsafe(abs, N(abs), "absolute path");
    const tent dotdot[] = {{"../evil", AE_IFREG, 0644, NULL}};
    expect_unsafe(dotdot, N(dotdot), "'..'");
    const tent inner_dotdot[] = {{"a/../../evil", AE_IFREG, 0644, NULL}};
    expect_unsafe(inner_dotdot, N(inner_dotdot), "'..'");
    const tent link_abs[] = {{"evil", AE_IFLNK, 0777, "/etc/passwd"}};
    expect_unsafe(link_abs, N(link_abs), "relative");
    const tent link_up[] = {{"a/link", AE_IFLNK, 0777, "../../evil"}};
    expect_unsafe(link_up, N(link_up), "outside");
    const tent link_mid[] = {{"a/b/link", AE_IFLNK, 0777, "c/../../../../evil"}};
    expect_unsafe(link_mid, N(link_mid), "'..' after a name");
    const tent through_link[] = {{"d", AE_IFDIR, 0755, NULL},
                                 {"link", AE_IFLNK, 0777, "d"},
                                 {"link/evil", AE_IFREG, 0644, NULL}};
    expect_unsafe(through_link, N(through_link), "through the symbolic link");
    const tent hard_out[] = {{"evil", 0, 0644, "/etc/passwd"}};
    expect_unsafe(hard_out, N(hard_out), "hard link");
    const tent hard_missing[] = {{"evil", 0, 0644, "nothing"}};
    expect_unsafe(hard_missing, N(hard_missing), "not an earlier file");
    const tent hard_to_link[] = {{"l", AE_IFLNK, 0777, "x"}, {"evil", 0, 0644, "l"}};
    expect_unsafe(hard_to_link, N(hard_to_link), "not an earlier file");
    const tent dev[] = {{"evil", AE_IFCHR, 0666, NULL}};
    expect_unsafe(dev, N(dev), "device nodes");
    const tent fifo[] = {{"evil", AE_IFIFO, 0666, NULL}};
    expect_unsafe(fifo, N(fifo), "device nodes");
    const tent suid[] = {{"evil", AE_IFREG, 04755, NULL}};
    expect_unsafe(suid, N(suid), "setuid");
    const tent sgid[] = {{"evil", AE_IFREG, 02755, NULL}};
    expect_unsafe(sgid, N(sgid), "setgid");
    const tent sticky[] = {{"d", AE_IFDIR, 01777, NULL}};
    expect_unsafe(sticky, N(sticky), "sticky");
    const tent dup[] = {{"a", AE_IFREG, 0644, NULL}, {"a", AE_IFREG, 0644, NULL}};
    expect_unsafe(dup, N(dup), "duplicate");
    const tent dup_dot[] = {{"a", AE_IFREG, 0644, NULL}, {"./a", AE_IFREG, 0644, NULL}};
    expect_unsafe(dup_dot, N(dup_dot), "duplicate");
    const tent dup_dir[] = {{"d/", AE_IFDIR, 0755, NULL}, {"d", AE_IFDIR, 0755, NULL}};
    expect_unsafe(dup_dir, N(dup_dir), "duplicate");
    const tent file_then_child[] = {{"f", AE_IFREG, 0644, NULL}, {"f/x", AE_IFREG, 0644, NULL}};
    expect_unsafe(file_then_child, N(file_then_child), "through the file");
    const tent implicit_then_link[] = {{"d/x", AE_IFREG, 0644, NULL}, {"d", AE_IFLNK, 0777, "x"}};
    expect_unsafe(implicit_then_link, N(implicit_then_link), "duplicate");
    const tent ctrl[] = {{"a\nb", AE_IFREG, 0644, NULL}};
    expect_unsafe(ctrl, N(ctrl), "control characters");
    const tent empty_comp[] = {{"a//b", AE_IFREG, 0644, NULL}};
    expect_unsafe(empty_comp, N(empty_comp), "empty path component");
}

/* Archives that libarchive's writer cannot produce, crafted by hand (tests/unit/data/tar):
 * pax size keys that declare a terabyte for five bytes of data, and a hard link that
 * carries data of its own. */
static void test_crafted_archives(void **state)
{
    (void)state;
    static const struct {
        const char *file, *needle;
    } cases[] = {
        {"pax-realsize.tar", "declared"},
        {"pax-schily.tar", "declared"},
        {"pax-gnusize.tar", "declared"},
        {"hardlink-with-data.tar", "hard link carries data"},
    };
    const char *data = getenv("PV_TEST_DATA");
    assert_non_null(data);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/tar/%s", data, cases[i].file);
        size_t len;
        uint8_t *bytes = tu_read(path, &len);
        char *dir = tu_mkdtemp("tar-crafted");
        mem_src src = {bytes, len, 0};
        pv_err e;
        pv_err_clear(&e);
        int r = pv_tar_extract(mem_read, &src, dir, &e);
        if (r != PV_ERR_UNSAFE || strstr(e.msg, cases[i].needle) == NULL) {
            fail_msg("%s: expected unsafe '%s', got %d '%s'", cases[i].file, cases[i].needle, r,
                     e.msg);
        }
        /* Whatever was written before the refusal is small: no terabyte file. */
        char *big = tu_path(dir, "big");
        struct stat st;
        if (stat(big, &st) == 0) {
            assert_true(st.st_size <= 5);
        }
        free(big);
        tu_rmtree(dir);
        free(dir);
        free(bytes);
    }
}

static void test_limits(void **state)
{
    (void)state;
    char deep[PV_TAR_MAX_PATH];
    size_t o = 0;
    for (int i = 0; i <= PV_TAR_MAX_DEPTH; i++) {
        o += (size_t)snprintf(deep + o, sizeof(deep) - o, "d/");
    }
    snprintf(deep + o, sizeof(deep) - o, "f");
    const tent too_deep[] = {{deep, AE_IFREG, 0644, NULL}};
    expect_unsafe(too_deep, N(too_deep), "deeper");
    char *longname = malloc(PV_TAR_MAX_PATH + 10);
    memset(longname, 'a', PV_TAR_MAX_PATH + 9);
    longname[PV_TAR_MAX_PATH + 9] = '\0';
    const tent too_long[] = {{longname, AE_IFREG, 0644, NULL}};
    expect_unsafe(too_long, N(too_long), "longer than");
    free(longname);
}

static void test_not_a_tar(void **state)
{
    (void)state;
    uint8_t junk[2048];
    memset(junk, 'x', sizeof(junk));
    char *dir = tu_mkdtemp("tar-junk");
    mem_src src = {junk, sizeof(junk), 0};
    pv_err e;
    assert_int_equal(pv_tar_extract(mem_read, &src, dir, &e), PV_ERR_FORMAT);
    assert_int_equal(tu_count_entries(dir), 0);
    tu_rmtree(dir);
    free(dir);
}

static void test_pack_deterministic_and_refusals(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("tar-pack");
    char *src = tu_path(dir, "src");
    assert_int_equal(mkdir(src, 0755), 0);
    char *bin = tu_path(src, "bin");
    assert_int_equal(mkdir(bin, 0700), 0);
    char *app = tu_path(bin, "app");
    tu_write(app, "#!x", 3, 0700);
    char *b = tu_path(src, "b.txt");
    tu_write(b, "b", 1, 0666);
    char *link = tu_path(src, "link");
    assert_int_equal(symlink("bin/app", link), 0);

    uint8_t d1[PV_SHA256_LEN], d2[PV_SHA256_LEN];
    for (int round = 0; round < 2; round++) {
        char *out = tu_path(dir, round ? "two.tar" : "one.tar");
        int fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0600);
        pv_sha256 *h = pv_sha256_new();
        uint64_t size = 0;
        assert_int_equal(pv_tar_pack_dir(src, fd, h, &size, NULL), 0);
        assert_true(size > 0 && size % 512 == 0);
        assert_int_equal(pv_sha256_final(h, round ? d2 : d1), 0);
        pv_sha256_free(h);
        close(fd);
        free(out);
        /* Touch the tree between rounds: times must not matter. */
        tu_write(b, "b", 1, 0644);
    }
    assert_memory_equal(d1, d2, PV_SHA256_LEN);

    /* A FIFO, a setuid file and an escaping link are refused at pack time. */
    const char *bad_names[] = {"fifo", "suid", "escape"};
    for (int i = 0; i < 3; i++) {
        char *p = tu_path(src, bad_names[i]);
        if (i == 0) {
            assert_int_equal(mkfifo(p, 0644), 0);
        } else if (i == 1) {
            tu_write(p, "x", 1, 04755);
        } else {
            assert_int_equal(symlink("../../etc/passwd", p), 0);
        }
        char *out = tu_path(dir, "bad.tar");
        int fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0600);
        uint64_t size;
        pv_err e;
        assert_int_equal(pv_tar_pack_dir(src, fd, NULL, &size, &e), PV_ERR_UNSAFE);
        assert_non_null(strstr(e.msg, bad_names[i]));
        close(fd);
        unlink(p);
        free(p);
        free(out);
    }
    free(src);
    free(bin);
    free(app);
    free(b);
    free(link);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safe_archive),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_crafted_archives),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_not_a_tar),
        cmocka_unit_test(test_pack_deterministic_and_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
