// SPDX-License-Identifier: Apache-2.0
/* The epoll loop. See loop.h. */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

typedef struct reg {
    lp_fn fn;
    void *ctx;
    uint32_t gen; /* 0: free */
} reg;

struct lp {
    int ep;
    uint32_t next_gen;
    reg r[LP_MAX_FD];
};

int lp_new(lp **out, pv_err *e)
{
    *out = NULL;
    lp *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    if (l->ep < 0) {
        int err = errno;
        free(l);
        return pv_err_sys(e, PV_ERR_IO, err, "epoll_create1");
    }
    l->next_gen = 1;
    *out = l;
    return PV_OK;
}

void lp_free(lp *l)
{
    if (l != NULL) {
        close(l->ep);
        free(l);
    }
}

int lp_add(lp *l, int fd, uint32_t events, lp_fn fn, void *ctx, pv_err *e)
{
    if (fd < 0 || fd >= LP_MAX_FD) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "fd %d out of the loop's range", fd);
    }
    if (l->r[fd].gen != 0) {
        return pv_err_set(e, PV_ERR_EXISTS, "fd %d already watched", fd);
    }
    uint32_t gen = l->next_gen++;
    if (l->next_gen == 0) {
        l->next_gen = 1;
    }
    struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)gen << 32 | (uint32_t)fd};
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "epoll_ctl");
    }
    l->r[fd] = (reg){.fn = fn, .ctx = ctx, .gen = gen};
    return PV_OK;
}

void lp_del(lp *l, int fd)
{
    if (fd < 0 || fd >= LP_MAX_FD || l->r[fd].gen == 0) {
        return;
    }
    epoll_ctl(l->ep, EPOLL_CTL_DEL, fd, NULL);
    l->r[fd] = (reg){0};
}

int lp_run_once(lp *l, int timeout_ms, pv_err *e)
{
    struct epoll_event evs[32];
    int n = epoll_wait(l->ep, evs, 32, timeout_ms);
    if (n < 0) {
        return errno == EINTR ? PV_OK : pv_err_sys(e, PV_ERR_IO, errno, "epoll_wait");
    }
    for (int i = 0; i < n; i++) {
        int fd = (int)(uint32_t)evs[i].data.u64;
        uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
        if (fd < 0 || fd >= LP_MAX_FD || l->r[fd].gen != gen) {
            continue; /* removed (and maybe reused) since epoll_wait returned */
        }
        l->r[fd].fn(l->r[fd].ctx, fd, evs[i].events);
    }
    return PV_OK;
}

int lp_timer_new(lp *l, lp_fn fn, void *ctx, int *fd_out, pv_err *e)
{
    *fd_out = -1;
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (fd < 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "timerfd_create");
    }
    int r = lp_add(l, fd, EPOLLIN, fn, ctx, e);
    if (r != PV_OK) {
        close(fd);
        return r;
    }
    *fd_out = fd;
    return PV_OK;
}

int lp_timer_arm(int fd, uint64_t ms)
{
    struct itimerspec its = {0};
    if (ms != 0) {
        its.it_value.tv_sec = (time_t)(ms / 1000);
        its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
    }
    uint64_t drain;
    while (read(fd, &drain, sizeof(drain)) > 0) {
    }
    return timerfd_settime(fd, 0, &its, NULL) == 0 ? PV_OK : PV_ERR_IO;
}

void lp_timer_free(lp *l, int fd)
{
    if (fd >= 0) {
        lp_del(l, fd);
        close(fd);
    }
}
