/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pv_rot_quote on a real swtpm, checked with pv_quote_verify as the service would: a
 * device is provisioned, measures a couple of events, and quotes PV_ROT_PCR with a
 * qualifying value. The quote verifies with the attestation key and the replayed event
 * log, and every change to it, to what it is checked against, or to its size is refused.
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "pavise/buf.h"
#include "pavise/crypto.h"
#include "pavise/quote.h"
#include "pavise/rot.h"

typedef struct qenv {
    char *dir; /* swtpm's directory and the device's state directory */
    char *state_dir;
    char *tcti;
    pv_rot *rot;
    pv_key *ak;
    uint8_t qualifying[PV_SHA256_LEN];
    uint8_t pcr[PV_SHA256_LEN]; /* the replayed event log */
    pv_buf *attest;
    uint8_t sig[PV_ES256_SIG_LEN];
} qenv;

static void must(int r, int want, const pv_err *e)
{
    if (r != want) {
        fail_msg("got %d, want %d: %s", r, want, pv_err_msg(e));
    }
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(seed + 31 * i);
    }
}

static int setup(void **state)
{
    qenv *q = calloc(1, sizeof(*q));
    assert_non_null(q);
    q->dir = tu_mkdtemp("rot_quote");
    q->state_dir = tu_path(q->dir, "device");
    q->tcti = tu_swtpm_start(q->dir);
    pv_err e = {0};
    pv_rot_config c = {.kind = PV_ROT_TPM, .state_dir = q->state_dir, .tcti = q->tcti};
    must(pv_rot_provision(&c, &q->rot, &e), PV_OK, &e);
    must(pv_rot_attestation_key(q->rot, &q->ak, &e), PV_OK, &e);

    uint8_t d[PV_SHA256_LEN];
    fill(d, sizeof(d), 1);
    must(pv_rot_extend(q->rot, "boot-config", d, "dev", 3, &e), PV_OK, &e);
    fill(d, sizeof(d), 2);
    must(pv_rot_extend(q->rot, "os-image", d, NULL, 0, &e), PV_OK, &e);
    pv_rot_event *ev = NULL;
    size_t n = 0;
    must(pv_rot_event_log(q->rot, &ev, &n, &e), PV_OK, &e);
    assert_int_equal(n, 2);
    pv_rot_replay(ev, n, q->pcr);
    pv_rot_events_free(ev, n);

    fill(q->qualifying, sizeof(q->qualifying), 0x5a);
    q->attest = pv_buf_new(PV_QUOTE_MAX_ATTEST);
    assert_non_null(q->attest);
    must(pv_rot_quote(q->rot, q->qualifying, q->attest, q->sig, &e), PV_OK, &e);
    *state = q;
    return 0;
}

static int teardown(void **state)
{
    qenv *q = *state;
    if (q == NULL) {
        return 0;
    }
    pv_buf_free(q->attest);
    pv_key_free(q->ak);
    pv_rot_close(q->rot);
    tu_swtpm_stop(q->dir);
    tu_rmtree(q->dir);
    free(q->tcti);
    free(q->state_dir);
    free(q->dir);
    free(q);
    return 0;
}

/* pv_quote_verify of (attest, len) with everything else as the device made it. */
static int verify(const qenv *q, const uint8_t *attest, size_t len, pv_err *e)
{
    return pv_quote_verify(attest, len, q->sig, q->ak, q->qualifying, PV_ROT_PCR, q->pcr, NULL, e);
}

/* A copy of the quote, with room for one more byte. */
static uint8_t *attest_copy(const qenv *q)
{
    size_t len = pv_buf_len(q->attest);
    uint8_t *p = malloc(len + 1);
    assert_non_null(p);
    memcpy(p, pv_buf_data(q->attest), len);
    return p;
}

/* Where a TPMS_ATTEST of type quote keeps its fields: magic (4), type (2),
 * qualifiedSigner (TPM2B), extraData (TPM2B), clockInfo (clock 8, resetCount 4,
 * restartCount 4, safe 1), firmwareVersion (8), pcrSelect (count 4, then hash 2,
 * sizeofSelect 1, bitmap 3), pcrDigest (TPM2B). */
typedef struct layout {
    size_t extra; /* extraData's size field */
    size_t clock;
    size_t firmware;
    size_t select;
    size_t digest; /* pcrDigest's size field */
} layout;

static layout layout_of(const uint8_t *a, size_t len)
{
    layout l;
    assert_true(len > 8);
    l.extra = 6 + 2 + (size_t)(a[6] << 8 | a[7]);
    l.clock = l.extra + 2 + PV_SHA256_LEN;
    l.firmware = l.clock + 17;
    l.select = l.firmware + 8;
    l.digest = l.select + 10;
    assert_int_equal(l.digest + 2 + PV_SHA256_LEN, len);
    return l;
}

static void test_quote_verifies(void **state)
{
    qenv *q = *state;
    pv_err e = {0};
    uint8_t now[PV_SHA256_LEN];
    must(pv_rot_read_measurement(q->rot, now, &e), PV_OK, &e);
    assert_memory_equal(now, q->pcr, sizeof(now));

    pv_quote_info info;
    memset(&info, 0xee, sizeof(info));
    const uint8_t *a = pv_buf_data(q->attest);
    size_t len = pv_buf_len(q->attest);
    must(pv_quote_verify(a, len, q->sig, q->ak, q->qualifying, PV_ROT_PCR, q->pcr, &info, &e),
         PV_OK, &e);
    /* The header as the TPM wrote it, and the qualifying value in extraData. */
    static const uint8_t header[] = {0xff, 0x54, 0x43, 0x47, 0x80, 0x18};
    assert_memory_equal(a, header, sizeof(header));
    layout l = layout_of(a, len);
    assert_memory_equal(a + l.extra + 2, q->qualifying, PV_SHA256_LEN);
    /* The clock fields are the TPM's: a manufactured swtpm has been reset at least once,
     * and its clock runs. */
    assert_int_not_equal(info.reset_count, 0xeeeeeeee);
    assert_true(info.clock > 0 && info.clock != 0xeeeeeeeeeeeeeeeeull);
    assert_int_equal(info.restart_count,
                     (uint32_t)a[l.clock + 12] << 24 | (uint32_t)a[l.clock + 13] << 16 |
                         (uint32_t)a[l.clock + 14] << 8 | (uint32_t)a[l.clock + 15]);

    /* Another quote of the same state verifies too (its clock differs). */
    pv_buf *again = pv_buf_new(PV_QUOTE_MAX_ATTEST);
    uint8_t sig[PV_ES256_SIG_LEN];
    assert_non_null(again);
    must(pv_rot_quote(q->rot, q->qualifying, again, sig, &e), PV_OK, &e);
    must(pv_quote_verify(pv_buf_data(again), pv_buf_len(again), sig, q->ak, q->qualifying,
                         PV_ROT_PCR, q->pcr, NULL, &e),
         PV_OK, &e);
    pv_buf_free(again);
}

/* A quote made after one more event is of the new value, not the old one. */
static void test_quote_follows_the_pcr(void **state)
{
    qenv *q = *state;
    pv_err e = {0};
    uint8_t d[PV_SHA256_LEN], now[PV_SHA256_LEN], sig[PV_ES256_SIG_LEN];
    pv_buf *later = pv_buf_new(PV_QUOTE_MAX_ATTEST);
    assert_non_null(later);
    fill(d, sizeof(d), 3);
    must(pv_rot_extend(q->rot, "app-image", d, NULL, 0, &e), PV_OK, &e);
    must(pv_rot_read_measurement(q->rot, now, &e), PV_OK, &e);
    must(pv_rot_quote(q->rot, q->qualifying, later, sig, &e), PV_OK, &e);
    must(pv_quote_verify(pv_buf_data(later), pv_buf_len(later), sig, q->ak, q->qualifying,
                         PV_ROT_PCR, now, NULL, &e),
         PV_OK, &e);
    must(pv_quote_verify(pv_buf_data(later), pv_buf_len(later), sig, q->ak, q->qualifying,
                         PV_ROT_PCR, q->pcr, NULL, &e),
         PV_ERR_SIGNATURE, &e);
    assert_non_null(strstr(e.msg, "PCR 13"));
    pv_buf_free(later);
}

static void test_other_qualifying(void **state)
{
    qenv *q = *state;
    pv_err e = {0};
    uint8_t other[PV_SHA256_LEN];
    memcpy(other, q->qualifying, sizeof(other));
    other[31] ^= 1;
    must(pv_quote_verify(pv_buf_data(q->attest), pv_buf_len(q->attest), q->sig, q->ak, other,
                         PV_ROT_PCR, q->pcr, NULL, &e),
         PV_ERR_SIGNATURE, &e);
    assert_non_null(strstr(e.msg, "qualifying"));
}

static void test_other_pcr_value(void **state)
{
    qenv *q = *state;
    pv_err e = {0};
    uint8_t other[PV_SHA256_LEN];
    memcpy(other, q->pcr, sizeof(other));
    other[0] ^= 0x80;
    must(pv_quote_verify(pv_buf_data(q->attest), pv_buf_len(q->attest), q->sig, q->ak,
                         q->qualifying, PV_ROT_PCR, other, NULL, &e),
         PV_ERR_SIGNATURE, &e);
    /* A zero PCR (no events replayed) is another value too. */
    static const uint8_t zero[PV_SHA256_LEN];
    must(pv_quote_verify(pv_buf_data(q->attest), pv_buf_len(q->attest), q->sig, q->ak,
                         q->qualifying, PV_ROT_PCR, zero, NULL, &e),
         PV_ERR_SIGNATURE, &e);
    /* The quote is of PCR 13; checked as a quote of PCR 12 its selection is wrong. */
    must(pv_quote_verify(pv_buf_data(q->attest), pv_buf_len(q->attest), q->sig, q->ak,
                         q->qualifying, 12, q->pcr, NULL, &e),
         PV_ERR_FORMAT, &e);
    must(pv_quote_verify(pv_buf_data(q->attest), pv_buf_len(q->attest), q->sig, q->ak,
                         q->qualifying, 24, q->pcr, NULL, &e),
         PV_ERR_INVALID_ARG, &e);
}

/* A flipped bit in each region, with the error each gets. */
static void test_tampered_regions(void **state)
{
    qenv *q = *state;
    pv_err e = {0};
    size_t len = pv_buf_len(q->attest);
    uint8_t *a = attest_copy(q);
    layout l = layout_of(a, len);
    struct {
        const char *what;
        size_t at;
        int want;
    } cases[] = {
        {"magic", 0, PV_ERR_FORMAT},
        {"magic", 3, PV_ERR_FORMAT},
        {"type", 5, PV_ERR_FORMAT},
        {"extraData size", l.extra + 1, PV_ERR_FORMAT},
        {"extraData", l.extra + 2, PV_ERR_SIGNATURE},
        {"extraData", l.extra + 2 + 31, PV_ERR_SIGNATURE},
        {"clock", l.clock + 7, PV_ERR_SIGNATURE},
        {"resetCount", l.clock + 11, PV_ERR_SIGNATURE},
        {"firmwareVersion", l.firmware, PV_ERR_SIGNATURE},
        {"selection count", l.select + 3, PV_ERR_FORMAT},
        {"selection hash", l.select + 5, PV_ERR_FORMAT},
        {"selection bitmap", l.select + 8, PV_ERR_FORMAT},
        {"selection bitmap", l.select + 9, PV_ERR_FORMAT},
        {"pcrDigest size", l.digest + 1, PV_ERR_FORMAT},
        {"pcrDigest", l.digest + 2, PV_ERR_SIGNATURE},
        {"pcrDigest", len - 1, PV_ERR_SIGNATURE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        a[cases[i].at] ^= 0x01;
        int r = verify(q, a, len, &e);
        a[cases[i].at] ^= 0x01;
        if (r != cases[i].want) {
            fail_msg("%s (byte %zu): got %d, want %d: %s", cases[i].what, cases[i].at, r,
                     cases[i].want, pv_err_msg(&e));
        }
    }
    /* And no byte anywhere can change without the quote failing. */
    for (size_t i = 0; i < len; i++) {
        for (unsigned bit = 0; bit < 8; bit += 3) {
            a[i] ^= (uint8_t)(1u << bit);
            int r = verify(q, a, len, &e);
            a[i] ^= (uint8_t)(1u << bit);
            if (r == PV_OK) {
                fail_msg("byte %zu bit %u flipped and the quote still verifies", i, bit);
            }
        }
    }
    must(verify(q, a, len, &e), PV_OK, &e);
    free(a);
}

static void test_tampered_signature(void **state)
{
    qenv *q = *state;
    pv_err e = {0};
    uint8_t sig[PV_ES256_SIG_LEN];
    size_t at[] = {0, 17, 31, 32, 50, 63};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        memcpy(sig, q->sig, sizeof(sig));
        sig[at[i]] ^= 0x04;
        must(pv_quote_verify(pv_buf_data(q->attest), pv_buf_len(q->attest), sig, q->ak,
                             q->qualifying, PV_ROT_PCR, q->pcr, NULL, &e),
             PV_ERR_SIGNATURE, &e);
    }
    memset(sig, 0, sizeof(sig));
    must(pv_quote_verify(pv_buf_data(q->attest), pv_buf_len(q->attest), sig, q->ak, q->qualifying,
                         PV_ROT_PCR, q->pcr, NULL, &e),
         PV_ERR_SIGNATURE, &e);
}

static void test_other_key(void **state)
{
    qenv *q = *state;
    pv_err e = {0};
    pv_key *other = NULL, *idk = NULL;
    must(pv_key_generate(&other, &e), PV_OK, &e);
    must(pv_rot_identity_key(q->rot, &idk, &e), PV_OK, &e);
    pv_key *keys[] = {other, idk};
    for (size_t i = 0; i < 2; i++) {
        must(pv_quote_verify(pv_buf_data(q->attest), pv_buf_len(q->attest), q->sig, keys[i],
                             q->qualifying, PV_ROT_PCR, q->pcr, NULL, &e),
             PV_ERR_SIGNATURE, &e);
    }
    pv_key_free(other);
    pv_key_free(idk);
}

static void test_truncated_and_oversized(void **state)
{
    qenv *q = *state;
    pv_err e = {0};
    size_t len = pv_buf_len(q->attest);
    uint8_t *a = attest_copy(q);
    layout l = layout_of(a, len);
    size_t cuts[] = {0,
                     1,
                     4,
                     5,
                     6,
                     7,
                     8,
                     l.extra,
                     l.clock,
                     l.clock + 16,
                     l.firmware + 4,
                     l.select,
                     l.select + 9,
                     l.digest,
                     l.digest + 2,
                     len - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        int r = verify(q, a, cuts[i], &e);
        if (r != PV_ERR_FORMAT) {
            fail_msg("cut to %zu bytes: got %d: %s", cuts[i], r, pv_err_msg(&e));
        }
    }
    /* A trailing byte: the signature would not cover a second reading of it. */
    a[len] = 0;
    must(verify(q, a, len + 1, &e), PV_ERR_FORMAT, &e);
    assert_non_null(strstr(e.msg, "after the TPMS_ATTEST"));

    uint8_t *big = calloc(1, PV_QUOTE_MAX_ATTEST + 1);
    assert_non_null(big);
    memcpy(big, a, len);
    must(verify(q, big, PV_QUOTE_MAX_ATTEST + 1, &e), PV_ERR_FORMAT, &e);
    assert_non_null(strstr(e.msg, "at most"));
    must(verify(q, big, PV_QUOTE_MAX_ATTEST, &e), PV_ERR_FORMAT, &e);
    must(verify(q, NULL, 0, &e), PV_ERR_FORMAT, &e);
    free(big);
    free(a);
}

static void test_quote_arguments(void **state)
{
    qenv *q = *state;
    pv_err e = {0};
    uint8_t sig[PV_ES256_SIG_LEN];
    pv_buf *out = pv_buf_new(PV_QUOTE_MAX_ATTEST);
    assert_non_null(out);
    must(pv_rot_quote(q->rot, NULL, out, sig, &e), PV_ERR_INVALID_ARG, &e);
    must(pv_rot_quote(q->rot, q->qualifying, NULL, sig, &e), PV_ERR_INVALID_ARG, &e);
    must(pv_rot_quote(q->rot, q->qualifying, out, NULL, &e), PV_ERR_INVALID_ARG, &e);
    assert_int_equal(pv_buf_len(out), 0);
    pv_buf_free(out);
    /* No room for the quote: an error, nothing half-written. */
    pv_buf *small = pv_buf_new(16);
    assert_non_null(small);
    int r = pv_rot_quote(q->rot, q->qualifying, small, sig, &e);
    assert_int_not_equal(r, PV_OK);
    assert_int_equal(pv_buf_len(small), 0);
    pv_buf_free(small);
}

static void test_software_has_no_quote(void **state)
{
    (void)state;
    pv_err e = {0};
    char *dir = tu_mkdtemp("rot_quote_soft");
    pv_rot_config c = {.kind = PV_ROT_SOFTWARE, .state_dir = dir};
    pv_rot *rot = NULL;
    must(pv_rot_provision(&c, &rot, &e), PV_OK, &e);
    uint8_t qualifying[PV_SHA256_LEN] = {1}, sig[PV_ES256_SIG_LEN];
    memset(sig, 0xaa, sizeof(sig));
    pv_buf *out = pv_buf_new(PV_QUOTE_MAX_ATTEST);
    assert_non_null(out);
    must(pv_rot_quote(rot, qualifying, out, sig, &e), PV_ERR_UNSUPPORTED, &e);
    assert_non_null(strstr(e.msg, "software"));
    assert_int_equal(pv_buf_len(out), 0);
    static const uint8_t zero[PV_ES256_SIG_LEN];
    assert_memory_equal(sig, zero, sizeof(zero));
    pv_buf_free(out);
    pv_rot_close(rot);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote_verifies),
        cmocka_unit_test(test_other_qualifying),
        cmocka_unit_test(test_other_pcr_value),
        cmocka_unit_test(test_tampered_regions),
        cmocka_unit_test(test_tampered_signature),
        cmocka_unit_test(test_other_key),
        cmocka_unit_test(test_truncated_and_oversized),
        cmocka_unit_test(test_quote_arguments),
        cmocka_unit_test(test_quote_follows_the_pcr),
        cmocka_unit_test(test_software_has_no_quote),
    };
    /* One swtpm and one quote for the group: manufacturing a TPM takes a second. */
    return cmocka_run_group_tests_name("rot_quote", tests, setup, teardown);
}
