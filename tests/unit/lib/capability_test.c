/* SPDX-License-Identifier: Apache-2.0 */
/* The device capability file (src/lib/capability.c, docs/formats/capability.md). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/capability.h"
#include "pavise/cbor.h"
#include "pavise/cose.h"

#define DAY  ((int64_t)24 * 3600)
#define YEAR (365 * DAY)
#define T0   ((int64_t)1700000000) /* 2023-11-14 */

#define DEVICE "5f0e3a1b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"
#define OTHER  "0000000000000000000000000000000000000000000000000000000000000001"

/* The update root (what the device trusts), an intermediate CA under it, the capability
 * signer and a code signer under that, and two development image roots. */
typedef struct fixture {
    pv_key *root_key, *int_key, *cap_key, *code_key, *dev_key[2];
    pv_cert *root, *inter, *cap_leaf, *code_leaf, *dev_root[2];
    pv_chain *chain;      /* cap_leaf, inter */
    pv_chain *code_chain; /* code_leaf, inter */
    pv_chain *roots;      /* dev_root[0], dev_root[1] */
    pv_trust *trust;      /* root */
} fixture;

static pv_key *newkey(void)
{
    pv_key *k = NULL;
    assert_int_equal(pv_key_generate(&k, NULL), PV_OK);
    return k;
}

static pv_cert *mk(const pv_cert_params *p, const pv_key *key, const pv_cert *issuer,
                   const pv_key *issuer_key)
{
    pv_err e = {0};
    pv_cert *c = NULL;
    if (pv_cert_create(p, key, issuer, issuer_key, &c, &e) != PV_OK) {
        fail_msg("creating %s: %s", p->subject, pv_err_msg(&e));
    }
    return c;
}

static pv_cert *mk_ca(const char *subject, const pv_key *key, const pv_cert *issuer,
                      const pv_key *issuer_key)
{
    pv_cert_params p = {.subject = subject,
                        .not_before = T0 - 10 * YEAR,
                        .not_after = T0 + 10 * YEAR,
                        .is_ca = true,
                        .path_len = -1};
    return mk(&p, key, issuer, issuer_key);
}

static pv_cert *mk_leaf(const char *subject, const pv_key *key, bool capability, bool code,
                        const pv_cert *issuer, const pv_key *issuer_key)
{
    pv_cert_params p = {.subject = subject,
                        .not_before = T0 - YEAR,
                        .not_after = T0 + YEAR,
                        .path_len = -1,
                        .code_signing = code,
                        .capability_signing = capability};
    return mk(&p, key, issuer, issuer_key);
}

static pv_chain *list_of(pv_cert *a, pv_cert *b, pv_cert *c)
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
    f->root_key = newkey();
    f->int_key = newkey();
    f->cap_key = newkey();
    f->code_key = newkey();
    f->root = mk_ca("CN=Update Root,O=Pavise Test", f->root_key, NULL, NULL);
    f->inter = mk_ca("CN=Service CA,O=Pavise Test", f->int_key, f->root, f->root_key);
    f->cap_leaf = mk_leaf("CN=Capability Signer,O=Pavise Test", f->cap_key, true, false, f->inter,
                          f->int_key);
    f->code_leaf =
        mk_leaf("CN=Code Signer,O=Pavise Test", f->code_key, false, true, f->inter, f->int_key);
    for (size_t i = 0; i < 2; i++) {
        f->dev_key[i] = newkey();
        f->dev_root[i] = mk_ca(i == 0 ? "CN=Development Root 1,O=Pavise Test"
                                      : "CN=Development Root 2,O=Pavise Test",
                               f->dev_key[i], NULL, NULL);
    }
    f->chain = list_of(f->cap_leaf, f->inter, NULL);
    f->code_chain = list_of(f->code_leaf, f->inter, NULL);
    f->roots = list_of(f->dev_root[0], f->dev_root[1], NULL);
    f->trust = trust_of(f->root);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    pv_trust_free(f->trust);
    pv_chain_free(f->roots);
    pv_chain_free(f->code_chain);
    pv_chain_free(f->chain);
    for (size_t i = 0; i < 2; i++) {
        pv_cert_free(f->dev_root[i]);
        pv_key_free(f->dev_key[i]);
    }
    pv_cert_free(f->code_leaf);
    pv_cert_free(f->cap_leaf);
    pv_cert_free(f->inter);
    pv_cert_free(f->root);
    pv_key_free(f->code_key);
    pv_key_free(f->cap_key);
    pv_key_free(f->int_key);
    pv_key_free(f->root_key);
    free(f);
    return 0;
}

/* A good file for DEVICE, AppDevelopment, both roots, issued at T0, expiring at
 * expires (0: never). */
static pv_buf *make(const fixture *f, int64_t expires)
{
    pv_err e = {0};
    pv_buf *b = pv_buf_new(PV_CAPABILITY_MAX_SIZE);
    assert_non_null(b);
    if (pv_capability_create(f->cap_key, f->chain, DEVICE, PV_CAP_APP_DEVELOPMENT, f->roots, T0,
                             expires, b, &e) != PV_OK) {
        fail_msg("create: %s", pv_err_msg(&e));
    }
    return b;
}

/* Verifies b for device at now; the message must mention expect when given. *out is
 * freed unless out is given. */
static int verify(const fixture *f, const pv_buf *b, const char *device, int64_t now,
                  const char *expect, pv_capability *out)
{
    pv_capability cap;
    pv_err e = {0};
    memset(&cap, 0xa5, sizeof(cap)); /* cleared on entry, whatever it held */
    int r = pv_capability_verify(pv_buf_data(b), pv_buf_len(b), f->trust, device, now, &cap, &e);
    if (r != PV_OK) {
        print_message("verify: %s\n", pv_err_msg(&e));
        assert_null(cap.dev_roots);
        assert_null(cap.dev_root_list);
        assert_int_equal(cap.caps, 0);
        if (expect != NULL && strstr(pv_err_msg(&e), expect) == NULL) {
            fail_msg("message '%s' does not mention '%s'", pv_err_msg(&e), expect);
        }
    }
    if (out != NULL) {
        *out = cap;
    } else {
        pv_capability_free(&cap);
    }
    return r;
}

/* ---- crafted files: signed as given, to reach the checks behind the signature ---- */

typedef struct craft {
    unsigned envelope_version; /* 0: 1 */
    const char *content_type;  /* NULL: the right one */
    bool short_kid;
    uint64_t version; /* 0: 1 */
    const char *device_id;
    const char *caps[4]; /* NULL-terminated; all NULL: "AppDevelopment" */
    bool empty_caps;
    unsigned repeat_caps; /* that many "AppDevelopment" */
    bool caps_not_array;
    const pv_chain *roots; /* NULL: the fixture's */
    bool no_roots;
    bool root_not_cert;
    int64_t issued; /* 0: T0 */
    int64_t expires;
    bool extra_key;
    bool no_issued;
    const pv_key *key;     /* NULL: the capability signer */
    const pv_chain *chain; /* NULL: its chain */
} craft;

static pv_buf *craft_file(const fixture *f, const craft *c)
{
    pv_err e = {0};
    pv_buf *payload = pv_buf_new(PV_CAPABILITY_MAX_SIZE);
    pv_buf *cose = pv_buf_new(PV_CAPABILITY_MAX_SIZE);
    pv_buf *file = pv_buf_new(2 * PV_CAPABILITY_MAX_SIZE);
    assert_true(payload != NULL && cose != NULL && file != NULL);
    const pv_key *key = c->key != NULL ? c->key : f->cap_key;
    const pv_chain *chain = c->chain != NULL ? c->chain : f->chain;
    const pv_chain *roots = c->no_roots ? NULL : c->roots != NULL ? c->roots : f->roots;
    size_t ncaps = 0, nroots = roots != NULL ? pv_chain_count(roots) : 0;
    while (ncaps < 4 && c->caps[ncaps] != NULL) {
        ncaps++;
    }

    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, payload);
    pv_cbor_put_map(&enc, 5 + (c->expires != 0) + c->extra_key - c->no_issued);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_uint(&enc, c->version != 0 ? c->version : 1);
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_text(&enc, c->device_id != NULL ? c->device_id : DEVICE);
    pv_cbor_put_uint(&enc, 3);
    if (c->caps_not_array) {
        pv_cbor_put_text(&enc, "AppDevelopment");
    } else if (c->empty_caps) {
        pv_cbor_put_array(&enc, 0);
    } else if (c->repeat_caps > 0) {
        pv_cbor_put_array(&enc, c->repeat_caps);
        for (unsigned i = 0; i < c->repeat_caps; i++) {
            pv_cbor_put_text(&enc, "AppDevelopment");
        }
    } else if (ncaps == 0) {
        pv_cbor_put_array(&enc, 1);
        pv_cbor_put_text(&enc, "AppDevelopment");
    } else {
        pv_cbor_put_array(&enc, ncaps);
        for (size_t i = 0; i < ncaps; i++) {
            pv_cbor_put_text(&enc, c->caps[i]);
        }
    }
    if (!c->no_issued) {
        pv_cbor_put_uint(&enc, 4);
        pv_cbor_put_uint(&enc, (uint64_t)(c->issued != 0 ? c->issued : T0));
    }
    pv_cbor_put_uint(&enc, 5);
    pv_cbor_put_array(&enc, nroots + c->root_not_cert);
    for (size_t i = 0; i < nroots; i++) {
        const uint8_t *der;
        size_t len;
        pv_cert_der(pv_chain_get(roots, i), &der, &len);
        pv_cbor_put_bytes(&enc, der, len);
    }
    if (c->root_not_cert) {
        pv_cbor_put_bytes(&enc, "not a certificate", 17);
    }
    if (c->expires != 0) {
        pv_cbor_put_uint(&enc, 6);
        pv_cbor_put_uint(&enc, (uint64_t)c->expires);
    }
    if (c->extra_key) {
        pv_cbor_put_uint(&enc, 7);
        pv_cbor_put_bool(&enc, true);
    }
    assert_int_equal(pv_cbor_enc_result(&enc), PV_OK);

    uint8_t kid[PV_KEY_ID_LEN];
    assert_int_equal(pv_key_id(key, kid), PV_OK);
    if (pv_cose_sign1_create(key, kid, c->short_kid ? 16 : sizeof(kid),
                             c->content_type != NULL ? c->content_type : PV_CAPABILITY_CONTENT_TYPE,
                             pv_buf_data(payload), pv_buf_len(payload), NULL, 0, 0, cose,
                             &e) != PV_OK) {
        fail_msg("sign: %s", pv_err_msg(&e));
    }
    pv_cbor_enc_init(&enc, file);
    pv_cbor_put_array(&enc, 3);
    pv_cbor_put_uint(&enc, c->envelope_version != 0 ? c->envelope_version : 1);
    pv_cbor_put_bytes(&enc, pv_buf_data(cose), pv_buf_len(cose));
    pv_cbor_put_chain(&enc, chain);
    assert_int_equal(pv_cbor_enc_result(&enc), PV_OK);
    pv_buf_free(cose);
    pv_buf_free(payload);
    return file;
}

/* ---- tests ---- */

static void test_names(void **state)
{
    (void)state;
    uint32_t bit = 0;
    assert_string_equal(pv_capability_name(PV_CAP_APP_DEVELOPMENT), "AppDevelopment");
    assert_null(pv_capability_name(0));
    assert_null(pv_capability_name(0x2));
    assert_null(pv_capability_name(PV_CAP_APP_DEVELOPMENT | 0x2));
    assert_int_equal(pv_capability_parse_name("AppDevelopment", &bit), PV_OK);
    assert_int_equal(bit, PV_CAP_APP_DEVELOPMENT);
    assert_int_equal(pv_capability_parse_name("appdevelopment", &bit), PV_ERR_UNSUPPORTED);
    assert_int_equal(pv_capability_parse_name("EnableRfTestMode", &bit), PV_ERR_UNSUPPORTED);
    assert_int_equal(pv_capability_parse_name(NULL, &bit), PV_ERR_UNSUPPORTED);
}

static void test_round_trip(void **state)
{
    fixture *f = *state;
    pv_capability cap;
    pv_buf *b = make(f, 0);
    assert_true(pv_buf_len(b) < PV_CAPABILITY_MAX_SIZE);
    assert_int_equal(verify(f, b, DEVICE, T0, NULL, &cap), PV_OK);
    assert_int_equal(cap.version, PV_CAPABILITY_VERSION);
    assert_string_equal(cap.device_id, DEVICE);
    assert_int_equal(cap.caps, PV_CAP_APP_DEVELOPMENT);
    assert_int_equal(cap.issued_at, T0);
    assert_int_equal(cap.expires_at, 0);
    uint8_t kid[PV_KEY_ID_LEN];
    assert_int_equal(pv_key_id(f->cap_key, kid), PV_OK);
    assert_memory_equal(cap.signer_key_id, kid, sizeof(kid));
    assert_int_equal(pv_trust_count(cap.dev_roots), 2);
    assert_int_equal(pv_chain_count(cap.dev_root_list), 2);
    for (size_t i = 0; i < 2; i++) {
        uint8_t a[PV_SHA256_LEN], want[PV_SHA256_LEN];
        pv_cert_fingerprint(pv_chain_get(cap.dev_root_list, i), a);
        pv_cert_fingerprint(f->dev_root[i], want);
        assert_memory_equal(a, want, sizeof(a));
    }

    /* What the device does with it: a development image's code signer under a
     * development root verifies against the roots the capability carries. */
    pv_key *k = newkey();
    pv_cert *dev_signer = mk_leaf("CN=Dev Signer", k, false, true, f->dev_root[1], f->dev_key[1]);
    pv_chain *dev_chain = list_of(dev_signer, NULL, NULL);
    pv_err e = {0};
    assert_int_equal(pv_chain_verify(dev_chain, cap.dev_roots, T0,
                                     PV_VERIFY_CODE_SIGNING | PV_VERIFY_ALL_USED, &e),
                     PV_OK);
    pv_chain_free(dev_chain);
    pv_cert_free(dev_signer);
    pv_key_free(k);
    pv_capability_free(&cap);
    pv_capability_free(&cap); /* cleared: a second free is harmless */
    pv_capability_free(NULL);

    /* Later and earlier within the signer's validity it still holds (no expiry). */
    assert_int_equal(verify(f, b, DEVICE, T0 + YEAR - 1, NULL, NULL), PV_OK);
    /* The update root itself may come along in the chain: it is on the path. */
    pv_chain *with_root = list_of(f->cap_leaf, f->inter, f->root);
    pv_buf *b2 = pv_buf_new(PV_CAPABILITY_MAX_SIZE);
    assert_int_equal(pv_capability_create(f->cap_key, with_root, DEVICE, PV_CAP_APP_DEVELOPMENT,
                                          f->roots, T0, 0, b2, &e),
                     PV_OK);
    assert_int_equal(verify(f, b2, DEVICE, T0, NULL, NULL), PV_OK);
    pv_buf_free(b2);
    pv_chain_free(with_root);
    pv_buf_free(b);
}

/* The payload is deterministic CBOR in the documented layout. */
static void test_payload_bytes(void **state)
{
    fixture *f = *state;
    pv_err e = {0};
    pv_cose_sign1 *m = NULL;
    cbor_item_t *root = NULL;
    pv_buf *one_root = pv_buf_new(PV_CAPABILITY_MAX_SIZE);
    pv_chain *roots = list_of(f->dev_root[0], NULL, NULL);
    assert_int_equal(pv_capability_create(f->cap_key, f->chain, DEVICE, PV_CAP_APP_DEVELOPMENT,
                                          roots, T0, T0 + 30 * DAY, one_root, &e),
                     PV_OK);
    /* The envelope: [1, bstr, [2 certificates]]. */
    const uint8_t *p = pv_buf_data(one_root);
    assert_int_equal(p[0], 0x83);
    assert_int_equal(p[1], 0x01);
    assert_int_equal(pv_cbor_decode(p, pv_buf_len(one_root), &root, &e), PV_OK);
    const uint8_t *cose;
    size_t cose_len;
    assert_int_equal(pv_cbor_get_bytes(cbor_array_handle(root)[1], &cose, &cose_len, &e), PV_OK);
    assert_int_equal(cbor_array_size(cbor_array_handle(root)[2]), 2);
    assert_int_equal(pv_cose_sign1_decode(cose, cose_len, PV_COSE_REQUIRE_TAG, &m, &e), PV_OK);
    assert_string_equal(pv_cose_sign1_content_type(m), PV_CAPABILITY_CONTENT_TYPE);
    const uint8_t *kid;
    size_t kid_len;
    pv_cose_sign1_kid(m, &kid, &kid_len);
    assert_int_equal(kid_len, PV_KEY_ID_LEN);
    const uint8_t *pl;
    size_t pl_len;
    pv_cose_sign1_payload(m, &pl, &pl_len);
    /* {1: 1, 2: DEVICE, 3: ["AppDevelopment"], 4: T0, 5: [root DER], 6: T0 + 30 days} */
    size_t hlen = 0;
    uint8_t *head = tu_unhex("a6 0101 02 7840", &hlen);
    assert_true(pl_len > hlen + 64);
    assert_memory_equal(pl, head, hlen);
    assert_memory_equal(pl + hlen, DEVICE, 64);
    free(head);
    size_t mlen = 0;
    uint8_t *mid = tu_unhex("03 81 6e 417070446576656c6f706d656e74 04 1a 6553f100 05 81 59", &mlen);
    assert_memory_equal(pl + hlen + 64, mid, mlen);
    free(mid);
    const uint8_t *der;
    size_t der_len;
    pv_cert_der(f->dev_root[0], &der, &der_len);
    size_t off = hlen + 64 + mlen;
    assert_int_equal((pl[off] << 8) | pl[off + 1], der_len);
    assert_memory_equal(pl + off + 2, der, der_len);
    off += 2 + der_len;
    size_t tlen = 0;
    uint8_t *tail = tu_unhex("06 1a 657b7e00", &tlen); /* T0 + 2592000 */
    assert_int_equal(pl_len, off + tlen);
    assert_memory_equal(pl + off, tail, tlen);
    free(tail);
    pv_cose_sign1_free(m);
    cbor_decref(&root);
    pv_chain_free(roots);
    pv_buf_free(one_root);
}

static void test_wrong_device(void **state)
{
    fixture *f = *state;
    pv_buf *b = make(f, 0);
    assert_int_equal(
        verify(f, b, OTHER, T0, "is for device " DEVICE ", not this device (" OTHER, NULL),
        PV_ERR_UNTRUSTED);
    /* An ID that is not one is the caller's mistake. */
    assert_int_equal(verify(f, b, "5F0E", T0, NULL, NULL), PV_ERR_INVALID_ARG);
    assert_int_equal(verify(f, b, NULL, T0, NULL, NULL), PV_ERR_INVALID_ARG);
    char upper[] = DEVICE;
    upper[0] = 'F';
    assert_int_equal(verify(f, b, upper, T0, NULL, NULL), PV_ERR_INVALID_ARG);
    pv_buf_free(b);
}

/* Every single-byte change is refused, and so is every prefix. */
static void test_tampered_and_truncated(void **state)
{
    fixture *f = *state;
    pv_buf *b = make(f, 0);
    size_t n = pv_buf_len(b);
    uint8_t *copy = malloc(n);
    assert_non_null(copy);
    pv_capability cap;
    size_t signature_failures = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(copy, pv_buf_data(b), n);
        copy[i] ^= 0x01;
        int r = pv_capability_verify(copy, n, f->trust, DEVICE, T0, &cap, NULL);
        if (r == PV_OK) {
            fail_msg("a change at byte %zu of %zu verified", i, n);
        }
        signature_failures += r == PV_ERR_SIGNATURE;
    }
    /* The payload's bytes are covered by the signature. */
    assert_true(signature_failures > 100);
    for (size_t len = 0; len < n; len++) {
        int r = pv_capability_verify(pv_buf_data(b), len, f->trust, DEVICE, T0, &cap, NULL);
        assert_true(r == PV_ERR_TRUNCATED || r == PV_ERR_FORMAT);
    }
    /* And bytes after it. */
    pv_buf *longer = pv_buf_new(n + 1);
    assert_int_equal(pv_buf_append(longer, pv_buf_data(b), n), PV_OK);
    assert_int_equal(pv_buf_append_u8(longer, 0x00), PV_OK);
    assert_int_equal(verify(f, longer, DEVICE, T0, NULL, NULL), PV_ERR_FORMAT);
    pv_buf_free(longer);
    free(copy);
    pv_buf_free(b);
}

static void test_oversized(void **state)
{
    fixture *f = *state;
    pv_buf *big = pv_buf_new(PV_CAPABILITY_MAX_SIZE + 1);
    uint8_t zero[1024] = {0};
    for (size_t i = 0; i <= PV_CAPABILITY_MAX_SIZE / sizeof(zero); i++) {
        assert_int_equal(
            pv_buf_append(big, zero, i < PV_CAPABILITY_MAX_SIZE / sizeof(zero) ? sizeof(zero) : 1),
            PV_OK);
    }
    assert_int_equal(pv_buf_len(big), PV_CAPABILITY_MAX_SIZE + 1);
    assert_int_equal(verify(f, big, DEVICE, T0, "at most 65536", NULL), PV_ERR_TOO_LARGE);
    pv_capability cap;
    assert_int_equal(pv_capability_decode(pv_buf_data(big), pv_buf_len(big), &cap, NULL, NULL),
                     PV_ERR_TOO_LARGE);
    pv_buf_free(big);

    /* Nine roots in a file (signed as such) are refused. */
    pv_chain *many = pv_chain_new();
    pv_key *keys[9];
    for (size_t i = 0; i < 8; i++) {
        char subject[32];
        snprintf(subject, sizeof(subject), "CN=Root %zu", i);
        keys[i] = newkey();
        pv_cert *c = mk_ca(subject, keys[i], NULL, NULL);
        assert_int_equal(pv_chain_add(many, c), PV_OK);
        pv_cert_free(c);
    }
    /* Eight is the most (a pv_chain holds no more, so the ninth entry is not a
     * certificate: the count is refused before any entry is read). */
    craft c = {.roots = many, .root_not_cert = true};
    pv_buf *b = craft_file(f, &c);
    assert_int_equal(verify(f, b, DEVICE, T0, "at most 8", NULL), PV_ERR_TOO_LARGE);
    pv_buf_free(b);
    c.root_not_cert = false;
    b = craft_file(f, &c);
    assert_int_equal(verify(f, b, DEVICE, T0, NULL, NULL), PV_OK);
    pv_buf_free(b);
    for (size_t i = 0; i < 8; i++) {
        pv_key_free(keys[i]);
    }
    pv_chain_free(many);

    /* A capabilities array longer than the limit. */
    craft d = {.repeat_caps = PV_CAPABILITY_MAX_NAMES + 1};
    b = craft_file(f, &d);
    assert_int_equal(verify(f, b, DEVICE, T0, "expected 1 to 16", NULL), PV_ERR_TOO_LARGE);
    pv_buf_free(b);
}

static void test_unknown_capability(void **state)
{
    fixture *f = *state;
    craft c = {.caps = {"AppDevelopment", "EnableRfTestMode", NULL}};
    pv_buf *b = craft_file(f, &c);
    assert_int_equal(
        verify(f, b, DEVICE, T0, "capability 'EnableRfTestMode' is not supported", NULL),
        PV_ERR_UNSUPPORTED);
    pv_buf_free(b);
    craft lower = {.caps = {"appdevelopment", NULL}};
    b = craft_file(f, &lower);
    assert_int_equal(verify(f, b, DEVICE, T0, "'appdevelopment'", NULL), PV_ERR_UNSUPPORTED);
    pv_buf_free(b);
    craft twice = {.caps = {"AppDevelopment", "AppDevelopment", NULL}};
    b = craft_file(f, &twice);
    assert_int_equal(verify(f, b, DEVICE, T0, "listed twice", NULL), PV_ERR_FORMAT);
    pv_buf_free(b);
    craft none = {.empty_caps = true};
    b = craft_file(f, &none);
    assert_int_equal(verify(f, b, DEVICE, T0, "expected 1 to 16", NULL), PV_ERR_FORMAT);
    pv_buf_free(b);
    craft text = {.caps_not_array = true};
    b = craft_file(f, &text);
    assert_int_equal(verify(f, b, DEVICE, T0, "expected an array", NULL), PV_ERR_FORMAT);
    pv_buf_free(b);
}

static void test_expired(void **state)
{
    fixture *f = *state;
    pv_buf *b = make(f, T0 + DAY);
    pv_capability cap;
    assert_int_equal(verify(f, b, DEVICE, T0 + DAY - 1, NULL, &cap), PV_OK);
    assert_int_equal(cap.expires_at, T0 + DAY);
    pv_capability_free(&cap);
    assert_int_equal(verify(f, b, DEVICE, T0 + DAY, "expired at 2023-11-15T22:13:20Z", NULL),
                     PV_ERR_EXPIRED);
    pv_buf_free(b);

    /* The signer's certificate expired (after a year), the file itself does not. */
    b = make(f, 0);
    assert_int_equal(verify(f, b, DEVICE, T0 + 2 * YEAR, "certificate has expired", NULL),
                     PV_ERR_EXPIRED);
    assert_int_equal(verify(f, b, DEVICE, T0 - 2 * YEAR, "not yet valid", NULL), PV_ERR_EXPIRED);
    pv_buf_free(b);

    /* An expiry not after the issue time is malformed. */
    craft c = {.issued = T0, .expires = T0};
    b = craft_file(f, &c);
    assert_int_equal(verify(f, b, DEVICE, T0 - 1, "not after the issue time", NULL), PV_ERR_FORMAT);
    pv_buf_free(b);
}

static void test_untrusted_signer(void **state)
{
    fixture *f = *state;
    pv_buf *b = make(f, 0);
    /* Another update root. */
    pv_key *k = newkey();
    pv_cert *other = mk_ca("CN=Update Root,O=Pavise Test", k, NULL, NULL);
    pv_trust *t = trust_of(other);
    pv_capability cap;
    pv_err e = {0};
    assert_int_equal(pv_capability_verify(pv_buf_data(b), pv_buf_len(b), t, DEVICE, T0, &cap, &e),
                     PV_ERR_UNTRUSTED);
    assert_non_null(strstr(pv_err_msg(&e), "capability signer chain"));
    pv_trust_free(t);
    /* A signer that chains to nothing: the same key in a self-signed certificate. */
    pv_cert_params p = {.subject = "CN=Capability Signer,O=Pavise Test",
                        .not_before = T0 - YEAR,
                        .not_after = T0 + YEAR,
                        .path_len = -1,
                        .capability_signing = true};
    pv_cert *self = mk(&p, f->cap_key, NULL, NULL);
    pv_chain *self_chain = list_of(self, NULL, NULL);
    craft c = {.chain = self_chain};
    pv_buf *b2 = craft_file(f, &c);
    assert_int_equal(verify(f, b2, DEVICE, T0, "capability signer chain", NULL), PV_ERR_UNTRUSTED);
    pv_buf_free(b2);
    /* A certificate that is not on the path. */
    pv_chain *extra = list_of(f->cap_leaf, f->inter, other);
    craft x = {.chain = extra};
    b2 = craft_file(f, &x);
    assert_int_equal(verify(f, b2, DEVICE, T0, "not on the verified path", NULL), PV_ERR_UNTRUSTED);
    pv_buf_free(b2);
    pv_chain_free(extra);
    /* Signed by another key than the leaf's (the kid names the leaf's key). */
    craft wrong_key = {.key = f->code_key};
    b2 = craft_file(f, &wrong_key);
    assert_int_equal(verify(f, b2, DEVICE, T0, "kid", NULL), PV_ERR_FORMAT);
    pv_buf_free(b2);

    pv_chain_free(self_chain);
    pv_cert_free(self);
    pv_cert_free(other);
    pv_key_free(k);
    pv_buf_free(b);
}

/* A code-signing leaf under the update root cannot make a capability file, and a
 * capability signer's chain carries no code signing (x509_test checks that side). */
static void test_wrong_usage(void **state)
{
    fixture *f = *state;
    craft c = {.key = f->code_key, .chain = f->code_chain};
    pv_buf *b = craft_file(f, &c);
    assert_int_equal(verify(f, b, DEVICE, T0, "Pavise capability signing", NULL), PV_ERR_UNTRUSTED);
    pv_buf_free(b);
    /* Nor will create make one. */
    pv_err e = {0};
    pv_buf *out = pv_buf_new(PV_CAPABILITY_MAX_SIZE);
    assert_int_equal(pv_capability_create(f->code_key, f->code_chain, DEVICE,
                                          PV_CAP_APP_DEVELOPMENT, f->roots, T0, 0, out, &e),
                     PV_ERR_INVALID_ARG);
    assert_non_null(strstr(pv_err_msg(&e), "capability signing"));
    assert_int_equal(pv_buf_len(out), 0);
    /* A leaf without any extended key usage (good for code) is no capability signer. */
    pv_key *k = newkey();
    pv_cert *plain = mk_leaf("CN=Plain", k, false, false, f->inter, f->int_key);
    pv_chain *plain_chain = list_of(plain, f->inter, NULL);
    craft p = {.key = k, .chain = plain_chain};
    b = craft_file(f, &p);
    assert_int_equal(verify(f, b, DEVICE, T0, "Pavise capability signing", NULL), PV_ERR_UNTRUSTED);
    pv_buf_free(b);
    pv_chain_free(plain_chain);
    pv_cert_free(plain);
    pv_key_free(k);
    /* The intermediate CA's own key, with the intermediate as the "leaf". */
    pv_chain *ca_chain = list_of(f->inter, NULL, NULL);
    craft ca = {.key = f->int_key, .chain = ca_chain};
    b = craft_file(f, &ca);
    assert_int_equal(verify(f, b, DEVICE, T0, "is a CA", NULL), PV_ERR_UNTRUSTED);
    pv_buf_free(b);
    pv_chain_free(ca_chain);
    pv_buf_free(out);
}

static void test_malformed_fields(void **state)
{
    fixture *f = *state;
    pv_chain *not_ca = list_of(f->cap_leaf, NULL, NULL);
    pv_chain *dup = list_of(f->dev_root[0], f->dev_root[1], f->dev_root[0]);
    struct {
        craft c;
        int code;
        const char *expect;
    } cases[] = {
        {{.envelope_version = 2}, PV_ERR_UNSUPPORTED, "format version 2"},
        {{.content_type = "application/vnd.pavise.mfgrec+cbor; v=1"},
         PV_ERR_FORMAT,
         "content type"},
        {{.short_kid = true}, PV_ERR_FORMAT, "kid is 16 bytes"},
        {{.version = 2}, PV_ERR_UNSUPPORTED, "version 2"},
        {{.device_id = "5F0E3A1B9C8D7E6F5A4B3C2D1E0F9A8B7C6D5E4F3A2B1C0D9E8F7A6B5C4D3E2F"},
         PV_ERR_FORMAT,
         "lowercase hex"},
        {{.device_id = "5f0e"}, PV_ERR_FORMAT, "lowercase hex"},
        {{.device_id = DEVICE "00"}, PV_ERR_FORMAT, "device ID"},
        {{.extra_key = true}, PV_ERR_FORMAT, "7"},
        {{.no_issued = true}, PV_ERR_FORMAT, "issue time"},
        {{.no_roots = true}, PV_ERR_FORMAT, "without a development root"},
        {{.roots = not_ca}, PV_ERR_FORMAT, "not a CA"},
        {{.roots = dup}, PV_ERR_FORMAT, "listed twice"},
        {{.root_not_cert = true}, PV_ERR_FORMAT, "development root 3"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pv_buf *b = craft_file(f, &cases[i].c);
        print_message("case %zu\n", i);
        assert_int_equal(verify(f, b, DEVICE, T0, cases[i].expect, NULL), cases[i].code);
        /* Decoding for display refuses the same. */
        pv_capability cap;
        pv_chain *chain = (pv_chain *)(uintptr_t)1;
        assert_int_equal(pv_capability_decode(pv_buf_data(b), pv_buf_len(b), &cap, &chain, NULL),
                         cases[i].code);
        assert_null(chain);
        assert_null(cap.dev_roots);
        pv_buf_free(b);
    }
    /* The crafting itself is sound: with nothing changed, the file verifies. */
    craft ok = {0};
    pv_buf *b = craft_file(f, &ok);
    assert_int_equal(verify(f, b, DEVICE, T0, NULL, NULL), PV_OK);
    pv_buf_free(b);
    pv_chain_free(dup);
    pv_chain_free(not_ca);
}

/* Decoding is for display: it reads a file whose signature or device does not matter. */
static void test_decode(void **state)
{
    fixture *f = *state;
    pv_buf *b = make(f, T0 + DAY);
    pv_capability cap;
    pv_chain *chain = NULL;
    pv_err e = {0};
    /* Break the signature: the COSE message is the byte string right after
     * "83 01 59 hi lo", and its last byte is the signature's. */
    uint8_t *p = pv_buf_mutable_data(b);
    size_t cose_off = 5;
    assert_int_equal(p[2], 0x59);
    size_t cose_len = ((size_t)p[3] << 8) | p[4];
    p[cose_off + cose_len - 1] ^= 0x01;
    assert_int_equal(verify(f, b, DEVICE, T0, "does not verify", NULL), PV_ERR_SIGNATURE);
    assert_int_equal(pv_capability_decode(p, pv_buf_len(b), &cap, &chain, &e), PV_OK);
    assert_string_equal(cap.device_id, DEVICE);
    assert_int_equal(cap.caps, PV_CAP_APP_DEVELOPMENT);
    assert_int_equal(cap.expires_at, T0 + DAY);
    assert_int_equal(pv_chain_count(chain), 2);
    assert_int_equal(pv_chain_count(cap.dev_root_list), 2);
    pv_chain_free(chain);
    pv_capability_free(&cap);
    /* Without asking for the chain. */
    assert_int_equal(pv_capability_decode(p, pv_buf_len(b), &cap, NULL, &e), PV_OK);
    pv_capability_free(&cap);
    assert_int_equal(pv_capability_decode(p, pv_buf_len(b), NULL, NULL, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_capability_decode(NULL, 0, &cap, NULL, &e), PV_ERR_TRUNCATED);
    pv_buf_free(b);
}

static void test_create_refusals(void **state)
{
    fixture *f = *state;
    pv_err e = {0};
    pv_buf *out = pv_buf_new(PV_CAPABILITY_MAX_SIZE);
    pv_key *pub = NULL;
    assert_int_equal(pv_cert_public_key(f->cap_leaf, &pub, &e), PV_OK);
    pv_chain *not_ca = list_of(f->cap_leaf, NULL, NULL);
    pv_chain *dup = list_of(f->dev_root[0], f->dev_root[0], NULL);
    struct {
        const pv_key *key;
        const pv_chain *chain;
        const char *device;
        uint32_t caps;
        const pv_chain *roots;
        int64_t issued, expires;
        const char *expect;
    } cases[] = {
        {NULL, f->chain, DEVICE, PV_CAP_APP_DEVELOPMENT, f->roots, T0, 0, "private key"},
        {pub, f->chain, DEVICE, PV_CAP_APP_DEVELOPMENT, f->roots, T0, 0, "private key"},
        {f->int_key, f->chain, DEVICE, PV_CAP_APP_DEVELOPMENT, f->roots, T0, 0,
         "does not hold the signer key"},
        {f->cap_key, NULL, DEVICE, PV_CAP_APP_DEVELOPMENT, f->roots, T0, 0, "1 to 8"},
        {f->cap_key, f->chain, "ABC", PV_CAP_APP_DEVELOPMENT, f->roots, T0, 0, "device ID"},
        {f->cap_key, f->chain, NULL, PV_CAP_APP_DEVELOPMENT, f->roots, T0, 0, "device ID"},
        {f->cap_key, f->chain, DEVICE, 0, f->roots, T0, 0, "none"},
        {f->cap_key, f->chain, DEVICE, 0x2, f->roots, T0, 0, "unknown"},
        {f->cap_key, f->chain, DEVICE, PV_CAP_APP_DEVELOPMENT, f->roots, -1, 0, "negative"},
        {f->cap_key, f->chain, DEVICE, PV_CAP_APP_DEVELOPMENT, f->roots, T0, T0, "not after"},
        {f->cap_key, f->chain, DEVICE, PV_CAP_APP_DEVELOPMENT, NULL, T0, 0,
         "at least one development root"},
        {f->cap_key, f->chain, DEVICE, PV_CAP_APP_DEVELOPMENT, not_ca, T0, 0, "not a CA"},
        {f->cap_key, f->chain, DEVICE, PV_CAP_APP_DEVELOPMENT, dup, T0, 0, "listed twice"},
        /* The signer's certificate is not valid at the issue time. */
        {f->cap_key, f->chain, DEVICE, PV_CAP_APP_DEVELOPMENT, f->roots, T0 + 2 * YEAR, 0,
         "expired"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pv_err_clear(&e);
        print_message("case %zu\n", i);
        assert_int_equal(pv_capability_create(cases[i].key, cases[i].chain, cases[i].device,
                                              cases[i].caps, cases[i].roots, cases[i].issued,
                                              cases[i].expires, out, &e),
                         PV_ERR_INVALID_ARG);
        if (strstr(pv_err_msg(&e), cases[i].expect) == NULL) {
            fail_msg("case %zu: '%s' does not mention '%s'", i, pv_err_msg(&e), cases[i].expect);
        }
        assert_int_equal(pv_buf_len(out), 0);
    }
    assert_int_equal(pv_capability_create(f->cap_key, f->chain, DEVICE, PV_CAP_APP_DEVELOPMENT,
                                          f->roots, T0, 0, NULL, &e),
                     PV_ERR_INVALID_ARG);
    /* An output too small for the file. */
    pv_buf *tiny = pv_buf_new(64);
    assert_int_equal(pv_capability_create(f->cap_key, f->chain, DEVICE, PV_CAP_APP_DEVELOPMENT,
                                          f->roots, T0, 0, tiny, &e),
                     PV_ERR_TOO_LARGE);
    assert_int_equal(pv_buf_len(tiny), 0);
    pv_buf_free(tiny);
    pv_chain_free(dup);
    pv_chain_free(not_ca);
    pv_key_free(pub);
    pv_buf_free(out);
}

static void test_verify_args(void **state)
{
    fixture *f = *state;
    pv_buf *b = make(f, 0);
    pv_capability cap;
    pv_trust *empty = pv_trust_new();
    assert_int_equal(
        pv_capability_verify(pv_buf_data(b), pv_buf_len(b), NULL, DEVICE, T0, &cap, NULL),
        PV_ERR_INVALID_ARG);
    assert_int_equal(
        pv_capability_verify(pv_buf_data(b), pv_buf_len(b), empty, DEVICE, T0, &cap, NULL),
        PV_ERR_INVALID_ARG);
    assert_int_equal(
        pv_capability_verify(pv_buf_data(b), pv_buf_len(b), f->trust, DEVICE, T0, NULL, NULL),
        PV_ERR_INVALID_ARG);
    assert_int_equal(pv_capability_verify(NULL, 0, f->trust, DEVICE, T0, &cap, NULL),
                     PV_ERR_TRUNCATED);
    pv_trust_free(empty);
    pv_buf_free(b);
}

/* With PV_CAPABILITY_CORPUS_OUT=dir set, writes the seeds of tests/fuzz/corpus/capability. */
static void test_write_corpus(void **state)
{
    fixture *f = *state;
    const char *dir = getenv("PV_CAPABILITY_CORPUS_OUT");
    if (dir == NULL || dir[0] == '\0') {
        skip();
    }
    struct {
        const char *name;
        craft c;
    } seeds[] = {
        {"good", {0}},
        {"expires", {.expires = T0 + 30 * DAY}},
        {"unknown-capability", {.caps = {"AppDevelopment", "EnableRfTestMode", NULL}}},
        {"envelope-v2", {.envelope_version = 2}},
        {"no-roots", {.no_roots = true}},
        {"unknown-key", {.extra_key = true}},
        {"code-signer", {.key = f->code_key, .chain = f->code_chain}},
    };
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        pv_buf *b = craft_file(f, &seeds[i].c);
        char *path = tu_path(dir, seeds[i].name);
        tu_write(path, pv_buf_data(b), pv_buf_len(b), 0644);
        free(path);
        if (i == 0) {
            path = tu_path(dir, "truncated");
            tu_write(path, pv_buf_data(b), pv_buf_len(b) / 2, 0644);
            free(path);
        }
        pv_buf_free(b);
    }
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_names),
        T(test_round_trip),
        T(test_payload_bytes),
        T(test_wrong_device),
        T(test_tampered_and_truncated),
        T(test_oversized),
        T(test_unknown_capability),
        T(test_expired),
        T(test_untrusted_signer),
        T(test_wrong_usage),
        T(test_malformed_fields),
        T(test_decode),
        T(test_create_refusals),
        T(test_verify_args),
        T(test_write_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
