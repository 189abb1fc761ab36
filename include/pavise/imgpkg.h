/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image package format v1 (docs/formats/image-package.md): a fixed header, a COSE_Sign1
 * holding the CBOR manifest, the signer's certificate chain, and the payload tar.
 *
 * A package is opened (parsed, nothing trusted), then verified (certificate chain to a
 * trust anchor, signature, then the payload streamed against the signed digest), and
 * only then extracted. Extraction hashes the payload again as it reads it, so a file
 * changed after verification is refused and nothing of it is kept.
 */
#ifndef PAVISE_IMGPKG_H
#define PAVISE_IMGPKG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/err.h"
#include "pavise/manifest.h"
#include "pavise/x509.h"

#define PV_IMGPKG_MAGIC               "\x89PAVISE\n"
#define PV_IMGPKG_MAGIC_LEN           8
#define PV_IMGPKG_FORMAT_VERSION      1
#define PV_IMGPKG_HEADER_LEN          48
#define PV_IMGPKG_MAX_SIGNED_MANIFEST 65536
#define PV_IMGPKG_MAX_CHAIN           65536
#define PV_IMGPKG_MAX_PAYLOAD         (4ULL << 30)
#define PV_IMGPKG_CONTENT_TYPE        "application/vnd.pavise.manifest+cbor; v=1"

typedef struct pv_imgpkg pv_imgpkg;

/* Section lengths from the header. */
typedef struct pv_imgpkg_layout {
    uint16_t format_version;
    uint32_t signed_manifest_len;
    uint32_t chain_len;
    uint64_t payload_len;
    uint64_t payload_offset;
    uint64_t total_len;
} pv_imgpkg_layout;

/* Opens and parses a package file: header, signed manifest and chain are read (each
 * bounded), decoded and checked for consistency; the payload is not read. Nothing is
 * trusted yet. Errors: PV_ERR_NOT_FOUND, PV_ERR_IO, PV_ERR_FORMAT, PV_ERR_TRUNCATED,
 * PV_ERR_TOO_LARGE, PV_ERR_UNSUPPORTED. Messages do not name the file: callers wrap. */
int pv_imgpkg_open(const char *path, pv_imgpkg **out, pv_err *e);
/* The same over a buffer the caller keeps alive while the package is used. */
int pv_imgpkg_open_mem(const uint8_t *p, size_t len, pv_imgpkg **out, pv_err *e);

/* Opens a package head: the package up to where its payload starts (header, signed
 * manifest and chain; 48 + S + C bytes exactly), which is all a service needs to know
 * and trust an image. The header's payload length is read and checked against the
 * manifest as for a whole package, and reported by pv_imgpkg_get_layout. p is borrowed
 * and must outlive the package. PV_ERR_TRUNCATED (shorter than the header says),
 * PV_ERR_FORMAT (bytes after the chain, malformed), PV_ERR_TOO_LARGE, PV_ERR_UNSUPPORTED. */
int pv_imgpkg_open_head(const uint8_t *p, size_t len, pv_imgpkg **out, pv_err *e);
/* The head of an opened package (file, memory or head) into a new allocation (*out,
 * caller frees; *len = 48 + S + C). PV_ERR_NOMEM, PV_ERR_IO, PV_ERR_TRUNCATED. */
int pv_imgpkg_head(const pv_imgpkg *pkg, uint8_t **out, size_t *len, pv_err *e);

/* Verifies the package against trust anchors at the current time (pv_time_now()):
 * the chain leads to an anchor with every certificate valid and the leaf allowed to
 * sign code; every certificate in the package is on that path; the COSE signature
 * verifies with the leaf key; kid, signer key ID and leaf key agree; the payload has the
 * signed size and SHA-256. PV_ERR_UNTRUSTED, PV_ERR_EXPIRED, PV_ERR_SIGNATURE,
 * PV_ERR_DIGEST, PV_ERR_IO, PV_ERR_TRUNCATED; PV_ERR_INVALID_ARG for a head (no payload). */
PV_WUR int pv_imgpkg_verify(pv_imgpkg *pkg, const pv_trust *trust, pv_err *e);
/* Everything pv_imgpkg_verify checks except the payload: the chain to an anchor at
 * pv_time_now() (code signing, every certificate on the path), the COSE signature with
 * the header as external AAD, and (checked when opened) kid, signer key ID and leaf key
 * agreement. For a head, or for a whole package whose payload is not needed. Does not
 * make pv_imgpkg_is_verified() true (no payload was checked, so nothing may be
 * extracted). PV_ERR_UNTRUSTED, PV_ERR_EXPIRED, PV_ERR_SIGNATURE. */
PV_WUR int pv_imgpkg_verify_head(pv_imgpkg *pkg, const pv_trust *trust, pv_err *e);
/* Only the signature with the leaf key and payload digest, no chain (for fuzzing and for
 * `show`, which reports it as self-consistent, not trusted). PV_ERR_INVALID_ARG for a head. */
PV_WUR int pv_imgpkg_verify_self(pv_imgpkg *pkg, pv_err *e);
bool pv_imgpkg_is_verified(const pv_imgpkg *pkg);

/* Parsed, not yet trusted unless pv_imgpkg_is_verified(). Borrowed. */
const pv_manifest *pv_imgpkg_manifest(const pv_imgpkg *pkg);
const pv_chain *pv_imgpkg_chain(const pv_imgpkg *pkg);
void pv_imgpkg_get_layout(const pv_imgpkg *pkg, pv_imgpkg_layout *out);
/* The image digest: SHA-256 of the manifest exactly as signed (the COSE_Sign1 payload).
 * It names the image, its payload digest and its security counter in one value; this is
 * what a device measures when it boots or starts the image. */
int pv_imgpkg_manifest_digest(const pv_imgpkg *pkg, uint8_t out[PV_SHA256_LEN]);

/* Extracts the payload of a verified package into dest, which must not exist (or be an
 * empty directory). Files go to a staging directory beside dest that is renamed into
 * place only when every entry was safe and the payload hashed again to the signed
 * digest; on any failure nothing is left. PV_ERR_INVALID_ARG when not verified,
 * PV_ERR_EXISTS, PV_ERR_UNSAFE, PV_ERR_DIGEST, PV_ERR_IO. */
int pv_imgpkg_extract(pv_imgpkg *pkg, const char *dest, pv_err *e);

void pv_imgpkg_free(pv_imgpkg *pkg);

/* Writes a package to dest atomically. The payload is payload_fd, a regular file, from
 * offset 0 to its end; it is read once, and hashed as it is copied into the package, so
 * the signed digest is of the bytes the package holds (a payload that grows or shrinks
 * meanwhile is an error). m's payload_size, payload_sha256 and signer_key_id are set
 * here. chain[0] must hold key's public key. */
int pv_imgpkg_create(const char *dest, pv_manifest *m, int payload_fd, const pv_key *key,
                     const pv_chain *chain, bool overwrite, pv_err *e);

/* Tars dir (pv_tar_pack_dir) into an anonymous temporary file, then pv_imgpkg_create.
 * For an application, the entry point must be a regular executable file in dir. */
int pv_imgpkg_pack_dir(const char *dest, pv_manifest *m, const char *dir, const pv_key *key,
                       const pv_chain *chain, bool overwrite, pv_err *e);

#endif
