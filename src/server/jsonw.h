/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A streaming JSON writer for the responses the service sends most (devices, one or a
 * page of them): it writes compact JSON straight into one growing buffer, with no tree
 * of values to build, walk and free. The output is byte for byte what jansson's
 * json_dumps(JSON_COMPACT | JSON_PRESERVE_ORDER) gives for the same values, so either
 * may render any response.
 *
 * Errors are sticky: after the first (out of memory, too large, a string that is not
 * UTF-8) every call does nothing and jw_take returns NULL with the error.
 */
#ifndef PAVISE_SERVER_JSONW_H
#define PAVISE_SERVER_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/err.h"

typedef struct jw {
    char *p;
    size_t len, cap, max;
    int err;    /* PV_OK, or the first error */
    bool comma; /* a value was written at this level: the next one needs a ',' */
} jw;

/* An empty writer whose output may grow to at most max bytes. No allocation yet. */
void jw_init(jw *w, size_t max);
/* Frees what the writer holds (after an error, or instead of taking it). */
void jw_free(jw *w);
/* The output, NUL-terminated (free with free()), and its length; the writer is left
 * empty. NULL with *err set when a call failed or nothing was written. */
char *jw_take(jw *w, size_t *len, int *err);

void jw_object_begin(jw *w);
void jw_object_end(jw *w);
void jw_array_begin(jw *w);
void jw_array_end(jw *w);
/* An object member's name; its value is the next call. */
void jw_key(jw *w, const char *key);

/* Values. jw_string(NULL) writes null. */
void jw_string(jw *w, const char *s);
void jw_bool(jw *w, bool v);
void jw_null(jw *w);
void jw_int(jw *w, int64_t v);
/* RFC 3339 UTC time ("2026-11-22T10:00:00Z"), or null when t is out of range (as
 * api_time). */
void jw_time(jw *w, int64_t t);

#endif
