/* SPDX-License-Identifier: Apache-2.0 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "pavise/cbor.h"
#include "pavise/crypto.h"

static void assert_bytes_hex(const pv_buf *b, const char *hex)
{
    size_t n;
    uint8_t *want = tu_unhex(hex, &n);
    if (pv_buf_len(b) != n || (n > 0 && memcmp(pv_buf_data(b), want, n) != 0)) {
        char got[256];
        pv_hex_encode(pv_buf_data(b), pv_buf_len(b), got, sizeof(got));
        fail_msg("encoded %s, want %s", got, hex);
    }
    free(want);
}

/* pv_cbor_check on hex input; returns the code and keeps the message in *e. */
static int check_hex(const char *hex, unsigned depth, pv_err *e)
{
    size_t n;
    uint8_t *p = tu_unhex(hex, &n);
    pv_err_clear(e);
    int r = pv_cbor_check(p, n, depth, e);
    free(p);
    return r;
}

static cbor_item_t *decode_hex(const char *hex)
{
    size_t n;
    uint8_t *p = tu_unhex(hex, &n);
    cbor_item_t *it = NULL;
    pv_err e;
    int r = pv_cbor_decode(p, n, &it, &e);
    free(p);
    if (r != PV_OK) {
        fail_msg("decode %s: %s", hex, pv_err_msg(&e));
    }
    return it;
}

/* ---- encoder ---- */

enum kind { K_UINT, K_INT, K_TEXT, K_BYTES, K_BOOL, K_NULL, K_TAG };

static const struct {
    enum kind kind;
    uint64_t u;
    int64_t i;
    const char *s;
    size_t n;
    const char *hex; /* RFC 8949 Appendix A */
} vectors[] = {
    {K_UINT, 0, 0, NULL, 0, "00"},
    {K_UINT, 1, 0, NULL, 0, "01"},
    {K_UINT, 23, 0, NULL, 0, "17"},
    {K_UINT, 24, 0, NULL, 0, "1818"},
    {K_UINT, 25, 0, NULL, 0, "1819"},
    {K_UINT, 100, 0, NULL, 0, "1864"},
    {K_UINT, 255, 0, NULL, 0, "18ff"},
    {K_UINT, 256, 0, NULL, 0, "190100"},
    {K_UINT, 1000, 0, NULL, 0, "1903e8"},
    {K_UINT, 65535, 0, NULL, 0, "19ffff"},
    {K_UINT, 65536, 0, NULL, 0, "1a00010000"},
    {K_UINT, 1000000, 0, NULL, 0, "1a000f4240"},
    {K_UINT, 4294967295u, 0, NULL, 0, "1affffffff"},
    {K_UINT, 4294967296u, 0, NULL, 0, "1b0000000100000000"},
    {K_UINT, 1000000000000u, 0, NULL, 0, "1b000000e8d4a51000"},
    {K_UINT, UINT64_MAX, 0, NULL, 0, "1bffffffffffffffff"},
    {K_INT, 0, 0, NULL, 0, "00"},
    {K_INT, 0, 10, NULL, 0, "0a"},
    {K_INT, 0, -1, NULL, 0, "20"},
    {K_INT, 0, -10, NULL, 0, "29"},
    {K_INT, 0, -24, NULL, 0, "37"},
    {K_INT, 0, -25, NULL, 0, "3818"},
    {K_INT, 0, -100, NULL, 0, "3863"},
    {K_INT, 0, -1000, NULL, 0, "3903e7"},
    {K_INT, 0, INT64_MIN, NULL, 0, "3b7fffffffffffffff"},
    {K_INT, 0, INT64_MAX, NULL, 0, "1b7fffffffffffffff"},
    {K_TEXT, 0, 0, "", 0, "60"},
    {K_TEXT, 0, 0, "a", 1, "6161"},
    {K_TEXT, 0, 0, "IETF", 4, "6449455446"},
    {K_TEXT, 0, 0, "\"\\", 2, "62225c"},
    {K_TEXT, 0, 0, "\xc3\xbc", 2, "62c3bc"},
    {K_TEXT, 0, 0, "\xe6\xb0\xb4", 3, "63e6b0b4"},
    {K_TEXT, 0, 0, "\xf0\x90\x85\x91", 4, "64f0908591"},
    {K_BYTES, 0, 0, "", 0, "40"},
    {K_BYTES, 0, 0, "\x01\x02\x03\x04", 4, "4401020304"},
    {K_BOOL, 0, 0, NULL, 0, "f4"},
    {K_BOOL, 1, 0, NULL, 0, "f5"},
    {K_NULL, 0, 0, NULL, 0, "f6"},
    {K_TAG, 18, 0, NULL, 0, "d2"},
    {K_TAG, 1, 0, NULL, 0, "c1"},
    {K_TAG, 32, 0, NULL, 0, "d820"},
    {K_TAG, 55799, 0, NULL, 0, "d9d9f7"},
};

static void test_encode_rfc8949_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        pv_buf *b = pv_buf_new(64);
        pv_cbor_enc enc;
        pv_cbor_enc_init(&enc, b);
        switch (vectors[i].kind) {
        case K_UINT:
            pv_cbor_put_uint(&enc, vectors[i].u);
            break;
        case K_INT:
            pv_cbor_put_int(&enc, vectors[i].i);
            break;
        case K_TEXT:
            pv_cbor_put_text_n(&enc, vectors[i].s, vectors[i].n);
            break;
        case K_BYTES:
            pv_cbor_put_bytes(&enc, vectors[i].s, vectors[i].n);
            break;
        case K_BOOL:
            pv_cbor_put_bool(&enc, vectors[i].u != 0);
            break;
        case K_NULL:
            pv_cbor_put_null(&enc);
            break;
        case K_TAG:
            pv_cbor_put_tag(&enc, vectors[i].u);
            break;
        }
        assert_int_equal(pv_cbor_enc_result(&enc), PV_OK);
        assert_bytes_hex(b, vectors[i].hex);
        pv_buf_free(b);
    }
}

static void test_encode_containers(void **state)
{
    (void)state;
    pv_buf *b = pv_buf_new(256);
    pv_cbor_enc enc;

    pv_cbor_enc_init(&enc, b);
    pv_cbor_put_array(&enc, 0);
    assert_int_equal(pv_cbor_enc_result(&enc), PV_OK);
    assert_bytes_hex(b, "80");

    /* [1, [2, 3], [4, 5]] */
    pv_buf_reset(b);
    pv_cbor_put_array(&enc, 3);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_array(&enc, 2);
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_uint(&enc, 3);
    pv_cbor_put_array(&enc, 2);
    pv_cbor_put_uint(&enc, 4);
    pv_cbor_put_uint(&enc, 5);
    assert_bytes_hex(b, "8301820203820405");

    /* {} and {1: 2, 3: 4} */
    pv_buf_reset(b);
    pv_cbor_put_map(&enc, 0);
    assert_bytes_hex(b, "a0");
    pv_buf_reset(b);
    pv_cbor_put_map(&enc, 2);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_uint(&enc, 3);
    pv_cbor_put_uint(&enc, 4);
    assert_bytes_hex(b, "a201020304");

    /* 25 items: the count takes one extra byte. */
    pv_buf_reset(b);
    pv_cbor_put_array(&enc, 25);
    for (unsigned i = 1; i <= 25; i++) {
        pv_cbor_put_uint(&enc, i);
    }
    assert_bytes_hex(b, "98190102030405060708090a0b0c0d0e0f101112131415161718181819");

    /* {"a": 1, "b": [2, 3]} and 0("2013-03-21T20:04:00Z") */
    pv_buf_reset(b);
    pv_cbor_put_map(&enc, 2);
    pv_cbor_put_text(&enc, "a");
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_text(&enc, "b");
    pv_cbor_put_array(&enc, 2);
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_uint(&enc, 3);
    assert_bytes_hex(b, "a26161016162820203");
    pv_buf_reset(b);
    pv_cbor_put_tag(&enc, 0);
    pv_cbor_put_text(&enc, "2013-03-21T20:04:00Z");
    assert_bytes_hex(b, "c074323031332d30332d32315432303a30343a30305a");
    assert_int_equal(pv_cbor_enc_result(&enc), PV_OK);
    pv_buf_free(b);
}

static void test_encode_sticky_too_large(void **state)
{
    (void)state;
    pv_buf *b = pv_buf_new(4);
    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, b);
    pv_cbor_put_uint(&enc, 1);        /* 1 byte */
    pv_cbor_put_bytes(&enc, "ab", 2); /* 3 bytes: exactly full */
    assert_int_equal(pv_cbor_enc_result(&enc), PV_OK);
    assert_int_equal(pv_buf_len(b), 4);
    pv_cbor_put_uint(&enc, 0); /* one byte too many */
    assert_int_equal(pv_cbor_enc_result(&enc), PV_ERR_TOO_LARGE);
    pv_buf_reset(b);
    pv_cbor_put_uint(&enc, 0); /* room again, but the error sticks */
    pv_cbor_put_null(&enc);
    assert_int_equal(pv_buf_len(b), 0);
    assert_int_equal(pv_cbor_enc_result(&enc), PV_ERR_TOO_LARGE);
    pv_buf_free(b);

    /* A string that does not fit is not written partly. */
    b = pv_buf_new(8);
    pv_cbor_enc_init(&enc, b);
    pv_cbor_put_text(&enc, "too long text");
    assert_int_equal(pv_cbor_enc_result(&enc), PV_ERR_TOO_LARGE);
    assert_int_equal(pv_buf_len(b), 0);
    pv_buf_free(b);
}

static void test_encode_invalid_args(void **state)
{
    (void)state;
    pv_buf *b = pv_buf_new(64);
    pv_cbor_enc enc;

    pv_cbor_enc_init(&enc, NULL);
    pv_cbor_put_uint(&enc, 1);
    assert_int_equal(pv_cbor_enc_result(&enc), PV_ERR_INVALID_ARG);

    pv_cbor_enc_init(&enc, b);
    pv_cbor_put_text_n(&enc, "\xc0\x80", 2); /* overlong NUL */
    assert_int_equal(pv_cbor_enc_result(&enc), PV_ERR_INVALID_ARG);
    pv_cbor_enc_init(&enc, b);
    pv_cbor_put_text_n(&enc, "a\0b", 3);
    assert_int_equal(pv_cbor_enc_result(&enc), PV_ERR_INVALID_ARG);
    pv_cbor_enc_init(&enc, b);
    pv_cbor_put_text(&enc, NULL);
    assert_int_equal(pv_cbor_enc_result(&enc), PV_ERR_INVALID_ARG);
    pv_cbor_enc_init(&enc, b);
    pv_cbor_put_bytes(&enc, NULL, 1);
    assert_int_equal(pv_cbor_enc_result(&enc), PV_ERR_INVALID_ARG);
    pv_cbor_enc_init(&enc, b);
    pv_cbor_put_bytes(&enc, NULL, 0);
    assert_int_equal(pv_cbor_enc_result(&enc), PV_OK);
    assert_bytes_hex(b, "40");
    pv_buf_free(b);
}

/* ---- pv_cbor_check ---- */

static void test_check_accepts(void **state)
{
    (void)state;
    pv_err e;
    static const char *const ok[] = {
        "00",
        "1bffffffffffffffff",
        "3bffffffffffffffff",
        "1801", /* non-shortest forms are accepted */
        "9a00000001 00",
        "f4",
        "f5",
        "f6",
        "40",
        "60",
        "80",
        "a0",
        "8301820203820405",
        "a201020304",
        "d2 84 43a10126 a0 4401020304 40",
        "c1 c1 c1 00",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (check_hex(ok[i], PV_CBOR_MAX_DEPTH, &e) != PV_OK) {
            fail_msg("%s refused: %s", ok[i], pv_err_msg(&e));
        }
    }
}

static void test_check_rejects(void **state)
{
    (void)state;
    pv_err e;
    static const struct {
        const char *hex;
        int code;
        const char *msg; /* a substring of the message */
    } bad[] = {
        {"", PV_ERR_TRUNCATED, "empty"},
        {"9f 01 02 ff", PV_ERR_FORMAT, "indefinite-length array at offset 0"},
        {"bf 01 02 ff", PV_ERR_FORMAT, "indefinite-length map"},
        {"5f 41 01 ff", PV_ERR_FORMAT, "indefinite-length byte string"},
        {"7f 61 61 ff", PV_ERR_FORMAT, "indefinite-length text string"},
        {"82 01 7f 61 61 ff", PV_ERR_FORMAT, "offset 2"},
        {"ff", PV_ERR_FORMAT, "break"},
        {"1f", PV_ERR_FORMAT, "additional information 31"},
        {"df 00", PV_ERR_FORMAT, "additional information 31"},
        {"1c", PV_ERR_FORMAT, "reserved additional information 28"},
        {"3d", PV_ERR_FORMAT, "reserved additional information 29"},
        {"5e", PV_ERR_FORMAT, "reserved additional information 30"},
        {"81 fc", PV_ERR_FORMAT, "offset 1"},
        {"f9 3c00", PV_ERR_FORMAT, "floating-point"},
        {"fa 47c35000", PV_ERR_FORMAT, "floating-point"},
        {"fb 3ff199999999999a", PV_ERR_FORMAT, "floating-point"},
        {"f7", PV_ERR_FORMAT, "undefined"},
        {"f0", PV_ERR_FORMAT, "simple value 16"},
        {"f8 ff", PV_ERR_FORMAT, "simple value 255"},
        {"f8 14", PV_ERR_FORMAT, "simple value 20"}, /* two-byte false is not false */
        {"01 00", PV_ERR_FORMAT, "trailing"},
        {"80 80", PV_ERR_FORMAT, "trailing"},
        {"9b ffffffffffffffff", PV_ERR_TRUNCATED, "cannot fit"},
        {"9b 7fffffffffffffff 00 00", PV_ERR_TRUNCATED, "cannot fit"},
        {"83 01 02", PV_ERR_TRUNCATED, "cannot fit"},
        {"bb 8000000000000000 00 00", PV_ERR_TRUNCATED, "cannot fit"},
        {"bb ffffffffffffffff 00 00", PV_ERR_TRUNCATED, "cannot fit"},
        {"a2 01 02 03", PV_ERR_TRUNCATED, "cannot fit"},
        {"5b ffffffffffffffff 00", PV_ERR_TRUNCATED, "runs past"},
        {"7b 8000000000000000", PV_ERR_TRUNCATED, "runs past"},
        {"44 010203", PV_ERR_TRUNCATED, "runs past"},
        {"19 01", PV_ERR_TRUNCATED, "inside the head"},
        {"c1", PV_ERR_TRUNCATED, "input ends"},
        {"82 01", PV_ERR_TRUNCATED, "cannot fit"},
        {"82 80", PV_ERR_TRUNCATED, "cannot fit"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = check_hex(bad[i].hex, PV_CBOR_MAX_DEPTH, &e);
        if (r != bad[i].code || strstr(pv_err_msg(&e), bad[i].msg) == NULL) {
            fail_msg("'%s': got %d '%s', want %d '%s'", bad[i].hex, r, pv_err_msg(&e), bad[i].code,
                     bad[i].msg);
        }
    }
}

static void test_check_truncated_everywhere(void **state)
{
    (void)state;
    /* {1: [h'0102', "ab", -300, {2: true}], 3: 18(null), 4: 1000000} */
    size_t n;
    uint8_t *p = tu_unhex("a3 01 84 420102 626162 39012b a1 02 f5 03 d2 f6 04 1a000f4240", &n);
    pv_err e;
    assert_int_equal(pv_cbor_check(p, n, PV_CBOR_MAX_DEPTH, &e), PV_OK);
    for (size_t cut = 0; cut < n; cut++) {
        int r = pv_cbor_check(p, cut, PV_CBOR_MAX_DEPTH, &e);
        if (r == PV_OK) {
            fail_msg("prefix of %zu bytes accepted", cut);
        }
        cbor_item_t *it = NULL;
        assert_int_not_equal(pv_cbor_decode(p, cut, &it, &e), PV_OK);
        assert_null(it);
    }
    free(p);
}

static void test_check_depth(void **state)
{
    (void)state;
    pv_err e;
    uint8_t p[40];

    /* 16 nested arrays around 0 are fine, 17 are not. */
    memset(p, 0x81, 16);
    p[16] = 0x00;
    assert_int_equal(pv_cbor_check(p, 17, PV_CBOR_MAX_DEPTH, &e), PV_OK);
    memset(p, 0x81, 17);
    p[17] = 0x00;
    assert_int_equal(pv_cbor_check(p, 18, PV_CBOR_MAX_DEPTH, &e), PV_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "offset 16"));
    cbor_item_t *it = NULL;
    assert_int_equal(pv_cbor_decode(p, 18, &it, &e), PV_ERR_FORMAT);
    assert_null(it);
    /* The innermost container counts even when empty. */
    memset(p, 0x81, 16);
    p[16] = 0x80;
    assert_int_equal(pv_cbor_check(p, 17, PV_CBOR_MAX_DEPTH, &e), PV_ERR_FORMAT);

    /* Tags and maps count as well. */
    memset(p, 0xc1, 16);
    p[16] = 0x00;
    assert_int_equal(pv_cbor_check(p, 17, PV_CBOR_MAX_DEPTH, &e), PV_OK);
    memset(p, 0xc1, 17);
    p[17] = 0x00;
    assert_int_equal(pv_cbor_check(p, 18, PV_CBOR_MAX_DEPTH, &e), PV_ERR_FORMAT);
    for (int i = 0; i < 17; i++) {
        p[2 * i] = 0xa1;
        p[2 * i + 1] = 0x01;
    }
    p[34] = 0x00;
    assert_int_equal(pv_cbor_check(p, 35, PV_CBOR_MAX_DEPTH, &e), PV_ERR_FORMAT);
    assert_int_equal(pv_cbor_check(p + 2, 33, PV_CBOR_MAX_DEPTH, &e), PV_OK);

    /* A smaller limit from the caller; a larger one is capped. */
    assert_int_equal(check_hex("8181818100", 4, &e), PV_OK);
    assert_int_equal(check_hex("8181818100", 3, &e), PV_ERR_FORMAT);
    assert_int_equal(check_hex("00", 0, &e), PV_OK);
    assert_int_equal(check_hex("80", 0, &e), PV_ERR_FORMAT);
    memset(p, 0x81, 17);
    p[17] = 0x00;
    assert_int_equal(pv_cbor_check(p, 18, 1000, &e), PV_ERR_FORMAT);

    /* Siblings do not add up: [[[0]], [[0]], [[0]]] at depth 3. */
    assert_int_equal(check_hex("83 818100 818100 818100", 3, &e), PV_OK);
}

/* ---- decoding and getters ---- */

static void test_decode_and_getters(void **state)
{
    (void)state;
    /* {1: 24, -1: -500, 2: h'0102', 3: "hé", 4: true, 5: null,
     *  6: 18446744073709551615, 7: -9223372036854775809} */
    cbor_item_t *m = decode_hex("a8 01 1818 20 3901f3 02 420102 03 6368c3a9 04 f5 05 f6"
                                " 06 1bffffffffffffffff 07 3b8000000000000000");
    pv_err e;
    uint64_t u;
    int64_t i;
    bool bv;
    const uint8_t *bp;
    size_t bn;
    char *s;

    assert_int_equal(pv_cbor_get_uint(pv_cbor_map_get(m, 1), &u, &e), PV_OK);
    assert_int_equal(u, 24);
    assert_int_equal(pv_cbor_get_int(pv_cbor_map_get(m, 1), &i, &e), PV_OK);
    assert_int_equal(i, 24);
    assert_int_equal(pv_cbor_get_int(pv_cbor_map_get(m, -1), &i, &e), PV_OK);
    assert_int_equal(i, -500);
    assert_int_equal(pv_cbor_get_uint(pv_cbor_map_get(m, -1), &u, &e), PV_ERR_FORMAT);
    assert_string_equal(e.msg, "expected an unsigned integer, got a negative integer");
    assert_int_equal(pv_cbor_get_bytes(pv_cbor_map_get(m, 2), &bp, &bn, &e), PV_OK);
    assert_int_equal(bn, 2);
    assert_memory_equal(bp, "\x01\x02", 2);
    assert_int_equal(pv_cbor_get_text(pv_cbor_map_get(m, 3), 16, &s, &e), PV_OK);
    assert_string_equal(s, "h\xc3\xa9");
    free(s);
    assert_int_equal(pv_cbor_get_text(pv_cbor_map_get(m, 3), 2, &s, &e), PV_ERR_TOO_LARGE);
    assert_null(s);
    assert_int_equal(pv_cbor_get_text(pv_cbor_map_get(m, 2), 16, &s, &e), PV_ERR_FORMAT);
    assert_string_equal(e.msg, "expected a text string, got a byte string");
    assert_int_equal(pv_cbor_get_bool(pv_cbor_map_get(m, 4), &bv, &e), PV_OK);
    assert_true(bv);
    assert_int_equal(pv_cbor_get_bool(pv_cbor_map_get(m, 5), &bv, &e), PV_ERR_FORMAT);
    assert_string_equal(e.msg, "expected a boolean, got null");
    assert_int_equal(pv_cbor_get_bytes(pv_cbor_map_get(m, 5), &bp, &bn, &e), PV_ERR_FORMAT);
    assert_null(bp);
    assert_int_equal(pv_cbor_get_uint(pv_cbor_map_get(m, 6), &u, &e), PV_OK);
    assert_true(u == UINT64_MAX);
    assert_int_equal(pv_cbor_get_int(pv_cbor_map_get(m, 6), &i, &e), PV_ERR_FORMAT);
    assert_int_equal(pv_cbor_get_int(pv_cbor_map_get(m, 7), &i, &e), PV_ERR_FORMAT);
    assert_int_equal(pv_cbor_get_uint(pv_cbor_map_get(m, 99), &u, &e), PV_ERR_FORMAT);
    assert_string_equal(e.msg, "expected an unsigned integer, got nothing");
    cbor_decref(&m);

    /* Empty byte and text strings give valid pointers. */
    m = decode_hex("82 40 60");
    cbor_item_t **items = cbor_array_handle(m);
    assert_int_equal(pv_cbor_get_bytes(items[0], &bp, &bn, &e), PV_OK);
    assert_non_null(bp);
    assert_int_equal(bn, 0);
    assert_int_equal(pv_cbor_get_text(items[1], 0, &s, &e), PV_OK);
    assert_string_equal(s, "");
    free(s);
    cbor_decref(&m);

    /* Extremes of int64. */
    m = decode_hex("82 1b7fffffffffffffff 3b7fffffffffffffff");
    items = cbor_array_handle(m);
    assert_int_equal(pv_cbor_get_int(items[0], &i, &e), PV_OK);
    assert_true(i == INT64_MAX);
    assert_int_equal(pv_cbor_get_int(items[1], &i, &e), PV_OK);
    assert_true(i == INT64_MIN);
    cbor_decref(&m);
}

static void test_get_text_utf8(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "62 c0 80",       /* overlong NUL */
        "62 c1 bf",       /* overlong */
        "63 e0 80 80",    /* overlong 3-byte */
        "63 e0 9f bf",    /* overlong 3-byte (U+07FF) */
        "64 f0 80 80 80", /* overlong 4-byte */
        "64 f0 8f bf bf", /* overlong 4-byte (U+FFFF) */
        "63 ed a0 80",    /* U+D800 surrogate */
        "63 ed bf bf",    /* U+DFFF surrogate */
        "64 f4 90 80 80", /* U+110000 */
        "64 f5 80 80 80", /* lead byte above F4 */
        "61 ff",          /* never valid */
        "61 80",          /* lone continuation */
        "61 c3",          /* truncated 2-byte */
        "62 e6 b0",       /* truncated 3-byte */
        "63 f0 90 85",    /* truncated 4-byte */
        "62 c3 41",       /* bad continuation */
        "63 61 00 62",    /* embedded NUL */
        "61 00",          /* NUL alone */
    };
    static const char *const good[] = {
        "62 c2 80",       /* U+0080 */
        "63 e0 a0 80",    /* U+0800 */
        "63 ed 9f bf",    /* U+D7FF */
        "63 ee 80 80",    /* U+E000 */
        "63 ef bf bf",    /* U+FFFF */
        "64 f0 90 80 80", /* U+10000 */
        "64 f4 8f bf bf", /* U+10FFFF */
        "61 7f",
    };
    pv_err e;
    char *s;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n;
        uint8_t *p = tu_unhex(bad[i], &n);
        /* libcbor refuses invalid UTF-8 itself, so build the item directly to reach
         * pv_cbor_get_text; pv_cbor_decode must refuse the encoded form (except NUL). */
        cbor_item_t *it = cbor_build_stringn((const char *)p + 1, n - 1);
        assert_non_null(it);
        if (pv_cbor_get_text(it, 64, &s, &e) != PV_ERR_FORMAT) {
            fail_msg("%s accepted as text", bad[i]);
        }
        assert_null(s);
        cbor_decref(&it);
        if (memchr(p + 1, 0, n - 1) == NULL) {
            assert_int_equal(pv_cbor_decode(p, n, &it, &e), PV_ERR_FORMAT);
            assert_non_null(strstr(e.msg, "not valid UTF-8"));
            assert_null(it);
        }
        free(p);
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        cbor_item_t *it = decode_hex(good[i]);
        if (pv_cbor_get_text(it, 64, &s, &e) != PV_OK) {
            fail_msg("%s refused: %s", good[i], pv_err_msg(&e));
        }
        free(s);
        cbor_decref(&it);
    }
    cbor_item_t *it = decode_hex("63 61 00 62");
    assert_int_equal(pv_cbor_get_text(it, 64, &s, &e), PV_ERR_FORMAT);
    assert_string_equal(e.msg, "text string contains a NUL byte at 1");
    cbor_decref(&it);
    /* pv_cbor_check itself does not look inside text strings. */
    assert_int_equal(check_hex("62 c0 80", PV_CBOR_MAX_DEPTH, &e), PV_OK);
}

static void test_decode_short_tags(void **state)
{
    (void)state;
    /* Tags 6..20 in one byte (libcbor 0.8 refuses them on its own), nested, next to
     * strings whose contents look like such tags. */
    static const struct {
        const char *hex;
        uint64_t tag;
    } cases[] = {
        {"c6 00", 6},     {"d2 a0", 18}, {"d4 80", 20}, {"d2 84 43 d2d3d4 a0 f6 41 d2", 18},
        {"d8 12 80", 18}, {"c5 00", 5},  {"d5 00", 21},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cbor_item_t *it = decode_hex(cases[i].hex);
        assert_true(cbor_isa_tag(it));
        assert_int_equal(cbor_tag_value(it), cases[i].tag);
        cbor_decref(&it);
    }
    cbor_item_t *it = decode_hex("d2 84 43 d2d3d4 a0 f6 41 d2");
    cbor_item_t *arr = cbor_tag_item(it);
    const uint8_t *bp;
    size_t bn;
    pv_err e;
    assert_int_equal(cbor_array_size(arr), 4);
    assert_int_equal(pv_cbor_get_bytes(cbor_array_handle(arr)[0], &bp, &bn, &e), PV_OK);
    assert_int_equal(bn, 3);
    assert_memory_equal(bp, "\xd2\xd3\xd4", 3);
    cbor_decref(&arr);
    cbor_decref(&it);
    it = decode_hex("82 c7 c8 00 d1 40");
    cbor_decref(&it);
}

static void test_map_get_negative_keys(void **state)
{
    (void)state;
    /* {-1: 1, -100: 2, 0: 3, 18446744073709551615: 4, -18446744073709551616: 5,
     *  9223372036854775807: 6, -9223372036854775808: 7} */
    cbor_item_t *m = decode_hex("a7 20 01 3863 02 00 03 1bffffffffffffffff 04"
                                " 3bffffffffffffffff 05 1b7fffffffffffffff 06"
                                " 3b7fffffffffffffff 07");
    uint64_t u;
    pv_err e;
    static const struct {
        int64_t key;
        uint64_t value;
    } want[] = {{-1, 1}, {-100, 2}, {0, 3}, {INT64_MAX, 6}, {INT64_MIN, 7}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(pv_cbor_get_uint(pv_cbor_map_get(m, want[i].key), &u, &e), PV_OK);
        assert_int_equal(u, want[i].value);
    }
    /* 2^64-1 and -2^64 are outside int64 and never match (not even -1 or 0). */
    assert_int_equal(pv_cbor_get_uint(pv_cbor_map_get(m, -1), &u, &e), PV_OK);
    assert_int_equal(u, 1);
    assert_null(pv_cbor_map_get(m, 1));
    assert_null(pv_cbor_map_get(m, -2));
    assert_null(pv_cbor_map_get(NULL, 0));
    cbor_decref(&m);

    /* Non-integer keys are skipped. */
    m = decode_hex("a2 6161 01 20 02");
    assert_int_equal(pv_cbor_get_uint(pv_cbor_map_get(m, -1), &u, &e), PV_OK);
    assert_int_equal(u, 2);
    cbor_decref(&m);

    /* Not a map. */
    m = decode_hex("82 01 02");
    assert_null(pv_cbor_map_get(m, 0));
    cbor_decref(&m);
}

static void test_map_check_keys(void **state)
{
    (void)state;
    static const int64_t allowed[] = {1, -7, 4};
    pv_err e;
    cbor_item_t *m = decode_hex("a3 01 00 26 00 04 00");
    assert_int_equal(pv_cbor_map_check_keys(m, allowed, 3, &e), PV_OK);
    cbor_decref(&m);

    m = decode_hex("a0");
    assert_int_equal(pv_cbor_map_check_keys(m, allowed, 3, &e), PV_OK);
    assert_int_equal(pv_cbor_map_check_keys(m, NULL, 0, &e), PV_OK);
    cbor_decref(&m);

    m = decode_hex("a2 01 00 02 00");
    assert_int_equal(pv_cbor_map_check_keys(m, allowed, 3, &e), PV_ERR_FORMAT);
    assert_string_equal(e.msg, "map key 2 is not allowed");
    cbor_decref(&m);

    m = decode_hex("a3 01 00 26 00 01 00");
    assert_int_equal(pv_cbor_map_check_keys(m, allowed, 3, &e), PV_ERR_FORMAT);
    assert_string_equal(e.msg, "map key 1 appears more than once");
    cbor_decref(&m);

    m = decode_hex("a2 26 00 26 01");
    assert_int_equal(pv_cbor_map_check_keys(m, allowed, 3, &e), PV_ERR_FORMAT);
    assert_string_equal(e.msg, "map key -7 appears more than once");
    cbor_decref(&m);

    m = decode_hex("a1 6161 00");
    assert_int_equal(pv_cbor_map_check_keys(m, allowed, 3, &e), PV_ERR_FORMAT);
    assert_string_equal(e.msg, "map key of type a text string is not allowed");
    cbor_decref(&m);

    /* 2^64-1 must not pass for -1, nor -2^64 for 0. */
    static const int64_t minus_one[] = {-1, 0};
    m = decode_hex("a1 1bffffffffffffffff 00");
    assert_int_equal(pv_cbor_map_check_keys(m, minus_one, 2, &e), PV_ERR_FORMAT);
    assert_string_equal(e.msg, "map key 18446744073709551615 is not allowed");
    cbor_decref(&m);
    m = decode_hex("a1 3bffffffffffffffff 00");
    assert_int_equal(pv_cbor_map_check_keys(m, minus_one, 2, &e), PV_ERR_FORMAT);
    cbor_decref(&m);

    m = decode_hex("80");
    assert_int_equal(pv_cbor_map_check_keys(m, allowed, 3, &e), PV_ERR_FORMAT);
    assert_string_equal(e.msg, "expected a map, got an array");
    cbor_decref(&m);
}

static void test_decode_round_trip(void **state)
{
    (void)state;
    pv_buf *b = pv_buf_new(1024);
    pv_cbor_enc enc;
    pv_err e;
    pv_cbor_enc_init(&enc, b);
    pv_cbor_put_tag(&enc, 18);
    pv_cbor_put_map(&enc, 3);
    pv_cbor_put_int(&enc, -3);
    pv_cbor_put_text(&enc, "x");
    pv_cbor_put_uint(&enc, 70000);
    pv_cbor_put_array(&enc, 2);
    pv_cbor_put_bool(&enc, false);
    pv_cbor_put_null(&enc);
    pv_cbor_put_uint(&enc, 5);
    pv_cbor_put_bytes(&enc, "\x00\xff", 2);
    assert_int_equal(pv_cbor_enc_result(&enc), PV_OK);

    cbor_item_t *it = NULL;
    assert_int_equal(pv_cbor_decode(pv_buf_data(b), pv_buf_len(b), &it, &e), PV_OK);
    assert_true(cbor_isa_tag(it));
    assert_int_equal(cbor_tag_value(it), 18);
    cbor_item_t *m = cbor_tag_item(it);
    char *s;
    assert_int_equal(pv_cbor_get_text(pv_cbor_map_get(m, -3), 8, &s, &e), PV_OK);
    assert_string_equal(s, "x");
    free(s);
    cbor_item_t *a = pv_cbor_map_get(m, 70000);
    assert_true(cbor_isa_array(a));
    assert_int_equal(cbor_array_size(a), 2);
    cbor_decref(&m);
    cbor_decref(&it);

    /* Trailing bytes after a valid item. */
    assert_int_equal(pv_buf_append_u8(b, 0), PV_OK);
    assert_int_equal(pv_cbor_decode(pv_buf_data(b), pv_buf_len(b), &it, &e), PV_ERR_FORMAT);
    assert_null(it);
    pv_buf_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_rfc8949_vectors),
        cmocka_unit_test(test_encode_containers),
        cmocka_unit_test(test_encode_sticky_too_large),
        cmocka_unit_test(test_encode_invalid_args),
        cmocka_unit_test(test_check_accepts),
        cmocka_unit_test(test_check_rejects),
        cmocka_unit_test(test_check_truncated_everywhere),
        cmocka_unit_test(test_check_depth),
        cmocka_unit_test(test_decode_and_getters),
        cmocka_unit_test(test_get_text_utf8),
        cmocka_unit_test(test_decode_short_tags),
        cmocka_unit_test(test_map_get_negative_keys),
        cmocka_unit_test(test_map_check_keys),
        cmocka_unit_test(test_decode_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
