/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The latency histogram of the load generators (mtls-load, pavise-fleet): header-only,
 * so each stays one standalone program.
 */
#ifndef PAVISE_BENCH_HIST_H
#define PAVISE_BENCH_HIST_H

#include <stdint.h>

/* ---- latency histogram ----
 * Log-linear like HdrHistogram: values below 2^HIST_SUB_BITS microseconds are exact;
 * above, each power of two is split into 2^(HIST_SUB_BITS-1) equal buckets, so a
 * reported percentile is within 1/64 (1.6%) of the true value. Values are clamped at
 * 2^HIST_MAX_BITS us (16.7 s), far beyond any useful benchmark latency. */
#define HIST_SUB_BITS 7
#define HIST_MAX_BITS 24
#define HIST_HALF     (1u << (HIST_SUB_BITS - 1))
#define HIST_BUCKETS  ((HIST_MAX_BITS - HIST_SUB_BITS + 2) * HIST_HALF)

typedef struct hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total;
    uint64_t max_us;
} hist;

static inline unsigned hist_index(uint64_t us)
{
    if (us >= ((uint64_t)1 << HIST_MAX_BITS)) {
        us = ((uint64_t)1 << HIST_MAX_BITS) - 1;
    }
    if (us < (1u << HIST_SUB_BITS)) {
        return (unsigned)us;
    }
    unsigned e = 63u - (unsigned)__builtin_clzll(us); /* us in [2^e, 2^(e+1)) */
    unsigned shift = e - (HIST_SUB_BITS - 1);
    return (shift + 1) * HIST_HALF + (unsigned)((us >> shift) - HIST_HALF);
}

/* The largest value that falls in bucket i (HdrHistogram's "highest equivalent value"). */
static inline uint64_t hist_bucket_high(unsigned i)
{
    if (i < (1u << HIST_SUB_BITS)) {
        return i;
    }
    unsigned shift = i / HIST_HALF - 1;
    uint64_t m = HIST_HALF + i % HIST_HALF;
    return ((m + 1) << shift) - 1;
}

static inline void hist_add(hist *h, uint64_t us)
{
    h->counts[hist_index(us)]++;
    h->total++;
    if (us > h->max_us) {
        h->max_us = us;
    }
}

static inline void hist_merge(hist *into, const hist *from)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        into->counts[i] += from->counts[i];
    }
    into->total += from->total;
    if (from->max_us > into->max_us) {
        into->max_us = from->max_us;
    }
}

/* The value at percentile p (0 < p <= 100), never above the largest value seen. */
static inline uint64_t hist_percentile(const hist *h, double p)
{
    if (h->total == 0) {
        return 0;
    }
    uint64_t rank = (uint64_t)((p / 100.0) * (double)h->total + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = hist_bucket_high(i);
            return v < h->max_us ? v : h->max_us;
        }
    }
    return h->max_us;
}

#endif
