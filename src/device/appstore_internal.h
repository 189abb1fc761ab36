/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by appstore.c (the store on disk, in pavise-store) and appstore_table.c (the
 * table of loaded apps, also in pavised). */
#ifndef PAVISE_DEVICE_APPSTORE_INTERNAL_H
#define PAVISE_DEVICE_APPSTORE_INTERNAL_H

#include "appstore.h"

struct as_store {
    char *dir; /* STATE/apps */
    as_app *apps[AS_MAX_APPS];
    size_t n;
    /* component -> uid, for every component ever installed (loaded or not) */
    char uid_cid[AS_MAX_APPS][AS_CID_LEN + 1];
    bool uid_used[AS_MAX_APPS];
};

/* A component or image ID as stored: a UUID, lowercase only (one name per component). */
bool as_id_valid(const char *s);

#endif
