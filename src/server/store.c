/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The generic half of the store: the URL, argument checks, the migration runner and
 * the in-memory result rows. The backends (store_sqlite.c, store_postgres.c) only talk
 * to their database.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/buf.h"
#include "pavise/platform.h"
#include "schema.h"
#include "store_backend.h"

struct store {
    const store_backend_ops *ops;
    store_conn *c;
};

typedef struct store_cell {
    store_type type;
    int64_t i;  /* STORE_INT */
    size_t off; /* TEXT and BLOB bytes, INT rendered, at data + off; NUL-terminated */
    size_t len; /* bytes at data + off, without the NUL */
} store_cell;

/* The cells' bytes share one buffer (data), so a result costs a few allocations
 * however many cells it has. Cells hold offsets: the buffer moves as it grows. */
struct store_rows {
    size_t ncols;
    size_t nrows;
    size_t cap; /* rows allocated */
    size_t bytes;
    store_cell *cells; /* nrows * ncols, row-major */
    char *data;
    size_t data_len, data_cap;
};

#define ROWS_DATA_MIN 512

/* A schema bigger than this is a mistake in schema.c, not something to run. */
#define MIGRATION_MAX_BYTES ((size_t)1 << 20)

static const struct {
    const char *scheme;
    const store_backend_ops *ops;
} backends[] = {
    {"sqlite:", &store_sqlite_ops},
    {"postgres:", &store_postgres_ops},
};

int store_open(const char *url, store **out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    store *s = NULL;
    const store_backend_ops *ops = NULL;
    const char *target = NULL;

    if (out != NULL)
        *out = NULL;
    if (url == NULL || out == NULL)
        return pv_err_set(e, PV_ERR_INVALID_ARG, "store: no database URL");
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
        size_t n = strlen(backends[i].scheme);
        if (strncmp(url, backends[i].scheme, n) == 0) {
            ops = backends[i].ops;
            target = url + n;
            break;
        }
    }
    /* The URL is not echoed: a postgres one may carry a password. */
    if (ops == NULL) {
        r = pv_err_set(e, PV_ERR_USAGE,
                       "database URL: unknown scheme (expected sqlite:PATH or postgres:CONNINFO)");
        goto out;
    }
    if (*target == '\0') {
        r = pv_err_set(e, PV_ERR_USAGE, "database URL: %s: nothing after the scheme", ops->name);
        goto out;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "%s: out of memory", ops->name);
        goto out;
    }
    s->ops = ops;
    r = ops->open(target, &s->c, e);
    if (r != PV_OK)
        goto out;
    *out = s;
    s = NULL;
    r = PV_OK;
out:
    store_close(s);
    return r;
}

void store_close(store *s)
{
    if (s == NULL)
        return;
    if (s->c != NULL)
        s->ops->close(s->c);
    free(s);
}

const char *store_backend_name(const store *s)
{
    return s != NULL ? s->ops->name : "none";
}

static int check_params(const store *s, const store_val *params, size_t nparams, pv_err *e)
{
    if (nparams > STORE_MAX_PARAMS)
        return pv_err_set(e, PV_ERR_INVALID_ARG, "%s: %zu parameters (at most %d)", s->ops->name,
                          nparams, STORE_MAX_PARAMS);
    if (nparams > 0 && params == NULL)
        return pv_err_set(e, PV_ERR_INVALID_ARG, "%s: parameters missing", s->ops->name);
    for (size_t i = 0; i < nparams; i++) {
        const store_val *v = &params[i];
        bool ok = (v->type == STORE_NULL || v->type == STORE_INT) ||
                  (v->type == STORE_TEXT && v->text != NULL) ||
                  (v->type == STORE_BLOB && (v->blob != NULL || v->blob_len == 0));
        if (!ok)
            return pv_err_set(e, PV_ERR_INVALID_ARG, "%s: parameter $%zu is not a valid value",
                              s->ops->name, i + 1);
    }
    return PV_OK;
}

int store_exec(store *s, const char *sql, const store_val *params, size_t nparams,
               store_rows **rows, int64_t *changes, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    store_rows *res = NULL;

    if (rows != NULL)
        *rows = NULL;
    if (changes != NULL)
        *changes = 0;
    if (s == NULL || sql == NULL)
        return pv_err_set(e, PV_ERR_INVALID_ARG, "store: no connection or statement");
    r = check_params(s, params, nparams, e);
    if (r != PV_OK)
        goto out;
    if (rows != NULL) {
        res = calloc(1, sizeof(*res));
        if (res == NULL) {
            r = pv_err_set(e, PV_ERR_NOMEM, "%s: out of memory", s->ops->name);
            goto out;
        }
    }
    r = s->ops->exec(s->c, sql, params, nparams, res, changes, e);
    if (r != PV_OK)
        goto out;
    if (rows != NULL) {
        *rows = res;
        res = NULL;
    }
    r = PV_OK;
out:
    store_rows_free(res);
    return r;
}

int store_begin(store *s, bool write, pv_err *e)
{
    if (s == NULL)
        return pv_err_set(e, PV_ERR_INVALID_ARG, "store: no connection");
    /* Neither database nests transactions the same way (SQLite refuses, PostgreSQL
     * warns and carries on), so refuse here for both. */
    if (s->ops->in_transaction(s->c))
        return pv_err_set(e, PV_ERR_INVALID_ARG, "%s: a transaction is already open", s->ops->name);
    return s->ops->begin(s->c, write, e);
}

int store_commit(store *s, pv_err *e)
{
    if (s == NULL)
        return pv_err_set(e, PV_ERR_INVALID_ARG, "store: no connection");
    if (!s->ops->in_transaction(s->c))
        return pv_err_set(e, PV_ERR_INVALID_ARG, "%s: commit without a transaction", s->ops->name);
    return s->ops->commit(s->c, e);
}

void store_rollback(store *s)
{
    if (s != NULL)
        s->ops->rollback(s->c);
}

int store_read_begin(store *s, pv_err *e)
{
    if (s == NULL)
        return pv_err_set(e, PV_ERR_INVALID_ARG, "store: no connection");
    if (!s->ops->batch_reads || s->ops->in_transaction(s->c))
        return PV_OK;
    return s->ops->begin(s->c, false, e);
}

void store_read_end(store *s)
{
    if (s == NULL || !s->ops->batch_reads || !s->ops->in_transaction(s->c))
        return;
    pv_err e;
    pv_err_clear(&e);
    (void)s->ops->commit(s->c, &e); /* nothing was written; a failure has rolled back */
}

/* ---- migrations ---- */

/* Copies a migration with {BLOB} and {SERIAL} replaced by the backend's spelling. */
static int migration_text(const store_backend_ops *ops, const char *src, char **out, pv_err *e)
{
    static const struct {
        const char *token;
        size_t off; /* of the spelling in store_backend_ops */
    } tokens[] = {
        {"{BLOB}", offsetof(store_backend_ops, blob_type)},
        {"{SERIAL}", offsetof(store_backend_ops, serial_type)},
    };
    int r = PV_ERR_INTERNAL;
    pv_buf *b = pv_buf_new(MIGRATION_MAX_BYTES);
    size_t len = 0;

    *out = NULL;
    if (b == NULL)
        return pv_err_set(e, PV_ERR_NOMEM, "%s: out of memory", ops->name);
    for (const char *p = src; *p != '\0';) {
        bool replaced = false;
        for (size_t t = 0; t < sizeof(tokens) / sizeof(tokens[0]); t++) {
            size_t tl = strlen(tokens[t].token);
            if (strncmp(p, tokens[t].token, tl) == 0) {
                const char *sp = *(const char *const *)((const char *)ops + tokens[t].off);
                if (pv_buf_append(b, sp, strlen(sp)) != PV_OK)
                    goto too_large;
                p += tl;
                replaced = true;
                break;
            }
        }
        if (!replaced) {
            if (pv_buf_append_u8(b, (uint8_t)*p) != PV_OK)
                goto too_large;
            p++;
        }
    }
    if (pv_buf_append_u8(b, 0) != PV_OK)
        goto too_large;
    *out = (char *)pv_buf_steal(b, &len);
    if (*out == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "%s: out of memory", ops->name);
        goto out;
    }
    r = PV_OK;
    goto out;
too_large:
    r = pv_err_set(e, PV_ERR_TOO_LARGE, "%s: a migration is larger than %zu bytes", ops->name,
                   MIGRATION_MAX_BYTES);
out:
    pv_buf_free(b);
    return r;
}

static bool blank(const char *p)
{
    for (; *p != '\0'; p++)
        if (*p != ' ' && *p != '\n' && *p != '\t' && *p != '\r')
            return false;
    return true;
}

/* Runs migration `index` (bringing the schema to index + 1): its statements, split on
 * ";\n", then its row in schema_migrations. The caller holds the transaction. */
static int apply_migration(store *s, size_t index, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    char *sql = NULL;
    char *p = NULL;

    r = migration_text(s->ops, schema_migrations[index], &sql, e);
    if (r != PV_OK)
        goto out;
    for (p = sql; p != NULL && *p != '\0';) {
        char *end = strstr(p, ";\n");
        char *next = NULL;
        if (end != NULL) {
            *end = '\0';
            next = end + 2;
        }
        if (!blank(p)) {
            r = s->ops->exec_script(s->c, p, e);
            if (r != PV_OK)
                goto out;
        }
        p = next;
    }
    r = store_exec(s, "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                   (store_val[]){SV_INT(index + 1), SV_INT(pv_time_now())}, 2, NULL, NULL, e);
    if (r != PV_OK)
        goto out;
    r = PV_OK;
out:
    if (r != PV_OK)
        pv_err_wrap(e, r, "migration to schema version %zu", index + 1);
    free(sql);
    return r;
}

/* One step: in a transaction that holds the migration lock, read the version and apply
 * the next migration if there is one. *done is set when the schema is current. */
static int migrate_step(store *s, int64_t *version, bool *done, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    store_rows *rows = NULL;
    int64_t v = 0;

    *done = false;
    r = store_begin(s, true, e);
    if (r != PV_OK)
        goto out;
    r = s->ops->migrate_lock(s->c, e);
    if (r != PV_OK)
        goto out;
    /* Created under the lock: PostgreSQL's CREATE TABLE IF NOT EXISTS is not safe
     * against a concurrent one. */
    r = store_exec(s,
                   "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
                   "  version INTEGER PRIMARY KEY,\n"
                   "  applied_at BIGINT NOT NULL\n"
                   ")",
                   NULL, 0, NULL, NULL, e);
    if (r != PV_OK)
        goto out;
    r = store_exec(s, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", NULL, 0, &rows,
                   NULL, e);
    if (r != PV_OK)
        goto out;
    v = store_rows_int(rows, 0, 0);
    if (v < 0 || (uint64_t)v > schema_migration_count) {
        r = pv_err_set(e, PV_ERR_UNSUPPORTED,
                       "%s: the database's schema is version %" PRId64
                       ", newer than this program knows (%zu); use a newer pavise-server",
                       s->ops->name, v, schema_migration_count);
        goto out;
    }
    if ((uint64_t)v < schema_migration_count) {
        r = apply_migration(s, (size_t)v, e);
        if (r != PV_OK)
            goto out;
        v++;
    } else {
        *done = true;
    }
    r = store_commit(s, e);
    if (r != PV_OK)
        goto out;
    *version = v;
    r = PV_OK;
out:
    if (r != PV_OK)
        store_rollback(s);
    store_rows_free(rows);
    return r;
}

int store_migrate(store *s, int *version_out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    int64_t version = 0;
    bool done = false;

    if (version_out != NULL)
        *version_out = 0;
    if (s == NULL)
        return pv_err_set(e, PV_ERR_INVALID_ARG, "store: no connection");
    /* One transaction per migration, so a failure leaves the schema at a known version
     * and another process waiting on the lock sees each step complete. */
    for (size_t steps = 0; !done; steps++) {
        if (steps > schema_migration_count) {
            r = pv_err_set(e, PV_ERR_INTERNAL, "%s: migrations did not converge", s->ops->name);
            goto out;
        }
        r = migrate_step(s, &version, &done, e);
        if (r != PV_OK)
            goto out;
    }
    if (version_out != NULL)
        *version_out = (int)version;
    r = PV_OK;
out:
    return r;
}

/* ---- result rows ---- */

int store_rows_columns(store_rows *r, size_t ncols)
{
    if (r == NULL || r->nrows != 0 || ncols > 4096)
        return PV_ERR_INTERNAL;
    r->ncols = ncols;
    return PV_OK;
}

static int rows_account(store_rows *r, size_t add, const char *backend, pv_err *e)
{
    if (add > STORE_ROWS_MAX_BYTES - r->bytes)
        return pv_err_set(e, PV_ERR_TOO_LARGE, "%s: the result is larger than %zu MiB", backend,
                          STORE_ROWS_MAX_BYTES >> 20);
    r->bytes += add;
    return PV_OK;
}

int store_rows_next(store_rows *r, const char *backend, pv_err *e)
{
    int rc = rows_account(r, r->ncols * sizeof(store_cell), backend, e);
    if (rc != PV_OK)
        return rc;
    if (r->nrows == r->cap) {
        /* Bounded by rows_account: cap * ncols * sizeof(cell) stays below 128 MiB. */
        size_t cap = r->cap == 0 ? 16 : r->cap * 2;
        size_t n = cap * (r->ncols > 0 ? r->ncols : 1);
        store_cell *cells = realloc(r->cells, n * sizeof(store_cell));
        if (cells == NULL)
            return pv_err_set(e, PV_ERR_NOMEM, "%s: out of memory for a result", backend);
        r->cells = cells;
        r->cap = cap;
    }
    if (r->ncols > 0)
        memset(&r->cells[r->nrows * r->ncols], 0, r->ncols * sizeof(store_cell));
    r->nrows++;
    return PV_OK;
}

/* Room for add more bytes in r->data; the caller has accounted for them. */
static int rows_reserve(store_rows *r, size_t add, const char *backend, pv_err *e)
{
    if (add <= r->data_cap - r->data_len)
        return PV_OK;
    size_t cap = r->data_cap > 0 ? r->data_cap : ROWS_DATA_MIN;
    /* rows_account keeps data_len + add below STORE_ROWS_MAX_BYTES: no overflow. */
    while (cap - r->data_len < add)
        cap *= 2;
    char *data = realloc(r->data, cap);
    if (data == NULL)
        return pv_err_set(e, PV_ERR_NOMEM, "%s: out of memory for a result", backend);
    r->data = data;
    r->data_cap = cap;
    return PV_OK;
}

int store_rows_put(store_rows *r, size_t col, store_type type, const void *data, size_t len,
                   int64_t i, const char *backend, pv_err *e)
{
    int rc = PV_ERR_INTERNAL;
    store_cell *c = NULL;
    char num[PV_INT_TEXT_LEN + 1];

    if (r == NULL || r->nrows == 0 || col >= r->ncols)
        return pv_err_set(e, PV_ERR_INTERNAL, "%s: result column out of range", backend);
    c = &r->cells[(r->nrows - 1) * r->ncols + col];
    if (c->type != STORE_NULL)
        return pv_err_set(e, PV_ERR_INTERNAL, "%s: result column set twice", backend);
    if (type == STORE_NULL)
        return PV_OK;
    if (type == STORE_INT) {
        len = pv_int_format(i, num);
        data = num;
    } else if (type != STORE_TEXT && type != STORE_BLOB) {
        return pv_err_set(e, PV_ERR_INTERNAL, "%s: unknown column type", backend);
    }
    if (len > STORE_ROWS_MAX_BYTES)
        return rows_account(r, SIZE_MAX, backend, e);
    rc = rows_account(r, len + 1, backend, e);
    if (rc != PV_OK)
        return rc;
    rc = rows_reserve(r, len + 1, backend, e);
    if (rc != PV_OK)
        return rc;
    if (len > 0)
        memcpy(r->data + r->data_len, data, len);
    r->data[r->data_len + len] = '\0';
    c->off = r->data_len;
    c->len = len;
    c->i = i;
    c->type = type;
    r->data_len += len + 1;
    return PV_OK;
}

static const store_cell *cell(const store_rows *r, size_t row, size_t col)
{
    if (r == NULL || row >= r->nrows || col >= r->ncols)
        return NULL;
    const store_cell *c = &r->cells[row * r->ncols + col];
    return c->type == STORE_NULL ? NULL : c;
}

size_t store_rows_count(const store_rows *r)
{
    return r != NULL ? r->nrows : 0;
}

bool store_rows_is_null(const store_rows *r, size_t row, size_t col)
{
    return cell(r, row, col) == NULL;
}

const char *store_rows_text(const store_rows *r, size_t row, size_t col)
{
    const store_cell *c = cell(r, row, col);
    return c != NULL ? r->data + c->off : NULL;
}

int64_t store_rows_int(const store_rows *r, size_t row, size_t col)
{
    const store_cell *c = cell(r, row, col);
    int64_t v = 0;

    if (c == NULL)
        return 0;
    if (c->type == STORE_INT)
        return c->i;
    /* A number the database returned as text (PostgreSQL NUMERIC from SUM, say). */
    if (c->type == STORE_TEXT && store_parse_int(r->data + c->off, c->len, &v) == PV_OK)
        return v;
    return 0;
}

const uint8_t *store_rows_blob(const store_rows *r, size_t row, size_t col, size_t *len)
{
    const store_cell *c = cell(r, row, col);
    if (len != NULL)
        *len = c != NULL ? c->len : 0;
    return c != NULL ? (const uint8_t *)r->data + c->off : NULL;
}

void store_rows_free(store_rows *r)
{
    if (r == NULL)
        return;
    free(r->data);
    free(r->cells);
    free(r);
}

/* ---- helpers for the backends ---- */

int store_parse_int(const char *s, size_t len, int64_t *out)
{
    uint64_t v = 0;
    uint64_t limit = (uint64_t)INT64_MAX;
    bool neg = false;
    size_t i = 0;

    *out = 0;
    if (s == NULL || len == 0)
        return PV_ERR_FORMAT;
    if (s[0] == '-') {
        neg = true;
        limit = (uint64_t)INT64_MAX + 1;
        i = 1;
    }
    if (i == len)
        return PV_ERR_FORMAT;
    for (; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9)
            return PV_ERR_FORMAT;
        if (v > (limit - d) / 10)
            return PV_ERR_FORMAT;
        v = v * 10 + d;
    }
    /* -(INT64_MIN) does not fit; build the negative from v - 1. */
    *out = neg ? (v == 0 ? 0 : -(int64_t)(v - 1) - 1) : (int64_t)v;
    return PV_OK;
}

void store_sql_head(const char *sql, char *out, size_t outlen)
{
    size_t n = 0;
    bool space = false;
    const char *p = sql;

    if (outlen == 0)
        return;
    for (; p != NULL && *p != '\0' && n + 5 < outlen && n < 60; p++) {
        if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') {
            space = n > 0;
            continue;
        }
        if (space) {
            out[n++] = ' ';
            space = false;
        }
        out[n++] = *p;
    }
    if (p != NULL && *p != '\0' && n + 4 <= outlen) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}
