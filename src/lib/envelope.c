/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The signed envelope of the manufacturing record and the capability file (envelope.h).
 * Reading goes outside in: the envelope and the COSE structure are parsed, the chain and
 * the signature are checked (unless the caller only decodes, for display), and only
 * then does the format's decoder see the signed payload.
 */
#include "envelope.h"

#include <inttypes.h>
#include <string.h>

#include "pavise/cose.h"

#define ENVELOPE_ITEMS 3

/* A parsed envelope: the COSE message (nothing trusted yet) and the signer chain. */
typedef struct envelope {
    pv_cose_sign1 *cose;
    pv_chain *chain;
    uint8_t kid[PV_KEY_ID_LEN];
} envelope;

/* ---- building ---- */

static int encode(const envelope_format *fmt, const uint8_t *cose, size_t cose_len,
                  const pv_chain *chain, pv_buf *out, pv_err *e)
{
    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, out);
    pv_cbor_put_array(&enc, ENVELOPE_ITEMS);
    pv_cbor_put_uint(&enc, fmt->version);
    pv_cbor_put_bytes(&enc, cose, cose_len);
    pv_cbor_put_chain(&enc, chain);
    int r = pv_cbor_enc_result(&enc);
    return r == PV_OK ? PV_OK : pv_err_set(e, r, "encoding the %s: %s", fmt->file, pv_strerror(r));
}

int envelope_build(const envelope_format *fmt, const pv_key *key, const pv_chain *chain,
                   const uint8_t *payload, size_t payload_len, pv_buf *out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    uint8_t kid[PV_KEY_ID_LEN];
    pv_buf *cose = pv_buf_new(fmt->max_size);
    /* The whole file first, so that a failure leaves out as it was. */
    pv_buf *file = pv_buf_new(fmt->max_size);
    if (cose == NULL || file == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (pv_key_id(key, kid) != PV_OK) {
        r = pv_err_set(e, PV_ERR_CRYPTO, "%s key ID", fmt->signer);
        goto out;
    }
    r = pv_cose_sign1_create(key, kid, sizeof(kid), fmt->content_type, payload, payload_len, NULL,
                             0, 0, cose, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "signing the %s", fmt->payload);
        goto out;
    }
    if ((r = encode(fmt, pv_buf_data(cose), pv_buf_len(cose), chain, file, e)) != PV_OK) {
        goto out;
    }
    if ((r = pv_buf_append(out, pv_buf_data(file), pv_buf_len(file))) != PV_OK) {
        r = pv_err_set(e, r, "%s: %s", fmt->file, pv_strerror(r));
        goto out;
    }
    r = PV_OK;
out:
    pv_buf_free(file);
    pv_buf_free(cose);
    return r;
}

/* ---- parsing ---- */

static void envelope_free(envelope *env)
{
    pv_cose_sign1_free(env->cose);
    pv_chain_free(env->chain);
    memset(env, 0, sizeof(*env));
}

/* The COSE kid must be the key ID of the leaf certificate: the file names its signer. */
static int check_kid(const envelope_format *fmt, envelope *env, pv_err *e)
{
    const uint8_t *kid;
    size_t kid_len;
    uint8_t id[PV_KEY_ID_LEN];
    pv_key *leaf = NULL;
    pv_cose_sign1_kid(env->cose, &kid, &kid_len);
    if (kid_len != PV_KEY_ID_LEN) {
        return pv_err_set(e, PV_ERR_FORMAT, "COSE kid is %zu bytes, expected %d", kid_len,
                          PV_KEY_ID_LEN);
    }
    int r = pv_cert_public_key(pv_chain_get(env->chain, 0), &leaf, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "%s certificate", fmt->signer);
    }
    r = pv_key_id(leaf, id);
    pv_key_free(leaf);
    if (r != PV_OK || !pv_ct_equal(id, kid, PV_KEY_ID_LEN)) {
        return pv_err_set(e, PV_ERR_FORMAT, "COSE kid is not the key ID of the %s certificate",
                          fmt->signer);
    }
    memcpy(env->kid, kid, PV_KEY_ID_LEN);
    return PV_OK;
}

/* The COSE_Sign1 in the envelope's second item, with the format's content type and
 * its payload attached. */
static int parse_cose(const envelope_format *fmt, const cbor_item_t *item, envelope *env, pv_err *e)
{
    const uint8_t *cose;
    size_t cose_len;
    int r = pv_cbor_get_bytes(item, &cose, &cose_len, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "%s: COSE_Sign1", fmt->file);
    }
    if ((r = pv_cose_sign1_decode(cose, cose_len, PV_COSE_REQUIRE_TAG, &env->cose, e)) != PV_OK) {
        return pv_err_wrap(e, r, "%s", fmt->file);
    }
    const char *ct = pv_cose_sign1_content_type(env->cose);
    if (ct == NULL || strcmp(ct, fmt->content_type) != 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s: COSE content type is not '%s'", fmt->file,
                          fmt->content_type);
    }
    if (pv_cose_sign1_is_detached(env->cose)) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s: the COSE_Sign1 does not carry the %s", fmt->file,
                          fmt->payload);
    }
    return PV_OK;
}

static int parse(const envelope_format *fmt, const uint8_t *p, size_t len, envelope *env, pv_err *e)
{
    cbor_item_t *root = NULL;
    uint64_t version;
    int r;
    memset(env, 0, sizeof(*env));
    if (p == NULL || len == 0) {
        return pv_err_set(e, PV_ERR_TRUNCATED, "%s is empty", fmt->file);
    }
    /* Before anything parses it: the decoder allocates in proportion to the input. */
    if (len > fmt->max_size) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "%s is %zu bytes, at most %zu allowed", fmt->file,
                          len, fmt->max_size);
    }
    if ((r = pv_cbor_decode(p, len, &root, e)) != PV_OK) {
        return pv_err_wrap(e, r, "%s", fmt->file);
    }
    if (!cbor_isa_array(root) || cbor_array_size(root) != ENVELOPE_ITEMS) {
        r = pv_err_set(e, PV_ERR_FORMAT,
                       "%s: expected an array [version, COSE_Sign1, certificates]", fmt->file);
        goto out;
    }
    cbor_item_t **items = cbor_array_handle(root);
    if ((r = pv_cbor_get_uint(items[0], &version, e)) != PV_OK) {
        pv_err_wrap(e, r, "%s: format version", fmt->file);
        goto out;
    }
    if (version != fmt->version) {
        r = pv_err_set(e, PV_ERR_UNSUPPORTED,
                       "%s format version %" PRIu64 " is not supported (expected %" PRIu64 ")",
                       fmt->file, version, fmt->version);
        goto out;
    }
    if ((r = parse_cose(fmt, items[1], env, e)) != PV_OK) {
        goto out;
    }
    if ((r = pv_cbor_get_chain(items[2], &env->chain, e)) != PV_OK) {
        pv_err_wrap(e, r, "%s: %s chain", fmt->file, fmt->signer);
        goto out;
    }
    if ((r = check_kid(fmt, env, e)) != PV_OK) {
        if (fmt->kid_in_file) {
            pv_err_wrap(e, r, "%s", fmt->file);
        }
        goto out;
    }
    r = PV_OK;
out:
    cbor_decref(&root);
    if (r != PV_OK) {
        envelope_free(env);
    }
    return r;
}

/* ---- reading ---- */

/* The chain leads to trust, and the leaf's key verifies the signature. */
static int check_signature(const envelope_format *fmt, const envelope *env, const pv_trust *trust,
                           int64_t at, unsigned flags, pv_err *e)
{
    pv_key *leaf = NULL;
    int r = pv_chain_verify(env->chain, trust, at, flags, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "%s", fmt->chain_ctx);
        goto out;
    }
    if ((r = pv_cert_public_key(pv_chain_get(env->chain, 0), &leaf, e)) != PV_OK) {
        pv_err_wrap(e, r, "%s", fmt->leaf_ctx);
        goto out;
    }
    if (pv_cose_sign1_verify(env->cose, leaf, NULL, 0, NULL, 0, e) != PV_OK) {
        r = pv_err_set(e, PV_ERR_SIGNATURE,
                       "%s signature does not verify with the %s certificate's key", fmt->payload,
                       fmt->signer);
        goto out;
    }
    r = PV_OK;
out:
    pv_key_free(leaf);
    return r;
}

/* Hands the payload to the format's decoder; out is released again on failure. */
static int decode_payload(const envelope_format *fmt, const envelope *env, void *out, pv_err *e)
{
    const uint8_t *p;
    size_t n;
    cbor_item_t *item = NULL;
    pv_cose_sign1_payload(env->cose, &p, &n);
    int r = pv_cbor_decode(p, n, &item, e);
    if (r == PV_OK) {
        r = fmt->decode(item, env->kid, out, e);
        cbor_decref(&item); /* libcbor's decref does not accept NULL */
    }
    if (r != PV_OK) {
        fmt->release(out);
        return pv_err_wrap(e, r, "%s", fmt->payload);
    }
    return PV_OK;
}

int envelope_decode(const envelope_format *fmt, const uint8_t *p, size_t len, void *out,
                    pv_chain **chain, pv_err *e)
{
    envelope env;
    if (chain != NULL) {
        *chain = NULL;
    }
    int r = parse(fmt, p, len, &env, e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = decode_payload(fmt, &env, out, e)) == PV_OK && chain != NULL) {
        *chain = env.chain;
        env.chain = NULL;
    }
    envelope_free(&env);
    return r;
}

int envelope_verify(const envelope_format *fmt, const uint8_t *p, size_t len, const pv_trust *trust,
                    int64_t at, unsigned flags, void *out, pv_err *e)
{
    envelope env;
    int r = parse(fmt, p, len, &env, e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = check_signature(fmt, &env, trust, at, flags, e)) == PV_OK) {
        r = decode_payload(fmt, &env, out, e);
    }
    envelope_free(&env);
    return r;
}
