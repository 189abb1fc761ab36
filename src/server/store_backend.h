/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The table of functions a store backend provides (store_sqlite.c, store_postgres.c),
 * and the result-row container they fill. store.c holds the generic parts (URL parsing,
 * argument checks, the migration runner, the rows) and calls these; nothing outside
 * store*.c sees a backend.
 *
 * Every function returns PV_OK or a negative pv_code with the reason in e. Messages
 * name the backend ("sqlite: ...", "postgres: ...") and never contain parameter values
 * or the connection string: both may be secrets.
 */
#ifndef PAVISE_SERVER_STORE_BACKEND_H
#define PAVISE_SERVER_STORE_BACKEND_H

#include "store.h"

typedef struct store_conn store_conn; /* each backend's private connection */

/* The most bytes one result may hold in memory (cells, their text and blobs). */
#define STORE_ROWS_MAX_BYTES ((size_t)64 << 20)

/* Prepared statements cached per connection; the least recently used is dropped. */
#define STORE_STMT_CACHE 128

typedef struct store_backend_ops {
    const char *name;        /* "sqlite", "postgres" */
    const char *blob_type;   /* schema {BLOB} */
    const char *serial_type; /* schema {SERIAL} */

    /* target: what follows "scheme:" in the URL (never empty). PV_ERR_IO on failure. */
    int (*open)(const char *target, store_conn **out, pv_err *e);
    void (*close)(store_conn *c);

    /* Runs sql (cached by its address; store.c checked params: nparams <= 16, no TEXT
     * without text, no BLOB without bytes unless empty). rows, when not NULL, is an
     * empty container: the backend calls store_rows_columns once, then
     * store_rows_next/store_rows_put per row. changes may be NULL. */
    int (*exec)(store_conn *c, const char *sql, const store_val *params, size_t nparams,
                store_rows *rows, int64_t *changes, pv_err *e);
    /* Runs SQL without parameters or results and without caching it: the migration
     * statements, which are built at run time. */
    int (*exec_script)(store_conn *c, const char *sql, pv_err *e);

    int (*begin)(store_conn *c, bool write, pv_err *e);
    /* On failure the transaction is rolled back: the connection is usable again. */
    int (*commit)(store_conn *c, pv_err *e);
    void (*rollback)(store_conn *c);
    bool (*in_transaction)(store_conn *c);
    /* Whether store_read_begin opens a read transaction: worth it where a transaction
     * costs nothing but saves locking per statement (SQLite), not where it costs round
     * trips (PostgreSQL). */
    bool batch_reads;

    /* Called first inside the migration transaction, so only one process migrates at a
     * time (PostgreSQL: a transaction-scoped advisory lock; SQLite: nothing, since
     * begin(write) already holds the database's write lock). */
    int (*migrate_lock)(store_conn *c, pv_err *e);
} store_backend_ops;

extern const store_backend_ops store_sqlite_ops;
extern const store_backend_ops store_postgres_ops;

/* For the backends: fill a result. store_rows_columns sets the column count (once,
 * before the first row); store_rows_next starts a row of NULLs; store_rows_put sets a
 * column of the current row, copying data (TEXT: len bytes, NUL appended; BLOB: len
 * bytes; INT: i, rendered in decimal for store_rows_text). PV_ERR_NOMEM;
 * PV_ERR_TOO_LARGE past STORE_ROWS_MAX_BYTES (e says so, naming backend). */
int store_rows_columns(store_rows *r, size_t ncols);
int store_rows_next(store_rows *r, const char *backend, pv_err *e);
int store_rows_put(store_rows *r, size_t col, store_type type, const void *data, size_t len,
                   int64_t i, const char *backend, pv_err *e);

/* Parses a whole decimal int64 ("-12"; no sign-only, spaces, leading '+' or overflow).
 * PV_OK or PV_ERR_FORMAT. */
int store_parse_int(const char *s, size_t len, int64_t *out);

/* Writes the start of sql (whitespace runs collapsed, at most about 60 characters) to
 * out, so an error message can say which statement failed without parameter values. */
void store_sql_head(const char *sql, char *out, size_t outlen);

#endif
