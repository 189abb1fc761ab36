/* SPDX-License-Identifier: Apache-2.0 */
/*
 * crasher: fails in a chosen way, so the runtime's failure handling, limits and
 * compartment can be seen at work (docs/sdk.md, tests/attacks).
 *
 *   crasher [--mode MODE] [--after SECONDS] [--watchdog MS] [--max-mb N] [--max-procs N]
 *
 * MODE is one of
 *   segv       write through a bad pointer (SIGSEGV)
 *   abort      abort() (SIGABRT)
 *   fpe        integer division by zero (SIGFPE)
 *   syscall    call ptrace, which the seccomp allow-list refuses (the runtime kills the app)
 *   exit:N     exit with status N (0..255; "exit N" in the storage file)
 *   hang       stop kicking the watchdog and wait forever (the runtime kills it)
 *   oom        allocate and touch memory until killed (the cgroup memory limit)
 *   fork-bomb  fork until fork fails (the pids limit)
 *   none       do nothing (the default)
 *
 * The mode is chosen three ways:
 *   - --mode, run --after SECONDS (default 0) after the start;
 *   - a file STORAGE/crash-mode holding a mode: checked every second, removed when read
 *     (so the restarted app does not crash again), run at once;
 *   - SIGUSR1 runs the --mode mode at once (segv when there is none), SIGUSR2 hangs.
 *
 * Until then it arms the watchdog (--watchdog MS, default 1000, 0: off) and kicks it.
 * Outside a compartment the oom and fork-bomb modes stop themselves at --max-mb (default
 * 1024) and --max-procs (default 1000) and exit 3, "not stopped", so trying them on a
 * development machine cannot take it down. Exit statuses of its own: 2 usage, 3 the
 * failure was not stopped (a limit not enforced, the forbidden call went through), 5 it
 * was stopped with an error (fork or allocation refused, the call denied with EPERM or
 * ENOSYS).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pavise/app.h"

#define EXIT_USAGE       2
#define EXIT_NOT_STOPPED 3
#define EXIT_STOPPED     5

typedef enum mode {
    M_NONE,
    M_SEGV,
    M_ABORT,
    M_FPE,
    M_SYSCALL,
    M_EXIT,
    M_HANG,
    M_OOM,
    M_FORK_BOMB,
} mode;

static const struct {
    const char *name;
    mode m;
} modes[] = {
    {"none", M_NONE},       {"segv", M_SEGV}, {"abort", M_ABORT}, {"fpe", M_FPE},
    {"syscall", M_SYSCALL}, {"hang", M_HANG}, {"oom", M_OOM},     {"fork-bomb", M_FORK_BOMB},
};

typedef struct choice {
    mode m;
    int code; /* M_EXIT */
} choice;

typedef struct options {
    choice mode;
    unsigned after_s;
    unsigned watchdog_ms;
    unsigned long max_mb;
    unsigned long max_procs;
} options;

static volatile sig_atomic_t got_term, got_usr1, got_usr2;

static void on_signal(int sig)
{
    if (sig == SIGUSR1) {
        got_usr1 = 1;
    } else if (sig == SIGUSR2) {
        got_usr2 = 1;
    } else {
        got_term = 1;
    }
}

static int parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || s[0] == '+' || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

/* "segv", "exit:3" or "exit 3"; trailing whitespace (a newline in the file) ignored. */
static int parse_mode(const char *text, choice *out)
{
    char s[32];
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ' || text[n - 1] == '\r')) {
        n--;
    }
    if (n == 0 || n >= sizeof(s)) {
        return -1;
    }
    memcpy(s, text, n);
    s[n] = '\0';
    if (strncmp(s, "exit", 4) == 0 && (s[4] == ':' || s[4] == ' ')) {
        unsigned long code;
        if (parse_ulong(s + 5, 255, &code) != 0) {
            return -1;
        }
        out->m = M_EXIT;
        out->code = (int)code;
        return 0;
    }
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (strcmp(s, modes[i].name) == 0) {
            out->m = modes[i].m;
            out->code = 0;
            return 0;
        }
    }
    return -1;
}

static const char *mode_name(mode m)
{
    if (m == M_EXIT) {
        return "exit";
    }
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (modes[i].m == m) {
            return modes[i].name;
        }
    }
    return "?";
}

static int parse_args(int argc, char **argv, options *o)
{
    unsigned long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val == NULL) {
            return -1;
        }
        if (strcmp(a, "--mode") == 0) {
            if (parse_mode(val, &o->mode) != 0) {
                return -1;
            }
        } else if (strcmp(a, "--after") == 0 && parse_ulong(val, 86400, &v) == 0) {
            o->after_s = (unsigned)v;
        } else if (strcmp(a, "--watchdog") == 0 &&
                   parse_ulong(val, PV_APP_WATCHDOG_MAX_MS, &v) == 0 &&
                   (v == 0 || v >= PV_APP_WATCHDOG_MIN_MS)) {
            o->watchdog_ms = (unsigned)v;
        } else if (strcmp(a, "--max-mb") == 0 && parse_ulong(val, 1ul << 20, &v) == 0 && v > 0) {
            o->max_mb = v;
        } else if (strcmp(a, "--max-procs") == 0 && parse_ulong(val, 1ul << 20, &v) == 0 && v > 0) {
            o->max_procs = v;
        } else {
            return -1;
        }
        i++;
    }
    return 0;
}

/* STORAGE/crash-mode: read and removed. False when absent (or no storage). */
static bool storage_mode(choice *out)
{
    const char *dir = pv_app_storage_path();
    char path[4096], text[64];
    if (dir == NULL || snprintf(path, sizeof(path), "%s/crash-mode", dir) >= (int)sizeof(path)) {
        return false;
    }
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return false;
    }
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    if (unlink(path) != 0) {
        /* Could not remove it: running it would crash every restart. */
        pv_app_log(PV_APP_LOG_ERROR, "cannot remove %s: %s; ignoring it", path, strerror(errno));
        return false;
    }
    if (n == sizeof(text) - 1 || memchr(text, '\0', n) != NULL || parse_mode(text, out) != 0) {
        pv_app_log(PV_APP_LOG_ERROR, "%s: not a mode; ignoring it", path);
        return false;
    }
    return true;
}

static void crash_segv(void)
{
    /* The address comes through a volatile so the compiler cannot see the fault coming
     * and drop or reorder the store. */
    volatile uintptr_t addr = 16;
    *(volatile int *)addr = 1;
    raise(SIGSEGV);
}

/* Division by zero traps on x86; on Arm it quietly gives 0, hence the raise after it.
 * UBSan's check is off here, or a sanitized build would report instead of trapping. */
__attribute__((no_sanitize("integer-divide-by-zero"))) static void crash_fpe(void)
{
    volatile int zero = 0;
    volatile int x = 1 / zero;
    (void)x;
    raise(SIGFPE);
}

static int forbidden_syscall(void)
{
    /* Any arguments do: the allow-list refuses the call by its number. pid 0 is never a
     * tracee, so outside a compartment this is harmless (ESRCH). */
    errno = 0;
    long r = syscall(SYS_ptrace, PTRACE_PEEKUSER, 0, 0, 0);
    int err = errno;
    pv_app_log(PV_APP_LOG_ERROR, "ptrace returned %ld (%s): the process was not killed", r,
               err != 0 ? strerror(err) : "no error");
    return r < 0 && (err == EPERM || err == ENOSYS) ? EXIT_STOPPED : EXIT_NOT_STOPPED;
}

static int eat_memory(unsigned long max_mb)
{
    const size_t chunk = 1u << 20;
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) {
        page = 4096;
    }
    for (unsigned long mb = 0; mb < max_mb && !got_term; mb++) {
        volatile uint8_t *p =
            mmap(NULL, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == (void *)MAP_FAILED) {
            pv_app_log(PV_APP_LOG_ERROR, "allocation refused after %lu MiB: %s", mb,
                       strerror(errno));
            return EXIT_STOPPED;
        }
        /* Touch every page: untouched memory costs nothing and would never hit a limit. */
        for (size_t off = 0; off < chunk; off += (size_t)page) {
            p[off] = 1;
        }
        if (mb % 16 == 0) {
            pv_app_log(PV_APP_LOG_DEBUG, "%lu MiB", mb + 1);
        }
    }
    pv_app_log(PV_APP_LOG_ERROR, "allocated %lu MiB and was not stopped", max_mb);
    return EXIT_NOT_STOPPED;
}

static int fork_bomb(unsigned long max_procs)
{
    pid_t parent = getpid();
    for (unsigned long n = 0; n < max_procs && !got_term; n++) {
        pid_t pid = fork();
        if (pid < 0) {
            pv_app_log(PV_APP_LOG_ERROR, "fork refused after %lu processes: %s", n,
                       strerror(errno));
            return EXIT_STOPPED;
        }
        if (pid == 0) {
            /* The children go with the parent, whatever ends it. */
            if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
                _exit(0);
            }
            for (;;) {
                pause();
            }
        }
    }
    pv_app_log(PV_APP_LOG_ERROR, "forked %lu processes and was not stopped", max_procs);
    return EXIT_NOT_STOPPED;
}

static void hang(void)
{
    pv_app_log(PV_APP_LOG_WARN, "hanging: the watchdog is no longer kicked");
    while (!got_term) {
        pause();
    }
}

/* Fails as chosen; returns the exit status for the modes that return. */
static int run_mode(const choice *c, const options *o)
{
    if (c->m == M_EXIT) {
        pv_app_log(PV_APP_LOG_WARN, "crashing: exit %d", c->code);
    } else {
        pv_app_log(PV_APP_LOG_WARN, "crashing: %s", mode_name(c->m));
    }
    switch (c->m) {
    case M_SEGV:
        crash_segv();
        break;
    case M_ABORT:
        abort();
    case M_FPE:
        crash_fpe();
        break;
    case M_SYSCALL:
        return forbidden_syscall();
    case M_EXIT:
        return c->code;
    case M_HANG:
        hang();
        return 0;
    case M_OOM:
        return eat_memory(o->max_mb);
    case M_FORK_BOMB:
        return fork_bomb(o->max_procs);
    case M_NONE:
        return 0;
    }
    pv_app_log(PV_APP_LOG_ERROR, "%s did not crash", mode_name(c->m));
    return EXIT_NOT_STOPPED;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    options o = {
        .mode = {M_NONE, 0}, .after_s = 0, .watchdog_ms = 1000, .max_mb = 1024, .max_procs = 1000};
    if (parse_args(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: crasher [--mode segv|abort|fpe|syscall|exit:N|hang|oom|fork-bomb|"
                        "none] [--after SECONDS] [--watchdog MS] [--max-mb N] [--max-procs N]\n");
        return EXIT_USAGE;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);

    int r = o.watchdog_ms > 0 ? pv_app_watchdog_start(o.watchdog_ms) : PV_APP_OK;
    if (r != PV_APP_OK && r != PV_APP_ERR_NO_RUNTIME) {
        pv_app_log(PV_APP_LOG_WARN, "watchdog: %s", pv_app_strerror(r));
    }
    bool kicking = o.watchdog_ms > 0 && r == PV_APP_OK;
    pv_app_log(PV_APP_LOG_INFO, "crasher: mode %s after %u s (pid %d)", mode_name(o.mode.m),
               o.after_s, (int)getpid());

    /* Kick four times per period, look at the storage file once a second. */
    int64_t tick = kicking && o.watchdog_ms / 4 < 1000 ? o.watchdog_ms / 4 : 1000;
    int64_t start = now_ms(), next_file = start;
    choice c;
    while (!got_term) {
        int64_t now = now_ms();
        if (got_usr2) {
            c = (choice){M_HANG, 0};
            return run_mode(&c, &o);
        }
        if (got_usr1) {
            c = o.mode.m != M_NONE ? o.mode : (choice){M_SEGV, 0};
            return run_mode(&c, &o);
        }
        if (now >= next_file) {
            next_file = now + 1000;
            if (storage_mode(&c)) {
                return run_mode(&c, &o);
            }
        }
        if (o.mode.m != M_NONE && now - start >= (int64_t)o.after_s * 1000) {
            return run_mode(&o.mode, &o);
        }
        if (kicking) {
            pv_app_watchdog_kick();
        }
        struct timespec ts = {.tv_sec = tick / 1000, .tv_nsec = (long)(tick % 1000) * 1000000};
        nanosleep(&ts, NULL); /* a signal cuts it short: fine, the loop looks again */
    }
    if (kicking) {
        pv_app_watchdog_stop();
    }
    pv_app_log(PV_APP_LOG_INFO, "stopping");
    return 0;
}
