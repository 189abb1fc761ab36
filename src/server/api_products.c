/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Products and device groups. A product is made with its five default device groups in
 * one transaction; a product or a group that still holds devices cannot be deleted (the
 * devices would lose their OS feed and update policy without anyone deciding it). Every
 * query is scoped by the caller's tenant, so another tenant's IDs are 404s.
 */
#include "api.h"

#include <stdio.h>
#include <string.h>

#define DESCRIPTION_MAX 1024

static const char *const os_feeds[] = {"Retail", "RetailEval", NULL};
static const char *const update_policies[] = {"UpdateAll", "No3rdPartyAppUpdates", "NoUpdates",
                                              NULL};

/* What a new product comes with (api-shapes.md). */
static const struct {
    const char *name, *description, *os_feed, *update_policy;
} default_groups[] = {
    {"Development", "Default development group", "Retail", "No3rdPartyAppUpdates"},
    {"Field Test", "Default test group", "Retail", "UpdateAll"},
    {"Field Test OS Evaluation", "Default group for testing the next OS release", "RetailEval",
     "UpdateAll"},
    {"Production", "Default production group", "Retail", "UpdateAll"},
    {"Production OS Evaluation", "Default production group for evaluating the next OS release",
     "RetailEval", "UpdateAll"},
};

#define PRODUCT_COLUMNS "id, tenant_id, name, description, created_at, updated_at FROM products "

#define GROUP_COLUMNS                                                                              \
    "g.id, g.tenant_id, g.product_id, g.name, g.description, g.os_feed, g.update_policy, "         \
    "(SELECT COUNT(*) FROM devices d WHERE d.device_group_id = g.id), g.created_at, "              \
    "g.updated_at FROM device_groups g "

/* ---- shared helpers ---- */

static int oom(api_ctx *c)
{
    return api_fail(c, 500, "internal", "out of memory");
}

static json_t *text_of(const store_rows *rows, size_t i, size_t col)
{
    const char *s = store_rows_text(rows, i, col);
    return json_string(s != NULL ? s : "");
}

static json_t *product_json(const store_rows *rows, size_t i)
{
    json_t *o = json_object();
    if (o == NULL || json_object_set_new(o, "id", text_of(rows, i, 0)) != 0 ||
        json_object_set_new(o, "tenant_id", text_of(rows, i, 1)) != 0 ||
        json_object_set_new(o, "name", text_of(rows, i, 2)) != 0 ||
        json_object_set_new(o, "description", text_of(rows, i, 3)) != 0 ||
        json_object_set_new(o, "created_at", api_time(store_rows_int(rows, i, 4))) != 0 ||
        json_object_set_new(o, "updated_at", api_time(store_rows_int(rows, i, 5))) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *group_json(const store_rows *rows, size_t i)
{
    json_t *o = json_object();
    if (o == NULL || json_object_set_new(o, "id", text_of(rows, i, 0)) != 0 ||
        json_object_set_new(o, "tenant_id", text_of(rows, i, 1)) != 0 ||
        json_object_set_new(o, "product_id", text_of(rows, i, 2)) != 0 ||
        json_object_set_new(o, "name", text_of(rows, i, 3)) != 0 ||
        json_object_set_new(o, "description", text_of(rows, i, 4)) != 0 ||
        json_object_set_new(o, "os_feed", text_of(rows, i, 5)) != 0 ||
        json_object_set_new(o, "update_policy", text_of(rows, i, 6)) != 0 ||
        json_object_set_new(o, "device_count", json_integer(store_rows_int(rows, i, 7))) != 0 ||
        json_object_set_new(o, "created_at", api_time(store_rows_int(rows, i, 8))) != 0 ||
        json_object_set_new(o, "updated_at", api_time(store_rows_int(rows, i, 9))) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

typedef json_t *(*row_json_fn)(const store_rows *rows, size_t i);

/* Reads one row of this tenant by ID as JSON. PV_OK; PV_ERR_NOT_FOUND (no response
 * set); otherwise the response is set. */
static int load_one(api_ctx *c, const char *sql, const char *id, row_json_fn fn, json_t **out)
{
    *out = NULL;
    int r = PV_ERR_INTERNAL;
    pv_err e = {0};
    store_rows *rows = NULL;
    store_val p[] = {SV_TEXT(c->tenant_id), SV_TEXT(id)};
    if ((r = store_exec(c->db, sql, p, 2, &rows, NULL, &e)) != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
    } else if (store_rows_count(rows) == 0) {
        r = PV_ERR_NOT_FOUND;
    } else if ((*out = fn(rows, 0)) == NULL) {
        r = oom(c);
    }
    store_rows_free(rows);
    return r;
}

static int load_product(api_ctx *c, const char *id, json_t **out)
{
    return load_one(c, "SELECT " PRODUCT_COLUMNS "WHERE tenant_id = $1 AND id = $2", id,
                    product_json, out);
}

static int load_group(api_ctx *c, const char *id, json_t **out)
{
    return load_one(c, "SELECT " GROUP_COLUMNS "WHERE g.tenant_id = $1 AND g.id = $2", id,
                    group_json, out);
}

static int product_not_found(api_ctx *c, const char *id)
{
    return api_fail(c, 404, "not_found", "product %s not found in this tenant", id);
}

static int group_not_found(api_ctx *c, const char *id)
{
    return api_fail(c, 404, "not_found", "device group %s not found in this tenant", id);
}

/* Builds a list page from rows queried with LIMIT limit + 1, ordered by the ID in
 * column 0. */
static int finish_page(api_ctx *c, const store_rows *rows, size_t limit, row_json_fn fn)
{
    size_t n = store_rows_count(rows), kept = n > limit ? limit : n;
    json_t *items = json_array();
    if (items == NULL) {
        return oom(c);
    }
    for (size_t i = 0; i < kept; i++) {
        if (json_array_append_new(items, fn(rows, i)) != 0) {
            json_decref(items);
            return oom(c);
        }
    }
    return api_page_done(c, items, n > limit ? store_rows_text(rows, kept - 1, 0) : NULL);
}

/* An optional body string that must be one of `allowed`. */
static int body_enum(api_ctx *c, const char *key, const char *const *allowed, const char **out)
{
    int r = api_body_string(c, key, false, 32, out);
    if (r != PV_OK || *out == NULL) {
        return r;
    }
    for (size_t i = 0; allowed[i] != NULL; i++) {
        if (strcmp(*out, allowed[i]) == 0) {
            return PV_OK;
        }
    }
    char list[128] = "";
    size_t used = 0;
    for (size_t i = 0; allowed[i] != NULL && used < sizeof(list); i++) {
        int n = snprintf(list + used, sizeof(list) - used, "%s%s", i > 0 ? ", " : "", allowed[i]);
        used += n > 0 ? (size_t)n : 0;
    }
    return api_fail(c, 400, "bad_request", "%s: must be one of %s", key, list);
}

/* An optional (or required) display name. */
static int body_name(api_ctx *c, bool required, const char **out)
{
    int r = api_body_string(c, "name", required, 64, out);
    if (r == PV_OK && *out != NULL && !api_valid_display_name(*out)) {
        r = api_fail(c, 400, "bad_request",
                     "name: 1 to 64 printable characters, not only spaces, no control characters");
    }
    return r;
}

/* Runs a statement that must not fail; maps a failure to the response. */
static int exec_or_fail(api_ctx *c, const char *sql, const store_val *p, size_t n,
                        store_rows **rows, int64_t *changes, const char *exists_what)
{
    pv_err e = {0};
    int r = store_exec(c->db, sql, p, n, rows, changes, &e);
    return r == PV_OK ? PV_OK : api_store_fail(c, r, &e, exists_what);
}

/* The number of devices in the groups matched by sql ($1 tenant, $2 id). */
static int count_devices(api_ctx *c, const char *sql, const char *id, int64_t *count)
{
    store_rows *rows = NULL;
    store_val p[] = {SV_TEXT(c->tenant_id), SV_TEXT(id)};
    int r = exec_or_fail(c, sql, p, 2, &rows, NULL, NULL);
    *count = r == PV_OK ? store_rows_int(rows, 0, 0) : 0;
    store_rows_free(rows);
    return r;
}

/* Deletes device groups ($1 tenant, $2 id). The count of devices before it is only a
 * friendlier message: a device assigned since (another replica, PostgreSQL's READ
 * COMMITTED) makes the foreign key refuse the delete, which is a conflict too. */
static int delete_refusing_devices(api_ctx *c, const char *sql, const char *id, int64_t *changes)
{
    pv_err e = {0};
    store_val p[] = {SV_TEXT(c->tenant_id), SV_TEXT(id)};
    int r = store_exec(c->db, sql, p, 2, NULL, changes, &e);
    if (r == PV_ERR_INVALID_ARG) {
        return api_fail(c, 409, "conflict", "device group still has devices");
    }
    return r == PV_OK ? PV_OK : api_store_fail(c, r, &e, NULL);
}

/* ---- products ---- */

int api_product_list(api_ctx *c)
{
    int r = PV_ERR_INTERNAL;
    store_rows *rows = NULL;
    size_t limit = 0;
    const char *after = NULL, *name = api_query(c, "name");

    if ((r = api_page(c, &limit, &after)) != PV_OK) {
        goto out;
    }
    /* No product is named "", so '' stands for "no filter" in one statement. */
    store_val p[] = {SV_TEXT(c->tenant_id), SV_TEXT(after), SV_INT(limit + 1),
                     SV_TEXT(name != NULL ? name : "")};
    r = exec_or_fail(c,
                     "SELECT " PRODUCT_COLUMNS "WHERE tenant_id = $1 AND id > $2 "
                     "AND ($4 = '' OR name = $4) ORDER BY id LIMIT $3",
                     p, 4, &rows, NULL, NULL);
    if (r == PV_OK) {
        r = finish_page(c, rows, limit, product_json);
    }
out:
    store_rows_free(rows);
    return r;
}

int api_product_show(api_ctx *c)
{
    json_t *o = NULL;
    int r = load_product(c, c->params[1], &o);
    if (r == PV_ERR_NOT_FOUND) {
        return product_not_found(c, c->params[1]);
    }
    return r == PV_OK ? api_ok(c, 200, o) : r;
}

int api_product_create(api_ctx *c)
{
    static const char *const fields[] = {"name", "description", NULL};
    int r = PV_ERR_INTERNAL;
    pv_err e = {0};
    const char *name = NULL, *description = NULL;
    char id[37], what[160];
    json_t *o = NULL;

    if ((r = api_body_fields(c, fields)) != PV_OK || (r = body_name(c, true, &name)) != PV_OK ||
        (r = api_body_string(c, "description", false, DESCRIPTION_MAX, &description)) != PV_OK) {
        goto out;
    }
    api_new_id(id);
    if ((r = api_tx_begin(c)) != PV_OK) {
        goto out;
    }
    snprintf(what, sizeof(what), "a product named '%s' already exists in this tenant", name);
    store_val p[] = {SV_TEXT(id), SV_TEXT(c->tenant_id), SV_TEXT(name),
                     SV_TEXT(description != NULL ? description : ""), SV_INT(c->now)};
    r = exec_or_fail(c,
                     "INSERT INTO products (id, tenant_id, name, description, created_at, "
                     "updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
                     p, 5, NULL, NULL, what);
    if (r != PV_OK) {
        goto out;
    }
    for (size_t i = 0; i < sizeof(default_groups) / sizeof(default_groups[0]); i++) {
        char gid[37];
        api_new_id(gid);
        store_val pg[] = {SV_TEXT(gid),
                          SV_TEXT(c->tenant_id),
                          SV_TEXT(id),
                          SV_TEXT(default_groups[i].name),
                          SV_TEXT(default_groups[i].description),
                          SV_TEXT(default_groups[i].os_feed),
                          SV_TEXT(default_groups[i].update_policy),
                          SV_INT(c->now)};
        r = exec_or_fail(c,
                         "INSERT INTO device_groups (id, tenant_id, product_id, name, description, "
                         "os_feed, update_policy, created_at, updated_at) "
                         "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                         pg, 8, NULL, NULL, NULL);
        if (r != PV_OK) {
            goto out;
        }
    }
    if ((r = api_audit(c, "product.create", id, json_pack("{s:s}", "name", name), &e)) != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if ((r = load_product(c, id, &o)) != PV_OK) {
        r = r == PV_ERR_NOT_FOUND ? api_fail(c, 500, "internal", "new product vanished") : r;
        goto out;
    }
    if ((r = api_tx_commit(c)) != PV_OK) {
        goto out;
    }
    r = api_ok(c, 201, o);
    o = NULL;
out:
    json_decref(o);
    return r;
}

int api_product_update(api_ctx *c)
{
    static const char *const fields[] = {"name", "description", NULL};
    int r = PV_ERR_INTERNAL;
    pv_err e = {0};
    const char *name = NULL, *description = NULL;
    char what[160];
    int64_t changes = 0;
    json_t *o = NULL, *detail = NULL;

    if ((r = api_body_fields(c, fields)) != PV_OK || (r = body_name(c, false, &name)) != PV_OK ||
        (r = api_body_string(c, "description", false, DESCRIPTION_MAX, &description)) != PV_OK) {
        goto out;
    }
    if (name == NULL && description == NULL) {
        r = api_fail(c, 400, "bad_request", "nothing to update: give name or description");
        goto out;
    }
    if ((r = api_tx_begin(c)) != PV_OK) {
        goto out;
    }
    snprintf(what, sizeof(what), "a product named '%s' already exists in this tenant",
             name != NULL ? name : "");
    store_val p[] = {SV_TEXT(c->tenant_id), SV_TEXT(c->params[1]), SV_TEXT_OR_NULL(name),
                     SV_TEXT_OR_NULL(description), SV_INT(c->now)};
    r = exec_or_fail(c,
                     "UPDATE products SET name = COALESCE($3, name), "
                     "description = COALESCE($4, description), updated_at = $5 "
                     "WHERE tenant_id = $1 AND id = $2",
                     p, 5, NULL, &changes, what);
    if (r != PV_OK) {
        goto out;
    }
    if (changes == 0) {
        r = product_not_found(c, c->params[1]);
        goto out;
    }
    detail = json_pack("{s:s?, s:s?}", "name", name, "description", description);
    r = api_audit(c, "product.update", c->params[1], detail, &e);
    detail = NULL;
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if ((r = load_product(c, c->params[1], &o)) != PV_OK) {
        r = r == PV_ERR_NOT_FOUND ? product_not_found(c, c->params[1]) : r;
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

int api_product_delete(api_ctx *c)
{
    int r = PV_ERR_INTERNAL;
    pv_err e = {0};
    const char *id = c->params[1];
    store_rows *rows = NULL;
    int64_t devices = 0, groups = 0;
    json_t *o = NULL;

    if ((r = api_tx_begin(c)) != PV_OK) {
        goto out;
    }
    store_val p[] = {SV_TEXT(c->tenant_id), SV_TEXT(id)};
    r = exec_or_fail(c, "SELECT name FROM products WHERE tenant_id = $1 AND id = $2", p, 2, &rows,
                     NULL, NULL);
    if (r != PV_OK) {
        goto out;
    }
    if (store_rows_count(rows) == 0) {
        r = product_not_found(c, id);
        goto out;
    }
    r = count_devices(c,
                      "SELECT COUNT(*) FROM devices d "
                      "JOIN device_groups g ON g.id = d.device_group_id "
                      "WHERE g.tenant_id = $1 AND g.product_id = $2",
                      id, &devices);
    if (r != PV_OK) {
        goto out;
    }
    if (devices > 0) {
        r = api_fail(c, 409, "conflict",
                     "product %s still has %lld device(s) in its device groups; assign them to "
                     "another group or release them first",
                     id, (long long)devices);
        goto out;
    }
    r = delete_refusing_devices(
        c, "DELETE FROM device_groups WHERE tenant_id = $1 AND product_id = $2", id, &groups);
    if (r == PV_OK) {
        r = exec_or_fail(c, "DELETE FROM products WHERE tenant_id = $1 AND id = $2", p, 2, NULL,
                         NULL, NULL);
    }
    if (r != PV_OK) {
        goto out;
    }
    r = api_audit(c, "product.delete", id,
                  json_pack("{s:s, s:I}", "name", store_rows_text(rows, 0, 0), "device_groups",
                            (json_int_t)groups),
                  &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if ((o = json_pack("{s:s, s:b}", "id", id, "deleted", 1)) == NULL) {
        r = oom(c);
        goto out;
    }
    if ((r = api_tx_commit(c)) != PV_OK) {
        goto out;
    }
    r = api_ok(c, 200, o);
    o = NULL;
out:
    json_decref(o);
    store_rows_free(rows);
    return r;
}

/* ---- device groups ---- */

int api_group_list(api_ctx *c)
{
    int r = PV_ERR_INTERNAL;
    store_rows *rows = NULL;
    size_t limit = 0;
    const char *after = NULL, *name = api_query(c, "name"), *product = api_query(c, "product_id");

    if ((r = api_page(c, &limit, &after)) != PV_OK) {
        goto out;
    }
    if (product != NULL && !api_valid_uuid(product)) {
        r = api_fail(c, 400, "bad_request", "product_id: not a lowercase UUID");
        goto out;
    }
    store_val p[] = {SV_TEXT(c->tenant_id), SV_TEXT(after), SV_INT(limit + 1),
                     SV_TEXT(product != NULL ? product : ""), SV_TEXT(name != NULL ? name : "")};
    r = exec_or_fail(c,
                     "SELECT " GROUP_COLUMNS "WHERE g.tenant_id = $1 AND g.id > $2 "
                     "AND ($4 = '' OR g.product_id = $4) AND ($5 = '' OR g.name = $5) "
                     "ORDER BY g.id LIMIT $3",
                     p, 5, &rows, NULL, NULL);
    if (r == PV_OK) {
        r = finish_page(c, rows, limit, group_json);
    }
out:
    store_rows_free(rows);
    return r;
}

int api_group_show(api_ctx *c)
{
    json_t *o = NULL;
    int r = load_group(c, c->params[1], &o);
    if (r == PV_ERR_NOT_FOUND) {
        return group_not_found(c, c->params[1]);
    }
    return r == PV_OK ? api_ok(c, 200, o) : r;
}

int api_group_create(api_ctx *c)
{
    static const char *const fields[] = {"product_id", "name",          "description",
                                         "os_feed",    "update_policy", NULL};
    int r = PV_ERR_INTERNAL;
    pv_err e = {0};
    const char *product = NULL, *name = NULL, *description = NULL, *feed = NULL, *policy = NULL;
    char id[37], what[200];
    store_rows *rows = NULL;
    json_t *o = NULL;

    if ((r = api_body_fields(c, fields)) != PV_OK ||
        (r = api_body_string(c, "product_id", true, 36, &product)) != PV_OK ||
        (r = body_name(c, true, &name)) != PV_OK ||
        (r = api_body_string(c, "description", false, DESCRIPTION_MAX, &description)) != PV_OK ||
        (r = body_enum(c, "os_feed", os_feeds, &feed)) != PV_OK ||
        (r = body_enum(c, "update_policy", update_policies, &policy)) != PV_OK) {
        goto out;
    }
    if (!api_valid_uuid(product)) {
        r = api_fail(c, 400, "bad_request", "product_id: not a lowercase UUID");
        goto out;
    }
    api_new_id(id);
    if ((r = api_tx_begin(c)) != PV_OK) {
        goto out;
    }
    store_val pp[] = {SV_TEXT(c->tenant_id), SV_TEXT(product)};
    r = exec_or_fail(c, "SELECT 1 FROM products WHERE tenant_id = $1 AND id = $2", pp, 2, &rows,
                     NULL, NULL);
    if (r != PV_OK) {
        goto out;
    }
    if (store_rows_count(rows) == 0) {
        r = product_not_found(c, product);
        goto out;
    }
    snprintf(what, sizeof(what), "a device group named '%s' already exists in product %s", name,
             product);
    store_val p[] = {SV_TEXT(id),
                     SV_TEXT(c->tenant_id),
                     SV_TEXT(product),
                     SV_TEXT(name),
                     SV_TEXT(description != NULL ? description : ""),
                     SV_TEXT(feed != NULL ? feed : "Retail"),
                     SV_TEXT(policy != NULL ? policy : "UpdateAll"),
                     SV_INT(c->now)};
    r = exec_or_fail(c,
                     "INSERT INTO device_groups (id, tenant_id, product_id, name, description, "
                     "os_feed, update_policy, created_at, updated_at) "
                     "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                     p, 8, NULL, NULL, what);
    if (r != PV_OK) {
        goto out;
    }
    r = api_audit(c, "device_group.create", id,
                  json_pack("{s:s, s:s}", "product_id", product, "name", name), &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if ((r = load_group(c, id, &o)) != PV_OK) {
        r = r == PV_ERR_NOT_FOUND ? api_fail(c, 500, "internal", "new device group vanished") : r;
        goto out;
    }
    if ((r = api_tx_commit(c)) != PV_OK) {
        goto out;
    }
    r = api_ok(c, 201, o);
    o = NULL;
out:
    json_decref(o);
    store_rows_free(rows);
    return r;
}

int api_group_update(api_ctx *c)
{
    static const char *const fields[] = {"name", "description", "os_feed", "update_policy", NULL};
    int r = PV_ERR_INTERNAL;
    pv_err e = {0};
    const char *name = NULL, *description = NULL, *feed = NULL, *policy = NULL;
    char what[200];
    int64_t changes = 0;
    json_t *o = NULL;

    if ((r = api_body_fields(c, fields)) != PV_OK || (r = body_name(c, false, &name)) != PV_OK ||
        (r = api_body_string(c, "description", false, DESCRIPTION_MAX, &description)) != PV_OK ||
        (r = body_enum(c, "os_feed", os_feeds, &feed)) != PV_OK ||
        (r = body_enum(c, "update_policy", update_policies, &policy)) != PV_OK) {
        goto out;
    }
    if (name == NULL && description == NULL && feed == NULL && policy == NULL) {
        r = api_fail(c, 400, "bad_request",
                     "nothing to update: give name, description, os_feed or update_policy");
        goto out;
    }
    if ((r = api_tx_begin(c)) != PV_OK) {
        goto out;
    }
    snprintf(what, sizeof(what), "a device group named '%s' already exists in its product",
             name != NULL ? name : "");
    store_val p[] = {SV_TEXT(c->tenant_id), SV_TEXT(c->params[1]),
                     SV_TEXT_OR_NULL(name), SV_TEXT_OR_NULL(description),
                     SV_TEXT_OR_NULL(feed), SV_TEXT_OR_NULL(policy),
                     SV_INT(c->now)};
    r = exec_or_fail(c,
                     "UPDATE device_groups SET name = COALESCE($3, name), "
                     "description = COALESCE($4, description), os_feed = COALESCE($5, os_feed), "
                     "update_policy = COALESCE($6, update_policy), updated_at = $7 "
                     "WHERE tenant_id = $1 AND id = $2",
                     p, 7, NULL, &changes, what);
    if (r != PV_OK) {
        goto out;
    }
    if (changes == 0) {
        r = group_not_found(c, c->params[1]);
        goto out;
    }
    r = api_audit(c, "device_group.update", c->params[1],
                  json_pack("{s:s?, s:s?, s:s?, s:s?}", "name", name, "description", description,
                            "os_feed", feed, "update_policy", policy),
                  &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if ((r = load_group(c, c->params[1], &o)) != PV_OK) {
        r = r == PV_ERR_NOT_FOUND ? group_not_found(c, c->params[1]) : r;
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

int api_group_delete(api_ctx *c)
{
    int r = PV_ERR_INTERNAL;
    pv_err e = {0};
    const char *id = c->params[1];
    store_rows *rows = NULL;
    int64_t devices = 0;
    json_t *o = NULL;

    if ((r = api_tx_begin(c)) != PV_OK) {
        goto out;
    }
    store_val p[] = {SV_TEXT(c->tenant_id), SV_TEXT(id)};
    r = exec_or_fail(c,
                     "SELECT name, product_id FROM device_groups WHERE tenant_id = $1 AND id = $2",
                     p, 2, &rows, NULL, NULL);
    if (r != PV_OK) {
        goto out;
    }
    if (store_rows_count(rows) == 0) {
        r = group_not_found(c, id);
        goto out;
    }
    r = count_devices(c,
                      "SELECT COUNT(*) FROM devices WHERE tenant_id = $1 AND device_group_id = $2",
                      id, &devices);
    if (r != PV_OK) {
        goto out;
    }
    if (devices > 0) {
        r = api_fail(c, 409, "conflict",
                     "device group %s still has %lld device(s); assign them to another group or "
                     "release them first",
                     id, (long long)devices);
        goto out;
    }
    r = delete_refusing_devices(c, "DELETE FROM device_groups WHERE tenant_id = $1 AND id = $2", id,
                                NULL);
    if (r != PV_OK) {
        goto out;
    }
    r = api_audit(c, "device_group.delete", id,
                  json_pack("{s:s, s:s}", "name", store_rows_text(rows, 0, 0), "product_id",
                            store_rows_text(rows, 0, 1)),
                  &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if ((o = json_pack("{s:s, s:b}", "id", id, "deleted", 1)) == NULL) {
        r = oom(c);
        goto out;
    }
    if ((r = api_tx_commit(c)) != PV_OK) {
        goto out;
    }
    r = api_ok(c, 200, o);
    o = NULL;
out:
    json_decref(o);
    store_rows_free(rows);
    return r;
}
