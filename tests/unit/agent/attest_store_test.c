/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The certificate store (src/agent/certstore.c) and attestation.json: what each verdict
 * leaves under STATE/certs, file modes, atomic replacement (a reader holding the old
 * file keeps reading the old contents; no temporary file is left), the client
 * certificate removed as soon as a verdict is not passed, and strict reading back.
 * Also pv_attest_run's refusals before anything is sent, which change nothing.
 */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attest_internal.h"
#include "pavise/devstate.h"
#include "pavise/platform.h"

#define DEVICE_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define NOW       ((int64_t)1900000000)

typedef struct fx {
    char *dir;
    pv_key *ca_key, *tls;
    pv_cert *ca, *svc, *client;
    attest_response passed, identity;
} fx;

static void must(int r, const pv_err *e)
{
    if (r != PV_OK) {
        fail_msg("%d: %s", r, pv_err_msg(e));
    }
}

static pv_cert *cert(const char *subject, const pv_key *key, const pv_cert *ca,
                     const pv_key *ca_key, bool is_ca)
{
    pv_err e;
    pv_cert *c = NULL;
    pv_cert_params p = {.subject = subject,
                        .not_before = NOW - 300,
                        .not_after = NOW + 86400,
                        .is_ca = is_ca,
                        .client_auth = !is_ca,
                        .path_len = is_ca ? 0 : -1};
    must(pv_cert_create(&p, key, ca, ca_key, &c, &e), &e);
    return c;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    pv_err e;
    assert_non_null(f);
    f->dir = tu_mkdtemp("attest_store");
    must(pv_key_generate(&f->ca_key, &e), &e);
    must(pv_key_generate(&f->tls, &e), &e);
    f->ca = cert("CN=CA", f->ca_key, NULL, NULL, true);
    f->svc = cert("CN=" DEVICE_ID ",OU=device", f->tls, f->ca, f->ca_key, false);
    f->client = cert("CN=" DEVICE_ID ",O=t", f->tls, f->ca, f->ca_key, false);
    f->passed.verdict = PV_ATTEST_PASSED;
    f->passed.service_cert = pv_cert_ref(f->svc);
    f->passed.service_ca = pv_cert_ref(f->ca);
    f->passed.client_cert = pv_cert_ref(f->client);
    f->passed.client_chain = pv_chain_new();
    assert_int_equal(pv_chain_add(f->passed.client_chain, f->ca), PV_OK);
    f->identity.verdict = PV_ATTEST_IDENTITY_ONLY;
    f->identity.service_cert = pv_cert_ref(f->svc);
    f->identity.service_ca = pv_cert_ref(f->ca);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    attest_response_free(&f->passed);
    attest_response_free(&f->identity);
    pv_cert_free(f->ca);
    pv_cert_free(f->svc);
    pv_cert_free(f->client);
    pv_key_free(f->ca_key);
    pv_key_free(f->tls);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static char *path(fx *f, const char *rel)
{
    return tu_path(f->dir, rel);
}

static bool exists(fx *f, const char *rel)
{
    char *p = path(f, rel);
    bool r = tu_exists(p);
    free(p);
    return r;
}

static mode_t mode_of(fx *f, const char *rel)
{
    char *p = path(f, rel);
    struct stat st;
    assert_int_equal(lstat(p, &st), 0);
    free(p);
    return st.st_mode & 07777;
}

static char *slurp(fx *f, const char *rel)
{
    char *p = path(f, rel);
    size_t n = 0;
    uint8_t *d = tu_read(p, &n);
    free(p);
    char *s = malloc(n + 1);
    assert_non_null(s);
    memcpy(s, d, n);
    s[n] = '\0';
    free(d);
    return s;
}

static pv_attest_result result(pv_attest_verdict v, const char *reason)
{
    pv_attest_result r;
    memset(&r, 0, sizeof(r));
    r.verdict = v;
    snprintf(r.reason, sizeof(r.reason), "%s", reason);
    r.at = NOW;
    r.service_not_after = v != PV_ATTEST_FAILED ? NOW + 48 * 3600 : 0;
    r.client_not_after = v == PV_ATTEST_PASSED ? NOW + 24 * 3600 : 0;
    return r;
}

static void store(fx *f, const attest_response *rsp, const char *key, pv_attest_result res)
{
    pv_err e;
    must(attest_store(f->dir, rsp, (const uint8_t *)key, key != NULL ? strlen(key) : 0, &res, &e),
         &e);
}

static void test_passed_then_identity_only(void **state)
{
    fx *f = *state;
    pv_err e;
    store(f, &f->passed, "KEY ONE\n", result(PV_ATTEST_PASSED, ""));
    assert_int_equal(mode_of(f, "certs"), 0700);
    assert_int_equal(mode_of(f, PV_ATTEST_TLS_KEY), 0600);
    assert_int_equal(mode_of(f, PV_ATTEST_SERVICE_CRT), 0644);
    char *certs = path(f, "certs");
    assert_int_equal(tu_count_entries(certs), 6); /* and no temporary file */
    char *key = slurp(f, PV_ATTEST_TLS_KEY);
    assert_string_equal(key, "KEY ONE\n");
    free(key);

    /* Each certificate file holds what the response had. */
    static const struct {
        const char *rel;
        int which;
    } files[] = {{PV_ATTEST_SERVICE_CRT, 0},
                 {PV_ATTEST_SERVICE_CA, 1},
                 {PV_ATTEST_CLIENT_CRT, 2},
                 {PV_ATTEST_CLIENT_CHAIN, 1}};
    pv_cert *want[] = {f->svc, f->ca, f->client};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *p = path(f, files[i].rel);
        pv_chain *ch = NULL;
        must(pv_chain_load_pem(p, &ch, &e), &e);
        assert_int_equal(pv_chain_count(ch), 1);
        uint8_t a[PV_SHA256_LEN], b[PV_SHA256_LEN];
        pv_cert_fingerprint(pv_chain_get(ch, 0), a);
        pv_cert_fingerprint(want[files[i].which], b);
        assert_memory_equal(a, b, sizeof(a));
        pv_chain_free(ch);
        free(p);
    }
    pv_attest_result st;
    must(pv_attest_load_status(f->dir, &st, &e), &e);
    assert_int_equal(st.verdict, PV_ATTEST_PASSED);
    assert_string_equal(st.reason, "");
    assert_int_equal(st.at, NOW);
    assert_int_equal(st.service_not_after, NOW + 48 * 3600);
    assert_int_equal(st.client_not_after, NOW + 24 * 3600);

    /* A reader that opened the key keeps the old contents: replaced, never rewritten. */
    char *kp = path(f, PV_ATTEST_TLS_KEY);
    int fd = open(kp, O_RDONLY);
    assert_true(fd >= 0);

    store(f, &f->identity, "KEY TWO\n", result(PV_ATTEST_IDENTITY_ONLY, "unclaimed"));
    assert_false(exists(f, PV_ATTEST_CLIENT_CRT));
    assert_false(exists(f, PV_ATTEST_CLIENT_CHAIN));
    assert_true(exists(f, PV_ATTEST_SERVICE_CRT));
    assert_int_equal(tu_count_entries(certs), 4);
    key = slurp(f, PV_ATTEST_TLS_KEY);
    assert_string_equal(key, "KEY TWO\n");
    free(key);
    char old[16] = {0};
    assert_int_equal(read(fd, old, sizeof(old) - 1), 8);
    assert_string_equal(old, "KEY ONE\n");
    close(fd);
    free(kp);
    must(pv_attest_load_status(f->dir, &st, &e), &e);
    assert_int_equal(st.verdict, PV_ATTEST_IDENTITY_ONLY);
    assert_string_equal(st.reason, "unclaimed");
    assert_int_equal(st.client_not_after, 0);
    free(certs);
}

static void test_failed_keeps_key_drops_client(void **state)
{
    fx *f = *state;
    pv_err e;
    store(f, &f->passed, "KEY ONE\n", result(PV_ATTEST_PASSED, ""));
    char *svc_before = slurp(f, PV_ATTEST_SERVICE_CRT);

    attest_response refusal = {.verdict = PV_ATTEST_FAILED};
    snprintf(refusal.reason, sizeof(refusal.reason), "nonce-replayed");
    store(f, &refusal, NULL, result(PV_ATTEST_FAILED, "nonce-replayed"));
    assert_false(exists(f, PV_ATTEST_CLIENT_CRT));
    assert_false(exists(f, PV_ATTEST_CLIENT_CHAIN));
    char *key = slurp(f, PV_ATTEST_TLS_KEY);
    char *svc_after = slurp(f, PV_ATTEST_SERVICE_CRT);
    assert_string_equal(key, "KEY ONE\n");
    assert_string_equal(svc_before, svc_after);
    free(key);
    free(svc_before);
    free(svc_after);
    pv_attest_result st;
    must(pv_attest_load_status(f->dir, &st, &e), &e);
    assert_int_equal(st.verdict, PV_ATTEST_FAILED);
    assert_string_equal(st.reason, "nonce-replayed");

    /* A refusal on a device that never attested: only the verdict. */
    char *certs = path(f, "certs");
    tu_rmtree(certs);
    store(f, NULL, NULL, result(PV_ATTEST_FAILED, "unknown-device"));
    assert_int_equal(tu_count_entries(certs), 1);
    assert_true(exists(f, PV_ATTEST_STATUS));
    free(certs);

    /* Certificates without a key are refused before anything changes. */
    pv_attest_result res = result(PV_ATTEST_PASSED, "");
    assert_int_equal(attest_store(f->dir, &f->passed, NULL, 0, &res, &e), PV_ERR_INVALID_ARG);
    assert_false(exists(f, PV_ATTEST_CLIENT_CRT));
}

static void test_directory(void **state)
{
    fx *f = *state;
    pv_err e;
    /* A directory left too open is narrowed. */
    char *certs = path(f, "certs");
    assert_int_equal(mkdir(certs, 0755), 0);
    store(f, &f->passed, "K\n", result(PV_ATTEST_PASSED, ""));
    assert_int_equal(mode_of(f, "certs"), 0700);
    tu_rmtree(certs);

    /* certs as a link elsewhere is refused. */
    char *elsewhere = path(f, "elsewhere");
    assert_int_equal(mkdir(elsewhere, 0700), 0);
    assert_int_equal(symlink(elsewhere, certs), 0);
    pv_attest_result res = result(PV_ATTEST_PASSED, "");
    assert_int_equal(attest_store(f->dir, &f->passed, (const uint8_t *)"K", 1, &res, &e),
                     PV_ERR_IO);
    assert_non_null(strstr(pv_err_msg(&e), "not a directory"));
    assert_int_equal(tu_count_entries(elsewhere), 0);
    unlink(certs);

    /* A rename that fails leaves no temporary files behind. */
    assert_int_equal(mkdir(certs, 0700), 0);
    char *blocker = path(f, PV_ATTEST_STATUS);
    assert_int_equal(mkdir(blocker, 0700), 0);
    char *inner = tu_path(blocker, "x");
    tu_write(inner, "x", 1, 0600);
    assert_int_not_equal(attest_store(f->dir, &f->passed, (const uint8_t *)"K", 1, &res, &e),
                         PV_OK);
    /* attestation.json is renamed last: everything before it is the new set, nothing else. */
    assert_int_equal(tu_count_entries(certs), 6);
    free(inner);
    free(blocker);
    free(elsewhere);
    free(certs);
}

static void test_load_status(void **state)
{
    fx *f = *state;
    pv_err e;
    pv_attest_result st;
    assert_int_equal(pv_attest_load_status(f->dir, &st, &e), PV_ERR_NOT_FOUND);
    char *certs = path(f, "certs");
    assert_int_equal(mkdir(certs, 0700), 0);
    char *p = path(f, PV_ATTEST_STATUS);
    static const char *const bad[] = {
        "[]",
        "{\"result\":\"passed\",\"reason\":\"\",\"at\":1,\"serviceNotAfter\":2}",
        "{\"result\":\"passed\",\"reason\":\"\",\"at\":1,\"serviceNotAfter\":2,"
        "\"clientNotAfter\":3,\"extra\":1}",
        "{\"result\":\"great\",\"reason\":\"\",\"at\":1,\"serviceNotAfter\":2,\"clientNotAfter\":"
        "3}",
        "{\"result\":\"passed\",\"reason\":\"\",\"at\":-1,\"serviceNotAfter\":2,\"clientNotAfter\":"
        "3}",
        "{\"result\":1,\"reason\":\"\",\"at\":1,\"serviceNotAfter\":2,\"clientNotAfter\":3}",
        "{\"result\":\"passed\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tu_write(p, bad[i], strlen(bad[i]), 0644);
        pv_err_clear(&e);
        int r = pv_attest_load_status(f->dir, &st, &e);
        if (r != PV_ERR_FORMAT) {
            fail_msg("case %zu: %d (%s)", i, r, pv_err_msg(&e));
        }
        assert_int_equal(st.verdict, PV_ATTEST_NONE);
    }
    free(p);
    free(certs);
}

/* pv_attest_run refuses what it cannot do before talking to anyone. */
static void test_run_refusals(void **state)
{
    fx *f = *state;
    pv_err e;
    pv_attest_result res;
    pv_attest_opts o = {.state_dir = f->dir, .server_url = "https://127.0.0.1:1"};
    /* Not manufactured. */
    assert_int_equal(pv_attest_run(&o, &res, &e), PV_ERR_NOT_FOUND);
    assert_int_equal(res.verdict, PV_ATTEST_NONE);

    pv_rot *rot = NULL;
    pv_rot_config c = {.kind = PV_ROT_SOFTWARE, .state_dir = f->dir};
    must(pv_rot_provision(&c, &rot, &e), &e);
    pv_rot_close(rot);
    pv_devstate ds = {.kind = PV_ROT_SOFTWARE};
    must(pv_devstate_save(f->dir, &ds, &e), &e);

    /* No service CA given and none kept. */
    assert_int_equal(pv_attest_run(&o, &res, &e), PV_ERR_NOT_FOUND);
    assert_non_null(strstr(pv_err_msg(&e), "service CA"));
    /* Plain HTTP is not a way to reach the service. */
    char *ca = path(f, "ca.crt");
    pv_chain *ch = pv_chain_new();
    assert_int_equal(pv_chain_add(ch, f->ca), PV_OK);
    must(pv_chain_save_pem(ch, ca, false, &e), &e);
    pv_chain_free(ch);
    o.ca_file = ca;
    o.server_url = "http://127.0.0.1:1";
    assert_int_equal(pv_attest_run(&o, &res, &e), PV_ERR_INVALID_ARG);
    /* Nobody listening: an error, no verdict, nothing stored. */
    o.server_url = "https://127.0.0.1:1/";
    o.timeout = 5;
    assert_int_equal(pv_attest_run(&o, &res, &e), PV_ERR_IO);
    assert_int_equal(res.verdict, PV_ATTEST_NONE);
    assert_false(exists(f, "certs"));
    free(ca);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_passed_then_identity_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_keeps_key_drops_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
