/* SPDX-License-Identifier: Apache-2.0 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

#include "pavise/platform.h"

/* What the C library says: the reference pv_time_format must agree with. */
static void reference(int64_t t, char out[PV_TIME_TEXT_LEN + 1])
{
    struct tm tm;
    time_t tt = (time_t)t;
    assert_non_null(gmtime_r(&tt, &tm));
    assert_int_equal(strftime(out, PV_TIME_TEXT_LEN + 1, "%Y-%m-%dT%H:%M:%SZ", &tm),
                     PV_TIME_TEXT_LEN);
}

static void check(int64_t t)
{
    char got[PV_TIME_TEXT_LEN + 1], want[PV_TIME_TEXT_LEN + 1];
    reference(t, want);
    assert_true(pv_time_format(t, got));
    assert_string_equal(got, want);
}

static void test_known_values(void **state)
{
    (void)state;
    char s[PV_TIME_TEXT_LEN + 1];
    assert_true(pv_time_format(0, s));
    assert_string_equal(s, "1970-01-01T00:00:00Z");
    assert_true(pv_time_format(951782400, s)); /* a leap day in a year divisible by 400 */
    assert_string_equal(s, "2000-02-29T00:00:00Z");
    assert_true(pv_time_format(1795305599, s)); /* the day before 2026-11-22 */
    assert_string_equal(s, "2026-11-21T23:59:59Z");
    assert_true(pv_time_format(4107542400, s)); /* 2100 is not a leap year */
    assert_string_equal(s, "2100-03-01T00:00:00Z");
    assert_true(pv_time_format(253402300799LL, s));
    assert_string_equal(s, "9999-12-31T23:59:59Z");
}

static void test_agrees_with_gmtime(void **state)
{
    (void)state;
    /* Every day boundary (and the second before it) from 1970 to 2200, then a spread
     * of seconds up to the end of year 9999. */
    for (int64_t d = 0; d < 84000; d++) {
        check(d * 86400);
        if (d > 0) {
            check(d * 86400 - 1);
        }
    }
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        check((int64_t)(x % 253402300800ULL));
    }
}

static void test_out_of_range(void **state)
{
    (void)state;
    char s[PV_TIME_TEXT_LEN + 1] = "x";
    assert_false(pv_time_format(-1, s));
    assert_string_equal(s, "");
    assert_false(pv_time_format(253402300800LL, s));
    assert_false(pv_time_format(INT64_MAX, s));
    assert_false(pv_time_format(INT64_MIN, s));
}

static void test_int_format(void **state)
{
    (void)state;
    const int64_t values[] = {0,   1,          -1,        9,         10,
                              -10, 1234567890, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char got[PV_INT_TEXT_LEN + 1], want[32];
        int n = snprintf(want, sizeof(want), "%" PRId64, values[i]);
        assert_int_equal(pv_int_format(values[i], got), (size_t)n);
        assert_string_equal(got, want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_values),
        cmocka_unit_test(test_agrees_with_gmtime),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_int_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
