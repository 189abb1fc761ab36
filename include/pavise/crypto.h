/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SHA-256, randomness, constant-time comparison and ECDSA P-256 keys, on OpenSSL 3.
 */
#ifndef PAVISE_CRYPTO_H
#define PAVISE_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/buf.h"
#include "pavise/err.h"

#define PV_SHA256_LEN    32
#define PV_ES256_SIG_LEN 64 /* r || s, 32 bytes each, big-endian (RFC 9053 §2.1) */
#define PV_KEY_ID_LEN    32 /* SHA-256 of the SubjectPublicKeyInfo DER */

/* ---- SHA-256 ---- */
typedef struct pv_sha256 pv_sha256;

/* NULL on out of memory. */
pv_sha256 *pv_sha256_new(void);
int pv_sha256_update(pv_sha256 *h, const void *p, size_t n);
/* Writes the digest; the context can then be reused after pv_sha256_reset(). */
int pv_sha256_final(pv_sha256 *h, uint8_t out[PV_SHA256_LEN]);
int pv_sha256_reset(pv_sha256 *h);
void pv_sha256_free(pv_sha256 *h);
/* One-shot digest. */
int pv_sha256_digest(const void *p, size_t n, uint8_t out[PV_SHA256_LEN]);

/* ---- utilities ---- */
/* Fills p with n bytes from the OpenSSL CSPRNG. PV_ERR_CRYPTO. */
int pv_random_bytes(void *p, size_t n);
/* Constant-time equality of two n-byte strings. */
bool pv_ct_equal(const void *a, const void *b, size_t n);
/* Lowercase hex of n bytes into out (needs 2n+1 bytes); truncates safely when short. */
void pv_hex_encode(const uint8_t *p, size_t n, char *out, size_t out_size);
/* Parses exactly 2n hex characters into n bytes. PV_ERR_FORMAT. */
int pv_hex_decode(const char *s, uint8_t *out, size_t n);
/* The value of one hex digit (either case), or -1. */
int pv_hex_digit(char c);
/* Wipes memory so the compiler cannot elide it. */
void pv_wipe(void *p, size_t n);

/* ---- ECDSA P-256 keys ---- */
typedef struct pv_key pv_key;

/* A new P-256 key pair. PV_ERR_CRYPTO, PV_ERR_NOMEM. */
int pv_key_generate(pv_key **out, pv_err *e);
/* Loads a private key (PKCS#8 or SEC1 PEM) of at most 64 KiB; it must be P-256.
 * PV_ERR_NOT_FOUND, PV_ERR_IO, PV_ERR_FORMAT, PV_ERR_UNSUPPORTED. */
int pv_key_load_private_pem(const char *path, pv_key **out, pv_err *e);
/* Loads a public key from PEM (SubjectPublicKeyInfo); must be P-256. */
int pv_key_load_public_pem(const char *path, pv_key **out, pv_err *e);
/* Saves the private key as unencrypted PKCS#8 PEM, mode 0600, atomically; refuses to
 * overwrite an existing file (PV_ERR_EXISTS). */
int pv_key_save_private_pem(const pv_key *k, const char *path, pv_err *e);
/* Saves the public key as SubjectPublicKeyInfo PEM, mode 0644, atomically. */
int pv_key_save_public_pem(const pv_key *k, const char *path, pv_err *e);
/* Public key from SubjectPublicKeyInfo DER; must be P-256. PV_ERR_FORMAT, PV_ERR_UNSUPPORTED. */
int pv_key_from_spki_der(const uint8_t *der, size_t len, pv_key **out, pv_err *e);
/* SubjectPublicKeyInfo DER of the public key, appended to out. */
int pv_key_spki_der(const pv_key *k, pv_buf *out);
/* Key ID: SHA-256 of the SubjectPublicKeyInfo DER. */
int pv_key_id(const pv_key *k, uint8_t out[PV_KEY_ID_LEN]);
bool pv_key_has_private(const pv_key *k);
/* True when both hold the same public key. */
bool pv_key_equal_public(const pv_key *a, const pv_key *b);

/* ES256: ECDSA P-256 over SHA-256(msg); signature as r || s (64 bytes).
 * PV_ERR_INVALID_ARG (no private key), PV_ERR_CRYPTO. */
int pv_key_sign_es256(const pv_key *k, const void *msg, size_t len, uint8_t sig[PV_ES256_SIG_LEN],
                      pv_err *e);
/* PV_OK when sig is a valid ES256 signature of msg; PV_ERR_SIGNATURE otherwise
 * (including r or s out of range); PV_ERR_CRYPTO when the check could not run. */
PV_WUR int pv_key_verify_es256(const pv_key *k, const void *msg, size_t len,
                               const uint8_t sig[PV_ES256_SIG_LEN], pv_err *e);

/* Takes a reference. */
pv_key *pv_key_ref(pv_key *k);
/* Drops a reference; the key is wiped and freed with the last one. Accepts NULL. */
void pv_key_free(pv_key *k);

/* The underlying EVP_PKEY (borrowed), for the x509 and TLS code. Declared as void * so
 * this header does not pull in OpenSSL. */
void *pv_key_evp(const pv_key *k);
/* Wraps an EVP_PKEY (takes a reference on it); must be P-256. */
int pv_key_from_evp(void *evp_pkey, pv_key **out, pv_err *e);

#endif
