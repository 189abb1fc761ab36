/* SPDX-License-Identifier: Apache-2.0 */
/* pavise image-package: pack, show, verify, extract. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pavise/appmanifest.h"
#include "pavise/imgpkg.h"
#include "pavise/platform.h"
#include "pavise/uuid.h"

#define TRUST_ENV "PAVISE_TRUST_ANCHOR"

/* The trust anchor from --trust-anchor, else $PAVISE_TRUST_ANCHOR; refusing to go on
 * without one. */
static int load_trust(const cli_cmd *cmd, const cli_args *args, pv_trust **out, pv_err *e)
{
    const char *path = cli_get(cmd, args, "trust-anchor");
    if (path == NULL) {
        path = getenv(TRUST_ENV);
    }
    if (path == NULL || path[0] == '\0') {
        return pv_err_set(e, PV_ERR_USAGE,
                          "a package is verified before it is used: give --trust-anchor CERT "
                          "or set " TRUST_ENV);
    }
    return pv_trust_load_pem(path, out, e);
}

static int open_package(const char *path, pv_imgpkg **pkg, pv_err *e)
{
    int r = pv_imgpkg_open(path, pkg, e);
    return r == PV_OK ? r : pv_err_wrap(e, r, "image package %s", path);
}

/* Build time: SOURCE_DATE_EPOCH when set (reproducible builds), else now. */
static int build_time(uint64_t *out, pv_err *e)
{
    const char *s = getenv("SOURCE_DATE_EPOCH");
    if (s == NULL || s[0] == '\0') {
        *out = (uint64_t)pv_time_now();
        return PV_OK;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || s[0] == '-' || v > INT64_MAX) {
        return pv_err_set(e, PV_ERR_USAGE, "SOURCE_DATE_EPOCH '%s' is not a time", s);
    }
    *out = v;
    return PV_OK;
}

static json_t *verified_json(const pv_imgpkg *pkg)
{
    return pv_manifest_to_json(pv_imgpkg_manifest(pkg));
}

static const char *const summary_fields[] = {
    "componentId",     "Component ID:",     "imageId", "Image ID:", "name",
    "Name:",           "imageType",         "Type:",   "version",   "Version:",
    "securityCounter", "Security counter:", NULL};

/* Sets the image ID, loads the signing key and chain, packs dir into the destination and
 * prints what the written package says. Shared by pack-application and pack-os. */
static int sign_and_pack(const cli_cmd *cmd, const cli_args *args, pv_manifest *m, pv_err *e)
{
    const char *dir = cli_get(cmd, args, "package-directory");
    const char *key_path = cli_get(cmd, args, "key");
    const char *cert_path = cli_get(cmd, args, "cert");
    const char *chain_path = cli_get(cmd, args, "chain");
    const char *dest = cli_get(cmd, args, "destination");
    const char *image_id = cli_get(cmd, args, "image-id");
    pv_key *key = NULL;
    pv_chain *chain = NULL, *extra = NULL;
    pv_imgpkg *pkg = NULL;
    int r;
    if ((r = build_time(&m->build_time, e)) != PV_OK) {
        goto out;
    }
    if (image_id != NULL) {
        if (pv_uuid_parse(image_id, m->image_id) != PV_OK) {
            r = pv_err_set(e, PV_ERR_USAGE, "--image-id: '%s' is not a UUID", image_id);
            goto out;
        }
    } else if ((r = pv_uuid_generate(m->image_id)) != PV_OK) {
        r = pv_err_set(e, r, "generating the image ID");
        goto out;
    }
    if ((r = pv_key_load_private_pem(key_path, &key, e)) != PV_OK ||
        (r = pv_chain_load_pem(cert_path, &chain, e)) != PV_OK) {
        goto out;
    }
    if (chain_path != NULL) {
        if ((r = pv_chain_load_pem(chain_path, &extra, e)) != PV_OK) {
            goto out;
        }
        for (size_t i = 0; i < pv_chain_count(extra); i++) {
            if ((r = pv_chain_add(chain, pv_chain_get(extra, i))) != PV_OK) {
                r = pv_err_set(e, r, "--cert and --chain hold more than %d certificates",
                               PV_CHAIN_MAX_CERTS);
                goto out;
            }
        }
    }
    if ((r = pv_imgpkg_pack_dir(dest, m, dir, key, chain, cli_flag(cmd, args, "force"), e)) !=
        PV_OK) {
        pv_err_wrap(e, r, "packing %s", dest);
        goto out;
    }
    /* Read back what was written, so what is printed is what the package says. */
    if ((r = open_package(dest, &pkg, e)) != PV_OK) {
        goto out;
    }
    r = cli_print_object(args->json, verified_json(pkg), summary_fields);
out:
    pv_imgpkg_free(pkg);
    pv_key_free(key);
    pv_chain_free(chain);
    pv_chain_free(extra);
    return r;
}

static int pack_application(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    pv_manifest m = {0};
    int r = pv_app_manifest_load(cli_get(cmd, args, "manifest"), &m, e);
    if (r == PV_OK) {
        r = sign_and_pack(cmd, args, &m, e);
    }
    pv_manifest_free(&m);
    return r;
}

static int pack_os(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    const char *component = cli_get(cmd, args, "component-id");
    const char *counter = cli_get(cmd, args, "security-counter");
    pv_manifest m = {0};
    int r = PV_ERR_NOMEM;
    m.type = PV_IMAGE_OS;
    if (pv_uuid_parse(component, m.component_id) != PV_OK) {
        r = pv_err_set(e, PV_ERR_USAGE, "--component-id: '%s' is not a UUID", component);
        goto out;
    }
    if ((r = cli_parse_uint(counter, "--security-counter", INT64_MAX, &m.security_counter, e)) !=
        PV_OK) {
        goto out;
    }
    m.name = strdup(cli_get(cmd, args, "name"));
    m.version = strdup(cli_get(cmd, args, "version"));
    m.entry_point = strdup(cli_get(cmd, args, "entry-point"));
    if (m.name == NULL || m.version == NULL || m.entry_point == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* The same checks decode applies, with the option names the user typed. */
    if ((r = pv_manifest_check_entry_point(m.entry_point, e)) != PV_OK) {
        r = pv_err_wrap(e, PV_ERR_USAGE, "--entry-point");
        goto out;
    }
    r = sign_and_pack(cmd, args, &m, e);
out:
    pv_manifest_free(&m);
    return r;
}

static json_t *cert_json(const pv_cert *c)
{
    char subject[512], issuer[512], hex[2 * PV_SHA256_LEN + 1];
    uint8_t fp[PV_SHA256_LEN];
    int64_t nb = 0, na = 0;
    pv_cert_subject(c, subject, sizeof(subject));
    pv_cert_issuer(c, issuer, sizeof(issuer));
    pv_cert_fingerprint(c, fp);
    pv_hex_encode(fp, sizeof(fp), hex, sizeof(hex));
    pv_cert_validity(c, &nb, &na);
    return json_pack("{s:s, s:s, s:I, s:I, s:s}", "subject", subject, "issuer", issuer, "notBefore",
                     (json_int_t)nb, "notAfter", (json_int_t)na, "sha256", hex);
}

static int show(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    const char *path = cli_get(cmd, args, "package");
    pv_imgpkg *pkg = NULL;
    pv_imgpkg_layout l;
    pv_err check;
    int r = open_package(path, &pkg, e);
    if (r != PV_OK) {
        return r;
    }
    pv_imgpkg_get_layout(pkg, &l);
    /* Not a trust decision: whether the package is intact and signed by the key its own
     * certificate names. `verify` decides trust. */
    pv_err_clear(&check);
    int integrity = pv_imgpkg_verify_self(pkg, &check);
    json_t *o = verified_json(pkg);
    json_t *certs = json_array();
    const pv_chain *chain = pv_imgpkg_chain(pkg);
    for (size_t i = 0; i < pv_chain_count(chain); i++) {
        json_array_append_new(certs, cert_json(pv_chain_get(chain, i)));
    }
    json_object_set_new(o, "formatVersion", json_integer(l.format_version));
    json_object_set_new(o, "packageSize", json_integer((json_int_t)l.total_len));
    json_object_set_new(
        o, "signer",
        json_string(json_string_value(json_object_get(json_array_get(certs, 0), "subject"))));
    json_object_set_new(o, "certificates", certs);
    json_object_set_new(o, "integrity",
                        json_string(integrity == PV_OK ? "intact (signature and payload digest "
                                                         "match; trust not checked)"
                                                       : pv_err_msg(&check)));
    static const char *const fields[] = {"componentId",
                                         "Component ID:",
                                         "imageId",
                                         "Image ID:",
                                         "name",
                                         "Name:",
                                         "imageType",
                                         "Type:",
                                         "version",
                                         "Version:",
                                         "securityCounter",
                                         "Security counter:",
                                         "buildTime",
                                         "Build time:",
                                         "target",
                                         "Target:",
                                         "entryPoint",
                                         "Entry point:",
                                         "args",
                                         "Arguments:",
                                         "capabilities.allowedConnections",
                                         "Allowed connections:",
                                         "capabilities.allowedTcpServerPorts",
                                         "TCP server ports:",
                                         "capabilities.peripherals",
                                         "Peripherals:",
                                         "capabilities.mutableStorageKB",
                                         "Mutable storage (KB):",
                                         "capabilities.deviceAuthentication",
                                         "Device authentication:",
                                         "capabilities.systemEventNotifications",
                                         "System events:",
                                         "capabilities.softwareUpdateDeferral",
                                         "Update deferral:",
                                         "capabilities.powerControls",
                                         "Power controls:",
                                         "capabilities.memoryLimitKB",
                                         "Memory limit (KB, 0 = default):",
                                         "payloadSize",
                                         "Payload size:",
                                         "payloadSha256",
                                         "Payload SHA-256:",
                                         "signerKeyId",
                                         "Signer key ID:",
                                         "signer",
                                         "Signer:",
                                         "formatVersion",
                                         "Format version:",
                                         "packageSize",
                                         "Package size:",
                                         "integrity",
                                         "Integrity:",
                                         NULL};
    r = cli_print_object(args->json, o, fields);
    if (r == PV_OK && integrity != PV_OK) {
        r = pv_err_set(e, integrity, "image package %s: %s", path, pv_err_msg(&check));
    }
    pv_imgpkg_free(pkg);
    return r;
}

static int open_verified(const cli_cmd *cmd, const cli_args *args, pv_imgpkg **out, pv_err *e)
{
    const char *path = cli_get(cmd, args, "package");
    pv_trust *trust = NULL;
    pv_imgpkg *pkg = NULL;
    *out = NULL;
    int r = load_trust(cmd, args, &trust, e);
    if (r == PV_OK && (r = open_package(path, &pkg, e)) == PV_OK) {
        r = pv_imgpkg_verify(pkg, trust, e);
        if (r != PV_OK) {
            pv_err_wrap(e, r, "image package %s", path);
        }
    }
    pv_trust_free(trust);
    if (r != PV_OK) {
        pv_imgpkg_free(pkg);
        return r;
    }
    *out = pkg;
    return PV_OK;
}

static int verify(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    pv_imgpkg *pkg = NULL;
    int r = open_verified(cmd, args, &pkg, e);
    if (r != PV_OK) {
        return r;
    }
    json_t *o = verified_json(pkg);
    json_object_set_new(o, "verified", json_true());
    static const char *const fields[] = {
        "componentId",     "Component ID:",     "imageId",  "Image ID:", "name",
        "Name:",           "imageType",         "Type:",    "version",   "Version:",
        "securityCounter", "Security counter:", "verified", "Verified:", NULL};
    r = cli_print_object(args->json, o, fields);
    pv_imgpkg_free(pkg);
    return r;
}

static int extract(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    const char *dest = cli_get(cmd, args, "destination");
    pv_imgpkg *pkg = NULL;
    int r = open_verified(cmd, args, &pkg, e);
    if (r != PV_OK) {
        return r;
    }
    r = pv_imgpkg_extract(pkg, dest, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "extracting %s", cli_get(cmd, args, "package"));
    } else {
        json_t *o = verified_json(pkg);
        json_object_set_new(o, "destination", json_string(dest));
        static const char *const fields[] = {
            "componentId", "Component ID:", "imageId",       "Image ID:", "version",
            "Version:",    "destination",   "Extracted to:", NULL};
        r = cli_print_object(args->json, o, fields);
    }
    pv_imgpkg_free(pkg);
    return r;
}

/* The options sign_and_pack reads, shared by both pack commands. */
#define SIGNING_OPTS                                                                               \
    {"key", "FILE", true, "the signing private key (PEM)"},                                        \
        {"cert", "FILE", true, "the signing certificate, optionally followed by intermediates"},   \
        {"chain", "FILE", false, "more intermediate certificates (PEM)"},                          \
        {"destination", "FILE", true, "the image package to write"},                               \
        {"image-id", "UUID", false, "image ID to use (default: a new random one)"},                \
        {"force", NULL, false, "replace the destination if it exists"},

static const cli_opt pack_opts[] = {
    {"manifest", "FILE", true, "the app manifest (app_manifest.json)"},
    {"package-directory", "DIR", true, "the app's files; the entry point is relative to it"},
    SIGNING_OPTS{NULL, NULL, false, NULL},
};

static const cli_opt pack_os_opts[] = {
    {"package-directory", "DIR", true, "the OS image's files (the runtime and what it needs)"},
    {"entry-point", "PATH", true, "the runtime pavise-boot starts, e.g. /bin/pavised"},
    {"component-id", "UUID", true, "the OS component ID (the same for every release)"},
    {"name", "NAME", true, "the OS image's name"},
    {"version", "VERSION", true, "the human version, e.g. 1.4.0"},
    {"security-counter", "N", true, "anti-rollback counter: devices refuse images below theirs"},
    SIGNING_OPTS{NULL, NULL, false, NULL},
};

static const cli_opt show_opts[] = {
    {"package", "FILE", true, "the image package"},
    {NULL, NULL, false, NULL},
};

static const cli_opt verify_opts[] = {
    {"package", "FILE", true, "the image package"},
    {"trust-anchor", "CERT", false, "trusted root certificate(s), PEM (default: $" TRUST_ENV ")"},
    {NULL, NULL, false, NULL},
};

static const cli_opt extract_opts[] = {
    {"package", "FILE", true, "the image package"},
    {"destination", "DIR", true, "directory to create (must not exist, or be empty)"},
    {"trust-anchor", "CERT", false, "trusted root certificate(s), PEM (default: $" TRUST_ENV ")"},
    {NULL, NULL, false, NULL},
};

const cli_cmd cli_image_package_cmds[] = {
    {"image-package", "pack-application", "Sign an app's files into an image package",
     "Validates the app manifest, tars the package directory deterministically (owner 0:0, "
     "mtime 0), and signs the manifest with the key. The build time is SOURCE_DATE_EPOCH "
     "when set. The package is written atomically: nothing is left on failure.",
     pack_opts, true, pack_application},
    {"image-package", "pack-os", "Sign an OS image (the runtime pavise-boot starts)",
     "Tars the package directory deterministically and signs an OS manifest for it. Devices "
     "verify it against the update trust anchor fused into their root of trust and refuse it "
     "when its security counter is below the one the root of trust holds.",
     pack_os_opts, true, pack_os},
    {"image-package", "show", "Show what an image package contains",
     "Prints the manifest, the signer's certificates and whether the package is intact. It "
     "does not decide trust: use verify. Exits 3 when the package is not intact.",
     show_opts, true, show},
    {"image-package", "verify", "Verify an image package against a trust anchor",
     "Checks the certificate chain up to the trust anchor (validity, key usage), the "
     "signature over the header and manifest, and the payload digest. Exit 0 and the "
     "image's identity when it verifies; exit 3 and the reason otherwise.",
     verify_opts, true, verify},
    {"image-package", "extract", "Verify an image package, then extract its files",
     "Refuses the whole package if any entry is unsafe: absolute paths, '..', links that "
     "escape, device nodes, setuid/setgid bits, duplicates. Files are extracted to a staging "
     "directory and moved into place only when everything checked out.",
     extract_opts, true, extract},
    {NULL, NULL, NULL, NULL, NULL, false, NULL},
};
