/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavise-boot: verified and measured boot of the OS image (docs/rot.md §Boot).
 *
 *   pavise-boot --state DIR [--rot tpm|software] [--tcti TCTI] [--check] [--output json]
 *
 * It picks the active slot (slots/active, "a" when absent), verifies the OS image package
 * in it against the update root whose hash is fused into the root of trust, refuses it
 * when its security counter is below the root of trust's OS counter, extracts it (hashing
 * the payload again), measures the image digest and the boot configuration into PV_ROT_PCR,
 * and execs the image's entry point. When the active slot fails it tries the other one
 * and records why in boot/last-boot.json. When neither verifies it exits non-zero and
 * runs nothing. --check verifies both slots and reports, without measuring or running.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <jansson.h>

#include "pavise/crypto.h"
#include "pavise/devstate.h"
#include "pavise/fs.h"
#include "pavise/imgpkg.h"
#include "pavise/json.h"
#include "pavise/log.h"
#include "pavise/platform.h"
#include "pavise/rot.h"
#include "pavise/uuid.h"

#define EXIT_OK       0
#define EXIT_NO_BOOT  1 /* nothing verified, or the root of trust is unusable */
#define EXIT_USAGE    2
#define ACTIVE_MAX    16
#define BOOT_LOG_MAX  (64 * 1024)
#define BOOT_CONF_MAX 512

/* The root of trust pavise-boot uses unless its command line says otherwise. It is never
 * taken from the writable state directory: device.conf only has to agree with it. */
#ifndef PV_BOOT_ROT
#define PV_BOOT_ROT "tpm"
#endif
#define PV_BOOT_TCTI "device:/dev/tpmrm0"

extern char **environ;

typedef struct boot_opts {
    const char *state;
    const char *rot_kind; /* pinned kind, or NULL */
    const char *tcti;
    bool check;
    bool json;
} boot_opts;

typedef struct slot_result {
    char name[2];
    bool ok;
    pv_imgpkg *pkg; /* verified, when ok */
    int osfd;       /* run/os once extracted (for execveat), else -1 */
    pv_err err;
} slot_result;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: pavise-boot --state DIR [--rot tpm|software] [--tcti TCTI] [--check]\n"
            "                   [--output table|json] [--log-level LEVEL] [--log-json]\n\n"
            "Verifies the OS image in the active slot against the trust anchor fused into the\n"
            "root of trust, enforces its anti-rollback counter, measures it and starts it;\n"
            "falls back to the other slot, and never runs an image that does not verify.\n\n"
            "  --state DIR        the device state directory\n"
            "  --rot KIND         the root of trust: tpm (default) or software; device.conf\n"
            "                     must agree, it cannot choose\n"
            "  --tcti TCTI        TPM connection (default: " PV_BOOT_TCTI "); never taken\n"
            "                     from the state directory or the environment\n"
            "  --check            verify both slots and report; measure and run nothing\n"
            "  --output FORMAT    table (default) or json, for --check\n"
            "Exit codes: 0 ok (or, with --check, a slot is bootable), 1 nothing bootable or\n"
            "the root of trust failed, 2 usage error.\n");
}

/* Reads slots/active: "a" or "b", a trailing newline allowed. Anything else is reported
 * and slot a is tried first, so a damaged pointer cannot stop the device from booting. */
static char active_slot(const char *state)
{
    char *path = pv_devstate_path(state, PV_DEVSTATE_ACTIVE_SLOT);
    uint8_t *data = NULL;
    size_t len = 0;
    pv_err e;
    pv_err_clear(&e);
    char slot = 'a';
    int r = path != NULL ? pv_fs_read_file(path, ACTIVE_MAX, &data, &len, &e) : PV_ERR_NOMEM;
    if (r == PV_OK) {
        if (len > 0 && data[len - 1] == '\n') {
            len--;
        }
        if (len == 1 && (data[0] == 'a' || data[0] == 'b')) {
            slot = (char)data[0];
        } else {
            pv_warn("%s is neither 'a' nor 'b'; trying slot a first", path);
        }
    } else if (r != PV_ERR_NOT_FOUND) {
        pv_warn("cannot read the active slot (%s); trying slot a first", pv_err_msg(&e));
    }
    free(data);
    free(path);
    return slot;
}

/* Opens and verifies one slot's image. Fills res; PV_OK when it may boot. */
static int verify_slot(const boot_opts *o, const pv_trust *trust, uint64_t floor, slot_result *res)
{
    pv_err *e = &res->err;
    char rel[64];
    snprintf(rel, sizeof(rel), "slots/%c/%s", res->name[0], PV_DEVSTATE_SLOT_PACKAGE);
    char *path = pv_devstate_path(o->state, rel);
    pv_imgpkg *pkg = NULL;
    int r = PV_ERR_NOMEM;
    if (path == NULL) {
        pv_err_set(e, r, "out of memory");
        goto out;
    }
    r = pv_imgpkg_open(path, &pkg, e);
    if (r == PV_OK) {
        r = pv_imgpkg_verify(pkg, trust, e);
    }
    if (r != PV_OK) {
        pv_err_wrap(e, r, "%s", path);
        goto out;
    }
    const pv_manifest *m = pv_imgpkg_manifest(pkg);
    if (m->type != PV_IMAGE_OS) {
        r = pv_err_set(e, PV_ERR_FORMAT, "%s is an %s image, not an OS image", path,
                       pv_image_type_name(m->type));
        goto out;
    }
    if (m->security_counter < floor) {
        r = pv_err_set(e, PV_ERR_ROLLBACK,
                       "%s: security counter %llu is below the root of trust's %llu", path,
                       (unsigned long long)m->security_counter, (unsigned long long)floor);
        goto out;
    }
    res->pkg = pkg;
    pkg = NULL;
    res->ok = true;
    r = PV_OK;
out:
    pv_imgpkg_free(pkg);
    free(path);
    return r;
}

/* mkdir that accepts an existing directory but never a symlink or another file, so a
 * link planted in the state directory cannot send removals or writes elsewhere. */
static int ensure_dir(const char *path, mode_t mode, pv_err *e)
{
    struct stat st;
    if (mkdir(path, mode) != 0 && errno != EEXIST) {
        return pv_err_sys(e, PV_ERR_IO, errno, "cannot create %s", path);
    }
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return pv_err_set(e, PV_ERR_UNSAFE, "%s is not a directory", path);
    }
    return PV_OK;
}

/* Extracts the verified image into run/os (replacing the previous boot's copy), holds the
 * tree open and checks its entry point is an executable regular file in it, so that the
 * exec goes through the same directory and a bad entry point falls back to the other slot. */
static int extract_slot(const boot_opts *o, slot_result *res)
{
    pv_err *e = &res->err;
    const pv_manifest *m = pv_imgpkg_manifest(res->pkg);
    struct stat st;
    int r = PV_ERR_NOMEM;
    char *run = pv_devstate_path(o->state, "run");
    char *dest = pv_devstate_path(o->state, PV_DEVSTATE_RUN_OS);
    if (run == NULL || dest == NULL) {
        pv_err_set(e, r, "out of memory");
        goto out;
    }
    if ((r = ensure_dir(run, 0700, e)) != PV_OK) {
        goto out;
    }
    if ((r = pv_fs_remove_tree(dest, e)) != PV_OK && r != PV_ERR_NOT_FOUND) {
        goto out;
    }
    r = pv_imgpkg_extract(res->pkg, dest, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "slot %s: extracting", res->name);
        goto out;
    }
    /* Not O_CLOEXEC: the kernel hands a script's interpreter /dev/fd/N/<entry>. */
    res->osfd = open(dest, O_PATH | O_DIRECTORY | O_NOFOLLOW);
    if (res->osfd < 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "cannot open %s", dest);
        goto out;
    }
    if (fstatat(res->osfd, m->entry_point + 1, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode) || (st.st_mode & 0111) == 0) {
        r = pv_err_set(e, PV_ERR_FORMAT,
                       "slot %s: the entry point %s is not an executable file in the image",
                       res->name, m->entry_point);
        goto out;
    }
    r = PV_OK;
out:
    if (r != PV_OK) {
        res->ok = false;
        if (res->osfd >= 0) {
            close(res->osfd);
            res->osfd = -1;
        }
    }
    free(run);
    free(dest);
    return r;
}

/* The boot configuration, as measured: one line of text, deterministic. */
static int boot_config(const slot_result *res, char *out, size_t size)
{
    const pv_manifest *m = pv_imgpkg_manifest(res->pkg);
    char image_id[PV_UUID_STR_LEN];
    pv_uuid_format(m->image_id, image_id);
    int n = snprintf(out, size, "slot=%s image-id=%s version=%s security-counter=%llu entry=%s",
                     res->name, image_id, m->version, (unsigned long long)m->security_counter,
                     m->entry_point);
    return (n < 0 || (size_t)n >= size) ? PV_ERR_TOO_LARGE : PV_OK;
}

static int measure(pv_rot *rot, const slot_result *res, pv_err *e)
{
    uint8_t digest[PV_SHA256_LEN];
    char conf[BOOT_CONF_MAX], desc[BOOT_CONF_MAX];
    const pv_manifest *m = pv_imgpkg_manifest(res->pkg);
    int r = pv_imgpkg_manifest_digest(res->pkg, digest);
    if (r != PV_OK) {
        return pv_err_set(e, r, "cannot hash the manifest");
    }
    int n = snprintf(desc, sizeof(desc), "%s %s", m->name, m->version);
    if (n < 0 || (size_t)n >= sizeof(desc)) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "image description too long");
    }
    r = pv_rot_extend(rot, "os-image", digest, desc, (size_t)n, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "measuring the OS image");
    }
    if ((r = boot_config(res, conf, sizeof(conf))) != PV_OK) {
        return pv_err_set(e, r, "boot configuration too long");
    }
    if ((r = pv_sha256_digest(conf, strlen(conf), digest)) != PV_OK) {
        return pv_err_set(e, r, "cannot hash the boot configuration");
    }
    r = pv_rot_extend(rot, "boot-config", digest, conf, strlen(conf), e);
    return r == PV_OK ? r : pv_err_wrap(e, r, "measuring the boot configuration");
}

static json_t *slot_json(const slot_result *res)
{
    json_t *o = json_pack("{s:s, s:b}", "slot", res->name, "ok", res->ok);
    if (o == NULL) {
        return NULL;
    }
    if (res->pkg != NULL) {
        const pv_manifest *m = pv_imgpkg_manifest(res->pkg);
        char image_id[PV_UUID_STR_LEN];
        pv_uuid_format(m->image_id, image_id);
        json_object_set_new(o, "imageId", json_string(image_id));
        json_object_set_new(o, "version", json_string(m->version));
        json_object_set_new(o, "securityCounter", json_integer((json_int_t)m->security_counter));
    }
    if (!res->ok) {
        json_object_set_new(o, "error", json_string(pv_err_msg(&res->err)));
    }
    return o;
}

/* Records the attempts in boot/last-boot.json (atomically). A failure to record is
 * logged, not fatal: it must not stop a verified image from booting. */
static void record(const boot_opts *o, slot_result *res, size_t n, const slot_result *booted)
{
    pv_err e;
    pv_err_clear(&e);
    json_t *attempts = json_array();
    json_t *doc = json_pack("{s:i, s:I, s:o}", "version", 1, "time", (json_int_t)pv_time_now(),
                            "attempts", attempts);
    char *bootdir = pv_devstate_path(o->state, "boot");
    char *path = pv_devstate_path(o->state, PV_DEVSTATE_LAST_BOOT);
    char *text = NULL;
    if (doc == NULL || bootdir == NULL || path == NULL) {
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(attempts, slot_json(&res[i]));
    }
    json_object_set_new(doc, "bootedSlot",
                        booted != NULL ? json_string(booted->name) : json_null());
    text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (text == NULL || ensure_dir(bootdir, 0755, &e) != PV_OK) {
        pv_warn("cannot record the boot: %s", text == NULL ? "out of memory" : pv_err_msg(&e));
        goto out;
    }
    if (pv_fs_write_file(path, text, strlen(text), 0644, true, &e) != PV_OK) {
        pv_warn("cannot record the boot: %s", pv_err_msg(&e));
    }
out:
    free(text);
    free(path);
    free(bootdir);
    json_decref(doc);
}

/* Replaces this process with the image's entry point. Returns only on failure. */
static int exec_entry(const boot_opts *o, const slot_result *res, pv_err *e)
{
    const pv_manifest *m = pv_imgpkg_manifest(res->pkg);
    char *root = pv_devstate_path(o->state, PV_DEVSTATE_RUN_OS);
    char *entry = NULL;
    char **argv = calloc(m->args.n + 2, sizeof(char *));
    int r = PV_ERR_NOMEM;
    if (root == NULL || argv == NULL || asprintf(&entry, "%s%s", root, m->entry_point) < 0) {
        entry = NULL;
        pv_err_set(e, r, "out of memory");
        goto out;
    }
    argv[0] = entry;
    for (size_t i = 0; i < m->args.n; i++) {
        argv[i + 1] = m->args.v[i];
    }
    if (setenv("PAVISE_STATE_DIR", o->state, 1) != 0 ||
        setenv("PAVISE_BOOT_SLOT", res->name, 1) != 0 ||
        setenv("PAVISE_OS_VERSION", m->version, 1) != 0 || setenv("PAVISE_OS_ROOT", root, 1) != 0) {
        pv_err_sys(e, PV_ERR_INTERNAL, errno, "cannot set the runtime's environment");
        goto out;
    }
    pv_info("slot %s: starting %s", res->name, m->entry_point);
    fflush(NULL);
    /* Through the directory extracted and checked in this boot, not a path that could
     * have been swapped since. */
    syscall(SYS_execveat, res->osfd, m->entry_point + 1, argv, environ, AT_SYMLINK_NOFOLLOW);
    r = pv_err_sys(e, PV_ERR_IO, errno, "cannot start %s", entry);
out:
    free(argv);
    free(entry);
    free(root);
    return r;
}

static int print_check(const boot_opts *o, slot_result *res, size_t n)
{
    if (o->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n && arr != NULL; i++) {
            json_array_append_new(arr, slot_json(&res[i]));
        }
        json_t *doc = json_pack("{s:o}", "slots", arr);
        int r = doc != NULL ? pv_json_print(doc) : PV_ERR_NOMEM;
        json_decref(doc);
        return r;
    }
    for (size_t i = 0; i < n; i++) {
        if (res[i].ok) {
            const pv_manifest *m = pv_imgpkg_manifest(res[i].pkg);
            printf("slot %s: ok: %s %s (security counter %llu)\n", res[i].name, m->name, m->version,
                   (unsigned long long)m->security_counter);
        } else {
            printf("slot %s: refused: ", res[i].name);
            for (const char *p = pv_err_msg(&res[i].err); *p != '\0'; p++) {
                putchar((unsigned char)*p < 0x20 ? '?' : *p);
            }
            putchar('\n');
        }
    }
    return PV_OK;
}

/* Opens the root of trust the command line names (kind and TCTI); device.conf has to
 * agree on the kind but chooses nothing, so a writable state directory can neither
 * downgrade the device to the software backend nor point it at a TPM of its own. */
static int open_rot(const boot_opts *o, pv_rot **out, pv_err *e)
{
    pv_devstate st;
    pv_rot_kind pinned;
    const char *kind = o->rot_kind != NULL ? o->rot_kind : PV_BOOT_ROT;
    if (pv_rot_kind_parse(kind, &pinned) != PV_OK) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "unknown root-of-trust kind '%s'", kind);
    }
    if (pinned != PV_ROT_TPM && o->tcti != NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "--tcti is for the tpm root of trust");
    }
    int r = pv_devstate_load(o->state, &st, e);
    if (r != PV_OK) {
        return r;
    }
    if (st.kind != pinned) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "the device says it has a %s root of trust; this boot expects %s",
                          pv_rot_kind_name(st.kind), pv_rot_kind_name(pinned));
    }
    pv_rot_config cfg = {
        .kind = pinned,
        .state_dir = o->state,
        .tcti = pinned == PV_ROT_TPM ? (o->tcti != NULL ? o->tcti : PV_BOOT_TCTI) : NULL,
    };
    r = pv_rot_open(&cfg, out, e);
    return r == PV_OK ? r : pv_err_wrap(e, r, "%s root of trust", pv_rot_kind_name(pinned));
}

static int boot(const boot_opts *o)
{
    pv_err e;
    pv_err_clear(&e);
    pv_rot *rot = NULL;
    pv_trust *trust = NULL;
    uint64_t floor = 0;
    slot_result res[2];
    memset(res, 0, sizeof(res));
    res[0].osfd = res[1].osfd = -1;
    slot_result *booted = NULL;
    int rc = EXIT_NO_BOOT;

    int r = open_rot(o, &rot, &e);
    if (r == PV_OK) {
        r = pv_devstate_update_root(o->state, rot, &trust, &e);
    }
    if (r == PV_OK) {
        r = pv_rot_counter_read(rot, PV_ROT_COUNTER_OS, &floor, &e);
    }
    if (r != PV_OK) {
        pv_error("cannot boot: %s", pv_err_msg(&e));
        goto out;
    }
    char first = active_slot(o->state);
    res[0].name[0] = first;
    res[1].name[0] = first == 'a' ? 'b' : 'a';
    for (size_t i = 0; i < 2; i++) {
        pv_err_clear(&res[i].err);
        if (booted != NULL) {
            pv_err_set(&res[i].err, PV_OK, "not tried");
            continue;
        }
        if (verify_slot(o, trust, floor, &res[i]) != PV_OK ||
            (!o->check && extract_slot(o, &res[i]) != PV_OK)) {
            pv_warn("slot %s refused: %s", res[i].name, pv_err_msg(&res[i].err));
            continue;
        }
        if (!o->check) {
            booted = &res[i];
        }
    }
    if (o->check) {
        print_check(o, res, 2);
        rc = (res[0].ok || res[1].ok) ? EXIT_OK : EXIT_NO_BOOT;
        goto out;
    }
    if (booted == NULL) {
        record(o, res, 2, NULL);
        pv_error("cannot boot: no slot holds an OS image that verifies; nothing was started");
        goto out;
    }
    if (booted != &res[0]) {
        pv_warn("booting slot %s instead of the active slot %s", booted->name, res[0].name);
    }
    if ((r = measure(rot, booted, &e)) != PV_OK) {
        /* An unmeasured boot would attest as something it is not: stop. */
        booted->ok = false;
        pv_err_set(&booted->err, r, "%s", pv_err_msg(&e));
        record(o, res, 2, NULL);
        pv_error("cannot boot: %s", pv_err_msg(&e));
        goto out;
    }
    record(o, res, 2, booted);
    pv_rot_close(rot);
    rot = NULL;
    r = exec_entry(o, booted, &e);
    booted->ok = false;
    pv_err_set(&booted->err, r, "%s", pv_err_msg(&e));
    record(o, res, 2, NULL);
    pv_error("cannot boot: %s", pv_err_msg(&e));
out:
    for (size_t i = 0; i < 2; i++) {
        pv_imgpkg_free(res[i].pkg);
        if (res[i].osfd >= 0) {
            close(res[i].osfd);
        }
    }
    pv_trust_free(trust);
    pv_rot_close(rot);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"state", required_argument, NULL, 's'},
        {"rot", required_argument, NULL, 'r'},
        {"tcti", required_argument, NULL, 't'},
        {"check", no_argument, NULL, 'c'},
        {"output", required_argument, NULL, 'o'},
        {"log-level", required_argument, NULL, 'l'},
        {"log-json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    boot_opts o = {0};
    pv_log_level level = PV_LOG_INFO;
    bool log_json = false;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            o.state = optarg;
            break;
        case 'r':
            o.rot_kind = optarg;
            break;
        case 't':
            o.tcti = optarg;
            break;
        case 'c':
            o.check = true;
            break;
        case 'o':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "table") != 0) {
                fprintf(stderr, "pavise-boot: --output is table or json\n");
                return EXIT_USAGE;
            }
            o.json = strcmp(optarg, "json") == 0;
            break;
        case 'l':
            if (pv_log_level_parse(optarg, &level) != PV_OK) {
                fprintf(stderr, "pavise-boot: unknown log level\n");
                return EXIT_USAGE;
            }
            break;
        case 'j':
            log_json = true;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc || o.state == NULL) {
        fprintf(stderr, "pavise-boot: %s\n",
                o.state == NULL ? "--state is required" : "unexpected argument");
        usage(stderr);
        return EXIT_USAGE;
    }
    pv_log_init(level, log_json, NULL, "pavise-boot");
    return boot(&o);
}
