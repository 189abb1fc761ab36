/* SPDX-License-Identifier: Apache-2.0 */
/*
 * COSE_Sign1 (RFC 9052 §4.2) with ES256, as described in docs/formats/cose.md.
 *
 * Protected header: alg (1) = ES256 (-7), required; kid (4), content type (3), optional.
 * The unprotected header must be an empty map. Payload attached or detached (nil).
 */
#ifndef PAVISE_COSE_H
#define PAVISE_COSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/buf.h"
#include "pavise/crypto.h"
#include "pavise/err.h"

#define PV_COSE_ALG_ES256        (-7)
#define PV_COSE_TAG_SIGN1        18
#define PV_COSE_MAX_MESSAGE      (1024 * 1024)
#define PV_COSE_MAX_KID          64
#define PV_COSE_MAX_CONTENT_TYPE 128

/* Flags */
#define PV_COSE_DETACHED    0x1u /* create: leave the payload out (nil) */
#define PV_COSE_REQUIRE_TAG 0x2u /* decode: the message must carry tag 18 */

/* Creates a tagged COSE_Sign1 over payload (with external_aad, which may be empty) and
 * appends it to out. kid and content_type may be NULL/0 to omit them.
 * PV_ERR_INVALID_ARG (kid over PV_COSE_MAX_KID, content type over
 * PV_COSE_MAX_CONTENT_TYPE or not UTF-8, unknown flags), PV_ERR_TOO_LARGE (message over
 * PV_COSE_MAX_MESSAGE, or out is full), PV_ERR_NOMEM, PV_ERR_CRYPTO. */
int pv_cose_sign1_create(const pv_key *key, const uint8_t *kid, size_t kid_len,
                         const char *content_type, const uint8_t *payload, size_t payload_len,
                         const uint8_t *aad, size_t aad_len, unsigned flags, pv_buf *out,
                         pv_err *e);

/* Produces an ES256 signature (raw r || s) over msg, the encoded Sig_structure, with a
 * key the caller holds elsewhere (a root of trust, where the key never leaves). Returns
 * PV_OK or an error code with e filled in. */
typedef int (*pv_cose_signer)(void *ctx, const uint8_t *msg, size_t len,
                              uint8_t sig[PV_ES256_SIG_LEN], pv_err *e);

/* pv_cose_sign1_create with the signature made by signer(signer_ctx, ...) instead of a
 * pv_key. Same message, same checks and codes, plus whatever the signer returns. The
 * signature is not checked here: the caller that knows the public key may verify it. */
int pv_cose_sign1_create_with_signer(const uint8_t *kid, size_t kid_len, const char *content_type,
                                     const uint8_t *payload, size_t payload_len, const uint8_t *aad,
                                     size_t aad_len, unsigned flags, pv_cose_signer signer,
                                     void *signer_ctx, pv_buf *out, pv_err *e);

typedef struct pv_cose_sign1 pv_cose_sign1;

/* Decodes a COSE_Sign1 of at most PV_COSE_MAX_MESSAGE bytes (exactly one item, no
 * trailing bytes). Rejects: anything but ES256, unknown or duplicate protected header
 * labels, crit (2), a non-empty unprotected header, a signature that is not 64 bytes.
 * The decoded message keeps its own copy of the data. Nothing is trusted until
 * pv_cose_sign1_verify() succeeds. PV_ERR_FORMAT, PV_ERR_TRUNCATED, PV_ERR_TOO_LARGE,
 * PV_ERR_UNSUPPORTED, PV_ERR_NOMEM, PV_ERR_INVALID_ARG. */
int pv_cose_sign1_decode(const uint8_t *msg, size_t len, unsigned flags, pv_cose_sign1 **out,
                         pv_err *e);

/* Verifies the signature with key. For a detached message pass the payload in
 * detached/detached_len (it must be NULL for an attached one). PV_OK or PV_ERR_SIGNATURE;
 * PV_ERR_INVALID_ARG when the detached payload is missing or not expected;
 * PV_ERR_CRYPTO, PV_ERR_NOMEM when the check could not run. */
PV_WUR int pv_cose_sign1_verify(const pv_cose_sign1 *m, const pv_key *key, const uint8_t *detached,
                                size_t detached_len, const uint8_t *aad, size_t aad_len, pv_err *e);

int64_t pv_cose_sign1_alg(const pv_cose_sign1 *m);
/* kid (NULL, 0 when absent). */
void pv_cose_sign1_kid(const pv_cose_sign1 *m, const uint8_t **kid, size_t *len);
/* Content type, NULL when absent. */
const char *pv_cose_sign1_content_type(const pv_cose_sign1 *m);
/* Attached payload (NULL, 0 when detached). */
void pv_cose_sign1_payload(const pv_cose_sign1 *m, const uint8_t **p, size_t *len);
bool pv_cose_sign1_is_detached(const pv_cose_sign1 *m);
void pv_cose_sign1_free(pv_cose_sign1 *m);

#endif
