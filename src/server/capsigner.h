/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The capability signer: the key and certificate chain with which the service signs
 * device capability files (docs/formats/capability.md), kept in the data directory as
 * DATA/capability-signer.key (PKCS#8 PEM, mode 0600) and DATA/capability-signer.crt
 * (PEM, leaf first). The service operator installs them offline (`pavise-server
 * capability-signer set`); the API reads them on each request, so a signer installed or
 * replaced while the server runs is used from the next request, by every replica that
 * shares the data directory. Its chain must lead to the update root fused into the
 * devices, which the service does not hold: only the leaf and the chain's own links are
 * checked here.
 */
#ifndef PAVISE_SERVER_CAPSIGNER_H
#define PAVISE_SERVER_CAPSIGNER_H

#include <stdint.h>

#include "pavise/crypto.h"
#include "pavise/err.h"
#include "pavise/x509.h"

#define CAPSIGNER_KEY_FILE   "capability-signer.key"
#define CAPSIGNER_CHAIN_FILE "capability-signer.crt"

/* Checks a signer: key is a P-256 private key; chain holds 1 to PV_CHAIN_MAX_CERTS
 * certificates, its leaf holds key, and the chain verifies against its own topmost
 * certificate at `at` with every certificate on the path and the capability-signing
 * usage on the leaf (PV_VERIFY_CAPABILITY_SIGNING).
 * PV_OK; PV_ERR_INVALID_ARG (the key or the chain, named in the message);
 * PV_ERR_UNTRUSTED, PV_ERR_EXPIRED (the chain). */
int capsigner_check(const pv_key *key, const pv_chain *chain, int64_t at, pv_err *e);

/* Writes key and chain (checked by the caller) into data_dir, replacing a signer that is
 * there: the chain, then the key through a temporary file renamed over the old one, so
 * neither file is ever partial; a reader between the two renames sees a pair that does
 * not match (capsigner_load: PV_ERR_INVALID_ARG) and is told to try again.
 * PV_OK; PV_ERR_IO; PV_ERR_TOO_LARGE (a path). */
int capsigner_store(const char *data_dir, const pv_key *key, const pv_chain *chain, pv_err *e);

/* Loads the installed signer. PV_OK; PV_ERR_NOT_FOUND (none installed: neither file);
 * PV_ERR_INVALID_ARG (the key does not match the leaf, or one file is missing);
 * PV_ERR_IO, PV_ERR_FORMAT, PV_ERR_UNSUPPORTED (a file). */
int capsigner_load(const char *data_dir, pv_key **key, pv_chain **chain, pv_err *e);

#endif
