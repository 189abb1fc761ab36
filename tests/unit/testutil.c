/* SPDX-License-Identifier: Apache-2.0 */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "pavise/crypto.h"
#include "pavise/fs.h"

char *tu_mkdtemp(const char *tag)
{
    const char *base = getenv("PV_TEST_TMP");
    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    mkdir(base, 0755);
    size_t n = strlen(base) + strlen(tag) + 16;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s-XXXXXX", base, tag);
    assert_non_null(mkdtemp(p));
    return p;
}

void tu_rmtree(const char *path)
{
    assert_int_equal(pv_fs_remove_tree(path, NULL), 0);
}

char *tu_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

void tu_write(const char *path, const void *data, size_t len, int mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(pv_fs_write_all(fd, data, len), 0);
    assert_int_equal(fchmod(fd, (mode_t)mode), 0);
    close(fd);
}

uint8_t *tu_read(const char *path, size_t *len)
{
    uint8_t *d = NULL;
    assert_int_equal(pv_fs_read_file(path, (size_t)1 << 30, &d, len, NULL), 0);
    return d;
}

int tu_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

int tu_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return -1;
    }
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

#define TU_YEAR ((int64_t)365 * 24 * 3600)

/* Creates a certificate; fails the test with the error message otherwise. */
static pv_cert *make_cert(const pv_cert_params *p, const pv_key *key, const pv_cert *issuer,
                          const pv_key *issuer_key)
{
    pv_err e = {0};
    pv_cert *c = NULL;
    int r = pv_cert_create(p, key, issuer, issuer_key, &c, &e);
    if (r != PV_OK) {
        fail_msg("creating %s: %s", p->subject, pv_err_msg(&e));
    }
    return c;
}

static void save_chain(const char *dir, const char *name, pv_cert *a, pv_cert *b)
{
    pv_err e = {0};
    pv_chain *ch = pv_chain_new();
    assert_non_null(ch);
    assert_int_equal(pv_chain_add(ch, a), PV_OK);
    if (b != NULL) {
        assert_int_equal(pv_chain_add(ch, b), PV_OK);
    }
    char *path = tu_path(dir, name);
    if (pv_chain_save_pem(ch, path, true, &e) != PV_OK) {
        fail_msg("%s", pv_err_msg(&e));
    }
    free(path);
    pv_chain_free(ch);
}

void tu_make_chain(const char *dir, int64_t not_before, int64_t not_after, pv_key **leaf_key,
                   pv_chain **leaf_chain, pv_trust **anchor)
{
    pv_key *root_key = NULL, *int_key = NULL, *key = NULL;
    pv_err e = {0};
    assert_int_equal(pv_key_generate(&root_key, &e), PV_OK);
    assert_int_equal(pv_key_generate(&int_key, &e), PV_OK);
    assert_int_equal(pv_key_generate(&key, &e), PV_OK);

    pv_cert_params rp = {.subject = "CN=Test Root CA,O=Pavise Test",
                         .not_before = not_before - 10 * TU_YEAR,
                         .not_after = not_after + 10 * TU_YEAR,
                         .is_ca = true,
                         .path_len = -1};
    pv_cert *root = make_cert(&rp, root_key, NULL, NULL);
    pv_cert_params ip = {.subject = "CN=Test Intermediate CA,O=Pavise Test",
                         .not_before = not_before - 5 * TU_YEAR,
                         .not_after = not_after + 5 * TU_YEAR,
                         .is_ca = true,
                         .path_len = 0};
    pv_cert *inter = make_cert(&ip, int_key, root, root_key);
    pv_cert_params lp = {.subject = "CN=Test Code Signer,O=Pavise Test",
                         .not_before = not_before,
                         .not_after = not_after,
                         .path_len = -1,
                         .code_signing = true};
    pv_cert *leaf = make_cert(&lp, key, inter, int_key);

    save_chain(dir, "root.crt", root, NULL);
    save_chain(dir, "chain.pem", leaf, inter);
    char *key_path = tu_path(dir, "leaf.key");
    if (tu_exists(key_path)) {
        assert_int_equal(unlink(key_path), 0);
    }
    if (pv_key_save_private_pem(key, key_path, &e) != PV_OK) {
        fail_msg("%s", pv_err_msg(&e));
    }
    free(key_path);

    if (leaf_key != NULL) {
        *leaf_key = pv_key_ref(key);
    }
    if (leaf_chain != NULL) {
        *leaf_chain = pv_chain_new();
        assert_non_null(*leaf_chain);
        assert_int_equal(pv_chain_add(*leaf_chain, leaf), PV_OK);
        assert_int_equal(pv_chain_add(*leaf_chain, inter), PV_OK);
    }
    if (anchor != NULL) {
        *anchor = pv_trust_new();
        assert_non_null(*anchor);
        assert_int_equal(pv_trust_add(*anchor, root), PV_OK);
    }
    pv_cert_free(leaf);
    pv_cert_free(inter);
    pv_cert_free(root);
    pv_key_free(key);
    pv_key_free(int_key);
    pv_key_free(root_key);
}

/* Parses hex (spaces ignored) into a new allocation. */
uint8_t *tu_unhex(const char *hex, size_t *len)
{
    char *digits = malloc(strlen(hex) + 1);
    uint8_t *out = malloc(strlen(hex) / 2 + 1);
    size_t n = 0;
    assert_non_null(digits);
    assert_non_null(out);
    for (const char *s = hex; *s != '\0'; s++) {
        if (*s != ' ') {
            digits[n++] = *s;
        }
    }
    digits[n] = '\0';
    assert_int_equal(n % 2, 0);
    assert_int_equal(pv_hex_decode(digits, out, n / 2), PV_OK);
    free(digits);
    *len = n / 2;
    return out;
}

/* Runs scripts/<script> dir and returns the first line it prints (NULL on failure). */
static char *run_script(const char *script, const char *dir)
{
    const char *src = getenv("PV_SOURCE_DIR");
    char *cmd = NULL;
    assert_non_null(src);
    assert_true(asprintf(&cmd, "'%s/scripts/%s' '%s'", src, script, dir) > 0);
    FILE *p = popen(cmd, "r");
    free(cmd);
    assert_non_null(p);
    char line[512];
    char *out = NULL;
    if (fgets(line, sizeof(line), p) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        out = strdup(line);
    }
    int status = pclose(p);
    if (status != 0) {
        free(out);
        return NULL;
    }
    return out != NULL ? out : strdup("");
}

char *tu_swtpm_start(const char *dir)
{
    char *tcti = run_script("swtpm-start", dir);
    if (tcti == NULL) {
        fail_msg("cannot start swtpm in %s", dir);
    }
    return tcti;
}

void tu_swtpm_stop(const char *dir)
{
    free(run_script("swtpm-stop", dir));
}

void tu_write_cert_for(const char *path, const uint8_t *spki, size_t spki_len)
{
    const unsigned char *p = spki;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, (long)spki_len);
    EVP_PKEY *issuer = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    if (pub == NULL || issuer == NULL || x == NULL || name == NULL ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"test", -1, -1,
                                   0) != 1 ||
        X509_set_version(x, 2) != 1 || ASN1_INTEGER_set(X509_get_serialNumber(x), 1) != 1 ||
        X509_set_subject_name(x, name) != 1 || X509_set_issuer_name(x, name) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(x), 0) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), 3600) == NULL || X509_set_pubkey(x, pub) != 1 ||
        X509_sign(x, issuer, EVP_sha256()) <= 0) {
        fprintf(stderr, "tu_write_cert_for: cannot make the certificate\n");
        abort();
    }
    FILE *f = fopen(path, "w");
    if (f == NULL || PEM_write_X509(f, x) != 1 || fclose(f) != 0) {
        fprintf(stderr, "tu_write_cert_for: cannot write %s\n", path);
        abort();
    }
    X509_NAME_free(name);
    X509_free(x);
    EVP_PKEY_free(issuer);
    EVP_PKEY_free(pub);
}
