/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signing digests with the TLS key (pv_attest_tls_sign, src/agent/tlskey.c): with a
 * software key and with a key made inside a real swtpm, for each digest length, checked
 * against the public key of the key's CSR. And what must be refused: digests of other
 * lengths, no key, garbage, truncated, oversized and wrong-curve key files, a key of the
 * other kind than the device's root of trust, and a TPM blob taken to another TPM.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "attest_internal.h"
#include "pavise/devstate.h"

#define DEVICE_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const size_t lengths[] = {32, 48, 64};

static const char *md_name(size_t len)
{
    return len == 32 ? "SHA256" : len == 48 ? "SHA384" : "SHA512";
}

/* A digest of len bytes of the data, as an app's TLS stack would hand it over. */
static void make_digest(size_t len, uint8_t out[64])
{
    static const char data[] = "a TLS 1.3 CertificateVerify, more or less";
    unsigned int n = 0;
    assert_int_equal(
        EVP_Digest(data, sizeof(data), out, &n, EVP_get_digestbyname(md_name(len)), NULL), 1);
    assert_int_equal(n, len);
}

/* The public key of the CSR the key came with: what the client certificate will carry. */
static EVP_PKEY *csr_key(const attest_tlskey *k)
{
    const unsigned char *p = pv_buf_data(k->csr);
    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)pv_buf_len(k->csr));
    assert_non_null(req);
    EVP_PKEY *pub = X509_REQ_get_pubkey(req);
    assert_non_null(pub);
    X509_REQ_free(req);
    return pub;
}

/* sig (r || s) verifies with pub for the digest; returns what EVP_PKEY_verify said. */
static int verify(EVP_PKEY *pub, const uint8_t *digest, size_t len, const uint8_t sig[64])
{
    ECDSA_SIG *s = ECDSA_SIG_new();
    assert_non_null(s);
    assert_int_equal(ECDSA_SIG_set0(s, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL)), 1);
    unsigned char *der = NULL;
    int n = i2d_ECDSA_SIG(s, &der);
    assert_true(n > 0);
    EVP_PKEY_CTX *vc = EVP_PKEY_CTX_new(pub, NULL);
    assert_non_null(vc);
    assert_int_equal(EVP_PKEY_verify_init(vc), 1);
    assert_true(EVP_PKEY_CTX_set_signature_md(vc, EVP_get_digestbyname(md_name(len))) > 0);
    int v = EVP_PKEY_verify(vc, der, (size_t)n, digest, len);
    EVP_PKEY_CTX_free(vc);
    OPENSSL_free(der);
    ECDSA_SIG_free(s);
    return v;
}

static char *key_path(const char *state)
{
    char *certs = tu_path(state, "certs");
    mkdir(certs, 0700);
    free(certs);
    return tu_path(state, PV_ATTEST_TLS_KEY);
}

static void write_key(const char *state, const void *data, size_t len)
{
    char *path = key_path(state);
    tu_write(path, data, len, 0600);
    free(path);
}

static void expect_refused(const char *dir, pv_rot_kind kind, const char *tcti, int code,
                           const char *says);

/* STATE/certs/client.crt for k's key: only the client certificate's key signs. */
static void write_cert(const char *state, const attest_tlskey *k)
{
    free(key_path(state)); /* makes STATE/certs */
    char *path = tu_path(state, PV_ATTEST_CLIENT_CRT);
    tu_write_cert_for(path, pv_buf_data(k->spki), pv_buf_len(k->spki));
    free(path);
}

/* Every digest length signs, each signature verifies with the CSR's key, and two
 * signatures of one digest differ (ECDSA is randomised: nothing replayed). */
static void sign_each_length(const char *state, pv_rot_kind kind, const char *tcti,
                             const attest_tlskey *k)
{
    EVP_PKEY *pub = csr_key(k);
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        uint8_t digest[64], sig[PV_ATTEST_TLS_SIG_LEN], sig2[PV_ATTEST_TLS_SIG_LEN];
        pv_err e;
        make_digest(lengths[i], digest);
        int r = pv_attest_tls_sign(state, kind, tcti, digest, lengths[i], sig, &e);
        if (r != PV_OK) {
            fail_msg("%zu bytes: %d: %s", lengths[i], r, pv_err_msg(&e));
        }
        assert_int_equal(verify(pub, digest, lengths[i], sig), 1);
        assert_int_equal(pv_attest_tls_sign(state, kind, tcti, digest, lengths[i], sig2, &e),
                         PV_OK);
        assert_int_equal(verify(pub, digest, lengths[i], sig2), 1);
        assert_memory_not_equal(sig, sig2, sizeof(sig));
        /* Not a signature of another digest. */
        digest[0] ^= 1;
        assert_int_not_equal(verify(pub, digest, lengths[i], sig), 1);
    }
    EVP_PKEY_free(pub);
}

static void test_software(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("tlssign_soft");
    attest_tlskey k;
    pv_err e;
    assert_int_equal(attest_tlskey_make(PV_ROT_SOFTWARE, NULL, DEVICE_ID, &k, &e), PV_OK);
    write_key(dir, pv_buf_data(k.pem), pv_buf_len(k.pem));
    /* A key without its certificate (an attestation that did not pass removes the
     * certificate), or beside another key's certificate, signs nothing. */
    expect_refused(dir, PV_ROT_SOFTWARE, NULL, PV_ERR_NOT_FOUND, "no client certificate");
    attest_tlskey other;
    assert_int_equal(attest_tlskey_make(PV_ROT_SOFTWARE, NULL, DEVICE_ID, &other, &e), PV_OK);
    write_cert(dir, &other);
    expect_refused(dir, PV_ROT_SOFTWARE, NULL, PV_ERR_NOT_FOUND, "not the client certificate's");
    attest_tlskey_free(&other);
    write_cert(dir, &k);
    sign_each_length(dir, PV_ROT_SOFTWARE, NULL, &k);
    attest_tlskey_free(&k);
    tu_rmtree(dir);
    free(dir);
}

/* Refused before anything is read: sig cleared, the length named. */
static void test_bad_digest(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("tlssign_digest");
    attest_tlskey k;
    pv_err e;
    assert_int_equal(attest_tlskey_make(PV_ROT_SOFTWARE, NULL, DEVICE_ID, &k, &e), PV_OK);
    write_key(dir, pv_buf_data(k.pem), pv_buf_len(k.pem));
    write_cert(dir, &k);
    static const size_t bad[] = {0, 1, 20, 31, 33, 47, 49, 63, 65, 128};
    uint8_t digest[128] = {1}, sig[PV_ATTEST_TLS_SIG_LEN];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(sig, 0xaa, sizeof(sig));
        pv_err_clear(&e);
        assert_int_equal(pv_attest_tls_sign(dir, PV_ROT_SOFTWARE, NULL, digest, bad[i], sig, &e),
                         PV_ERR_INVALID_ARG);
        assert_non_null(strstr(pv_err_msg(&e), "32, 48 or 64"));
        static const uint8_t zero[PV_ATTEST_TLS_SIG_LEN] = {0};
        assert_memory_equal(sig, zero, sizeof(sig));
        assert_int_equal(attest_tlskey_sign(PV_ROT_SOFTWARE, NULL, pv_buf_data(k.pem),
                                            pv_buf_len(k.pem), digest, bad[i], sig, &e),
                         PV_ERR_INVALID_ARG);
    }
    assert_int_equal(pv_attest_tls_sign(dir, PV_ROT_SOFTWARE, NULL, NULL, 32, sig, &e),
                     PV_ERR_INVALID_ARG);
    assert_int_equal(pv_attest_tls_sign(dir, PV_ROT_SOFTWARE, NULL, digest, 32, NULL, &e),
                     PV_ERR_INVALID_ARG);
    assert_int_equal(pv_attest_tls_sign(NULL, PV_ROT_SOFTWARE, NULL, digest, 32, sig, &e),
                     PV_ERR_INVALID_ARG);
    assert_int_equal(pv_attest_tls_sign(dir, (pv_rot_kind)7, NULL, digest, 32, sig, &e),
                     PV_ERR_INVALID_ARG);
    attest_tlskey_free(&k);
    tu_rmtree(dir);
    free(dir);
}

/* A P-384 (or any other) key in a PKCS#8 file, as a software device would keep it. */
static char *pkcs8_of(const char *type, const char *param, size_t *len)
{
    EVP_PKEY *pk = param != NULL ? EVP_PKEY_Q_keygen(NULL, NULL, type, param)
                                 : EVP_PKEY_Q_keygen(NULL, NULL, type, (size_t)2048);
    assert_non_null(pk);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL), 1);
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *copy = malloc((size_t)n + 1);
    memcpy(copy, data, (size_t)n);
    copy[n] = '\0';
    *len = (size_t)n;
    BIO_free(bio);
    EVP_PKEY_free(pk);
    return copy;
}

static void expect_refused(const char *dir, pv_rot_kind kind, const char *tcti, int code,
                           const char *says)
{
    uint8_t digest[32] = {7}, sig[PV_ATTEST_TLS_SIG_LEN];
    pv_err e;
    pv_err_clear(&e);
    int r = pv_attest_tls_sign(dir, kind, tcti, digest, sizeof(digest), sig, &e);
    if (r != code || (says != NULL && strstr(pv_err_msg(&e), says) == NULL)) {
        fail_msg("wanted %d (%s), got %d: %s", code, says != NULL ? says : "", r, pv_err_msg(&e));
    }
    static const uint8_t zero[PV_ATTEST_TLS_SIG_LEN] = {0};
    assert_memory_equal(sig, zero, sizeof(sig));
}

static void test_bad_key_file(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("tlssign_file");
    attest_tlskey k;
    pv_err e;
    /* No key: the device has not attested. */
    expect_refused(dir, PV_ROT_SOFTWARE, NULL, PV_ERR_NOT_FOUND, "not attested");

    assert_int_equal(attest_tlskey_make(PV_ROT_SOFTWARE, NULL, DEVICE_ID, &k, &e), PV_OK);
    write_cert(dir, &k);
    const char *pem = (const char *)pv_buf_data(k.pem);
    size_t len = pv_buf_len(k.pem);

    static const char garbage[] = "not a key at all\n";
    write_key(dir, garbage, sizeof(garbage) - 1);
    expect_refused(dir, PV_ROT_SOFTWARE, NULL, PV_ERR_FORMAT, "BEGIN PRIVATE KEY");
    write_key(dir, "", 0);
    expect_refused(dir, PV_ROT_SOFTWARE, NULL, PV_ERR_FORMAT, NULL);
    /* The right label, then the end cut off, or the body damaged. */
    write_key(dir, pem, len / 2);
    expect_refused(dir, PV_ROT_SOFTWARE, NULL, PV_ERR_FORMAT, "does not load");
    char *bent = malloc(len);
    memcpy(bent, pem, len);
    memset(bent + 40, 'A', 40);
    write_key(dir, bent, len);
    expect_refused(dir, PV_ROT_SOFTWARE, NULL, PV_ERR_FORMAT, NULL);
    free(bent);
    /* Over the bound: refused before it is parsed. */
    size_t big_len = PV_ATTEST_TLS_KEY_MAX + 1;
    char *big = malloc(big_len);
    memset(big, '\n', big_len);
    memcpy(big, pem, len);
    write_key(dir, big, big_len);
    expect_refused(dir, PV_ROT_SOFTWARE, NULL, PV_ERR_TOO_LARGE, NULL);
    uint8_t digest[32] = {0}, sig[PV_ATTEST_TLS_SIG_LEN];
    assert_int_equal(attest_tlskey_sign(PV_ROT_SOFTWARE, NULL, (const uint8_t *)big, big_len,
                                        digest, 32, sig, &e),
                     PV_ERR_TOO_LARGE);
    free(big);
    /* Keys that are not P-256. */
    size_t olen = 0;
    char *other = pkcs8_of("EC", "P-384", &olen);
    write_key(dir, other, olen);
    expect_refused(dir, PV_ROT_SOFTWARE, NULL, PV_ERR_FORMAT, "P-256");
    free(other);
    other = pkcs8_of("RSA", NULL, &olen);
    write_key(dir, other, olen);
    expect_refused(dir, PV_ROT_SOFTWARE, NULL, PV_ERR_FORMAT, "P-256");
    free(other);
    /* A TPM blob on a software device, and a software key on a TPM device: refused by
     * kind, before any TPM is looked for (no TPM at this TCTI). */
    static const char tss2[] = "-----BEGIN TSS2 PRIVATE KEY-----\nMAA=\n"
                               "-----END TSS2 PRIVATE KEY-----\n";
    write_key(dir, tss2, sizeof(tss2) - 1);
    expect_refused(dir, PV_ROT_SOFTWARE, NULL, PV_ERR_FORMAT, "TPM (TSS2)");
    write_key(dir, pem, len);
    expect_refused(dir, PV_ROT_TPM, "swtpm:path=/nonexistent", PV_ERR_FORMAT, "PKCS#8");
    /* A directory where the key should be. */
    char *path = key_path(dir);
    unlink(path);
    mkdir(path, 0700);
    expect_refused(dir, PV_ROT_SOFTWARE, NULL, PV_ERR_IO, NULL);
    free(path);

    attest_tlskey_free(&k);
    tu_rmtree(dir);
    free(dir);
}

static void test_tpm(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("tlssign_tpm");
    char *tpm_a = tu_path(dir, "tpm-a"), *tpm_b = tu_path(dir, "tpm-b");
    char *st = tu_path(dir, "state");
    mkdir(st, 0700);
    char *tcti = tu_swtpm_start(tpm_a);
    attest_tlskey k;
    pv_err e;
    int r = attest_tlskey_make(PV_ROT_TPM, tcti, DEVICE_ID, &k, &e);
    if (r != PV_OK) {
        tu_swtpm_stop(tpm_a);
        fail_msg("%d: %s", r, pv_err_msg(&e));
    }
    write_key(st, pv_buf_data(k.pem), pv_buf_len(k.pem));
    write_cert(st, &k);
    /* Each signature opens and closes the provider's connection: the single-connection
     * swtpm would hang on the next one otherwise. */
    sign_each_length(st, PV_ROT_TPM, tcti, &k);
    /* The blob is the TPM's: taken as a software key, refused by kind. */
    expect_refused(st, PV_ROT_SOFTWARE, NULL, PV_ERR_FORMAT, "TPM (TSS2)");
    /* The provider's variable aimed at another TPM is refused, not followed. */
    setenv("TPM2OPENSSL_TCTI", "swtpm:path=/elsewhere", 1);
    expect_refused(st, PV_ROT_TPM, tcti, PV_ERR_INVALID_ARG, "TPM2OPENSSL_TCTI");
    unsetenv("TPM2OPENSSL_TCTI");

    /* A damaged blob: the TPM does not load it. */
    const char *pem = (const char *)pv_buf_data(k.pem);
    size_t len = pv_buf_len(k.pem);
    char *bent = malloc(len);
    memcpy(bent, pem, len);
    size_t at = strlen("-----BEGIN TSS2 PRIVATE KEY-----\n") + 60;
    bent[at] = bent[at] == 'A' ? 'B' : 'A';
    write_key(st, bent, len);
    uint8_t digest[32] = {3}, sig[PV_ATTEST_TLS_SIG_LEN];
    assert_int_not_equal(pv_attest_tls_sign(st, PV_ROT_TPM, tcti, digest, 32, sig, &e), PV_OK);
    free(bent);

    /* The blob of TPM A in another TPM: its parent key there is another, so it does not
     * load (and nothing is signed). */
    write_key(st, pem, len);
    char *tcti_b = tu_swtpm_start(tpm_b);
    expect_refused(st, PV_ROT_TPM, tcti_b, PV_ERR_ROT, NULL);
    /* And TPM A still signs with it. */
    assert_int_equal(pv_attest_tls_sign(st, PV_ROT_TPM, tcti, digest, 32, sig, &e), PV_OK);
    tu_swtpm_stop(tpm_b);

    /* No TPM at all: a clear error, no hang. */
    tu_swtpm_stop(tpm_a);
    expect_refused(st, PV_ROT_TPM, tcti, PV_ERR_ROT, "tpm2");
    assert_null(getenv("TPM2OPENSSL_TCTI"));

    attest_tlskey_free(&k);
    tu_rmtree(dir);
    free(dir);
    free(tpm_a);
    free(tpm_b);
    free(st);
    free(tcti);
    free(tcti_b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_software),
        cmocka_unit_test(test_bad_digest),
        cmocka_unit_test(test_bad_key_file),
        cmocka_unit_test(test_tpm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
