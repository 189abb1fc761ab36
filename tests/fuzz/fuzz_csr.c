/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Certificate signing requests from untrusted bytes (POST /v1/enroll carries one):
 * pv_csr_verify, and the key it returns.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/x509.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pv_key *k = NULL;
    pv_err e;
    /* The server passes a C string and its length; copy so the bytes end with NUL as
     * they do there, and are not read past. */
    char *pem = malloc(size + 1);
    if (pem == NULL) {
        return 0;
    }
    memcpy(pem, data, size);
    pem[size] = '\0';
    if (pv_csr_verify(pem, size, &k, &e) == PV_OK) {
        uint8_t id[PV_KEY_ID_LEN];
        (void)pv_key_id(k, id);
        pv_key_free(k);
    }
    free(pem);
    return 0;
}
