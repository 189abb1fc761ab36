/* SPDX-License-Identifier: Apache-2.0 */
/*
 * compartment-bench: how long a compartment takes from sb_start to the reaped init, for a
 * program that exits at once, with every layer on (namespaces, the read-only root with
 * /app, /tmp, /proc, /storage, /etc, device nodes, credentials, rlimits, Landlock, the
 * seccomp filter and its listener; the cgroup when the cgroup module is built). In the same
 * run and alternating with it, the anchor: fork/exec of
 *     bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp /bin/true
 * to its exit. Reports the median and p90 of each and the ratio of the medians.
 *
 * usage: compartment-bench [-n RUNS] [-b BWRAP] [-s SETTLE_MS]   (root)
 *
 * Two entry points are timed: a static one (a 129-byte ELF that calls exit_group(0); the
 * figure of the issue) and /bin/true itself (dynamic: the loader and libc bound in and
 * loaded), which is what bwrap runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "pavise/fs.h"
#include "sandbox.h"

#ifdef PV_BENCH_CGROUP
#include "cgroup.h"
#endif

extern char **environ;

typedef struct series {
    double *ms;
    size_t n;
} series;

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(series *s, double p)
{
    qsort(s->ms, s->n, sizeof(double), cmp);
    size_t i = (size_t)(p / 100.0 * (double)s->n + 0.999999);
    return s->ms[i > 0 ? i - 1 : 0];
}

/* A static x86_64 or aarch64 ELF calling exit_group(0); 0 bytes elsewhere. */
static size_t tiny_elf(uint8_t *out)
{
#if defined(__x86_64__)
    static const uint8_t code[] = {0x31, 0xff, 0xb8, 0xe7, 0x00, 0x00, 0x00, 0x0f, 0x05};
    const uint16_t machine = 62;
#elif defined(__aarch64__)
    static const uint8_t code[] = {0x00, 0x00, 0x80, 0xd2, 0xc8, 0x0b,
                                   0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4};
    const uint16_t machine = 183;
#else
    (void)out;
    return 0;
#endif
#if defined(__x86_64__) || defined(__aarch64__)
    const uint64_t base = 0x400000, entry = base + 64 + 56;
    uint64_t len = 64 + 56 + sizeof(code), align = 0x1000;
    memset(out, 0, (size_t)len);
    memcpy(out,
           "\x7f"
           "ELF\x02\x01\x01",
           7);
    out[16] = 2;
    out[18] = (uint8_t)machine;
    out[19] = (uint8_t)(machine >> 8);
    out[20] = 1;
    memcpy(out + 24, &entry, 8);
    out[32] = 64;
    out[52] = 64;
    out[54] = 56;
    out[56] = 1;
    uint8_t *ph = out + 64;
    ph[0] = 1;
    ph[4] = 5;
    memcpy(ph + 16, &base, 8);
    memcpy(ph + 24, &base, 8);
    memcpy(ph + 32, &len, 8);
    memcpy(ph + 40, &len, 8);
    memcpy(ph + 48, &align, 8);
    memcpy(out + 120, code, sizeof(code));
    return (size_t)len;
#endif
}

typedef struct bench {
    const char *dir, *image, *storage;
    sb_filter *filter;
    sb_libs libs;
#ifdef PV_BENCH_CGROUP
    cg_ctx *cg;
#endif
} bench;

/* One compartment, start to reaped init: milliseconds, or a negative value on failure. */
static double run_ours(bench *b, const char *entry, const sb_libs *libs, bool with_cgroup)
{
    static char *argv[] = {"true", NULL};
    static char *envp[] = {"PAVISE_FD=3", "TMPDIR=/tmp", "HOME=/storage", "LANG=C.UTF-8", NULL};
    static const sb_file etc[] = {{"resolv.conf", "nameserver 127.0.0.1\n"},
                                  {"hosts", "127.0.0.1 localhost\n"},
                                  {"passwd", "app:x:61999:61999::/storage:/nonexistent\n"},
                                  {"group", "app:x:61999:\n"}};
    static const uint16_t ports[] = {8080};
    sb_spec s = {.name = "11111111-2222-4333-8444-555555555555",
                 .uid = 61999,
                 .gid = 61999,
                 .image_dir = b->image,
                 .entry_point = entry,
                 .argv = argv,
                 .envp = envp,
                 .storage_dir = b->storage,
                 .libs = libs,
                 .etc = etc,
                 .n_etc = 4,
                 .bind_ports = ports,
                 .n_bind_ports = 1,
                 .nproc = 64,
                 .nofile = 256,
                 .filter = b->filter,
                 .stdout_fd = -1,
                 .stderr_fd = -1,
                 .chan_fd = -1};
    pv_err e;
    uint64_t t0 = now_ns();
#ifdef PV_BENCH_CGROUP
    cg_group *g = NULL;
    if (with_cgroup && cg_create(b->cg, "bench", 64u << 20, 64, &g, &e) != PV_OK) {
        fprintf(stderr, "cg_create: %s\n", pv_err_msg(&e));
        return -1;
    }
    s.cgroup = g;
#else
    (void)with_cgroup;
#endif
    sb_proc p;
    if (sb_start(&s, &p, &e) != PV_OK) {
        fprintf(stderr, "sb_start: %s\n", pv_err_msg(&e));
        return -1;
    }
    bool ok = false, done = false;
    while (!done) {
        struct pollfd pf[2] = {{.fd = p.status_fd, .events = POLLIN},
                               {.fd = p.pidfd, .events = POLLIN}};
        if (poll(pf, 2, 10000) <= 0) {
            sb_signal(&p, SIGKILL);
        }
        for (;;) {
            sb_event ev;
            int r = sb_read_event(p.status_fd, &ev, &e);
            if (r != PV_OK) {
                break;
            }
            if (ev.kind == SB_EV_LISTENER) {
                close(ev.fd);
            } else if (ev.kind == SB_EV_EXITED) {
                ok = WIFEXITED(ev.status) && WEXITSTATUS(ev.status) == 0;
            } else if (ev.kind == SB_EV_SETUP_FAILED) {
                fprintf(stderr, "setup failed: %s: %s\n", ev.step, strerror(ev.err));
            }
        }
        done = (pf[1].revents & POLLIN) != 0;
    }
    while (waitpid(p.pid, NULL, 0) < 0 && errno == EINTR) {
    }
    uint64_t t1 = now_ns();
    sb_proc_close(&p);
#ifdef PV_BENCH_CGROUP
    cg_destroy(g, NULL);
#endif
    return ok ? (double)(t1 - t0) / 1e6 : -1;
}

/* bwrap, fork/exec to exit: milliseconds, or a negative value on failure. */
static double run_bwrap(const char *bwrap)
{
    char *argv[] = {(char *)bwrap, "--unshare-all", "--ro-bind", "/",     "/",
                    "--dev",       "/dev",          "--proc",    "/proc", "--tmpfs",
                    "/tmp",        "/bin/true",     NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    uint64_t t0 = now_ns();
    pid_t pid;
    int r = posix_spawn(&pid, bwrap, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0) {
        fprintf(stderr, "%s: %s\n", bwrap, strerror(r));
        return -1;
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    uint64_t t1 = now_ns();
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? (double)(t1 - t0) / 1e6 : -1;
}

static int setup(bench *b, char *dir)
{
    pv_err e;
    char path[4200];
    uint8_t elf[256];
    size_t n = tiny_elf(elf);
    snprintf(path, sizeof(path), "%s/image", dir);
    if (mkdir(path, 0755) != 0) {
        return -1;
    }
    b->image = strdup(path);
    snprintf(path, sizeof(path), "%s/image/bin", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/image/bin/exit0", dir);
    if (n == 0 || pv_fs_write_file(path, elf, n, 0755, false, &e) != PV_OK) {
        fprintf(stderr, "no static test program for this architecture\n");
        return -1;
    }
    uint8_t *t = NULL;
    size_t tl = 0;
    snprintf(path, sizeof(path), "%s/image/bin/true", dir);
    if (pv_fs_read_file("/bin/true", 16u << 20, &t, &tl, &e) != PV_OK ||
        pv_fs_write_file(path, t, tl, 0755, false, &e) != PV_OK) {
        fprintf(stderr, "/bin/true: %s\n", pv_err_msg(&e));
        free(t);
        return -1;
    }
    free(t);
    snprintf(path, sizeof(path), "%s/storage", dir);
    if (mkdir(path, 0700) != 0 || chown(path, 61999, 61999) != 0) {
        return -1;
    }
    b->storage = strdup(path);
    /* Done once per image and once per boot, as pavised does. */
    if (sb_elf_libs(b->image, "/bin/true", &b->libs, &e) != PV_OK ||
        sb_seccomp_build(&b->filter, &e) != PV_OK) {
        fprintf(stderr, "%s\n", pv_err_msg(&e));
        return -1;
    }
#ifdef PV_BENCH_CGROUP
    if (cg_init(NULL, &b->cg, &e) != PV_OK) {
        fprintf(stderr, "cg_init: %s\n", pv_err_msg(&e));
        return -1;
    }
#endif
    return 0;
}

static void report(const char *what, series *s, double anchor_median)
{
    double med = pct(s, 50), p90 = pct(s, 90);
    printf("%-44s median %7.3f ms  p90 %7.3f ms", what, med, p90);
    if (anchor_median > 0) {
        printf("  ratio %.2f", med / anchor_median);
    }
    printf("\n");
}

int main(int argc, char **argv)
{
    size_t runs = 200;
    uint64_t settle_ms = 10;
    const char *bwrap = "/usr/bin/bwrap";
    int opt;
    while ((opt = getopt(argc, argv, "n:b:s:")) != -1) {
        if (opt == 'n') {
            runs = (size_t)strtoul(optarg, NULL, 10);
        } else if (opt == 'b') {
            bwrap = optarg;
        } else if (opt == 's') {
            settle_ms = strtoull(optarg, NULL, 10);
        } else {
            fprintf(stderr, "usage: compartment-bench [-n RUNS] [-b BWRAP] [-s SETTLE_MS]\n");
            return 2;
        }
    }
    if (runs == 0 || geteuid() != 0) {
        fprintf(stderr, "compartment-bench: runs > 0, as root\n");
        return 2;
    }
    const char *base = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/compartment-bench-XXXXXX", base != NULL ? base : "/var/tmp");
    if (mkdtemp(dir) == NULL || chmod(dir, 0755) != 0) {
        perror("mkdtemp");
        return 1;
    }
    bench b = {.dir = dir};
    int rc = 1;
    series st = {calloc(runs, sizeof(double)), 0}, dy = {calloc(runs, sizeof(double)), 0},
           bw = {calloc(runs, sizeof(double)), 0}, nc = {calloc(runs, sizeof(double)), 0};
#ifdef PV_BENCH_CGROUP
    const size_t n_cases = 4; /* and the static one without the cgroup layer */
#else
    const size_t n_cases = 3;
#endif
    if (st.ms == NULL || dy.ms == NULL || bw.ms == NULL || nc.ms == NULL || setup(&b, dir) != 0) {
        goto out;
    }
    /* warm up the page cache and the kernel's slabs */
    for (int i = 0; i < 5; i++) {
        if (run_ours(&b, "/bin/exit0", NULL, true) < 0 ||
            run_ours(&b, "/bin/true", &b.libs, true) < 0 || run_bwrap(bwrap) < 0) {
            fprintf(stderr, "a warm-up run failed\n");
            goto out;
        }
    }
    /* Interleaved, so drift affects every case alike, in an order shuffled each round: the
     * kernel finishes tearing down namespaces and cgroups (bwrap's network namespace above
     * all) after the process is gone, and that work must not always land on the same next
     * case. A pause between runs lets most of it finish. */
    uint64_t rng = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < runs; i++) {
        size_t order[4] = {0, 1, 2, 3};
        for (size_t k = n_cases - 1; k > 0; k--) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            size_t j = (size_t)(rng % (k + 1)), t = order[k];
            order[k] = order[j];
            order[j] = t;
        }
        for (size_t k = 0; k < n_cases; k++) {
            double v;
            switch (order[k]) {
            case 0:
                v = st.ms[st.n++] = run_ours(&b, "/bin/exit0", NULL, true);
                break;
            case 1:
                v = dy.ms[dy.n++] = run_ours(&b, "/bin/true", &b.libs, true);
                break;
            case 3:
                v = nc.ms[nc.n++] = run_ours(&b, "/bin/exit0", NULL, false);
                break;
            default:
                v = bw.ms[bw.n++] = run_bwrap(bwrap);
                break;
            }
            if (v < 0) {
                fprintf(stderr, "run %zu failed\n", i);
                goto out;
            }
            sleep_until(now_ns() + settle_ms * 1000000u);
        }
    }
    double anchor = pct(&bw, 50);
    printf("compartment start to exit, %zu runs each, interleaved, %llu ms apart; Landlock ABI %d; "
           "cgroup %s\n",
           runs, (unsigned long long)settle_ms, sb_landlock_abi(),
#ifdef PV_BENCH_CGROUP
           "on"
#else
           "off (module not built)"
#endif
    );
    report("pavise compartment, static exit(0)", &st, anchor);
    report("pavise compartment, /bin/true (dynamic)", &dy, anchor);
    if (nc.n > 0) {
        report("pavise compartment, static, no cgroup", &nc, anchor);
    }
    report("bwrap --unshare-all ... /bin/true (anchor)", &bw, 0);
    rc = 0;
out:
    sb_libs_free(&b.libs);
    sb_filter_free(b.filter);
#ifdef PV_BENCH_CGROUP
    cg_free(b.cg);
#endif
    pv_fs_remove_tree(dir, NULL);
    free((char *)b.image);
    free((char *)b.storage);
    free(st.ms);
    free(dy.ms);
    free(bw.ms);
    free(nc.ms);
    return rc;
}
