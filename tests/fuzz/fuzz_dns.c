/* SPDX-License-Identifier: Apache-2.0 */
/* The DNS stub's message reader: arbitrary bytes as a query from an app and as a response
 * from the upstream (to the question the bytes hold, and to a fixed one). Besides the
 * sanitizers, what is parsed must survive a round trip through the writer. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* The harnesses link the libraries under src/lib, src/rot, src/agent and src/server;
 * the parser lives with pavised, and is small and self-contained: compiled in here. */
#include "../../src/device/dnsmsg.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_answer(const dns_answer *a)
{
    if (a->n_addrs > DNS_MAX_ADDRS) {
        abort();
    }
    for (size_t i = 0; i < a->n_addrs; i++) {
        if ((a->addrs[i].family != AF_INET && a->addrs[i].family != AF_INET6) ||
            a->addrs[i].ttl > 0x7fffffffu) {
            abort();
        }
    }
}

static void query(const uint8_t *data, size_t size)
{
    dns_query q, back;
    uint8_t out[DNS_MAX_MSG];
    char text[DNS_MAX_NAME * 4 + 2];
    int r = dns_query_parse(data, size, &q, NULL);
    if (r != PV_OK) {
        if (size >= DNS_HEADER_LEN &&
            dns_reply_build(&q, false, DNS_RCODE_FORMERR, out, sizeof(out)) != DNS_HEADER_LEN) {
            abort();
        }
        return;
    }
    /* what the stub forwards parses back to the same question */
    size_t n = dns_query_build(&q, 0x5555, q.edns ? q.edns_size : 0, out, sizeof(out));
    if (n == 0 || dns_query_parse(out, n, &back, NULL) != PV_OK || back.id != 0x5555 ||
        back.q.name_len != q.q.name_len || memcmp(back.q.name, q.q.name, q.q.name_len) != 0 ||
        back.q.qtype != q.q.qtype || back.edns != q.edns) {
        abort();
    }
    n = dns_reply_build(&q, true, DNS_RCODE_REFUSED, out, sizeof(out));
    dns_question rq;
    if (n == 0 || dns_question_parse(out, n, &rq, NULL) != PV_OK || rq.name_len != q.q.name_len) {
        abort();
    }
    if (!dns_name_text(q.q.name, q.q.name_len, text, sizeof(text))) {
        abort(); /* the buffer is large enough for any name */
    }
    (void)dns_name_matches(q.q.name, q.q.name_len, "allowed.test");
    (void)dns_name_matches(q.q.name, q.q.name_len, "*.test");
}

static void response(const uint8_t *data, size_t size)
{
    dns_question q;
    dns_answer a;
    uint16_t id = 0, flags = 0;
    if (!dns_header(data, size, &id, &flags)) {
        return;
    }
    if (dns_question_parse(data, size, &q, NULL) == PV_OK) {
        if (dns_response_parse(data, size, id, &q, &a, NULL) == PV_OK) {
            check_answer(&a);
        }
        if (q.qtype != DNS_TYPE_AAAA) {
            q.qtype = DNS_TYPE_AAAA;
            if (dns_response_parse(data, size, id, &q, &a, NULL) == PV_OK) {
                abort(); /* another question: never accepted */
            }
        }
    }
    /* stripping an OPT takes bytes off the end and one from the additional count */
    uint8_t *copy = malloc(size);
    if (copy == NULL) {
        return;
    }
    memcpy(copy, data, size);
    size_t n = dns_response_strip_opt(copy, size);
    if (n != size) {
        unsigned before = (unsigned)((data[10] << 8) | data[11]);
        unsigned after = (unsigned)((copy[10] << 8) | copy[11]);
        if (n > size || n < DNS_HEADER_LEN || after + 1 != before ||
            memcmp(copy + 12, data + 12, n - 12) != 0) {
            abort();
        }
    }
    /* Capping TTLs keeps the length and changes nothing but TTL fields (never shorter than
     * the header, never beyond the message). */
    memcpy(copy, data, size);
    if (dns_response_cap_ttl(copy, size, 30)) {
        if (memcmp(copy, data, size < DNS_HEADER_LEN ? size : DNS_HEADER_LEN) != 0) {
            abort();
        }
    } else if (memcmp(copy, data, size) != 0) {
        abort(); /* refused: untouched */
    }
    free(copy);
    static const uint8_t fixed[] = "\x07"
                                   "allowed\x04"
                                   "test";
    memset(&q, 0, sizeof(q));
    memcpy(q.name, fixed, sizeof(fixed));
    q.name_len = sizeof(fixed);
    q.qtype = DNS_TYPE_A;
    q.qclass = DNS_CLASS_IN;
    if (dns_response_parse(data, size, id, &q, &a, NULL) == PV_OK) {
        check_answer(&a);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    query(data, size);
    response(data, size);
    return 0;
}
