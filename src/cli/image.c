/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavise image: the tenant's application images, as the service knows them. `add` reads
 * an image package, checks that it is self-consistent (signature and payload digest, so
 * a damaged package is caught here rather than on a device), and uploads only its head:
 * the service verifies the signer's chain against its image roots and records the image
 * ID and manifest digest that attestation checks devices against.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client.h"
#include "pavise/base64.h"
#include "pavise/imgpkg.h"
#include "pavise/json.h"
#include "pavise/uuid.h"

static const char *const image_fields[] = {"id",
                                           "Image ID:",
                                           "name",
                                           "Name:",
                                           "version",
                                           "Version:",
                                           "component_id",
                                           "Component ID:",
                                           "kind",
                                           "Kind:",
                                           "security_counter",
                                           "Security counter:",
                                           "manifest_sha256",
                                           "Manifest SHA-256:",
                                           "development",
                                           "Development:",
                                           "created_at",
                                           "Registered:",
                                           "revoked_at",
                                           "Revoked:",
                                           "tenant_id",
                                           "Tenant:",
                                           NULL};
static const char *const image_columns[] = {"id",         "ID",      "name",        "NAME",
                                            "version",    "VERSION", "development", "DEVELOPMENT",
                                            "revoked_at", "REVOKED", NULL};

/* The package's head, base64, after checking the package against itself. */
static int read_head(const char *file, char **b64, pv_err *e)
{
    pv_imgpkg *pkg = NULL;
    uint8_t *head = NULL;
    size_t len = 0;
    *b64 = NULL;
    int r = pv_imgpkg_open(file, &pkg, e);
    if (r == PV_OK && pv_imgpkg_manifest(pkg)->type != PV_IMAGE_APPLICATION) {
        r = pv_err_set(e, PV_ERR_FORMAT,
                       "an OS image; the service's operator registers OS images "
                       "(`pavise-server os-image add`)");
    }
    if (r == PV_OK) {
        r = pv_imgpkg_verify_self(pkg, e);
    }
    if (r == PV_OK) {
        r = pv_imgpkg_head(pkg, &head, &len, e);
    }
    pv_imgpkg_free(pkg);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "%s", file);
    }
    *b64 = pv_base64_encode(head, len, PV_BASE64_STD);
    free(head);
    return *b64 != NULL ? PV_OK : pv_err_set(e, PV_ERR_NOMEM, "out of memory");
}

static int image_add(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    char path[256];
    char *b64 = NULL;
    json_t *body = NULL, *out = NULL;
    int r = read_head(cli_get(cmd, args, "image-package"), &b64, e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = cli_session_open(cmd, args, true, &s, e)) != PV_OK) {
        free(b64);
        return r;
    }
    if ((body = json_pack("{s:s}", "package", b64)) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    } else if ((r = cli_path(path, sizeof(path), e, "/v1/tenants/%/images", s.tenant_id)) ==
                   PV_OK &&
               (r = cli_call(&s, "POST", path, body, NULL, &out, e)) == PV_OK) {
        r = cli_print_object(args->json, out, image_fields);
    }
    free(b64);
    json_decref(body);
    cli_session_close(&s);
    return r;
}

static int image_list(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    json_t *items = NULL;
    size_t limit = 0;
    char path[256];
    int r = cli_get_limit(cmd, args, &limit, e);
    if (r != PV_OK || (r = cli_session_open(cmd, args, true, &s, e)) != PV_OK) {
        return r;
    }
    if ((r = cli_path(path, sizeof(path), e, "/v1/tenants/%/images", s.tenant_id)) == PV_OK &&
        (r = cli_list(&s, path, limit, &items, e)) == PV_OK) {
        r = cli_print_table(args->json, items, image_columns);
    }
    cli_session_close(&s);
    return r;
}

/* Opens the session and sends method to the image's path plus suffix. */
static int image_call(const cli_cmd *cmd, const cli_args *args, const char *method,
                      const char *suffix, json_t **out, pv_err *e)
{
    cli_session s;
    uint8_t u[PV_UUID_LEN];
    char id[PV_UUID_STR_LEN], path[256];
    if (pv_uuid_parse(cli_get(cmd, args, "image-id"), u) != PV_OK) {
        return pv_err_set(e, PV_ERR_USAGE, "--image-id: not a UUID");
    }
    pv_uuid_format(u, id);
    int r = cli_session_open(cmd, args, true, &s, e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = cli_path(path, sizeof(path), e, suffix, s.tenant_id, id)) == PV_OK) {
        r = cli_call(&s, method, path, NULL, NULL, out, e);
    }
    cli_session_close(&s);
    return r;
}

static int image_show(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    json_t *out = NULL;
    int r = image_call(cmd, args, "GET", "/v1/tenants/%/images/%", &out, e);
    return r == PV_OK ? cli_print_object(args->json, out, image_fields) : r;
}

static int image_revoke(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    json_t *out = NULL;
    int r = image_call(cmd, args, "POST", "/v1/tenants/%/images/%/revoke", &out, e);
    return r == PV_OK ? cli_print_object(args->json, out, image_fields) : r;
}

#define OPT_IMAGE_ID                                                                               \
    {                                                                                              \
        "image-id", "ID", true, "the image ID (a UUID, from the image's manifest)"                 \
    }

static const cli_opt add_opts[] = {
    {"image-package", "FILE", true, "the application's image package"},
    CLI_OPT_TENANT,
    CLI_OPT_SERVER,
    CLI_OPT_END,
};
static const cli_opt list_opts[] = {CLI_OPT_TENANT, CLI_OPT_LIMIT, CLI_OPT_SERVER, CLI_OPT_END};
static const cli_opt image_opts[] = {OPT_IMAGE_ID, CLI_OPT_TENANT, CLI_OPT_SERVER, CLI_OPT_END};

const cli_cmd cli_image_cmds[] = {
    {"image", "add", "Register an application image with the service",
     "Uploads the package's head (header, signed manifest and certificates; never the "
     "payload). The signer's certificate chain must lead to one of the service's image roots. "
     "Devices pass attestation only when every image they run is registered and not revoked. "
     "Needs the Contributor role.",
     add_opts, true, image_add},
    {"image", "list", "List the tenant's registered images", NULL, list_opts, true, image_list},
    {"image", "show", "Show a registered image", NULL, image_opts, true, image_show},
    {"image", "revoke", "Revoke an image: devices that run it fail attestation",
     "Revoking twice changes nothing. Needs the Administrator role.", image_opts, true,
     image_revoke},
    {NULL, NULL, NULL, NULL, NULL, false, NULL},
};
