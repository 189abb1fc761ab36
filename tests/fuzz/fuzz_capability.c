/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Device capability file: the envelope, COSE_Sign1, signer chain and payload parsers,
 * then the whole verification (chain with the capability-signing usage, signature,
 * payload rules, device ID, expiry) against the file's own topmost certificate as the
 * update root, for the device the file names, at the moment the signer certificate
 * became valid, so that seeds keep verifying after their certificates expire and
 * mutations reach the checks behind the signature. Seeds in
 * tests/fuzz/corpus/capability/ (written by capability_test with PV_CAPABILITY_CORPUS_OUT
 * set).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/capability.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_invariants(const pv_capability *cap)
{
    size_t roots = pv_chain_count(cap->dev_root_list);
    if (cap->version != PV_CAPABILITY_VERSION ||
        strlen(cap->device_id) != PV_CAPABILITY_DEVICE_ID_LEN || cap->caps == 0 ||
        (cap->caps & ~PV_CAP_ALL) != 0 || cap->issued_at < 0 ||
        (cap->expires_at != 0 && cap->expires_at <= cap->issued_at) ||
        roots > PV_CAPABILITY_MAX_ROOTS || pv_trust_count(cap->dev_roots) != roots ||
        ((cap->caps & PV_CAP_APP_DEVELOPMENT) && roots == 0)) {
        abort(); /* decode broke one of its own guarantees */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pv_capability cap, verified;
    pv_chain *chain = NULL;
    pv_trust *trust = NULL;
    pv_err e;
    int64_t not_before, not_after;
    if (pv_capability_decode(data, size, &cap, &chain, &e) != PV_OK) {
        if (cap.dev_roots != NULL || cap.dev_root_list != NULL || chain != NULL) {
            abort(); /* output set on failure */
        }
        return 0;
    }
    check_invariants(&cap);
    trust = pv_trust_new();
    if (trust == NULL ||
        pv_trust_add(trust, pv_chain_get(chain, pv_chain_count(chain) - 1)) != PV_OK ||
        pv_cert_validity(pv_chain_get(chain, 0), &not_before, &not_after) != PV_OK) {
        goto out;
    }
    if (pv_capability_verify(data, size, trust, cap.device_id, not_before, &verified, &e) ==
        PV_OK) {
        check_invariants(&verified);
        if (cap.caps != verified.caps || strcmp(cap.device_id, verified.device_id) != 0 ||
            cap.issued_at != verified.issued_at || cap.expires_at != verified.expires_at) {
            abort(); /* decode and verify disagree */
        }
        pv_capability_free(&verified);
    } else if (verified.dev_roots != NULL || verified.dev_root_list != NULL) {
        abort();
    }
out:
    pv_trust_free(trust);
    pv_chain_free(chain);
    pv_capability_free(&cap);
    return 0;
}
