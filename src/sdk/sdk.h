/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside libpavise-app: the app's side of the channel's wire format
 * (docs/protocol/app-channel.md), the state read from the environment, and the seams the
 * unit tests use. The runtime's codec is src/device/appchan.c; the two are written apart
 * (the SDK links nothing but libc) and tests/unit/sdk/app_test.c checks them against
 * each other.
 *
 * Every name here starts with sdk_ because the library is linked into other people's
 * programs: its internal symbols must not collide with theirs.
 */
#ifndef PAVISE_SDK_SDK_H
#define PAVISE_SDK_SDK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/app.h"

/* ---- wire format ---- */

#define SDK_VERSION  1
#define SDK_HEADER   4
#define SDK_MAX_MSG  2048
#define SDK_MAX_TYPE 8 /* the highest request type */

enum {
    SDK_LOG = 1,
    SDK_EVENTS_REGISTER = 2,
    SDK_DEFER = 3,
    SDK_WATCHDOG_SET = 4,
    SDK_WATCHDOG_KICK = 5,
    SDK_STATUS_QUERY = 6,
    SDK_POWER = 7,
    SDK_SIGN = 8,
    SDK_EVENT = 64,
    SDK_STATUS = 65,
    SDK_RESULT = 66,
    SDK_SIGNATURE = 67,
};

/* The digest lengths a sign request may carry: SHA-256, SHA-384, SHA-512. */
#define SDK_SIGN_MAX_DIGEST 64

/* A message from the runtime. */
typedef struct sdk_msg {
    uint8_t type;         /* SDK_EVENT, SDK_STATUS, SDK_RESULT or SDK_SIGNATURE */
    pv_app_event event;   /* SDK_EVENT */
    pv_app_status status; /* SDK_STATUS */
    uint8_t request;      /* SDK_RESULT */
    int result;           /* SDK_RESULT: 0 or PV_APP_ERR_DENIED..PV_APP_ERR_NOT_READY */
    uint8_t signature[PV_APP_DEVICE_SIG_LEN]; /* SDK_SIGNATURE: r || s */
} sdk_msg;

/* The request a message from the runtime answers: SDK_STATUS_QUERY for SDK_STATUS,
 * SDK_SIGN for SDK_SIGNATURE, the request byte of SDK_RESULT; 0 for SDK_EVENT. */
uint8_t sdk_answers(const sdk_msg *m);

/* Makes text[0..len) safe to send as a log line, in place: a trailing newline goes; when
 * cut is true (the formatter truncated it), an incomplete character at the end goes;
 * invalid UTF-8 becomes '?', control characters but tab (C0, DEL, C1) become ' '.
 * Returns the new length (never more than len). */
size_t sdk_clean_text(char *text, size_t len, bool cut);

/* Encodes a log message (text already clean, at most PV_APP_MAX_LOG bytes) into out;
 * returns its length. */
size_t sdk_encode_log(uint8_t out[SDK_MAX_MSG], int level, const char *text, size_t len);

/* Encodes a request of type with n bytes of body (already big-endian) into out, which
 * has room for cap bytes; returns its length, or 0 when it does not fit. */
size_t sdk_encode(uint8_t *out, size_t cap, uint8_t type, const uint8_t *body, size_t n);

/* Decodes a packet from the runtime, as strictly as the runtime parses the app's: exact
 * lengths, every field in its range. Returns false for anything else (the packet is
 * dropped). */
bool sdk_decode(const uint8_t *p, size_t len, sdk_msg *out);

/* ---- state ---- */

/* What the runtime put in the environment, read once (on first use). */
typedef struct sdk_env {
    int fd; /* the channel, or -1 */
    const char *name, *component_id, *storage;
    const char *cert, *chain;
} sdk_env;

const sdk_env *sdk_env_get(void);

/* ---- test seams ---- */

/* Forgets the environment and the channel's state (queued events, owed answers) so the
 * next call reads PAVISE_* again. Does not close the old fd. Only for tests. */
void sdk_reset(void);
/* Changes PV_APP_REPLY_TIMEOUT_MS (ms > 0), so tests need not wait five seconds. */
void sdk_set_reply_timeout_ms(int ms);
/* Changes PV_APP_SIGN_TIMEOUT_MS (ms > 0), likewise. */
void sdk_set_sign_timeout_ms(int ms);
/* Called by sdk_reset: the channel's part. */
void sdk_chan_reset(void);

#endif
