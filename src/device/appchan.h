/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The app channel (docs/protocol/app-channel.md): the runtime's side of the SOCK_SEQPACKET
 * socket an app inherits as fd 3 (PAVISE_FD) and talks to through libpavise-app.
 *
 * One message per packet, at most AC_MAX_MSG bytes: a fixed 4-byte header
 * (version 1, type, 2 bytes big-endian length of the body) and the body. The app is
 * untrusted: ac_parse bounds and checks every field, and refuses what its manifest did not
 * grant is the caller's (appmgr's) part.
 */
#ifndef PAVISE_DEVICE_APPCHAN_H
#define PAVISE_DEVICE_APPCHAN_H

#include <stddef.h>
#include <stdint.h>

#include "pavise/app.h"
#include "pavise/err.h"

#define AC_VERSION 1
#define AC_MAX_MSG 2048
#define AC_MAX_LOG 1024 /* bytes of one log line */

typedef enum ac_type {
    /* app -> runtime */
    AC_LOG = 1,             /* level (1 byte), text (UTF-8, no NUL) */
    AC_EVENTS_REGISTER = 2, /* mask (4 bytes): PV_APP_EVENT_* the app wants */
    AC_DEFER = 3,           /* event id (8), seconds (4): put off the pending update */
    AC_WATCHDOG_SET = 4,    /* timeout in ms (4); 0 disarms */
    AC_WATCHDOG_KICK = 5,   /* empty */
    AC_STATUS_QUERY = 6,    /* empty: asks for AC_STATUS */
    AC_POWER = 7,           /* action (1 byte): PV_APP_POWER_* */
    /* runtime -> app */
    AC_EVENT = 64,  /* kind (4), event id (8), max deferral left in seconds (4) */
    AC_STATUS = 65, /* device-auth ready (1), storage used KiB (8), quota KiB (8) */
    AC_RESULT = 66, /* request type (1), result (4: 0 or a negative PV_ERR_*) */
} ac_type;

typedef struct ac_msg {
    ac_type type;
    uint8_t level;    /* AC_LOG */
    const char *text; /* AC_LOG: points into the packet, not NUL-terminated */
    size_t text_len;
    uint32_t mask;              /* AC_EVENTS_REGISTER */
    uint64_t event_id;          /* AC_DEFER, AC_EVENT */
    uint32_t seconds;           /* AC_DEFER, AC_EVENT (max deferral left) */
    uint32_t timeout_ms;        /* AC_WATCHDOG_SET */
    uint32_t kind;              /* AC_EVENT */
    uint8_t action;             /* AC_POWER */
    uint8_t ready;              /* AC_STATUS */
    uint64_t used_kb, quota_kb; /* AC_STATUS */
    uint8_t request;            /* AC_RESULT */
    int32_t result;             /* AC_RESULT */
} ac_msg;

/* Parses one packet. Bytes after the body, a length that disagrees with the packet, an
 * unknown type or version, a log text with NUL or control characters other than tab, a
 * level or action out of range: PV_ERR_FORMAT (or PV_ERR_UNSUPPORTED for another
 * version). *out is zeroed on entry. */
int ac_parse(const uint8_t *p, size_t len, ac_msg *out, pv_err *e);

/* Encodes a message into out (at most AC_MAX_MSG bytes); returns its length, or 0 when
 * it does not fit or is invalid. */
size_t ac_encode(const ac_msg *m, uint8_t out[AC_MAX_MSG]);

#endif
