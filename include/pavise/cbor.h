/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CBOR (RFC 8949) helpers on libcbor.
 *
 * Encoding writes deterministic CBOR (RFC 8949 §4.2.1: shortest argument forms, definite
 * lengths; callers emit map keys in order) straight into a bounded pv_buf.
 * Decoding first checks that the input is exactly one well-formed, definite-length item
 * whose declared counts fit in the input and whose nesting is bounded, and only then
 * hands it to libcbor, so hostile input cannot make the decoder allocate more than a
 * small multiple of its size.
 */
#ifndef PAVISE_CBOR_H
#define PAVISE_CBOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cbor.h>

#include "pavise/buf.h"
#include "pavise/err.h"
#include "pavise/x509.h"

#define PV_CBOR_MAX_DEPTH 16

/* ---- encoding ---- */
typedef struct pv_cbor_enc {
    pv_buf *out;
    int err; /* first error (sticky); every put is a no-op after one */
} pv_cbor_enc;

void pv_cbor_enc_init(pv_cbor_enc *enc, pv_buf *out);
void pv_cbor_put_uint(pv_cbor_enc *enc, uint64_t v);
void pv_cbor_put_int(pv_cbor_enc *enc, int64_t v);
void pv_cbor_put_bytes(pv_cbor_enc *enc, const void *p, size_t n);
/* Text must be valid UTF-8 without NUL bytes (what pv_cbor_get_text accepts);
 * otherwise the encoder fails with PV_ERR_INVALID_ARG. */
void pv_cbor_put_text(pv_cbor_enc *enc, const char *s); /* NUL-terminated */
void pv_cbor_put_text_n(pv_cbor_enc *enc, const char *s, size_t n);
void pv_cbor_put_array(pv_cbor_enc *enc, size_t n);
void pv_cbor_put_map(pv_cbor_enc *enc, size_t npairs);
void pv_cbor_put_tag(pv_cbor_enc *enc, uint64_t tag);
void pv_cbor_put_bool(pv_cbor_enc *enc, bool v);
void pv_cbor_put_null(pv_cbor_enc *enc);
/* A certificate chain as a CBOR array of DER byte strings, leaf first (the form image
 * packages and manufacturing records carry). */
void pv_cbor_put_chain(pv_cbor_enc *enc, const pv_chain *chain);

/* PV_OK or the first error (PV_ERR_TOO_LARGE, PV_ERR_NOMEM, PV_ERR_INVALID_ARG for a
 * NULL buffer or pointer, or text that is not valid UTF-8). */
int pv_cbor_enc_result(const pv_cbor_enc *enc);

/* ---- decoding ---- */
/* PV_OK when p[0..len) is exactly one well-formed CBOR item with definite lengths,
 * nesting at most max_depth, every declared length and count within the input, and
 * only simple values false, true, null (no floats, no undefined). PV_ERR_FORMAT /
 * PV_ERR_TRUNCATED otherwise, with the byte offset in the message. Arrays, maps and tags
 * each count as one level; max_depth above PV_CBOR_MAX_DEPTH is treated as
 * PV_CBOR_MAX_DEPTH. Non-shortest argument forms are accepted. */
int pv_cbor_check(const uint8_t *p, size_t len, unsigned max_depth, pv_err *e);

/* pv_cbor_check, then decodes with libcbor. Text strings must also be valid UTF-8 (libcbor
 * requires it; NUL is allowed here, pv_cbor_get_text refuses it). Tags 6..20 in their
 * one-byte form, which libcbor 0.8 refuses, are decoded too. The caller releases *out
 * with cbor_decref.
 * libcbor needs about 70 bytes per data item, so bound len before calling this on
 * untrusted input. PV_ERR_FORMAT, PV_ERR_TRUNCATED, PV_ERR_NOMEM. */
int pv_cbor_decode(const uint8_t *p, size_t len, cbor_item_t **out, pv_err *e);

/* The value for an integer key in a definite map (NULL when absent). Keys may be
 * unsigned or negative integers. */
cbor_item_t *pv_cbor_map_get(const cbor_item_t *map, int64_t key);
/* PV_OK when every key of map is an integer from allowed[0..n) and no key repeats;
 * PV_ERR_FORMAT naming the offending key otherwise. */
int pv_cbor_map_check_keys(const cbor_item_t *map, const int64_t *allowed, size_t n, pv_err *e);

/* Typed getters: PV_ERR_FORMAT (with what was expected) when the item is NULL or of
 * another type. */
int pv_cbor_get_uint(const cbor_item_t *it, uint64_t *v, pv_err *e);
int pv_cbor_get_int(const cbor_item_t *it, int64_t *v, pv_err *e);
int pv_cbor_get_bool(const cbor_item_t *it, bool *v, pv_err *e);
/* Borrowed view of a definite byte string. */
int pv_cbor_get_bytes(const cbor_item_t *it, const uint8_t **p, size_t *n, pv_err *e);
/* A new NUL-terminated copy of a definite text string of at most max bytes, valid
 * UTF-8, with no NUL inside. Free with free(). PV_ERR_TOO_LARGE, PV_ERR_FORMAT. */
int pv_cbor_get_text(const cbor_item_t *it, size_t max, char **out, pv_err *e);

/* Decodes a CBOR array of 1 to PV_CHAIN_MAX_CERTS DER certificates into a new chain
 * (caller frees). PV_ERR_FORMAT (naming the certificate), PV_ERR_NOMEM. */
int pv_cbor_get_chain(const cbor_item_t *it, pv_chain **out, pv_err *e);

#endif
