/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tenant's application images through the API (api_images.c) and the image roots
 * they must chain to (images.c), on SQLite and PostgreSQL: registering a package head,
 * refusing what is untrusted, tampered, truncated, oversized or of the wrong type,
 * tenant isolation, and revocation.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/base64.h"
#include "pavise/crypto.h"
#include "pavise/imgpkg.h"
#include "pavise/platform.h"

#include "imagetest.h"
#include "images.h"
#include "servertest.h"

#define DAY ((int64_t)86400)

static const char *backend;

typedef struct fixture {
    st_env env;
    it_signer prod, dev, other;
    uint8_t alice[PV_SHA256_LEN]; /* Administrator of t1 */
    uint8_t bob[PV_SHA256_LEN];   /* Administrator of t2 */
    uint8_t carol[PV_SHA256_LEN]; /* Contributor of t1 */
    char t1[37], t2[37];
} fixture;

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

static int64_t count(fixture *x, const char *sql)
{
    store_rows *rows = NULL;
    pv_err e = {0};
    assert_int_equal(store_exec(x->env.db, sql, NULL, 0, &rows, NULL, &e), PV_OK);
    int64_t n = store_rows_int(rows, 0, 0);
    store_rows_free(rows);
    return n;
}

/* Uploads head as t1's Contributor; expects status and, for an error, needle in the
 * message. */
static void upload_expect(fixture *x, const uint8_t *head, size_t len, int status,
                          const char *needle)
{
    json_t *out = NULL;
    char *body = it_body(head, len);
    int got = call(x, x->carol, "POST", x->t1, "/images", body, &out);
    if (got != status || (needle != NULL && strstr(error_message(out), needle) == NULL)) {
        fail_msg("expected %d '%s', got %d '%s'", status, needle ? needle : "", got,
                 error_message(out));
    }
    json_decref(out);
    free(body);
}

static int setup(void **state)
{
    fixture *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    int64_t now = pv_time_now();
    st_setup(&x->env, backend);
    it_signer_new(&x->prod, now - DAY, now + 30 * DAY);
    it_signer_new(&x->dev, now - DAY, now + 30 * DAY);
    it_signer_new(&x->other, now - DAY, now + 30 * DAY);
    it_add_root(x->env.db, &x->prod, false);
    it_add_root(x->env.db, &x->dev, true);
    st_operator(&x->env, "alice", x->alice);
    st_operator(&x->env, "bob", x->bob);
    st_operator(&x->env, "carol", x->carol);
    tenant_create(x, x->alice, "One", x->t1);
    tenant_create(x, x->bob, "Two", x->t2);
    pv_err e = {0};
    store_val p[] = {SV_TEXT(x->t1), SV_TEXT("carol"), SV_TEXT("Contributor"), SV_INT(now)};
    assert_int_equal(store_exec(x->env.db,
                                "INSERT INTO roles (tenant_id, operator_id, role, created_at) "
                                "VALUES ($1, (SELECT id FROM operators WHERE name = $2), $3, $4)",
                                p, 4, NULL, NULL, &e),
                     PV_OK);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    fixture *x = *state;
    st_teardown(&x->env);
    it_signer_free(&x->prod);
    it_signer_free(&x->dev);
    it_signer_free(&x->other);
    free(x);
    pv_time_set_override(0);
    return 0;
}

static void test_upload(void **state)
{
    fixture *x = *state;
    uint8_t *head = NULL;
    size_t len = 0;
    char id[37], path[128];
    json_t *out = NULL;
    char *b64 = it_head_b64(&x->prod, PV_IMAGE_APPLICATION, &head, &len, id);
    char *body = it_body(head, len);

    assert_int_equal(call(x, x->carol, "POST", x->t1, "/images", body, &out), 201);
    assert_string_equal(str(out, "id"), id);
    assert_string_equal(str(out, "tenant_id"), x->t1);
    assert_string_equal(str(out, "component_id"), "6f1c0c8e-3a1e-4d5b-9a43-0c4f2e9b7d21");
    assert_string_equal(str(out, "kind"), "app");
    assert_string_equal(str(out, "name"), "hello");
    assert_string_equal(str(out, "version"), "1.2.3");
    assert_int_equal(json_integer_value(json_object_get(out, "security_counter")), 7);
    assert_true(json_is_false(json_object_get(out, "development")));
    assert_true(json_is_null(json_object_get(out, "revoked_at")));
    assert_non_null(strstr(str(out, "created_at"), "Z"));
    /* The digest a device measures: SHA-256 of the signed manifest. */
    pv_imgpkg *pkg = NULL;
    uint8_t d[PV_SHA256_LEN];
    char hex[65];
    assert_int_equal(pv_imgpkg_open_head(head, len, &pkg, NULL), PV_OK);
    assert_int_equal(pv_imgpkg_manifest_digest(pkg, d), PV_OK);
    pv_hex_encode(d, sizeof(d), hex, sizeof(hex));
    assert_string_equal(str(out, "manifest_sha256"), hex);
    pv_imgpkg_free(pkg);
    json_decref(out);
    assert_int_equal(count(x, "SELECT COUNT(*) FROM audit WHERE action = 'image.add'"), 1);

    /* Shown, listed. */
    snprintf(path, sizeof(path), "/images/%s", id);
    assert_int_equal(call(x, x->alice, "GET", x->t1, path, NULL, &out), 200);
    assert_string_equal(str(out, "manifest_sha256"), hex);
    json_decref(out);
    assert_int_equal(call(x, x->alice, "GET", x->t1, "/images", NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "items")), 1);
    json_decref(out);

    /* The same image twice: 409, for this tenant and for another. */
    assert_int_equal(call(x, x->carol, "POST", x->t1, "/images", body, &out), 409);
    assert_non_null(strstr(error_message(out), id));
    json_decref(out);
    assert_int_equal(call(x, x->bob, "POST", x->t2, "/images", body, NULL), 409);
    assert_int_equal(count(x, "SELECT COUNT(*) FROM images"), 1);
    assert_int_equal(count(x, "SELECT COUNT(*) FROM audit WHERE action = 'image.add'"), 1);

    /* Another tenant sees none of it. */
    assert_int_equal(call(x, x->bob, "GET", x->t2, path, NULL, &out), 404);
    json_decref(out);
    assert_int_equal(call(x, x->bob, "GET", x->t2, "/images", NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "items")), 0);
    json_decref(out);
    assert_int_equal(call(x, x->bob, "POST", x->t2,
                          "/images/"
                          "00000000-0000-4000-8000-000000000001"
                          "/revoke",
                          NULL, NULL),
                     404);
    snprintf(path, sizeof(path), "/images/%s/revoke", id);
    assert_int_equal(call(x, x->bob, "POST", x->t2, path, NULL, NULL), 404);
    assert_int_equal(call(x, x->bob, "GET", x->t1, "/images", NULL, NULL), 404); /* no role */
    free(b64);
    free(body);
    free(head);
}

static void test_development_root(void **state)
{
    fixture *x = *state;
    json_t *out = NULL;
    uint8_t *head = NULL;
    size_t len = 0;
    char *b64 = it_head_b64(&x->dev, PV_IMAGE_APPLICATION, &head, &len, NULL);
    char *body = it_body(head, len);
    assert_int_equal(call(x, x->carol, "POST", x->t1, "/images", body, &out), 201);
    assert_true(json_is_true(json_object_get(out, "development")));
    json_decref(out);
    free(b64);
    free(body);
    free(head);
}

static void test_untrusted(void **state)
{
    fixture *x = *state;
    uint8_t *head = NULL;
    size_t len = 0;
    char *b64 = it_head_b64(&x->other, PV_IMAGE_APPLICATION, &head, &len, NULL);
    upload_expect(x, head, len, 400, "none of the image roots");
    /* With no root at all, the message says how to add one. */
    pv_err e = {0};
    assert_int_equal(store_exec(x->env.db, "DELETE FROM image_roots", NULL, 0, NULL, NULL, &e),
                     PV_OK);
    upload_expect(x, head, len, 400, "image-root add");
    assert_int_equal(count(x, "SELECT COUNT(*) FROM images"), 0);
    assert_int_equal(count(x, "SELECT COUNT(*) FROM audit WHERE action = 'image.add'"), 0);
    free(b64);
    free(head);
}

static void test_expired_signer(void **state)
{
    fixture *x = *state;
    uint8_t *head = NULL;
    size_t len = 0;
    char *b64 = it_head_b64(&x->prod, PV_IMAGE_APPLICATION, &head, &len, NULL);
    pv_time_set_override(pv_time_now() + 60 * DAY);
    upload_expect(x, head, len, 400, "package: certificate chain");
    pv_time_set_override(0);
    assert_int_equal(count(x, "SELECT COUNT(*) FROM images"), 0);
    free(b64);
    free(head);
}

static void test_tampered(void **state)
{
    fixture *x = *state;
    uint8_t *head = NULL;
    size_t len = 0;
    pv_imgpkg_layout l;
    pv_imgpkg *pkg = NULL;
    char *b64 = it_head_b64(&x->prod, PV_IMAGE_APPLICATION, &head, &len, NULL);
    assert_int_equal(pv_imgpkg_open_head(head, len, &pkg, NULL), PV_OK);
    pv_imgpkg_get_layout(pkg, &l);
    pv_imgpkg_free(pkg);
    /* A header byte (reserved), the manifest's last signature byte, the manifest name. */
    head[40] ^= 1;
    upload_expect(x, head, len, 400, "reserved");
    head[40] ^= 1;
    size_t sig_end = PV_IMGPKG_HEADER_LEN + l.signed_manifest_len - 1;
    head[sig_end] ^= 1;
    upload_expect(x, head, len, 400, "signature");
    head[sig_end] ^= 1;
    uint8_t *name = memmem(head, len, "hello", 5);
    assert_non_null(name);
    name[0] = 'j';
    upload_expect(x, head, len, 400, "signature");
    name[0] = 'h';
    upload_expect(x, head, len, 201, NULL); /* the original still registers */
    free(b64);
    free(head);
}

static void test_truncated_and_malformed(void **state)
{
    fixture *x = *state;
    uint8_t *head = NULL;
    size_t len = 0;
    json_t *out = NULL;
    char *b64 = it_head_b64(&x->prod, PV_IMAGE_APPLICATION, &head, &len, NULL);
    upload_expect(x, head, len - 1, 400, "truncated");
    upload_expect(x, head, 47, 400, "truncated");
    upload_expect(x, head, 1, 400, "truncated");
    /* The whole package is not a head: the payload is refused, not ignored. */
    char *path = it_package(&x->prod, PV_IMAGE_APPLICATION, NULL);
    size_t full_len = 0;
    uint8_t *full = tu_read(path, &full_len);
    upload_expect(x, full, full_len, 400, "payload starts");
    /* Not base64, empty, a number, missing, an unknown field. */
    static const char *const bodies[] = {
        "{\"package\": \"not base64!\"}",
        "{\"package\": \"\"}",
        "{\"package\": 12}",
        "{}",
        "{\"package\": \"AAAA\", \"extra\": 1}",
        "{\"package\": \"iVBAVklTRQo=\"}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        assert_int_equal(call(x, x->carol, "POST", x->t1, "/images", bodies[i], &out), 400);
        json_decref(out);
    }
    assert_int_equal(count(x, "SELECT COUNT(*) FROM images"), 0);
    free(path);
    free(full);
    free(b64);
    free(head);
}

static void test_oversized(void **state)
{
    fixture *x = *state;
    json_t *out = NULL;
    /* A body over the server's limit: 413 before any decoding. */
    size_t n = SERVER_MAX_BODY + 64;
    char *body = malloc(n + 32);
    assert_non_null(body);
    memcpy(body, "{\"package\": \"", 13);
    memset(body + 13, 'A', n);
    memcpy(body + 13 + n, "\"}", 3);
    assert_int_equal(call(x, x->carol, "POST", x->t1, "/images", body, &out), 413);
    json_decref(out);
    free(body);
    /* A header whose lengths are beyond the format's limits: refused before reading. */
    uint8_t *head = NULL;
    size_t len = 0;
    char *b64 = it_head_b64(&x->prod, PV_IMAGE_APPLICATION, &head, &len, NULL);
    uint8_t big[PV_IMGPKG_HEADER_LEN];
    memcpy(big, head, sizeof(big));
    big[16] = 0x7f; /* S = 2 GiB and more */
    upload_expect(x, big, sizeof(big), 400, "out of range");
    free(b64);
    free(head);
}

static void test_os_image_refused(void **state)
{
    fixture *x = *state;
    uint8_t *head = NULL;
    size_t len = 0;
    char *b64 = it_head_b64(&x->prod, PV_IMAGE_OS, &head, &len, NULL);
    upload_expect(x, head, len, 400, "application images");
    assert_int_equal(count(x, "SELECT COUNT(*) FROM images"), 0);
    free(b64);
    free(head);
}

static void test_revoke(void **state)
{
    fixture *x = *state;
    uint8_t *head = NULL;
    size_t len = 0;
    char id[37], path[128], first[32];
    json_t *out = NULL;
    char *b64 = it_head_b64(&x->prod, PV_IMAGE_APPLICATION, &head, &len, id);
    upload_expect(x, head, len, 201, NULL);
    snprintf(path, sizeof(path), "/images/%s/revoke", id);
    /* A Contributor may not revoke. */
    assert_int_equal(call(x, x->carol, "POST", x->t1, path, NULL, NULL), 403);
    assert_int_equal(call(x, x->alice, "POST", x->t1, path, NULL, &out), 200);
    assert_true(json_is_string(json_object_get(out, "revoked_at")));
    snprintf(first, sizeof(first), "%s", str(out, "revoked_at"));
    json_decref(out);
    /* Idempotent: the first revocation's time, no second audit row. */
    pv_time_set_override(pv_time_now() + 3600);
    assert_int_equal(call(x, x->alice, "POST", x->t1, path, "{}", &out), 200);
    assert_string_equal(str(out, "revoked_at"), first);
    json_decref(out);
    pv_time_set_override(0);
    assert_int_equal(count(x, "SELECT COUNT(*) FROM audit WHERE action = 'image.revoke'"), 1);
    assert_int_equal(count(x, "SELECT COUNT(*) FROM images WHERE revoked_at IS NOT NULL"), 1);
    /* Unknown, and malformed, IDs. */
    assert_int_equal(call(x, x->alice, "POST", x->t1,
                          "/images/00000000-0000-4000-8000-000000000001/revoke", NULL, NULL),
                     404);
    assert_int_equal(call(x, x->alice, "GET", x->t1, "/images/NOT-A-UUID", NULL, NULL), 400);
    free(b64);
    free(head);
}

static void test_pagination(void **state)
{
    fixture *x = *state;
    json_t *out = NULL;
    for (int i = 0; i < 3; i++) {
        uint8_t *head = NULL;
        size_t len = 0;
        char *b64 = it_head_b64(&x->prod, PV_IMAGE_APPLICATION, &head, &len, NULL);
        upload_expect(x, head, len, 201, NULL);
        free(b64);
        free(head);
    }
    assert_int_equal(call(x, x->alice, "GET", x->t1, "/images?limit=2", NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "items")), 2);
    const char *token = json_string_value(json_object_get(out, "continuation_token"));
    assert_non_null(token);
    char rest[256];
    snprintf(rest, sizeof(rest), "/images?limit=2&continuation_token=%s", token);
    json_decref(out);
    assert_int_equal(call(x, x->alice, "GET", x->t1, rest, NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "items")), 1);
    assert_true(json_is_null(json_object_get(out, "continuation_token")));
    json_decref(out);
}

/* Roots: one certificate, a CA, once. */
static void test_roots(void **state)
{
    fixture *x = *state;
    char fp[65];
    pv_err e = {0};
    size_t n = 0;
    char *path = tu_path(x->prod.dir, "root.crt");
    char *pem = (char *)tu_read(path, &n);
    assert_int_equal(images_add_root(x->env.db, pem, n, true, 1, fp, &e), PV_ERR_EXISTS);
    free(pem);
    free(path);
    path = tu_path(x->prod.dir, "chain.pem"); /* leaf first: two blocks, and not a CA */
    pem = (char *)tu_read(path, &n);
    assert_int_equal(images_add_root(x->env.db, pem, n, false, 1, fp, &e), PV_ERR_FORMAT);
    assert_int_equal(images_add_root(x->env.db, "junk", 4, false, 1, fp, &e), PV_ERR_FORMAT);
    free(pem);
    free(path);
    assert_int_equal(count(x, "SELECT COUNT(*) FROM image_roots"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_upload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_development_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_untrusted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_signer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_and_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_os_image_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pagination, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roots, setup, teardown),
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof(st_backends) / sizeof(st_backends[0]); i++) {
        backend = st_backends[i];
        failed += cmocka_run_group_tests_name(backend, tests, NULL, NULL);
    }
    return failed;
}
