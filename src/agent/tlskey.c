/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TLS key an attestation certifies, and its CSR. A software device keeps a P-256 key
 * in a PKCS#8 file. A TPM device creates the key inside the TPM through the tpm2-openssl
 * provider: the file then holds only the TPM's wrapped blob ("TSS2 PRIVATE KEY"), usable
 * only by that TPM, and the CSR is signed by the TPM.
 *
 * Apps never hold the key: the runtime signs their handshakes' digests with it
 * (attest_tlskey_sign, run by pavise-store for each request).
 *
 * The provider is loaded into a library context of our own, so nothing depends on the
 * process's OpenSSL configuration and the default context stays free of it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/x509.h>

#include "attest_internal.h"
#include "pavise/devstate.h"
#include "pavise/fs.h"
#include "pavise/x509.h"

#define KEY_PEM_MAX PV_ATTEST_TLS_KEY_MAX /* what is written is what may be read back */
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

/* ---- signing a digest with the key (pv_attest_tls_sign) ---- */

/* A digest the device signs: SHA-256, SHA-384 or SHA-512. */
static bool digest_len_ok(size_t len)
{
    return len == 32 || len == 48 || len == 64;
}

/* Never ask for a passphrase: our key files have none, and a terminal prompt in a
 * helper process would hang it. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Whether pem is a key file of the device's kind, by its size and label, before any
 * provider is started: a PKCS#8 file on a TPM device would be a key that left the TPM (or
 * was never in it), and a TSS2 blob on a software device has no TPM to go to. */
static int check_file(pv_rot_kind kind, const uint8_t *pem, size_t len, pv_err *e)
{
    const char *want = kind == PV_ROT_TPM ? PEM_TSS2 : PEM_PKCS8;
    const char *other = kind == PV_ROT_TPM ? PEM_PKCS8 : PEM_TSS2;
    size_t wl = strlen(want), ol = strlen(other);
    if (len > KEY_PEM_MAX) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "the TLS key file is over %d bytes", KEY_PEM_MAX);
    }
    if (len >= ol && memcmp(pem, other, ol) == 0) {
        return pv_err_set(e, PV_ERR_FORMAT,
                          "the TLS key file is a %s key, but the device's root of trust is %s",
                          kind == PV_ROT_TPM ? "software (PKCS#8)" : "TPM (TSS2)",
                          kind == PV_ROT_TPM ? "a TPM" : "software");
    }
    if (len < wl || memcmp(pem, want, wl) != 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "the TLS key file does not start with %s", want);
    }
    return PV_OK;
}

/* The key file, parsed in ctx (NULL: the default context). */
static int load_private(pv_rot_kind kind, OSSL_LIB_CTX *ctx, const char *propq, const uint8_t *pem,
                        size_t len, EVP_PKEY **out, pv_err *e)
{
    *out = NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        return pv_err_ssl(e, PV_ERR_NOMEM, "reading the TLS key");
    }
    EVP_PKEY *pk = PEM_read_bio_PrivateKey_ex(bio, NULL, no_passphrase, NULL, ctx, propq);
    BIO_free(bio);
    if (pk == NULL) {
        /* For a TPM key, a well-formed blob that the TPM refuses to load (made by another
         * TPM, or damaged) ends here too: the provider loads it while decoding. */
        return pv_err_ssl(e, kind == PV_ROT_TPM ? PV_ERR_ROT : PV_ERR_FORMAT,
                          "the TLS key file does not load%s",
                          kind == PV_ROT_TPM ? " into this device's TPM" : "");
    }
    *out = pk;
    return PV_OK;
}

/* The key's public half in the default context (for a TPM key: read from the TPM's
 * public area through the provider's encoder), checked to be P-256. */
static int public_half(EVP_PKEY *pk, EVP_PKEY **out, pv_err *e)
{
    *out = NULL;
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(pk, &der);
    /* Bounded loosely: a key of another type (RSA) is refused below by its type. */
    if (n <= 0 || n > 4 * KEY_PEM_MAX) {
        OPENSSL_free(der);
        return pv_err_ssl(e, PV_ERR_FORMAT, "the TLS key has no public key we can encode");
    }
    const unsigned char *p = der;
    EVP_PKEY *pub = d2i_PUBKEY_ex(NULL, &p, n, NULL, NULL);
    bool whole = p == der + n;
    OPENSSL_free(der);
    char group[32];
    size_t glen = 0;
    if (pub == NULL || !whole || !EVP_PKEY_is_a(pub, "EC") ||
        EVP_PKEY_get_group_name(pub, group, sizeof(group), &glen) != 1 ||
        strcmp(group, "prime256v1") != 0) {
        EVP_PKEY_free(pub);
        return pv_err_ssl(e, PV_ERR_FORMAT, "the TLS key is not an ECDSA P-256 key");
    }
    *out = pub;
    return PV_OK;
}

/* The signature operation of ctx/propq on key, told which hash the digest is of. */
static EVP_PKEY_CTX *sig_ctx(OSSL_LIB_CTX *ctx, EVP_PKEY *key, const char *propq, const char *md,
                             bool sign)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, (char *)md, 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(ctx, key, propq);
    if (pc != NULL &&
        (sign ? EVP_PKEY_sign_init_ex(pc, params) : EVP_PKEY_verify_init_ex(pc, params)) != 1) {
        EVP_PKEY_CTX_free(pc);
        pc = NULL;
    }
    return pc;
}

/* DER ECDSA-Sig-Value to r || s. */
static int sig_raw(const unsigned char *der, size_t len, uint8_t out[PV_ATTEST_TLS_SIG_LEN],
                   pv_err *e)
{
    const unsigned char *p = der;
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)len);
    const BIGNUM *br = NULL, *bs = NULL;
    int r = PV_ERR_CRYPTO;
    if (s != NULL && p == der + len) {
        ECDSA_SIG_get0(s, &br, &bs);
        if (BN_bn2binpad(br, out, 32) == 32 && BN_bn2binpad(bs, out + 32, 32) == 32) {
            r = PV_OK;
        }
    }
    ECDSA_SIG_free(s);
    return r == PV_OK ? r : pv_err_ssl(e, r, "the TLS key's signature is not a P-256 signature");
}

/* attest_tlskey_sign, and when spki is given the key must be the one it encodes (the client
 * certificate's). */
static int tls_sign(pv_rot_kind kind, const char *tcti, const uint8_t *pem, size_t pem_len,
                    const uint8_t *spki, size_t spki_len, const uint8_t *digest, size_t len,
                    uint8_t sig[PV_ATTEST_TLS_SIG_LEN], pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    tpm_ctx t = {0};
    OSSL_LIB_CTX *ctx = NULL;
    const char *propq = NULL;
    EVP_PKEY *priv = NULL, *pub = NULL;
    EVP_PKEY_CTX *sc = NULL, *vc = NULL;
    unsigned char der[80]; /* an ECDSA P-256 DER signature is at most 72 bytes */
    size_t der_len = sizeof(der);
    uint8_t raw[PV_ATTEST_TLS_SIG_LEN];
    if (sig != NULL) {
        memset(sig, 0, PV_ATTEST_TLS_SIG_LEN);
    }
    if (pem == NULL || digest == NULL || sig == NULL || !pv_rot_kind_valid(kind)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "signing with the TLS key: missing argument");
    }
    if (!digest_len_ok(len)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "a digest to sign is 32, 48 or 64 bytes (SHA-256, -384, -512), not %zu",
                          len);
    }
    if ((r = check_file(kind, pem, pem_len, e)) != PV_OK) {
        goto out;
    }
    if (kind == PV_ROT_TPM) {
        if ((r = tpm2_libctx(tcti, &t, e)) != PV_OK) {
            goto out;
        }
        ctx = t.lib;
        propq = "?provider=tpm2";
    }
    if ((r = load_private(kind, ctx, propq, pem, pem_len, &priv, e)) != PV_OK ||
        (r = public_half(priv, &pub, e)) != PV_OK) {
        goto out;
    }
    if (spki != NULL) {
        unsigned char *mine = NULL;
        int n = i2d_PUBKEY(pub, &mine);
        bool same = n > 0 && (size_t)n == spki_len && memcmp(mine, spki, spki_len) == 0;
        OPENSSL_free(mine);
        if (!same) {
            /* Between a new key and its certificate (an attestation that did not finish, or
             * one being stored): nothing the device may sign with as itself. */
            r = pv_err_set(e, PV_ERR_NOT_FOUND,
                           "the TLS key is not the client certificate's: no signature");
            goto out;
        }
    }
    /* ECDSA on P-256 signs the leftmost 256 bits of a longer digest, so a SHA-384 or
     * SHA-512 digest is signed as its first 32 bytes under SHA-256: the same signature, and
     * one every TPM makes (many implement no SHA-384 or SHA-512). */
    len = 32;
    if ((sc = sig_ctx(ctx, priv, propq, "SHA256", true)) == NULL ||
        EVP_PKEY_sign(sc, der, &der_len, digest, len) != 1) {
        r = pv_err_ssl(e, kind == PV_ROT_TPM ? PV_ERR_ROT : PV_ERR_CRYPTO,
                       "signing with the TLS key%s", kind == PV_ROT_TPM ? " in the TPM" : "");
        goto out;
    }
    /* Checked here, in the default provider, so a TPM or key file that signs wrongly
     * fails now and not in a relying party's handshake. */
    if ((vc = sig_ctx(NULL, pub, NULL, "SHA256", false)) == NULL ||
        EVP_PKEY_verify(vc, der, der_len, digest, len) != 1) {
        r = pv_err_ssl(e, PV_ERR_SIGNATURE,
                       "the TLS key's signature does not verify with its public key");
        goto out;
    }
    if ((r = sig_raw(der, der_len, raw, e)) != PV_OK) {
        goto out;
    }
    memcpy(sig, raw, sizeof(raw));
    r = PV_OK;
out:
    ERR_clear_error();
    EVP_PKEY_CTX_free(vc);
    EVP_PKEY_CTX_free(sc);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(priv); /* a software key's scalar is cleared by OpenSSL as it is freed */
    tpm_ctx_free(&t);
    return r;
}

int attest_tlskey_sign(pv_rot_kind kind, const char *tcti, const uint8_t *pem, size_t pem_len,
                       const uint8_t *digest, size_t len, uint8_t sig[PV_ATTEST_TLS_SIG_LEN],
                       pv_err *e)
{
    return tls_sign(kind, tcti, pem, pem_len, NULL, 0, digest, len, sig, e);
}

/* The SubjectPublicKeyInfo (DER) of the first certificate of the PEM file at path. */
static int cert_spki(const char *path, pv_buf *out, pv_err *e)
{
    pv_chain *ch = NULL;
    pv_key *k = NULL;
    int r = pv_chain_load_pem(path, &ch, e);
    if (r == PV_ERR_NOT_FOUND) {
        return pv_err_set(e, r, "the device has no client certificate (%s): it has not attested",
                          path);
    }
    if (r == PV_OK && (r = pv_cert_public_key(pv_chain_get(ch, 0), &k, e)) == PV_OK &&
        (r = pv_key_spki_der(k, out)) != PV_OK) {
        pv_err_set(e, r, "%s: encoding its public key", path);
    }
    pv_key_free(k);
    pv_chain_free(ch);
    return r;
}

int pv_attest_tls_sign(const char *state_dir, pv_rot_kind kind, const char *tcti,
                       const uint8_t *digest, size_t len, uint8_t sig[PV_ATTEST_TLS_SIG_LEN],
                       pv_err *e)
{
    if (sig != NULL) {
        memset(sig, 0, PV_ATTEST_TLS_SIG_LEN);
    }
    if (state_dir == NULL || digest == NULL || sig == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "signing with the TLS key: missing argument");
    }
    /* The request is checked before the key is read: a malformed one costs nothing. */
    if (!digest_len_ok(len)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "a digest to sign is 32, 48 or 64 bytes (SHA-256, -384, -512), not %zu",
                          len);
    }
    char *path = pv_devstate_path(state_dir, PV_ATTEST_TLS_KEY);
    char *crt = pv_devstate_path(state_dir, PV_ATTEST_CLIENT_CRT);
    uint8_t *pem = NULL;
    size_t pem_len = 0;
    pv_buf *spki = pv_buf_new(SPKI_MAX);
    int r = PV_ERR_NOMEM;
    if (path == NULL || crt == NULL || spki == NULL) {
        r = pv_err_set(e, r, "out of memory");
        goto out;
    }
    /* Only the key of the client certificate the device holds now signs: after an
     * attestation that did not pass, the certificate is gone and so is the signing. */
    if ((r = cert_spki(crt, spki, e)) != PV_OK) {
        goto out;
    }
    r = pv_fs_read_file(path, KEY_PEM_MAX, &pem, &pem_len, e);
    if (r == PV_ERR_NOT_FOUND) {
        pv_err_set(e, r, "the device has no TLS key yet (%s): it has not attested", path);
    } else if (r == PV_OK) {
        r = tls_sign(kind, tcti, pem, pem_len, pv_buf_data(spki), pv_buf_len(spki), digest, len,
                     sig, e);
    }
out:
    if (pem != NULL) {
        OPENSSL_cleanse(pem, pem_len);
    }
    free(pem);
    pv_buf_free(spki);
    free(crt);
    free(path);
    return r;
}
