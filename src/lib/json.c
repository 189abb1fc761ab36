/* SPDX-License-Identifier: Apache-2.0 */
#include "pavise/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbor_internal.h"
#include "pavise/fs.h"

/* "where: " before a message, or nothing for the top level (where is ""). */
#define WHERE(w) (w), (w)[0] != '\0' ? ": " : ""

int pv_json_parse(const char *text, size_t len, json_t **out, pv_err *e)
{
    *out = NULL;
    json_error_t je;
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (v == NULL) {
        return pv_err_set(e, PV_ERR_FORMAT, "line %d, column %d: %s", je.line, je.column, je.text);
    }
    *out = v;
    return PV_OK;
}

int pv_json_load_file(const char *path, size_t max, json_t **out, pv_err *e)
{
    *out = NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    int r = pv_fs_read_file(path, max, &data, &len, e);
    if (r != PV_OK) {
        return r;
    }
    r = pv_json_parse((const char *)data, len, out, e);
    free(data);
    return r == PV_OK ? r : pv_err_wrap(e, r, "%s", path);
}

int pv_json_check_fields(const json_t *obj, const char *const *allowed, const char *where,
                         pv_err *e)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value)
    {
        (void)value;
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL && !known; i++) {
            known = strcmp(key, allowed[i]) == 0;
        }
        if (!known) {
            return pv_err_set(e, PV_ERR_FORMAT, "%s%sunknown field '%s'", WHERE(where), key);
        }
    }
    return PV_OK;
}

/* Looks key up; returns PV_OK with *v NULL when absent and not required. */
static int lookup(const json_t *obj, const char *key, bool required, const char *where, json_t **v,
                  bool *present, pv_err *e)
{
    *v = json_object_get(obj, key);
    if (present != NULL) {
        *present = *v != NULL;
    }
    if (*v == NULL && required) {
        return pv_err_set(e, PV_ERR_NOT_FOUND, "%s%smissing required field '%s'", WHERE(where),
                          key);
    }
    return PV_OK;
}

int pv_json_get_string(const json_t *obj, const char *key, bool required, size_t max_len,
                       const char *where, const char **out, bool *present, pv_err *e)
{
    json_t *v;
    int r = lookup(obj, key, required, where, &v, present, e);
    if (r != PV_OK || v == NULL) {
        return r;
    }
    if (!json_is_string(v)) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s%sfield '%s': expected a string", WHERE(where), key);
    }
    size_t len = json_string_length(v);
    const char *s = json_string_value(v);
    if (strlen(s) != len) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s%sfield '%s': contains a NUL character",
                          WHERE(where), key);
    }
    if (len > max_len) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s%sfield '%s': longer than %zu bytes", WHERE(where),
                          key, max_len);
    }
    *out = s;
    return PV_OK;
}

int pv_json_get_uint(const json_t *obj, const char *key, bool required, uint64_t min, uint64_t max,
                     const char *where, uint64_t *out, bool *present, pv_err *e)
{
    json_t *v;
    int r = lookup(obj, key, required, where, &v, present, e);
    if (r != PV_OK || v == NULL) {
        return r;
    }
    if (!json_is_integer(v)) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s%sfield '%s': expected an integer", WHERE(where),
                          key);
    }
    json_int_t i = json_integer_value(v);
    if (i < 0 || (uint64_t)i < min || (uint64_t)i > max) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s%sfield '%s': %lld is out of range (%llu..%llu)",
                          WHERE(where), key, (long long)i, (unsigned long long)min,
                          (unsigned long long)max);
    }
    *out = (uint64_t)i;
    return PV_OK;
}

int pv_json_get_bool(const json_t *obj, const char *key, bool required, const char *where,
                     bool *out, bool *present, pv_err *e)
{
    json_t *v;
    int r = lookup(obj, key, required, where, &v, present, e);
    if (r != PV_OK || v == NULL) {
        return r;
    }
    if (!json_is_boolean(v)) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s%sfield '%s': expected true or false", WHERE(where),
                          key);
    }
    *out = json_is_true(v);
    return PV_OK;
}

int pv_json_print(const json_t *v)
{
    if (json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
        return PV_ERR_IO;
    }
    fputc('\n', stdout);
    return PV_OK;
}

bool pv_utf8_valid(const char *s, size_t n)
{
    return n == 0 || (s != NULL && cbor_utf8_valid((const uint8_t *)s, n, NULL));
}
