/* SPDX-License-Identifier: Apache-2.0 */
/* pavise tenant: create, list, show and select the tenants the operator works in. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "client.h"
#include "pavise/json.h"

static const char *const tenant_fields[] = {"id",         "ID:",        "name",     "Name:", "role",
                                            "Your role:", "created_at", "Created:", NULL};
static const char *const tenant_columns[] = {"id",   "ID",         "name",    "NAME", "role",
                                             "ROLE", "created_at", "CREATED", NULL};

static int tenant_create(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    json_t *out = NULL;
    json_t *body = json_pack("{s:s}", "name", cli_get(cmd, args, "name"));
    int r = body == NULL ? pv_err_set(e, PV_ERR_NOMEM, "out of memory")
                         : cli_session_open(cmd, args, false, &s, e);
    if (r != PV_OK) {
        json_decref(body);
        return r;
    }
    r = cli_call(&s, "POST", "/v1/tenants", body, NULL, &out, e);
    if (r == PV_OK) {
        r = cli_print_object(args->json, out, tenant_fields);
    }
    json_decref(body);
    cli_session_close(&s);
    return r;
}

static int tenant_list(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    json_t *items = NULL;
    size_t limit = 0;
    int r = cli_get_limit(cmd, args, &limit, e);
    if (r != PV_OK || (r = cli_session_open(cmd, args, false, &s, e)) != PV_OK) {
        return r;
    }
    r = cli_list(&s, "/v1/tenants", limit, &items, e);
    if (r == PV_OK) {
        r = cli_print_table(args->json, items, tenant_columns);
    }
    cli_session_close(&s);
    return r;
}

static int tenant_get(cli_session *s, json_t **out, pv_err *e)
{
    char path[256];
    int r = cli_path(path, sizeof(path), e, "/v1/tenants/%", s->tenant_id);
    return r != PV_OK ? r : cli_call(s, "GET", path, NULL, NULL, out, e);
}

static int tenant_show(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    json_t *out = NULL;
    int r = cli_session_open(cmd, args, true, &s, e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = tenant_get(&s, &out, e)) == PV_OK) {
        r = cli_print_object(args->json, out, tenant_fields);
    }
    cli_session_close(&s);
    return r;
}

static int tenant_select(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    json_t *out = NULL;
    int r = cli_session_open(cmd, args, true, &s, e);
    if (r != PV_OK) {
        return r;
    }
    /* Only a tenant the server shows us is stored. */
    if ((r = tenant_get(&s, &out, e)) != PV_OK) {
        goto out;
    }
    memcpy(s.cfg.tenant, s.tenant_id, sizeof(s.cfg.tenant));
    if ((r = cli_config_save(&s.cfg, e)) != PV_OK) {
        goto out;
    }
    if (args->json) {
        r = pv_json_print(out);
    } else {
        fputs("Selected tenant ", stdout);
        cli_put_escaped(stdout, cli_str(out, "name"));
        printf(" (%s); your role there: ", s.tenant_id);
        cli_put_escaped(stdout, cli_str(out, "role"));
        fputs(".\n", stdout);
    }
out:
    json_decref(out);
    cli_session_close(&s);
    return r;
}

static const cli_opt create_opts[] = {
    {"name", "NAME", true, "the new tenant's name"},
    CLI_OPT_SERVER,
    CLI_OPT_END,
};
static const cli_opt list_opts[] = {CLI_OPT_LIMIT, CLI_OPT_SERVER, CLI_OPT_END};
static const cli_opt show_opts[] = {CLI_OPT_TENANT, CLI_OPT_SERVER, CLI_OPT_END};
static const cli_opt select_opts[] = {
    {"tenant", "ID|NAME", true, "the tenant later commands work in"},
    CLI_OPT_SERVER,
    CLI_OPT_END,
};

const cli_cmd cli_tenant_cmds[] = {
    {"tenant", "create", "Create a tenant",
     "Any operator may create a tenant and becomes its Administrator. Select it with "
     "`pavise tenant select` to work in it.",
     create_opts, true, tenant_create},
    {"tenant", "list", "List the tenants you have a role in", NULL, list_opts, true, tenant_list},
    {"tenant", "show", "Show a tenant (default: the selected one)", NULL, show_opts, true,
     tenant_show},
    {"tenant", "select", "Select the tenant later commands work in",
     "The tenant's ID is stored in config.json; commands that work in a tenant use it unless "
     "they are given --tenant.",
     select_opts, true, tenant_select},
    {NULL, NULL, NULL, NULL, NULL, false, NULL},
};
