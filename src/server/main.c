/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavise-server: the Security Service.
 *   pavise-server init --data DIR [--db URL] [--hostname NAMES] [--admin NAME]
 *   pavise-server [serve] --data DIR [--config FILE] [--listen HOST:PORT] [--db URL] ...
 *   pavise-server migrate --data DIR [--db URL]
 *   pavise-server routes
 *   pavise-server factory add|list|import --data DIR ...
 *   pavise-server image-root add|list|remove, os-image add|list|revoke (cmd_images.c)
 *   pavise-server capability-signer set|show (cmd_capability.c)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "ca.h"
#include "cli.h"
#include "cmd_capability.h"
#include "cmd_images.h"
#include "codes.h"
#include "config.h"
#include "http.h"
#include "metrics.h"
#include "pavise/fs.h"
#include "pavise/json.h"
#include "pavise/log.h"
#include "pavise/mfgrec.h"
#include "pavise/platform.h"
#include "records.h"
#include "server.h"
#include "server_cmd.h"
#include "tenant_ca.h"

#ifndef PAVISE_VERSION
#define PAVISE_VERSION "0.1.0"
#endif

#define PROGRAM        "pavise-server"
#define SERVER_ACTOR   "server" /* the audit log's operator for what this program does */
#define DEFAULT_ADMIN  "admin"
#define MAX_HOSTNAMES  32
#define LOGIN_URL      "https://127.0.0.1:8443"
#define CA_CERT_FILE   "ca.crt"
#define CA_FILES_COUNT 5

static const char *const ca_files[CA_FILES_COUNT] = {"ca.key", "ca.crt", "server.key", "server.crt",
                                                     TENANT_CA_KEK_FILE};

static void rfc3339(int64_t t, char out[32])
{
    if (!pv_time_format(t, out)) {
        snprintf(out, 32, "?");
    }
}

static int join_path(char *out, size_t size, const char *dir, const char *name, pv_err *e)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size) {
        return pv_err_set(e, PV_ERR_USAGE, "%s: path is too long", dir);
    }
    return PV_OK;
}

/* Writes a server-wide audit row (tenant NULL, operator "server"). detail: JSON text. */
static int audit_server(store *db, const char *action, const char *target, const char *detail,
                        pv_err *e)
{
    store_val p[] = {SV_INT(pv_time_now()), SV_TEXT(SERVER_ACTOR), SV_TEXT(action), SV_TEXT(target),
                     SV_TEXT(detail)};
    int r = store_exec(db,
                       "INSERT INTO audit (tenant_id, at, operator, action, target, detail) "
                       "VALUES (NULL, $1, $2, $3, $4, $5)",
                       p, 5, NULL, NULL, e);
    return r == PV_OK ? r : pv_err_wrap(e, r, "writing the audit log");
}

/* Ends an offline command's write transaction: when its change succeeded (r is PV_OK),
 * writes the audit row and commits; when the change, the audit row or the commit failed,
 * rolls back. Returns the first failure. */
static int end_server_tx(store *db, int r, const char *action, const char *target,
                         const char *detail, pv_err *e)
{
    if (r == PV_OK) {
        r = audit_server(db, action, target, detail, e);
    }
    if (r == PV_OK) {
        r = store_commit(db, e);
    }
    if (r != PV_OK) {
        store_rollback(db);
    }
    return r;
}

/* Configuration for a command: defaults, then the file, then --db. The data directory
 * must exist. */
static int load_config(const cli_cmd *cmd, const cli_args *args, server_config *cfg, pv_err *e)
{
    const char *data = cli_get(cmd, args, "data");
    const char *config = cli_get(cmd, args, "config");
    const char *db = cli_get(cmd, args, "db");
    char path[PATH_MAX];
    int r = config_defaults(cfg, data, e);
    if (r == PV_ERR_NOT_FOUND) {
        return pv_err_set(e, PV_ERR_NOT_FOUND,
                          "data directory %s does not exist: run `pavise-server init --data %s` "
                          "first",
                          data, data);
    }
    if (r != PV_OK) {
        return r;
    }
    if (config != NULL) {
        r = config_load_file(cfg, config, true, e);
    } else {
        r = join_path(path, sizeof(path), data, CONFIG_FILE, e);
        if (r == PV_OK) {
            r = config_load_file(cfg, path, false, e);
        }
    }
    if (r == PV_OK && db != NULL) {
        int n = snprintf(cfg->db_url, sizeof(cfg->db_url), "%s", db);
        if (n < 0 || (size_t)n >= sizeof(cfg->db_url)) {
            r = pv_err_set(e, PV_ERR_USAGE, "--db is too long");
        }
    }
    return r;
}

/* How a database URL may be shown: a SQLite path as it is, a PostgreSQL connection
 * string never (it may hold a password). */
static const char *db_label(const char *url)
{
    return strncmp(url, "sqlite:", 7) == 0 ? url : "postgres:(connection string not shown)";
}

/* Opens the configured database and brings its schema up to date. */
static int open_db(const server_config *cfg, store **db, int *version, pv_err *e)
{
    int r = store_open(cfg->db_url, db, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "database %s", db_label(cfg->db_url));
    }
    r = store_migrate(*db, version, e);
    if (r != PV_OK) {
        store_close(*db);
        *db = NULL;
        return pv_err_wrap(e, r, "migrating database %s", db_label(cfg->db_url));
    }
    return PV_OK;
}

/* For the commands in cmd_*.c (server_cmd.h). */
int server_cmd_open_db(const cli_cmd *cmd, const cli_args *args, store **db, pv_err *e)
{
    server_config cfg;
    *db = NULL;
    int r = load_config(cmd, args, &cfg, e);
    return r == PV_OK ? open_db(&cfg, db, NULL, e) : r;
}

int server_cmd_end_tx(store *db, int r, const char *action, const char *target, const char *detail,
                      pv_err *e)
{
    return end_server_tx(db, r, action, target, detail, e);
}

/* ---- init ---- */

/* Splits "a,b,c" into at most MAX_HOSTNAMES entries, in place. */
static int split_hostnames(char *list, const char *hosts[MAX_HOSTNAMES + 1], pv_err *e)
{
    size_t n = 0;
    char *save = NULL;
    if (list[0] == ',' || list[strlen(list) - 1] == ',' || strstr(list, ",,") != NULL) {
        return pv_err_set(e, PV_ERR_USAGE, "--hostname: empty name in the list");
    }
    for (char *tok = strtok_r(list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        if (n >= MAX_HOSTNAMES) {
            return pv_err_set(e, PV_ERR_USAGE, "--hostname: more than %d names", MAX_HOSTNAMES);
        }
        hosts[n++] = tok;
    }
    hosts[n] = NULL;
    return PV_OK;
}

static void remove_ca_files(const char *data)
{
    char path[PATH_MAX];
    for (size_t i = 0; i < CA_FILES_COUNT; i++) {
        if (join_path(path, sizeof(path), data, ca_files[i], NULL) == PV_OK) {
            unlink(path);
        }
    }
}

static int write_server_conf(const char *path, const char *db_url, pv_err *e)
{
    json_t *o = json_pack("{s:s}", "db", db_url);
    char *text = o != NULL ? json_dumps(o, JSON_INDENT(2)) : NULL;
    json_decref(o);
    if (text == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    size_t len = strlen(text);
    char *withnl = realloc(text, len + 2);
    if (withnl == NULL) {
        free(text);
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    withnl[len] = '\n';
    withnl[len + 1] = '\0';
    int r = pv_fs_write_file(path, withnl, len + 1, 0600, false, e);
    free(withnl);
    return r;
}

/* The first administrator's enrollment code, with its audit row, in one transaction. */
static int create_first_code(store *db, const char *admin, int64_t ttl,
                             char code[CODES_TEXT_LEN + 1], int64_t *expires, pv_err *e)
{
    int64_t now = pv_time_now();
    char when[32];
    char detail[160] = "";
    int r = store_begin(db, true, e);
    if (r != PV_OK) {
        return r;
    }
    r = codes_create(db, admin, NULL, NULL, NULL, now, ttl, code, e);
    if (r == PV_OK) {
        rfc3339(now + ttl, when);
        snprintf(detail, sizeof(detail), "{\"user\":\"%s\",\"expires_at\":\"%s\"}", admin, when);
    }
    r = end_server_tx(db, r, "operator.invite", admin, detail, e);
    if (r != PV_OK) {
        pv_wipe(code, CODES_TEXT_LEN + 1);
        return r;
    }
    *expires = now + ttl;
    return PV_OK;
}

static bool valid_admin_name(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 64 &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._@-") == n;
}

static int cmd_init(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    const char *data = cli_get(cmd, args, "data");
    const char *db_flag = cli_get(cmd, args, "db");
    const char *hostnames = cli_get(cmd, args, "hostname");
    const char *admin = cli_get(cmd, args, "admin");
    char conf_path[PATH_MAX], key_path[PATH_MAX], ca_path[PATH_MAX];
    char db_url[sizeof(((server_config *)0)->db_url)];
    char *host_copy = NULL;
    const char *hosts[MAX_HOSTNAMES + 1] = {NULL};
    char code[CODES_TEXT_LEN + 1] = "";
    bool created = false;
    store *db = NULL;
    server_ca *ca = NULL;
    int64_t expires = 0;
    int version = 0;
    int r = PV_ERR_INTERNAL;

    admin = admin != NULL ? admin : DEFAULT_ADMIN;
    if (!valid_admin_name(admin)) {
        return pv_err_set(e, PV_ERR_USAGE, "--admin: '%s' is not 1 to 64 of A-Z a-z 0-9 . _ @ -",
                          admin);
    }
    r = join_path(conf_path, sizeof(conf_path), data, CONFIG_FILE, e);
    if (r == PV_OK) {
        r = join_path(key_path, sizeof(key_path), data, "ca.key", e);
    }
    if (r != PV_OK) {
        return r;
    }
    if (access(key_path, F_OK) == 0 || access(conf_path, F_OK) == 0) {
        return pv_err_set(e, PV_ERR_EXISTS,
                          "%s is already initialised (it holds %s); a second init would replace "
                          "the CA every operator trusts, so it is refused",
                          data, access(key_path, F_OK) == 0 ? "ca.key" : CONFIG_FILE);
    }
    if (hostnames != NULL) {
        host_copy = strdup(hostnames);
        if (host_copy == NULL) {
            return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        }
        r = split_hostnames(host_copy, hosts, e);
        if (r != PV_OK) {
            goto out;
        }
    }
    r = ca_init(data, hosts, e);
    if (r == PV_ERR_INVALID_ARG) {
        r = pv_err_wrap(e, PV_ERR_USAGE, "--hostname");
    }
    if (r != PV_OK) {
        goto out;
    }
    created = true;
    /* The attestation nonce key, made with the rest of DATA (nonce.h). */
    uint8_t nonce_key[NONCE_KEY_LEN];
    r = nonce_key_load(data, true, nonce_key, e);
    pv_wipe(nonce_key, sizeof(nonce_key));
    if (r != PV_OK) {
        pv_err_wrap(e, r, "creating the nonce key");
        goto out;
    }
    if (db_flag != NULL) {
        int n = snprintf(db_url, sizeof(db_url), "%s", db_flag);
        r = n > 0 && (size_t)n < sizeof(db_url) ? PV_OK
                                                : pv_err_set(e, PV_ERR_USAGE, "--db is too long");
    } else {
        r = config_default_db(data, db_url, sizeof(db_url), e);
    }
    if (r == PV_OK) {
        r = write_server_conf(conf_path, db_url, e);
    }
    if (r == PV_OK) {
        r = ca_load(data, &ca, e);
    }
    if (r == PV_OK) {
        server_config cfg;
        snprintf(cfg.db_url, sizeof(cfg.db_url), "%s", db_url);
        r = open_db(&cfg, &db, &version, e);
    }
    if (r == PV_OK) {
        r = create_first_code(db, admin, CONFIG_DEFAULT_TTL, code, &expires, e);
        if (r != PV_OK) {
            pv_err_wrap(e, r, "creating the enrollment code");
        }
    }
    if (r != PV_OK) {
        goto out;
    }

    char *abs = realpath(data, NULL);
    int n = snprintf(ca_path, sizeof(ca_path), "%s/%s", abs != NULL ? abs : data, CA_CERT_FILE);
    free(abs);
    if (n < 0 || (size_t)n >= sizeof(ca_path)) {
        r = pv_err_set(e, PV_ERR_USAGE, "%s: path is too long", data);
        goto out;
    }
    char fp[8 + 64 + 1], when[32], next[PATH_MAX + 160];
    snprintf(fp, sizeof(fp), "SHA256:%s", ca_fingerprint(ca));
    rfc3339(expires, when);
    snprintf(next, sizeof(next), "pavise login --server %s --ca %s --enroll %s", LOGIN_URL, ca_path,
             code);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s}", "ca_certificate", ca_path,
                          "ca_fingerprint", fp, "administrator", admin, "enrollment_code", code,
                          "expires_at", when, "database", db_url, "schema_version", version,
                          "next_command", next);
    static const char *const fields[] = {
        "ca_certificate",
        "CA certificate:",
        "ca_fingerprint",
        "CA fingerprint:",
        "administrator",
        "Administrator:",
        "enrollment_code",
        "Enrollment code:",
        "expires_at",
        "Code expires:",
        "database",
        "Database:",
        NULL,
    };
    r = cli_print_object(args->json, o, fields);
    if (r == PV_OK && !args->json) {
        printf("\nThe code is shown only this once. Start the server with\n"
               "  pavise-server --data %s\n"
               "then, on the administrator's machine (with a copy of %s):\n"
               "  %s\n",
               data, ca_path, next);
    }
    pv_wipe(next, sizeof(next));
out:
    pv_wipe(code, sizeof(code));
    if (r != PV_OK && created) {
        /* Leave DATA as it was, so init can simply be run again. */
        remove_ca_files(data);
        unlink(conf_path);
    }
    store_close(db);
    ca_free(ca);
    free(host_copy);
    return r;
}

/* ---- serve ---- */

static int apply_serve_flags(const cli_cmd *cmd, const cli_args *args, server_config *cfg,
                             pv_err *e)
{
    const char *listen = cli_get(cmd, args, "listen");
    const char *workers = cli_get(cmd, args, "workers");
    const char *level = cli_get(cmd, args, "log-level");
    if (listen != NULL) {
        int n = snprintf(cfg->listen, sizeof(cfg->listen), "%s", listen);
        if (n < 0 || (size_t)n >= sizeof(cfg->listen)) {
            return pv_err_set(e, PV_ERR_USAGE, "--listen is too long");
        }
    }
    if (workers != NULL) {
        int r = config_parse_workers(workers, "--workers", &cfg->workers, e);
        if (r != PV_OK) {
            return r;
        }
    }
    if (level != NULL) {
        pv_log_level unused;
        if (pv_log_level_parse(level, &unused) != PV_OK) {
            return pv_err_set(e, PV_ERR_USAGE,
                              "--log-level: '%s' is not debug, info, warn, error or off", level);
        }
        snprintf(cfg->log_level, sizeof(cfg->log_level), "%s", level);
    }
    if (cli_flag(cmd, args, "log-json")) {
        cfg->log_json = true;
    }
    return PV_OK;
}

static int cmd_serve(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    server srv;
    store *db = NULL;
    int version = 0;
    memset(&srv, 0, sizeof(srv));
    int r = load_config(cmd, args, &srv.cfg, e);
    if (r == PV_OK) {
        r = apply_serve_flags(cmd, args, &srv.cfg, e);
    }
    if (r != PV_OK) {
        return r;
    }
    pv_log_level level = PV_LOG_INFO;
    (void)pv_log_level_parse(srv.cfg.log_level, &level);
    pv_log_init(level, srv.cfg.log_json, NULL, PROGRAM);

    r = ca_load(srv.cfg.data_dir, &srv.ca, e);
    if (r != PV_OK) {
        goto out;
    }
    /* Made here too when missing, like the tenant CA KEK: a data directory from before
     * attestation. Creation never replaces a file, so replicas agree on one key. */
    r = nonce_key_load(srv.cfg.data_dir, true, srv.nonce_key, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "the attestation nonce key");
        goto out;
    }
    srv.metrics = metrics_new();
    if (srv.metrics == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* Migrate once, before the workers open their own connections; then give the
     * tenants made before tenant CAs existed theirs, so every tenant has one by the time
     * a request arrives. */
    r = open_db(&srv.cfg, &db, &version, e);
    if (r == PV_OK) {
        size_t made = 0;
        r = tenant_ca_ensure_all(db, ca_tenant_kek(srv.ca), pv_time_now(), &made, e);
        if (r == PV_OK && made > 0) {
            pv_info("created the CA of %zu tenant(s) made before tenant CAs existed", made);
        }
    }
    store_close(db);
    if (r != PV_OK) {
        goto out;
    }
    pv_info("CA %s, database schema version %d", ca_fingerprint(srv.ca), version);
    r = http_serve(&srv, cli_get(cmd, args, "ready-file"), e);
out:
    metrics_free(srv.metrics);
    ca_free(srv.ca);
    pv_wipe(srv.nonce_key, sizeof(srv.nonce_key));
    return r;
}

/* ---- migrate, routes ---- */

static int cmd_migrate(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    server_config cfg;
    store *db = NULL;
    int version = 0;
    int r = load_config(cmd, args, &cfg, e);
    if (r == PV_OK) {
        r = open_db(&cfg, &db, &version, e);
    }
    if (r != PV_OK) {
        return r;
    }
    json_t *o = json_pack("{s:s, s:s, s:i}", "database", db_label(cfg.db_url), "backend",
                          store_backend_name(db), "schema_version", version);
    store_close(db);
    static const char *const fields[] = {
        "database", "Database:", "backend", "Backend:", "schema_version", "Schema version:", NULL};
    return cli_print_object(args->json, o, fields);
}

static int cmd_routes(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    for (size_t i = 0; i < api_route_count; i++) {
        printf("%s %s\n", api_routes[i].method, api_routes[i].pattern);
    }
    return PV_OK;
}

/* ---- factory ---- */

static int cmd_factory_add(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    const char *path = cli_get(cmd, args, "cert");
    server_config cfg;
    store *db = NULL;
    uint8_t *pem = NULL;
    size_t len = 0;
    char fp[65] = "";
    int r = load_config(cmd, args, &cfg, e);
    if (r == PV_OK) {
        r = pv_fs_read_file(path, PV_PEM_MAX_FILE, &pem, &len, e);
    }
    if (r == PV_OK) {
        r = open_db(&cfg, &db, NULL, e);
    }
    if (r == PV_OK) {
        r = store_begin(db, true, e);
    }
    if (r != PV_OK) {
        goto out;
    }
    r = records_add_factory(db, (const char *)pem, len, pv_time_now(), fp, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "%s", path);
    }
    if ((r = end_server_tx(db, r, "factory.add", fp, "{}", e)) != PV_OK) {
        goto out;
    }
    static const char *const fields[] = {"fingerprint", "Factory added:", NULL};
    r = cli_print_object(args->json, json_pack("{s:s}", "fingerprint", fp), fields);
out:
    store_close(db);
    free(pem);
    return r;
}

static int cmd_factory_list(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    server_config cfg;
    store *db = NULL;
    store_rows *rows = NULL;
    int r = load_config(cmd, args, &cfg, e);
    if (r == PV_OK) {
        r = open_db(&cfg, &db, NULL, e);
    }
    if (r == PV_OK) {
        r = store_exec(db,
                       "SELECT fingerprint, subject, created_at FROM factories "
                       "ORDER BY created_at, fingerprint",
                       NULL, 0, &rows, NULL, e);
    }
    if (r != PV_OK) {
        goto out;
    }
    size_t n = store_rows_count(rows);
    if (args->json) {
        json_t *items = json_array();
        for (size_t i = 0; items != NULL && i < n; i++) {
            char when[32];
            rfc3339(store_rows_int(rows, i, 2), when);
            json_array_append_new(
                items, json_pack("{s:s, s:s, s:s}", "fingerprint", store_rows_text(rows, i, 0),
                                 "subject", store_rows_text(rows, i, 1), "created_at", when));
        }
        r = items != NULL ? pv_json_print(items) : pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        json_decref(items);
    } else if (n == 0) {
        printf("No trusted factories. Add one with `pavise-server factory add`.\n");
    } else {
        printf("%-64s  %-20s  %s\n", "FINGERPRINT", "ADDED", "SUBJECT");
        for (size_t i = 0; i < n; i++) {
            char when[32];
            rfc3339(store_rows_int(rows, i, 2), when);
            printf("%-64s  %-20s  ", store_rows_text(rows, i, 0), when);
            cli_put_escaped(stdout, store_rows_text(rows, i, 1));
            putchar('\n');
        }
    }
out:
    store_rows_free(rows);
    store_close(db);
    return r;
}

/* ---- operators (on the server itself: the remedy for a lost or stolen key) ---- */

static int cmd_operator_list(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    server_config cfg;
    store *db = NULL;
    store_rows *rows = NULL;
    int r = load_config(cmd, args, &cfg, e);
    if (r == PV_OK) {
        r = open_db(&cfg, &db, NULL, e);
    }
    if (r == PV_OK) {
        store_val p[] = {SV_INT(pv_time_now())};
        r = store_exec(db,
                       "SELECT o.name, o.id, o.created_at, "
                       "(SELECT COUNT(*) FROM operator_certs c WHERE c.operator_id = o.id "
                       "AND c.revoked_at IS NULL AND c.not_after > $1) "
                       "FROM operators o ORDER BY o.name",
                       p, 1, &rows, NULL, e);
    }
    if (r != PV_OK) {
        goto out;
    }
    size_t n = store_rows_count(rows);
    if (args->json) {
        json_t *items = json_array();
        for (size_t i = 0; items != NULL && i < n; i++) {
            char when[32];
            rfc3339(store_rows_int(rows, i, 2), when);
            json_array_append_new(
                items, json_pack("{s:s, s:s, s:s, s:I}", "name", store_rows_text(rows, i, 0), "id",
                                 store_rows_text(rows, i, 1), "created_at", when,
                                 "valid_certificates", (json_int_t)store_rows_int(rows, i, 3)));
        }
        r = items != NULL ? pv_json_print(items) : pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        json_decref(items);
    } else if (n == 0) {
        printf("No operators yet.\n");
    } else {
        printf("%-32s  %-36s  %-20s  %s\n", "NAME", "ID", "ENROLLED", "VALID CERTIFICATES");
        for (size_t i = 0; i < n; i++) {
            char when[32];
            rfc3339(store_rows_int(rows, i, 2), when);
            printf("%-32s  %-36s  %-20s  %lld\n", store_rows_text(rows, i, 0),
                   store_rows_text(rows, i, 1), when, (long long)store_rows_int(rows, i, 3));
        }
    }
out:
    store_rows_free(rows);
    store_close(db);
    return r;
}

/* A server-made code for an operator, new or existing: the way back in after a lost or
 * revoked key (the one kind of code that may re-key an existing name, because only the
 * server's own operator can make it). */
static int cmd_operator_invite(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    const char *user = cli_get(cmd, args, "user");
    server_config cfg;
    store *db = NULL;
    server_ca *ca = NULL;
    char code[CODES_TEXT_LEN + 1] = "";
    int64_t expires = 0;
    if (!valid_admin_name(user) || strcmp(user, "server") == 0) {
        return pv_err_set(e, PV_ERR_USAGE, "--user: 1 to 64 of A-Z a-z 0-9 . _ @ - (not 'server')");
    }
    int r = load_config(cmd, args, &cfg, e);
    if (r == PV_OK) {
        r = ca_load(cfg.data_dir, &ca, e);
    }
    if (r == PV_OK) {
        r = open_db(&cfg, &db, NULL, e);
    }
    if (r == PV_OK) {
        r = create_first_code(db, user, cfg.invite_ttl, code, &expires, e);
    }
    if (r == PV_OK) {
        char when[32], fp[8 + 64 + 1];
        rfc3339(expires, when);
        snprintf(fp, sizeof(fp), "SHA256:%s", ca_fingerprint(ca));
        json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "user", user, "enrollment_code", code,
                              "expires_at", when, "ca_fingerprint", fp);
        static const char *const fields[] = {
            "user",       "Operator:",     "enrollment_code", "Enrollment code:",
            "expires_at", "Code expires:", "ca_fingerprint",  "CA fingerprint:",
            NULL};
        r = cli_print_object(args->json, o, fields);
        if (r == PV_OK && !args->json) {
            printf("\nThe code is shown only this once. On the operator's machine:\n"
                   "  pavise login --server %s --fingerprint %s --enroll %s --force\n",
                   LOGIN_URL, fp, code);
        }
    }
    pv_wipe(code, sizeof(code));
    store_close(db);
    ca_free(ca);
    return r;
}

/* Revokes every certificate of an operator: the next request with any of them is a
 * 401 (each request looks its certificate up). The operator keeps its name and roles;
 * `operator invite` makes the code for its new login. */
static int cmd_operator_revoke(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    const char *user = cli_get(cmd, args, "user");
    server_config cfg;
    store *db = NULL;
    int64_t changes = 0;
    char detail[64] = "";
    int r = load_config(cmd, args, &cfg, e);
    if (r == PV_OK) {
        r = open_db(&cfg, &db, NULL, e);
    }
    if (r == PV_OK) {
        r = store_begin(db, true, e);
    }
    if (r != PV_OK) {
        goto out;
    }
    int64_t now = pv_time_now();
    store_val p[] = {SV_TEXT(user), SV_INT(now)};
    r = store_exec(db,
                   "UPDATE operator_certs SET revoked_at = $2 WHERE revoked_at IS NULL AND "
                   "operator_id = (SELECT id FROM operators WHERE name = $1)",
                   p, 2, NULL, &changes, e);
    if (r == PV_OK) {
        snprintf(detail, sizeof(detail), "{\"certificates\": %lld}", (long long)changes);
    }
    if ((r = end_server_tx(db, r, "operator.revoke", user, detail, e)) != PV_OK) {
        goto out;
    }
    static const char *const fields[] = {"user", "Operator:", "revoked",
                                         "Certificates revoked:", NULL};
    r = cli_print_object(
        args->json, json_pack("{s:s, s:I}", "user", user, "revoked", (json_int_t)changes), fields);
out:
    store_close(db);
    return r;
}

static int cmd_factory_import(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    const char *path = cli_get(cmd, args, "record");
    server_config cfg;
    store *db = NULL;
    uint8_t *rec = NULL;
    size_t len = 0;
    char device_id[PV_DEVICE_ID_HEX_LEN + 1] = "";
    int r = load_config(cmd, args, &cfg, e);
    if (r == PV_OK) {
        r = pv_fs_read_file(path, PV_MFGREC_MAX_SIZE, &rec, &len, e);
    }
    if (r == PV_OK) {
        r = open_db(&cfg, &db, NULL, e);
    }
    if (r == PV_OK) {
        r = store_begin(db, true, e);
    }
    if (r != PV_OK) {
        goto out;
    }
    r = records_import(db, rec, len, pv_time_now(), device_id, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "%s", path);
    }
    if ((r = end_server_tx(db, r, "record.import", device_id, "{}", e)) != PV_OK) {
        goto out;
    }
    static const char *const fields[] = {"device_id", "Record imported for device:", NULL};
    r = cli_print_object(args->json, json_pack("{s:s}", "device_id", device_id), fields);
out:
    store_close(db);
    free(rec);
    return r;
}

/* ---- dispatch ---- */

static const cli_opt init_opts[] = {
    {"data", "DIR", true, "the data directory to create (keys, CA, configuration)"},
    {"db", "URL", false, "sqlite:PATH or postgres:CONNINFO (default: sqlite:DIR/pavise.db)"},
    {"hostname", "NAMES", false,
     "comma-separated DNS names or IP addresses for the server certificate, besides localhost, "
     "127.0.0.1 and ::1"},
    {"admin", "NAME", false, "the first administrator's user name (default: admin)"},
    {NULL, NULL, false, NULL},
};

static const cli_opt serve_opts[] = {
    {"data", "DIR", true, "the data directory made by init"},
    {"config", "FILE", false, "the configuration file (default: DIR/server.conf)"},
    {"listen", "HOST:PORT", false, "address to listen on (default: 127.0.0.1:8443)"},
    {"db", "URL", false, "sqlite:PATH or postgres:CONNINFO (default: from the configuration)"},
    {"workers", "N", false, "worker threads (default: number of online cores)"},
    {"log-level", "LEVEL", false, "debug, info, warn, error or off (default: info)"},
    {"log-json", NULL, false, "log one JSON object per line"},
    {"ready-file", "FILE", false, "write HOST:PORT to FILE once the server accepts connections"},
    {NULL, NULL, false, NULL},
};

/* The options every offline command takes to find the database. */
#define DATA_OPT                                                                                   \
    {                                                                                              \
        "data", "DIR", true, "the data directory made by init"                                     \
    }
#define CONFIG_DB_OPTS                                                                             \
    {"config", "FILE", false, "the configuration file (default: DIR/server.conf)"},                \
    {                                                                                              \
        "db", "URL", false, "sqlite:PATH or postgres:CONNINFO (default: from the configuration)"   \
    }

static const cli_opt db_opts[] = {
    DATA_OPT,
    CONFIG_DB_OPTS,
    {NULL, NULL, false, NULL},
};

static const cli_opt no_opts[] = {
    {NULL, NULL, false, NULL},
};

static const cli_opt factory_add_opts[] = {
    DATA_OPT,
    {"cert", "FILE", true, "the factory's CA certificate (PEM)"},
    CONFIG_DB_OPTS,
    {NULL, NULL, false, NULL},
};

static const cli_opt factory_import_opts[] = {
    DATA_OPT,
    {"record", "FILE", true, "a manufacturing record file"},
    CONFIG_DB_OPTS,
    {NULL, NULL, false, NULL},
};

static const cli_opt operator_revoke_opts[] = {
    DATA_OPT,
    {"user", "NAME", true, "the operator's name"},
    CONFIG_DB_OPTS,
    {NULL, NULL, false, NULL},
};

static const cli_cmd cmds[] = {
    {NULL, "init", "Create the CA, the database and the first administrator's enrollment code",
     "Creates DIR (mode 0700) with the server's CA and TLS key pairs, DIR/server.conf and the "
     "database, and prints a one-time enrollment code for the first administrator with the "
     "command that redeems it. Refused when DIR is already initialised.",
     init_opts, true, cmd_init},
    {NULL, "serve", "Serve the HTTPS API (the default command)",
     "Listens with TLS 1.3 (1.2 at least), asks for client certificates from this server's CA, "
     "and serves the API until SIGINT or SIGTERM. Settings come from the configuration file, "
     "overridden by these options.",
     serve_opts, false, cmd_serve},
    {NULL, "migrate", "Bring the database schema up to date", NULL, db_opts, true, cmd_migrate},
    {NULL, "routes", "List the API routes, one 'METHOD PATTERN' a line", NULL, no_opts, false,
     cmd_routes},
    {"factory", "add", "Trust a factory CA to sign manufacturing records", NULL, factory_add_opts,
     true, cmd_factory_add},
    {"factory", "list", "List the trusted factory CAs", NULL, db_opts, true, cmd_factory_list},
    {"factory", "import", "Import a manufacturing record so its device can be claimed by ID", NULL,
     factory_import_opts, true, cmd_factory_import},
    {"operator", "list", "List the operators and how many valid certificates each holds", NULL,
     db_opts, true, cmd_operator_list},
    {"operator", "invite", "Make a one-time enrollment code for an operator, new or existing",
     "For the first administrator of another tenant, or to give an operator who lost its key "
     "(or had it revoked) a new login under the same name, with the same roles.",
     operator_revoke_opts, true, cmd_operator_invite},
    {"operator", "revoke", "Revoke every certificate of an operator (a lost or stolen key)",
     "The next request made with any of them is refused. The operator keeps its name and roles; "
     "`pavise-server operator invite` gives it a new login.",
     operator_revoke_opts, true, cmd_operator_revoke},
    CMD_IMAGES_ENTRIES,
    CMD_CAPABILITY_ENTRIES,
    {NULL, NULL, NULL, NULL, NULL, false, NULL},
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: pavise-server <command> [options]\n"
                 "       pavise-server --data DIR [serve options]\n\n"
                 "The Pavise Security Service.\n\nCommands:\n");
    for (const cli_cmd *c = cmds; c->name != NULL; c++) {
        char name[32];
        snprintf(name, sizeof(name), "%s%s%s", c->group != NULL ? c->group : "",
                 c->group != NULL ? " " : "", c->name);
        fprintf(out, "  %-22s %s\n", name, c->summary);
    }
    fprintf(out, "\nRun 'pavise-server <command> --help' for its options.\n"
                 "Exit codes: 0 success, 1 failure, 2 usage error, 3 input rejected,\n"
                 "5 not found, 6 conflict.\n");
}

static int run(const cli_cmd *c, int argc, char **argv)
{
    cli_args args;
    bool help = false;
    pv_err e;
    pv_err_clear(&e);
    if (cli_parse(c, argc, argv, &args, &help, &e) != PV_OK) {
        fprintf(stderr, "%s %s%s%s: ", PROGRAM, c->group != NULL ? c->group : "",
                c->group != NULL ? " " : "", c->name);
        cli_put_escaped(stderr, pv_err_msg(&e));
        fprintf(stderr, "\nRun '%s %s%s%s --help' for usage.\n", PROGRAM,
                c->group != NULL ? c->group : "", c->group != NULL ? " " : "", c->name);
        return CLI_EXIT_USAGE;
    }
    if (help) {
        cli_print_help(c);
        return CLI_EXIT_OK;
    }
    int r = c->run(c, &args, &e);
    if (r != PV_OK) {
        fflush(stdout);
        fputs(PROGRAM ": error: ", stderr);
        cli_put_escaped(stderr, pv_err_msg(&e));
        fputc('\n', stderr);
    }
    return cli_exit_code(r);
}

int main(int argc, char **argv)
{
    cli_program = PROGRAM;
    pv_log_init(PV_LOG_WARN, false, NULL, PROGRAM);
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("%s %s\n", PROGRAM, PAVISE_VERSION);
        return CLI_EXIT_OK;
    }
    /* Options alone: `pavise-server --data DIR` serves. */
    if (strncmp(argv[1], "--", 2) == 0) {
        for (const cli_cmd *c = cmds; c->name != NULL; c++) {
            if (c->group == NULL && strcmp(c->name, "serve") == 0) {
                return run(c, argc - 1, argv + 1);
            }
        }
    }
    for (const cli_cmd *c = cmds; c->name != NULL; c++) {
        if (c->group == NULL && strcmp(argv[1], c->name) == 0) {
            return run(c, argc - 2, argv + 2);
        }
        if (c->group != NULL && strcmp(argv[1], c->group) == 0 && argc > 2 &&
            strcmp(argv[2], c->name) == 0) {
            return run(c, argc - 3, argv + 3);
        }
    }
    fprintf(stderr, "%s: unknown command '", PROGRAM);
    cli_put_escaped(stderr, argv[1]);
    fprintf(stderr, "'\n\n");
    usage(stderr);
    return CLI_EXIT_USAGE;
}
