/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The manufacturing record (docs/formats/manufacturing-record.md): what the factory
 * states about one device when it leaves the line (its ID, its root of trust, its
 * public keys, for a TPM its EK certificate and AK public area, the fused trust anchor),
 * signed by the factory key (COSE_Sign1, ES256) and carried with the factory's
 * certificate chain, so that a service that trusts the factory CA can check it.
 *
 * Errors common to every function: PV_ERR_INVALID_ARG, PV_ERR_NOMEM.
 */
#ifndef PAVISE_MFGREC_H
#define PAVISE_MFGREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "pavise/buf.h"
#include "pavise/crypto.h"
#include "pavise/err.h"
#include "pavise/rot.h"
#include "pavise/x509.h"

#define PV_MFGREC_VERSION      1
#define PV_MFGREC_MAX_SIZE     (64 * 1024) /* the whole file */
#define PV_MFGREC_MAX_SPKI     256         /* a P-256 SubjectPublicKeyInfo is 91 bytes */
#define PV_MFGREC_CONTENT_TYPE "application/vnd.pavise.mfgrec+cbor; v=1"

typedef struct pv_mfgrec {
    unsigned version;                         /* PV_MFGREC_VERSION */
    char device_id[PV_DEVICE_ID_HEX_LEN + 1]; /* lowercase hex SHA-256 of the identity
                                                 key's SubjectPublicKeyInfo DER */
    pv_rot_kind rot_kind;                     /* PV_ROT_TPM or PV_ROT_SOFTWARE */
    pv_key *identity_key;                     /* owned */
    pv_key *attestation_key;                  /* owned */
    uint8_t *ek_cert_der;                     /* owned; TPM only, NULL otherwise */
    size_t ek_cert_len;
    uint8_t *ak_tpm_public; /* owned; TPM only: marshaled TPMT_PUBLIC */
    size_t ak_tpm_public_len;
    uint8_t trust_anchor[PV_SHA256_LEN];  /* the fused trust anchor hash */
    int64_t manufactured_at;              /* seconds since the epoch, >= 0 */
    uint8_t signer_key_id[PV_KEY_ID_LEN]; /* set by decode and verify: the factory
                                             key's ID (the COSE kid); ignored by sign */
} pv_mfgrec;

/* Checks rec (the rules of pv_mfgrec_verify's last step), then signs it with
 * factory_key and appends the record file to out: the envelope with the format version,
 * the COSE_Sign1 and factory_chain (leaf first; the leaf must hold factory_key).
 * Ownership of rec stays with the caller.
 * PV_OK; PV_ERR_FORMAT (rec breaks a rule, named in the message); PV_ERR_TOO_LARGE
 * (over PV_MFGREC_MAX_SIZE, or out is full); PV_ERR_INVALID_ARG (no private key, the
 * chain's leaf is not factory_key, an empty or oversized chain); PV_ERR_CRYPTO. */
int pv_mfgrec_sign(const pv_mfgrec *rec, const pv_key *factory_key, const pv_chain *factory_chain,
                   pv_buf *out, pv_err *e);

/* Parses a record file of at most PV_MFGREC_MAX_SIZE bytes into *out without checking
 * the signature, the chain or the consistency of the fields: for display only; trust
 * nothing in it. *out is cleared on entry and filled only on success; free it with
 * pv_mfgrec_free. If chain is not NULL it receives the factory chain (caller frees).
 * PV_OK; PV_ERR_FORMAT, PV_ERR_TRUNCATED, PV_ERR_TOO_LARGE; PV_ERR_UNSUPPORTED (another
 * format version or a key that is not P-256). */
int pv_mfgrec_decode(const uint8_t *p, size_t len, pv_mfgrec *out, pv_chain **chain, pv_err *e);

/* Parses and verifies a record file: the factory chain leads to one of factory_cas with
 * every certificate valid at `at` and every certificate on the path; the leaf is not a
 * CA, allows digitalSignature and, if it has an extendedKeyUsage, codeSigning (the
 * PV_VERIFY_CODE_SIGNING rules); the COSE kid is the leaf's key ID; the signature
 * verifies; and the fields are consistent: the device ID is the SHA-256 of the identity
 * key's SPKI, a TPM record has an EK certificate and an AK public area that passes
 * pv_enroll_check_ak_public for the attestation key, a software record has neither.
 * *out is cleared on entry and filled only on success; free it with pv_mfgrec_free.
 * PV_OK; the codes of pv_mfgrec_decode; PV_ERR_UNTRUSTED, PV_ERR_EXPIRED (the chain);
 * PV_ERR_SIGNATURE (the signature, or an AK public area holding another key). */
PV_WUR int pv_mfgrec_verify(const uint8_t *p, size_t len, const pv_trust *factory_cas, int64_t at,
                            pv_mfgrec *out, pv_err *e);

/* Frees what rec owns and clears it (the struct itself is the caller's). Accepts NULL. */
void pv_mfgrec_free(pv_mfgrec *rec);

/* A JSON object describing rec, for display (keys as hex, the EK certificate's subject,
 * issuer and fingerprint, the AK name, times as numbers and RFC 3339 text). NULL on
 * out of memory. The caller releases it with json_decref. */
json_t *pv_mfgrec_to_json(const pv_mfgrec *rec);

#endif
