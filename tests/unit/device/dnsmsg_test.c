/* SPDX-License-Identifier: Apache-2.0 */
/* The DNS message reader and writer of the stub, on hand-built packets. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"

#include "dnsmsg.h"

/* A packet under construction. */
typedef struct pkt {
    uint8_t b[2 * DNS_MAX_MSG];
    size_t n;
} pkt;

static void u8(pkt *p, unsigned v)
{
    p->b[p->n++] = (uint8_t)v;
}

static void u16(pkt *p, unsigned v)
{
    u8(p, v >> 8);
    u8(p, v & 0xff);
}

static void u32(pkt *p, uint32_t v)
{
    u16(p, v >> 16);
    u16(p, v & 0xffff);
}

/* "a.b.c" as labels and the root. */
static void name(pkt *p, const char *s)
{
    while (*s != '\0') {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        u8(p, (unsigned)n);
        memcpy(p->b + p->n, s, n);
        p->n += n;
        s += n;
        if (*s == '.') {
            s++;
        }
    }
    u8(p, 0);
}

/* "a.b" then a pointer instead of the root. */
static void name_ptr(pkt *p, const char *prefix, unsigned off)
{
    name(p, prefix);
    p->n--; /* drop the root */
    u16(p, 0xc000 | off);
}

static void header(pkt *p, unsigned id, unsigned flags, unsigned qd, unsigned an, unsigned ns,
                   unsigned ar)
{
    p->n = 0;
    u16(p, id);
    u16(p, flags);
    u16(p, qd);
    u16(p, an);
    u16(p, ns);
    u16(p, ar);
}

static void query(pkt *p, unsigned id, const char *qname, unsigned qtype)
{
    header(p, id, DNS_FLAG_RD, 1, 0, 0, 0);
    name(p, qname);
    u16(p, qtype);
    u16(p, DNS_CLASS_IN);
}

static void opt(pkt *p, unsigned size)
{
    u8(p, 0);
    u16(p, DNS_TYPE_OPT);
    u16(p, size);
    u32(p, 0);
    u16(p, 0);
}

/* A record header at the current place: owner already written. */
static void rr(pkt *p, unsigned type, uint32_t ttl, unsigned rdlen)
{
    u16(p, type);
    u16(p, DNS_CLASS_IN);
    u32(p, ttl);
    u16(p, rdlen);
}

static void a_rdata(pkt *p, const char *ip)
{
    struct in_addr a;
    assert_int_equal(inet_pton(AF_INET, ip, &a), 1);
    memcpy(p->b + p->n, &a, 4);
    p->n += 4;
}

static dns_question question(const char *qname, unsigned qtype)
{
    pkt p;
    query(&p, 1, qname, qtype);
    dns_question q;
    assert_int_equal(dns_question_parse(p.b, p.n, &q, NULL), PV_OK);
    return q;
}

static void test_query_parse(void **state)
{
    (void)state;
    pkt p;
    dns_query q;
    pv_err e;
    query(&p, 0x1234, "Allowed.Test", DNS_TYPE_A);
    assert_int_equal(dns_query_parse(p.b, p.n, &q, &e), PV_OK);
    assert_int_equal(q.id, 0x1234);
    assert_int_equal(q.q.qtype, DNS_TYPE_A);
    assert_int_equal(q.q.qclass, DNS_CLASS_IN);
    assert_int_equal(q.q.name_len, 14);
    assert_memory_equal(q.q.name,
                        "\x07"
                        "Allowed\x04"
                        "Test",
                        14);
    assert_false(q.edns);
    assert_true(dns_name_matches(q.q.name, q.q.name_len, "allowed.test"));

    /* with EDNS: the size, and at least 512 */
    query(&p, 1, "a.test", DNS_TYPE_AAAA);
    p.b[11] = 1;
    opt(&p, 1232);
    assert_int_equal(dns_query_parse(p.b, p.n, &q, &e), PV_OK);
    assert_true(q.edns);
    assert_int_equal(q.edns_size, 1232);
    p.n -= 11;
    opt(&p, 100);
    assert_int_equal(dns_query_parse(p.b, p.n, &q, &e), PV_OK);
    assert_int_equal(q.edns_size, 512);
}

static void test_query_refused(void **state)
{
    (void)state;
    pkt p = {.n = 0};
    dns_query q;
    pv_err e;
    assert_int_equal(dns_query_parse(p.b, 5, &q, &e), PV_ERR_TRUNCATED);

    query(&p, 7, "a.test", DNS_TYPE_A);
    p.b[2] |= 0x80; /* QR: an answer */
    assert_int_equal(dns_query_parse(p.b, p.n, &q, &e), PV_ERR_FORMAT);
    assert_int_equal(q.id, 7);

    query(&p, 7, "a.test", DNS_TYPE_A);
    p.b[2] |= 2 << 3; /* opcode STATUS */
    assert_int_equal(dns_query_parse(p.b, p.n, &q, &e), PV_ERR_UNSUPPORTED);

    query(&p, 7, "a.test", DNS_TYPE_A);
    p.b[5] = 2; /* two questions */
    assert_int_equal(dns_query_parse(p.b, p.n, &q, &e), PV_ERR_FORMAT);

    query(&p, 7, "a.test", DNS_TYPE_A);
    p.b[7] = 1; /* an answer in a query */
    assert_int_equal(dns_query_parse(p.b, p.n, &q, &e), PV_ERR_FORMAT);

    query(&p, 7, "a.test", DNS_TYPE_A);
    u8(&p, 0); /* trailing byte */
    assert_int_equal(dns_query_parse(p.b, p.n, &q, &e), PV_ERR_FORMAT);

    query(&p, 7, "a.test", DNS_TYPE_A);
    assert_int_equal(dns_query_parse(p.b, p.n - 3, &q, &e), PV_ERR_TRUNCATED);
    assert_int_equal(dns_query_parse(p.b, 15, &q, &e), PV_ERR_TRUNCATED);

    /* additional record that is not OPT */
    query(&p, 7, "a.test", DNS_TYPE_A);
    p.b[11] = 1;
    name(&p, "x");
    rr(&p, DNS_TYPE_A, 0, 0);
    assert_int_equal(dns_query_parse(p.b, p.n, &q, &e), PV_ERR_FORMAT);

    /* a compression pointer to itself, and one into the header */
    header(&p, 7, 0, 1, 0, 0, 0);
    u16(&p, 0xc000 | 12);
    u16(&p, 1);
    u16(&p, 1);
    assert_int_equal(dns_query_parse(p.b, p.n, &q, &e), PV_ERR_FORMAT);
    p.b[13] = 2;
    assert_int_equal(dns_query_parse(p.b, p.n, &q, &e), PV_ERR_FORMAT);

    /* extended label type */
    header(&p, 7, 0, 1, 0, 0, 0);
    u8(&p, 0x41);
    u16(&p, 1);
    u16(&p, 1);
    assert_int_equal(dns_query_parse(p.b, p.n, &q, &e), PV_ERR_FORMAT);

    /* 256 bytes of name: five labels of 50 and one of 1 plus the root */
    header(&p, 7, 0, 1, 0, 0, 0);
    for (int i = 0; i < 5; i++) {
        u8(&p, 50);
        memset(p.b + p.n, 'a', 50);
        p.n += 50;
    }
    u8(&p, 1);
    u8(&p, 'b');
    u8(&p, 0);
    u16(&p, 1);
    u16(&p, 1);
    assert_int_equal(dns_query_parse(p.b, p.n, &q, &e), PV_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "longer"));
}

static void test_build(void **state)
{
    (void)state;
    pkt p;
    dns_query q, back;
    uint8_t out[DNS_MAX_MSG];
    query(&p, 0x4242, "a.test", DNS_TYPE_A);
    p.b[2] |= 0x04; /* AA from a client: not passed on */
    assert_int_equal(dns_query_parse(p.b, p.n, &q, NULL), PV_OK);

    size_t n = dns_query_build(&q, 0x9999, 0, out, sizeof(out));
    assert_int_equal(n, p.n);
    assert_int_equal(dns_query_parse(out, n, &back, NULL), PV_OK);
    assert_int_equal(back.id, 0x9999);
    assert_int_equal(back.flags, DNS_FLAG_RD);
    assert_false(back.edns);
    n = dns_query_build(&q, 0x9999, 1400, out, sizeof(out));
    assert_int_equal(dns_query_parse(out, n, &back, NULL), PV_OK);
    assert_true(back.edns);
    assert_int_equal(back.edns_size, 1400);
    assert_int_equal(dns_query_build(&q, 1, 0, out, 20), 0);

    n = dns_reply_build(&q, true, DNS_RCODE_REFUSED, out, sizeof(out));
    assert_int_equal(n, p.n);
    assert_int_equal((out[0] << 8) | out[1], 0x4242);
    uint16_t flags = (uint16_t)((out[2] << 8) | out[3]);
    assert_true(flags & DNS_FLAG_QR);
    assert_true(flags & DNS_FLAG_RD);
    assert_true(flags & DNS_FLAG_RA);
    assert_false(flags & DNS_FLAG_AA);
    assert_int_equal(flags & 0xf, DNS_RCODE_REFUSED);
    assert_int_equal(out[5], 1);
    dns_question rq;
    assert_int_equal(dns_question_parse(out, n, &rq, NULL), PV_OK);
    assert_int_equal(rq.name_len, q.q.name_len);

    n = dns_reply_build(&q, false, DNS_RCODE_FORMERR, out, sizeof(out));
    assert_int_equal(n, DNS_HEADER_LEN);
    assert_int_equal(out[5], 0);
    assert_int_equal(out[3] & 0xf, DNS_RCODE_FORMERR);

    q.edns = true;
    n = dns_reply_build(&q, true, DNS_RCODE_SERVFAIL, out, sizeof(out));
    assert_int_equal(n, p.n + 11);
    assert_int_equal(out[11], 1);
}

/* allowed.test A: 127.0.0.2 with a pointer to the question. */
static void simple_response(pkt *p, unsigned id, uint32_t ttl)
{
    header(p, id, DNS_FLAG_QR | DNS_FLAG_RD | DNS_FLAG_RA, 1, 1, 0, 0);
    name(p, "allowed.test");
    u16(p, DNS_TYPE_A);
    u16(p, DNS_CLASS_IN);
    u16(p, 0xc000 | 12);
    rr(p, DNS_TYPE_A, ttl, 4);
    a_rdata(p, "127.0.0.2");
}

static void test_response_simple(void **state)
{
    (void)state;
    pkt p;
    dns_answer a;
    pv_err e;
    dns_question q = question("allowed.test", DNS_TYPE_A);
    simple_response(&p, 77, 300);
    assert_int_equal(dns_response_parse(p.b, p.n, 77, &q, &a, &e), PV_OK);
    assert_int_equal(a.rcode, DNS_RCODE_NOERROR);
    assert_int_equal(a.n_addrs, 1);
    assert_int_equal(a.addrs[0].family, AF_INET);
    assert_memory_equal(a.addrs[0].addr, "\x7f\x00\x00\x02", 4);
    assert_int_equal(a.addrs[0].ttl, 300);

    /* the question in another case is the same question */
    dns_question upper = question("ALLOWED.test", DNS_TYPE_A);
    assert_int_equal(dns_response_parse(p.b, p.n, 77, &upper, &a, &e), PV_OK);
    assert_int_equal(a.n_addrs, 1);

    /* another ID, another question, a query: refused */
    assert_int_equal(dns_response_parse(p.b, p.n, 78, &q, &a, &e), PV_ERR_FORMAT);
    dns_question other = question("other.test", DNS_TYPE_A);
    assert_int_equal(dns_response_parse(p.b, p.n, 77, &other, &a, &e), PV_ERR_FORMAT);
    dns_question aaaa = question("allowed.test", DNS_TYPE_AAAA);
    assert_int_equal(dns_response_parse(p.b, p.n, 77, &aaaa, &a, &e), PV_ERR_FORMAT);
    p.b[2] &= 0x7f;
    assert_int_equal(dns_response_parse(p.b, p.n, 77, &q, &a, &e), PV_ERR_FORMAT);

    /* cut anywhere: never read past the end */
    simple_response(&p, 77, 300);
    for (size_t n = 0; n < p.n; n++) {
        assert_int_not_equal(dns_response_parse(p.b, n, 77, &q, &a, NULL), PV_OK);
    }

    /* a TTL with the top bit set counts as 0; an address of the wrong length is refused */
    simple_response(&p, 77, 0x80000000u);
    assert_int_equal(dns_response_parse(p.b, p.n, 77, &q, &a, &e), PV_OK);
    assert_int_equal(a.addrs[0].ttl, 0);
    simple_response(&p, 77, 300);
    p.b[p.n - 5] = 5;
    u8(&p, 0);
    assert_int_equal(dns_response_parse(p.b, p.n, 77, &q, &a, &e), PV_ERR_FORMAT);

    /* NXDOMAIN: parsed, no addresses */
    simple_response(&p, 77, 300);
    p.b[3] = (uint8_t)((p.b[3] & 0xf0) | DNS_RCODE_NXDOMAIN);
    assert_int_equal(dns_response_parse(p.b, p.n, 77, &q, &a, &e), PV_OK);
    assert_int_equal(a.rcode, DNS_RCODE_NXDOMAIN);
    assert_int_equal(a.n_addrs, 0);
}

static void test_response_cname(void **state)
{
    (void)state;
    pkt p;
    dns_answer a;
    pv_err e;
    dns_question q = question("www.example.com", DNS_TYPE_A);
    header(&p, 5, DNS_FLAG_QR, 1, 4, 0, 0);
    name(&p, "www.example.com");
    u16(&p, DNS_TYPE_A);
    u16(&p, DNS_CLASS_IN);
    /* an address for a name nobody asked about comes first: it must be ignored */
    name(&p, "evil.test");
    rr(&p, DNS_TYPE_A, 999, 4);
    a_rdata(&p, "10.6.6.6");
    /* www.example.com CNAME edge.cdn.net, ttl 60 */
    u16(&p, 0xc000 | 12);
    size_t rdlen_at = p.n + 8;
    rr(&p, DNS_TYPE_CNAME, 60, 0);
    size_t target_off = p.n;
    name(&p, "edge.cdn.net");
    p.b[rdlen_at + 1] = (uint8_t)(p.n - target_off);
    /* edge.cdn.net A 192.0.2.1 and 192.0.2.2, ttl 600 and 30 */
    u16(&p, 0xc000 | (unsigned)target_off);
    rr(&p, DNS_TYPE_A, 600, 4);
    a_rdata(&p, "192.0.2.1");
    u16(&p, 0xc000 | (unsigned)target_off);
    rr(&p, DNS_TYPE_A, 30, 4);
    a_rdata(&p, "192.0.2.2");
    assert_int_equal(dns_response_parse(p.b, p.n, 5, &q, &a, &e), PV_OK);
    assert_int_equal(a.n_addrs, 2);
    assert_memory_equal(a.addrs[0].addr, "\xc0\x00\x02\x01", 4);
    assert_int_equal(a.addrs[0].ttl, 60); /* the CNAME's is smaller */
    assert_memory_equal(a.addrs[1].addr, "\xc0\x00\x02\x02", 4);
    assert_int_equal(a.addrs[1].ttl, 30);

    /* a CNAME whose target runs past its data is malformed */
    p.b[rdlen_at + 1] = 3;
    assert_int_not_equal(dns_response_parse(p.b, p.n, 5, &q, &a, &e), PV_OK);
}

static void test_response_cname_chain_bound(void **state)
{
    (void)state;
    pkt p;
    dns_answer a;
    /* n0 -> n1 -> ... -> n10, and n10 A: more hops than followed */
    dns_question q = question("n0.test", DNS_TYPE_A);
    header(&p, 9, DNS_FLAG_QR, 1, 11, 0, 0);
    name(&p, "n0.test");
    u16(&p, DNS_TYPE_A);
    u16(&p, DNS_CLASS_IN);
    char buf[16];
    for (int i = 0; i < 10; i++) {
        snprintf(buf, sizeof(buf), "n%d.test", i);
        name(&p, buf);
        snprintf(buf, sizeof(buf), "n%d.test", i + 1);
        rr(&p, DNS_TYPE_CNAME, 100, (unsigned)strlen(buf) + 2);
        name(&p, buf);
    }
    name(&p, "n10.test");
    rr(&p, DNS_TYPE_A, 100, 4);
    a_rdata(&p, "192.0.2.9");
    assert_int_equal(dns_response_parse(p.b, p.n, 9, &q, &a, NULL), PV_OK);
    assert_int_equal(a.n_addrs, 0);

    /* a CNAME loop (a -> b -> a) ends too */
    q = question("a.test", DNS_TYPE_A);
    header(&p, 9, DNS_FLAG_QR, 1, 2, 0, 0);
    name(&p, "a.test");
    u16(&p, DNS_TYPE_A);
    u16(&p, DNS_CLASS_IN);
    name(&p, "a.test");
    rr(&p, DNS_TYPE_CNAME, 100, 8);
    name(&p, "b.test");
    name(&p, "b.test");
    rr(&p, DNS_TYPE_CNAME, 100, 8);
    name(&p, "a.test");
    assert_int_equal(dns_response_parse(p.b, p.n, 9, &q, &a, NULL), PV_OK);
    assert_int_equal(a.n_addrs, 0);
}

static void test_response_compression_loops(void **state)
{
    (void)state;
    pkt p;
    dns_answer a;
    pv_err e;
    dns_question q = question("allowed.test", DNS_TYPE_A);
    /* an owner name that points to itself */
    header(&p, 1, DNS_FLAG_QR, 1, 1, 0, 0);
    name(&p, "allowed.test");
    u16(&p, DNS_TYPE_A);
    u16(&p, DNS_CLASS_IN);
    size_t at = p.n;
    u16(&p, 0xc000 | (unsigned)at);
    rr(&p, DNS_TYPE_A, 1, 4);
    a_rdata(&p, "1.2.3.4");
    assert_int_equal(dns_response_parse(p.b, p.n, 1, &q, &a, &e), PV_ERR_FORMAT);

    /* x -> y -> x: the first owner points forward to the second, which points back */
    header(&p, 1, DNS_FLAG_QR, 1, 2, 0, 0);
    name(&p, "allowed.test");
    u16(&p, DNS_TYPE_A);
    u16(&p, DNS_CLASS_IN);
    size_t first = p.n, second = first + 4 + 10 + 4;
    name_ptr(&p, "x", (unsigned)second);
    rr(&p, DNS_TYPE_A, 1, 4);
    a_rdata(&p, "1.2.3.4");
    assert_int_equal(p.n, second);
    name_ptr(&p, "y", (unsigned)first);
    rr(&p, DNS_TYPE_A, 1, 4);
    a_rdata(&p, "1.2.3.4");
    assert_int_equal(dns_response_parse(p.b, p.n, 1, &q, &a, &e), PV_ERR_FORMAT);

    /* a pointer inside a name that goes back to that same name's start: loop */
    header(&p, 1, DNS_FLAG_QR, 1, 1, 0, 0);
    name(&p, "allowed.test");
    u16(&p, DNS_TYPE_A);
    u16(&p, DNS_CLASS_IN);
    at = p.n;
    name_ptr(&p, "a.b", (unsigned)at);
    rr(&p, DNS_TYPE_A, 1, 4);
    a_rdata(&p, "1.2.3.4");
    assert_int_equal(dns_response_parse(p.b, p.n, 1, &q, &a, &e), PV_ERR_FORMAT);
}

static void test_aaaa(void **state)
{
    (void)state;
    pkt p;
    dns_answer a;
    dns_question q = question("v6.test", DNS_TYPE_AAAA);
    header(&p, 3, DNS_FLAG_QR, 1, 2, 0, 0);
    name(&p, "v6.test");
    u16(&p, DNS_TYPE_AAAA);
    u16(&p, DNS_CLASS_IN);
    u16(&p, 0xc000 | 12);
    rr(&p, DNS_TYPE_A, 100, 4); /* an A answer to an AAAA question: not taken */
    a_rdata(&p, "1.2.3.4");
    u16(&p, 0xc000 | 12);
    rr(&p, DNS_TYPE_AAAA, 100, 16);
    struct in6_addr x;
    assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &x), 1);
    memcpy(p.b + p.n, &x, 16);
    p.n += 16;
    assert_int_equal(dns_response_parse(p.b, p.n, 3, &q, &a, NULL), PV_OK);
    assert_int_equal(a.n_addrs, 1);
    assert_int_equal(a.addrs[0].family, AF_INET6);
    assert_memory_equal(a.addrs[0].addr, &x, 16);
}

static void test_many_answers(void **state)
{
    (void)state;
    pkt p;
    dns_answer a;
    dns_question q = question("big.test", DNS_TYPE_A);
    header(&p, 3, DNS_FLAG_QR, 1, 300, 0, 0);
    name(&p, "big.test");
    u16(&p, DNS_TYPE_A);
    u16(&p, DNS_CLASS_IN);
    for (unsigned i = 0; i < 300; i++) {
        u16(&p, 0xc000 | 12);
        rr(&p, DNS_TYPE_A, 100, 4);
        u32(&p, 0x0a000000u + i + 1);
    }
    assert_int_equal(dns_response_parse(p.b, p.n, 3, &q, &a, NULL), PV_OK);
    assert_int_equal(a.n_addrs, DNS_MAX_ADDRS);
    assert_memory_equal(a.addrs[DNS_MAX_ADDRS - 1].addr, "\x0a\x00\x00\xff", 4);
    /* the count says more records than there are */
    p.b[6] = 2;
    assert_int_equal(dns_response_parse(p.b, p.n, 3, &q, &a, NULL), PV_ERR_TRUNCATED);
}

static void test_strip_opt(void **state)
{
    (void)state;
    pkt p;
    dns_answer a;
    dns_question q = question("allowed.test", DNS_TYPE_A);
    simple_response(&p, 77, 300);
    size_t plain = p.n;
    p.b[11] = 1;
    opt(&p, 4096);
    assert_int_equal(dns_response_strip_opt(p.b, p.n), plain);
    assert_int_equal(p.b[11], 0);
    assert_int_equal(dns_response_parse(p.b, plain, 77, &q, &a, NULL), PV_OK);
    assert_int_equal(a.n_addrs, 1);
    /* nothing to strip: no OPT, an OPT not last, a count past the records, trailing bytes */
    assert_int_equal(dns_response_strip_opt(p.b, plain), plain);
    simple_response(&p, 77, 300);
    p.b[11] = 2;
    opt(&p, 4096);
    name(&p, "x");
    rr(&p, DNS_TYPE_A, 1, 4);
    a_rdata(&p, "1.2.3.4");
    assert_int_equal(dns_response_strip_opt(p.b, p.n), p.n);
    p.b[11] = 3;
    assert_int_equal(dns_response_strip_opt(p.b, p.n), p.n);
    simple_response(&p, 77, 300);
    p.b[11] = 1;
    opt(&p, 4096);
    u8(&p, 0);
    assert_int_equal(dns_response_strip_opt(p.b, p.n), p.n);
    assert_int_equal(dns_response_strip_opt(p.b, 3), 3);
}

static void test_name_matches(void **state)
{
    (void)state;
    pkt p;
    dns_query q;
#define M(qname, pattern, want)                                                                    \
    do {                                                                                           \
        query(&p, 1, qname, DNS_TYPE_A);                                                           \
        assert_int_equal(dns_query_parse(p.b, p.n, &q, NULL), PV_OK);                              \
        assert_int_equal(dns_name_matches(q.q.name, q.q.name_len, pattern), want);                 \
    } while (0)
    M("allowed.test", "allowed.test", true);
    M("ALLOWED.TEST", "allowed.test", true);
    M("allowed.test", "Allowed.Test", true);
    M("allowed.test.evil", "allowed.test", false);
    M("x.allowed.test", "allowed.test", false);
    M("allowed", "allowed.test", false);
    M("a.example.com", "*.example.com", true);
    M("A.Example.COM", "*.example.com", true);
    M("example.com", "*.example.com", false);
    M("a.b.example.com", "*.example.com", false);
    M("a.example.org", "*.example.com", false);
#undef M
    /* a label holding a dot is one label, never two */
    header(&p, 1, 0, 1, 0, 0, 0);
    u8(&p, 12);
    memcpy(p.b + p.n, "allowed.test", 12);
    p.n += 12;
    u8(&p, 0);
    u16(&p, 1);
    u16(&p, 1);
    assert_int_equal(dns_query_parse(p.b, p.n, &q, NULL), PV_OK);
    assert_false(dns_name_matches(q.q.name, q.q.name_len, "allowed.test"));
    char text[64];
    assert_true(dns_name_text(q.q.name, q.q.name_len, text, sizeof(text)));
    assert_string_equal(text, "allowed\\046test");
    assert_false(dns_name_text(q.q.name, q.q.name_len, text, 8));
    uint8_t root = 0;
    assert_true(dns_name_text(&root, 1, text, sizeof(text)));
    assert_string_equal(text, ".");
}

static void test_cap_ttl(void **state)
{
    (void)state;
    /* allowed.test A: one A record with TTL 3600, then an OPT whose TTL field is flags */
    static const uint8_t msg[] = {0x12, 0x34, 0x81, 0x80, 0,    1,    0,    1,    0, 0,   0,   1,
                                  7,    'a',  'l',  'l',  'o',  'w',  'e',  'd',  4, 't', 'e', 's',
                                  't',  0,    0,    1,    0,    1,    0xc0, 0x0c, 0, 1,   0,   1,
                                  0x00, 0x00, 0x0e, 0x10, 0,    4,    127,  0,    0, 2,   0,   0,
                                  41,   0x10, 0x00, 0x00, 0x00, 0x80, 0x00, 0,    0};
    uint8_t buf[sizeof(msg)];
    memcpy(buf, msg, sizeof(msg));
    assert_true(dns_response_cap_ttl(buf, sizeof(buf), 30));
    static const uint8_t ttl30[] = {0, 0, 0, 30};
    assert_memory_equal(buf + 36, ttl30, 4);    /* the A record's TTL, lowered */
    assert_memory_equal(buf + 51, msg + 51, 4); /* the OPT's flags, untouched */
    /* below the cap: unchanged */
    memcpy(buf, msg, sizeof(msg));
    assert_true(dns_response_cap_ttl(buf, sizeof(buf), 86400));
    assert_memory_equal(buf, msg, sizeof(msg));
    /* a message that does not walk to its end is left alone */
    memcpy(buf, msg, sizeof(msg));
    assert_false(dns_response_cap_ttl(buf, sizeof(buf) - 3, 30));
    assert_memory_equal(buf, msg, sizeof(msg));
    uint8_t longer[sizeof(msg) + 1];
    memcpy(longer, msg, sizeof(msg));
    longer[sizeof(msg)] = 0;
    assert_false(dns_response_cap_ttl(longer, sizeof(longer), 30));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_ttl),
        cmocka_unit_test(test_query_parse),
        cmocka_unit_test(test_query_refused),
        cmocka_unit_test(test_build),
        cmocka_unit_test(test_response_simple),
        cmocka_unit_test(test_response_cname),
        cmocka_unit_test(test_response_cname_chain_bound),
        cmocka_unit_test(test_response_compression_loops),
        cmocka_unit_test(test_aaaa),
        cmocka_unit_test(test_many_answers),
        cmocka_unit_test(test_strip_opt),
        cmocka_unit_test(test_name_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
