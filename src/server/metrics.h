/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Request metrics in Prometheus text format (GET /metrics): requests by route, method
 * and status, and a latency histogram by route. Shared by the workers (a mutex-free
 * array of atomic counters indexed by route).
 */
#ifndef PAVISE_SERVER_METRICS_H
#define PAVISE_SERVER_METRICS_H

#include <stddef.h>

#include "pavise/buf.h"

typedef struct metrics metrics;

/* One slot per route of api_routes plus "unmatched". NULL on out of memory. */
metrics *metrics_new(void);
void metrics_free(metrics *m);
/* route: the matched pattern (api_response.route). */
void metrics_observe(metrics *m, const char *method, const char *route, int status, double seconds);
/* Appends the exposition text to out. */
int metrics_render(const metrics *m, pv_buf *out);

#endif
