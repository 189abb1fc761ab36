/* SPDX-License-Identifier: Apache-2.0 */
#include "codes.h"

#include <stdbool.h>
#include <string.h>

#include "pavise/crypto.h"

#include "api.h"

#define CODE_BYTES 20 /* 160 bits: 32 base32 characters, no padding */
#define CODE_CHARS 32
/* A typed code may carry dashes anywhere; anything longer is not a code. */
#define CODE_INPUT_MAX 64

static const char b32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* RFC 4648 base32 of exactly CODE_BYTES bytes (a multiple of 5: no padding). */
static void b32_encode(const uint8_t in[CODE_BYTES], char out[CODE_CHARS])
{
    size_t o = 0;
    for (size_t i = 0; i < CODE_BYTES; i += 5) {
        uint64_t v = 0;
        for (size_t j = 0; j < 5; j++) {
            v = (v << 8) | in[i + j];
        }
        for (int k = 7; k >= 0; k--) {
            out[o++] = b32_alphabet[(v >> (5 * k)) & 31];
        }
    }
}

/* Uppercases and drops dashes: the form whose hash is stored. PV_ERR_FORMAT when the
 * text holds anything but base32 characters and dashes, or not exactly 32 of them. */
static int normalise(const char *code, char out[CODE_CHARS + 1])
{
    size_t n = 0;
    size_t len = strnlen(code, CODE_INPUT_MAX + 1);
    if (len > CODE_INPUT_MAX) {
        return PV_ERR_FORMAT;
    }
    for (size_t i = 0; i < len; i++) {
        char ch = code[i];
        if (ch == '-') {
            continue;
        }
        if (ch >= 'a' && ch <= 'z') {
            ch = (char)(ch - 'a' + 'A');
        }
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= '2' && ch <= '7')) || n == CODE_CHARS) {
            return PV_ERR_FORMAT;
        }
        out[n++] = ch;
    }
    if (n != CODE_CHARS) {
        return PV_ERR_FORMAT;
    }
    out[n] = '\0';
    return PV_OK;
}

static int hash_code(const char norm[CODE_CHARS + 1], char hex[2 * PV_SHA256_LEN + 1])
{
    uint8_t d[PV_SHA256_LEN];
    int r = pv_sha256_digest(norm, CODE_CHARS, d);
    if (r == PV_OK) {
        pv_hex_encode(d, sizeof(d), hex, 2 * PV_SHA256_LEN + 1);
    }
    pv_wipe(d, sizeof(d));
    return r;
}

static bool valid_role(const char *role)
{
    return strcmp(role, "Administrator") == 0 || strcmp(role, "Contributor") == 0 ||
           strcmp(role, "Reader") == 0;
}

int codes_create(store *db, const char *user_name, const char *tenant_id, const char *role,
                 const char *created_by, int64_t now, int64_t ttl_seconds,
                 char code[CODES_TEXT_LEN + 1], pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    uint8_t raw[CODE_BYTES];
    char norm[CODE_CHARS + 1];
    char hex[2 * PV_SHA256_LEN + 1];

    code[0] = '\0';
    if (!api_valid_user_name(user_name)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "enrollment code: '%.64s' is not a valid user name", user_name);
    }
    if ((tenant_id == NULL) != (role == NULL) || (role != NULL && !valid_role(role))) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "enrollment code: a tenant needs a role (Administrator, Contributor or "
                          "Reader) and the first administrator neither");
    }
    if (ttl_seconds <= 0 || now > INT64_MAX - ttl_seconds) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "enrollment code: lifetime %lld is out of range",
                          (long long)ttl_seconds);
    }
    if (pv_random_bytes(raw, sizeof(raw)) != PV_OK) {
        r = pv_err_set(e, PV_ERR_CRYPTO, "enrollment code: no random bytes");
        goto out;
    }
    b32_encode(raw, norm);
    norm[CODE_CHARS] = '\0';
    if ((r = hash_code(norm, hex)) != PV_OK) {
        pv_err_set(e, r, "enrollment code: cannot hash it");
        goto out;
    }
    store_val p[] = {SV_TEXT(hex),
                     SV_TEXT(user_name),
                     SV_TEXT_OR_NULL(tenant_id),
                     SV_TEXT_OR_NULL(role),
                     SV_TEXT_OR_NULL(created_by),
                     SV_INT(now),
                     SV_INT(now + ttl_seconds)};
    r = store_exec(db,
                   "INSERT INTO enrollment_codes (code_hash, user_name, tenant_id, role, "
                   "created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                   p, sizeof(p) / sizeof(p[0]), NULL, NULL, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "enrollment code for %s", user_name);
        goto out;
    }
    /* Groups of four for reading it out: "ABCD-EFGH-...". */
    size_t o = 0;
    for (size_t i = 0; i < CODE_CHARS; i++) {
        if (i > 0 && i % 4 == 0) {
            code[o++] = '-';
        }
        code[o++] = norm[i];
    }
    code[o] = '\0';
    r = PV_OK;
out:
    pv_wipe(raw, sizeof(raw));
    pv_wipe(norm, sizeof(norm));
    return r;
}

static int copy_field(char *dst, size_t size, const char *src)
{
    size_t n = src != NULL ? strlen(src) : 0;
    if (n >= size) {
        return PV_ERR_FORMAT;
    }
    memcpy(dst, src != NULL ? src : "", n);
    dst[n] = '\0';
    return PV_OK;
}

int codes_redeem(store *db, const char *code, int64_t now, codes_grant *out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    char norm[CODE_CHARS + 1];
    char hex[2 * PV_SHA256_LEN + 1];
    store_rows *rows = NULL;
    int64_t changes = 0;

    memset(out, 0, sizeof(*out));
    if (normalise(code, norm) != PV_OK) {
        r = pv_err_set(e, PV_ERR_FORMAT, "enrollment code: not 32 base32 characters");
        goto out;
    }
    if ((r = hash_code(norm, hex)) != PV_OK) {
        pv_err_set(e, r, "enrollment code: cannot hash it");
        goto out;
    }
    /* One conditional UPDATE: of two redeemers on two replicas only one changes the row. */
    store_val up[] = {SV_TEXT(hex), SV_INT(now)};
    r = store_exec(db,
                   "UPDATE enrollment_codes SET used_at = $2 "
                   "WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2",
                   up, 2, NULL, &changes, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "enrollment code");
        goto out;
    }
    if (changes == 0) {
        r = pv_err_set(e, PV_ERR_NOT_FOUND, "enrollment code is unknown, used or expired");
        goto out;
    }
    store_val sel[] = {SV_TEXT(hex)};
    r = store_exec(db,
                   "SELECT user_name, tenant_id, role FROM enrollment_codes WHERE code_hash = $1",
                   sel, 1, &rows, NULL, e);
    if (r != PV_OK) {
        pv_err_wrap(e, r, "enrollment code");
        goto out;
    }
    codes_grant g;
    memset(&g, 0, sizeof(g));
    if (store_rows_count(rows) != 1 ||
        copy_field(g.user_name, sizeof(g.user_name), store_rows_text(rows, 0, 0)) != PV_OK ||
        copy_field(g.tenant_id, sizeof(g.tenant_id), store_rows_text(rows, 0, 1)) != PV_OK ||
        copy_field(g.role, sizeof(g.role), store_rows_text(rows, 0, 2)) != PV_OK ||
        g.user_name[0] == '\0') {
        r = pv_err_set(e, PV_ERR_INTERNAL, "enrollment code: its stored grant is damaged");
        goto out;
    }
    *out = g;
    r = PV_OK;
out:
    store_rows_free(rows);
    pv_wipe(norm, sizeof(norm));
    return r;
}
