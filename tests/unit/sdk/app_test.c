/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libpavise-app (src/sdk) against the runtime's own codec: the test plays the runtime on
 * the other end of a SOCK_SEQPACKET pair and reads and writes with ac_parse and ac_encode
 * (src/device/appchan.c, compiled in here), so the two implementations of the wire format
 * are checked against each other.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#include "pavise/app.h"

#include "../../../src/device/appchan.c"
#include "../../../src/sdk/sdk.h"

static int rt = -1;  /* the runtime's end */
static int app = -1; /* the app's end, PAVISE_FD */

static void clear_env(void)
{
    static const char *const vars[] = {
        "PAVISE_FD",          "PAVISE_APP_NAME",   "PAVISE_COMPONENT_ID", "PAVISE_STORAGE",
        "PAVISE_DEVICE_CERT", "PAVISE_DEVICE_KEY", "PAVISE_DEVICE_CHAIN"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        unsetenv(vars[i]);
    }
}

static int setup(void **state)
{
    (void)state;
    int sv[2];
    char fd[16];
    clear_env();
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    app = sv[0];
    rt = sv[1];
    snprintf(fd, sizeof(fd), "%d", app);
    setenv("PAVISE_FD", fd, 1);
    setenv("PAVISE_APP_NAME", "tapp", 1);
    sdk_reset();
    sdk_set_reply_timeout_ms(2000);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (rt >= 0) {
        close(rt);
    }
    if (app >= 0) {
        close(app);
    }
    rt = app = -1;
    clear_env();
    sdk_reset();
    return 0;
}

/* The runtime sends m. */
static void rt_send(const ac_msg *m)
{
    uint8_t out[AC_MAX_MSG];
    size_t n = ac_encode(m, out);
    assert_true(n > 0);
    assert_int_equal(send(rt, out, n, 0), (ssize_t)n);
}

static void rt_send_raw(const char *hex)
{
    size_t n;
    uint8_t *p = tu_unhex(hex, &n);
    assert_int_equal(send(rt, p, n, 0), (ssize_t)n);
    free(p);
}

static void rt_result(uint8_t request, int32_t result)
{
    ac_msg m = {.type = AC_RESULT, .request = request, .result = result};
    rt_send(&m);
}

static void rt_event(uint32_t kind, uint64_t id, uint32_t seconds)
{
    ac_msg m = {.type = AC_EVENT, .kind = kind, .event_id = id, .seconds = seconds};
    rt_send(&m);
}

/* The runtime reads one packet the app sent (within two seconds) and parses it as the
 * runtime does; buf keeps the bytes m->text points to. */
static void rt_recv(ac_msg *m, uint8_t buf[AC_MAX_MSG + 1])
{
    struct pollfd pfd = {.fd = rt, .events = POLLIN};
    pv_err e;
    assert_int_equal(poll(&pfd, 1, 2000), 1);
    ssize_t n = recv(rt, buf, AC_MAX_MSG + 1, 0);
    assert_true(n > 0);
    int r = ac_parse_from_app(buf, (size_t)n, m, &e);
    if (r != PV_OK) {
        fail_msg("the runtime refused the app's packet: %s", pv_err_msg(&e));
    }
}

/* True when the app sent nothing (more). */
static bool rt_nothing(void)
{
    uint8_t buf[AC_MAX_MSG];
    ssize_t n = recv(rt, buf, sizeof(buf), MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Runs fn with stderr going to a file; returns what it wrote (caller frees). */
static char *with_stderr(void (*fn)(void *), void *arg)
{
    char *dir = tu_mkdtemp("sdk-stderr");
    char *path = tu_path(dir, "err");
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);
    fn(arg);
    fflush(stderr);
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    size_t len;
    uint8_t *data = tu_read(path, &len);
    char *text = malloc(len + 1);
    assert_non_null(text);
    memcpy(text, data, len);
    text[len] = '\0';
    free(data);
    tu_rmtree(dir);
    free(path);
    free(dir);
    return text;
}

/* ---- logging ---- */

static void test_log_reaches_runtime(void **state)
{
    (void)state;
    uint8_t buf[AC_MAX_MSG + 1];
    ac_msg m;
    assert_int_equal(pv_app_log(PV_APP_LOG_INFO, "heartbeat %d (%s)", 7, "ok"), PV_APP_OK);
    rt_recv(&m, buf);
    assert_int_equal(m.type, AC_LOG);
    assert_int_equal(m.level, PV_APP_LOG_INFO);
    assert_int_equal(m.text_len, strlen("heartbeat 7 (ok)"));
    assert_memory_equal(m.text, "heartbeat 7 (ok)", m.text_len);
    for (int level = PV_APP_LOG_DEBUG; level <= PV_APP_LOG_ERROR; level++) {
        assert_int_equal(pv_app_log(level, "l%d", level), PV_APP_OK);
        rt_recv(&m, buf);
        assert_int_equal(m.level, level);
    }
    assert_int_equal(pv_app_log(PV_APP_LOG_INFO, "%s", ""), PV_APP_OK);
    rt_recv(&m, buf);
    assert_int_equal(m.text_len, 0);
    /* Refused outright: nothing sent. */
    assert_int_equal(pv_app_log(4, "x"), PV_APP_ERR_INVALID);
    assert_int_equal(pv_app_log(-1, "x"), PV_APP_ERR_INVALID);
    assert_true(rt_nothing());
}

/* Logs text and returns what the runtime received (static buffer). */
static const char *logged(const char *text, size_t *len)
{
    static uint8_t buf[AC_MAX_MSG + 1];
    static char copy[AC_MAX_MSG + 1];
    ac_msg m;
    assert_int_equal(pv_app_log(PV_APP_LOG_WARN, "%s", text), PV_APP_OK);
    rt_recv(&m, buf);
    memcpy(copy, m.text, m.text_len);
    copy[m.text_len] = '\0';
    *len = m.text_len;
    return copy;
}

static void test_log_text_made_safe(void **state)
{
    (void)state;
    size_t len;
    assert_string_equal(logged("line\n", &len), "line");
    assert_string_equal(logged("line\r\n", &len), "line");
    assert_string_equal(logged("a\nb\tc\033[2Jd\x7f", &len), "a b\tc [2Jd ");
    assert_string_equal(logged("C1 \xc2\x9b here", &len), "C1   here");
    assert_string_equal(logged("bad \xff\xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 end", &len),
                        "bad ??? ??? ???? end");
    assert_string_equal(logged("cut \xe2\x82", &len), "cut ??"); /* not cut by the SDK: invalid */
    assert_string_equal(logged("ok h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", &len),
                        "ok h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");

    /* Cut at PV_APP_MAX_LOG bytes, never inside a character. */
    char big[PV_APP_MAX_LOG + 16];
    memset(big, 'a', PV_APP_MAX_LOG - 1);
    strcpy(big + PV_APP_MAX_LOG - 1, "\xc3\xa9tail"); /* é straddles the limit */
    const char *got = logged(big, &len);
    assert_int_equal(len, PV_APP_MAX_LOG - 1);
    assert_int_equal(got[len - 1], 'a');
    memset(big, 'a', PV_APP_MAX_LOG - 2);
    strcpy(big + PV_APP_MAX_LOG - 2, "\xf0\x9f\x98\x80!"); /* a 4-byte one */
    logged(big, &len);
    assert_int_equal(len, PV_APP_MAX_LOG - 2);
    memset(big, 'b', PV_APP_MAX_LOG + 10);
    big[PV_APP_MAX_LOG + 10] = '\0';
    logged(big, &len);
    assert_int_equal(len, PV_APP_MAX_LOG);
    memset(big, 'c', PV_APP_MAX_LOG - 2);
    strcpy(big + PV_APP_MAX_LOG - 2, "\xc3\xa9"); /* ends exactly at the limit: kept */
    got = logged(big, &len);
    assert_int_equal(len, PV_APP_MAX_LOG);
    assert_memory_equal(got + len - 2, "\xc3\xa9", 2);
}

/* Whatever bytes an app logs, the runtime accepts the line. */
static void test_log_any_bytes_accepted(void **state)
{
    (void)state;
    char text[1600];
    uint8_t buf[AC_MAX_MSG + 1];
    ac_msg m;
    unsigned seed = 12345;
    for (int i = 0; i < 3000; i++) {
        size_t n = (size_t)(rand_r(&seed) % (int)(sizeof(text) - 1));
        for (size_t k = 0; k < n; k++) {
            /* Bias towards UTF-8 lead and continuation bytes, where the edge cases are. */
            int r = rand_r(&seed);
            text[k] = (char)(r % 3 == 0 ? 0x80 + (r >> 4) % 0x80 : 1 + (r >> 4) % 255);
        }
        text[n] = '\0';
        assert_int_equal(pv_app_log(PV_APP_LOG_DEBUG, "%s", text), PV_APP_OK);
        rt_recv(&m, buf); /* fails the test if the runtime refuses it */
        assert_true(m.text_len <= PV_APP_MAX_LOG);
    }
}

#define LOG_THREADS 4
#define LOG_LINES   300

static void *log_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < LOG_LINES; i++) {
        if (pv_app_log(PV_APP_LOG_INFO, "thread %d line %d %s", id, i,
                       "padding padding padding padding padding padding") != PV_APP_OK) {
            return (void *)1;
        }
    }
    return NULL;
}

static void test_log_from_threads(void **state)
{
    (void)state;
    pthread_t t[LOG_THREADS];
    int seen[LOG_THREADS] = {0};
    for (int i = 0; i < LOG_THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, log_thread, (void *)(intptr_t)i), 0);
    }
    /* Each packet is one whole line, and each thread's lines arrive in its order. */
    for (int n = 0; n < LOG_THREADS * LOG_LINES; n++) {
        uint8_t buf[AC_MAX_MSG + 1];
        ac_msg m;
        char line[AC_MAX_LOG + 1];
        int id, k;
        rt_recv(&m, buf);
        memcpy(line, m.text, m.text_len);
        line[m.text_len] = '\0';
        char *end;
        assert_true(strncmp(line, "thread ", 7) == 0);
        id = (int)strtol(line + 7, &end, 10);
        assert_true(id >= 0 && id < LOG_THREADS && strncmp(end, " line ", 6) == 0);
        k = (int)strtol(end + 6, &end, 10);
        assert_int_equal(k, seen[id]);
        assert_string_equal(end, " padding padding padding padding padding padding");
        seen[id]++;
    }
    for (int i = 0; i < LOG_THREADS; i++) {
        void *ret;
        assert_int_equal(pthread_join(t[i], &ret), 0);
        assert_null(ret);
    }
}

static void log_hello(void *arg)
{
    int *r = arg;
    r[0] = pv_app_log(PV_APP_LOG_ERROR, "it broke: %s\n", "disk \033full");
    r[1] = pv_app_watchdog_kick();
}

static void test_log_falls_back_to_stderr(void **state)
{
    (void)state;
    int r[2];
    /* Without the runtime. */
    unsetenv("PAVISE_FD");
    sdk_reset();
    char *err = with_stderr(log_hello, r);
    assert_int_equal(r[0], PV_APP_ERR_NO_RUNTIME);
    assert_int_equal(r[1], PV_APP_ERR_NO_RUNTIME);
    assert_string_equal(err, "tapp: error: it broke: disk  full\n");
    free(err);
    /* With a runtime that has gone away. */
    char fd[16];
    snprintf(fd, sizeof(fd), "%d", app);
    setenv("PAVISE_FD", fd, 1);
    sdk_reset();
    close(rt);
    rt = -1;
    err = with_stderr(log_hello, r);
    assert_int_equal(r[0], PV_APP_ERR_IO);
    assert_int_equal(r[1], PV_APP_ERR_IO);
    assert_string_equal(err, "tapp: error: it broke: disk  full\n");
    free(err);
}

static void probe_fd(void *arg)
{
    int *fd = arg;
    *fd = pv_app_fd();
}

static void test_bad_pavise_fd(void **state)
{
    (void)state;
    int stream[2], dgram[2];
    char text[32];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, stream), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dgram), 0);
    int file = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(file >= 0);
    const char *values[] = {"",           "abc",   "3x", "-1", " 3", "+3",
                            "1234567890", "99999", NULL, NULL, NULL};
    char b1[16], b2[16], b3[16];
    snprintf(b1, sizeof(b1), "%d", stream[0]);
    snprintf(b2, sizeof(b2), "%d", dgram[0]);
    snprintf(b3, sizeof(b3), "%d", file);
    values[8] = b1;
    values[9] = b2;
    values[10] = b3;
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        int fd = 0;
        setenv("PAVISE_FD", values[i], 1);
        sdk_reset();
        char *err = with_stderr(probe_fd, &fd);
        assert_int_equal(fd, -1);
        snprintf(text, sizeof(text), "PAVISE_FD=%.16s", values[i]);
        assert_non_null(strstr(err, text));
        free(err);
        assert_int_equal(pv_app_events_register(0), PV_APP_ERR_NO_RUNTIME);
    }
    close(stream[0]);
    close(stream[1]);
    close(dgram[0]);
    close(dgram[1]);
    close(file);
    /* The real one is taken, and made close-on-exec. */
    snprintf(text, sizeof(text), "%d", app);
    setenv("PAVISE_FD", text, 1);
    sdk_reset();
    assert_int_equal(fcntl(app, F_SETFD, 0), 0);
    assert_int_equal(pv_app_fd(), app);
    assert_true(fcntl(app, F_GETFD) & FD_CLOEXEC);
}

/* ---- requests ---- */

typedef struct seen_events {
    pv_app_event ev[32];
    int n;
    int defer_result; /* when set to 1, the callback defers each event (see below) */
} seen_events;

static void record(const pv_app_event *ev, void *ctx)
{
    seen_events *s = ctx;
    assert_true(s->n < 32);
    s->ev[s->n++] = *ev;
}

static void test_requests_and_answers(void **state)
{
    (void)state;
    uint8_t buf[AC_MAX_MSG + 1];
    ac_msg m;
    /* Answers can be queued before the request: the SDK reads them only after sending. */
    rt_result(AC_EVENTS_REGISTER, PV_APP_OK);
    assert_int_equal(pv_app_events_register(PV_APP_EVENT_UPDATE_READY | PV_APP_EVENT_DEVICE_AUTH),
                     PV_APP_OK);
    rt_recv(&m, buf);
    assert_int_equal(m.type, AC_EVENTS_REGISTER);
    assert_int_equal(m.mask, 5);

    rt_result(AC_EVENTS_REGISTER, PV_APP_ERR_DENIED);
    assert_int_equal(pv_app_events_register(PV_APP_EVENT_ALL), PV_APP_ERR_DENIED);
    rt_recv(&m, buf);

    rt_result(AC_DEFER, PV_APP_ERR_LIMIT);
    assert_int_equal(pv_app_defer(0x1122334455667788ULL, 3600), PV_APP_ERR_LIMIT);
    rt_recv(&m, buf);
    assert_int_equal(m.type, AC_DEFER);
    assert_true(m.event_id == 0x1122334455667788ULL);
    assert_int_equal(m.seconds, 3600);

    rt_result(AC_DEFER, PV_APP_ERR_NOT_READY);
    assert_int_equal(pv_app_defer(5, 0), PV_APP_ERR_NOT_READY);
    rt_recv(&m, buf);
    assert_int_equal(m.seconds, 0);

    rt_result(AC_WATCHDOG_SET, PV_APP_OK);
    assert_int_equal(pv_app_watchdog_start(2500), PV_APP_OK);
    rt_recv(&m, buf);
    assert_int_equal(m.type, AC_WATCHDOG_SET);
    assert_int_equal(m.timeout_ms, 2500);
    assert_int_equal(pv_app_watchdog_kick(), PV_APP_OK);
    rt_recv(&m, buf);
    assert_int_equal(m.type, AC_WATCHDOG_KICK);
    rt_result(AC_WATCHDOG_SET, PV_APP_OK);
    assert_int_equal(pv_app_watchdog_stop(), PV_APP_OK);
    rt_recv(&m, buf);
    assert_int_equal(m.timeout_ms, 0);

    rt_result(AC_POWER, PV_APP_ERR_DENIED);
    assert_int_equal(pv_app_power(PV_APP_POWER_POWER_DOWN), PV_APP_ERR_DENIED);
    rt_recv(&m, buf);
    assert_int_equal(m.type, AC_POWER);
    assert_int_equal(m.action, PV_APP_POWER_POWER_DOWN);

    ac_msg st = {.type = AC_STATUS, .ready = 1, .used_kb = 17, .quota_kb = 64};
    rt_send(&st);
    pv_app_status status;
    assert_int_equal(pv_app_query_status(&status), PV_APP_OK);
    assert_true(status.device_auth_ready);
    assert_true(status.storage_used_kb == 17 && status.storage_quota_kb == 64);
    rt_recv(&m, buf);
    assert_int_equal(m.type, AC_STATUS_QUERY);
    rt_result(AC_STATUS_QUERY, PV_APP_ERR_DENIED);
    assert_int_equal(pv_app_query_status(&status), PV_APP_ERR_DENIED);
    assert_false(status.device_auth_ready);
    rt_recv(&m, buf);
    /* A status query answered by a result of 0 is not a status: the runtime's mistake. */
    rt_result(AC_STATUS_QUERY, PV_APP_OK);
    assert_int_equal(pv_app_query_status(&status), PV_APP_ERR_IO);
    rt_recv(&m, buf);
    assert_true(rt_nothing());
}

static void test_arguments_checked_before_sending(void **state)
{
    (void)state;
    assert_int_equal(pv_app_defer(1, PV_APP_MAX_DEFER_SECONDS + 1), PV_APP_ERR_LIMIT);
    assert_int_equal(pv_app_defer(1, UINT32_MAX), PV_APP_ERR_LIMIT);
    assert_int_equal(pv_app_defer(0, 10), PV_APP_ERR_INVALID);
    assert_int_equal(pv_app_events_register(8), PV_APP_ERR_INVALID);
    assert_int_equal(pv_app_events_register(0x80000000u), PV_APP_ERR_INVALID);
    assert_int_equal(pv_app_watchdog_start(0), PV_APP_ERR_INVALID);
    assert_int_equal(pv_app_watchdog_start(PV_APP_WATCHDOG_MIN_MS - 1), PV_APP_ERR_INVALID);
    assert_int_equal(pv_app_watchdog_start(PV_APP_WATCHDOG_MAX_MS + 1), PV_APP_ERR_INVALID);
    assert_int_equal(pv_app_power(0), PV_APP_ERR_INVALID);
    assert_int_equal(pv_app_power(4), PV_APP_ERR_INVALID);
    assert_int_equal(pv_app_query_status(NULL), PV_APP_ERR_INVALID);
    assert_int_equal(pv_app_dispatch(NULL, NULL), PV_APP_ERR_INVALID);
    assert_int_equal(pv_app_log(PV_APP_LOG_INFO, NULL), PV_APP_ERR_INVALID);
    assert_true(rt_nothing());
    /* The bounds themselves are accepted. */
    rt_result(AC_DEFER, PV_APP_OK);
    assert_int_equal(pv_app_defer(1, PV_APP_MAX_DEFER_SECONDS), PV_APP_OK);
    rt_result(AC_WATCHDOG_SET, PV_APP_OK);
    assert_int_equal(pv_app_watchdog_start(PV_APP_WATCHDOG_MIN_MS), PV_APP_OK);
    rt_result(AC_WATCHDOG_SET, PV_APP_OK);
    assert_int_equal(pv_app_watchdog_start(PV_APP_WATCHDOG_MAX_MS), PV_APP_OK);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_timeout_and_late_answer(void **state)
{
    (void)state;
    uint8_t buf[AC_MAX_MSG + 1];
    ac_msg m;
    sdk_set_reply_timeout_ms(150);
    int64_t t0 = mono_ms();
    assert_int_equal(pv_app_events_register(1), PV_APP_ERR_IO);
    assert_true(mono_ms() - t0 >= 150);
    rt_recv(&m, buf);
    /* The late answer, then the answer to the next request: the late one is not taken for
     * it. An answer to a request nobody made is dropped too. */
    rt_result(AC_EVENTS_REGISTER, PV_APP_ERR_DENIED);
    rt_result(AC_POWER, PV_APP_ERR_DENIED);
    rt_result(AC_EVENTS_REGISTER, PV_APP_OK);
    sdk_set_reply_timeout_ms(2000);
    assert_int_equal(pv_app_events_register(1), PV_APP_OK);
    rt_recv(&m, buf);
    /* A status query that timed out: its late AC_STATUS is dropped the same way. */
    sdk_set_reply_timeout_ms(100);
    pv_app_status st;
    assert_int_equal(pv_app_query_status(&st), PV_APP_ERR_IO);
    rt_recv(&m, buf);
    ac_msg late = {.type = AC_STATUS, .ready = 1, .used_kb = 1, .quota_kb = 1};
    rt_send(&late);
    ac_msg fresh = {.type = AC_STATUS, .ready = 0, .used_kb = 2, .quota_kb = 3};
    rt_send(&fresh);
    sdk_set_reply_timeout_ms(2000);
    assert_int_equal(pv_app_query_status(&st), PV_APP_OK);
    assert_false(st.device_auth_ready);
    assert_true(st.storage_used_kb == 2 && st.storage_quota_kb == 3);
}

static void test_runtime_gone(void **state)
{
    (void)state;
    seen_events s = {0};
    pv_app_status st;
    close(rt);
    rt = -1;
    assert_int_equal(pv_app_events_register(1), PV_APP_ERR_IO);
    assert_int_equal(pv_app_defer(1, 1), PV_APP_ERR_IO);
    assert_int_equal(pv_app_query_status(&st), PV_APP_ERR_IO);
    assert_int_equal(pv_app_watchdog_kick(), PV_APP_ERR_IO);
    assert_int_equal(pv_app_dispatch(record, &s), PV_APP_ERR_IO);
    assert_int_equal(s.n, 0);
}

static void test_runtime_closes_while_waiting(void **state)
{
    (void)state;
    uint8_t buf[AC_MAX_MSG + 1];
    ac_msg m;
    /* An event, then the runtime goes: the request fails at once, not at the timeout, and
     * the event is still delivered. */
    rt_event(PV_APP_EVENT_UPDATE_STARTED, 3, 0);
    assert_int_equal(shutdown(rt, SHUT_WR), 0);
    int64_t t0 = mono_ms();
    assert_int_equal(pv_app_power(PV_APP_POWER_REBOOT), PV_APP_ERR_IO);
    assert_true(mono_ms() - t0 < 1000);
    rt_recv(&m, buf);
    assert_int_equal(m.type, AC_POWER);
    seen_events s = {0};
    assert_int_equal(pv_app_dispatch(record, &s), PV_APP_ERR_IO);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ev[0].kind, PV_APP_EVENT_UPDATE_STARTED);
}

/* ---- events ---- */

static void test_dispatch(void **state)
{
    (void)state;
    seen_events s = {0};
    assert_int_equal(pv_app_dispatch(record, &s), 0);
    rt_event(PV_APP_EVENT_UPDATE_READY, 42, 3600);
    rt_send_raw("02 40 0010 00000001 0000000000000001 00000000"); /* another version */
    rt_send_raw("01 40 0010 00000003 0000000000000001 00000000"); /* two kinds */
    rt_send_raw("01 40 0011 00000001 0000000000000001 0000000000");
    rt_send_raw("01 40 0001 00"); /* shorter than any event */
    rt_send_raw("01 41 0001 00");
    rt_send_raw("01 42 0001 03");
    rt_send_raw("01 01 0002 01 41");       /* a log: not from a runtime */
    rt_send_raw("01 42 0005 03 00000000"); /* an answer to nothing */
    rt_event(PV_APP_EVENT_DEVICE_AUTH, 43, 0);
    rt_send_raw("01 42 0005 03 00000001");
    rt_event(PV_APP_EVENT_UPDATE_STARTED, 42, 0);
    assert_int_equal(pv_app_dispatch(record, &s), 3);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.ev[0].kind, PV_APP_EVENT_UPDATE_READY);
    assert_true(s.ev[0].id == 42);
    assert_int_equal(s.ev[0].seconds_left, 3600);
    assert_int_equal(s.ev[1].kind, PV_APP_EVENT_DEVICE_AUTH);
    assert_true(s.ev[1].id == 43);
    assert_int_equal(s.ev[2].kind, PV_APP_EVENT_UPDATE_STARTED);
    assert_int_equal(pv_app_dispatch(record, &s), 0);
}

static void test_events_during_a_request_are_kept(void **state)
{
    (void)state;
    seen_events s = {0};
    uint8_t buf[AC_MAX_MSG + 1];
    ac_msg m;
    rt_event(PV_APP_EVENT_UPDATE_READY, 9, 100);
    rt_result(AC_EVENTS_REGISTER, PV_APP_OK);
    rt_event(PV_APP_EVENT_DEVICE_AUTH, 10, 0); /* after the answer: still on the socket */
    assert_int_equal(pv_app_events_register(PV_APP_EVENT_ALL), PV_APP_OK);
    rt_recv(&m, buf);
    /* pv_app_fd is readable for the second one only; dispatch delivers both, in order. */
    assert_int_equal(pv_app_dispatch(record, &s), 2);
    assert_true(s.ev[0].id == 9 && s.ev[1].id == 10);
}

static void test_queue_keeps_the_newest(void **state)
{
    (void)state;
    seen_events s = {0};
    rt_result(AC_EVENTS_REGISTER, PV_APP_OK);
    for (uint64_t id = 1; id <= 20; id++) {
        rt_event(PV_APP_EVENT_DEVICE_AUTH, id, 0);
    }
    /* The request reads them all while it waits for its answer, which comes first here;
     * dispatch then finds the other 20 on the socket: the queue holds 16. */
    assert_int_equal(pv_app_events_register(PV_APP_EVENT_ALL), PV_APP_OK);
    assert_int_equal(pv_app_dispatch(record, &s), 16);
    assert_true(s.ev[0].id == 5 && s.ev[15].id == 20);
}

/* A runtime in a thread, answering every request with OK, so a callback can make
 * requests from inside pv_app_dispatch. */
static volatile int runtime_stop;
static void *runtime_thread(void *arg)
{
    (void)arg;
    while (!runtime_stop) {
        struct pollfd pfd = {.fd = rt, .events = POLLIN};
        uint8_t buf[AC_MAX_MSG + 1];
        ac_msg m;
        if (poll(&pfd, 1, 20) != 1) {
            continue;
        }
        ssize_t n = recv(rt, buf, sizeof(buf), 0);
        if (n <= 0 || ac_parse_from_app(buf, (size_t)n, &m, NULL) != PV_OK) {
            return (void *)1;
        }
        if (ac_has_reply((uint8_t)m.type)) {
            ac_msg r = {.type = AC_RESULT,
                        .request = (uint8_t)m.type,
                        .result = m.type == AC_DEFER && m.seconds > 60 ? PV_APP_ERR_LIMIT : 0};
            uint8_t out[AC_MAX_MSG];
            size_t len = ac_encode(&r, out);
            if (send(rt, out, len, 0) != (ssize_t)len) {
                return (void *)1;
            }
        }
    }
    return NULL;
}

static void defer_it(const pv_app_event *ev, void *ctx)
{
    seen_events *s = ctx;
    record(ev, ctx);
    if (ev->kind == PV_APP_EVENT_UPDATE_READY) {
        s->defer_result = pv_app_defer(ev->id, ev->seconds_left);
    }
}

static void test_callback_defers(void **state)
{
    (void)state;
    seen_events s = {0};
    pthread_t t;
    rt_event(PV_APP_EVENT_UPDATE_READY, 77, 60);
    rt_event(PV_APP_EVENT_UPDATE_READY, 78, 61);
    runtime_stop = 0;
    assert_int_equal(pthread_create(&t, NULL, runtime_thread, NULL), 0);
    struct pollfd pfd = {.fd = pv_app_fd(), .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 2000), 1);
    assert_int_equal(pv_app_dispatch(defer_it, &s), 2);
    assert_int_equal(s.defer_result, PV_APP_ERR_LIMIT); /* the second: over what it allows */
    assert_int_equal(pv_app_defer(77, 60), PV_APP_OK);
    runtime_stop = 1;
    void *ret;
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_null(ret);
}

/* ---- environment ---- */

static void test_no_runtime(void **state)
{
    (void)state;
    uint64_t used = 1, quota = 1;
    const char *cert = "x", *chain = "x";
    uint8_t digest[32] = {1}, sig[PV_APP_DEVICE_SIG_LEN];
    pv_app_status st;
    clear_env();
    sdk_reset();
    assert_int_equal(pv_app_fd(), -1);
    assert_null(pv_app_name());
    assert_null(pv_app_component_id());
    assert_null(pv_app_storage_path());
    assert_int_equal(pv_app_storage_usage(&used, &quota), PV_APP_ERR_NO_RUNTIME);
    assert_true(used == 0 && quota == 0);
    assert_int_equal(pv_app_device_auth_paths(&cert, &chain), PV_APP_ERR_NO_RUNTIME);
    assert_true(cert == NULL && chain == NULL);
    assert_false(pv_app_device_auth_ready());
    memset(sig, 0xaa, sizeof(sig));
    assert_int_equal(pv_app_device_sign(digest, sizeof(digest), sig), PV_APP_ERR_NO_RUNTIME);
    assert_true(sig[0] == 0 && sig[63] == 0);
    assert_int_equal(pv_app_events_register(1), PV_APP_ERR_NO_RUNTIME);
    assert_int_equal(pv_app_defer(1, 1), PV_APP_ERR_NO_RUNTIME);
    assert_int_equal(pv_app_watchdog_start(1000), PV_APP_ERR_NO_RUNTIME);
    assert_int_equal(pv_app_watchdog_stop(), PV_APP_ERR_NO_RUNTIME);
    assert_int_equal(pv_app_power(1), PV_APP_ERR_NO_RUNTIME);
    assert_int_equal(pv_app_query_status(&st), PV_APP_ERR_NO_RUNTIME);
    assert_int_equal(pv_app_dispatch(record, NULL), PV_APP_ERR_NO_RUNTIME);
    for (int r = 0; r >= -7; r--) {
        assert_non_null(pv_app_strerror(r));
    }
    assert_string_equal(pv_app_strerror(PV_APP_ERR_DENIED), "not granted by the app's manifest");
    assert_string_equal(pv_app_strerror(99), "unknown result");
}

static void test_names_and_storage(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("sdk-storage");
    uint64_t used, quota;
    setenv("PAVISE_COMPONENT_ID", "0b5e2d41-8c1f-4a6e-9d3b-7f2a6c9e1d05", 1);
    /* With the runtime but no storage: not granted. */
    sdk_reset();
    assert_null(pv_app_storage_path());
    assert_int_equal(pv_app_storage_usage(&used, &quota), PV_APP_ERR_DENIED);
    assert_int_equal(pv_app_storage_usage(NULL, &quota), PV_APP_ERR_INVALID);
    setenv("PAVISE_STORAGE", "relative/dir", 1);
    sdk_reset();
    assert_null(pv_app_storage_path());
    setenv("PAVISE_STORAGE", dir, 1);
    sdk_reset();
    assert_string_equal(pv_app_name(), "tapp");
    assert_string_equal(pv_app_component_id(), "0b5e2d41-8c1f-4a6e-9d3b-7f2a6c9e1d05");
    assert_string_equal(pv_app_storage_path(), dir);
    /* Copied: a later change of the environment does not move it. */
    setenv("PAVISE_STORAGE", "/elsewhere", 1);
    assert_string_equal(pv_app_storage_path(), dir);
    assert_int_equal(pv_app_storage_usage(&used, &quota), PV_APP_OK);
    assert_true(quota > 0 && used <= quota);
    /* Gone: an I/O error, not a made-up figure. */
    tu_rmtree(dir);
    assert_int_equal(pv_app_storage_usage(&used, &quota), PV_APP_ERR_IO);
    assert_true(used == 0 && quota == 0);
    free(dir);
}

static void test_device_auth(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("sdk-auth");
    char *cert = tu_path(dir, "client.crt"), *chain = tu_path(dir, "chain.pem");
    const char *c, *ch;
    setenv("PAVISE_DEVICE_CERT", cert, 1);
    sdk_reset();
    /* One of two: not granted (the runtime always sets both). */
    assert_int_equal(pv_app_device_auth_paths(&c, &ch), PV_APP_ERR_DENIED);
    assert_null(c);
    assert_null(ch);
    setenv("PAVISE_DEVICE_CHAIN", chain, 1);
    /* A key path in the environment is not looked at: the key stays with the runtime. */
    setenv("PAVISE_DEVICE_KEY", "/nonexistent/tls.key", 1);
    sdk_reset();
    assert_int_equal(pv_app_device_auth_paths(&c, &ch), PV_APP_OK);
    assert_string_equal(c, cert);
    assert_string_equal(ch, chain);
    assert_int_equal(pv_app_device_auth_paths(NULL, &ch), PV_APP_OK);
    assert_int_equal(pv_app_device_auth_paths(&c, NULL), PV_APP_OK);
    /* Not attested yet: no files. */
    assert_false(pv_app_device_auth_ready());
    tu_write(cert, "CERT", 4, 0644);
    assert_false(pv_app_device_auth_ready());
    tu_write(chain, "", 0, 0644); /* empty: being written, or broken */
    assert_false(pv_app_device_auth_ready());
    tu_write(chain, "CHAIN", 5, 0644);
    assert_true(pv_app_device_auth_ready());
    unlink(cert);
    assert_int_equal(mkdir(cert, 0700), 0); /* not a regular file */
    assert_false(pv_app_device_auth_ready());
    tu_rmtree(dir);
    free(cert);
    free(chain);
    free(dir);
}

/* ---- signing with the device key ----
 * Until the runtime's codec (src/device/appchan.c) knows sign and signature, the runtime's
 * side of these is written out by hand from docs/protocol/app-channel.md. */

/* The runtime reads the app's next packet and checks it is a sign of digest. */
static void rt_expect_sign(const uint8_t *digest, size_t len)
{
    uint8_t buf[AC_MAX_MSG + 1];
    struct pollfd pfd = {.fd = rt, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 2000), 1);
    ssize_t n = recv(rt, buf, sizeof(buf), 0);
    assert_int_equal(n, (ssize_t)(4 + len));
    assert_int_equal(buf[0], 1);
    assert_int_equal(buf[1], 8);
    assert_int_equal(buf[2], 0);
    assert_int_equal(buf[3], len);
    assert_memory_equal(buf + 4, digest, len);
}

/* The runtime sends a signature message with body sig[0..len). */
static void rt_signature(const uint8_t *sig, size_t len)
{
    uint8_t out[4 + 80];
    assert_true(len <= 80);
    out[0] = 1;
    out[1] = 67;
    out[2] = 0;
    out[3] = (uint8_t)len;
    memcpy(out + 4, sig, len);
    assert_int_equal(send(rt, out, 4 + len, 0), (ssize_t)(4 + len));
}

/* The runtime answers a sign with a result. */
static void rt_sign_result(int32_t result)
{
    uint8_t out[9] = {1, 66, 0, 5, 8};
    uint32_t v = (uint32_t)result;
    for (int i = 0; i < 4; i++) {
        out[5 + i] = (uint8_t)(v >> (24 - 8 * i));
    }
    assert_int_equal(send(rt, out, sizeof(out), 0), (ssize_t)sizeof(out));
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(seed + i * 7);
    }
}

static void test_sign(void **state)
{
    (void)state;
    uint8_t digest[64], want[PV_APP_DEVICE_SIG_LEN], sig[PV_APP_DEVICE_SIG_LEN];
    fill(want, sizeof(want), 0x31);
    /* Each digest length the protocol allows, answered by a signature. */
    static const size_t lens[] = {32, 48, 64};
    for (size_t i = 0; i < 3; i++) {
        fill(digest, lens[i], (uint8_t)i);
        want[0] = (uint8_t)i;
        rt_signature(want, sizeof(want));
        memset(sig, 0, sizeof(sig));
        assert_int_equal(pv_app_device_sign(digest, lens[i], sig), PV_APP_OK);
        assert_memory_equal(sig, want, sizeof(want));
        rt_expect_sign(digest, lens[i]);
    }
    /* Each refusal the runtime gives, as a result for request 8; sig is left zeroed. */
    static const int refusals[] = {PV_APP_ERR_DENIED, PV_APP_ERR_NOT_READY, PV_APP_ERR_LIMIT,
                                   PV_APP_ERR_IO};
    for (size_t i = 0; i < 4; i++) {
        rt_sign_result(refusals[i]);
        memset(sig, 0xee, sizeof(sig));
        assert_int_equal(pv_app_device_sign(digest, 32, sig), refusals[i]);
        for (size_t k = 0; k < sizeof(sig); k++) {
            assert_int_equal(sig[k], 0);
        }
        rt_expect_sign(digest, 32);
    }
    /* A result of OK carries no signature: the runtime's mistake. */
    rt_sign_result(PV_APP_OK);
    assert_int_equal(pv_app_device_sign(digest, 32, sig), PV_APP_ERR_IO);
    rt_expect_sign(digest, 32);
    assert_true(rt_nothing());
}

static void test_sign_bad_arguments(void **state)
{
    (void)state;
    uint8_t digest[65] = {0}, sig[PV_APP_DEVICE_SIG_LEN];
    static const size_t bad[] = {0, 1, 20, 31, 33, 47, 49, 63, 65};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(sig, 0xee, sizeof(sig));
        assert_int_equal(pv_app_device_sign(digest, bad[i], sig), PV_APP_ERR_INVALID);
        assert_int_equal(sig[0], 0);
    }
    assert_int_equal(pv_app_device_sign(NULL, 32, sig), PV_APP_ERR_INVALID);
    assert_int_equal(pv_app_device_sign(digest, 32, NULL), PV_APP_ERR_INVALID);
    assert_true(rt_nothing());
}

static void test_sign_malformed_answers(void **state)
{
    (void)state;
    uint8_t digest[32], sig[PV_APP_DEVICE_SIG_LEN], good[80];
    fill(digest, sizeof(digest), 9);
    fill(good, sizeof(good), 0x50);
    /* A signature for no request is dropped by dispatch, as any unasked answer. */
    rt_signature(good, PV_APP_DEVICE_SIG_LEN);
    seen_events s = {0};
    assert_int_equal(pv_app_dispatch(record, &s), 0);
    /* Signatures of the wrong size, a result for a request type that has none, and a
     * result for sign with a code out of range are dropped; the good one that follows is
     * the answer. */
    rt_signature(good, 63);
    rt_signature(good, 65);
    rt_signature(good, 0);
    rt_send_raw("01 42 0005 09 fffffffe");
    rt_send_raw("01 42 0005 08 ffffffff"); /* NO_RUNTIME is the SDK's own */
    rt_send_raw("01 42 0005 08 00000007");
    rt_send_raw("01 43 0040 00"); /* shorter than its header says */
    rt_signature(good + 1, PV_APP_DEVICE_SIG_LEN);
    assert_int_equal(pv_app_device_sign(digest, sizeof(digest), sig), PV_APP_OK);
    assert_memory_equal(sig, good + 1, PV_APP_DEVICE_SIG_LEN);
    rt_expect_sign(digest, sizeof(digest));
    /* An answer to another request while a sign waits is not the sign's answer. */
    rt_result(AC_EVENTS_REGISTER, PV_APP_OK);
    rt_signature(good + 2, PV_APP_DEVICE_SIG_LEN);
    assert_int_equal(pv_app_device_sign(digest, sizeof(digest), sig), PV_APP_OK);
    assert_memory_equal(sig, good + 2, PV_APP_DEVICE_SIG_LEN);
    rt_expect_sign(digest, sizeof(digest));
    /* A signature is not the answer to anything else either. */
    rt_signature(good + 3, PV_APP_DEVICE_SIG_LEN);
    rt_result(AC_EVENTS_REGISTER, PV_APP_ERR_DENIED);
    assert_int_equal(pv_app_events_register(1), PV_APP_ERR_DENIED);
}

static void test_sign_timeout_and_late_answer(void **state)
{
    (void)state;
    uint8_t digest[48], sig[PV_APP_DEVICE_SIG_LEN], late[PV_APP_DEVICE_SIG_LEN],
        fresh[PV_APP_DEVICE_SIG_LEN];
    fill(digest, sizeof(digest), 3);
    fill(late, sizeof(late), 0x10);
    fill(fresh, sizeof(fresh), 0x90);
    /* The sign timeout is its own: a short reply timeout does not cut a sign short. */
    sdk_set_reply_timeout_ms(50);
    sdk_set_sign_timeout_ms(300);
    int64_t t0 = mono_ms();
    assert_int_equal(pv_app_device_sign(digest, sizeof(digest), sig), PV_APP_ERR_IO);
    assert_true(mono_ms() - t0 >= 300);
    rt_expect_sign(digest, sizeof(digest));
    /* The late signature comes, then the next sign's answer: the late one is dropped. */
    rt_signature(late, sizeof(late));
    rt_signature(fresh, sizeof(fresh));
    sdk_set_sign_timeout_ms(2000);
    assert_int_equal(pv_app_device_sign(digest, 32, sig), PV_APP_OK);
    assert_memory_equal(sig, fresh, sizeof(fresh));
    rt_expect_sign(digest, 32);
    /* Timed out again; this time the late answer is a result, and is dropped as well. */
    sdk_set_sign_timeout_ms(100);
    assert_int_equal(pv_app_device_sign(digest, 64 - 16, sig), PV_APP_ERR_IO);
    rt_expect_sign(digest, 48);
    rt_sign_result(PV_APP_ERR_LIMIT);
    rt_sign_result(PV_APP_ERR_NOT_READY);
    sdk_set_sign_timeout_ms(2000);
    assert_int_equal(pv_app_device_sign(digest, 32, sig), PV_APP_ERR_NOT_READY);
    rt_expect_sign(digest, 32);
    /* Nothing is owed now: the next answer is taken. */
    rt_signature(late, sizeof(late));
    assert_int_equal(pv_app_device_sign(digest, 32, sig), PV_APP_OK);
    assert_memory_equal(sig, late, sizeof(late));
    rt_expect_sign(digest, 32);
    /* A sign's owed answer is not confused with another request's. */
    sdk_set_sign_timeout_ms(100);
    assert_int_equal(pv_app_device_sign(digest, 32, sig), PV_APP_ERR_IO);
    rt_expect_sign(digest, 32);
    rt_result(AC_POWER, PV_APP_ERR_DENIED);
    assert_int_equal(pv_app_power(PV_APP_POWER_REBOOT), PV_APP_ERR_DENIED);
}

static void test_sign_runtime_gone(void **state)
{
    (void)state;
    uint8_t digest[32] = {0}, sig[PV_APP_DEVICE_SIG_LEN];
    assert_int_equal(shutdown(rt, SHUT_WR), 0);
    int64_t t0 = mono_ms();
    assert_int_equal(pv_app_device_sign(digest, 32, sig), PV_APP_ERR_IO);
    assert_true(mono_ms() - t0 < 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_log_reaches_runtime, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_text_made_safe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_any_bytes_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_from_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_falls_back_to_stderr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_pavise_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_and_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arguments_checked_before_sending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_and_late_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runtime_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runtime_closes_while_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_during_a_request_are_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_keeps_the_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_defers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_runtime, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_and_storage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_malformed_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_timeout_and_late_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_runtime_gone, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
