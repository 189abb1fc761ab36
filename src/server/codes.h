/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One-time enrollment codes: 160 random bits shown once as 32 base32 characters in
 * groups of four ("ABCD-EFGH-..."), stored only as the SHA-256 of the normalised code,
 * single-use (redeeming is one conditional UPDATE, so two replicas cannot both win) and
 * expiring.
 */
#ifndef PAVISE_SERVER_CODES_H
#define PAVISE_SERVER_CODES_H

#include <stdbool.h>
#include <stdint.h>

#include "pavise/err.h"

#include "store.h"

#define CODES_TEXT_LEN 39 /* 32 characters and 7 dashes */

/* Creates a code for user_name. tenant_id and role NULL: the first administrator
 * (`pavise-server init`); otherwise the role to grant in tenant_id on enrollment.
 * created_by: the operator ID, or NULL for the server itself. Call inside a write
 * transaction when it goes with other changes. code receives the text to show. */
int codes_create(store *db, const char *user_name, const char *tenant_id, const char *role,
                 const char *created_by, int64_t now, int64_t ttl_seconds,
                 char code[CODES_TEXT_LEN + 1], pv_err *e);

/* Whether text can be a code at all (32 base32 characters, dashes and case ignored):
 * checked before anything touches the database, so garbage costs no write lock. */
bool codes_well_formed(const char *code);

typedef struct codes_grant {
    char user_name[65];
    char tenant_id[37]; /* "" for the first administrator */
    char role[16];      /* "" for the first administrator */
} codes_grant;

/* Redeems a code typed by a user (case and dashes are normalised): marks it used if it
 * exists, is unused and has not expired at `now`, and returns what it grants. Call
 * inside the write transaction that creates the operator.
 * PV_OK; PV_ERR_NOT_FOUND for an unknown, used or expired code (one answer for all);
 * PV_ERR_FORMAT for text that cannot be a code; store errors. */
int codes_redeem(store *db, const char *code, int64_t now, codes_grant *out, pv_err *e);

#endif
