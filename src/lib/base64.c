/* SPDX-License-Identifier: Apache-2.0 */
#include "pavise/base64.h"

#include <stdbool.h>
#include <stdlib.h>

#include "pavise/err.h"

static const char std_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int value_of(char ch, pv_base64_variant v)
{
    if (ch >= 'A' && ch <= 'Z') {
        return ch - 'A';
    }
    if (ch >= 'a' && ch <= 'z') {
        return ch - 'a' + 26;
    }
    if (ch >= '0' && ch <= '9') {
        return ch - '0' + 52;
    }
    if (ch == (v == PV_BASE64_URL ? '-' : '+')) {
        return 62;
    }
    if (ch == (v == PV_BASE64_URL ? '_' : '/')) {
        return 63;
    }
    return -1;
}

size_t pv_base64_decoded_max(size_t len)
{
    return len / 4 * 3 + (len % 4 > 1 ? len % 4 - 1 : 0);
}

int pv_base64_decode(const char *in, size_t len, pv_base64_variant v, uint8_t *out, size_t out_size,
                     size_t *out_len)
{
    *out_len = 0;
    if (v != PV_BASE64_STD && v != PV_BASE64_URL) {
        return PV_ERR_INVALID_ARG;
    }
    size_t chars = len; /* characters that carry bits */
    if (v == PV_BASE64_STD) {
        if (len % 4 != 0) {
            return PV_ERR_FORMAT;
        }
        if (len > 0 && in[len - 1] == '=') {
            chars--;
            if (in[len - 2] == '=') {
                chars--;
            }
        }
    } else if (len % 4 == 1) {
        return PV_ERR_FORMAT; /* one character cannot end a group */
    }
    size_t n = chars / 4 * 3 + (chars % 4 > 1 ? chars % 4 - 1 : 0);
    if (n > out_size) {
        return PV_ERR_TOO_LARGE;
    }
    size_t o = 0;
    for (size_t i = 0; i < chars; i += 4) {
        size_t group = chars - i >= 4 ? 4 : chars - i; /* 2, 3 or 4 */
        uint32_t w = 0;
        for (size_t k = 0; k < 4; k++) {
            int d = 0;
            if (k < group && (d = value_of(in[i + k], v)) < 0) {
                return PV_ERR_FORMAT;
            }
            w = (w << 6) | (uint32_t)d;
        }
        size_t bytes = group - 1;
        /* The bits past the last whole byte must be zero: one spelling per value. */
        if ((bytes == 1 && (w & 0xffff) != 0) || (bytes == 2 && (w & 0xff) != 0)) {
            return PV_ERR_FORMAT;
        }
        for (size_t k = 0; k < bytes; k++) {
            out[o++] = (uint8_t)(w >> (16 - 8 * k));
        }
    }
    *out_len = o;
    return PV_OK;
}

char *pv_base64_encode(const uint8_t *in, size_t len, pv_base64_variant v)
{
    if ((v != PV_BASE64_STD && v != PV_BASE64_URL) || len > (SIZE_MAX - 1) / 4 * 3 - 3) {
        return NULL;
    }
    const char *abc = v == PV_BASE64_URL ? url_alphabet : std_alphabet;
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (out == NULL) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        size_t n = len - i >= 3 ? 3 : len - i;
        uint32_t w = (uint32_t)in[i] << 16;
        if (n > 1) {
            w |= (uint32_t)in[i + 1] << 8;
        }
        if (n > 2) {
            w |= in[i + 2];
        }
        out[o++] = abc[(w >> 18) & 63];
        out[o++] = abc[(w >> 12) & 63];
        if (n > 1) {
            out[o++] = abc[(w >> 6) & 63];
        } else if (v == PV_BASE64_STD) {
            out[o++] = '=';
        }
        if (n > 2) {
            out[o++] = abc[w & 63];
        } else if (v == PV_BASE64_STD) {
            out[o++] = '=';
        }
    }
    out[o] = '\0';
    return out;
}
