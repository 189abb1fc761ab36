/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#include "pavise/log.h"

static char *capture(pv_log_level min, bool json, void (*emit)(void))
{
    FILE *f = tmpfile();
    assert_non_null(f);
    pv_log_init(min, json, f, "test");
    emit();
    pv_log_init(PV_LOG_WARN, false, NULL, "test");
    off_t n = lseek(fileno(f), 0, SEEK_END);
    char *s = calloc(1, (size_t)n + 1);
    assert_int_equal(pread(fileno(f), s, (size_t)n, 0), n);
    fclose(f);
    return s;
}

static void emit_levels(void)
{
    pv_debug("dropped %d", 1);
    pv_info("kept %d", 2);
    pv_error("also kept");
}

static void emit_hostile(void)
{
    pv_warn("quote \" backslash \\ newline \n tab \t end");
}

static void test_levels(void **state)
{
    (void)state;
    char *s = capture(PV_LOG_INFO, false, emit_levels);
    assert_null(strstr(s, "dropped"));
    assert_non_null(strstr(s, "info test: kept 2\n"));
    assert_non_null(strstr(s, "error test: also kept\n"));
    free(s);
}

static void test_json_escaping(void **state)
{
    (void)state;
    char *s = capture(PV_LOG_DEBUG, true, emit_hostile);
    assert_non_null(strstr(s, "\"level\":\"warn\""));
    assert_non_null(
        strstr(s, "\"msg\":\"quote \\\" backslash \\\\ newline \\u000a tab \\u0009 end\"}\n"));
    assert_int_equal(strchr(s, '\n') - s, (long)strlen(s) - 1); /* one line */
    free(s);
}

static void test_text_cannot_forge_lines(void **state)
{
    (void)state;
    char *s = capture(PV_LOG_DEBUG, false, emit_hostile);
    assert_int_equal(strchr(s, '\n') - s, (long)strlen(s) - 1);
    free(s);
}

static void test_level_parse(void **state)
{
    (void)state;
    pv_log_level l;
    assert_int_equal(pv_log_level_parse("debug", &l), 0);
    assert_int_equal(l, PV_LOG_DEBUG);
    assert_int_equal(pv_log_level_parse("loud", &l), PV_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_text_cannot_forge_lines),
        cmocka_unit_test(test_level_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
