/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tenant's application images (images.h). An upload is the package head as base64,
 * verified against the image roots: its chain must lead to one (production roots make
 * production images, development roots development images) and its signature must hold.
 * OS images are the service operator's (`pavise-server os-image add`), so a tenant's
 * upload of one is refused. Revoking is idempotent: the first revocation sets
 * revoked_at and is audited; a later one answers the image as it is and changes nothing.
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/base64.h"
#include "pavise/imgpkg.h"
#include "pavise/uuid.h"

#include "images.h"

#define IMAGE_COLUMNS                                                                              \
    "id, tenant_id, component_id, kind, name, version, security_counter, manifest_sha256, "        \
    "development, created_at, revoked_at FROM images "

static int oom(api_ctx *c)
{
    return api_fail(c, 500, "internal", "out of memory");
}

static json_t *text_of(const store_rows *rows, size_t i, size_t col)
{
    const char *s = store_rows_text(rows, i, col);
    return json_string(s != NULL ? s : "");
}

static json_t *image_json(const store_rows *rows, size_t i)
{
    json_t *o = json_object();
    if (o == NULL || json_object_set_new(o, "id", text_of(rows, i, 0)) != 0 ||
        json_object_set_new(o, "tenant_id", text_of(rows, i, 1)) != 0 ||
        json_object_set_new(o, "component_id", text_of(rows, i, 2)) != 0 ||
        json_object_set_new(o, "kind", text_of(rows, i, 3)) != 0 ||
        json_object_set_new(o, "name", text_of(rows, i, 4)) != 0 ||
        json_object_set_new(o, "version", text_of(rows, i, 5)) != 0 ||
        json_object_set_new(o, "security_counter", json_integer(store_rows_int(rows, i, 6))) != 0 ||
        json_object_set_new(o, "manifest_sha256", text_of(rows, i, 7)) != 0 ||
        json_object_set_new(o, "development", json_boolean(store_rows_int(rows, i, 8) != 0)) != 0 ||
        json_object_set_new(o, "created_at", api_time(store_rows_int(rows, i, 9))) != 0 ||
        json_object_set_new(o, "revoked_at",
                            store_rows_is_null(rows, i, 10)
                                ? json_null()
                                : api_time(store_rows_int(rows, i, 10))) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Reads one of this tenant's images. PV_OK; PV_ERR_NOT_FOUND (no response set);
 * otherwise the response is set. */
static int load_image(api_ctx *c, const char *id, json_t **out)
{
    *out = NULL;
    int r = PV_ERR_INTERNAL;
    pv_err e = {0};
    store_rows *rows = NULL;
    store_val p[] = {SV_TEXT(c->tenant_id), SV_TEXT(id)};
    r = store_exec(c->db, "SELECT " IMAGE_COLUMNS "WHERE tenant_id = $1 AND id = $2", p, 2, &rows,
                   NULL, &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
    } else if (store_rows_count(rows) == 0) {
        r = PV_ERR_NOT_FOUND;
    } else if ((*out = image_json(rows, 0)) == NULL) {
        r = oom(c);
    }
    store_rows_free(rows);
    return r;
}

static int image_not_found(api_ctx *c, const char *id)
{
    return api_fail(c, 404, "not_found", "image %s not found in this tenant", id);
}

/* Strict RFC 4648 base64 of at most IMAGES_MAX_HEAD bytes into a new allocation.
 * PV_OK; PV_ERR_FORMAT; PV_ERR_TOO_LARGE; PV_ERR_NOMEM. */
static int decode_head(const char *s, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    size_t n = strlen(s);
    if (n == 0) {
        return PV_ERR_FORMAT;
    }
    size_t max = pv_base64_decoded_max(n);
    if (max > IMAGES_MAX_HEAD + 2) {
        return PV_ERR_TOO_LARGE;
    }
    uint8_t *buf = malloc(max);
    if (buf == NULL) {
        return PV_ERR_NOMEM;
    }
    if (pv_base64_decode(s, n, PV_BASE64_STD, buf, max, out_len) != PV_OK) {
        free(buf);
        return PV_ERR_FORMAT;
    }
    *out = buf;
    return PV_OK;
}

/* Why a verified-looking head is refused, as the client's 400 (or a 500 for a failure
 * of the service's own). */
static int verify_fail(api_ctx *c, int r, const pv_err *e)
{
    if (r == PV_ERR_IO || r == PV_ERR_NOMEM || r == PV_ERR_INTERNAL || r == PV_ERR_CRYPTO) {
        return api_store_fail(c, r, e, NULL);
    }
    return api_fail(c, 400, "bad_request", "package: %s", pv_err_msg(e));
}

int api_image_create(api_ctx *c)
{
    static const char *const fields[] = {"package", NULL};
    int r = PV_ERR_INTERNAL;
    pv_err e = {0};
    const char *b64 = NULL;
    uint8_t *head = NULL;
    size_t len = 0;
    pv_imgpkg *pkg = NULL;
    bool development = false;
    char id[37] = "", what[128];
    json_t *o = NULL;

    /* The body limit (max_body) bounds the string already; this bounds it by the
     * format, whatever the configuration says. */
    if ((r = api_body_fields(c, fields)) != PV_OK ||
        (r = api_body_string(c, "package", true, (IMAGES_MAX_HEAD + 2) / 3 * 4, &b64)) != PV_OK) {
        goto out;
    }
    r = decode_head(b64, &head, &len);
    if (r == PV_ERR_NOMEM) {
        r = oom(c);
        goto out;
    }
    if (r != PV_OK) {
        r = api_fail(c, 400, "bad_request", "package: not valid base64");
        goto out;
    }
    if ((r = pv_imgpkg_open_head(head, len, &pkg, &e)) != PV_OK) {
        r = r == PV_ERR_NOMEM ? oom(c) : api_fail(c, 400, "bad_request", "package: %s", e.msg);
        goto out;
    }
    if (pv_imgpkg_manifest(pkg)->type != PV_IMAGE_APPLICATION) {
        r = api_fail(c, 400, "bad_request",
                     "package: an %s image; a tenant registers application images (OS images "
                     "are the service's own)",
                     pv_image_type_name(pv_imgpkg_manifest(pkg)->type));
        goto out;
    }
    /* Verified before the write transaction, which it would only hold longer. */
    if ((r = images_verify(c->db, pkg, &development, &e)) != PV_OK) {
        r = verify_fail(c, r, &e);
        goto out;
    }
    if ((r = api_tx_begin(c)) != PV_OK) {
        goto out;
    }
    r = images_record(c->db, pkg, c->tenant_id, NULL, development, c->now, id, &e);
    if (r != PV_OK) {
        /* The ID may be another tenant's: the message names only the ID the caller sent. */
        pv_uuid_format(pv_imgpkg_manifest(pkg)->image_id, id);
        snprintf(what, sizeof(what), "image %s is already registered", id);
        r = api_store_fail(c, r, &e, what);
        goto out;
    }
    const pv_manifest *m = pv_imgpkg_manifest(pkg);
    r = api_audit(c, "image.add", id,
                  json_pack("{s:s, s:s, s:b}", "name", m->name, "version", m->version,
                            "development", development),
                  &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if ((r = load_image(c, id, &o)) != PV_OK) {
        r = r == PV_ERR_NOT_FOUND ? api_fail(c, 500, "internal", "new image vanished") : r;
        goto out;
    }
    if ((r = api_tx_commit(c)) != PV_OK) {
        goto out;
    }
    r = api_ok(c, 201, o);
    o = NULL;
out:
    json_decref(o);
    pv_imgpkg_free(pkg);
    free(head);
    return r;
}

int api_image_list(api_ctx *c)
{
    int r = PV_ERR_INTERNAL;
    pv_err e = {0};
    store_rows *rows = NULL;
    size_t limit = 0;
    const char *after = NULL;
    json_t *items = NULL;

    if ((r = api_page(c, &limit, &after)) != PV_OK) {
        goto out;
    }
    store_val p[] = {SV_TEXT(c->tenant_id), SV_TEXT(after), SV_INT(limit + 1)};
    r = store_exec(c->db,
                   "SELECT " IMAGE_COLUMNS "WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                   p, 3, &rows, NULL, &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    size_t n = store_rows_count(rows), kept = n > limit ? limit : n;
    if ((items = json_array()) == NULL) {
        r = oom(c);
        goto out;
    }
    for (size_t i = 0; i < kept; i++) {
        if (json_array_append_new(items, image_json(rows, i)) != 0) {
            r = oom(c);
            goto out;
        }
    }
    r = api_page_done(c, items, n > limit ? store_rows_text(rows, kept - 1, 0) : NULL);
    items = NULL;
out:
    json_decref(items);
    store_rows_free(rows);
    return r;
}

int api_image_show(api_ctx *c)
{
    json_t *o = NULL;
    int r = load_image(c, c->params[1], &o);
    if (r == PV_ERR_NOT_FOUND) {
        return image_not_found(c, c->params[1]);
    }
    return r == PV_OK ? api_ok(c, 200, o) : r;
}

int api_image_revoke(api_ctx *c)
{
    int r = PV_ERR_INTERNAL;
    pv_err e = {0};
    const char *id = c->params[1];
    int64_t changes = 0;
    json_t *o = NULL;

    if ((r = api_tx_begin(c)) != PV_OK) {
        goto out;
    }
    store_val p[] = {SV_TEXT(c->tenant_id), SV_TEXT(id), SV_INT(c->now)};
    r = store_exec(c->db,
                   "UPDATE images SET revoked_at = $3 "
                   "WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
                   p, 3, NULL, &changes, &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    /* No change: unknown here (404), or revoked before (the image as it is). */
    if (changes > 0 && (r = api_audit(c, "image.revoke", id, NULL, &e)) != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if ((r = load_image(c, id, &o)) != PV_OK) {
        r = r == PV_ERR_NOT_FOUND ? image_not_found(c, id) : r;
        goto out;
    }
    if ((r = api_tx_commit(c)) != PV_OK) {
        goto out;
    }
    r = api_ok(c, 200, o);
    o = NULL;
out:
    json_decref(o);
    return r;
}
