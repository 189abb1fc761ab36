/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pavise/json.h"
#include "pavise/log.h"

int config_default_db(const char *data_dir, char *out, size_t size, pv_err *e)
{
    /* Absolute, so the server finds its database whatever directory it starts in. */
    char *abs = realpath(data_dir, NULL);
    if (abs == NULL) {
        return pv_err_sys(e, errno == ENOENT ? PV_ERR_NOT_FOUND : PV_ERR_IO, errno, "%s", data_dir);
    }
    int n = snprintf(out, size, "sqlite:%s/pavise.db", abs);
    free(abs);
    if (n < 0 || (size_t)n >= size) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "%s: path is too long", data_dir);
    }
    return PV_OK;
}

int config_parse_workers(const char *s, const char *what, int *out, pv_err *e)
{
    long v = 0;
    size_t n = strlen(s);
    if (n == 0 || n > 3 || strspn(s, "0123456789") != n) {
        v = -1;
    } else {
        v = strtol(s, NULL, 10);
    }
    if (v < 1 || v > SERVER_MAX_WORKERS) {
        return pv_err_set(e, PV_ERR_USAGE, "%s: '%s' is not a number of workers (1..%d)", what, s,
                          SERVER_MAX_WORKERS);
    }
    *out = (int)v;
    return PV_OK;
}

int config_defaults(server_config *cfg, const char *data_dir, pv_err *e)
{
    memset(cfg, 0, sizeof(*cfg));
    int n = snprintf(cfg->data_dir, sizeof(cfg->data_dir), "%s", data_dir);
    if (n < 0 || (size_t)n >= sizeof(cfg->data_dir)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "data directory path is too long");
    }
    snprintf(cfg->listen, sizeof(cfg->listen), "%s", CONFIG_DEFAULT_LISTEN);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = cores < 1 ? 1 : cores > SERVER_MAX_WORKERS ? SERVER_MAX_WORKERS : (int)cores;
    cfg->max_body = SERVER_MAX_BODY;
    cfg->operator_cert_days = CONFIG_DEFAULT_DAYS;
    cfg->invite_ttl = CONFIG_DEFAULT_TTL;
    cfg->client_cert_hours = CONFIG_DEFAULT_CLIENT_CERT_HOURS;
    snprintf(cfg->log_level, sizeof(cfg->log_level), "info");
    cfg->log_json = false;
    return config_default_db(data_dir, cfg->db_url, sizeof(cfg->db_url), e);
}

/* ---- the file's keys ---- */

typedef int (*key_fn)(server_config *cfg, const json_t *obj, const char *key, const char *where,
                      pv_err *e);

static int set_text(const json_t *obj, const char *key, const char *where, char *dst, size_t size,
                    pv_err *e)
{
    const char *s = NULL;
    int r = pv_json_get_string(obj, key, true, size - 1, where, &s, NULL, e);
    if (r == PV_OK && s[0] == '\0') {
        r = pv_err_set(e, PV_ERR_FORMAT, "%s: field '%s': empty", where, key);
    }
    if (r == PV_OK) {
        snprintf(dst, size, "%s", s);
    }
    return r;
}

static int key_listen(server_config *cfg, const json_t *obj, const char *key, const char *where,
                      pv_err *e)
{
    return set_text(obj, key, where, cfg->listen, sizeof(cfg->listen), e);
}

static int key_db(server_config *cfg, const json_t *obj, const char *key, const char *where,
                  pv_err *e)
{
    return set_text(obj, key, where, cfg->db_url, sizeof(cfg->db_url), e);
}

static int key_workers(server_config *cfg, const json_t *obj, const char *key, const char *where,
                       pv_err *e)
{
    uint64_t v = 0;
    int r = pv_json_get_uint(obj, key, true, 1, SERVER_MAX_WORKERS, where, &v, NULL, e);
    if (r == PV_OK) {
        cfg->workers = (int)v;
    }
    return r;
}

static int key_max_body(server_config *cfg, const json_t *obj, const char *key, const char *where,
                        pv_err *e)
{
    uint64_t v = 0;
    int r = pv_json_get_uint(obj, key, true, CONFIG_MIN_BODY, CONFIG_MAX_BODY, where, &v, NULL, e);
    if (r == PV_OK) {
        cfg->max_body = (size_t)v;
    }
    return r;
}

static int key_cert_days(server_config *cfg, const json_t *obj, const char *key, const char *where,
                         pv_err *e)
{
    uint64_t v = 0;
    int r = pv_json_get_uint(obj, key, true, 1, CONFIG_MAX_CERT_DAYS, where, &v, NULL, e);
    if (r == PV_OK) {
        cfg->operator_cert_days = (int64_t)v;
    }
    return r;
}

static int key_code_hours(server_config *cfg, const json_t *obj, const char *key, const char *where,
                          pv_err *e)
{
    uint64_t v = 0;
    int r = pv_json_get_uint(obj, key, true, 1, CONFIG_MAX_CODE_HOURS, where, &v, NULL, e);
    if (r == PV_OK) {
        cfg->invite_ttl = (int64_t)v * 3600;
    }
    return r;
}

static int key_client_cert_hours(server_config *cfg, const json_t *obj, const char *key,
                                 const char *where, pv_err *e)
{
    uint64_t v = 0;
    int r = pv_json_get_uint(obj, key, true, 1, CONFIG_MAX_CLIENT_CERT_HOURS, where, &v, NULL, e);
    if (r == PV_OK) {
        cfg->client_cert_hours = (int64_t)v;
    }
    return r;
}

int64_t config_client_cert_seconds(const server_config *cfg)
{
    int64_t h = cfg->client_cert_hours;
    if (h < 1 || h > CONFIG_MAX_CLIENT_CERT_HOURS) {
        h = CONFIG_DEFAULT_CLIENT_CERT_HOURS;
    }
    return h * 3600;
}

static int key_log_level(server_config *cfg, const json_t *obj, const char *key, const char *where,
                         pv_err *e)
{
    char level[sizeof(cfg->log_level)];
    pv_log_level unused;
    int r = set_text(obj, key, where, level, sizeof(level), e);
    if (r == PV_OK && pv_log_level_parse(level, &unused) != PV_OK) {
        r = pv_err_set(e, PV_ERR_FORMAT,
                       "%s: field '%s': '%s' is not debug, info, warn, error or off", where, key,
                       level);
    }
    if (r == PV_OK) {
        snprintf(cfg->log_level, sizeof(cfg->log_level), "%s", level);
    }
    return r;
}

static int key_log_json(server_config *cfg, const json_t *obj, const char *key, const char *where,
                        pv_err *e)
{
    return pv_json_get_bool(obj, key, true, where, &cfg->log_json, NULL, e);
}

static const struct {
    const char *key;
    key_fn fn;
} config_keys[] = {
    {"listen", key_listen},
    {"db", key_db},
    {"workers", key_workers},
    {"max_body_bytes", key_max_body},
    {"operator_cert_days", key_cert_days},
    {"enrollment_code_hours", key_code_hours},
    {"log_level", key_log_level},
    {"log_json", key_log_json},
    {"attestation.client_cert_hours", key_client_cert_hours},
};
#define N_CONFIG_KEYS (sizeof(config_keys) / sizeof(config_keys[0]))

int config_load_file(server_config *cfg, const char *path, bool required, pv_err *e)
{
    json_t *obj = NULL;
    int r = pv_json_load_file(path, CONFIG_MAX_FILE, &obj, e);
    if (r == PV_ERR_NOT_FOUND && !required) {
        pv_err_clear(e);
        return PV_OK;
    }
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "configuration");
    }
    const char *allowed[N_CONFIG_KEYS + 1];
    for (size_t i = 0; i < N_CONFIG_KEYS; i++) {
        allowed[i] = config_keys[i].key;
    }
    allowed[N_CONFIG_KEYS] = NULL;
    if (!json_is_object(obj)) {
        r = pv_err_set(e, PV_ERR_FORMAT, "%s: expected a JSON object", path);
        goto out;
    }
    r = pv_json_check_fields(obj, allowed, path, e);
    for (size_t i = 0; r == PV_OK && i < N_CONFIG_KEYS; i++) {
        if (json_object_get(obj, config_keys[i].key) != NULL) {
            r = config_keys[i].fn(cfg, obj, config_keys[i].key, path, e);
        }
    }
out:
    json_decref(obj);
    return r;
}
