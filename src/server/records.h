/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Manufacturing records on the service: verified against the factory certificates in
 * the `factories` table (`pavise-server factory add`) and kept by device ID, so that a
 * device can be claimed by its ID (`pavise-server factory import`) or with its record.
 */
#ifndef PAVISE_SERVER_RECORDS_H
#define PAVISE_SERVER_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "pavise/err.h"
#include "pavise/rot.h"
#include "pavise/x509.h"

#include "store.h"

/* Verifies a record file (pv_mfgrec_verify at `now` against every trusted factory) and
 * stores it unless a record for that device is already stored (the first verified
 * record is kept). device_id receives the record's device ID.
 * PV_OK; PV_ERR_UNTRUSTED (no factory is trusted, or the chain leads to none of them);
 * the codes of pv_mfgrec_verify; store errors. */
int records_import(store *db, const uint8_t *rec, size_t len, int64_t now,
                   char device_id[PV_DEVICE_ID_HEX_LEN + 1], pv_err *e);

/* Adds a trusted factory CA certificate (PEM file contents; must be a CA certificate).
 * PV_ERR_EXISTS when it is already trusted; PV_ERR_FORMAT. */
int records_add_factory(store *db, const char *pem, size_t len, int64_t now, char fingerprint[65],
                        pv_err *e);

/* Parses PEM text holding exactly one certificate (text around the block is allowed,
 * RFC 7468). PV_ERR_FORMAT with the reason; PV_ERR_TOO_LARGE. Also for image roots. */
int records_parse_cert(const char *pem, size_t len, pv_cert **out, pv_err *e);

/* A CA certificate the service is asked to trust (a factory, an image root), as it is
 * stored: its SHA-256 fingerprint and subject, and the certificate re-encoded as PEM from
 * its DER, without the text around the block. */
typedef struct records_ca {
    char fingerprint[65];
    char subject[512];
    char *pem; /* NUL-terminated; malloc'd */
} records_ca;

/* Parses one PEM certificate that must be a CA; `what` names it in messages ("factory
 * certificate") and `hint` says what to give instead of a leaf. out is cleared on entry;
 * free with records_ca_free. PV_ERR_FORMAT, and records_parse_cert's errors. */
int records_parse_ca(const char *pem, size_t len, const char *what, const char *hint,
                     records_ca *out, pv_err *e);
void records_ca_free(records_ca *ca);

#endif
