/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavised's side of pavise-store (src/store/main.c): runs it for one operation and reads
 * its answer. Everything that verifies or extracts (packages, certificates, the capability
 * file, the root of trust) happens there; pavised keeps what it answered.
 */
#ifndef PAVISE_DEVICE_STORECLIENT_H
#define PAVISE_DEVICE_STORECLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "pavise/err.h"

#include "appstore.h"

typedef struct sc_config {
    int exe_fd;            /* pavise-store, opened O_PATH at start-up */
    const char *state_dir; /* passed on */
    const char *log_level; /* passed on: NULL for the default */
    bool log_json;
    unsigned timeout_ms;  /* how long one operation may take; 0: SP_TIMEOUT_MS */
    const char *hide_dir; /* covered in its mount namespace (the API socket's), or NULL */
} sc_config;

/* What "load" answered. */
typedef struct sc_device {
    char device_id[65];
    char rot_kind[16];
    bool development;    /* a development capability is applied */
    int64_t dev_expires; /* its expiry, 0: none */
} sc_device;

/* Runs "load": the device's fields, and a table of every installed app that verified (one
 * that did not is logged by pavise-store and left out). PV_ERR_* of the store or of the
 * answer (PV_ERR_FORMAT: a malformed answer, PV_ERR_IO: it could not be run or died). */
int sc_load(const sc_config *c, sc_device *dev, as_store **store, pv_err *e);

/* What sc_load does with the answer (the JSON object without "ok"), apps_dir being
 * STATE/apps: every field checked, every app's description read back and fitted into a new
 * table. PV_ERR_FORMAT naming what is wrong, PV_ERR_NOMEM. (The fuzz harness's entry.) */
int sc_load_answer(const json_t *ans, const char *apps_dir, sc_device *dev, as_store **store,
                   pv_err *e);

/* Runs "install" with the package open on pkg_fd (read from its start): the new entry (the
 * caller puts it in its table) and whether it replaced an installed component. development:
 * a sideload, which also accepts the capability's development roots. */
int sc_install(const sc_config *c, int pkg_fd, bool development, as_app **out, bool *replaced,
               pv_err *e);

/* Runs "remove" for a component. */
int sc_remove(const sc_config *c, const char *cid, pv_err *e);

/* Runs "capability" with the file open on fd: once it is applied, *expires is its expiry
 * (0: none). */
int sc_capability(const sc_config *c, int fd, int64_t *expires, pv_err *e);

/* The lower-level call: runs pavise-store with argv (argv[0] its name; --state and the log
 * options are appended), in_fd as its standard input (-1: /dev/null), and parses the
 * answer: *out is the answer of an "ok" run; a refusal is returned as its code and message. */
int sc_run(const sc_config *c, const char *const *argv, int in_fd, json_t **out, pv_err *e);

/* ---- one run without waiting (pavised's loop watches fd) ---- */

#define SC_JOB_CHUNK   4096 /* the first read buffer; it grows to the operation's bound */
#define SC_JOB_EXIT_MS 1000 /* how long a helper that has answered may take to exit */

typedef struct sc_job {
    pid_t pid; /* 0 once reaped */
    int fd;    /* its standard output, non-blocking: watch it for EPOLLIN */
    int pidfd; /* readable once it has exited (-1: none, reap by waiting) */
    char *buf;
    size_t len, cap, max;
} sc_job;

/* Starts pavise-store with argv (as sc_run, standard input /dev/null); the caller times
 * it (c->timeout_ms is not applied here) and cancels it. On failure *j holds
 * nothing to cancel. */
int sc_job_start(const sc_config *c, const char *const *argv, sc_job *j, pv_err *e);
/* Reads what the helper has written so far: *done once it closed its output (then reap it
 * and take its answer, below). An answer over the operation's bound: PV_ERR_TOO_LARGE; the caller
 * then cancels the job. */
int sc_job_read(sc_job *j, bool *done, pv_err *e);
/* Kills the helper's process group, reaps it (waiting) and releases the job. Safe on a
 * released job. */
void sc_job_cancel(sc_job *j);

/* Without waiting, for a loop that watches pidfd: */
/* True once the helper has exited and is reaped (*status then holds its status). */
bool sc_job_reaped(sc_job *j, int *status);
/* Sends SIGKILL to its process group; reap it with sc_job_reaped when pidfd says so. */
void sc_job_kill(sc_job *j);
/* Closes its output (after end of file, or when its answer no longer matters). */
void sc_job_close_output(sc_job *j);
/* Its answer, as sc_run parses it, once it is reaped with status. Releases nothing. */
int sc_job_answer(sc_job *j, int status, json_t **out, pv_err *e);

#endif
