/* SPDX-License-Identifier: Apache-2.0 */
/* The capability signer in the data directory (capsigner.h). */
#include "capsigner.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pavise/fs.h"

#define KEY_TMP_SUFFIX ".new"

static int join(char out[PATH_MAX], const char *dir, const char *name, const char *suffix,
                pv_err *e)
{
    int n = snprintf(out, PATH_MAX, "%s/%s%s", dir, name, suffix);
    if (n < 0 || n >= PATH_MAX) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "%s: path is too long", dir);
    }
    return PV_OK;
}

int capsigner_check(const pv_key *key, const pv_chain *chain, int64_t at, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    pv_key *leaf_key = NULL;
    pv_trust *top = NULL;
    size_t n = chain != NULL ? pv_chain_count(chain) : 0;
    if (key == NULL || !pv_key_has_private(key)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "the key is not a private key");
    }
    if (n == 0 || n > PV_CHAIN_MAX_CERTS) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "the chain must hold 1 to %d certificates",
                          PV_CHAIN_MAX_CERTS);
    }
    if ((r = pv_cert_public_key(pv_chain_get(chain, 0), &leaf_key, e)) != PV_OK) {
        return pv_err_wrap(e, PV_ERR_INVALID_ARG, "the chain's first certificate");
    }
    bool same = pv_key_equal_public(leaf_key, key);
    pv_key_free(leaf_key);
    if (!same) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "the chain's first certificate does not hold the key (the leaf comes "
                          "first)");
    }
    /* Anchored on its own topmost certificate: this proves the links, the validity and
     * the leaf's usage; that the top leads to the devices' update root only a device can
     * tell. */
    if ((top = pv_trust_new()) == NULL || pv_trust_add(top, pv_chain_get(chain, n - 1)) != PV_OK) {
        pv_trust_free(top);
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    r = pv_chain_verify(chain, top, at, PV_VERIFY_CAPABILITY_SIGNING | PV_VERIFY_ALL_USED, e);
    pv_trust_free(top);
    return r == PV_OK ? PV_OK : pv_err_wrap(e, r, "the chain");
}

int capsigner_store(const char *data_dir, const pv_key *key, const pv_chain *chain, pv_err *e)
{
    char key_path[PATH_MAX], tmp_path[PATH_MAX], chain_path[PATH_MAX];
    int r = join(key_path, data_dir, CAPSIGNER_KEY_FILE, "", e);
    if (r == PV_OK) {
        r = join(tmp_path, data_dir, CAPSIGNER_KEY_FILE, KEY_TMP_SUFFIX, e);
    }
    if (r == PV_OK) {
        r = join(chain_path, data_dir, CAPSIGNER_CHAIN_FILE, "", e);
    }
    if (r != PV_OK) {
        return r;
    }
    /* A temporary key left by an interrupted run is stale: pv_key_save_private_pem
     * never overwrites. */
    if (unlink(tmp_path) != 0 && errno != ENOENT) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s", tmp_path);
    }
    if ((r = pv_chain_save_pem(chain, chain_path, true, e)) != PV_OK ||
        (r = pv_key_save_private_pem(key, tmp_path, e)) != PV_OK) {
        return r;
    }
    if (rename(tmp_path, key_path) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", key_path);
        unlink(tmp_path);
        return r;
    }
    return pv_fs_sync_parent(key_path, e);
}

int capsigner_load(const char *data_dir, pv_key **key, pv_chain **chain, pv_err *e)
{
    char key_path[PATH_MAX], chain_path[PATH_MAX];
    pv_key *k = NULL, *leaf = NULL;
    pv_chain *ch = NULL;
    *key = NULL;
    *chain = NULL;
    int r = join(key_path, data_dir, CAPSIGNER_KEY_FILE, "", e);
    if (r == PV_OK) {
        r = join(chain_path, data_dir, CAPSIGNER_CHAIN_FILE, "", e);
    }
    if (r != PV_OK) {
        return r;
    }
    bool have_key = access(key_path, F_OK) == 0, have_chain = access(chain_path, F_OK) == 0;
    if (!have_key && !have_chain) {
        return pv_err_set(e, PV_ERR_NOT_FOUND, "no capability signer is installed");
    }
    if (have_key != have_chain) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "capability signer: %s is missing",
                          have_key ? chain_path : key_path);
    }
    if ((r = pv_key_load_private_pem(key_path, &k, e)) != PV_OK ||
        (r = pv_chain_load_pem(chain_path, &ch, e)) != PV_OK) {
        goto out;
    }
    if ((r = pv_cert_public_key(pv_chain_get(ch, 0), &leaf, e)) != PV_OK) {
        pv_err_wrap(e, r, "%s", chain_path);
        goto out;
    }
    if (!pv_key_equal_public(leaf, k)) {
        r = pv_err_set(e, PV_ERR_INVALID_ARG,
                       "capability signer: %s does not hold the key of %s (being replaced?)",
                       chain_path, key_path);
        goto out;
    }
    *key = k;
    *chain = ch;
    k = NULL;
    ch = NULL;
    r = PV_OK;
out:
    pv_key_free(leaf);
    pv_key_free(k);
    pv_chain_free(ch);
    return r;
}
