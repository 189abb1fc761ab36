/* SPDX-License-Identifier: Apache-2.0 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pavise/x509.h"

#define DAY  ((int64_t)24 * 3600)
#define YEAR (365 * DAY)
#define T0   ((int64_t)1700000000) /* 2023-11-14 */

enum { USE_CODE = 1, USE_CLIENT = 2, USE_SERVER = 4, USE_CAPABILITY = 8 };

/* A root CA, an intermediate CA and a code-signing leaf built from fixed times. */
typedef struct fixture {
    char *dir;
    pv_key *root_key, *int_key, *leaf_key;
    pv_cert *root, *inter, *leaf;
} fixture;

static pv_cert *mk(const char *subject, bool ca, unsigned uses, int64_t nb, int64_t na, pv_key *key,
                   pv_cert *issuer, pv_key *issuer_key)
{
    pv_cert_params p = {.subject = subject,
                        .not_before = nb,
                        .not_after = na,
                        .is_ca = ca,
                        .path_len = -1,
                        .code_signing = (uses & USE_CODE) != 0,
                        .client_auth = (uses & USE_CLIENT) != 0,
                        .server_auth = (uses & USE_SERVER) != 0,
                        .capability_signing = (uses & USE_CAPABILITY) != 0};
    pv_err e = {0};
    pv_cert *c = NULL;
    int r = pv_cert_create(&p, key, issuer, issuer_key, &c, &e);
    if (r != PV_OK) {
        fail_msg("creating %s: %s", subject, pv_err_msg(&e));
    }
    return c;
}

static pv_key *newkey(void)
{
    pv_key *k = NULL;
    assert_int_equal(pv_key_generate(&k, NULL), PV_OK);
    return k;
}

static pv_chain *chain_of(pv_cert *a, pv_cert *b, pv_cert *c)
{
    pv_chain *ch = pv_chain_new();
    assert_non_null(ch);
    pv_cert *certs[] = {a, b, c};
    for (size_t i = 0; i < 3; i++) {
        if (certs[i] != NULL) {
            assert_int_equal(pv_chain_add(ch, certs[i]), PV_OK);
        }
    }
    return ch;
}

static pv_trust *trust_of(pv_cert *anchor)
{
    pv_trust *t = pv_trust_new();
    assert_non_null(t);
    assert_int_equal(pv_trust_add(t, anchor), PV_OK);
    return t;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->dir = tu_mkdtemp("x509");
    f->root_key = newkey();
    f->int_key = newkey();
    f->leaf_key = newkey();
    f->root = mk("CN=Root CA,O=Example", true, 0, T0 - 10 * YEAR, T0 + 20 * YEAR, f->root_key, NULL,
                 NULL);
    f->inter = mk("CN=Intermediate CA,O=Example", true, 0, T0 - 5 * YEAR, T0 + 10 * YEAR,
                  f->int_key, f->root, f->root_key);
    f->leaf = mk("CN=Signer,O=Example,C=US", false, USE_CODE, T0 - YEAR, T0 + YEAR, f->leaf_key,
                 f->inter, f->int_key);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    pv_cert_free(f->leaf);
    pv_cert_free(f->inter);
    pv_cert_free(f->root);
    pv_key_free(f->leaf_key);
    pv_key_free(f->int_key);
    pv_key_free(f->root_key);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Verifies leaf[, b[, c]] against anchor and returns the code; the message must mention
 * `expect` when it is given. */
static int verify3(pv_cert *a, pv_cert *b, pv_cert *c, pv_cert *anchor, int64_t at, unsigned flags,
                   const char *expect)
{
    pv_chain *ch = chain_of(a, b, c);
    pv_trust *t = trust_of(anchor);
    pv_err e = {0};
    int r = pv_chain_verify(ch, t, at, flags, &e);
    if (r != PV_OK) {
        print_message("verify: %s\n", pv_err_msg(&e));
        if (expect != NULL && strstr(pv_err_msg(&e), expect) == NULL) {
            fail_msg("message '%s' does not mention '%s'", pv_err_msg(&e), expect);
        }
    }
    pv_chain_free(ch);
    pv_trust_free(t);
    return r;
}

#define ALL (PV_VERIFY_CODE_SIGNING | PV_VERIFY_ALL_USED)

static void test_chain_verifies(void **state)
{
    fixture *f = *state;
    assert_int_equal(verify3(f->leaf, f->inter, NULL, f->root, T0, ALL, NULL), PV_OK);
    assert_int_equal(verify3(f->leaf, f->inter, NULL, f->root, T0, 0, NULL), PV_OK);
    /* The root may come along in the chain; it is on the path. */
    assert_int_equal(verify3(f->leaf, f->inter, f->root, f->root, T0, ALL, NULL), PV_OK);
    /* An intermediate as anchor ends the path there. */
    assert_int_equal(verify3(f->leaf, f->inter, NULL, f->inter, T0, ALL, NULL), PV_OK);
    /* Without the intermediate there is no path. */
    assert_int_equal(verify3(f->leaf, NULL, NULL, f->root, T0, ALL, "depth 0"), PV_ERR_UNTRUSTED);
}

static void test_certificate_contents(void **state)
{
    fixture *f = *state;
    char s[256];
    pv_cert_subject(f->leaf, s, sizeof(s));
    assert_string_equal(s, "CN=Signer,O=Example,C=US");
    pv_cert_issuer(f->leaf, s, sizeof(s));
    assert_string_equal(s, "CN=Intermediate CA,O=Example");
    pv_cert_subject(f->leaf, s, 5);
    assert_string_equal(s, "CN=S");
    pv_cert_issuer(f->root, s, sizeof(s));
    assert_string_equal(s, "CN=Root CA,O=Example");

    int64_t nb = 0, na = 0;
    assert_int_equal(pv_cert_validity(f->leaf, &nb, &na), PV_OK);
    assert_int_equal(nb, T0 - YEAR);
    assert_int_equal(na, T0 + YEAR);

    assert_true(pv_cert_is_ca(f->root));
    assert_true(pv_cert_is_ca(f->inter));
    assert_false(pv_cert_is_ca(f->leaf));

    pv_key *pub = NULL;
    assert_int_equal(pv_cert_public_key(f->leaf, &pub, NULL), PV_OK);
    assert_true(pv_key_equal_public(pub, f->leaf_key));
    assert_false(pv_key_has_private(pub));
    pv_key_free(pub);

    X509 *x = pv_cert_x509(f->leaf);
    assert_int_equal(X509_get_version(x), X509_VERSION_3);
    /* Serial: positive, 16 bytes. */
    const ASN1_INTEGER *serial = X509_get0_serialNumber(x);
    assert_int_equal(ASN1_STRING_type(serial), V_ASN1_INTEGER);
    assert_int_equal(ASN1_STRING_length(serial), 16);
    assert_int_not_equal(ASN1_INTEGER_cmp(serial, X509_get0_serialNumber(pv_cert_x509(f->inter))),
                         0);
    /* Extensions. */
    int idx = X509_get_ext_by_NID(x, NID_basic_constraints, -1);
    assert_true(idx >= 0);
    assert_int_equal(X509_EXTENSION_get_critical(X509_get_ext(x, idx)), 1);
    idx = X509_get_ext_by_NID(x, NID_key_usage, -1);
    assert_true(idx >= 0);
    assert_int_equal(X509_EXTENSION_get_critical(X509_get_ext(x, idx)), 1);
    assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
    assert_int_equal(X509_get_extended_key_usage(x), XKU_CODE_SIGN);
    X509 *ix = pv_cert_x509(f->inter);
    assert_int_equal(X509_get_key_usage(ix), KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    assert_true(X509_get_extension_flags(ix) & EXFLAG_CA);
    assert_int_equal(X509_get_ext_by_NID(ix, NID_ext_key_usage, -1), -1);
    /* authorityKeyIdentifier of each = subjectKeyIdentifier of its issuer. */
    assert_non_null(X509_get0_subject_key_id(x));
    assert_int_equal(
        ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x), X509_get0_subject_key_id(ix)), 0);
    X509 *rx = pv_cert_x509(f->root);
    assert_int_equal(
        ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(ix), X509_get0_subject_key_id(rx)), 0);
    assert_int_equal(
        ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(rx), X509_get0_subject_key_id(rx)), 0);
    /* Signed with ECDSA SHA-256. */
    assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
}

static void test_path_len(void **state)
{
    fixture *f = *state;
    pv_cert_params p = {.subject = "CN=Limited CA",
                        .not_before = T0 - YEAR,
                        .not_after = T0 + YEAR,
                        .is_ca = true,
                        .path_len = 0};
    pv_cert *ca = NULL;
    assert_int_equal(pv_cert_create(&p, f->int_key, f->root, f->root_key, &ca, NULL), PV_OK);
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(pv_cert_x509(ca), NID_basic_constraints, NULL, NULL);
    assert_non_null(bc);
    assert_true(bc->ca);
    assert_non_null(bc->pathlen);
    assert_int_equal(ASN1_INTEGER_get(bc->pathlen), 0);
    BASIC_CONSTRAINTS_free(bc);

    /* A CA below a pathlen:0 CA breaks the constraint. */
    pv_key *k = newkey();
    pv_cert *sub = mk("CN=Sub CA", true, 0, T0 - YEAR, T0 + YEAR, k, ca, f->int_key);
    pv_cert *leaf = mk("CN=Leaf", false, USE_CODE, T0 - YEAR, T0 + YEAR, f->leaf_key, sub, k);
    assert_int_equal(verify3(leaf, sub, ca, f->root, T0, ALL, "path length"), PV_ERR_UNTRUSTED);
    pv_cert_free(leaf);
    pv_cert_free(sub);
    pv_key_free(k);
    pv_cert_free(ca);

    /* A negative path length other than -1 is refused for a CA. */
    p.path_len = -2;
    assert_int_equal(pv_cert_create(&p, f->int_key, f->root, f->root_key, &ca, NULL),
                     PV_ERR_INVALID_ARG);
    assert_null(ca);
    /* A leaf ignores path_len: a zeroed field must not produce a CA constraint. */
    p.is_ca = false;
    p.path_len = 0;
    assert_int_equal(pv_cert_create(&p, f->leaf_key, f->root, f->root_key, &ca, NULL), PV_OK);
    bc = X509_get_ext_d2i(pv_cert_x509(ca), NID_basic_constraints, NULL, NULL);
    assert_non_null(bc);
    assert_false(bc->ca);
    assert_null(bc->pathlen);
    BASIC_CONSTRAINTS_free(bc);
    pv_cert_free(ca);
}

static void test_wrong_anchor(void **state)
{
    fixture *f = *state;
    pv_key *k = newkey();
    pv_cert *other = mk("CN=Root CA,O=Example", true, 0, T0 - YEAR, T0 + YEAR, k, NULL, NULL);
    assert_int_equal(verify3(f->leaf, f->inter, NULL, other, T0, ALL, "Intermediate CA"),
                     PV_ERR_UNTRUSTED);
    /* A leaf that is its own anchor is not a CA-signed leaf but is trusted as given. */
    assert_int_equal(verify3(f->leaf, NULL, NULL, f->leaf, T0, 0, NULL), PV_OK);
    pv_cert_free(other);
    pv_key_free(k);
}

static void test_validity(void **state)
{
    fixture *f = *state;
    /* Leaf: [T0 - 1y, T0 + 1y]. */
    assert_int_equal(verify3(f->leaf, f->inter, NULL, f->root, T0 + YEAR + 1, ALL, "expired"),
                     PV_ERR_EXPIRED);
    assert_int_equal(verify3(f->leaf, f->inter, NULL, f->root, T0 - YEAR - 1, ALL, "not yet"),
                     PV_ERR_EXPIRED);
    assert_int_equal(verify3(f->leaf, f->inter, NULL, f->root, T0 + YEAR - 1, ALL, NULL), PV_OK);
    assert_int_equal(verify3(f->leaf, f->inter, NULL, f->root, T0 - YEAR + 1, ALL, NULL), PV_OK);
    /* An expired intermediate fails the chain too. */
    pv_cert *old_inter = mk("CN=Intermediate CA,O=Example", true, 0, T0 - 5 * YEAR, T0 - DAY,
                            f->int_key, f->root, f->root_key);
    assert_int_equal(verify3(f->leaf, old_inter, NULL, f->root, T0, ALL, "depth 1"),
                     PV_ERR_EXPIRED);
    pv_cert_free(old_inter);

    /* Chains made by the shared helper, against the clock. */
    int64_t now = (int64_t)time(NULL);
    pv_chain *ch = NULL;
    pv_trust *t = NULL;
    pv_err e = {0};
    tu_make_chain(f->dir, now - 2 * YEAR, now - YEAR, NULL, &ch, &t);
    assert_int_equal(pv_chain_verify(ch, t, now, ALL, &e), PV_ERR_EXPIRED);
    assert_int_equal(pv_chain_verify(ch, t, now - YEAR - DAY, ALL, &e), PV_OK);
    pv_chain_free(ch);
    pv_trust_free(t);
    tu_make_chain(f->dir, now + YEAR, now + 2 * YEAR, NULL, &ch, &t);
    assert_int_equal(pv_chain_verify(ch, t, now, ALL, &e), PV_ERR_EXPIRED);
    pv_chain_free(ch);
    pv_trust_free(t);
}

static void test_dates_beyond_2038(void **state)
{
    fixture *f = *state;
    const int64_t y2060 = 2840140800; /* 2060-01-01 */
    const int64_t y2100 = 4102444800; /* 2100-01-01 */
    pv_cert *inter =
        mk("CN=Future CA", true, 0, y2060 - YEAR, y2100 + YEAR, f->int_key, f->root, f->root_key);
    pv_cert *leaf =
        mk("CN=Future Signer", false, USE_CODE, y2060, y2100, f->leaf_key, inter, f->int_key);
    int64_t nb = 0, na = 0;
    assert_int_equal(pv_cert_validity(leaf, &nb, &na), PV_OK);
    assert_int_equal(nb, y2060);
    assert_int_equal(na, y2100);
    /* 2050 and later are GeneralizedTime (RFC 5280 §4.1.2.5). */
    assert_int_equal(ASN1_STRING_type(X509_get0_notAfter(pv_cert_x509(leaf))),
                     V_ASN1_GENERALIZEDTIME);
    assert_int_equal(ASN1_STRING_type(X509_get0_notBefore(pv_cert_x509(f->leaf))), V_ASN1_UTCTIME);
    /* The root only lasts until T0 + 20y (2043): beyond that the chain has expired. */
    assert_int_equal(verify3(leaf, inter, NULL, f->root, y2060 + DAY, ALL, NULL), PV_ERR_EXPIRED);
    pv_key *rk = newkey();
    pv_cert *root = mk("CN=Long Root", true, 0, T0, y2100 + 2 * YEAR, rk, NULL, NULL);
    pv_cert *inter2 = mk("CN=Future CA", true, 0, y2060 - YEAR, y2100 + YEAR, f->int_key, root, rk);
    assert_int_equal(verify3(leaf, inter2, NULL, root, y2060 + DAY, ALL, NULL), PV_OK);
    assert_int_equal(verify3(leaf, inter2, NULL, root, y2100 + DAY, ALL, NULL), PV_ERR_EXPIRED);
    pv_cert_free(inter2);
    pv_cert_free(root);
    pv_key_free(rk);
    pv_cert_free(leaf);
    pv_cert_free(inter);

    /* notAfter must be after notBefore. */
    pv_cert_params p = {.subject = "CN=x", .not_before = T0, .not_after = T0, .path_len = -1};
    pv_cert *c = NULL;
    assert_int_equal(pv_cert_create(&p, f->leaf_key, NULL, NULL, &c, NULL), PV_ERR_INVALID_ARG);
    /* Years past 9999 cannot be encoded. */
    p.not_after = (int64_t)300000 * YEAR;
    assert_int_not_equal(pv_cert_create(&p, f->leaf_key, NULL, NULL, &c, NULL), PV_OK);
    assert_null(c);
}

static void test_intermediate_not_ca(void **state)
{
    fixture *f = *state;
    pv_key *k = newkey();
    /* A leaf certificate (CA:FALSE, digitalSignature only) used to issue another. */
    pv_cert *fake =
        mk("CN=Not A CA", false, USE_CODE, T0 - YEAR, T0 + YEAR, k, f->inter, f->int_key);
    pv_cert *leaf = mk("CN=Victim", false, USE_CODE, T0 - YEAR, T0 + YEAR, f->leaf_key, fake, k);
    assert_int_equal(verify3(leaf, fake, f->inter, f->root, T0, 0, NULL), PV_ERR_UNTRUSTED);
    assert_int_equal(verify3(leaf, fake, f->inter, f->root, T0, ALL, NULL), PV_ERR_UNTRUSTED);
    pv_cert_free(leaf);
    pv_cert_free(fake);
    pv_key_free(k);
}

static void test_code_signing_usage(void **state)
{
    fixture *f = *state;
    pv_cert *tls =
        mk("CN=Server", false, USE_SERVER, T0 - YEAR, T0 + YEAR, f->leaf_key, f->inter, f->int_key);
    assert_int_equal(
        verify3(tls, f->inter, NULL, f->root, T0, PV_VERIFY_CODE_SIGNING, "codeSigning"),
        PV_ERR_UNTRUSTED);
    assert_int_equal(verify3(tls, f->inter, NULL, f->root, T0, PV_VERIFY_ALL_USED, NULL), PV_OK);
    pv_cert_free(tls);

    /* Several usages including codeSigning are fine; no extendedKeyUsage at all too. */
    pv_cert *multi = mk("CN=Multi", false, USE_CODE | USE_CLIENT | USE_SERVER, T0 - YEAR, T0 + YEAR,
                        f->leaf_key, f->inter, f->int_key);
    assert_int_equal(X509_get_extended_key_usage(pv_cert_x509(multi)),
                     XKU_CODE_SIGN | XKU_SSL_CLIENT | XKU_SSL_SERVER);
    assert_int_equal(verify3(multi, f->inter, NULL, f->root, T0, ALL, NULL), PV_OK);
    pv_cert_free(multi);
    pv_cert *plain =
        mk("CN=Plain", false, 0, T0 - YEAR, T0 + YEAR, f->leaf_key, f->inter, f->int_key);
    assert_int_equal(X509_get_ext_by_NID(pv_cert_x509(plain), NID_ext_key_usage, -1), -1);
    assert_int_equal(verify3(plain, f->inter, NULL, f->root, T0, ALL, NULL), PV_OK);
    pv_cert_free(plain);

    /* A CA certificate as the leaf, even with codeSigning, may not sign code. */
    pv_key *k = newkey();
    pv_cert *ca_leaf =
        mk("CN=CA Signer", true, USE_CODE, T0 - YEAR, T0 + YEAR, k, f->inter, f->int_key);
    assert_int_equal(
        verify3(ca_leaf, f->inter, NULL, f->root, T0, PV_VERIFY_CODE_SIGNING, "is a CA"),
        PV_ERR_UNTRUSTED);
    assert_int_equal(verify3(ca_leaf, f->inter, NULL, f->root, T0, 0, NULL), PV_OK);
    assert_int_equal(verify3(f->inter, NULL, NULL, f->root, T0, PV_VERIFY_CODE_SIGNING, "is a CA"),
                     PV_ERR_UNTRUSTED);
    pv_cert_free(ca_leaf);
    pv_key_free(k);
}

/* The capability-signing usage (PV_VERIFY_CAPABILITY_SIGNING): required, exclusive of
 * code signing both ways, and a flag of its own that leaves code signing as it was. */
static void test_capability_signing_usage(void **state)
{
    fixture *f = *state;
    pv_err e = {0};
    pv_cert *cap = mk("CN=Capability Signer", false, USE_CAPABILITY, T0 - YEAR, T0 + YEAR,
                      f->leaf_key, f->inter, f->int_key);
    const unsigned CAP = PV_VERIFY_CAPABILITY_SIGNING | PV_VERIFY_ALL_USED;

    /* The OID as DER, as docs/formats/capability.md gives it. */
    static const uint8_t oid_der[] = {0x06, 0x14, 0x69, 0x82, 0xe1, 0xa3, 0xc2, 0xbf,
                                      0x8c, 0x9c, 0x92, 0xb9, 0x8b, 0xb7, 0xf8, 0x97,
                                      0x88, 0xd8, 0xc3, 0xad, 0x82, 0x47};
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(pv_cert_x509(cap), NID_ext_key_usage, NULL, NULL);
    assert_non_null(eku);
    assert_int_equal(sk_ASN1_OBJECT_num(eku), 1);
    unsigned char *der = NULL;
    int n = i2d_ASN1_OBJECT(sk_ASN1_OBJECT_value(eku, 0), &der);
    assert_int_equal(n, sizeof(oid_der));
    assert_memory_equal(der, oid_der, sizeof(oid_der));
    OPENSSL_free(der);
    EXTENDED_KEY_USAGE_free(eku);
    /* Not critical, like the other usages; digitalSignature in the key usage. */
    X509 *x = pv_cert_x509(cap);
    int idx = X509_get_ext_by_NID(x, NID_ext_key_usage, -1);
    assert_int_equal(X509_EXTENSION_get_critical(X509_get_ext(x, idx)), 0);
    assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);

    assert_int_equal(verify3(cap, f->inter, NULL, f->root, T0, CAP, NULL), PV_OK);
    /* A capability signer cannot sign code... */
    assert_int_equal(
        verify3(cap, f->inter, NULL, f->root, T0, PV_VERIFY_CODE_SIGNING, "codeSigning"),
        PV_ERR_UNTRUSTED);
    /* ...and a code signer cannot sign capabilities, nor can a leaf without any extended
     * key usage (good for code) or with others only. */
    assert_int_equal(verify3(f->leaf, f->inter, NULL, f->root, T0, CAP, "capability signing"),
                     PV_ERR_UNTRUSTED);
    pv_cert *plain =
        mk("CN=Plain", false, 0, T0 - YEAR, T0 + YEAR, f->leaf_key, f->inter, f->int_key);
    assert_int_equal(verify3(plain, f->inter, NULL, f->root, T0, CAP, "capability signing"),
                     PV_ERR_UNTRUSTED);
    assert_int_equal(verify3(plain, f->inter, NULL, f->root, T0, ALL, NULL), PV_OK);
    pv_cert_free(plain);
    pv_cert *tls = mk("CN=Server", false, USE_SERVER | USE_CLIENT, T0 - YEAR, T0 + YEAR,
                      f->leaf_key, f->inter, f->int_key);
    assert_int_equal(verify3(tls, f->inter, NULL, f->root, T0, CAP, "capability signing"),
                     PV_ERR_UNTRUSTED);
    pv_cert_free(tls);
    /* Other usages beside it do not matter. */
    pv_cert *both = mk("CN=Cap And Client", false, USE_CAPABILITY | USE_CLIENT, T0 - YEAR,
                       T0 + YEAR, f->leaf_key, f->inter, f->int_key);
    assert_int_equal(verify3(both, f->inter, NULL, f->root, T0, CAP, NULL), PV_OK);
    pv_cert_free(both);

    /* A CA with the usage is no signer. */
    pv_key *k = newkey();
    pv_cert *ca_leaf =
        mk("CN=CA Signer", true, USE_CAPABILITY, T0 - YEAR, T0 + YEAR, k, f->inter, f->int_key);
    assert_int_equal(verify3(ca_leaf, f->inter, NULL, f->root, T0, CAP, "is a CA"),
                     PV_ERR_UNTRUSTED);
    pv_cert_free(ca_leaf);
    pv_key_free(k);

    /* The chain checks still come first: expiry, and the other flags' rules. */
    assert_int_equal(verify3(cap, f->inter, NULL, f->root, T0 + 2 * YEAR, CAP, NULL),
                     PV_ERR_EXPIRED);
    k = newkey();
    pv_cert *stray = mk("CN=Stray", false, 0, T0 - YEAR, T0 + YEAR, k, NULL, NULL);
    assert_int_equal(verify3(cap, f->inter, stray, f->root, T0, CAP, "not on the verified path"),
                     PV_ERR_UNTRUSTED);
    pv_cert_free(stray);
    pv_key_free(k);

    /* Both signing flags at once cannot be met, so they are refused as an argument. */
    pv_chain *ch = chain_of(cap, f->inter, NULL);
    pv_trust *t = trust_of(f->root);
    assert_int_equal(
        pv_chain_verify(ch, t, T0, PV_VERIFY_CODE_SIGNING | PV_VERIFY_CAPABILITY_SIGNING, &e),
        PV_ERR_INVALID_ARG);
    assert_int_equal(pv_chain_verify(ch, t, T0, 0x8u, &e), PV_ERR_INVALID_ARG);
    pv_chain_free(ch);
    pv_trust_free(t);

    /* Nor can one certificate be made for both. */
    pv_cert_params p = {.subject = "CN=Both",
                        .not_before = T0 - YEAR,
                        .not_after = T0 + YEAR,
                        .path_len = -1,
                        .code_signing = true,
                        .capability_signing = true};
    pv_cert *c = NULL;
    assert_int_equal(pv_cert_create(&p, f->leaf_key, f->inter, f->int_key, &c, &e),
                     PV_ERR_INVALID_ARG);
    assert_null(c);
    assert_non_null(strstr(pv_err_msg(&e), "never both"));
    pv_cert_free(cap);
}

static void test_all_used(void **state)
{
    fixture *f = *state;
    pv_key *k = newkey();
    pv_cert *stray = mk("CN=Stray", false, 0, T0 - YEAR, T0 + YEAR, k, NULL, NULL);
    assert_int_equal(verify3(f->leaf, f->inter, stray, f->root, T0, ALL,
                             "certificate 3 (CN=Stray) is not on the verified path"),
                     PV_ERR_UNTRUSTED);
    assert_int_equal(verify3(f->leaf, stray, f->inter, f->root, T0, ALL, "certificate 2"),
                     PV_ERR_UNTRUSTED);
    assert_int_equal(verify3(f->leaf, f->inter, stray, f->root, T0, PV_VERIFY_CODE_SIGNING, NULL),
                     PV_OK);
    /* With the intermediate as anchor, a root sent along is unused. */
    assert_int_equal(verify3(f->leaf, f->inter, f->root, f->inter, T0, ALL, "Root CA"),
                     PV_ERR_UNTRUSTED);
    pv_cert_free(stray);
    pv_key_free(k);
}

/* A copy of c's DER with the last byte (inside the signature) flipped. */
static pv_cert *corrupt(const pv_cert *c)
{
    const uint8_t *der;
    size_t len;
    pv_cert_der(c, &der, &len);
    uint8_t *copy = malloc(len);
    assert_non_null(copy);
    memcpy(copy, der, len);
    copy[len - 1] ^= 0x01;
    pv_cert *out = NULL;
    assert_int_equal(pv_cert_from_der(copy, len, &out, NULL), PV_OK);
    free(copy);
    return out;
}

static void test_bad_signature(void **state)
{
    fixture *f = *state;
    pv_cert *bad_leaf = corrupt(f->leaf);
    pv_cert *bad_inter = corrupt(f->inter);
    assert_int_equal(verify3(bad_leaf, f->inter, NULL, f->root, T0, 0, "signature"),
                     PV_ERR_UNTRUSTED);
    assert_int_equal(verify3(f->leaf, bad_inter, NULL, f->root, T0, 0, "signature"),
                     PV_ERR_UNTRUSTED);
    pv_cert_free(bad_inter);
    pv_cert_free(bad_leaf);
}

static void test_from_der(void **state)
{
    fixture *f = *state;
    const uint8_t *der;
    size_t len;
    pv_cert_der(f->leaf, &der, &len);
    pv_cert *c = NULL;
    pv_err e = {0};
    assert_int_equal(pv_cert_from_der(der, len, &c, &e), PV_OK);
    const uint8_t *der2;
    size_t len2;
    pv_cert_der(c, &der2, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(der2, der, len);
    assert_ptr_not_equal(der2, der);

    /* Fingerprint: SHA-256 of the DER. */
    uint8_t fp[PV_SHA256_LEN], want[PV_SHA256_LEN];
    pv_cert_fingerprint(c, fp);
    assert_int_equal(pv_sha256_digest(der, len, want), PV_OK);
    assert_memory_equal(fp, want, sizeof(want));
    pv_cert_fingerprint(f->leaf, fp);
    assert_memory_equal(fp, want, sizeof(want));

    /* References. */
    assert_ptr_equal(pv_cert_ref(c), c);
    pv_cert_free(c);
    pv_cert_free(c);
    pv_cert_free(NULL);
    assert_null(pv_cert_ref(NULL));

    uint8_t *buf = malloc(PV_CERT_MAX_DER + 2);
    assert_non_null(buf);
    memcpy(buf, der, len);
    buf[len] = 0;
    c = (pv_cert *)1;
    assert_int_equal(pv_cert_from_der(buf, len + 1, &c, &e), PV_ERR_FORMAT);
    assert_null(c);
    assert_non_null(strstr(e.msg, "trailing"));
    assert_int_equal(pv_cert_from_der(buf, len - 1, &c, &e), PV_ERR_FORMAT);
    assert_int_equal(pv_cert_from_der(buf, 0, &c, &e), PV_ERR_FORMAT);
    memset(buf, 0, PV_CERT_MAX_DER + 1);
    assert_int_equal(pv_cert_from_der(buf, PV_CERT_MAX_DER + 1, &c, &e), PV_ERR_TOO_LARGE);
    assert_int_equal(pv_cert_from_der(buf, 100, &c, &e), PV_ERR_FORMAT);
    assert_null(c);

    /* BER: the outer length in a longer form than needed is not DER. */
    assert_int_equal(der[0], 0x30);
    assert_int_equal(der[1], 0x82);
    buf[0] = 0x30;
    buf[1] = 0x83;
    buf[2] = 0x00;
    memcpy(buf + 3, der + 2, len - 2);
    assert_int_equal(pv_cert_from_der(buf, len + 1, &c, &e), PV_ERR_FORMAT);
    assert_null(c);
    free(buf);
}

/* A self-signed certificate for a P-384 key, made with OpenSSL directly. */
static void test_non_p256_key(void **state)
{
    (void)state;
    EVP_PKEY *pkey = EVP_EC_gen("P-384");
    assert_non_null(pkey);
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 7), 1);
    X509_NAME *name = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                (const unsigned char *)"p384", -1, -1, 0),
                     1);
    assert_int_equal(X509_set_issuer_name(x, name), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
    assert_int_equal(X509_set_pubkey(x, pkey), 1);
    assert_true(X509_sign(x, pkey, EVP_sha384()) > 0);
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    assert_true(n > 0);
    pv_cert *c = NULL;
    assert_int_equal(pv_cert_from_der(der, (size_t)n, &c, NULL), PV_OK);
    pv_key *k = (pv_key *)1;
    pv_err e = {0};
    assert_int_equal(pv_cert_public_key(c, &k, &e), PV_ERR_UNSUPPORTED);
    assert_null(k);
    print_message("%s\n", e.msg);
    pv_cert_free(c);
    OPENSSL_free(der);
    X509_free(x);
    EVP_PKEY_free(pkey);
}

static char *write_pem(const char *dir, const char *name, pv_cert **certs, size_t n)
{
    pv_chain *ch = pv_chain_new();
    assert_non_null(ch);
    pv_buf *b = pv_buf_new(PV_PEM_MAX_FILE * 2);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++) {
        /* Past 8 the chain refuses: write in batches. */
        if (pv_chain_count(ch) == PV_CHAIN_MAX_CERTS) {
            assert_int_equal(pv_chain_to_pem(ch, b), PV_OK);
            pv_chain_free(ch);
            ch = pv_chain_new();
            assert_non_null(ch);
        }
        assert_int_equal(pv_chain_add(ch, certs[i]), PV_OK);
    }
    assert_int_equal(pv_chain_to_pem(ch, b), PV_OK);
    char *path = tu_path(dir, name);
    tu_write(path, pv_buf_data(b), pv_buf_len(b), 0644);
    pv_buf_free(b);
    pv_chain_free(ch);
    return path;
}

static void test_pem_load(void **state)
{
    fixture *f = *state;
    pv_cert *nine[9];
    for (size_t i = 0; i < 9; i++) {
        nine[i] = i % 2 ? f->inter : f->leaf;
    }
    pv_chain *ch = NULL;
    pv_err e = {0};

    char *path = write_pem(f->dir, "eight.pem", nine, 8);
    assert_int_equal(pv_chain_load_pem(path, &ch, &e), PV_OK);
    assert_int_equal(pv_chain_count(ch), 8);
    pv_chain_free(ch);
    free(path);

    path = write_pem(f->dir, "nine.pem", nine, 9);
    ch = (pv_chain *)1;
    assert_int_equal(pv_chain_load_pem(path, &ch, &e), PV_ERR_TOO_LARGE);
    assert_null(ch);
    assert_non_null(strstr(e.msg, path));
    free(path);

    /* A chain refuses a ninth certificate too. */
    ch = chain_of(f->leaf, f->leaf, f->leaf);
    for (size_t i = 3; i < PV_CHAIN_MAX_CERTS; i++) {
        assert_int_equal(pv_chain_add(ch, f->leaf), PV_OK);
    }
    assert_int_equal(pv_chain_add(ch, f->leaf), PV_ERR_TOO_LARGE);
    assert_int_equal(pv_chain_count(ch), PV_CHAIN_MAX_CERTS);
    assert_ptr_equal(pv_chain_get(ch, 0), f->leaf);
    assert_null(pv_chain_get(ch, PV_CHAIN_MAX_CERTS));
    pv_chain_free(ch);
    pv_chain_free(NULL);

    /* Empty, whitespace only, missing, too large. */
    path = tu_path(f->dir, "empty.pem");
    tu_write(path, "", 0, 0644);
    assert_int_equal(pv_chain_load_pem(path, &ch, &e), PV_ERR_FORMAT);
    assert_non_null(strstr(e.msg, path));
    tu_write(path, "\n\n  \n", 5, 0644);
    assert_int_equal(pv_chain_load_pem(path, &ch, &e), PV_ERR_FORMAT);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(pv_chain_load_pem(path, &ch, &e), PV_ERR_NOT_FOUND);
    assert_non_null(strstr(e.msg, path));
    size_t big_len = PV_PEM_MAX_FILE + 1;
    char *big = malloc(big_len);
    assert_non_null(big);
    memset(big, '\n', big_len);
    tu_write(path, big, big_len, 0644);
    assert_int_equal(pv_chain_load_pem(path, &ch, &e), PV_ERR_TOO_LARGE);
    free(big);
    assert_null(ch);
    free(path);
}

static void test_pem_refuses_other_blocks(void **state)
{
    fixture *f = *state;
    pv_buf *b = pv_buf_new(PV_PEM_MAX_FILE);
    assert_non_null(b);
    pv_chain *ch = chain_of(f->leaf, NULL, NULL);
    assert_int_equal(pv_chain_to_pem(ch, b), PV_OK);
    pv_chain_free(ch);
    size_t one_len = pv_buf_len(b);
    char *one = malloc(one_len + 1);
    assert_non_null(one);
    memcpy(one, pv_buf_data(b), one_len);
    one[one_len] = '\0';
    assert_non_null(strstr(one, "-----BEGIN CERTIFICATE-----\n"));
    pv_buf_free(b);
    char *path = tu_path(f->dir, "mixed.pem");
    pv_err e = {0};
    char text[16384];

    /* Explanatory text around the blocks is allowed (RFC 7468). */
    snprintf(text, sizeof(text), "subject=CN=Signer\n%sissuer=...\n%s", one, one);
    tu_write(path, text, strlen(text), 0644);
    assert_int_equal(pv_chain_load_pem(path, &ch, &e), PV_OK);
    assert_int_equal(pv_chain_count(ch), 2);
    pv_chain_free(ch);

    /* A key block among the certificates. */
    snprintf(text, sizeof(text),
             "%s-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n%s", one, one);
    tu_write(path, text, strlen(text), 0644);
    assert_int_equal(pv_chain_load_pem(path, &ch, &e), PV_ERR_FORMAT);
    print_message("%s\n", e.msg);
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "block 2"));
    assert_null(ch);

    /* A second block whose base64 is broken. */
    snprintf(text, sizeof(text), "%s-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
             one);
    tu_write(path, text, strlen(text), 0644);
    assert_int_equal(pv_chain_load_pem(path, &ch, &e), PV_ERR_FORMAT);
    print_message("%s\n", e.msg);
    assert_non_null(strstr(e.msg, path));

    /* A certificate block that holds something else. */
    snprintf(text, sizeof(text), "%s-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
             one);
    tu_write(path, text, strlen(text), 0644);
    assert_int_equal(pv_chain_load_pem(path, &ch, &e), PV_ERR_FORMAT);
    print_message("%s\n", e.msg);
    assert_non_null(strstr(e.msg, "certificate 2"));
    assert_non_null(strstr(e.msg, path));

    /* A block that ends early. */
    snprintf(text, sizeof(text), "%.*s", (int)(one_len - 10), one);
    tu_write(path, text, strlen(text), 0644);
    assert_int_equal(pv_chain_load_pem(path, &ch, &e), PV_ERR_FORMAT);
    print_message("%s\n", e.msg);

    /* Headers (as an encrypted block would have) are refused. */
    const char *body = strchr(one, '\n') + 1;
    snprintf(text, sizeof(text),
             "-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,"
             "00000000000000000000000000000000\n\n%s",
             body);
    tu_write(path, text, strlen(text), 0644);
    assert_int_equal(pv_chain_load_pem(path, &ch, &e), PV_ERR_FORMAT);
    print_message("%s\n", e.msg);
    free(path);
    free(one);
}

static void test_save_load_round_trip(void **state)
{
    fixture *f = *state;
    pv_chain *ch = chain_of(f->leaf, f->inter, NULL);
    char *path = tu_path(f->dir, "chain.pem");
    pv_err e = {0};
    assert_int_equal(pv_chain_save_pem(ch, path, false, &e), PV_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(pv_chain_save_pem(ch, path, false, &e), PV_ERR_EXISTS);
    assert_int_equal(pv_chain_save_pem(ch, path, true, &e), PV_OK);
    assert_int_equal(tu_count_entries(f->dir), 1);

    pv_chain *back = NULL;
    assert_int_equal(pv_chain_load_pem(path, &back, &e), PV_OK);
    assert_int_equal(pv_chain_count(back), 2);
    for (size_t i = 0; i < 2; i++) {
        uint8_t a[PV_SHA256_LEN], b[PV_SHA256_LEN];
        pv_cert_fingerprint(pv_chain_get(ch, i), a);
        pv_cert_fingerprint(pv_chain_get(back, i), b);
        assert_memory_equal(a, b, sizeof(a));
    }
    /* The loaded chain verifies against anchors loaded from a file. */
    pv_chain *root = chain_of(f->root, NULL, NULL);
    char *root_path = tu_path(f->dir, "root.crt");
    assert_int_equal(pv_chain_save_pem(root, root_path, false, &e), PV_OK);
    pv_trust *t = NULL;
    assert_int_equal(pv_trust_load_pem(root_path, &t, &e), PV_OK);
    assert_int_equal(pv_trust_count(t), 1);
    assert_int_equal(pv_chain_verify(back, t, T0, ALL, &e), PV_OK);
    pv_trust_free(t);
    pv_trust_free(NULL);
    t = (pv_trust *)1;
    assert_int_equal(unlink(root_path), 0);
    assert_int_equal(pv_trust_load_pem(root_path, &t, &e), PV_ERR_NOT_FOUND);
    assert_null(t);

    /* An empty chain is not saved. */
    pv_chain *empty = pv_chain_new();
    assert_int_equal(pv_chain_save_pem(empty, root_path, false, &e), PV_ERR_INVALID_ARG);
    assert_false(tu_exists(root_path));
    pv_chain_free(empty);

    free(root_path);
    pv_chain_free(root);
    pv_chain_free(back);
    pv_chain_free(ch);
    free(path);
}

static void test_verify_args(void **state)
{
    fixture *f = *state;
    pv_chain *ch = chain_of(f->leaf, f->inter, NULL);
    pv_chain *empty = pv_chain_new();
    pv_trust *t = trust_of(f->root);
    pv_trust *none = pv_trust_new();
    pv_err e = {0};
    assert_int_equal(pv_chain_verify(empty, t, T0, 0, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_chain_verify(NULL, t, T0, 0, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_chain_verify(ch, none, T0, 0, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_chain_verify(ch, NULL, T0, 0, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_chain_verify(ch, t, T0, 0x80, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_chain_verify(ch, t, T0, ALL, NULL), PV_OK);
    pv_trust_free(none);
    pv_trust_free(t);
    pv_chain_free(empty);
    pv_chain_free(ch);
}

static void test_subject_syntax(void **state)
{
    (void)state;
    static const char *good[] = {
        "CN=Name",
        "CN=Name,O=Org,OU=Unit,C=US,ST=State,L=City",
        "O=Org,CN=Name",
        "cn=lower case names",
        "CN=Device 42,OU=a,OU=b",
        "CN=Zürich Gerät",
        "CN=a-b_c.d/e(f)!@$%^&*'~`{}[]|?:",
        "CN="
        "0123456789012345678901234567890123456789012345678901234567890123",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        pv_err e = {0};
        if (pv_cert_check_subject(good[i], &e) != PV_OK) {
            fail_msg("'%s' refused: %s", good[i], e.msg);
        }
    }
    static const struct {
        const char *s;
        const char *why;
    } bad[] = {
        {"", "empty"},
        {"O=Org", "CN is required"},
        {"CN=", "CN: value is empty"},
        {"CN=a,", "part 2 is empty"},
        {",CN=a", "part 1 is empty"},
        {"CN=a,,O=b", "part 2 is empty"},
        {"CN", "expected NAME=value"},
        {"CN=a,DC=example", "unknown attribute 'DC'"},
        {"CN=a,emailAddress=x@y", "unknown attribute"},
        {"CN=a, O=b", "unknown attribute ' O'"},
        {"CN=a,CN=b", "CN appears more than once"},
        {"CN=a,O=b,O=c", "O appears more than once"},
        {"CN=a\\,b", "escapes"},
        {"CN=a+O=b", "escapes"},
        {"CN=a=b", "escapes"},
        {"CN=a;b", "escapes"},
        {"CN=\"a\"", "escapes"},
        {"CN= a", "space"},
        {"CN=a ", "space"},
        {"CN=#a", "'#'"},
        {"CN=a\tb", "control"},
        {"CN=a\nb", "control"},
        {"CN=a\x7f", "control"},
        {"CN=a\xc2\x85", "control"},
        {"CN=a\xff", "UTF-8"},
        {"CN=a\xc3", "UTF-8"},
        {"CN=\xc0\xaf", "UTF-8"},
        {"CN=\xed\xa0\x80", "UTF-8"},
        {"CN=a,C=USA", "country"},
        {"CN=a,C=us", "country"},
        {"CN=a,C=U", "country"},
        {"CN="
         "01234567890123456789012345678901234567890123456789012345678901234",
         "too long"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pv_err e = {0};
        if (pv_cert_check_subject(bad[i].s, &e) != PV_ERR_FORMAT) {
            fail_msg("'%s' accepted", bad[i].s);
        }
        if (strstr(e.msg, bad[i].why) == NULL) {
            fail_msg("'%s': message '%s' does not mention '%s'", bad[i].s, e.msg, bad[i].why);
        }
    }
    /* Longer than 256 characters in all. */
    char big[300];
    snprintf(big, sizeof(big), "CN=x");
    while (strlen(big) < 260) {
        strncat(big, ",OU=unit", sizeof(big) - strlen(big) - 1);
    }
    pv_err e = {0};
    assert_int_equal(pv_cert_check_subject(big, &e), PV_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "longer than 256"));
    assert_int_equal(pv_cert_check_subject(NULL, &e), PV_ERR_INVALID_ARG);
}

static void test_create_refusals(void **state)
{
    fixture *f = *state;
    pv_cert_params p = {.subject = "CN=Leaf",
                        .not_before = T0 - YEAR,
                        .not_after = T0 + YEAR,
                        .path_len = -1,
                        .code_signing = true};
    pv_cert *c = (pv_cert *)1;
    pv_err e = {0};
    /* The issuer key must be the issuer certificate's key. */
    assert_int_equal(pv_cert_create(&p, f->leaf_key, f->inter, f->root_key, &c, &e),
                     PV_ERR_INVALID_ARG);
    assert_null(c);
    assert_non_null(strstr(e.msg, "does not match"));
    /* Issuer and issuer key go together. */
    assert_int_equal(pv_cert_create(&p, f->leaf_key, f->inter, NULL, &c, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_cert_create(&p, f->leaf_key, NULL, f->int_key, &c, &e), PV_ERR_INVALID_ARG);
    /* A public key cannot sign. */
    pv_key *pub = NULL;
    assert_int_equal(pv_cert_public_key(f->inter, &pub, NULL), PV_OK);
    assert_int_equal(pv_cert_create(&p, f->leaf_key, f->inter, pub, &c, &e), PV_ERR_INVALID_ARG);
    assert_non_null(strstr(e.msg, "private"));
    /* ... but it can be the subject key. */
    assert_int_equal(pv_cert_create(&p, pub, f->root, f->root_key, &c, &e), PV_OK);
    pv_cert_free(c);
    assert_int_equal(pv_cert_create(&p, pub, NULL, NULL, &c, &e), PV_ERR_INVALID_ARG);
    pv_key_free(pub);
    /* Bad subject. */
    p.subject = "O=No Common Name";
    assert_int_equal(pv_cert_create(&p, f->leaf_key, f->inter, f->int_key, &c, &e), PV_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "CN is required"));
    p.subject = NULL;
    assert_int_equal(pv_cert_create(&p, f->leaf_key, f->inter, f->int_key, &c, &e),
                     PV_ERR_INVALID_ARG);
    assert_null(c);
}

static void test_make_chain_helper(void **state)
{
    fixture *f = *state;
    pv_key *k = NULL;
    pv_chain *ch = NULL;
    pv_trust *t = NULL;
    tu_make_chain(f->dir, T0 - DAY, T0 + DAY, &k, &ch, &t);
    assert_int_equal(pv_chain_count(ch), 2);
    assert_int_equal(pv_trust_count(t), 1);
    pv_err e = {0};
    assert_int_equal(pv_chain_verify(ch, t, T0, ALL, &e), PV_OK);
    pv_key *pub = NULL;
    assert_int_equal(pv_cert_public_key(pv_chain_get(ch, 0), &pub, NULL), PV_OK);
    assert_true(pv_key_equal_public(pub, k));
    pv_key_free(pub);

    /* The files say the same. */
    char *root_path = tu_path(f->dir, "root.crt");
    char *chain_path = tu_path(f->dir, "chain.pem");
    char *key_path = tu_path(f->dir, "leaf.key");
    pv_trust *ft = NULL;
    pv_chain *fch = NULL;
    pv_key *fk = NULL;
    assert_int_equal(pv_trust_load_pem(root_path, &ft, &e), PV_OK);
    assert_int_equal(pv_chain_load_pem(chain_path, &fch, &e), PV_OK);
    assert_int_equal(pv_key_load_private_pem(key_path, &fk, &e), PV_OK);
    assert_true(pv_key_equal_public(fk, k));
    assert_int_equal(pv_chain_verify(fch, ft, T0, ALL, &e), PV_OK);
    assert_int_equal(pv_chain_verify(fch, t, T0, ALL, &e), PV_OK);
    assert_int_equal(pv_chain_verify(fch, ft, T0 + 2 * DAY, ALL, &e), PV_ERR_EXPIRED);

    /* Called again in the same directory, with every output NULL. */
    tu_make_chain(f->dir, T0 - DAY, T0 + DAY, NULL, NULL, NULL);
    pv_chain_free(fch);
    assert_int_equal(pv_chain_load_pem(chain_path, &fch, &e), PV_OK);
    assert_int_equal(pv_chain_verify(fch, ft, T0, ALL, &e), PV_ERR_UNTRUSTED);

    pv_key_free(fk);
    pv_chain_free(fch);
    pv_trust_free(ft);
    free(key_path);
    free(chain_path);
    free(root_path);
    pv_trust_free(t);
    pv_chain_free(ch);
    pv_key_free(k);
}

static void test_csr_round_trip(void **state)
{
    fixture *f = *state;
    pv_buf *b = pv_buf_new(PV_CSR_MAX);
    pv_err e = {0};
    assert_int_equal(pv_csr_create(f->leaf_key, "CN=alice,O=Example", b, &e), PV_OK);
    const char *pem = (const char *)pv_buf_data(b);
    assert_int_equal(strncmp(pem, "-----BEGIN CERTIFICATE REQUEST-----", 35), 0);
    pv_key *pub = NULL;
    assert_int_equal(pv_csr_verify(pem, pv_buf_len(b), &pub, &e), PV_OK);
    assert_true(pv_key_equal_public(pub, f->leaf_key));
    assert_false(pv_key_has_private(pub));
    pv_key_free(pub);
    pv_buf_free(b);
}

static void test_csr_refusals(void **state)
{
    fixture *f = *state;
    pv_buf *b = pv_buf_new(PV_CSR_MAX);
    pv_err e = {0};
    pv_key *pub = (pv_key *)1;
    /* Creation: a subject in our syntax, a key with its private part. */
    assert_int_equal(pv_csr_create(f->leaf_key, "CN=a;b", b, &e), PV_ERR_FORMAT);
    assert_int_equal(pv_csr_create(f->leaf_key, "O=no common name", b, &e), PV_ERR_FORMAT);
    assert_int_equal(pv_csr_create(f->leaf_key, NULL, b, &e), PV_ERR_INVALID_ARG);
    pv_key *public_only = NULL;
    assert_int_equal(pv_cert_public_key(f->leaf, &public_only, &e), PV_OK);
    assert_int_equal(pv_csr_create(public_only, "CN=x", b, &e), PV_ERR_INVALID_ARG);
    pv_key_free(public_only);
    assert_int_equal(pv_buf_len(b), 0);

    /* Verification: empty, too large, not a request, a certificate instead. */
    assert_int_equal(pv_csr_verify("", 0, &pub, &e), PV_ERR_FORMAT);
    assert_null(pub);
    char *big = calloc(1, PV_CSR_MAX + 2);
    memset(big, 'A', PV_CSR_MAX + 1);
    assert_int_equal(pv_csr_verify(big, PV_CSR_MAX + 1, &pub, &e), PV_ERR_TOO_LARGE);
    free(big);
    assert_int_equal(pv_csr_verify("hello", 5, &pub, &e), PV_ERR_FORMAT);
    pv_chain *ch = chain_of(f->leaf, NULL, NULL);
    pv_buf *cert_pem = pv_buf_new(PV_PEM_MAX_FILE);
    assert_int_equal(pv_chain_to_pem(ch, cert_pem), PV_OK);
    assert_int_equal(
        pv_csr_verify((const char *)pv_buf_data(cert_pem), pv_buf_len(cert_pem), &pub, &e),
        PV_ERR_FORMAT);
    assert_null(pub);

    /* A signature byte changed: the key did not sign this request. */
    assert_int_equal(pv_csr_create(f->leaf_key, "CN=x", b, &e), PV_OK);
    BIO *bio = BIO_new_mem_buf(pv_buf_data(b), (int)pv_buf_len(b));
    X509_REQ *req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    assert_non_null(req);
    const ASN1_BIT_STRING *sig = NULL;
    X509_REQ_get0_signature(req, &sig, NULL);
    ((ASN1_BIT_STRING *)sig)->data[10] ^= 0x01;
    BIO *out = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_X509_REQ(out, req), 1);
    char *data = NULL;
    long n = BIO_get_mem_data(out, &data);
    assert_int_equal(pv_csr_verify(data, (size_t)n, &pub, &e), PV_ERR_SIGNATURE);
    assert_null(pub);
    BIO_free(out);
    BIO_free(bio);
    X509_REQ_free(req);
    pv_buf_free(cert_pem);
    pv_chain_free(ch);
    pv_buf_free(b);
}

static void test_subject_alt_names(void **state)
{
    fixture *f = *state;
    pv_cert_params p = {.subject = "CN=server",
                        .not_before = T0 - DAY,
                        .not_after = T0 + DAY,
                        .path_len = -1,
                        .server_auth = true,
                        .subject_alt_names = "DNS:a.example,DNS:localhost,IP:10.0.0.1,IP:::1"};
    pv_cert *c = NULL;
    pv_err e = {0};
    assert_int_equal(pv_cert_create(&p, f->leaf_key, f->inter, f->int_key, &c, &e), PV_OK);
    X509 *x = pv_cert_x509(c);
    assert_int_equal(X509_check_host(x, "a.example", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
    assert_int_not_equal(X509_check_host(x, "b.example", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(x, "10.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
    assert_int_not_equal(X509_check_ip_asc(x, "10.0.0.2", 0), 1);
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_int_equal(sk_GENERAL_NAME_num(names), 4);
    GENERAL_NAMES_free(names);
    pv_cert_free(c);

    /* None asked for: no extension. */
    p.subject_alt_names = NULL;
    assert_int_equal(pv_cert_create(&p, f->leaf_key, f->inter, f->int_key, &c, &e), PV_OK);
    assert_int_equal(X509_get_ext_by_NID(pv_cert_x509(c), NID_subject_alt_name, -1), -1);
    pv_cert_free(c);

    /* A malformed entry fails the creation rather than being dropped. */
    p.subject_alt_names = "IP:not-an-address";
    assert_int_not_equal(pv_cert_create(&p, f->leaf_key, f->inter, f->int_key, &c, &e), PV_OK);
    assert_null(c);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_chain_verifies),
        T(test_certificate_contents),
        T(test_path_len),
        T(test_wrong_anchor),
        T(test_validity),
        T(test_dates_beyond_2038),
        T(test_intermediate_not_ca),
        T(test_code_signing_usage),
        T(test_capability_signing_usage),
        T(test_all_used),
        T(test_bad_signature),
        T(test_from_der),
        T(test_non_p256_key),
        T(test_pem_load),
        T(test_pem_refuses_other_blocks),
        T(test_save_load_round_trip),
        T(test_verify_args),
        T(test_subject_syntax),
        T(test_create_refusals),
        T(test_make_chain_helper),
        T(test_csr_round_trip),
        T(test_csr_refusals),
        T(test_subject_alt_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
