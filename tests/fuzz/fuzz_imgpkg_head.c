/* SPDX-License-Identifier: Apache-2.0 */
/* Image package heads, as the service receives them: header, COSE_Sign1, manifest and
 * certificate chain with no payload; then the chain and the signature, anchored at the
 * head's own last certificate (so both the refusal and the signature paths run); then
 * the head and the manifest digest of what was opened. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/imgpkg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pv_imgpkg *pkg = NULL;
    pv_trust *own = NULL;
    pv_err e;
    if (pv_imgpkg_open_head(data, size, &pkg, &e) != PV_OK) {
        return 0;
    }
    const pv_chain *chain = pv_imgpkg_chain(pkg);
    if ((own = pv_trust_new()) != NULL &&
        pv_trust_add(own, pv_chain_get(chain, pv_chain_count(chain) - 1)) == PV_OK) {
        int r = pv_imgpkg_verify_head(pkg, own, &e);
        (void)r;
    }
    if (pv_imgpkg_is_verified(pkg)) {
        abort(); /* a head has no payload: it is never verified for extraction */
    }
    uint8_t digest[PV_SHA256_LEN];
    (void)pv_imgpkg_manifest_digest(pkg, digest);
    uint8_t *head = NULL;
    size_t len = 0;
    if (pv_imgpkg_head(pkg, &head, &len, &e) == PV_OK &&
        (len != size || memcmp(head, data, size) != 0)) {
        abort(); /* a head opened from these bytes must be these bytes */
    }
    free(head);
    pv_trust_free(own);
    pv_imgpkg_free(pkg);
    return 0;
}
