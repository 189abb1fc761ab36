/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JSON helpers on jansson: strict loading (size limit, duplicate keys refused) and
 * typed field access whose errors say where the problem is ("Capabilities.MutableStorage:
 * field 'SizeKB': expected an integer").
 */
#ifndef PAVISE_JSON_H
#define PAVISE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "pavise/err.h"

/* Parses text as one JSON value; duplicate object keys are refused; errors carry
 * line and column. The caller releases *out with json_decref. */
int pv_json_parse(const char *text, size_t len, json_t **out, pv_err *e);
/* Reads a file of at most max bytes and parses it. */
int pv_json_load_file(const char *path, size_t max, json_t **out, pv_err *e);

/* PV_OK when every key of obj is in allowed (a NULL-terminated list), PV_ERR_FORMAT
 * "<where>: unknown field 'X'" otherwise. */
int pv_json_check_fields(const json_t *obj, const char *const *allowed, const char *where,
                         pv_err *e);

/* Typed getters. When the field is absent: PV_ERR_NOT_FOUND if required, else PV_OK
 * with *present false (present may be NULL). Wrong type or out of range: PV_ERR_FORMAT.
 * Messages name where and the field. */
int pv_json_get_string(const json_t *obj, const char *key, bool required, size_t max_len,
                       const char *where, const char **out, bool *present, pv_err *e);
int pv_json_get_uint(const json_t *obj, const char *key, bool required, uint64_t min, uint64_t max,
                     const char *where, uint64_t *out, bool *present, pv_err *e);
int pv_json_get_bool(const json_t *obj, const char *key, bool required, const char *where,
                     bool *out, bool *present, pv_err *e);

/* True when the n bytes at s are well-formed UTF-8 without NUL (what jansson accepts
 * in a string). */
bool pv_utf8_valid(const char *s, size_t n);

/* Writes v to stdout as indented JSON with a final newline. */
int pv_json_print(const json_t *v);

#endif
