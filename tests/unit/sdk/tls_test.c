/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libpavise-app-tls (src/sdk-tls/tls.c): real TLS 1.3 and 1.2 handshakes over a socketpair
 * between a client that presents the device identity through pv_app_tls_use_device_identity
 * and a server that requires a client certificate from the test's CA. The key is not in the
 * client: a thread plays the runtime on the app channel and answers each sign request with
 * a signature made by the software P-256 key it holds (or with the refusal a test asks for).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "testutil.h"

#include "pavise/app.h"
#include "pavise/app_tls.h"
#include "pavise/crypto.h"
#include "pavise/x509.h"

#include "../../../src/sdk/sdk.h"

/* ---- a test PKI: root -> intermediate -> device; root -> server ---- */

typedef struct pki {
    char *dir;
    pv_key *root_key, *int_key, *device_key, *server_key, *other_key;
    pv_cert *root, *inter, *device, *server, *mismatched;
    char *cert_path, *chain_path;
} pki;

static pki P;

static pv_cert *issue(const char *subject, bool ca, const pv_key *key, const pv_cert *issuer,
                      const pv_key *issuer_key, const char *san, bool server)
{
    pv_err e;
    pv_cert *c = NULL;
    int64_t now = (int64_t)time(NULL);
    pv_cert_params p = {.subject = subject,
                        .not_before = now - 3600,
                        .not_after = now + 86400,
                        .is_ca = ca,
                        .path_len = -1,
                        .client_auth = !ca && !server,
                        .server_auth = server,
                        .subject_alt_names = san};
    if (pv_cert_create(&p, key, issuer, issuer_key, &c, &e) != PV_OK) {
        fail_msg("pv_cert_create %s: %s", subject, pv_err_msg(&e));
    }
    return c;
}

static pv_key *newkey(void)
{
    pv_err e;
    pv_key *k = NULL;
    assert_int_equal(pv_key_generate(&k, &e), PV_OK);
    return k;
}

static void write_certs(const char *path, pv_cert *const *certs, size_t n)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(PEM_write_X509(f, pv_cert_x509(certs[i])), 1);
    }
    assert_int_equal(fclose(f), 0);
}

static int pki_setup(void **state)
{
    (void)state;
    P.dir = tu_mkdtemp("sdk-tls");
    P.root_key = newkey();
    P.int_key = newkey();
    P.device_key = newkey();
    P.server_key = newkey();
    P.other_key = newkey();
    P.root = issue("CN=Test Tenant Root", true, P.root_key, NULL, NULL, NULL, false);
    P.inter = issue("CN=Test Issuing CA", true, P.int_key, P.root, P.root_key, NULL, false);
    P.device = issue("CN=device-1", false, P.device_key, P.inter, P.int_key, NULL, false);
    P.mismatched = issue("CN=device-1", false, P.other_key, P.inter, P.int_key, NULL, false);
    P.server = issue("CN=127.0.0.1", false, P.server_key, P.root, P.root_key, "IP:127.0.0.1", true);
    P.cert_path = tu_path(P.dir, "client.crt");
    P.chain_path = tu_path(P.dir, "client-chain.crt");
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int pki_teardown(void **state)
{
    (void)state;
    tu_rmtree(P.dir);
    free(P.dir);
    free(P.cert_path);
    free(P.chain_path);
    pv_cert_free(P.root);
    pv_cert_free(P.inter);
    pv_cert_free(P.device);
    pv_cert_free(P.mismatched);
    pv_cert_free(P.server);
    pv_key_free(P.root_key);
    pv_key_free(P.int_key);
    pv_key_free(P.device_key);
    pv_key_free(P.server_key);
    pv_key_free(P.other_key);
    return 0;
}

/* ---- the fake runtime ---- */

typedef struct fake_rt {
    int fd;            /* the runtime's end */
    int app;           /* the app's end (PAVISE_FD) */
    int ok_signs;      /* signatures made before refusing (-1: never refuse) */
    int32_t refuse;    /* the result of a refused sign */
    int signs;         /* sign requests seen */
    int bad;           /* set when the app sent something the runtime does not expect */
    volatile int stop; /* written by the test, read by the thread */
    pthread_t thread;
} fake_rt;

static fake_rt RT;

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (24 - 8 * i));
    }
}

/* Signs digest with the device key as the runtime's helper does: r || s. */
static bool rt_sign(const uint8_t *digest, size_t len, uint8_t out[PV_APP_DEVICE_SIG_LEN])
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(pv_key_evp(P.device_key), NULL);
    uint8_t der[128];
    size_t dlen = sizeof(der);
    bool ok =
        c != NULL && EVP_PKEY_sign_init(c) == 1 && EVP_PKEY_sign(c, der, &dlen, digest, len) == 1;
    EVP_PKEY_CTX_free(c);
    if (!ok) {
        return false;
    }
    const unsigned char *p = der;
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
    ok = s != NULL && BN_bn2binpad(ECDSA_SIG_get0_r(s), out, 32) == 32 &&
         BN_bn2binpad(ECDSA_SIG_get0_s(s), out + 32, 32) == 32;
    ECDSA_SIG_free(s);
    return ok;
}

static void *rt_thread(void *arg)
{
    fake_rt *rt = arg;
    while (!rt->stop) {
        struct pollfd pfd = {.fd = rt->fd, .events = POLLIN};
        uint8_t buf[2100], out[4 + PV_APP_DEVICE_SIG_LEN];
        if (poll(&pfd, 1, 20) != 1) {
            continue;
        }
        ssize_t n = recv(rt->fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            break;
        }
        size_t body = (size_t)n - 4;
        if (n < 4 || buf[0] != 1 || ((size_t)buf[2] << 8 | buf[3]) != body) {
            rt->bad = 1;
            continue;
        }
        if (buf[1] != 8 || (body != 32 && body != 48 && body != 64)) {
            rt->bad = 1;
            continue;
        }
        int k = __atomic_fetch_add(&rt->signs, 1, __ATOMIC_SEQ_CST);
        if (rt->ok_signs >= 0 && k >= rt->ok_signs) {
            uint8_t res[9] = {1, 66, 0, 5, 8};
            put_be32(res + 5, (uint32_t)rt->refuse);
            if (send(rt->fd, res, sizeof(res), 0) != (ssize_t)sizeof(res)) {
                break;
            }
            continue;
        }
        out[0] = 1;
        out[1] = 67;
        out[2] = 0;
        out[3] = PV_APP_DEVICE_SIG_LEN;
        if (!rt_sign(buf + 4, body, out + 4)) {
            rt->bad = 1;
            continue;
        }
        if (send(rt->fd, out, sizeof(out), 0) != (ssize_t)sizeof(out)) {
            break;
        }
    }
    return NULL;
}

static void clear_env(void)
{
    unsetenv("PAVISE_FD");
    unsetenv("PAVISE_DEVICE_CERT");
    unsetenv("PAVISE_DEVICE_CHAIN");
}

/* Starts the runtime; the device's files are those of cert (and the chain, intermediate). */
static void start(const pv_cert *cert, int ok_signs, int32_t refuse)
{
    int sv[2];
    char fd[16];
    clear_env();
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    memset(&RT, 0, sizeof(RT));
    RT.app = sv[0];
    RT.fd = sv[1];
    RT.ok_signs = ok_signs;
    RT.refuse = refuse;
    snprintf(fd, sizeof(fd), "%d", RT.app);
    setenv("PAVISE_FD", fd, 1);
    setenv("PAVISE_DEVICE_CERT", P.cert_path, 1);
    setenv("PAVISE_DEVICE_CHAIN", P.chain_path, 1);
    if (cert != NULL) {
        pv_cert *c = (pv_cert *)cert;
        write_certs(P.cert_path, &c, 1);
        write_certs(P.chain_path, &P.inter, 1);
    }
    sdk_reset();
    sdk_set_sign_timeout_ms(5000);
    assert_int_equal(pthread_create(&RT.thread, NULL, rt_thread, &RT), 0);
}

static int stop(void **state)
{
    (void)state;
    RT.stop = 1;
    pthread_join(RT.thread, NULL);
    close(RT.fd);
    close(RT.app);
    assert_int_equal(RT.bad, 0);
    unlink(P.cert_path);
    unlink(P.chain_path);
    clear_env();
    sdk_reset();
    ERR_clear_error();
    return 0;
}

/* ---- TLS ---- */

typedef struct server {
    SSL_CTX *ctx;
    int fd;
    int version;
    bool ok;           /* handshake done, client verified, one byte each way */
    long verify;       /* SSL_get_verify_result */
    char subject[128]; /* of the client certificate */
} server;

static SSL_CTX *server_ctx(int version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_set_min_proto_version(ctx, version), 1);
    assert_int_equal(SSL_CTX_set_max_proto_version(ctx, version), 1);
    assert_int_equal(SSL_CTX_use_certificate(ctx, pv_cert_x509(P.server)), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, pv_key_evp(P.server_key)), 1);
    /* Only the root: the client must send its intermediate. */
    assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), pv_cert_x509(P.root)), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return ctx;
}

static void *server_thread(void *arg)
{
    server *s = arg;
    SSL *ssl = SSL_new(s->ctx);
    char c;
    if (ssl == NULL || SSL_set_fd(ssl, s->fd) != 1) {
        goto out;
    }
    if (SSL_accept(ssl) != 1) {
        goto out;
    }
    s->verify = SSL_get_verify_result(ssl);
    X509 *peer = SSL_get1_peer_certificate(ssl);
    if (peer != NULL) {
        X509_NAME_oneline(X509_get_subject_name(peer), s->subject, sizeof(s->subject));
        X509_free(peer);
    }
    if (SSL_read(ssl, &c, 1) != 1 || c != 'x' || SSL_write(ssl, "y", 1) != 1) {
        goto out;
    }
    s->ok = SSL_version(ssl) == s->version;
    SSL_shutdown(ssl);
out:
    SSL_free(ssl);
    return NULL;
}

static SSL_CTX *client_ctx(int version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_set_min_proto_version(ctx, version), 1);
    assert_int_equal(SSL_CTX_set_max_proto_version(ctx, version), 1);
    assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), pv_cert_x509(P.root)), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

static int collect_error(const char *str, size_t len, void *u)
{
    char *buf = u;
    size_t have = strlen(buf);
    if (have + len + 1 < 1024) {
        memcpy(buf + have, str, len);
        buf[have + len] = '\0';
    }
    return 1;
}

/* Runs a handshake with the client ctx against a server of version; true when it and
 * the exchange succeed on both sides. errors receives the client's OpenSSL errors. */
static bool handshake(SSL_CTX *cctx, int version, server *srv, char errors[1024])
{
    int sv[2];
    pthread_t t;
    char c = 0;
    errors[0] = '\0';
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    memset(srv, 0, sizeof(*srv));
    srv->ctx = server_ctx(version);
    srv->fd = sv[1];
    srv->version = version;
    assert_int_equal(pthread_create(&t, NULL, server_thread, srv), 0);
    SSL *ssl = SSL_new(cctx);
    assert_non_null(ssl);
    assert_int_equal(SSL_set_fd(ssl, sv[0]), 1);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
    bool ok = SSL_connect(ssl) == 1 && SSL_write(ssl, "x", 1) == 1 && SSL_read(ssl, &c, 1) == 1 &&
              c == 'y';
    ERR_print_errors_cb(collect_error, errors);
    SSL_free(ssl);
    /* The server sees the end of the stream if the client gave up. */
    close(sv[0]);
    pthread_join(t, NULL);
    close(sv[1]);
    SSL_CTX_free(srv->ctx);
    return ok && srv->ok;
}

static void good_handshake(int version)
{
    server srv;
    char errors[1024];
    start(P.device, -1, 0);
    SSL_CTX *ctx = client_ctx(version);
    assert_int_equal(pv_app_tls_use_device_identity(ctx), PV_APP_OK);
    assert_int_equal(RT.signs, 1); /* the check that the runtime's key is the certificate's */
    bool ok = handshake(ctx, version, &srv, errors);
    if (!ok) {
        fail_msg("handshake failed: %s", errors);
    }
    assert_int_equal(srv.verify, X509_V_OK);
    assert_string_equal(srv.subject, "/CN=device-1");
    assert_int_equal(RT.signs, 2); /* CertificateVerify */
    /* The identity is the context's: a second connection signs again. */
    assert_true(handshake(ctx, version, &srv, errors));
    assert_int_equal(RT.signs, 3);
    SSL_CTX_free(ctx);
}

static void test_tls13(void **state)
{
    (void)state;
    good_handshake(TLS1_3_VERSION);
}

static void test_tls12(void **state)
{
    (void)state;
    good_handshake(TLS1_2_VERSION);
}

/* The runtime refuses the handshake's signature: the handshake fails on both sides, and
 * the client's error says why. */
static void refused_handshake(int32_t refuse, const char *why)
{
    server srv;
    char errors[1024];
    static const int versions[] = {TLS1_3_VERSION, TLS1_2_VERSION};
    for (size_t i = 0; i < 2; i++) {
        start(P.device, 1, refuse);
        SSL_CTX *ctx = client_ctx(versions[i]);
        assert_int_equal(pv_app_tls_use_device_identity(ctx), PV_APP_OK);
        assert_false(handshake(ctx, versions[i], &srv, errors));
        assert_false(srv.ok);
        assert_int_equal(RT.signs, 2);
        if (strstr(errors, why) == NULL) {
            fail_msg("errors do not say \"%s\": %s", why, errors);
        }
        SSL_CTX_free(ctx);
        stop(NULL);
    }
    start(NULL, -1, 0); /* for the teardown */
}

static void test_runtime_denies(void **state)
{
    (void)state;
    refused_handshake(PV_APP_ERR_DENIED, "device key: the runtime did not sign: not granted");
}

static void test_runtime_fails(void **state)
{
    (void)state;
    refused_handshake(PV_APP_ERR_IO, "device key: the runtime did not sign: the channel");
}

/* ---- setting the identity up ---- */

static void test_key_object(void **state)
{
    (void)state;
    start(P.device, -1, 0);
    EVP_PKEY *k = pv_app_tls_device_key();
    assert_non_null(k);
    /* The public half is the certificate's. */
    assert_int_equal(EVP_PKEY_eq(k, X509_get0_pubkey(pv_cert_x509(P.device))), 1);
    /* It signs through the runtime, outside TLS too, and with each digest size. */
    const EVP_MD *mds[] = {EVP_sha256(), EVP_sha384(), EVP_sha512(), EVP_sha1()};
    for (size_t i = 0; i < 4; i++) {
        uint8_t sig[128];
        size_t len = sizeof(sig);
        EVP_MD_CTX *m = EVP_MD_CTX_new();
        assert_non_null(m);
        assert_int_equal(EVP_DigestSignInit(m, NULL, mds[i], NULL, k), 1);
        assert_int_equal(EVP_DigestSign(m, sig, &len, (const uint8_t *)"data", 4), 1);
        EVP_MD_CTX_free(m);
        m = EVP_MD_CTX_new();
        assert_int_equal(
            EVP_DigestVerifyInit(m, NULL, mds[i], NULL, X509_get0_pubkey(pv_cert_x509(P.device))),
            1);
        assert_int_equal(EVP_DigestVerify(m, sig, len, (const uint8_t *)"data", 4), 1);
        EVP_MD_CTX_free(m);
    }
    assert_int_equal(RT.signs, 4);
    EVP_PKEY_free(k);
}

static void test_key_mismatch_refused(void **state)
{
    (void)state;
    /* The certificate is for another key than the one the runtime signs with. */
    start(P.mismatched, -1, 0);
    SSL_CTX *ctx = client_ctx(TLS1_3_VERSION);
    assert_int_equal(pv_app_tls_use_device_identity(ctx), PV_APP_ERR_INVALID);
    assert_int_equal(RT.signs, 1);
    SSL_CTX_free(ctx);
}

static void test_runtime_refuses_setup(void **state)
{
    (void)state;
    static const int32_t codes[] = {PV_APP_ERR_DENIED, PV_APP_ERR_NOT_READY, PV_APP_ERR_LIMIT,
                                    PV_APP_ERR_IO};
    for (size_t i = 0; i < 4; i++) {
        start(P.device, 0, codes[i]);
        SSL_CTX *ctx = client_ctx(TLS1_3_VERSION);
        assert_int_equal(pv_app_tls_use_device_identity(ctx), codes[i]);
        SSL_CTX_free(ctx);
        stop(NULL);
    }
    start(NULL, -1, 0);
}

static void test_missing(void **state)
{
    (void)state;
    SSL_CTX *ctx = client_ctx(TLS1_3_VERSION);
    assert_int_equal(pv_app_tls_use_device_identity(NULL), PV_APP_ERR_INVALID);
    /* The runtime set the variables but the device has no certificate yet. */
    start(NULL, -1, 0);
    assert_null(pv_app_tls_device_key());
    assert_int_equal(pv_app_tls_use_device_identity(ctx), PV_APP_ERR_NOT_READY);
    /* Files that are not certificates. */
    tu_write(P.cert_path, "not a certificate\n", 18, 0644);
    tu_write(P.chain_path, "not a certificate\n", 18, 0644);
    assert_null(pv_app_tls_device_key());
    assert_int_equal(pv_app_tls_use_device_identity(ctx), PV_APP_ERR_INVALID);
    pv_cert *c = P.device;
    write_certs(P.cert_path, &c, 1);
    assert_int_equal(pv_app_tls_use_device_identity(ctx), PV_APP_ERR_INVALID); /* the chain */
    write_certs(P.chain_path, &P.inter, 1);
    assert_int_equal(pv_app_tls_use_device_identity(ctx), PV_APP_OK);
    /* No DeviceAuthentication: the runtime sets no paths. */
    unsetenv("PAVISE_DEVICE_CERT");
    sdk_reset();
    assert_null(pv_app_tls_device_key());
    assert_int_equal(pv_app_tls_use_device_identity(ctx), PV_APP_ERR_DENIED);
    setenv("PAVISE_DEVICE_CERT", P.cert_path, 1);
    unsetenv("PAVISE_DEVICE_CHAIN");
    sdk_reset();
    assert_int_equal(pv_app_tls_use_device_identity(ctx), PV_APP_ERR_DENIED);
    /* No runtime at all. */
    unsetenv("PAVISE_FD");
    setenv("PAVISE_DEVICE_CHAIN", P.chain_path, 1);
    sdk_reset();
    assert_int_equal(pv_app_tls_use_device_identity(ctx), PV_APP_ERR_NO_RUNTIME);
    clear_env();
    sdk_reset();
    assert_null(pv_app_tls_device_key());
    assert_int_equal(pv_app_tls_use_device_identity(ctx), PV_APP_ERR_NO_RUNTIME);
    SSL_CTX_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_tls13, stop),
        cmocka_unit_test_teardown(test_tls12, stop),
        cmocka_unit_test_teardown(test_runtime_denies, stop),
        cmocka_unit_test_teardown(test_runtime_fails, stop),
        cmocka_unit_test_teardown(test_key_object, stop),
        cmocka_unit_test_teardown(test_key_mismatch_refused, stop),
        cmocka_unit_test_teardown(test_runtime_refuses_setup, stop),
        cmocka_unit_test_teardown(test_missing, stop),
    };
    return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
