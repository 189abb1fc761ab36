/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "pavise/base64.h"
#include "pavise/err.h"

static void roundtrip(const char *bytes, size_t n, pv_base64_variant v, const char *text)
{
    char *enc = pv_base64_encode((const uint8_t *)bytes, n, v);
    assert_non_null(enc);
    assert_string_equal(enc, text);
    uint8_t out[64];
    size_t len = 99;
    assert_int_equal(pv_base64_decode(enc, strlen(enc), v, out, sizeof(out), &len), PV_OK);
    assert_int_equal(len, n);
    assert_memory_equal(out, bytes, n);
    assert_true(pv_base64_decoded_max(strlen(enc)) >= n);
    free(enc);
}

/* RFC 4648 §10 test vectors, in both variants. */
static void test_vectors(void **state)
{
    (void)state;
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *std[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    const char *url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        roundtrip(in[i], strlen(in[i]), PV_BASE64_STD, std[i]);
        roundtrip(in[i], strlen(in[i]), PV_BASE64_URL, url[i]);
    }
    roundtrip("\xfb\xff\xfe", 3, PV_BASE64_STD, "+//+");
    roundtrip("\xfb\xff\xfe", 3, PV_BASE64_URL, "-__-");
}

static void test_refused(void **state)
{
    (void)state;
    uint8_t out[64];
    size_t len = 0;
    const char *bad_std[] = {"Zg",     "Zg=",  "Zg=a", "Z===",     "Zh==", "Zm9=",
                             "Zm9v\n", "Zm 9", "-__-", "Zg==Zg==", "=Zg=", "Zm8=Zm8="};
    for (size_t i = 0; i < sizeof(bad_std) / sizeof(bad_std[0]); i++) {
        assert_int_equal(
            pv_base64_decode(bad_std[i], strlen(bad_std[i]), PV_BASE64_STD, out, sizeof(out), &len),
            PV_ERR_FORMAT);
    }
    const char *bad_url[] = {"Z", "Zg==", "Zh", "Zm9", "+//+", "Zm9vY", "Zm.v"};
    for (size_t i = 0; i < sizeof(bad_url) / sizeof(bad_url[0]); i++) {
        assert_int_equal(
            pv_base64_decode(bad_url[i], strlen(bad_url[i]), PV_BASE64_URL, out, sizeof(out), &len),
            PV_ERR_FORMAT);
    }
    /* Too small an output. */
    assert_int_equal(pv_base64_decode("Zm9vYmFy", 8, PV_BASE64_STD, out, 5, &len),
                     PV_ERR_TOO_LARGE);
    assert_int_equal(pv_base64_decode("Zm9v", 4, 0, out, sizeof(out), &len), PV_ERR_INVALID_ARG);
    assert_null(pv_base64_encode((const uint8_t *)"x", 1, 0));
}

/* Every byte value, every length up to 40: decode(encode(x)) == x. */
static void test_all_bytes(void **state)
{
    (void)state;
    uint8_t in[256], out[256];
    for (size_t i = 0; i < sizeof(in); i++) {
        in[i] = (uint8_t)(i * 7 + 3);
    }
    for (int v = PV_BASE64_STD; v <= PV_BASE64_URL; v++) {
        for (size_t n = 0; n <= 40; n++) {
            char *enc = pv_base64_encode(in + n, n, (pv_base64_variant)v);
            assert_non_null(enc);
            size_t len = 0;
            assert_int_equal(
                pv_base64_decode(enc, strlen(enc), (pv_base64_variant)v, out, sizeof(out), &len),
                PV_OK);
            assert_int_equal(len, n);
            assert_memory_equal(out, in + n, n);
            free(enc);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_all_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
