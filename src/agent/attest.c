/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One attestation, device side (docs/protocol/attestation.md): challenge, fresh TLS key,
 * evidence and quote from the root of trust, the exchange over HTTPS pinned to the service
 * CA, strict checks of what comes back, and the certificate store. Also the schedule the
 * runtime follows.
 *
 * The root of trust is opened twice: once for the device ID, then again after the TLS key
 * exists. On a TPM device the TLS key is made through the tpm2-openssl provider, which
 * needs its own TPM connection, and swtpm (like some TPM drivers) serves one connection
 * at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/x509.h>

#include "attest_internal.h"
#include "pavise/cbor.h"
#include "pavise/devstate.h"
#include "pavise/imgpkg.h"
#include "pavise/json.h"
#include "pavise/platform.h"
#include "pavise/quote.h"

#ifndef PAVISE_VERSION
#define PAVISE_VERSION "0.1.0"
#endif

#define CONNECT_TIMEOUT 10
#define RESPONSE_DEPTH  4 /* map, chain array, its certificates: 3; one spare */
#define SLOTS           2

/* Keys of the messages (protocol §1.1, §1.2, §1.5). */
enum { CH_DEVICE = 1 };
enum { CHR_NONCE = 1, CHR_EXPIRES = 2 };
enum { REQ_EVIDENCE = 1, REQ_QUOTE = 2, REQ_QUOTE_SIG = 3, REQ_CSR = 4 };
enum {
    RSP_RESULT = 1,
    RSP_REASON = 2,
    RSP_SERVICE_CERT = 3,
    RSP_SERVICE_CA = 4,
    RSP_CLIENT_CERT = 5,
    RSP_CLIENT_CHAIN = 6,
};

static const struct {
    pv_attest_verdict v;
    const char *name;
} verdicts[] = {
    {PV_ATTEST_NONE, "none"},
    {PV_ATTEST_PASSED, "passed"},
    {PV_ATTEST_IDENTITY_ONLY, "identity-only"},
    {PV_ATTEST_FAILED, "failed"},
};

const char *pv_attest_verdict_name(pv_attest_verdict v)
{
    for (size_t i = 0; i < sizeof(verdicts) / sizeof(verdicts[0]); i++) {
        if (verdicts[i].v == v) {
            return verdicts[i].name;
        }
    }
    return "none";
}

static pv_attest_verdict verdict_parse(const char *s)
{
    for (size_t i = 0; i < sizeof(verdicts) / sizeof(verdicts[0]); i++) {
        if (strcmp(verdicts[i].name, s) == 0) {
            return verdicts[i].v;
        }
    }
    return PV_ATTEST_NONE;
}

/* ---- schedule ---- */

int64_t pv_attest_next_delay(pv_attest_verdict last, int64_t now, int64_t cert_not_after,
                             unsigned failures, uint32_t rnd)
{
    int64_t d;
    if (last == PV_ATTEST_NONE && failures == 0) {
        return (int64_t)(rnd % (PV_ATTEST_BACKOFF_FIRST + 1));
    }
    if (last == PV_ATTEST_PASSED && failures == 0) {
        d = PV_ATTEST_PERIOD - PV_ATTEST_JITTER + (int64_t)(rnd % (2 * PV_ATTEST_JITTER + 1));
    } else {
        /* 60 s doubling; the shift is bounded before it can overflow. */
        unsigned n = failures == 0 ? 1 : failures;
        d = PV_ATTEST_BACKOFF_MAX;
        if (n - 1 < 16 && ((int64_t)PV_ATTEST_BACKOFF_FIRST << (n - 1)) < PV_ATTEST_BACKOFF_MAX) {
            d = (int64_t)PV_ATTEST_BACKOFF_FIRST << (n - 1);
        }
        d += (int64_t)(rnd % (uint32_t)(d / 4 + 1));
    }
    /* Renew before the certificate the device relies on runs out. */
    if (cert_not_after > 0 && now < INT64_MAX - d &&
        now + d > cert_not_after - PV_ATTEST_RENEW_MARGIN) {
        d = cert_not_after - PV_ATTEST_RENEW_MARGIN - now;
    }
    return d < PV_ATTEST_MIN_DELAY ? PV_ATTEST_MIN_DELAY : d;
}

/* ---- response ---- */

void attest_response_free(attest_response *r)
{
    if (r == NULL) {
        return;
    }
    pv_cert_free(r->service_cert);
    pv_cert_free(r->service_ca);
    pv_cert_free(r->client_cert);
    pv_chain_free(r->client_chain);
    memset(r, 0, sizeof(*r));
}

static int get_reason(const cbor_item_t *map, char out[PV_ATTEST_MAX_REASON + 1], pv_err *e)
{
    char *s = NULL;
    int r = pv_cbor_get_text(pv_cbor_map_get(map, RSP_REASON), PV_ATTEST_MAX_REASON, &s, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "reason (key %d)", RSP_REASON);
    }
    memcpy(out, s, strlen(s) + 1);
    free(s);
    return PV_OK;
}

static int get_cert(const cbor_item_t *map, int64_t key, const char *what, pv_cert **out, pv_err *e)
{
    const uint8_t *der = NULL;
    size_t len = 0;
    int r = pv_cbor_get_bytes(pv_cbor_map_get(map, key), &der, &len, e);
    if (r == PV_OK) {
        r = pv_cert_from_der(der, len, out, e);
    }
    return r == PV_OK ? r : pv_err_wrap(e, r, "%s (key %lld)", what, (long long)key);
}

/* {1: "failed", 2: reason}: the body of a refusal. */
static int parse_refusal(const cbor_item_t *map, attest_response *out, pv_err *e)
{
    static const int64_t keys[] = {RSP_RESULT, RSP_REASON};
    char *result = NULL;
    int r = pv_cbor_map_check_keys(map, keys, 2, e);
    if (r == PV_OK) {
        r = pv_cbor_get_text(pv_cbor_map_get(map, RSP_RESULT), 32, &result, e);
    }
    if (r == PV_OK && strcmp(result, "failed") != 0) {
        r = pv_err_set(e, PV_ERR_FORMAT, "a refusal whose result is not \"failed\"");
    }
    if (r == PV_OK) {
        r = get_reason(map, out->reason, e);
    }
    free(result);
    if (r == PV_OK) {
        out->verdict = PV_ATTEST_FAILED;
    }
    return r;
}

static int parse_verdict(const cbor_item_t *map, attest_response *out, pv_err *e)
{
    static const int64_t keys[] = {RSP_RESULT,     RSP_REASON,      RSP_SERVICE_CERT,
                                   RSP_SERVICE_CA, RSP_CLIENT_CERT, RSP_CLIENT_CHAIN};
    char *result = NULL;
    int r = pv_cbor_map_check_keys(map, keys, sizeof(keys) / sizeof(keys[0]), e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = pv_cbor_get_text(pv_cbor_map_get(map, RSP_RESULT), 32, &result, e)) != PV_OK) {
        return pv_err_wrap(e, r, "result (key %d)", RSP_RESULT);
    }
    pv_attest_verdict v = verdict_parse(result);
    free(result);
    if (v != PV_ATTEST_PASSED && v != PV_ATTEST_IDENTITY_ONLY) {
        return pv_err_set(e, PV_ERR_FORMAT, "result (key %d): not passed or identity-only",
                          RSP_RESULT);
    }
    bool has_client = pv_cbor_map_get(map, RSP_CLIENT_CERT) != NULL;
    bool has_chain = pv_cbor_map_get(map, RSP_CLIENT_CHAIN) != NULL;
    if (v == PV_ATTEST_PASSED && (!has_client || !has_chain)) {
        return pv_err_set(e, PV_ERR_FORMAT, "passed without a client certificate and chain");
    }
    if (v == PV_ATTEST_IDENTITY_ONLY && (has_client || has_chain)) {
        return pv_err_set(e, PV_ERR_FORMAT, "identity-only with a client certificate or chain");
    }
    if ((r = get_reason(map, out->reason, e)) != PV_OK ||
        (r = get_cert(map, RSP_SERVICE_CERT, "service certificate", &out->service_cert, e)) !=
            PV_OK ||
        (r = get_cert(map, RSP_SERVICE_CA, "service CA", &out->service_ca, e)) != PV_OK) {
        return r;
    }
    if (v == PV_ATTEST_PASSED) {
        if ((r = get_cert(map, RSP_CLIENT_CERT, "client certificate", &out->client_cert, e)) !=
            PV_OK) {
            return r;
        }
        if ((r = pv_cbor_get_chain(pv_cbor_map_get(map, RSP_CLIENT_CHAIN), &out->client_chain,
                                   e)) != PV_OK) {
            return pv_err_wrap(e, r, "tenant CA chain (key %d)", RSP_CLIENT_CHAIN);
        }
    }
    out->verdict = v;
    return PV_OK;
}

int attest_parse_response(long status, const uint8_t *p, size_t len, attest_response *out,
                          pv_err *e)
{
    memset(out, 0, sizeof(*out));
    cbor_item_t *root = NULL;
    int r = PV_ERR_INTERNAL;
    bool refusal = status == 400 || status == 403 || status == 404 || status == 413;
    if (status != 200 && !refusal) {
        return pv_err_set(e, PV_ERR_IO, "the service answered HTTP %ld", status);
    }
    if (len > PV_ATTEST_MAX_BODY) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "response: over %d bytes", PV_ATTEST_MAX_BODY);
    }
    if (p == NULL || len == 0) {
        return pv_err_set(e, PV_ERR_TRUNCATED, "response: empty (HTTP %ld)", status);
    }
    if ((r = pv_cbor_check(p, len, RESPONSE_DEPTH, e)) != PV_OK ||
        (r = pv_cbor_decode(p, len, &root, e)) != PV_OK) {
        return pv_err_wrap(e, r, "response (HTTP %ld)", status);
    }
    if (!cbor_isa_map(root) || !cbor_map_is_definite(root)) {
        r = pv_err_set(e, PV_ERR_FORMAT, "not a map");
    } else {
        r = refusal ? parse_refusal(root, out, e) : parse_verdict(root, out, e);
    }
    cbor_decref(&root);
    if (r != PV_OK) {
        attest_response_free(out);
        return pv_err_wrap(e, r, "response (HTTP %ld)", status);
    }
    return PV_OK;
}

/* Subject CN = device_id (exactly one CN) and the key of our CSR. */
static int check_leaf(const pv_cert *c, const char *what, const char *device_id,
                      const uint8_t *spki, size_t spki_len, pv_err *e)
{
    X509 *x = pv_cert_x509(c);
    X509_NAME *name = X509_get_subject_name(x);
    int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    int again = i >= 0 ? X509_NAME_get_index_by_NID(name, NID_commonName, i) : -1;
    const ASN1_STRING *cn = i >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)) : NULL;
    size_t id_len = strlen(device_id);
    if (cn == NULL || again >= 0 || (size_t)ASN1_STRING_length(cn) != id_len ||
        memcmp(ASN1_STRING_get0_data(cn), device_id, id_len) != 0) {
        return pv_err_set(e, PV_ERR_UNTRUSTED, "the %s is not for this device (%s)", what,
                          device_id);
    }
    unsigned char *der = NULL;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
    bool same = n > 0 && (size_t)n == spki_len && memcmp(der, spki, spki_len) == 0;
    OPENSSL_free(der);
    if (!same) {
        return pv_err_set(e, PV_ERR_UNTRUSTED, "the %s is not for the new TLS key", what);
    }
    return PV_OK;
}

/* leaf chains to one of anchors (themselves not necessarily self-signed roots). */
static int check_chain(pv_cert *leaf, pv_cert *const *anchors, size_t n, const char *what,
                       int64_t now, pv_err *e)
{
    pv_chain *ch = pv_chain_new();
    pv_trust *t = pv_trust_new();
    int r = ch != NULL && t != NULL ? pv_chain_add(ch, leaf) : PV_ERR_NOMEM;
    for (size_t i = 0; i < n && r == PV_OK; i++) {
        r = pv_trust_add(t, anchors[i]);
    }
    if (r != PV_OK) {
        r = pv_err_set(e, r, "checking the %s: %s", what, pv_strerror(r));
    } else if ((r = pv_chain_verify(ch, t, now, 0, e)) != PV_OK) {
        pv_err_wrap(e, r, "the %s", what);
    }
    pv_chain_free(ch);
    pv_trust_free(t);
    return r;
}

int attest_check_response(const attest_response *r, const char *device_id, const uint8_t *spki,
                          size_t spki_len, int64_t now, int64_t *service_not_after,
                          int64_t *client_not_after, pv_err *e)
{
    *service_not_after = 0;
    *client_not_after = 0;
    int64_t nb = 0, sna = 0, cna = 0;
    int rc;
    if (r == NULL || r->service_cert == NULL || r->service_ca == NULL ||
        (r->verdict == PV_ATTEST_PASSED) != (r->client_cert != NULL && r->client_chain != NULL)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no certificates to check");
    }
    pv_cert *ca = r->service_ca;
    if ((rc = check_leaf(r->service_cert, "service certificate", device_id, spki, spki_len, e)) !=
            PV_OK ||
        (rc = check_chain(r->service_cert, &ca, 1, "service certificate", now, e)) != PV_OK) {
        return rc;
    }
    if (pv_cert_validity(r->service_cert, &nb, &sna) != PV_OK) {
        return pv_err_set(e, PV_ERR_FORMAT, "the service certificate's validity");
    }
    if (r->client_cert != NULL) {
        pv_cert *anchors[PV_CHAIN_MAX_CERTS];
        size_t n = pv_chain_count(r->client_chain);
        for (size_t i = 0; i < n && i < PV_CHAIN_MAX_CERTS; i++) {
            anchors[i] = pv_chain_get(r->client_chain, i);
        }
        if ((rc = check_leaf(r->client_cert, "client certificate", device_id, spki, spki_len, e)) !=
                PV_OK ||
            (rc = check_chain(r->client_cert, anchors, n, "client certificate", now, e)) != PV_OK) {
            return rc;
        }
        if (pv_cert_validity(r->client_cert, &nb, &cna) != PV_OK) {
            return pv_err_set(e, PV_ERR_FORMAT, "the client certificate's validity");
        }
    }
    *service_not_after = sna;
    *client_not_after = cna;
    return PV_OK;
}

/* ---- HTTP ---- */

typedef struct http {
    CURL *h;
    struct curl_slist *headers;
    pv_buf *resp;
    bool too_large;
    char errbuf[CURL_ERROR_SIZE];
    char base[PV_ATTEST_MAX_URL + 1];
} http;

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    http *c = arg;
    if (size != 1 || pv_buf_append(c->resp, p, n) != PV_OK) {
        c->too_large = true;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    return n;
}

static void http_free(http *c)
{
    if (c->h != NULL) {
        curl_easy_cleanup(c->h);
    }
    curl_slist_free_all(c->headers);
    pv_buf_free(c->resp);
    memset(c, 0, sizeof(*c));
}

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (curl_easy_setopt(c->h, opt, val) != CURLE_OK) {                                        \
            r = pv_err_set(e, PV_ERR_INTERNAL, "libcurl does not support %s", #opt);               \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* Verification of the service is never turned off: the CA file is the only trust. */
static int http_init(http *c, const char *base, const char *ca_file, long timeout, pv_err *e)
{
    int r = PV_ERR_NOMEM;
    memset(c, 0, sizeof(*c));
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/') {
        n--;
    }
    if (strncmp(base, "https://", 8) != 0 || n <= 8) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "the server URL must be https://host[:port]");
    }
    if (n > PV_ATTEST_MAX_URL - 64) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "the server URL is too long");
    }
    memcpy(c->base, base, n);
    c->base[n] = '\0';
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return pv_err_set(e, PV_ERR_INTERNAL, "libcurl could not be initialised");
    }
    struct curl_slist *h1 = curl_slist_append(NULL, "Content-Type: application/cbor");
    struct curl_slist *h2 = h1 != NULL ? curl_slist_append(h1, "Accept: application/cbor") : NULL;
    struct curl_slist *h3 = h2 != NULL ? curl_slist_append(h2, "Expect:") : NULL;
    c->headers = h3 != NULL ? h3 : h1;
    if (h3 == NULL || (c->h = curl_easy_init()) == NULL ||
        (c->resp = pv_buf_new(PV_ATTEST_MAX_BODY)) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    SETOPT(CURLOPT_ERRORBUFFER, c->errbuf);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_PROTOCOLS_STR, "https");
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT);
    SETOPT(CURLOPT_TIMEOUT, timeout > 0 ? timeout : (long)PV_ATTEST_TIMEOUT);
    SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)PV_ATTEST_MAX_BODY);
    SETOPT(CURLOPT_USERAGENT, "pavise-device/" PAVISE_VERSION);
    SETOPT(CURLOPT_HTTPHEADER, c->headers);
    SETOPT(CURLOPT_WRITEFUNCTION, on_data);
    SETOPT(CURLOPT_WRITEDATA, c);
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    SETOPT(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    SETOPT(CURLOPT_CAINFO, ca_file);
    SETOPT(CURLOPT_CAPATH, (char *)NULL);
    SETOPT(CURLOPT_POST, 1L);
    r = PV_OK;
out:
    if (r != PV_OK) {
        http_free(c);
    }
    return r;
}

/* POSTs body to base+path; the response body is left in c->resp. */
static int http_post(http *c, const char *path, const pv_buf *body, long *status, pv_err *e)
{
    char url[PV_ATTEST_MAX_URL + 1];
    int r = PV_ERR_INTERNAL;
    *status = 0;
    pv_buf_reset(c->resp);
    c->too_large = false;
    c->errbuf[0] = '\0';
    snprintf(url, sizeof(url), "%s%s", c->base, path);
    SETOPT(CURLOPT_URL, url);
    SETOPT(CURLOPT_POSTFIELDS, (const char *)pv_buf_data(body));
    SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)pv_buf_len(body));
    CURLcode cr = curl_easy_perform(c->h);
    if (c->too_large || cr == CURLE_FILESIZE_EXCEEDED) {
        r = pv_err_set(e, PV_ERR_TOO_LARGE, "POST %s: the response is over %d bytes", path,
                       PV_ATTEST_MAX_BODY);
        goto out;
    }
    if (cr != CURLE_OK) {
        r = pv_err_set(e, PV_ERR_IO, "POST %s%s: %s", c->base, path,
                       c->errbuf[0] != '\0' ? c->errbuf : curl_easy_strerror(cr));
        goto out;
    }
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, status);
    /* A body we parse must say it is CBOR; a proxy's HTML error page is not a verdict. */
    const char *ct = NULL;
    curl_easy_getinfo(c->h, CURLINFO_CONTENT_TYPE, &ct);
    if (pv_buf_len(c->resp) > 0 && (ct == NULL || strncmp(ct, "application/cbor", 16) != 0 ||
                                    (ct[16] != '\0' && ct[16] != ';'))) {
        r = pv_err_set(e, PV_ERR_IO, "POST %s: HTTP %ld with a body that is not application/cbor",
                       path, *status);
        goto out;
    }
    r = PV_OK;
out:
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, (char *)NULL);
    return r;
}

/* ---- the exchange ---- */

/* The nonce from a 201 answer to the challenge. */
static int parse_challenge(const pv_buf *b, uint8_t nonce[PV_NONCE_LEN], pv_err *e)
{
    static const int64_t keys[] = {CHR_NONCE, CHR_EXPIRES};
    cbor_item_t *root = NULL;
    const uint8_t *p = NULL;
    size_t n = 0;
    uint64_t expires = 0;
    int r = pv_cbor_check(pv_buf_data(b), pv_buf_len(b), 2, e);
    if (r == PV_OK) {
        r = pv_cbor_decode(pv_buf_data(b), pv_buf_len(b), &root, e);
    }
    if (r == PV_OK && (!cbor_isa_map(root) || !cbor_map_is_definite(root))) {
        r = pv_err_set(e, PV_ERR_FORMAT, "not a map");
    }
    if (r == PV_OK && (r = pv_cbor_map_check_keys(root, keys, 2, e)) == PV_OK &&
        (r = pv_cbor_get_bytes(pv_cbor_map_get(root, CHR_NONCE), &p, &n, e)) == PV_OK &&
        (r = pv_cbor_get_uint(pv_cbor_map_get(root, CHR_EXPIRES), &expires, e)) == PV_OK) {
        if (n != PV_NONCE_LEN) {
            r = pv_err_set(e, PV_ERR_FORMAT, "the nonce is %zu bytes, not %d", n, PV_NONCE_LEN);
        } else {
            memcpy(nonce, p, PV_NONCE_LEN);
        }
    }
    if (root != NULL) {
        cbor_decref(&root);
    }
    return r == PV_OK ? r : pv_err_wrap(e, r, "challenge response");
}

/* The OS image packages in the slots, parsed (not verified: the claim only names what
 * the log measured, and the service checks every digest against its registry). */
typedef struct slots {
    pv_imgpkg *pkg[SLOTS];
    uint8_t digest[SLOTS][PV_SHA256_LEN];
} slots;

static void slots_open(const char *state_dir, slots *s)
{
    static const char *const rel[SLOTS] = {"slots/a/" PV_DEVSTATE_SLOT_PACKAGE,
                                           "slots/b/" PV_DEVSTATE_SLOT_PACKAGE};
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < SLOTS; i++) {
        char *path = pv_devstate_path(state_dir, rel[i]);
        if (path != NULL && pv_imgpkg_open(path, &s->pkg[i], NULL) == PV_OK &&
            pv_imgpkg_manifest_digest(s->pkg[i], s->digest[i]) != PV_OK) {
            pv_imgpkg_free(s->pkg[i]);
            s->pkg[i] = NULL;
        }
        free(path);
    }
}

static void slots_close(slots *s)
{
    for (int i = 0; i < SLOTS; i++) {
        pv_imgpkg_free(s->pkg[i]);
    }
}

/* The images claim: one OS entry per os-image event whose digest is the manifest digest
 * of a package in a slot (the booted one), then the runtime's app images. An os-image
 * event with no package left to describe it gets no entry; the service then reports the
 * mismatch. */
static int fill_images(const pv_attest_opts *o, pv_evidence *ev, pv_err *e)
{
    slots s;
    size_t max = ev->n_events + o->n_app_images;
    if (o->n_app_images > 0 && o->app_images == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "app images: none given");
    }
    if (max == 0) {
        return PV_OK;
    }
    if (max > PV_EVIDENCE_MAX_IMAGES + (size_t)PV_ROT_MAX_EVENTS ||
        (ev->images = calloc(max, sizeof(*ev->images))) == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    slots_open(o->state_dir, &s);
    for (size_t i = 0; i < ev->n_events; i++) {
        if (strcmp(ev->events[i].type, "os-image") != 0) {
            continue;
        }
        for (int k = 0; k < SLOTS; k++) {
            if (s.pkg[k] == NULL || memcmp(s.digest[k], ev->events[i].digest, PV_SHA256_LEN) != 0) {
                continue;
            }
            const pv_manifest *m = pv_imgpkg_manifest(s.pkg[k]);
            pv_evidence_image *im = &ev->images[ev->n_images];
            if (strlen(m->version) > PV_EVIDENCE_MAX_VERSION) {
                break; /* the claim cannot carry it; the service reports the mismatch */
            }
            im->kind = PV_EVIDENCE_IMAGE_OS;
            memcpy(im->image_id, m->image_id, PV_UUID_LEN);
            memcpy(im->component_id, m->component_id, PV_UUID_LEN);
            memcpy(im->version, m->version, strlen(m->version) + 1);
            memcpy(im->manifest_digest, s.digest[k], PV_SHA256_LEN);
            ev->n_images++;
            break;
        }
    }
    slots_close(&s);
    for (size_t i = 0; i < o->n_app_images; i++) {
        ev->images[ev->n_images++] = o->app_images[i];
    }
    return PV_OK;
}

static int rot_signer(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[PV_ES256_SIG_LEN],
                      pv_err *e)
{
    return pv_rot_sign(ctx, msg, len, sig, e);
}

/* What the root of trust contributes: evidence (and on a TPM the quote), bound to the
 * nonce and the new TLS key. */
typedef struct signed_parts {
    pv_buf *evidence;
    pv_buf *quote;
    uint8_t quote_sig[PV_ES256_SIG_LEN];
} signed_parts;

static int sign_evidence(const pv_attest_opts *o, const attest_hooks *h, pv_rot *rot,
                         const char *device_id, const uint8_t nonce[PV_NONCE_LEN],
                         const attest_tlskey *k, signed_parts *out, pv_err *e)
{
    pv_evidence ev;
    memset(&ev, 0, sizeof(ev));
    pv_key *ak = NULL;
    int r = PV_ERR_INTERNAL;
    memcpy(ev.nonce, nonce, PV_NONCE_LEN);
    memcpy(ev.device_id, device_id, sizeof(ev.device_id));
    ev.issued_at = pv_time_now();
    ev.development = o->development;
    ev.rot_kind = pv_rot_get_kind(rot);
    if ((r = pv_evidence_binding(nonce, pv_buf_data(k->spki), pv_buf_len(k->spki), ev.binding)) !=
        PV_OK) {
        r = pv_err_set(e, r, "computing the binding");
        goto out;
    }
    if ((r = pv_rot_attestation_key(rot, &ak, e)) != PV_OK ||
        (r = pv_rot_read_measurement(rot, ev.measurement, e)) != PV_OK ||
        (r = pv_rot_event_log(rot, &ev.events, &ev.n_events, e)) != PV_OK) {
        goto out;
    }
    if (ev.rot_kind == PV_ROT_TPM) {
        /* The quote first: its clock says how often this TPM has booted, and checking it
         * here with the service's own code catches a PCR that moved since it was read. */
        pv_quote_info info;
        if ((r = pv_rot_quote(rot, ev.binding, out->quote, out->quote_sig, e)) != PV_OK) {
            goto out;
        }
        if ((r = pv_quote_verify(pv_buf_data(out->quote), pv_buf_len(out->quote), out->quote_sig,
                                 ak, ev.binding, PV_ROT_PCR, ev.measurement, &info, e)) != PV_OK) {
            pv_err_wrap(e, r, "the TPM's own quote does not check");
            goto out;
        }
        ev.boot_count = info.reset_count;
    }
    if ((r = fill_images(o, &ev, e)) != PV_OK) {
        goto out;
    }
    if (h->edit_evidence != NULL && (r = h->edit_evidence(h->ctx, &ev, e)) != PV_OK) {
        goto out;
    }
    r = pv_evidence_sign(&ev, ak, rot_signer, rot, out->evidence, e);
out:
    pv_key_free(ak);
    pv_evidence_free(&ev);
    return r;
}

static int encode_request(const signed_parts *s, bool tpm, const attest_tlskey *k, pv_buf *out,
                          pv_err *e)
{
    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, out);
    pv_cbor_put_map(&enc, tpm ? 4 : 2);
    pv_cbor_put_uint(&enc, REQ_EVIDENCE);
    pv_cbor_put_bytes(&enc, pv_buf_data(s->evidence), pv_buf_len(s->evidence));
    if (tpm) {
        pv_cbor_put_uint(&enc, REQ_QUOTE);
        pv_cbor_put_bytes(&enc, pv_buf_data(s->quote), pv_buf_len(s->quote));
        pv_cbor_put_uint(&enc, REQ_QUOTE_SIG);
        pv_cbor_put_bytes(&enc, s->quote_sig, sizeof(s->quote_sig));
    }
    pv_cbor_put_uint(&enc, REQ_CSR);
    pv_cbor_put_bytes(&enc, pv_buf_data(k->csr), pv_buf_len(k->csr));
    int r = pv_cbor_enc_result(&enc);
    return r == PV_OK ? r
                      : pv_err_set(e, r, "the attestation request: %s (limit %d bytes)",
                                   pv_strerror(r), PV_ATTEST_MAX_BODY);
}

/* The device ID and kind (first opening of the root of trust). */
static int identify(const pv_attest_opts *o, char device_id[PV_DEVICE_ID_HEX_LEN + 1],
                    pv_rot_kind *kind, pv_err *e)
{
    pv_rot *rot = NULL;
    int r = pv_devstate_open_rot(o->state_dir, NULL, o->tcti, &rot, e);
    if (r == PV_OK) {
        r = pv_rot_device_id(rot, device_id, e);
        *kind = pv_rot_get_kind(rot);
    }
    pv_rot_close(rot);
    return r;
}

/* The TCTI the root of trust uses, resolved as pv_devstate_open_rot does. */
static const char *resolve_tcti(const pv_attest_opts *o, const pv_devstate *st)
{
    if (o->tcti != NULL) {
        return o->tcti;
    }
    const char *env = getenv("PAVISE_TCTI");
    return env != NULL ? env : st->tcti;
}

/* A refusal keeps the service certificate on disk: report its expiry. */
static int64_t stored_service_not_after(const char *state_dir)
{
    char *path = pv_devstate_path(state_dir, PV_ATTEST_SERVICE_CRT);
    pv_chain *ch = NULL;
    int64_t nb = 0, na = 0;
    if (path != NULL && access(path, F_OK) == 0 && pv_chain_load_pem(path, &ch, NULL) == PV_OK) {
        pv_cert_validity(pv_chain_get(ch, 0), &nb, &na);
    }
    pv_chain_free(ch);
    free(path);
    return na;
}

/* The service refused: recorded like any verdict. */
static int record_refusal(const pv_attest_opts *o, const attest_response *rsp,
                          pv_attest_result *res, pv_err *e)
{
    res->verdict = PV_ATTEST_FAILED;
    memcpy(res->reason, rsp->reason, sizeof(res->reason));
    res->at = pv_time_now();
    res->service_not_after = stored_service_not_after(o->state_dir);
    return attest_store(o->state_dir, NULL, NULL, 0, res, e);
}

int pv_attest_run(const pv_attest_opts *o, pv_attest_result *res, pv_err *e)
{
    static const attest_hooks none = {0};
    return attest_run(o, &none, res, e);
}

int attest_run(const pv_attest_opts *o, const attest_hooks *h, pv_attest_result *res, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    pv_attest_result out;
    pv_devstate st;
    attest_tlskey k = {0}, swapped = {0};
    attest_response rsp = {0};
    signed_parts sp = {0};
    http c = {0};
    pv_rot *rot = NULL;
    pv_buf *body = NULL;
    char *ca = NULL;
    char again[PV_DEVICE_ID_HEX_LEN + 1];
    uint8_t nonce[PV_NONCE_LEN];
    long status = 0;
    pv_cbor_enc enc;
    memset(&out, 0, sizeof(out));
    if (res == NULL || o == NULL || h == NULL || o->state_dir == NULL || o->server_url == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "attest: missing argument");
    }
    memset(res, 0, sizeof(*res));
    if ((r = pv_devstate_load(o->state_dir, &st, e)) != PV_OK) {
        return r;
    }
    ca = o->ca_file != NULL ? strdup(o->ca_file)
                            : pv_devstate_path(o->state_dir, PV_ATTEST_SERVICE_CA);
    if (ca == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    if (access(ca, R_OK) != 0) {
        r = pv_err_set(e, PV_ERR_NOT_FOUND, "no service CA at %s (give the service's CA file)", ca);
        goto out;
    }
    if ((r = http_init(&c, o->server_url, ca, o->timeout, e)) != PV_OK ||
        (r = identify(o, out.device_id, &out.rot_kind, e)) != PV_OK) {
        goto out;
    }
    sp.evidence = pv_buf_new(PV_EVIDENCE_MAX_SIZE);
    sp.quote = pv_buf_new(PV_QUOTE_MAX_ATTEST);
    body = pv_buf_new(PV_ATTEST_MAX_BODY);
    if (sp.evidence == NULL || sp.quote == NULL || body == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((r = attest_tlskey_make(out.rot_kind, resolve_tcti(o, &st), out.device_id, &k, e)) !=
        PV_OK) {
        goto out;
    }

    /* Challenge. */
    pv_cbor_enc_init(&enc, body);
    pv_cbor_put_map(&enc, 1);
    pv_cbor_put_uint(&enc, CH_DEVICE);
    pv_cbor_put_text(&enc, h->challenge_device_id ? h->challenge_device_id : out.device_id);
    if ((r = pv_cbor_enc_result(&enc)) != PV_OK) {
        r = pv_err_set(e, r, "encoding the challenge request");
        goto out;
    }
    if ((r = http_post(&c, "/v1/attestation/challenge", body, &status, e)) != PV_OK) {
        goto out;
    }
    if (status != 201) {
        /* Refused before any evidence (an unknown device): a verdict like the others. */
        r = attest_parse_response(status, pv_buf_data(c.resp), pv_buf_len(c.resp), &rsp, e);
        if (r == PV_OK) {
            r = record_refusal(o, &rsp, &out, e);
        }
        goto out;
    }
    if ((r = parse_challenge(c.resp, nonce, e)) != PV_OK) {
        goto out;
    }

    /* Evidence, bound to the nonce and the new key. */
    if ((r = pv_devstate_open_rot(o->state_dir, NULL, o->tcti, &rot, e)) != PV_OK ||
        (r = pv_rot_device_id(rot, again, e)) != PV_OK) {
        goto out;
    }
    if (strcmp(again, out.device_id) != 0) {
        r = pv_err_set(e, PV_ERR_ROT, "the root of trust changed identity during attestation");
        goto out;
    }
    r = sign_evidence(o, h, h->sign_rot ? h->sign_rot : rot, out.device_id, nonce, &k, &sp, e);
    pv_rot_close(rot);
    rot = NULL;
    if (r != PV_OK) {
        goto out;
    }
    if (h->swap_tls_key && (r = attest_tlskey_make(out.rot_kind, resolve_tcti(o, &st),
                                                   out.device_id, &swapped, e)) != PV_OK) {
        goto out;
    }
    pv_buf_reset(body);
    if ((r = encode_request(&sp, out.rot_kind == PV_ROT_TPM, h->swap_tls_key ? &swapped : &k, body,
                            e)) != PV_OK ||
        (h->edit_request != NULL && (r = h->edit_request(h->ctx, body, e)) != PV_OK) ||
        (r = http_post(&c, "/v1/attestation", body, &status, e)) != PV_OK ||
        (r = attest_parse_response(status, pv_buf_data(c.resp), pv_buf_len(c.resp), &rsp, e)) !=
            PV_OK) {
        goto out;
    }
    if (rsp.verdict == PV_ATTEST_FAILED) {
        r = record_refusal(o, &rsp, &out, e);
        goto out;
    }
    out.at = pv_time_now();
    if ((r = attest_check_response(&rsp, out.device_id, pv_buf_data(k.spki), pv_buf_len(k.spki),
                                   out.at, &out.service_not_after, &out.client_not_after, e)) !=
        PV_OK) {
        goto out;
    }
    out.verdict = rsp.verdict;
    memcpy(out.reason, rsp.reason, sizeof(out.reason));
    r = attest_store(o->state_dir, &rsp, pv_buf_data(k.pem), pv_buf_len(k.pem), &out, e);
out:
    if (r == PV_OK) {
        *res = out;
    }
    pv_rot_close(rot);
    pv_buf_free(body);
    pv_buf_free(sp.evidence);
    pv_buf_free(sp.quote);
    attest_response_free(&rsp);
    attest_tlskey_free(&k);
    attest_tlskey_free(&swapped);
    http_free(&c);
    pv_wipe(nonce, sizeof(nonce));
    free(ca);
    return r;
}

/* ---- the last verdict ---- */

int pv_attest_load_status(const char *state_dir, pv_attest_result *out, pv_err *e)
{
    static const char *const fields[] = {"result",          "reason",         "at",
                                         "serviceNotAfter", "clientNotAfter", NULL};
    memset(out, 0, sizeof(*out));
    json_t *o = NULL;
    const char *result = NULL, *reason = NULL;
    uint64_t at = 0, sna = 0, cna = 0;
    char *path = pv_devstate_path(state_dir, PV_ATTEST_STATUS);
    if (path == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int r = pv_json_load_file(path, 4096, &o, e);
    if (r == PV_ERR_NOT_FOUND) {
        free(path);
        return r; /* never attested */
    }
    if (r == PV_OK && !json_is_object(o)) {
        r = pv_err_set(e, PV_ERR_FORMAT, "not a JSON object");
    }
    if (r == PV_OK && (r = pv_json_check_fields(o, fields, "attestation.json", e)) == PV_OK &&
        (r = pv_json_get_string(o, "result", true, 32, "attestation.json", &result, NULL, e)) ==
            PV_OK &&
        (r = pv_json_get_string(o, "reason", true, PV_ATTEST_MAX_REASON, "attestation.json",
                                &reason, NULL, e)) == PV_OK &&
        (r = pv_json_get_uint(o, "at", true, 0, INT64_MAX, "attestation.json", &at, NULL, e)) ==
            PV_OK &&
        (r = pv_json_get_uint(o, "serviceNotAfter", true, 0, INT64_MAX, "attestation.json", &sna,
                              NULL, e)) == PV_OK &&
        (r = pv_json_get_uint(o, "clientNotAfter", true, 0, INT64_MAX, "attestation.json", &cna,
                              NULL, e)) == PV_OK) {
        out->verdict = verdict_parse(result);
        if (out->verdict == PV_ATTEST_NONE) {
            r = pv_err_set(e, PV_ERR_FORMAT, "unknown result '%s'", result);
        } else {
            memcpy(out->reason, reason, strlen(reason) + 1);
            out->at = (int64_t)at;
            out->service_not_after = (int64_t)sna;
            out->client_not_after = (int64_t)cna;
        }
    }
    if (r != PV_OK) {
        /* A missing field is a malformed file, not a device that never attested. */
        r = pv_err_wrap(e, r == PV_ERR_NOT_FOUND ? PV_ERR_FORMAT : r, "%s", path);
        memset(out, 0, sizeof(*out));
    }
    json_decref(o);
    free(path);
    return r;
}
