/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device's state directory (docs/rot.md §State directory): which root of trust the
 * device uses, the update root certificate whose hash is fused into it, the
 * manufacturing record, the A/B OS slots and what the last boot did.
 *
 *   device.conf                 {"version":1,"rot":"tpm"|"software","tcti":"..."}
 *   manufacturing-record.cbor   written by pavise-device manufacture
 *   trust/update-root.crt       the update root; must hash to the fused trust anchor
 *   rot/                        the root of trust's own files (0700)
 *   slots/active                "a" or "b" (absent: "a")
 *   slots/a/os.imagepackage, slots/b/os.imagepackage
 *   boot/last-boot.json         what pavise-boot tried and why a slot was refused
 *   run/os/                     the verified OS image, extracted at each boot
 *
 * Nothing here is trusted by itself: the trust anchor is checked against the fuse, images
 * are verified, and the root of trust's kind in device.conf can be pinned by the boot
 * command line (pavise-boot --rot).
 */
#ifndef PAVISE_DEVSTATE_H
#define PAVISE_DEVSTATE_H

#include "pavise/err.h"
#include "pavise/rot.h"
#include "pavise/x509.h"

#define PV_DEVSTATE_CONFIG       "device.conf"
#define PV_DEVSTATE_UPDATE_ROOT  "trust/update-root.crt"
#define PV_DEVSTATE_MFG_RECORD   "manufacturing-record.cbor"
#define PV_DEVSTATE_ACTIVE_SLOT  "slots/active"
#define PV_DEVSTATE_SLOT_PACKAGE "os.imagepackage"
#define PV_DEVSTATE_LAST_BOOT    "boot/last-boot.json"
#define PV_DEVSTATE_RUN_OS       "run/os"

typedef struct pv_devstate {
    pv_rot_kind kind;
    char tcti[PV_ROT_MAX_TCTI + 1]; /* "" for the tpm2-tss default */
} pv_devstate;

/* Writes device.conf (once: PV_ERR_EXISTS if there is one). */
int pv_devstate_save(const char *state_dir, const pv_devstate *s, pv_err *e);

/* Reads device.conf. PV_ERR_NOT_FOUND when the device is not manufactured;
 * PV_ERR_FORMAT for a malformed file. */
int pv_devstate_load(const char *state_dir, pv_devstate *out, pv_err *e);

/* Opens the device's root of trust: the kind and TCTI from device.conf unless overridden
 * (kind NULL / tcti NULL: no override; the environment variable PAVISE_TCTI, when set,
 * overrides the TCTI of device.conf too). A kind override that disagrees with device.conf
 * is refused (PV_ERR_INVALID_ARG): it pins the kind, it does not change it. */
int pv_devstate_open_rot(const char *state_dir, const char *kind, const char *tcti, pv_rot **out,
                         pv_err *e);

/* Loads trust/update-root.crt and checks that SHA-256 of its SubjectPublicKeyInfo equals
 * the trust anchor fused into rot (constant-time). PV_ERR_UNTRUSTED when it does not;
 * PV_ERR_NOT_FOUND when nothing is fused or the file is missing. */
int pv_devstate_update_root(const char *state_dir, pv_rot *rot, pv_trust **out, pv_err *e);

/* SHA-256 of a certificate's SubjectPublicKeyInfo DER: the value fused as trust anchor. */
int pv_trust_anchor_hash(const pv_cert *root, uint8_t out[PV_SHA256_LEN], pv_err *e);

/* A new string "state_dir/rel". NULL on out of memory. */
char *pv_devstate_path(const char *state_dir, const char *rel);

#endif
