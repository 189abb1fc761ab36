/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"

#include "nonce.h"

static const char dev_a[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char dev_b[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static void fixed_key(uint8_t key[NONCE_KEY_LEN], uint8_t fill)
{
    memset(key, fill, NONCE_KEY_LEN);
}

static void test_issue_check(void **state)
{
    (void)state;
    uint8_t key[NONCE_KEY_LEN], n1[PV_NONCE_LEN], n2[PV_NONCE_LEN];
    int64_t exp = 0, exp2 = 0;
    pv_err e;
    fixed_key(key, 7);
    assert_int_equal(nonce_issue(key, dev_a, 1000, n1, &exp, &e), PV_OK);
    assert_int_equal(exp, 1000 + NONCE_TTL_SECONDS);
    assert_int_equal(nonce_issue(key, dev_a, 1000, n2, &exp, &e), PV_OK);
    assert_memory_not_equal(n1, n2, PV_NONCE_LEN); /* random part */
    assert_int_equal(nonce_check(key, dev_a, n1, 1000, &exp2, &e), PV_OK);
    assert_int_equal(exp2, exp);
    assert_int_equal(nonce_check(key, dev_a, n1, 1000 + NONCE_TTL_SECONDS - 1, &exp2, &e), PV_OK);
}

static void test_refused(void **state)
{
    (void)state;
    uint8_t key[NONCE_KEY_LEN], other[NONCE_KEY_LEN], n[PV_NONCE_LEN], t[PV_NONCE_LEN];
    int64_t exp = 0;
    pv_err e;
    fixed_key(key, 7);
    fixed_key(other, 8);
    assert_int_equal(nonce_issue(key, dev_a, 1000, n, &exp, &e), PV_OK);
    /* Another device's nonce. */
    assert_int_equal(nonce_check(key, dev_b, n, 1000, &exp, &e), PV_ERR_SIGNATURE);
    assert_int_equal(exp, 0);
    /* Another service's key. */
    assert_int_equal(nonce_check(other, dev_a, n, 1000, &exp, &e), PV_ERR_SIGNATURE);
    /* Expired: at and after the expiry. */
    assert_int_equal(nonce_check(key, dev_a, n, 1000 + NONCE_TTL_SECONDS, &exp, &e),
                     PV_ERR_EXPIRED);
    assert_int_equal(nonce_check(key, dev_a, n, 1000000, &exp, &e), PV_ERR_EXPIRED);
    /* Any altered byte (the expiry included) fails the MAC. */
    for (size_t i = 0; i < PV_NONCE_LEN; i++) {
        memcpy(t, n, sizeof(t));
        t[i] ^= 0x01;
        assert_int_equal(nonce_check(key, dev_a, t, 1000, &exp, &e), PV_ERR_SIGNATURE);
    }
    /* Not a device ID. */
    assert_int_equal(nonce_check(key, "abc", n, 1000, &exp, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(nonce_issue(key, "abc", 1000, t, &exp, &e), PV_ERR_INVALID_ARG);
}

static void test_key_file(void **state)
{
    (void)state;
    uint8_t k1[NONCE_KEY_LEN], k2[NONCE_KEY_LEN], zero[NONCE_KEY_LEN] = {0};
    pv_err e;
    char *dir = tu_mkdtemp("nonce_key");
    assert_int_equal(nonce_key_load(dir, false, k1, &e), PV_ERR_NOT_FOUND);
    assert_int_equal(nonce_key_load(dir, true, k1, &e), PV_OK);
    assert_memory_not_equal(k1, zero, NONCE_KEY_LEN);
    /* The second load (creating or not) reads the same key. */
    assert_int_equal(nonce_key_load(dir, true, k2, &e), PV_OK);
    assert_memory_equal(k1, k2, NONCE_KEY_LEN);
    assert_int_equal(nonce_key_load(dir, false, k2, &e), PV_OK);
    assert_memory_equal(k1, k2, NONCE_KEY_LEN);
    char *path = tu_path(dir, NONCE_KEY_FILE);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* A damaged key file is refused, never replaced. */
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("short", f);
    fclose(f);
    assert_int_equal(nonce_key_load(dir, true, k2, &e), PV_ERR_FORMAT);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue_check),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_key_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
