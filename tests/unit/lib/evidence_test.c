/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Attestation evidence (src/lib/evidence.c): signing, strict decoding, verification and
 * the TLS key binding. Bad claims are built by an encoder written here from
 * docs/protocol/attestation.md §1.3, independently of the one under test, and signed
 * properly, so each refusal is the claims check's and not the signature's.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/cbor.h"
#include "pavise/cose.h"
#include "pavise/evidence.h"
#include "pavise/platform.h"
#include "pavise/rot.h"

/* A test-only key (never used anywhere else): the fuzz corpus in
 * tests/fuzz/corpus/evidence is signed with it, and fuzz_evidence.c holds its public
 * half, so mutated seeds also reach the signature check. */
static const char fixed_key_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgI6dPiCOtnObMApRa\n"
    "XzytubRXCIFVpGoptsGmrllU61mhRANCAAQDm248I7LquYyv57m0hsz3GjlNMx/x\n"
    "puXsLsMpDyPeqoIihM2ebEx/5dlAInU0auS82ySD7GCHyemmWovPxPL0\n"
    "-----END PRIVATE KEY-----\n";

static const char fixed_spki_hex[] =
    "3059301306072a8648ce3d020106082a8648ce3d03010703420004039b6e3c23b2eab98cafe7b9b486ccf7"
    "1a394d331ff1a6e5ec2ec3290f23deaa822284cd9e6c4c7fe5d9402275346ae4bcdb2483ec6087c9e9a65a"
    "8bcfc4f2f4";

#define DEVICE_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define BOOT_ID   "5b0e3f7a-1c2d-4e8f-9a6b-7c1d2e3f4a5b"

typedef struct fixture {
    char *dir;
    pv_key *key;   /* the attestation key */
    pv_key *other; /* somebody else's */
    pv_rot_event events[3];
    pv_evidence_image images[2];
    pv_evidence ev; /* borrows events and images: never pv_evidence_free it */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    pv_err e;
    assert_non_null(f);
    f->dir = tu_mkdtemp("evidence");
    char *pem = tu_path(f->dir, "key.pem");
    tu_write(pem, fixed_key_pem, sizeof(fixed_key_pem) - 1, 0600);
    assert_int_equal(pv_key_load_private_pem(pem, &f->key, &e), PV_OK);
    free(pem);
    assert_int_equal(pv_key_generate(&f->other, &e), PV_OK);

    static uint8_t boot_data[] = "pavise-boot 1.0";
    const char *types[] = {"boot-config", "os-image", "app-image"};
    for (size_t i = 0; i < 3; i++) {
        pv_rot_event *x = &f->events[i];
        snprintf(x->type, sizeof(x->type), "%s", types[i]);
        memset(x->digest, 0xd0 + (int)i, sizeof(x->digest));
    }
    f->events[0].data = boot_data;
    f->events[0].data_len = sizeof(boot_data) - 1;
    /* events[1] and [2]: no data */

    f->images[0].kind = PV_EVIDENCE_IMAGE_OS;
    memset(f->images[0].image_id, 0x11, PV_UUID_LEN);
    memset(f->images[0].component_id, 0x12, PV_UUID_LEN);
    snprintf(f->images[0].version, sizeof(f->images[0].version), "2025.06.1");
    memset(f->images[0].manifest_digest, 0x13, PV_SHA256_LEN);
    f->images[1].kind = PV_EVIDENCE_IMAGE_APP;
    memset(f->images[1].image_id, 0x21, PV_UUID_LEN);
    memset(f->images[1].component_id, 0x22, PV_UUID_LEN);
    snprintf(f->images[1].version, sizeof(f->images[1].version), "1.2.3-\xc3\xa9t\xc3\xa9");
    memset(f->images[1].manifest_digest, 0x23, PV_SHA256_LEN);

    pv_evidence *ev = &f->ev;
    for (size_t i = 0; i < PV_NONCE_LEN; i++) {
        ev->nonce[i] = (uint8_t)i;
    }
    memcpy(ev->device_id, DEVICE_ID, sizeof(ev->device_id));
    ev->issued_at = 1750000000;
    ev->development = false;
    ev->boot_count = 42;
    ev->rot_kind = PV_ROT_TPM;
    memset(ev->binding, 0xb1, sizeof(ev->binding));
    memset(ev->measurement, 0x3e, sizeof(ev->measurement));
    ev->events = f->events;
    ev->n_events = 3;
    ev->images = f->images;
    ev->n_images = 2;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmtree(f->dir);
    free(f->dir);
    pv_key_free(f->key);
    pv_key_free(f->other);
    free(f);
    return 0;
}

/* ---- signers ---- */

/* The attestation key held in memory, as a software root of trust would hold it. */
static int key_signer(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[PV_ES256_SIG_LEN],
                      pv_err *e)
{
    return pv_key_sign_es256(ctx, msg, len, sig, e);
}

/* Records what it was asked to sign, then signs with the key. */
typedef struct recording {
    pv_key *key;
    uint8_t msg[PV_EVIDENCE_MAX_SIZE + 256];
    size_t len;
    int calls;
} recording;

static int recording_signer(void *ctx, const uint8_t *msg, size_t len,
                            uint8_t sig[PV_ES256_SIG_LEN], pv_err *e)
{
    recording *rec = ctx;
    rec->calls++;
    assert_true(len <= sizeof(rec->msg));
    memcpy(rec->msg, msg, len);
    rec->len = len;
    return pv_key_sign_es256(rec->key, msg, len, sig, e);
}

static int failing_signer(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[PV_ES256_SIG_LEN],
                          pv_err *e)
{
    return pv_err_set(e, PV_ERR_ROT, "the TPM is on fire");
}

static int rot_signer(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[PV_ES256_SIG_LEN],
                      pv_err *e)
{
    return pv_rot_sign(ctx, msg, len, sig, e);
}

static pv_buf *sign_ok(const fixture *f, const pv_evidence *ev)
{
    pv_buf *out = pv_buf_new(PV_EVIDENCE_MAX_SIZE);
    pv_err e;
    assert_non_null(out);
    int r = pv_evidence_sign(ev, f->key, key_signer, f->key, out, &e);
    if (r != PV_OK) {
        fail_msg("pv_evidence_sign: %s", e.msg);
    }
    return out;
}

/* ---- an independent encoder of the claims, with mutations ---- */

typedef struct mutation {
    int64_t drop;        /* a claim left out (0: none; 0 is no claim key) */
    int64_t replace;     /* a claim whose value is replaced by raw_hex */
    const char *raw_hex; /* CBOR of that value */
    int64_t extra;       /* an extra key, with the value 0 (0: none) */
    int64_t twice;       /* a claim written twice (0: none) */
} mutation;

/* The keys in deterministic order (RFC 8949 §4.2.1), as attestation.md lists them. */
static const int64_t claim_order[] = {6,      10,     256,    263,    265,   267,
                                      -70001, -70002, -70003, -70004, -70005};
#define N_CLAIMS (sizeof(claim_order) / sizeof(claim_order[0]))

static void put_value(pv_cbor_enc *enc, int64_t key, const pv_evidence *ev)
{
    uint8_t ueid[33];
    switch (key) {
    case 6:
        pv_cbor_put_uint(enc, (uint64_t)ev->issued_at);
        break;
    case 10:
        pv_cbor_put_bytes(enc, ev->nonce, sizeof(ev->nonce));
        break;
    case 256:
        ueid[0] = 0x01;
        assert_int_equal(pv_hex_decode(ev->device_id, ueid + 1, 32), PV_OK);
        pv_cbor_put_bytes(enc, ueid, sizeof(ueid));
        break;
    case 263:
        pv_cbor_put_uint(enc, ev->development ? 0 : 1);
        break;
    case 265:
        pv_cbor_put_text(enc, "urn:pavise:eat:1");
        break;
    case 267:
        pv_cbor_put_uint(enc, ev->boot_count);
        break;
    case -70001:
        pv_cbor_put_text(enc, ev->rot_kind == PV_ROT_TPM ? "tpm" : "software");
        break;
    case -70002:
        pv_cbor_put_bytes(enc, ev->binding, sizeof(ev->binding));
        break;
    case -70003:
        pv_cbor_put_bytes(enc, ev->measurement, sizeof(ev->measurement));
        break;
    case -70004:
        pv_cbor_put_array(enc, ev->n_events);
        for (size_t i = 0; i < ev->n_events; i++) {
            pv_cbor_put_array(enc, 3);
            pv_cbor_put_text(enc, ev->events[i].type);
            pv_cbor_put_bytes(enc, ev->events[i].digest, 32);
            pv_cbor_put_bytes(enc, ev->events[i].data, ev->events[i].data_len);
        }
        break;
    case -70005:
        pv_cbor_put_array(enc, ev->n_images);
        for (size_t i = 0; i < ev->n_images; i++) {
            const pv_evidence_image *img = &ev->images[i];
            pv_cbor_put_map(enc, 5);
            pv_cbor_put_uint(enc, 1);
            pv_cbor_put_text(enc, img->kind == PV_EVIDENCE_IMAGE_OS ? "os" : "app");
            pv_cbor_put_uint(enc, 2);
            pv_cbor_put_bytes(enc, img->image_id, 16);
            pv_cbor_put_uint(enc, 3);
            pv_cbor_put_bytes(enc, img->component_id, 16);
            pv_cbor_put_uint(enc, 4);
            pv_cbor_put_text(enc, img->version);
            pv_cbor_put_uint(enc, 5);
            pv_cbor_put_bytes(enc, img->manifest_digest, 32);
        }
        break;
    default:
        fail_msg("no claim %lld", (long long)key);
    }
}

static pv_buf *encode_claims(const pv_evidence *ev, const mutation *m)
{
    pv_buf *b = pv_buf_new(1u << 20);
    pv_cbor_enc enc;
    assert_non_null(b);
    size_t n = N_CLAIMS - (m->drop != 0) + (m->extra != 0) + (m->twice != 0);
    pv_cbor_enc_init(&enc, b);
    pv_cbor_put_map(&enc, n);
    for (size_t i = 0; i < N_CLAIMS; i++) {
        int64_t k = claim_order[i];
        if (k == m->drop) {
            continue;
        }
        for (int rep = 0; rep < (k == m->twice ? 2 : 1); rep++) {
            pv_cbor_put_int(&enc, k);
            if (k == m->replace) {
                size_t len;
                uint8_t *raw = tu_unhex(m->raw_hex, &len);
                assert_int_equal(pv_buf_append(b, raw, len), PV_OK);
                free(raw);
            } else {
                put_value(&enc, k, ev);
            }
        }
    }
    if (m->extra != 0) {
        pv_cbor_put_int(&enc, m->extra);
        pv_cbor_put_uint(&enc, 0);
    }
    assert_int_equal(pv_cbor_enc_result(&enc), PV_OK);
    return b;
}

/* A properly signed COSE_Sign1 around payload, with the given kid and content type. */
static pv_buf *wrap(const fixture *f, const uint8_t *payload, size_t len, const char *ct,
                    const uint8_t *kid, size_t kid_len, unsigned flags)
{
    pv_buf *out = pv_buf_new(PV_COSE_MAX_MESSAGE);
    pv_err e;
    assert_non_null(out);
    int r = pv_cose_sign1_create(f->key, kid, kid_len, ct, payload, len, NULL, 0, flags, out, &e);
    if (r != PV_OK) {
        fail_msg("pv_cose_sign1_create: %s", e.msg);
    }
    return out;
}

static pv_buf *craft(const fixture *f, const pv_evidence *ev, const mutation *m)
{
    uint8_t kid[PV_KEY_ID_LEN];
    assert_int_equal(pv_key_id(f->key, kid), PV_OK);
    pv_buf *claims = encode_claims(ev, m);
    pv_buf *out = wrap(f, pv_buf_data(claims), pv_buf_len(claims), PV_EVIDENCE_CONTENT_TYPE, kid,
                       sizeof(kid), 0);
    pv_buf_free(claims);
    return out;
}

/* ---- checks ---- */

static void decode_fails(const uint8_t *p, size_t len, int code, const char *want)
{
    pv_evidence ev;
    pv_cose_sign1 *cose = (pv_cose_sign1 *)&ev; /* anything non-NULL: must be cleared */
    pv_err e = {0};
    int r = pv_evidence_decode(p, len, &ev, &cose, &e);
    if (r == PV_OK) {
        pv_evidence_free(&ev);
        pv_cose_sign1_free(cose);
        fail_msg("decode accepted what it should refuse (%s)", want);
    }
    if (code != 0 && r != code) {
        fail_msg("decode: code %d (%s), expected %d; %s", r, pv_strerror(r), code, e.msg);
    }
    if (want != NULL && strstr(e.msg, want) == NULL) {
        fail_msg("decode: message '%s' does not contain '%s'", e.msg, want);
    }
    assert_null(cose);
    assert_null(ev.events);
    assert_null(ev.images);
    assert_int_equal(ev.n_events, 0);
    assert_int_equal(ev.device_id[0], '\0');
}

static void crafted_fails(const fixture *f, const mutation *m, int code, const char *want)
{
    pv_buf *b = craft(f, &f->ev, m);
    decode_fails(pv_buf_data(b), pv_buf_len(b), code, want);
    pv_buf_free(b);
}

static void sign_fails(const fixture *f, const pv_evidence *ev, int code, const char *want)
{
    pv_buf *out = pv_buf_new(PV_EVIDENCE_MAX_SIZE);
    pv_err e = {0};
    assert_non_null(out);
    int r = pv_evidence_sign(ev, f->key, key_signer, f->key, out, &e);
    if (r != code) {
        fail_msg("sign: code %d (%s), expected %d; %s", r, pv_strerror(r), code, e.msg);
    }
    if (want != NULL && strstr(e.msg, want) == NULL) {
        fail_msg("sign: message '%s' does not contain '%s'", e.msg, want);
    }
    assert_int_equal(pv_buf_len(out), 0);
    pv_buf_free(out);
}

static void assert_same(const pv_evidence *a, const pv_evidence *b)
{
    assert_memory_equal(a->nonce, b->nonce, PV_NONCE_LEN);
    assert_string_equal(a->device_id, b->device_id);
    assert_int_equal(a->issued_at, b->issued_at);
    assert_int_equal(a->development, b->development);
    assert_int_equal(a->boot_count, b->boot_count);
    assert_int_equal(a->rot_kind, b->rot_kind);
    assert_memory_equal(a->binding, b->binding, PV_SHA256_LEN);
    assert_memory_equal(a->measurement, b->measurement, PV_SHA256_LEN);
    assert_int_equal(a->n_events, b->n_events);
    for (size_t i = 0; i < a->n_events; i++) {
        assert_string_equal(a->events[i].type, b->events[i].type);
        assert_memory_equal(a->events[i].digest, b->events[i].digest, PV_SHA256_LEN);
        assert_int_equal(a->events[i].data_len, b->events[i].data_len);
        if (a->events[i].data_len > 0) {
            assert_memory_equal(a->events[i].data, b->events[i].data, a->events[i].data_len);
        }
    }
    assert_int_equal(a->n_images, b->n_images);
    for (size_t i = 0; i < a->n_images; i++) {
        const pv_evidence_image *x = &a->images[i], *y = &b->images[i];
        assert_int_equal(x->kind, y->kind);
        assert_memory_equal(x->image_id, y->image_id, PV_UUID_LEN);
        assert_memory_equal(x->component_id, y->component_id, PV_UUID_LEN);
        assert_string_equal(x->version, y->version);
        assert_memory_equal(x->manifest_digest, y->manifest_digest, PV_SHA256_LEN);
    }
}

/* Decodes, checks against ev, and verifies with key. */
static void decode_verify_ok(const uint8_t *p, size_t len, const pv_evidence *ev, const pv_key *key)
{
    pv_evidence got;
    pv_cose_sign1 *cose = NULL;
    pv_err e;
    uint8_t kid[PV_KEY_ID_LEN];
    int r = pv_evidence_decode(p, len, &got, &cose, &e);
    if (r != PV_OK) {
        fail_msg("pv_evidence_decode: %s", e.msg);
    }
    assert_same(ev, &got);
    assert_int_equal(pv_key_id(key, kid), PV_OK);
    assert_memory_equal(got.signer_key_id, kid, PV_KEY_ID_LEN);
    assert_string_equal(pv_cose_sign1_content_type(cose), PV_EVIDENCE_CONTENT_TYPE);
    r = pv_evidence_verify(cose, key, &e);
    if (r != PV_OK) {
        fail_msg("pv_evidence_verify: %s", e.msg);
    }
    pv_cose_sign1_free(cose);
    pv_evidence_free(&got);
    assert_null(got.events);
    pv_evidence_free(NULL);
}

/* ---- round trips ---- */

static void test_round_trip_key(void **state)
{
    fixture *f = *state;
    recording *rec = calloc(1, sizeof(*rec));
    pv_buf *out = pv_buf_new(PV_EVIDENCE_MAX_SIZE);
    pv_err e;
    assert_non_null(rec);
    assert_non_null(out);
    rec->key = f->key;
    assert_int_equal(pv_buf_append(out, "xy", 2), PV_OK); /* sign appends */
    assert_int_equal(pv_evidence_sign(&f->ev, f->key, recording_signer, rec, out, &e), PV_OK);
    assert_int_equal(rec->calls, 1);
    assert_memory_equal(pv_buf_data(out), "xy", 2);
    const uint8_t *msg = pv_buf_data(out) + 2;
    size_t len = pv_buf_len(out) - 2;
    assert_int_equal(msg[0], 0xd2); /* tag 18 */
    decode_verify_ok(msg, len, &f->ev, f->key);

    /* The claims are exactly what the independent encoder writes: deterministic order,
     * shortest forms. The signer saw the Sig_structure over them. */
    mutation none = {0};
    pv_buf *claims = encode_claims(&f->ev, &none);
    pv_cose_sign1 *cose = NULL;
    assert_int_equal(pv_cose_sign1_decode(msg, len, PV_COSE_REQUIRE_TAG, &cose, &e), PV_OK);
    const uint8_t *payload;
    size_t payload_len;
    pv_cose_sign1_payload(cose, &payload, &payload_len);
    assert_int_equal(payload_len, pv_buf_len(claims));
    assert_memory_equal(payload, pv_buf_data(claims), payload_len);
    assert_int_equal(pv_cose_sign1_alg(cose), PV_COSE_ALG_ES256);
    assert_true(rec->len > payload_len);
    assert_int_equal(rec->msg[0], 0x84); /* Sig_structure: array(4) */
    assert_memory_equal(rec->msg + rec->len - payload_len, payload, payload_len);
    pv_cose_sign1_free(cose);
    pv_buf_free(claims);
    pv_buf_free(out);
    free(rec);
}

/* Signed by the key itself: the same claims, verifying with that key; a key without
 * its private part is refused before anything is written. */
static void test_sign_with_key(void **state)
{
    fixture *f = *state;
    pv_buf *out = pv_buf_new(PV_EVIDENCE_MAX_SIZE), *spki = pv_buf_new(128);
    pv_err e;
    pv_key *pub = NULL;
    assert_int_equal(pv_evidence_sign_with_key(&f->ev, f->key, out, &e), PV_OK);
    decode_verify_ok(pv_buf_data(out), pv_buf_len(out), &f->ev, f->key);
    mutation none = {0};
    pv_buf *claims = encode_claims(&f->ev, &none);
    pv_cose_sign1 *cose = NULL;
    assert_int_equal(
        pv_cose_sign1_decode(pv_buf_data(out), pv_buf_len(out), PV_COSE_REQUIRE_TAG, &cose, &e),
        PV_OK);
    const uint8_t *payload;
    size_t payload_len;
    pv_cose_sign1_payload(cose, &payload, &payload_len);
    assert_int_equal(payload_len, pv_buf_len(claims));
    assert_memory_equal(payload, pv_buf_data(claims), payload_len);
    pv_cose_sign1_free(cose);

    pv_buf_reset(out);
    assert_int_equal(pv_key_spki_der(f->key, spki), PV_OK);
    assert_int_equal(pv_key_from_spki_der(pv_buf_data(spki), pv_buf_len(spki), &pub, &e), PV_OK);
    assert_int_equal(pv_evidence_sign_with_key(&f->ev, pub, out, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_evidence_sign_with_key(NULL, f->key, out, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_buf_len(out), 0);
    pv_key_free(pub);
    pv_buf_free(claims);
    pv_buf_free(spki);
    pv_buf_free(out);
}

/* The encoded claims begin with the keys in deterministic order: spot-check the bytes. */
static void test_claims_bytes(void **state)
{
    fixture *f = *state;
    pv_evidence ev = f->ev;
    pv_buf *out = NULL;
    pv_cose_sign1 *cose = NULL;
    const uint8_t *p;
    size_t n;
    pv_err e;
    ev.n_events = 0;
    ev.n_images = 0;
    ev.issued_at = 1;
    ev.boot_count = 2;
    out = sign_ok(f, &ev);
    assert_int_equal(pv_cose_sign1_decode(pv_buf_data(out), pv_buf_len(out), 0, &cose, &e), PV_OK);
    pv_cose_sign1_payload(cose, &p, &n);
    size_t exp_len;
    uint8_t *exp = tu_unhex("ab"       /* map(11) */
                            "06 01"    /* iat: 1 */
                            "0a 5830", /* eat_nonce: bstr(48) */
                            &exp_len);
    assert_memory_equal(p, exp, exp_len);
    free(exp);
    size_t off = exp_len + PV_NONCE_LEN;
    exp = tu_unhex("190100 5821 01" DEVICE_ID                   /* ueid */
                   "190107 01"                                  /* dbgstat: disabled */
                   "190109 70 75726e3a7061766973653a6561743a31" /* eat_profile */
                   "19010b 02"                                  /* bootcount */
                   "3a00011170 63 74706d"                       /* rot kind: "tpm" */
                   "3a00011171 5820",                           /* binding */
                   &exp_len);
    assert_true(n > off + exp_len);
    assert_memory_equal(p + off, exp, exp_len);
    free(exp);
    off += exp_len + PV_SHA256_LEN;
    exp = tu_unhex("3a00011172 5820", &exp_len); /* measurement */
    assert_memory_equal(p + off, exp, exp_len);
    free(exp);
    off += exp_len + PV_SHA256_LEN;
    exp = tu_unhex("3a00011173 80 3a00011174 80", &exp_len); /* no events, no images */
    assert_int_equal(n, off + exp_len);
    assert_memory_equal(p + off, exp, exp_len);
    free(exp);
    pv_cose_sign1_free(cose);
    pv_buf_free(out);
}

/* Development mode, a software root of trust, no events or images, limits reached. */
static void test_round_trip_edges(void **state)
{
    fixture *f = *state;
    pv_evidence ev = f->ev;
    ev.development = true;
    ev.rot_kind = PV_ROT_SOFTWARE;
    ev.n_events = 0;
    ev.events = NULL;
    ev.n_images = 0;
    ev.images = NULL;
    ev.issued_at = INT64_MAX;
    ev.boot_count = UINT64_MAX;
    pv_buf *out = sign_ok(f, &ev);
    decode_verify_ok(pv_buf_data(out), pv_buf_len(out), &ev, f->key);
    pv_buf_free(out);

    /* 256 events (type at its 31-byte limit, some with data) and 64 images, version at
     * its limit: still within 64 KiB. */
    pv_rot_event *events = calloc(PV_ROT_MAX_EVENTS, sizeof(*events));
    pv_evidence_image *images = calloc(PV_EVIDENCE_MAX_IMAGES, sizeof(*images));
    static uint8_t data[100];
    assert_non_null(events);
    assert_non_null(images);
    for (size_t i = 0; i < PV_ROT_MAX_EVENTS; i++) {
        memset(events[i].type, 'a' + (int)(i % 26), PV_ROT_MAX_EVENT_TYPE);
        events[i].digest[0] = (uint8_t)i;
        events[i].data = i % 4 == 0 ? data : NULL;
        events[i].data_len = i % 4 == 0 ? sizeof(data) : 0;
    }
    for (size_t i = 0; i < PV_EVIDENCE_MAX_IMAGES; i++) {
        images[i] = f->images[i % 2];
        memset(images[i].version, '9', PV_EVIDENCE_MAX_VERSION);
        images[i].version[PV_EVIDENCE_MAX_VERSION] = '\0';
    }
    ev = f->ev;
    ev.events = events;
    ev.n_events = PV_ROT_MAX_EVENTS;
    ev.images = images;
    ev.n_images = PV_EVIDENCE_MAX_IMAGES;
    out = sign_ok(f, &ev);
    assert_true(pv_buf_len(out) <= PV_EVIDENCE_MAX_SIZE);
    decode_verify_ok(pv_buf_data(out), pv_buf_len(out), &ev, f->key);
    pv_buf_free(out);
    free(events);
    free(images);
}

/* The attestation key of a real software root of trust, through pv_rot_sign. */
static void test_round_trip_rot(void **state)
{
    fixture *f = *state;
    pv_rot *rot = NULL;
    pv_key *ak = NULL;
    pv_rot_event *log = NULL;
    size_t n_log = 0;
    pv_err e;
    char *state_dir = tu_path(f->dir, "state");
    pv_rot_config cfg = {.kind = PV_ROT_SOFTWARE, .state_dir = state_dir};
    uint8_t digest[PV_SHA256_LEN], replayed[PV_SHA256_LEN];

    pv_boot_id_set_override(BOOT_ID);
    int r = pv_rot_provision(&cfg, &rot, &e);
    if (r != PV_OK) {
        fail_msg("pv_rot_provision: %s", e.msg);
    }
    memset(digest, 0x5a, sizeof(digest));
    assert_int_equal(pv_rot_extend(rot, "os-image", digest, "os 1.0", 6, &e), PV_OK);
    memset(digest, 0xa5, sizeof(digest));
    assert_int_equal(pv_rot_extend(rot, "app-image", digest, NULL, 0, &e), PV_OK);

    pv_evidence ev = f->ev;
    ev.rot_kind = pv_rot_get_kind(rot);
    assert_int_equal(pv_rot_device_id(rot, ev.device_id, &e), PV_OK);
    assert_int_equal(pv_rot_read_measurement(rot, ev.measurement, &e), PV_OK);
    assert_int_equal(pv_rot_event_log(rot, &log, &n_log, &e), PV_OK);
    assert_int_equal(n_log, 2);
    ev.events = log;
    ev.n_events = n_log;
    assert_int_equal(pv_rot_attestation_key(rot, &ak, &e), PV_OK);

    pv_buf *out = pv_buf_new(PV_EVIDENCE_MAX_SIZE);
    assert_non_null(out);
    r = pv_evidence_sign(&ev, ak, rot_signer, rot, out, &e);
    if (r != PV_OK) {
        fail_msg("pv_evidence_sign through the root of trust: %s", e.msg);
    }
    decode_verify_ok(pv_buf_data(out), pv_buf_len(out), &ev, ak);

    /* What a verifier then checks: the log replays to the measurement. */
    pv_evidence got;
    pv_cose_sign1 *cose = NULL;
    assert_int_equal(pv_evidence_decode(pv_buf_data(out), pv_buf_len(out), &got, &cose, &e), PV_OK);
    pv_rot_replay(got.events, got.n_events, replayed);
    assert_memory_equal(replayed, got.measurement, PV_SHA256_LEN);
    assert_int_equal(got.rot_kind, PV_ROT_SOFTWARE);
    /* And another key does not verify it. */
    assert_int_equal(pv_evidence_verify(cose, f->key, &e), PV_ERR_SIGNATURE);
    pv_cose_sign1_free(cose);
    pv_evidence_free(&got);

    /* A signer whose key is not the attestation key named in the kid is caught at once. */
    pv_buf_reset(out);
    r = pv_evidence_sign(&ev, f->key, rot_signer, rot, out, &e);
    assert_int_equal(r, PV_ERR_SIGNATURE);
    assert_non_null(strstr(e.msg, "does not verify with the attestation key"));
    assert_int_equal(pv_buf_len(out), 0);

    pv_buf_free(out);
    pv_key_free(ak);
    pv_rot_events_free(log, n_log);
    pv_rot_close(rot);
    pv_boot_id_set_override(NULL);
    free(state_dir);
}

/* ---- sign refuses ---- */

static void test_sign_refuses(void **state)
{
    fixture *f = *state;
    pv_evidence ev;
    pv_rot_event events[PV_ROT_MAX_EVENTS + 1];
    pv_evidence_image images[PV_EVIDENCE_MAX_IMAGES + 1];
    static uint8_t big[PV_ROT_MAX_EVENT_DATA + 1];
    pv_buf *out = pv_buf_new(PV_EVIDENCE_MAX_SIZE);
    pv_err e;
    assert_non_null(out);

    /* arguments */
    assert_int_equal(pv_evidence_sign(NULL, f->key, key_signer, f->key, out, &e),
                     PV_ERR_INVALID_ARG);
    assert_int_equal(pv_evidence_sign(&f->ev, NULL, key_signer, f->key, out, &e),
                     PV_ERR_INVALID_ARG);
    assert_int_equal(pv_evidence_sign(&f->ev, f->key, NULL, f->key, out, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_evidence_sign(&f->ev, f->key, key_signer, f->key, NULL, &e),
                     PV_ERR_INVALID_ARG);
    /* the signer's error, passed on */
    assert_int_equal(pv_evidence_sign(&f->ev, f->key, failing_signer, NULL, out, &e), PV_ERR_ROT);
    assert_non_null(strstr(e.msg, "the TPM is on fire"));
    assert_int_equal(pv_buf_len(out), 0);
    /* a signer with another key */
    assert_int_equal(pv_evidence_sign(&f->ev, f->key, key_signer, f->other, out, &e),
                     PV_ERR_SIGNATURE);
    assert_int_equal(pv_buf_len(out), 0);
    pv_buf_free(out);

    /* device ID */
    const char *bad_ids[] = {
        "",
        "0123",
        DEVICE_ID "0", /* too long: 65 digits do not fit, cut below */
        "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
        "0123456789abcdeg0123456789abcdef0123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde ",
    };
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        ev = f->ev;
        memset(ev.device_id, 0, sizeof(ev.device_id));
        memcpy(ev.device_id, bad_ids[i],
               strlen(bad_ids[i]) < sizeof(ev.device_id) ? strlen(bad_ids[i])
                                                         : sizeof(ev.device_id));
        sign_fails(f, &ev, PV_ERR_FORMAT, "claim 256 (ueid): device ID is not 64 lowercase hex");
    }

    ev = f->ev;
    ev.issued_at = -1;
    sign_fails(f, &ev, PV_ERR_FORMAT, "claim 6 (iat): time -1 is negative");

    ev = f->ev;
    ev.rot_kind = (pv_rot_kind)0;
    sign_fails(f, &ev, PV_ERR_FORMAT, "claim -70001 (rot kind): kind 0 is neither");
    ev.rot_kind = (pv_rot_kind)3;
    sign_fails(f, &ev, PV_ERR_FORMAT, "claim -70001 (rot kind)");

    /* events */
    memset(events, 0, sizeof(events));
    for (size_t i = 0; i < PV_ROT_MAX_EVENTS + 1; i++) {
        snprintf(events[i].type, sizeof(events[i].type), "e");
    }
    ev = f->ev;
    ev.events = events;
    ev.n_events = PV_ROT_MAX_EVENTS + 1;
    sign_fails(f, &ev, PV_ERR_TOO_LARGE, "claim -70004 (event log): 257 events exceed 256");
    ev.events = NULL;
    ev.n_events = 1;
    sign_fails(f, &ev, PV_ERR_INVALID_ARG, "claim -70004 (event log)");
    ev.events = events;
    ev.n_events = 4;
    const char *bad_types[] = {"", "OS-image", "os_image", "os image", "os.image", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
        snprintf(events[3].type, sizeof(events[3].type), "%s", bad_types[i]);
        sign_fails(f, &ev, PV_ERR_FORMAT, "claim -70004 (event log): event 3: type");
    }
    memset(events[3].type, 'a', sizeof(events[3].type)); /* 32 bytes, no NUL */
    sign_fails(f, &ev, PV_ERR_TOO_LARGE, "event 3: type is longer than 31 bytes");
    snprintf(events[3].type, sizeof(events[3].type), "a-0");
    events[3].data = big;
    events[3].data_len = sizeof(big);
    sign_fails(f, &ev, PV_ERR_TOO_LARGE, "event 3: data of 1025 bytes exceeds 1024");
    events[3].data = NULL;
    events[3].data_len = 1;
    sign_fails(f, &ev, PV_ERR_INVALID_ARG, "event 3");
    events[3].data_len = 0;
    pv_buf *ok = sign_ok(f, &ev); /* the repaired event is fine */
    pv_buf_free(ok);

    /* images */
    ev = f->ev;
    for (size_t i = 0; i < PV_EVIDENCE_MAX_IMAGES + 1; i++) {
        images[i] = f->images[0];
    }
    ev.images = images;
    ev.n_images = PV_EVIDENCE_MAX_IMAGES + 1;
    sign_fails(f, &ev, PV_ERR_TOO_LARGE, "claim -70005 (images): 65 images exceed 64");
    ev.images = NULL;
    ev.n_images = 1;
    sign_fails(f, &ev, PV_ERR_INVALID_ARG, "claim -70005 (images)");
    ev.images = images;
    ev.n_images = 2;
    images[1].kind = (pv_evidence_image_kind)0;
    sign_fails(f, &ev, PV_ERR_FORMAT, "claim -70005 (images): image 1: kind 0 is neither");
    images[1].kind = (pv_evidence_image_kind)3;
    sign_fails(f, &ev, PV_ERR_FORMAT, "image 1: kind 3");
    images[1].kind = PV_EVIDENCE_IMAGE_APP;
    images[1].version[0] = '\0';
    sign_fails(f, &ev, PV_ERR_FORMAT, "image 1: version is empty");
    snprintf(images[1].version, sizeof(images[1].version), "1.0\xff");
    sign_fails(f, &ev, PV_ERR_FORMAT, "image 1: version is not valid UTF-8");
    snprintf(images[1].version, sizeof(images[1].version), "1.0\xc3");
    sign_fails(f, &ev, PV_ERR_FORMAT, "image 1: version is not valid UTF-8");
    memset(images[1].version, '1', sizeof(images[1].version)); /* 65 bytes, no NUL */
    sign_fails(f, &ev, PV_ERR_TOO_LARGE, "image 1: version is longer than 64 bytes");
}

/* Within every per-field limit, but over 64 KiB in all. */
static void test_sign_too_large(void **state)
{
    fixture *f = *state;
    pv_rot_event *events = calloc(PV_ROT_MAX_EVENTS, sizeof(*events));
    static uint8_t data[PV_ROT_MAX_EVENT_DATA];
    assert_non_null(events);
    for (size_t i = 0; i < PV_ROT_MAX_EVENTS; i++) {
        snprintf(events[i].type, sizeof(events[i].type), "e");
        events[i].data = data;
        events[i].data_len = sizeof(data);
    }
    pv_evidence ev = f->ev;
    ev.events = events;
    ev.n_events = PV_ROT_MAX_EVENTS;
    sign_fails(f, &ev, PV_ERR_TOO_LARGE, "would exceed 65536 bytes");
    /* The claims alone within 64 KiB, the COSE_Sign1 around them not: full events, then
     * one whose data takes the claims just past 64 KiB - 40. */
    mutation none = {0};
    size_t claims_len = 0;
    for (ev.n_events = 1; ev.n_events < PV_ROT_MAX_EVENTS; ev.n_events++) {
        pv_rot_event *last = &events[ev.n_events - 1];
        last->data_len = 0;
        pv_buf *claims = encode_claims(&ev, &none);
        size_t base = pv_buf_len(claims);
        pv_buf_free(claims);
        if (base + sizeof(data) + 3 <= PV_EVIDENCE_MAX_SIZE - 40) {
            last->data_len = sizeof(data);
            continue;
        }
        /* Data of d bytes adds d plus at most 2 bytes of head. */
        last->data_len = PV_EVIDENCE_MAX_SIZE - 40 - base - 2;
        for (;; last->data_len++) {
            claims = encode_claims(&ev, &none);
            claims_len = pv_buf_len(claims);
            pv_buf_free(claims);
            if (claims_len > PV_EVIDENCE_MAX_SIZE - 40) {
                break;
            }
        }
        break;
    }
    assert_true(claims_len > PV_EVIDENCE_MAX_SIZE - 40 && claims_len <= PV_EVIDENCE_MAX_SIZE);
    sign_fails(f, &ev, PV_ERR_TOO_LARGE, "evidence: the message would exceed 65536 bytes");
    /* and comfortably under: accepted */
    ev.n_events -= 2;
    pv_buf *out = sign_ok(f, &ev);
    assert_true(pv_buf_len(out) <= PV_EVIDENCE_MAX_SIZE);
    pv_buf_free(out);
    free(events);
}

/* ---- decode refuses ---- */

static void test_decode_truncated_and_trailing(void **state)
{
    fixture *f = *state;
    pv_buf *b = sign_ok(f, &f->ev);
    size_t len = pv_buf_len(b);
    for (size_t n = 0; n < len; n++) {
        decode_fails(pv_buf_data(b), n, 0, "evidence");
    }
    decode_fails(pv_buf_data(b), 20, PV_ERR_TRUNCATED, NULL);
    uint8_t *more = malloc(len + 1);
    assert_non_null(more);
    memcpy(more, pv_buf_data(b), len);
    more[len] = 0x00;
    decode_fails(more, len + 1, PV_ERR_FORMAT, "evidence: COSE_Sign1");
    free(more);
    pv_buf_free(b);

    /* over the size limit, before anything is parsed */
    uint8_t *huge = calloc(1, PV_EVIDENCE_MAX_SIZE + 1);
    assert_non_null(huge);
    decode_fails(huge, PV_EVIDENCE_MAX_SIZE + 1, PV_ERR_TOO_LARGE, "exceeds 65536");
    free(huge);
    decode_fails(NULL, 0, PV_ERR_TRUNCATED, NULL);

    pv_evidence ev;
    pv_cose_sign1 *cose = NULL;
    pv_err e;
    assert_int_equal(pv_evidence_decode(NULL, 5, &ev, &cose, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_evidence_decode((const uint8_t *)"", 0, NULL, &cose, &e),
                     PV_ERR_INVALID_ARG);
    assert_int_equal(pv_evidence_decode((const uint8_t *)"", 0, &ev, NULL, &e), PV_ERR_INVALID_ARG);
}

static void test_decode_keys(void **state)
{
    fixture *f = *state;
    mutation m;
    char want[128];

    m = (mutation){.extra = 7};
    crafted_fails(f, &m, PV_ERR_FORMAT, "evidence: claims: map key 7 is not allowed");
    m = (mutation){.extra = -70006};
    crafted_fails(f, &m, PV_ERR_FORMAT, "map key -70006 is not allowed");
    m = (mutation){.extra = 262}; /* an EAT claim Pavise does not use (oemid... ) */
    crafted_fails(f, &m, PV_ERR_FORMAT, "map key 262 is not allowed");
    m = (mutation){.twice = 10};
    crafted_fails(f, &m, PV_ERR_FORMAT, "map key 10 appears more than once");
    m = (mutation){.twice = -70005};
    crafted_fails(f, &m, PV_ERR_FORMAT, "map key -70005 appears more than once");

    const char *names[] = {"iat",         "eat_nonce", "ueid",     "dbgstat",
                           "eat_profile", "bootcount", "rot kind", "binding",
                           "measurement", "event log", "images"};
    for (size_t i = 0; i < N_CLAIMS; i++) {
        m = (mutation){.drop = claim_order[i]};
        snprintf(want, sizeof(want), "evidence: claim %lld (%s) is missing",
                 (long long)claim_order[i], names[i]);
        crafted_fails(f, &m, PV_ERR_FORMAT, want);
    }

    /* not a map at all; a text key */
    uint8_t kid[PV_KEY_ID_LEN];
    assert_int_equal(pv_key_id(f->key, kid), PV_OK);
    const char *payloads[] = {"80", "a1 6161 00", "0a", ""};
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        size_t n;
        uint8_t *p = tu_unhex(payloads[i], &n);
        pv_buf *b = wrap(f, p, n, PV_EVIDENCE_CONTENT_TYPE, kid, sizeof(kid), 0);
        decode_fails(pv_buf_data(b), pv_buf_len(b), 0, "evidence: claims");
        pv_buf_free(b);
        free(p);
    }
}

static void test_decode_types(void **state)
{
    fixture *f = *state;
    static const struct {
        int64_t key;
        const char *raw;
        int code;
        const char *want;
    } cases[] = {
        /* wrong types */
        {6, "6131", PV_ERR_FORMAT, "claim 6 (iat): expected an unsigned integer"},
        {6, "20", PV_ERR_FORMAT, "claim 6 (iat): expected an unsigned integer"},
        {6, "1b8000000000000000", PV_ERR_FORMAT,
         "claim 6 (iat): 9223372036854775808 is out of range"},
        {10, "00", PV_ERR_FORMAT, "claim 10 (eat_nonce): expected a byte string"},
        {256, "6131", PV_ERR_FORMAT, "claim 256 (ueid): expected a byte string"},
        {263, "f4", PV_ERR_FORMAT, "claim 263 (dbgstat): expected an unsigned integer"},
        {265, "4131", PV_ERR_FORMAT, "claim 265 (eat_profile): expected a text string"},
        {267, "20", PV_ERR_FORMAT, "claim 267 (bootcount): expected an unsigned integer"},
        {-70001, "01", PV_ERR_FORMAT, "claim -70001 (rot kind): expected a text string"},
        {-70002, "6131", PV_ERR_FORMAT, "claim -70002 (binding): expected a byte string"},
        {-70003, "f6", PV_ERR_FORMAT, "claim -70003 (measurement): expected a byte string"},
        {-70004, "a0", PV_ERR_FORMAT, "claim -70004 (event log): expected an array"},
        {-70005, "a0", PV_ERR_FORMAT, "claim -70005 (images): expected an array"},
        /* lengths */
        {10,
         "582f"
         "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
         "202122232425262728292a2b2c2d2e",
         PV_ERR_FORMAT, "claim 10 (eat_nonce): 47 bytes, expected 48"},
        {-70002, "40", PV_ERR_FORMAT, "claim -70002 (binding): 0 bytes, expected 32"},
        {-70003,
         "5821"
         "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
         PV_ERR_FORMAT, "claim -70003 (measurement): 33 bytes, expected 32"},
        /* ueid */
        {256,
         "5820"
         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
         PV_ERR_FORMAT, "claim 256 (ueid): 32 bytes, expected 33"},
        {256, "5821 02 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
         PV_ERR_FORMAT, "claim 256 (ueid): type byte 0x02, expected 0x01 (RAND)"},
        {256, "5822 01 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef 00",
         PV_ERR_FORMAT, "claim 256 (ueid): 34 bytes"},
        /* values */
        {263, "02", PV_ERR_FORMAT, "claim 263 (dbgstat): 2 is neither 0 (enabled) nor 1"},
        {265, "70 75726e3a7061766973653a6561743a32", PV_ERR_FORMAT,
         "claim 265 (eat_profile): 'urn:pavise:eat:2' is not urn:pavise:eat:1"},
        {265, "60", PV_ERR_FORMAT, "claim 265 (eat_profile)"},
        {-70001, "63 48534d", PV_ERR_FORMAT, "claim -70001 (rot kind): 'HSM' is neither"},
        {-70001, "63 54504d", PV_ERR_FORMAT, "claim -70001 (rot kind): 'TPM' is neither"},
        /* events */
        {-70004, "81 82 6161 5820 0000000000000000000000000000000000000000000000000000000000000000",
         PV_ERR_FORMAT,
         "claim -70004 (event log): event 0: expected an array [type, digest, data]"},
        {-70004,
         "81 83 4161 5820 0000000000000000000000000000000000000000000000000000000000000000 40",
         PV_ERR_FORMAT, "event 0: type: expected a text string"},
        {-70004,
         "81 83 6161 581f 00000000000000000000000000000000000000000000000000000000000000 40",
         PV_ERR_FORMAT, "claim -70004 (event log): event 0: digest: 31 bytes, expected 32"},
        {-70004,
         "81 83 6161 5820 0000000000000000000000000000000000000000000000000000000000000000 60",
         PV_ERR_FORMAT, "event 0: data: expected a byte string"},
        {-70004,
         "81 83 60 5820 0000000000000000000000000000000000000000000000000000000000000000 40",
         PV_ERR_FORMAT, "event 0: type is empty"},
        {-70004,
         "81 83 6141 5820 0000000000000000000000000000000000000000000000000000000000000000 40",
         PV_ERR_FORMAT, "event 0: type has a character outside [a-z0-9-]"},
        {-70004,
         "81 83 7820 6161616161616161616161616161616161616161616161616161616161616161"
         " 5820 0000000000000000000000000000000000000000000000000000000000000000 40",
         PV_ERR_TOO_LARGE, "event 0: type: text string of 32 bytes exceeds the limit of 31"},
        {-70004,
         "81 83 6161 5820 0000000000000000000000000000000000000000000000000000000000000000 "
         "81 40",
         PV_ERR_FORMAT, "evidence: claims"}, /* nested deeper than the format allows */
        /* images */
        {-70005, "81 80", PV_ERR_FORMAT, "claim -70005 (images): image 0: expected a map"},
        {-70005, "81 a1 06 00", PV_ERR_FORMAT, "image 0: map key 6 is not allowed"},
        {-70005, "81 a1 01 626f73", PV_ERR_FORMAT, "image 0: image ID (2) is missing"},
        {-70005,
         "81 a5 01 626f73 02 50 11111111111111111111111111111111"
         " 03 50 12121212121212121212121212121212 04 63 312e30"
         " 05 5820 1313131313131313131313131313131313131313131313131313131313131313",
         -1, NULL}, /* valid: the base for the ones below */
        {-70005,
         "81 a5 01 636c6962 02 50 11111111111111111111111111111111"
         " 03 50 12121212121212121212121212121212 04 63 312e30"
         " 05 5820 1313131313131313131313131313131313131313131313131313131313131313",
         PV_ERR_FORMAT, "image 0: kind (1): 'lib' is neither 'os' nor 'app'"},
        {-70005,
         "81 a5 01 626f73 02 4f 111111111111111111111111111111"
         " 03 50 12121212121212121212121212121212 04 63 312e30"
         " 05 5820 1313131313131313131313131313131313131313131313131313131313131313",
         PV_ERR_FORMAT, "image 0: image ID (2): 15 bytes, expected 16"},
        {-70005,
         "81 a5 01 626f73 02 50 11111111111111111111111111111111"
         " 03 6131 04 63 312e30"
         " 05 5820 1313131313131313131313131313131313131313131313131313131313131313",
         PV_ERR_FORMAT, "image 0: component ID (3): expected a byte string"},
        {-70005,
         "81 a5 01 626f73 02 50 11111111111111111111111111111111"
         " 03 50 12121212121212121212121212121212 04 60"
         " 05 5820 1313131313131313131313131313131313131313131313131313131313131313",
         PV_ERR_FORMAT, "image 0: version is empty"},
        {-70005,
         "81 a5 01 626f73 02 50 11111111111111111111111111111111"
         " 03 50 12121212121212121212121212121212 04 7841"
         " 3131313131313131313131313131313131313131313131313131313131313131"
         " 3131313131313131313131313131313131313131313131313131313131313131 31"
         " 05 5820 1313131313131313131313131313131313131313131313131313131313131313",
         PV_ERR_TOO_LARGE, "image 0: version (4): text string of 65 bytes exceeds the limit of 64"},
        {-70005,
         "81 a5 01 626f73 02 50 11111111111111111111111111111111"
         " 03 50 12121212121212121212121212121212 04 63 312e00"
         " 05 5820 1313131313131313131313131313131313131313131313131313131313131313",
         PV_ERR_FORMAT, "image 0: version (4): text string contains a NUL byte"},
        {-70005,
         "81 a5 01 626f73 02 50 11111111111111111111111111111111"
         " 03 50 12121212121212121212121212121212 04 63 312e30"
         " 05 4101",
         PV_ERR_FORMAT, "image 0: manifest digest (5): 1 bytes, expected 32"},
        {-70005,
         "81 a6 01 626f73 02 50 11111111111111111111111111111111"
         " 03 50 12121212121212121212121212121212 04 63 312e30"
         " 05 5820 1313131313131313131313131313131313131313131313131313131313131313 01 626f73",
         PV_ERR_FORMAT, "image 0: map key 1 appears more than once"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mutation m = {.replace = cases[i].key, .raw_hex = cases[i].raw};
        if (cases[i].code == -1) {
            pv_evidence ev;
            pv_cose_sign1 *cose = NULL;
            pv_err e;
            pv_buf *b = craft(f, &f->ev, &m);
            int r = pv_evidence_decode(pv_buf_data(b), pv_buf_len(b), &ev, &cose, &e);
            if (r != PV_OK) {
                fail_msg("case %zu: %s", i, e.msg);
            }
            assert_int_equal(ev.n_images, 1);
            assert_string_equal(ev.images[0].version, "1.0");
            pv_evidence_free(&ev);
            pv_cose_sign1_free(cose);
            pv_buf_free(b);
            continue;
        }
        crafted_fails(f, &m, cases[i].code, cases[i].want);
    }
}

static void test_decode_oversized_arrays(void **state)
{
    fixture *f = *state;
    pv_rot_event *events = calloc(PV_ROT_MAX_EVENTS + 1, sizeof(*events));
    pv_evidence_image *images = calloc(PV_EVIDENCE_MAX_IMAGES + 1, sizeof(*images));
    static uint8_t big[PV_ROT_MAX_EVENT_DATA + 1];
    mutation none = {0};
    assert_non_null(events);
    assert_non_null(images);
    for (size_t i = 0; i < PV_ROT_MAX_EVENTS + 1; i++) {
        snprintf(events[i].type, sizeof(events[i].type), "e");
    }
    for (size_t i = 0; i < PV_EVIDENCE_MAX_IMAGES + 1; i++) {
        images[i] = f->images[0];
    }
    pv_evidence ev = f->ev;
    ev.events = events;
    ev.n_events = PV_ROT_MAX_EVENTS + 1;
    pv_buf *b = craft(f, &ev, &none);
    decode_fails(pv_buf_data(b), pv_buf_len(b), PV_ERR_TOO_LARGE,
                 "claim -70004 (event log): 257 events exceed 256");
    pv_buf_free(b);

    ev = f->ev;
    ev.images = images;
    ev.n_images = PV_EVIDENCE_MAX_IMAGES + 1;
    b = craft(f, &ev, &none);
    decode_fails(pv_buf_data(b), pv_buf_len(b), PV_ERR_TOO_LARGE,
                 "claim -70005 (images): 65 images exceed 64");
    pv_buf_free(b);

    ev = f->ev;
    ev.events = events;
    ev.n_events = 3;
    events[2].data = big;
    events[2].data_len = sizeof(big);
    b = craft(f, &ev, &none);
    decode_fails(pv_buf_data(b), pv_buf_len(b), PV_ERR_TOO_LARGE,
                 "claim -70004 (event log): event 2: data of 1025 bytes exceeds 1024");
    pv_buf_free(b);
    free(events);
    free(images);
}

static void test_decode_envelope(void **state)
{
    fixture *f = *state;
    uint8_t kid[PV_KEY_ID_LEN];
    mutation none = {0};
    assert_int_equal(pv_key_id(f->key, kid), PV_OK);
    pv_buf *claims = encode_claims(&f->ev, &none);
    const uint8_t *p = pv_buf_data(claims);
    size_t n = pv_buf_len(claims);
    pv_buf *b;

    b = wrap(f, p, n, "application/cbor", kid, sizeof(kid), 0);
    decode_fails(pv_buf_data(b), pv_buf_len(b), PV_ERR_FORMAT,
                 "evidence: COSE content type is not 'application/vnd.pavise.eat+cbor; v=1'");
    pv_buf_free(b);
    b = wrap(f, p, n, "application/vnd.pavise.eat+cbor; v=2", kid, sizeof(kid), 0);
    decode_fails(pv_buf_data(b), pv_buf_len(b), PV_ERR_FORMAT, "COSE content type");
    pv_buf_free(b);
    b = wrap(f, p, n, NULL, kid, sizeof(kid), 0);
    decode_fails(pv_buf_data(b), pv_buf_len(b), PV_ERR_FORMAT, "COSE content type");
    pv_buf_free(b);
    b = wrap(f, p, n, PV_EVIDENCE_CONTENT_TYPE, kid, 31, 0);
    decode_fails(pv_buf_data(b), pv_buf_len(b), PV_ERR_FORMAT,
                 "evidence: COSE kid is 31 bytes, expected 32");
    pv_buf_free(b);
    b = wrap(f, p, n, PV_EVIDENCE_CONTENT_TYPE, NULL, 0, 0);
    decode_fails(pv_buf_data(b), pv_buf_len(b), PV_ERR_FORMAT, "COSE kid is 0 bytes");
    pv_buf_free(b);
    b = wrap(f, p, n, PV_EVIDENCE_CONTENT_TYPE, kid, sizeof(kid), PV_COSE_DETACHED);
    decode_fails(pv_buf_data(b), pv_buf_len(b), PV_ERR_FORMAT, "does not carry the claims");
    pv_buf_free(b);

    /* untagged: the tag is required */
    b = wrap(f, p, n, PV_EVIDENCE_CONTENT_TYPE, kid, sizeof(kid), 0);
    assert_int_equal(pv_buf_data(b)[0], 0xd2);
    decode_fails(pv_buf_data(b) + 1, pv_buf_len(b) - 1, PV_ERR_FORMAT, "tag 18 is required");
    /* the claims bare, without COSE */
    decode_fails(p, n, PV_ERR_FORMAT, "evidence: COSE_Sign1");
    pv_buf_free(b);
    pv_buf_free(claims);
}

/* ---- verify ---- */

static void test_verify(void **state)
{
    fixture *f = *state;
    pv_buf *b = sign_ok(f, &f->ev);
    pv_evidence ev;
    pv_cose_sign1 *cose = NULL;
    pv_err e;
    size_t len = pv_buf_len(b);
    uint8_t *msg = malloc(len);
    assert_non_null(msg);

    assert_int_equal(pv_evidence_decode(pv_buf_data(b), len, &ev, &cose, &e), PV_OK);
    assert_int_equal(pv_evidence_verify(cose, f->key, &e), PV_OK);
    assert_int_equal(pv_evidence_verify(cose, f->other, &e), PV_ERR_SIGNATURE);
    assert_non_null(strstr(e.msg, "kid is not the ID of the attestation key"));
    assert_int_equal(pv_evidence_verify(NULL, f->key, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_evidence_verify(cose, NULL, &e), PV_ERR_INVALID_ARG);
    pv_cose_sign1_free(cose);
    pv_evidence_free(&ev);

    /* A byte of the nonce changed: still well-formed, no longer signed. */
    memcpy(msg, pv_buf_data(b), len);
    uint8_t *nonce = memmem(msg, len, f->ev.nonce, PV_NONCE_LEN);
    assert_non_null(nonce);
    nonce[7] ^= 0x01;
    assert_int_equal(pv_evidence_decode(msg, len, &ev, &cose, &e), PV_OK);
    assert_int_equal(ev.nonce[7], f->ev.nonce[7] ^ 0x01);
    assert_int_equal(pv_evidence_verify(cose, f->key, &e), PV_ERR_SIGNATURE);
    assert_non_null(strstr(e.msg, "signature does not verify with the attestation key"));
    pv_cose_sign1_free(cose);
    pv_evidence_free(&ev);

    /* The boot count (a uint inside the map) changed. */
    memcpy(msg, pv_buf_data(b), len);
    static const uint8_t bootcount[] = {0x19, 0x01, 0x0b, 0x18, 42};
    uint8_t *bc = memmem(msg, len, bootcount, sizeof(bootcount));
    assert_non_null(bc);
    bc[4] = 43;
    assert_int_equal(pv_evidence_decode(msg, len, &ev, &cose, &e), PV_OK);
    assert_int_equal(ev.boot_count, 43);
    assert_int_equal(pv_evidence_verify(cose, f->key, &e), PV_ERR_SIGNATURE);
    pv_cose_sign1_free(cose);
    pv_evidence_free(&ev);

    /* Signature bytes changed (the last bytes of the message are s). */
    for (size_t k = 1; k <= PV_ES256_SIG_LEN; k += 21) {
        memcpy(msg, pv_buf_data(b), len);
        msg[len - k] ^= 0x80;
        assert_int_equal(pv_evidence_decode(msg, len, &ev, &cose, &e), PV_OK);
        assert_int_equal(pv_evidence_verify(cose, f->key, &e), PV_ERR_SIGNATURE);
        pv_cose_sign1_free(cose);
        pv_evidence_free(&ev);
    }

    /* The right key's signature, but the kid names another key. */
    uint8_t other_kid[PV_KEY_ID_LEN];
    mutation none = {0};
    pv_buf *claims = encode_claims(&f->ev, &none);
    assert_int_equal(pv_key_id(f->other, other_kid), PV_OK);
    pv_buf *w = wrap(f, pv_buf_data(claims), pv_buf_len(claims), PV_EVIDENCE_CONTENT_TYPE,
                     other_kid, sizeof(other_kid), 0);
    assert_int_equal(pv_evidence_decode(pv_buf_data(w), pv_buf_len(w), &ev, &cose, &e), PV_OK);
    assert_memory_equal(ev.signer_key_id, other_kid, PV_KEY_ID_LEN);
    assert_int_equal(pv_evidence_verify(cose, f->key, &e), PV_ERR_SIGNATURE);
    pv_cose_sign1_free(cose);
    pv_evidence_free(&ev);
    pv_buf_free(w);

    /* A COSE_Sign1 the attestation key made for something else is not evidence. */
    uint8_t kid[PV_KEY_ID_LEN];
    assert_int_equal(pv_key_id(f->key, kid), PV_OK);
    w = wrap(f, pv_buf_data(claims), pv_buf_len(claims), "application/cbor", kid, sizeof(kid), 0);
    assert_int_equal(pv_cose_sign1_decode(pv_buf_data(w), pv_buf_len(w), 0, &cose, &e), PV_OK);
    assert_int_equal(pv_evidence_verify(cose, f->key, &e), PV_ERR_SIGNATURE);
    pv_cose_sign1_free(cose);
    pv_buf_free(w);

    pv_buf_free(claims);
    free(msg);
    pv_buf_free(b);
}

/* ---- the COSE signer variant evidence signs through ---- */

static void test_cose_with_signer(void **state)
{
    fixture *f = *state;
    pv_buf *a = pv_buf_new(4096), *b = pv_buf_new(4096);
    pv_cose_sign1 *ma = NULL, *mb = NULL;
    pv_err e;
    static const uint8_t payload[] = "payload", kid[] = "kid";
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(
        pv_cose_sign1_create(f->key, kid, 3, "text/plain", payload, 7, NULL, 0, 0, a, &e), PV_OK);
    assert_int_equal(pv_cose_sign1_create_with_signer(kid, 3, "text/plain", payload, 7, NULL, 0, 0,
                                                      key_signer, f->key, b, &e),
                     PV_OK);
    /* The same message but for the (randomized) signature, and both verify. */
    assert_int_equal(pv_buf_len(a), pv_buf_len(b));
    assert_memory_equal(pv_buf_data(a), pv_buf_data(b), pv_buf_len(a) - PV_ES256_SIG_LEN);
    assert_int_equal(pv_cose_sign1_decode(pv_buf_data(a), pv_buf_len(a), 0, &ma, &e), PV_OK);
    assert_int_equal(pv_cose_sign1_decode(pv_buf_data(b), pv_buf_len(b), 0, &mb, &e), PV_OK);
    assert_int_equal(pv_cose_sign1_verify(ma, f->key, NULL, 0, NULL, 0, &e), PV_OK);
    assert_int_equal(pv_cose_sign1_verify(mb, f->key, NULL, 0, NULL, 0, &e), PV_OK);
    pv_cose_sign1_free(ma);
    pv_cose_sign1_free(mb);

    /* No signer; the signer's error passed on, nothing written. */
    pv_buf_reset(b);
    assert_int_equal(
        pv_cose_sign1_create_with_signer(kid, 3, NULL, payload, 7, NULL, 0, 0, NULL, NULL, b, &e),
        PV_ERR_INVALID_ARG);
    assert_int_equal(pv_cose_sign1_create_with_signer(kid, 3, NULL, payload, 7, NULL, 0, 0,
                                                      failing_signer, NULL, b, &e),
                     PV_ERR_ROT);
    assert_string_equal(e.msg, "COSE_Sign1: the TPM is on fire");
    assert_int_equal(pv_buf_len(b), 0);
    assert_int_equal(pv_cose_sign1_create(NULL, kid, 3, NULL, payload, 7, NULL, 0, 0, b, &e),
                     PV_ERR_INVALID_ARG);
    pv_buf_free(a);
    pv_buf_free(b);
}

/* ---- binding ---- */

static void test_binding(void **state)
{
    (void)state;
    uint8_t nonce[PV_NONCE_LEN], out[PV_SHA256_LEN], h[PV_SHA256_LEN],
        cat[PV_NONCE_LEN + PV_SHA256_LEN], want[PV_SHA256_LEN];
    size_t spki_len, exp_len;
    uint8_t *spki = tu_unhex(fixed_spki_hex, &spki_len);
    for (size_t i = 0; i < sizeof(nonce); i++) {
        nonce[i] = (uint8_t)i;
    }
    /* SHA-256(nonce || SHA-256(spki)), composed here from the one-shot digest. */
    assert_int_equal(pv_sha256_digest(spki, spki_len, h), PV_OK);
    memcpy(cat, nonce, PV_NONCE_LEN);
    memcpy(cat + PV_NONCE_LEN, h, PV_SHA256_LEN);
    assert_int_equal(pv_sha256_digest(cat, sizeof(cat), want), PV_OK);
    assert_int_equal(pv_evidence_binding(nonce, spki, spki_len, out), PV_OK);
    assert_memory_equal(out, want, PV_SHA256_LEN);
    /* and the value computed outside Pavise (Python hashlib) */
    uint8_t *exp =
        tu_unhex("c1d475bbe9acba8b82f9ac0701af615720a366878ae98a31a88ed3a5b66a7ea3", &exp_len);
    assert_memory_equal(out, exp, PV_SHA256_LEN);
    free(exp);

    /* any other nonce or key gives another binding */
    nonce[47] ^= 1;
    assert_int_equal(pv_evidence_binding(nonce, spki, spki_len, h), PV_OK);
    assert_memory_not_equal(h, out, PV_SHA256_LEN);
    nonce[47] ^= 1;
    spki[spki_len - 1] ^= 1;
    assert_int_equal(pv_evidence_binding(nonce, spki, spki_len, h), PV_OK);
    assert_memory_not_equal(h, out, PV_SHA256_LEN);

    memset(out, 0xff, sizeof(out));
    assert_int_equal(pv_evidence_binding(NULL, spki, spki_len, out), PV_ERR_INVALID_ARG);
    assert_true(pv_ct_equal(out, (uint8_t[PV_SHA256_LEN]){0}, PV_SHA256_LEN));
    assert_int_equal(pv_evidence_binding(nonce, NULL, 5, out), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_evidence_binding(nonce, spki, 0, out), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_evidence_binding(nonce, spki, spki_len, NULL), PV_ERR_INVALID_ARG);
    free(spki);
}

/* The public half of the fixed key is what fuzz_evidence.c verifies against. */
static void test_fixed_key(void **state)
{
    fixture *f = *state;
    pv_buf *der = pv_buf_new(256);
    size_t n;
    uint8_t *want = tu_unhex(fixed_spki_hex, &n);
    assert_int_equal(pv_key_spki_der(f->key, der), PV_OK);
    assert_int_equal(pv_buf_len(der), n);
    assert_memory_equal(pv_buf_data(der), want, n);
    free(want);
    pv_buf_free(der);
}

/* With PV_EVIDENCE_CORPUS_OUT=dir set, writes the seeds of tests/fuzz/corpus/evidence. */
static void test_write_corpus(void **state)
{
    fixture *f = *state;
    const char *dir = getenv("PV_EVIDENCE_CORPUS_OUT");
    if (dir == NULL || dir[0] == '\0') {
        skip();
    }
    pv_evidence dev = f->ev, bare = f->ev;
    dev.development = true;
    dev.rot_kind = PV_ROT_SOFTWARE;
    bare.n_events = 0;
    bare.n_images = 0;
    struct {
        const char *name;
        const pv_evidence *ev;
        mutation m;
        bool crafted;
    } seeds[] = {
        {"tpm", &f->ev, {0}, false},
        {"software-development", &dev, {0}, false},
        {"no-events-no-images", &bare, {0}, false},
        {"unknown-claim", &f->ev, {.extra = 7}, true},
        {"missing-nonce", &f->ev, {.drop = 10}, true},
        {"bad-ueid", &f->ev, {.replace = 256, .raw_hex = "4102"}, true},
    };
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        pv_buf *b = seeds[i].crafted ? craft(f, seeds[i].ev, &seeds[i].m) : sign_ok(f, seeds[i].ev);
        char *path = tu_path(dir, seeds[i].name);
        tu_write(path, pv_buf_data(b), pv_buf_len(b), 0644);
        free(path);
        pv_buf_free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_with_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claims_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_rot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decode_truncated_and_trailing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decode_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decode_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decode_oversized_arrays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decode_envelope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cose_with_signer, setup, teardown),
        cmocka_unit_test(test_binding),
        cmocka_unit_test_setup_teardown(test_fixed_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_corpus, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
