/* SPDX-License-Identifier: Apache-2.0 */
#include "testutil.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "pavise/crypto.h"

static void hex_to(const char *hex, uint8_t *out, size_t n)
{
    assert_int_equal(pv_hex_decode(hex, out, n), PV_OK);
}

static void assert_digest(const void *p, size_t n, const char *hex)
{
    uint8_t want[PV_SHA256_LEN], got[PV_SHA256_LEN];
    hex_to(hex, want, sizeof(want));
    assert_int_equal(pv_sha256_digest(p, n, got), PV_OK);
    assert_memory_equal(got, want, sizeof(want));
}

/* ---- SHA-256 ---- */

static void test_sha256_vectors(void **state)
{
    (void)state;
    /* FIPS 180-2 appendix B and the empty string. */
    assert_digest("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_digest("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    assert_int_equal(strlen(m448), 56);
    assert_digest(m448, 56, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

    /* One million 'a', streamed. */
    pv_sha256 *h = pv_sha256_new();
    assert_non_null(h);
    char block[1000];
    memset(block, 'a', sizeof(block));
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(pv_sha256_update(h, block, sizeof(block)), PV_OK);
    }
    uint8_t got[PV_SHA256_LEN], want[PV_SHA256_LEN];
    assert_int_equal(pv_sha256_final(h, got), PV_OK);
    hex_to("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", want, sizeof(want));
    assert_memory_equal(got, want, sizeof(want));

    /* After a reset the context starts over. */
    assert_int_equal(pv_sha256_reset(h), PV_OK);
    assert_int_equal(pv_sha256_update(h, "abc", 3), PV_OK);
    assert_int_equal(pv_sha256_final(h, got), PV_OK);
    hex_to("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", want, sizeof(want));
    assert_memory_equal(got, want, sizeof(want));
    pv_sha256_free(h);
    pv_sha256_free(NULL);
}

static void test_sha256_streaming(void **state)
{
    (void)state;
    uint8_t data[10007];
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)(i * 131 + (i >> 7));
    }
    uint8_t one_shot[PV_SHA256_LEN];
    assert_int_equal(pv_sha256_digest(data, sizeof(data), one_shot), PV_OK);
    static const size_t chunks[] = {1, 3, 7, 63, 64, 65, 127, 1000, 4099};
    pv_sha256 *h = pv_sha256_new();
    assert_non_null(h);
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        assert_int_equal(pv_sha256_reset(h), PV_OK);
        size_t off = 0, step = chunks[c];
        while (off < sizeof(data)) {
            size_t n = sizeof(data) - off < step ? sizeof(data) - off : step;
            assert_int_equal(pv_sha256_update(h, data + off, n), PV_OK);
            assert_int_equal(pv_sha256_update(h, data + off, 0), PV_OK);
            off += n;
            step = step % 5 == 0 ? step + 1 : step; /* vary odd sizes a little */
        }
        uint8_t got[PV_SHA256_LEN];
        assert_int_equal(pv_sha256_final(h, got), PV_OK);
        assert_memory_equal(got, one_shot, sizeof(got));
    }
    pv_sha256_free(h);
}

/* ---- utilities ---- */

static void test_hex(void **state)
{
    (void)state;
    const uint8_t bytes[] = {0x00, 0x01, 0xab, 0xcd, 0xef, 0xff};
    char out[13];
    pv_hex_encode(bytes, sizeof(bytes), out, sizeof(out));
    assert_string_equal(out, "0001abcdefff");
    /* Truncation keeps whole bytes and the NUL. */
    char small[6] = "XXXXX";
    pv_hex_encode(bytes, sizeof(bytes), small, 4);
    assert_string_equal(small, "00");
    pv_hex_encode(bytes, sizeof(bytes), small, 5);
    assert_string_equal(small, "0001");
    pv_hex_encode(bytes, sizeof(bytes), small, 1);
    assert_string_equal(small, "");
    small[0] = 'X';
    pv_hex_encode(bytes, sizeof(bytes), small, 0);
    assert_int_equal(small[0], 'X');
    pv_hex_encode(bytes, 0, out, sizeof(out));
    assert_string_equal(out, "");

    uint8_t back[6];
    assert_int_equal(pv_hex_decode("0001abcdefff", back, sizeof(back)), PV_OK);
    assert_memory_equal(back, bytes, sizeof(bytes));
    assert_int_equal(pv_hex_decode("0001ABCDEFFF", back, sizeof(back)), PV_OK);
    assert_memory_equal(back, bytes, sizeof(bytes));
    assert_int_equal(pv_hex_decode("", back, 0), PV_OK);

    static const char *bad[] = {
        "0001abcdeff",    /* odd length */
        "0001abcdef",     /* too short */
        "0001abcdefff00", /* too long */
        "0001abcdefgf",   /* g */
        "0001abcd efff",  /* space */
        "0x01abcdefff",   /* prefix */
        "0001abcdef-f",   /* sign */
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (pv_hex_decode(bad[i], back, sizeof(back)) != PV_ERR_FORMAT) {
            fail_msg("'%s' accepted", bad[i]);
        }
    }
}

static void test_ct_equal(void **state)
{
    (void)state;
    uint8_t a[64], b[64];
    for (size_t i = 0; i < sizeof(a); i++) {
        a[i] = b[i] = (uint8_t)i;
    }
    assert_true(pv_ct_equal(a, b, sizeof(a)));
    assert_true(pv_ct_equal(a, b, 0));
    b[0] ^= 0x80;
    assert_false(pv_ct_equal(a, b, sizeof(a)));
    assert_true(pv_ct_equal(a + 1, b + 1, sizeof(a) - 1));
    b[0] = a[0];
    b[63] ^= 0x01;
    assert_false(pv_ct_equal(a, b, sizeof(a)));
    assert_true(pv_ct_equal(a, b, sizeof(a) - 1));
}

static void test_random(void **state)
{
    (void)state;
    uint8_t a[32] = {0}, b[32] = {0}, zero[32] = {0};
    assert_int_equal(pv_random_bytes(a, sizeof(a)), PV_OK);
    assert_int_equal(pv_random_bytes(b, sizeof(b)), PV_OK);
    assert_memory_not_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, zero, sizeof(a));
    assert_int_equal(pv_random_bytes(a, 0), PV_OK);
    assert_int_equal(pv_random_bytes(a, (size_t)INT_MAX + 1), PV_ERR_INVALID_ARG);
}

/* ---- keys ---- */

typedef struct fixture {
    char *dir;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->dir = tu_mkdtemp("crypto");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static pv_key *newkey(void)
{
    pv_key *k = NULL;
    pv_err e = {0};
    assert_int_equal(pv_key_generate(&k, &e), PV_OK);
    assert_non_null(k);
    return k;
}

enum { PEM_PKCS8, PEM_SEC1, PEM_PUBLIC };

/* Writes pkey with OpenSSL directly, in one of the forms above. */
static char *write_evp(const char *dir, const char *name, EVP_PKEY *pkey, int kind)
{
    char *path = tu_path(dir, name);
    BIO *bio = BIO_new_file(path, "w");
    assert_non_null(bio);
    int ok = kind == PEM_PKCS8 ? PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)
             : kind == PEM_SEC1
                 ? PEM_write_bio_PrivateKey_traditional(bio, pkey, NULL, NULL, 0, NULL, NULL)
                 : PEM_write_bio_PUBKEY(bio, pkey);
    assert_int_equal(ok, 1);
    BIO_free(bio);
    return path;
}

static void test_key_save_load(void **state)
{
    fixture *f = *state;
    pv_key *k = newkey();
    assert_true(pv_key_has_private(k));
    pv_err e = {0};
    char *priv = tu_path(f->dir, "k.key");
    char *pub = tu_path(f->dir, "k.pub");

    assert_int_equal(pv_key_save_private_pem(k, priv, &e), PV_OK);
    struct stat st;
    assert_int_equal(stat(priv, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    size_t len = 0;
    uint8_t *text = tu_read(priv, &len);
    assert_non_null(strstr((char *)text, "-----BEGIN PRIVATE KEY-----"));
    free(text);
    /* Never overwrites a private key, and leaves no temporary file behind. */
    pv_key *other = newkey();
    assert_int_equal(pv_key_save_private_pem(other, priv, &e), PV_ERR_EXISTS);
    assert_int_equal(tu_count_entries(f->dir), 1);

    pv_key *back = NULL;
    assert_int_equal(pv_key_load_private_pem(priv, &back, &e), PV_OK);
    assert_true(pv_key_has_private(back));
    assert_true(pv_key_equal_public(back, k));
    assert_false(pv_key_equal_public(back, other));

    /* A signature made by the loaded key verifies with the original. */
    uint8_t sig[PV_ES256_SIG_LEN];
    assert_int_equal(pv_key_sign_es256(back, "m", 1, sig, &e), PV_OK);
    assert_int_equal(pv_key_verify_es256(k, "m", 1, sig, &e), PV_OK);

    assert_int_equal(pv_key_save_public_pem(k, pub, &e), PV_OK);
    assert_int_equal(stat(pub, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    pv_key *pk = NULL;
    assert_int_equal(pv_key_load_public_pem(pub, &pk, &e), PV_OK);
    assert_false(pv_key_has_private(pk));
    assert_true(pv_key_equal_public(pk, k));
    /* A public key cannot be saved as a private one nor sign. */
    char *priv2 = tu_path(f->dir, "k2.key");
    assert_int_equal(pv_key_save_private_pem(pk, priv2, &e), PV_ERR_INVALID_ARG);
    assert_false(tu_exists(priv2));
    assert_int_equal(pv_key_sign_es256(pk, "m", 1, sig, &e), PV_ERR_INVALID_ARG);
    /* Each loader wants its own kind of file. */
    pv_key *x = (pv_key *)1;
    assert_int_equal(pv_key_load_private_pem(pub, &x, &e), PV_ERR_FORMAT);
    assert_null(x);
    assert_int_equal(pv_key_load_public_pem(priv, &x, &e), PV_ERR_FORMAT);
    assert_null(x);

    /* References. */
    assert_ptr_equal(pv_key_ref(pk), pk);
    pv_key_free(pk);
    assert_true(pv_key_equal_public(pk, k));
    pv_key_free(pk);
    pv_key_free(NULL);

    free(priv2);
    free(pub);
    free(priv);
    pv_key_free(back);
    pv_key_free(other);
    pv_key_free(k);
}

static void test_key_load_sec1(void **state)
{
    fixture *f = *state;
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    assert_non_null(pkey);
    char *path = write_evp(f->dir, "sec1.key", pkey, PEM_SEC1);
    size_t len = 0;
    uint8_t *text = tu_read(path, &len);
    assert_non_null(strstr((char *)text, "-----BEGIN EC PRIVATE KEY-----"));
    free(text);
    pv_key *k = NULL;
    pv_err e = {0};
    assert_int_equal(pv_key_load_private_pem(path, &k, &e), PV_OK);
    assert_true(pv_key_has_private(k));
    assert_int_equal(EVP_PKEY_eq(pv_key_evp(k), pkey), 1);
    pv_key_free(k);
    free(path);
    EVP_PKEY_free(pkey);
}

static void check_unsupported(const char *dir, const char *tag, EVP_PKEY *pkey)
{
    char name[64];
    pv_err e = {0};
    pv_key *k = (pv_key *)1;
    snprintf(name, sizeof(name), "%s.key", tag);
    char *priv = write_evp(dir, name, pkey, PEM_PKCS8);
    snprintf(name, sizeof(name), "%s.pub", tag);
    char *pub = write_evp(dir, name, pkey, PEM_PUBLIC);

    assert_int_equal(pv_key_load_private_pem(priv, &k, &e), PV_ERR_UNSUPPORTED);
    assert_null(k);
    assert_non_null(strstr(e.msg, priv));
    assert_non_null(strstr(e.msg, "P-256"));
    /* The code does not depend on whether an error context was passed. */
    assert_int_equal(pv_key_load_private_pem(priv, &k, NULL), PV_ERR_UNSUPPORTED);
    assert_int_equal(pv_key_load_public_pem(pub, &k, &e), PV_ERR_UNSUPPORTED);
    assert_int_equal(pv_key_load_public_pem(pub, &k, NULL), PV_ERR_UNSUPPORTED);
    assert_null(k);
    assert_int_equal(pv_key_from_evp(pkey, &k, &e), PV_ERR_UNSUPPORTED);
    assert_null(k);

    unsigned char *der = NULL;
    int n = i2d_PUBKEY(pkey, &der);
    assert_true(n > 0);
    assert_int_equal(pv_key_from_spki_der(der, (size_t)n, &k, &e), PV_ERR_UNSUPPORTED);
    assert_null(k);
    OPENSSL_free(der);
    free(pub);
    free(priv);
}

static void test_key_not_p256(void **state)
{
    fixture *f = *state;
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(ed);
    check_unsupported(f->dir, "ed25519", ed);
    EVP_PKEY *p384 = EVP_EC_gen("P-384");
    assert_non_null(p384);
    check_unsupported(f->dir, "p384", p384);
    /* pv_key_from_evp refused them without dropping the caller's reference. */
    assert_int_equal(EVP_PKEY_get_bits(p384), 384);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(ed);

    EVP_PKEY *p256 = EVP_EC_gen("P-256");
    assert_non_null(p256);
    pv_key *k = NULL;
    assert_int_equal(pv_key_from_evp(p256, &k, NULL), PV_OK);
    assert_ptr_equal(pv_key_evp(k), p256);
    EVP_PKEY_free(p256); /* k holds its own reference */
    assert_true(pv_key_has_private(k));
    pv_key_free(k);
}

static void test_key_load_errors(void **state)
{
    fixture *f = *state;
    pv_err e = {0};
    pv_key *k = (pv_key *)1;
    char *path = tu_path(f->dir, "bad.key");

    assert_int_equal(pv_key_load_private_pem(path, &k, &e), PV_ERR_NOT_FOUND);
    assert_null(k);
    assert_non_null(strstr(e.msg, path));
    assert_int_equal(pv_key_load_public_pem(path, &k, &e), PV_ERR_NOT_FOUND);

    const char *garbage = "this is not a key\n";
    tu_write(path, garbage, strlen(garbage), 0600);
    assert_int_equal(pv_key_load_private_pem(path, &k, &e), PV_ERR_FORMAT);
    assert_non_null(strstr(e.msg, path));
    assert_int_equal(pv_key_load_public_pem(path, &k, &e), PV_ERR_FORMAT);
    tu_write(path, "", 0, 0600);
    assert_int_equal(pv_key_load_private_pem(path, &k, &e), PV_ERR_FORMAT);
    const char *broken = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    tu_write(path, broken, strlen(broken), 0600);
    assert_int_equal(pv_key_load_private_pem(path, &k, &e), PV_ERR_FORMAT);

    /* Larger than 64 KiB, even if it starts with a valid key. */
    pv_key *good = newkey();
    unlink(path);
    assert_int_equal(pv_key_save_private_pem(good, path, &e), PV_OK);
    size_t len = 0;
    uint8_t *text = tu_read(path, &len);
    size_t big_len = 64 * 1024 + 1;
    char *big = malloc(big_len);
    assert_non_null(big);
    memset(big, '\n', big_len);
    memcpy(big, text, len);
    tu_write(path, big, big_len, 0600);
    assert_int_equal(pv_key_load_private_pem(path, &k, &e), PV_ERR_TOO_LARGE);
    assert_int_equal(pv_key_load_public_pem(path, &k, &e), PV_ERR_TOO_LARGE);
    tu_write(path, big, 64 * 1024, 0600); /* exactly the limit is fine */
    assert_int_equal(pv_key_load_private_pem(path, &k, &e), PV_OK);
    pv_key_free(k);
    k = NULL;
    free(big);
    free(text);
    pv_key_free(good);

    /* An encrypted key is refused, without asking for a pass phrase. */
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    assert_non_null(pkey);
    BIO *bio = BIO_new_file(path, "w");
    assert_non_null(bio);
    assert_int_equal(
        PEM_write_bio_PKCS8PrivateKey(bio, pkey, EVP_aes_128_cbc(), "secret", 6, NULL, NULL), 1);
    BIO_free(bio);
    text = tu_read(path, &len);
    assert_non_null(strstr((char *)text, "ENCRYPTED PRIVATE KEY"));
    free(text);
    assert_int_equal(pv_key_load_private_pem(path, &k, &e), PV_ERR_FORMAT);
    assert_null(k);
    assert_non_null(strstr(e.msg, "encrypted"));
    EVP_PKEY_free(pkey);
    free(path);
}

/* ---- ES256 ---- */

/* P-256 group order n. */
static const char *ORDER_HEX = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";

static void test_sign_verify(void **state)
{
    (void)state;
    pv_key *k = newkey(), *other = newkey();
    pv_err e = {0};
    const char msg[] = "firmware image 1.2.3";
    uint8_t sig[PV_ES256_SIG_LEN], sig2[PV_ES256_SIG_LEN];
    assert_int_equal(pv_key_sign_es256(k, msg, sizeof(msg), sig, &e), PV_OK);
    assert_int_equal(pv_key_verify_es256(k, msg, sizeof(msg), sig, &e), PV_OK);
    /* ECDSA is randomized: a second signature differs and verifies too. */
    assert_int_equal(pv_key_sign_es256(k, msg, sizeof(msg), sig2, &e), PV_OK);
    assert_memory_not_equal(sig, sig2, sizeof(sig));
    assert_int_equal(pv_key_verify_es256(k, msg, sizeof(msg), sig2, &e), PV_OK);
    /* Empty message. */
    assert_int_equal(pv_key_sign_es256(k, "", 0, sig2, &e), PV_OK);
    assert_int_equal(pv_key_verify_es256(k, "", 0, sig2, &e), PV_OK);

    /* Tampered message. */
    char bad[sizeof(msg)];
    memcpy(bad, msg, sizeof(msg));
    bad[0] ^= 1;
    assert_int_equal(pv_key_verify_es256(k, bad, sizeof(bad), sig, &e), PV_ERR_SIGNATURE);
    assert_int_equal(pv_key_verify_es256(k, msg, sizeof(msg) - 1, sig, &e), PV_ERR_SIGNATURE);
    /* Tampered signature: every byte position. */
    for (size_t i = 0; i < PV_ES256_SIG_LEN; i++) {
        memcpy(sig2, sig, sizeof(sig));
        sig2[i] ^= 0x04;
        if (pv_key_verify_es256(k, msg, sizeof(msg), sig2, &e) != PV_ERR_SIGNATURE) {
            fail_msg("signature with byte %zu changed accepted", i);
        }
    }
    /* r and s swapped. */
    memcpy(sig2, sig + 32, 32);
    memcpy(sig2 + 32, sig, 32);
    assert_int_equal(pv_key_verify_es256(k, msg, sizeof(msg), sig2, &e), PV_ERR_SIGNATURE);
    /* Wrong key. */
    assert_int_equal(pv_key_verify_es256(other, msg, sizeof(msg), sig, &e), PV_ERR_SIGNATURE);
    assert_non_null(strstr(e.msg, "does not verify"));
    /* Verifying with only the public key. */
    pv_buf *spki = pv_buf_new(1024);
    assert_non_null(spki);
    assert_int_equal(pv_key_spki_der(k, spki), PV_OK);
    pv_key *pub = NULL;
    assert_int_equal(pv_key_from_spki_der(pv_buf_data(spki), pv_buf_len(spki), &pub, &e), PV_OK);
    assert_int_equal(pv_key_verify_es256(pub, msg, sizeof(msg), sig, &e), PV_OK);
    pv_key_free(pub);
    pv_buf_free(spki);

    /* The signature is r || s: the same (r, s) as DER verifies with OpenSSL directly. */
    ECDSA_SIG *es = ECDSA_SIG_new();
    assert_non_null(es);
    assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL)),
                     1);
    unsigned char *der = NULL;
    int der_len = i2d_ECDSA_SIG(es, &der);
    assert_true(der_len > 0);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pv_key_evp(k)), 1);
    assert_int_equal(
        EVP_DigestVerify(ctx, der, (size_t)der_len, (const unsigned char *)msg, sizeof(msg)), 1);
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);

    pv_key_free(other);
    pv_key_free(k);
}

static void test_verify_out_of_range(void **state)
{
    (void)state;
    pv_key *k = newkey();
    pv_err e = {0};
    uint8_t sig[PV_ES256_SIG_LEN], bad[PV_ES256_SIG_LEN], n[32], zero[32] = {0};
    assert_int_equal(pv_key_sign_es256(k, "x", 1, sig, &e), PV_OK);
    hex_to(ORDER_HEX, n, sizeof(n));
    const uint8_t *vals[] = {zero, n};
    for (size_t half = 0; half < 2; half++) {
        for (size_t v = 0; v < 2; v++) {
            memcpy(bad, sig, sizeof(sig));
            memcpy(bad + 32 * half, vals[v], 32);
            if (pv_key_verify_es256(k, "x", 1, bad, &e) != PV_ERR_SIGNATURE) {
                fail_msg("%s = %s accepted", half ? "s" : "r", v ? "n" : "0");
            }
        }
    }
    /* All ones (> n) and all zero. */
    memset(bad, 0xff, sizeof(bad));
    assert_int_equal(pv_key_verify_es256(k, "x", 1, bad, &e), PV_ERR_SIGNATURE);
    memset(bad, 0, sizeof(bad));
    assert_int_equal(pv_key_verify_es256(k, "x", 1, bad, &e), PV_ERR_SIGNATURE);
    pv_key_free(k);
}

/* RFC 6979 appendix A.2.5: P-256, SHA-256, message "sample". */
static void test_es256_known_answer(void **state)
{
    (void)state;
    uint8_t spki[91];
    const char *prefix = "3059301306072a8648ce3d020106082a8648ce3d030107034200"
                         "04";
    const char *x = "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6";
    const char *y = "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299";
    hex_to(prefix, spki, 27);
    hex_to(x, spki + 27, 32);
    hex_to(y, spki + 59, 32);
    pv_key *k = NULL;
    pv_err e = {0};
    assert_int_equal(pv_key_from_spki_der(spki, sizeof(spki), &k, &e), PV_OK);
    uint8_t sig[PV_ES256_SIG_LEN];
    hex_to("efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716", sig, 32);
    hex_to("f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8", sig + 32, 32);
    assert_int_equal(pv_key_verify_es256(k, "sample", 6, sig, &e), PV_OK);
    assert_int_equal(pv_key_verify_es256(k, "sample!", 7, sig, &e), PV_ERR_SIGNATURE);
    /* Known key ID: SHA-256 of exactly these SPKI bytes. */
    uint8_t id[PV_KEY_ID_LEN], want[PV_SHA256_LEN];
    assert_int_equal(pv_key_id(k, id), PV_OK);
    assert_int_equal(pv_sha256_digest(spki, sizeof(spki), want), PV_OK);
    assert_memory_equal(id, want, sizeof(want));
    pv_key_free(k);
}

/* ---- SubjectPublicKeyInfo and key IDs ---- */

static void test_key_id_and_spki(void **state)
{
    (void)state;
    pv_key *k = newkey();
    pv_err e = {0};
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(pv_key_evp(k), &der);
    assert_true(n > 0);
    assert_int_equal(n, 91); /* named-curve P-256, uncompressed point */
    uint8_t id[PV_KEY_ID_LEN], want[PV_SHA256_LEN];
    assert_int_equal(pv_key_id(k, id), PV_OK);
    assert_int_equal(pv_sha256_digest(der, (size_t)n, want), PV_OK);
    assert_memory_equal(id, want, sizeof(want));

    pv_buf *b = pv_buf_new(1024);
    assert_non_null(b);
    assert_int_equal(pv_buf_append(b, "xy", 2), PV_OK); /* appends, keeping what is there */
    assert_int_equal(pv_key_spki_der(k, b), PV_OK);
    assert_int_equal(pv_buf_len(b), (size_t)n + 2);
    assert_memory_equal(pv_buf_data(b) + 2, der, (size_t)n);
    pv_buf *tiny = pv_buf_new(16);
    assert_non_null(tiny);
    assert_int_equal(pv_key_spki_der(k, tiny), PV_ERR_TOO_LARGE);
    pv_buf_free(tiny);

    /* Round trip; the public key's ID is the same. */
    pv_key *pub = NULL;
    assert_int_equal(pv_key_from_spki_der(der, (size_t)n, &pub, &e), PV_OK);
    assert_false(pv_key_has_private(pub));
    assert_true(pv_key_equal_public(pub, k));
    uint8_t id2[PV_KEY_ID_LEN];
    assert_int_equal(pv_key_id(pub, id2), PV_OK);
    assert_memory_equal(id, id2, sizeof(id));
    pv_key_free(pub);

    /* Trailing byte, truncation, garbage, too large. */
    uint8_t *buf = calloc(1, 64 * 1024 + 2);
    assert_non_null(buf);
    memcpy(buf, der, (size_t)n);
    pv_key *x = (pv_key *)1;
    assert_int_equal(pv_key_from_spki_der(buf, (size_t)n + 1, &x, &e), PV_ERR_FORMAT);
    assert_null(x);
    assert_non_null(strstr(e.msg, "trailing"));
    assert_int_equal(pv_key_from_spki_der(buf, (size_t)n - 1, &x, &e), PV_ERR_FORMAT);
    assert_int_equal(pv_key_from_spki_der(buf, 0, &x, &e), PV_ERR_FORMAT);
    buf[0] = 0x04;
    assert_int_equal(pv_key_from_spki_der(buf, (size_t)n, &x, &e), PV_ERR_FORMAT);
    assert_int_equal(pv_key_from_spki_der(buf, 64 * 1024 + 1, &x, &e), PV_ERR_TOO_LARGE);
    assert_null(x);
    /* A point not on the curve. */
    memcpy(buf, der, (size_t)n);
    buf[n - 1] ^= 0x01;
    assert_int_not_equal(pv_key_from_spki_der(buf, (size_t)n, &x, &e), PV_OK);
    assert_null(x);

    free(buf);
    OPENSSL_free(der);
    pv_buf_free(b);
    pv_key_free(k);
}

#define TF(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_sha256_streaming),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_random),
        TF(test_key_save_load),
        TF(test_key_load_sec1),
        TF(test_key_not_p256),
        TF(test_key_load_errors),
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_verify_out_of_range),
        cmocka_unit_test(test_es256_known_answer),
        cmocka_unit_test(test_key_id_and_spki),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
