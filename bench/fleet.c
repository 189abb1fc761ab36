/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavise-fleet: a fleet of simulated devices with software keys that attest against
 * pavise-server as fast as it lets them (docs/protocol/attestation.md), for the
 * attestation benchmark (bench/attest.sh).
 *
 *   pavise-fleet prepare --count N --factory-key K --factory-cert C --trust-anchor ROOT
 *                        --os-image PKG --out DIR
 *       makes N devices: DIR/records/<device-id>.cbor (manufacturing records signed by the
 *       factory, for the service to import and a tenant to claim) and DIR/devices/<i>/
 *       (the attestation key, the TLS key and its CSR).
 *   pavise-fleet run --server URL --ca FILE --fleet DIR --os-image PKG
 *                    [--concurrency C] [--threads T] [--duration S] [--warmup S] [--json]
 *       C devices attest at once, each in a closed loop: connect, a full TLS handshake
 *       (no resumption, the server certificate verified against --ca and the host),
 *       POST /v1/attestation/challenge, evidence signed over the nonce and the binding
 *       to its TLS key, POST /v1/attestation, the response checked ("passed" with a
 *       client certificate), close. Device i of session k is k, k + C, k + 2C, ... mod N,
 *       so no device has two attestations in flight.
 *
 * What a device does per attestation is what a real one does, with two shortcuts that
 * only spare the generator's CPU, not the server's: the TLS key and CSR are made once
 * in `prepare` (a device makes a new one each time; the server's work is the same), and
 * the event log is the one a pavise-boot boot of the given OS image produces.
 *
 * The output is one line (or JSON): attestations per second in the measured window,
 * p50/p99/max latency of a whole attestation (connect to certificates), failures by
 * kind, and the generator's CPU use.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "pavise/buf.h"
#include "pavise/cbor.h"
#include "pavise/crypto.h"
#include "pavise/devstate.h"
#include "pavise/evidence.h"
#include "pavise/fs.h"
#include "pavise/imgpkg.h"
#include "pavise/mfgrec.h"
#include "pavise/platform.h"
#include "pavise/rot.h"
#include "pavise/x509.h"

#include "clock.h"
#include "hist.h"

#define MAX_DEVICES  100000
#define MAX_SESSIONS 10000
#define MAX_THREADS  64
#define IN_CAP       (64 * 1024 + 4096) /* a response: the service's 64 KiB and its head */
#define HEAD_MAX     8192
#define RETRY_NS     (10 * 1000 * 1000)

static void die(const char *what, const pv_err *e)
{
    fprintf(stderr, "pavise-fleet: %s%s%s\n", what, e ? ": " : "", e ? pv_err_msg(e) : "");
    exit(1);
}

/* ---- the boot every device reports: pavise-boot's two events for the OS image ---- */

typedef struct boot_claims {
    pv_rot_event events[2];
    uint8_t measurement[PV_SHA256_LEN];
    pv_evidence_image image;
    char os_desc[256];
    char conf[512];
} boot_claims;

/* The same events as pavise-boot's measure() for slot "a" (src/boot/boot.c). */
static void boot_claims_load(const char *pkg_path, boot_claims *b)
{
    pv_err e = {0};
    pv_imgpkg *pkg = NULL;
    memset(b, 0, sizeof(*b));
    if (pv_imgpkg_open(pkg_path, &pkg, &e) != PV_OK) {
        die("reading the OS image package", &e);
    }
    const pv_manifest *m = pv_imgpkg_manifest(pkg);
    uint8_t digest[PV_SHA256_LEN];
    if (pv_imgpkg_manifest_digest(pkg, digest) != PV_OK) {
        die("hashing the OS image manifest", NULL);
    }
    char image_id[PV_UUID_STR_LEN];
    pv_uuid_format(m->image_id, image_id);
    snprintf(b->os_desc, sizeof(b->os_desc), "%s %s", m->name, m->version);
    snprintf(b->conf, sizeof(b->conf),
             "slot=a image-id=%s version=%s security-counter=%llu entry=%s", image_id, m->version,
             (unsigned long long)m->security_counter, m->entry_point);
    snprintf(b->events[0].type, sizeof(b->events[0].type), "os-image");
    memcpy(b->events[0].digest, digest, sizeof(digest));
    b->events[0].data = (uint8_t *)b->os_desc;
    b->events[0].data_len = strlen(b->os_desc);
    snprintf(b->events[1].type, sizeof(b->events[1].type), "boot-config");
    (void)pv_sha256_digest(b->conf, strlen(b->conf), b->events[1].digest);
    b->events[1].data = (uint8_t *)b->conf;
    b->events[1].data_len = strlen(b->conf);
    pv_rot_replay(b->events, 2, b->measurement);
    b->image.kind = PV_EVIDENCE_IMAGE_OS;
    memcpy(b->image.image_id, m->image_id, PV_UUID_LEN);
    memcpy(b->image.component_id, m->component_id, PV_UUID_LEN);
    snprintf(b->image.version, sizeof(b->image.version), "%s", m->version);
    memcpy(b->image.manifest_digest, digest, sizeof(digest));
    pv_imgpkg_free(pkg);
}

/* ---- prepare ---- */

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p == NULL) {
        die("out of memory", NULL);
    }
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static void mkdir_or_die(const char *p)
{
    if (mkdir(p, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "pavise-fleet: cannot create %s: %s\n", p, strerror(errno));
        exit(1);
    }
}

/* The CSR in DER: the protocol sends DER, pv_csr_create writes PEM. */
static void csr_der(const pv_key *key, pv_buf *der)
{
    pv_err e = {0};
    pv_buf *pem = pv_buf_new(16384);
    if (pem == NULL || pv_csr_create(key, "CN=pavise-fleet device", pem, &e) != PV_OK) {
        die("making a CSR", &e);
    }
    BIO *bio = BIO_new_mem_buf(pv_buf_data(pem), (int)pv_buf_len(pem));
    X509_REQ *req = bio ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
    unsigned char *p = NULL;
    int n = req ? i2d_X509_REQ(req, &p) : -1;
    if (n <= 0 || pv_buf_append(der, p, (size_t)n) != PV_OK) {
        die("encoding a CSR", NULL);
    }
    OPENSSL_free(p);
    X509_REQ_free(req);
    BIO_free(bio);
    pv_buf_free(pem);
}

static int cmd_prepare(long count, const char *factory_key, const char *factory_cert,
                       const char *anchor_path, const char *out)
{
    pv_err e = {0};
    pv_key *fkey = NULL;
    pv_chain *fchain = NULL, *anchor = NULL;
    uint8_t anchor_hash[PV_SHA256_LEN];
    if (pv_key_load_private_pem(factory_key, &fkey, &e) != PV_OK ||
        pv_chain_load_pem(factory_cert, &fchain, &e) != PV_OK ||
        pv_chain_load_pem(anchor_path, &anchor, &e) != PV_OK ||
        pv_trust_anchor_hash(pv_chain_get(anchor, 0), anchor_hash, &e) != PV_OK) {
        die("loading the factory key, its certificate or the trust anchor", &e);
    }
    char *records = path_join(out, "records"), *devices = path_join(out, "devices");
    mkdir_or_die(out);
    mkdir_or_die(records);
    mkdir_or_die(devices);
    for (long i = 0; i < count; i++) {
        pv_mfgrec rec = {.version = PV_MFGREC_VERSION,
                         .rot_kind = PV_ROT_SOFTWARE,
                         .manufactured_at = pv_time_now()};
        pv_key *tls = NULL;
        pv_buf *spki = pv_buf_new(4096), *cbor = pv_buf_new(PV_MFGREC_MAX_SIZE),
               *csr = pv_buf_new(8192);
        if (spki == NULL || cbor == NULL || csr == NULL) {
            die("out of memory", NULL);
        }
        uint8_t id[PV_SHA256_LEN];
        if (pv_key_generate(&rec.identity_key, &e) != PV_OK ||
            pv_key_generate(&rec.attestation_key, &e) != PV_OK ||
            pv_key_generate(&tls, &e) != PV_OK) {
            die("generating keys", &e);
        }
        if (pv_key_spki_der(rec.identity_key, spki) != PV_OK ||
            pv_sha256_digest(pv_buf_data(spki), pv_buf_len(spki), id) != PV_OK) {
            die("hashing the identity key", NULL);
        }
        pv_hex_encode(id, sizeof(id), rec.device_id, sizeof(rec.device_id));
        memcpy(rec.trust_anchor, anchor_hash, sizeof(anchor_hash));
        if (pv_mfgrec_sign(&rec, fkey, fchain, cbor, &e) != PV_OK) {
            die("signing a manufacturing record", &e);
        }
        char name[PV_DEVICE_ID_HEX_LEN + 16];
        snprintf(name, sizeof(name), "%s.cbor", rec.device_id);
        char *rp = path_join(records, name);
        snprintf(name, sizeof(name), "%ld", i);
        char *dp = path_join(devices, name);
        mkdir_or_die(dp);
        char *ak = path_join(dp, "attestation.key"), *tk = path_join(dp, "tls.key");
        char *cp = path_join(dp, "csr.der"), *ip = path_join(dp, "device-id");
        csr_der(tls, csr);
        if (pv_fs_write_file(rp, pv_buf_data(cbor), pv_buf_len(cbor), 0600, true, &e) != PV_OK ||
            pv_key_save_private_pem(rec.attestation_key, ak, &e) != PV_OK ||
            pv_key_save_private_pem(tls, tk, &e) != PV_OK ||
            pv_fs_write_file(cp, pv_buf_data(csr), pv_buf_len(csr), 0600, true, &e) != PV_OK ||
            pv_fs_write_file(ip, rec.device_id, PV_DEVICE_ID_HEX_LEN, 0600, true, &e) != PV_OK) {
            die("writing a device", &e);
        }
        free(rp), free(dp), free(ak), free(tk), free(cp), free(ip);
        pv_buf_free(spki), pv_buf_free(cbor), pv_buf_free(csr);
        pv_key_free(tls);
        pv_mfgrec_free(&rec);
    }
    printf("pavise-fleet: %ld devices in %s\n", count, out);
    free(records), free(devices);
    pv_key_free(fkey);
    pv_chain_free(fchain);
    pv_chain_free(anchor);
    return 0;
}

/* ---- run: the devices ---- */

typedef struct device {
    char id[PV_DEVICE_ID_HEX_LEN + 1];
    pv_key *ak;
    uint8_t *csr; /* DER */
    size_t csr_len;
    uint8_t spki_hash[PV_SHA256_LEN]; /* SHA-256 of the TLS key's SPKI, for the binding */
} device;

typedef struct options {
    char host[256];
    char port[8];
    const char *ca, *fleet, *os_image;
    long concurrency, threads;
    double duration, warmup;
    bool json;
} options;

typedef struct shared {
    const options *opt;
    SSL_CTX *ctx;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool host_is_ip;
    device *devices;
    size_t ndevices;
    boot_claims boot;
    uint64_t t_measure, t_end;
} shared;

static void load_devices(shared *sh)
{
    pv_err e = {0};
    char *dir = path_join(sh->opt->fleet, "devices");
    sh->devices = calloc(MAX_DEVICES, sizeof(device));
    if (sh->devices == NULL) {
        die("out of memory", NULL);
    }
    for (size_t i = 0; i < MAX_DEVICES; i++) {
        char name[32];
        snprintf(name, sizeof(name), "%zu", i);
        char *dp = path_join(dir, name);
        struct stat st;
        if (stat(dp, &st) != 0) {
            free(dp);
            break;
        }
        device *d = &sh->devices[i];
        char *ak = path_join(dp, "attestation.key"), *tk = path_join(dp, "tls.key");
        char *cp = path_join(dp, "csr.der"), *ip = path_join(dp, "device-id");
        uint8_t *idb = NULL;
        size_t idn = 0;
        pv_key *tls = NULL;
        pv_buf *spki = pv_buf_new(4096);
        if (spki == NULL || pv_key_load_private_pem(ak, &d->ak, &e) != PV_OK ||
            pv_key_load_private_pem(tk, &tls, &e) != PV_OK ||
            pv_fs_read_file(cp, 8192, &d->csr, &d->csr_len, &e) != PV_OK ||
            pv_fs_read_file(ip, PV_DEVICE_ID_HEX_LEN, &idb, &idn, &e) != PV_OK ||
            idn != PV_DEVICE_ID_HEX_LEN) {
            die("loading a device", &e);
        }
        memcpy(d->id, idb, idn);
        if (pv_key_spki_der(tls, spki) != PV_OK ||
            pv_sha256_digest(pv_buf_data(spki), pv_buf_len(spki), d->spki_hash) != PV_OK) {
            die("hashing a TLS key", NULL);
        }
        pv_buf_free(spki);
        pv_key_free(tls);
        free(idb), free(ak), free(tk), free(cp), free(ip), free(dp);
        sh->ndevices++;
    }
    free(dir);
    if (sh->ndevices == 0) {
        die("no devices in the fleet directory (run prepare first)", NULL);
    }
}

/* ---- run: one session, a state machine on a non-blocking socket ---- */

typedef enum {
    S_IDLE,       /* waits to start the next attestation (retry_at) */
    S_CONNECTING, /* TCP connect in progress */
    S_HANDSHAKE,
    S_WRITING,
    S_READING,
} sess_state;

typedef enum { STEP_CHALLENGE, STEP_ATTEST } attest_step;

/* Failures, by where they happened. */
enum { F_CONNECT, F_TLS, F_HTTP, F_CHALLENGE, F_ATTEST, F_EVIDENCE, F_NOT_PASSED, F_N };
static const char *const failure_names[F_N] = {"connect", "tls",      "http",      "challenge",
                                               "attest",  "evidence", "not_passed"};

typedef struct session {
    int fd;
    SSL *ssl;
    sess_state state;
    attest_step step;
    uint32_t events;
    uint64_t retry_at;
    uint64_t t_start; /* when this attestation began (connect) */
    size_t next;      /* the next device index */
    size_t dev;       /* the device of this attestation */
    pv_buf *req;      /* the request being written */
    size_t wpos;
    unsigned char in[IN_CAP];
    size_t in_len;
} session;

typedef struct worker {
    pthread_t tid;
    const shared *sh;
    int epfd;
    session *sess;
    size_t nsess;
    hist h;
    uint64_t done, failures[F_N];
    int failed;
} worker;

static atomic_bool first_error_printed;

static void report_error(const char *what, const char *detail)
{
    bool expected = false;
    if (atomic_compare_exchange_strong(&first_error_printed, &expected, true)) {
        fprintf(stderr, "pavise-fleet: first failure: %s%s%s\n", what, detail ? ": " : "",
                detail ? detail : "");
    }
}

static void sess_close(session *s, uint64_t retry_at)
{
    if (s->ssl) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    s->state = S_IDLE;
    s->events = 0;
    s->retry_at = retry_at;
}

static void sess_fail(worker *w, session *s, int kind, const char *detail)
{
    if (now_ns() >= w->sh->t_measure) {
        w->failures[kind]++;
    }
    report_error(failure_names[kind], detail);
    ERR_clear_error();
    sess_close(s, now_ns() + RETRY_NS);
}

static void sess_fail_ssl(worker *w, session *s, int kind, int ssl_err)
{
    char detail[256];
    unsigned long e = ERR_peek_last_error();
    long vr = s->ssl ? SSL_get_verify_result(s->ssl) : X509_V_OK;
    if (vr != X509_V_OK) {
        snprintf(detail, sizeof(detail), "certificate verification failed: %s",
                 X509_verify_cert_error_string(vr));
    } else if (e != 0) {
        ERR_error_string_n(e, detail, sizeof(detail));
    } else if (ssl_err == SSL_ERROR_SYSCALL) {
        snprintf(detail, sizeof(detail), "%s", errno ? strerror(errno) : "connection closed");
    } else {
        snprintf(detail, sizeof(detail), "SSL error %d", ssl_err);
    }
    sess_fail(w, s, kind, detail);
}

static int sess_watch(worker *w, session *s, uint32_t events)
{
    if (s->events == events) {
        return 0;
    }
    struct epoll_event ev = {.events = events, .data.ptr = s};
    if (epoll_ctl(w->epfd, s->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s->fd, &ev) != 0) {
        sess_fail(w, s, F_CONNECT, strerror(errno));
        return -1;
    }
    s->events = events;
    return 0;
}

static void sess_start_tls(worker *w, session *s)
{
    const shared *sh = w->sh;
    s->ssl = SSL_new(sh->ctx);
    if (!s->ssl || SSL_set_fd(s->ssl, s->fd) != 1) {
        sess_fail_ssl(w, s, F_TLS, 0);
        return;
    }
    int ok = sh->host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), sh->opt->host)
                            : (SSL_set1_host(s->ssl, sh->opt->host) &&
                               SSL_set_tlsext_host_name(s->ssl, sh->opt->host));
    if (ok != 1) {
        sess_fail_ssl(w, s, F_TLS, 0);
        return;
    }
    SSL_set_connect_state(s->ssl);
    s->state = S_HANDSHAKE;
}

/* Builds an HTTP/1.1 POST with a CBOR body into s->req. */
static int build_post(const shared *sh, session *s, const char *path, const pv_buf *body)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/cbor\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     path, sh->opt->host, sh->opt->port, pv_buf_len(body));
    pv_buf_reset(s->req);
    if (n < 0 || (size_t)n >= sizeof(head) || pv_buf_append(s->req, head, (size_t)n) != PV_OK ||
        pv_buf_append(s->req, pv_buf_data(body), pv_buf_len(body)) != PV_OK) {
        return -1;
    }
    s->wpos = 0;
    s->in_len = 0;
    s->state = S_WRITING;
    return 0;
}

static void begin_attestation(worker *w, session *s)
{
    const shared *sh = w->sh;
    s->dev = s->next;
    s->next = (s->next + sh->opt->concurrency) % sh->ndevices;
    s->t_start = now_ns();
    s->step = STEP_CHALLENGE;
    s->fd = socket(sh->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        sess_fail(w, s, F_CONNECT, strerror(errno));
        return;
    }
    int one = 1;
    (void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    s->events = 0;
    if (connect(s->fd, (const struct sockaddr *)&sh->addr, sh->addrlen) == 0) {
        sess_start_tls(w, s);
    } else if (errno == EINPROGRESS) {
        s->state = S_CONNECTING;
    } else {
        sess_fail(w, s, F_CONNECT, strerror(errno));
        return;
    }
    if (s->fd >= 0) {
        (void)sess_watch(w, s, EPOLLOUT);
    }
}

static int build_challenge(const shared *sh, session *s)
{
    pv_buf *body = pv_buf_new(256);
    if (body == NULL) {
        return -1;
    }
    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, body);
    pv_cbor_put_map(&enc, 1);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_text(&enc, sh->devices[s->dev].id);
    int r = pv_cbor_enc_result(&enc) == PV_OK ? build_post(sh, s, "/v1/attestation/challenge", body)
                                              : -1;
    pv_buf_free(body);
    return r;
}

/* The evidence for nonce and the attestation request around it, into s->req. */
static int build_attest(worker *w, session *s, const uint8_t nonce[PV_NONCE_LEN], pv_err *e)
{
    const shared *sh = w->sh;
    const device *d = &sh->devices[s->dev];
    pv_evidence ev = {0};
    memcpy(ev.nonce, nonce, PV_NONCE_LEN);
    memcpy(ev.device_id, d->id, sizeof(ev.device_id));
    ev.issued_at = pv_time_now();
    ev.boot_count = 1;
    ev.rot_kind = PV_ROT_SOFTWARE;
    /* binding = SHA-256(nonce || SHA-256(SPKI)), with the SPKI hash made once. */
    uint8_t bind_in[PV_NONCE_LEN + PV_SHA256_LEN];
    memcpy(bind_in, nonce, PV_NONCE_LEN);
    memcpy(bind_in + PV_NONCE_LEN, d->spki_hash, PV_SHA256_LEN);
    if (pv_sha256_digest(bind_in, sizeof(bind_in), ev.binding) != PV_OK) {
        return pv_err_set(e, PV_ERR_CRYPTO, "hashing the binding");
    }
    memcpy(ev.measurement, sh->boot.measurement, PV_SHA256_LEN);
    ev.events = (pv_rot_event *)sh->boot.events; /* borrowed: never freed here */
    ev.n_events = 2;
    ev.images = (pv_evidence_image *)&sh->boot.image;
    ev.n_images = 1;
    pv_buf *cose = pv_buf_new(PV_EVIDENCE_MAX_SIZE),
           *body = pv_buf_new(PV_EVIDENCE_MAX_SIZE + 8192);
    int r = cose && body ? pv_evidence_sign_with_key(&ev, d->ak, cose, e)
                         : pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    if (r == PV_OK) {
        pv_cbor_enc enc;
        pv_cbor_enc_init(&enc, body);
        pv_cbor_put_map(&enc, 2);
        pv_cbor_put_uint(&enc, 1);
        pv_cbor_put_bytes(&enc, pv_buf_data(cose), pv_buf_len(cose));
        pv_cbor_put_uint(&enc, 4);
        pv_cbor_put_bytes(&enc, d->csr, d->csr_len);
        r = pv_cbor_enc_result(&enc);
        if (r == PV_OK && build_post(sh, s, "/v1/attestation", body) != 0) {
            r = pv_err_set(e, PV_ERR_NOMEM, "building the request");
        }
    }
    pv_buf_free(cose);
    pv_buf_free(body);
    return r;
}

/* A response head: status and Content-Length (the service always sends one). Returns
 * the head's length (through CRLF CRLF), 0 when incomplete, -1 when malformed. */
static long parse_head(const unsigned char *in, size_t n, int *status, size_t *body_len)
{
    const char *h = (const char *)in;
    const char *end = memmem(h, n, "\r\n\r\n", 4);
    if (end == NULL) {
        return n >= HEAD_MAX ? -1 : 0;
    }
    size_t hn = (size_t)(end - h);
    if (hn < 12 || memcmp(h, "HTTP/1.1 ", 9) != 0) {
        return -1;
    }
    *status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
    *body_len = SIZE_MAX;
    for (const char *p = memchr(h, '\n', hn); p != NULL && p < end;
         p = memchr(p + 1, '\n', (size_t)(end - p - 1))) {
        const char *line = p + 1;
        if ((size_t)(end - line) > 15 && strncasecmp(line, "Content-Length:", 15) == 0) {
            char *stop = NULL;
            errno = 0;
            unsigned long v = strtoul(line + 15, &stop, 10);
            if (errno != 0 || stop == line + 15 || v > IN_CAP) {
                return -1;
            }
            *body_len = v;
        }
    }
    return *body_len == SIZE_MAX ? -1 : (long)(hn + 4);
}

/* Reads the CBOR map's key 1 as text and (for the nonce) key 1 as bytes. */
static int handle_challenge(worker *w, session *s, const uint8_t *body, size_t len)
{
    pv_err e = {0};
    cbor_item_t *m = NULL;
    const uint8_t *nonce = NULL;
    size_t nn = 0;
    if (pv_cbor_decode(body, len, &m, &e) != PV_OK ||
        pv_cbor_get_bytes(pv_cbor_map_get(m, 1), &nonce, &nn, &e) != PV_OK || nn != PV_NONCE_LEN) {
        if (m) {
            cbor_decref(&m);
        }
        sess_fail(w, s, F_CHALLENGE, "a challenge response without a 48-byte nonce");
        return -1;
    }
    uint8_t copy[PV_NONCE_LEN];
    memcpy(copy, nonce, PV_NONCE_LEN);
    cbor_decref(&m);
    if (build_attest(w, s, copy, &e) != PV_OK) {
        sess_fail(w, s, F_EVIDENCE, pv_err_msg(&e));
        return -1;
    }
    s->step = STEP_ATTEST;
    return 0;
}

static bool attest_passed(const uint8_t *body, size_t len, char *why, size_t why_size)
{
    pv_err e = {0};
    cbor_item_t *m = NULL;
    char *result = NULL, *reason = NULL;
    const uint8_t *cert = NULL;
    size_t cn = 0;
    bool ok = false;
    if (pv_cbor_decode(body, len, &m, &e) != PV_OK ||
        pv_cbor_get_text(pv_cbor_map_get(m, 1), 32, &result, &e) != PV_OK) {
        snprintf(why, why_size, "unreadable response");
    } else if (strcmp(result, "passed") != 0) {
        (void)pv_cbor_get_text(pv_cbor_map_get(m, 2), 64, &reason, &e);
        snprintf(why, why_size, "%s: %s", result, reason ? reason : "?");
    } else if (pv_cbor_get_bytes(pv_cbor_map_get(m, 5), &cert, &cn, &e) != PV_OK || cn == 0) {
        snprintf(why, why_size, "passed without a client certificate");
    } else {
        ok = true;
    }
    free(result);
    free(reason);
    if (m) {
        cbor_decref(&m);
    }
    return ok;
}

static void attestation_done(worker *w, session *s, const uint8_t *body, size_t len)
{
    const shared *sh = w->sh;
    char why[128];
    uint64_t t = now_ns();
    if (!attest_passed(body, len, why, sizeof(why))) {
        sess_fail(w, s, F_NOT_PASSED, why);
        return;
    }
    if (t >= sh->t_measure && t <= sh->t_end) {
        w->done++;
        hist_add(&w->h, (t - s->t_start) / 1000);
    }
    sess_close(s, t); /* the next attestation starts at once */
}

/* A whole response is in s->in: acts on it. Returns 0 to go on writing, -1 when the
 * session closed. */
static int on_response(worker *w, session *s, int status, const uint8_t *body, size_t len)
{
    char detail[64];
    if (s->step == STEP_CHALLENGE) {
        if (status != 201) {
            snprintf(detail, sizeof(detail), "HTTP %d", status);
            sess_fail(w, s, F_CHALLENGE, detail);
            return -1;
        }
        return handle_challenge(w, s, body, len);
    }
    /* 200, or 403/400 with {1: "failed", 2: reason}: either way the body says. */
    attestation_done(w, s, body, len);
    return -1;
}

static void sess_step(worker *w, session *s)
{
    const shared *sh = w->sh;
    for (;;) {
        int n, err;
        if (s->state == S_CONNECTING) {
            int soerr = 0;
            socklen_t l = sizeof(soerr);
            if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &l) != 0) {
                soerr = errno;
            }
            if (soerr != 0) {
                sess_fail(w, s, F_CONNECT, strerror(soerr));
                return;
            }
            sess_start_tls(w, s);
            if (s->state != S_HANDSHAKE) {
                return;
            }
        }
        switch (s->state) {
        case S_HANDSHAKE:
            n = SSL_connect(s->ssl);
            if (n == 1) {
                if (build_challenge(sh, s) != 0) {
                    sess_fail(w, s, F_HTTP, "building the challenge");
                    return;
                }
                continue;
            }
            break;
        case S_WRITING:
            n = SSL_write(s->ssl, pv_buf_data(s->req) + s->wpos,
                          (int)(pv_buf_len(s->req) - s->wpos));
            if (n > 0) {
                s->wpos += (size_t)n;
                if (s->wpos == pv_buf_len(s->req)) {
                    s->state = S_READING;
                }
                continue;
            }
            break;
        case S_READING: {
            size_t room = IN_CAP - s->in_len;
            if (room == 0) {
                sess_fail(w, s, F_HTTP, "response too large");
                return;
            }
            n = SSL_read(s->ssl, s->in + s->in_len, (int)room);
            if (n > 0) {
                s->in_len += (size_t)n;
                int status = 0;
                size_t blen = 0;
                long hl = parse_head(s->in, s->in_len, &status, &blen);
                if (hl < 0) {
                    sess_fail(w, s, F_HTTP, "malformed response head");
                    return;
                }
                if (hl == 0 || s->in_len < (size_t)hl + blen) {
                    continue; /* more to come */
                }
                if (s->in_len != (size_t)hl + blen) {
                    sess_fail(w, s, F_HTTP, "data after the response");
                    return;
                }
                if (on_response(w, s, status, s->in + hl, blen) != 0) {
                    return;
                }
                continue; /* the attestation request is ready to write */
            }
            break;
        }
        default:
            return;
        }
        err = SSL_get_error(s->ssl, n);
        if (err == SSL_ERROR_WANT_READ) {
            (void)sess_watch(w, s, EPOLLIN);
        } else if (err == SSL_ERROR_WANT_WRITE) {
            (void)sess_watch(w, s, EPOLLOUT);
        } else {
            sess_fail_ssl(w, s, s->state == S_HANDSHAKE ? F_TLS : F_HTTP, err);
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
    for (size_t i = 0; i < w->nsess; i++) {
        w->sess[i].fd = -1;
        sess_close(&w->sess[i], now);
    }
    while ((now = now_ns()) < sh->t_end) {
        bool waiting = false;
        for (size_t i = 0; i < w->nsess; i++) {
            session *s = &w->sess[i];
            if (s->state == S_IDLE && s->retry_at <= now) {
                begin_attestation(w, s);
                if (s->state == S_HANDSHAKE) {
                    sess_step(w, s);
                }
            }
            waiting |= s->state == S_IDLE;
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
            sess_step(w, evs[i].data.ptr);
        }
    }
    for (size_t i = 0; i < w->nsess; i++) {
        sess_close(&w->sess[i], 0);
        pv_buf_free(w->sess[i].req);
    }
    return NULL;
}

/* ---- run: setup and results ---- */

static int parse_url(options *o, const char *url)
{
    if (strncmp(url, "https://", 8) != 0) {
        return -1;
    }
    const char *h = url + 8, *end = h + strcspn(h, "/");
    const char *colon = NULL;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (rb == NULL || rb + 1 >= end || rb[1] != ':') {
            return -1;
        }
        if ((size_t)(rb - h - 1) >= sizeof(o->host)) {
            return -1;
        }
        memcpy(o->host, h + 1, (size_t)(rb - h - 1));
        o->host[rb - h - 1] = '\0';
        colon = rb + 1;
    } else {
        colon = memrchr(h, ':', (size_t)(end - h));
        if (colon == NULL || (size_t)(colon - h) >= sizeof(o->host)) {
            return -1;
        }
        memcpy(o->host, h, (size_t)(colon - h));
        o->host[colon - h] = '\0';
    }
    size_t pl = (size_t)(end - colon - 1);
    if (pl == 0 || pl >= sizeof(o->port) || (*end != '\0' && strcmp(end, "/") != 0)) {
        return -1;
    }
    memcpy(o->port, colon + 1, pl);
    o->port[pl] = '\0';
    return 0;
}

static void setup_net(shared *sh)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(sh->opt->host, sh->opt->port, &hints, &ai);
    if (rc != 0 || ai == NULL) {
        fprintf(stderr, "pavise-fleet: cannot resolve %s: %s\n", sh->opt->host, gai_strerror(rc));
        exit(1);
    }
    memcpy(&sh->addr, ai->ai_addr, ai->ai_addrlen);
    sh->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    unsigned char tmp[16];
    sh->host_is_ip =
        inet_pton(AF_INET, sh->opt->host, tmp) == 1 || inet_pton(AF_INET6, sh->opt->host, tmp) == 1;
    sh->ctx = SSL_CTX_new(TLS_client_method());
    if (!sh->ctx || SSL_CTX_set_min_proto_version(sh->ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_load_verify_locations(sh->ctx, sh->opt->ca, NULL) != 1) {
        die("setting up TLS (is --ca a PEM file?)", NULL);
    }
    SSL_CTX_set_verify(sh->ctx, SSL_VERIFY_PEER, NULL);
    /* Every attestation is a new device connection: a full handshake, no resumption. */
    SSL_CTX_set_session_cache_mode(sh->ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(sh->ctx, SSL_OP_NO_TICKET);
}

static int cmd_run(options *o)
{
    static shared sh;
    sh.opt = o;
    setup_net(&sh);
    load_devices(&sh);
    boot_claims_load(o->os_image, &sh.boot);
    if ((size_t)o->concurrency > sh.ndevices) {
        fprintf(stderr, "pavise-fleet: --concurrency %ld is more than the %zu devices\n",
                o->concurrency, sh.ndevices);
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)o->concurrency + 64) {
        rl.rlim_cur =
            rl.rlim_max < (rlim_t)o->concurrency + 64 ? rl.rlim_max : (rlim_t)o->concurrency + 64;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    worker *ws = calloc((size_t)o->threads, sizeof(worker));
    session *all = calloc((size_t)o->concurrency, sizeof(session));
    if (ws == NULL || all == NULL) {
        die("out of memory", NULL);
    }
    uint64_t t0 = now_ns();
    sh.t_measure = t0 + (uint64_t)(o->warmup * 1e9);
    sh.t_end = sh.t_measure + (uint64_t)(o->duration * 1e9);
    size_t per = (size_t)o->concurrency / (size_t)o->threads,
           extra = (size_t)o->concurrency % (size_t)o->threads;
    size_t off = 0;
    for (long t = 0; t < o->threads; t++) {
        worker *w = &ws[t];
        w->sh = &sh;
        w->sess = all + off;
        w->nsess = per + ((size_t)t < extra ? 1 : 0);
        for (size_t i = 0; i < w->nsess; i++) {
            w->sess[i].next = off + i;
            if ((w->sess[i].req = pv_buf_new(PV_EVIDENCE_MAX_SIZE + 16384)) == NULL) {
                die("out of memory", NULL);
            }
        }
        off += w->nsess;
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (w->epfd < 0 || pthread_create(&w->tid, NULL, worker_run, w) != 0) {
            die("starting a thread", NULL);
        }
    }
    sleep_until(sh.t_measure);
    double cpu0 = cpu_seconds();
    hist h = {0};
    uint64_t done = 0, failures[F_N] = {0};
    int failed = 0;
    for (long t = 0; t < o->threads; t++) {
        pthread_join(ws[t].tid, NULL);
        close(ws[t].epfd);
        hist_merge(&h, &ws[t].h);
        done += ws[t].done;
        for (int k = 0; k < F_N; k++) {
            failures[k] += ws[t].failures[k];
        }
        failed |= ws[t].failed;
    }
    double cpu = (cpu_seconds() - cpu0) / o->duration * 100.0;
    double rate = (double)done / o->duration;
    uint64_t nfail = 0;
    for (int k = 0; k < F_N; k++) {
        nfail += failures[k];
    }
    if (o->json) {
        printf("{\"attestations\":%" PRIu64 ",\"rate\":%.1f,\"p50_us\":%" PRIu64
               ",\"p99_us\":%" PRIu64 ",\"max_us\":%" PRIu64 ",\"failures\":%" PRIu64
               ",\"client_cpu_pct\":%.0f,"
               "\"concurrency\":%ld,\"devices\":%zu",
               done, rate, hist_percentile(&h, 50), hist_percentile(&h, 99), h.max_us, nfail, cpu,
               o->concurrency, sh.ndevices);
        for (int k = 0; k < F_N; k++) {
            printf(",\"fail_%s\":%" PRIu64, failure_names[k], failures[k]);
        }
        printf("}\n");
    } else {
        printf("%" PRIu64 " attestations in %.1f s: %.1f/s, p50 %" PRIu64 " us, p99 %" PRIu64
               " us, max %" PRIu64 " us, %" PRIu64 " failures, generator CPU %.0f%%\n",
               done, o->duration, rate, hist_percentile(&h, 50), hist_percentile(&h, 99), h.max_us,
               nfail, cpu);
    }
    for (size_t i = 0; i < sh.ndevices; i++) {
        pv_key_free(sh.devices[i].ak);
        free(sh.devices[i].csr);
    }
    free(sh.devices);
    free(all);
    free(ws);
    SSL_CTX_free(sh.ctx);
    return failed || done == 0 ? 1 : 0;
}

/* ---- arguments ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: pavise-fleet prepare --count N --factory-key FILE --factory-cert FILE\n"
               "                            --trust-anchor CERT --out DIR\n"
               "       pavise-fleet run --server https://HOST:PORT --ca FILE --fleet DIR\n"
               "                        --os-image PKG [--concurrency C] [--threads T]\n"
               "                        [--duration S] [--warmup S] [--json]\n");
}

static long parse_long_or_die(const char *s, long lo, long hi, const char *what)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "pavise-fleet: %s must be an integer in %ld..%ld\n", what, lo, hi);
        exit(2);
    }
    return v;
}

static double parse_secs_or_die(const char *s, const char *what)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= 0.0 && v <= 3600.0)) {
        fprintf(stderr, "pavise-fleet: %s must be 0..3600 seconds\n", what);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"count", required_argument, NULL, 'n'},
        {"factory-key", required_argument, NULL, 'k'},
        {"factory-cert", required_argument, NULL, 'c'},
        {"trust-anchor", required_argument, NULL, 'a'},
        {"out", required_argument, NULL, 'o'},
        {"server", required_argument, NULL, 's'},
        {"ca", required_argument, NULL, 'C'},
        {"fleet", required_argument, NULL, 'f'},
        {"os-image", required_argument, NULL, 'i'},
        {"concurrency", required_argument, NULL, 'N'},
        {"threads", required_argument, NULL, 't'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2 || (strcmp(argv[1], "prepare") != 0 && strcmp(argv[1], "run") != 0)) {
        usage(stderr);
        return 2;
    }
    bool prepare = strcmp(argv[1], "prepare") == 0;
    options o = {.concurrency = 100, .threads = 1, .duration = 10, .warmup = 2};
    long count = 0;
    const char *fkey = NULL, *fcert = NULL, *anchor = NULL, *out = NULL, *server = NULL;
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            count = parse_long_or_die(optarg, 1, MAX_DEVICES, "--count");
            break;
        case 'k':
            fkey = optarg;
            break;
        case 'c':
            fcert = optarg;
            break;
        case 'a':
            anchor = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 's':
            server = optarg;
            break;
        case 'C':
            o.ca = optarg;
            break;
        case 'f':
            o.fleet = optarg;
            break;
        case 'i':
            o.os_image = optarg;
            break;
        case 'N':
            o.concurrency = parse_long_or_die(optarg, 1, MAX_SESSIONS, "--concurrency");
            break;
        case 't':
            o.threads = parse_long_or_die(optarg, 1, MAX_THREADS, "--threads");
            break;
        case 'd':
            o.duration = parse_secs_or_die(optarg, "--duration");
            break;
        case 'w':
            o.warmup = parse_secs_or_die(optarg, "--warmup");
            break;
        case 'j':
            o.json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (prepare) {
        if (count == 0 || !fkey || !fcert || !anchor || !out) {
            usage(stderr);
            return 2;
        }
        return cmd_prepare(count, fkey, fcert, anchor, out);
    }
    if (!server || !o.ca || !o.fleet || !o.os_image || o.duration <= 0) {
        usage(stderr);
        return 2;
    }
    if (parse_url(&o, server) != 0) {
        fprintf(stderr, "pavise-fleet: --server must be https://HOST:PORT\n");
        return 2;
    }
    if (o.threads > o.concurrency) {
        o.threads = o.concurrency;
    }
    return cmd_run(&o);
}
