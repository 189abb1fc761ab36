/* SPDX-License-Identifier: Apache-2.0 */
#include "testutil.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/cbor.h"
#include "pavise/cose.h"
#include "pavise/crypto.h"

/* The P-256 key "11" of the COSE Working Group examples (github.com/cose-wg/Examples),
 * used by the RFC 9052 appendix examples. */
static const char key11_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                                "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgV8kgd2ZBRuh2dgyV\n"
                                "INBUqpPDr7BOMGcF22CQMIUHtNOhRANCAAS6xbEcrY+Z+ccrBc9LnibSRNwYn3RS\n"
                                "KCVaIZqG1qCe/yATi/gtwbbVYr4PpUq3gEo6ZLbXLM/ta2+27Si7/BF+\n"
                                "-----END PRIVATE KEY-----\n";
static const char key11_spki_hex[] = "3059301306072a8648ce3d020106082a8648ce3d03010703420004"
                                     "bac5b11cad8f99f9c72b05cf4b9e26d244dc189f745228255a219a"
                                     "86d6a09eff20138bf82dc1b6d562be0fa54ab7804a3a64b6d72ccf"
                                     "ed6b6fb6ed28bbfc117e";

struct fixture {
    pv_key *key;   /* a fresh key */
    pv_key *other; /* another fresh key */
    pv_key *key11; /* key "11" with its private part */
    pv_key *pub11; /* key "11", public part only */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    pv_err e;
    assert_non_null(f);
    assert_int_equal(pv_key_generate(&f->key, &e), PV_OK);
    assert_int_equal(pv_key_generate(&f->other, &e), PV_OK);

    char *dir = tu_mkdtemp("cose");
    char *path = tu_path(dir, "key11.pem");
    tu_write(path, key11_pem, strlen(key11_pem), 0600);
    assert_int_equal(pv_key_load_private_pem(path, &f->key11, &e), PV_OK);
    free(path);
    tu_rmtree(dir);
    free(dir);

    size_t n;
    uint8_t *der = tu_unhex(key11_spki_hex, &n);
    assert_int_equal(pv_key_from_spki_der(der, n, &f->pub11, &e), PV_OK);
    free(der);
    assert_true(pv_key_equal_public(f->key11, f->pub11));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    pv_key_free(f->key);
    pv_key_free(f->other);
    pv_key_free(f->key11);
    pv_key_free(f->pub11);
    free(f);
    return 0;
}

static pv_buf *create(const pv_key *key, const char *kid, const char *ct, const char *payload,
                      const char *aad, unsigned flags)
{
    pv_buf *out = pv_buf_new(PV_COSE_MAX_MESSAGE);
    pv_err e;
    assert_non_null(out);
    int r = pv_cose_sign1_create(key, (const uint8_t *)kid, kid ? strlen(kid) : 0, ct,
                                 (const uint8_t *)payload, payload ? strlen(payload) : 0,
                                 (const uint8_t *)aad, aad ? strlen(aad) : 0, flags, out, &e);
    if (r != PV_OK) {
        fail_msg("create: %s", pv_err_msg(&e));
    }
    return out;
}

/* Decodes and verifies; returns the first failure (or PV_OK). */
static int decode_verify(const uint8_t *msg, size_t len, unsigned flags, const pv_key *key,
                         const char *detached, const char *aad, pv_err *e)
{
    pv_cose_sign1 *m = NULL;
    int r = pv_cose_sign1_decode(msg, len, flags, &m, e);
    if (r != PV_OK) {
        assert_null(m);
        return r;
    }
    r = pv_cose_sign1_verify(m, key, (const uint8_t *)detached, detached ? strlen(detached) : 0,
                             (const uint8_t *)aad, aad ? strlen(aad) : 0, e);
    pv_cose_sign1_free(m);
    return r;
}

/* A hand-built COSE_Sign1: the fields are written with the CBOR encoder and the
 * signature is made over a hand-built Sig_structure, so one aspect at a time can be
 * made wrong while the rest stays valid. */
struct spec {
    uint64_t tag;               /* 0: untagged */
    const char *prot;           /* protected header bytes, hex */
    bool unprot_kid;            /* unprotected header {4: h'3131'} instead of {} */
    const char *payload;        /* NULL: nil */
    const char *signed_payload; /* what the signature covers when payload is NULL */
    const char *aad;
    size_t sig_len; /* 0: 64 */
};

static void sig_structure(const uint8_t *prot, size_t prot_len, const char *aad,
                          const uint8_t *payload, size_t payload_len, pv_buf *out)
{
    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, out);
    pv_cbor_put_array(&enc, 4);
    pv_cbor_put_text(&enc, "Signature1");
    pv_cbor_put_bytes(&enc, prot, prot_len);
    pv_cbor_put_bytes(&enc, aad, aad ? strlen(aad) : 0);
    pv_cbor_put_bytes(&enc, payload, payload_len);
    assert_int_equal(pv_cbor_enc_result(&enc), PV_OK);
}

static pv_buf *hand_build(const pv_key *key, const struct spec *s)
{
    size_t prot_len;
    uint8_t *prot = tu_unhex(s->prot, &prot_len);
    const char *signed_payload = s->payload ? s->payload : s->signed_payload;
    uint8_t sig[PV_ES256_SIG_LEN + 1];
    pv_err e;

    pv_buf *tbs = pv_buf_new(1 << 16);
    sig_structure(prot, prot_len, s->aad, (const uint8_t *)signed_payload,
                  signed_payload ? strlen(signed_payload) : 0, tbs);
    assert_int_equal(pv_key_sign_es256(key, pv_buf_data(tbs), pv_buf_len(tbs), sig, &e), PV_OK);
    sig[PV_ES256_SIG_LEN] = 0x00;
    pv_buf_free(tbs);

    pv_buf *out = pv_buf_new(1 << 16);
    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, out);
    if (s->tag != 0) {
        pv_cbor_put_tag(&enc, s->tag);
    }
    pv_cbor_put_array(&enc, 4);
    pv_cbor_put_bytes(&enc, prot, prot_len);
    if (s->unprot_kid) {
        pv_cbor_put_map(&enc, 1);
        pv_cbor_put_uint(&enc, 4);
        pv_cbor_put_bytes(&enc, "11", 2);
    } else {
        pv_cbor_put_map(&enc, 0);
    }
    if (s->payload != NULL) {
        pv_cbor_put_bytes(&enc, s->payload, strlen(s->payload));
    } else {
        pv_cbor_put_null(&enc);
    }
    pv_cbor_put_bytes(&enc, sig, s->sig_len ? s->sig_len : PV_ES256_SIG_LEN);
    assert_int_equal(pv_cbor_enc_result(&enc), PV_OK);
    free(prot);
    return out;
}

/* Decodes a hand-built message and checks the code and a part of the message. */
static void expect_refused(const pv_key *key, const struct spec *s, unsigned flags, int code,
                           const char *msg)
{
    pv_buf *b = hand_build(key, s);
    pv_err e;
    pv_err_clear(&e);
    int r = decode_verify(pv_buf_data(b), pv_buf_len(b), flags, key, NULL, s->aad, &e);
    if (r != code || strstr(pv_err_msg(&e), msg) == NULL) {
        fail_msg("prot %s: got %d '%s', want %d '%s'", s->prot, r, pv_err_msg(&e), code, msg);
    }
    pv_buf_free(b);
}

/* ---- round trips ---- */

static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    static const char *const kids[] = {NULL, "device-key-1"};
    static const char *const cts[] = {NULL, "application/vnd.pavise.manifest+cbor"};
    static const char *const aads[] = {NULL, "pavise image v1"};
    const char *payload = "the payload \x01\x02";

    for (int mask = 0; mask < 16; mask++) {
        const char *kid = kids[mask & 1];
        const char *ct = cts[(mask >> 1) & 1];
        const char *aad = aads[(mask >> 2) & 1];
        bool detached = (mask & 8) != 0;
        pv_buf *b = create(f->key, kid, ct, payload, aad, detached ? PV_COSE_DETACHED : 0);
        const uint8_t *msg = pv_buf_data(b);
        size_t len = pv_buf_len(b);
        pv_cose_sign1 *m = NULL;
        pv_err e;

        assert_int_equal(msg[0], 0xd2);
        assert_int_equal(pv_cose_sign1_decode(msg, len, PV_COSE_REQUIRE_TAG, &m, &e), PV_OK);
        assert_int_equal(pv_cose_sign1_alg(m), PV_COSE_ALG_ES256);
        const uint8_t *p;
        size_t n;
        pv_cose_sign1_kid(m, &p, &n);
        if (kid != NULL) {
            assert_int_equal(n, strlen(kid));
            assert_memory_equal(p, kid, n);
        } else {
            assert_null(p);
            assert_int_equal(n, 0);
        }
        if (ct != NULL) {
            assert_string_equal(pv_cose_sign1_content_type(m), ct);
        } else {
            assert_null(pv_cose_sign1_content_type(m));
        }
        assert_int_equal(pv_cose_sign1_is_detached(m), detached);
        pv_cose_sign1_payload(m, &p, &n);
        if (detached) {
            assert_null(p);
            assert_int_equal(n, 0);
        } else {
            assert_int_equal(n, strlen(payload));
            assert_memory_equal(p, payload, n);
        }
        const uint8_t *dp = detached ? (const uint8_t *)payload : NULL;
        size_t dn = detached ? strlen(payload) : 0;
        const uint8_t *ap = (const uint8_t *)aad;
        size_t an = aad ? strlen(aad) : 0;
        assert_int_equal(pv_cose_sign1_verify(m, f->key, dp, dn, ap, an, &e), PV_OK);
        /* Wrong key, wrong or missing external data. */
        assert_int_equal(pv_cose_sign1_verify(m, f->other, dp, dn, ap, an, &e), PV_ERR_SIGNATURE);
        assert_non_null(strstr(e.msg, "COSE_Sign1"));
        assert_int_equal(pv_cose_sign1_verify(m, f->key, dp, dn, (const uint8_t *)"other", 5, &e),
                         PV_ERR_SIGNATURE);
        if (aad != NULL) {
            assert_int_equal(pv_cose_sign1_verify(m, f->key, dp, dn, NULL, 0, &e),
                             PV_ERR_SIGNATURE);
        }
        if (detached) {
            assert_int_equal(pv_cose_sign1_verify(m, f->key, NULL, 0, ap, an, &e),
                             PV_ERR_INVALID_ARG);
            assert_non_null(strstr(e.msg, "detached"));
            assert_int_equal(
                pv_cose_sign1_verify(m, f->key, (const uint8_t *)"the payload", 11, ap, an, &e),
                PV_ERR_SIGNATURE);
        } else {
            assert_int_equal(
                pv_cose_sign1_verify(m, f->key, (const uint8_t *)payload, 3, ap, an, &e),
                PV_ERR_INVALID_ARG);
        }
        pv_cose_sign1_free(m);

        /* Untagged: accepted unless the tag is required. */
        assert_int_equal(
            decode_verify(msg + 1, len - 1, 0, f->key, detached ? payload : NULL, aad, &e), PV_OK);
        assert_int_equal(pv_cose_sign1_decode(msg + 1, len - 1, PV_COSE_REQUIRE_TAG, &m, &e),
                         PV_ERR_FORMAT);
        assert_string_equal(e.msg, "COSE_Sign1: tag 18 is required but missing");
        pv_buf_free(b);
    }
}

static void test_empty_payload_and_aad(void **state)
{
    struct fixture *f = *state;
    pv_buf *b = pv_buf_new(1024);
    pv_cose_sign1 *m = NULL;
    pv_err e;
    assert_int_equal(pv_cose_sign1_create(f->key, NULL, 0, NULL, NULL, 0, NULL, 0, 0, b, &e),
                     PV_OK);
    assert_int_equal(pv_cose_sign1_decode(pv_buf_data(b), pv_buf_len(b), 0, &m, &e), PV_OK);
    const uint8_t *p;
    size_t n;
    pv_cose_sign1_payload(m, &p, &n);
    assert_non_null(p); /* attached, empty */
    assert_int_equal(n, 0);
    assert_false(pv_cose_sign1_is_detached(m));
    assert_int_equal(pv_cose_sign1_verify(m, f->key, NULL, 0, NULL, 0, &e), PV_OK);
    pv_cose_sign1_free(m);

    /* Detached, empty: the caller passes a non-NULL pointer of length 0. */
    pv_buf_reset(b);
    assert_int_equal(
        pv_cose_sign1_create(f->key, NULL, 0, "", NULL, 0, NULL, 0, PV_COSE_DETACHED, b, &e),
        PV_OK);
    assert_int_equal(pv_cose_sign1_decode(pv_buf_data(b), pv_buf_len(b), 0, &m, &e), PV_OK);
    assert_string_equal(pv_cose_sign1_content_type(m), "");
    assert_int_equal(pv_cose_sign1_verify(m, f->key, (const uint8_t *)"", 0, NULL, 0, &e), PV_OK);
    assert_int_equal(pv_cose_sign1_verify(m, f->key, NULL, 0, NULL, 0, &e), PV_ERR_INVALID_ARG);
    pv_cose_sign1_free(m);
    pv_buf_free(b);
}

/* ---- tampering ---- */

static void test_tampered_fields(void **state)
{
    struct fixture *f = *state;
    pv_buf *b = create(f->key, "kid", "text/plain", "hello, world", "aad", 0);
    uint8_t *msg = pv_buf_mutable_data(b);
    size_t len = pv_buf_len(b);
    pv_err e;
    /* d2 84 | 54 protected (20 bytes) | a0 | 4c payload (12 bytes) | 58 40 signature */
    size_t prot_off = 3, payload_off = 3 + 20 + 2, sig_off = len - 64;
    assert_int_equal(msg[2], 0x54);
    assert_int_equal(msg[payload_off - 1], 0x4c);

    assert_int_equal(decode_verify(msg, len, 0, f->key, NULL, "aad", &e), PV_OK);
    /* Flips that keep the structure: alg stays, the kid and content type change, payload
     * and signature bytes change. Each decodes and must fail verification. */
    const size_t offs[] = {prot_off + 19, prot_off + 8, payload_off, payload_off + 11,
                           sig_off,       sig_off + 40, len - 1};
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        msg[offs[i]] ^= 0x01;
        int r = decode_verify(msg, len, 0, f->key, NULL, "aad", &e);
        if (r != PV_ERR_SIGNATURE) {
            fail_msg("flip at %zu: %d %s", offs[i], r, pv_err_msg(&e));
        }
        msg[offs[i]] ^= 0x01;
    }
    assert_int_equal(decode_verify(msg, len, 0, f->key, NULL, "aad", &e), PV_OK);
    pv_buf_free(b);
}

static void test_every_byte_flip(void **state)
{
    struct fixture *f = *state;
    static const uint8_t masks[] = {0x01, 0x02, 0x10, 0x20, 0x40, 0x80, 0xff};
    for (int detached = 0; detached < 2; detached++) {
        pv_buf *b = create(f->key, "k", "application/cbor", "payload!", "aad",
                           detached ? PV_COSE_DETACHED : 0);
        uint8_t *msg = pv_buf_mutable_data(b);
        size_t len = pv_buf_len(b);
        pv_err e;
        for (size_t i = 0; i < len; i++) {
            for (size_t k = 0; k < sizeof(masks); k++) {
                msg[i] ^= masks[k];
                for (unsigned flags = 0; flags <= PV_COSE_REQUIRE_TAG;
                     flags += PV_COSE_REQUIRE_TAG) {
                    int r = decode_verify(msg, len, flags, f->key, detached ? "payload!" : NULL,
                                          "aad", &e);
                    /* A detached message whose nil was turned into something else is
                     * refused at decode or with INVALID_ARG at verify; never PV_OK. */
                    if (r == PV_OK) {
                        fail_msg("flip 0x%02x at %zu accepted", masks[k], i);
                    }
                }
                msg[i] ^= masks[k];
            }
        }
        assert_int_equal(decode_verify(msg, len, PV_COSE_REQUIRE_TAG, f->key,
                                       detached ? "payload!" : NULL, "aad", &e),
                         PV_OK);
        pv_buf_free(b);
    }
}

static void test_truncation(void **state)
{
    struct fixture *f = *state;
    pv_buf *b = create(f->key, "k", "ct", "payload", NULL, 0);
    pv_err e;
    for (size_t cut = 0; cut < pv_buf_len(b); cut++) {
        pv_cose_sign1 *m = NULL;
        int r = pv_cose_sign1_decode(pv_buf_data(b), cut, 0, &m, &e);
        if (r == PV_OK) {
            fail_msg("prefix of %zu bytes accepted", cut);
        }
        assert_null(m);
    }
    /* And one byte too many. */
    assert_int_equal(pv_buf_append_u8(b, 0), PV_OK);
    pv_cose_sign1 *m = NULL;
    assert_int_equal(pv_cose_sign1_decode(pv_buf_data(b), pv_buf_len(b), 0, &m, &e), PV_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "trailing"));
    pv_buf_free(b);
}

/* ---- structure and headers ---- */

static void test_tags(void **state)
{
    struct fixture *f = *state;
    struct spec s = {.tag = 18, .prot = "a10126", .payload = "x"};
    pv_err e;

    pv_buf *b = hand_build(f->key, &s);
    assert_int_equal(
        decode_verify(pv_buf_data(b), pv_buf_len(b), PV_COSE_REQUIRE_TAG, f->key, NULL, NULL, &e),
        PV_OK);
    pv_buf_free(b);

    s.tag = 17; /* COSE_Mac0 */
    expect_refused(f->key, &s, 0, PV_ERR_FORMAT, "tag 17 is not the COSE_Sign1 tag (18)");
    s.tag = 98; /* COSE_Sign */
    expect_refused(f->key, &s, PV_COSE_REQUIRE_TAG, PV_ERR_FORMAT, "tag 98");
    s.tag = 0;
    expect_refused(f->key, &s, PV_COSE_REQUIRE_TAG, PV_ERR_FORMAT, "tag 18 is required");

    /* 18(18([...])) and 55799(18([...])) are refused. */
    size_t n;
    uint8_t *p = tu_unhex("d2d2 84 43a10126 a0 4178 5840"
                          "0000000000000000000000000000000000000000000000000000000000000000"
                          "0000000000000000000000000000000000000000000000000000000000000000",
                          &n);
    pv_cose_sign1 *m = NULL;
    assert_int_equal(pv_cose_sign1_decode(p, n, 0, &m, &e), PV_ERR_FORMAT);
    assert_string_equal(e.msg, "COSE_Sign1: expected an array, found a tag");
    free(p);
    p = tu_unhex("d9d9f7 84 43a10126 a0 4178 5840"
                 "0000000000000000000000000000000000000000000000000000000000000000"
                 "0000000000000000000000000000000000000000000000000000000000000000",
                 &n);
    assert_int_equal(pv_cose_sign1_decode(p, n, 0, &m, &e), PV_ERR_FORMAT);
    assert_string_equal(e.msg, "COSE_Sign1: tag 55799 is not the COSE_Sign1 tag (18)");
    free(p);
    p = tu_unhex("d2d2 84 43a10126 a0 4178 5840"
                 "0000000000000000000000000000000000000000000000000000000000000000"
                 "0000000000000000000000000000000000000000000000000000000000000000",
                 &n);
    /* A non-shortest tag head (d8 12) is still tag 18. */
    p[0] = 0xd8;
    p[1] = 0x12;
    assert_int_equal(pv_cose_sign1_decode(p, n, PV_COSE_REQUIRE_TAG, &m, &e), PV_OK);
    pv_cose_sign1_free(m);
    free(p);
}

static void test_outer_shape(void **state)
{
    (void)state;
    static const struct {
        const char *hex;
        int code;
        const char *msg;
    } cases[] = {
        {"", PV_ERR_TRUNCATED, "empty"},
        {"a0", PV_ERR_FORMAT, "expected an array, found a map"},
        {"83 43a10126 a0 40", PV_ERR_FORMAT, "expected an array of 4 elements, found 3"},
        {"85 43a10126 a0 40 40 40", PV_ERR_FORMAT, "array of 4 elements, found 5"},
        {"84 a10126 a0 40 40", PV_ERR_FORMAT,
         "protected header: expected a byte string, found a map"},
        {"84 63a10126 a0 40 40", PV_ERR_FORMAT, "expected a byte string, found a text string"},
        {"84 43a10126 80 40 40", PV_ERR_FORMAT,
         "unprotected header: expected a map, found an array"},
        {"84 43a10126 f6 40 40", PV_ERR_FORMAT, "unprotected header: expected a map, found nil"},
        {"84 43a10126 a0 6178 40", PV_ERR_FORMAT,
         "payload: expected a byte string or nil, found a text string"},
        {"84 43a10126 a0 f4 40", PV_ERR_FORMAT, "payload: expected a byte string or nil"},
        {"84 43a10126 a0 40 f6", PV_ERR_FORMAT, "signature: expected a byte string, found nil"},
        {"84 43a10126 a0 40 40", PV_ERR_FORMAT,
         "signature: expected 64 bytes (ES256 r || s), found 0"},
        {"84 43a10126 a0 40 5f ff", PV_ERR_FORMAT, "indefinite-length byte string"},
        {"9f 43a10126 a0 40 40 ff", PV_ERR_FORMAT, "indefinite-length array"},
        {"84 43a10126 a0 40 fb 0000000000000000", PV_ERR_FORMAT, "floating-point"},
        {"84 43a10126 a1 01 26 40 40", PV_ERR_UNSUPPORTED,
         "unprotected header must be empty (it has 1 entry)"},
    };
    pv_err e;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n;
        uint8_t *p = tu_unhex(cases[i].hex, &n);
        pv_cose_sign1 *m = NULL;
        pv_err_clear(&e);
        int r = pv_cose_sign1_decode(p, n, 0, &m, &e);
        if (r != cases[i].code || strstr(pv_err_msg(&e), cases[i].msg) == NULL) {
            fail_msg("'%s': got %d '%s', want %d '%s'", cases[i].hex, r, pv_err_msg(&e),
                     cases[i].code, cases[i].msg);
        }
        assert_null(m);
        free(p);
    }
}

static void test_protected_header(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *prot;
        int code;
        const char *msg;
    } cases[] = {
        {"a1013822", PV_ERR_UNSUPPORTED, "alg -35 is not supported (only ES256, -7)"}, /* ES384 */
        {"a10127", PV_ERR_UNSUPPORTED, "alg -8 is not supported"},                     /* EdDSA */
        {"a10101", PV_ERR_UNSUPPORTED, "alg 1 is not supported"},                      /* A128GCM */
        {"a1 01 65 4553323536", PV_ERR_UNSUPPORTED, "alg (1) must be an integer"},
        {"a1013bffffffffffffffff", PV_ERR_UNSUPPORTED, "alg (1) must be an integer"},
        {"", PV_ERR_FORMAT, "alg (1) is missing"},
        {"a0", PV_ERR_FORMAT, "alg (1) is missing"},
        {"a1 04 4131", PV_ERR_FORMAT, "alg (1) is missing"},
        {"a2 0126 0281 01", PV_ERR_UNSUPPORTED, "label 2 (crit) is not supported"},
        {"a2 0126 0581 01", PV_ERR_UNSUPPORTED, "label 5 (IV) is not supported"},
        {"a2 0126 1821 80", PV_ERR_UNSUPPORTED, "label 33 (x5chain) is not supported"},
        {"a2 0126 3863 00", PV_ERR_UNSUPPORTED, "label -100 (unknown) is not supported"},
        {"a2 0126 6161 00", PV_ERR_UNSUPPORTED, "only integer labels are supported"},
        {"a2 0126 1bffffffffffffffff 00", PV_ERR_UNSUPPORTED, "only integer labels"},
        {"a2 0126 0126", PV_ERR_FORMAT, "map key 1 appears more than once"},
        {"a3 0126 0441 01 0441 02", PV_ERR_FORMAT, "map key 4 appears more than once"},
        {"a2 0126 03 00", PV_ERR_UNSUPPORTED, "Content-Format number is not supported"},
        {"a2 0126 03 41 61", PV_ERR_FORMAT, "content type (3): expected a text string"},
        {"a2 0126 03 62 c0 80", PV_ERR_FORMAT, "not valid UTF-8"},
        {"a2 0126 03 63 61 00 62", PV_ERR_FORMAT, "NUL"},
        {"a2 0126 04 6131", PV_ERR_FORMAT, "kid (4): expected a byte string, got a text string"},
        {"80", PV_ERR_FORMAT, "protected header: expected a map"},
        {"a10126 00", PV_ERR_FORMAT, "protected header: 1 trailing bytes"},
        {"a10126 a0", PV_ERR_FORMAT, "protected header: 1 trailing bytes"},
        {"bf 0126 ff", PV_ERR_FORMAT, "protected header: indefinite-length map"},
        {"a1 01 f9 0000", PV_ERR_FORMAT, "floating-point"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct spec s = {.tag = 18, .prot = cases[i].prot, .payload = "x"};
        expect_refused(f->key, &s, 0, cases[i].code, cases[i].msg);
    }

    /* The accepted forms: any label order, non-shortest heads, empty kid. */
    static const char *const ok[] = {
        "a3 0441aa 0126 03616d", /* kid, alg, content type */
        "a1 1801 3806",          /* 1: -7 with one-byte arguments */
        "a2 0126 0440",          /* empty kid */
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct spec s = {.tag = 18, .prot = ok[i], .payload = "x"};
        pv_buf *b = hand_build(f->key, &s);
        pv_err e;
        int r = decode_verify(pv_buf_data(b), pv_buf_len(b), 0, f->key, NULL, NULL, &e);
        if (r != PV_OK) {
            fail_msg("%s refused: %s", ok[i], pv_err_msg(&e));
        }
        pv_buf_free(b);
    }
}

static void test_limits(void **state)
{
    struct fixture *f = *state;
    pv_err e;
    char hex[1024], *p;

    /* kid of 64 bytes is fine, 65 is not. */
    for (int len = 64; len <= 65; len++) {
        p = hex + snprintf(hex, sizeof(hex), "a2 0126 04 58%02x", len);
        for (int i = 0; i < len; i++) {
            p += snprintf(p, 3, "%02x", i);
        }
        struct spec s = {.tag = 18, .prot = hex, .payload = "x"};
        if (len == 64) {
            pv_buf *b = hand_build(f->key, &s);
            assert_int_equal(
                decode_verify(pv_buf_data(b), pv_buf_len(b), 0, f->key, NULL, NULL, &e), PV_OK);
            pv_buf_free(b);
        } else {
            expect_refused(f->key, &s, 0, PV_ERR_TOO_LARGE, "kid (4) of 65 bytes exceeds 64");
        }
    }
    /* content type of 128 bytes is fine, 129 is not. */
    for (int len = 128; len <= 129; len++) {
        p = hex + snprintf(hex, sizeof(hex), "a2 0126 03 78%02x", len);
        for (int i = 0; i < len; i++) {
            p += snprintf(p, 3, "61");
        }
        struct spec s = {.tag = 18, .prot = hex, .payload = "x"};
        if (len == 128) {
            pv_buf *b = hand_build(f->key, &s);
            assert_int_equal(
                decode_verify(pv_buf_data(b), pv_buf_len(b), 0, f->key, NULL, NULL, &e), PV_OK);
            pv_buf_free(b);
        } else {
            expect_refused(f->key, &s, 0, PV_ERR_TOO_LARGE, "exceeds the limit of 128");
        }
    }
    /* The largest header we accept: every head in its 9-byte form, kid and content type
     * at their limits: 255 bytes, well under the 1024-byte bound. */
    p = hex + snprintf(hex, sizeof(hex),
                       "bb0000000000000003 1b0000000000000001 3b0000000000000006"
                       " 1b0000000000000003 7b0000000000000080");
    for (int i = 0; i < 128; i++) {
        p += snprintf(p, 3, "7a");
    }
    p += snprintf(p, 40, "1b0000000000000004 5b0000000000000040");
    for (int i = 0; i < 64; i++) {
        p += snprintf(p, 3, "%02x", i);
    }
    {
        struct spec s = {.tag = 18, .prot = hex, .payload = "x"};
        pv_buf *b = hand_build(f->key, &s);
        pv_cose_sign1 *m = NULL;
        assert_int_equal(pv_buf_data(b)[2], 0x58); /* bstr head with 1-byte length */
        assert_int_equal(pv_buf_data(b)[3], 255);
        assert_int_equal(pv_cose_sign1_decode(pv_buf_data(b), pv_buf_len(b), 0, &m, &e), PV_OK);
        assert_int_equal(strlen(pv_cose_sign1_content_type(m)), 128);
        assert_int_equal(pv_cose_sign1_verify(m, f->key, NULL, 0, NULL, 0, &e), PV_OK);
        pv_cose_sign1_free(m);
        pv_buf_free(b);
    }

    /* A protected header longer than any we accept: [h'a10126 00...' (1025 bytes), {},
     * h'', h'00...' (64 bytes)]. */
    size_t off = 0;
    uint8_t *big = calloc(1, 1200);
    pv_cose_sign1 *m = NULL;
    assert_non_null(big);
    big[off++] = 0x84;
    big[off++] = 0x59;
    big[off++] = 0x04;
    big[off++] = 0x01;
    memcpy(big + off, "\xa1\x01\x26", 3);
    off += 1025;
    big[off++] = 0xa0;
    big[off++] = 0x40;
    big[off++] = 0x58;
    big[off++] = 0x40;
    off += 64;
    assert_int_equal(pv_cose_sign1_decode(big, off, 0, &m, &e), PV_ERR_TOO_LARGE);
    assert_non_null(strstr(e.msg, "protected header of 1025 bytes exceeds 1024"));
    free(big);

    /* Signatures of 63 and 65 bytes. */
    struct spec s = {.tag = 18, .prot = "a10126", .payload = "x", .sig_len = 63};
    expect_refused(f->key, &s, 0, PV_ERR_FORMAT, "expected 64 bytes (ES256 r || s), found 63");
    s.sig_len = 65;
    expect_refused(f->key, &s, 0, PV_ERR_FORMAT, "found 65");

    /* Message size. */
    uint8_t *huge = calloc(1, PV_COSE_MAX_MESSAGE + 1);
    assert_int_equal(pv_cose_sign1_decode(huge, PV_COSE_MAX_MESSAGE + 1, 0, &m, &e),
                     PV_ERR_TOO_LARGE);
    pv_buf *out = pv_buf_new(2 * PV_COSE_MAX_MESSAGE);
    assert_int_equal(
        pv_cose_sign1_create(f->key, NULL, 0, NULL, huge, PV_COSE_MAX_MESSAGE, NULL, 0, 0, out, &e),
        PV_ERR_TOO_LARGE);
    assert_int_equal(pv_buf_len(out), 0);
    /* Detached, the payload does not count against the message size. */
    assert_int_equal(pv_cose_sign1_create(f->key, NULL, 0, NULL, huge, PV_COSE_MAX_MESSAGE, NULL, 0,
                                          PV_COSE_DETACHED, out, &e),
                     PV_OK);
    assert_int_equal(pv_cose_sign1_decode(pv_buf_data(out), pv_buf_len(out), 0, &m, &e), PV_OK);
    assert_int_equal(pv_cose_sign1_verify(m, f->key, huge, PV_COSE_MAX_MESSAGE, NULL, 0, &e),
                     PV_OK);
    pv_cose_sign1_free(m);
    pv_buf_free(out);
    free(huge);
}

static void test_detached_and_attached_mixups(void **state)
{
    struct fixture *f = *state;
    pv_err e;
    /* A detached message (nil payload) signed over "abc". */
    struct spec s = {.tag = 18, .prot = "a10126", .payload = NULL, .signed_payload = "abc"};
    pv_buf *b = hand_build(f->key, &s);
    assert_int_equal(decode_verify(pv_buf_data(b), pv_buf_len(b), 0, f->key, "abc", NULL, &e),
                     PV_OK);
    assert_int_equal(decode_verify(pv_buf_data(b), pv_buf_len(b), 0, f->key, NULL, NULL, &e),
                     PV_ERR_INVALID_ARG);
    assert_int_equal(decode_verify(pv_buf_data(b), pv_buf_len(b), 0, f->key, "abd", NULL, &e),
                     PV_ERR_SIGNATURE);
    pv_buf_free(b);
}

static void test_create_arguments(void **state)
{
    struct fixture *f = *state;
    pv_buf *out = pv_buf_new(4096);
    pv_err e;
    uint8_t kid[65] = {0};
    char ct[130];
    memset(ct, 'a', sizeof(ct));
    ct[129] = '\0';

    assert_int_equal(pv_cose_sign1_create(f->key, kid, 65, NULL, NULL, 0, NULL, 0, 0, out, &e),
                     PV_ERR_INVALID_ARG);
    assert_int_equal(pv_cose_sign1_create(f->key, NULL, 0, ct, NULL, 0, NULL, 0, 0, out, &e),
                     PV_ERR_INVALID_ARG);
    assert_int_equal(
        pv_cose_sign1_create(f->key, NULL, 0, "\xc0\x80", NULL, 0, NULL, 0, 0, out, &e),
        PV_ERR_INVALID_ARG);
    assert_int_equal(pv_cose_sign1_create(f->key, NULL, 0, NULL, NULL, 1, NULL, 0, 0, out, &e),
                     PV_ERR_INVALID_ARG);
    assert_int_equal(
        pv_cose_sign1_create(f->key, NULL, 0, NULL, NULL, 0, NULL, 0, PV_COSE_REQUIRE_TAG, out, &e),
        PV_ERR_INVALID_ARG);
    assert_int_equal(pv_cose_sign1_create(NULL, NULL, 0, NULL, NULL, 0, NULL, 0, 0, out, &e),
                     PV_ERR_INVALID_ARG);
    /* A public key cannot sign. */
    pv_buf *spki = pv_buf_new(256);
    pv_key *pub = NULL;
    assert_int_equal(pv_key_spki_der(f->key, spki), PV_OK);
    assert_int_equal(pv_key_from_spki_der(pv_buf_data(spki), pv_buf_len(spki), &pub, &e), PV_OK);
    assert_int_not_equal(pv_cose_sign1_create(pub, NULL, 0, NULL, NULL, 0, NULL, 0, 0, out, &e),
                         PV_OK);
    pv_key_free(pub);
    pv_buf_free(spki);
    assert_int_equal(pv_buf_len(out), 0);
    /* Kid and content type at their limits. */
    memset(ct, 'a', 128);
    ct[128] = '\0';
    assert_int_equal(pv_cose_sign1_create(f->key, kid, 64, ct, NULL, 0, NULL, 0, 0, out, &e),
                     PV_OK);
    pv_cose_sign1 *m = NULL;
    assert_int_equal(pv_cose_sign1_decode(pv_buf_data(out), pv_buf_len(out), 0, &m, &e), PV_OK);
    pv_cose_sign1_free(m);
    /* Output buffer too small: nothing is appended. */
    pv_buf *small = pv_buf_new(50);
    assert_int_equal(pv_cose_sign1_create(f->key, NULL, 0, NULL, NULL, 0, NULL, 0, 0, small, &e),
                     PV_ERR_TOO_LARGE);
    assert_int_equal(pv_buf_len(small), 0);
    pv_buf_free(small);
    pv_buf_free(out);

    assert_int_equal(pv_cose_sign1_decode((const uint8_t *)"", 0, 0x80, &m, &e),
                     PV_ERR_INVALID_ARG);
    pv_cose_sign1_free(NULL);
}

/* Without an error struct the codes are the same. */
static void test_null_error_context(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *hex;
        int code;
    } cases[] = {
        {"", PV_ERR_TRUNCATED},
        {"d2 84 43a10126 a0 40", PV_ERR_TRUNCATED},
        {"d1 80", PV_ERR_FORMAT},
        {"84 43a10127 a0 40 40", PV_ERR_FORMAT},
        {"84 43a10126 a10101 40 40", PV_ERR_UNSUPPORTED},
        {"84 45a201260126 a0 40 5840"
         "0000000000000000000000000000000000000000000000000000000000000000"
         "0000000000000000000000000000000000000000000000000000000000000000",
         PV_ERR_FORMAT},
        {"84 44a1036161 a0 40 5840"
         "0000000000000000000000000000000000000000000000000000000000000000"
         "0000000000000000000000000000000000000000000000000000000000000000",
         PV_ERR_FORMAT},
        {"84 46a20126046161 a0 40 5840"
         "0000000000000000000000000000000000000000000000000000000000000000"
         "0000000000000000000000000000000000000000000000000000000000000000",
         PV_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n;
        uint8_t *p = tu_unhex(cases[i].hex, &n);
        pv_cose_sign1 *m = NULL;
        int r = pv_cose_sign1_decode(p, n, 0, &m, NULL);
        if (r != cases[i].code) {
            fail_msg("'%s': got %d, want %d", cases[i].hex, r, cases[i].code);
        }
        free(p);
    }
    pv_buf *b = create(f->key, NULL, NULL, "x", NULL, 0);
    pv_cose_sign1 *m = NULL;
    assert_int_equal(pv_cose_sign1_decode(pv_buf_data(b), pv_buf_len(b), 0, &m, NULL), PV_OK);
    assert_int_equal(pv_cose_sign1_verify(m, f->other, NULL, 0, NULL, 0, NULL), PV_ERR_SIGNATURE);
    assert_int_equal(pv_cose_sign1_verify(m, f->key, NULL, 0, NULL, 0, NULL), PV_OK);
    pv_cose_sign1_free(m);
    pv_buf_free(b);
}

/* ---- interoperability ---- */

/* The exact bytes we emit, checked field by field against RFC 9052 §4.2 and §4.4. */
static void test_layout_of_created_message(void **state)
{
    struct fixture *f = *state;
    pv_buf *b = create(f->key11, "11", "text/plain", "This is the content.", "ext", 0);
    size_t n;
    uint8_t *want = tu_unhex("d2 84"
                             " 53 a3 0126 036a746578742f706c61696e 04423131" /* protected */
                             " a0"                                           /* unprotected */
                             " 54 546869732069732074686520636f6e74656e742e"  /* payload */
                             " 5840",                                        /* signature */
                             &n);
    assert_int_equal(pv_buf_len(b), n + 64);
    assert_memory_equal(pv_buf_data(b), want, n);
    free(want);

    /* The signature is over ["Signature1", protected, h'657874', payload]. */
    pv_buf *tbs = pv_buf_new(1024);
    sig_structure(pv_buf_data(b) + 3, 0x13, "ext", (const uint8_t *)"This is the content.", 20,
                  tbs);
    uint8_t *tbs_want = tu_unhex("84 6a5369676e617475726531"
                                 " 53 a3 0126 036a746578742f706c61696e 04423131"
                                 " 43 657874"
                                 " 54 546869732069732074686520636f6e74656e742e",
                                 &n);
    assert_int_equal(pv_buf_len(tbs), n);
    assert_memory_equal(pv_buf_data(tbs), tbs_want, n);
    free(tbs_want);
    pv_err e;
    assert_int_equal(pv_key_verify_es256(f->pub11, pv_buf_data(tbs), pv_buf_len(tbs),
                                         pv_buf_data(b) + pv_buf_len(b) - 64, &e),
                     PV_OK);
    pv_buf_free(tbs);

    /* Detached: the payload position holds nil (f6). */
    pv_buf_free(b);
    b = create(f->key11, NULL, NULL, "This is the content.", NULL, PV_COSE_DETACHED);
    want = tu_unhex("d2 84 43a10126 a0 f6 5840", &n);
    assert_int_equal(pv_buf_len(b), n + 64);
    assert_memory_equal(pv_buf_data(b), want, n);
    free(want);
    pv_buf_free(b);
}

/* cose-wg/Examples sign1-tests/sign-pass-02.json: an ES256 COSE_Sign1 with external
 * data, made by another implementation. Its kid sits in the unprotected header, which
 * Pavise refuses; the unprotected header is not signed, so with it emptied the
 * signature must still verify. */
static void test_cose_wg_example(void **state)
{
    struct fixture *f = *state;
    static const char example[] =
        "D28443A10126A10442313154546869732069732074686520636F6E74656E742E5840EAE868ECC1768837"
        "66C5DC5BA5B8DCA25DAB3C2E56A551CE5705B793914348E155388B10C4F1B59A6733EAB416870A945111"
        "A4B2FBDBEF33A77234B1DEFF2F9B";
    static const char external[] = "\x11\xaa\x22\xbb\x33\xcc\x44\xdd\x55\x00\x66\x99";
    static const char to_be_signed[] = "846A5369676E61747572653143A101264C11AA22BB33CC44DD55006"
                                       "69954546869732069732074686520636F6E74656E742E";
    size_t n, tn;
    uint8_t *msg = tu_unhex(example, &n);
    uint8_t *tbs_want = tu_unhex(to_be_signed, &tn);
    pv_cose_sign1 *m = NULL;
    pv_err e;

    /* Our Sig_structure encoding matches theirs byte for byte. */
    pv_buf *tbs = pv_buf_new(256);
    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, tbs);
    pv_cbor_put_array(&enc, 4);
    pv_cbor_put_text(&enc, "Signature1");
    pv_cbor_put_bytes(&enc, "\xa1\x01\x26", 3);
    pv_cbor_put_bytes(&enc, external, 12);
    pv_cbor_put_bytes(&enc, "This is the content.", 20);
    assert_int_equal(pv_buf_len(tbs), tn);
    assert_memory_equal(pv_buf_data(tbs), tbs_want, tn);
    pv_buf_free(tbs);
    free(tbs_want);

    assert_int_equal(pv_cose_sign1_decode(msg, n, 0, &m, &e), PV_ERR_UNSUPPORTED);
    assert_non_null(strstr(e.msg, "unprotected header must be empty"));

    /* 43 a10126 | a1 04 42 3131 -> a0 */
    assert_memory_equal(msg + 6, "\xa1\x04\x42\x31\x31", 5);
    msg[6] = 0xa0;
    memmove(msg + 7, msg + 11, n - 11);
    n -= 4;
    assert_int_equal(pv_cose_sign1_decode(msg, n, PV_COSE_REQUIRE_TAG, &m, &e), PV_OK);
    assert_int_equal(pv_cose_sign1_verify(m, f->pub11, NULL, 0, (const uint8_t *)external, 12, &e),
                     PV_OK);
    assert_int_equal(pv_cose_sign1_verify(m, f->pub11, NULL, 0, NULL, 0, &e), PV_ERR_SIGNATURE);
    assert_int_equal(pv_cose_sign1_verify(m, f->key, NULL, 0, (const uint8_t *)external, 12, &e),
                     PV_ERR_SIGNATURE);
    pv_cose_sign1_free(m);
    free(msg);
}

/* A message assembled by hand with the encoder and signed with key "11" verifies with
 * the public key alone. */
static void test_hand_built_known_key(void **state)
{
    struct fixture *f = *state;
    struct spec s = {.tag = 18, .prot = "a2 0126 04 423131", .payload = "hand built", .aad = "x"};
    pv_buf *b = hand_build(f->key11, &s);
    pv_cose_sign1 *m = NULL;
    pv_err e;
    assert_int_equal(
        pv_cose_sign1_decode(pv_buf_data(b), pv_buf_len(b), PV_COSE_REQUIRE_TAG, &m, &e), PV_OK);
    const uint8_t *kid;
    size_t kid_len;
    pv_cose_sign1_kid(m, &kid, &kid_len);
    assert_int_equal(kid_len, 2);
    assert_memory_equal(kid, "11", 2);
    assert_int_equal(pv_cose_sign1_verify(m, f->pub11, NULL, 0, (const uint8_t *)"x", 1, &e),
                     PV_OK);
    assert_int_equal(pv_cose_sign1_verify(m, f->pub11, NULL, 0, (const uint8_t *)"y", 1, &e),
                     PV_ERR_SIGNATURE);
    pv_cose_sign1_free(m);
    pv_buf_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_empty_payload_and_aad),
        cmocka_unit_test(test_tampered_fields),
        cmocka_unit_test(test_every_byte_flip),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_outer_shape),
        cmocka_unit_test(test_protected_header),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_detached_and_attached_mixups),
        cmocka_unit_test(test_create_arguments),
        cmocka_unit_test(test_null_error_context),
        cmocka_unit_test(test_layout_of_created_message),
        cmocka_unit_test(test_cose_wg_example),
        cmocka_unit_test(test_hand_built_known_key),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
