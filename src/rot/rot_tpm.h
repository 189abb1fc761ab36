/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where the TPM backend (rot_tpm.c) keeps Pavise's objects in the TPM, and with which
 * attributes. Shared with the tests, which reach into the TPM to check that what the
 * backend promises (a locked fuse, a refused replacement key) holds at the TPM itself.
 *
 * All objects live under the owner (storage) hierarchy, in handle ranges of their own:
 * persistent objects 0x81508000-0x815080ff, NV indices 0x01508000-0x015080ff. Provisioning
 * refuses to run when anything already sits in either range.
 */
#ifndef PAVISE_ROT_TPM_H
#define PAVISE_ROT_TPM_H

#include <tss2/tss2_tpm2_types.h>

#include "pavise/rot.h"

/* Persistent objects. */
#define ROT_TPM_PERSISTENT_FIRST 0x81508000u
#define ROT_TPM_SRK_HANDLE       0x81508000u /* ECC P-256 storage primary (TCG SRK template) */
#define ROT_TPM_IDK_HANDLE       0x81508001u /* identity key: ECC P-256, unrestricted sign */
#define ROT_TPM_AK_HANDLE        0x81508002u /* attestation key: ECC P-256, restricted sign */

/* NV indices. */
#define ROT_TPM_NV_FIRST         0x01508000u
#define ROT_TPM_NV_FUSE          0x01508000u /* 32 bytes, write-once: the trust anchor */
#define ROT_TPM_NV_BASES         0x01508001u /* PV_ROT_COUNTERS big-endian u64, write-once */
#define ROT_TPM_NV_COUNTER_FIRST 0x01508010u /* + id: TPM_NT_COUNTER */
#define ROT_TPM_RANGE_SIZE       0x100u

/* The TCG EK credential profile's index of the RSA 2048 EK certificate. */
#define ROT_TPM_NV_EK_CERT_RSA 0x01c00002u

#define ROT_TPM_KEY_ATTRS                                                                          \
    (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |            \
     TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA)
#define ROT_TPM_SRK_ATTRS (ROT_TPM_KEY_ATTRS | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT)
#define ROT_TPM_IDK_ATTRS (ROT_TPM_KEY_ATTRS | TPMA_OBJECT_SIGN_ENCRYPT)
#define ROT_TPM_AK_ATTRS  (ROT_TPM_KEY_ATTRS | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT)

/* Counters: incremented and read with the index's own (empty) authorization, so the
 * runtime needs no owner password; owner authorization works too. */
#define ROT_TPM_COUNTER_ATTRS                                                                      \
    (((TPMA_NV)TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT) | TPMA_NV_OWNERWRITE |                    \
     TPMA_NV_AUTHWRITE | TPMA_NV_OWNERREAD | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA)
/* Write-once indices (the fuse, the counter bases): written with owner authorization, then
 * locked until the index is deleted (WRITEDEFINE); anyone may read them. */
#define ROT_TPM_ONCE_ATTRS                                                                         \
    (TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA |                   \
     TPMA_NV_WRITEDEFINE)

#endif
