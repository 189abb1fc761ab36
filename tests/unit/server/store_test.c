/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store (src/server/store*.c) on both backends: every case runs once on SQLite (a
 * file in its own directory) and once on PostgreSQL (a cluster this process starts with
 * scripts/pg-start, and a new database per case).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "schema.h"
#include "store.h"
#include "testutil.h"

typedef struct tcase {
    const char *backend; /* "sqlite" or "postgres" */
    char *dir;           /* sqlite: the case's directory */
    char dbname[64];     /* postgres: the case's database */
    char url[1200];
    store *db; /* opened, not migrated */
} tcase;

static const char sqlite_name[] = "sqlite";
static const char postgres_name[] = "postgres";

/* The cluster, started by the postgres group's setup. */
static char *pg_dir;
static char pg_conninfo[1024];
static unsigned db_serial;

static char *script(const char *name)
{
    const char *src = getenv("PV_SOURCE_DIR");
    char *p = NULL;
    if (src == NULL || src[0] == '\0')
        src = ".";
    assert_true(asprintf(&p, "%s/scripts/%s", src, name) > 0);
    return p;
}

static int pg_group_setup(void **state)
{
    char *start = script("pg-start");
    char *cmd = NULL;
    FILE *f = NULL;
    int rc = -1;

    (void)state;
    pg_dir = tu_mkdtemp("store-pg");
    assert_true(asprintf(&cmd, "'%s' '%s'", start, pg_dir) > 0);
    f = popen(cmd, "r");
    if (f != NULL && fgets(pg_conninfo, sizeof(pg_conninfo), f) != NULL) {
        pg_conninfo[strcspn(pg_conninfo, "\n")] = '\0';
        rc = 0;
    }
    if (f != NULL && pclose(f) != 0)
        rc = -1;
    if (rc != 0)
        fprintf(stderr, "store_test: %s failed; PostgreSQL cases cannot run\n", cmd);
    free(cmd);
    free(start);
    return rc;
}

static int pg_group_teardown(void **state)
{
    char *stop = script("pg-stop");
    char *cmd = NULL;

    (void)state;
    assert_true(asprintf(&cmd, "'%s' '%s'", stop, pg_dir) > 0);
    if (system(cmd) != 0)
        fprintf(stderr, "store_test: %s failed\n", cmd);
    tu_rmtree(pg_dir);
    free(pg_dir);
    pg_dir = NULL;
    free(cmd);
    free(stop);
    return 0;
}

/* Runs one statement on the cluster's maintenance database. The statement text is
 * built at run time, which the store's cache must tell apart at the same address. */
static void pg_admin(const char *sql)
{
    char url[1100];
    store *admin = NULL;
    pv_err e = {0};

    snprintf(url, sizeof(url), "postgres:%s", pg_conninfo);
    assert_int_equal(store_open(url, &admin, &e), PV_OK);
    if (store_exec(admin, sql, NULL, 0, NULL, NULL, &e) != PV_OK)
        fail_msg("%s: %s", sql, e.msg);
    store_close(admin);
}

static int case_setup(void **state)
{
    tcase *t = calloc(1, sizeof(*t));
    pv_err e = {0};

    assert_non_null(t);
    t->backend = *state;
    if (t->backend == sqlite_name) {
        t->dir = tu_mkdtemp("store");
        snprintf(t->url, sizeof(t->url), "sqlite:%s/pavise.db", t->dir);
    } else {
        char sql[128];
        snprintf(t->dbname, sizeof(t->dbname), "store_test_%d_%u", (int)getpid(), ++db_serial);
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", t->dbname);
        pg_admin(sql);
        /* The conninfo's own dbname comes first; a later one wins. */
        snprintf(t->url, sizeof(t->url), "postgres:%s dbname=%s", pg_conninfo, t->dbname);
    }
    if (store_open(t->url, &t->db, &e) != PV_OK)
        fail_msg("store_open: %s", e.msg);
    assert_string_equal(store_backend_name(t->db), t->backend);
    *state = t;
    return 0;
}

static int case_teardown(void **state)
{
    tcase *t = *state;

    store_close(t->db);
    if (t->dir != NULL) {
        tu_rmtree(t->dir);
        free(t->dir);
    } else {
        char sql[128];
        snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", t->dbname);
        pg_admin(sql);
    }
    free(t);
    return 0;
}

/* Runs sql and fails the test with the store's message if it does not succeed. */
static void exec_ok(store *db, const char *sql, const store_val *params, size_t n,
                    store_rows **rows, int64_t *changes)
{
    pv_err e = {0};
    int r = store_exec(db, sql, params, n, rows, changes, &e);
    if (r != PV_OK)
        fail_msg("%s: %d %s", sql, r, e.msg);
}

static int64_t count_rows(store *db, const char *sql)
{
    store_rows *rows = NULL;
    exec_ok(db, sql, NULL, 0, &rows, NULL);
    assert_int_equal(store_rows_count(rows), 1);
    int64_t n = store_rows_int(rows, 0, 0);
    store_rows_free(rows);
    return n;
}

static void migrate_ok(store *db)
{
    pv_err e = {0};
    int v = -1;
    if (store_migrate(db, &v, &e) != PV_OK)
        fail_msg("store_migrate: %s", e.msg);
    assert_int_equal(v, (int)schema_migration_count);
}

/* A table with a column of each type, spelled for the backend. */
static void make_table(tcase *t)
{
    if (t->backend == sqlite_name)
        exec_ok(t->db, "CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT, i BIGINT, b BLOB, s2 TEXT)",
                NULL, 0, NULL, NULL);
    else
        exec_ok(t->db,
                "CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT, i BIGINT, b BYTEA, s2 TEXT)", NULL,
                0, NULL, NULL);
}

static void test_open_bad_url(void **state)
{
    tcase *t = *state;
    store *s = (store *)1;
    pv_err e = {0};

    assert_int_equal(store_open("mysql:host=x", &s, &e), PV_ERR_USAGE);
    assert_null(s);
    assert_non_null(strstr(e.msg, "scheme"));
    assert_int_equal(store_open("sqlite:", &s, &e), PV_ERR_USAGE);
    assert_int_equal(store_open("postgres:", &s, &e), PV_ERR_USAGE);
    assert_int_equal(store_open("", &s, &e), PV_ERR_USAGE);
    assert_int_equal(store_open(NULL, &s, &e), PV_ERR_INVALID_ARG);

    if (t->backend == sqlite_name) {
        assert_int_equal(store_open("sqlite:/nonexistent-dir/x/pavise.db", &s, &e), PV_ERR_IO);
        assert_non_null(strstr(e.msg, "sqlite"));
        assert_non_null(strstr(e.msg, "No such file"));
    } else {
        /* Neither a bad connection nor a malformed string may echo the password. */
        assert_int_equal(store_open("postgres:host=/nonexistent-dir password=s3cret-pw", &s, &e),
                         PV_ERR_IO);
        assert_non_null(strstr(e.msg, "postgres: cannot connect"));
        assert_null(strstr(e.msg, "s3cret"));
        assert_int_equal(store_open("postgres:host=/x s3cret-pw", &s, &e), PV_ERR_IO);
        assert_non_null(strstr(e.msg, "malformed"));
        assert_null(strstr(e.msg, "s3cret"));
        assert_int_equal(store_open("postgres:host=/x bogus_option=1", &s, &e), PV_ERR_IO);
    }
    assert_null(s);
}

static void test_migrate(void **state)
{
    tcase *t = *state;

    migrate_ok(t->db);
    migrate_ok(t->db); /* idempotent */
    assert_int_equal(count_rows(t->db, "SELECT COUNT(*) FROM schema_migrations"),
                     (int64_t)schema_migration_count);
    assert_int_equal(count_rows(t->db, "SELECT MIN(applied_at) FROM schema_migrations") > 0, 1);
    /* The schema is there, {BLOB} and {SERIAL} included. */
    exec_ok(t->db,
            "INSERT INTO audit (tenant_id, at, operator, action, target, detail) "
            "VALUES (NULL, 1, 'op', 'a', 'x', '')",
            NULL, 0, NULL, NULL);
    exec_ok(t->db,
            "INSERT INTO audit (tenant_id, at, operator, action, target, detail) "
            "VALUES (NULL, 2, 'op', 'b', 'x', '')",
            NULL, 0, NULL, NULL);
    assert_int_equal(count_rows(t->db, "SELECT MAX(seq) - MIN(seq) FROM audit"), 1);
    exec_ok(t->db,
            "INSERT INTO manufacturing_records (device_id, record, rot_kind, "
            "factory_fingerprint, created_at) VALUES ('d', $1, 'soft', 'f', 1)",
            (store_val[]){SV_BLOB((const uint8_t *)"\0\1", 2)}, 1, NULL, NULL);

    /* A second connection sees the current version and changes nothing. */
    store *other = NULL;
    pv_err e = {0};
    assert_int_equal(store_open(t->url, &other, &e), PV_OK);
    migrate_ok(other);
    store_close(other);
    assert_int_equal(count_rows(t->db, "SELECT COUNT(*) FROM schema_migrations"),
                     (int64_t)schema_migration_count);
}

static void test_migrate_newer_refused(void **state)
{
    tcase *t = *state;
    pv_err e = {0};
    int v = -1;

    migrate_ok(t->db);
    exec_ok(t->db, "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 1)",
            (store_val[]){SV_INT(schema_migration_count + 1)}, 1, NULL, NULL);
    assert_int_equal(store_migrate(t->db, &v, &e), PV_ERR_UNSUPPORTED);
    assert_int_equal(v, 0);
    assert_non_null(strstr(e.msg, "newer"));
    assert_non_null(strstr(e.msg, t->backend));
    /* The refusal left no transaction open. */
    exec_ok(t->db, "SELECT 1", NULL, 0, NULL, NULL);
    assert_int_equal(store_begin(t->db, true, &e), PV_OK);
    store_rollback(t->db);
}

static void test_types(void **state)
{
    tcase *t = *state;
    static const uint8_t blob[] = {0x00, 0x01, 0x00, 0xff, 0x5c, 0x78};
    static const char utf8[] = "gr\xc3\xbc\xc3\x9f"
                               "e \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac";
    store_rows *rows = NULL;
    size_t len = 99;
    int64_t changes = -1;

    make_table(t);
    exec_ok(t->db, "INSERT INTO t (id, s, i, b, s2) VALUES ($1, $2, $3, $4, $5)",
            (store_val[]){SV_INT(1), SV_TEXT(utf8), SV_INT(INT64_MAX), SV_BLOB(blob, sizeof(blob)),
                          SV_TEXT("")},
            5, NULL, &changes);
    assert_int_equal(changes, 1);
    exec_ok(t->db, "INSERT INTO t (id, s, i, b, s2) VALUES ($1, $2, $3, $4, $5)",
            (store_val[]){SV_INT(2), SV_NULL, SV_INT(INT64_MIN), SV_BLOB(NULL, 0),
                          SV_TEXT_OR_NULL(NULL)},
            5, NULL, NULL);
    exec_ok(t->db, "INSERT INTO t (id, s, i, b, s2) VALUES ($1, $2, $3, $4, $5)",
            (store_val[]){SV_INT(3), SV_TEXT("'; DROP TABLE t; --"), SV_INT(-1), SV_NULL,
                          SV_TEXT("$1")},
            5, NULL, NULL);

    exec_ok(t->db, "SELECT id, s, i, b, s2 FROM t ORDER BY id", NULL, 0, &rows, NULL);
    assert_int_equal(store_rows_count(rows), 3);

    assert_int_equal(store_rows_int(rows, 0, 0), 1);
    assert_string_equal(store_rows_text(rows, 0, 0), "1");
    assert_string_equal(store_rows_text(rows, 0, 1), utf8);
    assert_int_equal(store_rows_int(rows, 0, 2), INT64_MAX);
    assert_string_equal(store_rows_text(rows, 0, 2), "9223372036854775807");
    const uint8_t *b = store_rows_blob(rows, 0, 3, &len);
    assert_int_equal(len, sizeof(blob));
    assert_memory_equal(b, blob, sizeof(blob));
    assert_false(store_rows_is_null(rows, 0, 4));
    assert_string_equal(store_rows_text(rows, 0, 4), "");

    assert_true(store_rows_is_null(rows, 1, 1));
    assert_null(store_rows_text(rows, 1, 1));
    assert_int_equal(store_rows_int(rows, 1, 2), INT64_MIN);
    assert_string_equal(store_rows_text(rows, 1, 2), "-9223372036854775808");
    /* An empty blob is not NULL. */
    assert_false(store_rows_is_null(rows, 1, 3));
    b = store_rows_blob(rows, 1, 3, &len);
    assert_non_null(b);
    assert_int_equal(len, 0);
    assert_true(store_rows_is_null(rows, 1, 4));

    assert_string_equal(store_rows_text(rows, 2, 1), "'; DROP TABLE t; --");
    assert_int_equal(store_rows_int(rows, 2, 2), -1);
    assert_true(store_rows_is_null(rows, 2, 3));
    assert_null(store_rows_blob(rows, 2, 3, &len));
    assert_int_equal(len, 0);
    assert_string_equal(store_rows_text(rows, 2, 4), "$1");

    /* Out of range: NULL and 0, never a crash. */
    assert_null(store_rows_text(rows, 3, 0));
    assert_null(store_rows_text(rows, 0, 5));
    assert_int_equal(store_rows_int(rows, 9, 9), 0);
    assert_true(store_rows_is_null(rows, 0, 99));
    assert_null(store_rows_blob(rows, 99, 0, &len));
    assert_int_equal(len, 0);
    store_rows_free(rows);
    rows = NULL;
    assert_int_equal(store_rows_count(NULL), 0);
    store_rows_free(NULL);

    /* Booleans and counts come back as integers on both. */
    exec_ok(t->db, "SELECT COUNT(*), 1 = 1, 1 = 0, SUM(id) FROM t", NULL, 0, &rows, NULL);
    assert_int_equal(store_rows_int(rows, 0, 0), 3);
    assert_int_equal(store_rows_int(rows, 0, 1), 1);
    assert_int_equal(store_rows_int(rows, 0, 2), 0);
    assert_int_equal(store_rows_int(rows, 0, 3), 6);
    store_rows_free(rows);

    /* An empty result has no rows. */
    exec_ok(t->db, "SELECT id FROM t WHERE id < 0", NULL, 0, &rows, NULL);
    assert_non_null(rows);
    assert_int_equal(store_rows_count(rows), 0);
    store_rows_free(rows);
}

static void test_placeholders(void **state)
{
    tcase *t = *state;
    store_rows *rows = NULL;

    make_table(t);
    /* Out of order: $3 is the id. */
    exec_ok(t->db, "INSERT INTO t (s, s2, id, i) VALUES ($2, $1, $3, $4)",
            (store_val[]){SV_TEXT("first"), SV_TEXT("second"), SV_INT(7), SV_INT(70)}, 4, NULL,
            NULL);
    exec_ok(t->db, "SELECT s, s2, i FROM t WHERE i = $2 AND id = $1",
            (store_val[]){SV_INT(7), SV_INT(70)}, 2, &rows, NULL);
    assert_int_equal(store_rows_count(rows), 1);
    assert_string_equal(store_rows_text(rows, 0, 0), "second");
    assert_string_equal(store_rows_text(rows, 0, 1), "first");
    store_rows_free(rows);

    /* Repeated, and a "$1" inside a string literal is text, not a placeholder. */
    exec_ok(t->db, "SELECT COUNT(*), '$1' FROM t WHERE s = $1 OR s2 = $1 OR s = $2",
            (store_val[]){SV_TEXT("first"), SV_TEXT("none")}, 2, &rows, NULL);
    assert_int_equal(store_rows_int(rows, 0, 0), 1);
    assert_string_equal(store_rows_text(rows, 0, 1), "$1");
    store_rows_free(rows);

    /* No parameters at all. */
    exec_ok(t->db, "SELECT 1", NULL, 0, &rows, NULL);
    assert_int_equal(store_rows_int(rows, 0, 0), 1);
    store_rows_free(rows);

    /* Wrong counts are the caller's error. */
    pv_err e = {0};
    rows = (store_rows *)1;
    assert_int_equal(store_exec(t->db, "SELECT s FROM t WHERE id = $1 AND i = $2",
                                (store_val[]){SV_INT(1)}, 1, &rows, NULL, &e),
                     PV_ERR_INVALID_ARG);
    assert_null(rows);
    assert_non_null(strstr(e.msg, "parameters"));
    store_val many[STORE_MAX_PARAMS + 1];
    for (size_t i = 0; i < STORE_MAX_PARAMS + 1; i++)
        many[i] = SV_INT(i);
    assert_int_equal(store_exec(t->db, "SELECT 1", many, STORE_MAX_PARAMS + 1, NULL, NULL, &e),
                     PV_ERR_INVALID_ARG);
    assert_int_equal(
        store_exec(t->db, "SELECT $1", (store_val[]){SV_TEXT(NULL)}, 1, NULL, NULL, &e),
        PV_ERR_INVALID_ARG);
}

static void test_constraints(void **state)
{
    tcase *t = *state;
    pv_err e = {0};
    static const char secret[] = "c0dehash-5ecret";

    migrate_ok(t->db);
    exec_ok(t->db, "INSERT INTO operators (id, name, created_at) VALUES ($1, $2, $3)",
            (store_val[]){SV_TEXT("op1"), SV_TEXT("alice"), SV_INT(1)}, 3, NULL, NULL);
    /* Unique name, and the primary key. */
    assert_int_equal(
        store_exec(t->db, "INSERT INTO operators (id, name, created_at) VALUES ($1, $2, $3)",
                   (store_val[]){SV_TEXT(secret), SV_TEXT("alice"), SV_INT(1)}, 3, NULL, NULL, &e),
        PV_ERR_EXISTS);
    assert_non_null(strstr(e.msg, t->backend));
    assert_non_null(strstr(e.msg, "operators"));
    assert_null(strstr(e.msg, secret));
    assert_int_equal(
        store_exec(t->db, "INSERT INTO operators (id, name, created_at) VALUES ($1, $2, $3)",
                   (store_val[]){SV_TEXT("op1"), SV_TEXT(secret), SV_INT(1)}, 3, NULL, NULL, &e),
        PV_ERR_EXISTS);
    assert_null(strstr(e.msg, secret));

    /* Foreign key: no such operator. */
    assert_int_equal(store_exec(t->db,
                                "INSERT INTO operator_certs (fingerprint, operator_id, serial, "
                                "not_after, created_at) VALUES ($1, $2, 's', 1, 1)",
                                (store_val[]){SV_TEXT(secret), SV_TEXT("nobody")}, 2, NULL, NULL,
                                &e),
                     PV_ERR_INVALID_ARG);
    assert_non_null(strstr(e.msg, t->backend));
    assert_true(strstr(e.msg, "FOREIGN KEY") != NULL || strstr(e.msg, "foreign key") != NULL);
    assert_null(strstr(e.msg, secret));

    /* Check and not-null constraints. */
    exec_ok(t->db,
            "INSERT INTO tenants (id, name, created_at, created_by) VALUES ('t1', 'T', 1, 'op1')",
            NULL, 0, NULL, NULL);
    assert_int_equal(store_exec(t->db,
                                "INSERT INTO roles (tenant_id, operator_id, role, created_at) "
                                "VALUES ('t1', 'op1', $1, 1)",
                                (store_val[]){SV_TEXT(secret)}, 1, NULL, NULL, &e),
                     PV_ERR_INVALID_ARG);
    assert_null(strstr(e.msg, secret));
    assert_int_equal(
        store_exec(t->db, "INSERT INTO operators (id, name, created_at) VALUES ($1, $2, $3)",
                   (store_val[]){SV_TEXT("op2"), SV_NULL, SV_INT(1)}, 3, NULL, NULL, &e),
        PV_ERR_INVALID_ARG);
    assert_non_null(strstr(e.msg, "name"));
    assert_int_equal(count_rows(t->db, "SELECT COUNT(*) FROM operators"), 1);
}

static void test_changes(void **state)
{
    tcase *t = *state;
    int64_t n = -1;

    make_table(t);
    exec_ok(t->db, "INSERT INTO t (id, i) VALUES (1, 10), (2, 10), (3, 20)", NULL, 0, NULL, &n);
    assert_int_equal(n, 3);
    exec_ok(t->db, "UPDATE t SET s = 'x' WHERE i = $1", (store_val[]){SV_INT(10)}, 1, NULL, &n);
    assert_int_equal(n, 2);
    exec_ok(t->db, "UPDATE t SET s = 'x' WHERE i = $1", (store_val[]){SV_INT(99)}, 1, NULL, &n);
    assert_int_equal(n, 0);
    exec_ok(t->db, "SELECT * FROM t", NULL, 0, NULL, &n);
    assert_int_equal(n, 0);
    exec_ok(t->db, "DELETE FROM t WHERE id >= $1", (store_val[]){SV_INT(2)}, 1, NULL, &n);
    assert_int_equal(n, 2);
    exec_ok(t->db, "INSERT INTO t (id, i) VALUES (5, 1) RETURNING id", NULL, 0, NULL, &n);
    assert_int_equal(n, 1);
}

static void test_transactions(void **state)
{
    tcase *t = *state;
    pv_err e = {0};

    make_table(t);
    assert_int_equal(store_begin(t->db, true, &e), PV_OK);
    exec_ok(t->db, "INSERT INTO t (id) VALUES (1)", NULL, 0, NULL, NULL);
    assert_int_equal(store_commit(t->db, &e), PV_OK);
    assert_int_equal(count_rows(t->db, "SELECT COUNT(*) FROM t"), 1);

    assert_int_equal(store_begin(t->db, false, &e), PV_OK);
    exec_ok(t->db, "INSERT INTO t (id) VALUES (2)", NULL, 0, NULL, NULL);
    exec_ok(t->db, "UPDATE t SET s = 'changed'", NULL, 0, NULL, NULL);
    assert_int_equal(count_rows(t->db, "SELECT COUNT(*) FROM t"), 2);
    store_rollback(t->db);
    assert_int_equal(count_rows(t->db, "SELECT COUNT(*) FROM t"), 1);
    assert_int_equal(count_rows(t->db, "SELECT COUNT(*) FROM t WHERE s IS NULL"), 1);

    /* Rollback with nothing open; commit with nothing open; nesting. */
    store_rollback(t->db);
    store_rollback(NULL);
    assert_int_equal(store_commit(t->db, &e), PV_ERR_INVALID_ARG);
    assert_int_equal(store_begin(t->db, true, &e), PV_OK);
    assert_int_equal(store_begin(t->db, true, &e), PV_ERR_INVALID_ARG);
    assert_non_null(strstr(e.msg, "already"));
    store_rollback(t->db);

    /* A failed statement inside: the caller rolls back, nothing of it stays. */
    assert_int_equal(store_begin(t->db, true, &e), PV_OK);
    exec_ok(t->db, "INSERT INTO t (id) VALUES (3)", NULL, 0, NULL, NULL);
    assert_int_equal(store_exec(t->db, "INSERT INTO t (id) VALUES (1)", NULL, 0, NULL, NULL, &e),
                     PV_ERR_EXISTS);
    store_rollback(t->db);
    assert_int_equal(count_rows(t->db, "SELECT COUNT(*) FROM t"), 1);

    /* Committing after a failure never keeps half the work: PostgreSQL aborts the whole
     * transaction (and COMMIT says so); SQLite keeps the statements that succeeded. */
    assert_int_equal(store_begin(t->db, true, &e), PV_OK);
    exec_ok(t->db, "INSERT INTO t (id) VALUES (4)", NULL, 0, NULL, NULL);
    assert_int_equal(store_exec(t->db, "INSERT INTO t (id) VALUES (1)", NULL, 0, NULL, NULL, &e),
                     PV_ERR_EXISTS);
    int r = store_commit(t->db, &e);
    if (t->backend == postgres_name) {
        assert_int_equal(r, PV_ERR_IO);
        assert_non_null(strstr(e.msg, "rolled back"));
        assert_int_equal(count_rows(t->db, "SELECT COUNT(*) FROM t"), 1);
    } else {
        assert_int_equal(r, PV_OK);
        assert_int_equal(count_rows(t->db, "SELECT COUNT(*) FROM t"), 2);
    }
    /* Either way the connection is usable and not in a transaction. */
    assert_int_equal(store_begin(t->db, true, &e), PV_OK);
    assert_int_equal(store_commit(t->db, &e), PV_OK);
}

static void test_two_connections(void **state)
{
    tcase *t = *state;
    store *other = NULL;
    pv_err e = {0};

    make_table(t);
    assert_int_equal(store_open(t->url, &other, &e), PV_OK);
    assert_int_equal(store_begin(t->db, true, &e), PV_OK);
    exec_ok(t->db, "INSERT INTO t (id, s) VALUES (1, 'one')", NULL, 0, NULL, NULL);
    assert_int_equal(count_rows(other, "SELECT COUNT(*) FROM t"), 0);
    assert_int_equal(store_commit(t->db, &e), PV_OK);
    assert_int_equal(count_rows(other, "SELECT COUNT(*) FROM t"), 1);

    /* And back, with a read transaction on the first. */
    exec_ok(other, "INSERT INTO t (id, s) VALUES (2, 'two')", NULL, 0, NULL, NULL);
    assert_int_equal(store_begin(t->db, false, &e), PV_OK);
    assert_int_equal(count_rows(t->db, "SELECT COUNT(*) FROM t"), 2);
    store_rollback(t->db);

    /* The table changes under a cached statement (another replica migrating). */
    store_rows *rows = NULL;
    exec_ok(t->db, "SELECT * FROM t ORDER BY id", NULL, 0, &rows, NULL);
    store_rows_free(rows);
    exec_ok(other, "ALTER TABLE t ADD COLUMN extra TEXT", NULL, 0, NULL, NULL);
    exec_ok(t->db, "SELECT * FROM t ORDER BY id", NULL, 0, &rows, NULL);
    assert_int_equal(store_rows_count(rows), 2);
    assert_true(store_rows_is_null(rows, 0, 5));
    store_rows_free(rows);
    store_close(other);
}

typedef struct migrate_job {
    const char *url;
    int r;
    int version;
    pv_err e;
} migrate_job;

static void *migrate_thread(void *arg)
{
    migrate_job *j = arg;
    store *s = NULL;

    j->r = store_open(j->url, &s, &j->e);
    if (j->r == PV_OK)
        j->r = store_migrate(s, &j->version, &j->e);
    store_close(s);
    return NULL;
}

static void test_concurrent_migrate(void **state)
{
    tcase *t = *state;
    migrate_job jobs[4];
    pthread_t th[4];

    for (size_t i = 0; i < 4; i++) {
        memset(&jobs[i], 0, sizeof(jobs[i]));
        jobs[i].url = t->url;
        assert_int_equal(pthread_create(&th[i], NULL, migrate_thread, &jobs[i]), 0);
    }
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        if (jobs[i].r != PV_OK)
            fail_msg("thread %zu: %s", i, jobs[i].e.msg);
        assert_int_equal(jobs[i].version, (int)schema_migration_count);
    }
    assert_int_equal(count_rows(t->db, "SELECT COUNT(*) FROM schema_migrations"),
                     (int64_t)schema_migration_count);
    assert_int_equal(count_rows(t->db, "SELECT MAX(version) FROM schema_migrations"),
                     (int64_t)schema_migration_count);
}

static void test_statement_cache(void **state)
{
    tcase *t = *state;
    enum { N = 300 }; /* more than the cache holds */
    static char sqls[N][48];
    store_rows *rows = NULL;

    for (int i = 0; i < N; i++)
        snprintf(sqls[i], sizeof(sqls[i]), "SELECT %d + $1", i);
    for (int pass = 0; pass < 3; pass++) {
        for (int i = 0; i < N; i++) {
            exec_ok(t->db, sqls[i], (store_val[]){SV_INT(pass)}, 1, &rows, NULL);
            assert_int_equal(store_rows_int(rows, 0, 0), i + pass);
            store_rows_free(rows);
        }
    }
    /* One buffer, new text each time: the address alone must not pick a statement. */
    char buf[48];
    for (int i = 0; i < 5; i++) {
        snprintf(buf, sizeof(buf), "SELECT %d", 1000 + i);
        exec_ok(t->db, buf, NULL, 0, &rows, NULL);
        assert_int_equal(store_rows_int(rows, 0, 0), 1000 + i);
        store_rows_free(rows);
    }
    /* Transactions still work after evictions. */
    pv_err e = {0};
    assert_int_equal(store_begin(t->db, true, &e), PV_OK);
    assert_int_equal(store_commit(t->db, &e), PV_OK);
}

static void test_sql_error(void **state)
{
    tcase *t = *state;
    pv_err e = {0};
    store_rows *rows = (store_rows *)1;
    int64_t n = -1;

    assert_int_equal(store_exec(t->db, "SELECT * FROM no_such_table", NULL, 0, &rows, &n, &e),
                     PV_ERR_IO);
    assert_null(rows);
    assert_int_equal(n, 0);
    assert_non_null(strstr(e.msg, t->backend));
    assert_non_null(strstr(e.msg, "no_such_table"));
    assert_int_equal(store_exec(t->db, "SELEKT 1", NULL, 0, NULL, NULL, &e), PV_ERR_IO);
    assert_non_null(strstr(e.msg, "syntax"));
    assert_int_equal(store_exec(NULL, "SELECT 1", NULL, 0, NULL, NULL, &e), PV_ERR_INVALID_ARG);
    /* A value that does not fit its column is not quoted back. */
    make_table(t);
    if (t->backend == postgres_name) {
        assert_int_equal(store_exec(t->db, "INSERT INTO t (id, i) VALUES (1, $1)",
                                    (store_val[]){SV_TEXT("s3cret-value")}, 1, NULL, NULL, &e),
                         PV_ERR_IO);
        assert_null(strstr(e.msg, "s3cret"));
    }
    /* Still usable afterwards. */
    assert_int_equal(count_rows(t->db, "SELECT COUNT(*) FROM t"), 0);
}

static void test_result_too_large(void **state)
{
    tcase *t = *state;
    pv_err e = {0};
    store_rows *rows = (store_rows *)1;
    const char *sql = t->backend == sqlite_name
                          ? "SELECT zeroblob(24000000) FROM (SELECT 1 UNION ALL SELECT 2 "
                            "UNION ALL SELECT 3)"
                          : "SELECT repeat('x', 24000000) FROM generate_series(1, 3)";

    assert_int_equal(store_exec(t->db, sql, NULL, 0, &rows, NULL, &e), PV_ERR_TOO_LARGE);
    assert_null(rows);
    assert_non_null(strstr(e.msg, "MiB"));
    /* Without rows asked for, the same statement runs. */
    exec_ok(t->db, sql, NULL, 0, NULL, NULL);
}

/* PostgreSQL: a connection the server dropped is re-established outside a transaction
 * and reported inside one. */
static void test_reconnect(void **state)
{
    tcase *t = *state;
    store *other = NULL;
    pv_err e = {0};
    static const char kill_others[] =
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()";

    if (t->backend != postgres_name)
        skip();
    make_table(t);
    exec_ok(t->db, "INSERT INTO t (id) VALUES (1)", NULL, 0, NULL, NULL);
    assert_int_equal(store_open(t->url, &other, &e), PV_OK);
    assert_int_equal(count_rows(other, kill_others), 1);
    assert_int_equal(count_rows(t->db, "SELECT COUNT(*) FROM t"), 1);

    assert_int_equal(store_begin(t->db, true, &e), PV_OK);
    exec_ok(t->db, "INSERT INTO t (id) VALUES (2)", NULL, 0, NULL, NULL);
    assert_int_equal(count_rows(other, kill_others), 1);
    assert_int_equal(store_exec(t->db, "SELECT COUNT(*) FROM t", NULL, 0, NULL, NULL, &e),
                     PV_ERR_IO);
    store_rollback(t->db);
    assert_int_equal(count_rows(t->db, "SELECT COUNT(*) FROM t"), 1);
    store_close(other);
}

#define CASES(backend)                                                                             \
    {                                                                                              \
        cmocka_unit_test_prestate_setup_teardown(test_open_bad_url, case_setup, case_teardown,     \
                                                 (void *)backend),                                 \
            cmocka_unit_test_prestate_setup_teardown(test_migrate, case_setup, case_teardown,      \
                                                     (void *)backend),                             \
            cmocka_unit_test_prestate_setup_teardown(test_migrate_newer_refused, case_setup,       \
                                                     case_teardown, (void *)backend),              \
            cmocka_unit_test_prestate_setup_teardown(test_types, case_setup, case_teardown,        \
                                                     (void *)backend),                             \
            cmocka_unit_test_prestate_setup_teardown(test_placeholders, case_setup, case_teardown, \
                                                     (void *)backend),                             \
            cmocka_unit_test_prestate_setup_teardown(test_constraints, case_setup, case_teardown,  \
                                                     (void *)backend),                             \
            cmocka_unit_test_prestate_setup_teardown(test_changes, case_setup, case_teardown,      \
                                                     (void *)backend),                             \
            cmocka_unit_test_prestate_setup_teardown(test_transactions, case_setup, case_teardown, \
                                                     (void *)backend),                             \
            cmocka_unit_test_prestate_setup_teardown(test_two_connections, case_setup,             \
                                                     case_teardown, (void *)backend),              \
            cmocka_unit_test_prestate_setup_teardown(test_concurrent_migrate, case_setup,          \
                                                     case_teardown, (void *)backend),              \
            cmocka_unit_test_prestate_setup_teardown(test_statement_cache, case_setup,             \
                                                     case_teardown, (void *)backend),              \
            cmocka_unit_test_prestate_setup_teardown(test_sql_error, case_setup, case_teardown,    \
                                                     (void *)backend),                             \
            cmocka_unit_test_prestate_setup_teardown(test_result_too_large, case_setup,            \
                                                     case_teardown, (void *)backend),              \
            cmocka_unit_test_prestate_setup_teardown(test_reconnect, case_setup, case_teardown,    \
                                                     (void *)backend),                             \
    }

int main(void)
{
    const struct CMUnitTest sqlite_tests[] = CASES(sqlite_name);
    const struct CMUnitTest postgres_tests[] = CASES(postgres_name);
    int failed = 0;

    failed += cmocka_run_group_tests_name("store on sqlite", sqlite_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("store on postgres", postgres_tests, pg_group_setup,
                                          pg_group_teardown);
    return failed != 0;
}
