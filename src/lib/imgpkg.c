/* SPDX-License-Identifier: Apache-2.0 */
#include "pavise/imgpkg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pavise/cbor.h"
#include "pavise/cose.h"
#include "pavise/fs.h"
#include "pavise/platform.h"
#include "pavise/tar.h"

#define IO_CHUNK (1024 * 1024)

struct pv_imgpkg {
    int fd;             /* -1 for a package in memory */
    const uint8_t *mem; /* borrowed, for pv_imgpkg_open_mem and pv_imgpkg_open_head */
    size_t mem_len;
    bool head; /* opened with pv_imgpkg_open_head: there is no payload to read */
    uint8_t header[PV_IMGPKG_HEADER_LEN];
    pv_imgpkg_layout layout;
    pv_cose_sign1 *cose;
    pv_manifest manifest;
    pv_chain *chain;
    bool verified;
};

/* ---- reading sections ---- */

static int read_at(pv_imgpkg *pkg, void *dst, size_t n, uint64_t off, pv_err *e)
{
    if (pkg->fd < 0) {
        if (off > pkg->mem_len || n > pkg->mem_len - off) {
            return pv_err_set(e, PV_ERR_TRUNCATED, "package is truncated");
        }
        memcpy(dst, pkg->mem + off, n);
        return PV_OK;
    }
    int r = pv_fs_pread_all(pkg->fd, dst, n, off);
    if (r == PV_ERR_TRUNCATED) {
        return pv_err_set(e, r, "package is truncated at byte %llu", (unsigned long long)off);
    }
    return r == PV_OK ? r : pv_err_sys(e, r, errno, "reading the package");
}

static int parse_header(pv_imgpkg *pkg, uint64_t actual_size, pv_err *e)
{
    pv_reader rd;
    const uint8_t *magic, *reserved;
    uint16_t version, header_len;
    uint32_t flags;
    pv_imgpkg_layout *l = &pkg->layout;
    if (actual_size < PV_IMGPKG_HEADER_LEN) {
        return pv_err_set(e, PV_ERR_TRUNCATED, "%llu bytes is shorter than the %d-byte header",
                          (unsigned long long)actual_size, PV_IMGPKG_HEADER_LEN);
    }
    pv_reader_init(&rd, pkg->header, sizeof(pkg->header));
    /* The reader cannot run short here: the header buffer has exactly these fields. */
    pv_reader_bytes(&rd, PV_IMGPKG_MAGIC_LEN, &magic);
    pv_reader_u16be(&rd, &version);
    pv_reader_u16be(&rd, &header_len);
    pv_reader_u32be(&rd, &flags);
    pv_reader_u32be(&rd, &l->signed_manifest_len);
    pv_reader_u32be(&rd, &l->chain_len);
    pv_reader_u64be(&rd, &l->payload_len);
    pv_reader_bytes(&rd, 16, &reserved);
    if (memcmp(magic, PV_IMGPKG_MAGIC, PV_IMGPKG_MAGIC_LEN) != 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "not an image package (bad magic)");
    }
    if (version != PV_IMGPKG_FORMAT_VERSION) {
        return pv_err_set(e, PV_ERR_UNSUPPORTED, "format version %u is not supported (%d)", version,
                          PV_IMGPKG_FORMAT_VERSION);
    }
    l->format_version = version;
    if (header_len != PV_IMGPKG_HEADER_LEN) {
        return pv_err_set(e, PV_ERR_FORMAT, "header length %u, expected %d", header_len,
                          PV_IMGPKG_HEADER_LEN);
    }
    if (flags != 0) {
        return pv_err_set(e, PV_ERR_UNSUPPORTED, "header flags 0x%08x are not supported", flags);
    }
    for (size_t i = 0; i < 16; i++) {
        if (reserved[i] != 0) {
            return pv_err_set(e, PV_ERR_FORMAT, "header byte %zu is reserved and must be zero",
                              32 + i);
        }
    }
    if (l->signed_manifest_len == 0 || l->signed_manifest_len > PV_IMGPKG_MAX_SIGNED_MANIFEST) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "signed manifest length %u is out of range (1..%d)",
                          l->signed_manifest_len, PV_IMGPKG_MAX_SIGNED_MANIFEST);
    }
    if (l->chain_len == 0 || l->chain_len > PV_IMGPKG_MAX_CHAIN) {
        return pv_err_set(e, PV_ERR_TOO_LARGE,
                          "certificate chain length %u is out of range (1..%d)", l->chain_len,
                          PV_IMGPKG_MAX_CHAIN);
    }
    if (l->payload_len > PV_IMGPKG_MAX_PAYLOAD) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "payload length %llu is larger than %llu",
                          (unsigned long long)l->payload_len,
                          (unsigned long long)PV_IMGPKG_MAX_PAYLOAD);
    }
    /* No overflow: every term is bounded above. */
    l->payload_offset = (uint64_t)PV_IMGPKG_HEADER_LEN + l->signed_manifest_len + l->chain_len;
    l->total_len = l->payload_offset + l->payload_len;
    if (pkg->head) {
        /* A head ends where the payload would start; its length is still reported. */
        if (actual_size < l->payload_offset) {
            return pv_err_set(
                e, PV_ERR_TRUNCATED, "package head is truncated: %llu bytes, its header says %llu",
                (unsigned long long)actual_size, (unsigned long long)l->payload_offset);
        }
        if (actual_size > l->payload_offset) {
            return pv_err_set(e, PV_ERR_FORMAT,
                              "%llu bytes after the certificate chain: a package head ends where "
                              "the payload starts",
                              (unsigned long long)(actual_size - l->payload_offset));
        }
        return PV_OK;
    }
    if (actual_size < l->total_len) {
        return pv_err_set(e, PV_ERR_TRUNCATED,
                          "package is truncated: %llu bytes, its header says %llu",
                          (unsigned long long)actual_size, (unsigned long long)l->total_len);
    }
    if (actual_size > l->total_len) {
        return pv_err_set(e, PV_ERR_FORMAT, "%llu bytes after the end of the payload",
                          (unsigned long long)(actual_size - l->total_len));
    }
    return PV_OK;
}

static int parse_signed_manifest(pv_imgpkg *pkg, const uint8_t *p, size_t n, pv_err *e)
{
    const uint8_t *kid, *payload;
    size_t kid_len, payload_len;
    int r = pv_cose_sign1_decode(p, n, PV_COSE_REQUIRE_TAG, &pkg->cose, e);
    if (r != PV_OK) {
        return r;
    }
    const char *ct = pv_cose_sign1_content_type(pkg->cose);
    if (ct == NULL || strcmp(ct, PV_IMGPKG_CONTENT_TYPE) != 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "COSE content type is not '%s'",
                          PV_IMGPKG_CONTENT_TYPE);
    }
    pv_cose_sign1_kid(pkg->cose, &kid, &kid_len);
    if (kid_len != PV_KEY_ID_LEN) {
        return pv_err_set(e, PV_ERR_FORMAT, "COSE kid is %zu bytes, expected %d", kid_len,
                          PV_KEY_ID_LEN);
    }
    pv_cose_sign1_payload(pkg->cose, &payload, &payload_len);
    if (payload == NULL) {
        return pv_err_set(e, PV_ERR_FORMAT, "COSE_Sign1 does not carry the manifest");
    }
    if ((r = pv_manifest_decode(payload, payload_len, &pkg->manifest, e)) != PV_OK) {
        return r;
    }
    if (!pv_ct_equal(kid, pkg->manifest.signer_key_id, PV_KEY_ID_LEN)) {
        return pv_err_set(e, PV_ERR_FORMAT, "COSE kid and manifest signer key ID differ");
    }
    if (pkg->manifest.payload_size != pkg->layout.payload_len) {
        return pv_err_set(e, PV_ERR_FORMAT,
                          "manifest says the payload is %llu bytes, the header says %llu",
                          (unsigned long long)pkg->manifest.payload_size,
                          (unsigned long long)pkg->layout.payload_len);
    }
    return PV_OK;
}

static int parse_chain(pv_imgpkg *pkg, const uint8_t *p, size_t n, pv_err *e)
{
    cbor_item_t *root = NULL;
    int r = pv_cbor_decode(p, n, &root, e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = pv_cbor_get_chain(root, &pkg->chain, e)) != PV_OK) {
        goto out;
    }
    /* The leaf must hold the key the manifest names. */
    pv_key *leaf = NULL;
    uint8_t id[PV_KEY_ID_LEN];
    if ((r = pv_cert_public_key(pv_chain_get(pkg->chain, 0), &leaf, e)) != PV_OK) {
        pv_err_wrap(e, r, "signing certificate");
        goto out;
    }
    r = pv_key_id(leaf, id);
    pv_key_free(leaf);
    if (r != PV_OK || !pv_ct_equal(id, pkg->manifest.signer_key_id, PV_KEY_ID_LEN)) {
        r = pv_err_set(e, PV_ERR_FORMAT,
                       "signing certificate's key is not the manifest's signer key");
        goto out;
    }
    r = PV_OK;
out:
    cbor_decref(&root);
    return r;
}

static int parse(pv_imgpkg *pkg, uint64_t actual_size, pv_err *e)
{
    int r;
    uint8_t *sm = NULL, *ch = NULL;
    if ((r = read_at(pkg, pkg->header, PV_IMGPKG_HEADER_LEN, 0, e)) != PV_OK ||
        (r = parse_header(pkg, actual_size, e)) != PV_OK) {
        return pv_err_wrap(e, r, "header");
    }
    sm = malloc(pkg->layout.signed_manifest_len);
    ch = malloc(pkg->layout.chain_len);
    if (sm == NULL || ch == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((r = read_at(pkg, sm, pkg->layout.signed_manifest_len, PV_IMGPKG_HEADER_LEN, e)) != PV_OK ||
        (r = parse_signed_manifest(pkg, sm, pkg->layout.signed_manifest_len, e)) != PV_OK) {
        pv_err_wrap(e, r, "signed manifest");
        goto out;
    }
    if ((r = read_at(pkg, ch, pkg->layout.chain_len,
                     PV_IMGPKG_HEADER_LEN + (uint64_t)pkg->layout.signed_manifest_len, e)) !=
            PV_OK ||
        (r = parse_chain(pkg, ch, pkg->layout.chain_len, e)) != PV_OK) {
        pv_err_wrap(e, r, "certificate chain");
        goto out;
    }
    r = PV_OK;
out:
    free(sm);
    free(ch);
    return r;
}

static pv_imgpkg *new_pkg(void)
{
    pv_imgpkg *pkg = calloc(1, sizeof(*pkg));
    if (pkg != NULL) {
        pkg->fd = -1;
    }
    return pkg;
}

int pv_imgpkg_open(const char *path, pv_imgpkg **out, pv_err *e)
{
    *out = NULL;
    struct stat st;
    pv_imgpkg *pkg = new_pkg();
    if (pkg == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int r;
    /* O_NONBLOCK: a FIFO must be refused, not waited on; regular files ignore it. */
    pkg->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (pkg->fd < 0) {
        r = pv_err_sys(e, errno == ENOENT ? PV_ERR_NOT_FOUND : PV_ERR_IO, errno, "cannot open");
        goto fail;
    }
    if (fstat(pkg->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        r = pv_err_set(e, PV_ERR_IO, "not a regular file");
        goto fail;
    }
    if ((r = parse(pkg, (uint64_t)st.st_size, e)) != PV_OK) {
        goto fail;
    }
    *out = pkg;
    return PV_OK;
fail:
    pv_imgpkg_free(pkg);
    return r;
}

int pv_imgpkg_open_mem(const uint8_t *p, size_t len, pv_imgpkg **out, pv_err *e)
{
    *out = NULL;
    pv_imgpkg *pkg = new_pkg();
    if (pkg == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    pkg->mem = p;
    pkg->mem_len = len;
    int r = parse(pkg, len, e);
    if (r != PV_OK) {
        pv_imgpkg_free(pkg);
        return r;
    }
    *out = pkg;
    return PV_OK;
}

int pv_imgpkg_open_head(const uint8_t *p, size_t len, pv_imgpkg **out, pv_err *e)
{
    *out = NULL;
    pv_imgpkg *pkg = new_pkg();
    if (pkg == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    pkg->mem = p;
    pkg->mem_len = len;
    pkg->head = true;
    int r = parse(pkg, len, e);
    if (r != PV_OK) {
        pv_imgpkg_free(pkg);
        return r;
    }
    *out = pkg;
    return PV_OK;
}

int pv_imgpkg_head(const pv_imgpkg *pkg, uint8_t **out, size_t *len, pv_err *e)
{
    *out = NULL;
    *len = 0;
    /* No overflow: the header bounds both sections to 64 KiB. */
    size_t n = (size_t)pkg->layout.payload_offset;
    uint8_t *buf = malloc(n);
    if (buf == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    /* read_at takes a non-const package only for its error path; it changes nothing. */
    int r = read_at((pv_imgpkg *)pkg, buf, n, 0, e);
    if (r != PV_OK) {
        free(buf);
        return r;
    }
    *out = buf;
    *len = n;
    return PV_OK;
}

void pv_imgpkg_free(pv_imgpkg *pkg)
{
    if (pkg == NULL) {
        return;
    }
    if (pkg->fd >= 0) {
        close(pkg->fd);
    }
    pv_cose_sign1_free(pkg->cose);
    pv_manifest_free(&pkg->manifest);
    pv_chain_free(pkg->chain);
    free(pkg);
}

const pv_manifest *pv_imgpkg_manifest(const pv_imgpkg *pkg)
{
    return &pkg->manifest;
}

const pv_chain *pv_imgpkg_chain(const pv_imgpkg *pkg)
{
    return pkg->chain;
}

int pv_imgpkg_manifest_digest(const pv_imgpkg *pkg, uint8_t out[PV_SHA256_LEN])
{
    const uint8_t *p = NULL;
    size_t n = 0;
    pv_cose_sign1_payload(pkg->cose, &p, &n);
    return pv_sha256_digest(p, n, out);
}

void pv_imgpkg_get_layout(const pv_imgpkg *pkg, pv_imgpkg_layout *out)
{
    *out = pkg->layout;
}

bool pv_imgpkg_is_verified(const pv_imgpkg *pkg)
{
    return pkg->verified;
}

/* ---- payload streaming ---- */

/* Streams the payload through a SHA-256, handing each block to the tar reader when one
 * is attached. */
typedef struct payload_stream {
    pv_imgpkg *pkg;
    pv_sha256 *hash;
    uint8_t *buf;
    uint64_t done;
    int err; /* PV_ERR_IO / PV_ERR_TRUNCATED / PV_ERR_CRYPTO from a read */
} payload_stream;

static ssize_t stream_next(void *ctx, const void **out)
{
    payload_stream *s = ctx;
    uint64_t left = s->pkg->layout.payload_len - s->done;
    size_t n = left < IO_CHUNK ? (size_t)left : IO_CHUNK;
    *out = NULL;
    if (n == 0) {
        return 0;
    }
    uint64_t off = s->pkg->layout.payload_offset + s->done;
    if (s->pkg->fd < 0) {
        *out = s->pkg->mem + off; /* no copy for a package in memory */
    } else {
        int r = pv_fs_pread_all(s->pkg->fd, s->buf, n, off);
        if (r != PV_OK) {
            s->err = r;
            return -1;
        }
        *out = s->buf;
    }
    if (pv_sha256_update(s->hash, *out, n) != PV_OK) {
        s->err = PV_ERR_CRYPTO;
        return -1;
    }
    s->done += n;
    return (ssize_t)n;
}

static int stream_open(payload_stream *s, pv_imgpkg *pkg, pv_err *e)
{
    memset(s, 0, sizeof(*s));
    s->pkg = pkg;
    s->hash = pv_sha256_new();
    s->buf = pkg->fd >= 0 ? malloc(IO_CHUNK) : NULL;
    if (s->hash == NULL || (pkg->fd >= 0 && s->buf == NULL)) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    if (pkg->fd >= 0) {
        posix_fadvise(pkg->fd, (off_t)pkg->layout.payload_offset, (off_t)pkg->layout.payload_len,
                      POSIX_FADV_SEQUENTIAL);
    }
    return PV_OK;
}

/* Reads whatever the consumer left, then compares with the signed digest. */
static int stream_finish(payload_stream *s, pv_err *e)
{
    const void *block;
    ssize_t n;
    while ((n = stream_next(s, &block)) > 0) {
    }
    if (n < 0 || s->err != PV_OK) {
        int code = s->err != PV_OK ? s->err : PV_ERR_IO;
        return code == PV_ERR_IO ? pv_err_sys(e, code, errno, "payload: read failed")
                                 : pv_err_set(e, code, "payload: %s", pv_strerror(code));
    }
    uint8_t digest[PV_SHA256_LEN];
    if (pv_sha256_final(s->hash, digest) != PV_OK) {
        return pv_err_set(e, PV_ERR_CRYPTO, "payload: hashing failed");
    }
    if (!pv_ct_equal(digest, s->pkg->manifest.payload_sha256, PV_SHA256_LEN)) {
        return pv_err_set(e, PV_ERR_DIGEST, "payload: SHA-256 does not match the signed manifest");
    }
    return PV_OK;
}

static void stream_close(payload_stream *s)
{
    pv_sha256_free(s->hash);
    free(s->buf);
}

/* ---- verification ---- */

/* The COSE signature with the leaf's key, the header as external AAD. */
static int verify_signature(pv_imgpkg *pkg, pv_err *e)
{
    pv_key *leaf = NULL;
    int r = pv_cert_public_key(pv_chain_get(pkg->chain, 0), &leaf, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "signing certificate");
    }
    /* The header is the external AAD: every byte of it is covered by the signature. */
    r = pv_cose_sign1_verify(pkg->cose, leaf, NULL, 0, pkg->header, PV_IMGPKG_HEADER_LEN, e);
    pv_key_free(leaf);
    if (r != PV_OK) {
        return pv_err_set(e, PV_ERR_SIGNATURE,
                          "signature does not verify with the signing certificate's key");
    }
    return PV_OK;
}

static int verify_chain(pv_imgpkg *pkg, const pv_trust *trust, pv_err *e)
{
    int r = pv_chain_verify(pkg->chain, trust, pv_time_now(),
                            PV_VERIFY_CODE_SIGNING | PV_VERIFY_ALL_USED, e);
    return r == PV_OK ? r : pv_err_wrap(e, r, "certificate chain");
}

static int refuse_head(const pv_imgpkg *pkg, pv_err *e)
{
    return pkg->head ? pv_err_set(e, PV_ERR_INVALID_ARG, "a package head has no payload to verify")
                     : PV_OK;
}

int pv_imgpkg_verify_self(pv_imgpkg *pkg, pv_err *e)
{
    payload_stream s;
    pkg->verified = false;
    int r = refuse_head(pkg, e);
    if (r != PV_OK || (r = verify_signature(pkg, e)) != PV_OK) {
        return r;
    }
    if ((r = stream_open(&s, pkg, e)) == PV_OK) {
        r = stream_finish(&s, e);
    }
    stream_close(&s);
    return r;
}

int pv_imgpkg_verify(pv_imgpkg *pkg, const pv_trust *trust, pv_err *e)
{
    pkg->verified = false;
    int r = refuse_head(pkg, e);
    if (r != PV_OK || (r = verify_chain(pkg, trust, e)) != PV_OK) {
        return r;
    }
    if ((r = pv_imgpkg_verify_self(pkg, e)) != PV_OK) {
        return r;
    }
    pkg->verified = true;
    return PV_OK;
}

int pv_imgpkg_verify_head(pv_imgpkg *pkg, const pv_trust *trust, pv_err *e)
{
    /* Never sets `verified`: that promises a payload checked against its digest, which
     * is what extraction relies on. */
    int r = verify_chain(pkg, trust, e);
    return r == PV_OK ? verify_signature(pkg, e) : r;
}

/* ---- extraction ---- */

static int check_dest(const char *dest, pv_err *e)
{
    struct stat st;
    if (lstat(dest, &st) != 0) {
        return errno == ENOENT ? PV_OK : pv_err_sys(e, PV_ERR_IO, errno, "%s", dest);
    }
    if (!S_ISDIR(st.st_mode)) {
        return pv_err_set(e, PV_ERR_EXISTS, "%s: exists and is not a directory", dest);
    }
    int fd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0) {
            close(fd);
        }
        return pv_err_sys(e, PV_ERR_IO, errno, "%s", dest);
    }
    struct dirent *de;
    int r = PV_OK;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            r = pv_err_set(e, PV_ERR_EXISTS, "%s: exists and is not empty", dest);
            break;
        }
    }
    closedir(d);
    return r;
}

int pv_imgpkg_extract(pv_imgpkg *pkg, const char *dest, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    char *staging = NULL;
    payload_stream s;
    memset(&s, 0, sizeof(s));
    char *target = NULL;
    if (!pkg->verified) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "package has not been verified");
    }
    /* "out/" names the directory "out": drop trailing slashes so that the staging
     * directory lands beside it, not inside it. */
    size_t dlen = strlen(dest);
    while (dlen > 1 && dest[dlen - 1] == '/') {
        dlen--;
    }
    target = strndup(dest, dlen);
    staging = malloc(dlen + 32);
    if (target == NULL || staging == NULL) {
        free(target);
        free(staging);
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    const char *base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
    if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || strcmp(target, "/") == 0) {
        r = pv_err_set(e, PV_ERR_INVALID_ARG, "%s: name a new directory to extract into", dest);
        free(target);
        free(staging);
        return r;
    }
    dest = target;
    if ((r = check_dest(dest, e)) != PV_OK) {
        free(target);
        free(staging);
        return r;
    }
    size_t n = dlen + 32;
    /* Beside dest, so the final rename stays within one filesystem. */
    snprintf(staging, n, "%s.staging-XXXXXX", dest);
    if (mkdtemp(staging) == NULL) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s: creating a staging directory", dest);
        free(staging);
        free(target);
        return r;
    }
    /* mkdtemp makes it 0700; the extracted tree's root is a directory like the others. */
    if (chmod(staging, 0755) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", staging);
        goto out;
    }
    if ((r = stream_open(&s, pkg, e)) != PV_OK) {
        goto out;
    }
    if ((r = pv_tar_extract(stream_next, &s, staging, e)) != PV_OK) {
        if (s.err != PV_OK) {
            r = pv_err_set(e, s.err, "payload: read failed: %s", pv_strerror(s.err));
        }
        goto out;
    }
    /* The bytes extracted must be the bytes verified: hash them again. */
    if ((r = stream_finish(&s, e)) != PV_OK) {
        pv_err_wrap(e, r, "package changed after verification");
        goto out;
    }
    int dfd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || syncfs(dfd) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s: syncing", dest);
        if (dfd >= 0) {
            close(dfd);
        }
        goto out;
    }
    close(dfd);
    if (rename(staging, dest) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s: moving into place", dest);
        goto out;
    }
    r = pv_fs_sync_parent(dest, e);
out:
    stream_close(&s);
    if (r != PV_OK) {
        pv_fs_remove_tree(staging, NULL);
    }
    free(staging);
    free(target);
    return r;
}

/* ---- creation ---- */

static int encode_chain(const pv_chain *chain, pv_buf *out, pv_err *e)
{
    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, out);
    pv_cbor_put_chain(&enc, chain);
    int r = pv_cbor_enc_result(&enc);
    return r == PV_OK ? r : pv_err_set(e, r, "certificate chain is too large");
}

static void build_header(uint8_t h[PV_IMGPKG_HEADER_LEN], uint32_t sm_len, uint32_t chain_len,
                         uint64_t payload_len)
{
    memset(h, 0, PV_IMGPKG_HEADER_LEN);
    memcpy(h, PV_IMGPKG_MAGIC, PV_IMGPKG_MAGIC_LEN);
    h[8] = 0;
    h[9] = PV_IMGPKG_FORMAT_VERSION;
    h[10] = 0;
    h[11] = PV_IMGPKG_HEADER_LEN;
    /* 12..15 flags: zero */
    for (int i = 0; i < 4; i++) {
        h[16 + i] = (uint8_t)(sm_len >> (24 - 8 * i));
        h[20 + i] = (uint8_t)(chain_len >> (24 - 8 * i));
    }
    for (int i = 0; i < 8; i++) {
        h[24 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
    }
    /* 32..47 reserved: zero */
}

/* Encodes the manifest and signs it into cose with header as the external AAD. */
static int sign_manifest(const pv_key *key, const pv_manifest *m,
                         const uint8_t header[PV_IMGPKG_HEADER_LEN], pv_buf *manifest, pv_buf *cose,
                         pv_err *e)
{
    pv_buf_reset(manifest);
    pv_buf_reset(cose);
    int r = pv_manifest_encode(m, manifest, e);
    if (r != PV_OK) {
        return r;
    }
    r = pv_cose_sign1_create(key, m->signer_key_id, PV_KEY_ID_LEN, PV_IMGPKG_CONTENT_TYPE,
                             pv_buf_data(manifest), pv_buf_len(manifest), header,
                             PV_IMGPKG_HEADER_LEN, 0, cose, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "signing the manifest");
    }
    if (pv_buf_len(cose) > PV_IMGPKG_MAX_SIGNED_MANIFEST) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "signed manifest is larger than %d bytes",
                          PV_IMGPKG_MAX_SIGNED_MANIFEST);
    }
    return PV_OK;
}

/* Copies exactly size bytes of in_fd to out_fd's current offset, hashing the bytes as
 * they are written: the digest is of what the package holds, whatever happens to the
 * input meanwhile. The input must end at size. */
static int copy_hashed(int in_fd, int out_fd, uint64_t size, pv_sha256 *h, uint8_t *buf, pv_err *e)
{
    for (uint64_t off = 0; off < size;) {
        size_t n = size - off < IO_CHUNK ? (size_t)(size - off) : IO_CHUNK;
        int r = pv_fs_pread_all(in_fd, buf, n, off);
        if (r != PV_OK) {
            return r == PV_ERR_TRUNCATED
                       ? pv_err_set(e, PV_ERR_IO, "payload shrank while being packaged")
                       : pv_err_sys(e, PV_ERR_IO, errno, "reading the payload");
        }
        if (pv_sha256_update(h, buf, n) != PV_OK) {
            return pv_err_set(e, PV_ERR_CRYPTO, "hashing the payload");
        }
        if (pv_fs_write_all(out_fd, buf, n) != PV_OK) {
            return pv_err_sys(e, PV_ERR_IO, errno, "writing the package");
        }
        off += n;
    }
    if (pread(in_fd, buf, 1, (off_t)size) != 0) {
        return pv_err_set(e, PV_ERR_IO, "payload grew while being packaged");
    }
    return PV_OK;
}

/* The payload is read once. Its size fixes the layout before it is hashed: the manifest
 * encodes to the same length with any digest, and an ES256 COSE_Sign1's length does not
 * depend on the signature value. So the payload is copied into place while hashed, and
 * the header, signed manifest and chain are written in front of it afterwards. */
int pv_imgpkg_create(const char *dest, pv_manifest *m, int payload_fd, const pv_key *key,
                     const pv_chain *chain, bool overwrite, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    pv_key *leaf = NULL;
    pv_sha256 *h = pv_sha256_new();
    uint8_t *buf = malloc(IO_CHUNK);
    pv_buf *manifest = pv_buf_new(PV_MANIFEST_MAX_SIZE);
    pv_buf *cose = pv_buf_new(PV_IMGPKG_MAX_SIGNED_MANIFEST + 1024);
    pv_buf *chain_cbor = pv_buf_new(PV_IMGPKG_MAX_CHAIN);
    uint8_t header[PV_IMGPKG_HEADER_LEN];
    pv_afile out = {.fd = -1};
    struct stat st;
    if (h == NULL || buf == NULL || manifest == NULL || cose == NULL || chain_cbor == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (pv_chain_count(chain) == 0) {
        r = pv_err_set(e, PV_ERR_INVALID_ARG, "no signing certificate");
        goto out;
    }
    if ((r = pv_cert_public_key(pv_chain_get(chain, 0), &leaf, e)) != PV_OK) {
        pv_err_wrap(e, r, "signing certificate");
        goto out;
    }
    if (!pv_key_equal_public(leaf, key)) {
        r = pv_err_set(e, PV_ERR_INVALID_ARG,
                       "the signing key does not belong to the signing certificate");
        goto out;
    }
    if (fstat(payload_fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        r = pv_err_set(e, PV_ERR_IO, "the payload is not a regular file");
        goto out;
    }
    if ((uint64_t)st.st_size > PV_IMGPKG_MAX_PAYLOAD) {
        r = pv_err_set(e, PV_ERR_TOO_LARGE, "payload is larger than %llu bytes",
                       (unsigned long long)PV_IMGPKG_MAX_PAYLOAD);
        goto out;
    }
    m->payload_size = (uint64_t)st.st_size;
    memset(m->payload_sha256, 0, sizeof(m->payload_sha256)); /* placeholder, same length */
    if (pv_key_id(key, m->signer_key_id) != PV_OK) {
        r = pv_err_set(e, PV_ERR_CRYPTO, "computing the key ID");
        goto out;
    }
    if ((r = encode_chain(chain, chain_cbor, e)) != PV_OK) {
        goto out;
    }
    uint32_t chain_len = (uint32_t)pv_buf_len(chain_cbor);
    build_header(header, 0, chain_len, m->payload_size);
    if ((r = sign_manifest(key, m, header, manifest, cose, e)) != PV_OK) {
        goto out;
    }
    uint32_t signed_len = (uint32_t)pv_buf_len(cose);
    build_header(header, signed_len, chain_len, m->payload_size);

    if ((r = pv_afile_open(&out, dest, 0644, overwrite, e)) != PV_OK) {
        goto out;
    }
    off_t payload_offset = (off_t)PV_IMGPKG_HEADER_LEN + signed_len + chain_len;
    if (lseek(out.fd, payload_offset, SEEK_SET) != payload_offset) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s: seek", dest);
        goto out;
    }
    if ((r = copy_hashed(payload_fd, out.fd, m->payload_size, h, buf, e)) != PV_OK) {
        goto out;
    }
    if (pv_sha256_final(h, m->payload_sha256) != PV_OK) {
        r = pv_err_set(e, PV_ERR_CRYPTO, "hashing the payload");
        goto out;
    }
    if ((r = sign_manifest(key, m, header, manifest, cose, e)) != PV_OK) {
        goto out;
    }
    if (pv_buf_len(cose) != signed_len) {
        r = pv_err_set(e, PV_ERR_INTERNAL, "signed manifest length changed with its digest");
        goto out;
    }
    if (lseek(out.fd, 0, SEEK_SET) != 0 ||
        pv_fs_write_all(out.fd, header, sizeof(header)) != PV_OK ||
        pv_fs_write_all(out.fd, pv_buf_data(cose), pv_buf_len(cose)) != PV_OK ||
        pv_fs_write_all(out.fd, pv_buf_data(chain_cbor), pv_buf_len(chain_cbor)) != PV_OK) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s: write", dest);
        goto out;
    }
    r = pv_afile_commit(&out, e);
out:
    pv_afile_abort(&out);
    pv_key_free(leaf);
    pv_sha256_free(h);
    free(buf);
    pv_buf_free(manifest);
    pv_buf_free(cose);
    pv_buf_free(chain_cbor);
    return r;
}

/* An unnamed temporary file in the destination's directory (so a large payload does not
 * land on a small /tmp), falling back to TMPDIR. */
static int temp_fd(const char *dest, pv_err *e)
{
    char *copy = strdup(dest);
    if (copy == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int fd = open(dirname(copy), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    free(copy);
    if (fd >= 0) {
        return fd;
    }
    const char *tmpdir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/pavise-payload-XXXXXX", tmpdir ? tmpdir : "/tmp");
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "creating a temporary file");
    }
    unlink(path);
    return fd;
}

int pv_imgpkg_pack_dir(const char *dest, pv_manifest *m, const char *dir, const pv_key *key,
                       const pv_chain *chain, bool overwrite, pv_err *e)
{
    struct stat st;
    uint64_t size = 0;
    int r;
    if (m->entry_point == NULL || m->entry_point[0] != '/') {
        return pv_err_set(e, PV_ERR_MANIFEST, "the manifest has no absolute entry point");
    }
    if (!overwrite && access(dest, F_OK) == 0) {
        return pv_err_set(e, PV_ERR_EXISTS, "%s: already exists", dest);
    }
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        return pv_err_sys(e, errno == ENOENT ? PV_ERR_NOT_FOUND : PV_ERR_IO, errno, "%s", dir);
    }
    /* The entry point is an absolute path inside the package: look it up relative to dir. */
    r = fstatat(dirfd, m->entry_point + 1, &st, AT_SYMLINK_NOFOLLOW);
    close(dirfd);
    if (r != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 0111) == 0) {
        return pv_err_set(e, PV_ERR_MANIFEST,
                          "%s: entry point '%s' is not an executable regular file in the package "
                          "directory",
                          dir, m->entry_point);
    }
    int fd = temp_fd(dest, e);
    if (fd < 0) {
        return fd;
    }
    r = pv_tar_pack_dir(dir, fd, NULL, &size, e);
    if (r == PV_OK) {
        r = pv_imgpkg_create(dest, m, fd, key, chain, overwrite, e);
    }
    close(fd);
    return r;
}
