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

int64_t pv_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

size_t pv_int_format(int64_t v, char out[PV_INT_TEXT_LEN + 1])
{
    char tmp[PV_INT_TEXT_LEN];
    size_t n = 0, len = 0;
    /* The magnitude as unsigned: -INT64_MIN does not fit an int64_t. */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        out[len++] = '-';
    }
    while (n > 0) {
        out[len++] = tmp[--n];
    }
    out[len] = '\0';
    return len;
}

/* Writes v as exactly n decimal digits at out. */
static void put_digits(char *out, unsigned v, size_t n)
{
    while (n > 0) {
        out[--n] = (char)('0' + v % 10);
        v /= 10;
    }
}

bool pv_time_format(int64_t t, char out[PV_TIME_TEXT_LEN + 1])
{
    out[0] = '\0';
    if (t < 0 || t > 253402300799LL) { /* 9999-12-31T23:59:59Z */
        return false;
    }
    /* The proleptic Gregorian date of day number days (0 = 1970-01-01), by eras of
     * 400 years counted from 0000-03-01: pure arithmetic, no time zone state, so no
     * lock (gmtime_r takes the time zone lock on every call). */
    int64_t days = t / 86400, secs = t % 86400;
    int64_t z = days + 719468;
    int64_t era = z / 146097;
    int64_t doe = z - era * 146097;                                      /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                    /* March = 0 */
    unsigned day = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    unsigned month = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    unsigned year = (unsigned)(yoe + era * 400 + (month <= 2 ? 1 : 0));

    put_digits(out, year, 4);
    out[4] = '-';
    put_digits(out + 5, month, 2);
    out[7] = '-';
    put_digits(out + 8, day, 2);
    out[10] = 'T';
    put_digits(out + 11, (unsigned)(secs / 3600), 2);
    out[13] = ':';
    put_digits(out + 14, (unsigned)(secs / 60 % 60), 2);
    out[16] = ':';
    put_digits(out + 17, (unsigned)(secs % 60), 2);
    out[19] = 'Z';
    out[20] = '\0';
    return true;
}
