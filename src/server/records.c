/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Manufacturing records on the service (records.h). Neither function opens a transaction
 * or writes an audit row: each makes one atomic write, so a caller that audits it (the
 * `pavise-server factory` commands, a claim that uploads a record) wraps the call and
 * its audit row in one write transaction of its own.
 */
#include "records.h"

#include <stdbool.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "pavise/buf.h"
#include "pavise/crypto.h"
#include "pavise/mfgrec.h"
#include "pavise/rot.h"
#include "pavise/x509.h"

int records_parse_cert(const char *pem, size_t len, pv_cert **out, pv_err *e)
{
    *out = NULL;
    int r = PV_ERR_INTERNAL;
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long der_len = 0;
    pv_cert *c = NULL;
    BIO *bio = NULL;

    if (len > PV_PEM_MAX_FILE) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "more than %d bytes of PEM", PV_PEM_MAX_FILE);
    }
    if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    ERR_clear_error();
    if (PEM_read_bio_ex(bio, &name, &header, &der, &der_len, 0) != 1) {
        r = pv_err_ssl(e, PV_ERR_FORMAT, "no PEM certificate");
        goto out;
    }
    if (strcmp(name, PEM_STRING_X509) != 0) {
        r = pv_err_set(e, PV_ERR_FORMAT, "a '%.32s' PEM block, not a certificate", name);
        goto out;
    }
    if ((r = pv_cert_from_der(der, (size_t)der_len, &c, e)) != PV_OK) {
        goto out;
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    name = header = NULL;
    der = NULL;
    /* A second block would be silently ignored by whoever reads cert_pem later; say so
     * now rather than trust one certificate of a bundle the user meant as several. */
    ERR_clear_error();
    if (PEM_read_bio_ex(bio, &name, &header, &der, &der_len, 0) == 1) {
        r = pv_err_set(e, PV_ERR_FORMAT,
                       "more than one PEM block: give one CA certificate per file");
        goto out;
    }
    *out = c;
    c = NULL;
    r = PV_OK;
out:
    ERR_clear_error();
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    BIO_free(bio);
    pv_cert_free(c);
    return r;
}

int records_parse_ca(const char *pem, size_t len, const char *what, const char *hint,
                     records_ca *out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    pv_cert *cert = NULL;
    pv_chain *one = NULL;
    pv_buf *canon = NULL;
    uint8_t fp[PV_SHA256_LEN];
    memset(out, 0, sizeof(*out));
    if ((r = records_parse_cert(pem, len, &cert, e)) != PV_OK) {
        pv_err_wrap(e, r, "%s", what);
        goto out;
    }
    /* A trusted CA is where chains end; the leaves that sign are never CAs. */
    if (!pv_cert_is_ca(cert)) {
        r = pv_err_set(e, PV_ERR_FORMAT,
                       "%s: not a CA certificate (basicConstraints CA:TRUE); give %s", what, hint);
        goto out;
    }
    pv_cert_fingerprint(cert, fp);
    pv_hex_encode(fp, sizeof(fp), out->fingerprint, sizeof(out->fingerprint));
    pv_cert_subject(cert, out->subject, sizeof(out->subject));
    if ((one = pv_chain_new()) == NULL || (canon = pv_buf_new(PV_PEM_MAX_FILE)) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((r = pv_chain_add(one, cert)) != PV_OK || (r = pv_chain_to_pem(one, canon)) != PV_OK ||
        (r = pv_buf_append_u8(canon, 0)) != PV_OK) {
        r = pv_err_set(e, r, "%s: cannot encode it as PEM", what);
        goto out;
    }
    size_t n = 0;
    out->pem = (char *)pv_buf_steal(canon, &n);
    r = out->pem != NULL ? PV_OK : pv_err_set(e, PV_ERR_NOMEM, "out of memory");
out:
    pv_buf_free(canon);
    pv_chain_free(one);
    pv_cert_free(cert);
    return r;
}

void records_ca_free(records_ca *ca)
{
    if (ca != NULL) {
        free(ca->pem);
        memset(ca, 0, sizeof(*ca));
    }
}

int records_add_factory(store *db, const char *pem, size_t len, int64_t now, char fingerprint[65],
                        pv_err *e)
{
    records_ca ca;
    fingerprint[0] = '\0';
    int r = records_parse_ca(pem, len, "factory certificate",
                             "the factory's root or intermediate CA, not its signing leaf", &ca, e);
    if (r != PV_OK) {
        return r;
    }
    store_val p[] = {SV_TEXT(ca.fingerprint), SV_TEXT(ca.subject), SV_TEXT(ca.pem), SV_INT(now)};
    r = store_exec(db,
                   "INSERT INTO factories (fingerprint, subject, cert_pem, created_at) "
                   "VALUES ($1, $2, $3, $4)",
                   p, 4, NULL, NULL, e);
    if (r == PV_ERR_EXISTS) {
        r = pv_err_set(e, PV_ERR_EXISTS, "factory certificate %s (%s) is already trusted",
                       ca.fingerprint, ca.subject);
    } else if (r != PV_OK) {
        pv_err_wrap(e, r, "adding factory certificate %s", ca.fingerprint);
    } else {
        memcpy(fingerprint, ca.fingerprint, sizeof(ca.fingerprint));
    }
    records_ca_free(&ca);
    return r;
}

/* How much a failed verification says about the record: a chain that leads to another
 * factory says least, so any other answer wins when reporting why nothing verified. */
static bool more_telling(int candidate, int current)
{
    return current == PV_OK || (current == PV_ERR_UNTRUSTED && candidate != PV_ERR_UNTRUSTED);
}

/* Verifies rec against each trusted factory on its own, so the factory it chains to is
 * known. *out is filled on success; fp_out receives that factory's fingerprint. */
static int verify_against_factories(store *db, const uint8_t *rec, size_t len, int64_t now,
                                    pv_mfgrec *out, char fp_out[65], pv_err *e)
{
    int r = PV_ERR_INTERNAL, why = PV_OK;
    store_rows *rows = NULL;
    pv_err why_e = {0};

    r = store_exec(db, "SELECT fingerprint, cert_pem FROM factories ORDER BY fingerprint", NULL, 0,
                   &rows, NULL, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "reading the trusted factories");
        goto out;
    }
    for (size_t i = 0; i < store_rows_count(rows); i++) {
        const char *fp = store_rows_text(rows, i, 0), *pem = store_rows_text(rows, i, 1);
        pv_cert *cert = NULL;
        pv_trust *trust = NULL;
        pv_err one = {0};
        if (fp == NULL || pem == NULL || strlen(fp) != 64) {
            r = pv_err_set(e, PV_ERR_INTERNAL, "factories: a row without a fingerprint or PEM");
            goto out;
        }
        if ((r = records_parse_cert(pem, strlen(pem), &cert, e)) != PV_OK) {
            pv_err_wrap(e, r, "stored factory certificate %s", fp);
            goto out;
        }
        if ((trust = pv_trust_new()) == NULL || pv_trust_add(trust, cert) != PV_OK) {
            pv_trust_free(trust);
            pv_cert_free(cert);
            r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
            goto out;
        }
        pv_cert_free(cert);
        r = pv_mfgrec_verify(rec, len, trust, now, out, &one);
        pv_trust_free(trust);
        if (r == PV_OK) {
            memcpy(fp_out, fp, 65);
            goto out;
        }
        if (r == PV_ERR_NOMEM || r == PV_ERR_INTERNAL) {
            if (e != NULL) {
                *e = one;
            }
            goto out;
        }
        if (more_telling(r, why)) {
            why = r;
            why_e = one;
        }
    }
    if (why == PV_OK) {
        r = pv_err_set(e, PV_ERR_UNTRUSTED,
                       "no factory is trusted yet (add one with `pavise-server factory add`)");
    } else if (why == PV_ERR_UNTRUSTED) {
        r = pv_err_set(e, PV_ERR_UNTRUSTED,
                       "its factory chain leads to none of the trusted factories");
    } else {
        if (e != NULL) {
            *e = why_e;
        }
        r = why;
    }
out:
    store_rows_free(rows);
    return r;
}

int records_import(store *db, const uint8_t *rec, size_t len, int64_t now,
                   char device_id[PV_DEVICE_ID_HEX_LEN + 1], pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    pv_mfgrec m;
    char factory_fp[65] = "";
    pv_buf *ak = NULL;

    memset(&m, 0, sizeof(m));
    device_id[0] = '\0';
    if (len > PV_MFGREC_MAX_SIZE) {
        r = pv_err_set(e, PV_ERR_TOO_LARGE, "manufacturing record: more than %d bytes",
                       PV_MFGREC_MAX_SIZE);
        goto out;
    }
    if ((r = verify_against_factories(db, rec, len, now, &m, factory_fp, e)) != PV_OK) {
        pv_err_wrap(e, r, "manufacturing record");
        goto out;
    }
    if (!pv_rot_kind_valid(m.rot_kind)) {
        r = pv_err_set(e, PV_ERR_FORMAT, "manufacturing record: unknown root-of-trust kind");
        goto out;
    }
    /* The first verified record wins: a second one for the same device (a re-import, or
     * a record uploaded with a claim) is not allowed to replace what was stored. */
    if ((ak = pv_buf_new(PV_MFGREC_MAX_SPKI)) == NULL ||
        pv_key_spki_der(m.attestation_key, ak) != PV_OK) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    store_val p[] = {SV_TEXT(m.device_id),
                     SV_BLOB(rec, len),
                     SV_TEXT(pv_rot_kind_name(m.rot_kind)),
                     SV_INT(m.manufactured_at),
                     SV_TEXT(factory_fp),
                     SV_INT(now),
                     SV_BLOB(pv_buf_data(ak), pv_buf_len(ak))};
    r = store_exec(db,
                   "INSERT INTO manufacturing_records "
                   "(device_id, record, rot_kind, manufactured_at, factory_fingerprint, "
                   "created_at, attestation_key) "
                   "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (device_id) DO NOTHING",
                   p, 7, NULL, NULL, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "storing the manufacturing record of device %s", m.device_id);
        goto out;
    }
    memcpy(device_id, m.device_id, PV_DEVICE_ID_HEX_LEN + 1);
    r = PV_OK;
out:
    pv_buf_free(ak);
    pv_mfgrec_free(&m);
    return r;
}
