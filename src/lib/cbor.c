/* SPDX-License-Identifier: Apache-2.0 */
#include "pavise/cbor.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbor_internal.h"

/* Longest head: initial byte plus an 8-byte argument. */
#define HEAD_MAX 9

static const char *const major_names[8] = {
    "unsigned integer", "negative integer", "byte string", "text string", "array", "map", "tag",
    "simple value",
};

/* ---- shared helpers ---- */

int cbor_read_head(pv_reader *r, cbor_head *h, pv_err *e)
{
    uint8_t ib;
    h->off = r->off;
    if (pv_reader_u8(r, &ib) != PV_OK) {
        return pv_err_set(e, PV_ERR_TRUNCATED,
                          "input ends at offset %zu where an item should start", h->off);
    }
    h->major = (uint8_t)(ib >> 5);
    h->ai = (uint8_t)(ib & 0x1f);
    if (h->ai < 24) {
        h->arg = h->ai;
        return PV_OK;
    }
    if (h->ai == 31) {
        r->off = h->off;
        if (h->major == CBOR_MAJOR_SIMPLE) {
            return pv_err_set(e, PV_ERR_FORMAT, "break (0xff) at offset %zu is not allowed",
                              h->off);
        }
        if (h->major >= CBOR_MAJOR_BYTES && h->major <= CBOR_MAJOR_MAP) {
            return pv_err_set(e, PV_ERR_FORMAT, "indefinite-length %s at offset %zu is not allowed",
                              major_names[h->major], h->off);
        }
        return pv_err_set(e, PV_ERR_FORMAT,
                          "additional information 31 is not valid for a %s (offset %zu)",
                          major_names[h->major], h->off);
    }
    if (h->ai > 27) {
        r->off = h->off;
        return pv_err_set(e, PV_ERR_FORMAT, "reserved additional information %u at offset %zu",
                          (unsigned)h->ai, h->off);
    }
    /* 24..27: the argument follows in 1, 2, 4 or 8 bytes, big-endian. */
    size_t n = (size_t)1 << (h->ai - 24);
    const uint8_t *p;
    if (pv_reader_bytes(r, n, &p) != PV_OK) {
        r->off = h->off;
        return pv_err_set(e, PV_ERR_TRUNCATED,
                          "input ends inside the head of the item at offset %zu", h->off);
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    h->arg = v;
    return PV_OK;
}

/* Strict UTF-8 check; NUL bytes are refused unless allow_nul. */
static bool utf8_scan(const uint8_t *p, size_t n, bool allow_nul, size_t *bad)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c == 0 && !allow_nul) {
            goto fail;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        /* RFC 3629 §4: the second byte's range excludes overlong forms (E0, F0),
         * surrogates (ED) and code points above U+10FFFF (F4). */
        size_t need;
        uint8_t lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            if (c == 0xe0) {
                lo = 0xa0;
            } else if (c == 0xed) {
                hi = 0x9f;
            }
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            if (c == 0xf0) {
                lo = 0x90;
            } else if (c == 0xf4) {
                hi = 0x8f;
            }
        } else {
            goto fail; /* 80..C1 (continuation or overlong lead), F5..FF */
        }
        if (need > n - i - 1 || p[i + 1] < lo || p[i + 1] > hi) {
            goto fail;
        }
        for (size_t k = 2; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                goto fail;
            }
        }
        i += need + 1;
    }
    return true;
fail:
    if (bad != NULL) {
        *bad = i;
    }
    return false;
}

bool cbor_utf8_valid(const uint8_t *p, size_t n, size_t *bad)
{
    return utf8_scan(p, n, false, bad);
}

/* ---- encoding ---- */

void pv_cbor_enc_init(pv_cbor_enc *enc, pv_buf *out)
{
    enc->out = out;
    enc->err = out != NULL ? PV_OK : PV_ERR_INVALID_ARG;
}

static void enc_fail(pv_cbor_enc *enc, int err)
{
    if (enc->err == PV_OK) {
        enc->err = err;
    }
}

/* Appends a head of hl bytes and n content bytes, all or nothing. hl == 0 means the
 * libcbor encoder refused, which with a HEAD_MAX buffer is a bug. */
static void put_raw(pv_cbor_enc *enc, const unsigned char *head, size_t hl, const void *p, size_t n)
{
    uint8_t *dst;
    if (enc->err != PV_OK) {
        return;
    }
    if (hl == 0) {
        enc_fail(enc, PV_ERR_INTERNAL);
        return;
    }
    if (n > SIZE_MAX - hl) {
        enc_fail(enc, PV_ERR_TOO_LARGE);
        return;
    }
    int r = pv_buf_reserve(enc->out, hl + n, &dst);
    if (r != PV_OK) {
        enc_fail(enc, r);
        return;
    }
    memcpy(dst, head, hl);
    if (n > 0) {
        memcpy(dst + hl, p, n);
    }
    pv_buf_commit(enc->out, hl + n);
}

/* libcbor's cbor_encode_uint (and the other head encoders, which share its
 * _cbor_encode_uint) choose the shortest argument form: values up to 23 inline, then
 * 1, 2, 4 or 8 bytes, as RFC 8949 §4.2.1 requires. The unit tests check this against
 * the RFC 8949 Appendix A vectors. */
void pv_cbor_put_uint(pv_cbor_enc *enc, uint64_t v)
{
    unsigned char h[HEAD_MAX];
    put_raw(enc, h, cbor_encode_uint(v, h, sizeof(h)), NULL, 0);
}

void pv_cbor_put_int(pv_cbor_enc *enc, int64_t v)
{
    unsigned char h[HEAD_MAX];
    if (v >= 0) {
        put_raw(enc, h, cbor_encode_uint((uint64_t)v, h, sizeof(h)), NULL, 0);
    } else {
        /* Major type 1 carries -1 - v; v + 1 cannot overflow for negative v. */
        put_raw(enc, h, cbor_encode_negint((uint64_t)(-(v + 1)), h, sizeof(h)), NULL, 0);
    }
}

void pv_cbor_put_bytes(pv_cbor_enc *enc, const void *p, size_t n)
{
    unsigned char h[HEAD_MAX];
    if (p == NULL && n > 0) {
        enc_fail(enc, PV_ERR_INVALID_ARG);
        return;
    }
    put_raw(enc, h, cbor_encode_bytestring_start(n, h, sizeof(h)), p, n);
}

void pv_cbor_put_text(pv_cbor_enc *enc, const char *s)
{
    if (s == NULL) {
        enc_fail(enc, PV_ERR_INVALID_ARG);
        return;
    }
    pv_cbor_put_text_n(enc, s, strlen(s));
}

void pv_cbor_put_text_n(pv_cbor_enc *enc, const char *s, size_t n)
{
    unsigned char h[HEAD_MAX];
    if (enc->err != PV_OK) {
        return;
    }
    /* Never emit a text string that pv_cbor_get_text would refuse. */
    if ((s == NULL && n > 0) || (n > 0 && !cbor_utf8_valid((const uint8_t *)s, n, NULL))) {
        enc_fail(enc, PV_ERR_INVALID_ARG);
        return;
    }
    put_raw(enc, h, cbor_encode_string_start(n, h, sizeof(h)), s, n);
}

void pv_cbor_put_array(pv_cbor_enc *enc, size_t n)
{
    unsigned char h[HEAD_MAX];
    put_raw(enc, h, cbor_encode_array_start(n, h, sizeof(h)), NULL, 0);
}

void pv_cbor_put_map(pv_cbor_enc *enc, size_t npairs)
{
    unsigned char h[HEAD_MAX];
    put_raw(enc, h, cbor_encode_map_start(npairs, h, sizeof(h)), NULL, 0);
}

void pv_cbor_put_tag(pv_cbor_enc *enc, uint64_t tag)
{
    unsigned char h[HEAD_MAX];
    put_raw(enc, h, cbor_encode_tag(tag, h, sizeof(h)), NULL, 0);
}

void pv_cbor_put_bool(pv_cbor_enc *enc, bool v)
{
    unsigned char h[HEAD_MAX];
    put_raw(enc, h, cbor_encode_bool(v, h, sizeof(h)), NULL, 0);
}

void pv_cbor_put_null(pv_cbor_enc *enc)
{
    unsigned char h[HEAD_MAX];
    put_raw(enc, h, cbor_encode_null(h, sizeof(h)), NULL, 0);
}

int pv_cbor_enc_result(const pv_cbor_enc *enc)
{
    return enc->err;
}

/* ---- well-formedness check ---- */

/* Checks the simple value or float of a major type 7 head: only false, true, null. */
static int check_simple(const cbor_head *h, pv_err *e)
{
    switch (h->ai) {
    case CBOR_SIMPLE_FALSE:
    case CBOR_SIMPLE_TRUE:
    case CBOR_SIMPLE_NULL:
        return PV_OK;
    case 23:
        return pv_err_set(e, PV_ERR_FORMAT, "undefined at offset %zu is not allowed", h->off);
    case 25:
    case 26:
    case 27:
        return pv_err_set(e, PV_ERR_FORMAT, "floating-point number at offset %zu is not allowed",
                          h->off);
    default:
        return pv_err_set(e, PV_ERR_FORMAT,
                          "simple value %" PRIu64 " at offset %zu is not allowed (only false, "
                          "true and null are)",
                          h->arg, h->off);
    }
}

/* libcbor up to 0.11 refuses tags 6..20 in their one-byte form (0xc6..0xd4) as
 * "unassigned" (libcbor issue #307); COSE_Sign1's tag 18 is among them. */
static bool is_short_tag_6_20(const cbor_head *h)
{
    return h->major == CBOR_MAJOR_TAG && h->ai >= 6 && h->ai <= 20;
}

/*
 * Walks the items without recursion. left[i] counts the children still expected by
 * the i-th open container (array: its items, map: twice its pairs, tag: one). Every
 * item takes at least one byte, so a declared count larger than the bytes that follow
 * is refused at once; that keeps libcbor, which preallocates definite arrays and
 * maps, from allocating for items that are not there.
 * With utf8, text strings must also be valid UTF-8 (NUL allowed), as libcbor requires;
 * checking here gives a precise message. short_tags (if not NULL) counts the tags
 * for is_short_tag_6_20.
 */
static int walk(const uint8_t *p, size_t len, unsigned max_depth, bool utf8, size_t *short_tags,
                pv_err *e)
{
    uint64_t left[PV_CBOR_MAX_DEPTH];
    unsigned depth = 0;
    size_t bad;
    pv_reader r;

    if (p == NULL && len > 0) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no input");
    }
    if (len == 0) {
        return pv_err_set(e, PV_ERR_TRUNCATED, "empty input");
    }
    /* The stack is fixed; asking for more nesting than it holds gets the maximum. */
    if (max_depth > PV_CBOR_MAX_DEPTH) {
        max_depth = PV_CBOR_MAX_DEPTH;
    }
    pv_reader_init(&r, p, len);
    do {
        cbor_head h;
        int rc = cbor_read_head(&r, &h, e);
        if (rc != PV_OK) {
            return rc;
        }
        size_t rest = pv_reader_left(&r);
        uint64_t children = 0;
        bool container = false;
        switch (h.major) {
        case CBOR_MAJOR_UINT:
        case CBOR_MAJOR_NEGINT:
            break;
        case CBOR_MAJOR_BYTES:
        case CBOR_MAJOR_TEXT:
            if (h.arg > rest) {
                return pv_err_set(e, PV_ERR_TRUNCATED,
                                  "%s of %" PRIu64 " bytes at offset %zu runs past the end of "
                                  "the input (%zu bytes left)",
                                  major_names[h.major], h.arg, h.off, rest);
            }
            if (utf8 && h.major == CBOR_MAJOR_TEXT &&
                !utf8_scan(p + r.off, (size_t)h.arg, true, &bad)) {
                return pv_err_set(e, PV_ERR_FORMAT,
                                  "text string at offset %zu is not valid UTF-8 (byte %zu)", h.off,
                                  r.off + bad);
            }
            r.off += (size_t)h.arg;
            break;
        case CBOR_MAJOR_ARRAY:
            if (h.arg > rest) {
                return pv_err_set(e, PV_ERR_TRUNCATED,
                                  "array of %" PRIu64 " items at offset %zu cannot fit in the "
                                  "%zu bytes left",
                                  h.arg, h.off, rest);
            }
            container = true;
            children = h.arg;
            break;
        case CBOR_MAJOR_MAP:
            if (h.arg > rest / 2) {
                return pv_err_set(e, PV_ERR_TRUNCATED,
                                  "map of %" PRIu64 " pairs at offset %zu cannot fit in the "
                                  "%zu bytes left",
                                  h.arg, h.off, rest);
            }
            container = true;
            children = h.arg * 2; /* no overflow: h.arg <= SIZE_MAX / 2 */
            break;
        case CBOR_MAJOR_TAG:
            container = true;
            children = 1;
            if (short_tags != NULL && is_short_tag_6_20(&h)) {
                (*short_tags)++;
            }
            break;
        default:
            rc = check_simple(&h, e);
            if (rc != PV_OK) {
                return rc;
            }
            break;
        }
        if (container) {
            if (depth >= max_depth) {
                return pv_err_set(e, PV_ERR_FORMAT, "%s at offset %zu nests deeper than %u levels",
                                  major_names[h.major], h.off, max_depth);
            }
            if (children > 0) {
                left[depth++] = children;
                continue;
            }
        }
        /* One item is complete: count it against the containers it closes. */
        while (depth > 0 && --left[depth - 1] == 0) {
            depth--;
        }
    } while (depth > 0);

    if (pv_reader_left(&r) != 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "%zu trailing bytes after the item, at offset %zu",
                          pv_reader_left(&r), r.off);
    }
    return PV_OK;
}

int pv_cbor_check(const uint8_t *p, size_t len, unsigned max_depth, pv_err *e)
{
    return walk(p, len, max_depth, false, NULL, e);
}

/*
 * A copy of checked input in which every one-byte tag head 0xc6..0xd4 becomes the
 * equivalent two-byte head 0xd8 NN, which libcbor accepts. In definite-length CBOR
 * the heads follow one another, separated only by string contents, so no stack is
 * needed to find them.
 */
static uint8_t *widen_short_tags(const uint8_t *p, size_t len, size_t count, size_t *out_len)
{
    if (count > SIZE_MAX - len) {
        return NULL;
    }
    uint8_t *out = malloc(len + count);
    size_t o = 0;
    pv_reader r;
    if (out == NULL) {
        return NULL;
    }
    pv_reader_init(&r, p, len);
    while (pv_reader_left(&r) > 0) {
        cbor_head h;
        if (cbor_read_head(&r, &h, NULL) != PV_OK) {
            free(out); /* cannot happen: the input was checked */
            return NULL;
        }
        size_t hl = r.off - h.off;
        if (is_short_tag_6_20(&h)) {
            out[o++] = 0xd8;
            out[o++] = h.ai;
        } else {
            memcpy(out + o, p + h.off, hl);
            o += hl;
        }
        if (h.major == CBOR_MAJOR_BYTES || h.major == CBOR_MAJOR_TEXT) {
            memcpy(out + o, p + r.off, (size_t)h.arg);
            o += (size_t)h.arg;
            r.off += (size_t)h.arg;
        }
    }
    *out_len = o;
    return out;
}

int pv_cbor_decode(const uint8_t *p, size_t len, cbor_item_t **out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    struct cbor_load_result res;
    size_t short_tags = 0, wide_len = 0;
    uint8_t *wide = NULL;
    cbor_item_t *it = NULL;

    *out = NULL;
    r = walk(p, len, PV_CBOR_MAX_DEPTH, true, &short_tags, e);
    if (r != PV_OK) {
        return r;
    }
    if (short_tags > 0) {
        wide = widen_short_tags(p, len, short_tags, &wide_len);
        if (wide == NULL) {
            return pv_err_set(e, PV_ERR_NOMEM, "out of memory decoding CBOR");
        }
        p = wide;
        len = wide_len;
    }
    it = cbor_load(p, len, &res);
    if (it == NULL || res.error.code != CBOR_ERR_NONE) {
        if (res.error.code == CBOR_ERR_MEMERROR) {
            r = pv_err_set(e, PV_ERR_NOMEM, "out of memory decoding CBOR");
        } else {
            r = pv_err_set(e, PV_ERR_FORMAT, "CBOR decoder refused the item (error %d)",
                           (int)res.error.code);
        }
        goto out;
    }
    if (res.read != len) {
        r = pv_err_set(e, PV_ERR_FORMAT, "CBOR decoder stopped after %zu of %zu bytes", res.read,
                       len);
        goto out;
    }
    *out = it;
    it = NULL;
    r = PV_OK;
out:
    if (it != NULL) {
        cbor_decref(&it);
    }
    free(wide);
    return r;
}

/* ---- maps and typed getters ---- */

static const char *type_name(const cbor_item_t *it)
{
    if (it == NULL) {
        return "nothing";
    }
    if (cbor_is_null(it)) {
        return "null";
    }
    if (cbor_is_bool(it)) {
        return "a boolean";
    }
    switch (cbor_typeof(it)) {
    case CBOR_TYPE_UINT:
        return "an unsigned integer";
    case CBOR_TYPE_NEGINT:
        return "a negative integer";
    case CBOR_TYPE_BYTESTRING:
        return "a byte string";
    case CBOR_TYPE_STRING:
        return "a text string";
    case CBOR_TYPE_ARRAY:
        return "an array";
    case CBOR_TYPE_MAP:
        return "a map";
    case CBOR_TYPE_TAG:
        return "a tag";
    default:
        return "a simple value";
    }
}

/* An integer item as int64_t; false for other types and for integers outside
 * [INT64_MIN, INT64_MAX] (a uint above INT64_MAX must never alias a negative key). */
static bool item_int64(const cbor_item_t *it, int64_t *v)
{
    if (it == NULL) {
        return false;
    }
    if (cbor_isa_uint(it)) {
        uint64_t u = cbor_get_int(it);
        if (u > INT64_MAX) {
            return false;
        }
        *v = (int64_t)u;
        return true;
    }
    if (cbor_isa_negint(it)) {
        uint64_t n = cbor_get_int(it); /* the value is -1 - n */
        if (n > INT64_MAX) {
            return false;
        }
        *v = -(int64_t)n - 1;
        return true;
    }
    return false;
}

cbor_item_t *pv_cbor_map_get(const cbor_item_t *map, int64_t key)
{
    if (map == NULL || !cbor_isa_map(map)) {
        return NULL;
    }
    struct cbor_pair *pairs = cbor_map_handle(map);
    size_t n = cbor_map_size(map);
    for (size_t i = 0; i < n; i++) {
        int64_t k;
        if (item_int64(pairs[i].key, &k) && k == key) {
            return pairs[i].value;
        }
    }
    return NULL;
}

/* Describes a key for a message: its integer value, or its type. */
static void key_text(const cbor_item_t *k, char *buf, size_t size)
{
    int64_t v;
    if (item_int64(k, &v)) {
        snprintf(buf, size, "%" PRId64, v);
    } else if (cbor_is_int(k)) {
        snprintf(buf, size, "%s%" PRIu64, cbor_isa_negint(k) ? "-1-" : "", cbor_get_int(k));
    } else {
        snprintf(buf, size, "of type %s", type_name(k));
    }
}

static bool in_list(int64_t k, const int64_t *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (list[i] == k) {
            return true;
        }
    }
    return false;
}

int pv_cbor_map_check_keys(const cbor_item_t *map, const int64_t *allowed, size_t n, pv_err *e)
{
    char kt[48];
    if (map == NULL || !cbor_isa_map(map)) {
        return pv_err_set(e, PV_ERR_FORMAT, "expected a map, got %s", type_name(map));
    }
    struct cbor_pair *pairs = cbor_map_handle(map);
    size_t npairs = cbor_map_size(map);
    /* Each key is checked against the allowed list before the earlier keys, so the
     * duplicate search never runs past n + 1 keys: after n distinct allowed keys the
     * next one must be unknown or a repeat. */
    for (size_t i = 0; i < npairs; i++) {
        int64_t k;
        if (!item_int64(pairs[i].key, &k) || !in_list(k, allowed, n)) {
            key_text(pairs[i].key, kt, sizeof(kt));
            return pv_err_set(e, PV_ERR_FORMAT, "map key %s is not allowed", kt);
        }
        for (size_t j = 0; j < i; j++) {
            int64_t prev;
            if (item_int64(pairs[j].key, &prev) && prev == k) {
                return pv_err_set(e, PV_ERR_FORMAT, "map key %" PRId64 " appears more than once",
                                  k);
            }
        }
    }
    return PV_OK;
}

int pv_cbor_get_uint(const cbor_item_t *it, uint64_t *v, pv_err *e)
{
    *v = 0;
    if (it == NULL || !cbor_isa_uint(it)) {
        return pv_err_set(e, PV_ERR_FORMAT, "expected an unsigned integer, got %s", type_name(it));
    }
    *v = cbor_get_int(it);
    return PV_OK;
}

int pv_cbor_get_int(const cbor_item_t *it, int64_t *v, pv_err *e)
{
    char kt[48];
    *v = 0;
    if (it == NULL || !cbor_is_int(it)) {
        return pv_err_set(e, PV_ERR_FORMAT, "expected an integer, got %s", type_name(it));
    }
    if (!item_int64(it, v)) {
        key_text(it, kt, sizeof(kt));
        return pv_err_set(e, PV_ERR_FORMAT, "integer %s does not fit in 64 bits", kt);
    }
    return PV_OK;
}

int pv_cbor_get_bool(const cbor_item_t *it, bool *v, pv_err *e)
{
    *v = false;
    if (it == NULL || !cbor_is_bool(it)) {
        return pv_err_set(e, PV_ERR_FORMAT, "expected a boolean, got %s", type_name(it));
    }
    *v = cbor_get_bool(it);
    return PV_OK;
}

int pv_cbor_get_bytes(const cbor_item_t *it, const uint8_t **p, size_t *n, pv_err *e)
{
    /* libcbor leaves the handle NULL for an empty string; callers get a valid pointer. */
    static const uint8_t empty[1];
    *p = NULL;
    *n = 0;
    if (it == NULL || !cbor_isa_bytestring(it) || !cbor_bytestring_is_definite(it)) {
        return pv_err_set(e, PV_ERR_FORMAT, "expected a byte string, got %s", type_name(it));
    }
    size_t len = cbor_bytestring_length(it);
    *p = len > 0 ? cbor_bytestring_handle(it) : empty;
    *n = len;
    return PV_OK;
}

int pv_cbor_get_text(const cbor_item_t *it, size_t max, char **out, pv_err *e)
{
    size_t bad;
    *out = NULL;
    if (it == NULL || !cbor_isa_string(it) || !cbor_string_is_definite(it)) {
        return pv_err_set(e, PV_ERR_FORMAT, "expected a text string, got %s", type_name(it));
    }
    size_t len = cbor_string_length(it);
    const uint8_t *s = cbor_string_handle(it);
    if (len > max) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "text string of %zu bytes exceeds the limit of %zu",
                          len, max);
    }
    if (len > 0 && !cbor_utf8_valid(s, len, &bad)) {
        if (s[bad] == 0) {
            return pv_err_set(e, PV_ERR_FORMAT, "text string contains a NUL byte at %zu", bad);
        }
        return pv_err_set(e, PV_ERR_FORMAT, "text string is not valid UTF-8 (at byte %zu)", bad);
    }
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    if (len > 0) {
        memcpy(copy, s, len);
    }
    copy[len] = '\0';
    *out = copy;
    return PV_OK;
}
