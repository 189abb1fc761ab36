/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Attestation nonces (docs/protocol/attestation.md §1.1), stateless for the service:
 *
 *   nonce = random(16) || expires_at (8 bytes, big-endian)
 *           || HMAC-SHA-256(key, "pavise-nonce-v1" || device_id || random || expires_at)[0..24]
 *
 * Issuing one writes nothing; nonce_check proves the service issued it for this device
 * and that it has not expired. Single use is the caller's part: the attestation that
 * spends a nonce inserts its hash into used_nonces (primary key) in the transaction that
 * records the result.
 *
 * The key is DATA/nonce.key (32 random bytes, mode 0600), shared by replicas like the
 * rest of the data directory.
 */
#ifndef PAVISE_SERVER_NONCE_H
#define PAVISE_SERVER_NONCE_H

#include <stdbool.h>
#include <stdint.h>

#include "pavise/crypto.h"
#include "pavise/err.h"
#include "pavise/evidence.h"
#include "pavise/rot.h"

#define NONCE_KEY_FILE    "nonce.key"
#define NONCE_KEY_LEN     32
#define NONCE_RANDOM_LEN  16
#define NONCE_MAC_LEN     24
#define NONCE_TTL_SECONDS 300

/* Reads DATA/nonce.key, creating it first when create is set and it does not exist
 * (atomically: of two processes racing, both end up with the one that was written).
 * PV_ERR_NOT_FOUND (missing and !create), PV_ERR_FORMAT (not 32 bytes), PV_ERR_IO. */
int nonce_key_load(const char *data_dir, bool create, uint8_t key[NONCE_KEY_LEN], pv_err *e);

/* A new nonce for device_id (64 lowercase hex), expiring NONCE_TTL_SECONDS after now.
 * PV_ERR_CRYPTO when there are no random bytes or the MAC fails. */
int nonce_issue(const uint8_t key[NONCE_KEY_LEN], const char *device_id, int64_t now,
                uint8_t out[PV_NONCE_LEN], int64_t *expires_at, pv_err *e);

/* Checks a nonce presented for device_id at time now: PV_OK and its expiry time;
 * PV_ERR_SIGNATURE when this service did not issue it for this device (forged, altered,
 * or another device's); PV_ERR_EXPIRED when it has expired (checked after the MAC, so an
 * altered expiry is PV_ERR_SIGNATURE). */
int nonce_check(const uint8_t key[NONCE_KEY_LEN], const char *device_id,
                const uint8_t nonce[PV_NONCE_LEN], int64_t now, int64_t *expires_at, pv_err *e);

#endif
