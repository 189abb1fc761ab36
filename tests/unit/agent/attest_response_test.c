/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device's reading of the service's answer (src/agent/attest.c): the strict CBOR
 * parser (docs/protocol/attestation.md §1.5) and the certificate checks. Responses are
 * built here from the spec with real certificates; each bad one must be refused with a
 * clear error: truncated, oversized, unknown keys, wrong types, missing or superfluous
 * certificates, certificates for another key, another device or from another CA.
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "attest_internal.h"
#include "pavise/cbor.h"
#include "pavise/platform.h"

#define DEVICE_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define OTHER_ID  "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define NOW       ((int64_t)1900000000)

typedef struct fx {
    pv_key *svc_ca_key, *tenant_key, *rogue_key, *tls, *other_tls;
    pv_cert *svc_ca, *tenant_ca, *rogue_ca;
    pv_cert *svc_cert, *client_cert;
    pv_buf *spki;
    pv_buf *out;
} fx;

static void must(int r, const pv_err *e)
{
    if (r != PV_OK) {
        fail_msg("%d: %s", r, pv_err_msg(e));
    }
}

static pv_cert *make_ca(const char *subject, pv_key **key)
{
    pv_err e;
    pv_cert *c = NULL;
    must(pv_key_generate(key, &e), &e);
    pv_cert_params p = {.subject = subject,
                        .not_before = NOW - 86400,
                        .not_after = NOW + 5 * 365 * 86400LL,
                        .is_ca = true,
                        .path_len = 0};
    must(pv_cert_create(&p, *key, NULL, NULL, &c, &e), &e);
    return c;
}

static pv_cert *make_leaf(const char *subject, const pv_key *key, const pv_cert *ca,
                          const pv_key *ca_key, int64_t hours)
{
    pv_err e;
    pv_cert *c = NULL;
    pv_cert_params p = {.subject = subject,
                        .not_before = NOW - 300,
                        .not_after = NOW + hours * 3600,
                        .client_auth = true,
                        .path_len = -1};
    must(pv_cert_create(&p, key, ca, ca_key, &c, &e), &e);
    return c;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    pv_err e;
    assert_non_null(f);
    pv_time_set_override(NOW);
    f->svc_ca = make_ca("CN=Pavise service CA", &f->svc_ca_key);
    f->tenant_ca = make_ca("CN=Pavise tenant 1", &f->tenant_key);
    f->rogue_ca = make_ca("CN=Rogue CA", &f->rogue_key);
    must(pv_key_generate(&f->tls, &e), &e);
    must(pv_key_generate(&f->other_tls, &e), &e);
    f->spki = pv_buf_new(512);
    assert_int_equal(pv_key_spki_der(f->tls, f->spki), PV_OK);
    f->svc_cert = make_leaf("CN=" DEVICE_ID ",OU=device", f->tls, f->svc_ca, f->svc_ca_key, 48);
    f->client_cert =
        make_leaf("CN=" DEVICE_ID ",O=tenant-1", f->tls, f->tenant_ca, f->tenant_key, 24);
    f->out = pv_buf_new(256 * 1024);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    pv_time_set_override(0);
    pv_key_free(f->svc_ca_key);
    pv_key_free(f->tenant_key);
    pv_key_free(f->rogue_key);
    pv_key_free(f->tls);
    pv_key_free(f->other_tls);
    pv_cert_free(f->svc_ca);
    pv_cert_free(f->tenant_ca);
    pv_cert_free(f->rogue_ca);
    pv_cert_free(f->svc_cert);
    pv_cert_free(f->client_cert);
    pv_buf_free(f->spki);
    pv_buf_free(f->out);
    free(f);
    return 0;
}

static void put_cert(pv_cbor_enc *enc, const pv_cert *c)
{
    const uint8_t *der;
    size_t len;
    pv_cert_der(c, &der, &len);
    pv_cbor_put_bytes(enc, der, len);
}

/* A response built from parts; NULL parts are left out. */
typedef struct parts {
    const char *result;
    const char *reason;
    const pv_cert *svc, *ca, *client;
    const pv_cert *chain[3];
    size_t n_chain;
    int extra_key; /* 0: none */
} parts;

static pv_buf *encode(fx *f, const parts *p)
{
    pv_cbor_enc enc;
    pv_buf_reset(f->out);
    pv_cbor_enc_init(&enc, f->out);
    size_t n = (p->result != NULL) + (p->reason != NULL) + (p->svc != NULL) + (p->ca != NULL) +
               (p->client != NULL) + (p->n_chain > 0) + (p->extra_key != 0);
    pv_cbor_put_map(&enc, n);
    if (p->result != NULL) {
        pv_cbor_put_uint(&enc, 1);
        pv_cbor_put_text(&enc, p->result);
    }
    if (p->reason != NULL) {
        pv_cbor_put_uint(&enc, 2);
        pv_cbor_put_text(&enc, p->reason);
    }
    if (p->svc != NULL) {
        pv_cbor_put_uint(&enc, 3);
        put_cert(&enc, p->svc);
    }
    if (p->ca != NULL) {
        pv_cbor_put_uint(&enc, 4);
        put_cert(&enc, p->ca);
    }
    if (p->client != NULL) {
        pv_cbor_put_uint(&enc, 5);
        put_cert(&enc, p->client);
    }
    if (p->n_chain > 0) {
        pv_cbor_put_uint(&enc, 6);
        pv_cbor_put_array(&enc, p->n_chain);
        for (size_t i = 0; i < p->n_chain; i++) {
            put_cert(&enc, p->chain[i]);
        }
    }
    if (p->extra_key != 0) {
        pv_cbor_put_int(&enc, p->extra_key);
        pv_cbor_put_uint(&enc, 0);
    }
    assert_int_equal(pv_cbor_enc_result(&enc), PV_OK);
    return f->out;
}

static parts passed(fx *f)
{
    parts p = {.result = "passed",
               .reason = "",
               .svc = f->svc_cert,
               .ca = f->svc_ca,
               .client = f->client_cert,
               .chain = {f->tenant_ca},
               .n_chain = 1};
    return p;
}

static int parse(long status, const pv_buf *b, attest_response *r, pv_err *e)
{
    pv_err_clear(e);
    return attest_parse_response(status, pv_buf_data(b), pv_buf_len(b), r, e);
}

static int check(fx *f, const attest_response *r, const char *id, pv_err *e)
{
    int64_t sna = -1, cna = -1;
    pv_err_clear(e);
    return attest_check_response(r, id, pv_buf_data(f->spki), pv_buf_len(f->spki), NOW, &sna, &cna,
                                 e);
}

static void expect_parse(fx *f, const parts *p, long status, int want, const char *msg)
{
    attest_response r;
    pv_err e;
    int got = parse(status, encode(f, p), &r, &e);
    if (got != want || (msg != NULL && strstr(pv_err_msg(&e), msg) == NULL)) {
        fail_msg("got %d (%s), want %d with '%s'", got, pv_err_msg(&e), want, msg ? msg : "");
    }
    if (got == PV_OK) {
        attest_response_free(&r);
    } else {
        assert_null(r.service_cert); /* nothing left behind */
    }
}

static void test_passed(void **state)
{
    fx *f = *state;
    attest_response r;
    pv_err e;
    parts p = passed(f);
    must(parse(200, encode(f, &p), &r, &e), &e);
    assert_int_equal(r.verdict, PV_ATTEST_PASSED);
    assert_string_equal(r.reason, "");
    assert_non_null(r.client_cert);
    assert_int_equal(pv_chain_count(r.client_chain), 1);
    int64_t sna = 0, cna = 0;
    must(attest_check_response(&r, DEVICE_ID, pv_buf_data(f->spki), pv_buf_len(f->spki), NOW, &sna,
                               &cna, &e),
         &e);
    assert_int_equal(sna, NOW + 48 * 3600);
    assert_int_equal(cna, NOW + 24 * 3600);
    attest_response_free(&r);
    attest_response_free(&r); /* twice is harmless */

    /* During a rotation the chain holds the old and the new CA. */
    p.chain[0] = f->rogue_ca;
    p.chain[1] = f->tenant_ca;
    p.n_chain = 2;
    must(parse(200, encode(f, &p), &r, &e), &e);
    must(check(f, &r, DEVICE_ID, &e), &e);
    attest_response_free(&r);
}

static void test_identity_only(void **state)
{
    fx *f = *state;
    attest_response r;
    pv_err e;
    parts p = {
        .result = "identity-only", .reason = "unclaimed", .svc = f->svc_cert, .ca = f->svc_ca};
    must(parse(200, encode(f, &p), &r, &e), &e);
    assert_int_equal(r.verdict, PV_ATTEST_IDENTITY_ONLY);
    assert_string_equal(r.reason, "unclaimed");
    assert_null(r.client_cert);
    int64_t sna = 0, cna = -1;
    must(attest_check_response(&r, DEVICE_ID, pv_buf_data(f->spki), pv_buf_len(f->spki), NOW, &sna,
                               &cna, &e),
         &e);
    assert_int_equal(cna, 0);
    attest_response_free(&r);

    /* A client certificate or chain has no place in identity-only. */
    p.client = f->client_cert;
    expect_parse(f, &p, 200, PV_ERR_FORMAT, "identity-only with a client certificate");
    p.client = NULL;
    p.chain[0] = f->tenant_ca;
    p.n_chain = 1;
    expect_parse(f, &p, 200, PV_ERR_FORMAT, "identity-only with a client certificate");
}

static void test_refusal(void **state)
{
    fx *f = *state;
    attest_response r;
    pv_err e;
    static const long statuses[] = {400, 403, 404, 413};
    parts p = {.result = "failed", .reason = "nonce-replayed"};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        must(parse(statuses[i], encode(f, &p), &r, &e), &e);
        assert_int_equal(r.verdict, PV_ATTEST_FAILED);
        assert_string_equal(r.reason, "nonce-replayed");
        assert_null(r.service_cert);
        attest_response_free(&r);
    }
    /* A refusal carries nothing else, and says "failed". */
    parts q = passed(f);
    q.result = "failed";
    expect_parse(f, &q, 403, PV_ERR_FORMAT, "key 3");
    p.result = "passed";
    expect_parse(f, &p, 403, PV_ERR_FORMAT, "not \"failed\"");
    /* A 200 cannot say failed. */
    p.result = "failed";
    expect_parse(f, &p, 200, PV_ERR_FORMAT, "not passed or identity-only");
    /* Statuses that carry no verdict. */
    expect_parse(f, &p, 500, PV_ERR_IO, "HTTP 500");
    expect_parse(f, &p, 201, PV_ERR_IO, "HTTP 201");
    expect_parse(f, &p, 302, PV_ERR_IO, NULL);
}

static void test_malformed(void **state)
{
    fx *f = *state;
    attest_response r;
    pv_err e;
    parts p = passed(f);
    pv_buf *b = encode(f, &p);
    size_t full = pv_buf_len(b);
    /* Truncated anywhere. */
    for (size_t n = 0; n < full; n += (n < 64 ? 1 : 97)) {
        pv_err_clear(&e);
        int got = attest_parse_response(200, pv_buf_data(b), n, &r, &e);
        if (got != PV_ERR_TRUNCATED && got != PV_ERR_FORMAT) {
            fail_msg("%zu of %zu bytes: %d (%s)", n, full, got, pv_err_msg(&e));
        }
        assert_null(r.service_cert);
    }
    /* Trailing bytes. */
    assert_int_equal(pv_buf_append_u8(b, 0), PV_OK);
    assert_int_equal(parse(200, b, &r, &e), PV_ERR_FORMAT);
    /* Oversized: refused before it is decoded. */
    uint8_t *big = calloc(1, PV_ATTEST_MAX_BODY + 1);
    assert_non_null(big);
    assert_int_equal(attest_parse_response(200, big, PV_ATTEST_MAX_BODY + 1, &r, &e),
                     PV_ERR_TOO_LARGE);
    free(big);
    /* Not a map. */
    static const uint8_t arr[] = {0x81, 0x01};
    assert_int_equal(attest_parse_response(200, arr, sizeof(arr), &r, &e), PV_ERR_FORMAT);
    /* Unknown keys. */
    p.extra_key = 7;
    expect_parse(f, &p, 200, PV_ERR_FORMAT, "7");
    p.extra_key = -1;
    expect_parse(f, &p, 200, PV_ERR_FORMAT, NULL);
    p.extra_key = 0;
    /* Missing parts. */
    parts q = passed(f);
    q.reason = NULL;
    expect_parse(f, &q, 200, PV_ERR_FORMAT, "reason");
    q = passed(f);
    q.svc = NULL;
    expect_parse(f, &q, 200, PV_ERR_FORMAT, "service certificate");
    q = passed(f);
    q.ca = NULL;
    expect_parse(f, &q, 200, PV_ERR_FORMAT, "service CA");
    q = passed(f);
    q.client = NULL;
    expect_parse(f, &q, 200, PV_ERR_FORMAT, "passed without a client certificate");
    q = passed(f);
    q.n_chain = 0;
    expect_parse(f, &q, 200, PV_ERR_FORMAT, "passed without a client certificate");
    q = passed(f);
    q.result = NULL;
    expect_parse(f, &q, 200, PV_ERR_FORMAT, "result");
    q = passed(f);
    q.result = "PASSED";
    expect_parse(f, &q, 200, PV_ERR_FORMAT, "result");
    /* A reason longer than the limit. */
    char longreason[PV_ATTEST_MAX_REASON + 2];
    memset(longreason, 'x', sizeof(longreason) - 1);
    longreason[sizeof(longreason) - 1] = '\0';
    q = passed(f);
    q.reason = longreason;
    expect_parse(f, &q, 200, PV_ERR_TOO_LARGE, "reason");
}

/* Wrong types, written by hand: {1: 1} and friends. */
static void test_wrong_types(void **state)
{
    fx *f = *state;
    attest_response r;
    pv_err e;
    const uint8_t *der;
    size_t len;
    pv_cert_der(f->svc_cert, &der, &len);
    pv_cbor_enc enc;

    /* result as a number */
    pv_buf_reset(f->out);
    pv_cbor_enc_init(&enc, f->out);
    pv_cbor_put_map(&enc, 2);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_text(&enc, "");
    assert_int_equal(parse(200, f->out, &r, &e), PV_ERR_FORMAT);

    /* the service certificate as text */
    pv_buf_reset(f->out);
    pv_cbor_enc_init(&enc, f->out);
    pv_cbor_put_map(&enc, 4);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_text(&enc, "identity-only");
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_text(&enc, "unclaimed");
    pv_cbor_put_uint(&enc, 3);
    pv_cbor_put_text(&enc, "not a certificate");
    pv_cbor_put_uint(&enc, 4);
    put_cert(&enc, f->svc_ca);
    assert_int_equal(parse(200, f->out, &r, &e), PV_ERR_FORMAT);
    assert_non_null(strstr(pv_err_msg(&e), "service certificate"));

    /* bytes that are not a certificate */
    pv_buf_reset(f->out);
    pv_cbor_enc_init(&enc, f->out);
    pv_cbor_put_map(&enc, 4);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_text(&enc, "identity-only");
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_text(&enc, "unclaimed");
    pv_cbor_put_uint(&enc, 3);
    pv_cbor_put_bytes(&enc, der, len - 1);
    pv_cbor_put_uint(&enc, 4);
    put_cert(&enc, f->svc_ca);
    assert_int_equal(parse(200, f->out, &r, &e), PV_ERR_FORMAT);

    /* the chain as one certificate instead of an array */
    pv_buf_reset(f->out);
    pv_cbor_enc_init(&enc, f->out);
    pv_cbor_put_map(&enc, 6);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_text(&enc, "passed");
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_text(&enc, "");
    pv_cbor_put_uint(&enc, 3);
    put_cert(&enc, f->svc_cert);
    pv_cbor_put_uint(&enc, 4);
    put_cert(&enc, f->svc_ca);
    pv_cbor_put_uint(&enc, 5);
    put_cert(&enc, f->client_cert);
    pv_cbor_put_uint(&enc, 6);
    put_cert(&enc, f->tenant_ca);
    assert_int_equal(parse(200, f->out, &r, &e), PV_ERR_FORMAT);
    assert_non_null(strstr(pv_err_msg(&e), "tenant CA chain"));

    /* a repeated key */
    pv_buf_reset(f->out);
    pv_cbor_enc_init(&enc, f->out);
    pv_cbor_put_map(&enc, 3);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_text(&enc, "failed");
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_text(&enc, "a");
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_text(&enc, "b");
    assert_int_equal(parse(403, f->out, &r, &e), PV_ERR_FORMAT);

    /* a reason that is bytes */
    pv_buf_reset(f->out);
    pv_cbor_enc_init(&enc, f->out);
    pv_cbor_put_map(&enc, 2);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_text(&enc, "failed");
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_bytes(&enc, "x", 1);
    assert_int_equal(parse(403, f->out, &r, &e), PV_ERR_FORMAT);
}

static void check_refused(fx *f, const parts *p, const char *id, int want, const char *msg)
{
    attest_response r;
    pv_err e;
    must(parse(200, encode(f, p), &r, &e), &e);
    int got = check(f, &r, id, &e);
    if (got != want || strstr(pv_err_msg(&e), msg) == NULL) {
        fail_msg("got %d (%s), want %d with '%s'", got, pv_err_msg(&e), want, msg);
    }
    attest_response_free(&r);
}

static void test_wrong_certificates(void **state)
{
    fx *f = *state;
    parts p = passed(f);
    /* Another device. */
    check_refused(f, &p, OTHER_ID, PV_ERR_UNTRUSTED, "not for this device");
    pv_cert *other_dev =
        make_leaf("CN=" OTHER_ID ",OU=device", f->tls, f->svc_ca, f->svc_ca_key, 48);
    p.svc = other_dev;
    check_refused(f, &p, DEVICE_ID, PV_ERR_UNTRUSTED, "service certificate is not for this device");
    pv_cert_free(other_dev);
    p = passed(f);
    pv_cert *no_cn = make_leaf("CN=device,OU=" DEVICE_ID, f->tls, f->tenant_ca, f->tenant_key, 24);
    p.client = no_cn;
    check_refused(f, &p, DEVICE_ID, PV_ERR_UNTRUSTED, "client certificate is not for this device");
    pv_cert_free(no_cn);
    /* A prefix of the ID is not the ID. */
    p = passed(f);
    pv_cert *prefix =
        make_leaf("CN=0123456789abcdef,OU=device", f->tls, f->svc_ca, f->svc_ca_key, 48);
    p.svc = prefix;
    check_refused(f, &p, DEVICE_ID, PV_ERR_UNTRUSTED, "not for this device");
    pv_cert_free(prefix);

    /* Another key than our CSR's. */
    p = passed(f);
    pv_cert *svc_other =
        make_leaf("CN=" DEVICE_ID ",OU=device", f->other_tls, f->svc_ca, f->svc_ca_key, 48);
    p.svc = svc_other;
    check_refused(f, &p, DEVICE_ID, PV_ERR_UNTRUSTED,
                  "service certificate is not for the new TLS key");
    pv_cert_free(svc_other);
    p = passed(f);
    pv_cert *cl_other =
        make_leaf("CN=" DEVICE_ID ",O=tenant-1", f->other_tls, f->tenant_ca, f->tenant_key, 24);
    p.client = cl_other;
    check_refused(f, &p, DEVICE_ID, PV_ERR_UNTRUSTED,
                  "client certificate is not for the new TLS key");
    pv_cert_free(cl_other);

    /* Not issued by the CA the response names. */
    p = passed(f);
    p.chain[0] = f->rogue_ca;
    check_refused(f, &p, DEVICE_ID, PV_ERR_UNTRUSTED, "client certificate");
    p = passed(f);
    p.ca = f->tenant_ca;
    check_refused(f, &p, DEVICE_ID, PV_ERR_UNTRUSTED, "service certificate");
    p = passed(f);
    pv_cert *rogue_client =
        make_leaf("CN=" DEVICE_ID ",O=tenant-1", f->tls, f->rogue_ca, f->rogue_key, 24);
    p.client = rogue_client;
    check_refused(f, &p, DEVICE_ID, PV_ERR_UNTRUSTED, "client certificate");
    pv_cert_free(rogue_client);

    /* Expired already (the device's clock says so). */
    p = passed(f);
    pv_cert *old = NULL;
    pv_err e;
    pv_cert_params cp = {.subject = "CN=" DEVICE_ID ",O=tenant-1",
                         .not_before = NOW - 2 * 86400,
                         .not_after = NOW - 86400,
                         .client_auth = true,
                         .path_len = -1};
    must(pv_cert_create(&cp, f->tls, f->tenant_ca, f->tenant_key, &old, &e), &e);
    p.client = old;
    check_refused(f, &p, DEVICE_ID, PV_ERR_EXPIRED, "client certificate");
    pv_cert_free(old);
}

/* Seeds for tests/fuzz/corpus/attest_response (first byte: the status index of the
 * harness, 0 = 200, 1 = 403). Written only when PV_ATTEST_RESPONSE_CORPUS_OUT is set. */
static void test_write_corpus(void **state)
{
    fx *f = *state;
    const char *dir = getenv("PV_ATTEST_RESPONSE_CORPUS_OUT");
    if (dir == NULL || dir[0] == '\0') {
        skip();
    }
    parts ok = passed(f);
    parts id = {
        .result = "identity-only", .reason = "unclaimed", .svc = f->svc_cert, .ca = f->svc_ca};
    parts refused = {.result = "failed", .reason = "nonce-replayed"};
    parts unknown = passed(f);
    unknown.extra_key = 7;
    struct {
        const char *name;
        const parts *p;
        uint8_t status;
    } seeds[] = {{"passed", &ok, 0},
                 {"identity-only", &id, 0},
                 {"refused", &refused, 1},
                 {"unknown-key", &unknown, 0}};
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        pv_buf *b = encode(f, seeds[i].p);
        uint8_t *data = malloc(pv_buf_len(b) + 1);
        assert_non_null(data);
        data[0] = seeds[i].status;
        memcpy(data + 1, pv_buf_data(b), pv_buf_len(b));
        char *path = tu_path(dir, seeds[i].name);
        tu_write(path, data, pv_buf_len(b) + 1, 0644);
        free(path);
        free(data);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_passed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_certificates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_corpus, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
