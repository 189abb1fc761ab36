/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hello: the smallest Pavise app. Logs a heartbeat every few seconds and counts its
 * starts in its mutable storage (the directory in $PAVISE_STORAGE, when the runtime
 * provides one). `hello --once` prints one heartbeat and exits.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static unsigned long count_start(void)
{
    const char *dir = getenv("PAVISE_STORAGE");
    char path[4096];
    unsigned long n = 0;
    if (dir == NULL || snprintf(path, sizeof(path), "%s/starts", dir) >= (int)sizeof(path)) {
        return 0;
    }
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        char line[32];
        if (fgets(line, sizeof(line), f) != NULL) {
            n = strtoul(line, NULL, 10);
        }
        fclose(f);
    }
    n++;
    f = fopen(path, "w");
    if (f != NULL) {
        fprintf(f, "%lu\n", n);
        fclose(f);
    }
    return n;
}

int main(int argc, char **argv)
{
    int once = argc > 1 && strcmp(argv[1], "--once") == 0;
    unsigned long starts = count_start();
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    for (unsigned long beat = 1; !stop; beat++) {
        printf("hello: heartbeat %lu (start %lu)\n", beat, starts);
        fflush(stdout);
        if (once) {
            break;
        }
        sleep(5);
    }
    return 0;
}
