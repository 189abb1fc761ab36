/* SPDX-License-Identifier: Apache-2.0 */
/* The app channel's codec (src/device/appchan.c): every message both ways, byte for byte,
 * and every malformed shape refused with its reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "appchan.h"

/* Parses hex and expects code; returns the message for further checks (its text, if
 * any, pointed into the freed packet: not to be read). */
static ac_msg parse_hex(const char *hex, int want)
{
    size_t len;
    uint8_t *p = tu_unhex(hex, &len);
    ac_msg m;
    pv_err e;
    pv_err_clear(&e);
    int r = ac_parse(p, len, &m, &e);
    if (r != want) {
        fail_msg("%s: got %d (%s), wanted %d", hex, r, pv_err_msg(&e), want);
    }
    if (r != PV_OK) {
        assert_int_equal(e.code, want);
        assert_true(strncmp(e.msg, "app channel: ", 13) == 0);
        ac_msg zero;
        memset(&zero, 0, sizeof(zero));
        assert_memory_equal(&m, &zero, sizeof(m)); /* nothing half-filled */
    }
    free(p);
    return m;
}

/* Encodes m, expects exactly hex, and parses it back to the same fields. */
static void round_trip(const ac_msg *m, const char *hex)
{
    uint8_t out[AC_MAX_MSG];
    size_t want_len;
    uint8_t *want = tu_unhex(hex, &want_len);
    size_t n = ac_encode(m, out);
    assert_int_equal(n, want_len);
    assert_memory_equal(out, want, n);
    ac_msg back;
    assert_int_equal(ac_parse(out, n, &back, NULL), PV_OK);
    assert_int_equal(back.type, m->type);
    if (m->type == AC_LOG) {
        assert_int_equal(back.text_len, m->text_len);
        assert_memory_equal(back.text, m->text, m->text_len);
        assert_ptr_equal(back.text, (const char *)out + 5); /* points into the packet */
        back.text = m->text;
    }
    if (m->type == AC_SIGN) {
        assert_int_equal(back.digest_len, m->digest_len);
        assert_memory_equal(back.digest, m->digest, m->digest_len);
        assert_ptr_equal(back.digest, out + 4); /* points into the packet */
        back.digest = m->digest;
    }
    assert_memory_equal(&back, m, sizeof(back));
    free(want);
}

static ac_msg msg(ac_type t)
{
    ac_msg m;
    memset(&m, 0, sizeof(m));
    m.type = t;
    return m;
}

static void test_every_message_both_ways(void **state)
{
    (void)state;
    ac_msg m = msg(AC_LOG);
    m.level = PV_APP_LOG_WARN;
    m.text = "h\xc3\xa9llo\tw\xe2\x82\xac \xf0\x9f\x98\x80";
    m.text_len = strlen(m.text);
    round_trip(&m, "01 01 0011 02 68c3a96c6c6f0977e282ac20f09f9880");
    m.text = NULL;
    m.text_len = 0;
    m.level = PV_APP_LOG_DEBUG;
    round_trip(&m, "01 01 0001 00"); /* an empty line is a line */

    m = msg(AC_EVENTS_REGISTER);
    m.mask = PV_APP_EVENT_UPDATE_READY | PV_APP_EVENT_DEVICE_AUTH;
    round_trip(&m, "01 02 0004 00000005");
    m.mask = 0;
    round_trip(&m, "01 02 0004 00000000");

    m = msg(AC_DEFER);
    m.event_id = 0x0102030405060708ULL;
    m.seconds = PV_APP_MAX_DEFER_SECONDS;
    round_trip(&m, "01 03 000c 0102030405060708 00015180");
    m.seconds = 0;
    round_trip(&m, "01 03 000c 0102030405060708 00000000");

    m = msg(AC_WATCHDOG_SET);
    m.timeout_ms = 1500;
    round_trip(&m, "01 04 0004 000005dc");
    m.timeout_ms = 0;
    round_trip(&m, "01 04 0004 00000000");
    m.timeout_ms = PV_APP_WATCHDOG_MIN_MS;
    round_trip(&m, "01 04 0004 00000064");
    m.timeout_ms = PV_APP_WATCHDOG_MAX_MS;
    round_trip(&m, "01 04 0004 0036ee80");

    m = msg(AC_WATCHDOG_KICK);
    round_trip(&m, "01 05 0000");
    m = msg(AC_STATUS_QUERY);
    round_trip(&m, "01 06 0000");

    m = msg(AC_POWER);
    m.action = PV_APP_POWER_REBOOT;
    round_trip(&m, "01 07 0001 01");
    m.action = PV_APP_POWER_PROFILE_LOW;
    round_trip(&m, "01 07 0001 03");

    m = msg(AC_EVENT);
    m.kind = PV_APP_EVENT_UPDATE_READY;
    m.event_id = 7;
    m.seconds = 3600;
    round_trip(&m, "01 40 0010 00000001 0000000000000007 00000e10");
    m.kind = PV_APP_EVENT_DEVICE_AUTH;
    m.seconds = 0;
    round_trip(&m, "01 40 0010 00000004 0000000000000007 00000000");

    m = msg(AC_STATUS);
    m.ready = 1;
    m.used_kb = 12;
    m.quota_kb = 0xffffffffffffffffULL;
    round_trip(&m, "01 41 0011 01 000000000000000c ffffffffffffffff");

    m = msg(AC_RESULT);
    m.request = AC_DEFER;
    m.result = 0;
    round_trip(&m, "01 42 0005 03 00000000");
    m.result = PV_APP_ERR_DENIED;
    round_trip(&m, "01 42 0005 03 fffffffe");
    m.request = AC_STATUS_QUERY;
    m.result = PV_APP_ERR_NOT_READY;
    round_trip(&m, "01 42 0005 06 fffffffa");
    m.request = AC_POWER;
    m.result = PV_APP_ERR_LIMIT;
    round_trip(&m, "01 42 0005 07 fffffffb");
    m.request = AC_SIGN;
    m.result = PV_APP_ERR_IO;
    round_trip(&m, "01 42 0005 08 fffffffc");
}

/* sign: the three digest lengths; signature: 64 bytes r || s. */
static void test_sign_and_signature(void **state)
{
    (void)state;
    uint8_t digest[64];
    char hex[512];
    for (size_t i = 0; i < sizeof(digest); i++) {
        digest[i] = (uint8_t)(0xa0 + i);
    }
    static const size_t lens[] = {32, 48, 64};
    for (size_t k = 0; k < 3; k++) {
        ac_msg m = msg(AC_SIGN);
        m.digest = digest;
        m.digest_len = lens[k];
        int n = snprintf(hex, sizeof(hex), "01 08 %04zx ", lens[k]);
        for (size_t i = 0; i < lens[k]; i++) {
            n += snprintf(hex + n, sizeof(hex) - (size_t)n, "%02x", digest[i]);
        }
        round_trip(&m, hex);
    }
    ac_msg m = msg(AC_SIGNATURE);
    for (size_t i = 0; i < AC_SIG_LEN; i++) {
        m.signature[i] = (uint8_t)i;
    }
    round_trip(&m, "01 43 0040 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
                   "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f");

    /* Every other digest length is malformed, whatever the bytes. */
    static const size_t bad[] = {0, 1, 20, 31, 33, 47, 49, 63, 65, 128};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        int n = snprintf(hex, sizeof(hex), "01 08 %04zx ", bad[k]);
        for (size_t i = 0; i < bad[k]; i++) {
            n += snprintf(hex + n, sizeof(hex) - (size_t)n, "00");
        }
        parse_hex(hex, PV_ERR_FORMAT);
        ac_msg b = msg(AC_SIGN);
        b.digest = digest;
        b.digest_len = bad[k] > 64 ? 64 + bad[k] : bad[k];
        uint8_t out[AC_MAX_MSG];
        assert_int_equal(ac_encode(&b, out), 0);
    }
    ac_msg b = msg(AC_SIGN); /* a length without bytes */
    b.digest_len = 32;
    uint8_t out[AC_MAX_MSG];
    assert_int_equal(ac_encode(&b, out), 0);
    /* A signature one byte short or long. */
    parse_hex("01 43 003f 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
              "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e",
              PV_ERR_FORMAT);
    parse_hex("01 43 0041 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
              "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40",
              PV_ERR_FORMAT);
    /* Directions: an app may sign, not send a signature. */
    size_t len;
    uint8_t *p = tu_unhex("01 43 0040 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c"
                          "1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
                          &len);
    assert_int_equal(ac_parse_from_app(p, len, &m, NULL), PV_ERR_FORMAT);
    free(p);
    assert_true(ac_has_reply(AC_SIGN));
    assert_false(ac_has_reply(AC_SIGNATURE));
    assert_string_equal(ac_type_name(AC_SIGN), "sign");
    assert_string_equal(ac_type_name(AC_SIGNATURE), "signature");
}

static void test_longest_log_line(void **state)
{
    (void)state;
    char text[AC_MAX_LOG + 1];
    uint8_t out[AC_MAX_MSG];
    memset(text, 'x', sizeof(text));
    ac_msg m = msg(AC_LOG);
    m.level = PV_APP_LOG_INFO;
    m.text = text;
    m.text_len = AC_MAX_LOG;
    size_t n = ac_encode(&m, out);
    assert_int_equal(n, AC_HEADER + 1 + AC_MAX_LOG);
    ac_msg back;
    assert_int_equal(ac_parse(out, n, &back, NULL), PV_OK);
    assert_int_equal(back.text_len, AC_MAX_LOG);
    /* One byte more is refused both ways. */
    m.text_len = AC_MAX_LOG + 1;
    assert_int_equal(ac_encode(&m, out), 0);
    uint8_t big[AC_HEADER + 2 + AC_MAX_LOG];
    memcpy(big, "\x01\x01", 2);
    big[2] = (uint8_t)((AC_MAX_LOG + 2) >> 8);
    big[3] = (uint8_t)(AC_MAX_LOG + 2);
    big[4] = 1;
    memset(big + 5, 'x', AC_MAX_LOG + 1);
    pv_err e;
    assert_int_equal(ac_parse(big, sizeof(big), &back, &e), PV_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "log"));
}

static void test_header_shapes(void **state)
{
    (void)state;
    parse_hex("", PV_ERR_FORMAT);
    parse_hex("01", PV_ERR_FORMAT);
    parse_hex("01 05 00", PV_ERR_FORMAT);
    parse_hex("02 05 0000", PV_ERR_UNSUPPORTED);
    parse_hex("00 05 0000", PV_ERR_UNSUPPORTED);
    parse_hex("ff 05 0000", PV_ERR_UNSUPPORTED);
    parse_hex("01 05 0001", PV_ERR_FORMAT);    /* says 1 byte, holds 0 */
    parse_hex("01 05 0000 00", PV_ERR_FORMAT); /* a byte after the body */
    parse_hex("01 07 0001 0101", PV_ERR_FORMAT);
    parse_hex("01 07 0002 01", PV_ERR_FORMAT);
    parse_hex("01 07 ffff 01", PV_ERR_FORMAT);
    /* Unknown types, just around the known ones. */
    parse_hex("01 00 0000", PV_ERR_FORMAT);
    parse_hex("01 08 0000", PV_ERR_FORMAT);
    parse_hex("01 3f 0000", PV_ERR_FORMAT);
    parse_hex("01 43 0000", PV_ERR_FORMAT);
    parse_hex("01 ff 0000", PV_ERR_FORMAT);
    /* Larger than any packet may be. */
    uint8_t *big = calloc(1, AC_MAX_MSG + 1);
    big[0] = 1;
    big[1] = AC_LOG;
    big[2] = (uint8_t)((AC_MAX_MSG - 3) >> 8);
    big[3] = (uint8_t)(AC_MAX_MSG - 3);
    ac_msg m;
    assert_int_equal(ac_parse(big, AC_MAX_MSG + 1, &m, NULL), PV_ERR_FORMAT);
    free(big);
    /* No packet, no output. */
    assert_int_equal(ac_parse(NULL, 4, &m, NULL), PV_ERR_INVALID_ARG);
    assert_int_equal(ac_parse((const uint8_t *)"\x01\x05\x00\x00", 4, NULL, NULL),
                     PV_ERR_INVALID_ARG);
}

static void test_body_sizes(void **state)
{
    (void)state;
    /* Each fixed-size type, one byte short and one byte long. */
    parse_hex("01 01 0000", PV_ERR_FORMAT); /* a log without its level */
    parse_hex("01 02 0003 000000", PV_ERR_FORMAT);
    parse_hex("01 02 0005 0000000000", PV_ERR_FORMAT);
    parse_hex("01 03 000b 0000000000000001 000000", PV_ERR_FORMAT);
    parse_hex("01 03 000d 0000000000000001 0000000000", PV_ERR_FORMAT);
    parse_hex("01 04 0003 000000", PV_ERR_FORMAT);
    parse_hex("01 04 0005 0000000000", PV_ERR_FORMAT);
    parse_hex("01 05 0001 00", PV_ERR_FORMAT);
    parse_hex("01 06 0001 00", PV_ERR_FORMAT);
    parse_hex("01 07 0000", PV_ERR_FORMAT);
    parse_hex("01 07 0002 0100", PV_ERR_FORMAT);
    parse_hex("01 40 000f 00000001 0000000000000001 000000", PV_ERR_FORMAT);
    parse_hex("01 40 0011 00000001 0000000000000001 0000000000", PV_ERR_FORMAT);
    parse_hex("01 41 0010 01 0000000000000000 00000000000000", PV_ERR_FORMAT);
    parse_hex("01 41 0012 01 0000000000000000 000000000000000000", PV_ERR_FORMAT);
    parse_hex("01 42 0004 03 000000", PV_ERR_FORMAT);
    parse_hex("01 42 0006 03 0000000000", PV_ERR_FORMAT);
}

static void test_field_ranges(void **state)
{
    (void)state;
    parse_hex("01 01 0002 04 41", PV_ERR_FORMAT); /* level */
    parse_hex("01 01 0002 ff 41", PV_ERR_FORMAT);
    parse_hex("01 02 0004 00000008", PV_ERR_FORMAT); /* unknown event bit */
    parse_hex("01 02 0004 80000000", PV_ERR_FORMAT);
    parse_hex("01 02 0004 00000007", PV_OK);
    parse_hex("01 03 000c 0000000000000000 00000001", PV_ERR_FORMAT); /* event id 0 */
    parse_hex("01 03 000c 0000000000000001 00015181", PV_ERR_FORMAT); /* 24 h + 1 s */
    parse_hex("01 03 000c ffffffffffffffff ffffffff", PV_ERR_FORMAT);
    parse_hex("01 04 0004 00000001", PV_ERR_FORMAT); /* under the watchdog minimum */
    parse_hex("01 04 0004 00000063", PV_ERR_FORMAT);
    parse_hex("01 04 0004 0036ee81", PV_ERR_FORMAT); /* over the maximum */
    parse_hex("01 04 0004 ffffffff", PV_ERR_FORMAT);
    parse_hex("01 07 0001 00", PV_ERR_FORMAT); /* power action */
    parse_hex("01 07 0001 04", PV_ERR_FORMAT);
    parse_hex("01 40 0010 00000000 0000000000000001 00000000", PV_ERR_FORMAT); /* no kind */
    parse_hex("01 40 0010 00000003 0000000000000001 00000000", PV_ERR_FORMAT); /* two */
    parse_hex("01 40 0010 00000008 0000000000000001 00000000", PV_ERR_FORMAT); /* unknown */
    parse_hex("01 40 0010 00000001 0000000000000000 00000000", PV_ERR_FORMAT); /* id 0 */
    parse_hex("01 40 0010 00000001 0000000000000001 00015181", PV_ERR_FORMAT);
    parse_hex("01 40 0010 00000002 0000000000000001 00000000", PV_OK);
    parse_hex("01 41 0011 02 0000000000000000 0000000000000000", PV_ERR_FORMAT); /* ready */
    parse_hex("01 41 0011 ff 0000000000000000 0000000000000000", PV_ERR_FORMAT);
    /* Results answer only the requests that have an answer... */
    parse_hex("01 42 0005 01 00000000", PV_ERR_FORMAT); /* log */
    parse_hex("01 42 0005 05 00000000", PV_ERR_FORMAT); /* kick */
    parse_hex("01 42 0005 00 00000000", PV_ERR_FORMAT);
    parse_hex("01 42 0005 40 00000000", PV_ERR_FORMAT);
    parse_hex("01 42 0005 42 00000000", PV_ERR_FORMAT);
    /* ...with a result code a runtime may send. */
    parse_hex("01 42 0005 02 00000001", PV_ERR_FORMAT);
    parse_hex("01 42 0005 02 7fffffff", PV_ERR_FORMAT);
    parse_hex("01 42 0005 02 ffffffff", PV_ERR_FORMAT); /* -1: no runtime, from a runtime */
    parse_hex("01 42 0005 02 fffffff9", PV_ERR_FORMAT); /* -7 */
    parse_hex("01 42 0005 02 80000000", PV_ERR_FORMAT);
    ac_msg m = parse_hex("01 42 0005 02 fffffffc", PV_OK);
    assert_int_equal(m.result, PV_APP_ERR_IO);
}

static void test_log_text(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "01 01 0003 01 4100",     /* NUL */
        "01 01 0003 01 410a",     /* newline */
        "01 01 0003 01 410d",     /* carriage return */
        "01 01 0003 01 1b5b",     /* ESC [ */
        "01 01 0002 01 7f",       /* DEL */
        "01 01 0003 01 c29b",     /* C1 CSI, U+009B */
        "01 01 0003 01 c285",     /* C1 NEL, U+0085 */
        "01 01 0002 01 80",       /* a lone continuation byte */
        "01 01 0002 01 c3",       /* a sequence cut short */
        "01 01 0004 01 e282",     /* shortened body: lengths disagree */
        "01 01 0003 01 e282",     /* three-byte sequence, two bytes */
        "01 01 0003 01 c0af",     /* overlong '/' */
        "01 01 0003 01 c1bf",     /* overlong */
        "01 01 0004 01 e080af",   /* overlong three-byte */
        "01 01 0005 01 f08082af", /* overlong four-byte */
        "01 01 0004 01 eda080",   /* surrogate U+D800 */
        "01 01 0004 01 edbfbf",   /* surrogate U+DFFF */
        "01 01 0005 01 f4908080", /* U+110000 */
        "01 01 0002 01 f5",       /* never a lead byte */
        "01 01 0002 01 ff",       /* never a lead byte */
        "01 01 0004 01 c3a9c3",   /* good, then cut short */
        "01 01 0004 01 e2 41 ac", /* a non-continuation inside a sequence */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        parse_hex(bad[i], PV_ERR_FORMAT);
    }
    /* Just inside the limits. */
    parse_hex("01 01 0003 01 4109", PV_OK); /* tab */
    parse_hex("01 01 0003 01 c2a0", PV_OK); /* U+00A0, first after C1 */
    parse_hex("01 01 0003 01 c2bf", PV_OK);
    parse_hex("01 01 0004 01 e0a080", PV_OK);   /* U+0800 */
    parse_hex("01 01 0004 01 ed9fbf", PV_OK);   /* U+D7FF */
    parse_hex("01 01 0004 01 ee8080", PV_OK);   /* U+E000 */
    parse_hex("01 01 0005 01 f0908080", PV_OK); /* U+10000 */
    parse_hex("01 01 0005 01 f48fbfbf", PV_OK); /* U+10FFFF */
    parse_hex("01 01 0002 01 7e", PV_OK);
    parse_hex("01 01 0002 01 20", PV_OK);
    size_t len;
    uint8_t *p = tu_unhex("01 01 0004 03 616263", &len);
    ac_msg m;
    assert_int_equal(ac_parse(p, len, &m, NULL), PV_OK);
    assert_int_equal(m.level, PV_APP_LOG_ERROR);
    assert_int_equal(m.text_len, 3);
    assert_memory_equal(m.text, "abc", 3);
    assert_ptr_equal(m.text, (const char *)p + 5);
    free(p);
}

static void test_encode_refuses_invalid(void **state)
{
    (void)state;
    uint8_t out[AC_MAX_MSG];
    ac_msg m = msg(AC_LOG);
    m.level = 4;
    assert_int_equal(ac_encode(&m, out), 0);
    m.level = 0;
    m.text = "a\nb";
    m.text_len = 3;
    assert_int_equal(ac_encode(&m, out), 0);
    m.text = NULL;
    m.text_len = 1;
    assert_int_equal(ac_encode(&m, out), 0);
    m = msg(AC_EVENTS_REGISTER);
    m.mask = 8;
    assert_int_equal(ac_encode(&m, out), 0);
    m = msg(AC_DEFER);
    m.event_id = 0;
    assert_int_equal(ac_encode(&m, out), 0);
    m.event_id = 1;
    m.seconds = PV_APP_MAX_DEFER_SECONDS + 1;
    assert_int_equal(ac_encode(&m, out), 0);
    m = msg(AC_WATCHDOG_SET);
    m.timeout_ms = 99;
    assert_int_equal(ac_encode(&m, out), 0);
    m = msg(AC_POWER);
    assert_int_equal(ac_encode(&m, out), 0);
    m = msg(AC_EVENT);
    m.event_id = 1;
    m.kind = 6;
    assert_int_equal(ac_encode(&m, out), 0);
    m = msg(AC_STATUS);
    m.ready = 2;
    assert_int_equal(ac_encode(&m, out), 0);
    m = msg(AC_RESULT);
    m.request = AC_LOG;
    assert_int_equal(ac_encode(&m, out), 0);
    m.request = AC_DEFER;
    m.result = 1;
    assert_int_equal(ac_encode(&m, out), 0);
    m.result = -7;
    assert_int_equal(ac_encode(&m, out), 0);
    m = msg((ac_type)0);
    assert_int_equal(ac_encode(&m, out), 0);
    m = msg((ac_type)300);
    assert_int_equal(ac_encode(&m, out), 0);
    m = msg((ac_type)-1);
    assert_int_equal(ac_encode(&m, out), 0);
    assert_int_equal(ac_encode(NULL, out), 0);
}

static void test_direction(void **state)
{
    (void)state;
    size_t len;
    ac_msg m;
    pv_err e;
    uint8_t *p = tu_unhex("01 40 0010 00000001 0000000000000001 00000000", &len);
    assert_int_equal(ac_parse(p, len, &m, NULL), PV_OK);
    assert_int_equal(ac_parse_from_app(p, len, &m, &e), PV_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "only the runtime sends"));
    assert_int_equal(m.type, 0);
    free(p);
    p = tu_unhex("01 42 0005 03 00000000", &len);
    assert_int_equal(ac_parse_from_app(p, len, &m, NULL), PV_ERR_FORMAT);
    free(p);
    p = tu_unhex("01 41 0011 01 0000000000000000 0000000000000000", &len);
    assert_int_equal(ac_parse_from_app(p, len, &m, NULL), PV_ERR_FORMAT);
    free(p);
    p = tu_unhex("01 05 0000", &len);
    assert_int_equal(ac_parse_from_app(p, len, &m, NULL), PV_OK);
    assert_int_equal(m.type, AC_WATCHDOG_KICK);
    free(p);
    p = tu_unhex("02 05 0000", &len);
    assert_int_equal(ac_parse_from_app(p, len, &m, NULL), PV_ERR_UNSUPPORTED);
    free(p);
}

static void test_names_and_replies(void **state)
{
    (void)state;
    assert_string_equal(ac_type_name(AC_LOG), "log");
    assert_string_equal(ac_type_name(AC_RESULT), "result");
    assert_string_equal(ac_type_name(0), "unknown");
    assert_string_equal(ac_type_name(200), "unknown");
    assert_false(ac_has_reply(AC_LOG));
    assert_true(ac_has_reply(AC_EVENTS_REGISTER));
    assert_true(ac_has_reply(AC_DEFER));
    assert_true(ac_has_reply(AC_WATCHDOG_SET));
    assert_false(ac_has_reply(AC_WATCHDOG_KICK));
    assert_true(ac_has_reply(AC_STATUS_QUERY));
    assert_true(ac_has_reply(AC_POWER));
    assert_false(ac_has_reply(AC_EVENT));
    assert_false(ac_has_reply(AC_STATUS));
    assert_false(ac_has_reply(AC_RESULT));
    assert_false(ac_has_reply(0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_message_both_ways),
        cmocka_unit_test(test_sign_and_signature),
        cmocka_unit_test(test_longest_log_line),
        cmocka_unit_test(test_header_shapes),
        cmocka_unit_test(test_body_sizes),
        cmocka_unit_test(test_field_ranges),
        cmocka_unit_test(test_log_text),
        cmocka_unit_test(test_encode_refuses_invalid),
        cmocka_unit_test(test_direction),
        cmocka_unit_test(test_names_and_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
