/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Security Service's schema, as versioned migrations. Migration i (from 0) brings
 * the schema to version i + 1. Each is SQL for both backends, statements separated by
 * ";\n", with {BLOB} and {SERIAL} for the backend's spelling (store.h). Migrations are
 * never edited once released; a change is a new migration.
 */
#ifndef PAVISE_SERVER_SCHEMA_H
#define PAVISE_SERVER_SCHEMA_H

#include <stddef.h>

extern const char *const schema_migrations[];
extern const size_t schema_migration_count;

#endif
