/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The API dispatcher: route matching, path and query decoding, body parsing,
 * authentication and the role check, then the handler and the response. Every step
 * refuses with a specific JSON error before anything reaches a handler, so a handler
 * only sees validated path IDs, allowed query parameters and a parsed JSON object.
 */
#include "api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "pavise/base64.h"
#include "pavise/cbor.h"
#include "pavise/json.h"
#include "pavise/log.h"
#include "pavise/platform.h"
#include "pavise/uuid.h"

#define API_MAX_PATH      2048 /* bytes of the raw path */
#define API_MAX_SEGMENTS  16
#define API_MAX_QUERY     2048 /* bytes of the raw query string */
#define API_MAX_QPARAMS   8
#define API_MAX_QVALUE    256 /* bytes of a decoded query value */
#define API_MAX_DEPTH     32  /* nesting of a JSON body */
#define API_MAX_MESSAGE   512
#define API_MAX_PAGE      1000
#define API_DEFAULT_PAGE  100
#define API_MAX_TOKEN_KEY 256 /* bytes of a decoded continuation token's key */

/* A continuation token is base64url("p1:" key): the prefix makes a random string of
 * the base64url alphabet fail the check instead of becoming a key. */
#define TOKEN_PREFIX     "p1:"
#define TOKEN_PREFIX_LEN 3

/* One request's state. api_ctx is its first member, so the helpers that need the
 * decoded query (api_query, api_page) reach it from the handler's api_ctx. Every
 * api_ctx a handler sees is made by api_handle. */
typedef struct api_call {
    api_ctx c;
    char path[API_MAX_PATH + 1]; /* decoded segments, each NUL-terminated */
    const char *seg[API_MAX_SEGMENTS];
    size_t nseg;
    struct {
        const char *name; /* the route's own string */
        char value[API_MAX_QVALUE + 1];
    } q[API_MAX_QPARAMS];
    size_t nq;
    char after[API_MAX_TOKEN_KEY + 1];
} api_call;

static bool utf8_scan(const char *s, size_t len, size_t *chars, bool *only_spaces);

static api_call *call_of(api_ctx *c)
{
    return (api_call *)(void *)c;
}

/* ---- responses ---- */

int api_ok(api_ctx *c, int status, json_t *out)
{
    if (out == NULL) {
        return api_fail(c, 500, "internal", "out of memory");
    }
    json_decref(c->out);
    c->out = out;
    c->status = status;
    return PV_OK;
}

int api_ok_jw(api_ctx *c, int status, jw *w)
{
    size_t len = 0;
    int err = PV_OK;
    char *body = jw_take(w, &len, &err);
    if (body == NULL) {
        pv_error("%s %s: writing the response failed (%s)", c->req->method,
                 c->route != NULL ? c->route->pattern : "?",
                 err == PV_ERR_NOMEM       ? "out of memory"
                 : err == PV_ERR_TOO_LARGE ? "too large"
                 : err == PV_ERR_FORMAT    ? "a stored text is not UTF-8"
                                           : "nothing written");
        return api_fail(c, 500, "internal", "the server could not write the response");
    }
    json_decref(c->out);
    c->out = NULL;
    free(c->raw);
    c->raw = body;
    c->raw_len = len;
    c->content_type = "application/json";
    c->status = status;
    return PV_OK;
}

int api_ok_cbor(api_ctx *c, int status, pv_buf *out)
{
    size_t len = 0;
    uint8_t *body = out != NULL && pv_buf_len(out) > 0 ? pv_buf_steal(out, &len) : NULL;
    pv_buf_free(out);
    if (body == NULL) {
        return api_fail(c, 500, "internal", "the server could not write the response");
    }
    json_decref(c->out);
    c->out = NULL;
    free(c->raw);
    c->raw = (char *)body;
    c->raw_len = len;
    c->content_type = "application/cbor";
    c->status = status;
    return PV_OK;
}

/* {1: "failed", 2: reason} as CBOR into a new buffer, or NULL. */
static pv_buf *cbor_failure(const char *reason)
{
    pv_buf *b = pv_buf_new(256);
    pv_cbor_enc enc;
    if (b == NULL) {
        return NULL;
    }
    pv_cbor_enc_init(&enc, b);
    pv_cbor_put_map(&enc, 2);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_text(&enc, "failed");
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_text(&enc, reason);
    if (pv_cbor_enc_result(&enc) != PV_OK) {
        pv_buf_free(b);
        return NULL;
    }
    return b;
}

int api_fail_cbor(api_ctx *c, int status, const char *reason)
{
    pv_buf *b = cbor_failure(reason);
    if (b == NULL) {
        return api_fail(c, 500, "internal", "out of memory");
    }
    (void)api_ok_cbor(c, status, b);
    return PV_ERR_INVALID_ARG;
}

int api_fail(api_ctx *c, int status, const char *code, const char *fmt, ...)
{
    char msg[API_MAX_MESSAGE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    json_decref(c->out);
    free(c->raw);
    c->raw = NULL;
    c->raw_len = 0;
    c->content_type = NULL;
    /* If even this allocation fails, the dispatcher falls back to a static body. */
    c->out = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
    c->status = status;
    return PV_ERR_INVALID_ARG;
}

int api_store_fail(api_ctx *c, int code, const pv_err *e, const char *what)
{
    if (code == PV_OK) {
        code = PV_ERR_INTERNAL;
    }
    if (code == PV_ERR_EXISTS) {
        api_fail(c, 409, "conflict", "%s", what != NULL ? what : "it already exists");
        return code;
    }
    if (code == PV_ERR_INVALID_ARG) {
        /* A foreign key or check constraint: the handlers check what they refer to
         * first, so this is a concurrent change (a group deleted meanwhile). */
        api_fail(c, 409, "conflict", "it refers to something that changed meanwhile; try again");
        return code;
    }
    pv_error("%s %s: database: %s", c->req->method, c->route != NULL ? c->route->pattern : "?",
             pv_err_msg(e));
    api_fail(c, 500, "internal", "the server could not complete the request; see its log");
    return code;
}

/* ---- transactions ---- */

int api_tx_begin(api_ctx *c)
{
    pv_err e;
    pv_err_clear(&e);
    if (c->tx_open) {
        return api_fail(c, 500, "internal", "a transaction is already open");
    }
    int r = store_begin(c->db, true, &e);
    if (r != PV_OK) {
        return api_store_fail(c, r, &e, NULL);
    }
    c->tx_open = true;
    return PV_OK;
}

int api_tx_commit(api_ctx *c)
{
    pv_err e;
    pv_err_clear(&e);
    if (!c->tx_open) {
        return api_fail(c, 500, "internal", "no transaction is open");
    }
    int r = store_commit(c->db, &e);
    if (r != PV_OK) {
        store_rollback(c->db);
        c->tx_open = false;
        return api_store_fail(c, r, &e, "a concurrent change conflicts with this one");
    }
    c->tx_open = false;
    return PV_OK;
}

/* ---- body helpers ---- */

static int body_error(api_ctx *c, int code, const pv_err *e)
{
    (void)code;
    return api_fail(c, 400, "bad_request", "%s", pv_err_msg(e));
}

int api_body_fields(api_ctx *c, const char *const *allowed)
{
    pv_err e;
    pv_err_clear(&e);
    if (c->body == NULL) {
        return api_fail(c, 400, "bad_request", "this request takes a JSON object body");
    }
    int r = pv_json_check_fields(c->body, allowed, "body", &e);
    return r == PV_OK ? PV_OK : body_error(c, r, &e);
}

int api_body_string(api_ctx *c, const char *key, bool required, size_t max_len, const char **out)
{
    pv_err e;
    pv_err_clear(&e);
    *out = NULL;
    if (c->body == NULL) {
        return api_fail(c, 400, "bad_request", "this request takes a JSON object body");
    }
    int r = pv_json_get_string(c->body, key, required, max_len, "body", out, NULL, &e);
    return r == PV_OK ? PV_OK : body_error(c, r, &e);
}

int api_body_bool(api_ctx *c, const char *key, bool required, bool *out)
{
    pv_err e;
    pv_err_clear(&e);
    if (c->body == NULL) {
        return api_fail(c, 400, "bad_request", "this request takes a JSON object body");
    }
    int r = pv_json_get_bool(c->body, key, required, "body", out, NULL, &e);
    return r == PV_OK ? PV_OK : body_error(c, r, &e);
}

const char *api_query(api_ctx *c, const char *name)
{
    api_call *k = call_of(c);
    for (size_t i = 0; i < k->nq; i++) {
        if (strcmp(k->q[i].name, name) == 0) {
            return k->q[i].value;
        }
    }
    return NULL;
}

/* ---- pagination ---- */

/* Strict decimal in [min, max]: digits only, no sign, no leading zero. */
static bool parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = strlen(s);
    if (n == 0 || n > 19 || (s[0] == '0' && n > 1)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

int api_page(api_ctx *c, size_t *limit, const char **after)
{
    api_call *k = call_of(c);
    *limit = API_DEFAULT_PAGE;
    *after = "";
    const char *l = api_query(c, "limit");
    if (l != NULL) {
        uint64_t v;
        if (!parse_uint(l, 1, API_MAX_PAGE, &v)) {
            return api_fail(c, 400, "bad_request",
                            "query parameter 'limit': expected a whole number from 1 to %d",
                            API_MAX_PAGE);
        }
        *limit = (size_t)v;
    }
    const char *t = api_query(c, "continuation_token");
    if (t != NULL) {
        uint8_t raw[TOKEN_PREFIX_LEN + API_MAX_TOKEN_KEY];
        size_t n = 0;
        bool ok = pv_base64_decode(t, strlen(t), PV_BASE64_URL, raw, sizeof(raw), &n) == PV_OK &&
                  n > TOKEN_PREFIX_LEN && memcmp(raw, TOKEN_PREFIX, TOKEN_PREFIX_LEN) == 0;
        size_t chars;
        bool spaces;
        ok = ok &&
             utf8_scan((const char *)raw + TOKEN_PREFIX_LEN, n - TOKEN_PREFIX_LEN, &chars, &spaces);
        if (!ok) {
            return api_fail(c, 400, "bad_request",
                            "query parameter 'continuation_token' is not a token this server "
                            "returned");
        }
        memcpy(k->after, raw + TOKEN_PREFIX_LEN, n - TOKEN_PREFIX_LEN);
        k->after[n - TOKEN_PREFIX_LEN] = '\0';
        *after = k->after;
    }
    return PV_OK;
}

/* The token for a page that ends at next_key (NULL: the last page), as a JSON string
 * or null; NULL with the response set when it cannot be made. */
static json_t *page_token(api_ctx *c, const char *next_key)
{
    if (next_key == NULL) {
        return json_null();
    }
    size_t n = strlen(next_key);
    uint8_t raw[TOKEN_PREFIX_LEN + API_MAX_TOKEN_KEY];
    if (n == 0 || n > API_MAX_TOKEN_KEY) {
        api_fail(c, 500, "internal", "a list key is too long for a token");
        return NULL;
    }
    memcpy(raw, TOKEN_PREFIX, TOKEN_PREFIX_LEN);
    memcpy(raw + TOKEN_PREFIX_LEN, next_key, n);
    char *s = pv_base64_encode(raw, TOKEN_PREFIX_LEN + n, PV_BASE64_URL);
    json_t *tok = s != NULL ? json_string(s) : NULL;
    free(s);
    if (tok == NULL) {
        api_fail(c, 500, "internal", "out of memory");
    }
    return tok;
}

int api_page_done(api_ctx *c, json_t *items, const char *next_key)
{
    if (items == NULL) {
        return api_fail(c, 500, "internal", "out of memory");
    }
    json_t *tok = page_token(c, next_key);
    if (tok == NULL) {
        json_decref(items);
        return PV_ERR_INTERNAL;
    }
    json_t *out = json_object();
    if (out == NULL || json_object_set_new(out, "items", items) != 0) {
        json_decref(tok);
        json_decref(out);
        json_decref(items);
        return api_fail(c, 500, "internal", "out of memory");
    }
    if (json_object_set_new(out, "continuation_token", tok) != 0) {
        json_decref(out);
        return api_fail(c, 500, "internal", "out of memory");
    }
    return api_ok(c, 200, out);
}

void api_page_begin_jw(jw *w)
{
    jw_object_begin(w);
    jw_key(w, "items");
    jw_array_begin(w);
}

int api_page_done_jw(api_ctx *c, jw *w, const char *next_key)
{
    json_t *tok = page_token(c, next_key);
    if (tok == NULL) {
        jw_free(w);
        return PV_ERR_INTERNAL;
    }
    jw_array_end(w);
    jw_key(w, "continuation_token");
    jw_string(w, json_string_value(tok)); /* NULL for json null */
    jw_object_end(w);
    json_decref(tok);
    return api_ok_jw(c, 200, w);
}

/* ---- audit ---- */

int api_audit(api_ctx *c, const char *action, const char *target, json_t *detail, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    char *text = NULL;
    if (detail == NULL) {
        detail = json_object();
    }
    if (detail == NULL ||
        (text = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "audit: out of memory");
        goto out;
    }
    store_val p[] = {SV_TEXT_OR_NULL(c->tenant_id),
                     SV_INT(c->now),
                     SV_TEXT(c->operator_name),
                     SV_TEXT(action),
                     SV_TEXT(target),
                     SV_TEXT(text)};
    r = store_exec(c->db,
                   "INSERT INTO audit (tenant_id, at, operator, action, target, detail) "
                   "VALUES ($1, $2, $3, $4, $5, $6)",
                   p, sizeof(p) / sizeof(p[0]), NULL, NULL, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "audit %s", action);
    }
out:
    free(text);
    json_decref(detail);
    return r;
}

/* ---- JSON and checks ---- */

json_t *api_time(int64_t t)
{
    char s[PV_TIME_TEXT_LEN + 1];
    return pv_time_format(t, s) ? json_string(s) : json_null();
}

int api_new_id(api_ctx *c, char out[37])
{
    uint8_t u[PV_UUID_LEN];
    out[0] = '\0';
    if (pv_uuid_generate(u) != PV_OK) {
        return api_fail(c, 500, "internal", "no random bytes for an ID");
    }
    pv_uuid_format(u, out);
    return PV_OK;
}

static bool is_lower_hex(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
}

bool api_valid_uuid(const char *s)
{
    uint8_t u[PV_UUID_LEN];
    if (s == NULL || strnlen(s, 37) != 36) {
        return false;
    }
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_lower_hex(s[i])) {
            return false;
        }
    }
    return pv_uuid_parse(s, u) == PV_OK; /* also refuses the all-zero UUID */
}

bool api_valid_device_id(const char *s)
{
    if (s == NULL || strnlen(s, 65) != 64) {
        return false;
    }
    for (size_t i = 0; i < 64; i++) {
        if (!is_lower_hex(s[i])) {
            return false;
        }
    }
    return true;
}

bool api_valid_user_name(const char *s)
{
    size_t n = s != NULL ? strnlen(s, 65) : 0;
    if (n == 0 || n > 64 || strcmp(s, "server") == 0) {
        return false; /* "server" names the server itself in the audit log */
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '@' || ch == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Scans UTF-8: well-formed (no overlong forms, surrogates or values past U+10FFFF) and
 * free of C0/C1 control characters and DEL. Counts the characters and notes whether all
 * are spaces. Every text from the wire that reaches the database passes this, so
 * PostgreSQL never sees bytes it would refuse (which would be a 500, not a 400). */
static bool utf8_scan(const char *s, size_t len, size_t *chars, bool *only_spaces)
{
    *chars = 0;
    *only_spaces = true;
    for (size_t i = 0; i < len;) {
        const uint8_t *p = (const uint8_t *)s + i;
        uint32_t cp;
        size_t n;
        if (p[0] < 0x80) {
            cp = p[0];
            n = 1;
        } else if (p[0] >= 0xc2 && p[0] <= 0xdf) {
            cp = p[0] & 0x1fu;
            n = 2;
        } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
            cp = p[0] & 0x0fu;
            n = 3;
        } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
            cp = p[0] & 0x07u;
            n = 4;
        } else {
            return false;
        }
        if (i + n > len) {
            return false;
        }
        for (size_t j = 1; j < n; j++) {
            if ((p[j] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (p[j] & 0x3fu);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
            return false;
        }
        if (cp != ' ') {
            *only_spaces = false;
        }
        i += n;
        (*chars)++;
    }
    return true;
}

/* Display names are UTF-8: 1..64 characters (at most 256 bytes), well-formed, without
 * C0/C1 control characters or DEL, and not only spaces. */
bool api_valid_display_name(const char *s)
{
    if (s == NULL) {
        return false;
    }
    size_t len = strnlen(s, 257);
    size_t chars = 0;
    bool only_spaces = true;
    if (len == 0 || len > 256 || !utf8_scan(s, len, &chars, &only_spaces)) {
        return false;
    }
    return chars <= 64 && !only_spaces;
}

/* ---- request decoding ---- */

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* Percent-decodes in[0..len) into out (NUL-terminated, at most out_size - 1 bytes).
 * Refuses bad escapes, NUL and control characters, and (in paths) an encoded '/', which
 * would otherwise let one segment pose as two. In query strings '+' is a space. */
static int pct_decode(const char *in, size_t len, char *out, size_t out_size, bool path,
                      size_t *out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int ch = (uint8_t)in[i];
        if (ch == '%') {
            if (len - i < 3) {
                return PV_ERR_FORMAT;
            }
            int a = hex_value(in[i + 1]);
            int b = hex_value(in[i + 2]);
            if (a < 0 || b < 0) {
                return PV_ERR_FORMAT;
            }
            ch = a * 16 + b;
            i += 2;
            if (path && ch == '/') {
                return PV_ERR_FORMAT;
            }
        } else if (ch == '+' && !path) {
            ch = ' ';
        }
        if (ch < 0x20 || ch == 0x7f) {
            return PV_ERR_FORMAT;
        }
        if (o + 1 >= out_size) {
            return PV_ERR_TOO_LARGE;
        }
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    size_t chars;
    bool spaces;
    if (!utf8_scan(out, o, &chars, &spaces)) {
        return PV_ERR_FORMAT;
    }
    *out_len = o;
    return PV_OK;
}

static int split_path(api_call *k, const char *path)
{
    api_ctx *c = &k->c;
    size_t len = strnlen(path, API_MAX_PATH + 1);
    if (len > API_MAX_PATH) {
        return api_fail(c, 400, "bad_request", "the path is longer than %d bytes", API_MAX_PATH);
    }
    if (len == 0 || path[0] != '/') {
        return api_fail(c, 400, "bad_request", "the path must start with '/'");
    }
    size_t o = 0;
    k->nseg = 0;
    for (size_t i = 1; i <= len;) {
        size_t j = i;
        while (j < len && path[j] != '/') {
            j++;
        }
        if (k->nseg == API_MAX_SEGMENTS) {
            return api_fail(c, 404, "not_found", "no such resource (more than %d path segments)",
                            API_MAX_SEGMENTS);
        }
        size_t n = 0;
        if (pct_decode(path + i, j - i, k->path + o, sizeof(k->path) - o, true, &n) != PV_OK) {
            return api_fail(c, 400, "bad_request",
                            "the path holds a bad percent escape, an encoded '/' or a control "
                            "character");
        }
        k->seg[k->nseg++] = k->path + o;
        o += n + 1;
        i = j + 1;
    }
    return PV_OK;
}

/* Compares the pattern's segments with the request's; captures are collected into
 * names/values when they match. */
static bool match_route(const api_route *rt, api_call *k, const char **names, size_t names_size,
                        const char **values, size_t *ncap)
{
    const char *p = rt->pattern;
    size_t s = 0;
    *ncap = 0;
    if (*p != '/') {
        return false;
    }
    p++;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (s == k->nseg) {
            return false;
        }
        const char *seg = k->seg[s++];
        if (n >= 2 && p[0] == '{' && p[n - 1] == '}') {
            if (seg[0] == '\0' || *ncap == names_size) {
                return false;
            }
            names[*ncap] = p; /* "{name}..." (compared by prefix below) */
            values[(*ncap)++] = seg;
        } else if (strlen(seg) != n || memcmp(seg, p, n) != 0) {
            return false;
        }
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    return s == k->nseg;
}

static bool cap_is(const char *cap, const char *name)
{
    size_t n = strlen(name);
    return strncmp(cap + 1, name, n) == 0 && cap[1 + n] == '}';
}

static int check_capture(api_ctx *c, const char *cap, const char *v)
{
    if (cap_is(cap, "tenant") || cap_is(cap, "product") || cap_is(cap, "device_group") ||
        cap_is(cap, "ca_certificate") || cap_is(cap, "image")) {
        if (!api_valid_uuid(v)) {
            size_t n = strcspn(cap + 1, "}");
            return api_fail(c, 400, "bad_request", "%.*s ID '%.64s' is not a lowercase UUID",
                            (int)n, cap + 1, v);
        }
    } else if (cap_is(cap, "device")) {
        if (!api_valid_device_id(v)) {
            return api_fail(c, 400, "bad_request",
                            "device ID '%.80s' is not 64 lowercase hexadecimal digits", v);
        }
    } else if (cap_is(cap, "user")) {
        if (!api_valid_user_name(v)) {
            return api_fail(c, 400, "bad_request",
                            "user name '%.80s' is not 1 to 64 of A-Z a-z 0-9 . _ @ -", v);
        }
    } else {
        return api_fail(c, 500, "internal", "route capture %.32s has no check", cap);
    }
    return PV_OK;
}

static int route_request(api_call *k, const char **tenant_cap)
{
    api_ctx *c = &k->c;
    const char *method = c->req->method != NULL ? c->req->method : "";
    const api_route *found = NULL;
    char allowed[64] = "";
    const char *names[API_MAX_PARAMS];
    const char *values[API_MAX_PARAMS];
    size_t ncap = 0;
    int r;

    *tenant_cap = NULL;
    if ((r = split_path(k, c->req->path != NULL ? c->req->path : "")) != PV_OK) {
        return r;
    }
    for (size_t i = 0; i < api_route_count && found == NULL; i++) {
        const api_route *rt = &api_routes[i];
        if (!match_route(rt, k, names, API_MAX_PARAMS, values, &ncap)) {
            continue;
        }
        if (strcmp(rt->method, method) == 0) {
            found = rt;
        } else if (strstr(allowed, rt->method) == NULL) {
            size_t l = strlen(allowed);
            snprintf(allowed + l, sizeof(allowed) - l, "%s%s", l > 0 ? ", " : "", rt->method);
        }
    }
    if (found == NULL) {
        if (allowed[0] != '\0') {
            return api_fail(c, 405, "method_not_allowed", "%.16s is not allowed here; allowed: %s",
                            method, allowed);
        }
        return api_fail(c, 404, "not_found", "no such resource");
    }
    c->route = found;
    for (size_t i = 0; i < ncap; i++) {
        if ((r = check_capture(c, names[i], values[i])) != PV_OK) {
            return r;
        }
        c->params[i] = values[i];
        if (cap_is(names[i], "tenant")) {
            *tenant_cap = values[i];
        }
    }
    c->nparams = ncap;
    return PV_OK;
}

static int parse_query(api_call *k)
{
    api_ctx *c = &k->c;
    const char *q = c->req->query;
    if (q == NULL || q[0] == '\0') {
        return PV_OK;
    }
    size_t len = strnlen(q, API_MAX_QUERY + 1);
    if (len > API_MAX_QUERY) {
        return api_fail(c, 400, "bad_request", "the query string is longer than %d bytes",
                        API_MAX_QUERY);
    }
    for (size_t i = 0; i <= len;) {
        size_t j = i;
        while (j < len && q[j] != '&') {
            j++;
        }
        const char *eq = memchr(q + i, '=', j - i);
        size_t nlen = eq != NULL ? (size_t)(eq - (q + i)) : j - i;
        char name[64];
        size_t n = 0;
        if (j == i || pct_decode(q + i, nlen, name, sizeof(name), false, &n) != PV_OK || n == 0) {
            return api_fail(c, 400, "bad_request", "the query string is malformed");
        }
        const char *known = NULL;
        for (size_t a = 0; c->route->query != NULL && c->route->query[a] != NULL; a++) {
            if (strcmp(c->route->query[a], name) == 0) {
                known = c->route->query[a];
            }
        }
        if (known == NULL) {
            return api_fail(c, 400, "bad_request", "unknown query parameter '%.63s'", name);
        }
        if (api_query(c, known) != NULL) {
            return api_fail(c, 400, "bad_request", "query parameter '%s' is given twice", known);
        }
        if (k->nq == API_MAX_QPARAMS) {
            return api_fail(c, 400, "bad_request", "too many query parameters");
        }
        const char *v = eq != NULL ? eq + 1 : q + j;
        int r = pct_decode(v, (size_t)(q + j - v), k->q[k->nq].value, sizeof(k->q[k->nq].value),
                           false, &n);
        if (r != PV_OK) {
            return api_fail(c, 400, "bad_request",
                            r == PV_ERR_TOO_LARGE
                                ? "query parameter '%s' is longer than 256 bytes"
                                : "query parameter '%s' holds a bad escape or a control character",
                            known);
        }
        k->q[k->nq++].name = known;
        i = j + 1;
    }
    return PV_OK;
}

/* Is the media type want (parameters such as charset allowed)? */
static bool is_media_type(const char *ct, const char *want)
{
    size_t n = strlen(want);
    if (ct == NULL) {
        return false;
    }
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    if (strncasecmp(ct, want, n) != 0) {
        return false;
    }
    ct += n;
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    return *ct == '\0' || *ct == ';';
}

/* Nesting depth of JSON text, counted before parsing so a deep document is refused
 * without building it. Brackets inside strings do not count. */
static size_t json_depth(const uint8_t *p, size_t len)
{
    size_t depth = 0, max = 0;
    bool in_str = false, esc = false;
    for (size_t i = 0; i < len; i++) {
        uint8_t ch = p[i];
        if (in_str) {
            if (esc) {
                esc = false;
            } else if (ch == '\\') {
                esc = true;
            } else if (ch == '"') {
                in_str = false;
            }
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '{' || ch == '[') {
            if (++depth > max) {
                max = depth;
            }
        } else if ((ch == '}' || ch == ']') && depth > 0) {
            depth--;
        }
    }
    return max;
}

static int parse_body(api_ctx *c)
{
    const api_request *req = c->req;
    bool takes_body =
        strcmp(c->route->method, "POST") == 0 || strcmp(c->route->method, "PATCH") == 0;
    if (!takes_body) {
        if (req->body_len > 0) {
            return api_fail(c, 400, "bad_request", "a %s request takes no body", c->route->method);
        }
        return PV_OK;
    }
    if (req->body_len > c->srv->cfg.max_body) {
        return api_fail(c, 413, "payload_too_large", "the body is larger than %zu bytes",
                        c->srv->cfg.max_body);
    }
    if (API_IS_CBOR(c->route)) {
        /* The handler parses it: device messages are CBOR, bounded by their own rules. */
        return is_media_type(req->content_type, "application/cbor")
                   ? PV_OK
                   : api_fail(c, 415, "unsupported_media_type",
                              "the body must be CBOR (Content-Type: application/cbor)");
    }
    if (req->body_len == 0) {
        c->body = json_object();
        return c->body != NULL ? PV_OK : api_fail(c, 500, "internal", "out of memory");
    }
    if (!is_media_type(req->content_type, "application/json")) {
        return api_fail(c, 415, "unsupported_media_type",
                        "the body must be JSON (Content-Type: application/json)");
    }
    if (json_depth(req->body, req->body_len) > API_MAX_DEPTH) {
        return api_fail(c, 400, "bad_request", "body: JSON nested deeper than %d levels",
                        API_MAX_DEPTH);
    }
    json_error_t je;
    json_t *v = json_loadb((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (v == NULL) {
        return api_fail(c, 400, "bad_request", "body is not valid JSON: line %d, column %d: %s",
                        je.line, je.column, je.text);
    }
    if (!json_is_object(v)) {
        json_decref(v);
        return api_fail(c, 400, "bad_request", "body: expected a JSON object");
    }
    c->body = v;
    return PV_OK;
}

static api_role parse_role(const char *s)
{
    if (s == NULL) {
        return API_ROLE_NONE;
    }
    if (strcmp(s, "Administrator") == 0) {
        return API_ROLE_ADMIN;
    }
    if (strcmp(s, "Contributor") == 0) {
        return API_ROLE_CONTRIBUTOR;
    }
    if (strcmp(s, "Reader") == 0) {
        return API_ROLE_READER;
    }
    return API_ROLE_NONE;
}

static const char *role_name(api_role r)
{
    switch (r) {
    case API_ROLE_ADMIN:
        return "Administrator";
    case API_ROLE_CONTRIBUTOR:
        return "Contributor";
    case API_ROLE_READER:
        return "Reader";
    default:
        return "no role";
    }
}

static bool copy_text(char *dst, size_t size, const char *src)
{
    size_t n = src != NULL ? strnlen(src, size) : size;
    if (n >= size) {
        return false;
    }
    memcpy(dst, src, n + 1);
    return true;
}

/* A device's service certificate: recorded when it was issued and not expired. */
static int authenticate_device(api_ctx *c)
{
    const api_request *req = c->req;
    store_rows *rows = NULL;
    char fp[2 * PV_SHA256_LEN + 1];
    pv_err e;
    int r = PV_ERR_INTERNAL;

    pv_err_clear(&e);
    if (!req->has_client_cert) {
        return api_fail(c, 401, "unauthenticated",
                        "this needs the device's service certificate (attest first)");
    }
    pv_hex_encode(req->client_fp, sizeof(req->client_fp), fp, sizeof(fp));
    store_val p[] = {SV_TEXT(fp), SV_INT(c->now)};
    r = store_exec(c->db,
                   "SELECT device_id FROM device_service_certs "
                   "WHERE fingerprint = $1 AND not_after > $2",
                   p, 2, &rows, NULL, &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if (store_rows_count(rows) != 1 ||
        !copy_text(c->device_id, sizeof(c->device_id), store_rows_text(rows, 0, 0))) {
        r = api_fail(c, 401, "unauthenticated",
                     "the client certificate is not a current service certificate");
        goto out;
    }
    r = PV_OK;
out:
    store_rows_free(rows);
    return r;
}

/* The caller's certificate, and on {tenant} routes their role there, in one query: this
 * runs on every request. */
static int authenticate(api_ctx *c, const char *tenant)
{
    const api_request *req = c->req;
    store_rows *rows = NULL;
    char fp[2 * PV_SHA256_LEN + 1];
    pv_err e;
    int r = PV_ERR_INTERNAL;

    pv_err_clear(&e);
    /* A public device route has no use for who a certificate names: skip the query. */
    if ((c->route->access == API_PUBLIC && !req->has_client_cert) ||
        c->route->access == API_DEVICE_PUBLIC) {
        return PV_OK;
    }
    if (c->route->access == API_DEVICE) {
        return authenticate_device(c);
    }
    if (!req->has_client_cert) {
        return api_fail(c, 401, "unauthenticated",
                        "this needs an operator client certificate (enroll with an enrollment "
                        "code first)");
    }
    pv_hex_encode(req->client_fp, sizeof(req->client_fp), fp, sizeof(fp));
    if (tenant != NULL) {
        store_val p[] = {SV_TEXT(fp), SV_INT(c->now), SV_TEXT(tenant)};
        r = store_exec(c->db,
                       "SELECT o.id, o.name, r.role FROM operator_certs c "
                       "JOIN operators o ON o.id = c.operator_id "
                       "LEFT JOIN roles r ON r.operator_id = o.id AND r.tenant_id = $3 "
                       "WHERE c.fingerprint = $1 AND c.revoked_at IS NULL AND c.not_after > $2",
                       p, 3, &rows, NULL, &e);
    } else {
        store_val p[] = {SV_TEXT(fp), SV_INT(c->now)};
        r = store_exec(c->db,
                       "SELECT o.id, o.name FROM operator_certs c "
                       "JOIN operators o ON o.id = c.operator_id "
                       "WHERE c.fingerprint = $1 AND c.revoked_at IS NULL AND c.not_after > $2",
                       p, 2, &rows, NULL, &e);
    }
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if (store_rows_count(rows) != 1) {
        /* A public route serves anyone; the certificate only adds who it is (enroll
         * uses it to let an operator accept an invitation in its own name). */
        r = c->route->access == API_PUBLIC
                ? PV_OK
                : api_fail(c, 401, "unauthenticated",
                           "the client certificate is unknown, revoked or expired");
        goto out;
    }
    if (!copy_text(c->operator_id, sizeof(c->operator_id), store_rows_text(rows, 0, 0)) ||
        !copy_text(c->operator_name, sizeof(c->operator_name), store_rows_text(rows, 0, 1))) {
        r = api_fail(c, 500, "internal", "a stored operator is damaged");
        goto out;
    }
    if (tenant != NULL) {
        c->tenant_id = tenant;
        c->role = parse_role(store_rows_text(rows, 0, 2));
        if (c->role == API_ROLE_NONE) {
            r = api_fail(c, 404, "not_found", "tenant %s not found", tenant);
            goto out;
        }
        api_role need = c->route->access == API_ADMIN         ? API_ROLE_ADMIN
                        : c->route->access == API_CONTRIBUTOR ? API_ROLE_CONTRIBUTOR
                                                              : API_ROLE_READER;
        if (c->role < need) {
            r = api_fail(c, 403, "forbidden", "this needs the %s role in tenant %s; you have %s",
                         role_name(need), tenant, role_name(c->role));
            goto out;
        }
    } else if (c->route->access >= API_READER) {
        r = api_fail(c, 500, "internal", "route %s has a role check but no {tenant}",
                     c->route->pattern);
        goto out;
    }
    r = PV_OK;
out:
    store_rows_free(rows);
    return r;
}

static int dispatch(api_call *k)
{
    api_ctx *c = &k->c;
    const char *tenant = NULL;
    int r;
    if ((r = route_request(k, &tenant)) != PV_OK || (r = parse_query(k)) != PV_OK ||
        (r = parse_body(c)) != PV_OK) {
        return r;
    }
    /* A GET only reads: its authentication and its handler's queries share one read
     * snapshot (store_read_begin). Mutating handlers open their own write transaction. */
    bool reads = strcmp(c->route->method, "GET") == 0;
    pv_err e;
    pv_err_clear(&e);
    if (reads && (r = store_read_begin(c->db, &e)) != PV_OK) {
        return api_store_fail(c, r, &e, NULL);
    }
    if ((r = authenticate(c, tenant)) == PV_OK) {
        r = c->route->fn(c);
    }
    if (reads) {
        store_read_end(c->db);
    }
    return r;
}

static const char fallback_body[] =
    "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";

/* On a CBOR route, an error set by api_fail becomes {1: "failed", 2: its code with '-'
 * for '_'}: a device reads one format whatever refused it. */
static void cbor_error(api_ctx *c)
{
    json_t *err = json_object_get(c->out, "error");
    const char *code = json_string_value(json_object_get(err, "code"));
    char reason[64];
    size_t n = 0;
    for (; code != NULL && code[n] != '\0' && n + 1 < sizeof(reason); n++) {
        reason[n] = code[n] == '_' ? '-' : code[n];
    }
    reason[n] = '\0';
    int status = c->status;
    (void)api_fail_cbor(c, status, n > 0 ? reason : "internal");
}

static void render(api_ctx *c, api_response *resp)
{
    if (c->route != NULL && API_IS_CBOR(c->route) && c->raw == NULL) {
        cbor_error(c);
    }
    if (c->raw != NULL) {
        resp->status = c->status;
        resp->body = c->raw;
        resp->body_len = c->raw_len;
        resp->content_type = c->content_type != NULL ? c->content_type : "text/plain";
        c->raw = NULL;
        return;
    }
    char *s = c->out != NULL ? json_dumps(c->out, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    resp->content_type = "application/json";
    if (s == NULL) {
        resp->status = 500;
        resp->body = strdup(fallback_body);
        resp->body_len = resp->body != NULL ? sizeof(fallback_body) - 1 : 0;
        return;
    }
    resp->status = c->status;
    resp->body = s;
    resp->body_len = strlen(s);
}

void api_handle(const server *srv, store *db, const api_request *req, api_response *resp)
{
    api_call *k = calloc(1, sizeof(*k));
    memset(resp, 0, sizeof(*resp));
    resp->route = "unmatched";
    if (k == NULL) {
        resp->status = 500;
        resp->content_type = "application/json";
        resp->body = strdup(fallback_body);
        resp->body_len = resp->body != NULL ? sizeof(fallback_body) - 1 : 0;
        return;
    }
    api_ctx *c = &k->c;
    c->srv = srv;
    c->db = db;
    c->req = req;
    c->now = pv_time_now();

    int r = dispatch(k);
    if (c->tx_open) {
        /* A handler that failed after api_tx_begin: nothing it did stays. */
        store_rollback(db);
        c->tx_open = false;
        if (r == PV_OK) {
            api_fail(c, 500, "internal", "the request did not complete its transaction");
        }
    }
    if (c->status == 0 || (c->out == NULL && c->raw == NULL)) {
        api_fail(c, 500, "internal", "the request produced no response");
    }
    render(c, resp);
    if (c->route != NULL) {
        resp->route = c->route->pattern;
    }
    memcpy(resp->operator_name, c->operator_name, sizeof(resp->operator_name));

    json_decref(c->out);
    json_decref(c->body);
    free(c->raw);
    free(k);
}
