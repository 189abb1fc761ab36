/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TLS key an attestation certifies, and its CSR. A software device keeps a P-256 key
 * in a PKCS#8 file. A TPM device creates the key inside the TPM through the tpm2-openssl
 * provider: the file then holds only the TPM's wrapped blob ("TSS2 PRIVATE KEY"), usable
 * only by that TPM, and the CSR is signed by the TPM.
 *
 * The provider is loaded into a library context of our own, so nothing depends on the
 * process's OpenSSL configuration and the default context stays free of it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/x509.h>

#include "attest_internal.h"

#define KEY_PEM_MAX 8192
#define SPKI_MAX    256
#define TCTI_ENV    "TPM2OPENSSL_TCTI"

/* The PEM labels we expect: anything else means the wrong provider wrote the key. */
#define PEM_PKCS8 "-----BEGIN PRIVATE KEY-----"
#define PEM_TSS2  "-----BEGIN TSS2 PRIVATE KEY-----"

void attest_tlskey_free(attest_tlskey *k)
{
    if (k == NULL) {
        return;
    }
    pv_buf_free(k->pem);
    pv_buf_free(k->csr);
    pv_buf_free(k->spki);
    memset(k, 0, sizeof(*k));
}

/* A library context with the tpm2 provider (talking to tcti) and the default provider
 * (for everything the TPM does not do: encoding, hashing the CSR's contents).
 *
 * tpm2-openssl 1.1 takes its TCTI from the environment variable TPM2OPENSSL_TCTI only
 * (a "tcti" configuration parameter is not passed on by OpenSSL 3.0), so it is set for
 * the moment the provider starts and removed again. Like every use of setenv this is not
 * safe while other threads read the environment; attestation runs on one thread. */
typedef struct tpm_ctx {
    OSSL_LIB_CTX *lib;
    OSSL_PROVIDER *tpm2, *dflt;
} tpm_ctx;

/* Unloads the providers (the TPM connection closes with the tpm2 one) and frees the
 * context. OSSL_LIB_CTX_free alone would leave the references OSSL_PROVIDER_load took. */
static void tpm_ctx_free(tpm_ctx *t)
{
    if (t->dflt != NULL) {
        OSSL_PROVIDER_unload(t->dflt);
    }
    if (t->tpm2 != NULL) {
        OSSL_PROVIDER_unload(t->tpm2);
    }
    OSSL_LIB_CTX_free(t->lib);
    memset(t, 0, sizeof(*t));
}

static int tpm2_libctx(const char *tcti, tpm_ctx *out, pv_err *e)
{
    memset(out, 0, sizeof(*out));
    int r = PV_ERR_INTERNAL;
    tpm_ctx t = {0};
    bool set = false;
    if (tcti == NULL) {
        tcti = "";
    }
    if (strlen(tcti) > PV_ROT_MAX_TCTI) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "the TCTI is longer than %d bytes",
                          PV_ROT_MAX_TCTI);
    }
    for (const char *p = tcti; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f) {
            return pv_err_set(e, PV_ERR_INVALID_ARG, "the TCTI holds control characters");
        }
    }
    /* Set by somebody else, it would take the key to another TPM than the root of
     * trust's: refuse instead of guessing. */
    const char *env = getenv(TCTI_ENV);
    if (env != NULL && strcmp(env, tcti) != 0) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "%s is set to another TPM than the device's (%s)",
                          TCTI_ENV, tcti[0] != '\0' ? tcti : "the default");
    }
    if ((t.lib = OSSL_LIB_CTX_new()) == NULL) {
        return pv_err_ssl(e, PV_ERR_NOMEM, "creating a library context for the TPM key");
    }
    if (env == NULL && tcti[0] != '\0') {
        if (setenv(TCTI_ENV, tcti, 1) != 0) {
            r = pv_err_sys(e, PV_ERR_NOMEM, errno, "passing the TCTI to the tpm2 provider");
            goto out;
        }
        set = true;
    }
    /* Loaded, not only registered: a TPM that cannot be reached fails here. */
    if ((t.tpm2 = OSSL_PROVIDER_load(t.lib, "tpm2")) == NULL) {
        r = pv_err_ssl(e, PV_ERR_ROT,
                       "the tpm2 OpenSSL provider (package tpm2-openssl) did not start on TPM %s",
                       tcti[0] != '\0' ? tcti : "(default)");
        goto out;
    }
    if ((t.dflt = OSSL_PROVIDER_load(t.lib, "default")) == NULL) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "loading OpenSSL's default provider");
        goto out;
    }
    *out = t;
    memset(&t, 0, sizeof(t));
    r = PV_OK;
out:
    if (set) {
        unsetenv(TCTI_ENV);
    }
    tpm_ctx_free(&t);
    return r;
}

static int generate(OSSL_LIB_CTX *ctx, const char *propq, EVP_PKEY **out, pv_err *e)
{
    *out = NULL;
    EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_from_name(ctx, "EC", propq);
    int r = PV_ERR_CRYPTO;
    if (kctx == NULL || EVP_PKEY_keygen_init(kctx) <= 0 ||
        EVP_PKEY_CTX_set_group_name(kctx, "P-256") <= 0 || EVP_PKEY_generate(kctx, out) <= 0) {
        r = pv_err_ssl(e, ctx != NULL ? PV_ERR_ROT : PV_ERR_CRYPTO, "generating the TLS key%s",
                       ctx != NULL ? " in the TPM" : "");
    } else {
        r = PV_OK;
    }
    EVP_PKEY_CTX_free(kctx);
    return r;
}

static int bio_to_buf(BIO *bio, pv_buf *out, const char *what, pv_err *e)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    if (n <= 0) {
        return pv_err_set(e, PV_ERR_CRYPTO, "%s is empty", what);
    }
    int r = pv_buf_append(out, data, (size_t)n);
    return r == PV_OK ? r : pv_err_set(e, r, "%s is larger than %zu bytes", what, pv_buf_max(out));
}

static int key_pem(EVP_PKEY *pk, OSSL_LIB_CTX *ctx, const char *propq, pv_buf *out, pv_err *e)
{
    int r = PV_ERR_CRYPTO;
    BIO *bio = BIO_new(BIO_s_secmem());
    if (bio == NULL ||
        PEM_write_bio_PrivateKey_ex(bio, pk, NULL, NULL, 0, NULL, NULL, ctx, propq) != 1) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "writing the TLS key");
    } else {
        r = bio_to_buf(bio, out, "the TLS key file", e);
    }
    BIO_free(bio);
    if (r != PV_OK) {
        return r;
    }
    const char *want = ctx != NULL ? PEM_TSS2 : PEM_PKCS8;
    if (pv_buf_len(out) < strlen(want) || memcmp(pv_buf_data(out), want, strlen(want)) != 0) {
        return pv_err_set(e, PV_ERR_CRYPTO, "the TLS key was not written as %s", want + 11);
    }
    return PV_OK;
}

/* Builds and signs the CSR, then reads it back in the default context: the public key
 * the binding hashes is the one a verifier will find in the CSR, and its signature is
 * checked once here so a TPM that signed wrongly fails on the device, not at the service. */
static int make_csr(EVP_PKEY *pk, OSSL_LIB_CTX *ctx, const char *propq, const char *device_id,
                    attest_tlskey *k, pv_err *e)
{
    int r = PV_ERR_CRYPTO;
    X509_REQ *req = X509_REQ_new_ex(ctx, propq), *back = NULL;
    X509_NAME *name = X509_NAME_new();
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *der = NULL, *spki = NULL;
    if (req == NULL || name == NULL || md == NULL) {
        r = pv_err_ssl(e, PV_ERR_NOMEM, "building the certificate request");
        goto out;
    }
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)device_id, -1,
                                   -1, 0) != 1 ||
        X509_REQ_set_version(req, 0) != 1 || X509_REQ_set_subject_name(req, name) != 1 ||
        X509_REQ_set_pubkey(req, pk) != 1) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "building the certificate request");
        goto out;
    }
    if (EVP_DigestSignInit_ex(md, NULL, "SHA256", ctx, propq, pk, NULL) != 1 ||
        X509_REQ_sign_ctx(req, md) <= 0) {
        r = pv_err_ssl(e, ctx != NULL ? PV_ERR_ROT : PV_ERR_CRYPTO,
                       "signing the certificate request%s", ctx != NULL ? " in the TPM" : "");
        goto out;
    }
    int n = i2d_X509_REQ(req, &der);
    if (n <= 0) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "encoding the certificate request");
        goto out;
    }
    if ((size_t)n > ATTEST_CSR_MAX) {
        r = pv_err_set(e, PV_ERR_TOO_LARGE, "the certificate request is over %d bytes",
                       ATTEST_CSR_MAX);
        goto out;
    }
    const unsigned char *p = der;
    back = d2i_X509_REQ(NULL, &p, n);
    EVP_PKEY *pub = back != NULL ? X509_REQ_get0_pubkey(back) : NULL;
    if (pub == NULL || p != der + n || X509_REQ_verify(back, pub) != 1) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "the certificate request does not verify");
        goto out;
    }
    int sn = i2d_PUBKEY(pub, &spki);
    if (sn <= 0) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "encoding the TLS public key");
        goto out;
    }
    if ((r = pv_buf_append(k->csr, der, (size_t)n)) != PV_OK ||
        (r = pv_buf_append(k->spki, spki, (size_t)sn)) != PV_OK) {
        r = pv_err_set(e, r, "storing the certificate request");
        goto out;
    }
    r = PV_OK;
out:
    OPENSSL_free(der);
    OPENSSL_free(spki);
    X509_REQ_free(back);
    EVP_MD_CTX_free(md);
    X509_NAME_free(name);
    X509_REQ_free(req);
    return r;
}

int attest_tlskey_make(pv_rot_kind kind, const char *tcti, const char *device_id,
                       attest_tlskey *out, pv_err *e)
{
    memset(out, 0, sizeof(*out));
    int r = PV_ERR_INTERNAL;
    tpm_ctx t = {0};
    OSSL_LIB_CTX *ctx = NULL;
    EVP_PKEY *pk = NULL;
    const char *propq = NULL;
    attest_tlskey k = {0};
    if (device_id == NULL || !pv_rot_kind_valid(kind)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "TLS key: missing argument");
    }
    k.pem = pv_buf_new(KEY_PEM_MAX);
    k.csr = pv_buf_new(ATTEST_CSR_MAX);
    k.spki = pv_buf_new(SPKI_MAX);
    if (k.pem == NULL || k.csr == NULL || k.spki == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    pv_buf_set_secret(k.pem);
    if (kind == PV_ROT_TPM) {
        if ((r = tpm2_libctx(tcti, &t, e)) != PV_OK) {
            goto out;
        }
        ctx = t.lib;
        propq = "?provider=tpm2"; /* the key from the TPM; anything else may come from default */
    }
    if ((r = generate(ctx, propq, &pk, e)) != PV_OK ||
        (r = make_csr(pk, ctx, propq, device_id, &k, e)) != PV_OK ||
        (r = key_pem(pk, ctx, propq, k.pem, e)) != PV_OK) {
        goto out;
    }
    *out = k;
    memset(&k, 0, sizeof(k));
    r = PV_OK;
out:
    attest_tlskey_free(&k);
    EVP_PKEY_free(pk);
    tpm_ctx_free(&t);
    return r;
}
