/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Request metrics shared by every worker without a lock: each route pattern has a
 * fixed table of (method, status) counters claimed with a compare-and-swap the first
 * time a pair is seen, and a latency histogram of atomic bucket counters. An observation
 * is a few relaxed atomic additions; rendering reads a consistent-enough snapshot
 * (Prometheus tolerates counters read a moment apart).
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

#define PAIRS_PER_ROUTE 64 /* (method, status) pairs: 5 methods x the dozen statuses we send */

static const double bucket_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                       0.05,   0.1,   0.25,   0.5,   1,    2.5};
static const char *const bucket_text[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
                                          "0.05",   "0.1",   "0.25",   "0.5",   "1",    "2.5"};
#define N_BOUNDS (sizeof(bucket_bounds) / sizeof(bucket_bounds[0]))

static const char *const methods[] = {"GET", "POST", "PATCH", "DELETE", "other"};
#define N_METHODS    (sizeof(methods) / sizeof(methods[0]))
#define METHOD_OTHER (N_METHODS - 1)

typedef struct pair_counter {
    /* 0: free; else (method + 1) << 16 | status. Set once, never changed. */
    _Atomic uint32_t key;
    _Atomic uint64_t count;
} pair_counter;

typedef struct route_slot {
    const char *pattern; /* borrowed from api_routes, or "unmatched" */
    pair_counter pairs[PAIRS_PER_ROUTE];
    _Atomic uint64_t overflow;              /* pairs beyond the table (status "other") */
    _Atomic uint64_t buckets[N_BOUNDS + 1]; /* not cumulative; the last is +Inf */
    _Atomic uint64_t sum_ns;
} route_slot;

struct metrics {
    size_t nslots; /* distinct patterns + "unmatched" (the last) */
    route_slot *slots;
    size_t *slot_of_route; /* api_routes index -> slot */
};

metrics *metrics_new(void)
{
    metrics *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return NULL;
    }
    m->slots = calloc(api_route_count + 1, sizeof(*m->slots));
    m->slot_of_route = calloc(api_route_count + 1, sizeof(*m->slot_of_route));
    if (m->slots == NULL || m->slot_of_route == NULL) {
        metrics_free(m);
        return NULL;
    }
    /* Several routes share a pattern (GET and POST /v1/tenants): one slot each pattern. */
    for (size_t i = 0; i < api_route_count; i++) {
        size_t s = 0;
        while (s < m->nslots && strcmp(m->slots[s].pattern, api_routes[i].pattern) != 0) {
            s++;
        }
        if (s == m->nslots) {
            m->slots[m->nslots++].pattern = api_routes[i].pattern;
        }
        m->slot_of_route[i] = s;
    }
    m->slots[m->nslots++].pattern = "unmatched";
    return m;
}

void metrics_free(metrics *m)
{
    if (m == NULL) {
        return;
    }
    free(m->slots);
    free(m->slot_of_route);
    free(m);
}

static route_slot *find_slot(metrics *m, const char *route)
{
    if (route != NULL) {
        /* The API hands back the table's own pointer: compare addresses first. */
        for (size_t i = 0; i < api_route_count; i++) {
            if (api_routes[i].pattern == route) {
                return &m->slots[m->slot_of_route[i]];
            }
        }
        for (size_t s = 0; s + 1 < m->nslots; s++) {
            if (strcmp(m->slots[s].pattern, route) == 0) {
                return &m->slots[s];
            }
        }
    }
    return &m->slots[m->nslots - 1];
}

static size_t method_index(const char *method)
{
    for (size_t i = 0; method != NULL && i < METHOD_OTHER; i++) {
        if (strcmp(methods[i], method) == 0) {
            return i;
        }
    }
    return METHOD_OTHER;
}

static void count_pair(route_slot *s, uint32_t key)
{
    for (size_t i = 0; i < PAIRS_PER_ROUTE; i++) {
        pair_counter *p = &s->pairs[i];
        uint32_t k = atomic_load_explicit(&p->key, memory_order_acquire);
        if (k == 0) {
            uint32_t expected = 0;
            if (atomic_compare_exchange_strong_explicit(
                    &p->key, &expected, key, memory_order_acq_rel, memory_order_acquire)) {
                k = key;
            } else {
                k = expected; /* another worker claimed it first, maybe for this pair */
            }
        }
        if (k == key) {
            atomic_fetch_add_explicit(&p->count, 1, memory_order_relaxed);
            return;
        }
    }
    atomic_fetch_add_explicit(&s->overflow, 1, memory_order_relaxed);
}

void metrics_observe(metrics *m, const char *method, const char *route, int status, double seconds)
{
    if (m == NULL) {
        return;
    }
    route_slot *s = find_slot(m, route);
    uint32_t st = status >= 100 && status <= 999 ? (uint32_t)status : 0;
    count_pair(s, (uint32_t)(method_index(method) + 1) << 16 | st);

    if (!(seconds >= 0)) { /* also NaN */
        seconds = 0;
    }
    size_t b = 0;
    while (b < N_BOUNDS && seconds > bucket_bounds[b]) {
        b++;
    }
    atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
    double ns = seconds * 1e9;
    uint64_t add = ns < 1.8e19 ? (uint64_t)ns : UINT64_C(18000000000000000000);
    atomic_fetch_add_explicit(&s->sum_ns, add, memory_order_relaxed);
}

/* ---- rendering ---- */

static int appendf(pv_buf *out, const char *fmt, ...) PV_PRINTF(2, 3);
static int appendf(pv_buf *out, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        return PV_ERR_TOO_LARGE;
    }
    return pv_buf_append(out, line, (size_t)n);
}

/* A label value in the exposition format: backslash, double quote and newline escaped. */
static void escape_label(const char *s, char *out, size_t size)
{
    size_t o = 0;
    for (; *s != '\0' && o + 3 < size; s++) {
        if (*s == '\\' || *s == '"') {
            out[o++] = '\\';
            out[o++] = *s;
        } else if (*s == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
}

static int render_counters(const metrics *m, pv_buf *out)
{
    int r = appendf(out, "# HELP pavise_http_requests_total HTTP requests by route, method and "
                         "status.\n# TYPE pavise_http_requests_total counter\n");
    for (size_t si = 0; r == PV_OK && si < m->nslots; si++) {
        route_slot *s = &m->slots[si];
        char route[256];
        escape_label(s->pattern, route, sizeof(route));
        for (size_t i = 0; r == PV_OK && i < PAIRS_PER_ROUTE; i++) {
            uint32_t k = atomic_load_explicit(&s->pairs[i].key, memory_order_acquire);
            if (k == 0) {
                break; /* pairs are claimed in order */
            }
            uint64_t n = atomic_load_explicit(&s->pairs[i].count, memory_order_relaxed);
            size_t mi = (k >> 16) - 1;
            unsigned st = k & 0xffff;
            char status[8];
            if (st == 0) {
                snprintf(status, sizeof(status), "other");
            } else {
                snprintf(status, sizeof(status), "%u", st);
            }
            r = appendf(out,
                        "pavise_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} "
                        "%llu\n",
                        route, methods[mi < N_METHODS ? mi : METHOD_OTHER], status,
                        (unsigned long long)n);
        }
        uint64_t over = atomic_load_explicit(&s->overflow, memory_order_relaxed);
        if (r == PV_OK && over > 0) {
            r = appendf(out,
                        "pavise_http_requests_total{route=\"%s\",method=\"other\","
                        "status=\"other\"} %llu\n",
                        route, (unsigned long long)over);
        }
    }
    return r;
}

static int render_histograms(const metrics *m, pv_buf *out)
{
    int r = appendf(out, "# HELP pavise_http_request_duration_seconds Time from a request's "
                         "arrival to its response, by route.\n"
                         "# TYPE pavise_http_request_duration_seconds histogram\n");
    for (size_t si = 0; r == PV_OK && si < m->nslots; si++) {
        route_slot *s = &m->slots[si];
        uint64_t counts[N_BOUNDS + 1];
        uint64_t total = 0;
        for (size_t b = 0; b <= N_BOUNDS; b++) {
            counts[b] = atomic_load_explicit(&s->buckets[b], memory_order_relaxed);
            total += counts[b];
        }
        if (total == 0) {
            continue; /* routes never called stay out of the output */
        }
        char route[256];
        escape_label(s->pattern, route, sizeof(route));
        uint64_t cum = 0;
        for (size_t b = 0; r == PV_OK && b <= N_BOUNDS; b++) {
            cum += counts[b];
            r = appendf(out,
                        "pavise_http_request_duration_seconds_bucket{route=\"%s\",le=\"%s\"} "
                        "%llu\n",
                        route, b < N_BOUNDS ? bucket_text[b] : "+Inf", (unsigned long long)cum);
        }
        double sum = (double)atomic_load_explicit(&s->sum_ns, memory_order_relaxed) / 1e9;
        if (r == PV_OK) {
            r = appendf(out,
                        "pavise_http_request_duration_seconds_sum{route=\"%s\"} %.9f\n"
                        "pavise_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                        route, sum, route, (unsigned long long)total);
        }
    }
    return r;
}

int metrics_render(const metrics *m, pv_buf *out)
{
    if (m == NULL || out == NULL) {
        return PV_ERR_INVALID_ARG;
    }
    int r = render_counters(m, out);
    if (r == PV_OK) {
        r = render_histograms(m, out);
    }
    return r;
}
