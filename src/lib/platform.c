/* SPDX-License-Identifier: Apache-2.0 */
#include "pavise/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pavise/err.h"

#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"
/* Room for an over-long override or file, so that it is refused rather than cut short
 * into something that looks valid. */
#define BOOT_ID_BUF 64

static _Atomic int64_t time_override;

static pthread_mutex_t boot_id_lock = PTHREAD_MUTEX_INITIALIZER;
static bool boot_id_overridden;
static char boot_id_override[BOOT_ID_BUF];

int64_t pv_time_now(void)
{
    int64_t t = atomic_load(&time_override);
    if (t != 0) {
        return t;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

void pv_time_set_override(int64_t t)
{
    atomic_store(&time_override, t);
}

/* The kernel writes a version 4 UUID in lowercase, 8-4-4-4-12. */
static bool boot_id_ok(const char *s, size_t n)
{
    if (n != PV_BOOT_ID_LEN) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') {
                return false;
            }
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

/* /proc files report a size of 0, so pv_fs_read_file cannot read them; this reads at most
 * len bytes. */
static int read_boot_id_file(char *buf, size_t len, size_t *got)
{
    *got = 0;
    int fd = open(BOOT_ID_PATH, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        return PV_ERR_IO;
    }
    int r = PV_OK;
    while (*got < len) {
        ssize_t k = read(fd, buf + *got, len - *got);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            r = PV_ERR_IO;
            break;
        }
        if (k == 0) {
            break;
        }
        *got += (size_t)k;
    }
    close(fd);
    return r;
}

int pv_boot_id(char out[PV_BOOT_ID_LEN + 1])
{
    char buf[BOOT_ID_BUF];
    size_t n = 0;
    int r = PV_OK;
    out[0] = '\0';
    pthread_mutex_lock(&boot_id_lock);
    bool overridden = boot_id_overridden;
    if (overridden) {
        n = strlen(boot_id_override);
        memcpy(buf, boot_id_override, n);
    }
    pthread_mutex_unlock(&boot_id_lock);
    if (!overridden) {
        r = read_boot_id_file(buf, sizeof(buf), &n);
        if (r != PV_OK) {
            return r;
        }
        if (n > 0 && buf[n - 1] == '\n') {
            n--;
        }
    }
    if (!boot_id_ok(buf, n)) {
        return PV_ERR_FORMAT;
    }
    memcpy(out, buf, PV_BOOT_ID_LEN);
    out[PV_BOOT_ID_LEN] = '\0';
    return PV_OK;
}

void pv_boot_id_set_override(const char *id)
{
    pthread_mutex_lock(&boot_id_lock);
    boot_id_overridden = id != NULL;
    boot_id_override[0] = '\0';
    if (id != NULL) {
        /* Longer than the buffer: keep a prefix that is still too long to be valid. */
        size_t n = strnlen(id, sizeof(boot_id_override) - 1);
        memcpy(boot_id_override, id, n);
        boot_id_override[n] = '\0';
    }
    pthread_mutex_unlock(&boot_id_lock);
}

bool pv_time_format(int64_t t, char out[PV_TIME_TEXT_LEN + 1])
{
    struct tm tm;
    time_t tt = (time_t)t;
    out[0] = '\0';
    if (t < 0 || t > 253402300799LL || (int64_t)tt != t || gmtime_r(&tt, &tm) == NULL ||
        strftime(out, PV_TIME_TEXT_LEN + 1, "%Y-%m-%dT%H:%M:%SZ", &tm) != PV_TIME_TEXT_LEN) {
        out[0] = '\0';
        return false;
    }
    return true;
}
