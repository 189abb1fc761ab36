/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The enrollment proof end to end: two real swtpms (two devices, each with its own TPM
 * vendor CA), provisioned through pv_rot; the verifier side is pv_enroll_*.
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <tss2/tss2_mu.h>

#include "pavise/enroll.h"
#include "pavise/mfgrec.h"
#include "pavise/platform.h"
#include "pavise/rot.h"

#define YEAR ((int64_t)365 * 24 * 3600)

/* One device: a swtpm, its vendor CA, and what it presents. */
typedef struct device {
    char *tpm_dir;
    char *state_dir;
    char *tcti;
    pv_rot *rot;
    pv_buf *ek_cert;
    pv_buf *ak_public;
    pv_key *ak;
    pv_key *identity;
    pv_trust *vendor_root;         /* DIR/ca/swtpm-localca-rootca-cert.pem */
    pv_chain *vendor_intermediate; /* DIR/ca/issuercert.pem */
} device;

typedef struct fixture {
    char *dir;
    int64_t now;
    device dev[2];
} fixture;

static void device_start(fixture *f, device *d, const char *name)
{
    pv_err e = {0};
    char *base = tu_path(f->dir, name);
    assert_int_equal(mkdir(base, 0700), 0);
    d->tpm_dir = tu_path(base, "tpm");
    d->state_dir = tu_path(base, "state");
    assert_int_equal(mkdir(d->state_dir, 0700), 0);
    free(base);
    d->tcti = tu_swtpm_start(d->tpm_dir);

    pv_rot_config cfg = {.kind = PV_ROT_TPM, .state_dir = d->state_dir, .tcti = d->tcti};
    if (pv_rot_provision(&cfg, &d->rot, &e) != PV_OK) {
        fail_msg("provision %s: %s", name, pv_err_msg(&e));
    }
    d->ek_cert = pv_buf_new(PV_ENROLL_MAX_EK_CERT);
    d->ak_public = pv_buf_new(PV_ENROLL_MAX_TPM_PUBLIC);
    assert_non_null(d->ek_cert);
    assert_non_null(d->ak_public);
    if (pv_rot_ek_certificate(d->rot, d->ek_cert, &e) != PV_OK ||
        pv_rot_attestation_key_tpm_public(d->rot, d->ak_public, &e) != PV_OK ||
        pv_rot_attestation_key(d->rot, &d->ak, &e) != PV_OK ||
        pv_rot_identity_key(d->rot, &d->identity, &e) != PV_OK) {
        fail_msg("%s: %s", name, pv_err_msg(&e));
    }
    char *root = tu_path(d->tpm_dir, "ca/swtpm-localca-rootca-cert.pem");
    char *inter = tu_path(d->tpm_dir, "ca/issuercert.pem");
    assert_int_equal(pv_trust_load_pem(root, &d->vendor_root, &e), PV_OK);
    assert_int_equal(pv_chain_load_pem(inter, &d->vendor_intermediate, &e), PV_OK);
    free(root);
    free(inter);
}

static void device_stop(device *d)
{
    pv_rot_close(d->rot);
    if (d->tpm_dir != NULL) {
        tu_swtpm_stop(d->tpm_dir);
    }
    pv_buf_free(d->ek_cert);
    pv_buf_free(d->ak_public);
    pv_key_free(d->ak);
    pv_key_free(d->identity);
    pv_trust_free(d->vendor_root);
    pv_chain_free(d->vendor_intermediate);
    free(d->tpm_dir);
    free(d->state_dir);
    free(d->tcti);
}

/* Both swtpms are started once for the group: manufacturing one takes seconds. */
static int group_setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->dir = tu_mkdtemp("enroll");
    device_start(f, &f->dev[0], "a");
    device_start(f, &f->dev[1], "b");
    /* After manufacture: swtpm_localca issues EK certificates valid from that second. */
    f->now = pv_time_now();
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    fixture *f = *state;
    device_stop(&f->dev[0]);
    device_stop(&f->dev[1]);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* What device d presents honestly. */
static pv_enroll_request request_of(const device *d)
{
    pv_enroll_request req = {
        .ek_cert_der = pv_buf_data(d->ek_cert),
        .ek_cert_len = pv_buf_len(d->ek_cert),
        .ak_tpm_public = pv_buf_data(d->ak_public),
        .ak_tpm_public_len = pv_buf_len(d->ak_public),
        .attestation_key = d->ak,
    };
    return req;
}

static pv_enroll_challenge *challenge_ok(const fixture *f, const pv_enroll_request *req,
                                         const device *vendor)
{
    pv_enroll_challenge *c = NULL;
    pv_err e = {0};
    if (pv_enroll_challenge_create(req, vendor->vendor_intermediate, vendor->vendor_root, f->now,
                                   &c, &e) != PV_OK) {
        fail_msg("challenge: %s", pv_err_msg(&e));
    }
    return c;
}

static void expect_create(const fixture *f, const pv_enroll_request *req, const pv_chain *inter,
                          const pv_trust *trust, int64_t at, int code, const char *needle)
{
    pv_enroll_challenge *c = (pv_enroll_challenge *)1;
    pv_err e = {0};
    int r = pv_enroll_challenge_create(req, inter, trust, at, &c, &e);
    if (r != code || (needle != NULL && strstr(pv_err_msg(&e), needle) == NULL)) {
        fail_msg("expected %d with '%s', got %d: %s", code, needle != NULL ? needle : "", r,
                 pv_err_msg(&e));
    }
    assert_null(c);
}

/* Device d answers challenge c with its TPM; returns pv_rot_activate_credential's code. */
static int activate(device *d, const pv_enroll_challenge *c, pv_buf *answer, pv_err *e)
{
    const uint8_t *blob, *secret;
    size_t blob_len, secret_len;
    pv_enroll_challenge_credential_blob(c, &blob, &blob_len);
    pv_enroll_challenge_encrypted_secret(c, &secret, &secret_len);
    return pv_rot_activate_credential(d->rot, blob, blob_len, secret, secret_len, answer, e);
}

static void test_proof(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 2; i++) {
        device *d = &f->dev[i];
        pv_enroll_request req = request_of(d);
        pv_enroll_challenge *c = challenge_ok(f, &req, d);
        pv_buf *answer = pv_buf_new(64);
        pv_err e = {0};
        if (activate(d, c, answer, &e) != PV_OK) {
            fail_msg("activate: %s", pv_err_msg(&e));
        }
        assert_int_equal(pv_buf_len(answer), PV_ENROLL_ANSWER_LEN);
        /* the name the credential is bound to is the AK's */
        uint8_t name[PV_ENROLL_AK_NAME_LEN];
        assert_int_equal(
            pv_enroll_check_ak_public(req.ak_tpm_public, req.ak_tpm_public_len, d->ak, name, &e),
            PV_OK);
        assert_memory_equal(pv_enroll_challenge_ak_name(c), name, sizeof(name));
        assert_int_equal(name[0], 0x00);
        assert_int_equal(name[1], 0x0b);
        if (pv_enroll_challenge_check(c, pv_buf_data(answer), pv_buf_len(answer), &e) != PV_OK) {
            fail_msg("check: %s", pv_err_msg(&e));
        }
        /* single use: the same right answer is refused the second time */
        assert_int_equal(pv_enroll_challenge_check(c, pv_buf_data(answer), pv_buf_len(answer), &e),
                         PV_ERR_INVALID_ARG);
        assert_non_null(strstr(e.msg, "already checked"));
        pv_enroll_challenge_free(c);
        pv_buf_free(answer);
    }
    pv_enroll_challenge_free(NULL);
}

/* Two challenges for the same request differ: every one has a fresh seed and credential. */
static void test_fresh(void **state)
{
    fixture *f = *state;
    pv_enroll_request req = request_of(&f->dev[0]);
    pv_enroll_challenge *a = challenge_ok(f, &req, &f->dev[0]);
    pv_enroll_challenge *b = challenge_ok(f, &req, &f->dev[0]);
    const uint8_t *pa, *pb;
    size_t na, nb;
    pv_enroll_challenge_credential_blob(a, &pa, &na);
    pv_enroll_challenge_credential_blob(b, &pb, &nb);
    assert_int_equal(na, nb);
    assert_memory_not_equal(pa, pb, na);
    /* TPM2B_ID_OBJECT: size 68 = TPM2B_DIGEST(HMAC) 34 + encIdentity 34 */
    assert_int_equal(na, 2 + 68);
    assert_int_equal(pa[0] * 256 + pa[1], 68);
    assert_int_equal(pa[2] * 256 + pa[3], 32);
    pv_enroll_challenge_encrypted_secret(a, &pa, &na);
    assert_int_equal(na, 2 + 256); /* an RSA 2048 ciphertext */
    pv_enroll_challenge_free(a);
    pv_enroll_challenge_free(b);
}

/* Device B's AK presented with device A's EK certificate: a challenge is made (the parts
 * are each valid), but neither TPM can answer it, and a guess fails. */
static void test_ak_of_another_tpm(void **state)
{
    fixture *f = *state;
    device *a = &f->dev[0], *b = &f->dev[1];
    pv_enroll_request req = request_of(b);
    req.ek_cert_der = pv_buf_data(a->ek_cert);
    req.ek_cert_len = pv_buf_len(a->ek_cert);
    pv_enroll_challenge *c = challenge_ok(f, &req, a);
    pv_buf *answer = pv_buf_new(64);
    pv_err e = {0};
    /* B holds the AK but not the EK: it cannot recover the seed. libtpms before 0.10
     * answers a seed that does not decrypt with TPM_RC_FAILURE rather than TPM_RC_VALUE
     * (libtpms pull request 445), which the backend reports as PV_ERR_ROT; either way
     * nothing is recovered. */
    int r = activate(b, c, answer, &e);
    if (r != PV_ERR_SIGNATURE && r != PV_ERR_ROT) {
        fail_msg("device B: expected a refusal, got %d: %s", r, pv_err_msg(&e));
    }
    /* A holds the EK but its AK has another name: the integrity check fails. */
    r = activate(a, c, answer, &e);
    if (r != PV_ERR_SIGNATURE) {
        fail_msg("device A: expected PV_ERR_SIGNATURE, got %d: %s", r, pv_err_msg(&e));
    }
    assert_int_equal(pv_buf_len(answer), 0);
    uint8_t guess[PV_ENROLL_ANSWER_LEN] = {0};
    assert_int_equal(pv_enroll_challenge_check(c, guess, sizeof(guess), &e), PV_ERR_SIGNATURE);
    pv_enroll_challenge_free(c);

    /* The refusal did not put B's TPM out of service: B still proves itself. */
    req = request_of(b);
    c = challenge_ok(f, &req, b);
    if (activate(b, c, answer, &e) != PV_OK) {
        fail_msg("device B after the refusal: %s", pv_err_msg(&e));
    }
    assert_int_equal(pv_enroll_challenge_check(c, pv_buf_data(answer), pv_buf_len(answer), &e),
                     PV_OK);
    pv_enroll_challenge_free(c);
    pv_buf_free(answer);
}

static void test_untrusted_ek(void **state)
{
    fixture *f = *state;
    device *a = &f->dev[0], *b = &f->dev[1];
    pv_enroll_request req = request_of(a);
    /* another vendor's CA (device B's swtpm_localca) */
    expect_create(f, &req, b->vendor_intermediate, b->vendor_root, f->now, PV_ERR_UNTRUSTED,
                  "EK certificate");
    expect_create(f, &req, a->vendor_intermediate, b->vendor_root, f->now, PV_ERR_UNTRUSTED, NULL);
    /* an unrelated CA */
    pv_trust *other = NULL;
    char *dir = tu_path(f->dir, "other-ca");
    assert_int_equal(mkdir(dir, 0700), 0);
    tu_make_chain(dir, f->now - 3600, f->now + YEAR, NULL, NULL, &other);
    expect_create(f, &req, a->vendor_intermediate, other, f->now, PV_ERR_UNTRUSTED, NULL);
    pv_trust_free(other);
    free(dir);
    /* the right root, without the intermediate that links to it */
    expect_create(f, &req, NULL, a->vendor_root, f->now, PV_ERR_UNTRUSTED, NULL);
    /* before the EK certificate was issued */
    expect_create(f, &req, a->vendor_intermediate, a->vendor_root, f->now - 10 * YEAR,
                  PV_ERR_EXPIRED, NULL);
    /* no trust at all */
    expect_create(f, &req, a->vendor_intermediate, NULL, f->now, PV_ERR_INVALID_ARG, NULL);
}

/* A P-256 "EK" certificate from a trusted CA is not an RSA 2048 EK. */
static void test_non_rsa_ek(void **state)
{
    fixture *f = *state;
    pv_key *ca_key = NULL, *leaf_key = NULL;
    pv_cert *ca = NULL, *leaf = NULL;
    pv_trust *trust = pv_trust_new();
    pv_err e = {0};
    assert_int_equal(pv_key_generate(&ca_key, &e), PV_OK);
    assert_int_equal(pv_key_generate(&leaf_key, &e), PV_OK);
    pv_cert_params cp = {.subject = "CN=Vendor CA",
                         .not_before = f->now - 3600,
                         .not_after = f->now + YEAR,
                         .is_ca = true,
                         .path_len = -1};
    pv_cert_params lp = {
        .subject = "CN=EK", .not_before = f->now - 60, .not_after = f->now + YEAR, .path_len = -1};
    assert_int_equal(pv_cert_create(&cp, ca_key, NULL, NULL, &ca, &e), PV_OK);
    assert_int_equal(pv_cert_create(&lp, leaf_key, ca, ca_key, &leaf, &e), PV_OK);
    assert_int_equal(pv_trust_add(trust, ca), PV_OK);
    pv_enroll_request req = request_of(&f->dev[0]);
    pv_cert_der(leaf, &req.ek_cert_der, &req.ek_cert_len);
    expect_create(f, &req, NULL, trust, f->now, PV_ERR_UNSUPPORTED, "RSA 2048");
    pv_trust_free(trust);
    pv_cert_free(leaf);
    pv_cert_free(ca);
    pv_key_free(leaf_key);
    pv_key_free(ca_key);
}

/* Sets or clears attribute bits of a marshaled TPMT_PUBLIC. */
static size_t with_attributes(const pv_buf *pub, TPMA_OBJECT set, TPMA_OBJECT clear, uint8_t *out,
                              size_t max)
{
    TPMT_PUBLIC p;
    size_t off = 0;
    assert_int_equal(Tss2_MU_TPMT_PUBLIC_Unmarshal(pv_buf_data(pub), pv_buf_len(pub), &off, &p),
                     TSS2_RC_SUCCESS);
    p.objectAttributes = (p.objectAttributes | set) & ~clear;
    off = 0;
    assert_int_equal(Tss2_MU_TPMT_PUBLIC_Marshal(&p, out, max, &off), TSS2_RC_SUCCESS);
    return off;
}

static void test_bad_ak_public(void **state)
{
    fixture *f = *state;
    device *a = &f->dev[0];
    uint8_t buf[PV_ENROLL_MAX_TPM_PUBLIC + 1];
    pv_enroll_request req = request_of(a);
    req.ak_tpm_public = buf;

    static const struct {
        TPMA_OBJECT set, clear;
        const char *needle;
    } cases[] = {
        {0, TPMA_OBJECT_RESTRICTED, "restricted"},
        {0, TPMA_OBJECT_FIXEDTPM, "fixedTPM"},
        {0, TPMA_OBJECT_FIXEDPARENT, "fixedParent"},
        {0, TPMA_OBJECT_SENSITIVEDATAORIGIN, "sensitiveDataOrigin"},
        {0, TPMA_OBJECT_SIGN_ENCRYPT, "sign"},
        {TPMA_OBJECT_DECRYPT, 0, "decrypt"},
        {0x00000001, 0, "reserved"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        req.ak_tpm_public_len =
            with_attributes(a->ak_public, cases[i].set, cases[i].clear, buf, sizeof(buf));
        expect_create(f, &req, a->vendor_intermediate, a->vendor_root, f->now, PV_ERR_FORMAT,
                      cases[i].needle);
    }

    /* Any single-bit change to the public area: refused by the verifier, or (for a
     * field the verifier does not judge) the name changes and the TPM cannot answer. */
    size_t n = pv_buf_len(a->ak_public);
    pv_buf *answer = pv_buf_new(64);
    int refused = 0, unanswerable = 0;
    for (size_t i = 0; i < n; i++) {
        pv_enroll_challenge *c = NULL;
        pv_err e = {0};
        memcpy(buf, pv_buf_data(a->ak_public), n);
        buf[i] ^= 0x01;
        req.ak_tpm_public_len = n;
        if (pv_enroll_challenge_create(&req, a->vendor_intermediate, a->vendor_root, f->now, &c,
                                       &e) != PV_OK) {
            refused++;
            continue;
        }
        pv_buf_reset(answer);
        int r = activate(a, c, answer, &e);
        if (r == PV_OK) {
            fail_msg("byte %zu of the AK public area changed, and the TPM still answered", i);
        }
        unanswerable++;
        pv_enroll_challenge_free(c);
    }
    assert_int_equal(refused + unanswerable, (int)n);
    assert_true(refused > 0);
    pv_buf_free(answer);
}

static void test_ak_not_declared_key(void **state)
{
    fixture *f = *state;
    device *a = &f->dev[0], *b = &f->dev[1];
    pv_enroll_request req = request_of(a);
    req.attestation_key = a->identity;
    expect_create(f, &req, a->vendor_intermediate, a->vendor_root, f->now, PV_ERR_SIGNATURE,
                  "another key");
    req.attestation_key = b->ak;
    expect_create(f, &req, a->vendor_intermediate, a->vendor_root, f->now, PV_ERR_SIGNATURE,
                  "another key");
    req.attestation_key = NULL;
    expect_create(f, &req, a->vendor_intermediate, a->vendor_root, f->now, PV_ERR_INVALID_ARG,
                  NULL);
}

static void test_wrong_answer(void **state)
{
    fixture *f = *state;
    device *a = &f->dev[0];
    pv_enroll_request req = request_of(a);
    pv_buf *answer = pv_buf_new(64);
    pv_err e = {0};

    /* one wrong bit, then the right answer: the challenge is spent */
    pv_enroll_challenge *c = challenge_ok(f, &req, a);
    assert_int_equal(activate(a, c, answer, &e), PV_OK);
    uint8_t *p = pv_buf_mutable_data(answer);
    p[PV_ENROLL_ANSWER_LEN - 1] ^= 0x80;
    assert_int_equal(pv_enroll_challenge_check(c, p, pv_buf_len(answer), &e), PV_ERR_SIGNATURE);
    p[PV_ENROLL_ANSWER_LEN - 1] ^= 0x80;
    assert_int_equal(pv_enroll_challenge_check(c, p, pv_buf_len(answer), &e), PV_ERR_INVALID_ARG);
    pv_enroll_challenge_free(c);

    /* a short, a long and an empty answer */
    static const size_t lens[] = {PV_ENROLL_ANSWER_LEN - 1, PV_ENROLL_ANSWER_LEN + 1, 0};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        uint8_t buf[PV_ENROLL_ANSWER_LEN + 1];
        c = challenge_ok(f, &req, a);
        pv_buf_reset(answer);
        assert_int_equal(activate(a, c, answer, &e), PV_OK);
        memcpy(buf, pv_buf_data(answer), PV_ENROLL_ANSWER_LEN);
        buf[PV_ENROLL_ANSWER_LEN] = 0;
        assert_int_equal(pv_enroll_challenge_check(c, buf, lens[i], &e), PV_ERR_FORMAT);
        assert_int_equal(pv_enroll_challenge_check(c, buf, PV_ENROLL_ANSWER_LEN, &e),
                         PV_ERR_INVALID_ARG);
        pv_enroll_challenge_free(c);
    }
    assert_int_equal(pv_enroll_challenge_check(NULL, p, PV_ENROLL_ANSWER_LEN, &e),
                     PV_ERR_INVALID_ARG);
    pv_buf_free(answer);
}

static void test_sizes(void **state)
{
    fixture *f = *state;
    device *a = &f->dev[0];
    pv_enroll_request req = request_of(a);
    const pv_chain *in = a->vendor_intermediate;
    const pv_trust *tr = a->vendor_root;
    size_t ek_len = req.ek_cert_len, ak_len = req.ak_tpm_public_len;
    uint8_t *big = calloc(1, PV_ENROLL_MAX_EK_CERT + 1);
    assert_non_null(big);

    /* EK certificate: empty, truncated, with a trailing byte, over the limit */
    req.ek_cert_len = 0;
    expect_create(f, &req, in, tr, f->now, PV_ERR_TRUNCATED, "no EK certificate");
    req.ek_cert_len = ek_len - 1;
    expect_create(f, &req, in, tr, f->now, PV_ERR_FORMAT, "EK certificate");
    memcpy(big, pv_buf_data(a->ek_cert), ek_len);
    req.ek_cert_der = big;
    req.ek_cert_len = ek_len + 1;
    expect_create(f, &req, in, tr, f->now, PV_ERR_FORMAT, "EK certificate");
    req.ek_cert_len = PV_ENROLL_MAX_EK_CERT + 1;
    expect_create(f, &req, in, tr, f->now, PV_ERR_TOO_LARGE, "EK certificate");
    req = request_of(a);

    /* AK public area: empty, truncated, with a trailing byte, over the limit */
    memcpy(big, pv_buf_data(a->ak_public), ak_len);
    req.ak_tpm_public = big;
    req.ak_tpm_public_len = 0;
    expect_create(f, &req, in, tr, f->now, PV_ERR_TRUNCATED, "AK public area");
    for (size_t n = 1; n < ak_len; n++) {
        req.ak_tpm_public_len = n;
        expect_create(f, &req, in, tr, f->now, PV_ERR_FORMAT, "AK public area");
    }
    req.ak_tpm_public_len = ak_len + 1;
    expect_create(f, &req, in, tr, f->now, PV_ERR_FORMAT, "after the TPMT_PUBLIC");
    req.ak_tpm_public_len = PV_ENROLL_MAX_TPM_PUBLIC + 1;
    expect_create(f, &req, in, tr, f->now, PV_ERR_TOO_LARGE, "AK public area");
    req.ak_tpm_public = NULL;
    req.ak_tpm_public_len = ak_len;
    expect_create(f, &req, in, tr, f->now, PV_ERR_INVALID_ARG, NULL);
    free(big);

    /* more intermediates than a chain holds */
    pv_chain *many = pv_chain_new();
    for (int i = 0; i < PV_CHAIN_MAX_CERTS; i++) {
        assert_int_equal(pv_chain_add(many, pv_chain_get(in, 0)), PV_OK);
    }
    req = request_of(a);
    expect_create(f, &req, many, tr, f->now, PV_ERR_TOO_LARGE, "intermediates");
    pv_chain_free(many);

    /* no request, no output */
    pv_err e = {0};
    assert_int_equal(pv_enroll_challenge_create(NULL, in, tr, f->now, NULL, &e),
                     PV_ERR_INVALID_ARG);
    expect_create(f, NULL, in, tr, f->now, PV_ERR_INVALID_ARG, NULL);
}

/* The service's path: the factory's record of a real TPM device verifies, and its fields
 * are the enrollment request. */
static void test_from_manufacturing_record(void **state)
{
    fixture *f = *state;
    device *a = &f->dev[0];
    pv_key *factory_key = NULL;
    pv_chain *factory_chain = NULL;
    pv_trust *factory_ca = NULL;
    pv_err e = {0};
    char *dir = tu_path(f->dir, "factory");
    assert_int_equal(mkdir(dir, 0700), 0);
    tu_make_chain(dir, f->now - 3600, f->now + YEAR, &factory_key, &factory_chain, &factory_ca);

    pv_mfgrec rec = {.version = PV_MFGREC_VERSION,
                     .rot_kind = PV_ROT_TPM,
                     .identity_key = a->identity,
                     .attestation_key = a->ak,
                     .ek_cert_der = (uint8_t *)pv_buf_data(a->ek_cert),
                     .ek_cert_len = pv_buf_len(a->ek_cert),
                     .ak_tpm_public = (uint8_t *)pv_buf_data(a->ak_public),
                     .ak_tpm_public_len = pv_buf_len(a->ak_public),
                     .manufactured_at = f->now};
    assert_int_equal(pv_rot_device_id(a->rot, rec.device_id, &e), PV_OK);
    pv_buf *file = pv_buf_new(PV_MFGREC_MAX_SIZE);
    if (pv_mfgrec_sign(&rec, factory_key, factory_chain, file, &e) != PV_OK) {
        fail_msg("sign: %s", pv_err_msg(&e));
    }

    pv_mfgrec v;
    if (pv_mfgrec_verify(pv_buf_data(file), pv_buf_len(file), factory_ca, f->now, &v, &e) !=
        PV_OK) {
        fail_msg("verify: %s", pv_err_msg(&e));
    }
    pv_enroll_request req = {.ek_cert_der = v.ek_cert_der,
                             .ek_cert_len = v.ek_cert_len,
                             .ak_tpm_public = v.ak_tpm_public,
                             .ak_tpm_public_len = v.ak_tpm_public_len,
                             .attestation_key = v.attestation_key};
    pv_enroll_challenge *c = challenge_ok(f, &req, a);
    pv_buf *answer = pv_buf_new(64);
    assert_int_equal(activate(a, c, answer, &e), PV_OK);
    assert_int_equal(pv_enroll_challenge_check(c, pv_buf_data(answer), pv_buf_len(answer), &e),
                     PV_OK);

    pv_buf_free(answer);
    pv_enroll_challenge_free(c);
    pv_mfgrec_free(&v);
    pv_buf_free(file);
    pv_key_free(factory_key);
    pv_chain_free(factory_chain);
    pv_trust_free(factory_ca);
    free(dir);
}

/* The software backend has no TPM to prove anything with. */
static void test_software_backend(void **state)
{
    fixture *f = *state;
    char *dir = tu_path(f->dir, "soft");
    assert_int_equal(mkdir(dir, 0700), 0);
    pv_rot_config cfg = {.kind = PV_ROT_SOFTWARE, .state_dir = dir};
    pv_rot *rot = NULL;
    pv_err e = {0};
    if (pv_rot_provision(&cfg, &rot, &e) != PV_OK) {
        free(dir);
        skip(); /* the software backend is not in this build */
    }
    pv_buf *b = pv_buf_new(PV_ENROLL_MAX_EK_CERT);
    assert_int_equal(pv_rot_ek_certificate(rot, b, &e), PV_ERR_UNSUPPORTED);
    assert_int_equal(pv_rot_attestation_key_tpm_public(rot, b, &e), PV_ERR_UNSUPPORTED);
    pv_buf_free(b);
    pv_rot_close(rot);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proof),
        cmocka_unit_test(test_fresh),
        cmocka_unit_test(test_ak_of_another_tpm),
        cmocka_unit_test(test_untrusted_ek),
        cmocka_unit_test(test_non_rsa_ek),
        cmocka_unit_test(test_bad_ak_public),
        cmocka_unit_test(test_ak_not_declared_key),
        cmocka_unit_test(test_wrong_answer),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_from_manufacturing_record),
        cmocka_unit_test(test_software_backend),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
