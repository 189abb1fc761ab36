/* SPDX-License-Identifier: Apache-2.0 */
#include "pavise/crypto.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "pavise/fs.h"

#define KEY_FILE_MAX (64 * 1024)

/* ---- SHA-256 ---- */

struct pv_sha256 {
    EVP_MD_CTX *ctx;
};

/* Fetched once: an explicit fetch avoids the implicit per-call lookup of EVP_sha256(). */
static EVP_MD *sha256_md(void)
{
    static _Atomic(EVP_MD *) md;
    EVP_MD *m = atomic_load(&md);
    if (m == NULL) {
        EVP_MD *fresh = EVP_MD_fetch(NULL, "SHA256", NULL);
        if (fresh == NULL) {
            return NULL;
        }
        EVP_MD *expected = NULL;
        if (!atomic_compare_exchange_strong(&md, &expected, fresh)) {
            EVP_MD_free(fresh);
            m = expected;
        } else {
            m = fresh;
        }
    }
    return m;
}

pv_sha256 *pv_sha256_new(void)
{
    pv_sha256 *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return NULL;
    }
    h->ctx = EVP_MD_CTX_new();
    if (h->ctx == NULL || pv_sha256_reset(h) != PV_OK) {
        pv_sha256_free(h);
        return NULL;
    }
    return h;
}

int pv_sha256_reset(pv_sha256 *h)
{
    EVP_MD *md = sha256_md();
    return (md != NULL && EVP_DigestInit_ex(h->ctx, md, NULL) == 1) ? PV_OK : PV_ERR_CRYPTO;
}

int pv_sha256_update(pv_sha256 *h, const void *p, size_t n)
{
    return EVP_DigestUpdate(h->ctx, p, n) == 1 ? PV_OK : PV_ERR_CRYPTO;
}

int pv_sha256_final(pv_sha256 *h, uint8_t out[PV_SHA256_LEN])
{
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(h->ctx, out, &n) != 1 || n != PV_SHA256_LEN) {
        return PV_ERR_CRYPTO;
    }
    return PV_OK;
}

void pv_sha256_free(pv_sha256 *h)
{
    if (h != NULL) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
    }
}

int pv_sha256_digest(const void *p, size_t n, uint8_t out[PV_SHA256_LEN])
{
    EVP_MD *md = sha256_md();
    unsigned int len = 0;
    if (md == NULL || EVP_Digest(p, n, out, &len, md, NULL) != 1 || len != PV_SHA256_LEN) {
        return PV_ERR_CRYPTO;
    }
    return PV_OK;
}

/* ---- utilities ---- */

bool pv_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void pv_wipe(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}

/* ---- keys ---- */

/* A P-256 SubjectPublicKeyInfo is this prefix (SEQUENCE, AlgorithmIdentifier
 * {id-ecPublicKey, prime256v1}, BIT STRING header) and the 65-byte uncompressed point.
 * Every key here is P-256, so the SPKI is built and parsed directly: OpenSSL 3.0's
 * generic encoder and decoder take tens of microseconds per key, which dominated the
 * service's attestation path (keys in records, CSRs, key IDs). */
static const uint8_t P256_SPKI_PREFIX[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
                                           0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                           0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};
#define P256_POINT_LEN 65
#define P256_SPKI_LEN  (sizeof(P256_SPKI_PREFIX) + P256_POINT_LEN)

struct pv_key {
    EVP_PKEY *pkey;
    atomic_int refs;
    uint8_t spki[P256_SPKI_LEN]; /* the public key's SPKI DER, made once by wrap() */
};

static bool is_p256(EVP_PKEY *pkey)
{
    char group[64];
    size_t len = 0;
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC) {
        return false;
    }
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &len) != 1) {
        return false;
    }
    return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

/* Takes ownership of pkey. */
static int wrap(EVP_PKEY *pkey, pv_key **out, pv_err *e)
{
    if (!is_p256(pkey)) {
        EVP_PKEY_free(pkey);
        return pv_err_set(e, PV_ERR_UNSUPPORTED, "key is not an ECDSA P-256 key");
    }
    pv_key *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        EVP_PKEY_free(pkey);
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    size_t n = 0;
    memcpy(k->spki, P256_SPKI_PREFIX, sizeof(P256_SPKI_PREFIX));
    /* A key parsed from a compressed point would encode compressed: keys here are
     * always written uncompressed. */
    (void)EVP_PKEY_set_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                         OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED);
    if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
                                        k->spki + sizeof(P256_SPKI_PREFIX), P256_POINT_LEN,
                                        &n) != 1 ||
        n != P256_POINT_LEN || k->spki[sizeof(P256_SPKI_PREFIX)] != 0x04) {
        free(k);
        EVP_PKEY_free(pkey);
        return pv_err_ssl(e, PV_ERR_CRYPTO, "reading the public key");
    }
    k->pkey = pkey;
    atomic_init(&k->refs, 1);
    *out = k;
    return PV_OK;
}

int pv_key_generate(pv_key **out, pv_err *e)
{
    *out = NULL;
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    if (pkey == NULL) {
        return pv_err_ssl(e, PV_ERR_CRYPTO, "generating a P-256 key");
    }
    return wrap(pkey, out, e);
}

int pv_key_from_evp(void *evp_pkey, pv_key **out, pv_err *e)
{
    *out = NULL;
    if (evp_pkey == NULL || EVP_PKEY_up_ref(evp_pkey) != 1) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no key");
    }
    return wrap(evp_pkey, out, e);
}

/* Encrypted keys are not supported. Without a callback OpenSSL would ask for a pass
 * phrase on the terminal, and library code must not talk to the user. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

static int load_pem(const char *path, bool private, pv_key **out, pv_err *e)
{
    *out = NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    int r = pv_fs_read_file(path, KEY_FILE_MAX, &data, &len, e);
    if (r != PV_OK) {
        return r;
    }
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    EVP_PKEY *pkey = NULL;
    if (bio != NULL) {
        pkey = private ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)
                       : PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    }
    BIO_free(bio);
    if (private) {
        pv_wipe(data, len);
    }
    free(data);
    if (pkey == NULL) {
        return pv_err_ssl(e, PV_ERR_FORMAT, "%s: not a PEM %s key%s", path,
                          private ? "private" : "public",
                          private ? " (encrypted keys are not supported)" : "");
    }
    r = wrap(pkey, out, e);
    return r == PV_OK ? r : pv_err_wrap(e, r, "%s", path);
}

int pv_key_load_private_pem(const char *path, pv_key **out, pv_err *e)
{
    return load_pem(path, true, out, e);
}

int pv_key_load_public_pem(const char *path, pv_key **out, pv_err *e)
{
    return load_pem(path, false, out, e);
}

static int save_pem(const pv_key *k, const char *path, bool private, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int ok = private ? PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL)
                     : PEM_write_bio_PUBKEY(bio, k->pkey);
    if (ok != 1) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "%s: encoding the key", path);
        goto out;
    }
    char *pem = NULL;
    long n = BIO_get_mem_data(bio, &pem);
    r = pv_fs_write_file(path, pem, (size_t)n, private ? 0600 : 0644, !private, e);
out:
    /* The memory BIO held the private key: clear it before it is freed. */
    if (private) {
        char *data = NULL;
        long len = BIO_get_mem_data(bio, &data);
        if (data != NULL && len > 0) {
            pv_wipe(data, (size_t)len);
        }
    }
    BIO_free(bio);
    return r;
}

int pv_key_save_private_pem(const pv_key *k, const char *path, pv_err *e)
{
    if (!pv_key_has_private(k)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "%s: key has no private part", path);
    }
    return save_pem(k, path, true, e);
}

int pv_key_save_public_pem(const pv_key *k, const char *path, pv_err *e)
{
    return save_pem(k, path, false, e);
}

/* The P-256 public point of an SPKI in the one encoding keys here have, as a key. */
static EVP_PKEY *p256_from_point(const uint8_t *point)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)point, P256_POINT_LEN),
        OSSL_PARAM_construct_end()};
    /* The import checks that the point is on the curve. */
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

int pv_key_from_spki_der(const uint8_t *der, size_t len, pv_key **out, pv_err *e)
{
    *out = NULL;
    if (len > KEY_FILE_MAX) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "public key is too large");
    }
    if (len == P256_SPKI_LEN && memcmp(der, P256_SPKI_PREFIX, sizeof(P256_SPKI_PREFIX)) == 0 &&
        der[sizeof(P256_SPKI_PREFIX)] == 0x04) {
        EVP_PKEY *pkey = p256_from_point(der + sizeof(P256_SPKI_PREFIX));
        if (pkey == NULL) {
            return pv_err_ssl(e, PV_ERR_FORMAT, "not a valid P-256 public key");
        }
        return wrap(pkey, out, e);
    }
    /* Anything else (another curve or algorithm, a compressed point, explicit
     * parameters) goes through OpenSSL, which decides whether it is a P-256 key at all. */
    const unsigned char *p = der;
    EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)len);
    if (pkey == NULL) {
        return pv_err_ssl(e, PV_ERR_FORMAT, "not a SubjectPublicKeyInfo");
    }
    if (p != der + len) {
        EVP_PKEY_free(pkey);
        return pv_err_set(e, PV_ERR_FORMAT, "trailing bytes after the SubjectPublicKeyInfo");
    }
    return wrap(pkey, out, e);
}

int pv_key_spki_der(const pv_key *k, pv_buf *out)
{
    return pv_buf_append(out, k->spki, sizeof(k->spki));
}

int pv_key_id(const pv_key *k, uint8_t out[PV_KEY_ID_LEN])
{
    return pv_sha256_digest(k->spki, sizeof(k->spki), out);
}

bool pv_key_has_private(const pv_key *k)
{
    BIGNUM *priv = NULL;
    if (EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_PRIV_KEY, &priv) != 1) {
        ERR_clear_error();
        return false;
    }
    BN_clear_free(priv);
    return true;
}

bool pv_key_equal_public(const pv_key *a, const pv_key *b)
{
    /* Public values: no need for a constant-time comparison. */
    return memcmp(a->spki, b->spki, sizeof(a->spki)) == 0;
}

int pv_key_sign_es256(const pv_key *k, const void *msg, size_t len, uint8_t sig[PV_ES256_SIG_LEN],
                      pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char der[80];
    size_t der_len = sizeof(der);
    ECDSA_SIG *s = NULL;
    if (ctx == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    if (!pv_key_has_private(k)) {
        r = pv_err_set(e, PV_ERR_INVALID_ARG, "ES256 signing needs a private key");
        goto out;
    }
    if (EVP_DigestSignInit(ctx, NULL, sha256_md(), NULL, k->pkey) != 1 ||
        EVP_DigestSign(ctx, der, &der_len, msg, len) != 1) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "ES256 signing failed");
        goto out;
    }
    const unsigned char *p = der;
    s = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    const BIGNUM *br, *bs;
    if (s == NULL) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "ES256 signing produced no signature");
        goto out;
    }
    ECDSA_SIG_get0(s, &br, &bs);
    if (BN_bn2binpad(br, sig, 32) != 32 || BN_bn2binpad(bs, sig + 32, 32) != 32) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "ES256 signature out of range");
        goto out;
    }
    r = PV_OK;
out:
    ECDSA_SIG_free(s);
    EVP_MD_CTX_free(ctx);
    return r;
}

int pv_key_verify_es256(const pv_key *k, const void *msg, size_t len,
                        const uint8_t sig[PV_ES256_SIG_LEN], pv_err *e)
{
    int r = PV_ERR_CRYPTO;
    EVP_MD_CTX *ctx = NULL;
    unsigned char *der = NULL;
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *br = BN_bin2bn(sig, 32, NULL), *bs = BN_bin2bn(sig + 32, 32, NULL);
    if (s == NULL || br == NULL || bs == NULL || ECDSA_SIG_set0(s, br, bs) != 1) {
        BN_free(br);
        BN_free(bs);
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    int der_len = i2d_ECDSA_SIG(s, &der);
    ctx = EVP_MD_CTX_new();
    if (der_len <= 0 || ctx == NULL) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "encoding the signature");
        goto out;
    }
    if (EVP_DigestVerifyInit(ctx, NULL, sha256_md(), NULL, k->pkey) != 1) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "ES256 verification could not start");
        goto out;
    }
    int v = EVP_DigestVerify(ctx, der, (size_t)der_len, msg, len);
    if (v == 1) {
        r = PV_OK;
    } else {
        /* 0: wrong signature; <0: malformed (e.g. r or s zero or >= n). Both refuse. */
        r = pv_err_ssl(e, PV_ERR_SIGNATURE, "ES256 signature does not verify");
    }
out:
    ERR_clear_error();
    OPENSSL_free(der);
    ECDSA_SIG_free(s);
    EVP_MD_CTX_free(ctx);
    return r;
}

pv_key *pv_key_ref(pv_key *k)
{
    atomic_fetch_add(&k->refs, 1);
    return k;
}

void pv_key_free(pv_key *k)
{
    if (k != NULL && atomic_fetch_sub(&k->refs, 1) == 1) {
        EVP_PKEY_free(k->pkey); /* OpenSSL clears private key material it frees */
        free(k);
    }
}

void *pv_key_evp(const pv_key *k)
{
    return k->pkey;
}
