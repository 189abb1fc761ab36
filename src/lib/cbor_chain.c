/* SPDX-License-Identifier: Apache-2.0 */
/* Certificate chains in CBOR (an array of DER byte strings): apart from cbor.c so that a
 * program that decodes manifests only (pavised's supervisor) does not link libcrypto. */
#include "pavise/cbor.h"

#include <cbor.h>

#include "pavise/x509.h"

void pv_cbor_put_chain(pv_cbor_enc *enc, const pv_chain *chain)
{
    pv_cbor_put_array(enc, pv_chain_count(chain));
    for (size_t i = 0; i < pv_chain_count(chain); i++) {
        const uint8_t *der;
        size_t len;
        pv_cert_der(pv_chain_get(chain, i), &der, &len);
        pv_cbor_put_bytes(enc, der, len);
    }
}

int pv_cbor_get_chain(const cbor_item_t *it, pv_chain **out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    pv_chain *chain = NULL;
    *out = NULL;
    if (it == NULL || !cbor_isa_array(it) || !cbor_array_is_definite(it) ||
        cbor_array_size(it) == 0 || cbor_array_size(it) > PV_CHAIN_MAX_CERTS) {
        return pv_err_set(e, PV_ERR_FORMAT, "expected an array of 1 to %d certificates",
                          PV_CHAIN_MAX_CERTS);
    }
    if ((chain = pv_chain_new()) == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < cbor_array_size(it); i++) {
        const uint8_t *der;
        size_t len;
        pv_cert *c = NULL;
        if ((r = pv_cbor_get_bytes(cbor_array_handle(it)[i], &der, &len, e)) != PV_OK ||
            (r = pv_cert_from_der(der, len, &c, e)) != PV_OK) {
            pv_err_wrap(e, r, "certificate %zu", i);
            goto out;
        }
        r = pv_chain_add(chain, c);
        pv_cert_free(c);
        if (r != PV_OK) {
            r = pv_err_set(e, r, "certificate %zu: %s", i, pv_strerror(r));
            goto out;
        }
    }
    *out = chain;
    chain = NULL;
    r = PV_OK;
out:
    pv_chain_free(chain);
    return r;
}
