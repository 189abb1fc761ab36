/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The app's side of the channel's wire format (sdk.h). Small on purpose: the app encodes
 * only requests and decodes only the four messages the runtime sends.
 */
#include <string.h>

#include "sdk.h"

/* Length of the UTF-8 sequence starting with lead byte c, or 0 when c cannot start one
 * (a continuation byte, the overlong leads c0 and c1, or f5 and above). */
static size_t seq_len(uint8_t c)
{
    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        return 2;
    }
    if (c >= 0xe0 && c <= 0xef) {
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        return 4;
    }
    return 0;
}

/* The code point of a complete, shortest-form sequence of n bytes at s, or -1. */
static long decode_seq(const uint8_t *s, size_t n)
{
    static const uint8_t lead_mask[5] = {0, 0x7f, 0x1f, 0x0f, 0x07};
    static const long min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    long cp = s[0] & lead_mask[n];
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xc0) != 0x80) {
            return -1;
        }
        cp = (cp << 6) | (s[k] & 0x3f);
    }
    if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return -1;
    }
    return cp;
}

size_t sdk_clean_text(char *text, size_t len, bool cut)
{
    uint8_t *s = (uint8_t *)text;
    if (cut) {
        /* Drop a last character the formatter cut in two: find its lead byte among the
         * last four and see whether all of its bytes made it. */
        for (size_t back = 1; back <= 4 && back <= len; back++) {
            uint8_t c = s[len - back];
            if ((c & 0xc0) != 0x80) {
                size_t n = seq_len(c);
                if (n > back) {
                    len -= back;
                }
                break;
            }
        }
    }
    if (len > 0 && s[len - 1] == '\n') {
        len--;
        if (len > 0 && s[len - 1] == '\r') {
            len--;
        }
    }
    /* In place: each replacement is no longer than what it replaces. */
    size_t in = 0, out = 0;
    while (in < len) {
        size_t n = seq_len(s[in]);
        long cp = -1;
        if (n > 0 && n <= len - in) {
            cp = decode_seq(s + in, n);
        }
        if (cp < 0) {
            s[out++] = '?';
            in++;
            continue;
        }
        if ((cp < 0x20 && cp != '\t') || (cp >= 0x7f && cp <= 0x9f)) {
            s[out++] = ' ';
        } else {
            memmove(s + out, s + in, n);
            out += n;
        }
        in += n;
    }
    return out;
}

static void put_header(uint8_t *out, uint8_t type, size_t body)
{
    out[0] = SDK_VERSION;
    out[1] = type;
    out[2] = (uint8_t)(body >> 8);
    out[3] = (uint8_t)body;
}

size_t sdk_encode_log(uint8_t out[SDK_MAX_MSG], int level, const char *text, size_t len)
{
    if (len > PV_APP_MAX_LOG) {
        len = PV_APP_MAX_LOG; /* callers pass clean text within the bound; never overrun */
    }
    put_header(out, SDK_LOG, 1 + len);
    out[SDK_HEADER] = (uint8_t)level;
    if (len > 0) {
        memcpy(out + SDK_HEADER + 1, text, len);
    }
    return SDK_HEADER + 1 + len;
}

size_t sdk_encode(uint8_t *out, size_t cap, uint8_t type, const uint8_t *body, size_t n)
{
    if (cap < SDK_HEADER || n > cap - SDK_HEADER) {
        return 0;
    }
    put_header(out, type, n);
    if (n > 0) {
        memcpy(out + SDK_HEADER, body, n);
    }
    return SDK_HEADER + n;
}

static uint64_t get_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t k = 0; k < n; k++) {
        v = (v << 8) | p[k];
    }
    return v;
}

bool sdk_decode(const uint8_t *p, size_t len, sdk_msg *out)
{
    memset(out, 0, sizeof(*out));
    if (len < SDK_HEADER || len > SDK_MAX_MSG || p[0] != SDK_VERSION ||
        get_be(p + 2, 2) != len - SDK_HEADER) {
        return false;
    }
    const uint8_t *b = p + SDK_HEADER;
    size_t n = len - SDK_HEADER;
    switch (p[1]) {
    case SDK_EVENT: {
        if (n != 16) {
            return false;
        }
        uint32_t kind = (uint32_t)get_be(b, 4);
        if (kind == 0 || (kind & ~PV_APP_EVENT_ALL) != 0 || (kind & (kind - 1)) != 0) {
            return false;
        }
        out->event.kind = kind;
        out->event.id = get_be(b + 4, 8);
        out->event.seconds_left = (uint32_t)get_be(b + 12, 4);
        if (out->event.id == 0 || out->event.seconds_left > PV_APP_MAX_DEFER_SECONDS) {
            return false;
        }
        break;
    }
    case SDK_STATUS:
        if (n != 17 || b[0] > 1) {
            return false;
        }
        out->status.device_auth_ready = b[0] == 1;
        out->status.storage_used_kb = get_be(b + 1, 8);
        out->status.storage_quota_kb = get_be(b + 9, 8);
        break;
    case SDK_RESULT: {
        if (n != 5) {
            return false;
        }
        uint32_t v = (uint32_t)get_be(b + 1, 4);
        int result;
        if (v == 0) {
            result = 0;
        } else if (v >= 0xfffffffau) {
            /* -6 .. -1 in two's complement; -1 is refused below */
            result = -(int)(UINT32_MAX - v) - 1;
        } else {
            return false;
        }
        if (result != 0 && (result > PV_APP_ERR_DENIED || result < PV_APP_ERR_NOT_READY)) {
            return false;
        }
        switch (b[0]) {
        case SDK_EVENTS_REGISTER:
        case SDK_DEFER:
        case SDK_WATCHDOG_SET:
        case SDK_STATUS_QUERY:
        case SDK_POWER:
        case SDK_SIGN:
            break;
        default:
            return false;
        }
        out->request = b[0];
        out->result = result;
        break;
    }
    case SDK_SIGNATURE:
        /* Exactly r || s; whether it verifies is for the caller's TLS peer to say, the
         * runtime being trusted to sign with the right key. */
        if (n != PV_APP_DEVICE_SIG_LEN) {
            return false;
        }
        memcpy(out->signature, b, PV_APP_DEVICE_SIG_LEN);
        break;
    default:
        return false;
    }
    out->type = p[1];
    return true;
}

uint8_t sdk_answers(const sdk_msg *m)
{
    switch (m->type) {
    case SDK_STATUS:
        return SDK_STATUS_QUERY;
    case SDK_SIGNATURE:
        return SDK_SIGN;
    case SDK_RESULT:
        return m->request;
    default:
        return 0;
    }
}
