/* SPDX-License-Identifier: Apache-2.0 */
/* The image registry (images.h). */
#include "images.h"

#include <string.h>

#include "pavise/buf.h"
#include "pavise/crypto.h"
#include "pavise/uuid.h"
#include "pavise/x509.h"

#include "records.h"

int images_add_root(store *db, const char *pem, size_t len, bool development, int64_t now,
                    char fingerprint[65], pv_err *e)
{
    records_ca ca;
    fingerprint[0] = '\0';
    int r = records_parse_ca(pem, len, "image root certificate",
                             "the root or intermediate CA that issued the signing certificates",
                             &ca, e);
    if (r != PV_OK) {
        return r;
    }
    store_val p[] = {SV_TEXT(ca.fingerprint), SV_TEXT(ca.subject), SV_TEXT(ca.pem),
                     SV_INT(development ? 1 : 0), SV_INT(now)};
    r = store_exec(db,
                   "INSERT INTO image_roots (fingerprint, subject, cert_pem, development, "
                   "created_at) VALUES ($1, $2, $3, $4, $5)",
                   p, 5, NULL, NULL, e);
    if (r == PV_ERR_EXISTS) {
        r = pv_err_set(e, PV_ERR_EXISTS, "image root %s (%s) is already trusted", ca.fingerprint,
                       ca.subject);
    } else if (r != PV_OK) {
        pv_err_wrap(e, r, "adding image root %s", ca.fingerprint);
    } else {
        memcpy(fingerprint, ca.fingerprint, sizeof(ca.fingerprint));
    }
    records_ca_free(&ca);
    return r;
}

/* How much a failed verification says: "leads to another root" says least, so any other
 * answer (expired, bad signature) wins when reporting why nothing verified. */
static bool more_telling(int candidate, int current)
{
    return current == PV_OK || (current == PV_ERR_UNTRUSTED && candidate != PV_ERR_UNTRUSTED);
}

/* A trust store holding the one stored root. */
static int root_trust(const char *fp, const char *pem, pv_trust **out, pv_err *e)
{
    *out = NULL;
    pv_cert *cert = NULL;
    int r = records_parse_cert(pem, strlen(pem), &cert, e);
    if (r != PV_OK) {
        return pv_err_set(e, PV_ERR_INTERNAL, "stored image root %s does not parse", fp);
    }
    pv_trust *t = pv_trust_new();
    if (t == NULL || pv_trust_add(t, cert) != PV_OK) {
        pv_trust_free(t);
        pv_cert_free(cert);
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    pv_cert_free(cert);
    *out = t;
    return PV_OK;
}

int images_verify(store *db, pv_imgpkg *pkg, bool *development, pv_err *e)
{
    int r = PV_ERR_INTERNAL, why = PV_OK;
    store_rows *rows = NULL;
    pv_err why_e = {0};

    *development = false;
    r = store_exec(db,
                   "SELECT fingerprint, cert_pem, development FROM image_roots "
                   "ORDER BY development DESC, fingerprint",
                   NULL, 0, &rows, NULL, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "reading the image roots");
        goto out;
    }
    for (size_t i = 0; i < store_rows_count(rows); i++) {
        const char *fp = store_rows_text(rows, i, 0), *pem = store_rows_text(rows, i, 1);
        pv_trust *trust = NULL;
        pv_err one = {0};
        if (fp == NULL || pem == NULL) {
            r = pv_err_set(e, PV_ERR_INTERNAL, "image_roots: a row without a fingerprint or PEM");
            goto out;
        }
        if ((r = root_trust(fp, pem, &trust, e)) != PV_OK) {
            goto out;
        }
        r = pv_imgpkg_verify_head(pkg, trust, &one);
        pv_trust_free(trust);
        if (r == PV_OK) {
            *development = store_rows_int(rows, i, 2) != 0;
            goto out;
        }
        if (r == PV_ERR_NOMEM || r == PV_ERR_INTERNAL || r == PV_ERR_CRYPTO) {
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
                       "no image root is trusted yet (the service operator adds them with "
                       "`pavise-server image-root add`)");
    } else if (why == PV_ERR_UNTRUSTED) {
        r = pv_err_set(e, PV_ERR_UNTRUSTED,
                       "its signer's certificate chain leads to none of the image roots");
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

int images_record(store *db, const pv_imgpkg *pkg, const char *tenant_id, const char *os_feed,
                  bool development, int64_t now, char id[37], pv_err *e)
{
    const pv_manifest *m = pv_imgpkg_manifest(pkg);
    uint8_t digest[PV_SHA256_LEN];
    char image_id[PV_UUID_STR_LEN], component_id[PV_UUID_STR_LEN];
    char digest_hex[2 * PV_SHA256_LEN + 1];

    id[0] = '\0';
    if (pv_imgpkg_manifest_digest(pkg, digest) != PV_OK) {
        return pv_err_set(e, PV_ERR_CRYPTO, "hashing the manifest");
    }
    pv_hex_encode(digest, sizeof(digest), digest_hex, sizeof(digest_hex));
    pv_uuid_format(m->image_id, image_id);
    pv_uuid_format(m->component_id, component_id);
    /* The format bounds the counter below 2^63, so it fits a BIGINT. */
    store_val p[] = {SV_TEXT(image_id),
                     SV_TEXT_OR_NULL(tenant_id),
                     SV_TEXT(component_id),
                     SV_TEXT(m->type == PV_IMAGE_OS ? "os" : "app"),
                     SV_TEXT(m->name),
                     SV_TEXT(m->version),
                     SV_INT(m->security_counter),
                     SV_TEXT(digest_hex),
                     SV_TEXT_OR_NULL(os_feed),
                     SV_INT(development ? 1 : 0),
                     SV_INT(now)};
    int r = store_exec(db,
                       "INSERT INTO images (id, tenant_id, component_id, kind, name, version, "
                       "security_counter, manifest_sha256, os_feed, development, created_at) "
                       "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                       p, 11, NULL, NULL, e);
    if (r == PV_ERR_EXISTS) {
        return pv_err_set(e, PV_ERR_EXISTS, "image %s is already registered", image_id);
    }
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "recording image %s", image_id);
    }
    memcpy(id, image_id, sizeof(image_id));
    return PV_OK;
}
