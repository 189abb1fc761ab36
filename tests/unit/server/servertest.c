/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server test harness (servertest.h). PostgreSQL: one throwaway cluster per test
 * process (scripts/pg-start in PV_TEST_TMP, stopped at exit), one new database per
 * environment, dropped at teardown.
 */
#include "servertest.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "pavise/buf.h"
#include "pavise/crypto.h"
#include "pavise/uuid.h"
#include "pavise/fs.h"
#include "pavise/platform.h"

#include "ca.h"
#include "metrics.h"
#include "testutil.h"

const char *const st_backends[2] = {"sqlite", "postgres"};

static char pg_dir[PATH_MAX];
static char pg_conninfo[512];
static bool pg_started;
static unsigned pg_db_counter;

static const char *source_dir(void)
{
    const char *s = getenv("PV_SOURCE_DIR");
    return s != NULL && s[0] != '\0' ? s : ".";
}

static void pg_stop(void)
{
    char cmd[2 * PATH_MAX + 64];
    if (!pg_started) {
        return;
    }
    snprintf(cmd, sizeof(cmd), "'%s/scripts/pg-stop' '%s' >/dev/null 2>&1", source_dir(), pg_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "servertest: pg-stop %s failed\n", pg_dir);
    } else if (pv_fs_remove_tree(pg_dir, NULL) != PV_OK) {
        fprintf(stderr, "servertest: cannot remove %s\n", pg_dir);
    }
    pg_started = false;
}

/* Starts this process's cluster once; its first output line is the conninfo. */
static void pg_ensure(void)
{
    char cmd[2 * PATH_MAX + 64];
    if (pg_started) {
        return;
    }
    const char *base = getenv("PV_TEST_TMP");
    snprintf(pg_dir, sizeof(pg_dir), "%s/pg-%ld", base != NULL && base[0] != '\0' ? base : "/tmp",
             (long)getpid());
    snprintf(cmd, sizeof(cmd), "'%s/scripts/pg-start' '%s'", source_dir(), pg_dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char *line = fgets(pg_conninfo, sizeof(pg_conninfo), p);
    int status = pclose(p);
    if (line == NULL || status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fail_msg("servertest: scripts/pg-start %s failed", pg_dir);
    }
    pg_conninfo[strcspn(pg_conninfo, "\r\n")] = '\0';
    assert_true(pg_conninfo[0] != '\0');
    pg_started = true;
    atexit(pg_stop);
}

static void pg_admin(const char *sql)
{
    PGconn *conn = PQconnectdb(pg_conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        fail_msg("servertest: connect %s: %s", pg_conninfo, PQerrorMessage(conn));
    }
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fail_msg("servertest: %s: %s", sql, PQerrorMessage(conn));
    }
    PQclear(res);
    PQfinish(conn);
}

/* The database name of an environment, from its URL ("... dbname=NAME"). */
static const char *pg_dbname(const st_env *env)
{
    const char *p = strrchr(env->db_url, '=');
    return p != NULL ? p + 1 : "";
}

void st_setup(st_env *env, const char *backend)
{
    pv_err e;
    memset(env, 0, sizeof(*env));
    pv_err_clear(&e);

    char *dir = tu_mkdtemp("st");
    snprintf(env->dir, sizeof(env->dir), "%s", dir);
    free(dir);

    server_config *cfg = &env->srv.cfg;
    assert_true(strlen(env->dir) + 64 < sizeof(env->db_url));
    assert_true(snprintf(cfg->data_dir, sizeof(cfg->data_dir), "%.*s/data", 1000, env->dir) > 0);
    snprintf(cfg->listen, sizeof(cfg->listen), "127.0.0.1:0");
    snprintf(cfg->log_level, sizeof(cfg->log_level), "warn");
    cfg->workers = 1;
    cfg->max_body = SERVER_MAX_BODY;
    cfg->operator_cert_days = 90;
    cfg->invite_ttl = 86400;
    if (ca_init(cfg->data_dir, NULL, &e) != PV_OK ||
        ca_load(cfg->data_dir, &env->srv.ca, &e) != PV_OK) {
        fail_msg("servertest: CA in %s: %s", cfg->data_dir, pv_err_msg(&e));
    }
    env->srv.metrics = metrics_new();
    assert_non_null(env->srv.metrics);

    if (strcmp(backend, "sqlite") == 0) {
        snprintf(env->db_url, sizeof(env->db_url), "sqlite:%.*s/pavise.db", 1000, env->dir);
    } else if (strcmp(backend, "postgres") == 0) {
        char sql[128];
        pg_ensure();
        snprintf(env->db_url, sizeof(env->db_url), "postgres:%s dbname=st_%ld_%u", pg_conninfo,
                 (long)getpid(), pg_db_counter++);
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", pg_dbname(env));
        pg_admin(sql);
    } else {
        fail_msg("servertest: unknown backend %s", backend);
    }
    if (store_open(env->db_url, &env->db, &e) != PV_OK ||
        store_migrate(env->db, NULL, &e) != PV_OK) {
        fail_msg("servertest: store %s: %s", env->db_url, pv_err_msg(&e));
    }
}

void st_teardown(st_env *env)
{
    store_close(env->db);
    env->db = NULL;
    if (strncmp(env->db_url, "postgres:", 9) == 0) {
        char sql[128];
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", pg_dbname(env));
        pg_admin(sql);
    }
    ca_free(env->srv.ca);
    env->srv.ca = NULL;
    metrics_free(env->srv.metrics);
    env->srv.metrics = NULL;
    if (env->dir[0] != '\0') {
        tu_rmtree(env->dir);
    }
    pv_time_set_override(0);
}

void st_operator(st_env *env, const char *name, uint8_t fp[PV_SHA256_LEN])
{
    pv_err e;
    char id[37];
    char hex[2 * PV_SHA256_LEN + 1];
    int64_t now = pv_time_now();

    pv_err_clear(&e);
    uint8_t u[PV_UUID_LEN];
    assert_int_equal(pv_uuid_generate(u), PV_OK);
    pv_uuid_format(u, id);
    assert_int_equal(pv_random_bytes(fp, PV_SHA256_LEN), PV_OK);
    pv_hex_encode(fp, PV_SHA256_LEN, hex, sizeof(hex));
    store_val po[] = {SV_TEXT(id), SV_TEXT(name), SV_INT(now)};
    store_val pc[] = {SV_TEXT(hex), SV_TEXT(id), SV_INT(now + 3650 * 86400LL), SV_INT(now)};
    if (store_exec(env->db, "INSERT INTO operators (id, name, created_at) VALUES ($1, $2, $3)", po,
                   3, NULL, NULL, &e) != PV_OK ||
        store_exec(env->db,
                   "INSERT INTO operator_certs (fingerprint, operator_id, serial, not_after, "
                   "created_at) VALUES ($1, $2, '01', $3, $4)",
                   pc, 4, NULL, NULL, &e) != PV_OK) {
        fail_msg("servertest: operator %s: %s", name, pv_err_msg(&e));
    }
}

int st_call(st_env *env, const uint8_t *fp, const char *method, const char *path_and_query,
            const char *body, json_t **out)
{
    api_request req;
    api_response resp;
    char path[4096];

    if (out != NULL) {
        *out = NULL;
    }
    memset(&req, 0, sizeof(req));
    snprintf(path, sizeof(path), "%s", path_and_query);
    char *q = strchr(path, '?');
    if (q != NULL) {
        *q++ = '\0';
    }
    req.method = method;
    req.path = path;
    req.query = q;
    req.body = (const uint8_t *)body;
    req.body_len = body != NULL ? strlen(body) : 0;
    req.content_type = body != NULL ? "application/json" : NULL;
    if (fp != NULL) {
        req.has_client_cert = true;
        memcpy(req.client_fp, fp, PV_SHA256_LEN);
    }
    api_handle(&env->srv, env->db, &req, &resp);
    assert_non_null(resp.route);
    assert_non_null(resp.content_type);
    if (out != NULL && resp.body != NULL && strcmp(resp.content_type, "application/json") == 0) {
        *out = json_loadb(resp.body, resp.body_len, JSON_REJECT_DUPLICATES, NULL);
        assert_non_null(*out);
    }
    free(resp.body);
    return resp.status;
}

/* ---- st_dump ---- */

/* The store caches prepared statements by the SQL text's address, so generated SQL is
 * kept, one copy per distinct text, for the life of the process. */
static const char *intern(const char *sql)
{
    static char *texts[128];
    static size_t n;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(texts[i], sql) == 0) {
            return texts[i];
        }
    }
    assert_true(n < sizeof(texts) / sizeof(texts[0]));
    texts[n] = strdup(sql);
    assert_non_null(texts[n]);
    return texts[n++];
}

static void append(pv_buf *b, const char *s)
{
    assert_int_equal(pv_buf_append(b, s, strlen(s)), PV_OK);
}

static void dump_table(st_env *env, const char *table, bool pg, pv_buf *out)
{
    pv_err e;
    store_rows *cols = NULL, *rows = NULL;
    pv_buf *sql = pv_buf_new(8192);
    bool blob[64];

    pv_err_clear(&e);
    assert_non_null(sql);
    store_val p[] = {SV_TEXT(table)};
    int r = pg ? store_exec(env->db,
                            "SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_schema = current_schema() AND table_name = $1 "
                            "ORDER BY ordinal_position",
                            p, 1, &cols, NULL, &e)
               : store_exec(env->db, "SELECT name, type FROM pragma_table_info($1) ORDER BY cid", p,
                            1, &cols, NULL, &e);
    if (r != PV_OK) {
        fail_msg("st_dump: columns of %s: %s", table, pv_err_msg(&e));
    }
    size_t ncol = store_rows_count(cols);
    assert_true(ncol > 0 && ncol <= sizeof(blob) / sizeof(blob[0]));
    append(sql, "SELECT ");
    for (size_t i = 0; i < ncol; i++) {
        const char *type = store_rows_text(cols, i, 1);
        blob[i] = type != NULL && (strcasecmp(type, "bytea") == 0 || strcasecmp(type, "blob") == 0);
        append(sql, i > 0 ? ", " : "");
        append(sql, store_rows_text(cols, i, 0));
    }
    append(sql, " FROM ");
    append(sql, table);
    /* Every table leads with its primary key, so ordering by all columns in order is
     * ordering by the key (and stays total for tables whose key is several columns). */
    append(sql, " ORDER BY ");
    for (size_t i = 0; i < ncol; i++) {
        char num[32];
        snprintf(num, sizeof(num), "%s%zu", i > 0 ? ", " : "", i + 1);
        append(sql, num);
    }
    assert_int_equal(pv_buf_append_u8(sql, 0), PV_OK);
    const char *text = intern((const char *)pv_buf_data(sql));
    if (store_exec(env->db, text, NULL, 0, &rows, NULL, &e) != PV_OK) {
        fail_msg("st_dump: %s: %s", text, pv_err_msg(&e));
    }
    append(out, "== ");
    append(out, table);
    append(out, "\n");
    for (size_t i = 0; i < store_rows_count(rows); i++) {
        for (size_t j = 0; j < ncol; j++) {
            append(out, j > 0 ? "|" : "");
            if (store_rows_is_null(rows, i, j)) {
                append(out, "NULL");
            } else if (blob[j]) {
                size_t len = 0;
                const uint8_t *d = store_rows_blob(rows, i, j, &len);
                for (size_t k = 0; k < len; k++) {
                    char h[3];
                    snprintf(h, sizeof(h), "%02x", d[k]);
                    append(out, h);
                }
            } else {
                append(out, store_rows_text(rows, i, j));
            }
        }
        append(out, "\n");
    }
    store_rows_free(rows);
    store_rows_free(cols);
    pv_buf_free(sql);
}

char *st_dump(st_env *env)
{
    pv_err e;
    store_rows *tables = NULL;
    bool pg = strcmp(store_backend_name(env->db), "postgres") == 0;
    pv_buf *out = pv_buf_new((size_t)64 << 20);

    pv_err_clear(&e);
    assert_non_null(out);
    int r = pg ? store_exec(env->db,
                            "SELECT table_name FROM information_schema.tables "
                            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' "
                            "ORDER BY table_name",
                            NULL, 0, &tables, NULL, &e)
               : store_exec(env->db,
                            "SELECT name FROM sqlite_master WHERE type = 'table' "
                            "AND name NOT LIKE 'sqlite_%' ORDER BY name",
                            NULL, 0, &tables, NULL, &e);
    if (r != PV_OK) {
        fail_msg("st_dump: tables: %s", pv_err_msg(&e));
    }
    assert_true(store_rows_count(tables) > 0);
    for (size_t i = 0; i < store_rows_count(tables); i++) {
        dump_table(env, store_rows_text(tables, i, 0), pg, out);
    }
    store_rows_free(tables);
    assert_int_equal(pv_buf_append_u8(out, 0), PV_OK);
    size_t len = 0;
    char *s = (char *)pv_buf_steal(out, &len);
    pv_buf_free(out);
    assert_non_null(s);
    return s;
}
