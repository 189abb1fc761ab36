// SPDX-License-Identifier: Apache-2.0
/*
 * pavised's side of pavise-store: every answer it cannot believe is refused with a clear
 * error. The program run is this test itself (re-executed: argv[1] is the operation and the
 * --state value picks what it answers), so each bad answer is produced for real through a
 * pipe by a separate process; the real pavise-store is exercised by integration.pavised.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pavise/err.h"
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

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "load") == 0 && strcmp(argv[2], "--state") == 0) {
        return fake(argv[3]);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_answer),
        cmocka_unit_test(test_what_it_gets),
        cmocka_unit_test(test_bad_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
