/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TPM enrollment proof, verifier side; the protocol is described in
 * docs/protocol/enrollment.md.
 *
 * TPM2_MakeCredential is computed here with OpenSSL, following TPM 2.0 Library Part 1
 * §24 (Credential Protection) and §11.4.10.2 (KDFa), for an RSA EK made from the TCG
 * default template (nameAlg SHA-256, symmetric AES-128-CFB):
 *   seed       = 32 random bytes
 *   secret     = RSA-OAEP(EK, SHA-256, label "IDENTITY\0", seed)
 *   symKey     = KDFa(SHA-256, seed, "STORAGE", name, "", 128)
 *   hmacKey    = KDFa(SHA-256, seed, "INTEGRITY", "", "", 256)
 *   encIdentity= AES-128-CFB(symKey, IV 0, TPM2B_DIGEST(credential))
 *   outerHMAC  = HMAC-SHA-256(hmacKey, encIdentity || name)
 *   blob       = TPM2B_ID_OBJECT(TPM2B_DIGEST(outerHMAC) || encIdentity)
 */
#include "pavise/enroll.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <tss2/tss2_mu.h>

#define SEED_LEN      32 /* the EK's name algorithm digest size */
#define SYM_KEY_LEN   16 /* AES-128, the EK template's symmetric algorithm */
#define HMAC_KEY_LEN  32
#define EK_RSA_BITS   2048
#define P256_COORD    32
#define ENC_ID_LEN    (2 + PV_ENROLL_ANSWER_LEN) /* TPM2B_DIGEST(credential) */
#define TCG_KP_EK_OID "2.23.133.8.1"

struct pv_enroll_challenge {
    uint8_t credential[PV_ENROLL_ANSWER_LEN];
    bool used; /* checked once already; credential is wiped */
    uint8_t ak_name[PV_ENROLL_AK_NAME_LEN];
    uint8_t blob[sizeof(TPM2B_ID_OBJECT)];
    size_t blob_len;
    uint8_t secret[sizeof(TPM2B_ENCRYPTED_SECRET)];
    size_t secret_len;
};

/* ---- the attestation key's public area ---- */

static const struct {
    TPMA_OBJECT bit;
    bool set;
    const char *name;
} ak_attributes[] = {
    {TPMA_OBJECT_FIXEDTPM, true, "fixedTPM"},
    {TPMA_OBJECT_FIXEDPARENT, true, "fixedParent"},
    {TPMA_OBJECT_SENSITIVEDATAORIGIN, true, "sensitiveDataOrigin"},
    {TPMA_OBJECT_RESTRICTED, true, "restricted"},
    {TPMA_OBJECT_SIGN_ENCRYPT, true, "sign"},
    {TPMA_OBJECT_DECRYPT, false, "decrypt"},
};

/* A TPM refuses to create an object with these set, so no TPM's AK has them. */
#define AK_RESERVED_ATTRIBUTES                                                                     \
    (TPMA_OBJECT_RESERVED1_MASK | TPMA_OBJECT_RESERVED2_MASK | TPMA_OBJECT_RESERVED3_MASK |        \
     TPMA_OBJECT_RESERVED4_MASK | TPMA_OBJECT_RESERVED5_MASK)

/* Unmarshals exactly one TPMT_PUBLIC and insists that it is in the encoding the TPM
 * itself would produce, since the TPM's name is the hash of its own encoding. */
static int unmarshal_public(const uint8_t *p, size_t len, TPMT_PUBLIC *pub, pv_err *e)
{
    size_t off = 0;
    memset(pub, 0, sizeof(*pub));
    if (len == 0) {
        return pv_err_set(e, PV_ERR_TRUNCATED, "AK public area is empty");
    }
    if (len > PV_ENROLL_MAX_TPM_PUBLIC) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "AK public area is %zu bytes, at most %d allowed",
                          len, PV_ENROLL_MAX_TPM_PUBLIC);
    }
    TSS2_RC rc = Tss2_MU_TPMT_PUBLIC_Unmarshal(p, len, &off, pub);
    if (rc != TSS2_RC_SUCCESS) {
        return pv_err_set(e, PV_ERR_FORMAT,
                          "AK public area is not a TPMT_PUBLIC (unmarshal error 0x%x)",
                          (unsigned)rc);
    }
    if (off != len) {
        return pv_err_set(e, PV_ERR_FORMAT, "AK public area has %zu bytes after the TPMT_PUBLIC",
                          len - off);
    }
    uint8_t again[PV_ENROLL_MAX_TPM_PUBLIC];
    size_t again_len = 0;
    rc = Tss2_MU_TPMT_PUBLIC_Marshal(pub, again, sizeof(again), &again_len);
    if (rc != TSS2_RC_SUCCESS || again_len != len || memcmp(again, p, len) != 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "AK public area is not in canonical encoding");
    }
    return PV_OK;
}

static int check_ak_properties(const TPMT_PUBLIC *pub, pv_err *e)
{
    const TPMS_ECC_PARMS *ecc = &pub->parameters.eccDetail;
    if (pub->type != TPM2_ALG_ECC) {
        return pv_err_set(e, PV_ERR_FORMAT, "AK is not an ECC key (type 0x%04x)", pub->type);
    }
    if (pub->nameAlg != TPM2_ALG_SHA256) {
        return pv_err_set(e, PV_ERR_FORMAT, "AK name algorithm is not SHA-256 (0x%04x)",
                          pub->nameAlg);
    }
    for (size_t i = 0; i < sizeof(ak_attributes) / sizeof(ak_attributes[0]); i++) {
        bool set = (pub->objectAttributes & ak_attributes[i].bit) != 0;
        if (set != ak_attributes[i].set) {
            return pv_err_set(e, PV_ERR_FORMAT,
                              "AK attribute %s is %s; an attestation key needs it %s",
                              ak_attributes[i].name, set ? "set" : "clear",
                              ak_attributes[i].set ? "set" : "clear");
        }
    }
    if (pub->objectAttributes & AK_RESERVED_ATTRIBUTES) {
        return pv_err_set(e, PV_ERR_FORMAT, "AK has reserved attribute bits set (0x%08x)",
                          (unsigned)(pub->objectAttributes & AK_RESERVED_ATTRIBUTES));
    }
    if (ecc->curveID != TPM2_ECC_NIST_P256) {
        return pv_err_set(e, PV_ERR_FORMAT, "AK curve is not NIST P-256 (0x%04x)", ecc->curveID);
    }
    if (ecc->symmetric.algorithm != TPM2_ALG_NULL || ecc->kdf.scheme != TPM2_ALG_NULL) {
        return pv_err_set(e, PV_ERR_FORMAT,
                          "AK has a symmetric algorithm or a KDF; a signing key has neither");
    }
    if (ecc->scheme.scheme != TPM2_ALG_ECDSA ||
        ecc->scheme.details.ecdsa.hashAlg != TPM2_ALG_SHA256) {
        return pv_err_set(e, PV_ERR_FORMAT, "AK scheme is not ECDSA with SHA-256");
    }
    if (pub->unique.ecc.x.size == 0 || pub->unique.ecc.x.size > P256_COORD ||
        pub->unique.ecc.y.size == 0 || pub->unique.ecc.y.size > P256_COORD) {
        return pv_err_set(e, PV_ERR_FORMAT, "AK point coordinates are not P-256 sized");
    }
    return PV_OK;
}

/* x and y of a P-256 key, 32 bytes each, big-endian. */
static int key_point(const pv_key *k, uint8_t x[P256_COORD], uint8_t y[P256_COORD], pv_err *e)
{
    BIGNUM *bx = NULL, *by = NULL;
    EVP_PKEY *pk = pv_key_evp(k);
    int r = PV_ERR_CRYPTO;
    if (pk == NULL || EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, &bx) != 1 ||
        EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, &by) != 1 ||
        BN_bn2binpad(bx, x, P256_COORD) != P256_COORD ||
        BN_bn2binpad(by, y, P256_COORD) != P256_COORD) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "reading the attestation key's point");
        goto out;
    }
    r = PV_OK;
out:
    BN_free(bx);
    BN_free(by);
    return r;
}

/* A coordinate of the public area, left-padded to 32 bytes (a TPM pads them itself,
 * but the structure would allow fewer bytes). */
static void pad_coord(const TPM2B_ECC_PARAMETER *c, uint8_t out[P256_COORD])
{
    memset(out, 0, P256_COORD);
    memcpy(out + P256_COORD - c->size, c->buffer, c->size);
}

int pv_enroll_check_ak_public(const uint8_t *tpm_public, size_t len, const pv_key *attestation_key,
                              uint8_t name[PV_ENROLL_AK_NAME_LEN], pv_err *e)
{
    TPMT_PUBLIC pub;
    uint8_t kx[P256_COORD], ky[P256_COORD], px[P256_COORD], py[P256_COORD];
    int r;
    if (tpm_public == NULL || attestation_key == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no AK public area or attestation key");
    }
    if ((r = unmarshal_public(tpm_public, len, &pub, e)) != PV_OK ||
        (r = check_ak_properties(&pub, e)) != PV_OK ||
        (r = key_point(attestation_key, kx, ky, e)) != PV_OK) {
        return r;
    }
    pad_coord(&pub.unique.ecc.x, px);
    pad_coord(&pub.unique.ecc.y, py);
    if (memcmp(px, kx, P256_COORD) != 0 || memcmp(py, ky, P256_COORD) != 0) {
        return pv_err_set(e, PV_ERR_SIGNATURE,
                          "AK public area holds another key than the declared attestation key");
    }
    if (name != NULL) {
        name[0] = (uint8_t)(TPM2_ALG_SHA256 >> 8);
        name[1] = (uint8_t)(TPM2_ALG_SHA256 & 0xff);
        if (pv_sha256_digest(tpm_public, len, name + 2) != PV_OK) {
            return pv_err_set(e, PV_ERR_CRYPTO, "hashing the AK public area");
        }
    }
    return PV_OK;
}

/* ---- the endorsement key ---- */

/* What the TCG EK Credential Profile says an EK certificate is, as far as a verifier
 * needs it: a vendor CA could also issue platform or other certificates, whose keys
 * ActivateCredential would never use, so only EK certificates are taken. */
static int check_ek_usage(X509 *x, pv_err *e)
{
    uint32_t flags = X509_get_extension_flags(x);
    if (flags & EXFLAG_INVALID) {
        return pv_err_set(e, PV_ERR_UNTRUSTED, "EK certificate extensions cannot be decoded");
    }
    if (X509_check_ca(x) != 0) {
        return pv_err_set(e, PV_ERR_UNTRUSTED, "EK certificate is a CA certificate");
    }
    if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(x) & KU_KEY_ENCIPHERMENT)) {
        return pv_err_set(e, PV_ERR_UNTRUSTED,
                          "EK certificate key usage does not include keyEncipherment");
    }
    if (flags & EXFLAG_XKUSAGE) {
        int r = PV_ERR_UNTRUSTED;
        ASN1_OBJECT *want = OBJ_txt2obj(TCG_KP_EK_OID, 1);
        EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
        if (want == NULL || eku == NULL) {
            r = pv_err_ssl(e, PV_ERR_UNTRUSTED, "reading the EK certificate's extended key usage");
        } else {
            for (int i = 0; i < sk_ASN1_OBJECT_num(eku); i++) {
                if (OBJ_cmp(sk_ASN1_OBJECT_value(eku, i), want) == 0) {
                    r = PV_OK;
                }
            }
            if (r != PV_OK) {
                pv_err_set(e, r,
                           "EK certificate extended key usage does not include "
                           "tcg-kp-EKCertificate (" TCG_KP_EK_OID ")");
            }
        }
        sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
        ASN1_OBJECT_free(want);
        return r;
    }
    return PV_OK;
}

/* Verifies the EK certificate and returns its RSA key (a new reference). */
static int verify_ek(const uint8_t *der, size_t len, const pv_chain *intermediates,
                     const pv_trust *cas, int64_t at, EVP_PKEY **out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    pv_cert *ek = NULL;
    pv_chain *chain = NULL;
    if (der == NULL || len == 0) {
        return pv_err_set(e, PV_ERR_TRUNCATED, "no EK certificate");
    }
    if (len > PV_ENROLL_MAX_EK_CERT) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "EK certificate is %zu bytes, at most %d allowed",
                          len, PV_ENROLL_MAX_EK_CERT);
    }
    if ((r = pv_cert_from_der(der, len, &ek, e)) != PV_OK) {
        pv_err_wrap(e, r, "EK certificate");
        goto out;
    }
    if ((chain = pv_chain_new()) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    size_t n = intermediates != NULL ? pv_chain_count(intermediates) : 0;
    if ((r = pv_chain_add(chain, ek)) != PV_OK) {
        r = pv_err_set(e, r, "EK certificate: %s", pv_strerror(r));
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((r = pv_chain_add(chain, pv_chain_get(intermediates, i))) != PV_OK) {
            r = pv_err_set(e, r, "EK intermediates: more than %d certificates with the EK's",
                           PV_CHAIN_MAX_CERTS);
            goto out;
        }
    }
    /* No purpose flag: the EK's purpose is checked below. Extra intermediates are
     * allowed, so a verifier can pass its whole bundle of vendor intermediates. */
    if ((r = pv_chain_verify(chain, cas, at, 0, e)) != PV_OK) {
        pv_err_wrap(e, r, "EK certificate");
        goto out;
    }
    X509 *x = pv_cert_x509(ek);
    EVP_PKEY *pk = X509_get0_pubkey(x);
    if (pk == NULL || EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA ||
        EVP_PKEY_get_bits(pk) != EK_RSA_BITS) {
        r = pv_err_set(e, PV_ERR_UNSUPPORTED, "EK is not an RSA %d key", EK_RSA_BITS);
        goto out;
    }
    if ((r = check_ek_usage(x, e)) != PV_OK) {
        goto out;
    }
    if (EVP_PKEY_up_ref(pk) != 1) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "EK key");
        goto out;
    }
    *out = pk;
    r = PV_OK;
out:
    pv_chain_free(chain);
    pv_cert_free(ek);
    return r;
}

/* ---- TPM2_MakeCredential ---- */

/* KDFa (Part 1 §11.4.10.2) with HMAC-SHA-256: for i = 1, 2, ...
 *   HMAC(key, [i]32 || label || 0x00 || context_u || context_v || [bits]32)
 * concatenated and cut to out_len bytes (whole bytes only: no caller needs a partial one). */
static int kdfa_sha256(const uint8_t *key, size_t key_len, const char *label,
                       const uint8_t *context_u, size_t u_len, uint8_t *out, size_t out_len)
{
    uint8_t block[PV_SHA256_LEN];
    uint8_t be[4];
    uint32_t bits = (uint32_t)(out_len * 8);
    int r = PV_ERR_CRYPTO;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (ctx == NULL) {
        goto out;
    }
    for (uint32_t i = 1, done = 0; done < out_len; i++) {
        size_t n = 0;
        be[0] = (uint8_t)(i >> 24), be[1] = (uint8_t)(i >> 16), be[2] = (uint8_t)(i >> 8);
        be[3] = (uint8_t)i;
        if (EVP_MAC_init(ctx, key, key_len, params) != 1 || EVP_MAC_update(ctx, be, 4) != 1 ||
            EVP_MAC_update(ctx, (const uint8_t *)label, strlen(label) + 1) != 1 ||
            (u_len > 0 && EVP_MAC_update(ctx, context_u, u_len) != 1)) {
            goto out;
        }
        be[0] = (uint8_t)(bits >> 24), be[1] = (uint8_t)(bits >> 16), be[2] = (uint8_t)(bits >> 8);
        be[3] = (uint8_t)bits;
        if (EVP_MAC_update(ctx, be, 4) != 1 || EVP_MAC_final(ctx, block, &n, sizeof(block)) != 1 ||
            n != sizeof(block)) {
            goto out;
        }
        size_t take = out_len - done < n ? out_len - done : n;
        memcpy(out + done, block, take);
        done += (uint32_t)take;
    }
    r = PV_OK;
out:
    pv_wipe(block, sizeof(block));
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return r;
}

/* RSA-OAEP with SHA-256 (and MGF1-SHA-256) and the label "IDENTITY\0", as the TPM
 * decrypts a credential seed with an RSA EK. */
static int oaep_encrypt_seed(EVP_PKEY *ek, const uint8_t seed[SEED_LEN],
                             TPM2B_ENCRYPTED_SECRET *out, pv_err *e)
{
    static const char label[] = "IDENTITY"; /* the NUL is part of the label */
    int r = PV_ERR_CRYPTO;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(ek, NULL);
    void *l = OPENSSL_memdup(label, sizeof(label));
    size_t n = sizeof(out->secret);
    if (ctx == NULL || l == NULL || EVP_PKEY_encrypt_init(ctx) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, l, (int)sizeof(label)) != 1) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "setting up RSA-OAEP to the EK");
        goto out;
    }
    l = NULL; /* owned by ctx */
    if (EVP_PKEY_encrypt(ctx, out->secret, &n, seed, SEED_LEN) != 1 || n > UINT16_MAX) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "encrypting the seed to the EK");
        goto out;
    }
    out->size = (UINT16)n;
    r = PV_OK;
out:
    OPENSSL_free(l);
    EVP_PKEY_CTX_free(ctx);
    return r;
}

static int aes128_cfb(const uint8_t key[SYM_KEY_LEN], const uint8_t *in, size_t len, uint8_t *out)
{
    static const uint8_t iv[16] = {0};
    int n = 0, fin = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int ok = ctx != NULL && EVP_EncryptInit_ex(ctx, EVP_aes_128_cfb128(), NULL, key, iv) == 1 &&
             EVP_EncryptUpdate(ctx, out, &n, in, (int)len) == 1 &&
             EVP_EncryptFinal_ex(ctx, out + n, &fin) == 1 && (size_t)(n + fin) == len;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? PV_OK : PV_ERR_CRYPTO;
}

static int make_credential(pv_enroll_challenge *c, EVP_PKEY *ek, pv_err *e)
{
    uint8_t seed[SEED_LEN], sym_key[SYM_KEY_LEN], hmac_key[HMAC_KEY_LEN];
    uint8_t plain[ENC_ID_LEN], hmac_in[ENC_ID_LEN + PV_ENROLL_AK_NAME_LEN];
    TPM2B_ENCRYPTED_SECRET secret = {0};
    TPM2B_ID_OBJECT blob = {0};
    unsigned int hmac_len = 0;
    int r = PV_ERR_CRYPTO;

    if (pv_random_bytes(seed, sizeof(seed)) != PV_OK ||
        pv_random_bytes(c->credential, sizeof(c->credential)) != PV_OK) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "random bytes");
        goto out;
    }
    if ((r = oaep_encrypt_seed(ek, seed, &secret, e)) != PV_OK) {
        goto out;
    }
    if (kdfa_sha256(seed, sizeof(seed), "STORAGE", c->ak_name, sizeof(c->ak_name), sym_key,
                    sizeof(sym_key)) != PV_OK ||
        kdfa_sha256(seed, sizeof(seed), "INTEGRITY", NULL, 0, hmac_key, sizeof(hmac_key)) !=
            PV_OK) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "KDFa");
        goto out;
    }
    /* blob.credential = TPM2B_DIGEST(outerHMAC) || encIdentity; encIdentity is
     * written in place after the 34 bytes of the HMAC's TPM2B. */
    uint8_t *hmac_2b = blob.credential;
    uint8_t *enc_identity = blob.credential + 2 + PV_SHA256_LEN;
    plain[0] = 0;
    plain[1] = PV_ENROLL_ANSWER_LEN;
    memcpy(plain + 2, c->credential, PV_ENROLL_ANSWER_LEN);
    if (aes128_cfb(sym_key, plain, sizeof(plain), enc_identity) != PV_OK) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "AES-128-CFB");
        goto out;
    }
    memcpy(hmac_in, enc_identity, ENC_ID_LEN);
    memcpy(hmac_in + ENC_ID_LEN, c->ak_name, PV_ENROLL_AK_NAME_LEN);
    if (HMAC(EVP_sha256(), hmac_key, sizeof(hmac_key), hmac_in, sizeof(hmac_in), hmac_2b + 2,
             &hmac_len) == NULL ||
        hmac_len != PV_SHA256_LEN) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "HMAC-SHA-256");
        goto out;
    }
    hmac_2b[0] = 0;
    hmac_2b[1] = PV_SHA256_LEN;
    blob.size = 2 + PV_SHA256_LEN + ENC_ID_LEN;

    size_t off = 0;
    if (Tss2_MU_TPM2B_ID_OBJECT_Marshal(&blob, c->blob, sizeof(c->blob), &off) != TSS2_RC_SUCCESS) {
        r = pv_err_set(e, PV_ERR_INTERNAL, "marshaling the credential blob");
        goto out;
    }
    c->blob_len = off;
    off = 0;
    if (Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal(&secret, c->secret, sizeof(c->secret), &off) !=
        TSS2_RC_SUCCESS) {
        r = pv_err_set(e, PV_ERR_INTERNAL, "marshaling the encrypted secret");
        goto out;
    }
    c->secret_len = off;
    r = PV_OK;
out:
    pv_wipe(seed, sizeof(seed));
    pv_wipe(sym_key, sizeof(sym_key));
    pv_wipe(hmac_key, sizeof(hmac_key));
    pv_wipe(plain, sizeof(plain));
    pv_wipe(hmac_in, sizeof(hmac_in));
    return r;
}

/* ---- the challenge ---- */

int pv_enroll_challenge_create(const pv_enroll_request *req, const pv_chain *ek_intermediates,
                               const pv_trust *tpm_vendor_cas, int64_t at,
                               pv_enroll_challenge **out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    EVP_PKEY *ek = NULL;
    pv_enroll_challenge *c = NULL;
    if (out == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no output");
    }
    *out = NULL;
    if (req == NULL || tpm_vendor_cas == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no request or no TPM vendor CAs");
    }
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    if ((r = verify_ek(req->ek_cert_der, req->ek_cert_len, ek_intermediates, tpm_vendor_cas, at,
                       &ek, e)) != PV_OK) {
        goto out;
    }
    r = pv_enroll_check_ak_public(req->ak_tpm_public, req->ak_tpm_public_len, req->attestation_key,
                                  c->ak_name, e);
    if (r != PV_OK) {
        goto out;
    }
    if ((r = make_credential(c, ek, e)) != PV_OK) {
        goto out;
    }
    *out = c;
    c = NULL;
    r = PV_OK;
out:
    EVP_PKEY_free(ek);
    pv_enroll_challenge_free(c);
    return r;
}

void pv_enroll_challenge_credential_blob(const pv_enroll_challenge *c, const uint8_t **p,
                                         size_t *len)
{
    *p = c->blob;
    *len = c->blob_len;
}

void pv_enroll_challenge_encrypted_secret(const pv_enroll_challenge *c, const uint8_t **p,
                                          size_t *len)
{
    *p = c->secret;
    *len = c->secret_len;
}

const uint8_t *pv_enroll_challenge_ak_name(const pv_enroll_challenge *c)
{
    return c->ak_name;
}

int pv_enroll_challenge_check(pv_enroll_challenge *c, const uint8_t *answer, size_t len, pv_err *e)
{
    if (c == NULL || (answer == NULL && len != 0)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no challenge or no answer");
    }
    if (c->used) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "enrollment challenge was already checked");
    }
    c->used = true;
    bool ok = len == PV_ENROLL_ANSWER_LEN && pv_ct_equal(answer, c->credential, len);
    pv_wipe(c->credential, sizeof(c->credential));
    if (len != PV_ENROLL_ANSWER_LEN) {
        return pv_err_set(e, PV_ERR_FORMAT, "enrollment answer is %zu bytes, expected %d", len,
                          PV_ENROLL_ANSWER_LEN);
    }
    if (!ok) {
        return pv_err_set(e, PV_ERR_SIGNATURE,
                          "enrollment answer is wrong: the device did not prove that the "
                          "attestation key is in the TPM of the EK certificate");
    }
    return PV_OK;
}

void pv_enroll_challenge_free(pv_enroll_challenge *c)
{
    if (c != NULL) {
        pv_wipe(c, sizeof(*c));
        free(c);
    }
}
