/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TPM backend against a real swtpm. The group manufactures its own TPM in its own
 * directory and walks a device's life in order: unprovisioned, provisioned, used,
 * rebooted (stopping and starting swtpm on the same state), and finally tampered with.
 *
 * swtpm serves one client at a time, so the tests that reach into the TPM directly
 * (raw_open) close the pv_rot first and reopen it afterwards.
 */
#include "testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tctildr.h>

#include "pavise/crypto.h"
#include "pavise/fs.h"
#include "pavise/rot.h"
#include "rot_tpm.h"

typedef struct tpm_env {
    char *dir;       /* swtpm's directory */
    char *state_dir; /* the device's state directory */
    char *tcti;
    pv_rot *rot;
} tpm_env;

static pv_rot_config env_cfg(const tpm_env *t)
{
    pv_rot_config c = {.kind = PV_ROT_TPM, .state_dir = t->state_dir, .tcti = t->tcti};
    return c;
}

static void must(int r, int want, const pv_err *e)
{
    if (r != want) {
        fail_msg("got %d, want %d: %s", r, want, pv_err_msg(e));
    }
}

static void env_open(tpm_env *t)
{
    pv_err e = {0};
    pv_rot_config c = env_cfg(t);
    must(pv_rot_open(&c, &t->rot, &e), PV_OK, &e);
}

static void env_close(tpm_env *t)
{
    pv_rot_close(t->rot);
    t->rot = NULL;
}

/* Like a reboot: the TPM keeps its NV, resets its PCRs and counts a reset. */
static void env_reboot(tpm_env *t)
{
    env_close(t);
    tu_swtpm_stop(t->dir);
    free(t->tcti);
    t->tcti = tu_swtpm_start(t->dir);
    env_open(t);
}

static tpm_env *env_new(void)
{
    tpm_env *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    t->dir = tu_mkdtemp("rot_tpm");
    t->state_dir = tu_path(t->dir, "device");
    t->tcti = tu_swtpm_start(t->dir);
    return t;
}

static int env_free(void **state)
{
    tpm_env *t = *state;
    if (t == NULL) {
        return 0;
    }
    pv_rot_close(t->rot);
    tu_swtpm_stop(t->dir);
    tu_rmtree(t->dir);
    free(t->tcti);
    free(t->state_dir);
    free(t->dir);
    free(t);
    *state = NULL;
    return 0;
}

static int setup(void **state)
{
    *state = env_new();
    return 0;
}

/* Each test starts with the device open, even when an earlier one failed while it had
 * the TPM to itself. */
static int ensure_open(void **state)
{
    tpm_env *t = *state;
    if (t->rot == NULL) {
        env_open(t);
    }
    return 0;
}

/* ---- direct access to the TPM ---- */

typedef struct raw_tpm {
    TSS2_TCTI_CONTEXT *tcti;
    ESYS_CONTEXT *ctx;
} raw_tpm;

static void raw_open(tpm_env *t, raw_tpm *raw)
{
    env_close(t);
    assert_int_equal(Tss2_TctiLdr_Initialize(t->tcti, &raw->tcti), TSS2_RC_SUCCESS);
    assert_int_equal(Esys_Initialize(&raw->ctx, raw->tcti, NULL), TSS2_RC_SUCCESS);
}

static void raw_close(tpm_env *t, raw_tpm *raw)
{
    Esys_Finalize(&raw->ctx);
    Tss2_TctiLdr_Finalize(&raw->tcti);
}

static ESYS_TR raw_handle(raw_tpm *raw, TPM2_HANDLE h)
{
    ESYS_TR tr = ESYS_TR_NONE;
    assert_int_equal(
        Esys_TR_FromTPMPublic(raw->ctx, h, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr),
        TSS2_RC_SUCCESS);
    return tr;
}

/* The TCG default RSA 2048 EK template, written out here independently of the backend. */
static void raw_ek(raw_tpm *raw, ESYS_TR *ek, TPM2B_PUBLIC **pub)
{
    static const uint8_t policy[32] = {0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xB3, 0xF8,
                                       0x1A, 0x90, 0xCC, 0x8D, 0x46, 0xA5, 0xD7, 0x24,
                                       0xFD, 0x52, 0xD7, 0x6E, 0x06, 0x52, 0x0B, 0x64,
                                       0xF2, 0xA1, 0xDA, 0x1B, 0x33, 0x14, 0x69, 0xAA};
    TPM2B_PUBLIC tmpl = {0};
    tmpl.publicArea.type = TPM2_ALG_RSA;
    tmpl.publicArea.nameAlg = TPM2_ALG_SHA256;
    tmpl.publicArea.objectAttributes =
        TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
        TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
    tmpl.publicArea.authPolicy.size = 32;
    memcpy(tmpl.publicArea.authPolicy.buffer, policy, 32);
    tmpl.publicArea.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
    tmpl.publicArea.parameters.rsaDetail.symmetric.keyBits.aes = 128;
    tmpl.publicArea.parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
    tmpl.publicArea.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
    tmpl.publicArea.parameters.rsaDetail.keyBits = 2048;
    tmpl.publicArea.unique.rsa.size = 256;
    TPM2B_SENSITIVE_CREATE sens = {0};
    TPM2B_DATA outside = {0};
    TPML_PCR_SELECTION pcrs = {0};
    assert_int_equal(Esys_CreatePrimary(raw->ctx, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD,
                                        ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl, &outside, &pcrs,
                                        ek, pub, NULL, NULL, NULL),
                     TSS2_RC_SUCCESS);
}

/* ---- an unprovisioned TPM ---- */

static void test_open_unprovisioned(void **state)
{
    tpm_env *t = *state;
    pv_err e = {0};
    pv_rot *rot = NULL;
    pv_rot_config c = env_cfg(t);
    must(pv_rot_open(&c, &rot, &e), PV_ERR_NOT_FOUND, &e);
    assert_null(rot);
}

static void test_bad_tcti(void **state)
{
    tpm_env *t = *state;
    pv_err e = {0};
    pv_rot *rot = NULL;
    pv_rot_config c = env_cfg(t);
    c.tcti = "swtpm:path=/nonexistent/pavise-no-such-socket";
    must(pv_rot_open(&c, &rot, &e), PV_ERR_ROT, &e);
    assert_null(rot);
}

/* ---- a provisioned TPM ---- */

static void test_provision(void **state)
{
    tpm_env *t = *state;
    pv_err e = {0};
    pv_rot *rot = NULL;
    pv_rot_config c = env_cfg(t);
    must(pv_rot_provision(&c, &rot, &e), PV_OK, &e);
    assert_non_null(rot);
    pv_rot_close(rot);
    rot = NULL;
    must(pv_rot_provision(&c, &rot, &e), PV_ERR_EXISTS, &e);
    assert_null(rot);
    env_open(t);
    assert_int_equal(pv_rot_get_kind(t->rot), PV_ROT_TPM);
}

static void test_device_id(void **state)
{
    tpm_env *t = *state;
    pv_err e = {0};
    pv_key *idk = NULL, *ak = NULL;
    char id[PV_DEVICE_ID_HEX_LEN + 1], want[PV_DEVICE_ID_HEX_LEN + 1];
    must(pv_rot_identity_key(t->rot, &idk, &e), PV_OK, &e);
    must(pv_rot_attestation_key(t->rot, &ak, &e), PV_OK, &e);
    assert_false(pv_key_has_private(idk));
    assert_false(pv_key_equal_public(idk, ak));
    must(pv_rot_device_id(t->rot, id, &e), PV_OK, &e);

    pv_buf *spki = pv_buf_new(4096);
    assert_non_null(spki);
    assert_int_equal(pv_key_spki_der(idk, spki), PV_OK);
    uint8_t d[PV_SHA256_LEN];
    assert_int_equal(pv_sha256_digest(pv_buf_data(spki), pv_buf_len(spki), d), PV_OK);
    pv_hex_encode(d, sizeof(d), want, sizeof(want));
    assert_string_equal(id, want);
    assert_int_equal(strlen(id), PV_DEVICE_ID_HEX_LEN);
    pv_buf_free(spki);
    pv_key_free(idk);
    pv_key_free(ak);
}

static void test_sign(void **state)
{
    tpm_env *t = *state;
    pv_err e = {0};
    pv_key *ak = NULL, *idk = NULL;
    uint8_t sig[PV_ES256_SIG_LEN];
    must(pv_rot_attestation_key(t->rot, &ak, &e), PV_OK, &e);
    must(pv_rot_identity_key(t->rot, &idk, &e), PV_OK, &e);

    static const char msg[] = "attestation evidence";
    must(pv_rot_sign(t->rot, msg, sizeof(msg) - 1, sig, &e), PV_OK, &e);
    must(pv_key_verify_es256(ak, msg, sizeof(msg) - 1, sig, &e), PV_OK, &e);
    assert_int_equal(pv_key_verify_es256(ak, "attestation evidencE", sizeof(msg) - 1, sig, &e),
                     PV_ERR_SIGNATURE);
    assert_int_equal(pv_key_verify_es256(idk, msg, sizeof(msg) - 1, sig, &e), PV_ERR_SIGNATURE);

    /* Up to and past one TPM input buffer (1024 bytes on swtpm), so the hash runs over
     * several updates, and exact multiples of it. */
    size_t sizes[] = {4, 1023, 1024, 1025, 2048, 5000};
    uint8_t *big = malloc(5000);
    assert_non_null(big);
    for (size_t i = 0; i < 5000; i++) {
        big[i] = (uint8_t)(i * 7);
    }
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        must(pv_rot_sign(t->rot, big, sizes[i], sig, &e), PV_OK, &e);
        must(pv_key_verify_es256(ak, big, sizes[i], sig, &e), PV_OK, &e);
    }
    free(big);
    pv_key_free(ak);
    pv_key_free(idk);
}

static void test_sign_refuses_generated_value(void **state)
{
    tpm_env *t = *state;
    pv_err e = {0};
    uint8_t sig[PV_ES256_SIG_LEN];
    static const uint8_t quote[] = {0xff, 0x54, 0x43, 0x47, 0x80, 0x18, 0x00};
    must(pv_rot_sign(t->rot, quote, sizeof(quote), sig, &e), PV_ERR_INVALID_ARG, &e);
    must(pv_rot_sign(t->rot, quote, 4, sig, &e), PV_ERR_INVALID_ARG, &e);
    /* Too short for the TPM to tell it is not the magic: no ticket, so no signature. */
    must(pv_rot_sign(t->rot, quote, 3, sig, &e), PV_ERR_INVALID_ARG, &e);
    must(pv_rot_sign(t->rot, "", 0, sig, &e), PV_ERR_INVALID_ARG, &e);
    /* The magic anywhere but at the start is fine. */
    static const uint8_t later[] = {0x00, 0xff, 0x54, 0x43, 0x47};
    must(pv_rot_sign(t->rot, later, sizeof(later), sig, &e), PV_OK, &e);
}

static void test_random(void **state)
{
    tpm_env *t = *state;
    pv_err e = {0};
    uint8_t a[32], b[32];
    must(pv_rot_random(t->rot, a, sizeof(a), &e), PV_OK, &e);
    must(pv_rot_random(t->rot, b, sizeof(b), &e), PV_OK, &e);
    assert_memory_not_equal(a, b, sizeof(a));
    uint8_t *big = calloc(1, PV_ROT_MAX_RANDOM + 1);
    assert_non_null(big);
    must(pv_rot_random(t->rot, big, PV_ROT_MAX_RANDOM, &e), PV_OK, &e);
    /* The tail was filled too (the TPM returns a digest's worth per call). */
    static const uint8_t zero[64];
    assert_memory_not_equal(big + PV_ROT_MAX_RANDOM - 64, zero, 64);
    assert_int_equal(big[PV_ROT_MAX_RANDOM], 0);
    must(pv_rot_random(t->rot, big, PV_ROT_MAX_RANDOM + 1, &e), PV_ERR_TOO_LARGE, &e);
    must(pv_rot_random(t->rot, a, 7, &e), PV_OK, &e);
    free(big);
}

static uint64_t counter(tpm_env *t, unsigned id)
{
    pv_err e = {0};
    uint64_t v = 99;
    must(pv_rot_counter_read(t->rot, id, &v, &e), PV_OK, &e);
    return v;
}

static void test_counters(void **state)
{
    tpm_env *t = *state;
    pv_err e = {0};
    for (unsigned i = 0; i < PV_ROT_COUNTERS; i++) {
        assert_int_equal(counter(t, i), 0);
    }
    uint64_t v = 0;
    must(pv_rot_counter_read(t->rot, PV_ROT_COUNTERS, &v, &e), PV_ERR_INVALID_ARG, &e);

    must(pv_rot_counter_advance(t->rot, PV_ROT_COUNTER_OS, 3, &e), PV_OK, &e);
    assert_int_equal(counter(t, PV_ROT_COUNTER_OS), 3);
    must(pv_rot_counter_advance(t->rot, PV_ROT_COUNTER_OS, 3, &e), PV_OK, &e);
    assert_int_equal(counter(t, PV_ROT_COUNTER_OS), 3);
    must(pv_rot_counter_advance(t->rot, PV_ROT_COUNTER_OS, 2, &e), PV_ERR_ROLLBACK, &e);
    must(pv_rot_counter_advance(t->rot, 5, 1, &e), PV_OK, &e);
    must(pv_rot_counter_advance(t->rot, 5, 1 + PV_ROT_MAX_COUNTER_STEP + 1, &e), PV_ERR_TOO_LARGE,
         &e);
    assert_int_equal(counter(t, 5), 1);
    assert_int_equal(counter(t, 1), 0);
}

static void test_measurements(void **state)
{
    tpm_env *t = *state;
    pv_err e = {0};
    uint8_t pcr[PV_SHA256_LEN], replay[PV_SHA256_LEN], d[PV_SHA256_LEN];
    static const uint8_t zero[PV_SHA256_LEN];
    /* Nothing extended PV_ROT_PCR since the TPM started. */
    must(pv_rot_read_measurement(t->rot, pcr, &e), PV_OK, &e);
    assert_memory_equal(pcr, zero, sizeof(zero));

    static const char *types[] = {"os-image", "boot-config", "app"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pv_sha256_digest(types[i], strlen(types[i]), d), PV_OK);
        must(pv_rot_extend(t->rot, types[i], d, types[i], strlen(types[i]), &e), PV_OK, &e);
    }
    pv_rot_event *ev = NULL;
    size_t n = 0;
    must(pv_rot_event_log(t->rot, &ev, &n, &e), PV_OK, &e);
    assert_int_equal(n, 3);
    assert_string_equal(ev[1].type, "boot-config");
    pv_rot_replay(ev, n, replay);
    must(pv_rot_read_measurement(t->rot, pcr, &e), PV_OK, &e);
    assert_memory_equal(pcr, replay, sizeof(pcr));
    assert_memory_not_equal(pcr, zero, sizeof(zero));
    pv_rot_events_free(ev, n);
}

#define FUSED 0xa5 /* every byte of the trust anchor test_fuse fuses */

static void test_fuse(void **state)
{
    tpm_env *t = *state;
    pv_err e = {0};
    uint8_t h[PV_SHA256_LEN], other[PV_SHA256_LEN], got[PV_SHA256_LEN];
    memset(h, FUSED, sizeof(h));
    memset(other, 0x5a, sizeof(other));
    must(pv_rot_trust_anchor(t->rot, got, &e), PV_ERR_NOT_FOUND, &e);
    must(pv_rot_fuse_trust_anchor(t->rot, h, &e), PV_OK, &e);
    must(pv_rot_trust_anchor(t->rot, got, &e), PV_OK, &e);
    assert_memory_equal(got, h, sizeof(h));
    must(pv_rot_fuse_trust_anchor(t->rot, h, &e), PV_ERR_LOCKED, &e);
    must(pv_rot_fuse_trust_anchor(t->rot, other, &e), PV_ERR_LOCKED, &e);

    /* The TPM itself refuses a write, with owner or index authorization. */
    raw_tpm raw;
    raw_open(t, &raw);
    ESYS_TR fuse = raw_handle(&raw, ROT_TPM_NV_FUSE);
    TPM2B_MAX_NV_BUFFER data = {.size = sizeof(other)};
    memcpy(data.buffer, other, sizeof(other));
    TSS2_RC rc = Esys_NV_Write(raw.ctx, ESYS_TR_RH_OWNER, fuse, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                               ESYS_TR_NONE, &data, 0);
    assert_int_equal(rc, TPM2_RC_NV_LOCKED);
    rc = Esys_NV_Write(raw.ctx, fuse, fuse, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &data, 0);
    assert_int_not_equal(rc, TSS2_RC_SUCCESS);
    raw_close(t, &raw);
}

static EVP_PKEY *cert_key(const pv_buf *der)
{
    const unsigned char *p = pv_buf_data(der);
    X509 *x = d2i_X509(NULL, &p, (long)pv_buf_len(der));
    assert_non_null(x);
    assert_ptr_equal(p, pv_buf_data(der) + pv_buf_len(der));
    EVP_PKEY *k = X509_get_pubkey(x);
    assert_non_null(k);
    X509_free(x);
    return k;
}

static void test_ek_certificate(void **state)
{
    tpm_env *t = *state;
    pv_err e = {0};
    pv_buf *der = pv_buf_new(8192);
    assert_non_null(der);
    must(pv_rot_ek_certificate(t->rot, der, &e), PV_OK, &e);
    EVP_PKEY *k = cert_key(der);
    assert_int_equal(EVP_PKEY_get_base_id(k), EVP_PKEY_RSA);
    assert_int_equal(EVP_PKEY_get_bits(k), 2048);
    EVP_PKEY_free(k);

    /* It chains to the vendor CA swtpm_setup made. */
    char *ca = tu_path(t->dir, "ca/issuercert.pem");
    size_t n = 0;
    uint8_t *pem = tu_read(ca, &n);
    BIO *bio = BIO_new_mem_buf(pem, (int)n);
    X509 *issuer = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    assert_non_null(issuer);
    const unsigned char *p = pv_buf_data(der);
    X509 *x = d2i_X509(NULL, &p, (long)pv_buf_len(der));
    assert_non_null(x);
    EVP_PKEY *ik = X509_get0_pubkey(issuer);
    assert_int_equal(X509_verify(x, ik), 1);
    X509_free(x);
    X509_free(issuer);
    BIO_free(bio);
    free(pem);
    free(ca);
    pv_buf_free(der);
}

static void bn_of(const EVP_PKEY *k, uint8_t out[256])
{
    BIGNUM *n = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    assert_int_equal(BN_bn2binpad(n, out, 256), 256);
    BN_free(n);
}

typedef struct credential {
    uint8_t blob[1024], secret[1024];
    size_t blob_len, secret_len;
} credential;

static void make_credential(raw_tpm *raw, ESYS_TR ek, const TPM2B_NAME *name, const uint8_t *value,
                            size_t len, credential *out)
{
    TPM2B_DIGEST cred = {.size = (uint16_t)len};
    memcpy(cred.buffer, value, len);
    TPM2B_ID_OBJECT *blob = NULL;
    TPM2B_ENCRYPTED_SECRET *secret = NULL;
    assert_int_equal(Esys_MakeCredential(raw->ctx, ek, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                         &cred, name, &blob, &secret),
                     TSS2_RC_SUCCESS);
    out->blob_len = out->secret_len = 0;
    assert_int_equal(
        Tss2_MU_TPM2B_ID_OBJECT_Marshal(blob, out->blob, sizeof(out->blob), &out->blob_len),
        TSS2_RC_SUCCESS);
    assert_int_equal(Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal(secret, out->secret,
                                                            sizeof(out->secret), &out->secret_len),
                     TSS2_RC_SUCCESS);
    Esys_Free(blob);
    Esys_Free(secret);
}

static void test_activate_credential(void **state)
{
    tpm_env *t = *state;
    pv_err e = {0};
    pv_buf *der = pv_buf_new(8192), *akpub = pv_buf_new(1024), *out = pv_buf_new(64);
    assert_non_null(der);
    assert_non_null(akpub);
    assert_non_null(out);
    must(pv_rot_ek_certificate(t->rot, der, &e), PV_OK, &e);
    must(pv_rot_attestation_key_tpm_public(t->rot, akpub, &e), PV_OK, &e);
    /* The AK's name, as a verifier computes it: nameAlg || SHA-256(TPMT_PUBLIC). */
    TPM2B_NAME name = {.size = 2 + PV_SHA256_LEN};
    name.name[0] = 0x00;
    name.name[1] = 0x0b;
    assert_int_equal(pv_sha256_digest(pv_buf_data(akpub), pv_buf_len(akpub), name.name + 2), PV_OK);
    TPM2B_NAME other = name;
    other.name[5] ^= 1;

    raw_tpm raw;
    raw_open(t, &raw);
    /* The name matches the one the TPM reports. */
    ESYS_TR ak = raw_handle(&raw, ROT_TPM_AK_HANDLE);
    TPM2B_NAME *tpm_name = NULL;
    assert_int_equal(Esys_TR_GetName(raw.ctx, ak, &tpm_name), TSS2_RC_SUCCESS);
    assert_int_equal(tpm_name->size, name.size);
    assert_memory_equal(tpm_name->name, name.name, name.size);
    Esys_Free(tpm_name);
    /* The EK from the default template is the certified one. */
    ESYS_TR ek = ESYS_TR_NONE;
    TPM2B_PUBLIC *ekpub = NULL;
    raw_ek(&raw, &ek, &ekpub);
    uint8_t want_n[256];
    EVP_PKEY *ck = cert_key(der);
    bn_of(ck, want_n);
    EVP_PKEY_free(ck);
    assert_int_equal(ekpub->publicArea.unique.rsa.size, 256);
    assert_memory_equal(ekpub->publicArea.unique.rsa.buffer, want_n, 256);
    Esys_Free(ekpub);

    uint8_t value[32];
    memset(value, 0x3c, sizeof(value));
    value[0] = 0x01;
    credential good, wrong;
    make_credential(&raw, ek, &name, value, sizeof(value), &good);
    make_credential(&raw, ek, &other, value, sizeof(value), &wrong);
    Esys_FlushContext(raw.ctx, ek);
    raw_close(t, &raw);
    env_open(t);

    must(pv_rot_activate_credential(t->rot, good.blob, good.blob_len, good.secret, good.secret_len,
                                    out, &e),
         PV_OK, &e);
    assert_int_equal(pv_buf_len(out), sizeof(value));
    assert_memory_equal(pv_buf_data(out), value, sizeof(value));
    pv_buf_reset(out);

    /* Made for another key. */
    must(pv_rot_activate_credential(t->rot, wrong.blob, wrong.blob_len, wrong.secret,
                                    wrong.secret_len, out, &e),
         PV_ERR_SIGNATURE, &e);
    /* Tampered with. */
    good.blob[good.blob_len - 1] ^= 0x80;
    must(pv_rot_activate_credential(t->rot, good.blob, good.blob_len, good.secret, good.secret_len,
                                    out, &e),
         PV_ERR_SIGNATURE, &e);
    good.blob[good.blob_len - 1] ^= 0x80;
    /* Truncated, trailing bytes, garbage. */
    must(pv_rot_activate_credential(t->rot, good.blob, good.blob_len - 1, good.secret,
                                    good.secret_len, out, &e),
         PV_ERR_FORMAT, &e);
    must(pv_rot_activate_credential(t->rot, good.blob, good.blob_len + 1, good.secret,
                                    good.secret_len, out, &e),
         PV_ERR_FORMAT, &e);
    must(pv_rot_activate_credential(t->rot, good.blob, good.blob_len, good.secret,
                                    good.secret_len - 3, out, &e),
         PV_ERR_FORMAT, &e);
    static const uint8_t garbage[] = {0xff, 0xff, 0x01, 0x02, 0x03};
    must(pv_rot_activate_credential(t->rot, garbage, sizeof(garbage), good.secret, good.secret_len,
                                    out, &e),
         PV_ERR_FORMAT, &e);
    assert_int_equal(pv_buf_len(out), 0);
    /* Still works afterwards: nothing was left loaded. */
    must(pv_rot_activate_credential(t->rot, good.blob, good.blob_len, good.secret, good.secret_len,
                                    out, &e),
         PV_OK, &e);
    assert_memory_equal(pv_buf_data(out), value, sizeof(value));

    pv_buf_free(out);
    pv_buf_free(akpub);
    pv_buf_free(der);
}

/* After a reboot (one for all the tests: stopping swtpm takes a second): counters and the
 * fuse persist, the PCR and this boot's event log start over. */
static void test_reboot(void **state)
{
    tpm_env *t = *state;
    pv_err e = {0};
    uint8_t pcr[PV_SHA256_LEN], got[PV_SHA256_LEN], h[PV_SHA256_LEN];
    static const uint8_t zero[PV_SHA256_LEN];
    pv_rot_event *ev = NULL;
    size_t n = 0;
    must(pv_rot_event_log(t->rot, &ev, &n, &e), PV_OK, &e);
    pv_rot_events_free(ev, n);
    assert_int_equal(n, 3); /* test_measurements' events */

    env_reboot(t);
    assert_int_equal(counter(t, PV_ROT_COUNTER_OS), 3);
    assert_int_equal(counter(t, 5), 1);
    assert_int_equal(counter(t, 1), 0);
    must(pv_rot_counter_advance(t->rot, PV_ROT_COUNTER_OS, 2, &e), PV_ERR_ROLLBACK, &e);
    must(pv_rot_counter_advance(t->rot, PV_ROT_COUNTER_OS, 4, &e), PV_OK, &e);
    assert_int_equal(counter(t, PV_ROT_COUNTER_OS), 4);

    must(pv_rot_read_measurement(t->rot, pcr, &e), PV_OK, &e);
    assert_memory_equal(pcr, zero, sizeof(zero));
    must(pv_rot_event_log(t->rot, &ev, &n, &e), PV_OK, &e);
    assert_int_equal(n, 0);
    pv_rot_events_free(ev, n);

    memset(h, FUSED, sizeof(h));
    must(pv_rot_trust_anchor(t->rot, got, &e), PV_OK, &e);
    assert_memory_equal(got, h, sizeof(h));
    must(pv_rot_fuse_trust_anchor(t->rot, zero, &e), PV_ERR_LOCKED, &e);
}

/* Nothing the backend left in the state directory is, or contains, a private key. */
static int files_checked;

static int check_file(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (flag != FTW_F) {
        return 0;
    }
    size_t n = 0;
    uint8_t *d = tu_read(path, &n);
    if (memmem(d, n, "PRIVATE KEY", 11) != NULL) {
        fail_msg("%s holds a PEM private key", path);
    }
    const unsigned char *p = d;
    EVP_PKEY *k = d2i_AutoPrivateKey(NULL, &p, (long)n);
    if (k != NULL) {
        fail_msg("%s parses as a DER private key", path);
    }
    BIO *bio = BIO_new_mem_buf(d, (int)n);
    k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (k != NULL) {
        fail_msg("%s parses as a PEM private key", path);
    }
    BIO_free(bio);
    free(d);
    files_checked++;
    return 0;
}

static void test_no_private_key_in_files(void **state)
{
    tpm_env *t = *state;
    files_checked = 0;
    assert_int_equal(nftw(t->state_dir, check_file, 16, FTW_PHYS), 0);
    assert_true(files_checked >= 1); /* the event log, at least */
}

/* A key someone put at our handle, even one made inside this TPM under our SRK, is
 * refused when its attributes are not the ones we chose. Last: it spoils the device. */
static void test_replaced_key_refused(void **state)
{
    tpm_env *t = *state;
    pv_err e = {0};
    pv_rot_config c = env_cfg(t);
    raw_tpm raw;
    raw_open(t, &raw);
    ESYS_TR srk = raw_handle(&raw, ROT_TPM_SRK_HANDLE);
    ESYS_TR ak = raw_handle(&raw, ROT_TPM_AK_HANDLE);
    ESYS_TR gone = ESYS_TR_NONE;
    assert_int_equal(Esys_EvictControl(raw.ctx, ESYS_TR_RH_OWNER, ak, ESYS_TR_PASSWORD,
                                       ESYS_TR_NONE, ESYS_TR_NONE, ROT_TPM_AK_HANDLE, &gone),
                     TSS2_RC_SUCCESS);
    /* An unrestricted signing key: it would sign anything, TPM quotes included. */
    TPM2B_PUBLIC tmpl = {0};
    tmpl.publicArea.type = TPM2_ALG_ECC;
    tmpl.publicArea.nameAlg = TPM2_ALG_SHA256;
    tmpl.publicArea.objectAttributes = ROT_TPM_IDK_ATTRS;
    tmpl.publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    tmpl.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
    tmpl.publicArea.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    tmpl.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    tmpl.publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    TPM2B_SENSITIVE_CREATE sens = {0};
    TPM2B_DATA outside = {0};
    TPML_PCR_SELECTION pcrs = {0};
    TPM2B_PRIVATE *priv = NULL;
    TPM2B_PUBLIC *pub = NULL;
    ESYS_TR k = ESYS_TR_NONE, persisted = ESYS_TR_NONE;
    assert_int_equal(Esys_Create(raw.ctx, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens,
                                 &tmpl, &outside, &pcrs, &priv, &pub, NULL, NULL, NULL),
                     TSS2_RC_SUCCESS);
    assert_int_equal(
        Esys_Load(raw.ctx, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, priv, pub, &k),
        TSS2_RC_SUCCESS);
    assert_int_equal(Esys_EvictControl(raw.ctx, ESYS_TR_RH_OWNER, k, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                       ESYS_TR_NONE, ROT_TPM_AK_HANDLE, &persisted),
                     TSS2_RC_SUCCESS);
    Esys_FlushContext(raw.ctx, k);
    Esys_Free(priv);
    Esys_Free(pub);
    raw_close(t, &raw);

    pv_rot *rot = NULL;
    must(pv_rot_open(&c, &rot, &e), PV_ERR_ROT, &e);
    assert_null(rot);
    assert_non_null(strstr(pv_err_msg(&e), "attestation key"));
    /* Provisioning again is refused too: the ranges are not empty. */
    must(pv_rot_provision(&c, &rot, &e), PV_ERR_EXISTS, &e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_unprovisioned),
        cmocka_unit_test(test_bad_tcti),
        cmocka_unit_test(test_provision),
        cmocka_unit_test_setup(test_device_id, ensure_open),
        cmocka_unit_test_setup(test_sign, ensure_open),
        cmocka_unit_test_setup(test_sign_refuses_generated_value, ensure_open),
        cmocka_unit_test_setup(test_random, ensure_open),
        cmocka_unit_test_setup(test_counters, ensure_open),
        cmocka_unit_test_setup(test_measurements, ensure_open),
        cmocka_unit_test_setup(test_fuse, ensure_open),
        cmocka_unit_test_setup(test_ek_certificate, ensure_open),
        cmocka_unit_test_setup(test_activate_credential, ensure_open),
        cmocka_unit_test_setup(test_reboot, ensure_open),
        cmocka_unit_test_setup(test_no_private_key_in_files, ensure_open),
        cmocka_unit_test(test_replaced_key_refused),
    };
    /* One swtpm for the group: manufacturing one and stopping it take a second each. */
    return cmocka_run_group_tests_name("rot_tpm", tests, setup, env_free);
}
