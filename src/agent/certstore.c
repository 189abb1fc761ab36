/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The certificate store under STATE/certs (pavise/attest.h). Every new file is written
 * under a temporary name and fsynced first; only then are they renamed into place, one
 * after the other, so the window in which a reader could see old and new files side by
 * side is a few renames long and no reader ever sees a partial file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "attest_internal.h"
#include "pavise/devstate.h"
#include "pavise/fs.h"

#define PEM_MAX    (PV_CHAIN_MAX_CERTS * 3 * PV_CERT_MAX_DER)
#define STATUS_MAX 4096

enum { F_SERVICE_CA, F_SERVICE, F_CHAIN, F_CLIENT, F_KEY, F_STATUS, F_COUNT };

/* Rename order: trust first, the key and the verdict last. */
static const struct {
    const char *rel;
    mode_t mode;
} files[F_COUNT] = {
    [F_SERVICE_CA] = {PV_ATTEST_SERVICE_CA, 0644}, [F_SERVICE] = {PV_ATTEST_SERVICE_CRT, 0644},
    [F_CHAIN] = {PV_ATTEST_CLIENT_CHAIN, 0644},    [F_CLIENT] = {PV_ATTEST_CLIENT_CRT, 0644},
    [F_KEY] = {PV_ATTEST_TLS_KEY, 0600},           [F_STATUS] = {PV_ATTEST_STATUS, 0644},
};

/* STATE/certs: a real directory (not a link somewhere else), 0700. */
static int ensure_dir(const char *state_dir, pv_err *e)
{
    char *dir = pv_devstate_path(state_dir, PV_ATTEST_CERTS_DIR);
    int r = PV_ERR_IO;
    struct stat st;
    if (dir == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "cannot create %s", dir);
    } else if (lstat(dir, &st) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", dir);
    } else if (!S_ISDIR(st.st_mode)) {
        r = pv_err_set(e, PV_ERR_IO, "%s is not a directory", dir);
    } else if ((st.st_mode & 07777) != 0700 && chmod(dir, 0700) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "cannot restrict %s to its owner", dir);
    } else {
        r = PV_OK;
    }
    free(dir);
    return r;
}

static int remove_file(const char *state_dir, const char *rel, bool *removed, pv_err *e)
{
    char *path = pv_devstate_path(state_dir, rel);
    if (path == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int r = PV_OK;
    if (unlink(path) == 0) {
        *removed = true;
    } else if (errno != ENOENT) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "cannot remove %s", path);
    }
    free(path);
    return r;
}

/* Removes the client certificate and chain (the chain first: a reader that finds
 * client.crt also finds its chain), then makes the removal durable. */
static int remove_client(const char *state_dir, pv_err *e)
{
    bool removed = false;
    int r = remove_file(state_dir, PV_ATTEST_CLIENT_CHAIN, &removed, e);
    if (r == PV_OK) {
        r = remove_file(state_dir, PV_ATTEST_CLIENT_CRT, &removed, e);
    }
    if (r == PV_OK && removed) {
        char *path = pv_devstate_path(state_dir, PV_ATTEST_CLIENT_CRT);
        r = path != NULL ? pv_fs_sync_parent(path, e)
                         : pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        free(path);
    }
    return r;
}

static int cert_pem(const pv_cert *c, pv_buf *out)
{
    pv_chain *ch = pv_chain_new();
    int r = ch != NULL ? pv_chain_add(ch, (pv_cert *)c) : PV_ERR_NOMEM;
    if (r == PV_OK) {
        r = pv_chain_to_pem(ch, out);
    }
    pv_chain_free(ch);
    return r;
}

static int status_json(const pv_attest_result *res, pv_buf *out)
{
    json_t *o = json_pack(
        "{s:s, s:s, s:I, s:I, s:I}", "result", pv_attest_verdict_name(res->verdict), "reason",
        res->reason, "at", (json_int_t)res->at, "serviceNotAfter",
        (json_int_t)res->service_not_after, "clientNotAfter", (json_int_t)res->client_not_after);
    char *text = o != NULL ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    int r = text != NULL ? pv_buf_append(out, text, strlen(text)) : PV_ERR_NOMEM;
    if (r == PV_OK) {
        r = pv_buf_append_u8(out, '\n');
    }
    free(text);
    json_decref(o);
    return r;
}

/* The contents of each file to write (NULL: leave it alone). */
static int contents(const attest_response *rsp, const uint8_t *key_pem, size_t key_len,
                    const pv_attest_result *res, pv_buf *buf[F_COUNT], pv_err *e)
{
    int r = PV_OK;
    for (int i = 0; i < F_COUNT; i++) {
        buf[i] = NULL;
    }
    bool certs = rsp != NULL && rsp->service_cert != NULL;
    bool client = certs && rsp->client_cert != NULL;
    for (int i = 0; i < F_COUNT && r == PV_OK; i++) {
        bool want = i == F_STATUS ||
                    (certs && (i == F_SERVICE_CA || i == F_SERVICE || i == F_KEY)) ||
                    (client && (i == F_CHAIN || i == F_CLIENT));
        if (want && (buf[i] = pv_buf_new(PEM_MAX)) == NULL) {
            r = PV_ERR_NOMEM;
        }
    }
    if (r == PV_OK && certs) {
        pv_buf_set_secret(buf[F_KEY]);
        if ((r = cert_pem(rsp->service_ca, buf[F_SERVICE_CA])) == PV_OK &&
            (r = cert_pem(rsp->service_cert, buf[F_SERVICE])) == PV_OK) {
            r = pv_buf_append(buf[F_KEY], key_pem, key_len);
        }
    }
    if (r == PV_OK && client && (r = cert_pem(rsp->client_cert, buf[F_CLIENT])) == PV_OK) {
        r = pv_chain_to_pem(rsp->client_chain, buf[F_CHAIN]);
    }
    if (r == PV_OK) {
        r = status_json(res, buf[F_STATUS]);
    }
    return r == PV_OK ? r : pv_err_set(e, r, "preparing the certificate files: %s", pv_strerror(r));
}

int attest_store(const char *state_dir, const attest_response *rsp, const uint8_t *key_pem,
                 size_t key_len, const pv_attest_result *res, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    pv_buf *buf[F_COUNT] = {NULL};
    pv_afile af[F_COUNT];
    memset(af, 0, sizeof(af));
    for (int i = 0; i < F_COUNT; i++) {
        af[i].fd = -1;
    }
    bool certs = rsp != NULL && rsp->service_cert != NULL;
    if (state_dir == NULL || res == NULL || (certs && (key_pem == NULL || key_len == 0))) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "certificate store: missing argument");
    }
    if ((r = ensure_dir(state_dir, e)) != PV_OK ||
        (r = contents(rsp, key_pem, key_len, res, buf, e)) != PV_OK) {
        goto out;
    }
    /* Every file complete and on disk before the first one replaces anything. */
    for (int i = 0; i < F_COUNT; i++) {
        if (buf[i] == NULL) {
            continue;
        }
        char *path = pv_devstate_path(state_dir, files[i].rel);
        if (path == NULL) {
            r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
            goto out;
        }
        r = pv_afile_open(&af[i], path, files[i].mode, true, e);
        free(path);
        if (r != PV_OK) {
            goto out;
        }
        if (pv_fs_write_all(af[i].fd, pv_buf_data(buf[i]), pv_buf_len(buf[i])) != PV_OK) {
            r = pv_err_sys(e, PV_ERR_IO, errno, "writing %s", af[i].path);
            goto out;
        }
    }
    /* Not passed: the client certificate goes before anything new appears. */
    if (!(certs && rsp->client_cert != NULL) && (r = remove_client(state_dir, e)) != PV_OK) {
        goto out;
    }
    for (int i = 0; i < F_COUNT; i++) {
        if (buf[i] != NULL && (r = pv_afile_commit(&af[i], e)) != PV_OK) {
            goto out;
        }
    }
    r = PV_OK;
out:
    for (int i = 0; i < F_COUNT; i++) {
        pv_afile_abort(&af[i]);
        pv_buf_free(buf[i]);
    }
    return r;
}
