/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Certificate signing requests from untrusted bytes: pv_csr_verify on PEM (POST
 * /v1/enroll carries one), and pv_csr_verify_der on the same bytes as DER (the
 * attestation request carries one), whose answer must be OpenSSL's own: it reads the
 * common shape of request directly, and a request it accepts that OpenSSL would refuse,
 * or the reverse, or another key, aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "pavise/buf.h"
#include "pavise/x509.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* OpenSSL's answer for a DER request: its P-256 key's SPKI when it verifies. */
static bool openssl_accepts(const uint8_t *data, size_t size, unsigned char **spki, int *spki_len)
{
    const unsigned char *p = data;
    bool ok = false;
    X509_REQ *req = size <= PV_CSR_MAX ? d2i_X509_REQ(NULL, &p, (long)size) : NULL;
    EVP_PKEY *pk = req != NULL && p == data + size ? X509_REQ_get0_pubkey(req) : NULL;
    char group[32] = "";
    if (pk != NULL && EVP_PKEY_is_a(pk, "EC") &&
        EVP_PKEY_get_utf8_string_param(pk, "group", group, sizeof(group), NULL) == 1 &&
        strcmp(group, "prime256v1") == 0 && X509_REQ_verify(req, pk) == 1) {
        *spki_len = i2d_PUBKEY(pk, spki);
        ok = *spki_len > 0;
    }
    ERR_clear_error();
    X509_REQ_free(req);
    return ok;
}

static void check_der(const uint8_t *data, size_t size)
{
    pv_key *k = NULL;
    pv_err e;
    unsigned char *want = NULL;
    int want_len = 0;
    int r = pv_csr_verify_der(data, size, &k, &e);
    bool ref = openssl_accepts(data, size, &want, &want_len);
    if ((r == PV_OK) != ref) {
        fprintf(stderr, "fuzz_csr: pv_csr_verify_der says %d, OpenSSL %s\n", r,
                ref ? "accepts" : "refuses");
        abort();
    }
    if (r == PV_OK) {
        pv_buf *got = pv_buf_new(256);
        if (got == NULL || pv_key_spki_der(k, got) != PV_OK ||
            pv_buf_len(got) != (size_t)want_len ||
            memcmp(pv_buf_data(got), want, (size_t)want_len) != 0) {
            fprintf(stderr, "fuzz_csr: pv_csr_verify_der returned another key than OpenSSL\n");
            abort();
        }
        pv_buf_free(got);
        pv_key_free(k);
    }
    OPENSSL_free(want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pv_key *k = NULL;
    pv_err e;
    /* The server passes a C string and its length; copy so the bytes end with NUL as
     * they do there, and are not read past. */
    char *pem = malloc(size + 1);
    if (pem == NULL) {
        return 0;
    }
    memcpy(pem, data, size);
    pem[size] = '\0';
    if (pv_csr_verify(pem, size, &k, &e) == PV_OK) {
        uint8_t id[PV_KEY_ID_LEN];
        (void)pv_key_id(k, id);
        pv_key_free(k);
    }
    free(pem);
    check_der(data, size);
    return 0;
}
