/* SPDX-License-Identifier: Apache-2.0 */
/* The generic root-of-trust layer (src/rot/rot.c): the event log, argument checks and the
 * kind names, driven through the software backend. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pavise/crypto.h"
#include "pavise/platform.h"
#include "pavise/rot.h"

#define BOOT_A "0f4c2b9e-6a1d-4c3e-9b7a-2d5e8f1a3c6b"
#define BOOT_B "7d1e3f5a-2b4c-4d6e-8f0a-1c3e5a7b9d2f"

typedef struct fx {
    char *tmp;
    char *state;
    char *log; /* state_dir/rot/eventlog */
    pv_rot_config cfg;
    pv_rot *rot;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->tmp = tu_mkdtemp("rot");
    f->state = tu_path(f->tmp, "state");
    f->log = tu_path(f->state, "rot/eventlog");
    f->cfg.kind = PV_ROT_SOFTWARE;
    f->cfg.state_dir = f->state;
    pv_boot_id_set_override(BOOT_A);
    pv_err e;
    assert_int_equal(pv_rot_provision(&f->cfg, &f->rot, &e), PV_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    pv_rot_close(f->rot);
    pv_boot_id_set_override(NULL);
    tu_rmtree(f->tmp);
    free(f->log);
    free(f->state);
    free(f->tmp);
    free(f);
    return 0;
}

static void digest_of(const char *s, uint8_t out[PV_SHA256_LEN])
{
    assert_int_equal(pv_sha256_digest(s, strlen(s), out), PV_OK);
}

/* SHA-256(pcr || d), the extend rule, computed here independently of rot.c. */
static void extend_by_hand(uint8_t pcr[PV_SHA256_LEN], const uint8_t d[PV_SHA256_LEN])
{
    uint8_t in[2 * PV_SHA256_LEN];
    memcpy(in, pcr, PV_SHA256_LEN);
    memcpy(in + PV_SHA256_LEN, d, PV_SHA256_LEN);
    assert_int_equal(pv_sha256_digest(in, sizeof(in), pcr), PV_OK);
}

static void assert_log_matches_pcr(pv_rot *rot, size_t want_n)
{
    pv_err e;
    pv_rot_event *ev = NULL;
    size_t n = 99;
    uint8_t pcr[PV_SHA256_LEN], replayed[PV_SHA256_LEN];
    assert_int_equal(pv_rot_event_log(rot, &ev, &n, &e), PV_OK);
    assert_int_equal(n, want_n);
    assert_int_equal(pv_rot_read_measurement(rot, pcr, &e), PV_OK);
    pv_rot_replay(ev, n, replayed);
    assert_memory_equal(pcr, replayed, PV_SHA256_LEN);
    pv_rot_events_free(ev, n);
}

static void test_kind_names(void **state)
{
    (void)state;
    pv_rot_kind k = 0;
    assert_int_equal(pv_rot_kind_parse("tpm", &k), PV_OK);
    assert_int_equal(k, PV_ROT_TPM);
    assert_int_equal(pv_rot_kind_parse("software", &k), PV_OK);
    assert_int_equal(k, PV_ROT_SOFTWARE);
    assert_int_equal(pv_rot_kind_parse("TPM", &k), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_rot_kind_parse("soft", &k), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_rot_kind_parse("", &k), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_rot_kind_parse(NULL, &k), PV_ERR_INVALID_ARG);
    assert_string_equal(pv_rot_kind_name(PV_ROT_TPM), "tpm");
    assert_string_equal(pv_rot_kind_name(PV_ROT_SOFTWARE), "software");
    assert_string_equal(pv_rot_kind_name((pv_rot_kind)0), "unknown");
    assert_string_equal(pv_rot_kind_name((pv_rot_kind)99), "unknown");
}

static void test_bad_config(void **state)
{
    fx *f = *state;
    pv_err e;
    pv_rot *rot = NULL;
    pv_rot_config c = f->cfg;
    assert_int_equal(pv_rot_open(NULL, &rot, &e), PV_ERR_INVALID_ARG);
    c.state_dir = "";
    assert_int_equal(pv_rot_open(&c, &rot, &e), PV_ERR_INVALID_ARG);
    c.state_dir = f->state;
    c.kind = (pv_rot_kind)7;
    assert_int_equal(pv_rot_open(&c, &rot, &e), PV_ERR_INVALID_ARG);
    assert_null(rot);
}

static void test_replay_empty(void **state)
{
    (void)state;
    uint8_t out[PV_SHA256_LEN], zero[PV_SHA256_LEN] = {0};
    memset(out, 0xee, sizeof(out));
    pv_rot_replay(NULL, 0, out);
    assert_memory_equal(out, zero, sizeof(out));
}

static void test_extend_and_replay(void **state)
{
    fx *f = *state;
    pv_err e;
    uint8_t zero[PV_SHA256_LEN] = {0}, pcr[PV_SHA256_LEN], want[PV_SHA256_LEN] = {0};
    assert_int_equal(pv_rot_read_measurement(f->rot, pcr, &e), PV_OK);
    assert_memory_equal(pcr, zero, sizeof(pcr));
    assert_log_matches_pcr(f->rot, 0);

    static const char *const types[] = {"os-image", "boot-config", "app-7"};
    static const char *const data[] = {"rootfs.squashfs v12", NULL, "x"};
    uint8_t d[3][PV_SHA256_LEN];
    for (size_t i = 0; i < 3; i++) {
        digest_of(types[i], d[i]);
        assert_int_equal(
            pv_rot_extend(f->rot, types[i], d[i], data[i], data[i] ? strlen(data[i]) : 0, &e),
            PV_OK);
        extend_by_hand(want, d[i]);
    }
    assert_int_equal(pv_rot_read_measurement(f->rot, pcr, &e), PV_OK);
    assert_memory_equal(pcr, want, sizeof(pcr));

    pv_rot_event *ev = NULL;
    size_t n = 0;
    assert_int_equal(pv_rot_event_log(f->rot, &ev, &n, &e), PV_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(ev[i].type, types[i]);
        assert_memory_equal(ev[i].digest, d[i], PV_SHA256_LEN);
        if (data[i] == NULL) {
            assert_null(ev[i].data);
            assert_int_equal(ev[i].data_len, 0);
        } else {
            assert_int_equal(ev[i].data_len, strlen(data[i]));
            assert_memory_equal(ev[i].data, data[i], ev[i].data_len);
        }
    }
    uint8_t replayed[PV_SHA256_LEN];
    pv_rot_replay(ev, n, replayed);
    assert_memory_equal(replayed, want, sizeof(want));
    pv_rot_events_free(ev, n);
    pv_rot_events_free(NULL, 0);

    /* The PCR and the log outlive the handle within one boot. */
    pv_rot_close(f->rot);
    f->rot = NULL;
    assert_int_equal(pv_rot_open(&f->cfg, &f->rot, &e), PV_OK);
    assert_int_equal(pv_rot_read_measurement(f->rot, pcr, &e), PV_OK);
    assert_memory_equal(pcr, want, sizeof(pcr));
    assert_log_matches_pcr(f->rot, 3);
}

static void test_event_arguments(void **state)
{
    fx *f = *state;
    pv_err e;
    uint8_t d[PV_SHA256_LEN] = {7};
    char t31[PV_ROT_MAX_EVENT_TYPE + 1], t32[PV_ROT_MAX_EVENT_TYPE + 2];
    memset(t31, 'a', sizeof(t31) - 1);
    t31[sizeof(t31) - 1] = '\0';
    memset(t32, 'a', sizeof(t32) - 1);
    t32[sizeof(t32) - 1] = '\0';
    static const char *const bad[] = {"", "UPPER", "os_image", "os image", "os.image", "é"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pv_rot_extend(f->rot, bad[i], d, NULL, 0, &e), PV_ERR_INVALID_ARG);
    }
    assert_int_equal(pv_rot_extend(f->rot, t32, d, NULL, 0, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_rot_extend(f->rot, NULL, d, NULL, 0, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_rot_extend(f->rot, "ok", NULL, NULL, 0, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_rot_extend(f->rot, "ok", d, NULL, 5, &e), PV_ERR_INVALID_ARG);

    uint8_t *data = calloc(1, PV_ROT_MAX_EVENT_DATA + 1);
    assert_non_null(data);
    assert_int_equal(pv_rot_extend(f->rot, "big", d, data, PV_ROT_MAX_EVENT_DATA + 1, &e),
                     PV_ERR_TOO_LARGE);
    /* Nothing refused reached the PCR or the log. */
    assert_log_matches_pcr(f->rot, 0);

    assert_int_equal(pv_rot_extend(f->rot, t31, d, data, PV_ROT_MAX_EVENT_DATA, &e), PV_OK);
    assert_int_equal(pv_rot_extend(f->rot, "0-9-a-z", d, NULL, 0, &e), PV_OK);
    assert_log_matches_pcr(f->rot, 2);
    free(data);
}

static void test_log_full(void **state)
{
    fx *f = *state;
    pv_err e;
    uint8_t d[PV_SHA256_LEN], pcr[PV_SHA256_LEN], after[PV_SHA256_LEN];
    for (int i = 0; i < PV_ROT_MAX_EVENTS; i++) {
        memset(d, i, sizeof(d));
        assert_int_equal(pv_rot_extend(f->rot, "app", d, NULL, 0, &e), PV_OK);
    }
    assert_int_equal(pv_rot_read_measurement(f->rot, pcr, &e), PV_OK);
    assert_int_equal(pv_rot_extend(f->rot, "app", d, NULL, 0, &e), PV_ERR_TOO_LARGE);
    assert_non_null(strstr(e.msg, "full"));
    /* Refused before the PCR moved: the log still accounts for all of it. */
    assert_int_equal(pv_rot_read_measurement(f->rot, after, &e), PV_OK);
    assert_memory_equal(pcr, after, sizeof(pcr));
    assert_log_matches_pcr(f->rot, PV_ROT_MAX_EVENTS);
}

static void test_reboot(void **state)
{
    fx *f = *state;
    pv_err e;
    uint8_t d1[PV_SHA256_LEN], d2[PV_SHA256_LEN], d3[PV_SHA256_LEN];
    uint8_t pcr[PV_SHA256_LEN], zero[PV_SHA256_LEN] = {0};
    digest_of("one", d1);
    digest_of("two", d2);
    digest_of("three", d3);
    assert_int_equal(pv_rot_extend(f->rot, "a", d1, NULL, 0, &e), PV_OK);
    assert_int_equal(pv_rot_extend(f->rot, "b", d2, NULL, 0, &e), PV_OK);
    assert_log_matches_pcr(f->rot, 2);

    /* A new boot ID: the simulated PCR is back at zero and the old log does not count,
     * even through a handle opened before the reboot. */
    pv_boot_id_set_override(BOOT_B);
    assert_int_equal(pv_rot_read_measurement(f->rot, pcr, &e), PV_OK);
    assert_memory_equal(pcr, zero, sizeof(pcr));
    pv_rot_event *ev = NULL;
    size_t n = 99;
    assert_int_equal(pv_rot_event_log(f->rot, &ev, &n, &e), PV_OK);
    assert_int_equal(n, 0);
    assert_null(ev);

    /* The next extend starts from zero and starts a new log. */
    assert_int_equal(pv_rot_extend(f->rot, "c", d3, NULL, 0, &e), PV_OK);
    uint8_t want[PV_SHA256_LEN] = {0};
    extend_by_hand(want, d3);
    assert_int_equal(pv_rot_read_measurement(f->rot, pcr, &e), PV_OK);
    assert_memory_equal(pcr, want, sizeof(pcr));
    assert_int_equal(pv_rot_event_log(f->rot, &ev, &n, &e), PV_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ev[0].type, "c");
    pv_rot_events_free(ev, n);

    /* Counters and keys are not measurements: a reboot keeps them. */
    assert_int_equal(pv_rot_counter_advance(f->rot, 0, 3, &e), PV_OK);
    pv_boot_id_set_override(BOOT_A);
    uint64_t v = 0;
    assert_int_equal(pv_rot_counter_read(f->rot, 0, &v, &e), PV_OK);
    assert_int_equal(v, 3);
    /* A boot ID that cannot be read fails closed. */
    pv_boot_id_set_override("garbage");
    assert_int_equal(pv_rot_read_measurement(f->rot, pcr, &e), PV_ERR_ROT);
    assert_int_equal(pv_rot_extend(f->rot, "d", d1, NULL, 0, &e), PV_ERR_ROT);
    assert_int_equal(pv_rot_event_log(f->rot, &ev, &n, &e), PV_ERR_ROT);
}

/* Replaces the event log with bytes and expects reading it to fail with r and a message
 * that names the log. Extending must fail too rather than start a fresh log. */
static void log_refused(const fx *f, const void *bytes, size_t len, int r)
{
    pv_err e;
    pv_rot_event *ev = NULL;
    size_t n = 0;
    uint8_t d[PV_SHA256_LEN] = {1}, before[PV_SHA256_LEN], after[PV_SHA256_LEN];
    tu_write(f->log, bytes, len, 0600);
    pv_err_clear(&e);
    assert_int_equal(pv_rot_event_log(f->rot, &ev, &n, &e), r);
    assert_null(ev);
    assert_int_equal(n, 0);
    if (strstr(e.msg, "event log") == NULL || strstr(e.msg, f->log) == NULL) {
        fail_msg("unclear message: %s", e.msg);
    }
    assert_int_equal(pv_rot_read_measurement(f->rot, before, &e), PV_OK);
    assert_int_not_equal(pv_rot_extend(f->rot, "more", d, NULL, 0, &e), PV_OK);
    assert_int_equal(pv_rot_read_measurement(f->rot, after, &e), PV_OK);
    assert_memory_equal(before, after, sizeof(before));
}

static void test_log_damaged(void **state)
{
    fx *f = *state;
    pv_err e;
    uint8_t d[PV_SHA256_LEN];
    digest_of("kernel", d);
    assert_int_equal(pv_rot_extend(f->rot, "os-image", d, "v1", 2, &e), PV_OK);
    assert_int_equal(pv_rot_extend(f->rot, "boot-config", d, NULL, 0, &e), PV_OK);
    size_t len = 0;
    uint8_t *good = tu_read(f->log, &len);
    uint8_t *bad = malloc(len);
    assert_non_null(bad);

    log_refused(f, good, len - 1, PV_ERR_TRUNCATED); /* truncated */
    log_refused(f, good, 3, PV_ERR_TRUNCATED);
    log_refused(f, "garbage!", 8, PV_ERR_FORMAT);
    memcpy(bad, good, len);
    bad[2] = 0x02; /* { 1: 2, ... }: another version */
    log_refused(f, bad, len, PV_ERR_UNSUPPORTED);
    /* An event type in capitals. */
    memcpy(bad, good, len);
    uint8_t *t = memmem(bad, len, "os-image", 8);
    assert_non_null(t);
    t[0] = 'O';
    log_refused(f, bad, len, PV_ERR_FORMAT);
    /* A digest of 31 bytes (the 32nd taken as the next item's header). */
    memcpy(bad, good, len);
    uint8_t *h = memmem(bad, len, "\x58\x20", 2);
    assert_non_null(h);
    h[1] = 0x1f;
    log_refused(f, bad, len, PV_ERR_FORMAT);

    /* A digest changed in place still parses, but no longer replays to the PCR: this is
     * what a verifier catches. */
    memcpy(bad, good, len);
    h = memmem(bad, len, d, sizeof(d));
    assert_non_null(h);
    h[0] ^= 1;
    tu_write(f->log, bad, len, 0600);
    pv_rot_event *ev = NULL;
    size_t n = 0;
    uint8_t pcr[PV_SHA256_LEN], replayed[PV_SHA256_LEN];
    assert_int_equal(pv_rot_event_log(f->rot, &ev, &n, &e), PV_OK);
    assert_int_equal(n, 2);
    pv_rot_replay(ev, n, replayed);
    pv_rot_events_free(ev, n);
    assert_int_equal(pv_rot_read_measurement(f->rot, pcr, &e), PV_OK);
    assert_memory_not_equal(pcr, replayed, sizeof(pcr));

    /* Restored, it replays again. */
    tu_write(f->log, good, len, 0600);
    assert_log_matches_pcr(f->rot, 2);
    free(bad);
    free(good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_replay_empty),
        cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extend_and_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reboot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_damaged, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
