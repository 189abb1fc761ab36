/* SPDX-License-Identifier: Apache-2.0 */
#include "pavise/err.h"

#include "err_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    int code;
    const char *text;
} codes[] = {
    {PV_OK, "success"},
    {PV_ERR_INTERNAL, "internal error"},
    {PV_ERR_NOMEM, "out of memory"},
    {PV_ERR_INVALID_ARG, "invalid argument"},
    {PV_ERR_IO, "input/output error"},
    {PV_ERR_FORMAT, "malformed input"},
    {PV_ERR_TOO_LARGE, "size limit exceeded"},
    {PV_ERR_TRUNCATED, "input is truncated"},
    {PV_ERR_UNSUPPORTED, "not supported"},
    {PV_ERR_SIGNATURE, "signature does not verify"},
    {PV_ERR_UNTRUSTED, "certificate chain is not trusted"},
    {PV_ERR_EXPIRED, "certificate expired or not yet valid"},
    {PV_ERR_DIGEST, "content does not match its signed digest"},
    {PV_ERR_UNSAFE, "refused as unsafe"},
    {PV_ERR_EXISTS, "already exists"},
    {PV_ERR_NOT_FOUND, "not found"},
    {PV_ERR_CRYPTO, "cryptographic library failure"},
    {PV_ERR_USAGE, "usage error"},
    {PV_ERR_MANIFEST, "invalid app manifest"},
    {PV_ERR_ROT, "root of trust failed"},
    {PV_ERR_ROLLBACK, "anti-rollback check failed"},
    {PV_ERR_LOCKED, "write-once value already written"},
};

const char *pv_strerror(int code)
{
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (codes[i].code == code) {
            return codes[i].text;
        }
    }
    return "unknown error";
}

void pv_err_clear(pv_err *e)
{
    if (e != NULL) {
        e->code = PV_OK;
        e->msg[0] = '\0';
    }
}

void pv_err_vset(pv_err *e, int code, const char *fmt, va_list ap)
{
    e->code = code;
    int n = vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    if (n < 0) {
        e->msg[0] = '\0';
    }
}

int pv_err_set(pv_err *e, int code, const char *fmt, ...)
{
    if (e != NULL) {
        va_list ap;
        va_start(ap, fmt);
        pv_err_vset(e, code, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Appends ": <text>" to the message, truncating safely. */
void pv_err_append(pv_err *e, const char *text)
{
    size_t used = strlen(e->msg);
    if (used < sizeof(e->msg)) {
        snprintf(e->msg + used, sizeof(e->msg) - used, "%s%s", used ? ": " : "", text);
    }
}

int pv_err_sys(pv_err *e, int code, int errnum, const char *fmt, ...)
{
    if (e != NULL) {
        va_list ap;
        va_start(ap, fmt);
        pv_err_vset(e, code, fmt, ap);
        va_end(ap);
        char tmp[128];
        pv_err_append(e, strerror_r(errnum, tmp, sizeof(tmp)));
    }
    return code;
}

int pv_err_wrap(pv_err *e, int code, const char *fmt, ...)
{
    if (e == NULL) {
        return code;
    }
    char prefix[PV_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    if (n < 0) {
        prefix[0] = '\0';
    }
    /* Build "<prefix>: <old>" in a scratch buffer, truncating at the end if needed. */
    const char *parts[3] = {prefix, ": ", e->msg[0] ? e->msg : pv_strerror(code)};
    char out[PV_ERR_MSG_MAX];
    size_t used = 0;
    for (size_t i = 0; i < 3; i++) {
        size_t len = strlen(parts[i]);
        if (len > sizeof(out) - 1 - used) {
            len = sizeof(out) - 1 - used;
        }
        memcpy(out + used, parts[i], len);
        used += len;
    }
    out[used] = '\0';
    memcpy(e->msg, out, used + 1);
    e->code = code;
    return code;
}

const char *pv_err_msg(const pv_err *e)
{
    if (e == NULL) {
        return "unknown error";
    }
    return e->msg[0] ? e->msg : pv_strerror(e->code);
}
