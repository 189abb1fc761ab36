/* SPDX-License-Identifier: Apache-2.0 */
/* Development capability files through the API (api_capability.c), with the signer in
 * the data directory (capsigner.c), on SQLite and PostgreSQL. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pavise/base64.h"
#include "pavise/capability.h"
#include "pavise/mfgrec.h"
#include "pavise/platform.h"
#include "pavise/rot.h"

#include "capsigner.h"
#include "images.h"
#include "records.h"
#include "servertest.h"

#define DAY  ((int64_t)24 * 3600)
#define YEAR (365 * DAY)

static const char *backend;

typedef struct fixture {
    st_env env;
    char *fdir; /* the factory */
    pv_key *fkey;
    pv_chain *fchain;
    /* The update root devices trust, a service CA under it, and the capability signer
     * under that; a code signer under the same CA. */
    pv_key *root_key, *ca_key, *signer_key, *code_key;
    pv_cert *root, *ca, *signer, *code;
    pv_chain *signer_chain; /* signer, ca */
    pv_trust *update_root;
    /* Image roots: a development one and a production one. */
    pv_key *dev_key, *prod_key;
    pv_cert *dev_root, *prod_root;
    uint8_t alice[PV_SHA256_LEN]; /* Administrator of t1 */
    uint8_t bob[PV_SHA256_LEN];   /* Administrator of t2 */
    uint8_t carol[PV_SHA256_LEN]; /* Reader in t1 */
    uint8_t dave[PV_SHA256_LEN];  /* Contributor in t1 */
    char t1[37], t2[37];
    char product[37], dev_group[37];
} fixture;

/* ---- helpers ---- */

static pv_key *newkey(void)
{
    pv_key *k = NULL;
    assert_int_equal(pv_key_generate(&k, NULL), PV_OK);
    return k;
}

static pv_cert *mk(const char *subject, bool ca, bool capability, bool code, int64_t nb, int64_t na,
                   const pv_key *key, const pv_cert *issuer, const pv_key *issuer_key)
{
    pv_cert_params p = {.subject = subject,
                        .not_before = nb,
                        .not_after = na,
                        .is_ca = ca,
                        .path_len = -1,
                        .code_signing = code,
                        .capability_signing = capability};
    pv_err e = {0};
    pv_cert *c = NULL;
    if (pv_cert_create(&p, key, issuer, issuer_key, &c, &e) != PV_OK) {
        fail_msg("creating %s: %s", subject, pv_err_msg(&e));
    }
    return c;
}

static pv_chain *list_of(pv_cert *a, pv_cert *b)
{
    pv_chain *ch = pv_chain_new();
    assert_non_null(ch);
    assert_int_equal(pv_chain_add(ch, a), PV_OK);
    if (b != NULL) {
        assert_int_equal(pv_chain_add(ch, b), PV_OK);
    }
    return ch;
}

static char *pem_of(pv_cert *c)
{
    pv_chain *ch = list_of(c, NULL);
    pv_buf *b = pv_buf_new(PV_PEM_MAX_FILE);
    assert_non_null(b);
    assert_int_equal(pv_chain_to_pem(ch, b), PV_OK);
    assert_int_equal(pv_buf_append_u8(b, 0), PV_OK);
    size_t n = 0;
    char *s = (char *)pv_buf_steal(b, &n);
    pv_buf_free(b);
    pv_chain_free(ch);
    return s;
}

static void add_image_root(fixture *x, pv_cert *c, bool development)
{
    char fp[65];
    pv_err e = {0};
    char *pem = pem_of(c);
    if (images_add_root(x->env.db, pem, strlen(pem), development, pv_time_now(), fp, &e) != PV_OK) {
        fail_msg("image root: %s", pv_err_msg(&e));
    }
    free(pem);
}

static void install_signer(fixture *x, const pv_key *key, const pv_chain *chain)
{
    pv_err e = {0};
    if (capsigner_store(x->env.srv.cfg.data_dir, key, chain, &e) != PV_OK) {
        fail_msg("capsigner_store: %s", pv_err_msg(&e));
    }
}

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

static void grant(fixture *x, const char *tenant, const char *name, const char *role)
{
    pv_err e = {0};
    store_val p[] = {SV_TEXT(tenant), SV_TEXT(name), SV_TEXT(role), SV_INT(pv_time_now())};
    if (store_exec(x->env.db,
                   "INSERT INTO roles (tenant_id, operator_id, role, created_at) "
                   "VALUES ($1, (SELECT id FROM operators WHERE name = $2), $3, $4)",
                   p, 4, NULL, NULL, &e) != PV_OK) {
        fail_msg("grant %s %s: %s", name, role, pv_err_msg(&e));
    }
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "(not a string)";
}

static const char *error_code(json_t *o)
{
    return str(json_object_get(o, "error"), "code");
}

static const char *error_message(json_t *o)
{
    return str(json_object_get(o, "error"), "message");
}

/* A device whose record the service has imported, claimed into t1. */
static void device_claimed(fixture *x, char id[PV_DEVICE_ID_HEX_LEN + 1])
{
    pv_mfgrec r;
    pv_err e = {0};
    char got[PV_DEVICE_ID_HEX_LEN + 1], path[128], body[256];
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
    if (pv_mfgrec_sign(&r, x->fkey, x->fchain, b, &e) != PV_OK ||
        records_import(x->env.db, pv_buf_data(b), pv_buf_len(b), pv_time_now(), got, &e) != PV_OK) {
        fail_msg("record: %s", pv_err_msg(&e));
    }
    memcpy(id, r.device_id, sizeof(r.device_id));
    pv_mfgrec_free(&r);
    pv_buf_free(b);
    snprintf(path, sizeof(path), "/v1/tenants/%s/devices", x->t1);
    snprintf(body, sizeof(body), "{\"device_id\": \"%s\"}", id);
    assert_int_equal(st_call(&x->env, x->alice, "POST", path, body, NULL), 201);
}

static int device_call(fixture *x, const uint8_t *fp, const char *tenant, const char *id,
                       const char *suffix, const char *body, json_t **out)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s%s", tenant, id, suffix);
    return st_call(&x->env, fp, "POST", path, body, out);
}

/* A device claimed into t1 and put into development mode. */
static void device_in_development(fixture *x, char id[PV_DEVICE_ID_HEX_LEN + 1])
{
    char body[128];
    device_claimed(x, id);
    snprintf(body, sizeof(body), "{\"device_group_id\": \"%s\"}", x->dev_group);
    assert_int_equal(device_call(x, x->alice, x->t1, id, "/enable-development", body, NULL), 200);
}

static int ask(fixture *x, const uint8_t *fp, const char *tenant, const char *id, const char *body,
               json_t **out)
{
    return device_call(x, fp, tenant, id, "/capabilities", body, out);
}

#define APP_DEV "{\"capabilities\": [\"AppDevelopment\"]}"

/* How many audit rows have this action and target in tenant. */
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

/* The file from an answer, decoded from base64 (caller frees). */
static uint8_t *file_of(json_t *out, size_t *len)
{
    const char *b64 = json_string_value(json_object_get(out, "capability"));
    assert_non_null(b64);
    size_t max = pv_base64_decoded_max(strlen(b64));
    uint8_t *p = malloc(max);
    assert_non_null(p);
    assert_int_equal(pv_base64_decode(b64, strlen(b64), PV_BASE64_STD, p, max, len), PV_OK);
    return p;
}

/* The request is refused with status and code, and the database is as it was. */
static void refused(fixture *x, const uint8_t *fp, const char *tenant, const char *id,
                    const char *body, int status, const char *code, const char *expect)
{
    json_t *out = NULL;
    char *before = st_dump(&x->env);
    int got = ask(x, fp, tenant, id, body, &out);
    if (got != status) {
        fail_msg("%s: %d (%s), expected %d", body != NULL ? body : "(no body)", got,
                 error_message(out), status);
    }
    if (code != NULL) {
        assert_string_equal(error_code(out), code);
    }
    if (expect != NULL && strstr(error_message(out), expect) == NULL) {
        fail_msg("'%s' does not mention '%s'", error_message(out), expect);
    }
    json_decref(out);
    char *after = st_dump(&x->env);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

/* ---- setup ---- */

static int setup(void **state)
{
    fixture *x = calloc(1, sizeof(*x));
    pv_err e = {0};
    char fp[65], path[256];
    json_t *out = NULL;
    assert_non_null(x);
    st_setup(&x->env, backend);
    int64_t now = pv_time_now();

    x->fdir = tu_mkdtemp("factory");
    tu_make_chain(x->fdir, now - 3600, now + YEAR, &x->fkey, &x->fchain, NULL);
    char *rpath = tu_path(x->fdir, "root.crt");
    size_t n = 0;
    char *pem = (char *)tu_read(rpath, &n);
    if (records_add_factory(x->env.db, pem, n, now, fp, &e) != PV_OK) {
        fail_msg("factory: %s", pv_err_msg(&e));
    }
    free(pem);
    free(rpath);

    x->root_key = newkey();
    x->ca_key = newkey();
    x->signer_key = newkey();
    x->code_key = newkey();
    x->root = mk("CN=Update Root,O=Pavise Test", true, false, false, now - 10 * YEAR,
                 now + 10 * YEAR, x->root_key, NULL, NULL);
    x->ca = mk("CN=Service CA,O=Pavise Test", true, false, false, now - 5 * YEAR, now + 5 * YEAR,
               x->ca_key, x->root, x->root_key);
    x->signer = mk("CN=Capability Signer,O=Pavise Test", false, true, false, now - DAY, now + YEAR,
                   x->signer_key, x->ca, x->ca_key);
    x->code = mk("CN=Code Signer,O=Pavise Test", false, false, true, now - DAY, now + YEAR,
                 x->code_key, x->ca, x->ca_key);
    x->signer_chain = list_of(x->signer, x->ca);
    x->update_root = pv_trust_new();
    assert_non_null(x->update_root);
    assert_int_equal(pv_trust_add(x->update_root, x->root), PV_OK);
    x->dev_key = newkey();
    x->prod_key = newkey();
    x->dev_root = mk("CN=Development Images,O=Pavise Test", true, false, false, now - YEAR,
                     now + YEAR, x->dev_key, NULL, NULL);
    x->prod_root = mk("CN=Production Images,O=Pavise Test", true, false, false, now - YEAR,
                      now + YEAR, x->prod_key, NULL, NULL);

    st_operator(&x->env, "alice", x->alice);
    st_operator(&x->env, "bob", x->bob);
    st_operator(&x->env, "carol", x->carol);
    st_operator(&x->env, "dave", x->dave);
    tenant_create(x, x->alice, "Alice Corp", x->t1);
    tenant_create(x, x->bob, "Bob Corp", x->t2);
    grant(x, x->t1, "carol", "Reader");
    grant(x, x->t1, "dave", "Contributor");

    snprintf(path, sizeof(path), "/v1/tenants/%s/products", x->t1);
    assert_int_equal(st_call(&x->env, x->alice, "POST", path, "{\"name\": \"Widget\"}", &out), 201);
    snprintf(x->product, sizeof(x->product), "%s", str(out, "id"));
    json_decref(out);
    snprintf(path, sizeof(path), "/v1/tenants/%s/device-groups?product_id=%s&name=Development",
             x->t1, x->product);
    assert_int_equal(st_call(&x->env, x->alice, "GET", path, NULL, &out), 200);
    json_t *items = json_object_get(out, "items");
    assert_int_equal(json_array_size(items), 1);
    snprintf(x->dev_group, sizeof(x->dev_group), "%s", str(json_array_get(items, 0), "id"));
    json_decref(out);
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
    pv_trust_free(x->update_root);
    pv_chain_free(x->signer_chain);
    pv_cert_free(x->root);
    pv_cert_free(x->ca);
    pv_cert_free(x->signer);
    pv_cert_free(x->code);
    pv_cert_free(x->dev_root);
    pv_cert_free(x->prod_root);
    pv_key_free(x->root_key);
    pv_key_free(x->ca_key);
    pv_key_free(x->signer_key);
    pv_key_free(x->code_key);
    pv_key_free(x->dev_key);
    pv_key_free(x->prod_key);
    free(x);
    return 0;
}

/* ---- tests ---- */

static void test_issue(void **state)
{
    fixture *x = *state;
    char id[PV_DEVICE_ID_HEX_LEN + 1];
    json_t *out = NULL;
    install_signer(x, x->signer_key, x->signer_chain);
    add_image_root(x, x->prod_root, false);
    add_image_root(x, x->dev_root, true);
    device_in_development(x, id);

    /* A Contributor may ask. */
    assert_int_equal(ask(x, x->dave, x->t1, id, APP_DEV, &out), 200);
    assert_string_equal(str(out, "device_id"), id);
    assert_int_equal(json_array_size(json_object_get(out, "capabilities")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(out, "capabilities"), 0)),
                        "AppDevelopment");
    assert_true(json_is_null(json_object_get(out, "expires_at")));
    assert_non_null(json_string_value(json_object_get(out, "issued_at")));
    size_t len = 0;
    uint8_t *file = file_of(out, &len);
    json_decref(out);

    /* The device accepts it: its update root, its ID. */
    pv_capability cap;
    pv_err e = {0};
    if (pv_capability_verify(file, len, x->update_root, id, pv_time_now(), &cap, &e) != PV_OK) {
        fail_msg("verify: %s", pv_err_msg(&e));
    }
    assert_int_equal(cap.caps, PV_CAP_APP_DEVELOPMENT);
    assert_int_equal(cap.expires_at, 0);
    /* The development root only, not the production one. */
    assert_int_equal(pv_chain_count(cap.dev_root_list), 1);
    uint8_t a[PV_SHA256_LEN], b[PV_SHA256_LEN];
    pv_cert_fingerprint(pv_chain_get(cap.dev_root_list, 0), a);
    pv_cert_fingerprint(x->dev_root, b);
    assert_memory_equal(a, b, sizeof(a));
    pv_capability_free(&cap);
    /* Another device does not. */
    char other[PV_DEVICE_ID_HEX_LEN + 1];
    memset(other, 'a', PV_DEVICE_ID_HEX_LEN);
    other[PV_DEVICE_ID_HEX_LEN] = '\0';
    assert_int_equal(
        pv_capability_verify(file, len, x->update_root, other, pv_time_now(), &cap, &e),
        PV_ERR_UNTRUSTED);
    free(file);
    assert_int_equal(audited(x, x->t1, "device.capability", id), 1);

    /* With an expiry. */
    assert_int_equal(ask(x, x->alice, x->t1, id,
                         "{\"capabilities\": [\"AppDevelopment\"], \"valid_days\": 7}", &out),
                     200);
    assert_non_null(json_string_value(json_object_get(out, "expires_at")));
    file = file_of(out, &len);
    json_decref(out);
    int64_t now = pv_time_now();
    assert_int_equal(pv_capability_verify(file, len, x->update_root, id, now, &cap, &e), PV_OK);
    assert_true(cap.expires_at >= now + 7 * DAY - 60 && cap.expires_at <= now + 7 * DAY);
    pv_capability_free(&cap);
    assert_int_equal(pv_capability_verify(file, len, x->update_root, id, now + 8 * DAY, &cap, &e),
                     PV_ERR_EXPIRED);
    free(file);
    assert_int_equal(audited(x, x->t1, "device.capability", id), 2);

    /* The audit row says what was granted, with which roots and signer. */
    store_rows *rows = NULL;
    store_val p[] = {SV_TEXT(x->t1), SV_TEXT(id)};
    assert_int_equal(store_exec(x->env.db,
                                "SELECT detail, operator FROM audit WHERE tenant_id = $1 AND "
                                "target = $2 AND action = 'device.capability' ORDER BY seq",
                                p, 2, &rows, NULL, &e),
                     PV_OK);
    json_t *detail = json_loads(store_rows_text(rows, 0, 0), 0, NULL);
    assert_non_null(detail);
    assert_string_equal(store_rows_text(rows, 0, 1), "dave");
    char fp[65], kid_hex[65];
    uint8_t kid[PV_KEY_ID_LEN];
    pv_hex_encode(b, sizeof(b), fp, sizeof(fp));
    assert_int_equal(pv_key_id(x->signer_key, kid), PV_OK);
    pv_hex_encode(kid, sizeof(kid), kid_hex, sizeof(kid_hex));
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(detail, "development_roots"), 0)), fp);
    assert_string_equal(str(detail, "signer_key_id"), kid_hex);
    assert_true(json_is_null(json_object_get(detail, "expires_at")));
    json_decref(detail);
    store_rows_free(rows);
}

static void test_access(void **state)
{
    fixture *x = *state;
    char id[PV_DEVICE_ID_HEX_LEN + 1];
    install_signer(x, x->signer_key, x->signer_chain);
    add_image_root(x, x->dev_root, true);
    device_in_development(x, id);
    /* A Reader may not; another tenant does not see the device; nobody unknown gets in. */
    refused(x, x->carol, x->t1, id, APP_DEV, 403, "forbidden", NULL);
    refused(x, x->bob, x->t1, id, APP_DEV, 404, "not_found", NULL);
    refused(x, x->bob, x->t2, id, APP_DEV, 404, "not_found", id);
    refused(x, NULL, x->t1, id, APP_DEV, 401, NULL, NULL);
    /* A device nobody claimed, and an ID that is not one. */
    refused(x, x->alice, x->t1, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            APP_DEV, 404, "not_found", "not found in this tenant");
    refused(x, x->alice, x->t1, "XYZ", APP_DEV, 400, "bad_request", NULL);
    assert_int_equal(audited(x, x->t1, "device.capability", id), 0);
}

static void test_not_in_development(void **state)
{
    fixture *x = *state;
    char id[PV_DEVICE_ID_HEX_LEN + 1], body[128];
    install_signer(x, x->signer_key, x->signer_chain);
    add_image_root(x, x->dev_root, true);
    device_claimed(x, id);
    refused(x, x->alice, x->t1, id, APP_DEV, 409, "conflict", "not in development mode");
    /* In development, then out of it again (cloud test): refused again. */
    snprintf(body, sizeof(body), "{\"device_group_id\": \"%s\"}", x->dev_group);
    assert_int_equal(device_call(x, x->alice, x->t1, id, "/enable-development", body, NULL), 200);
    assert_int_equal(ask(x, x->alice, x->t1, id, APP_DEV, NULL), 200);
    assert_int_equal(device_call(x, x->alice, x->t1, id, "/enable-cloud-test", body, NULL), 200);
    refused(x, x->alice, x->t1, id, APP_DEV, 409, "conflict", "enable-development");
    assert_int_equal(audited(x, x->t1, "device.capability", id), 1);
}

static void test_bad_body(void **state)
{
    fixture *x = *state;
    char id[PV_DEVICE_ID_HEX_LEN + 1];
    install_signer(x, x->signer_key, x->signer_chain);
    add_image_root(x, x->dev_root, true);
    device_in_development(x, id);
    static const struct {
        const char *body, *expect;
    } cases[] = {
        {"{}", "capabilities"},
        {NULL, "capabilities"},
        {"{\"capabilities\": []}", "capabilities"},
        {"{\"capabilities\": \"AppDevelopment\"}", "capabilities"},
        {"{\"capabilities\": [\"EnableRfTestMode\"]}", "not a capability this service issues"},
        {"{\"capabilities\": [\"appdevelopment\"]}", "capabilities[0]"},
        {"{\"capabilities\": [\"AppDevelopment\", \"AppDevelopment\"]}", "listed twice"},
        {"{\"capabilities\": [1]}", "not a string"},
        {"{\"capabilities\": [\"AppDevelopment\"], \"valid_days\": 0}", "valid_days"},
        {"{\"capabilities\": [\"AppDevelopment\"], \"valid_days\": 3651}", "valid_days"},
        {"{\"capabilities\": [\"AppDevelopment\"], \"valid_days\": \"7\"}", "valid_days"},
        {"{\"capabilities\": [\"AppDevelopment\"], \"valid_days\": 1.5}", NULL},
        {"{\"capabilities\": [\"AppDevelopment\"], \"device_id\": \"x\"}", "device_id"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("case %zu\n", i);
        refused(x, x->alice, x->t1, id, cases[i].body, 400, "bad_request", cases[i].expect);
    }
}

static void test_service_cannot_sign(void **state)
{
    fixture *x = *state;
    char id[PV_DEVICE_ID_HEX_LEN + 1];
    device_in_development(x, id);

    /* No development root yet (a production one does not count). */
    add_image_root(x, x->prod_root, false);
    install_signer(x, x->signer_key, x->signer_chain);
    refused(x, x->alice, x->t1, id, APP_DEV, 503, "unavailable", "image-root add --development");
    add_image_root(x, x->dev_root, true);
    assert_int_equal(ask(x, x->alice, x->t1, id, APP_DEV, NULL), 200);

    /* No signer. */
    char *key = tu_path(x->env.srv.cfg.data_dir, CAPSIGNER_KEY_FILE);
    char *chain = tu_path(x->env.srv.cfg.data_dir, CAPSIGNER_CHAIN_FILE);
    assert_int_equal(unlink(key), 0);
    assert_int_equal(unlink(chain), 0);
    refused(x, x->alice, x->t1, id, APP_DEV, 503, "unavailable", "capability-signer set");

    /* Half a signer, or a key that is not the certificate's: being replaced. */
    pv_chain *code_chain = list_of(x->code, x->ca);
    install_signer(x, x->signer_key, code_chain);
    refused(x, x->alice, x->t1, id, APP_DEV, 503, "unavailable", "try again");
    assert_int_equal(unlink(key), 0);
    refused(x, x->alice, x->t1, id, APP_DEV, 503, "unavailable", "try again");

    /* A code signer installed as the signer (behind capsigner_check's back): create
     * refuses it, and says why. */
    install_signer(x, x->code_key, code_chain);
    refused(x, x->alice, x->t1, id, APP_DEV, 503, "unavailable", "capability signing");

    /* A signer that has expired. */
    install_signer(x, x->signer_key, x->signer_chain);
    pv_time_set_override(pv_time_now() + 2 * YEAR);
    refused(x, x->alice, x->t1, id, APP_DEV, 503, "unavailable", "expired");
    pv_time_set_override(0);
    assert_int_equal(ask(x, x->alice, x->t1, id, APP_DEV, NULL), 200);

    /* More development roots than a file holds. */
    for (size_t i = 0; i < PV_CAPABILITY_MAX_ROOTS; i++) {
        char subject[64];
        snprintf(subject, sizeof(subject), "CN=Development Root %zu", i);
        pv_key *k = newkey();
        int64_t now = pv_time_now();
        pv_cert *c = mk(subject, true, false, false, now - YEAR, now + YEAR, k, NULL, NULL);
        add_image_root(x, c, true);
        pv_cert_free(c);
        pv_key_free(k);
    }
    refused(x, x->alice, x->t1, id, APP_DEV, 503, "unavailable", "at most 8");
    assert_int_equal(audited(x, x->t1, "device.capability", id), 2);
    pv_chain_free(code_chain);
    free(key);
    free(chain);
}

/* ---- the signer in the data directory ---- */

static void test_capsigner(void **state)
{
    fixture *x = *state;
    pv_err e = {0};
    int64_t now = pv_time_now();
    const char *data = x->env.srv.cfg.data_dir;
    pv_key *key = NULL;
    pv_chain *chain = NULL;

    assert_int_equal(capsigner_load(data, &key, &chain, &e), PV_ERR_NOT_FOUND);
    assert_int_equal(capsigner_check(x->signer_key, x->signer_chain, now, &e), PV_OK);
    /* With the update root in the file too. */
    pv_chain *full = list_of(x->signer, x->ca);
    assert_int_equal(pv_chain_add(full, x->root), PV_OK);
    assert_int_equal(capsigner_check(x->signer_key, full, now, &e), PV_OK);
    pv_chain_free(full);

    /* What set refuses. */
    pv_key *pub = NULL;
    assert_int_equal(pv_cert_public_key(x->signer, &pub, &e), PV_OK);
    assert_int_equal(capsigner_check(pub, x->signer_chain, now, &e), PV_ERR_INVALID_ARG);
    pv_key_free(pub);
    assert_int_equal(capsigner_check(x->code_key, x->signer_chain, now, &e), PV_ERR_INVALID_ARG);
    assert_non_null(strstr(pv_err_msg(&e), "does not hold the key"));
    pv_chain *code_chain = list_of(x->code, x->ca);
    assert_int_equal(capsigner_check(x->code_key, code_chain, now, &e), PV_ERR_UNTRUSTED);
    assert_non_null(strstr(pv_err_msg(&e), "capability signing"));
    pv_chain_free(code_chain);
    assert_int_equal(capsigner_check(x->signer_key, x->signer_chain, now + 2 * YEAR, &e),
                     PV_ERR_EXPIRED);
    pv_chain *wrong_order = list_of(x->ca, x->signer);
    assert_int_equal(capsigner_check(x->signer_key, wrong_order, now, &e), PV_ERR_INVALID_ARG);
    pv_chain_free(wrong_order);
    /* A chain whose links do not hold: the signer under a CA that did not issue it. */
    pv_chain *broken = list_of(x->signer, x->root);
    assert_int_equal(capsigner_check(x->signer_key, broken, now, &e), PV_ERR_UNTRUSTED);
    pv_chain_free(broken);

    /* Store, load, replace. */
    install_signer(x, x->signer_key, x->signer_chain);
    char *key_path = tu_path(data, CAPSIGNER_KEY_FILE);
    struct stat st;
    assert_int_equal(stat(key_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(capsigner_load(data, &key, &chain, &e), PV_OK);
    assert_true(pv_key_equal_public(key, x->signer_key));
    assert_int_equal(pv_chain_count(chain), 2);
    pv_key_free(key);
    pv_chain_free(chain);
    /* A second signer replaces the first, and no temporary file stays behind. */
    pv_key *k2 = newkey();
    pv_cert *s2 = mk("CN=Capability Signer 2", false, true, false, now - DAY, now + YEAR, k2, x->ca,
                     x->ca_key);
    pv_chain *c2 = list_of(s2, x->ca);
    char *tmp = tu_path(data, CAPSIGNER_KEY_FILE ".new");
    tu_write(tmp, "stale", 5, 0600); /* left by an interrupted run */
    install_signer(x, k2, c2);
    assert_false(tu_exists(tmp));
    assert_int_equal(capsigner_load(data, &key, &chain, &e), PV_OK);
    assert_true(pv_key_equal_public(key, k2));
    pv_key_free(key);
    pv_chain_free(chain);
    assert_int_equal(stat(key_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    free(tmp);
    free(key_path);
    pv_chain_free(c2);
    pv_cert_free(s2);
    pv_key_free(k2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_issue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_access, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_in_development, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_cannot_sign, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capsigner, setup, teardown),
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof(st_backends) / sizeof(st_backends[0]); i++) {
        backend = st_backends[i];
        failed += cmocka_run_group_tests_name(backend, tests, NULL, NULL);
    }
    return failed;
}
