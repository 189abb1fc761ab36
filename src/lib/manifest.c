/* SPDX-License-Identifier: Apache-2.0 */
#include "pavise/manifest.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "pavise/cbor.h"
#include "pavise/platform.h"

/* CBOR keys of the manifest map (docs/formats/image-package.md §4). */
enum {
    K_VERSION = 1,
    K_COMPONENT_ID = 2,
    K_IMAGE_ID = 3,
    K_IMAGE_TYPE = 4,
    K_NAME = 5,
    K_HUMAN_VERSION = 6,
    K_SECURITY_COUNTER = 7,
    K_BUILD_TIME = 8,
    K_TARGET = 9,
    K_ENTRY_POINT = 10,
    K_ARGS = 11,
    K_CAPS = 12,
    K_PAYLOAD_SIZE = 13,
    K_PAYLOAD_SHA256 = 14,
    K_SIGNER_KEY_ID = 15,
};

/* CBOR keys of the capabilities map. */
enum {
    C_CONNECTIONS = 1,
    C_TCP_PORTS = 2,
    C_PERIPHERALS = 3,
    C_STORAGE_KB = 4,
    C_DEVICE_AUTH = 5,
    C_EVENTS = 6,
    C_DEFERRAL = 7,
    C_POWER = 8,
    C_MEMORY_KB = 9,
};

static const char *const power_controls[] = {"ForceReboot", "ForcePowerDown", "SetPowerProfile"};

/* ---- string lists ---- */

int pv_strlist_add(pv_strlist *l, const char *s)
{
    char *copy = strdup(s);
    char **v = realloc(l->v, (l->n + 1) * sizeof(*v));
    if (copy == NULL || v == NULL) {
        free(copy);
        if (v != NULL) {
            l->v = v;
        }
        return PV_ERR_NOMEM;
    }
    v[l->n++] = copy;
    l->v = v;
    return PV_OK;
}

void pv_strlist_free(pv_strlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i]);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void pv_manifest_free(pv_manifest *m)
{
    if (m == NULL) {
        return;
    }
    free(m->name);
    free(m->version);
    free(m->target);
    free(m->entry_point);
    pv_strlist_free(&m->args);
    pv_strlist_free(&m->caps.allowed_connections);
    pv_strlist_free(&m->caps.peripherals);
    pv_strlist_free(&m->caps.power_controls);
    memset(m, 0, sizeof(*m));
}

const char *pv_image_type_name(pv_image_type t)
{
    switch (t) {
    case PV_IMAGE_APPLICATION:
        return "application";
    case PV_IMAGE_OS:
        return "os";
    }
    return "unknown";
}

/* ---- field rules ---- */

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool all_in(const char *s, const char *extra)
{
    for (; *s != '\0'; s++) {
        if (!is_alnum(*s) && strchr(extra, *s) == NULL) {
            return false;
        }
    }
    return true;
}

int pv_manifest_check_hostname(const char *s, pv_err *e)
{
    unsigned char addr[16];
    size_t len = strlen(s);
    if (len == 0 || len > PV_MAX_HOSTNAME) {
        return pv_err_set(e, PV_ERR_FORMAT, "'%.64s' is not 1 to %d characters", s,
                          PV_MAX_HOSTNAME);
    }
    if (inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1) {
        return PV_OK;
    }
    const char *p = s;
    if (strncmp(p, "*.", 2) == 0) {
        p += 2; /* a wildcard for one leading label, as in *.example.com */
    }
    int labels = 0;
    while (*p != '\0') {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0 || n > 63) {
            return pv_err_set(e, PV_ERR_FORMAT, "'%s' has an empty or over-long label", s);
        }
        for (size_t i = 0; i < n; i++) {
            if (!is_alnum(p[i]) && !(p[i] == '-' && i != 0 && i != n - 1)) {
                return pv_err_set(e, PV_ERR_FORMAT,
                                  "'%s' is neither an IP address nor a valid host name", s);
            }
        }
        labels++;
        p += n;
        if (*p == '.') {
            p++;
            if (*p == '\0') {
                return pv_err_set(e, PV_ERR_FORMAT, "'%s' ends with a dot", s);
            }
        }
    }
    if (labels == 0 || (s[0] == '*' && labels < 2)) {
        return pv_err_set(e, PV_ERR_FORMAT, "'%s' is not a valid host name", s);
    }
    return PV_OK;
}

/* An absolute path of plain components: no '.', '..', empty components or odd bytes. */
static int check_abs_path(const char *s, size_t max, const char *what, pv_err *e)
{
    size_t len = strlen(s);
    if (len < 2 || len > max || s[0] != '/') {
        return pv_err_set(e, PV_ERR_FORMAT, "%s '%.64s' must be an absolute path of 2 to %zu bytes",
                          what, s, max);
    }
    const char *p = s + 1;
    while (*p != '\0') {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
            return pv_err_set(e, PV_ERR_FORMAT, "%s '%s' has an empty, '.' or '..' component", what,
                              s);
        }
        for (size_t i = 0; i < n; i++) {
            if (!is_alnum(p[i]) && strchr("._-+", p[i]) == NULL) {
                return pv_err_set(e, PV_ERR_FORMAT,
                                  "%s '%s' may only use letters, digits and . _ - +", what, s);
            }
        }
        p += n;
        if (*p == '/') {
            p++;
            if (*p == '\0') {
                return pv_err_set(e, PV_ERR_FORMAT, "%s '%s' ends with '/'", what, s);
            }
        }
    }
    return PV_OK;
}

int pv_manifest_check_entry_point(const char *s, pv_err *e)
{
    return check_abs_path(s, PV_MAX_ENTRY_POINT, "entry point", e);
}

int pv_manifest_check_peripheral(const char *s, pv_err *e)
{
    int r = check_abs_path(s, PV_MAX_PERIPHERAL, "peripheral", e);
    if (r != PV_OK) {
        return r;
    }
    if (strncmp(s, "/dev/", 5) != 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "peripheral '%s' is not a device node under /dev/", s);
    }
    return PV_OK;
}

int pv_manifest_check_power_control(const char *s, pv_err *e)
{
    for (size_t i = 0; i < sizeof(power_controls) / sizeof(power_controls[0]); i++) {
        if (strcmp(s, power_controls[i]) == 0) {
            return PV_OK;
        }
    }
    return pv_err_set(e, PV_ERR_FORMAT,
                      "power control '%.64s' is not one of ForceReboot, ForcePowerDown, "
                      "SetPowerProfile",
                      s);
}

static int check_text(const char *s, size_t max, const char *extra, const char *what, pv_err *e)
{
    if (s == NULL || s[0] == '\0' || strlen(s) > max) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s must be 1 to %zu bytes", what, max);
    }
    if (extra != NULL && !all_in(s, extra)) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s '%s' may only use letters, digits and %s", what, s,
                          extra);
    }
    return PV_OK;
}

/* Names are shown to people: printable ASCII, no leading or trailing space. */
static int check_name(const char *s, pv_err *e)
{
    int r = check_text(s, PV_MAX_NAME, NULL, "name", e);
    if (r != PV_OK) {
        return r;
    }
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e) {
            return pv_err_set(e, PV_ERR_FORMAT, "name may only use printable ASCII characters");
        }
    }
    if (s[0] == ' ' || s[n - 1] == ' ') {
        return pv_err_set(e, PV_ERR_FORMAT, "name must not start or end with a space");
    }
    return PV_OK;
}

/* Refuses a list that names the same thing twice (case-insensitively: host names and
 * power controls are not case-sensitive, and /dev paths differing by case alone are
 * suspicious enough to refuse). */
static int check_unique(const pv_strlist *l, const char *what, pv_err *e)
{
    for (size_t i = 0; i < l->n; i++) {
        for (size_t j = i + 1; j < l->n; j++) {
            if (strcasecmp(l->v[i], l->v[j]) == 0) {
                return pv_err_set(e, PV_ERR_FORMAT, "%s '%s' is listed twice", what, l->v[j]);
            }
        }
    }
    return PV_OK;
}

int pv_capabilities_validate(const pv_capabilities *c, pv_err *e)
{
    int r;
    if (c->allowed_connections.n > PV_MAX_CONNECTIONS) {
        return pv_err_set(e, PV_ERR_FORMAT, "more than %d allowed connections", PV_MAX_CONNECTIONS);
    }
    for (size_t i = 0; i < c->allowed_connections.n; i++) {
        if ((r = pv_manifest_check_hostname(c->allowed_connections.v[i], e)) != PV_OK) {
            return pv_err_wrap(e, r, "allowed connection %zu", i);
        }
    }
    if ((r = check_unique(&c->allowed_connections, "allowed connection", e)) != PV_OK) {
        return r;
    }
    if (c->n_tcp_server_ports > PV_MAX_TCP_PORTS) {
        return pv_err_set(e, PV_ERR_FORMAT, "more than %d TCP server ports", PV_MAX_TCP_PORTS);
    }
    for (size_t i = 0; i < c->n_tcp_server_ports; i++) {
        if (c->tcp_server_ports[i] == 0) {
            return pv_err_set(e, PV_ERR_FORMAT, "TCP server port 0 is not a port");
        }
        for (size_t j = i + 1; j < c->n_tcp_server_ports; j++) {
            if (c->tcp_server_ports[i] == c->tcp_server_ports[j]) {
                return pv_err_set(e, PV_ERR_FORMAT, "TCP server port %u is listed twice",
                                  c->tcp_server_ports[i]);
            }
        }
    }
    if (c->peripherals.n > PV_MAX_PERIPHERALS) {
        return pv_err_set(e, PV_ERR_FORMAT, "more than %d peripherals", PV_MAX_PERIPHERALS);
    }
    for (size_t i = 0; i < c->peripherals.n; i++) {
        if ((r = pv_manifest_check_peripheral(c->peripherals.v[i], e)) != PV_OK) {
            return r;
        }
    }
    if ((r = check_unique(&c->peripherals, "peripheral", e)) != PV_OK) {
        return r;
    }
    if (c->mutable_storage_kb > PV_MAX_STORAGE_KB) {
        return pv_err_set(e, PV_ERR_FORMAT, "mutable storage %u KB is out of range (1..%u)",
                          c->mutable_storage_kb, PV_MAX_STORAGE_KB);
    }
    if (c->power_controls.n > PV_MAX_POWER_CONTROLS) {
        return pv_err_set(e, PV_ERR_FORMAT, "more than %d power controls", PV_MAX_POWER_CONTROLS);
    }
    for (size_t i = 0; i < c->power_controls.n; i++) {
        if ((r = pv_manifest_check_power_control(c->power_controls.v[i], e)) != PV_OK) {
            return r;
        }
    }
    if ((r = check_unique(&c->power_controls, "power control", e)) != PV_OK) {
        return r;
    }
    if (c->memory_limit_kb != 0 &&
        (c->memory_limit_kb < PV_MIN_MEMORY_KB || c->memory_limit_kb > PV_MAX_MEMORY_KB)) {
        return pv_err_set(e, PV_ERR_FORMAT, "memory limit %u KB is out of range (%u..%u)",
                          c->memory_limit_kb, PV_MIN_MEMORY_KB, PV_MAX_MEMORY_KB);
    }
    return PV_OK;
}

int pv_manifest_validate(const pv_manifest *m, pv_err *e)
{
    int r;
    uint8_t zero[PV_UUID_LEN] = {0};
    if (memcmp(m->component_id, zero, sizeof(zero)) == 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "component ID is missing (all zero)");
    }
    if (memcmp(m->image_id, zero, sizeof(zero)) == 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "image ID is missing (all zero)");
    }
    if (m->type != PV_IMAGE_APPLICATION && m->type != PV_IMAGE_OS) {
        return pv_err_set(e, PV_ERR_FORMAT, "image type %d is not known", (int)m->type);
    }
    if ((r = check_name(m->name, e)) != PV_OK ||
        (r = check_text(m->version, PV_MAX_VERSION, ".+-~_", "version", e)) != PV_OK) {
        return r;
    }
    if (m->target != NULL &&
        (r = check_text(m->target, PV_MAX_TARGET, "._-", "target", e)) != PV_OK) {
        return r;
    }
    if (m->entry_point == NULL) {
        return pv_err_set(e, PV_ERR_FORMAT, "entry point is missing");
    }
    if ((r = pv_manifest_check_entry_point(m->entry_point, e)) != PV_OK) {
        return r;
    }
    if (m->args.n > PV_MAX_ARGS) {
        return pv_err_set(e, PV_ERR_FORMAT, "more than %d arguments", PV_MAX_ARGS);
    }
    for (size_t i = 0; i < m->args.n; i++) {
        if (strlen(m->args.v[i]) > PV_MAX_ARG) {
            return pv_err_set(e, PV_ERR_FORMAT, "argument %zu is longer than %d bytes", i,
                              PV_MAX_ARG);
        }
        for (const char *p = m->args.v[i]; *p != '\0'; p++) {
            if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                return pv_err_set(e, PV_ERR_FORMAT, "argument %zu has a control character", i);
            }
        }
    }
    if (m->payload_size > (4ULL << 30)) {
        return pv_err_set(e, PV_ERR_FORMAT, "payload size %llu is larger than 4 GiB",
                          (unsigned long long)m->payload_size);
    }
    if (m->security_counter > INT64_MAX || m->build_time > INT64_MAX) {
        return pv_err_set(e, PV_ERR_FORMAT, "security counter and build time must be below 2^63");
    }
    return pv_capabilities_validate(&m->caps, e);
}

/* ---- encoding ---- */

static void put_strlist(pv_cbor_enc *enc, const pv_strlist *l)
{
    pv_cbor_put_array(enc, l->n);
    for (size_t i = 0; i < l->n; i++) {
        pv_cbor_put_text(enc, l->v[i]);
    }
}

static void put_caps(pv_cbor_enc *enc, const pv_capabilities *c)
{
    /* Only what is granted is encoded: an absent key means "not granted". */
    size_t n = (c->allowed_connections.n > 0) + (c->n_tcp_server_ports > 0) +
               (c->peripherals.n > 0) + (c->mutable_storage_kb > 0) + c->device_authentication +
               c->system_event_notifications + c->software_update_deferral +
               (c->power_controls.n > 0) + (c->memory_limit_kb > 0);
    pv_cbor_put_map(enc, n);
    if (c->allowed_connections.n > 0) {
        pv_cbor_put_uint(enc, C_CONNECTIONS);
        put_strlist(enc, &c->allowed_connections);
    }
    if (c->n_tcp_server_ports > 0) {
        pv_cbor_put_uint(enc, C_TCP_PORTS);
        pv_cbor_put_array(enc, c->n_tcp_server_ports);
        for (size_t i = 0; i < c->n_tcp_server_ports; i++) {
            pv_cbor_put_uint(enc, c->tcp_server_ports[i]);
        }
    }
    if (c->peripherals.n > 0) {
        pv_cbor_put_uint(enc, C_PERIPHERALS);
        put_strlist(enc, &c->peripherals);
    }
    if (c->mutable_storage_kb > 0) {
        pv_cbor_put_uint(enc, C_STORAGE_KB);
        pv_cbor_put_uint(enc, c->mutable_storage_kb);
    }
    if (c->device_authentication) {
        pv_cbor_put_uint(enc, C_DEVICE_AUTH);
        pv_cbor_put_bool(enc, true);
    }
    if (c->system_event_notifications) {
        pv_cbor_put_uint(enc, C_EVENTS);
        pv_cbor_put_bool(enc, true);
    }
    if (c->software_update_deferral) {
        pv_cbor_put_uint(enc, C_DEFERRAL);
        pv_cbor_put_bool(enc, true);
    }
    if (c->power_controls.n > 0) {
        pv_cbor_put_uint(enc, C_POWER);
        put_strlist(enc, &c->power_controls);
    }
    if (c->memory_limit_kb > 0) {
        pv_cbor_put_uint(enc, C_MEMORY_KB);
        pv_cbor_put_uint(enc, c->memory_limit_kb);
    }
}

int pv_manifest_encode(const pv_manifest *m, pv_buf *out, pv_err *e)
{
    int r = pv_manifest_validate(m, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "manifest");
    }
    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, out);
    pv_cbor_put_map(&enc, m->target != NULL ? 15 : 14);
    pv_cbor_put_uint(&enc, K_VERSION);
    pv_cbor_put_uint(&enc, PV_MANIFEST_VERSION);
    pv_cbor_put_uint(&enc, K_COMPONENT_ID);
    pv_cbor_put_bytes(&enc, m->component_id, PV_UUID_LEN);
    pv_cbor_put_uint(&enc, K_IMAGE_ID);
    pv_cbor_put_bytes(&enc, m->image_id, PV_UUID_LEN);
    pv_cbor_put_uint(&enc, K_IMAGE_TYPE);
    pv_cbor_put_uint(&enc, (uint64_t)m->type);
    pv_cbor_put_uint(&enc, K_NAME);
    pv_cbor_put_text(&enc, m->name);
    pv_cbor_put_uint(&enc, K_HUMAN_VERSION);
    pv_cbor_put_text(&enc, m->version);
    pv_cbor_put_uint(&enc, K_SECURITY_COUNTER);
    pv_cbor_put_uint(&enc, m->security_counter);
    pv_cbor_put_uint(&enc, K_BUILD_TIME);
    pv_cbor_put_uint(&enc, m->build_time);
    if (m->target != NULL) {
        pv_cbor_put_uint(&enc, K_TARGET);
        pv_cbor_put_text(&enc, m->target);
    }
    pv_cbor_put_uint(&enc, K_ENTRY_POINT);
    pv_cbor_put_text(&enc, m->entry_point);
    pv_cbor_put_uint(&enc, K_ARGS);
    put_strlist(&enc, &m->args);
    pv_cbor_put_uint(&enc, K_CAPS);
    put_caps(&enc, &m->caps);
    pv_cbor_put_uint(&enc, K_PAYLOAD_SIZE);
    pv_cbor_put_uint(&enc, m->payload_size);
    pv_cbor_put_uint(&enc, K_PAYLOAD_SHA256);
    pv_cbor_put_bytes(&enc, m->payload_sha256, PV_SHA256_LEN);
    pv_cbor_put_uint(&enc, K_SIGNER_KEY_ID);
    pv_cbor_put_bytes(&enc, m->signer_key_id, PV_KEY_ID_LEN);
    r = pv_cbor_enc_result(&enc);
    if (r != PV_OK) {
        return pv_err_set(e, r, "manifest: encoding failed: %s", pv_strerror(r));
    }
    return PV_OK;
}

/* ---- decoding ---- */

static int get_fixed_bytes(const cbor_item_t *it, uint8_t *out, size_t n, const char *what,
                           pv_err *e)
{
    const uint8_t *p;
    size_t len;
    int r = pv_cbor_get_bytes(it, &p, &len, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "%s", what);
    }
    if (len != n) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s: %zu bytes, expected %zu", what, len, n);
    }
    memcpy(out, p, n);
    return PV_OK;
}

static int get_text(const cbor_item_t *it, size_t max, char **out, const char *what, pv_err *e)
{
    int r = pv_cbor_get_text(it, max, out, e);
    return r == PV_OK ? r : pv_err_wrap(e, r, "%s", what);
}

static int get_uint_max(const cbor_item_t *it, uint64_t max, uint64_t *out, const char *what,
                        pv_err *e)
{
    int r = pv_cbor_get_uint(it, out, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "%s", what);
    }
    if (*out > max) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s: %llu is out of range", what,
                          (unsigned long long)*out);
    }
    return PV_OK;
}

/* allow_empty: the manifest's argument list may be empty; capability lists, which are
 * omitted when they grant nothing, may not. */
static int get_strlist(const cbor_item_t *it, size_t max_n, size_t max_len, bool allow_empty,
                       pv_strlist *out, const char *what, pv_err *e)
{
    if (it == NULL || !cbor_isa_array(it) || !cbor_array_is_definite(it)) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s: expected an array", what);
    }
    size_t n = cbor_array_size(it);
    if (n > max_n) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s: more than %zu entries", what, max_n);
    }
    if (n == 0 && !allow_empty) {
        return pv_err_set(e, PV_ERR_FORMAT, "%s: present but empty", what);
    }
    cbor_item_t **items = cbor_array_handle(it);
    for (size_t i = 0; i < n; i++) {
        char *s = NULL;
        int r = pv_cbor_get_text(items[i], max_len, &s, e);
        if (r != PV_OK) {
            return pv_err_wrap(e, r, "%s[%zu]", what, i);
        }
        r = pv_strlist_add(out, s);
        free(s);
        if (r != PV_OK) {
            return pv_err_set(e, r, "out of memory");
        }
    }
    return PV_OK;
}

static int get_flag(const cbor_item_t *map, int64_t key, bool *out, const char *what, pv_err *e)
{
    cbor_item_t *it = pv_cbor_map_get(map, key);
    *out = false;
    if (it == NULL) {
        return PV_OK;
    }
    int r = pv_cbor_get_bool(it, out, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "%s", what);
    }
    /* One encoding per manifest: what is not granted is absent, never false. */
    return *out ? PV_OK : pv_err_set(e, PV_ERR_FORMAT, "%s: present but false", what);
}

static int decode_caps(const cbor_item_t *map, pv_capabilities *c, pv_err *e)
{
    static const int64_t keys[] = {C_CONNECTIONS, C_TCP_PORTS,   C_PERIPHERALS,
                                   C_STORAGE_KB,  C_DEVICE_AUTH, C_EVENTS,
                                   C_DEFERRAL,    C_POWER,       C_MEMORY_KB};
    int r;
    uint64_t v;
    if (map == NULL || !cbor_isa_map(map)) {
        return pv_err_set(e, PV_ERR_FORMAT, "capabilities: expected a map");
    }
    if ((r = pv_cbor_map_check_keys(map, keys, sizeof(keys) / sizeof(keys[0]), e)) != PV_OK) {
        return pv_err_wrap(e, r, "capabilities");
    }
    cbor_item_t *it;
    if ((it = pv_cbor_map_get(map, C_CONNECTIONS)) != NULL &&
        (r = get_strlist(it, PV_MAX_CONNECTIONS, PV_MAX_HOSTNAME, false, &c->allowed_connections,
                         "allowed connections", e)) != PV_OK) {
        return r;
    }
    if ((it = pv_cbor_map_get(map, C_TCP_PORTS)) != NULL) {
        if (!cbor_isa_array(it) || cbor_array_size(it) == 0 ||
            cbor_array_size(it) > PV_MAX_TCP_PORTS) {
            return pv_err_set(e, PV_ERR_FORMAT, "TCP server ports: expected an array of at most %d",
                              PV_MAX_TCP_PORTS);
        }
        for (size_t i = 0; i < cbor_array_size(it); i++) {
            if ((r = get_uint_max(cbor_array_handle(it)[i], 65535, &v, "TCP server port", e)) !=
                PV_OK) {
                return r;
            }
            c->tcp_server_ports[c->n_tcp_server_ports++] = (uint16_t)v;
        }
    }
    if ((it = pv_cbor_map_get(map, C_PERIPHERALS)) != NULL &&
        (r = get_strlist(it, PV_MAX_PERIPHERALS, PV_MAX_PERIPHERAL, false, &c->peripherals,
                         "peripherals", e)) != PV_OK) {
        return r;
    }
    if ((it = pv_cbor_map_get(map, C_STORAGE_KB)) != NULL) {
        if ((r = get_uint_max(it, PV_MAX_STORAGE_KB, &v, "mutable storage", e)) != PV_OK) {
            return r;
        }
        if (v == 0) {
            return pv_err_set(e, PV_ERR_FORMAT, "mutable storage: present but 0");
        }
        c->mutable_storage_kb = (uint32_t)v;
    }
    if ((r = get_flag(map, C_DEVICE_AUTH, &c->device_authentication, "device authentication", e)) !=
            PV_OK ||
        (r = get_flag(map, C_EVENTS, &c->system_event_notifications, "system event notifications",
                      e)) != PV_OK ||
        (r = get_flag(map, C_DEFERRAL, &c->software_update_deferral, "software update deferral",
                      e)) != PV_OK) {
        return r;
    }
    if ((it = pv_cbor_map_get(map, C_POWER)) != NULL &&
        (r = get_strlist(it, PV_MAX_POWER_CONTROLS, 32, false, &c->power_controls, "power controls",
                         e)) != PV_OK) {
        return r;
    }
    if ((it = pv_cbor_map_get(map, C_MEMORY_KB)) != NULL) {
        if ((r = get_uint_max(it, PV_MAX_MEMORY_KB, &v, "memory limit", e)) != PV_OK) {
            return r;
        }
        if (v == 0) {
            return pv_err_set(e, PV_ERR_FORMAT, "memory limit: present but 0");
        }
        c->memory_limit_kb = (uint32_t)v;
    }
    return PV_OK;
}

static int decode_fields(const cbor_item_t *root, pv_manifest *m, pv_err *e)
{
    static const int64_t keys[] = {K_VERSION,          K_COMPONENT_ID,   K_IMAGE_ID,
                                   K_IMAGE_TYPE,       K_NAME,           K_HUMAN_VERSION,
                                   K_SECURITY_COUNTER, K_BUILD_TIME,     K_TARGET,
                                   K_ENTRY_POINT,      K_ARGS,           K_CAPS,
                                   K_PAYLOAD_SIZE,     K_PAYLOAD_SHA256, K_SIGNER_KEY_ID};
    int r;
    uint64_t v;
    if (!cbor_isa_map(root)) {
        return pv_err_set(e, PV_ERR_FORMAT, "expected a map");
    }
    if ((r = pv_cbor_map_check_keys(root, keys, sizeof(keys) / sizeof(keys[0]), e)) != PV_OK) {
        return r;
    }
    if ((r = pv_cbor_get_uint(pv_cbor_map_get(root, K_VERSION), &v, e)) != PV_OK) {
        return pv_err_wrap(e, r, "manifest version (key 1)");
    }
    if (v != PV_MANIFEST_VERSION) {
        return pv_err_set(e, PV_ERR_UNSUPPORTED, "manifest version %llu is not supported (1)",
                          (unsigned long long)v);
    }
    if ((r = get_fixed_bytes(pv_cbor_map_get(root, K_COMPONENT_ID), m->component_id, PV_UUID_LEN,
                             "component ID", e)) != PV_OK ||
        (r = get_fixed_bytes(pv_cbor_map_get(root, K_IMAGE_ID), m->image_id, PV_UUID_LEN,
                             "image ID", e)) != PV_OK) {
        return r;
    }
    if ((r = get_uint_max(pv_cbor_map_get(root, K_IMAGE_TYPE), 255, &v, "image type", e)) !=
        PV_OK) {
        return r;
    }
    m->type = (pv_image_type)v;
    if ((r = get_text(pv_cbor_map_get(root, K_NAME), PV_MAX_NAME, &m->name, "name", e)) != PV_OK ||
        (r = get_text(pv_cbor_map_get(root, K_HUMAN_VERSION), PV_MAX_VERSION, &m->version,
                      "version", e)) != PV_OK) {
        return r;
    }
    if ((r = get_uint_max(pv_cbor_map_get(root, K_SECURITY_COUNTER), UINT64_MAX,
                          &m->security_counter, "security counter", e)) != PV_OK ||
        (r = get_uint_max(pv_cbor_map_get(root, K_BUILD_TIME), UINT64_MAX, &m->build_time,
                          "build time", e)) != PV_OK) {
        return r;
    }
    cbor_item_t *target = pv_cbor_map_get(root, K_TARGET);
    if (target != NULL && (r = get_text(target, PV_MAX_TARGET, &m->target, "target", e)) != PV_OK) {
        return r;
    }
    if ((r = get_text(pv_cbor_map_get(root, K_ENTRY_POINT), PV_MAX_ENTRY_POINT, &m->entry_point,
                      "entry point", e)) != PV_OK ||
        (r = get_strlist(pv_cbor_map_get(root, K_ARGS), PV_MAX_ARGS, PV_MAX_ARG, true, &m->args,
                         "arguments", e)) != PV_OK ||
        (r = decode_caps(pv_cbor_map_get(root, K_CAPS), &m->caps, e)) != PV_OK) {
        return r;
    }
    if ((r = get_uint_max(pv_cbor_map_get(root, K_PAYLOAD_SIZE), UINT64_MAX, &m->payload_size,
                          "payload size", e)) != PV_OK ||
        (r = get_fixed_bytes(pv_cbor_map_get(root, K_PAYLOAD_SHA256), m->payload_sha256,
                             PV_SHA256_LEN, "payload SHA-256", e)) != PV_OK ||
        (r = get_fixed_bytes(pv_cbor_map_get(root, K_SIGNER_KEY_ID), m->signer_key_id,
                             PV_KEY_ID_LEN, "signer key ID", e)) != PV_OK) {
        return r;
    }
    return pv_manifest_validate(m, e);
}

int pv_manifest_decode(const uint8_t *p, size_t len, pv_manifest *out, pv_err *e)
{
    memset(out, 0, sizeof(*out));
    if (len > PV_MANIFEST_MAX_SIZE) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "manifest: %zu bytes is larger than %d", len,
                          PV_MANIFEST_MAX_SIZE);
    }
    cbor_item_t *root = NULL;
    pv_manifest m = {0};
    int r = pv_cbor_decode(p, len, &root, e);
    if (r == PV_OK) {
        r = decode_fields(root, &m, e);
    }
    if (root != NULL) {
        cbor_decref(&root);
    }
    if (r != PV_OK) {
        pv_manifest_free(&m);
        return pv_err_wrap(e, r, "manifest");
    }
    *out = m;
    return PV_OK;
}

/* ---- JSON view ---- */

static json_t *strlist_json(const pv_strlist *l)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < l->n; i++) {
        json_array_append_new(a, json_string(l->v[i]));
    }
    return a;
}

static json_t *hex_json(const uint8_t *p, size_t n)
{
    char hex[2 * 64 + 1];
    pv_hex_encode(p, n, hex, sizeof(hex));
    return json_string(hex);
}

static json_t *uuid_json(const uint8_t *u)
{
    char s[PV_UUID_STR_LEN];
    pv_uuid_format(u, s);
    return json_string(s);
}

static json_t *time_json(uint64_t t)
{
    char s[PV_TIME_TEXT_LEN + 1];
    if (t > INT64_MAX || !pv_time_format((int64_t)t, s)) {
        return json_integer((json_int_t)(t > INT64_MAX ? INT64_MAX : t));
    }
    return json_string(s);
}

json_t *pv_manifest_to_json(const pv_manifest *m)
{
    const pv_capabilities *c = &m->caps;
    json_t *ports = json_array();
    for (size_t i = 0; ports != NULL && i < c->n_tcp_server_ports; i++) {
        json_array_append_new(ports, json_integer(c->tcp_server_ports[i]));
    }
    json_t *caps = json_pack(
        "{s:o, s:o, s:o, s:I, s:b, s:b, s:b, s:o, s:I}", "allowedConnections",
        strlist_json(&c->allowed_connections), "allowedTcpServerPorts", ports, "peripherals",
        strlist_json(&c->peripherals), "mutableStorageKB", (json_int_t)c->mutable_storage_kb,
        "deviceAuthentication", c->device_authentication, "systemEventNotifications",
        c->system_event_notifications, "softwareUpdateDeferral", c->software_update_deferral,
        "powerControls", strlist_json(&c->power_controls), "memoryLimitKB",
        (json_int_t)c->memory_limit_kb);
    json_t *j = json_pack(
        "{s:o, s:o, s:s, s:s, s:s, s:I, s:o, s:o, s:s, s:o, s:o, s:I, s:o, s:o}", "componentId",
        uuid_json(m->component_id), "imageId", uuid_json(m->image_id), "imageType",
        pv_image_type_name(m->type), "name", m->name, "version", m->version, "securityCounter",
        (json_int_t)(m->security_counter > INT64_MAX ? INT64_MAX : m->security_counter),
        "buildTime", time_json(m->build_time), "target",
        m->target != NULL ? json_string(m->target) : json_null(), "entryPoint", m->entry_point,
        "args", strlist_json(&m->args), "capabilities", caps, "payloadSize",
        (json_int_t)m->payload_size, "payloadSha256", hex_json(m->payload_sha256, PV_SHA256_LEN),
        "signerKeyId", hex_json(m->signer_key_id, PV_KEY_ID_LEN));
    return j;
}
