/* SPDX-License-Identifier: Apache-2.0 */
/* pavise keys: a test or production signing chain without the openssl CLI. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "pavise/crypto.h"
#include "pavise/platform.h"
#include "pavise/x509.h"

#define DAY (24 * 60 * 60)
/* Certificates start a little in the past so a device whose clock lags can use them. */
#define BACKDATE (60 * 60)

static int print_created(const cli_args *args, const char *key_path, const char *cert_path,
                         const pv_cert *cert)
{
    uint8_t fp[PV_SHA256_LEN];
    char hex[2 * PV_SHA256_LEN + 1], subject[256];
    int64_t nb = 0, na = 0;
    pv_cert_fingerprint(cert, fp);
    pv_hex_encode(fp, sizeof(fp), hex, sizeof(hex));
    pv_cert_subject(cert, subject, sizeof(subject));
    pv_cert_validity(cert, &nb, &na);
    static const char *const fields[] = {
        "subject",  "Subject:",     "certificate", "Certificate:",
        "key",      "Private key:", "fingerprint", "SHA-256 fingerprint:",
        "notAfter", "Valid until:", NULL};
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I}", "subject", subject, "certificate", cert_path,
                          "key", key_path, "fingerprint", hex, "notAfter", (json_int_t)na);
    return cli_print_object(args->json, o, fields);
}

/* Checks the options both commands share: the subject syntax and --days. */
static int check_subject_days(const cli_cmd *cmd, const cli_args *args, long *days, pv_err *e)
{
    const char *days_s = cli_get(cmd, args, "days");
    int r = PV_OK;
    if (days_s != NULL && (r = cli_parse_days(days_s, "--days", days, e)) != PV_OK) {
        return r;
    }
    if (pv_cert_check_subject(cli_get(cmd, args, "subject"), e) != PV_OK) {
        return pv_err_wrap(e, PV_ERR_USAGE, "--subject");
    }
    return PV_OK;
}

/* Writes the key, then the certificates; if the certificates cannot be written the key
 * is removed again, so no half-made pair is left. The key goes first because refusing
 * to overwrite an existing key must happen before anything else is written. */
static int save_pair(const pv_key *key, const char *key_path, const pv_chain *chain,
                     const char *cert_path, pv_err *e)
{
    int r = pv_key_save_private_pem(key, key_path, e);
    if (r != PV_OK) {
        return r;
    }
    r = pv_chain_save_pem(chain, cert_path, false, e);
    if (r != PV_OK) {
        remove(key_path);
    }
    return r;
}

static int create_ca(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    const char *key_path = cli_get(cmd, args, "output-key");
    const char *cert_path = cli_get(cmd, args, "output-cert");
    long days = 3650;
    pv_key *key = NULL;
    pv_cert *cert = NULL;
    pv_chain *chain = NULL;
    int r = check_subject_days(cmd, args, &days, e);
    if (r != PV_OK) {
        return r;
    }
    int64_t now = pv_time_now();
    pv_cert_params p = {.subject = cli_get(cmd, args, "subject"),
                        .not_before = now - BACKDATE,
                        .not_after = now + days * DAY,
                        .is_ca = true,
                        .path_len = 1};
    if ((r = pv_key_generate(&key, e)) != PV_OK ||
        (r = pv_cert_create(&p, key, NULL, NULL, &cert, e)) != PV_OK) {
        goto out;
    }
    if ((chain = pv_chain_new()) == NULL || pv_chain_add(chain, cert) != PV_OK) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((r = save_pair(key, key_path, chain, cert_path, e)) != PV_OK) {
        goto out;
    }
    r = print_created(args, key_path, cert_path, cert);
out:
    pv_chain_free(chain);
    pv_cert_free(cert);
    pv_key_free(key);
    return r;
}

static int create_signing(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    const char *ca_key_path = cli_get(cmd, args, "ca-key");
    const char *ca_cert_path = cli_get(cmd, args, "ca-cert");
    const char *key_path = cli_get(cmd, args, "output-key");
    const char *cert_path = cli_get(cmd, args, "output-cert");
    long days = 365;
    pv_key *ca_key = NULL, *key = NULL;
    pv_chain *ca_chain = NULL, *out_chain = NULL;
    pv_cert *cert = NULL;
    int r = check_subject_days(cmd, args, &days, e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = pv_key_load_private_pem(ca_key_path, &ca_key, e)) != PV_OK ||
        (r = pv_chain_load_pem(ca_cert_path, &ca_chain, e)) != PV_OK) {
        goto out;
    }
    pv_cert *ca = pv_chain_get(ca_chain, 0);
    if (!pv_cert_is_ca(ca)) {
        r = pv_err_set(e, PV_ERR_INVALID_ARG, "%s: not a CA certificate", ca_cert_path);
        goto out;
    }
    int64_t now = pv_time_now(), ca_nb = 0, ca_na = 0;
    pv_cert_validity(ca, &ca_nb, &ca_na);
    pv_cert_params p = {.subject = cli_get(cmd, args, "subject"),
                        .not_before = now - BACKDATE,
                        .not_after = now + days * DAY,
                        .path_len = -1,
                        .code_signing = true};
    if (p.not_after > ca_na) {
        p.not_after = ca_na; /* a certificate cannot outlive its issuer */
    }
    if ((r = pv_key_generate(&key, e)) != PV_OK ||
        (r = pv_cert_create(&p, key, ca, ca_key, &cert, e)) != PV_OK) {
        goto out;
    }
    /* The output holds the signing certificate followed by the CA's chain, ready to be
     * given to pack-application as --cert. */
    out_chain = pv_chain_new();
    if (out_chain == NULL || pv_chain_add(out_chain, cert) != PV_OK) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < pv_chain_count(ca_chain); i++) {
        /* Intermediates travel with the signer; a self-signed root is the trust anchor
         * and stays out. */
        char subj[512], iss[512];
        pv_cert_subject(pv_chain_get(ca_chain, i), subj, sizeof(subj));
        pv_cert_issuer(pv_chain_get(ca_chain, i), iss, sizeof(iss));
        if (strcmp(subj, iss) != 0 &&
            (r = pv_chain_add(out_chain, pv_chain_get(ca_chain, i))) != PV_OK) {
            r = pv_err_set(e, r, "%s: too many certificates", ca_cert_path);
            goto out;
        }
    }
    if ((r = save_pair(key, key_path, out_chain, cert_path, e)) != PV_OK) {
        goto out;
    }
    r = print_created(args, key_path, cert_path, cert);
out:
    pv_chain_free(ca_chain);
    pv_chain_free(out_chain);
    pv_cert_free(cert);
    pv_key_free(key);
    pv_key_free(ca_key);
    return r;
}

static const cli_opt create_ca_opts[] = {
    {"output-key", "FILE", true, "where to write the new CA private key (PEM, mode 0600)"},
    {"output-cert", "FILE", true, "where to write the self-signed CA certificate (PEM)"},
    {"subject", "DN", true, "subject, e.g. \"CN=Example Root CA,O=Example\""},
    {"days", "N", false, "validity in days (default 3650)"},
    {NULL, NULL, false, NULL},
};

static const cli_opt create_signing_opts[] = {
    {"ca-key", "FILE", true, "the issuing CA's private key"},
    {"ca-cert", "FILE", true, "the issuing CA's certificate"},
    {"output-key", "FILE", true, "where to write the new signing key (PEM, mode 0600)"},
    {"output-cert", "FILE", true, "where to write the signing certificate (PEM)"},
    {"subject", "DN", true, "subject, e.g. \"CN=Example App Signing,O=Example\""},
    {"days", "N", false, "validity in days (default 365, never past the CA's)"},
    {NULL, NULL, false, NULL},
};

const cli_cmd cli_keys_cmds[] = {
    {"keys", "create-ca", "Create a CA key and self-signed certificate",
     "The CA signs code-signing certificates; devices and verifiers use its certificate as "
     "the trust anchor. Keys are ECDSA P-256. Existing files are never overwritten.",
     create_ca_opts, true, create_ca},
    {"keys", "create-signing", "Create an image-signing key and certificate issued by a CA",
     "The certificate allows digitalSignature with extendedKeyUsage codeSigning, which image "
     "package verification requires. Existing files are never overwritten.",
     create_signing_opts, true, create_signing},
    {NULL, NULL, NULL, NULL, NULL, false, NULL},
};
