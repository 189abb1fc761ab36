/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hello: the smallest Pavise app. Logs a heartbeat through the SDK every few seconds and
 * counts its starts in its mutable storage.
 *
 *   hello [--interval SECONDS] [--once] [--defer-updates SECONDS]
 *
 * --interval sets the heartbeat period (1..86400, default 5; the manifest's CmdArgs can
 * set it). --once logs one heartbeat, also prints it on stdout (a quick check that the
 * binary runs, with or without the runtime) and exits. --defer-updates (the manifest must
 * grant SoftwareUpdateDeferral and SystemEventNotifications) asks for the update events,
 * puts the first notice of each update off by SECONDS, agrees when asked again, and logs
 * when the update starts.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pavise/app.h"

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static int parse_seconds(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < 1 || v > 86400) {
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

/* The count before this start, from STORAGE/starts ("<n>\n"); 0 when absent or unreadable
 * (a first start, or a file damaged by power loss mid-write on an older version). */
static unsigned long read_count(const char *path)
{
    char buf[32];
    unsigned long n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    ssize_t len = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (len <= 0) {
        return 0;
    }
    buf[len] = '\0';
    char *end;
    errno = 0;
    n = strtoul(buf, &end, 10);
    if (errno != 0 || end == buf || (*end != '\n' && *end != '\0')) {
        return 0;
    }
    return n;
}

/* Counts this start. The new count is written beside the old one and renamed over it, so
 * a power cut leaves either count, never a torn file. Returns the count, 0 without
 * storage or when it cannot be written (logged). */
static unsigned long count_start(void)
{
    const char *dir = pv_app_storage_path();
    char path[4096], tmp[4096], text[32];
    if (dir == NULL) {
        return 0;
    }
    if (snprintf(path, sizeof(path), "%s/starts", dir) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/starts.tmp", dir) >= (int)sizeof(tmp)) {
        pv_app_log(PV_APP_LOG_ERROR, "storage path too long");
        return 0;
    }
    unsigned long n = read_count(path) + 1;
    int len = snprintf(text, sizeof(text), "%lu\n", n);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, text, (size_t)len) == len && fsync(fd) == 0;
    int err = errno;
    if (fd >= 0 && close(fd) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        err = errno;
    }
    if (!ok) {
        unlink(tmp);
        pv_app_log(PV_APP_LOG_ERROR, "cannot count this start in %s: %s", path, strerror(err));
        return 0;
    }
    return n;
}

static void log_storage(void)
{
    uint64_t used, quota;
    int r = pv_app_storage_usage(&used, &quota);
    if (r == PV_APP_OK) {
        pv_app_log(PV_APP_LOG_INFO, "storage: %llu of %llu KiB used", (unsigned long long)used,
                   (unsigned long long)quota);
    } else {
        pv_app_log(PV_APP_LOG_INFO, "storage: %s", pv_app_strerror(r));
    }
}

/* The update events: the first notice of an update is put off by *defer_s, the next one
 * agreed to. */
static void on_event(const pv_app_event *ev, void *ctx)
{
    const unsigned *defer_s = ctx;
    static uint64_t deferred_id;
    if (ev->kind == PV_APP_EVENT_UPDATE_READY) {
        uint32_t s = ev->id != deferred_id && ev->seconds_left > 0
                         ? (*defer_s < ev->seconds_left ? *defer_s : ev->seconds_left)
                         : 0;
        int r = pv_app_defer(ev->id, s);
        pv_app_log(PV_APP_LOG_INFO, "update %llu ready: %s %u s (%s)", (unsigned long long)ev->id,
                   s > 0 ? "deferring it by" : "agreeing, after", s > 0 ? s : *defer_s,
                   pv_app_strerror(r));
        deferred_id = ev->id;
    } else if (ev->kind == PV_APP_EVENT_UPDATE_STARTED) {
        pv_app_log(PV_APP_LOG_INFO, "update starting: saving state");
    }
}

/* Sleeps seconds, or less when SIGTERM comes; delivers the runtime's events meanwhile. */
static void wait_beat(unsigned seconds, unsigned *defer_s)
{
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += seconds;
    int fd = *defer_s > 0 ? pv_app_fd() : -1;
    while (!stop) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (long)(end.tv_sec - now.tv_sec) * 1000 + (end.tv_nsec - now.tv_nsec) / 1000000;
        if (ms <= 0) {
            return;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, fd >= 0 ? 1 : 0, (int)ms) > 0 && pv_app_dispatch(on_event, defer_s) < 0) {
            fd = -1; /* the runtime closed the channel: heartbeats only */
        }
    }
}

int main(int argc, char **argv)
{
    unsigned interval = 5, defer_s = 0;
    int once = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--once") == 0) {
            once = 1;
        } else if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc &&
                   parse_seconds(argv[i + 1], &interval) == 0) {
            i++;
        } else if (strcmp(argv[i], "--defer-updates") == 0 && i + 1 < argc &&
                   parse_seconds(argv[i + 1], &defer_s) == 0) {
            i++;
        } else {
            fprintf(stderr,
                    "usage: hello [--interval SECONDS] [--once] [--defer-updates SECONDS]\n");
            return 2;
        }
    }
    /* No SA_RESTART: SIGTERM from the runtime ends the sleep at once. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    unsigned long starts = count_start();
    pv_app_log(PV_APP_LOG_INFO, "hello %s: start %lu, heartbeat every %u s",
               pv_app_component_id() != NULL ? pv_app_component_id() : "(no runtime)", starts,
               interval);
    log_storage();
    if (defer_s > 0) {
        int r = pv_app_events_register(PV_APP_EVENT_UPDATE_READY | PV_APP_EVENT_UPDATE_STARTED);
        pv_app_log(PV_APP_LOG_INFO, "update events: %s", pv_app_strerror(r));
        if (r != PV_APP_OK) {
            defer_s = 0;
        }
    }
    for (unsigned long beat = 1; !stop; beat++) {
        pv_app_log(PV_APP_LOG_INFO, "heartbeat %lu (start %lu)", beat, starts);
        if (once) {
            printf("hello: heartbeat %lu (start %lu)\n", beat, starts);
            fflush(stdout);
            break;
        }
        wait_beat(interval, &defer_s);
    }
    if (stop && defer_s > 0) {
        pv_app_dispatch(on_event, &defer_s); /* update-started comes just before SIGTERM */
    }
    if (stop) {
        pv_app_log(PV_APP_LOG_INFO, "stopping");
    }
    return 0;
}
