/* SPDX-License-Identifier: Apache-2.0 */
/* pavise device: claim devices into the tenant, place them in groups, release them, and
 * download their development capability files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client.h"
#include "pavise/base64.h"
#include "pavise/capability.h"
#include "pavise/fs.h"
#include "pavise/json.h"
#include "pavise/mfgrec.h"
#include "pavise/platform.h"

static const char *const device_fields[] = {
    "id", "ID:", "product_name", "Product:", "device_group_name", "Group:", "development",
    "Development:", "cloud_test", "Cloud test:", "rot_kind", "Root of trust:", "manufactured_at",
    "Manufactured:", "claimed_at", "Claimed:", "updated_at", "Updated:", "tenant_id", "Tenant:",
    /* the last attestation (null: none yet) */
    "last_attestation.result", "Attestation:", "last_attestation.reason",
    "Reason:", "last_attestation.at", "Attested:", "last_attestation.rot_kind",
    "Attested RoT:", "last_attestation.client_cert_not_after", "Client cert:", NULL};
static const char *const device_columns[] = {
    "id",          "ID",          "product_name", "PRODUCT",    "device_group_name", "GROUP",
    "development", "DEVELOPMENT", "cloud_test",   "CLOUD TEST", "rot_kind",          "ROT",
    NULL};

/* Opens the session and checks --device; path receives /v1/tenants/T/devices/D + suffix. */
static int open_device(const cli_cmd *cmd, const cli_args *args, const char *suffix, cli_session *s,
                       char *path, size_t size, pv_err *e)
{
    char id[65];
    int r = cli_check_device_id(cli_get(cmd, args, "device"), id, e);
    if (r != PV_OK || (r = cli_session_open(cmd, args, true, s, e)) != PV_OK) {
        return r;
    }
    char fmt[128];
    snprintf(fmt, sizeof(fmt), "/v1/tenants/%%/devices/%%%s", suffix);
    if ((r = cli_path(path, size, e, fmt, s->tenant_id, id)) != PV_OK) {
        cli_session_close(s);
    }
    return r;
}

/* Sends method to the device's path with body and prints the answer as a device. */
static int device_call(const cli_cmd *cmd, const cli_args *args, const char *method,
                       const char *suffix, json_t *body, pv_err *e)
{
    cli_session s;
    char path[512];
    json_t *out = NULL;
    int r = open_device(cmd, args, suffix, &s, path, sizeof(path), e);
    if (r != PV_OK) {
        json_decref(body);
        return r;
    }
    if (body == NULL && strcmp(method, "GET") != 0) {
        body = json_object();
    }
    /* The optional --device-group of enable-* and the required one of assign. */
    const char *group = cli_get(cmd, args, "device-group");
    char gid[37];
    if (group != NULL) {
        if ((r = cli_resolve_group(&s, group, gid, e)) != PV_OK) {
            goto out;
        }
        if (body == NULL || json_object_set_new(body, "device_group_id", json_string(gid)) != 0) {
            r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    if ((r = cli_call(&s, method, path, body, NULL, &out, e)) == PV_OK) {
        r = cli_print_object(args->json, out, device_fields);
    }
out:
    json_decref(body);
    cli_session_close(&s);
    return r;
}

/* The manufacturing record file, base64. */
static int read_record(const char *file, char **b64, pv_err *e)
{
    uint8_t *data = NULL;
    size_t len = 0;
    *b64 = NULL;
    int r = pv_fs_read_file(file, PV_MFGREC_MAX_SIZE, &data, &len, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "--manufacturing-record");
    }
    char *out = pv_base64_encode(data, len, PV_BASE64_STD);
    free(data);
    if (out == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    *b64 = out;
    return PV_OK;
}

static int device_claim(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    char id[65], path[256];
    char *record = NULL;
    json_t *body = NULL, *out = NULL;
    const char *file = cli_get(cmd, args, "manufacturing-record");
    int r = cli_check_device_id(cli_get(cmd, args, "device"), id, e);
    if (r != PV_OK || (file != NULL && (r = read_record(file, &record, e)) != PV_OK)) {
        return r;
    }
    if ((r = cli_session_open(cmd, args, true, &s, e)) != PV_OK) {
        free(record);
        return r;
    }
    body = json_pack("{s:s}", "device_id", id);
    if (body == NULL || (record != NULL && json_object_set_new(body, "manufacturing_record",
                                                               json_string(record)) != 0)) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((r = cli_path(path, sizeof(path), e, "/v1/tenants/%/devices", s.tenant_id)) == PV_OK &&
        (r = cli_call(&s, "POST", path, body, NULL, &out, e)) == PV_OK) {
        r = cli_print_object(args->json, out, device_fields);
    }
out:
    free(record);
    json_decref(body);
    cli_session_close(&s);
    return r;
}

static int device_list(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    json_t *items = NULL;
    size_t limit = 0;
    char path[512], gid[37];
    const char *group = cli_get(cmd, args, "device-group");
    int r = cli_get_limit(cmd, args, &limit, e);
    if (r != PV_OK || (r = cli_session_open(cmd, args, true, &s, e)) != PV_OK) {
        return r;
    }
    if (group != NULL) {
        if ((r = cli_resolve_group(&s, group, gid, e)) == PV_OK) {
            r = cli_path(path, sizeof(path), e, "/v1/tenants/%/devices?device_group_id=%",
                         s.tenant_id, gid);
        }
    } else {
        r = cli_path(path, sizeof(path), e, "/v1/tenants/%/devices", s.tenant_id);
    }
    if (r == PV_OK && (r = cli_list(&s, path, limit, &items, e)) == PV_OK) {
        r = cli_print_table(args->json, items, device_columns);
    }
    cli_session_close(&s);
    return r;
}

static int device_show(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    return device_call(cmd, args, "GET", "", NULL, e);
}

static int device_assign(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    return device_call(cmd, args, "PATCH", "", NULL, e);
}

static int device_enable_development(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    return device_call(cmd, args, "POST", "/enable-development", NULL, e);
}

static int device_enable_cloud_test(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    return device_call(cmd, args, "POST", "/enable-cloud-test", NULL, e);
}

static int device_release(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    char path[512];
    json_t *out = NULL;
    int r = open_device(cmd, args, "/release", &s, path, sizeof(path), e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = cli_call(&s, "POST", path, NULL, NULL, &out, e)) == PV_OK) {
        if (args->json) {
            r = pv_json_print(out);
        } else {
            printf("Released device %s: it has left the tenant and can be claimed by another.\n",
                   cli_str(out, "id"));
        }
    }
    json_decref(out);
    cli_session_close(&s);
    return r;
}

/* ---- capability download ---- */

/* The file from the answer: strict base64 of at most PV_CAPABILITY_MAX_SIZE bytes that
 * parses as a capability file for the device asked about. The server is trusted to have
 * signed it (the device verifies it); this only keeps a wrong or damaged answer from
 * being written where the developer expects the capability. */
static int capability_from(const json_t *out, const char *device_id, uint8_t **file, size_t *len,
                           pv_capability *cap, pv_err *e)
{
    const char *b64 = cli_str(out, "capability");
    size_t n = strlen(b64);
    *file = NULL;
    if (n == 0 || pv_base64_decoded_max(n) > PV_CAPABILITY_MAX_SIZE + 2) {
        return pv_err_set(e, PV_ERR_FORMAT, "the server's answer holds no capability file");
    }
    uint8_t *buf = malloc(pv_base64_decoded_max(n));
    if (buf == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int r = pv_base64_decode(b64, n, PV_BASE64_STD, buf, pv_base64_decoded_max(n), len);
    if (r != PV_OK) {
        r = pv_err_set(e, PV_ERR_FORMAT, "the server's capability file is not valid base64");
    } else if ((r = pv_capability_decode(buf, *len, cap, NULL, e)) != PV_OK) {
        pv_err_wrap(e, r, "the server's capability file");
    } else if (strcmp(cap->device_id, device_id) != 0) {
        r = pv_err_set(e, PV_ERR_FORMAT, "the server's capability file is for device %s",
                       cap->device_id);
        pv_capability_free(cap);
    }
    if (r != PV_OK) {
        free(buf);
        return r;
    }
    *file = buf;
    return PV_OK;
}

static int print_capability(bool json, const pv_capability *cap, const char *path, size_t bytes)
{
    if (json) {
        /* as the ca-certificate downloads: the file, its size, and what it says */
        json_t *caps = json_array();
        for (uint32_t bit = 1; caps != NULL && bit != 0 && bit <= PV_CAP_ALL; bit <<= 1) {
            if ((cap->caps & bit) != 0) {
                json_array_append_new(caps, json_string(pv_capability_name(bit)));
            }
        }
        json_t *o = json_pack("{s:s, s:I, s:s, s:o, s:I, s:I}", "output", path, "bytes",
                              (json_int_t)bytes, "deviceId", cap->device_id, "capabilities", caps,
                              "developmentRoots", (json_int_t)pv_chain_count(cap->dev_root_list),
                              "expiresAt", (json_int_t)cap->expires_at);
        return cli_print_object(true, o, NULL);
    }
    char when[PV_TIME_TEXT_LEN + 1] = "never";
    size_t roots = pv_chain_count(cap->dev_root_list);
    if (cap->expires_at != 0 && !pv_time_format(cap->expires_at, when)) {
        snprintf(when, sizeof(when), "?");
    }
    printf("Wrote the capability file of device %s to ", cap->device_id);
    cli_put_escaped(stdout, path);
    printf(".\nCapabilities: ");
    for (uint32_t bit = 1, first = 1; bit != 0 && bit <= PV_CAP_ALL; bit <<= 1) {
        if (cap->caps & bit) {
            printf("%s%s", first ? "" : ", ", pv_capability_name(bit));
            first = 0;
        }
    }
    printf("\nDevelopment image roots: %zu\nExpires: %s\n", roots, when);
    return PV_OK;
}

static int device_capability_download(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    char path[512];
    const char *output = cli_get(cmd, args, "output-file");
    const char *days = cli_get(cmd, args, "valid-days");
    uint64_t valid_days = 0;
    json_t *body = NULL, *out = NULL;
    uint8_t *file = NULL;
    size_t len = 0;
    pv_capability cap;
    memset(&cap, 0, sizeof(cap));
    if (days != NULL) {
        int r = cli_parse_uint(days, "--valid-days", 3650, &valid_days, e);
        if (r != PV_OK) {
            return r;
        }
        if (valid_days == 0) {
            return pv_err_set(e, PV_ERR_USAGE, "--valid-days: 1 to 3650");
        }
    }
    char id[65]; /* the device the file must name */
    int r = cli_check_device_id(cli_get(cmd, args, "device"), id, e);
    if (r != PV_OK ||
        (r = open_device(cmd, args, "/capabilities", &s, path, sizeof(path), e)) != PV_OK) {
        return r;
    }
    body = json_pack("{s:[s]}", "capabilities", pv_capability_name(PV_CAP_APP_DEVELOPMENT));
    if (body == NULL ||
        (valid_days > 0 &&
         json_object_set_new(body, "valid_days", json_integer((json_int_t)valid_days)) != 0)) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((r = cli_call(&s, "POST", path, body, NULL, &out, e)) != PV_OK ||
        (r = capability_from(out, id, &file, &len, &cap, e)) != PV_OK) {
        goto out;
    }
    /* Replaced if it exists: a developer fetches a new one after each change. */
    if ((r = pv_fs_write_file(output, file, len, 0644, true, e)) != PV_OK) {
        pv_err_wrap(e, r, "--output-file");
        goto out;
    }
    r = print_capability(args->json, &cap, output, len);
out:
    pv_capability_free(&cap);
    free(file);
    json_decref(out);
    json_decref(body);
    cli_session_close(&s);
    return r;
}

#define OPT_DEVICE                                                                                 \
    {                                                                                              \
        "device", "ID", true, "the device ID (64 hex digits)"                                      \
    }

static const cli_opt claim_opts[] = {
    OPT_DEVICE,
    {"manufacturing-record", "FILE", false,
     "the device's manufacturing record, when the server has not imported it"},
    CLI_OPT_TENANT,
    CLI_OPT_SERVER,
    CLI_OPT_END,
};
static const cli_opt list_opts[] = {
    {"device-group", "ID|PRODUCT/GROUP", false, "only the devices of this group"},
    CLI_OPT_TENANT,
    CLI_OPT_LIMIT,
    CLI_OPT_SERVER,
    CLI_OPT_END,
};
static const cli_opt device_opts[] = {OPT_DEVICE, CLI_OPT_TENANT, CLI_OPT_SERVER, CLI_OPT_END};
static const cli_opt capability_opts[] = {
    OPT_DEVICE,
    {"output-file", "FILE", true, "where to write the capability file (replaced if it exists)"},
    {"valid-days", "N", false, "the file expires after N days (1 to 3650; default: never)"},
    CLI_OPT_TENANT,
    CLI_OPT_SERVER,
    CLI_OPT_END,
};
static const cli_opt assign_opts[] = {
    OPT_DEVICE,     {"device-group", "ID|PRODUCT/GROUP", true, "the group the device moves to"},
    CLI_OPT_TENANT, CLI_OPT_SERVER,
    CLI_OPT_END,
};
static const cli_opt dev_opts[] = {
    OPT_DEVICE,
    {"device-group", "ID|PRODUCT/GROUP", false,
     "the group to move it to (default: its product's \"Development\" group)"},
    CLI_OPT_TENANT,
    CLI_OPT_SERVER,
    CLI_OPT_END,
};
static const cli_opt cloud_opts[] = {
    OPT_DEVICE,
    {"device-group", "ID|PRODUCT/GROUP", false,
     "the group to move it to (default: its product's \"Field Test\" group)"},
    CLI_OPT_TENANT,
    CLI_OPT_SERVER,
    CLI_OPT_END,
};

const cli_cmd cli_device_cmds[] = {
    {"device", "claim", "Claim a device into the tenant",
     "The device's manufacturing record (uploaded with --manufacturing-record, or imported "
     "earlier on the server) must be signed by a factory the server trusts and name this "
     "device. A device belongs to one tenant at a time. Needs the Contributor role.",
     claim_opts, true, device_claim},
    {"device", "list", "List the tenant's devices", NULL, list_opts, true, device_list},
    {"device", "show", "Show a device", NULL, device_opts, true, device_show},
    {"device", "assign", "Move a device to a device group", "Needs the Contributor role.",
     assign_opts, true, device_assign},
    {"device", "enable-development", "Prepare a device for development",
     "Moves the device to a development group (its product's \"Development\" group unless "
     "--device-group is given), so it takes development-signed images. Needs the Contributor "
     "role.",
     dev_opts, true, device_enable_development},
    {"device", "enable-cloud-test", "Prepare a device to take updates from the cloud",
     "Ends development mode and moves the device to a test group (its product's \"Field "
     "Test\" group unless --device-group is given). Needs the Contributor role.",
     cloud_opts, true, device_enable_cloud_test},
    {"device", "release", "Release a device from the tenant",
     "The device leaves the tenant; another tenant can then claim it. Needs the Administrator "
     "role.",
     device_opts, true, device_release},
    {"device", "capability download", "Download a device's development capability file",
     "The service signs a capability file for this device that lets it run development-signed "
     "images (those under the service's development image roots); on the device, apply it with "
     "`pavise device capability update --capability-file FILE`. The "
     "device must be in development mode (`pavise device enable-development`). Needs the "
     "Contributor role.",
     capability_opts, true, device_capability_download},
    {NULL, NULL, NULL, NULL, NULL, false, NULL},
};
