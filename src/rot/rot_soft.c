/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The software root of trust, for boards without a TPM (docs/rot.md). It keeps its keys,
 * counters, simulated PCR and trust anchor in files under state_dir/rot, so it protects
 * them only as well as the filesystem and the kernel do: it is the lower-assurance
 * backend, and says so through its kind.
 *
 * Files (all in state_dir/rot, which must be a directory owned by the effective uid with
 * no group or other access; every file likewise, and none may be a symbolic link):
 *   identity.key     the identity key, P-256, unencrypted PKCS#8 PEM, mode 0600
 *   attestation.key  the attestation key, the same
 *   counters         deterministic CBOR { 1: 1 (version), 2: [ uint x PV_ROT_COUNTERS ] },
 *                    mode 0600, replaced atomically on each advance
 *   pcr              deterministic CBOR { 1: 1 (version), 2: boot epoch (tstr, at most
 *                    64 bytes), 3: value (bstr 32) }, mode 0600, replaced atomically
 *   fuse             deterministic CBOR { 1: 1 (version), 2: trust anchor (bstr 32) },
 *                    mode 0400, created once and never replaced
 *   provisioned      deterministic CBOR { 1: 1 (version), 2: identity key ID (bstr 32),
 *                    3: attestation key ID (bstr 32) } (key ID: SHA-256 of the
 *                    SubjectPublicKeyInfo DER), mode 0600, written last by provisioning
 * Each CBOR file must be exactly the deterministic encoding of its contents (RFC 8949
 * §4.2.1); anything else (truncated, garbled, over-long, another version) is PV_ERR_ROT,
 * never a default value.
 *
 * Read-modify-write updates (counters, pcr) and provisioning hold an exclusive flock() on
 * the directory, so two processes advancing different counters cannot lose an update.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "pavise/cbor.h"
#include "pavise/fs.h"
#include "pavise/platform.h"
#include "rot_backend.h"

#define SOFT_VERSION   1
#define NAME_IDENTITY  "identity.key"
#define NAME_ATTEST    "attestation.key"
#define NAME_COUNTERS  "counters"
#define NAME_PCR       "pcr"
#define NAME_FUSE      "fuse"
#define NAME_MARKER    "provisioned"
#define KEY_FILE_MAX   16384 /* a P-256 PKCS#8 PEM is about 240 bytes */
#define STATE_FILE_MAX 256   /* the largest CBOR file (pcr) is at most 105 bytes */
#define EPOCH_MAX      64
#define EPOCH_PREFIX   "boot-"

struct rot_backend {
    char *dir;          /* state_dir/rot */
    int dirfd;          /* the same, opened without following a link, checked */
    pv_key *identity;   /* public half only: the private half is not needed after open */
    pv_key *attest;     /* private: signs */
    pv_key *attest_pub; /* public half only, what callers get */
};

typedef struct pcr_state {
    char epoch[EPOCH_MAX + 1];
    uint8_t value[PV_SHA256_LEN];
} pcr_state;

typedef struct marker_state {
    uint8_t identity_id[PV_KEY_ID_LEN];
    uint8_t attest_id[PV_KEY_ID_LEN];
} marker_state;

/* ---- files: opened relative to the checked directory, never through a link ---- */

/* OpenSSH's rule for private files: owned by us, no access for anyone else. */
static int check_owner_mode(const char *dir, const char *name, const struct stat *st, pv_err *e)
{
    if (st->st_uid != geteuid()) {
        return pv_err_set(e, PV_ERR_ROT, "%s%s%s is owned by uid %u, not by uid %u", dir,
                          name ? "/" : "", name ? name : "", (unsigned)st->st_uid,
                          (unsigned)geteuid());
    }
    if ((st->st_mode & 077) != 0) {
        return pv_err_set(e, PV_ERR_ROT,
                          "%s%s%s is accessible by group or others (mode %04o); the root of "
                          "trust's files must be private to their owner",
                          dir, name ? "/" : "", name ? name : "", (unsigned)(st->st_mode & 07777));
    }
    return PV_OK;
}

static int dir_open(const char *dir, int *out, pv_err *e)
{
    *out = -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ELOOP || errno == ENOTDIR) {
            return pv_err_set(e, PV_ERR_ROT, "%s is a symbolic link or not a directory", dir);
        }
        return pv_err_sys(e, PV_ERR_IO, errno, "%s", dir);
    }
    struct stat st;
    int r = PV_OK;
    if (fstat(fd, &st) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", dir);
    } else {
        r = check_owner_mode(dir, NULL, &st, e);
    }
    if (r != PV_OK) {
        close(fd);
        return r;
    }
    *out = fd;
    return PV_OK;
}

/* Every entry of the directory, not only the files this backend reads: a stray link or
 * a readable copy of a key is as much a sign of trouble as a bad mode on the key. */
static int dir_scan(const rot_backend *b, pv_err *e)
{
    int fd = openat(b->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s", b->dir);
    }
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int r = pv_err_sys(e, PV_ERR_IO, errno, "%s", b->dir);
        close(fd);
        return r;
    }
    int r = PV_OK;
    struct dirent *de;
    errno = 0;
    while (r == PV_OK && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        struct stat st;
        if (fstatat(b->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno != ENOENT) { /* gone since readdir: a writer's temporary file */
                r = pv_err_sys(e, PV_ERR_IO, errno, "%s/%s", b->dir, de->d_name);
            }
        } else if (S_ISLNK(st.st_mode)) {
            r = pv_err_set(e, PV_ERR_ROT, "%s/%s is a symbolic link", b->dir, de->d_name);
        } else {
            r = check_owner_mode(b->dir, de->d_name, &st, e);
        }
        errno = 0;
    }
    if (r == PV_OK && errno != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", b->dir);
    }
    closedir(d);
    return r;
}

/* Reads name (at most max bytes) from the directory. PV_ERR_NOT_FOUND when it is
 * missing; PV_ERR_ROT when it is a link, not a regular file, not private or too large. */
static int soft_read(const rot_backend *b, const char *name, size_t max, uint8_t **data,
                     size_t *len, pv_err *e)
{
    *data = NULL;
    *len = 0;
    int r = PV_ERR_INTERNAL;
    uint8_t *d = NULL;
    int fd = openat(b->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT) {
            return pv_err_set(e, PV_ERR_NOT_FOUND, "%s/%s is missing", b->dir, name);
        }
        if (errno == ELOOP) {
            return pv_err_set(e, PV_ERR_ROT, "%s/%s is a symbolic link", b->dir, name);
        }
        return pv_err_sys(e, PV_ERR_IO, errno, "%s/%s", b->dir, name);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s/%s", b->dir, name);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        r = pv_err_set(e, PV_ERR_ROT, "%s/%s is not a regular file", b->dir, name);
        goto out;
    }
    r = check_owner_mode(b->dir, name, &st, e);
    if (r != PV_OK) {
        goto out;
    }
    /* One byte more than allowed tells an over-long file from one of exactly max. */
    d = malloc(max + 1);
    if (d == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    size_t got = 0;
    while (got <= max) {
        ssize_t k = read(fd, d + got, max + 1 - got);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            r = pv_err_sys(e, PV_ERR_IO, errno, "%s/%s", b->dir, name);
            goto out;
        }
        if (k == 0) {
            break;
        }
        got += (size_t)k;
    }
    if (got > max) {
        r = pv_err_set(e, PV_ERR_ROT, "%s/%s is larger than %zu bytes", b->dir, name, max);
        goto out;
    }
    *data = d;
    *len = got;
    d = NULL;
    r = PV_OK;
out:
    if (d != NULL) {
        pv_wipe(d, max + 1); /* it may have held a key */
        free(d);
    }
    close(fd);
    return r;
}

static int soft_write(const rot_backend *b, const char *name, const pv_buf *data, mode_t mode,
                      bool overwrite, pv_err *e)
{
    char *path = NULL;
    if (asprintf(&path, "%s/%s", b->dir, name) < 0) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int r = pv_fs_write_file(path, pv_buf_data(data), pv_buf_len(data), mode, overwrite, e);
    free(path);
    return r;
}

static bool soft_exists(const rot_backend *b, const char *name)
{
    struct stat st;
    return fstatat(b->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static int soft_lock(const rot_backend *b, pv_err *e)
{
    while (flock(b->dirfd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            return pv_err_sys(e, PV_ERR_IO, errno, "%s: cannot lock", b->dir);
        }
    }
    return PV_OK;
}

static void soft_unlock(const rot_backend *b)
{
    flock(b->dirfd, LOCK_UN);
}

/* ---- the CBOR state files ---- */

/* Decodes a map whose keys are exactly 1..nkeys, key 1 holding SOFT_VERSION. */
static int state_decode(const uint8_t *data, size_t len, size_t nkeys, cbor_item_t **root,
                        pv_err *e)
{
    static const int64_t keys[] = {1, 2, 3};
    uint64_t version = 0;
    *root = NULL;
    cbor_item_t *it = NULL;
    int r = pv_cbor_decode(data, len, &it, e);
    if (r != PV_OK) {
        return r;
    }
    if (!cbor_isa_map(it) || cbor_map_size(it) != nkeys) {
        r = pv_err_set(e, PV_ERR_FORMAT, "not a map of %zu entries", nkeys);
        goto out;
    }
    r = pv_cbor_map_check_keys(it, keys, nkeys, e);
    if (r == PV_OK) {
        r = pv_cbor_get_uint(pv_cbor_map_get(it, 1), &version, e);
    }
    if (r == PV_OK && version != SOFT_VERSION) {
        r = pv_err_set(e, PV_ERR_UNSUPPORTED, "version %llu (this build reads version %d)",
                       (unsigned long long)version, SOFT_VERSION);
    }
    if (r == PV_OK) {
        *root = it;
        it = NULL;
    }
out:
    if (it != NULL) {
        cbor_decref(&it);
    }
    return r;
}

static int get_bytes32(const cbor_item_t *it, uint8_t out[32], pv_err *e)
{
    const uint8_t *p = NULL;
    size_t n = 0;
    int r = pv_cbor_get_bytes(it, &p, &n, e);
    if (r != PV_OK) {
        return r;
    }
    if (n != 32) {
        return pv_err_set(e, PV_ERR_FORMAT, "expected 32 bytes, found %zu", n);
    }
    memcpy(out, p, 32);
    return PV_OK;
}

typedef int (*state_encode_fn)(const void *state, pv_buf *out);
typedef int (*state_parse_fn)(const cbor_item_t *root, void *state, pv_err *e);

typedef struct state_file {
    const char *name;
    size_t nkeys;
    mode_t mode;
    state_encode_fn encode;
    state_parse_fn parse;
} state_file;

/* Reads, parses and checks that the file is exactly the encoding of what was parsed, so
 * a file has one valid form. PV_ERR_NOT_FOUND when missing; PV_ERR_ROT otherwise. */
static int state_load(const rot_backend *b, const state_file *f, void *state, pv_err *e)
{
    uint8_t *data = NULL;
    size_t len = 0;
    cbor_item_t *root = NULL;
    pv_buf *again = NULL;
    int r = soft_read(b, f->name, STATE_FILE_MAX, &data, &len, e);
    if (r != PV_OK) {
        return r;
    }
    r = state_decode(data, len, f->nkeys, &root, e);
    if (r == PV_OK) {
        r = f->parse(root, state, e);
    }
    if (r == PV_OK) {
        again = pv_buf_new(STATE_FILE_MAX);
        r = again == NULL ? PV_ERR_NOMEM : f->encode(state, again);
        if (r != PV_OK) {
            r = pv_err_set(e, r, "cannot encode it again");
        } else if (pv_buf_len(again) != len || memcmp(pv_buf_data(again), data, len) != 0) {
            r = pv_err_set(e, PV_ERR_FORMAT, "not in deterministic encoding");
        }
    }
    if (r != PV_OK && r != PV_ERR_NOMEM) {
        r = pv_err_wrap(e, PV_ERR_ROT, "%s/%s is damaged", b->dir, f->name);
    }
    pv_buf_free(again);
    if (root != NULL) {
        cbor_decref(&root);
    }
    free(data);
    return r;
}

static int state_store(const rot_backend *b, const state_file *f, const void *state, bool overwrite,
                       pv_err *e)
{
    pv_buf *out = pv_buf_new(STATE_FILE_MAX);
    if (out == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int r = f->encode(state, out);
    if (r != PV_OK) {
        r = pv_err_set(e, r, "%s/%s: cannot encode", b->dir, f->name);
    } else {
        r = soft_write(b, f->name, out, f->mode, overwrite, e);
    }
    pv_buf_free(out);
    return r;
}

static int counters_encode(const void *state, pv_buf *out)
{
    const uint64_t *v = state;
    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, out);
    pv_cbor_put_map(&enc, 2);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_uint(&enc, SOFT_VERSION);
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_array(&enc, PV_ROT_COUNTERS);
    for (size_t i = 0; i < PV_ROT_COUNTERS; i++) {
        pv_cbor_put_uint(&enc, v[i]);
    }
    return pv_cbor_enc_result(&enc);
}

static int counters_parse(const cbor_item_t *root, void *state, pv_err *e)
{
    uint64_t *v = state;
    const cbor_item_t *arr = pv_cbor_map_get(root, 2);
    if (arr == NULL || !cbor_isa_array(arr) || cbor_array_size(arr) != PV_ROT_COUNTERS) {
        return pv_err_set(e, PV_ERR_FORMAT, "expected an array of %d counters", PV_ROT_COUNTERS);
    }
    for (size_t i = 0; i < PV_ROT_COUNTERS; i++) {
        int r = pv_cbor_get_uint(cbor_array_handle(arr)[i], &v[i], e);
        if (r != PV_OK) {
            return pv_err_wrap(e, r, "counter %zu", i);
        }
    }
    return PV_OK;
}

static int pcr_encode(const void *state, pv_buf *out)
{
    const pcr_state *p = state;
    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, out);
    pv_cbor_put_map(&enc, 3);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_uint(&enc, SOFT_VERSION);
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_text(&enc, p->epoch);
    pv_cbor_put_uint(&enc, 3);
    pv_cbor_put_bytes(&enc, p->value, sizeof(p->value));
    return pv_cbor_enc_result(&enc);
}

static int pcr_parse(const cbor_item_t *root, void *state, pv_err *e)
{
    pcr_state *p = state;
    char *epoch = NULL;
    int r = pv_cbor_get_text(pv_cbor_map_get(root, 2), EPOCH_MAX, &epoch, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "boot epoch");
    }
    memcpy(p->epoch, epoch, strlen(epoch) + 1);
    free(epoch);
    r = get_bytes32(pv_cbor_map_get(root, 3), p->value, e);
    return r == PV_OK ? r : pv_err_wrap(e, r, "value");
}

static int fuse_encode(const void *state, pv_buf *out)
{
    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, out);
    pv_cbor_put_map(&enc, 2);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_uint(&enc, SOFT_VERSION);
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_bytes(&enc, state, PV_SHA256_LEN);
    return pv_cbor_enc_result(&enc);
}

static int fuse_parse(const cbor_item_t *root, void *state, pv_err *e)
{
    int r = get_bytes32(pv_cbor_map_get(root, 2), state, e);
    return r == PV_OK ? r : pv_err_wrap(e, r, "trust anchor");
}

static int marker_encode(const void *state, pv_buf *out)
{
    const marker_state *m = state;
    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, out);
    pv_cbor_put_map(&enc, 3);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_uint(&enc, SOFT_VERSION);
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_bytes(&enc, m->identity_id, sizeof(m->identity_id));
    pv_cbor_put_uint(&enc, 3);
    pv_cbor_put_bytes(&enc, m->attest_id, sizeof(m->attest_id));
    return pv_cbor_enc_result(&enc);
}

static int marker_parse(const cbor_item_t *root, void *state, pv_err *e)
{
    marker_state *m = state;
    int r = get_bytes32(pv_cbor_map_get(root, 2), m->identity_id, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "identity key ID");
    }
    r = get_bytes32(pv_cbor_map_get(root, 3), m->attest_id, e);
    return r == PV_OK ? r : pv_err_wrap(e, r, "attestation key ID");
}

static const state_file COUNTERS = {NAME_COUNTERS, 2, 0600, counters_encode, counters_parse};
static const state_file PCR = {NAME_PCR, 3, 0600, pcr_encode, pcr_parse};
static const state_file FUSE = {NAME_FUSE, 2, 0400, fuse_encode, fuse_parse};
static const state_file MARKER = {NAME_MARKER, 3, 0600, marker_encode, marker_parse};

/* Counters and PCR exist from provisioning on: a missing one is damage, not a zero. */
static int state_load_required(const rot_backend *b, const state_file *f, void *state, pv_err *e)
{
    int r = state_load(b, f, state, e);
    return r == PV_ERR_NOT_FOUND ? pv_err_wrap(e, PV_ERR_ROT, "damaged root of trust") : r;
}

/* ---- keys ---- */

/* Encrypted keys are refused; without a callback OpenSSL would prompt on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

static int public_only(const pv_key *k, pv_key **out, pv_err *e)
{
    *out = NULL;
    pv_buf *spki = pv_buf_new(4096);
    if (spki == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int r = pv_key_spki_der(k, spki);
    if (r != PV_OK) {
        r = pv_err_set(e, r, "cannot encode a public key");
    } else {
        r = pv_key_from_spki_der(pv_buf_data(spki), pv_buf_len(spki), out, e);
    }
    pv_buf_free(spki);
    return r;
}

/* Loads a private key through the checked directory (pv_key_load_private_pem would open
 * the path again and follow a link). The PEM is wiped as soon as it is parsed. */
static int key_load(const rot_backend *b, const char *name, pv_key **out, pv_err *e)
{
    *out = NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    int r = soft_read(b, name, KEY_FILE_MAX, &data, &len, e);
    if (r == PV_ERR_NOT_FOUND) {
        return pv_err_wrap(e, PV_ERR_ROT, "damaged root of trust");
    }
    if (r != PV_OK) {
        return r;
    }
    EVP_PKEY *pkey = NULL;
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    if (bio != NULL) {
        pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    }
    BIO_free(bio);
    pv_wipe(data, len);
    free(data);
    /* OpenSSL's reason says nothing useful here and is dropped, with the key's bytes
     * kept out of every message. */
    ERR_clear_error();
    if (pkey == NULL) {
        return pv_err_set(e, PV_ERR_ROT, "%s/%s is not an unencrypted PEM private key", b->dir,
                          name);
    }
    r = pv_key_from_evp(pkey, out, e);
    EVP_PKEY_free(pkey);
    if (r != PV_OK) {
        return pv_err_wrap(e, PV_ERR_ROT, "%s/%s", b->dir, name);
    }
    return PV_OK;
}

static int key_matches(const rot_backend *b, const char *name, const pv_key *k,
                       const uint8_t want[PV_KEY_ID_LEN], pv_err *e)
{
    uint8_t id[PV_KEY_ID_LEN];
    if (pv_key_id(k, id) != PV_OK) {
        return pv_err_set(e, PV_ERR_CRYPTO, "%s/%s: cannot compute the key ID", b->dir, name);
    }
    if (memcmp(id, want, sizeof(id)) != 0) {
        return pv_err_set(e, PV_ERR_ROT, "%s/%s is not the key that was provisioned", b->dir, name);
    }
    return PV_OK;
}

/* ---- open and provision ---- */

static void soft_close(rot_backend *b)
{
    if (b == NULL) {
        return;
    }
    pv_key_free(b->identity);
    pv_key_free(b->attest); /* wiped with its last reference */
    pv_key_free(b->attest_pub);
    if (b->dirfd >= 0) {
        close(b->dirfd);
    }
    free(b->dir);
    free(b);
}

/* The backend with its directory opened and checked; no keys yet. */
static int soft_start(const pv_rot_config *cfg, rot_backend **out, pv_err *e)
{
    *out = NULL;
    rot_backend *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    b->dirfd = -1;
    int r = rot_private_dir(cfg->state_dir, &b->dir, e);
    if (r == PV_OK) {
        r = dir_open(b->dir, &b->dirfd, e);
    }
    if (r == PV_OK) {
        r = dir_scan(b, e);
    }
    if (r != PV_OK) {
        soft_close(b);
        return r;
    }
    *out = b;
    return PV_OK;
}

static int soft_open(const pv_rot_config *cfg, rot_backend **out, pv_err *e)
{
    marker_state m;
    uint64_t counters[PV_ROT_COUNTERS];
    pcr_state pcr;
    uint8_t anchor[PV_SHA256_LEN];
    pv_key *identity = NULL;
    rot_backend *b = NULL;
    *out = NULL;
    int r = soft_start(cfg, &b, e);
    if (r != PV_OK) {
        return r;
    }
    r = state_load(b, &MARKER, &m, e);
    if (r == PV_ERR_NOT_FOUND) {
        r = pv_err_set(e, PV_ERR_NOT_FOUND, "no software root of trust is provisioned in %s",
                       b->dir);
    }
    if (r != PV_OK) {
        goto out;
    }
    r = key_load(b, NAME_IDENTITY, &identity, e);
    if (r == PV_OK) {
        r = key_matches(b, NAME_IDENTITY, identity, m.identity_id, e);
    }
    if (r == PV_OK) {
        r = public_only(identity, &b->identity, e);
    }
    if (r == PV_OK) {
        r = key_load(b, NAME_ATTEST, &b->attest, e);
    }
    if (r == PV_OK) {
        r = key_matches(b, NAME_ATTEST, b->attest, m.attest_id, e);
    }
    if (r == PV_OK) {
        r = public_only(b->attest, &b->attest_pub, e);
    }
    /* Damaged state is found now rather than at the first boot that needs it. */
    if (r == PV_OK) {
        r = state_load_required(b, &COUNTERS, counters, e);
    }
    if (r == PV_OK) {
        r = state_load_required(b, &PCR, &pcr, e);
    }
    if (r == PV_OK) {
        r = state_load(b, &FUSE, anchor, e);
        if (r == PV_ERR_NOT_FOUND) {
            r = PV_OK;
            pv_err_clear(e);
        }
    }
    if (r != PV_OK) {
        goto out;
    }
    *out = b;
    b = NULL;
out:
    pv_key_free(identity);
    soft_close(b);
    return r;
}

static int current_epoch(char out[EPOCH_MAX + 1], pv_err *e)
{
    char id[PV_BOOT_ID_LEN + 1];
    out[0] = '\0';
    int r = pv_boot_id(id);
    if (r != PV_OK) {
        return pv_err_set(e, PV_ERR_ROT, "cannot read the kernel's boot ID (%s)", pv_strerror(r));
    }
    snprintf(out, EPOCH_MAX + 1, EPOCH_PREFIX "%s", id);
    return PV_OK;
}

/* What an interrupted provisioning may have left; the marker is written last, so none
 * of it was ever used. */
static const char *const provision_files[] = {NAME_IDENTITY, NAME_ATTEST, NAME_COUNTERS, NAME_PCR};
#define N_PROVISION_FILES (sizeof(provision_files) / sizeof(provision_files[0]))

static int remove_files(const rot_backend *b, size_t n, pv_err *e)
{
    int r = PV_OK;
    for (size_t i = 0; i < n; i++) {
        if (unlinkat(b->dirfd, provision_files[i], 0) != 0 && errno != ENOENT && r == PV_OK) {
            r = pv_err_sys(e, PV_ERR_IO, errno, "%s/%s", b->dir, provision_files[i]);
        }
    }
    return r;
}

/* Writes the keys, the counters and the PCR, then the marker; *made counts the files of
 * provision_files that were created, so that the caller can take them back. */
static int provision_files_write(rot_backend *b, pv_key *identity, pv_key *attest, size_t *made,
                                 pv_err *e)
{
    char *path = NULL;
    uint64_t counters[PV_ROT_COUNTERS] = {0};
    pcr_state pcr;
    marker_state m;
    memset(&pcr, 0, sizeof(pcr));
    int r = current_epoch(pcr.epoch, e);
    if (r != PV_OK) {
        return r;
    }
    if (pv_key_id(identity, m.identity_id) != PV_OK || pv_key_id(attest, m.attest_id) != PV_OK) {
        return pv_err_set(e, PV_ERR_CRYPTO, "cannot compute the key IDs");
    }
    pv_key *keys[] = {identity, attest};
    for (size_t i = 0; i < 2; i++) {
        if (asprintf(&path, "%s/%s", b->dir, provision_files[i]) < 0) {
            return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        }
        r = pv_key_save_private_pem(keys[i], path, e);
        free(path);
        if (r != PV_OK) {
            return r;
        }
        (*made)++;
    }
    r = state_store(b, &COUNTERS, counters, false, e);
    if (r != PV_OK) {
        return r;
    }
    (*made)++;
    r = state_store(b, &PCR, &pcr, false, e);
    if (r != PV_OK) {
        return r;
    }
    (*made)++;
    return state_store(b, &MARKER, &m, false, e);
}

static int soft_provision(const pv_rot_config *cfg, rot_backend **out, pv_err *e)
{
    rot_backend *b = NULL;
    pv_key *identity = NULL;
    bool locked = false;
    size_t made = 0;
    *out = NULL;
    int r = soft_start(cfg, &b, e);
    if (r != PV_OK) {
        return r;
    }
    r = soft_lock(b, e);
    if (r != PV_OK) {
        goto out;
    }
    locked = true;
    if (soft_exists(b, NAME_MARKER)) {
        r = pv_err_set(e, PV_ERR_EXISTS, "%s already holds a provisioned root of trust", b->dir);
        goto out;
    }
    /* A fuse is written only through an opened root of trust: without the marker it is
     * not ours to provision over. */
    if (soft_exists(b, NAME_FUSE)) {
        r = pv_err_set(e, PV_ERR_EXISTS,
                       "%s holds a fused trust anchor but no provisioning record; refusing to "
                       "provision over it",
                       b->dir);
        goto out;
    }
    r = remove_files(b, N_PROVISION_FILES, e);
    if (r != PV_OK) {
        goto out;
    }
    r = pv_key_generate(&identity, e);
    if (r == PV_OK) {
        r = pv_key_generate(&b->attest, e);
    }
    if (r == PV_OK) {
        r = provision_files_write(b, identity, b->attest, &made, e);
        if (r != PV_OK) {
            /* Keep the first error; a failure to clean up is already an error. */
            remove_files(b, made, NULL);
        }
    }
    if (r == PV_OK) {
        r = public_only(identity, &b->identity, e);
    }
    if (r == PV_OK) {
        r = public_only(b->attest, &b->attest_pub, e);
    }
    if (r != PV_OK) {
        goto out;
    }
    soft_unlock(b);
    locked = false;
    *out = b;
    b = NULL;
out:
    if (locked) {
        soft_unlock(b);
    }
    pv_key_free(identity);
    soft_close(b);
    return r;
}

/* ---- keys, signing, random ---- */

static int soft_identity_key(rot_backend *b, pv_key **out, pv_err *e)
{
    *out = pv_key_ref(b->identity);
    return PV_OK;
}

static int soft_attestation_key(rot_backend *b, pv_key **out, pv_err *e)
{
    *out = pv_key_ref(b->attest_pub);
    return PV_OK;
}

static int soft_sign(rot_backend *b, const void *msg, size_t len, uint8_t sig[PV_ES256_SIG_LEN],
                     pv_err *e)
{
    int r = pv_key_sign_es256(b->attest, len > 0 ? msg : "", len, sig, e);
    return r == PV_OK ? r : pv_err_wrap(e, r, "signing with the attestation key");
}

/* OpenSSL's CSPRNG, seeded from the kernel's getrandom(). */
static int soft_random(rot_backend *b, void *out, size_t n, pv_err *e)
{
    if (pv_random_bytes(out, n) != PV_OK) {
        return pv_err_set(e, PV_ERR_ROT, "the random number generator failed");
    }
    return PV_OK;
}

/* ---- measurements ---- */

static int soft_boot_epoch(rot_backend *b, char out[EPOCH_MAX + 1], pv_err *e)
{
    return current_epoch(out, e);
}

/* The PCR as this boot sees it: zero when the file is from an earlier boot. */
static int pcr_current(rot_backend *b, const char *epoch, uint8_t out[PV_SHA256_LEN], pv_err *e)
{
    pcr_state pcr;
    int r = state_load_required(b, &PCR, &pcr, e);
    if (r != PV_OK) {
        return r;
    }
    if (strcmp(pcr.epoch, epoch) == 0) {
        memcpy(out, pcr.value, PV_SHA256_LEN);
    } else {
        memset(out, 0, PV_SHA256_LEN);
    }
    return PV_OK;
}

static int soft_pcr_read(rot_backend *b, uint8_t out[PV_SHA256_LEN], pv_err *e)
{
    char epoch[EPOCH_MAX + 1];
    uint8_t v[PV_SHA256_LEN];
    int r = current_epoch(epoch, e);
    if (r == PV_OK) {
        r = pcr_current(b, epoch, v, e);
    }
    if (r == PV_OK) {
        memcpy(out, v, PV_SHA256_LEN);
    }
    return r;
}

static int soft_pcr_extend(rot_backend *b, const uint8_t digest[PV_SHA256_LEN], pv_err *e)
{
    pcr_state pcr;
    uint8_t in[2 * PV_SHA256_LEN];
    memset(&pcr, 0, sizeof(pcr));
    int r = current_epoch(pcr.epoch, e);
    if (r != PV_OK) {
        return r;
    }
    r = soft_lock(b, e);
    if (r != PV_OK) {
        return r;
    }
    r = pcr_current(b, pcr.epoch, in, e);
    if (r == PV_OK) {
        memcpy(in + PV_SHA256_LEN, digest, PV_SHA256_LEN);
        if (pv_sha256_digest(in, sizeof(in), pcr.value) != PV_OK) {
            r = pv_err_set(e, PV_ERR_CRYPTO, "SHA-256 failed");
        }
    }
    if (r == PV_OK) {
        r = state_store(b, &PCR, &pcr, true, e);
    }
    soft_unlock(b);
    return r;
}

/* ---- counters ---- */

static int soft_counter_read(rot_backend *b, unsigned id, uint64_t *value, pv_err *e)
{
    uint64_t v[PV_ROT_COUNTERS];
    int r = state_load_required(b, &COUNTERS, v, e);
    if (r != PV_OK) {
        return r;
    }
    *value = v[id];
    return PV_OK;
}

static int soft_counter_advance(rot_backend *b, unsigned id, uint64_t to, pv_err *e)
{
    uint64_t v[PV_ROT_COUNTERS];
    int r = soft_lock(b, e);
    if (r != PV_OK) {
        return r;
    }
    r = state_load_required(b, &COUNTERS, v, e);
    if (r != PV_OK) {
        goto out;
    }
    /* rot.c checked against the value it read; another process may have moved since. */
    if (to < v[id]) {
        r = pv_err_set(e, PV_ERR_ROLLBACK, "counter %u is at %llu; it cannot go back to %llu", id,
                       (unsigned long long)v[id], (unsigned long long)to);
        goto out;
    }
    if (to == v[id]) {
        goto out;
    }
    if (to - v[id] > PV_ROT_MAX_COUNTER_STEP) {
        r = pv_err_set(e, PV_ERR_TOO_LARGE, "counter %u is at %llu; one advance may add at most %d",
                       id, (unsigned long long)v[id], PV_ROT_MAX_COUNTER_STEP);
        goto out;
    }
    v[id] = to;
    r = state_store(b, &COUNTERS, v, true, e);
out:
    soft_unlock(b);
    return r;
}

/* ---- the trust anchor ---- */

static int soft_fuse_trust_anchor(rot_backend *b, const uint8_t hash[PV_SHA256_LEN], pv_err *e)
{
    if (soft_exists(b, NAME_FUSE)) {
        return pv_err_set(e, PV_ERR_LOCKED, "a trust anchor is already fused in %s/%s", b->dir,
                          NAME_FUSE);
    }
    /* Never replaces a file, even one created since the check above. */
    int r = state_store(b, &FUSE, hash, false, e);
    if (r == PV_ERR_EXISTS) {
        r = pv_err_set(e, PV_ERR_LOCKED, "a trust anchor is already fused in %s/%s", b->dir,
                       NAME_FUSE);
    }
    return r;
}

static int soft_trust_anchor(rot_backend *b, uint8_t hash[PV_SHA256_LEN], pv_err *e)
{
    uint8_t v[PV_SHA256_LEN];
    int r = state_load(b, &FUSE, v, e);
    if (r == PV_ERR_NOT_FOUND) {
        return pv_err_set(e, PV_ERR_NOT_FOUND, "no trust anchor is fused");
    }
    if (r == PV_OK) {
        memcpy(hash, v, PV_SHA256_LEN);
    }
    return r;
}

static int soft_unprovision(rot_backend *b, pv_err *e)
{
    int r = soft_lock(b, e);
    if (r != PV_OK) {
        return r;
    }
    if (soft_exists(b, NAME_FUSE)) {
        r = pv_err_set(e, PV_ERR_LOCKED, "the trust anchor is fused: the identity stays for good");
    } else if (unlinkat(b->dirfd, NAME_MARKER, 0) != 0 && errno != ENOENT) {
        /* The marker first: without it, whatever is left is an interrupted provisioning. */
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s/%s", b->dir, NAME_MARKER);
    } else {
        r = remove_files(b, N_PROVISION_FILES, e);
    }
    soft_unlock(b);
    return r;
}

const rot_backend_ops rot_soft_ops = {
    .kind = PV_ROT_SOFTWARE,
    .unprovision = soft_unprovision,
    .provision = soft_provision,
    .open = soft_open,
    .close = soft_close,
    .identity_key = soft_identity_key,
    .attestation_key = soft_attestation_key,
    .sign = soft_sign,
    .random = soft_random,
    .pcr_extend = soft_pcr_extend,
    .pcr_read = soft_pcr_read,
    .boot_epoch = soft_boot_epoch,
    .counter_read = soft_counter_read,
    .counter_advance = soft_counter_advance,
    .fuse_trust_anchor = soft_fuse_trust_anchor,
    .trust_anchor = soft_trust_anchor,
    /* TPM-only: rot.c answers PV_ERR_UNSUPPORTED. */
    .ek_certificate = NULL,
    .attestation_key_tpm_public = NULL,
    .activate_credential = NULL,
    .quote = NULL,
};
