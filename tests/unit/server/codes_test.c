/* SPDX-License-Identifier: Apache-2.0 */
/* Enrollment codes (codes.c) on SQLite and PostgreSQL. */
#include "testutil.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/crypto.h"
#include "pavise/platform.h"

#include "codes.h"
#include "servertest.h"

#define T0 1900000000LL

static int setup(void **state)
{
    st_env *env = calloc(1, sizeof(*env));
    assert_non_null(env);
    st_setup(env, (const char *)*state);
    *state = env;
    return 0;
}

static int teardown(void **state)
{
    st_env *env = *state;
    st_teardown(env);
    free(env);
    return 0;
}

/* A tenant (and its creator) for codes that grant a role. */
static void make_tenant(st_env *env, const char *id)
{
    uint8_t fp[PV_SHA256_LEN];
    st_operator(env, "creator", fp);
    store_val p[] = {SV_TEXT(id), SV_INT(T0)};
    assert_int_equal(store_exec(env->db,
                                "INSERT INTO tenants (id, name, created_at, created_by) "
                                "SELECT $1, 'T', $2, id FROM operators WHERE name = 'creator'",
                                p, 2, NULL, NULL, NULL),
                     PV_OK);
}

static void create_ok(st_env *env, const char *user, const char *tenant, const char *role,
                      int64_t now, int64_t ttl, char code[CODES_TEXT_LEN + 1])
{
    pv_err e = {0};
    int r = codes_create(env->db, user, tenant, role, NULL, now, ttl, code, &e);
    if (r != PV_OK) {
        fail_msg("codes_create: %s", pv_err_msg(&e));
    }
}

static void test_format_and_redeem(void **state)
{
    st_env *env = *state;
    char code[CODES_TEXT_LEN + 1];
    codes_grant g;

    create_ok(env, "alice", NULL, NULL, T0, 3600, code);
    assert_int_equal(strlen(code), CODES_TEXT_LEN);
    for (size_t i = 0; i < CODES_TEXT_LEN; i++) {
        if (i % 5 == 4) {
            assert_int_equal(code[i], '-');
        } else {
            assert_true((code[i] >= 'A' && code[i] <= 'Z') || (code[i] >= '2' && code[i] <= '7'));
        }
    }
    /* Only the hash of the normalised code is stored. */
    char norm[33];
    size_t n = 0;
    for (size_t i = 0; code[i] != '\0'; i++) {
        if (code[i] != '-') {
            norm[n++] = code[i];
        }
    }
    norm[n] = '\0';
    uint8_t d[PV_SHA256_LEN];
    char hex[65];
    assert_int_equal(pv_sha256_digest(norm, n, d), PV_OK);
    pv_hex_encode(d, sizeof(d), hex, sizeof(hex));
    char *dump = st_dump(env);
    assert_non_null(strstr(dump, hex));
    assert_null(strstr(dump, norm));
    assert_null(strstr(dump, code));
    free(dump);

    /* Typed in lowercase without dashes: the same code. */
    char typed[33];
    for (size_t i = 0; i <= n; i++) {
        typed[i] = (char)tolower((unsigned char)norm[i]);
    }
    assert_int_equal(codes_redeem(env->db, typed, T0 + 10, &g, NULL), PV_OK);
    assert_string_equal(g.user_name, "alice");
    assert_string_equal(g.tenant_id, "");
    assert_string_equal(g.role, "");
    /* Single use. */
    assert_int_equal(codes_redeem(env->db, code, T0 + 11, &g, NULL), PV_ERR_NOT_FOUND);
    assert_string_equal(g.user_name, "");
}

static void test_grant_and_expiry(void **state)
{
    st_env *env = *state;
    const char *tenant = "6b1f0a0e-8d3c-4c1e-9a57-2f7f3f6a9d10";
    char code[CODES_TEXT_LEN + 1], other[CODES_TEXT_LEN + 1];
    codes_grant g;

    make_tenant(env, tenant);
    create_ok(env, "bob@example.com", tenant, "Contributor", T0, 60, code);
    create_ok(env, "bob@example.com", tenant, "Contributor", T0, 60, other);
    assert_string_not_equal(code, other);
    /* Expired at exactly created + ttl. */
    assert_int_equal(codes_redeem(env->db, code, T0 + 60, &g, NULL), PV_ERR_NOT_FOUND);
    assert_int_equal(codes_redeem(env->db, other, T0 + 59, &g, NULL), PV_OK);
    assert_string_equal(g.user_name, "bob@example.com");
    assert_string_equal(g.tenant_id, tenant);
    assert_string_equal(g.role, "Contributor");
}

static void test_refused(void **state)
{
    st_env *env = *state;
    char code[CODES_TEXT_LEN + 1];
    codes_grant g;
    pv_err e = {0};

    /* Text that cannot be a code, and a well-formed code nobody made. */
    assert_int_equal(codes_redeem(env->db, "", T0, &g, NULL), PV_ERR_FORMAT);
    assert_int_equal(codes_redeem(env->db, "AAAA-AAAA", T0, &g, NULL), PV_ERR_FORMAT);
    assert_int_equal(codes_redeem(env->db, "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAA1", T0, &g, NULL),
                     PV_ERR_FORMAT);
    assert_int_equal(
        codes_redeem(env->db, "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAAA", T0, &g, NULL),
        PV_ERR_FORMAT);
    assert_int_equal(codes_redeem(env->db, "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA", T0, &g, &e),
                     PV_ERR_NOT_FOUND);
    /* Bad arguments. */
    assert_int_equal(codes_create(env->db, "bad name", NULL, NULL, NULL, T0, 60, code, NULL),
                     PV_ERR_INVALID_ARG);
    assert_string_equal(code, "");
    assert_int_equal(codes_create(env->db, "x", "6b1f0a0e-8d3c-4c1e-9a57-2f7f3f6a9d10", NULL, NULL,
                                  T0, 60, code, NULL),
                     PV_ERR_INVALID_ARG);
    assert_int_equal(codes_create(env->db, "x", "6b1f0a0e-8d3c-4c1e-9a57-2f7f3f6a9d10", "Owner",
                                  NULL, T0, 60, code, NULL),
                     PV_ERR_INVALID_ARG);
    assert_int_equal(codes_create(env->db, "x", NULL, NULL, NULL, T0, 0, code, NULL),
                     PV_ERR_INVALID_ARG);
}

#define BOTH(f)                                                                                    \
    cmocka_unit_test_prestate_setup_teardown(f, setup, teardown, (void *)st_backends[0]),          \
        cmocka_unit_test_prestate_setup_teardown(f, setup, teardown, (void *)st_backends[1])

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_format_and_redeem),
        BOTH(test_grant_and_expiry),
        BOTH(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
