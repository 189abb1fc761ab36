/* SPDX-License-Identifier: Apache-2.0 */
/* The software root of trust (src/rot/rot_soft.c) through the public interface. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pavise/crypto.h"
#include "pavise/platform.h"
#include "pavise/rot.h"

#define BOOT_A "0f4c2b9e-6a1d-4c3e-9b7a-2d5e8f1a3c6b"

typedef struct fx {
    char *tmp;
    char *state;   /* state_dir */
    char *rot_dir; /* state_dir/rot */
    pv_rot_config cfg;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->tmp = tu_mkdtemp("rot_soft");
    f->state = tu_path(f->tmp, "state");
    f->rot_dir = tu_path(f->state, "rot");
    f->cfg.kind = PV_ROT_SOFTWARE;
    f->cfg.state_dir = f->state;
    pv_boot_id_set_override(BOOT_A);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    pv_boot_id_set_override(NULL);
    /* Tests leave read-only or foreign files behind; make the tree removable. */
    chmod(f->rot_dir, 0700);
    tu_rmtree(f->tmp);
    free(f->rot_dir);
    free(f->state);
    free(f->tmp);
    free(f);
    return 0;
}

static char *rot_file(const fx *f, const char *name)
{
    return tu_path(f->rot_dir, name);
}

static pv_rot *provision(const fx *f)
{
    pv_rot *rot = NULL;
    pv_err e;
    assert_int_equal(pv_rot_provision(&f->cfg, &rot, &e), PV_OK);
    assert_non_null(rot);
    return rot;
}

static pv_rot *open_ok(const fx *f)
{
    pv_rot *rot = NULL;
    pv_err e;
    int r = pv_rot_open(&f->cfg, &rot, &e);
    if (r != PV_OK) {
        fail_msg("pv_rot_open: %s", e.msg);
    }
    return rot;
}

/* Opens, expecting failure r with a message that contains want. */
static void open_fails(const fx *f, int r, const char *want)
{
    pv_rot *rot = NULL;
    pv_err e;
    pv_err_clear(&e);
    assert_int_equal(pv_rot_open(&f->cfg, &rot, &e), r);
    assert_null(rot);
    if (want != NULL && strstr(e.msg, want) == NULL) {
        fail_msg("message \"%s\" does not mention \"%s\"", e.msg, want);
    }
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    return st.st_mode & 07777;
}

static void test_provision_and_open(void **state)
{
    fx *f = *state;
    pv_err e;
    open_fails(f, PV_ERR_NOT_FOUND, "no software root of trust");
    pv_rot *rot = provision(f);
    assert_int_equal(pv_rot_get_kind(rot), PV_ROT_SOFTWARE);
    pv_rot *again = NULL;
    assert_int_equal(pv_rot_provision(&f->cfg, &again, &e), PV_ERR_EXISTS);
    assert_null(again);

    /* Device ID: SHA-256 of the identity key's SubjectPublicKeyInfo, in hex. */
    char id[PV_DEVICE_ID_HEX_LEN + 1], id2[PV_DEVICE_ID_HEX_LEN + 1];
    assert_int_equal(pv_rot_device_id(rot, id, &e), PV_OK);
    assert_int_equal(strlen(id), PV_DEVICE_ID_HEX_LEN);
    pv_key *ident = NULL, *att = NULL;
    assert_int_equal(pv_rot_identity_key(rot, &ident, &e), PV_OK);
    assert_int_equal(pv_rot_attestation_key(rot, &att, &e), PV_OK);
    assert_int_equal(pv_device_id_of_key(ident, id2), PV_OK);
    assert_string_equal(id, id2);
    uint8_t kid[PV_KEY_ID_LEN];
    char kid_hex[2 * PV_KEY_ID_LEN + 1];
    assert_int_equal(pv_key_id(ident, kid), PV_OK);
    pv_hex_encode(kid, sizeof(kid), kid_hex, sizeof(kid_hex));
    assert_string_equal(id, kid_hex);
    assert_false(pv_key_equal_public(ident, att));
    pv_rot_close(rot);

    /* The same identity after reopening; still provisioned. */
    rot = open_ok(f);
    assert_int_equal(pv_rot_device_id(rot, id2, &e), PV_OK);
    assert_string_equal(id, id2);
    pv_key *att2 = NULL;
    assert_int_equal(pv_rot_attestation_key(rot, &att2, &e), PV_OK);
    assert_true(pv_key_equal_public(att, att2));
    pv_rot_close(rot);
    assert_int_equal(pv_rot_provision(&f->cfg, &again, &e), PV_ERR_EXISTS);
    pv_key_free(ident);
    pv_key_free(att);
    pv_key_free(att2);
    pv_rot_close(NULL);
}

static void test_keys_are_public_only(void **state)
{
    fx *f = *state;
    pv_err e;
    pv_rot *rot = provision(f);
    pv_key *ident = NULL, *att = NULL;
    assert_int_equal(pv_rot_identity_key(rot, &ident, &e), PV_OK);
    assert_int_equal(pv_rot_attestation_key(rot, &att, &e), PV_OK);
    assert_false(pv_key_has_private(ident));
    assert_false(pv_key_has_private(att));
    uint8_t sig[PV_ES256_SIG_LEN];
    assert_int_equal(pv_key_sign_es256(att, "x", 1, sig, &e), PV_ERR_INVALID_ARG);
    pv_key_free(ident);
    pv_key_free(att);
    pv_rot_close(rot);
    rot = open_ok(f);
    assert_int_equal(pv_rot_identity_key(rot, &ident, &e), PV_OK);
    assert_false(pv_key_has_private(ident));
    pv_key_free(ident);
    pv_rot_close(rot);
}

static void test_sign(void **state)
{
    fx *f = *state;
    pv_err e;
    pv_rot *rot = provision(f);
    pv_key *att = NULL, *ident = NULL;
    assert_int_equal(pv_rot_attestation_key(rot, &att, &e), PV_OK);
    assert_int_equal(pv_rot_identity_key(rot, &ident, &e), PV_OK);
    static const char msg[] = "attestation quote";
    uint8_t sig[PV_ES256_SIG_LEN];
    assert_int_equal(pv_rot_sign(rot, msg, sizeof(msg), sig, &e), PV_OK);
    assert_int_equal(pv_key_verify_es256(att, msg, sizeof(msg), sig, &e), PV_OK);
    char tampered[sizeof(msg)];
    memcpy(tampered, msg, sizeof(msg));
    tampered[0] ^= 1;
    assert_int_equal(pv_key_verify_es256(att, tampered, sizeof(msg), sig, &e), PV_ERR_SIGNATURE);
    /* The identity key does not sign attestations. */
    assert_int_equal(pv_key_verify_es256(ident, msg, sizeof(msg), sig, &e), PV_ERR_SIGNATURE);
    /* An empty message, and one over the limit. */
    assert_int_equal(pv_rot_sign(rot, NULL, 0, sig, &e), PV_OK);
    assert_int_equal(pv_key_verify_es256(att, "", 0, sig, &e), PV_OK);
    assert_int_equal(pv_rot_sign(rot, msg, PV_ROT_MAX_SIGN_INPUT + 1, sig, &e), PV_ERR_TOO_LARGE);
    pv_rot_close(rot);

    /* After reopening, the key loaded from its file signs for the same public key. */
    rot = open_ok(f);
    assert_int_equal(pv_rot_sign(rot, msg, sizeof(msg), sig, &e), PV_OK);
    assert_int_equal(pv_key_verify_es256(att, msg, sizeof(msg), sig, &e), PV_OK);
    pv_rot_close(rot);
    pv_key_free(att);
    pv_key_free(ident);
}

static void test_random(void **state)
{
    fx *f = *state;
    pv_err e;
    pv_rot *rot = provision(f);
    uint8_t a[64], b[64], zero[64] = {0};
    assert_int_equal(pv_rot_random(rot, a, sizeof(a), &e), PV_OK);
    assert_int_equal(pv_rot_random(rot, b, sizeof(b), &e), PV_OK);
    assert_memory_not_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, zero, sizeof(a));
    assert_int_equal(pv_rot_random(rot, a, 0, &e), PV_OK);
    uint8_t *big = malloc(PV_ROT_MAX_RANDOM + 1);
    assert_non_null(big);
    assert_int_equal(pv_rot_random(rot, big, PV_ROT_MAX_RANDOM, &e), PV_OK);
    assert_int_equal(pv_rot_random(rot, big, PV_ROT_MAX_RANDOM + 1, &e), PV_ERR_TOO_LARGE);
    free(big);
    pv_rot_close(rot);
}

static void test_counters(void **state)
{
    fx *f = *state;
    pv_err e;
    uint64_t v = 99;
    pv_rot *rot = provision(f);
    for (unsigned i = 0; i < PV_ROT_COUNTERS; i++) {
        assert_int_equal(pv_rot_counter_read(rot, i, &v, &e), PV_OK);
        assert_int_equal(v, 0);
    }
    assert_int_equal(pv_rot_counter_read(rot, PV_ROT_COUNTERS, &v, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_rot_counter_advance(rot, PV_ROT_COUNTERS, 1, &e), PV_ERR_INVALID_ARG);

    assert_int_equal(pv_rot_counter_advance(rot, PV_ROT_COUNTER_OS, 5, &e), PV_OK);
    assert_int_equal(pv_rot_counter_read(rot, PV_ROT_COUNTER_OS, &v, &e), PV_OK);
    assert_int_equal(v, 5);
    assert_int_equal(pv_rot_counter_advance(rot, PV_ROT_COUNTER_OS, 5, &e), PV_OK); /* no-op */
    assert_int_equal(pv_rot_counter_advance(rot, PV_ROT_COUNTER_OS, 4, &e), PV_ERR_ROLLBACK);
    assert_int_equal(pv_rot_counter_advance(rot, PV_ROT_COUNTER_OS, 0, &e), PV_ERR_ROLLBACK);
    assert_int_equal(
        pv_rot_counter_advance(rot, PV_ROT_COUNTER_OS, 5 + PV_ROT_MAX_COUNTER_STEP + 1, &e),
        PV_ERR_TOO_LARGE);
    assert_int_equal(pv_rot_counter_advance(rot, PV_ROT_COUNTER_OS, UINT64_MAX, &e),
                     PV_ERR_TOO_LARGE);
    assert_int_equal(pv_rot_counter_read(rot, PV_ROT_COUNTER_OS, &v, &e), PV_OK);
    assert_int_equal(v, 5);
    assert_int_equal(
        pv_rot_counter_advance(rot, PV_ROT_COUNTER_OS, 5 + PV_ROT_MAX_COUNTER_STEP, &e), PV_OK);
    assert_int_equal(pv_rot_counter_advance(rot, 7, 3, &e), PV_OK);
    pv_rot_close(rot);

    /* They persist, each on its own. */
    rot = open_ok(f);
    assert_int_equal(pv_rot_counter_read(rot, PV_ROT_COUNTER_OS, &v, &e), PV_OK);
    assert_int_equal(v, 5 + PV_ROT_MAX_COUNTER_STEP);
    assert_int_equal(pv_rot_counter_read(rot, 7, &v, &e), PV_OK);
    assert_int_equal(v, 3);
    for (unsigned i = 1; i < 7; i++) {
        assert_int_equal(pv_rot_counter_read(rot, i, &v, &e), PV_OK);
        assert_int_equal(v, 0);
    }
    assert_int_equal(pv_rot_counter_advance(rot, 7, 2, &e), PV_ERR_ROLLBACK);
    pv_rot_close(rot);
    /* No temporary file left behind by the atomic rewrites. */
    assert_int_equal(tu_count_entries(f->rot_dir), 5);
}

/* Two handles share the file: an advance through one is seen by the other and does not
 * undo the other's. */
static void test_counters_two_handles(void **state)
{
    fx *f = *state;
    pv_err e;
    uint64_t v = 0;
    pv_rot *a = provision(f);
    pv_rot *b = open_ok(f);
    assert_int_equal(pv_rot_counter_advance(a, 1, 5, &e), PV_OK);
    assert_int_equal(pv_rot_counter_advance(b, 2, 3, &e), PV_OK);
    assert_int_equal(pv_rot_counter_read(b, 1, &v, &e), PV_OK);
    assert_int_equal(v, 5);
    assert_int_equal(pv_rot_counter_read(a, 2, &v, &e), PV_OK);
    assert_int_equal(v, 3);
    assert_int_equal(pv_rot_counter_advance(b, 1, 4, &e), PV_ERR_ROLLBACK);
    pv_rot_close(a);
    pv_rot_close(b);
}

/* Processes advancing different counters at once lose no update (the directory lock). */
static void test_counters_concurrent(void **state)
{
    fx *f = *state;
    enum { PROCS = 4, STEPS = 25 };
    pv_rot_close(provision(f));
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            pv_rot *rot = NULL;
            int bad = pv_rot_open(&f->cfg, &rot, NULL) != PV_OK;
            for (uint64_t i = 1; !bad && i <= STEPS; i++) {
                bad = pv_rot_counter_advance(rot, (unsigned)p + 1, i, NULL) != PV_OK;
            }
            pv_rot_close(rot);
            _exit(bad);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int status = 0;
        assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    pv_err e;
    pv_rot *rot = open_ok(f);
    for (unsigned i = 1; i <= PROCS; i++) {
        uint64_t v = 0;
        assert_int_equal(pv_rot_counter_read(rot, i, &v, &e), PV_OK);
        assert_int_equal(v, STEPS);
    }
    pv_rot_close(rot);
}

/* Writes bytes as the counters file and checks that they are refused both by an open
 * root of trust and by a new open, never read as a value. */
static void counters_refused(const fx *f, pv_rot *rot, const void *bytes, size_t len)
{
    pv_err e;
    uint64_t v = 1234;
    char *path = rot_file(f, "counters");
    tu_write(path, bytes, len, 0600);
    pv_err_clear(&e);
    assert_int_equal(pv_rot_counter_read(rot, 0, &v, &e), PV_ERR_ROT);
    assert_non_null(strstr(e.msg, "counters"));
    assert_int_equal(v, 0); /* cleared, not a value from the file */
    assert_int_equal(pv_rot_counter_advance(rot, 0, 1, &e), PV_ERR_ROT);
    open_fails(f, PV_ERR_ROT, "counters");
    free(path);
}

static void test_counters_damaged(void **state)
{
    fx *f = *state;
    pv_err e;
    pv_rot *rot = provision(f);
    assert_int_equal(pv_rot_counter_advance(rot, 0, 7, &e), PV_OK);
    char *path = rot_file(f, "counters");
    size_t len = 0;
    uint8_t *good = tu_read(path, &len);
    /* The documented form: { 1: 1, 2: [7, 0, 0, 0, 0, 0, 0, 0] }. */
    static const uint8_t expect[] = {0xa2, 0x01, 0x01, 0x02, 0x88, 0x07, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(len, sizeof(expect));
    assert_memory_equal(good, expect, sizeof(expect));

    counters_refused(f, rot, good, len - 1); /* truncated */
    counters_refused(f, rot, "", 0);         /* empty */
    uint8_t bad[sizeof(expect)];
    memcpy(bad, expect, sizeof(bad));
    bad[0] = 0xff; /* garbled */
    counters_refused(f, rot, bad, sizeof(bad));
    memcpy(bad, expect, sizeof(bad));
    bad[2] = 0x02; /* version 2 */
    counters_refused(f, rot, bad, sizeof(bad));
    memcpy(bad, expect, sizeof(bad));
    bad[4] = 0x87; /* seven counters */
    counters_refused(f, rot, bad, sizeof(bad) - 1);
    memcpy(bad, expect, sizeof(bad));
    bad[5] = 0x40; /* a byte string where a counter belongs */
    counters_refused(f, rot, bad, sizeof(bad));
    /* The same value in a longer form than the shortest: not the deterministic encoding. */
    static const uint8_t long_form[] = {0xa2, 0x01, 0x01, 0x02, 0x88, 0x18, 0x07,
                                        0,    0,    0,    0,    0,    0,    0};
    counters_refused(f, rot, long_form, sizeof(long_form));
    uint8_t trailing[sizeof(expect) + 1];
    memcpy(trailing, expect, sizeof(expect));
    trailing[sizeof(expect)] = 0;
    counters_refused(f, rot, trailing, sizeof(trailing));
    uint8_t *huge = calloc(1, 4096);
    assert_non_null(huge);
    memcpy(huge, expect, sizeof(expect));
    counters_refused(f, rot, huge, 4096); /* oversized */
    free(huge);

    /* Missing is damage too, not a fresh set of zeros. */
    assert_int_equal(unlink(path), 0);
    uint64_t v = 1;
    assert_int_equal(pv_rot_counter_read(rot, 0, &v, &e), PV_ERR_ROT);
    assert_int_equal(pv_rot_counter_advance(rot, 0, 8, &e), PV_ERR_ROT);
    open_fails(f, PV_ERR_ROT, "counters is missing");

    /* Put back, it reads again. */
    tu_write(path, good, len, 0600);
    assert_int_equal(pv_rot_counter_read(rot, 0, &v, &e), PV_OK);
    assert_int_equal(v, 7);
    pv_rot_close(rot);
    free(good);
    free(path);
}

static void test_pcr_damaged(void **state)
{
    fx *f = *state;
    pv_err e;
    pv_rot *rot = provision(f);
    char *path = rot_file(f, "pcr");
    size_t len = 0;
    uint8_t *good = tu_read(path, &len);
    /* { 1: 1, 2: "boot-" BOOT_A, 3: h'00...00' } */
    assert_int_equal(len, 4 + 2 + 5 + 36 + 1 + 2 + 32);
    assert_memory_equal(good,
                        "\xa3\x01\x01\x02\x78\x29"
                        "boot-" BOOT_A "\x03\x58\x20",
                        50);
    tu_write(path, good, len - 1, 0600);
    uint8_t pcr[PV_SHA256_LEN];
    assert_int_equal(pv_rot_read_measurement(rot, pcr, &e), PV_ERR_ROT);
    uint8_t d[PV_SHA256_LEN] = {1};
    assert_int_equal(pv_rot_extend(rot, "os-image", d, NULL, 0, &e), PV_ERR_ROT);
    open_fails(f, PV_ERR_ROT, "pcr");
    tu_write(path, good, len, 0600);
    assert_int_equal(pv_rot_read_measurement(rot, pcr, &e), PV_OK);
    pv_rot_close(rot);
    free(good);
    free(path);
}

static void test_fuse(void **state)
{
    fx *f = *state;
    pv_err e;
    uint8_t anchor[PV_SHA256_LEN], other[PV_SHA256_LEN], got[PV_SHA256_LEN];
    memset(anchor, 0xa5, sizeof(anchor));
    memset(other, 0x5a, sizeof(other));
    pv_rot *rot = provision(f);
    assert_int_equal(pv_rot_trust_anchor(rot, got, &e), PV_ERR_NOT_FOUND);
    assert_int_equal(pv_rot_fuse_trust_anchor(rot, anchor, &e), PV_OK);
    assert_int_equal(pv_rot_trust_anchor(rot, got, &e), PV_OK);
    assert_memory_equal(got, anchor, sizeof(got));
    assert_int_equal(pv_rot_fuse_trust_anchor(rot, anchor, &e), PV_ERR_LOCKED);
    assert_int_equal(pv_rot_fuse_trust_anchor(rot, other, &e), PV_ERR_LOCKED);
    pv_rot_close(rot);

    char *path = rot_file(f, "fuse");
    assert_int_equal(mode_of(path), 0400);
    size_t len = 0;
    uint8_t *raw = tu_read(path, &len);
    assert_int_equal(len, 38); /* { 1: 1, 2: h'a5...' } */
    assert_memory_equal(raw, "\xa2\x01\x01\x02\x58\x20", 6);
    assert_memory_equal(raw + 6, anchor, sizeof(anchor));

    rot = open_ok(f);
    assert_int_equal(pv_rot_trust_anchor(rot, got, &e), PV_OK);
    assert_memory_equal(got, anchor, sizeof(got));
    assert_int_equal(pv_rot_fuse_trust_anchor(rot, other, &e), PV_ERR_LOCKED);

    /* A damaged fuse is an error, not "unfused" (which would let it be fused again). */
    assert_int_equal(unlink(path), 0);
    tu_write(path, raw, len - 1, 0400);
    assert_int_equal(pv_rot_trust_anchor(rot, got, &e), PV_ERR_ROT);
    assert_int_equal(pv_rot_fuse_trust_anchor(rot, other, &e), PV_ERR_LOCKED);
    pv_rot_close(rot);
    open_fails(f, PV_ERR_ROT, "fuse");

    /* Provisioning again over a fuse without its record is refused. */
    assert_int_equal(unlink(path), 0);
    tu_write(path, raw, len, 0400);
    char *marker = rot_file(f, "provisioned");
    assert_int_equal(unlink(marker), 0);
    pv_rot *again = NULL;
    assert_int_equal(pv_rot_provision(&f->cfg, &again, &e), PV_ERR_EXISTS);
    assert_non_null(strstr(e.msg, "fused"));
    free(marker);
    free(raw);
    free(path);
}

static void test_file_modes(void **state)
{
    fx *f = *state;
    pv_err e;
    pv_rot *rot = provision(f);
    uint8_t anchor[PV_SHA256_LEN] = {1};
    assert_int_equal(pv_rot_fuse_trust_anchor(rot, anchor, &e), PV_OK);
    pv_rot_close(rot);
    assert_int_equal(mode_of(f->rot_dir), 0700);
    static const struct {
        const char *name;
        mode_t mode;
    } files[] = {
        {"identity.key", 0600}, {"attestation.key", 0600}, {"counters", 0600},
        {"pcr", 0600},          {"provisioned", 0600},     {"fuse", 0400},
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *p = rot_file(f, files[i].name);
        assert_int_equal(mode_of(p), files[i].mode);
        free(p);
    }
    assert_int_equal(tu_count_entries(f->rot_dir), 6);
}

static void test_permissions(void **state)
{
    fx *f = *state;
    pv_rot_close(provision(f));
    char *key = rot_file(f, "identity.key");
    char *att = rot_file(f, "attestation.key");

    assert_int_equal(chmod(key, 0644), 0);
    open_fails(f, PV_ERR_ROT, "identity.key is accessible by group or others");
    assert_int_equal(chmod(key, 0640), 0);
    open_fails(f, PV_ERR_ROT, "identity.key");
    assert_int_equal(chmod(key, 0602), 0);
    open_fails(f, PV_ERR_ROT, "identity.key");
    assert_int_equal(chmod(key, 0600), 0);
    pv_rot_close(open_ok(f));

    /* Any file in the directory, not only the ones the backend reads. */
    char *stray = rot_file(f, "stray");
    tu_write(stray, "x", 1, 0644);
    open_fails(f, PV_ERR_ROT, "stray");
    assert_int_equal(unlink(stray), 0);

    /* The directory itself is refused, not quietly tightened. */
    assert_int_equal(chmod(f->rot_dir, 0750), 0);
    open_fails(f, PV_ERR_ROT, f->rot_dir);
    assert_int_equal(mode_of(f->rot_dir), 0750);
    assert_int_equal(chmod(f->rot_dir, 0701), 0);
    open_fails(f, PV_ERR_ROT, "accessible by group or others");
    assert_int_equal(chmod(f->rot_dir, 0700), 0);
    pv_rot_close(open_ok(f));

    /* A key replaced by a symbolic link to a good copy elsewhere. */
    char *copy = tu_path(f->tmp, "att-copy.key");
    assert_int_equal(rename(att, copy), 0);
    assert_int_equal(symlink(copy, att), 0);
    open_fails(f, PV_ERR_ROT, "attestation.key is a symbolic link");
    assert_int_equal(unlink(att), 0);
    assert_int_equal(rename(copy, att), 0);
    pv_rot_close(open_ok(f));

    /* A file swapped for a link while the root of trust is open is refused when read. */
    pv_err e;
    pv_rot *rot = open_ok(f);
    char *counters = rot_file(f, "counters");
    char *ccopy = tu_path(f->tmp, "counters-copy");
    assert_int_equal(rename(counters, ccopy), 0);
    assert_int_equal(symlink(ccopy, counters), 0);
    uint64_t v = 0;
    assert_int_equal(pv_rot_counter_read(rot, 0, &v, &e), PV_ERR_ROT);
    assert_non_null(strstr(e.msg, "counters is a symbolic link"));
    assert_int_equal(unlink(counters), 0);
    assert_int_equal(rename(ccopy, counters), 0);
    assert_int_equal(chmod(counters, 0660), 0);
    assert_int_equal(pv_rot_counter_read(rot, 0, &v, &e), PV_ERR_ROT);
    assert_non_null(strstr(e.msg, "counters is accessible by group or others"));
    assert_int_equal(chmod(counters, 0600), 0);
    assert_int_equal(pv_rot_counter_read(rot, 0, &v, &e), PV_OK);
    pv_rot_close(rot);
    free(ccopy);
    free(counters);

    /* A dangling link as stray entry. */
    assert_int_equal(symlink("/nonexistent", stray), 0);
    open_fails(f, PV_ERR_ROT, "stray is a symbolic link");
    assert_int_equal(unlink(stray), 0);

    /* The rot directory as a link to a good copy. */
    char *moved = tu_path(f->tmp, "rot-moved");
    assert_int_equal(rename(f->rot_dir, moved), 0);
    assert_int_equal(symlink(moved, f->rot_dir), 0);
    open_fails(f, PV_ERR_ROT, "rot");
    assert_int_equal(unlink(f->rot_dir), 0);
    assert_int_equal(rename(moved, f->rot_dir), 0);
    pv_rot_close(open_ok(f));

    /* Owned by someone else (only root can give a file away). */
    if (geteuid() == 0) {
        assert_int_equal(chown(key, 1, 1), 0);
        open_fails(f, PV_ERR_ROT, "identity.key is owned by uid 1");
        assert_int_equal(chown(key, 0, 0), 0);
        assert_int_equal(chown(f->rot_dir, 1, 1), 0);
        open_fails(f, PV_ERR_ROT, "is owned by uid 1");
        assert_int_equal(chown(f->rot_dir, 0, 0), 0);
        pv_rot_close(open_ok(f));
    }
    free(moved);
    free(copy);
    free(stray);
    free(att);
    free(key);
}

static void test_key_damaged(void **state)
{
    fx *f = *state;
    pv_err e;
    pv_rot_close(provision(f));
    char *key = rot_file(f, "identity.key");
    char *att = rot_file(f, "attestation.key");
    size_t len = 0;
    uint8_t *good = tu_read(key, &len);

    tu_write(key, good, len / 2, 0600);
    open_fails(f, PV_ERR_ROT, "identity.key is not an unencrypted PEM private key");
    /* The message names the file, never its contents. */
    pv_rot *rot = NULL;
    assert_int_equal(pv_rot_open(&f->cfg, &rot, &e), PV_ERR_ROT);
    assert_null(strstr(e.msg, "PRIVATE KEY"));

    /* Another valid key in its place is not the provisioned identity. */
    pv_key *k = NULL;
    assert_int_equal(pv_key_generate(&k, &e), PV_OK);
    assert_int_equal(unlink(key), 0);
    assert_int_equal(pv_key_save_private_pem(k, key, &e), PV_OK);
    pv_key_free(k);
    open_fails(f, PV_ERR_ROT, "identity.key is not the key that was provisioned");

    /* The two keys swapped. */
    size_t alen = 0;
    uint8_t *agood = tu_read(att, &alen);
    tu_write(key, agood, alen, 0600);
    tu_write(att, good, len, 0600);
    open_fails(f, PV_ERR_ROT, "not the key that was provisioned");

    unlink(att);
    tu_write(key, good, len, 0600);
    open_fails(f, PV_ERR_ROT, "attestation.key is missing");
    tu_write(att, agood, alen, 0600);
    pv_rot_close(open_ok(f));
    free(agood);
    free(good);
    free(att);
    free(key);
}

static void test_interrupted_provisioning(void **state)
{
    fx *f = *state;
    pv_err e;
    pv_rot *rot = provision(f);
    char id1[PV_DEVICE_ID_HEX_LEN + 1], id2[PV_DEVICE_ID_HEX_LEN + 1];
    assert_int_equal(pv_rot_device_id(rot, id1, &e), PV_OK);
    pv_rot_close(rot);
    /* Without the record (written last), the rest was never used: open says not
     * provisioned, and provisioning starts over. */
    char *marker = rot_file(f, "provisioned");
    assert_int_equal(unlink(marker), 0);
    open_fails(f, PV_ERR_NOT_FOUND, NULL);
    rot = provision(f);
    assert_int_equal(pv_rot_device_id(rot, id2, &e), PV_OK);
    assert_string_not_equal(id1, id2);
    pv_rot_close(rot);
    assert_int_equal(tu_count_entries(f->rot_dir), 5);

    /* A damaged record is not "unprovisioned". */
    tu_write(marker, "\xa0", 1, 0600);
    open_fails(f, PV_ERR_ROT, "provisioned is damaged");
    free(marker);
}

static void test_provision_failure_leaves_nothing(void **state)
{
    fx *f = *state;
    pv_err e;
    pv_rot *rot = NULL;
    pv_boot_id_set_override("not-a-boot-id");
    assert_int_equal(pv_rot_provision(&f->cfg, &rot, &e), PV_ERR_ROT);
    assert_non_null(strstr(e.msg, "boot ID"));
    assert_null(rot);
    assert_int_equal(tu_count_entries(f->rot_dir), 0);
    pv_boot_id_set_override(BOOT_A);
    pv_rot_close(provision(f));
}

static void test_boot_id_seam(void **state)
{
    (void)state;
    char id[PV_BOOT_ID_LEN + 1];
    pv_boot_id_set_override(BOOT_A);
    assert_int_equal(pv_boot_id(id), PV_OK);
    assert_string_equal(id, BOOT_A);
    static const char *const bad[] = {
        "",
        "0F4C2B9E-6A1D-4C3E-9B7A-2D5E8F1A3C6B",   /* uppercase */
        "0f4c2b9e-6a1d-4c3e-9b7a-2d5e8f1a3c6",    /* short */
        "0f4c2b9e-6a1d-4c3e-9b7a-2d5e8f1a3c6bb",  /* long */
        "0f4c2b9e-6a1d-4c3e-9b7a-2d5e8f1a3c6b\n", /* the file's newline is not the override's */
        "0f4c2b9e6-a1d-4c3e-9b7a-2d5e8f1a3c6b",   /* dash misplaced */
        "0f4c2b9e-6a1d-4c3e-9b7a-2d5e8f1a3c6g",   /* not hex */
        "0f4c2b9e-6a1d-4c3e-9b7a-2d5e8f1a3c6b0f4c2b9e-6a1d-4c3e-9b7a-2d5e8f1a3c6b0f4c",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pv_boot_id_set_override(bad[i]);
        strcpy(id, "x");
        assert_int_equal(pv_boot_id(id), PV_ERR_FORMAT);
        assert_string_equal(id, "");
    }
    /* Without an override, the kernel's. */
    pv_boot_id_set_override(NULL);
    int r = pv_boot_id(id);
    if (access("/proc/sys/kernel/random/boot_id", R_OK) == 0) {
        assert_int_equal(r, PV_OK);
        assert_int_equal(strlen(id), PV_BOOT_ID_LEN);
        char again[PV_BOOT_ID_LEN + 1];
        assert_int_equal(pv_boot_id(again), PV_OK);
        assert_string_equal(id, again);
    }
    pv_boot_id_set_override(BOOT_A);
}

static void test_tpm_only_ops(void **state)
{
    fx *f = *state;
    pv_err e;
    pv_rot *rot = provision(f);
    pv_buf *b = pv_buf_new(4096);
    assert_non_null(b);
    assert_int_equal(pv_rot_ek_certificate(rot, b, &e), PV_ERR_UNSUPPORTED);
    assert_int_equal(pv_rot_attestation_key_tpm_public(rot, b, &e), PV_ERR_UNSUPPORTED);
    uint8_t x[4] = {1, 2, 3, 4};
    assert_int_equal(pv_rot_activate_credential(rot, x, sizeof(x), x, sizeof(x), b, &e),
                     PV_ERR_UNSUPPORTED);
    assert_int_equal(pv_buf_len(b), 0);
    pv_buf_free(b);
    pv_rot_close(rot);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_provision_and_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_are_public_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters_two_handles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pcr_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permissions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupted_provisioning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provision_failure_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_boot_id_seam, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tpm_only_ops, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
