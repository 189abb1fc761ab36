/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TLS key and its CSR (src/agent/tlskey.c): in memory for a software device, inside
 * a real swtpm through the tpm2-openssl provider for a TPM device. The CSR must verify
 * and carry the key whose SubjectPublicKeyInfo the binding hashes; the key file must be
 * of the expected kind and usable again (the TPM one only through the provider and that
 * TPM); TCTIs that cannot be handed to the provider safely are refused.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/x509.h>

#include "attest_internal.h"

#define DEVICE_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* The CSR parses, is signed by its own key, names the device, and its key is spki. */
static void check_csr(const attest_tlskey *k)
{
    const unsigned char *p = pv_buf_data(k->csr);
    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)pv_buf_len(k->csr));
    assert_non_null(req);
    assert_ptr_equal(p, pv_buf_data(k->csr) + pv_buf_len(k->csr));
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
    assert_non_null(pub);
    assert_int_equal(X509_REQ_verify(req, pub), 1);
    assert_true(EVP_PKEY_is_a(pub, "EC"));
    char group[32];
    size_t glen = 0;
    assert_int_equal(EVP_PKEY_get_group_name(pub, group, sizeof(group), &glen), 1);
    assert_string_equal(group, "prime256v1");
    unsigned char *spki = NULL;
    int n = i2d_PUBKEY(pub, &spki);
    assert_int_equal((size_t)n, pv_buf_len(k->spki));
    assert_memory_equal(spki, pv_buf_data(k->spki), (size_t)n);
    OPENSSL_free(spki);
    char cn[80];
    assert_int_equal(
        X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName, cn, sizeof(cn)),
        64);
    assert_string_equal(cn, DEVICE_ID);
    /* What the service does with it. */
    assert_true(pv_buf_len(k->csr) <= ATTEST_CSR_MAX);
    pv_key *got = NULL;
    pv_err e = {0};
    assert_int_equal(pv_csr_verify_der(pv_buf_data(k->csr), pv_buf_len(k->csr), &got, &e), PV_OK);
    pv_buf *got_spki = pv_buf_new(128);
    assert_int_equal(pv_key_spki_der(got, got_spki), PV_OK);
    assert_int_equal(pv_buf_len(got_spki), pv_buf_len(k->spki));
    assert_memory_equal(pv_buf_data(got_spki), pv_buf_data(k->spki), pv_buf_len(k->spki));
    pv_buf_free(got_spki);
    pv_key_free(got);
    X509_REQ_free(req);
}

/* Signs with the key from the file and verifies with the CSR's public key. */
static void check_key_signs(const attest_tlskey *k, OSSL_LIB_CTX *ctx)
{
    BIO *bio = BIO_new_mem_buf(pv_buf_data(k->pem), (int)pv_buf_len(k->pem));
    EVP_PKEY *priv = PEM_read_bio_PrivateKey_ex(bio, NULL, NULL, NULL, ctx, NULL);
    BIO_free(bio);
    assert_non_null(priv);
    const unsigned char *p = pv_buf_data(k->spki);
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, (long)pv_buf_len(k->spki));
    assert_non_null(pub);
    static const unsigned char msg[] = "a TLS handshake, more or less";
    unsigned char sig[128];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit_ex(md, NULL, "SHA256", ctx, NULL, priv, NULL), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &siglen, msg, sizeof(msg)), 1);
    EVP_MD_CTX_free(md);
    md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub), 1);
    assert_int_equal(EVP_DigestVerify(md, sig, siglen, msg, sizeof(msg)), 1);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(priv);
}

static void test_software(void **state)
{
    attest_tlskey k, k2;
    pv_err e;
    assert_int_equal(attest_tlskey_make(PV_ROT_SOFTWARE, NULL, DEVICE_ID, &k, &e), PV_OK);
    assert_true(pv_buf_len(k.pem) > 27);
    assert_memory_equal(pv_buf_data(k.pem), "-----BEGIN PRIVATE KEY-----", 27);
    check_csr(&k);
    check_key_signs(&k, NULL);
    /* Fresh every time. */
    assert_int_equal(attest_tlskey_make(PV_ROT_SOFTWARE, NULL, DEVICE_ID, &k2, &e), PV_OK);
    assert_false(pv_buf_len(k.spki) == pv_buf_len(k2.spki) &&
                 memcmp(pv_buf_data(k.spki), pv_buf_data(k2.spki), pv_buf_len(k.spki)) == 0);
    attest_tlskey_free(&k);
    attest_tlskey_free(&k2);
    attest_tlskey_free(&k2); /* twice is harmless */
    assert_int_equal(attest_tlskey_make((pv_rot_kind)7, NULL, DEVICE_ID, &k, &e),
                     PV_ERR_INVALID_ARG);
    assert_null(k.pem);
}

static void test_bad_tcti(void **state)
{
    attest_tlskey k;
    pv_err e;
    assert_int_equal(attest_tlskey_make(PV_ROT_TPM, "mssim:host=a\nb=c", DEVICE_ID, &k, &e),
                     PV_ERR_INVALID_ARG);
    assert_null(k.pem);
    char longer[PV_ROT_MAX_TCTI + 2];
    memset(longer, 'a', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    assert_int_equal(attest_tlskey_make(PV_ROT_TPM, longer, DEVICE_ID, &k, &e), PV_ERR_INVALID_ARG);
    /* The provider's own variable pointing at another TPM is refused, not followed. */
    setenv("TPM2OPENSSL_TCTI", "swtpm:path=/elsewhere", 1);
    assert_int_equal(attest_tlskey_make(PV_ROT_TPM, "swtpm:path=/here", DEVICE_ID, &k, &e),
                     PV_ERR_INVALID_ARG);
    assert_non_null(strstr(pv_err_msg(&e), "TPM2OPENSSL_TCTI"));
    unsetenv("TPM2OPENSSL_TCTI");
}

/* A library context with the tpm2 provider on tcti, as a TLS client of the key would use. */
typedef struct tctx {
    OSSL_LIB_CTX *lib;
    OSSL_PROVIDER *tpm2, *dflt;
} tctx;

static tctx tpm_ctx(const char *tcti)
{
    tctx t;
    t.lib = OSSL_LIB_CTX_new();
    setenv("TPM2OPENSSL_TCTI", tcti, 1);
    t.tpm2 = OSSL_PROVIDER_load(t.lib, "tpm2");
    t.dflt = OSSL_PROVIDER_load(t.lib, "default");
    unsetenv("TPM2OPENSSL_TCTI");
    assert_non_null(t.tpm2);
    assert_non_null(t.dflt);
    return t;
}

static void tpm_ctx_free(tctx *t)
{
    OSSL_PROVIDER_unload(t->dflt);
    OSSL_PROVIDER_unload(t->tpm2);
    OSSL_LIB_CTX_free(t->lib);
}

static void test_tpm(void **state)
{
    char *dir = tu_mkdtemp("attest_tlskey");
    char *tcti = tu_swtpm_start(dir);
    attest_tlskey k, k2;
    pv_err e;
    int r = attest_tlskey_make(PV_ROT_TPM, tcti, DEVICE_ID, &k, &e);
    if (r != PV_OK) {
        tu_swtpm_stop(dir);
        fail_msg("%d: %s", r, pv_err_msg(&e));
    }
    static const char tss2[] = "-----BEGIN TSS2 PRIVATE KEY-----";
    assert_true(pv_buf_len(k.pem) > sizeof(tss2) - 1);
    assert_memory_equal(pv_buf_data(k.pem), tss2, sizeof(tss2) - 1);
    check_csr(&k);
    /* The provider's connection was closed: a second key on the same single-connection
     * swtpm works (it would hang otherwise). */
    assert_int_equal(attest_tlskey_make(PV_ROT_TPM, tcti, DEVICE_ID, &k2, &e), PV_OK);
    check_csr(&k2);

    /* The file is useless without the TPM: plain OpenSSL cannot load it ... */
    BIO *bio = BIO_new_mem_buf(pv_buf_data(k.pem), (int)pv_buf_len(k.pem));
    EVP_PKEY *plain = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    assert_null(plain);
    BIO_free(bio);
    /* ... and the TPM signs with it for a TLS stack that loads the provider. */
    tctx ctx = tpm_ctx(tcti);
    check_key_signs(&k, ctx.lib);
    tpm_ctx_free(&ctx);

    attest_tlskey_free(&k);
    attest_tlskey_free(&k2);
    tu_swtpm_stop(dir);
    /* No TPM there any more: a clear error, no hang, and the variable is gone again. */
    pv_err_clear(&e);
    assert_int_equal(attest_tlskey_make(PV_ROT_TPM, tcti, DEVICE_ID, &k, &e), PV_ERR_ROT);
    assert_non_null(strstr(pv_err_msg(&e), "tpm2"));
    assert_null(getenv("TPM2OPENSSL_TCTI"));
    tu_rmtree(dir);
    free(dir);
    free(tcti);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_software),
        cmocka_unit_test(test_bad_tcti),
        cmocka_unit_test(test_tpm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
