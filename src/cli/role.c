/* SPDX-License-Identifier: Apache-2.0 */
/* pavise role: who may do what in a tenant, and invitations for new operators. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "client.h"
#include "pavise/crypto.h"
#include "pavise/json.h"
#include "pavise/x509.h"

static const char *const role_names[] = {"Administrator", "Contributor", "Reader", NULL};

static int check_role(const char *role, pv_err *e)
{
    for (size_t i = 0; role_names[i] != NULL; i++) {
        if (strcmp(role, role_names[i]) == 0) {
            return PV_OK;
        }
    }
    return pv_err_set(e, PV_ERR_USAGE,
                      "--role: '%s' is not a role (Administrator, Contributor or Reader)", role);
}

/* The pinned CA's fingerprint, for the login line an invited operator runs. */
static void ca_fingerprint(const cli_session *s, char hex[2 * PV_SHA256_LEN + 1])
{
    char path[PATH_MAX];
    pv_chain *ch = NULL;
    uint8_t fp[PV_SHA256_LEN];
    hex[0] = '\0';
    if (cli_config_path(&s->cfg, CLI_CA_FILE, path, sizeof(path), NULL) == PV_OK &&
        pv_chain_load_pem(path, &ch, NULL) == PV_OK) {
        pv_cert_fingerprint(pv_chain_get(ch, 0), fp);
        pv_hex_encode(fp, sizeof(fp), hex, 2 * PV_SHA256_LEN + 1);
    }
    pv_chain_free(ch);
}

static void print_invitation(const cli_session *s, const json_t *out)
{
    char fp[2 * PV_SHA256_LEN + 1];
    const char *user = cli_str(out, "user");
    ca_fingerprint(s, fp);
    fputs("Invited ", stdout);
    cli_put_escaped(stdout, user);
    fputs(" as ", stdout);
    cli_put_escaped(stdout, cli_str(out, "role"));
    printf(" in tenant %s.\n", s->tenant_id);
    fputs("Enrollment code: ", stdout);
    cli_put_escaped(stdout, cli_str(out, "enrollment_code"));
    fputs("\nExpires:         ", stdout);
    cli_put_escaped(stdout, cli_str(out, "expires_at"));
    fputs("\nThe code is shown only this once and works once. Give it to ", stdout);
    cli_put_escaped(stdout, user);
    fputs(" with the login command:\n  pavise login --server ", stdout);
    cli_put_escaped(stdout, s->server);
    printf(" --fingerprint %s --enroll ", fp[0] != '\0' ? fp : "SHA256");
    cli_put_escaped(stdout, cli_str(out, "enrollment_code"));
    fputc('\n', stdout);
}

static int role_add(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    json_t *out = NULL, *body = NULL;
    long status = 0;
    const char *role = cli_get(cmd, args, "role");
    int r = check_role(role, e);
    if (r != PV_OK || (r = cli_session_open(cmd, args, true, &s, e)) != PV_OK) {
        return r;
    }
    char path[256];
    body = json_pack("{s:s, s:s}", "user", cli_get(cmd, args, "user"), "role", role);
    if (body == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((r = cli_path(path, sizeof(path), e, "/v1/tenants/%/roles", s.tenant_id)) != PV_OK ||
        (r = cli_call(&s, "POST", path, body, &status, &out, e)) != PV_OK) {
        goto out;
    }
    if (args->json) {
        r = pv_json_print(out);
    } else if (status == 201) {
        print_invitation(&s, out);
    } else {
        fputs("Granted ", stdout);
        cli_put_escaped(stdout, cli_str(out, "role"));
        fputs(" to ", stdout);
        cli_put_escaped(stdout, cli_str(out, "user"));
        printf(" in tenant %s.\n", s.tenant_id);
    }
out:
    json_decref(out);
    json_decref(body);
    cli_session_close(&s);
    return r;
}

static int role_list(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    static const char *const columns[] = {"user",       "USER",  "role", "ROLE",
                                          "created_at", "SINCE", NULL};
    cli_session s;
    json_t *items = NULL;
    size_t limit = 0;
    char path[256];
    int r = cli_get_limit(cmd, args, &limit, e);
    if (r != PV_OK || (r = cli_session_open(cmd, args, true, &s, e)) != PV_OK) {
        return r;
    }
    if ((r = cli_path(path, sizeof(path), e, "/v1/tenants/%/roles", s.tenant_id)) == PV_OK &&
        (r = cli_list(&s, path, limit, &items, e)) == PV_OK) {
        r = cli_print_table(args->json, items, columns);
    }
    cli_session_close(&s);
    return r;
}

static int role_delete(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    json_t *out = NULL;
    const char *user = cli_get(cmd, args, "user");
    char path[512];
    int r = cli_session_open(cmd, args, true, &s, e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = cli_path(path, sizeof(path), e, "/v1/tenants/%/roles/%", s.tenant_id, user)) !=
            PV_OK ||
        (r = cli_call(&s, "DELETE", path, NULL, NULL, &out, e)) != PV_OK) {
        goto out;
    }
    if (args->json) {
        r = pv_json_print(out);
    } else {
        fputs("Removed the role of ", stdout);
        cli_put_escaped(stdout, user);
        printf(" in tenant %s.\n", s.tenant_id);
    }
out:
    json_decref(out);
    cli_session_close(&s);
    return r;
}

static const cli_opt add_opts[] = {
    {"user", "NAME", true, "the operator's user name (1..64 of A-Z a-z 0-9 . _ @ -)"},
    {"role", "ROLE", true, "Administrator, Contributor or Reader"},
    CLI_OPT_TENANT,
    CLI_OPT_SERVER,
    CLI_OPT_END,
};
static const cli_opt list_opts[] = {CLI_OPT_TENANT, CLI_OPT_LIMIT, CLI_OPT_SERVER, CLI_OPT_END};
static const cli_opt delete_opts[] = {
    {"user", "NAME", true, "the operator whose role is removed"},
    CLI_OPT_TENANT,
    CLI_OPT_SERVER,
    CLI_OPT_END,
};

const cli_cmd cli_role_cmds[] = {
    {"role", "add", "Grant a role in the tenant, or invite a new operator",
     "An existing operator gets the role at once. For a user name the server does not know "
     "yet this makes an invitation: a one-time enrollment code, shown only once, that the "
     "new operator gives to `pavise login`. Needs the Administrator role.",
     add_opts, true, role_add},
    {"role", "list", "List who has a role in the tenant", NULL, list_opts, true, role_list},
    {"role", "delete", "Remove an operator's role in the tenant",
     "The last Administrator of a tenant cannot be removed. Needs the Administrator role.",
     delete_opts, true, role_delete},
    {NULL, NULL, NULL, NULL, NULL, false, NULL},
};
