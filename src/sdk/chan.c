/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libpavise-app: the channel to the runtime. Log lines and watchdog kicks are single
 * packets sent without a lock (a SOCK_SEQPACKET send is atomic); requests that wait for an
 * answer hold chan_lock from sending to answer, and keep events that arrive meanwhile in a
 * small queue for pv_app_dispatch.
 *
 * The runtime answers requests one for one and in order, so a request that timed out
 * leaves an answer owed: it is counted per type and the late answer dropped when it
 * comes, instead of being taken for the answer to the next request of that type. A sign
 * is answered by a signature or by a result; either settles what is owed for it.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sdk.h"

#define EVENT_QUEUE 16 /* events are rare: an update, a certificate renewal */

static pthread_mutex_t chan_lock = PTHREAD_MUTEX_INITIALIZER;
static int reply_timeout_ms = PV_APP_REPLY_TIMEOUT_MS;
static int sign_timeout_ms = PV_APP_SIGN_TIMEOUT_MS;
static bool closed;                     /* the runtime closed its end */
static unsigned owed[SDK_MAX_TYPE + 1]; /* answers to requests that timed out */
static pv_app_event queue[EVENT_QUEUE];
static size_t q_head, q_len;

void sdk_chan_reset(void)
{
    pthread_mutex_lock(&chan_lock);
    closed = false;
    memset(owed, 0, sizeof(owed));
    q_head = q_len = 0;
    reply_timeout_ms = PV_APP_REPLY_TIMEOUT_MS;
    sign_timeout_ms = PV_APP_SIGN_TIMEOUT_MS;
    pthread_mutex_unlock(&chan_lock);
}

void sdk_set_sign_timeout_ms(int ms)
{
    if (ms > 0) {
        pthread_mutex_lock(&chan_lock);
        sign_timeout_ms = ms;
        pthread_mutex_unlock(&chan_lock);
    }
}

void sdk_set_reply_timeout_ms(int ms)
{
    if (ms > 0) {
        pthread_mutex_lock(&chan_lock);
        reply_timeout_ms = ms;
        pthread_mutex_unlock(&chan_lock);
    }
}

static const char *level_name(int level)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    return names[level];
}

/* One write, so concurrent lines do not interleave (stderr is a pipe under pavised and
 * writes up to PIPE_BUF are atomic). */
static void log_stderr(int level, const char *text, size_t len)
{
    char line[PV_APP_MAX_LOG + 160];
    const char *name = sdk_env_get()->name;
    if (name == NULL) {
        name = program_invocation_short_name;
    }
    int n =
        snprintf(line, sizeof(line), "%.64s: %s: %.*s\n", name, level_name(level), (int)len, text);
    if (n > 0) {
        size_t w = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
        ssize_t unused = write(STDERR_FILENO, line, w);
        (void)unused; /* nowhere left to report a failed write to stderr */
    }
}

static int send_packet(int fd, const uint8_t *p, size_t n)
{
    for (;;) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w == (ssize_t)n) {
            return PV_APP_OK;
        }
        if (w < 0 && errno == EINTR) {
            continue;
        }
        return PV_APP_ERR_IO;
    }
}

int pv_app_vlog(int level, const char *fmt, va_list ap)
{
    char text[PV_APP_MAX_LOG + 1];
    uint8_t pkt[SDK_MAX_MSG];
    size_t len;
    if (level < PV_APP_LOG_DEBUG || level > PV_APP_LOG_ERROR || fmt == NULL) {
        return PV_APP_ERR_INVALID;
    }
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    if (n < 0) {
        len = (size_t)snprintf(text, sizeof(text), "(unformattable log line: %.64s)", fmt);
        len = len < sizeof(text) ? len : sizeof(text) - 1;
        n = (int)len;
    }
    bool cut = (size_t)n >= sizeof(text);
    len = sdk_clean_text(text, cut ? sizeof(text) - 1 : (size_t)n, cut);
    const sdk_env *s = sdk_env_get();
    if (s->fd < 0) {
        log_stderr(level, text, len);
        return PV_APP_ERR_NO_RUNTIME;
    }
    size_t plen = sdk_encode_log(pkt, level, text, len);
    if (send_packet(s->fd, pkt, plen) != PV_APP_OK) {
        log_stderr(level, text, len);
        return PV_APP_ERR_IO;
    }
    return PV_APP_OK;
}

int pv_app_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = pv_app_vlog(level, fmt, ap);
    va_end(ap);
    return r;
}

int pv_app_fd(void)
{
    return sdk_env_get()->fd;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Oldest events give way when the queue is full: the app has not dispatched for a while,
 * and the newer event describes the current state. */
static void enqueue(const pv_app_event *ev)
{
    if (q_len == EVENT_QUEUE) {
        q_head = (q_head + 1) % EVENT_QUEUE;
        q_len--;
    }
    queue[(q_head + q_len) % EVENT_QUEUE] = *ev;
    q_len++;
}

static bool dequeue(pv_app_event *ev)
{
    bool got = false;
    pthread_mutex_lock(&chan_lock);
    if (q_len > 0) {
        *ev = queue[q_head];
        q_head = (q_head + 1) % EVENT_QUEUE;
        q_len--;
        got = true;
    }
    pthread_mutex_unlock(&chan_lock);
    return got;
}

/* Reads one packet without blocking; chan_lock held. 1: *m holds a message that is not an
 * event (events are queued here, and malformed packets dropped: both return 2, "read
 * something, look again"); 0: nothing pending; -1: the channel is closed or failed. */
static int read_one(int fd, sdk_msg *m)
{
    uint8_t buf[SDK_MAX_MSG];
    ssize_t n;
    do {
        /* MSG_TRUNC: n is the packet's real length, so an oversized one is seen whole. */
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
    if (n == 0) {
        closed = true; /* SOCK_SEQPACKET: the runtime closed its end */
        return -1;
    }
    if ((size_t)n > sizeof(buf) || !sdk_decode(buf, (size_t)n, m)) {
        return 2;
    }
    if (m->type == SDK_EVENT) {
        enqueue(&m->event);
        return 2;
    }
    /* An answer owed to a request that gave up waiting: not this one's. */
    uint8_t req = sdk_answers(m);
    if (owed[req] > 0) {
        owed[req]--;
        return 2;
    }
    return 1;
}

/* Sends a request and waits for its answer; *reply holds it on PV_APP_OK. */
static int request(uint8_t type, const uint8_t *body, size_t n, sdk_msg *reply)
{
    const sdk_env *s = sdk_env_get();
    uint8_t pkt[SDK_HEADER + SDK_SIGN_MAX_DIGEST];
    int r = PV_APP_ERR_IO;
    if (s->fd < 0) {
        return PV_APP_ERR_NO_RUNTIME;
    }
    pthread_mutex_lock(&chan_lock);
    if (closed) {
        goto out;
    }
    size_t plen = sdk_encode(pkt, sizeof(pkt), type, body, n);
    if (plen == 0 || send_packet(s->fd, pkt, plen) != PV_APP_OK) {
        goto out;
    }
    int64_t deadline = now_ms() + (type == SDK_SIGN ? sign_timeout_ms : reply_timeout_ms);
    for (;;) {
        int got = read_one(s->fd, reply);
        if (got < 0) {
            goto out;
        }
        if (got == 2) {
            continue;
        }
        if (got == 1) {
            if (sdk_answers(reply) == type) {
                break;
            }
            continue; /* an answer to nothing asked: the runtime's mistake, dropped */
        }
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            owed[type]++;
            goto out;
        }
        struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
            goto out;
        }
    }
    r = PV_APP_OK;
out:
    pthread_mutex_unlock(&chan_lock);
    return r;
}

/* A request answered by AC_RESULT: its result. */
static int simple_request(uint8_t type, const uint8_t *body, size_t n)
{
    sdk_msg reply;
    int r = request(type, body, n, &reply);
    if (r != PV_APP_OK) {
        return r;
    }
    return reply.type == SDK_RESULT ? reply.result : PV_APP_ERR_IO;
}

static void put_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        p[k] = (uint8_t)(v >> (8 * (n - 1 - k)));
    }
}

int pv_app_events_register(uint32_t mask)
{
    uint8_t body[4];
    if ((mask & ~PV_APP_EVENT_ALL) != 0) {
        return PV_APP_ERR_INVALID;
    }
    put_be(body, mask, 4);
    return simple_request(SDK_EVENTS_REGISTER, body, sizeof(body));
}

int pv_app_defer(uint64_t event_id, uint32_t seconds)
{
    uint8_t body[12];
    if (event_id == 0) {
        return PV_APP_ERR_INVALID;
    }
    if (seconds > PV_APP_MAX_DEFER_SECONDS) {
        return PV_APP_ERR_LIMIT;
    }
    put_be(body, event_id, 8);
    put_be(body + 8, seconds, 4);
    return simple_request(SDK_DEFER, body, sizeof(body));
}

int pv_app_watchdog_start(uint32_t timeout_ms)
{
    uint8_t body[4];
    if (timeout_ms < PV_APP_WATCHDOG_MIN_MS || timeout_ms > PV_APP_WATCHDOG_MAX_MS) {
        return PV_APP_ERR_INVALID;
    }
    put_be(body, timeout_ms, 4);
    return simple_request(SDK_WATCHDOG_SET, body, sizeof(body));
}

int pv_app_watchdog_stop(void)
{
    static const uint8_t zero[4] = {0, 0, 0, 0};
    return simple_request(SDK_WATCHDOG_SET, zero, sizeof(zero));
}

int pv_app_watchdog_kick(void)
{
    const sdk_env *s = sdk_env_get();
    uint8_t pkt[SDK_HEADER];
    if (s->fd < 0) {
        return PV_APP_ERR_NO_RUNTIME;
    }
    size_t n = sdk_encode(pkt, sizeof(pkt), SDK_WATCHDOG_KICK, NULL, 0);
    return send_packet(s->fd, pkt, n);
}

int pv_app_power(int action)
{
    uint8_t body[1];
    if (action < PV_APP_POWER_REBOOT || action > PV_APP_POWER_PROFILE_LOW) {
        return PV_APP_ERR_INVALID;
    }
    body[0] = (uint8_t)action;
    return simple_request(SDK_POWER, body, sizeof(body));
}

int pv_app_query_status(pv_app_status *out)
{
    sdk_msg reply;
    if (out == NULL) {
        return PV_APP_ERR_INVALID;
    }
    memset(out, 0, sizeof(*out));
    int r = request(SDK_STATUS_QUERY, NULL, 0, &reply);
    if (r != PV_APP_OK) {
        return r;
    }
    if (reply.type == SDK_RESULT) {
        return reply.result != PV_APP_OK ? reply.result : PV_APP_ERR_IO;
    }
    *out = reply.status;
    return PV_APP_OK;
}

int pv_app_device_sign(const uint8_t *digest, size_t len, uint8_t sig[PV_APP_DEVICE_SIG_LEN])
{
    sdk_msg reply;
    if (sig != NULL) {
        memset(sig, 0, PV_APP_DEVICE_SIG_LEN);
    }
    if (digest == NULL || sig == NULL || (len != 32 && len != 48 && len != 64)) {
        return PV_APP_ERR_INVALID;
    }
    int r = request(SDK_SIGN, digest, len, &reply);
    if (r != PV_APP_OK) {
        return r;
    }
    if (reply.type == SDK_RESULT) {
        /* A result of 0 carries no signature: the runtime's mistake. */
        return reply.result != PV_APP_OK ? reply.result : PV_APP_ERR_IO;
    }
    memcpy(sig, reply.signature, PV_APP_DEVICE_SIG_LEN);
    return PV_APP_OK;
}

int pv_app_dispatch(pv_app_event_fn *fn, void *ctx)
{
    const sdk_env *s = sdk_env_get();
    sdk_msg m;
    pv_app_event ev;
    int delivered = 0;
    bool gone;
    if (fn == NULL) {
        return PV_APP_ERR_INVALID;
    }
    if (s->fd < 0) {
        return PV_APP_ERR_NO_RUNTIME;
    }
    pthread_mutex_lock(&chan_lock);
    /* Bounded: a runtime that keeps sending cannot hold the app here forever. */
    for (int i = 0; i < 4 * EVENT_QUEUE && !closed; i++) {
        int got = read_one(s->fd, &m);
        if (got <= 0) {
            break;
        }
        /* got == 1: an answer nobody waits for (its request has returned); dropped. */
    }
    gone = closed;
    pthread_mutex_unlock(&chan_lock);
    /* Without the lock: fn may make requests. */
    while (dequeue(&ev)) {
        fn(&ev, ctx);
        delivered++;
    }
    return gone ? PV_APP_ERR_IO : delivered;
}
