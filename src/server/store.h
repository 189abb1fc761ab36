/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Security Service's storage: one connection per worker thread, behind a small
 * table of backend functions (store_sqlite.c, store_postgres.c). Callers write one SQL
 * text for both backends and never branch on the backend:
 *
 *  - placeholders are $1..$n (the SQLite backend maps them to ?1..?n);
 *  - values are typed (store_val): text, 64-bit integer, blob, NULL; booleans are
 *    integers 0/1 and times are integer seconds since the epoch;
 *  - results are read by row and column with typed getters;
 *  - the schema (schema.c) is written once, with {BLOB} and {SERIAL} replaced by each
 *    backend's spelling ("BLOB"/"BYTEA", "INTEGER PRIMARY KEY AUTOINCREMENT"/
 *    "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY").
 *
 * A connection is used by one thread at a time. Prepared statements are cached per
 * connection, keyed by the SQL text's address, so call sites pass string literals.
 */
#ifndef PAVISE_SERVER_STORE_H
#define PAVISE_SERVER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/err.h"

typedef struct store store;           /* one connection */
typedef struct store_rows store_rows; /* a query's result (all rows, read into memory) */

typedef enum store_type { STORE_NULL = 0, STORE_TEXT, STORE_INT, STORE_BLOB } store_type;

typedef struct store_val {
    store_type type;
    const char *text; /* STORE_TEXT: NUL-terminated UTF-8 */
    int64_t i;        /* STORE_INT */
    const uint8_t *blob;
    size_t blob_len; /* STORE_BLOB */
} store_val;

#define SV_TEXT(s)         ((store_val){.type = STORE_TEXT, .text = (s)})
#define SV_INT(v)          ((store_val){.type = STORE_INT, .i = (int64_t)(v)})
#define SV_BLOB(p, n)      ((store_val){.type = STORE_BLOB, .blob = (p), .blob_len = (n)})
#define SV_NULL            ((store_val){.type = STORE_NULL})
#define SV_TEXT_OR_NULL(s) ((s) != NULL ? SV_TEXT(s) : SV_NULL)

#define STORE_MAX_PARAMS 16

/* Opens a connection. url is "sqlite:PATH" (the file is created when missing, WAL,
 * foreign keys on, busy timeout 5 s) or "postgres:CONNINFO" (a libpq connection
 * string, e.g. "host=/tmp/pg dbname=pavise"). Does not migrate.
 * PV_OK; PV_ERR_USAGE (unknown scheme); PV_ERR_IO (cannot connect or open). */
int store_open(const char *url, store **out, pv_err *e);

/* Closes the connection and frees its statements. Accepts NULL. */
void store_close(store *s);

/* "sqlite" or "postgres". */
const char *store_backend_name(const store *s);

/* Brings the schema to the newest version in schema.c, each migration in its own
 * transaction, recorded in schema_migrations. Safe when several processes start at
 * once (PostgreSQL: an advisory lock; SQLite: BEGIN IMMEDIATE). Refuses a database
 * whose schema is newer than this program knows (PV_ERR_UNSUPPORTED).
 * *version_out (may be NULL) receives the resulting version. */
int store_migrate(store *s, int *version_out, pv_err *e);

/* Transactions. store_begin(write = true) takes the write lock at once on SQLite
 * (BEGIN IMMEDIATE) so two writers never deadlock on an upgrade; on PostgreSQL both
 * are BEGIN (READ COMMITTED; use unique constraints and conditional updates for
 * races). store_rollback accepts a connection with no open transaction. */
int store_begin(store *s, bool write, pv_err *e);
int store_commit(store *s, pv_err *e);
void store_rollback(store *s);

/* Groups the reads of one request (GET): on SQLite one read transaction, so the
 * statements share one WAL snapshot and one round of file locks instead of one each; on
 * PostgreSQL nothing (each statement reads committed data, and a transaction would add
 * two round trips). Nothing may be written in between. store_read_end accepts a
 * connection where nothing was begun. */
int store_read_begin(store *s, pv_err *e);
void store_read_end(store *s);

/* Runs one statement. rows (may be NULL) receives the result rows; changes (may be
 * NULL) the number of rows inserted, updated or deleted.
 * PV_OK; PV_ERR_EXISTS (a unique or primary key constraint was violated);
 * PV_ERR_INVALID_ARG (a foreign key or check constraint was violated, or > 16 params);
 * PV_ERR_IO (the database failed; message says why). */
int store_exec(store *s, const char *sql, const store_val *params, size_t nparams,
               store_rows **rows, int64_t *changes, pv_err *e);

/* Result access. Rows and columns count from 0; out-of-range reads return NULL / 0. */
size_t store_rows_count(const store_rows *r);
bool store_rows_is_null(const store_rows *r, size_t row, size_t col);
/* Text of a column (integers are rendered in decimal); NULL for SQL NULL. Valid until
 * store_rows_free. */
const char *store_rows_text(const store_rows *r, size_t row, size_t col);
int64_t store_rows_int(const store_rows *r, size_t row, size_t col);
/* Bytes of a blob column; NULL and *len 0 for SQL NULL. */
const uint8_t *store_rows_blob(const store_rows *r, size_t row, size_t col, size_t *len);
void store_rows_free(store_rows *r);

#endif
