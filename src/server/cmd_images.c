/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavise-server image-root and os-image (cmd_images.h). Each change is one write
 * transaction with its server-wide audit row, like `factory add`.
 */
#include "cmd_images.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/fs.h"
#include "pavise/imgpkg.h"
#include "pavise/json.h"
#include "pavise/platform.h"
#include "pavise/uuid.h"
#include "pavise/x509.h"

#include "images.h"
#include "server_cmd.h"

#define OPT_DATA                                                                                   \
    {                                                                                              \
        "data", "DIR", true, "the data directory made by init"                                     \
    }
#define OPT_CONFIG                                                                                 \
    {                                                                                              \
        "config", "FILE", false, "the configuration file (default: DIR/server.conf)"               \
    }
#define OPT_DB                                                                                     \
    {                                                                                              \
        "db", "URL", false, "sqlite:PATH or postgres:CONNINFO (default: from the configuration)"   \
    }
#define OPT_END                                                                                    \
    {                                                                                              \
        NULL, NULL, false, NULL                                                                    \
    }

const cli_opt cmd_images_db_opts[] = {OPT_DATA, OPT_CONFIG, OPT_DB, OPT_END};
const cli_opt cmd_image_root_add_opts[] = {
    OPT_DATA,
    {"cert", "FILE", true, "the root's CA certificate (PEM)"},
    {"development", NULL, false, "images signed under it are development images"},
    OPT_CONFIG,
    OPT_DB,
    OPT_END,
};
const cli_opt cmd_image_root_remove_opts[] = {
    OPT_DATA,
    {"fingerprint", "FP", true, "the root's SHA-256 fingerprint (64 hex digits)"},
    OPT_CONFIG,
    OPT_DB,
    OPT_END};
const cli_opt cmd_os_image_add_opts[] = {
    OPT_DATA,
    {"image-package", "FILE", true, "the OS image package"},
    {"feed", "Retail|RetailEval", true, "the OS feed it belongs to"},
    OPT_CONFIG,
    OPT_DB,
    OPT_END,
};
const cli_opt cmd_os_image_revoke_opts[] = {
    OPT_DATA, {"image-id", "ID", true, "the image ID (a UUID)"}, OPT_CONFIG, OPT_DB, OPT_END};

/* A store conflict as the exit code the pavise CLI gives a 409. */
static int conflict(int r)
{
    return r == PV_ERR_EXISTS ? CLI_ERR_CONFLICT : r;
}

static json_t *time_json(int64_t t)
{
    char when[PV_TIME_TEXT_LEN + 1];
    return pv_time_format(t, when) ? json_string(when) : json_null();
}

/* Audit detail text (JSON) of obj, which is stolen. NULL: out of memory. */
static char *detail_of(json_t *obj)
{
    char *s = obj != NULL ? json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(obj);
    return s;
}

/* Prints the rows of a list as a table or JSON. rows' columns map to keys; the kinds
 * say how: 's' text, 'i' integer, 'b' boolean (0/1), 't' time (NULL: null). */
static int print_rows(bool json, const store_rows *rows, const char *const *keys, const char *kinds,
                      const char *const *columns, pv_err *e)
{
    json_t *items = json_array();
    for (size_t i = 0; items != NULL && i < store_rows_count(rows); i++) {
        json_t *o = json_object();
        for (size_t k = 0; o != NULL && keys[k] != NULL; k++) {
            json_t *v = NULL;
            if (store_rows_is_null(rows, i, k)) {
                v = json_null();
            } else if (kinds[k] == 's') {
                v = json_string(store_rows_text(rows, i, k));
            } else if (kinds[k] == 'i') {
                v = json_integer(store_rows_int(rows, i, k));
            } else if (kinds[k] == 'b') {
                v = json_boolean(store_rows_int(rows, i, k) != 0);
            } else {
                v = time_json(store_rows_int(rows, i, k));
            }
            if (json_object_set_new(o, keys[k], v) != 0) {
                json_decref(o);
                o = NULL;
            }
        }
        if (o == NULL || json_array_append_new(items, o) != 0) {
            json_decref(items);
            items = NULL;
        }
    }
    if (items == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    return cli_print_table(json, items, columns);
}

/* ---- image-root ---- */

int cmd_image_root_add(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    const char *path = cli_get(cmd, args, "cert");
    bool development = cli_flag(cmd, args, "development");
    store *db = NULL;
    uint8_t *pem = NULL;
    size_t len = 0;
    char fp[65] = "", *detail = NULL;
    int r = pv_fs_read_file(path, PV_PEM_MAX_FILE, &pem, &len, e);
    if (r == PV_OK) {
        r = server_cmd_open_db(cmd, args, &db, e);
    }
    if (r == PV_OK) {
        r = store_begin(db, true, e);
    }
    if (r != PV_OK) {
        goto out;
    }
    r = images_add_root(db, (const char *)pem, len, development, pv_time_now(), fp, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "%s", path);
    } else if ((detail = detail_of(json_pack("{s:b}", "development", development))) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    if ((r = server_cmd_end_tx(db, r, "image_root.add", fp, detail, e)) != PV_OK) {
        r = conflict(r);
        goto out;
    }
    static const char *const fields[] = {"fingerprint", "Image root added:", "development",
                                         "Development:", NULL};
    r = cli_print_object(
        args->json, json_pack("{s:s, s:b}", "fingerprint", fp, "development", development), fields);
out:
    free(detail);
    store_close(db);
    free(pem);
    return r;
}

int cmd_image_root_list(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    static const char *const keys[] = {"fingerprint", "development", "created_at", "subject", NULL};
    static const char *const columns[] = {"fingerprint", "FINGERPRINT", "development",
                                          "DEVELOPMENT", "created_at",  "ADDED",
                                          "subject",     "SUBJECT",     NULL};
    store *db = NULL;
    store_rows *rows = NULL;
    int r = server_cmd_open_db(cmd, args, &db, e);
    if (r == PV_OK) {
        r = store_exec(db,
                       "SELECT fingerprint, development, created_at, subject FROM image_roots "
                       "ORDER BY created_at, fingerprint",
                       NULL, 0, &rows, NULL, e);
    }
    if (r == PV_OK) {
        if (!args->json && store_rows_count(rows) == 0) {
            printf("No image roots. Add one with `pavise-server image-root add`.\n");
        } else {
            r = print_rows(args->json, rows, keys, "sbts", columns, e);
        }
    }
    store_rows_free(rows);
    store_close(db);
    return r;
}

/* 64 hex digits, either case, optionally after "SHA256:", into lowercase. */
static int parse_fingerprint(const char *s, char out[65], pv_err *e)
{
    if (strncmp(s, "SHA256:", 7) == 0) {
        s += 7;
    }
    if (strlen(s) != 64 || strspn(s, "0123456789abcdefABCDEF") != 64) {
        return pv_err_set(e, PV_ERR_USAGE, "--fingerprint: not 64 hexadecimal digits");
    }
    for (size_t i = 0; i < 64; i++) {
        out[i] = (char)(s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 'a' : s[i]);
    }
    out[64] = '\0';
    return PV_OK;
}

int cmd_image_root_remove(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    store *db = NULL;
    char fp[65];
    int64_t changes = 0;
    int r = parse_fingerprint(cli_get(cmd, args, "fingerprint"), fp, e);
    if (r == PV_OK) {
        r = server_cmd_open_db(cmd, args, &db, e);
    }
    if (r == PV_OK) {
        r = store_begin(db, true, e);
    }
    if (r != PV_OK) {
        goto out;
    }
    store_val p[] = {SV_TEXT(fp)};
    r = store_exec(db, "DELETE FROM image_roots WHERE fingerprint = $1", p, 1, NULL, &changes, e);
    if (r == PV_OK && changes == 0) {
        r = pv_err_set(e, CLI_ERR_NOT_FOUND, "no image root has fingerprint %s", fp);
    }
    if ((r = server_cmd_end_tx(db, r, "image_root.remove", fp, "{}", e)) != PV_OK) {
        goto out;
    }
    static const char *const fields[] = {"fingerprint", "Image root removed:", NULL};
    r = cli_print_object(args->json, json_pack("{s:s}", "fingerprint", fp), fields);
out:
    store_close(db);
    return r;
}

/* ---- os-image ---- */

/* Opens and verifies a whole OS image package: chain to an image root and signature
 * (images_verify), then the payload against its signed digest, so that what the
 * service registers is a package a device can install. */
static int open_os_package(store *db, const char *path, pv_imgpkg **out, bool *development,
                           pv_err *e)
{
    *out = NULL;
    pv_imgpkg *pkg = NULL;
    int r = pv_imgpkg_open(path, &pkg, e);
    if (r == PV_OK && pv_imgpkg_manifest(pkg)->type != PV_IMAGE_OS) {
        r = pv_err_set(e, PV_ERR_FORMAT,
                       "an application image; tenants register theirs with `pavise image add`");
    }
    if (r == PV_OK) {
        r = images_verify(db, pkg, development, e);
    }
    if (r == PV_OK) {
        r = pv_imgpkg_verify_self(pkg, e);
    }
    if (r != PV_OK) {
        pv_imgpkg_free(pkg);
        return pv_err_wrap(e, r, "%s", path);
    }
    *out = pkg;
    return PV_OK;
}

int cmd_os_image_add(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    const char *path = cli_get(cmd, args, "image-package");
    const char *feed = cli_get(cmd, args, "feed");
    store *db = NULL;
    pv_imgpkg *pkg = NULL;
    bool development = false;
    char id[37] = "", *detail = NULL;
    if (strcmp(feed, "Retail") != 0 && strcmp(feed, "RetailEval") != 0) {
        return pv_err_set(e, PV_ERR_USAGE, "--feed: '%s' is not Retail or RetailEval", feed);
    }
    int r = server_cmd_open_db(cmd, args, &db, e);
    if (r == PV_OK) {
        r = open_os_package(db, path, &pkg, &development, e);
    }
    if (r == PV_OK) {
        r = store_begin(db, true, e);
    }
    if (r != PV_OK) {
        goto out;
    }
    const pv_manifest *m = pv_imgpkg_manifest(pkg);
    r = images_record(db, pkg, NULL, feed, development, pv_time_now(), id, e);
    if (r == PV_OK && (detail = detail_of(json_pack("{s:s, s:s, s:s, s:b}", "name", m->name,
                                                    "version", m->version, "os_feed", feed,
                                                    "development", development))) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    if ((r = server_cmd_end_tx(db, r, "os_image.add", id, detail, e)) != PV_OK) {
        r = conflict(r);
        goto out;
    }
    uint8_t digest[PV_SHA256_LEN];
    char hex[2 * PV_SHA256_LEN + 1] = "";
    if (pv_imgpkg_manifest_digest(pkg, digest) == PV_OK) {
        pv_hex_encode(digest, sizeof(digest), hex, sizeof(hex));
    }
    static const char *const fields[] = {
        "id",          "OS image added:", "name",  "Name:",           "version",
        "Version:",    "os_feed",         "Feed:", "manifest_sha256", "Manifest SHA-256:",
        "development", "Development:",    NULL};
    r = cli_print_object(args->json,
                         json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "id", id, "name", m->name,
                                   "version", m->version, "os_feed", feed, "manifest_sha256", hex,
                                   "development", development),
                         fields);
out:
    free(detail);
    pv_imgpkg_free(pkg);
    store_close(db);
    return r;
}

int cmd_os_image_list(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    static const char *const keys[] = {
        "id",          "name",       "version",    "os_feed",         "security_counter",
        "development", "created_at", "revoked_at", "manifest_sha256", "component_id",
        NULL};
    static const char *const columns[] = {
        "id",   "ID",          "name",        "NAME",       "version", "VERSION", "os_feed",
        "FEED", "development", "DEVELOPMENT", "revoked_at", "REVOKED", NULL};
    store *db = NULL;
    store_rows *rows = NULL;
    int r = server_cmd_open_db(cmd, args, &db, e);
    if (r == PV_OK) {
        r = store_exec(db,
                       "SELECT id, name, version, os_feed, security_counter, development, "
                       "created_at, revoked_at, manifest_sha256, component_id FROM images "
                       "WHERE tenant_id IS NULL ORDER BY created_at, id",
                       NULL, 0, &rows, NULL, e);
    }
    if (r == PV_OK) {
        if (!args->json && store_rows_count(rows) == 0) {
            printf("No OS images. Add one with `pavise-server os-image add`.\n");
        } else {
            r = print_rows(args->json, rows, keys, "ssssibttss", columns, e);
        }
    }
    store_rows_free(rows);
    store_close(db);
    return r;
}

/* Revoking is idempotent, as in the API: a second revocation changes nothing and says
 * when the first one was. */
int cmd_os_image_revoke(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    const char *arg = cli_get(cmd, args, "image-id");
    uint8_t u[PV_UUID_LEN];
    char id[PV_UUID_STR_LEN];
    store *db = NULL;
    store_rows *rows = NULL;
    int64_t changes = 0, now = pv_time_now();
    if (pv_uuid_parse(arg, u) != PV_OK) {
        return pv_err_set(e, PV_ERR_USAGE, "--image-id: not a UUID");
    }
    pv_uuid_format(u, id);
    int r = server_cmd_open_db(cmd, args, &db, e);
    if (r == PV_OK) {
        r = store_begin(db, true, e);
    }
    if (r != PV_OK) {
        goto out;
    }
    store_val p[] = {SV_TEXT(id), SV_INT(now)};
    r = store_exec(db,
                   "UPDATE images SET revoked_at = $2 "
                   "WHERE id = $1 AND tenant_id IS NULL AND revoked_at IS NULL",
                   p, 2, NULL, &changes, e);
    if (r == PV_OK && changes == 0) {
        /* Nothing to change: nothing to audit either. */
        store_rollback(db);
        r = store_exec(db, "SELECT revoked_at FROM images WHERE id = $1 AND tenant_id IS NULL", p,
                       1, &rows, NULL, e);
        if (r == PV_OK && store_rows_count(rows) == 0) {
            r = pv_err_set(e, CLI_ERR_NOT_FOUND, "no OS image has ID %s", id);
        }
        if (r != PV_OK) {
            goto out;
        }
        now = store_rows_int(rows, 0, 0);
    } else if ((r = server_cmd_end_tx(db, r, "os_image.revoke", id, "{}", e)) != PV_OK) {
        goto out;
    }
    static const char *const fields[] = {"id", "OS image revoked:", "revoked_at", "Revoked:", NULL};
    r = cli_print_object(args->json,
                         json_pack("{s:s, s:o}", "id", id, "revoked_at", time_json(now)), fields);
out:
    store_rows_free(rows);
    store_close(db);
    return r;
}
