/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "testutil.h"

#include "pavise/err.h"

static void test_set_and_wrap(void **state)
{
    (void)state;
    pv_err e;
    pv_err_clear(&e);
    assert_int_equal(pv_err_set(&e, PV_ERR_FORMAT, "field '%s': bad", "name"), PV_ERR_FORMAT);
    assert_int_equal(pv_err_wrap(&e, PV_ERR_FORMAT, "manifest"), PV_ERR_FORMAT);
    assert_int_equal(pv_err_wrap(&e, PV_ERR_MANIFEST, "%s", "app.json"), PV_ERR_MANIFEST);
    assert_string_equal(pv_err_msg(&e), "app.json: manifest: field 'name': bad");
    assert_int_equal(e.code, PV_ERR_MANIFEST);
}

static void test_null_keeps_code(void **state)
{
    (void)state;
    assert_int_equal(pv_err_set(NULL, PV_ERR_IO, "x"), PV_ERR_IO);
    assert_int_equal(pv_err_wrap(NULL, PV_ERR_SIGNATURE, "ctx"), PV_ERR_SIGNATURE);
    assert_string_equal(pv_err_msg(NULL), "unknown error");
}

static void test_wrap_without_message_uses_description(void **state)
{
    (void)state;
    pv_err e;
    pv_err_clear(&e);
    pv_err_wrap(&e, PV_ERR_DIGEST, "payload");
    assert_string_equal(e.msg, "payload: content does not match its signed digest");
}

static void test_truncation_is_safe(void **state)
{
    (void)state;
    pv_err e;
    char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    pv_err_set(&e, PV_ERR_FORMAT, "%s", big);
    assert_int_equal(strlen(e.msg), PV_ERR_MSG_MAX - 1);
    pv_err_wrap(&e, PV_ERR_FORMAT, "%s", big);
    assert_int_equal(strlen(e.msg), PV_ERR_MSG_MAX - 1);
    assert_int_equal(e.msg[0], 'x');
}

static void test_strerror_covers_codes(void **state)
{
    (void)state;
    for (int c = PV_OK; c >= PV_ERR_LOCKED; c--) {
        assert_string_not_equal(pv_strerror(c), "unknown error");
    }
    assert_string_equal(pv_strerror(-999), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_and_wrap),
        cmocka_unit_test(test_null_keeps_code),
        cmocka_unit_test(test_wrap_without_message_uses_description),
        cmocka_unit_test(test_truncation_is_safe),
        cmocka_unit_test(test_strerror_covers_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
