/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SQLite store backend: one sqlite3 handle per connection (opened NOMUTEX, since a
 * connection is used by one thread at a time), WAL, foreign keys on, and a small cache
 * of prepared statements keyed by the SQL text's address.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store_backend.h"

#define NAME            "sqlite"
#define BUSY_TIMEOUT_MS 5000

typedef struct cached_stmt {
    const char *key; /* the caller's SQL pointer */
    char *text;      /* a copy of the caller's SQL, to notice a reused address */
    sqlite3_stmt *stmt;
    uint64_t used; /* tick of the last use, for LRU eviction */
} cached_stmt;

/* Where a SQL pointer was last found in the cache: a direct-mapped hint, so the
 * statements a request runs are found without scanning the cache. */
#define HINT_SLOTS 256

struct store_conn {
    sqlite3 *db;
    cached_stmt cache[STORE_STMT_CACHE];
    uint16_t hint[HINT_SLOTS];
    uint64_t tick;
};

static size_t hint_of(const char *sql)
{
    uintptr_t p = (uintptr_t)sql;
    return (size_t)((p ^ (p >> 8) ^ (p >> 16)) % HINT_SLOTS);
}

/* Reports the handle's last error for the statement sql, mapping constraint failures:
 * a duplicate key is PV_ERR_EXISTS, any other constraint PV_ERR_INVALID_ARG. SQLite's
 * messages name the constraint or column, never the values. */
static int sqlite_fail(store_conn *c, const char *sql, pv_err *e)
{
    int ext = sqlite3_extended_errcode(c->db);
    int code = PV_ERR_IO;
    char head[80];

    switch (ext) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
        code = PV_ERR_EXISTS;
        break;
    default:
        if ((ext & 0xff) == SQLITE_CONSTRAINT)
            code = PV_ERR_INVALID_ARG;
        break;
    }
    store_sql_head(sql, head, sizeof(head));
    return pv_err_set(e, code, NAME ": %s: %s", head, sqlite3_errmsg(c->db));
}

/* Rewrites $N placeholders as ?N (same length), leaving quoted text and comments alone:
 * SQLite reads "$1" as a named parameter numbered by first appearance, which would bind
 * "$2 ... $1" the wrong way round. */
static char *translate(const char *sql)
{
    size_t len = strlen(sql);
    char *out = malloc(len + 1);
    char quote = 0; /* ' " ` ] while inside one */
    bool line_comment = false, block_comment = false;

    if (out == NULL)
        return NULL;
    memcpy(out, sql, len + 1);
    for (size_t i = 0; i < len; i++) {
        char ch = out[i];
        char nx = i + 1 < len ? out[i + 1] : '\0';
        if (line_comment) {
            line_comment = ch != '\n';
        } else if (block_comment) {
            if (ch == '*' && nx == '/') {
                block_comment = false;
                i++;
            }
        } else if (quote != 0) {
            if (ch == quote)
                quote = 0; /* a doubled quote closes and reopens: same result */
        } else if (ch == '\'' || ch == '"' || ch == '`') {
            quote = ch;
        } else if (ch == '[') {
            quote = ']';
        } else if (ch == '-' && nx == '-') {
            line_comment = true;
            i++;
        } else if (ch == '/' && nx == '*') {
            block_comment = true;
            i++;
        } else if (ch == '$' && nx >= '0' && nx <= '9') {
            out[i] = '?';
        }
    }
    return out;
}

static void cache_drop(cached_stmt *cs)
{
    sqlite3_finalize(cs->stmt);
    free(cs->text);
    memset(cs, 0, sizeof(*cs));
}

/* Finds sql's statement in the cache or prepares it, evicting the least recently used
 * entry when full. The statement stays owned by the cache. */
static int prepare(store_conn *c, const char *sql, sqlite3_stmt **out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    cached_stmt *slot = NULL;
    char *translated = NULL;
    char *text = NULL;
    sqlite3_stmt *stmt = NULL;
    const char *tail = NULL;

    *out = NULL;
    cached_stmt *hinted = &c->cache[c->hint[hint_of(sql)] % STORE_STMT_CACHE];
    if (hinted->key == sql && strcmp(hinted->text, sql) == 0) {
        hinted->used = ++c->tick;
        *out = hinted->stmt;
        return PV_OK;
    }
    for (size_t i = 0; i < STORE_STMT_CACHE; i++) {
        cached_stmt *cs = &c->cache[i];
        if (cs->key == sql) {
            if (strcmp(cs->text, sql) == 0) {
                cs->used = ++c->tick;
                c->hint[hint_of(sql)] = (uint16_t)i;
                *out = cs->stmt;
                return PV_OK;
            }
            /* Same address, other text: a freed and reused buffer. */
            cache_drop(cs);
        }
        if (slot == NULL || cs->key == NULL || (slot->key != NULL && cs->used < slot->used))
            slot = cs;
    }
    translated = translate(sql);
    text = strdup(sql);
    if (translated == NULL || text == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, NAME ": out of memory");
        goto out;
    }
    if (sqlite3_prepare_v3(c->db, translated, -1, SQLITE_PREPARE_PERSISTENT, &stmt, &tail) !=
        SQLITE_OK) {
        r = sqlite_fail(c, sql, e);
        goto out;
    }
    if (stmt == NULL || (tail != NULL && tail[strspn(tail, " \t\r\n;")] != '\0')) {
        char head[80];
        store_sql_head(sql, head, sizeof(head));
        r = pv_err_set(e, PV_ERR_INVALID_ARG, NAME ": %s: not exactly one statement", head);
        goto out;
    }
    if (slot->key != NULL)
        cache_drop(slot);
    slot->key = sql;
    slot->text = text;
    slot->stmt = stmt;
    slot->used = ++c->tick;
    c->hint[hint_of(sql)] = (uint16_t)(slot - c->cache);
    text = NULL;
    *out = stmt;
    stmt = NULL;
    r = PV_OK;
out:
    sqlite3_finalize(stmt);
    free(translated);
    free(text);
    return r;
}

static int bind(store_conn *c, sqlite3_stmt *stmt, const char *sql, const store_val *params,
                size_t nparams, pv_err *e)
{
    int count = sqlite3_bind_parameter_count(stmt);

    if (count < 0 || (size_t)count != nparams) {
        char head[80];
        store_sql_head(sql, head, sizeof(head));
        return pv_err_set(e, PV_ERR_INVALID_ARG, NAME ": %s: takes %d parameters, given %zu", head,
                          count, nparams);
    }
    for (size_t i = 0; i < nparams; i++) {
        const store_val *v = &params[i];
        int idx = (int)i + 1;
        int rc = SQLITE_MISUSE;
        switch (v->type) {
        case STORE_NULL:
            rc = sqlite3_bind_null(stmt, idx);
            break;
        case STORE_INT:
            rc = sqlite3_bind_int64(stmt, idx, v->i);
            break;
        case STORE_TEXT:
            rc = sqlite3_bind_text64(stmt, idx, v->text, strlen(v->text), SQLITE_STATIC,
                                     SQLITE_UTF8);
            break;
        case STORE_BLOB:
            /* A NULL pointer would bind SQL NULL; an empty blob needs a real one. */
            rc = sqlite3_bind_blob64(stmt, idx, v->blob != NULL ? (const void *)v->blob : "",
                                     v->blob_len, SQLITE_STATIC);
            break;
        }
        if (rc != SQLITE_OK)
            return sqlite_fail(c, sql, e);
    }
    return PV_OK;
}

static int read_row(sqlite3_stmt *stmt, store_rows *rows, pv_err *e)
{
    int r = store_rows_next(rows, NAME, e);
    int ncols = sqlite3_column_count(stmt);

    for (int i = 0; r == PV_OK && i < ncols; i++) {
        size_t col = (size_t)i;
        switch (sqlite3_column_type(stmt, i)) {
        case SQLITE_INTEGER:
            r = store_rows_put(rows, col, STORE_INT, NULL, 0, sqlite3_column_int64(stmt, i), NAME,
                               e);
            break;
        case SQLITE_FLOAT: {
            char num[40];
            int n = snprintf(num, sizeof(num), "%.17g", sqlite3_column_double(stmt, i));
            if (n < 0 || (size_t)n >= sizeof(num))
                return pv_err_set(e, PV_ERR_INTERNAL, NAME ": cannot render a number");
            r = store_rows_put(rows, col, STORE_TEXT, num, (size_t)n, 0, NAME, e);
            break;
        }
        case SQLITE_TEXT: {
            const unsigned char *t = sqlite3_column_text(stmt, i);
            int n = sqlite3_column_bytes(stmt, i);
            if (t == NULL)
                return pv_err_set(e, PV_ERR_NOMEM, NAME ": out of memory reading a result");
            r = store_rows_put(rows, col, STORE_TEXT, t, (size_t)n, 0, NAME, e);
            break;
        }
        case SQLITE_BLOB: {
            const void *b = sqlite3_column_blob(stmt, i);
            int n = sqlite3_column_bytes(stmt, i);
            r = store_rows_put(rows, col, STORE_BLOB, b, n > 0 ? (size_t)n : 0, 0, NAME, e);
            break;
        }
        default:
            break; /* NULL: the row starts as NULLs */
        }
    }
    return r;
}

static int sqlite_exec(store_conn *c, const char *sql, const store_val *params, size_t nparams,
                       store_rows *rows, int64_t *changes, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    sqlite3_stmt *stmt = NULL;
    int rc = SQLITE_OK;

    r = prepare(c, sql, &stmt, e);
    if (r != PV_OK)
        goto out;
    r = bind(c, stmt, sql, params, nparams, e);
    if (r != PV_OK)
        goto out;
    if (rows != NULL && store_rows_columns(rows, (size_t)sqlite3_column_count(stmt)) != PV_OK) {
        r = pv_err_set(e, PV_ERR_INTERNAL, NAME ": too many result columns");
        goto out;
    }
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (rows == NULL)
            continue;
        r = read_row(stmt, rows, e);
        if (r != PV_OK)
            goto out;
    }
    if (rc != SQLITE_DONE) {
        r = sqlite_fail(c, sql, e);
        goto out;
    }
    /* sqlite3_changes64 still holds the last write's count after a SELECT. */
    if (changes != NULL)
        *changes = sqlite3_stmt_readonly(stmt) ? 0 : sqlite3_changes64(c->db);
    r = PV_OK;
out:
    if (stmt != NULL) {
        /* Reset at once: an unfinished statement would hold its read lock (and keep
         * COMMIT from finishing), and its bindings point at the caller's memory. */
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
    }
    return r;
}

static int sqlite_exec_script(store_conn *c, const char *sql, pv_err *e)
{
    if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return sqlite_fail(c, sql, e);
    return PV_OK;
}

/* Reads the one-row, one-column text answer of a PRAGMA into out. */
static int pragma(store_conn *c, const char *sql, char *out, size_t outlen, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    sqlite3_stmt *stmt = NULL;
    int rc = SQLITE_OK;

    if (outlen > 0)
        out[0] = '\0';
    if (sqlite3_prepare_v2(c->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        r = sqlite_fail(c, sql, e);
        goto out;
    }
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(stmt, 0);
        if (t != NULL && outlen > 0)
            snprintf(out, outlen, "%s", (const char *)t);
    }
    if (rc != SQLITE_DONE) {
        r = sqlite_fail(c, sql, e);
        goto out;
    }
    r = PV_OK;
out:
    sqlite3_finalize(stmt);
    return r;
}

static void sqlite_close(store_conn *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < STORE_STMT_CACHE; i++)
        if (c->cache[i].key != NULL)
            cache_drop(&c->cache[i]);
    sqlite3_close_v2(c->db);
    free(c);
}

static int sqlite_open(const char *path, store_conn **out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    store_conn *c = NULL;
    bool memory = strcmp(path, ":memory:") == 0;
    char mode[16];

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return pv_err_set(e, PV_ERR_NOMEM, NAME ": out of memory");
    /* SQLite creates files 0644 (less umask); the database holds certificates and code
     * hashes, so create it 0600 first. Its -wal and -shm files take the same mode.
     * Only a file this call creates is opened and closed here: closing any descriptor
     * of a file drops every POSIX lock the process holds on it, so touching a database
     * that another connection of this process has open would silently unlock it (and
     * another process could then checkpoint and delete the WAL under us). */
    if (!memory) {
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            close(fd);
        } else if (errno != EEXIST) {
            r = pv_err_sys(e, PV_ERR_IO, errno, NAME ": cannot create %s", path);
            goto out;
        }
    }
    if (sqlite3_open_v2(path, &c->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        r = pv_err_set(e, PV_ERR_IO, NAME ": cannot open %s: %s", path,
                       c->db != NULL ? sqlite3_errmsg(c->db) : "out of memory");
        goto out;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    r = pragma(c, "PRAGMA journal_mode=WAL", mode, sizeof(mode), e);
    if (r != PV_OK)
        goto fail;
    if (!memory && strcmp(mode, "wal") != 0) {
        r = pv_err_set(e, PV_ERR_IO, NAME ": %s: cannot use write-ahead logging (mode %s)", path,
                       mode);
        goto out;
    }
    r = pragma(c, "PRAGMA synchronous=NORMAL", NULL, 0, e);
    if (r != PV_OK)
        goto fail;
    r = pragma(c, "PRAGMA foreign_keys=ON", NULL, 0, e);
    if (r != PV_OK)
        goto fail;
    *out = c;
    c = NULL;
    r = PV_OK;
    goto out;
fail:
    pv_err_wrap(e, r, NAME ": setting up %s", path);
out:
    sqlite_close(c);
    return r;
}

static bool sqlite_in_transaction(store_conn *c)
{
    return sqlite3_get_autocommit(c->db) == 0;
}

static int sqlite_begin(store_conn *c, bool write, pv_err *e)
{
    /* IMMEDIATE takes the write lock now: two deferred transactions that both try to
     * upgrade later would have one fail with SQLITE_BUSY without waiting. */
    return sqlite_exec(c, write ? "BEGIN IMMEDIATE" : "BEGIN", NULL, 0, NULL, NULL, e);
}

static void sqlite_rollback(store_conn *c)
{
    if (sqlite_in_transaction(c))
        (void)sqlite_exec(c, "ROLLBACK", NULL, 0, NULL, NULL, NULL);
}

static int sqlite_commit(store_conn *c, pv_err *e)
{
    int r = sqlite_exec(c, "COMMIT", NULL, 0, NULL, NULL, e);
    if (r != PV_OK)
        sqlite_rollback(c);
    return r;
}

static int sqlite_migrate_lock(store_conn *c, pv_err *e)
{
    (void)c;
    (void)e;
    return PV_OK; /* BEGIN IMMEDIATE holds the database's one write lock */
}

const store_backend_ops store_sqlite_ops = {
    .name = NAME,
    .blob_type = "BLOB",
    .serial_type = "INTEGER PRIMARY KEY AUTOINCREMENT",
    .open = sqlite_open,
    .close = sqlite_close,
    .exec = sqlite_exec,
    .exec_script = sqlite_exec_script,
    .batch_reads = true,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .in_transaction = sqlite_in_transaction,
    .migrate_lock = sqlite_migrate_lock,
};
