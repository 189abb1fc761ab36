/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pv_quote_verify (src/lib/quote.c) without a TPM: each quote is a TPMS_ATTEST built
 * here, marshaled with tpm2-tss and signed with a software P-256 key, so the verifier's
 * checks are exercised one at a time, including quotes a TPM could sign but that are
 * not the quote we asked for (another selection, another attestation type).
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include <tss2/tss2_mu.h>

#include "pavise/crypto.h"
#include "pavise/quote.h"

#define PCR 13

typedef struct fx {
    pv_key *ak;
    pv_key *other;
    uint8_t qualifying[PV_SHA256_LEN];
    uint8_t pcr_value[PV_SHA256_LEN];
} fx;

/* A quote as it is signed and sent. */
typedef struct quote {
    uint8_t attest[PV_QUOTE_MAX_ATTEST + 16];
    size_t len;
    uint8_t sig[PV_ES256_SIG_LEN];
} quote;

static void must(int r, int want, const pv_err *e)
{
    if (r != want) {
        fail_msg("got %d, want %d: %s", r, want, pv_err_msg(e));
    }
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    pv_err e = {0};
    must(pv_key_generate(&f->ak, &e), PV_OK, &e);
    must(pv_key_generate(&f->other, &e), PV_OK, &e);
    for (size_t i = 0; i < PV_SHA256_LEN; i++) {
        f->qualifying[i] = (uint8_t)(0xa0 + i);
        f->pcr_value[i] = (uint8_t)(7 * i + 1);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    pv_key_free(f->ak);
    pv_key_free(f->other);
    free(f);
    return 0;
}

/* The quote a TPM would make for f: SHA-256 {PCR}, extraData = qualifying, pcrDigest =
 * SHA-256(pcr_value), with a plausible signer name and clock. */
static void good_attest(const fx *f, TPMS_ATTEST *a)
{
    memset(a, 0, sizeof(*a));
    a->magic = TPM2_GENERATED_VALUE;
    a->type = TPM2_ST_ATTEST_QUOTE;
    a->qualifiedSigner.size = 34; /* nameAlg (2) || SHA-256 */
    a->qualifiedSigner.name[0] = 0x00;
    a->qualifiedSigner.name[1] = 0x0b;
    memset(a->qualifiedSigner.name + 2, 0x42, 32);
    a->extraData.size = PV_SHA256_LEN;
    memcpy(a->extraData.buffer, f->qualifying, PV_SHA256_LEN);
    a->clockInfo.clock = 0x0102030405060708ull;
    a->clockInfo.resetCount = 9;
    a->clockInfo.restartCount = 2;
    a->clockInfo.safe = TPM2_YES;
    a->firmwareVersion = 0x2019082300163636ull;
    TPML_PCR_SELECTION *sel = &a->attested.quote.pcrSelect;
    sel->count = 1;
    sel->pcrSelections[0].hash = TPM2_ALG_SHA256;
    sel->pcrSelections[0].sizeofSelect = 3;
    sel->pcrSelections[0].pcrSelect[PCR / 8] = 1u << (PCR % 8);
    a->attested.quote.pcrDigest.size = PV_SHA256_LEN;
    assert_int_equal(
        pv_sha256_digest(f->pcr_value, PV_SHA256_LEN, a->attested.quote.pcrDigest.buffer), PV_OK);
}

/* Marshals a and signs it with k. */
static void seal(const TPMS_ATTEST *a, const pv_key *k, quote *q)
{
    pv_err e = {0};
    q->len = 0;
    assert_int_equal(Tss2_MU_TPMS_ATTEST_Marshal(a, q->attest, sizeof(q->attest), &q->len),
                     TSS2_RC_SUCCESS);
    must(pv_key_sign_es256(k, q->attest, q->len, q->sig, &e), PV_OK, &e);
}

static int check(const fx *f, const quote *q, pv_quote_info *info, pv_err *e)
{
    return pv_quote_verify(q->attest, q->len, q->sig, f->ak, f->qualifying, PCR, f->pcr_value, info,
                           e);
}

/* Signs a and expects `want` with a message containing `needle` (may be NULL). */
static void expect(const fx *f, const TPMS_ATTEST *a, int want, const char *needle)
{
    quote q;
    pv_err e = {0};
    pv_quote_info info;
    seal(a, f->ak, &q);
    memset(&info, 0xee, sizeof(info));
    must(check(f, &q, &info, &e), want, &e);
    if (needle != NULL && strstr(e.msg, needle) == NULL) {
        fail_msg("message \"%s\" does not mention \"%s\"", e.msg, needle);
    }
    if (want != PV_OK) {
        /* Nothing from a refused quote is handed out. */
        static const pv_quote_info zero;
        assert_memory_equal(&info, &zero, sizeof(zero));
    }
}

static void test_good(void **state)
{
    fx *f = *state;
    TPMS_ATTEST a;
    quote q;
    pv_err e = {0};
    pv_quote_info info;
    good_attest(f, &a);
    seal(&a, f->ak, &q);
    must(check(f, &q, &info, &e), PV_OK, &e);
    assert_int_equal(info.clock, 0x0102030405060708ull);
    assert_int_equal(info.reset_count, 9);
    assert_int_equal(info.restart_count, 2);
    assert_int_equal(info.firmware_version, 0x2019082300163636ull);
    must(pv_quote_verify(q.attest, q.len, q.sig, f->ak, f->qualifying, PCR, f->pcr_value, NULL, &e),
         PV_OK, &e);
}

/* The bitmap's edges: PCR 0 and PCR 23. */
static void test_other_pcrs_verify_when_asked(void **state)
{
    fx *f = *state;
    unsigned pcrs[] = {0, 7, 8, 23};
    for (size_t i = 0; i < sizeof(pcrs) / sizeof(pcrs[0]); i++) {
        TPMS_ATTEST a;
        quote q;
        pv_err e = {0};
        good_attest(f, &a);
        TPMS_PCR_SELECTION *s = &a.attested.quote.pcrSelect.pcrSelections[0];
        memset(s->pcrSelect, 0, sizeof(s->pcrSelect));
        s->pcrSelect[pcrs[i] / 8] = (uint8_t)(1u << (pcrs[i] % 8));
        seal(&a, f->ak, &q);
        must(pv_quote_verify(q.attest, q.len, q.sig, f->ak, f->qualifying, pcrs[i], f->pcr_value,
                             NULL, &e),
             PV_OK, &e);
        /* and fail as a quote of PV_ROT_PCR */
        must(check(f, &q, NULL, &e), PV_ERR_FORMAT, &e);
    }
}

static void test_wrong_selection(void **state)
{
    fx *f = *state;
    TPMS_ATTEST a;
    TPML_PCR_SELECTION *sel = &a.attested.quote.pcrSelect;
    TPMS_PCR_SELECTION *s = &sel->pcrSelections[0];

    /* Two PCRs, 13 and 14: their digest is over both values. */
    good_attest(f, &a);
    s->pcrSelect[1] |= 0x40;
    expect(f, &a, PV_ERR_FORMAT, "other PCRs");
    /* Two PCRs, 13 and 0 in another byte. */
    good_attest(f, &a);
    s->pcrSelect[0] = 0x01;
    expect(f, &a, PV_ERR_FORMAT, "other PCRs");
    /* Another PCR. */
    good_attest(f, &a);
    s->pcrSelect[1] = 1u << (12 % 8);
    expect(f, &a, PV_ERR_FORMAT, "other PCRs");
    /* No PCR at all. */
    good_attest(f, &a);
    s->pcrSelect[1] = 0;
    expect(f, &a, PV_ERR_FORMAT, "other PCRs");
    /* Another bank: SHA-1 and SHA-384. */
    good_attest(f, &a);
    s->hash = TPM2_ALG_SHA1;
    expect(f, &a, PV_ERR_FORMAT, "SHA-256");
    good_attest(f, &a);
    s->hash = TPM2_ALG_SHA384;
    expect(f, &a, PV_ERR_FORMAT, "SHA-256");
    /* The same PCR in two banks. */
    good_attest(f, &a);
    sel->count = 2;
    sel->pcrSelections[1] = *s;
    sel->pcrSelections[1].hash = TPM2_ALG_SHA1;
    expect(f, &a, PV_ERR_FORMAT, "banks");
    /* SHA-256 selected twice. */
    good_attest(f, &a);
    sel->count = 2;
    sel->pcrSelections[1] = *s;
    expect(f, &a, PV_ERR_FORMAT, "banks");
    /* No selection. */
    good_attest(f, &a);
    sel->count = 0;
    expect(f, &a, PV_ERR_FORMAT, "banks");
    /* A 4-byte bitmap (PCR 13 set, the rest zero) and a 2-byte one. */
    good_attest(f, &a);
    s->sizeofSelect = 4;
    expect(f, &a, PV_ERR_FORMAT, "bitmap");
    good_attest(f, &a);
    s->sizeofSelect = 2;
    expect(f, &a, PV_ERR_FORMAT, "bitmap");
}

static void test_wrong_type(void **state)
{
    fx *f = *state;
    TPMS_ATTEST a;
    /* TPM2_Certify with the same key: a genuine TPM signature over another statement. */
    good_attest(f, &a);
    a.type = TPM2_ST_ATTEST_CERTIFY;
    memset(&a.attested, 0, sizeof(a.attested));
    a.attested.certify.name.size = 34;
    a.attested.certify.qualifiedName.size = 34;
    expect(f, &a, PV_ERR_FORMAT, "not a quote");
    good_attest(f, &a);
    a.type = TPM2_ST_ATTEST_TIME;
    memset(&a.attested, 0, sizeof(a.attested));
    expect(f, &a, PV_ERR_FORMAT, "not a quote");
    good_attest(f, &a);
    a.type = TPM2_ST_ATTEST_NV;
    memset(&a.attested, 0, sizeof(a.attested));
    expect(f, &a, PV_ERR_FORMAT, "not a quote");
}

static void test_wrong_magic(void **state)
{
    fx *f = *state;
    TPMS_ATTEST a;
    uint32_t magics[] = {0, TPM2_GENERATED_VALUE ^ 1, 0x47435446, 0xffffffff};
    for (size_t i = 0; i < sizeof(magics) / sizeof(magics[0]); i++) {
        good_attest(f, &a);
        a.magic = magics[i];
        expect(f, &a, PV_ERR_FORMAT, "TPM_GENERATED_VALUE");
    }
}

/* Fields of the right shape but other values: the TPM signed them, they are not ours. */
static void test_wrong_values(void **state)
{
    fx *f = *state;
    TPMS_ATTEST a;
    good_attest(f, &a);
    a.extraData.buffer[0] ^= 1;
    expect(f, &a, PV_ERR_SIGNATURE, "qualifying");
    good_attest(f, &a);
    a.attested.quote.pcrDigest.buffer[31] ^= 1;
    expect(f, &a, PV_ERR_SIGNATURE, "PCR 13");
    /* The PCR value itself in place of its digest. */
    good_attest(f, &a);
    memcpy(a.attested.quote.pcrDigest.buffer, f->pcr_value, PV_SHA256_LEN);
    expect(f, &a, PV_ERR_SIGNATURE, "PCR 13");
}

static void test_wrong_sizes(void **state)
{
    fx *f = *state;
    TPMS_ATTEST a;
    /* A 20-byte qualifying value (a SHA-1 nonce), and none. */
    good_attest(f, &a);
    a.extraData.size = 20;
    expect(f, &a, PV_ERR_FORMAT, "qualifying data is 20 bytes");
    good_attest(f, &a);
    a.extraData.size = 0;
    expect(f, &a, PV_ERR_FORMAT, "qualifying data is 0 bytes");
    /* A SHA-384 PCR digest. */
    good_attest(f, &a);
    a.attested.quote.pcrDigest.size = 48;
    expect(f, &a, PV_ERR_FORMAT, "PCR digest is 48 bytes");
    /* The largest signer name still fits the limit and verifies. */
    good_attest(f, &a);
    a.qualifiedSigner.size = sizeof(a.qualifiedSigner.name);
    expect(f, &a, PV_OK, NULL);
}

static void test_wrong_key_and_signature(void **state)
{
    fx *f = *state;
    TPMS_ATTEST a;
    quote q;
    pv_err e = {0};
    good_attest(f, &a);
    /* Signed by another key. */
    seal(&a, f->other, &q);
    must(check(f, &q, NULL, &e), PV_ERR_SIGNATURE, &e);
    assert_non_null(strstr(e.msg, "quote signature"));
    /* Signed by ours, checked with another. */
    seal(&a, f->ak, &q);
    must(pv_quote_verify(q.attest, q.len, q.sig, f->other, f->qualifying, PCR, f->pcr_value, NULL,
                         &e),
         PV_ERR_SIGNATURE, &e);
    /* Each half of the signature altered, swapped, or out of range. */
    uint8_t good[PV_ES256_SIG_LEN];
    memcpy(good, q.sig, sizeof(good));
    q.sig[5] ^= 0x10;
    must(check(f, &q, NULL, &e), PV_ERR_SIGNATURE, &e);
    memcpy(q.sig, good, sizeof(good));
    q.sig[40] ^= 0x10;
    must(check(f, &q, NULL, &e), PV_ERR_SIGNATURE, &e);
    memcpy(q.sig, good + 32, 32);
    memcpy(q.sig + 32, good, 32);
    must(check(f, &q, NULL, &e), PV_ERR_SIGNATURE, &e);
    memset(q.sig, 0xff, sizeof(q.sig));
    must(check(f, &q, NULL, &e), PV_ERR_SIGNATURE, &e);
    memset(q.sig, 0, sizeof(q.sig));
    must(check(f, &q, NULL, &e), PV_ERR_SIGNATURE, &e);
    /* A signature over the digest rather than over the message (hashed twice). */
    uint8_t d[PV_SHA256_LEN];
    assert_int_equal(pv_sha256_digest(q.attest, q.len, d), PV_OK);
    must(pv_key_sign_es256(f->ak, d, sizeof(d), q.sig, &e), PV_OK, &e);
    must(check(f, &q, NULL, &e), PV_ERR_SIGNATURE, &e);
}

static void test_framing(void **state)
{
    fx *f = *state;
    TPMS_ATTEST a;
    quote q;
    pv_err e = {0};
    good_attest(f, &a);
    seal(&a, f->ak, &q);
    size_t len = q.len;
    /* Every truncation, each re-signed so only the framing can refuse it. */
    for (size_t cut = 0; cut < len; cut++) {
        quote t = q;
        t.len = cut;
        if (cut > 0) {
            must(pv_key_sign_es256(f->ak, t.attest, cut, t.sig, &e), PV_OK, &e);
        }
        int r = check(f, &t, NULL, &e);
        if (r != PV_ERR_FORMAT) {
            fail_msg("cut to %zu of %zu bytes: got %d: %s", cut, len, r, pv_err_msg(&e));
        }
    }
    /* Trailing bytes, signed with the rest. */
    quote t = q;
    t.attest[len] = 0;
    t.len = len + 1;
    must(pv_key_sign_es256(f->ak, t.attest, t.len, t.sig, &e), PV_OK, &e);
    must(check(f, &t, NULL, &e), PV_ERR_FORMAT, &e);
    assert_non_null(strstr(e.msg, "1 bytes after"));
    /* A TPM2B size beyond its buffer. */
    t = q;
    t.attest[6] = 0xff; /* qualifiedSigner.size high byte */
    must(pv_key_sign_es256(f->ak, t.attest, t.len, t.sig, &e), PV_OK, &e);
    must(check(f, &t, NULL, &e), PV_ERR_FORMAT, &e);
    /* Over the limit, whatever it holds. */
    uint8_t *big = calloc(1, PV_QUOTE_MAX_ATTEST + 1);
    assert_non_null(big);
    memcpy(big, q.attest, len);
    must(pv_quote_verify(big, PV_QUOTE_MAX_ATTEST + 1, q.sig, f->ak, f->qualifying, PCR,
                         f->pcr_value, NULL, &e),
         PV_ERR_FORMAT, &e);
    assert_non_null(strstr(e.msg, "at most 1024"));
    free(big);
}

/* Replaces `remove` bytes at `at` with n bytes of `insert`, and re-signs. */
static void splice(const fx *f, quote *q, size_t at, size_t remove, const uint8_t *insert, size_t n)
{
    pv_err e = {0};
    assert_true(at + remove <= q->len && q->len - remove + n <= sizeof(q->attest));
    memmove(q->attest + at + n, q->attest + at + remove, q->len - at - remove);
    memcpy(q->attest + at, insert, n);
    q->len = q->len - remove + n;
    must(pv_key_sign_es256(f->ak, q->attest, q->len, q->sig, &e), PV_OK, &e);
}

/* Sizes and counts larger than the structures tpm2-tss unmarshals into, with the bytes
 * present, so only the bound stops them (ASan would see an overflow). */
static void test_beyond_buffers(void **state)
{
    fx *f = *state;
    TPMS_ATTEST a;
    quote good, q;
    pv_err e = {0};
    uint8_t big[2 + 200];
    good_attest(f, &a);
    seal(&a, f->ak, &good);
    size_t signer = 6, select = 6 + 2 + 34 + 2 + 32 + 17 + 8, digest = select + 10;
    assert_int_equal(digest + 2 + 32, good.len);

    /* qualifiedSigner of 200 bytes (a TPM2B_NAME holds at most sizeof(TPMU_NAME)). */
    memset(big, 0x42, sizeof(big));
    big[0] = 0;
    big[1] = 200;
    q = good;
    splice(f, &q, signer, 2 + 34, big, sizeof(big));
    must(check(f, &q, NULL, &e), PV_ERR_FORMAT, &e);
    /* pcrDigest of 100 bytes (a TPM2B_DIGEST holds 64). */
    big[1] = 100;
    q = good;
    splice(f, &q, digest, 2 + 32, big, 2 + 100);
    must(check(f, &q, NULL, &e), PV_ERR_FORMAT, &e);
    /* 40 banks, each SHA-256 {13} (a TPML_PCR_SELECTION holds 16). */
    uint8_t banks[4 + 40 * 6];
    memset(banks, 0, sizeof(banks));
    banks[3] = 40;
    for (size_t i = 0; i < 40; i++) {
        memcpy(banks + 4 + 6 * i, (const uint8_t[]){0x00, 0x0b, 0x03, 0x00, 0x20, 0x00}, 6);
    }
    q = good;
    splice(f, &q, select, 10, banks, sizeof(banks));
    must(check(f, &q, NULL, &e), PV_ERR_FORMAT, &e);
    assert_non_null(strstr(e.msg, "40 PCR banks"));
    /* A 200-byte bitmap (TPMS_PCR_SELECTION holds 4). */
    uint8_t bitmap[4 + 3 + 200] = {0, 0, 0, 1, 0x00, 0x0b, 200};
    bitmap[7 + 1] = 0x20;
    q = good;
    splice(f, &q, select, 10, bitmap, sizeof(bitmap));
    must(check(f, &q, NULL, &e), PV_ERR_FORMAT, &e);
    assert_non_null(strstr(e.msg, "200 bytes"));
}

static void test_arguments(void **state)
{
    fx *f = *state;
    TPMS_ATTEST a;
    quote q;
    pv_err e = {0};
    good_attest(f, &a);
    seal(&a, f->ak, &q);
    must(pv_quote_verify(NULL, q.len, q.sig, f->ak, f->qualifying, PCR, f->pcr_value, NULL, &e),
         PV_ERR_INVALID_ARG, &e);
    must(pv_quote_verify(q.attest, q.len, NULL, f->ak, f->qualifying, PCR, f->pcr_value, NULL, &e),
         PV_ERR_INVALID_ARG, &e);
    must(pv_quote_verify(q.attest, q.len, q.sig, NULL, f->qualifying, PCR, f->pcr_value, NULL, &e),
         PV_ERR_INVALID_ARG, &e);
    must(pv_quote_verify(q.attest, q.len, q.sig, f->ak, NULL, PCR, f->pcr_value, NULL, &e),
         PV_ERR_INVALID_ARG, &e);
    must(pv_quote_verify(q.attest, q.len, q.sig, f->ak, f->qualifying, PCR, NULL, NULL, &e),
         PV_ERR_INVALID_ARG, &e);
    must(pv_quote_verify(q.attest, q.len, q.sig, f->ak, f->qualifying, 24, f->pcr_value, NULL, &e),
         PV_ERR_INVALID_ARG, &e);
    /* e may be NULL. */
    assert_int_equal(pv_quote_verify(q.attest, q.len - 1, q.sig, f->ak, f->qualifying, PCR,
                                     f->pcr_value, NULL, NULL),
                     PV_ERR_FORMAT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_other_pcrs_verify_when_asked),
        cmocka_unit_test(test_wrong_selection),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_wrong_magic),
        cmocka_unit_test(test_wrong_values),
        cmocka_unit_test(test_wrong_sizes),
        cmocka_unit_test(test_wrong_key_and_signature),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_beyond_buffers),
        cmocka_unit_test(test_arguments),
    };
    return cmocka_run_group_tests_name("quote", tests, setup, teardown);
}
