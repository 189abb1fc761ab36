/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Checking a TPM 2.0 quote (docs/protocol/attestation.md §1.4): the verifier's side of
 * pv_rot_quote. The quote is a marshaled TPMS_ATTEST and an ECDSA P-256 signature (raw
 * r || s) over its SHA-256, made by the device's restricted attestation key.
 */
#ifndef PAVISE_QUOTE_H
#define PAVISE_QUOTE_H

#include <stddef.h>
#include <stdint.h>

#include "pavise/crypto.h"
#include "pavise/err.h"

#define PV_QUOTE_MAX_ATTEST 1024

/* What a verified quote says besides what was checked. */
typedef struct pv_quote_info {
    uint64_t clock;         /* TPMS_CLOCK_INFO.clock, milliseconds */
    uint32_t reset_count;   /* TPM resets (boots) */
    uint32_t restart_count; /* restarts since the last reset */
    uint64_t firmware_version;
} pv_quote_info;

/* Checks attest (at most PV_QUOTE_MAX_ATTEST bytes, exactly one TPMS_ATTEST, no trailing
 * bytes): magic TPM_GENERATED_VALUE; type TPM_ST_ATTEST_QUOTE; extraData equal to
 * qualifying (32 bytes); the PCR selection exactly SHA-256 {pcr}; pcrDigest equal to
 * SHA-256(pcr_value) (the digest of that one PCR's value); and the signature over
 * SHA-256(attest) with ak (P-256). info (may be NULL) receives the clock fields.
 * PV_OK; PV_ERR_FORMAT (malformed, another type, another selection: named);
 * PV_ERR_SIGNATURE (the signature, or extraData / pcrDigest that do not match);
 * PV_ERR_CRYPTO when the check could not run. */
PV_WUR int pv_quote_verify(const uint8_t *attest, size_t attest_len,
                           const uint8_t sig[PV_ES256_SIG_LEN], const pv_key *ak,
                           const uint8_t qualifying[PV_SHA256_LEN], unsigned pcr,
                           const uint8_t pcr_value[PV_SHA256_LEN], pv_quote_info *info, pv_err *e);

#endif
