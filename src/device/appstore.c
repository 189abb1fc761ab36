// SPDX-License-Identifier: Apache-2.0
/*
 * The installed apps: verification on install and on every load, read-only image trees,
 * a uid per component, and the security-counter floor. See appstore.h.
 */
#include "appstore.h"
#include "appstore_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "pavise/fs.h"
#include "pavise/imgpkg.h"
#include "pavise/json.h"
#include "pavise/log.h"
#include "pavise/platform.h"

#define RECORD_MAX (4 * 1024)
#define UIDS_MAX   (64 * 1024)
#define HEAD_MAX   (48 + PV_IMGPKG_MAX_SIGNED_MANIFEST + PV_IMGPKG_MAX_CHAIN)

static int path_of(char *out, size_t size, pv_err *e, const char *fmt, ...) PV_PRINTF(4, 5);
static int path_of(char *out, size_t size, pv_err *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "path too long");
    }
    return PV_OK;
}

/* ---- uids ---- */

static int uids_load(as_store *s, pv_err *e)
{
    char path[4096];
    json_t *root = NULL;
    int r = path_of(path, sizeof(path), e, "%s/uids.json", s->dir);
    if (r != PV_OK) {
        return r;
    }
    r = pv_json_load_file(path, UIDS_MAX, &root, e);
    if (r == PV_ERR_NOT_FOUND) {
        return PV_OK;
    }
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "%s", path);
    }
    r = PV_ERR_FORMAT;
    if (!json_is_object(root)) {
        pv_err_set(e, r, "%s: expected an object", path);
        goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v)
    {
        json_int_t uid = json_is_integer(v) ? json_integer_value(v) : -1;
        if (!as_id_valid(k) || uid < (json_int_t)AS_UID_BASE ||
            uid >= (json_int_t)(AS_UID_BASE + AS_MAX_APPS) || s->uid_used[uid - AS_UID_BASE]) {
            pv_err_set(e, r, "%s: bad entry '%s'", path, k);
            goto out;
        }
        s->uid_used[uid - AS_UID_BASE] = true;
        memcpy(s->uid_cid[uid - AS_UID_BASE], k, AS_CID_LEN + 1);
    }
    r = PV_OK;
out:
    json_decref(root);
    return r;
}

static int uids_save(const as_store *s, pv_err *e)
{
    char path[4096];
    char *text = NULL;
    int r = path_of(path, sizeof(path), e, "%s/uids.json", s->dir);
    if (r != PV_OK) {
        return r;
    }
    r = PV_ERR_NOMEM;
    json_t *root = json_object();
    if (root == NULL) {
        return pv_err_set(e, r, "out of memory");
    }
    for (unsigned i = 0; i < AS_MAX_APPS; i++) {
        if (s->uid_used[i] &&
            json_object_set_new(root, s->uid_cid[i], json_integer(AS_UID_BASE + i)) != 0) {
            pv_err_set(e, r, "out of memory");
            goto out;
        }
    }
    text = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT);
    if (text == NULL) {
        pv_err_set(e, r, "out of memory");
        goto out;
    }
    r = pv_fs_write_file(path, text, strlen(text), 0600, true, e);
out:
    free(text);
    json_decref(root);
    return r;
}

/* The component's slot, allocating the lowest free one. */
static int uid_for(as_store *s, const char *cid, unsigned *index, bool *allocated, pv_err *e)
{
    *allocated = false;
    for (unsigned i = 0; i < AS_MAX_APPS; i++) {
        if (s->uid_used[i] && strcmp(s->uid_cid[i], cid) == 0) {
            *index = i;
            return PV_OK;
        }
    }
    for (unsigned i = 0; i < AS_MAX_APPS; i++) {
        if (!s->uid_used[i]) {
            s->uid_used[i] = true;
            memcpy(s->uid_cid[i], cid, AS_CID_LEN + 1);
            *index = i;
            *allocated = true;
            return PV_OK;
        }
    }
    return pv_err_set(e, PV_ERR_TOO_LARGE, "no free app uid (at most %u components)", AS_MAX_APPS);
}

/* ---- records ---- */

typedef struct record {
    char image_id[AS_CID_LEN + 1];
    bool development;
    uint64_t floor;
    int64_t installed_at;
} record;

static int record_load(const char *path, record *rec, pv_err *e)
{
    static const char *const fields[] = {"version", "imageId",     "development",
                                         "floor",   "installedAt", NULL};
    json_t *root = NULL;
    memset(rec, 0, sizeof(*rec));
    int r = pv_json_load_file(path, RECORD_MAX, &root, e);
    if (r != PV_OK) {
        return r;
    }
    const char *id = NULL;
    uint64_t version = 0, at = 0;
    if ((r = pv_json_check_fields(root, fields, "record", e)) != PV_OK ||
        (r = pv_json_get_uint(root, "version", true, 1, 1, "record", &version, NULL, e)) != PV_OK ||
        (r = pv_json_get_string(root, "imageId", true, AS_CID_LEN, "record", &id, NULL, e)) !=
            PV_OK ||
        (r = pv_json_get_bool(root, "development", true, "record", &rec->development, NULL, e)) !=
            PV_OK ||
        (r = pv_json_get_uint(root, "floor", true, 0, INT64_MAX, "record", &rec->floor, NULL, e)) !=
            PV_OK ||
        (r = pv_json_get_uint(root, "installedAt", true, 0, INT64_MAX, "record", &at, NULL, e)) !=
            PV_OK) {
        goto out;
    }
    if (!as_id_valid(id)) {
        r = pv_err_set(e, PV_ERR_FORMAT, "record: bad imageId");
        goto out;
    }
    memcpy(rec->image_id, id, AS_CID_LEN + 1);
    rec->installed_at = (int64_t)at;
    r = PV_OK;
out:
    json_decref(root);
    return r;
}

static int record_save(const char *path, const record *rec, pv_err *e)
{
    json_t *root = json_pack("{s:i, s:s, s:b, s:I, s:I}", "version", 1, "imageId", rec->image_id,
                             "development", rec->development, "floor", (json_int_t)rec->floor,
                             "installedAt", (json_int_t)rec->installed_at);
    char *text = root != NULL ? json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    json_decref(root);
    if (text == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int r = pv_fs_write_file(path, text, strlen(text), 0600, true, e);
    free(text);
    return r;
}

/* ---- verification ---- */

/* Verifies an opened package (head or whole) with the trust: production first; the
 * development roots only when no production chain exists. */
static int verify_pkg(pv_imgpkg *pkg, bool head, const as_trust *t, bool *development, pv_err *e)
{
    *development = false;
    int r = head ? pv_imgpkg_verify_head(pkg, t->prod, e) : pv_imgpkg_verify(pkg, t->prod, e);
    if (r != PV_ERR_UNTRUSTED || t->dev == NULL) {
        return r;
    }
    pv_err e2;
    pv_err_clear(&e2);
    r = head ? pv_imgpkg_verify_head(pkg, t->dev, &e2) : pv_imgpkg_verify(pkg, t->dev, &e2);
    if (r == PV_OK) {
        *development = true;
        return PV_OK;
    }
    if (r == PV_ERR_UNTRUSTED) {
        return pv_err_set(e, r,
                          "signed neither under the update root nor under a development root "
                          "of the applied capability");
    }
    *e = e2;
    return r;
}

static int app_load(as_store *s, const char *cid, const as_trust *t, as_app **out, pv_err *e)
{
    char path[4096];
    record rec;
    uint8_t *head = NULL;
    size_t head_len = 0;
    pv_imgpkg *pkg = NULL;
    as_app *a = NULL;
    bool development = false;
    struct stat st;
    int r = path_of(path, sizeof(path), e, "%s/installed/%s.json", s->dir, cid);
    if (r != PV_OK || (r = record_load(path, &rec, e)) != PV_OK) {
        goto out;
    }
    if ((r = path_of(path, sizeof(path), e, "%s/images/%s.head", s->dir, rec.image_id)) != PV_OK ||
        (r = pv_fs_read_file(path, HEAD_MAX, &head, &head_len, e)) != PV_OK ||
        (r = pv_imgpkg_open_head(head, head_len, &pkg, e)) != PV_OK ||
        (r = verify_pkg(pkg, true, t, &development, e)) != PV_OK) {
        goto out;
    }
    const pv_manifest *m = pv_imgpkg_manifest(pkg);
    char id[PV_UUID_STR_LEN], mcid[PV_UUID_STR_LEN];
    pv_uuid_format(m->image_id, id);
    pv_uuid_format(m->component_id, mcid);
    if (strcmp(id, rec.image_id) != 0 || strcmp(mcid, cid) != 0 ||
        m->type != PV_IMAGE_APPLICATION || development != rec.development) {
        r = pv_err_set(e, PV_ERR_FORMAT, "the stored image does not match its record");
        goto out;
    }
    r = PV_ERR_NOMEM;
    a = calloc(1, sizeof(*a));
    if (a == NULL || (r = path_of(path, sizeof(path), e, "%s/images/%s", s->dir, id)) != PV_OK ||
        (a->image_dir = strdup(path)) == NULL) {
        if (r == PV_ERR_NOMEM) {
            pv_err_set(e, r, "out of memory");
        }
        goto out;
    }
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0) {
        r = pv_err_set(e, PV_ERR_NOT_FOUND, "image directory %s is missing", path);
        goto out;
    }
    /* The manifest is copied by decoding it again from the verified head's bytes. */
    pv_buf *enc = pv_buf_new(PV_MANIFEST_MAX_SIZE);
    if (enc == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    r = pv_manifest_encode(m, enc, e);
    if (r == PV_OK) {
        r = pv_manifest_decode(pv_buf_data(enc), pv_buf_len(enc), &a->m, e);
    }
    pv_buf_free(enc);
    if (r != PV_OK) {
        goto out;
    }
    unsigned index = 0;
    bool allocated = false;
    if ((r = uid_for(s, cid, &index, &allocated, e)) != PV_OK) {
        goto out;
    }
    if (allocated && (r = uids_save(s, e)) != PV_OK) {
        goto out;
    }
    memcpy(a->cid, cid, AS_CID_LEN + 1);
    memcpy(a->image_id, id, AS_CID_LEN + 1);
    a->index = index;
    a->uid = AS_UID_BASE + index;
    a->development = development;
    a->floor = rec.floor;
    a->installed_at = rec.installed_at;
    *out = a;
    a = NULL;
    r = PV_OK;
out:
    as_app_free(a);
    pv_imgpkg_free(pkg);
    free(head);
    return r;
}

int as_open(const char *state_dir, const as_trust *trust,
            void (*warn)(const char *cid, const pv_err *why, void *ctx), void *ctx, as_store **out,
            pv_err *e)
{
    *out = NULL;
    char path[4096];
    DIR *d = NULL;
    as_store *s = NULL;
    int r = path_of(path, sizeof(path), e, "%s/apps", state_dir);
    if (r != PV_OK || (r = as_new(path, &s, e)) != PV_OK) {
        return r;
    }
    static const char *const subdirs[] = {"", "/images", "/installed"};
    for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
        if ((r = path_of(path, sizeof(path), e, "%s%s", s->dir, subdirs[i])) != PV_OK) {
            goto out;
        }
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            r = pv_err_sys(e, PV_ERR_IO, errno, "%s", path);
            goto out;
        }
    }
    if ((r = uids_load(s, e)) != PV_OK) {
        goto out;
    }
    if ((d = opendir(path)) == NULL) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", path);
        goto out;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        char cid[AS_CID_LEN + 1];
        if (len != AS_CID_LEN + 5 || strcmp(de->d_name + AS_CID_LEN, ".json") != 0) {
            continue;
        }
        memcpy(cid, de->d_name, AS_CID_LEN);
        cid[AS_CID_LEN] = '\0';
        if (!as_id_valid(cid) || s->n >= AS_MAX_APPS) {
            continue;
        }
        as_app *a = NULL;
        pv_err why;
        pv_err_clear(&why);
        if (app_load(s, cid, trust, &a, &why) != PV_OK) {
            if (warn != NULL) {
                warn(cid, &why, ctx);
            }
            continue;
        }
        s->apps[s->n++] = a;
    }
    *out = s;
    s = NULL;
    r = PV_OK;
out:
    if (d != NULL) {
        closedir(d);
    }
    as_close(s);
    return r;
}

/* ---- install ---- */

static int readonly_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag == FTW_SL) {
        return 0;
    }
    return chmod(path, st->st_mode & ~(mode_t)0222) == 0 ? 0 : -1;
}

/* Another component declaring one of m's peripherals. */
static const as_app *peripheral_holder(const as_store *s, const pv_manifest *m, const char *cid,
                                       const char **which)
{
    for (size_t i = 0; i < s->n; i++) {
        const as_app *o = s->apps[i];
        if (strcmp(o->cid, cid) == 0) {
            continue;
        }
        for (size_t j = 0; j < m->caps.peripherals.n; j++) {
            for (size_t k = 0; k < o->m.caps.peripherals.n; k++) {
                if (strcmp(m->caps.peripherals.v[j], o->m.caps.peripherals.v[k]) == 0) {
                    *which = m->caps.peripherals.v[j];
                    return o;
                }
            }
        }
    }
    return NULL;
}

/* STATE/apps/floors.json: {"<cid>": highest security counter ever installed}. Kept apart
 * from the records, which go when a component is removed: the floor stays. */
static int floors_load(const as_store *s, json_t **out, pv_err *e)
{
    char path[4096];
    *out = NULL;
    int r = path_of(path, sizeof(path), e, "%s/floors.json", s->dir);
    if (r != PV_OK) {
        return r;
    }
    r = pv_json_load_file(path, UIDS_MAX, out, e);
    if (r == PV_ERR_NOT_FOUND) {
        *out = json_object();
        return *out != NULL ? PV_OK : pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    if (r == PV_OK && !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        r = pv_err_set(e, PV_ERR_FORMAT, "%s: expected an object", path);
    }
    return r;
}

/* The floor of a component: the highest of floors.json and its record. An unreadable
 * floors file fails the install (fail closed: a lost floor would allow a rollback). */
static int floor_of(const as_store *s, const char *cid, uint64_t *floor, pv_err *e)
{
    char path[4096];
    record rec;
    json_t *floors = NULL;
    *floor = 0;
    int r = floors_load(s, &floors, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "security counter floors");
    }
    json_t *v = json_object_get(floors, cid);
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        *floor = (uint64_t)json_integer_value(v);
    }
    json_decref(floors);
    pv_err ignored;
    pv_err_clear(&ignored);
    if (path_of(path, sizeof(path), &ignored, "%s/installed/%s.json", s->dir, cid) == PV_OK &&
        record_load(path, &rec, &ignored) == PV_OK && rec.floor > *floor) {
        *floor = rec.floor;
    }
    return PV_OK;
}

static int floor_save(const as_store *s, const char *cid, uint64_t floor, pv_err *e)
{
    char path[4096];
    json_t *floors = NULL;
    char *text = NULL;
    int r = floors_load(s, &floors, e);
    if (r != PV_OK || (r = path_of(path, sizeof(path), e, "%s/floors.json", s->dir)) != PV_OK) {
        json_decref(floors);
        return r;
    }
    if (json_object_set_new(floors, cid, json_integer((json_int_t)floor)) != 0 ||
        (text = json_dumps(floors, JSON_SORT_KEYS | JSON_COMPACT)) == NULL) {
        json_decref(floors);
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    json_decref(floors);
    r = pv_fs_write_file(path, text, strlen(text), 0600, true, e);
    free(text);
    return r;
}

/* What other components' records on disk say against installing image id of cid with
 * manifest m: the image ID must be theirs alone, and a peripheral m declares must not be
 * declared by one of them, loaded or not (a development app not loaded while its capability
 * is away still holds its peripherals). A record that cannot be read refuses the install. */
static int check_others_on_disk(const as_store *s, const char *cid, const char *id,
                                const pv_manifest *m, pv_err *e)
{
    char dir[4096];
    int r = path_of(dir, sizeof(dir), e, "%s/installed", s->dir);
    DIR *d = r == PV_OK ? opendir(dir) : NULL;
    if (d == NULL) {
        return r != PV_OK ? r : pv_err_sys(e, PV_ERR_IO, errno, "%s", dir);
    }
    struct dirent *de;
    while (r == PV_OK && (de = readdir(d)) != NULL) {
        char other[AS_CID_LEN + 1], path[4096];
        record rec;
        if (strlen(de->d_name) != AS_CID_LEN + 5 || strcmp(de->d_name + AS_CID_LEN, ".json") != 0) {
            continue;
        }
        memcpy(other, de->d_name, AS_CID_LEN);
        other[AS_CID_LEN] = '\0';
        if (!as_id_valid(other) || strcmp(other, cid) == 0) {
            continue;
        }
        if ((r = path_of(path, sizeof(path), e, "%s/%s", dir, de->d_name)) != PV_OK ||
            (r = record_load(path, &rec, e)) != PV_OK) {
            r = pv_err_wrap(e, r, "installed component %s", other);
            break;
        }
        if (strcmp(rec.image_id, id) == 0) {
            r = pv_err_set(e, PV_ERR_EXISTS, "image %s is installed as component %s", id, other);
            break;
        }
        if (m->caps.peripherals.n == 0 || as_find((as_store *)s, other) != NULL) {
            continue; /* loaded ones were checked against their verified manifests */
        }
        uint8_t *head = NULL;
        size_t len = 0;
        pv_imgpkg *pkg = NULL;
        if ((r = path_of(path, sizeof(path), e, "%s/images/%s.head", s->dir, rec.image_id)) !=
                PV_OK ||
            (r = pv_fs_read_file(path, HEAD_MAX, &head, &len, e)) != PV_OK ||
            (r = pv_imgpkg_open_head(head, len, &pkg, e)) != PV_OK) {
            r = pv_err_wrap(e, r, "installed component %s", other);
        } else {
            const pv_strlist *theirs = &pv_imgpkg_manifest(pkg)->caps.peripherals;
            for (size_t i = 0; r == PV_OK && i < m->caps.peripherals.n; i++) {
                for (size_t j = 0; r == PV_OK && j < theirs->n; j++) {
                    if (strcmp(m->caps.peripherals.v[i], theirs->v[j]) == 0) {
                        r = pv_err_set(e, PV_ERR_EXISTS,
                                       "peripheral %s is held by component %s (not loaded now)",
                                       theirs->v[j], other);
                    }
                }
            }
        }
        pv_imgpkg_free(pkg);
        free(head);
    }
    closedir(d);
    return r;
}

int as_install(as_store *s, const char *path, const as_trust *trust, as_app **out, as_app **old_out,
               pv_err *e)
{
    *out = NULL;
    *old_out = NULL;
    pv_imgpkg *pkg = NULL;
    uint8_t *head = NULL;
    size_t head_len = 0;
    bool development = false, extracted = false, head_written = false;
    char img_dir[4096], head_path[4096], rec_path[4096];
    as_app *a = NULL;
    int r = pv_imgpkg_open(path, &pkg, e);
    if (r != PV_OK || (r = verify_pkg(pkg, false, trust, &development, e)) != PV_OK) {
        goto out;
    }
    const pv_manifest *m = pv_imgpkg_manifest(pkg);
    if (m->type != PV_IMAGE_APPLICATION) {
        r = pv_err_set(e, PV_ERR_FORMAT, "an %s image, not an application",
                       pv_image_type_name(m->type));
        goto out;
    }
    char cid[PV_UUID_STR_LEN], id[PV_UUID_STR_LEN];
    pv_uuid_format(m->component_id, cid);
    pv_uuid_format(m->image_id, id);
    as_app *old = as_find(s, cid);
    uint64_t floor = 0;
    if ((r = floor_of(s, cid, &floor, e)) != PV_OK) {
        goto out;
    }
    if (old != NULL && old->floor > floor) {
        floor = old->floor;
    }
    if (m->security_counter < floor) {
        r = pv_err_set(e, PV_ERR_ROLLBACK,
                       "component %s: security counter %llu is below %llu, the highest installed",
                       cid, (unsigned long long)m->security_counter, (unsigned long long)floor);
        goto out;
    }
    if (old != NULL && strcmp(old->image_id, id) == 0) {
        r = pv_err_set(e, PV_ERR_EXISTS, "image %s is already installed", id);
        goto out;
    }
    const char *dev = NULL;
    const as_app *holder = peripheral_holder(s, m, cid, &dev);
    if (holder != NULL) {
        r = pv_err_set(e, PV_ERR_EXISTS, "peripheral %s is held by component %s (%s)", dev,
                       holder->cid, holder->m.name);
        goto out;
    }
    if ((r = check_others_on_disk(s, cid, id, m, e)) != PV_OK) {
        goto out;
    }
    if (old == NULL && s->n >= AS_MAX_APPS) {
        r = pv_err_set(e, PV_ERR_TOO_LARGE, "at most %u apps", AS_MAX_APPS);
        goto out;
    }
    if ((r = path_of(img_dir, sizeof(img_dir), e, "%s/images/%s", s->dir, id)) != PV_OK ||
        (r = path_of(head_path, sizeof(head_path), e, "%s/images/%s.head", s->dir, id)) != PV_OK ||
        (r = path_of(rec_path, sizeof(rec_path), e, "%s/installed/%s.json", s->dir, cid)) !=
            PV_OK) {
        goto out;
    }
    /* A leftover of an interrupted install of the same image is not trusted: replaced. */
    if ((r = pv_fs_remove_tree(img_dir, e)) != PV_OK) {
        goto out;
    }
    if ((r = pv_imgpkg_extract(pkg, img_dir, e)) != PV_OK) {
        goto out;
    }
    extracted = true;
    if (nftw(img_dir, readonly_cb, 16, FTW_PHYS | FTW_DEPTH) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s: cannot make it read-only", img_dir);
        goto out;
    }
    if ((r = pv_imgpkg_head(pkg, &head, &head_len, e)) != PV_OK ||
        (r = pv_fs_write_file(head_path, head, head_len, 0400, true, e)) != PV_OK) {
        goto out;
    }
    head_written = true;
    /* The new app, loaded back through the same path as at boot. */
    record rec = {.development = development,
                  .floor = m->security_counter > floor ? m->security_counter : floor,
                  .installed_at = pv_time_now()};
    memcpy(rec.image_id, id, sizeof(rec.image_id));
    char old_rec_path[4096];
    bool had_record = access(rec_path, F_OK) == 0;
    if ((r = path_of(old_rec_path, sizeof(old_rec_path), e, "%s.old", rec_path)) != PV_OK) {
        goto out;
    }
    if (had_record && rename(rec_path, old_rec_path) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", rec_path);
        goto out;
    }
    if ((r = record_save(rec_path, &rec, e)) != PV_OK ||
        (r = app_load(s, cid, trust, &a, e)) != PV_OK) {
        unlink(rec_path);
        if (had_record) {
            rename(old_rec_path, rec_path);
        }
        goto out;
    }
    unlink(old_rec_path);
    if (rec.floor > floor && (r = floor_save(s, cid, rec.floor, e)) != PV_OK) {
        /* The image is installed and its record holds the floor; only the copy that
         * outlives removal is missing: said, not undone. */
        pv_warn("component %s: security counter floor not saved: %s", cid, pv_err_msg(e));
        pv_err_clear(e);
        r = PV_OK;
    }
    if (old != NULL) {
        /* The old image goes; the caller has stopped the app. */
        char old_dir[4096], old_head[4096];
        pv_err ignored;
        pv_err_clear(&ignored);
        if (path_of(old_dir, sizeof(old_dir), &ignored, "%s/images/%s", s->dir, old->image_id) ==
                PV_OK &&
            path_of(old_head, sizeof(old_head), &ignored, "%s/images/%s.head", s->dir,
                    old->image_id) == PV_OK) {
            pv_fs_remove_tree(old_dir, &ignored);
            unlink(old_head);
        }
        for (size_t i = 0; i < s->n; i++) {
            if (s->apps[i] == old) {
                s->apps[i] = a;
                break;
            }
        }
        *old_out = old;
    } else {
        s->apps[s->n++] = a;
    }
    *out = a;
    a = NULL;
    extracted = head_written = false;
    r = PV_OK;
out:
    if (extracted) {
        pv_err ignored;
        pv_fs_remove_tree(img_dir, &ignored);
    }
    if (head_written) {
        unlink(head_path);
    }
    as_app_free(a);
    free(head);
    pv_imgpkg_free(pkg);
    return r;
}

int as_remove(as_store *s, const char *cid, pv_err *e)
{
    /* A loaded component, or one only on disk (its image no longer verifies, a development
     * image under other roots than the capability's now): what its record names goes. */
    const as_app *a = as_find(s, cid);
    char id[AS_CID_LEN + 1], lower[AS_CID_LEN + 1], path[4096];
    record rec;
    pv_err ignored;
    pv_err_clear(&ignored);
    if (a != NULL) {
        memcpy(id, a->image_id, sizeof(id));
        memcpy(lower, a->cid, sizeof(lower));
    } else if (as_id_valid(cid) &&
               path_of(path, sizeof(path), &ignored, "%s/installed/%s.json", s->dir, cid) ==
                   PV_OK &&
               record_load(path, &rec, &ignored) == PV_OK) {
        memcpy(id, rec.image_id, sizeof(id));
        memcpy(lower, cid, sizeof(lower));
    } else {
        return pv_err_set(e, PV_ERR_NOT_FOUND, "component %s is not installed", cid);
    }
    int r = path_of(path, sizeof(path), e, "%s/installed/%s.json", s->dir, lower);
    if (r != PV_OK) {
        return r;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s", path);
    }
    if (path_of(path, sizeof(path), &ignored, "%s/images/%s.head", s->dir, id) == PV_OK) {
        unlink(path);
    }
    if (path_of(path, sizeof(path), &ignored, "%s/images/%s", s->dir, id) == PV_OK) {
        pv_fs_remove_tree(path, &ignored);
    }
    as_app_free(as_take(s, lower));
    return PV_OK;
}
