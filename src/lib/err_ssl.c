/* SPDX-License-Identifier: Apache-2.0 */
/* pv_err_ssl: apart from err.c so that a program that never uses OpenSSL (pavised's
 * supervisor) does not link libcrypto for its error messages. */
#include "pavise/err.h"

#include <stdarg.h>

#include <openssl/err.h>

#include "err_internal.h"

int pv_err_ssl(pv_err *e, int code, const char *fmt, ...)
{
    if (e != NULL) {
        va_list ap;
        va_start(ap, fmt);
        pv_err_vset(e, code, fmt, ap);
        va_end(ap);
        unsigned long ec = ERR_peek_last_error();
        if (ec != 0) {
            char reason[256];
            ERR_error_string_n(ec, reason, sizeof(reason));
            pv_err_append(e, reason);
        }
    }
    ERR_clear_error();
    return code;
}
