/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The role matrix: every route of api_routes (so a new route is covered without
 * touching this file), called with no certificate, by an operator with no role in the
 * tenant, and by a Reader, a Contributor and an Administrator. A caller below the route's
 * access is refused (401 without a certificate, 404 without a role in the tenant, 403
 * with too small a role) and the database is unchanged; a caller at or above it reaches
 * the handler, with real IDs (and fresh objects for every mutating call) so that the
 * handler succeeds. Runs on SQLite and PostgreSQL.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/mfgrec.h"
#include "pavise/platform.h"
#include "pavise/rot.h"

#include "imagetest.h"
#include "records.h"
#include "servertest.h"

#define YEAR ((int64_t)365 * 24 * 3600)

static const char *backend;

typedef struct caller {
    const char *name; /* operator name, or NULL for no certificate */
    const char *role; /* role in the tenant, or NULL */
    int level;        /* API_ROLE_* */
    uint8_t fp[PV_SHA256_LEN];
} caller;

typedef struct fixture {
    st_env env;
    char *fdir;
    pv_key *fkey;
    pv_chain *fchain;
    uint8_t owner[PV_SHA256_LEN]; /* made the tenant: Administrator */
    caller callers[5];
    char tenant[37], product[37], group[37];
    char device[PV_DEVICE_ID_HEX_LEN + 1];
    it_signer signer; /* signs application images under an image root */
    char image[37];
    unsigned serial; /* for fresh names */
} fixture;

/* ---- helpers ---- */

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "(not a string)";
}

static void grant(fixture *x, const char *name, const char *role)
{
    pv_err e = {0};
    store_val p[] = {SV_TEXT(x->tenant), SV_TEXT(name), SV_TEXT(role), SV_INT(pv_time_now())};
    if (store_exec(x->env.db,
                   "INSERT INTO roles (tenant_id, operator_id, role, created_at) "
                   "VALUES ($1, (SELECT id FROM operators WHERE name = $2), $3, $4)",
                   p, 4, NULL, NULL, &e) != PV_OK) {
        fail_msg("grant %s %s: %s", name, role, pv_err_msg(&e));
    }
}

/* POSTs as the owner and copies the new object's "id". */
static void create(fixture *x, const char *path, const char *body, char *id, size_t id_size)
{
    json_t *out = NULL;
    int status = st_call(&x->env, x->owner, "POST", path, body, &out);
    if (status != 201) {
        fail_msg("POST %s %s: %d", path, body, status);
    }
    snprintf(id, id_size, "%s", str(out, "id"));
    json_decref(out);
}

/* A device whose manufacturing record the service holds, not claimed. */
static void device_imported(fixture *x, char id[PV_DEVICE_ID_HEX_LEN + 1])
{
    pv_mfgrec r;
    pv_err e = {0};
    char got[PV_DEVICE_ID_HEX_LEN + 1];
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
}

static void device_claimed(fixture *x, char id[PV_DEVICE_ID_HEX_LEN + 1])
{
    char path[128], body[128], got[PV_DEVICE_ID_HEX_LEN + 1];
    device_imported(x, id);
    snprintf(path, sizeof(path), "/v1/tenants/%s/devices", x->tenant);
    snprintf(body, sizeof(body), "{\"device_id\": \"%s\"}", id);
    create(x, path, body, got, sizeof(got));
}

/* ---- what each route is called with ---- */

static bool is(const api_route *rt, const char *method, const char *pattern)
{
    return strcmp(rt->method, method) == 0 && strcmp(rt->pattern, pattern) == 0;
}

/* The value of one path parameter; mutating calls that consume their object (delete,
 * release) get a fresh one, so every caller finds it. */
static void param_value(fixture *x, const api_route *rt, const char *name, char *out,
                        size_t out_size)
{
    bool consumes = strcmp(rt->method, "DELETE") == 0 || strstr(rt->pattern, "/release") != NULL;
    char path[128], body[256];
    if (strcmp(name, "tenant") == 0) {
        snprintf(out, out_size, "%s", x->tenant);
    } else if (strcmp(name, "device") == 0) {
        if (consumes) {
            char id[PV_DEVICE_ID_HEX_LEN + 1];
            device_claimed(x, id);
            snprintf(out, out_size, "%s", id);
        } else {
            snprintf(out, out_size, "%s", x->device);
        }
    } else if (strcmp(name, "product") == 0) {
        if (consumes) {
            snprintf(path, sizeof(path), "/v1/tenants/%s/products", x->tenant);
            snprintf(body, sizeof(body), "{\"name\": \"Doomed %u\"}", ++x->serial);
            create(x, path, body, out, out_size);
        } else {
            snprintf(out, out_size, "%s", x->product);
        }
    } else if (strcmp(name, "device_group") == 0) {
        if (consumes) {
            snprintf(path, sizeof(path), "/v1/tenants/%s/device-groups", x->tenant);
            snprintf(body, sizeof(body), "{\"product_id\": \"%s\", \"name\": \"Doomed %u\"}",
                     x->product, ++x->serial);
            create(x, path, body, out, out_size);
        } else {
            snprintf(out, out_size, "%s", x->group);
        }
    } else if (strcmp(name, "ca_certificate") == 0) {
        /* The active CA at the time of the call (rotations replace it). */
        store_rows *rows = NULL;
        pv_err e = {0};
        store_val p[] = {SV_TEXT(x->tenant)};
        assert_int_equal(store_exec(x->env.db,
                                    "SELECT id FROM tenant_cas WHERE tenant_id = $1 AND "
                                    "status = 'active'",
                                    p, 1, &rows, NULL, &e),
                         PV_OK);
        assert_int_equal(store_rows_count(rows), 1);
        snprintf(out, out_size, "%s", store_rows_text(rows, 0, 0));
        store_rows_free(rows);
    } else if (strcmp(name, "image") == 0) {
        snprintf(out, out_size, "%s", x->image); /* revoking is idempotent */
    } else if (strcmp(name, "user") == 0) {
        /* An operator with a role to take away. */
        uint8_t fp[PV_SHA256_LEN];
        snprintf(out, out_size, "member-%u", ++x->serial);
        st_operator(&x->env, out, fp);
        grant(x, out, "Reader");
    } else {
        fail_msg("%s %s: no value for path parameter {%s}; teach api_access_test.c one", rt->method,
                 rt->pattern, name);
    }
}

static void build_path(fixture *x, const api_route *rt, char *out, size_t out_size)
{
    const char *p = rt->pattern;
    size_t used = 0;
    while (*p != '\0') {
        char piece[256];
        if (*p == '{') {
            const char *end = strchr(p, '}');
            char name[32];
            assert_non_null(end);
            snprintf(name, sizeof(name), "%.*s", (int)(end - p - 1), p + 1);
            param_value(x, rt, name, piece, sizeof(piece));
            p = end + 1;
        } else {
            size_t n = strcspn(p, "{");
            snprintf(piece, sizeof(piece), "%.*s", (int)n, p);
            p += n;
        }
        int w = snprintf(out + used, out_size - used, "%s", piece);
        assert_true(w >= 0 && (size_t)w < out_size - used);
        used += (size_t)w;
    }
}

/* The body of a call (NULL for none), fresh where the call creates something. Sets
 * *known when this test knows the route and so expects it to succeed. */
static char *build_body(fixture *x, const api_route *rt, bool *known)
{
    char buf[512];
    *known = true;
    if (is(rt, "POST", "/v1/tenants/{tenant}/images")) {
        uint8_t *head = NULL;
        size_t len = 0;
        free(it_head_b64(&x->signer, PV_IMAGE_APPLICATION, &head, &len, NULL));
        char *body = it_body(head, len);
        free(head);
        return body;
    }
    if (is(rt, "POST", "/v1/enroll")) {
        snprintf(buf, sizeof(buf), "{}"); /* reaches the handler, which wants a code */
    } else if (is(rt, "POST", "/v1/tenants")) {
        snprintf(buf, sizeof(buf), "{\"name\": \"Tenant %u\"}", ++x->serial);
    } else if (is(rt, "POST", "/v1/tenants/{tenant}/roles")) {
        snprintf(buf, sizeof(buf), "{\"user\": \"invitee-%u\", \"role\": \"Reader\"}", ++x->serial);
    } else if (is(rt, "POST", "/v1/tenants/{tenant}/devices")) {
        char id[PV_DEVICE_ID_HEX_LEN + 1];
        device_imported(x, id);
        snprintf(buf, sizeof(buf), "{\"device_id\": \"%s\"}", id);
    } else if (is(rt, "PATCH", "/v1/tenants/{tenant}/devices/{device}")) {
        snprintf(buf, sizeof(buf), "{\"device_group_id\": \"%s\"}", x->group);
    } else if (is(rt, "POST", "/v1/tenants/{tenant}/products")) {
        snprintf(buf, sizeof(buf), "{\"name\": \"Product %u\"}", ++x->serial);
    } else if (is(rt, "PATCH", "/v1/tenants/{tenant}/products/{product}") ||
               is(rt, "PATCH", "/v1/tenants/{tenant}/device-groups/{device_group}")) {
        snprintf(buf, sizeof(buf), "{\"description\": \"edit %u\"}", ++x->serial);
    } else if (is(rt, "POST", "/v1/tenants/{tenant}/device-groups")) {
        snprintf(buf, sizeof(buf), "{\"product_id\": \"%s\", \"name\": \"Group %u\"}", x->product,
                 ++x->serial);
    } else if (is(rt, "POST", "/v1/tenants/{tenant}/ca-certificates/{ca_certificate}/proof")) {
        snprintf(buf, sizeof(buf), "{\"verification_code\": \"CODE-%u\"}", ++x->serial);
    } else if (is(rt, "POST", "/v1/tenants/{tenant}/devices/{device}/capabilities")) {
        /* Signing needs a capability signer and a development root, which this fixture
         * does not install (api_capability_test covers the success): access only. */
        *known = false;
        snprintf(buf, sizeof(buf), "{\"capabilities\": [\"AppDevelopment\"]}");
    } else if (is(rt, "POST", "/v1/tenants/{tenant}/ca-certificates/rotate") ||
               is(rt, "POST", "/v1/tenants/{tenant}/images/{image}/revoke")) {
        snprintf(buf, sizeof(buf), "{}");
    } else if (strcmp(rt->method, "POST") == 0 || strcmp(rt->method, "PATCH") == 0) {
        /* enable-development, enable-cloud-test, release, and any route added later */
        *known = strstr(rt->pattern, "/devices/{device}/") != NULL;
        snprintf(buf, sizeof(buf), "{}");
    } else {
        /* GET and DELETE: the routes of today are all known. */
        *known = strncmp(rt->pattern, "/v1/", 4) == 0 || strcmp(rt->pattern, "/healthz") == 0 ||
                 strcmp(rt->pattern, "/metrics") == 0;
        return NULL;
    }
    char *s = strdup(buf);
    assert_non_null(s);
    return s;
}

/* What the dispatcher must answer a caller below the route's access, or 0 if allowed. */
static int denial(const api_route *rt, const caller *who)
{
    switch (rt->access) {
    case API_PUBLIC:
    case API_DEVICE_PUBLIC:
        return 0;
    case API_DEVICE:
        return 401; /* no caller here holds a device's service certificate */
    case API_OPERATOR:
        return who->name == NULL ? 401 : 0;
    case API_READER:
    case API_CONTRIBUTOR:
    case API_ADMIN:
        if (who->name == NULL) {
            return 401;
        }
        if (who->level == API_ROLE_NONE) {
            return 404; /* the tenant's existence is not revealed */
        }
        {
            int need = rt->access == API_READER        ? API_ROLE_READER
                       : rt->access == API_CONTRIBUTOR ? API_ROLE_CONTRIBUTOR
                                                       : API_ROLE_ADMIN;
            return who->level < need ? 403 : 0;
        }
    }
    fail_msg("%s %s: unknown access level %d", rt->method, rt->pattern, (int)rt->access);
    return -1;
}

/* ---- setup ---- */

static int setup(void **state)
{
    fixture *x = calloc(1, sizeof(*x));
    pv_err e = {0};
    char fp[65], path[256], body[256];
    assert_non_null(x);
    st_setup(&x->env, backend);
    x->fdir = tu_mkdtemp("factory");
    int64_t now = pv_time_now();
    tu_make_chain(x->fdir, now - 3600, now + YEAR, &x->fkey, &x->fchain, NULL);
    char *p = tu_path(x->fdir, "root.crt");
    size_t n = 0;
    char *pem = (char *)tu_read(p, &n);
    assert_int_equal(records_add_factory(x->env.db, pem, n, now, fp, &e), PV_OK);
    free(pem);
    free(p);

    st_operator(&x->env, "owner", x->owner);
    create(x, "/v1/tenants", "{\"name\": \"Matrix\"}", x->tenant, sizeof(x->tenant));
    const caller callers[] = {
        {NULL, NULL, API_ROLE_NONE, {0}},
        {"stranger", NULL, API_ROLE_NONE, {0}},
        {"reader", "Reader", API_ROLE_READER, {0}},
        {"contributor", "Contributor", API_ROLE_CONTRIBUTOR, {0}},
        {"admin", "Administrator", API_ROLE_ADMIN, {0}},
    };
    memcpy(x->callers, callers, sizeof(callers));
    for (size_t i = 0; i < 5; i++) {
        caller *c = &x->callers[i];
        if (c->name != NULL) {
            st_operator(&x->env, c->name, c->fp);
        }
        if (c->role != NULL) {
            grant(x, c->name, c->role);
        }
    }
    /* The stranger is somebody elsewhere. */
    char elsewhere[37];
    json_t *out = NULL;
    assert_int_equal(st_call(&x->env, x->callers[1].fp, "POST", "/v1/tenants",
                             "{\"name\": \"Elsewhere\"}", &out),
                     201);
    snprintf(elsewhere, sizeof(elsewhere), "%s", str(out, "id"));
    json_decref(out);

    snprintf(path, sizeof(path), "/v1/tenants/%s/products", x->tenant);
    create(x, path, "{\"name\": \"Widget\"}", x->product, sizeof(x->product));
    snprintf(path, sizeof(path), "/v1/tenants/%s/device-groups", x->tenant);
    snprintf(body, sizeof(body), "{\"product_id\": \"%s\", \"name\": \"Lab\"}", x->product);
    create(x, path, body, x->group, sizeof(x->group));
    device_claimed(x, x->device);
    snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s", x->tenant, x->device);
    snprintf(body, sizeof(body), "{\"device_group_id\": \"%s\"}", x->group);
    assert_int_equal(st_call(&x->env, x->owner, "PATCH", path, body, NULL), 200);
    it_signer_new(&x->signer, now - 3600, now + YEAR);
    it_add_root(x->env.db, &x->signer, false);
    uint8_t *head = NULL;
    size_t head_len = 0;
    free(it_head_b64(&x->signer, PV_IMAGE_APPLICATION, &head, &head_len, NULL));
    char *image_body = it_body(head, head_len);
    snprintf(path, sizeof(path), "/v1/tenants/%s/images", x->tenant);
    create(x, path, image_body, x->image, sizeof(x->image));
    free(image_body);
    free(head);
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
    it_signer_free(&x->signer);
    free(x);
    return 0;
}

/* ---- the matrix ---- */

static void test_role_matrix(void **state)
{
    fixture *x = *state;
    size_t denied = 0, allowed = 0;
    assert_true(api_route_count > 0);
    for (size_t r = 0; r < api_route_count; r++) {
        const api_route *rt = &api_routes[r];
        for (size_t w = 0; w < 5; w++) {
            const caller *who = &x->callers[w];
            char path[512];
            bool known = false;
            json_t *out = NULL;
            build_path(x, rt, path, sizeof(path));
            char *body = build_body(x, rt, &known);
            int expect = denial(rt, who);
            char *before = expect != 0 ? st_dump(&x->env) : NULL;
            int status =
                st_call(&x->env, who->name != NULL ? who->fp : NULL, rt->method, path, body, &out);
            const char *as = who->name != NULL ? who->name : "(no certificate)";
            if (expect != 0) {
                if (status != expect) {
                    fail_msg("%s %s as %s: %d, expected the refusal %d", rt->method, rt->pattern,
                             as, status, expect);
                }
                char *after = st_dump(&x->env);
                if (strcmp(before, after) != 0) {
                    fail_msg("%s %s as %s: refused, yet the database changed", rt->method,
                             rt->pattern, as);
                }
                free(after);
                denied++;
            } else {
                if (status == 401 || status == 403) {
                    fail_msg("%s %s as %s: %d, expected access", rt->method, rt->pattern, as,
                             status);
                }
                /* The one known route that answers 4xx: enrollment without a code. */
                bool ok =
                    is(rt, "POST", "/v1/enroll") ? status == 400 : status >= 200 && status < 300;
                if (known && !ok) {
                    fail_msg("%s %s as %s: %d (%s)", rt->method, path, as, status,
                             str(json_object_get(out, "error"), "message"));
                }
                allowed++;
            }
            json_decref(out);
            free(body);
            free(before);
        }
    }
    /* Each kind of caller was both let in and kept out somewhere. */
    assert_true(denied > 0);
    assert_true(allowed > 0);
}

/* The same checks by name, so a change to the route table's access levels shows up as
 * a failure here and not only as a changed matrix. */
static void test_expected_access(void **state)
{
    (void)state;
    static const struct {
        const char *method, *pattern;
        api_access access;
    } want[] = {
        {"GET", "/v1/tenants/{tenant}/devices", API_READER},
        {"POST", "/v1/tenants/{tenant}/devices", API_CONTRIBUTOR},
        {"GET", "/v1/tenants/{tenant}/devices/{device}", API_READER},
        {"PATCH", "/v1/tenants/{tenant}/devices/{device}", API_CONTRIBUTOR},
        {"POST", "/v1/tenants/{tenant}/devices/{device}/enable-development", API_CONTRIBUTOR},
        {"POST", "/v1/tenants/{tenant}/devices/{device}/enable-cloud-test", API_CONTRIBUTOR},
        {"POST", "/v1/tenants/{tenant}/devices/{device}/release", API_ADMIN},
        {"POST", "/v1/tenants/{tenant}/devices/{device}/capabilities", API_CONTRIBUTOR},
        {"POST", "/v1/tenants/{tenant}/products", API_CONTRIBUTOR},
        {"PATCH", "/v1/tenants/{tenant}/products/{product}", API_CONTRIBUTOR},
        {"DELETE", "/v1/tenants/{tenant}/products/{product}", API_ADMIN},
        {"POST", "/v1/tenants/{tenant}/device-groups", API_CONTRIBUTOR},
        {"PATCH", "/v1/tenants/{tenant}/device-groups/{device_group}", API_CONTRIBUTOR},
        {"DELETE", "/v1/tenants/{tenant}/device-groups/{device_group}", API_ADMIN},
        {"POST", "/v1/tenants/{tenant}/roles", API_ADMIN},
        {"DELETE", "/v1/tenants/{tenant}/roles/{user}", API_ADMIN},
        {"GET", "/v1/tenants/{tenant}/ca-certificates", API_READER},
        {"GET", "/v1/tenants/{tenant}/ca-certificates/chain", API_READER},
        {"GET", "/v1/tenants/{tenant}/ca-certificates/{ca_certificate}", API_READER},
        {"POST", "/v1/tenants/{tenant}/ca-certificates/rotate", API_ADMIN},
        {"POST", "/v1/tenants/{tenant}/ca-certificates/{ca_certificate}/proof", API_CONTRIBUTOR},
        {"GET", "/v1/tenants/{tenant}/images", API_READER},
        {"POST", "/v1/tenants/{tenant}/images", API_CONTRIBUTOR},
        {"GET", "/v1/tenants/{tenant}/images/{image}", API_READER},
        {"POST", "/v1/tenants/{tenant}/images/{image}/revoke", API_ADMIN},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        bool found = false;
        for (size_t r = 0; r < api_route_count; r++) {
            if (is(&api_routes[r], want[i].method, want[i].pattern)) {
                found = true;
                if (api_routes[r].access != want[i].access) {
                    fail_msg("%s %s: access %d, expected %d", want[i].method, want[i].pattern,
                             (int)api_routes[r].access, (int)want[i].access);
                }
            }
        }
        if (!found) {
            fail_msg("%s %s: not in the route table", want[i].method, want[i].pattern);
        }
    }
    /* Every GET under a tenant is for Readers; nothing under a tenant is public. */
    for (size_t r = 0; r < api_route_count; r++) {
        const api_route *rt = &api_routes[r];
        if (strncmp(rt->pattern, "/v1/tenants/{tenant}", 20) == 0) {
            assert_true(rt->access >= API_READER);
            if (strcmp(rt->method, "GET") == 0) {
                assert_int_equal(rt->access, API_READER);
            }
            if (strcmp(rt->method, "DELETE") == 0) {
                assert_int_equal(rt->access, API_ADMIN);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expected_access),
        cmocka_unit_test_setup_teardown(test_role_matrix, setup, teardown),
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof(st_backends) / sizeof(st_backends[0]); i++) {
        backend = st_backends[i];
        failed += cmocka_run_group_tests_name(backend, tests, NULL, NULL);
    }
    return failed;
}
