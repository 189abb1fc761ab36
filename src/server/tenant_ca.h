/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tenant CAs (docs/protocol/attestation.md §3): each tenant has its own certificate
 * authority, which issues its devices' client certificates; the customer's relying
 * parties (an MQTT broker, an HTTPS API) trust the tenant's CA chain.
 *
 * Storage: the tenant_cas table (schema.c, migration 2). A CA's private key is kept in
 * its row as PKCS#8 DER sealed with AES-256-GCM under the key-encryption key
 * DATA/tenant-ca.kek (32 random bytes, 0600), so every replica sharing the data
 * directory can issue and the database alone (a dump, a backup) reveals no key.
 *
 * Lifecycle: one 'active' CA per tenant issues. tenant_ca_rotate makes the active one
 * 'retiring' with retire_after = now + the client certificate lifetime (the last
 * certificate it issued has expired by then) and a new one 'active'. A 'retiring' row
 * whose retire_after has passed is treated as retired by every read, and is rewritten
 * as 'retired' by the next rotation (a write); nothing else writes it.
 *
 * Transactions: none of these functions begins or commits; the caller does (a write
 * transaction for create and rotate). Rotation and tenant_ca_ensure_all lock the tenant's
 * row first (an UPDATE that changes nothing), so two replicas doing it at once cannot
 * both leave an active CA behind. Every issue reads the active CA's row, so a rotation on
 * one replica takes effect on all at once; what is cached (per thread) is only the
 * opened form of a row's certificate and sealed key, reused while the row's bytes and
 * the KEK are exactly the same (tenant_ca.c).
 */
#ifndef PAVISE_SERVER_TENANT_CA_H
#define PAVISE_SERVER_TENANT_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/crypto.h"
#include "pavise/err.h"
#include "pavise/x509.h"

#include "store.h"

#define TENANT_CA_KEK_FILE     "tenant-ca.kek"
#define TENANT_CA_KEK_LEN      32
#define TENANT_CA_SEAL_VERSION 1
#define TENANT_CA_IV_LEN       12
#define TENANT_CA_TAG_LEN      16
/* A sealed P-256 PKCS#8 key is about 180 bytes; anything much larger is not ours. */
#define TENANT_CA_SEALED_MAX 1024
#define TENANT_CA_YEARS      5
#define TENANT_CA_CLOCK_SKEW 300  /* certificates start 5 minutes early for slow clocks */
#define TENANT_CA_PROOF_TIME 3600 /* a proof-of-possession certificate lives 1 hour */
#define TENANT_CA_CODE_MAX   64   /* verification codes: 1..64 of [A-Za-z0-9-] */
#define TENANT_CA_MAX_CHAIN  PV_CHAIN_MAX_CERTS

/* ---- the key-encryption key ---- */

/* Creates DATA/tenant-ca.kek (32 random bytes, 0600) when it does not exist and loads
 * it into kek. The file appears atomically and is never replaced, so when two processes
 * start at once the loser of the race reads the winner's key. An existing file must be
 * a regular file of exactly 32 bytes, owned by this user, with no group or other access.
 * *created (may be NULL) tells whether this call made it.
 * PV_OK; PV_ERR_IO; PV_ERR_UNSAFE (mode, owner); PV_ERR_FORMAT (size); PV_ERR_CRYPTO. */
int tenant_ca_kek_load(const char *data_dir, uint8_t kek[TENANT_CA_KEK_LEN], bool *created,
                       pv_err *e);

/* ---- sealing ---- */

/* Seals plain (the CA's PKCS#8 DER) for the row ca_id: version (1) || IV (12, random) ||
 * AES-256-GCM ciphertext || tag (16), with ca_id as additional authenticated data, so a
 * sealed key moved to another row does not open. Appends to out.
 * PV_OK; PV_ERR_INVALID_ARG; PV_ERR_TOO_LARGE; PV_ERR_CRYPTO. */
int tenant_ca_seal(const uint8_t kek[TENANT_CA_KEK_LEN], const char *ca_id, const uint8_t *plain,
                   size_t plain_len, pv_buf *out, pv_err *e);

/* Opens what tenant_ca_seal made into out (marked secret, appended).
 * PV_OK; PV_ERR_UNSUPPORTED (version); PV_ERR_TRUNCATED / PV_ERR_TOO_LARGE (size);
 * PV_ERR_SIGNATURE (the tag does not verify: wrong key, another row's key, or any byte
 * changed); PV_ERR_CRYPTO. */
PV_WUR int tenant_ca_unseal(const uint8_t kek[TENANT_CA_KEK_LEN], const char *ca_id,
                            const uint8_t *sealed, size_t sealed_len, pv_buf *out, pv_err *e);

/* ---- CAs ---- */

typedef struct tenant_ca_info {
    char id[37];
    char fingerprint[2 * PV_SHA256_LEN + 1]; /* hex SHA-256 of the certificate's DER */
    char subject[128];
    char status[16]; /* "active", "retiring" or "retired" (as of the read's time) */
    int64_t not_before, not_after, created_at;
    int64_t retire_after; /* 0: none */
    char *cert_pem;       /* malloc'd */
} tenant_ca_info;

void tenant_ca_info_clear(tenant_ca_info *ca);

/* Makes a new CA for tenant_id (ECDSA P-256, CN=Pavise tenant <tenant ID>,
 * basicConstraints CA:TRUE pathlen:0 and keyUsage keyCertSign + cRLSign, both critical,
 * subjectKeyIdentifier, 5 years from now - 5 minutes, random positive serial) and
 * inserts it 'active'. The caller holds a write transaction and has made sure the tenant
 * has no active CA (tenant_ca_rotate does both). out (may be NULL) receives the row.
 * PV_OK; PV_ERR_INVALID_ARG (tenant ID); the store's codes; PV_ERR_CRYPTO. */
int tenant_ca_create(store *db, const uint8_t kek[TENANT_CA_KEK_LEN], const char *tenant_id,
                     int64_t now, tenant_ca_info *out, pv_err *e);

/* Rotation, in the caller's write transaction: locks the tenant, marks the retiring CAs
 * whose retire_after has passed 'retired', makes the active CA (if any) 'retiring' with
 * retire_after = now + overlap (the client certificate lifetime, in seconds), and
 * creates a new active one (out, may be NULL). Also the way to give a tenant without a
 * CA its first. PV_ERR_NOT_FOUND (no such tenant); as tenant_ca_create. */
int tenant_ca_rotate(store *db, const uint8_t kek[TENANT_CA_KEK_LEN], const char *tenant_id,
                     int64_t now, int64_t overlap, tenant_ca_info *out, pv_err *e);

/* Gives every tenant that has no CA at all one (tenants made before schema migration 2),
 * each in its own write transaction (so the caller holds none). *created (may be NULL)
 * counts them. Run by `pavise-server serve` at start, before the workers. */
int tenant_ca_ensure_all(store *db, const uint8_t kek[TENANT_CA_KEK_LEN], int64_t now,
                         size_t *created, pv_err *e);

/* The CAs of a tenant, as of now (effective status), into a new array of *count entries
 * (free each with tenant_ca_info_clear, then the array). Order: created_at then id,
 * oldest first; only rows after the key `after` ("" for the first) and at most limit
 * (0: all). The key of a row is tenant_ca_key(). */
int tenant_ca_list(store *db, const char *tenant_id, int64_t now, const char *after, size_t limit,
                   tenant_ca_info **out, size_t *count, pv_err *e);
/* The list key of a row: "<created_at, 20 digits>.<id>" (sorts as the list does). */
void tenant_ca_key(const tenant_ca_info *ca, char out[64]);

/* One CA of a tenant by ID (PV_ERR_NOT_FOUND when it is another tenant's or unknown). */
int tenant_ca_get(store *db, const char *tenant_id, const char *ca_id, int64_t now,
                  tenant_ca_info *out, pv_err *e);

/* The trust chain relying parties install: every CA of the tenant that is not retired
 * as of now, the active one first, then the retiring ones newest first.
 * PV_ERR_NOT_FOUND when there is none. */
int tenant_ca_chain(store *db, const char *tenant_id, int64_t now, pv_chain **out, pv_err *e);

/* ---- issuing ---- */

/* An extension to add to an issued certificate: its OID in dotted text, and its value
 * (the DER that extnValue's OCTET STRING wraps). */
typedef struct tenant_ca_ext {
    const char *oid;
    const uint8_t *der;
    size_t der_len;
    bool critical;
} tenant_ca_ext;

typedef struct tenant_ca_issued {
    pv_cert *cert;                           /* the new certificate (caller frees) */
    char ca_id[37];                          /* the CA that issued it */
    char serial[41];                         /* lowercase hex */
    char fingerprint[2 * PV_SHA256_LEN + 1]; /* hex SHA-256 of its DER */
    int64_t not_before, not_after;
} tenant_ca_issued;

void tenant_ca_issued_clear(tenant_ca_issued *iss);

/* Issues a client certificate from the tenant's active CA: loads the CA, unseals its key
 * (under kek) and signs a certificate for pub (a P-256 public key) with
 *   - subject: pv_cert_params syntax, e.g. "CN=<device ID>,O=<tenant ID>" (the caller
 *     has checked that its values hold no ',' or '=');
 *   - validity: now - 5 minutes (clock skew) to now + lifetime (seconds, > 0);
 *   - extensions: keyUsage digitalSignature (critical), extendedKeyUsage clientAuth,
 *     basicConstraints CA:FALSE (critical), subject and authority key identifiers, and
 *     ext when not NULL (the attestation extension of attestation.md §2);
 *   - a random positive serial.
 * Does not write: the caller records what it issued. Runs inside or outside a
 * transaction. The private key is wiped before returning.
 * PV_OK; PV_ERR_NOT_FOUND (the tenant has no active CA); PV_ERR_EXPIRED (the CA expires
 * before the certificate would: rotate it); PV_ERR_SIGNATURE (the sealed key does not
 * open under kek: tampered, or another data directory's KEK); PV_ERR_INVALID_ARG
 * (subject, lifetime, ext); PV_ERR_FORMAT (a stored row is damaged); the store's codes;
 * PV_ERR_CRYPTO. */
int tenant_ca_issue(store *db, const uint8_t kek[TENANT_CA_KEK_LEN], const char *tenant_id,
                    const pv_key *pub, const char *subject, int64_t now, int64_t lifetime,
                    const tenant_ca_ext *ext, tenant_ca_issued *out, pv_err *e);

/* tenant_ca_issue, and in the same read the tenant's chain (as tenant_ca_chain: the
 * active CA first, then the retiring ones newest first), into *chain (caller frees):
 * what a device that passed attestation receives. The same codes. */
int tenant_ca_issue_chain(store *db, const uint8_t kek[TENANT_CA_KEK_LEN], const char *tenant_id,
                          const pv_key *pub, const char *subject, int64_t now, int64_t lifetime,
                          const tenant_ca_ext *ext, tenant_ca_issued *out, pv_chain **chain,
                          pv_err *e);

/* Drops this thread's cache of opened CA keys (wiped). Threads' caches are also freed
 * when they exit; tests call this to force the uncached path. */
void tenant_ca_cache_flush(void);

/* Proof of possession, as customer clouds ask before they trust a CA (Azure IoT Hub's
 * and AWS IoT's "verification certificate"): a leaf certificate with subject
 * CN=<code>, valid from now - 5 minutes for 1 hour, for a key made here and thrown away,
 * signed by the CA ca_id of the tenant (active or retiring). code: 1..64 of
 * [A-Za-z0-9-]. out_pem receives the PEM (caller frees).
 * PV_OK; PV_ERR_INVALID_ARG (code); PV_ERR_NOT_FOUND (no such CA in the tenant);
 * PV_ERR_EXPIRED (the CA is retired); as tenant_ca_issue. */
int tenant_ca_proof(store *db, const uint8_t kek[TENANT_CA_KEK_LEN], const char *tenant_id,
                    const char *ca_id, const char *code, int64_t now, char **out_pem, pv_err *e);

/* Whether a verification code is 1..64 of [A-Za-z0-9-]. */
bool tenant_ca_valid_code(const char *code);

#endif
