/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The verifier's check of a device's attestation key public area (a marshaled
 * TPMT_PUBLIC sent by the device) on arbitrary bytes. Seeds in tests/fuzz/corpus/enroll/.
 */
#include <stdint.h>
#include <stdlib.h>

#include "pavise/enroll.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One key per process: valid seeds hold other points, so they get as far as the
 * comparison with it (PV_ERR_SIGNATURE), after every structural check. (libFuzzer does
 * learn the point from that comparison; then the check passes, as it should.) */
static pv_key *fuzz_key;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pv_err e;
    uint8_t name[PV_ENROLL_AK_NAME_LEN];
    if (fuzz_key == NULL && pv_key_generate(&fuzz_key, &e) != PV_OK) {
        abort();
    }
    if (pv_enroll_check_ak_public(data, size, fuzz_key, name, &e) == PV_OK &&
        (name[0] != 0x00 || name[1] != 0x0b)) {
        abort(); /* an accepted key's name must be a SHA-256 name */
    }
    return 0;
}
