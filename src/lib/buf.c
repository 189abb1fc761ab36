/* SPDX-License-Identifier: Apache-2.0 */
#include "pavise/buf.h"

#include <stdlib.h>
#include <string.h>

struct pv_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t max;
    bool secret;
};

pv_buf *pv_buf_new(size_t max)
{
    pv_buf *b = calloc(1, sizeof(*b));
    if (b != NULL) {
        b->max = max;
    }
    return b;
}

void pv_buf_free(pv_buf *b)
{
    if (b == NULL) {
        return;
    }
    if (b->secret && b->data != NULL) {
        explicit_bzero(b->data, b->cap);
    }
    free(b->data);
    free(b);
}

void pv_buf_set_secret(pv_buf *b)
{
    b->secret = true;
}

const uint8_t *pv_buf_data(const pv_buf *b)
{
    return b->data;
}

uint8_t *pv_buf_mutable_data(pv_buf *b)
{
    return b->data;
}

size_t pv_buf_len(const pv_buf *b)
{
    return b->len;
}

size_t pv_buf_max(const pv_buf *b)
{
    return b->max;
}

void pv_buf_reset(pv_buf *b)
{
    if (b->secret && b->data != NULL) {
        explicit_bzero(b->data, b->cap);
    }
    b->len = 0;
}

int pv_buf_reserve(pv_buf *b, size_t n, uint8_t **p)
{
    *p = NULL;
    if (n > b->max || b->len > b->max - n) {
        return PV_ERR_TOO_LARGE;
    }
    size_t need = b->len + n;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < need) {
            cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
        }
        if (cap > b->max) {
            cap = b->max;
        }
        uint8_t *d = malloc(cap);
        if (d == NULL) {
            return PV_ERR_NOMEM;
        }
        if (b->data != NULL) {
            memcpy(d, b->data, b->len);
            if (b->secret) {
                explicit_bzero(b->data, b->cap);
            }
            free(b->data);
        }
        b->data = d;
        b->cap = cap;
    }
    *p = b->data + b->len;
    return PV_OK;
}

void pv_buf_commit(pv_buf *b, size_t used)
{
    b->len += used;
}

int pv_buf_append(pv_buf *b, const void *p, size_t n)
{
    uint8_t *dst;
    int r = pv_buf_reserve(b, n, &dst);
    if (r != PV_OK) {
        return r;
    }
    if (n > 0) {
        memcpy(dst, p, n);
    }
    b->len += n;
    return PV_OK;
}

int pv_buf_append_u8(pv_buf *b, uint8_t v)
{
    return pv_buf_append(b, &v, 1);
}

int pv_buf_append_u16be(pv_buf *b, uint16_t v)
{
    uint8_t t[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return pv_buf_append(b, t, sizeof(t));
}

int pv_buf_append_u32be(pv_buf *b, uint32_t v)
{
    uint8_t t[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return pv_buf_append(b, t, sizeof(t));
}

int pv_buf_append_u64be(pv_buf *b, uint64_t v)
{
    int r = pv_buf_append_u32be(b, (uint32_t)(v >> 32));
    return r != PV_OK ? r : pv_buf_append_u32be(b, (uint32_t)v);
}

uint8_t *pv_buf_steal(pv_buf *b, size_t *len)
{
    uint8_t *d = b->data;
    *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return d;
}

void pv_reader_init(pv_reader *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->off = 0;
}

size_t pv_reader_left(const pv_reader *r)
{
    return r->len - r->off;
}

int pv_reader_bytes(pv_reader *r, size_t n, const uint8_t **p)
{
    if (n > pv_reader_left(r)) {
        return PV_ERR_TRUNCATED;
    }
    *p = r->p + r->off;
    r->off += n;
    return PV_OK;
}

static int read_be(pv_reader *r, size_t n, uint64_t *v)
{
    const uint8_t *p;
    int rc = pv_reader_bytes(r, n, &p);
    if (rc != PV_OK) {
        return rc;
    }
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        x = (x << 8) | p[i];
    }
    *v = x;
    return PV_OK;
}

int pv_reader_u8(pv_reader *r, uint8_t *v)
{
    uint64_t x;
    int rc = read_be(r, 1, &x);
    if (rc == PV_OK) {
        *v = (uint8_t)x;
    }
    return rc;
}

int pv_reader_u16be(pv_reader *r, uint16_t *v)
{
    uint64_t x;
    int rc = read_be(r, 2, &x);
    if (rc == PV_OK) {
        *v = (uint16_t)x;
    }
    return rc;
}

int pv_reader_u32be(pv_reader *r, uint32_t *v)
{
    uint64_t x;
    int rc = read_be(r, 4, &x);
    if (rc == PV_OK) {
        *v = (uint32_t)x;
    }
    return rc;
}

int pv_reader_u64be(pv_reader *r, uint64_t *v)
{
    return read_be(r, 8, v);
}
