/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CBOR helpers shared inside libpavise (not part of the public API): reading one item
 * head from raw bytes, and strict UTF-8 validation.
 */
#ifndef PV_CBOR_INTERNAL_H
#define PV_CBOR_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/buf.h"
#include "pavise/err.h"

enum {
    CBOR_MAJOR_UINT = 0,
    CBOR_MAJOR_NEGINT = 1,
    CBOR_MAJOR_BYTES = 2,
    CBOR_MAJOR_TEXT = 3,
    CBOR_MAJOR_ARRAY = 4,
    CBOR_MAJOR_MAP = 5,
    CBOR_MAJOR_TAG = 6,
    CBOR_MAJOR_SIMPLE = 7,
};

#define CBOR_SIMPLE_FALSE 20
#define CBOR_SIMPLE_TRUE  21
#define CBOR_SIMPLE_NULL  22

/* The initial byte and argument of one data item (RFC 8949 §3). For major type 7
 * with additional information below 24, arg is the simple value. */
typedef struct cbor_head {
    size_t off; /* offset of the initial byte */
    uint8_t major;
    uint8_t ai; /* additional information: low 5 bits of the initial byte */
    uint64_t arg;
} cbor_head;

/* Reads one head at the reader's position and advances past it (not past string
 * contents or children). Accepts non-shortest argument forms. PV_ERR_TRUNCATED when
 * the input ends inside the head; PV_ERR_FORMAT for the reserved additional
 * information 28..30 and for 31 (indefinite lengths and break, which Pavise never
 * accepts). Messages name the byte offset. */
int cbor_read_head(pv_reader *r, cbor_head *h, pv_err *e);

/* True when p[0..n) is valid UTF-8 (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF) without NUL bytes. On false, *bad (if not NULL) is the
 * offset of the first offending byte. */
bool cbor_utf8_valid(const uint8_t *p, size_t n, size_t *bad);

#endif
