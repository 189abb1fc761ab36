/* SPDX-License-Identifier: Apache-2.0 */
/*
 * COSE_Sign1 decoding and verification, and the CBOR layer under it, on arbitrary
 * bytes. Seeds in tests/fuzz/corpus/cose/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/cbor.h"
#include "pavise/cose.h"
#include "pavise/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Generated once per process; the seeds were signed with other keys, so verification
 * is expected to fail, but it must run to completion on whatever decodes. */
static pv_key *fuzz_key;

static void exercise_cose(const uint8_t *data, size_t size, unsigned flags)
{
    pv_cose_sign1 *m = NULL;
    pv_err e;
    if (pv_cose_sign1_decode(data, size, flags, &m, &e) != PV_OK) {
        return;
    }
    const uint8_t *p, *kid;
    size_t n, kid_len;
    const char *ct = pv_cose_sign1_content_type(m);
    pv_cose_sign1_kid(m, &kid, &kid_len);
    pv_cose_sign1_payload(m, &p, &n);
    if (pv_cose_sign1_alg(m) != PV_COSE_ALG_ES256 ||
        (ct != NULL && strlen(ct) > PV_COSE_MAX_CONTENT_TYPE) || kid_len > PV_COSE_MAX_KID ||
        (kid == NULL && kid_len != 0) || (p == NULL && n != 0) ||
        pv_cose_sign1_is_detached(m) != (p == NULL)) {
        abort(); /* decode broke one of its own guarantees */
    }
    static const uint8_t aad[] = "fuzz";
    int r = pv_cose_sign1_is_detached(m)
                ? pv_cose_sign1_verify(m, fuzz_key, data, size, aad, sizeof(aad) - 1, &e)
                : pv_cose_sign1_verify(m, fuzz_key, NULL, 0, NULL, 0, &e);
    if (r == PV_OK) {
        abort(); /* a forgery against a key nobody else has */
    }
    pv_cose_sign1_free(m);
}

/* The generic CBOR helpers over whatever the input decodes to. */
static void exercise_cbor(const uint8_t *data, size_t size)
{
    static const int64_t keys[] = {-1, 0, 1, 2, 3, 4};
    cbor_item_t *it = NULL;
    pv_err e;
    if (pv_cbor_decode(data, size, &it, &e) != PV_OK) {
        return;
    }
    if (cbor_isa_map(it)) {
        (void)pv_cbor_map_check_keys(it, keys, sizeof(keys) / sizeof(keys[0]), &e);
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            cbor_item_t *v = pv_cbor_map_get(it, keys[i]);
            char *s = NULL;
            uint64_t u;
            int64_t x;
            bool b;
            const uint8_t *p;
            size_t n;
            (void)pv_cbor_get_text(v, 64, &s, &e);
            free(s);
            (void)pv_cbor_get_uint(v, &u, &e);
            (void)pv_cbor_get_int(v, &x, &e);
            (void)pv_cbor_get_bool(v, &b, &e);
            (void)pv_cbor_get_bytes(v, &p, &n, &e);
        }
    }
    cbor_decref(&it);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_key == NULL && pv_key_generate(&fuzz_key, NULL) != PV_OK) {
        abort();
    }
    exercise_cose(data, size, 0);
    exercise_cose(data, size, PV_COSE_REQUIRE_TAG);
    exercise_cbor(data, size);
    return 0;
}
