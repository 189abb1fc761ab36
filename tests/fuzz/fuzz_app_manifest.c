/* SPDX-License-Identifier: Apache-2.0 */
/* The app manifest parser (JSON as developers write it). */
#include <stddef.h>
#include <stdint.h>

#include "pavise/appmanifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pv_manifest m;
    pv_err e;
    if (size > PV_APP_MANIFEST_MAX_FILE) {
        return 0; /* the loader refuses larger files before parsing */
    }
    if (pv_app_manifest_parse((const char *)data, size, "fuzz.json", &m, &e) == PV_OK) {
        pv_manifest_free(&m);
    }
    return 0;
}
