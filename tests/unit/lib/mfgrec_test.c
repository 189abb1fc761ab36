/* SPDX-License-Identifier: Apache-2.0 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <tss2/tss2_mu.h>

#include "pavise/cbor.h"
#include "pavise/cose.h"
#include "pavise/enroll.h"
#include "pavise/mfgrec.h"
#include "pavise/platform.h"

#define YEAR ((int64_t)365 * 24 * 3600)

typedef struct fixture {
    char *dir;
    int64_t now;
    pv_key *factory_key;
    pv_chain *factory_chain;
    pv_trust *factory_ca;
    pv_key *identity;
    pv_key *attestation;
    uint8_t *ek_der; /* any certificate: the record only carries it */
    size_t ek_len;
    uint8_t ak_pub[PV_ENROLL_MAX_TPM_PUBLIC];
    size_t ak_pub_len;
} fixture;

/* A marshaled TPMT_PUBLIC for a restricted P-256 signing key holding k's point, as a
 * TPM would report the attestation key; attrs_off clears attributes from the usual set. */
static size_t ak_public_for(const pv_key *k, TPMA_OBJECT attrs_off, uint8_t *out, size_t max)
{
    TPMT_PUBLIC pub = {0};
    BIGNUM *x = NULL, *y = NULL;
    EVP_PKEY *pk = pv_key_evp(k);
    assert_int_equal(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, &x), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, &y), 1);
    pub.type = TPM2_ALG_ECC;
    pub.nameAlg = TPM2_ALG_SHA256;
    pub.objectAttributes =
        (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
         TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT) &
        ~attrs_off;
    pub.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    pub.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
    pub.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    pub.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    pub.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    pub.unique.ecc.x.size = 32;
    pub.unique.ecc.y.size = 32;
    assert_int_equal(BN_bn2binpad(x, pub.unique.ecc.x.buffer, 32), 32);
    assert_int_equal(BN_bn2binpad(y, pub.unique.ecc.y.buffer, 32), 32);
    BN_free(x);
    BN_free(y);
    size_t off = 0;
    assert_int_equal(Tss2_MU_TPMT_PUBLIC_Marshal(&pub, out, max, &off), TSS2_RC_SUCCESS);
    return off;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    pv_err e;
    assert_non_null(f);
    f->dir = tu_mkdtemp("mfgrec");
    f->now = pv_time_now();
    tu_make_chain(f->dir, f->now - 3600, f->now + YEAR, &f->factory_key, &f->factory_chain,
                  &f->factory_ca);
    assert_int_equal(pv_key_generate(&f->identity, &e), PV_OK);
    assert_int_equal(pv_key_generate(&f->attestation, &e), PV_OK);

    pv_key *ek_key = NULL;
    pv_cert *ek = NULL;
    assert_int_equal(pv_key_generate(&ek_key, &e), PV_OK);
    pv_cert_params p = {.subject = "CN=Not Really An EK",
                        .not_before = f->now - 60,
                        .not_after = f->now + YEAR,
                        .path_len = -1};
    assert_int_equal(pv_cert_create(&p, ek_key, NULL, NULL, &ek, &e), PV_OK);
    const uint8_t *der;
    pv_cert_der(ek, &der, &f->ek_len);
    f->ek_der = malloc(f->ek_len);
    assert_non_null(f->ek_der);
    memcpy(f->ek_der, der, f->ek_len);
    pv_cert_free(ek);
    pv_key_free(ek_key);
    f->ak_pub_len = ak_public_for(f->attestation, 0, f->ak_pub, sizeof(f->ak_pub));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmtree(f->dir);
    free(f->dir);
    pv_key_free(f->factory_key);
    pv_chain_free(f->factory_chain);
    pv_trust_free(f->factory_ca);
    pv_key_free(f->identity);
    pv_key_free(f->attestation);
    free(f->ek_der);
    free(f);
    return 0;
}

/* A consistent record (borrowing the fixture's keys and blobs: do not pv_mfgrec_free). */
static pv_mfgrec record_for(const fixture *f, pv_rot_kind kind)
{
    pv_mfgrec r;
    memset(&r, 0, sizeof(r));
    r.version = PV_MFGREC_VERSION;
    uint8_t id[PV_KEY_ID_LEN];
    assert_int_equal(pv_key_id(f->identity, id), PV_OK); /* what pv_device_id_of_key does */
    pv_hex_encode(id, sizeof(id), r.device_id, sizeof(r.device_id));
    r.rot_kind = kind;
    r.identity_key = f->identity;
    r.attestation_key = f->attestation;
    if (kind == PV_ROT_TPM) {
        r.ek_cert_der = f->ek_der;
        r.ek_cert_len = f->ek_len;
        r.ak_tpm_public = (uint8_t *)f->ak_pub;
        r.ak_tpm_public_len = f->ak_pub_len;
    }
    memset(r.trust_anchor, 0xa5, sizeof(r.trust_anchor));
    r.manufactured_at = 1700000000;
    return r;
}

static pv_buf *sign_ok(const fixture *f, const pv_mfgrec *rec)
{
    pv_buf *b = pv_buf_new(PV_MFGREC_MAX_SIZE);
    pv_err e = {0};
    assert_non_null(b);
    if (pv_mfgrec_sign(rec, f->factory_key, f->factory_chain, b, &e) != PV_OK) {
        fail_msg("sign: %s", pv_err_msg(&e));
    }
    return b;
}

static int verify(const fixture *f, const uint8_t *p, size_t n, pv_err *e)
{
    pv_mfgrec out;
    int r = pv_mfgrec_verify(p, n, f->factory_ca, f->now, &out, e);
    pv_mfgrec_free(&out);
    return r;
}

/* ---- a second encoder, written from docs/formats/manufacturing-record.md ---- */

typedef struct craft {
    uint64_t envelope_version;
    const char *content_type;
    const uint8_t *kid; /* NULL: the factory key's ID */
    const pv_key *signer;
    bool extra_key; /* add an unknown key 10 */
    bool no_trust_anchor;
} craft;

static void put_spki(pv_cbor_enc *enc, const pv_key *k)
{
    pv_buf *b = pv_buf_new(256);
    assert_int_equal(pv_key_spki_der(k, b), PV_OK);
    pv_cbor_put_bytes(enc, pv_buf_data(b), pv_buf_len(b));
    pv_buf_free(b);
}

/* Encodes rec as it is, without the checks pv_mfgrec_sign makes. */
static pv_buf *craft_file(const fixture *f, const pv_mfgrec *rec, const craft *c)
{
    pv_buf *payload = pv_buf_new(PV_MFGREC_MAX_SIZE), *cose = pv_buf_new(PV_MFGREC_MAX_SIZE);
    pv_buf *file = pv_buf_new(PV_MFGREC_MAX_SIZE);
    pv_cbor_enc enc;
    pv_err e = {0};
    size_t n = 5 + (rec->ek_cert_der != NULL) + (rec->ak_tpm_public != NULL) +
               (c->no_trust_anchor ? 0 : 1) + 1 + (c->extra_key ? 1 : 0);
    pv_cbor_enc_init(&enc, payload);
    pv_cbor_put_map(&enc, n);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_uint(&enc, rec->version);
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_text(&enc, rec->device_id);
    pv_cbor_put_uint(&enc, 3);
    pv_cbor_put_text(&enc, rec->rot_kind == PV_ROT_TPM ? "tpm" : "software");
    pv_cbor_put_uint(&enc, 4);
    put_spki(&enc, rec->identity_key);
    pv_cbor_put_uint(&enc, 5);
    put_spki(&enc, rec->attestation_key);
    if (rec->ek_cert_der != NULL) {
        pv_cbor_put_uint(&enc, 6);
        pv_cbor_put_bytes(&enc, rec->ek_cert_der, rec->ek_cert_len);
    }
    if (rec->ak_tpm_public != NULL) {
        pv_cbor_put_uint(&enc, 7);
        pv_cbor_put_bytes(&enc, rec->ak_tpm_public, rec->ak_tpm_public_len);
    }
    if (!c->no_trust_anchor) {
        pv_cbor_put_uint(&enc, 8);
        pv_cbor_put_bytes(&enc, rec->trust_anchor, 32);
    }
    pv_cbor_put_uint(&enc, 9);
    pv_cbor_put_uint(&enc, (uint64_t)rec->manufactured_at);
    if (c->extra_key) {
        pv_cbor_put_uint(&enc, 10);
        pv_cbor_put_uint(&enc, 0);
    }
    assert_int_equal(pv_cbor_enc_result(&enc), PV_OK);

    const pv_key *signer = c->signer != NULL ? c->signer : f->factory_key;
    uint8_t kid[PV_KEY_ID_LEN];
    assert_int_equal(pv_key_id(f->factory_key, kid), PV_OK);
    assert_int_equal(
        pv_cose_sign1_create(signer, c->kid != NULL ? c->kid : kid, PV_KEY_ID_LEN,
                             c->content_type != NULL ? c->content_type : PV_MFGREC_CONTENT_TYPE,
                             pv_buf_data(payload), pv_buf_len(payload), NULL, 0, 0, cose, &e),
        PV_OK);

    pv_cbor_enc_init(&enc, file);
    pv_cbor_put_array(&enc, 3);
    pv_cbor_put_uint(&enc, c->envelope_version != 0 ? c->envelope_version : 1);
    pv_cbor_put_bytes(&enc, pv_buf_data(cose), pv_buf_len(cose));
    pv_cbor_put_array(&enc, pv_chain_count(f->factory_chain));
    for (size_t i = 0; i < pv_chain_count(f->factory_chain); i++) {
        const uint8_t *der;
        size_t len;
        pv_cert_der(pv_chain_get(f->factory_chain, i), &der, &len);
        pv_cbor_put_bytes(&enc, der, len);
    }
    assert_int_equal(pv_cbor_enc_result(&enc), PV_OK);
    pv_buf_free(payload);
    pv_buf_free(cose);
    return file;
}

static void expect_verify(const fixture *f, const pv_buf *b, int code, const char *needle)
{
    pv_err e = {0};
    int r = verify(f, pv_buf_data(b), pv_buf_len(b), &e);
    if (r != code || (needle != NULL && strstr(pv_err_msg(&e), needle) == NULL)) {
        fail_msg("expected %d with '%s', got %d: %s", code, needle ? needle : "", r,
                 pv_err_msg(&e));
    }
}

/* ---- tests ---- */

static void check_same(const pv_mfgrec *a, const pv_mfgrec *b)
{
    assert_int_equal(a->version, b->version);
    assert_string_equal(a->device_id, b->device_id);
    assert_int_equal(a->rot_kind, b->rot_kind);
    assert_true(pv_key_equal_public(a->identity_key, b->identity_key));
    assert_true(pv_key_equal_public(a->attestation_key, b->attestation_key));
    assert_int_equal(a->ek_cert_len, b->ek_cert_len);
    assert_int_equal(a->ak_tpm_public_len, b->ak_tpm_public_len);
    assert_int_equal(a->ek_cert_der == NULL, b->ek_cert_der == NULL);
    if (a->ek_cert_der != NULL) {
        assert_memory_equal(a->ek_cert_der, b->ek_cert_der, a->ek_cert_len);
        assert_memory_equal(a->ak_tpm_public, b->ak_tpm_public, a->ak_tpm_public_len);
    }
    assert_memory_equal(a->trust_anchor, b->trust_anchor, 32);
    assert_int_equal(a->manufactured_at, b->manufactured_at);
}

static void round_trip(fixture *f, pv_rot_kind kind)
{
    pv_mfgrec rec = record_for(f, kind), out, dec;
    pv_chain *chain = NULL;
    pv_err e = {0};
    uint8_t kid[PV_KEY_ID_LEN];
    pv_buf *b = sign_ok(f, &rec);
    assert_true(pv_buf_len(b) <= PV_MFGREC_MAX_SIZE);
    if (pv_mfgrec_verify(pv_buf_data(b), pv_buf_len(b), f->factory_ca, f->now, &out, &e) != PV_OK) {
        fail_msg("verify: %s", pv_err_msg(&e));
    }
    check_same(&rec, &out);
    assert_int_equal(pv_key_id(f->factory_key, kid), PV_OK);
    assert_memory_equal(out.signer_key_id, kid, sizeof(kid));

    assert_int_equal(pv_mfgrec_decode(pv_buf_data(b), pv_buf_len(b), &dec, &chain, &e), PV_OK);
    check_same(&rec, &dec);
    assert_int_equal(pv_chain_count(chain), pv_chain_count(f->factory_chain));

    json_t *j = pv_mfgrec_to_json(&out);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "device_id")), rec.device_id);
    assert_string_equal(json_string_value(json_object_get(j, "root_of_trust")),
                        kind == PV_ROT_TPM ? "tpm" : "software");
    assert_string_equal(json_string_value(json_object_get(j, "manufactured")),
                        "2023-11-14T22:13:20Z");
    assert_int_equal(json_is_null(json_object_get(j, "ek_certificate")), kind != PV_ROT_TPM);
    if (kind == PV_ROT_TPM) {
        assert_int_equal(strlen(json_string_value(json_object_get(j, "ak_name"))), 68);
    }
    json_decref(j);

    /* Signing is deterministic up to the ECDSA signature: the same record encodes to
     * the same payload, and a second implementation's encoding verifies. */
    craft c = {0};
    pv_buf *crafted = craft_file(f, &rec, &c);
    assert_int_equal(pv_buf_len(crafted), pv_buf_len(b));
    expect_verify(f, crafted, PV_OK, NULL);

    pv_buf_free(crafted);
    pv_chain_free(chain);
    pv_mfgrec_free(&dec);
    pv_mfgrec_free(&out);
    pv_mfgrec_free(&dec); /* twice is harmless */
    pv_mfgrec_free(NULL);
    pv_buf_free(b);
}

static void test_round_trip_software(void **state)
{
    round_trip(*state, PV_ROT_SOFTWARE);
}

static void test_round_trip_tpm(void **state)
{
    round_trip(*state, PV_ROT_TPM);
}

/* Every single-bit change anywhere in the file is refused. */
static void test_tampered(void **state)
{
    fixture *f = *state;
    pv_mfgrec rec = record_for(f, PV_ROT_TPM);
    pv_buf *b = sign_ok(f, &rec);
    uint8_t *p = pv_buf_mutable_data(b);
    for (size_t i = 0; i < pv_buf_len(b); i++) {
        pv_err e = {0};
        p[i] ^= 0x01;
        int r = verify(f, p, pv_buf_len(b), &e);
        p[i] ^= 0x01;
        if (r == PV_OK) {
            fail_msg("flipping byte %zu of %zu was not noticed", i, pv_buf_len(b));
        }
    }
    pv_err e = {0};
    assert_int_equal(verify(f, p, pv_buf_len(b), &e), PV_OK);
    pv_buf_free(b);
}

static void test_wrong_factory_ca(void **state)
{
    fixture *f = *state;
    pv_mfgrec rec = record_for(f, PV_ROT_SOFTWARE), out;
    pv_trust *other = NULL;
    pv_err e = {0};
    char *dir = tu_path(f->dir, "other");
    assert_int_equal(mkdir(dir, 0700), 0);
    tu_make_chain(dir, f->now - 3600, f->now + YEAR, NULL, NULL, &other);
    pv_buf *b = sign_ok(f, &rec);
    assert_int_equal(pv_mfgrec_verify(pv_buf_data(b), pv_buf_len(b), other, f->now, &out, &e),
                     PV_ERR_UNTRUSTED);
    assert_non_null(strstr(e.msg, "factory certificate chain"));
    assert_null(out.identity_key);
    assert_int_equal(pv_mfgrec_verify(pv_buf_data(b), pv_buf_len(b), NULL, f->now, &out, &e),
                     PV_ERR_INVALID_ARG);
    pv_trust_free(other);
    pv_buf_free(b);
    free(dir);
}

static void test_expired_factory_cert(void **state)
{
    fixture *f = *state;
    pv_mfgrec rec = record_for(f, PV_ROT_SOFTWARE), out;
    pv_err e = {0};
    pv_buf *b = sign_ok(f, &rec);
    /* The leaf is valid for a year from an hour ago. */
    assert_int_equal(
        pv_mfgrec_verify(pv_buf_data(b), pv_buf_len(b), f->factory_ca, f->now + 2 * YEAR, &out, &e),
        PV_ERR_EXPIRED);
    assert_int_equal(
        pv_mfgrec_verify(pv_buf_data(b), pv_buf_len(b), f->factory_ca, f->now - 2 * 3600, &out, &e),
        PV_ERR_EXPIRED);
    pv_buf_free(b);
}

/* A signature from a key that is not the certificate's, or a kid that names another key. */
static void test_unknown_key(void **state)
{
    fixture *f = *state;
    pv_mfgrec rec = record_for(f, PV_ROT_SOFTWARE);
    pv_key *stranger = NULL;
    pv_err e = {0};
    uint8_t kid[PV_KEY_ID_LEN];
    assert_int_equal(pv_key_generate(&stranger, &e), PV_OK);

    craft c = {.signer = stranger};
    pv_buf *b = craft_file(f, &rec, &c);
    expect_verify(f, b, PV_ERR_SIGNATURE, "does not verify");
    pv_buf_free(b);

    assert_int_equal(pv_key_id(stranger, kid), PV_OK);
    craft c2 = {.signer = stranger, .kid = kid};
    b = craft_file(f, &rec, &c2);
    expect_verify(f, b, PV_ERR_FORMAT, "kid");
    pv_buf_free(b);

    /* pv_mfgrec_sign refuses a key the chain does not hold, or no private key. */
    b = pv_buf_new(PV_MFGREC_MAX_SIZE);
    assert_int_equal(pv_mfgrec_sign(&rec, stranger, f->factory_chain, b, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_mfgrec_sign(&rec, f->identity, NULL, b, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_buf_len(b), 0);
    pv_buf_free(b);
    pv_key_free(stranger);
}

static void test_inconsistent_device_id(void **state)
{
    fixture *f = *state;
    pv_mfgrec rec = record_for(f, PV_ROT_SOFTWARE);
    pv_err e = {0};
    rec.device_id[0] = rec.device_id[0] == '0' ? '1' : '0';
    pv_buf *b = pv_buf_new(PV_MFGREC_MAX_SIZE);
    assert_int_equal(pv_mfgrec_sign(&rec, f->factory_key, f->factory_chain, b, &e), PV_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "device ID"));
    pv_buf_free(b);

    craft c = {0};
    b = craft_file(f, &rec, &c);
    expect_verify(f, b, PV_ERR_FORMAT, "is not the SHA-256 of the identity key");
    /* decode does not judge consistency: it is for display */
    pv_mfgrec dec;
    assert_int_equal(pv_mfgrec_decode(pv_buf_data(b), pv_buf_len(b), &dec, NULL, &e), PV_OK);
    pv_mfgrec_free(&dec);
    pv_buf_free(b);

    /* Upper case hex is not the device ID's form. */
    rec = record_for(f, PV_ROT_SOFTWARE);
    for (char *s = rec.device_id; *s != '\0'; s++) {
        if (*s >= 'a' && *s <= 'f') {
            *s = (char)(*s - 'a' + 'A');
        }
    }
    b = craft_file(f, &rec, &c);
    expect_verify(f, b, PV_ERR_FORMAT, "lowercase hex");
    pv_buf_free(b);
}

static void test_kind_rules(void **state)
{
    fixture *f = *state;
    pv_err e = {0};
    craft c = {0};
    pv_buf *b = pv_buf_new(PV_MFGREC_MAX_SIZE);

    /* software with TPM fields */
    pv_mfgrec rec = record_for(f, PV_ROT_SOFTWARE);
    rec.ek_cert_der = f->ek_der;
    rec.ek_cert_len = f->ek_len;
    assert_int_equal(pv_mfgrec_sign(&rec, f->factory_key, f->factory_chain, b, &e), PV_ERR_FORMAT);
    pv_buf *x = craft_file(f, &rec, &c);
    expect_verify(f, x, PV_ERR_FORMAT, "software root of trust");
    pv_buf_free(x);

    /* TPM without the AK public area, without the EK certificate */
    rec = record_for(f, PV_ROT_TPM);
    rec.ak_tpm_public = NULL;
    rec.ak_tpm_public_len = 0;
    assert_int_equal(pv_mfgrec_sign(&rec, f->factory_key, f->factory_chain, b, &e), PV_ERR_FORMAT);
    x = craft_file(f, &rec, &c);
    expect_verify(f, x, PV_ERR_FORMAT, "needs the AK public area");
    pv_buf_free(x);
    rec = record_for(f, PV_ROT_TPM);
    rec.ek_cert_der = NULL;
    rec.ek_cert_len = 0;
    x = craft_file(f, &rec, &c);
    expect_verify(f, x, PV_ERR_FORMAT, "needs the EK certificate");
    pv_buf_free(x);

    /* TPM whose AK public area holds another key */
    uint8_t other_pub[PV_ENROLL_MAX_TPM_PUBLIC];
    rec = record_for(f, PV_ROT_TPM);
    rec.ak_tpm_public = other_pub;
    rec.ak_tpm_public_len = ak_public_for(f->identity, 0, other_pub, sizeof(other_pub));
    assert_int_equal(pv_mfgrec_sign(&rec, f->factory_key, f->factory_chain, b, &e),
                     PV_ERR_SIGNATURE);
    x = craft_file(f, &rec, &c);
    expect_verify(f, x, PV_ERR_SIGNATURE, "another key");
    pv_buf_free(x);

    /* TPM whose AK is not restricted */
    rec.ak_tpm_public_len =
        ak_public_for(f->attestation, TPMA_OBJECT_RESTRICTED, other_pub, sizeof(other_pub));
    x = craft_file(f, &rec, &c);
    expect_verify(f, x, PV_ERR_FORMAT, "restricted");
    pv_buf_free(x);

    /* An unknown kind is refused by sign. */
    rec = record_for(f, PV_ROT_SOFTWARE);
    rec.rot_kind = (pv_rot_kind)7;
    assert_int_equal(pv_mfgrec_sign(&rec, f->factory_key, f->factory_chain, b, &e), PV_ERR_FORMAT);
    assert_int_equal(pv_buf_len(b), 0);
    pv_buf_free(b);
}

static void test_format_rules(void **state)
{
    fixture *f = *state;
    pv_mfgrec rec = record_for(f, PV_ROT_SOFTWARE);

    craft extra = {.extra_key = true};
    pv_buf *b = craft_file(f, &rec, &extra);
    expect_verify(f, b, PV_ERR_FORMAT, "10");
    pv_buf_free(b);

    craft missing = {.no_trust_anchor = true};
    b = craft_file(f, &rec, &missing);
    expect_verify(f, b, PV_ERR_FORMAT, "trust anchor");
    pv_buf_free(b);

    craft v2 = {.envelope_version = 2};
    b = craft_file(f, &rec, &v2);
    expect_verify(f, b, PV_ERR_UNSUPPORTED, "format version 2");
    pv_buf_free(b);

    craft ct = {.content_type = "application/cbor"};
    b = craft_file(f, &rec, &ct);
    expect_verify(f, b, PV_ERR_FORMAT, "content type");
    pv_buf_free(b);

    rec.version = 2;
    craft plain = {0};
    b = craft_file(f, &rec, &plain);
    expect_verify(f, b, PV_ERR_UNSUPPORTED, "version 2");
    pv_buf_free(b);

    /* not even CBOR / the wrong shape */
    static const uint8_t not_array[] = {0xa0};
    pv_err e = {0};
    assert_int_equal(verify(f, not_array, sizeof(not_array), &e), PV_ERR_FORMAT);
    static const uint8_t short_array[] = {0x82, 0x01, 0x40};
    assert_int_equal(verify(f, short_array, sizeof(short_array), &e), PV_ERR_FORMAT);
}

static void test_truncated_and_oversized(void **state)
{
    fixture *f = *state;
    pv_mfgrec rec = record_for(f, PV_ROT_TPM), dec;
    pv_err e = {0};
    pv_buf *b = sign_ok(f, &rec);
    assert_int_equal(verify(f, pv_buf_data(b), 0, &e), PV_ERR_TRUNCATED);
    assert_int_equal(verify(f, NULL, 0, &e), PV_ERR_TRUNCATED);
    for (size_t n = 1; n < pv_buf_len(b); n++) {
        int r = verify(f, pv_buf_data(b), n, &e);
        if (r == PV_OK) {
            fail_msg("a %zu-byte prefix verified", n);
        }
        assert_int_not_equal(pv_mfgrec_decode(pv_buf_data(b), n, &dec, NULL, &e), PV_OK);
        assert_null(dec.identity_key);
    }
    uint8_t *big = calloc(1, PV_MFGREC_MAX_SIZE + 1);
    assert_non_null(big);
    memcpy(big, pv_buf_data(b), pv_buf_len(b));
    assert_int_equal(verify(f, big, PV_MFGREC_MAX_SIZE + 1, &e), PV_ERR_TOO_LARGE);
    /* trailing bytes after the envelope */
    assert_int_equal(verify(f, big, pv_buf_len(b) + 1, &e), PV_ERR_FORMAT);
    free(big);

    /* a record that does not fit the output buffer */
    pv_buf *small = pv_buf_new(64);
    assert_int_equal(pv_mfgrec_sign(&rec, f->factory_key, f->factory_chain, small, &e),
                     PV_ERR_TOO_LARGE);
    assert_int_equal(pv_buf_len(small), 0);
    pv_buf_free(small);
    pv_buf_free(b);
}

/* With PV_MFGREC_CORPUS_OUT=dir set, writes the seeds of tests/fuzz/corpus/mfgrec. */
static void test_write_corpus(void **state)
{
    fixture *f = *state;
    const char *dir = getenv("PV_MFGREC_CORPUS_OUT");
    if (dir == NULL || dir[0] == '\0') {
        skip();
    }
    struct {
        const char *name;
        pv_rot_kind kind;
        craft c;
        bool crafted;
    } seeds[] = {
        {"software", PV_ROT_SOFTWARE, {0}, false},
        {"tpm", PV_ROT_TPM, {0}, false},
        {"unknown-key", PV_ROT_SOFTWARE, {.extra_key = true}, true},
        {"no-trust-anchor", PV_ROT_TPM, {.no_trust_anchor = true}, true},
        {"envelope-v2", PV_ROT_SOFTWARE, {.envelope_version = 2}, true},
    };
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        pv_mfgrec rec = record_for(f, seeds[i].kind);
        pv_buf *b = seeds[i].crafted ? craft_file(f, &rec, &seeds[i].c) : sign_ok(f, &rec);
        char *path = tu_path(dir, seeds[i].name);
        tu_write(path, pv_buf_data(b), pv_buf_len(b), 0644);
        free(path);
        pv_buf_free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_software, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_tpm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_factory_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_factory_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inconsistent_device_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kind_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_and_oversized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_corpus, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
