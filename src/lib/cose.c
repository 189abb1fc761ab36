/* SPDX-License-Identifier: Apache-2.0 */
/*
 * COSE_Sign1 with ES256; the profile is described in docs/formats/cose.md.
 *
 * The outer structure, Tag(18)? [protected: bstr, unprotected: {}, payload: bstr / nil,
 * signature: bstr], is read head by head from the checked input rather than through a
 * libcbor tree: every element is a leaf, so nothing larger than the input is ever
 * allocated, and the protected header keeps the exact bytes that were signed. Only the
 * protected header map, bounded by COSE_MAX_PROTECTED, goes through libcbor.
 */
#include "pavise/cose.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/cbor.h"

#include "cbor_internal.h"

/* Header labels (RFC 9052 §3.1). */
#define LABEL_ALG  1
#define LABEL_CRIT 2
#define LABEL_CTY  3
#define LABEL_KID  4

/* The largest protected header we accept is 255 bytes (three pairs, content type and
 * kid at their limits, every head in its 9-byte form); anything longer would be
 * refused anyway, and the bound keeps libcbor's allocation small. */
#define COSE_MAX_PROTECTED 1024

static const char sig1_context[] = "Signature1";

struct pv_cose_sign1 {
    uint8_t *prot; /* protected header bytes exactly as received */
    size_t prot_len;
    uint8_t *payload; /* NULL when detached */
    size_t payload_len;
    uint8_t sig[PV_ES256_SIG_LEN];
    int64_t alg;
    uint8_t *kid; /* NULL when absent */
    size_t kid_len;
    char *content_type; /* NULL when absent */
};

static const char *label_name(int64_t label)
{
    static const struct {
        int64_t label;
        const char *name;
    } names[] = {
        {LABEL_ALG, "alg"},
        {LABEL_CRIT, "crit"},
        {LABEL_CTY, "content type"},
        {LABEL_KID, "kid"},
        {5, "IV"},
        {6, "Partial IV"},
        {7, "counter signature"},
        {9, "CounterSignature0"},
        {10, "kid context"},
        {11, "countersignature version 2"},
        {12, "countersignature0 version 2"},
        {32, "x5bag"},
        {33, "x5chain"},
        {34, "x5t"},
        {35, "x5u"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (names[i].label == label) {
            return names[i].name;
        }
    }
    return "unknown";
}

/* Copies n bytes into a new allocation (never NULL on success, even for n == 0). */
static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n > 0 ? n : 1);
    if (d != NULL && n > 0) {
        memcpy(d, p, n);
    }
    return d;
}

/*
 * Sig_structure = ["Signature1", body_protected: bstr, external_aad: bstr,
 *                  payload: bstr] (RFC 9052 §4.4), encoded deterministically.
 */
static int sig_structure(const uint8_t *prot, size_t prot_len, const uint8_t *aad, size_t aad_len,
                         const uint8_t *payload, size_t payload_len, pv_buf **out, pv_err *e)
{
    /* Array head, the context string and three byte-string heads fit in 64 bytes. */
    size_t max = 64;
    *out = NULL;
    if (prot_len > SIZE_MAX - max || aad_len > SIZE_MAX - max - prot_len ||
        payload_len > SIZE_MAX - max - prot_len - aad_len) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "COSE_Sign1: Sig_structure too large");
    }
    max += prot_len + aad_len + payload_len;
    pv_buf *b = pv_buf_new(max);
    if (b == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, b);
    pv_cbor_put_array(&enc, 4);
    pv_cbor_put_text_n(&enc, sig1_context, sizeof(sig1_context) - 1);
    pv_cbor_put_bytes(&enc, prot, prot_len);
    pv_cbor_put_bytes(&enc, aad, aad_len);
    pv_cbor_put_bytes(&enc, payload, payload_len);
    int r = pv_cbor_enc_result(&enc);
    if (r != PV_OK) {
        pv_buf_free(b);
        return pv_err_set(e, r, "COSE_Sign1: encoding the Sig_structure: %s", pv_strerror(r));
    }
    *out = b;
    return PV_OK;
}

/* ---- create ---- */

static int check_create_args(pv_cose_signer signer, const uint8_t *kid, size_t kid_len,
                             const char *content_type, const uint8_t *payload, size_t payload_len,
                             const uint8_t *aad, size_t aad_len, unsigned flags, const pv_buf *out,
                             pv_err *e)
{
    if (signer == NULL || out == NULL || (kid == NULL && kid_len > 0) ||
        (payload == NULL && payload_len > 0) || (aad == NULL && aad_len > 0)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "COSE_Sign1: missing argument");
    }
    if ((flags & ~PV_COSE_DETACHED) != 0) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "COSE_Sign1: unknown flags 0x%x", flags);
    }
    if (kid_len > PV_COSE_MAX_KID) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "COSE_Sign1: kid of %zu bytes exceeds %d", kid_len,
                          PV_COSE_MAX_KID);
    }
    if (content_type != NULL) {
        size_t n = strlen(content_type);
        if (n > PV_COSE_MAX_CONTENT_TYPE) {
            return pv_err_set(e, PV_ERR_INVALID_ARG,
                              "COSE_Sign1: content type of %zu bytes exceeds %d", n,
                              PV_COSE_MAX_CONTENT_TYPE);
        }
        if (!cbor_utf8_valid((const uint8_t *)content_type, n, NULL)) {
            return pv_err_set(e, PV_ERR_INVALID_ARG, "COSE_Sign1: content type is not valid UTF-8");
        }
    }
    return PV_OK;
}

/* {1: -7, 3: content_type, 4: kid}: labels in ascending order, absent ones left out. */
static int encode_protected(const uint8_t *kid, size_t kid_len, const char *content_type, pv_buf *b)
{
    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, b);
    pv_cbor_put_map(&enc, 1 + (content_type != NULL) + (kid_len > 0));
    pv_cbor_put_uint(&enc, LABEL_ALG);
    pv_cbor_put_int(&enc, PV_COSE_ALG_ES256);
    if (content_type != NULL) {
        pv_cbor_put_uint(&enc, LABEL_CTY);
        pv_cbor_put_text(&enc, content_type);
    }
    if (kid_len > 0) {
        pv_cbor_put_uint(&enc, LABEL_KID);
        pv_cbor_put_bytes(&enc, kid, kid_len);
    }
    return pv_cbor_enc_result(&enc);
}

int pv_cose_sign1_create_with_signer(const uint8_t *kid, size_t kid_len, const char *content_type,
                                     const uint8_t *payload, size_t payload_len, const uint8_t *aad,
                                     size_t aad_len, unsigned flags, pv_cose_signer signer,
                                     void *signer_ctx, pv_buf *out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    pv_buf *prot = NULL, *tbs = NULL, *msg = NULL;
    uint8_t sig[PV_ES256_SIG_LEN];
    pv_cbor_enc enc;

    r = check_create_args(signer, kid, kid_len, content_type, payload, payload_len, aad, aad_len,
                          flags, out, e);
    if (r != PV_OK) {
        return r;
    }
    prot = pv_buf_new(COSE_MAX_PROTECTED);
    msg = pv_buf_new(PV_COSE_MAX_MESSAGE);
    if (prot == NULL || msg == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    r = encode_protected(kid, kid_len, content_type, prot);
    if (r != PV_OK) {
        r = pv_err_set(e, r, "COSE_Sign1: encoding the protected header: %s", pv_strerror(r));
        goto out;
    }
    r = sig_structure(pv_buf_data(prot), pv_buf_len(prot), aad, aad_len, payload, payload_len, &tbs,
                      e);
    if (r != PV_OK) {
        goto out;
    }
    r = signer(signer_ctx, pv_buf_data(tbs), pv_buf_len(tbs), sig, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "COSE_Sign1");
        goto out;
    }

    pv_cbor_enc_init(&enc, msg);
    pv_cbor_put_tag(&enc, PV_COSE_TAG_SIGN1);
    pv_cbor_put_array(&enc, 4);
    pv_cbor_put_bytes(&enc, pv_buf_data(prot), pv_buf_len(prot));
    pv_cbor_put_map(&enc, 0);
    if ((flags & PV_COSE_DETACHED) != 0) {
        pv_cbor_put_null(&enc);
    } else {
        pv_cbor_put_bytes(&enc, payload, payload_len);
    }
    pv_cbor_put_bytes(&enc, sig, sizeof(sig));
    r = pv_cbor_enc_result(&enc);
    if (r == PV_ERR_TOO_LARGE) {
        r = pv_err_set(e, r, "COSE_Sign1: the message would exceed %d bytes", PV_COSE_MAX_MESSAGE);
        goto out;
    } else if (r != PV_OK) {
        r = pv_err_set(e, r, "COSE_Sign1: encoding the message: %s", pv_strerror(r));
        goto out;
    }
    r = pv_buf_append(out, pv_buf_data(msg), pv_buf_len(msg));
    if (r != PV_OK) {
        r = pv_err_set(e, r, "COSE_Sign1: output: %s", pv_strerror(r));
        goto out;
    }
    r = PV_OK;
out:
    pv_buf_free(prot);
    pv_buf_free(tbs);
    pv_buf_free(msg);
    return r;
}

/* The signer for a key held in memory. A struct, so the const key travels through the
 * void * context without casting the const away. */
struct key_signer {
    const pv_key *key;
};

static int sign_with_key(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[PV_ES256_SIG_LEN],
                         pv_err *e)
{
    const struct key_signer *ks = ctx;
    return pv_key_sign_es256(ks->key, msg, len, sig, e);
}

int pv_cose_sign1_create(const pv_key *key, const uint8_t *kid, size_t kid_len,
                         const char *content_type, const uint8_t *payload, size_t payload_len,
                         const uint8_t *aad, size_t aad_len, unsigned flags, pv_buf *out, pv_err *e)
{
    struct key_signer ks = {key};
    if (key == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "COSE_Sign1: missing argument");
    }
    return pv_cose_sign1_create_with_signer(kid, kid_len, content_type, payload, payload_len, aad,
                                            aad_len, flags, sign_with_key, &ks, out, e);
}

/* ---- decode ---- */

static const char *const major_desc[8] = {
    "an unsigned integer",
    "a negative integer",
    "a byte string",
    "a text string",
    "an array",
    "a map",
    "a tag",
    "a simple value",
};

static const char *head_desc(const cbor_head *h)
{
    if (h->major == CBOR_MAJOR_SIMPLE && h->ai == CBOR_SIMPLE_NULL) {
        return "nil";
    }
    return major_desc[h->major & 7];
}

/* Reads the head of the next element and checks its major type. */
static int expect(pv_reader *r, uint8_t major, cbor_head *h, const char *what, pv_err *e)
{
    int rc = cbor_read_head(r, h, e);
    if (rc != PV_OK) {
        pv_err_wrap(e, rc, "%s", what);
        return pv_err_wrap(e, rc, "COSE_Sign1");
    }
    if (h->major != major) {
        return pv_err_set(e, PV_ERR_FORMAT, "COSE_Sign1: %s: expected %s, found %s", what,
                          major_desc[major & 7], head_desc(h));
    }
    return PV_OK;
}

/* Checks the labels of the protected header map before anything else is read, so
 * the message names the first label Pavise does not support. */
static int check_labels(const cbor_item_t *map, pv_err *e)
{
    static const int64_t allowed[] = {LABEL_ALG, LABEL_CTY, LABEL_KID};
    struct cbor_pair *pairs = cbor_map_handle(map);
    size_t n = cbor_map_size(map);
    for (size_t i = 0; i < n; i++) {
        int64_t label;
        if (pv_cbor_get_int(pairs[i].key, &label, NULL) != PV_OK) {
            return pv_err_set(e, PV_ERR_UNSUPPORTED,
                              "COSE_Sign1: protected header: only integer labels are supported");
        }
        if (label != LABEL_ALG && label != LABEL_CTY && label != LABEL_KID) {
            return pv_err_set(e, PV_ERR_UNSUPPORTED,
                              "COSE_Sign1: protected header: label %" PRId64
                              " (%s) is not supported",
                              label, label_name(label));
        }
    }
    /* Known labels only; now refuse repeats (libcbor keeps every pair). */
    int r = pv_cbor_map_check_keys(map, allowed, sizeof(allowed) / sizeof(allowed[0]), e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "COSE_Sign1: protected header");
    }
    return PV_OK;
}

static int read_alg(const cbor_item_t *map, pv_cose_sign1 *m, pv_err *e)
{
    const cbor_item_t *it = pv_cbor_map_get(map, LABEL_ALG);
    int64_t alg;
    if (it == NULL) {
        return pv_err_set(e, PV_ERR_FORMAT, "COSE_Sign1: protected header: alg (1) is missing");
    }
    if (pv_cbor_get_int(it, &alg, NULL) != PV_OK) {
        return pv_err_set(e, PV_ERR_UNSUPPORTED,
                          "COSE_Sign1: protected header: alg (1) must be an integer");
    }
    if (alg != PV_COSE_ALG_ES256) {
        return pv_err_set(
            e, PV_ERR_UNSUPPORTED,
            "COSE_Sign1: protected header: alg %" PRId64 " is not supported (only ES256, -7)", alg);
    }
    m->alg = alg;
    return PV_OK;
}

static int read_content_type(const cbor_item_t *map, pv_cose_sign1 *m, pv_err *e)
{
    const cbor_item_t *it = pv_cbor_map_get(map, LABEL_CTY);
    if (it == NULL) {
        return PV_OK;
    }
    if (cbor_isa_uint(it)) {
        return pv_err_set(e, PV_ERR_UNSUPPORTED,
                          "COSE_Sign1: protected header: content type (3) as a CoAP "
                          "Content-Format number is not supported");
    }
    int r = pv_cbor_get_text(it, PV_COSE_MAX_CONTENT_TYPE, &m->content_type, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "COSE_Sign1: protected header: content type (3)");
    }
    return PV_OK;
}

static int read_kid(const cbor_item_t *map, pv_cose_sign1 *m, pv_err *e)
{
    const cbor_item_t *it = pv_cbor_map_get(map, LABEL_KID);
    const uint8_t *p;
    size_t n;
    if (it == NULL) {
        return PV_OK;
    }
    int r = pv_cbor_get_bytes(it, &p, &n, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "COSE_Sign1: protected header: kid (4)");
    }
    if (n > PV_COSE_MAX_KID) {
        return pv_err_set(e, PV_ERR_TOO_LARGE,
                          "COSE_Sign1: protected header: kid (4) of %zu bytes exceeds %d", n,
                          PV_COSE_MAX_KID);
    }
    m->kid = dup_bytes(p, n);
    if (m->kid == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    m->kid_len = n;
    return PV_OK;
}

/* Decodes the protected header bytes into m (alg, content type, kid). */
static int parse_protected(const uint8_t *p, size_t n, pv_cose_sign1 *m, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    cbor_item_t *map = NULL;

    if (n == 0) {
        /* An empty bstr stands for an empty map, which has no alg. */
        return pv_err_set(e, PV_ERR_FORMAT, "COSE_Sign1: protected header: alg (1) is missing");
    }
    if (n > COSE_MAX_PROTECTED) {
        return pv_err_set(e, PV_ERR_TOO_LARGE,
                          "COSE_Sign1: protected header of %zu bytes exceeds %d", n,
                          COSE_MAX_PROTECTED);
    }
    r = pv_cbor_decode(p, n, &map, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "COSE_Sign1: protected header");
        goto out;
    }
    if (!cbor_isa_map(map)) {
        r = pv_err_set(e, PV_ERR_FORMAT, "COSE_Sign1: protected header: expected a map");
        goto out;
    }
    if ((r = check_labels(map, e)) != PV_OK || (r = read_alg(map, m, e)) != PV_OK ||
        (r = read_content_type(map, m, e)) != PV_OK || (r = read_kid(map, m, e)) != PV_OK) {
        goto out;
    }
    r = PV_OK;
out:
    if (map != NULL) {
        cbor_decref(&map);
    }
    return r;
}

/* Views into the message for the four elements of the array. */
struct sign1_view {
    const uint8_t *prot;
    size_t prot_len;
    const uint8_t *payload; /* NULL for nil */
    size_t payload_len;
    const uint8_t *sig;
};

static int parse_outer(const uint8_t *msg, size_t len, unsigned flags, struct sign1_view *v,
                       pv_err *e)
{
    pv_reader r;
    cbor_head h;
    int rc;

    pv_reader_init(&r, msg, len);
    if ((rc = cbor_read_head(&r, &h, e)) != PV_OK) {
        return pv_err_wrap(e, rc, "COSE_Sign1");
    }
    if (h.major == CBOR_MAJOR_TAG) {
        if (h.arg != PV_COSE_TAG_SIGN1) {
            return pv_err_set(e, PV_ERR_FORMAT,
                              "COSE_Sign1: tag %" PRIu64 " is not the COSE_Sign1 tag (18)", h.arg);
        }
        if ((rc = cbor_read_head(&r, &h, e)) != PV_OK) {
            return pv_err_wrap(e, rc, "COSE_Sign1");
        }
    } else if ((flags & PV_COSE_REQUIRE_TAG) != 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "COSE_Sign1: tag 18 is required but missing");
    }
    if (h.major != CBOR_MAJOR_ARRAY || h.arg != 4) {
        if (h.major == CBOR_MAJOR_ARRAY) {
            return pv_err_set(e, PV_ERR_FORMAT,
                              "COSE_Sign1: expected an array of 4 elements, found %" PRIu64, h.arg);
        }
        return pv_err_set(e, PV_ERR_FORMAT, "COSE_Sign1: expected an array, found %s",
                          head_desc(&h));
    }

    if ((rc = expect(&r, CBOR_MAJOR_BYTES, &h, "protected header", e)) != PV_OK) {
        return rc;
    }
    v->prot_len = (size_t)h.arg;
    if (pv_reader_bytes(&r, v->prot_len, &v->prot) != PV_OK) {
        return pv_err_set(e, PV_ERR_TRUNCATED, "COSE_Sign1: protected header is truncated");
    }

    if ((rc = expect(&r, CBOR_MAJOR_MAP, &h, "unprotected header", e)) != PV_OK) {
        return rc;
    }
    if (h.arg != 0) {
        return pv_err_set(e, PV_ERR_UNSUPPORTED,
                          "COSE_Sign1: unprotected header must be empty (it has %" PRIu64
                          " entr%s)",
                          h.arg, h.arg == 1 ? "y" : "ies");
    }

    if ((rc = cbor_read_head(&r, &h, e)) != PV_OK) {
        return pv_err_wrap(e, rc, "COSE_Sign1: payload");
    }
    if (h.major == CBOR_MAJOR_BYTES) {
        v->payload_len = (size_t)h.arg;
        if (pv_reader_bytes(&r, v->payload_len, &v->payload) != PV_OK) {
            return pv_err_set(e, PV_ERR_TRUNCATED, "COSE_Sign1: payload is truncated");
        }
    } else if (h.major != CBOR_MAJOR_SIMPLE || h.ai != CBOR_SIMPLE_NULL) {
        return pv_err_set(e, PV_ERR_FORMAT,
                          "COSE_Sign1: payload: expected a byte string or nil, found %s",
                          head_desc(&h));
    }

    if ((rc = expect(&r, CBOR_MAJOR_BYTES, &h, "signature", e)) != PV_OK) {
        return rc;
    }
    if (h.arg != PV_ES256_SIG_LEN) {
        return pv_err_set(e, PV_ERR_FORMAT,
                          "COSE_Sign1: signature: expected %d bytes (ES256 r || s), found %" PRIu64,
                          PV_ES256_SIG_LEN, h.arg);
    }
    if (pv_reader_bytes(&r, PV_ES256_SIG_LEN, &v->sig) != PV_OK) {
        return pv_err_set(e, PV_ERR_TRUNCATED, "COSE_Sign1: signature is truncated");
    }
    if (pv_reader_left(&r) != 0) {
        /* pv_cbor_check saw exactly one item, and all four elements are leaves. */
        return pv_err_set(e, PV_ERR_INTERNAL, "COSE_Sign1: bytes left after the message");
    }
    return PV_OK;
}

int pv_cose_sign1_decode(const uint8_t *msg, size_t len, unsigned flags, pv_cose_sign1 **out,
                         pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    pv_cose_sign1 *m = NULL;
    struct sign1_view v = {0};

    if (out == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "COSE_Sign1: missing argument");
    }
    *out = NULL;
    if ((msg == NULL && len > 0) || (flags & ~PV_COSE_REQUIRE_TAG) != 0) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "COSE_Sign1: invalid argument");
    }
    if (len > PV_COSE_MAX_MESSAGE) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "COSE_Sign1: message of %zu bytes exceeds %d", len,
                          PV_COSE_MAX_MESSAGE);
    }
    r = pv_cbor_check(msg, len, PV_CBOR_MAX_DEPTH, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "COSE_Sign1");
    }
    r = parse_outer(msg, len, flags, &v, e);
    if (r != PV_OK) {
        return r;
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    r = parse_protected(v.prot, v.prot_len, m, e);
    if (r != PV_OK) {
        goto out;
    }
    m->prot = dup_bytes(v.prot, v.prot_len);
    if (m->prot == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    m->prot_len = v.prot_len;
    if (v.payload != NULL) {
        m->payload = dup_bytes(v.payload, v.payload_len);
        if (m->payload == NULL) {
            r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
            goto out;
        }
        m->payload_len = v.payload_len;
    }
    memcpy(m->sig, v.sig, PV_ES256_SIG_LEN);
    *out = m;
    m = NULL;
    r = PV_OK;
out:
    pv_cose_sign1_free(m);
    return r;
}

/* ---- verify and accessors ---- */

int pv_cose_sign1_verify(const pv_cose_sign1 *m, const pv_key *key, const uint8_t *detached,
                         size_t detached_len, const uint8_t *aad, size_t aad_len, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    pv_buf *tbs = NULL;
    const uint8_t *payload;
    size_t payload_len;

    if (m == NULL || key == NULL || (aad == NULL && aad_len > 0) ||
        (detached == NULL && detached_len > 0)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "COSE_Sign1: missing argument");
    }
    if (m->payload == NULL) {
        if (detached == NULL) {
            return pv_err_set(e, PV_ERR_INVALID_ARG,
                              "COSE_Sign1: the payload is detached and none was given");
        }
        payload = detached;
        payload_len = detached_len;
    } else {
        if (detached != NULL) {
            return pv_err_set(e, PV_ERR_INVALID_ARG,
                              "COSE_Sign1: the payload is attached; a detached payload was "
                              "given too");
        }
        payload = m->payload;
        payload_len = m->payload_len;
    }
    r = sig_structure(m->prot, m->prot_len, aad, aad_len, payload, payload_len, &tbs, e);
    if (r != PV_OK) {
        return r;
    }
    r = pv_key_verify_es256(key, pv_buf_data(tbs), pv_buf_len(tbs), m->sig, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "COSE_Sign1");
    }
    pv_buf_free(tbs);
    return r;
}

int64_t pv_cose_sign1_alg(const pv_cose_sign1 *m)
{
    return m->alg;
}

void pv_cose_sign1_kid(const pv_cose_sign1 *m, const uint8_t **kid, size_t *len)
{
    *kid = m->kid;
    *len = m->kid_len;
}

const char *pv_cose_sign1_content_type(const pv_cose_sign1 *m)
{
    return m->content_type;
}

void pv_cose_sign1_payload(const pv_cose_sign1 *m, const uint8_t **p, size_t *len)
{
    *p = m->payload;
    *len = m->payload_len;
}

bool pv_cose_sign1_is_detached(const pv_cose_sign1 *m)
{
    return m->payload == NULL;
}

void pv_cose_sign1_free(pv_cose_sign1 *m)
{
    if (m == NULL) {
        return;
    }
    free(m->prot);
    free(m->payload);
    free(m->kid);
    free(m->content_type);
    free(m);
}
