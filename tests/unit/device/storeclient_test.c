// SPDX-License-Identifier: Apache-2.0
/*
 * pavised's side of pavise-store: every answer it cannot believe is refused with a clear
 * error. The program run is this test itself (re-executed: argv[1] is the operation and the
 * --state value picks what it answers), so each bad answer is produced for real through a
 * pipe by a separate process; the real pavise-store is exercised by integration.pavised.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pavise/app.h"
#include "pavise/err.h"
#include "signer.h"
#include "storeclient.h"
#include "storeproto.h"

extern char **environ;

/* ---- the program's side ---- */

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.' && atoi(de->d_name) > 2 && atoi(de->d_name) != dirfd(d)) {
            n++;
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

static int fake(const char *mode)
{
    if (strcmp(mode, "empty") == 0) {
        printf("{\"ok\":true,\"deviceId\":\"ab\",\"rootOfTrust\":\"soft\",\"development\":false,"
               "\"developmentExpires\":0,\"apps\":[]}");
        return 0;
    }
    if (strcmp(mode, "env") == 0) {
        /* What reached it: the environment's size, its descriptors beyond 0-2, stdin's bytes. */
        size_t nenv = 0, in = 0;
        for (char **p = environ; *p != NULL; p++) {
            nenv++;
        }
        char buf[256];
        ssize_t got;
        while ((got = read(0, buf, sizeof(buf))) > 0) {
            in += (size_t)got;
        }
        printf("{\"ok\":true,\"deviceId\":\"env%zu-fds%d-in%zu\",\"rootOfTrust\":\"soft\","
               "\"development\":true,\"developmentExpires\":7,\"apps\":[]}",
               nenv, count_fds(), in);
        return 0;
    }
    if (strcmp(mode, "truncated") == 0) {
        printf("{\"ok\":true,\"deviceId\":\"ab");
        return 0;
    }
    if (strcmp(mode, "garbage") == 0) {
        printf("hello");
        return 0;
    }
    if (strcmp(mode, "refusal") == 0) {
        printf("{\"ok\":false,\"code\":%d,\"error\":\"image package refused: no\"}",
               PV_ERR_ROLLBACK);
        return 1;
    }
    if (strcmp(mode, "bad-code") == 0) {
        printf("{\"ok\":false,\"code\":5,\"error\":\"x\"}");
        return 1;
    }
    if (strcmp(mode, "ok-but-failed") == 0) {
        printf("{\"ok\":true,\"deviceId\":\"ab\",\"rootOfTrust\":\"soft\",\"development\":false,"
               "\"developmentExpires\":0,\"apps\":[]}");
        return 1;
    }
    if (strcmp(mode, "bad-app") == 0) {
        printf("{\"ok\":true,\"deviceId\":\"ab\",\"rootOfTrust\":\"soft\",\"development\":false,"
               "\"developmentExpires\":0,\"apps\":[{\"componentId\":\"x\"}]}");
        return 0;
    }
    if (strcmp(mode, "extra-field") == 0) {
        printf("{\"ok\":true,\"deviceId\":\"ab\",\"rootOfTrust\":\"soft\",\"development\":false,"
               "\"developmentExpires\":0,\"apps\":[],\"more\":1}");
        return 0;
    }
    if (strcmp(mode, "oversized") == 0) {
        static char chunk[65536];
        memset(chunk, ' ', sizeof(chunk));
        printf("{\"ok\":true,\"deviceId\":\"");
        for (size_t n = 0; n <= SP_MAX_ANSWER; n += sizeof(chunk)) {
            if (fwrite(chunk, 1, sizeof(chunk), stdout) != sizeof(chunk)) {
                return 0; /* the reader gave up */
            }
        }
        return 0;
    }
    if (strcmp(mode, "answer-then-hang") == 0) {
        /* a whole answer, then it never exits (a stuck mount, a TPM that does not answer) */
        printf("{\"ok\":true,\"deviceId\":\"ab\",\"rootOfTrust\":\"soft\","
               "\"development\":false,\"developmentExpires\":0,\"apps\":[]}");
        fflush(stdout);
        close(1);
        pause();
    }
    if (strcmp(mode, "killed") == 0) {
        kill(getpid(), SIGKILL);
    }
    if (strcmp(mode, "hang") == 0) {
        pause();
    }
    return 3;
}

/* "sign --digest HEX": answers by mode; a good signature is the digest's first 32 bytes
 * twice, so the test sees that its digest arrived. */
static int fake_sign(const char *hex, const char *mode)
{
    if (strcmp(mode, "sig-good") == 0) {
        printf("{\"ok\":true,\"signature\":\"%.64s%.64s\"}", hex, hex);
        return 0;
    }
    if (strcmp(mode, "sig-nokey") == 0) {
        printf("{\"ok\":false,\"code\":%d,\"error\":\"no TLS key\"}", PV_ERR_NOT_FOUND);
        return 1;
    }
    if (strcmp(mode, "sig-extra") == 0) {
        printf("{\"ok\":true,\"signature\":\"%.64s%.64s\",\"key\":\"x\"}", hex, hex);
        return 0;
    }
    if (strcmp(mode, "sig-short") == 0) {
        printf("{\"ok\":true,\"signature\":\"%.64s%.62s\"}", hex, hex);
        return 0;
    }
    if (strcmp(mode, "sig-nothex") == 0) {
        printf("{\"ok\":true,\"signature\":\"%.64s%.62szz\"}", hex, hex);
        return 0;
    }
    if (strcmp(mode, "sig-missing") == 0) {
        printf("{\"ok\":true}");
        return 0;
    }
    return fake(mode);
}

/* ---- the tests ---- */

static int run_load(const char *mode, unsigned timeout_ms, sc_device *dev, pv_err *e)
{
    sc_config c = {.exe_fd = open("/proc/self/exe", O_PATH | O_CLOEXEC),
                   .state_dir = mode,
                   .timeout_ms = timeout_ms};
    as_store *s = NULL;
    assert_true(c.exe_fd >= 0);
    memset(dev, 0, sizeof(*dev));
    pv_err_clear(e);
    int r = sc_load(&c, dev, &s, e);
    if (r == PV_OK) {
        assert_non_null(s);
        assert_int_equal(as_count(s), 0);
    } else {
        assert_null(s);
    }
    as_close(s);
    close(c.exe_fd);
    return r;
}

static void test_good_answer(void **state)
{
    (void)state;
    sc_device dev;
    pv_err e;
    assert_int_equal(run_load("empty", 0, &dev, &e), PV_OK);
    assert_string_equal(dev.device_id, "ab");
    assert_string_equal(dev.rot_kind, "soft");
    assert_false(dev.development);
}

/* The program gets a clean environment, no descriptor of ours, and the file on stdin. */
static void test_what_it_gets(void **state)
{
    (void)state;
    setenv("PAVISE_SECRET_NOT_PASSED", "x", 1);
    setenv("TMPDIR", "/tmp", 1);
    int leak = open("/dev/null", O_RDONLY); /* not close-on-exec: must still not reach it */
    char path[] = "/tmp/storeclient-XXXXXX";
    int in = mkstemp(path);
    assert_true(in >= 0 && leak >= 0);
    assert_int_equal(write(in, "12345", 5), 5);
    lseek(in, 0, SEEK_SET);
    unlink(path);
    sc_config c = {.exe_fd = open("/proc/self/exe", O_PATH | O_CLOEXEC), .state_dir = "env"};
    const char *argv[] = {"pavise-store", "load", NULL};
    json_t *ans = NULL;
    pv_err e;
    pv_err_clear(&e);
    assert_int_equal(sc_run(&c, argv, in, &ans, &e), PV_OK);
    /* TMPDIR only (PAVISE_TCTI is unset here) */
    assert_string_equal(json_string_value(json_object_get(ans, "deviceId")), "env1-fds0-in5");
    assert_null(json_object_get(ans, "ok"));
    json_decref(ans);
    close(in);
    close(leak);
    close(c.exe_fd);
    unsetenv("PAVISE_SECRET_NOT_PASSED");
}

static void test_bad_answers(void **state)
{
    (void)state;
    static const struct {
        const char *mode;
        int code;
        const char *says;
    } cases[] = {
        {"truncated", PV_ERR_FORMAT, "not a JSON object"},
        {"garbage", PV_ERR_FORMAT, "not a JSON object"},
        {"refusal", PV_ERR_ROLLBACK, "image package refused: no"},
        {"bad-code", PV_ERR_FORMAT, "malformed answer"},
        {"ok-but-failed", PV_ERR_FORMAT, "agreeing"},
        {"bad-app", PV_ERR_FORMAT, "app"},
        {"extra-field", PV_ERR_FORMAT, "more"},
        {"oversized", PV_ERR_TOO_LARGE, "too long"},
        {"killed", PV_ERR_IO, "died (signal 9)"},
        {"unknown-mode", PV_ERR_IO, "exit status 3"},
        {"hang", PV_ERR_IO, "did not answer"},
        {"answer-then-hang", PV_ERR_IO, "died (signal 9)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sc_device dev;
        pv_err e;
        int r = run_load(cases[i].mode, 500, &dev, &e);
        if (r != cases[i].code || strstr(pv_err_msg(&e), cases[i].says) == NULL) {
            fail_msg("%s: %d '%s'", cases[i].mode, r, pv_err_msg(&e));
        }
    }
}

/* ---- the signer (signer.c), which runs the program without blocking the loop ---- */

typedef struct sign_seen {
    int calls, result;
    uint8_t sig[AC_SIG_LEN];
} sign_seen;

static void on_sign(void *ctx, int result, const uint8_t *sig)
{
    sign_seen *s = ctx;
    s->calls++;
    s->result = result;
    if (sig != NULL) {
        memcpy(s->sig, sig, AC_SIG_LEN);
    }
}

static int sign_once(const char *mode, size_t dlen, sign_seen *seen)
{
    sc_config c = {
        .exe_fd = open("/proc/self/exe", O_PATH | O_CLOEXEC), .state_dir = mode, .timeout_ms = 500};
    lp *l = NULL;
    sg_ctx *s = NULL;
    sg_job *job = NULL;
    uint8_t digest[64];
    pv_err e;
    pv_err_clear(&e);
    for (size_t i = 0; i < sizeof(digest); i++) {
        digest[i] = (uint8_t)(i * 7 + 1);
    }
    memset(seen, 0, sizeof(*seen));
    assert_int_equal(lp_new(&l, &e), PV_OK);
    assert_int_equal(sg_new(l, &c, &s, &e), PV_OK);
    close(c.exe_fd); /* sg_new keeps its own copy of the config, not of the descriptor */
    c.exe_fd = open("/proc/self/exe", O_PATH | O_CLOEXEC);
    sg_free(s);
    assert_int_equal(sg_new(l, &c, &s, &e), PV_OK);
    assert_int_equal(sg_start(s, digest, dlen, on_sign, seen, &job, &e), PV_OK);
    for (int i = 0; i < 400 && seen->calls == 0; i++) {
        assert_int_equal(lp_run_once(l, 50, &e), PV_OK);
    }
    assert_int_equal(seen->calls, 1);
    if (seen->result == 0) {
        assert_memory_equal(seen->sig, digest, 32);
        assert_memory_equal(seen->sig + 32, digest, 32);
    }
    sg_free(s);
    lp_free(l);
    close(c.exe_fd);
    return seen->result;
}

static void test_signer(void **state)
{
    (void)state;
    sign_seen seen;
    assert_int_equal(sign_once("sig-good", 32, &seen), PV_APP_OK);
    assert_int_equal(sign_once("sig-good", 64, &seen), PV_APP_OK);
    assert_int_equal(sign_once("sig-nokey", 32, &seen), PV_APP_ERR_NOT_READY);
    static const char *const io[] = {"sig-extra", "sig-short",        "sig-nothex", "sig-missing",
                                     "garbage",   "truncated",        "killed",     "hang",
                                     "oversized", "answer-then-hang", "bad-code"};
    for (size_t i = 0; i < sizeof(io) / sizeof(io[0]); i++) {
        if (sign_once(io[i], 48, &seen) != PV_APP_ERR_IO) {
            fail_msg("%s: %d", io[i], seen.result);
        }
    }
}

/* At most SG_MAX_JOBS at once; cancelled and freed jobs leave no process behind and call
 * nobody. */
static void test_signer_bounds(void **state)
{
    (void)state;
    sc_config c = {.exe_fd = open("/proc/self/exe", O_PATH | O_CLOEXEC),
                   .state_dir = "hang",
                   .timeout_ms = 60000};
    lp *l = NULL;
    sg_ctx *s = NULL;
    sg_job *jobs[SG_MAX_JOBS + 1];
    sign_seen seen = {0};
    uint8_t digest[32] = {1};
    pv_err e;
    pv_err_clear(&e);
    assert_int_equal(lp_new(&l, &e), PV_OK);
    assert_int_equal(sg_new(l, &c, &s, &e), PV_OK);
    assert_int_equal(sg_start(s, digest, 31, on_sign, &seen, &jobs[0], &e), PV_ERR_INVALID_ARG);
    for (size_t i = 0; i < SG_MAX_JOBS; i++) {
        assert_int_equal(sg_start(s, digest, 32, on_sign, &seen, &jobs[i], &e), PV_OK);
    }
    assert_int_equal(sg_start(s, digest, 32, on_sign, &seen, &jobs[SG_MAX_JOBS], &e),
                     PV_ERR_LOCKED);
    /* A cancelled helper keeps its slot until the loop has reaped it (a helper stuck in
     * the TPM must not let more pile up), without blocking the loop. */
    sg_cancel(s, jobs[0]);
    int r = PV_ERR_LOCKED;
    for (int i = 0; i < 100 && r == PV_ERR_LOCKED; i++) {
        assert_int_equal(lp_run_once(l, 50, &e), PV_OK);
        r = sg_start(s, digest, 32, on_sign, &seen, &jobs[0], &e);
    }
    assert_int_equal(r, PV_OK);
    assert_int_equal(lp_run_once(l, 100, &e), PV_OK);
    sg_free(s); /* cancels the rest */
    assert_int_equal(seen.calls, 0);
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* every helper was reaped */
    assert_int_equal(errno, ECHILD);
    lp_free(l);
    close(c.exe_fd);
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "load") == 0 && strcmp(argv[2], "--state") == 0) {
        return fake(argv[3]);
    }
    if (argc >= 6 && strcmp(argv[1], "sign") == 0 && strcmp(argv[2], "--digest") == 0 &&
        strcmp(argv[4], "--state") == 0) {
        return fake_sign(argv[3], argv[5]);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_answer),   cmocka_unit_test(test_what_it_gets),
        cmocka_unit_test(test_bad_answers),   cmocka_unit_test(test_signer),
        cmocka_unit_test(test_signer_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
