/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavise-store: the half of the device runtime that verifies (docs/device-runtime.md
 * §Processes). pavised runs it for one operation at a time and reads one JSON answer on
 * its standard output:
 *
 *   pavise-store load --state DIR                      the device and every installed app
 *   pavise-store install --state DIR [--development]   the package on standard input
 *   pavise-store remove --state DIR --component-id ID
 *   pavise-store capability --state DIR                the capability file on standard input
 *   pavise-store sign --state DIR --digest HEX         a signature with the device's TLS key
 *   (each also takes --log-level LEVEL and --log-json; logs go to standard error)
 *
 * Answers: {"ok": true, ...} or {"ok": false, "code": N, "error": "..."} (exit status 1).
 * Every operation but sign opens the root of trust for the device ID and the update root,
 * and verifies the development capability (STATE/capability.cbor) for this device again:
 * nothing verified is kept between runs, in pavised or here. sign runs once per TLS
 * handshake of an app, so it reads only device.conf (the root of trust's kind) and the
 * key, and keeps only CAP_DAC_OVERRIDE. This is the only process of
 * the runtime that parses packages and certificates, so libcrypto, libarchive and the TPM
 * stack live here and not in pavised; it runs with only the capabilities its files need.
 */
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "pavise/attest.h"
#include "pavise/capability.h"
#include "pavise/crypto.h"
#include "pavise/devstate.h"
#include "pavise/fs.h"
#include "pavise/log.h"
#include "pavise/platform.h"
#include "pavise/rot.h"

#include "appstore.h"
#include "privdrop.h"
#include "storeproto.h"

typedef struct dev {
    const char *state;
    char device_id[PV_DEVICE_ID_HEX_LEN + 1];
    pv_rot_kind kind;
    pv_trust *update_root;
    pv_trust *dev_roots; /* the applied capability's, while it is valid */
    int64_t dev_expires;
} dev;

static int open_device(dev *d, pv_err *e)
{
    pv_rot *rot = NULL;
    int r = pv_devstate_open_rot(d->state, NULL, NULL, &rot, e);
    if (r == PV_OK) {
        d->kind = pv_rot_get_kind(rot);
        r = pv_rot_device_id(rot, d->device_id, e);
    }
    if (r == PV_OK) {
        r = pv_devstate_update_root(d->state, rot, &d->update_root, e);
    }
    pv_rot_close(rot);
    return r != PV_OK ? pv_err_wrap(e, r, "state directory %s", d->state) : PV_OK;
}

static int capability_path(const dev *d, char out[4096], pv_err *e)
{
    int n = snprintf(out, 4096, "%s/%s", d->state, SP_CAPABILITY_FILE);
    return n > 0 && n < 4096 ? PV_OK
                             : pv_err_set(e, PV_ERR_INVALID_ARG, "state directory path too long");
}

/* Verifies a capability file's bytes for this device now: its development roots. */
static int capability_take(dev *d, const uint8_t *p, size_t len, pv_err *e)
{
    pv_capability cap;
    int r = pv_capability_verify(p, len, d->update_root, d->device_id, pv_time_now(), &cap, e);
    if (r != PV_OK) {
        return r;
    }
    if ((cap.caps & PV_CAP_APP_DEVELOPMENT) == 0) {
        pv_capability_free(&cap);
        return pv_err_set(e, PV_ERR_UNSUPPORTED,
                          "the capability file does not grant AppDevelopment");
    }
    pv_trust_free(d->dev_roots);
    d->dev_roots = cap.dev_roots;
    d->dev_expires = cap.expires_at;
    cap.dev_roots = NULL;
    pv_capability_free(&cap);
    return PV_OK;
}

/* The stored capability, when there is one that verifies; one that does not is said
 * (when loud) and development stays off. */
static void capability_load(dev *d, bool loud)
{
    char path[4096];
    uint8_t *data = NULL;
    size_t len = 0;
    pv_err e;
    pv_err_clear(&e);
    int r = capability_path(d, path, &e);
    if (r == PV_OK &&
        (r = pv_fs_read_file(path, PV_CAPABILITY_MAX_SIZE, &data, &len, &e)) == PV_ERR_NOT_FOUND) {
        return;
    }
    if (r == PV_OK) {
        r = capability_take(d, data, len, &e);
    }
    free(data);
    if (r != PV_OK && loud) {
        pv_warn("%s is not applied (development mode stays off): %s", path, pv_err_msg(&e));
    } else if (r == PV_OK && loud) {
        pv_info("development capability applied: development images may run");
    }
}

static void warn_app(const char *cid, const pv_err *why, void *ctx)
{
    (void)ctx;
    pv_warn("installed component %s is not loaded: %s", cid, pv_err_msg(why));
}

static int answer(json_t *o)
{
    if (o == NULL || json_object_set_new(o, "ok", json_true()) != 0) {
        json_decref(o);
        return PV_ERR_NOMEM;
    }
    int r = json_dumpf(o, stdout, JSON_COMPACT) == 0 && fflush(stdout) == 0 ? PV_OK : PV_ERR_IO;
    json_decref(o);
    return r;
}

static json_t *apps_json(as_store *s)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < as_count(s); i++) {
        if (json_array_append_new(arr, as_app_to_json(as_get(s, i))) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

static int op_load(dev *d, pv_err *e)
{
    as_store *s = NULL;
    capability_load(d, true);
    as_trust t = {.prod = d->update_root, .dev = d->dev_roots};
    int r = as_open(d->state, &t, warn_app, NULL, &s, e);
    if (r != PV_OK) {
        return r;
    }
    r = answer(json_pack(
        "{s:s, s:s, s:b, s:I, s:o*}", "deviceId", d->device_id, "rootOfTrust",
        pv_rot_kind_name(d->kind), "development", d->dev_roots != NULL, "developmentExpires",
        (json_int_t)(d->dev_roots != NULL ? d->dev_expires : 0), "apps", apps_json(s)));
    as_close(s);
    return r != PV_OK ? pv_err_set(e, r, "cannot write the answer") : PV_OK;
}

static int op_install(dev *d, bool development, pv_err *e)
{
    as_store *s = NULL;
    as_app *a = NULL, *old = NULL;
    capability_load(d, false);
    if (development && d->dev_roots == NULL) {
        return pv_err_set(e, PV_ERR_LOCKED, "the device is not in development mode");
    }
    /* The store is loaded with the capability whatever the operation (its apps hold their
     * peripherals and image IDs); the new package is verified with it only for a sideload. */
    as_trust load = {.prod = d->update_root, .dev = d->dev_roots};
    as_trust t = {.prod = d->update_root, .dev = development ? d->dev_roots : NULL};
    int r = as_open(d->state, &load, NULL, NULL, &s, e);
    if (r == PV_OK && (r = as_install(s, "/proc/self/fd/0", &t, &a, &old, e)) != PV_OK) {
        pv_err_wrap(e, r, "image package refused");
    }
    if (r == PV_OK && answer(json_pack("{s:o*, s:b}", "app", as_app_to_json(a), "replaced",
                                       old != NULL)) != PV_OK) {
        r = pv_err_set(e, PV_ERR_IO, "cannot write the answer");
    }
    as_app_free(old);
    as_close(s);
    return r;
}

static int op_remove(dev *d, const char *cid, pv_err *e)
{
    /* Nothing to verify: the component's record names what goes (as_remove). */
    char dir[4096];
    as_store *s = NULL;
    int n = snprintf(dir, sizeof(dir), "%s/apps", d->state);
    int r = n > 0 && (size_t)n < sizeof(dir)
                ? as_new(dir, &s, e)
                : pv_err_set(e, PV_ERR_INVALID_ARG, "state directory path too long");
    if (r == PV_OK && (r = as_remove(s, cid, e)) == PV_OK &&
        answer(json_pack("{s:s}", "componentId", cid)) != PV_OK) {
        r = pv_err_set(e, PV_ERR_IO, "cannot write the answer");
    }
    as_close(s);
    return r;
}

static int op_capability(dev *d, pv_err *e)
{
    char path[4096];
    uint8_t *data = NULL;
    size_t len = 0;
    int r = capability_path(d, path, e);
    if (r != PV_OK ||
        (r = pv_fs_read_file("/proc/self/fd/0", PV_CAPABILITY_MAX_SIZE, &data, &len, e)) != PV_OK) {
        free(data);
        return r;
    }
    /* Verified before it is kept: a file that does not verify changes nothing. */
    if ((r = capability_take(d, data, len, e)) != PV_OK) {
        pv_err_wrap(e, r, "capability file refused");
    } else if ((r = pv_fs_write_file(path, data, len, 0600, true, e)) == PV_OK) {
        pv_info("development capability applied: development images may be sideloaded");
        if (answer(json_pack("{s:I}", "developmentExpires", (json_int_t)d->dev_expires)) != PV_OK) {
            r = pv_err_set(e, PV_ERR_IO, "cannot write the answer");
        }
    }
    free(data);
    return r;
}

/* The digest of `sign --digest`: 64, 96 or 128 lowercase hex digits (SHA-256, -384, -512). */
static int digest_parse(const char *hex, uint8_t out[64], size_t *len, pv_err *e)
{
    size_t n = hex != NULL ? strnlen(hex, 129) : 0;
    *len = 0;
    if (n != 64 && n != 96 && n != 128) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "--digest takes 64, 96 or 128 hex digits (SHA-256, -384, -512)");
    }
    for (size_t i = 0; i < n; i++) {
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'))) {
            return pv_err_set(e, PV_ERR_INVALID_ARG, "--digest takes lowercase hex digits only");
        }
    }
    if (pv_hex_decode(hex, out, n / 2) != PV_OK) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "--digest is not hex");
    }
    *len = n / 2;
    return PV_OK;
}

/* Signs for an app's TLS handshake (docs/device-runtime.md §Device authentication). The
 * kind comes from device.conf, not from opening the root of trust: the key file alone is
 * what signing needs, and on a TPM device the provider opens the TPM itself (one
 * connection, not two). The TCTI is resolved as pv_devstate_open_rot does. */
static int op_sign(const char *state, const char *digest_hex, pv_err *e)
{
    uint8_t digest[64], sig[PV_ATTEST_TLS_SIG_LEN];
    char hex[2 * PV_ATTEST_TLS_SIG_LEN + 1];
    size_t len = 0;
    pv_devstate st;
    int r = digest_parse(digest_hex, digest, &len, e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = pv_devstate_load(state, &st, e)) != PV_OK) {
        return pv_err_wrap(e, r, "state directory %s", state);
    }
    const char *tcti = getenv("PAVISE_TCTI");
    if (tcti == NULL || tcti[0] == '\0') {
        tcti = st.tcti;
    }
    if ((r = pv_attest_tls_sign(state, st.kind, tcti, digest, len, sig, e)) != PV_OK) {
        return r;
    }
    pv_hex_encode(sig, sizeof(sig), hex, sizeof(hex));
    pv_debug("signed a %zu-byte digest with the TLS key", len);
    return answer(json_pack("{s:s}", "signature", hex)) == PV_OK
               ? PV_OK
               : pv_err_set(e, PV_ERR_IO, "cannot write the answer");
}

static int usage(pv_err *e)
{
    return pv_err_set(e, PV_ERR_USAGE,
                      "usage: pavise-store load|install|remove|capability|sign --state DIR "
                      "[--development] [--component-id ID] [--digest HEX] [--log-level LEVEL] "
                      "[--log-json]");
}

int main(int argc, char **argv)
{
    dev d = {0};
    const char *cid = NULL, *digest = NULL;
    bool development = false, log_json = false;
    pv_log_level level = PV_LOG_INFO;
    pv_err e;
    pv_err_clear(&e);
    int r = argc < 2 ? usage(&e) : PV_OK;
    for (int i = 2; r == PV_OK && i < argc; i++) {
        if (strcmp(argv[i], "--development") == 0) {
            development = true;
        } else if (strcmp(argv[i], "--log-json") == 0) {
            log_json = true;
        } else if (i + 1 < argc && strcmp(argv[i], "--state") == 0) {
            d.state = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--component-id") == 0) {
            cid = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--digest") == 0) {
            digest = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--log-level") == 0) {
            r = pv_log_level_parse(argv[++i], &level) == PV_OK ? PV_OK : usage(&e);
        } else {
            r = usage(&e);
        }
    }
    pv_log_init(level, log_json, NULL, "pavise-store");
    /* Root's files (the state directory, images made read-only) and nothing more: no
     * mounts, no ptrace, no network administration, no devices but what root owns. */
    static const int keep[] = {CAP_DAC_OVERRIDE, CAP_FOWNER};
    bool sign = argc >= 2 && strcmp(argv[1], "sign") == 0;
    if (r == PV_OK && d.state == NULL) {
        r = usage(&e);
    }
    /* sign changes no file, so it keeps no CAP_FOWNER; it keeps CAP_DAC_OVERRIDE because a
     * TPM device node may be the tss user's with group access only (tpm2-tss's udev rules
     * make /dev/tpm0 so), which uid 0 alone could not open. */
    if (r == PV_OK) {
        r = pd_keep_caps(keep, sign ? 1 : sizeof(keep) / sizeof(keep[0]), &e);
    }
    if (r == PV_OK && sign) {
        r = digest != NULL ? op_sign(d.state, digest, &e) : usage(&e);
    } else if (r == PV_OK) {
        r = open_device(&d, &e);
    }
    if (r != PV_OK || sign) {
        /* nothing more */
    } else if (strcmp(argv[1], "load") == 0) {
        r = op_load(&d, &e);
    } else if (strcmp(argv[1], "install") == 0) {
        r = op_install(&d, development, &e);
    } else if (strcmp(argv[1], "remove") == 0) {
        r = cid != NULL ? op_remove(&d, cid, &e) : usage(&e);
    } else if (strcmp(argv[1], "capability") == 0) {
        r = op_capability(&d, &e);
    } else {
        r = usage(&e);
    }
    pv_trust_free(d.update_root);
    pv_trust_free(d.dev_roots);
    if (r == PV_OK) {
        return 0;
    }
    json_t *o = json_pack("{s:b, s:i, s:s}", "ok", 0, "code", r, "error", pv_err_msg(&e));
    if (o != NULL) {
        json_dumpf(o, stdout, JSON_COMPACT);
        json_decref(o);
    }
    return 1;
}
