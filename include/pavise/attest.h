/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device's half of attestation (docs/protocol/attestation.md): ask the Security
 * Service for a challenge, make a fresh TLS key (inside the TPM on a TPM device), sign
 * evidence bound to it with the root of trust, send it with a CSR, check the certificates
 * that come back and keep them under STATE/certs/:
 *
 *   certs/               0700
 *     tls.key            the TLS private key, 0600: PKCS#8 PEM (software root of trust) or
 *                        a tpm2-openssl key file, "-----BEGIN TSS2 PRIVATE KEY-----" (TPM)
 *     service.crt        the service certificate (PEM)
 *     service-ca.crt     the service CA (PEM); pins the service next time
 *     client.crt         the client certificate (PEM), only while the last result passed
 *     client-chain.crt   the tenant CA chain (PEM), beside client.crt
 *     attestation.json   {"result","reason","at","serviceNotAfter","clientNotAfter"}:
 *                        the last verdict; times are seconds since the epoch, 0 for none
 *
 * Every file is written under a temporary name, fsynced and renamed. A refused
 * attestation keeps the TLS key and service certificate it had, but removes the client
 * certificate and chain: a device that stopped passing must not keep presenting them.
 * An attempt that got no verdict (network, TLS, a response that does not check out)
 * changes nothing.
 *
 * pavise-device attest runs this once; the runtime (pavised) runs it on the schedule of
 * pv_attest_next_delay.
 */
#ifndef PAVISE_ATTEST_H
#define PAVISE_ATTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/err.h"
#include "pavise/evidence.h"
#include "pavise/rot.h"

#define PV_ATTEST_MAX_BODY     (64 * 1024) /* request and response bodies */
#define PV_ATTEST_MAX_REASON   256         /* bytes of a reason */
#define PV_ATTEST_MAX_URL      1024
#define PV_ATTEST_TIMEOUT      30 /* seconds, whole request, unless opts say otherwise */
#define PV_ATTEST_CERTS_DIR    "certs"
#define PV_ATTEST_TLS_KEY      "certs/tls.key"
#define PV_ATTEST_SERVICE_CRT  "certs/service.crt"
#define PV_ATTEST_SERVICE_CA   "certs/service-ca.crt"
#define PV_ATTEST_CLIENT_CRT   "certs/client.crt"
#define PV_ATTEST_CLIENT_CHAIN "certs/client-chain.crt"
#define PV_ATTEST_STATUS       "certs/attestation.json"

typedef enum pv_attest_verdict {
    PV_ATTEST_NONE = 0,          /* no verdict (nothing attested yet, or no answer) */
    PV_ATTEST_PASSED = 1,        /* identity and policy: service and client certificates */
    PV_ATTEST_IDENTITY_ONLY = 2, /* identity proven, policy not: service certificate only */
    PV_ATTEST_FAILED = 3,        /* the service refused the device */
} pv_attest_verdict;

/* "passed", "identity-only", "failed"; "none" for PV_ATTEST_NONE. */
const char *pv_attest_verdict_name(pv_attest_verdict v);

typedef struct pv_attest_opts {
    const char *state_dir;  /* the device's state directory */
    const char *server_url; /* "https://host[:port]", no path */
    const char *ca_file;    /* the service CA (PEM); NULL: STATE/certs/service-ca.crt */
    const char *tcti;       /* TPM: overrides device.conf and $PAVISE_TCTI; NULL: none */
    bool development;       /* the device runs in development mode (dbgstat 0) */
    long timeout;           /* seconds for each request; 0: PV_ATTEST_TIMEOUT */
    /* Application images the runtime measured and runs, added to the images claim after
     * the booted OS image (borrowed; at most PV_EVIDENCE_MAX_IMAGES - 1). */
    const pv_evidence_image *app_images;
    size_t n_app_images;
} pv_attest_opts;

typedef struct pv_attest_result {
    pv_attest_verdict verdict;
    char reason[PV_ATTEST_MAX_REASON + 1]; /* "" when passed */
    char device_id[PV_DEVICE_ID_HEX_LEN + 1];
    pv_rot_kind rot_kind;
    int64_t at;                /* when the verdict came (device clock) */
    int64_t service_not_after; /* 0 when no service certificate was issued */
    int64_t client_not_after;  /* 0 when no client certificate was issued */
} pv_attest_result;

/* Runs one attestation and stores its outcome (above). res is cleared on entry.
 * PV_OK when the service gave a verdict: res->verdict says which (a refusal is a
 * verdict too, PV_ATTEST_FAILED with the service's reason). Otherwise an error and
 * res->verdict PV_ATTEST_NONE: PV_ERR_IO (network, TLS, HTTP status without a verdict),
 * PV_ERR_FORMAT / PV_ERR_TOO_LARGE (a malformed or oversized response),
 * PV_ERR_UNTRUSTED (a certificate in the response is not for this device, not for the
 * new key, or does not chain), PV_ERR_ROT, PV_ERR_CRYPTO, PV_ERR_NOT_FOUND (no service
 * CA, device not manufactured), PV_ERR_INVALID_ARG. Not thread-safe with another run on
 * the same state directory. */
int pv_attest_run(const pv_attest_opts *o, pv_attest_result *res, pv_err *e);

/* Reads STATE/certs/attestation.json (the last verdict). PV_ERR_NOT_FOUND when the device
 * never got one; PV_ERR_FORMAT for a malformed file. out is cleared on entry; device_id
 * and rot_kind are not stored there and stay empty. */
int pv_attest_load_status(const char *state_dir, pv_attest_result *out, pv_err *e);

/* ---- signing with the TLS key ---- */

#define PV_ATTEST_TLS_SIG_LEN 64   /* ECDSA P-256 r || s, 32 bytes each, big-endian */
#define PV_ATTEST_TLS_KEY_MAX 8192 /* bytes of STATE/certs/tls.key read at most */

/* Signs a digest (len 32, 48 or 64: SHA-256, SHA-384 or SHA-512 of the data) with the TLS
 * key of STATE/certs/tls.key, for an app that authenticates with the client certificate
 * without holding the key. kind is the device's root of trust (device.conf): a software
 * device's key is a PKCS#8 P-256 PEM file; a TPM device's a tpm2-openssl "TSS2 PRIVATE
 * KEY" blob, used through the tpm2 provider on tcti (NULL or "": the tpm2-tss default), in
 * a library context of its own that is closed again before returning. A file of the other
 * kind is refused. Only the key of STATE/certs/client.crt signs. A longer digest is signed
 * as its first 32 bytes under SHA-256 (the same P-256 signature; every TPM makes it). The
 * signature is verified with the key's public half before it is returned. sig is cleared
 * on entry and set on success.
 * PV_ERR_INVALID_ARG (a NULL argument, a digest of another length, a TCTI that cannot be
 * passed on), PV_ERR_NOT_FOUND (no key file or no client certificate, or a key that is not
 * the certificate's: the device holds no current certificate),
 * PV_ERR_TOO_LARGE (a key file over PV_ATTEST_TLS_KEY_MAX), PV_ERR_FORMAT (not a P-256
 * key of the device's kind), PV_ERR_ROT (the provider or the TPM failed, e.g. a blob made
 * by another TPM), PV_ERR_SIGNATURE (the signature made does not verify), PV_ERR_CRYPTO,
 * PV_ERR_IO, PV_ERR_NOMEM. */
PV_WUR int pv_attest_tls_sign(const char *state_dir, pv_rot_kind kind, const char *tcti,
                              const uint8_t *digest, size_t len, uint8_t sig[PV_ATTEST_TLS_SIG_LEN],
                              pv_err *e);

/* ---- schedule ---- */

#define PV_ATTEST_PERIOD        (20 * 3600) /* between attestations that passed */
#define PV_ATTEST_JITTER        (2 * 3600)  /* +- around the period */
#define PV_ATTEST_BACKOFF_FIRST 60          /* first retry after a failure */
#define PV_ATTEST_BACKOFF_MAX   3600        /* retries never wait longer */
#define PV_ATTEST_RENEW_MARGIN  (2 * 3600)  /* renew at least this long before expiry */
#define PV_ATTEST_MIN_DELAY     30          /* never sooner than this */

/* Seconds to wait before the next attestation:
 *   - after PV_ATTEST_PASSED (failures 0): PV_ATTEST_PERIOD +- PV_ATTEST_JITTER;
 *   - at start (PV_ATTEST_NONE with failures 0): at once, within a random
 *     [0, PV_ATTEST_BACKOFF_FIRST] seconds, so a fleet powered on together does not
 *     arrive together;
 *   - after failures (failures >= 1 consecutive attempts without a pass, whatever the
 *     verdict): PV_ATTEST_BACKOFF_FIRST * 2^(failures-1), capped at
 *     PV_ATTEST_BACKOFF_MAX, with up to a quarter of it added as jitter;
 *   - and after a pass or a failure, no later than PV_ATTEST_RENEW_MARGIN before
 *     cert_not_after (the expiry of the certificate the device relies on; 0 when it
 *     holds none), nor sooner than PV_ATTEST_MIN_DELAY.
 * rnd is a random number from the caller (pv_random_bytes), so tests are deterministic. */
int64_t pv_attest_next_delay(pv_attest_verdict last, int64_t now, int64_t cert_not_after,
                             unsigned failures, uint32_t rnd);

#endif
