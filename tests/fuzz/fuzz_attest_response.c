/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device's parser of the service's attestation response (attest_parse_response,
 * src/agent/attest.c) and the certificate checks after it, on arbitrary bytes: the
 * response comes over the network. Seeds in tests/fuzz/corpus/attest_response/ (written
 * by attest_response_test with PV_ATTEST_RESPONSE_CORPUS_OUT set).
 *
 * The first byte picks the HTTP status (the parser reads a refusal and a verdict
 * differently); the rest is the body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attest_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_DEVICE_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {200, 403, 400, 404, 413, 500};
    static const uint8_t spki[91] = {0x30, 0x59};
    attest_response r;
    pv_err e;
    int64_t sna = 0, cna = 0;
    if (size < 1) {
        return 0;
    }
    long status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
    if (attest_parse_response(status, data + 1, size - 1, &r, &e) != PV_OK) {
        if (r.service_cert != NULL || r.client_chain != NULL) {
            abort(); /* a failed parse leaves nothing behind */
        }
        return 0;
    }
    if (r.verdict == PV_ATTEST_FAILED && r.service_cert != NULL) {
        abort();
    }
    if (r.verdict != PV_ATTEST_FAILED &&
        attest_check_response(&r, FUZZ_DEVICE_ID, spki, sizeof(spki), 1900000000, &sna, &cna, &e) ==
            PV_OK) {
        abort(); /* nobody holds the key of that SubjectPublicKeyInfo */
    }
    attest_response_free(&r);
    return 0;
}
