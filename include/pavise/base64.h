/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Strict base64 (RFC 4648): the standard alphabet with padding (§4), for binary values
 * in JSON bodies, and the URL-safe alphabet without padding (§5), for tokens in URLs.
 *
 * Decoding accepts exactly one spelling of each value: only the variant's alphabet, its
 * padding rule, no whitespace or line breaks, and the unused low bits of the last
 * character zero. So a decoded value re-encodes to the same text, and two texts never
 * mean the same bytes.
 */
#ifndef PAVISE_BASE64_H
#define PAVISE_BASE64_H

#include <stddef.h>
#include <stdint.h>

typedef enum pv_base64_variant {
    PV_BASE64_STD = 1, /* A-Z a-z 0-9 + /, padded with '=' to a multiple of 4 */
    PV_BASE64_URL = 2, /* A-Z a-z 0-9 - _, no padding */
} pv_base64_variant;

/* The most bytes text of len characters can decode to. */
size_t pv_base64_decoded_max(size_t len);

/* Decodes the len characters at in into out (out_size bytes). PV_OK and *out_len;
 * PV_ERR_FORMAT when the text is not the variant's strict form; PV_ERR_TOO_LARGE when
 * out is too small. */
int pv_base64_decode(const char *in, size_t len, pv_base64_variant v, uint8_t *out, size_t out_size,
                     size_t *out_len);

/* The encoding of the len bytes at in, NUL-terminated (free with free()); NULL when out
 * of memory or len is too large to encode. */
char *pv_base64_encode(const uint8_t *in, size_t len, pv_base64_variant v);

#endif
