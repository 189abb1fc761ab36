/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavise-server's configuration: built-in defaults, then DATA/server.conf (or --config),
 * then command-line flags, each overriding the one before. The file is a JSON object
 * with the keys listen, db, workers, max_body_bytes, operator_cert_days,
 * enrollment_code_hours, log_level, log_json and attestation.client_cert_hours; an
 * unknown key or a value of the wrong type is refused with the key named.
 */
#ifndef PAVISE_SERVER_CONFIG_H
#define PAVISE_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "pavise/err.h"

#include "server.h"

#define CONFIG_FILE                      "server.conf"
#define CONFIG_MAX_FILE                  (64 * 1024)
#define CONFIG_DEFAULT_LISTEN            "127.0.0.1:8443"
#define CONFIG_DEFAULT_DAYS              90
#define CONFIG_DEFAULT_TTL               (24 * 3600)
#define CONFIG_MIN_BODY                  1024
#define CONFIG_MAX_BODY                  (16 * 1024 * 1024)
#define CONFIG_MAX_CERT_DAYS             3650
#define CONFIG_MAX_CODE_HOURS            (30 * 24)
#define CONFIG_DEFAULT_CLIENT_CERT_HOURS 24
#define CONFIG_MAX_CLIENT_CERT_HOURS     168

/* Fills cfg with the defaults for data_dir: listen 127.0.0.1:8443, db
 * sqlite:<absolute DATA>/pavise.db, one worker per online core, body limit
 * SERVER_MAX_BODY, operator certificates for 90 days, codes for 24 hours, log level info.
 * PV_ERR_INVALID_ARG (path too long); PV_ERR_NOT_FOUND / PV_ERR_IO (DATA cannot be
 * resolved). */
int config_defaults(server_config *cfg, const char *data_dir, pv_err *e);

/* Reads a configuration file over cfg. When required is false, a missing file is not
 * an error. PV_ERR_FORMAT (naming the key), PV_ERR_NOT_FOUND, PV_ERR_IO. */
int config_load_file(server_config *cfg, const char *path, bool required, pv_err *e);

/* The default database URL for a data directory: "sqlite:<absolute DATA>/pavise.db". */
int config_default_db(const char *data_dir, char *out, size_t size, pv_err *e);

/* The lifetime of devices' client certificates in seconds: attestation.client_cert_hours,
 * or the default (24 h) when unset (0). Also the overlap of a tenant CA rotation. */
int64_t config_client_cert_seconds(const server_config *cfg);

/* Parses a worker count (1..SERVER_MAX_WORKERS). PV_ERR_USAGE naming what. */
int config_parse_workers(const char *s, const char *what, int *out, pv_err *e);

#endif
