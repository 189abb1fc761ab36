/* SPDX-License-Identifier: Apache-2.0 */
#include "jsonw.h"

#include <stdlib.h>
#include <string.h>

#include "pavise/json.h"
#include "pavise/platform.h"

#define JW_FIRST_CAP 1024

void jw_init(jw *w, size_t max)
{
    memset(w, 0, sizeof(*w));
    w->max = max;
}

void jw_free(jw *w)
{
    free(w->p);
    w->p = NULL;
    w->len = w->cap = 0;
}

char *jw_take(jw *w, size_t *len, int *err)
{
    *len = 0;
    if (w->err == PV_OK && w->p == NULL) {
        w->err = PV_ERR_INTERNAL; /* nothing written */
    }
    *err = w->err;
    if (w->err != PV_OK) {
        jw_free(w);
        return NULL;
    }
    char *out = w->p;
    *len = w->len;
    w->p = NULL;
    w->len = w->cap = 0;
    return out;
}

/* Room for n more bytes and the final NUL; false (and the error set) when there is
 * none. */
static bool room(jw *w, size_t n)
{
    if (w->err != PV_OK) {
        return false;
    }
    if (n < w->cap - w->len) { /* cap > len always once allocated: the NUL's byte */
        return true;
    }
    if (n >= w->max || w->len >= w->max - n) {
        w->err = PV_ERR_TOO_LARGE;
        return false;
    }
    size_t cap = w->cap > 0 ? w->cap : JW_FIRST_CAP;
    while (cap - w->len <= n) {
        cap *= 2; /* len + n < max: bounded */
    }
    if (cap > w->max) {
        cap = w->max;
    }
    char *p = realloc(w->p, cap);
    if (p == NULL) {
        w->err = PV_ERR_NOMEM;
        return false;
    }
    w->p = p;
    w->cap = cap;
    return true;
}

static void put(jw *w, const char *s, size_t n)
{
    if (room(w, n)) {
        memcpy(w->p + w->len, s, n);
        w->len += n;
        w->p[w->len] = '\0';
    }
}

static void put_char(jw *w, char ch)
{
    put(w, &ch, 1);
}

/* Before a value (or a key): the separator when this level already has one. */
static void separate(jw *w)
{
    if (w->comma) {
        put_char(w, ',');
    }
    w->comma = true;
}

void jw_object_begin(jw *w)
{
    separate(w);
    put_char(w, '{');
    w->comma = false;
}

void jw_object_end(jw *w)
{
    put_char(w, '}');
    w->comma = true;
}

void jw_array_begin(jw *w)
{
    separate(w);
    put_char(w, '[');
    w->comma = false;
}

void jw_array_end(jw *w)
{
    put_char(w, ']');
    w->comma = true;
}

/* A quoted, escaped string as jansson writes it without flags: '"' and '\\' escaped,
 * the short escapes for \b \f \n \r \t, \uXXXX (upper-case hex) for the other C0
 * controls, everything else (UTF-8 included) as it is. */
static void put_string(jw *w, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    bool ascii = true;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] >= 0x80) {
            ascii = false;
            break;
        }
    }
    if (!ascii && !pv_utf8_valid(s, n)) {
        if (w->err == PV_OK) {
            w->err = PV_ERR_FORMAT;
        }
        return;
    }
    put_char(w, '"');
    size_t run = 0; /* start of the bytes not yet written */
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\') {
            continue;
        }
        put(w, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t len = 2;
        switch (ch) {
        case '"':
        case '\\':
            esc[1] = (char)ch;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            len = 6;
            break;
        }
        put(w, esc, len);
    }
    put(w, s + run, n - run);
    put_char(w, '"');
}

void jw_key(jw *w, const char *key)
{
    separate(w);
    put_string(w, key);
    put_char(w, ':');
    w->comma = false;
}

void jw_string(jw *w, const char *s)
{
    if (s == NULL) {
        jw_null(w);
        return;
    }
    separate(w);
    put_string(w, s);
}

void jw_bool(jw *w, bool v)
{
    separate(w);
    if (v) {
        put(w, "true", 4);
    } else {
        put(w, "false", 5);
    }
}

void jw_null(jw *w)
{
    separate(w);
    put(w, "null", 4);
}

void jw_int(jw *w, int64_t v)
{
    char s[PV_INT_TEXT_LEN + 1];
    size_t n = pv_int_format(v, s);
    separate(w);
    put(w, s, n);
}

void jw_time(jw *w, int64_t t)
{
    char s[PV_TIME_TEXT_LEN + 1];
    if (!pv_time_format(t, s)) {
        jw_null(w);
        return;
    }
    separate(w);
    put_char(w, '"');
    put(w, s, PV_TIME_TEXT_LEN);
    put_char(w, '"');
}
