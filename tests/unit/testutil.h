/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the unit tests. */
#ifndef PV_TESTUTIL_H
#define PV_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

/* A new empty directory under $PV_TEST_TMP (or /tmp); the caller frees the string and
 * removes the tree with tu_rmtree. Fails the test on error. */
char *tu_mkdtemp(const char *tag);
void tu_rmtree(const char *path);
/* Joins dir and name into a new string. */
char *tu_path(const char *dir, const char *name);
/* Writes a file (fails the test on error). */
void tu_write(const char *path, const void *data, size_t len, int mode);
/* Reads a whole file into a new allocation (fails the test on error). */
uint8_t *tu_read(const char *path, size_t *len);
/* True when path exists (lstat). */
int tu_exists(const char *path);
/* Counts the entries of a directory (not . and ..); -1 when it cannot be opened. */
int tu_count_entries(const char *dir);

#endif
