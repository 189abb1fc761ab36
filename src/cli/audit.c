/* SPDX-License-Identifier: Apache-2.0 */
/* pavise audit: the tenant's audit log, oldest first. */
#include "cli.h"
#include "client.h"

static int audit_list(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    static const char *const columns[] = {"seq",      "SEQ",    "time",   "TIME",   "operator",
                                          "OPERATOR", "action", "ACTION", "target", "TARGET",
                                          "detail",   "DETAIL", NULL};
    cli_session s;
    json_t *items = NULL;
    size_t limit = 0;
    char path[256];
    int r = cli_get_limit(cmd, args, &limit, e);
    if (r != PV_OK || (r = cli_session_open(cmd, args, true, &s, e)) != PV_OK) {
        return r;
    }
    if ((r = cli_path(path, sizeof(path), e, "/v1/tenants/%/audit", s.tenant_id)) == PV_OK &&
        (r = cli_list(&s, path, limit, &items, e)) == PV_OK) {
        r = cli_print_table(args->json, items, columns);
    }
    cli_session_close(&s);
    return r;
}

static const cli_opt list_opts[] = {CLI_OPT_TENANT, CLI_OPT_LIMIT, CLI_OPT_SERVER, CLI_OPT_END};

const cli_cmd cli_audit_cmds[] = {
    {"audit", "list", "List the tenant's audit log, oldest first",
     "Every change made through the server is recorded with its time, operator, action and "
     "target. --limit N shows the first N entries.",
     list_opts, true, audit_list},
    {NULL, NULL, NULL, NULL, NULL, false, NULL},
};
