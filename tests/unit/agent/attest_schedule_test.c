/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pv_attest_next_delay: soon at start, ~20 h with jitter after a pass, exponential
 * backoff with a cap after failures, and never past the renewal margin of the
 * certificate the device holds.
 */
#include "testutil.h"

#include "pavise/attest.h"

#define NOW ((int64_t)1900000000)

static void test_start(void **state)
{
    for (uint32_t rnd = 0; rnd < 500; rnd += 7) {
        int64_t d = pv_attest_next_delay(PV_ATTEST_NONE, NOW, 0, 0, rnd);
        assert_true(d >= 0 && d <= PV_ATTEST_BACKOFF_FIRST);
    }
    /* Jitter spreads a fleet: not every device picks the same delay. */
    assert_int_not_equal(pv_attest_next_delay(PV_ATTEST_NONE, NOW, 0, 0, 1),
                         pv_attest_next_delay(PV_ATTEST_NONE, NOW, 0, 0, 2));
    /* At start a certificate from before the reboot does not delay it. */
    assert_true(pv_attest_next_delay(PV_ATTEST_NONE, NOW, NOW + 20 * 3600, 0, 59) <= 60);
}

static void test_after_pass(void **state)
{
    int64_t lo = INT64_MAX, hi = 0;
    for (uint32_t rnd = 0; rnd < 100000; rnd += 97) {
        int64_t d = pv_attest_next_delay(PV_ATTEST_PASSED, NOW, 0, 0, rnd);
        assert_true(d >= PV_ATTEST_PERIOD - PV_ATTEST_JITTER);
        assert_true(d <= PV_ATTEST_PERIOD + PV_ATTEST_JITTER);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_true(hi - lo > PV_ATTEST_JITTER); /* the jitter is really used */
    assert_int_equal(pv_attest_next_delay(PV_ATTEST_PASSED, NOW, 0, 0, 0),
                     PV_ATTEST_PERIOD - PV_ATTEST_JITTER);
    assert_int_equal(pv_attest_next_delay(PV_ATTEST_PASSED, NOW, 0, 0, UINT32_MAX),
                     PV_ATTEST_PERIOD - PV_ATTEST_JITTER +
                         (int64_t)(UINT32_MAX % (2 * PV_ATTEST_JITTER + 1)));
}

static void test_backoff(void **state)
{
    /* rnd 0: no jitter, so the base doubles exactly. */
    assert_int_equal(pv_attest_next_delay(PV_ATTEST_FAILED, NOW, 0, 1, 0), 60);
    assert_int_equal(pv_attest_next_delay(PV_ATTEST_FAILED, NOW, 0, 2, 0), 120);
    assert_int_equal(pv_attest_next_delay(PV_ATTEST_FAILED, NOW, 0, 3, 0), 240);
    assert_int_equal(pv_attest_next_delay(PV_ATTEST_IDENTITY_ONLY, NOW, 0, 4, 0), 480);
    assert_int_equal(pv_attest_next_delay(PV_ATTEST_NONE, NOW, 0, 6, 0), 1920);
    /* Capped, and no overflow however many failures. */
    assert_int_equal(pv_attest_next_delay(PV_ATTEST_FAILED, NOW, 0, 7, 0), PV_ATTEST_BACKOFF_MAX);
    assert_int_equal(pv_attest_next_delay(PV_ATTEST_FAILED, NOW, 0, 64, 0), PV_ATTEST_BACKOFF_MAX);
    assert_int_equal(pv_attest_next_delay(PV_ATTEST_FAILED, NOW, 0, UINT32_MAX, 0),
                     PV_ATTEST_BACKOFF_MAX);
    /* Jitter adds at most a quarter. */
    for (uint32_t rnd = 0; rnd < 5000; rnd += 13) {
        int64_t d = pv_attest_next_delay(PV_ATTEST_FAILED, NOW, 0, 100, rnd);
        assert_true(d >= PV_ATTEST_BACKOFF_MAX && d <= PV_ATTEST_BACKOFF_MAX * 5 / 4);
        d = pv_attest_next_delay(PV_ATTEST_FAILED, NOW, 0, 1, rnd);
        assert_true(d >= 60 && d <= 75);
    }
    /* A refusal with failures 0 (inconsistent) still backs off rather than waiting a day. */
    assert_int_equal(pv_attest_next_delay(PV_ATTEST_FAILED, NOW, 0, 0, 0), 60);
    assert_int_equal(pv_attest_next_delay(PV_ATTEST_PASSED, NOW, 0, 2, 0), 120);
}

static void test_renew_before_expiry(void **state)
{
    /* A 24 h client certificate: 20 h +- 2 h fits before the 2 h margin. */
    int64_t exp = NOW + 24 * 3600;
    for (uint32_t rnd = 0; rnd < 100000; rnd += 101) {
        int64_t d = pv_attest_next_delay(PV_ATTEST_PASSED, NOW, exp, 0, rnd);
        assert_true(NOW + d <= exp - PV_ATTEST_RENEW_MARGIN);
    }
    /* A certificate expiring in 10 h: renewed 2 h before, whatever the jitter. */
    exp = NOW + 10 * 3600;
    assert_int_equal(pv_attest_next_delay(PV_ATTEST_PASSED, NOW, exp, 0, 12345), 8 * 3600);
    /* Backoff never runs past the margin either. */
    exp = NOW + PV_ATTEST_RENEW_MARGIN + 100;
    assert_int_equal(pv_attest_next_delay(PV_ATTEST_FAILED, NOW, exp, 20, 0), 100);
    /* Already inside the margin or expired: soon, but not in a tight loop. */
    assert_int_equal(pv_attest_next_delay(PV_ATTEST_PASSED, NOW, NOW + 60, 0, 0),
                     PV_ATTEST_MIN_DELAY);
    assert_int_equal(pv_attest_next_delay(PV_ATTEST_FAILED, NOW, NOW - 3600, 3, 0),
                     PV_ATTEST_MIN_DELAY);
    /* Extreme inputs do not overflow. */
    assert_true(pv_attest_next_delay(PV_ATTEST_PASSED, INT64_MAX - 10, INT64_MAX, 0, 0) > 0);
    assert_true(pv_attest_next_delay(PV_ATTEST_PASSED, NOW, INT64_MAX, 0, 0) <=
                PV_ATTEST_PERIOD + PV_ATTEST_JITTER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start),
        cmocka_unit_test(test_after_pass),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_renew_before_expiry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
