/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "testutil.h"

#include "jsonw.h"
#include "pavise/platform.h"

/* What jansson writes for v: the writer must give the same bytes. */
static char *jansson_text(json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    assert_non_null(s);
    json_decref(v);
    return s;
}

static char *take(jw *w)
{
    size_t len = 0;
    int err = -1;
    char *s = jw_take(w, &len, &err);
    assert_int_equal(err, PV_OK);
    assert_non_null(s);
    assert_int_equal(strlen(s), len);
    return s;
}

static void test_matches_jansson(void **state)
{
    (void)state;
    jw w;
    jw_init(&w, 1 << 20);
    jw_object_begin(&w);
    jw_key(&w, "id");
    jw_string(&w, "6f1c0c8e-3a1e-4d5b-9a43-0c4f2e9b7d21");
    jw_key(&w, "none");
    jw_string(&w, NULL);
    jw_key(&w, "yes");
    jw_bool(&w, true);
    jw_key(&w, "no");
    jw_bool(&w, false);
    jw_key(&w, "n");
    jw_int(&w, -42);
    jw_key(&w, "t");
    jw_time(&w, 1795305599);
    jw_key(&w, "bad time");
    jw_time(&w, -1);
    jw_key(&w, "list");
    jw_array_begin(&w);
    jw_int(&w, 1);
    jw_object_begin(&w);
    jw_object_end(&w);
    jw_array_begin(&w);
    jw_array_end(&w);
    jw_null(&w);
    jw_array_end(&w);
    jw_key(&w, "after");
    jw_string(&w, "");
    jw_object_end(&w);
    char *got = take(&w);

    json_t *v =
        json_pack("{s:s,s:n,s:b,s:b,s:I,s:s,s:n,s:[i,{},[],n],s:s}", "id",
                  "6f1c0c8e-3a1e-4d5b-9a43-0c4f2e9b7d21", "none", "yes", 1, "no", 0, "n",
                  (json_int_t)-42, "t", "2026-11-21T23:59:59Z", "bad time", "list", 1, "after", "");
    char *want = jansson_text(v);
    assert_string_equal(got, want);
    free(got);
    free(want);
}

/* Strings of every byte that may appear (controls, quotes, backslash, slash, DEL,
 * multi-byte UTF-8): escaped exactly as jansson escapes them. */
static void test_strings_match_jansson(void **state)
{
    (void)state;
    const char *pieces[] = {"a",    "\"",   "\\",   "/", "\b", "\f", "\n", "\r", "\t",
                            "\x01", "\x1f", "\x7f", "é", "€",  "😀",  " ",  "<",  "'"};
    size_t np = sizeof(pieces) / sizeof(pieces[0]);
    uint64_t x = 0x243f6a8885a308d3u;
    for (int round = 0; round < 2000; round++) {
        char s[256] = "";
        size_t len = 0;
        for (int k = 0; k < 12; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            const char *p = pieces[x % np];
            size_t n = strlen(p);
            memcpy(s + len, p, n);
            len += n;
        }
        s[len] = '\0';
        jw w;
        jw_init(&w, 4096);
        jw_object_begin(&w);
        jw_key(&w, s);
        jw_string(&w, s);
        jw_object_end(&w);
        char *got = take(&w);
        char *want = jansson_text(json_pack("{s:s}", s, s));
        assert_string_equal(got, want);
        free(got);
        free(want);
    }
}

static void test_errors(void **state)
{
    (void)state;
    size_t len = 1;
    int err = PV_OK;
    jw w;

    /* Not UTF-8: refused, and nothing after it is written. */
    jw_init(&w, 4096);
    jw_array_begin(&w);
    jw_string(&w, "ok");
    jw_string(&w, "\xc3\x28");
    jw_string(&w, "more");
    jw_array_end(&w);
    assert_null(jw_take(&w, &len, &err));
    assert_int_equal(err, PV_ERR_FORMAT);
    assert_int_equal(len, 0);

    /* Past the maximum. */
    jw_init(&w, 16);
    jw_array_begin(&w);
    jw_string(&w, "this is longer than sixteen bytes");
    jw_array_end(&w);
    assert_null(jw_take(&w, &len, &err));
    assert_int_equal(err, PV_ERR_TOO_LARGE);

    /* Exactly up to the maximum (the NUL needs one more byte). */
    jw_init(&w, 8);
    jw_string(&w, "12345");
    char *s = jw_take(&w, &len, &err);
    assert_int_equal(err, PV_OK);
    assert_string_equal(s, "\"12345\"");
    free(s);

    /* Nothing written. */
    jw_init(&w, 8);
    assert_null(jw_take(&w, &len, &err));
    assert_int_not_equal(err, PV_OK);

    /* A writer that is freed instead of taken. */
    jw_init(&w, 4096);
    jw_string(&w, "x");
    jw_free(&w);
}

static void test_grows(void **state)
{
    (void)state;
    jw w;
    jw_init(&w, 1 << 24);
    jw_array_begin(&w);
    for (int i = 0; i < 100000; i++) {
        jw_int(&w, i);
    }
    jw_array_end(&w);
    char *got = take(&w);
    json_t *a = json_array();
    for (int i = 0; i < 100000; i++) {
        json_array_append_new(a, json_integer(i));
    }
    char *want = jansson_text(a);
    assert_string_equal(got, want);
    free(got);
    free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_jansson),
        cmocka_unit_test(test_strings_match_jansson),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_grows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
