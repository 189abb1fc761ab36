/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The app channel's codec (appchan.h, docs/protocol/app-channel.md). Parsing and encoding
 * share one table of body sizes and one field check, so the runtime can never send what
 * it would refuse to read, and ac_parse(ac_encode(m)) is m.
 */
#include "appchan.h"

#include <string.h>

#include "pavise/buf.h"

/* Body sizes; AC_LOG's is its minimum (the level), the text adds 0..AC_MAX_LOG; AC_SIGN's
 * is its shortest digest (check_fields takes the three lengths). */
static const struct {
    uint8_t type;
    const char *name;
    size_t body;
    bool from_app;
    bool reply;
} types[] = {
    {AC_LOG, "log", 1, true, false},
    {AC_EVENTS_REGISTER, "events-register", 4, true, true},
    {AC_DEFER, "defer", 12, true, true},
    {AC_WATCHDOG_SET, "watchdog-set", 4, true, true},
    {AC_WATCHDOG_KICK, "watchdog-kick", 0, true, false},
    {AC_STATUS_QUERY, "status-query", 0, true, true},
    {AC_POWER, "power", 1, true, true},
    {AC_SIGN, "sign", AC_MIN_DIGEST_LEN, true, true},
    {AC_EVENT, "event", 16, false, false},
    {AC_STATUS, "status", 17, false, false},
    {AC_RESULT, "result", 5, false, false},
    {AC_SIGNATURE, "signature", AC_SIG_LEN, false, false},
};

static int type_index(uint8_t type)
{
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (types[i].type == type) {
            return (int)i;
        }
    }
    return -1;
}

bool ac_has_reply(uint8_t type)
{
    int i = type_index(type);
    return i >= 0 && types[i].reply;
}

const char *ac_type_name(uint8_t type)
{
    int i = type_index(type);
    return i >= 0 ? types[i].name : "unknown";
}

/* Well-formed UTF-8 (RFC 3629: shortest form, no surrogates, at most U+10FFFF) without
 * control characters other than tab. The runtime writes these lines to its log and
 * operators read them on terminals: an escape sequence or a bare newline from an app
 * must not reach them. Returns the offset of the first bad byte, or n. */
static size_t text_check(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        uint32_t cp;
        size_t len;
        if (c < 0x80) {
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                return i;
            }
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return i; /* a continuation byte, an overlong lead (c0, c1) or beyond f4 */
        }
        if (n - i < len) {
            return i;
        }
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return i;
            }
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f)) {
            return i;
        }
        i += len;
    }
    return n;
}

/* The range of every field, for both directions. */
static int check_fields(const ac_msg *m, pv_err *e)
{
    const char *name = ac_type_name((uint8_t)m->type);
    switch (m->type) {
    case AC_LOG: {
        if (m->level > PV_APP_LOG_ERROR) {
            return pv_err_set(e, PV_ERR_FORMAT, "app channel: log level %u is unknown", m->level);
        }
        if (m->text_len > AC_MAX_LOG || (m->text == NULL && m->text_len > 0)) {
            return pv_err_set(e, PV_ERR_FORMAT, "app channel: log text of %zu bytes (at most %d)",
                              m->text_len, AC_MAX_LOG);
        }
        size_t bad = m->text_len > 0 ? text_check((const uint8_t *)m->text, m->text_len) : 0;
        if (bad < m->text_len) {
            return pv_err_set(e, PV_ERR_FORMAT,
                              "app channel: log text: byte %zu (0x%02x) is not UTF-8 or is a "
                              "control character",
                              bad, (unsigned)(uint8_t)m->text[bad]);
        }
        return PV_OK;
    }
    case AC_EVENTS_REGISTER:
        if ((m->mask & ~PV_APP_EVENT_ALL) != 0) {
            return pv_err_set(e, PV_ERR_FORMAT, "app channel: %s: unknown event bits 0x%x", name,
                              m->mask & ~PV_APP_EVENT_ALL);
        }
        return PV_OK;
    case AC_DEFER:
    case AC_EVENT:
        if (m->event_id == 0) {
            return pv_err_set(e, PV_ERR_FORMAT, "app channel: %s: event id 0", name);
        }
        if (m->seconds > PV_APP_MAX_DEFER_SECONDS) {
            return pv_err_set(e, PV_ERR_FORMAT, "app channel: %s: %u seconds (at most %u)", name,
                              m->seconds, PV_APP_MAX_DEFER_SECONDS);
        }
        if (m->type == AC_EVENT && ((m->kind & ~PV_APP_EVENT_ALL) != 0 || m->kind == 0 ||
                                    (m->kind & (m->kind - 1)) != 0)) {
            return pv_err_set(e, PV_ERR_FORMAT,
                              "app channel: event kind 0x%x is not one known kind", m->kind);
        }
        return PV_OK;
    case AC_WATCHDOG_SET:
        if (m->timeout_ms != 0 &&
            (m->timeout_ms < PV_APP_WATCHDOG_MIN_MS || m->timeout_ms > PV_APP_WATCHDOG_MAX_MS)) {
            return pv_err_set(e, PV_ERR_FORMAT,
                              "app channel: watchdog timeout %u ms (0, or %u..%u)", m->timeout_ms,
                              PV_APP_WATCHDOG_MIN_MS, PV_APP_WATCHDOG_MAX_MS);
        }
        return PV_OK;
    case AC_WATCHDOG_KICK:
    case AC_STATUS_QUERY:
        return PV_OK;
    case AC_POWER:
        if (m->action < PV_APP_POWER_REBOOT || m->action > PV_APP_POWER_PROFILE_LOW) {
            return pv_err_set(e, PV_ERR_FORMAT, "app channel: power action %u is unknown",
                              m->action);
        }
        return PV_OK;
    case AC_SIGN:
        if ((m->digest_len != 32 && m->digest_len != 48 && m->digest_len != 64) ||
            m->digest == NULL) {
            return pv_err_set(e, PV_ERR_FORMAT,
                              "app channel: sign: a digest of %zu bytes (32, 48 or 64)",
                              m->digest_len);
        }
        return PV_OK;
    case AC_SIGNATURE:
        return PV_OK;
    case AC_STATUS:
        if (m->ready > 1) {
            return pv_err_set(e, PV_ERR_FORMAT, "app channel: status: ready is %u (0 or 1)",
                              m->ready);
        }
        return PV_OK;
    case AC_RESULT:
        if (!ac_has_reply(m->request)) {
            return pv_err_set(e, PV_ERR_FORMAT, "app channel: result for type %u, which has none",
                              m->request);
        }
        if (m->result > 0 || (m->result != 0 && (m->result > PV_APP_ERR_DENIED ||
                                                 m->result < PV_APP_ERR_NOT_READY))) {
            return pv_err_set(e, PV_ERR_FORMAT, "app channel: result %d is not a result code",
                              (int)m->result);
        }
        return PV_OK;
    }
    return pv_err_set(e, PV_ERR_FORMAT, "app channel: unknown type %u", (unsigned)m->type);
}

/* The body after the header; the reader holds exactly its bytes. */
static void read_body(pv_reader *rd, ac_msg *m)
{
    uint8_t u8 = 0;
    uint32_t u32 = 0;
    /* Every read below is within the size checked by the caller, so none fails. */
    switch (m->type) {
    case AC_LOG:
        (void)pv_reader_u8(rd, &m->level);
        m->text_len = pv_reader_left(rd);
        (void)pv_reader_bytes(rd, m->text_len, (const uint8_t **)&m->text);
        break;
    case AC_EVENTS_REGISTER:
        (void)pv_reader_u32be(rd, &m->mask);
        break;
    case AC_DEFER:
        (void)pv_reader_u64be(rd, &m->event_id);
        (void)pv_reader_u32be(rd, &m->seconds);
        break;
    case AC_WATCHDOG_SET:
        (void)pv_reader_u32be(rd, &m->timeout_ms);
        break;
    case AC_POWER:
        (void)pv_reader_u8(rd, &m->action);
        break;
    case AC_SIGN:
        m->digest_len = pv_reader_left(rd);
        (void)pv_reader_bytes(rd, m->digest_len, &m->digest);
        break;
    case AC_SIGNATURE: {
        const uint8_t *sig = NULL;
        (void)pv_reader_bytes(rd, AC_SIG_LEN, &sig);
        memcpy(m->signature, sig, AC_SIG_LEN);
        break;
    }
    case AC_EVENT:
        (void)pv_reader_u32be(rd, &m->kind);
        (void)pv_reader_u64be(rd, &m->event_id);
        (void)pv_reader_u32be(rd, &m->seconds);
        break;
    case AC_STATUS:
        (void)pv_reader_u8(rd, &m->ready);
        (void)pv_reader_u64be(rd, &m->used_kb);
        (void)pv_reader_u64be(rd, &m->quota_kb);
        break;
    case AC_RESULT:
        (void)pv_reader_u8(rd, &u8);
        (void)pv_reader_u32be(rd, &u32);
        m->request = u8;
        /* Two's complement on the wire; converted without relying on the
         * implementation-defined unsigned-to-signed conversion. */
        m->result = u32 <= INT32_MAX ? (int32_t)u32 : -(int32_t)(~u32) - 1;
        break;
    default:
        break;
    }
}

int ac_parse(const uint8_t *p, size_t len, ac_msg *out, pv_err *e)
{
    int r = PV_ERR_FORMAT;
    ac_msg m;
    pv_reader rd;
    uint8_t version = 0, type = 0;
    uint16_t body = 0;
    memset(&m, 0, sizeof(m));
    if (out == NULL || (p == NULL && len > 0)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "app channel: no packet or no output");
    }
    memset(out, 0, sizeof(*out));
    if (len < AC_HEADER || len > AC_MAX_MSG) {
        r = pv_err_set(e, PV_ERR_FORMAT, "app channel: a packet of %zu bytes (%d..%d)", len,
                       AC_HEADER, AC_MAX_MSG);
        goto out;
    }
    pv_reader_init(&rd, p, len);
    (void)pv_reader_u8(&rd, &version);
    (void)pv_reader_u8(&rd, &type);
    (void)pv_reader_u16be(&rd, &body);
    if (version != AC_VERSION) {
        r = pv_err_set(e, PV_ERR_UNSUPPORTED, "app channel: version %u (this runtime speaks %d)",
                       version, AC_VERSION);
        goto out;
    }
    if (body != len - AC_HEADER) {
        r = pv_err_set(e, PV_ERR_FORMAT,
                       "app channel: the header says %u bytes of body, the packet holds %zu", body,
                       len - AC_HEADER);
        goto out;
    }
    int i = type_index(type);
    if (i < 0) {
        r = pv_err_set(e, PV_ERR_FORMAT, "app channel: unknown type %u", type);
        goto out;
    }
    size_t want = types[i].body;
    bool bad_size = body != want;
    if (type == AC_LOG) {
        bad_size = body < want || body > want + AC_MAX_LOG;
    } else if (type == AC_SIGN) {
        bad_size = body != 32 && body != 48 && body != 64;
    }
    if (bad_size) {
        r = pv_err_set(e, PV_ERR_FORMAT, "app channel: %s: a body of %u bytes (%s)", types[i].name,
                       body,
                       type == AC_LOG    ? "1 + 0..1024"
                       : type == AC_SIGN ? "32, 48 or 64"
                                         : "another size");
        goto out;
    }
    m.type = (ac_type)type;
    read_body(&rd, &m);
    if ((r = check_fields(&m, e)) != PV_OK) {
        goto out;
    }
    *out = m;
    r = PV_OK;
out:
    return r;
}

int ac_parse_from_app(const uint8_t *p, size_t len, ac_msg *out, pv_err *e)
{
    int r = ac_parse(p, len, out, e);
    if (r != PV_OK) {
        return r;
    }
    int i = type_index((uint8_t)out->type);
    if (i < 0 || !types[i].from_app) {
        uint8_t type = (uint8_t)out->type;
        memset(out, 0, sizeof(*out));
        return pv_err_set(e, PV_ERR_FORMAT,
                          "app channel: an app sent %s, which only the runtime sends",
                          ac_type_name(type));
    }
    return PV_OK;
}

static uint8_t *put_u8(uint8_t *o, uint8_t v)
{
    *o = v;
    return o + 1;
}

static uint8_t *put_u16(uint8_t *o, uint16_t v)
{
    o[0] = (uint8_t)(v >> 8);
    o[1] = (uint8_t)v;
    return o + 2;
}

static uint8_t *put_u32(uint8_t *o, uint32_t v)
{
    for (int k = 0; k < 4; k++) {
        o[k] = (uint8_t)(v >> (24 - 8 * k));
    }
    return o + 4;
}

static uint8_t *put_u64(uint8_t *o, uint64_t v)
{
    for (int k = 0; k < 8; k++) {
        o[k] = (uint8_t)(v >> (56 - 8 * k));
    }
    return o + 8;
}

size_t ac_encode(const ac_msg *m, uint8_t out[AC_MAX_MSG])
{
    if (m == NULL || out == NULL || (unsigned)m->type > UINT8_MAX) {
        return 0;
    }
    int i = type_index((uint8_t)m->type);
    if (i < 0 || check_fields(m, NULL) != PV_OK) {
        return 0;
    }
    size_t body = types[i].body + (m->type == AC_LOG ? m->text_len : 0);
    if (m->type == AC_SIGN) {
        body = m->digest_len;
    }
    uint8_t *o = out;
    o = put_u8(o, AC_VERSION);
    o = put_u8(o, (uint8_t)m->type);
    o = put_u16(o, (uint16_t)body);
    switch (m->type) {
    case AC_LOG:
        o = put_u8(o, m->level);
        if (m->text_len > 0) {
            memcpy(o, m->text, m->text_len);
            o += m->text_len;
        }
        break;
    case AC_EVENTS_REGISTER:
        o = put_u32(o, m->mask);
        break;
    case AC_DEFER:
        o = put_u64(o, m->event_id);
        o = put_u32(o, m->seconds);
        break;
    case AC_WATCHDOG_SET:
        o = put_u32(o, m->timeout_ms);
        break;
    case AC_WATCHDOG_KICK:
    case AC_STATUS_QUERY:
        break;
    case AC_POWER:
        o = put_u8(o, m->action);
        break;
    case AC_SIGN:
        memcpy(o, m->digest, m->digest_len);
        o += m->digest_len;
        break;
    case AC_SIGNATURE:
        memcpy(o, m->signature, AC_SIG_LEN);
        o += AC_SIG_LEN;
        break;
    case AC_EVENT:
        o = put_u32(o, m->kind);
        o = put_u64(o, m->event_id);
        o = put_u32(o, m->seconds);
        break;
    case AC_STATUS:
        o = put_u8(o, m->ready);
        o = put_u64(o, m->used_kb);
        o = put_u64(o, m->quota_kb);
        break;
    case AC_RESULT:
        o = put_u8(o, m->request);
        o = put_u32(o, (uint32_t)m->result);
        break;
    }
    return (size_t)(o - out);
}
