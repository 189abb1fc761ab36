/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tenant CAs: the key-encryption key, sealing, and the CA rows (tenant_ca.h).
 *
 * The certificates themselves are made by pv_cert_create (src/lib/x509.c), which sets
 * the extensions both kinds need and the caller's own (the attestation extension of
 * client certificates), and signs once.
 */
#include "tenant_ca.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pavise/fs.h"
#include "pavise/uuid.h"

#define DAY           INT64_C(86400)
#define CA_LIFETIME   ((int64_t)TENANT_CA_YEARS * 365 * DAY + 2 * DAY) /* 5 years with leap days */
#define CA_SUBJECT    "CN=Pavise tenant "
#define PKCS8_MAX     512  /* a P-256 PKCS#8 DER is about 140 bytes */
#define EXT_MAX       4096 /* bytes of a caller's extension value */
#define LIST_ALL      100000
#define SEAL_OVERHEAD (1 + TENANT_CA_IV_LEN + TENANT_CA_TAG_LEN)

/* The columns every CA read selects, in this order (row_info reads them). */
#define CA_COLUMNS                                                                                 \
    "id, fingerprint, cert_pem, status, not_before, not_after, created_at, retire_after"

/* ---- the key-encryption key ---- */

/* Reads an existing KEK file through its descriptor, so the checks and the read concern
 * the same file. */
static int kek_read(const char *path, uint8_t kek[TENANT_CA_KEK_LEN], pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    struct stat st;
    uint8_t extra = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);

    if (fd < 0) {
        return pv_err_sys(e, errno == ENOENT ? PV_ERR_NOT_FOUND : PV_ERR_IO, errno, "%s", path);
    }
    if (fstat(fd, &st) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", path);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        r = pv_err_set(e, PV_ERR_UNSAFE, "%s is not a regular file", path);
        goto out;
    }
    /* OpenSSH's rule for private keys: one that others could have read may already be
     * someone else's. */
    if ((st.st_mode & 077) != 0) {
        r = pv_err_set(e, PV_ERR_UNSAFE,
                       "%s has mode %04o: a key must not be accessible to group or others "
                       "(chmod 600 %s)",
                       path, (unsigned)(st.st_mode & 07777), path);
        goto out;
    }
    if (st.st_uid != geteuid()) {
        r = pv_err_set(e, PV_ERR_UNSAFE, "%s is owned by uid %u, not by this user (%u)", path,
                       (unsigned)st.st_uid, (unsigned)geteuid());
        goto out;
    }
    if (st.st_size != TENANT_CA_KEK_LEN) {
        r = pv_err_set(e, PV_ERR_FORMAT, "%s holds %lld bytes, not a %d-byte key", path,
                       (long long)st.st_size, TENANT_CA_KEK_LEN);
        goto out;
    }
    r = pv_fs_pread_all(fd, kek, TENANT_CA_KEK_LEN, 0);
    if (r == PV_OK && pread(fd, &extra, 1, TENANT_CA_KEK_LEN) != 0) {
        r = PV_ERR_FORMAT; /* it grew after fstat */
    }
    if (r != PV_OK) {
        pv_wipe(kek, TENANT_CA_KEK_LEN);
        r = pv_err_set(e, r == PV_ERR_IO ? PV_ERR_IO : PV_ERR_FORMAT,
                       "%s: cannot read exactly %d bytes", path, TENANT_CA_KEK_LEN);
        goto out;
    }
    r = PV_OK;
out:
    close(fd);
    return r;
}

int tenant_ca_kek_load(const char *data_dir, uint8_t kek[TENANT_CA_KEK_LEN], bool *created,
                       pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    char path[PATH_MAX];
    uint8_t fresh[TENANT_CA_KEK_LEN];

    memset(kek, 0, TENANT_CA_KEK_LEN);
    if (created != NULL) {
        *created = false;
    }
    int n =
        snprintf(path, sizeof(path), "%s/%s", data_dir != NULL ? data_dir : "", TENANT_CA_KEK_FILE);
    if (data_dir == NULL || n < 0 || (size_t)n >= sizeof(path)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "data directory path is missing or too long");
    }
    r = kek_read(path, kek, e);
    if (r != PV_ERR_NOT_FOUND) {
        return r;
    }
    pv_err_clear(e);
    /* A data directory made before tenant CAs existed: make the key now. The write is
     * atomic and never replaces a file, so of two processes racing here one writes and
     * the other gets PV_ERR_EXISTS and reads the winner's complete file. */
    if (pv_random_bytes(fresh, sizeof(fresh)) != PV_OK) {
        r = pv_err_set(e, PV_ERR_CRYPTO, "%s: random number generator failed", path);
        goto out;
    }
    r = pv_fs_write_file(path, fresh, sizeof(fresh), 0600, false, e);
    if (r == PV_ERR_EXISTS) {
        pv_err_clear(e);
        r = kek_read(path, kek, e);
        goto out;
    }
    if (r != PV_OK) {
        pv_err_wrap(e, r, "creating the tenant CA key-encryption key");
        goto out;
    }
    memcpy(kek, fresh, TENANT_CA_KEK_LEN);
    if (created != NULL) {
        *created = true;
    }
    r = PV_OK;
out:
    pv_wipe(fresh, sizeof(fresh));
    return r;
}

/* ---- sealing ---- */

int tenant_ca_seal(const uint8_t kek[TENANT_CA_KEK_LEN], const char *ca_id, const uint8_t *plain,
                   size_t plain_len, pv_buf *out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    EVP_CIPHER_CTX *ctx = NULL;
    uint8_t iv[TENANT_CA_IV_LEN];
    uint8_t *p = NULL;
    int n = 0, fin = 0;

    if (kek == NULL || ca_id == NULL || plain == NULL || plain_len == 0 || out == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "seal: nothing to seal, or no key or row ID");
    }
    if (plain_len > TENANT_CA_SEALED_MAX - SEAL_OVERHEAD) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "seal: %zu bytes is more than a CA key", plain_len);
    }
    if (pv_random_bytes(iv, sizeof(iv)) != PV_OK) {
        return pv_err_set(e, PV_ERR_CRYPTO, "seal: random number generator failed");
    }
    r = pv_buf_reserve(out, SEAL_OVERHEAD + plain_len, &p);
    if (r != PV_OK) {
        return pv_err_set(e, r, "seal: no room for the sealed key");
    }
    p[0] = TENANT_CA_SEAL_VERSION;
    memcpy(p + 1, iv, sizeof(iv));
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL || EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, TENANT_CA_IV_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx, NULL, NULL, kek, iv) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n, (const uint8_t *)ca_id, (int)strlen(ca_id)) != 1 ||
        EVP_EncryptUpdate(ctx, p + 1 + TENANT_CA_IV_LEN, &n, plain, (int)plain_len) != 1 ||
        EVP_EncryptFinal_ex(ctx, p + 1 + TENANT_CA_IV_LEN + n, &fin) != 1 ||
        (size_t)n + (size_t)fin != plain_len ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TENANT_CA_TAG_LEN,
                            p + 1 + TENANT_CA_IV_LEN + plain_len) != 1) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "seal: AES-256-GCM failed");
        goto out;
    }
    pv_buf_commit(out, SEAL_OVERHEAD + plain_len);
    r = PV_OK;
out:
    EVP_CIPHER_CTX_free(ctx);
    return r;
}

int tenant_ca_unseal(const uint8_t kek[TENANT_CA_KEK_LEN], const char *ca_id, const uint8_t *sealed,
                     size_t sealed_len, pv_buf *out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    EVP_CIPHER_CTX *ctx = NULL;
    uint8_t *p = NULL;
    int n = 0, fin = 0;
    uint8_t tag[TENANT_CA_TAG_LEN];

    if (kek == NULL || ca_id == NULL || sealed == NULL || out == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "unseal: no sealed key, key or row ID");
    }
    if (sealed_len < SEAL_OVERHEAD + 1) {
        return pv_err_set(e, PV_ERR_TRUNCATED, "sealed CA key: %zu bytes is too short", sealed_len);
    }
    if (sealed_len > TENANT_CA_SEALED_MAX) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "sealed CA key: %zu bytes is more than %d",
                          sealed_len, TENANT_CA_SEALED_MAX);
    }
    if (sealed[0] != TENANT_CA_SEAL_VERSION) {
        return pv_err_set(e, PV_ERR_UNSUPPORTED, "sealed CA key: version %u is not %d",
                          (unsigned)sealed[0], TENANT_CA_SEAL_VERSION);
    }
    size_t clen = sealed_len - SEAL_OVERHEAD;
    const uint8_t *iv = sealed + 1;
    const uint8_t *ct = iv + TENANT_CA_IV_LEN;
    memcpy(tag, ct + clen, sizeof(tag)); /* the ctrl takes a non-const pointer */
    pv_buf_set_secret(out);
    r = pv_buf_reserve(out, clen, &p);
    if (r != PV_OK) {
        return pv_err_set(e, r, "unseal: no room for the key");
    }
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL || EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, TENANT_CA_IV_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, kek, iv) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &n, (const uint8_t *)ca_id, (int)strlen(ca_id)) != 1 ||
        EVP_DecryptUpdate(ctx, p, &n, ct, (int)clen) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TENANT_CA_TAG_LEN, tag) != 1) {
        r = pv_err_ssl(e, PV_ERR_CRYPTO, "unseal: AES-256-GCM failed");
        goto out;
    }
    if (EVP_DecryptFinal_ex(ctx, p + n, &fin) != 1 || (size_t)n + (size_t)fin != clen) {
        ERR_clear_error();
        r = pv_err_set(e, PV_ERR_SIGNATURE,
                       "sealed key of tenant CA %.36s does not open: it was changed, belongs to "
                       "another row, or was sealed under another key-encryption key",
                       ca_id);
        goto out;
    }
    pv_buf_commit(out, clen);
    r = PV_OK;
out:
    if (r != PV_OK && p != NULL) {
        pv_wipe(p, clen); /* whatever was decrypted before the tag failed */
    }
    EVP_CIPHER_CTX_free(ctx);
    return r;
}

/* ---- keys and certificates ---- */

/* The private key as PKCS#8 DER into out (a secret buffer). */
static int key_to_pkcs8(const pv_key *k, pv_buf *out, pv_err *e)
{
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pv_key_evp(k));
    unsigned char *der = NULL;
    int n = p8 != NULL ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
    int r = PV_OK;
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (n <= 0) {
        return pv_err_ssl(e, PV_ERR_CRYPTO, "encoding the CA key");
    }
    pv_buf_set_secret(out);
    r = pv_buf_append(out, der, (size_t)n);
    OPENSSL_clear_free(der, (size_t)n);
    return r == PV_OK ? PV_OK : pv_err_set(e, r, "encoding the CA key");
}

static int key_from_pkcs8(const uint8_t *der, size_t len, pv_key **out, pv_err *e)
{
    const unsigned char *p = der;
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    EVP_PKEY *pk = NULL;
    int r = PV_ERR_INTERNAL;

    *out = NULL;
    if (len == 0 || len > PKCS8_MAX) {
        return pv_err_set(e, PV_ERR_FORMAT, "the CA key is not a P-256 PKCS#8 key");
    }
    p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
    if (p8 == NULL || p != der + len || (pk = EVP_PKCS82PKEY(p8)) == NULL) {
        r = pv_err_ssl(e, PV_ERR_FORMAT, "the CA key is not a PKCS#8 key");
        goto out;
    }
    r = pv_key_from_evp(pk, out, e); /* refuses anything but P-256 */
out:
    EVP_PKEY_free(pk);
    PKCS8_PRIV_KEY_INFO_free(p8);
    return r;
}

/* One PEM certificate from a database row. */
static int cert_from_pem(const char *pem, pv_cert **out, pv_err *e)
{
    BIO *bio = NULL;
    X509 *x = NULL;
    unsigned char *der = NULL;
    int r = PV_ERR_INTERNAL;

    *out = NULL;
    size_t len = pem != NULL ? strlen(pem) : 0;
    if (len == 0 || len > PV_PEM_MAX_FILE) {
        return pv_err_set(e, PV_ERR_FORMAT, "a stored CA certificate is empty or too large");
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    x = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    int n = x != NULL ? i2d_X509(x, &der) : -1;
    if (n <= 0) {
        r = pv_err_ssl(e, PV_ERR_FORMAT, "a stored CA certificate is not PEM");
        goto out;
    }
    r = pv_cert_from_der(der, (size_t)n, out, e);
out:
    OPENSSL_free(der);
    X509_free(x);
    BIO_free(bio);
    return r;
}

/* The certificate as PEM text (malloc'd, NUL-terminated). */
static int cert_to_pem(pv_cert *c, char **out, pv_err *e)
{
    pv_chain *ch = pv_chain_new();
    pv_buf *b = pv_buf_new(PV_PEM_MAX_FILE);
    size_t len = 0;
    int r = PV_ERR_NOMEM;

    *out = NULL;
    if (ch != NULL && b != NULL && pv_chain_add(ch, c) == PV_OK &&
        pv_chain_to_pem(ch, b) == PV_OK && pv_buf_append_u8(b, 0) == PV_OK) {
        *out = (char *)pv_buf_steal(b, &len);
        r = *out != NULL ? PV_OK : PV_ERR_NOMEM;
    }
    if (r != PV_OK) {
        pv_err_set(e, r, "encoding a certificate as PEM");
    }
    pv_buf_free(b);
    pv_chain_free(ch);
    return r;
}

static void fingerprint_hex(const pv_cert *c, char out[2 * PV_SHA256_LEN + 1])
{
    uint8_t fp[PV_SHA256_LEN];
    pv_cert_fingerprint(c, fp);
    pv_hex_encode(fp, sizeof(fp), out, 2 * PV_SHA256_LEN + 1);
}

/* Tenant IDs are lowercase UUIDs (the API checks them); here only what a subject and a
 * query need: 36 of [0-9a-f-]. */
static bool valid_tenant_id(const char *s)
{
    return s != NULL && strnlen(s, 37) == 36 && strspn(s, "0123456789abcdef-") == 36;
}

bool tenant_ca_valid_code(const char *code)
{
    static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-";
    size_t n = code != NULL ? strnlen(code, TENANT_CA_CODE_MAX + 1) : 0;
    return n >= 1 && n <= TENANT_CA_CODE_MAX && strspn(code, ok) == n;
}

/* ---- rows ---- */

void tenant_ca_info_clear(tenant_ca_info *ca)
{
    if (ca == NULL) {
        return;
    }
    free(ca->cert_pem);
    memset(ca, 0, sizeof(*ca));
}

static const char *effective_status(const char *status, bool has_retire, int64_t retire_after,
                                    int64_t now)
{
    if (strcmp(status, "retiring") == 0 && has_retire && retire_after <= now) {
        return "retired";
    }
    return status;
}

/* Fills out from row i of a CA_COLUMNS query. */
static int row_info(const store_rows *rows, size_t i, int64_t now, tenant_ca_info *out, pv_err *e)
{
    pv_cert *cert = NULL;
    const char *id = store_rows_text(rows, i, 0);
    const char *fp = store_rows_text(rows, i, 1);
    const char *status = store_rows_text(rows, i, 3);
    int r = PV_ERR_INTERNAL;

    memset(out, 0, sizeof(*out));
    if (id == NULL || fp == NULL || status == NULL || strlen(id) >= sizeof(out->id) ||
        strlen(fp) >= sizeof(out->fingerprint)) {
        return pv_err_set(e, PV_ERR_FORMAT, "a stored tenant CA row is damaged");
    }
    r = cert_from_pem(store_rows_text(rows, i, 2), &cert, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "tenant CA %.36s", id);
    }
    snprintf(out->id, sizeof(out->id), "%s", id);
    snprintf(out->fingerprint, sizeof(out->fingerprint), "%s", fp);
    pv_cert_subject(cert, out->subject, sizeof(out->subject));
    bool has_retire = !store_rows_is_null(rows, i, 7);
    out->retire_after = has_retire ? store_rows_int(rows, i, 7) : 0;
    snprintf(out->status, sizeof(out->status), "%s",
             effective_status(status, has_retire, out->retire_after, now));
    out->not_before = store_rows_int(rows, i, 4);
    out->not_after = store_rows_int(rows, i, 5);
    out->created_at = store_rows_int(rows, i, 6);
    out->cert_pem = strdup(store_rows_text(rows, i, 2));
    pv_cert_free(cert);
    if (out->cert_pem == NULL) {
        memset(out, 0, sizeof(*out));
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    return PV_OK;
}

void tenant_ca_key(const tenant_ca_info *ca, char out[64])
{
    snprintf(out, 64, "%020lld.%s", (long long)(ca->created_at < 0 ? 0 : ca->created_at), ca->id);
}

/* Parses a list key (tenant_ca_key) back; PV_ERR_FORMAT. */
static int parse_key(const char *key, int64_t *created_at, char id[37])
{
    int64_t v = 0;
    if (strnlen(key, 64) != 20 + 1 + 36 || key[20] != '.' || strspn(key, "0123456789") != 20 ||
        !valid_tenant_id(key + 21)) {
        return PV_ERR_FORMAT;
    }
    for (size_t i = 0; i < 20; i++) {
        if (v > (INT64_MAX - (key[i] - '0')) / 10) {
            return PV_ERR_FORMAT;
        }
        v = v * 10 + (key[i] - '0');
    }
    *created_at = v;
    memcpy(id, key + 21, 37);
    return PV_OK;
}

/* ---- creation and rotation ---- */

int tenant_ca_create(store *db, const uint8_t kek[TENANT_CA_KEK_LEN], const char *tenant_id,
                     int64_t now, tenant_ca_info *out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    pv_key *key = NULL;
    pv_cert *cert = NULL;
    pv_buf *plain = pv_buf_new(PKCS8_MAX);
    pv_buf *sealed = pv_buf_new(TENANT_CA_SEALED_MAX);
    char *pem = NULL;
    char id[PV_UUID_STR_LEN];
    char subject[sizeof(CA_SUBJECT) + 36];
    char fp[2 * PV_SHA256_LEN + 1];
    uint8_t u[PV_UUID_LEN];

    if (out != NULL) {
        memset(out, 0, sizeof(*out));
    }
    if (plain == NULL || sealed == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (db == NULL || kek == NULL || !valid_tenant_id(tenant_id)) {
        r = pv_err_set(e, PV_ERR_INVALID_ARG, "tenant CA: no database, key or tenant ID");
        goto out;
    }
    if (pv_uuid_generate(u) != PV_OK) {
        r = pv_err_set(e, PV_ERR_CRYPTO, "tenant CA: random number generator failed");
        goto out;
    }
    pv_uuid_format(u, id);
    snprintf(subject, sizeof(subject), "%s%s", CA_SUBJECT, tenant_id);
    pv_cert_params p = {
        .subject = subject,
        .not_before = now - TENANT_CA_CLOCK_SKEW,
        .not_after = now + CA_LIFETIME,
        .is_ca = true,
        .path_len = 0, /* it signs leaves only */
    };
    if ((r = pv_key_generate(&key, e)) != PV_OK ||
        (r = pv_cert_create(&p, key, NULL, NULL, &cert, e)) != PV_OK ||
        (r = key_to_pkcs8(key, plain, e)) != PV_OK ||
        (r = tenant_ca_seal(kek, id, pv_buf_data(plain), pv_buf_len(plain), sealed, e)) != PV_OK ||
        (r = cert_to_pem(cert, &pem, e)) != PV_OK) {
        pv_err_wrap(e, r, "creating the CA of tenant %s", tenant_id);
        goto out;
    }
    fingerprint_hex(cert, fp);
    int64_t nb = 0, na = 0;
    if (pv_cert_validity(cert, &nb, &na) != PV_OK) {
        r = pv_err_set(e, PV_ERR_CRYPTO, "reading back the tenant CA's validity");
        goto out;
    }
    store_val v[] = {SV_TEXT(id),
                     SV_TEXT(tenant_id),
                     SV_TEXT(fp),
                     SV_TEXT(pem),
                     SV_BLOB(pv_buf_data(sealed), pv_buf_len(sealed)),
                     SV_INT(nb),
                     SV_INT(na),
                     SV_INT(now)};
    r = store_exec(db,
                   "INSERT INTO tenant_cas (id, tenant_id, fingerprint, cert_pem, key_sealed, "
                   "status, not_before, not_after, created_at, retire_after) "
                   "VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8, NULL)",
                   v, sizeof(v) / sizeof(v[0]), NULL, NULL, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "storing the CA of tenant %s", tenant_id);
        goto out;
    }
    if (out != NULL) {
        snprintf(out->id, sizeof(out->id), "%s", id);
        snprintf(out->fingerprint, sizeof(out->fingerprint), "%s", fp);
        pv_cert_subject(cert, out->subject, sizeof(out->subject));
        snprintf(out->status, sizeof(out->status), "active");
        out->not_before = nb;
        out->not_after = na;
        out->created_at = now;
        out->cert_pem = pem;
        pem = NULL;
    }
    r = PV_OK;
out:
    free(pem);
    pv_buf_free(sealed);
    pv_buf_free(plain); /* secret: wiped */
    pv_cert_free(cert);
    pv_key_free(key); /* wiped with the last reference */
    return r;
}

int tenant_ca_rotate(store *db, const uint8_t kek[TENANT_CA_KEK_LEN], const char *tenant_id,
                     int64_t now, int64_t overlap, tenant_ca_info *out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    int64_t changes = 0;
    store_rows *rows = NULL;

    if (out != NULL) {
        memset(out, 0, sizeof(*out));
    }
    if (db == NULL || !valid_tenant_id(tenant_id) || overlap < 0) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "rotation: no database, tenant ID or overlap");
    }
    /* The lock: a row lock on PostgreSQL until commit; SQLite's write transactions are
     * serial anyway. It also tells whether the tenant exists. */
    store_val pt[] = {SV_TEXT(tenant_id)};
    r = store_exec(db, "UPDATE tenants SET name = name WHERE id = $1", pt, 1, NULL, &changes, e);
    if (r != PV_OK) {
        goto out;
    }
    if (changes != 1) {
        r = pv_err_set(e, PV_ERR_NOT_FOUND, "tenant %s not found", tenant_id);
        goto out;
    }
    store_val pn[] = {SV_TEXT(tenant_id), SV_INT(now)};
    r = store_exec(db,
                   "UPDATE tenant_cas SET status = 'retired' WHERE tenant_id = $1 AND "
                   "status = 'retiring' AND retire_after <= $2",
                   pn, 2, NULL, NULL, e);
    if (r == PV_OK) {
        r = store_exec(db,
                       "SELECT COUNT(*) FROM tenant_cas WHERE tenant_id = $1 AND status <> "
                       "'retired'",
                       pt, 1, &rows, NULL, e);
    }
    if (r != PV_OK) {
        goto out;
    }
    /* The chain holds every CA not yet retired and must stay installable. */
    if (store_rows_int(rows, 0, 0) >= TENANT_CA_MAX_CHAIN) {
        r = pv_err_set(e, PV_ERR_TOO_LARGE,
                       "tenant %s already has %d CAs in its chain; rotate again once the oldest "
                       "retiring one is retired",
                       tenant_id, TENANT_CA_MAX_CHAIN);
        goto out;
    }
    store_val pr[] = {SV_TEXT(tenant_id), SV_INT(now + overlap)};
    r = store_exec(db,
                   "UPDATE tenant_cas SET status = 'retiring', retire_after = $2 "
                   "WHERE tenant_id = $1 AND status = 'active'",
                   pr, 2, NULL, NULL, e);
    if (r == PV_OK) {
        r = tenant_ca_create(db, kek, tenant_id, now, out, e);
    }
out:
    store_rows_free(rows);
    return r;
}

int tenant_ca_ensure_all(store *db, const uint8_t kek[TENANT_CA_KEK_LEN], int64_t now,
                         size_t *created, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    store_rows *rows = NULL;
    size_t made = 0;

    if (created != NULL) {
        *created = 0;
    }
    static const char *const missing =
        "SELECT t.id FROM tenants t WHERE NOT EXISTS "
        "(SELECT 1 FROM tenant_cas c WHERE c.tenant_id = t.id) ORDER BY t.id";
    r = store_exec(db, missing, NULL, 0, &rows, NULL, e);
    if (r != PV_OK) {
        goto out;
    }
    for (size_t i = 0; i < store_rows_count(rows); i++) {
        const char *tid = store_rows_text(rows, i, 0);
        store_rows *again = NULL;
        int64_t changes = 0;
        store_val p[] = {SV_TEXT(tid)};
        r = store_begin(db, true, e);
        /* Under the tenant's lock, look again: another replica may have just done it. */
        if (r == PV_OK) {
            r = store_exec(db, "UPDATE tenants SET name = name WHERE id = $1", p, 1, NULL, &changes,
                           e);
        }
        if (r == PV_OK) {
            r = store_exec(db, "SELECT COUNT(*) FROM tenant_cas WHERE tenant_id = $1", p, 1, &again,
                           NULL, e);
        }
        if (r == PV_OK && changes == 1 && store_rows_int(again, 0, 0) == 0) {
            r = tenant_ca_create(db, kek, tid, now, NULL, e);
            made += r == PV_OK ? 1 : 0;
        }
        store_rows_free(again);
        if (r == PV_OK) {
            r = store_commit(db, e);
        }
        if (r != PV_OK) {
            store_rollback(db);
            pv_err_wrap(e, r, "giving tenant %s its CA", tid);
            goto out;
        }
    }
    r = PV_OK;
out:
    if (created != NULL) {
        *created = made;
    }
    store_rows_free(rows);
    return r;
}

/* ---- reads ---- */

int tenant_ca_list(store *db, const char *tenant_id, int64_t now, const char *after, size_t limit,
                   tenant_ca_info **out, size_t *count, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    store_rows *rows = NULL;
    tenant_ca_info *list = NULL;
    int64_t after_at = -1;
    char after_id[37] = "";
    size_t n = 0;

    *out = NULL;
    *count = 0;
    if (db == NULL || !valid_tenant_id(tenant_id)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "tenant CAs: no database or tenant ID");
    }
    if (after != NULL && after[0] != '\0' && parse_key(after, &after_at, after_id) != PV_OK) {
        return pv_err_set(e, PV_ERR_FORMAT, "not a tenant CA list key");
    }
    store_val p[] = {SV_TEXT(tenant_id), SV_INT(after_at), SV_TEXT(after_id),
                     SV_INT(limit == 0 || limit > LIST_ALL ? LIST_ALL : limit)};
    r = store_exec(db,
                   "SELECT " CA_COLUMNS " FROM tenant_cas WHERE tenant_id = $1 AND "
                   "(created_at > $2 OR (created_at = $2 AND id > $3)) "
                   "ORDER BY created_at, id LIMIT $4",
                   p, 4, &rows, NULL, e);
    if (r != PV_OK) {
        goto out;
    }
    n = store_rows_count(rows);
    list = calloc(n > 0 ? n : 1, sizeof(*list));
    if (list == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        r = row_info(rows, i, now, &list[i], e);
        if (r != PV_OK) {
            goto out;
        }
    }
    *out = list;
    *count = n;
    list = NULL;
    r = PV_OK;
out:
    for (size_t i = 0; list != NULL && i < n; i++) {
        tenant_ca_info_clear(&list[i]);
    }
    free(list);
    store_rows_free(rows);
    return r;
}

int tenant_ca_get(store *db, const char *tenant_id, const char *ca_id, int64_t now,
                  tenant_ca_info *out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    store_rows *rows = NULL;

    memset(out, 0, sizeof(*out));
    if (db == NULL || !valid_tenant_id(tenant_id) || ca_id == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "tenant CA: no database, tenant or CA ID");
    }
    store_val p[] = {SV_TEXT(tenant_id), SV_TEXT(ca_id)};
    r = store_exec(db, "SELECT " CA_COLUMNS " FROM tenant_cas WHERE tenant_id = $1 AND id = $2", p,
                   2, &rows, NULL, e);
    if (r == PV_OK && store_rows_count(rows) != 1) {
        r = pv_err_set(e, PV_ERR_NOT_FOUND, "CA certificate %.36s not found", ca_id);
    }
    if (r == PV_OK) {
        r = row_info(rows, 0, now, out, e);
    }
    store_rows_free(rows);
    return r;
}

int tenant_ca_chain(store *db, const char *tenant_id, int64_t now, pv_chain **out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    store_rows *rows = NULL;
    pv_chain *ch = NULL;

    *out = NULL;
    if (db == NULL || !valid_tenant_id(tenant_id)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "tenant CA chain: no database or tenant ID");
    }
    store_val p[] = {SV_TEXT(tenant_id), SV_INT(now), SV_INT(TENANT_CA_MAX_CHAIN)};
    r = store_exec(db,
                   "SELECT cert_pem FROM tenant_cas WHERE tenant_id = $1 AND "
                   "(status = 'active' OR (status = 'retiring' AND retire_after > $2)) "
                   "ORDER BY CASE WHEN status = 'active' THEN 0 ELSE 1 END, created_at DESC, "
                   "id DESC LIMIT $3",
                   p, 3, &rows, NULL, e);
    if (r != PV_OK) {
        goto out;
    }
    if (store_rows_count(rows) == 0) {
        r = pv_err_set(e, PV_ERR_NOT_FOUND, "tenant %s has no CA", tenant_id);
        goto out;
    }
    ch = pv_chain_new();
    if (ch == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < store_rows_count(rows); i++) {
        pv_cert *c = NULL;
        r = cert_from_pem(store_rows_text(rows, i, 0), &c, e);
        if (r == PV_OK) {
            r = pv_chain_add(ch, c);
            pv_cert_free(c); /* the chain holds its own reference */
        }
        if (r != PV_OK) {
            pv_err_wrap(e, r, "tenant %s's CA chain", tenant_id);
            goto out;
        }
    }
    *out = ch;
    ch = NULL;
    r = PV_OK;
out:
    pv_chain_free(ch);
    store_rows_free(rows);
    return r;
}

/* ---- issuing ---- */

void tenant_ca_issued_clear(tenant_ca_issued *iss)
{
    if (iss == NULL) {
        return;
    }
    pv_cert_free(iss->cert);
    memset(iss, 0, sizeof(*iss));
}

/* A CA loaded to sign: its certificate and its unsealed key. */
typedef struct loaded_ca {
    char id[37];
    pv_cert *cert;
    pv_key *key;
    int64_t not_after;
    bool retired;
} loaded_ca;

static void loaded_ca_free(loaded_ca *l)
{
    pv_cert_free(l->cert);
    pv_key_free(l->key);
    memset(l, 0, sizeof(*l));
}

/* Loads the CA of a query's first row (id, cert_pem, key_sealed, not_after, status,
 * retire_after) and opens its key. */
static int load_row(const store_rows *rows, size_t i, const uint8_t kek[TENANT_CA_KEK_LEN],
                    int64_t now, loaded_ca *out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    pv_buf *plain = pv_buf_new(TENANT_CA_SEALED_MAX);
    pv_key *pub = NULL;
    size_t sealed_len = 0;
    const char *id = store_rows_text(rows, i, 0);
    const uint8_t *sealed = store_rows_blob(rows, i, 2, &sealed_len);

    memset(out, 0, sizeof(*out));
    if (plain == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    if (id == NULL || strlen(id) >= sizeof(out->id) || sealed == NULL) {
        r = pv_err_set(e, PV_ERR_FORMAT, "a stored tenant CA row is damaged");
        goto out;
    }
    snprintf(out->id, sizeof(out->id), "%s", id);
    out->not_after = store_rows_int(rows, i, 3);
    out->retired =
        strcmp(effective_status(store_rows_text(rows, i, 4) != NULL ? store_rows_text(rows, i, 4)
                                                                    : "retired",
                                !store_rows_is_null(rows, i, 5), store_rows_int(rows, i, 5), now),
               "retired") == 0;
    if ((r = cert_from_pem(store_rows_text(rows, i, 1), &out->cert, e)) != PV_OK ||
        (r = tenant_ca_unseal(kek, id, sealed, sealed_len, plain, e)) != PV_OK ||
        (r = key_from_pkcs8(pv_buf_data(plain), pv_buf_len(plain), &out->key, e)) != PV_OK ||
        (r = pv_cert_public_key(out->cert, &pub, e)) != PV_OK) {
        goto out;
    }
    if (!pv_key_equal_public(pub, out->key)) {
        r = pv_err_set(e, PV_ERR_FORMAT, "tenant CA %s: the key is not the certificate's", id);
        goto out;
    }
    r = PV_OK;
out:
    if (r != PV_OK) {
        loaded_ca_free(out);
    }
    pv_key_free(pub);
    pv_buf_free(plain); /* secret: wiped */
    return r;
}

#define LOAD_COLUMNS "id, cert_pem, key_sealed, not_after, status, retire_after"

/* ---- the per-thread cache of unsealed CA keys ----
 *
 * Issuing reads the active CA's row every time (so a rotation on any replica takes effect
 * at once), but the row's certificate and sealed key never change once written: a worker
 * that has opened them before keeps the parsed certificate and key, keyed by the row's
 * ID, the exact sealed bytes, the certificate text and the KEK, and skips the unseal and
 * both parses when all four match. Any difference (another row after a rotation, a
 * tampered blob, another data directory's KEK) misses and loads afresh, with every check.
 * Each worker thread has its own cache (no locks); it is freed when the thread exits. */

#define CACHE_SLOTS   8
#define CACHE_PEM_MAX 4096

typedef struct cache_slot {
    bool used;
    loaded_ca ca;
    uint8_t kek[TENANT_CA_KEK_LEN];
    uint8_t sealed[TENANT_CA_SEALED_MAX];
    size_t sealed_len;
    char pem[CACHE_PEM_MAX];
} cache_slot;

typedef struct ca_cache {
    cache_slot slot[CACHE_SLOTS];
    size_t next; /* the slot the next miss replaces (round robin) */
} ca_cache;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static bool cache_ok;

static void cache_slot_clear(cache_slot *s)
{
    loaded_ca_free(&s->ca);
    OPENSSL_cleanse(s, sizeof(*s));
}

static void cache_destroy(void *p)
{
    ca_cache *c = p;
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        cache_slot_clear(&c->slot[i]);
    }
    free(c);
}

static void cache_init(void)
{
    cache_ok = pthread_key_create(&cache_key, cache_destroy) == 0;
}

/* This thread's cache, or NULL (no memory: issuing works without it). */
static ca_cache *cache_get(void)
{
    if (pthread_once(&cache_once, cache_init) != 0 || !cache_ok) {
        return NULL;
    }
    ca_cache *c = pthread_getspecific(cache_key);
    if (c == NULL && (c = calloc(1, sizeof(*c))) != NULL &&
        pthread_setspecific(cache_key, c) != 0) {
        free(c);
        c = NULL;
    }
    return c;
}

void tenant_ca_cache_flush(void)
{
    ca_cache *c = cache_get();
    for (size_t i = 0; c != NULL && i < CACHE_SLOTS; i++) {
        cache_slot_clear(&c->slot[i]);
    }
}

static bool slot_matches(const cache_slot *s, const uint8_t kek[TENANT_CA_KEK_LEN], const char *id,
                         const uint8_t *sealed, size_t sealed_len, const char *pem, size_t pem_len)
{
    return s->used && strcmp(s->ca.id, id) == 0 && s->sealed_len == sealed_len &&
           memcmp(s->sealed, sealed, sealed_len) == 0 && strlen(s->pem) == pem_len &&
           memcmp(s->pem, pem, pem_len) == 0 && CRYPTO_memcmp(s->kek, kek, TENANT_CA_KEK_LEN) == 0;
}

/* A reference copy of a loaded CA (the cache keeps its own). */
static void loaded_ca_copy(const loaded_ca *from, loaded_ca *to)
{
    *to = *from;
    to->cert = pv_cert_ref(from->cert);
    to->key = pv_key_ref(from->key);
}

/* Loads the CA of a query's first row (LOAD_COLUMNS) through this thread's cache. */
static int load_row_cached(const store_rows *rows, size_t row, const uint8_t kek[TENANT_CA_KEK_LEN],
                           int64_t now, loaded_ca *out, pv_err *e)
{
    const char *id = store_rows_text(rows, row, 0);
    const char *pem = store_rows_text(rows, row, 1);
    size_t sealed_len = 0;
    const uint8_t *sealed = store_rows_blob(rows, row, 2, &sealed_len);
    ca_cache *c = cache_get();

    memset(out, 0, sizeof(*out));
    size_t pem_len = pem != NULL ? strlen(pem) : 0;
    bool cacheable = c != NULL && id != NULL && sealed != NULL &&
                     sealed_len <= TENANT_CA_SEALED_MAX && pem != NULL && pem_len < CACHE_PEM_MAX &&
                     strlen(id) < sizeof(out->id);
    for (size_t i = 0; cacheable && i < CACHE_SLOTS; i++) {
        cache_slot *s = &c->slot[i];
        if (slot_matches(s, kek, id, sealed, sealed_len, pem, pem_len)) {
            loaded_ca_copy(&s->ca, out);
            /* The status is the row's now, not what it was when cached. */
            out->not_after = store_rows_int(rows, row, 3);
            out->retired = strcmp(effective_status(store_rows_text(rows, row, 4) != NULL
                                                       ? store_rows_text(rows, row, 4)
                                                       : "retired",
                                                   !store_rows_is_null(rows, row, 5),
                                                   store_rows_int(rows, row, 5), now),
                                  "retired") == 0;
            return PV_OK;
        }
    }
    int r = load_row(rows, row, kek, now, out, e);
    if (r != PV_OK || !cacheable) {
        return r;
    }
    cache_slot *s = &c->slot[c->next];
    c->next = (c->next + 1) % CACHE_SLOTS;
    cache_slot_clear(s);
    loaded_ca_copy(out, &s->ca);
    memcpy(s->kek, kek, TENANT_CA_KEK_LEN);
    memcpy(s->sealed, sealed, sealed_len);
    s->sealed_len = sealed_len;
    memcpy(s->pem, pem, pem_len + 1);
    s->used = true;
    return PV_OK;
}

static int load_active(store *db, const uint8_t kek[TENANT_CA_KEK_LEN], const char *tenant_id,
                       int64_t now, loaded_ca *out, pv_err *e)
{
    store_rows *rows = NULL;
    store_val p[] = {SV_TEXT(tenant_id)};
    int r = store_exec(db,
                       "SELECT " LOAD_COLUMNS " FROM tenant_cas WHERE tenant_id = $1 AND "
                       "status = 'active' ORDER BY created_at DESC, id DESC LIMIT 1",
                       p, 1, &rows, NULL, e);
    if (r == PV_OK && store_rows_count(rows) == 0) {
        r = pv_err_set(e, PV_ERR_NOT_FOUND, "tenant %s has no active CA", tenant_id);
    }
    if (r == PV_OK) {
        r = load_row_cached(rows, 0, kek, now, out, e);
    }
    store_rows_free(rows);
    return r;
}

/* The tenant's active CA and, when chain is not NULL, its chain, in one query. */
static int load_with_chain(store *db, const uint8_t kek[TENANT_CA_KEK_LEN], const char *tenant_id,
                           int64_t now, loaded_ca *active, pv_chain **chain, pv_err *e)
{
    store_rows *rows = NULL;
    pv_chain *ch = NULL;
    loaded_ca one;
    int r = PV_ERR_INTERNAL;

    memset(&one, 0, sizeof(one));
    if (chain == NULL) {
        return load_active(db, kek, tenant_id, now, active, e);
    }
    *chain = NULL;
    store_val p[] = {SV_TEXT(tenant_id)};
    r = store_exec(db,
                   "SELECT " LOAD_COLUMNS " FROM tenant_cas WHERE tenant_id = $1 AND "
                   "status IN ('active', 'retiring') ORDER BY created_at DESC, id DESC",
                   p, 1, &rows, NULL, e);
    if (r != PV_OK) {
        goto out;
    }
    if ((ch = pv_chain_new()) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* The newest active row issues and leads the chain; the retiring rows follow, newest
     * first, unless their overlap has ended. */
    for (size_t i = 0; i < store_rows_count(rows); i++) {
        const char *status = store_rows_text(rows, i, 4);
        if (status != NULL && strcmp(status, "active") == 0 && active->cert == NULL) {
            if ((r = load_row_cached(rows, i, kek, now, active, e)) != PV_OK ||
                (r = pv_chain_add(ch, active->cert)) != PV_OK) {
                goto out;
            }
        }
    }
    if (active->cert == NULL) {
        r = pv_err_set(e, PV_ERR_NOT_FOUND, "tenant %s has no active CA", tenant_id);
        goto out;
    }
    for (size_t i = 0; i < store_rows_count(rows); i++) {
        const char *status = store_rows_text(rows, i, 4);
        if (status == NULL || strcmp(status, "retiring") != 0) {
            continue;
        }
        if ((r = load_row_cached(rows, i, kek, now, &one, e)) != PV_OK) {
            goto out;
        }
        if (!one.retired && (r = pv_chain_add(ch, one.cert)) != PV_OK) {
            pv_err_set(e, r, "tenant %s: too many CAs in the chain", tenant_id);
            goto out;
        }
        loaded_ca_free(&one);
    }
    *chain = ch;
    ch = NULL;
    r = PV_OK;
out:
    if (r != PV_OK) {
        loaded_ca_free(active);
    }
    loaded_ca_free(&one);
    pv_chain_free(ch);
    store_rows_free(rows);
    return r;
}

int tenant_ca_issue(store *db, const uint8_t kek[TENANT_CA_KEK_LEN], const char *tenant_id,
                    const pv_key *pub, const char *subject, int64_t now, int64_t lifetime,
                    const tenant_ca_ext *ext, tenant_ca_issued *out, pv_err *e)
{
    return tenant_ca_issue_chain(db, kek, tenant_id, pub, subject, now, lifetime, ext, out, NULL,
                                 e);
}

int tenant_ca_issue_chain(store *db, const uint8_t kek[TENANT_CA_KEK_LEN], const char *tenant_id,
                          const pv_key *pub, const char *subject, int64_t now, int64_t lifetime,
                          const tenant_ca_ext *ext, tenant_ca_issued *out, pv_chain **chain,
                          pv_err *e)
{
    pv_chain *ch = NULL;
    if (chain != NULL) {
        *chain = NULL;
    }
    int r = PV_ERR_INTERNAL;
    loaded_ca ca;
    pv_cert *cert = NULL;
    pv_cert_ext extra;

    memset(&ca, 0, sizeof(ca));
    memset(out, 0, sizeof(*out));
    if (db == NULL || kek == NULL || !valid_tenant_id(tenant_id) || pub == NULL ||
        subject == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "issue: no database, key, tenant, public key or "
                          "subject");
    }
    if (lifetime <= 0 || lifetime > CA_LIFETIME) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "issue: lifetime of %lld seconds is out of range",
                          (long long)lifetime);
    }
    if (ext != NULL &&
        (ext->oid == NULL || ext->der == NULL || ext->der_len == 0 || ext->der_len > EXT_MAX)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "issue: the extension needs an OID and 1 to %d "
                          "bytes of value",
                          EXT_MAX);
    }
    r = pv_cert_check_subject(subject, e);
    if (r != PV_OK) {
        r = pv_err_wrap(e, PV_ERR_INVALID_ARG, "issue");
        goto out;
    }
    r = load_with_chain(db, kek, tenant_id, now, &ca, chain != NULL ? &ch : NULL, e);
    if (r != PV_OK) {
        goto out;
    }
    if (ca.not_after < now + lifetime) {
        r = pv_err_set(e, PV_ERR_EXPIRED,
                       "the active CA of tenant %s expires before the certificate would; rotate "
                       "it (pavise ca-certificate rotate)",
                       tenant_id);
        goto out;
    }
    if (ext != NULL) {
        extra = (pv_cert_ext){ext->oid, ext->der, ext->der_len, ext->critical};
    }
    pv_cert_params p = {
        .subject = subject,
        .not_before = now - TENANT_CA_CLOCK_SKEW,
        .not_after = now + lifetime,
        .path_len = -1,
        .client_auth = true,
        .extra_ext = ext != NULL ? &extra : NULL,
    };
    /* One signature: the caller's extension is part of what pv_cert_create signs. */
    r = pv_cert_create(&p, pub, ca.cert, ca.key, &cert, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "issuing from the CA of tenant %s", tenant_id);
        goto out;
    }
    snprintf(out->ca_id, sizeof(out->ca_id), "%s", ca.id);
    pv_cert_serial_hex(cert, out->serial);
    fingerprint_hex(cert, out->fingerprint);
    (void)pv_cert_validity(cert, &out->not_before, &out->not_after);
    out->cert = cert;
    cert = NULL;
    if (chain != NULL) {
        *chain = ch;
        ch = NULL;
    }
    r = PV_OK;
out:
    pv_chain_free(ch);
    pv_cert_free(cert);
    loaded_ca_free(&ca);
    return r;
}

int tenant_ca_proof(store *db, const uint8_t kek[TENANT_CA_KEK_LEN], const char *tenant_id,
                    const char *ca_id, const char *code, int64_t now, char **out_pem, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    store_rows *rows = NULL;
    loaded_ca ca;
    pv_key *key = NULL;
    pv_cert *cert = NULL;
    char subject[4 + TENANT_CA_CODE_MAX];

    memset(&ca, 0, sizeof(ca));
    *out_pem = NULL;
    if (!tenant_ca_valid_code(code)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "verification code must be 1 to %d of A-Z a-z 0-9 -", TENANT_CA_CODE_MAX);
    }
    if (db == NULL || kek == NULL || !valid_tenant_id(tenant_id) || ca_id == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "proof: no database, key, tenant or CA ID");
    }
    store_val p[] = {SV_TEXT(tenant_id), SV_TEXT(ca_id)};
    r = store_exec(db, "SELECT " LOAD_COLUMNS " FROM tenant_cas WHERE tenant_id = $1 AND id = $2",
                   p, 2, &rows, NULL, e);
    if (r == PV_OK && store_rows_count(rows) != 1) {
        r = pv_err_set(e, PV_ERR_NOT_FOUND, "CA certificate %.36s not found", ca_id);
    }
    if (r == PV_OK) {
        r = load_row(rows, 0, kek, now, &ca, e);
    }
    if (r != PV_OK) {
        goto out;
    }
    if (ca.retired || ca.not_after <= now) {
        r = pv_err_set(e, PV_ERR_EXPIRED,
                       "CA certificate %s is retired or expired: a proof for it would prove "
                       "nothing a relying party should trust",
                       ca_id);
        goto out;
    }
    snprintf(subject, sizeof(subject), "CN=%s", code);
    pv_cert_params cp = {
        .subject = subject,
        .not_before = now - TENANT_CA_CLOCK_SKEW,
        .not_after = now + TENANT_CA_PROOF_TIME,
        .path_len = -1,
    };
    /* The certified key is thrown away: what the certificate proves is that the CA's
     * key signed it. */
    if ((r = pv_key_generate(&key, e)) != PV_OK ||
        (r = pv_cert_create(&cp, key, ca.cert, ca.key, &cert, e)) != PV_OK ||
        (r = cert_to_pem(cert, out_pem, e)) != PV_OK) {
        pv_err_wrap(e, r, "making the verification certificate");
        goto out;
    }
    r = PV_OK;
out:
    pv_cert_free(cert);
    pv_key_free(key);
    loaded_ca_free(&ca);
    store_rows_free(rows);
    return r;
}
