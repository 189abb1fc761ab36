// SPDX-License-Identifier: Apache-2.0
/*
 * The application manager: one state machine per installed app.
 *
 *   stopped ──start──> running ──exit──> backoff ──timer──> running ...
 *      ^                  │ stop: SIGTERM, timer: SIGKILL
 *      └──── reaped ── stopping
 *
 * Everything about a run (cgroup, pipes, channel, listener) is made in start_app and
 * released in reap, so a failed start leaves nothing behind.
 */
#include "appmgr.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pavise/platform.h"
#include "pavise/fs.h"
#include "pavise/log.h"

#include "appchan.h"
#include "signer.h"
#include "storage.h"

typedef enum app_state {
    ST_STOPPED = 0,
    ST_RUNNING,
    ST_BACKOFF,
    ST_STOPPING,
} app_state;

static const char *const state_names[] = {"stopped", "running", "backoff", "stopping"};

#define LOG_LINE_MAX 1024
#define MAX_ENV      12

/* A token bucket: a rate with a burst (what one app may do of something). */
typedef struct bucket {
    double tokens;
    int64_t ms; /* when it was last filled */
} bucket;

static void bucket_fill(bucket *b, double burst)
{
    b->tokens = burst;
    b->ms = pv_monotonic_ms();
}

/* Takes a token if there is one. */
static bool bucket_take(bucket *b, double rate, double burst)
{
    int64_t now = pv_monotonic_ms();
    b->tokens += (double)(now - b->ms) * rate / 1000.0;
    b->ms = now;
    if (b->tokens > burst) {
        b->tokens = burst;
    }
    if (b->tokens < 1.0) {
        return false;
    }
    b->tokens -= 1.0;
    return true;
}

typedef struct app_rt {
    am *m;
    as_app *a;
    char cid[AS_CID_LEN + 1];
    app_state state;
    bool wanted;
    /* the current run */
    sb_proc proc;
    bool live;
    int listener, log_fd, chan_fd;
    cg_group *cg;
    uint64_t oom_before;
    nc_app_stats net_before;
    bool seccomp_hit, watchdog_fired, setup_failed, stop_requested;
    int app_status;
    bool have_app_status;
    int64_t started_ms;
    /* kept across runs */
    nc_app *nc;
    char *storage;
    sb_libs libs;
    bool libs_done;
    int timer_fd, wd_fd;
    uint32_t wd_ms;
    uint32_t event_mask;
    unsigned restarts;
    uint32_t backoff_ms;
    json_t *last_exit;
    struct stat periph_orig[PV_MAX_PERIPHERALS]; /* owner and mode before it was granted */
    bool periph_saved[PV_MAX_PERIPHERALS];
    char line[LOG_LINE_MAX + 1];
    size_t line_len;
    /* log lines: a token bucket, so one app cannot flood the log or stall the loop */
    bucket log_bucket;
    uint64_t log_dropped;
    /* policy failures are recorded once per run and kind of request */
    uint32_t policy_seen;
    /* the entry it runs is the manager's to free (it was handed over by am_installed) */
    bool own_a;
    bool draining; /* reading what a finished run left on its channel */
    /* an update staged for it and not yet applied (docs/protocol/app-channel.md §4.2) */
    struct pending_update *upd;
    /* the signature being made for it (its channel is not read meanwhile, so answers stay
     * in order), and a token bucket for the rate of signatures */
    sg_job *sign_job;
    bucket sign_bucket;
    uint64_t sign_refused; /* over the rate this run: logged once, counted at its end */
} app_rt;

/* An update of a running app that asked for UPDATE_READY: the new image waits until the app
 * agrees, its deferral runs out (at most AM_MAX_DEFER_S in all), it does not answer within
 * AM_ANSWER_MS, or it is no longer running. */
typedef struct pending_update {
    uint64_t id;         /* the event id the app names in its defer */
    as_app *next;        /* the new entry (the store's table holds it) */
    uint32_t left_s;     /* deferral left */
    int64_t due_ms;      /* when the manager acts next */
    int64_t deadline_ms; /* staged + AM_MAX_DEFER_S: the waits for answers count too */
    bool deferring;      /* due_ms ends a deferral (else: the wait for an answer) */
    bool agreed;         /* the app said go ahead */
} pending_update;

#define LOG_RATE  50.0 /* lines a second */
#define LOG_BURST 200.0

/* Whether the app may log one more line now. */
static bool log_allowed(app_rt *rt)
{
    if (!bucket_take(&rt->log_bucket, LOG_RATE, LOG_BURST)) {
        rt->log_dropped++;
        return false;
    }
    if (rt->log_dropped > 0) {
        pv_warn("app %s: %llu log lines dropped (more than %.0f a second)", rt->a->m.name,
                (unsigned long long)rt->log_dropped, LOG_RATE);
        rt->log_dropped = 0;
    }
    return true;
}

/* Signatures a second after the burst: a TLS connection through libpavise-app-tls takes
 * two (its check that the key matches the certificate, and the handshake's). */
#define SIGN_RATE  0.5
#define SIGN_BURST 10.0

struct am {
    am_config cfg;
    app_rt *apps[AS_MAX_APPS];
    size_t n;
    uint64_t next_event_id;
    int upd_timer; /* the next pending update that is due */
    bool stopping; /* am_stop_all was called: nothing starts any more */
};

static void updates_rearm(am *m);
static void on_updates(void *ctx, int fd, uint32_t events);
static void send_event(app_rt *rt, uint32_t kind, uint64_t id, uint32_t seconds_left);

static app_rt *find_rt(am *m, const char *cid)
{
    for (size_t i = 0; i < m->n; i++) {
        if (strcasecmp(m->apps[i]->cid, cid) == 0) {
            return m->apps[i];
        }
    }
    return NULL;
}

static void record(app_rt *rt, fl_kind kind, int sig, int code, int syscall, const char *detail)
{
    fl_event ev = {.kind = kind, .signal = sig, .code = code, .syscall = syscall};
    memcpy(ev.component_id, rt->cid, sizeof(ev.component_id));
    snprintf(ev.version, sizeof(ev.version), "%s", rt->a->m.version);
    snprintf(ev.detail, sizeof(ev.detail), "%s", detail != NULL ? detail : "");
    pv_err e;
    pv_err_clear(&e);
    if (fl_record(rt->m->cfg.failures, &ev, &e) != PV_OK) {
        pv_error("app %s: cannot record a failure: %s", rt->cid, pv_err_msg(&e));
    }
    pv_warn("app %s (%s): failure %s signal %d code %d syscall %d %s", rt->a->m.name, rt->cid,
            fl_kind_name(kind), sig, code, syscall, detail != NULL ? detail : "");
}

/* ---- one run ---- */

static void close_fd(am *m, int *fd)
{
    if (*fd >= 0) {
        lp_del(m->cfg.loop, *fd);
        close(*fd);
        *fd = -1;
    }
}

static void flush_line(app_rt *rt)
{
    if (rt->line_len > 0) {
        rt->line[rt->line_len] = '\0';
        if (log_allowed(rt)) {
            pv_info("app %s: %s", rt->a->m.name, rt->line);
        }
        rt->line_len = 0;
    }
}

static void on_log(void *ctx, int fd, uint32_t events)
{
    app_rt *rt = ctx;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            flush_line(rt);
            close_fd(rt->m, &rt->log_fd);
        }
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\n' || rt->line_len == LOG_LINE_MAX) {
            flush_line(rt);
            if (c == '\n') {
                continue;
            }
        }
        /* What an app prints is not trusted to be text: control bytes are shown escaped
         * by the log writer's rules, here replaced. */
        rt->line[rt->line_len++] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
    }
}

/* A request the manifest does not grant is answered each time but recorded once per run
 * and kind (recording writes the queue to flash; an app looping on a denied request must
 * not turn that into a flood). */
static void record_denied(app_rt *rt, ac_type request, const char *detail)
{
    uint32_t bit = 1u << ((unsigned)request & 31u);
    if ((rt->policy_seen & bit) == 0) {
        rt->policy_seen |= bit;
        record(rt, FL_POLICY, 0, 0, -1, detail);
    }
}

static void reply_result(app_rt *rt, ac_type request, int32_t result)
{
    uint8_t out[AC_MAX_MSG];
    ac_msg msg = {.type = AC_RESULT, .request = (uint8_t)request, .result = result};
    size_t n = ac_encode(&msg, out);
    if (n > 0 && rt->chan_fd >= 0) {
        send(rt->chan_fd, out, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
}

/* What is left of an update's deferral: its budget, and never past a day since it was
 * staged (the waits for the app's answers count, so answering late does not stretch it). */
static uint32_t defer_left(const pending_update *u)
{
    int64_t to_deadline = (u->deadline_ms - pv_monotonic_ms()) / 1000;
    return to_deadline <= 0                   ? 0
           : to_deadline < (int64_t)u->left_s ? (uint32_t)to_deadline
                                              : u->left_s;
}

static void on_chan(void *ctx, int fd, uint32_t events);

/* The signature asked for is made (or not): the answer, then the channel is read again. */
static void on_signed(void *ctx, int result, const uint8_t *sig)
{
    app_rt *rt = ctx;
    rt->sign_job = NULL;
    if (rt->chan_fd < 0) {
        return;
    }
    if (result == PV_APP_OK) {
        uint8_t out[AC_MAX_MSG];
        ac_msg msg = {.type = AC_SIGNATURE};
        memcpy(msg.signature, sig, AC_SIG_LEN);
        size_t n = ac_encode(&msg, out);
        if (send(rt->chan_fd, out, n, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)n) {
            /* The app would count this answer as owed and drop every later one: end the
             * channel instead, so it sees the runtime gone rather than hangs. */
            pv_warn("app %s: its signature could not be sent: channel closed", rt->a->m.name);
            close_fd(rt->m, &rt->chan_fd);
            return;
        }
    } else {
        reply_result(rt, AC_SIGN, result);
    }
    pv_err e;
    pv_err_clear(&e);
    if (lp_add(rt->m->cfg.loop, rt->chan_fd, EPOLLIN, on_chan, rt, &e) != PV_OK) {
        pv_error("app %s: %s", rt->cid, pv_err_msg(&e));
        close_fd(rt->m, &rt->chan_fd);
    }
}

/* AC_SIGN: the device's TLS key signs for an app granted DeviceAuthentication, at a bounded
 * rate. While the helper runs, the app's channel is not read (one request at a time, and
 * the answers stay in order). */
static void sign_for(app_rt *rt, const ac_msg *msg)
{
    am *m = rt->m;
    if (!rt->a->m.caps.device_authentication) {
        record_denied(rt, AC_SIGN, "device key not granted by the manifest");
        reply_result(rt, AC_SIGN, PV_APP_ERR_DENIED);
        return;
    }
    if (m->cfg.signer == NULL) {
        reply_result(rt, AC_SIGN, PV_APP_ERR_NOT_READY);
        return;
    }
    if (!bucket_take(&rt->sign_bucket, SIGN_RATE, SIGN_BURST)) {
        /* Logged once a run (an app looping on refusals must not flood the log); the count
         * goes to the log when the run ends. */
        if (rt->sign_refused++ == 0) {
            pv_warn("app %s: more signatures than its rate (a burst of %.0f, then %.1f a "
                    "second): refused",
                    rt->a->m.name, SIGN_BURST, SIGN_RATE);
        }
        reply_result(rt, AC_SIGN, PV_APP_ERR_LIMIT);
        return;
    }
    pv_err e;
    pv_err_clear(&e);
    int r = sg_start(m->cfg.signer, msg->digest, msg->digest_len, on_signed, rt, &rt->sign_job, &e);
    if (r == PV_ERR_LOCKED) {
        /* Every helper slot is busy with other apps: not this app's rate, so its token is
         * given back. */
        rt->sign_bucket.tokens += 1.0;
        reply_result(rt, AC_SIGN, PV_APP_ERR_LIMIT);
        return;
    }
    if (r != PV_OK) {
        pv_warn("app %s: cannot sign: %s", rt->a->m.name, pv_err_msg(&e));
        reply_result(rt, AC_SIGN, PV_APP_ERR_IO);
        return;
    }
    lp_del(m->cfg.loop, rt->chan_fd);
}

static void on_chan(void *ctx, int fd, uint32_t events)
{
    app_rt *rt = ctx;
    uint8_t buf[AC_MAX_MSG + 1];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            close_fd(rt->m, &rt->chan_fd);
        }
        return;
    }
    ac_msg msg;
    pv_err e;
    pv_err_clear(&e);
    if ((size_t)n > AC_MAX_MSG || ac_parse_from_app(buf, (size_t)n, &msg, &e) != PV_OK) {
        /* A malformed message is the app's bug or an attack: record it and stop listening. */
        record(rt, FL_POLICY, 0, 0, -1, "malformed app channel message");
        close_fd(rt->m, &rt->chan_fd);
        return;
    }
    const pv_capabilities *caps = &rt->a->m.caps;
    if (rt->draining && msg.type != AC_LOG) {
        return;
    }
    switch (msg.type) {
    case AC_LOG: {
        if (!log_allowed(rt)) {
            break;
        }
        int len = msg.text_len > AC_MAX_LOG ? AC_MAX_LOG : (int)msg.text_len;
        static const pv_log_level levels[] = {PV_LOG_DEBUG, PV_LOG_INFO, PV_LOG_WARN, PV_LOG_ERROR};
        pv_log(levels[msg.level & 3], "app %s: %.*s", rt->a->m.name, len, msg.text);
        break;
    }
    case AC_EVENTS_REGISTER: {
        /* docs/protocol/app-channel.md: UPDATE_READY needs SoftwareUpdateDeferral;
         * UPDATE_STARTED and DEVICE_AUTH need SystemEventNotifications. */
        uint32_t allowed = 0;
        if (caps->system_event_notifications) {
            allowed |= PV_APP_EVENT_UPDATE_STARTED | PV_APP_EVENT_DEVICE_AUTH;
        }
        if (caps->software_update_deferral) {
            allowed |= PV_APP_EVENT_UPDATE_READY;
        }
        if ((msg.mask & ~allowed) != 0) {
            record_denied(rt, AC_EVENTS_REGISTER, "events not granted by the manifest");
            reply_result(rt, AC_EVENTS_REGISTER, PV_APP_ERR_DENIED);
            break;
        }
        rt->event_mask = msg.mask;
        reply_result(rt, AC_EVENTS_REGISTER, PV_APP_OK);
        break;
    }
    case AC_DEFER: {
        pending_update *u = rt->upd;
        if (!caps->software_update_deferral) {
            record_denied(rt, AC_DEFER, "update deferral not granted by the manifest");
            reply_result(rt, AC_DEFER, PV_APP_ERR_DENIED);
        } else if (u == NULL || u->id != msg.event_id || u->agreed) {
            reply_result(rt, AC_DEFER, PV_APP_ERR_NOT_READY);
        } else if ((u->left_s = defer_left(u)) < msg.seconds) {
            reply_result(rt, AC_DEFER, PV_APP_ERR_LIMIT);
        } else {
            if (msg.seconds == 0) {
                u->agreed = true;
                u->due_ms = pv_monotonic_ms();
                pv_info("app %s: agrees to its update", rt->a->m.name);
            } else {
                u->left_s -= msg.seconds;
                u->due_ms = pv_monotonic_ms() + (int64_t)msg.seconds * 1000;
                u->deferring = true;
                pv_info("app %s: defers its update by %u s (%u s left)", rt->a->m.name, msg.seconds,
                        u->left_s);
            }
            reply_result(rt, AC_DEFER, PV_APP_OK);
            updates_rearm(rt->m);
        }
        break;
    }
    case AC_WATCHDOG_SET:
        rt->wd_ms = msg.timeout_ms;
        lp_timer_arm(rt->wd_fd, msg.timeout_ms);
        reply_result(rt, AC_WATCHDOG_SET, PV_APP_OK);
        break;
    case AC_WATCHDOG_KICK:
        if (rt->wd_ms != 0) {
            lp_timer_arm(rt->wd_fd, rt->wd_ms);
        }
        break;
    case AC_STATUS_QUERY: {
        char cert[4096];
        int cn = snprintf(cert, sizeof(cert), "%s/run/apps/%s/client.crt", rt->m->cfg.state_dir,
                          rt->cid);
        ac_msg st = {.type = AC_STATUS,
                     .ready = caps->device_authentication && cn > 0 && (size_t)cn < sizeof(cert) &&
                              access(cert, R_OK) == 0};
        uint64_t used = 0, total = 0;
        pv_err ignored;
        if (rt->storage != NULL && st_usage(rt->storage, &used, &total, &ignored) == PV_OK) {
            st.used_kb = used;
            st.quota_kb = total;
        }
        uint8_t out[AC_MAX_MSG];
        size_t len = ac_encode(&st, out);
        if (len > 0) {
            send(fd, out, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        } else {
            reply_result(rt, AC_STATUS_QUERY, PV_APP_ERR_IO);
        }
        break;
    }
    case AC_POWER: {
        static const char *const names[] = {NULL, "ForceReboot", "ForcePowerDown",
                                            "SetPowerProfile"};
        bool granted = false;
        for (size_t i = 0; msg.action >= 1 && msg.action <= 3 && i < caps->power_controls.n; i++) {
            granted = granted || strcmp(caps->power_controls.v[i], names[msg.action]) == 0;
        }
        if (!granted) {
            record_denied(rt, AC_POWER, "power control not granted by the manifest");
            reply_result(rt, AC_POWER, PV_APP_ERR_DENIED);
        } else if (rt->m->cfg.power == NULL ||
                   rt->m->cfg.power(rt->m->cfg.power_ctx, msg.action, false) != PV_OK) {
            /* What the board cannot do (--power none, no cpufreq) is refused, not faked. */
            pv_warn("app %s asks for %s: not available on this device", rt->a->m.name,
                    names[msg.action]);
            reply_result(rt, AC_POWER, PV_APP_ERR_NOT_READY);
        } else {
            /* The answer first, as the protocol says: a reboot stops this app too. */
            pv_warn("app %s asks for %s", rt->a->m.name, names[msg.action]);
            reply_result(rt, AC_POWER, PV_APP_OK);
            rt->m->cfg.power(rt->m->cfg.power_ctx, msg.action, true);
        }
        break;
    }
    case AC_SIGN:
        sign_for(rt, &msg);
        break;
    default:
        record(rt, FL_POLICY, 0, 0, -1, "unexpected app channel message");
        close_fd(rt->m, &rt->chan_fd);
        break;
    }
}

static void on_listener(void *ctx, int fd, uint32_t events)
{
    app_rt *rt = ctx;
    int nr = -1;
    pid_t pid = 0;
    pv_err e;
    pv_err_clear(&e);
    int r = sb_seccomp_take(fd, &nr, &pid, &e);
    if (r == PV_OK) {
        rt->seccomp_hit = true;
        record(rt, FL_SECCOMP, 0, 0, nr, NULL);
        sb_signal(&rt->proc, SIGKILL);
        return;
    }
    if (r == PV_ERR_NOT_FOUND && (events & EPOLLIN) != 0 && (events & (EPOLLHUP | EPOLLERR)) == 0 &&
        rt->live) {
        /* A notification came and went before it could be read: the app interrupted its own
         * forbidden call with a signal. The call did not run, and the attempt is a violation
         * all the same (its number is lost). */
        rt->seccomp_hit = true;
        record(rt, FL_SECCOMP, 0, 0, -1, "withdrawn by a signal");
        sb_signal(&rt->proc, SIGKILL);
        return;
    }
    if (r != PV_ERR_NOT_FOUND || (events & (EPOLLHUP | EPOLLERR)) != 0) {
        close_fd(rt->m, &rt->listener);
    }
}

static void on_status(void *ctx, int fd, uint32_t events)
{
    app_rt *rt = ctx;
    for (;;) {
        sb_event ev;
        pv_err e;
        pv_err_clear(&e);
        int r = sb_read_event(fd, &ev, &e);
        if (r == PV_ERR_NOT_FOUND) {
            return;
        }
        if (r != PV_OK) {
            if (r != PV_ERR_TRUNCATED) {
                pv_warn("app %s: status socket: %s", rt->cid, pv_err_msg(&e));
            }
            lp_del(rt->m->cfg.loop, fd);
            return;
        }
        switch (ev.kind) {
        case SB_EV_LISTENER:
            if (rt->listener >= 0) {
                close(ev.fd);
                break;
            }
            rt->listener = ev.fd;
            if (lp_add(rt->m->cfg.loop, ev.fd, EPOLLIN, on_listener, rt, &e) != PV_OK) {
                pv_error("app %s: %s", rt->cid, pv_err_msg(&e));
                sb_signal(&rt->proc, SIGKILL);
            }
            break;
        case SB_EV_RUNNING:
            pv_info("app %s (%s) running, pid %d", rt->a->m.name, rt->cid, (int)rt->proc.pid);
            break;
        case SB_EV_SETUP_FAILED:
            rt->setup_failed = true;
            record(rt, FL_SETUP, 0, ev.err, -1, ev.step);
            break;
        case SB_EV_EXITED:
            rt->app_status = ev.status;
            rt->have_app_status = true;
            break;
        }
    }
}

/* Counts a restart and schedules it after the backoff, which then doubles (bounded). */
static void restart_later(app_rt *rt)
{
    rt->restarts++;
    rt->state = ST_BACKOFF;
    lp_timer_arm(rt->timer_fd, rt->backoff_ms == 0 ? 1 : rt->backoff_ms);
    uint64_t next = (uint64_t)rt->backoff_ms * 2;
    rt->backoff_ms = next > AM_MAX_BACKOFF_MS ? AM_MAX_BACKOFF_MS : (uint32_t)next;
}

static void set_last_exit(app_rt *rt, const char *how, int value)
{
    json_decref(rt->last_exit);
    rt->last_exit = json_pack("{s:s, s:i}", "how", how, "value", value);
}

/* The init has exited: collect everything, classify, release the run, decide what next. */
/* block: wait for the init to exit (it has been sent SIGKILL); else only collect an init
 * that has exited already. */
static void reap(app_rt *rt, bool block)
{
    am *m = rt->m;
    int init_status = 0;
    pid_t w;
    do {
        w = waitpid(rt->proc.pid, &init_status, block ? 0 : WNOHANG);
    } while (w < 0 && errno == EINTR);
    if (w <= 0) {
        return; /* not yet */
    }
    on_status(rt, rt->proc.status_fd, EPOLLIN); /* what the init said before it went */
    int status = rt->have_app_status ? rt->app_status : init_status;
    uint64_t oom_after = rt->oom_before;
    pv_err e;
    pv_err_clear(&e);
    if (rt->cg != NULL) {
        cg_oom_kills(rt->cg, &oom_after, &e);
    }
    if (rt->stop_requested) {
        /* asked to stop: no failure */
    } else if (rt->seccomp_hit || rt->watchdog_fired || rt->setup_failed) {
        /* recorded when it happened */
    } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && oom_after > rt->oom_before) {
        record(rt, FL_OOM, SIGKILL, 0, -1, NULL);
    } else if (WIFSIGNALED(status)) {
        record(rt, FL_CRASH, WTERMSIG(status), 0, -1, NULL);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        record(rt, FL_EXIT, 0, WEXITSTATUS(status), -1, NULL);
    }
    nc_app_stats net = rt->net_before;
    if (rt->nc != NULL && nc_app_stats_get(m->cfg.net, rt->nc, &net, &e) == PV_OK &&
        (net.dropped_packets > rt->net_before.dropped_packets ||
         net.refused_queries > rt->net_before.refused_queries)) {
        /* What the network policy refused during the run: one event per run (a fixed
         * detail, so repeats aggregate); the counts go to the log. */
        uint64_t pk = net.dropped_packets - rt->net_before.dropped_packets;
        uint64_t nm = net.refused_queries - rt->net_before.refused_queries;
        pv_warn("app %s: the network policy refused %llu packets and %llu names", rt->cid,
                (unsigned long long)pk, (unsigned long long)nm);
        record(rt, FL_POLICY, 0, 0, -1,
               pk > 0 ? "network: packets refused" : "network: names refused");
    }
    if (WIFSIGNALED(status)) {
        set_last_exit(rt, "signal", WTERMSIG(status));
    } else {
        set_last_exit(rt, "exit", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    pv_info("app %s (%s) ended (%s %d)", rt->a->m.name, rt->cid,
            WIFSIGNALED(status) ? "signal" : "exit",
            WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    close_fd(m, &rt->listener);
    if (rt->sign_job != NULL) {
        sg_cancel(m->cfg.signer, rt->sign_job);
        rt->sign_job = NULL;
    }
    if (rt->sign_refused > 0) {
        pv_warn("app %s: %llu signatures refused over its rate in this run", rt->a->m.name,
                (unsigned long long)rt->sign_refused);
        rt->sign_refused = 0;
    }
    /* What the app sent before it went (its last log lines) is read before the channel
     * closes; bounded, as everything from an app. */
    uint8_t peek;
    rt->draining = true; /* logs only: a finished run asks for nothing */
    for (int i = 0;
         i < 256 && rt->chan_fd >= 0 && recv(rt->chan_fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
         i++) {
        on_chan(rt, rt->chan_fd, EPOLLIN);
    }
    rt->draining = false;
    close_fd(m, &rt->chan_fd);
    if (rt->log_fd >= 0) {
        on_log(rt, rt->log_fd, EPOLLIN);
        flush_line(rt);
        close_fd(m, &rt->log_fd);
    }
    lp_del(m->cfg.loop, rt->proc.pidfd);
    lp_del(m->cfg.loop, rt->proc.status_fd);
    sb_proc_close(&rt->proc);
    rt->live = false;
    if (cg_destroy(rt->cg, &e) != PV_OK) {
        pv_warn("app %s: %s", rt->cid, pv_err_msg(&e));
    }
    rt->cg = NULL;
    rt->wd_ms = 0;
    lp_timer_arm(rt->wd_fd, 0);
    lp_timer_arm(rt->timer_fd, 0);
    if (rt->upd != NULL) {
        /* Nobody left to defer it: the update goes ahead instead of a restart. */
        rt->upd->due_ms = pv_monotonic_ms();
        updates_rearm(m);
        rt->state = ST_STOPPED;
        return;
    }
    if (!rt->wanted) {
        rt->state = ST_STOPPED;
        return;
    }
    int64_t ran = pv_monotonic_ms() - rt->started_ms;
    if (ran >= (int64_t)AM_STABLE_MS) {
        rt->backoff_ms = m->cfg.restart_min_ms;
    }
    restart_later(rt);
}

static void on_pidfd(void *ctx, int fd, uint32_t events)
{
    reap(ctx, false);
}

/* Copies a device certificate file for the app (owned by it, 0400, replaced atomically so
 * an app reading it sees the old or the new file), so that it can read it and nothing else
 * of STATE/certs. Missing source: not ready yet, the copy goes too. */
static int copy_device_file(app_rt *rt, const char *dir, const char *name, pv_err *e)
{
    char src[4096], dst[4096];
    uint8_t *data = NULL;
    size_t len = 0;
    pv_afile f = {.fd = -1};
    int ns = snprintf(src, sizeof(src), "%s/certs/%s", rt->m->cfg.state_dir, name);
    int nd = snprintf(dst, sizeof(dst), "%s/%s", dir, name);
    if (ns < 0 || (size_t)ns >= sizeof(src) || nd < 0 || (size_t)nd >= sizeof(dst)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "state directory path too long");
    }
    int r = pv_fs_read_file(src, 64 * 1024, &data, &len, e);
    if (r == PV_ERR_NOT_FOUND) {
        unlink(dst);
        return PV_OK;
    }
    if (r != PV_OK) {
        return r;
    }
    if ((r = pv_afile_open(&f, dst, 0400, true, e)) == PV_OK) {
        if (fchown(f.fd, rt->a->uid, rt->a->uid) != 0 ||
            pv_fs_write_all(f.fd, data, len) != PV_OK) {
            r = pv_err_sys(e, PV_ERR_IO, errno, "%s", dst);
            pv_afile_abort(&f);
        } else {
            r = pv_afile_commit(&f, e);
        }
    }
    explicit_bzero(data, len);
    free(data);
    return r;
}

/* STATE/run/apps/<cid>/: the app's copies of the device certificate, chain and key. */
static int device_dir(app_rt *rt, char *out, size_t size, pv_err *e)
{
    char run_apps[4096];
    int n1 = snprintf(run_apps, sizeof(run_apps), "%s/run/apps", rt->m->cfg.state_dir);
    int n2 = snprintf(out, size, "%s/run/apps/%s", rt->m->cfg.state_dir, rt->cid);
    if (n1 < 0 || (size_t)n1 >= sizeof(run_apps) || n2 < 0 || (size_t)n2 >= size) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "state directory path too long");
    }
    if ((mkdir(run_apps, 0711) != 0 && errno != EEXIST) ||
        (mkdir(out, 0500) != 0 && errno != EEXIST) || chown(out, rt->a->uid, rt->a->uid) != 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s", out);
    }
    return PV_OK;
}

/* The certificate and its chain, never the key: an app signs through the runtime (AC_SIGN),
 * so the key stays in the TPM or in STATE/certs on every backend. */
static const char *const device_files[] = {"client.crt", "client-chain.crt"};

/* Refreshes the app's copies from STATE/certs. */
static int refresh_device_files(app_rt *rt, const char *dir, pv_err *e)
{
    for (size_t i = 0; i < 2; i++) {
        int r = copy_device_file(rt, dir, device_files[i], e);
        if (r != PV_OK) {
            return r;
        }
    }
    return PV_OK;
}

typedef struct run_buf {
    char env[MAX_ENV][512];
    char *envp[MAX_ENV + 1];
    char *argv[PV_MAX_ARGS + 2];
    char resolv[256];
    char passwd[256];
    char group[128];
    char dev_dir[4096];
    sb_bind binds[SB_MAX_BINDS];
    sb_file etc[SB_MAX_ETC_FILES];
} run_buf;

static void add_env(run_buf *b, size_t *n, const char *name, const char *v)
{
    if (*n < MAX_ENV) {
        snprintf(b->env[*n], sizeof(b->env[*n]), "%s=%s", name, v);
        b->envp[*n] = b->env[*n];
        (*n)++;
        b->envp[*n] = NULL;
    }
}

/* The directory of copies is bound read-only at /run/pavise/device (the directory, not the
 * files, so that a renewed certificate replaced in it is what the app reads next). */
static int prepare_device_auth(app_rt *rt, run_buf *b, size_t *nb, size_t *ne, pv_err *e)
{
    static const char *const vars[] = {"PAVISE_DEVICE_CERT", "PAVISE_DEVICE_CHAIN"};
    int r = device_dir(rt, b->dev_dir, sizeof(b->dev_dir), e);
    if (r != PV_OK || (r = refresh_device_files(rt, b->dev_dir, e)) != PV_OK) {
        return r;
    }
    for (size_t i = 0; i < 2; i++) {
        char inside[128];
        snprintf(inside, sizeof(inside), "/run/pavise/device/%s", device_files[i]);
        add_env(b, ne, vars[i], inside);
    }
    if (*nb < SB_MAX_BINDS) {
        b->binds[(*nb)++] = (sb_bind){.src = b->dev_dir, .dst = strdup("/run/pavise/device")};
    }
    return PV_OK;
}

static void free_binds(run_buf *b, size_t nb)
{
    for (size_t i = 0; i < nb; i++) {
        if (!b->binds[i].device) {
            free((char *)b->binds[i].dst);
        }
    }
}

/* A declared peripheral must be one the board allows and a character device; the app
 * that holds it (appstore makes it the only one) gets it as its own: owner its uid, mode
 * 0600, so that it can open it in its compartment and no other app uid can. */
static int grant_peripherals(app_rt *rt, pv_err *e)
{
    const pv_strlist *want = &rt->a->m.caps.peripherals;
    for (size_t i = 0; i < want->n; i++) {
        const char *dev = want->v[i];
        bool allowed = false;
        for (const char *const *p = rt->m->cfg.peripherals; p != NULL && *p != NULL; p++) {
            allowed = allowed || strcmp(*p, dev) == 0;
        }
        if (!allowed) {
            return pv_err_set(e, PV_ERR_INVALID_ARG,
                              "peripheral %s is not one this board lets apps have (--peripherals)",
                              dev);
        }
        /* Through one descriptor of the node itself (never a link), so what is checked is
         * what is changed. */
        int fd = open(dev, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode)) {
            if (fd >= 0) {
                close(fd);
            }
            return pv_err_set(e, PV_ERR_NOT_FOUND, "peripheral %s is not a character device here",
                              dev);
        }
        if (i < PV_MAX_PERIPHERALS && !rt->periph_saved[i]) {
            rt->periph_orig[i] = st;
            rt->periph_saved[i] = true;
        }
        char proc[64];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        int err = 0;
        if ((st.st_uid != rt->a->uid || st.st_gid != rt->a->uid) &&
            fchownat(fd, "", rt->a->uid, rt->a->uid, AT_EMPTY_PATH) != 0) {
            err = errno;
        } else if ((st.st_mode & 07777) != 0600 && chmod(proc, 0600) != 0) {
            err = errno;
        }
        close(fd);
        if (err != 0) {
            return pv_err_sys(e, PV_ERR_IO, err, "%s", dev);
        }
    }
    return PV_OK;
}

/* Gives the component's peripherals back their owner and mode when it goes. */
static void return_peripherals(app_rt *rt)
{
    const pv_strlist *held = &rt->a->m.caps.peripherals;
    for (size_t i = 0; i < held->n && i < PV_MAX_PERIPHERALS; i++) {
        struct stat st;
        const struct stat *o = &rt->periph_orig[i];
        if (!rt->periph_saved[i] || lstat(held->v[i], &st) != 0 || !S_ISCHR(st.st_mode) ||
            st.st_rdev != o->st_rdev) {
            continue;
        }
        if (chown(held->v[i], o->st_uid, o->st_gid) != 0 ||
            chmod(held->v[i], o->st_mode & 07777) != 0) {
            pv_warn("peripheral %s: cannot give it back: %s", held->v[i], strerror(errno));
        }
        rt->periph_saved[i] = false;
    }
}

static int start_run(app_rt *rt, pv_err *e)
{
    am *m = rt->m;
    const pv_manifest *man = &rt->a->m;
    int logp[2] = {-1, -1}, chan[2] = {-1, -1};
    run_buf *b = calloc(1, sizeof(*b));
    size_t nb = 0, ne = 0;
    int r = PV_ERR_NOMEM;
    if (b == NULL) {
        return pv_err_set(e, r, "out of memory");
    }
    /* No network entry yet (pavise-netd was down when the component was added): none, no
     * start; the restart backoff tries again. An app never runs without its rules. */
    if (m->cfg.net != NULL && rt->nc == NULL &&
        (r = nc_app_add(m->cfg.net, rt->a->uid, rt->a->index, &man->caps, &rt->nc, e)) != PV_OK) {
        goto out;
    }
    if (!rt->libs_done) {
        if ((r = sb_elf_libs(rt->a->image_dir, man->entry_point, &rt->libs, e)) != PV_OK) {
            pv_err_wrap(e, r, "entry point %s", man->entry_point);
            goto out;
        }
        rt->libs_done = true;
    }
    if (man->caps.mutable_storage_kb != 0 && rt->storage == NULL &&
        (r = st_prepare(m->cfg.state_dir, rt->cid, man->caps.mutable_storage_kb, rt->a->uid,
                        rt->a->uid, &rt->storage, e)) != PV_OK) {
        goto out;
    }
    uint64_t mem_kb =
        man->caps.memory_limit_kb != 0 ? man->caps.memory_limit_kb : AM_DEFAULT_MEMORY_KB;
    if ((r = cg_create(m->cfg.cgroups, rt->cid, mem_kb * 1024, AM_DEFAULT_PIDS, &rt->cg, e)) !=
        PV_OK) {
        goto out;
    }
    rt->oom_before = 0;
    cg_oom_kills(rt->cg, &rt->oom_before, e);
    memset(&rt->net_before, 0, sizeof(rt->net_before));
    if (rt->nc != NULL) {
        pv_err ignored;
        nc_app_stats_get(m->cfg.net, rt->nc, &rt->net_before, &ignored);
    }
    /* environment, argv, /etc */
    add_env(b, &ne, "PAVISE_FD", "3");
    add_env(b, &ne, "PAVISE_APP_NAME", man->name);
    add_env(b, &ne, "PAVISE_COMPONENT_ID", rt->cid);
    add_env(b, &ne, "TMPDIR", "/tmp");
    add_env(b, &ne, "LANG", "C.UTF-8");
    if (rt->storage != NULL) {
        add_env(b, &ne, "PAVISE_STORAGE", SB_STORAGE_DIR);
        add_env(b, &ne, "HOME", SB_STORAGE_DIR);
    } else {
        add_env(b, &ne, "HOME", "/tmp");
    }
    if (man->caps.device_authentication && (r = prepare_device_auth(rt, b, &nb, &ne, e)) != PV_OK) {
        goto out;
    }
    b->argv[0] = man->entry_point;
    for (size_t i = 0; i < man->args.n && i < PV_MAX_ARGS; i++) {
        b->argv[i + 1] = man->args.v[i];
    }
    if ((r = grant_peripherals(rt, e)) != PV_OK) {
        goto out;
    }
    for (size_t i = 0; i < man->caps.peripherals.n && nb < SB_MAX_BINDS; i++) {
        b->binds[nb++] =
            (sb_bind){.src = man->caps.peripherals.v[i], .writable = true, .device = true};
    }
    size_t nf = 0;
    snprintf(b->resolv, sizeof(b->resolv), "nameserver %s\noptions timeout:2 attempts:2\n",
             rt->nc != NULL ? nc_app_stub_address(rt->nc) : "127.0.0.1");
    snprintf(b->passwd, sizeof(b->passwd), "app:x:%u:%u:%s:%s:/nonexistent\n", rt->a->uid,
             rt->a->uid, man->name, rt->storage != NULL ? SB_STORAGE_DIR : "/tmp");
    snprintf(b->group, sizeof(b->group), "app:x:%u:\n", rt->a->uid);
    b->etc[nf++] = (sb_file){"resolv.conf", b->resolv};
    b->etc[nf++] = (sb_file){"hosts", "127.0.0.1 localhost\n::1 localhost\n"};
    b->etc[nf++] = (sb_file){"passwd", b->passwd};
    b->etc[nf++] = (sb_file){"group", b->group};
    b->etc[nf++] = (sb_file){"nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n"};
    if (pipe2(logp, O_CLOEXEC) != 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "pipe");
        goto out;
    }
    sb_spec spec = {
        .name = rt->cid,
        .uid = rt->a->uid,
        .gid = rt->a->uid,
        .image_dir = rt->a->image_dir,
        .entry_point = man->entry_point,
        .argv = b->argv,
        .envp = b->envp,
        .storage_dir = rt->storage,
        .binds = b->binds,
        .n_binds = nb,
        .etc = b->etc,
        .n_etc = nf,
        .libs = &rt->libs,
        .bind_ports = man->caps.tcp_server_ports,
        .n_bind_ports = man->caps.n_tcp_server_ports,
        .nproc = AM_DEFAULT_PIDS,
        .nofile = AM_DEFAULT_NOFILE,
        .filter = m->cfg.filter,
        .cgroup = rt->cg,
        .stdout_fd = logp[1],
        .stderr_fd = logp[1],
        .chan_fd = chan[1],
    };
    rt->seccomp_hit = rt->watchdog_fired = rt->setup_failed = rt->stop_requested = false;
    rt->policy_seen = 0;
    rt->have_app_status = false;
    if ((r = sb_start(&spec, &rt->proc, e)) != PV_OK) {
        goto out;
    }
    rt->live = true;
    rt->started_ms = pv_monotonic_ms();
    rt->state = ST_RUNNING;
    rt->log_fd = logp[0];
    rt->chan_fd = chan[0];
    logp[0] = chan[0] = -1;
    fcntl(rt->log_fd, F_SETFL, O_NONBLOCK);
    pv_err e2;
    pv_err_clear(&e2);
    if (lp_add(m->cfg.loop, rt->proc.pidfd, EPOLLIN, on_pidfd, rt, &e2) != PV_OK ||
        lp_add(m->cfg.loop, rt->proc.status_fd, EPOLLIN, on_status, rt, &e2) != PV_OK ||
        lp_add(m->cfg.loop, rt->log_fd, EPOLLIN, on_log, rt, &e2) != PV_OK ||
        lp_add(m->cfg.loop, rt->chan_fd, EPOLLIN, on_chan, rt, &e2) != PV_OK) {
        /* Cannot watch it: kill it; the pidfd (if registered) or the next reap cleans up. */
        pv_error("app %s: %s", rt->cid, pv_err_msg(&e2));
        sb_signal(&rt->proc, SIGKILL);
    }
    r = PV_OK;
out:
    if (r != PV_OK && rt->cg != NULL) {
        pv_err ignored;
        cg_destroy(rt->cg, &ignored);
        rt->cg = NULL;
    }
    for (int i = 0; i < 2; i++) {
        if (logp[i] >= 0) {
            close(logp[i]);
        }
        if (chan[i] >= 0) {
            close(chan[i]);
        }
    }
    if (b != NULL) {
        free_binds(b, nb);
        free(b);
    }
    return r;
}

static void begin(app_rt *rt)
{
    pv_err e;
    pv_err_clear(&e);
    if (start_run(rt, &e) != PV_OK) {
        record(rt, FL_SETUP, 0, 0, -1, "start");
        pv_error("app %s (%s): cannot start: %s", rt->a->m.name, rt->cid, pv_err_msg(&e));
        restart_later(rt);
    }
}

static void on_timer(void *ctx, int fd, uint32_t events)
{
    app_rt *rt = ctx;
    uint64_t n;
    if (read(fd, &n, sizeof(n)) != sizeof(n)) {
        return;
    }
    if (rt->state == ST_BACKOFF && rt->wanted) {
        begin(rt);
    } else if (rt->state == ST_STOPPING && rt->live) {
        pv_warn("app %s (%s) did not stop in time: SIGKILL", rt->a->m.name, rt->cid);
        sb_signal(&rt->proc, SIGKILL);
    }
}

static void on_watchdog(void *ctx, int fd, uint32_t events)
{
    app_rt *rt = ctx;
    uint64_t n;
    if (read(fd, &n, sizeof(n)) != sizeof(n) || !rt->live || rt->wd_ms == 0) {
        return;
    }
    if (rt->sign_job != NULL) {
        /* Its kicks wait in the channel while the runtime signs for it (bounded by
         * SG_TIMEOUT_MS): not the app's delay. */
        lp_timer_arm(rt->wd_fd, rt->wd_ms);
        return;
    }
    /* Kicks that came while the loop was busy elsewhere (pavise-store installing a large
     * package) are read first: then the timer fired late, not the app. */
    uint8_t peek;
    for (int i = 0; i < 256 && rt->chan_fd >= 0 && rt->sign_job == NULL &&
                    recv(rt->chan_fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
         i++) {
        on_chan(rt, rt->chan_fd, EPOLLIN);
    }
    struct itimerspec left;
    if (rt->wd_ms == 0 || rt->sign_job != NULL ||
        (timerfd_gettime(fd, &left) == 0 &&
         (left.it_value.tv_sec != 0 || left.it_value.tv_nsec != 0))) {
        return; /* kicked, disarmed, or waiting for a signature */
    }
    rt->watchdog_fired = true;
    record(rt, FL_WATCHDOG, SIGKILL, 0, -1, NULL);
    sb_signal(&rt->proc, SIGKILL);
}

static void stop_run(app_rt *rt)
{
    rt->wanted = false;
    if (rt->state == ST_BACKOFF) {
        lp_timer_arm(rt->timer_fd, 0);
        rt->state = ST_STOPPED;
    }
    if (rt->live && rt->state != ST_STOPPING) {
        rt->stop_requested = true;
        rt->state = ST_STOPPING;
        sb_signal(&rt->proc, SIGTERM);
        lp_timer_arm(rt->timer_fd, rt->m->cfg.stop_grace_ms);
    }
}

/* ---- the set of apps ---- */

static void rt_free(am *m, app_rt *rt)
{
    if (rt == NULL) {
        return;
    }
    if (rt->live) {
        rt->wanted = false;
        rt->stop_requested = true;
        sb_signal(&rt->proc, SIGKILL);
        reap(rt, true);
    }
    if (rt->sign_job != NULL) {
        sg_cancel(m->cfg.signer, rt->sign_job);
    }
    lp_timer_free(m->cfg.loop, rt->timer_fd);
    lp_timer_free(m->cfg.loop, rt->wd_fd);
    return_peripherals(rt);
    if (m->cfg.net != NULL) {
        nc_app_remove(m->cfg.net, rt->nc);
    }
    if (rt->storage != NULL) {
        pv_err ignored;
        st_release(m->cfg.state_dir, rt->cid, &ignored);
        free(rt->storage);
    }
    sb_libs_free(&rt->libs);
    json_decref(rt->last_exit);
    free(rt->upd); /* its next entry is the store's */
    if (rt->own_a) {
        as_app_free(rt->a);
    }
    free(rt);
}

static int rt_add(am *m, as_app *a, app_rt **out, pv_err *e)
{
    *out = NULL;
    if (m->n >= AS_MAX_APPS) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "too many apps");
    }
    app_rt *rt = calloc(1, sizeof(*rt));
    if (rt == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    rt->m = m;
    rt->a = a;
    memcpy(rt->cid, a->cid, sizeof(rt->cid));
    rt->listener = rt->log_fd = rt->chan_fd = rt->timer_fd = rt->wd_fd = -1;
    rt->proc.pidfd = rt->proc.status_fd = -1;
    rt->backoff_ms = m->cfg.restart_min_ms;
    bucket_fill(&rt->log_bucket, LOG_BURST);
    bucket_fill(&rt->sign_bucket, SIGN_BURST);
    int r = lp_timer_new(m->cfg.loop, on_timer, rt, &rt->timer_fd, e);
    if (r == PV_OK) {
        r = lp_timer_new(m->cfg.loop, on_watchdog, rt, &rt->wd_fd, e);
    }
    if (r != PV_OK) {
        rt_free(m, rt);
        return r;
    }
    /* A copy of the device key an earlier version of pavised made for it goes, whatever
     * the component is granted now. */
    char old_key[4096];
    int kn =
        snprintf(old_key, sizeof(old_key), "%s/run/apps/%s/tls.key", m->cfg.state_dir, rt->cid);
    if (kn > 0 && (size_t)kn < sizeof(old_key)) {
        unlink(old_key);
    }
    if (m->cfg.net != NULL) {
        /* Without its entry the component is still managed (stopped, removable, updated);
         * start_run adds the entry before each start until one succeeds. */
        pv_err ne;
        pv_err_clear(&ne);
        if (nc_app_add(m->cfg.net, a->uid, a->index, &a->m.caps, &rt->nc, &ne) != PV_OK) {
            pv_error("app %s (%s): no network entry yet, it will not start without one: %s",
                     a->m.name, rt->cid, pv_err_msg(&ne));
        }
    }
    m->apps[m->n++] = rt;
    *out = rt;
    return PV_OK;
}

int am_new(const am_config *cfg, am **out, pv_err *e)
{
    *out = NULL;
    am *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    m->cfg = *cfg;
    if (m->cfg.restart_min_ms == 0) {
        m->cfg.restart_min_ms = 1000;
    }
    if (m->cfg.stop_grace_ms == 0) {
        m->cfg.stop_grace_ms = 5000;
    }
    m->upd_timer = -1;
    int tr = lp_timer_new(m->cfg.loop, on_updates, m, &m->upd_timer, e);
    if (tr != PV_OK) {
        free(m);
        return tr;
    }
    for (size_t i = 0; i < as_count(cfg->store); i++) {
        app_rt *rt = NULL;
        int r = rt_add(m, as_get(cfg->store, i), &rt, e);
        if (r != PV_OK) {
            am_free(m);
            return r;
        }
    }
    *out = m;
    return PV_OK;
}

void am_free(am *m)
{
    if (m == NULL) {
        return;
    }
    while (m->n > 0) {
        rt_free(m, m->apps[--m->n]); /* out of the set first: rt_free may look at the rest */
    }
    if (m->upd_timer >= 0) {
        lp_timer_free(m->cfg.loop, m->upd_timer);
    }
    free(m);
}

void am_start_all(am *m)
{
    for (size_t i = 0; i < m->n; i++) {
        app_rt *rt = m->apps[i];
        if (rt->state == ST_STOPPED) {
            rt->wanted = true;
            begin(rt);
        }
    }
}

int am_start(am *m, const char *cid, pv_err *e)
{
    app_rt *rt = find_rt(m, cid);
    if (rt == NULL) {
        return pv_err_set(e, PV_ERR_NOT_FOUND, "component %s is not installed", cid);
    }
    rt->wanted = true;
    if (rt->state == ST_STOPPED) {
        rt->backoff_ms = m->cfg.restart_min_ms;
        begin(rt);
    } else if (rt->state == ST_BACKOFF) {
        lp_timer_arm(rt->timer_fd, 0);
        begin(rt);
    }
    return PV_OK;
}

int am_stop(am *m, const char *cid, pv_err *e)
{
    app_rt *rt = find_rt(m, cid);
    if (rt == NULL) {
        return pv_err_set(e, PV_ERR_NOT_FOUND, "component %s is not installed", cid);
    }
    stop_run(rt);
    return PV_OK;
}

void am_stop_all(am *m)
{
    m->stopping = true;
    for (size_t i = 0; i < m->n; i++) {
        stop_run(m->apps[i]);
    }
}

bool am_all_stopped(const am *m)
{
    for (size_t i = 0; i < m->n; i++) {
        if (m->apps[i]->live) {
            return false;
        }
    }
    return true;
}

/* Stops a running app now, for a replacement or a removal: SIGTERM, up to the grace period
 * for its init to exit (the event loop waits: installs and removals are rare and their
 * caller waits anyway), then SIGKILL. */
static void stop_now(app_rt *rt)
{
    if (!rt->live) {
        return;
    }
    rt->wanted = false;
    rt->stop_requested = true;
    rt->state = ST_STOPPING;
    sb_signal(&rt->proc, SIGTERM);
    struct pollfd p = {.fd = rt->proc.pidfd, .events = POLLIN};
    int64_t deadline = pv_monotonic_ms() + rt->m->cfg.stop_grace_ms;
    int64_t left;
    while ((left = deadline - pv_monotonic_ms()) > 0 && poll(&p, 1, (int)left) < 0 &&
           errno == EINTR) {
    }
    if (poll(&p, 1, 0) != 1) {
        pv_warn("app %s (%s) did not stop in time: SIGKILL", rt->a->m.name, rt->cid);
        sb_signal(&rt->proc, SIGKILL);
    }
    reap(rt, true);
}

int am_forget(am *m, const char *cid, pv_err *e)
{
    for (size_t i = 0; i < m->n; i++) {
        if (strcasecmp(m->apps[i]->cid, cid) == 0) {
            app_rt *rt = m->apps[i];
            m->apps[i] = m->apps[--m->n];
            stop_now(rt);
            /* Its copies of the device key go with it (a replacement makes new ones). */
            char dir[4096];
            pv_err ignored;
            pv_err_clear(&ignored);
            if (snprintf(dir, sizeof(dir), "%s/run/apps/%s", m->cfg.state_dir, rt->cid) <
                (int)sizeof(dir)) {
                pv_fs_remove_tree(dir, &ignored);
            }
            rt_free(m, rt);
            return PV_OK;
        }
    }
    return pv_err_set(e, PV_ERR_NOT_FOUND, "component %s is not installed", cid);
}

/* Replaces the component's run with a new entry now: update-started to an app that asked
 * for it, the old run stopped and forgotten (its entry freed when it is the manager's), the
 * new one started. */
static int update_apply(am *m, app_rt *rt, as_app *next, bool start, pv_err *e)
{
    if (rt != NULL) {
        if (rt->live && (rt->event_mask & PV_APP_EVENT_UPDATE_STARTED) != 0) {
            send_event(rt, PV_APP_EVENT_UPDATE_STARTED, ++m->next_event_id, 0);
        }
        pv_err ignored;
        pv_err_clear(&ignored);
        am_forget(m, rt->cid, &ignored); /* the old image's run */
    }
    app_rt *nrt = NULL;
    int r = rt_add(m, next, &nrt, e);
    if (r != PV_OK) {
        return r;
    }
    if (start) {
        nrt->wanted = true;
        begin(nrt);
    }
    return PV_OK;
}

int am_installed(am *m, as_app *a, as_app *old, bool *pending, pv_err *e)
{
    app_rt *rt = find_rt(m, a->cid);
    *pending = false;
    if (rt == NULL) {
        as_app_free(old);
        return update_apply(m, NULL, a, !m->stopping, e);
    }
    if (old != NULL && old != rt->a) {
        /* old was an update still waiting for this app: a newer one takes its place, with
         * what is left of the same deferral. */
        as_app_free(old);
    } else if (old == rt->a) {
        rt->own_a = true;
    }
    if (rt->upd != NULL) {
        rt->upd->next = a;
        *pending = true;
        return PV_OK;
    }
    if (rt->live && rt->chan_fd >= 0 && (rt->event_mask & PV_APP_EVENT_UPDATE_READY) != 0 &&
        rt->a->m.caps.software_update_deferral) {
        pending_update *u = calloc(1, sizeof(*u));
        if (u == NULL) {
            return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        }
        u->id = ++m->next_event_id;
        u->next = a;
        u->left_s = AM_MAX_DEFER_S;
        u->due_ms = pv_monotonic_ms() + AM_ANSWER_MS;
        u->deadline_ms = pv_monotonic_ms() + (int64_t)AM_MAX_DEFER_S * 1000;
        rt->upd = u;
        send_event(rt, PV_APP_EVENT_UPDATE_READY, u->id, u->left_s);
        pv_info("app %s: update to %s staged; the app may defer it", rt->a->m.name, a->m.version);
        updates_rearm(m);
        *pending = true;
        return PV_OK;
    }
    return update_apply(m, rt, a, !m->stopping, e);
}

static void send_event(app_rt *rt, uint32_t kind, uint64_t id, uint32_t seconds_left)
{
    uint8_t out[AC_MAX_MSG];
    ac_msg ev = {.type = AC_EVENT, .kind = kind, .event_id = id, .seconds = seconds_left};
    size_t len = ac_encode(&ev, out);
    if (len > 0 && rt->chan_fd >= 0) {
        send(rt->chan_fd, out, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
}

/* Arms the manager's timer for the earliest pending update. */
static void updates_rearm(am *m)
{
    int64_t due = INT64_MAX, now = pv_monotonic_ms();
    for (size_t i = 0; i < m->n; i++) {
        if (m->apps[i]->upd != NULL && m->apps[i]->upd->due_ms < due) {
            due = m->apps[i]->upd->due_ms;
        }
    }
    lp_timer_arm(m->upd_timer, due == INT64_MAX ? 0 : (uint64_t)(due > now ? due - now : 1));
}

/* The pending updates that are due: a deferral that ran out asks again with what is left;
 * an answer that did not come, an agreement, no deferral left or an app no longer running
 * lets the update go ahead. */
static void on_updates(void *ctx, int fd, uint32_t events)
{
    am *m = ctx;
    uint64_t n;
    if (read(fd, &n, sizeof(n)) != sizeof(n)) {
        return;
    }
    for (bool again = true; again;) {
        again = false;
        int64_t now = pv_monotonic_ms();
        for (size_t i = 0; i < m->n; i++) {
            app_rt *rt = m->apps[i];
            pending_update *u = rt->upd;
            if (u == NULL || (rt->live && (u->due_ms > now || rt->state == ST_STOPPING))) {
                continue; /* not due, or being stopped: its end decides */
            }
            u->left_s = defer_left(u);
            if (u->left_s == 0) {
                u->deferring = true; /* a day since it was staged: it is told nothing is left */
            }
            if (u->deferring && u->left_s > 0 && rt->live && rt->chan_fd >= 0) {
                u->deferring = false;
                u->due_ms = now + AM_ANSWER_MS;
                send_event(rt, PV_APP_EVENT_UPDATE_READY, u->id, u->left_s);
                continue;
            }
            if (u->deferring && rt->live) {
                send_event(rt, PV_APP_EVENT_UPDATE_READY, u->id, 0); /* nothing left */
            }
            as_app *next = u->next;
            bool start = rt->wanted && !m->stopping; /* a stopped app stays stopped */
            free(u);
            rt->upd = NULL;
            pv_info("app %s: applying its update to %s", rt->a->m.name, next->m.version);
            pv_err e;
            pv_err_clear(&e);
            if (update_apply(m, rt, next, start, &e) != PV_OK) {
                pv_error("app %s: the update cannot start: %s", next->m.name, pv_err_msg(&e));
            }
            again = true; /* the set of apps changed */
            break;
        }
    }
    updates_rearm(m);
}

void am_device_certs_changed(am *m)
{
    for (size_t i = 0; i < m->n; i++) {
        app_rt *rt = m->apps[i];
        if (!rt->a->m.caps.device_authentication) {
            continue;
        }
        char dir[4096];
        pv_err e;
        pv_err_clear(&e);
        if (device_dir(rt, dir, sizeof(dir), &e) != PV_OK ||
            refresh_device_files(rt, dir, &e) != PV_OK) {
            pv_error("app %s: cannot refresh its device certificate: %s", rt->cid, pv_err_msg(&e));
            continue;
        }
        if (rt->live && (rt->event_mask & PV_APP_EVENT_DEVICE_AUTH) != 0) {
            send_event(rt, PV_APP_EVENT_DEVICE_AUTH, ++m->next_event_id, 0);
        }
    }
}

static json_t *status_one(app_rt *rt)
{
    uint64_t mem = 0;
    pv_err ignored;
    if (rt->cg != NULL) {
        cg_memory_current(rt->cg, &mem, &ignored);
    }
    const pv_manifest *man = &rt->a->m;
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:i, s:I, s:I, s:I}", "componentId", rt->cid,
                  "imageId", rt->a->image_id, "name", man->name, "version", man->version, "state",
                  state_names[rt->state], "development", rt->a->development, "uid", (int)rt->a->uid,
                  "restarts", (json_int_t)rt->restarts, "memoryKB", (json_int_t)(mem / 1024),
                  "failures", (json_int_t)fl_count(rt->m->cfg.failures, rt->cid));
    if (o == NULL) {
        return NULL;
    }
    if (rt->live) {
        json_object_set_new(o, "pid", json_integer(rt->proc.pid));
    }
    if (rt->last_exit != NULL) {
        json_object_set(o, "lastExit", rt->last_exit);
    }
    json_t *f = fl_to_json(rt->m->cfg.failures, rt->cid);
    if (f != NULL) {
        json_object_set_new(o, "failureEvents", f);
    }
    if (rt->upd != NULL) {
        int64_t wait = rt->upd->due_ms - pv_monotonic_ms();
        json_object_set_new(o, "updatePending",
                            json_pack("{s:s, s:s, s:b, s:I, s:I}", "imageId",
                                      rt->upd->next->image_id, "version", rt->upd->next->m.version,
                                      "deferred", rt->upd->deferring, "seconds",
                                      (json_int_t)(wait > 0 ? (wait + 999) / 1000 : 0),
                                      "deferralLeftSeconds", (json_int_t)rt->upd->left_s));
    }
    return o;
}

json_t *am_status(am *m, const char *cid)
{
    if (cid != NULL) {
        app_rt *rt = find_rt(m, cid);
        return rt != NULL ? status_one(rt) : NULL;
    }
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < m->n; i++) {
        json_t *o = status_one(m->apps[i]);
        if (o == NULL || json_array_append_new(a, o) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

int am_quota(am *m, const char *cid, uint64_t *used_kb, uint64_t *quota_kb, pv_err *e)
{
    app_rt *rt = find_rt(m, cid);
    if (rt == NULL) {
        return pv_err_set(e, PV_ERR_NOT_FOUND, "component %s is not installed", cid);
    }
    if (rt->a->m.caps.mutable_storage_kb == 0) {
        return pv_err_set(e, PV_ERR_NOT_FOUND, "component %s has no mutable storage", cid);
    }
    if (rt->storage == NULL) {
        int r = st_prepare(m->cfg.state_dir, rt->cid, rt->a->m.caps.mutable_storage_kb, rt->a->uid,
                           rt->a->uid, &rt->storage, e);
        if (r != PV_OK) {
            return r;
        }
    }
    int r = st_usage(rt->storage, used_kb, quota_kb, e);
    if (r == PV_OK) {
        *quota_kb = rt->a->m.caps.mutable_storage_kb;
    }
    return r;
}
