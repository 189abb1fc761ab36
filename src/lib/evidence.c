/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Attestation evidence (docs/protocol/attestation.md §1.3): an EAT claims map in a tagged
 * COSE_Sign1 made by the attestation key.
 *
 * One table of claims drives the encoder's order, the decoder's dispatch and the names
 * in messages. The format's rules (device ID, event types, image versions, limits) live
 * in check_evidence, which the signer runs before encoding and the decoder runs on what
 * it parsed, so the two can never disagree about what valid evidence is.
 */
#include "pavise/evidence.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/cbor.h"

#include "cbor_internal.h"

/* ueid type byte: RAND (RFC 9711 §4.2.1), followed by the 32 bytes of the device ID. */
#define UEID_TYPE_RAND 0x01
#define UEID_LEN       (1 + PV_SHA256_LEN)

/* Top-level map, event and image arrays, an event's array or an image's map: 3 levels.
 * Anything deeper is refused before libcbor allocates for it. */
#define CLAIMS_MAX_DEPTH 3

/* The longest eat_profile read before comparing; a longer one is wrong anyway. */
#define PROFILE_MAX 256

#define EVENT_ITEMS 3

/* Keys of an image map. */
enum {
    IMG_KIND = 1,
    IMG_IMAGE_ID = 2,
    IMG_COMPONENT_ID = 3,
    IMG_VERSION = 4,
    IMG_MANIFEST_DIGEST = 5,
};

static const int64_t image_keys[] = {IMG_KIND, IMG_IMAGE_ID, IMG_COMPONENT_ID, IMG_VERSION,
                                     IMG_MANIFEST_DIGEST};

static const struct {
    pv_evidence_image_kind kind;
    const char *name;
} image_kinds[] = {
    {PV_EVIDENCE_IMAGE_OS, "os"},
    {PV_EVIDENCE_IMAGE_APP, "app"},
};

/* The kind's name, or NULL for a kind the format does not know. */
static const char *rot_kind_name(pv_rot_kind k)
{
    return pv_rot_kind_valid(k) ? pv_rot_kind_name(k) : NULL;
}

static const char *image_kind_name(pv_evidence_image_kind k)
{
    for (size_t i = 0; i < sizeof(image_kinds) / sizeof(image_kinds[0]); i++) {
        if (image_kinds[i].kind == k) {
            return image_kinds[i].name;
        }
    }
    return NULL;
}

/* ---- the claims ---- */

typedef int (*claim_decoder)(const cbor_item_t *it, pv_evidence *ev, pv_err *e);

static int dec_iat(const cbor_item_t *it, pv_evidence *ev, pv_err *e);
static int dec_nonce(const cbor_item_t *it, pv_evidence *ev, pv_err *e);
static int dec_ueid(const cbor_item_t *it, pv_evidence *ev, pv_err *e);
static int dec_dbgstat(const cbor_item_t *it, pv_evidence *ev, pv_err *e);
static int dec_profile(const cbor_item_t *it, pv_evidence *ev, pv_err *e);
static int dec_bootcount(const cbor_item_t *it, pv_evidence *ev, pv_err *e);
static int dec_rot_kind(const cbor_item_t *it, pv_evidence *ev, pv_err *e);
static int dec_binding(const cbor_item_t *it, pv_evidence *ev, pv_err *e);
static int dec_measurement(const cbor_item_t *it, pv_evidence *ev, pv_err *e);
static int dec_events(const cbor_item_t *it, pv_evidence *ev, pv_err *e);
static int dec_images(const cbor_item_t *it, pv_evidence *ev, pv_err *e);

/* In deterministic order (RFC 8949 §4.2.1: keys sorted by their encoded bytes): the small
 * unsigned keys, the two-byte unsigned ones (0x19 ...), then the negative ones
 * (0x3a 00 01 11 70 ...), each group ascending. The encoder writes them in this order. */
static const struct claim {
    int64_t key;
    const char *name;
    claim_decoder decode;
} claims[] = {
    {PV_EAT_IAT, "iat", dec_iat},
    {PV_EAT_NONCE, "eat_nonce", dec_nonce},
    {PV_EAT_UEID, "ueid", dec_ueid},
    {PV_EAT_DBGSTAT, "dbgstat", dec_dbgstat},
    {PV_EAT_PROFILE, "eat_profile", dec_profile},
    {PV_EAT_BOOTCOUNT, "bootcount", dec_bootcount},
    {PV_EAT_ROT_KIND, "rot kind", dec_rot_kind},
    {PV_EAT_BINDING, "binding", dec_binding},
    {PV_EAT_MEASUREMENT, "measurement", dec_measurement},
    {PV_EAT_EVENT_LOG, "event log", dec_events},
    {PV_EAT_IMAGES, "images", dec_images},
};

#define N_CLAIMS (sizeof(claims) / sizeof(claims[0]))

static const struct claim *claim_of(int64_t key)
{
    for (size_t i = 0; i < N_CLAIMS; i++) {
        if (claims[i].key == key) {
            return &claims[i];
        }
    }
    return NULL;
}

/* Sets e to "evidence: claim <key> (<name>): <message>" and returns code. */
static int claim_err(pv_err *e, int code, int64_t key, const char *fmt, ...) PV_PRINTF(4, 5);

static int claim_err(pv_err *e, int code, int64_t key, const char *fmt, ...)
{
    char msg[PV_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const struct claim *c = claim_of(key);
    return pv_err_set(e, code, "evidence: claim %" PRId64 " (%s): %s", key,
                      c != NULL ? c->name : "?", msg);
}

/* ---- the format's rules ---- */

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

static int check_event(const pv_rot_event *ev, size_t i, pv_err *e)
{
    size_t n = strnlen(ev->type, sizeof(ev->type));
    if (n == 0) {
        return claim_err(e, PV_ERR_FORMAT, PV_EAT_EVENT_LOG, "event %zu: type is empty", i);
    }
    if (n > PV_ROT_MAX_EVENT_TYPE) {
        return claim_err(e, PV_ERR_TOO_LARGE, PV_EAT_EVENT_LOG,
                         "event %zu: type is longer than %d bytes", i, PV_ROT_MAX_EVENT_TYPE);
    }
    for (size_t j = 0; j < n; j++) {
        char c = ev->type[j];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            return claim_err(e, PV_ERR_FORMAT, PV_EAT_EVENT_LOG,
                             "event %zu: type has a character outside [a-z0-9-] at %zu", i, j);
        }
    }
    if (ev->data == NULL && ev->data_len > 0) {
        return claim_err(e, PV_ERR_INVALID_ARG, PV_EAT_EVENT_LOG,
                         "event %zu: %zu bytes of data but no pointer", i, ev->data_len);
    }
    if (ev->data_len > PV_ROT_MAX_EVENT_DATA) {
        return claim_err(e, PV_ERR_TOO_LARGE, PV_EAT_EVENT_LOG,
                         "event %zu: data of %zu bytes exceeds %d", i, ev->data_len,
                         PV_ROT_MAX_EVENT_DATA);
    }
    return PV_OK;
}

static int check_image(const pv_evidence_image *img, size_t i, pv_err *e)
{
    if (image_kind_name(img->kind) == NULL) {
        return claim_err(e, PV_ERR_FORMAT, PV_EAT_IMAGES,
                         "image %zu: kind %d is neither os nor app", i, (int)img->kind);
    }
    size_t n = strnlen(img->version, sizeof(img->version));
    if (n == 0) {
        return claim_err(e, PV_ERR_FORMAT, PV_EAT_IMAGES, "image %zu: version is empty", i);
    }
    if (n > PV_EVIDENCE_MAX_VERSION) {
        return claim_err(e, PV_ERR_TOO_LARGE, PV_EAT_IMAGES,
                         "image %zu: version is longer than %d bytes", i, PV_EVIDENCE_MAX_VERSION);
    }
    if (!cbor_utf8_valid((const uint8_t *)img->version, n, NULL)) {
        return claim_err(e, PV_ERR_FORMAT, PV_EAT_IMAGES, "image %zu: version is not valid UTF-8",
                         i);
    }
    return PV_OK;
}

/* Every rule of the format that a pv_evidence can break. */
static int check_evidence(const pv_evidence *ev, pv_err *e)
{
    int r;
    if (strnlen(ev->device_id, sizeof(ev->device_id)) != PV_DEVICE_ID_HEX_LEN ||
        !is_lower_hex(ev->device_id, PV_DEVICE_ID_HEX_LEN)) {
        return claim_err(e, PV_ERR_FORMAT, PV_EAT_UEID, "device ID is not %d lowercase hex digits",
                         PV_DEVICE_ID_HEX_LEN);
    }
    if (ev->issued_at < 0) {
        return claim_err(e, PV_ERR_FORMAT, PV_EAT_IAT, "time %" PRId64 " is negative",
                         ev->issued_at);
    }
    if (rot_kind_name(ev->rot_kind) == NULL) {
        return claim_err(e, PV_ERR_FORMAT, PV_EAT_ROT_KIND, "kind %d is neither tpm nor software",
                         (int)ev->rot_kind);
    }
    if (ev->n_events > PV_ROT_MAX_EVENTS) {
        return claim_err(e, PV_ERR_TOO_LARGE, PV_EAT_EVENT_LOG, "%zu events exceed %d",
                         ev->n_events, PV_ROT_MAX_EVENTS);
    }
    if (ev->events == NULL && ev->n_events > 0) {
        return claim_err(e, PV_ERR_INVALID_ARG, PV_EAT_EVENT_LOG, "%zu events but no array",
                         ev->n_events);
    }
    for (size_t i = 0; i < ev->n_events; i++) {
        if ((r = check_event(&ev->events[i], i, e)) != PV_OK) {
            return r;
        }
    }
    if (ev->n_images > PV_EVIDENCE_MAX_IMAGES) {
        return claim_err(e, PV_ERR_TOO_LARGE, PV_EAT_IMAGES, "%zu images exceed %d", ev->n_images,
                         PV_EVIDENCE_MAX_IMAGES);
    }
    if (ev->images == NULL && ev->n_images > 0) {
        return claim_err(e, PV_ERR_INVALID_ARG, PV_EAT_IMAGES, "%zu images but no array",
                         ev->n_images);
    }
    for (size_t i = 0; i < ev->n_images; i++) {
        if ((r = check_image(&ev->images[i], i, e)) != PV_OK) {
            return r;
        }
    }
    return PV_OK;
}

/* ---- binding ---- */

int pv_evidence_binding(const uint8_t nonce[PV_NONCE_LEN], const uint8_t *tls_spki_der,
                        size_t spki_len, uint8_t out[PV_SHA256_LEN])
{
    int r = PV_ERR_INTERNAL;
    uint8_t spki_hash[PV_SHA256_LEN];
    pv_sha256 *h = NULL;

    if (out == NULL) {
        return PV_ERR_INVALID_ARG;
    }
    memset(out, 0, PV_SHA256_LEN);
    /* An empty SPKI names no key: binding to it would bind to nothing. */
    if (nonce == NULL || tls_spki_der == NULL || spki_len == 0) {
        return PV_ERR_INVALID_ARG;
    }
    if ((r = pv_sha256_digest(tls_spki_der, spki_len, spki_hash)) != PV_OK) {
        goto out;
    }
    if ((h = pv_sha256_new()) == NULL) {
        r = PV_ERR_NOMEM;
        goto out;
    }
    if ((r = pv_sha256_update(h, nonce, PV_NONCE_LEN)) != PV_OK ||
        (r = pv_sha256_update(h, spki_hash, sizeof(spki_hash))) != PV_OK ||
        (r = pv_sha256_final(h, out)) != PV_OK) {
        memset(out, 0, PV_SHA256_LEN);
        goto out;
    }
    r = PV_OK;
out:
    pv_sha256_free(h);
    return r;
}

/* ---- signing ---- */

static void put_claims(pv_cbor_enc *enc, const pv_evidence *ev)
{
    uint8_t ueid[UEID_LEN];
    ueid[0] = UEID_TYPE_RAND;
    if (pv_hex_decode(ev->device_id, ueid + 1, PV_SHA256_LEN) != PV_OK && enc->err == PV_OK) {
        enc->err = PV_ERR_INTERNAL; /* check_evidence let a bad device ID through */
    }
    /* The order of claims[]. */
    pv_cbor_put_map(enc, N_CLAIMS);
    pv_cbor_put_int(enc, PV_EAT_IAT);
    pv_cbor_put_uint(enc, (uint64_t)ev->issued_at);
    pv_cbor_put_int(enc, PV_EAT_NONCE);
    pv_cbor_put_bytes(enc, ev->nonce, PV_NONCE_LEN);
    pv_cbor_put_int(enc, PV_EAT_UEID);
    pv_cbor_put_bytes(enc, ueid, sizeof(ueid));
    pv_cbor_put_int(enc, PV_EAT_DBGSTAT);
    pv_cbor_put_uint(enc, ev->development ? PV_DBGSTAT_ENABLED : PV_DBGSTAT_DISABLED);
    pv_cbor_put_int(enc, PV_EAT_PROFILE);
    pv_cbor_put_text(enc, PV_EVIDENCE_PROFILE);
    pv_cbor_put_int(enc, PV_EAT_BOOTCOUNT);
    pv_cbor_put_uint(enc, ev->boot_count);
    pv_cbor_put_int(enc, PV_EAT_ROT_KIND);
    pv_cbor_put_text(enc, rot_kind_name(ev->rot_kind));
    pv_cbor_put_int(enc, PV_EAT_BINDING);
    pv_cbor_put_bytes(enc, ev->binding, PV_SHA256_LEN);
    pv_cbor_put_int(enc, PV_EAT_MEASUREMENT);
    pv_cbor_put_bytes(enc, ev->measurement, PV_SHA256_LEN);
    pv_cbor_put_int(enc, PV_EAT_EVENT_LOG);
    pv_cbor_put_array(enc, ev->n_events);
    for (size_t i = 0; i < ev->n_events; i++) {
        const pv_rot_event *x = &ev->events[i];
        pv_cbor_put_array(enc, EVENT_ITEMS);
        pv_cbor_put_text(enc, x->type);
        pv_cbor_put_bytes(enc, x->digest, PV_SHA256_LEN);
        pv_cbor_put_bytes(enc, x->data, x->data_len);
    }
    pv_cbor_put_int(enc, PV_EAT_IMAGES);
    pv_cbor_put_array(enc, ev->n_images);
    for (size_t i = 0; i < ev->n_images; i++) {
        const pv_evidence_image *img = &ev->images[i];
        pv_cbor_put_map(enc, sizeof(image_keys) / sizeof(image_keys[0]));
        pv_cbor_put_uint(enc, IMG_KIND);
        pv_cbor_put_text(enc, image_kind_name(img->kind));
        pv_cbor_put_uint(enc, IMG_IMAGE_ID);
        pv_cbor_put_bytes(enc, img->image_id, PV_UUID_LEN);
        pv_cbor_put_uint(enc, IMG_COMPONENT_ID);
        pv_cbor_put_bytes(enc, img->component_id, PV_UUID_LEN);
        pv_cbor_put_uint(enc, IMG_VERSION);
        pv_cbor_put_text(enc, img->version);
        pv_cbor_put_uint(enc, IMG_MANIFEST_DIGEST);
        pv_cbor_put_bytes(enc, img->manifest_digest, PV_SHA256_LEN);
    }
}

/* Calls the caller's signer, then checks its signature with the attestation key: a
 * signer holding another key (the wrong root of trust, a key rotated underneath) would
 * otherwise produce evidence whose kid names a key that did not sign it, refused only
 * later and far away by the verifier. */
struct checked_signer {
    pv_evidence_signer signer;
    void *ctx;
    const pv_key *key;
};

static int sign_checked(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[PV_ES256_SIG_LEN],
                        pv_err *e)
{
    const struct checked_signer *cs = ctx;
    int r = cs->signer(cs->ctx, msg, len, sig, e);
    if (r != PV_OK) {
        return r;
    }
    r = pv_key_verify_es256(cs->key, msg, len, sig, e);
    if (r == PV_ERR_SIGNATURE) {
        return pv_err_set(e, r, "the signer's signature does not verify with the attestation key");
    }
    return r;
}

static int key_signer(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[PV_ES256_SIG_LEN],
                      pv_err *e)
{
    return pv_key_sign_es256(ctx, msg, len, sig, e);
}

/* signer and ctx sign the Sig_structure (sign_checked or key_signer). */
static int sign_evidence(const pv_evidence *ev, const pv_key *attestation_key,
                         pv_evidence_signer signer, void *signer_ctx, pv_buf *out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    uint8_t kid[PV_KEY_ID_LEN];
    pv_buf *payload = NULL, *msg = NULL;
    pv_cbor_enc enc;

    if ((r = check_evidence(ev, e)) != PV_OK) {
        return r;
    }
    if (pv_key_id(attestation_key, kid) != PV_OK) {
        return pv_err_set(e, PV_ERR_CRYPTO, "evidence: cannot compute the attestation key's ID");
    }
    /* The payload is part of the message, so the message's limit bounds it too. */
    payload = pv_buf_new(PV_EVIDENCE_MAX_SIZE);
    msg = pv_buf_new(PV_EVIDENCE_MAX_SIZE);
    if (payload == NULL || msg == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    pv_cbor_enc_init(&enc, payload);
    put_claims(&enc, ev);
    r = pv_cbor_enc_result(&enc);
    if (r == PV_ERR_TOO_LARGE) {
        r = pv_err_set(e, r, "evidence: the claims would exceed %d bytes", PV_EVIDENCE_MAX_SIZE);
        goto out;
    } else if (r != PV_OK) {
        r = pv_err_set(e, r, "evidence: encoding the claims: %s", pv_strerror(r));
        goto out;
    }
    r = pv_cose_sign1_create_with_signer(kid, sizeof(kid), PV_EVIDENCE_CONTENT_TYPE,
                                         pv_buf_data(payload), pv_buf_len(payload), NULL, 0, 0,
                                         signer, signer_ctx, msg, e);
    if (r == PV_ERR_TOO_LARGE) {
        r = pv_err_set(e, r, "evidence: the message would exceed %d bytes", PV_EVIDENCE_MAX_SIZE);
        goto out;
    } else if (r != PV_OK) {
        pv_err_wrap(e, r, "evidence");
        goto out;
    }
    if ((r = pv_buf_append(out, pv_buf_data(msg), pv_buf_len(msg))) != PV_OK) {
        r = pv_err_set(e, r, "evidence: output: %s", pv_strerror(r));
        goto out;
    }
    r = PV_OK;
out:
    pv_buf_free(payload);
    pv_buf_free(msg);
    return r;
}

int pv_evidence_sign(const pv_evidence *ev, const pv_key *attestation_key,
                     pv_evidence_signer signer, void *signer_ctx, pv_buf *out, pv_err *e)
{
    if (ev == NULL || attestation_key == NULL || signer == NULL || out == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "evidence: missing argument");
    }
    struct checked_signer cs = {signer, signer_ctx, attestation_key};
    return sign_evidence(ev, attestation_key, sign_checked, &cs, out, e);
}

int pv_evidence_sign_with_key(const pv_evidence *ev, const pv_key *attestation_key, pv_buf *out,
                              pv_err *e)
{
    if (ev == NULL || attestation_key == NULL || out == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "evidence: missing argument");
    }
    if (!pv_key_has_private(attestation_key)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "evidence: the attestation key has no private part");
    }
    return sign_evidence(ev, attestation_key, key_signer, (void *)attestation_key, out, e);
}

/* ---- decoding ---- */

/* A byte string of exactly n bytes. */
static int get_fixed(const cbor_item_t *it, size_t n, const uint8_t **p, pv_err *e)
{
    size_t len;
    int r = pv_cbor_get_bytes(it, p, &len, e);
    if (r != PV_OK) {
        return r;
    }
    if (len != n) {
        *p = NULL;
        return pv_err_set(e, PV_ERR_FORMAT, "%zu bytes, expected %zu", len, n);
    }
    return PV_OK;
}

static int dec_fixed(const cbor_item_t *it, uint8_t *out, size_t n, pv_err *e)
{
    const uint8_t *p;
    int r = get_fixed(it, n, &p, e);
    if (r == PV_OK) {
        memcpy(out, p, n);
    }
    return r;
}

static int dec_iat(const cbor_item_t *it, pv_evidence *ev, pv_err *e)
{
    uint64_t u;
    int r = pv_cbor_get_uint(it, &u, e);
    if (r != PV_OK) {
        return r;
    }
    if (u > (uint64_t)INT64_MAX) {
        return pv_err_set(e, PV_ERR_FORMAT, "%" PRIu64 " is out of range", u);
    }
    ev->issued_at = (int64_t)u;
    return PV_OK;
}

static int dec_nonce(const cbor_item_t *it, pv_evidence *ev, pv_err *e)
{
    return dec_fixed(it, ev->nonce, PV_NONCE_LEN, e);
}

static int dec_ueid(const cbor_item_t *it, pv_evidence *ev, pv_err *e)
{
    const uint8_t *p;
    int r = get_fixed(it, UEID_LEN, &p, e);
    if (r != PV_OK) {
        return r;
    }
    if (p[0] != UEID_TYPE_RAND) {
        return pv_err_set(e, PV_ERR_FORMAT, "type byte 0x%02x, expected 0x%02x (RAND)", p[0],
                          UEID_TYPE_RAND);
    }
    pv_hex_encode(p + 1, PV_SHA256_LEN, ev->device_id, sizeof(ev->device_id));
    return PV_OK;
}

static int dec_dbgstat(const cbor_item_t *it, pv_evidence *ev, pv_err *e)
{
    uint64_t u;
    int r = pv_cbor_get_uint(it, &u, e);
    if (r != PV_OK) {
        return r;
    }
    if (u != PV_DBGSTAT_ENABLED && u != PV_DBGSTAT_DISABLED) {
        return pv_err_set(e, PV_ERR_FORMAT, "%" PRIu64 " is neither %d (enabled) nor %d (disabled)",
                          u, PV_DBGSTAT_ENABLED, PV_DBGSTAT_DISABLED);
    }
    ev->development = u == PV_DBGSTAT_ENABLED;
    return PV_OK;
}

static int dec_profile(const cbor_item_t *it, pv_evidence *ev, pv_err *e)
{
    char *s = NULL;
    int r = pv_cbor_get_text(it, PROFILE_MAX, &s, e);
    if (r != PV_OK) {
        return r;
    }
    if (strcmp(s, PV_EVIDENCE_PROFILE) != 0) {
        r = pv_err_set(e, PV_ERR_FORMAT, "'%.64s' is not %s", s, PV_EVIDENCE_PROFILE);
    }
    free(s);
    return r;
}

static int dec_bootcount(const cbor_item_t *it, pv_evidence *ev, pv_err *e)
{
    return pv_cbor_get_uint(it, &ev->boot_count, e);
}

static int dec_rot_kind(const cbor_item_t *it, pv_evidence *ev, pv_err *e)
{
    char *s = NULL;
    int r = pv_cbor_get_text(it, 16, &s, e);
    if (r != PV_OK) {
        return r;
    }
    r = pv_rot_kind_parse(s, &ev->rot_kind) == PV_OK ? PV_OK : PV_ERR_FORMAT;
    if (r != PV_OK) {
        pv_err_set(e, r, "'%s' is neither 'tpm' nor 'software'", s);
    }
    free(s);
    return r;
}

static int dec_binding(const cbor_item_t *it, pv_evidence *ev, pv_err *e)
{
    return dec_fixed(it, ev->binding, PV_SHA256_LEN, e);
}

static int dec_measurement(const cbor_item_t *it, pv_evidence *ev, pv_err *e)
{
    return dec_fixed(it, ev->measurement, PV_SHA256_LEN, e);
}

/* An array of at most max elements. */
static int get_array(const cbor_item_t *it, size_t max, const char *what, pv_err *e)
{
    if (it == NULL || !cbor_isa_array(it) || !cbor_array_is_definite(it)) {
        return pv_err_set(e, PV_ERR_FORMAT, "expected an array");
    }
    if (cbor_array_size(it) > max) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "%zu %s exceed %zu", cbor_array_size(it), what, max);
    }
    return PV_OK;
}

static int dec_event(const cbor_item_t *it, pv_rot_event *x, pv_err *e)
{
    char *type = NULL;
    const uint8_t *p;
    size_t n;
    int r;
    if (!cbor_isa_array(it) || cbor_array_size(it) != EVENT_ITEMS) {
        return pv_err_set(e, PV_ERR_FORMAT, "expected an array [type, digest, data]");
    }
    cbor_item_t **items = cbor_array_handle(it);
    if ((r = pv_cbor_get_text(items[0], PV_ROT_MAX_EVENT_TYPE, &type, e)) != PV_OK) {
        return pv_err_wrap(e, r, "type");
    }
    memcpy(x->type, type, strlen(type) + 1);
    free(type);
    if ((r = get_fixed(items[1], PV_SHA256_LEN, &p, e)) != PV_OK) {
        return pv_err_wrap(e, r, "digest");
    }
    memcpy(x->digest, p, PV_SHA256_LEN);
    if ((r = pv_cbor_get_bytes(items[2], &p, &n, e)) != PV_OK) {
        return pv_err_wrap(e, r, "data");
    }
    if (n > PV_ROT_MAX_EVENT_DATA) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "data of %zu bytes exceeds %d", n,
                          PV_ROT_MAX_EVENT_DATA);
    }
    if (n > 0) {
        if ((x->data = malloc(n)) == NULL) {
            return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        }
        memcpy(x->data, p, n);
        x->data_len = n;
    }
    return PV_OK;
}

static int dec_events(const cbor_item_t *it, pv_evidence *ev, pv_err *e)
{
    int r = get_array(it, PV_ROT_MAX_EVENTS, "events", e);
    if (r != PV_OK) {
        return r;
    }
    size_t n = cbor_array_size(it);
    if (n == 0) {
        return PV_OK;
    }
    if ((ev->events = calloc(n, sizeof(*ev->events))) == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    ev->n_events = n; /* so pv_evidence_free releases what the loop got to */
    cbor_item_t **items = cbor_array_handle(it);
    for (size_t i = 0; i < n; i++) {
        if ((r = dec_event(items[i], &ev->events[i], e)) != PV_OK) {
            return pv_err_wrap(e, r, "event %zu", i);
        }
    }
    return PV_OK;
}

static int dec_image_kind(const cbor_item_t *it, pv_evidence_image *img, pv_err *e)
{
    char *s = NULL;
    int r = pv_cbor_get_text(it, 16, &s, e);
    if (r != PV_OK) {
        return r;
    }
    r = PV_ERR_FORMAT;
    for (size_t i = 0; i < sizeof(image_kinds) / sizeof(image_kinds[0]) && r != PV_OK; i++) {
        if (strcmp(s, image_kinds[i].name) == 0) {
            img->kind = image_kinds[i].kind;
            r = PV_OK;
        }
    }
    if (r != PV_OK) {
        pv_err_set(e, r, "'%s' is neither 'os' nor 'app'", s);
    }
    free(s);
    return r;
}

static int dec_image(const cbor_item_t *it, pv_evidence_image *img, pv_err *e)
{
    static const char *const names[] = {
        "", "kind (1)", "image ID (2)", "component ID (3)", "version (4)", "manifest digest (5)"};
    const size_t nkeys = sizeof(image_keys) / sizeof(image_keys[0]);
    char *version = NULL;
    int r;
    if ((r = pv_cbor_map_check_keys(it, image_keys, nkeys, e)) != PV_OK) {
        return r;
    }
    for (size_t k = 0; k < nkeys; k++) {
        if (pv_cbor_map_get(it, image_keys[k]) == NULL) {
            return pv_err_set(e, PV_ERR_FORMAT, "%s is missing", names[image_keys[k]]);
        }
    }
    if ((r = dec_image_kind(pv_cbor_map_get(it, IMG_KIND), img, e)) != PV_OK) {
        return pv_err_wrap(e, r, "%s", names[IMG_KIND]);
    }
    if ((r = dec_fixed(pv_cbor_map_get(it, IMG_IMAGE_ID), img->image_id, PV_UUID_LEN, e)) !=
        PV_OK) {
        return pv_err_wrap(e, r, "%s", names[IMG_IMAGE_ID]);
    }
    if ((r = dec_fixed(pv_cbor_map_get(it, IMG_COMPONENT_ID), img->component_id, PV_UUID_LEN, e)) !=
        PV_OK) {
        return pv_err_wrap(e, r, "%s", names[IMG_COMPONENT_ID]);
    }
    r = pv_cbor_get_text(pv_cbor_map_get(it, IMG_VERSION), PV_EVIDENCE_MAX_VERSION, &version, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "%s", names[IMG_VERSION]);
    }
    memcpy(img->version, version, strlen(version) + 1);
    free(version);
    if ((r = dec_fixed(pv_cbor_map_get(it, IMG_MANIFEST_DIGEST), img->manifest_digest,
                       PV_SHA256_LEN, e)) != PV_OK) {
        return pv_err_wrap(e, r, "%s", names[IMG_MANIFEST_DIGEST]);
    }
    return PV_OK;
}

static int dec_images(const cbor_item_t *it, pv_evidence *ev, pv_err *e)
{
    int r = get_array(it, PV_EVIDENCE_MAX_IMAGES, "images", e);
    if (r != PV_OK) {
        return r;
    }
    size_t n = cbor_array_size(it);
    if (n == 0) {
        return PV_OK;
    }
    if ((ev->images = calloc(n, sizeof(*ev->images))) == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    ev->n_images = n;
    cbor_item_t **items = cbor_array_handle(it);
    for (size_t i = 0; i < n; i++) {
        if ((r = dec_image(items[i], &ev->images[i], e)) != PV_OK) {
            return pv_err_wrap(e, r, "image %zu", i);
        }
    }
    return PV_OK;
}

static int decode_claims(const uint8_t *p, size_t len, pv_evidence *ev, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    cbor_item_t *map = NULL;
    int64_t keys[N_CLAIMS];

    /* The depth bound first: the claims are never deeper, and libcbor then allocates
     * for no more than the shape the format allows. */
    if ((r = pv_cbor_check(p, len, CLAIMS_MAX_DEPTH, e)) != PV_OK ||
        (r = pv_cbor_decode(p, len, &map, e)) != PV_OK) {
        return pv_err_wrap(e, r, "evidence: claims");
    }
    if (!cbor_isa_map(map)) {
        r = pv_err_set(e, PV_ERR_FORMAT, "evidence: claims: expected a map");
        goto out;
    }
    for (size_t i = 0; i < N_CLAIMS; i++) {
        keys[i] = claims[i].key;
    }
    if ((r = pv_cbor_map_check_keys(map, keys, N_CLAIMS, e)) != PV_OK) {
        pv_err_wrap(e, r, "evidence: claims");
        goto out;
    }
    for (size_t i = 0; i < N_CLAIMS; i++) {
        const cbor_item_t *it = pv_cbor_map_get(map, claims[i].key);
        if (it == NULL) {
            r = pv_err_set(e, PV_ERR_FORMAT, "evidence: claim %" PRId64 " (%s) is missing",
                           claims[i].key, claims[i].name);
            goto out;
        }
        if ((r = claims[i].decode(it, ev, e)) != PV_OK) {
            pv_err_wrap(e, r, "evidence: claim %" PRId64 " (%s)", claims[i].key, claims[i].name);
            goto out;
        }
    }
    /* The rules the parsers above do not already enforce (event types, version text). */
    if ((r = check_evidence(ev, e)) != PV_OK) {
        goto out;
    }
    r = PV_OK;
out:
    cbor_decref(&map);
    return r;
}

int pv_evidence_decode(const uint8_t *p, size_t len, pv_evidence *out, pv_cose_sign1 **cose,
                       pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    pv_cose_sign1 *m = NULL;
    const uint8_t *kid, *payload;
    size_t kid_len, payload_len;

    if (out != NULL) {
        memset(out, 0, sizeof(*out));
    }
    if (cose != NULL) {
        *cose = NULL;
    }
    if (out == NULL || cose == NULL || (p == NULL && len > 0)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "evidence: missing argument");
    }
    if (len > PV_EVIDENCE_MAX_SIZE) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "evidence of %zu bytes exceeds %d", len,
                          PV_EVIDENCE_MAX_SIZE);
    }
    if ((r = pv_cose_sign1_decode(p, len, PV_COSE_REQUIRE_TAG, &m, e)) != PV_OK) {
        return pv_err_wrap(e, r, "evidence");
    }
    const char *ct = pv_cose_sign1_content_type(m);
    if (ct == NULL || strcmp(ct, PV_EVIDENCE_CONTENT_TYPE) != 0) {
        r = pv_err_set(e, PV_ERR_FORMAT, "evidence: COSE content type is not '%s'",
                       PV_EVIDENCE_CONTENT_TYPE);
        goto out;
    }
    pv_cose_sign1_kid(m, &kid, &kid_len);
    if (kid == NULL || kid_len != PV_KEY_ID_LEN) {
        r = pv_err_set(e, PV_ERR_FORMAT, "evidence: COSE kid is %zu bytes, expected %d", kid_len,
                       PV_KEY_ID_LEN);
        goto out;
    }
    if (pv_cose_sign1_is_detached(m)) {
        r = pv_err_set(e, PV_ERR_FORMAT, "evidence: the COSE_Sign1 does not carry the claims");
        goto out;
    }
    pv_cose_sign1_payload(m, &payload, &payload_len);
    if ((r = decode_claims(payload, payload_len, out, e)) != PV_OK) {
        pv_evidence_free(out);
        goto out;
    }
    memcpy(out->signer_key_id, kid, PV_KEY_ID_LEN);
    *cose = m;
    m = NULL;
    r = PV_OK;
out:
    pv_cose_sign1_free(m);
    return r;
}

/* ---- verification ---- */

int pv_evidence_verify(const pv_cose_sign1 *cose, const pv_key *attestation_key, pv_err *e)
{
    uint8_t id[PV_KEY_ID_LEN];
    const uint8_t *kid;
    size_t kid_len;

    if (cose == NULL || attestation_key == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "evidence: missing argument");
    }
    const char *ct = pv_cose_sign1_content_type(cose);
    if (ct == NULL || strcmp(ct, PV_EVIDENCE_CONTENT_TYPE) != 0) {
        /* A signature the attestation key made for something else is not evidence. */
        return pv_err_set(e, PV_ERR_SIGNATURE, "evidence: the COSE_Sign1 is not evidence");
    }
    if (pv_key_id(attestation_key, id) != PV_OK) {
        return pv_err_set(e, PV_ERR_CRYPTO, "evidence: cannot compute the attestation key's ID");
    }
    pv_cose_sign1_kid(cose, &kid, &kid_len);
    if (kid == NULL || kid_len != PV_KEY_ID_LEN || !pv_ct_equal(kid, id, PV_KEY_ID_LEN)) {
        return pv_err_set(e, PV_ERR_SIGNATURE,
                          "evidence: the kid is not the ID of the attestation key");
    }
    int r = pv_cose_sign1_verify(cose, attestation_key, NULL, 0, NULL, 0, e);
    if (r == PV_ERR_SIGNATURE) {
        return pv_err_set(e, r, "evidence: signature does not verify with the attestation key");
    }
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "evidence");
    }
    return PV_OK;
}

void pv_evidence_free(pv_evidence *ev)
{
    if (ev == NULL) {
        return;
    }
    for (size_t i = 0; ev->events != NULL && i < ev->n_events; i++) {
        free(ev->events[i].data);
    }
    free(ev->events);
    free(ev->images);
    memset(ev, 0, sizeof(*ev));
}
