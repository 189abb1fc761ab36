/* SPDX-License-Identifier: Apache-2.0 */
/* Products and device groups through the API (api_products.c), on SQLite and PostgreSQL. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/mfgrec.h"
#include "pavise/platform.h"
#include "pavise/rot.h"

#include "records.h"
#include "servertest.h"

#define YEAR ((int64_t)365 * 24 * 3600)

static const char *backend;

typedef struct fixture {
    st_env env;
    char *fdir;
    pv_key *fkey;
    pv_chain *fchain;
    uint8_t alice[PV_SHA256_LEN]; /* Administrator of t1 */
    uint8_t bob[PV_SHA256_LEN];   /* Administrator of t2 */
    char t1[37], t2[37];
} fixture;

/* ---- helpers ---- */

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "(not a string)";
}

static const char *error_message(json_t *o)
{
    return str(json_object_get(o, "error"), "message");
}

static int call(fixture *x, const uint8_t *fp, const char *method, const char *tenant,
                const char *rest, const char *body, json_t **out)
{
    char path[1024];
    snprintf(path, sizeof(path), "/v1/tenants/%s%s", tenant, rest);
    return st_call(&x->env, fp, method, path, body, out);
}

static void tenant_create(fixture *x, const uint8_t *fp, const char *name, char id[37])
{
    json_t *out = NULL;
    char body[128];
    snprintf(body, sizeof(body), "{\"name\": \"%s\"}", name);
    assert_int_equal(st_call(&x->env, fp, "POST", "/v1/tenants", body, &out), 201);
    snprintf(id, 37, "%s", str(out, "id"));
    json_decref(out);
}

static void product_create(fixture *x, const uint8_t *fp, const char *tenant, const char *name,
                           char id[37])
{
    char body[128];
    json_t *out = NULL;
    snprintf(body, sizeof(body), "{\"name\": \"%s\", \"description\": \"the %s\"}", name, name);
    assert_int_equal(call(x, fp, "POST", tenant, "/products", body, &out), 201);
    snprintf(id, 37, "%s", str(out, "id"));
    json_decref(out);
}

static void group_create(fixture *x, const uint8_t *fp, const char *tenant, const char *product,
                         const char *name, char id[37])
{
    char body[256];
    json_t *out = NULL;
    snprintf(body, sizeof(body), "{\"product_id\": \"%s\", \"name\": \"%s\"}", product, name);
    assert_int_equal(call(x, fp, "POST", tenant, "/device-groups", body, &out), 201);
    snprintf(id, 37, "%s", str(out, "id"));
    json_decref(out);
}

/* A device claimed into t1 and assigned to group. */
static void device_in_group(fixture *x, const char *group, char id[PV_DEVICE_ID_HEX_LEN + 1])
{
    pv_mfgrec r;
    pv_err e = {0};
    char got[PV_DEVICE_ID_HEX_LEN + 1], body[256], rest[128];
    memset(&r, 0, sizeof(r));
    r.version = PV_MFGREC_VERSION;
    r.rot_kind = PV_ROT_SOFTWARE;
    assert_int_equal(pv_key_generate(&r.identity_key, &e), PV_OK);
    assert_int_equal(pv_key_generate(&r.attestation_key, &e), PV_OK);
    assert_int_equal(pv_device_id_of_key(r.identity_key, r.device_id), PV_OK);
    r.manufactured_at = 1700000000;
    pv_buf *b = pv_buf_new(PV_MFGREC_MAX_SIZE);
    assert_int_equal(pv_mfgrec_sign(&r, x->fkey, x->fchain, b, &e), PV_OK);
    assert_int_equal(
        records_import(x->env.db, pv_buf_data(b), pv_buf_len(b), pv_time_now(), got, &e), PV_OK);
    memcpy(id, r.device_id, sizeof(r.device_id));
    pv_mfgrec_free(&r);
    pv_buf_free(b);
    snprintf(body, sizeof(body), "{\"device_id\": \"%s\"}", id);
    assert_int_equal(call(x, x->alice, "POST", x->t1, "/devices", body, NULL), 201);
    snprintf(body, sizeof(body), "{\"device_group_id\": \"%s\"}", group);
    snprintf(rest, sizeof(rest), "/devices/%s", id);
    assert_int_equal(call(x, x->alice, "PATCH", x->t1, rest, body, NULL), 200);
}

static int64_t audited(fixture *x, const char *tenant, const char *action, const char *target)
{
    store_rows *rows = NULL;
    pv_err e = {0};
    store_val p[] = {SV_TEXT(tenant), SV_TEXT(action), SV_TEXT(target)};
    assert_int_equal(store_exec(x->env.db,
                                "SELECT COUNT(*) FROM audit WHERE tenant_id = $1 AND action = $2 "
                                "AND target = $3",
                                p, 3, &rows, NULL, &e),
                     PV_OK);
    int64_t n = store_rows_int(rows, 0, 0);
    store_rows_free(rows);
    return n;
}

/* Asserts that a call is refused with `status` and changes nothing in the database. */
static json_t *refused(fixture *x, int status, const uint8_t *fp, const char *method,
                       const char *tenant, const char *rest, const char *body)
{
    json_t *out = NULL;
    char *before = st_dump(&x->env);
    assert_int_equal(call(x, fp, method, tenant, rest, body, &out), status);
    char *after = st_dump(&x->env);
    assert_string_equal(before, after);
    free(before);
    free(after);
    return out;
}

static int setup(void **state)
{
    fixture *x = calloc(1, sizeof(*x));
    pv_err e = {0};
    char fp[65];
    assert_non_null(x);
    st_setup(&x->env, backend);
    x->fdir = tu_mkdtemp("factory");
    int64_t now = pv_time_now();
    tu_make_chain(x->fdir, now - 3600, now + YEAR, &x->fkey, &x->fchain, NULL);
    char *path = tu_path(x->fdir, "root.crt");
    size_t n = 0;
    char *pem = (char *)tu_read(path, &n);
    assert_int_equal(records_add_factory(x->env.db, pem, n, now, fp, &e), PV_OK);
    free(pem);
    free(path);
    st_operator(&x->env, "alice", x->alice);
    st_operator(&x->env, "bob", x->bob);
    tenant_create(x, x->alice, "Alice Corp", x->t1);
    tenant_create(x, x->bob, "Bob Corp", x->t2);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    fixture *x = *state;
    st_teardown(&x->env);
    tu_rmtree(x->fdir);
    free(x->fdir);
    pv_key_free(x->fkey);
    pv_chain_free(x->fchain);
    free(x);
    return 0;
}

/* ---- products ---- */

static void test_product_create_makes_five_groups(void **state)
{
    fixture *x = *state;
    static const struct {
        const char *name, *feed, *policy;
    } want[] = {
        {"Development", "Retail", "No3rdPartyAppUpdates"},
        {"Field Test", "Retail", "UpdateAll"},
        {"Field Test OS Evaluation", "RetailEval", "UpdateAll"},
        {"Production", "Retail", "UpdateAll"},
        {"Production OS Evaluation", "RetailEval", "UpdateAll"},
    };
    json_t *out = NULL;
    char id[37], rest[128];
    assert_int_equal(call(x, x->alice, "POST", x->t1, "/products",
                          "{\"name\": \"Widget\", \"description\": \"a widget\"}", &out),
                     201);
    snprintf(id, sizeof(id), "%s", str(out, "id"));
    assert_string_equal(str(out, "name"), "Widget");
    assert_string_equal(str(out, "description"), "a widget");
    assert_string_equal(str(out, "tenant_id"), x->t1);
    assert_non_null(json_string_value(json_object_get(out, "created_at")));
    assert_non_null(json_string_value(json_object_get(out, "updated_at")));
    json_decref(out);
    assert_int_equal(audited(x, x->t1, "product.create", id), 1);

    snprintf(rest, sizeof(rest), "/device-groups?product_id=%s", id);
    assert_int_equal(call(x, x->alice, "GET", x->t1, rest, NULL, &out), 200);
    json_t *items = json_object_get(out, "items");
    assert_int_equal(json_array_size(items), 5);
    for (size_t i = 0; i < 5; i++) {
        json_t *found = NULL, *g;
        size_t k;
        json_array_foreach(items, k, g)
        {
            if (strcmp(str(g, "name"), want[i].name) == 0) {
                found = g;
            }
        }
        assert_non_null(found);
        assert_string_equal(str(found, "os_feed"), want[i].feed);
        assert_string_equal(str(found, "update_policy"), want[i].policy);
        assert_string_equal(str(found, "product_id"), id);
        assert_string_equal(str(found, "tenant_id"), x->t1);
        assert_int_equal(json_integer_value(json_object_get(found, "device_count")), 0);
    }
    json_decref(out);

    /* Show, and not from the other tenant. */
    snprintf(rest, sizeof(rest), "/products/%s", id);
    assert_int_equal(call(x, x->alice, "GET", x->t1, rest, NULL, &out), 200);
    assert_string_equal(str(out, "name"), "Widget");
    json_decref(out);
    assert_int_equal(call(x, x->bob, "GET", x->t2, rest, NULL, NULL), 404);
}

static void test_product_duplicate_name(void **state)
{
    fixture *x = *state;
    char id[37];
    product_create(x, x->alice, x->t1, "Widget", id);
    json_t *out = refused(x, 409, x->alice, "POST", x->t1, "/products", "{\"name\": \"Widget\"}");
    assert_string_equal(str(json_object_get(out, "error"), "code"), "conflict");
    json_decref(out);
    /* Another tenant may use the name. */
    product_create(x, x->bob, x->t2, "Widget", id);
    /* Renaming onto an existing name. */
    char other[37], rest[128];
    product_create(x, x->alice, x->t1, "Gadget", other);
    snprintf(rest, sizeof(rest), "/products/%s", other);
    json_decref(refused(x, 409, x->alice, "PATCH", x->t1, rest, "{\"name\": \"Widget\"}"));
    /* Bad names and bodies. */
    json_decref(refused(x, 400, x->alice, "POST", x->t1, "/products", "{\"name\": \"   \"}"));
    json_decref(refused(x, 400, x->alice, "POST", x->t1, "/products", "{\"name\": \"a\\nb\"}"));
    json_decref(refused(x, 400, x->alice, "POST", x->t1, "/products", "{}"));
    json_decref(
        refused(x, 400, x->alice, "POST", x->t1, "/products", "{\"name\": \"x\", \"os\": 1}"));
    json_decref(refused(x, 400, x->alice, "PATCH", x->t1, rest, "{}"));
}

static void test_product_update_and_list(void **state)
{
    fixture *x = *state;
    char a[37], b[37], rest[256];
    json_t *out = NULL;
    product_create(x, x->alice, x->t1, "Widget", a);
    product_create(x, x->alice, x->t1, "Gadget", b);
    product_create(x, x->bob, x->t2, "Other", rest);

    snprintf(rest, sizeof(rest), "/products/%s", a);
    assert_int_equal(call(x, x->alice, "PATCH", x->t1, rest, "{\"description\": \"new\"}", &out),
                     200);
    assert_string_equal(str(out, "name"), "Widget");
    assert_string_equal(str(out, "description"), "new");
    json_decref(out);
    assert_int_equal(call(x, x->alice, "PATCH", x->t1, rest, "{\"name\": \"Widget 2\"}", &out),
                     200);
    assert_string_equal(str(out, "name"), "Widget 2");
    assert_string_equal(str(out, "description"), "new");
    json_decref(out);
    assert_int_equal(audited(x, x->t1, "product.update", a), 2);

    assert_int_equal(call(x, x->alice, "GET", x->t1, "/products", NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "items")), 2);
    json_decref(out);
    assert_int_equal(call(x, x->alice, "GET", x->t1, "/products?name=Gadget", NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "items")), 1);
    assert_string_equal(str(json_array_get(json_object_get(out, "items"), 0), "id"), b);
    json_decref(out);
    assert_int_equal(call(x, x->alice, "GET", x->t1, "/products?limit=1", NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "items")), 1);
    assert_true(json_is_string(json_object_get(out, "continuation_token")));
    json_decref(out);

    /* Bob's tenant cannot update alice's product. */
    snprintf(rest, sizeof(rest), "/products/%s", a);
    json_decref(refused(x, 404, x->bob, "PATCH", x->t2, rest, "{\"name\": \"Mine\"}"));
}

static void test_product_delete(void **state)
{
    fixture *x = *state;
    char p[37], g[37], rest[256], dev[PV_DEVICE_ID_HEX_LEN + 1];
    json_t *out = NULL;
    product_create(x, x->alice, x->t1, "Widget", p);
    group_create(x, x->alice, x->t1, p, "Lab", g);
    device_in_group(x, g, dev);

    snprintf(rest, sizeof(rest), "/products/%s", p);
    out = refused(x, 409, x->alice, "DELETE", x->t1, rest, NULL);
    assert_non_null(strstr(error_message(out), "device"));
    json_decref(out);
    json_decref(refused(x, 404, x->bob, "DELETE", x->t2, rest, NULL));

    snprintf(rest, sizeof(rest), "/devices/%s/release", dev);
    assert_int_equal(call(x, x->alice, "POST", x->t1, rest, "{}", NULL), 200);
    snprintf(rest, sizeof(rest), "/products/%s", p);
    assert_int_equal(call(x, x->alice, "DELETE", x->t1, rest, NULL, &out), 200);
    assert_string_equal(str(out, "id"), p);
    assert_true(json_is_true(json_object_get(out, "deleted")));
    json_decref(out);
    assert_int_equal(call(x, x->alice, "GET", x->t1, rest, NULL, NULL), 404);
    snprintf(rest, sizeof(rest), "/device-groups/%s", g);
    assert_int_equal(call(x, x->alice, "GET", x->t1, rest, NULL, NULL), 404);
    assert_int_equal(call(x, x->alice, "GET", x->t1, "/device-groups", NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "items")), 0);
    json_decref(out);
    assert_int_equal(audited(x, x->t1, "product.delete", p), 1);
}

/* ---- device groups ---- */

static void test_group_create_and_validate(void **state)
{
    fixture *x = *state;
    char p[37], pb[37], body[512], rest[128];
    json_t *out = NULL;
    product_create(x, x->alice, x->t1, "Widget", p);
    product_create(x, x->bob, x->t2, "Gadget", pb);

    snprintf(body, sizeof(body),
             "{\"product_id\": \"%s\", \"name\": \"Lab\", \"description\": \"bench\", "
             "\"os_feed\": \"RetailEval\", \"update_policy\": \"NoUpdates\"}",
             p);
    assert_int_equal(call(x, x->alice, "POST", x->t1, "/device-groups", body, &out), 201);
    char g[37];
    snprintf(g, sizeof(g), "%s", str(out, "id"));
    assert_string_equal(str(out, "name"), "Lab");
    assert_string_equal(str(out, "description"), "bench");
    assert_string_equal(str(out, "os_feed"), "RetailEval");
    assert_string_equal(str(out, "update_policy"), "NoUpdates");
    assert_string_equal(str(out, "product_id"), p);
    assert_int_equal(json_integer_value(json_object_get(out, "device_count")), 0);
    json_decref(out);
    assert_int_equal(audited(x, x->t1, "device_group.create", g), 1);

    /* Defaults. */
    snprintf(body, sizeof(body), "{\"product_id\": \"%s\", \"name\": \"Lab 2\"}", p);
    assert_int_equal(call(x, x->alice, "POST", x->t1, "/device-groups", body, &out), 201);
    assert_string_equal(str(out, "os_feed"), "Retail");
    assert_string_equal(str(out, "update_policy"), "UpdateAll");
    json_decref(out);

    /* The same name in the product. */
    snprintf(body, sizeof(body), "{\"product_id\": \"%s\", \"name\": \"Development\"}", p);
    out = refused(x, 409, x->alice, "POST", x->t1, "/device-groups", body);
    assert_string_equal(str(json_object_get(out, "error"), "code"), "conflict");
    json_decref(out);
    /* A bad feed or policy, naming the allowed values. */
    snprintf(body, sizeof(body), "{\"product_id\": \"%s\", \"name\": \"X\", \"os_feed\": \"Beta\"}",
             p);
    out = refused(x, 400, x->alice, "POST", x->t1, "/device-groups", body);
    assert_non_null(strstr(error_message(out), "Retail, RetailEval"));
    json_decref(out);
    snprintf(body, sizeof(body),
             "{\"product_id\": \"%s\", \"name\": \"X\", \"update_policy\": \"Sometimes\"}", p);
    out = refused(x, 400, x->alice, "POST", x->t1, "/device-groups", body);
    assert_non_null(strstr(error_message(out), "UpdateAll, No3rdPartyAppUpdates, NoUpdates"));
    json_decref(out);
    /* Another tenant's product. */
    snprintf(body, sizeof(body), "{\"product_id\": \"%s\", \"name\": \"X\"}", pb);
    json_decref(refused(x, 404, x->alice, "POST", x->t1, "/device-groups", body));
    json_decref(refused(x, 400, x->alice, "POST", x->t1, "/device-groups",
                        "{\"product_id\": \"nope\", \"name\": \"X\"}"));
    json_decref(
        refused(x, 400, x->alice, "POST", x->t1, "/device-groups", "{\"name\": \"no product\"}"));

    /* Show from the other tenant. */
    snprintf(rest, sizeof(rest), "/device-groups/%s", g);
    json_decref(refused(x, 404, x->bob, "GET", x->t2, rest, NULL));
}

static void test_group_update(void **state)
{
    fixture *x = *state;
    char p[37], g[37], rest[128];
    json_t *out = NULL;
    product_create(x, x->alice, x->t1, "Widget", p);
    group_create(x, x->alice, x->t1, p, "Lab", g);
    snprintf(rest, sizeof(rest), "/device-groups/%s", g);

    assert_int_equal(call(x, x->alice, "PATCH", x->t1, rest,
                          "{\"os_feed\": \"RetailEval\", \"update_policy\": \"NoUpdates\"}", &out),
                     200);
    assert_string_equal(str(out, "name"), "Lab");
    assert_string_equal(str(out, "os_feed"), "RetailEval");
    assert_string_equal(str(out, "update_policy"), "NoUpdates");
    json_decref(out);
    assert_int_equal(call(x, x->alice, "PATCH", x->t1, rest,
                          "{\"name\": \"Bench\", \"description\": \"d\"}", &out),
                     200);
    assert_string_equal(str(out, "name"), "Bench");
    assert_string_equal(str(out, "description"), "d");
    assert_string_equal(str(out, "os_feed"), "RetailEval");
    json_decref(out);
    assert_int_equal(audited(x, x->t1, "device_group.update", g), 2);

    json_decref(refused(x, 409, x->alice, "PATCH", x->t1, rest, "{\"name\": \"Production\"}"));
    json_decref(refused(x, 400, x->alice, "PATCH", x->t1, rest, "{\"os_feed\": \"retail\"}"));
    json_decref(refused(x, 400, x->alice, "PATCH", x->t1, rest, "{}"));
    json_decref(refused(x, 400, x->alice, "PATCH", x->t1, rest, "{\"product_id\": \"x\"}"));
    json_decref(refused(x, 404, x->bob, "PATCH", x->t2, rest, "{\"name\": \"Mine\"}"));
}

static void test_group_delete(void **state)
{
    fixture *x = *state;
    char p[37], g[37], rest[256], dev[PV_DEVICE_ID_HEX_LEN + 1];
    json_t *out = NULL;
    product_create(x, x->alice, x->t1, "Widget", p);
    group_create(x, x->alice, x->t1, p, "Lab", g);
    device_in_group(x, g, dev);

    snprintf(rest, sizeof(rest), "/device-groups/%s", g);
    assert_int_equal(call(x, x->alice, "GET", x->t1, rest, NULL, &out), 200);
    assert_int_equal(json_integer_value(json_object_get(out, "device_count")), 1);
    json_decref(out);

    out = refused(x, 409, x->alice, "DELETE", x->t1, rest, NULL);
    assert_string_equal(str(json_object_get(out, "error"), "code"), "conflict");
    json_decref(out);
    json_decref(refused(x, 404, x->bob, "DELETE", x->t2, rest, NULL));

    /* Out of the group, then it can go. */
    snprintf(rest, sizeof(rest), "/devices/%s", dev);
    assert_int_equal(call(x, x->alice, "PATCH", x->t1, rest, "{\"device_group_id\": null}", NULL),
                     200);
    snprintf(rest, sizeof(rest), "/device-groups/%s", g);
    assert_int_equal(call(x, x->alice, "DELETE", x->t1, rest, NULL, &out), 200);
    assert_string_equal(str(out, "id"), g);
    assert_true(json_is_true(json_object_get(out, "deleted")));
    json_decref(out);
    assert_int_equal(call(x, x->alice, "GET", x->t1, rest, NULL, NULL), 404);
    json_decref(refused(x, 404, x->alice, "DELETE", x->t1, rest, NULL));
    assert_int_equal(audited(x, x->t1, "device_group.delete", g), 1);
}

static void test_group_list(void **state)
{
    fixture *x = *state;
    char p1[37], p2[37], rest[512], token[256];
    json_t *out = NULL;
    product_create(x, x->alice, x->t1, "Widget", p1);
    product_create(x, x->alice, x->t1, "Gadget", p2);
    product_create(x, x->bob, x->t2, "Other", rest);

    assert_int_equal(call(x, x->alice, "GET", x->t1, "/device-groups", NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "items")), 10);
    json_decref(out);
    assert_int_equal(call(x, x->alice, "GET", x->t1, "/device-groups?name=Production", NULL, &out),
                     200);
    assert_int_equal(json_array_size(json_object_get(out, "items")), 2);
    json_decref(out);
    snprintf(rest, sizeof(rest), "/device-groups?name=Production&product_id=%s", p2);
    assert_int_equal(call(x, x->alice, "GET", x->t1, rest, NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "items")), 1);
    assert_string_equal(str(json_array_get(json_object_get(out, "items"), 0), "product_id"), p2);
    json_decref(out);
    /* Pages of four: 4, 4, 2. */
    size_t pages = 0, seen = 0;
    token[0] = '\0';
    do {
        if (token[0] == '\0') {
            snprintf(rest, sizeof(rest), "/device-groups?limit=4");
        } else {
            snprintf(rest, sizeof(rest), "/device-groups?limit=4&continuation_token=%s", token);
        }
        assert_int_equal(call(x, x->alice, "GET", x->t1, rest, NULL, &out), 200);
        pages++;
        seen += json_array_size(json_object_get(out, "items"));
        json_t *tok = json_object_get(out, "continuation_token");
        snprintf(token, sizeof(token), "%s", json_is_string(tok) ? json_string_value(tok) : "");
        json_decref(out);
    } while (token[0] != '\0' && pages < 10);
    assert_int_equal(pages, 3);
    assert_int_equal(seen, 10);
    assert_int_equal(call(x, x->alice, "GET", x->t1, "/device-groups?product_id=x", NULL, NULL),
                     400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_product_create_makes_five_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_product_duplicate_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_product_update_and_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_product_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_create_and_validate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_list, setup, teardown),
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof(st_backends) / sizeof(st_backends[0]); i++) {
        backend = st_backends[i];
        failed += cmocka_run_group_tests_name(backend, tests, NULL, NULL);
    }
    return failed;
}
