/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Attestation evidence (docs/protocol/attestation.md §1.3): EAT claims (RFC 9711 keys and
 * Pavise's own) in a COSE_Sign1 made by the device's attestation key, and the binding
 * that ties them to a TLS key.
 *
 * The device fills a pv_evidence and signs it with pv_evidence_sign (through its root of
 * trust); the verifier parses it with pv_evidence_decode, checks the signature with
 * pv_evidence_verify, then reads the claims. Nothing in a decoded pv_evidence is trusted
 * before pv_evidence_verify succeeds.
 *
 * Errors common to every function: PV_ERR_INVALID_ARG, PV_ERR_NOMEM.
 */
#ifndef PAVISE_EVIDENCE_H
#define PAVISE_EVIDENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/buf.h"
#include "pavise/cose.h"
#include "pavise/crypto.h"
#include "pavise/err.h"
#include "pavise/rot.h"
#include "pavise/uuid.h"

#define PV_EVIDENCE_PROFILE      "urn:pavise:eat:1"
#define PV_EVIDENCE_CONTENT_TYPE "application/vnd.pavise.eat+cbor; v=1"
#define PV_EVIDENCE_MAX_SIZE     (64 * 1024) /* the whole COSE_Sign1 */
#define PV_EVIDENCE_MAX_IMAGES   64
#define PV_EVIDENCE_MAX_VERSION  64 /* bytes of an image version */
#define PV_NONCE_LEN             48

/* Claim keys (RFC 9711 and CWT), and Pavise's private-use ones. */
#define PV_EAT_IAT         6
#define PV_EAT_NONCE       10
#define PV_EAT_UEID        256
#define PV_EAT_DBGSTAT     263
#define PV_EAT_PROFILE     265
#define PV_EAT_BOOTCOUNT   267
#define PV_EAT_ROT_KIND    (-70001)
#define PV_EAT_BINDING     (-70002)
#define PV_EAT_MEASUREMENT (-70003)
#define PV_EAT_EVENT_LOG   (-70004)
#define PV_EAT_IMAGES      (-70005)

/* dbgstat values used by Pavise. */
#define PV_DBGSTAT_ENABLED  0 /* development mode */
#define PV_DBGSTAT_DISABLED 1

typedef enum pv_evidence_image_kind {
    PV_EVIDENCE_IMAGE_OS = 1,
    PV_EVIDENCE_IMAGE_APP = 2,
} pv_evidence_image_kind;

typedef struct pv_evidence_image {
    pv_evidence_image_kind kind;
    uint8_t image_id[PV_UUID_LEN];
    uint8_t component_id[PV_UUID_LEN];
    char version[PV_EVIDENCE_MAX_VERSION + 1];
    uint8_t manifest_digest[PV_SHA256_LEN];
} pv_evidence_image;

typedef struct pv_evidence {
    uint8_t nonce[PV_NONCE_LEN];
    char device_id[PV_DEVICE_ID_HEX_LEN + 1]; /* the ueid, as lowercase hex */
    int64_t issued_at;                        /* iat: the device's clock, informational */
    bool development;                         /* dbgstat 0 */
    uint64_t boot_count;
    pv_rot_kind rot_kind;
    uint8_t binding[PV_SHA256_LEN];
    uint8_t measurement[PV_SHA256_LEN]; /* PV_ROT_PCR as the device read it */
    pv_rot_event *events;               /* owned; at most PV_ROT_MAX_EVENTS */
    size_t n_events;
    pv_evidence_image *images; /* owned; at most PV_EVIDENCE_MAX_IMAGES */
    size_t n_images;
    uint8_t signer_key_id[PV_KEY_ID_LEN]; /* set by decode: the COSE kid */
} pv_evidence;

/* binding = SHA-256(nonce || SHA-256(tls_spki_der)). */
int pv_evidence_binding(const uint8_t nonce[PV_NONCE_LEN], const uint8_t *tls_spki_der,
                        size_t spki_len, uint8_t out[PV_SHA256_LEN]);

/* Signs: the signer gets the COSE Sig_structure to sign with the attestation key (ES256,
 * raw r || s), e.g. pv_rot_sign. */
typedef int (*pv_evidence_signer)(void *ctx, const uint8_t *msg, size_t len,
                                  uint8_t sig[PV_ES256_SIG_LEN], pv_err *e);

/* Checks ev against the format's rules and limits, encodes the claims and appends the
 * tagged COSE_Sign1 (kid = the attestation key's ID, from attestation_key) to out.
 * PV_ERR_FORMAT (a rule broken, named), PV_ERR_TOO_LARGE, and the signer's errors. */
int pv_evidence_sign(const pv_evidence *ev, const pv_key *attestation_key,
                     pv_evidence_signer signer, void *signer_ctx, pv_buf *out, pv_err *e);

/* The same, signed by attestation_key itself, which must hold its private part (a
 * software key): the signature is not checked afterwards, as pv_evidence_sign checks a
 * signer's, since the key that signs is the one the kid names.
 * PV_ERR_INVALID_ARG (no private part), and pv_evidence_sign's codes. */
int pv_evidence_sign_with_key(const pv_evidence *ev, const pv_key *attestation_key, pv_buf *out,
                              pv_err *e);

/* Parses evidence (at most PV_EVIDENCE_MAX_SIZE bytes) without checking the signature:
 * *out is cleared on entry, filled on success; free with pv_evidence_free. *cose receives
 * the decoded message for pv_evidence_verify (free with pv_cose_sign1_free).
 * PV_ERR_FORMAT (naming the claim: unknown key, wrong type, bad length, over a limit,
 * wrong profile, missing claim), PV_ERR_TRUNCATED, PV_ERR_TOO_LARGE, PV_ERR_UNSUPPORTED. */
int pv_evidence_decode(const uint8_t *p, size_t len, pv_evidence *out, pv_cose_sign1 **cose,
                       pv_err *e);

/* Verifies the COSE signature with the attestation key and that the kid is that key's
 * ID. PV_OK; PV_ERR_SIGNATURE; PV_ERR_CRYPTO when the check could not run. */
PV_WUR int pv_evidence_verify(const pv_cose_sign1 *cose, const pv_key *attestation_key, pv_err *e);

/* Frees what ev owns and clears it. Accepts NULL. */
void pv_evidence_free(pv_evidence *ev);

#endif
