/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The signed envelope that the manufacturing record (mfgrec.c) and the device capability
 * file (capability.c) share, inside libpavise only (not part of the public API):
 *
 *   [format version, bstr(tagged COSE_Sign1, payload attached), [certificate DER, ...]]
 *
 * The chain's first certificate signs, and the COSE kid is its key ID. Each format has
 * its own version, size limit, content type and payload (see
 * docs/formats/manufacturing-record.md and docs/formats/capability.md); this module
 * handles the envelope and leaves the payload to the format's decoder.
 */
#ifndef PV_ENVELOPE_H
#define PV_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/buf.h"
#include "pavise/cbor.h"
#include "pavise/crypto.h"
#include "pavise/err.h"
#include "pavise/x509.h"

/* One format that uses the envelope: its constants, its payload decoder, and the nouns
 * its messages use. The nouns keep each format's messages as they were before the
 * envelope code was shared, which is why they are not derived from one another. */
typedef struct envelope_format {
    uint64_t version;         /* the envelope's first item */
    size_t max_size;          /* the largest file, checked before anything decodes it */
    const char *content_type; /* the COSE_Sign1's, required */
    /* Decodes the payload (one CBOR item) into out, the caller's cleared output, and
     * records there kid, the signer's key ID. May leave out half filled on failure. */
    int (*decode)(const cbor_item_t *item, const uint8_t kid[PV_KEY_ID_LEN], void *out, pv_err *e);
    void (*release)(void *out); /* frees what decode put into out, and clears it */

    const char *file;      /* the file as a whole: "record file" */
    const char *payload;   /* what the COSE_Sign1 carries: "record" */
    const char *signer;    /* "<signer> chain", "<signer> certificate", "<signer> key ID" */
    const char *chain_ctx; /* what chain verification errors are wrapped in */
    const char *leaf_ctx;  /* what errors reading the leaf's key for the signature are wrapped in */
    bool kid_in_file;      /* errors of the kid check start "<file>: " too */
} envelope_format;

/* Signs payload with key (kid: key's ID, content type: fmt's) and appends the envelope
 * with chain to out; out is left as it was on failure. The caller has checked that
 * chain's first certificate holds key. PV_ERR_NOMEM, PV_ERR_CRYPTO, PV_ERR_TOO_LARGE
 * (over fmt->max_size, or out is full), PV_ERR_INVALID_ARG. */
int envelope_build(const envelope_format *fmt, const pv_key *key, const pv_chain *chain,
                   const uint8_t *payload, size_t payload_len, pv_buf *out, pv_err *e);

/* Parses p[0..len) and decodes its payload into out (cleared by the caller) without
 * verifying the chain or the signature: for display only. The file is at most
 * fmt->max_size bytes and has fmt's version, a tagged COSE_Sign1 with fmt's content
 * type that carries its payload, a chain of certificates, and a kid that is the key ID
 * of the chain's first one. If chain is not NULL it receives the chain (caller frees).
 * Outputs are set only on success. PV_ERR_TRUNCATED, PV_ERR_TOO_LARGE, PV_ERR_FORMAT,
 * PV_ERR_UNSUPPORTED, PV_ERR_NOMEM, PV_ERR_CRYPTO, PV_ERR_INVALID_ARG, and whatever
 * fmt->decode returns. */
int envelope_decode(const envelope_format *fmt, const uint8_t *p, size_t len, void *out,
                    pv_chain **chain, pv_err *e);

/* As envelope_decode, but before the payload is decoded the chain must verify against
 * trust at `at` with pv_chain_verify's flags, and the signature with the first
 * certificate's key. The codes of envelope_decode; the chain's (PV_ERR_UNTRUSTED,
 * PV_ERR_EXPIRED, ...); PV_ERR_SIGNATURE. */
PV_WUR int envelope_verify(const envelope_format *fmt, const uint8_t *p, size_t len,
                           const pv_trust *trust, int64_t at, unsigned flags, void *out, pv_err *e);

#endif
