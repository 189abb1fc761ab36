/* SPDX-License-Identifier: Apache-2.0 */
/* pavise product: the products of a tenant (each comes with five device groups). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "client.h"
#include "pavise/json.h"

static const char *const product_fields[] = {
    "id",           "ID:",        "name",     "Name:",      "description",
    "Description:", "created_at", "Created:", "updated_at", "Updated:",
    "tenant_id",    "Tenant:",    NULL};
static const char *const product_columns[] = {"id",          "ID",          "name", "NAME",
                                              "description", "DESCRIPTION", NULL};

/* Adds the options named in keys to body when given. */
static int add_strings(const cli_cmd *cmd, const cli_args *args, json_t *body,
                       const char *const *keys, bool *any, pv_err *e)
{
    for (size_t i = 0; keys[i] != NULL; i++) {
        const char *v = cli_get(cmd, args, keys[i]);
        if (v == NULL) {
            continue;
        }
        if (json_object_set_new(body, keys[i], json_string(v)) != 0) {
            return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        }
        *any = true;
    }
    return PV_OK;
}

static const char *const text_keys[] = {"name", "description", NULL};

static int product_create(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    char path[256];
    bool any = false;
    json_t *out = NULL, *body = json_object();
    int r = body == NULL ? pv_err_set(e, PV_ERR_NOMEM, "out of memory")
                         : add_strings(cmd, args, body, text_keys, &any, e);
    if (r != PV_OK || (r = cli_session_open(cmd, args, true, &s, e)) != PV_OK) {
        json_decref(body);
        return r;
    }
    if ((r = cli_path(path, sizeof(path), e, "/v1/tenants/%/products", s.tenant_id)) == PV_OK &&
        (r = cli_call(&s, "POST", path, body, NULL, &out, e)) == PV_OK) {
        r = cli_print_object(args->json, out, product_fields);
    }
    json_decref(body);
    cli_session_close(&s);
    return r;
}

static int product_list(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    json_t *items = NULL;
    size_t limit = 0;
    char path[256];
    int r = cli_get_limit(cmd, args, &limit, e);
    if (r != PV_OK || (r = cli_session_open(cmd, args, true, &s, e)) != PV_OK) {
        return r;
    }
    if ((r = cli_path(path, sizeof(path), e, "/v1/tenants/%/products", s.tenant_id)) == PV_OK &&
        (r = cli_list(&s, path, limit, &items, e)) == PV_OK) {
        r = cli_print_table(args->json, items, product_columns);
    }
    cli_session_close(&s);
    return r;
}

/* Opens the session, resolves --product, and sends method with body to its path. */
static int product_call(const cli_cmd *cmd, const cli_args *args, const char *method, json_t *body,
                        cli_session *s, json_t **out, pv_err *e)
{
    char id[37], path[256];
    int r = cli_session_open(cmd, args, true, s, e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = cli_resolve_product(s, cli_get(cmd, args, "product"), id, e)) != PV_OK ||
        (r = cli_path(path, sizeof(path), e, "/v1/tenants/%/products/%", s->tenant_id, id)) !=
            PV_OK ||
        (r = cli_call(s, method, path, body, NULL, out, e)) != PV_OK) {
        cli_session_close(s);
    }
    return r;
}

static int product_show(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    json_t *out = NULL;
    int r = product_call(cmd, args, "GET", NULL, &s, &out, e);
    if (r == PV_OK) {
        r = cli_print_object(args->json, out, product_fields);
        cli_session_close(&s);
    }
    return r;
}

static int product_update(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    bool any = false;
    json_t *out = NULL, *body = json_object();
    int r = body == NULL ? pv_err_set(e, PV_ERR_NOMEM, "out of memory")
                         : add_strings(cmd, args, body, text_keys, &any, e);
    if (r == PV_OK && !any) {
        r = pv_err_set(e, PV_ERR_USAGE, "nothing to update: give --name or --description");
    }
    if (r == PV_OK && (r = product_call(cmd, args, "PATCH", body, &s, &out, e)) == PV_OK) {
        r = cli_print_object(args->json, out, product_fields);
        cli_session_close(&s);
    }
    json_decref(body);
    return r;
}

static int product_delete(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    json_t *out = NULL;
    int r = product_call(cmd, args, "DELETE", NULL, &s, &out, e);
    if (r != PV_OK) {
        return r;
    }
    if (args->json) {
        r = pv_json_print(out);
    } else {
        printf("Deleted product %s and its device groups.\n", cli_str(out, "id"));
    }
    json_decref(out);
    cli_session_close(&s);
    return r;
}

#define OPT_PRODUCT                                                                                \
    {                                                                                              \
        "product", "ID|NAME", true, "the product"                                                  \
    }

static const cli_opt create_opts[] = {
    {"name", "NAME", true, "the product's name (unique in the tenant)"},
    {"description", "TEXT", false, "a description"},
    CLI_OPT_TENANT,
    CLI_OPT_SERVER,
    CLI_OPT_END,
};
static const cli_opt list_opts[] = {CLI_OPT_TENANT, CLI_OPT_LIMIT, CLI_OPT_SERVER, CLI_OPT_END};
static const cli_opt product_opts[] = {OPT_PRODUCT, CLI_OPT_TENANT, CLI_OPT_SERVER, CLI_OPT_END};
static const cli_opt update_opts[] = {
    OPT_PRODUCT,
    {"name", "NAME", false, "a new name"},
    {"description", "TEXT", false, "a new description"},
    CLI_OPT_TENANT,
    CLI_OPT_SERVER,
    CLI_OPT_END,
};

const cli_cmd cli_product_cmds[] = {
    {"product", "create", "Create a product and its five device groups",
     "The groups are Development, Field Test, Field Test OS Evaluation, Production and "
     "Production OS Evaluation. Needs the Contributor role.",
     create_opts, true, product_create},
    {"product", "list", "List the tenant's products", NULL, list_opts, true, product_list},
    {"product", "show", "Show a product", NULL, product_opts, true, product_show},
    {"product", "update", "Rename a product or change its description",
     "Needs the Contributor role.", update_opts, true, product_update},
    {"product", "delete", "Delete a product and its device groups",
     "Refused while any of its groups has devices. Needs the Administrator role.", product_opts,
     true, product_delete},
    {NULL, NULL, NULL, NULL, NULL, false, NULL},
};
