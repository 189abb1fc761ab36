/* SPDX-License-Identifier: Apache-2.0 */
/* Attestation through the API (api_attest.c), on SQLite and PostgreSQL: a software device
 * that passes, and every reason of attestation.md §4 reached by a crafted request, each
 * checked for its status, the recorded reason, and that nothing was issued on failure. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pavise/cbor.h"
#include "pavise/evidence.h"
#include "pavise/mfgrec.h"
#include "pavise/platform.h"
#include "pavise/rot.h"
#include "pavise/uuid.h"

#include "nonce.h"
#include "records.h"
#include "servertest.h"
#include "tenant_ca.h"

#define YEAR    ((int64_t)365 * 24 * 3600)
#define ATT_OID "2.25.102576691726157819091001912716521458267"

static const char *backend;

typedef struct device {
    char id[PV_DEVICE_ID_HEX_LEN + 1];
    pv_key *ak; /* attestation key */
} device;

typedef struct fixture {
    st_env env;
    char *fdir;
    pv_key *fkey;
    pv_chain *fchain;
    uint8_t alice[PV_SHA256_LEN];
    char t1[37], t2[37];
    device d, other;
    uint8_t os_digest[PV_SHA256_LEN], app_digest[PV_SHA256_LEN];
    uint8_t os_id[PV_UUID_LEN], os_comp[PV_UUID_LEN], app_id[PV_UUID_LEN], app_comp[PV_UUID_LEN];
} fixture;

/* A request being built: the evidence to sign, the keys, and the parts to send. */
typedef struct request {
    pv_evidence ev;
    pv_key *signer;   /* signs the evidence (the device's AK unless a test swaps it) */
    pv_key *tls;      /* the CSR's key */
    pv_key *bind_key; /* the key the binding names (tls unless swapped) */
    pv_rot_event events[4];
    pv_evidence_image images[4];
    bool no_csr;
} request;

/* ---- helpers ---- */

static void sql(fixture *x, const char *q, const store_val *p, size_t n)
{
    pv_err e = {0};
    if (store_exec(x->env.db, q, p, n, NULL, NULL, &e) != PV_OK) {
        fail_msg("%s: %s", q, pv_err_msg(&e));
    }
}

static int64_t count(fixture *x, const char *q)
{
    pv_err e = {0};
    store_rows *rows = NULL;
    assert_int_equal(store_exec(x->env.db, q, NULL, 0, &rows, NULL, &e), PV_OK);
    int64_t n = store_rows_int(rows, 0, 0);
    store_rows_free(rows);
    return n;
}

/* A device with a verified record; claimed into tenant when not NULL. */
static void device_new(fixture *x, device *d, const char *tenant)
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
    memset(r.trust_anchor, 0x5a, sizeof(r.trust_anchor));
    r.manufactured_at = 1700000000;
    pv_buf *b = pv_buf_new(PV_MFGREC_MAX_SIZE);
    assert_int_equal(pv_mfgrec_sign(&r, x->fkey, x->fchain, b, &e), PV_OK);
    if (records_import(x->env.db, pv_buf_data(b), pv_buf_len(b), pv_time_now(), got, &e) != PV_OK) {
        fail_msg("import: %s", pv_err_msg(&e));
    }
    memcpy(d->id, r.device_id, sizeof(d->id));
    d->ak = pv_key_ref(r.attestation_key);
    pv_buf_free(b);
    pv_mfgrec_free(&r);
    if (tenant != NULL) {
        store_val p[] = {SV_TEXT(d->id), SV_TEXT(tenant), SV_INT(pv_time_now())};
        sql(x,
            "INSERT INTO devices (id, tenant_id, development, cloud_test, claimed_at, "
            "updated_at) VALUES ($1, $2, 0, 0, $3, $3)",
            p, 3);
    }
}

static void image_add(fixture *x, const char *tenant, const char *kind, const uint8_t digest[32],
                      const uint8_t id[16], const uint8_t comp[16], bool dev)
{
    char hex[65], ids[37], comps[37];
    pv_hex_encode(digest, 32, hex, sizeof(hex));
    pv_uuid_format(id, ids);
    pv_uuid_format(comp, comps);
    store_val p[] = {SV_TEXT(ids),   SV_TEXT_OR_NULL(tenant),
                     SV_TEXT(comps), SV_TEXT(kind),
                     SV_TEXT(hex),   tenant == NULL ? SV_TEXT("Retail") : SV_NULL,
                     SV_INT(dev),    SV_INT(pv_time_now())};
    sql(x,
        "INSERT INTO images (id, tenant_id, component_id, kind, name, version, "
        "security_counter, manifest_sha256, os_feed, development, created_at) "
        "VALUES ($1, $2, $3, $4, 'img', '1.0', 1, $5, $6, $7, $8)",
        p, 8);
}

/* Calls the API with a raw body. *out (may be NULL) receives a CBOR response decoded. */
static int call(fixture *x, const uint8_t *fp, const char *method, const char *path,
                const uint8_t *body, size_t len, const char *ctype, cbor_item_t **out)
{
    api_request req;
    api_response resp;
    pv_err e = {0};
    memset(&req, 0, sizeof(req));
    req.method = method;
    req.path = path;
    req.body = body;
    req.body_len = len;
    req.content_type = ctype;
    if (fp != NULL) {
        req.has_client_cert = true;
        memcpy(req.client_fp, fp, PV_SHA256_LEN);
    }
    api_handle(&x->env.srv, x->env.db, &req, &resp);
    if (out != NULL) {
        *out = NULL;
        assert_string_equal(resp.content_type, "application/cbor");
        if (pv_cbor_decode((const uint8_t *)resp.body, resp.body_len, out, &e) != PV_OK) {
            fail_msg("response is not CBOR: %s", pv_err_msg(&e));
        }
    }
    free(resp.body);
    return resp.status;
}

static const char *text_of(cbor_item_t *map, int64_t key, char *buf, size_t size)
{
    char *s = NULL;
    pv_err e = {0};
    if (pv_cbor_get_text(pv_cbor_map_get(map, key), 256, &s, &e) != PV_OK) {
        return "(none)";
    }
    snprintf(buf, size, "%s", s);
    free(s);
    return buf;
}

static void challenge(fixture *x, const char *id, uint8_t nonce[PV_NONCE_LEN])
{
    pv_buf *b = pv_buf_new(256);
    pv_cbor_enc enc;
    cbor_item_t *out = NULL;
    const uint8_t *p = NULL;
    size_t n = 0;
    pv_err e = {0};
    pv_cbor_enc_init(&enc, b);
    pv_cbor_put_map(&enc, 1);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_text(&enc, id);
    assert_int_equal(call(x, NULL, "POST", "/v1/attestation/challenge", pv_buf_data(b),
                          pv_buf_len(b), "application/cbor", &out),
                     201);
    assert_int_equal(pv_cbor_get_bytes(pv_cbor_map_get(out, 1), &p, &n, &e), PV_OK);
    assert_int_equal(n, PV_NONCE_LEN);
    memcpy(nonce, p, n);
    uint64_t exp = 0;
    assert_int_equal(pv_cbor_get_uint(pv_cbor_map_get(out, 2), &exp, &e), PV_OK);
    assert_true((int64_t)exp > pv_time_now() && (int64_t)exp <= pv_time_now() + 300);
    cbor_decref(&out);
    pv_buf_free(b);
}

static void replay(const pv_rot_event *ev, size_t n, uint8_t out[32])
{
    uint8_t m[64];
    memset(out, 0, 32);
    for (size_t i = 0; i < n; i++) {
        memcpy(m, out, 32);
        memcpy(m + 32, ev[i].digest, 32);
        assert_int_equal(pv_sha256_digest(m, 64, out), PV_OK);
    }
}

/* The default request of device d: a fresh nonce, an OS image measured and claimed. */
static void request_init(fixture *x, const device *d, request *q)
{
    pv_err e = {0};
    memset(q, 0, sizeof(*q));
    challenge(x, d->id, q->ev.nonce);
    memcpy(q->ev.device_id, d->id, sizeof(q->ev.device_id));
    q->ev.issued_at = pv_time_now();
    q->ev.boot_count = 7;
    q->ev.rot_kind = PV_ROT_SOFTWARE;
    snprintf(q->events[0].type, sizeof(q->events[0].type), "boot-config");
    memset(q->events[0].digest, 0x11, 32);
    snprintf(q->events[1].type, sizeof(q->events[1].type), "os-image");
    memcpy(q->events[1].digest, x->os_digest, 32);
    q->ev.events = q->events;
    q->ev.n_events = 2;
    q->images[0].kind = PV_EVIDENCE_IMAGE_OS;
    memcpy(q->images[0].image_id, x->os_id, 16);
    memcpy(q->images[0].component_id, x->os_comp, 16);
    snprintf(q->images[0].version, sizeof(q->images[0].version), "1.0");
    memcpy(q->images[0].manifest_digest, x->os_digest, 32);
    q->ev.images = q->images;
    q->ev.n_images = 1;
    q->signer = pv_key_ref(d->ak);
    assert_int_equal(pv_key_generate(&q->tls, &e), PV_OK);
    q->bind_key = pv_key_ref(q->tls);
}

static void request_clear(request *q)
{
    pv_key_free(q->signer);
    pv_key_free(q->tls);
    pv_key_free(q->bind_key);
    /* ev's arrays are the request's own: nothing to free. */
}

static int sign_with(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[PV_ES256_SIG_LEN],
                     pv_err *e)
{
    return pv_key_sign_es256(ctx, msg, len, sig, e);
}

static void csr_der(const pv_key *k, pv_buf *out)
{
    pv_buf *pem = pv_buf_new(8192);
    pv_err e = {0};
    assert_int_equal(pv_csr_create(k, "CN=device", pem, &e), PV_OK);
    BIO *bio = BIO_new_mem_buf(pv_buf_data(pem), (int)pv_buf_len(pem));
    X509_REQ *req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    unsigned char *der = NULL;
    int n = i2d_X509_REQ(req, &der);
    assert_true(n > 0);
    assert_int_equal(pv_buf_append(out, der, (size_t)n), PV_OK);
    OPENSSL_free(der);
    X509_REQ_free(req);
    BIO_free(bio);
    pv_buf_free(pem);
}

/* Finishes the claims (measurement, binding unless preset), signs, and encodes the
 * request body. keep_measurement: the test set the measurement itself. */
static pv_buf *request_encode(request *q, bool keep_measurement, bool keep_binding)
{
    pv_err e = {0};
    pv_buf *ev = pv_buf_new(PV_EVIDENCE_MAX_SIZE), *spki = pv_buf_new(256);
    pv_buf *csr = pv_buf_new(8192), *body = pv_buf_new(128 * 1024);
    if (!keep_measurement) {
        replay(q->ev.events, q->ev.n_events, q->ev.measurement);
    }
    assert_int_equal(pv_key_spki_der(q->bind_key, spki), PV_OK);
    if (!keep_binding) {
        assert_int_equal(
            pv_evidence_binding(q->ev.nonce, pv_buf_data(spki), pv_buf_len(spki), q->ev.binding),
            PV_OK);
    }
    if (pv_evidence_sign(&q->ev, q->signer, sign_with, q->signer, ev, &e) != PV_OK) {
        fail_msg("evidence: %s", pv_err_msg(&e));
    }
    csr_der(q->tls, csr);
    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, body);
    pv_cbor_put_map(&enc, q->no_csr ? 1 : 2);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_bytes(&enc, pv_buf_data(ev), pv_buf_len(ev));
    if (!q->no_csr) {
        pv_cbor_put_uint(&enc, 4);
        pv_cbor_put_bytes(&enc, pv_buf_data(csr), pv_buf_len(csr));
    }
    assert_int_equal(pv_cbor_enc_result(&enc), PV_OK);
    pv_buf_free(ev);
    pv_buf_free(spki);
    pv_buf_free(csr);
    return body;
}

static int attest_body(fixture *x, const pv_buf *body, cbor_item_t **out)
{
    return call(x, NULL, "POST", "/v1/attestation", pv_buf_data(body), pv_buf_len(body),
                "application/cbor", out);
}

/* The last recorded attestation of a device: result and reason. */
static void last(fixture *x, const char *id, char result[32], char reason[64], bool *client)
{
    pv_err e = {0};
    store_rows *rows = NULL;
    store_val p[] = {SV_TEXT(id)};
    assert_int_equal(store_exec(x->env.db,
                                "SELECT result, reason, client_cert_serial FROM attestations "
                                "WHERE device_id = $1 ORDER BY seq DESC LIMIT 1",
                                p, 1, &rows, NULL, &e),
                     PV_OK);
    assert_int_equal(store_rows_count(rows), 1);
    snprintf(result, 32, "%s", store_rows_text(rows, 0, 0));
    snprintf(reason, 64, "%s", store_rows_text(rows, 0, 1));
    if (client != NULL) {
        *client = !store_rows_is_null(rows, 0, 2);
    }
    store_rows_free(rows);
}

typedef struct counts {
    int64_t att, svc, nonces;
} counts;

static counts counts_now(fixture *x)
{
    counts c = {count(x, "SELECT COUNT(*) FROM attestations"),
                count(x, "SELECT COUNT(*) FROM device_service_certs"),
                count(x, "SELECT COUNT(*) FROM used_nonces")};
    return c;
}

/* Sends q, expects status and a result/reason recorded, and what was written. */
static void expect(fixture *x, const device *d, const pv_buf *body, int status, const char *result,
                   const char *reason, bool spends)
{
    counts before = counts_now(x);
    cbor_item_t *out = NULL;
    char buf[64], rres[32], rreason[64];
    bool client = true;
    int got = attest_body(x, body, &out);
    if (got != status) {
        fail_msg("status %d, expected %d (%s)", got, status, text_of(out, 2, buf, sizeof(buf)));
    }
    assert_string_equal(text_of(out, 1, buf, sizeof(buf)), result);
    assert_string_equal(text_of(out, 2, buf, sizeof(buf)), reason);
    counts after = counts_now(x);
    if (d != NULL) {
        last(x, d->id, rres, rreason, &client);
        assert_string_equal(rres, result);
        assert_string_equal(rreason, reason);
        assert_false(client);
        assert_int_equal(after.att, before.att + 1);
    } else {
        assert_int_equal(after.att, before.att);
    }
    bool identity = strcmp(result, "identity-only") == 0;
    assert_int_equal(after.svc, before.svc + (identity ? 1 : 0));
    assert_int_equal(after.nonces, before.nonces + (spends ? 1 : 0));
    if (identity) {
        assert_non_null(pv_cbor_map_get(out, 3));
        assert_null(pv_cbor_map_get(out, 5));
    } else {
        assert_int_equal(cbor_map_size(out), 2);
    }
    cbor_decref(&out);
}

/* ---- setup ---- */

static int setup(void **state)
{
    fixture *x = calloc(1, sizeof(*x));
    pv_err e = {0};
    char fp[65];
    json_t *out = NULL;
    assert_non_null(x);
    st_setup(&x->env, backend);
    assert_int_equal(nonce_key_load(x->env.srv.cfg.data_dir, true, x->env.srv.nonce_key, &e),
                     PV_OK);
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
    const char *names[] = {"Alice Corp", "Other Corp"};
    char *ids[] = {x->t1, x->t2};
    for (int i = 0; i < 2; i++) {
        char body[64];
        snprintf(body, sizeof(body), "{\"name\": \"%s\"}", names[i]);
        assert_int_equal(st_call(&x->env, x->alice, "POST", "/v1/tenants", body, &out), 201);
        snprintf(ids[i], 37, "%s", json_string_value(json_object_get(out, "id")));
        json_decref(out);
    }
    device_new(x, &x->d, x->t1);
    device_new(x, &x->other, x->t1);
    assert_int_equal(pv_random_bytes(x->os_digest, 32), PV_OK);
    assert_int_equal(pv_random_bytes(x->app_digest, 32), PV_OK);
    assert_int_equal(pv_uuid_generate(x->os_id), PV_OK);
    assert_int_equal(pv_uuid_generate(x->os_comp), PV_OK);
    assert_int_equal(pv_uuid_generate(x->app_id), PV_OK);
    assert_int_equal(pv_uuid_generate(x->app_comp), PV_OK);
    image_add(x, NULL, "os", x->os_digest, x->os_id, x->os_comp, false);
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
    pv_key_free(x->d.ak);
    pv_key_free(x->other.ak);
    free(x);
    return 0;
}

/* ---- passing ---- */

static pv_cert *cert_of(cbor_item_t *out, int64_t key)
{
    const uint8_t *p = NULL;
    size_t n = 0;
    pv_err e = {0};
    pv_cert *c = NULL;
    assert_int_equal(pv_cbor_get_bytes(pv_cbor_map_get(out, key), &p, &n, &e), PV_OK);
    assert_int_equal(pv_cert_from_der(p, n, &c, &e), PV_OK);
    return c;
}

static void test_passes(void **state)
{
    fixture *x = *state;
    request q;
    cbor_item_t *out = NULL;
    char buf[128], subject[256], issuer[256], res[32], reason[64];
    pv_err e = {0};
    int64_t now = pv_time_now(), nb = 0, na = 0;

    request_init(x, &x->d, &q);
    pv_buf *body = request_encode(&q, false, false);
    counts before = counts_now(x);
    assert_int_equal(attest_body(x, body, &out), 200);
    assert_string_equal(text_of(out, 1, buf, sizeof(buf)), "passed");
    assert_string_equal(text_of(out, 2, buf, sizeof(buf)), "");
    counts after = counts_now(x);
    assert_int_equal(after.att, before.att + 1);
    assert_int_equal(after.svc, before.svc + 1);
    assert_int_equal(after.nonces, before.nonces + 1);
    bool client = false;
    last(x, x->d.id, res, reason, &client);
    assert_string_equal(res, "passed");
    assert_true(client);

    /* The service certificate: the server CA's, CN=<device>, OU=device, 48 hours, for
     * the CSR's key, recorded. */
    pv_cert *svc = cert_of(out, 3), *svc_ca = cert_of(out, 4), *cli = cert_of(out, 5);
    pv_key *k = NULL;
    pv_cert_subject(svc, subject, sizeof(subject));
    assert_non_null(strstr(subject, x->d.id));
    assert_non_null(strstr(subject, "OU=device"));
    assert_int_equal(pv_cert_validity(svc, &nb, &na), PV_OK);
    assert_true(na - now >= 48 * 3600 - 5 && na - now <= 48 * 3600 + 5);
    assert_int_equal(pv_cert_public_key(svc, &k, &e), PV_OK);
    assert_true(pv_key_equal_public(k, q.tls));
    pv_key_free(k);
    uint8_t a[32], b[32];
    pv_cert_fingerprint(svc_ca, a);
    pv_cert_fingerprint(ca_cert(x->env.srv.ca), b);
    assert_memory_equal(a, b, 32);

    /* The client certificate: the tenant CA's, CN=<device>, O=<tenant>, 24 hours
     * backdated 5 minutes, the attestation extension. */
    pv_cert_subject(cli, subject, sizeof(subject));
    pv_cert_issuer(cli, issuer, sizeof(issuer));
    assert_non_null(strstr(subject, x->d.id));
    assert_non_null(strstr(subject, x->t1));
    assert_non_null(strstr(issuer, "Pavise tenant"));
    assert_non_null(strstr(issuer, x->t1));
    assert_int_equal(pv_cert_validity(cli, &nb, &na), PV_OK);
    assert_true(now - nb >= 300 - 5 && now - nb <= 300 + 5);
    assert_true(na - now >= 24 * 3600 - 5 && na - now <= 24 * 3600 + 5);
    assert_int_equal(pv_cert_public_key(cli, &k, &e), PV_OK);
    assert_true(pv_key_equal_public(k, q.tls));
    pv_key_free(k);
    X509 *xc = pv_cert_x509(cli);
    ASN1_OBJECT *obj = OBJ_txt2obj(ATT_OID, 1);
    int idx = X509_get_ext_by_OBJ(xc, obj, -1);
    assert_true(idx >= 0);
    X509_EXTENSION *ext = X509_get_ext(xc, idx);
    assert_int_equal(X509_EXTENSION_get_critical(ext), 0);
    ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(ext);
    const uint8_t *d = ASN1_STRING_get0_data(v);
    int dl = ASN1_STRING_length(v);
    /* SEQUENCE { "software", "passed", FALSE, GeneralizedTime } */
    static const uint8_t head[] = {0x30, 0x26, 0x0c, 0x08, 's',  'o',  'f', 't', 'w',
                                   'a',  'r',  'e',  0x0c, 0x06, 'p',  'a', 's', 's',
                                   'e',  'd',  0x01, 0x01, 0x00, 0x18, 0x0f};
    assert_int_equal(dl, (int)sizeof(head) + 15);
    assert_memory_equal(d, head, sizeof(head));
    assert_int_equal(d[sizeof(head) + 14], 'Z');
    ASN1_OBJECT_free(obj);
    /* It verifies against the chain of key 6 (the tenant CA chain). */
    pv_chain *ch = NULL;
    assert_int_equal(pv_cbor_get_chain(pv_cbor_map_get(out, 6), &ch, &e), PV_OK);
    pv_trust *t = pv_trust_new();
    assert_int_equal(pv_trust_add(t, pv_chain_get(ch, 0)), PV_OK);
    pv_chain *leaf = pv_chain_new();
    assert_int_equal(pv_chain_add(leaf, cli), PV_OK);
    assert_int_equal(pv_chain_verify(leaf, t, now, 0, &e), PV_OK);
    pv_chain_free(leaf);
    pv_trust_free(t);
    pv_chain_free(ch);

    /* The device endpoint accepts the service certificate, and only that. */
    pv_cert_fingerprint(svc, a);
    cbor_item_t *mine = NULL;
    assert_int_equal(call(x, a, "GET", "/v1/device/attestation", NULL, 0, NULL, &mine), 200);
    assert_string_equal(text_of(mine, 1, buf, sizeof(buf)), "passed");
    cbor_decref(&mine);
    pv_cert_fingerprint(cli, b);
    assert_int_equal(call(x, b, "GET", "/v1/device/attestation", NULL, 0, NULL, &mine), 401);
    assert_string_equal(text_of(mine, 2, buf, sizeof(buf)), "unauthenticated");
    cbor_decref(&mine);
    assert_int_equal(call(x, x->alice, "GET", "/v1/device/attestation", NULL, 0, NULL, &mine), 401);
    cbor_decref(&mine);

    /* Replaying the same request: refused, nothing issued. */
    expect(x, &x->d, body, 403, "failed", "nonce-replayed", false);

    pv_cert_free(svc);
    pv_cert_free(svc_ca);
    pv_cert_free(cli);
    cbor_decref(&out);
    pv_buf_free(body);
    request_clear(&q);
}

/* An app image of the tenant and a development device with a development image. */
static void test_app_and_development(void **state)
{
    fixture *x = *state;
    request q;
    cbor_item_t *out = NULL;
    char buf[64];
    image_add(x, x->t1, "app", x->app_digest, x->app_id, x->app_comp, true);
    request_init(x, &x->d, &q);
    snprintf(q.events[2].type, sizeof(q.events[2].type), "app-image");
    memcpy(q.events[2].digest, x->app_digest, 32);
    q.ev.n_events = 3;
    q.images[1].kind = PV_EVIDENCE_IMAGE_APP;
    memcpy(q.images[1].image_id, x->app_id, 16);
    memcpy(q.images[1].component_id, x->app_comp, 16);
    snprintf(q.images[1].version, sizeof(q.images[1].version), "2.0");
    memcpy(q.images[1].manifest_digest, x->app_digest, 32);
    q.ev.n_images = 2;
    pv_buf *body = request_encode(&q, false, false);
    /* A development-signed image on a device without development. */
    expect(x, &x->d, body, 200, "identity-only", "development-not-allowed", true);
    pv_buf_free(body);
    request_clear(&q);

    store_val p[] = {SV_TEXT(x->d.id)};
    sql(x, "UPDATE devices SET development = 1 WHERE id = $1", p, 1);
    request_init(x, &x->d, &q);
    q.ev.development = true;
    memcpy(&q.events[2], &q.events[1], sizeof(q.events[2]));
    snprintf(q.events[2].type, sizeof(q.events[2].type), "app-image");
    memcpy(q.events[2].digest, x->app_digest, 32);
    q.ev.n_events = 3;
    q.images[1].kind = PV_EVIDENCE_IMAGE_APP;
    memcpy(q.images[1].image_id, x->app_id, 16);
    memcpy(q.images[1].component_id, x->app_comp, 16);
    snprintf(q.images[1].version, sizeof(q.images[1].version), "2.0");
    memcpy(q.images[1].manifest_digest, x->app_digest, 32);
    q.ev.n_images = 2;
    body = request_encode(&q, false, false);
    assert_int_equal(attest_body(x, body, &out), 200);
    assert_string_equal(text_of(out, 1, buf, sizeof(buf)), "passed");
    pv_cert *cli = cert_of(out, 5);
    ASN1_OBJECT *obj = OBJ_txt2obj(ATT_OID, 1);
    X509_EXTENSION *ext =
        X509_get_ext(pv_cert_x509(cli), X509_get_ext_by_OBJ(pv_cert_x509(cli), obj, -1));
    const uint8_t *d = ASN1_STRING_get0_data(X509_EXTENSION_get_data(ext));
    assert_int_equal(d[22], 0xff); /* development TRUE */
    ASN1_OBJECT_free(obj);
    pv_cert_free(cli);
    cbor_decref(&out);
    pv_buf_free(body);
    request_clear(&q);
}

/* ---- every reason ---- */

static void test_nonce_reasons(void **state)
{
    fixture *x = *state;
    request q;
    pv_err e = {0};
    int64_t exp = 0;

    /* Another device's nonce. */
    request_init(x, &x->d, &q);
    challenge(x, x->other.id, q.ev.nonce);
    pv_buf *body = request_encode(&q, false, false);
    expect(x, &x->d, body, 403, "failed", "nonce-other-device", false);
    pv_buf_free(body);
    /* A forged nonce (one bit of the MAC). */
    challenge(x, x->d.id, q.ev.nonce);
    q.ev.nonce[PV_NONCE_LEN - 1] ^= 1;
    body = request_encode(&q, false, false);
    expect(x, &x->d, body, 403, "failed", "nonce-other-device", false);
    pv_buf_free(body);
    /* An expired one: issued 10 minutes ago. */
    assert_int_equal(
        nonce_issue(x->env.srv.nonce_key, x->d.id, pv_time_now() - 600, q.ev.nonce, &exp, &e),
        PV_OK);
    body = request_encode(&q, false, false);
    expect(x, &x->d, body, 403, "failed", "nonce-expired", false);
    pv_buf_free(body);
    request_clear(&q);
}

static void test_identity_reasons(void **state)
{
    fixture *x = *state;
    request q;
    pv_buf *body;

    /* Evidence signed by another device's key. */
    request_init(x, &x->d, &q);
    pv_key_free(q.signer);
    q.signer = pv_key_ref(x->other.ak);
    body = request_encode(&q, false, false);
    expect(x, &x->d, body, 403, "failed", "bad-signature", true);
    pv_buf_free(body);
    request_clear(&q);

    /* The binding names another key than the CSR's (the TLS key swapped). */
    request_init(x, &x->d, &q);
    pv_key_free(q.bind_key);
    assert_int_equal(pv_key_generate(&q.bind_key, NULL), PV_OK);
    body = request_encode(&q, false, false);
    expect(x, &x->d, body, 403, "failed", "binding-mismatch", true);
    pv_buf_free(body);
    request_clear(&q);

    /* The root-of-trust kind claimed is not the record's. */
    request_init(x, &x->d, &q);
    q.ev.rot_kind = PV_ROT_TPM;
    body = request_encode(&q, false, false);
    expect(x, &x->d, body, 403, "failed", "rot-mismatch", true);
    pv_buf_free(body);
    request_clear(&q);

    /* The factory is no longer trusted. */
    request_init(x, &x->d, &q);
    body = request_encode(&q, false, false);
    sql(x, "DELETE FROM factories", NULL, 0);
    expect(x, &x->d, body, 403, "failed", "factory-untrusted", true);
    pv_buf_free(body);
    request_clear(&q);
}

/* The attestation key stored beside the record at import is the one checked; a row
 * from before that column (NULL) is decoded instead; a damaged one is a server error
 * that records and issues nothing. */
static void test_stored_key(void **state)
{
    fixture *x = *state;
    request q;
    pv_buf *body, *spki = pv_buf_new(128);
    cbor_item_t *out = NULL;
    char buf[64];
    store_val pid[] = {SV_TEXT(x->d.id)};

    assert_int_equal(count(x, "SELECT COUNT(*) FROM manufacturing_records "
                              "WHERE attestation_key IS NULL"),
                     0);
    /* Without the column's value: the record is decoded, and the device passes. */
    sql(x, "UPDATE manufacturing_records SET attestation_key = NULL WHERE device_id = $1", pid, 1);
    request_init(x, &x->d, &q);
    body = request_encode(&q, false, false);
    assert_int_equal(attest_body(x, body, &out), 200);
    assert_string_equal(text_of(out, 1, buf, sizeof(buf)), "passed");
    cbor_decref(&out);
    pv_buf_free(body);
    request_clear(&q);

    /* The column is what counts: with another device's key there, the device's own
     * evidence no longer verifies. */
    assert_int_equal(pv_key_spki_der(x->other.ak, spki), PV_OK);
    store_val pk[] = {SV_BLOB(pv_buf_data(spki), pv_buf_len(spki)), SV_TEXT(x->d.id)};
    sql(x, "UPDATE manufacturing_records SET attestation_key = $1 WHERE device_id = $2", pk, 2);
    request_init(x, &x->d, &q);
    body = request_encode(&q, false, false);
    expect(x, &x->d, body, 403, "failed", "bad-signature", true);
    pv_buf_free(body);
    request_clear(&q);

    /* Damaged: a 500, nothing recorded, issued or spent. */
    static const uint8_t junk[] = {0x30, 0x03, 0x02, 0x01, 0x00};
    store_val pj[] = {SV_BLOB(junk, sizeof(junk)), SV_TEXT(x->d.id)};
    sql(x, "UPDATE manufacturing_records SET attestation_key = $1 WHERE device_id = $2", pj, 2);
    request_init(x, &x->d, &q);
    body = request_encode(&q, false, false);
    counts before = counts_now(x);
    assert_int_equal(attest_body(x, body, &out), 500);
    counts after = counts_now(x);
    assert_memory_equal(&before, &after, sizeof(before));
    if (out != NULL) {
        cbor_decref(&out);
    }
    pv_buf_free(body);
    request_clear(&q);
    pv_buf_free(spki);
}

/* A quote with a signature that is not 64 bytes is a malformed request (400), whatever
 * the device's kind. (bad-quote itself needs a TPM record: not covered here.) */
static void test_quote_malformed(void **state)
{
    fixture *x = *state;
    request q;
    request_init(x, &x->d, &q);
    pv_buf *ev = request_encode(&q, false, false);
    cbor_item_t *m = NULL;
    pv_err e = {0};
    assert_int_equal(pv_cbor_decode(pv_buf_data(ev), pv_buf_len(ev), &m, &e), PV_OK);
    const uint8_t *evb = NULL, *csr = NULL;
    size_t evn = 0, csrn = 0;
    assert_int_equal(pv_cbor_get_bytes(pv_cbor_map_get(m, 1), &evb, &evn, &e), PV_OK);
    assert_int_equal(pv_cbor_get_bytes(pv_cbor_map_get(m, 4), &csr, &csrn, &e), PV_OK);
    pv_buf *body = pv_buf_new(128 * 1024);
    pv_cbor_enc enc;
    uint8_t quote[64], sig[63];
    memset(quote, 0xab, sizeof(quote));
    memset(sig, 0xcd, sizeof(sig));
    pv_cbor_enc_init(&enc, body);
    pv_cbor_put_map(&enc, 4);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_bytes(&enc, evb, evn);
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_bytes(&enc, quote, sizeof(quote));
    pv_cbor_put_uint(&enc, 3);
    pv_cbor_put_bytes(&enc, sig, sizeof(sig)); /* 63 bytes: malformed */
    pv_cbor_put_uint(&enc, 4);
    pv_cbor_put_bytes(&enc, csr, csrn);
    expect(x, &x->d, body, 400, "failed", "bad-request", false);
    cbor_decref(&m);
    pv_buf_free(body);
    pv_buf_free(ev);
    request_clear(&q);
}

static void test_policy_reasons(void **state)
{
    fixture *x = *state;
    request q;
    pv_buf *body;
    device u;

    /* Unclaimed: identity-only. */
    device_new(x, &u, NULL);
    request_init(x, &u, &q);
    body = request_encode(&q, false, false);
    expect(x, &u, body, 200, "identity-only", "unclaimed", true);
    pv_buf_free(body);
    request_clear(&q);
    pv_key_free(u.ak);

    /* An edited event log: an event changed after the measurement. */
    request_init(x, &x->d, &q);
    replay(q.ev.events, q.ev.n_events, q.ev.measurement);
    q.events[0].digest[0] ^= 1;
    body = request_encode(&q, true, false);
    expect(x, &x->d, body, 200, "identity-only", "event-log-mismatch", true);
    pv_buf_free(body);
    request_clear(&q);

    /* No OS image measured. */
    request_init(x, &x->d, &q);
    q.ev.n_events = 1;
    q.ev.n_images = 0;
    body = request_encode(&q, false, false);
    expect(x, &x->d, body, 200, "identity-only", "no-os-image", true);
    pv_buf_free(body);
    request_clear(&q);

    /* An unknown OS image. */
    request_init(x, &x->d, &q);
    q.events[1].digest[5] ^= 1;
    q.images[0].manifest_digest[5] ^= 1;
    body = request_encode(&q, false, false);
    expect(x, &x->d, body, 200, "identity-only", "unknown-image", true);
    pv_buf_free(body);
    request_clear(&q);

    /* The images claim disagrees: another image ID; then missing; then twice. */
    request_init(x, &x->d, &q);
    q.images[0].image_id[0] ^= 1;
    body = request_encode(&q, false, false);
    expect(x, &x->d, body, 200, "identity-only", "image-mismatch", true);
    pv_buf_free(body);
    request_clear(&q);
    request_init(x, &x->d, &q);
    q.ev.n_images = 0;
    body = request_encode(&q, false, false);
    expect(x, &x->d, body, 200, "identity-only", "image-mismatch", true);
    pv_buf_free(body);
    request_clear(&q);
    request_init(x, &x->d, &q);
    q.images[1] = q.images[0];
    q.ev.n_images = 2;
    body = request_encode(&q, false, false);
    expect(x, &x->d, body, 200, "identity-only", "image-mismatch", true);
    pv_buf_free(body);
    request_clear(&q);
    /* An app image of another tenant is unknown here. */
    image_add(x, x->t2, "app", x->app_digest, x->app_id, x->app_comp, false);
    request_init(x, &x->d, &q);
    snprintf(q.events[2].type, sizeof(q.events[2].type), "app-image");
    memcpy(q.events[2].digest, x->app_digest, 32);
    q.ev.n_events = 3;
    body = request_encode(&q, false, false);
    expect(x, &x->d, body, 200, "identity-only", "unknown-image", true);
    pv_buf_free(body);
    request_clear(&q);

    /* Development mode on a device the service did not enable it for. */
    request_init(x, &x->d, &q);
    q.ev.development = true;
    body = request_encode(&q, false, false);
    expect(x, &x->d, body, 200, "identity-only", "development-not-allowed", true);
    pv_buf_free(body);
    request_clear(&q);

    /* A revoked OS image (last: it spoils the image for the rest of the test). */
    char ids[37];
    pv_uuid_format(x->os_id, ids);
    store_val p[] = {SV_TEXT(ids), SV_INT(pv_time_now())};
    sql(x, "UPDATE images SET revoked_at = $2 WHERE id = $1", p, 2);
    request_init(x, &x->d, &q);
    body = request_encode(&q, false, false);
    expect(x, &x->d, body, 200, "identity-only", "revoked-image", true);
    pv_buf_free(body);
    request_clear(&q);
}

static void test_malformed(void **state)
{
    fixture *x = *state;
    request q;
    cbor_item_t *out = NULL;
    char buf[64];
    counts before = counts_now(x);
    static const uint8_t garbage[] = {0xff, 0x00, 0x13, 0x37};
    static const uint8_t not_map[] = {0x83, 0x01, 0x02, 0x03};
    static const uint8_t unknown_key[] = {0xa1, 0x09, 0x41, 0x00};
    static const uint8_t truncated[] = {0xa1, 0x01, 0x58, 0x40, 0x00};

    const struct {
        const uint8_t *p;
        size_t n;
    } bad[] = {{garbage, sizeof(garbage)},
               {not_map, sizeof(not_map)},
               {unknown_key, sizeof(unknown_key)},
               {truncated, sizeof(truncated)},
               {NULL, 0}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            call(x, NULL, "POST", "/v1/attestation", bad[i].p, bad[i].n, "application/cbor", &out),
            400);
        assert_string_equal(text_of(out, 1, buf, sizeof(buf)), "failed");
        assert_string_equal(text_of(out, 2, buf, sizeof(buf)), "bad-request");
        cbor_decref(&out);
    }
    /* Oversized: 413; the wrong media type: 415. */
    size_t big = 65 * 1024;
    uint8_t *b = calloc(1, big);
    assert_int_equal(call(x, NULL, "POST", "/v1/attestation", b, big, "application/cbor", &out),
                     413);
    assert_string_equal(text_of(out, 2, buf, sizeof(buf)), "payload-too-large");
    cbor_decref(&out);
    free(b);
    assert_int_equal(call(x, NULL, "POST", "/v1/attestation", garbage, sizeof(garbage),
                          "application/json", &out),
                     415);
    assert_string_equal(text_of(out, 2, buf, sizeof(buf)), "unsupported-media-type");
    cbor_decref(&out);
    counts after = counts_now(x);
    assert_memory_equal(&before, &after, sizeof(before));

    /* Evidence that decodes, with no CSR: bad-request, recorded for the device. */
    request_init(x, &x->d, &q);
    q.no_csr = true;
    pv_buf *body = request_encode(&q, false, false);
    expect(x, &x->d, body, 400, "failed", "bad-request", false);
    pv_buf_free(body);
    request_clear(&q);

    /* The challenge: unknown device 404, malformed 400. */
    pv_buf *cb = pv_buf_new(256);
    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, cb);
    pv_cbor_put_map(&enc, 1);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_text(&enc, "00000000000000000000000000000000000000000000000000000000000000aa");
    assert_int_equal(call(x, NULL, "POST", "/v1/attestation/challenge", pv_buf_data(cb),
                          pv_buf_len(cb), "application/cbor", &out),
                     404);
    assert_string_equal(text_of(out, 2, buf, sizeof(buf)), "unknown-device");
    cbor_decref(&out);
    assert_int_equal(call(x, NULL, "POST", "/v1/attestation/challenge", not_map, sizeof(not_map),
                          "application/cbor", &out),
                     400);
    cbor_decref(&out);
    pv_buf_free(cb);
}

/* The device show prints the last attestation. */
static void test_device_show(void **state)
{
    fixture *x = *state;
    request q;
    json_t *out = NULL;
    char path[256];
    request_init(x, &x->d, &q);
    pv_buf *body = request_encode(&q, false, false);
    assert_int_equal(attest_body(x, body, NULL), 200);
    snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s", x->t1, x->d.id);
    assert_int_equal(st_call(&x->env, x->alice, "GET", path, NULL, &out), 200);
    json_t *la = json_object_get(out, "last_attestation");
    assert_string_equal(json_string_value(json_object_get(la, "result")), "passed");
    assert_string_equal(json_string_value(json_object_get(la, "reason")), "");
    assert_string_equal(json_string_value(json_object_get(la, "rot_kind")), "software");
    assert_non_null(json_string_value(json_object_get(la, "at")));
    assert_non_null(json_string_value(json_object_get(la, "client_cert_not_after")));
    json_decref(out);
    snprintf(path, sizeof(path), "/v1/tenants/%s/devices/%s", x->t1, x->other.id);
    assert_int_equal(st_call(&x->env, x->alice, "GET", path, NULL, &out), 200);
    assert_true(json_is_null(json_object_get(out, "last_attestation")));
    json_decref(out);
    pv_buf_free(body);
    request_clear(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_passes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_app_and_development, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nonce_reasons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_reasons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stored_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quote_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_reasons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_show, setup, teardown),
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof(st_backends) / sizeof(st_backends[0]); i++) {
        backend = st_backends[i];
        failed += cmocka_run_group_tests_name(backend, tests, NULL, NULL);
    }
    return failed;
}
