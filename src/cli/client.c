/* SPDX-License-Identifier: Apache-2.0 */
/* The configuration directory and the HTTPS client of the operator commands (client.h). */
#include "client.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pavise/buf.h"
#include "pavise/fs.h"
#include "pavise/json.h"

#ifndef PAVISE_VERSION
#define PAVISE_VERSION "0.1.0"
#endif

#define CONNECT_TIMEOUT 10 /* seconds */
#define REQUEST_TIMEOUT 60 /* seconds, the whole request */
#ifndef CLI_PAGE_SIZE
#define CLI_PAGE_SIZE 1000 /* items per request (the server's maximum); small in tests */
#endif
#define MAX_TOKEN  512
#define MAX_CONFIG (64 * 1024)

/* ---- configuration ---- */

static int join(char *out, size_t size, const char *a, const char *b, pv_err *e)
{
    int n = snprintf(out, size, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= size) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "path too long: %s/%s", a, b);
    }
    return PV_OK;
}

int cli_config_dir(char *out, size_t size, pv_err *e)
{
    const char *v = getenv("PAVISE_CONFIG_DIR");
    if (v != NULL && v[0] != '\0') {
        int n = snprintf(out, size, "%s", v);
        return n < 0 || (size_t)n >= size
                   ? pv_err_set(e, PV_ERR_TOO_LARGE, "PAVISE_CONFIG_DIR is too long")
                   : PV_OK;
    }
    /* XDG: a relative XDG_CONFIG_HOME is invalid and must be ignored. */
    v = getenv("XDG_CONFIG_HOME");
    if (v != NULL && v[0] == '/') {
        return join(out, size, v, "pavise", e);
    }
    v = getenv("HOME");
    if (v != NULL && v[0] != '\0') {
        return join(out, size, v, ".config/pavise", e);
    }
    return pv_err_set(e, PV_ERR_INVALID_ARG,
                      "cannot tell where the configuration lives: set PAVISE_CONFIG_DIR or HOME");
}

int cli_config_mkdir(const char *dir, pv_err *e)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "path too long: %s", dir);
    }
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') {
        path[--len] = '\0';
    }
    /* Parents like any mkdir -p; the directory itself is private: it holds the key. */
    for (char *p = path + 1; *p != '\0'; p++) {
        if (*p != '/') {
            continue;
        }
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            return pv_err_sys(e, PV_ERR_IO, errno, "cannot create %s", path);
        }
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        return pv_err_sys(e, PV_ERR_IO, errno, "cannot create %s", path);
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return pv_err_set(e, PV_ERR_IO, "%s is not a directory", path);
    }
    return PV_OK;
}

int cli_config_path(const cli_config *cfg, const char *name, char *out, size_t size, pv_err *e)
{
    return join(out, size, cfg->dir, name, e);
}

bool cli_is_uuid(const char *s)
{
    if (strlen(s) != 36) {
        return false;
    }
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

static void lower_copy(char *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = (char)tolower((unsigned char)s[i]);
    }
    out[n] = '\0';
}

int cli_check_server_url(const char *url, char *out, size_t size, pv_err *e)
{
    int r = PV_ERR_USAGE;
    CURLU *u = NULL;
    char *host = NULL, *user = NULL, *query = NULL, *frag = NULL;
    if (strncasecmp(url, "http://", 7) == 0) {
        return pv_err_set(e, PV_ERR_USAGE,
                          "--server: '%s' is not https: the CLI only talks to the server over "
                          "HTTPS (use https://)",
                          url);
    }
    if (strncasecmp(url, "https://", 8) != 0) {
        return pv_err_set(e, PV_ERR_USAGE, "--server: '%s' is not an https:// URL", url);
    }
    for (const unsigned char *p = (const unsigned char *)url; *p != '\0'; p++) {
        if (*p <= 0x20 || *p == 0x7f) {
            return pv_err_set(e, PV_ERR_USAGE,
                              "--server: the URL contains a space or a control character");
        }
    }
    size_t len = strlen(url);
    while (len > 8 && url[len - 1] == '/') {
        len--;
    }
    if (len >= size) {
        return pv_err_set(e, PV_ERR_USAGE, "--server: the URL is too long");
    }
    memcpy(out, url, len);
    out[len] = '\0';
    if ((u = curl_url()) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (curl_url_set(u, CURLUPART_URL, out, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
        r = pv_err_set(e, PV_ERR_USAGE, "--server: '%s' is not a valid URL", url);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
        r = pv_err_set(e, PV_ERR_USAGE,
                       "--server: give the server as https://HOST[:PORT] (no user name, query "
                       "or fragment)");
        goto out;
    }
    r = PV_OK;
out:
    if (r != PV_OK && size > 0) {
        out[0] = '\0';
    }
    curl_free(host);
    curl_free(user);
    curl_free(query);
    curl_free(frag);
    curl_url_cleanup(u);
    return r;
}

int cli_parse_fingerprint(const char *s, uint8_t out[PV_SHA256_LEN], pv_err *e)
{
    char hex[2 * PV_SHA256_LEN + 1];
    size_t n = 0;
    const char *p = s;
    memset(out, 0, PV_SHA256_LEN);
    if (strncasecmp(p, "SHA256:", 7) == 0) {
        p += 7;
    }
    for (size_t i = 0; p[i] != '\0'; i++) {
        if (p[i] == ':' && n > 0 && n % 2 == 0 && p[i + 1] != '\0' && p[i + 1] != ':') {
            continue; /* a colon between two bytes */
        }
        if (!isxdigit((unsigned char)p[i]) || n >= 2 * PV_SHA256_LEN) {
            n = 0;
            break;
        }
        hex[n++] = (char)tolower((unsigned char)p[i]);
    }
    if (n != 2 * PV_SHA256_LEN) {
        return pv_err_set(e, PV_ERR_USAGE,
                          "--fingerprint: '%s' is not a SHA-256 fingerprint (64 hex digits, "
                          "optionally with colons between bytes)",
                          s);
    }
    hex[n] = '\0';
    if (pv_hex_decode(hex, out, PV_SHA256_LEN) != PV_OK) {
        return pv_err_set(e, PV_ERR_USAGE, "--fingerprint: '%s' is not hexadecimal", s);
    }
    return PV_OK;
}

static const char *const config_fields[] = {"server", "tenant", NULL};

int cli_config_load(const char *dir, cli_config *cfg, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    json_t *root = NULL;
    char path[PATH_MAX];
    memset(cfg, 0, sizeof(*cfg));
    if (snprintf(cfg->dir, sizeof(cfg->dir), "%s", dir) >= (int)sizeof(cfg->dir)) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "path too long: %s", dir);
    }
    if ((r = join(path, sizeof(path), dir, CLI_CONFIG_FILE, e)) != PV_OK) {
        return r;
    }
    r = pv_json_load_file(path, MAX_CONFIG, &root, e);
    if (r == PV_ERR_NOT_FOUND) {
        pv_err_clear(e);
        return PV_OK; /* not logged in */
    }
    if (r != PV_OK) {
        /* The message already names the file. */
        r = pv_err_wrap(e, r == PV_ERR_TOO_LARGE ? PV_ERR_FORMAT : r, "damaged configuration");
        goto out;
    }
    const char *server = NULL, *tenant = NULL;
    char url[CLI_MAX_URL];
    if (!json_is_object(root)) {
        r = pv_err_set(e, PV_ERR_FORMAT, "damaged configuration %s: not a JSON object", path);
        goto out;
    }
    if ((r = pv_json_check_fields(root, config_fields, path, e)) != PV_OK ||
        (r = pv_json_get_string(root, "server", true, CLI_MAX_URL - 1, path, &server, NULL, e)) !=
            PV_OK) {
        r = pv_err_wrap(e, PV_ERR_FORMAT, "damaged configuration");
        goto out;
    }
    json_t *t = json_object_get(root, "tenant");
    if (t != NULL && !json_is_null(t)) {
        tenant = json_string_value(t);
        if (tenant == NULL || !cli_is_uuid(tenant)) {
            r = pv_err_set(e, PV_ERR_FORMAT,
                           "damaged configuration %s: field 'tenant': expected a tenant ID "
                           "(select one again with `pavise tenant select`)",
                           path);
            goto out;
        }
    }
    if (cli_check_server_url(server, url, sizeof(url), e) != PV_OK) {
        r = pv_err_wrap(e, PV_ERR_FORMAT, "damaged configuration %s: field 'server'", path);
        goto out;
    }
    memcpy(cfg->server, url, sizeof(url));
    if (tenant != NULL) {
        lower_copy(cfg->tenant, tenant, 36);
    }
    r = PV_OK;
out:
    if (r != PV_OK) {
        cfg->server[0] = '\0';
        cfg->tenant[0] = '\0';
    }
    json_decref(root);
    return r;
}

int cli_config_save(const cli_config *cfg, pv_err *e)
{
    int r = PV_ERR_NOMEM;
    char path[PATH_MAX];
    char *text = NULL;
    json_t *root = json_pack("{s:s, s:o}", "server", cfg->server, "tenant",
                             cfg->tenant[0] != '\0' ? json_string(cfg->tenant) : json_null());
    if (root == NULL || (text = json_dumps(root, JSON_INDENT(2))) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((r = join(path, sizeof(path), cfg->dir, CLI_CONFIG_FILE, e)) != PV_OK) {
        goto out;
    }
    size_t len = strlen(text);
    text[len] = '\n'; /* replaces the NUL: the file ends with a newline */
    r = pv_fs_write_file(path, text, len + 1, 0600, true, e);
out:
    free(text);
    json_decref(root);
    return r;
}

/* ---- the HTTPS client ---- */

/* Pin mode: the state the OpenSSL verify callback works on. */
typedef struct pin_state {
    uint8_t pin[PV_SHA256_LEN];
    X509 *matched;           /* the pinned CA after a successful verification */
    STACK_OF(X509) * anchor; /* the trusted stack handed to the X509_STORE_CTX */
    char reason[256];        /* why verification failed, for the error message */
} pin_state;

struct cli_client {
    CURL *h;
    struct curl_slist *headers;
    char base[CLI_MAX_URL];
    bool pin_mode;
    pin_state pin;
    pv_buf *resp;
    bool too_large;
    char errbuf[CURL_ERROR_SIZE];
};

/* A self-signed CA certificate whose DER hashes to the pin. */
static bool is_pinned_ca(X509 *x, const uint8_t pin[PV_SHA256_LEN])
{
    unsigned char *der = NULL;
    uint8_t fp[PV_SHA256_LEN];
    int len = i2d_X509(x, &der);
    if (len <= 0) {
        return false;
    }
    int ok = pv_sha256_digest(der, (size_t)len, fp);
    OPENSSL_free(der);
    return ok == PV_OK && memcmp(fp, pin, sizeof(fp)) == 0 && X509_check_ca(x) == 1 &&
           X509_self_signed(x, 1) == 1;
}

/* Replaces OpenSSL's chain verification during `pavise login --fingerprint`: the chain
 * the server presented is verified exactly as usual (same parameters, purpose, depth and
 * time checks), but the only trust anchor is the presented CA certificate that matches
 * the pin. Nothing is ever accepted unverified: no match or a chain that does not verify
 * fails the handshake. curl checks the host name afterwards as always. */
static int pin_verify(X509_STORE_CTX *ctx, void *arg)
{
    pin_state *ps = arg;
    X509 *leaf = X509_STORE_CTX_get0_cert(ctx);
    STACK_OF(X509) *presented = X509_STORE_CTX_get0_untrusted(ctx);
    X509 *anchor = NULL;
    int n = presented != NULL ? sk_X509_num(presented) : 0;
    for (int i = -1; i < n && anchor == NULL; i++) {
        X509 *x = i < 0 ? leaf : sk_X509_value(presented, i);
        if (x != NULL && is_pinned_ca(x, ps->pin)) {
            anchor = x;
        }
    }
    if (anchor == NULL) {
        snprintf(ps->reason, sizeof(ps->reason),
                 "the server presented no CA certificate with that SHA-256 fingerprint");
        X509_STORE_CTX_set_error(ctx, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
        return 0;
    }
    sk_X509_pop_free(ps->anchor, X509_free);
    if ((ps->anchor = sk_X509_new_null()) == NULL || X509_up_ref(anchor) != 1) {
        X509_STORE_CTX_set_error(ctx, X509_V_ERR_OUT_OF_MEM);
        return 0;
    }
    if (sk_X509_push(ps->anchor, anchor) <= 0) {
        X509_free(anchor);
        X509_STORE_CTX_set_error(ctx, X509_V_ERR_OUT_OF_MEM);
        return 0;
    }
    X509_STORE_CTX_set0_trusted_stack(ctx, ps->anchor);
    if (X509_verify_cert(ctx) != 1) {
        snprintf(ps->reason, sizeof(ps->reason),
                 "the server's certificate does not verify with the pinned CA: %s",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        return 0;
    }
    /* Fail closed: the verified path must end at the pinned certificate. */
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
    X509 *top = chain != NULL && sk_X509_num(chain) > 0
                    ? sk_X509_value(chain, sk_X509_num(chain) - 1)
                    : NULL;
    if (top == NULL || X509_cmp(top, anchor) != 0 || X509_up_ref(anchor) != 1) {
        snprintf(ps->reason, sizeof(ps->reason), "the verified chain does not end at the pin");
        X509_STORE_CTX_set_error(ctx, X509_V_ERR_UNSPECIFIED);
        return 0;
    }
    X509_free(ps->matched);
    ps->matched = anchor;
    return 1;
}

static CURLcode on_ssl_ctx(CURL *h, void *ssl_ctx, void *arg)
{
    (void)h;
    cli_client *c = arg;
    /* Also set by CURLOPT_SSLVERSION; repeated here so no curl default can lower it. */
    if (SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION) != 1) {
        return CURLE_SSL_CIPHER;
    }
    if (c->pin_mode) {
        SSL_CTX_set_cert_verify_callback(ssl_ctx, pin_verify, &c->pin);
    }
    return CURLE_OK;
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    cli_client *c = arg;
    if (size != 1 || pv_buf_append(c->resp, p, n) != PV_OK) {
        c->too_large = true;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    return n;
}

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (curl_easy_setopt(c->h, opt, val) != CURLE_OK) {                                        \
            r = pv_err_set(e, PV_ERR_INTERNAL, "libcurl does not support %s", #opt);               \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

int cli_client_new(const char *base_url, const cli_tls *tls, cli_client **out, pv_err *e)
{
    int r = PV_ERR_NOMEM;
    cli_client *c = NULL;
    *out = NULL;
    if ((tls->ca_file == NULL) == (tls->pin == NULL)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "give either a CA file or a pin");
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return pv_err_set(e, PV_ERR_INTERNAL, "libcurl could not be initialised");
    }
    if ((c = calloc(1, sizeof(*c))) == NULL || (c->h = curl_easy_init()) == NULL ||
        (c->resp = pv_buf_new(CLI_MAX_RESPONSE)) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (snprintf(c->base, sizeof(c->base), "%s", base_url) >= (int)sizeof(c->base)) {
        r = pv_err_set(e, PV_ERR_TOO_LARGE, "the server URL is too long");
        goto out;
    }
    struct curl_slist *h1 = curl_slist_append(NULL, "Accept: application/json");
    struct curl_slist *h2 = h1 ? curl_slist_append(h1, "Content-Type: application/json") : NULL;
    /* No "Expect: 100-continue" round trip: bodies are small. */
    struct curl_slist *h3 = h2 ? curl_slist_append(h2, "Expect:") : NULL;
    if (h3 == NULL) {
        curl_slist_free_all(h1);
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    c->headers = h3;
    SETOPT(CURLOPT_ERRORBUFFER, c->errbuf);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_PROTOCOLS_STR, "https");
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "https");
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT);
    SETOPT(CURLOPT_TIMEOUT, (long)REQUEST_TIMEOUT);
    SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)CLI_MAX_RESPONSE);
    SETOPT(CURLOPT_USERAGENT, "pavise/" PAVISE_VERSION);
    SETOPT(CURLOPT_HTTPHEADER, c->headers);
    SETOPT(CURLOPT_WRITEFUNCTION, on_data);
    SETOPT(CURLOPT_WRITEDATA, c);
    /* TLS: verification is always on; there is deliberately no way to turn it off. */
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    SETOPT(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    /* The pinned CA is the only anchor: no system bundle, no CA directory, and no
     * partial chains (an intermediate cannot become an anchor). */
    SETOPT(CURLOPT_CAINFO, tls->ca_file);
    SETOPT(CURLOPT_CAPATH, (char *)NULL);
    SETOPT(CURLOPT_SSL_OPTIONS, (long)CURLSSLOPT_NO_PARTIALCHAIN);
    SETOPT(CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
    SETOPT(CURLOPT_SSL_CTX_DATA, c);
    if (tls->pin != NULL) {
        c->pin_mode = true;
        memcpy(c->pin.pin, tls->pin, PV_SHA256_LEN);
    }
    if (tls->client_cert != NULL) {
        SETOPT(CURLOPT_SSLCERT, tls->client_cert);
        SETOPT(CURLOPT_SSLCERTTYPE, "PEM");
        SETOPT(CURLOPT_SSLKEY, tls->client_key);
        SETOPT(CURLOPT_SSLKEYTYPE, "PEM");
    }
    *out = c;
    c = NULL;
    r = PV_OK;
out:
    cli_client_free(c);
    return r;
}

void cli_client_free(cli_client *c)
{
    if (c == NULL) {
        return;
    }
    curl_easy_cleanup(c->h);
    curl_slist_free_all(c->headers);
    pv_buf_free(c->resp);
    X509_free(c->pin.matched);
    sk_X509_pop_free(c->pin.anchor, X509_free);
    free(c);
}

/* The transport failure as an error the user can act on. */
static int transport_error(cli_client *c, CURLcode cc, pv_err *e)
{
    const char *detail = c->errbuf[0] != '\0' ? c->errbuf : curl_easy_strerror(cc);
    if (c->too_large || cc == CURLE_FILESIZE_EXCEEDED) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "%s: the response is larger than %d MiB", c->base,
                          CLI_MAX_RESPONSE / (1024 * 1024));
    }
    if (c->pin_mode && c->pin.reason[0] != '\0') {
        return pv_err_set(e, PV_ERR_UNTRUSTED, "%s: %s", c->base, c->pin.reason);
    }
    switch (cc) {
    case CURLE_PEER_FAILED_VERIFICATION:
        return pv_err_set(
            e, PV_ERR_UNTRUSTED,
            "%s: the server's certificate is not accepted (is ca.crt this server's CA?): %s",
            c->base, detail);
    case CURLE_SSL_CERTPROBLEM:
        return pv_err_set(e, PV_ERR_IO, "%s: the operator certificate cannot be used: %s", c->base,
                          detail);
    case CURLE_OPERATION_TIMEDOUT:
        return pv_err_set(e, PV_ERR_IO, "%s: no answer in time: %s", c->base, detail);
    default:
        return pv_err_set(e, PV_ERR_IO, "cannot reach %s: %s", c->base, detail);
    }
}

int cli_client_request(cli_client *c, const char *method, const char *path, const json_t *body,
                       long *status, json_t **out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    char url[CLI_MAX_URL + 2048];
    char *text = NULL;
    *status = 0;
    *out = NULL;
    int n = snprintf(url, sizeof(url), "%s%s", c->base, path);
    if (n < 0 || (size_t)n >= sizeof(url)) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "the request URL is too long");
    }
    bool with_body = strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0;
    if (with_body) {
        text = body != NULL ? json_dumps(body, JSON_COMPACT) : strdup("{}");
        if (text == NULL) {
            return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        }
    }
    pv_buf_reset(c->resp);
    c->too_large = false;
    c->errbuf[0] = '\0';
    c->pin.reason[0] = '\0';
    /* The handle is reused so that list pages share a connection: reset the method. */
    SETOPT(CURLOPT_URL, url);
    SETOPT(CURLOPT_HTTPGET, 1L);
    SETOPT(CURLOPT_CUSTOMREQUEST, (char *)NULL);
    if (with_body) {
        /* Not copied by curl, so the body (which may hold an enrollment code) is wiped
         * below rather than left in a copy. */
        SETOPT(CURLOPT_POSTFIELDSIZE, (long)strlen(text));
        SETOPT(CURLOPT_POSTFIELDS, text);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0) {
        SETOPT(CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode cc = curl_easy_perform(c->h);
    if (cc != CURLE_OK) {
        r = transport_error(c, cc, e);
        goto out;
    }
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, status);
    if (pv_buf_len(c->resp) > 0) {
        r = pv_json_parse((const char *)pv_buf_data(c->resp), pv_buf_len(c->resp), out, e);
        if (r != PV_OK && *status >= 200 && *status < 300) {
            r = pv_err_wrap(e, PV_ERR_FORMAT, "%s answered HTTP %ld with a body that is not JSON",
                            c->base, *status);
            goto out;
        }
        /* An error page that is not JSON (a proxy's, say) still reports its status. */
        pv_err_clear(e);
    }
    r = PV_OK;
out:
    if (text != NULL) {
        pv_wipe(text, strlen(text));
        free(text);
        /* curl must not keep a pointer to the freed body. */
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, (char *)NULL);
    }
    return r;
}

int cli_client_pinned_ca(const cli_client *c, pv_cert **out, pv_err *e)
{
    unsigned char *der = NULL;
    *out = NULL;
    if (c->pin.matched == NULL) {
        return pv_err_set(e, PV_ERR_NOT_FOUND, "no CA certificate matched the pin");
    }
    int len = i2d_X509(c->pin.matched, &der);
    if (len <= 0) {
        return pv_err_ssl(e, PV_ERR_CRYPTO, "encoding the pinned CA certificate");
    }
    int r = pv_cert_from_der(der, (size_t)len, out, e);
    OPENSSL_free(der);
    return r;
}

static const char *status_name(long status)
{
    switch (status) {
    case 400:
        return "bad_request";
    case 401:
        return "unauthenticated";
    case 403:
        return "forbidden";
    case 404:
        return "not_found";
    case 405:
        return "method_not_allowed";
    case 409:
        return "conflict";
    case 413:
        return "payload_too_large";
    case 415:
        return "unsupported_media_type";
    case 500:
        return "internal";
    case 503:
        return "unavailable";
    default:
        return NULL;
    }
}

int cli_http_error(long status, const json_t *body, pv_err *e)
{
    const json_t *err = json_object_get(body, "error");
    const char *msg = json_string_value(json_object_get(err, "message"));
    const char *code = json_string_value(json_object_get(err, "code"));
    int pv = PV_ERR_IO;
    if (status == 401 || status == 403) {
        pv = CLI_ERR_DENIED;
    } else if (status == 404) {
        pv = CLI_ERR_NOT_FOUND;
    } else if (status == 409) {
        pv = CLI_ERR_CONFLICT;
    } else if (status >= 400 && status < 500) {
        pv = PV_ERR_FORMAT; /* the request was refused as invalid: exit 3 */
    }
    if (code == NULL || strlen(code) > 40) {
        code = status_name(status);
    }
    if (msg == NULL || msg[0] == '\0') {
        msg = status >= 500                   ? "the server failed"
              : status >= 400 && status < 500 ? "the server refused the request"
                                              : "unexpected answer from the server";
    }
    return pv_err_set(e, pv, "%.700s (HTTP %ld%s%s)", msg, status, code != NULL ? " " : "",
                      code != NULL ? code : "");
}

/* ---- sessions ---- */

int cli_check_device_id(const char *value, char out[65], pv_err *e)
{
    size_t n = strlen(value);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)value[i])) {
            n = 0;
        }
    }
    if (n != 64) {
        return pv_err_set(e, PV_ERR_USAGE, "--device: '%s' is not a device ID (64 hex digits)",
                          value);
    }
    lower_copy(out, value, 64);
    return PV_OK;
}

int cli_get_limit(const cli_cmd *cmd, const cli_args *args, size_t *limit, pv_err *e)
{
    const char *s = cli_get(cmd, args, "limit");
    uint64_t v = 0;
    *limit = 0;
    if (s == NULL) {
        return PV_OK;
    }
    int r = cli_parse_uint(s, "--limit", CLI_MAX_LIST_ITEMS, &v, e);
    if (r != PV_OK) {
        return r;
    }
    if (v == 0) {
        return pv_err_set(e, PV_ERR_USAGE, "--limit: give at least 1");
    }
    *limit = (size_t)v;
    return PV_OK;
}

int cli_session_open(const cli_cmd *cmd, const cli_args *args, bool need_tenant, cli_session *s,
                     pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    char dir[PATH_MAX], key[PATH_MAX], cert[PATH_MAX], ca[PATH_MAX];
    const char *server = cli_get(cmd, args, "server");
    const char *tenant = cli_get(cmd, args, "tenant");
    memset(s, 0, sizeof(*s));
    if (server != NULL &&
        (r = cli_check_server_url(server, s->server, sizeof(s->server), e)) != PV_OK) {
        return r;
    }
    if ((r = cli_config_dir(dir, sizeof(dir), e)) != PV_OK ||
        (r = cli_config_load(dir, &s->cfg, e)) != PV_OK) {
        return r;
    }
    if (s->cfg.server[0] == '\0') {
        return pv_err_set(e, CLI_ERR_DENIED,
                          "not logged in (no %s/%s): run `pavise login --server URL --ca FILE "
                          "--enroll CODE` first",
                          dir, CLI_CONFIG_FILE);
    }
    if (server == NULL) {
        memcpy(s->server, s->cfg.server, sizeof(s->server));
    }
    if ((r = cli_config_path(&s->cfg, CLI_KEY_FILE, key, sizeof(key), e)) != PV_OK ||
        (r = cli_config_path(&s->cfg, CLI_CERT_FILE, cert, sizeof(cert), e)) != PV_OK ||
        (r = cli_config_path(&s->cfg, CLI_CA_FILE, ca, sizeof(ca), e)) != PV_OK) {
        return r;
    }
    const char *const need[] = {key, cert, ca};
    for (size_t i = 0; i < 3; i++) {
        struct stat st;
        if (stat(need[i], &st) != 0) {
            return pv_err_sys(e, CLI_ERR_DENIED, errno,
                              "not logged in: %s is missing (log in again with `pavise login "
                              "--force`)",
                              need[i]);
        }
        /* Like ssh: a private key others can read is not used. */
        if (i == 0 && (st.st_mode & 077) != 0) {
            return pv_err_set(e, PV_ERR_UNSAFE,
                              "%s is accessible by other users (mode %03o): run chmod 600 on it",
                              key, (unsigned)(st.st_mode & 0777));
        }
    }
    cli_tls tls = {.ca_file = ca, .client_cert = cert, .client_key = key};
    if ((r = cli_client_new(s->server, &tls, &s->client, e)) != PV_OK) {
        return r;
    }
    if (!need_tenant) {
        return PV_OK;
    }
    if (tenant != NULL) {
        r = cli_resolve_tenant(s, tenant, s->tenant_id, e);
    } else if (s->cfg.tenant[0] != '\0') {
        memcpy(s->tenant_id, s->cfg.tenant, sizeof(s->tenant_id));
        r = PV_OK;
    } else {
        r = pv_err_set(e, PV_ERR_USAGE,
                       "no tenant selected: run `pavise tenant select --tenant NAME` (or give "
                       "--tenant)");
    }
    if (r != PV_OK) {
        cli_session_close(s);
    }
    return r;
}

void cli_session_close(cli_session *s)
{
    cli_client_free(s->client);
    s->client = NULL;
}

int cli_call(cli_session *s, const char *method, const char *path, const json_t *body, long *status,
             json_t **out, pv_err *e)
{
    long st = 0;
    json_t *resp = NULL;
    if (out != NULL) {
        *out = NULL;
    }
    int r = cli_client_request(s->client, method, path, body, &st, &resp, e);
    if (status != NULL) {
        *status = st;
    }
    if (r != PV_OK) {
        return r;
    }
    if (st < 200 || st >= 300) {
        r = cli_http_error(st, resp, e);
        json_decref(resp);
        return r;
    }
    if (out != NULL) {
        *out = resp;
    } else {
        json_decref(resp);
    }
    return PV_OK;
}

int cli_call_raw(cli_session *s, const char *path, uint8_t **body, size_t *len, pv_err *e)
{
    cli_client *c = s->client;
    char url[CLI_MAX_URL + 2048];
    long st = 0;
    int r = PV_ERR_INTERNAL;
    *body = NULL;
    *len = 0;
    int n = snprintf(url, sizeof(url), "%s%s", c->base, path);
    if (n < 0 || (size_t)n >= sizeof(url)) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "the request URL is too long");
    }
    pv_buf_reset(c->resp);
    c->too_large = false;
    c->errbuf[0] = '\0';
    c->pin.reason[0] = '\0';
    SETOPT(CURLOPT_URL, url);
    SETOPT(CURLOPT_HTTPGET, 1L);
    SETOPT(CURLOPT_CUSTOMREQUEST, (char *)NULL);
    CURLcode cc = curl_easy_perform(c->h);
    if (cc != CURLE_OK) {
        r = transport_error(c, cc, e);
        goto out;
    }
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &st);
    if (st < 200 || st >= 300) {
        json_t *err = NULL;
        pv_err ignored;
        if (pv_buf_len(c->resp) > 0) {
            (void)pv_json_parse((const char *)pv_buf_data(c->resp), pv_buf_len(c->resp), &err,
                                &ignored);
        }
        r = cli_http_error(st, err, e);
        json_decref(err);
        goto out;
    }
    if ((r = pv_buf_append_u8(c->resp, 0)) != PV_OK) {
        r = pv_err_set(e, PV_ERR_TOO_LARGE, "%s: the response is too large", c->base);
        goto out;
    }
    *body = pv_buf_steal(c->resp, len);
    if (*body == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    (*len)--; /* the NUL */
    r = PV_OK;
out:
    return r;
}

static int vpath(char *out, size_t size, pv_err *e, const char *fmt, va_list ap)
{
    static const char hexd[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const char *f = fmt; *f != '\0'; f++) {
        if (*f != '%') {
            if (n + 1 >= size) {
                goto too_long;
            }
            out[n++] = *f;
            continue;
        }
        for (const unsigned char *a = va_arg(ap, const unsigned char *); *a != '\0'; a++) {
            bool plain = isalnum(*a) || *a == '-' || *a == '.' || *a == '_' || *a == '~';
            if (n + (plain ? 1 : 3) >= size) {
                goto too_long;
            }
            if (plain) {
                out[n++] = (char)*a;
            } else {
                out[n++] = '%';
                out[n++] = hexd[*a >> 4];
                out[n++] = hexd[*a & 0xf];
            }
        }
    }
    out[n] = '\0';
    return PV_OK;
too_long:
    out[0] = '\0';
    return pv_err_set(e, PV_ERR_TOO_LARGE, "request path too long");
}

int cli_path(char *out, size_t size, pv_err *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vpath(out, size, e, fmt, ap);
    va_end(ap);
    return r;
}

int cli_list(cli_session *s, const char *path, size_t limit, json_t **items, pv_err *e)
{
    int r = PV_ERR_NOMEM;
    json_t *all = json_array(), *page = NULL;
    char token[MAX_TOKEN + 1] = "", url[4096], tok_q[3 * MAX_TOKEN + 32];
    *items = NULL;
    if (all == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    for (;;) {
        size_t want = CLI_PAGE_SIZE;
        if (limit > 0 && limit - json_array_size(all) < want) {
            want = limit - json_array_size(all);
        }
        tok_q[0] = '\0';
        if (token[0] != '\0' &&
            (r = cli_path(tok_q, sizeof(tok_q), e, "&continuation_token=%", token)) != PV_OK) {
            goto out;
        }
        int n = snprintf(url, sizeof(url), "%s%climit=%zu%s", path,
                         strchr(path, '?') != NULL ? '&' : '?', want, tok_q);
        if (n < 0 || (size_t)n >= sizeof(url)) {
            r = pv_err_set(e, PV_ERR_TOO_LARGE, "request path too long");
            goto out;
        }
        if ((r = cli_call(s, "GET", url, NULL, NULL, &page, e)) != PV_OK) {
            goto out;
        }
        json_t *got = json_object_get(page, "items");
        json_t *next = json_object_get(page, "continuation_token");
        if (!json_is_array(got) || (next != NULL && !json_is_null(next) && !json_is_string(next))) {
            r = pv_err_set(e, PV_ERR_FORMAT, "%s: the server sent a list without items", path);
            goto out;
        }
        for (size_t i = 0; i < json_array_size(got); i++) {
            if (limit > 0 && json_array_size(all) >= limit) {
                break;
            }
            if (json_array_append(all, json_array_get(got, i)) != 0) {
                r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
                goto out;
            }
        }
        const char *nt = json_string_value(next);
        if (nt == NULL || (limit > 0 && json_array_size(all) >= limit)) {
            break;
        }
        if (json_array_size(all) >= CLI_MAX_LIST_ITEMS) {
            r = pv_err_set(e, PV_ERR_TOO_LARGE, "the list has more than %d items: use --limit",
                           CLI_MAX_LIST_ITEMS);
            goto out;
        }
        /* A token that is empty, huge or the same as before would never end the loop. */
        if (nt[0] == '\0' || strlen(nt) > MAX_TOKEN || strcmp(nt, token) == 0 ||
            json_array_size(got) == 0) {
            r = pv_err_set(e, PV_ERR_FORMAT, "%s: the server sent an unusable continuation token",
                           path);
            goto out;
        }
        snprintf(token, sizeof(token), "%s", nt);
        json_decref(page);
        page = NULL;
    }
    *items = all;
    all = NULL;
    r = PV_OK;
out:
    json_decref(page);
    json_decref(all);
    return r;
}

const char *cli_str(const json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));
    return v != NULL ? v : "";
}

/* Looks up a name in a list filtered by ?name=...; what is "tenant", "product", ... */
static int resolve_one(cli_session *s, const char *path, const char *what, const char *name,
                       const char *hint, char out[37], pv_err *e)
{
    json_t *items = NULL;
    int r = cli_list(s, path, 2, &items, e);
    if (r != PV_OK) {
        return r;
    }
    size_t n = json_array_size(items);
    const char *id = cli_str(json_array_get(items, 0), "id");
    if (n == 0) {
        r = pv_err_set(e, CLI_ERR_NOT_FOUND, "no %s named '%s'%s", what, name, hint);
    } else if (n > 1) {
        r = pv_err_set(e, PV_ERR_USAGE, "several %ss are named '%s': give the ID", what, name);
    } else if (!cli_is_uuid(id)) {
        r = pv_err_set(e, PV_ERR_FORMAT, "the server sent a %s without a valid ID", what);
    } else {
        lower_copy(out, id, 36);
        r = PV_OK;
    }
    json_decref(items);
    return r;
}

int cli_resolve_tenant(cli_session *s, const char *value, char out[37], pv_err *e)
{
    char path[1024];
    out[0] = '\0';
    if (cli_is_uuid(value)) {
        lower_copy(out, value, 36);
        return PV_OK;
    }
    int r = cli_path(path, sizeof(path), e, "/v1/tenants?name=%", value);
    return r != PV_OK ? r
                      : resolve_one(s, path, "tenant", value,
                                    " among your tenants (see `pavise tenant list`)", out, e);
}

int cli_resolve_product(cli_session *s, const char *value, char out[37], pv_err *e)
{
    char path[1024];
    out[0] = '\0';
    if (cli_is_uuid(value)) {
        lower_copy(out, value, 36);
        return PV_OK;
    }
    int r = cli_path(path, sizeof(path), e, "/v1/tenants/%/products?name=%", s->tenant_id, value);
    return r != PV_OK ? r
                      : resolve_one(s, path, "product", value,
                                    " in this tenant (see `pavise product list`)", out, e);
}

int cli_resolve_group(cli_session *s, const char *value, char out[37], pv_err *e)
{
    char path[1024], product_id[37], product[256];
    out[0] = '\0';
    if (cli_is_uuid(value)) {
        lower_copy(out, value, 36);
        return PV_OK;
    }
    /* "PRODUCT/GROUP": the first '/' separates them, so group names may contain one. */
    const char *slash = strchr(value, '/');
    if (slash == NULL || slash == value || slash[1] == '\0' ||
        (size_t)(slash - value) >= sizeof(product)) {
        return pv_err_set(e, PV_ERR_USAGE,
                          "--device-group: '%s' is neither a device group ID nor PRODUCT/GROUP",
                          value);
    }
    memcpy(product, value, (size_t)(slash - value));
    product[slash - value] = '\0';
    int r = cli_resolve_product(s, product, product_id, e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = cli_path(path, sizeof(path), e, "/v1/tenants/%/device-groups?product_id=%&name=%",
                      s->tenant_id, product_id, slash + 1)) != PV_OK) {
        return r;
    }
    return resolve_one(s, path, "device group", value,
                       " in this tenant (see `pavise device-group list`)", out, e);
}
