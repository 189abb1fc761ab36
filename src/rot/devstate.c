/* SPDX-License-Identifier: Apache-2.0 */
/* The device state directory: device.conf and the update root (include/pavise/devstate.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "pavise/crypto.h"
#include "pavise/devstate.h"
#include "pavise/fs.h"
#include "pavise/json.h"

#define CONFIG_VERSION 1
#define CONFIG_MAX     4096

char *pv_devstate_path(const char *state_dir, const char *rel)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", state_dir, rel) < 0) {
        return NULL;
    }
    return p;
}

int pv_devstate_save(const char *state_dir, const pv_devstate *s, pv_err *e)
{
    int r = PV_ERR_NOMEM;
    char *path = pv_devstate_path(state_dir, PV_DEVSTATE_CONFIG);
    char *text = NULL;
    json_t *o =
        json_pack("{s:i, s:s}", "version", CONFIG_VERSION, "rot", pv_rot_kind_name(s->kind));
    if (path == NULL || o == NULL) {
        pv_err_set(e, r, "out of memory");
        goto out;
    }
    if (s->tcti[0] != '\0' && json_object_set_new(o, "tcti", json_string(s->tcti)) != 0) {
        r = pv_err_set(e, PV_ERR_FORMAT, "the TCTI string is not valid UTF-8");
        goto out;
    }
    text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (text == NULL) {
        pv_err_set(e, r, "out of memory");
        goto out;
    }
    size_t n = strlen(text);
    text[n] = '\n'; /* replaces the NUL; written with its length */
    r = pv_fs_write_file(path, text, n + 1, 0644, false, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "%s", path);
    }
out:
    free(text);
    json_decref(o);
    free(path);
    return r;
}

int pv_devstate_load(const char *state_dir, pv_devstate *out, pv_err *e)
{
    static const char *const fields[] = {"version", "rot", "tcti", NULL};
    memset(out, 0, sizeof(*out));
    json_t *o = NULL;
    const char *kind = NULL, *tcti = NULL;
    bool has_tcti = false;
    uint64_t version = 0;
    char *path = pv_devstate_path(state_dir, PV_DEVSTATE_CONFIG);
    if (path == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int r = pv_json_load_file(path, CONFIG_MAX, &o, e);
    if (r == PV_ERR_NOT_FOUND) {
        r = pv_err_set(e, r, "%s is not a manufactured device (no %s)", state_dir,
                       PV_DEVSTATE_CONFIG);
        goto out;
    }
    if (r != PV_OK) {
        goto wrap;
    }
    if (!json_is_object(o)) {
        r = pv_err_set(e, PV_ERR_FORMAT, "not a JSON object");
        goto wrap;
    }
    if ((r = pv_json_check_fields(o, fields, "device.conf", e)) != PV_OK ||
        (r = pv_json_get_uint(o, "version", true, 1, 1000, "device.conf", &version, NULL, e)) !=
            PV_OK ||
        (r = pv_json_get_string(o, "rot", true, 16, "device.conf", &kind, NULL, e)) != PV_OK ||
        (r = pv_json_get_string(o, "tcti", false, PV_ROT_MAX_TCTI, "device.conf", &tcti, &has_tcti,
                                e)) != PV_OK) {
        goto wrap;
    }
    if (version != CONFIG_VERSION) {
        r = pv_err_set(e, PV_ERR_UNSUPPORTED, "version %llu", (unsigned long long)version);
        goto wrap;
    }
    if (pv_rot_kind_parse(kind, &out->kind) != PV_OK) {
        r = pv_err_set(e, PV_ERR_FORMAT, "unknown root-of-trust kind '%s'", kind);
        goto wrap;
    }
    if (has_tcti) {
        memcpy(out->tcti, tcti, strlen(tcti) + 1);
    }
    r = PV_OK;
    goto out;
wrap:
    /* A missing field is a malformed file, not a device that was never manufactured. */
    r = pv_err_wrap(e, r == PV_ERR_NOT_FOUND ? PV_ERR_FORMAT : r, "%s", path);
out:
    json_decref(o);
    free(path);
    return r;
}

int pv_devstate_open_rot(const char *state_dir, const char *kind, const char *tcti, pv_rot **out,
                         pv_err *e)
{
    *out = NULL;
    pv_devstate st;
    int r = pv_devstate_load(state_dir, &st, e);
    if (r != PV_OK) {
        return r;
    }
    if (kind != NULL) {
        pv_rot_kind pinned;
        if (pv_rot_kind_parse(kind, &pinned) != PV_OK) {
            return pv_err_set(e, PV_ERR_INVALID_ARG, "unknown root-of-trust kind '%s'", kind);
        }
        if (pinned != st.kind) {
            return pv_err_set(e, PV_ERR_INVALID_ARG,
                              "the device was manufactured with a %s root of trust, not %s",
                              pv_rot_kind_name(st.kind), pv_rot_kind_name(pinned));
        }
    }
    if (tcti == NULL) {
        tcti = getenv("PAVISE_TCTI");
    }
    pv_rot_config cfg = {
        .kind = st.kind,
        .state_dir = state_dir,
        .tcti = (tcti != NULL && tcti[0] != '\0') ? tcti : st.tcti,
    };
    r = pv_rot_open(&cfg, out, e);
    return r == PV_OK ? r : pv_err_wrap(e, r, "%s root of trust", pv_rot_kind_name(st.kind));
}

int pv_trust_anchor_hash(const pv_cert *root, uint8_t out[PV_SHA256_LEN], pv_err *e)
{
    unsigned char *der = NULL;
    X509_PUBKEY *pub = X509_get_X509_PUBKEY(pv_cert_x509(root));
    int n = pub != NULL ? i2d_X509_PUBKEY(pub, &der) : -1;
    if (n <= 0) {
        return pv_err_ssl(e, PV_ERR_CRYPTO, "cannot encode the certificate's public key");
    }
    int r = pv_sha256_digest(der, (size_t)n, out);
    OPENSSL_free(der);
    return r == PV_OK ? r : pv_err_set(e, r, "cannot hash the certificate's public key");
}

int pv_devstate_update_root(const char *state_dir, pv_rot *rot, pv_trust **out, pv_err *e)
{
    *out = NULL;
    uint8_t fused[PV_SHA256_LEN], have[PV_SHA256_LEN];
    pv_chain *certs = NULL;
    pv_trust *trust = NULL;
    char *path = pv_devstate_path(state_dir, PV_DEVSTATE_UPDATE_ROOT);
    if (path == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int r = pv_rot_trust_anchor(rot, fused, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "reading the fused trust anchor");
        goto out;
    }
    if ((r = pv_chain_load_pem(path, &certs, e)) != PV_OK) {
        pv_err_wrap(e, r, "update root %s", path);
        goto out;
    }
    if (pv_chain_count(certs) != 1) {
        r = pv_err_set(e, PV_ERR_FORMAT, "update root %s must hold exactly one certificate", path);
        goto out;
    }
    if ((r = pv_trust_anchor_hash(pv_chain_get(certs, 0), have, e)) != PV_OK) {
        goto out;
    }
    if (!pv_ct_equal(fused, have, sizeof(have))) {
        r = pv_err_set(e, PV_ERR_UNTRUSTED,
                       "update root %s does not match the trust anchor fused into the root of "
                       "trust",
                       path);
        goto out;
    }
    trust = pv_trust_new();
    if (trust == NULL || pv_trust_add(trust, pv_chain_get(certs, 0)) != PV_OK) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    *out = trust;
    trust = NULL;
    r = PV_OK;
out:
    pv_trust_free(trust);
    pv_chain_free(certs);
    free(path);
    return r;
}
