/* SPDX-License-Identifier: Apache-2.0 */
/* The names of the root-of-trust kinds, as every format spells them (manufacturing
 * record, evidence, the CLI). In libpavise, not pavise-rot, so that verifiers that never
 * open a root of trust use the same spelling. */
#include <string.h>

#include "pavise/rot.h"

const char *pv_rot_kind_name(pv_rot_kind k)
{
    switch (k) {
    case PV_ROT_TPM:
        return "tpm";
    case PV_ROT_SOFTWARE:
        return "software";
    }
    return "unknown";
}

int pv_rot_kind_parse(const char *s, pv_rot_kind *out)
{
    if (s != NULL && strcmp(s, "tpm") == 0) {
        *out = PV_ROT_TPM;
        return PV_OK;
    }
    if (s != NULL && strcmp(s, "software") == 0) {
        *out = PV_ROT_SOFTWARE;
        return PV_OK;
    }
    return PV_ERR_INVALID_ARG;
}

bool pv_rot_kind_valid(pv_rot_kind k)
{
    return k == PV_ROT_TPM || k == PV_ROT_SOFTWARE;
}
