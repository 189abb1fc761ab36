// SPDX-License-Identifier: Apache-2.0
/* The bounded, persistent, aggregating failure queue. See failures.h. */
#include "failures.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pavise/fs.h"
#include "pavise/json.h"
#include "pavise/platform.h"

#define QUEUE_FILE_MAX (FL_MAX * 1024)

typedef struct entry {
    fl_event ev;
    uint64_t count;
    int64_t first, last;
} entry;

struct fl_queue {
    char path[4096];
    entry e[FL_MAX];
    size_t n;
};

static const char *const kind_names[] = {
    [FL_CRASH] = "crash",       [FL_SECCOMP] = "seccomp", [FL_OOM] = "oom",
    [FL_WATCHDOG] = "watchdog", [FL_EXIT] = "exit",       [FL_SETUP] = "setup",
    [FL_POLICY] = "policy",
};

const char *fl_kind_name(fl_kind k)
{
    return (k >= FL_CRASH && k <= FL_POLICY) ? kind_names[k] : "unknown";
}

static int kind_parse(const char *s, fl_kind *out)
{
    for (int k = FL_CRASH; k <= FL_POLICY; k++) {
        if (strcmp(s, kind_names[k]) == 0) {
            *out = (fl_kind)k;
            return PV_OK;
        }
    }
    return PV_ERR_FORMAT;
}

static bool same(const fl_event *a, const fl_event *b)
{
    return strcmp(a->component_id, b->component_id) == 0 && strcmp(a->version, b->version) == 0 &&
           a->kind == b->kind && a->signal == b->signal && a->code == b->code &&
           a->syscall == b->syscall && strcmp(a->detail, b->detail) == 0;
}

static json_t *entry_json(const entry *x)
{
    char first[PV_TIME_TEXT_LEN + 1] = "", last[PV_TIME_TEXT_LEN + 1] = "";
    pv_time_format(x->first, first);
    pv_time_format(x->last, last);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:i, s:i, s:I, s:I, s:s, s:s}", "componentId",
                  x->ev.component_id, "version", x->ev.version, "kind", fl_kind_name(x->ev.kind),
                  "signal", x->ev.signal, "code", x->ev.code, "count", (json_int_t)x->count,
                  "firstSeen", (json_int_t)x->first, "firstSeenText", first, "lastSeenText", last);
    if (o == NULL) {
        return NULL;
    }
    if (json_object_set_new(o, "lastSeen", json_integer(x->last)) != 0 ||
        (x->ev.syscall >= 0 &&
         json_object_set_new(o, "syscall", json_integer(x->ev.syscall)) != 0) ||
        (x->ev.detail[0] != '\0' &&
         json_object_set_new(o, "detail", json_string(x->ev.detail)) != 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int copy_text(char *dst, size_t size, const json_t *v)
{
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (s == NULL || strlen(s) >= size) {
        return PV_ERR_FORMAT;
    }
    memcpy(dst, s, strlen(s) + 1);
    return PV_OK;
}

static int entry_parse(const json_t *o, entry *x)
{
    memset(x, 0, sizeof(*x));
    x->ev.syscall = -1;
    json_t *sc = json_object_get(o, "syscall");
    json_t *det = json_object_get(o, "detail");
    const json_t *nums[] = {json_object_get(o, "signal"), json_object_get(o, "code"),
                            json_object_get(o, "count"), json_object_get(o, "firstSeen"),
                            json_object_get(o, "lastSeen")};
    for (size_t i = 0; i < 5; i++) {
        if (!json_is_integer(nums[i]) || json_integer_value(nums[i]) < (i < 2 ? INT32_MIN : 0) ||
            json_integer_value(nums[i]) > (i < 2 ? INT32_MAX : INT64_MAX)) {
            return PV_ERR_FORMAT;
        }
    }
    if (copy_text(x->ev.component_id, sizeof(x->ev.component_id),
                  json_object_get(o, "componentId")) != PV_OK ||
        copy_text(x->ev.version, sizeof(x->ev.version), json_object_get(o, "version")) != PV_OK ||
        !json_is_string(json_object_get(o, "kind")) ||
        kind_parse(json_string_value(json_object_get(o, "kind")), &x->ev.kind) != PV_OK ||
        (det != NULL && copy_text(x->ev.detail, sizeof(x->ev.detail), det) != PV_OK)) {
        return PV_ERR_FORMAT;
    }
    if (sc != NULL) {
        if (!json_is_integer(sc) || json_integer_value(sc) < 0 || json_integer_value(sc) > 4095) {
            return PV_ERR_FORMAT;
        }
        x->ev.syscall = (int)json_integer_value(sc);
    }
    x->ev.signal = (int)json_integer_value(nums[0]);
    x->ev.code = (int)json_integer_value(nums[1]);
    x->count = (uint64_t)json_integer_value(nums[2]);
    x->first = json_integer_value(nums[3]);
    x->last = json_integer_value(nums[4]);
    return PV_OK;
}

static int load(fl_queue *q, pv_err *e)
{
    json_t *root = NULL;
    int r = pv_json_load_file(q->path, QUEUE_FILE_MAX, &root, e);
    if (r == PV_ERR_NOT_FOUND) {
        return PV_OK;
    }
    json_t *events = r == PV_OK ? json_object_get(root, "events") : NULL;
    bool ok = r == PV_OK && json_is_object(root) && json_is_array(events) &&
              json_array_size(events) <= FL_MAX;
    size_t n = ok ? json_array_size(events) : 0;
    for (size_t i = 0; ok && i < n; i++) {
        ok = entry_parse(json_array_get(events, i), &q->e[i]) == PV_OK;
    }
    json_decref(root);
    if (ok) {
        q->n = n;
        return PV_OK;
    }
    /* Keep the damaged file for inspection and start again: losing the queue is better than
     * a runtime that cannot record failures. */
    q->n = 0;
    char bad[4096 + 8];
    snprintf(bad, sizeof(bad), "%s.bad", q->path);
    if (rename(q->path, bad) != 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "%s", q->path);
    }
    return PV_OK;
}

static int save(const fl_queue *q, pv_err *e)
{
    json_t *events = fl_to_json(q, NULL);
    json_t *root = events != NULL ? json_pack("{s:i, s:o}", "version", 1, "events", events) : NULL;
    char *text = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (text == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int r = pv_fs_write_file(q->path, text, strlen(text), 0600, true, e);
    free(text);
    return r;
}

int fl_open(const char *state_dir, fl_queue **out, pv_err *e)
{
    *out = NULL;
    fl_queue *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int r = PV_ERR_INVALID_ARG;
    char dir[4096];
    int n = snprintf(dir, sizeof(dir), "%s/failures", state_dir);
    int m = snprintf(q->path, sizeof(q->path), "%s/failures/queue.json", state_dir);
    if (n < 0 || (size_t)n >= sizeof(dir) || m < 0 || (size_t)m >= sizeof(q->path) - 8) {
        pv_err_set(e, r, "state directory path too long");
        goto out;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", dir);
        goto out;
    }
    if ((r = load(q, e)) != PV_OK) {
        goto out;
    }
    *out = q;
    q = NULL;
out:
    free(q);
    return r;
}

void fl_close(fl_queue *q)
{
    free(q);
}

int fl_record(fl_queue *q, const fl_event *ev, pv_err *e)
{
    int64_t now = pv_time_now();
    size_t i = 0;
    while (i < q->n && !same(&q->e[i].ev, ev)) {
        i++;
    }
    if (i == q->n) {
        if (q->n == FL_MAX) {
            size_t oldest = 0;
            for (size_t j = 1; j < q->n; j++) {
                if (q->e[j].last < q->e[oldest].last) {
                    oldest = j;
                }
            }
            memmove(&q->e[oldest], &q->e[oldest + 1], (q->n - oldest - 1) * sizeof(entry));
            q->n--;
            i = q->n;
        }
        q->e[i] = (entry){.ev = *ev, .count = 0, .first = now};
        q->n++;
    }
    q->e[i].count++;
    q->e[i].last = now;
    return save(q, e);
}

json_t *fl_to_json(const fl_queue *q, const char *component_id)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < q->n; i++) {
        if (component_id != NULL && strcmp(q->e[i].ev.component_id, component_id) != 0) {
            continue;
        }
        json_t *o = entry_json(&q->e[i]);
        if (o == NULL || json_array_append_new(a, o) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

uint64_t fl_count(const fl_queue *q, const char *component_id)
{
    uint64_t n = 0;
    for (size_t i = 0; i < q->n; i++) {
        if (component_id == NULL || strcmp(q->e[i].ev.component_id, component_id) == 0) {
            n += q->e[i].count;
        }
    }
    return n;
}
