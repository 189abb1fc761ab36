/* SPDX-License-Identifier: Apache-2.0 */
/* The PostgreSQL store backend (libpq). Connecting is not implemented yet. */
#include "store_backend.h"

static int pg_open(const char *conninfo, store_conn **out, pv_err *e)
{
    (void)conninfo;
    *out = NULL;
    return pv_err_set(e, PV_ERR_IO, "postgres: backend not implemented yet");
}

static void pg_close(store_conn *c)
{
    (void)c;
}

const store_backend_ops store_postgres_ops = {
    .name = "postgres",
    .blob_type = "BYTEA",
    .serial_type = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    .open = pg_open,
    .close = pg_close,
};
