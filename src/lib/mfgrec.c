/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The manufacturing record; the format is described in
 * docs/formats/manufacturing-record.md.
 *
 * A record file is [version, bstr(COSE_Sign1), [cert, ...]], the envelope it shares with
 * the capability file (envelope.c). Verification goes outside in: the envelope and the
 * COSE structure are parsed, the chain and the signature are checked, and only then is
 * the signed payload decoded field by field.
 */
#include "pavise/mfgrec.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pavise/cbor.h"
#include "pavise/enroll.h"
#include "pavise/platform.h"

#include "envelope.h"

/* Keys of the record map. */
enum {
    K_VERSION = 1,
    K_DEVICE_ID = 2,
    K_ROT_KIND = 3,
    K_IDENTITY_KEY = 4,
    K_ATTESTATION_KEY = 5,
    K_EK_CERT = 6,
    K_AK_TPM_PUBLIC = 7,
    K_TRUST_ANCHOR = 8,
    K_MANUFACTURED_AT = 9,
};

static const int64_t record_keys[] = {K_VERSION,       K_DEVICE_ID,       K_ROT_KIND,
                                      K_IDENTITY_KEY,  K_ATTESTATION_KEY, K_EK_CERT,
                                      K_AK_TPM_PUBLIC, K_TRUST_ANCHOR,    K_MANUFACTURED_AT};

static int decode_fields(const cbor_item_t *map, const uint8_t kid[PV_KEY_ID_LEN], void *out,
                         pv_err *e);
static void release_record(void *rec);

static const envelope_format record_envelope = {
    .version = PV_MFGREC_VERSION,
    .max_size = PV_MFGREC_MAX_SIZE,
    .content_type = PV_MFGREC_CONTENT_TYPE,
    .decode = decode_fields,
    .release = release_record,
    .file = "record file",
    .payload = "record",
    .signer = "factory",
    .chain_ctx = "factory certificate chain",
    .leaf_ctx = "factory certificate",
    .kid_in_file = false,
};

/* The kind's name, or NULL for a kind the format does not know. */
static const char *kind_name(pv_rot_kind k)
{
    return pv_rot_kind_valid(k) ? pv_rot_kind_name(k) : NULL;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n > 0 ? n : 1);
    if (d != NULL && n > 0) {
        memcpy(d, p, n);
    }
    return d;
}

/* Lowercase hex SHA-256 of the key's SPKI DER: the device ID. */
static int device_id_of(const pv_key *k, char out[PV_DEVICE_ID_HEX_LEN + 1])
{
    uint8_t id[PV_KEY_ID_LEN];
    if (pv_key_id(k, id) != PV_OK) {
        return PV_ERR_CRYPTO;
    }
    pv_hex_encode(id, sizeof(id), out, PV_DEVICE_ID_HEX_LEN + 1);
    return PV_OK;
}

/* ---- consistency ---- */

static int check_record(const pv_mfgrec *rec, pv_err *e)
{
    char id[PV_DEVICE_ID_HEX_LEN + 1];
    if (rec->version != PV_MFGREC_VERSION) {
        return pv_err_set(e, PV_ERR_UNSUPPORTED, "record version %u is not supported",
                          rec->version);
    }
    if (kind_name(rec->rot_kind) == NULL) {
        return pv_err_set(e, PV_ERR_FORMAT, "unknown root-of-trust kind %d", (int)rec->rot_kind);
    }
    if (rec->identity_key == NULL || rec->attestation_key == NULL) {
        return pv_err_set(e, PV_ERR_FORMAT, "identity or attestation key missing");
    }
    if (device_id_of(rec->identity_key, id) != PV_OK) {
        return pv_err_set(e, PV_ERR_CRYPTO, "cannot compute the device ID");
    }
    if (strcmp(id, rec->device_id) != 0) {
        return pv_err_set(e, PV_ERR_FORMAT,
                          "device ID %.64s is not the SHA-256 of the identity key (%s)",
                          rec->device_id, id);
    }
    if (rec->manufactured_at < 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "manufacture time is negative");
    }
    bool has_ek = rec->ek_cert_der != NULL, has_ak = rec->ak_tpm_public != NULL;
    if (rec->rot_kind == PV_ROT_SOFTWARE) {
        if (has_ek || has_ak) {
            return pv_err_set(e, PV_ERR_FORMAT,
                              "a software root of trust has no EK certificate or AK public area");
        }
        return PV_OK;
    }
    if (!has_ek || !has_ak) {
        return pv_err_set(e, PV_ERR_FORMAT, "a TPM record needs the %s",
                          has_ek ? "AK public area" : "EK certificate");
    }
    pv_cert *ek = NULL;
    int r = pv_cert_from_der(rec->ek_cert_der, rec->ek_cert_len, &ek, e);
    pv_cert_free(ek);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "EK certificate");
    }
    r = pv_enroll_check_ak_public(rec->ak_tpm_public, rec->ak_tpm_public_len, rec->attestation_key,
                                  NULL, e);
    return r == PV_OK ? PV_OK : pv_err_wrap(e, r, "attestation key");
}

/* ---- encoding ---- */

static void put_key(pv_cbor_enc *enc, pv_buf *tmp, const pv_key *k)
{
    pv_buf_reset(tmp);
    int r = pv_key_spki_der(k, tmp);
    if (r != PV_OK) {
        if (enc->err == PV_OK) {
            enc->err = r;
        }
        return;
    }
    pv_cbor_put_bytes(enc, pv_buf_data(tmp), pv_buf_len(tmp));
}

static int encode_record(const pv_mfgrec *rec, pv_buf *out, pv_err *e)
{
    pv_buf *tmp = pv_buf_new(PV_MFGREC_MAX_SPKI);
    pv_cbor_enc enc;
    if (tmp == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    bool tpm = rec->rot_kind == PV_ROT_TPM;
    pv_cbor_enc_init(&enc, out);
    pv_cbor_put_map(&enc, tpm ? 9 : 7);
    pv_cbor_put_uint(&enc, K_VERSION);
    pv_cbor_put_uint(&enc, rec->version);
    pv_cbor_put_uint(&enc, K_DEVICE_ID);
    pv_cbor_put_text(&enc, rec->device_id);
    pv_cbor_put_uint(&enc, K_ROT_KIND);
    pv_cbor_put_text(&enc, kind_name(rec->rot_kind));
    pv_cbor_put_uint(&enc, K_IDENTITY_KEY);
    put_key(&enc, tmp, rec->identity_key);
    pv_cbor_put_uint(&enc, K_ATTESTATION_KEY);
    put_key(&enc, tmp, rec->attestation_key);
    if (tpm) {
        pv_cbor_put_uint(&enc, K_EK_CERT);
        pv_cbor_put_bytes(&enc, rec->ek_cert_der, rec->ek_cert_len);
        pv_cbor_put_uint(&enc, K_AK_TPM_PUBLIC);
        pv_cbor_put_bytes(&enc, rec->ak_tpm_public, rec->ak_tpm_public_len);
    }
    pv_cbor_put_uint(&enc, K_TRUST_ANCHOR);
    pv_cbor_put_bytes(&enc, rec->trust_anchor, PV_SHA256_LEN);
    pv_cbor_put_uint(&enc, K_MANUFACTURED_AT);
    pv_cbor_put_uint(&enc, (uint64_t)rec->manufactured_at);
    pv_buf_free(tmp);
    int r = pv_cbor_enc_result(&enc);
    return r == PV_OK ? PV_OK : pv_err_set(e, r, "encoding the record: %s", pv_strerror(r));
}

static int check_signer(const pv_key *key, const pv_chain *chain, pv_err *e)
{
    pv_key *leaf = NULL;
    size_t n = chain != NULL ? pv_chain_count(chain) : 0;
    if (key == NULL || !pv_key_has_private(key)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no factory private key");
    }
    if (n == 0 || n > PV_CHAIN_MAX_CERTS) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "factory chain must hold 1 to %d certificates",
                          PV_CHAIN_MAX_CERTS);
    }
    int r = pv_cert_public_key(pv_chain_get(chain, 0), &leaf, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, PV_ERR_INVALID_ARG, "factory certificate");
    }
    bool same = pv_key_equal_public(leaf, key);
    pv_key_free(leaf);
    return same ? PV_OK
                : pv_err_set(e, PV_ERR_INVALID_ARG,
                             "the factory certificate does not hold the factory key");
}

int pv_mfgrec_sign(const pv_mfgrec *rec, const pv_key *factory_key, const pv_chain *factory_chain,
                   pv_buf *out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    pv_buf *payload = pv_buf_new(PV_MFGREC_MAX_SIZE);
    if (payload == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (rec == NULL || out == NULL) {
        r = pv_err_set(e, PV_ERR_INVALID_ARG, "no record or no output");
        goto out;
    }
    if ((r = check_signer(factory_key, factory_chain, e)) != PV_OK ||
        (r = check_record(rec, e)) != PV_OK || (r = encode_record(rec, payload, e)) != PV_OK) {
        goto out;
    }
    r = envelope_build(&record_envelope, factory_key, factory_chain, pv_buf_data(payload),
                       pv_buf_len(payload), out, e);
out:
    pv_buf_free(payload);
    return r;
}

/* ---- decoding ---- */

/* A byte string of min..max bytes at key, copied. */
static int get_blob(const cbor_item_t *map, int64_t key, const char *what, size_t min, size_t max,
                    uint8_t **out, size_t *out_len, pv_err *e)
{
    const uint8_t *p;
    size_t n;
    int r = pv_cbor_get_bytes(pv_cbor_map_get(map, key), &p, &n, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "%s", what);
    }
    if (n < min || n > max) {
        return pv_err_set(e, n > max ? PV_ERR_TOO_LARGE : PV_ERR_FORMAT,
                          "%s is %zu bytes, expected %zu to %zu", what, n, min, max);
    }
    if ((*out = dup_bytes(p, n)) == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    *out_len = n;
    return PV_OK;
}

/* A P-256 key from its SPKI, which must be in the one encoding pv_key_spki_der writes:
 * the device ID is a hash of these bytes, so two spellings of one key would give it two
 * IDs. */
static int get_key(const cbor_item_t *map, int64_t key, const char *what, pv_key **out, pv_err *e)
{
    uint8_t *der = NULL;
    size_t len = 0;
    pv_buf *again = NULL;
    int r = get_blob(map, key, what, 1, PV_MFGREC_MAX_SPKI, &der, &len, e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = pv_key_from_spki_der(der, len, out, e)) != PV_OK) {
        pv_err_wrap(e, r, "%s", what);
        goto out;
    }
    if ((again = pv_buf_new(PV_MFGREC_MAX_SPKI)) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (pv_key_spki_der(*out, again) != PV_OK || pv_buf_len(again) != len ||
        memcmp(pv_buf_data(again), der, len) != 0) {
        r = pv_err_set(e, PV_ERR_FORMAT, "%s is not in canonical SubjectPublicKeyInfo form", what);
        goto out;
    }
    r = PV_OK;
out:
    if (r != PV_OK) {
        pv_key_free(*out);
        *out = NULL;
    }
    pv_buf_free(again);
    free(der);
    return r;
}

static int get_device_id(const cbor_item_t *map, char out[PV_DEVICE_ID_HEX_LEN + 1], pv_err *e)
{
    char *s = NULL;
    int r = pv_cbor_get_text(pv_cbor_map_get(map, K_DEVICE_ID), PV_DEVICE_ID_HEX_LEN, &s, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "device ID");
    }
    bool ok = strlen(s) == PV_DEVICE_ID_HEX_LEN;
    for (size_t i = 0; ok && s[i] != '\0'; i++) {
        ok = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f');
    }
    if (ok) {
        memcpy(out, s, PV_DEVICE_ID_HEX_LEN + 1);
    }
    free(s);
    return ok ? PV_OK
              : pv_err_set(e, PV_ERR_FORMAT, "device ID is not %d lowercase hex digits",
                           PV_DEVICE_ID_HEX_LEN);
}

static int get_kind(const cbor_item_t *map, pv_rot_kind *out, pv_err *e)
{
    char *s = NULL;
    int r = pv_cbor_get_text(pv_cbor_map_get(map, K_ROT_KIND), 16, &s, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "root-of-trust kind");
    }
    r = pv_rot_kind_parse(s, out) == PV_OK ? PV_OK : PV_ERR_FORMAT;
    if (r != PV_OK) {
        pv_err_set(e, r, "root-of-trust kind '%s' is neither 'tpm' nor 'software'", s);
    }
    free(s);
    return r;
}

/* The record map into the pv_mfgrec out, signed by kid (record_envelope's decoder). */
static int decode_fields(const cbor_item_t *map, const uint8_t kid[PV_KEY_ID_LEN], void *out,
                         pv_err *e)
{
    pv_mfgrec *rec = out;
    uint64_t u;
    const uint8_t *p;
    size_t n;
    int r;
    if (!cbor_isa_map(map)) {
        return pv_err_set(e, PV_ERR_FORMAT, "expected a map");
    }
    if ((r = pv_cbor_map_check_keys(map, record_keys, sizeof(record_keys) / sizeof(record_keys[0]),
                                    e)) != PV_OK) {
        return r;
    }
    if ((r = pv_cbor_get_uint(pv_cbor_map_get(map, K_VERSION), &u, e)) != PV_OK) {
        return pv_err_wrap(e, r, "version");
    }
    if (u != PV_MFGREC_VERSION) {
        return pv_err_set(e, PV_ERR_UNSUPPORTED, "version %" PRIu64 " is not supported", u);
    }
    rec->version = PV_MFGREC_VERSION;
    if ((r = get_device_id(map, rec->device_id, e)) != PV_OK ||
        (r = get_kind(map, &rec->rot_kind, e)) != PV_OK ||
        (r = get_key(map, K_IDENTITY_KEY, "identity key", &rec->identity_key, e)) != PV_OK ||
        (r = get_key(map, K_ATTESTATION_KEY, "attestation key", &rec->attestation_key, e)) !=
            PV_OK) {
        return r;
    }
    if (pv_cbor_map_get(map, K_EK_CERT) != NULL) {
        pv_cert *c = NULL;
        if ((r = get_blob(map, K_EK_CERT, "EK certificate", 1, PV_CERT_MAX_DER, &rec->ek_cert_der,
                          &rec->ek_cert_len, e)) != PV_OK) {
            return r;
        }
        r = pv_cert_from_der(rec->ek_cert_der, rec->ek_cert_len, &c, e);
        pv_cert_free(c);
        if (r != PV_OK) {
            return pv_err_wrap(e, r, "EK certificate");
        }
    }
    if (pv_cbor_map_get(map, K_AK_TPM_PUBLIC) != NULL &&
        (r = get_blob(map, K_AK_TPM_PUBLIC, "AK public area", 1, PV_ENROLL_MAX_TPM_PUBLIC,
                      &rec->ak_tpm_public, &rec->ak_tpm_public_len, e)) != PV_OK) {
        return r;
    }
    if ((r = pv_cbor_get_bytes(pv_cbor_map_get(map, K_TRUST_ANCHOR), &p, &n, e)) != PV_OK) {
        return pv_err_wrap(e, r, "trust anchor");
    }
    if (n != PV_SHA256_LEN) {
        return pv_err_set(e, PV_ERR_FORMAT, "trust anchor is %zu bytes, expected %d", n,
                          PV_SHA256_LEN);
    }
    memcpy(rec->trust_anchor, p, PV_SHA256_LEN);
    if ((r = pv_cbor_get_uint(pv_cbor_map_get(map, K_MANUFACTURED_AT), &u, e)) != PV_OK) {
        return pv_err_wrap(e, r, "manufacture time");
    }
    if (u > (uint64_t)INT64_MAX) {
        return pv_err_set(e, PV_ERR_FORMAT, "manufacture time is out of range");
    }
    rec->manufactured_at = (int64_t)u;
    memcpy(rec->signer_key_id, kid, PV_KEY_ID_LEN);
    return PV_OK;
}

static void release_record(void *rec)
{
    pv_mfgrec_free(rec);
}

int pv_mfgrec_decode(const uint8_t *p, size_t len, pv_mfgrec *out, pv_chain **chain, pv_err *e)
{
    if (out == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no output");
    }
    memset(out, 0, sizeof(*out));
    if (chain != NULL) {
        *chain = NULL;
    }
    return envelope_decode(&record_envelope, p, len, out, chain, e);
}

int pv_mfgrec_verify(const uint8_t *p, size_t len, const pv_trust *factory_cas, int64_t at,
                     pv_mfgrec *out, pv_err *e)
{
    if (out == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no output");
    }
    memset(out, 0, sizeof(*out));
    if (factory_cas == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no factory CA");
    }
    int r = envelope_verify(&record_envelope, p, len, factory_cas, at,
                            PV_VERIFY_CODE_SIGNING | PV_VERIFY_ALL_USED, out, e);
    if (r != PV_OK) {
        return r;
    }
    if ((r = check_record(out, e)) != PV_OK) {
        pv_mfgrec_free(out);
        return pv_err_wrap(e, r, "record");
    }
    return PV_OK;
}

void pv_mfgrec_free(pv_mfgrec *rec)
{
    if (rec == NULL) {
        return;
    }
    pv_key_free(rec->identity_key);
    pv_key_free(rec->attestation_key);
    free(rec->ek_cert_der);
    free(rec->ak_tpm_public);
    memset(rec, 0, sizeof(*rec));
}

/* ---- display ---- */

static json_t *hex_json(const uint8_t *p, size_t n)
{
    char *s = malloc(2 * n + 1);
    if (s == NULL) {
        return NULL;
    }
    pv_hex_encode(p, n, s, 2 * n + 1);
    json_t *j = json_string(s);
    free(s);
    return j;
}

static json_t *key_json(const pv_key *k)
{
    pv_buf *der = pv_buf_new(PV_MFGREC_MAX_SPKI);
    json_t *j = NULL;
    if (der != NULL && k != NULL && pv_key_spki_der(k, der) == PV_OK) {
        j = hex_json(pv_buf_data(der), pv_buf_len(der));
    }
    pv_buf_free(der);
    return j != NULL ? j : json_null();
}

static json_t *time_json(int64_t t)
{
    char s[PV_TIME_TEXT_LEN + 1];
    return pv_time_format(t, s) ? json_string(s) : json_null();
}

static json_t *ek_json(const pv_mfgrec *rec)
{
    pv_cert *c = NULL;
    char subject[256], issuer[256];
    uint8_t fp[PV_SHA256_LEN];
    int64_t nb, na;
    if (rec->ek_cert_der == NULL ||
        pv_cert_from_der(rec->ek_cert_der, rec->ek_cert_len, &c, NULL) != PV_OK) {
        return json_null();
    }
    pv_cert_subject(c, subject, sizeof(subject));
    pv_cert_issuer(c, issuer, sizeof(issuer));
    pv_cert_fingerprint(c, fp);
    bool have_validity = pv_cert_validity(c, &nb, &na) == PV_OK;
    pv_cert_free(c);
    return json_pack("{s:s, s:s, s:o, s:o}", "subject", subject, "issuer", issuer, "sha256",
                     hex_json(fp, sizeof(fp)), "not_after",
                     have_validity ? time_json(na) : json_null());
}

static json_t *ak_name_json(const pv_mfgrec *rec)
{
    uint8_t name[PV_ENROLL_AK_NAME_LEN];
    if (rec->ak_tpm_public == NULL || rec->ak_tpm_public_len > PV_ENROLL_MAX_TPM_PUBLIC) {
        return json_null();
    }
    /* The name of whatever the record holds, even an AK that fails the checks. */
    name[0] = 0x00;
    name[1] = 0x0b;
    if (pv_sha256_digest(rec->ak_tpm_public, rec->ak_tpm_public_len, name + 2) != PV_OK) {
        return json_null();
    }
    return hex_json(name, sizeof(name));
}

json_t *pv_mfgrec_to_json(const pv_mfgrec *rec)
{
    if (rec == NULL) {
        return NULL;
    }
    const char *kind = kind_name(rec->rot_kind);
    return json_pack(
        "{s:I, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:o}", "version",
        (json_int_t)rec->version, "device_id", rec->device_id, "root_of_trust",
        kind != NULL ? kind : "unknown", "identity_key", key_json(rec->identity_key),
        "attestation_key", key_json(rec->attestation_key), "ek_certificate", ek_json(rec),
        "ak_name", ak_name_json(rec), "trust_anchor", hex_json(rec->trust_anchor, PV_SHA256_LEN),
        "signer_key_id", hex_json(rec->signer_key_id, PV_KEY_ID_LEN), "manufactured_at",
        (json_int_t)rec->manufactured_at, "manufactured", time_json(rec->manufactured_at));
}
