/* SPDX-License-Identifier: Apache-2.0 */
/* What pavised's two helper clients (storeclient.c, netclient.c) share. */
#ifndef PAVISE_DEVICE_HELPERPROC_H
#define PAVISE_DEVICE_HELPERPROC_H

#include <stdint.h>

#include <jansson.h>

#include "pavise/err.h"

/* A helper's answer {"ok": true, ...} or {"ok": false, "code": N, "error": "..."}: PV_OK,
 * or the refusal's code (a pv_err code: negative and in range) and message; PV_ERR_FORMAT,
 * naming who, for anything else. */
int hp_answer_result(const json_t *ans, const char *who, pv_err *e);

#endif
