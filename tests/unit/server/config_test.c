/* SPDX-License-Identifier: Apache-2.0 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"

typedef struct fixture {
    char *dir;
    char *file;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    f->dir = tu_mkdtemp("config");
    f->file = tu_path(f->dir, "server.conf");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmtree(f->dir);
    free(f->dir);
    free(f->file);
    free(f);
    return 0;
}

static void write_conf(fixture *f, const char *text)
{
    tu_write(f->file, text, strlen(text), 0600);
}

static void test_defaults(void **state)
{
    fixture *f = *state;
    server_config cfg;
    pv_err e = {0};
    assert_int_equal(config_defaults(&cfg, f->dir, &e), PV_OK);
    assert_string_equal(cfg.data_dir, f->dir);
    assert_string_equal(cfg.listen, "127.0.0.1:8443");
    assert_true(cfg.workers >= 1 && cfg.workers <= SERVER_MAX_WORKERS);
    assert_int_equal(cfg.max_body, SERVER_MAX_BODY);
    assert_int_equal(cfg.operator_cert_days, 90);
    assert_int_equal(cfg.invite_ttl, 24 * 3600);
    assert_string_equal(cfg.log_level, "info");
    assert_false(cfg.log_json);
    /* An absolute path, whatever the working directory is later. */
    assert_int_equal(strncmp(cfg.db_url, "sqlite:/", 8), 0);
    assert_non_null(strstr(cfg.db_url, "/pavise.db"));

    char *missing = tu_path(f->dir, "missing");
    assert_int_equal(config_defaults(&cfg, missing, &e), PV_ERR_NOT_FOUND);
    free(missing);
}

static void test_file_overrides(void **state)
{
    fixture *f = *state;
    server_config cfg;
    pv_err e = {0};
    assert_int_equal(config_defaults(&cfg, f->dir, &e), PV_OK);
    write_conf(f, "{\"listen\": \"[::1]:9443\", \"db\": \"postgres:host=/tmp/pg dbname=p\", "
                  "\"workers\": 3, \"max_body_bytes\": 2048, \"operator_cert_days\": 30, "
                  "\"enrollment_code_hours\": 2, \"log_level\": \"warn\", \"log_json\": true}");
    int r = config_load_file(&cfg, f->file, true, &e);
    if (r != PV_OK) {
        fail_msg("%s", pv_err_msg(&e));
    }
    assert_string_equal(cfg.listen, "[::1]:9443");
    assert_string_equal(cfg.db_url, "postgres:host=/tmp/pg dbname=p");
    assert_int_equal(cfg.workers, 3);
    assert_int_equal(cfg.max_body, 2048);
    assert_int_equal(cfg.operator_cert_days, 30);
    assert_int_equal(cfg.invite_ttl, 2 * 3600);
    assert_string_equal(cfg.log_level, "warn");
    assert_true(cfg.log_json);

    /* Keys left out keep what was there. */
    write_conf(f, "{\"workers\": 1}");
    assert_int_equal(config_load_file(&cfg, f->file, true, &e), PV_OK);
    assert_int_equal(cfg.workers, 1);
    assert_string_equal(cfg.listen, "[::1]:9443");
}

static void test_missing_file(void **state)
{
    fixture *f = *state;
    server_config cfg;
    pv_err e = {0};
    assert_int_equal(config_defaults(&cfg, f->dir, &e), PV_OK);
    assert_int_equal(config_load_file(&cfg, f->file, false, &e), PV_OK);
    assert_string_equal(cfg.listen, "127.0.0.1:8443");
    assert_int_equal(config_load_file(&cfg, f->file, true, &e), PV_ERR_NOT_FOUND);
}

static void test_refusals(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *text;
        const char *mention;
    } bad[] = {
        {"{\"listen\": \"x:1\", \"bogus\": 1}", "bogus"},
        {"{\"workers\": \"2\"}", "workers"},
        {"{\"workers\": 0}", "workers"},
        {"{\"workers\": 65}", "workers"},
        {"{\"max_body_bytes\": 10}", "max_body_bytes"},
        {"{\"max_body_bytes\": 1e6}", "max_body_bytes"},
        {"{\"operator_cert_days\": -1}", "operator_cert_days"},
        {"{\"enrollment_code_hours\": 100000}", "enrollment_code_hours"},
        {"{\"log_level\": \"trace\"}", "log_level"},
        {"{\"log_json\": 1}", "log_json"},
        {"{\"listen\": \"\"}", "listen"},
        {"{\"db\": null}", "db"},
        {"[]", "object"},
        {"{\"workers\": 1, \"workers\": 2}", "workers"},
        {"{", ""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        server_config cfg;
        pv_err e = {0};
        assert_int_equal(config_defaults(&cfg, f->dir, &e), PV_OK);
        write_conf(f, bad[i].text);
        int r = config_load_file(&cfg, f->file, true, &e);
        if (r != PV_ERR_FORMAT) {
            fail_msg("'%s': got %d (%s)", bad[i].text, r, pv_err_msg(&e));
        }
        if (strstr(pv_err_msg(&e), bad[i].mention) == NULL) {
            fail_msg("'%s': message '%s' does not name '%s'", bad[i].text, pv_err_msg(&e),
                     bad[i].mention);
        }
    }
}

static void test_parse_workers(void **state)
{
    int n = 0;
    pv_err e = {0};
    assert_int_equal(config_parse_workers("1", "--workers", &n, &e), PV_OK);
    assert_int_equal(n, 1);
    assert_int_equal(config_parse_workers("64", "--workers", &n, &e), PV_OK);
    assert_int_equal(n, 64);
    static const char *const bad[] = {"0", "65", "-1", "", "2x", " 2", "0x2", "1000"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(config_parse_workers(bad[i], "--workers", &n, &e), PV_ERR_USAGE);
    }
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_defaults), T(test_file_overrides), T(test_missing_file),
        T(test_refusals), T(test_parse_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
