/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server's certificate authority (DATA/ca.key, DATA/ca.crt) and its TLS identity
 * (DATA/server.key, DATA/server.crt, issued by the CA for the server's host names).
 * Operators pin DATA/ca.crt (or its SHA-256 fingerprint); the CA issues operator client
 * certificates from their certificate signing requests. Keys are ECDSA P-256, files
 * 0600 in a 0700 directory. DATA/tenant-ca.kek, the key that seals the tenant CAs' keys
 * in the database (tenant_ca.h), is made and loaded here too.
 */
#ifndef PAVISE_SERVER_CA_H
#define PAVISE_SERVER_CA_H

#include <stdint.h>

#include "pavise/buf.h"
#include "pavise/crypto.h"
#include "pavise/err.h"
#include "pavise/x509.h"

typedef struct server_ca server_ca;

/* Creates DATA (0700) when missing and the CA and server key pairs and certificates in
 * it, and the tenant CA key-encryption key. hostnames (may be NULL, NULL-terminated) are
 * added to the server certificate's subjectAltName beside localhost, 127.0.0.1 and ::1;
 * each must be a DNS name or an IP address. PV_ERR_EXISTS if DATA already holds a CA;
 * PV_ERR_INVALID_ARG (host name). */
int ca_init(const char *data_dir, const char *const *hostnames, pv_err *e);

/* Loads the CA and server material from DATA, checking file modes (no group/other
 * access to the keys), and the tenant CA key-encryption key, which is created when
 * missing (a data directory made before tenant CAs existed; see tenant_ca_kek_load).
 * PV_ERR_NOT_FOUND (not initialised: run `pavise-server init`). */
int ca_load(const char *data_dir, server_ca **out, pv_err *e);
void ca_free(server_ca *ca);

/* Borrowed views of the loaded material. */
const pv_cert *ca_cert(const server_ca *ca);        /* the CA certificate */
const pv_cert *ca_server_cert(const server_ca *ca); /* the TLS server certificate */
const pv_key *ca_server_key(const server_ca *ca);   /* its private key */
/* Lowercase hex SHA-256 of the CA certificate's DER (64 characters + NUL). */
const char *ca_fingerprint(const server_ca *ca);
/* PEM of the CA certificate. */
const char *ca_cert_pem(const server_ca *ca);
/* The tenant CA key-encryption key (TENANT_CA_KEK_LEN bytes; wiped by ca_free). */
const uint8_t *ca_tenant_kek(const server_ca *ca);

typedef struct ca_issued {
    char *cert_pem;       /* the certificate (caller frees) */
    char fingerprint[65]; /* hex SHA-256 of its DER */
    char serial[41];      /* hex serial */
    int64_t not_after;    /* seconds since the epoch */
} ca_issued;

/* Issues an operator client certificate (CN=name, extendedKeyUsage clientAuth, valid
 * from now - 5 min for `days`) for the key in csr_pem, after pv_csr_verify.
 * PV_OK; the codes of pv_csr_verify; PV_ERR_INVALID_ARG (name). */
int ca_issue_operator(const server_ca *ca, const char *csr_pem, size_t csr_len, const char *name,
                      int64_t days, ca_issued *out, pv_err *e);
void ca_issued_clear(ca_issued *c);

/* Issues a device's service certificate (docs/protocol/attestation.md §2): subject
 * CN=<device ID>,OU=device, extendedKeyUsage clientAuth, valid from now - 5 min to
 * now + lifetime seconds, for pub (the key of the device's verified CSR). *out receives
 * it (caller frees). PV_OK; PV_ERR_INVALID_ARG (device ID, lifetime); PV_ERR_CRYPTO. */
int ca_issue_device(const server_ca *ca, const pv_key *pub, const char *device_id, int64_t now,
                    int64_t lifetime, pv_cert **out, pv_err *e);

#endif
