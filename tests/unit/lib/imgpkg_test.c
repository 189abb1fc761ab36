/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "testutil.h"

#include "pavise/fs.h"
#include "pavise/imgpkg.h"
#include "pavise/platform.h"

typedef struct fixture {
    char *dir;
    char *src; /* package directory */
    char *pkg; /* a valid package */
    pv_key *key;
    pv_chain *chain;
    pv_trust *anchor;
} fixture;

static void manifest_for(pv_manifest *m)
{
    memset(m, 0, sizeof(*m));
    assert_int_equal(pv_uuid_parse("6f1c0c8e-3a1e-4d5b-9a43-0c4f2e9b7d21", m->component_id), 0);
    assert_int_equal(pv_uuid_generate(m->image_id), 0);
    m->type = PV_IMAGE_APPLICATION;
    m->name = strdup("hello");
    m->version = strdup("1.0.0");
    m->security_counter = 4;
    m->build_time = 1700000000;
    m->entry_point = strdup("/bin/app");
    m->caps.mutable_storage_kb = 16;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    f->dir = tu_mkdtemp("imgpkg");
    int64_t now = pv_time_now();
    tu_make_chain(f->dir, now - 3600, now + 86400, &f->key, &f->chain, &f->anchor);
    f->src = tu_path(f->dir, "src");
    assert_int_equal(mkdir(f->src, 0755), 0);
    char *bin = tu_path(f->src, "bin");
    assert_int_equal(mkdir(bin, 0755), 0);
    char *app = tu_path(bin, "app");
    tu_write(app,
             "\x7f"
             "ELF pretend",
             12, 0755);
    char *data = tu_path(f->src, "data.txt");
    tu_write(data, "some data\n", 10, 0644);
    f->pkg = tu_path(f->dir, "app.imagepackage");
    pv_manifest m;
    manifest_for(&m);
    pv_err e;
    int r = pv_imgpkg_pack_dir(f->pkg, &m, f->src, f->key, f->chain, false, &e);
    if (r != 0) {
        fail_msg("pack: %s", e.msg);
    }
    pv_manifest_free(&m);
    free(bin);
    free(app);
    free(data);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmtree(f->dir);
    free(f->dir);
    free(f->src);
    free(f->pkg);
    pv_key_free(f->key);
    pv_chain_free(f->chain);
    pv_trust_free(f->anchor);
    free(f);
    pv_time_set_override(0);
    return 0;
}

static void test_round_trip(void **state)
{
    fixture *f = *state;
    pv_imgpkg *pkg = NULL;
    pv_err e;
    assert_int_equal(pv_imgpkg_open(f->pkg, &pkg, &e), 0);
    char *dest = tu_path(f->dir, "out");
    /* Not verified yet: extraction is refused. */
    assert_int_equal(pv_imgpkg_extract(pkg, dest, &e), PV_ERR_INVALID_ARG);
    if (pv_imgpkg_verify(pkg, f->anchor, &e) != 0) {
        fail_msg("verify: %s", e.msg);
    }
    const pv_manifest *m = pv_imgpkg_manifest(pkg);
    assert_string_equal(m->name, "hello");
    assert_int_equal(m->security_counter, 4);
    assert_int_equal(pv_imgpkg_extract(pkg, dest, &e), 0);
    size_t len;
    char *app = tu_path(dest, "bin/app");
    uint8_t *d = tu_read(app, &len);
    assert_int_equal(len, 12);
    assert_memory_equal(d,
                        "\x7f"
                        "ELF pretend",
                        12);
    struct stat st;
    assert_int_equal(stat(app, &st), 0);
    assert_true(st.st_mode & 0100);
    free(d);
    free(app);
    /* Only dest was created beside the package: no staging directory left. */
    assert_int_equal(tu_count_entries(f->dir), 6); /* root.crt chain.pem leaf.key src pkg out */
    /* A second extraction to the same, now non-empty, place is refused. */
    assert_int_equal(pv_imgpkg_extract(pkg, dest, &e), PV_ERR_EXISTS);
    /* A destination written with a trailing slash is the same directory, and the
     * extracted root has the same mode as every other directory. */
    char *slashed = tu_path(f->dir, "out2/");
    assert_int_equal(pv_imgpkg_extract(pkg, slashed, &e), 0);
    char *out2 = tu_path(f->dir, "out2");
    assert_int_equal(stat(out2, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_int_equal(tu_count_entries(f->dir), 7);
    pv_imgpkg_free(pkg);
    free(slashed);
    free(out2);
    free(dest);
}

static void test_every_byte_flip_rejected(void **state)
{
    fixture *f = *state;
    size_t len;
    uint8_t *orig = tu_read(f->pkg, &len);
    uint8_t *copy = malloc(len);
    for (size_t i = 0; i < len; i++) {
        memcpy(copy, orig, len);
        copy[i] ^= 0x01;
        pv_imgpkg *pkg = NULL;
        if (pv_imgpkg_open_mem(copy, len, &pkg, NULL) == 0) {
            if (pv_imgpkg_verify(pkg, f->anchor, NULL) == 0) {
                fail_msg("package with byte %zu flipped verified", i);
            }
            pv_imgpkg_free(pkg);
        }
    }
    free(copy);
    free(orig);
}

static void test_every_truncation_rejected(void **state)
{
    fixture *f = *state;
    size_t len;
    uint8_t *orig = tu_read(f->pkg, &len);
    for (size_t n = 0; n < len; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size, so ASan sees any over-read */
        memcpy(copy, orig, n);
        pv_imgpkg *pkg = NULL;
        pv_err e;
        int r = pv_imgpkg_open_mem(copy, n, &pkg, &e);
        if (r == 0) {
            fail_msg("package truncated to %zu of %zu bytes opened", n, len);
        }
        free(copy);
    }
    /* And a file truncated on disk. */
    char *cut = tu_path(f->dir, "cut.imagepackage");
    tu_write(cut, orig, len - 1, 0644);
    pv_imgpkg *pkg = NULL;
    pv_err e;
    assert_int_equal(pv_imgpkg_open(cut, &pkg, &e), PV_ERR_TRUNCATED);
    free(cut);
    free(orig);
}

static void test_wrong_anchor(void **state)
{
    fixture *f = *state;
    char *other = tu_path(f->dir, "other");
    assert_int_equal(mkdir(other, 0755), 0);
    pv_trust *wrong = NULL;
    int64_t now = pv_time_now();
    tu_make_chain(other, now - 3600, now + 86400, NULL, NULL, &wrong);
    pv_imgpkg *pkg = NULL;
    pv_err e;
    assert_int_equal(pv_imgpkg_open(f->pkg, &pkg, &e), 0);
    assert_int_equal(pv_imgpkg_verify(pkg, wrong, &e), PV_ERR_UNTRUSTED);
    assert_false(pv_imgpkg_is_verified(pkg));
    pv_imgpkg_free(pkg);
    pv_trust_free(wrong);
    free(other);
}

static void verify_at(fixture *f, int64_t leaf_nb, int64_t leaf_na, int expected)
{
    char *sub = tu_mkdtemp("imgpkg-validity");
    pv_key *key = NULL;
    pv_chain *chain = NULL;
    pv_trust *anchor = NULL;
    tu_make_chain(sub, leaf_nb, leaf_na, &key, &chain, &anchor);
    char *path = tu_path(sub, "p.imagepackage");
    pv_manifest m;
    manifest_for(&m);
    assert_int_equal(pv_imgpkg_pack_dir(path, &m, f->src, key, chain, false, NULL), 0);
    pv_imgpkg *pkg = NULL;
    pv_err e;
    assert_int_equal(pv_imgpkg_open(path, &pkg, &e), 0);
    assert_int_equal(pv_imgpkg_verify(pkg, anchor, &e), expected);
    pv_imgpkg_free(pkg);
    pv_manifest_free(&m);
    pv_key_free(key);
    pv_chain_free(chain);
    pv_trust_free(anchor);
    tu_rmtree(sub);
    free(sub);
    free(path);
}

static void test_signer_validity(void **state)
{
    fixture *f = *state;
    int64_t now = pv_time_now();
    verify_at(f, now - 10 * 86400, now - 86400, PV_ERR_EXPIRED); /* expired */
    verify_at(f, now + 86400, now + 10 * 86400, PV_ERR_EXPIRED); /* not yet valid */
    verify_at(f, now - 86400, now + 86400, PV_OK);
    /* The same valid package checked with a clock past its signer's expiry. */
    pv_imgpkg *pkg = NULL;
    assert_int_equal(pv_imgpkg_open(f->pkg, &pkg, NULL), 0);
    pv_time_set_override(now + 30 * 86400);
    assert_int_equal(pv_imgpkg_verify(pkg, f->anchor, NULL), PV_ERR_EXPIRED);
    pv_time_set_override(0);
    pv_imgpkg_free(pkg);
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    }
}

static void expect_header_error(const uint8_t *orig, size_t len, size_t off, uint64_t v, int n,
                                int code, const char *needle)
{
    uint8_t *copy = malloc(len);
    memcpy(copy, orig, len);
    put_be(copy + off, v, n);
    pv_imgpkg *pkg = NULL;
    pv_err e;
    pv_err_clear(&e);
    int r = pv_imgpkg_open_mem(copy, len, &pkg, &e);
    if (r != code || strstr(e.msg, needle) == NULL) {
        fail_msg("offset %zu value %llu: expected %d '%s', got %d '%s'", off, (unsigned long long)v,
                 code, needle, r, e.msg);
    }
    free(copy);
}

static void test_header_limits(void **state)
{
    fixture *f = *state;
    size_t len;
    uint8_t *p = tu_read(f->pkg, &len);
    expect_header_error(p, len, 0, 0x42, 1, PV_ERR_FORMAT, "bad magic");
    expect_header_error(p, len, 8, 2, 2, PV_ERR_UNSUPPORTED, "format version 2");
    expect_header_error(p, len, 10, 64, 2, PV_ERR_FORMAT, "header length");
    expect_header_error(p, len, 12, 1, 4, PV_ERR_UNSUPPORTED, "flags");
    expect_header_error(p, len, 16, PV_IMGPKG_MAX_SIGNED_MANIFEST + 1, 4, PV_ERR_TOO_LARGE,
                        "signed manifest length");
    expect_header_error(p, len, 16, 0, 4, PV_ERR_TOO_LARGE, "signed manifest length");
    expect_header_error(p, len, 20, 0xffffffff, 4, PV_ERR_TOO_LARGE, "certificate chain length");
    expect_header_error(p, len, 24, UINT64_MAX, 8, PV_ERR_TOO_LARGE, "payload length");
    expect_header_error(p, len, 24, PV_IMGPKG_MAX_PAYLOAD, 8, PV_ERR_TRUNCATED, "header says");
    expect_header_error(p, len, 40, 1, 1, PV_ERR_FORMAT, "reserved");
    /* Bytes after the payload. */
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, p, len);
    longer[len] = 0;
    pv_imgpkg *pkg = NULL;
    pv_err e;
    assert_int_equal(pv_imgpkg_open_mem(longer, len + 1, &pkg, &e), PV_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "after the end"));
    free(longer);
    free(p);
}

/* Writes a tar holding one hostile entry, packages it validly signed, and checks that
 * extraction refuses it with nothing left behind. */
static void hostile(fixture *f, const char *path, unsigned type, unsigned mode, const char *target,
                    const char *needle)
{
    char *tar = tu_path(f->dir, "hostile.tar");
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    assert_int_equal(archive_write_open_filename(a, tar), ARCHIVE_OK);
    struct archive_entry *ent = archive_entry_new();
    archive_entry_set_pathname(ent, "bin/app");
    archive_entry_set_mode(ent, AE_IFREG | 0755);
    archive_entry_set_size(ent, 1);
    archive_write_header(a, ent);
    archive_write_data(a, "x", 1);
    archive_entry_clear(ent);
    archive_entry_set_pathname(ent, path);
    archive_entry_set_mode(ent, (type ? type : AE_IFREG) | mode);
    if (type == AE_IFLNK) {
        archive_entry_set_symlink(ent, target);
    } else if (type == 0) {
        archive_entry_set_hardlink(ent, target);
    }
    assert_int_equal(archive_write_header(a, ent), ARCHIVE_OK);
    archive_entry_free(ent);
    archive_write_close(a);
    archive_write_free(a);

    char *pkgpath = tu_path(f->dir, "hostile.imagepackage");
    int fd = open(tar, O_RDONLY);
    pv_manifest m;
    manifest_for(&m);
    assert_int_equal(pv_imgpkg_create(pkgpath, &m, fd, f->key, f->chain, true, NULL), 0);
    close(fd);
    pv_manifest_free(&m);

    pv_imgpkg *pkg = NULL;
    pv_err e;
    assert_int_equal(pv_imgpkg_open(pkgpath, &pkg, &e), 0);
    assert_int_equal(pv_imgpkg_verify(pkg, f->anchor, &e), 0);
    int before = tu_count_entries(f->dir);
    char *dest = tu_path(f->dir, "hostile-out");
    pv_err_clear(&e);
    int r = pv_imgpkg_extract(pkg, dest, &e);
    if (r != PV_ERR_UNSAFE || strstr(e.msg, needle) == NULL) {
        fail_msg("%s: expected unsafe '%s', got %d '%s'", path, needle, r, e.msg);
    }
    assert_false(tu_exists(dest));
    assert_int_equal(tu_count_entries(f->dir), before);
    assert_false(tu_exists("/tmp/pavise-test-evil"));
    pv_imgpkg_free(pkg);
    free(dest);
    free(pkgpath);
    free(tar);
}

static void test_hostile_payloads(void **state)
{
    fixture *f = *state;
    hostile(f, "/tmp/pavise-test-evil", AE_IFREG, 0644, NULL, "absolute");
    hostile(f, "../evil", AE_IFREG, 0644, NULL, "'..'");
    hostile(f, "link", AE_IFLNK, 0777, "/etc", "relative");
    hostile(f, "link", AE_IFLNK, 0777, "../evil", "outside");
    hostile(f, "dev", AE_IFCHR, 0600, NULL, "device");
    hostile(f, "suid", AE_IFREG, 04755, NULL, "setuid");
    hostile(f, "sgid", AE_IFREG, 02755, NULL, "setgid");
    hostile(f, "bin/app", AE_IFREG, 0644, NULL, "duplicate");
    hostile(f, "hard", 0, 0644, "/etc/passwd", "hard link");
}

static void test_changed_after_verify(void **state)
{
    fixture *f = *state;
    char *copy = tu_path(f->dir, "copy.imagepackage");
    size_t len;
    uint8_t *p = tu_read(f->pkg, &len);
    tu_write(copy, p, len, 0644);
    pv_imgpkg *pkg = NULL;
    pv_err e;
    assert_int_equal(pv_imgpkg_open(copy, &pkg, &e), 0);
    assert_int_equal(pv_imgpkg_verify(pkg, f->anchor, &e), 0);
    /* Change a byte of a file's contents behind the verifier's back: the tar still
     * parses, only the second hash can notice. */
    uint8_t *at = memmem(p, len, "some data", 9);
    assert_non_null(at);
    *at = 'S';
    int fd = open(copy, O_WRONLY);
    assert_int_equal(pwrite(fd, at, 1, (off_t)(at - p)), 1);
    close(fd);
    char *dest = tu_path(f->dir, "changed-out");
    assert_int_equal(pv_imgpkg_extract(pkg, dest, &e), PV_ERR_DIGEST);
    assert_non_null(strstr(e.msg, "changed after verification"));
    assert_false(tu_exists(dest));
    pv_imgpkg_free(pkg);
    free(p);
    free(copy);
    free(dest);
}

static void test_pack_errors(void **state)
{
    fixture *f = *state;
    pv_manifest m;
    pv_err e;
    char *dest = tu_path(f->dir, "x.imagepackage");
    /* Entry point missing from the directory. */
    manifest_for(&m);
    free(m.entry_point);
    m.entry_point = strdup("/bin/missing");
    assert_int_equal(pv_imgpkg_pack_dir(dest, &m, f->src, f->key, f->chain, false, &e),
                     PV_ERR_MANIFEST);
    assert_non_null(strstr(e.msg, "/bin/missing"));
    pv_manifest_free(&m);
    /* Entry point not executable. */
    manifest_for(&m);
    free(m.entry_point);
    m.entry_point = strdup("/data.txt");
    assert_int_equal(pv_imgpkg_pack_dir(dest, &m, f->src, f->key, f->chain, false, &e),
                     PV_ERR_MANIFEST);
    pv_manifest_free(&m);
    /* Key that does not match the certificate. */
    pv_key *other = NULL;
    assert_int_equal(pv_key_generate(&other, NULL), 0);
    manifest_for(&m);
    assert_int_equal(pv_imgpkg_pack_dir(dest, &m, f->src, other, f->chain, false, &e),
                     PV_ERR_INVALID_ARG);
    pv_manifest_free(&m);
    pv_key_free(other);
    /* Existing destination is not overwritten without asking. */
    manifest_for(&m);
    assert_int_equal(pv_imgpkg_pack_dir(f->pkg, &m, f->src, f->key, f->chain, false, &e),
                     PV_ERR_EXISTS);
    pv_manifest_free(&m);
    assert_false(tu_exists(dest));
    free(dest);
}

/* ---- package heads ---- */

/* The head of the fixture's package, as pv_imgpkg_head gives it. */
static uint8_t *head_of(const char *path, size_t *len, pv_imgpkg_layout *layout)
{
    pv_imgpkg *pkg = NULL;
    uint8_t *head = NULL;
    pv_err e;
    assert_int_equal(pv_imgpkg_open(path, &pkg, &e), PV_OK);
    if (pv_imgpkg_head(pkg, &head, len, &e) != PV_OK) {
        fail_msg("head: %s", e.msg);
    }
    if (layout != NULL) {
        pv_imgpkg_get_layout(pkg, layout);
    }
    pv_imgpkg_free(pkg);
    return head;
}

static void test_head_round_trip(void **state)
{
    fixture *f = *state;
    size_t len = 0, full_len = 0;
    pv_imgpkg_layout whole, l;
    uint8_t *head = head_of(f->pkg, &len, &whole);
    uint8_t *full = tu_read(f->pkg, &full_len);
    assert_int_equal(len, whole.payload_offset);
    assert_memory_equal(head, full, len); /* the file up to its payload */
    assert_true(whole.payload_len > 0);

    pv_imgpkg *pkg = NULL;
    pv_err e;
    assert_int_equal(pv_imgpkg_open_head(head, len, &pkg, &e), PV_OK);
    pv_imgpkg_get_layout(pkg, &l);
    assert_int_equal(l.payload_len, whole.payload_len); /* reported, not read */
    assert_int_equal(l.total_len, whole.total_len);
    if (pv_imgpkg_verify_head(pkg, f->anchor, &e) != PV_OK) {
        fail_msg("verify_head: %s", e.msg);
    }
    /* A head never counts as verified: it has no payload to check or extract. */
    assert_false(pv_imgpkg_is_verified(pkg));
    assert_int_equal(pv_imgpkg_verify(pkg, f->anchor, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(pv_imgpkg_verify_self(pkg, &e), PV_ERR_INVALID_ARG);
    char *dest = tu_path(f->dir, "never");
    assert_int_equal(pv_imgpkg_extract(pkg, dest, &e), PV_ERR_INVALID_ARG);
    assert_false(tu_exists(dest));
    assert_string_equal(pv_imgpkg_manifest(pkg)->name, "hello");

    /* The same digest as the whole package's. */
    uint8_t d1[PV_SHA256_LEN], d2[PV_SHA256_LEN];
    pv_imgpkg *whole_pkg = NULL;
    assert_int_equal(pv_imgpkg_open(f->pkg, &whole_pkg, &e), PV_OK);
    assert_int_equal(pv_imgpkg_manifest_digest(pkg, d1), PV_OK);
    assert_int_equal(pv_imgpkg_manifest_digest(whole_pkg, d2), PV_OK);
    assert_memory_equal(d1, d2, PV_SHA256_LEN);
    /* verify_head works on a whole package too, and leaves it unverified. */
    assert_int_equal(pv_imgpkg_verify_head(whole_pkg, f->anchor, &e), PV_OK);
    assert_false(pv_imgpkg_is_verified(whole_pkg));
    /* The head of a head is itself. */
    uint8_t *again = NULL;
    size_t again_len = 0;
    assert_int_equal(pv_imgpkg_head(pkg, &again, &again_len, &e), PV_OK);
    assert_int_equal(again_len, len);
    assert_memory_equal(again, head, len);
    free(again);
    pv_imgpkg_free(whole_pkg);
    pv_imgpkg_free(pkg);
    /* A whole package is not a head: its payload is trailing bytes. */
    e.msg[0] = '\0';
    assert_int_equal(pv_imgpkg_open_head(full, full_len, &pkg, &e), PV_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "payload starts"));
    /* Nor is a head a whole package (unless its payload is empty). */
    assert_int_equal(pv_imgpkg_open_mem(head, len, &pkg, &e), PV_ERR_TRUNCATED);
    free(dest);
    free(full);
    free(head);
}

static void test_head_truncated(void **state)
{
    fixture *f = *state;
    size_t len = 0;
    uint8_t *head = head_of(f->pkg, &len, NULL);
    for (size_t n = 0; n < len; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size, so ASan sees any over-read */
        memcpy(copy, head, n);
        pv_imgpkg *pkg = NULL;
        pv_err e;
        int r = pv_imgpkg_open_head(copy, n, &pkg, &e);
        if (r != PV_ERR_TRUNCATED) {
            fail_msg("head truncated to %zu of %zu bytes: %d '%s'", n, len, r, e.msg);
        }
        free(copy);
    }
    free(head);
}

/* Every flipped bit of the header or the signed manifest is refused, by the parser or by
 * the signature (the header is the external AAD); the chain's bytes are refused or give
 * a chain that does not verify. */
static void test_head_tampered(void **state)
{
    fixture *f = *state;
    size_t len = 0;
    pv_imgpkg_layout l;
    uint8_t *head = head_of(f->pkg, &len, &l);
    uint8_t *copy = malloc(len);
    size_t manifest_sig = 0;
    for (size_t i = 0; i < len; i++) {
        memcpy(copy, head, len);
        copy[i] ^= 0x01;
        pv_imgpkg *pkg = NULL;
        pv_err e;
        if (pv_imgpkg_open_head(copy, len, &pkg, &e) == PV_OK) {
            int r = pv_imgpkg_verify_head(pkg, f->anchor, &e);
            if (r == PV_OK) {
                fail_msg("head with byte %zu flipped verified", i);
            }
            if (i < PV_IMGPKG_HEADER_LEN) {
                /* Every header field is checked on opening: none may slip through to
                 * rely on the signature alone. */
                fail_msg("head with header byte %zu flipped opened", i);
            }
            if (r == PV_ERR_SIGNATURE && i < l.payload_offset - l.chain_len) {
                manifest_sig++;
            }
            pv_imgpkg_free(pkg);
        }
    }
    /* The manifest's bytes a parser cannot judge are caught by the signature. */
    assert_true(manifest_sig > 0);
    /* The payload length is reported from the header and must agree with the manifest. */
    memcpy(copy, head, len);
    copy[31] ^= 0x01;
    pv_imgpkg *pkg = NULL;
    pv_err e;
    assert_int_equal(pv_imgpkg_open_head(copy, len, &pkg, &e), PV_ERR_FORMAT);
    free(copy);
    free(head);
}

static void test_head_wrong_root_and_expired(void **state)
{
    fixture *f = *state;
    size_t len = 0;
    uint8_t *head = head_of(f->pkg, &len, NULL);
    char *other = tu_path(f->dir, "other");
    assert_int_equal(mkdir(other, 0755), 0);
    pv_trust *wrong = NULL, *empty = pv_trust_new();
    int64_t now = pv_time_now();
    tu_make_chain(other, now - 3600, now + 86400, NULL, NULL, &wrong);
    pv_imgpkg *pkg = NULL;
    pv_err e;
    assert_int_equal(pv_imgpkg_open_head(head, len, &pkg, &e), PV_OK);
    assert_int_equal(pv_imgpkg_verify_head(pkg, wrong, &e), PV_ERR_UNTRUSTED);
    assert_int_equal(pv_imgpkg_verify_head(pkg, empty, &e), PV_ERR_INVALID_ARG); /* no anchor */
    /* The signer's certificate expires a day from now. */
    pv_time_set_override(now + 30 * 86400);
    assert_int_equal(pv_imgpkg_verify_head(pkg, f->anchor, &e), PV_ERR_EXPIRED);
    pv_time_set_override(0);
    assert_int_equal(pv_imgpkg_verify_head(pkg, f->anchor, &e), PV_OK);
    pv_imgpkg_free(pkg);
    pv_trust_free(wrong);
    pv_trust_free(empty);
    free(other);
    free(head);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_byte_flip_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_truncation_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_anchor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signer_validity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_payloads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_after_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pack_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_tampered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_wrong_root_and_expired, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
