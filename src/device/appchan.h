/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The app channel (docs/protocol/app-channel.md): the runtime's side of the SOCK_SEQPACKET
 * socket an app inherits as fd 3 (PAVISE_FD) and talks to through libpavise-app.
 *
 * One message per packet, at most AC_MAX_MSG bytes: a fixed 4-byte header
 * (version 1, type, 2 bytes big-endian length of the body) and the body. The app is
 * untrusted: ac_parse bounds and checks every field; refusing what its manifest did not
 * grant is the caller's (appmgr's) part.
 *
 * The runtime answers every request marked "reply" below with exactly one message, in
 * the order the requests came: AC_RESULT, or AC_STATUS for a successful AC_STATUS_QUERY.
 * AC_LOG and AC_WATCHDOG_KICK get no answer. AC_EVENT may come at any time.
 */
#ifndef PAVISE_DEVICE_APPCHAN_H
#define PAVISE_DEVICE_APPCHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/app.h"
#include "pavise/err.h"

#define AC_VERSION 1
#define AC_HEADER  4
#define AC_MAX_MSG 2048
#define AC_MAX_LOG PV_APP_MAX_LOG /* bytes of one log line */

typedef enum ac_type {
    /* app -> runtime */
    AC_LOG = 1,             /* level (1 byte), text (UTF-8, no control characters but tab) */
    AC_EVENTS_REGISTER = 2, /* mask (4 bytes): PV_APP_EVENT_* the app wants. Reply */
    AC_DEFER = 3,           /* event id (8, not 0), seconds (4, <= 24 h; 0: go ahead). Reply */
    AC_WATCHDOG_SET = 4,    /* timeout in ms (4): 0 disarms, else MIN_MS..MAX_MS. Reply */
    AC_WATCHDOG_KICK = 5,   /* empty */
    AC_STATUS_QUERY = 6,    /* empty: asks for AC_STATUS. Reply */
    AC_POWER = 7,           /* action (1 byte): PV_APP_POWER_*. Reply */
    AC_SIGN = 8,            /* digest (32, 48 or 64 bytes) to sign with the device key. Reply */
    /* runtime -> app */
    AC_EVENT = 64,     /* kind (4: one bit), event id (8, not 0), max deferral left in s (4) */
    AC_STATUS = 65,    /* device-auth ready (1: 0 or 1), storage used KiB (8), quota KiB (8) */
    AC_RESULT = 66,    /* request type (1: one with a reply), result (4: 0 or PV_APP_ERR_DENIED..
                          PV_APP_ERR_NOT_READY, i.e. -2..-6, big-endian two's complement) */
    AC_SIGNATURE = 67, /* ECDSA P-256 signature r || s (64): the answer to a good AC_SIGN */
} ac_type;

#define AC_SIG_LEN        64 /* AC_SIGNATURE's body */
#define AC_MIN_DIGEST_LEN 32 /* AC_SIGN's digest: SHA-256, SHA-384 or SHA-512 */
#define AC_MAX_DIGEST_LEN 64

typedef struct ac_msg {
    ac_type type;
    uint8_t level;    /* AC_LOG */
    const char *text; /* AC_LOG: points into the packet, not NUL-terminated */
    size_t text_len;
    uint32_t mask;                 /* AC_EVENTS_REGISTER */
    uint64_t event_id;             /* AC_DEFER, AC_EVENT */
    uint32_t seconds;              /* AC_DEFER, AC_EVENT (max deferral left) */
    uint32_t timeout_ms;           /* AC_WATCHDOG_SET */
    uint32_t kind;                 /* AC_EVENT */
    uint8_t action;                /* AC_POWER */
    uint8_t ready;                 /* AC_STATUS */
    uint64_t used_kb, quota_kb;    /* AC_STATUS */
    uint8_t request;               /* AC_RESULT */
    int32_t result;                /* AC_RESULT */
    const uint8_t *digest;         /* AC_SIGN: points into the packet */
    size_t digest_len;             /* AC_SIGN: 32, 48 or 64 */
    uint8_t signature[AC_SIG_LEN]; /* AC_SIGNATURE */
} ac_msg;

/* Parses one packet of either direction. Fewer than AC_HEADER or more than AC_MAX_MSG
 * bytes, a length that disagrees with the packet, an unknown type, a body of the wrong
 * size (AC_SIGN: a digest of another length than 32, 48 or 64), a log text that is not UTF-8 or
 * holds control characters other than tab (U+0000-U+001F, U+007F-U+009F), any field out of its
 * range (see ac_type): PV_ERR_FORMAT; another version: PV_ERR_UNSUPPORTED. *out is zeroed on entry
 * and filled only on success; out->text and out->digest point into p. The caller reads packets into
 * a buffer of more than AC_MAX_MSG bytes (or with MSG_TRUNC) so an oversized one is seen as such.
 */
int ac_parse(const uint8_t *p, size_t len, ac_msg *out, pv_err *e);

/* ac_parse, and the message must be one an app sends (AC_LOG .. AC_SIGN): what the
 * runtime calls on the app's packets. */
int ac_parse_from_app(const uint8_t *p, size_t len, ac_msg *out, pv_err *e);

/* Encodes a message into out (at most AC_MAX_MSG bytes); returns its length, or 0 when
 * it is invalid (the same checks as ac_parse). Fields the type does not use are ignored.
 * ac_parse(ac_encode(m)) gives m back. */
size_t ac_encode(const ac_msg *m, uint8_t out[AC_MAX_MSG]);

/* True for the types whose requests get an answer (AC_RESULT or AC_STATUS). */
bool ac_has_reply(uint8_t type);

/* The type's name for logs ("log", "defer", ...), "unknown" for others. */
const char *ac_type_name(uint8_t type);

#endif
