/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server's CA and TLS identity in DATA. The CA signs two kinds of certificates: the
 * server's own TLS certificate (once, at init) and operator client certificates (at
 * enrollment). Both private keys live in 0600 files in a 0700 directory; like OpenSSH,
 * a key file that others can read is refused rather than used.
 */
#include "ca.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "pavise/fs.h"
#include "pavise/log.h"
#include "pavise/platform.h"

#include "tenant_ca.h"

#define CA_KEY      "ca.key"
#define CA_CERT     "ca.crt"
#define SERVER_KEY  "server.key"
#define SERVER_CERT "server.crt"

#define DAY                 INT64_C(86400)
#define CA_DAYS             3653 /* ten years */
#define SERVER_DAYS         730
#define CLOCK_SKEW          300 /* certificates start 5 minutes early for slow clocks */
#define MAX_HOSTNAMES       32
#define MAX_HOSTNAME_LEN    253
#define SAN_MAX             (MAX_HOSTNAMES * (MAX_HOSTNAME_LEN + 5) + 64)
#define MAX_OPERATOR_DAYS   36500
#define MAX_OPERATOR_NAME   64
#define DEFAULT_SAN_ENTRIES "DNS:localhost,IP:127.0.0.1,IP:::1"

struct server_ca {
    pv_cert *ca;
    pv_key *ca_key;
    pv_cert *server;
    pv_key *server_key;
    char fingerprint[2 * PV_SHA256_LEN + 1];
    char *ca_pem;
    uint8_t tenant_kek[TENANT_CA_KEK_LEN];
};

/* dir "/" name into out. PV_ERR_INVALID_ARG when it does not fit. */
static int join(char *out, size_t size, const char *dir, const char *name, pv_err *e)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "data directory path is too long");
    }
    return PV_OK;
}

/* A DNS name of labels [A-Za-z0-9-] (1..63, no leading or trailing '-') joined by dots. */
static bool valid_dns_name(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > MAX_HOSTNAME_LEN) {
        return false;
    }
    size_t label = 0;
    char prev = '.';
    for (const char *p = s; *p != '\0'; p++) {
        char c = *p;
        if (c == '.') {
            if (label == 0 || prev == '-') {
                return false;
            }
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-') {
            if ((label == 0 && c == '-') || ++label > 63) {
                return false;
            }
        } else {
            return false;
        }
        prev = c;
    }
    return label > 0 && prev != '-';
}

static bool valid_ip(const char *s, bool *v6)
{
    uint8_t addr[16];
    *v6 = false;
    if (inet_pton(AF_INET, s, addr) == 1) {
        return true;
    }
    if (inet_pton(AF_INET6, s, addr) == 1) {
        *v6 = true;
        return true;
    }
    return false;
}

/* The subjectAltName text: the loopback names, then each host name once. */
static int build_san(const char *const *hostnames, char *out, size_t size, pv_err *e)
{
    size_t used = (size_t)snprintf(out, size, "%s", DEFAULT_SAN_ENTRIES);
    size_t count = 0;
    for (size_t i = 0; hostnames != NULL && hostnames[i] != NULL; i++) {
        const char *h = hostnames[i];
        bool v6 = false;
        const char *kind;
        if (valid_ip(h, &v6)) {
            kind = "IP";
        } else if (valid_dns_name(h)) {
            kind = "DNS";
        } else {
            return pv_err_set(e, PV_ERR_INVALID_ARG,
                              "host name '%.64s' is neither a DNS name (letters, digits, '-' "
                              "and dots) nor an IP address",
                              h);
        }
        if (++count > MAX_HOSTNAMES) {
            return pv_err_set(e, PV_ERR_INVALID_ARG, "more than %d host names", MAX_HOSTNAMES);
        }
        char entry[MAX_HOSTNAME_LEN + 8];
        snprintf(entry, sizeof(entry), "%s:%s", kind, h);
        /* Skip repeats (of the defaults too): one entry per name. */
        bool seen = false;
        size_t elen = strlen(entry);
        for (const char *p = out; (p = strstr(p, entry)) != NULL; p += elen) {
            if ((p == out || p[-1] == ',') && (p[elen] == ',' || p[elen] == '\0')) {
                seen = true;
                break;
            }
        }
        if (seen) {
            continue;
        }
        int n = snprintf(out + used, size - used, ",%s", entry);
        if (n < 0 || (size_t)n >= size - used) {
            return pv_err_set(e, PV_ERR_INVALID_ARG, "host names are too long together");
        }
        used += (size_t)n;
    }
    return PV_OK;
}

/* Files written so far by ca_init, removed again if it fails half way. */
typedef struct written {
    char paths[5][PATH_MAX];
    size_t n;
} written;

static int save_key(written *w, const char *dir, const char *name, const pv_key *k, pv_err *e)
{
    char path[PATH_MAX];
    int r = join(path, sizeof(path), dir, name, e);
    if (r == PV_OK) {
        r = pv_key_save_private_pem(k, path, e); /* 0600, atomic, never overwrites */
    }
    if (r == PV_OK) {
        snprintf(w->paths[w->n++], PATH_MAX, "%s", path);
    }
    return r;
}

static int save_cert(written *w, const char *dir, const char *name, pv_cert *c, pv_err *e)
{
    char path[PATH_MAX];
    int r = join(path, sizeof(path), dir, name, e);
    pv_chain *ch = pv_chain_new();
    if (r == PV_OK && ch == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    if (r == PV_OK) {
        r = pv_chain_add(ch, c);
    }
    if (r == PV_OK) {
        r = pv_chain_save_pem(ch, path, false, e);
    }
    if (r == PV_OK) {
        snprintf(w->paths[w->n++], PATH_MAX, "%s", path);
    }
    pv_chain_free(ch);
    return r;
}

static int make_data_dir(const char *dir, pv_err *e)
{
    if (mkdir(dir, 0700) == 0) {
        return PV_OK;
    }
    if (errno != EEXIST) {
        return pv_err_sys(e, PV_ERR_IO, errno, "creating %s", dir);
    }
    struct stat st;
    if (stat(dir, &st) != 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s", dir);
    }
    if (!S_ISDIR(st.st_mode)) {
        return pv_err_set(e, PV_ERR_IO, "%s exists and is not a directory", dir);
    }
    /* An existing empty directory (from a deployment tool, say) is tightened, not refused:
     * it will hold the keys. */
    if ((st.st_mode & 077) != 0 && chmod(dir, 0700) != 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "making %s private (0700)", dir);
    }
    return PV_OK;
}

int ca_init(const char *data_dir, const char *const *hostnames, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    pv_key *ca_key = NULL, *server_key = NULL;
    pv_cert *ca = NULL, *server = NULL;
    written w = {.n = 0};
    char path[PATH_MAX];
    char san[SAN_MAX];
    char subject[64];
    uint8_t id[4];

    if (data_dir == NULL || data_dir[0] == '\0') {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no data directory");
    }
    r = build_san(hostnames, san, sizeof(san), e);
    if (r != PV_OK) {
        return r;
    }
    r = join(path, sizeof(path), data_dir, CA_KEY, e);
    if (r != PV_OK) {
        return r;
    }
    r = make_data_dir(data_dir, e);
    if (r != PV_OK) {
        return r;
    }
    if (access(path, F_OK) == 0 || errno != ENOENT) {
        return pv_err_set(e, PV_ERR_EXISTS,
                          "%s already holds a CA (%s); refusing to replace it, since every "
                          "operator certificate depends on it",
                          data_dir, CA_KEY);
    }

    /* A random suffix tells the CAs of two installations apart in a trust store. */
    r = pv_random_bytes(id, sizeof(id));
    if (r != PV_OK) {
        r = pv_err_set(e, r, "random number generator failed");
        goto out;
    }
    snprintf(subject, sizeof(subject), "CN=Pavise Server CA %02x%02x%02x%02x", id[0], id[1], id[2],
             id[3]);
    int64_t now = pv_time_now();
    pv_cert_params cap = {
        .subject = subject,
        .not_before = now - CLOCK_SKEW,
        .not_after = now + CA_DAYS * DAY,
        .is_ca = true,
        .path_len = 0, /* the CA signs leaves only */
    };
    pv_cert_params sp = {
        .subject = "CN=pavise-server",
        .not_before = now - CLOCK_SKEW,
        .not_after = now + SERVER_DAYS * DAY,
        .path_len = -1,
        .server_auth = true,
        .subject_alt_names = san,
    };
    r = pv_key_generate(&ca_key, e);
    if (r == PV_OK) {
        r = pv_key_generate(&server_key, e);
    }
    if (r == PV_OK) {
        r = pv_cert_create(&cap, ca_key, NULL, NULL, &ca, e);
    }
    if (r == PV_OK) {
        r = pv_cert_create(&sp, server_key, ca, ca_key, &server, e);
    }
    if (r != PV_OK) {
        pv_err_wrap(e, r, "creating the CA");
        goto out;
    }
    /* ca.key first: it is what marks DATA as initialised, and with O_EXCL semantics two
     * concurrent inits cannot both get past it. */
    r = save_key(&w, data_dir, CA_KEY, ca_key, e);
    if (r == PV_OK) {
        r = save_cert(&w, data_dir, CA_CERT, ca, e);
    }
    if (r == PV_OK) {
        r = save_key(&w, data_dir, SERVER_KEY, server_key, e);
    }
    if (r == PV_OK) {
        r = save_cert(&w, data_dir, SERVER_CERT, server, e);
    }
    if (r == PV_ERR_EXISTS && w.n == 0) {
        pv_err_set(e, r, "%s already holds a CA (%s)", data_dir, CA_KEY);
    }
    if (r == PV_OK) {
        uint8_t kek[TENANT_CA_KEK_LEN];
        bool made = false;
        r = tenant_ca_kek_load(data_dir, kek, &made, e);
        pv_wipe(kek, sizeof(kek));
        if (made && w.n < sizeof(w.paths) / sizeof(w.paths[0])) {
            snprintf(w.paths[w.n++], PATH_MAX, "%s/%s", data_dir, TENANT_CA_KEK_FILE);
        }
    }
out:
    if (r != PV_OK) {
        for (size_t i = 0; i < w.n; i++) {
            unlink(w.paths[i]);
        }
    }
    pv_cert_free(server);
    pv_cert_free(ca);
    pv_key_free(server_key);
    pv_key_free(ca_key);
    return r;
}

/* Refuses a key file that anyone but its owner may access (OpenSSH's rule for
 * private keys): a key others could have read may already be someone else's. */
static int check_key_mode(const char *path, pv_err *e)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        return pv_err_sys(e, errno == ENOENT ? PV_ERR_NOT_FOUND : PV_ERR_IO, errno, "%s", path);
    }
    if (!S_ISREG(st.st_mode)) {
        return pv_err_set(e, PV_ERR_UNSAFE, "%s is not a regular file", path);
    }
    if ((st.st_mode & 077) != 0) {
        return pv_err_set(e, PV_ERR_UNSAFE,
                          "%s has mode %04o: a private key must not be accessible to group or "
                          "others (chmod 600 %s)",
                          path, (unsigned)(st.st_mode & 07777), path);
    }
    if (st.st_uid != geteuid()) {
        return pv_err_set(e, PV_ERR_UNSAFE, "%s is owned by uid %u, not by this user (%u)", path,
                          (unsigned)st.st_uid, (unsigned)geteuid());
    }
    return PV_OK;
}

static int load_key(const char *dir, const char *name, pv_key **out, pv_err *e)
{
    char path[PATH_MAX];
    int r = join(path, sizeof(path), dir, name, e);
    if (r == PV_OK) {
        r = check_key_mode(path, e);
    }
    if (r == PV_OK) {
        r = pv_key_load_private_pem(path, out, e);
    }
    return r;
}

/* Loads a PEM file holding exactly one certificate whose key is key's. */
static int load_cert(const char *dir, const char *name, const pv_key *key, pv_cert **out, pv_err *e)
{
    char path[PATH_MAX];
    pv_chain *ch = NULL;
    pv_key *pub = NULL;
    int r = join(path, sizeof(path), dir, name, e);
    if (r == PV_OK) {
        r = pv_chain_load_pem(path, &ch, e);
    }
    if (r == PV_OK && pv_chain_count(ch) != 1) {
        r = pv_err_set(e, PV_ERR_FORMAT, "%s: expected exactly one certificate", path);
    }
    if (r == PV_OK) {
        r = pv_cert_public_key(pv_chain_get(ch, 0), &pub, e);
    }
    if (r == PV_OK && !pv_key_equal_public(pub, key)) {
        r = pv_err_set(e, PV_ERR_FORMAT, "%s is not the certificate of the key beside it", path);
    }
    if (r == PV_OK) {
        *out = pv_cert_ref(pv_chain_get(ch, 0));
    }
    pv_key_free(pub);
    pv_chain_free(ch);
    return r;
}

/* Checks that the server certificate was issued by this CA, so TLS clients that pin
 * ca.crt will accept it. Expiry only warns: the server still starts, and clients say why. */
static int check_server_cert(const server_ca *ca, pv_err *e)
{
    pv_chain *ch = pv_chain_new();
    pv_trust *t = pv_trust_new();
    int r = PV_ERR_NOMEM;
    if (ch == NULL || t == NULL || pv_chain_add(ch, ca->server) != PV_OK ||
        pv_trust_add(t, ca->ca) != PV_OK) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    pv_err ve;
    pv_err_clear(&ve);
    r = pv_chain_verify(ch, t, pv_time_now(), 0, &ve);
    if (r == PV_ERR_EXPIRED) {
        pv_warn("%s: %s", SERVER_CERT, pv_err_msg(&ve));
        r = PV_OK;
    } else if (r != PV_OK) {
        r = pv_err_set(e, r, "%s is not issued by %s: %s", SERVER_CERT, CA_CERT, pv_err_msg(&ve));
    }
out:
    pv_trust_free(t);
    pv_chain_free(ch);
    return r;
}

static int ca_pem_of(server_ca *ca, pv_err *e)
{
    pv_chain *ch = pv_chain_new();
    pv_buf *b = pv_buf_new(PV_PEM_MAX_FILE);
    int r = PV_ERR_NOMEM;
    if (ch != NULL && b != NULL && pv_chain_add(ch, ca->ca) == PV_OK) {
        r = pv_chain_to_pem(ch, b);
    }
    if (r == PV_OK) {
        r = pv_buf_append_u8(b, 0);
    }
    if (r == PV_OK) {
        size_t len;
        ca->ca_pem = (char *)pv_buf_steal(b, &len);
        r = ca->ca_pem != NULL ? PV_OK : PV_ERR_NOMEM;
    }
    if (r != PV_OK) {
        pv_err_set(e, r, "encoding the CA certificate");
    }
    pv_buf_free(b);
    pv_chain_free(ch);
    return r;
}

int ca_load(const char *data_dir, server_ca **out, pv_err *e)
{
    *out = NULL;
    int r = PV_ERR_INTERNAL;
    char path[PATH_MAX];
    server_ca *ca = calloc(1, sizeof(*ca));
    if (ca == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    r = join(path, sizeof(path), data_dir, CA_KEY, e);
    if (r != PV_OK) {
        goto out;
    }
    if (access(path, F_OK) != 0 && errno == ENOENT) {
        r = pv_err_set(e, PV_ERR_NOT_FOUND,
                       "%s holds no CA (%s is missing): run `pavise-server init --data %s` first",
                       data_dir, CA_KEY, data_dir);
        goto out;
    }
    r = load_key(data_dir, CA_KEY, &ca->ca_key, e);
    if (r == PV_OK) {
        r = load_key(data_dir, SERVER_KEY, &ca->server_key, e);
    }
    if (r == PV_OK) {
        r = load_cert(data_dir, CA_CERT, ca->ca_key, &ca->ca, e);
    }
    if (r == PV_OK) {
        r = load_cert(data_dir, SERVER_CERT, ca->server_key, &ca->server, e);
    }
    if (r == PV_OK && !pv_cert_is_ca(ca->ca)) {
        r = pv_err_set(e, PV_ERR_FORMAT, "%s/%s is not a CA certificate", data_dir, CA_CERT);
    }
    if (r == PV_OK) {
        r = check_server_cert(ca, e);
    }
    if (r == PV_OK) {
        r = ca_pem_of(ca, e);
    }
    if (r == PV_OK) {
        r = tenant_ca_kek_load(data_dir, ca->tenant_kek, NULL, e);
    }
    if (r != PV_OK) {
        goto out;
    }
    uint8_t fp[PV_SHA256_LEN];
    pv_cert_fingerprint(ca->ca, fp);
    pv_hex_encode(fp, sizeof(fp), ca->fingerprint, sizeof(ca->fingerprint));
    *out = ca;
    ca = NULL;
    r = PV_OK;
out:
    ca_free(ca);
    return r;
}

void ca_free(server_ca *ca)
{
    if (ca == NULL) {
        return;
    }
    pv_cert_free(ca->ca);
    pv_cert_free(ca->server);
    pv_key_free(ca->ca_key);
    pv_key_free(ca->server_key);
    free(ca->ca_pem);
    pv_wipe(ca->tenant_kek, sizeof(ca->tenant_kek));
    free(ca);
}

const pv_cert *ca_cert(const server_ca *ca)
{
    return ca->ca;
}

const pv_cert *ca_server_cert(const server_ca *ca)
{
    return ca->server;
}

const pv_key *ca_server_key(const server_ca *ca)
{
    return ca->server_key;
}

const char *ca_fingerprint(const server_ca *ca)
{
    return ca->fingerprint;
}

const char *ca_cert_pem(const server_ca *ca)
{
    return ca->ca_pem;
}

const uint8_t *ca_tenant_kek(const server_ca *ca)
{
    return ca->tenant_kek;
}

/* Operator names as api.h defines them: 1..64 of [A-Za-z0-9._@-]. None of these
 * characters is special in a subject string, so CN=<name> means what it says. */
static bool valid_operator_name(const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p != '\0'; p++, n++) {
        char c = *p;
        if (n >= MAX_OPERATOR_NAME ||
            !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '@' || c == '-')) {
            return false;
        }
    }
    return n > 0;
}

int ca_issue_operator(const server_ca *ca, const char *csr_pem, size_t csr_len, const char *name,
                      int64_t days, ca_issued *out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    pv_key *pub = NULL;
    pv_cert *cert = NULL;
    pv_chain *ch = NULL;
    pv_buf *pem = NULL;
    memset(out, 0, sizeof(*out));
    if (name == NULL || !valid_operator_name(name)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "operator name must be 1 to 64 of A-Z a-z 0-9 . _ @ -");
    }
    if (days < 1 || days > MAX_OPERATOR_DAYS) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "certificate lifetime of %lld days is not 1..%d",
                          (long long)days, MAX_OPERATOR_DAYS);
    }
    r = pv_csr_verify(csr_pem, csr_len, &pub, e);
    if (r != PV_OK) {
        goto out;
    }
    char subject[8 + MAX_OPERATOR_NAME];
    snprintf(subject, sizeof(subject), "CN=%s", name);
    int64_t now = pv_time_now();
    pv_cert_params p = {
        .subject = subject,
        .not_before = now - CLOCK_SKEW,
        .not_after = now + days * DAY,
        .path_len = -1,
        .client_auth = true,
    };
    r = pv_cert_create(&p, pub, ca->ca, ca->ca_key, &cert, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "issuing the operator certificate");
        goto out;
    }
    ch = pv_chain_new();
    pem = pv_buf_new(PV_PEM_MAX_FILE);
    if (ch == NULL || pem == NULL || pv_chain_add(ch, cert) != PV_OK ||
        pv_chain_to_pem(ch, pem) != PV_OK || pv_buf_append_u8(pem, 0) != PV_OK) {
        r = pv_err_set(e, PV_ERR_NOMEM, "encoding the operator certificate");
        goto out;
    }
    int64_t nb = 0, na = 0;
    r = pv_cert_validity(cert, &nb, &na);
    if (r != PV_OK) {
        r = pv_err_set(e, r, "reading back the operator certificate's validity");
        goto out;
    }
    uint8_t fp[PV_SHA256_LEN];
    pv_cert_fingerprint(cert, fp);
    pv_hex_encode(fp, sizeof(fp), out->fingerprint, sizeof(out->fingerprint));
    pv_cert_serial_hex(cert, out->serial);
    out->not_after = na;
    size_t len;
    out->cert_pem = (char *)pv_buf_steal(pem, &len);
    r = out->cert_pem != NULL ? PV_OK : pv_err_set(e, PV_ERR_NOMEM, "out of memory");
out:
    if (r != PV_OK) {
        ca_issued_clear(out);
    }
    pv_buf_free(pem);
    pv_chain_free(ch);
    pv_cert_free(cert);
    pv_key_free(pub);
    return r;
}

void ca_issued_clear(ca_issued *c)
{
    if (c == NULL) {
        return;
    }
    free(c->cert_pem);
    memset(c, 0, sizeof(*c));
}

int ca_issue_device(const server_ca *ca, const pv_key *pub, const char *device_id, int64_t now,
                    int64_t lifetime, pv_cert **out, pv_err *e)
{
    char subject[16 + 64];
    *out = NULL;
    if (ca == NULL || pub == NULL || device_id == NULL || strlen(device_id) != 64 ||
        strspn(device_id, "0123456789abcdef") != 64) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "service certificate: not a device ID");
    }
    if (lifetime <= 0 || lifetime > 365 * DAY) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "service certificate: lifetime out of range");
    }
    snprintf(subject, sizeof(subject), "CN=%s,OU=device", device_id);
    pv_cert_params p = {
        .subject = subject,
        .not_before = now - CLOCK_SKEW,
        .not_after = now + lifetime,
        .path_len = -1,
        .client_auth = true,
    };
    int r = pv_cert_create(&p, pub, ca->ca, ca->ca_key, out, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "issuing the service certificate of device %s", device_id);
    }
    return r;
}
