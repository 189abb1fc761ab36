/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTPS front. Each worker thread owns an event base, an evhttp, its own listening
 * socket and a store connection; the sockets share the port through SO_REUSEPORT, so
 * the kernel spreads connections over the workers and no two threads ever touch the
 * same libevent object (libevent runs without its locks). The TLS context is built
 * once and shared: OpenSSL locks what it shares (session cache) itself.
 *
 * A request is handled synchronously in its worker: the body (bounded) is handed with
 * the client certificate's fingerprint to api_handle(), and the response goes back
 * with the body passed by reference, not copied.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "api.h"
#include "metrics.h"
#include "pavise/fs.h"
#include "pavise/log.h"

#define LISTEN_BACKLOG   1024
#define MAX_HEADERS_SIZE (16 * 1024)
#define TIMEOUT_SECONDS  30
/* Bodies up to max_body + this are read and answered with a JSON 413; libevent answers
 * larger ones itself (a 413 too, but with its own HTML body), so this bounds what one
 * connection can make us buffer. */
#define BODY_SLACK (256 * 1024)
/* Shutdown: once no request has arrived for QUIET_MS (or after DRAIN_MS in any case),
 * a worker's loop ends and its remaining idle connections are closed. */
#define QUIET_MS 150
#define DRAIN_MS 5000
#define POLL_MS  25
/* The most plaintext one TLS record carries. */
#define TLS_RECORD_MAX 16384

/* TLS 1.2 suites: forward secrecy and AEAD only; the server key is ECDSA P-256. */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305"
#define TLS_GROUPS         "X25519:P-256:P-384"
#define SESSION_ID_CONTEXT "pavise-server"

typedef struct worker {
    int index;
    server *srv;
    SSL_CTX *ssl_ctx; /* shared */
    const EVP_MD *sha256;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    int listen_fd; /* owned by bound once bound is set */
    int stop_fd;   /* eventfd: the main thread writes to it to stop the worker */
    struct event *stop_ev;
    struct event *drain_ev;
    store *db;
    pthread_t thread;
    bool started;
    bool stopping;
    int64_t stop_ms;
    int64_t last_request_ms;
    atomic_bool exited;
} worker;

/* What the worker learns about a connection once: stored on the SSL object. */
typedef struct conn_info {
    bool has_client_cert;
    uint8_t client_fp[PV_SHA256_LEN];
} conn_info;

static int conn_info_index = -1;

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- TLS ---- */

static void conn_info_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                           void *argp)
{
    free(ptr);
}

static int tls_context(const server *srv, SSL_CTX **out, pv_err *e)
{
    *out = NULL;
    int r = PV_ERR_INTERNAL;
    STACK_OF(X509_NAME) *names = NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        return pv_err_ssl(e, PV_ERR_CRYPTO, "creating the TLS context");
    }
    X509 *ca = pv_cert_x509(ca_cert(srv->ca));
    long opts = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE;
    SSL_CTX_set_options(ctx, (uint64_t)opts);
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
        SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "configuring TLS versions and ciphers");
        goto out;
    }
    /* The chain sent is ours and the CA (`pavise login --fingerprint` checks the CA it
     * is shown), set once: left to itself, OpenSSL would build it from the verify store,
     * verifying the server certificate again, on every handshake. */
    if (SSL_CTX_use_certificate(ctx, pv_cert_x509(ca_server_cert(srv->ca))) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, pv_key_evp(ca_server_key(srv->ca))) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1 || SSL_CTX_add1_chain_cert(ctx, ca) != 1) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "loading the server certificate and key");
        goto out;
    }
    /* Client certificates: asked for, checked against the server CA alone when sent, but
     * not required, so /healthz and /v1/enroll work without one. A certificate that does
     * not verify fails the handshake. */
    names = sk_X509_NAME_new_null();
    X509_NAME *ca_name = X509_NAME_dup(X509_get_subject_name(ca));
    if (names == NULL || ca_name == NULL || sk_X509_NAME_push(names, ca_name) <= 0) {
        X509_NAME_free(ca_name);
        r = pv_err_ssl(e, PV_ERR_NOMEM, "building the client CA list");
        goto out;
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    names = NULL;
    if (X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca) != 1) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "adding the CA to the verify store");
        goto out;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_verify_depth(ctx, 1); /* leaf issued directly by the CA */
    /* Resumed sessions keep the verified client certificate; the context ID ties them
     * to this server's verification settings. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    if (SSL_CTX_set_session_id_context(ctx, (const unsigned char *)SESSION_ID_CONTEXT,
                                       sizeof(SESSION_ID_CONTEXT) - 1) != 1) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "setting the session ID context");
        goto out;
    }
    *out = ctx;
    ctx = NULL;
    r = PV_OK;
out:
    sk_X509_NAME_pop_free(names, X509_NAME_free);
    SSL_CTX_free(ctx);
    return r;
}

/* evhttp calls this for each accepted connection. Returning NULL would make evhttp
 * fall back to a plain-text bufferevent, so a failure still returns an SSL-less
 * bufferevent that on_request refuses (fail closed) -- see there. */
static struct bufferevent *make_bufferevent(struct event_base *base, void *arg)
{
    worker *w = arg;
    SSL *ssl = SSL_new(w->ssl_ctx);
    if (ssl == NULL) {
        ERR_clear_error();
        pv_error("worker %d: SSL_new failed (out of memory?); the connection will be refused",
                 w->index);
        return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
        pv_error("worker %d: cannot create a TLS bufferevent; the connection will be refused",
                 w->index);
        return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    /* Clients that close without close_notify are common and harmless for HTTP with
     * Content-Length. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* The verified client certificate of this connection, computed at its first request
 * and kept on the SSL object. NULL on out of memory. */
static const conn_info *connection_info(worker *w, SSL *ssl, struct bufferevent *bev)
{
    conn_info *ci = SSL_get_ex_data(ssl, conn_info_index);
    if (ci != NULL) {
        return ci;
    }
    ci = calloc(1, sizeof(*ci));
    if (ci == NULL) {
        return NULL;
    }
    X509 *peer = SSL_get0_peer_certificate(ssl);
    unsigned n = 0;
    if (peer != NULL && SSL_get_verify_result(ssl) == X509_V_OK &&
        X509_digest(peer, w->sha256, ci->client_fp, &n) == 1 && n == PV_SHA256_LEN) {
        ci->has_client_cert = true;
    }
    if (SSL_set_ex_data(ssl, conn_info_index, ci) != 1) {
        free(ci);
        return NULL;
    }
    /* A response may leave in more than one write (headers, then the body by
     * reference); with Nagle's algorithm a later one would wait for the client's
     * delayed ACK. Linux copies the listener's setting; this makes it certain. */
    int one = 1;
    (void)setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return ci;
}

/* ---- requests ---- */

static const char *method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    default:
        return "OTHER";
    }
}

static bool api_method(enum evhttp_cmd_type t)
{
    return t == EVHTTP_REQ_GET || t == EVHTTP_REQ_POST || t == EVHTTP_REQ_PATCH ||
           t == EVHTTP_REQ_DELETE;
}

/* An error answered here, before the API: {"error":{"code","message"}}. */
static void error_response(api_response *resp, int status, const char *code, const char *message)
{
    char text[512];
    int n = snprintf(text, sizeof(text), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code,
                     message);
    resp->status = status;
    resp->content_type = "application/json";
    resp->route = "unmatched";
    resp->body = n > 0 ? strndup(text, sizeof(text) - 1) : NULL;
    resp->body_len = resp->body != NULL ? strlen(resp->body) : 0;
}

static void peer_text(struct evhttp_connection *evcon, char *out, size_t size)
{
    char *addr = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(evcon, &addr, &port);
    if (addr == NULL) {
        snprintf(out, size, "?");
    } else if (strchr(addr, ':') != NULL) {
        snprintf(out, size, "[%s]:%u", addr, (unsigned)port);
    } else {
        snprintf(out, size, "%s:%u", addr, (unsigned)port);
    }
}

static void free_body(const void *data, size_t len, void *extra)
{
    free((void *)data);
}

static void send_response(worker *w, struct evhttp_request *req, api_response *resp)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type",
                      resp->content_type != NULL ? resp->content_type : "application/json");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    if (w->stopping) {
        evhttp_add_header(h, "Connection", "close");
    }
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    if (resp->body != NULL && resp->body_len > 0) {
        /* By reference: the evbuffer frees the body once it is written. */
        if (evbuffer_add_reference(out, resp->body, resp->body_len, free_body, NULL) != 0) {
            free(resp->body);
            resp->status = 500;
        }
    } else {
        free(resp->body);
    }
    resp->body = NULL;
    if (resp->status < 100 || resp->status > 599) {
        resp->status = 500; /* never send a status line HTTP cannot carry */
    }
    /* Content-Length (from the output buffer) and Date are added by evhttp. The
     * bufferevent is held across the send: evhttp may finish a response (and free a
     * connection that closes) as soon as it is written. */
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (bev != NULL) {
        bufferevent_incref(bev);
    }
    evhttp_send_reply(req, resp->status, NULL, NULL);
    if (bev == NULL) {
        return;
    }
    /* evhttp queued the headers and the body as separate buffer chains, and the TLS
     * bufferevent writes each chain as its own record with its own write(2): two
     * records, two system calls and two wake-ups of the client per response. A
     * response that fits one record is made contiguous here, before the event loop
     * writes it, so it leaves in one. */
    struct evbuffer *pending = bufferevent_get_output(bev);
    if (pending != NULL && evbuffer_get_length(pending) <= TLS_RECORD_MAX) {
        (void)evbuffer_pullup(pending, -1); /* on failure it stays as it was: still correct */
    }
    bufferevent_decref(bev);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    worker *w = arg;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    w->last_request_ms = (int64_t)t0.tv_sec * 1000 + t0.tv_nsec / 1000000;

    api_request ar;
    api_response resp;
    memset(&ar, 0, sizeof(ar));
    memset(&resp, 0, sizeof(resp));
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    ar.method = method_name(cmd);

    const conn_info *ci = ssl != NULL ? connection_info(w, ssl, bev) : NULL;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (ci == NULL) {
        /* Not TLS (make_bufferevent failed) or out of memory: never serve it. */
        error_response(&resp, 500, "internal", "the server could not set up this connection");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    } else if (!api_method(cmd)) {
        error_response(&resp, 405, "method_not_allowed",
                       "the API accepts GET, POST, PATCH and DELETE");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                          "GET, POST, PATCH, DELETE");
    } else if (len > w->srv->cfg.max_body) {
        char msg[96];
        snprintf(msg, sizeof(msg), "the request body is larger than %zu bytes",
                 w->srv->cfg.max_body);
        error_response(&resp, 413, "payload_too_large", msg);
    } else {
        const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
        const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
        ar.path = path != NULL && path[0] != '\0' ? path : "/";
        ar.query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
        ar.body = len > 0 ? evbuffer_pullup(in, -1) : NULL;
        ar.body_len = len;
        ar.content_type = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
        ar.has_client_cert = ci->has_client_cert;
        memcpy(ar.client_fp, ci->client_fp, sizeof(ar.client_fp));
        if (len > 0 && ar.body == NULL) {
            error_response(&resp, 500, "internal", "out of memory");
        } else {
            api_handle(w->srv, w->db, &ar, &resp);
        }
    }
    const char *route = resp.route != NULL ? resp.route : "unmatched";
    char peer[INET6_ADDRSTRLEN + 16];
    bool log_it = pv_log_enabled(PV_LOG_INFO);
    if (log_it) {
        peer_text(evcon, peer, sizeof(peer));
    }
    send_response(w, req, &resp);
    int status = resp.status; /* as sent */

    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    metrics_observe(w->srv->metrics, ar.method, route, status, seconds);
    if (!log_it) {
        return;
    }
    /* The route pattern, never the path or query (they hold IDs and values). */
    pv_info("request method=%s route=%s status=%d duration_ms=%.3f operator=%s peer=%s", ar.method,
            route, status, seconds * 1e3, resp.operator_name[0] != '\0' ? resp.operator_name : "-",
            peer);
}

/* ---- shutdown ---- */

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    worker *w = arg;
    int64_t now = monotonic_ms();
    if (now - w->last_request_ms >= QUIET_MS || now - w->stop_ms >= DRAIN_MS) {
        event_base_loopexit(w->base, NULL);
    }
}

/* In the worker: stop accepting; answer what still arrives on open connections with
 * "Connection: close"; leave once they have gone quiet. */
static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    worker *w = arg;
    uint64_t v;
    ssize_t unused = read(w->stop_fd, &v, sizeof(v));
    (void)unused;
    if (w->stopping) {
        return;
    }
    w->stopping = true;
    w->stop_ms = monotonic_ms();
    if (w->bound != NULL) {
        evhttp_del_accept_socket(w->http, w->bound); /* closes the listening socket */
        w->bound = NULL;
        w->listen_fd = -1;
    }
    struct timeval tv = {0, POLL_MS * 1000};
    w->drain_ev = event_new(w->base, -1, EV_PERSIST, on_drain, w);
    if (w->drain_ev == NULL || event_add(w->drain_ev, &tv) != 0) {
        event_base_loopexit(w->base, NULL);
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "pv-http-%d", w->index);
    pthread_setname_np(pthread_self(), name);
    if (event_base_dispatch(w->base) < 0) {
        pv_error("worker %d: event loop failed", w->index);
    }
    atomic_store(&w->exited, true);
    return NULL;
}

/* ---- listening ---- */

typedef struct listen_addr {
    struct sockaddr_storage ss;
    socklen_t len;
} listen_addr;

static int parse_port(const char *s, uint16_t *port)
{
    unsigned long v = 0;
    if (*s == '\0' || strlen(s) > 5) {
        return PV_ERR_FORMAT;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return PV_ERR_FORMAT;
        }
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v > 65535) {
        return PV_ERR_FORMAT;
    }
    *port = (uint16_t)v;
    return PV_OK;
}

/* HOST:PORT or [IPV6]:PORT; HOST may be a name (the first address it resolves to). */
static int parse_listen(const char *text, listen_addr *out, pv_err *e)
{
    char host[256];
    const char *port_text;
    memset(out, 0, sizeof(*out));
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(host)) {
            return pv_err_set(e, PV_ERR_USAGE, "listen address '%s': expected [IPV6]:PORT", text);
        }
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        port_text = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL || colon == text || (size_t)(colon - text) >= sizeof(host) ||
            memchr(text, ':', (size_t)(colon - text)) != NULL) {
            return pv_err_set(e, PV_ERR_USAGE,
                              "listen address '%s': expected HOST:PORT or [IPV6]:PORT", text);
        }
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        port_text = colon + 1;
    }
    uint16_t port = 0;
    if (parse_port(port_text, &port) != PV_OK) {
        return pv_err_set(e, PV_ERR_USAGE, "listen address '%s': port must be 0 to 65535", text);
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int g = getaddrinfo(host, NULL, &hints, &ai);
    if (g != 0 || ai == NULL) {
        return pv_err_set(e, PV_ERR_USAGE, "listen address '%s': cannot resolve '%s': %s", text,
                          host, gai_strerror(g));
    }
    memcpy(&out->ss, ai->ai_addr, ai->ai_addrlen);
    out->len = (socklen_t)ai->ai_addrlen;
    freeaddrinfo(ai);
    if (out->ss.ss_family == AF_INET) {
        ((struct sockaddr_in *)&out->ss)->sin_port = htons(port);
    } else if (out->ss.ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)&out->ss)->sin6_port = htons(port);
    } else {
        return pv_err_set(e, PV_ERR_USAGE, "listen address '%s': not an IP address", text);
    }
    return PV_OK;
}

static uint16_t addr_port(const listen_addr *a)
{
    return a->ss.ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)&a->ss)->sin_port)
                                      : ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

static void addr_text(const listen_addr *a, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (a->ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->ss)->sin_addr, host, sizeof(host));
        snprintf(out, size, "%s:%u", host, (unsigned)addr_port(a));
    } else {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&a->ss)->sin6_addr, host, sizeof(host));
        snprintf(out, size, "[%s]:%u", host, (unsigned)addr_port(a));
    }
}

/* One listening socket; every worker has its own on the same port (SO_REUSEPORT), and
 * the kernel balances new connections between them. */
static int open_listener(listen_addr *a, bool first, int *fd_out, pv_err *e)
{
    char text[INET6_ADDRSTRLEN + 16];
    addr_text(a, text, sizeof(text));
    int one = 1;
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "socket for %s", text);
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        int err = errno;
        close(fd);
        return pv_err_sys(e, PV_ERR_IO, err, "socket options for %s", text);
    }
    if (bind(fd, (struct sockaddr *)&a->ss, a->len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        int err = errno;
        close(fd);
        return pv_err_sys(e, PV_ERR_IO, err, "listening on %s", text);
    }
    if (first && addr_port(a) == 0) {
        /* Port 0: the kernel chose one; the other workers bind the same. */
        socklen_t len = sizeof(a->ss);
        if (getsockname(fd, (struct sockaddr *)&a->ss, &len) != 0) {
            int err = errno;
            close(fd);
            return pv_err_sys(e, PV_ERR_IO, err, "reading the bound port of %s", text);
        }
        a->len = len;
    }
    *fd_out = fd;
    return PV_OK;
}

/* ---- workers ---- */

static int worker_setup(worker *w, listen_addr *addr, pv_err *e)
{
    const server_config *cfg = &w->srv->cfg;
    int r = open_listener(addr, w->index == 0, &w->listen_fd, e);
    if (r != PV_OK) {
        return r;
    }
    r = store_open(cfg->db_url, &w->db, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "worker %d: opening the database", w->index);
    }
    /* No locks: nothing crosses threads but the eventfd. The changelist folds evhttp's
     * disable-read/enable-read around each request into no epoll_ctl at all. */
    struct event_config *ec = event_config_new();
    if (ec != NULL) {
        event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        w->base = event_base_new_with_config(ec);
        event_config_free(ec);
    }
    w->http = w->base != NULL ? evhttp_new(w->base) : NULL;
    if (w->http == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "worker %d: creating the event loop", w->index);
    }
    evhttp_set_bevcb(w->http, make_bufferevent, w);
    evhttp_set_gencb(w->http, on_request, w);
    size_t limit =
        cfg->max_body > SIZE_MAX / 2 - BODY_SLACK ? SIZE_MAX / 2 : cfg->max_body + BODY_SLACK;
    evhttp_set_max_body_size(w->http, (ev_ssize_t)limit);
    evhttp_set_max_headers_size(w->http, MAX_HEADERS_SIZE);
    evhttp_set_timeout(w->http, TIMEOUT_SECONDS);
    /* PUT, HEAD and OPTIONS are let through to be answered with a JSON 405; evhttp would
     * answer other methods with an HTML 501. */
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PATCH |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_PUT | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_OPTIONS);
    /* An oversized body is drained before the 413, so the client reads the answer
     * instead of a reset. */
    evhttp_set_flags(w->http, EVHTTP_SERVER_LINGERING_CLOSE);

    /* backlog 0: the socket is already listening. */
    struct evconnlistener *l =
        evconnlistener_new(w->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE, 0, w->listen_fd);
    if (l == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "worker %d: creating the listener", w->index);
    }
    w->listen_fd = -1; /* the listener owns it now */
    w->bound = evhttp_bind_listener(w->http, l);
    if (w->bound == NULL) {
        evconnlistener_free(l); /* closes the socket */
        return pv_err_set(e, PV_ERR_NOMEM, "worker %d: binding the listener", w->index);
    }
    w->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->stop_fd < 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "worker %d: eventfd", w->index);
    }
    w->stop_ev = event_new(w->base, w->stop_fd, EV_READ | EV_PERSIST, on_stop, w);
    if (w->stop_ev == NULL || event_add(w->stop_ev, NULL) != 0) {
        return pv_err_set(e, PV_ERR_NOMEM, "worker %d: creating the stop event", w->index);
    }
    return PV_OK;
}

static void worker_stop(worker *w)
{
    uint64_t one = 1;
    if (w->stop_fd >= 0) {
        ssize_t unused = write(w->stop_fd, &one, sizeof(one));
        (void)unused;
    }
}

static void worker_cleanup(worker *w)
{
    if (w->drain_ev != NULL) {
        event_free(w->drain_ev);
    }
    if (w->stop_ev != NULL) {
        event_free(w->stop_ev);
    }
    if (w->http != NULL) {
        evhttp_free(w->http); /* its connections and bound socket with it */
    }
    if (w->listen_fd >= 0) {
        close(w->listen_fd);
    }
    if (w->base != NULL) {
        event_base_free(w->base);
    }
    if (w->stop_fd >= 0) {
        close(w->stop_fd);
    }
    store_close(w->db);
}

static int write_ready_file(const char *path, const listen_addr *a, pv_err *e)
{
    char text[INET6_ADDRSTRLEN + 16];
    addr_text(a, text, sizeof(text));
    size_t n = strlen(text);
    text[n++] = '\n';
    int r = pv_fs_write_file(path, text, n, 0644, true, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "writing the ready file");
    }
    return r;
}

/* Waits for SIGINT or SIGTERM (blocked in every thread, so only this wait sees them), or
 * for a worker whose loop ended on its own. */
static int wait_for_stop(worker *workers, int n, const sigset_t *set)
{
    for (;;) {
        struct timespec tick = {1, 0};
        int sig = sigtimedwait(set, NULL, &tick);
        if (sig == SIGINT || sig == SIGTERM) {
            return sig;
        }
        for (int i = 0; i < n; i++) {
            if (atomic_load(&workers[i].exited)) {
                return 0;
            }
        }
    }
}

int http_serve(server *srv, const char *ready_file, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    int n = srv->cfg.workers;
    worker *workers = NULL;
    SSL_CTX *ctx = NULL;
    EVP_MD *sha256 = NULL;
    listen_addr addr;
    sigset_t set, old;
    bool masked = false;
    char text[INET6_ADDRSTRLEN + 16];

    if (n < 1 || n > SERVER_MAX_WORKERS) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "workers must be 1 to %d", SERVER_MAX_WORKERS);
    }
    if (srv->cfg.max_body == 0) {
        srv->cfg.max_body = SERVER_MAX_BODY;
    }
    r = parse_listen(srv->cfg.listen, &addr, e);
    if (r != PV_OK) {
        return r;
    }
    if (conn_info_index < 0) {
        conn_info_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_info_free);
    }
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL); /* fetched once, not per request */
    if (conn_info_index < 0 || sha256 == NULL) {
        return pv_err_ssl(e, PV_ERR_CRYPTO, "initialising OpenSSL");
    }
    r = tls_context(srv, &ctx, e);
    if (r != PV_OK) {
        goto out;
    }
    workers = calloc((size_t)n, sizeof(*workers));
    if (workers == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        workers[i] = (worker){.index = i,
                              .srv = srv,
                              .ssl_ctx = ctx,
                              .sha256 = sha256,
                              .listen_fd = -1,
                              .stop_fd = -1};
    }
    for (int i = 0; i < n; i++) {
        r = worker_setup(&workers[i], &addr, e);
        if (r != PV_OK) {
            goto out;
        }
    }

    /* The signals are taken by sigtimedwait here, never by a handler in a worker. A
     * peer closing a TLS connection must not kill the process with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    masked = true;
    for (int i = 0; i < n; i++) {
        int err = pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
        if (err != 0) {
            r = pv_err_sys(e, PV_ERR_IO, err, "starting worker %d", i);
            goto out;
        }
        workers[i].started = true;
    }
    addr_text(&addr, text, sizeof(text));
    pv_info("listening on https://%s with %d workers (database: %s)", text, n,
            store_backend_name(workers[0].db));
    if (ready_file != NULL) {
        r = write_ready_file(ready_file, &addr, e);
        if (r != PV_OK) {
            goto out;
        }
    }
    int sig = wait_for_stop(workers, n, &set);
    if (sig != 0) {
        pv_info("%s received: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
        r = PV_OK;
    } else {
        r = pv_err_set(e, PV_ERR_INTERNAL, "a worker's event loop ended unexpectedly");
    }
out:
    for (int i = 0; workers != NULL && i < n; i++) {
        if (workers[i].started) {
            worker_stop(&workers[i]);
        }
    }
    for (int i = 0; workers != NULL && i < n; i++) {
        if (workers[i].started) {
            pthread_join(workers[i].thread, NULL);
        }
        worker_cleanup(&workers[i]);
    }
    if (ready_file != NULL && r == PV_OK) {
        unlink(ready_file);
    }
    if (masked) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    free(workers);
    SSL_CTX_free(ctx);
    EVP_MD_free(sha256);
    if (r == PV_OK) {
        pv_info("stopped");
    }
    return r;
}
