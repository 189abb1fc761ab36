/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PostgreSQL store backend (libpq). Each statement is prepared once per connection
 * (named pv1, pv2, ...) and cached by the SQL text's address. Parameters go as text,
 * except blobs, which go in binary so bytea needs no escaping; results come back as
 * text and are typed by the column's type OID.
 *
 * The connection string is never written into a message or a log: it may hold a
 * password.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "store_backend.h"

#define NAME "postgres"

/* Type OIDs from pg_type.h (stable across releases), for typing result columns. */
#define OID_BOOL  16
#define OID_BYTEA 17
#define OID_INT8  20
#define OID_INT2  21
#define OID_INT4  23

/* Serialises migrations across processes: "pavise" in ASCII, as a bigint, so it does
 * not collide with another application's small integers. */
#define MIGRATE_LOCK_SQL "SELECT pg_advisory_xact_lock(123563900760933)"

typedef struct pg_stmt {
    const char *key; /* the caller's SQL pointer */
    char *text;      /* a copy of the caller's SQL, to notice a reused address */
    char name[24];   /* the server-side prepared statement */
    int nparams;
    uint64_t used; /* tick of the last use, for LRU eviction */
} pg_stmt;

struct store_conn {
    PGconn *conn;
    pg_stmt cache[STORE_STMT_CACHE];
    uint64_t tick;
    uint64_t next_name;
    bool txn; /* between begin and commit/rollback: a lost connection is not retried */
};

/* Copies libpq's message into out without newlines (it ends with one and may have
 * several lines). */
static void one_line(const char *msg, char *out, size_t outlen)
{
    size_t n = 0;
    bool space = false;

    for (const char *p = msg != NULL ? msg : ""; *p != '\0' && n + 1 < outlen; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t' || *p == ' ') {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < outlen)
            out[n++] = ' ';
        space = false;
        out[n++] = *p;
    }
    out[n] = '\0';
}

/* Reports a failed statement. SQLSTATE class 23 (integrity): 23505 is PV_ERR_EXISTS,
 * the rest PV_ERR_INVALID_ARG. Only the primary message is used: the DETAIL field
 * repeats the row's values. Class 22 (data exception) messages quote the offending
 * value, so they are replaced by the SQLSTATE alone. */
static int pg_fail(store_conn *c, const char *sql, const PGresult *res, pv_err *e)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    int code = PV_ERR_IO;
    char head[80];
    char msg[512];

    store_sql_head(sql, head, sizeof(head));
    if (state == NULL || primary == NULL) {
        one_line(PQerrorMessage(c->conn), msg, sizeof(msg));
        return pv_err_set(e, code, NAME ": %s: %s", head, msg[0] != '\0' ? msg : "failed");
    }
    if (strcmp(state, "23505") == 0)
        code = PV_ERR_EXISTS;
    else if (strncmp(state, "23", 2) == 0)
        code = PV_ERR_INVALID_ARG;
    if (strncmp(state, "22", 2) == 0)
        return pv_err_set(e, code, NAME ": %s: a value does not fit its column (SQLSTATE %s)", head,
                          state);
    one_line(primary, msg, sizeof(msg));
    return pv_err_set(e, code, NAME ": %s: %s (SQLSTATE %s)", head, msg, state);
}

static void notice_ignore(void *arg, const char *message)
{
    /* libpq prints notices ("relation ... already exists, skipping") to stderr by
     * default; the library never prints. */
    (void)arg;
    (void)message;
}

static void cache_drop(store_conn *c, pg_stmt *st, bool deallocate)
{
    if (deallocate && PQstatus(c->conn) == CONNECTION_OK) {
        char sql[64];
        snprintf(sql, sizeof(sql), "DEALLOCATE %s", st->name);
        /* Fails only in an aborted transaction; the statement then lingers on the
         * server until the connection closes, which is harmless. */
        PQclear(PQexec(c->conn, sql));
    }
    free(st->text);
    memset(st, 0, sizeof(*st));
}

/* Makes sure the connection is up. A lost connection is re-established only outside a
 * transaction: inside one, the transaction's work is gone and the caller must know. */
static int ensure_connected(store_conn *c, pv_err *e)
{
    char msg[512];

    if (PQstatus(c->conn) == CONNECTION_OK)
        return PV_OK;
    if (c->txn)
        return pv_err_set(e, PV_ERR_IO, NAME ": the connection was lost during a transaction");
    /* The server forgot our prepared statements with the old session. */
    for (size_t i = 0; i < STORE_STMT_CACHE; i++)
        if (c->cache[i].key != NULL)
            cache_drop(c, &c->cache[i], false);
    PQreset(c->conn);
    if (PQstatus(c->conn) != CONNECTION_OK) {
        one_line(PQerrorMessage(c->conn), msg, sizeof(msg));
        return pv_err_set(e, PV_ERR_IO,
                          NAME ": the connection was lost and reconnecting failed: %s", msg);
    }
    PQsetNoticeProcessor(c->conn, notice_ignore, NULL);
    return PV_OK;
}

/* Finds sql's prepared statement or prepares it (evicting the least recently used). */
static int prepare(store_conn *c, const char *sql, pg_stmt **out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    pg_stmt *slot = NULL;
    PGresult *res = NULL;
    char *text = NULL;
    char name[24];

    *out = NULL;
    for (size_t i = 0; i < STORE_STMT_CACHE; i++) {
        pg_stmt *st = &c->cache[i];
        if (st->key == sql) {
            if (strcmp(st->text, sql) == 0) {
                st->used = ++c->tick;
                *out = st;
                return PV_OK;
            }
            cache_drop(c, st, true); /* same address, other text: a reused buffer */
        }
        if (slot == NULL || st->key == NULL || (slot->key != NULL && st->used < slot->used))
            slot = st;
    }
    if (slot->key != NULL)
        cache_drop(c, slot, true);
    text = strdup(sql);
    if (text == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, NAME ": out of memory");
        goto out;
    }
    snprintf(name, sizeof(name), "pv%llu", (unsigned long long)++c->next_name);
    res = PQprepare(c->conn, name, sql, 0, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        r = pg_fail(c, sql, res, e);
        goto out;
    }
    PQclear(res);
    /* Ask how many parameters the server counted, so a missing value is our error
     * rather than a confusing one from the server. */
    res = PQdescribePrepared(c->conn, name);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        r = pg_fail(c, sql, res, e);
        goto out;
    }
    slot->key = sql;
    slot->text = text;
    text = NULL;
    slot->nparams = PQnparams(res);
    slot->used = ++c->tick;
    memcpy(slot->name, name, sizeof(name));
    *out = slot;
    r = PV_OK;
out:
    PQclear(res);
    free(text);
    return r;
}

static int read_cell(const PGresult *res, int row, int col, store_rows *rows, const char *sql,
                     pv_err *e)
{
    const char *v = PQgetvalue(res, row, col);
    size_t len = (size_t)PQgetlength(res, row, col);
    int64_t i = 0;

    if (PQgetisnull(res, row, col))
        return PV_OK;
    switch (PQftype(res, col)) {
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
        if (store_parse_int(v, len, &i) != PV_OK) {
            char head[80];
            store_sql_head(sql, head, sizeof(head));
            return pv_err_set(e, PV_ERR_FORMAT, NAME ": %s: column %d is not an integer", head,
                              col + 1);
        }
        return store_rows_put(rows, (size_t)col, STORE_INT, NULL, 0, i, NAME, e);
    case OID_BOOL:
        return store_rows_put(rows, (size_t)col, STORE_INT, NULL, 0, v[0] == 't', NAME, e);
    case OID_BYTEA: {
        size_t n = 0;
        unsigned char *b = PQunescapeBytea((const unsigned char *)v, &n);
        int r = PV_OK;
        if (b == NULL)
            return pv_err_set(e, PV_ERR_NOMEM, NAME ": out of memory decoding a blob");
        r = store_rows_put(rows, (size_t)col, STORE_BLOB, b, n, 0, NAME, e);
        PQfreemem(b);
        return r;
    }
    default:
        return store_rows_put(rows, (size_t)col, STORE_TEXT, v, len, 0, NAME, e);
    }
}

static int read_result(const PGresult *res, store_rows *rows, const char *sql, pv_err *e)
{
    int nrows = PQntuples(res);
    int ncols = PQnfields(res);
    int r = PV_OK;

    if (store_rows_columns(rows, (size_t)ncols) != PV_OK)
        return pv_err_set(e, PV_ERR_INTERNAL, NAME ": too many result columns");
    for (int row = 0; row < nrows; row++) {
        r = store_rows_next(rows, NAME, e);
        for (int col = 0; r == PV_OK && col < ncols; col++)
            r = read_cell(res, row, col, rows, sql, e);
        if (r != PV_OK)
            return r;
    }
    return PV_OK;
}

/* Rows written by an INSERT, UPDATE, DELETE or MERGE; 0 for anything else (a SELECT's
 * command tag counts rows too, but those were not changed). */
static int64_t changed(const PGresult *res)
{
    static const char *const writes[] = {"INSERT ", "UPDATE ", "DELETE ", "MERGE "};
    const char *status = PQcmdStatus((PGresult *)res);
    const char *n = PQcmdTuples((PGresult *)res);
    int64_t v = 0;

    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++)
        if (strncmp(status, writes[i], strlen(writes[i])) == 0 &&
            store_parse_int(n, strlen(n), &v) == PV_OK)
            return v;
    return 0;
}

static bool stale_plan(const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    return state != NULL && msg != NULL && strcmp(state, "0A000") == 0 &&
           strstr(msg, "cached plan") != NULL;
}

static int pg_exec(store_conn *c, const char *sql, const store_val *params, size_t nparams,
                   store_rows *rows, int64_t *changes, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    PGresult *res = NULL;
    pg_stmt *st = NULL;
    const char *values[STORE_MAX_PARAMS];
    int lengths[STORE_MAX_PARAMS];
    int formats[STORE_MAX_PARAMS];
    char ints[STORE_MAX_PARAMS][24];

    for (size_t i = 0; i < nparams; i++) {
        const store_val *v = &params[i];
        values[i] = NULL;
        lengths[i] = 0;
        formats[i] = 0;
        switch (v->type) {
        case STORE_NULL:
            break;
        case STORE_INT:
            snprintf(ints[i], sizeof(ints[i]), "%lld", (long long)v->i);
            values[i] = ints[i];
            break;
        case STORE_TEXT:
            values[i] = v->text;
            break;
        case STORE_BLOB:
            if (v->blob_len > (size_t)INT32_MAX) {
                r = pv_err_set(e, PV_ERR_TOO_LARGE, NAME ": parameter $%zu is too large", i + 1);
                goto out;
            }
            /* binary: the bytes as they are; "" so an empty blob is not NULL */
            values[i] = v->blob != NULL ? (const char *)v->blob : "";
            lengths[i] = (int)v->blob_len;
            formats[i] = 1;
            break;
        }
    }
    /* Two tries: a connection lost outside a transaction (a restarted server, an idle
     * timeout) is re-established once. A statement that was sent when the connection
     * broke may have run; callers that cannot repeat work use a transaction. */
    for (int attempt = 0; attempt < 2; attempt++) {
        PQclear(res);
        res = NULL;
        r = ensure_connected(c, e);
        if (r != PV_OK)
            goto out;
        r = prepare(c, sql, &st, e);
        if (r != PV_OK) {
            if (PQstatus(c->conn) != CONNECTION_OK && !c->txn && attempt == 0)
                continue;
            goto out;
        }
        if ((size_t)st->nparams != nparams) {
            char head[80];
            store_sql_head(sql, head, sizeof(head));
            r = pv_err_set(e, PV_ERR_INVALID_ARG, NAME ": %s: takes %d parameters, given %zu", head,
                           st->nparams, nparams);
            goto out;
        }
        res = PQexecPrepared(c->conn, st->name, (int)nparams, nparams > 0 ? values : NULL,
                             nparams > 0 ? lengths : NULL, nparams > 0 ? formats : NULL, 0);
        if (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK)
            break;
        if (PQstatus(c->conn) != CONNECTION_OK && !c->txn && attempt == 0)
            continue;
        /* "cached plan must not change result type": the table changed under a
         * prepared statement (another replica migrated). Prepare it afresh. */
        if (stale_plan(res) && !c->txn && attempt == 0) {
            cache_drop(c, st, true);
            continue;
        }
        r = pg_fail(c, sql, res, e);
        goto out;
    }
    if (rows != NULL) {
        r = read_result(res, rows, sql, e);
        if (r != PV_OK)
            goto out;
    }
    if (changes != NULL)
        *changes = changed(res);
    r = PV_OK;
out:
    PQclear(res);
    return r;
}

/* Runs a statement without parameters through the simple protocol. */
static int simple(store_conn *c, const char *sql, PGresult **out, pv_err *e)
{
    PGresult *res = PQexec(c->conn, sql);
    int r = PV_OK;

    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        r = pg_fail(c, sql, res, e);
    if (r == PV_OK && out != NULL) {
        *out = res;
        res = NULL;
    }
    PQclear(res);
    return r;
}

static int pg_exec_script(store_conn *c, const char *sql, pv_err *e)
{
    int r = ensure_connected(c, e);
    return r != PV_OK ? r : simple(c, sql, NULL, e);
}

static bool pg_in_transaction(store_conn *c)
{
    PGTransactionStatusType t = PQtransactionStatus(c->conn);
    return c->txn || t == PQTRANS_INTRANS || t == PQTRANS_INERROR;
}

static int pg_begin(store_conn *c, bool write, pv_err *e)
{
    int r = PV_ERR_INTERNAL;

    (void)write; /* READ COMMITTED either way: rows are locked as they are written */
    r = ensure_connected(c, e);
    if (r != PV_OK)
        return r;
    r = simple(c, "BEGIN", NULL, e);
    if (r == PV_OK)
        c->txn = true;
    return r;
}

static void pg_rollback(store_conn *c)
{
    PGTransactionStatusType t = PQtransactionStatus(c->conn);

    c->txn = false;
    if (t == PQTRANS_INTRANS || t == PQTRANS_INERROR)
        PQclear(PQexec(c->conn, "ROLLBACK"));
}

static int pg_commit(store_conn *c, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    PGresult *res = NULL;

    r = simple(c, "COMMIT", &res, e);
    if (r != PV_OK)
        goto out;
    /* COMMIT of a transaction in which a statement failed answers "ROLLBACK". */
    if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        r = pv_err_set(e, PV_ERR_IO,
                       NAME ": COMMIT: the transaction was rolled back because a "
                            "statement in it failed");
        goto out;
    }
    r = PV_OK;
out:
    PQclear(res);
    pg_rollback(c); /* clears txn; sends ROLLBACK only if still in one */
    return r;
}

static int pg_migrate_lock(store_conn *c, pv_err *e)
{
    return simple(c, MIGRATE_LOCK_SQL, NULL, e);
}

static void pg_close(store_conn *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < STORE_STMT_CACHE; i++)
        if (c->cache[i].key != NULL)
            cache_drop(c, &c->cache[i], false); /* the session's end frees them */
    PQfinish(c->conn);
    free(c);
}

static int pg_open(const char *conninfo, store_conn **out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    store_conn *c = NULL;
    PQconninfoOption *opts = NULL;
    char *perr = NULL;
    char msg[512];
    /* dbname is expanded as a whole connection string; the keywords before it are
     * defaults it may override, those after it win. */
    const char *const keys[] = {"application_name", "dbname", "client_encoding", NULL};
    const char *const vals[] = {"pavise-server", conninfo, "UTF8", NULL};

    *out = NULL;
    /* Check the syntax first and say only that it is wrong: libpq's own message can
     * quote a piece of the string, which may be the password. */
    if (strchr(conninfo, '=') != NULL || strncmp(conninfo, "postgres://", 11) == 0 ||
        strncmp(conninfo, "postgresql://", 13) == 0) {
        opts = PQconninfoParse(conninfo, &perr);
        if (opts == NULL) {
            r = pv_err_set(e, PV_ERR_IO, NAME ": the connection string is malformed");
            goto out;
        }
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, NAME ": out of memory");
        goto out;
    }
    c->conn = PQconnectdbParams(keys, vals, 1);
    if (c->conn == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, NAME ": out of memory");
        goto out;
    }
    if (PQstatus(c->conn) != CONNECTION_OK) {
        one_line(PQerrorMessage(c->conn), msg, sizeof(msg));
        r = pv_err_set(e, PV_ERR_IO, NAME ": cannot connect: %s", msg);
        goto out;
    }
    PQsetNoticeProcessor(c->conn, notice_ignore, NULL);
    *out = c;
    c = NULL;
    r = PV_OK;
out:
    PQconninfoFree(opts);
    PQfreemem(perr);
    pg_close(c);
    return r;
}

const store_backend_ops store_postgres_ops = {
    .name = NAME,
    .blob_type = "BYTEA",
    .serial_type = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    .open = pg_open,
    .close = pg_close,
    .exec = pg_exec,
    .exec_script = pg_exec_script,
    .batch_reads = false,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .in_transaction = pg_in_transaction,
    .migrate_lock = pg_migrate_lock,
};
