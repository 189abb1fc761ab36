/* SPDX-License-Identifier: Apache-2.0 */
#include "pavise/tar.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "pavise/fs.h"

#define COPY_CHUNK (256 * 1024)

/* ==== packing ==== */

typedef struct pack_ctx {
    struct archive *a;
    int out_fd;
    pv_sha256 *hash;
    uint64_t size;
    size_t entries;
    uint8_t *chunk;
    pv_err *e;
    int err; /* a write callback failure, reported after libarchive returns */
} pack_ctx;

static la_ssize_t pack_write(struct archive *a, void *ctx, const void *p, size_t n)
{
    pack_ctx *c = ctx;
    (void)a;
    if (pv_fs_write_all(c->out_fd, p, n) != PV_OK) {
        c->err = pv_err_sys(c->e, PV_ERR_IO, errno, "writing the payload");
        return -1;
    }
    if (c->hash != NULL && pv_sha256_update(c->hash, p, n) != PV_OK) {
        c->err = pv_err_set(c->e, PV_ERR_CRYPTO, "hashing the payload");
        return -1;
    }
    c->size += n;
    return (la_ssize_t)n;
}

static int by_name(const void *a, const void *b)
{
    /* bytewise: independent of the locale */
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_control(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return true;
        }
    }
    return false;
}

/* Symbolic link rule shared by packer and extractor: relative, non-empty, '..' only as
 * leading components and no more of them than the link's depth (parent_depth), no empty
 * components. Returns PV_OK or PV_ERR_UNSAFE with the reason. */
static int check_link_target(const char *path, const char *target, int parent_depth, pv_err *e)
{
    if (target[0] == '\0' || target[0] == '/' || strlen(target) > PV_TAR_MAX_PATH ||
        has_control(target)) {
        return pv_err_set(e, PV_ERR_UNSAFE,
                          "'%s': symbolic link target must be a relative path of at most %d bytes",
                          path, PV_TAR_MAX_PATH);
    }
    int ups = 0;
    bool plain_seen = false;
    const char *p = target;
    while (*p != '\0') {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0) {
            return pv_err_set(e, PV_ERR_UNSAFE,
                              "'%s': symbolic link target '%s' has an empty "
                              "component",
                              path, target);
        }
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (plain_seen) {
                return pv_err_set(e, PV_ERR_UNSAFE,
                                  "'%s': symbolic link target '%s' has '..' after a name", path,
                                  target);
            }
            ups++;
        } else if (!(n == 1 && p[0] == '.')) {
            plain_seen = true;
        }
        p += n;
        if (*p == '/') {
            p++;
        }
    }
    if (ups > parent_depth) {
        return pv_err_set(e, PV_ERR_UNSAFE,
                          "'%s': symbolic link target '%s' points outside the "
                          "archive",
                          path, target);
    }
    return PV_OK;
}

static int path_depth(const char *rel)
{
    int d = 0;
    for (const char *p = rel; *p != '\0'; p++) {
        d += *p == '/';
    }
    return d; /* number of parent directories of rel */
}

static int pack_tree(pack_ctx *c, int dirfd, const char *rel, int depth);

static int pack_file_data(pack_ctx *c, int fd, const char *rel, uint64_t size)
{
    uint64_t done = 0;
    while (done < size) {
        ssize_t k = read(fd, c->chunk, COPY_CHUNK);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            return pv_err_sys(c->e, PV_ERR_IO, errno, "'%s'", rel);
        }
        if (k == 0 || done + (uint64_t)k > size) {
            return pv_err_set(c->e, PV_ERR_IO, "'%s' changed size while being packed", rel);
        }
        if (archive_write_data(c->a, c->chunk, (size_t)k) != k) {
            return c->err
                       ? c->err
                       : pv_err_set(c->e, PV_ERR_IO, "'%s': %s", rel, archive_error_string(c->a));
        }
        done += (uint64_t)k;
    }
    return PV_OK;
}

static int pack_entry(pack_ctx *c, int dirfd, const char *name, const char *rel, int depth)
{
    int r = PV_ERR_INTERNAL;
    int fd = -1;
    struct archive_entry *ent = NULL;
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return pv_err_sys(c->e, PV_ERR_IO, errno, "'%s'", rel);
    }
    if (++c->entries > PV_TAR_MAX_ENTRIES) {
        return pv_err_set(c->e, PV_ERR_TOO_LARGE, "more than %d entries", PV_TAR_MAX_ENTRIES);
    }
    if (st.st_mode & (S_ISUID | S_ISGID | S_ISVTX)) {
        return pv_err_set(c->e, PV_ERR_UNSAFE, "'%s' has the setuid, setgid or sticky bit", rel);
    }
    ent = archive_entry_new();
    if (ent == NULL) {
        return pv_err_set(c->e, PV_ERR_NOMEM, "out of memory");
    }
    archive_entry_set_pathname(ent, rel);
    archive_entry_set_uid(ent, 0);
    archive_entry_set_gid(ent, 0);
    archive_entry_set_mtime(ent, 0, 0);
    if (S_ISREG(st.st_mode)) {
        fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st2;
        if (fd < 0 || fstat(fd, &st2) != 0 || !S_ISREG(st2.st_mode) || st2.st_ino != st.st_ino) {
            r = pv_err_set(c->e, PV_ERR_IO, "'%s' could not be opened or changed type", rel);
            goto out;
        }
        archive_entry_set_filetype(ent, AE_IFREG);
        archive_entry_set_perm(ent, (st.st_mode & 0111) ? 0755 : 0644);
        archive_entry_set_size(ent, st.st_size);
    } else if (S_ISDIR(st.st_mode)) {
        archive_entry_set_filetype(ent, AE_IFDIR);
        archive_entry_set_perm(ent, 0755);
    } else if (S_ISLNK(st.st_mode)) {
        char target[PV_TAR_MAX_PATH + 2];
        ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
        if (n < 0 || (size_t)n >= sizeof(target) - 1) {
            r = pv_err_set(c->e, PV_ERR_UNSAFE,
                           "'%s': symbolic link target unreadable or too "
                           "long",
                           rel);
            goto out;
        }
        target[n] = '\0';
        if ((r = check_link_target(rel, target, path_depth(rel), c->e)) != PV_OK) {
            goto out;
        }
        archive_entry_set_filetype(ent, AE_IFLNK);
        archive_entry_set_perm(ent, 0777);
        archive_entry_set_symlink(ent, target);
    } else {
        r = pv_err_set(c->e, PV_ERR_UNSAFE,
                       "'%s' is a device node, FIFO or socket; packages hold only files, "
                       "directories and symbolic links",
                       rel);
        goto out;
    }
    if (archive_write_header(c->a, ent) != ARCHIVE_OK) {
        r = c->err ? c->err
                   : pv_err_set(c->e, PV_ERR_IO, "'%s': %s", rel, archive_error_string(c->a));
        goto out;
    }
    if (S_ISREG(st.st_mode)) {
        r = pack_file_data(c, fd, rel, (uint64_t)st.st_size);
    } else if (S_ISDIR(st.st_mode)) {
        int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            r = pv_err_sys(c->e, PV_ERR_IO, errno, "'%s'", rel);
            goto out;
        }
        r = pack_tree(c, sub, rel, depth + 1); /* closes sub */
    } else {
        r = PV_OK;
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    archive_entry_free(ent);
    return r;
}

/* Packs the entries of dirfd (which it closes); rel is the directory's archive path. */
static int pack_tree(pack_ctx *c, int dirfd, const char *rel, int depth)
{
    int r = PV_OK;
    char **names = NULL;
    int n = -1;
    if (depth >= PV_TAR_MAX_DEPTH) { /* its entries would have depth + 1 components */
        close(dirfd);
        return pv_err_set(c->e, PV_ERR_TOO_LARGE, "'%s' is nested deeper than %d levels", rel,
                          PV_TAR_MAX_DEPTH);
    }
    DIR *d = fdopendir(dirfd);
    if (d == NULL) {
        close(dirfd);
        return pv_err_sys(c->e, PV_ERR_IO, errno, "'%s'", rel[0] ? rel : ".");
    }
    /* scandir needs a path; read the open directory instead to stay race-free. */
    struct dirent *de;
    size_t cap = 0, count = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 32;
            char **grown = realloc(names, cap * sizeof(*names));
            if (grown == NULL) {
                r = pv_err_set(c->e, PV_ERR_NOMEM, "out of memory");
                goto out;
            }
            names = grown;
        }
        /* readdir's records are only d_reclen long: copy the name, not the struct. */
        names[count] = strdup(de->d_name);
        if (names[count] == NULL) {
            r = pv_err_set(c->e, PV_ERR_NOMEM, "out of memory");
            goto out;
        }
        count++;
        if (count > PV_TAR_MAX_ENTRIES) {
            r = pv_err_set(c->e, PV_ERR_TOO_LARGE, "more than %d entries", PV_TAR_MAX_ENTRIES);
            goto out;
        }
    }
    n = (int)count;
    qsort(names, count, sizeof(*names), by_name);
    for (int i = 0; i < n && r == PV_OK; i++) {
        const char *name = names[i];
        char child[PV_TAR_MAX_PATH + 1];
        int len = snprintf(child, sizeof(child), "%s%s%s", rel, rel[0] ? "/" : "", name);
        /* At most PV_TAR_MAX_PATH - 1 bytes, so a directory's entry with its trailing
         * '/' still fits the extractor's limit. */
        if (len < 0 || len >= PV_TAR_MAX_PATH) {
            r = pv_err_set(c->e, PV_ERR_TOO_LARGE, "'%s/%s': path longer than %d bytes", rel, name,
                           PV_TAR_MAX_PATH);
        } else if (has_control(name)) {
            r = pv_err_set(c->e, PV_ERR_UNSAFE, "'%s': name has control characters", rel);
        } else {
            r = pack_entry(c, dirfd, name, child, depth);
        }
    }
out:
    for (size_t i = 0; i < count; i++) {
        free(names[i]);
    }
    free(names);
    closedir(d);
    return r;
}

int pv_tar_pack_dir(const char *dir, int out_fd, pv_sha256 *hash, uint64_t *size, pv_err *e)
{
    *size = 0;
    pack_ctx c = {.out_fd = out_fd, .hash = hash, .e = e};
    int r = PV_ERR_INTERNAL;
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        return pv_err_sys(e, errno == ENOENT ? PV_ERR_NOT_FOUND : PV_ERR_IO, errno, "%s", dir);
    }
    c.chunk = malloc(COPY_CHUNK);
    c.a = archive_write_new();
    if (c.chunk == NULL || c.a == NULL) {
        close(dirfd);
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (archive_write_set_format_pax_restricted(c.a) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(c.a, 512) != ARCHIVE_OK ||
        archive_write_open(c.a, &c, NULL, pack_write, NULL) != ARCHIVE_OK) {
        close(dirfd);
        r = pv_err_set(e, PV_ERR_INTERNAL, "tar writer: %s", archive_error_string(c.a));
        goto out;
    }
    r = pack_tree(&c, dirfd, "", 0);
    if (r == PV_OK && archive_write_close(c.a) != ARCHIVE_OK) {
        r = c.err ? c.err : pv_err_set(e, PV_ERR_IO, "tar: %s", archive_error_string(c.a));
    }
    if (r == PV_OK) {
        *size = c.size;
    }
out:
    if (c.a != NULL) {
        archive_write_free(c.a);
    }
    free(c.chunk);
    return r == PV_OK ? r : pv_err_wrap(e, r, "%s", dir);
}

/* ==== extraction ==== */

enum kind { K_FILE, K_HARDLINK, K_DIR, K_IMPLICIT_DIR, K_LINK };

typedef struct seen {
    char *path;
    enum kind kind; /* never K_HARDLINK: a hard link is recorded as the file it names */
    mode_t perm;    /* for files: the mode they were given */
} seen;

typedef struct extract_ctx {
    pv_tar_read_fn read;
    void *read_ctx;
    seen *slots; /* open addressing, linear probing; cap is a power of two */
    size_t nseen;
    size_t cap;
    pv_err *e;
} extract_ctx;

static la_ssize_t extract_read(struct archive *a, void *ctx, const void **buf)
{
    extract_ctx *c = ctx;
    ssize_t n = c->read(c->read_ctx, buf);
    if (n < 0) {
        archive_set_error(a, EIO, "payload read failed");
        return -1;
    }
    return (la_ssize_t)n;
}

static size_t hash_path(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    }
    return (size_t)h;
}

static seen *find_seen(extract_ctx *c, const char *path)
{
    if (c->cap == 0) {
        return NULL;
    }
    for (size_t i = hash_path(path) & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
        if (c->slots[i].path == NULL) {
            return NULL;
        }
        if (strcmp(c->slots[i].path, path) == 0) {
            return &c->slots[i];
        }
    }
}

static void insert_slot(seen *slots, size_t cap, seen item)
{
    size_t i = hash_path(item.path) & (cap - 1);
    while (slots[i].path != NULL) {
        i = (i + 1) & (cap - 1);
    }
    slots[i] = item;
}

/* Adds a path that is not in the table yet; keeps the load at most one half. */
static int add_seen(extract_ctx *c, const char *path, enum kind kind, mode_t perm)
{
    if (2 * (c->nseen + 1) > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        seen *slots = calloc(cap, sizeof(*slots));
        if (slots == NULL) {
            return PV_ERR_NOMEM;
        }
        for (size_t i = 0; i < c->cap; i++) {
            if (c->slots[i].path != NULL) {
                insert_slot(slots, cap, c->slots[i]);
            }
        }
        free(c->slots);
        c->slots = slots;
        c->cap = cap;
    }
    char *copy = strdup(path);
    if (copy == NULL) {
        return PV_ERR_NOMEM;
    }
    insert_slot(c->slots, c->cap, (seen){.path = copy, .kind = kind, .perm = perm});
    c->nseen++;
    return PV_OK;
}

/* Normalizes an archive path into out: leading "./" and "." components and a trailing
 * '/' dropped. Empty result (the root itself) gives an empty string. Refuses absolute
 * paths, '..', empty inner components, control characters, over-long or too deep. */
static int normalize(const char *raw, char *out, size_t out_size, pv_err *e)
{
    if (raw == NULL) {
        return pv_err_set(e, PV_ERR_UNSAFE, "entry has no usable path name");
    }
    /* First, so that no message below ever echoes a control character. */
    if (has_control(raw)) {
        return pv_err_set(e, PV_ERR_UNSAFE, "an entry's path has control characters");
    }
    if (raw[0] == '/') {
        return pv_err_set(e, PV_ERR_UNSAFE, "'%.200s': absolute path", raw);
    }
    if (strlen(raw) > PV_TAR_MAX_PATH) {
        return pv_err_set(e, PV_ERR_UNSAFE, "'%.200s...': path longer than %d bytes", raw,
                          PV_TAR_MAX_PATH);
    }
    size_t o = 0;
    int depth = 0;
    const char *p = raw;
    out[0] = '\0';
    while (*p != '\0') {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0) {
            return pv_err_set(e, PV_ERR_UNSAFE, "'%.200s': empty path component", raw);
        }
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            return pv_err_set(e, PV_ERR_UNSAFE, "'%.200s': path has a '..' component", raw);
        }
        if (!(n == 1 && p[0] == '.')) {
            if (++depth > PV_TAR_MAX_DEPTH) {
                return pv_err_set(e, PV_ERR_UNSAFE, "'%.200s': nested deeper than %d levels", raw,
                                  PV_TAR_MAX_DEPTH);
            }
            if (o + n + 2 > out_size) {
                return pv_err_set(e, PV_ERR_UNSAFE, "'%.200s': path too long", raw);
            }
            if (o > 0) {
                out[o++] = '/';
            }
            memcpy(out + o, p, n);
            o += n;
            out[o] = '\0';
        }
        p += n;
        if (*p == '/') {
            p++; /* a single trailing '/' ends the loop here */
        }
    }
    return PV_OK;
}

/* Checks the parents of path: none may be a file or a symbolic link of the archive;
 * records the missing ones as implicit directories. */
static int check_parents(extract_ctx *c, const char *path)
{
    char parent[PV_TAR_MAX_PATH + 1];
    snprintf(parent, sizeof(parent), "%s", path);
    for (char *slash = strchr(parent, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        seen *s = find_seen(c, parent);
        if (s != NULL && s->kind == K_LINK) {
            return pv_err_set(c->e, PV_ERR_UNSAFE,
                              "'%s': path goes through the symbolic link "
                              "'%s'",
                              path, parent);
        }
        if (s != NULL && s->kind == K_FILE) {
            return pv_err_set(c->e, PV_ERR_UNSAFE, "'%s': path goes through the file '%s'", path,
                              parent);
        }
        if (s == NULL && add_seen(c, parent, K_IMPLICIT_DIR, 0755) != PV_OK) {
            return pv_err_set(c->e, PV_ERR_NOMEM, "out of memory");
        }
        *slash = '/';
    }
    return PV_OK;
}

/* What check_entry decided about an entry. */
typedef struct entry_plan {
    enum kind kind;
    mode_t perm;                           /* files and directories */
    char link_target[PV_TAR_MAX_PATH + 1]; /* hard links: the normalized target */
} entry_plan;

static int plan_hardlink(extract_ctx *c, struct archive_entry *ent, const char *path,
                         entry_plan *plan)
{
    int r =
        normalize(archive_entry_hardlink(ent), plan->link_target, sizeof(plan->link_target), c->e);
    if (r != PV_OK) {
        return pv_err_wrap(c->e, r, "'%s': hard link target", path);
    }
    seen *t = find_seen(c, plan->link_target);
    if (t == NULL || t->kind != K_FILE) {
        return pv_err_set(c->e, PV_ERR_UNSAFE,
                          "'%s': hard link to '%s', which is not an earlier file of the archive",
                          path, plan->link_target);
    }
    /* pax lets a hard link carry data, which would be written through the link into the
     * earlier file: a second, hidden version of it. */
    if (archive_entry_size_is_set(ent) && archive_entry_size(ent) != 0) {
        return pv_err_set(c->e, PV_ERR_UNSAFE, "'%s': hard link carries data", path);
    }
    plan->kind = K_HARDLINK;
    plan->perm = t->perm; /* the shared inode keeps the mode its file was given */
    return PV_OK;
}

/* Every rule of pv_tar_extract for one entry, and what to write for it. */
static int check_entry(extract_ctx *c, struct archive_entry *ent, const char *path,
                       entry_plan *plan)
{
    mode_t type = archive_entry_filetype(ent);
    mode_t mode = archive_entry_mode(ent);
    int r;
    if (mode & (S_ISUID | S_ISGID | S_ISVTX)) {
        return pv_err_set(c->e, PV_ERR_UNSAFE, "'%s': setuid, setgid or sticky bit", path);
    }
    if (archive_entry_sparse_count(ent) > 0) {
        return pv_err_set(c->e, PV_ERR_UNSAFE, "'%s': sparse files are not accepted", path);
    }
    if (archive_entry_hardlink(ent) != NULL) {
        if ((r = plan_hardlink(c, ent, path, plan)) != PV_OK) {
            return r;
        }
    } else if (type == AE_IFREG) {
        plan->kind = K_FILE;
        plan->perm = (archive_entry_perm(ent) & 0111) ? 0755 : 0644;
    } else if (type == AE_IFDIR) {
        plan->kind = K_DIR;
        plan->perm = 0755;
    } else if (type == AE_IFLNK) {
        const char *target = archive_entry_symlink(ent);
        if (target == NULL) {
            return pv_err_set(c->e, PV_ERR_UNSAFE, "'%s': symbolic link without target", path);
        }
        if ((r = check_link_target(path, target, path_depth(path), c->e)) != PV_OK) {
            return r;
        }
        plan->kind = K_LINK;
    } else {
        return pv_err_set(c->e, PV_ERR_UNSAFE,
                          "'%s': device nodes, FIFOs and sockets are not accepted", path);
    }
    if ((r = check_parents(c, path)) != PV_OK) {
        return r;
    }
    /* Looked up after check_parents, which may grow (and move) the table. */
    seen *s = find_seen(c, path);
    if (s != NULL && !(s->kind == K_IMPLICIT_DIR && plan->kind == K_DIR)) {
        return pv_err_set(c->e, PV_ERR_UNSAFE, "'%s': duplicate entry", path);
    }
    if (s != NULL) {
        s->kind = K_DIR;
    } else if (add_seen(c, path, plan->kind == K_HARDLINK ? K_FILE : plan->kind, plan->perm) !=
               PV_OK) {
        return pv_err_set(c->e, PV_ERR_NOMEM, "out of memory");
    }
    /* Implicit parent directories cost what entries cost: they count. */
    if (c->nseen > PV_TAR_MAX_ENTRIES) {
        return pv_err_set(c->e, PV_ERR_UNSAFE, "more than %d entries and directories",
                          PV_TAR_MAX_ENTRIES);
    }
    return PV_OK;
}

/* An error from libarchive's disk writer: an I/O error when the system gave a reason
 * (no space, no inodes), otherwise one of libarchive's own safety refusals. */
static int disk_error(struct archive *out, const char *path, pv_err *e)
{
    int err = archive_errno(out);
    if (err > 0) {
        return pv_err_sys(e, PV_ERR_IO, err, "'%s'", path);
    }
    return pv_err_set(e, PV_ERR_UNSAFE, "'%s': %s", path, archive_error_string(out));
}

/* Copies a file's data. The bytes must arrive in order, without holes, and add up to
 * exactly the declared size: pax keys such as GNU.sparse.realsize can declare a size
 * far beyond the data, which libarchive would create by extending the file. */
static int copy_data(struct archive *in, struct archive *out, la_int64_t declared, const char *path,
                     pv_err *e)
{
    la_int64_t written = 0;
    for (;;) {
        const void *buf;
        size_t size;
        la_int64_t offset;
        int rc = archive_read_data_block(in, &buf, &size, &offset);
        if (rc == ARCHIVE_EOF) {
            break;
        }
        if (rc != ARCHIVE_OK) {
            return pv_err_set(e, PV_ERR_FORMAT, "'%s': %s", path, archive_error_string(in));
        }
        if (offset != written || (la_int64_t)size > declared - written) {
            return pv_err_set(e, PV_ERR_UNSAFE, "'%s': data has holes or exceeds its size", path);
        }
        if (archive_write_data_block(out, buf, size, offset) != ARCHIVE_OK) {
            return disk_error(out, path, e);
        }
        written += (la_int64_t)size;
    }
    if (written != declared) {
        return pv_err_set(e, PV_ERR_UNSAFE, "'%s': %lld bytes of data for a declared %lld", path,
                          (long long)written, (long long)declared);
    }
    return PV_OK;
}

int pv_tar_extract(pv_tar_read_fn read_fn, void *ctx, const char *dest_dir, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    extract_ctx c = {.read = read_fn, .read_ctx = ctx, .e = e};
    struct archive *in = archive_read_new();
    struct archive *out = archive_write_disk_new();
    char *root = realpath(dest_dir, NULL);
    size_t entries = 0;
    if (in == NULL || out == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (root == NULL) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", dest_dir);
        goto out;
    }
    /* Only plain tar: no compression filters, no other formats. */
    archive_read_support_format_tar(in);
    archive_write_disk_set_options(out, ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                            ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                            ARCHIVE_EXTRACT_NO_OVERWRITE | ARCHIVE_EXTRACT_PERM);
    if (archive_read_open(in, &c, NULL, extract_read, NULL) != ARCHIVE_OK) {
        r = pv_err_set(e, PV_ERR_FORMAT, "payload is not a tar archive: %s",
                       archive_error_string(in));
        goto out;
    }
    for (;;) {
        struct archive_entry *ent;
        int rc = archive_read_next_header(in, &ent);
        if (rc == ARCHIVE_EOF) {
            break;
        }
        if (rc != ARCHIVE_OK) {
            r = pv_err_set(e, PV_ERR_FORMAT, "malformed tar: %s", archive_error_string(in));
            goto out;
        }
        if (++entries > PV_TAR_MAX_ENTRIES) {
            r = pv_err_set(e, PV_ERR_UNSAFE, "more than %d entries", PV_TAR_MAX_ENTRIES);
            goto out;
        }
        char path[PV_TAR_MAX_PATH + 1];
        entry_plan plan;
        if ((r = normalize(archive_entry_pathname(ent), path, sizeof(path), e)) != PV_OK) {
            goto out;
        }
        if (path[0] == '\0') {
            if (archive_entry_filetype(ent) != AE_IFDIR) {
                r = pv_err_set(e, PV_ERR_UNSAFE, "entry for the root is not a directory");
                goto out;
            }
            continue; /* "./": the destination itself */
        }
        if ((r = check_entry(&c, ent, path, &plan)) != PV_OK) {
            goto out;
        }
        /* Write under the resolved destination, with modes we choose. */
        char full[PATH_MAX];
        if ((size_t)snprintf(full, sizeof(full), "%s/%s", root, path) >= sizeof(full)) {
            r = pv_err_set(e, PV_ERR_UNSAFE, "'%s': path too long", path);
            goto out;
        }
        archive_entry_set_pathname(ent, full);
        if (plan.kind == K_HARDLINK) {
            char tfull[PATH_MAX];
            if ((size_t)snprintf(tfull, sizeof(tfull), "%s/%s", root, plan.link_target) >=
                sizeof(tfull)) {
                r = pv_err_set(e, PV_ERR_UNSAFE, "'%s': path too long", path);
                goto out;
            }
            archive_entry_set_hardlink(ent, tfull);
        }
        archive_entry_set_uid(ent, 0);
        archive_entry_set_gid(ent, 0);
        if (plan.kind != K_LINK) {
            archive_entry_set_perm(ent, plan.perm);
        }
        /* The writer must never see the declared size: it would extend the file to it
         * when the entry is finished, even when we stop because the data fell short.
         * copy_data holds the data to that size instead. */
        la_int64_t declared = archive_entry_size(ent);
        archive_entry_unset_size(ent);
        if (archive_write_header(out, ent) != ARCHIVE_OK) {
            r = disk_error(out, path, e);
            goto out;
        }
        if (plan.kind == K_FILE && (r = copy_data(in, out, declared, path, e)) != PV_OK) {
            goto out;
        }
        if (archive_write_finish_entry(out) != ARCHIVE_OK) {
            r = disk_error(out, path, e);
            goto out;
        }
    }
    if (archive_write_close(out) != ARCHIVE_OK) {
        r = pv_err_set(e, PV_ERR_IO, "finishing extraction: %s", archive_error_string(out));
        goto out;
    }
    r = PV_OK;
out:
    for (size_t i = 0; i < c.cap; i++) {
        free(c.slots[i].path);
    }
    free(c.slots);
    free(root);
    if (in != NULL) {
        archive_read_free(in);
    }
    if (out != NULL) {
        archive_write_free(out);
    }
    return r;
}
