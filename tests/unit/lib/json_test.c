/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "testutil.h"

#include "pavise/json.h"

static void test_parse_errors_have_position(void **state)
{
    (void)state;
    json_t *v;
    pv_err e;
    assert_int_equal(pv_json_parse("{\"a\": 1,\n \"a\": 2}", 17, &v, &e), PV_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "line 2"));
    assert_non_null(strstr(e.msg, "duplicate"));
    assert_int_equal(pv_json_parse("{\"a\": }", 7, &v, &e), PV_ERR_FORMAT);
    assert_null(v);
    /* A NUL inside a string never reaches the getters: the parser refuses it. */
    const char *nul = "{\"a\": \"x\\u0000y\"}";
    assert_int_equal(pv_json_parse(nul, strlen(nul), &v, &e), PV_ERR_FORMAT);
}

static void test_typed_getters(void **state)
{
    (void)state;
    const char *t = "{\"s\": \"x\", \"n\": 5, \"b\": true, \"neg\": -1, \"extra\": null}";
    json_t *o;
    pv_err e;
    const char *s;
    uint64_t n;
    bool b, present;
    assert_int_equal(pv_json_parse(t, strlen(t), &o, &e), 0);
    assert_int_equal(pv_json_get_string(o, "s", true, 10, "obj", &s, &present, &e), 0);
    assert_string_equal(s, "x");
    assert_int_equal(pv_json_get_string(o, "s", true, 0, "obj", &s, NULL, &e), PV_ERR_FORMAT);
    assert_int_equal(pv_json_get_string(o, "n", true, 10, "obj", &s, NULL, &e), PV_ERR_FORMAT);
    assert_string_equal(e.msg, "obj: field 'n': expected a string");
    assert_int_equal(pv_json_get_uint(o, "n", true, 1, 5, "obj", &n, NULL, &e), 0);
    assert_int_equal(n, 5);
    assert_int_equal(pv_json_get_uint(o, "n", true, 6, 9, "obj", &n, NULL, &e), PV_ERR_FORMAT);
    assert_int_equal(pv_json_get_uint(o, "neg", true, 0, 9, "obj", &n, NULL, &e), PV_ERR_FORMAT);
    assert_int_equal(pv_json_get_bool(o, "b", true, "obj", &b, NULL, &e), 0);
    assert_true(b);
    assert_int_equal(pv_json_get_bool(o, "missing", false, "obj", &b, &present, &e), 0);
    assert_false(present);
    assert_int_equal(pv_json_get_bool(o, "missing", true, "obj", &b, &present, &e),
                     PV_ERR_NOT_FOUND);
    assert_string_equal(e.msg, "obj: missing required field 'missing'");
    static const char *const allowed[] = {"s", "n", "b", "neg", NULL};
    assert_int_equal(pv_json_check_fields(o, allowed, "obj", &e), PV_ERR_FORMAT);
    assert_string_equal(e.msg, "obj: unknown field 'extra'");
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors_have_position),
        cmocka_unit_test(test_typed_getters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
