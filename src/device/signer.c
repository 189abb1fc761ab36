// SPDX-License-Identifier: Apache-2.0
/* See signer.h. */
#include "signer.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "pavise/app.h"
#include "pavise/crypto.h"
#include "pavise/json.h"
#include "pavise/log.h"
#include "pavise/platform.h"

struct sg_job {
    sg_ctx *s;
    bool used;
    sc_job sc;
    int timer;
    sg_done_fn *fn;
    void *ctx;
};

struct sg_ctx {
    lp *loop;
    sc_config store;
    sg_job jobs[SG_MAX_JOBS];
};

int sg_new(lp *loop, const sc_config *store, sg_ctx **out, pv_err *e)
{
    sg_ctx *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    s->loop = loop;
    s->store = *store;
    /* Never longer than the SDK waits (a longer store timeout is for installs). */
    s->store.timeout_ms = store->timeout_ms != 0 && store->timeout_ms < SG_TIMEOUT_MS
                              ? store->timeout_ms
                              : SG_TIMEOUT_MS;
    for (size_t i = 0; i < SG_MAX_JOBS; i++) {
        s->jobs[i] = (sg_job){.s = s, .timer = -1, .sc = {.fd = -1}};
    }
    *out = s;
    return PV_OK;
}

/* Releases the job's slot: its pipe and timer leave the loop, the helper is gone. */
static void release(sg_job *j)
{
    if (j->sc.fd >= 0) {
        lp_del(j->s->loop, j->sc.fd);
    }
    sc_job_cancel(&j->sc);
    if (j->timer >= 0) {
        lp_timer_free(j->s->loop, j->timer);
        j->timer = -1;
    }
    j->used = false;
    j->fn = NULL;
    j->ctx = NULL;
}

/* Ends the job and tells its owner, after the slot is free (the callback may start
 * another). */
static void complete(sg_job *j, int result, const uint8_t *sig)
{
    sg_done_fn *fn = j->fn;
    void *ctx = j->ctx;
    release(j);
    fn(ctx, result, sig);
}

/* The answer {"signature": 128 hex digits}, nothing else. */
static int read_signature(const json_t *ans, uint8_t sig[AC_SIG_LEN], pv_err *e)
{
    static const char *const fields[] = {"signature", NULL};
    const char *hex = NULL;
    int r = pv_json_check_fields(ans, fields, "pavise-store's signature", e);
    if (r != PV_OK) {
        return r;
    }
    /* Required, but its absence is a malformed answer, not "no key" (PV_ERR_NOT_FOUND). */
    if ((r = pv_json_get_string(ans, "signature", false, 2 * AC_SIG_LEN, "pavise-store's signature",
                                &hex, NULL, e)) != PV_OK) {
        return r;
    }
    if (hex == NULL) {
        return pv_err_set(e, PV_ERR_FORMAT, "pavise-store's answer has no signature");
    }
    if (strlen(hex) != 2 * AC_SIG_LEN || pv_hex_decode(hex, sig, AC_SIG_LEN) != PV_OK) {
        return pv_err_set(e, PV_ERR_FORMAT, "pavise-store's signature is not %d hex digits",
                          2 * AC_SIG_LEN);
    }
    return PV_OK;
}

static void on_answer(void *ctx, int fd, uint32_t events)
{
    sg_job *j = ctx;
    bool done = false;
    json_t *ans = NULL;
    uint8_t sig[AC_SIG_LEN];
    pv_err e;
    pv_err_clear(&e);
    int r = sc_job_read(&j->sc, &done, &e);
    if (r == PV_OK && !done) {
        return;
    }
    if (r == PV_OK) {
        lp_del(j->s->loop, j->sc.fd);
        r = sc_job_finish(&j->sc, &ans, &e);
    }
    if (r == PV_OK) {
        r = read_signature(ans, sig, &e);
    }
    json_decref(ans);
    if (r == PV_OK) {
        complete(j, PV_APP_OK, sig);
    } else if (r == PV_ERR_NOT_FOUND) {
        pv_info("signing for an app: %s", pv_err_msg(&e));
        complete(j, PV_APP_ERR_NOT_READY, NULL);
    } else {
        pv_warn("signing for an app: %s", pv_err_msg(&e));
        complete(j, PV_APP_ERR_IO, NULL);
    }
}

static void on_timeout(void *ctx, int fd, uint32_t events)
{
    sg_job *j = ctx;
    pv_warn("signing for an app: pavise-store did not answer within %u ms", j->s->store.timeout_ms);
    complete(j, PV_APP_ERR_IO, NULL);
}

int sg_start(sg_ctx *s, const uint8_t *digest, size_t len, sg_done_fn *fn, void *ctx, sg_job **out,
             pv_err *e)
{
    sg_job *j = NULL;
    char hex[2 * AC_MAX_DIGEST_LEN + 1];
    if (len < AC_MIN_DIGEST_LEN || len > AC_MAX_DIGEST_LEN || fn == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "a digest of %zu bytes", len);
    }
    for (size_t i = 0; i < SG_MAX_JOBS && j == NULL; i++) {
        j = s->jobs[i].used ? NULL : &s->jobs[i];
    }
    if (j == NULL) {
        return pv_err_set(e, PV_ERR_LOCKED, "%d signatures are being made already", SG_MAX_JOBS);
    }
    pv_hex_encode(digest, len, hex, sizeof(hex));
    const char *const argv[] = {"pavise-store", "sign", "--digest", hex, NULL};
    int r = sc_job_start(&s->store, argv, &j->sc, e);
    if (r != PV_OK) {
        return r;
    }
    j->used = true;
    j->fn = fn;
    j->ctx = ctx;
    if (lp_add(s->loop, j->sc.fd, EPOLLIN, on_answer, j, e) != PV_OK ||
        lp_timer_new(s->loop, on_timeout, j, &j->timer, e) != PV_OK) {
        release(j);
        return PV_ERR_IO; /* the loop's errors are not the caller's PV_ERR_LOCKED */
    }
    lp_timer_arm(j->timer, s->store.timeout_ms);
    *out = j;
    return PV_OK;
}

void sg_cancel(sg_ctx *s, sg_job *j)
{
    if (s != NULL && j != NULL && j->used) {
        release(j);
    }
}

void sg_free(sg_ctx *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < SG_MAX_JOBS; i++) {
        sg_cancel(s, &s->jobs[i]);
    }
    free(s);
}
