/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavise ca-certificate: the tenant's CA certificates (docs/protocol/attestation.md §3):
 * list, show, download one, download the chain relying parties install (PEM or
 * PKCS#7), download a proof-of-possession certificate, rotate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client.h"
#include "pavise/fs.h"
#include "pavise/json.h"

static const char *const ca_fields[] = {
    "id",           "ID:",           "subject",    "Subject:",    "status",    "Status:",
    "fingerprint",  "SHA-256:",      "not_before", "Not before:", "not_after", "Not after:",
    "retire_after", "Retire after:", "created_at", "Created:",    NULL};
static const char *const ca_columns[] = {
    "id",           "ID",           "status",      "STATUS",  "not_after", "NOT AFTER",
    "retire_after", "RETIRE AFTER", "fingerprint", "SHA-256", NULL};

/* Writes a download to --output, replacing an older one atomically (a chain is meant to
 * be fetched again after every rotation). */
static int write_output(const char *path, const void *data, size_t len, pv_err *e)
{
    int r = pv_fs_write_file(path, data, len, 0644, true, e);
    return r == PV_OK ? r : pv_err_wrap(e, r, "--output");
}

/* Prints what a download wrote: a sentence, or {"output", "bytes", ...} in JSON. */
static int report_download(const cli_args *args, const char *what, const char *path, size_t len,
                           json_t *extra)
{
    if (!args->json) {
        json_decref(extra);
        printf("Wrote %s to %s.\n", what, path);
        return PV_OK;
    }
    json_t *o = extra != NULL ? extra : json_object();
    if (o == NULL || json_object_set_new(o, "output", json_string(path)) != 0 ||
        json_object_set_new(o, "bytes", json_integer((json_int_t)len)) != 0) {
        json_decref(o);
        return PV_ERR_NOMEM;
    }
    int r = pv_json_print(o);
    json_decref(o);
    return r;
}

static int check_id(const char *id, pv_err *e)
{
    return cli_is_uuid(id)
               ? PV_OK
               : pv_err_set(e, PV_ERR_USAGE, "--id: '%.64s' is not a CA certificate ID", id);
}

static int ca_list(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    json_t *items = NULL;
    size_t limit = 0;
    char path[256];
    int r = cli_get_limit(cmd, args, &limit, e);
    if (r != PV_OK || (r = cli_session_open(cmd, args, true, &s, e)) != PV_OK) {
        return r;
    }
    if ((r = cli_path(path, sizeof(path), e, "/v1/tenants/%/ca-certificates", s.tenant_id)) ==
            PV_OK &&
        (r = cli_list(&s, path, limit, &items, e)) == PV_OK) {
        r = cli_print_table(args->json, items, ca_columns);
    }
    cli_session_close(&s);
    return r;
}

/* GET one CA certificate (--id) into *out. */
static int ca_get(const cli_cmd *cmd, const cli_args *args, cli_session *s, json_t **out, pv_err *e)
{
    char path[256];
    const char *id = cli_get(cmd, args, "id");
    int r = check_id(id, e);
    if (r != PV_OK || (r = cli_session_open(cmd, args, true, s, e)) != PV_OK) {
        return r;
    }
    if ((r = cli_path(path, sizeof(path), e, "/v1/tenants/%/ca-certificates/%", s->tenant_id,
                      id)) != PV_OK ||
        (r = cli_call(s, "GET", path, NULL, NULL, out, e)) != PV_OK) {
        cli_session_close(s);
    }
    return r;
}

static int ca_show(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    json_t *out = NULL;
    int r = ca_get(cmd, args, &s, &out, e);
    if (r != PV_OK) {
        return r;
    }
    if (args->json) {
        r = pv_json_print(out);
        json_decref(out);
    } else {
        r = cli_print_object(false, out, ca_fields);
    }
    cli_session_close(&s);
    return r;
}

static int ca_download(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    json_t *out = NULL;
    const char *file = cli_get(cmd, args, "output-file");
    int r = ca_get(cmd, args, &s, &out, e);
    if (r != PV_OK) {
        return r;
    }
    const char *pem = cli_str(out, "certificate");
    if (pem[0] == '\0') {
        r = pv_err_set(e, PV_ERR_FORMAT, "the server's answer holds no certificate");
    } else if ((r = write_output(file, pem, strlen(pem), e)) == PV_OK) {
        char what[80];
        snprintf(what, sizeof(what), "CA certificate %.36s", cli_str(out, "id"));
        r = report_download(args, what, file, strlen(pem),
                            json_pack("{s:s}", "id", cli_str(out, "id")));
    }
    json_decref(out);
    cli_session_close(&s);
    return r;
}

static int ca_download_chain(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    const char *file = cli_get(cmd, args, "output-file");
    const char *format = cli_get(cmd, args, "format");
    uint8_t *body = NULL;
    size_t len = 0;
    char path[256];
    if (format == NULL) {
        format = "pem";
    }
    if (strcmp(format, "pem") != 0 && strcmp(format, "pkcs7") != 0) {
        return pv_err_set(e, PV_ERR_USAGE, "--format: '%.32s' is not pem or pkcs7", format);
    }
    int r = cli_session_open(cmd, args, true, &s, e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = cli_path(path, sizeof(path), e, "/v1/tenants/%/ca-certificates/chain?format=%",
                      s.tenant_id, format)) == PV_OK &&
        (r = cli_call_raw(&s, path, &body, &len, e)) == PV_OK &&
        (r = write_output(file, body, len, e)) == PV_OK) {
        char what[64];
        snprintf(what, sizeof(what), "the tenant's CA chain (%s)", format);
        r = report_download(args, what, file, len, json_pack("{s:s}", "format", format));
    }
    free(body);
    cli_session_close(&s);
    return r;
}

static int ca_download_proof(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    const char *id = cli_get(cmd, args, "id");
    const char *code = cli_get(cmd, args, "verification-code");
    const char *file = cli_get(cmd, args, "output-file");
    json_t *out = NULL;
    char path[256];
    int r = check_id(id, e);
    if (r != PV_OK) {
        return r;
    }
    json_t *body = json_pack("{s:s}", "verification_code", code);
    if (body == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    if ((r = cli_session_open(cmd, args, true, &s, e)) != PV_OK) {
        json_decref(body);
        return r;
    }
    if ((r = cli_path(path, sizeof(path), e, "/v1/tenants/%/ca-certificates/%/proof", s.tenant_id,
                      id)) == PV_OK &&
        (r = cli_call(&s, "POST", path, body, NULL, &out, e)) == PV_OK) {
        const char *pem = cli_str(out, "certificate");
        if (pem[0] == '\0') {
            r = pv_err_set(e, PV_ERR_FORMAT, "the server's answer holds no certificate");
        } else if ((r = write_output(file, pem, strlen(pem), e)) == PV_OK) {
            r = report_download(args, "the verification certificate", file, strlen(pem),
                                json_pack("{s:s,s:s,s:s}", "ca_certificate_id", id,
                                          "verification_code", cli_str(out, "verification_code"),
                                          "expires_at", cli_str(out, "expires_at")));
        }
    }
    json_decref(out);
    json_decref(body);
    cli_session_close(&s);
    return r;
}

static int ca_rotate(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    json_t *out = NULL;
    char path[256];
    int r = cli_session_open(cmd, args, true, &s, e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = cli_path(path, sizeof(path), e, "/v1/tenants/%/ca-certificates/rotate",
                      s.tenant_id)) == PV_OK &&
        (r = cli_call(&s, "POST", path, NULL, NULL, &out, e)) == PV_OK) {
        if (args->json) {
            r = pv_json_print(out);
            json_decref(out);
        } else {
            r = cli_print_object(false, out, ca_fields);
        }
    }
    cli_session_close(&s);
    return r;
}

#define OPT_ID                                                                                     \
    {                                                                                              \
        "id", "ID", true, "the CA certificate's ID (from `pavise ca-certificate list`)"            \
    }
#define OPT_OUTPUT_FILE(what)                                                                      \
    {                                                                                              \
        "output-file", "FILE", true, "where to write " what " (replaced if it exists)"             \
    }

static const cli_opt list_opts[] = {CLI_OPT_TENANT, CLI_OPT_LIMIT, CLI_OPT_SERVER, CLI_OPT_END};
static const cli_opt show_opts[] = {OPT_ID, CLI_OPT_TENANT, CLI_OPT_SERVER, CLI_OPT_END};
static const cli_opt download_opts[] = {
    OPT_ID, OPT_OUTPUT_FILE("the certificate (PEM)"), CLI_OPT_TENANT, CLI_OPT_SERVER, CLI_OPT_END,
};
static const cli_opt chain_opts[] = {
    OPT_OUTPUT_FILE("the chain"),
    {"format", "pem|pkcs7", false,
     "PEM certificates (default) or a PKCS#7 certs-only bundle (DER)"},
    CLI_OPT_TENANT,
    CLI_OPT_SERVER,
    CLI_OPT_END,
};
static const cli_opt proof_opts[] = {
    OPT_ID,
    {"verification-code", "CODE", true,
     "the code your cloud asks to see as the certificate's subject (1 to 64 of A-Z a-z 0-9 -)"},
    OPT_OUTPUT_FILE("the verification certificate (PEM)"),
    CLI_OPT_TENANT,
    CLI_OPT_SERVER,
    CLI_OPT_END,
};
static const cli_opt rotate_opts[] = {CLI_OPT_TENANT, CLI_OPT_SERVER, CLI_OPT_END};

const cli_cmd cli_ca_certificate_cmds[] = {
    {"ca-certificate", "list", "List the tenant's CA certificates",
     "STATUS is active (issues client certificates), retiring (rotated out; trusted until "
     "RETIRE AFTER) or retired.",
     list_opts, true, ca_list},
    {"ca-certificate", "show", "Show a CA certificate", NULL, show_opts, true, ca_show},
    {"ca-certificate", "download", "Download a CA certificate (PEM)", NULL, download_opts, true,
     ca_download},
    {"ca-certificate", "download-chain", "Download the chain relying parties trust",
     "Every CA certificate that is not retired, the active one first: install all of them "
     "where your broker or API checks client certificates, and fetch them again after a "
     "rotation.",
     chain_opts, true, ca_download_chain},
    {"ca-certificate", "download-proof", "Download a certificate proving possession of a CA's key",
     "The certificate's subject is CN=<verification code>, signed by the CA; it is valid for "
     "an hour. Upload it where your cloud (Azure IoT Hub, AWS IoT) asks to verify the CA. "
     "Needs the Contributor role.",
     proof_opts, true, ca_download_proof},
    {"ca-certificate", "rotate", "Make a new CA for the tenant",
     "New client certificates come from the new CA at once; the old one stays in the chain "
     "until the last certificate it issued has expired, then it is retired. Needs the "
     "Administrator role.",
     rotate_opts, true, ca_rotate},
    {NULL, NULL, NULL, NULL, NULL, false, NULL},
};
