/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Runs a libFuzzer harness over every file of the directories (or files) given on the
 * command line, so the corpora run as ordinary tests without libFuzzer. A crash or a
 * sanitizer report fails the test.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pavise/fs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0;
    if (pv_fs_read_file(path, 16u << 20, &data, &len, NULL) != 0) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    return 0;
}

int main(int argc, char **argv)
{
    int runs = 0, failures = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "cannot stat %s\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            failures += run_file(argv[i]);
            runs++;
            continue;
        }
        struct dirent **names = NULL;
        int n = scandir(argv[i], &names, NULL, alphasort);
        for (int j = 0; j < n; j++) {
            if (names[j]->d_name[0] != '.') {
                char path[4096];
                snprintf(path, sizeof(path), "%s/%s", argv[i], names[j]->d_name);
                failures += run_file(path);
                runs++;
            }
            free(names[j]);
        }
        free(names);
    }
    printf("%d inputs run, %d unreadable\n", runs, failures);
    return (failures != 0 || runs == 0) ? 1 : 0;
}
