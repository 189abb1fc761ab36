/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "pavise/buf.h"

static void test_bounded_growth(void **state)
{
    (void)state;
    pv_buf *b = pv_buf_new(10);
    assert_int_equal(pv_buf_append(b, "hello", 5), 0);
    assert_int_equal(pv_buf_append(b, "world", 5), 0);
    assert_int_equal(pv_buf_len(b), 10);
    assert_int_equal(pv_buf_append(b, "!", 1), PV_ERR_TOO_LARGE);
    assert_int_equal(pv_buf_len(b), 10); /* unchanged by the refusal */
    assert_memory_equal(pv_buf_data(b), "helloworld", 10);
    pv_buf_reset(b);
    assert_int_equal(pv_buf_len(b), 0);
    pv_buf_free(b);
    pv_buf_free(NULL);
}

static void test_overflowing_sizes(void **state)
{
    (void)state;
    pv_buf *b = pv_buf_new(SIZE_MAX);
    uint8_t *p;
    assert_int_equal(pv_buf_append(b, "x", 1), 0);
    assert_int_equal(pv_buf_reserve(b, SIZE_MAX, &p), PV_ERR_TOO_LARGE);
    assert_null(p);
    pv_buf_free(b);
}

static void test_big_endian_round_trip(void **state)
{
    (void)state;
    pv_buf *b = pv_buf_new(64);
    pv_buf_set_secret(b);
    assert_int_equal(pv_buf_append_u8(b, 0x01), 0);
    assert_int_equal(pv_buf_append_u16be(b, 0x0203), 0);
    assert_int_equal(pv_buf_append_u32be(b, 0x04050607), 0);
    assert_int_equal(pv_buf_append_u64be(b, 0x08090a0b0c0d0e0fULL), 0);
    static const uint8_t want[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    assert_int_equal(pv_buf_len(b), sizeof(want));
    assert_memory_equal(pv_buf_data(b), want, sizeof(want));

    pv_reader r;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    pv_reader_init(&r, pv_buf_data(b), pv_buf_len(b));
    assert_int_equal(pv_reader_u8(&r, &u8), 0);
    assert_int_equal(pv_reader_u16be(&r, &u16), 0);
    assert_int_equal(pv_reader_u32be(&r, &u32), 0);
    assert_int_equal(pv_reader_u64be(&r, &u64), 0);
    assert_int_equal(u8, 1);
    assert_int_equal(u16, 0x0203);
    assert_int_equal(u32, 0x04050607);
    assert_true(u64 == 0x08090a0b0c0d0e0fULL);
    assert_int_equal(pv_reader_left(&r), 0);
    assert_int_equal(pv_reader_u8(&r, &u8), PV_ERR_TRUNCATED);
    pv_buf_free(b);
}

static void test_reader_refuses_short_reads(void **state)
{
    (void)state;
    const uint8_t data[3] = {1, 2, 3};
    pv_reader r;
    uint32_t v = 0;
    const uint8_t *p;
    pv_reader_init(&r, data, sizeof(data));
    assert_int_equal(pv_reader_u32be(&r, &v), PV_ERR_TRUNCATED);
    assert_int_equal(r.off, 0); /* left where it was */
    assert_int_equal(pv_reader_bytes(&r, SIZE_MAX, &p), PV_ERR_TRUNCATED);
    assert_int_equal(pv_reader_bytes(&r, 3, &p), 0);
    assert_ptr_equal(p, data);
}

static void test_steal(void **state)
{
    (void)state;
    pv_buf *b = pv_buf_new(16);
    pv_buf_append(b, "abc", 3);
    size_t len;
    uint8_t *d = pv_buf_steal(b, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(d, "abc", 3);
    assert_int_equal(pv_buf_len(b), 0);
    free(d);
    pv_buf_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounded_growth),
        cmocka_unit_test(test_overflowing_sizes),
        cmocka_unit_test(test_big_endian_round_trip),
        cmocka_unit_test(test_reader_refuses_short_reads),
        cmocka_unit_test(test_steal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
