/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Checking a TPM 2.0 quote (docs/protocol/attestation.md §1.4), the verifier's side of
 * pv_rot_quote.
 *
 * The attest bytes come from the network, so they are parsed as untrusted input: the
 * framing (magic, type, the shape of the PCR selection) is read by hand before tpm2-tss
 * unmarshals it, the whole buffer must be exactly one TPMS_ATTEST, and the signature is checked
 * over the bytes as received (the TPM signed its own encoding, so nothing is re-encoded). The
 * structure is checked before the signature so a malformed quote says what is wrong with it; the
 * comparisons with what the verifier expects (qualifying data, PCR digest) come after it,
 * so a mismatch they report is one the TPM really signed.
 */
#include "pavise/quote.h"

#include <stdbool.h>
#include <string.h>

#include <openssl/crypto.h>
#include <tss2/tss2_mu.h>

#include "pavise/buf.h"

#define CLOCK_INFO_LEN 17 /* TPMS_CLOCK_INFO: clock, resetCount, restartCount, safe */
#define PCR_SELECT_LEN 3  /* bytes of a PCR bitmap for 24 PCRs, what every TPM uses */
#define PCR_MAX        (8 * PCR_SELECT_LEN)

/* Reads the quote's framing from the raw bytes before tpm2-tss unmarshals it: magic
 * and type (tpm2-tss picks the union member by type and refuses one it does not know
 * with a generic error), and the PCR selection's bank count and bitmap size. tpm2-tss
 * bounds those too, but reports them on stderr, and library code does not print; here
 * they get their own message. The TPM2B sizes on the way are bounded by the reader only;
 * tpm2-tss checks them against its buffers. */
static int check_raw(const uint8_t *attest, size_t len, pv_err *e)
{
    pv_reader rd;
    uint32_t magic = 0, count = 0;
    uint16_t type = 0, n = 0, hash = 0;
    uint8_t size_of_select = 0;
    const uint8_t *skip = NULL;
    pv_reader_init(&rd, attest, len);
    if (pv_reader_u32be(&rd, &magic) != PV_OK || pv_reader_u16be(&rd, &type) != PV_OK) {
        return pv_err_set(e, PV_ERR_FORMAT, "quote is truncated (%zu bytes)", len);
    }
    if (magic != TPM2_GENERATED_VALUE) {
        return pv_err_set(e, PV_ERR_FORMAT,
                          "quote magic is 0x%08x, not TPM_GENERATED_VALUE: the TPM did not "
                          "produce it",
                          (unsigned)magic);
    }
    if (type != TPM2_ST_ATTEST_QUOTE) {
        return pv_err_set(e, PV_ERR_FORMAT,
                          "attestation type is 0x%04x, not a quote (TPM_ST_ATTEST_QUOTE)",
                          (unsigned)type);
    }
    /* qualifiedSigner, extraData, then clockInfo and firmwareVersion. */
    bool ok = pv_reader_u16be(&rd, &n) == PV_OK && pv_reader_bytes(&rd, n, &skip) == PV_OK &&
              pv_reader_u16be(&rd, &n) == PV_OK && pv_reader_bytes(&rd, n, &skip) == PV_OK &&
              pv_reader_bytes(&rd, CLOCK_INFO_LEN + 8, &skip) == PV_OK &&
              pv_reader_u32be(&rd, &count) == PV_OK;
    if (!ok) {
        return pv_err_set(e, PV_ERR_FORMAT, "quote is truncated before its PCR selection");
    }
    if (count != 1) {
        return pv_err_set(e, PV_ERR_FORMAT, "quote selects %u PCR banks, not one", (unsigned)count);
    }
    if (pv_reader_u16be(&rd, &hash) != PV_OK || pv_reader_u8(&rd, &size_of_select) != PV_OK) {
        return pv_err_set(e, PV_ERR_FORMAT, "quote is truncated in its PCR selection");
    }
    if (size_of_select != PCR_SELECT_LEN) {
        return pv_err_set(e, PV_ERR_FORMAT, "quote's PCR bitmap is %u bytes, not %d",
                          (unsigned)size_of_select, PCR_SELECT_LEN);
    }
    return PV_OK;
}

/* Exactly one bank, SHA-256, a 3-byte bitmap with only `pcr` set. A quote over more PCRs
 * would need their values too; one over another bank or PCR proves nothing about ours. */
static int check_selection(const TPML_PCR_SELECTION *sel, unsigned pcr, pv_err *e)
{
    if (sel->count != 1) {
        return pv_err_set(e, PV_ERR_FORMAT, "quote selects %u PCR banks, not one",
                          (unsigned)sel->count);
    }
    const TPMS_PCR_SELECTION *s = &sel->pcrSelections[0];
    if (s->hash != TPM2_ALG_SHA256) {
        return pv_err_set(e, PV_ERR_FORMAT, "quote selects PCR bank 0x%04x, not SHA-256",
                          (unsigned)s->hash);
    }
    if (s->sizeofSelect != PCR_SELECT_LEN) {
        return pv_err_set(e, PV_ERR_FORMAT, "quote's PCR bitmap is %u bytes, not %d",
                          (unsigned)s->sizeofSelect, PCR_SELECT_LEN);
    }
    for (unsigned i = 0; i < PCR_SELECT_LEN; i++) {
        uint8_t want = i == pcr / 8 ? (uint8_t)(1u << (pcr % 8)) : 0;
        if (s->pcrSelect[i] != want) {
            return pv_err_set(e, PV_ERR_FORMAT,
                              "quote selects other PCRs than PCR %u (bitmap %02x %02x %02x)", pcr,
                              s->pcrSelect[0], s->pcrSelect[1], s->pcrSelect[2]);
        }
    }
    return PV_OK;
}

static int parse(const uint8_t *attest, size_t len, unsigned pcr, TPMS_ATTEST *a, pv_err *e)
{
    if (len == 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "quote is empty");
    }
    if (len > PV_QUOTE_MAX_ATTEST) {
        return pv_err_set(e, PV_ERR_FORMAT, "quote is %zu bytes, at most %d allowed", len,
                          PV_QUOTE_MAX_ATTEST);
    }
    int r = check_raw(attest, len, e);
    if (r != PV_OK) {
        return r;
    }
    size_t off = 0;
    TSS2_RC rc = Tss2_MU_TPMS_ATTEST_Unmarshal(attest, len, &off, a);
    if (rc != TSS2_RC_SUCCESS) {
        return pv_err_set(e, PV_ERR_FORMAT,
                          "quote is not a TPMS_ATTEST (truncated or a field out of range; "
                          "unmarshal error 0x%x)",
                          (unsigned)rc);
    }
    if (off != len) {
        return pv_err_set(e, PV_ERR_FORMAT, "quote has %zu bytes after the TPMS_ATTEST", len - off);
    }
    /* check_raw saw these; the unmarshaled copy must agree (it is what is used). */
    if (a->magic != TPM2_GENERATED_VALUE || a->type != TPM2_ST_ATTEST_QUOTE) {
        return pv_err_set(e, PV_ERR_FORMAT, "quote header does not unmarshal as read");
    }
    r = check_selection(&a->attested.quote.pcrSelect, pcr, e);
    if (r != PV_OK) {
        return r;
    }
    if (a->extraData.size != PV_SHA256_LEN) {
        return pv_err_set(e, PV_ERR_FORMAT, "quote's qualifying data is %u bytes, not %d",
                          (unsigned)a->extraData.size, PV_SHA256_LEN);
    }
    if (a->attested.quote.pcrDigest.size != PV_SHA256_LEN) {
        return pv_err_set(e, PV_ERR_FORMAT, "quote's PCR digest is %u bytes, not %d",
                          (unsigned)a->attested.quote.pcrDigest.size, PV_SHA256_LEN);
    }
    return PV_OK;
}

int pv_quote_verify(const uint8_t *attest, size_t attest_len, const uint8_t sig[PV_ES256_SIG_LEN],
                    const pv_key *ak, const uint8_t qualifying[PV_SHA256_LEN], unsigned pcr,
                    const uint8_t pcr_value[PV_SHA256_LEN], pv_quote_info *info, pv_err *e)
{
    TPMS_ATTEST a;
    uint8_t digest[PV_SHA256_LEN];
    int r = PV_ERR_INTERNAL;
    if (info != NULL) {
        memset(info, 0, sizeof(*info));
    }
    if ((attest == NULL && attest_len != 0) || sig == NULL || ak == NULL || qualifying == NULL ||
        pcr_value == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "quote check without a quote, key or values");
    }
    if (pcr >= PCR_MAX) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no PCR %u (0-%d)", pcr, PCR_MAX - 1);
    }
    memset(&a, 0, sizeof(a));
    r = parse(attest, attest_len, pcr, &a, e);
    if (r != PV_OK) {
        goto out;
    }
    /* ES256 hashes attest with SHA-256: the digest the TPM signed. */
    r = pv_key_verify_es256(ak, attest, attest_len, sig, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "quote signature with the attestation key");
        goto out;
    }
    /* Public values, but compared as the rest of Pavise compares digests. */
    if (CRYPTO_memcmp(a.extraData.buffer, qualifying, PV_SHA256_LEN) != 0) {
        r = pv_err_set(e, PV_ERR_SIGNATURE,
                       "the quote is for other qualifying data (another nonce or key binding)");
        goto out;
    }
    r = pv_sha256_digest(pcr_value, PV_SHA256_LEN, digest);
    if (r != PV_OK) {
        r = pv_err_set(e, PV_ERR_CRYPTO, "cannot hash the PCR value");
        goto out;
    }
    if (CRYPTO_memcmp(a.attested.quote.pcrDigest.buffer, digest, PV_SHA256_LEN) != 0) {
        r = pv_err_set(e, PV_ERR_SIGNATURE, "the quoted PCR %u is not the measurement claimed",
                       pcr);
        goto out;
    }
    if (info != NULL) {
        info->clock = a.clockInfo.clock;
        info->reset_count = a.clockInfo.resetCount;
        info->restart_count = a.clockInfo.restartCount;
        info->firmware_version = a.firmwareVersion;
    }
    r = PV_OK;
out:
    return r;
}
