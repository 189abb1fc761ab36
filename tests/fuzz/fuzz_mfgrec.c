/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Manufacturing record: the envelope, COSE_Sign1, factory chain and record parsers, then
 * the whole verification (chain, signature, consistency rules, the AK public area)
 * against the record's own topmost certificate as the trust anchor, at the moment the
 * factory certificate became valid, so that seeds keep verifying after their
 * certificates expire and mutations reach the checks behind the signature. Seeds in
 * tests/fuzz/corpus/mfgrec/ (written by mfgrec_test with PV_MFGREC_CORPUS_OUT set).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/mfgrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_invariants(const pv_mfgrec *rec)
{
    if (rec->version != PV_MFGREC_VERSION || rec->identity_key == NULL ||
        rec->attestation_key == NULL || strlen(rec->device_id) != PV_DEVICE_ID_HEX_LEN ||
        (rec->rot_kind != PV_ROT_TPM && rec->rot_kind != PV_ROT_SOFTWARE) ||
        (rec->ek_cert_der == NULL) != (rec->ek_cert_len == 0) ||
        (rec->ak_tpm_public == NULL) != (rec->ak_tpm_public_len == 0) || rec->manufactured_at < 0) {
        abort(); /* decode broke one of its own guarantees */
    }
    json_t *j = pv_mfgrec_to_json(rec);
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pv_mfgrec rec, verified;
    pv_chain *chain = NULL;
    pv_trust *trust = NULL;
    pv_err e;
    int64_t not_before, not_after;
    if (pv_mfgrec_decode(data, size, &rec, &chain, &e) != PV_OK) {
        if (rec.identity_key != NULL || chain != NULL) {
            abort(); /* output set on failure */
        }
        return 0;
    }
    check_invariants(&rec);
    trust = pv_trust_new();
    if (trust == NULL ||
        pv_trust_add(trust, pv_chain_get(chain, pv_chain_count(chain) - 1)) != PV_OK ||
        pv_cert_validity(pv_chain_get(chain, 0), &not_before, &not_after) != PV_OK) {
        goto out;
    }
    if (pv_mfgrec_verify(data, size, trust, not_before, &verified, &e) == PV_OK) {
        check_invariants(&verified);
        if (rec.rot_kind != verified.rot_kind || strcmp(rec.device_id, verified.device_id) != 0) {
            abort(); /* decode and verify disagree */
        }
        pv_mfgrec_free(&verified);
    } else if (verified.identity_key != NULL) {
        abort();
    }
out:
    pv_trust_free(trust);
    pv_chain_free(chain);
    pv_mfgrec_free(&rec);
    return 0;
}
