/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging. Programs choose the level, the format (text or JSON lines) and the stream;
 * library code only calls pv_log(). Nothing secret is ever passed to pv_log().
 */
#ifndef PAVISE_LOG_H
#define PAVISE_LOG_H

#include <stdbool.h>
#include <stdio.h>

#include "pavise/err.h"

typedef enum pv_log_level {
    PV_LOG_DEBUG = 0,
    PV_LOG_INFO = 1,
    PV_LOG_WARN = 2,
    PV_LOG_ERROR = 3,
    PV_LOG_OFF = 4,
} pv_log_level;

/* Configures logging: messages below min are dropped; json selects one JSON object per
 * line; out NULL means stderr; program names the emitter. Not thread-safe: call once at
 * start. Until called, warnings and errors go to stderr as text. */
void pv_log_init(pv_log_level min, bool json, FILE *out, const char *program);

/* Parses "debug", "info", "warn", "error", "off". PV_ERR_INVALID_ARG otherwise. */
int pv_log_level_parse(const char *s, pv_log_level *out);

bool pv_log_enabled(pv_log_level level);

/* Writes one log record (one line). Thread-safe: one write per record. */
void pv_log(pv_log_level level, const char *fmt, ...) PV_PRINTF(2, 3);

#define pv_debug(...) pv_log(PV_LOG_DEBUG, __VA_ARGS__)
#define pv_info(...)  pv_log(PV_LOG_INFO, __VA_ARGS__)
#define pv_warn(...)  pv_log(PV_LOG_WARN, __VA_ARGS__)
#define pv_error(...) pv_log(PV_LOG_ERROR, __VA_ARGS__)

#endif
