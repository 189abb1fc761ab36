/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ELF reader (sb_elf_parse) on files made by the test in every class and byte order,
 * damaged ones included, and the resolver (sb_elf_libs) on a made-up system root and image.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "testutil.h"

#include "sandbox.h"
#include "sb_internal.h"

/* ---- a small ELF writer ---- */

typedef struct elfb {
    bool is64, be;
    uint16_t machine;
    uint16_t type;      /* 0: ET_DYN */
    const char *interp; /* NULL: none */
    const char *needed[40];
    size_t n_needed;
    const char *runpath; /* NULL: none */
    bool rpath;          /* write it as DT_RPATH */
    bool no_dynamic;
} elfb;

static void put(uint8_t *p, size_t off, uint64_t v, unsigned n, bool be)
{
    for (unsigned i = 0; i < n; i++) {
        p[off + (be ? n - 1 - i : i)] = (uint8_t)(v >> (8 * i));
    }
}

/* Layout: header, program headers (LOAD, INTERP?, DYNAMIC?), interp, string table,
 * dynamic section. One PT_LOAD maps the whole file at 0x10000. Returns the size. */
static size_t build(const elfb *b, uint8_t *out, size_t cap)
{
    const bool w = b->is64, be = b->be;
    const unsigned eh = w ? 64 : 52, ph = w ? 56 : 32, dyn = w ? 16 : 8, word = w ? 8 : 4;
    const uint64_t base = 0x10000;
    unsigned nph = 1 + (b->interp != NULL) + !b->no_dynamic;
    size_t off = eh + nph * ph;
    size_t interp_off = off;
    off += b->interp != NULL ? strlen(b->interp) + 1 : 0;
    size_t str_off = off;
    char strtab[4096];
    size_t slen = 1, name_at[40], rp_at = 0;
    strtab[0] = '\0';
    for (size_t i = 0; i < b->n_needed; i++) {
        name_at[i] = slen;
        memcpy(strtab + slen, b->needed[i], strlen(b->needed[i]) + 1);
        slen += strlen(b->needed[i]) + 1;
    }
    if (b->runpath != NULL) {
        rp_at = slen;
        memcpy(strtab + slen, b->runpath, strlen(b->runpath) + 1);
        slen += strlen(b->runpath) + 1;
    }
    off += slen;
    off = (off + 7) & ~(size_t)7;
    size_t dyn_off = off;
    size_t n_dyn = b->n_needed + 2 + (b->runpath != NULL) + 1;
    size_t total = b->no_dynamic ? off : dyn_off + n_dyn * dyn;
    assert_true(total <= cap);
    memset(out, 0, total);
    memcpy(out,
           "\x7f"
           "ELF",
           4);
    out[4] = w ? 2 : 1;
    out[5] = be ? 2 : 1;
    out[6] = 1;
    put(out, 16, b->type != 0 ? b->type : 3, 2, be);
    put(out, 18, b->machine, 2, be);
    put(out, 20, 1, 4, be);
    put(out, w ? 32 : 28, eh, word, be); /* e_phoff */
    put(out, w ? 52 : 40, eh, 2, be);    /* e_ehsize */
    put(out, w ? 54 : 42, ph, 2, be);    /* e_phentsize */
    put(out, w ? 56 : 44, nph, 2, be);   /* e_phnum */
    size_t h = eh;
    /* p_type, then offset, vaddr, filesz at their class's places */
    unsigned o_off = w ? 8 : 4, o_va = w ? 16 : 8, o_fs = w ? 32 : 16;
    put(out, h, 1, 4, be); /* PT_LOAD */
    put(out, h + o_off, 0, word, be);
    put(out, h + o_va, base, word, be);
    put(out, h + o_fs, total, word, be);
    h += ph;
    if (b->interp != NULL) {
        put(out, h, 3, 4, be); /* PT_INTERP */
        put(out, h + o_off, interp_off, word, be);
        put(out, h + o_va, base + interp_off, word, be);
        put(out, h + o_fs, strlen(b->interp) + 1, word, be);
        memcpy(out + interp_off, b->interp, strlen(b->interp) + 1);
        h += ph;
    }
    memcpy(out + str_off, strtab, slen);
    if (!b->no_dynamic) {
        put(out, h, 2, 4, be); /* PT_DYNAMIC */
        put(out, h + o_off, dyn_off, word, be);
        put(out, h + o_va, base + dyn_off, word, be);
        put(out, h + o_fs, n_dyn * dyn, word, be);
        size_t d = dyn_off;
        for (size_t i = 0; i < b->n_needed; i++, d += dyn) {
            put(out, d, 1, word, be); /* DT_NEEDED */
            put(out, d + word, name_at[i], word, be);
        }
        put(out, d, 5, word, be); /* DT_STRTAB */
        put(out, d + word, base + str_off, word, be);
        d += dyn;
        put(out, d, 10, word, be); /* DT_STRSZ */
        put(out, d + word, slen, word, be);
        d += dyn;
        if (b->runpath != NULL) {
            put(out, d, b->rpath ? 15 : 29, word, be);
            put(out, d + word, rp_at, word, be);
            d += dyn;
        }
        /* DT_NULL: already zero */
    }
    return total;
}

static int parse_copy(const uint8_t *p, size_t len, sb_elf_info *info)
{
    /* An exact-size copy, so the sanitizer sees any read past the end. */
    uint8_t *c = malloc(len > 0 ? len : 1);
    memcpy(c, p, len);
    pv_err e;
    int r = sb_elf_parse(c, len, info, &e);
    free(c);
    return r;
}

/* ---- the reader ---- */

static void test_parse_every_class_and_order(void **state)
{
    (void)state;
    uint8_t buf[8192];
    for (int w = 0; w < 2; w++) {
        for (int be = 0; be < 2; be++) {
            elfb b = {.is64 = w,
                      .be = be,
                      .machine = 0x1234,
                      .interp = "/lib/ld.so.1",
                      .needed = {"liba.so.1", "libb.so"},
                      .n_needed = 2,
                      .runpath = "$ORIGIN/../lib:/opt/x"};
            size_t n = build(&b, buf, sizeof(buf));
            sb_elf_info info;
            pv_err e;
            int r = sb_elf_parse(buf, n, &info, &e);
            if (r != PV_OK) {
                fail_msg("class %d order %d: %s", w, be, pv_err_msg(&e));
            }
            assert_int_equal(info.is64, w);
            assert_int_equal(info.be, be);
            assert_int_equal(info.machine, 0x1234);
            assert_string_equal(info.interp, "/lib/ld.so.1");
            assert_int_equal(info.n_needed, 2);
            assert_string_equal(info.needed[0], "liba.so.1");
            assert_string_equal(info.needed[1], "libb.so");
            assert_string_equal(info.runpath, "$ORIGIN/../lib:/opt/x");
            /* DT_RPATH is read when there is no DT_RUNPATH */
            b.rpath = true;
            n = build(&b, buf, sizeof(buf));
            assert_int_equal(sb_elf_parse(buf, n, &info, &e), PV_OK);
            assert_string_equal(info.runpath, "$ORIGIN/../lib:/opt/x");
            /* every prefix is refused or read, never read past */
            for (size_t k = 0; k < n; k++) {
                int rk = parse_copy(buf, k, &info);
                assert_true(rk == PV_OK || rk == PV_ERR_FORMAT);
            }
        }
    }
    /* a static executable: nothing needed */
    elfb s = {.is64 = true, .machine = 62, .type = 2, .no_dynamic = true};
    size_t n = build(&s, buf, sizeof(buf));
    sb_elf_info info;
    pv_err e;
    assert_int_equal(sb_elf_parse(buf, n, &info, &e), PV_OK);
    assert_null(info.interp);
    assert_int_equal(info.n_needed, 0);
}

static void test_parse_real_file(void **state)
{
    (void)state;
    size_t len;
    if (access("/bin/true", R_OK) != 0) {
        skip();
    }
    uint8_t *d = tu_read("/bin/true", &len);
    sb_elf_info info;
    pv_err e;
    assert_int_equal(sb_elf_parse(d, len, &info, &e), PV_OK);
    assert_non_null(info.interp);
    bool libc = false;
    for (size_t i = 0; i < info.n_needed; i++) {
        libc = libc || strcmp(info.needed[i], "libc.so.6") == 0;
    }
    assert_true(libc);
    free(d);
}

/* Sets a field of a built 64-bit little-endian file. */
static void poke(uint8_t *p, size_t off, uint64_t v, unsigned n)
{
    put(p, off, v, n, false);
}

static void test_parse_refuses_damage(void **state)
{
    (void)state;
    uint8_t good[4096], buf[4096];
    elfb b = {
        .is64 = true, .machine = 62, .interp = "/lib/ld.so", .needed = {"liba.so"}, .n_needed = 1};
    size_t n = build(&b, good, sizeof(good));
    /* phdrs at 64: LOAD at 64, INTERP at 120, DYNAMIC at 176 */
    sb_elf_info info;
    pv_err e;
    assert_int_equal(sb_elf_parse(good, n, &info, &e), PV_OK);
    struct {
        size_t off;
        uint64_t v;
        unsigned n;
        int want;
    } cases[] = {
        {0, 0x7e, 1, PV_ERR_FORMAT},             /* magic */
        {4, 3, 1, PV_ERR_FORMAT},                /* class */
        {5, 0, 1, PV_ERR_FORMAT},                /* byte order */
        {6, 2, 1, PV_ERR_FORMAT},                /* version */
        {16, 1, 2, PV_ERR_FORMAT},               /* ET_REL */
        {56, 600, 2, PV_ERR_FORMAT},             /* e_phnum too large */
        {54, 20, 2, PV_ERR_FORMAT},              /* e_phentsize too small */
        {32, 1ull << 62, 8, PV_ERR_FORMAT},      /* e_phoff far away */
        {32, 4000, 8, PV_ERR_FORMAT},            /* program headers past the end */
        {120 + 8, 1ull << 40, 8, PV_ERR_FORMAT}, /* PT_INTERP offset */
        {120 + 32, 1, 8, PV_ERR_FORMAT},         /* PT_INTERP of one byte */
        {120 + 32, 5000, 8, PV_ERR_FORMAT},      /* PT_INTERP longer than PATH_MAX */
        {176 + 32, ~0ull, 8, PV_ERR_FORMAT},     /* PT_DYNAMIC size */
        {64 + 32, 8, 8, PV_ERR_FORMAT},          /* PT_LOAD too short for the strings */
        {64 + 16, 0x90000, 8, PV_ERR_FORMAT},    /* PT_LOAD elsewhere */
        {120, 2, 4, PV_ERR_FORMAT},              /* two PT_DYNAMIC */
        {176, 3, 4, PV_ERR_FORMAT},              /* two PT_INTERP */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(buf, good, n);
        poke(buf, cases[i].off, cases[i].v, cases[i].n);
        int r = parse_copy(buf, n, &info);
        if (r != cases[i].want) {
            fail_msg("case %zu: %d", i, r);
        }
    }
    /* the interpreter not terminated inside its segment */
    memcpy(buf, good, n);
    size_t interp_at = 64 + 3 * 56;
    poke(buf, 120 + 32, strlen("/lib/ld.so"), 8); /* filesz without the NUL */
    assert_int_equal(parse_copy(buf, n, &info), PV_ERR_FORMAT);
    /* a relative interpreter */
    memcpy(buf, good, n);
    buf[interp_at] = 'x';
    assert_int_equal(parse_copy(buf, n, &info), PV_ERR_FORMAT);
    /* DT_NEEDED outside the string table; DT_STRSZ past the file; no DT_STRTAB */
    size_t dyn_at = (interp_at + strlen("/lib/ld.so") + 1 + 1 + strlen("liba.so") + 1 + 7) & ~7u;
    memcpy(buf, good, n);
    poke(buf, dyn_at + 8, 5000, 8);
    assert_int_equal(parse_copy(buf, n, &info), PV_ERR_FORMAT);
    memcpy(buf, good, n);
    poke(buf, dyn_at + 2 * 16 + 8, 1ull << 40, 8);
    assert_int_equal(parse_copy(buf, n, &info), PV_ERR_FORMAT);
    memcpy(buf, good, n);
    poke(buf, dyn_at + 16, 7, 8); /* DT_STRTAB becomes DT_RELA */
    assert_int_equal(parse_copy(buf, n, &info), PV_ERR_FORMAT);
    /* a string table whose last byte is not NUL */
    memcpy(buf, good, n);
    poke(buf, dyn_at + 2 * 16 + 8, 1 + strlen("liba"), 8);
    assert_int_equal(parse_copy(buf, n, &info), PV_ERR_FORMAT);
    /* too many DT_NEEDED */
    elfb many = {.is64 = true, .machine = 62, .n_needed = 0};
    uint8_t big[8192];
    static char names[40][8];
    for (size_t i = 0; i < 40; i++) {
        snprintf(names[i], sizeof(names[i]), "l%zu.so", i);
        many.needed[i] = names[i];
    }
    many.n_needed = 40;
    n = build(&many, big, sizeof(big));
    assert_int_equal(parse_copy(big, n, &info), PV_OK);
    assert_int_equal(info.n_needed, 40);
    assert_int_equal(parse_copy(big, 3, &info), PV_ERR_FORMAT);
}

/* ---- the resolver ---- */

typedef struct tree {
    char *dir, *sys, *img;
} tree;

static void mkdirs(const char *base, const char *rel)
{
    char p[PATH_MAX];
    int n = snprintf(p, sizeof(p), "%s/%s", base, rel);
    assert_true(n > 0 && (size_t)n < sizeof(p));
    for (char *c = p + strlen(base) + 1; (c = strchr(c, '/')) != NULL; c++) {
        *c = '\0';
        mkdir(p, 0755);
        *c = '/';
    }
    mkdir(p, 0755);
}

static void put_elf(const char *base, const char *rel, const elfb *b)
{
    uint8_t buf[8192];
    size_t n = build(b, buf, sizeof(buf));
    char p[PATH_MAX], d[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", base, rel);
    snprintf(d, sizeof(d), "%s", rel);
    char *slash = strrchr(d, '/');
    if (slash != NULL) {
        *slash = '\0';
        mkdirs(base, d);
    }
    tu_write(p, buf, n, 0755);
}

#define M    62
#define LD   "/lib/test-linux-gnu/ld-test.so.1"
#define ARCH "test-linux-gnu"

static int tree_setup(void **state)
{
    tree *t = calloc(1, sizeof(*t));
    t->dir = tu_mkdtemp("sb_elf");
    t->sys = tu_path(t->dir, "sys");
    t->img = tu_path(t->dir, "img");
    mkdir(t->sys, 0755);
    mkdir(t->img, 0755);
    elfb ld = {.is64 = true, .machine = M, .no_dynamic = true};
    put_elf(t->sys, "lib/" ARCH "/ld-test.so.1", &ld);
    /* liba in /usr/lib/<arch>, needs libb and names the loader (skipped: it is the loader) */
    elfb a = {.is64 = true, .machine = M, .needed = {"libb.so.2", "ld-test.so.1"}, .n_needed = 2};
    put_elf(t->sys, "usr/lib/" ARCH "/liba.so.1", &a);
    /* libb: a 32-bit one first in the search order (skipped), the right one in /lib */
    elfb b32 = {.is64 = false, .machine = 3, .no_dynamic = true};
    put_elf(t->sys, "lib/" ARCH "/libb.so.2", &b32);
    elfb b = {.is64 = true, .machine = M, .no_dynamic = true};
    put_elf(t->sys, "lib/libb.so.2", &b);
    /* the image: an app with RUNPATH $ORIGIN/../lib, a library of its own there */
    elfb app = {.is64 = true,
                .machine = M,
                .interp = LD,
                .needed = {"liba.so.1", "libimg.so"},
                .n_needed = 2,
                .runpath = "/nonexistent:$ORIGIN/../lib"};
    put_elf(t->img, "bin/app", &app);
    elfb img = {.is64 = true, .machine = M, .needed = {"libb.so.2"}, .n_needed = 1};
    put_elf(t->img, "lib/libimg.so", &img);
    *state = t;
    return 0;
}

static int tree_teardown(void **state)
{
    tree *t = *state;
    tu_rmtree(t->dir);
    free(t->dir);
    free(t->sys);
    free(t->img);
    free(t);
    return 0;
}

static void assert_libs(const tree *t, const sb_libs *l, const char *const *want)
{
    size_t n = 0;
    for (; want[n] != NULL; n++) {
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s%s", t->sys, want[n]);
        assert_true(n < l->n);
        assert_string_equal(l->path[n], p);
    }
    assert_int_equal(l->n, n);
}

static void test_resolve(void **state)
{
    tree *t = *state;
    sb_libs l;
    pv_err e;
    int r = sb_elf_libs_at(t->sys, t->img, "/bin/app", &l, &e);
    if (r != PV_OK) {
        fail_msg("%s", pv_err_msg(&e));
    }
    assert_true(l.has_interp);
    /* the interpreter first; libimg is in the image (already at /app): not listed */
    static const char *const want[] = {LD, "/usr/lib/" ARCH "/liba.so.1", "/lib/libb.so.2", NULL};
    assert_libs(t, &l, want);
    sb_libs_free(&l);
    sb_libs_free(NULL);
}

static void test_resolve_refusals(void **state)
{
    tree *t = *state;
    sb_libs l;
    pv_err e;
    /* a library that is nowhere */
    elfb miss = {
        .is64 = true, .machine = M, .interp = LD, .needed = {"libmissing.so.9"}, .n_needed = 1};
    put_elf(t->img, "bin/miss", &miss);
    assert_int_equal(sb_elf_libs_at(t->sys, t->img, "/bin/miss", &l, &e), PV_ERR_NOT_FOUND);
    assert_non_null(strstr(e.msg, "libmissing.so.9"));
    assert_int_equal(l.n, 0);
    /* an interpreter that is not the system's loader: a device node (opening a watchdog
     * arms it), a file outside the library directories, one others may write, a link out */
    mkdirs(t->sys, "dev");
    char *node = tu_path(t->sys, "dev/watchdog");
    assert_int_equal(mknod(node, S_IFCHR | 0600, makedev(1, 3)), 0);
    char *lnk = tu_path(t->sys, "lib/ld-link.so");
    assert_int_equal(symlink("../dev/watchdog", lnk), 0);
    mkdirs(t->sys, "srv/storage");
    elfb fake = {.is64 = true, .machine = M, .no_dynamic = true};
    put_elf(t->sys, "srv/storage/ld.so", &fake);
    put_elf(t->sys, "lib/" ARCH "/ld-open.so", &fake);
    char *open_ld = tu_path(t->sys, "lib/" ARCH "/ld-open.so");
    assert_int_equal(chmod(open_ld, 0777), 0);
    static const char *const bad[] = {"/dev/watchdog", "/lib/ld-link.so", "/srv/storage/ld.so",
                                      "/lib/" ARCH "/ld-open.so"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        elfb app = {
            .is64 = true, .machine = M, .interp = bad[i], .needed = {"liba.so.1"}, .n_needed = 1};
        put_elf(t->img, "bin/badld", &app);
        assert_int_equal(sb_elf_libs_at(t->sys, t->img, "/bin/badld", &l, &e), PV_ERR_UNSAFE);
        assert_int_equal(l.n, 0);
    }
    free(node);
    free(lnk);
    free(open_ld);
    /* RUNPATH leading out of the image is not followed */
    char outside[PATH_MAX];
    snprintf(outside, sizeof(outside), "%s/lib", t->dir);
    mkdirs(t->dir, "lib");
    elfb lib = {.is64 = true, .machine = M, .no_dynamic = true};
    put_elf(t->dir, "lib/libout.so", &lib);
    elfb esc = {.is64 = true,
                .machine = M,
                .interp = LD,
                .needed = {"libout.so"},
                .n_needed = 1,
                .runpath = "$ORIGIN/../../lib:/app/../../lib"};
    put_elf(t->img, "bin/esc", &esc);
    assert_int_equal(sb_elf_libs_at(t->sys, t->img, "/bin/esc", &l, &e), PV_ERR_NOT_FOUND);
    /* nor a symbolic link in the image pointing out of it */
    char link[PATH_MAX], target[PATH_MAX];
    snprintf(link, sizeof(link), "%s/lib/libout.so", t->img);
    snprintf(target, sizeof(target), "%s/lib/libout.so", t->dir);
    assert_int_equal(symlink(target, link), 0);
    elfb esc2 = {.is64 = true,
                 .machine = M,
                 .interp = LD,
                 .needed = {"libout.so"},
                 .n_needed = 1,
                 .runpath = "$ORIGIN/../lib"};
    put_elf(t->img, "bin/esc2", &esc2);
    assert_int_equal(sb_elf_libs_at(t->sys, t->img, "/bin/esc2", &l, &e), PV_ERR_NOT_FOUND);
    /* a name that is a path */
    elfb path = {
        .is64 = true, .machine = M, .interp = LD, .needed = {"../lib/liba.so.1"}, .n_needed = 1};
    put_elf(t->img, "bin/path", &path);
    assert_int_equal(sb_elf_libs_at(t->sys, t->img, "/bin/path", &l, &e), PV_ERR_FORMAT);
    /* libraries without an interpreter */
    elfb noint = {.is64 = true, .machine = M, .needed = {"liba.so.1"}, .n_needed = 1};
    put_elf(t->img, "bin/noint", &noint);
    assert_int_equal(sb_elf_libs_at(t->sys, t->img, "/bin/noint", &l, &e), PV_ERR_FORMAT);
    /* an interpreter for another machine */
    elfb other = {.is64 = true, .machine = M + 1, .interp = LD, .no_dynamic = true};
    put_elf(t->img, "bin/other", &other);
    assert_int_equal(sb_elf_libs_at(t->sys, t->img, "/bin/other", &l, &e), PV_ERR_FORMAT);
    /* no entry point; a relative or escaping one */
    assert_int_equal(sb_elf_libs_at(t->sys, t->img, "/bin/none", &l, &e), PV_ERR_NOT_FOUND);
    assert_int_equal(sb_elf_libs_at(t->sys, t->img, "bin/app", &l, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(sb_elf_libs_at(t->sys, t->img, "/bin/../../x", &l, &e), PV_ERR_INVALID_ARG);
    /* a statically linked entry point needs nothing */
    elfb st = {.is64 = true, .machine = M, .type = 2, .no_dynamic = true};
    put_elf(t->img, "bin/static", &st);
    assert_int_equal(sb_elf_libs_at(t->sys, t->img, "/bin/static", &l, &e), PV_OK);
    assert_int_equal(l.n, 0);
    assert_false(l.has_interp);
}

static void test_resolve_too_many(void **state)
{
    tree *t = *state;
    /* the app needs 40 libraries, the first of them 30 more: 71 with the interpreter */
    static char names[70][16];
    elfb app = {.is64 = true, .machine = M, .interp = LD}, first = {.is64 = true, .machine = M};
    for (size_t i = 0; i < 70; i++) {
        snprintf(names[i], sizeof(names[i]), "libm%zu.so", i);
        char rel[64];
        snprintf(rel, sizeof(rel), "lib/%s", names[i]);
        elfb l = {.is64 = true, .machine = M, .no_dynamic = true};
        if (i > 0) {
            put_elf(t->sys, rel, &l);
        }
        if (i < 40) {
            app.needed[app.n_needed++] = names[i];
        } else {
            first.needed[first.n_needed++] = names[i];
        }
    }
    put_elf(t->sys, "lib/libm0.so", &first);
    put_elf(t->img, "bin/many", &app);
    sb_libs l;
    pv_err e;
    assert_int_equal(sb_elf_libs_at(t->sys, t->img, "/bin/many", &l, &e), PV_ERR_TOO_LARGE);
    assert_int_equal(l.n, 0);
    /* exactly the limit fits: interpreter, 40, and 23 more */
    first.n_needed = SB_MAX_LIBS - 41;
    put_elf(t->sys, "lib/libm0.so", &first);
    assert_int_equal(sb_elf_libs_at(t->sys, t->img, "/bin/many", &l, &e), PV_OK);
    assert_int_equal(l.n, SB_MAX_LIBS);
    sb_libs_free(&l);
}

/* The host's own loader and libc, for a copy of /bin/true. */
static void test_resolve_host(void **state)
{
    (void)state;
    if (access("/bin/true", R_OK) != 0) {
        skip();
    }
    char *dir = tu_mkdtemp("sb_elf_host");
    char *bin = tu_path(dir, "bin");
    mkdir(bin, 0755);
    char *t = tu_path(bin, "true");
    size_t len;
    uint8_t *d = tu_read("/bin/true", &len);
    tu_write(t, d, len, 0755);
    free(d);
    sb_libs l;
    pv_err e;
    int r = sb_elf_libs(dir, "/bin/true", &l, &e);
    if (r != PV_OK) {
        fail_msg("%s", pv_err_msg(&e));
    }
    assert_true(l.has_interp);
    assert_true(l.n >= 2);
    assert_int_equal(l.path[0][0], '/');
    bool libc = false;
    for (size_t i = 0; i < l.n; i++) {
        size_t n = strlen(l.path[i]);
        libc = libc || (n > 10 && strcmp(l.path[i] + n - 10, "/libc.so.6") == 0);
        assert_int_equal(access(l.path[i], R_OK), 0);
    }
    assert_true(libc);
    sb_libs_free(&l);
    tu_rmtree(dir);
    free(dir);
    free(bin);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_every_class_and_order),
        cmocka_unit_test(test_parse_real_file),
        cmocka_unit_test(test_parse_refuses_damage),
        cmocka_unit_test_setup_teardown(test_resolve, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_resolve_refusals, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_resolve_too_many, tree_setup, tree_teardown),
        cmocka_unit_test(test_resolve_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
