/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Attestation evidence: pv_evidence_decode on arbitrary bytes; whatever decodes is
 * checked against the decoder's guarantees, verified against the fixed test key the
 * seeds are signed with (so mutations of signed fields must fail there), and signed
 * again with another key: anything decode accepts, sign must accept, and the result
 * must decode to the same claims. Seeds in tests/fuzz/corpus/evidence/ (written by
 * evidence_test with PV_EVIDENCE_CORPUS_OUT set).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/evidence.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The public half of the test-only key in tests/unit/lib/evidence_test.c. */
static const uint8_t fixed_spki[] = {
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04, 0x03, 0x9b, 0x6e, 0x3c, 0x23,
    0xb2, 0xea, 0xb9, 0x8c, 0xaf, 0xe7, 0xb9, 0xb4, 0x86, 0xcc, 0xf7, 0x1a, 0x39, 0x4d, 0x33, 0x1f,
    0xf1, 0xa6, 0xe5, 0xec, 0x2e, 0xc3, 0x29, 0x0f, 0x23, 0xde, 0xaa, 0x82, 0x22, 0x84, 0xcd, 0x9e,
    0x6c, 0x4c, 0x7f, 0xe5, 0xd9, 0x40, 0x22, 0x75, 0x34, 0x6a, 0xe4, 0xbc, 0xdb, 0x24, 0x83, 0xec,
    0x60, 0x87, 0xc9, 0xe9, 0xa6, 0x5a, 0x8b, 0xcf, 0xc4, 0xf2, 0xf4,
};

static pv_key *fixed_key;  /* verifies the seeds */
static pv_key *resign_key; /* generated once per process */

static int key_signer(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[PV_ES256_SIG_LEN],
                      pv_err *e)
{
    return pv_key_sign_es256(ctx, msg, len, sig, e);
}

static void check_invariants(const pv_evidence *ev)
{
    if (strlen(ev->device_id) != PV_DEVICE_ID_HEX_LEN || ev->issued_at < 0 ||
        (ev->rot_kind != PV_ROT_TPM && ev->rot_kind != PV_ROT_SOFTWARE) ||
        ev->n_events > PV_ROT_MAX_EVENTS || (ev->events == NULL) != (ev->n_events == 0) ||
        ev->n_images > PV_EVIDENCE_MAX_IMAGES || (ev->images == NULL) != (ev->n_images == 0)) {
        abort(); /* decode broke one of its own guarantees */
    }
    for (size_t i = 0; i < ev->n_events; i++) {
        const pv_rot_event *x = &ev->events[i];
        size_t n = strlen(x->type);
        if (n == 0 || n > PV_ROT_MAX_EVENT_TYPE || x->data_len > PV_ROT_MAX_EVENT_DATA ||
            (x->data == NULL) != (x->data_len == 0)) {
            abort();
        }
    }
    for (size_t i = 0; i < ev->n_images; i++) {
        const pv_evidence_image *img = &ev->images[i];
        size_t n = strlen(img->version);
        if ((img->kind != PV_EVIDENCE_IMAGE_OS && img->kind != PV_EVIDENCE_IMAGE_APP) || n == 0 ||
            n > PV_EVIDENCE_MAX_VERSION) {
            abort();
        }
    }
}

static bool same_claims(const pv_evidence *a, const pv_evidence *b)
{
    if (memcmp(a->nonce, b->nonce, PV_NONCE_LEN) != 0 || strcmp(a->device_id, b->device_id) != 0 ||
        a->issued_at != b->issued_at || a->development != b->development ||
        a->boot_count != b->boot_count || a->rot_kind != b->rot_kind ||
        memcmp(a->binding, b->binding, PV_SHA256_LEN) != 0 ||
        memcmp(a->measurement, b->measurement, PV_SHA256_LEN) != 0 || a->n_events != b->n_events ||
        a->n_images != b->n_images) {
        return false;
    }
    for (size_t i = 0; i < a->n_events; i++) {
        const pv_rot_event *x = &a->events[i], *y = &b->events[i];
        if (strcmp(x->type, y->type) != 0 || memcmp(x->digest, y->digest, PV_SHA256_LEN) != 0 ||
            x->data_len != y->data_len ||
            (x->data_len > 0 && memcmp(x->data, y->data, x->data_len) != 0)) {
            return false;
        }
    }
    for (size_t i = 0; i < a->n_images; i++) {
        const pv_evidence_image *x = &a->images[i], *y = &b->images[i];
        if (x->kind != y->kind || memcmp(x->image_id, y->image_id, PV_UUID_LEN) != 0 ||
            memcmp(x->component_id, y->component_id, PV_UUID_LEN) != 0 ||
            strcmp(x->version, y->version) != 0 ||
            memcmp(x->manifest_digest, y->manifest_digest, PV_SHA256_LEN) != 0) {
            return false;
        }
    }
    return true;
}

/* Signs ev with resign_key and decodes the result, which must succeed and agree. */
static void resign(const pv_evidence *ev)
{
    pv_buf *out = pv_buf_new(PV_EVIDENCE_MAX_SIZE);
    pv_evidence again;
    pv_cose_sign1 *cose = NULL;
    pv_err e;
    if (out == NULL) {
        return;
    }
    /* What decode accepted came in at most PV_EVIDENCE_MAX_SIZE bytes, and the encoder
     * writes every item in its shortest form, so it cannot grow past the limit. */
    int r = pv_evidence_sign(ev, resign_key, key_signer, resign_key, out, &e);
    if (r == PV_OK) {
        r = pv_evidence_decode(pv_buf_data(out), pv_buf_len(out), &again, &cose, &e);
    }
    if (r == PV_ERR_NOMEM) {
        pv_buf_free(out);
        return;
    }
    if (r != PV_OK) {
        abort(); /* sign and decode disagree about what valid evidence is */
    }
    if (!same_claims(ev, &again) || pv_evidence_verify(cose, resign_key, &e) != PV_OK) {
        abort();
    }
    pv_cose_sign1_free(cose);
    pv_evidence_free(&again);
    pv_buf_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pv_evidence ev;
    pv_cose_sign1 *cose = NULL;
    pv_err e;
    if (fixed_key == NULL &&
        (pv_key_from_spki_der(fixed_spki, sizeof(fixed_spki), &fixed_key, NULL) != PV_OK ||
         pv_key_generate(&resign_key, NULL) != PV_OK)) {
        abort();
    }
    if (pv_evidence_decode(data, size, &ev, &cose, &e) != PV_OK) {
        if (cose != NULL || ev.events != NULL || ev.images != NULL) {
            abort(); /* output set on failure */
        }
        return 0;
    }
    check_invariants(&ev);
    /* The verdict depends on the input; it must only be reached without a crash. A
     * verify that passes against a key whose kid the message does not carry would be a
     * forgery. */
    if (pv_evidence_verify(cose, fixed_key, &e) == PV_OK) {
        uint8_t id[PV_KEY_ID_LEN];
        if (pv_key_id(fixed_key, id) != PV_OK || memcmp(id, ev.signer_key_id, PV_KEY_ID_LEN) != 0) {
            abort();
        }
    }
    if (pv_evidence_verify(cose, resign_key, &e) == PV_OK) {
        abort(); /* a key nobody else has */
    }
    resign(&ev);
    pv_cose_sign1_free(cose);
    pv_evidence_free(&ev);
    return 0;
}
