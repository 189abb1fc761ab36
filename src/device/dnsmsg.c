/* SPDX-License-Identifier: Apache-2.0 */
#include "dnsmsg.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define OPCODE(flags) (((flags) >> 11) & 0xfu)
#define RR_FIXED_LEN  10 /* type, class, ttl, rdlength */

static uint8_t lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + ('a' - 'A')) : c;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/*
 * Reads the name at *off, expanding compression pointers, into out (the wire form, at most
 * DNS_MAX_NAME bytes). *off moves past the name as it is written there (its labels up to
 * the root label or the first pointer). A pointer must point strictly before the start
 * of the labels that led to it, so every jump goes further back than the one before: no
 * loop is possible, and the expanded name is bounded by DNS_MAX_NAME anyway. Pointers
 * into the header are refused.
 */
static int read_name(const uint8_t *msg, size_t len, size_t *off, uint8_t out[DNS_MAX_NAME],
                     size_t *out_len, pv_err *e)
{
    size_t pos = *off;
    size_t limit = *off; /* the next pointer must point before this */
    size_t resume = 0;   /* where the caller continues: after the first pointer */
    size_t n = 0;
    for (;;) {
        if (pos >= len) {
            return pv_err_set(e, PV_ERR_TRUNCATED, "name at offset %zu runs past the message",
                              *off);
        }
        uint8_t c = msg[pos];
        if ((c & 0xc0) == 0xc0) {
            if (pos + 1 >= len) {
                return pv_err_set(e, PV_ERR_TRUNCATED, "compression pointer cut short");
            }
            size_t target = ((size_t)(c & 0x3f) << 8) | msg[pos + 1];
            if (target >= limit || target < DNS_HEADER_LEN) {
                return pv_err_set(e, PV_ERR_FORMAT,
                                  "compression pointer at offset %zu to %zu does not point back",
                                  pos, target);
            }
            if (resume == 0) {
                resume = pos + 2;
            }
            limit = target;
            pos = target;
            continue;
        }
        if ((c & 0xc0) != 0) {
            return pv_err_set(e, PV_ERR_FORMAT, "unknown label type 0x%02x", c & 0xc0);
        }
        if (n + 1 + c > DNS_MAX_NAME) {
            return pv_err_set(e, PV_ERR_FORMAT, "name longer than %d bytes", DNS_MAX_NAME);
        }
        if (c >= len - pos) {
            return pv_err_set(e, PV_ERR_TRUNCATED, "label at offset %zu runs past the message",
                              pos);
        }
        memcpy(out + n, msg + pos, (size_t)c + 1);
        n += (size_t)c + 1;
        pos += (size_t)c + 1;
        if (c == 0) {
            break;
        }
    }
    *off = resume != 0 ? resume : pos;
    *out_len = n;
    return PV_OK;
}

/* Names are compared as wire bytes with ASCII letters folded: the length bytes (< 64)
 * are never letters, so the labels must line up too. */
static bool names_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    if (alen != blen) {
        return false;
    }
    for (size_t i = 0; i < alen; i++) {
        if (lower(a[i]) != lower(b[i])) {
            return false;
        }
    }
    return true;
}

static int read_question(const uint8_t *p, size_t len, size_t *off, dns_question *q, pv_err *e)
{
    int r = read_name(p, len, off, q->name, &q->name_len, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "question");
    }
    if (len - *off < 4) {
        return pv_err_set(e, PV_ERR_TRUNCATED, "question: type and class cut short");
    }
    q->qtype = get16(p + *off);
    q->qclass = get16(p + *off + 2);
    *off += 4;
    return PV_OK;
}

bool dns_header(const uint8_t *p, size_t len, uint16_t *id, uint16_t *flags)
{
    if (len < DNS_HEADER_LEN) {
        return false;
    }
    *id = get16(p);
    *flags = get16(p + 2);
    return true;
}

int dns_question_parse(const uint8_t *p, size_t len, dns_question *out, pv_err *e)
{
    memset(out, 0, sizeof(*out));
    if (len < DNS_HEADER_LEN) {
        return pv_err_set(e, PV_ERR_TRUNCATED, "message shorter than a DNS header");
    }
    size_t off = DNS_HEADER_LEN;
    dns_question q;
    int r = read_question(p, len, &off, &q, e);
    if (r == PV_OK) {
        *out = q;
    }
    return r;
}

/* The OPT pseudo-record of a query: root owner, type OPT, its class the UDP payload size,
 * then the extended rcode, version and flags, and options we do not look into. */
static int read_opt(const uint8_t *p, size_t len, size_t *off, dns_query *q, pv_err *e)
{
    uint8_t name[DNS_MAX_NAME];
    size_t name_len;
    int r = read_name(p, len, off, name, &name_len, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "additional record");
    }
    if (len - *off < RR_FIXED_LEN) {
        return pv_err_set(e, PV_ERR_TRUNCATED, "additional record cut short");
    }
    uint16_t type = get16(p + *off);
    uint16_t size = get16(p + *off + 2);
    uint16_t rdlen = get16(p + *off + 8);
    *off += RR_FIXED_LEN;
    if (type != DNS_TYPE_OPT || name_len != 1) {
        return pv_err_set(e, PV_ERR_FORMAT, "the additional record is not an OPT for the root");
    }
    if (rdlen > len - *off) {
        return pv_err_set(e, PV_ERR_TRUNCATED, "OPT data runs past the message");
    }
    *off += rdlen;
    q->edns = true;
    q->edns_size = size < DNS_MAX_UDP ? DNS_MAX_UDP : size;
    return PV_OK;
}

int dns_query_parse(const uint8_t *p, size_t len, dns_query *out, pv_err *e)
{
    memset(out, 0, sizeof(*out));
    if (len < DNS_HEADER_LEN) {
        return pv_err_set(e, PV_ERR_TRUNCATED, "message shorter than a DNS header");
    }
    out->id = get16(p);
    out->flags = get16(p + 2);
    uint16_t qd = get16(p + 4), an = get16(p + 6), ns = get16(p + 8), ar = get16(p + 10);
    if ((out->flags & DNS_FLAG_QR) != 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "a response, not a query");
    }
    if (OPCODE(out->flags) != 0) {
        return pv_err_set(e, PV_ERR_UNSUPPORTED, "opcode %u is not QUERY", OPCODE(out->flags));
    }
    if (qd != 1 || an != 0 || ns != 0 || ar > 1) {
        return pv_err_set(e, PV_ERR_FORMAT,
                          "a query has one question and at most an OPT record (%u/%u/%u/%u)", qd,
                          an, ns, ar);
    }
    size_t off = DNS_HEADER_LEN;
    int r = read_question(p, len, &off, &out->q, e);
    if (r != PV_OK) {
        return r;
    }
    if (ar == 1 && (r = read_opt(p, len, &off, out, e)) != PV_OK) {
        return r;
    }
    if (off != len) {
        return pv_err_set(e, PV_ERR_FORMAT, "%zu bytes after the query", len - off);
    }
    return PV_OK;
}

/* Appends the question and, when edns_size is not 0, an OPT record; returns the new
 * length or 0 when it does not fit. */
static size_t put_question(const dns_question *q, uint16_t edns_size, uint8_t *out, size_t n,
                           size_t cap)
{
    size_t need = q->name_len + 4 + (edns_size != 0 ? 11 : 0);
    if (q->name_len == 0 || q->name_len > DNS_MAX_NAME || need > cap - n) {
        return 0;
    }
    memcpy(out + n, q->name, q->name_len);
    n += q->name_len;
    put16(out + n, q->qtype);
    put16(out + n + 2, q->qclass);
    n += 4;
    if (edns_size != 0) {
        static const uint8_t opt_head[] = {0, 0, DNS_TYPE_OPT};
        memcpy(out + n, opt_head, sizeof(opt_head));
        put16(out + n + 3, edns_size);
        memset(out + n + 5, 0, 6); /* extended rcode, version 0, no DO, no options */
        n += 11;
    }
    return n;
}

static void put_header(uint8_t *out, uint16_t id, uint16_t flags, uint16_t qd, uint16_t ar)
{
    put16(out, id);
    put16(out + 2, flags);
    put16(out + 4, qd);
    put16(out + 6, 0);
    put16(out + 8, 0);
    put16(out + 10, ar);
}

size_t dns_query_build(const dns_query *q, uint16_t id, uint16_t edns_size, uint8_t *out,
                       size_t cap)
{
    if (cap < DNS_HEADER_LEN) {
        return 0;
    }
    /* Only RD and CD go upstream: the app's other bits (and its EDNS options, cookies or
     * client subnet) are not ours to pass on. */
    uint16_t flags = q->flags & (DNS_FLAG_RD | DNS_FLAG_CD);
    put_header(out, id, flags, 1, edns_size != 0 ? 1 : 0);
    return put_question(&q->q, edns_size, out, DNS_HEADER_LEN, cap);
}

size_t dns_reply_build(const dns_query *q, bool with_question, uint8_t rcode, uint8_t *out,
                       size_t cap)
{
    if (cap < DNS_HEADER_LEN) {
        return 0;
    }
    uint16_t flags = (uint16_t)(DNS_FLAG_QR | (q->flags & (0x7800 | DNS_FLAG_RD)) | DNS_FLAG_RA |
                                (rcode & 0xfu));
    bool edns = with_question && q->edns;
    put_header(out, q->id, flags, with_question ? 1 : 0, edns ? 1 : 0);
    if (!with_question) {
        return DNS_HEADER_LEN;
    }
    return put_question(&q->q, edns ? DNS_MAX_MSG : 0, out, DNS_HEADER_LEN, cap);
}

/* One answer record, located: its owner name is read again when needed. */
typedef struct rr_ref {
    size_t name_off;
    uint16_t type;
    uint16_t rclass;
    uint32_t ttl;
    size_t rdata_off;
    uint16_t rdlen;
} rr_ref;

typedef struct rr_list {
    rr_ref rr[DNS_MAX_RRS];
    size_t n;
} rr_list;

/* Walks the answer section (every record checked for bounds), keeping the first
 * DNS_MAX_RRS. */
static int read_answers(const uint8_t *p, size_t len, size_t off, uint16_t an, rr_list *l,
                        pv_err *e)
{
    uint8_t name[DNS_MAX_NAME];
    size_t name_len;
    for (uint16_t i = 0; i < an; i++) {
        size_t name_off = off;
        int r = read_name(p, len, &off, name, &name_len, e);
        if (r != PV_OK) {
            return pv_err_wrap(e, r, "answer %u", i);
        }
        if (len - off < RR_FIXED_LEN) {
            return pv_err_set(e, PV_ERR_TRUNCATED, "answer %u cut short", i);
        }
        rr_ref rr = {
            .name_off = name_off,
            .type = get16(p + off),
            .rclass = get16(p + off + 2),
            .ttl = get32(p + off + 4),
            .rdlen = get16(p + off + 8),
        };
        off += RR_FIXED_LEN;
        if (rr.rdlen > len - off) {
            return pv_err_set(e, PV_ERR_TRUNCATED, "answer %u: data runs past the message", i);
        }
        rr.rdata_off = off;
        off += rr.rdlen;
        if (rr.ttl > 0x7fffffffu) {
            rr.ttl = 0; /* RFC 2181 §8 */
        }
        if (l->n < DNS_MAX_RRS) {
            l->rr[l->n++] = rr;
        }
    }
    return PV_OK;
}

static int add_addr(dns_answer *out, const uint8_t *p, const rr_ref *rr, uint32_t ttl)
{
    int family = rr->type == DNS_TYPE_A ? AF_INET : AF_INET6;
    size_t alen = family == AF_INET ? 4 : 16;
    if (rr->rdlen != alen) {
        return PV_ERR_FORMAT;
    }
    if (out->n_addrs < DNS_MAX_ADDRS) {
        dns_addr *a = &out->addrs[out->n_addrs++];
        a->family = family;
        memcpy(a->addr, p + rr->rdata_off, alen);
        a->ttl = ttl < rr->ttl ? ttl : rr->ttl;
    }
    return PV_OK;
}

/* Follows the chain from the question name: at each step the records owned by the
 * current name give either the addresses (done) or one CNAME to the next name. */
static int follow_chain(const uint8_t *p, size_t len, const dns_question *q, const rr_list *l,
                        dns_answer *out, pv_err *e)
{
    uint16_t want = q->qtype;
    uint8_t cur[DNS_MAX_NAME], owner[DNS_MAX_NAME], next[DNS_MAX_NAME];
    size_t cur_len = q->name_len, owner_len, next_len = 0;
    memcpy(cur, q->name, q->name_len);
    uint32_t ttl = UINT32_MAX;
    for (int hop = 0; hop <= DNS_MAX_CNAMES; hop++) {
        bool have_next = false;
        uint32_t next_ttl = 0;
        for (size_t i = 0; i < l->n; i++) {
            const rr_ref *rr = &l->rr[i];
            if (rr->rclass != DNS_CLASS_IN) {
                continue;
            }
            size_t off = rr->name_off;
            int r = read_name(p, len, &off, owner, &owner_len, e);
            if (r != PV_OK) {
                return r;
            }
            if (!names_equal(owner, owner_len, cur, cur_len)) {
                continue;
            }
            if (rr->type == want && (want == DNS_TYPE_A || want == DNS_TYPE_AAAA)) {
                if (add_addr(out, p, rr, ttl) != PV_OK) {
                    return pv_err_set(e, PV_ERR_FORMAT, "answer %zu: address of length %u", i,
                                      rr->rdlen);
                }
            } else if (rr->type == DNS_TYPE_CNAME && !have_next) {
                /* The target may be compressed, but its own bytes stay in the record. */
                off = rr->rdata_off;
                r = read_name(p, rr->rdata_off + rr->rdlen, &off, next, &next_len, e);
                if (r != PV_OK || off != rr->rdata_off + rr->rdlen) {
                    return pv_err_set(e, PV_ERR_FORMAT, "answer %zu: malformed CNAME", i);
                }
                have_next = true;
                next_ttl = rr->ttl;
            }
        }
        if (out->n_addrs > 0 || !have_next) {
            break;
        }
        ttl = ttl < next_ttl ? ttl : next_ttl;
        memcpy(cur, next, next_len);
        cur_len = next_len;
    }
    return PV_OK;
}

int dns_response_parse(const uint8_t *p, size_t len, uint16_t id, const dns_question *q,
                       dns_answer *out, pv_err *e)
{
    int r = PV_ERR_INTERNAL;
    rr_list *l = NULL;
    memset(out, 0, sizeof(*out));
    if (len < DNS_HEADER_LEN) {
        return pv_err_set(e, PV_ERR_TRUNCATED, "message shorter than a DNS header");
    }
    uint16_t flags = get16(p + 2), qd = get16(p + 4), an = get16(p + 6);
    if (get16(p) != id) {
        return pv_err_set(e, PV_ERR_FORMAT, "response ID %u, expected %u", get16(p), id);
    }
    if ((flags & DNS_FLAG_QR) == 0 || OPCODE(flags) != 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "not a response to a query");
    }
    if (qd != 1) {
        return pv_err_set(e, PV_ERR_FORMAT, "response with %u questions", qd);
    }
    size_t off = DNS_HEADER_LEN;
    dns_question got;
    if ((r = read_question(p, len, &off, &got, e)) != PV_OK) {
        return r;
    }
    if (got.qtype != q->qtype || got.qclass != q->qclass ||
        !names_equal(got.name, got.name_len, q->name, q->name_len)) {
        return pv_err_set(e, PV_ERR_FORMAT, "the response is for another question");
    }
    /* rr_list is some 8 KiB: kept off the stub's stack. */
    if ((l = calloc(1, sizeof(*l))) == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    dns_answer a;
    memset(&a, 0, sizeof(a));
    a.rcode = (uint8_t)(flags & 0xfu);
    a.truncated = (flags & DNS_FLAG_TC) != 0;
    if ((r = read_answers(p, len, off, an, l, e)) != PV_OK) {
        goto out;
    }
    if (a.rcode == DNS_RCODE_NOERROR && (r = follow_chain(p, len, q, l, &a, e)) != PV_OK) {
        goto out;
    }
    *out = a;
    r = PV_OK;
out:
    free(l);
    return r;
}

size_t dns_response_strip_opt(uint8_t *p, size_t len)
{
    uint8_t name[DNS_MAX_NAME];
    size_t name_len;
    if (len < DNS_HEADER_LEN) {
        return len;
    }
    uint16_t qd = get16(p + 4), ar = get16(p + 10);
    uint32_t rrs = (uint32_t)get16(p + 6) + get16(p + 8) + ar;
    size_t off = DNS_HEADER_LEN, last = 0;
    uint16_t last_type = 0;
    for (uint16_t i = 0; i < qd; i++) {
        dns_question q;
        if (read_question(p, len, &off, &q, NULL) != PV_OK) {
            return len;
        }
    }
    for (uint32_t i = 0; i < rrs; i++) {
        last = off;
        if (read_name(p, len, &off, name, &name_len, NULL) != PV_OK || len - off < RR_FIXED_LEN) {
            return len;
        }
        last_type = get16(p + off);
        size_t rdlen = get16(p + off + 8);
        off += RR_FIXED_LEN;
        if (rdlen > len - off) {
            return len;
        }
        off += rdlen;
    }
    if (ar == 0 || off != len || last_type != DNS_TYPE_OPT) {
        return len;
    }
    put16(p + 10, (uint16_t)(ar - 1));
    return last;
}

bool dns_response_cap_ttl(uint8_t *p, size_t len, uint32_t max)
{
    uint8_t name[DNS_MAX_NAME];
    size_t name_len, ttl_at[DNS_MAX_RRS];
    size_t n = 0;
    if (len < DNS_HEADER_LEN) {
        return false;
    }
    uint16_t qd = get16(p + 4);
    uint32_t rrs = (uint32_t)get16(p + 6) + get16(p + 8) + get16(p + 10);
    size_t off = DNS_HEADER_LEN;
    if (rrs > DNS_MAX_RRS) {
        return false;
    }
    for (uint16_t i = 0; i < qd; i++) {
        dns_question q;
        if (read_question(p, len, &off, &q, NULL) != PV_OK) {
            return false;
        }
    }
    /* Walk it all first: a message that does not parse is left as it is. */
    for (uint32_t i = 0; i < rrs; i++) {
        if (read_name(p, len, &off, name, &name_len, NULL) != PV_OK || len - off < RR_FIXED_LEN) {
            return false;
        }
        size_t rdlen = get16(p + off + 8);
        if (get16(p + off) != DNS_TYPE_OPT) {
            ttl_at[n++] = off + 4;
        }
        off += RR_FIXED_LEN;
        if (rdlen > len - off) {
            return false;
        }
        off += rdlen;
    }
    if (off != len) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t *t = p + ttl_at[i];
        uint32_t ttl = (uint32_t)t[0] << 24 | (uint32_t)t[1] << 16 | (uint32_t)t[2] << 8 | t[3];
        if (ttl > max) {
            t[0] = (uint8_t)(max >> 24);
            t[1] = (uint8_t)(max >> 16);
            t[2] = (uint8_t)(max >> 8);
            t[3] = (uint8_t)max;
        }
    }
    return true;
}

bool dns_name_matches(const uint8_t *name, size_t name_len, const char *pattern)
{
    bool wildcard = strncmp(pattern, "*.", 2) == 0;
    size_t pos = 0;
    if (wildcard) {
        /* one whole leading label, whatever it is (but not the root) */
        if (name_len == 0 || name[0] == 0 || (size_t)name[0] + 1 >= name_len) {
            return false;
        }
        pos = (size_t)name[0] + 1;
        pattern += 2;
    }
    const char *pp = pattern;
    for (;;) {
        if (pos >= name_len) {
            return false;
        }
        size_t llen = name[pos];
        if (llen == 0) {
            return *pp == '\0' && pos + 1 == name_len;
        }
        if (llen > name_len - pos - 1) {
            return false;
        }
        const char *dot = strchr(pp, '.');
        size_t plen = dot != NULL ? (size_t)(dot - pp) : strlen(pp);
        if (plen != llen) {
            return false;
        }
        for (size_t i = 0; i < llen; i++) {
            if (lower(name[pos + 1 + i]) != lower((uint8_t)pp[i])) {
                return false;
            }
        }
        pos += llen + 1;
        pp += plen;
        if (*pp == '.') {
            pp++;
            if (*pp == '\0') {
                return false; /* "host." is not a manifest pattern */
            }
        }
    }
}

bool dns_name_text(const uint8_t *name, size_t name_len, char *out, size_t cap)
{
    static const char digits[] = "0123456789";
    size_t n = 0, pos = 0;
    if (cap == 0) {
        return false;
    }
    out[0] = '\0';
    while (pos < name_len && name[pos] != 0) {
        size_t llen = name[pos];
        if (llen > name_len - pos - 1) {
            return false;
        }
        if (n != 0) {
            if (n + 1 >= cap) {
                return false;
            }
            out[n++] = '.';
        }
        for (size_t i = 0; i < llen; i++) {
            uint8_t c = name[pos + 1 + i];
            bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '-' || c == '_';
            if (n + (plain ? 1 : 4) >= cap) {
                out[n] = '\0';
                return false;
            }
            if (plain) {
                out[n++] = (char)c;
            } else {
                out[n++] = '\\';
                out[n++] = digits[c / 100];
                out[n++] = digits[(c / 10) % 10];
                out[n++] = digits[c % 10];
            }
        }
        out[n] = '\0';
        pos += llen + 1;
    }
    if (n == 0) {
        if (cap < 2) {
            return false;
        }
        out[n++] = '.';
    }
    out[n] = '\0';
    return true;
}
