/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavised: the device runtime (docs/device-runtime.md).
 *   pavised --state DIR [--socket PATH] [--dns-upstream IP[:PORT]] [--restart-min-ms N]
 *           [--stop-grace-ms N] [--ready-file FILE] [--log-level LEVEL] [--log-json]
 *           [--libexec DIR]
 *
 * Has pavise-store open the root of trust for the device ID and verify every installed app
 * again, sets up the cgroups, the network policy (pavise-netd) and the seccomp filter,
 * starts every app in its compartment, and serves the local device API. SIGTERM/SIGINT stop
 * every app (SIGTERM, then SIGKILL after the grace period) and exit 0.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "pavise/app.h"
#include "pavise/fs.h"
#include "pavise/log.h"
#include "pavise/manifest.h"
#include "pavise/rot.h"

#include "daemon.h"

#ifndef PAVISE_VERSION
#define PAVISE_VERSION "0.1.0"
#endif

static const cli_opt opts[] = {
    {"state", "DIR", true, "the device's state directory (pavise-device manufacture made it)"},
    {"socket", "PATH", false, "the local device API socket (default " PD_DEFAULT_SOCKET ")"},
    {"dns-upstream", "IP[:PORT]", false,
     "the resolver the apps' DNS stub asks (default: the first nameserver of /etc/resolv.conf)"},
    {"restart-min-ms", "N", false, "first restart delay of an app that exits (default 1000)"},
    {"stop-grace-ms", "N", false, "SIGTERM, then SIGKILL after this (default 5000)"},
    {"peripherals", "DEV[,DEV...]", false,
     "the device nodes apps may declare on this board, e.g. /dev/ttyS1,/dev/i2c-1 (default: none)"},
    {"ready-file", "FILE", false, "written once the API listens and the apps were started"},
    {"log-level", "LEVEL", false, "debug, info (default), warn or error"},
    {"log-json", NULL, false, "log as JSON lines"},
    {"power", "MODE", false,
     "what an app's power action does: none (default: refused) or kernel (every app stopped, "
     "then reboot(2): for a device whose init is pavised or that has no service manager)"},
    {"libexec", "DIR", false,
     "where pavised's helper programs (pavise-store, pavise-netd) are (default: pavised's own "
     "directory)"},
    {NULL, NULL, false, NULL},
};

/* The power actions (--power kernel). A reboot or power-down stops every app as SIGTERM
 * does; run() then syncs and calls reboot(2) once they are all stopped. The low-power
 * profile is the cpufreq "powersave" governor on every CPU policy that offers it. */
#define CPUFREQ_DIR "/sys/devices/system/cpu/cpufreq"

static int powersave(bool act)
{
    DIR *dir = opendir(CPUFREQ_DIR);
    int found = 0, set = 0;
    struct dirent *de;
    while (dir != NULL && (de = readdir(dir)) != NULL) {
        char path[512], avail[512] = "";
        if (strncmp(de->d_name, "policy", 6) != 0) {
            continue;
        }
        snprintf(path, sizeof(path), CPUFREQ_DIR "/%s/scaling_available_governors", de->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, avail, sizeof(avail) - 1) : -1;
        if (fd >= 0) {
            close(fd);
        }
        if (n <= 0 || strstr(avail, "powersave") == NULL) {
            continue;
        }
        found++;
        snprintf(path, sizeof(path), CPUFREQ_DIR "/%s/scaling_governor", de->d_name);
        if (act && (fd = open(path, O_WRONLY | O_CLOEXEC)) >= 0) {
            set += write(fd, "powersave", 9) == 9;
            close(fd);
        }
    }
    if (dir != NULL) {
        closedir(dir);
    }
    if (act) {
        pv_info("power: low-power profile on %d of %d CPU policies", set, found);
    }
    return found > 0 ? PV_OK : PV_ERR_UNSUPPORTED;
}

static int on_power(void *ctx, int action, bool act)
{
    pd *d = ctx;
    if (!d->power_kernel) {
        return PV_ERR_UNSUPPORTED;
    }
    if (action == PV_APP_POWER_PROFILE_LOW) {
        return powersave(act);
    }
    if (action != PV_APP_POWER_REBOOT && action != PV_APP_POWER_POWER_DOWN) {
        return PV_ERR_UNSUPPORTED;
    }
    if (act && d->power_action == 0) {
        d->power_action = action;
        pv_warn("power: %s asked for: stopping every app",
                action == PV_APP_POWER_REBOOT ? "reboot" : "power-down");
        if (!d->stopping) {
            d->stopping = true;
            am_stop_all(d->apps);
        }
    }
    return PV_OK;
}

static int run(const cli_cmd *cmd, const cli_args *args, pv_err *e);

static const cli_cmd pavised_cmd = {
    NULL,
    "",
    "The Pavise device runtime",
    "Runs every installed app in its own compartment with only what its signed manifest "
    "grants, and serves the local device API (pavise device ...).",
    opts,
    false,
    run,
};

#define MAX_BOARD_PERIPHERALS 64

/* --peripherals: a comma-separated list of device nodes, each valid as a manifest's. */
static int parse_peripherals(char *list, const char **out, pv_err *e)
{
    size_t n = 0;
    char *save = NULL;
    for (char *p = strtok_r(list, ",", &save); p != NULL; p = strtok_r(NULL, ",", &save)) {
        if (n == MAX_BOARD_PERIPHERALS) {
            return pv_err_set(e, PV_ERR_USAGE, "--peripherals: at most %d", MAX_BOARD_PERIPHERALS);
        }
        int r = pv_manifest_check_peripheral(p, e);
        if (r != PV_OK) {
            return pv_err_wrap(e, PV_ERR_USAGE, "--peripherals");
        }
        out[n++] = p;
    }
    out[n] = NULL;
    return PV_OK;
}

/* A helper program (pavise-store, pavise-netd), opened once at start-up: what runs later is this
 * file, whatever happens to the path. It must be root's, and writable by no one else. */
static int open_helper(const char *libexec, const char *name, int *out, pv_err *e)
{
    char self[4096], path[4096];
    struct stat st;
    *out = -1;
    if (libexec == NULL) {
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0 || n >= (ssize_t)sizeof(self) - 1) {
            return pv_err_sys(e, PV_ERR_IO, n < 0 ? errno : ENAMETOOLONG, "/proc/self/exe");
        }
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash == NULL) {
            return pv_err_set(e, PV_ERR_IO, "/proc/self/exe: %s is not a path", self);
        }
        slash[slash == self ? 1 : 0] = '\0';
        libexec = self;
    }
    int n = snprintf(path, sizeof(path), "%s/%s", libexec, name);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "--libexec: path too long");
    }
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        int err = errno;
        if (fd >= 0) {
            close(fd);
        }
        return pv_err_sys(e, PV_ERR_IO, err, "%s", path);
    }
    if (!S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0 ||
        (st.st_mode & S_IXUSR) == 0) {
        close(fd);
        return pv_err_set(e, PV_ERR_UNSAFE,
                          "%s: not an executable file of root's that only root can write", path);
    }
    *out = fd;
    return PV_OK;
}

/* pavise-netd's control socket: readable when it died (nc_dispatch starts another). nc_fd
 * stays the same fd across restarts. */
static void on_net(void *ctx, int fd, uint32_t events);

static void net_watch(pd *d)
{
    int fd = nc_fd(d->net);
    if (fd == d->net_fd) {
        return;
    }
    if (d->net_fd >= 0) {
        lp_del(d->loop, d->net_fd);
    }
    d->net_fd = -1;
    pv_err e;
    pv_err_clear(&e);
    if (fd >= 0 && lp_add(d->loop, fd, EPOLLIN, on_net, d, &e) == PV_OK) {
        d->net_fd = fd;
    } else if (fd >= 0) {
        pv_error("network policy: %s", pv_err_msg(&e));
    }
}

static void on_net(void *ctx, int fd, uint32_t events)
{
    pd *d = ctx;
    pv_err e;
    pv_err_clear(&e);
    if (nc_dispatch(d->net, &e) != PV_OK) {
        pv_error("network policy: %s", pv_err_msg(&e));
    }
    net_watch(d);
}

static void on_signal(void *ctx, int fd, uint32_t events)
{
    pd *d = ctx;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            if (!d->stopping) {
                pv_info("stopping every app");
                d->stopping = true;
                am_stop_all(d->apps);
            }
        }
    }
}

/* STATE/certs changes when the device attests (the certificates are renewed every day):
 * a short quiet period after the last change, then the apps get fresh copies. */

static void on_certs_quiet(void *ctx, int fd, uint32_t events)
{
    pd *d = ctx;
    uint64_t n;
    if (read(fd, &n, sizeof(n)) == sizeof(n)) {
        pv_info("the device's certificates changed: refreshing the apps' copies");
        am_device_certs_changed(d->apps);
    }
}

static void on_certs(void *ctx, int fd, uint32_t events)
{
    pd *d = ctx;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool any = false;
    while (read(fd, buf, sizeof(buf)) > 0) {
        any = true;
    }
    if (any && d->certs_timer >= 0) {
        lp_timer_arm(d->certs_timer, 200);
    }
}

static int watch_certs(pd *d, int *ifd, pv_err *e)
{
    char dir[4096];
    int n = snprintf(dir, sizeof(dir), "%s/certs", d->state_dir);
    if (n < 0 || (size_t)n >= sizeof(dir)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "state directory path too long");
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s", dir);
    }
    *ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (*ifd < 0 || inotify_add_watch(*ifd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE) < 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "inotify on %s", dir);
    }
    int r = lp_timer_new(d->loop, on_certs_quiet, d, &d->certs_timer, e);
    return r != PV_OK ? r : lp_add(d->loop, *ifd, EPOLLIN, on_certs, d, e);
}

static int run(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    pd d = {.state_dir = cli_get(cmd, args, "state"),
            .store_cfg = {.exe_fd = -1},
            .listen_fd = -1,
            .net_fd = -1,
            .certs_timer = -1};
    const char *socket_path = cli_get(cmd, args, "socket");
    const char *ready = cli_get(cmd, args, "ready-file");
    const char *level_s = cli_get(cmd, args, "log-level");
    pv_log_level level = PV_LOG_INFO;
    nc_config ncfg = {.netd_fd = -1,
                      .upstream = cli_get(cmd, args, "dns-upstream"),
                      .stub_uid = AS_UID_BASE - 1,
                      .stub_gid = AS_UID_BASE - 1,
                      .app_uid_first = AS_UID_BASE,
                      .app_uid_last = AS_UID_BASE + AS_MAX_APPS - 1,
                      .log_json = cli_flag(cmd, args, "log-json")};
    uint64_t restart_ms = 1000, grace_ms = 5000;
    int sfd = -1, ifd = -1;
    struct sockaddr_storage upstream;
    socklen_t upstream_len = 0;
    int r = PV_OK;
    const char *peripherals[MAX_BOARD_PERIPHERALS + 1] = {NULL};
    char *periph_list = NULL;
    if (level_s != NULL && pv_log_level_parse(level_s, &level) != PV_OK) {
        return pv_err_set(e, PV_ERR_USAGE, "--log-level '%s': debug, info, warn or error", level_s);
    }
    pv_log_init(level, cli_flag(cmd, args, "log-json"), NULL, "pavised");
    ncfg.log_level = level;
    if ((cli_get(cmd, args, "restart-min-ms") != NULL &&
         (r = cli_parse_uint(cli_get(cmd, args, "restart-min-ms"), "--restart-min-ms", 3600000,
                             &restart_ms, e)) != PV_OK) ||
        (cli_get(cmd, args, "stop-grace-ms") != NULL &&
         (r = cli_parse_uint(cli_get(cmd, args, "stop-grace-ms"), "--stop-grace-ms", 3600000,
                             &grace_ms, e)) != PV_OK)) {
        return r;
    }
    /* Checked here for a usage error; pavise-netd parses it again. Without it, pavise-netd
     * takes the first nameserver of /etc/resolv.conf. */
    if (ncfg.upstream != NULL &&
        (r = nc_parse_upstream(ncfg.upstream, &upstream, &upstream_len, e)) != PV_OK) {
        return r;
    }
    const char *power = cli_get(cmd, args, "power");
    if (power != NULL && strcmp(power, "kernel") != 0 && strcmp(power, "none") != 0) {
        return pv_err_set(e, PV_ERR_USAGE, "--power '%s': none or kernel", power);
    }
    d.power_kernel = power != NULL && strcmp(power, "kernel") == 0;
    if (cli_get(cmd, args, "peripherals") != NULL &&
        ((periph_list = strdup(cli_get(cmd, args, "peripherals"))) == NULL ||
         (r = parse_peripherals(periph_list, peripherals, e)) != PV_OK)) {
        free(periph_list);
        return periph_list == NULL ? pv_err_set(e, PV_ERR_NOMEM, "out of memory") : r;
    }
    if (getuid() != 0) {
        free(periph_list);
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "pavised runs as root (it drops privileges for "
                          "every app)");
    }
    /* Children must not be left behind if pavised dies, and signals come through signalfd. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGPIPE);
    sigprocmask(SIG_BLOCK, &set, NULL);
    /* The network policy runs in pavise-netd (which forks the DNS stub): started first, so
     * it holds nothing of the device's. */
    /* The helpers run as uid 0, whom the local API serves: in their mount namespaces the
     * socket's directory is covered (made now, so it is there before the first helper
     * starts), or the socket itself where that directory also holds the state directory. */
    const char *api_path = socket_path != NULL ? socket_path : PD_DEFAULT_SOCKET;
    char api_dir[4096], state_real[PATH_MAX], dir_real[PATH_MAX];
    snprintf(api_dir, sizeof(api_dir), "%s", api_path);
    char *slash = strrchr(api_dir, '/');
    if (slash != NULL && slash != api_dir) {
        *slash = '\0';
        if (mkdir(api_dir, 0700) != 0 && errno != EEXIST) {
            r = pv_err_sys(e, PV_ERR_IO, errno, "%s", api_dir);
            goto out;
        }
        size_t dl = realpath(api_dir, dir_real) != NULL ? strlen(dir_real) : 0;
        bool holds_state = dl == 0 || (realpath(d.state_dir, state_real) != NULL &&
                                       strncmp(state_real, dir_real, dl) == 0 &&
                                       (state_real[dl] == '/' || state_real[dl] == '\0'));
        d.store_cfg.hide_dir = ncfg.hide_dir = holds_state ? api_path : api_dir;
    }
    d.store_cfg.state_dir = d.state_dir;
    d.store_cfg.log_level = level_s;
    d.store_cfg.log_json = cli_flag(cmd, args, "log-json");
    if ((r = open_helper(cli_get(cmd, args, "libexec"), "pavise-store", &d.store_cfg.exe_fd, e)) !=
        PV_OK) {
        goto out;
    }
    if ((r = open_helper(cli_get(cmd, args, "libexec"), "pavise-netd", &ncfg.netd_fd, e)) !=
            PV_OK ||
        (r = nc_start(&ncfg, &d.net, e)) != PV_OK) {
        /* Fail closed: without the firewall no app may run. */
        pv_err_wrap(e, r, "network policy");
        goto out;
    }
    /* The device and its apps, as pavise-store verified them. */
    sc_device dev = {0};
    if ((r = sc_load(&d.store_cfg, &dev, &d.store, e)) != PV_OK) {
        goto out;
    }
    memcpy(d.device_id, dev.device_id, sizeof(d.device_id) - 1);
    memcpy(d.rot_kind, dev.rot_kind, sizeof(d.rot_kind));
    d.development = dev.development;
    d.dev_expires = dev.dev_expires;
    if ((r = lp_new(&d.loop, e)) != PV_OK || (r = fl_open(d.state_dir, &d.failures, e)) != PV_OK ||
        (r = cg_init(NULL, &d.cgroups, e)) != PV_OK ||
        (r = sb_seccomp_build(&d.filter, e)) != PV_OK ||
        (r = sg_new(d.loop, &d.store_cfg, &d.signer, e)) != PV_OK) {
        goto out;
    }
    am_config acfg = {.state_dir = d.state_dir,
                      .loop = d.loop,
                      .store = d.store,
                      .failures = d.failures,
                      .cgroups = d.cgroups,
                      .net = d.net,
                      .filter = d.filter,
                      .restart_min_ms = (uint32_t)restart_ms,
                      .stop_grace_ms = (uint32_t)grace_ms,
                      .peripherals = peripherals,
                      .power = on_power,
                      .power_ctx = &d,
                      .signer = d.signer};
    if ((r = am_new(&acfg, &d.apps, e)) != PV_OK ||
        (r = la_listen(&d, socket_path != NULL ? socket_path : PD_DEFAULT_SOCKET, e)) != PV_OK) {
        goto out;
    }
    sigdelset(&set, SIGPIPE);
    sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0 || (r = lp_add(d.loop, sfd, EPOLLIN, on_signal, &d, e)) != PV_OK) {
        r = sfd < 0 ? pv_err_sys(e, PV_ERR_IO, errno, "signalfd") : r;
        goto out;
    }
    net_watch(&d);
    if ((r = watch_certs(&d, &ifd, e)) != PV_OK) {
        goto out;
    }
    am_start_all(d.apps);
    pv_info("pavised %s: device %s, %zu apps, cgroup %s, landlock ABI %d", PAVISE_VERSION,
            d.device_id, as_count(d.store), cg_version_name(d.cgroups), sb_landlock_abi());
    if (ready != NULL && (r = pv_fs_write_file(ready, "ready\n", 6, 0600, true, e)) != PV_OK) {
        goto out;
    }
    while (!(d.stopping && am_all_stopped(d.apps))) {
        if ((r = lp_run_once(d.loop, -1, e)) != PV_OK) {
            goto out;
        }
    }
    r = PV_OK;
out:
    am_free(d.apps);
    sg_free(d.signer);
    nc_free(d.net);
    if (ncfg.netd_fd >= 0) {
        close(ncfg.netd_fd);
    }
    sb_filter_free(d.filter);
    cg_free(d.cgroups);
    as_close(d.store);
    fl_close(d.failures);
    if (d.listen_fd >= 0) {
        close(d.listen_fd);
    }
    if (sfd >= 0) {
        close(sfd);
    }
    if (ifd >= 0) {
        close(ifd);
    }
    if (d.certs_timer >= 0) {
        lp_timer_free(d.loop, d.certs_timer);
    }
    lp_free(d.loop);
    if (d.store_cfg.exe_fd >= 0) {
        close(d.store_cfg.exe_fd);
    }
    free(periph_list);
    if (r == PV_OK && d.power_action != 0) {
        /* Every app has stopped and every helper is gone: what is written stays written. */
        pv_warn("power: %s now",
                d.power_action == PV_APP_POWER_REBOOT ? "rebooting" : "powering down");
        sync();
        if (reboot(d.power_action == PV_APP_POWER_REBOOT ? RB_AUTOBOOT : RB_POWER_OFF) != 0) {
            r = pv_err_sys(e, PV_ERR_IO, errno, "reboot");
        }
    }
    return r;
}

int main(int argc, char **argv)
{
    return cli_main(&pavised_cmd, "pavised", PAVISE_VERSION, argc, argv);
}
