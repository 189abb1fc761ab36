/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A bounded DNS message reader and writer (RFC 1035, EDNS0 of RFC 6891): only what the
 * per-app DNS stub needs. Everything it reads comes from an app or from the network, so
 * every length is checked before it is used, a compressed name may only point backwards
 * (each pointer strictly before the previous one, so a loop is impossible) and is at most
 * DNS_MAX_NAME bytes once expanded, and counts are bounded by the bytes that remain.
 *
 *   - dns_query_parse: a query from an app: one question, no answers, at most an OPT;
 *   - dns_query_build: the query the stub sends upstream (the app's question, a new ID);
 *   - dns_reply_build: an answer without records (REFUSED, SERVFAIL, FORMERR, NOTIMP, or
 *     NOERROR with no data);
 *   - dns_response_parse: the upstream's answer to what was sent: same ID and question,
 *     then the A or AAAA records of the question name, following CNAMEs in the answer
 *     section, each with the smallest TTL along the chain.
 */
#ifndef PAVISE_DEVICE_DNSMSG_H
#define PAVISE_DEVICE_DNSMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/err.h"

#define DNS_HEADER_LEN 12
#define DNS_MAX_NAME   255  /* wire bytes of an expanded name, the root label included */
#define DNS_MAX_UDP    512  /* a UDP message without EDNS */
#define DNS_MAX_MSG    4096 /* the largest message the stub handles, EDNS or TCP */
#define DNS_MAX_ADDRS  255  /* addresses taken from one response: more than fit in DNS_MAX_MSG */
#define DNS_MAX_CNAMES 8    /* CNAME hops followed from the question name */
#define DNS_MAX_RRS    384  /* answer records looked at: more than fit in DNS_MAX_MSG */

#define DNS_TYPE_A     1
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_AAAA  28
#define DNS_TYPE_OPT   41
#define DNS_CLASS_IN   1

#define DNS_RCODE_NOERROR  0
#define DNS_RCODE_FORMERR  1
#define DNS_RCODE_SERVFAIL 2
#define DNS_RCODE_NXDOMAIN 3
#define DNS_RCODE_NOTIMP   4
#define DNS_RCODE_REFUSED  5

/* Header flag bits (the second 16-bit word). */
#define DNS_FLAG_QR 0x8000
#define DNS_FLAG_AA 0x0400
#define DNS_FLAG_TC 0x0200
#define DNS_FLAG_RD 0x0100
#define DNS_FLAG_RA 0x0080
#define DNS_FLAG_CD 0x0010

/* A question as it was on the wire: the name expanded (never compressed), in the case the
 * sender used. */
typedef struct dns_question {
    uint8_t name[DNS_MAX_NAME];
    size_t name_len;
    uint16_t qtype;
    uint16_t qclass;
} dns_question;

typedef struct dns_query {
    uint16_t id;
    uint16_t flags; /* as received; only RD and CD are carried upstream */
    dns_question q;
    bool edns;          /* the query had an OPT record */
    uint16_t edns_size; /* its UDP payload size, at least DNS_MAX_UDP; 0 without EDNS */
} dns_query;

typedef struct dns_addr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* 4 or 16 bytes used */
    uint32_t ttl;     /* the smallest TTL on the way from the question name */
} dns_addr;

typedef struct dns_answer {
    uint8_t rcode;
    bool truncated; /* TC was set: the addresses may be a part of the whole */
    size_t n_addrs;
    dns_addr addrs[DNS_MAX_ADDRS]; /* extra ones (only in messages over DNS_MAX_MSG) are
                                    * left out */
} dns_answer;

/* Reads the ID and flags of any message of at least DNS_HEADER_LEN bytes. false when it is
 * shorter. */
bool dns_header(const uint8_t *p, size_t len, uint16_t *id, uint16_t *flags);

/* Parses an app's query: QR clear, opcode QUERY, exactly one question, no answer or
 * authority records, at most one additional record which must be an OPT for
 * the root. *out is zeroed on entry; out->id and out->flags are set as soon as the header
 * is read, so a refusal can still be answered. PV_ERR_TRUNCATED (shorter than a header or
 * a record), PV_ERR_UNSUPPORTED (another opcode: answer NOTIMP), PV_ERR_FORMAT (anything
 * else malformed: answer FORMERR, or nothing when QR is set). */
int dns_query_parse(const uint8_t *p, size_t len, dns_query *out, pv_err *e);

/* Reads the first question of any message (header counts aside). For the fuzz harness and
 * for tests; PV_ERR_TRUNCATED, PV_ERR_FORMAT. */
int dns_question_parse(const uint8_t *p, size_t len, dns_question *out, pv_err *e);

/* Writes the query sent upstream: id, RD and CD from q, q's question, and an OPT record
 * advertising edns_size when edns_size is not 0. Returns its length, or 0 when it does not
 * fit in cap. */
size_t dns_query_build(const dns_query *q, uint16_t id, uint16_t edns_size, uint8_t *out,
                       size_t cap);

/* Writes an answer to q with no records and rcode: its ID and opcode, QR and RA set, RD
 * copied; with_question: its question, and an OPT record when it had one (a query that
 * could not be parsed is answered with the header only). Returns its length, or 0 when it
 * does not fit in cap. */
size_t dns_reply_build(const dns_query *q, bool with_question, uint8_t rcode, uint8_t *out,
                       size_t cap);

/* Parses the upstream's response to the query with this id and question (compared
 * without regard to ASCII case). Answer records are walked from the question name: CNAMEs (class
 * IN) are followed, at most DNS_MAX_CNAMES deep, and the A (for a qtype A question) or AAAA (for
 * AAAA) records of the name reached are returned with the smallest TTL met on the way
 * (a TTL with the top bit set counts as 0, RFC 2181 §8). A response with another rcode is
 * parsed too, and has no addresses. *out is zeroed on entry. PV_ERR_FORMAT (not a
 * response, another ID or question, malformed records), PV_ERR_TRUNCATED. */
int dns_response_parse(const uint8_t *p, size_t len, uint16_t id, const dns_question *q,
                       dns_answer *out, pv_err *e);

/* For a client that asked without EDNS, of a response to a query sent with it: removes the
 * OPT record when it is the last record of the message (where servers put it) and
 * decrements the additional count. Returns the new length; len when there is no such
 * record or the message cannot be walked. */
size_t dns_response_strip_opt(uint8_t *p, size_t len);
/* Lowers every resource record's TTL above max to max, in place (OPT records are left: their
 * TTL field holds flags). So an app that caches an answer never keeps an address longer
 * than its set entry lives. false when the message does not walk to its end (unchanged). */
bool dns_response_cap_ttl(uint8_t *p, size_t len, uint32_t max);

/* Whether a wire name matches a host name pattern of the manifest ("host.example.com" or
 * "*.example.com": the star is exactly one leading label), ASCII case ignored, label by
 * label, so a label holding a dot never matches two labels. */
bool dns_name_matches(const uint8_t *name, size_t name_len, const char *pattern);

/* Writes a wire name as text ("www.example.com", "." for the root) into out, bytes other
 * than letters, digits, '-' and '_' as \DDD. Returns false (out then holds a truncated
 * name) when it does not fit. */
bool dns_name_text(const uint8_t *name, size_t name_len, char *out, size_t cap);

#endif
