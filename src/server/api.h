/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The REST API: the route table (api_routes.c), the dispatcher (api.c) and the handlers
 * (api_*.c). The HTTP layer (http.c) hands each request to api_handle() with the TLS
 * client certificate's fingerprint, if any; everything after that -- routing, parsing,
 * authentication, the role check, the handler, the JSON error -- happens here.
 *
 * Conventions (docs/api/openapi.yaml is the contract):
 *  - JSON bodies, snake_case keys; unknown fields are rejected (400); a POST or PATCH
 *    body, when present, is a JSON object of at most cfg.max_body bytes; a GET or
 *    DELETE body is refused.
 *  - Errors: {"error": {"code": "<code>", "message": "<what and why>"}} with
 *      400 bad_request, 401 unauthenticated, 403 forbidden, 404 not_found,
 *      405 method_not_allowed, 409 conflict, 413 payload_too_large,
 *      415 unsupported_media_type, 500 internal, 503 unavailable.
 *  - Times: RFC 3339 UTC text ("2026-11-22T10:00:00Z").
 *  - Lists: {"items": [...], "continuation_token": "<opaque>" | null}, query
 *    parameters limit (1..1000, default 100) and continuation_token.
 *  - Path IDs: {tenant}, {product}, {device_group}, {ca_certificate}, {image} are lowercase
 *    UUIDs, {device} is 64 lowercase hex digits, {user} an operator name; a malformed
 *    ID is a 400.
 *  - An ID of another tenant (or of a tenant where the caller has no role) is a 404,
 *    never a 403, so IDs do not leak across tenants.
 *  - Every mutating call writes an audit row in the same transaction (api_audit).
 */
#ifndef PAVISE_SERVER_API_H
#define PAVISE_SERVER_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "pavise/buf.h"
#include "pavise/crypto.h"
#include "pavise/err.h"

#include "jsonw.h"
#include "server.h"
#include "store.h"

/* ---- the interface to the HTTP layer ---- */

typedef struct api_request {
    const char *method;               /* "GET", "POST", "PATCH", "DELETE", ... */
    const char *path;                 /* raw path without the query ("/v1/tenants/...") */
    const char *query;                /* raw query string after '?', or NULL */
    const uint8_t *body;              /* may be NULL when body_len is 0 */
    size_t body_len;                  /* already bounded by the HTTP layer */
    const char *content_type;         /* Content-Type header, or NULL */
    bool has_client_cert;             /* the TLS layer verified a client chain to the server CA */
    uint8_t client_fp[PV_SHA256_LEN]; /* SHA-256 of the client leaf's DER */
} api_request;

typedef struct api_response {
    int status;
    char *body; /* malloc'd (caller frees); JSON unless content_type says otherwise */
    size_t body_len;
    const char *content_type; /* static string */
    const char *route;        /* the matched pattern (static), or "unmatched", for metrics */
    char operator_name[65];   /* who made the request ("" if nobody), for the access log */
} api_response;

/* Handles one request on this worker's store connection. Never fails: every problem
 * becomes an error response. */
void api_handle(const server *srv, store *db, const api_request *req, api_response *resp);

/* ---- routes ---- */

typedef enum api_access {
    API_PUBLIC,   /* no client certificate needed */
    API_OPERATOR, /* any enrolled operator (valid, unrevoked certificate) */
    /* Device routes (docs/protocol/attestation.md): the body is CBOR (Content-Type
     * application/cbor, else 415), handed to the handler unparsed (c->req->body), and
     * errors are CBOR {1: "failed", 2: reason}, the reason being the error code with '-'
     * for '_' ("bad-request", "payload-too-large", ...). Handlers answer with
     * api_ok_cbor / api_fail_cbor. */
    API_DEVICE_PUBLIC, /* no client certificate needed */
    API_DEVICE,        /* a device's service certificate (device_service_certs, unexpired) */
    API_READER,        /* a role in {tenant}: Reader or above */
    API_CONTRIBUTOR,   /* Contributor or Administrator in {tenant} */
    API_ADMIN,         /* Administrator in {tenant} */
} api_access;

typedef enum api_role {
    API_ROLE_NONE = 0,
    API_ROLE_READER,
    API_ROLE_CONTRIBUTOR,
    API_ROLE_ADMIN
} api_role;

#define API_MAX_PARAMS 3

typedef struct api_ctx api_ctx;
typedef int (*api_handler)(api_ctx *c);

typedef struct api_route {
    const char *method;
    const char *pattern; /* "/v1/tenants/{tenant}/devices/{device}" */
    api_access access;
    api_handler fn;
    const char *const *query; /* allowed query parameters (NULL-terminated) or NULL */
} api_route;

/* Whether a route is a device route (CBOR). */
#define API_IS_CBOR(rt) ((rt)->access == API_DEVICE_PUBLIC || (rt)->access == API_DEVICE)

extern const api_route api_routes[];
extern const size_t api_route_count;

/* ---- what a handler sees ---- */

struct api_ctx {
    const server *srv;
    store *db;
    const api_request *req;
    const api_route *route;
    const char *params[API_MAX_PARAMS]; /* path captures in pattern order, validated */
    size_t nparams;
    json_t *body; /* POST/PATCH: the body object ({} when empty); else NULL */
    int64_t now;  /* pv_time_now() at the start of the request */
    /* the caller (API_OPERATOR and above) */
    char operator_id[37];
    char operator_name[65];
    /* the calling device (API_DEVICE): its ID */
    char device_id[65];
    /* the tenant ({tenant} routes) and the caller's role in it */
    const char *tenant_id;
    api_role role;
    /* the response, set through api_ok / api_fail */
    int status;
    json_t *out;
    const char *content_type; /* NULL: JSON */
    char *raw;                /* non-JSON body (metrics), malloc'd */
    size_t raw_len;
    bool tx_open; /* a write transaction from api_tx_begin is open */
};

/* Sets a successful response (status 200 or 201), taking ownership of out. PV_OK. */
int api_ok(api_ctx *c, int status, json_t *out);
/* The same with a body written by a jw (jsonw.h), taken from it; a writer that failed
 * gives 500 (the writer is freed either way). PV_OK, or the error. */
int api_ok_jw(api_ctx *c, int status, jw *w);
/* The most a jw-written response may hold. */
#define API_MAX_RESPONSE ((size_t)64 << 20)

/* A CBOR response (device routes): takes the bytes of out (a pv_buf, freed either way).
 * PV_OK; a 500 (and its code) when out is NULL or empty. */
int api_ok_cbor(api_ctx *c, int status, pv_buf *out);
/* A CBOR error {1: "failed", 2: reason} with this status. Returns PV_ERR_INVALID_ARG. */
int api_fail_cbor(api_ctx *c, int status, const char *reason);

/* Sets an error response and returns PV_ERR_INVALID_ARG, so handlers write
 * `return api_fail(c, 404, "not_found", "device %s not found", id);`. */
int api_fail(api_ctx *c, int status, const char *code, const char *fmt, ...) PV_PRINTF(4, 5);

/* Maps a store failure: PV_ERR_EXISTS -> 409 conflict with `what` ("a product named X
 * already exists"); anything else -> 500 internal with a generic message (the details
 * go to the log, never to the client). Returns the code. */
int api_store_fail(api_ctx *c, int code, const pv_err *e, const char *what);

/* Body helpers: 400 bad_request naming the field on a wrong type, a missing required
 * field, a value too long or an unknown field. */
int api_body_fields(api_ctx *c, const char *const *allowed);
int api_body_string(api_ctx *c, const char *key, bool required, size_t max_len, const char **out);
int api_body_bool(api_ctx *c, const char *key, bool required, bool *out);

/* A query parameter's value (percent-decoded, at most 256 bytes), or NULL. */
const char *api_query(api_ctx *c, const char *name);

/* Pagination: reads limit and continuation_token (400 if malformed). The token is the
 * sort key of the last item returned, opaque to clients; *after is "" for the first
 * page. Handlers query limit + 1 rows ordered by that key; api_page_done builds
 * {"items": items, "continuation_token": next} where next is the key of the last item
 * kept when there were more rows, else null. */
int api_page(api_ctx *c, size_t *limit, const char **after);
int api_page_done(api_ctx *c, json_t *items, const char *next_key);
/* The same for a page written with a jw: api_page_begin_jw writes up to the items'
 * array, the caller writes the items, api_page_done_jw closes the page and answers
 * (as api_ok_jw). */
void api_page_begin_jw(jw *w);
int api_page_done_jw(api_ctx *c, jw *w, const char *next_key);

/* Transactions of mutating handlers, one pattern for all: api_tx_begin opens a write
 * transaction (store_begin(write = true)); the handler makes its changes and its
 * api_audit row, then api_tx_commit. A handler that returns without committing (any
 * failure path) needs no cleanup: the dispatcher rolls the open transaction back. Both
 * set a 500/503 error response themselves when the store fails and return its code. */
int api_tx_begin(api_ctx *c);
int api_tx_commit(api_ctx *c);

/* Writes an audit row for this request (tenant c->tenant_id, operator c->operator_name,
 * time c->now); detail is stolen (may be NULL for {}). Call inside the transaction of
 * the change it records. */
int api_audit(api_ctx *c, const char *action, const char *target, json_t *detail, pv_err *e);

/* JSON helpers. */
json_t *api_time(int64_t t); /* RFC 3339 string */
/* A new random UUID into out; 500 internal (and the code) when there is no randomness. */
int api_new_id(api_ctx *c, char out[37]);

/* Checks */
bool api_valid_uuid(const char *s);
bool api_valid_device_id(const char *s);
/* Operator and tenant names: 1..64 of [A-Za-z0-9._@-] for users; tenant, product and
 * group names 1..64 printable characters without control characters. */
bool api_valid_user_name(const char *s);
bool api_valid_display_name(const char *s);

/* ---- handlers (api_*.c) ---- */

/* api_system.c: */
int api_healthz(api_ctx *c);
int api_metrics(api_ctx *c);
/* api_operators.c: enrollment, the caller, tenants, roles. */
int api_enroll(api_ctx *c);
int api_me(api_ctx *c);
int api_tenant_list(api_ctx *c);
int api_tenant_create(api_ctx *c);
int api_tenant_show(api_ctx *c);
int api_role_list(api_ctx *c);
int api_role_add(api_ctx *c);
int api_role_delete(api_ctx *c);
int api_audit_list(api_ctx *c);
/* api_devices.c: claiming and devices. */
int api_device_list(api_ctx *c);
int api_device_claim(api_ctx *c);
int api_device_show(api_ctx *c);
int api_device_update(api_ctx *c);
int api_device_enable_development(api_ctx *c);
int api_device_enable_cloud_test(api_ctx *c);
int api_device_release(api_ctx *c);
/* api_products.c: products and device groups. */
int api_product_list(api_ctx *c);
int api_product_create(api_ctx *c);
int api_product_show(api_ctx *c);
int api_product_update(api_ctx *c);
int api_product_delete(api_ctx *c);
int api_group_list(api_ctx *c);
int api_group_create(api_ctx *c);
int api_group_show(api_ctx *c);
int api_group_update(api_ctx *c);
int api_group_delete(api_ctx *c);
/* api_attest.c: attestation (docs/protocol/attestation.md). */
int api_attest_challenge(api_ctx *c);
int api_attest(api_ctx *c);
int api_device_attestation(api_ctx *c);
/* api_ca.c: the tenant's CA certificates. */
int api_ca_list(api_ctx *c);
int api_ca_show(api_ctx *c);
int api_ca_chain(api_ctx *c);
int api_ca_rotate(api_ctx *c);
int api_ca_proof(api_ctx *c);
/* api_images.c: the tenant's application images. */
int api_image_list(api_ctx *c);
int api_image_create(api_ctx *c);
int api_image_show(api_ctx *c);
int api_image_revoke(api_ctx *c);
/* api_capability.c: development capability files (docs/formats/capability.md). */
int api_device_capability(api_ctx *c);

#endif
