/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The app channel's codecs on arbitrary packets: the runtime's (src/device/appchan.c),
 * which reads what an untrusted app sends, and the SDK's (src/sdk/wire.c), which reads
 * what the runtime sends. Seeds in tests/fuzz/corpus/appchan/.
 *
 * Both are compiled in here, so the harness needs no more than the other harnesses link.
 * For every input:
 *   - what ac_parse accepts encodes back to the same bytes and parses to the same message;
 *   - the SDK accepts exactly the runtime-to-app messages ac_parse accepts, with the same
 *     fields;
 *   - the input taken as log text and cleaned by the SDK is always a valid AC_LOG.
 */
#include <stdlib.h>
#include <string.h>

#include "../../src/device/appchan.c"
#include "../../src/sdk/wire.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_round_trip(const uint8_t *data, size_t size, const ac_msg *m)
{
    uint8_t out[AC_MAX_MSG];
    ac_msg again;
    size_t n = ac_encode(m, out);
    if (n != size || memcmp(out, data, size) != 0) {
        abort(); /* one encoding per message: nothing the parser accepts is ambiguous */
    }
    if (ac_parse(out, n, &again, NULL) != PV_OK || again.type != m->type ||
        again.text_len != m->text_len ||
        (m->text_len > 0 && memcmp(again.text, m->text, m->text_len) != 0) ||
        again.digest_len != m->digest_len ||
        (m->digest_len > 0 && memcmp(again.digest, m->digest, m->digest_len) != 0)) {
        abort();
    }
    again.text = m->text;
    again.digest = m->digest;
    if (memcmp(&again, m, sizeof(again)) != 0) {
        abort();
    }
}

static void check_sdk_agrees(const uint8_t *data, size_t size, int r, const ac_msg *m)
{
    sdk_msg s;
    bool runtime_msg = r == PV_OK && (m->type == AC_EVENT || m->type == AC_STATUS ||
                                      m->type == AC_RESULT || m->type == AC_SIGNATURE);
    if (sdk_decode(data, size, &s) != runtime_msg) {
        abort();
    }
    if (!runtime_msg) {
        return;
    }
    if (s.type != (uint8_t)m->type ||
        (m->type == AC_EVENT && (s.event.kind != m->kind || s.event.id != m->event_id ||
                                 s.event.seconds_left != m->seconds)) ||
        (m->type == AC_STATUS &&
         (s.status.device_auth_ready != (m->ready == 1) || s.status.storage_used_kb != m->used_kb ||
          s.status.storage_quota_kb != m->quota_kb)) ||
        (m->type == AC_RESULT && (s.request != m->request || s.result != m->result)) ||
        (m->type == AC_SIGNATURE && memcmp(s.signature, m->signature, AC_SIG_LEN) != 0)) {
        abort();
    }
}

static void check_clean_text(const uint8_t *data, size_t size)
{
    char text[AC_MAX_LOG];
    uint8_t out[AC_MAX_MSG];
    bool cut = size > sizeof(text);
    size_t n = cut ? sizeof(text) : size;
    memcpy(text, data, n);
    ac_msg m = {.type = AC_LOG, .level = PV_APP_LOG_INFO, .text = text};
    m.text_len = sdk_clean_text(text, n, cut);
    if (m.text_len > n || ac_encode(&m, out) == 0) {
        abort(); /* the SDK sent a line the runtime would refuse */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ac_msg m;
    pv_err e;
    int r = ac_parse(data, size, &m, &e);
    if (r == PV_OK) {
        check_round_trip(data, size, &m);
    } else if (r != PV_ERR_FORMAT && r != PV_ERR_UNSUPPORTED) {
        abort();
    }
    check_sdk_agrees(data, size, r, &m);
    check_clean_text(data, size);
    return 0;
}
