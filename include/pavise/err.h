/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Error codes and error context.
 *
 * Every fallible function returns PV_OK (0) or a negative pv_code. Functions that can
 * fail for a reason the user must see also take a `pv_err *` (which may be NULL) and
 * fill it with a message that says what failed and why; callers add context on the way
 * up with pv_err_wrap(), so the final message reads like
 *   "image package app.imgpkg: manifest: field 'name': expected a text string".
 */
#ifndef PAVISE_ERR_H
#define PAVISE_ERR_H

#include <stddef.h>

#define PV_WUR          __attribute__((warn_unused_result))
#define PV_PRINTF(a, b) __attribute__((format(printf, a, b)))

typedef enum pv_code {
    PV_OK = 0,
    PV_ERR_INTERNAL = -1,    /* a bug or an unexpected library failure */
    PV_ERR_NOMEM = -2,       /* allocation failed */
    PV_ERR_INVALID_ARG = -3, /* the caller passed something invalid */
    PV_ERR_IO = -4,          /* reading or writing a file failed */
    PV_ERR_FORMAT = -5,      /* input is malformed */
    PV_ERR_TOO_LARGE = -6,   /* a size limit was exceeded */
    PV_ERR_TRUNCATED = -7,   /* input ended early */
    PV_ERR_UNSUPPORTED = -8, /* version, algorithm or feature not supported */
    PV_ERR_SIGNATURE = -9,   /* a signature does not verify */
    PV_ERR_UNTRUSTED = -10,  /* certificate chain does not lead to a trust anchor */
    PV_ERR_EXPIRED = -11,    /* certificate expired or not yet valid */
    PV_ERR_DIGEST = -12,     /* content does not match its signed digest */
    PV_ERR_UNSAFE = -13,     /* archive entry or path refused as unsafe */
    PV_ERR_EXISTS = -14,     /* destination already exists */
    PV_ERR_NOT_FOUND = -15,  /* file or item not found */
    PV_ERR_CRYPTO = -16,     /* the crypto library failed */
    PV_ERR_USAGE = -17,      /* command-line usage error */
    PV_ERR_MANIFEST = -18,   /* app manifest is invalid */
    PV_ERR_ROT = -19,        /* the root of trust (TPM or its software stand-in) failed */
    PV_ERR_ROLLBACK = -20,   /* a counter would go backwards, or an image is below it */
    PV_ERR_LOCKED = -21,     /* a write-once value is already written */
} pv_code;

#define PV_ERR_MSG_MAX 1024

typedef struct pv_err {
    int code;
    char msg[PV_ERR_MSG_MAX];
} pv_err;

/* A short static description of a code ("signature does not verify"). Never NULL. */
const char *pv_strerror(int code);

/* Clears an error (code PV_OK, empty message). Accepts NULL. */
void pv_err_clear(pv_err *e);

/* Sets code and message (printf-style) and returns code, so callers write
 * `return pv_err_set(e, PV_ERR_FORMAT, "bad magic");`. e may be NULL. */
int pv_err_set(pv_err *e, int code, const char *fmt, ...) PV_PRINTF(3, 4);

/* Like pv_err_set, then appends ": <reason>" from the OpenSSL error queue (and clears
 * the queue). */
int pv_err_ssl(pv_err *e, int code, const char *fmt, ...) PV_PRINTF(3, 4);

/* Like pv_err_set, then appends ": <strerror(errnum)>". */
int pv_err_sys(pv_err *e, int code, int errnum, const char *fmt, ...) PV_PRINTF(4, 5);

/* Prefixes the existing message with "<context>: " and returns code (which callers
 * pass on from the failure being wrapped; e may be NULL). If e has no message yet, the
 * code's description is used as the message. */
int pv_err_wrap(pv_err *e, int code, const char *fmt, ...) PV_PRINTF(3, 4);

/* The message, or the code's description when there is no message. */
const char *pv_err_msg(const pv_err *e);

#endif
