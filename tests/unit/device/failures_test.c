// SPDX-License-Identifier: Apache-2.0
/* The failure queue: aggregation, the bound, persistence, a damaged file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "failures.h"
#include "pavise/platform.h"
#include "testutil.h"

#define CID "6f1c0c8e-3a1e-4d5b-9a43-0c4f2e9b7d21"

static fl_event ev(fl_kind kind, int sig, int syscall)
{
    fl_event e = {.kind = kind, .signal = sig, .syscall = syscall};
    snprintf(e.component_id, sizeof(e.component_id), "%s", CID);
    snprintf(e.version, sizeof(e.version), "1.0.0");
    return e;
}

static void test_aggregate_and_persist(void **state)
{
    char *dir = tu_mkdtemp("failures");
    fl_queue *q = NULL;
    pv_err e = {0};
    assert_int_equal(fl_open(dir, &q, &e), PV_OK);
    fl_event crash = ev(FL_CRASH, 11, -1), sc = ev(FL_SECCOMP, 0, 101);
    assert_int_equal(fl_record(q, &crash, &e), PV_OK);
    assert_int_equal(fl_record(q, &crash, &e), PV_OK);
    assert_int_equal(fl_record(q, &sc, &e), PV_OK);
    assert_int_equal(fl_count(q, CID), 3);
    assert_int_equal(fl_count(q, "00000000-0000-4000-8000-000000000000"), 0);
    json_t *a = fl_to_json(q, CID);
    assert_int_equal(json_array_size(a), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(a, 0), "count")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(a, 1), "syscall")), 101);
    json_decref(a);
    fl_close(q);
    /* reopened: the same */
    assert_int_equal(fl_open(dir, &q, &e), PV_OK);
    assert_int_equal(fl_count(q, CID), 3);
    assert_int_equal(fl_record(q, &crash, &e), PV_OK);
    assert_int_equal(fl_count(q, CID), 4);
    fl_close(q);
    tu_rmtree(dir);
    free(dir);
}

static void test_bound(void **state)
{
    char *dir = tu_mkdtemp("failures");
    fl_queue *q = NULL;
    pv_err e = {0};
    assert_int_equal(fl_open(dir, &q, &e), PV_OK);
    for (int i = 0; i < FL_MAX + 10; i++) {
        fl_event x = ev(FL_EXIT, 0, -1);
        x.code = i + 1;
        pv_time_set_override(1700000000 + i);
        assert_int_equal(fl_record(q, &x, &e), PV_OK);
    }
    pv_time_set_override(0);
    json_t *a = fl_to_json(q, NULL);
    assert_int_equal(json_array_size(a), FL_MAX);
    /* the least recently seen went first */
    assert_int_equal(json_integer_value(json_object_get(json_array_get(a, 0), "code")), 11);
    json_decref(a);
    fl_close(q);
    tu_rmtree(dir);
    free(dir);
}

static void test_damaged(void **state)
{
    char *dir = tu_mkdtemp("failures");
    char *sub = tu_path(dir, "failures");
    char *file = tu_path(sub, "queue.json");
    char *bad = tu_path(sub, "queue.json.bad");
    fl_queue *q = NULL;
    pv_err e = {0};
    assert_int_equal(fl_open(dir, &q, &e), PV_OK);
    fl_close(q);
    tu_write(file, "{\"version\":1,\"events\":[{\"kind\":\"crash\"}]}", 41, 0600);
    assert_int_equal(fl_open(dir, &q, &e), PV_OK);
    assert_int_equal(fl_count(q, NULL), 0);
    assert_true(tu_exists(bad));
    fl_close(q);
    tu_rmtree(dir);
    free(dir);
    free(sub);
    free(file);
    free(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aggregate_and_persist),
        cmocka_unit_test(test_bound),
        cmocka_unit_test(test_damaged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
