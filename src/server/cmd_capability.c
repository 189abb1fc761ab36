/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavise-server capability-signer set|show (cmd_capability.h). Installing a signer is
 * audited server-wide like the other offline changes. The files are written inside the
 * transaction that then writes the audit row and commits, so a signer that could not be
 * written leaves no row; a commit that fails after the files were written is reported
 * as the command's failure (the signer is then installed without its row).
 */
#include "cmd_capability.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/json.h"
#include "pavise/platform.h"
#include "pavise/x509.h"

#include "capsigner.h"
#include "server_cmd.h"

#define OPT_DATA                                                                                   \
    {                                                                                              \
        "data", "DIR", true, "the data directory made by init"                                     \
    }
#define OPT_END                                                                                    \
    {                                                                                              \
        NULL, NULL, false, NULL                                                                    \
    }

const cli_opt cmd_capability_signer_set_opts[] = {
    OPT_DATA,
    {"key", "FILE", true, "the signer's private key (PEM, P-256)"},
    {"cert-chain", "FILE", true,
     "its certificate chain (PEM): the leaf, then the CAs up to (optionally including) the "
     "update root"},
    {"config", "FILE", false, "the configuration file (default: DIR/server.conf)"},
    {"db", "URL", false, "sqlite:PATH or postgres:CONNINFO (default: from the configuration)"},
    OPT_END,
};
const cli_opt cmd_capability_signer_show_opts[] = {OPT_DATA, OPT_END};

static json_t *time_json(int64_t t)
{
    char when[PV_TIME_TEXT_LEN + 1];
    return pv_time_format(t, when) ? json_string(when) : json_null();
}

static json_t *hex_json(const uint8_t *p, size_t n)
{
    char hex[2 * PV_SHA256_LEN + 1];
    if (n > PV_SHA256_LEN) {
        return json_null();
    }
    pv_hex_encode(p, n, hex, sizeof(hex));
    return json_string(hex);
}

/* What identifies a signer: the leaf's subject, issuer, fingerprint and validity, the
 * key ID devices see as the capability's kid, and the chain's length. NULL: out of
 * memory. */
static json_t *describe(const pv_key *key, const pv_chain *chain)
{
    pv_cert *leaf = pv_chain_get(chain, 0);
    char subject[512], issuer[512];
    uint8_t fp[PV_SHA256_LEN], kid[PV_KEY_ID_LEN];
    int64_t nb = 0, na = 0;
    pv_cert_subject(leaf, subject, sizeof(subject));
    pv_cert_issuer(leaf, issuer, sizeof(issuer));
    pv_cert_fingerprint(leaf, fp);
    bool have_kid = pv_key_id(key, kid) == PV_OK;
    bool have_validity = pv_cert_validity(leaf, &nb, &na) == PV_OK;
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:I}", "subject", subject, "issuer", issuer,
                     "key_id", have_kid ? hex_json(kid, sizeof(kid)) : json_null(), "fingerprint",
                     hex_json(fp, sizeof(fp)), "not_before",
                     have_validity ? time_json(nb) : json_null(), "not_after",
                     have_validity ? time_json(na) : json_null(), "certificates",
                     (json_int_t)pv_chain_count(chain));
}

static const char *const signer_fields[] = {
    "subject",     "Subject:",     "issuer",       "Issuer:",    "key_id",
    "Key ID:",     "fingerprint",  "Fingerprint:", "not_before", "Valid from:",
    "not_after",   "Valid until:", "certificates", "Chain:",     "usable",
    "Usable now:", "problem",      "Problem:",     NULL};

int cmd_capability_signer_set(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    const char *data = cli_get(cmd, args, "data");
    const char *key_path = cli_get(cmd, args, "key");
    const char *chain_path = cli_get(cmd, args, "cert-chain");
    pv_key *key = NULL;
    pv_chain *chain = NULL;
    store *db = NULL;
    json_t *info = NULL;
    char *detail = NULL;
    int r = pv_key_load_private_pem(key_path, &key, e);
    if (r == PV_OK) {
        r = pv_chain_load_pem(chain_path, &chain, e);
    }
    if (r == PV_OK && (r = capsigner_check(key, chain, pv_time_now(), e)) != PV_OK) {
        /* The input is refused, whatever the reason: exit code 3, not 1. */
        r = pv_err_wrap(e, r == PV_ERR_INVALID_ARG ? PV_ERR_FORMAT : r, "capability signer");
    }
    if (r != PV_OK) {
        goto out;
    }
    if ((info = describe(key, chain)) == NULL ||
        (detail = json_dumps(info, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((r = server_cmd_open_db(cmd, args, &db, e)) != PV_OK ||
        (r = store_begin(db, true, e)) != PV_OK) {
        goto out;
    }
    r = capsigner_store(data, key, chain, e);
    const char *kid = json_string_value(json_object_get(info, "key_id"));
    if ((r = server_cmd_end_tx(db, r, "capability_signer.set", kid != NULL ? kid : "", detail,
                               e)) != PV_OK) {
        goto out;
    }
    if (json_object_set_new(info, "usable", json_true()) != 0 ||
        json_object_set_new(info, "problem", json_null()) != 0) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (!args->json) {
        printf("Capability signer installed in %s.\n", data);
    }
    r = cli_print_object(args->json, info, signer_fields);
    info = NULL;
out:
    json_decref(info);
    free(detail);
    store_close(db);
    pv_chain_free(chain);
    pv_key_free(key);
    return r;
}

int cmd_capability_signer_show(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    const char *data = cli_get(cmd, args, "data");
    pv_key *key = NULL;
    pv_chain *chain = NULL;
    json_t *info = NULL;
    pv_err why = {0};
    int r = capsigner_load(data, &key, &chain, e);
    if (r == PV_ERR_NOT_FOUND) {
        return pv_err_set(e, CLI_ERR_NOT_FOUND,
                          "%s has no capability signer; install one with `pavise-server "
                          "capability-signer set`",
                          data);
    }
    if (r != PV_OK) {
        return r;
    }
    /* Still fit to sign now? (It expires; the server then answers 503.) */
    bool usable = capsigner_check(key, chain, pv_time_now(), &why) == PV_OK;
    if ((info = describe(key, chain)) == NULL ||
        json_object_set_new(info, "usable", json_boolean(usable)) != 0 ||
        json_object_set_new(info, "problem",
                            usable ? json_null() : json_string(pv_err_msg(&why))) != 0) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    r = cli_print_object(args->json, info, signer_fields);
    info = NULL;
out:
    json_decref(info);
    pv_chain_free(chain);
    pv_key_free(key);
    return r;
}
