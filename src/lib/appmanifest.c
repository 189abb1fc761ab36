/* SPDX-License-Identifier: Apache-2.0 */
#include "pavise/appmanifest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/fs.h"
#include "pavise/json.h"

#define SCHEMA_VERSION 1

static const char *const top_fields[] = {"SchemaVersion",
                                         "Name",
                                         "ComponentId",
                                         "EntryPoint",
                                         "CmdArgs",
                                         "ApplicationType",
                                         "Version",
                                         "SecurityCounter",
                                         "Target",
                                         "Capabilities",
                                         NULL};

static const char *const cap_fields[] = {"AllowedConnections",
                                         "AllowedTcpServerPorts",
                                         "Peripherals",
                                         "MutableStorage",
                                         "DeviceAuthentication",
                                         "SystemEventNotifications",
                                         "SoftwareUpdateDeferral",
                                         "PowerControls",
                                         "MemoryLimitKB",
                                         NULL};

static const char *const storage_fields[] = {"SizeKB", NULL};

typedef int (*item_check_fn)(const char *s, pv_err *e);

/* Reads an optional array of strings at obj[key] into out, checking each with check. */
static int get_string_array(const json_t *obj, const char *key, const char *where, size_t max_n,
                            size_t max_len, item_check_fn check, pv_strlist *out, pv_err *e)
{
    json_t *a = json_object_get(obj, key);
    if (a == NULL) {
        return PV_OK;
    }
    if (!json_is_array(a)) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s%s: expected an array of strings", where, key);
    }
    if (json_array_size(a) > max_n) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s%s: more than %zu entries", where, key, max_n);
    }
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_string(v)) {
            return pv_err_set(e, PV_ERR_FORMAT, "%s%s[%zu]: expected a string", where, key, i);
        }
        const char *s = json_string_value(v);
        if (strlen(s) != json_string_length(v) || strlen(s) > max_len) {
            return pv_err_set(e, PV_ERR_FORMAT, "%s%s[%zu]: longer than %zu bytes or holds a NUL",
                              where, key, i, max_len);
        }
        int r = check != NULL ? check(s, e) : PV_OK;
        if (r != PV_OK) {
            return pv_err_wrap(e, r, "%s%s[%zu]", where, key, i);
        }
        if (pv_strlist_add(out, s) != PV_OK) {
            return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        }
    }
    return PV_OK;
}

static int parse_ports(const json_t *caps, pv_capabilities *c, pv_err *e)
{
    json_t *a = json_object_get(caps, "AllowedTcpServerPorts");
    if (a == NULL) {
        return PV_OK;
    }
    if (!json_is_array(a) || json_array_size(a) > PV_MAX_TCP_PORTS) {
        return pv_err_set(e, PV_ERR_FORMAT,
                          "Capabilities.AllowedTcpServerPorts: expected an array of at most %d "
                          "port numbers",
                          PV_MAX_TCP_PORTS);
    }
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535) {
            return pv_err_set(e, PV_ERR_FORMAT,
                              "Capabilities.AllowedTcpServerPorts[%zu]: expected a port number "
                              "(1..65535)",
                              i);
        }
        c->tcp_server_ports[c->n_tcp_server_ports++] = (uint16_t)json_integer_value(v);
    }
    return PV_OK;
}

static int parse_capabilities(const json_t *root, pv_capabilities *c, pv_err *e)
{
    const char *w = "Capabilities.";
    json_t *caps = json_object_get(root, "Capabilities");
    int r;
    uint64_t v;
    bool present;
    if (caps == NULL) {
        return PV_OK;
    }
    if (!json_is_object(caps)) {
        return pv_err_set(e, PV_ERR_FORMAT, "Capabilities: expected an object");
    }
    if ((r = pv_json_check_fields(caps, cap_fields, "Capabilities", e)) != PV_OK ||
        (r = get_string_array(caps, "AllowedConnections", w, PV_MAX_CONNECTIONS, PV_MAX_HOSTNAME,
                              pv_manifest_check_hostname, &c->allowed_connections, e)) != PV_OK ||
        (r = parse_ports(caps, c, e)) != PV_OK ||
        (r = get_string_array(caps, "Peripherals", w, PV_MAX_PERIPHERALS, PV_MAX_PERIPHERAL,
                              pv_manifest_check_peripheral, &c->peripherals, e)) != PV_OK ||
        (r = get_string_array(caps, "PowerControls", w, PV_MAX_POWER_CONTROLS, 32,
                              pv_manifest_check_power_control, &c->power_controls, e)) != PV_OK) {
        return r;
    }
    json_t *storage = json_object_get(caps, "MutableStorage");
    if (storage != NULL) {
        if (!json_is_object(storage)) {
            return pv_err_set(e, PV_ERR_FORMAT, "Capabilities.MutableStorage: expected an object");
        }
        if ((r = pv_json_check_fields(storage, storage_fields, "Capabilities.MutableStorage", e)) !=
                PV_OK ||
            (r = pv_json_get_uint(storage, "SizeKB", true, 1, PV_MAX_STORAGE_KB,
                                  "Capabilities.MutableStorage", &v, NULL, e)) != PV_OK) {
            return r;
        }
        c->mutable_storage_kb = (uint32_t)v;
    }
    if ((r = pv_json_get_bool(caps, "DeviceAuthentication", false, "Capabilities",
                              &c->device_authentication, NULL, e)) != PV_OK ||
        (r = pv_json_get_bool(caps, "SystemEventNotifications", false, "Capabilities",
                              &c->system_event_notifications, NULL, e)) != PV_OK ||
        (r = pv_json_get_bool(caps, "SoftwareUpdateDeferral", false, "Capabilities",
                              &c->software_update_deferral, NULL, e)) != PV_OK ||
        (r = pv_json_get_uint(caps, "MemoryLimitKB", false, PV_MIN_MEMORY_KB, PV_MAX_MEMORY_KB,
                              "Capabilities", &v, &present, e)) != PV_OK) {
        return r;
    }
    if (present) {
        c->memory_limit_kb = (uint32_t)v;
    }
    /* What is left: the same name twice in a list. */
    if ((r = pv_capabilities_validate(c, e)) != PV_OK) {
        return pv_err_wrap(e, r, "Capabilities");
    }
    return PV_OK;
}

static int dup_field(const char *s, char **out, pv_err *e)
{
    *out = strdup(s);
    return *out != NULL ? PV_OK : pv_err_set(e, PV_ERR_NOMEM, "out of memory");
}

static int parse_root(const json_t *root, pv_manifest *m, pv_err *e)
{
    const char *w = "";
    const char *s;
    uint64_t v;
    bool present;
    int r;
    if (!json_is_object(root)) {
        return pv_err_set(e, PV_ERR_FORMAT, "expected a JSON object");
    }
    if ((r = pv_json_check_fields(root, top_fields, w, e)) != PV_OK ||
        (r = pv_json_get_uint(root, "SchemaVersion", true, 0, UINT32_MAX, w, &v, NULL, e)) !=
            PV_OK) {
        return r;
    }
    if (v != SCHEMA_VERSION) {
        return pv_err_set(e, PV_ERR_FORMAT, "SchemaVersion %llu is not supported (use %d)",
                          (unsigned long long)v, SCHEMA_VERSION);
    }
    m->type = PV_IMAGE_APPLICATION;
    if ((r = pv_json_get_string(root, "ApplicationType", false, 32, w, &s, &present, e)) != PV_OK) {
        return r;
    }
    if (present && strcmp(s, "Default") != 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "ApplicationType '%s' is not supported (Default)", s);
    }
    if ((r = pv_json_get_string(root, "ComponentId", true, 64, w, &s, NULL, e)) != PV_OK) {
        return r;
    }
    if (pv_uuid_parse(s, m->component_id) != PV_OK) {
        return pv_err_set(e, PV_ERR_FORMAT,
                          "ComponentId '%s' is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, "
                          "not all zero)",
                          s);
    }
    if ((r = pv_json_get_string(root, "Name", true, PV_MAX_NAME, w, &s, NULL, e)) != PV_OK ||
        (r = dup_field(s, &m->name, e)) != PV_OK) {
        return r;
    }
    if ((r = pv_json_get_string(root, "Version", false, PV_MAX_VERSION, w, &s, &present, e)) !=
            PV_OK ||
        (r = dup_field(present ? s : "0.0.0", &m->version, e)) != PV_OK) {
        return r;
    }
    if ((r = pv_json_get_uint(root, "SecurityCounter", false, 0, INT64_MAX, w, &m->security_counter,
                              NULL, e)) != PV_OK) {
        return r;
    }
    if ((r = pv_json_get_string(root, "Target", false, PV_MAX_TARGET, w, &s, &present, e)) !=
        PV_OK) {
        return r;
    }
    if (present && (r = dup_field(s, &m->target, e)) != PV_OK) {
        return r;
    }
    if ((r = pv_json_get_string(root, "EntryPoint", true, PV_MAX_ENTRY_POINT, w, &s, NULL, e)) !=
        PV_OK) {
        return r;
    }
    if ((r = pv_manifest_check_entry_point(s, e)) != PV_OK) {
        return pv_err_wrap(e, r, "EntryPoint");
    }
    if ((r = dup_field(s, &m->entry_point, e)) != PV_OK ||
        (r = get_string_array(root, "CmdArgs", "", PV_MAX_ARGS, PV_MAX_ARG, NULL, &m->args, e)) !=
            PV_OK ||
        (r = parse_capabilities(root, &m->caps, e)) != PV_OK) {
        return r;
    }
    /* Name, version and target rules live with the manifest format: check them through
     * it with placeholder IDs so both paths apply the same rules. */
    pv_manifest probe = *m;
    memset(probe.image_id, 0x01, sizeof(probe.image_id));
    return pv_manifest_validate(&probe, e);
}

int pv_app_manifest_parse(const char *text, size_t len, const char *label, pv_manifest *out,
                          pv_err *e)
{
    memset(out, 0, sizeof(*out));
    json_t *root = NULL;
    pv_manifest m = {0};
    int r = pv_json_parse(text, len, &root, e);
    if (r == PV_OK) {
        r = parse_root(root, &m, e);
    }
    json_decref(root);
    if (r != PV_OK) {
        pv_manifest_free(&m);
        return pv_err_wrap(e, r == PV_ERR_NOMEM ? r : PV_ERR_MANIFEST, "%s", label);
    }
    *out = m;
    return PV_OK;
}

int pv_app_manifest_load(const char *path, pv_manifest *out, pv_err *e)
{
    memset(out, 0, sizeof(*out));
    uint8_t *data = NULL;
    size_t len = 0;
    int r = pv_fs_read_file(path, PV_APP_MANIFEST_MAX_FILE, &data, &len, e);
    if (r != PV_OK) {
        return r;
    }
    r = pv_app_manifest_parse((const char *)data, len, path, out, e);
    free(data);
    return r;
}
