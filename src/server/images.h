/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The image registry: the image roots an image's signer chain must lead to (table
 * image_roots, `pavise-server image-root`), and the images the service knows (table
 * images; attestation §4 step 9 looks up what a device measured there). Tenants register
 * their application images through the API (api_images.c); the service operator its OS
 * images with `pavise-server os-image` (cmd_images.c). Both send only the package head:
 * the service never needs a payload.
 *
 * Nothing here opens a transaction or writes an audit row: callers wrap each change and
 * its audit row in one write transaction of their own.
 */
#ifndef PAVISE_SERVER_IMAGES_H
#define PAVISE_SERVER_IMAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/err.h"
#include "pavise/imgpkg.h"

#include "store.h"

/* The largest package head: header, signed manifest and chain at their limits. */
#define IMAGES_MAX_HEAD                                                                            \
    ((size_t)PV_IMGPKG_HEADER_LEN + PV_IMGPKG_MAX_SIGNED_MANIFEST + PV_IMGPKG_MAX_CHAIN)

/* Adds an image root: PEM text of one CA certificate. fingerprint receives its SHA-256
 * (hex). PV_ERR_EXISTS when it is already a root (of either kind); PV_ERR_FORMAT (not
 * one certificate, not a CA); PV_ERR_TOO_LARGE; store errors. */
int images_add_root(store *db, const char *pem, size_t len, bool development, int64_t now,
                    char fingerprint[65], pv_err *e);

/* Verifies an opened package or head (pv_imgpkg_verify_head: chain to the root with
 * code signing, signature with the header as external AAD) against each image root on
 * its own, development roots first: an image whose chain leads to a development root
 * is a development image even if it also leads to a production one (the stricter
 * answer wins). *development tells which kind of root it led to.
 * PV_OK; PV_ERR_UNTRUSTED (no root, or none leads there); PV_ERR_EXPIRED;
 * PV_ERR_SIGNATURE; PV_ERR_IO/PV_ERR_INTERNAL/PV_ERR_NOMEM (store, stored root). */
int images_verify(store *db, pv_imgpkg *pkg, bool *development, pv_err *e);

/* Records a verified image: id = the manifest's image ID, kind from the manifest's type
 * (an application image with tenant_id, an OS image with tenant_id NULL and os_feed),
 * manifest_sha256 = pv_imgpkg_manifest_digest in lowercase hex. id receives the image ID.
 * PV_ERR_EXISTS when an image with that ID is registered (by anyone); store errors. */
int images_record(store *db, const pv_imgpkg *pkg, const char *tenant_id, const char *os_feed,
                  bool development, int64_t now, char id[37], pv_err *e);

#endif
