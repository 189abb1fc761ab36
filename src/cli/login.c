/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavise login: pins the server's CA, makes the operator's key pair here, and exchanges
 * a one-time enrollment code and a certificate signing request for a client certificate.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "pavise/buf.h"
#include "pavise/fs.h"
#include "pavise/json.h"
#include "pavise/x509.h"

#define NEW_SUFFIX ".new"

/* The files a login writes: each is first written as NAME.new and renamed into place
 * only when the server has issued the certificate, so a failed login leaves an earlier
 * one untouched (with --force) and nothing behind otherwise. */
typedef struct login_files {
    char key[PATH_MAX], cert[PATH_MAX], ca[PATH_MAX];
    char key_new[PATH_MAX], cert_new[PATH_MAX], ca_new[PATH_MAX];
} login_files;

static int files_init(const cli_config *cfg, login_files *f, pv_err *e)
{
    struct {
        const char *name;
        char *path, *path_new;
    } all[] = {{CLI_KEY_FILE, f->key, f->key_new},
               {CLI_CERT_FILE, f->cert, f->cert_new},
               {CLI_CA_FILE, f->ca, f->ca_new}};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        int r = cli_config_path(cfg, all[i].name, all[i].path, PATH_MAX, e);
        if (r != PV_OK) {
            return r;
        }
        if (snprintf(all[i].path_new, PATH_MAX, "%s" NEW_SUFFIX, all[i].path) >= PATH_MAX) {
            return pv_err_set(e, PV_ERR_TOO_LARGE, "path too long: %s", all[i].path);
        }
        /* Left over from an interrupted login. */
        if (unlink(all[i].path_new) != 0 && errno != ENOENT) {
            return pv_err_sys(e, PV_ERR_IO, errno, "cannot remove %s", all[i].path_new);
        }
    }
    return PV_OK;
}

static void files_abort(const login_files *f)
{
    unlink(f->key_new);
    unlink(f->cert_new);
    unlink(f->ca_new);
}

static int files_commit(const login_files *f, pv_err *e)
{
    /* Three renames cannot be one atomic step: a crash between them leaves a key and a
     * certificate that do not match, which `pavise login --force` repairs. */
    const char *const from[] = {f->ca_new, f->cert_new, f->key_new};
    const char *const to[] = {f->ca, f->cert, f->key};
    for (size_t i = 0; i < 3; i++) {
        if (rename(from[i], to[i]) != 0) {
            return pv_err_sys(e, PV_ERR_IO, errno, "cannot rename %s to %s", from[i], to[i]);
        }
    }
    return pv_fs_sync_parent(f->key, e);
}

/* The CA to pin from --ca: every certificate in it must be a CA certificate. */
static int load_ca_file(const char *path, pv_chain **out, pv_err *e)
{
    int r = pv_chain_load_pem(path, out, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "--ca");
    }
    for (size_t i = 0; i < pv_chain_count(*out); i++) {
        if (!pv_cert_is_ca(pv_chain_get(*out, i))) {
            pv_chain_free(*out);
            *out = NULL;
            return pv_err_set(e, PV_ERR_UNTRUSTED,
                              "--ca %s: not a CA certificate (give the server's ca.crt)", path);
        }
    }
    return PV_OK;
}

static int save_cert_as(pv_cert *cert, const char *path, pv_err *e)
{
    pv_chain *ch = pv_chain_new();
    int r = ch == NULL ? PV_ERR_NOMEM : pv_chain_add(ch, cert);
    if (r == PV_OK) {
        r = pv_chain_save_pem(ch, path, false, e);
    } else {
        pv_err_set(e, r, "out of memory");
    }
    pv_chain_free(ch);
    return r;
}

/* Checks the issued certificate: a PEM certificate for our key. */
static int check_issued(const login_files *f, const pv_key *key, pv_err *e)
{
    pv_chain *ch = NULL;
    pv_key *pub = NULL;
    int r = pv_chain_load_pem(f->cert_new, &ch, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, PV_ERR_FORMAT, "the server sent an unusable certificate");
    }
    r = pv_cert_public_key(pv_chain_get(ch, 0), &pub, e);
    if (r == PV_OK && !pv_key_equal_public(pub, key)) {
        r = pv_err_set(e, PV_ERR_UNTRUSTED, "the server sent a certificate for another key");
    }
    pv_key_free(pub);
    pv_chain_free(ch);
    return r;
}

/* Refuses to replace a login (any of its files) unless --force. */
static int check_no_login(const cli_config *cfg, const login_files *f, bool force, pv_err *e)
{
    char conf[PATH_MAX];
    int r = cli_config_path(cfg, CLI_CONFIG_FILE, conf, sizeof(conf), e);
    if (r != PV_OK || force) {
        return r;
    }
    const char *const paths[] = {conf, f->key, f->cert, f->ca};
    for (size_t i = 0; i < 4; i++) {
        struct stat st;
        if (lstat(paths[i], &st) == 0) {
            if (cfg->server[0] != '\0') {
                return pv_err_set(e, PV_ERR_EXISTS,
                                  "already logged in to %s (%s): give --force to replace this "
                                  "login",
                                  cfg->server, cfg->dir);
            }
            return pv_err_set(e, PV_ERR_EXISTS,
                              "%s already exists: give --force to replace the login in %s",
                              paths[i], cfg->dir);
        }
    }
    return PV_OK;
}

static int login(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    const char *ca_path = cli_get(cmd, args, "ca");
    const char *fp_text = cli_get(cmd, args, "fingerprint");
    const char *code = cli_get(cmd, args, "enroll");
    bool force = cli_flag(cmd, args, "force");
    char url[CLI_MAX_URL], dir[PATH_MAX];
    uint8_t pin[PV_SHA256_LEN];
    cli_config cfg;
    login_files f;
    bool written = false;
    pv_chain *ca = NULL;
    pv_key *key = NULL;
    pv_buf *csr = NULL;
    pv_cert *pinned = NULL;
    cli_client *client = NULL;
    json_t *body = NULL, *resp = NULL;
    long status = 0;

    if ((r = cli_check_server_url(cli_get(cmd, args, "server"), url, sizeof(url), e)) != PV_OK) {
        return r;
    }
    if ((ca_path == NULL) == (fp_text == NULL)) {
        return pv_err_set(e, PV_ERR_USAGE,
                          "give either --ca FILE (the server's ca.crt) or --fingerprint SHA256 "
                          "(as `pavise-server init` printed it)");
    }
    if (fp_text != NULL && (r = cli_parse_fingerprint(fp_text, pin, e)) != PV_OK) {
        return r;
    }
    if (ca_path != NULL && (r = load_ca_file(ca_path, &ca, e)) != PV_OK) {
        return r;
    }
    /* A damaged config.json must not stop a --force login from repairing it. */
    if ((r = cli_config_dir(dir, sizeof(dir), e)) != PV_OK) {
        goto out;
    }
    if ((r = cli_config_load(dir, &cfg, e)) != PV_OK) {
        if (!force) {
            goto out;
        }
        pv_err_clear(e);
        memset(&cfg, 0, sizeof(cfg));
        snprintf(cfg.dir, sizeof(cfg.dir), "%s", dir);
    }
    if ((r = cli_config_mkdir(dir, e)) != PV_OK || (r = files_init(&cfg, &f, e)) != PV_OK ||
        (r = check_no_login(&cfg, &f, force, e)) != PV_OK) {
        goto out;
    }

    /* The key is written before the request (so a certificate is never issued for a key
     * we could not keep) and removed again if the login fails. */
    written = true;
    if ((r = pv_key_generate(&key, e)) != PV_OK ||
        (r = pv_key_save_private_pem(key, f.key_new, e)) != PV_OK) {
        goto out;
    }
    if ((csr = pv_buf_new(PV_CSR_MAX)) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* The server names the certificate after the operator the code was made for. */
    if ((r = pv_csr_create(key, "CN=pavise-operator", csr, e)) != PV_OK ||
        (r = pv_buf_append_u8(csr, 0)) != PV_OK) {
        goto out;
    }
    if (ca != NULL && (r = pv_chain_save_pem(ca, f.ca_new, false, e)) != PV_OK) {
        goto out;
    }
    cli_tls tls = {.ca_file = ca != NULL ? f.ca_new : NULL, .pin = ca != NULL ? NULL : pin};
    if ((r = cli_client_new(url, &tls, &client, e)) != PV_OK) {
        goto out;
    }
    body = json_pack("{s:s, s:s}", "code", code, "csr", (const char *)pv_buf_data(csr));
    if (body == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    r = cli_client_request(client, "POST", "/v1/enroll", body, &status, &resp, e);
    if (r != PV_OK) {
        goto out;
    }
    if (status != 201 && status != 200) {
        /* The server's message never repeats the code; neither do we. */
        r = cli_http_error(status, resp, e);
        goto out;
    }
    const char *cert_pem = cli_str(resp, "certificate");
    const char *name = cli_str(json_object_get(resp, "operator"), "name");
    if (cert_pem[0] == '\0' || name[0] == '\0') {
        r = pv_err_set(e, PV_ERR_FORMAT,
                       "%s: the enrollment answer lacks the certificate or "
                       "the operator's name",
                       url);
        goto out;
    }
    if ((r = pv_fs_write_file(f.cert_new, cert_pem, strlen(cert_pem), 0644, false, e)) != PV_OK ||
        (r = check_issued(&f, key, e)) != PV_OK) {
        goto out;
    }
    if (ca == NULL && ((r = cli_client_pinned_ca(client, &pinned, e)) != PV_OK ||
                       (r = save_cert_as(pinned, f.ca_new, e)) != PV_OK)) {
        goto out;
    }
    memcpy(cfg.server, url, sizeof(cfg.server));
    cfg.tenant[0] = '\0'; /* a new identity: its tenants are chosen again */
    if ((r = files_commit(&f, e)) != PV_OK || (r = cli_config_save(&cfg, e)) != PV_OK) {
        goto out;
    }
    written = false;
    printf("Logged in to %s as ", url);
    cli_put_escaped(stdout, name);
    printf(".\nThe key and certificate are in %s.\n"
           "Next: create a tenant with `pavise tenant create --name NAME` and select it with "
           "`pavise tenant select --tenant NAME`,\nor select a tenant you have a role in (see "
           "`pavise tenant list`).\n",
           cfg.dir);
    r = PV_OK;
out:
    if (written) {
        files_abort(&f);
    }
    json_decref(body);
    json_decref(resp);
    cli_client_free(client);
    pv_cert_free(pinned);
    pv_buf_free(csr);
    pv_key_free(key);
    pv_chain_free(ca);
    return r;
}

static const cli_opt login_opts[] = {
    {"server", "URL", true, "the server, https://HOST[:PORT]"},
    {"ca", "FILE", false, "the server's CA certificate (ca.crt from `pavise-server init`)"},
    {"fingerprint", "SHA256", false,
     "instead of --ca: the SHA-256 fingerprint of the server's CA certificate"},
    {"enroll", "CODE", true, "the one-time enrollment code you were given"},
    {"force", NULL, false, "replace an existing login"},
    {NULL, NULL, false, NULL},
};

const cli_cmd cli_login_cmd = {
    NULL,
    "login",
    "Log in to a Pavise server with a one-time enrollment code",
    "Pins the server's CA (--ca, or --fingerprint to take it from the server after checking "
    "it against the fingerprint), makes an ECDSA P-256 key pair here and exchanges the code "
    "for a client certificate. TLS verification is never turned off. The key (mode 0600), "
    "certificate, pinned CA and config.json are kept in $PAVISE_CONFIG_DIR, else "
    "$XDG_CONFIG_HOME/pavise, else ~/.config/pavise.",
    login_opts,
    false,
    login,
};

/* pavise me: who the server says we are, and our roles. */
static int me(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    static const char *const fields[] = {"name", "User:", "id", "ID:", "server", "Server:", NULL};
    static const char *const columns[] = {"tenant_id", "TENANT ID", "tenant_name", "TENANT",
                                          "role",      "ROLE",      NULL};
    cli_session s;
    json_t *out = NULL;
    int r = cli_session_open(cmd, args, false, &s, e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = cli_call(&s, "GET", "/v1/me", NULL, NULL, &out, e)) != PV_OK) {
        goto out;
    }
    if (args->json) {
        r = pv_json_print(out);
        goto out;
    }
    json_t *roles = json_incref(json_object_get(out, "roles"));
    json_t *shown = json_deep_copy(out);
    if (shown == NULL || json_object_set_new(shown, "server", json_string(s.server)) != 0) {
        json_decref(shown);
        json_decref(roles);
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((r = cli_print_object(false, shown, fields)) != PV_OK) {
        json_decref(roles);
        goto out;
    }
    if (json_array_size(roles) == 0) {
        json_decref(roles);
        printf("Roles:    none yet (create a tenant with `pavise tenant create --name NAME`)\n");
    } else {
        putchar('\n');
        r = cli_print_table(false, roles, columns);
    }
out:
    json_decref(out);
    cli_session_close(&s);
    return r;
}

static const cli_opt me_opts[] = {CLI_OPT_SERVER, CLI_OPT_END};

const cli_cmd cli_me_cmd = {
    NULL, "me", "Show who you are logged in as, and your roles", NULL, me_opts, true, me,
};
