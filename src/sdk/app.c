/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libpavise-app: what the runtime put in the environment (the channel's fd, the app's
 * names, its storage and device-certificate paths), read once and copied, and the
 * functions that need nothing more. The channel itself is chan.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "sdk.h"

#define NAME_MAX_LEN 128
#define PATH_LEN     PATH_MAX

/* A send that cannot complete in this long (the runtime stopped reading) fails, and the
 * log line goes to stderr instead of blocking the app. */
#define SEND_TIMEOUT_MS 2000

static pthread_mutex_t env_lock = PTHREAD_MUTEX_INITIALIZER;
static int env_ready; /* read and written with __atomic builtins */
static sdk_env env;
static char name_buf[NAME_MAX_LEN], id_buf[NAME_MAX_LEN];
static char storage_buf[PATH_LEN], cert_buf[PATH_LEN], chain_buf[PATH_LEN];

const char *pv_app_strerror(int result)
{
    switch (result) {
    case PV_APP_OK:
        return "success";
    case PV_APP_ERR_NO_RUNTIME:
        return "not running under pavised";
    case PV_APP_ERR_DENIED:
        return "not granted by the app's manifest";
    case PV_APP_ERR_INVALID:
        return "invalid argument";
    case PV_APP_ERR_IO:
        return "the channel to the runtime failed";
    case PV_APP_ERR_LIMIT:
        return "over a limit";
    case PV_APP_ERR_NOT_READY:
        return "not ready";
    default:
        return "unknown result";
    }
}

/* Copies the variable when it is set, not empty and fits; otherwise NULL. */
static const char *copy_var(const char *var, char *buf, size_t size, bool absolute)
{
    const char *v = getenv(var);
    size_t n = v != NULL ? strlen(v) : 0;
    if (n == 0 || n >= size || (absolute && v[0] != '/')) {
        return NULL;
    }
    memcpy(buf, v, n + 1);
    return buf;
}

/* PAVISE_FD: decimal digits only, and it must be a unix SOCK_SEQPACKET socket; anything
 * else means no runtime (said once on stderr, since a runtime that set it expects it). */
static int open_channel(void)
{
    const char *v = getenv("PAVISE_FD");
    long fd = 0;
    int type = 0, domain = 0;
    socklen_t len = sizeof(type);
    if (v == NULL) {
        return -1;
    }
    size_t n = strlen(v);
    if (n == 0 || n > 9) {
        goto bad;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') {
            goto bad;
        }
        fd = fd * 10 + (v[i] - '0');
    }
    if (fcntl((int)fd, F_GETFD) < 0 || getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
        type != SOCK_SEQPACKET) {
        goto bad;
    }
    len = sizeof(domain);
    if (getsockopt((int)fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX) {
        goto bad;
    }
    /* Programs the app starts do not inherit the channel. */
    (void)fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    struct timeval tv = {.tv_sec = SEND_TIMEOUT_MS / 1000,
                         .tv_usec = (SEND_TIMEOUT_MS % 1000) * 1000};
    (void)setsockopt((int)fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return (int)fd;
bad:
    fprintf(stderr,
            "libpavise-app: PAVISE_FD=%.16s is not the runtime's channel; running without "
            "it\n",
            v);
    return -1;
}

const sdk_env *sdk_env_get(void)
{
    if (__atomic_load_n(&env_ready, __ATOMIC_ACQUIRE)) {
        return &env;
    }
    pthread_mutex_lock(&env_lock);
    if (!env_ready) {
        env.fd = open_channel();
        env.name = copy_var("PAVISE_APP_NAME", name_buf, sizeof(name_buf), false);
        env.component_id = copy_var("PAVISE_COMPONENT_ID", id_buf, sizeof(id_buf), false);
        env.storage = copy_var("PAVISE_STORAGE", storage_buf, sizeof(storage_buf), true);
        env.cert = copy_var("PAVISE_DEVICE_CERT", cert_buf, sizeof(cert_buf), true);
        env.chain = copy_var("PAVISE_DEVICE_CHAIN", chain_buf, sizeof(chain_buf), true);
        __atomic_store_n(&env_ready, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&env_lock);
    return &env;
}

void sdk_reset(void)
{
    pthread_mutex_lock(&env_lock);
    __atomic_store_n(&env_ready, 0, __ATOMIC_RELEASE);
    memset(&env, 0, sizeof(env));
    env.fd = -1;
    pthread_mutex_unlock(&env_lock);
    sdk_chan_reset();
}

const char *pv_app_name(void)
{
    return sdk_env_get()->name;
}

const char *pv_app_component_id(void)
{
    return sdk_env_get()->component_id;
}

const char *pv_app_storage_path(void)
{
    return sdk_env_get()->storage;
}

/* What to return when the environment lacks something the manifest would grant. */
static int not_granted(const sdk_env *s)
{
    return s->fd >= 0 ? PV_APP_ERR_DENIED : PV_APP_ERR_NO_RUNTIME;
}

/* blocks * size / 1024 without overflow (saturates: no real file system gets there). */
static uint64_t to_kb(uint64_t blocks, uint64_t size)
{
    uint64_t bytes;
    if (__builtin_mul_overflow(blocks, size, &bytes)) {
        return UINT64_MAX / 1024;
    }
    return bytes / 1024;
}

int pv_app_storage_usage(uint64_t *used_kb, uint64_t *quota_kb)
{
    const sdk_env *s = sdk_env_get();
    struct statvfs st;
    if (used_kb == NULL || quota_kb == NULL) {
        return PV_APP_ERR_INVALID;
    }
    *used_kb = 0;
    *quota_kb = 0;
    if (s->storage == NULL) {
        return not_granted(s);
    }
    if (statvfs(s->storage, &st) != 0 || st.f_bfree > st.f_blocks) {
        return PV_APP_ERR_IO;
    }
    *used_kb = to_kb(st.f_blocks - st.f_bfree, st.f_frsize);
    *quota_kb = to_kb(st.f_blocks, st.f_frsize);
    return PV_APP_OK;
}

int pv_app_device_auth_paths(const char **cert, const char **chain)
{
    const sdk_env *s = sdk_env_get();
    if (cert != NULL) {
        *cert = NULL;
    }
    if (chain != NULL) {
        *chain = NULL;
    }
    if (s->cert == NULL || s->chain == NULL) {
        return not_granted(s);
    }
    if (cert != NULL) {
        *cert = s->cert;
    }
    if (chain != NULL) {
        *chain = s->chain;
    }
    return PV_APP_OK;
}

/* Opening is the real test: it sees the compartment's Landlock rules and the file's
 * owner, which access() would not all report. */
static bool readable_file(const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        return false;
    }
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
    close(fd);
    return ok;
}

bool pv_app_device_auth_ready(void)
{
    const char *cert, *chain;
    if (pv_app_device_auth_paths(&cert, &chain) != PV_APP_OK) {
        return false;
    }
    return readable_file(cert) && readable_file(chain);
}
