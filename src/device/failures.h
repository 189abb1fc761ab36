/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Failure events of the apps (DESIGN §3 "Fail"): a crash, a seccomp violation, an
 * out-of-memory kill, a watchdog expiry, a refused setup, an exit with an error code.
 * Repeats aggregate into one entry with a count; the queue is bounded (FL_MAX entries: the
 * least recently seen goes first) and kept in STATE/failures/queue.json, written
 * atomically after each change, so it survives reboots until it is uploaded.
 */
#ifndef PAVISE_DEVICE_FAILURES_H
#define PAVISE_DEVICE_FAILURES_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "pavise/err.h"

#define FL_MAX      256
#define FL_MAX_TEXT 64

typedef enum fl_kind {
    FL_CRASH = 1,    /* killed by a signal of its own doing (SIGSEGV, SIGABRT, ...) */
    FL_SECCOMP = 2,  /* a syscall outside the allow-list: signal is 0, syscall is set */
    FL_OOM = 3,      /* killed by the OOM killer at its cgroup's memory limit */
    FL_WATCHDOG = 4, /* did not kick its watchdog in time */
    FL_EXIT = 5,     /* exited with a non-zero code */
    FL_SETUP = 6,    /* its compartment could not be set up: code is errno, detail the step */
    FL_POLICY = 7,   /* asked the runtime for something its manifest does not grant */
} fl_kind;

typedef struct fl_event {
    char component_id[37];
    char version[FL_MAX_TEXT + 1];
    fl_kind kind;
    int signal;
    int code;
    int syscall; /* -1 when not a seccomp violation */
    char detail[FL_MAX_TEXT + 1];
} fl_event;

typedef struct fl_queue fl_queue;

/* Loads the queue (a damaged file is set aside as queue.json.bad and a new one started).
 * PV_ERR_IO, PV_ERR_NOMEM. */
int fl_open(const char *state_dir, fl_queue **out, pv_err *e);
void fl_close(fl_queue *q);

/* Records one event now (aggregated with an equal one) and saves. */
int fl_record(fl_queue *q, const fl_event *ev, pv_err *e);

/* Events of a component (NULL: all), newest last, as a JSON array (new reference). */
json_t *fl_to_json(const fl_queue *q, const char *component_id);
/* The total count of a component's events. */
uint64_t fl_count(const fl_queue *q, const char *component_id);

const char *fl_kind_name(fl_kind k);

#endif
