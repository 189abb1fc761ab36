/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Certificates from untrusted bytes: pv_cert_from_der and everything a caller does with
 * the result, then the same bytes as a subject string for pv_cert_check_subject.
 */
#include <stdint.h>
#include <string.h>

#include "pavise/x509.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void use_cert(pv_cert *c)
{
    char text[256];
    int64_t nb = 0, na = 0;
    uint8_t fp[PV_SHA256_LEN];
    pv_key *k = NULL;
    pv_cert_subject(c, text, sizeof(text));
    pv_cert_issuer(c, text, sizeof(text));
    (void)pv_cert_validity(c, &nb, &na);
    (void)pv_cert_is_ca(c);
    pv_cert_fingerprint(c, fp);
    if (pv_cert_public_key(c, &k, NULL) == PV_OK) {
        pv_key_free(k);
    }
    /* The certificate as its own anchor: every check of the verifier runs on it. */
    pv_chain *ch = pv_chain_new();
    pv_trust *t = pv_trust_new();
    if (ch != NULL && t != NULL && pv_chain_add(ch, c) == PV_OK && pv_trust_add(t, c) == PV_OK) {
        int r =
            pv_chain_verify(ch, t, 1700000000, PV_VERIFY_CODE_SIGNING | PV_VERIFY_ALL_USED, NULL);
        (void)r;
    }
    pv_trust_free(t);
    pv_chain_free(ch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pv_cert *c = NULL;
    if (pv_cert_from_der(data, size, &c, NULL) == PV_OK) {
        use_cert(c);
        pv_cert_free(c);
    }
    char subject[320];
    size_t n = size < sizeof(subject) - 1 ? size : sizeof(subject) - 1;
    memcpy(subject, data, n);
    subject[n] = '\0';
    (void)pv_cert_check_subject(subject, NULL);
    return 0;
}
