/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The API dispatcher and the operator handlers (api.c, api_operators.c): enrollment,
 * tenants, roles, the audit log, and every way the dispatcher refuses a request. Each
 * test runs on SQLite and on PostgreSQL; every refused request must leave the database
 * exactly as it was (st_dump before == after).
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "pavise/buf.h"
#include "pavise/crypto.h"
#include "pavise/platform.h"
#include "pavise/x509.h"

#include "api.h"
#include "codes.h"
#include "schema.h"
#include "servertest.h"

static int setup(void **state)
{
    st_env *env = calloc(1, sizeof(*env));
    assert_non_null(env);
    st_setup(env, (const char *)*state);
    *state = env;
    return 0;
}

static int teardown(void **state)
{
    st_env *env = *state;
    st_teardown(env);
    free(env);
    return 0;
}

/* ---- helpers ---- */

static const char *error_code(json_t *out)
{
    const char *s = json_string_value(json_object_get(json_object_get(out, "error"), "code"));
    return s != NULL ? s : "";
}

static const char *error_message(json_t *out)
{
    const char *s = json_string_value(json_object_get(json_object_get(out, "error"), "message"));
    return s != NULL ? s : "";
}

static const char *str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    assert_non_null(s);
    return s;
}

/* A request that must be refused with status and error code, changing nothing. The
 * message, when want_msg is not NULL, must contain it. */
static void refused(st_env *env, const uint8_t *fp, const char *method, const char *path,
                    const char *body, int status, const char *code, const char *want_msg)
{
    json_t *out = NULL;
    char *before = st_dump(env);
    int got = st_call(env, fp, method, path, body, &out);
    if (got != status || strcmp(error_code(out), code) != 0 ||
        (want_msg != NULL && strstr(error_message(out), want_msg) == NULL)) {
        fail_msg("%s %s: got %d %s \"%s\", want %d %s \"%s\"", method, path, got, error_code(out),
                 error_message(out), status, code, want_msg != NULL ? want_msg : "");
    }
    char *after = st_dump(env);
    assert_string_equal(before, after);
    free(before);
    free(after);
    json_decref(out);
}

/* Calls and checks the status; returns the body (caller frees). */
static json_t *ok(st_env *env, const uint8_t *fp, const char *method, const char *path,
                  const char *body, int status)
{
    json_t *out = NULL;
    int got = st_call(env, fp, method, path, body, &out);
    if (got != status) {
        fail_msg("%s %s: got %d %s \"%s\", want %d", method, path, got, error_code(out),
                 error_message(out), status);
    }
    assert_non_null(out);
    return out;
}

/* Creates a tenant as fp and returns its ID in id. */
static void make_tenant(st_env *env, const uint8_t *fp, const char *name, char id[37])
{
    char body[256];
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
    json_t *t = ok(env, fp, "POST", "/v1/tenants", body, 201);
    snprintf(id, 37, "%s", str(t, "id"));
    assert_string_equal(str(t, "role"), "Administrator");
    assert_string_equal(str(t, "name"), name);
    json_decref(t);
}

static char *make_csr(void);
static char *enroll_body(const char *code, const char *csr);

/* Gives user (an enrolled operator whose certificate fingerprint is user_fp) a role in
 * tenant: a member's role changes at once (200); anyone else is invited (201) and
 * accepts the invitation with its own certificate. */
static void grant(st_env *env, const uint8_t *admin, const char *tenant, const char *user,
                  const uint8_t *user_fp, const char *role)
{
    char path[128], body[256];
    snprintf(path, sizeof(path), "/v1/tenants/%s/roles", tenant);
    snprintf(body, sizeof(body), "{\"user\":\"%s\",\"role\":\"%s\"}", user, role);
    json_t *inv = NULL;
    int status = st_call(env, admin, "POST", path, body, &inv);
    if (status == 201) {
        char *csr = make_csr();
        char *eb = enroll_body(json_string_value(json_object_get(inv, "enrollment_code")), csr);
        json_t *out = ok(env, user_fp, "POST", "/v1/enroll", eb, 201);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(out, "operator"), "name")), user);
        json_decref(out);
        free(eb);
        free(csr);
    } else {
        assert_int_equal(status, 200);
    }
    json_decref(inv);
}

static int64_t count(st_env *env, const char *sql)
{
    store_rows *rows = NULL;
    assert_int_equal(store_exec(env->db, sql, NULL, 0, &rows, NULL, NULL), PV_OK);
    int64_t n = store_rows_int(rows, 0, 0);
    store_rows_free(rows);
    return n;
}

/* A CSR for a new key, as a JSON string literal body part. */
static char *make_csr(void)
{
    pv_key *k = NULL;
    pv_buf *b = pv_buf_new(PV_CSR_MAX);
    assert_int_equal(pv_key_generate(&k, NULL), PV_OK);
    assert_int_equal(pv_csr_create(k, "CN=whoever", b, NULL), PV_OK);
    assert_int_equal(pv_buf_append_u8(b, 0), PV_OK);
    char *s = strdup((const char *)pv_buf_data(b));
    pv_buf_free(b);
    pv_key_free(k);
    return s;
}

static char *enroll_body(const char *code, const char *csr)
{
    json_t *o = json_pack("{s:s,s:s}", "code", code, "csr", csr);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static pv_cert *cert_from_pem(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    assert_non_null(x);
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    assert_true(len > 0);
    pv_cert *c = NULL;
    assert_int_equal(pv_cert_from_der(der, (size_t)len, &c, NULL), PV_OK);
    OPENSSL_free(der);
    X509_free(x);
    BIO_free(bio);
    return c;
}

/* Enrolls with code; fp receives the new certificate's fingerprint. Returns the body. */
static json_t *enroll(st_env *env, const char *code, uint8_t fp[PV_SHA256_LEN])
{
    char *csr = make_csr();
    char *body = enroll_body(code, csr);
    json_t *out = ok(env, NULL, "POST", "/v1/enroll", body, 201);
    pv_cert *c = cert_from_pem(str(out, "certificate"));
    pv_cert_fingerprint(c, fp);
    pv_cert_free(c);
    free(body);
    free(csr);
    return out;
}

static void first_code(st_env *env, const char *user, int64_t ttl, char code[CODES_TEXT_LEN + 1])
{
    pv_err e = {0};
    if (codes_create(env->db, user, NULL, NULL, NULL, pv_time_now(), ttl, code, &e) != PV_OK) {
        fail_msg("codes_create: %s", pv_err_msg(&e));
    }
}

/* ---- enrollment ---- */

static void test_enroll(void **state)
{
    st_env *env = *state;
    char code[CODES_TEXT_LEN + 1];
    uint8_t fp[PV_SHA256_LEN];

    first_code(env, "alice", 3600, code);
    json_t *out = enroll(env, code, fp);
    json_t *op = json_object_get(out, "operator");
    assert_string_equal(str(op, "name"), "alice");
    assert_true(api_valid_uuid(str(op, "id")));
    assert_non_null(strstr(str(out, "ca_certificate"), "BEGIN CERTIFICATE"));
    assert_int_equal(strlen(str(out, "expires_at")), 20);

    /* The certificate chains to the server CA, names the user and lasts 90 days. */
    pv_cert *leaf = cert_from_pem(str(out, "certificate"));
    pv_chain *chain = pv_chain_new();
    pv_trust *trust = pv_trust_new();
    assert_int_equal(pv_chain_add(chain, leaf), PV_OK);
    assert_int_equal(pv_trust_add(trust, (pv_cert *)ca_cert(env->srv.ca)), PV_OK);
    pv_err e = {0};
    if (pv_chain_verify(chain, trust, pv_time_now(), 0, &e) != PV_OK) {
        fail_msg("enrolled certificate: %s", pv_err_msg(&e));
    }
    char subject[256];
    pv_cert_subject(leaf, subject, sizeof(subject));
    assert_string_equal(subject, "CN=alice");
    int64_t nb = 0, na = 0;
    assert_int_equal(pv_cert_validity(leaf, &nb, &na), PV_OK);
    assert_true(na - pv_time_now() > 89 * 86400 && na - pv_time_now() <= 90 * 86400);
    pv_chain_free(chain);
    pv_trust_free(trust);
    pv_cert_free(leaf);
    json_decref(out);

    /* The certificate authenticates; the first operator has no role yet. */
    out = ok(env, fp, "GET", "/v1/me", NULL, 200);
    assert_string_equal(str(out, "name"), "alice");
    assert_int_equal(json_array_size(json_object_get(out, "roles")), 0);
    json_decref(out);
    assert_int_equal(count(env, "SELECT COUNT(*) FROM audit WHERE tenant_id IS NULL AND "
                                "action = 'operator.enroll' AND operator = 'alice'"),
                     1);

    /* The code is single-use. */
    char *csr = make_csr();
    char *body = enroll_body(code, csr);
    refused(env, NULL, "POST", "/v1/enroll", body, 401, "unauthenticated",
            "enrollment code is not valid (unknown, used or expired)");
    free(body);
    free(csr);
}

static void test_enroll_refused(void **state)
{
    st_env *env = *state;
    char code[CODES_TEXT_LEN + 1];
    uint8_t fp[PV_SHA256_LEN];
    char *csr = make_csr();
    char *body;

    /* Garbage and unknown codes: one answer. */
    body = enroll_body("not a code", csr);
    refused(env, NULL, "POST", "/v1/enroll", body, 401, "unauthenticated", "unknown, used");
    free(body);
    body = enroll_body("AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH", csr);
    refused(env, NULL, "POST", "/v1/enroll", body, 401, "unauthenticated", "unknown, used");
    free(body);

    /* A bad CSR does not use up the code. */
    first_code(env, "alice", 3600, code);
    body = enroll_body(code, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                             "-----END CERTIFICATE REQUEST-----\n");
    refused(env, NULL, "POST", "/v1/enroll", body, 400, "bad_request", "csr");
    free(body);
    refused(env, NULL, "POST", "/v1/enroll", "{\"code\":\"x\"}", 400, "bad_request", "csr");
    refused(env, NULL, "POST", "/v1/enroll", "{\"code\":\"x\",\"csr\":\"y\",\"name\":\"z\"}", 400,
            "bad_request", "unknown field 'name'");
    json_decref(enroll(env, code, fp));

    /* An expired code. */
    first_code(env, "bob", 60, code);
    pv_time_set_override(pv_time_now() + 61);
    body = enroll_body(code, csr);
    refused(env, NULL, "POST", "/v1/enroll", body, 401, "unauthenticated", "expired");
    free(body);
    pv_time_set_override(0);
    free(csr);
}

/* An invitation to a user who is not an operator yet, then a second invitation (from
 * another tenant) to the same user after they enrolled: a new certificate for the same
 * operator and the second role. */
static void test_invite(void **state)
{
    st_env *env = *state;
    uint8_t alice[PV_SHA256_LEN], bob1[PV_SHA256_LEN], bob2[PV_SHA256_LEN];
    char t1[37], t2[37], path[128];

    st_operator(env, "alice", alice);
    make_tenant(env, alice, "Contoso", t1);
    make_tenant(env, alice, "Fabrikam", t2);

    snprintf(path, sizeof(path), "/v1/tenants/%s/roles", t1);
    json_t *inv1 = ok(env, alice, "POST", path, "{\"user\":\"bob\",\"role\":\"Reader\"}", 201);
    assert_string_equal(str(inv1, "user"), "bob");
    assert_string_equal(str(inv1, "role"), "Reader");
    assert_string_equal(str(inv1, "tenant_id"), t1);
    assert_int_equal(strlen(str(inv1, "enrollment_code")), CODES_TEXT_LEN);
    assert_non_null(json_object_get(inv1, "expires_at"));
    snprintf(path, sizeof(path), "/v1/tenants/%s/roles", t2);
    json_t *inv2 = ok(env, alice, "POST", path, "{\"user\":\"bob\",\"role\":\"Contributor\"}", 201);

    /* Neither the code nor its normalised form is stored anywhere. */
    char *dump = st_dump(env);
    assert_null(strstr(dump, str(inv1, "enrollment_code")));
    assert_null(strstr(dump, str(inv1, "enrollment_code") + 35));
    assert_null(strstr(dump, str(inv2, "enrollment_code")));
    assert_non_null(strstr(dump, "role.invite"));
    free(dump);

    json_t *e1 = enroll(env, str(inv1, "enrollment_code"), bob1);
    /* The second invitation names an operator that now exists: a code alone does not
     * give a certificate for it (409), and the refusal leaves the code usable... */
    char *csr = make_csr();
    char *body2 = enroll_body(str(inv2, "enrollment_code"), csr);
    char *before = st_dump(env);
    refused(env, NULL, "POST", "/v1/enroll", body2, 409, "conflict", "already enrolled");
    char *after = st_dump(env);
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* ...by bob himself, presenting his certificate. */
    json_t *e2 = ok(env, bob1, "POST", "/v1/enroll", body2, 201);
    pv_cert *c2 = cert_from_pem(str(e2, "certificate"));
    pv_cert_fingerprint(c2, bob2);
    pv_cert_free(c2);
    free(body2);
    free(csr);
    assert_string_equal(str(json_object_get(e1, "operator"), "id"),
                        str(json_object_get(e2, "operator"), "id"));
    assert_memory_not_equal(bob1, bob2, PV_SHA256_LEN);
    assert_int_equal(count(env, "SELECT COUNT(*) FROM operators WHERE name = 'bob'"), 1);

    json_t *me = ok(env, bob1, "GET", "/v1/me", NULL, 200);
    json_t *roles = json_object_get(me, "roles");
    assert_int_equal(json_array_size(roles), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *r = json_array_get(roles, i);
        bool first = strcmp(str(r, "tenant_id"), t1) == 0;
        assert_string_equal(str(r, "role"), first ? "Reader" : "Contributor");
        assert_string_equal(str(r, "tenant_name"), first ? "Contoso" : "Fabrikam");
    }
    json_decref(me);
    /* Both certificates work. */
    json_decref(ok(env, bob2, "GET", "/v1/me", NULL, 200));
    json_decref(e1);
    json_decref(e2);
    json_decref(inv1);
    json_decref(inv2);
}

/* A name is not an identity: an operator who registers a name first (through a tenant
 * of its own) gains nothing when another tenant later invites that name. */
static void test_name_squatting(void **state)
{
    st_env *env = *state;
    uint8_t admin[PV_SHA256_LEN], mallory[PV_SHA256_LEN], squat[PV_SHA256_LEN];
    char t[37], evil[37], path[128];

    st_operator(env, "admin", admin);
    st_operator(env, "mallory", mallory);
    make_tenant(env, admin, "Contoso", t);
    make_tenant(env, mallory, "Evil", evil);

    /* mallory invites "carol" into her own tenant and enrolls as carol. */
    snprintf(path, sizeof(path), "/v1/tenants/%s/roles", evil);
    json_t *inv = ok(env, mallory, "POST", path, "{\"user\":\"carol\",\"role\":\"Reader\"}", 201);
    json_t *e = enroll(env, str(inv, "enrollment_code"), squat);
    json_decref(e);
    json_decref(inv);

    /* Contoso's admin adds "carol": an invitation, not a grant to mallory's carol. */
    snprintf(path, sizeof(path), "/v1/tenants/%s/roles", t);
    inv = ok(env, admin, "POST", path, "{\"user\":\"carol\",\"role\":\"Administrator\"}", 201);
    char tpath[128];
    snprintf(tpath, sizeof(tpath), "/v1/tenants/%s", t);
    refused(env, squat, "GET", tpath, NULL, 404, "not_found", NULL);

    /* The real carol, holding the code, cannot take over the name (409, code kept);
     * nor can mallory's carol use a code she does not have. Contoso stays hers alone. */
    char *csr = make_csr();
    char *body = enroll_body(str(inv, "enrollment_code"), csr);
    refused(env, NULL, "POST", "/v1/enroll", body, 409, "conflict", "already enrolled");
    refused(env, squat, "GET", tpath, NULL, 404, "not_found", NULL);

    /* A pending invitation can be taken back. */
    char del[192];
    snprintf(del, sizeof(del), "/v1/tenants/%s/roles/carol", t);
    json_t *d = ok(env, admin, "DELETE", del, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(d, "invitations_cancelled")), 1);
    json_decref(d);
    refused(env, squat, "POST", "/v1/enroll", body, 401, "unauthenticated", NULL);
    refused(env, admin, "DELETE", del, NULL, 404, "not_found", NULL);
    free(body);
    free(csr);
    json_decref(inv);
}

/* ---- tenants ---- */

static void test_tenants(void **state)
{
    st_env *env = *state;
    uint8_t alice[PV_SHA256_LEN], bob[PV_SHA256_LEN];
    char ids[3][37], mine[37], path[512];

    st_operator(env, "alice", alice);
    st_operator(env, "bob", bob);
    make_tenant(env, alice, "One", ids[0]);
    make_tenant(env, alice, "Two", ids[1]);
    make_tenant(env, alice, "Two", ids[2]); /* names need not be unique */
    make_tenant(env, bob, "Bob's", mine);

    /* Names. */
    refused(env, alice, "POST", "/v1/tenants", "{\"name\":\"\"}", 400, "bad_request", "name");
    refused(env, alice, "POST", "/v1/tenants", "{\"name\":\"   \"}", 400, "bad_request", "name");
    refused(env, alice, "POST", "/v1/tenants", "{\"name\":\"a\\nb\"}", 400, "bad_request", "name");
    refused(env, alice, "POST", "/v1/tenants",
            "{\"name\":\"12345678901234567890123456789012345678901234567890123456789012345\"}", 400,
            "bad_request", "name");
    refused(env, alice, "POST", "/v1/tenants", "{}", 400, "bad_request", "missing");

    /* The creator is Administrator and the creation is audited in the tenant. */
    snprintf(path, sizeof(path), "/v1/tenants/%s", ids[0]);
    json_t *t = ok(env, alice, "GET", path, NULL, 200);
    assert_string_equal(str(t, "id"), ids[0]);
    assert_string_equal(str(t, "name"), "One");
    assert_string_equal(str(t, "role"), "Administrator");
    json_decref(t);
    snprintf(path, sizeof(path), "/v1/tenants/%s/audit", ids[0]);
    t = ok(env, alice, "GET", path, NULL, 200);
    json_t *a = json_array_get(json_object_get(t, "items"), 0);
    assert_string_equal(str(a, "action"), "tenant.create");
    assert_string_equal(str(a, "operator"), "alice");
    assert_string_equal(str(a, "target"), ids[0]);
    assert_string_equal(str(json_object_get(a, "detail"), "name"), "One");
    json_decref(t);

    /* Lists hold only the caller's tenants, by ID, page by page. */
    json_t *all = ok(env, alice, "GET", "/v1/tenants", NULL, 200);
    json_t *items = json_object_get(all, "items");
    assert_int_equal(json_array_size(items), 3);
    assert_true(json_is_null(json_object_get(all, "continuation_token")));
    for (size_t i = 1; i < 3; i++) {
        assert_true(strcmp(str(json_array_get(items, i - 1), "id"),
                           str(json_array_get(items, i), "id")) < 0);
    }
    char token[256] = "";
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "/v1/tenants?limit=1%s%s",
                 token[0] != '\0' ? "&continuation_token=" : "", token);
        json_t *page = ok(env, alice, "GET", path, NULL, 200);
        assert_int_equal(json_array_size(json_object_get(page, "items")), 1);
        assert_string_equal(str(json_array_get(json_object_get(page, "items"), 0), "id"),
                            str(json_array_get(items, i), "id"));
        json_t *tok = json_object_get(page, "continuation_token");
        assert_true(i < 2 ? json_is_string(tok) : json_is_null(tok));
        snprintf(token, sizeof(token), "%s", i < 2 ? json_string_value(tok) : "");
        json_decref(page);
    }
    json_decref(all);
    t = ok(env, alice, "GET", "/v1/tenants?name=Two", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(t, "items")), 2);
    json_decref(t);
    t = ok(env, alice, "GET", "/v1/tenants?name=Bob%27s", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(t, "items")), 0);
    json_decref(t);
    t = ok(env, bob, "GET", "/v1/tenants?name=Bob%27s", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(t, "items")), 1);
    json_decref(t);

    refused(env, alice, "GET", "/v1/tenants?limit=0", NULL, 400, "bad_request", "limit");
    refused(env, alice, "GET", "/v1/tenants?limit=1001", NULL, 400, "bad_request", "limit");
    refused(env, alice, "GET", "/v1/tenants?limit=1x", NULL, 400, "bad_request", "limit");
    refused(env, alice, "GET", "/v1/tenants?continuation_token=garbage", NULL, 400, "bad_request",
            "continuation_token");
    refused(env, alice, "GET", "/v1/tenants?continuation_token=cDE6", NULL, 400, "bad_request",
            "continuation_token");
    refused(env, alice, "GET", "/v1/tenants?continuation_token=", NULL, 400, "bad_request",
            "continuation_token");

    /* Another tenant's ID is not found, never forbidden. */
    snprintf(path, sizeof(path), "/v1/tenants/%s", mine);
    refused(env, alice, "GET", path, NULL, 404, "not_found", mine);
    refused(env, alice, "GET", "/v1/tenants/6b1f0a0e-8d3c-4c1e-9a57-2f7f3f6a9d10", NULL, 404,
            "not_found", "tenant 6b1f0a0e-8d3c-4c1e-9a57-2f7f3f6a9d10 not found");
}

/* ---- roles ---- */

static void test_roles(void **state)
{
    st_env *env = *state;
    uint8_t alice[PV_SHA256_LEN], bob[PV_SHA256_LEN], carol[PV_SHA256_LEN];
    char t[37], path[256];

    st_operator(env, "alice", alice);
    st_operator(env, "bob", bob);
    st_operator(env, "carol", carol);
    make_tenant(env, alice, "T", t);
    snprintf(path, sizeof(path), "/v1/tenants/%s/roles", t);

    /* The last Administrator can neither leave nor step down. */
    char del[256];
    snprintf(del, sizeof(del), "/v1/tenants/%s/roles/alice", t);
    refused(env, alice, "DELETE", del, NULL, 409, "conflict", "without an Administrator");
    refused(env, alice, "POST", path, "{\"user\":\"alice\",\"role\":\"Reader\"}", 409, "conflict",
            "without an Administrator");

    /* Granting to existing operators is immediate. */
    grant(env, alice, t, "carol", carol, "Reader");
    grant(env, alice, t, "bob", bob, "Contributor");
    grant(env, alice, t, "carol", carol, "Contributor"); /* a change */
    json_t *list = ok(env, bob, "GET", path, NULL, 200);
    json_t *items = json_object_get(list, "items");
    assert_int_equal(json_array_size(items), 3);
    const char *want[3][2] = {
        {"alice", "Administrator"}, {"bob", "Contributor"}, {"carol", "Contributor"}};
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(str(json_array_get(items, i), "user"), want[i][0]);
        assert_string_equal(str(json_array_get(items, i), "role"), want[i][1]);
    }
    json_decref(list);
    list = ok(env, bob, "GET", "/v1/tenants?limit=5", NULL, 200);
    json_decref(list);
    char p2[512];
    snprintf(p2, sizeof(p2), "%s?limit=2", path);
    list = ok(env, bob, "GET", p2, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(list, "items")), 2);
    snprintf(p2, sizeof(p2), "%s?continuation_token=%s", path,
             json_string_value(json_object_get(list, "continuation_token")));
    json_decref(list);
    list = ok(env, bob, "GET", p2, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(list, "items")), 1);
    assert_string_equal(str(json_array_get(json_object_get(list, "items"), 0), "user"), "carol");
    json_decref(list);

    /* Only Administrators manage roles. */
    refused(env, bob, "POST", path, "{\"user\":\"bob\",\"role\":\"Administrator\"}", 403,
            "forbidden", "this needs the Administrator role in tenant");
    refused(env, alice, "POST", path, "{\"user\":\"bob\",\"role\":\"Owner\"}", 400, "bad_request",
            "role");
    refused(env, alice, "POST", path, "{\"user\":\"bad name\",\"role\":\"Reader\"}", 400,
            "bad_request", "user");
    snprintf(del, sizeof(del), "/v1/tenants/%s/roles/nobody", t);
    refused(env, alice, "DELETE", del, NULL, 404, "not_found", "nobody");

    /* With a second Administrator the first may step down, and is then refused. */
    grant(env, alice, t, "bob", bob, "Administrator");
    grant(env, alice, t, "alice", alice, "Reader");
    refused(env, alice, "POST", path, "{\"user\":\"alice\",\"role\":\"Administrator\"}", 403,
            "forbidden", "you have Reader");
    snprintf(del, sizeof(del), "/v1/tenants/%s/roles/bob", t);
    refused(env, bob, "DELETE", del, NULL, 409, "conflict", "without an Administrator");
    snprintf(del, sizeof(del), "/v1/tenants/%s/roles/carol", t);
    json_t *out = ok(env, bob, "DELETE", del, NULL, 200);
    assert_string_equal(str(out, "user"), "carol");
    assert_true(json_is_true(json_object_get(out, "deleted")));
    json_decref(out);
    /* carol has no role now: the tenant does not exist for her. */
    snprintf(p2, sizeof(p2), "/v1/tenants/%s", t);
    refused(env, carol, "GET", p2, NULL, 404, "not_found", "not found");

    /* The audit log holds every change, in order, page by page. */
    snprintf(p2, sizeof(p2), "/v1/tenants/%s/audit", t);
    out = ok(env, alice, "GET", p2, NULL, 200);
    items = json_object_get(out, "items");
    /* Operators who are not members yet are invited and accept with their own
     * certificates (role.invite, operator.enroll); members' roles change at once. */
    const char *actions[] = {"tenant.create", "role.invite",     "operator.enroll",
                             "role.invite",   "operator.enroll", "role.add",
                             "role.add",      "role.add",        "role.delete"};
    assert_int_equal(json_array_size(items), 9);
    for (size_t i = 0; i < 9; i++) {
        json_t *a = json_array_get(items, i);
        assert_string_equal(str(a, "action"), actions[i]);
        if (i > 0) {
            assert_true(json_integer_value(json_object_get(a, "seq")) >
                        json_integer_value(json_object_get(json_array_get(items, i - 1), "seq")));
        }
    }
    json_t *d = json_object_get(json_array_get(items, 5), "detail");
    assert_string_equal(str(d, "role"), "Contributor");
    assert_string_equal(str(d, "previous_role"), "Reader");
    json_decref(out);
    char tok[128] = "";
    for (size_t i = 0; i < 9; i += 3) {
        char pp[1024];
        snprintf(pp, sizeof(pp), "%s?limit=3%s%s", p2, tok[0] ? "&continuation_token=" : "", tok);
        out = ok(env, alice, "GET", pp, NULL, 200);
        assert_int_equal(json_array_size(json_object_get(out, "items")), 3);
        json_t *tk = json_object_get(out, "continuation_token");
        snprintf(tok, sizeof(tok), "%s", json_is_string(tk) ? json_string_value(tk) : "");
        assert_true(i < 6 ? tok[0] != '\0' : tok[0] == '\0');
        json_decref(out);
    }
}

/* ---- the dispatcher ---- */

static void raw_call(st_env *env, const uint8_t *fp, const char *method, const char *path,
                     const char *ctype, const char *body, int status, const char *code)
{
    api_request req;
    api_response resp;
    memset(&req, 0, sizeof(req));
    req.method = method;
    req.path = path;
    req.body = (const uint8_t *)body;
    req.body_len = body != NULL ? strlen(body) : 0;
    req.content_type = ctype;
    if (fp != NULL) {
        req.has_client_cert = true;
        memcpy(req.client_fp, fp, PV_SHA256_LEN);
    }
    char *before = st_dump(env);
    api_handle(&env->srv, env->db, &req, &resp);
    char *after = st_dump(env);
    assert_string_equal(before, after);
    assert_int_equal(resp.status, status);
    assert_string_equal(resp.content_type, "application/json");
    json_t *out = json_loadb(resp.body, resp.body_len, 0, NULL);
    assert_string_equal(error_code(out), code);
    json_decref(out);
    free(resp.body);
    free(before);
    free(after);
}

static void test_dispatcher(void **state)
{
    st_env *env = *state;
    uint8_t alice[PV_SHA256_LEN], rita[PV_SHA256_LEN], stranger[PV_SHA256_LEN];
    char t[37], other[37], path[512], roles[256];

    st_operator(env, "alice", alice);
    st_operator(env, "rita", rita);
    make_tenant(env, alice, "T", t);
    grant(env, alice, t, "rita", rita, "Reader");
    assert_int_equal(pv_random_bytes(stranger, sizeof(stranger)), PV_OK);
    st_operator(env, "olga", stranger); /* olga has her own tenant; alice has no role there */
    make_tenant(env, stranger, "Other", other);
    assert_int_equal(pv_random_bytes(stranger, sizeof(stranger)), PV_OK);
    snprintf(roles, sizeof(roles), "/v1/tenants/%s/roles", t);

    /* Routing. */
    refused(env, alice, "GET", "/v1/nothing", NULL, 404, "not_found", NULL);
    refused(env, alice, "GET", "/v1/tenants/", NULL, 404, "not_found", NULL);
    refused(env, alice, "GET", "//v1/tenants", NULL, 404, "not_found", NULL);
    refused(env, alice, "GET", "", NULL, 400, "bad_request", NULL);
    refused(env, alice, "DELETE", "/v1/tenants", NULL, 405, "method_not_allowed", "GET, POST");
    refused(env, NULL, "PUT", "/v1/enroll", "{}", 405, "method_not_allowed", "POST");
    refused(env, alice, "GET", "/v1/tenants%2F", NULL, 400, "bad_request", "encoded '/'");
    refused(env, alice, "GET", "/v1/ten%00ants", NULL, 400, "bad_request", NULL);
    refused(env, alice, "GET", "/v1/ten%0aants", NULL, 400, "bad_request", NULL);
    refused(env, alice, "GET", "/v1/tenants/%zz", NULL, 400, "bad_request", NULL);
    refused(env, alice, "GET", "/v1/tenants/%4", NULL, 400, "bad_request", NULL);
    refused(env, alice, "GET", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r", NULL, 404, "not_found",
            NULL);
    char *longpath = malloc(5000);
    memset(longpath, 'a', 4999);
    longpath[0] = '/';
    longpath[4999] = '\0';
    refused(env, alice, "GET", longpath, NULL, 400, "bad_request", "longer");
    free(longpath);
    json_decref(ok(env, alice, "GET", "/v1/%74enants", NULL, 200)); /* an escaped letter is fine */

    /* Path IDs. */
    refused(env, alice, "GET", "/v1/tenants/not-a-uuid", NULL, 400, "bad_request", "UUID");
    snprintf(path, sizeof(path), "/v1/tenants/%s", t);
    for (char *p = path + strlen("/v1/tenants/"); *p != '\0'; p++) {
        if (*p >= 'a' && *p <= 'f') {
            *p = (char)(*p - 'a' + 'A');
            break;
        }
    }
    refused(env, alice, "GET", path, NULL, 400, "bad_request", "lowercase UUID");
    refused(env, alice, "GET", "/v1/tenants/00000000-0000-0000-0000-000000000000", NULL, 400,
            "bad_request", "UUID");
    snprintf(path, sizeof(path), "/v1/tenants/%s/devices/abc", t);
    refused(env, alice, "GET", path, NULL, 400, "bad_request", "64 lowercase hexadecimal");
    snprintf(path, sizeof(path), "/v1/tenants/%s/roles/a%%20b", t);
    refused(env, alice, "DELETE", path, NULL, 400, "bad_request", "user name");

    /* Query strings. */
    refused(env, alice, "GET", "/v1/tenants?bogus=1", NULL, 400, "bad_request", "'bogus'");
    refused(env, alice, "GET", "/v1/me?limit=1", NULL, 400, "bad_request", "'limit'");
    refused(env, alice, "GET", "/v1/tenants?limit=1&limit=2", NULL, 400, "bad_request", "twice");
    refused(env, alice, "GET", "/v1/tenants?limit=1&&name=x", NULL, 400, "bad_request",
            "malformed");
    refused(env, alice, "GET", "/v1/tenants?name=a%00", NULL, 400, "bad_request", "'name'");
    json_decref(ok(env, alice, "GET", "/v1/tenants?name=T&limit=10", NULL, 200));

    /* Bodies. */
    refused(env, alice, "POST", "/v1/tenants", "{", 400, "bad_request", "line 1");
    refused(env, alice, "POST", "/v1/tenants", "[]", 400, "bad_request", "object");
    refused(env, alice, "POST", "/v1/tenants", "\"x\"", 400, "bad_request", NULL);
    refused(env, alice, "POST", "/v1/tenants", "{\"name\":5}", 400, "bad_request",
            "field 'name': expected a string");
    refused(env, alice, "POST", "/v1/tenants", "{\"name\":\"x\",\"extra\":1}", 400, "bad_request",
            "unknown field 'extra'");
    refused(env, alice, "POST", "/v1/tenants", "{\"name\":\"x\",\"name\":\"y\"}", 400,
            "bad_request", "duplicate");
    refused(env, alice, "POST", "/v1/tenants", "{\"name\":\"a\\u0000b\"}", 400, "bad_request",
            NULL);
    char deep[200] = "{\"name\":\"x\",\"z\":";
    for (int i = 0; i < 40; i++) {
        strcat(deep, "[");
    }
    for (int i = 0; i < 40; i++) {
        strcat(deep, "]");
    }
    strcat(deep, "}");
    refused(env, alice, "POST", "/v1/tenants", deep, 400, "bad_request", "nested");
    refused(env, alice, "GET", "/v1/tenants", "{}", 400, "bad_request", "takes no body");
    snprintf(path, sizeof(path), "/v1/tenants/%s/roles/rita", t);
    refused(env, alice, "DELETE", path, "{}", 400, "bad_request", "takes no body");
    raw_call(env, alice, "POST", "/v1/tenants", "text/plain", "{\"name\":\"x\"}", 415,
             "unsupported_media_type");
    raw_call(env, alice, "POST", "/v1/tenants", NULL, "{\"name\":\"x\"}", 415,
             "unsupported_media_type");
    raw_call(env, alice, "POST", "/v1/tenants", "application/jsonx", "{\"name\":\"x\"}", 415,
             "unsupported_media_type");
    raw_call(env, alice, "POST", "/v1/tenants", "application/json; charset=utf-8", "{", 400,
             "bad_request");
    raw_call(env, alice, "POST", "/v1/tenants", "Application/JSON", "[", 400, "bad_request");

    /* Authentication. */
    refused(env, NULL, "GET", "/v1/me", NULL, 401, "unauthenticated", "client certificate");
    refused(env, stranger, "GET", "/v1/me", NULL, 401, "unauthenticated", "unknown");
    refused(env, stranger, "GET", roles, NULL, 401, "unauthenticated", "unknown");
    refused(env, NULL, "POST", "/v1/tenants", "{\"name\":\"x\"}", 401, "unauthenticated", NULL);
    assert_int_equal(
        store_exec(env->db, "UPDATE operator_certs SET revoked_at = 1", NULL, 0, NULL, NULL, NULL),
        PV_OK);
    refused(env, rita, "GET", "/v1/me", NULL, 401, "unauthenticated", "revoked");
    refused(env, alice, "GET", roles, NULL, 401, "unauthenticated", "revoked");
    assert_int_equal(store_exec(env->db, "UPDATE operator_certs SET revoked_at = NULL", NULL, 0,
                                NULL, NULL, NULL),
                     PV_OK);
    assert_int_equal(store_exec(env->db, "UPDATE operator_certs SET not_after = 1000", NULL, 0,
                                NULL, NULL, NULL),
                     PV_OK);
    refused(env, rita, "GET", "/v1/me", NULL, 401, "unauthenticated", "expired");
    assert_int_equal(store_exec(env->db, "UPDATE operator_certs SET not_after = 99999999999", NULL,
                                0, NULL, NULL, NULL),
                     PV_OK);
    json_decref(ok(env, rita, "GET", "/v1/me", NULL, 200));

    /* Tenants: no role is not found, a low role is forbidden with both roles named. */
    snprintf(path, sizeof(path), "/v1/tenants/%s", other);
    refused(env, alice, "GET", path, NULL, 404, "not_found", "not found");
    snprintf(path, sizeof(path), "/v1/tenants/%s/roles", other);
    refused(env, alice, "POST", path, "{\"user\":\"alice\",\"role\":\"Administrator\"}", 404,
            "not_found", other);
    snprintf(path, sizeof(path), "/v1/tenants/%s/roles/olga", other);
    refused(env, alice, "DELETE", path, NULL, 404, "not_found", other);
    refused(env, rita, "POST", roles, "{\"user\":\"rita\",\"role\":\"Administrator\"}", 403,
            "forbidden", "this needs the Administrator role in tenant");
    refused(env, rita, "POST", roles, "{\"user\":\"rita\",\"role\":\"Administrator\"}", 403,
            "forbidden", "you have Reader");
    json_decref(ok(env, rita, "GET", roles, NULL, 200));

    /* Public routes. */
    json_t *h = ok(env, NULL, "GET", "/healthz", NULL, 200);
    assert_string_equal(str(h, "status"), "ok");
    assert_string_equal(str(h, "database"), store_backend_name(env->db));
    assert_int_equal(json_integer_value(json_object_get(h, "schema_version")),
                     (long long)schema_migration_count);
    json_decref(h);
    api_request req;
    api_response resp;
    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.path = "/metrics";
    api_handle(&env->srv, env->db, &req, &resp);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.content_type, "text/plain; version=0.0.4");
    assert_string_equal(resp.route, "/metrics");
    free(resp.body);
    req.path = "/nowhere";
    api_handle(&env->srv, env->db, &req, &resp);
    assert_string_equal(resp.route, "unmatched");
    free(resp.body);
    req.path = "/v1/me";
    req.has_client_cert = true;
    memcpy(req.client_fp, alice, PV_SHA256_LEN);
    api_handle(&env->srv, env->db, &req, &resp);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.route, "/v1/me");
    assert_string_equal(resp.operator_name, "alice");
    free(resp.body);
}

/* A handler's failure after its transaction began rolls everything back: a role
 * change that would remove the last Administrator has already updated the row when
 * the check refuses it. */
static void test_rollback(void **state)
{
    st_env *env = *state;
    uint8_t alice[PV_SHA256_LEN];
    char t[37], path[256];
    st_operator(env, "alice", alice);
    make_tenant(env, alice, "T", t);
    snprintf(path, sizeof(path), "/v1/tenants/%s/roles", t);
    refused(env, alice, "POST", path, "{\"user\":\"alice\",\"role\":\"Contributor\"}", 409,
            "conflict", NULL);
    /* The connection is usable afterwards (no transaction left open). */
    json_decref(ok(env, alice, "POST", "/v1/tenants", "{\"name\":\"U\"}", 201));
    assert_int_equal(count(env, "SELECT COUNT(*) FROM tenants"), 2);
}

#define BOTH(f)                                                                                    \
    cmocka_unit_test_prestate_setup_teardown(f, setup, teardown, (void *)st_backends[0]),          \
        cmocka_unit_test_prestate_setup_teardown(f, setup, teardown, (void *)st_backends[1])

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_enroll),         BOTH(test_enroll_refused), BOTH(test_invite),
        BOTH(test_name_squatting), BOTH(test_tenants),        BOTH(test_roles),
        BOTH(test_dispatcher),     BOTH(test_rollback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
