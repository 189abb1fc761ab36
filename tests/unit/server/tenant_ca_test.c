/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tenant CAs (tenant_ca.c) and their API (api_ca.c), on SQLite and PostgreSQL: the
 * key-encryption key, sealing and every kind of tampering with a sealed key, the CA
 * certificate's profile, issuing (checked with OpenSSL against the chain), rotation and
 * retirement, the chain as PEM and PKCS#7, proof of possession, and who may do what.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pavise/platform.h"

#include "ca.h"
#include "servertest.h"
#include "tenant_ca.h"

#define DAY  INT64_C(86400)
#define HOUR INT64_C(3600)

/* The attestation extension's OID (attestation.md §2) and a value of its shape. */
#define ATT_OID "2.25.102576691726157819091001912716521458267"
static const uint8_t att_value[] = {0x30, 0x0b, 0x0c, 0x03, 't',  'p', 'm',
                                    0x0c, 0x01, 'p',  0x01, 0x01, 0x00};

static const char *backend;

typedef struct fixture {
    st_env env;
    uint8_t alice[PV_SHA256_LEN]; /* Administrator of t1 */
    uint8_t bob[PV_SHA256_LEN];   /* Administrator of t2 */
    uint8_t rita[PV_SHA256_LEN];  /* Reader in t1 */
    uint8_t carl[PV_SHA256_LEN];  /* Contributor in t1 */
    char t1[37], t2[37];
} fixture;

/* ---- helpers ---- */

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "(not a string)";
}

static const uint8_t *kek(fixture *x)
{
    return ca_tenant_kek(x->env.srv.ca);
}

static int call(fixture *x, const uint8_t *fp, const char *method, const char *tenant,
                const char *rest, const char *body, json_t **out)
{
    char path[1024];
    snprintf(path, sizeof(path), "/v1/tenants/%s%s", tenant, rest);
    return st_call(&x->env, fp, method, path, body, out);
}

/* A call whose answer is not JSON: the status, the body (caller frees) and its type. */
static int call_raw(fixture *x, const uint8_t *fp, const char *tenant, const char *rest,
                    char **body, size_t *len, const char **type)
{
    char path[1024], *q = NULL;
    api_request req;
    api_response resp;
    memset(&req, 0, sizeof(req));
    snprintf(path, sizeof(path), "/v1/tenants/%s%s", tenant, rest);
    if ((q = strchr(path, '?')) != NULL) {
        *q++ = '\0';
    }
    req.method = "GET";
    req.path = path;
    req.query = q;
    req.has_client_cert = true;
    memcpy(req.client_fp, fp, PV_SHA256_LEN);
    api_handle(&x->env.srv, x->env.db, &req, &resp);
    *body = resp.body;
    *len = resp.body_len;
    *type = resp.content_type;
    return resp.status;
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

/* The ID of the tenant's active CA. */
static void active_id(fixture *x, const char *tenant, char out[37])
{
    store_rows *rows = NULL;
    pv_err e = {0};
    store_val p[] = {SV_TEXT(tenant)};
    assert_int_equal(store_exec(x->env.db,
                                "SELECT id FROM tenant_cas WHERE tenant_id = $1 AND "
                                "status = 'active'",
                                p, 1, &rows, NULL, &e),
                     PV_OK);
    assert_int_equal(store_rows_count(rows), 1);
    snprintf(out, 37, "%s", store_rows_text(rows, 0, 0));
    store_rows_free(rows);
}

/* The item of a list with this id. */
static json_t *item(json_t *list, const char *id)
{
    json_t *items = json_object_get(list, "items");
    for (size_t i = 0; i < json_array_size(items); i++) {
        if (strcmp(str(json_array_get(items, i), "id"), id) == 0) {
            return json_array_get(items, i);
        }
    }
    fail_msg("%s is not in the list", id);
    return NULL;
}

static X509 *x509_of_pem(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(x);
    return x;
}

/* Verifies leaf against a chain's certificates as trust anchors, with OpenSSL itself
 * (strict X.509 checks, clientAuth purpose). Returns X509_V_OK or the error. */
static int openssl_verify(X509 *leaf, const pv_chain *anchors, int64_t at)
{
    X509_STORE *st = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_non_null(st);
    assert_non_null(ctx);
    for (size_t i = 0; i < pv_chain_count(anchors); i++) {
        assert_int_equal(X509_STORE_add_cert(st, pv_cert_x509(pv_chain_get(anchors, i))), 1);
    }
    assert_int_equal(X509_STORE_CTX_init(ctx, st, leaf, NULL), 1);
    X509_VERIFY_PARAM *vp = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_flags(vp, X509_V_FLAG_X509_STRICT | X509_V_FLAG_USE_CHECK_TIME);
    X509_VERIFY_PARAM_set_time(vp, (time_t)at);
    X509_VERIFY_PARAM_set_purpose(vp, X509_PURPOSE_SSL_CLIENT);
    int ok = X509_verify_cert(ctx);
    int err = ok == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    return err;
}

static pv_chain *chain_of(fixture *x, const char *tenant)
{
    pv_chain *ch = NULL;
    pv_err e = {0};
    if (tenant_ca_chain(x->env.db, tenant, pv_time_now(), &ch, &e) != PV_OK) {
        fail_msg("chain of %s: %s", tenant, pv_err_msg(&e));
    }
    return ch;
}

/* Issues a device client certificate as the verifier will. */
static void issue(fixture *x, const char *tenant, tenant_ca_issued *out)
{
    pv_key *k = NULL;
    pv_err e = {0};
    char subject[160];
    tenant_ca_ext ext = {ATT_OID, att_value, sizeof(att_value), false};
    snprintf(subject, sizeof(subject), "CN=%064d,O=%s", 7, tenant);
    assert_int_equal(pv_key_generate(&k, &e), PV_OK);
    int r =
        tenant_ca_issue(x->env.db, kek(x), tenant, k, subject, pv_time_now(), DAY, &ext, out, &e);
    if (r != PV_OK) {
        fail_msg("issue: %s", pv_err_msg(&e));
    }
    pv_key_free(k);
}

static int64_t count_rows(fixture *x, const char *sql, const char *arg)
{
    store_rows *rows = NULL;
    pv_err e = {0};
    store_val p[] = {SV_TEXT(arg)};
    assert_int_equal(store_exec(x->env.db, sql, p, 1, &rows, NULL, &e), PV_OK);
    int64_t n = store_rows_int(rows, 0, 0);
    store_rows_free(rows);
    return n;
}

/* ---- setup ---- */

static int setup(void **state)
{
    fixture *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    st_setup(&x->env, backend);
    st_operator(&x->env, "alice", x->alice);
    st_operator(&x->env, "bob", x->bob);
    st_operator(&x->env, "rita", x->rita);
    st_operator(&x->env, "carl", x->carl);
    tenant_create(x, x->alice, "Alice Corp", x->t1);
    tenant_create(x, x->bob, "Bob Corp", x->t2);
    grant(x, x->t1, "rita", "Reader");
    grant(x, x->t1, "carl", "Contributor");
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    fixture *x = *state;
    st_teardown(&x->env);
    free(x);
    return 0;
}

/* ---- the key-encryption key ---- */

static void test_kek_file(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("kek");
    char *path = tu_path(dir, TENANT_CA_KEK_FILE);
    uint8_t k1[TENANT_CA_KEK_LEN], k2[TENANT_CA_KEK_LEN], zero[TENANT_CA_KEK_LEN] = {0};
    bool created = false;
    pv_err e = {0};
    struct stat st;

    assert_int_equal(tenant_ca_kek_load(dir, k1, &created, &e), PV_OK);
    assert_true(created);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, TENANT_CA_KEK_LEN);
    assert_memory_not_equal(k1, zero, sizeof(zero));
    /* A second start reads the same key. */
    assert_int_equal(tenant_ca_kek_load(dir, k2, &created, &e), PV_OK);
    assert_false(created);
    assert_memory_equal(k1, k2, sizeof(k1));
    /* Readable by others: refused, not used. */
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(tenant_ca_kek_load(dir, k2, NULL, &e), PV_ERR_UNSAFE);
    assert_non_null(strstr(pv_err_msg(&e), "chmod 600"));
    assert_memory_equal(k2, zero, sizeof(zero)); /* cleared on failure */
    /* The wrong size: refused. */
    unlink(path);
    tu_write(path, "short", 5, 0600);
    assert_int_equal(tenant_ca_kek_load(dir, k2, NULL, &e), PV_ERR_FORMAT);
    unlink(path);
    uint8_t big[TENANT_CA_KEK_LEN + 1] = {1};
    tu_write(path, big, sizeof(big), 0600);
    assert_int_equal(tenant_ca_kek_load(dir, k2, NULL, &e), PV_ERR_FORMAT);
    /* Not a regular file. */
    unlink(path);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_not_equal(tenant_ca_kek_load(dir, k2, NULL, &e), PV_OK);
    rmdir(path);
    tu_rmtree(dir);
    free(path);
    free(dir);
}

/* ---- sealing ---- */

static int unseal(const uint8_t *k, const char *id, const uint8_t *s, size_t n)
{
    pv_buf *out = pv_buf_new(TENANT_CA_SEALED_MAX);
    pv_err e = {0};
    assert_non_null(out);
    int r = tenant_ca_unseal(k, id, s, n, out, &e);
    pv_buf_free(out);
    return r;
}

static void test_seal_tamper(void **state)
{
    (void)state;
    static const char id[] = "0b1f7c52-8a41-4c55-9d1e-6e3c2a7b9f10";
    static const char other[] = "0b1f7c52-8a41-4c55-9d1e-6e3c2a7b9f11";
    uint8_t k[TENANT_CA_KEK_LEN], k2[TENANT_CA_KEK_LEN];
    uint8_t plain[140];
    pv_buf *s = pv_buf_new(TENANT_CA_SEALED_MAX);
    pv_buf *out = pv_buf_new(TENANT_CA_SEALED_MAX);
    pv_err e = {0};

    assert_int_equal(pv_random_bytes(k, sizeof(k)), PV_OK);
    assert_int_equal(pv_random_bytes(k2, sizeof(k2)), PV_OK);
    assert_int_equal(pv_random_bytes(plain, sizeof(plain)), PV_OK);
    assert_int_equal(tenant_ca_seal(k, id, plain, sizeof(plain), s, &e), PV_OK);
    size_t n = pv_buf_len(s);
    assert_int_equal(n, 1 + TENANT_CA_IV_LEN + sizeof(plain) + TENANT_CA_TAG_LEN);
    assert_int_equal(pv_buf_data(s)[0], TENANT_CA_SEAL_VERSION);
    assert_memory_not_equal(pv_buf_data(s) + 1 + TENANT_CA_IV_LEN, plain, sizeof(plain));

    /* Round trip. */
    assert_int_equal(tenant_ca_unseal(k, id, pv_buf_data(s), n, out, &e), PV_OK);
    assert_int_equal(pv_buf_len(out), sizeof(plain));
    assert_memory_equal(pv_buf_data(out), plain, sizeof(plain));
    /* Two seals of the same key differ (fresh IV). */
    pv_buf *s2 = pv_buf_new(TENANT_CA_SEALED_MAX);
    assert_int_equal(tenant_ca_seal(k, id, plain, sizeof(plain), s2, &e), PV_OK);
    assert_memory_not_equal(pv_buf_data(s) + 1, pv_buf_data(s2) + 1, TENANT_CA_IV_LEN);
    pv_buf_free(s2);

    /* Every single bit flipped in the IV, the ciphertext and the tag: refused. */
    uint8_t *t = malloc(n);
    assert_non_null(t);
    for (size_t i = 1; i < n; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            memcpy(t, pv_buf_data(s), n);
            t[i] ^= (uint8_t)(1u << bit);
            int r = unseal(k, id, t, n);
            if (r != PV_ERR_SIGNATURE) {
                fail_msg("byte %zu bit %d changed: %d, expected PV_ERR_SIGNATURE", i, bit, r);
            }
        }
    }
    /* The version byte. */
    memcpy(t, pv_buf_data(s), n);
    t[0] = 2;
    assert_int_equal(unseal(k, id, t, n), PV_ERR_UNSUPPORTED);
    /* Another row's ID (the AAD), another KEK. */
    assert_int_equal(unseal(k, other, pv_buf_data(s), n), PV_ERR_SIGNATURE);
    assert_int_equal(unseal(k, "", pv_buf_data(s), n), PV_ERR_SIGNATURE);
    assert_int_equal(unseal(k2, id, pv_buf_data(s), n), PV_ERR_SIGNATURE);
    /* Truncated: the tag cut, down to nothing; or longer than any CA key. */
    assert_int_equal(unseal(k, id, pv_buf_data(s), n - 1), PV_ERR_SIGNATURE);
    assert_int_equal(unseal(k, id, pv_buf_data(s), 1 + TENANT_CA_IV_LEN + TENANT_CA_TAG_LEN),
                     PV_ERR_TRUNCATED);
    assert_int_equal(unseal(k, id, pv_buf_data(s), 1), PV_ERR_TRUNCATED);
    assert_int_equal(unseal(k, id, pv_buf_data(s), 0), PV_ERR_TRUNCATED);
    uint8_t *huge = calloc(1, TENANT_CA_SEALED_MAX + 1);
    huge[0] = TENANT_CA_SEAL_VERSION;
    assert_int_equal(unseal(k, id, huge, TENANT_CA_SEALED_MAX + 1), PV_ERR_TOO_LARGE);
    free(huge);
    /* Appended bytes shift the tag: refused. */
    uint8_t *longer = malloc(n + 1);
    memcpy(longer, pv_buf_data(s), n);
    longer[n] = 0;
    assert_int_equal(unseal(k, id, longer, n + 1), PV_ERR_SIGNATURE);
    free(longer);
    /* Bad arguments to seal. */
    assert_int_equal(tenant_ca_seal(k, id, plain, 0, s, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(tenant_ca_seal(k, NULL, plain, sizeof(plain), s, &e), PV_ERR_INVALID_ARG);
    free(t);
    pv_buf_free(out);
    pv_buf_free(s);
}

/* ---- the CA and what it issues ---- */

static void test_ca_profile(void **state)
{
    fixture *x = *state;
    char id[37], rest[128], subject[128];
    json_t *o = NULL;
    int64_t now = pv_time_now();
    pv_time_set_override(now); /* one clock for the calls and the checks */

    active_id(x, x->t1, id);
    snprintf(rest, sizeof(rest), "/ca-certificates/%s", id);
    assert_int_equal(call(x, x->rita, "GET", x->t1, rest, NULL, &o), 200);
    snprintf(subject, sizeof(subject), "CN=Pavise tenant %s", x->t1);
    assert_string_equal(str(o, "subject"), subject);
    assert_string_equal(str(o, "status"), "active");
    assert_string_equal(str(o, "tenant_id"), x->t1);
    assert_true(json_is_null(json_object_get(o, "retire_after")));
    X509 *ca = x509_of_pem(str(o, "certificate"));
    /* The fingerprint is the SHA-256 of the DER. */
    unsigned char md[32];
    unsigned int mdlen = 0;
    char hex[65];
    assert_int_equal(X509_digest(ca, EVP_sha256(), md, &mdlen), 1);
    pv_hex_encode(md, mdlen, hex, sizeof(hex));
    assert_string_equal(str(o, "fingerprint"), hex);
    json_decref(o);

    /* basicConstraints CA:TRUE pathlen:0, critical. */
    int crit = -1;
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(ca, NID_basic_constraints, &crit, NULL);
    assert_non_null(bc);
    assert_int_equal(crit, 1);
    assert_true(bc->ca);
    assert_int_equal(ASN1_INTEGER_get(bc->pathlen), 0);
    BASIC_CONSTRAINTS_free(bc);
    /* keyUsage keyCertSign + cRLSign, critical. */
    ASN1_BIT_STRING *ku = X509_get_ext_d2i(ca, NID_key_usage, &crit, NULL);
    assert_non_null(ku);
    assert_int_equal(crit, 1);
    assert_true(ASN1_BIT_STRING_get_bit(ku, 5));
    assert_true(ASN1_BIT_STRING_get_bit(ku, 6));
    ASN1_BIT_STRING_free(ku);
    assert_non_null(X509_get0_subject_key_id(ca));
    /* ECDSA P-256, five years, a positive serial of 128 bits at most. */
    EVP_PKEY *pk = X509_get0_pubkey(ca);
    assert_true(EVP_PKEY_is_a(pk, "EC"));
    assert_int_equal(EVP_PKEY_get_bits(pk), 256);
    const ASN1_INTEGER *sn = X509_get0_serialNumber(ca);
    assert_int_equal(sn->type, V_ASN1_INTEGER);
    assert_true(ASN1_STRING_length(sn) >= 8 && ASN1_STRING_length(sn) <= 16);
    int days = 0, secs = 0;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(ca), X509_get0_notAfter(ca)),
                     1);
    assert_true(days >= 5 * 365 && days <= 5 * 366 + 1);
    assert_int_equal(X509_cmp_time(X509_get0_notBefore(ca), &(time_t){(time_t)now}), -1);
    assert_int_equal(X509_self_signed(ca, 1), 1);
    X509_free(ca);

    /* The key in the row is sealed: the PKCS#8 DER's own markers are not to be seen. */
    store_rows *rows = NULL;
    pv_err e = {0};
    store_val p[] = {SV_TEXT(id)};
    assert_int_equal(store_exec(x->env.db, "SELECT key_sealed FROM tenant_cas WHERE id = $1", p, 1,
                                &rows, NULL, &e),
                     PV_OK);
    size_t len = 0;
    const uint8_t *blob = store_rows_blob(rows, 0, 0, &len);
    assert_true(len > 100 && len < TENANT_CA_SEALED_MAX);
    assert_int_equal(blob[0], TENANT_CA_SEAL_VERSION);
    static const uint8_t p256_oid[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    for (size_t i = 0; i + sizeof(p256_oid) <= len; i++) {
        assert_memory_not_equal(blob + i, p256_oid, sizeof(p256_oid));
    }
    store_rows_free(rows);
    /* Every tenant got its own. */
    char id2[37];
    active_id(x, x->t2, id2);
    assert_string_not_equal(id, id2);
}

static void test_issue_verifies(void **state)
{
    fixture *x = *state;
    tenant_ca_issued iss;
    int64_t now = pv_time_now();
    pv_time_set_override(now); /* one clock for the calls and the checks */
    pv_chain *ch = chain_of(x, x->t1);
    char id[37];

    active_id(x, x->t1, id);
    issue(x, x->t1, &iss);
    assert_string_equal(iss.ca_id, id);
    assert_int_equal(iss.not_before, now - 300);
    assert_int_equal(iss.not_after, now + DAY);
    assert_int_equal(strlen(iss.serial), 32);
    X509 *leaf = pv_cert_x509(iss.cert);
    /* OpenSSL itself accepts it as a TLS client certificate under the tenant chain, now
     * and until it expires, not after; another tenant's chain does not. */
    assert_int_equal(openssl_verify(leaf, ch, now), X509_V_OK);
    assert_int_equal(openssl_verify(leaf, ch, now + DAY - 1), X509_V_OK);
    assert_int_equal(openssl_verify(leaf, ch, now + DAY + 1), X509_V_ERR_CERT_HAS_EXPIRED);
    pv_chain *other = chain_of(x, x->t2);
    assert_int_not_equal(openssl_verify(leaf, other, now), X509_V_OK);
    pv_chain_free(other);
    /* The subject, the extensions. */
    char subject[256], want[256];
    pv_cert_subject(iss.cert, subject, sizeof(subject));
    snprintf(want, sizeof(want), "CN=%064d,O=%s", 7, x->t1);
    assert_string_equal(subject, want);
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(leaf, NID_ext_key_usage, NULL, NULL);
    assert_non_null(eku);
    assert_int_equal(sk_ASN1_OBJECT_num(eku), 1);
    assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_client_auth);
    EXTENDED_KEY_USAGE_free(eku);
    ASN1_OBJECT *obj = OBJ_txt2obj(ATT_OID, 1);
    int at = X509_get_ext_by_OBJ(leaf, obj, -1);
    assert_true(at >= 0);
    X509_EXTENSION *ex = X509_get_ext(leaf, at);
    assert_int_equal(X509_EXTENSION_get_critical(ex), 0);
    ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(ex);
    assert_int_equal(ASN1_STRING_length(v), sizeof(att_value));
    assert_memory_equal(ASN1_STRING_get0_data(v), att_value, sizeof(att_value));
    ASN1_OBJECT_free(obj);
    tenant_ca_issued_clear(&iss);

    /* Without the extension: none is added. */
    pv_key *k = NULL;
    pv_err e = {0};
    assert_int_equal(pv_key_generate(&k, &e), PV_OK);
    assert_int_equal(
        tenant_ca_issue(x->env.db, kek(x), x->t1, k, "CN=dev", now, HOUR, NULL, &iss, &e), PV_OK);
    assert_int_equal(X509_get_ext_count(pv_cert_x509(iss.cert)), 5); /* ku eku bc ski aki */
    assert_int_equal(openssl_verify(pv_cert_x509(iss.cert), ch, now), X509_V_OK);
    tenant_ca_issued_clear(&iss);

    /* Refusals, each a clear error and nothing issued. */
    tenant_ca_ext bad_oid = {"not.an.oid", att_value, sizeof(att_value), false};
    tenant_ca_ext dup = {"2.5.29.37", att_value, sizeof(att_value), false}; /* EKU again */
    tenant_ca_ext empty = {ATT_OID, att_value, 0, false};
    assert_int_equal(
        tenant_ca_issue(x->env.db, kek(x), x->t1, k, "CN=dev", now, HOUR, &bad_oid, &iss, &e),
        PV_ERR_INVALID_ARG);
    assert_null(iss.cert);
    assert_int_equal(
        tenant_ca_issue(x->env.db, kek(x), x->t1, k, "CN=dev", now, HOUR, &dup, &iss, &e),
        PV_ERR_INVALID_ARG);
    assert_int_equal(
        tenant_ca_issue(x->env.db, kek(x), x->t1, k, "CN=dev", now, HOUR, &empty, &iss, &e),
        PV_ERR_INVALID_ARG);
    assert_int_equal(tenant_ca_issue(x->env.db, kek(x), x->t1, k, "CN=dev", now, 0, NULL, &iss, &e),
                     PV_ERR_INVALID_ARG);
    assert_int_equal(
        tenant_ca_issue(x->env.db, kek(x), x->t1, k, "CN=a,CN=b", now, HOUR, NULL, &iss, &e),
        PV_ERR_INVALID_ARG);
    assert_int_equal(tenant_ca_issue(x->env.db, kek(x), x->t1, k, "X=y", now, HOUR, NULL, &iss, &e),
                     PV_ERR_INVALID_ARG);
    /* The wrong KEK: the key does not open. */
    uint8_t wrong[TENANT_CA_KEK_LEN];
    memcpy(wrong, kek(x), sizeof(wrong));
    wrong[0] ^= 1;
    assert_int_equal(
        tenant_ca_issue(x->env.db, wrong, x->t1, k, "CN=dev", now, HOUR, NULL, &iss, &e),
        PV_ERR_SIGNATURE);
    /* A tenant without a CA; a CA that expires before the certificate would. */
    assert_int_equal(tenant_ca_issue(x->env.db, kek(x), "00000000-0000-4000-8000-000000000000", k,
                                     "CN=dev", now, HOUR, NULL, &iss, &e),
                     PV_ERR_NOT_FOUND);
    int64_t late = now + 5 * 365 * DAY;
    assert_int_equal(
        tenant_ca_issue(x->env.db, kek(x), x->t1, k, "CN=dev", late, 10 * DAY, NULL, &iss, &e),
        PV_ERR_EXPIRED);
    assert_non_null(strstr(pv_err_msg(&e), "rotate"));
    pv_key_free(k);
    pv_chain_free(ch);
}

/* A sealed key changed in the database, or moved to another row, does not open: the
 * issue fails closed and the API answers 500 without saying more. */
static void test_tampered_row(void **state)
{
    fixture *x = *state;
    char id1[37], id2[37], rest[128];
    pv_err e = {0};
    pv_key *k = NULL;
    tenant_ca_issued iss;
    store_rows *rows = NULL;

    active_id(x, x->t1, id1);
    active_id(x, x->t2, id2);
    assert_int_equal(pv_key_generate(&k, &e), PV_OK);
    /* Move t2's sealed key into t1's row. */
    store_val p[] = {SV_TEXT(id2)};
    assert_int_equal(store_exec(x->env.db, "SELECT key_sealed FROM tenant_cas WHERE id = $1", p, 1,
                                &rows, NULL, &e),
                     PV_OK);
    size_t len = 0;
    const uint8_t *b = store_rows_blob(rows, 0, 0, &len);
    uint8_t *copy = malloc(len);
    memcpy(copy, b, len);
    store_rows_free(rows);
    store_val pu[] = {SV_BLOB(copy, len), SV_TEXT(id1)};
    assert_int_equal(store_exec(x->env.db, "UPDATE tenant_cas SET key_sealed = $1 WHERE id = $2",
                                pu, 2, NULL, NULL, &e),
                     PV_OK);
    assert_int_equal(
        tenant_ca_issue(x->env.db, kek(x), x->t1, k, "CN=dev", pv_time_now(), HOUR, NULL, &iss, &e),
        PV_ERR_SIGNATURE);
    assert_non_null(strstr(pv_err_msg(&e), "does not open"));
    /* One byte changed in t1's own row (its IV): the same. */
    copy[3] ^= 0x40;
    assert_int_equal(store_exec(x->env.db, "UPDATE tenant_cas SET key_sealed = $1 WHERE id = $2",
                                pu, 2, NULL, NULL, &e),
                     PV_OK);
    assert_int_equal(
        tenant_ca_issue(x->env.db, kek(x), x->t1, k, "CN=dev", pv_time_now(), HOUR, NULL, &iss, &e),
        PV_ERR_SIGNATURE);
    json_t *o = NULL;
    snprintf(rest, sizeof(rest), "/ca-certificates/%s/proof", id1);
    assert_int_equal(call(x, x->alice, "POST", x->t1, rest, "{\"verification_code\":\"ABC\"}", &o),
                     500);
    char *text = json_dumps(o, 0);
    assert_non_null(text);
    assert_null(strstr(text, "seal")); /* nothing about the key leaves */
    free(text);
    json_decref(o);
    free(copy);
    pv_key_free(k);
}

/* ---- rotation and the chain ---- */

static int chain_count_pem(const char *pem, size_t len, X509 **first)
{
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    int n = 0;
    X509 *c = NULL;
    *first = NULL;
    while ((c = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (n++ == 0) {
            *first = c;
        } else {
            X509_free(c);
        }
    }
    ERR_clear_error();
    BIO_free(b);
    return n;
}

static int chain_count_pkcs7(const char *der, size_t len, X509 **first)
{
    const unsigned char *p = (const unsigned char *)der;
    PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)len);
    assert_non_null(p7);
    assert_ptr_equal(p, (const unsigned char *)der + len);
    assert_true(PKCS7_type_is_signed(p7));
    assert_int_equal(sk_PKCS7_SIGNER_INFO_num(PKCS7_get_signer_info(p7)), 0);
    STACK_OF(X509) *certs = p7->d.sign->cert;
    int n = sk_X509_num(certs);
    *first = n > 0 ? X509_dup(sk_X509_value(certs, 0)) : NULL;
    PKCS7_free(p7);
    return n;
}

static void test_rotate(void **state)
{
    fixture *x = *state;
    char old[37], fresh[37], rest[128];
    json_t *o = NULL;
    char *body = NULL;
    size_t len = 0;
    const char *type = NULL;
    X509 *first = NULL;
    int64_t now = pv_time_now();
    pv_time_set_override(now); /* one clock for the calls and the checks */
    tenant_ca_issued before, after;

    active_id(x, x->t1, old);
    issue(x, x->t1, &before);
    /* Only an Administrator rotates; a refusal changes nothing. */
    char *dump = st_dump(&x->env);
    assert_int_equal(call(x, x->rita, "POST", x->t1, "/ca-certificates/rotate", NULL, &o), 403);
    json_decref(o);
    assert_int_equal(call(x, x->carl, "POST", x->t1, "/ca-certificates/rotate", NULL, &o), 403);
    json_decref(o);
    assert_int_equal(call(x, x->bob, "POST", x->t1, "/ca-certificates/rotate", NULL, &o), 404);
    json_decref(o);
    assert_int_equal(call(x, x->alice, "POST", x->t1, "/ca-certificates/rotate", "{\"x\":1}", &o),
                     400);
    json_decref(o);
    char *dump2 = st_dump(&x->env);
    assert_string_equal(dump, dump2);
    free(dump);
    free(dump2);

    assert_int_equal(call(x, x->alice, "POST", x->t1, "/ca-certificates/rotate", NULL, &o), 201);
    snprintf(fresh, sizeof(fresh), "%s", str(o, "id"));
    assert_string_equal(str(o, "status"), "active");
    assert_non_null(strstr(str(o, "certificate"), "BEGIN CERTIFICATE"));
    json_decref(o);
    assert_string_not_equal(old, fresh);

    /* Both listed: the old one retiring for the client certificate lifetime (24 h). */
    assert_int_equal(call(x, x->rita, "GET", x->t1, "/ca-certificates", NULL, &o), 200);
    json_t *items = json_object_get(o, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(str(item(o, old), "status"), "retiring");
    char when[PV_TIME_TEXT_LEN + 1];
    assert_true(pv_time_format(now + DAY, when));
    assert_string_equal(str(item(o, old), "retire_after"), when);
    assert_string_equal(str(item(o, fresh), "status"), "active");
    assert_true(json_is_null(json_object_get(item(o, fresh), "retire_after")));
    json_decref(o);

    /* New certificates come from the new CA at once; the old one's still verify. */
    issue(x, x->t1, &after);
    assert_string_equal(after.ca_id, fresh);
    pv_chain *ch = chain_of(x, x->t1);
    assert_int_equal(pv_chain_count(ch), 2);
    assert_int_equal(openssl_verify(pv_cert_x509(before.cert), ch, now), X509_V_OK);
    assert_int_equal(openssl_verify(pv_cert_x509(after.cert), ch, now), X509_V_OK);
    pv_chain_free(ch);

    /* The chain, PEM and PKCS#7: both, the active one first. */
    assert_int_equal(call_raw(x, x->rita, x->t1, "/ca-certificates/chain", &body, &len, &type),
                     200);
    assert_string_equal(type, "application/x-pem-file");
    assert_int_equal(chain_count_pem(body, len, &first), 2);
    X509 *active_x = NULL;
    snprintf(rest, sizeof(rest), "/ca-certificates/%s", fresh);
    assert_int_equal(call(x, x->rita, "GET", x->t1, rest, NULL, &o), 200);
    active_x = x509_of_pem(str(o, "certificate"));
    json_decref(o);
    assert_int_equal(X509_cmp(first, active_x), 0);
    X509_free(first);
    free(body);
    assert_int_equal(
        call_raw(x, x->rita, x->t1, "/ca-certificates/chain?format=pkcs7", &body, &len, &type),
        200);
    assert_string_equal(type, "application/pkcs7-mime");
    assert_int_equal(chain_count_pkcs7(body, len, &first), 2);
    assert_int_equal(X509_cmp(first, active_x), 0);
    X509_free(first);
    free(body);
    assert_int_equal(
        call_raw(x, x->rita, x->t1, "/ca-certificates/chain?format=der", &body, &len, &type), 400);
    free(body);
    assert_int_equal(
        call_raw(x, x->rita, x->t1, "/ca-certificates/chain?form=pem", &body, &len, &type), 400);
    free(body);

    /* After the overlap the old one is retired: out of the chain, shown as retired, no
     * proof of possession for it; the next rotation writes it so. */
    pv_time_set_override(now + DAY + 1);
    ch = chain_of(x, x->t1);
    assert_int_equal(pv_chain_count(ch), 1);
    assert_int_equal(X509_cmp(pv_cert_x509(pv_chain_get(ch, 0)), active_x), 0);
    assert_int_not_equal(openssl_verify(pv_cert_x509(before.cert), ch, now), X509_V_OK);
    pv_chain_free(ch);
    assert_int_equal(
        call_raw(x, x->rita, x->t1, "/ca-certificates/chain?format=pkcs7", &body, &len, &type),
        200);
    assert_int_equal(chain_count_pkcs7(body, len, &first), 1);
    X509_free(first);
    free(body);
    snprintf(rest, sizeof(rest), "/ca-certificates/%s", old);
    assert_int_equal(call(x, x->rita, "GET", x->t1, rest, NULL, &o), 200);
    assert_string_equal(str(o, "status"), "retired");
    json_decref(o);
    snprintf(rest, sizeof(rest), "/ca-certificates/%s/proof", old);
    assert_int_equal(call(x, x->carl, "POST", x->t1, rest, "{\"verification_code\":\"A1\"}", &o),
                     409);
    json_decref(o);
    assert_int_equal(count_rows(x,
                                "SELECT COUNT(*) FROM tenant_cas WHERE tenant_id = $1 AND status "
                                "= 'retiring'",
                                x->t1),
                     1); /* reads never write */
    assert_int_equal(call(x, x->alice, "POST", x->t1, "/ca-certificates/rotate", NULL, &o), 201);
    json_decref(o);
    assert_int_equal(count_rows(x,
                                "SELECT COUNT(*) FROM tenant_cas WHERE tenant_id = $1 AND status "
                                "= 'retired'",
                                x->t1),
                     1);
    assert_int_equal(count_rows(x,
                                "SELECT COUNT(*) FROM tenant_cas WHERE tenant_id = $1 AND status "
                                "= 'active'",
                                x->t1),
                     1);
    /* Audited. */
    assert_int_equal(count_rows(x,
                                "SELECT COUNT(*) FROM audit WHERE tenant_id = $1 AND action = "
                                "'ca_certificate.rotate'",
                                x->t1),
                     2);
    /* The other tenant was not touched. */
    assert_int_equal(count_rows(x, "SELECT COUNT(*) FROM tenant_cas WHERE tenant_id = $1", x->t2),
                     1);
    X509_free(active_x);
    tenant_ca_issued_clear(&before);
    tenant_ca_issued_clear(&after);
}

/* The chain must stay installable (at most PV_CHAIN_MAX_CERTS): rotating faster than the
 * overlap runs out is refused once it is full. */
static void test_rotate_limit(void **state)
{
    fixture *x = *state;
    json_t *o = NULL;
    for (int i = 1; i < TENANT_CA_MAX_CHAIN; i++) {
        assert_int_equal(call(x, x->alice, "POST", x->t1, "/ca-certificates/rotate", NULL, &o),
                         201);
        json_decref(o);
    }
    assert_int_equal(call(x, x->alice, "POST", x->t1, "/ca-certificates/rotate", NULL, &o), 409);
    assert_non_null(strstr(str(json_object_get(o, "error"), "message"), "retired"));
    json_decref(o);
    pv_chain *ch = chain_of(x, x->t1);
    assert_int_equal(pv_chain_count(ch), TENANT_CA_MAX_CHAIN);
    pv_chain_free(ch);
    /* Paged list: one at a time, in creation order. */
    char token[256] = "", rest[512];
    size_t seen = 0;
    do {
        snprintf(rest, sizeof(rest), "/ca-certificates?limit=3%s%s",
                 token[0] != '\0' ? "&continuation_token=" : "", token);
        assert_int_equal(call(x, x->rita, "GET", x->t1, rest, NULL, &o), 200);
        seen += json_array_size(json_object_get(o, "items"));
        json_t *tok = json_object_get(o, "continuation_token");
        snprintf(token, sizeof(token), "%s", json_is_string(tok) ? json_string_value(tok) : "");
        json_decref(o);
    } while (token[0] != '\0' && seen < 100);
    assert_int_equal(seen, TENANT_CA_MAX_CHAIN);
    assert_int_equal(
        call(x, x->rita, "GET", x->t1, "/ca-certificates?continuation_token=cDE6eA", NULL, &o),
        400);
    json_decref(o);
    /* After the overlap, rotation works again. */
    pv_time_set_override(pv_time_now() + DAY + 1);
    assert_int_equal(call(x, x->alice, "POST", x->t1, "/ca-certificates/rotate", NULL, &o), 201);
    json_decref(o);
}

/* ---- proof of possession ---- */

static void test_proof(void **state)
{
    fixture *x = *state;
    char id[37], rest[128], body[256];
    json_t *o = NULL;
    int64_t now = pv_time_now();
    pv_time_set_override(now); /* one clock for the calls and the checks */

    active_id(x, x->t1, id);
    snprintf(rest, sizeof(rest), "/ca-certificates/%s", id);
    assert_int_equal(call(x, x->rita, "GET", x->t1, rest, NULL, &o), 200);
    X509 *ca = x509_of_pem(str(o, "certificate"));
    json_decref(o);

    snprintf(rest, sizeof(rest), "/ca-certificates/%s/proof", id);
    static const char code[] = "3F2A9C-ab-0123456789";
    snprintf(body, sizeof(body), "{\"verification_code\": \"%s\"}", code);
    assert_int_equal(call(x, x->carl, "POST", x->t1, rest, body, &o), 201);
    assert_string_equal(str(o, "verification_code"), code);
    assert_string_equal(str(o, "ca_certificate_id"), id);
    X509 *leaf = x509_of_pem(str(o, "certificate"));
    json_decref(o);
    /* Subject CN = the code, issued and signed by the CA, valid for an hour. */
    char cn[80] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn, sizeof(cn));
    assert_string_equal(cn, code);
    assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(leaf)), 1);
    assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(ca)), 0);
    assert_int_equal(X509_verify(leaf, X509_get0_pubkey(ca)), 1);
    assert_int_equal(X509_check_issued(ca, leaf), X509_V_OK);
    assert_false(X509_check_ca(leaf));
    int days = -1, secs = -1;
    assert_int_equal(
        ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf), X509_get0_notAfter(leaf)), 1);
    assert_int_equal(days, 0);
    assert_int_equal(secs, 3600 + 300);
    assert_int_equal(X509_cmp_time(X509_get0_notAfter(leaf), &(time_t){(time_t)(now + 3599)}), 1);
    /* The certified key is not the CA's. */
    assert_int_not_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), X509_get0_pubkey(ca)), 1);
    X509_free(leaf);
    X509_free(ca);
    /* Audited with the code. */
    assert_int_equal(count_rows(x,
                                "SELECT COUNT(*) FROM audit WHERE action = 'ca_certificate.proof' "
                                "AND target = $1",
                                id),
                     1);

    /* Bad codes and bodies: 400, and nothing written. */
    static const char *const bad[] = {
        "{\"verification_code\": \"\"}",
        "{\"verification_code\": \"has space\"}",
        "{\"verification_code\": \"a_b\"}",
        "{\"verification_code\": \"CN=x,O=y\"}",
        "{\"verification_code\": \"caf\\u00e9\"}",
        "{\"verification_code\": "
        "\"12345678901234567890123456789012345678901234567890123456789012345\"}",
        "{\"verification_code\": 42}",
        "{\"verification_code\": null}",
        "{}",
        "{\"verification_code\": \"A\", \"extra\": 1}",
        "[\"A\"]",
        "not json",
    };
    char *before = st_dump(&x->env);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int status = call(x, x->carl, "POST", x->t1, rest, bad[i], &o);
        if (status != 400) {
            fail_msg("%s: %d, expected 400", bad[i], status);
        }
        json_decref(o);
    }
    /* 64 characters is the most. */
    snprintf(body, sizeof(body), "{\"verification_code\": \"%064d\"}", 1);
    /* Readers may not; another tenant's CA is not found; a malformed ID is a 400. */
    assert_int_equal(call(x, x->rita, "POST", x->t1, rest, body, &o), 403);
    json_decref(o);
    char other[37];
    active_id(x, x->t2, other);
    snprintf(rest, sizeof(rest), "/ca-certificates/%s/proof", other);
    assert_int_equal(call(x, x->alice, "POST", x->t1, rest, body, &o), 404);
    json_decref(o);
    snprintf(rest, sizeof(rest), "/ca-certificates/%s", other);
    assert_int_equal(call(x, x->alice, "GET", x->t1, rest, NULL, &o), 404);
    json_decref(o);
    assert_int_equal(call(x, x->alice, "GET", x->t1, "/ca-certificates/ABC", NULL, &o), 400);
    json_decref(o);
    assert_int_equal(call(x, x->alice, "POST", x->t1, "/ca-certificates/xyz/proof", body, &o), 400);
    json_decref(o);
    char *after = st_dump(&x->env);
    assert_string_equal(before, after);
    free(before);
    free(after);
    snprintf(rest, sizeof(rest), "/ca-certificates/%s/proof", id);
    assert_int_equal(call(x, x->carl, "POST", x->t1, rest, body, &o), 201);
    json_decref(o);
}

/* ---- tenants made before tenant CAs ---- */

static void test_ensure_all(void **state)
{
    fixture *x = *state;
    pv_err e = {0};
    size_t made = 99;
    static const char old[] = "4a3e1f0c-2b1d-4e5f-8a9b-0c1d2e3f4a5b";
    uint8_t fp[PV_SHA256_LEN];
    json_t *o = NULL;

    st_operator(&x->env, "olga", fp);
    store_val p[] = {SV_TEXT(old), SV_INT(pv_time_now())};
    assert_int_equal(store_exec(x->env.db,
                                "INSERT INTO tenants (id, name, created_at, created_by) VALUES "
                                "($1, 'Old', $2, (SELECT id FROM operators WHERE name = 'olga'))",
                                p, 2, NULL, NULL, &e),
                     PV_OK);
    grant(x, old, "olga", "Administrator");
    assert_int_equal(call(x, fp, "GET", old, "/ca-certificates/chain", NULL, &o), 404);
    json_decref(o);
    assert_int_equal(tenant_ca_ensure_all(x->env.db, kek(x), pv_time_now(), &made, &e), PV_OK);
    assert_int_equal(made, 1);
    assert_int_equal(count_rows(x, "SELECT COUNT(*) FROM tenant_cas WHERE tenant_id = $1", old), 1);
    assert_int_equal(tenant_ca_ensure_all(x->env.db, kek(x), pv_time_now(), &made, &e), PV_OK);
    assert_int_equal(made, 0);
    assert_int_equal(call(x, fp, "GET", old, "/ca-certificates", NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 1);
    json_decref(o);
    /* Rotation of an unknown tenant. */
    assert_int_equal(tenant_ca_rotate(x->env.db, kek(x), "00000000-0000-4000-8000-000000000001",
                                      pv_time_now(), DAY, NULL, &e),
                     PV_ERR_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest once[] = {
        cmocka_unit_test(test_kek_file),
        cmocka_unit_test(test_seal_tamper),
    };
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ca_profile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issue_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ensure_all, setup, teardown),
    };
    int failed = cmocka_run_group_tests_name("tenant_ca", once, NULL, NULL);
    for (size_t i = 0; i < sizeof(st_backends) / sizeof(st_backends[0]); i++) {
        backend = st_backends[i];
        failed += cmocka_run_group_tests_name(backend, tests, NULL, NULL);
    }
    return failed;
}
