/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The root of trust (docs/rot.md): the device's identity and attestation keys, which never
 * leave it; random bytes; measurements (a PCR and an event log that replays to it);
 * monotonic anti-rollback counters; and the fused, write-once trust anchor (the SHA-256
 * of the update root's SubjectPublicKeyInfo).
 *
 * Two backends sit behind one table of functions: a TPM 2.0 reached through a TCTI
 * (a real chip at /dev/tpmrm0, or swtpm), and a software backend for boards without a
 * TPM, which keeps its keys in files and reports itself as lower assurance. Callers
 * never branch on the backend; the few TPM-only operations return PV_ERR_UNSUPPORTED on
 * the software backend.
 *
 * Errors common to every function: PV_ERR_ROT (the TPM or the backend's storage failed,
 * with the TPM's response code in the message), PV_ERR_IO, PV_ERR_NOMEM,
 * PV_ERR_INVALID_ARG. A pv_rot is not thread-safe.
 */
#ifndef PAVISE_ROT_H
#define PAVISE_ROT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/buf.h"
#include "pavise/crypto.h"
#include "pavise/err.h"

typedef struct pv_rot pv_rot;

typedef enum pv_rot_kind {
    PV_ROT_TPM = 1,      /* TPM 2.0 through tpm2-tss */
    PV_ROT_SOFTWARE = 2, /* keys in files: lower assurance */
} pv_rot_kind;

/* The PCR that holds Pavise's measurements. PCRs 0-7 belong to firmware, 8-9 to boot
 * loaders, 10 to IMA, 11-12 to systemd-stub, 14 to shim, 15 to systemd, 16 and 23 can be
 * reset by software and 17-22 belong to dynamic launch; 13 is left to a boot chain
 * that does not use systemd-stub system extensions, which is ours. */
#define PV_ROT_PCR 13

/* Anti-rollback counters. Counter 0 guards the OS image; the others are for the runtime
 * (apps, configuration). Values start at 0 after provisioning. */
#define PV_ROT_COUNTERS   8
#define PV_ROT_COUNTER_OS 0
/* A TPM NV counter only increments by one, so an advance costs one NV write per step;
 * one call advances by at most this much on every backend. */
#define PV_ROT_MAX_COUNTER_STEP 4096

/* Limits. */
#define PV_ROT_MAX_EVENTS     256  /* events in one boot's log */
#define PV_ROT_MAX_EVENT_TYPE 31   /* bytes of an event type ("os-image") */
#define PV_ROT_MAX_EVENT_DATA 1024 /* bytes of an event's description */
#define PV_ROT_MAX_RANDOM     4096 /* bytes of one pv_rot_random() call */
#define PV_ROT_MAX_SIGN_INPUT (1u << 20)
#define PV_ROT_MAX_TCTI       255
#define PV_DEVICE_ID_HEX_LEN  64

typedef struct pv_rot_config {
    pv_rot_kind kind;
    const char *state_dir; /* the device's state directory; the backend keeps its own
                              files (software keys, the event log) under state_dir/rot */
    const char *tcti;      /* TPM only: a TCTI configuration string such as
                              "device:/dev/tpmrm0" or "swtpm:path=/run/swtpm.sock";
                              NULL or "" picks the tpm2-tss default */
} pv_rot_config;

/* "tpm" or "software"; "unknown" for anything else. */
const char *pv_rot_kind_name(pv_rot_kind k);
/* Parses "tpm" or "software". PV_ERR_INVALID_ARG otherwise. */
int pv_rot_kind_parse(const char *s, pv_rot_kind *out);
/* True for the kinds above. */
bool pv_rot_kind_valid(pv_rot_kind k);

/* Creates a new device identity in the root of trust: the identity key, the restricted
 * attestation key and the counters (all at 0). Nothing is fused yet. PV_ERR_EXISTS when
 * the root of trust already holds a Pavise identity (manufacture is done once). */
int pv_rot_provision(const pv_rot_config *cfg, pv_rot **out, pv_err *e);

/* Opens an already provisioned root of trust. PV_ERR_NOT_FOUND when it holds no
 * Pavise identity. */
int pv_rot_open(const pv_rot_config *cfg, pv_rot **out, pv_err *e);

/* Takes back a provisioning that manufacturing could not finish (the identity, keys and
 * counters are removed), so that it can be retried. Only before a trust anchor is fused:
 * PV_ERR_LOCKED afterwards. Close rot afterwards; it is no longer usable. */
int pv_rot_unprovision(pv_rot *rot, pv_err *e);

/* Closes the connection and wipes what it holds. Accepts NULL. */
void pv_rot_close(pv_rot *rot);

pv_rot_kind pv_rot_get_kind(const pv_rot *rot);

/* The public halves of the identity and attestation keys (the private halves never
 * leave the root of trust on a TPM). The caller frees *out. */
int pv_rot_identity_key(pv_rot *rot, pv_key **out, pv_err *e);
int pv_rot_attestation_key(pv_rot *rot, pv_key **out, pv_err *e);

/* Device ID: lowercase hex SHA-256 of the identity key's SubjectPublicKeyInfo DER.
 * out holds PV_DEVICE_ID_HEX_LEN + 1 bytes. */
int pv_rot_device_id(pv_rot *rot, char out[PV_DEVICE_ID_HEX_LEN + 1], pv_err *e);
/* The same from a public key (for verifiers). */
int pv_device_id_of_key(const pv_key *identity, char out[PV_DEVICE_ID_HEX_LEN + 1]);

/* Signs msg (at most PV_ROT_MAX_SIGN_INPUT bytes) with the attestation key: ES256,
 * the signature as raw r || s, verifiable with pv_key_verify_es256 and the key from
 * pv_rot_attestation_key. On a TPM the attestation key is restricted, so it signs only
 * a digest the TPM computed itself over a message that does not begin with
 * TPM_GENERATED_VALUE, and the TPM gives no ticket for a message shorter than 4 bytes;
 * such messages are refused with PV_ERR_INVALID_ARG. (Pavise signs COSE Sig_structures,
 * which begin with 0x84 and are far longer.) */
int pv_rot_sign(pv_rot *rot, const void *msg, size_t len, uint8_t sig[PV_ES256_SIG_LEN], pv_err *e);

/* Fills out with n (at most PV_ROT_MAX_RANDOM) random bytes from the root of trust's
 * generator (the TPM's RNG; the kernel's on the software backend). */
int pv_rot_random(pv_rot *rot, void *out, size_t n, pv_err *e);

/* ---- measurements ---- */

/* One entry of the event log: the digest extended into PV_ROT_PCR, with what it is. */
typedef struct pv_rot_event {
    char type[PV_ROT_MAX_EVENT_TYPE + 1]; /* [a-z0-9-], e.g. "os-image", "boot-config" */
    uint8_t digest[PV_SHA256_LEN];
    uint8_t *data; /* what was measured or a description of it; owned; may be NULL */
    size_t data_len;
} pv_rot_event;

/* Extends PV_ROT_PCR with digest (new = SHA-256(old || digest)) and appends the event to
 * this boot's log. data (at most PV_ROT_MAX_EVENT_DATA bytes) is stored beside it, not
 * extended. PV_ERR_TOO_LARGE when the log is full. */
int pv_rot_extend(pv_rot *rot, const char *type, const uint8_t digest[PV_SHA256_LEN],
                  const void *data, size_t data_len, pv_err *e);

/* Reads the current value of PV_ROT_PCR. */
int pv_rot_read_measurement(pv_rot *rot, uint8_t out[PV_SHA256_LEN], pv_err *e);

/* This boot's event log, in order. A log left from an earlier boot (the TPM was reset
 * since: another boot epoch, or the PCR reads zero) reads as empty. The caller frees with
 * pv_rot_events_free. */
int pv_rot_event_log(pv_rot *rot, pv_rot_event **events, size_t *n, pv_err *e);
void pv_rot_events_free(pv_rot_event *events, size_t n);

/* TPM2_Quote with the attestation key over PV_ROT_PCR (selection SHA-256 {PV_ROT_PCR},
 * scheme ECDSA-SHA256) with qualifying as qualifyingData: appends the marshaled
 * TPMS_ATTEST to attest and writes the signature as raw r || s. Checked by
 * pv_quote_verify (pavise/quote.h). PV_ERR_UNSUPPORTED on the software backend. */
int pv_rot_quote(pv_rot *rot, const uint8_t qualifying[PV_SHA256_LEN], pv_buf *attest,
                 uint8_t sig[PV_ES256_SIG_LEN], pv_err *e);

/* Replays events from a zero PCR: what PV_ROT_PCR must hold if the log is complete. */
void pv_rot_replay(const pv_rot_event *events, size_t n, uint8_t out[PV_SHA256_LEN]);

/* ---- anti-rollback counters ---- */

/* Reads counter id (< PV_ROT_COUNTERS). */
int pv_rot_counter_read(pv_rot *rot, unsigned id, uint64_t *value, pv_err *e);

/* Advances counter id to `to`. Equal to the current value: nothing to do.
 * PV_ERR_ROLLBACK when `to` is below it; counters never go back. PV_ERR_TOO_LARGE when
 * `to` is more than PV_ROT_MAX_COUNTER_STEP above it. A TPM counter moves one step per
 * NV write: an advance cut short by a power loss stops in between (never below the old
 * value) and calling again finishes it. */
int pv_rot_counter_advance(pv_rot *rot, unsigned id, uint64_t to, pv_err *e);

/* ---- the fused trust anchor ---- */

/* Writes the trust anchor (SHA-256 of the update root's SubjectPublicKeyInfo DER) and
 * locks it for good. PV_ERR_LOCKED when one is already fused (even the same value). */
int pv_rot_fuse_trust_anchor(pv_rot *rot, const uint8_t hash[PV_SHA256_LEN], pv_err *e);

/* Reads the fused trust anchor. PV_ERR_NOT_FOUND when none is fused yet. */
int pv_rot_trust_anchor(pv_rot *rot, uint8_t hash[PV_SHA256_LEN], pv_err *e);

/* ---- TPM enrollment (PV_ERR_UNSUPPORTED on the software backend) ---- */

/* The endorsement key's certificate (DER) from the TPM's NV (RSA 2048 EK, index
 * 0x01c00002), appended to der. PV_ERR_NOT_FOUND when the TPM has none. */
int pv_rot_ek_certificate(pv_rot *rot, pv_buf *der, pv_err *e);

/* The attestation key's public area, as a marshaled TPMT_PUBLIC (what the TPM hashes into
 * the key's name), appended to out. */
int pv_rot_attestation_key_tpm_public(pv_rot *rot, pv_buf *out, pv_err *e);

/* TPM2_ActivateCredential with the attestation key and the endorsement key (created from
 * the TCG default RSA 2048 EK template): recovers the secret a verifier sealed to them
 * with TPM2_MakeCredential (pv_enroll_challenge). credential_blob is a marshaled
 * TPM2B_ID_OBJECT, secret a marshaled TPM2B_ENCRYPTED_SECRET. The recovered secret is
 * appended to out. PV_ERR_SIGNATURE when the TPM refuses the credential (it was made for
 * another TPM or another key). */
int pv_rot_activate_credential(pv_rot *rot, const uint8_t *credential_blob, size_t blob_len,
                               const uint8_t *secret, size_t secret_len, pv_buf *out, pv_err *e);

#endif
