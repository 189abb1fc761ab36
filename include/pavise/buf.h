/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bounded byte buffers and bounded readers.
 *
 * A pv_buf grows on demand but never past the maximum given when it was created, so
 * input from the wire can never make it grow without bound. A pv_reader parses a
 * {ptr, len} view: every read checks the remaining length first.
 */
#ifndef PAVISE_BUF_H
#define PAVISE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/err.h"

typedef struct pv_buf pv_buf;

/* New empty buffer that may grow to at most max bytes. NULL on out of memory. */
pv_buf *pv_buf_new(size_t max);
/* Frees the buffer; wipes it first when pv_buf_set_secret() was called. Accepts NULL. */
void pv_buf_free(pv_buf *b);
/* Marks the buffer as holding a secret: it is wiped on reset, growth and free. */
void pv_buf_set_secret(pv_buf *b);

const uint8_t *pv_buf_data(const pv_buf *b);
uint8_t *pv_buf_mutable_data(pv_buf *b);
size_t pv_buf_len(const pv_buf *b);
size_t pv_buf_max(const pv_buf *b);
void pv_buf_reset(pv_buf *b);

/* Appends n bytes. PV_ERR_TOO_LARGE past the maximum, PV_ERR_NOMEM. */
int pv_buf_append(pv_buf *b, const void *p, size_t n);
int pv_buf_append_u8(pv_buf *b, uint8_t v);
int pv_buf_append_u16be(pv_buf *b, uint16_t v);
int pv_buf_append_u32be(pv_buf *b, uint32_t v);
int pv_buf_append_u64be(pv_buf *b, uint64_t v);
/* Makes room for n more bytes and returns a pointer to them in *p; the caller writes
 * them and then calls pv_buf_commit(b, used) with used <= n. */
int pv_buf_reserve(pv_buf *b, size_t n, uint8_t **p);
void pv_buf_commit(pv_buf *b, size_t used);
/* Hands the contents over to the caller (free with free()); the buffer is left empty. */
uint8_t *pv_buf_steal(pv_buf *b, size_t *len);

typedef struct pv_reader {
    const uint8_t *p;
    size_t len;
    size_t off;
} pv_reader;

void pv_reader_init(pv_reader *r, const void *p, size_t len);
size_t pv_reader_left(const pv_reader *r);
/* Each returns PV_ERR_TRUNCATED when fewer bytes are left than it needs, and then
 * leaves the reader where it was. Big-endian. */
int pv_reader_u8(pv_reader *r, uint8_t *v);
int pv_reader_u16be(pv_reader *r, uint16_t *v);
int pv_reader_u32be(pv_reader *r, uint32_t *v);
int pv_reader_u64be(pv_reader *r, uint64_t *v);
/* Points *p at the next n bytes (no copy) and advances. */
int pv_reader_bytes(pv_reader *r, size_t n, const uint8_t **p);

#endif
