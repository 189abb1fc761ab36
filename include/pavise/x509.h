/* SPDX-License-Identifier: Apache-2.0 */
/*
 * X.509: certificates, chains, trust anchors, verification and creation (for the
 * `pavise keys` commands and the service's CAs).
 */
#ifndef PAVISE_X509_H
#define PAVISE_X509_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/buf.h"
#include "pavise/crypto.h"
#include "pavise/err.h"

#define PV_CERT_MAX_DER    16384 /* one certificate, DER */
#define PV_CHAIN_MAX_CERTS 8
#define PV_PEM_MAX_FILE    (256 * 1024)

typedef struct pv_cert pv_cert;   /* one certificate (reference counted) */
typedef struct pv_chain pv_chain; /* an ordered list of certificates, leaf first */
typedef struct pv_trust pv_trust; /* a set of trust anchors */

/* ---- certificates ---- */
/* Parses one DER certificate; the DER must be exactly one certificate of at most
 * PV_CERT_MAX_DER bytes (no trailing bytes). PV_ERR_FORMAT, PV_ERR_TOO_LARGE. */
int pv_cert_from_der(const uint8_t *der, size_t len, pv_cert **out, pv_err *e);
/* The DER encoding (borrowed; valid while the certificate lives). */
void pv_cert_der(const pv_cert *c, const uint8_t **der, size_t *len);
/* SHA-256 of the DER. */
void pv_cert_fingerprint(const pv_cert *c, uint8_t out[PV_SHA256_LEN]);
/* The subject public key (a new reference the caller frees). PV_ERR_UNSUPPORTED when not P-256. */
int pv_cert_public_key(const pv_cert *c, pv_key **out, pv_err *e);
/* The subject as a one-line RFC 2253 string, truncated to fit. */
void pv_cert_subject(const pv_cert *c, char *out, size_t out_size);
void pv_cert_issuer(const pv_cert *c, char *out, size_t out_size);
/* notBefore / notAfter as seconds since the epoch. */
/* Lowercase hex of the serial number's magnitude (at most 20 bytes, RFC 5280), "" when
 * it is longer. */
#define PV_CERT_SERIAL_HEX_MAX 40
void pv_cert_serial_hex(const pv_cert *c, char out[PV_CERT_SERIAL_HEX_MAX + 1]);
int pv_cert_validity(const pv_cert *c, int64_t *not_before, int64_t *not_after);
bool pv_cert_is_ca(const pv_cert *c);
pv_cert *pv_cert_ref(pv_cert *c);
void pv_cert_free(pv_cert *c);
/* The underlying X509 (borrowed). */
void *pv_cert_x509(const pv_cert *c);

/* ---- chains ---- */
pv_chain *pv_chain_new(void);
void pv_chain_free(pv_chain *ch);
/* Appends a reference to c. PV_ERR_TOO_LARGE past PV_CHAIN_MAX_CERTS. */
int pv_chain_add(pv_chain *ch, pv_cert *c);
size_t pv_chain_count(const pv_chain *ch);
pv_cert *pv_chain_get(const pv_chain *ch, size_t i);
/* Loads every certificate of a PEM file (at most PV_PEM_MAX_FILE bytes, at most
 * PV_CHAIN_MAX_CERTS certificates, at least one). Errors name the file. */
int pv_chain_load_pem(const char *path, pv_chain **out, pv_err *e);
/* Appends the chain as PEM to out. */
int pv_chain_to_pem(const pv_chain *ch, pv_buf *out);
/* Writes the chain as PEM, atomically, mode 0644. */
int pv_chain_save_pem(const pv_chain *ch, const char *path, bool overwrite, pv_err *e);

/* ---- trust anchors ---- */
pv_trust *pv_trust_new(void);
void pv_trust_free(pv_trust *t);
int pv_trust_add(pv_trust *t, pv_cert *anchor);
/* Adds every certificate of a PEM file as a trust anchor. */
int pv_trust_load_pem(const char *path, pv_trust **out, pv_err *e);
size_t pv_trust_count(const pv_trust *t);

/* Flags for pv_chain_verify. */
#define PV_VERIFY_CODE_SIGNING                                                                     \
    0x1u /* leaf must allow digitalSignature and, if it has an                                     \
            extendedKeyUsage, codeSigning */
#define PV_VERIFY_ALL_USED                                                                         \
    0x2u /* every certificate in the chain must be on the verified                                 \
            path (no unused extras) */
#define PV_VERIFY_CAPABILITY_SIGNING                                                               \
    0x4u /* leaf must allow digitalSignature, have an extendedKeyUsage                             \
            with PV_OID_CAPABILITY_SIGNING and without codeSigning;                                \
            not together with PV_VERIFY_CODE_SIGNING */

/* The extended key usage of a Pavise capability signer (docs/formats/capability.md §3):
 * the key that signs development capability files. An OID under 2.25 (ITU-T X.667: a
 * UUID as one decimal arc), from the UUID b0a384fc-61c2-4e45-b7f0-5c45886b4147. A
 * certificate with it cannot sign code (it lacks codeSigning), and a code-signing
 * certificate cannot sign capabilities (it lacks this). */
#define PV_OID_CAPABILITY_SIGNING "2.25.234793168919905953341970457922793849159"

/* Verifies that chain[0] (the leaf) chains through the other certificates of chain
 * (untrusted intermediates) to one of the trust anchors, with every certificate valid
 * at time `at` (seconds since the epoch), with strict X.509 checks, CA basic constraints
 * and key usage on issuers.
 * PV_OK; PV_ERR_EXPIRED (a certificate is expired or not yet valid);
 * PV_ERR_UNTRUSTED (no path to an anchor, bad signature on a certificate, constraints,
 * key usage, the leaf's usage under PV_VERIFY_CODE_SIGNING or
 * PV_VERIFY_CAPABILITY_SIGNING, or an unused certificate with PV_VERIFY_ALL_USED);
 * PV_ERR_INVALID_ARG (also both signing flags at once). */
PV_WUR int pv_chain_verify(const pv_chain *chain, const pv_trust *trust, int64_t at, unsigned flags,
                           pv_err *e);

/* ---- creation ---- */

/* An extension of the caller's own to add to a created certificate: its OID in dotted
 * numeric text, and its value (the DER that extnValue's OCTET STRING wraps). */
typedef struct pv_cert_ext {
    const char *oid;
    const uint8_t *der;
    size_t der_len; /* 1..PV_CERT_EXT_MAX */
    bool critical;
} pv_cert_ext;

#define PV_CERT_EXT_MAX 4096

typedef struct pv_cert_params {
    const char *subject; /* "CN=Name,O=Org,OU=Unit,C=US,ST=..,L=.." (no escapes) */
    int64_t not_before;  /* seconds since the epoch */
    int64_t not_after;
    bool is_ca;        /* basicConstraints CA:TRUE (critical), keyCertSign|cRLSign */
    int path_len;      /* CA path length constraint; -1 for none */
    bool code_signing; /* leaf: digitalSignature + extendedKeyUsage codeSigning */
    bool client_auth;  /* leaf: extendedKeyUsage clientAuth */
    bool server_auth;  /* leaf: extendedKeyUsage serverAuth */
    /* leaf: extendedKeyUsage PV_OID_CAPABILITY_SIGNING (not with code_signing) */
    bool capability_signing;
    /* subjectAltName, or NULL for none: comma-separated "DNS:name" and "IP:address"
     * entries (e.g. "DNS:localhost,IP:127.0.0.1"). */
    const char *subject_alt_names;
    /* One more extension, or NULL: added before the certificate is signed, so it is
     * signed once. Its OID must not be one of the extensions above. */
    const pv_cert_ext *extra_ext;
} pv_cert_params;

/* Parses a subject string as described in pv_cert_params (the only syntax accepted);
 * used to validate user input before creating. PV_ERR_FORMAT with the reason. */
int pv_cert_check_subject(const char *subject, pv_err *e);

/* Creates a certificate for subject_key's public key, signed by issuer_key with issuer
 * as the issuer (both NULL: self-signed with subject_key). Random 16-byte serial,
 * subjectKeyIdentifier, authorityKeyIdentifier, SHA-256 signature.
 * PV_ERR_INVALID_ARG (arguments, code_signing with capability_signing, or an extra
 * extension with a bad or duplicate OID or size); PV_ERR_FORMAT (subject); PV_ERR_CRYPTO. */
int pv_cert_create(const pv_cert_params *p, const pv_key *subject_key, const pv_cert *issuer,
                   const pv_key *issuer_key, pv_cert **out, pv_err *e);

/* ---- certificate signing requests (PKCS#10) ---- */

/* Makes a PEM certificate signing request for key (which must hold its private part)
 * with the given subject (pv_cert_params syntax) into out (appended).
 * PV_OK; PV_ERR_INVALID_ARG; PV_ERR_FORMAT (subject); PV_ERR_CRYPTO. */
int pv_csr_create(const pv_key *key, const char *subject, pv_buf *out, pv_err *e);

/* Parses a PEM certificate signing request of at most PV_CSR_MAX bytes, checks that it
 * is signed by the key it carries (proof of possession) and that the key is ECDSA P-256,
 * and returns that public key. Everything else in the request (subject, extensions) is
 * ignored: the issuer decides them.
 * PV_OK; PV_ERR_TOO_LARGE; PV_ERR_FORMAT; PV_ERR_SIGNATURE; PV_ERR_UNSUPPORTED. */
PV_WUR int pv_csr_verify(const char *pem, size_t len, pv_key **public_key, pv_err *e);

/* The same for a DER request of at most PV_CSR_MAX bytes (exactly one request, no
 * trailing bytes), as devices send it. Same codes. */
PV_WUR int pv_csr_verify_der(const uint8_t *der, size_t len, pv_key **public_key, pv_err *e);

#define PV_CSR_MAX 8192

#endif
