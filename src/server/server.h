/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavise-server: shared state. A `server` is built once at start and read-only while
 * the workers run; each worker thread owns an event base, an evhttp, a TLS context and
 * a store connection (store.h), so request handling takes no locks except in metrics.
 */
#ifndef PAVISE_SERVER_SERVER_H
#define PAVISE_SERVER_SERVER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/err.h"

#include "ca.h"
#include "nonce.h"
#include "store.h"

#define SERVER_MAX_WORKERS  64
#define SERVER_DEFAULT_PORT 8443
#define SERVER_MAX_BODY     (64 * 1024) /* bytes; larger requests get 413 */

typedef struct server_config {
    char data_dir[PATH_MAX]; /* --data: keys, CA material, server.conf, default database */
    char listen[256];        /* --listen HOST:PORT (default 127.0.0.1:8443) */
    char db_url[1024]; /* --db sqlite:PATH | postgres:CONNINFO (default sqlite:DATA/pavise.db) */
    int workers;       /* --workers N (default: number of online cores) */
    size_t max_body;   /* request body limit in bytes */
    int64_t operator_cert_days; /* lifetime of operator client certificates (default 90) */
    int64_t invite_ttl;         /* lifetime of enrollment codes in seconds (default 24 h) */
    int64_t client_cert_hours;  /* attestation.client_cert_hours: devices' client certificates
                                   (1..168, default 24; 0 means the default) */
    char log_level[16];         /* --log-level (default info) */
    bool log_json;              /* --log-json: one JSON object per line */
} server_config;

typedef struct metrics metrics; /* metrics.h */

typedef struct server {
    server_config cfg;
    server_ca *ca;                    /* CA and server TLS material from DATA */
    metrics *metrics;                 /* shared by all workers */
    uint8_t nonce_key[NONCE_KEY_LEN]; /* DATA/nonce.key: attestation nonces (nonce.h) */
} server;

#endif
