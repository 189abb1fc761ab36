/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device capability file; the format is described in docs/formats/capability.md.
 *
 * A file is [version, bstr(COSE_Sign1), [cert, ...]], the envelope it shares with the
 * manufacturing record (envelope.c). Verification goes outside in: the envelope and the
 * COSE structure are parsed, the signer chain and the signature are checked, and only
 * then is the signed payload decoded field by field and matched against this device and
 * the time.
 */
#include "pavise/capability.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/cbor.h"
#include "pavise/platform.h"

#include "envelope.h"

/* Keys of the payload map. */
enum {
    K_VERSION = 1,
    K_DEVICE_ID = 2,
    K_CAPABILITIES = 3,
    K_ISSUED_AT = 4,
    K_DEV_ROOTS = 5,
    K_EXPIRES_AT = 6,
};

static const int64_t payload_keys[] = {K_VERSION,   K_DEVICE_ID, K_CAPABILITIES,
                                       K_ISSUED_AT, K_DEV_ROOTS, K_EXPIRES_AT};

#define NAME_MAX_LEN 64 /* a capability name as the wire may carry it */

static int decode_fields(const cbor_item_t *map, const uint8_t kid[PV_KEY_ID_LEN], void *out,
                         pv_err *e);
static void release_capability(void *cap);

static const envelope_format capability_envelope = {
    .version = PV_CAPABILITY_VERSION,
    .max_size = PV_CAPABILITY_MAX_SIZE,
    .content_type = PV_CAPABILITY_CONTENT_TYPE,
    .decode = decode_fields,
    .release = release_capability,
    .file = "capability file",
    .payload = "capability",
    .signer = "signer",
    .chain_ctx = "capability signer chain",
    .leaf_ctx = "capability signer certificate",
    .kid_in_file = true,
};

/* The capabilities this version knows, in the order writers emit them. */
static const struct {
    uint32_t bit;
    const char *name;
} cap_names[] = {
    {PV_CAP_APP_DEVELOPMENT, "AppDevelopment"},
};

#define CAP_COUNT (sizeof(cap_names) / sizeof(cap_names[0]))

const char *pv_capability_name(uint32_t cap)
{
    for (size_t i = 0; i < CAP_COUNT; i++) {
        if (cap_names[i].bit == cap) {
            return cap_names[i].name;
        }
    }
    return NULL;
}

int pv_capability_parse_name(const char *name, uint32_t *cap)
{
    for (size_t i = 0; name != NULL && i < CAP_COUNT; i++) {
        if (strcmp(cap_names[i].name, name) == 0) {
            *cap = cap_names[i].bit;
            return PV_OK;
        }
    }
    return PV_ERR_UNSUPPORTED;
}

static bool valid_device_id(const char *s)
{
    size_t n = 0;
    for (; s != NULL && n <= PV_CAPABILITY_DEVICE_ID_LEN && s[n] != '\0'; n++) {
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f'))) {
            return false;
        }
    }
    return s != NULL && n == PV_CAPABILITY_DEVICE_ID_LEN;
}

/* ---- the development roots ---- */

/* Checks a list of development roots (CA certificates, none twice, at most the limit);
 * with trust_out, also puts them into a new trust set. code is what a broken rule
 * returns: the caller's argument (PV_ERR_INVALID_ARG) or the file (PV_ERR_FORMAT). */
static int roots_check(const pv_chain *roots, int code, pv_trust **trust_out, pv_err *e)
{
    size_t n = roots != NULL ? pv_chain_count(roots) : 0;
    pv_trust *trust = NULL;
    if (n > PV_CAPABILITY_MAX_ROOTS) {
        return pv_err_set(e, code == PV_ERR_INVALID_ARG ? code : PV_ERR_TOO_LARGE,
                          "%zu development roots, at most %d allowed", n, PV_CAPABILITY_MAX_ROOTS);
    }
    if (trust_out != NULL && (trust = pv_trust_new()) == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        pv_cert *c = pv_chain_get(roots, i);
        uint8_t fp[PV_SHA256_LEN], other[PV_SHA256_LEN];
        char subject[256];
        pv_cert_subject(c, subject, sizeof(subject));
        /* Anchors for image chains: only a CA issues the code-signing leaves under it, as
         * `pavise-server image-root add` requires. */
        if (!pv_cert_is_ca(c)) {
            pv_trust_free(trust);
            return pv_err_set(e, code, "development root %zu (%s) is not a CA certificate", i + 1,
                              subject);
        }
        pv_cert_fingerprint(c, fp);
        for (size_t j = 0; j < i; j++) {
            pv_cert_fingerprint(pv_chain_get(roots, j), other);
            if (memcmp(fp, other, sizeof(fp)) == 0) {
                pv_trust_free(trust);
                return pv_err_set(e, code, "development root %zu (%s) is listed twice", i + 1,
                                  subject);
            }
        }
        if (trust != NULL && pv_trust_add(trust, c) != PV_OK) {
            pv_trust_free(trust);
            return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        }
    }
    if (trust_out != NULL) {
        *trust_out = trust;
    }
    return PV_OK;
}

/* ---- creating ---- */

/* The signer: a private key, a chain of 1..8 whose leaf holds it and carries the
 * capability-signing usage and is valid at `at`. The leaf is checked on its own (as its
 * own anchor): who the device trusts above it is the device's business. */
static int check_signer(const pv_key *key, const pv_chain *chain, int64_t at, pv_err *e)
{
    pv_key *leaf_key = NULL;
    pv_chain *leaf_only = NULL;
    pv_trust *self = NULL;
    size_t n = chain != NULL ? pv_chain_count(chain) : 0;
    int r = PV_ERR_INTERNAL;
    if (key == NULL || !pv_key_has_private(key)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no capability signer private key");
    }
    if (n == 0 || n > PV_CHAIN_MAX_CERTS) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "the signer chain must hold 1 to %d certificates",
                          PV_CHAIN_MAX_CERTS);
    }
    pv_cert *leaf = pv_chain_get(chain, 0);
    if ((r = pv_cert_public_key(leaf, &leaf_key, e)) != PV_OK) {
        return pv_err_wrap(e, PV_ERR_INVALID_ARG, "signer certificate");
    }
    bool same = pv_key_equal_public(leaf_key, key);
    pv_key_free(leaf_key);
    if (!same) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "the signer certificate does not hold the signer key");
    }
    leaf_only = pv_chain_new();
    self = pv_trust_new();
    if (leaf_only == NULL || self == NULL || pv_chain_add(leaf_only, leaf) != PV_OK ||
        pv_trust_add(self, leaf) != PV_OK) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (pv_chain_verify(leaf_only, self, at, PV_VERIFY_CAPABILITY_SIGNING, e) != PV_OK) {
        r = pv_err_wrap(e, PV_ERR_INVALID_ARG, "signer certificate");
        goto out;
    }
    r = PV_OK;
out:
    pv_trust_free(self);
    pv_chain_free(leaf_only);
    return r;
}

static int check_create_args(const char *device_id, uint32_t caps, const pv_chain *dev_roots,
                             int64_t issued_at, int64_t expires_at, pv_err *e)
{
    if (!valid_device_id(device_id)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "device ID is not %d lowercase hex digits",
                          PV_CAPABILITY_DEVICE_ID_LEN);
    }
    if (caps == 0 || (caps & ~PV_CAP_ALL) != 0) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "capabilities 0x%x: none, or unknown ones",
                          (unsigned)caps);
    }
    if (issued_at < 0) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "issue time is negative");
    }
    if (expires_at != 0 && expires_at <= issued_at) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "expiry time is not after the issue time");
    }
    int r = roots_check(dev_roots, PV_ERR_INVALID_ARG, NULL, e);
    if (r != PV_OK) {
        return r;
    }
    if ((caps & PV_CAP_APP_DEVELOPMENT) && (dev_roots == NULL || pv_chain_count(dev_roots) == 0)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "AppDevelopment needs at least one development root");
    }
    return PV_OK;
}

static int encode_payload(const char *device_id, uint32_t caps, const pv_chain *dev_roots,
                          int64_t issued_at, int64_t expires_at, pv_buf *out, pv_err *e)
{
    pv_cbor_enc enc;
    size_t ncaps = 0, nroots = dev_roots != NULL ? pv_chain_count(dev_roots) : 0;
    for (size_t i = 0; i < CAP_COUNT; i++) {
        ncaps += (caps & cap_names[i].bit) != 0;
    }
    pv_cbor_enc_init(&enc, out);
    pv_cbor_put_map(&enc, expires_at != 0 ? 6 : 5);
    pv_cbor_put_uint(&enc, K_VERSION);
    pv_cbor_put_uint(&enc, PV_CAPABILITY_VERSION);
    pv_cbor_put_uint(&enc, K_DEVICE_ID);
    pv_cbor_put_text(&enc, device_id);
    pv_cbor_put_uint(&enc, K_CAPABILITIES);
    pv_cbor_put_array(&enc, ncaps);
    for (size_t i = 0; i < CAP_COUNT; i++) {
        if (caps & cap_names[i].bit) {
            pv_cbor_put_text(&enc, cap_names[i].name);
        }
    }
    pv_cbor_put_uint(&enc, K_ISSUED_AT);
    pv_cbor_put_uint(&enc, (uint64_t)issued_at);
    pv_cbor_put_uint(&enc, K_DEV_ROOTS);
    pv_cbor_put_array(&enc, nroots);
    for (size_t i = 0; i < nroots; i++) {
        const uint8_t *der;
        size_t len;
        pv_cert_der(pv_chain_get(dev_roots, i), &der, &len);
        pv_cbor_put_bytes(&enc, der, len);
    }
    if (expires_at != 0) {
        pv_cbor_put_uint(&enc, K_EXPIRES_AT);
        pv_cbor_put_uint(&enc, (uint64_t)expires_at);
    }
    int r = pv_cbor_enc_result(&enc);
    return r == PV_OK ? PV_OK : pv_err_set(e, r, "encoding the capability: %s", pv_strerror(r));
}

int pv_capability_create(const pv_key *key, const pv_chain *chain, const char *device_id,
                         uint32_t caps, const pv_chain *dev_roots, int64_t issued_at,
                         int64_t expires_at, pv_buf *out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    pv_buf *payload = pv_buf_new(PV_CAPABILITY_MAX_SIZE);
    if (payload == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (out == NULL) {
        r = pv_err_set(e, PV_ERR_INVALID_ARG, "no output");
        goto out;
    }
    if ((r = check_create_args(device_id, caps, dev_roots, issued_at, expires_at, e)) != PV_OK ||
        (r = check_signer(key, chain, issued_at, e)) != PV_OK ||
        (r = encode_payload(device_id, caps, dev_roots, issued_at, expires_at, payload, e)) !=
            PV_OK) {
        goto out;
    }
    r = envelope_build(&capability_envelope, key, chain, pv_buf_data(payload), pv_buf_len(payload),
                       out, e);
out:
    pv_buf_free(payload);
    return r;
}

/* ---- parsing ---- */

static int get_time(const cbor_item_t *map, int64_t key, const char *what, int64_t *out, pv_err *e)
{
    uint64_t u;
    int r = pv_cbor_get_uint(pv_cbor_map_get(map, key), &u, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "%s", what);
    }
    if (u > (uint64_t)INT64_MAX) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s is out of range", what);
    }
    *out = (int64_t)u;
    return PV_OK;
}

static int get_device_id(const cbor_item_t *map, char out[PV_CAPABILITY_DEVICE_ID_LEN + 1],
                         pv_err *e)
{
    char *s = NULL;
    int r = pv_cbor_get_text(pv_cbor_map_get(map, K_DEVICE_ID), PV_CAPABILITY_DEVICE_ID_LEN, &s, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r == PV_ERR_TOO_LARGE ? PV_ERR_FORMAT : r, "device ID");
    }
    bool ok = valid_device_id(s);
    if (ok) {
        memcpy(out, s, PV_CAPABILITY_DEVICE_ID_LEN + 1);
    }
    free(s);
    return ok ? PV_OK
              : pv_err_set(e, PV_ERR_FORMAT, "device ID is not %d lowercase hex digits",
                           PV_CAPABILITY_DEVICE_ID_LEN);
}

static int get_caps(const cbor_item_t *map, uint32_t *out, pv_err *e)
{
    const cbor_item_t *arr = pv_cbor_map_get(map, K_CAPABILITIES);
    uint32_t caps = 0;
    if (arr == NULL || !cbor_isa_array(arr) || !cbor_array_is_definite(arr)) {
        return pv_err_set(e, PV_ERR_FORMAT, "capabilities: expected an array of names");
    }
    size_t n = cbor_array_size(arr);
    if (n == 0 || n > PV_CAPABILITY_MAX_NAMES) {
        return pv_err_set(e, n == 0 ? PV_ERR_FORMAT : PV_ERR_TOO_LARGE,
                          "capabilities: %zu names, expected 1 to %d", n, PV_CAPABILITY_MAX_NAMES);
    }
    for (size_t i = 0; i < n; i++) {
        char *name = NULL;
        uint32_t bit = 0;
        int r = pv_cbor_get_text(cbor_array_handle(arr)[i], NAME_MAX_LEN, &name, e);
        if (r != PV_OK) {
            return pv_err_wrap(e, r, "capability %zu", i + 1);
        }
        if (pv_capability_parse_name(name, &bit) != PV_OK) {
            /* Refused, not skipped: a file granting something this device cannot judge
             * must not pass as one granting less. */
            r = pv_err_set(e, PV_ERR_UNSUPPORTED, "capability '%s' is not supported", name);
        } else if (caps & bit) {
            r = pv_err_set(e, PV_ERR_FORMAT, "capability '%s' is listed twice", name);
        }
        free(name);
        if (r != PV_OK) {
            return r;
        }
        caps |= bit;
    }
    *out = caps;
    return PV_OK;
}

static int get_roots(const cbor_item_t *map, pv_capability *cap, pv_err *e)
{
    const cbor_item_t *arr = pv_cbor_map_get(map, K_DEV_ROOTS);
    pv_chain *list = NULL;
    int r = PV_ERR_INTERNAL;
    if (arr == NULL || !cbor_isa_array(arr) || !cbor_array_is_definite(arr)) {
        return pv_err_set(e, PV_ERR_FORMAT, "development roots: expected an array of certificates");
    }
    size_t n = cbor_array_size(arr);
    if (n > PV_CAPABILITY_MAX_ROOTS) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "%zu development roots, at most %d allowed", n,
                          PV_CAPABILITY_MAX_ROOTS);
    }
    if ((list = pv_chain_new()) == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const uint8_t *der;
        size_t len;
        pv_cert *c = NULL;
        if ((r = pv_cbor_get_bytes(cbor_array_handle(arr)[i], &der, &len, e)) != PV_OK ||
            (r = pv_cert_from_der(der, len, &c, e)) != PV_OK) {
            pv_err_wrap(e, r, "development root %zu", i + 1);
            goto out;
        }
        r = pv_chain_add(list, c);
        pv_cert_free(c);
        if (r != PV_OK) {
            r = pv_err_set(e, r, "development root %zu: %s", i + 1, pv_strerror(r));
            goto out;
        }
    }
    if ((r = roots_check(list, PV_ERR_FORMAT, &cap->dev_roots, e)) != PV_OK) {
        goto out;
    }
    cap->dev_root_list = list;
    list = NULL;
    r = PV_OK;
out:
    pv_chain_free(list);
    return r;
}

/* The payload map into the pv_capability out, signed by kid (capability_envelope's
 * decoder). */
static int decode_fields(const cbor_item_t *map, const uint8_t kid[PV_KEY_ID_LEN], void *out,
                         pv_err *e)
{
    pv_capability *cap = out;
    uint64_t u;
    int r;
    if (!cbor_isa_map(map)) {
        return pv_err_set(e, PV_ERR_FORMAT, "expected a map");
    }
    if ((r = pv_cbor_map_check_keys(map, payload_keys,
                                    sizeof(payload_keys) / sizeof(payload_keys[0]), e)) != PV_OK) {
        return r;
    }
    if ((r = pv_cbor_get_uint(pv_cbor_map_get(map, K_VERSION), &u, e)) != PV_OK) {
        return pv_err_wrap(e, r, "version");
    }
    if (u != PV_CAPABILITY_VERSION) {
        return pv_err_set(e, PV_ERR_UNSUPPORTED, "version %" PRIu64 " is not supported", u);
    }
    cap->version = PV_CAPABILITY_VERSION;
    if ((r = get_device_id(map, cap->device_id, e)) != PV_OK ||
        (r = get_caps(map, &cap->caps, e)) != PV_OK ||
        (r = get_time(map, K_ISSUED_AT, "issue time", &cap->issued_at, e)) != PV_OK ||
        (r = get_roots(map, cap, e)) != PV_OK) {
        return r;
    }
    if (pv_cbor_map_get(map, K_EXPIRES_AT) != NULL) {
        if ((r = get_time(map, K_EXPIRES_AT, "expiry time", &cap->expires_at, e)) != PV_OK) {
            return r;
        }
        if (cap->expires_at <= cap->issued_at) {
            return pv_err_set(e, PV_ERR_FORMAT, "expiry time is not after the issue time");
        }
    }
    if ((cap->caps & PV_CAP_APP_DEVELOPMENT) && pv_chain_count(cap->dev_root_list) == 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "AppDevelopment is granted without a development root");
    }
    memcpy(cap->signer_key_id, kid, PV_KEY_ID_LEN);
    return PV_OK;
}

static void release_capability(void *cap)
{
    pv_capability_free(cap);
}

int pv_capability_decode(const uint8_t *p, size_t len, pv_capability *out, pv_chain **chain,
                         pv_err *e)
{
    if (chain != NULL) {
        *chain = NULL;
    }
    if (out == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no output");
    }
    memset(out, 0, sizeof(*out));
    return envelope_decode(&capability_envelope, p, len, out, chain, e);
}

int pv_capability_verify(const uint8_t *p, size_t len, const pv_trust *update_root,
                         const char *device_id, int64_t now, pv_capability *out, pv_err *e)
{
    if (out == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no output");
    }
    memset(out, 0, sizeof(*out));
    if (update_root == NULL || pv_trust_count(update_root) == 0) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no update root");
    }
    if (!valid_device_id(device_id)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "this device's ID is not %d lowercase hex digits",
                          PV_CAPABILITY_DEVICE_ID_LEN);
    }
    int r = envelope_verify(&capability_envelope, p, len, update_root, now,
                            PV_VERIFY_CAPABILITY_SIGNING | PV_VERIFY_ALL_USED, out, e);
    if (r != PV_OK) {
        return r;
    }
    if (strcmp(out->device_id, device_id) != 0) {
        r = pv_err_set(e, PV_ERR_UNTRUSTED, "capability is for device %s, not this device (%s)",
                       out->device_id, device_id);
        goto out;
    }
    if (out->expires_at != 0 && now >= out->expires_at) {
        char when[PV_TIME_TEXT_LEN + 1];
        if (!pv_time_format(out->expires_at, when)) {
            snprintf(when, sizeof(when), "?");
        }
        r = pv_err_set(e, PV_ERR_EXPIRED, "capability for device %s expired at %s", out->device_id,
                       when);
        goto out;
    }
    r = PV_OK;
out:
    if (r != PV_OK) {
        pv_capability_free(out);
    }
    return r;
}

void pv_capability_free(pv_capability *cap)
{
    if (cap == NULL) {
        return;
    }
    pv_trust_free(cap->dev_roots);
    pv_chain_free(cap->dev_root_list);
    memset(cap, 0, sizeof(*cap));
}
