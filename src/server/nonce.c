/* SPDX-License-Identifier: Apache-2.0 */
#include "nonce.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "pavise/fs.h"

#define NONCE_CONTEXT "pavise-nonce-v1"

int nonce_key_load(const char *data_dir, bool create, uint8_t key[NONCE_KEY_LEN], pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    char path[4096];
    uint8_t fresh[NONCE_KEY_LEN];
    uint8_t *data = NULL;
    size_t len = 0;

    memset(key, 0, NONCE_KEY_LEN);
    int n = snprintf(path, sizeof(path), "%s/%s", data_dir, NONCE_KEY_FILE);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "the data directory's path is too long");
    }
    r = pv_fs_read_file(path, NONCE_KEY_LEN + 1, &data, &len, e);
    if (r == PV_ERR_NOT_FOUND && create) {
        if (pv_random_bytes(fresh, sizeof(fresh)) != PV_OK) {
            r = pv_err_set(e, PV_ERR_CRYPTO, "no random bytes for the nonce key");
            goto out;
        }
        /* Never replaces a file: a process that lost the race reads the winner's. */
        r = pv_fs_write_file(path, fresh, sizeof(fresh), 0600, false, e);
        if (r != PV_OK && r != PV_ERR_EXISTS) {
            goto out;
        }
        pv_err_clear(e);
        r = pv_fs_read_file(path, NONCE_KEY_LEN + 1, &data, &len, e);
    }
    if (r != PV_OK) {
        goto out;
    }
    if (len != NONCE_KEY_LEN) {
        r = pv_err_set(e, PV_ERR_FORMAT, "%s: expected %d bytes, found %zu", path, NONCE_KEY_LEN,
                       len);
        goto out;
    }
    memcpy(key, data, NONCE_KEY_LEN);
    r = PV_OK;
out:
    OPENSSL_cleanse(fresh, sizeof(fresh));
    if (data != NULL) {
        OPENSSL_cleanse(data, len);
        free(data);
    }
    return r;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* The MAC over the context, the device ID and the nonce's first 24 bytes. */
static int nonce_mac(const uint8_t key[NONCE_KEY_LEN], const char *device_id,
                     const uint8_t head[NONCE_RANDOM_LEN + 8], uint8_t out[NONCE_MAC_LEN],
                     pv_err *e)
{
    uint8_t msg[sizeof(NONCE_CONTEXT) - 1 + PV_DEVICE_ID_HEX_LEN + NONCE_RANDOM_LEN + 8];
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    size_t o = 0;

    if (device_id == NULL || strlen(device_id) != PV_DEVICE_ID_HEX_LEN) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "nonce: not a device ID");
    }
    memcpy(msg + o, NONCE_CONTEXT, sizeof(NONCE_CONTEXT) - 1);
    o += sizeof(NONCE_CONTEXT) - 1;
    memcpy(msg + o, device_id, PV_DEVICE_ID_HEX_LEN);
    o += PV_DEVICE_ID_HEX_LEN;
    memcpy(msg + o, head, NONCE_RANDOM_LEN + 8);
    o += NONCE_RANDOM_LEN + 8;
    if (HMAC(EVP_sha256(), key, NONCE_KEY_LEN, msg, o, mac, &mac_len) == NULL ||
        mac_len < NONCE_MAC_LEN) {
        return pv_err_set(e, PV_ERR_CRYPTO, "nonce: HMAC-SHA-256 failed");
    }
    memcpy(out, mac, NONCE_MAC_LEN);
    OPENSSL_cleanse(mac, sizeof(mac));
    return PV_OK;
}

int nonce_issue(const uint8_t key[NONCE_KEY_LEN], const char *device_id, int64_t now,
                uint8_t out[PV_NONCE_LEN], int64_t *expires_at, pv_err *e)
{
    memset(out, 0, PV_NONCE_LEN);
    *expires_at = 0;
    if (now < 0) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "nonce: the clock is before 1970");
    }
    if (pv_random_bytes(out, NONCE_RANDOM_LEN) != PV_OK) {
        return pv_err_set(e, PV_ERR_CRYPTO, "nonce: no random bytes");
    }
    int64_t exp = now + NONCE_TTL_SECONDS;
    put_be64(out + NONCE_RANDOM_LEN, (uint64_t)exp);
    int r = nonce_mac(key, device_id, out, out + NONCE_RANDOM_LEN + 8, e);
    if (r != PV_OK) {
        memset(out, 0, PV_NONCE_LEN);
        return r;
    }
    *expires_at = exp;
    return PV_OK;
}

int nonce_check(const uint8_t key[NONCE_KEY_LEN], const char *device_id,
                const uint8_t nonce[PV_NONCE_LEN], int64_t now, int64_t *expires_at, pv_err *e)
{
    uint8_t mac[NONCE_MAC_LEN];
    *expires_at = 0;
    int r = nonce_mac(key, device_id, nonce, mac, e);
    if (r != PV_OK) {
        return r;
    }
    bool ok = CRYPTO_memcmp(mac, nonce + NONCE_RANDOM_LEN + 8, NONCE_MAC_LEN) == 0;
    OPENSSL_cleanse(mac, sizeof(mac));
    if (!ok) {
        return pv_err_set(e, PV_ERR_SIGNATURE,
                          "the nonce was not issued by this service for this device");
    }
    uint64_t exp = get_be64(nonce + NONCE_RANDOM_LEN);
    if (exp > (uint64_t)INT64_MAX || (int64_t)exp <= now) {
        return pv_err_set(e, PV_ERR_EXPIRED, "the nonce has expired");
    }
    *expires_at = (int64_t)exp;
    return PV_OK;
}
