/* SPDX-License-Identifier: Apache-2.0 */
#include "pavise/x509.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "pavise/fs.h"

#define TRUST_MAX_ANCHORS 64
#define SUBJECT_MAX_LEN   256
#define SUBJECT_MAX_ATTRS 16
#define SERIAL_LEN        16
#define NAME_TEXT_MAX     256 /* subjects in error messages */

struct pv_cert {
    X509 *x509; /* parsed from der; or, for a leaf built here, as built (leaf_from_x509) */
    bool built; /* x509 is as built: its public key is not decoded, so verification
                   needs `parsed` (cert_x509) */
    _Atomic(X509 *) parsed;
    uint8_t *der;
    size_t der_len;
    uint8_t fingerprint[PV_SHA256_LEN];
    atomic_int refs;
};

struct pv_chain {
    pv_cert *certs[PV_CHAIN_MAX_CERTS];
    size_t n;
};

struct pv_trust {
    pv_cert *certs[TRUST_MAX_ANCHORS];
    size_t n;
};

/* ---- certificates ---- */

/* Wraps x (ownership passes in, also on failure) with a copy of its DER encoding. */
static int cert_new(X509 *x, const uint8_t *der, size_t len, pv_cert **out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    pv_cert *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->der = malloc(len)) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    memcpy(c->der, der, len);
    c->der_len = len;
    if (pv_sha256_digest(der, len, c->fingerprint) != PV_OK) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "certificate fingerprint");
        goto out;
    }
    c->x509 = x;
    x = NULL;
    atomic_init(&c->refs, 1);
    *out = c;
    c = NULL;
    r = PV_OK;
out:
    X509_free(x);
    if (c != NULL) {
        free(c->der);
        free(c);
    }
    return r;
}

int pv_cert_from_der(const uint8_t *der, size_t len, pv_cert **out, pv_err *e)
{
    *out = NULL;
    int r = PV_ERR_INTERNAL;
    X509 *x = NULL;
    unsigned char *re = NULL;
    if (len > PV_CERT_MAX_DER) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "certificate of %zu bytes is larger than %d bytes",
                          len, PV_CERT_MAX_DER);
    }
    if (der == NULL || len == 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "certificate is empty");
    }
    const unsigned char *p = der;
    x = d2i_X509(NULL, &p, (long)len);
    if (x == NULL) {
        r = pv_err_ssl(e, PV_ERR_FORMAT, "not a DER certificate");
        goto out;
    }
    if (p != der + len) {
        r = pv_err_set(e, PV_ERR_FORMAT, "%zu trailing bytes after the certificate",
                       (size_t)(der + len - p));
        goto out;
    }
    /* OpenSSL accepts some BER; the fingerprint and pv_cert_der are only meaningful when
     * the bytes are the one DER encoding of what was parsed. */
    int n = i2d_X509(x, &re);
    if (n < 0 || (size_t)n != len || memcmp(re, der, len) != 0) {
        r = pv_err_set(e, PV_ERR_FORMAT, "certificate is not DER encoded");
        goto out;
    }
    r = cert_new(x, der, len, out, e);
    x = NULL;
out:
    ERR_clear_error();
    OPENSSL_free(re);
    X509_free(x);
    return r;
}

/* Wraps a certificate built here (ownership of x passes in). The certificate is parsed
 * again from its encoding: the X509 that was built still refers to the subject's
 * EVP_PKEY, private key included, and would hand it out as the "public" key. */
static int cert_from_x509(X509 *x, pv_cert **out, pv_err *e)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    X509_free(x);
    if (n <= 0) {
        return pv_err_ssl(e, PV_ERR_CRYPTO, "encoding the certificate");
    }
    int r = pv_cert_from_der(der, (size_t)n, out, e);
    OPENSSL_free(der);
    return r;
}

/* The same for a leaf built with set_p256_pubkey, without parsing it again: OpenSSL 3.0
 * decodes the public key of every parsed certificate through its generic decoder, which
 * made re-parsing the most expensive step of issuing one (the service issues two per
 * attestation). The X509 holds the subject's encoded point only, no EVP_PKEY (so never
 * a private key); pv_cert_public_key decodes it from there. */
static int leaf_from_x509(X509 *x, pv_cert **out, pv_err *e)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    if (n <= 0) {
        X509_free(x);
        return pv_err_ssl(e, PV_ERR_CRYPTO, "encoding the certificate");
    }
    int r = cert_new(x, der, (size_t)n, out, e);
    OPENSSL_free(der);
    if (r == PV_OK) {
        (*out)->built = true;
    }
    return r;
}

void pv_cert_der(const pv_cert *c, const uint8_t **der, size_t *len)
{
    *der = c->der;
    *len = c->der_len;
}

void pv_cert_fingerprint(const pv_cert *c, uint8_t out[PV_SHA256_LEN])
{
    memcpy(out, c->fingerprint, PV_SHA256_LEN);
}

int pv_cert_public_key(const pv_cert *c, pv_key **out, pv_err *e)
{
    *out = NULL;
    EVP_PKEY *pkey = X509_get0_pubkey(c->x509);
    if (pkey == NULL) {
        /* A leaf built here holds the encoded key only (leaf_from_x509). */
        ERR_clear_error();
        unsigned char *spki = NULL;
        int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(c->x509), &spki);
        int r = n > 0 ? pv_key_from_spki_der(spki, (size_t)n, out, e)
                      : pv_err_ssl(e, PV_ERR_FORMAT, "certificate public key cannot be decoded");
        OPENSSL_free(spki);
        return r == PV_OK ? r : pv_err_wrap(e, r, "certificate public key");
    }
    int r = pv_key_from_evp(pkey, out, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "certificate public key");
    }
    return r;
}

/* RFC 2253 text of a name, truncated to fit. Non-ASCII and control characters come out
 * escaped, so the text is safe in messages and logs. */
static void name_text(const X509_NAME *name, char *out, size_t out_size)
{
    if (out_size == 0) {
        return;
    }
    out[0] = '\0';
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio != NULL && X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
        char *p = NULL;
        long n = BIO_get_mem_data(bio, &p);
        if (n > 0 && p != NULL) {
            size_t k = (size_t)n < out_size - 1 ? (size_t)n : out_size - 1;
            memcpy(out, p, k);
            out[k] = '\0';
        }
    }
    BIO_free(bio);
    ERR_clear_error();
}

void pv_cert_subject(const pv_cert *c, char *out, size_t out_size)
{
    name_text(X509_get_subject_name(c->x509), out, out_size);
}

void pv_cert_issuer(const pv_cert *c, char *out, size_t out_size)
{
    name_text(X509_get_issuer_name(c->x509), out, out_size);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int asn1_time_epoch(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
        ERR_clear_error();
        return PV_ERR_FORMAT;
    }
    int64_t days = days_from_civil((int64_t)tm.tm_year + 1900, (int64_t)tm.tm_mon + 1, tm.tm_mday);
    *out = days * 86400 + (int64_t)tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
    return PV_OK;
}

int pv_cert_validity(const pv_cert *c, int64_t *not_before, int64_t *not_after)
{
    *not_before = 0;
    *not_after = 0;
    int64_t nb = 0, na = 0;
    if (asn1_time_epoch(X509_get0_notBefore(c->x509), &nb) != PV_OK ||
        asn1_time_epoch(X509_get0_notAfter(c->x509), &na) != PV_OK) {
        return PV_ERR_FORMAT;
    }
    *not_before = nb;
    *not_after = na;
    return PV_OK;
}

bool pv_cert_is_ca(const pv_cert *c)
{
    /* 1 means basicConstraints with cA TRUE; the other non-zero answers are legacy guesses. */
    return X509_check_ca(c->x509) == 1;
}

pv_cert *pv_cert_ref(pv_cert *c)
{
    if (c != NULL) {
        atomic_fetch_add(&c->refs, 1);
    }
    return c;
}

void pv_cert_free(pv_cert *c)
{
    if (c != NULL && atomic_fetch_sub(&c->refs, 1) == 1) {
        X509_free(c->x509);
        X509_free(atomic_load(&c->parsed));
        free(c->der);
        free(c);
    }
}

/* The certificate as OpenSSL verifies it, with its public key decoded: a leaf built
 * here is parsed from its DER on first use (safely if two threads race: one parse is
 * kept). NULL only when out of memory. */
static X509 *cert_x509(const pv_cert *c)
{
    if (!c->built) {
        return c->x509;
    }
    pv_cert *m = (pv_cert *)c; /* the cache is not part of the value */
    X509 *x = atomic_load(&m->parsed);
    if (x != NULL) {
        return x;
    }
    const unsigned char *p = c->der;
    X509 *fresh = d2i_X509(NULL, &p, (long)c->der_len);
    if (fresh == NULL) {
        return NULL;
    }
    if (!atomic_compare_exchange_strong(&m->parsed, &x, fresh)) {
        X509_free(fresh); /* another thread's parse won; x is it */
        return x;
    }
    return fresh;
}

void pv_cert_serial_hex(const pv_cert *c, char out[PV_CERT_SERIAL_HEX_MAX + 1])
{
    /* The serial needs no decoded key: the certificate as built or parsed. */
    const ASN1_INTEGER *sn = X509_get0_serialNumber(c->x509);
    int len = ASN1_STRING_length(sn);
    if (len < 0 || len > PV_CERT_SERIAL_HEX_MAX / 2) {
        len = 0;
    }
    pv_hex_encode(ASN1_STRING_get0_data(sn), (size_t)len, out, PV_CERT_SERIAL_HEX_MAX + 1);
}

void *pv_cert_x509(const pv_cert *c)
{
    return cert_x509(c);
}

/* ---- chains ---- */

pv_chain *pv_chain_new(void)
{
    return calloc(1, sizeof(pv_chain));
}

void pv_chain_free(pv_chain *ch)
{
    if (ch == NULL) {
        return;
    }
    for (size_t i = 0; i < ch->n; i++) {
        pv_cert_free(ch->certs[i]);
    }
    free(ch);
}

int pv_chain_add(pv_chain *ch, pv_cert *c)
{
    if (ch == NULL || c == NULL) {
        return PV_ERR_INVALID_ARG;
    }
    if (ch->n >= PV_CHAIN_MAX_CERTS) {
        return PV_ERR_TOO_LARGE;
    }
    ch->certs[ch->n++] = pv_cert_ref(c);
    return PV_OK;
}

size_t pv_chain_count(const pv_chain *ch)
{
    return ch == NULL ? 0 : ch->n;
}

pv_cert *pv_chain_get(const pv_chain *ch, size_t i)
{
    return (ch == NULL || i >= ch->n) ? NULL : ch->certs[i];
}

/* True when the PEM read stopped because there are no more blocks, not on an error. */
static bool pem_at_end(void)
{
    unsigned long ec = ERR_peek_last_error();
    return ERR_GET_LIB(ec) == ERR_LIB_PEM && ERR_GET_REASON(ec) == PEM_R_NO_START_LINE;
}

/* Parses the certificate blocks of a PEM text into ch. Text outside the blocks is
 * ignored (RFC 7468 explanatory text); a block of any other type is refused. */
static int parse_pem(const uint8_t *data, size_t len, pv_chain *ch, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long der_len = 0;
    pv_cert *c = NULL;
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    if (bio == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 1;; i++) {
        ERR_clear_error();
        if (PEM_read_bio_ex(bio, &name, &header, &der, &der_len, 0) != 1) {
            if (pem_at_end()) {
                break;
            }
            r = pv_err_ssl(e, PV_ERR_FORMAT, "block %zu: not a valid PEM block", i);
            goto out;
        }
        if (strcmp(name, PEM_STRING_X509) != 0) {
            r = pv_err_set(e, PV_ERR_FORMAT, "block %zu: a '%.32s' block, not a certificate", i,
                           name);
            goto out;
        }
        if (header[0] != '\0') {
            r = pv_err_set(e, PV_ERR_FORMAT, "block %zu: PEM headers are not supported", i);
            goto out;
        }
        if (ch->n >= PV_CHAIN_MAX_CERTS) {
            r = pv_err_set(e, PV_ERR_TOO_LARGE, "more than %d certificates", PV_CHAIN_MAX_CERTS);
            goto out;
        }
        r = pv_cert_from_der(der, (size_t)der_len, &c, e);
        if (r != PV_OK) {
            pv_err_wrap(e, r, "certificate %zu", i);
            goto out;
        }
        ch->certs[ch->n++] = c;
        c = NULL;
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(der);
        name = header = NULL;
        der = NULL;
    }
    if (ch->n == 0) {
        r = pv_err_set(e, PV_ERR_FORMAT, "no PEM certificate");
        goto out;
    }
    r = PV_OK;
out:
    ERR_clear_error();
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    BIO_free(bio);
    return r;
}

int pv_chain_load_pem(const char *path, pv_chain **out, pv_err *e)
{
    *out = NULL;
    int r = PV_ERR_INTERNAL;
    uint8_t *data = NULL;
    size_t len = 0;
    pv_chain *ch = NULL;
    r = pv_fs_read_file(path, PV_PEM_MAX_FILE, &data, &len, e);
    if (r != PV_OK) {
        goto out; /* the message names the file */
    }
    ch = pv_chain_new();
    if (ch == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    r = parse_pem(data, len, ch, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "%s", path);
        goto out;
    }
    *out = ch;
    ch = NULL;
    r = PV_OK;
out:
    pv_chain_free(ch);
    free(data);
    return r;
}

int pv_chain_to_pem(const pv_chain *ch, pv_buf *out)
{
    int r = PV_ERR_INTERNAL;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL) {
        return PV_ERR_NOMEM;
    }
    for (size_t i = 0; i < ch->n; i++) {
        /* The DER as parsed, not a re-encoding. */
        if (PEM_write_bio(bio, PEM_STRING_X509, "", ch->certs[i]->der,
                          (long)ch->certs[i]->der_len) <= 0) {
            r = PV_ERR_CRYPTO;
            goto out;
        }
    }
    char *pem = NULL;
    long n = BIO_get_mem_data(bio, &pem);
    if (n < 0) {
        r = PV_ERR_CRYPTO;
        goto out;
    }
    r = pv_buf_append(out, pem, (size_t)n);
out:
    ERR_clear_error();
    BIO_free(bio);
    return r;
}

int pv_chain_save_pem(const pv_chain *ch, const char *path, bool overwrite, pv_err *e)
{
    if (ch == NULL || ch->n == 0) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "%s: no certificate to save", path);
    }
    pv_buf *b = pv_buf_new(PV_PEM_MAX_FILE);
    if (b == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int r = pv_chain_to_pem(ch, b);
    if (r != PV_OK) {
        r = pv_err_set(e, r, "%s: encoding the certificates as PEM: %s", path, pv_strerror(r));
    } else {
        r = pv_fs_write_file(path, pv_buf_data(b), pv_buf_len(b), 0644, overwrite, e);
    }
    pv_buf_free(b);
    return r;
}

/* ---- trust anchors ---- */

pv_trust *pv_trust_new(void)
{
    return calloc(1, sizeof(pv_trust));
}

void pv_trust_free(pv_trust *t)
{
    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < t->n; i++) {
        pv_cert_free(t->certs[i]);
    }
    free(t);
}

int pv_trust_add(pv_trust *t, pv_cert *anchor)
{
    if (t == NULL || anchor == NULL) {
        return PV_ERR_INVALID_ARG;
    }
    if (t->n >= TRUST_MAX_ANCHORS) {
        return PV_ERR_TOO_LARGE;
    }
    t->certs[t->n++] = pv_cert_ref(anchor);
    return PV_OK;
}

int pv_trust_load_pem(const char *path, pv_trust **out, pv_err *e)
{
    *out = NULL;
    pv_chain *ch = NULL;
    pv_trust *t = NULL;
    int r = pv_chain_load_pem(path, &ch, e);
    if (r != PV_OK) {
        goto out;
    }
    t = pv_trust_new();
    if (t == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    for (size_t i = 0; i < ch->n; i++) {
        r = pv_trust_add(t, ch->certs[i]);
        if (r != PV_OK) {
            r = pv_err_set(e, r, "%s: adding trust anchor %zu: %s", path, i + 1, pv_strerror(r));
            goto out;
        }
    }
    *out = t;
    t = NULL;
    r = PV_OK;
out:
    pv_trust_free(t);
    pv_chain_free(ch);
    return r;
}

size_t pv_trust_count(const pv_trust *t)
{
    return t == NULL ? 0 : t->n;
}

/* ---- verification ---- */

static bool is_validity_error(int err)
{
    switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
    case X509_V_ERR_CRL_HAS_EXPIRED:
    case X509_V_ERR_CRL_NOT_YET_VALID:
        return true;
    default:
        return false;
    }
}

static int verify_failure(X509_STORE_CTX *ctx, pv_err *e)
{
    int err = X509_STORE_CTX_get_error(ctx);
    int depth = X509_STORE_CTX_get_error_depth(ctx);
    X509 *cur = X509_STORE_CTX_get_current_cert(ctx);
    char subject[NAME_TEXT_MAX] = "unknown";
    if (cur != NULL) {
        name_text(X509_get_subject_name(cur), subject, sizeof(subject));
    }
    if (err == X509_V_OK) {
        /* Failed without a verification error: the check did not complete. */
        return pv_err_ssl(e, PV_ERR_UNTRUSTED, "certificate chain could not be verified");
    }
    ERR_clear_error();
    return pv_err_set(e, is_validity_error(err) ? PV_ERR_EXPIRED : PV_ERR_UNTRUSTED,
                      "certificate at depth %d (%s): %s", depth, subject,
                      X509_verify_cert_error_string(err));
}

/* OpenSSL 3.0 has no code-signing purpose, so the leaf is checked here. */
static int check_code_signing(const pv_cert *leaf, pv_err *e)
{
    char subject[NAME_TEXT_MAX];
    pv_cert_subject(leaf, subject, sizeof(subject));
    uint32_t flags = X509_get_extension_flags(cert_x509(leaf));
    if (flags & EXFLAG_INVALID) {
        return pv_err_set(e, PV_ERR_UNTRUSTED, "leaf (%s): extensions cannot be decoded", subject);
    }
    if (X509_check_ca(cert_x509(leaf)) != 0) {
        return pv_err_set(e, PV_ERR_UNTRUSTED,
                          "leaf (%s) is a CA certificate; it may not sign code", subject);
    }
    if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(cert_x509(leaf)) & KU_DIGITAL_SIGNATURE)) {
        return pv_err_set(e, PV_ERR_UNTRUSTED,
                          "leaf (%s): key usage does not include digitalSignature", subject);
    }
    /* anyExtendedKeyUsage is not enough: the issuer must have meant code signing. */
    if ((flags & EXFLAG_XKUSAGE) &&
        !(X509_get_extended_key_usage(cert_x509(leaf)) & XKU_CODE_SIGN)) {
        return pv_err_set(e, PV_ERR_UNTRUSTED,
                          "leaf (%s): extended key usage does not include codeSigning", subject);
    }
    return PV_OK;
}

/* Whether the leaf's extendedKeyUsage lists the capability-signing OID. A duplicated or
 * undecodable extension was refused before (EXFLAG_INVALID); NULL here fails closed. */
static bool has_capability_eku(X509 *x)
{
    ASN1_OBJECT *want = OBJ_txt2obj(PV_OID_CAPABILITY_SIGNING, 1);
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
    bool found = false;
    for (int i = 0; want != NULL && eku != NULL && i < sk_ASN1_OBJECT_num(eku) && !found; i++) {
        found = OBJ_cmp(sk_ASN1_OBJECT_value(eku, i), want) == 0;
    }
    EXTENDED_KEY_USAGE_free(eku);
    ASN1_OBJECT_free(want);
    ERR_clear_error();
    return found;
}

/* The capability signer's leaf: like a code-signing leaf, but the extended key usage is
 * required (a leaf without one would otherwise be good for everything, code signing
 * included) and must name our OID and not codeSigning, so the two kinds of signer never
 * stand in for each other. */
static int check_capability_signing(const pv_cert *leaf, pv_err *e)
{
    char subject[NAME_TEXT_MAX];
    X509 *x = cert_x509(leaf);
    pv_cert_subject(leaf, subject, sizeof(subject));
    uint32_t flags = X509_get_extension_flags(x);
    if (flags & EXFLAG_INVALID) {
        return pv_err_set(e, PV_ERR_UNTRUSTED, "leaf (%s): extensions cannot be decoded", subject);
    }
    if (X509_check_ca(x) != 0) {
        return pv_err_set(e, PV_ERR_UNTRUSTED,
                          "leaf (%s) is a CA certificate; it may not sign capabilities", subject);
    }
    if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE)) {
        return pv_err_set(e, PV_ERR_UNTRUSTED,
                          "leaf (%s): key usage does not include digitalSignature", subject);
    }
    if (!(flags & EXFLAG_XKUSAGE) || !has_capability_eku(x)) {
        return pv_err_set(e, PV_ERR_UNTRUSTED,
                          "leaf (%s): extended key usage does not include Pavise capability "
                          "signing (%s)",
                          subject, PV_OID_CAPABILITY_SIGNING);
    }
    if (X509_get_extended_key_usage(x) & XKU_CODE_SIGN) {
        return pv_err_set(e, PV_ERR_UNTRUSTED,
                          "leaf (%s): a code-signing certificate may not sign capabilities",
                          subject);
    }
    return PV_OK;
}

static int check_all_used(const pv_chain *chain, X509_STORE_CTX *ctx, pv_err *e)
{
    STACK_OF(X509) *path = X509_STORE_CTX_get0_chain(ctx);
    if (path == NULL) {
        return pv_err_set(e, PV_ERR_UNTRUSTED, "no verified path");
    }
    for (size_t i = 0; i < chain->n; i++) {
        bool found = false;
        for (int j = 0; j < sk_X509_num(path) && !found; j++) {
            found = X509_cmp(cert_x509(chain->certs[i]), sk_X509_value(path, j)) == 0;
        }
        if (!found) {
            char subject[NAME_TEXT_MAX];
            pv_cert_subject(chain->certs[i], subject, sizeof(subject));
            return pv_err_set(e, PV_ERR_UNTRUSTED,
                              "certificate %zu (%s) is not on the verified path", i + 1, subject);
        }
    }
    return PV_OK;
}

int pv_chain_verify(const pv_chain *chain, const pv_trust *trust, int64_t at, unsigned flags,
                    pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    X509_STORE *store = NULL;
    STACK_OF(X509) *untrusted = NULL;
    X509_STORE_CTX *ctx = NULL;
    if (chain == NULL || chain->n == 0) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no certificate to verify");
    }
    if (trust == NULL || trust->n == 0) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no trust anchor");
    }
    if (flags & ~(PV_VERIFY_CODE_SIGNING | PV_VERIFY_ALL_USED | PV_VERIFY_CAPABILITY_SIGNING)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "unknown verification flags 0x%x", flags);
    }
    if ((flags & PV_VERIFY_CODE_SIGNING) && (flags & PV_VERIFY_CAPABILITY_SIGNING)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "a leaf signs code or capabilities, never both: one flag only");
    }
    if ((int64_t)(time_t)at != at) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "verification time out of range");
    }
    store = X509_STORE_new();
    untrusted = sk_X509_new_null();
    ctx = X509_STORE_CTX_new();
    if (store == NULL || untrusted == NULL || ctx == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < trust->n; i++) {
        if (X509_STORE_add_cert(store, cert_x509(trust->certs[i])) != 1) {
            r = pv_err_ssl(e, PV_ERR_UNTRUSTED, "adding trust anchor %zu", i + 1);
            goto out;
        }
    }
    /* The stack borrows the certificates: freed below with sk_X509_free, not pop_free. */
    for (size_t i = 1; i < chain->n; i++) {
        if (sk_X509_push(untrusted, cert_x509(chain->certs[i])) <= 0) {
            r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    if (X509_STORE_CTX_init(ctx, store, cert_x509(chain->certs[0]), untrusted) != 1) {
        r = pv_err_ssl(e, PV_ERR_UNTRUSTED, "certificate verification could not start");
        goto out;
    }
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
    /* PARTIAL_CHAIN: any anchor ends the path, as in RFC 5280, not only a self-signed
     * root; an operator can anchor on a tenant CA. Security level 2 refuses keys and
     * digests weaker than 112 bits (SHA-1 signatures, RSA < 2048). */
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT | X509_V_FLAG_PARTIAL_CHAIN |
                                           X509_V_FLAG_USE_CHECK_TIME);
    X509_VERIFY_PARAM_set_time(param, (time_t)at);
    X509_VERIFY_PARAM_set_depth(param, PV_CHAIN_MAX_CERTS);
    X509_VERIFY_PARAM_set_auth_level(param, 2);
    if (X509_verify_cert(ctx) != 1) {
        r = verify_failure(ctx, e);
        goto out;
    }
    if (flags & PV_VERIFY_CODE_SIGNING) {
        r = check_code_signing(chain->certs[0], e);
        if (r != PV_OK) {
            goto out;
        }
    }
    if (flags & PV_VERIFY_CAPABILITY_SIGNING) {
        r = check_capability_signing(chain->certs[0], e);
        if (r != PV_OK) {
            goto out;
        }
    }
    if (flags & PV_VERIFY_ALL_USED) {
        r = check_all_used(chain, ctx, e);
        if (r != PV_OK) {
            goto out;
        }
    }
    r = PV_OK;
out:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted);
    X509_STORE_free(store);
    return r;
}

/* ---- subjects ---- */

typedef struct subject_attr_def {
    const char *name;
    int nid;
    size_t max_chars; /* the RFC 5280 upper bound, which OpenSSL enforces too */
    bool repeatable;
} subject_attr_def;

static const subject_attr_def subject_attr_defs[] = {
    {"CN", NID_commonName, 64, false},
    {"O", NID_organizationName, 64, false},
    {"OU", NID_organizationalUnitName, 64, true},
    {"C", NID_countryName, 2, false},
    {"ST", NID_stateOrProvinceName, 128, false},
    {"L", NID_localityName, 128, false},
};
#define N_SUBJECT_ATTR_DEFS (sizeof(subject_attr_defs) / sizeof(subject_attr_defs[0]))

typedef struct parsed_subject {
    char text[SUBJECT_MAX_LEN + 1]; /* a copy with the separators replaced by NULs */
    size_t n;
    struct {
        const subject_attr_def *def;
        const char *value;
    } attrs[SUBJECT_MAX_ATTRS];
} parsed_subject;

/* Characters of a valid UTF-8 string, or -1 when it is not valid UTF-8 or holds a
 * control character (C0, DEL or C1). Overlong forms and surrogates are invalid. */
static long utf8_text_chars(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    long n = 0;
    while (*p != '\0') {
        uint32_t cp;
        size_t extra;
        if (*p < 0x80) {
            cp = *p;
            extra = 0;
        } else if ((*p & 0xe0) == 0xc0) {
            cp = *p & 0x1f;
            extra = 1;
        } else if ((*p & 0xf0) == 0xe0) {
            cp = *p & 0x0f;
            extra = 2;
        } else if ((*p & 0xf8) == 0xf0) {
            cp = *p & 0x07;
            extra = 3;
        } else {
            return -1;
        }
        p++;
        for (size_t i = 0; i < extra; i++, p++) {
            if ((*p & 0xc0) != 0x80) {
                return -1;
            }
            cp = cp << 6 | (*p & 0x3f);
        }
        static const uint32_t min_cp[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return -1;
        }
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
            return -1;
        }
        n++;
    }
    return n;
}

/* NULL when value is acceptable for def, else the reason. */
static const char *check_subject_value(const subject_attr_def *def, const char *value)
{
    /* Characters RFC 4514 would need escaped; refused rather than escaped so that the
     * string always means what it looks like. */
    static const char special[] = "+\"\\<>;=";
    size_t len = strlen(value);
    if (len == 0) {
        return "value is empty";
    }
    if (value[0] == ' ' || value[len - 1] == ' ') {
        return "value begins or ends with a space";
    }
    if (value[0] == '#') {
        return "value begins with '#'";
    }
    if (strpbrk(value, special) != NULL) {
        return "value contains one of + \" \\ < > ; = (escapes are not supported)";
    }
    long chars = utf8_text_chars(value);
    if (chars < 0) {
        return "value is not valid UTF-8 or contains a control character";
    }
    if (def->nid == NID_countryName &&
        (len != 2 || value[0] < 'A' || value[0] > 'Z' || value[1] < 'A' || value[1] > 'Z')) {
        return "value must be a two-letter country code in capitals";
    }
    if ((size_t)chars > def->max_chars) {
        return "value is too long";
    }
    return NULL;
}

static const subject_attr_def *find_subject_attr(const char *name)
{
    for (size_t i = 0; i < N_SUBJECT_ATTR_DEFS; i++) {
        if (strcasecmp(name, subject_attr_defs[i].name) == 0) {
            return &subject_attr_defs[i];
        }
    }
    return NULL;
}

static int parse_subject(const char *s, parsed_subject *sub, pv_err *e)
{
    memset(sub, 0, sizeof(*sub));
    if (s == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "subject: missing");
    }
    size_t len = strnlen(s, SUBJECT_MAX_LEN + 1);
    if (len > SUBJECT_MAX_LEN) {
        return pv_err_set(e, PV_ERR_FORMAT, "subject: longer than %d characters", SUBJECT_MAX_LEN);
    }
    if (len == 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "subject: empty (expected at least CN=name)");
    }
    memcpy(sub->text, s, len + 1);
    bool have_cn = false;
    char *part = sub->text;
    for (size_t i = 1; part != NULL; i++) {
        char *next = strchr(part, ',');
        if (next != NULL) {
            *next++ = '\0';
        }
        if (part[0] == '\0') {
            return pv_err_set(e, PV_ERR_FORMAT, "subject: part %zu is empty", i);
        }
        char *eq = strchr(part, '=');
        if (eq == NULL) {
            return pv_err_set(e, PV_ERR_FORMAT, "subject: part %zu: expected NAME=value", i);
        }
        *eq = '\0';
        const subject_attr_def *def = find_subject_attr(part);
        if (def == NULL) {
            return pv_err_set(e, PV_ERR_FORMAT,
                              "subject: part %zu: unknown attribute '%.16s' (expected CN, O, "
                              "OU, C, ST or L)",
                              i, part);
        }
        const char *why = check_subject_value(def, eq + 1);
        if (why != NULL) {
            return pv_err_set(e, PV_ERR_FORMAT, "subject: %s: %s", def->name, why);
        }
        for (size_t j = 0; j < sub->n && !def->repeatable; j++) {
            if (sub->attrs[j].def == def) {
                return pv_err_set(e, PV_ERR_FORMAT, "subject: %s appears more than once",
                                  def->name);
            }
        }
        if (sub->n >= SUBJECT_MAX_ATTRS) {
            return pv_err_set(e, PV_ERR_FORMAT, "subject: more than %d attributes",
                              SUBJECT_MAX_ATTRS);
        }
        sub->attrs[sub->n].def = def;
        sub->attrs[sub->n].value = eq + 1;
        sub->n++;
        have_cn |= def->nid == NID_commonName;
        part = next;
    }
    if (!have_cn) {
        return pv_err_set(e, PV_ERR_FORMAT, "subject: CN is required");
    }
    return PV_OK;
}

int pv_cert_check_subject(const char *subject, pv_err *e)
{
    parsed_subject sub;
    return parse_subject(subject, &sub, e);
}

/* The X509_NAME of a parsed subject. The string lists the most specific attribute first
 * (RFC 4514), the encoding the least specific first, so the order is reversed; the
 * subject then prints back as it was written. */
static X509_NAME *subject_name(const parsed_subject *sub)
{
    X509_NAME *name = X509_NAME_new();
    for (size_t i = sub->n; name != NULL && i > 0; i--) {
        const unsigned char *v = (const unsigned char *)sub->attrs[i - 1].value;
        if (X509_NAME_add_entry_by_NID(name, sub->attrs[i - 1].def->nid, MBSTRING_UTF8, v, -1, -1,
                                       0) != 1) {
            X509_NAME_free(name);
            name = NULL;
        }
    }
    return name;
}

/* ---- creation ---- */

/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: what GeneralizedTime can hold.
 * OpenSSL would print a longer year into the string instead of failing. */
#define TIME_MIN INT64_C(-62135596800)
#define TIME_MAX INT64_C(253402300799)

static int set_time(ASN1_TIME *t, int64_t v)
{
    if (v < TIME_MIN || v > TIME_MAX) {
        return PV_ERR_INVALID_ARG;
    }
    if ((int64_t)(time_t)v != v) {
        return PV_ERR_UNSUPPORTED; /* a 32-bit time_t cannot hold it */
    }
    /* ASN1_TIME_set picks UTCTime up to 2049 and GeneralizedTime after (RFC 5280). */
    if (ASN1_TIME_set(t, (time_t)v) == NULL || ASN1_TIME_check(t) != 1) {
        return PV_ERR_INVALID_ARG;
    }
    return PV_OK;
}

static int set_serial(X509 *x)
{
    uint8_t b[SERIAL_LEN];
    if (pv_random_bytes(b, sizeof(b)) != PV_OK) {
        return PV_ERR_CRYPTO;
    }
    /* Positive (top bit clear) and exactly 16 bytes long (next bit set). */
    b[0] = (uint8_t)((b[0] & 0x7f) | 0x40);
    BIGNUM *bn = BN_bin2bn(b, sizeof(b), NULL);
    int ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok ? PV_OK : PV_ERR_CRYPTO;
}

/* The key identifier of a certificate's key: RFC 5280 §4.2.1.2 method 1, SHA-1 of the
 * subjectPublicKey bits (an identifier, not a security function). */
static ASN1_OCTET_STRING *key_id_of(const X509 *x)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    ASN1_OCTET_STRING *id = NULL;
    if (X509_pubkey_digest(x, EVP_sha1(), md, &n) != 1) {
        return NULL;
    }
    id = ASN1_OCTET_STRING_new();
    if (id != NULL && ASN1_OCTET_STRING_set(id, md, (int)n) != 1) {
        ASN1_OCTET_STRING_free(id);
        id = NULL;
    }
    return id;
}

/* subjectKeyIdentifier and authorityKeyIdentifier. The authority key ID repeats the
 * issuer's own subjectKeyIdentifier when it has one, so path building matches them. */
static bool add_key_ids(X509 *x, X509 *issuer)
{
    bool ok = false;
    ASN1_OCTET_STRING *skid = key_id_of(x);
    AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
    if (skid == NULL || akid == NULL) {
        goto out;
    }
    if (issuer == NULL) {
        akid->keyid = ASN1_OCTET_STRING_dup(skid);
    } else if (X509_get0_subject_key_id(issuer) != NULL) {
        akid->keyid = ASN1_OCTET_STRING_dup(X509_get0_subject_key_id(issuer));
    } else {
        akid->keyid = key_id_of(issuer);
    }
    ok = akid->keyid != NULL &&
         X509_add1_ext_i2d(x, NID_subject_key_identifier, skid, 0, X509V3_ADD_DEFAULT) == 1 &&
         X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT) == 1;
out:
    ASN1_OCTET_STRING_free(skid);
    AUTHORITY_KEYID_free(akid);
    return ok;
}

static bool add_basic_constraints(X509 *x, const pv_cert_params *p)
{
    bool ok = false;
    BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
    if (bc == NULL) {
        return false;
    }
    bc->ca = p->is_ca ? 0xff : 0; /* DER TRUE is 0xff; OpenSSL encodes the value as given */
    if (p->is_ca && p->path_len >= 0) {
        bc->pathlen = ASN1_INTEGER_new();
        if (bc->pathlen == NULL || ASN1_INTEGER_set(bc->pathlen, p->path_len) != 1) {
            goto out;
        }
    }
    ok = X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_DEFAULT) == 1;
out:
    BASIC_CONSTRAINTS_free(bc);
    return ok;
}

static bool add_key_usage(X509 *x, const pv_cert_params *p)
{
    enum { DIGITAL_SIGNATURE = 0, KEY_CERT_SIGN = 5, CRL_SIGN = 6 }; /* RFC 5280 bit numbers */
    ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
    bool ok = ku != NULL && ASN1_BIT_STRING_set_bit(ku, DIGITAL_SIGNATURE, 1) == 1;
    if (ok && p->is_ca) {
        ok = ASN1_BIT_STRING_set_bit(ku, KEY_CERT_SIGN, 1) == 1 &&
             ASN1_BIT_STRING_set_bit(ku, CRL_SIGN, 1) == 1;
    }
    ok = ok && X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT) == 1;
    ASN1_BIT_STRING_free(ku);
    return ok;
}

static bool add_ext_key_usage(X509 *x, const pv_cert_params *p)
{
    const struct {
        bool want;
        int nid;
    } uses[] = {
        {p->code_signing, NID_code_sign},
        {p->client_auth, NID_client_auth},
        {p->server_auth, NID_server_auth},
    };
    EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
    bool ok = eku != NULL;
    for (size_t i = 0; ok && i < sizeof(uses) / sizeof(uses[0]); i++) {
        if (uses[i].want) {
            ASN1_OBJECT *obj = OBJ_nid2obj(uses[i].nid);
            ok = obj != NULL && sk_ASN1_OBJECT_push(eku, obj) > 0;
        }
    }
    if (ok && p->capability_signing) {
        /* Not a registered NID: a dynamic object, which the stack then owns. */
        ASN1_OBJECT *obj = OBJ_txt2obj(PV_OID_CAPABILITY_SIGNING, 1);
        ok = obj != NULL && sk_ASN1_OBJECT_push(eku, obj) > 0;
        if (!ok) {
            ASN1_OBJECT_free(obj);
        }
    }
    if (ok && sk_ASN1_OBJECT_num(eku) > 0) {
        ok = X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, X509V3_ADD_DEFAULT) == 1;
    }
    /* OpenSSL's static objects are not freed by this; the dynamic one is. */
    EXTENDED_KEY_USAGE_free(eku);
    return ok;
}

static bool add_subject_alt_names(X509 *x, const pv_cert_params *p)
{
    if (p->subject_alt_names == NULL) {
        return true;
    }
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, NULL, x, NULL, NULL, 0);
    X509_EXTENSION *ext =
        X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, p->subject_alt_names);
    bool ok = ext != NULL && X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

/* Adds the caller's extra extension, if any. PV_OK; PV_ERR_INVALID_ARG (OID, size, a
 * duplicate); PV_ERR_CRYPTO. */
static int add_extra_ext(X509 *x, const pv_cert_params *p, pv_err *e)
{
    const pv_cert_ext *ext = p->extra_ext;
    int r = PV_ERR_INTERNAL;
    ASN1_OBJECT *obj = NULL;
    ASN1_OCTET_STRING *val = NULL;
    X509_EXTENSION *ex = NULL;

    if (ext == NULL) {
        return PV_OK;
    }
    if (ext->oid == NULL || ext->der == NULL || ext->der_len == 0 ||
        ext->der_len > PV_CERT_EXT_MAX) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "an extra extension needs an OID and 1 to %d bytes of value",
                          PV_CERT_EXT_MAX);
    }
    obj = OBJ_txt2obj(ext->oid, 1); /* numeric form only */
    if (obj == NULL) {
        ERR_clear_error();
        return pv_err_set(e, PV_ERR_INVALID_ARG, "extension OID '%.64s' is not dotted numbers",
                          ext->oid);
    }
    if (X509_get_ext_by_OBJ(x, obj, -1) >= 0) {
        r = pv_err_set(e, PV_ERR_INVALID_ARG, "extension %.64s is already in the certificate",
                       ext->oid);
        goto out;
    }
    if ((val = ASN1_OCTET_STRING_new()) == NULL ||
        ASN1_OCTET_STRING_set(val, ext->der, (int)ext->der_len) != 1 ||
        (ex = X509_EXTENSION_create_by_OBJ(NULL, obj, ext->critical ? 1 : 0, val)) == NULL ||
        X509_add_ext(x, ex, -1) != 1) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "adding extension %.64s", ext->oid);
        goto out;
    }
    r = PV_OK;
out:
    X509_EXTENSION_free(ex);
    ASN1_OCTET_STRING_free(val);
    ASN1_OBJECT_free(obj);
    return r;
}

static int check_create_args(const pv_cert_params *p, const pv_key *subject_key,
                             const pv_cert *issuer, const pv_key *issuer_key, pv_err *e)
{
    if (p == NULL || subject_key == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no parameters or no subject key");
    }
    if ((issuer == NULL) != (issuer_key == NULL)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "an issuer certificate and an issuer key go together");
    }
    const pv_key *signer = issuer_key != NULL ? issuer_key : subject_key;
    if (!pv_key_has_private(signer)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "the %s key has no private part",
                          issuer_key != NULL ? "issuer" : "subject");
    }
    if (p->not_after <= p->not_before) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "notAfter is not after notBefore");
    }
    if (p->code_signing && p->capability_signing) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "a certificate signs code or capabilities, never both");
    }
    if (p->is_ca && p->path_len < -1) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "path length %d is negative", p->path_len);
    }
    if (issuer == NULL) {
        return PV_OK;
    }
    pv_key *issuer_pub = NULL;
    int r = pv_cert_public_key(issuer, &issuer_pub, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "issuer");
        return r;
    }
    bool match = pv_key_equal_public(issuer_pub, issuer_key);
    pv_key_free(issuer_pub);
    if (!match) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "the issuer key does not match the issuer certificate's key");
    }
    return PV_OK;
}

/* A leaf's subject key as id-ecPublicKey/prime256v1 and its point, taken from the SPKI
 * pavise keys keep: X509_set_pubkey would run OpenSSL 3.0's generic encoder. 1 or 0. */
static int set_p256_pubkey(X509 *x, const pv_key *k)
{
    uint8_t spki[128];
    pv_buf *b = pv_buf_new(sizeof(spki));
    int ok = b != NULL && pv_key_spki_der(k, b) == PV_OK && pv_buf_len(b) == 91;
    unsigned char *point = ok ? OPENSSL_memdup(pv_buf_data(b) + 26, 65) : NULL;
    pv_buf_free(b);
    if (point == NULL) {
        return 0;
    }
    if (X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x), OBJ_nid2obj(NID_X9_62_id_ecPublicKey),
                               V_ASN1_OBJECT, OBJ_nid2obj(NID_X9_62_prime256v1), point, 65) != 1) {
        OPENSSL_free(point);
        return 0;
    }
    return 1;
}

int pv_cert_create(const pv_cert_params *p, const pv_key *subject_key, const pv_cert *issuer,
                   const pv_key *issuer_key, pv_cert **out, pv_err *e)
{
    *out = NULL;
    int r = PV_ERR_INTERNAL;
    X509 *x = NULL;
    X509_NAME *name = NULL;
    parsed_subject sub;
    r = check_create_args(p, subject_key, issuer, issuer_key, e);
    if (r != PV_OK) {
        goto out;
    }
    r = parse_subject(p->subject, &sub, e);
    if (r != PV_OK) {
        goto out;
    }
    x = X509_new();
    name = subject_name(&sub);
    if (x == NULL || name == NULL) {
        r = pv_err_ssl(e, PV_ERR_NOMEM, "building the certificate");
        goto out;
    }
    X509 *issuer_x = issuer != NULL ? issuer->x509 : NULL;
    EVP_PKEY *signer = pv_key_evp(issuer_key != NULL ? issuer_key : subject_key);
    if (X509_set_version(x, X509_VERSION_3) != 1 || set_serial(x) != PV_OK ||
        X509_set_subject_name(x, name) != 1 ||
        X509_set_issuer_name(x, issuer_x != NULL ? X509_get_subject_name(issuer_x) : name) != 1 ||
        (p->is_ca ? X509_set_pubkey(x, pv_key_evp(subject_key))
                  : set_p256_pubkey(x, subject_key)) != 1) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "building the certificate");
        goto out;
    }
    r = set_time(X509_getm_notBefore(x), p->not_before);
    if (r == PV_OK) {
        r = set_time(X509_getm_notAfter(x), p->not_after);
    }
    if (r != PV_OK) {
        r = pv_err_ssl(e, r, "validity period cannot be encoded (years 1 to 9999)");
        goto out;
    }
    if (!add_key_ids(x, issuer_x) || !add_basic_constraints(x, p) || !add_key_usage(x, p) ||
        !add_ext_key_usage(x, p) || !add_subject_alt_names(x, p)) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "adding the certificate extensions");
        goto out;
    }
    if ((r = add_extra_ext(x, p, e)) != PV_OK) {
        goto out;
    }
    if (X509_sign(x, signer, EVP_sha256()) <= 0) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "signing the certificate");
        goto out;
    }
    /* CA certificates (made rarely, then used in chains and TLS, which need the parsed
     * key) are parsed again; leaves (issued per attestation) are not. */
    r = p->is_ca ? cert_from_x509(x, out, e) : leaf_from_x509(x, out, e);
    x = NULL;
out:
    X509_NAME_free(name);
    X509_free(x);
    return r;
}

/* ---- certificate signing requests ---- */

int pv_csr_create(const pv_key *key, const char *subject, pv_buf *out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    X509_REQ *req = NULL;
    X509_NAME *name = NULL;
    BIO *bio = NULL;
    parsed_subject sub;
    if (key == NULL || !pv_key_has_private(key) || subject == NULL || out == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "a request needs a private key and a subject");
    }
    r = parse_subject(subject, &sub, e);
    if (r != PV_OK) {
        goto out;
    }
    req = X509_REQ_new();
    name = subject_name(&sub);
    bio = BIO_new(BIO_s_mem());
    if (req == NULL || name == NULL || bio == NULL) {
        r = pv_err_ssl(e, PV_ERR_NOMEM, "building the certificate request");
        goto out;
    }
    EVP_PKEY *pk = pv_key_evp(key);
    if (X509_REQ_set_version(req, 0) != 1 || X509_REQ_set_subject_name(req, name) != 1 ||
        X509_REQ_set_pubkey(req, pk) != 1 || X509_REQ_sign(req, pk, EVP_sha256()) <= 0 ||
        PEM_write_bio_X509_REQ(bio, req) != 1) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "signing the certificate request");
        goto out;
    }
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    r = n > 0 ? pv_buf_append(out, data, (size_t)n) : PV_ERR_CRYPTO;
    if (r != PV_OK) {
        r = pv_err_set(e, r, "storing the certificate request");
    }
out:
    BIO_free(bio);
    X509_NAME_free(name);
    X509_REQ_free(req);
    return r;
}

/* The checks both forms share: a P-256 key that signed the request. */
static int csr_check(X509_REQ *req, pv_key **public_key, pv_err *e)
{
    EVP_PKEY *pk = X509_REQ_get0_pubkey(req);
    if (pk == NULL) {
        return pv_err_ssl(e, PV_ERR_FORMAT, "certificate request carries no public key");
    }
    if (!EVP_PKEY_is_a(pk, "EC")) {
        return pv_err_set(e, PV_ERR_UNSUPPORTED, "certificate request key is not ECDSA P-256");
    }
    char group[32] = "";
    if (EVP_PKEY_get_utf8_string_param(pk, "group", group, sizeof(group), NULL) != 1 ||
        strcmp(group, "prime256v1") != 0) {
        ERR_clear_error();
        return pv_err_set(e, PV_ERR_UNSUPPORTED, "certificate request key is not ECDSA P-256");
    }
    if (X509_REQ_verify(req, pk) != 1) {
        return pv_err_ssl(e, PV_ERR_SIGNATURE, "certificate request is not signed by its key");
    }
    return pv_key_from_evp(pk, public_key, e); /* takes its own reference */
}

int pv_csr_verify(const char *pem, size_t len, pv_key **public_key, pv_err *e)
{
    *public_key = NULL;
    int r = PV_ERR_INTERNAL;
    X509_REQ *req = NULL;
    BIO *bio = NULL;
    if (pem == NULL || len == 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "certificate request is empty");
    }
    if (len > PV_CSR_MAX) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "certificate request is larger than %d bytes",
                          PV_CSR_MAX);
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        return pv_err_ssl(e, PV_ERR_NOMEM, "reading the certificate request");
    }
    req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    if (req == NULL) {
        r = pv_err_ssl(e, PV_ERR_FORMAT, "certificate request is not a PEM PKCS#10 request");
        goto out;
    }
    r = csr_check(req, public_key, e);
out:
    X509_REQ_free(req);
    BIO_free(bio);
    return r;
}

/* ---- the common CSR, read directly ----
 *
 * Attestation verifies one CSR per request, and OpenSSL 3.0's d2i_X509_REQ decodes the
 * key through its generic decoder, which costs more than the signature check itself. The
 * shape every device sends (version 0, a plain name, a P-256 key in the one SPKI encoding
 * of pv_key, no attributes, ecdsa-with-SHA256) is read here in strict DER; anything else
 * goes to OpenSSL, which decides. Both give the same answer for the requests read here
 * (fuzz_csr checks it). */

#define CSR_NOT_COMMON 1 /* not the common shape: let OpenSSL read it */

/* One DER TLV with a one-byte tag at *p (< end): the definite, minimal length. */
static bool der_next(const uint8_t **p, const uint8_t *end, uint8_t tag, const uint8_t **body,
                     size_t *n)
{
    const uint8_t *q = *p;
    if (end - q < 2 || q[0] != tag) {
        return false;
    }
    size_t l = q[1];
    q += 2;
    if (l == 0x81) {
        if (end - q < 1 || q[0] < 0x80) {
            return false;
        }
        l = q[0];
        q += 1;
    } else if (l == 0x82) {
        if (end - q < 2 || q[0] == 0) {
            return false;
        }
        l = (size_t)q[0] << 8 | q[1];
        q += 2;
    } else if (l > 0x7f) {
        return false; /* longer than PV_CSR_MAX, or indefinite */
    }
    if ((size_t)(end - q) < l) {
        return false;
    }
    *body = q;
    *n = l;
    *p = q + l;
    return true;
}

/* An OBJECT IDENTIFIER's contents: every subidentifier minimal and complete. */
static bool der_oid_ok(const uint8_t *o, size_t n)
{
    if (n == 0 || (o[n - 1] & 0x80) != 0) {
        return false;
    }
    for (size_t k = 0; k < n; k++) {
        if (o[k] == 0x80 && (k == 0 || (o[k - 1] & 0x80) == 0)) {
            return false; /* a subidentifier with a leading zero group */
        }
    }
    return true;
}

/* Name ::= SEQUENCE OF SET OF SEQUENCE { OID, value }, here with every value a
 * UTF8String or PrintableString of printable ASCII: what OpenSSL accepts too. Other
 * names are not rejected, only left to OpenSSL. */
static bool der_name(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *name, *set, *atv, *oid, *val;
    size_t nn, sn, an, on, vn;
    if (!der_next(p, end, 0x30, &name, &nn)) {
        return false;
    }
    for (const uint8_t *q = name, *qe = name + nn; q < qe;) {
        if (!der_next(&q, qe, 0x31, &set, &sn) || sn == 0) {
            return false;
        }
        for (const uint8_t *r = set, *re = set + sn; r < re;) {
            if (!der_next(&r, re, 0x30, &atv, &an)) {
                return false;
            }
            const uint8_t *t = atv, *te = atv + an;
            if (!der_next(&t, te, 0x06, &oid, &on) || !der_oid_ok(oid, on) || t == te ||
                (t[0] != 0x0c && t[0] != 0x13) || !der_next(&t, te, t[0], &val, &vn) || t != te) {
                return false;
            }
            for (size_t k = 0; k < vn; k++) {
                if (val[k] < 0x20 || val[k] > 0x7e) {
                    return false;
                }
            }
        }
    }
    return true;
}

/* AlgorithmIdentifier { ecdsa-with-SHA256 }: parameters absent (RFC 5758), or NULL as
 * some encoders write them (tpm2-openssl does), which OpenSSL accepts too. */
static const uint8_t ECDSA_SHA256_ALG[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                           0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
static const uint8_t ECDSA_SHA256_ALG_NULL[] = {0x30, 0x0c, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                                0xce, 0x3d, 0x04, 0x03, 0x02, 0x05, 0x00};

/* PV_OK or PV_ERR_SIGNATURE (the common shape, its key out when it verified),
 * CSR_NOT_COMMON, or an error. */
static int csr_common(const uint8_t *der, size_t len, pv_key **public_key, pv_err *e)
{
    const uint8_t *end = der + len, *p = der, *req, *info, *spki, *attrs, *bits;
    size_t rn, in, kn, an, bn;
    if (!der_next(&p, end, 0x30, &req, &rn) || p != end) {
        return CSR_NOT_COMMON;
    }
    const uint8_t *tbs = req, *q = req, *qe = req + rn;
    if (!der_next(&q, qe, 0x30, &info, &in)) {
        return CSR_NOT_COMMON;
    }
    size_t tbs_len = (size_t)(q - tbs);
    const uint8_t *i = info, *ie = info + in;
    static const uint8_t v0[] = {0x02, 0x01, 0x00};
    if (ie - i < 3 || memcmp(i, v0, sizeof(v0)) != 0) {
        return CSR_NOT_COMMON;
    }
    i += sizeof(v0);
    if (!der_name(&i, ie)) {
        return CSR_NOT_COMMON;
    }
    const uint8_t *spki_start = i;
    if (!der_next(&i, ie, 0x30, &spki, &kn)) {
        return CSR_NOT_COMMON;
    }
    size_t spki_len = (size_t)(i - spki_start);
    if (spki_len != 91) { /* a P-256 key's SPKI with its point uncompressed */
        return CSR_NOT_COMMON;
    }
    if (!der_next(&i, ie, 0xa0, &attrs, &an) || i != ie) {
        return CSR_NOT_COMMON;
    }
    if (an != 0) { /* attributes (extension requests): OpenSSL reads them */
        return CSR_NOT_COMMON;
    }
    if ((size_t)(qe - q) >= sizeof(ECDSA_SHA256_ALG) &&
        memcmp(q, ECDSA_SHA256_ALG, sizeof(ECDSA_SHA256_ALG)) == 0) {
        q += sizeof(ECDSA_SHA256_ALG);
    } else if ((size_t)(qe - q) >= sizeof(ECDSA_SHA256_ALG_NULL) &&
               memcmp(q, ECDSA_SHA256_ALG_NULL, sizeof(ECDSA_SHA256_ALG_NULL)) == 0) {
        q += sizeof(ECDSA_SHA256_ALG_NULL);
    } else {
        return CSR_NOT_COMMON;
    }
    if (!der_next(&q, qe, 0x03, &bits, &bn) || q != qe || bn < 2 || bits[0] != 0) {
        return CSR_NOT_COMMON;
    }
    pv_key *k = NULL;
    pv_err ke = {0};
    /* pv_key_from_spki_der reads the one P-256 encoding directly; another key goes to
     * OpenSSL with the rest of the request. */
    if (pv_key_from_spki_der(spki_start, spki_len, &k, &ke) != PV_OK) {
        return CSR_NOT_COMMON;
    }
    /* OpenSSL's ECDSA verify accepts the signature only in strict DER. */
    int r = PV_ERR_SIGNATURE;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    } else if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pv_key_evp(k)) != 1) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "verifying the certificate request could not start");
    } else if (EVP_DigestVerify(ctx, bits + 1, bn - 1, tbs, tbs_len) == 1) {
        r = PV_OK;
    } else {
        r = pv_err_set(e, PV_ERR_SIGNATURE, "certificate request is not signed by its key");
    }
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    if (r == PV_OK) {
        *public_key = k;
    } else {
        pv_key_free(k);
    }
    return r;
}

int pv_csr_verify_der(const uint8_t *der, size_t len, pv_key **public_key, pv_err *e)
{
    *public_key = NULL;
    int r = PV_ERR_INTERNAL;
    X509_REQ *req = NULL;
    const unsigned char *p = der;
    if (der == NULL || len == 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "certificate request is empty");
    }
    if (len > PV_CSR_MAX) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "certificate request is larger than %d bytes",
                          PV_CSR_MAX);
    }
    if ((r = csr_common(der, len, public_key, e)) != CSR_NOT_COMMON) {
        return r;
    }
    req = d2i_X509_REQ(NULL, &p, (long)len);
    if (req == NULL || p != der + len) {
        r = pv_err_ssl(e, PV_ERR_FORMAT, "certificate request is not one DER PKCS#10 request");
        goto out;
    }
    r = csr_check(req, public_key, e);
out:
    X509_REQ_free(req);
    return r;
}
