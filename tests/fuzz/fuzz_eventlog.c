/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The root of trust's event log decoder (src/rot/rot.c) on arbitrary bytes: the file
 * lives in the writable state directory, so it is untrusted input. Seeds in
 * tests/fuzz/corpus/eventlog/.
 */
#include <stdint.h>
#include <stdlib.h>

#include "rot_backend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pv_rot_event *ev = NULL;
    size_t n = 0;
    pv_err e;
    uint8_t pcr[PV_SHA256_LEN];
    /* The seeds use this epoch, so their events are decoded, not skipped. */
    if (rot_eventlog_decode(data, size, "tpm-7", &ev, &n, &e) == PV_OK) {
        pv_rot_replay(ev, n, pcr);
    }
    pv_rot_events_free(ev, n);
    return 0;
}
