/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libpavise-app-tls: an OpenSSL key object for the device's client certificate whose
 * signatures the runtime makes (pv_app_device_sign), and the SSL_CTX setup around it.
 *
 * How: an EC_KEY holding only the certificate's public point, with an EC_KEY_METHOD that
 * is OpenSSL's default one but for signing. OpenSSL 3.0 treats an EC_KEY with an
 * application method as a "foreign" legacy key: it does not export it to the default
 * provider (which would need the private scalar) and signs through the legacy path,
 * ECDSA_do_sign -> our sign_sig, in TLS 1.2 and 1.3 alike.
 *
 * EC_KEY, EC_KEY_METHOD and EVP_PKEY_assign_EC_KEY are deprecated since OpenSSL 3.0, hence
 * OPENSSL_SUPPRESS_DEPRECATED in this one file. They are still the smallest way that works
 * on 3.0 (Debian 12). When OpenSSL drops them, this file becomes a small in-process
 * provider (OSSL_PROVIDER_add_builtin) with a keymgmt holding the public point and a
 * signature operation calling pv_app_device_sign, and the EVP_PKEY comes from
 * EVP_PKEY_fromdata with that provider's property query; the public API stays the same.
 */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "pavise/app.h"
#include "pavise/app_tls.h"

/* More certificates than any real chain to the tenant CA has: a bound, not a limit. */
#define MAX_CHAIN 8
/* The shortest digest the runtime signs: P-256 uses 32 bytes of a digest. */
#define SIGN_MIN_DIGEST 32

static pthread_once_t method_once = PTHREAD_ONCE_INIT;
static EC_KEY_METHOD *device_method; /* lives as long as the process */

/* Puts "device key: <reason>" on OpenSSL's error queue, where the TLS library's caller
 * (libmosquitto's log, for one) looks for why a handshake failed. */
static void raise_sign_error(int r)
{
    ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL, "device key: the runtime did not sign: %s",
                   pv_app_strerror(r));
}

/* The runtime signs 32-, 48- and 64-byte digests. ECDSA on P-256 uses only the leftmost
 * 256 bits of a longer digest and a shorter one as the integer it is, so any other
 * length has an equivalent 32-byte form: its first 32 bytes, or itself zero-padded on
 * the left (SHA-1 in a TLS 1.2 peer's list, say). */
static size_t sign_form(const unsigned char *dgst, int dlen, uint8_t out[64])
{
    size_t n = (size_t)dlen;
    if (n == 32 || n == 48 || n == 64) {
        memcpy(out, dgst, n);
        return n;
    }
    memset(out, 0, SIGN_MIN_DIGEST);
    if (n > SIGN_MIN_DIGEST) {
        memcpy(out, dgst, SIGN_MIN_DIGEST);
    } else {
        memcpy(out + SIGN_MIN_DIGEST - n, dgst, n);
    }
    return SIGN_MIN_DIGEST;
}

static ECDSA_SIG *device_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv,
                                  const BIGNUM *rp, EC_KEY *eckey)
{
    uint8_t digest[64], sig[PV_APP_DEVICE_SIG_LEN];
    ECDSA_SIG *out = NULL;
    BIGNUM *r = NULL, *s = NULL;
    (void)kinv; /* precomputed nonces belong to a local private key; the runtime has its own */
    (void)rp;
    (void)eckey;
    if (dgst == NULL || dlen <= 0) {
        ERR_raise(ERR_LIB_USER, ERR_R_PASSED_INVALID_ARGUMENT);
        return NULL;
    }
    size_t n = sign_form(dgst, dlen, digest);
    int res = pv_app_device_sign(digest, n, sig);
    if (res != PV_APP_OK) {
        raise_sign_error(res);
        goto out;
    }
    r = BN_bin2bn(sig, 32, NULL);
    s = BN_bin2bn(sig + 32, 32, NULL);
    out = ECDSA_SIG_new();
    if (r == NULL || s == NULL || out == NULL || ECDSA_SIG_set0(out, r, s) != 1) {
        ECDSA_SIG_free(out);
        out = NULL;
        goto out;
    }
    r = s = NULL; /* owned by out */
out:
    BN_free(r);
    BN_free(s);
    return out;
}

/* The DER form, for callers that go through ECDSA_sign rather than ECDSA_do_sign. */
static int device_sign(int type, const unsigned char *dgst, int dlen, unsigned char *sig,
                       unsigned int *siglen, const BIGNUM *kinv, const BIGNUM *r, EC_KEY *eckey)
{
    (void)type;
    *siglen = 0;
    ECDSA_SIG *s = device_sign_sig(dgst, dlen, kinv, r, eckey);
    if (s == NULL) {
        return 0;
    }
    /* sig has room for ECDSA_size(eckey) bytes, the longest DER of a P-256 signature. */
    unsigned char *p = sig;
    int n = i2d_ECDSA_SIG(s, &p);
    ECDSA_SIG_free(s);
    if (n <= 0) {
        return 0;
    }
    *siglen = (unsigned int)n;
    return 1;
}

static void make_method(void)
{
    int (*sign_setup)(EC_KEY *, BN_CTX *, BIGNUM **, BIGNUM **) = NULL;
    EC_KEY_METHOD *m = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
    if (m == NULL) {
        return;
    }
    EC_KEY_METHOD_get_sign(m, NULL, &sign_setup, NULL);
    EC_KEY_METHOD_set_sign(m, device_sign, sign_setup, device_sign_sig);
    device_method = m;
}

/* Reads the first certificate of a PEM file. */
static X509 *read_cert(const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return x;
}

/* The device key for the certificate x: NULL unless its key is ECDSA P-256. */
static EVP_PKEY *key_for(X509 *x)
{
    EVP_PKEY *out = NULL, *pk = NULL;
    EC_KEY *pub = NULL, *k = NULL;
    pthread_once(&method_once, make_method);
    if (device_method == NULL) {
        goto out;
    }
    pk = X509_get_pubkey(x);
    pub = pk != NULL ? EVP_PKEY_get1_EC_KEY(pk) : NULL;
    if (pub == NULL || EC_GROUP_get_curve_name(EC_KEY_get0_group(pub)) != NID_X9_62_prime256v1) {
        goto out;
    }
    k = EC_KEY_new();
    if (k == NULL || EC_KEY_set_method(k, device_method) != 1 ||
        EC_KEY_set_group(k, EC_KEY_get0_group(pub)) != 1 ||
        EC_KEY_set_public_key(k, EC_KEY_get0_public_key(pub)) != 1) {
        goto out;
    }
    out = EVP_PKEY_new();
    if (out == NULL || EVP_PKEY_assign_EC_KEY(out, k) != 1) {
        EVP_PKEY_free(out);
        out = NULL;
        goto out;
    }
    k = NULL; /* owned by out */
out:
    EC_KEY_free(k);
    EC_KEY_free(pub);
    EVP_PKEY_free(pk);
    return out;
}

EVP_PKEY *pv_app_tls_device_key(void)
{
    const char *cert;
    if (pv_app_device_auth_paths(&cert, NULL) != PV_APP_OK) {
        return NULL;
    }
    X509 *x = read_cert(cert);
    if (x == NULL) {
        return NULL;
    }
    EVP_PKEY *k = key_for(x);
    X509_free(x);
    return k;
}

/* Replaces the chain of ctx's current certificate with the certificates in path (the
 * leaf itself is skipped if the file repeats it). */
static int use_chain(SSL_CTX *ctx, const char *path, X509 *leaf)
{
    int r = PV_APP_ERR_INVALID;
    int count = 0;
    X509 *x = NULL;
    BIO *b = BIO_new_file(path, "r");
    if (b == NULL || SSL_CTX_clear_chain_certs(ctx) != 1) {
        r = PV_APP_ERR_IO;
        goto out;
    }
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (++count > MAX_CHAIN) {
            goto out;
        }
        if (X509_cmp(x, leaf) != 0) {
            if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
                r = PV_APP_ERR_IO;
                goto out;
            }
            x = NULL; /* owned by ctx */
        }
        X509_free(x);
        x = NULL;
    }
    /* The loop ends at the end of the file (PEM_R_NO_START_LINE) or at a bad block. */
    unsigned long e = ERR_peek_last_error();
    if (count == 0 || ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
        goto out;
    }
    ERR_clear_error();
    r = PV_APP_OK;
out:
    X509_free(x);
    BIO_free(b);
    return r;
}

/* Has the runtime sign a random digest and verifies it with the certificate's key: the
 * only way to know the runtime's key is the certificate's, since the key is not here. */
static int check_key_matches(X509 *x)
{
    uint8_t digest[32], sig[PV_APP_DEVICE_SIG_LEN];
    int r = PV_APP_ERR_IO;
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *br = NULL, *bs = NULL;
    unsigned char *der = NULL;
    EVP_PKEY_CTX *vctx = NULL;
    if (s == NULL || RAND_bytes(digest, sizeof(digest)) != 1) {
        goto out;
    }
    r = pv_app_device_sign(digest, sizeof(digest), sig);
    if (r != PV_APP_OK) {
        goto out;
    }
    r = PV_APP_ERR_IO;
    br = BN_bin2bn(sig, 32, NULL);
    bs = BN_bin2bn(sig + 32, 32, NULL);
    if (br == NULL || bs == NULL || ECDSA_SIG_set0(s, br, bs) != 1) {
        goto out;
    }
    br = bs = NULL; /* owned by s */
    int n = i2d_ECDSA_SIG(s, &der);
    vctx = EVP_PKEY_CTX_new(X509_get0_pubkey(x), NULL);
    if (n <= 0 || vctx == NULL || EVP_PKEY_verify_init(vctx) != 1) {
        goto out;
    }
    int ok = EVP_PKEY_verify(vctx, der, (size_t)n, digest, sizeof(digest));
    ERR_clear_error();
    r = ok == 1 ? PV_APP_OK : PV_APP_ERR_INVALID;
out:
    EVP_PKEY_CTX_free(vctx);
    OPENSSL_free(der);
    BN_free(br);
    BN_free(bs);
    ECDSA_SIG_free(s);
    return r;
}

int pv_app_tls_use_device_identity(SSL_CTX *ctx)
{
    const char *cert, *chain;
    X509 *x = NULL;
    EVP_PKEY *key = NULL;
    int r = PV_APP_ERR_INVALID;
    if (ctx == NULL) {
        goto out;
    }
    r = pv_app_device_auth_paths(&cert, &chain);
    if (r != PV_APP_OK) {
        goto out;
    }
    if (!pv_app_device_auth_ready()) {
        r = PV_APP_ERR_NOT_READY;
        goto out;
    }
    r = PV_APP_ERR_INVALID;
    x = read_cert(cert);
    key = x != NULL ? key_for(x) : NULL;
    if (key == NULL) {
        goto out;
    }
    r = check_key_matches(x);
    if (r != PV_APP_OK) {
        goto out;
    }
    r = PV_APP_ERR_IO;
    if (SSL_CTX_use_certificate(ctx, x) != 1) {
        goto out;
    }
    r = use_chain(ctx, chain, x);
    if (r != PV_APP_OK) {
        goto out;
    }
    /* SSL_CTX_use_PrivateKey compares the key with the certificate; so does
     * SSL_CTX_check_private_key. Both hold by construction, the signature check above
     * being the one that can fail. */
    r = PV_APP_ERR_INVALID;
    if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        goto out;
    }
    r = PV_APP_OK;
out:
    EVP_PKEY_free(key);
    X509_free(x);
    return r;
}
