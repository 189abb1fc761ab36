/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The table of functions a root-of-trust backend provides (src/rot/rot_tpm.c,
 * src/rot/rot_soft.c). rot.c holds the generic parts (argument checks, the event log,
 * the device ID) and calls these; nothing outside src/rot sees a backend.
 *
 * Every function follows pv_rot's conventions: PV_OK or a negative pv_code with the
 * reason in e; output parameters set only on success. Arguments were checked by rot.c
 * (ids in range, sizes within the limits of rot.h, non-NULL pointers).
 */
#ifndef PAVISE_ROT_BACKEND_H
#define PAVISE_ROT_BACKEND_H

#include "pavise/rot.h"

typedef struct rot_backend rot_backend; /* each backend's private state */

typedef struct rot_backend_ops {
    pv_rot_kind kind;
    /* Create keys and counters for a new device; PV_ERR_EXISTS if already provisioned. */
    int (*provision)(const pv_rot_config *cfg, rot_backend **out, pv_err *e);
    /* Open a provisioned root of trust; PV_ERR_NOT_FOUND if not provisioned. */
    int (*open)(const pv_rot_config *cfg, rot_backend **out, pv_err *e);
    void (*close)(rot_backend *b);
    /* Removes what provision created, only while no trust anchor is fused (PV_ERR_LOCKED
     * otherwise). b is closed by the caller afterwards. */
    int (*unprovision)(rot_backend *b, pv_err *e);

    int (*identity_key)(rot_backend *b, pv_key **out, pv_err *e);
    int (*attestation_key)(rot_backend *b, pv_key **out, pv_err *e);
    int (*sign)(rot_backend *b, const void *msg, size_t len, uint8_t sig[PV_ES256_SIG_LEN],
                pv_err *e);
    int (*random)(rot_backend *b, void *out, size_t n, pv_err *e);

    /* PV_ROT_PCR: extend with a digest, read. */
    int (*pcr_extend)(rot_backend *b, const uint8_t digest[PV_SHA256_LEN], pv_err *e);
    int (*pcr_read)(rot_backend *b, uint8_t out[PV_SHA256_LEN], pv_err *e);
    /* A value that changes whenever the measurement register is reset (a TPM reset, a
     * reboot), so a log from an earlier boot is recognised. A NUL-terminated string of
     * at most 64 characters. */
    int (*boot_epoch)(rot_backend *b, char out[65], pv_err *e);

    int (*counter_read)(rot_backend *b, unsigned id, uint64_t *value, pv_err *e);
    /* to > current (rot.c has checked). Never below the old value afterwards, even when
     * cut short: a TPM NV counter moves one step per write, so an interrupted advance can
     * stop in between, and repeating the call finishes it. */
    int (*counter_advance)(rot_backend *b, unsigned id, uint64_t to, pv_err *e);

    int (*fuse_trust_anchor)(rot_backend *b, const uint8_t hash[PV_SHA256_LEN], pv_err *e);
    int (*trust_anchor)(rot_backend *b, uint8_t hash[PV_SHA256_LEN], pv_err *e);

    /* TPM-only; NULL elsewhere (rot.c answers PV_ERR_UNSUPPORTED). */
    int (*ek_certificate)(rot_backend *b, pv_buf *der, pv_err *e);
    int (*attestation_key_tpm_public)(rot_backend *b, pv_buf *out, pv_err *e);
    int (*activate_credential)(rot_backend *b, const uint8_t *blob, size_t blob_len,
                               const uint8_t *secret, size_t secret_len, pv_buf *out, pv_err *e);
    /* TPM2_Quote over SHA-256 {PV_ROT_PCR} with the attestation key: appends the TPMS_ATTEST
     * exactly as the TPM marshaled it to attest and writes the signature as raw r || s. */
    int (*quote)(rot_backend *b, const uint8_t qualifying[PV_SHA256_LEN], pv_buf *attest,
                 uint8_t sig[PV_ES256_SIG_LEN], pv_err *e);
} rot_backend_ops;

extern const rot_backend_ops rot_tpm_ops;
extern const rot_backend_ops rot_soft_ops;

/* Creates state_dir/rot (mode 0700) if missing and returns its path (caller frees). */
int rot_private_dir(const char *state_dir, char **out, pv_err *e);

/* Decodes an event log file (docs/rot.md §2) of at most 512 KiB: the events of boot
 * `epoch`, or none when the file is from another epoch. Untrusted input: every field is
 * checked and bounded. PV_ERR_FORMAT, PV_ERR_TRUNCATED, PV_ERR_TOO_LARGE,
 * PV_ERR_UNSUPPORTED, PV_ERR_NOMEM. The caller frees with pv_rot_events_free. */
int rot_eventlog_decode(const uint8_t *data, size_t len, const char *epoch, pv_rot_event **events,
                        size_t *n, pv_err *e);

#endif
