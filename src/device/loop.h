/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavised's event loop: epoll over the fds it watches (the local API, each compartment's
 * pidfd, status socket, seccomp listener, log pipe and app channel, timers, signals). One
 * thread. A callback may remove any fd, its own included: events already fetched for a
 * removed fd are dropped (each registration has a generation).
 */
#ifndef PAVISE_DEVICE_LOOP_H
#define PAVISE_DEVICE_LOOP_H

#include <stdint.h>

#include "pavise/err.h"

#define LP_MAX_FD 4096

typedef struct lp lp;
typedef void (*lp_fn)(void *ctx, int fd, uint32_t events);

int lp_new(lp **out, pv_err *e);
void lp_free(lp *l);
/* Watches fd (< LP_MAX_FD) for events (EPOLLIN, ...). PV_ERR_EXISTS, PV_ERR_IO. */
int lp_add(lp *l, int fd, uint32_t events, lp_fn fn, void *ctx, pv_err *e);
/* Stops watching fd (not closed). Unknown: nothing. */
void lp_del(lp *l, int fd);
/* Waits at most timeout_ms (-1: forever) and runs the callbacks of what is ready. */
int lp_run_once(lp *l, int timeout_ms, pv_err *e);

/* A one-shot timer: a timerfd watched by the loop, armed for ms from now (0 disarms). */
int lp_timer_new(lp *l, lp_fn fn, void *ctx, int *fd_out, pv_err *e);
int lp_timer_arm(int fd, uint64_t ms);
void lp_timer_free(lp *l, int fd);

#endif
