/* SPDX-License-Identifier: Apache-2.0 */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pavise/fs.h"

char *tu_mkdtemp(const char *tag)
{
    const char *base = getenv("PV_TEST_TMP");
    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    mkdir(base, 0755);
    char *p = malloc(strlen(base) + strlen(tag) + 16);
    assert_non_null(p);
    sprintf(p, "%s/%s-XXXXXX", base, tag);
    assert_non_null(mkdtemp(p));
    return p;
}

void tu_rmtree(const char *path)
{
    assert_int_equal(pv_fs_remove_tree(path, NULL), 0);
}

char *tu_path(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    assert_non_null(p);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

void tu_write(const char *path, const void *data, size_t len, int mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(pv_fs_write_all(fd, data, len), 0);
    assert_int_equal(fchmod(fd, (mode_t)mode), 0);
    close(fd);
}

uint8_t *tu_read(const char *path, size_t *len)
{
    uint8_t *d = NULL;
    assert_int_equal(pv_fs_read_file(path, (size_t)1 << 30, &d, len, NULL), 0);
    return d;
}

int tu_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

int tu_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return -1;
    }
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}
