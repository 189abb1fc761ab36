/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "testutil.h"

#include "pavise/buf.h"
#include "pavise/cbor.h"
#include "pavise/manifest.h"

static void fill(pv_manifest *m)
{
    memset(m, 0, sizeof(*m));
    assert_int_equal(pv_uuid_parse("6f1c0c8e-3a1e-4d5b-9a43-0c4f2e9b7d21", m->component_id), 0);
    assert_int_equal(pv_uuid_parse("00000000-0000-4000-8000-000000000001", m->image_id), 0);
    m->type = PV_IMAGE_APPLICATION;
    m->name = strdup("hello");
    m->version = strdup("1.2.3");
    m->security_counter = 7;
    m->build_time = 1700000000;
    m->target = strdup("board-x");
    m->entry_point = strdup("/bin/hello");
    pv_strlist_add(&m->args, "--verbose");
    pv_strlist_add(&m->caps.allowed_connections, "example.com");
    pv_strlist_add(&m->caps.allowed_connections, "192.0.2.1");
    m->caps.tcp_server_ports[0] = 8080;
    m->caps.n_tcp_server_ports = 1;
    pv_strlist_add(&m->caps.peripherals, "/dev/ttyS1");
    m->caps.mutable_storage_kb = 64;
    m->caps.device_authentication = true;
    pv_strlist_add(&m->caps.power_controls, "ForceReboot");
    m->caps.memory_limit_kb = 8192;
    m->payload_size = 10240;
    memset(m->payload_sha256, 0xab, sizeof(m->payload_sha256));
    memset(m->signer_key_id, 0xcd, sizeof(m->signer_key_id));
}

static pv_buf *encode(const pv_manifest *m)
{
    pv_buf *b = pv_buf_new(PV_MANIFEST_MAX_SIZE);
    assert_non_null(b);
    assert_int_equal(pv_manifest_encode(m, b, NULL), 0);
    return b;
}

static void test_round_trip_is_deterministic(void **state)
{
    (void)state;
    pv_manifest m, d;
    fill(&m);
    pv_buf *b = encode(&m);
    assert_int_equal(pv_manifest_decode(pv_buf_data(b), pv_buf_len(b), &d, NULL), 0);
    assert_memory_equal(d.component_id, m.component_id, PV_UUID_LEN);
    assert_string_equal(d.name, "hello");
    assert_string_equal(d.target, "board-x");
    assert_int_equal(d.security_counter, 7);
    assert_int_equal(d.caps.tcp_server_ports[0], 8080);
    assert_string_equal(d.caps.peripherals.v[0], "/dev/ttyS1");
    assert_true(d.caps.device_authentication);
    assert_false(d.caps.software_update_deferral);
    pv_buf *b2 = encode(&d);
    assert_int_equal(pv_buf_len(b2), pv_buf_len(b));
    assert_memory_equal(pv_buf_data(b2), pv_buf_data(b), pv_buf_len(b));
    pv_buf_free(b);
    pv_buf_free(b2);
    pv_manifest_free(&m);
    pv_manifest_free(&d);
}

static void expect_invalid(pv_manifest *m, const char *needle)
{
    pv_buf *b = pv_buf_new(PV_MANIFEST_MAX_SIZE);
    pv_err e;
    pv_err_clear(&e);
    assert_int_not_equal(pv_manifest_encode(m, b, &e), 0);
    if (strstr(e.msg, needle) == NULL) {
        fail_msg("'%s' not in '%s'", needle, e.msg);
    }
    pv_buf_free(b);
    pv_manifest_free(m);
}

static void test_validation(void **state)
{
    (void)state;
    pv_manifest m;
    fill(&m);
    memset(m.component_id, 0, PV_UUID_LEN);
    expect_invalid(&m, "component ID");
    fill(&m);
    m.type = 9;
    expect_invalid(&m, "image type");
    fill(&m);
    free(m.name);
    m.name = strdup("");
    expect_invalid(&m, "name");
    fill(&m);
    free(m.entry_point);
    m.entry_point = strdup("/bin/../sh");
    expect_invalid(&m, "'..'");
    fill(&m);
    free(m.entry_point);
    m.entry_point = strdup("bin/app");
    expect_invalid(&m, "absolute");
    fill(&m);
    pv_strlist_add(&m.caps.peripherals, "/dev/ttyS1");
    expect_invalid(&m, "listed twice");
    fill(&m);
    pv_strlist_add(&m.caps.peripherals, "/etc/passwd");
    expect_invalid(&m, "under /dev/");
    fill(&m);
    pv_strlist_add(&m.caps.allowed_connections, "bad_host!");
    expect_invalid(&m, "host name");
    fill(&m);
    pv_strlist_add(&m.caps.allowed_connections, "EXAMPLE.com");
    expect_invalid(&m, "listed twice");
    fill(&m);
    m.caps.mutable_storage_kb = PV_MAX_STORAGE_KB + 1;
    expect_invalid(&m, "mutable storage");
    fill(&m);
    m.caps.memory_limit_kb = 10;
    expect_invalid(&m, "memory limit");
    fill(&m);
    pv_strlist_add(&m.caps.power_controls, "SelfDestruct");
    expect_invalid(&m, "power control");
    fill(&m);
    m.caps.tcp_server_ports[1] = 8080;
    m.caps.n_tcp_server_ports = 2;
    expect_invalid(&m, "listed twice");
    fill(&m);
    m.security_counter = (uint64_t)INT64_MAX + 1;
    expect_invalid(&m, "security counter");
}

static void test_hostnames(void **state)
{
    (void)state;
    const char *good[] = {"example.com", "a.b-c.d",   "*.azure-devices.net",
                          "::1",         "192.0.2.1", "localhost"};
    const char *bad[] = {"",  "-a.com", "a-.com", "a..com",   "a.com.",
                         "*", "*.",     "a b",    "xn--\x01", "a.*.com"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(pv_manifest_check_hostname(good[i], NULL), 0);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (pv_manifest_check_hostname(bad[i], NULL) == 0) {
            fail_msg("'%s' accepted", bad[i]);
        }
    }
}

/* Re-encodes the manifest's map with one key replaced or added, to feed the decoder
 * input the encoder would never make. */
static void expect_decode_error(void (*mutate)(pv_cbor_enc *), int code, const char *needle)
{
    pv_buf *b = pv_buf_new(4096);
    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, b);
    mutate(&enc);
    assert_int_equal(pv_cbor_enc_result(&enc), 0);
    pv_manifest d;
    pv_err e;
    pv_err_clear(&e);
    assert_int_equal(pv_manifest_decode(pv_buf_data(b), pv_buf_len(b), &d, &e), code);
    if (strstr(e.msg, needle) == NULL) {
        fail_msg("'%s' not in '%s'", needle, e.msg);
    }
    pv_buf_free(b);
}

/* One capability entry that grants nothing: kind 0 false, 1 zero, 2 empty array. */
static uint64_t cap_key;
static int cap_kind;

static void put_caps(pv_cbor_enc *enc)
{
    if (cap_key == 0) {
        pv_cbor_put_map(enc, 0);
        return;
    }
    pv_cbor_put_map(enc, 1);
    pv_cbor_put_uint(enc, cap_key);
    if (cap_kind == 0) {
        pv_cbor_put_bool(enc, false);
    } else if (cap_kind == 1) {
        pv_cbor_put_uint(enc, 0);
    } else {
        pv_cbor_put_array(enc, 0);
    }
}

static void put_base(pv_cbor_enc *enc, size_t extra, uint64_t version, bool with_name)
{
    uint8_t id[16] = {1}, h[32] = {2};
    pv_cbor_put_map(enc, 13 + (with_name ? 1 : 0) + extra);
    pv_cbor_put_uint(enc, 1);
    pv_cbor_put_uint(enc, version);
    pv_cbor_put_uint(enc, 2);
    pv_cbor_put_bytes(enc, id, 16);
    pv_cbor_put_uint(enc, 3);
    pv_cbor_put_bytes(enc, id, 16);
    pv_cbor_put_uint(enc, 4);
    pv_cbor_put_uint(enc, 1);
    if (with_name) {
        pv_cbor_put_uint(enc, 5);
        pv_cbor_put_text(enc, "x");
    }
    pv_cbor_put_uint(enc, 6);
    pv_cbor_put_text(enc, "1");
    pv_cbor_put_uint(enc, 7);
    pv_cbor_put_uint(enc, 0);
    pv_cbor_put_uint(enc, 8);
    pv_cbor_put_uint(enc, 0);
    pv_cbor_put_uint(enc, 10);
    pv_cbor_put_text(enc, "/bin/x");
    pv_cbor_put_uint(enc, 11);
    pv_cbor_put_array(enc, 0);
    pv_cbor_put_uint(enc, 12);
    put_caps(enc);
    pv_cbor_put_uint(enc, 13);
    pv_cbor_put_uint(enc, 0);
    pv_cbor_put_uint(enc, 14);
    pv_cbor_put_bytes(enc, h, 32);
    pv_cbor_put_uint(enc, 15);
    pv_cbor_put_bytes(enc, h, 32);
}

static void m_unknown_key(pv_cbor_enc *enc)
{
    put_base(enc, 1, 1, true);
    pv_cbor_put_uint(enc, 99);
    pv_cbor_put_uint(enc, 0);
}

static void m_missing_name(pv_cbor_enc *enc)
{
    put_base(enc, 0, 1, false);
}

static void m_version_2(pv_cbor_enc *enc)
{
    put_base(enc, 0, 2, true);
}

static void m_valid(pv_cbor_enc *enc)
{
    put_base(enc, 0, 1, true);
}

static void m_name_number(pv_cbor_enc *enc)
{
    put_base(enc, 1, 1, false);
    pv_cbor_put_uint(enc, 5);
    pv_cbor_put_uint(enc, 42);
}

static void m_caps_false(pv_cbor_enc *enc)
{
    cap_key = 5;
    cap_kind = 0;
    put_base(enc, 0, 1, true);
    cap_key = 0;
}

static void m_caps_zero_storage(pv_cbor_enc *enc)
{
    cap_key = 4;
    cap_kind = 1;
    put_base(enc, 0, 1, true);
    cap_key = 0;
}

static void m_caps_zero_memory(pv_cbor_enc *enc)
{
    cap_key = 9;
    cap_kind = 1;
    put_base(enc, 0, 1, true);
    cap_key = 0;
}

static void m_caps_empty_list(pv_cbor_enc *enc)
{
    cap_key = 3;
    cap_kind = 2;
    put_base(enc, 0, 1, true);
    cap_key = 0;
}

static void m_caps_empty_ports(pv_cbor_enc *enc)
{
    cap_key = 2;
    cap_kind = 2;
    put_base(enc, 0, 1, true);
    cap_key = 0;
}

static void test_decode_errors(void **state)
{
    (void)state;
    pv_buf *b = pv_buf_new(4096);
    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, b);
    m_valid(&enc);
    pv_manifest d;
    assert_int_equal(pv_manifest_decode(pv_buf_data(b), pv_buf_len(b), &d, NULL), 0);
    pv_manifest_free(&d);
    pv_buf_free(b);
    expect_decode_error(m_unknown_key, PV_ERR_FORMAT, "99");
    expect_decode_error(m_missing_name, PV_ERR_FORMAT, "name");
    expect_decode_error(m_name_number, PV_ERR_FORMAT, "name");
    expect_decode_error(m_version_2, PV_ERR_UNSUPPORTED, "version 2");
    /* What grants nothing is absent: one encoding per manifest. */
    expect_decode_error(m_caps_false, PV_ERR_FORMAT, "present but false");
    expect_decode_error(m_caps_zero_storage, PV_ERR_FORMAT, "present but 0");
    expect_decode_error(m_caps_zero_memory, PV_ERR_FORMAT, "present but 0");
    expect_decode_error(m_caps_empty_list, PV_ERR_FORMAT, "present but empty");
    expect_decode_error(m_caps_empty_ports, PV_ERR_FORMAT, "TCP server ports");
}

static void test_decode_truncations(void **state)
{
    (void)state;
    pv_manifest m, d;
    fill(&m);
    pv_buf *b = encode(&m);
    for (size_t n = 0; n < pv_buf_len(b); n++) {
        assert_int_not_equal(pv_manifest_decode(pv_buf_data(b), n, &d, NULL), 0);
    }
    pv_buf_free(b);
    pv_manifest_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_is_deterministic),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_hostnames),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_decode_truncations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
