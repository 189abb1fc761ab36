/* SPDX-License-Identifier: Apache-2.0 */
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "metrics.h"

/* One parsed sample line: name{labels} value. */
typedef struct sample {
    char name[96];
    char labels[512]; /* the text between the braces, as written */
    double value;
} sample;

typedef struct parsed {
    sample *s;
    size_t n;
    size_t help, type; /* HELP and TYPE lines seen */
} parsed;

/* Parses the exposition text strictly enough to catch format mistakes: every line is a
 * comment (# HELP / # TYPE) or name{labels} value, label values are quoted with only
 * \\, \" and \n escaped, and the text ends with a newline. */
static parsed parse(const pv_buf *b)
{
    parsed p = {0};
    size_t len = pv_buf_len(b);
    const char *text = (const char *)pv_buf_data(b);
    assert_true(len > 0);
    assert_int_equal(text[len - 1], '\n');
    p.s = calloc(4096, sizeof(*p.s));
    const char *line = text;
    while (line < text + len) {
        const char *nl = memchr(line, '\n', (size_t)(text + len - line));
        assert_non_null(nl);
        char buf[1024];
        size_t n = (size_t)(nl - line);
        assert_true(n < sizeof(buf));
        memcpy(buf, line, n);
        buf[n] = '\0';
        line = nl + 1;
        if (strncmp(buf, "# HELP ", 7) == 0) {
            p.help++;
            continue;
        }
        if (strncmp(buf, "# TYPE ", 7) == 0) {
            assert_true(strstr(buf, " counter") != NULL || strstr(buf, " histogram") != NULL);
            p.type++;
            continue;
        }
        assert_true(buf[0] != '#');
        sample *s = &p.s[p.n++];
        assert_true(p.n < 4096);
        char *brace = strchr(buf, '{');
        assert_non_null(brace);
        *brace = '\0';
        assert_true(strspn(buf, "abcdefghijklmnopqrstuvwxyz_") == strlen(buf));
        snprintf(s->name, sizeof(s->name), "%s", buf);
        /* labels: key="value" pairs separated by commas */
        char *q = brace + 1;
        size_t lo = 0;
        for (;;) {
            size_t k = strspn(q, "abcdefghijklmnopqrstuvwxyz_");
            assert_true(k > 0);
            assert_int_equal(q[k], '=');
            assert_int_equal(q[k + 1], '"');
            char *v = q + k + 2;
            while (*v != '"') {
                assert_true(*v != '\0' && *v != '\n');
                if (*v == '\\') {
                    assert_true(v[1] == '\\' || v[1] == '"' || v[1] == 'n');
                    v++;
                }
                v++;
            }
            v++;
            memcpy(s->labels + lo, q, (size_t)(v - q));
            lo += (size_t)(v - q);
            if (*v == ',') {
                s->labels[lo++] = ',';
                q = v + 1;
                continue;
            }
            assert_int_equal(*v, '}');
            assert_int_equal(v[1], ' ');
            char *end = NULL;
            s->value = strtod(v + 2, &end);
            assert_true(end != v + 2 && *end == '\0');
            break;
        }
        s->labels[lo] = '\0';
    }
    return p;
}

/* The value of the sample with this name and exactly these labels; NAN if absent. */
static double value_of(const parsed *p, const char *name, const char *labels)
{
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->s[i].name, name) == 0 && strcmp(p->s[i].labels, labels) == 0) {
            return p->s[i].value;
        }
    }
    return NAN;
}

static size_t count_named(const parsed *p, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++) {
        n += strcmp(p->s[i].name, name) == 0;
    }
    return n;
}

static parsed render(metrics *m)
{
    pv_buf *b = pv_buf_new(1 << 20);
    assert_non_null(b);
    assert_int_equal(metrics_render(m, b), PV_OK);
    parsed p = parse(b);
    pv_buf_free(b);
    return p;
}

static const char *pattern_of(const char *method, const char *pattern)
{
    for (size_t i = 0; i < api_route_count; i++) {
        if (strcmp(api_routes[i].method, method) == 0 &&
            strcmp(api_routes[i].pattern, pattern) == 0) {
            return api_routes[i].pattern;
        }
    }
    fail_msg("no route %s %s", method, pattern);
    return NULL;
}

#define DEV  "/v1/tenants/{tenant}/devices/{device}"
#define TEN  "/v1/tenants"
#define RQ   "pavise_http_requests_total"
#define HIST "pavise_http_request_duration_seconds"

static void test_empty(void **state)
{
    metrics *m = metrics_new();
    assert_non_null(m);
    parsed p = render(m);
    assert_int_equal(p.n, 0);
    assert_int_equal(p.help, 2);
    assert_int_equal(p.type, 2);
    free(p.s);
    metrics_free(m);
    metrics_free(NULL);
}

static void test_counts_by_route_method_status(void **state)
{
    metrics *m = metrics_new();
    const char *dev = pattern_of("GET", DEV);
    for (int i = 0; i < 5; i++) {
        metrics_observe(m, "GET", dev, 200, 0.0004);
    }
    metrics_observe(m, "GET", dev, 404, 0.003);
    metrics_observe(m, "PATCH", dev, 200, 0.02);
    /* A copy of the pattern (not the table's pointer) lands on the same route. */
    char copy[128];
    snprintf(copy, sizeof(copy), "%s", DEV);
    metrics_observe(m, "GET", copy, 200, 0.0001);
    /* GET and POST /v1/tenants share one route label. */
    metrics_observe(m, "GET", pattern_of("GET", TEN), 200, 0.001);
    metrics_observe(m, "POST", pattern_of("POST", TEN), 201, 0.001);
    /* Unknown routes and methods. */
    metrics_observe(m, "GET", NULL, 404, 0.001);
    metrics_observe(m, "GET", "/nowhere", 404, 0.001);
    metrics_observe(m, "PUT", "unmatched", 405, 0.001);
    metrics_observe(m, "GET\"\n", "unmatched", 405, 0.001);

    parsed p = render(m);
    assert_true(value_of(&p, RQ, "route=\"" DEV "\",method=\"GET\",status=\"200\"") == 6);
    assert_true(value_of(&p, RQ, "route=\"" DEV "\",method=\"GET\",status=\"404\"") == 1);
    assert_true(value_of(&p, RQ, "route=\"" DEV "\",method=\"PATCH\",status=\"200\"") == 1);
    assert_true(value_of(&p, RQ, "route=\"" TEN "\",method=\"GET\",status=\"200\"") == 1);
    assert_true(value_of(&p, RQ, "route=\"" TEN "\",method=\"POST\",status=\"201\"") == 1);
    assert_true(value_of(&p, RQ, "route=\"unmatched\",method=\"GET\",status=\"404\"") == 2);
    assert_true(value_of(&p, RQ, "route=\"unmatched\",method=\"other\",status=\"405\"") == 2);
    assert_int_equal(count_named(&p, RQ), 7);

    /* The histogram: cumulative buckets in order, +Inf equal to _count, _sum the total. */
    static const char *const les[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
                                      "0.1",    "0.25",  "0.5",    "1",     "2.5",  "+Inf"};
    static const double expect[] = {6, 6, 6, 7, 7, 8, 8, 8, 8, 8, 8, 8, 8};
    for (size_t i = 0; i < 13; i++) {
        char labels[256];
        snprintf(labels, sizeof(labels), "route=\"%s\",le=\"%s\"", DEV, les[i]);
        assert_true(value_of(&p, HIST "_bucket", labels) == expect[i]);
    }
    assert_true(value_of(&p, HIST "_count", "route=\"" DEV "\"") == 8);
    double sum = value_of(&p, HIST "_sum", "route=\"" DEV "\"");
    assert_true(fabs(sum - (5 * 0.0004 + 0.003 + 0.02 + 0.0001)) < 1e-6);
    /* A bound is inclusive: 0.001 falls in le="0.001". */
    assert_true(value_of(&p, HIST "_bucket", "route=\"" TEN "\",le=\"0.0005\"") == 0);
    assert_true(value_of(&p, HIST "_bucket", "route=\"" TEN "\",le=\"0.001\"") == 2);
    assert_true(value_of(&p, HIST "_count", "route=\"unmatched\"") == 4);
    /* Only routes that were called have a histogram. */
    assert_int_equal(count_named(&p, HIST "_count"), 3);
    assert_int_equal(count_named(&p, HIST "_bucket"), 3 * 13);
    free(p.s);
    metrics_free(m);
}

static void test_odd_values(void **state)
{
    metrics *m = metrics_new();
    metrics_observe(m, "GET", "unmatched", 99, -1);
    metrics_observe(m, "GET", "unmatched", 1000, NAN);
    metrics_observe(m, "GET", "unmatched", 200, 1e300);
    metrics_observe(NULL, "GET", "unmatched", 200, 1);
    parsed p = render(m);
    assert_true(value_of(&p, RQ, "route=\"unmatched\",method=\"GET\",status=\"other\"") == 2);
    assert_true(value_of(&p, HIST "_bucket", "route=\"unmatched\",le=\"0.0005\"") == 2);
    assert_true(value_of(&p, HIST "_bucket", "route=\"unmatched\",le=\"2.5\"") == 2);
    assert_true(value_of(&p, HIST "_bucket", "route=\"unmatched\",le=\"+Inf\"") == 3);
    free(p.s);
    metrics_free(m);
}

static void test_many_statuses_overflow(void **state)
{
    metrics *m = metrics_new();
    const char *dev = pattern_of("GET", DEV);
    /* More distinct pairs than the table holds: nothing is lost. */
    for (int st = 100; st < 300; st++) {
        metrics_observe(m, "GET", dev, st, 0.001);
    }
    parsed p = render(m);
    double total = 0;
    for (size_t i = 0; i < p.n; i++) {
        if (strcmp(p.s[i].name, RQ) == 0) {
            total += p.s[i].value;
        }
    }
    assert_true(total == 200);
    assert_true(value_of(&p, RQ, "route=\"" DEV "\",method=\"other\",status=\"other\"") > 0);
    free(p.s);
    metrics_free(m);
}

#define THREADS 4
#define PER     20000

static void *hammer(void *arg)
{
    metrics *m = arg;
    const char *dev = pattern_of("GET", DEV);
    for (int i = 0; i < PER; i++) {
        metrics_observe(m, (i & 1) ? "GET" : "DELETE", dev, 200 + (i % 3), 0.001 * (i % 7));
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    metrics *m = metrics_new();
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, hammer, m), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
    }
    parsed p = render(m);
    assert_int_equal(count_named(&p, RQ), 6); /* each pair once */
    double total = 0;
    for (size_t i = 0; i < p.n; i++) {
        if (strcmp(p.s[i].name, RQ) == 0) {
            total += p.s[i].value;
        }
    }
    assert_true(total == THREADS * PER);
    assert_true(value_of(&p, HIST "_count", "route=\"" DEV "\"") == THREADS * PER);
    free(p.s);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),      cmocka_unit_test(test_counts_by_route_method_status),
        cmocka_unit_test(test_odd_values), cmocka_unit_test(test_many_statuses_overflow),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
