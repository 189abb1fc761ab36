/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which libraries an app's entry point needs: a small bounded ELF reader (ELF32 and ELF64,
 * either byte order) for PT_INTERP, DT_NEEDED and DT_RUNPATH, and the resolver that turns
 * the names into host files the way the dynamic loader in the compartment will find them.
 *
 * The entry point comes from an image: untrusted bytes. The reader never trusts an offset,
 * a size or a count from the file; every access is checked against the file's length
 * first, in 64-bit arithmetic, before it is made.
 */
#include "sb_internal.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Objects visited in one resolution (entry point, libraries in the image and on the host). */
#define SB_ELF_MAX_OBJS  (SB_MAX_LIBS + 32)
#define SB_ELF_MAX_FILE  (512u << 20) /* no library is larger; refuse rather than map */
#define SB_ELF_MAX_NAME  255
#define SB_ELF_MAX_RPATH 16 /* directories of one DT_RUNPATH */

/* The multiarch tuple of this build, for when the interpreter's directory does not name one
 * (Debian and Ubuntu keep libraries in /lib/<tuple>). */
#if defined(__x86_64__) && defined(__ILP32__)
#define SB_MULTIARCH "x86_64-linux-gnux32"
#elif defined(__x86_64__)
#define SB_MULTIARCH "x86_64-linux-gnu"
#elif defined(__aarch64__)
#define SB_MULTIARCH "aarch64-linux-gnu"
#elif defined(__arm__) && defined(__ARM_PCS_VFP)
#define SB_MULTIARCH "arm-linux-gnueabihf"
#elif defined(__arm__)
#define SB_MULTIARCH "arm-linux-gnueabi"
#elif defined(__i386__)
#define SB_MULTIARCH "i386-linux-gnu"
#elif defined(__riscv) && __riscv_xlen == 64
#define SB_MULTIARCH "riscv64-linux-gnu"
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SB_MULTIARCH "powerpc64le-linux-gnu"
#else
#define SB_MULTIARCH ""
#endif

/* ---- the reader ---- */

typedef struct elf_rd {
    const uint8_t *p;
    size_t len;
    bool be, is64;
} elf_rd;

/* off + n <= len, without overflow. */
static bool fits(size_t len, uint64_t off, uint64_t n)
{
    return off <= len && n <= (uint64_t)len - off;
}

/* An unsigned field of n bytes (1..8) at off; the caller has checked fits(). */
static uint64_t field(const elf_rd *r, uint64_t off, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned k = r->be ? i : n - 1 - i;
        v = (v << 8) | r->p[off + k];
    }
    return v;
}

/* A word or address: 4 bytes in ELF32, 8 in ELF64. */
static uint64_t word(const elf_rd *r, uint64_t off)
{
    return field(r, off, r->is64 ? 8 : 4);
}

typedef struct elf_load {
    uint64_t vaddr, offset, filesz;
} elf_load;

/* The NUL-terminated string at off inside [base, base + size) of the file. */
static const char *str_at(const elf_rd *r, uint64_t base, uint64_t size, uint64_t off)
{
    if (off >= size) {
        return NULL;
    }
    const char *s = (const char *)r->p + base + off;
    if (memchr(s, '\0', (size_t)(size - off)) == NULL) {
        return NULL;
    }
    return s;
}

/* The file range [*off, *off + size) that holds the virtual range [vaddr, vaddr + size). */
static bool vaddr_to_off(const elf_load *loads, size_t n, uint64_t vaddr, uint64_t size,
                         uint64_t *off)
{
    for (size_t i = 0; i < n; i++) {
        if (vaddr >= loads[i].vaddr && vaddr - loads[i].vaddr < loads[i].filesz &&
            size <= loads[i].filesz - (vaddr - loads[i].vaddr)) {
            *off = loads[i].offset + (vaddr - loads[i].vaddr);
            return true;
        }
    }
    return false;
}

static int parse_dynamic(const elf_rd *r, uint64_t off, uint64_t size, const elf_load *loads,
                         size_t n_loads, sb_elf_info *out, pv_err *e)
{
    unsigned ent = r->is64 ? 16 : 8;
    uint64_t needed[SB_ELF_MAX_NEEDED];
    size_t n_needed = 0;
    uint64_t strtab = 0, strsz = 0, runpath = 0, rpath = 0;
    bool have_strtab = false, have_strsz = false, have_runpath = false, have_rpath = false;
    for (uint64_t i = 0; i < size / ent; i++) {
        uint64_t at = off + i * ent;
        uint64_t tag = word(r, at), val = word(r, at + ent / 2);
        if (tag == DT_NULL) {
            break;
        }
        switch (tag) {
        case DT_NEEDED:
            if (n_needed == SB_ELF_MAX_NEEDED) {
                return pv_err_set(e, PV_ERR_TOO_LARGE, "more than %d DT_NEEDED entries",
                                  SB_ELF_MAX_NEEDED);
            }
            needed[n_needed++] = val;
            break;
        case DT_STRTAB:
            if (have_strtab) {
                return pv_err_set(e, PV_ERR_FORMAT, "two DT_STRTAB entries");
            }
            strtab = val;
            have_strtab = true;
            break;
        case DT_STRSZ:
            if (have_strsz) {
                return pv_err_set(e, PV_ERR_FORMAT, "two DT_STRSZ entries");
            }
            strsz = val;
            have_strsz = true;
            break;
        case DT_RUNPATH:
            runpath = val;
            have_runpath = true;
            break;
        case DT_RPATH:
            rpath = val;
            have_rpath = true;
            break;
        default:
            break;
        }
    }
    if (n_needed == 0 && !have_runpath && !have_rpath) {
        return PV_OK; /* e.g. a static-pie: nothing to look up */
    }
    uint64_t str_off = 0;
    if (!have_strtab || !have_strsz) {
        return pv_err_set(e, PV_ERR_FORMAT, "DT_NEEDED without DT_STRTAB and DT_STRSZ");
    }
    if (!vaddr_to_off(loads, n_loads, strtab, strsz, &str_off) || !fits(r->len, str_off, strsz)) {
        return pv_err_set(e, PV_ERR_FORMAT, "the string table is outside the file");
    }
    for (size_t i = 0; i < n_needed; i++) {
        out->needed[i] = str_at(r, str_off, strsz, needed[i]);
        if (out->needed[i] == NULL) {
            return pv_err_set(e, PV_ERR_FORMAT, "DT_NEEDED %zu is outside the string table", i);
        }
    }
    out->n_needed = n_needed;
    if (have_runpath || have_rpath) {
        /* DT_RUNPATH wins over DT_RPATH, as in the dynamic loader. */
        out->runpath = str_at(r, str_off, strsz, have_runpath ? runpath : rpath);
        if (out->runpath == NULL) {
            return pv_err_set(e, PV_ERR_FORMAT, "DT_RUNPATH is outside the string table");
        }
    }
    return PV_OK;
}

int sb_elf_parse(const uint8_t *p, size_t len, sb_elf_info *out, pv_err *e)
{
    memset(out, 0, sizeof(*out));
    if (len < EI_NIDENT || memcmp(p, ELFMAG, SELFMAG) != 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "not an ELF file");
    }
    if ((p[EI_CLASS] != ELFCLASS32 && p[EI_CLASS] != ELFCLASS64) ||
        (p[EI_DATA] != ELFDATA2LSB && p[EI_DATA] != ELFDATA2MSB) || p[EI_VERSION] != EV_CURRENT) {
        return pv_err_set(e, PV_ERR_FORMAT, "unknown ELF class, byte order or version");
    }
    elf_rd r = {
        .p = p, .len = len, .is64 = p[EI_CLASS] == ELFCLASS64, .be = p[EI_DATA] == ELFDATA2MSB};
    /* Header fields after e_ident: type, machine, version, entry, phoff, shoff, flags,
     * ehsize, phentsize, phnum. */
    unsigned ehsize = r.is64 ? 64 : 52, phent_min = r.is64 ? 56 : 32;
    if (len < ehsize) {
        return pv_err_set(e, PV_ERR_FORMAT, "truncated ELF header");
    }
    uint64_t type = field(&r, 16, 2), machine = field(&r, 18, 2);
    uint64_t phoff = r.is64 ? field(&r, 32, 8) : field(&r, 28, 4);
    uint64_t phentsize = field(&r, r.is64 ? 54 : 42, 2), phnum = field(&r, r.is64 ? 56 : 44, 2);
    if (type != ET_EXEC && type != ET_DYN) {
        return pv_err_set(e, PV_ERR_FORMAT, "neither an executable nor a shared object");
    }
    if (phnum > SB_ELF_MAX_PHNUM) {
        return pv_err_set(e, PV_ERR_FORMAT, "%llu program headers", (unsigned long long)phnum);
    }
    if (phnum > 0 && (phentsize < phent_min || !fits(len, phoff, phnum * phentsize))) {
        return pv_err_set(e, PV_ERR_FORMAT, "program headers outside the file");
    }
    out->is64 = r.is64;
    out->be = r.be;
    out->type = (uint16_t)type;
    out->machine = (uint16_t)machine;
    elf_load loads[SB_ELF_MAX_LOADS];
    size_t n_loads = 0;
    uint64_t dyn_off = 0, dyn_size = 0;
    bool have_dyn = false;
    for (uint64_t i = 0; i < phnum; i++) {
        uint64_t h = phoff + i * phentsize;
        uint64_t ptype = field(&r, h, 4);
        uint64_t off, vaddr, filesz;
        if (r.is64) {
            off = field(&r, h + 8, 8);
            vaddr = field(&r, h + 16, 8);
            filesz = field(&r, h + 32, 8);
        } else {
            off = field(&r, h + 4, 4);
            vaddr = field(&r, h + 8, 4);
            filesz = field(&r, h + 16, 4);
        }
        if (ptype == PT_LOAD) {
            if (n_loads == SB_ELF_MAX_LOADS) {
                return pv_err_set(e, PV_ERR_TOO_LARGE, "more than %d PT_LOAD segments",
                                  SB_ELF_MAX_LOADS);
            }
            loads[n_loads++] = (elf_load){vaddr, off, filesz};
        } else if (ptype == PT_INTERP) {
            if (out->interp != NULL) {
                return pv_err_set(e, PV_ERR_FORMAT, "two PT_INTERP headers");
            }
            if (filesz < 2 || filesz > PATH_MAX || !fits(len, off, filesz)) {
                return pv_err_set(e, PV_ERR_FORMAT, "PT_INTERP outside the file");
            }
            out->interp = str_at(&r, off, filesz, 0);
            if (out->interp == NULL || out->interp[0] != '/') {
                return pv_err_set(e, PV_ERR_FORMAT, "PT_INTERP is not an absolute path");
            }
        } else if (ptype == PT_DYNAMIC) {
            if (have_dyn) {
                return pv_err_set(e, PV_ERR_FORMAT, "two PT_DYNAMIC headers");
            }
            if (!fits(len, off, filesz)) {
                return pv_err_set(e, PV_ERR_FORMAT, "PT_DYNAMIC outside the file");
            }
            dyn_off = off;
            dyn_size = filesz;
            have_dyn = true;
        }
    }
    if (!have_dyn) {
        return PV_OK;
    }
    /* PT_LOADs come before PT_DYNAMIC is used: the table is read after the loop. */
    return parse_dynamic(&r, dyn_off, dyn_size, loads, n_loads, out, e);
}

/* ---- the resolver ---- */

/* A mapped object being followed. */
typedef struct elf_obj {
    uint8_t *map;
    size_t len;
    sb_elf_info info;
    char *cdir; /* its directory in the compartment, for $ORIGIN */
    char *name; /* for messages */
} elf_obj;

typedef struct resolver {
    const char *sysroot;
    int image_fd;
    char multiarch[64];
    bool is64, be;
    uint16_t machine;
    elf_obj *objs; /* SB_ELF_MAX_OBJS, a queue */
    size_t n_objs;
    const char *seen[SB_ELF_MAX_OBJS + 1]; /* names looked up (into objs' maps) */
    size_t n_seen;
    sb_libs *out;
} resolver;

static void obj_release(elf_obj *o)
{
    if (o->map != NULL) {
        munmap(o->map, o->len);
        o->map = NULL;
    }
    free(o->cdir);
    free(o->name);
    o->cdir = o->name = NULL;
}

/* Names a found object: name is its path (compartment or host), cdir the compartment
 * directory its $ORIGIN means. */
static int obj_name(elf_obj *o, const char *name, const char *cdir, pv_err *e)
{
    o->name = strdup(name);
    o->cdir = strdup(cdir);
    if (o->name == NULL || o->cdir == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    return PV_OK;
}

/* Maps a whole regular file read-only. fd is consumed. */
static int map_fd(int fd, const char *name, uint8_t **map, size_t *len, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", name);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        r = pv_err_set(e, PV_ERR_FORMAT, "%s: not a regular file", name);
        goto out;
    }
    if (st.st_size < EI_NIDENT || (uint64_t)st.st_size > SB_ELF_MAX_FILE) {
        r = pv_err_set(e, PV_ERR_FORMAT, "%s: %lld bytes is not an ELF file we read", name,
                       (long long)st.st_size);
        goto out;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s: mmap", name);
        goto out;
    }
    *map = m;
    *len = (size_t)st.st_size;
    r = PV_OK;
out:
    close(fd);
    return r;
}

/* Opens a file of the image by its path relative to the image root, never leaving it
 * (symbolic links included): the image is untrusted. */
static int open_in_image(int image_fd, const char *rel)
{
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    return (int)syscall(SYS_openat2, image_fd, rel, &how, sizeof(how));
}

static bool seen(const resolver *rs, const char *name)
{
    for (size_t i = 0; i < rs->n_seen; i++) {
        if (strcmp(rs->seen[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* Joins a, b (and c) into out; false when it does not fit. */
static bool join(char *out, size_t size, const char *a, const char *b, const char *c)
{
    int n = snprintf(out, size, "%s%s%s", a, b, c != NULL ? c : "");
    return n >= 0 && (size_t)n < size;
}

/* Normalizes an absolute path lexically ("." and ".." removed, slashes single) in place. */
static void normalize(char *path)
{
    char *out = path;
    const char *p = path;
    while (*p != '\0') {
        while (*p == '/') {
            p++;
        }
        const char *c = p;
        while (*p != '\0' && *p != '/') {
            p++;
        }
        size_t n = (size_t)(p - c);
        if (n == 0 || (n == 1 && c[0] == '.')) {
            continue;
        }
        if (n == 2 && c[0] == '.' && c[1] == '.') {
            while (out > path && *--out != '/') {
            }
            continue;
        }
        *out++ = '/';
        memmove(out, c, n);
        out += n;
    }
    if (out == path) {
        *out++ = '/';
    }
    *out = '\0';
}

/* The directory of one DT_RUNPATH entry inside the image, relative to its root ("" for the
 * root), or false when it is outside the image or uses a token other than $ORIGIN. */
static bool runpath_dir(const char *entry, size_t n, const char *origin, char *rel, size_t size)
{
    char dir[PATH_MAX];
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        const char *tok = NULL;
        size_t skip = 0;
        if (strncmp(entry + i, "$ORIGIN", 7) == 0 && (i + 7 >= n || entry[i + 7] == '/')) {
            tok = origin;
            skip = 7;
        } else if (strncmp(entry + i, "${ORIGIN}", 9) == 0) {
            tok = origin;
            skip = 9;
        } else if (entry[i] == '$') {
            return false; /* $LIB, $PLATFORM: not followed */
        }
        if (tok != NULL) {
            size_t t = strlen(tok);
            if (o + t >= sizeof(dir)) {
                return false;
            }
            memcpy(dir + o, tok, t);
            o += t;
            i += skip;
        } else {
            if (o + 1 >= sizeof(dir)) {
                return false;
            }
            dir[o++] = entry[i++];
        }
    }
    dir[o] = '\0';
    if (dir[0] != '/') {
        return false; /* relative to the working directory: never used */
    }
    normalize(dir);
    size_t a = strlen(SB_APP_DIR);
    if (strncmp(dir, SB_APP_DIR, a) != 0 || (dir[a] != '\0' && dir[a] != '/')) {
        return false;
    }
    const char *r = dir[a] == '\0' ? "" : dir + a + 1;
    return join(rel, size, r, "", NULL);
}

/* Opens, maps and parses a candidate. *found false (and PV_OK) when it is absent or of
 * another class or machine, which the dynamic loader would skip too. */
static int try_candidate(resolver *rs, int fd, const char *name, elf_obj *o, bool *found, pv_err *e)
{
    *found = false;
    int r = map_fd(fd, name, &o->map, &o->len, e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = sb_elf_parse(o->map, o->len, &o->info, e)) != PV_OK) {
        obj_release(o);
        return pv_err_wrap(e, r, "%s", name);
    }
    if (o->info.is64 != rs->is64 || o->info.be != rs->be || o->info.machine != rs->machine) {
        obj_release(o);
        return PV_OK;
    }
    *found = true;
    return PV_OK;
}

static int add_out(resolver *rs, const char *path, pv_err *e)
{
    for (size_t i = 0; i < rs->out->n; i++) {
        if (strcmp(rs->out->path[i], path) == 0) {
            return PV_OK;
        }
    }
    if (rs->out->n == SB_MAX_LIBS) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "more than %d libraries", SB_MAX_LIBS);
    }
    char *c = strdup(path);
    if (c == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    rs->out->path[rs->out->n++] = c;
    return PV_OK;
}

/* A needed name may not name a path: the loader would take it relative to the working
 * directory. */
static bool valid_name(const char *n)
{
    size_t len = strlen(n);
    return len > 0 && len <= SB_ELF_MAX_NAME && strchr(n, '/') == NULL && strcmp(n, ".") != 0 &&
           strcmp(n, "..") != 0;
}

/* Finds one needed library of `by` and queues it. */
static int resolve_one(resolver *rs, const elf_obj *by, const char *name, pv_err *e)
{
    if (rs->n_objs == SB_ELF_MAX_OBJS) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "more than %d objects to load", SB_ELF_MAX_OBJS);
    }
    elf_obj *o = &rs->objs[rs->n_objs];
    memset(o, 0, sizeof(*o));
    bool found = false;
    int r;
    /* 1. DT_RUNPATH of the object that needs it, inside the image only. */
    const char *rp = by->info.runpath;
    for (unsigned k = 0; rp != NULL && *rp != '\0' && k < SB_ELF_MAX_RPATH && !found; k++) {
        size_t n = strcspn(rp, ":");
        char rel[PATH_MAX], file[PATH_MAX];
        if (runpath_dir(rp, n, by->cdir, rel, sizeof(rel)) &&
            join(file, sizeof(file), rel, rel[0] != '\0' ? "/" : "", name)) {
            int fd = open_in_image(rs->image_fd, file);
            if (fd >= 0) {
                if ((r = try_candidate(rs, fd, file, o, &found, e)) != PV_OK) {
                    return r;
                }
                /* Where it is in the compartment: its name, and the directory its own
                 * $ORIGIN means. */
                char c[PATH_MAX], d[PATH_MAX];
                if (found && !join(c, sizeof(c), SB_APP_DIR "/", file, NULL)) {
                    obj_release(o);
                    return pv_err_set(e, PV_ERR_TOO_LARGE, "%s: path too long", file);
                }
                if (found) {
                    memcpy(d, c, sizeof(d));
                    *strrchr(d, '/') = '\0';
                    if ((r = obj_name(o, c, d, e)) != PV_OK) {
                        obj_release(o);
                        return r;
                    }
                }
            }
        }
        rp += n;
        if (*rp == ':') {
            rp++;
        }
    }
    /* 2. The loader's default directories on the host. */
    const char *ma = rs->multiarch;
    const char *dirs[6][2] = {{"/lib/", ma},      {"/usr/lib/", ma}, {"/lib", NULL},
                              {"/usr/lib", NULL}, {"/lib64", NULL},  {"/usr/lib64", NULL}};
    for (size_t d = 0; d < 6 && !found; d++) {
        char dir[PATH_MAX], file[PATH_MAX], host[PATH_MAX];
        if (dirs[d][1] != NULL && dirs[d][1][0] == '\0') {
            continue;
        }
        if (!join(dir, sizeof(dir), dirs[d][0], dirs[d][1] != NULL ? dirs[d][1] : "", NULL) ||
            !join(file, sizeof(file), dir, "/", name) ||
            !join(host, sizeof(host), rs->sysroot, file, NULL)) {
            return pv_err_set(e, PV_ERR_TOO_LARGE, "library path too long");
        }
        int fd = open(host, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
            continue;
        }
        if ((r = try_candidate(rs, fd, host, o, &found, e)) != PV_OK) {
            return r;
        }
        if (found) {
            if ((r = add_out(rs, host, e)) != PV_OK || (r = obj_name(o, host, dir, e)) != PV_OK) {
                obj_release(o);
                return r;
            }
        }
    }
    if (!found) {
        return pv_err_set(e, PV_ERR_NOT_FOUND, "%s (needed by %s) not found", name, by->name);
    }
    rs->n_objs++;
    return PV_OK;
}

/* The multiarch tuple from where the interpreter really is, e.g.
 * /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2. */
static void multiarch_from(const char *interp_host, char *out, size_t size)
{
    char real[PATH_MAX];
    if (realpath(interp_host, real) != NULL) {
        char *slash = strrchr(real, '/');
        if (slash != NULL && slash != real) {
            *slash = '\0';
            const char *base = strrchr(real, '/') + 1;
            size_t n = strlen(base);
            if (strstr(base, "-linux-") != NULL && n < size &&
                strspn(base, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n) {
                memcpy(out, base, n + 1);
                return;
            }
        }
    }
    snprintf(out, size, "%s", SB_MULTIARCH);
}

static bool valid_abs(const char *p)
{
    size_t n = strlen(p);
    if (n < 2 || n >= PATH_MAX || p[0] != '/') {
        return false;
    }
    for (const char *c = p; *c != '\0';) {
        c++; /* past '/' */
        size_t k = strcspn(c, "/");
        if (k == 0 || (k == 1 && c[0] == '.') || (k == 2 && c[0] == '.' && c[1] == '.')) {
            return false;
        }
        c += k;
    }
    return true;
}

/* The interpreter an image names is a path on the host that root opens, and that is bound
 * into the compartment with exec allowed: it must be the system's own loader, not a device
 * node (opening /dev/watchdog arms it), a file on a network or FUSE mount, or a file in
 * another app's storage. Accepted: a root-owned regular file, writable by no one else,
 * whose real path (symbolic links resolved: /lib64 and merged /lib are links) lies in the
 * system's library directories under sysroot. */
static int interp_check(const char *sysroot, const char *host, pv_err *e)
{
    static const char *const dirs[] = {"/usr/lib/", "/usr/lib64/", "/usr/lib32/",
                                       "/lib/",     "/lib64/",     "/lib32/"};
    char real[PATH_MAX], root_real[PATH_MAX] = "";
    struct stat st;
    if (sysroot[0] != '\0' && realpath(sysroot, root_real) == NULL) {
        return pv_err_sys(e, PV_ERR_NOT_FOUND, errno, "system root %s", sysroot);
    }
    if (realpath(host, real) == NULL) {
        return pv_err_sys(e, PV_ERR_NOT_FOUND, errno, "interpreter %s", host);
    }
    size_t rl = strlen(root_real);
    bool in_dirs = false;
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && !in_dirs; i++) {
        in_dirs =
            strncmp(real, root_real, rl) == 0 && strncmp(real + rl, dirs[i], strlen(dirs[i])) == 0;
    }
    if (!in_dirs) {
        return pv_err_set(e, PV_ERR_UNSAFE,
                          "interpreter %s is %s, not in the system's library "
                          "directories",
                          host, real);
    }
    if (lstat(real, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 ||
        (st.st_mode & 022) != 0) {
        return pv_err_set(e, PV_ERR_UNSAFE,
                          "interpreter %s is not a regular file owned and only writable by root",
                          real);
    }
    return PV_OK;
}

int sb_elf_libs_at(const char *sysroot, const char *image_dir, const char *entry_point,
                   sb_libs *out, pv_err *e)
{
    memset(out, 0, sizeof(*out));
    int r = PV_ERR_INTERNAL;
    sb_libs libs = {0};
    resolver rs = {.sysroot = sysroot, .image_fd = -1, .out = &libs};
    if (entry_point == NULL || !valid_abs(entry_point)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "entry point %s: not an absolute path",
                          entry_point != NULL ? entry_point : "(none)");
    }
    rs.objs = calloc(SB_ELF_MAX_OBJS, sizeof(*rs.objs));
    if (rs.objs == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    rs.image_fd = open(image_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rs.image_fd < 0) {
        r = pv_err_sys(e, errno == ENOENT ? PV_ERR_NOT_FOUND : PV_ERR_IO, errno, "%s", image_dir);
        goto out;
    }
    /* The entry point. */
    elf_obj *entry = &rs.objs[0];
    int fd = open_in_image(rs.image_fd, entry_point + 1);
    if (fd < 0) {
        r = pv_err_sys(e, errno == ENOENT ? PV_ERR_NOT_FOUND : PV_ERR_IO, errno, "%s", entry_point);
        goto out;
    }
    if ((r = map_fd(fd, entry_point, &entry->map, &entry->len, e)) != PV_OK) {
        goto out;
    }
    rs.n_objs = 1;
    if ((r = sb_elf_parse(entry->map, entry->len, &entry->info, e)) != PV_OK) {
        pv_err_wrap(e, r, "%s", entry_point);
        goto out;
    }
    rs.is64 = entry->info.is64;
    rs.be = entry->info.be;
    rs.machine = entry->info.machine;
    char cdir[PATH_MAX];
    snprintf(cdir, sizeof(cdir), "%s%s", SB_APP_DIR, entry_point);
    *strrchr(cdir, '/') = '\0';
    if ((r = obj_name(entry, entry_point, cdir, e)) != PV_OK) {
        goto out;
    }
    if (entry->info.interp == NULL) {
        if (entry->info.n_needed > 0) {
            r = pv_err_set(e, PV_ERR_FORMAT, "%s needs libraries but names no interpreter",
                           entry_point);
            goto out;
        }
        *out = libs; /* statically linked */
        r = PV_OK;
        goto out;
    }
    /* The interpreter: the kernel opens it by this very path. */
    const char *interp = entry->info.interp;
    char host[PATH_MAX];
    if (!valid_abs(interp) || !join(host, sizeof(host), sysroot, interp, NULL)) {
        r = pv_err_set(e, PV_ERR_FORMAT, "%s: interpreter %s is not a plain absolute path",
                       entry_point, interp);
        goto out;
    }
    elf_obj ld = {0};
    bool found = false;
    if ((r = interp_check(sysroot, host, e)) != PV_OK) {
        goto out;
    }
    fd = open(host, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        r = pv_err_sys(e, PV_ERR_NOT_FOUND, errno, "interpreter %s", host);
        goto out;
    }
    r = try_candidate(&rs, fd, host, &ld, &found, e);
    obj_release(&ld);
    if (r != PV_OK) {
        goto out;
    }
    if (!found) {
        r = pv_err_set(e, PV_ERR_FORMAT, "interpreter %s is for another machine", host);
        goto out;
    }
    if ((r = add_out(&rs, host, e)) != PV_OK) {
        goto out;
    }
    libs.has_interp = true;
    multiarch_from(host, rs.multiarch, sizeof(rs.multiarch));
    /* libc names the loader by its soname; the loader answers that itself. */
    rs.seen[rs.n_seen++] = strrchr(interp, '/') + 1;
    /* Breadth first over everything loaded; objs[] is the queue. */
    for (size_t q = 0; q < rs.n_objs; q++) {
        elf_obj *o = &rs.objs[q];
        for (size_t i = 0; i < o->info.n_needed; i++) {
            const char *name = o->info.needed[i];
            if (!valid_name(name)) {
                r = pv_err_set(e, PV_ERR_FORMAT, "%s: DT_NEEDED \"%.64s\" is not a file name",
                               o->name, name);
                goto out;
            }
            if (seen(&rs, name)) {
                continue;
            }
            if (rs.n_seen == sizeof(rs.seen) / sizeof(rs.seen[0])) {
                r = pv_err_set(e, PV_ERR_TOO_LARGE, "more than %d libraries to look up",
                               SB_ELF_MAX_OBJS);
                goto out;
            }
            rs.seen[rs.n_seen++] = name;
            if ((r = resolve_one(&rs, o, name, e)) != PV_OK) {
                goto out;
            }
        }
    }
    *out = libs;
    memset(&libs, 0, sizeof(libs));
    r = PV_OK;
out:
    /* seen[] points into the maps: release them last. */
    for (size_t i = 0; rs.objs != NULL && i < SB_ELF_MAX_OBJS; i++) {
        obj_release(&rs.objs[i]);
    }
    free(rs.objs);
    if (rs.image_fd >= 0) {
        close(rs.image_fd);
    }
    sb_libs_free(&libs);
    return r;
}

int sb_elf_libs(const char *image_dir, const char *entry_point, sb_libs *out, pv_err *e)
{
    return sb_elf_libs_at("", image_dir, entry_point, out, e);
}

void sb_libs_free(sb_libs *l)
{
    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < l->n && i < SB_MAX_LIBS; i++) {
        free(l->path[i]);
    }
    memset(l, 0, sizeof(*l));
}
