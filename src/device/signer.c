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

/* A slot: running (its output watched), exiting (it answered; its pidfd watched), or
 * reaping (killed, nobody waits for it any more; the slot is taken until it is gone, so a
 * helper stuck in the TPM never lets more pile up behind it). */
typedef enum job_state { J_FREE = 0, J_RUNNING, J_EXITING, J_REAPING } job_state;

struct sg_job {
    sg_ctx *s;
    job_state state;
    sc_job sc;
    int timer;
    bool watching_pid;
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
        s->jobs[i] = (sg_job){.s = s, .timer = -1, .sc = {.fd = -1, .pidfd = -1}};
    }
    *out = s;
    return PV_OK;
}

/* Frees the slot: its pipe, pidfd and timer leave the loop; the helper is reaped (waiting
 * only if it has not been: sg_free, or no pidfd). */
static void release(sg_job *j)
{
    if (j->sc.fd >= 0) {
        lp_del(j->s->loop, j->sc.fd);
    }
    if (j->watching_pid) {
        lp_del(j->s->loop, j->sc.pidfd);
        j->watching_pid = false;
    }
    sc_job_cancel(&j->sc);
    if (j->timer >= 0) {
        lp_timer_free(j->s->loop, j->timer);
        j->timer = -1;
    }
    j->state = J_FREE;
    j->fn = NULL;
    j->ctx = NULL;
}

static void on_exit_fd(void *ctx, int fd, uint32_t events);

/* Waits for the helper's exit through the loop. False when that cannot be (no pidfd): it
 * is then killed and reaped here, and the slot released without telling the owner. */
static bool watch_exit(sg_job *j)
{
    pv_err e;
    pv_err_clear(&e);
    if (j->sc.fd >= 0) {
        lp_del(j->s->loop, j->sc.fd);
        sc_job_close_output(&j->sc);
    }
    if (j->sc.pidfd < 0 || (!j->watching_pid &&
                            lp_add(j->s->loop, j->sc.pidfd, EPOLLIN, on_exit_fd, j, &e) != PV_OK)) {
        sc_job_kill(&j->sc);
        release(j); /* reaps by waiting: a SIGKILLed helper, so briefly */
        return false;
    }
    j->watching_pid = true;
    return true;
}

/* Kills the helper; nobody is told; the slot is freed once it is reaped. */
static void abandon(sg_job *j)
{
    int status = 0;
    j->fn = NULL;
    j->ctx = NULL;
    sc_job_kill(&j->sc);
    if (sc_job_reaped(&j->sc, &status)) {
        release(j);
        return;
    }
    j->state = J_REAPING;
    lp_timer_arm(j->timer, 0);
    (void)watch_exit(j);
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

/* The reaped helper's answer, to the owner. */
static void answer(sg_job *j, int status)
{
    json_t *ans = NULL;
    uint8_t sig[AC_SIG_LEN];
    pv_err e;
    pv_err_clear(&e);
    int r = sc_job_answer(&j->sc, status, &ans, &e);
    if (r == PV_OK) {
        r = read_signature(ans, sig, &e);
    }
    json_decref(ans);
    sg_done_fn *fn = j->fn;
    void *owner = j->ctx;
    release(j); /* first: the owner may start another */
    int result = PV_APP_OK;
    if (r == PV_ERR_NOT_FOUND) {
        pv_info("signing for an app: %s", pv_err_msg(&e));
        result = PV_APP_ERR_NOT_READY;
    } else if (r != PV_OK) {
        pv_warn("signing for an app: %s", pv_err_msg(&e));
        result = PV_APP_ERR_IO;
    }
    if (fn != NULL) {
        fn(owner, result, result == PV_APP_OK ? sig : NULL);
    }
}

static void on_answer(void *ctx, int fd, uint32_t events)
{
    sg_job *j = ctx;
    bool done = false;
    int status = 0;
    pv_err e;
    pv_err_clear(&e);
    int r = sc_job_read(&j->sc, &done, &e);
    if (r == PV_OK && !done) {
        return;
    }
    if (r != PV_OK) {
        pv_warn("signing for an app: %s", pv_err_msg(&e));
        sg_done_fn *fn = j->fn;
        void *owner = j->ctx;
        abandon(j);
        if (fn != NULL) {
            fn(owner, PV_APP_ERR_IO, NULL);
        }
        return;
    }
    /* It closed its output: it is exiting. Its status, then its answer, without waiting
     * in the loop: at most SC_JOB_EXIT_MS more. */
    if (sc_job_reaped(&j->sc, &status)) {
        answer(j, status);
        return;
    }
    j->state = J_EXITING;
    lp_timer_arm(j->timer, SC_JOB_EXIT_MS);
    sg_done_fn *fn = j->fn;
    void *owner = j->ctx;
    if (!watch_exit(j) && fn != NULL) {
        fn(owner, PV_APP_ERR_IO, NULL);
    }
}

static void on_exit_fd(void *ctx, int fd, uint32_t events)
{
    sg_job *j = ctx;
    int status = 0;
    if (!sc_job_reaped(&j->sc, &status)) {
        return;
    }
    if (j->state == J_EXITING) {
        answer(j, status);
    } else {
        release(j);
    }
}

static void on_timeout(void *ctx, int fd, uint32_t events)
{
    sg_job *j = ctx;
    if (j->state == J_REAPING) {
        return;
    }
    pv_warn("signing for an app: pavise-store did not %s within %u ms",
            j->state == J_EXITING ? "exit after answering" : "answer",
            j->state == J_EXITING ? SC_JOB_EXIT_MS : j->s->store.timeout_ms);
    sg_done_fn *fn = j->fn;
    void *owner = j->ctx;
    abandon(j);
    if (fn != NULL) {
        fn(owner, PV_APP_ERR_IO, NULL);
    }
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
        j = s->jobs[i].state != J_FREE ? NULL : &s->jobs[i];
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
    j->state = J_RUNNING;
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
    if (s != NULL && j != NULL && (j->state == J_RUNNING || j->state == J_EXITING)) {
        abandon(j);
    }
}

void sg_free(sg_ctx *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < SG_MAX_JOBS; i++) {
        if (s->jobs[i].state != J_FREE) {
            sc_job_kill(&s->jobs[i].sc);
            release(&s->jobs[i]); /* reaps by waiting: pavised is exiting */
        }
    }
    free(s);
}
