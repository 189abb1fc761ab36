/* SPDX-License-Identifier: Apache-2.0 */
/* pavise device-group: the groups of a product, with their OS feed and update policy. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "client.h"
#include "pavise/json.h"

static const char *const group_fields[] = {
    "id",           "ID:",          "name",       "Name:",    "product_id",    "Product:",
    "description",  "Description:", "os_feed",    "OS feed:", "update_policy", "Update policy:",
    "device_count", "Devices:",     "created_at", "Created:", "updated_at",    "Updated:",
    "tenant_id",    "Tenant:",      NULL};
static const char *const group_columns[] = {
    "id",      "ID",      "product_name",  "PRODUCT",       "name",         "NAME",
    "os_feed", "OS FEED", "update_policy", "UPDATE POLICY", "device_count", "DEVICES",
    NULL};

static const char *const os_feeds[] = {"Retail", "RetailEval", NULL};
static const char *const policies[] = {"UpdateAll", "No3rdPartyAppUpdates", "NoUpdates", NULL};

static int check_choice(const char *opt, const char *v, const char *const *choices,
                        const char *list, pv_err *e)
{
    for (size_t i = 0; choices[i] != NULL; i++) {
        if (strcmp(v, choices[i]) == 0) {
            return PV_OK;
        }
    }
    return pv_err_set(e, PV_ERR_USAGE, "--%s: '%s' is not one of %s", opt, v, list);
}

/* The body of create and update from the options given; *any tells whether there was one. */
static int group_body(const cli_cmd *cmd, const cli_args *args, json_t **out, bool *any, pv_err *e)
{
    static const char *const keys[][2] = {{"name", "name"},
                                          {"description", "description"},
                                          {"os-feed", "os_feed"},
                                          {"update-policy", "update_policy"}};
    const char *feed = cli_get(cmd, args, "os-feed");
    const char *policy = cli_get(cmd, args, "update-policy");
    int r = PV_OK;
    *out = NULL;
    *any = false;
    if ((feed != NULL &&
         (r = check_choice("os-feed", feed, os_feeds, "Retail, RetailEval", e)) != PV_OK) ||
        (policy != NULL &&
         (r = check_choice("update-policy", policy, policies,
                           "UpdateAll, No3rdPartyAppUpdates, NoUpdates", e)) != PV_OK)) {
        return r;
    }
    json_t *body = json_object();
    if (body == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *v = cli_get(cmd, args, keys[i][0]);
        if (v != NULL && json_object_set_new(body, keys[i][1], json_string(v)) != 0) {
            json_decref(body);
            return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        }
        *any = *any || v != NULL;
    }
    *out = body;
    return PV_OK;
}

static int group_create(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    char path[256], product[37];
    bool any = false;
    json_t *body = NULL, *out = NULL;
    int r = group_body(cmd, args, &body, &any, e);
    if (r != PV_OK || (r = cli_session_open(cmd, args, true, &s, e)) != PV_OK) {
        json_decref(body);
        return r;
    }
    if ((r = cli_resolve_product(&s, cli_get(cmd, args, "product"), product, e)) != PV_OK) {
        goto out;
    }
    if (json_object_set_new(body, "product_id", json_string(product)) != 0) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((r = cli_path(path, sizeof(path), e, "/v1/tenants/%/device-groups", s.tenant_id)) ==
            PV_OK &&
        (r = cli_call(&s, "POST", path, body, NULL, &out, e)) == PV_OK) {
        r = cli_print_object(args->json, out, group_fields);
    }
out:
    json_decref(body);
    cli_session_close(&s);
    return r;
}

/* Table output names each group's product: one more request for the product names. */
static int add_product_names(cli_session *s, json_t *groups, pv_err *e)
{
    char path[256];
    json_t *products = NULL;
    int r = cli_path(path, sizeof(path), e, "/v1/tenants/%/products", s->tenant_id);
    if (r != PV_OK || (r = cli_list(s, path, 0, &products, e)) != PV_OK) {
        return r;
    }
    size_t i, j;
    json_t *g, *p;
    json_array_foreach(groups, i, g)
    {
        const char *pid = cli_str(g, "product_id");
        json_t *name = NULL;
        json_array_foreach(products, j, p)
        {
            if (strcmp(cli_str(p, "id"), pid) == 0) {
                name = json_object_get(p, "name");
            }
        }
        if (json_object_set(g, "product_name", name != NULL ? name : json_null()) != 0) {
            r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
            break;
        }
    }
    json_decref(products);
    return r;
}

static int group_list(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    json_t *items = NULL;
    size_t limit = 0;
    char path[512], pid[37];
    const char *product = cli_get(cmd, args, "product");
    int r = cli_get_limit(cmd, args, &limit, e);
    if (r != PV_OK || (r = cli_session_open(cmd, args, true, &s, e)) != PV_OK) {
        return r;
    }
    if (product != NULL) {
        if ((r = cli_resolve_product(&s, product, pid, e)) == PV_OK) {
            r = cli_path(path, sizeof(path), e, "/v1/tenants/%/device-groups?product_id=%",
                         s.tenant_id, pid);
        }
    } else {
        r = cli_path(path, sizeof(path), e, "/v1/tenants/%/device-groups", s.tenant_id);
    }
    if (r == PV_OK && (r = cli_list(&s, path, limit, &items, e)) == PV_OK) {
        if (!args->json && (r = add_product_names(&s, items, e)) != PV_OK) {
            json_decref(items);
        } else {
            r = cli_print_table(args->json, items, group_columns);
        }
    }
    cli_session_close(&s);
    return r;
}

/* Opens the session, resolves --device-group, and sends method with body to its path. */
static int group_call(const cli_cmd *cmd, const cli_args *args, const char *method, json_t *body,
                      cli_session *s, json_t **out, pv_err *e)
{
    char id[37], path[256];
    int r = cli_session_open(cmd, args, true, s, e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = cli_resolve_group(s, cli_get(cmd, args, "device-group"), id, e)) != PV_OK ||
        (r = cli_path(path, sizeof(path), e, "/v1/tenants/%/device-groups/%", s->tenant_id, id)) !=
            PV_OK ||
        (r = cli_call(s, method, path, body, NULL, out, e)) != PV_OK) {
        cli_session_close(s);
    }
    return r;
}

static int group_show(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    json_t *out = NULL;
    int r = group_call(cmd, args, "GET", NULL, &s, &out, e);
    if (r == PV_OK) {
        r = cli_print_object(args->json, out, group_fields);
        cli_session_close(&s);
    }
    return r;
}

static int group_update(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    bool any = false;
    json_t *body = NULL, *out = NULL;
    int r = group_body(cmd, args, &body, &any, e);
    if (r == PV_OK && !any) {
        r = pv_err_set(e, PV_ERR_USAGE,
                       "nothing to update: give --name, --description, --os-feed or "
                       "--update-policy");
    }
    if (r == PV_OK && (r = group_call(cmd, args, "PATCH", body, &s, &out, e)) == PV_OK) {
        r = cli_print_object(args->json, out, group_fields);
        cli_session_close(&s);
    }
    json_decref(body);
    return r;
}

static int group_delete(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    cli_session s;
    json_t *out = NULL;
    int r = group_call(cmd, args, "DELETE", NULL, &s, &out, e);
    if (r != PV_OK) {
        return r;
    }
    if (args->json) {
        r = pv_json_print(out);
    } else {
        printf("Deleted device group %s.\n", cli_str(out, "id"));
    }
    json_decref(out);
    cli_session_close(&s);
    return r;
}

#define OPT_GROUP                                                                                  \
    {                                                                                              \
        "device-group", "ID|PRODUCT/GROUP", true, "the device group"                               \
    }
#define OPT_FEED                                                                                   \
    {                                                                                              \
        "os-feed", "FEED", false, "Retail or RetailEval (the OS evaluation feed); default Retail"  \
    }
#define OPT_POLICY                                                                                 \
    {                                                                                              \
        "update-policy", "POLICY", false,                                                          \
            "UpdateAll, No3rdPartyAppUpdates or NoUpdates; default UpdateAll"                      \
    }

static const cli_opt create_opts[] = {
    {"product", "ID|NAME", true, "the product the group belongs to"},
    {"name", "NAME", true, "the group's name (unique in the product)"},
    OPT_FEED,
    OPT_POLICY,
    {"description", "TEXT", false, "a description"},
    CLI_OPT_TENANT,
    CLI_OPT_SERVER,
    CLI_OPT_END,
};
static const cli_opt list_opts[] = {
    {"product", "ID|NAME", false, "only the groups of this product"},
    CLI_OPT_TENANT,
    CLI_OPT_LIMIT,
    CLI_OPT_SERVER,
    CLI_OPT_END,
};
static const cli_opt group_opts[] = {OPT_GROUP, CLI_OPT_TENANT, CLI_OPT_SERVER, CLI_OPT_END};
static const cli_opt update_opts[] = {
    OPT_GROUP,
    {"name", "NAME", false, "a new name"},
    {"description", "TEXT", false, "a new description"},
    {"os-feed", "FEED", false, "Retail or RetailEval"},
    {"update-policy", "POLICY", false, "UpdateAll, No3rdPartyAppUpdates or NoUpdates"},
    CLI_OPT_TENANT,
    CLI_OPT_SERVER,
    CLI_OPT_END,
};

const cli_cmd cli_device_group_cmds[] = {
    {"device-group", "create", "Create a device group in a product",
     "The OS feed chooses which OS images its devices get; the update policy which updates "
     "they take. Needs the Contributor role.",
     create_opts, true, group_create},
    {"device-group", "list", "List the tenant's device groups", NULL, list_opts, true, group_list},
    {"device-group", "show", "Show a device group",
     "A group is named by its ID or as PRODUCT/GROUP, e.g. \"Thermostat/Field Test\".", group_opts,
     true, group_show},
    {"device-group", "update", "Change a device group's name, description, feed or policy",
     "Needs the Contributor role.", update_opts, true, group_update},
    {"device-group", "delete", "Delete a device group",
     "Refused while the group has devices. Needs the Administrator role.", group_opts, true,
     group_delete},
    {NULL, NULL, NULL, NULL, NULL, false, NULL},
};
