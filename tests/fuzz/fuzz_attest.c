/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Device requests from untrusted bytes, through api_handle on an in-memory SQLite store:
 * the CBOR body of POST /v1/attestation (the request map, the evidence's COSE_Sign1 and
 * claims, the quote fields, the DER CSR) and of POST /v1/attestation/challenge, with the
 * verifier's checks behind them as far as forged input can reach (the nonce's MAC stops
 * it before the database, which is the point).
 *
 * Input: byte 0 picks the route (bit 0: challenge or attestation) and the content type
 * (bit 1: application/cbor or not); the rest is the body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/platform.h"

#include "api.h"
#include "metrics.h"
#include "server.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static server srv;
static store *db;

static void setup(void)
{
    pv_err e;
    srv.cfg.max_body = SERVER_MAX_BODY;
    srv.metrics = metrics_new();
    memset(srv.nonce_key, 0x42, sizeof(srv.nonce_key));
    pv_time_set_override(1900000000);
    if (store_open("sqlite::memory:", &db, &e) != PV_OK || store_migrate(db, NULL, &e) != PV_OK) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (db == NULL) {
        setup();
    }
    if (size == 0) {
        return 0;
    }
    api_request req = {
        .method = "POST",
        .path = (data[0] & 1) != 0 ? "/v1/attestation/challenge" : "/v1/attestation",
        .body = data + 1,
        .body_len = size - 1,
        .content_type = (data[0] & 2) != 0 ? "text/plain" : "application/cbor",
    };
    api_response resp = {0};
    api_handle(&srv, db, &req, &resp);
    free(resp.body);
    return 0;
}
