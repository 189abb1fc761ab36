/* SPDX-License-Identifier: Apache-2.0 */
#include "pavise/uuid.h"

#include <stdio.h>
#include <string.h>

#include "pavise/crypto.h"

int pv_uuid_parse(const char *s, uint8_t out[PV_UUID_LEN])
{
    uint8_t u[PV_UUID_LEN];
    size_t o = 0;
    if (s == NULL || strlen(s) != 36) {
        return PV_ERR_FORMAT;
    }
    for (size_t i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') {
                return PV_ERR_FORMAT;
            }
            i++;
            continue;
        }
        int hi = pv_hex_digit(s[i]), lo = pv_hex_digit(s[i + 1]);
        if (hi < 0 || lo < 0) {
            return PV_ERR_FORMAT;
        }
        u[o++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    uint8_t zero[PV_UUID_LEN] = {0};
    if (memcmp(u, zero, sizeof(u)) == 0) {
        return PV_ERR_FORMAT;
    }
    memcpy(out, u, PV_UUID_LEN);
    return PV_OK;
}

void pv_uuid_format(const uint8_t u[PV_UUID_LEN], char out[PV_UUID_STR_LEN])
{
    snprintf(out, PV_UUID_STR_LEN,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
             u[15]);
}

int pv_uuid_generate(uint8_t out[PV_UUID_LEN])
{
    int r = pv_random_bytes(out, PV_UUID_LEN);
    if (r != PV_OK) {
        return r;
    }
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x40); /* version 4 */
    out[8] = (uint8_t)((out[8] & 0x3f) | 0x80); /* variant 10 */
    return PV_OK;
}
