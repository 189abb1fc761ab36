/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Development capability files (docs/formats/capability.md): POST
 * .../devices/{device}/capabilities signs one for a device of this tenant that is in
 * development mode, with the service's development image roots, by the capability
 * signer in the data directory (capsigner.h). Nothing is stored but the audit row: the
 * file is the grant, and the device keeps it.
 */
#include "api.h"

#include <stdlib.h>
#include <string.h>

#include "pavise/base64.h"
#include "pavise/capability.h"
#include "pavise/log.h"

#include "capsigner.h"
#include "records.h"

#define MAX_VALID_DAYS 3650

/* The body: {"capabilities": [names], "valid_days": N (optional)}. */
static int parse_body(api_ctx *c, uint32_t *caps, int64_t *valid_days)
{
    static const char *const fields[] = {"capabilities", "valid_days", NULL};
    *caps = 0;
    *valid_days = 0;
    int r = api_body_fields(c, fields);
    if (r != PV_OK) {
        return r;
    }
    json_t *list = json_object_get(c->body, "capabilities"), *v;
    if (!json_is_array(list) || json_array_size(list) == 0 ||
        json_array_size(list) > PV_CAPABILITY_MAX_NAMES) {
        return api_fail(c, 400, "bad_request",
                        "capabilities: required, an array of 1 to %d capability names",
                        PV_CAPABILITY_MAX_NAMES);
    }
    size_t i;
    json_array_foreach(list, i, v)
    {
        uint32_t bit = 0;
        if (!json_is_string(v)) {
            return api_fail(c, 400, "bad_request", "capabilities[%zu]: not a string", i);
        }
        if (pv_capability_parse_name(json_string_value(v), &bit) != PV_OK) {
            /* Only names from a fixed table are echoed; the caller's text is not. */
            return api_fail(c, 400, "bad_request",
                            "capabilities[%zu]: not a capability this service issues (known: "
                            "%s)",
                            i, pv_capability_name(PV_CAP_APP_DEVELOPMENT));
        }
        if (*caps & bit) {
            return api_fail(c, 400, "bad_request", "capabilities: %s is listed twice",
                            pv_capability_name(bit));
        }
        *caps |= bit;
    }
    json_t *days = json_object_get(c->body, "valid_days");
    if (days != NULL) {
        if (!json_is_integer(days) || json_integer_value(days) < 1 ||
            json_integer_value(days) > MAX_VALID_DAYS) {
            return api_fail(c, 400, "bad_request", "valid_days: a whole number from 1 to %d",
                            MAX_VALID_DAYS);
        }
        *valid_days = (int64_t)json_integer_value(days);
    }
    return PV_OK;
}

/* 404 unless the device is claimed in this tenant, 409 unless it is in development
 * mode. Read inside the transaction that audits the grant. */
static int check_device(api_ctx *c, const char *id)
{
    pv_err e = {0};
    store_rows *rows = NULL;
    store_val p[] = {SV_TEXT(c->tenant_id), SV_TEXT(id)};
    int r = store_exec(c->db, "SELECT development FROM devices WHERE tenant_id = $1 AND id = $2", p,
                       2, &rows, NULL, &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
    } else if (store_rows_count(rows) == 0) {
        r = api_fail(c, 404, "not_found", "device %s not found in this tenant", id);
    } else if (store_rows_int(rows, 0, 0) == 0) {
        r = api_fail(c, 409, "conflict",
                     "device %s is not in development mode; enable development on it first "
                     "(pavise device enable-development)",
                     id);
    }
    store_rows_free(rows);
    return r;
}

/* The service's development image roots, oldest first. 503 when there are none (a
 * development capability without one lets nothing run) or more than a file holds. */
static int load_dev_roots(api_ctx *c, pv_chain **out)
{
    pv_err e = {0};
    store_rows *rows = NULL;
    pv_chain *roots = NULL;
    *out = NULL;
    int r = store_exec(c->db,
                       "SELECT fingerprint, cert_pem FROM image_roots WHERE development = 1 "
                       "ORDER BY created_at, fingerprint",
                       NULL, 0, &rows, NULL, &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    size_t n = store_rows_count(rows);
    if (n == 0) {
        r = api_fail(c, 503, "unavailable",
                     "the service has no development image root, so a development capability "
                     "would let nothing run; its operator adds one with `pavise-server "
                     "image-root add --development`");
        goto out;
    }
    if (n > PV_CAPABILITY_MAX_ROOTS) {
        r = api_fail(c, 503, "unavailable",
                     "the service has %zu development image roots; a capability carries at most "
                     "%d, so its operator must remove some",
                     n, PV_CAPABILITY_MAX_ROOTS);
        goto out;
    }
    if ((roots = pv_chain_new()) == NULL) {
        r = api_fail(c, 500, "internal", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *pem = store_rows_text(rows, i, 1);
        pv_cert *cert = NULL;
        if (pem == NULL || records_parse_cert(pem, strlen(pem), &cert, &e) != PV_OK ||
            pv_chain_add(roots, cert) != PV_OK) {
            pv_cert_free(cert);
            pv_error("image root %s: stored certificate unusable: %s", store_rows_text(rows, i, 0),
                     pv_err_msg(&e));
            r = api_fail(c, 500, "internal",
                         "the server could not complete the request; see its "
                         "log");
            goto out;
        }
        pv_cert_free(cert);
    }
    *out = roots;
    roots = NULL;
    r = PV_OK;
out:
    pv_chain_free(roots);
    store_rows_free(rows);
    return r;
}

/* The signer from the data directory: 503 when none is installed or it cannot be used
 * (the service operator's to fix), 500 for anything else. */
static int load_signer(api_ctx *c, pv_key **key, pv_chain **chain)
{
    pv_err e = {0};
    int r = capsigner_load(c->srv->cfg.data_dir, key, chain, &e);
    if (r == PV_ERR_NOT_FOUND) {
        return api_fail(c, 503, "unavailable",
                        "the service has no capability signer; its operator installs one with "
                        "`pavise-server capability-signer set`");
    }
    if (r == PV_ERR_INVALID_ARG) {
        pv_warn("capability signer: %s", pv_err_msg(&e));
        return api_fail(c, 503, "unavailable",
                        "the capability signer is being replaced or is inconsistent; try again, "
                        "or ask the service's operator");
    }
    if (r != PV_OK) {
        pv_error("capability signer: %s", pv_err_msg(&e));
        return api_fail(c, 500, "internal",
                        "the server could not complete the request; see its "
                        "log");
    }
    return PV_OK;
}

static json_t *caps_json(uint32_t caps)
{
    json_t *a = json_array();
    for (uint32_t bit = 1; a != NULL && bit != 0 && bit <= PV_CAP_ALL; bit <<= 1) {
        if ((caps & bit) && json_array_append_new(a, json_string(pv_capability_name(bit))) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

static json_t *fingerprints_json(const pv_chain *roots)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < pv_chain_count(roots); i++) {
        uint8_t fp[PV_SHA256_LEN];
        char hex[2 * PV_SHA256_LEN + 1];
        pv_cert_fingerprint(pv_chain_get(roots, i), fp);
        pv_hex_encode(fp, sizeof(fp), hex, sizeof(hex));
        if (json_array_append_new(a, json_string(hex)) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

int api_device_capability(api_ctx *c)
{
    int r = PV_ERR_INTERNAL;
    pv_err e = {0};
    uint32_t caps = 0;
    int64_t valid_days = 0;
    const char *id = c->params[1];
    pv_key *key = NULL;
    pv_chain *chain = NULL, *roots = NULL;
    pv_buf *file = NULL;
    char *b64 = NULL;
    json_t *out = NULL;

    if ((r = parse_body(c, &caps, &valid_days)) != PV_OK || (r = api_tx_begin(c)) != PV_OK ||
        (r = check_device(c, id)) != PV_OK || (r = load_dev_roots(c, &roots)) != PV_OK ||
        (r = load_signer(c, &key, &chain)) != PV_OK) {
        goto out;
    }
    int64_t expires = valid_days > 0 ? c->now + valid_days * 86400 : 0;
    if ((file = pv_buf_new(PV_CAPABILITY_MAX_SIZE)) == NULL) {
        r = api_fail(c, 500, "internal", "out of memory");
        goto out;
    }
    r = pv_capability_create(key, chain, id, caps, roots, c->now, expires, file, &e);
    if (r == PV_ERR_INVALID_ARG || r == PV_ERR_TOO_LARGE) {
        /* The signer (expired, wrong usage) or the roots: the service's setup. */
        pv_warn("capability for %s: %s", id, pv_err_msg(&e));
        r = api_fail(c, 503, "unavailable", "the service cannot sign the capability: %s",
                     pv_err_msg(&e));
        goto out;
    }
    if (r != PV_OK) {
        pv_error("capability for %s: %s", id, pv_err_msg(&e));
        r = api_fail(c, 500, "internal", "the server could not complete the request; see its log");
        goto out;
    }
    uint8_t kid[PV_KEY_ID_LEN];
    char kid_hex[2 * PV_KEY_ID_LEN + 1] = "";
    if (pv_key_id(key, kid) == PV_OK) {
        pv_hex_encode(kid, sizeof(kid), kid_hex, sizeof(kid_hex));
    }
    json_t *detail =
        json_pack("{s:o, s:o, s:s, s:o}", "capabilities", caps_json(caps), "development_roots",
                  fingerprints_json(roots), "signer_key_id", kid_hex, "expires_at",
                  expires != 0 ? api_time(expires) : json_null());
    if ((r = api_audit(c, "device.capability", id, detail, &e)) != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    b64 = pv_base64_encode(pv_buf_data(file), pv_buf_len(file), PV_BASE64_STD);
    out = b64 == NULL ? NULL
                      : json_pack("{s:s, s:s, s:o, s:o, s:o}", "capability", b64, "device_id", id,
                                  "capabilities", caps_json(caps), "issued_at", api_time(c->now),
                                  "expires_at", expires != 0 ? api_time(expires) : json_null());
    if (out == NULL) {
        r = api_fail(c, 500, "internal", "out of memory");
        goto out;
    }
    /* Answered only once the audit row is committed: no grant goes unrecorded. */
    if ((r = api_tx_commit(c)) != PV_OK) {
        goto out;
    }
    r = api_ok(c, 200, out);
    out = NULL;
out:
    json_decref(out);
    free(b64);
    pv_buf_free(file);
    pv_chain_free(roots);
    pv_chain_free(chain);
    pv_key_free(key);
    return r;
}
