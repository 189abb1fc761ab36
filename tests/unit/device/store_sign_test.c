/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `pavise-store sign --state DIR --digest HEX` run as a process, the way pavised runs it
 * (a clean environment holding only PAVISE_TCTI): a good answer that verifies with the
 * key's public half (software key, and a key inside a real swtpm), the not-found refusal
 * when the device holds no key, the invalid-argument refusal for a bad digest.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/x509.h>

#include "pavise/attest.h"
#include "pavise/crypto.h"
#include "pavise/devstate.h"

#ifndef PV_BIN_DIR
#error "PV_BIN_DIR: the build's bin directory (tests/CMakeLists.txt)"
#endif

#define STORE       PV_BIN_DIR "/pavise-store"
#define DEADLINE_MS 60000

typedef struct answer {
    int status; /* exit status; -1 for a signal */
    json_t *json;
} answer;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs pavise-store sign with digest (NULL: no --digest) and reads its one answer. */
static answer run_sign(const char *state, const char *digest, const char *tcti)
{
    int out[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    char env_tcti[512];
    snprintf(env_tcti, sizeof(env_tcti), "PAVISE_TCTI=%s", tcti != NULL ? tcti : "");
    char *envp[] = {tcti != NULL ? env_tcti : NULL, NULL};
    char *argv[] = {"pavise-store", "sign",         "--state", (char *)state,
                    "--digest",     (char *)digest, NULL};
    if (digest == NULL) {
        argv[4] = NULL;
    }
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(out[1], 1);
        execve(STORE, argv, envp);
        _exit(127);
    }
    close(out[1]);
    char buf[4096];
    size_t got = 0;
    long long end = now_ms() + DEADLINE_MS;
    for (;;) {
        long long left = end - now_ms();
        if (left <= 0) {
            kill(pid, SIGKILL);
            fail_msg("pavise-store sign did not answer within %d ms", DEADLINE_MS);
        }
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        assert_true(n >= 0);
        if (n == 0) {
            continue;
        }
        ssize_t k = read(out[0], buf + got, sizeof(buf) - 1 - got);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        assert_true(k >= 0);
        if (k == 0) {
            break;
        }
        got += (size_t)k;
        assert_true(got < sizeof(buf) - 1);
    }
    close(out[0]);
    buf[got] = '\0';
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    answer a = {.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1};
    json_error_t je;
    a.json = json_loadb(buf, got, 0, &je);
    if (a.json == NULL) {
        fail_msg("not a JSON answer: '%s'", buf);
    }
    return a;
}

static void expect_refusal(const char *state, const char *digest, const char *tcti, int code)
{
    answer a = run_sign(state, digest, tcti);
    assert_int_equal(a.status, 1);
    assert_true(json_is_false(json_object_get(a.json, "ok")));
    json_int_t got = json_integer_value(json_object_get(a.json, "code"));
    if (got != code) {
        fail_msg("digest %s: wanted code %d, got %lld: %s", digest != NULL ? digest : "(none)",
                 code, (long long)got, json_string_value(json_object_get(a.json, "error")));
    }
    assert_non_null(json_string_value(json_object_get(a.json, "error")));
    json_decref(a.json);
}

/* Signs a digest of each length through the process and checks every answer with pub. */
static void expect_signatures(const char *state, const char *tcti, EVP_PKEY *pub)
{
    static const char *const mds[] = {"SHA256", "SHA384", "SHA512"};
    for (size_t i = 0; i < 3; i++) {
        uint8_t digest[64];
        unsigned int len = 0;
        assert_int_equal(
            EVP_Digest("handshake", 9, digest, &len, EVP_get_digestbyname(mds[i]), NULL), 1);
        char hex[129];
        pv_hex_encode(digest, len, hex, sizeof(hex));
        answer a = run_sign(state, hex, tcti);
        if (a.status != 0) {
            fail_msg("%s: %s", mds[i], json_string_value(json_object_get(a.json, "error")));
        }
        assert_true(json_is_true(json_object_get(a.json, "ok")));
        const char *s = json_string_value(json_object_get(a.json, "signature"));
        assert_non_null(s);
        assert_int_equal(strlen(s), 128);
        for (const char *p = s; *p != '\0'; p++) {
            assert_true((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
        }
        uint8_t raw[64];
        assert_int_equal(pv_hex_decode(s, raw, sizeof(raw)), PV_OK);
        ECDSA_SIG *sig = ECDSA_SIG_new();
        assert_int_equal(
            ECDSA_SIG_set0(sig, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL)), 1);
        unsigned char *der = NULL;
        int n = i2d_ECDSA_SIG(sig, &der);
        assert_true(n > 0);
        EVP_PKEY_CTX *vc = EVP_PKEY_CTX_new(pub, NULL);
        assert_int_equal(EVP_PKEY_verify_init(vc), 1);
        assert_true(EVP_PKEY_CTX_set_signature_md(vc, EVP_get_digestbyname(mds[i])) > 0);
        assert_int_equal(EVP_PKEY_verify(vc, der, (size_t)n, digest, len), 1);
        EVP_PKEY_CTX_free(vc);
        OPENSSL_free(der);
        ECDSA_SIG_free(sig);
        json_decref(a.json);
    }
}

static void make_state(const char *state, pv_rot_kind kind, const char *tcti)
{
    pv_devstate st = {.kind = kind};
    snprintf(st.tcti, sizeof(st.tcti), "%s", tcti != NULL ? tcti : "");
    pv_err e;
    assert_int_equal(mkdir(state, 0700), 0);
    assert_int_equal(pv_devstate_save(state, &st, &e), PV_OK);
}

/* Writes pk's private key file into STATE/certs/tls.key and returns its public half in
 * the default context. */
static EVP_PKEY *write_key(const char *state, EVP_PKEY *pk, OSSL_LIB_CTX *lib, const char *propq)
{
    char *certs = tu_path(state, "certs");
    mkdir(certs, 0700);
    free(certs);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey_ex(bio, pk, NULL, NULL, 0, NULL, NULL, lib, propq),
                     1);
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *path = tu_path(state, PV_ATTEST_TLS_KEY);
    tu_write(path, data, (size_t)n, 0600);
    free(path);
    BIO_free(bio);
    unsigned char *der = NULL;
    int dn = i2d_PUBKEY(pk, &der);
    assert_true(dn > 0);
    char *crt = tu_path(state, PV_ATTEST_CLIENT_CRT); /* only its certificate's key signs */
    tu_write_cert_for(crt, der, (size_t)dn);
    free(crt);
    const unsigned char *p = der;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, dn);
    assert_non_null(pub);
    OPENSSL_free(der);
    return pub;
}

static void test_software(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("store_sign_soft");
    char *st = tu_path(dir, "state");
    make_state(st, PV_ROT_SOFTWARE, NULL);
    static const char d32[] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    /* No key yet: the device has not attested. */
    expect_refusal(st, d32, NULL, PV_ERR_NOT_FOUND);

    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(pk);
    EVP_PKEY *pub = write_key(st, pk, NULL, NULL);
    expect_signatures(st, NULL, pub);

    /* Bad digests: refused as invalid arguments, whatever the key. */
    static const char *const bad[] = {
        "",
        "abc",
        "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",  /* uppercase */
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0",   /* 63 */
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08a", /* 65 */
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0g",  /* not hex */
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        "00", /* 130 */
        "9f86d081 84c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_refusal(st, bad[i], NULL, PV_ERR_INVALID_ARG);
    }
    /* No --digest at all: a usage error. */
    expect_refusal(st, NULL, NULL, PV_ERR_USAGE);
    /* A device that is not manufactured: no device.conf. */
    char *none = tu_path(dir, "none");
    mkdir(none, 0700);
    expect_refusal(none, d32, NULL, PV_ERR_NOT_FOUND);
    free(none);

    EVP_PKEY_free(pub);
    EVP_PKEY_free(pk);
    tu_rmtree(dir);
    free(st);
    free(dir);
}

static void test_tpm(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("store_sign_tpm");
    char *tpm = tu_path(dir, "tpm");
    char *st = tu_path(dir, "state"), *st2 = tu_path(dir, "state2");
    char *tcti = tu_swtpm_start(tpm);
    /* A key made inside the TPM through the provider, as attestation makes it; the
     * provider is unloaded again so the single-connection swtpm is free. */
    OSSL_LIB_CTX *lib = OSSL_LIB_CTX_new();
    setenv("TPM2OPENSSL_TCTI", tcti, 1);
    OSSL_PROVIDER *tpm2 = OSSL_PROVIDER_load(lib, "tpm2");
    OSSL_PROVIDER *dflt = OSSL_PROVIDER_load(lib, "default");
    unsetenv("TPM2OPENSSL_TCTI");
    assert_non_null(tpm2);
    assert_non_null(dflt);
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(lib, "?provider=tpm2", "EC", "P-256");
    assert_non_null(pk);

    /* The TCTI from the environment (as pavised passes it), device.conf's empty. */
    make_state(st, PV_ROT_TPM, NULL);
    EVP_PKEY *pub = write_key(st, pk, lib, "?provider=tpm2");
    /* And the TCTI from device.conf alone. */
    make_state(st2, PV_ROT_TPM, tcti);
    EVP_PKEY *pub2 = write_key(st2, pk, lib, "?provider=tpm2");
    EVP_PKEY_free(pk);
    OSSL_PROVIDER_unload(dflt);
    OSSL_PROVIDER_unload(tpm2);
    OSSL_LIB_CTX_free(lib);

    expect_signatures(st, tcti, pub);
    expect_signatures(st2, NULL, pub2);
    expect_refusal(st, "00", tcti, PV_ERR_INVALID_ARG);

    /* A software key on this TPM device: refused as a key of the wrong kind. */
    EVP_PKEY *soft = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *soft_pub = write_key(st, soft, NULL, NULL);
    expect_refusal(st, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", tcti,
                   PV_ERR_FORMAT);
    EVP_PKEY_free(soft_pub);
    EVP_PKEY_free(soft);

    tu_swtpm_stop(tpm);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(pub2);
    tu_rmtree(dir);
    free(tcti);
    free(tpm);
    free(st);
    free(st2);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_software),
        cmocka_unit_test(test_tpm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
