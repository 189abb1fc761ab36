/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by err.c and err_ssl.c. */
#ifndef PAVISE_LIB_ERR_INTERNAL_H
#define PAVISE_LIB_ERR_INTERNAL_H

#include <stdarg.h>

#include "pavise/err.h"

/* Sets code and the formatted message (e non-NULL). */
void pv_err_vset(pv_err *e, int code, const char *fmt, va_list ap) PV_PRINTF(3, 0);
/* Appends ": <text>" to the message, truncating safely. */
void pv_err_append(pv_err *e, const char *text);

#endif
