/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The installed apps (docs/device-runtime.md §Installed apps): which image each component
 * runs, whether it is a development image, the uid it runs as, and the highest security
 * counter ever installed for it.
 *
 *   STATE/apps/images/<image-id>/       the extracted payload, root-owned, no write bits
 *   STATE/apps/images/<image-id>.head   the package head (header, signed manifest, chain)
 *   STATE/apps/installed/<cid>.json     {"version":1,"imageId":..,"development":..,"floor":N}
 *   STATE/apps/uids.json                {"<cid>": uid, ...}: a uid per component, kept for
 *                                       good so its storage stays its own
 *
 * Nothing under STATE is trusted by itself: at every load the head is verified again
 * against the trust anchors (and a development image only while the development
 * capability is applied), and the manifest comes from that verified head.
 *
 * Two halves. The store on disk (appstore.c: as_open, as_install, as_remove) verifies and
 * extracts, with libcrypto and libarchive: only pavise-store (src/store) runs it, a short
 * process of its own per operation. The table of loaded apps (appstore_table.c) is what
 * pavised keeps: pavise-store describes each app it loaded or installed as JSON
 * (as_app_to_json) and pavised reads it back (as_app_from_json) into its own table.
 */
#ifndef PAVISE_DEVICE_APPSTORE_H
#define PAVISE_DEVICE_APPSTORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "pavise/err.h"
#include "pavise/manifest.h"
#include "pavise/uuid.h"
#include "pavise/x509.h"

#define AS_UID_BASE 70000u
#define AS_MAX_APPS 256u
#define AS_CID_LEN  36

typedef struct as_app {
    char cid[AS_CID_LEN + 1];      /* component ID, lowercase */
    char image_id[AS_CID_LEN + 1]; /* image ID, lowercase */
    uid_t uid;                     /* gid is the same number */
    unsigned index;                /* uid - AS_UID_BASE: the app's slot (stub address) */
    bool development;
    uint64_t floor; /* highest security counter installed for this component */
    pv_manifest m;  /* from the verified head */
    char *image_dir;
    int64_t installed_at;
} as_app;

typedef struct as_store as_store;

/* The trust the store verifies with: prod (the update root) always, dev (the development
 * roots of the applied capability) or NULL. Both borrowed; the caller keeps them alive. */
typedef struct as_trust {
    const pv_trust *prod;
    const pv_trust *dev;
} as_trust;

/* Opens STATE/apps (creating it) and loads every installed app that still verifies. An
 * app that does not (tampered head, untrusted, development image without the capability)
 * is kept on disk but not loaded, and reported through warn (may be NULL) with the reason.
 * PV_ERR_IO, PV_ERR_NOMEM. */
int as_open(const char *state_dir, const as_trust *trust,
            void (*warn)(const char *cid, const pv_err *why, void *ctx), void *ctx, as_store **out,
            pv_err *e);
void as_close(as_store *s);

/* An empty table for STATE/apps (pavised's, filled from pavise-store's descriptions).
 * PV_ERR_NOMEM. */
int as_new(const char *apps_dir, as_store **out, pv_err *e);
/* Puts a (taken over) in the table; *old is the component's previous entry, taken out and
 * handed to the caller, or NULL. PV_ERR_TOO_LARGE (a new component past AS_MAX_APPS: a is
 * still the caller's). */
int as_put(as_store *s, as_app *a, as_app **old, pv_err *e);
/* Whether a (a description pavise-store gave) fits the table: its image directory is
 * STATE/apps/images/<its image ID>, and no other component has its uid, its image ID or one
 * of its peripherals (an entry of the same component is the one it replaces).
 * PV_ERR_FORMAT naming the clash. */
int as_check_fits(const as_store *s, const as_app *a, pv_err *e);
/* Takes the component's entry out of the table (the caller frees it), or NULL. */
as_app *as_take(as_store *s, const char *cid);

/* An app described for pavised, or NULL (out of memory). */
json_t *as_app_to_json(const as_app *a);
/* Reads a description back: every field checked (IDs, index in range, an absolute image
 * directory, a manifest that decodes and names the same component and image, an
 * application). The uid follows from the index. PV_ERR_FORMAT, PV_ERR_NOMEM. */
int as_app_from_json(const json_t *o, as_app **out, pv_err *e);

size_t as_count(const as_store *s);
as_app *as_get(as_store *s, size_t i);
as_app *as_find(as_store *s, const char *cid);

/* Installs the package read from path (a regular file; /proc/self/fd/N for a passed fd):
 * opens it (bounded), verifies it against trust->prod, or, only when that fails for want of
 * a trusted chain, against trust->dev (a development image); requires an application image;
 * refuses a security counter below the component's floor (PV_ERR_ROLLBACK), a peripheral
 * another component declares (PV_ERR_EXISTS), more than AS_MAX_APPS components; extracts it
 * (read-only) and records it. *out is the store's entry (borrowed). When the component was
 * installed before, *old is its previous entry, taken out of the store and handed to the
 * caller (whose running app may still use it): stop that app, then as_app_free(*old). The
 * previous image's files are removed (a running app keeps what it has mounted).
 * PV_ERR_UNTRUSTED, PV_ERR_SIGNATURE, PV_ERR_DIGEST, PV_ERR_FORMAT, PV_ERR_UNSUPPORTED,
 * PV_ERR_IO, ... with the reason. Nothing is changed on any error. */
int as_install(as_store *s, const char *path, const as_trust *trust, as_app **out, as_app **old,
               pv_err *e);
/* Frees an entry handed out by as_install. Accepts NULL. */
void as_app_free(as_app *a);

/* Removes a component, loaded or only on disk: its record and image (the storage is
 * storage.c's). PV_ERR_NOT_FOUND. */
int as_remove(as_store *s, const char *cid, pv_err *e);

/* Drops from memory the development apps (the capability was removed); their files stay. */
void as_unload_development(as_store *s);

#endif
