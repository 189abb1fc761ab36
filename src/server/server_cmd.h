/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What pavise-server's offline commands share (main.c), for the commands kept in files
 * of their own (cmd_*.c, linked into the program only).
 */
#ifndef PAVISE_SERVER_CMD_H
#define PAVISE_SERVER_CMD_H

#include "cli.h"
#include "pavise/err.h"
#include "store.h"

/* Loads the configuration (--data, --config, --db) and opens the database, migrated. */
int server_cmd_open_db(const cli_cmd *cmd, const cli_args *args, store **db, pv_err *e);

/* Ends an offline command's write transaction: when r is PV_OK, writes the server-wide
 * audit row (detail: JSON text) and commits; otherwise, or when either fails, rolls
 * back. Returns the first failure. */
int server_cmd_end_tx(store *db, int r, const char *action, const char *target, const char *detail,
                      pv_err *e);

#endif
