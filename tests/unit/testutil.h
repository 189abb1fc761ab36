/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the unit tests. */
#ifndef PV_TESTUTIL_H
#define PV_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "pavise/x509.h"

/* A new empty directory under $PV_TEST_TMP (or /tmp); the caller frees the string and
 * removes the tree with tu_rmtree. Fails the test on error. */
char *tu_mkdtemp(const char *tag);
void tu_rmtree(const char *path);
/* Joins dir and name into a new string. */
char *tu_path(const char *dir, const char *name);
/* Writes a file (fails the test on error). */
void tu_write(const char *path, const void *data, size_t len, int mode);
/* Reads a whole file into a new allocation (fails the test on error). */
uint8_t *tu_read(const char *path, size_t *len);
/* True when path exists (lstat). */
int tu_exists(const char *path);
/* Counts the entries of a directory (not . and ..); -1 when it cannot be opened. */
int tu_count_entries(const char *dir);

/* Creates a root CA, an intermediate CA and a code-signing leaf whose validity is
 * [not_before, not_after] (the CAs are valid ten and five years either side of it), and
 * writes root.crt (the root), chain.pem (leaf, intermediate) and leaf.key into dir.
 * Returns the leaf key, the chain (leaf, intermediate) and the root as a trust anchor;
 * any of the three may be NULL. Fails the test on error. */
void tu_make_chain(const char *dir, int64_t not_before, int64_t not_after, pv_key **leaf_key,
                   pv_chain **leaf_chain, pv_trust **anchor);

/* Parses hex (spaces ignored) into a new allocation; fails the test on bad hex. */
uint8_t *tu_unhex(const char *hex, size_t *len);

/* Writes a PEM certificate for the public key spki (DER SubjectPublicKeyInfo) to path,
 * issued by a throwaway key: what a test needs where only the certificate's key counts
 * (the device's client certificate beside its TLS key). */
void tu_write_cert_for(const char *path, const uint8_t *spki, size_t spki_len);

/* Starts a manufactured swtpm in dir (scripts/swtpm-start: state in dir/state, the TPM
 * vendor CA in dir/ca) and returns its TCTI string (caller frees). A second start on
 * the same dir keeps the TPM's NV, like a reboot. Fails the test on error. */
char *tu_swtpm_start(const char *dir);
/* Stops it (scripts/swtpm-stop); harmless when it is not running. */
void tu_swtpm_stop(const char *dir);

#endif
