/* SPDX-License-Identifier: Apache-2.0 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "pavise/platform.h"

typedef struct fixture {
    char *dir;  /* the test's temporary directory */
    char *data; /* DATA inside it (not created yet) */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->dir = tu_mkdtemp("ca");
    f->data = tu_path(f->dir, "data");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmtree(f->dir);
    free(f->dir);
    free(f->data);
    free(f);
    return 0;
}

static void init_ok(const char *data, const char *const *hosts)
{
    pv_err e = {0};
    int r = ca_init(data, hosts, &e);
    if (r != PV_OK) {
        fail_msg("ca_init: %s", pv_err_msg(&e));
    }
}

static server_ca *load_ok(const char *data)
{
    pv_err e = {0};
    server_ca *ca = NULL;
    int r = ca_load(data, &ca, &e);
    if (r != PV_OK) {
        fail_msg("ca_load: %s", pv_err_msg(&e));
    }
    return ca;
}

static int mode_of(const char *dir, const char *name)
{
    char *p = name != NULL ? tu_path(dir, name) : strdup(dir);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    free(p);
    return (int)(st.st_mode & 07777);
}

static char *csr_for(const pv_key *k, const char *subject, size_t *len)
{
    pv_buf *b = pv_buf_new(PV_CSR_MAX);
    assert_non_null(b);
    pv_err e = {0};
    assert_int_equal(pv_csr_create(k, subject, b, &e), PV_OK);
    assert_int_equal(pv_buf_append_u8(b, 0), PV_OK);
    char *s = (char *)pv_buf_steal(b, len);
    *len -= 1;
    pv_buf_free(b);
    return s;
}

static void test_init_load_round_trip(void **state)
{
    fixture *f = *state;
    init_ok(f->data, NULL);
    assert_int_equal(mode_of(f->data, NULL), 0700);
    assert_int_equal(mode_of(f->data, "ca.key"), 0600);
    assert_int_equal(mode_of(f->data, "server.key"), 0600);
    assert_int_equal(mode_of(f->data, "ca.crt") & 077, 044);

    server_ca *ca = load_ok(f->data);
    const char *fp = ca_fingerprint(ca);
    assert_int_equal(strlen(fp), 64);
    assert_int_equal(strspn(fp, "0123456789abcdef"), 64);
    uint8_t raw[PV_SHA256_LEN];
    char hex[65];
    pv_cert_fingerprint(ca_cert(ca), raw);
    pv_hex_encode(raw, sizeof(raw), hex, sizeof(hex));
    assert_string_equal(hex, fp);

    char subject[256];
    pv_cert_subject(ca_cert(ca), subject, sizeof(subject));
    assert_int_equal(strncmp(subject, "CN=Pavise Server CA ", 20), 0);
    assert_int_equal(strlen(subject), 28);
    assert_true(pv_cert_is_ca(ca_cert(ca)));
    pv_cert_subject(ca_server_cert(ca), subject, sizeof(subject));
    assert_string_equal(subject, "CN=pavise-server");
    assert_false(pv_cert_is_ca(ca_server_cert(ca)));

    /* The server key is the one in the server certificate. */
    pv_key *pub = NULL;
    assert_int_equal(pv_cert_public_key(ca_server_cert(ca), &pub, NULL), PV_OK);
    assert_true(pv_key_equal_public(pub, ca_server_key(ca)));
    assert_true(pv_key_has_private(ca_server_key(ca)));
    pv_key_free(pub);

    /* The PEM is ca.crt. */
    size_t len = 0;
    char *path = tu_path(f->data, "ca.crt");
    uint8_t *file = tu_read(path, &len);
    assert_int_equal(strlen(ca_cert_pem(ca)), len);
    assert_memory_equal(ca_cert_pem(ca), file, len);
    free(file);
    free(path);

    /* The CA is good for ten years, with path length 0; the server certificate for
     * serverAuth. */
    int64_t nb = 0, na = 0, now = pv_time_now();
    assert_int_equal(pv_cert_validity(ca_cert(ca), &nb, &na), PV_OK);
    assert_true(nb <= now && nb >= now - 600);
    assert_true(na >= now + 3650 * 86400LL);
    X509 *cx = pv_cert_x509(ca_cert(ca));
    assert_int_equal(X509_get_pathlen(cx), 0);
    X509 *sx = pv_cert_x509(ca_server_cert(ca));
    assert_int_equal(X509_check_purpose(sx, X509_PURPOSE_SSL_SERVER, 0), 1);
    assert_int_not_equal(X509_check_purpose(sx, X509_PURPOSE_SSL_CLIENT, 0), 1);
    ca_free(ca);

    /* Two installations get two CAs. */
    char *other = tu_path(f->dir, "other");
    init_ok(other, NULL);
    server_ca *ca2 = load_ok(other);
    ca = load_ok(f->data);
    assert_string_not_equal(ca_fingerprint(ca), ca_fingerprint(ca2));
    ca_free(ca2);
    ca_free(ca);
    free(other);
}

static void test_second_init_refused(void **state)
{
    fixture *f = *state;
    init_ok(f->data, NULL);
    server_ca *before = load_ok(f->data);
    pv_err e = {0};
    assert_int_equal(ca_init(f->data, NULL, &e), PV_ERR_EXISTS);
    assert_non_null(strstr(pv_err_msg(&e), "already holds a CA"));
    server_ca *after = load_ok(f->data);
    assert_string_equal(ca_fingerprint(before), ca_fingerprint(after));
    assert_int_equal(tu_count_entries(f->data), 5); /* the CA, TLS and tenant CA key files */
    ca_free(before);
    ca_free(after);
}

static void test_not_initialised(void **state)
{
    fixture *f = *state;
    server_ca *ca = NULL;
    pv_err e = {0};
    assert_int_equal(ca_load(f->data, &ca, &e), PV_ERR_NOT_FOUND);
    assert_null(ca);
    assert_non_null(strstr(pv_err_msg(&e), "pavise-server init"));
}

static void test_readable_key_refused(void **state)
{
    fixture *f = *state;
    init_ok(f->data, NULL);
    static const char *const keys[] = {"ca.key", "server.key"};
    static const int modes[] = {0644, 0640, 0604, 0610};
    for (size_t k = 0; k < 2; k++) {
        char *path = tu_path(f->data, keys[k]);
        for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
            assert_int_equal(chmod(path, (mode_t)modes[m]), 0);
            server_ca *ca = NULL;
            pv_err e = {0};
            assert_int_equal(ca_load(f->data, &ca, &e), PV_ERR_UNSAFE);
            assert_null(ca);
            assert_non_null(strstr(pv_err_msg(&e), keys[k]));
        }
        assert_int_equal(chmod(path, 0600), 0);
        free(path);
    }
    server_ca *ca = load_ok(f->data);
    ca_free(ca);
    /* 0400 is fine: only the owner can read it. */
    char *path = tu_path(f->data, "ca.key");
    assert_int_equal(chmod(path, 0400), 0);
    ca = load_ok(f->data);
    ca_free(ca);
    free(path);
}

static void test_mismatched_files_refused(void **state)
{
    fixture *f = *state;
    char *other = tu_path(f->dir, "other");
    init_ok(f->data, NULL);
    init_ok(other, NULL);
    /* Another installation's server certificate: not for this key. */
    char *src = tu_path(other, "server.crt");
    char *dst = tu_path(f->data, "server.crt");
    size_t len = 0;
    uint8_t *pem = tu_read(src, &len);
    assert_int_equal(unlink(dst), 0);
    tu_write(dst, pem, len, 0644);
    server_ca *ca = NULL;
    pv_err e = {0};
    assert_int_equal(ca_load(f->data, &ca, &e), PV_ERR_FORMAT);
    assert_null(ca);
    free(pem);
    free(src);
    free(dst);
    free(other);
}

/* Issues an operator certificate and returns it parsed. */
static pv_cert *issue(server_ca *ca, const pv_key *k, const char *name, int64_t days,
                      ca_issued *out)
{
    size_t len = 0;
    char *csr = csr_for(k, "CN=ignored,O=Whatever", &len);
    pv_err e = {0};
    int r = ca_issue_operator(ca, csr, len, name, days, out, &e);
    if (r != PV_OK) {
        fail_msg("ca_issue_operator: %s", pv_err_msg(&e));
    }
    free(csr);
    BIO *bio = BIO_new_mem_buf(out->cert_pem, -1);
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    assert_non_null(x);
    BIO_free(bio);
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    assert_true(n > 0);
    pv_cert *c = NULL;
    assert_int_equal(pv_cert_from_der(der, (size_t)n, &c, NULL), PV_OK);
    OPENSSL_free(der);
    X509_free(x);
    return c;
}

static void test_issue_operator(void **state)
{
    fixture *f = *state;
    init_ok(f->data, NULL);
    server_ca *ca = load_ok(f->data);
    pv_key *k = NULL;
    assert_int_equal(pv_key_generate(&k, NULL), PV_OK);
    ca_issued out;
    pv_cert *c = issue(ca, k, "alice@example.com", 90, &out);

    /* The subject is the name given, not the request's. */
    char subject[128];
    pv_cert_subject(c, subject, sizeof(subject));
    assert_string_equal(subject, "CN=alice@example.com");

    /* For the requester's key. */
    pv_key *pub = NULL;
    assert_int_equal(pv_cert_public_key(c, &pub, NULL), PV_OK);
    assert_true(pv_key_equal_public(pub, k));
    pv_key_free(pub);

    /* Chains to the CA, now and after a clock skew of a minute back. */
    int64_t now = pv_time_now();
    pv_chain *ch = pv_chain_new();
    pv_trust *t = pv_trust_new();
    assert_int_equal(pv_chain_add(ch, c), PV_OK);
    assert_int_equal(pv_trust_add(t, (pv_cert *)ca_cert(ca)), PV_OK);
    pv_err e = {0};
    assert_int_equal(pv_chain_verify(ch, t, now, PV_VERIFY_ALL_USED, &e), PV_OK);
    assert_int_equal(pv_chain_verify(ch, t, now - 60, 0, &e), PV_OK);
    assert_int_equal(pv_chain_verify(ch, t, now + 91 * 86400LL, 0, &e), PV_ERR_EXPIRED);

    /* clientAuth, not serverAuth; not a CA. */
    X509 *x = pv_cert_x509(c);
    assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_CLIENT, 0), 1);
    assert_int_not_equal(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 1);
    assert_false(pv_cert_is_ca(c));

    /* An OpenSSL store that checks the sslclient purpose accepts it too. */
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_int_equal(X509_STORE_add_cert(store, pv_cert_x509(ca_cert(ca))), 1);
    assert_int_equal(X509_STORE_CTX_init(ctx, store, x, NULL), 1);
    assert_int_equal(X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT), 1);
    assert_int_equal(X509_verify_cert(ctx), 1);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);

    /* What the caller gets back describes the certificate. */
    int64_t nb = 0, na = 0;
    assert_int_equal(pv_cert_validity(c, &nb, &na), PV_OK);
    assert_int_equal(out.not_after, na);
    assert_true(na >= now + 90 * 86400LL - 5 && na <= now + 90 * 86400LL + 5);
    assert_true(nb <= now - 290 && nb >= now - 310);
    uint8_t raw[PV_SHA256_LEN];
    char hex[65];
    pv_cert_fingerprint(c, raw);
    pv_hex_encode(raw, sizeof(raw), hex, sizeof(hex));
    assert_string_equal(out.fingerprint, hex);
    assert_true(strlen(out.serial) >= 2 && strlen(out.serial) <= 40);
    BIGNUM *bn = NULL;
    assert_true(BN_hex2bn(&bn, out.serial) > 0);
    BIGNUM *sn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    assert_int_equal(BN_cmp(bn, sn), 0);
    BN_free(bn);
    BN_free(sn);

    /* Two issues for one key give two certificates. */
    ca_issued out2;
    pv_cert *c2 = issue(ca, k, "alice@example.com", 1, &out2);
    assert_string_not_equal(out.serial, out2.serial);
    ca_issued_clear(&out2);
    assert_null(out2.cert_pem);
    pv_cert_free(c2);

    ca_issued_clear(&out);
    ca_issued_clear(&out); /* twice is harmless */
    ca_issued_clear(NULL);
    pv_chain_free(ch);
    pv_trust_free(t);
    pv_cert_free(c);
    pv_key_free(k);
    ca_free(ca);
}

static void test_issue_refusals(void **state)
{
    fixture *f = *state;
    init_ok(f->data, NULL);
    server_ca *ca = load_ok(f->data);
    pv_key *k = NULL;
    assert_int_equal(pv_key_generate(&k, NULL), PV_OK);
    size_t len = 0;
    char *csr = csr_for(k, "CN=x", &len);
    ca_issued out;
    pv_err e = {0};
    static const char *const bad_names[] = {
        "",
        "a b",
        "a,CN=b",
        "x=y",
        "élan",
        "a/b",
        "0123456789012345678901234567890123456789012345678901234"
        "5678901234"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        assert_int_equal(ca_issue_operator(ca, csr, len, bad_names[i], 90, &out, &e),
                         PV_ERR_INVALID_ARG);
        assert_null(out.cert_pem);
    }
    assert_int_equal(ca_issue_operator(ca, csr, len, NULL, 90, &out, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(ca_issue_operator(ca, csr, len, "bob", 0, &out, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(ca_issue_operator(ca, csr, len, "bob", -1, &out, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(ca_issue_operator(ca, csr, len, "bob", 36501, &out, &e), PV_ERR_INVALID_ARG);
    /* 64 characters is the longest name. */
    const char *longest = "0123456789012345678901234567890123456789012345678901234567890123";
    assert_int_equal(ca_issue_operator(ca, csr, len, longest, 1, &out, &e), PV_OK);
    ca_issued_clear(&out);
    /* Not a request at all. */
    assert_int_equal(ca_issue_operator(ca, "hello", 5, "bob", 90, &out, &e), PV_ERR_FORMAT);
    assert_int_equal(ca_issue_operator(ca, csr, 0, "bob", 90, &out, &e), PV_ERR_FORMAT);
    assert_null(out.cert_pem);
    free(csr);
    pv_key_free(k);
    ca_free(ca);
}

/* A PEM request for an EVP key, signed by it, made with OpenSSL directly. */
static char *csr_of_evp(EVP_PKEY *pk, const EVP_MD *md, size_t *len)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    assert_int_equal(
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"x", -1, -1, 0),
        1);
    assert_int_equal(X509_REQ_set_subject_name(req, name), 1);
    assert_int_equal(X509_REQ_set_pubkey(req, pk), 1);
    assert_true(X509_REQ_sign(req, pk, md) > 0);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_X509_REQ(bio, req), 1);
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    /* Not strndup: the BIO's data has no terminating NUL, and strict string checks
     * read for one. */
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    *len = (size_t)n;
    BIO_free(bio);
    X509_NAME_free(name);
    X509_REQ_free(req);
    return s;
}

static void test_non_p256_csr_refused(void **state)
{
    fixture *f = *state;
    init_ok(f->data, NULL);
    server_ca *ca = load_ok(f->data);
    ca_issued out;
    struct {
        EVP_PKEY *pk;
        const EVP_MD *md;
    } keys[] = {
        {EVP_EC_gen("P-384"), EVP_sha384()},
        {EVP_RSA_gen(2048), EVP_sha256()},
        {EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), NULL},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        assert_non_null(keys[i].pk);
        size_t len = 0;
        char *csr = csr_of_evp(keys[i].pk, keys[i].md, &len);
        pv_err e = {0};
        assert_int_equal(ca_issue_operator(ca, csr, len, "bob", 90, &out, &e), PV_ERR_UNSUPPORTED);
        assert_non_null(strstr(pv_err_msg(&e), "P-256"));
        assert_null(out.cert_pem);
        free(csr);
        EVP_PKEY_free(keys[i].pk);
    }
    ca_free(ca);
}

/* Re-encodes DER as PEM with the given label, 64 characters a line. */
static char *to_pem(const uint8_t *der, size_t n, const char *label, size_t *len)
{
    size_t b64_len = 4 * ((n + 2) / 3);
    unsigned char *b64 = malloc(b64_len + 1);
    assert_int_equal(EVP_EncodeBlock(b64, der, (int)n), (int)b64_len);
    size_t cap = b64_len + b64_len / 64 + 128;
    char *s = malloc(cap);
    size_t off = (size_t)snprintf(s, cap, "-----BEGIN %s-----\n", label);
    for (size_t i = 0; i < b64_len; i += 64) {
        size_t k = b64_len - i < 64 ? b64_len - i : 64;
        memcpy(s + off, b64 + i, k);
        off += k;
        s[off++] = '\n';
    }
    off += (size_t)snprintf(s + off, cap - off, "-----END %s-----\n", label);
    *len = off;
    free(b64);
    return s;
}

static void test_tampered_csr_refused(void **state)
{
    fixture *f = *state;
    init_ok(f->data, NULL);
    server_ca *ca = load_ok(f->data);
    pv_key *k = NULL;
    assert_int_equal(pv_key_generate(&k, NULL), PV_OK);
    size_t len = 0;
    char *csr = csr_for(k, "CN=tamper-me-please", &len);
    BIO *bio = BIO_new_mem_buf(csr, (int)len);
    X509_REQ *req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    assert_non_null(req);
    unsigned char *der = NULL;
    int n = i2d_X509_REQ(req, &der);
    assert_true(n > 0);

    /* Change the subject the key signed: the request still parses. */
    uint8_t *hit = memmem(der, (size_t)n, "tamper-me-please", 16);
    assert_non_null(hit);
    hit[0] = 'T';
    size_t plen = 0;
    char *pem = to_pem(der, (size_t)n, "CERTIFICATE REQUEST", &plen);
    ca_issued out;
    pv_err e = {0};
    assert_int_equal(ca_issue_operator(ca, pem, plen, "bob", 90, &out, &e), PV_ERR_SIGNATURE);
    assert_null(out.cert_pem);
    free(pem);

    /* Swap in another key: the signature is not by it. */
    hit[0] = 't';
    pv_key *other = NULL;
    assert_int_equal(pv_key_generate(&other, NULL), PV_OK);
    pv_buf *spki = pv_buf_new(1024);
    pv_buf *spki_other = pv_buf_new(1024);
    assert_int_equal(pv_key_spki_der(k, spki), PV_OK);
    assert_int_equal(pv_key_spki_der(other, spki_other), PV_OK);
    assert_int_equal(pv_buf_len(spki), pv_buf_len(spki_other));
    hit = memmem(der, (size_t)n, pv_buf_data(spki), pv_buf_len(spki));
    assert_non_null(hit);
    memcpy(hit, pv_buf_data(spki_other), pv_buf_len(spki_other));
    pem = to_pem(der, (size_t)n, "CERTIFICATE REQUEST", &plen);
    assert_int_equal(ca_issue_operator(ca, pem, plen, "bob", 90, &out, &e), PV_ERR_SIGNATURE);
    free(pem);

    /* The untouched request still works (the tests above changed only copies). */
    assert_int_equal(ca_issue_operator(ca, csr, len, "bob", 90, &out, &e), PV_OK);
    ca_issued_clear(&out);

    pv_buf_free(spki);
    pv_buf_free(spki_other);
    pv_key_free(other);
    OPENSSL_free(der);
    X509_REQ_free(req);
    BIO_free(bio);
    free(csr);
    pv_key_free(k);
    ca_free(ca);
}

static void test_server_cert_names(void **state)
{
    fixture *f = *state;
    static const char *const hosts[] = {"pavise.example.com", "10.0.0.5", "fe80::1",
                                        "localhost",          "Host-2",   NULL};
    init_ok(f->data, hosts);
    server_ca *ca = load_ok(f->data);
    X509 *x = pv_cert_x509(ca_server_cert(ca));
    assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "pavise.example.com", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "host-2", 0, 0, NULL), 1);
    assert_int_not_equal(X509_check_host(x, "example.com", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "10.0.0.5", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "fe80::1", 0), 1);
    assert_int_not_equal(X509_check_ip_asc(x, "10.0.0.6", 0), 1);

    /* localhost, given again, appears once. */
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_non_null(names);
    assert_int_equal(sk_GENERAL_NAME_num(names), 7);
    GENERAL_NAMES_free(names);
    ca_free(ca);

    /* Without host names: the loopback names only. */
    char *other = tu_path(f->dir, "other");
    init_ok(other, NULL);
    ca = load_ok(other);
    x = pv_cert_x509(ca_server_cert(ca));
    names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_int_equal(sk_GENERAL_NAME_num(names), 3);
    GENERAL_NAMES_free(names);
    assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
    ca_free(ca);
    free(other);
}

static void test_bad_hostnames_refused(void **state)
{
    fixture *f = *state;
    static const char *const bad[] = {
        "",
        "-lead.example",
        "trail-.example",
        "a..b",
        ".a",
        "a.",
        "under_sc",
        "sp ace",
        "a,IP:1.2.3.4",
        "DNS:x",
        "1.2.3.4:5",
        "[::1]",
        "ex*mp.com",
        "1234567890123456789012345678901234567890123456789012345678901234.com",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *hosts[] = {"ok.example", bad[i], NULL};
        pv_err e = {0};
        assert_int_equal(ca_init(f->data, hosts, &e), PV_ERR_INVALID_ARG);
        assert_non_null(strstr(pv_err_msg(&e), "host name"));
        /* Nothing was written. */
        assert_false(tu_exists(f->data) && tu_count_entries(f->data) > 0);
    }
    init_ok(f->data, NULL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_init_load_round_trip),     T(test_second_init_refused),
        T(test_not_initialised),          T(test_readable_key_refused),
        T(test_mismatched_files_refused), T(test_issue_operator),
        T(test_issue_refusals),           T(test_non_p256_csr_refused),
        T(test_tampered_csr_refused),     T(test_server_cert_names),
        T(test_bad_hostnames_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
