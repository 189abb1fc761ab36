/* SPDX-License-Identifier: Apache-2.0 */
/* Random bytes and hex, apart from crypto.c so that a program that needs only these
 * (pavised's supervisor: temporary names, image IDs in paths) does not link libcrypto. */
#include "pavise/crypto.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/random.h>

#include "pavise/err.h"

/* The kernel's CSPRNG. getrandom blocks only until it is first seeded, and returns short
 * counts only when interrupted or for large requests: both are looped over. */
int pv_random_bytes(void *p, size_t n)
{
    unsigned char *o = p;
    if (n > INT_MAX) { /* as large as any caller could mean: a length gone wrong */
        return PV_ERR_INVALID_ARG;
    }
    while (n > 0) {
        ssize_t got = getrandom(o, n, 0);
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            return PV_ERR_CRYPTO;
        }
        o += got;
        n -= (size_t)got;
    }
    return PV_OK;
}

void pv_hex_encode(const uint8_t *p, size_t n, char *out, size_t out_size)
{
    static const char digits[] = "0123456789abcdef";
    if (out_size == 0) {
        return;
    }
    size_t o = 0;
    for (size_t i = 0; i < n && o + 2 < out_size; i++) {
        out[o++] = digits[p[i] >> 4];
        out[o++] = digits[p[i] & 0xf];
    }
    out[o] = '\0';
}

int pv_hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int pv_hex_decode(const char *s, uint8_t *out, size_t n)
{
    if (strlen(s) != 2 * n) {
        return PV_ERR_FORMAT;
    }
    for (size_t i = 0; i < n; i++) {
        int hi = pv_hex_digit(s[2 * i]), lo = pv_hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return PV_ERR_FORMAT;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return PV_OK;
}
