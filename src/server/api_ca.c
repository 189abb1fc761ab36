/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tenant's CA certificates (tenant_ca.h, docs/protocol/attestation.md §3): list,
 * show, the chain relying parties install (PEM or PKCS#7), rotation and proof of
 * possession. Every query is scoped by the caller's tenant, so another tenant's CA ID
 * is a 404.
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include "pavise/log.h"

#include "ca.h"
#include "config.h"
#include "tenant_ca.h"

#define CHAIN_PEM_TYPE   "application/x-pem-file"
#define CHAIN_PKCS7_TYPE "application/pkcs7-mime"

static int oom(api_ctx *c)
{
    return api_fail(c, 500, "internal", "out of memory");
}

/* A tenant_ca function's failure as a response. */
static int ca_fail(api_ctx *c, int code, const pv_err *e)
{
    switch (code) {
    case PV_ERR_NOT_FOUND:
        return api_fail(c, 404, "not_found", "%s", pv_err_msg(e));
    case PV_ERR_EXPIRED:
    case PV_ERR_TOO_LARGE:
        return api_fail(c, 409, "conflict", "%s", pv_err_msg(e));
    default:
        /* A sealed key that does not open, a damaged row, the database: the details go
         * to the log (api_store_fail), never to the client. */
        return api_store_fail(c, code, e, NULL);
    }
}

static json_t *ca_json(const tenant_ca_info *ca, const char *tenant_id, bool with_pem)
{
    json_t *o = json_object();
    if (o == NULL || json_object_set_new(o, "id", json_string(ca->id)) != 0 ||
        json_object_set_new(o, "tenant_id", json_string(tenant_id)) != 0 ||
        json_object_set_new(o, "fingerprint", json_string(ca->fingerprint)) != 0 ||
        json_object_set_new(o, "subject", json_string(ca->subject)) != 0 ||
        json_object_set_new(o, "status", json_string(ca->status)) != 0 ||
        json_object_set_new(o, "not_before", api_time(ca->not_before)) != 0 ||
        json_object_set_new(o, "not_after", api_time(ca->not_after)) != 0 ||
        json_object_set_new(o, "created_at", api_time(ca->created_at)) != 0 ||
        json_object_set_new(o, "retire_after",
                            ca->retire_after != 0 ? api_time(ca->retire_after) : json_null()) !=
            0 ||
        (with_pem && json_object_set_new(o, "certificate", json_string(ca->cert_pem)) != 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int api_ca_list(api_ctx *c)
{
    size_t limit = 0, count = 0;
    const char *after = NULL;
    tenant_ca_info *list = NULL;
    json_t *items = NULL;
    char next[64] = "";
    pv_err e;
    int r = PV_ERR_INTERNAL;

    pv_err_clear(&e);
    if ((r = api_page(c, &limit, &after)) != PV_OK) {
        return r;
    }
    r = tenant_ca_list(c->db, c->tenant_id, c->now, after, limit + 1, &list, &count, &e);
    if (r == PV_ERR_FORMAT && after[0] != '\0') {
        return api_fail(c, 400, "bad_request",
                        "query parameter 'continuation_token' is not a token this server "
                        "returned");
    }
    if (r != PV_OK) {
        return ca_fail(c, r, &e);
    }
    items = json_array();
    size_t keep = count > limit ? limit : count;
    for (size_t i = 0; items != NULL && i < keep; i++) {
        if (json_array_append_new(items, ca_json(&list[i], c->tenant_id, false)) != 0) {
            json_decref(items);
            items = NULL;
        }
    }
    if (count > limit && keep > 0) {
        tenant_ca_key(&list[keep - 1], next);
    }
    r = items != NULL ? api_page_done(c, items, next[0] != '\0' ? next : NULL) : oom(c);
    for (size_t i = 0; i < count; i++) {
        tenant_ca_info_clear(&list[i]);
    }
    free(list);
    return r;
}

int api_ca_show(api_ctx *c)
{
    tenant_ca_info ca;
    pv_err e;
    pv_err_clear(&e);
    int r = tenant_ca_get(c->db, c->tenant_id, c->params[1], c->now, &ca, &e);
    if (r != PV_OK) {
        return ca_fail(c, r, &e);
    }
    r = api_ok(c, 200, ca_json(&ca, c->tenant_id, true));
    tenant_ca_info_clear(&ca);
    return r;
}

/* Sets a non-JSON 200 response, taking body (malloc'd). */
static int raw_ok(api_ctx *c, uint8_t *body, size_t len, const char *type)
{
    json_decref(c->out);
    c->out = NULL;
    free(c->raw);
    c->raw = (char *)body;
    c->raw_len = len;
    c->content_type = type;
    c->status = 200;
    return PV_OK;
}

/* A "certs-only" PKCS#7 SignedData (RFC 2315 §9.1 with no signers and no content, as
 * `openssl crl2pkcs7 -nocrl` makes), DER. */
static int chain_pkcs7(const pv_chain *ch, uint8_t **out, size_t *len)
{
    int r = PV_ERR_CRYPTO;
    STACK_OF(X509) *certs = sk_X509_new_null();
    PKCS7 *p7 = NULL;
    unsigned char *der = NULL;

    *out = NULL;
    *len = 0;
    for (size_t i = 0; certs != NULL && i < pv_chain_count(ch); i++) {
        if (sk_X509_push(certs, pv_cert_x509(pv_chain_get(ch, i))) <= 0) {
            goto out;
        }
    }
    /* No signer and PKCS7_PARTIAL: nothing is signed; PKCS7_DETACHED: no content. */
    p7 = certs != NULL ? PKCS7_sign(NULL, NULL, certs, NULL, PKCS7_PARTIAL | PKCS7_DETACHED) : NULL;
    int n = p7 != NULL ? i2d_PKCS7(p7, &der) : -1;
    if (n <= 0) {
        goto out;
    }
    *out = malloc((size_t)n);
    if (*out == NULL) {
        r = PV_ERR_NOMEM;
        goto out;
    }
    memcpy(*out, der, (size_t)n);
    *len = (size_t)n;
    r = PV_OK;
out:
    OPENSSL_free(der);
    PKCS7_free(p7);
    sk_X509_free(certs); /* the certificates belong to the chain */
    return r;
}

int api_ca_chain(api_ctx *c)
{
    const char *format = api_query(c, "format");
    pv_chain *ch = NULL;
    pv_buf *b = NULL;
    uint8_t *body = NULL;
    size_t len = 0;
    pv_err e;
    int r = PV_ERR_INTERNAL;

    pv_err_clear(&e);
    if (format == NULL) {
        format = "pem";
    }
    if (strcmp(format, "pem") != 0 && strcmp(format, "pkcs7") != 0) {
        return api_fail(c, 400, "bad_request", "query parameter 'format': expected pem or pkcs7");
    }
    r = tenant_ca_chain(c->db, c->tenant_id, c->now, &ch, &e);
    if (r != PV_OK) {
        return ca_fail(c, r, &e);
    }
    if (strcmp(format, "pkcs7") == 0) {
        r = chain_pkcs7(ch, &body, &len);
        if (r != PV_OK) {
            pv_error("tenant %s: encoding the CA chain as PKCS#7 failed", c->tenant_id);
            r = api_fail(c, 500, "internal", "the chain could not be encoded");
            goto out;
        }
        r = raw_ok(c, body, len, CHAIN_PKCS7_TYPE);
        goto out;
    }
    b = pv_buf_new(PV_PEM_MAX_FILE);
    if (b == NULL || pv_chain_to_pem(ch, b) != PV_OK) {
        r = oom(c);
        goto out;
    }
    body = pv_buf_steal(b, &len);
    r = body != NULL ? raw_ok(c, body, len, CHAIN_PEM_TYPE) : oom(c);
out:
    pv_buf_free(b);
    pv_chain_free(ch);
    return r;
}

int api_ca_rotate(api_ctx *c)
{
    static const char *const fields[] = {NULL};
    tenant_ca_info ca;
    pv_err e;
    int r = PV_ERR_INTERNAL;

    memset(&ca, 0, sizeof(ca));
    pv_err_clear(&e);
    if ((r = api_body_fields(c, fields)) != PV_OK || (r = api_tx_begin(c)) != PV_OK) {
        return r;
    }
    int64_t overlap = config_client_cert_seconds(&c->srv->cfg);
    r = tenant_ca_rotate(c->db, ca_tenant_kek(c->srv->ca), c->tenant_id, c->now, overlap, &ca, &e);
    if (r != PV_OK) {
        return ca_fail(c, r, &e);
    }
    json_t *detail = json_pack("{s:s,s:o}", "fingerprint", ca.fingerprint, "previous_retire_after",
                               api_time(c->now + overlap));
    r = api_audit(c, "ca_certificate.rotate", ca.id, detail, &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if ((r = api_tx_commit(c)) != PV_OK) {
        goto out;
    }
    r = api_ok(c, 201, ca_json(&ca, c->tenant_id, true));
out:
    tenant_ca_info_clear(&ca);
    return r;
}

int api_ca_proof(api_ctx *c)
{
    static const char *const fields[] = {"verification_code", NULL};
    const char *code = NULL;
    const char *ca_id = c->params[1];
    char *pem = NULL;
    pv_err e;
    int r = PV_ERR_INTERNAL;

    pv_err_clear(&e);
    if ((r = api_body_fields(c, fields)) != PV_OK ||
        (r = api_body_string(c, "verification_code", true, 256, &code)) != PV_OK) {
        return r;
    }
    if (!tenant_ca_valid_code(code)) {
        return api_fail(c, 400, "bad_request",
                        "body: field 'verification_code': 1 to %d of A-Z a-z 0-9 -",
                        TENANT_CA_CODE_MAX);
    }
    /* A write transaction only for the audit row, which must not exist without the
     * certificate it records (nor the certificate leave without its row). */
    if ((r = api_tx_begin(c)) != PV_OK) {
        return r;
    }
    r = tenant_ca_proof(c->db, ca_tenant_kek(c->srv->ca), c->tenant_id, ca_id, code, c->now, &pem,
                        &e);
    if (r != PV_OK) {
        return ca_fail(c, r, &e);
    }
    r = api_audit(c, "ca_certificate.proof", ca_id, json_pack("{s:s}", "verification_code", code),
                  &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if ((r = api_tx_commit(c)) != PV_OK) {
        goto out;
    }
    r = api_ok(c, 201,
               json_pack("{s:s,s:s,s:s,s:o}", "ca_certificate_id", ca_id, "verification_code", code,
                         "certificate", pem, "expires_at",
                         api_time(c->now + TENANT_CA_PROOF_TIME)));
out:
    free(pem);
    return r;
}
