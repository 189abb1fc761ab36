/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The operator commands' side of pavise-server: the configuration directory, an HTTPS
 * client on libcurl, and the helpers every server command shares (the session, calls
 * that turn error responses into messages and exit codes, lists that follow continuation
 * tokens, and the resolution of names to IDs).
 *
 * TLS: https:// only; peer and host name verification are always on (there is no option
 * to turn them off); the only trust anchor is the pinned server CA (ca.crt), or, while
 * logging in with --fingerprint, the self-signed CA certificate in the chain the server
 * presents whose SHA-256 equals the pin. TLS 1.2 at least.
 *
 * Configuration directory: $PAVISE_CONFIG_DIR, else $XDG_CONFIG_HOME/pavise, else
 * ~/.config/pavise (created 0700). It holds config.json {"server": URL, "tenant": ID}
 * (0600), operator.key (0600), operator.crt and ca.crt.
 */
#ifndef PAVISE_CLI_CLIENT_H
#define PAVISE_CLI_CLIENT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cli.h"
#include "pavise/crypto.h"
#include "pavise/err.h"
#include "pavise/x509.h"

#define CLI_MAX_RESPONSE   (8 * 1024 * 1024) /* bytes of one response body */
#define CLI_MAX_URL        1024
#define CLI_MAX_LIST_ITEMS 100000 /* a list longer than this needs --limit */

/* File names inside the configuration directory. */
#define CLI_CONFIG_FILE "config.json"
#define CLI_KEY_FILE    "operator.key"
#define CLI_CERT_FILE   "operator.crt"
#define CLI_CA_FILE     "ca.crt"

/* Options most server commands share. */
#define CLI_OPT_SERVER                                                                             \
    {                                                                                              \
        "server", "URL", false, "the server (default: the one you logged in to)"                   \
    }
#define CLI_OPT_TENANT                                                                             \
    {                                                                                              \
        "tenant", "ID|NAME", false, "the tenant (default: the selected one)"                       \
    }
#define CLI_OPT_LIMIT                                                                              \
    {                                                                                              \
        "limit", "N", false, "show at most the first N items"                                      \
    }
#define CLI_OPT_END                                                                                \
    {                                                                                              \
        NULL, NULL, false, NULL                                                                    \
    }

/* ---- configuration ---- */

typedef struct cli_config {
    char dir[PATH_MAX];
    char server[CLI_MAX_URL]; /* "" when config.json does not exist */
    char tenant[37];          /* "" when no tenant is selected */
} cli_config;

/* The configuration directory's path (see above) into out. PV_ERR_INVALID_ARG when no
 * variable gives one, PV_ERR_TOO_LARGE when it does not fit. */
int cli_config_dir(char *out, size_t size, pv_err *e);

/* Creates the directory (and missing parents) when it does not exist; the last
 * component gets mode 0700. PV_ERR_IO. */
int cli_config_mkdir(const char *dir, pv_err *e);

/* Path of a file in the configuration directory. PV_ERR_TOO_LARGE. */
int cli_config_path(const cli_config *cfg, const char *name, char *out, size_t size, pv_err *e);

/* Loads dir/config.json into cfg (cfg->dir = dir). A missing file is PV_OK with an empty
 * server (not logged in). A damaged one is PV_ERR_FORMAT naming the file and the
 * problem (unknown field, wrong type, not an https URL, not a tenant ID). */
int cli_config_load(const char *dir, cli_config *cfg, pv_err *e);

/* Writes cfg->dir/config.json atomically, mode 0600. */
int cli_config_save(const cli_config *cfg, pv_err *e);

/* Checks a server URL: https:// (case-insensitive) with a host, no user name, query or
 * fragment, no control characters or spaces; writes it without a trailing '/' into
 * out. PV_ERR_USAGE with the reason (an http:// URL is refused). */
int cli_check_server_url(const char *url, char *out, size_t size, pv_err *e);

/* Parses a SHA-256 fingerprint: 64 hex digits, case-insensitive, optionally separated
 * by colons between bytes and optionally prefixed by "SHA256:". PV_ERR_USAGE. */
int cli_parse_fingerprint(const char *s, uint8_t out[PV_SHA256_LEN], pv_err *e);

/* ---- the HTTPS client ---- */

typedef struct cli_tls {
    const char *ca_file;     /* the only trust anchor (PEM); NULL with pin */
    const uint8_t *pin;      /* SHA-256 of the server's CA certificate; NULL with ca_file */
    const char *client_cert; /* the operator's certificate (PEM), or NULL */
    const char *client_key;  /* its private key (PEM), or NULL */
} cli_tls;

typedef struct cli_client cli_client;

/* A client for the server at base_url (already checked by cli_check_server_url).
 * PV_ERR_NOMEM, PV_ERR_INTERNAL (libcurl could not be set up). */
int cli_client_new(const char *base_url, const cli_tls *tls, cli_client **out, pv_err *e);
void cli_client_free(cli_client *c);

/* Sends method path (which starts with '/', already percent-encoded) with body as JSON
 * (NULL: none), and returns the HTTP status and the parsed JSON response (NULL for an
 * empty body). Transport failures only: PV_ERR_IO (cannot connect, timeout, TLS),
 * PV_ERR_UNTRUSTED (the server's certificate does not verify), PV_ERR_TOO_LARGE (more
 * than CLI_MAX_RESPONSE), PV_ERR_FORMAT (the body is not JSON). Any HTTP status is PV_OK. */
int cli_client_request(cli_client *c, const char *method, const char *path, const json_t *body,
                       long *status, json_t **out, pv_err *e);

/* In pin mode after a successful request: the CA certificate that matched the pin (a new
 * reference). PV_ERR_NOT_FOUND before that. */
int cli_client_pinned_ca(const cli_client *c, pv_cert **out, pv_err *e);

/* Turns a non-2xx response into an error: "<server's message> (HTTP 403 forbidden)"
 * with CLI_ERR_DENIED (401, 403), CLI_ERR_NOT_FOUND (404), CLI_ERR_CONFLICT (409),
 * PV_ERR_FORMAT (other 4xx: input rejected) or PV_ERR_IO (5xx and anything else). */
int cli_http_error(long status, const json_t *body, pv_err *e);

/* ---- sessions of server commands ---- */

typedef struct cli_session {
    cli_config cfg;
    char server[CLI_MAX_URL]; /* cfg.server, or --server */
    cli_client *client;
    char tenant_id[37]; /* set when the session was opened with need_tenant */
} cli_session;

/* Opens a session for a command: loads the configuration, refuses to run without a
 * login (CLI_ERR_DENIED "not logged in"), applies --server, checks the key file's
 * mode, and with need_tenant resolves --tenant (ID or name) or the selected tenant
 * (PV_ERR_USAGE "no tenant selected" when neither). The command's options named
 * "server" and "tenant" are read when it has them. */
int cli_session_open(const cli_cmd *cmd, const cli_args *args, bool need_tenant, cli_session *s,
                     pv_err *e);
void cli_session_close(cli_session *s);

/* One call: 2xx gives the JSON body in *out (may be NULL when out is NULL: ignored);
 * anything else the error of cli_http_error. status may be NULL. */
int cli_call(cli_session *s, const char *method, const char *path, const json_t *body, long *status,
             json_t **out, pv_err *e);

/* GETs a resource that is not JSON (a PEM or PKCS#7 download): on 2xx, *body (caller
 * frees; NUL-terminated after len bytes) and *len; anything else the error of
 * cli_http_error. Transport failures as cli_client_request. */
int cli_call_raw(cli_session *s, const char *path, uint8_t **body, size_t *len, pv_err *e);

/* GETs a list, following continuation tokens until the end or until limit items
 * (0: no limit, but at most CLI_MAX_LIST_ITEMS). path may already hold a query. */
int cli_list(cli_session *s, const char *path, size_t limit, json_t **items, pv_err *e);

/* Formats a path: each '%' in fmt takes the next const char * argument, percent-encoded
 * (everything but A-Z a-z 0-9 - . _ ~). PV_ERR_TOO_LARGE. */
int cli_path(char *out, size_t size, pv_err *e, const char *fmt, ...);

/* Name resolution: an ID is used as it is (lowercased); anything else is looked up by
 * name. CLI_ERR_NOT_FOUND when nothing has that name. what names the option in messages. */
int cli_resolve_tenant(cli_session *s, const char *value, char out[37], pv_err *e);
int cli_resolve_product(cli_session *s, const char *value, char out[37], pv_err *e);
/* A device group: its ID or "PRODUCT/GROUP" (product by ID or name). */
int cli_resolve_group(cli_session *s, const char *value, char out[37], pv_err *e);
/* A device ID: 64 hex digits, lowercased into out. PV_ERR_USAGE. */
int cli_check_device_id(const char *value, char out[65], pv_err *e);

/* Parses --limit (1..CLI_MAX_LIST_ITEMS); absent: 0. */
int cli_get_limit(const cli_cmd *cmd, const cli_args *args, size_t *limit, pv_err *e);

bool cli_is_uuid(const char *s);

/* A string field of a JSON object, or "" (never NULL). */
const char *cli_str(const json_t *obj, const char *key);

#endif
