/* SPDX-License-Identifier: Apache-2.0 */
/* The safe tar extractor: arbitrary bytes as an image payload, extracted into a fresh
 * directory that is removed afterwards. Nothing may be written outside it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pavise/fs.h"
#include "pavise/tar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct src {
    const uint8_t *p;
    size_t len, off;
} src;

static ssize_t next(void *ctx, const void **buf)
{
    src *s = ctx;
    size_t n = s->len - s->off < 4096 ? s->len - s->off : 4096;
    *buf = s->p + s->off;
    s->off += n;
    return (ssize_t)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *base = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/pavise-fuzz-tar-XXXXXX", base != NULL ? base : "/tmp");
    if (mkdtemp(dir) == NULL) {
        abort();
    }
    src s = {data, size, 0};
    pv_err e;
    (void)pv_tar_extract(next, &s, dir, &e);
    if (pv_fs_remove_tree(dir, &e) != PV_OK) {
        abort(); /* something was made that cannot be removed: a finding */
    }
    return 0;
}
