// SPDX-License-Identifier: Apache-2.0
/* See helperproc.h. */
#include "helperproc.h"

int hp_answer_result(const json_t *ans, const char *who, pv_err *e)
{
    json_t *ok = json_object_get(ans, "ok");
    if (json_is_true(ok)) {
        return PV_OK;
    }
    json_t *code = json_object_get(ans, "code"), *msg = json_object_get(ans, "error");
    if (!json_is_false(ok) || !json_is_integer(code) || !json_is_string(msg) ||
        json_integer_value(code) >= 0 || json_integer_value(code) < -100) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s sent a malformed answer", who);
    }
    return pv_err_set(e, (int)json_integer_value(code), "%s", json_string_value(msg));
}
