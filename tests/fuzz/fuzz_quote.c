/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The verifier's check of a TPM quote (pv_quote_verify, src/lib/quote.c) on arbitrary
 * bytes: the quote comes from the device over the network. Seeds in
 * tests/fuzz/corpus/quote/.
 *
 * The first byte picks how the rest is used:
 *   odd:  the rest is the attest, signed here with the harness's key, so inputs get past
 *         the signature to the comparisons with the expected qualifying data and PCR;
 *   even: the next 64 bytes are the signature and the rest the attest, as a forger sends
 *         it (with a key made in this process, it can never verify).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/quote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_PCR 13

/* What the seeds were made for: qualifying = 32 x 0x51, PCR value = 32 x 0x13. */
static pv_key *fuzz_key;

static bool contains(const uint8_t *p, size_t n, const uint8_t *needle, size_t k)
{
    for (size_t i = 0; k <= n && i <= n - k; i++) {
        if (memcmp(p + i, needle, k) == 0) {
            return true;
        }
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pv_err e;
    uint8_t qualifying[PV_SHA256_LEN], pcr_value[PV_SHA256_LEN], digest[PV_SHA256_LEN];
    uint8_t sig[PV_ES256_SIG_LEN];
    pv_quote_info info;
    if (fuzz_key == NULL && pv_key_generate(&fuzz_key, &e) != PV_OK) {
        abort();
    }
    if (size == 0) {
        return 0;
    }
    memset(qualifying, 0x51, sizeof(qualifying));
    memset(pcr_value, 0x13, sizeof(pcr_value));
    bool signed_here = (data[0] & 1) != 0;
    const uint8_t *attest = data + 1;
    size_t len = size - 1;
    if (signed_here) {
        if (pv_key_sign_es256(fuzz_key, attest, len, sig, &e) != PV_OK) {
            abort();
        }
    } else {
        if (len < PV_ES256_SIG_LEN) {
            return 0;
        }
        memcpy(sig, attest, PV_ES256_SIG_LEN);
        attest += PV_ES256_SIG_LEN;
        len -= PV_ES256_SIG_LEN;
    }
    int r = pv_quote_verify(attest, len, sig, fuzz_key, qualifying, FUZZ_PCR, pcr_value, &info, &e);
    if (r == PV_OK) {
        /* Only a quote signed here can pass, and only one that holds what was expected:
         * the qualifying value and the digest of the PCR value, within the limit. */
        if (pv_sha256_digest(pcr_value, sizeof(pcr_value), digest) != PV_OK) {
            abort();
        }
        if (!signed_here || len > PV_QUOTE_MAX_ATTEST ||
            !contains(attest, len, qualifying, sizeof(qualifying)) ||
            !contains(attest, len, digest, sizeof(digest))) {
            abort();
        }
    } else if (r != PV_ERR_FORMAT && r != PV_ERR_SIGNATURE) {
        abort(); /* nothing else is expected from any input */
    }
    return 0;
}
