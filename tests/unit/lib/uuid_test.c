/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "testutil.h"

#include "pavise/uuid.h"

static void test_parse_format(void **state)
{
    (void)state;
    uint8_t u[PV_UUID_LEN];
    char s[PV_UUID_STR_LEN];
    assert_int_equal(pv_uuid_parse("6F1C0C8E-3a1e-4d5b-9a43-0c4f2e9b7d21", u), 0);
    pv_uuid_format(u, s);
    assert_string_equal(s, "6f1c0c8e-3a1e-4d5b-9a43-0c4f2e9b7d21");
    const char *bad[] = {"",
                         "6f1c0c8e3a1e4d5b9a430c4f2e9b7d21",
                         "6f1c0c8e-3a1e-4d5b-9a43-0c4f2e9b7d2",
                         "6f1c0c8e-3a1e-4d5b-9a43-0c4f2e9b7d211",
                         "6f1c0c8e_3a1e-4d5b-9a43-0c4f2e9b7d21",
                         "gf1c0c8e-3a1e-4d5b-9a43-0c4f2e9b7d21",
                         "00000000-0000-0000-0000-000000000000"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pv_uuid_parse(bad[i], u), PV_ERR_FORMAT);
    }
    assert_int_equal(pv_uuid_parse(NULL, u), PV_ERR_FORMAT);
}

static void test_generate(void **state)
{
    (void)state;
    uint8_t a[PV_UUID_LEN], b[PV_UUID_LEN];
    assert_int_equal(pv_uuid_generate(a), 0);
    assert_int_equal(pv_uuid_generate(b), 0);
    assert_memory_not_equal(a, b, PV_UUID_LEN);
    assert_int_equal(a[6] >> 4, 4);      /* version 4 */
    assert_int_equal(a[8] & 0xc0, 0x80); /* RFC variant */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_format),
        cmocka_unit_test(test_generate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
