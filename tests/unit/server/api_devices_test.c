/* SPDX-License-Identifier: Apache-2.0 */
/* Devices through the API (api_devices.c): claim, list, show, assign, modes, release,
 * on SQLite and PostgreSQL. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "pavise/mfgrec.h"
#include "pavise/platform.h"
#include "pavise/rot.h"

#include "records.h"
#include "servertest.h"

#define YEAR ((int64_t)365 * 24 * 3600)

static const char *backend;

typedef struct fixture {
    st_env env;
    char *fdir; /* the factory: root.crt, its signing key and chain */
    pv_key *fkey;
    pv_chain *fchain;
    uint8_t alice[PV_SHA256_LEN]; /* Administrator of t1 */
    uint8_t bob[PV_SHA256_LEN];   /* Administrator of t2 */
    char t1[37], t2[37];
} fixture;

/* ---- helpers ---- */

static char *tenant_create(fixture *x, const uint8_t *fp, const char *name, char id[37])
{
    json_t *out = NULL;
    char body[128];
    snprintf(body, sizeof(body), "{\"name\": \"%s\"}", name);
    assert_int_equal(st_call(&x->env, fp, "POST", "/v1/tenants", body, &out), 201);
    snprintf(id, 37, "%s", json_string_value(json_object_get(out, "id")));
    json_decref(out);
    return id;
}

/* A signed software record for a new device. */
static pv_buf *record_new(fixture *x, char id[PV_DEVICE_ID_HEX_LEN + 1])
{
    pv_mfgrec r;
    pv_err e = {0};
    memset(&r, 0, sizeof(r));
    r.version = PV_MFGREC_VERSION;
    r.rot_kind = PV_ROT_SOFTWARE;
    assert_int_equal(pv_key_generate(&r.identity_key, &e), PV_OK);
    assert_int_equal(pv_key_generate(&r.attestation_key, &e), PV_OK);
    assert_int_equal(pv_device_id_of_key(r.identity_key, r.device_id), PV_OK);
    memset(r.trust_anchor, 0x5a, sizeof(r.trust_anchor));
    r.manufactured_at = 1700000000;
    pv_buf *b = pv_buf_new(PV_MFGREC_MAX_SIZE);
    assert_non_null(b);
    if (pv_mfgrec_sign(&r, x->fkey, x->fchain, b, &e) != PV_OK) {
        fail_msg("sign: %s", pv_err_msg(&e));
    }
    memcpy(id, r.device_id, sizeof(r.device_id));
    pv_mfgrec_free(&r);
    return b;
}

/* A device whose record the service has imported. */
static void device_imported(fixture *x, char id[PV_DEVICE_ID_HEX_LEN + 1])
{
    pv_err e = {0};
    char got[PV_DEVICE_ID_HEX_LEN + 1];
    pv_buf *b = record_new(x, id);
    if (records_import(x->env.db, pv_buf_data(b), pv_buf_len(b), pv_time_now(), got, &e) != PV_OK) {
        fail_msg("import: %s", pv_err_msg(&e));
    }
    pv_buf_free(b);
}

static int claim(fixture *x, const uint8_t *fp, const char *tenant, const char *id, json_t **out)
{
    char path[128], body[512];
    snprintf(path, sizeof(path), "/v1/tenants/%s/devices", tenant);
    snprintf(body, sizeof(body), "{\"device_id\": \"%s\"}", id);
    return st_call(&x->env, fp, "POST", path, body, out);
}

/* An imported device claimed into t1 by alice. */
static void device_claimed(fixture *x, char id[PV_DEVICE_ID_HEX_LEN + 1])
{
    device_imported(x, id);
    assert_int_equal(claim(x, x->alice, x->t1, id, NULL), 201);
}

static int device_call(fixture *x, const uint8_t *fp, const char *method, const char *tenant,
                       const char *id, const char *suffix, const char *body, json_t **out)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s%s", tenant, id, suffix);
    return st_call(&x->env, fp, method, path, body, out);
}

/* Creates a product in tenant as fp; id receives its ID. */
static void product_create(fixture *x, const uint8_t *fp, const char *tenant, const char *name,
                           char id[37])
{
    char path[128], body[128];
    json_t *out = NULL;
    snprintf(path, sizeof(path), "/v1/tenants/%s/products", tenant);
    snprintf(body, sizeof(body), "{\"name\": \"%s\"}", name);
    assert_int_equal(st_call(&x->env, fp, "POST", path, body, &out), 201);
    snprintf(id, 37, "%s", json_string_value(json_object_get(out, "id")));
    json_decref(out);
}

/* The ID of the product's group called name. */
static void group_named(fixture *x, const uint8_t *fp, const char *tenant, const char *product,
                        const char *name, char id[37])
{
    char path[256];
    json_t *out = NULL;
    snprintf(path, sizeof(path), "/v1/tenants/%s/device-groups?product_id=%s", tenant, product);
    assert_int_equal(st_call(&x->env, fp, "GET", path, NULL, &out), 200);
    json_t *items = json_object_get(out, "items"), *g;
    size_t i;
    id[0] = '\0';
    json_array_foreach(items, i, g)
    {
        if (strcmp(json_string_value(json_object_get(g, "name")), name) == 0) {
            snprintf(id, 37, "%s", json_string_value(json_object_get(g, "id")));
        }
    }
    json_decref(out);
    assert_int_equal(strlen(id), 36);
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "(not a string)";
}

static const char *error_message(json_t *o)
{
    return str(json_object_get(o, "error"), "message");
}

/* How many audit rows have this action and target (in any tenant). */
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

static char *b64(const pv_buf *b)
{
    size_t n = pv_buf_len(b);
    char *s = malloc(4 * ((n + 2) / 3) + 1);
    assert_non_null(s);
    EVP_EncodeBlock((unsigned char *)s, pv_buf_data(b), (int)n);
    return s;
}

/* ---- setup ---- */

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
    if (records_add_factory(x->env.db, pem, n, now, fp, &e) != PV_OK) {
        fail_msg("factory: %s", pv_err_msg(&e));
    }
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

/* ---- claim ---- */

static void test_claim_with_record(void **state)
{
    fixture *x = *state;
    char id[PV_DEVICE_ID_HEX_LEN + 1], path[128], body[PV_MFGREC_MAX_SIZE * 2];
    json_t *out = NULL;
    pv_buf *rec = record_new(x, id);
    char *enc = b64(rec);
    snprintf(path, sizeof(path), "/v1/tenants/%s/devices", x->t1);
    snprintf(body, sizeof(body), "{\"device_id\": \"%s\", \"manufacturing_record\": \"%s\"}", id,
             enc);
    assert_int_equal(st_call(&x->env, x->alice, "POST", path, body, &out), 201);
    assert_string_equal(str(out, "id"), id);
    assert_string_equal(str(out, "tenant_id"), x->t1);
    assert_true(json_is_null(json_object_get(out, "device_group_id")));
    assert_true(json_is_null(json_object_get(out, "device_group_name")));
    assert_true(json_is_null(json_object_get(out, "product_id")));
    assert_true(json_is_null(json_object_get(out, "product_name")));
    assert_true(json_is_false(json_object_get(out, "development")));
    assert_true(json_is_false(json_object_get(out, "cloud_test")));
    assert_string_equal(str(out, "rot_kind"), "software");
    assert_string_equal(str(out, "manufactured_at"), "2023-11-14T22:13:20Z");
    assert_non_null(json_string_value(json_object_get(out, "claimed_at")));
    assert_non_null(json_string_value(json_object_get(out, "updated_at")));
    json_decref(out);
    assert_int_equal(audited(x, x->t1, "device.claim", id), 1);

    /* The show is the same object. */
    assert_int_equal(device_call(x, x->alice, "GET", x->t1, id, "", NULL, &out), 200);
    assert_string_equal(str(out, "id"), id);
    assert_string_equal(str(out, "rot_kind"), "software");
    json_decref(out);
    free(enc);
    pv_buf_free(rec);
}

static void test_claim_bad_record(void **state)
{
    fixture *x = *state;
    char id[PV_DEVICE_ID_HEX_LEN + 1], other[PV_DEVICE_ID_HEX_LEN + 1], path[128];
    char body[PV_MFGREC_MAX_SIZE * 2];
    json_t *out = NULL;
    pv_buf *rec = record_new(x, id);
    pv_buf *rec2 = record_new(x, other);
    char *enc = b64(rec), *enc2 = b64(rec2);
    snprintf(path, sizeof(path), "/v1/tenants/%s/devices", x->t1);
    char *before = st_dump(&x->env);

    /* The record of another device. */
    snprintf(body, sizeof(body), "{\"device_id\": \"%s\", \"manufacturing_record\": \"%s\"}", id,
             enc2);
    assert_int_equal(st_call(&x->env, x->alice, "POST", path, body, &out), 400);
    assert_non_null(strstr(error_message(out), other));
    json_decref(out);
    /* Not base64. */
    snprintf(body, sizeof(body), "{\"device_id\": \"%s\", \"manufacturing_record\": \"%s\"}", id,
             "not*base64!");
    assert_int_equal(st_call(&x->env, x->alice, "POST", path, body, &out), 400);
    json_decref(out);
    /* A damaged record (a byte of the signature flipped, still base64). */
    uint8_t *p = pv_buf_mutable_data(rec);
    p[pv_buf_len(rec) / 2] ^= 0x40;
    free(enc);
    enc = b64(rec);
    snprintf(body, sizeof(body), "{\"device_id\": \"%s\", \"manufacturing_record\": \"%s\"}", id,
             enc);
    assert_int_equal(st_call(&x->env, x->alice, "POST", path, body, &out), 400);
    json_decref(out);
    /* A device ID that is not one. */
    assert_int_equal(claim(x, x->alice, x->t1, "ABC", &out), 400);
    json_decref(out);
    /* An unknown field. */
    snprintf(body, sizeof(body), "{\"device_id\": \"%s\", \"tenant\": \"x\"}", id);
    assert_int_equal(st_call(&x->env, x->alice, "POST", path, body, &out), 400);
    json_decref(out);

    char *after = st_dump(&x->env);
    assert_string_equal(before, after);
    free(before);
    free(after);
    free(enc);
    free(enc2);
    pv_buf_free(rec);
    pv_buf_free(rec2);
}

static void test_claim_by_id_after_import(void **state)
{
    fixture *x = *state;
    char id[PV_DEVICE_ID_HEX_LEN + 1];
    json_t *out = NULL;
    device_imported(x, id);
    assert_int_equal(claim(x, x->alice, x->t1, id, &out), 201);
    assert_string_equal(str(out, "id"), id);
    assert_string_equal(str(out, "tenant_id"), x->t1);
    json_decref(out);
    assert_int_equal(audited(x, x->t1, "device.claim", id), 1);
}

static void test_claim_unknown(void **state)
{
    fixture *x = *state;
    char id[PV_DEVICE_ID_HEX_LEN + 1];
    json_t *out = NULL;
    pv_buf *rec = record_new(x, id); /* never imported */
    char *before = st_dump(&x->env);
    assert_int_equal(claim(x, x->alice, x->t1, id, &out), 404);
    assert_string_equal(str(json_object_get(out, "error"), "code"), "not_found");
    assert_non_null(strstr(error_message(out), "no manufacturing record"));
    json_decref(out);
    char *after = st_dump(&x->env);
    assert_string_equal(before, after);
    free(before);
    free(after);
    pv_buf_free(rec);
}

static void test_claim_already_claimed(void **state)
{
    fixture *x = *state;
    char id[PV_DEVICE_ID_HEX_LEN + 1];
    json_t *out = NULL;
    device_claimed(x, id);
    char *before = st_dump(&x->env);

    /* By the same tenant. */
    assert_int_equal(claim(x, x->alice, x->t1, id, &out), 409);
    assert_string_equal(str(json_object_get(out, "error"), "code"), "conflict");
    json_decref(out);
    /* By another: the message does not say who holds it. */
    assert_int_equal(claim(x, x->bob, x->t2, id, &out), 409);
    const char *msg = error_message(out);
    assert_null(strstr(msg, x->t1));
    assert_null(strstr(msg, "Alice"));
    assert_null(strstr(msg, "alice"));
    json_decref(out);

    char *after = st_dump(&x->env);
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* Nor can bob see it. */
    assert_int_equal(device_call(x, x->bob, "GET", x->t2, id, "", NULL, NULL), 404);
}

static void test_release_then_claim_elsewhere(void **state)
{
    fixture *x = *state;
    char id[PV_DEVICE_ID_HEX_LEN + 1];
    json_t *out = NULL;
    device_claimed(x, id);

    /* bob cannot release what t1 holds (his tenant does not have it). */
    char *before = st_dump(&x->env);
    assert_int_equal(device_call(x, x->bob, "POST", x->t2, id, "/release", "{}", NULL), 404);
    char *after = st_dump(&x->env);
    assert_string_equal(before, after);
    free(before);
    free(after);

    assert_int_equal(device_call(x, x->alice, "POST", x->t1, id, "/release", "{}", &out), 200);
    assert_string_equal(str(out, "id"), id);
    assert_true(json_is_true(json_object_get(out, "released")));
    json_decref(out);
    assert_int_equal(device_call(x, x->alice, "GET", x->t1, id, "", NULL, NULL), 404);
    assert_int_equal(device_call(x, x->alice, "POST", x->t1, id, "/release", "{}", NULL), 404);

    assert_int_equal(claim(x, x->bob, x->t2, id, &out), 201);
    assert_string_equal(str(out, "tenant_id"), x->t2);
    json_decref(out);
    assert_int_equal(audited(x, x->t1, "device.claim", id), 1);
    assert_int_equal(audited(x, x->t1, "device.release", id), 1);
    assert_int_equal(audited(x, x->t2, "device.claim", id), 1);
}

/* ---- assign and modes ---- */

static void test_assign(void **state)
{
    fixture *x = *state;
    char id[PV_DEVICE_ID_HEX_LEN + 1], p1[37], p2[37], g1[37], g2[37], body[128];
    json_t *out = NULL;
    device_claimed(x, id);
    product_create(x, x->alice, x->t1, "Widget", p1);
    group_named(x, x->alice, x->t1, p1, "Production", g1);
    product_create(x, x->bob, x->t2, "Gadget", p2);
    group_named(x, x->bob, x->t2, p2, "Production", g2);

    snprintf(body, sizeof(body), "{\"device_group_id\": \"%s\"}", g1);
    assert_int_equal(device_call(x, x->alice, "PATCH", x->t1, id, "", body, &out), 200);
    assert_string_equal(str(out, "device_group_id"), g1);
    assert_string_equal(str(out, "device_group_name"), "Production");
    assert_string_equal(str(out, "product_id"), p1);
    assert_string_equal(str(out, "product_name"), "Widget");
    json_decref(out);
    assert_int_equal(audited(x, x->t1, "device.update", id), 1);

    /* A group of another tenant is not found, and nothing changes. */
    char *before = st_dump(&x->env);
    snprintf(body, sizeof(body), "{\"device_group_id\": \"%s\"}", g2);
    assert_int_equal(device_call(x, x->alice, "PATCH", x->t1, id, "", body, &out), 404);
    assert_non_null(strstr(error_message(out), g2));
    json_decref(out);
    /* Nor is the device from the other tenant. */
    assert_int_equal(device_call(x, x->bob, "PATCH", x->t2, id, "", body, NULL), 404);
    assert_int_equal(device_call(x, x->alice, "PATCH", x->t1, id, "", "{}", NULL), 400);
    assert_int_equal(
        device_call(x, x->alice, "PATCH", x->t1, id, "", "{\"device_group_id\": \"nope\"}", NULL),
        400);
    /* A well-formed group ID that exists nowhere is a 404 too (not a foreign-key error). */
    assert_int_equal(device_call(x, x->alice, "PATCH", x->t1, id, "",
                                 "{\"device_group_id\": \"0b0e2a8c-3f7a-4c1e-9d7b-2f6a1c3e5d70\"}",
                                 NULL),
                     404);
    char *after = st_dump(&x->env);
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* null takes it out of its group. */
    assert_int_equal(
        device_call(x, x->alice, "PATCH", x->t1, id, "", "{\"device_group_id\": null}", &out), 200);
    assert_true(json_is_null(json_object_get(out, "device_group_id")));
    assert_true(json_is_null(json_object_get(out, "product_name")));
    json_decref(out);
}

static void test_enable_development(void **state)
{
    fixture *x = *state;
    char id[PV_DEVICE_ID_HEX_LEN + 1], p[37], g[37], body[128];
    json_t *out = NULL;
    device_claimed(x, id);

    /* Not in a product's group: nowhere to go. */
    char *before = st_dump(&x->env);
    assert_int_equal(device_call(x, x->alice, "POST", x->t1, id, "/enable-development", "{}", &out),
                     409);
    assert_string_equal(str(json_object_get(out, "error"), "code"), "conflict");
    json_decref(out);
    assert_int_equal(device_call(x, x->alice, "POST", x->t1, id, "/enable-cloud-test", "{}", NULL),
                     409);
    char *after = st_dump(&x->env);
    assert_string_equal(before, after);
    free(before);
    free(after);

    product_create(x, x->alice, x->t1, "Widget", p);
    group_named(x, x->alice, x->t1, p, "Production", g);
    snprintf(body, sizeof(body), "{\"device_group_id\": \"%s\"}", g);
    assert_int_equal(device_call(x, x->alice, "PATCH", x->t1, id, "", body, NULL), 200);

    assert_int_equal(device_call(x, x->alice, "POST", x->t1, id, "/enable-development", "{}", &out),
                     200);
    assert_string_equal(str(out, "device_group_name"), "Development");
    assert_string_equal(str(out, "product_id"), p);
    assert_true(json_is_true(json_object_get(out, "development")));
    assert_true(json_is_false(json_object_get(out, "cloud_test")));
    json_decref(out);
    assert_int_equal(audited(x, x->t1, "device.enable_development", id), 1);

    assert_int_equal(device_call(x, x->alice, "POST", x->t1, id, "/enable-cloud-test", "{}", &out),
                     200);
    assert_string_equal(str(out, "device_group_name"), "Field Test");
    assert_true(json_is_false(json_object_get(out, "development")));
    assert_true(json_is_true(json_object_get(out, "cloud_test")));
    json_decref(out);
    assert_int_equal(audited(x, x->t1, "device.enable_cloud_test", id), 1);

    /* An explicit group. */
    assert_int_equal(device_call(x, x->alice, "POST", x->t1, id, "/enable-development", body, &out),
                     200);
    assert_string_equal(str(out, "device_group_id"), g);
    assert_true(json_is_true(json_object_get(out, "development")));
    json_decref(out);
}

/* ---- list ---- */

static void test_list_pagination(void **state)
{
    fixture *x = *state;
    char ids[5][PV_DEVICE_ID_HEX_LEN + 1], path[512], token[256] = "";
    json_t *out = NULL;
    for (size_t i = 0; i < 5; i++) {
        device_claimed(x, ids[i]);
    }
    /* One of bob's, which alice must not see. */
    char theirs[PV_DEVICE_ID_HEX_LEN + 1];
    device_imported(x, theirs);
    assert_int_equal(claim(x, x->bob, x->t2, theirs, NULL), 201);

    qsort(ids, 5, sizeof(ids[0]), (int (*)(const void *, const void *))strcmp);
    size_t seen = 0, pages = 0;
    for (;;) {
        if (token[0] == '\0') {
            snprintf(path, sizeof(path), "/v1/tenants/%s/devices?limit=2", x->t1);
        } else {
            snprintf(path, sizeof(path), "/v1/tenants/%s/devices?limit=2&continuation_token=%s",
                     x->t1, token);
        }
        assert_int_equal(st_call(&x->env, x->alice, "GET", path, NULL, &out), 200);
        pages++;
        json_t *items = json_object_get(out, "items"), *d;
        size_t i;
        assert_true(json_array_size(items) <= 2);
        json_array_foreach(items, i, d)
        {
            assert_true(seen < 5);
            assert_string_equal(str(d, "id"), ids[seen]);
            seen++;
        }
        json_t *tok = json_object_get(out, "continuation_token");
        if (json_is_null(tok)) {
            json_decref(out);
            break;
        }
        assert_true(json_is_string(tok));
        snprintf(token, sizeof(token), "%s", json_string_value(tok));
        json_decref(out);
        assert_true(pages < 10);
    }
    assert_int_equal(pages, 3);
    assert_int_equal(seen, 5);

    /* A token this server did not make. */
    snprintf(path, sizeof(path), "/v1/tenants/%s/devices?continuation_token=%s", x->t1,
             "not-a-token!");
    assert_int_equal(st_call(&x->env, x->alice, "GET", path, NULL, &out), 400);
    json_decref(out);
    snprintf(path, sizeof(path), "/v1/tenants/%s/devices?limit=0", x->t1);
    assert_int_equal(st_call(&x->env, x->alice, "GET", path, NULL, NULL), 400);
}

static void test_list_by_group(void **state)
{
    fixture *x = *state;
    char a[PV_DEVICE_ID_HEX_LEN + 1], b[PV_DEVICE_ID_HEX_LEN + 1], p[37], g[37], path[256];
    char body[128];
    json_t *out = NULL;
    device_claimed(x, a);
    device_claimed(x, b);
    product_create(x, x->alice, x->t1, "Widget", p);
    group_named(x, x->alice, x->t1, p, "Field Test", g);
    snprintf(body, sizeof(body), "{\"device_group_id\": \"%s\"}", g);
    assert_int_equal(device_call(x, x->alice, "PATCH", x->t1, b, "", body, NULL), 200);

    snprintf(path, sizeof(path), "/v1/tenants/%s/devices?device_group_id=%s", x->t1, g);
    assert_int_equal(st_call(&x->env, x->alice, "GET", path, NULL, &out), 200);
    json_t *items = json_object_get(out, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(str(json_array_get(items, 0), "id"), b);
    assert_string_equal(str(json_array_get(items, 0), "product_name"), "Widget");
    assert_true(json_is_null(json_object_get(out, "continuation_token")));
    json_decref(out);

    snprintf(path, sizeof(path), "/v1/tenants/%s/devices", x->t1);
    assert_int_equal(st_call(&x->env, x->alice, "GET", path, NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "items")), 2);
    json_decref(out);

    snprintf(path, sizeof(path), "/v1/tenants/%s/devices?device_group_id=xyz", x->t1);
    assert_int_equal(st_call(&x->env, x->alice, "GET", path, NULL, NULL), 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_claim_with_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_bad_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_by_id_after_import, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_already_claimed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_then_claim_elsewhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assign, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enable_development, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_pagination, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_by_group, setup, teardown),
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof(st_backends) / sizeof(st_backends[0]); i++) {
        backend = st_backends[i];
        failed += cmocka_run_group_tests_name(backend, tests, NULL, NULL);
    }
    return failed;
}
