/* SPDX-License-Identifier: Apache-2.0 */
/*
 * telemetry: publishes a small JSON reading to an MQTT broker over TLS, authenticated by
 * the device's client certificate (the one the Security Service issues after attestation,
 * which the runtime hands to apps that declare DeviceAuthentication).
 *
 *   telemetry --host NAME [--port N] [--topic T] [--ca FILE] [--interval S] [--count N]
 *             [--client-id ID]
 *
 * Defaults: port 8883, topic pavise/telemetry, CA /app/etc/broker-ca.pem (the broker's
 * CA, shipped in the image), interval 10 s, count 0 (publish until stopped; N: exit 0
 * after N readings the broker acknowledged). The broker's host must be in the manifest's
 * AllowedConnections, or the compartment's firewall and DNS stub refuse it.
 *
 * A reading: {"seq":1,"uptime_s":1234,"storage_used_kb":20,"storage_quota_kb":64}
 * (storage figures null without MutableStorage), QoS 1.
 *
 * The device's private key is not in the compartment: the TLS client key is an OpenSSL key
 * object whose signatures the runtime makes (libpavise-app-tls), given to libmosquitto in
 * an SSL_CTX of our own.
 *
 * It waits until the device certificate is there (the device may not have attested yet),
 * reconnects with exponential backoff (1 s to 60 s, with jitter) when the broker is
 * unreachable or drops it, and reconnects with the new certificate when the runtime says
 * it was renewed (PV_APP_EVENT_DEVICE_AUTH).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "pavise/app.h"
#include "pavise/app_tls.h"

#define CONNECT_TIMEOUT_MS 20000
#define BACKOFF_MIN_MS     1000
#define BACKOFF_MAX_MS     60000
#define KEEPALIVE_S        60

typedef struct options {
    const char *host;
    int port;
    const char *topic;
    const char *ca;
    unsigned interval_s;
    unsigned long count;
    const char *client_id;
} options;

typedef struct telemetry {
    options o;
    struct mosquitto *mosq;
    bool connected;
    bool lost;              /* the session ended: reconnect */
    bool renewed;           /* the runtime renewed the certificate: reconnect with it */
    bool runtime_gone;      /* the channel closed: stop polling it */
    unsigned long seq;      /* readings sent */
    unsigned long acked;    /* readings the broker acknowledged */
    unsigned long inflight; /* sent in this session, not yet acknowledged */
} telemetry;

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static int64_t now_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || s[0] == '+' || v < min ||
        v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
    unsigned long v;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val == NULL || val[0] == '\0') {
            return -1;
        }
        if (strcmp(a, "--host") == 0) {
            o->host = val;
        } else if (strcmp(a, "--port") == 0 && parse_ulong(val, 1, 65535, &v) == 0) {
            o->port = (int)v;
        } else if (strcmp(a, "--topic") == 0) {
            o->topic = val;
        } else if (strcmp(a, "--ca") == 0) {
            o->ca = val;
        } else if (strcmp(a, "--interval") == 0 && parse_ulong(val, 1, 86400, &v) == 0) {
            o->interval_s = (unsigned)v;
        } else if (strcmp(a, "--count") == 0 && parse_ulong(val, 0, 1ul << 31, &v) == 0) {
            o->count = v;
        } else if (strcmp(a, "--client-id") == 0) {
            o->client_id = val;
        } else {
            return -1;
        }
    }
    /* A topic with wildcards cannot be published to. */
    return o->host != NULL && strpbrk(o->topic, "+#") == NULL ? 0 : -1;
}

static void on_event(const pv_app_event *ev, void *ctx)
{
    telemetry *t = ctx;
    if (ev->kind == PV_APP_EVENT_DEVICE_AUTH) {
        pv_app_log(PV_APP_LOG_INFO, "the device certificate was renewed");
        t->renewed = true;
    }
}

/* Handles what the runtime sent, without blocking. */
static void dispatch(telemetry *t)
{
    if (pv_app_fd() < 0 || t->runtime_gone) {
        return;
    }
    if (pv_app_dispatch(on_event, t) == PV_APP_ERR_IO) {
        pv_app_log(PV_APP_LOG_ERROR, "the runtime closed the channel");
        t->runtime_gone = true;
    }
}

/* Sleeps ms, or less when stopped; handles the runtime's events meanwhile. */
static void wait_ms(telemetry *t, int64_t ms)
{
    int64_t end = now_ms(CLOCK_MONOTONIC) + ms;
    for (int64_t left = ms; left > 0 && !stop; left = end - now_ms(CLOCK_MONOTONIC)) {
        struct pollfd pfd = {.fd = t->runtime_gone ? -1 : pv_app_fd(), .events = POLLIN};
        if (poll(&pfd, 1, (int)(left < 1000 ? left : 1000)) > 0) {
            dispatch(t);
        }
    }
}

/* Waits until the device holds a client certificate. False when stopped, or when the
 * manifest does not grant DeviceAuthentication (no waiting will help). */
static bool wait_device_auth(telemetry *t)
{
    const char *cert;
    int r = pv_app_device_auth_paths(&cert, NULL);
    if (r != PV_APP_OK) {
        pv_app_log(PV_APP_LOG_ERROR, "no device certificate: %s (DeviceAuthentication)",
                   pv_app_strerror(r));
        return false;
    }
    bool said = false;
    while (!stop && !pv_app_device_auth_ready()) {
        if (!said) {
            pv_app_log(PV_APP_LOG_INFO, "waiting for the device certificate (%s)", cert);
            said = true;
        }
        wait_ms(t, 1000);
    }
    if (said && !stop) {
        pv_app_log(PV_APP_LOG_INFO, "the device certificate is there");
    }
    return !stop;
}

/* The TLS context for a session: it verifies the broker (its certificate chains to the CA
 * file, and names the host we connect to) and holds the device's identity: its
 * certificate, the chain to the tenant CA (the broker may know only the root) and the key
 * that signs through the runtime. A new one for each session, so a renewed certificate is
 * picked up. NULL on failure (said).
 *
 * The whole context is ours, libmosquitto's TLS defaults off: libmosquitto 2.0.11
 * (Debian 12) sets up the index its broker-verify callback needs only when it makes the
 * context itself, so with a context of ours and its defaults on it refuses every broker.
 * OpenSSL's own host check (X509_check_host, RFC 6125) stands in for that callback. */
static SSL_CTX *session_ctx(const options *o)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    X509_VERIFY_PARAM *param = ctx != NULL ? SSL_CTX_get0_param(ctx) : NULL;
    if (param == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        pv_app_log(PV_APP_LOG_ERROR, "cannot make a TLS context");
        goto fail;
    }
    if (SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1) {
        pv_app_log(PV_APP_LOG_ERROR, "cannot load the broker's CA from %s", o->ca);
        goto fail;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    /* An address names the broker by its IP subjectAltName, a name by its DNS ones. */
    if (X509_VERIFY_PARAM_set1_ip_asc(param, o->host) != 1 &&
        X509_VERIFY_PARAM_set1_host(param, o->host, 0) != 1) {
        pv_app_log(PV_APP_LOG_ERROR, "cannot check the broker's name %s", o->host);
        goto fail;
    }
    int r = pv_app_tls_use_device_identity(ctx);
    if (r != PV_APP_OK) {
        pv_app_log(PV_APP_LOG_ERROR, "cannot use the device identity: %s", pv_app_strerror(r));
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

static void on_connect(struct mosquitto *m, void *ctx, int rc)
{
    telemetry *t = ctx;
    (void)m;
    if (rc == 0) {
        pv_app_log(PV_APP_LOG_INFO, "connected to %s:%d", t->o.host, t->o.port);
        t->connected = true;
    } else {
        pv_app_log(PV_APP_LOG_WARN, "the broker refused the connection: %s",
                   mosquitto_connack_string(rc));
        t->lost = true;
    }
}

static void on_disconnect(struct mosquitto *m, void *ctx, int rc)
{
    telemetry *t = ctx;
    (void)m;
    if (rc != 0) {
        pv_app_log(PV_APP_LOG_WARN, "disconnected: %s", mosquitto_strerror(rc));
    }
    t->connected = false;
    t->lost = true;
}

static void on_publish(struct mosquitto *m, void *ctx, int mid)
{
    telemetry *t = ctx;
    (void)m;
    (void)mid;
    t->acked++;
    if (t->inflight > 0) {
        t->inflight--;
    }
}

/* libmosquitto's own errors say why TLS failed ("certificate verify failed"); its
 * return codes only that it did. */
static void on_log(struct mosquitto *m, void *ctx, int level, const char *text)
{
    (void)m;
    (void)ctx;
    if (level == MOSQ_LOG_ERR || level == MOSQ_LOG_WARNING) {
        pv_app_log(level == MOSQ_LOG_ERR ? PV_APP_LOG_ERROR : PV_APP_LOG_WARN, "mosquitto: %s",
                   text);
    }
}

static bool done(const telemetry *t)
{
    return t->o.count > 0 && t->acked >= t->o.count;
}

static void publish(telemetry *t)
{
    char json[256];
    char used[24] = "null", quota[24] = "null";
    uint64_t u, q;
    if (pv_app_storage_usage(&u, &q) == PV_APP_OK) {
        snprintf(used, sizeof(used), "%llu", (unsigned long long)u);
        snprintf(quota, sizeof(quota), "%llu", (unsigned long long)q);
    }
    unsigned long seq = t->seq + 1;
    int n =
        snprintf(json, sizeof(json),
                 "{\"seq\":%lu,\"uptime_s\":%lld,\"storage_used_kb\":%s,\"storage_quota_kb\":%s}",
                 seq, (long long)(now_ms(CLOCK_BOOTTIME) / 1000), used, quota);
    int rc = mosquitto_publish(t->mosq, NULL, t->o.topic, n, json, 1, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        pv_app_log(PV_APP_LOG_WARN, "publish: %s", mosquitto_strerror(rc));
        return;
    }
    t->seq = seq;
    t->inflight++;
    pv_app_log(PV_APP_LOG_DEBUG, "published %s", json);
}

/* One connection, until it is lost, the certificate is renewed, the count is reached or
 * the app is stopped. True when it got as far as connecting (the backoff starts over). */
static bool session(telemetry *t)
{
    bool was_connected = false;
    int rc;
    t->connected = t->lost = t->renewed = false;
    t->inflight = 0; /* a new clean session: what was in flight is lost */
    SSL_CTX *ctx = session_ctx(&t->o);
    if (ctx == NULL) {
        goto out;
    }
    /* A new client each time, with the context just made. */
    t->mosq = mosquitto_new(t->o.client_id, true, t);
    if (t->mosq == NULL) {
        pv_app_log(PV_APP_LOG_ERROR, "mosquitto_new: %s", strerror(errno));
        goto out;
    }
    mosquitto_connect_callback_set(t->mosq, on_connect);
    mosquitto_disconnect_callback_set(t->mosq, on_disconnect);
    mosquitto_publish_callback_set(t->mosq, on_publish);
    mosquitto_log_callback_set(t->mosq, on_log);
    /* libmosquitto takes its own reference on ctx (and drops it in mosquitto_destroy). Its
     * defaults, on unless turned off in 2.0, are off: see session_ctx. */
    rc = mosquitto_int_option(t->mosq, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);
    if (rc == MOSQ_ERR_SUCCESS) {
        rc = mosquitto_void_option(t->mosq, MOSQ_OPT_SSL_CTX, ctx);
    }
    if (rc != MOSQ_ERR_SUCCESS) {
        pv_app_log(PV_APP_LOG_ERROR, "TLS settings: %s", mosquitto_strerror(rc));
        goto out;
    }
    rc = mosquitto_connect(t->mosq, t->o.host, t->o.port, KEEPALIVE_S);
    if (rc != MOSQ_ERR_SUCCESS) {
        pv_app_log(PV_APP_LOG_WARN, "cannot connect to %s:%d: %s", t->o.host, t->o.port,
                   rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        goto out;
    }
    int64_t deadline = now_ms(CLOCK_MONOTONIC) + CONNECT_TIMEOUT_MS, next = 0;
    while (!stop && !t->lost && !t->renewed && !t->runtime_gone) {
        rc = mosquitto_loop(t->mosq, 100, 1);
        if (rc != MOSQ_ERR_SUCCESS && !t->lost) {
            pv_app_log(PV_APP_LOG_WARN, "connection to %s:%d: %s", t->o.host, t->o.port,
                       rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
            break;
        }
        dispatch(t);
        int64_t now = now_ms(CLOCK_MONOTONIC);
        if (!t->connected) {
            if (now >= deadline) {
                pv_app_log(PV_APP_LOG_WARN, "no answer from %s:%d", t->o.host, t->o.port);
                break;
            }
            continue;
        }
        was_connected = true;
        if (done(t)) {
            break;
        }
        /* With a count, no more readings than it still needs are in flight. */
        if (now >= next && (t->o.count == 0 || t->acked + t->inflight < t->o.count)) {
            publish(t);
            next = now + (int64_t)t->o.interval_s * 1000;
        }
    }
    if (t->connected) {
        mosquitto_disconnect(t->mosq);
        /* Let the DISCONNECT go out. */
        (void)mosquitto_loop(t->mosq, 100, 1);
    }
out:
    if (t->mosq != NULL) {
        mosquitto_destroy(t->mosq);
        t->mosq = NULL;
    }
    SSL_CTX_free(ctx);
    return was_connected;
}

static int64_t jitter(int64_t ms)
{
    uint16_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
        r = (uint16_t)getpid();
    }
    /* 75% to 125% of ms: devices that lost the broker together do not all return at once. */
    return ms * 3 / 4 + (ms / 2) * r / UINT16_MAX;
}

int main(int argc, char **argv)
{
    telemetry t;
    memset(&t, 0, sizeof(t));
    t.o = (options){.port = 8883,
                    .topic = "pavise/telemetry",
                    .ca = "/app/etc/broker-ca.pem",
                    .interval_s = 10};
    if (parse_args(argc, argv, &t.o) != 0) {
        fprintf(stderr, "usage: telemetry --host NAME [--port N] [--topic T] [--ca FILE] "
                        "[--interval S] [--count N] [--client-id ID]\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int r = pv_app_events_register(PV_APP_EVENT_DEVICE_AUTH);
    if (r != PV_APP_OK && r != PV_APP_ERR_NO_RUNTIME) {
        pv_app_log(PV_APP_LOG_WARN, "no certificate renewal events: %s", pv_app_strerror(r));
    }
    if (!wait_device_auth(&t)) {
        return stop ? 0 : 1;
    }
    mosquitto_lib_init();
    pv_app_log(PV_APP_LOG_INFO, "publishing to %s:%d topic %s every %u s", t.o.host, t.o.port,
               t.o.topic, t.o.interval_s);
    int64_t backoff = BACKOFF_MIN_MS;
    while (!stop && !done(&t) && !t.runtime_gone) {
        if (!pv_app_device_auth_ready() && !wait_device_auth(&t)) {
            break;
        }
        if (session(&t)) {
            backoff = BACKOFF_MIN_MS;
        }
        if (stop || done(&t) || t.renewed) {
            continue;
        }
        int64_t wait = jitter(backoff);
        pv_app_log(PV_APP_LOG_INFO, "reconnecting in %lld ms", (long long)wait);
        wait_ms(&t, wait);
        backoff = backoff * 2 < BACKOFF_MAX_MS ? backoff * 2 : BACKOFF_MAX_MS;
    }
    mosquitto_lib_cleanup();
    if (done(&t)) {
        pv_app_log(PV_APP_LOG_INFO, "%lu reading%s acknowledged", t.acked, t.acked == 1 ? "" : "s");
    }
    return stop || done(&t) ? 0 : 1;
}
