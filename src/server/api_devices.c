/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Devices: claiming (with a manufacturing record uploaded now or imported before),
 * listing, showing, assigning to a device group, development and cloud-test modes, and
 * release. Every query is scoped by the caller's tenant, so a device of another tenant
 * is a 404 like one that does not exist; only a claim can tell that a device is taken,
 * and it does not say by whom.
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/base64.h"
#include "pavise/mfgrec.h"

#include "records.h"

/* A base64 record may be this long at most (PV_MFGREC_MAX_SIZE bytes, padded). */
#define B64_RECORD_MAX (4 * ((PV_MFGREC_MAX_SIZE + 2) / 3))

/* Columns of a Device, in the order device_write reads them. */
#define DEVICE_COLUMNS                                                                             \
    "d.id, d.tenant_id, d.device_group_id, g.name, g.product_id, p.name, d.development, "          \
    "d.cloud_test, m.rot_kind, m.manufactured_at, d.claimed_at, d.updated_at, "                    \
    "a.result, a.reason, a.at, a.rot_kind, a.client_not_after "                                    \
    "FROM devices d JOIN manufacturing_records m ON m.device_id = d.id "                           \
    "LEFT JOIN device_groups g ON g.id = d.device_group_id "                                       \
    "LEFT JOIN products p ON p.id = g.product_id "                                                 \
    "LEFT JOIN attestations a ON a.seq = (SELECT MAX(seq) FROM attestations "                      \
    "WHERE device_id = d.id AND tenant_id = d.tenant_id) "

/* Writes the Device object of row i (api-shapes.md). */
static void device_write(jw *w, const store_rows *rows, size_t i)
{
    const char *id = store_rows_text(rows, i, 0), *tenant = store_rows_text(rows, i, 1);
    const char *kind = store_rows_text(rows, i, 8);
    jw_object_begin(w);
    jw_key(w, "id");
    jw_string(w, id != NULL ? id : "");
    jw_key(w, "tenant_id");
    jw_string(w, tenant != NULL ? tenant : "");
    jw_key(w, "device_group_id");
    jw_string(w, store_rows_text(rows, i, 2));
    jw_key(w, "device_group_name");
    jw_string(w, store_rows_text(rows, i, 3));
    jw_key(w, "product_id");
    jw_string(w, store_rows_text(rows, i, 4));
    jw_key(w, "product_name");
    jw_string(w, store_rows_text(rows, i, 5));
    jw_key(w, "development");
    jw_bool(w, store_rows_int(rows, i, 6) != 0);
    jw_key(w, "cloud_test");
    jw_bool(w, store_rows_int(rows, i, 7) != 0);
    jw_key(w, "rot_kind");
    jw_string(w, kind != NULL ? kind : "");
    jw_key(w, "manufactured_at");
    jw_time(w, store_rows_int(rows, i, 9));
    jw_key(w, "claimed_at");
    jw_time(w, store_rows_int(rows, i, 10));
    jw_key(w, "updated_at");
    jw_time(w, store_rows_int(rows, i, 11));
    /* The last attestation while in this tenant, or null. */
    jw_key(w, "last_attestation");
    if (store_rows_is_null(rows, i, 12)) {
        jw_null(w);
    } else {
        const char *reason = store_rows_text(rows, i, 13), *akind = store_rows_text(rows, i, 15);
        jw_object_begin(w);
        jw_key(w, "result");
        jw_string(w, store_rows_text(rows, i, 12));
        jw_key(w, "reason");
        jw_string(w, reason != NULL ? reason : "");
        jw_key(w, "at");
        jw_time(w, store_rows_int(rows, i, 14));
        jw_key(w, "rot_kind");
        jw_string(w, akind);
        jw_key(w, "client_cert_not_after");
        if (store_rows_is_null(rows, i, 16)) {
            jw_null(w);
        } else {
            jw_time(w, store_rows_int(rows, i, 16));
        }
        jw_object_end(w);
    }
    jw_object_end(w);
}

/* Reads one device of this tenant and answers it with this status. PV_OK;
 * PV_ERR_NOT_FOUND (no response set); otherwise the response is already set (500). */
static int answer_device(api_ctx *c, const char *device_id, int status)
{
    int r = PV_ERR_INTERNAL;
    pv_err e = {0};
    store_rows *rows = NULL;
    store_val p[] = {SV_TEXT(c->tenant_id), SV_TEXT(device_id)};
    r = store_exec(c->db, "SELECT " DEVICE_COLUMNS "WHERE d.tenant_id = $1 AND d.id = $2", p, 2,
                   &rows, NULL, &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if (store_rows_count(rows) == 0) {
        r = PV_ERR_NOT_FOUND;
        goto out;
    }
    jw w;
    jw_init(&w, API_MAX_RESPONSE);
    device_write(&w, rows, 0);
    r = api_ok_jw(c, status, &w);
out:
    store_rows_free(rows);
    return r;
}

static int device_not_found(api_ctx *c, const char *id)
{
    return api_fail(c, 404, "not_found", "device %s not found in this tenant", id);
}

/* ---- list and show ---- */

int api_device_list(api_ctx *c)
{
    int r = PV_ERR_INTERNAL;
    pv_err e = {0};
    store_rows *rows = NULL;
    size_t limit = 0;
    const char *after = NULL, *group = api_query(c, "device_group_id");

    if ((r = api_page(c, &limit, &after)) != PV_OK) {
        goto out;
    }
    if (group != NULL && !api_valid_uuid(group)) {
        r = api_fail(c, 400, "bad_request", "device_group_id: not a lowercase UUID");
        goto out;
    }
    /* "" matches no group ID, so one statement serves both the filtered and the whole list. */
    store_val p[] = {SV_TEXT(c->tenant_id), SV_TEXT(after), SV_TEXT(group != NULL ? group : ""),
                     SV_INT(limit + 1)};
    r = store_exec(c->db,
                   "SELECT " DEVICE_COLUMNS "WHERE d.tenant_id = $1 AND d.id > $2 "
                   "AND ($3 = '' OR d.device_group_id = $3) ORDER BY d.id LIMIT $4",
                   p, 4, &rows, NULL, &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    size_t n = store_rows_count(rows), kept = n > limit ? limit : n;
    jw w;
    jw_init(&w, API_MAX_RESPONSE);
    api_page_begin_jw(&w);
    for (size_t i = 0; i < kept; i++) {
        device_write(&w, rows, i);
    }
    r = api_page_done_jw(c, &w, n > limit ? store_rows_text(rows, kept - 1, 0) : NULL);
out:
    store_rows_free(rows);
    return r;
}

int api_device_show(api_ctx *c)
{
    int r = answer_device(c, c->params[1], 200);
    return r == PV_ERR_NOT_FOUND ? device_not_found(c, c->params[1]) : r;
}

/* ---- claim ---- */

/* Strict RFC 4648 base64 (padded, no line breaks, one spelling per value) into a new
 * allocation. PV_OK; PV_ERR_FORMAT; PV_ERR_NOMEM. */
static int b64_decode(const char *s, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    size_t n = strlen(s);
    if (n == 0) {
        return PV_ERR_FORMAT;
    }
    size_t max = pv_base64_decoded_max(n);
    uint8_t *buf = malloc(max);
    if (buf == NULL) {
        return PV_ERR_NOMEM;
    }
    int r = pv_base64_decode(s, n, PV_BASE64_STD, buf, max, out_len);
    if (r != PV_OK) {
        free(buf);
        return PV_ERR_FORMAT;
    }
    *out = buf;
    return PV_OK;
}

static int import_uploaded(api_ctx *c, const char *device_id, const char *b64)
{
    int r = PV_ERR_INTERNAL;
    uint8_t *rec = NULL;
    size_t len = 0;
    pv_err e = {0};
    char rec_id[PV_DEVICE_ID_HEX_LEN + 1] = "";

    r = b64_decode(b64, &rec, &len);
    if (r == PV_ERR_NOMEM) {
        r = api_fail(c, 500, "internal", "out of memory");
        goto out;
    }
    if (r != PV_OK) {
        r = api_fail(c, 400, "bad_request", "manufacturing_record: not valid base64");
        goto out;
    }
    r = records_import(c->db, rec, len, c->now, rec_id, &e);
    if (r == PV_ERR_IO || r == PV_ERR_NOMEM || r == PV_ERR_INTERNAL) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if (r != PV_OK) {
        r = api_fail(c, 400, "bad_request", "%s", pv_err_msg(&e));
        goto out;
    }
    if (strcmp(rec_id, device_id) != 0) {
        r = api_fail(c, 400, "bad_request", "the manufacturing record is for device %s, not %s",
                     rec_id, device_id);
        goto out;
    }
    r = PV_OK;
out:
    free(rec);
    return r;
}

int api_device_claim(api_ctx *c)
{
    static const char *const fields[] = {"device_id", "manufacturing_record", NULL};
    int r = PV_ERR_INTERNAL;
    pv_err e = {0};
    store_rows *rows = NULL;
    const char *id = NULL, *b64 = NULL;

    if ((r = api_body_fields(c, fields)) != PV_OK ||
        (r = api_body_string(c, "device_id", true, PV_DEVICE_ID_HEX_LEN, &id)) != PV_OK ||
        (r = api_body_string(c, "manufacturing_record", false, B64_RECORD_MAX, &b64)) != PV_OK) {
        goto out;
    }
    if (!api_valid_device_id(id)) {
        r = api_fail(c, 400, "bad_request", "device_id: not 64 lowercase hex digits");
        goto out;
    }
    if ((r = api_tx_begin(c)) != PV_OK) {
        goto out;
    }
    if (b64 != NULL && (r = import_uploaded(c, id, b64)) != PV_OK) {
        goto out;
    }
    store_val pk[] = {SV_TEXT(id)};
    r = store_exec(c->db, "SELECT 1 FROM manufacturing_records WHERE device_id = $1", pk, 1, &rows,
                   NULL, &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if (store_rows_count(rows) == 0) {
        r = api_fail(c, 404, "not_found", "device %s is unknown: no manufacturing record", id);
        goto out;
    }
    /* The primary key is the claim: a device in any tenant, this one included, refuses a
     * second row, and the message must not tell which tenant holds it. */
    store_val p[] = {SV_TEXT(id), SV_TEXT(c->tenant_id), SV_INT(c->now)};
    r = store_exec(c->db,
                   "INSERT INTO devices (id, tenant_id, device_group_id, development, cloud_test, "
                   "claimed_at, updated_at) VALUES ($1, $2, NULL, 0, 0, $3, $3)",
                   p, 3, NULL, NULL, &e);
    if (r == PV_ERR_EXISTS) {
        r = api_fail(c, 409, "conflict",
                     "device %s is already claimed; the tenant that holds it must release it first",
                     id);
        goto out;
    }
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    r = api_audit(c, "device.claim", id,
                  json_pack("{s:s}", "record", b64 != NULL ? "uploaded" : "imported"), &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    /* The answer is written inside the transaction: what it shows is what commits. */
    if ((r = answer_device(c, id, 201)) != PV_OK) {
        r = r == PV_ERR_NOT_FOUND ? api_fail(c, 500, "internal", "claimed device vanished") : r;
        goto out;
    }
    r = api_tx_commit(c);
out:
    store_rows_free(rows);
    return r;
}

/* ---- changes to a claimed device ---- */

/* Reads an optional "device_group_id" (uuid or null). *present tells whether the key
 * was given; *gid is NULL for null. */
static int body_group_id(api_ctx *c, bool *present, const char **gid)
{
    *present = false;
    *gid = NULL;
    json_t *v = json_object_get(c->body, "device_group_id");
    if (v == NULL) {
        return PV_OK;
    }
    *present = true;
    if (json_is_null(v)) {
        return PV_OK;
    }
    int r = api_body_string(c, "device_group_id", true, 36, gid);
    if (r != PV_OK) {
        return r;
    }
    if (!api_valid_uuid(*gid)) {
        return api_fail(c, 400, "bad_request", "device_group_id: not a lowercase UUID");
    }
    return PV_OK;
}

/* 404 unless gid is a device group of this tenant. */
static int check_group(api_ctx *c, const char *gid)
{
    pv_err e = {0};
    store_rows *rows = NULL;
    store_val p[] = {SV_TEXT(c->tenant_id), SV_TEXT(gid)};
    int r = store_exec(c->db, "SELECT 1 FROM device_groups WHERE tenant_id = $1 AND id = $2", p, 2,
                       &rows, NULL, &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
    } else if (store_rows_count(rows) == 0) {
        r = api_fail(c, 404, "not_found", "device group %s not found in this tenant", gid);
    }
    store_rows_free(rows);
    return r;
}

/* Writes the audit row, reads the device back, commits and answers 200. */
static int finish_change(api_ctx *c, const char *action, json_t *detail)
{
    int r = PV_ERR_INTERNAL;
    pv_err e = {0};
    if ((r = api_audit(c, action, c->params[1], detail, &e)) != PV_OK) {
        return api_store_fail(c, r, &e, NULL);
    }
    if ((r = answer_device(c, c->params[1], 200)) != PV_OK) {
        return r == PV_ERR_NOT_FOUND ? device_not_found(c, c->params[1]) : r;
    }
    return api_tx_commit(c);
}

int api_device_update(api_ctx *c)
{
    static const char *const fields[] = {"device_group_id", NULL};
    int r = PV_ERR_INTERNAL;
    pv_err e = {0};
    bool present = false;
    const char *gid = NULL;
    int64_t changes = 0;

    if ((r = api_body_fields(c, fields)) != PV_OK ||
        (r = body_group_id(c, &present, &gid)) != PV_OK) {
        goto out;
    }
    if (!present) {
        r = api_fail(c, 400, "bad_request",
                     "nothing to update: give device_group_id (a device group ID, or null)");
        goto out;
    }
    if ((r = api_tx_begin(c)) != PV_OK) {
        goto out;
    }
    /* Before the update: a group that does not exist at all would otherwise fail the
     * foreign key instead of answering 404. */
    if (gid != NULL && (r = check_group(c, gid)) != PV_OK) {
        goto out;
    }
    store_val p[] = {SV_TEXT(c->tenant_id), SV_TEXT(c->params[1]), SV_TEXT_OR_NULL(gid),
                     SV_INT(c->now)};
    r = store_exec(c->db,
                   "UPDATE devices SET device_group_id = $3, updated_at = $4 "
                   "WHERE tenant_id = $1 AND id = $2",
                   p, 4, NULL, &changes, &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if (changes == 0) {
        r = device_not_found(c, c->params[1]);
        goto out;
    }
    json_t *detail = json_object();
    if (detail != NULL) {
        json_object_set_new(detail, "device_group_id",
                            gid != NULL ? json_string(gid) : json_null());
    }
    r = finish_change(c, "device.update", detail);
out:
    return r;
}

/* enable-development and enable-cloud-test: move the device to the given group, or to
 * the group named default_group of its current product, and set its two modes. */
static int enable_mode(api_ctx *c, const char *action, const char *default_group, bool development,
                       bool cloud_test)
{
    static const char *const fields[] = {"device_group_id", NULL};
    int r = PV_ERR_INTERNAL;
    pv_err e = {0};
    bool present = false;
    const char *gid = NULL;
    char target[37] = "";
    store_rows *rows = NULL;

    if ((r = api_body_fields(c, fields)) != PV_OK ||
        (r = body_group_id(c, &present, &gid)) != PV_OK) {
        goto out;
    }
    if ((r = api_tx_begin(c)) != PV_OK) {
        goto out;
    }
    store_val pd[] = {SV_TEXT(c->tenant_id), SV_TEXT(c->params[1])};
    r = store_exec(c->db,
                   "SELECT g.product_id FROM devices d "
                   "LEFT JOIN device_groups g ON g.id = d.device_group_id "
                   "WHERE d.tenant_id = $1 AND d.id = $2",
                   pd, 2, &rows, NULL, &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if (store_rows_count(rows) == 0) {
        r = device_not_found(c, c->params[1]);
        goto out;
    }
    if (gid != NULL) {
        if ((r = check_group(c, gid)) != PV_OK) {
            goto out;
        }
        snprintf(target, sizeof(target), "%s", gid);
    } else {
        const char *product = store_rows_text(rows, 0, 0);
        if (product == NULL) {
            r = api_fail(c, 409, "conflict",
                         "device %s is not in a device group of a product, so there is no "
                         "'%s' group to move it to; give device_group_id",
                         c->params[1], default_group);
            goto out;
        }
        store_val pg[] = {SV_TEXT(c->tenant_id), SV_TEXT(product), SV_TEXT(default_group)};
        store_rows *g = NULL;
        r = store_exec(c->db,
                       "SELECT id FROM device_groups "
                       "WHERE tenant_id = $1 AND product_id = $2 AND name = $3",
                       pg, 3, &g, NULL, &e);
        if (r != PV_OK) {
            r = api_store_fail(c, r, &e, NULL);
            goto out;
        }
        if (store_rows_count(g) == 0) {
            store_rows_free(g);
            r = api_fail(c, 409, "conflict",
                         "product %s has no device group named '%s'; give device_group_id", product,
                         default_group);
            goto out;
        }
        snprintf(target, sizeof(target), "%s", store_rows_text(g, 0, 0));
        store_rows_free(g);
    }
    store_val pu[] = {SV_TEXT(c->tenant_id), SV_TEXT(c->params[1]), SV_TEXT(target),
                      SV_INT(development),   SV_INT(cloud_test),    SV_INT(c->now)};
    r = store_exec(c->db,
                   "UPDATE devices SET device_group_id = $3, development = $4, cloud_test = $5, "
                   "updated_at = $6 WHERE tenant_id = $1 AND id = $2",
                   pu, 6, NULL, NULL, &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    r = finish_change(c, action, json_pack("{s:s}", "device_group_id", target));
out:
    store_rows_free(rows);
    return r;
}

int api_device_enable_development(api_ctx *c)
{
    return enable_mode(c, "device.enable_development", "Development", true, false);
}

int api_device_enable_cloud_test(api_ctx *c)
{
    return enable_mode(c, "device.enable_cloud_test", "Field Test", false, true);
}

int api_device_release(api_ctx *c)
{
    static const char *const fields[] = {NULL};
    int r = PV_ERR_INTERNAL;
    pv_err e = {0};
    int64_t changes = 0;
    json_t *out_json = NULL;

    if ((r = api_body_fields(c, fields)) != PV_OK) {
        goto out;
    }
    if ((r = api_tx_begin(c)) != PV_OK) {
        goto out;
    }
    /* Deleting the row is the release: the manufacturing record stays, so another
     * tenant can claim the device by its ID. */
    store_val p[] = {SV_TEXT(c->tenant_id), SV_TEXT(c->params[1])};
    r = store_exec(c->db, "DELETE FROM devices WHERE tenant_id = $1 AND id = $2", p, 2, NULL,
                   &changes, &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if (changes == 0) {
        r = device_not_found(c, c->params[1]);
        goto out;
    }
    if ((r = api_audit(c, "device.release", c->params[1], NULL, &e)) != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if ((out_json = json_pack("{s:s, s:b}", "id", c->params[1], "released", 1)) == NULL) {
        r = api_fail(c, 500, "internal", "out of memory");
        goto out;
    }
    if ((r = api_tx_commit(c)) != PV_OK) {
        goto out;
    }
    r = api_ok(c, 200, out_json);
    out_json = NULL;
out:
    json_decref(out_json);
    return r;
}
