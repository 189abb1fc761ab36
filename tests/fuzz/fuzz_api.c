/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Whole API requests from untrusted bytes, through api_handle on an in-memory SQLite
 * store: routing and percent-decoding of the path, the query string, pagination tokens,
 * the JSON body and every handler behind them, as an Administrator of one tenant (so the
 * handlers run, not only the refusals) or with no certificate.
 *
 * Input: byte 0 picks the method (bits 0-1) and whether the caller presents the
 * operator's certificate (bit 2); then the request target ("/path?query") up to the
 * first '\n'; the rest is the body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "metrics.h"
#include "server.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TENANT "3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"

static server srv;
static store *db;
static uint8_t fp[PV_SHA256_LEN];

static void setup(void)
{
    pv_err e;
    char hex[2 * PV_SHA256_LEN + 1];
    srv.cfg.max_body = SERVER_MAX_BODY;
    srv.cfg.operator_cert_days = 90;
    srv.cfg.invite_ttl = 86400;
    srv.metrics = metrics_new();
    memset(fp, 0x11, sizeof(fp));
    pv_hex_encode(fp, sizeof(fp), hex, sizeof(hex));
    if (store_open("sqlite::memory:", &db, &e) != PV_OK || store_migrate(db, NULL, &e) != PV_OK) {
        abort();
    }
    store_val po[] = {SV_TEXT("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"), SV_TEXT("fuzz")};
    store_val pc[] = {SV_TEXT(hex), SV_TEXT("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")};
    store_val pt[] = {SV_TEXT(TENANT), SV_TEXT("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")};
    if (store_exec(db, "INSERT INTO operators (id, name, created_at) VALUES ($1, $2, 0)", po, 2,
                   NULL, NULL, &e) != PV_OK ||
        store_exec(db,
                   "INSERT INTO operator_certs (fingerprint, operator_id, serial, not_after, "
                   "created_at) VALUES ($1, $2, '01', 9000000000, 0)",
                   pc, 2, NULL, NULL, &e) != PV_OK ||
        store_exec(db,
                   "INSERT INTO tenants (id, name, created_at, created_by) VALUES ($1, 'T', 0, $2)",
                   pt, 2, NULL, NULL, &e) != PV_OK ||
        store_exec(db,
                   "INSERT INTO roles (tenant_id, operator_id, role, created_at) "
                   "VALUES ($1, $2, 'Administrator', 0)",
                   pt, 2, NULL, NULL, &e) != PV_OK) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "POST", "PATCH", "DELETE"};
    if (db == NULL) {
        setup();
    }
    if (size == 0) {
        return 0;
    }
    const uint8_t *nl = memchr(data + 1, '\n', size - 1);
    size_t tlen = nl != NULL ? (size_t)(nl - (data + 1)) : size - 1;
    char *target = malloc(tlen + 1);
    if (target == NULL) {
        return 0;
    }
    memcpy(target, data + 1, tlen);
    target[tlen] = '\0';
    char *query = strchr(target, '?');
    if (query != NULL) {
        *query++ = '\0';
    }
    api_request req = {
        .method = methods[data[0] & 3],
        .path = target,
        .query = query,
        .body = nl != NULL ? nl + 1 : NULL,
        .body_len = nl != NULL ? size - tlen - 2 : 0,
        .content_type = "application/json",
        .has_client_cert = (data[0] & 4) != 0,
    };
    memcpy(req.client_fp, fp, sizeof(fp));
    api_response resp = {0};
    api_handle(&srv, db, &req, &resp);
    free(resp.body);
    free(target);
    return 0;
}
