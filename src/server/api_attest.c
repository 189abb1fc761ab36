/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Attestation (docs/protocol/attestation.md): the challenge, the verifier and the
 * device's view of its last result. The verifier runs the checks of §4 in their order
 * and records the first that fails; identity proven earns a service certificate from
 * the service CA, policy passed too a client certificate from the tenant's CA.
 *
 * Cost: each attestation reads the device in one query (record, factory, claim and
 * whether the nonce was spent), each measured image in one, the tenant's CA and chain in
 * one, and writes the spent nonce, the result and the service certificate in one write
 * transaction. The crypto is two verifies (evidence, CSR) and two signatures (the two
 * certificates), plus the quote's verify on TPM devices.
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "pavise/cbor.h"
#include "pavise/evidence.h"
#include "pavise/log.h"
#include "pavise/mfgrec.h"
#include "pavise/platform.h"
#include "pavise/quote.h"
#include "pavise/uuid.h"
#include "pavise/x509.h"

#include "nonce.h"
#include "tenant_ca.h"

#define ATTEST_MAX_BODY       (64 * 1024)
#define ATTEST_MAX_CSR        4096
#define SERVICE_CERT_LIFETIME (48 * 3600)
#define DEFAULT_CLIENT_HOURS  24
#define ATTEST_MAX_LOG_IMAGES PV_EVIDENCE_MAX_IMAGES
/* 2.25.<UUID 4d2b8d5e-3c1a-4f7e-9b0a-6e1f2c3d4a5b as an integer> (attestation.md §2) */
/* Attestations per worker between sweeps of expired spent nonces. */
#define NONCE_SWEEP_EVERY 256
#define ATTEST_EXT_OID    "2.25.102576691726157819091001912716521458267"

/* Request keys (§1.2) and response keys (§1.5). */
enum { REQ_EVIDENCE = 1, REQ_QUOTE = 2, REQ_QUOTE_SIG = 3, REQ_CSR = 4 };

/* One image the log measured, and what the service has for it. */
typedef struct measured {
    uint8_t digest[PV_SHA256_LEN];
    bool os; /* an os-image event (else app-image) */
    char id[37], component_id[37];
    char kind[8];
    bool development;
    bool claimed; /* listed by the images claim */
} measured;

/* One attestation's state. */
typedef struct attest {
    api_ctx *c;
    /* the request */
    cbor_item_t *body;
    const uint8_t *ev_bytes, *quote, *quote_sig, *csr;
    size_t ev_len, quote_len, quote_sig_len, csr_len;
    pv_evidence ev;
    pv_cose_sign1 *cose;
    bool ev_ok;
    pv_key *tls_key; /* the CSR's key, when its signature verified */
    int csr_result;  /* pv_csr_verify_der's code */
    char nonce_hash[2 * PV_SHA256_LEN + 1];
    int64_t nonce_expires;
    bool spend_nonce; /* the nonce is valid: this attestation spends it */
    /* the device, from the database: its verified record's attestation key and kind */
    pv_key *ak;
    pv_rot_kind rot_kind;
    bool have_rec;
    char tenant_id[37];
    bool claimed, dev_allowed;
    /* the outcome */
    const char *result; /* "passed", "identity-only", "failed" */
    const char *reason;
    char detail[256];
    bool development; /* for the client certificate: dbgstat 0 or a development image */
    pv_cert *service_cert;
    tenant_ca_issued client;
    pv_chain *chain;
    measured img[ATTEST_MAX_LOG_IMAGES];
    size_t n_img;
} attest;

/* ---- the request ---- */

static int get_bstr(const cbor_item_t *map, int64_t key, bool required, size_t max,
                    const uint8_t **p, size_t *n, char *why, size_t why_size)
{
    cbor_item_t *it = pv_cbor_map_get(map, key);
    pv_err e = {0};
    *p = NULL;
    *n = 0;
    if (it == NULL) {
        if (required) {
            snprintf(why, why_size, "key %lld is missing", (long long)key);
            return PV_ERR_FORMAT;
        }
        return PV_OK;
    }
    if (pv_cbor_get_bytes(it, p, n, &e) != PV_OK || *n == 0 || *n > max) {
        snprintf(why, why_size, "key %lld: expected a byte string of 1 to %zu bytes",
                 (long long)key, max);
        return PV_ERR_FORMAT;
    }
    return PV_OK;
}

/* Step 1: the request parses within every limit. The CSR is checked here too (parse and
 * proof of possession); a signature that does not verify is reported at step 5. */
static int parse_request(attest *a)
{
    static const int64_t keys[] = {REQ_EVIDENCE, REQ_QUOTE, REQ_QUOTE_SIG, REQ_CSR};
    const api_request *req = a->c->req;
    pv_err e = {0};
    int r;

    if (req->body_len == 0) {
        snprintf(a->detail, sizeof(a->detail), "the body is empty");
        return PV_ERR_FORMAT;
    }
    if ((r = pv_cbor_decode(req->body, req->body_len, &a->body, &e)) != PV_OK) {
        snprintf(a->detail, sizeof(a->detail), "body: %s", pv_err_msg(&e));
        return r == PV_ERR_NOMEM ? r : PV_ERR_FORMAT;
    }
    if (!cbor_isa_map(a->body) ||
        pv_cbor_map_check_keys(a->body, keys, sizeof(keys) / sizeof(keys[0]), &e) != PV_OK) {
        snprintf(a->detail, sizeof(a->detail), "body: %s",
                 cbor_isa_map(a->body) ? pv_err_msg(&e) : "not a map");
        return PV_ERR_FORMAT;
    }
    /* The evidence first: once it decodes, the failure can be recorded for its device. */
    if (get_bstr(a->body, REQ_EVIDENCE, true, PV_EVIDENCE_MAX_SIZE, &a->ev_bytes, &a->ev_len,
                 a->detail, sizeof(a->detail)) != PV_OK) {
        return PV_ERR_FORMAT;
    }
    if ((r = pv_evidence_decode(a->ev_bytes, a->ev_len, &a->ev, &a->cose, &e)) != PV_OK) {
        snprintf(a->detail, sizeof(a->detail), "evidence: %s", pv_err_msg(&e));
        return r == PV_ERR_NOMEM ? r : PV_ERR_FORMAT;
    }
    a->ev_ok = true;
    if (get_bstr(a->body, REQ_QUOTE, false, PV_QUOTE_MAX_ATTEST, &a->quote, &a->quote_len,
                 a->detail, sizeof(a->detail)) != PV_OK ||
        get_bstr(a->body, REQ_QUOTE_SIG, false, PV_ES256_SIG_LEN, &a->quote_sig, &a->quote_sig_len,
                 a->detail, sizeof(a->detail)) != PV_OK ||
        get_bstr(a->body, REQ_CSR, true, ATTEST_MAX_CSR, &a->csr, &a->csr_len, a->detail,
                 sizeof(a->detail)) != PV_OK) {
        return PV_ERR_FORMAT;
    }
    if ((a->quote == NULL) != (a->quote_sig == NULL) ||
        (a->quote_sig != NULL && a->quote_sig_len != PV_ES256_SIG_LEN)) {
        snprintf(a->detail, sizeof(a->detail),
                 "a quote (key 2) and its 64-byte signature (key 3) go together");
        return PV_ERR_FORMAT;
    }
    a->csr_result = pv_csr_verify_der(a->csr, a->csr_len, &a->tls_key, &e);
    if (a->csr_result != PV_OK && a->csr_result != PV_ERR_SIGNATURE) {
        snprintf(a->detail, sizeof(a->detail), "CSR: %s", pv_err_msg(&e));
        return a->csr_result == PV_ERR_NOMEM ? PV_ERR_NOMEM : PV_ERR_FORMAT;
    }
    return PV_OK;
}

/* ---- the device ---- */

/* Step 2's replay check and step 3's inputs, in one query. PV_OK, or a store error
 * (the response is set). */
static int read_device(attest *a)
{
    api_ctx *c = a->c;
    store_rows *rows = NULL;
    pv_err e = {0};
    int r;
    store_val p[] = {SV_TEXT(a->ev.device_id), SV_TEXT(a->nonce_hash)};
    r = store_exec(c->db,
                   "SELECT (SELECT COUNT(*) FROM used_nonces WHERE nonce_hash = $2), "
                   "CASE WHEN m.attestation_key IS NULL THEN m.record END, f.fingerprint, "
                   "d.tenant_id, d.development, m.attestation_key, m.rot_kind, m.device_id "
                   "FROM (SELECT 1 AS one) k "
                   "LEFT JOIN manufacturing_records m ON m.device_id = $1 "
                   "LEFT JOIN factories f ON f.fingerprint = m.factory_fingerprint "
                   "LEFT JOIN devices d ON d.id = m.device_id",
                   p, 2, &rows, NULL, &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if (store_rows_count(rows) != 1) {
        r = api_fail(c, 500, "internal", "reading the device returned no row");
        goto out;
    }
    a->spend_nonce = store_rows_int(rows, 0, 0) == 0;
    const char *tenant = store_rows_text(rows, 0, 3);
    if (tenant != NULL && strlen(tenant) == 36) {
        memcpy(a->tenant_id, tenant, 37);
        a->claimed = true;
        a->dev_allowed = store_rows_int(rows, 0, 4) != 0;
    }
    if (store_rows_is_null(rows, 0, 7)) {
        r = PV_OK; /* unknown device: step 3 */
        goto out;
    }
    if (store_rows_is_null(rows, 0, 2)) {
        r = PV_ERR_UNTRUSTED; /* the factory is no longer trusted */
        goto out;
    }
    /* Verified when it was imported, and the factory is still trusted (the join): its
     * attestation key and kind were stored beside it then. */
    size_t ak_len = 0;
    const uint8_t *ak = store_rows_blob(rows, 0, 5, &ak_len);
    const char *kind = store_rows_text(rows, 0, 6);
    if (ak != NULL) {
        r = pv_key_from_spki_der(ak, ak_len, &a->ak, &e);
        if (r == PV_OK && (kind == NULL || pv_rot_kind_parse(kind, &a->rot_kind) != PV_OK)) {
            r = pv_err_set(&e, PV_ERR_FORMAT, "unknown root-of-trust kind");
        }
    } else {
        /* A row from before the column (the query returned its record only then):
         * decode the record for them. */
        size_t len = 0;
        const uint8_t *rec = store_rows_blob(rows, 0, 1, &len);
        pv_mfgrec m;
        memset(&m, 0, sizeof(m));
        r = rec != NULL ? pv_mfgrec_decode(rec, len, &m, NULL, &e)
                        : pv_err_set(&e, PV_ERR_FORMAT, "no record");
        if (r == PV_OK && strcmp(m.device_id, a->ev.device_id) != 0) {
            r = pv_err_set(&e, PV_ERR_FORMAT, "the record is another device's");
        }
        if (r == PV_OK) {
            a->ak = pv_key_ref(m.attestation_key);
            a->rot_kind = m.rot_kind;
        }
        pv_mfgrec_free(&m);
    }
    if (r != PV_OK) {
        pv_error("attestation: the stored manufacturing record of %s is damaged: %s",
                 a->ev.device_id, pv_err_msg(&e));
        r = api_fail(c, 500, "internal", "a stored manufacturing record is damaged");
        goto out;
    }
    a->have_rec = true;
    r = PV_OK;
out:
    store_rows_free(rows);
    return r;
}

/* ---- the checks ---- */

static int fail(attest *a, const char *reason)
{
    a->reason = reason;
    return PV_ERR_SIGNATURE;
}

/* Steps 4 to 6: identity. PV_OK, or a reason set (PV_ERR_SIGNATURE). */
static int check_identity(attest *a)
{
    pv_err e = {0};
    pv_buf *spki = NULL;
    uint8_t binding[PV_SHA256_LEN];
    int r;

    if (pv_evidence_verify(a->cose, a->ak, &e) != PV_OK) {
        snprintf(a->detail, sizeof(a->detail), "%s", pv_err_msg(&e));
        return fail(a, "bad-signature");
    }
    /* The ueid named the record, and eat_nonce is the nonce checked at step 2: both are
     * what was just verified. */
    if (a->csr_result != PV_OK) {
        snprintf(a->detail, sizeof(a->detail), "the CSR is not signed by its key");
        return fail(a, "binding-mismatch");
    }
    if ((spki = pv_buf_new(PV_MFGREC_MAX_SPKI)) == NULL ||
        pv_key_spki_der(a->tls_key, spki) != PV_OK ||
        pv_evidence_binding(a->ev.nonce, pv_buf_data(spki), pv_buf_len(spki), binding) != PV_OK) {
        pv_buf_free(spki);
        return PV_ERR_CRYPTO;
    }
    pv_buf_free(spki);
    if (CRYPTO_memcmp(binding, a->ev.binding, sizeof(binding)) != 0) {
        snprintf(a->detail, sizeof(a->detail), "the binding claim is not the CSR key's");
        return fail(a, "binding-mismatch");
    }
    if (a->rot_kind == PV_ROT_TPM) {
        if (a->quote == NULL) {
            snprintf(a->detail, sizeof(a->detail), "a TPM device sent no quote");
            return fail(a, "bad-quote");
        }
        r = pv_quote_verify(a->quote, a->quote_len, a->quote_sig, a->ak, a->ev.binding, PV_ROT_PCR,
                            a->ev.measurement, NULL, &e);
        if (r != PV_OK) {
            snprintf(a->detail, sizeof(a->detail), "%s", pv_err_msg(&e));
            return fail(a, "bad-quote");
        }
    }
    if (a->ev.rot_kind != a->rot_kind) {
        snprintf(a->detail, sizeof(a->detail), "evidence says %s, the record %s",
                 pv_rot_kind_name(a->ev.rot_kind), pv_rot_kind_name(a->rot_kind));
        return fail(a, "rot-mismatch");
    }
    return PV_OK;
}

static void replay(const pv_rot_event *ev, size_t n, uint8_t out[PV_SHA256_LEN])
{
    uint8_t m[2 * PV_SHA256_LEN];
    memset(out, 0, PV_SHA256_LEN);
    for (size_t i = 0; i < n; i++) {
        memcpy(m, out, PV_SHA256_LEN);
        memcpy(m + PV_SHA256_LEN, ev[i].digest, PV_SHA256_LEN);
        (void)pv_sha256_digest(m, sizeof(m), out);
    }
}

/* The image rows for one measured digest: known, not revoked. PV_OK (found), a reason,
 * or a store error (response set, PV_ERR_IO). */
static int lookup_image(attest *a, measured *m)
{
    api_ctx *c = a->c;
    store_rows *rows = NULL;
    pv_err e = {0};
    char hex[2 * PV_SHA256_LEN + 1];
    int r;

    pv_hex_encode(m->digest, sizeof(m->digest), hex, sizeof(hex));
    store_val p[] = {SV_TEXT(hex), SV_TEXT(a->tenant_id)};
    r = store_exec(c->db,
                   "SELECT id, component_id, kind, development, revoked_at FROM images "
                   "WHERE manifest_sha256 = $1 AND (tenant_id = $2 OR tenant_id IS NULL) "
                   "ORDER BY revoked_at IS NOT NULL, id",
                   p, 2, &rows, NULL, &e);
    if (r != PV_OK) {
        api_store_fail(c, r, &e, NULL);
        r = PV_ERR_IO;
        goto out;
    }
    if (store_rows_count(rows) == 0) {
        snprintf(a->detail, sizeof(a->detail), "image with manifest digest %s", hex);
        r = fail(a, "unknown-image");
        goto out;
    }
    if (!store_rows_is_null(rows, 0, 4)) {
        snprintf(a->detail, sizeof(a->detail), "image %s", store_rows_text(rows, 0, 0));
        r = fail(a, "revoked-image");
        goto out;
    }
    snprintf(m->id, sizeof(m->id), "%s", store_rows_text(rows, 0, 0));
    snprintf(m->component_id, sizeof(m->component_id), "%s", store_rows_text(rows, 0, 1));
    snprintf(m->kind, sizeof(m->kind), "%s", store_rows_text(rows, 0, 2));
    m->development = store_rows_int(rows, 0, 3) != 0;
    r = PV_OK;
out:
    store_rows_free(rows);
    return r;
}

/* Steps 7 to 10: policy. PV_OK, a reason set (PV_ERR_SIGNATURE), or a store error (the
 * response set, PV_ERR_IO). */
static int check_policy(attest *a)
{
    uint8_t pcr[PV_SHA256_LEN];
    bool any_os = false;
    int r;

    if (!a->claimed) {
        return fail(a, "unclaimed");
    }
    replay(a->ev.events, a->ev.n_events, pcr);
    if (CRYPTO_memcmp(pcr, a->ev.measurement, sizeof(pcr)) != 0) {
        return fail(a, "event-log-mismatch");
    }
    /* Step 9: the measured images, each digest once. */
    for (size_t i = 0; i < a->ev.n_events; i++) {
        const pv_rot_event *ev = &a->ev.events[i];
        bool os = strcmp(ev->type, "os-image") == 0;
        if (!os && strcmp(ev->type, "app-image") != 0) {
            continue;
        }
        any_os = any_os || os;
        bool seen = false;
        for (size_t k = 0; k < a->n_img && !seen; k++) {
            seen = memcmp(a->img[k].digest, ev->digest, PV_SHA256_LEN) == 0 && a->img[k].os == os;
        }
        if (seen) {
            continue;
        }
        if (a->n_img == ATTEST_MAX_LOG_IMAGES) {
            snprintf(a->detail, sizeof(a->detail), "more than %d images measured",
                     ATTEST_MAX_LOG_IMAGES);
            return fail(a, "image-mismatch");
        }
        measured *m = &a->img[a->n_img++];
        memset(m, 0, sizeof(*m));
        memcpy(m->digest, ev->digest, PV_SHA256_LEN);
        m->os = os;
    }
    if (!any_os) {
        return fail(a, "no-os-image");
    }
    for (size_t k = 0; k < a->n_img; k++) {
        if ((r = lookup_image(a, &a->img[k])) != PV_OK) {
            return r;
        }
    }
    /* The images claim lists exactly the measured images, each once, as the service
     * has them. */
    if (a->ev.n_images != a->n_img) {
        snprintf(a->detail, sizeof(a->detail), "the images claim lists %zu, the log measures %zu",
                 a->ev.n_images, a->n_img);
        return fail(a, "image-mismatch");
    }
    for (size_t i = 0; i < a->ev.n_images; i++) {
        const pv_evidence_image *ci = &a->ev.images[i];
        char id[37], comp[37];
        bool os = ci->kind == PV_EVIDENCE_IMAGE_OS;
        measured *m = NULL;
        for (size_t k = 0; k < a->n_img && m == NULL; k++) {
            if (!a->img[k].claimed &&
                memcmp(a->img[k].digest, ci->manifest_digest, PV_SHA256_LEN) == 0 &&
                a->img[k].os == os) {
                m = &a->img[k];
            }
        }
        pv_uuid_format(ci->image_id, id);
        pv_uuid_format(ci->component_id, comp);
        if (m == NULL || strcmp(m->kind, os ? "os" : "app") != 0 || strcmp(m->id, id) != 0 ||
            strcmp(m->component_id, comp) != 0) {
            snprintf(a->detail, sizeof(a->detail), "claimed image %s is not as measured or known",
                     id);
            return fail(a, "image-mismatch");
        }
        m->claimed = true;
    }
    /* Step 10: development. */
    bool dev_images = false;
    for (size_t k = 0; k < a->n_img; k++) {
        dev_images = dev_images || a->img[k].development;
    }
    if ((a->ev.development || dev_images) && !a->dev_allowed) {
        snprintf(a->detail, sizeof(a->detail), "%s",
                 a->ev.development ? "the device runs in development mode"
                                   : "a development-signed image is measured");
        return fail(a, "development-not-allowed");
    }
    a->development = a->ev.development || dev_images;
    return PV_OK;
}

/* ---- certificates ---- */

static void put_len(uint8_t *p, size_t *o, size_t n)
{
    p[(*o)++] = (uint8_t)n; /* every part here is shorter than 128 bytes */
}

/* The attestation extension's value (§2): SEQUENCE { rotKind UTF8String, policy
 * UTF8String, development BOOLEAN, attestedAt GeneralizedTime }. */
static size_t ext_value(const char *kind, bool development, int64_t at, uint8_t out[96])
{
    char t[16];
    time_t tt = (time_t)at;
    struct tm tm;
    uint8_t body[80];
    size_t o = 0, n = 0;
    if (gmtime_r(&tt, &tm) == NULL || strftime(t, sizeof(t), "%Y%m%d%H%M%SZ", &tm) != 15) {
        return 0;
    }
    size_t kl = strlen(kind);
    body[o++] = 0x0c;
    put_len(body, &o, kl);
    memcpy(body + o, kind, kl);
    o += kl;
    body[o++] = 0x0c;
    put_len(body, &o, 6);
    memcpy(body + o, "passed", 6);
    o += 6;
    body[o++] = 0x01;
    body[o++] = 0x01;
    body[o++] = development ? 0xff : 0x00;
    body[o++] = 0x18;
    put_len(body, &o, 15);
    memcpy(body + o, t, 15);
    o += 15;
    out[n++] = 0x30;
    put_len(out, &n, o);
    memcpy(out + n, body, o);
    return n + o;
}

/* The service certificate (identity proven) and, when passed, the client certificate
 * and chain. PV_OK, or an error with the response set. */
static int issue(attest *a, bool passed)
{
    api_ctx *c = a->c;
    pv_err e = {0};
    int r = ca_issue_device(c->srv->ca, a->tls_key, a->ev.device_id, c->now, SERVICE_CERT_LIFETIME,
                            &a->service_cert, &e);
    if (r != PV_OK) {
        pv_error("attestation of %s: %s", a->ev.device_id, pv_err_msg(&e));
        return api_fail(c, 500, "internal", "the service certificate could not be issued");
    }
    if (!passed) {
        return PV_OK;
    }
    uint8_t val[96];
    size_t vlen = ext_value(pv_rot_kind_name(a->rot_kind), a->development, c->now, val);
    tenant_ca_ext ext = {ATTEST_EXT_OID, val, vlen, false};
    char subject[128];
    int64_t hours =
        c->srv->cfg.client_cert_hours > 0 ? c->srv->cfg.client_cert_hours : DEFAULT_CLIENT_HOURS;
    snprintf(subject, sizeof(subject), "CN=%s,O=%s", a->ev.device_id, a->tenant_id);
    if (vlen == 0) {
        return api_fail(c, 500, "internal", "the clock cannot be encoded");
    }
    r = tenant_ca_issue_chain(c->db, ca_tenant_kek(c->srv->ca), a->tenant_id, a->tls_key, subject,
                              c->now, hours * 3600, &ext, &a->client, &a->chain, &e);
    if (r != PV_OK) {
        pv_error("attestation of %s: %s", a->ev.device_id, pv_err_msg(&e));
        return r == PV_ERR_IO ? api_store_fail(c, r, &e, NULL)
                              : api_fail(c, 500, "internal",
                                         "the client certificate could not be issued; see the "
                                         "server's log");
    }
    return PV_OK;
}

/* ---- recording and answering ---- */

static void cert_fp_serial(const pv_cert *cert, char fp[65], char serial[41])
{
    uint8_t d[PV_SHA256_LEN];
    pv_cert_fingerprint(cert, d);
    pv_hex_encode(d, sizeof(d), fp, 65);
    pv_cert_serial_hex(cert, serial);
}

/* Writes the spent nonce, the result and the service certificate in one transaction.
 * PV_OK; PV_ERR_EXISTS when the nonce was spent meanwhile (nothing written); otherwise
 * the response is set. */
static int record(attest *a)
{
    api_ctx *c = a->c;
    pv_err e = {0};
    char svc_fp[65] = "", svc_serial[41] = "";
    char *detail = NULL;
    int r;

    json_t *d = json_pack("{s:s}", "message", a->detail);
    detail = d != NULL ? json_dumps(d, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(d);
    if (detail == NULL) {
        return api_fail(c, 500, "internal", "out of memory");
    }
    if (a->service_cert != NULL) {
        cert_fp_serial(a->service_cert, svc_fp, svc_serial);
    }
    if ((r = api_tx_begin(c)) != PV_OK) {
        goto out;
    }
    if (a->spend_nonce) {
        store_val pn[] = {SV_TEXT(a->nonce_hash), SV_INT(a->nonce_expires)};
        r = store_exec(c->db, "INSERT INTO used_nonces (nonce_hash, expires_at) VALUES ($1, $2)",
                       pn, 2, NULL, NULL, &e);
        if (r == PV_ERR_EXISTS) {
            store_rollback(c->db); /* a concurrent attestation spent it first */
            c->tx_open = false;
            goto out;
        }
        if (r != PV_OK) {
            r = api_store_fail(c, r, &e, NULL);
            goto out;
        }
        /* Spent nonces are kept only until they expire (after that the MAC'd expiry
         * refuses them anyway). Each worker sweeps now and then, in this transaction,
         * so the table stays about five minutes of attestations long. */
        static _Thread_local unsigned since_sweep;
        if (++since_sweep >= NONCE_SWEEP_EVERY) {
            since_sweep = 0;
            store_val pd[] = {SV_INT(c->now)};
            r = store_exec(c->db, "DELETE FROM used_nonces WHERE expires_at < $1", pd, 1, NULL,
                           NULL, &e);
            if (r != PV_OK) {
                r = api_store_fail(c, r, &e, NULL);
                goto out;
            }
        }
    }
    bool rec = a->have_rec;
    store_val pa[] = {
        SV_TEXT(a->ev.device_id),
        a->tenant_id[0] != '\0' ? SV_TEXT(a->tenant_id) : SV_NULL,
        SV_INT(c->now),
        SV_TEXT(a->result),
        SV_TEXT(a->reason),
        rec ? SV_TEXT(pv_rot_kind_name(a->rot_kind)) : SV_NULL,
        SV_INT(a->ev.development ? 1 : 0),
        SV_INT((int64_t)(a->ev.boot_count > INT64_MAX ? INT64_MAX : a->ev.boot_count)),
        svc_serial[0] != '\0' ? SV_TEXT(svc_serial) : SV_NULL,
        a->client.cert != NULL ? SV_TEXT(a->client.serial) : SV_NULL,
        a->client.cert != NULL ? SV_INT(a->client.not_after) : SV_NULL,
        SV_TEXT(detail)};
    r = store_exec(c->db,
                   "INSERT INTO attestations (device_id, tenant_id, at, result, reason, rot_kind, "
                   "development, boot_count, service_cert_serial, client_cert_serial, "
                   "client_not_after, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
                   "$11, $12)",
                   pa, 12, NULL, NULL, &e);
    if (r == PV_OK && a->service_cert != NULL) {
        int64_t nb = 0, na = 0;
        (void)pv_cert_validity(a->service_cert, &nb, &na);
        store_val ps[] = {SV_TEXT(svc_fp), SV_TEXT(a->ev.device_id), SV_TEXT(svc_serial),
                          SV_INT(na), SV_INT(c->now)};
        r = store_exec(c->db,
                       "INSERT INTO device_service_certs (fingerprint, device_id, serial, "
                       "not_after, created_at) VALUES ($1, $2, $3, $4, $5)",
                       ps, 5, NULL, NULL, &e);
    }
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    r = api_tx_commit(c);
out:
    free(detail);
    return r;
}

static void put_cert(pv_cbor_enc *enc, const pv_cert *cert)
{
    const uint8_t *der = NULL;
    size_t len = 0;
    pv_cert_der(cert, &der, &len);
    pv_cbor_put_bytes(enc, der, len);
}

static int answer(attest *a)
{
    api_ctx *c = a->c;
    if (strcmp(a->result, "failed") == 0) {
        return api_fail_cbor(c, strcmp(a->reason, "bad-request") == 0 ? 400 : 403, a->reason);
    }
    bool passed = strcmp(a->result, "passed") == 0;
    pv_buf *b = pv_buf_new(ATTEST_MAX_BODY);
    pv_cbor_enc enc;
    if (b == NULL) {
        return api_fail(c, 500, "internal", "out of memory");
    }
    pv_cbor_enc_init(&enc, b);
    pv_cbor_put_map(&enc, passed ? 6 : 4);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_text(&enc, a->result);
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_text(&enc, a->reason);
    pv_cbor_put_uint(&enc, 3);
    put_cert(&enc, a->service_cert);
    pv_cbor_put_uint(&enc, 4);
    put_cert(&enc, ca_cert(c->srv->ca));
    if (passed) {
        pv_cbor_put_uint(&enc, 5);
        put_cert(&enc, a->client.cert);
        pv_cbor_put_uint(&enc, 6);
        pv_cbor_put_chain(&enc, a->chain);
    }
    if (pv_cbor_enc_result(&enc) != PV_OK) {
        pv_buf_free(b);
        return api_fail(c, 500, "internal", "the response could not be encoded");
    }
    return api_ok_cbor(c, 200, b);
}

static void attest_free(attest *a)
{
    if (a->body != NULL) {
        cbor_decref(&a->body);
    }
    pv_evidence_free(&a->ev);
    pv_cose_sign1_free(a->cose);
    pv_key_free(a->tls_key);
    pv_key_free(a->ak);
    pv_cert_free(a->service_cert);
    tenant_ca_issued_clear(&a->client);
    pv_chain_free(a->chain);
}

/* Runs steps 2 to 10 after the request parsed. PV_OK with a->result and a->reason set,
 * or an error with the response set. */
static int verify(attest *a)
{
    api_ctx *c = a->c;
    pv_err e = {0};
    uint8_t h[PV_SHA256_LEN];
    int r;

    /* The device's record and tenant first (one query), so that every result, even one
     * refused before the device proved anything, is recorded where its operators see
     * it. */
    (void)pv_sha256_digest(a->ev.nonce, PV_NONCE_LEN, h);
    pv_hex_encode(h, sizeof(h), a->nonce_hash, sizeof(a->nonce_hash));
    int dr = read_device(a);
    if (dr != PV_OK && dr != PV_ERR_UNTRUSTED) {
        return dr;
    }
    /* Step 2: the nonce is MAC'd for the device the evidence names, so another device's
     * nonce fails the MAC. A nonce that is not ours is not spent (nothing to remember). */
    r = nonce_check(c->srv->nonce_key, a->ev.device_id, a->ev.nonce, c->now, &a->nonce_expires, &e);
    if (r == PV_ERR_SIGNATURE || r == PV_ERR_EXPIRED) {
        a->spend_nonce = false;
        a->reason = r == PV_ERR_SIGNATURE ? "nonce-other-device" : "nonce-expired";
        return PV_OK;
    }
    if (r != PV_OK) {
        return api_fail(c, 500, "internal", "the nonce could not be checked");
    }
    r = dr;
    if (!a->spend_nonce) {
        a->reason = "nonce-replayed";
        return PV_OK;
    }
    /* Step 3. */
    if (r == PV_ERR_UNTRUSTED || !a->have_rec) {
        a->reason = r == PV_ERR_UNTRUSTED ? "factory-untrusted" : "unknown-device";
        return PV_OK;
    }
    /* Steps 4 to 6. */
    r = check_identity(a);
    if (r == PV_ERR_SIGNATURE) {
        return PV_OK;
    }
    if (r != PV_OK) {
        return api_fail(c, 500, "internal", "a check could not complete");
    }
    /* Steps 7 to 10. */
    r = check_policy(a);
    if (r == PV_ERR_IO) {
        return r;
    }
    bool passed = r == PV_OK;
    a->result = passed ? "passed" : "identity-only";
    if (passed) {
        a->reason = "";
    }
    return issue(a, passed);
}

int api_attest(api_ctx *c)
{
    attest *a = calloc(1, sizeof(*a));
    int r = PV_ERR_INTERNAL;
    if (a == NULL) {
        return api_fail(c, 500, "internal", "out of memory");
    }
    a->c = c;
    a->result = "failed";
    a->reason = "bad-request";
    if (c->req->body_len > ATTEST_MAX_BODY) {
        r = api_fail_cbor(c, 413, "payload-too-large");
        goto out;
    }
    r = parse_request(a);
    if (r == PV_ERR_NOMEM) {
        r = api_fail(c, 500, "internal", "out of memory");
        goto out;
    }
    if (r == PV_OK) {
        a->reason = NULL;
        if ((r = verify(a)) != PV_OK) {
            goto out;
        }
    }
    /* A request whose evidence did not decode names no device to record it for. */
    if (a->ev_ok) {
        r = record(a);
        if (r == PV_ERR_EXISTS) {
            /* Spent by a concurrent attestation between the read and the write: this one
             * is a replay after all, and gets nothing. */
            pv_cert_free(a->service_cert);
            a->service_cert = NULL;
            tenant_ca_issued_clear(&a->client);
            a->result = "failed";
            a->reason = "nonce-replayed";
            a->spend_nonce = false;
            r = record(a);
        }
        if (r != PV_OK) {
            goto out;
        }
    } else {
        pv_debug("attestation refused: %s", a->detail);
    }
    r = answer(a);
out:
    attest_free(a);
    free(a);
    return r;
}

/* ---- the challenge ---- */

int api_attest_challenge(api_ctx *c)
{
    static const int64_t keys[] = {1};
    const api_request *req = c->req;
    cbor_item_t *body = NULL;
    char *id = NULL;
    store_rows *rows = NULL;
    pv_buf *b = NULL;
    pv_err e = {0};
    uint8_t nonce[PV_NONCE_LEN];
    int64_t expires = 0;
    int r = PV_ERR_INTERNAL;

    if (req->body_len > 256) {
        r = api_fail_cbor(c, 413, "payload-too-large");
        goto out;
    }
    if (req->body_len == 0 || pv_cbor_decode(req->body, req->body_len, &body, &e) != PV_OK ||
        !cbor_isa_map(body) || pv_cbor_map_check_keys(body, keys, 1, &e) != PV_OK ||
        pv_cbor_get_text(pv_cbor_map_get(body, 1), PV_DEVICE_ID_HEX_LEN, &id, &e) != PV_OK ||
        !api_valid_device_id(id)) {
        r = api_fail_cbor(c, 400, "bad-request");
        goto out;
    }
    store_val p[] = {SV_TEXT(id)};
    r = store_exec(c->db, "SELECT 1 FROM manufacturing_records WHERE device_id = $1", p, 1, &rows,
                   NULL, &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if (store_rows_count(rows) == 0) {
        r = api_fail_cbor(c, 404, "unknown-device");
        goto out;
    }
    if (nonce_issue(c->srv->nonce_key, id, c->now, nonce, &expires, &e) != PV_OK) {
        r = api_fail(c, 500, "internal", "no nonce could be made");
        goto out;
    }
    pv_cbor_enc enc;
    if ((b = pv_buf_new(128)) == NULL) {
        r = api_fail(c, 500, "internal", "out of memory");
        goto out;
    }
    pv_cbor_enc_init(&enc, b);
    pv_cbor_put_map(&enc, 2);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_bytes(&enc, nonce, sizeof(nonce));
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_uint(&enc, (uint64_t)expires);
    if (pv_cbor_enc_result(&enc) != PV_OK) {
        r = api_fail(c, 500, "internal", "the response could not be encoded");
        goto out;
    }
    r = api_ok_cbor(c, 201, b);
    b = NULL;
out:
    pv_buf_free(b);
    store_rows_free(rows);
    free(id);
    if (body != NULL) {
        cbor_decref(&body);
    }
    return r;
}

/* ---- the device's last attestation ---- */

int api_device_attestation(api_ctx *c)
{
    store_rows *rows = NULL;
    pv_buf *b = NULL;
    pv_err e = {0};
    int r = PV_ERR_INTERNAL;

    store_val p[] = {SV_TEXT(c->device_id)};
    r = store_exec(c->db,
                   "SELECT result, reason, at FROM attestations WHERE device_id = $1 "
                   "ORDER BY seq DESC LIMIT 1",
                   p, 1, &rows, NULL, &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    if (store_rows_count(rows) == 0) {
        r = api_fail_cbor(c, 404, "not-found");
        goto out;
    }
    pv_cbor_enc enc;
    if ((b = pv_buf_new(1024)) == NULL) {
        r = api_fail(c, 500, "internal", "out of memory");
        goto out;
    }
    const char *result = store_rows_text(rows, 0, 0), *reason = store_rows_text(rows, 0, 1);
    int64_t at = store_rows_int(rows, 0, 2);
    pv_cbor_enc_init(&enc, b);
    pv_cbor_put_map(&enc, 3);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_text(&enc, result != NULL ? result : "");
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_text(&enc, reason != NULL ? reason : "");
    pv_cbor_put_uint(&enc, 3);
    pv_cbor_put_uint(&enc, at > 0 ? (uint64_t)at : 0);
    if (pv_cbor_enc_result(&enc) != PV_OK) {
        r = api_fail(c, 500, "internal", "the response could not be encoded");
        goto out;
    }
    r = api_ok_cbor(c, 200, b);
    b = NULL;
out:
    pv_buf_free(b);
    store_rows_free(rows);
    return r;
}
