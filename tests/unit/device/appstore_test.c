// SPDX-License-Identifier: Apache-2.0
/* Installed apps: verification, development images, rollback floor, peripherals, reload. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "appstore.h"
#include "pavise/imgpkg.h"
#include "pavise/platform.h"
#include "testutil.h"

#define CID_A "6f1c0c8e-3a1e-4d5b-9a43-0c4f2e9b7d21"
#define CID_B "0b7c9d2e-1f3a-4c5d-8e6f-7a8b9c0d1e2f"

typedef struct fx {
    char *dir;   /* the test's directory */
    char *state; /* the state directory */
    pv_key *prod_key, *dev_key;
    pv_chain *prod_chain, *dev_chain;
    pv_trust *prod, *dev;
    unsigned serial;
    unsigned warnings;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    f->dir = tu_mkdtemp("appstore");
    f->state = tu_path(f->dir, "state");
    mkdir(f->state, 0700);
    char *p = tu_path(f->dir, "prod");
    char *d = tu_path(f->dir, "dev");
    mkdir(p, 0700);
    mkdir(d, 0700);
    int64_t now = pv_time_now();
    tu_make_chain(p, now - 3600, now + 86400, &f->prod_key, &f->prod_chain, &f->prod);
    tu_make_chain(d, now - 3600, now + 86400, &f->dev_key, &f->dev_chain, &f->dev);
    free(p);
    free(d);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    tu_rmtree(f->dir);
    free(f->dir);
    free(f->state);
    pv_key_free(f->prod_key);
    pv_key_free(f->dev_key);
    pv_chain_free(f->prod_chain);
    pv_chain_free(f->dev_chain);
    pv_trust_free(f->prod);
    pv_trust_free(f->dev);
    free(f);
    return 0;
}

/* A package of an app with /bin/app, signed under prod or dev; image_id: NULL for a new one. */
static char *package_id(fx *f, const char *cid, uint64_t counter, bool dev, const char *peripheral,
                        pv_image_type type, const char *image_id);
static char *package(fx *f, const char *cid, uint64_t counter, bool dev, const char *peripheral,
                     pv_image_type type)
{
    return package_id(f, cid, counter, dev, peripheral, type, NULL);
}

static char *package_id(fx *f, const char *cid, uint64_t counter, bool dev, const char *peripheral,
                        pv_image_type type, const char *image_id)
{
    char name[64];
    pv_manifest m;
    pv_err e = {0};
    memset(&m, 0, sizeof(m));
    assert_int_equal(pv_uuid_parse(cid, m.component_id), 0);
    if (image_id != NULL) {
        assert_int_equal(pv_uuid_parse(image_id, m.image_id), 0);
    } else {
        assert_int_equal(pv_uuid_generate(m.image_id), 0);
    }
    m.type = type;
    m.name = strdup("app");
    m.version = strdup("1.0.0");
    m.security_counter = counter;
    m.build_time = 1700000000;
    m.entry_point = strdup("/bin/app");
    if (peripheral != NULL) {
        assert_int_equal(pv_strlist_add(&m.caps.peripherals, peripheral), 0);
    }
    snprintf(name, sizeof(name), "src%u", ++f->serial);
    char *src = tu_path(f->dir, name);
    char *bin = tu_path(src, "bin");
    char *app = tu_path(bin, "app");
    mkdir(src, 0755);
    mkdir(bin, 0755);
    tu_write(app, "#!app\n", 6, 0755);
    snprintf(name, sizeof(name), "p%u.imagepackage", f->serial);
    char *pkg = tu_path(f->dir, name);
    if (pv_imgpkg_pack_dir(pkg, &m, src, dev ? f->dev_key : f->prod_key,
                           dev ? f->dev_chain : f->prod_chain, false, &e) != PV_OK) {
        fail_msg("pack: %s", pv_err_msg(&e));
    }
    pv_manifest_free(&m);
    free(app);
    free(bin);
    free(src);
    return pkg;
}

static void warn_cb(const char *cid, const pv_err *why, void *ctx)
{
    fx *f = ctx;
    f->warnings++;
}

static as_store *open_store(fx *f, bool with_dev)
{
    as_trust t = {.prod = f->prod, .dev = with_dev ? f->dev : NULL};
    as_store *s = NULL;
    pv_err e = {0};
    if (as_open(f->state, &t, warn_cb, f, &s, &e) != PV_OK) {
        fail_msg("open: %s", pv_err_msg(&e));
    }
    return s;
}

static int install(fx *f, as_store *s, const char *pkg, bool with_dev, as_app **a, pv_err *e)
{
    as_trust t = {.prod = f->prod, .dev = with_dev ? f->dev : NULL};
    as_app *old = NULL;
    pv_err_clear(e);
    int r = as_install(s, pkg, &t, a, &old, e);
    as_app_free(old);
    return r;
}

static void test_install_and_reload(void **state)
{
    fx *f = *state;
    as_store *s = open_store(f, false);
    char *pkg = package(f, CID_A, 1, false, NULL, PV_IMAGE_APPLICATION);
    as_app *a = NULL;
    pv_err e;
    assert_int_equal(install(f, s, pkg, false, &a, &e), PV_OK);
    assert_false(a->development);
    assert_int_equal(a->uid, AS_UID_BASE);
    assert_string_equal(a->cid, CID_A);
    /* read-only tree */
    char *bin = tu_path(a->image_dir, "bin/app");
    struct stat st;
    assert_int_equal(stat(bin, &st), 0);
    assert_int_equal(st.st_mode & 0222, 0);
    assert_int_equal(stat(a->image_dir, &st), 0);
    assert_int_equal(st.st_mode & 0222, 0);
    free(bin);
    as_close(s);
    s = open_store(f, false);
    assert_int_equal(as_count(s), 1);
    a = as_find(s, CID_A);
    assert_non_null(a);
    assert_int_equal(a->uid, AS_UID_BASE);
    assert_string_equal(a->m.entry_point, "/bin/app");
    /* the same image again: refused */
    assert_int_equal(install(f, s, pkg, false, &a, &e), PV_ERR_EXISTS);
    as_close(s);
    free(pkg);
}

static void test_development(void **state)
{
    fx *f = *state;
    as_store *s = open_store(f, false);
    char *pkg = package(f, CID_A, 1, true, NULL, PV_IMAGE_APPLICATION);
    as_app *a = NULL;
    pv_err e;
    /* no capability: refused, nothing kept */
    assert_int_equal(install(f, s, pkg, false, &a, &e), PV_ERR_UNTRUSTED);
    char *installed = tu_path(f->state, "apps/installed");
    char *images = tu_path(f->state, "apps/images");
    assert_int_equal(tu_count_entries(installed), 0);
    assert_int_equal(tu_count_entries(images), 0);
    /* with the development roots: a development image */
    assert_int_equal(install(f, s, pkg, true, &a, &e), PV_OK);
    assert_true(a->development);
    as_close(s);
    /* the capability gone: not loaded, and said why */
    f->warnings = 0;
    s = open_store(f, false);
    assert_int_equal(as_count(s), 0);
    assert_int_equal(f->warnings, 1);
    as_close(s);
    s = open_store(f, true);
    assert_int_equal(as_count(s), 1);
    as_unload_development(s);
    assert_int_equal(as_count(s), 0);
    as_close(s);
    free(installed);
    free(images);
    free(pkg);
}

static void test_rollback_and_replace(void **state)
{
    fx *f = *state;
    as_store *s = open_store(f, false);
    char *p5 = package(f, CID_A, 5, false, NULL, PV_IMAGE_APPLICATION);
    char *p3 = package(f, CID_A, 3, false, NULL, PV_IMAGE_APPLICATION);
    char *p6 = package(f, CID_A, 6, false, NULL, PV_IMAGE_APPLICATION);
    as_app *a = NULL;
    pv_err e;
    assert_int_equal(install(f, s, p5, false, &a, &e), PV_OK);
    char old_dir[4096];
    snprintf(old_dir, sizeof(old_dir), "%s", a->image_dir);
    assert_int_equal(install(f, s, p3, false, &a, &e), PV_ERR_ROLLBACK);
    assert_non_null(strstr(pv_err_msg(&e), "below 5"));
    assert_int_equal(install(f, s, p6, false, &a, &e), PV_OK);
    assert_int_equal(a->floor, 6);
    assert_int_equal(as_count(s), 1);
    assert_false(tu_exists(old_dir));
    as_close(s);
    /* the floor survives a restart */
    s = open_store(f, false);
    assert_int_equal(install(f, s, p5, false, &a, &e), PV_ERR_ROLLBACK);
    as_close(s);
    free(p5);
    free(p3);
    free(p6);
}

static void test_peripheral_exclusive(void **state)
{
    fx *f = *state;
    as_store *s = open_store(f, false);
    char *pa = package(f, CID_A, 1, false, "/dev/ttyS1", PV_IMAGE_APPLICATION);
    char *pb = package(f, CID_B, 1, false, "/dev/ttyS1", PV_IMAGE_APPLICATION);
    char *pa2 = package(f, CID_A, 2, false, "/dev/ttyS1", PV_IMAGE_APPLICATION);
    as_app *a = NULL;
    pv_err e;
    assert_int_equal(install(f, s, pa, false, &a, &e), PV_OK);
    assert_int_equal(install(f, s, pb, false, &a, &e), PV_ERR_EXISTS);
    assert_non_null(strstr(pv_err_msg(&e), "/dev/ttyS1"));
    /* the holder itself may update */
    assert_int_equal(install(f, s, pa2, false, &a, &e), PV_OK);
    assert_int_equal(as_count(s), 1);
    as_close(s);
    free(pa);
    free(pb);
    free(pa2);
}

static void test_tampered_and_refused(void **state)
{
    fx *f = *state;
    as_store *s = open_store(f, false);
    char *os = package(f, CID_B, 1, false, NULL, PV_IMAGE_OS);
    char *pkg = package(f, CID_A, 1, false, NULL, PV_IMAGE_APPLICATION);
    as_app *a = NULL;
    pv_err e;
    assert_int_equal(install(f, s, os, false, &a, &e), PV_ERR_FORMAT);
    /* truncated package */
    size_t len = 0;
    uint8_t *bytes = tu_read(pkg, &len);
    char *cut = tu_path(f->dir, "cut.imagepackage");
    tu_write(cut, bytes, len - 10, 0644);
    assert_int_not_equal(install(f, s, cut, false, &a, &e), PV_OK);
    assert_int_equal(as_count(s), 0);
    assert_int_equal(install(f, s, pkg, false, &a, &e), PV_OK);
    char head[4096];
    snprintf(head, sizeof(head), "%s/apps/images/%s.head", f->state, a->image_id);
    as_close(s);
    /* a head changed on disk is not loaded */
    size_t hl = 0;
    uint8_t *h = tu_read(head, &hl);
    h[hl - 1] ^= 1;
    chmod(head, 0600);
    tu_write(head, h, hl, 0400);
    f->warnings = 0;
    s = open_store(f, false);
    assert_int_equal(as_count(s), 0);
    assert_int_equal(f->warnings, 1);
    as_close(s);
    free(h);
    free(bytes);
    free(cut);
    free(os);
    free(pkg);
}

static void test_remove(void **state)
{
    fx *f = *state;
    as_store *s = open_store(f, false);
    char *pa = package(f, CID_A, 1, false, NULL, PV_IMAGE_APPLICATION);
    char *pb = package(f, CID_B, 1, false, NULL, PV_IMAGE_APPLICATION);
    as_app *a = NULL;
    pv_err e;
    assert_int_equal(install(f, s, pa, false, &a, &e), PV_OK);
    assert_int_equal(install(f, s, pb, false, &a, &e), PV_OK);
    assert_int_equal(a->uid, AS_UID_BASE + 1);
    assert_int_equal(as_remove(s, CID_A, &e), PV_OK);
    assert_int_equal(as_remove(s, CID_A, &e), PV_ERR_NOT_FOUND);
    as_close(s);
    s = open_store(f, false);
    assert_int_equal(as_count(s), 1);
    /* uids are kept per component */
    assert_int_equal(as_find(s, CID_B)->uid, AS_UID_BASE + 1);
    as_close(s);
    free(pa);
    free(pb);
}

static void test_others_on_disk(void **state)
{
    fx *f = *state;
    as_store *s = open_store(f, true);
    as_app *a = NULL;
    pv_err e;
    /* a development app holding a peripheral, then the capability goes away */
    char *dev = package(f, CID_A, 3, true, "/dev/ttyS1", PV_IMAGE_APPLICATION);
    assert_int_equal(install(f, s, dev, true, &a, &e), PV_OK);
    char image_a[AS_CID_LEN + 1];
    memcpy(image_a, a->image_id, sizeof(image_a));
    as_close(s);
    s = open_store(f, false);
    assert_int_equal(as_count(s), 0);
    /* it still holds its peripheral */
    char *pb = package(f, CID_B, 1, false, "/dev/ttyS1", PV_IMAGE_APPLICATION);
    assert_int_equal(install(f, s, pb, false, &a, &e), PV_ERR_EXISTS);
    assert_non_null(strstr(pv_err_msg(&e), "not loaded"));
    /* and its image ID is its own: another component's package with it is refused, and the
     * first component's files are untouched */
    char *same_id = package_id(f, CID_B, 1, false, NULL, PV_IMAGE_APPLICATION, image_a);
    char head[4096];
    snprintf(head, sizeof(head), "%s/apps/images/%s.head", f->state, image_a);
    size_t before = 0, after = 0;
    uint8_t *h1 = tu_read(head, &before);
    assert_int_equal(install(f, s, same_id, false, &a, &e), PV_ERR_EXISTS);
    uint8_t *h2 = tu_read(head, &after);
    assert_int_equal(before, after);
    assert_memory_equal(h1, h2, before);
    as_close(s);
    free(h1);
    free(h2);
    free(dev);
    free(pb);
    free(same_id);
}

static void test_floor_survives_removal(void **state)
{
    fx *f = *state;
    as_store *s = open_store(f, false);
    char *p5 = package(f, CID_A, 5, false, NULL, PV_IMAGE_APPLICATION);
    char *p2 = package(f, CID_A, 2, false, NULL, PV_IMAGE_APPLICATION);
    as_app *a = NULL;
    pv_err e;
    assert_int_equal(install(f, s, p5, false, &a, &e), PV_OK);
    assert_int_equal(as_remove(s, CID_A, &e), PV_OK);
    assert_int_equal(install(f, s, p2, false, &a, &e), PV_ERR_ROLLBACK);
    /* an unreadable floors file refuses (a lost floor would allow a rollback) */
    char *floors = tu_path(f->state, "apps/floors.json");
    tu_write(floors, "[", 1, 0600);
    assert_int_equal(install(f, s, p5, false, &a, &e), PV_ERR_FORMAT);
    as_close(s);
    free(floors);
    free(p5);
    free(p2);
}

static void test_damaged_state(void **state)
{
    fx *f = *state;
    as_store *s = open_store(f, false);
    char *pa = package(f, CID_A, 1, false, NULL, PV_IMAGE_APPLICATION);
    char *pb = package(f, CID_B, 1, false, NULL, PV_IMAGE_APPLICATION);
    as_app *a = NULL;
    pv_err e;
    assert_int_equal(install(f, s, pa, false, &a, &e), PV_OK);
    assert_int_equal(install(f, s, pb, false, &a, &e), PV_OK);
    as_close(s);
    /* a damaged record: that app is not loaded, the other is */
    char *rec = tu_path(f->state, "apps/installed/" CID_A ".json");
    tu_write(rec, "{\"version\":1,\"imageId\":\"../../x\"}", 33, 0600);
    f->warnings = 0;
    s = open_store(f, false);
    assert_int_equal(as_count(s), 1);
    assert_int_equal(f->warnings, 1);
    assert_non_null(as_find(s, CID_B));
    as_close(s);
    /* damaged uid allocations: refused whole (two components on one uid would share data) */
    char *uids = tu_path(f->state, "apps/uids.json");
    static const char *const bad[] = {
        "[]",
        "{\"" CID_A "\": 70000, \"" CID_B "\": 70000}",
        "{\"" CID_A "\": 0}",
        "{\"not-a-uuid\": 70001}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tu_write(uids, bad[i], strlen(bad[i]), 0600);
        as_trust t = {.prod = f->prod};
        s = NULL;
        assert_int_equal(as_open(f->state, &t, NULL, NULL, &s, &e), PV_ERR_FORMAT);
        assert_null(s);
    }
    free(uids);
    free(rec);
    free(pa);
    free(pb);
}

/* The description pavise-store hands pavised: read back whole, and every field checked. */
static void test_description(void **state)
{
    fx *f = *state;
    as_store *s = open_store(f, false);
    char *pkg = package(f, CID_A, 3, false, "/dev/ttyS1", PV_IMAGE_APPLICATION);
    as_app *a = NULL, *b = NULL;
    pv_err e;
    assert_int_equal(install(f, s, pkg, false, &a, &e), PV_OK);
    json_t *o = as_app_to_json(a);
    assert_non_null(o);
    assert_int_equal(as_app_from_json(o, &b, &e), PV_OK);
    assert_string_equal(b->cid, a->cid);
    assert_string_equal(b->image_id, a->image_id);
    assert_string_equal(b->image_dir, a->image_dir);
    assert_int_equal(b->uid, a->uid);
    assert_int_equal(b->floor, 3);
    assert_int_equal(b->installed_at, a->installed_at);
    assert_string_equal(b->m.entry_point, "/bin/app");
    assert_string_equal(b->m.caps.peripherals.v[0], "/dev/ttyS1");
    as_app_free(b);

    /* Each damaged field is refused by name or by check. */
    static const struct {
        const char *key;
        const char *json; /* the field's new value, as JSON; NULL: removed */
    } bad[] = {
        {"componentId", "\"0B7C9D2E-1F3A-4C5D-8E6F-7A8B9C0D1E2F\""}, /* uppercase */
        {"componentId", "\"" CID_B "\""},                            /* not the manifest's */
        {"imageId", "\"not-a-uuid\""},
        {"index", "256"},
        {"index", "-1"},
        {"imageDir", "\"relative/dir\""},
        {"manifest", "\"!!!\""},
        {"manifest", "\"AAAA\""},
        {"floor", "\"3\""},
        {"development", "1"},
        {"installedAt", NULL},
        {"extra", "1"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *c = json_deep_copy(o);
        if (bad[i].json == NULL) {
            json_object_del(c, bad[i].key);
        } else {
            json_object_set_new(c, bad[i].key, json_loads(bad[i].json, JSON_DECODE_ANY, NULL));
        }
        b = NULL;
        pv_err_clear(&e);
        assert_int_not_equal(as_app_from_json(c, &b, &e), PV_OK);
        assert_null(b);
        assert_true(strlen(pv_err_msg(&e)) > 0);
        json_decref(c);
    }
    json_decref(o);

    /* A description that clashes with the table is refused: another component's uid,
     * image or peripheral, or an image directory that is not its own. */
    {
        as_store *t = NULL;
        as_app *mine = NULL, *other = NULL;
        char *pkg_b = package(f, CID_B, 1, false, NULL, PV_IMAGE_APPLICATION);
        as_app *ab = NULL;
        assert_int_equal(install(f, s, pkg_b, false, &ab, &e), PV_OK);
        char apps_dir[4096];
        snprintf(apps_dir, sizeof(apps_dir), "%s/apps", f->state);
        assert_int_equal(as_new(apps_dir, &t, &e), PV_OK);
        json_t *ob = as_app_to_json(ab), *oa = as_app_to_json(a);
        assert_int_equal(as_app_from_json(oa, &mine, &e), PV_OK);
        assert_int_equal(as_check_fits(t, mine, &e), PV_OK);
        as_app *none = NULL;
        assert_int_equal(as_put(t, mine, &none, &e), PV_OK);
        assert_int_equal(as_app_from_json(ob, &other, &e), PV_OK);
        assert_int_equal(as_check_fits(t, other, &e), PV_OK);
        unsigned index = other->index;
        other->index = mine->index;
        assert_int_equal(as_check_fits(t, other, &e), PV_ERR_FORMAT);
        other->index = index;
        assert_int_equal(pv_strlist_add(&other->m.caps.peripherals, "/dev/ttyS1"), PV_OK);
        assert_int_equal(as_check_fits(t, other, &e), PV_ERR_FORMAT);
        assert_non_null(strstr(pv_err_msg(&e), "/dev/ttyS1"));
        free(other->image_dir);
        other->image_dir = strdup("/");
        pv_strlist_free(&other->m.caps.peripherals);
        assert_int_equal(as_check_fits(t, other, &e), PV_ERR_FORMAT);
        as_app_free(other);
        json_decref(ob);
        json_decref(oa);
        as_close(t);
        free(pkg_b);
    }

    /* The table: a new entry, the same component again (handed back), taken out. */
    as_store *t = NULL;
    as_app *old = NULL;
    assert_int_equal(as_new("/nonexistent/apps", &t, &e), PV_OK);
    o = as_app_to_json(a);
    assert_int_equal(as_app_from_json(o, &b, &e), PV_OK);
    assert_int_equal(as_put(t, b, &old, &e), PV_OK);
    assert_null(old);
    as_app *b2 = NULL;
    assert_int_equal(as_app_from_json(o, &b2, &e), PV_OK);
    assert_int_equal(as_put(t, b2, &old, &e), PV_OK);
    assert_ptr_equal(old, b);
    as_app_free(old);
    assert_int_equal(as_count(t), 1);
    as_app *taken = as_take(t, CID_A);
    assert_ptr_equal(taken, b2);
    as_app_free(taken);
    assert_null(as_take(t, CID_A));
    assert_int_equal(as_count(t), 0);
    as_close(t);
    json_decref(o);
    as_close(s);
    free(pkg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_install_and_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_development, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_and_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peripheral_exclusive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_and_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_others_on_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_floor_survives_removal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_description, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
