// SPDX-License-Identifier: Apache-2.0
/*
 * The table of loaded apps, and an app's description as pavise-store hands it to pavised.
 * Nothing here verifies or touches the disk: pavised links this file and not appstore.c,
 * so it carries neither libcrypto nor libarchive.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pavise/base64.h"
#include "pavise/buf.h"
#include "pavise/json.h"
#include "pavise/uuid.h"

#include "appstore_internal.h"

#define PATH_MAX_LEN 4095

bool as_id_valid(const char *s)
{
    uint8_t u[PV_UUID_LEN];
    if (strlen(s) != AS_CID_LEN || pv_uuid_parse(s, u) != PV_OK) {
        return false;
    }
    for (const char *p = s; *p; p++) {
        if (*p >= 'A' && *p <= 'F') {
            return false;
        }
    }
    return true;
}

void as_app_free(as_app *a)
{
    if (a == NULL) {
        return;
    }
    pv_manifest_free(&a->m);
    free(a->image_dir);
    free(a);
}

int as_new(const char *apps_dir, as_store **out, pv_err *e)
{
    *out = NULL;
    as_store *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->dir = strdup(apps_dir)) == NULL) {
        free(s);
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    *out = s;
    return PV_OK;
}

void as_close(as_store *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        as_app_free(s->apps[i]);
    }
    free(s->dir);
    free(s);
}

size_t as_count(const as_store *s)
{
    return s->n;
}

as_app *as_get(as_store *s, size_t i)
{
    return i < s->n ? s->apps[i] : NULL;
}

as_app *as_find(as_store *s, const char *cid)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcasecmp(s->apps[i]->cid, cid) == 0) {
            return s->apps[i];
        }
    }
    return NULL;
}

int as_put(as_store *s, as_app *a, as_app **old, pv_err *e)
{
    *old = NULL;
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->apps[i]->cid, a->cid) == 0) {
            *old = s->apps[i];
            s->apps[i] = a;
            return PV_OK;
        }
    }
    if (s->n >= AS_MAX_APPS) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "at most %u apps", AS_MAX_APPS);
    }
    s->apps[s->n++] = a;
    return PV_OK;
}

int as_check_fits(const as_store *s, const as_app *a, pv_err *e)
{
    char dir[4096];
    int n = snprintf(dir, sizeof(dir), "%s/images/%s", s->dir, a->image_id);
    if (n < 0 || (size_t)n >= sizeof(dir) || strcmp(dir, a->image_dir) != 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "app %s: its image directory is not %s", a->cid,
                          (size_t)n < sizeof(dir) ? dir : "its own");
    }
    for (size_t i = 0; i < s->n; i++) {
        const as_app *o = s->apps[i];
        if (strcmp(o->cid, a->cid) == 0) {
            continue; /* the entry it replaces */
        }
        if (o->index == a->index || strcmp(o->image_id, a->image_id) == 0) {
            return pv_err_set(e, PV_ERR_FORMAT, "app %s: its uid or image is also %s's", a->cid,
                              o->cid);
        }
        for (size_t j = 0; j < a->m.caps.peripherals.n; j++) {
            for (size_t k = 0; k < o->m.caps.peripherals.n; k++) {
                if (strcmp(a->m.caps.peripherals.v[j], o->m.caps.peripherals.v[k]) == 0) {
                    return pv_err_set(e, PV_ERR_FORMAT, "app %s: peripheral %s is also %s's",
                                      a->cid, a->m.caps.peripherals.v[j], o->cid);
                }
            }
        }
    }
    return PV_OK;
}

as_app *as_take(as_store *s, const char *cid)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcasecmp(s->apps[i]->cid, cid) == 0) {
            as_app *a = s->apps[i];
            s->apps[i] = s->apps[--s->n];
            return a;
        }
    }
    return NULL;
}

void as_unload_development(as_store *s)
{
    for (size_t i = 0; i < s->n;) {
        if (s->apps[i]->development) {
            as_app_free(s->apps[i]);
            s->apps[i] = s->apps[--s->n];
        } else {
            i++;
        }
    }
}

/* ---- the description pavise-store hands to pavised ---- */

json_t *as_app_to_json(const as_app *a)
{
    pv_err ignored;
    pv_err_clear(&ignored);
    pv_buf *enc = pv_buf_new(PV_MANIFEST_MAX_SIZE);
    char *m64 = NULL;
    if (enc == NULL || pv_manifest_encode(&a->m, enc, &ignored) != PV_OK ||
        (m64 = pv_base64_encode(pv_buf_data(enc), pv_buf_len(enc), PV_BASE64_STD)) == NULL) {
        pv_buf_free(enc);
        return NULL;
    }
    pv_buf_free(enc);
    json_t *o = json_pack("{s:s, s:s, s:I, s:b, s:I, s:I, s:s, s:s}", "componentId", a->cid,
                          "imageId", a->image_id, "index", (json_int_t)a->index, "development",
                          a->development, "floor", (json_int_t)a->floor, "installedAt",
                          (json_int_t)a->installed_at, "imageDir", a->image_dir, "manifest", m64);
    free(m64);
    return o;
}

int as_app_from_json(const json_t *o, as_app **out, pv_err *e)
{
    static const char *const fields[] = {"componentId", "imageId",  "index",
                                         "development", "floor",    "installedAt",
                                         "imageDir",    "manifest", NULL};
    static const char where[] = "app";
    const char *cid = NULL, *id = NULL, *dir = NULL, *m64 = NULL;
    uint64_t index = 0, floor = 0, at = 0;
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    *out = NULL;
    int r = PV_ERR_NOMEM;
    as_app *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return pv_err_set(e, r, "out of memory");
    }
    if ((r = pv_json_check_fields(o, fields, where, e)) != PV_OK ||
        (r = pv_json_get_string(o, "componentId", true, AS_CID_LEN, where, &cid, NULL, e)) !=
            PV_OK ||
        (r = pv_json_get_string(o, "imageId", true, AS_CID_LEN, where, &id, NULL, e)) != PV_OK ||
        (r = pv_json_get_uint(o, "index", true, 0, AS_MAX_APPS - 1, where, &index, NULL, e)) !=
            PV_OK ||
        (r = pv_json_get_bool(o, "development", true, where, &a->development, NULL, e)) != PV_OK ||
        (r = pv_json_get_uint(o, "floor", true, 0, INT64_MAX, where, &floor, NULL, e)) != PV_OK ||
        (r = pv_json_get_uint(o, "installedAt", true, 0, INT64_MAX, where, &at, NULL, e)) !=
            PV_OK ||
        (r = pv_json_get_string(o, "imageDir", true, PATH_MAX_LEN, where, &dir, NULL, e)) !=
            PV_OK ||
        (r = pv_json_get_string(o, "manifest", true, PV_MANIFEST_MAX_SIZE / 3 * 4 + 4, where, &m64,
                                NULL, e)) != PV_OK) {
        r = r == PV_ERR_NOMEM ? r : PV_ERR_FORMAT; /* a missing field is malformed too */
        goto out;
    }
    if (!as_id_valid(cid) || !as_id_valid(id) || dir[0] != '/') {
        r = pv_err_set(e, PV_ERR_FORMAT, "app: bad componentId, imageId or imageDir");
        goto out;
    }
    r = PV_ERR_NOMEM;
    if ((raw = malloc(pv_base64_decoded_max(strlen(m64)) + 1)) == NULL ||
        (a->image_dir = strdup(dir)) == NULL) {
        pv_err_set(e, r, "out of memory");
        goto out;
    }
    if ((r = pv_base64_decode(m64, strlen(m64), PV_BASE64_STD, raw,
                              pv_base64_decoded_max(strlen(m64)) + 1, &raw_len)) != PV_OK) {
        pv_err_set(e, r, "app: manifest is not base64");
        goto out;
    }
    if ((r = pv_manifest_decode(raw, raw_len, &a->m, e)) != PV_OK) {
        pv_err_wrap(e, r, "app manifest");
        goto out;
    }
    char mcid[PV_UUID_STR_LEN], mid[PV_UUID_STR_LEN];
    pv_uuid_format(a->m.component_id, mcid);
    pv_uuid_format(a->m.image_id, mid);
    if (strcmp(mcid, cid) != 0 || strcmp(mid, id) != 0 || a->m.type != PV_IMAGE_APPLICATION) {
        r = pv_err_set(e, PV_ERR_FORMAT, "app: the manifest is not the one named");
        goto out;
    }
    memcpy(a->cid, cid, AS_CID_LEN + 1);
    memcpy(a->image_id, id, AS_CID_LEN + 1);
    a->index = (unsigned)index;
    a->uid = AS_UID_BASE + a->index;
    a->floor = floor;
    a->installed_at = (int64_t)at;
    *out = a;
    a = NULL;
    r = PV_OK;
out:
    free(raw);
    as_app_free(a);
    return r;
}
