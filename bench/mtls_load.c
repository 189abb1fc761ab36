/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mtls-load: an HTTP/1.1 keep-alive load generator over TLS with an optional client
 * certificate. wrk cannot present a client certificate, and the service's benchmarks
 * (bench/server_get.sh, and later attestation) must compare pavise-server with nginx
 * under the same client, so this is the one client both are driven by.
 *
 * Model: T threads, each running an epoll loop over its share of N non-blocking
 * connections, one request in flight per connection (a closed loop: the offered load is
 * whatever the server sustains). Each response is parsed (status line, Content-Length or
 * chunked, Connection: close), its latency recorded in a log-linear histogram, and the
 * next request written at once. After --warmup seconds the counters start; after
 * --duration more seconds every thread stops and the results are printed on one line
 * (or as JSON with --json).
 *
 * The server certificate is always verified against --ca and the URL's host (an IP
 * address is checked against the certificate's IP addresses): a benchmark that turned
 * verification off would measure a configuration nobody runs.
 *
 * Exit status: 0 when at least one request completed in the measured window, 1 when none
 * did or the run could not start, 2 for bad arguments. Errors and non-2xx responses are
 * reported, not fatal: the caller decides (bench/server_get.sh requires both to be 0).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "clock.h"
#include "hist.h"

#define MAX_CONNECTIONS 10000
#define MAX_THREADS     64
#define MAX_HEADERS     32
#define MAX_BODY        (1024 * 1024) /* --body / --body @FILE */
#define MAX_REQUEST     (MAX_BODY + 64 * 1024)
#define HEAD_MAX        (16 * 1024) /* a response head larger than this is an error */
#define LINE_MAX_LEN    1024        /* chunk-size and trailer lines */
#define IN_CAP          (HEAD_MAX + 16 * 1024)
#define RETRY_NS        (10 * 1000 * 1000) /* pause before reconnecting after an error */

/* ---- configuration ---- */

typedef struct options {
    char host[256]; /* without brackets for IPv6 */
    char port[8];
    char path[2048];
    const char *ca, *cert, *key;
    const char *method;
    const char *headers[MAX_HEADERS];
    size_t nheaders;
    char *body; /* owned; NULL for none */
    size_t body_len;
    long connections, threads;
    double duration, warmup;
    bool tls12, json;
} options;

/* Read-only while the workers run. */
typedef struct shared {
    const options *opt;
    SSL_CTX *ctx;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool host_is_ip;
    bool head_request; /* responses to HEAD have no body whatever their headers say */
    char *request;     /* the whole request, written again for every round trip */
    size_t request_len;
    uint64_t t_measure; /* CLOCK_MONOTONIC ns: counting starts */
    uint64_t t_end;     /* and stops */
} shared;

/* Only the first error is printed: thousands of identical lines would hide it. */
static atomic_bool first_error_printed;

static void report_error(const char *what, const char *detail)
{
    bool expected = false;
    if (atomic_compare_exchange_strong(&first_error_printed, &expected, true)) {
        fprintf(stderr, "mtls-load: first error: %s%s%s\n", what, detail ? ": " : "",
                detail ? detail : "");
    }
}

/* ---- one connection ---- */

typedef enum {
    C_CLOSED,     /* no socket; (re)connects when retry_at is reached */
    C_CONNECTING, /* TCP connect in progress */
    C_HANDSHAKE,
    C_WRITING,
    C_READING,
} conn_state;

typedef enum {
    R_HEAD,
    R_BODY_LEN,
    R_CHUNK_SIZE,
    R_CHUNK_DATA,
    R_CHUNK_CRLF,
    R_TRAILER,
    R_UNTIL_CLOSE,
    R_DONE,
} resp_state;

typedef struct conn {
    int fd;
    SSL *ssl;
    conn_state state;
    uint32_t events; /* what epoll watches for now */
    uint64_t retry_at;
    size_t wpos;     /* bytes of the request written */
    uint64_t t_sent; /* when the request's first byte was handed to TLS */
    /* response parser */
    resp_state rs;
    int status;
    uint64_t remaining; /* body or chunk bytes still to come */
    bool close_after;   /* Connection: close, HTTP/1.0, or a body delimited by close */
    unsigned char in[IN_CAP];
    size_t in_len;
} conn;

typedef struct worker {
    pthread_t tid;
    const shared *sh;
    int epfd;
    conn *conns;
    size_t nconns;
    /* results (read by main after join) */
    hist h;
    uint64_t requests, errors, non2xx;
    int failed; /* the thread could not run at all */
} worker;

static void conn_close(conn *c, uint64_t retry_at)
{
    if (c->ssl) {
        /* No close_notify exchange: the socket goes away now either way. */
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd); /* also removes it from the epoll set */
        c->fd = -1;
    }
    c->state = C_CLOSED;
    c->events = 0;
    c->retry_at = retry_at;
}

/* Counts an error and reconnects after a pause (so a server that refuses everything is
 * not hammered in a busy loop). */
static void conn_fail(worker *w, conn *c, const char *what, const char *detail)
{
    w->errors++;
    report_error(what, detail);
    ERR_clear_error(); /* so a stale entry does not confuse the next SSL_get_error */
    conn_close(c, now_ns() + RETRY_NS);
}

static void conn_fail_ssl(worker *w, conn *c, const char *what, int ssl_err)
{
    char detail[256];
    unsigned long e = ERR_peek_last_error();
    long vr = c->ssl ? SSL_get_verify_result(c->ssl) : X509_V_OK;
    if (vr != X509_V_OK) {
        snprintf(detail, sizeof(detail), "certificate verification failed: %s",
                 X509_verify_cert_error_string(vr));
    } else if (e != 0) {
        ERR_error_string_n(e, detail, sizeof(detail));
    } else if (ssl_err == SSL_ERROR_SYSCALL) {
        snprintf(detail, sizeof(detail), "%s", errno ? strerror(errno) : "connection closed");
    } else if (ssl_err == SSL_ERROR_ZERO_RETURN) {
        snprintf(detail, sizeof(detail), "connection closed by the server");
    } else {
        snprintf(detail, sizeof(detail), "SSL error %d", ssl_err);
    }
    conn_fail(w, c, what, detail);
}

static int conn_watch(worker *w, conn *c, uint32_t events)
{
    if (c->events == events) {
        return 0;
    }
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(w->epfd, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        conn_fail(w, c, "epoll_ctl", strerror(errno));
        return -1;
    }
    c->events = events;
    return 0;
}

static int conn_start_tls(worker *w, conn *c)
{
    const shared *sh = w->sh;
    c->ssl = SSL_new(sh->ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
        conn_fail_ssl(w, c, "SSL_new", 0);
        return -1;
    }
    /* The host check: an IP address against the certificate's IP SANs, a name against
     * its DNS SANs (and sent as SNI). */
    int ok = sh->host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), sh->opt->host)
                            : (SSL_set1_host(c->ssl, sh->opt->host) &&
                               SSL_set_tlsext_host_name(c->ssl, sh->opt->host));
    if (ok != 1) {
        conn_fail_ssl(w, c, "setting the expected host name", 0);
        return -1;
    }
    SSL_set_connect_state(c->ssl);
    c->state = C_HANDSHAKE;
    return 0;
}

static void conn_open(worker *w, conn *c)
{
    const shared *sh = w->sh;
    c->fd = socket(sh->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_fail(w, c, "socket", strerror(errno));
        return;
    }
    int one = 1;
    /* Requests are small and written whole: Nagle would only add delay. */
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->in_len = 0;
    c->events = 0;
    if (connect(c->fd, (const struct sockaddr *)&sh->addr, sh->addrlen) == 0) {
        (void)conn_start_tls(w, c);
    } else if (errno == EINPROGRESS) {
        c->state = C_CONNECTING;
    } else {
        conn_fail(w, c, "connect", strerror(errno));
        return;
    }
    if (c->fd >= 0) {
        (void)conn_watch(w, c, EPOLLOUT);
    }
}

/* ---- response parsing ---- */

static bool token_in_list(const char *v, size_t n, const char *token)
{
    size_t tl = strlen(token);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) {
            i++;
        }
        size_t s = i;
        while (i < n && v[i] != ',') {
            i++;
        }
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) {
            e--;
        }
        if (e - s == tl && strncasecmp(v + s, token, tl) == 0) {
            return true;
        }
    }
    return false;
}

/* Whether the last transfer coding in the list is "chunked" (RFC 9112 6.1). */
static bool last_coding_chunked(const char *v, size_t n)
{
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) {
        n--;
    }
    size_t s = n;
    while (s > 0 && v[s - 1] != ',') {
        s--;
    }
    while (s < n && (v[s] == ' ' || v[s] == '\t')) {
        s++;
    }
    return n - s == 7 && strncasecmp(v + s, "chunked", 7) == 0;
}

static int parse_decimal(const char *v, size_t n, uint64_t *out)
{
    *out = 0;
    if (n == 0 || n > 18) { /* 18 digits cannot overflow 64 bits */
        return -1;
    }
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return -1;
        }
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return 0;
}

/* Parses the status line and headers in h[0..n) (n excludes the final CRLF CRLF) and
 * sets how the body is delimited. Returns NULL or what is wrong. */
static const char *parse_head(const shared *sh, conn *c, const char *h, size_t n)
{
    if (n < 12 || memcmp(h, "HTTP/1.", 7) != 0 || (h[7] != '0' && h[7] != '1') || h[8] != ' ' ||
        h[9] < '1' || h[9] > '5' || h[10] < '0' || h[10] > '9' || h[11] < '0' || h[11] > '9') {
        return "malformed status line";
    }
    bool http10 = h[7] == '0';
    c->status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
    bool have_len = false, chunked = false, te = false, keep_alive = false;
    uint64_t len = 0;
    c->close_after = false;
    const char *p = memchr(h, '\n', n);
    const char *end = h + n;
    while (p && p + 1 < end) {
        const char *line = p + 1;
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *le = nl ? nl : end;
        if (le > line && le[-1] == '\r') {
            le--;
        }
        const char *colon = memchr(line, ':', (size_t)(le - line));
        if (!colon || colon == line) {
            return "malformed header line";
        }
        size_t nl_len = (size_t)(colon - line);
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t')) {
            v++;
        }
        size_t vn = (size_t)(le - v);
        while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) {
            vn--;
        }
        if (nl_len == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
            uint64_t x;
            if (parse_decimal(v, vn, &x) != 0 || (have_len && x != len)) {
                return "bad Content-Length";
            }
            have_len = true;
            len = x;
        } else if (nl_len == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
            te = true;
            chunked = last_coding_chunked(v, vn);
        } else if (nl_len == 10 && strncasecmp(line, "Connection", 10) == 0) {
            c->close_after |= token_in_list(v, vn, "close");
            keep_alive |= token_in_list(v, vn, "keep-alive");
        }
        p = nl;
    }
    if (http10 && !keep_alive) {
        c->close_after = true;
    }
    if (c->status < 200) {
        c->rs = R_HEAD; /* an interim response: the real one follows */
    } else if (sh->head_request || c->status == 204 || c->status == 304) {
        c->rs = R_DONE;
    } else if (te) {
        /* Transfer-Encoding wins over Content-Length; a body not ending in chunked is
         * delimited by the connection closing. */
        c->rs = chunked ? R_CHUNK_SIZE : R_UNTIL_CLOSE;
    } else if (have_len) {
        c->remaining = len;
        c->rs = len ? R_BODY_LEN : R_DONE;
    } else {
        c->rs = R_UNTIL_CLOSE;
    }
    if (c->rs == R_UNTIL_CLOSE) {
        c->close_after = true;
    }
    return NULL;
}

/* The chunk size line (without CRLF); extensions after ';' are ignored. */
static const char *parse_chunk_size(const char *s, size_t n, uint64_t *size)
{
    *size = 0;
    uint64_t x = 0;
    size_t i = 0;
    for (; i < n && i < 15; i++) { /* 15 hex digits cannot overflow */
        char ch = s[i];
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (d < 0) {
            break;
        }
        x = x * 16 + (uint64_t)d;
    }
    if (i == 0 || (i < n && s[i] != ';' && s[i] != ' ' && s[i] != '\t')) {
        return "malformed chunk size";
    }
    *size = x;
    return NULL;
}

/* Consumes what it can of c->in. Returns NULL (check c->rs == R_DONE for a complete
 * response) or what is wrong with the response. */
static const char *resp_feed(const shared *sh, conn *c)
{
    size_t off = 0;
    const char *err = NULL;
    while (off < c->in_len && c->rs != R_DONE && !err) {
        const char *b = (const char *)c->in + off;
        size_t avail = c->in_len - off;
        if (c->rs == R_BODY_LEN || c->rs == R_CHUNK_DATA) {
            size_t take = avail < c->remaining ? avail : (size_t)c->remaining;
            off += take;
            c->remaining -= take;
            if (c->remaining == 0) {
                c->rs = c->rs == R_BODY_LEN ? R_DONE : R_CHUNK_CRLF;
            }
        } else if (c->rs == R_UNTIL_CLOSE) {
            off = c->in_len;
        } else if (c->rs == R_CHUNK_CRLF) {
            if (avail < 2) {
                break;
            }
            if (b[0] != '\r' || b[1] != '\n') {
                err = "chunk not followed by CRLF";
            }
            off += 2;
            c->rs = R_CHUNK_SIZE;
        } else if (c->rs == R_HEAD) {
            const char *e = memmem(b, avail, "\r\n\r\n", 4);
            if (!e) {
                err = avail >= HEAD_MAX ? "response head too large" : NULL;
                break;
            }
            err = parse_head(sh, c, b, (size_t)(e - b));
            off += (size_t)(e - b) + 4;
        } else { /* R_CHUNK_SIZE, R_TRAILER: one line */
            const char *e = memmem(b, avail, "\r\n", 2);
            if (!e) {
                err = avail >= LINE_MAX_LEN ? "chunk or trailer line too long" : NULL;
                break;
            }
            size_t ln = (size_t)(e - b);
            if (c->rs == R_TRAILER) {
                c->rs = ln == 0 ? R_DONE : R_TRAILER;
            } else {
                err = parse_chunk_size(b, ln, &c->remaining);
                c->rs = c->remaining ? R_CHUNK_DATA : R_TRAILER;
            }
            off += ln + 2;
        }
    }
    if (!err && c->rs == R_DONE && off < c->in_len) {
        /* One request is in flight: anything more is not an answer to anything. */
        err = "data after the end of the response";
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return err;
}

/* ---- the state machine ---- */

static void begin_request(conn *c)
{
    c->state = C_WRITING;
    c->wpos = 0;
    c->t_sent = now_ns();
}

/* A whole response arrived at time t. Returns whether the connection goes on. */
static bool response_done(worker *w, conn *c, uint64_t t)
{
    const shared *sh = w->sh;
    if (t >= sh->t_measure && t <= sh->t_end) {
        w->requests++;
        if (c->status < 200 || c->status > 299) {
            w->non2xx++;
        }
        hist_add(&w->h, (t - c->t_sent) / 1000);
    }
    if (c->close_after) {
        conn_close(c, t); /* reconnect at once: closing is the server's right */
        return false;
    }
    if (t >= sh->t_end) {
        return false;
    }
    begin_request(c);
    return true;
}

static void on_connected(worker *w, conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
    }
    if (err != 0) {
        conn_fail(w, c, "connect", strerror(err));
        return;
    }
    (void)conn_start_tls(w, c);
}

/* Reads what TLS has; returns 1 to go on with the state machine, 0 to wait, -1 when
 * the connection was closed (counted or reconnecting). */
static int on_readable(worker *w, conn *c)
{
    size_t room = IN_CAP - c->in_len;
    int n = SSL_read(c->ssl, c->in + c->in_len, room > INT32_MAX ? INT32_MAX : (int)room);
    if (n > 0) {
        c->in_len += (size_t)n;
        const char *err = resp_feed(w->sh, c);
        if (err) {
            conn_fail(w, c, "bad response", err);
            return -1;
        }
        if (c->rs != R_DONE) {
            return 1; /* more may be buffered inside TLS */
        }
        return response_done(w, c, now_ns()) ? 1 : -1;
    }
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ) {
        return conn_watch(w, c, EPOLLIN) == 0 ? 0 : -1;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        return conn_watch(w, c, EPOLLOUT) == 0 ? 0 : -1;
    }
    if ((e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL) && c->rs == R_UNTIL_CLOSE) {
        (void)response_done(w, c, now_ns()); /* the close is the end of the body */
        return -1;
    }
    conn_fail_ssl(w, c, c->rs == R_HEAD && c->in_len == 0 ? "no response" : "reading", e);
    return -1;
}

/* Drives c as far as it goes without blocking. */
static void conn_step(worker *w, conn *c)
{
    const shared *sh = w->sh;
    for (;;) {
        if (c->state == C_CONNECTING) {
            on_connected(w, c);
            if (c->state != C_HANDSHAKE) {
                return;
            }
        }
        int n, e;
        switch (c->state) {
        case C_HANDSHAKE:
            n = SSL_connect(c->ssl);
            if (n == 1) {
                begin_request(c);
                continue;
            }
            break;
        case C_WRITING:
            n = SSL_write(c->ssl, sh->request + c->wpos, (int)(sh->request_len - c->wpos));
            if (n > 0) {
                c->wpos += (size_t)n;
                if (c->wpos == sh->request_len) {
                    c->state = C_READING;
                    c->rs = R_HEAD;
                    c->in_len = 0;
                }
                continue;
            }
            break;
        case C_READING:
            if (on_readable(w, c) > 0) {
                continue;
            }
            return;
        default:
            return;
        }
        e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ) {
            (void)conn_watch(w, c, EPOLLIN);
        } else if (e == SSL_ERROR_WANT_WRITE) {
            (void)conn_watch(w, c, EPOLLOUT);
        } else {
            conn_fail_ssl(w, c, c->state == C_HANDSHAKE ? "TLS handshake" : "writing", e);
        }
        return;
    }
}

static void *worker_run(void *arg)
{
    worker *w = arg;
    const shared *sh = w->sh;
    struct epoll_event evs[64];
    ERR_clear_error();
    uint64_t now = now_ns();
    for (size_t i = 0; i < w->nconns; i++) {
        w->conns[i].fd = -1;
        conn_close(&w->conns[i], now);
    }
    while ((now = now_ns()) < sh->t_end) {
        bool waiting = false; /* a connection waits to reconnect: wake up to do it */
        for (size_t i = 0; i < w->nconns; i++) {
            conn *c = &w->conns[i];
            if (c->state == C_CLOSED && c->retry_at <= now) {
                conn_open(w, c);
                if (c->state == C_HANDSHAKE) {
                    conn_step(w, c);
                }
            }
            waiting |= c->state == C_CLOSED;
        }
        uint64_t left_ms = (sh->t_end - now) / 1000000 + 1;
        int timeout = waiting ? 1 : (int)(left_ms < 1000 ? left_ms : 1000);
        int n = epoll_wait(w->epfd, evs, (int)(sizeof(evs) / sizeof(evs[0])), timeout);
        if (n < 0 && errno != EINTR) {
            report_error("epoll_wait", strerror(errno));
            w->failed = 1;
            break;
        }
        for (int i = 0; i < n; i++) {
            conn_step(w, evs[i].data.ptr);
        }
    }
    for (size_t i = 0; i < w->nconns; i++) {
        conn_close(&w->conns[i], 0);
    }
    return NULL;
}

/* ---- setup ---- */

static int parse_long(const char *s, long lo, long hi, long *out)
{
    *out = 0;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, double lo, double hi, double *out)
{
    *out = 0;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
        return -1;
    }
    *out = v;
    return 0;
}

static int copy_str(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap) {
        return -1;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

/* https://HOST[:PORT][/PATH]; HOST may be [IPv6]. */
static int parse_url(options *o, const char *url)
{
    if (strncmp(url, "https://", 8) != 0) {
        fprintf(stderr, "mtls-load: --url must start with https://\n");
        return -1;
    }
    const char *h = url + 8;
    const char *slash = strchr(h, '/');
    const char *auth_end = slash ? slash : h + strlen(h);
    const char *host_end, *port = NULL;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(auth_end - h));
        if (!rb) {
            fprintf(stderr, "mtls-load: --url: unterminated [IPv6 address]\n");
            return -1;
        }
        host_end = rb;
        h++;
        port = rb + 1 < auth_end && rb[1] == ':' ? rb + 2 : NULL;
    } else {
        const char *colon = memchr(h, ':', (size_t)(auth_end - h));
        host_end = colon ? colon : auth_end;
        port = colon ? colon + 1 : NULL;
    }
    long pn = 443;
    char pbuf[8] = "443";
    if (port && (copy_str(pbuf, sizeof(pbuf), port, (size_t)(auth_end - port)) != 0 ||
                 parse_long(pbuf, 1, 65535, &pn) != 0)) {
        fprintf(stderr, "mtls-load: --url: bad port\n");
        return -1;
    }
    if (host_end == h || copy_str(o->host, sizeof(o->host), h, (size_t)(host_end - h)) != 0 ||
        copy_str(o->port, sizeof(o->port), pbuf, strlen(pbuf)) != 0 ||
        copy_str(o->path, sizeof(o->path), slash ? slash : "/", strlen(slash ? slash : "/")) != 0) {
        fprintf(stderr, "mtls-load: --url: bad or too long host or path\n");
        return -1;
    }
    return 0;
}

static int read_body_file(options *o, const char *file)
{
    int r = -1;
    FILE *f = fopen(file, "rb");
    char *buf = malloc(MAX_BODY + 1);
    if (!f || !buf) {
        fprintf(stderr, "mtls-load: --body @%s: %s\n", file, strerror(errno));
        goto out;
    }
    size_t n = fread(buf, 1, MAX_BODY + 1, f);
    if (ferror(f) || n > MAX_BODY) {
        fprintf(stderr, "mtls-load: --body @%s: unreadable or larger than %d bytes\n", file,
                MAX_BODY);
        goto out;
    }
    o->body = buf;
    o->body_len = n;
    buf = NULL;
    r = 0;
out:
    free(buf);
    if (f) {
        fclose(f);
    }
    return r;
}

static int set_body(options *o, const char *arg)
{
    free(o->body);
    o->body = NULL;
    if (arg[0] == '@') {
        return read_body_file(o, arg + 1);
    }
    size_t n = strlen(arg);
    if (n > MAX_BODY || !(o->body = strdup(arg))) {
        fprintf(stderr, "mtls-load: --body too large\n");
        return -1;
    }
    o->body_len = n;
    return 0;
}

static int add_header(options *o, const char *h)
{
    const char *colon = strchr(h, ':');
    if (o->nheaders >= MAX_HEADERS || !colon || colon == h || strpbrk(h, "\r\n")) {
        fprintf(stderr, "mtls-load: --header must be 'Name: value' on one line (at most %d)\n",
                MAX_HEADERS);
        return -1;
    }
    o->headers[o->nheaders++] = h;
    return 0;
}

static bool valid_method(const char *m)
{
    size_t n = strlen(m);
    return n > 0 && n <= 16 && strspn(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == n;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mtls-load (--url https://HOST:PORT/PATH | --host H --port P [--path P])\n"
            "                 --ca FILE [--cert FILE --key FILE] [--connections N] [--threads T]\n"
            "                 [--duration S] [--warmup S] [--method M] [--body STR|@FILE]\n"
            "                 [--header 'Name: value']... [--tls1.2] [--json]\n"
            "Keeps N keep-alive connections (default 16) over T threads (default 1), one\n"
            "request in flight on each, for --warmup (default 1) then --duration (default 10)\n"
            "seconds. TLS 1.3 unless --tls1.2. Prints requests, rate, latency percentiles,\n"
            "errors (whole run) and non-2xx responses (measured window).\n");
}

enum {
    OPT_URL = 256,
    OPT_HOST,
    OPT_PORT,
    OPT_PATH,
    OPT_CA,
    OPT_CERT,
    OPT_KEY,
    OPT_CONN,
    OPT_THREADS,
    OPT_DURATION,
    OPT_WARMUP,
    OPT_METHOD,
    OPT_BODY,
    OPT_HEADER,
    OPT_TLS12,
    OPT_JSON,
    OPT_HELP
};

static const struct option long_opts[] = {
    {"url", required_argument, NULL, OPT_URL},
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"path", required_argument, NULL, OPT_PATH},
    {"ca", required_argument, NULL, OPT_CA},
    {"cert", required_argument, NULL, OPT_CERT},
    {"key", required_argument, NULL, OPT_KEY},
    {"connections", required_argument, NULL, OPT_CONN},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"method", required_argument, NULL, OPT_METHOD},
    {"body", required_argument, NULL, OPT_BODY},
    {"header", required_argument, NULL, OPT_HEADER},
    {"tls1.2", no_argument, NULL, OPT_TLS12},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* Returns 0 to run, -1 after --help, or 2 after printing what is wrong. */
static int parse_args(int argc, char **argv, options *o)
{
    long port;
    int ch;
    while ((ch = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        int bad = 0;
        switch (ch) {
        case OPT_URL:
            bad = parse_url(o, optarg);
            break;
        case OPT_HOST:
            bad = copy_str(o->host, sizeof(o->host), optarg, strlen(optarg));
            break;
        case OPT_PORT:
            bad = parse_long(optarg, 1, 65535, &port) ||
                  copy_str(o->port, sizeof(o->port), optarg, strlen(optarg));
            break;
        case OPT_PATH:
            bad = optarg[0] != '/' || copy_str(o->path, sizeof(o->path), optarg, strlen(optarg));
            break;
        case OPT_CA:
            o->ca = optarg;
            break;
        case OPT_CERT:
            o->cert = optarg;
            break;
        case OPT_KEY:
            o->key = optarg;
            break;
        case OPT_CONN:
            bad = parse_long(optarg, 1, MAX_CONNECTIONS, &o->connections);
            break;
        case OPT_THREADS:
            bad = parse_long(optarg, 1, MAX_THREADS, &o->threads);
            break;
        case OPT_DURATION:
            bad = parse_seconds(optarg, 0.1, 86400, &o->duration);
            break;
        case OPT_WARMUP:
            bad = parse_seconds(optarg, 0, 3600, &o->warmup);
            break;
        case OPT_METHOD:
            o->method = optarg;
            bad = !valid_method(optarg);
            break;
        case OPT_BODY:
            bad = set_body(o, optarg);
            break;
        case OPT_HEADER:
            bad = add_header(o, optarg);
            break;
        case OPT_TLS12:
            o->tls12 = true;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_HELP:
            usage(stdout);
            return -1;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "mtls-load: bad value for --%s: %s\n", long_opts[ch - OPT_URL].name,
                    optarg);
            return 2;
        }
    }
    const char *missing = optind < argc                 ? "no positional arguments expected"
                          : !o->host[0]                 ? "--url or --host is required"
                          : !o->ca                      ? "--ca is required"
                          : !o->cert != !o->key         ? "--cert and --key go together"
                          : o->threads > o->connections ? "more threads than connections"
                                                        : NULL;
    if (missing) {
        fprintf(stderr, "mtls-load: %s\n", missing);
        usage(stderr);
        return 2;
    }
    return 0;
}

static int build_request(shared *sh)
{
    const options *o = sh->opt;
    bool has_ct = false;
    for (size_t i = 0; i < o->nheaders; i++) {
        has_ct |= strncasecmp(o->headers[i], "Content-Type:", 13) == 0;
    }
    bool bracket = strchr(o->host, ':') != NULL;
    bool default_port = strcmp(o->port, "443") == 0;
    bool send_len = o->body || strcmp(o->method, "POST") == 0 || strcmp(o->method, "PUT") == 0 ||
                    strcmp(o->method, "PATCH") == 0;
    sh->request = malloc(MAX_REQUEST);
    if (!sh->request) {
        return -1;
    }
    int n = snprintf(sh->request, MAX_REQUEST, "%s %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\n", o->method,
                     o->path, bracket ? "[" : "", o->host, bracket ? "]" : "",
                     default_port ? "" : ":", default_port ? "" : o->port);
    size_t len = n > 0 ? (size_t)n : MAX_REQUEST;
    for (size_t i = 0; i < o->nheaders && len < MAX_REQUEST; i++) {
        n = snprintf(sh->request + len, MAX_REQUEST - len, "%s\r\n", o->headers[i]);
        len += n > 0 ? (size_t)n : MAX_REQUEST;
    }
    if (len < MAX_REQUEST && o->body && !has_ct) {
        n = snprintf(sh->request + len, MAX_REQUEST - len, "Content-Type: application/json\r\n");
        len += n > 0 ? (size_t)n : MAX_REQUEST;
    }
    if (len < MAX_REQUEST && send_len) {
        n = snprintf(sh->request + len, MAX_REQUEST - len, "Content-Length: %zu\r\n", o->body_len);
        len += n > 0 ? (size_t)n : MAX_REQUEST;
    }
    if (len + 2 + o->body_len > MAX_REQUEST) {
        fprintf(stderr, "mtls-load: request too large\n");
        return -1;
    }
    memcpy(sh->request + len, "\r\n", 2);
    len += 2;
    if (o->body_len) {
        memcpy(sh->request + len, o->body, o->body_len);
        len += o->body_len;
    }
    sh->request_len = len;
    sh->head_request = strcmp(o->method, "HEAD") == 0;
    return 0;
}

static void print_ssl_errors(const char *what)
{
    char buf[256];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, buf, sizeof(buf));
    fprintf(stderr, "mtls-load: %s: %s\n", what, e ? buf : "unknown error");
    ERR_clear_error();
}

static int make_ctx(shared *sh)
{
    const options *o = sh->opt;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        print_ssl_errors("SSL_CTX_new");
        return -1;
    }
    sh->ctx = ctx; /* freed by the caller */
    int v = o->tls12 ? TLS1_2_VERSION : TLS1_3_VERSION;
    if (SSL_CTX_set_min_proto_version(ctx, v) != 1 || SSL_CTX_set_max_proto_version(ctx, v) != 1) {
        print_ssl_errors("setting the TLS version");
        return -1;
    }
    if (SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1) {
        print_ssl_errors(o->ca);
        return -1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (o->cert && (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1 ||
                    SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1 ||
                    SSL_CTX_check_private_key(ctx) != 1)) {
        print_ssl_errors("loading the client certificate and key");
        return -1;
    }
    /* Keep-alive connections are long-lived: session tickets would only be stored. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return 0;
}

static int resolve(shared *sh)
{
    const options *o = sh->opt;
    struct in6_addr a6;
    sh->host_is_ip =
        inet_pton(AF_INET, o->host, &a6) == 1 || inet_pton(AF_INET6, o->host, &a6) == 1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int e = getaddrinfo(o->host, o->port, &hints, &ai);
    if (e != 0 || !ai) {
        fprintf(stderr, "mtls-load: %s:%s: %s\n", o->host, o->port, gai_strerror(e));
        return -1;
    }
    memcpy(&sh->addr, ai->ai_addr, ai->ai_addrlen);
    sh->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

typedef struct results {
    hist h;
    uint64_t requests, errors, non2xx;
    double cpu_pct; /* this process's CPU time in the measured window, % of --threads cores */
} results;

static void print_results(const options *o, const results *res)
{
    const hist *h = &res->h;
    double rps = (double)res->requests / o->duration;
    uint64_t p50 = hist_percentile(h, 50), p90 = hist_percentile(h, 90);
    uint64_t p99 = hist_percentile(h, 99);
    if (o->json) {
        printf("{\"requests\":%" PRIu64 ",\"seconds\":%.3f,\"rps\":%.1f,\"p50_us\":%" PRIu64
               ",\"p90_us\":%" PRIu64 ",\"p99_us\":%" PRIu64 ",\"max_us\":%" PRIu64
               ",\"errors\":%" PRIu64 ",\"non2xx\":%" PRIu64 ",\"connections\":%ld"
               ",\"threads\":%ld,\"client_cpu_pct\":%.0f}\n",
               res->requests, o->duration, rps, p50, p90, p99, h->max_us, res->errors, res->non2xx,
               o->connections, o->threads, res->cpu_pct);
    } else {
        printf("%" PRIu64 " requests in %.2f s: %.1f req/s, latency p50 %" PRIu64
               " us, p90 %" PRIu64 " us, p99 %" PRIu64 " us, max %" PRIu64 " us; %" PRIu64
               " errors, %" PRIu64 " non-2xx (%ld connections, %ld threads, client CPU %.0f%%)\n",
               res->requests, o->duration, rps, p50, p90, p99, h->max_us, res->errors, res->non2xx,
               o->connections, o->threads, res->cpu_pct);
    }
}

/* Sleeps until the measured window opens (CLOCK_MONOTONIC ns). */
/* Starts the workers, waits for them, merges and prints. Returns the exit status. */
static int run(shared *sh)
{
    const options *o = sh->opt;
    int r = 1;
    long started = 0;
    double cpu0 = 0;
    worker *ws = calloc((size_t)o->threads, sizeof(*ws));
    conn *cs = calloc((size_t)o->connections, sizeof(*cs));
    results *res = calloc(1, sizeof(*res));
    if (!ws || !cs || !res) {
        fprintf(stderr, "mtls-load: out of memory\n");
        goto out;
    }
    uint64_t t0 = now_ns();
    sh->t_measure = t0 + (uint64_t)(o->warmup * 1e9);
    sh->t_end = sh->t_measure + (uint64_t)(o->duration * 1e9);
    size_t next = 0;
    for (long i = 0; i < o->threads; i++) {
        worker *w = &ws[i];
        /* Spread the remainder so shares differ by at most one connection. */
        w->nconns = (size_t)(o->connections / o->threads + (i < o->connections % o->threads));
        w->conns = cs + next;
        next += w->nconns;
        w->sh = sh;
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (w->epfd < 0 || pthread_create(&w->tid, NULL, worker_run, w) != 0) {
            fprintf(stderr, "mtls-load: starting thread %ld: %s\n", i, strerror(errno));
            if (w->epfd >= 0) {
                close(w->epfd);
            }
            goto out;
        }
        started++;
    }
    /* The client's own CPU use tells whether it, rather than the server, was the limit. */
    sleep_until(sh->t_measure);
    cpu0 = cpu_seconds();
    r = 0;
out:
    for (long i = 0; i < started; i++) {
        pthread_join(ws[i].tid, NULL);
        close(ws[i].epfd);
        hist_merge(&res->h, &ws[i].h);
        res->requests += ws[i].requests;
        res->errors += ws[i].errors;
        res->non2xx += ws[i].non2xx;
        r |= ws[i].failed;
    }
    if (r == 0) {
        res->cpu_pct = 100 * (cpu_seconds() - cpu0) / o->duration / (double)o->threads;
        print_results(o, res);
        r = res->requests > 0 ? 0 : 1;
    }
    free(res);
    free(cs);
    free(ws);
    return r;
}

int main(int argc, char **argv)
{
    options o = {.port = "443",
                 .path = "/",
                 .method = "GET",
                 .connections = 16,
                 .threads = 1,
                 .duration = 10,
                 .warmup = 1};
    shared sh = {.opt = &o};
    int r = parse_args(argc, argv, &o);
    if (r != 0) {
        r = r < 0 ? 0 : r;
        goto out;
    }
    r = 1;
    if (resolve(&sh) != 0 || build_request(&sh) != 0 || make_ctx(&sh) != 0) {
        goto out;
    }
    r = run(&sh);
out:
    SSL_CTX_free(sh.ctx);
    free(sh.request);
    free(o.body);
    return r;
}
