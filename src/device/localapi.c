// SPDX-License-Identifier: Apache-2.0
/*
 * The local device API (docs/protocol/local-api.md): a unix SOCK_SEQPACKET socket, one
 * request and one response per connection. A request is a JSON object of at most
 * LA_MAX_REQUEST bytes {"version":1,"op":"...", ...} and may carry one file descriptor
 * (SCM_RIGHTS) for the ops that read a file: pavised reads what the caller could open and
 * never opens a path the caller names. Only root may call (SO_PEERCRED), and the socket
 * lives in a root-only directory as a second layer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "pavise/fs.h"
#include "pavise/json.h"
#include "pavise/platform.h"
#include "pavise/log.h"

#include "daemon.h"
#include "storage.h"

#define LA_MAX_REQUEST     (64 * 1024)
#define LA_MAX_CONNECTIONS 16u

typedef struct req {
    pd *d;
    json_t *body;
    const char *cid; /* "componentId", checked, or NULL */
    int fd;          /* passed file, or -1 */
} req;

typedef int (*op_fn)(req *q, json_t **result, pv_err *e);

static int need_cid(req *q, pv_err *e)
{
    return q->cid != NULL ? PV_OK : pv_err_set(e, PV_ERR_INVALID_ARG, "componentId is required");
}

bool devcap_active(pd *d)
{
    if (d->development && d->dev_expires != 0 && pv_time_now() >= d->dev_expires) {
        pv_warn("the development capability has expired: development mode is off");
        d->development = false;
        d->dev_expires = 0;
    }
    return d->development;
}

static int need_development(req *q, pv_err *e)
{
    return devcap_active(q->d)
               ? PV_OK
               : pv_err_set(e, PV_ERR_LOCKED,
                            "the device is not in development mode: apply a development "
                            "capability first (pavise device capability update)");
}

static int op_show(req *q, json_t **result, pv_err *e)
{
    pd *d = q->d;
    *result = json_pack("{s:s, s:s, s:b, s:s, s:i, s:I, s:s}", "deviceId", d->device_id,
                        "rootOfTrust", d->rot_kind, "developmentMode", devcap_active(d), "cgroup",
                        cg_version_name(d->cgroups), "landlockAbi", sb_landlock_abi(), "apps",
                        (json_int_t)as_count(d->store), "network",
                        d->net != NULL ? "per-app firewall" : "none");
    return *result != NULL ? PV_OK : pv_err_set(e, PV_ERR_NOMEM, "out of memory");
}

static int op_status(req *q, json_t **result, pv_err *e)
{
    *result = am_status(q->d->apps, q->cid);
    if (*result == NULL) {
        return q->cid != NULL
                   ? pv_err_set(e, PV_ERR_NOT_FOUND, "component %s is not installed", q->cid)
                   : pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    return PV_OK;
}

static int op_start(req *q, json_t **result, pv_err *e)
{
    int r = need_cid(q, e);
    if (r == PV_OK && (r = am_start(q->d->apps, q->cid, e)) == PV_OK) {
        return op_status(q, result, e);
    }
    return r;
}

static int op_stop(req *q, json_t **result, pv_err *e)
{
    int r = need_cid(q, e);
    if (r == PV_OK && (r = am_stop(q->d->apps, q->cid, e)) == PV_OK) {
        return op_status(q, result, e);
    }
    return r;
}

static int op_quota(req *q, json_t **result, pv_err *e)
{
    uint64_t used = 0, quota = 0;
    int r = need_cid(q, e);
    if (r == PV_OK && (r = am_quota(q->d->apps, q->cid, &used, &quota, e)) == PV_OK) {
        *result = json_pack("{s:s, s:I, s:I}", "componentId", q->cid, "usedKB", (json_int_t)used,
                            "quotaKB", (json_int_t)quota);
        r = *result != NULL ? PV_OK : pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    return r;
}

static json_t *image_json(const as_app *a)
{
    char at[PV_TIME_TEXT_LEN + 1] = "";
    pv_time_format(a->installed_at, at);
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:b, s:s}", "imageId", a->image_id, "componentId",
                     a->cid, "name", a->m.name, "version", a->m.version, "securityCounter",
                     (json_int_t)a->m.security_counter, "development", a->development,
                     "installedAt", at);
}

static int op_images(req *q, json_t **result, pv_err *e)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < as_count(q->d->store); i++) {
        json_t *o = image_json(as_get(q->d->store, i));
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    *result = arr;
    return arr != NULL ? PV_OK : pv_err_set(e, PV_ERR_NOMEM, "out of memory");
}

/* The passed file, checked: a regular file open for reading. */
static int fd_check(int fd, pv_err *e)
{
    struct stat st;
    if (fd < 0) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "the request carries no file");
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "the file passed is not a regular file");
    }
    /* Read only what the caller could read: an O_PATH or write-only descriptor is refused
     * (pavise-store reopens it through /proc, with root's rights). */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (fl & O_PATH) != 0 ||
        ((fl & O_ACCMODE) != O_RDONLY && (fl & O_ACCMODE) != O_RDWR)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "the file passed is not open for reading");
    }
    return PV_OK;
}

/* Installs a package and (re)starts its app. development: sideloading, which also accepts
 * images under the capability's development roots; otherwise only the update root. */
static int install(req *q, bool development, json_t **result, pv_err *e)
{
    as_app *a = NULL, *old = NULL;
    bool replaced = false;
    int r = fd_check(q->fd, e);
    if (r != PV_OK ||
        (r = sc_install(&q->d->store_cfg, q->fd, development, &a, &replaced, e)) != PV_OK) {
        return r;
    }
    if ((r = as_check_fits(q->d->store, a, e)) != PV_OK ||
        (r = as_put(q->d->store, a, &old, e)) != PV_OK) {
        as_app_free(a);
        return pv_err_wrap(e, r, "pavise-store's answer");
    }
    pv_info("installed %s %s (%s)%s", a->m.name, a->m.version, a->cid,
            a->development ? ", a development image" : "");
    bool pending = false;
    /* the manager takes old over: the app may still run it while it defers the update */
    if ((r = am_installed(q->d->apps, a, old, &pending, e)) != PV_OK) {
        return r;
    }
    *result = image_json(a);
    if (*result != NULL) {
        json_object_set_new(*result, "replaced", json_boolean(replaced));
        json_object_set_new(*result, "updatePending", json_boolean(pending));
    }
    return *result != NULL ? PV_OK : pv_err_set(e, PV_ERR_NOMEM, "out of memory");
}

static int op_deploy(req *q, json_t **result, pv_err *e)
{
    int r = need_development(q, e);
    return r != PV_OK ? r : install(q, true, result, e);
}

static int op_install(req *q, json_t **result, pv_err *e)
{
    return install(q, false, result, e);
}

static int op_delete(req *q, json_t **result, pv_err *e)
{
    int r = need_development(q, e);
    if (r != PV_OK || (r = need_cid(q, e)) != PV_OK) {
        return r;
    }
    as_app *a = as_find(q->d->store, q->cid);
    if (a == NULL) {
        return pv_err_set(e, PV_ERR_NOT_FOUND, "component %s is not installed", q->cid);
    }
    char cid[AS_CID_LEN + 1];
    memcpy(cid, a->cid, sizeof(cid));
    pv_err ignored;
    pv_err_clear(&ignored);
    /* The store first: a refusal there leaves the app as it was, running. */
    if ((r = sc_remove(&q->d->store_cfg, cid, e)) != PV_OK) {
        return r;
    }
    am_forget(q->d->apps, cid, &ignored);
    as_app_free(as_take(q->d->store, cid));
    if ((r = st_delete(q->d->state_dir, cid, e)) != PV_OK) {
        return r;
    }
    pv_info("deleted component %s", cid);
    *result = json_pack("{s:s, s:b}", "componentId", cid, "deleted", 1);
    return *result != NULL ? PV_OK : pv_err_set(e, PV_ERR_NOMEM, "out of memory");
}

static int op_capability(req *q, json_t **result, pv_err *e)
{
    int64_t expires = 0;
    int r = fd_check(q->fd, e);
    if (r != PV_OK || (r = sc_capability(&q->d->store_cfg, q->fd, &expires, e)) != PV_OK) {
        return r;
    }
    q->d->development = true; /* pavise-store logged it */
    q->d->dev_expires = expires;
    return op_show(q, result, e);
}

typedef struct op {
    const char *name;
    op_fn fn;
} op;

static const op ops[] = {
    {"device.show", op_show},       {"app.status", op_status},
    {"app.start", op_start},        {"app.stop", op_stop},
    {"app.quota", op_quota},        {"image.list", op_images},
    {"sideload.deploy", op_deploy}, {"sideload.delete", op_delete},
    {"image.install", op_install},  {"capability.update", op_capability},
};

static int handle(pd *d, const char *text, size_t len, int fd, json_t **result, pv_err *e)
{
    static const char *const fields[] = {"version", "op", "componentId", NULL};
    req q = {.d = d, .fd = fd};
    const char *name = NULL;
    uint64_t version = 0;
    int r = pv_json_parse(text, len, &q.body, e);
    if (r != PV_OK || (r = pv_json_check_fields(q.body, fields, "request", e)) != PV_OK ||
        (r = pv_json_get_uint(q.body, "version", true, 1, 1, "request", &version, NULL, e)) !=
            PV_OK ||
        (r = pv_json_get_string(q.body, "op", true, 64, "request", &name, NULL, e)) != PV_OK ||
        (r = pv_json_get_string(q.body, "componentId", false, AS_CID_LEN, "request", &q.cid, NULL,
                                e)) != PV_OK) {
        goto out;
    }
    uint8_t u[PV_UUID_LEN];
    if (q.cid != NULL && pv_uuid_parse(q.cid, u) != PV_OK) {
        r = pv_err_set(e, PV_ERR_INVALID_ARG, "componentId: not a UUID");
        goto out;
    }
    r = pv_err_set(e, PV_ERR_NOT_FOUND, "unknown op '%s'", name);
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (strcmp(ops[i].name, name) == 0) {
            pv_err_clear(e);
            r = ops[i].fn(&q, result, e);
            break;
        }
    }
out:
    json_decref(q.body);
    return r;
}

static void respond(int fd, int code, json_t *result, const pv_err *e)
{
    json_t *resp = code == PV_OK
                       ? json_pack("{s:i, s:b, s:O}", "version", 1, "ok", 1, "result", result)
                       : json_pack("{s:i, s:b, s:{s:s, s:i}}", "version", 1, "ok", 0, "error",
                                   "message", pv_err_msg(e), "code", code);
    char *text = resp != NULL ? json_dumps(resp, JSON_COMPACT) : NULL;
    if (text != NULL) {
        send(fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    free(text);
    json_decref(resp);
}

static void on_conn(void *ctx, int fd, uint32_t events)
{
    pd *d = ctx;
    char *buf = malloc(LA_MAX_REQUEST + 1);
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } cm;
    struct iovec iov = {.iov_base = buf, .iov_len = LA_MAX_REQUEST + 1};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cm, .msg_controllen = sizeof(cm)};
    int passed = -1;
    json_t *result = NULL;
    pv_err e;
    pv_err_clear(&e);
    lp_del(d->loop, fd);
    if (buf == NULL) {
        goto out;
    }
    ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    for (struct cmsghdr *c = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; c != NULL;
         c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int fds[4];
            memcpy(fds, CMSG_DATA(c), (k > 4 ? 4 : k) * sizeof(int));
            for (size_t i = 0; i < k && i < 4; i++) {
                if (passed < 0) {
                    passed = fds[i];
                } else {
                    close(fds[i]);
                }
            }
        }
    }
    int r;
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    if (n <= 0) {
        goto out;
    } else if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 || cred.uid != 0) {
        /* The request was read first, so the answer is not lost to a reset. */
        r = pv_err_set(&e, PV_ERR_INVALID_ARG, "only root may use the local device API");
    } else if ((size_t)n > LA_MAX_REQUEST || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
        r = pv_err_set(&e, PV_ERR_TOO_LARGE, "request larger than %d bytes", LA_MAX_REQUEST);
    } else {
        r = handle(d, buf, (size_t)n, passed, &result, &e);
    }
    respond(fd, r, result, &e);
out:
    if (passed >= 0) {
        close(passed);
    }
    json_decref(result);
    free(buf);
    close(fd);
    d->api_open--;
}

static void on_accept(void *ctx, int lfd, uint32_t events)
{
    pd *d = ctx;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
        return;
    }
    pv_err e;
    pv_err_clear(&e);
    if (d->api_open >= LA_MAX_CONNECTIONS) {
        close(fd); /* bounded: the loop's descriptors are shared with the apps */
        return;
    }
    if (lp_add(d->loop, fd, EPOLLIN, on_conn, d, &e) != PV_OK) {
        close(fd);
        return;
    }
    d->api_open++;
}

int la_listen(pd *d, const char *path, pv_err *e)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char dir[sizeof(sa.sun_path)];
    if (strlen(path) >= sizeof(sa.sun_path) || path[0] != '/') {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "socket path '%s': absolute, at most %zu bytes",
                          path, sizeof(sa.sun_path) - 1);
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    memcpy(dir, path, strlen(path) + 1);
    char *slash = strrchr(dir, '/');
    if (slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            return pv_err_sys(e, PV_ERR_IO, errno, "%s", dir);
        }
    }
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "socket");
    }
    unlink(path);
    mode_t old = umask(0177);
    int rb = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rb != 0 || listen(fd, 16) != 0) {
        int err = errno;
        close(fd);
        return pv_err_sys(e, PV_ERR_IO, err, "%s", path);
    }
    int r = lp_add(d->loop, fd, EPOLLIN, on_accept, d, e);
    if (r != PV_OK) {
        close(fd);
        return r;
    }
    d->listen_fd = fd;
    return PV_OK;
}
