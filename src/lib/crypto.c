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

int pv_random_bytes(void *p, size_t n)
{
    if (n > INT_MAX) {
        return PV_ERR_INVALID_ARG;
    }
    return RAND_bytes(p, (int)n) == 1 ? PV_OK : PV_ERR_CRYPTO;
}

bool pv_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void pv_hex_encode(const uint8_t *p, size_t n, char *out, size_t out_size)
{
    static const char digits[] = "0123456789abcdef";
    if (out_size == 0) {
        return;
    }
    size_t o = 0;
    for (size_t i = 0; i < n && o + 2 < out_size; i++) {
        out[o++] = digits[p[i] >> 4];
        out[o++] = digits[p[i] & 0xf];
    }
    out[o] = '\0';
}

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int pv_hex_decode(const char *s, uint8_t *out, size_t n)
{
    if (strlen(s) != 2 * n) {
        return PV_ERR_FORMAT;
    }
    for (size_t i = 0; i < n; i++) {
        int hi = hex_nibble(s[2 * i]), lo = hex_nibble(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return PV_ERR_FORMAT;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return PV_OK;
}

void pv_wipe(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}

/* ---- keys ---- */

struct pv_key {
    EVP_PKEY *pkey;
    atomic_int refs;
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

int pv_key_from_spki_der(const uint8_t *der, size_t len, pv_key **out, pv_err *e)
{
    *out = NULL;
    if (len > KEY_FILE_MAX) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "public key is too large");
    }
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
    int n = i2d_PUBKEY(k->pkey, NULL);
    if (n <= 0) {
        return PV_ERR_CRYPTO;
    }
    uint8_t *p;
    int r = pv_buf_reserve(out, (size_t)n, &p);
    if (r != PV_OK) {
        return r;
    }
    unsigned char *q = p;
    if (i2d_PUBKEY(k->pkey, &q) != n) {
        return PV_ERR_CRYPTO;
    }
    pv_buf_commit(out, (size_t)n);
    return PV_OK;
}

int pv_key_id(const pv_key *k, uint8_t out[PV_KEY_ID_LEN])
{
    pv_buf *b = pv_buf_new(1024);
    if (b == NULL) {
        return PV_ERR_NOMEM;
    }
    int r = pv_key_spki_der(k, b);
    if (r == PV_OK) {
        r = pv_sha256_digest(pv_buf_data(b), pv_buf_len(b), out);
    }
    pv_buf_free(b);
    return r;
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
    return EVP_PKEY_eq(a->pkey, b->pkey) == 1;
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
