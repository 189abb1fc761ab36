// SPDX-License-Identifier: Apache-2.0
/* See storeclient.h. */
#include "storeclient.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/close_range.h>

#include "pavise/json.h"
#include "pavise/platform.h"

#include "helperproc.h"
#include "privdrop.h"
#include "storeproto.h"

#define MAX_ARGS 16

/* The environment pavise-store gets: only what the root of trust and extraction read. */
static const char *const passed_env[] = {"PAVISE_TCTI", "TMPDIR"};

static void child(const sc_config *c, char *const *argv, char *const *envp, int in_fd, int out_fd)
{
    sigset_t none;
    sigemptyset(&none);
    /* Moved above 0-2 first: either may hold one of those numbers. */
    int in =
        in_fd >= 0 ? fcntl(in_fd, F_DUPFD_CLOEXEC, 10) : open("/dev/null", O_RDONLY | O_CLOEXEC);
    int out = fcntl(out_fd, F_DUPFD_CLOEXEC, 10);
    int exe = fcntl(c->exe_fd, F_DUPFD_CLOEXEC, 10);
    if (in < 0 || out < 0 || exe < 0 || dup2(in, 0) != 0 || dup2(out, 1) != 1 ||
        /* Nothing else of pavised's reaches it: every other descriptor goes at exec. */
        syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        _exit(126);
    }
    /* Its own process group, so a kill takes anything it started; a mount namespace with
     * /proc/sys and /sys read-only and the API socket's directory covered. */
    const char *const hide[] = {c->hide_dir, NULL};
    if (setpgid(0, 0) != 0 || pd_confine(c->hide_dir != NULL ? hide : NULL) != 0) {
        _exit(126);
    }
    sigprocmask(SIG_SETMASK, &none, NULL);
    syscall(SYS_execveat, exe, "", argv, envp, AT_EMPTY_PATH);
    _exit(127);
}

/* Waits for the child until the deadline, then kills its group and waits for good. */
static void reap_child(pid_t pid, int64_t deadline, int *status)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int64_t left = deadline - pv_monotonic_ms();
    if (pfd >= 0) {
        struct pollfd p = {.fd = pfd, .events = POLLIN};
        while (left > 0 && poll(&p, 1, (int)left) < 0 && errno == EINTR) {
            left = deadline - pv_monotonic_ms();
        }
        if (poll(&p, 1, 0) != 1) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
        }
        close(pfd);
    } else {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
    }
    while (waitpid(pid, status, 0) < 0 && errno == EINTR) {
    }
}

/* Reads the child's whole answer (at most max bytes) until end of file or the deadline. */
static int read_answer(int fd, int64_t deadline, size_t max, char **out, size_t *out_len, pv_err *e)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    unsigned timeout_ms = (unsigned)(deadline - pv_monotonic_ms());
    int r = PV_ERR_NOMEM;
    if (buf == NULL) {
        return pv_err_set(e, r, "out of memory");
    }
    for (;;) {
        int64_t left = deadline - pv_monotonic_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0) {
            r = pv_err_set(e, PV_ERR_IO, "pavise-store did not answer within %u ms", timeout_ms);
            goto out;
        }
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            r = pv_err_sys(e, PV_ERR_IO, errno, "poll");
            goto out;
        }
        if (n == 0) {
            continue;
        }
        if (len + 1 >= cap) {
            if (cap >= max + 1) {
                r = pv_err_set(e, PV_ERR_TOO_LARGE, "pavise-store's answer is too long");
                goto out;
            }
            size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t got = read(fd, buf + len, cap - 1 - len);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            r = pv_err_sys(e, PV_ERR_IO, errno, "reading pavise-store's answer");
            goto out;
        }
        if (got == 0) {
            break;
        }
        len += (size_t)got;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    buf = NULL;
    r = PV_OK;
out:
    free(buf);
    return r;
}

/* Starts pavise-store with argv (--state and the log options appended) and in_fd as its
 * standard input: *pid, and *out_fd the read end of its standard output. */
static int spawn(const sc_config *c, const char *const *argv, int in_fd, pid_t *pid_out,
                 int *out_fd, pv_err *e)
{
    const char *args[MAX_ARGS + 8];
    const char *envp[sizeof(passed_env) / sizeof(passed_env[0]) + 1];
    char env_buf[sizeof(passed_env) / sizeof(passed_env[0])][4096];
    size_t na = 0, ne = 0;
    int fds[2] = {-1, -1};
    for (; argv[na] != NULL; na++) {
        if (na == MAX_ARGS) {
            return pv_err_set(e, PV_ERR_INTERNAL, "too many arguments for pavise-store");
        }
        args[na] = argv[na];
    }
    args[na++] = "--state";
    args[na++] = c->state_dir;
    if (c->log_level != NULL) {
        args[na++] = "--log-level";
        args[na++] = c->log_level;
    }
    if (c->log_json) {
        args[na++] = "--log-json";
    }
    args[na] = NULL;
    for (size_t i = 0; i < sizeof(passed_env) / sizeof(passed_env[0]); i++) {
        const char *v = getenv(passed_env[i]);
        int n =
            v != NULL ? snprintf(env_buf[ne], sizeof(env_buf[ne]), "%s=%s", passed_env[i], v) : -1;
        if (n > 0 && (size_t)n < sizeof(env_buf[ne])) {
            envp[ne] = env_buf[ne];
            ne++;
        }
    }
    envp[ne] = NULL;
    if (pipe2(fds, O_CLOEXEC) != 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "pipe");
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return pv_err_sys(e, PV_ERR_IO, errno, "fork");
    }
    if (pid == 0) {
        child(c, (char *const *)args, (char *const *)envp, in_fd, fds[1]);
    }
    close(fds[1]);
    (void)setpgid(pid, pid); /* as the child does: whichever runs first */
    *pid_out = pid;
    *out_fd = fds[0];
    return PV_OK;
}

/* The answer of a run that has ended with status: *out is the object without "ok". */
static int finish(int status, const char *text, size_t text_len, json_t **out, pv_err *e)
{
    json_t *ans = NULL;
    int r = PV_ERR_INTERNAL;
    if (WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) > 1)) {
        r = WIFSIGNALED(status)
                ? pv_err_set(e, PV_ERR_IO, "pavise-store died (signal %d)", WTERMSIG(status))
                : pv_err_set(e, PV_ERR_IO, "pavise-store could not run (exit status %d)",
                             WEXITSTATUS(status));
        goto out;
    }
    if ((r = pv_json_parse(text, text_len, &ans, e)) != PV_OK || !json_is_object(ans)) {
        r = pv_err_set(e, PV_ERR_FORMAT, "pavise-store's answer is not a JSON object");
        goto out;
    }
    json_t *ok = json_object_get(ans, "ok");
    if (!json_is_boolean(ok) || json_is_true(ok) != (WEXITSTATUS(status) == 0)) {
        r = pv_err_set(e, PV_ERR_FORMAT, "pavise-store's answer has no agreeing \"ok\"");
        goto out;
    }
    if ((r = hp_answer_result(ans, "pavise-store", e)) != PV_OK) {
        goto out;
    }
    json_object_del(ans, "ok");
    *out = ans;
    ans = NULL;
    r = PV_OK;
out:
    json_decref(ans);
    return r;
}

/* Only "load" describes every app; the others answer one app or a few fields, "sign" a
 * signature. */
static size_t answer_max(const char *const *argv)
{
    if (strcmp(argv[1], "load") == 0) {
        return SP_MAX_ANSWER;
    }
    return strcmp(argv[1], "sign") == 0 ? SP_MAX_SIGN_ANSWER : SP_MAX_SMALL_ANSWER;
}

int sc_run(const sc_config *c, const char *const *argv, int in_fd, json_t **out, pv_err *e)
{
    char *text = NULL;
    size_t text_len = 0;
    int fd = -1, status = 0;
    pid_t pid = 0;
    *out = NULL;
    int r = spawn(c, argv, in_fd, &pid, &fd, e);
    if (r != PV_OK) {
        return r;
    }
    int64_t deadline = pv_monotonic_ms() + (c->timeout_ms != 0 ? c->timeout_ms : SP_TIMEOUT_MS);
    r = read_answer(fd, deadline, answer_max(argv), &text, &text_len, e);
    close(fd);
    /* The same deadline covers its exit: a helper that answered, then hangs (a stuck mount,
     * a TPM that does not answer) is killed, not waited on for ever. */
    reap_child(pid, r == PV_OK ? deadline : 0, &status);
    if (r == PV_OK) {
        r = finish(status, text, text_len, out, e);
    }
    free(text);
    return r;
}

int sc_job_start(const sc_config *c, const char *const *argv, sc_job *j, pv_err *e)
{
    memset(j, 0, sizeof(*j));
    j->fd = j->pidfd = -1;
    j->max = answer_max(argv);
    if ((j->buf = malloc(SC_JOB_CHUNK + 1)) == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    j->cap = SC_JOB_CHUNK + 1;
    int r = spawn(c, argv, -1, &j->pid, &j->fd, e);
    if (r != PV_OK || fcntl(j->fd, F_SETFL, O_NONBLOCK) != 0) {
        r = r != PV_OK ? r : pv_err_sys(e, PV_ERR_IO, errno, "pavise-store's pipe");
        sc_job_cancel(j);
        return r;
    }
    j->pidfd = (int)syscall(SYS_pidfd_open, j->pid, 0); /* -1: the caller reaps by waiting */
    return PV_OK;
}

bool sc_job_reaped(sc_job *j, int *status)
{
    if (j->pid <= 0) {
        return true;
    }
    pid_t w;
    do {
        w = waitpid(j->pid, status, WNOHANG);
    } while (w < 0 && errno == EINTR);
    if (w == j->pid || (w < 0 && errno == ECHILD)) {
        j->pid = 0;
        return true;
    }
    return false;
}

void sc_job_kill(sc_job *j)
{
    if (j->pid > 0) {
        kill(-j->pid, SIGKILL);
        kill(j->pid, SIGKILL);
    }
}

void sc_job_close_output(sc_job *j)
{
    if (j->fd >= 0) {
        close(j->fd);
        j->fd = -1;
    }
}

int sc_job_answer(sc_job *j, int status, json_t **out, pv_err *e)
{
    *out = NULL;
    j->buf[j->len] = '\0';
    return finish(status, j->buf, j->len, out, e);
}

int sc_job_read(sc_job *j, bool *done, pv_err *e)
{
    *done = false;
    for (;;) {
        if (j->len + 1 >= j->cap) {
            if (j->cap >= j->max + 1) {
                return pv_err_set(e, PV_ERR_TOO_LARGE, "pavise-store's answer is too long");
            }
            size_t ncap = j->cap * 2 > j->max + 1 ? j->max + 1 : j->cap * 2;
            char *nb = realloc(j->buf, ncap);
            if (nb == NULL) {
                return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
            }
            j->buf = nb;
            j->cap = ncap;
        }
        ssize_t got = read(j->fd, j->buf + j->len, j->cap - 1 - j->len);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0 && errno == EAGAIN) {
            return PV_OK;
        }
        if (got < 0) {
            return pv_err_sys(e, PV_ERR_IO, errno, "reading pavise-store's answer");
        }
        if (got == 0) {
            *done = true;
            return PV_OK;
        }
        j->len += (size_t)got;
    }
}

void sc_job_cancel(sc_job *j)
{
    if (j->pid > 0) {
        reap_child(j->pid, 0, &(int){0});
        j->pid = 0;
    }
    sc_job_close_output(j);
    if (j->pidfd >= 0) {
        close(j->pidfd);
        j->pidfd = -1;
    }
    free(j->buf);
    j->buf = NULL;
    j->len = j->cap = 0;
}

int sc_load_answer(const json_t *ans, const char *apps_dir, sc_device *dev, as_store **store,
                   pv_err *e)
{
    static const char *const fields[] = {"deviceId",           "rootOfTrust", "development",
                                         "developmentExpires", "apps",        NULL};
    const char *id = NULL, *kind = NULL;
    uint64_t expires = 0;
    as_store *s = NULL;
    *store = NULL;
    json_t *apps = json_object_get(ans, "apps");
    int r;
    if ((r = pv_json_check_fields(ans, fields, "load", e)) != PV_OK ||
        (r = pv_json_get_string(ans, "deviceId", true, sizeof(dev->device_id) - 1, "load", &id,
                                NULL, e)) != PV_OK ||
        (r = pv_json_get_string(ans, "rootOfTrust", true, sizeof(dev->rot_kind) - 1, "load", &kind,
                                NULL, e)) != PV_OK ||
        (r = pv_json_get_bool(ans, "development", true, "load", &dev->development, NULL, e)) !=
            PV_OK ||
        (r = pv_json_get_uint(ans, "developmentExpires", true, 0, INT64_MAX, "load", &expires, NULL,
                              e)) != PV_OK) {
        return pv_err_wrap(e, r == PV_ERR_NOMEM ? r : PV_ERR_FORMAT, "pavise-store's answer");
    }
    if (!json_is_array(apps) || json_array_size(apps) > AS_MAX_APPS) {
        return pv_err_set(e, PV_ERR_FORMAT, "load: apps is not an array of at most %u",
                          AS_MAX_APPS);
    }
    if ((r = as_new(apps_dir, &s, e)) != PV_OK) {
        return r;
    }
    for (size_t i = 0; i < json_array_size(apps); i++) {
        as_app *a = NULL, *old = NULL;
        if ((r = as_app_from_json(json_array_get(apps, i), &a, e)) != PV_OK ||
            (r = as_check_fits(s, a, e)) != PV_OK || (r = as_put(s, a, &old, e)) != PV_OK ||
            old != NULL) {
            as_app_free(old != NULL ? old : (r != PV_OK ? a : NULL));
            r = r != PV_OK ? pv_err_wrap(e, r, "pavise-store's answer, app %zu", i)
                           : pv_err_set(e, PV_ERR_FORMAT, "load: a component twice");
            as_close(s);
            return r;
        }
    }
    memcpy(dev->device_id, id, strlen(id) + 1);
    memcpy(dev->rot_kind, kind, strlen(kind) + 1);
    dev->dev_expires = (int64_t)expires;
    *store = s;
    return PV_OK;
}

int sc_load(const sc_config *c, sc_device *dev, as_store **store, pv_err *e)
{
    static const char *const argv[] = {"pavise-store", "load", NULL};
    json_t *ans = NULL;
    char apps_dir[4096];
    *store = NULL;
    int n = snprintf(apps_dir, sizeof(apps_dir), "%s/apps", c->state_dir);
    if (n < 0 || (size_t)n >= sizeof(apps_dir)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "state directory path too long");
    }
    int r = sc_run(c, argv, -1, &ans, e);
    if (r == PV_OK) {
        r = sc_load_answer(ans, apps_dir, dev, store, e);
    }
    json_decref(ans);
    return r;
}

int sc_install(const sc_config *c, int pkg_fd, bool development, as_app **out, bool *replaced,
               pv_err *e)
{
    const char *const argv[] = {"pavise-store", "install", development ? "--development" : NULL,
                                NULL};
    json_t *ans = NULL;
    *out = NULL;
    *replaced = false;
    int r = sc_run(c, argv, pkg_fd, &ans, e);
    if (r != PV_OK) {
        return r;
    }
    json_t *rep = json_object_get(ans, "replaced");
    if (!json_is_boolean(rep) || json_object_size(ans) != 2) {
        r = pv_err_set(e, PV_ERR_FORMAT, "install: a malformed answer");
    } else if ((r = as_app_from_json(json_object_get(ans, "app"), out, e)) == PV_OK) {
        *replaced = json_is_true(rep);
    }
    json_decref(ans);
    return r;
}

int sc_remove(const sc_config *c, const char *cid, pv_err *e)
{
    const char *const argv[] = {"pavise-store", "remove", "--component-id", cid, NULL};
    json_t *ans = NULL;
    int r = sc_run(c, argv, -1, &ans, e);
    json_decref(ans);
    return r;
}

int sc_capability(const sc_config *c, int fd, int64_t *expires, pv_err *e)
{
    static const char *const argv[] = {"pavise-store", "capability", NULL};
    json_t *ans = NULL;
    uint64_t v = 0;
    int r = sc_run(c, argv, fd, &ans, e);
    if (r == PV_OK && (r = pv_json_get_uint(ans, "developmentExpires", true, 0, INT64_MAX,
                                            "capability", &v, NULL, e)) == PV_OK) {
        *expires = (int64_t)v;
    }
    json_decref(ans);
    return r;
}
