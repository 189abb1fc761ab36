// SPDX-License-Identifier: Apache-2.0
/*
 * pavise device app|sideload|image|show-attached|capability update: the device's own
 * commands, sent to pavised over its local API (docs/protocol/local-api.md), as root on
 * the device. A file (image package, capability) is opened here and its descriptor
 * passed, so pavised never opens a path a caller names.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "client.h"

#define LOCAL_DEFAULT_SOCKET "/run/pavise/pavised.sock"
#define LOCAL_MAX_RESPONSE   (4 * 1024 * 1024)

#define OPT_SOCKET                                                                                 \
    {                                                                                              \
        "socket", "PATH", false,                                                                   \
            "pavised's local API socket (default $PAVISE_SOCKET, else " LOCAL_DEFAULT_SOCKET ")"   \
    }
#define OPT_CID                                                                                    \
    {                                                                                              \
        "component-id", "ID", true, "the app's component ID"                                       \
    }

static const char *socket_path(const cli_cmd *cmd, const cli_args *args)
{
    const char *s = cli_get(cmd, args, "socket");
    if (s == NULL) {
        s = getenv("PAVISE_SOCKET");
    }
    return s != NULL && s[0] != '\0' ? s : LOCAL_DEFAULT_SOCKET;
}

/* Sends one request (with fd when >= 0) and returns the "result" of a successful answer,
 * or the error pavised gave (its code mapped back). */
static int local_call(const char *path, json_t *req, int fd, json_t **result, pv_err *e)
{
    *result = NULL;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char *text = NULL, *buf = NULL;
    json_t *resp = NULL;
    int s = -1;
    int r = PV_ERR_INVALID_ARG;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        pv_err_set(e, r, "socket path too long: %s", path);
        goto out;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    text = json_dumps(req, JSON_COMPACT);
    buf = malloc(LOCAL_MAX_RESPONSE + 1);
    if (text == NULL || buf == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "cannot reach pavised at %s", path);
        goto out;
    }
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } cm;
    memset(&cm, 0, sizeof(cm));
    struct iovec iov = {.iov_base = text, .iov_len = strlen(text)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        mh.msg_control = &cm;
        mh.msg_controllen = sizeof(cm);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    if (sendmsg(s, &mh, MSG_NOSIGNAL) < 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "sending to pavised");
        goto out;
    }
    ssize_t n = recv(s, buf, LOCAL_MAX_RESPONSE + 1, MSG_TRUNC);
    if (n <= 0 || n > LOCAL_MAX_RESPONSE) {
        r = pv_err_set(e, PV_ERR_IO, "no usable answer from pavised");
        goto out;
    }
    json_error_t je;
    resp = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    json_t *ok = json_object_get(resp, "ok");
    if (!json_is_boolean(ok)) {
        r = pv_err_set(e, PV_ERR_FORMAT, "malformed answer from pavised");
        goto out;
    }
    if (json_is_false(ok)) {
        json_t *err = json_object_get(resp, "error");
        json_t *code = json_object_get(err, "code");
        const char *msg = json_string_value(json_object_get(err, "message"));
        r = json_is_integer(code) && json_integer_value(code) < 0 && json_integer_value(code) > -100
                ? (int)json_integer_value(code)
                : PV_ERR_INTERNAL;
        /* Not found and conflicts get the CLI's own exit codes (5 and 6). */
        r = r == PV_ERR_NOT_FOUND ? CLI_ERR_NOT_FOUND : r == PV_ERR_EXISTS ? CLI_ERR_CONFLICT : r;
        pv_err_set(e, r, "%s", msg != NULL ? msg : "pavised refused the request");
        goto out;
    }
    *result = json_incref(json_object_get(resp, "result"));
    r = *result != NULL ? PV_OK : pv_err_set(e, PV_ERR_FORMAT, "answer without a result");
out:
    if (s >= 0) {
        close(s);
    }
    json_decref(resp);
    free(buf);
    free(text);
    return r;
}

static json_t *request(const char *op, const char *cid)
{
    json_t *q = json_pack("{s:i, s:s}", "version", 1, "op", op);
    if (q != NULL && cid != NULL) {
        json_object_set_new(q, "componentId", json_string(cid));
    }
    return q;
}

static int call_simple(const cli_cmd *cmd, const cli_args *args, const char *op, const char *cid,
                       int fd, json_t **result, pv_err *e)
{
    json_t *q = request(op, cid);
    if (q == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int r = local_call(socket_path(cmd, args), q, fd, result, e);
    json_decref(q);
    return r;
}

static const char *const status_fields[] = {
    "componentId", "Component ID", "name",     "Name",     "version",  "Version",
    "state",       "State",        "pid",      "PID",      "uid",      "UID",
    "development", "Development",  "restarts", "Restarts", "memoryKB", "Memory (KiB)",
    "failures",    "Failures",     NULL,
};
static const char *const status_columns[] = {
    "componentId", "COMPONENT ID", "name",     "NAME",     "version",  "VERSION", "state",
    "STATE",       "restarts",     "RESTARTS", "failures", "FAILURES", NULL,
};

static int app_cmd(const cli_cmd *cmd, const cli_args *args, const char *op, pv_err *e)
{
    const char *cid = cli_get(cmd, args, "component-id");
    if (cid != NULL && !cli_is_uuid(cid)) {
        return pv_err_set(e, PV_ERR_USAGE, "--component-id '%s': not a UUID", cid);
    }
    json_t *res = NULL;
    int r = call_simple(cmd, args, op, cid, -1, &res, e);
    if (r != PV_OK) {
        return r;
    }
    if (json_is_array(res)) {
        return cli_print_table(args->json, res, status_columns);
    }
    return cli_print_object(args->json, res, status_fields);
}

static int app_start(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    return app_cmd(cmd, args, "app.start", e);
}

static int app_stop(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    return app_cmd(cmd, args, "app.stop", e);
}

static int app_status(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    return app_cmd(cmd, args, "app.status", e);
}

static int app_quota(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    static const char *const fields[] = {"componentId", "Component ID", "usedKB", "Used (KiB)",
                                         "quotaKB",     "Quota (KiB)",  NULL};
    const char *cid = cli_get(cmd, args, "component-id");
    json_t *res = NULL;
    if (!cli_is_uuid(cid)) {
        return pv_err_set(e, PV_ERR_USAGE, "--component-id '%s': not a UUID", cid);
    }
    int r = call_simple(cmd, args, "app.quota", cid, -1, &res, e);
    return r != PV_OK ? r : cli_print_object(args->json, res, fields);
}

static const char *const image_fields[] = {
    "imageId",     "Image ID",    "componentId", "Component ID",    "name",
    "Name",        "version",     "Version",     "securityCounter", "Security counter",
    "development", "Development", "installedAt", "Installed",       NULL,
};

static int with_file(const cli_cmd *cmd, const cli_args *args, const char *opt, const char *op,
                     json_t **res, pv_err *e)
{
    const char *path = cli_get(cmd, args, opt);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return pv_err_sys(e, errno == ENOENT ? PV_ERR_NOT_FOUND : PV_ERR_IO, errno, "%s", path);
    }
    int r = call_simple(cmd, args, op, NULL, fd, res, e);
    close(fd);
    return r;
}

static int sideload_deploy(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    json_t *res = NULL;
    int r = with_file(cmd, args, "image-package", "sideload.deploy", &res, e);
    return r != PV_OK ? r : cli_print_object(args->json, res, image_fields);
}

static int image_install(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    json_t *res = NULL;
    int r = with_file(cmd, args, "image-package", "image.install", &res, e);
    return r != PV_OK ? r : cli_print_object(args->json, res, image_fields);
}

static int sideload_delete(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    static const char *const fields[] = {"componentId", "Component ID", "deleted", "Deleted", NULL};
    const char *cid = cli_get(cmd, args, "component-id");
    json_t *res = NULL;
    if (!cli_is_uuid(cid)) {
        return pv_err_set(e, PV_ERR_USAGE, "--component-id '%s': not a UUID", cid);
    }
    int r = call_simple(cmd, args, "sideload.delete", cid, -1, &res, e);
    return r != PV_OK ? r : cli_print_object(args->json, res, fields);
}

static int image_list(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    static const char *const columns[] = {
        "imageId", "IMAGE ID", "componentId", "COMPONENT ID", "name", "NAME",
        "version", "VERSION",  "development", "DEVELOPMENT",  NULL,
    };
    json_t *res = NULL;
    int r = call_simple(cmd, args, "image.list", NULL, -1, &res, e);
    return r != PV_OK ? r : cli_print_table(args->json, res, columns);
}

static const char *const device_fields[] = {
    "deviceId",         "Device ID", "rootOfTrust", "Root of trust", "developmentMode",
    "Development mode", "cgroup",    "Cgroup",      "landlockAbi",   "Landlock ABI",
    "network",          "Network",   "apps",        "Apps",          NULL,
};

static int show_attached(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    json_t *res = NULL;
    int r = call_simple(cmd, args, "device.show", NULL, -1, &res, e);
    return r != PV_OK ? r : cli_print_object(args->json, res, device_fields);
}

static int capability_update(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    json_t *res = NULL;
    int r = with_file(cmd, args, "capability-file", "capability.update", &res, e);
    return r != PV_OK ? r : cli_print_object(args->json, res, device_fields);
}

static const cli_opt cid_opts[] = {OPT_CID, OPT_SOCKET, CLI_OPT_END};
static const cli_opt status_opts[] = {
    {"component-id", "ID", false, "one app (default: every app)"}, OPT_SOCKET, CLI_OPT_END};
static const cli_opt socket_opts[] = {OPT_SOCKET, CLI_OPT_END};
static const cli_opt deploy_opts[] = {
    {"image-package", "FILE", true, "the signed application image package"},
    OPT_SOCKET,
    CLI_OPT_END};
static const cli_opt capability_opts[] = {
    {"capability-file", "FILE", true,
     "the capability file the service signed for this device (pavise device capability "
     "download)"},
    OPT_SOCKET,
    CLI_OPT_END};

const cli_cmd cli_device_local_cmds[] = {
    {"device", "app start", "Start an app on this device", "Runs on the device, as root.", cid_opts,
     true, app_start},
    {"device", "app stop", "Stop an app on this device (SIGTERM, then SIGKILL)",
     "It stays stopped until 'app start' or the next boot. Runs on the device, as root.", cid_opts,
     true, app_stop},
    {"device", "app show-status", "Show the state of the apps on this device",
     "State, restarts, memory and the failures recorded. Runs on the device, as root.", status_opts,
     true, app_status},
    {"device", "app show-quota", "Show an app's mutable storage use and quota",
     "Runs on the device, as root.", cid_opts, true, app_quota},
    {"device", "sideload deploy", "Install an app image package and start it",
     "Development mode only: the device must have a development capability applied. The "
     "package must be signed under the update root or a development root of that capability. "
     "Runs on the device, as root.",
     deploy_opts, true, sideload_deploy},
    {"device", "sideload delete", "Remove an app and its storage",
     "Development mode only. Runs on the device, as root.", cid_opts, true, sideload_delete},
    {"device", "image install", "Install a production app image package and start it",
     "The package must be signed under the device's update root (development images go through "
     "'sideload deploy'). Its security counter may not be below the component's highest "
     "installed one. Runs on the device, as root.",
     deploy_opts, true, image_install},
    {"device", "image list-installed", "List the app images installed on this device",
     "Runs on the device, as root.", socket_opts, true, image_list},
    {"device", "show-attached", "Show this device: ID, root of trust, development mode, sandbox",
     "Runs on the device, as root.", socket_opts, true, show_attached},
    {"device", "capability update", "Apply a capability file to this device",
     "Verifies it (signed by the service for this device ID) and enables what it grants, such "
     "as development mode. Runs on the device, as root.",
     capability_opts, true, capability_update},
    {NULL, NULL, NULL, NULL, NULL, false, NULL},
};
