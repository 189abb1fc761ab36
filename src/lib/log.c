/* SPDX-License-Identifier: Apache-2.0 */
#include "pavise/log.h"

#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static pv_log_level log_min = PV_LOG_WARN;
static bool log_json;
static FILE *log_out;
static const char *log_program = "pavise";

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void pv_log_init(pv_log_level min, bool json, FILE *out, const char *program)
{
    log_min = min;
    log_json = json;
    log_out = out;
    if (program != NULL) {
        log_program = program;
    }
}

int pv_log_level_parse(const char *s, pv_log_level *out)
{
    for (int i = PV_LOG_DEBUG; i <= PV_LOG_OFF; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (pv_log_level)i;
            return PV_OK;
        }
    }
    return PV_ERR_INVALID_ARG;
}

bool pv_log_enabled(pv_log_level level)
{
    return level >= log_min && level < PV_LOG_OFF;
}

/* Appends s to dst as the body of a JSON string (quotes, backslash, control chars
 * escaped). Returns the new length, never past cap - 1. */
static size_t json_escape(char *dst, size_t len, size_t cap, const char *s)
{
    for (; *s != '\0' && len + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            dst[len++] = '\\';
            dst[len++] = (char)c;
        } else if (c < 0x20) {
            len += (size_t)snprintf(dst + len, cap - len, "\\u%04x", c);
        } else {
            dst[len++] = (char)c;
        }
    }
    dst[len] = '\0';
    return len;
}

void pv_log(pv_log_level level, const char *fmt, ...)
{
    if (!pv_log_enabled(level)) {
        return;
    }
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", (long)(tv.tv_usec / 1000));

    char line[4608];
    size_t len;
    if (log_json) {
        len = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"prog\":\"",
                               ts, level_names[level]);
        len = json_escape(line, len, sizeof(line), log_program);
        len += (size_t)snprintf(line + len, sizeof(line) - len, "\",\"msg\":\"");
        len = json_escape(line, len, sizeof(line) - 3, msg);
        len += (size_t)snprintf(line + len, sizeof(line) - len, "\"}\n");
    } else {
        /* Control characters in a text line could forge records: replace them. */
        for (char *p = msg; *p != '\0'; p++) {
            if ((unsigned char)*p < 0x20) {
                *p = '?';
            }
        }
        int w = snprintf(line, sizeof(line), "%s %s %s: %s\n", ts, level_names[level], log_program,
                         msg);
        len = w < 0 ? 0 : (size_t)w;
    }
    if (len >= sizeof(line)) {
        len = sizeof(line) - 1;
        line[len - 1] = '\n';
    }
    FILE *out = log_out != NULL ? log_out : stderr;
    /* One write per record so concurrent writers do not interleave within a line. */
    ssize_t unused = write(fileno(out), line, len);
    (void)unused;
}
