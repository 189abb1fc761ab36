/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TPM enrollment proof, verifier side (docs/protocol/enrollment.md).
 *
 * A device claims that its attestation key (AK) lives in a genuine TPM. It presents the
 * TPM's endorsement key (EK) certificate, the AK's public area and the AK as an ordinary
 * public key. The verifier checks the EK certificate against the TPM vendor CAs it
 * trusts, checks that the public area describes a restricted, TPM-resident P-256 signing
 * key equal to the declared AK, and then seals a fresh random credential to the pair
 * (EK, AK name) with TPM2_MakeCredential, computed here in software. Only the TPM that
 * holds that EK, with that AK loaded, can recover the credential (TPM2_ActivateCredential,
 * pv_rot_activate_credential on the device); the device returns it and the verifier
 * compares, once.
 *
 * Errors common to every function: PV_ERR_INVALID_ARG, PV_ERR_NOMEM, PV_ERR_CRYPTO.
 */
#ifndef PAVISE_ENROLL_H
#define PAVISE_ENROLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/crypto.h"
#include "pavise/err.h"
#include "pavise/x509.h"

/* Limits on the request. A marshaled P-256 TPMT_PUBLIC is about 90 bytes, plus an
 * authPolicy of at most 64; anything near this bound is not an attestation key. */
#define PV_ENROLL_MAX_EK_CERT    PV_CERT_MAX_DER
#define PV_ENROLL_MAX_TPM_PUBLIC 1024

/* The AK name: TPM_ALG_SHA256 (0x000B) || SHA-256(marshaled TPMT_PUBLIC). */
#define PV_ENROLL_AK_NAME_LEN (2 + PV_SHA256_LEN)
/* The credential the device must recover and send back. */
#define PV_ENROLL_ANSWER_LEN 32

/* What the device presents. Everything is untrusted input; nothing is kept by
 * reference after pv_enroll_challenge_create returns. */
typedef struct pv_enroll_request {
    const uint8_t *ek_cert_der; /* the EK certificate, DER (pv_rot_ek_certificate) */
    size_t ek_cert_len;
    const uint8_t *ak_tpm_public; /* the AK's marshaled TPMT_PUBLIC
                                     (pv_rot_attestation_key_tpm_public) */
    size_t ak_tpm_public_len;
    const pv_key *attestation_key; /* the AK as the device declares it (its manufacturing
                                      record; pv_rot_attestation_key) */
} pv_enroll_request;

typedef struct pv_enroll_challenge pv_enroll_challenge;

/* Checks that tpm_public (a marshaled TPMT_PUBLIC of at most PV_ENROLL_MAX_TPM_PUBLIC
 * bytes, exactly one structure in its canonical encoding, no trailing bytes) describes
 * a key fit to be an attestation key, and that its point is attestation_key:
 *   type ECC, curve NIST P-256, nameAlg SHA-256, scheme ECDSA with SHA-256, no symmetric
 *   algorithm, no KDF; objectAttributes fixedTPM, fixedParent, sensitiveDataOrigin,
 *   restricted and sign set, decrypt and the reserved bits clear.
 * When name is not NULL it receives the key's TPM name (PV_ENROLL_AK_NAME_LEN bytes).
 * PV_OK; PV_ERR_TOO_LARGE; PV_ERR_FORMAT (does not unmarshal, trailing bytes, or one of
 * the properties above fails, named in the message); PV_ERR_SIGNATURE (a valid AK, but
 * not attestation_key). */
PV_WUR int pv_enroll_check_ak_public(const uint8_t *tpm_public, size_t len,
                                     const pv_key *attestation_key,
                                     uint8_t name[PV_ENROLL_AK_NAME_LEN], pv_err *e);

/* Verifies a request and makes a challenge for it:
 *  1. the EK certificate (at most PV_ENROLL_MAX_EK_CERT bytes) chains through
 *     ek_intermediates (untrusted; may be NULL or hold certificates that are not needed)
 *     to one of tpm_vendor_cas, every certificate valid at `at` (seconds since the
 *     epoch); its key is RSA 2048; if it carries an extendedKeyUsage, that includes
 *     tcg-kp-EKCertificate (2.23.133.8.1), and if it carries a keyUsage, that includes
 *     keyEncipherment;
 *  2. pv_enroll_check_ak_public(req->ak_tpm_public, ..., req->attestation_key);
 *  3. TPM2_MakeCredential to the EK (the TCG default EK template: SHA-256 name algorithm,
 *     AES-128-CFB) for the AK name, with a fresh random credential.
 * The caller sends pv_enroll_challenge_credential_blob and
 * pv_enroll_challenge_encrypted_secret to the device, and checks its answer with
 * pv_enroll_challenge_check. The caller frees *out with pv_enroll_challenge_free.
 * PV_OK; PV_ERR_TOO_LARGE, PV_ERR_TRUNCATED, PV_ERR_FORMAT (malformed input);
 * PV_ERR_UNTRUSTED (no path to a vendor CA, or the certificate is not an EK certificate);
 * PV_ERR_EXPIRED; PV_ERR_UNSUPPORTED (the EK is not RSA 2048); PV_ERR_SIGNATURE (the AK
 * public area does not hold the declared key); the codes of pv_enroll_check_ak_public. */
int pv_enroll_challenge_create(const pv_enroll_request *req, const pv_chain *ek_intermediates,
                               const pv_trust *tpm_vendor_cas, int64_t at,
                               pv_enroll_challenge **out, pv_err *e);

/* The marshaled TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET for
 * pv_rot_activate_credential (borrowed; valid while the challenge lives). Neither is
 * secret: only the TPM holding the EK can open them. */
void pv_enroll_challenge_credential_blob(const pv_enroll_challenge *c, const uint8_t **p,
                                         size_t *len);
void pv_enroll_challenge_encrypted_secret(const pv_enroll_challenge *c, const uint8_t **p,
                                          size_t *len);
/* The AK name the credential is bound to (PV_ENROLL_AK_NAME_LEN bytes, borrowed). */
const uint8_t *pv_enroll_challenge_ak_name(const pv_enroll_challenge *c);

/* Compares the device's answer with the credential, in constant time. A challenge can
 * be checked once: the first call, whatever its outcome, wipes the credential, so a
 * device cannot guess twice.
 * PV_OK (the device holds the EK and the AK in one TPM); PV_ERR_SIGNATURE (wrong
 * answer); PV_ERR_FORMAT (an answer that is not PV_ENROLL_ANSWER_LEN bytes);
 * PV_ERR_INVALID_ARG (NULL arguments, or the challenge was already checked). */
PV_WUR int pv_enroll_challenge_check(pv_enroll_challenge *c, const uint8_t *answer, size_t len,
                                     pv_err *e);

/* Wipes and frees. Accepts NULL. */
void pv_enroll_challenge_free(pv_enroll_challenge *c);

#endif
