/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside pavise-agent: the pieces of pv_attest_run, separate so the unit tests can drive
 * each one (the response parser and checks, the certificate store, the TLS key).
 */
#ifndef PAVISE_ATTEST_INTERNAL_H
#define PAVISE_ATTEST_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/attest.h"
#include "pavise/buf.h"
#include "pavise/err.h"
#include "pavise/x509.h"

#define ATTEST_CSR_MAX 4096 /* protocol §1.2 */

/* ---- the response (protocol §1.5) ---- */

typedef struct attest_response {
    pv_attest_verdict verdict;
    char reason[PV_ATTEST_MAX_REASON + 1];
    pv_cert *service_cert;  /* passed, identity-only */
    pv_cert *service_ca;    /* passed, identity-only */
    pv_cert *client_cert;   /* passed only */
    pv_chain *client_chain; /* passed only: the tenant CA chain */
} attest_response;

/* Parses the body of a /v1/attestation response with HTTP status `status`: 200 with a
 * verdict and certificates, or 400/403/404/413 with {1: "failed", 2: reason}. Strict:
 * at most PV_ATTEST_MAX_BODY bytes, unknown or repeated keys, wrong types, a missing
 * or superfluous certificate for the result are refused. out is cleared on entry and
 * filled on success (free with attest_response_free). PV_ERR_FORMAT, PV_ERR_TRUNCATED,
 * PV_ERR_TOO_LARGE; PV_ERR_IO for a status that carries no verdict. */
int attest_parse_response(long status, const uint8_t *p, size_t len, attest_response *out,
                          pv_err *e);
void attest_response_free(attest_response *r);

/* Checks the certificates of a passed or identity-only response at time now: the service
 * certificate chains to the returned service CA, the client certificate to the returned
 * tenant chain; both name device_id (subject CN) and carry the public key whose
 * SubjectPublicKeyInfo DER is spki. Sets the two expiries (client 0 when none).
 * PV_OK; PV_ERR_UNTRUSTED naming what does not match; PV_ERR_EXPIRED. */
PV_WUR int attest_check_response(const attest_response *r, const char *device_id,
                                 const uint8_t *spki, size_t spki_len, int64_t now,
                                 int64_t *service_not_after, int64_t *client_not_after, pv_err *e);

/* ---- the certificate store (STATE/certs, pavise/attest.h) ---- */

/* Records a verdict. With a passed or identity-only response, key_pem (the new TLS key)
 * and the response's certificates replace the old ones; the client certificate and chain
 * are written only when passed and removed otherwise. With a failed verdict (r without
 * certificates, key_pem NULL) only the client certificate and chain are removed. Then
 * attestation.json is written from res. PV_ERR_IO. */
int attest_store(const char *state_dir, const attest_response *r, const uint8_t *key_pem,
                 size_t key_len, const pv_attest_result *res, pv_err *e);

/* ---- the TLS key ---- */

typedef struct attest_tlskey {
    pv_buf *pem;  /* the private key file (secret for a software key) */
    pv_buf *csr;  /* PKCS#10 DER, self-signed */
    pv_buf *spki; /* SubjectPublicKeyInfo DER of the key, as read back from the CSR */
} attest_tlskey;

/* Makes a new P-256 key and a CSR for it with subject CN=device_id: in memory for
 * PV_ROT_SOFTWARE; inside the TPM reached through tcti (NULL or "": the tpm2-tss
 * default) for PV_ROT_TPM, through the tpm2-openssl provider in a library context of its
 * own, which is closed again before returning (so the TPM connection is free for the root
 * of trust). out is cleared on entry; free with attest_tlskey_free.
 * PV_ERR_CRYPTO, PV_ERR_ROT (the provider or the TPM failed), PV_ERR_INVALID_ARG. */
int attest_tlskey_make(pv_rot_kind kind, const char *tcti, const char *device_id,
                       attest_tlskey *out, pv_err *e);
void attest_tlskey_free(attest_tlskey *k);

/* pv_attest_tls_sign on a key file's bytes already read (pem, len pem_len), so the tests
 * can hand it any content. Same codes, but PV_ERR_NOT_FOUND. */
PV_WUR int attest_tlskey_sign(pv_rot_kind kind, const char *tcti, const uint8_t *pem,
                              size_t pem_len, const uint8_t *digest, size_t len,
                              uint8_t sig[PV_ATTEST_TLS_SIG_LEN], pv_err *e);

/* ---- hostile variations, for the attack tests ----
 * pv_attest_run is attest_run with no hooks. tests/attacks drive the same client with
 * hooks to send what a hostile or broken device would, so the service is tested against
 * the real protocol code with one thing changed. Every member may be NULL/false. */
typedef struct attest_hooks {
    void *ctx;
    /* Asks the challenge for this device ID instead of ours (another device's nonce). */
    const char *challenge_device_id;
    /* Signs the evidence (and quotes) with this root of trust instead of ours: its
     * attestation key, our claims (evidence signed by another device). */
    pv_rot *sign_rot;
    /* Edits the claims after they are filled and before they are signed. */
    int (*edit_evidence)(void *ctx, pv_evidence *ev, pv_err *e);
    /* Sends the CSR of a second fresh key, not the one the evidence binds (the TLS key
     * swapped after the evidence was made). */
    bool swap_tls_key;
    /* Sees the encoded attestation request before it is sent; may record or replace it. */
    int (*edit_request)(void *ctx, pv_buf *body, pv_err *e);
} attest_hooks;

int attest_run(const pv_attest_opts *o, const attest_hooks *h, pv_attest_result *res, pv_err *e);

#endif
