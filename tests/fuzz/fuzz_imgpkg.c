/* SPDX-License-Identifier: Apache-2.0 */
/* Image package parser: header, COSE_Sign1, manifest, certificate chain, then the
 * signature and payload digest against the package's own signer (no trust anchor). */
#include <stddef.h>
#include <stdint.h>

#include "pavise/imgpkg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pv_imgpkg *pkg = NULL;
    pv_err e;
    if (pv_imgpkg_open_mem(data, size, &pkg, &e) == PV_OK) {
        int r = pv_imgpkg_verify_self(pkg, &e);
        (void)r;
        pv_imgpkg_free(pkg);
    }
    return 0;
}
