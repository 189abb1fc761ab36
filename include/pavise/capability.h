/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device capability file (docs/formats/capability.md): what the Security Service
 * grants one device beyond a production device's rights -- today only "AppDevelopment",
 * which lets the device install and run images signed under the service's development
 * image roots. The file names the device by its ID, lists the capabilities and the
 * development roots, and is signed (COSE_Sign1, ES256) by the service's capability
 * signer, whose certificate chain travels with it and must lead to the device's update
 * root with the capability-signing extended key usage on the leaf
 * (PV_VERIFY_CAPABILITY_SIGNING), so no code-signing key can make one.
 *
 * Errors common to every function: PV_ERR_INVALID_ARG, PV_ERR_NOMEM.
 */
#ifndef PAVISE_CAPABILITY_H
#define PAVISE_CAPABILITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/buf.h"
#include "pavise/crypto.h"
#include "pavise/err.h"
#include "pavise/x509.h"

#define PV_CAPABILITY_VERSION       1
#define PV_CAPABILITY_MAX_SIZE      (64 * 1024) /* the whole file */
#define PV_CAPABILITY_MAX_ROOTS     8           /* development roots in one file */
#define PV_CAPABILITY_MAX_NAMES     16          /* entries of the capabilities array */
#define PV_CAPABILITY_CONTENT_TYPE  "application/vnd.pavise.capability+cbor; v=1"
#define PV_CAPABILITY_DEVICE_ID_LEN 64 /* lowercase hex SHA-256 of the identity key's SPKI */

/* The capabilities, as bits of a mask. */
#define PV_CAP_APP_DEVELOPMENT 0x1u /* "AppDevelopment": development images may run */
#define PV_CAP_ALL             PV_CAP_APP_DEVELOPMENT

/* A verified (or, from pv_capability_decode, merely parsed) capability file. */
typedef struct pv_capability {
    unsigned version;                                /* PV_CAPABILITY_VERSION */
    char device_id[PV_CAPABILITY_DEVICE_ID_LEN + 1]; /* the device it is for */
    uint32_t caps;                                   /* PV_CAP_* bits, at least one */
    int64_t issued_at;                               /* seconds since the epoch */
    int64_t expires_at;                              /* seconds since the epoch; 0: no expiry */
    /* The development image roots (0..PV_CAPABILITY_MAX_ROOTS CA certificates): trust
     * anchors for development images while the capability is applied. Both owned and
     * set (possibly empty); the same certificates, as a trust set to verify images with
     * and as a list to show (fingerprints, subjects). */
    pv_trust *dev_roots;
    pv_chain *dev_root_list;
    uint8_t signer_key_id[PV_KEY_ID_LEN]; /* the COSE kid: the signer's key ID */
} pv_capability;

/* The name of one capability bit ("AppDevelopment"), NULL for anything else. */
const char *pv_capability_name(uint32_t cap);
/* The bit of a capability name (exact, case-sensitive). PV_ERR_UNSUPPORTED for a name
 * this version does not know. */
int pv_capability_parse_name(const char *name, uint32_t *cap);

/* Makes a capability file for device_id (64 lowercase hex digits) granting caps (a
 * non-empty set of PV_CAP_* bits) with the development roots dev_roots (a list of 0 to
 * PV_CAPABILITY_MAX_ROOTS distinct CA certificates, or NULL for none; AppDevelopment
 * needs at least one), issued_at (>= 0) and expires_at (0 for none, else after
 * issued_at), signed with key, whose certificate chain (leaf first, the leaf holding
 * key; 1 to PV_CHAIN_MAX_CERTS certificates) goes into the file. The chain is not
 * verified here (the signer does not know each device's update root), but the leaf must
 * carry the capability-signing usage, or no device would accept the file. Appends the
 * file to out.
 * PV_OK; PV_ERR_INVALID_ARG (an argument breaks a rule above, named in the message);
 * PV_ERR_TOO_LARGE (over PV_CAPABILITY_MAX_SIZE, or out is full); PV_ERR_CRYPTO. */
int pv_capability_create(const pv_key *key, const pv_chain *chain, const char *device_id,
                         uint32_t caps, const pv_chain *dev_roots, int64_t issued_at,
                         int64_t expires_at, pv_buf *out, pv_err *e);

/* Verifies a capability file for this device at time now: the file is at most
 * PV_CAPABILITY_MAX_SIZE bytes and well formed; the signer chain leads to update_root
 * (the device's update root as a trust set) with every certificate valid at now, every
 * certificate on the path and the capability-signing usage on the leaf; the COSE kid is
 * the leaf's key ID; the signature verifies; the payload follows the format (every
 * capability known); it names device_id; and it has not expired (now < expires_at).
 * *out is cleared on entry and filled only on success; free it with pv_capability_free.
 * PV_OK;
 * PV_ERR_TOO_LARGE (the file, or a field over its limit);
 * PV_ERR_TRUNCATED, PV_ERR_FORMAT (not a capability file, or a field breaks a rule);
 * PV_ERR_UNSUPPORTED (another format version, or a capability this version does not
 * know);
 * PV_ERR_UNTRUSTED (the chain does not lead to update_root, the leaf lacks the
 * capability-signing usage or has codeSigning, a certificate is unused; or the file is
 * for another device: the message names both IDs);
 * PV_ERR_EXPIRED (a certificate of the chain at now, or the file: now >= expires_at);
 * PV_ERR_SIGNATURE (the signature does not verify: the file was changed). */
PV_WUR int pv_capability_verify(const uint8_t *p, size_t len, const pv_trust *update_root,
                                const char *device_id, int64_t now, pv_capability *out, pv_err *e);

/* Parses a capability file without checking the chain, the signature, the device or the
 * time: for display only; trust nothing in it. *out is cleared on entry and filled only
 * on success (free with pv_capability_free). If chain is not NULL it receives the signer
 * chain (caller frees). The codes of pv_capability_verify's parsing. */
int pv_capability_decode(const uint8_t *p, size_t len, pv_capability *out, pv_chain **chain,
                         pv_err *e);

/* Frees what cap owns and clears it (the struct itself is the caller's). Accepts NULL. */
void pv_capability_free(pv_capability *cap);

#endif
