/* SPDX-License-Identifier: Apache-2.0 */
/* GET /healthz and GET /metrics: public, for load balancers and Prometheus. */
#include <stdlib.h>

#include "pavise/buf.h"
#include "pavise/log.h"

#include "api.h"
#include "metrics.h"

#define METRICS_MAX_TEXT (4u << 20) /* the exposition of every route's counters fits */

int api_healthz(api_ctx *c)
{
    store_rows *rows = NULL;
    pv_err e;
    int r = PV_ERR_INTERNAL;

    pv_err_clear(&e);
    /* A real round trip: a load balancer must take a replica whose database is gone out
     * of rotation. */
    r = store_exec(c->db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", NULL, 0, &rows,
                   NULL, &e);
    if (r != PV_OK || store_rows_count(rows) != 1) {
        pv_warn("healthz: the database does not answer: %s", pv_err_msg(&e));
        r = api_fail(c, 503, "unavailable", "the database does not answer");
        goto out;
    }
    r = api_ok(c, 200,
               json_pack("{s:s,s:s,s:I}", "status", "ok", "database", store_backend_name(c->db),
                         "schema_version", (json_int_t)store_rows_int(rows, 0, 0)));
out:
    store_rows_free(rows);
    return r;
}

int api_metrics(api_ctx *c)
{
    int r = PV_ERR_INTERNAL;
    pv_buf *b = pv_buf_new(METRICS_MAX_TEXT);
    size_t len = 0;

    if (b == NULL || c->srv->metrics == NULL || metrics_render(c->srv->metrics, b) != PV_OK) {
        r = api_fail(c, 500, "internal", "cannot render the metrics");
        goto out;
    }
    uint8_t *text = pv_buf_steal(b, &len);
    if (text == NULL && len == 0) {
        text = (uint8_t *)calloc(1, 1); /* an empty exposition is still a body */
    }
    if (text == NULL) {
        r = api_fail(c, 500, "internal", "out of memory");
        goto out;
    }
    json_decref(c->out);
    c->out = NULL;
    free(c->raw);
    c->raw = (char *)text;
    c->raw_len = len;
    c->content_type = "text/plain; version=0.0.4";
    c->status = 200;
    r = PV_OK;
out:
    pv_buf_free(b);
    return r;
}
