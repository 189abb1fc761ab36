/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test harness for the server's unit tests: a fresh, migrated store on SQLite (a file in
 * PV_TEST_TMP) or on PostgreSQL (a cluster this process starts once with
 * scripts/pg-start, a new database per environment), a server with CA material, and a
 * way to call the API (api_handle) as a given operator without the HTTP layer.
 */
#ifndef PAVISE_TEST_SERVERTEST_H
#define PAVISE_TEST_SERVERTEST_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "api.h"
#include "server.h"
#include "store.h"

typedef struct st_env {
    server srv;
    store *db;
    char dir[PATH_MAX]; /* this environment's temporary directory (removed by teardown) */
    char db_url[1024];
} st_env;

/* backend: "sqlite" or "postgres". Fails the test (cmocka) on any error. */
void st_setup(st_env *env, const char *backend);
void st_teardown(st_env *env);

/* The backends to run a suite on: "sqlite" always, "postgres" too (pg-start works
 * without network: unix socket in PV_TEST_TMP). */
extern const char *const st_backends[2];

/* Makes an operator (row and a certificate fingerprint) directly in the database. */
void st_operator(st_env *env, const char *name, uint8_t fp[PV_SHA256_LEN]);

/* Calls the API. fp NULL: no client certificate. body may be NULL. Returns the HTTP
 * status; *out (may be NULL) receives the parsed JSON body (NULL if not JSON). */
int st_call(st_env *env, const uint8_t *fp, const char *method, const char *path_and_query,
            const char *body, json_t **out);

/* A text dump of every row of every table (ordered), to check that a refused request
 * changed nothing. Caller frees. */
char *st_dump(st_env *env);

#endif
