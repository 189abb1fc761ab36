/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rot-bench KIND STATE_DIR [TCTI] [N]: latency of the root of trust's hot operations on
 * one backend: sign (attestation key, 256-byte message), extend (PCR 13 + event log),
 * counter advance (one step), random (32 bytes). Provisions a fresh identity in
 * STATE_DIR (and in the TPM, which must be a fresh swtpm), runs each operation N times
 * (default 200) after a warm-up, and prints the median and the 90th percentile in
 * microseconds, one line per operation: "op median_us p90_us".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pavise/rot.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *op, double *t, int n)
{
    qsort(t, (size_t)n, sizeof(*t), cmp);
    printf("%s %.1f %.1f\n", op, t[n / 2], t[(n * 9) / 10]);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: rot-bench tpm|software STATE_DIR [TCTI] [N]\n");
        return 2;
    }
    pv_rot_config cfg = {.state_dir = argv[2], .tcti = argc > 3 ? argv[3] : NULL};
    int n = argc > 4 ? atoi(argv[4]) : 200;
    if (pv_rot_kind_parse(argv[1], &cfg.kind) != PV_OK || n < 10 || n > 100000) {
        fprintf(stderr, "rot-bench: bad arguments\n");
        return 2;
    }
    pv_err e;
    pv_err_clear(&e);
    pv_rot *rot = NULL;
    if (pv_rot_provision(&cfg, &rot, &e) != PV_OK) {
        fprintf(stderr, "rot-bench: %s\n", pv_err_msg(&e));
        return 1;
    }
    double *t = calloc((size_t)n, sizeof(double));
    uint8_t msg[256], sig[PV_ES256_SIG_LEN], digest[PV_SHA256_LEN], rnd[32];
    memset(msg, 0x5a, sizeof(msg));
    memset(digest, 0xa5, sizeof(digest));
    int r = PV_OK;
    for (int i = 0; i < 5 && r == PV_OK; i++) { /* warm-up */
        r = pv_rot_sign(rot, msg, sizeof(msg), sig, &e);
    }
    for (int i = 0; i < n && r == PV_OK; i++) {
        msg[0] = (uint8_t)i;
        double t0 = now_us();
        r = pv_rot_sign(rot, msg, sizeof(msg), sig, &e);
        t[i] = now_us() - t0;
    }
    if (r == PV_OK) {
        report("sign", t, n);
    }
    /* The event log holds 256 events per boot: measure at most that many extends. */
    int ne = n < PV_ROT_MAX_EVENTS ? n : PV_ROT_MAX_EVENTS;
    for (int i = 0; i < ne && r == PV_OK; i++) {
        digest[0] = (uint8_t)i;
        double t0 = now_us();
        r = pv_rot_extend(rot, "bench", digest, "benchmark event", 15, &e);
        t[i] = now_us() - t0;
    }
    if (r == PV_OK) {
        report("extend", t, ne);
    }
    for (int i = 0; i < n && r == PV_OK; i++) {
        double t0 = now_us();
        r = pv_rot_counter_advance(rot, 1, (uint64_t)i + 1, &e);
        t[i] = now_us() - t0;
    }
    if (r == PV_OK) {
        report("counter-advance", t, n);
    }
    for (int i = 0; i < n && r == PV_OK; i++) {
        double t0 = now_us();
        r = pv_rot_random(rot, rnd, sizeof(rnd), &e);
        t[i] = now_us() - t0;
    }
    if (r == PV_OK) {
        report("random", t, n);
    }
    if (r != PV_OK) {
        fprintf(stderr, "rot-bench: %s\n", pv_err_msg(&e));
    }
    free(t);
    pv_rot_close(rot);
    return r == PV_OK ? 0 : 1;
}
