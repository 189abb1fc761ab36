/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The generic half of the root of trust: argument checks, the device ID and the event
 * log; everything that touches keys, the PCR, counters or the fuse goes to the backend.
 *
 * The event log (state_dir/rot/eventlog, docs/rot.md) is deterministic CBOR:
 *   { 1: version (1), 2: boot epoch (tstr), 3: [ [type (tstr), digest (bstr 32),
 *     data (bstr)], ... ] }
 * It is rewritten atomically after each extend. It is not trusted: a verifier replays it
 * and compares with the PCR, which the root of trust holds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unistd.h>

#include <cbor.h>

#include "pavise/cbor.h"
#include "pavise/fs.h"
#include "rot_backend.h"

#define EVENTLOG_VERSION  1
#define EVENTLOG_NAME     "eventlog"
#define EVENTLOG_MAX_FILE (PV_ROT_MAX_EVENTS * (PV_ROT_MAX_EVENT_DATA + 128) + 256)
#define EPOCH_MAX         64

struct pv_rot {
    const rot_backend_ops *ops;
    rot_backend *b;
    char *log_path;
};

static const rot_backend_ops *ops_for(pv_rot_kind k)
{
    switch (k) {
    case PV_ROT_TPM:
        return &rot_tpm_ops;
    case PV_ROT_SOFTWARE:
        return &rot_soft_ops;
    }
    return NULL;
}

int rot_private_dir(const char *state_dir, char **out, pv_err *e)
{
    *out = NULL;
    char *p = NULL;
    if (asprintf(&p, "%s/rot", state_dir) < 0) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int r = PV_ERR_INTERNAL;
    if (mkdir(state_dir, 0700) != 0 && errno != EEXIST) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "cannot create %s", state_dir);
        goto out;
    }
    bool created = mkdir(p, 0700) == 0;
    if (!created && errno != EEXIST) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "cannot create %s", p);
        goto out;
    }
    struct stat st;
    if (lstat(p, &st) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", p);
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        r = pv_err_set(e, PV_ERR_ROT, "%s is not a directory (or is a symbolic link)", p);
        goto out;
    }
    if (st.st_uid != geteuid()) {
        r = pv_err_set(e, PV_ERR_ROT, "%s is owned by uid %u, not by uid %u", p,
                       (unsigned)st.st_uid, (unsigned)geteuid());
        goto out;
    }
    /* A directory someone else could read or write may already have leaked or swapped
     * what it holds: refuse it (as OpenSSH does) rather than quietly tighten it. Only a
     * directory made here is given its mode, whatever the umask did to it. */
    if (created && chmod(p, 0700) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "cannot restrict %s", p);
        goto out;
    }
    if (!created && (st.st_mode & 077) != 0) {
        r = pv_err_set(e, PV_ERR_ROT,
                       "%s is accessible by group or others (mode %04o); it must be private "
                       "to its owner (0700)",
                       p, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    *out = p;
    p = NULL;
    r = PV_OK;
out:
    free(p);
    return r;
}

static int rot_start(const pv_rot_config *cfg, bool provision, pv_rot **out, pv_err *e)
{
    *out = NULL;
    if (cfg == NULL || cfg->state_dir == NULL || cfg->state_dir[0] == '\0') {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no state directory");
    }
    const rot_backend_ops *ops = ops_for(cfg->kind);
    if (ops == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "unknown root-of-trust kind");
    }
    if (cfg->tcti != NULL && strlen(cfg->tcti) > PV_ROT_MAX_TCTI) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "TCTI string longer than %d bytes",
                          PV_ROT_MAX_TCTI);
    }
    int r = PV_ERR_NOMEM;
    pv_rot *rot = calloc(1, sizeof(*rot));
    char *dir = NULL;
    if (rot == NULL) {
        return pv_err_set(e, r, "out of memory");
    }
    rot->ops = ops;
    r = rot_private_dir(cfg->state_dir, &dir, e);
    if (r != PV_OK) {
        goto out;
    }
    if (asprintf(&rot->log_path, "%s/%s", dir, EVENTLOG_NAME) < 0) {
        rot->log_path = NULL;
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    r = provision ? ops->provision(cfg, &rot->b, e) : ops->open(cfg, &rot->b, e);
    if (r != PV_OK) {
        goto out;
    }
    *out = rot;
    rot = NULL;
    r = PV_OK;
out:
    free(dir);
    pv_rot_close(rot);
    return r;
}

int pv_rot_provision(const pv_rot_config *cfg, pv_rot **out, pv_err *e)
{
    return rot_start(cfg, true, out, e);
}

int pv_rot_open(const pv_rot_config *cfg, pv_rot **out, pv_err *e)
{
    return rot_start(cfg, false, out, e);
}

int pv_rot_unprovision(pv_rot *rot, pv_err *e)
{
    return rot->ops->unprovision(rot->b, e);
}

void pv_rot_close(pv_rot *rot)
{
    if (rot == NULL) {
        return;
    }
    if (rot->b != NULL) {
        rot->ops->close(rot->b);
    }
    free(rot->log_path);
    free(rot);
}

pv_rot_kind pv_rot_get_kind(const pv_rot *rot)
{
    return rot->ops->kind;
}

int pv_rot_identity_key(pv_rot *rot, pv_key **out, pv_err *e)
{
    *out = NULL;
    return rot->ops->identity_key(rot->b, out, e);
}

int pv_rot_attestation_key(pv_rot *rot, pv_key **out, pv_err *e)
{
    *out = NULL;
    return rot->ops->attestation_key(rot->b, out, e);
}

int pv_device_id_of_key(const pv_key *identity, char out[PV_DEVICE_ID_HEX_LEN + 1])
{
    uint8_t id[PV_SHA256_LEN];
    int r = PV_ERR_INTERNAL;
    out[0] = '\0';
    pv_buf *spki = pv_buf_new(4096);
    if (spki == NULL) {
        return PV_ERR_NOMEM;
    }
    r = pv_key_spki_der(identity, spki);
    if (r == PV_OK) {
        r = pv_sha256_digest(pv_buf_data(spki), pv_buf_len(spki), id);
    }
    if (r == PV_OK) {
        pv_hex_encode(id, sizeof(id), out, PV_DEVICE_ID_HEX_LEN + 1);
    }
    pv_buf_free(spki);
    return r;
}

int pv_rot_device_id(pv_rot *rot, char out[PV_DEVICE_ID_HEX_LEN + 1], pv_err *e)
{
    out[0] = '\0';
    pv_key *k = NULL;
    int r = pv_rot_identity_key(rot, &k, e);
    if (r != PV_OK) {
        return r;
    }
    r = pv_device_id_of_key(k, out);
    pv_key_free(k);
    if (r != PV_OK) {
        return pv_err_set(e, r, "cannot compute the device ID");
    }
    return PV_OK;
}

int pv_rot_sign(pv_rot *rot, const void *msg, size_t len, uint8_t sig[PV_ES256_SIG_LEN], pv_err *e)
{
    if (msg == NULL && len != 0) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no message to sign");
    }
    if (len > PV_ROT_MAX_SIGN_INPUT) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "message to sign is larger than %u bytes",
                          PV_ROT_MAX_SIGN_INPUT);
    }
    return rot->ops->sign(rot->b, msg, len, sig, e);
}

int pv_rot_random(pv_rot *rot, void *out, size_t n, pv_err *e)
{
    if (n > PV_ROT_MAX_RANDOM) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "at most %d random bytes per call",
                          PV_ROT_MAX_RANDOM);
    }
    if (n == 0) {
        return PV_OK;
    }
    return rot->ops->random(rot->b, out, n, e);
}

/* ---- event log ---- */

void pv_rot_events_free(pv_rot_event *events, size_t n)
{
    if (events == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(events[i].data);
    }
    free(events);
}

void pv_rot_replay(const pv_rot_event *events, size_t n, uint8_t out[PV_SHA256_LEN])
{
    uint8_t pcr[2 * PV_SHA256_LEN];
    memset(pcr, 0, sizeof(pcr));
    for (size_t i = 0; i < n; i++) {
        memcpy(pcr + PV_SHA256_LEN, events[i].digest, PV_SHA256_LEN);
        if (pv_sha256_digest(pcr, sizeof(pcr), pcr) != PV_OK) {
            /* Only an allocation failure; a wrong value fails every comparison. */
            memset(pcr, 0xff, PV_SHA256_LEN);
        }
    }
    memcpy(out, pcr, PV_SHA256_LEN);
}

static bool event_type_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > PV_ROT_MAX_EVENT_TYPE) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            return false;
        }
    }
    return true;
}

static int log_decode_event(const cbor_item_t *it, pv_rot_event *ev, pv_err *e)
{
    const uint8_t *p = NULL;
    size_t n = 0;
    char *type = NULL;
    if (!cbor_isa_array(it) || !cbor_array_is_definite(it) || cbor_array_size(it) != 3) {
        return pv_err_set(e, PV_ERR_FORMAT, "event is not an array of 3");
    }
    cbor_item_t **v = cbor_array_handle(it);
    int r = pv_cbor_get_text(v[0], PV_ROT_MAX_EVENT_TYPE, &type, e);
    if (r != PV_OK) {
        return r;
    }
    bool ok = event_type_ok(type);
    if (ok) {
        memcpy(ev->type, type, strlen(type) + 1);
    }
    free(type);
    if (!ok) {
        return pv_err_set(e, PV_ERR_FORMAT, "bad event type");
    }
    r = pv_cbor_get_bytes(v[1], &p, &n, e);
    if (r != PV_OK) {
        return r;
    }
    if (n != PV_SHA256_LEN) {
        return pv_err_set(e, PV_ERR_FORMAT, "event digest is not 32 bytes");
    }
    memcpy(ev->digest, p, n);
    r = pv_cbor_get_bytes(v[2], &p, &n, e);
    if (r != PV_OK) {
        return r;
    }
    if (n > PV_ROT_MAX_EVENT_DATA) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "event data too large");
    }
    if (n > 0) {
        ev->data = malloc(n);
        if (ev->data == NULL) {
            return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        }
        memcpy(ev->data, p, n);
    }
    ev->data_len = n;
    return PV_OK;
}

int rot_eventlog_decode(const uint8_t *data, size_t len, const char *epoch, pv_rot_event **events,
                        size_t *n, pv_err *e)
{
    static const int64_t keys[] = {1, 2, 3};
    cbor_item_t *root = NULL;
    pv_rot_event *ev = NULL;
    size_t count = 0;
    char *file_epoch = NULL;
    uint64_t version = 0;
    *events = NULL;
    *n = 0;
    if (len > EVENTLOG_MAX_FILE) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "larger than %d bytes", EVENTLOG_MAX_FILE);
    }
    int r = pv_cbor_decode(data, len, &root, e);
    if (r != PV_OK) {
        goto out;
    }
    r = PV_ERR_FORMAT;
    if (!cbor_isa_map(root)) {
        pv_err_set(e, r, "not a map");
        goto out;
    }
    r = pv_cbor_map_check_keys(root, keys, 3, e);
    if (r == PV_OK) {
        r = pv_cbor_get_uint(pv_cbor_map_get(root, 1), &version, e);
    }
    if (r == PV_OK && version != EVENTLOG_VERSION) {
        r = pv_err_set(e, PV_ERR_UNSUPPORTED, "version %llu", (unsigned long long)version);
    }
    if (r == PV_OK) {
        r = pv_cbor_get_text(pv_cbor_map_get(root, 2), EPOCH_MAX, &file_epoch, e);
    }
    if (r != PV_OK) {
        goto out;
    }
    if (strcmp(file_epoch, epoch) != 0) {
        r = PV_OK; /* from an earlier boot */
        goto out;
    }
    cbor_item_t *arr = pv_cbor_map_get(root, 3);
    if (arr == NULL || !cbor_isa_array(arr) || !cbor_array_is_definite(arr)) {
        r = pv_err_set(e, PV_ERR_FORMAT, "no event array");
        goto out;
    }
    size_t total = cbor_array_size(arr);
    if (total > PV_ROT_MAX_EVENTS) {
        r = pv_err_set(e, PV_ERR_TOO_LARGE, "more than %d events", PV_ROT_MAX_EVENTS);
        goto out;
    }
    ev = calloc(total + 1, sizeof(*ev));
    if (ev == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (count = 0; count < total; count++) {
        r = log_decode_event(cbor_array_handle(arr)[count], &ev[count], e);
        if (r != PV_OK) {
            count++; /* free what this entry may hold */
            pv_err_wrap(e, r, "event %zu", count - 1);
            goto out;
        }
    }
    *events = ev;
    *n = count;
    ev = NULL;
    r = PV_OK;
out:
    pv_rot_events_free(ev, count);
    free(file_epoch);
    if (root != NULL) {
        cbor_decref(&root);
    }
    return r;
}

/* Reads the log. A log of another epoch is from an earlier boot and reads as empty, as
 * does a missing log. */
static int log_load(pv_rot *rot, const char *epoch, pv_rot_event **events, size_t *n, pv_err *e)
{
    uint8_t *data = NULL;
    size_t len = 0;
    *events = NULL;
    *n = 0;
    int r = pv_fs_read_file(rot->log_path, EVENTLOG_MAX_FILE, &data, &len, e);
    if (r == PV_ERR_NOT_FOUND) {
        return PV_OK;
    }
    if (r == PV_OK) {
        r = rot_eventlog_decode(data, len, epoch, events, n, e);
    }
    free(data);
    return r == PV_OK ? r : pv_err_wrap(e, r, "event log %s", rot->log_path);
}

static int log_store(pv_rot *rot, const char *epoch, const pv_rot_event *ev, size_t n, pv_err *e)
{
    pv_buf *out = pv_buf_new(EVENTLOG_MAX_FILE);
    if (out == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    pv_cbor_enc enc;
    pv_cbor_enc_init(&enc, out);
    pv_cbor_put_map(&enc, 3);
    pv_cbor_put_uint(&enc, 1);
    pv_cbor_put_uint(&enc, EVENTLOG_VERSION);
    pv_cbor_put_uint(&enc, 2);
    pv_cbor_put_text(&enc, epoch);
    pv_cbor_put_uint(&enc, 3);
    pv_cbor_put_array(&enc, n);
    for (size_t i = 0; i < n; i++) {
        pv_cbor_put_array(&enc, 3);
        pv_cbor_put_text(&enc, ev[i].type);
        pv_cbor_put_bytes(&enc, ev[i].digest, PV_SHA256_LEN);
        pv_cbor_put_bytes(&enc, ev[i].data, ev[i].data_len);
    }
    int r = pv_cbor_enc_result(&enc);
    if (r != PV_OK) {
        r = pv_err_set(e, r, "cannot encode the event log");
    } else {
        /* No fsync: the log describes this boot's PCR only; after a power cut the PCR reads
         * zero and the log starts again whatever survived (log_current). */
        r = pv_fs_replace_boot_data(rot->log_path, pv_buf_data(out), pv_buf_len(out), 0600, e);
    }
    pv_buf_free(out);
    return r;
}

/* This boot's log: empty when the epoch changed, and also when the PCR reads zero, which
 * no extend can produce (a TPM Restart clears the PCRs without a new reset count). */
static int log_current(pv_rot *rot, char epoch[EPOCH_MAX + 1], pv_rot_event **events, size_t *n,
                       pv_err *e)
{
    static const uint8_t zero[PV_SHA256_LEN];
    uint8_t pcr[PV_SHA256_LEN];
    *events = NULL;
    *n = 0;
    int r = rot->ops->boot_epoch(rot->b, epoch, e);
    if (r == PV_OK) {
        r = rot->ops->pcr_read(rot->b, pcr, e);
    }
    if (r != PV_OK || memcmp(pcr, zero, sizeof(zero)) == 0) {
        return r;
    }
    return log_load(rot, epoch, events, n, e);
}

static int extend_locked(pv_rot *rot, const char *type, const uint8_t digest[PV_SHA256_LEN],
                         const void *data, size_t data_len, pv_err *e)
{
    char epoch[EPOCH_MAX + 1];
    pv_rot_event *ev = NULL;
    size_t n = 0;
    if (type == NULL || !event_type_ok(type)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "event type must be 1-%d of [a-z0-9-]",
                          PV_ROT_MAX_EVENT_TYPE);
    }
    if (digest == NULL || (data == NULL && data_len != 0)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no digest or no event data");
    }
    if (data_len > PV_ROT_MAX_EVENT_DATA) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "event data larger than %d bytes",
                          PV_ROT_MAX_EVENT_DATA);
    }
    int r = log_current(rot, epoch, &ev, &n, e);
    if (r != PV_OK) {
        return r;
    }
    if (n >= PV_ROT_MAX_EVENTS) {
        r = pv_err_set(e, PV_ERR_TOO_LARGE, "the event log is full (%d events)", PV_ROT_MAX_EVENTS);
        goto out;
    }
    pv_rot_event *grown = realloc(ev, (n + 1) * sizeof(*ev));
    if (grown == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    ev = grown;
    memset(&ev[n], 0, sizeof(ev[n]));
    memcpy(ev[n].type, type, strlen(type) + 1);
    memcpy(ev[n].digest, digest, PV_SHA256_LEN);
    if (data_len > 0) {
        ev[n].data = malloc(data_len);
        if (ev[n].data == NULL) {
            r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
            n++;
            goto out;
        }
        memcpy(ev[n].data, data, data_len);
        ev[n].data_len = data_len;
    }
    n++;
    /* The PCR first: a crash in between leaves the log one event short, which a verifier
     * sees as a mismatch; the other order would let a log claim an event the PCR never
     * saw. */
    r = rot->ops->pcr_extend(rot->b, digest, e);
    if (r == PV_OK) {
        r = log_store(rot, epoch, ev, n, e);
    }
out:
    pv_rot_events_free(ev, n);
    return r;
}

/* Read log, extend, write log is one step: two processes measuring at once must not
 * lose an event, so it runs under an exclusive lock on rot/eventlog.lock. */
int pv_rot_extend(pv_rot *rot, const char *type, const uint8_t digest[PV_SHA256_LEN],
                  const void *data, size_t data_len, pv_err *e)
{
    char *lock_path = NULL;
    if (asprintf(&lock_path, "%s.lock", rot->log_path) < 0) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    int r;
    if (fd < 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s", lock_path);
    } else if (flock(fd, LOCK_EX) != 0) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "%s: lock", lock_path);
    } else {
        r = extend_locked(rot, type, digest, data, data_len, e);
    }
    if (fd >= 0) {
        close(fd); /* releases the lock */
    }
    free(lock_path);
    return r;
}

int pv_rot_read_measurement(pv_rot *rot, uint8_t out[PV_SHA256_LEN], pv_err *e)
{
    return rot->ops->pcr_read(rot->b, out, e);
}

int pv_rot_event_log(pv_rot *rot, pv_rot_event **events, size_t *n, pv_err *e)
{
    char epoch[EPOCH_MAX + 1];
    return log_current(rot, epoch, events, n, e);
}

/* ---- counters ---- */

int pv_rot_counter_read(pv_rot *rot, unsigned id, uint64_t *value, pv_err *e)
{
    *value = 0;
    if (id >= PV_ROT_COUNTERS) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no counter %u (0-%d)", id, PV_ROT_COUNTERS - 1);
    }
    return rot->ops->counter_read(rot->b, id, value, e);
}

int pv_rot_counter_advance(pv_rot *rot, unsigned id, uint64_t to, pv_err *e)
{
    uint64_t cur = 0;
    int r = pv_rot_counter_read(rot, id, &cur, e);
    if (r != PV_OK) {
        return r;
    }
    if (to < cur) {
        return pv_err_set(e, PV_ERR_ROLLBACK, "counter %u is at %llu; it cannot go back to %llu",
                          id, (unsigned long long)cur, (unsigned long long)to);
    }
    if (to == cur) {
        return PV_OK;
    }
    if (to - cur > PV_ROT_MAX_COUNTER_STEP) {
        return pv_err_set(e, PV_ERR_TOO_LARGE,
                          "counter %u is at %llu; one advance may add at most %d", id,
                          (unsigned long long)cur, PV_ROT_MAX_COUNTER_STEP);
    }
    return rot->ops->counter_advance(rot->b, id, to, e);
}

/* ---- trust anchor ---- */

int pv_rot_fuse_trust_anchor(pv_rot *rot, const uint8_t hash[PV_SHA256_LEN], pv_err *e)
{
    return rot->ops->fuse_trust_anchor(rot->b, hash, e);
}

int pv_rot_trust_anchor(pv_rot *rot, uint8_t hash[PV_SHA256_LEN], pv_err *e)
{
    return rot->ops->trust_anchor(rot->b, hash, e);
}

/* ---- TPM enrollment ---- */

static int unsupported(const pv_rot *rot, pv_err *e)
{
    return pv_err_set(e, PV_ERR_UNSUPPORTED, "the %s root of trust has no endorsement key",
                      pv_rot_kind_name(rot->ops->kind));
}

int pv_rot_ek_certificate(pv_rot *rot, pv_buf *der, pv_err *e)
{
    if (rot->ops->ek_certificate == NULL) {
        return unsupported(rot, e);
    }
    return rot->ops->ek_certificate(rot->b, der, e);
}

int pv_rot_attestation_key_tpm_public(pv_rot *rot, pv_buf *out, pv_err *e)
{
    if (rot->ops->attestation_key_tpm_public == NULL) {
        return unsupported(rot, e);
    }
    return rot->ops->attestation_key_tpm_public(rot->b, out, e);
}

int pv_rot_activate_credential(pv_rot *rot, const uint8_t *credential_blob, size_t blob_len,
                               const uint8_t *secret, size_t secret_len, pv_buf *out, pv_err *e)
{
    if (rot->ops->activate_credential == NULL) {
        return unsupported(rot, e);
    }
    if (credential_blob == NULL || secret == NULL || blob_len == 0 || secret_len == 0) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "empty credential");
    }
    if (blob_len > 1024 || secret_len > 1024) {
        return pv_err_set(e, PV_ERR_TOO_LARGE, "credential larger than 1024 bytes");
    }
    return rot->ops->activate_credential(rot->b, credential_blob, blob_len, secret, secret_len, out,
                                         e);
}

/* ---- quotes ---- */

int pv_rot_quote(pv_rot *rot, const uint8_t qualifying[PV_SHA256_LEN], pv_buf *attest,
                 uint8_t sig[PV_ES256_SIG_LEN], pv_err *e)
{
    if (sig != NULL) {
        memset(sig, 0, PV_ES256_SIG_LEN);
    }
    if (rot->ops->quote == NULL) {
        /* Only a TPM's quote proves anything: a signature by the software backend's key
         * over its own PCR would be a claim, which the evidence already makes. */
        return pv_err_set(e, PV_ERR_UNSUPPORTED, "the %s root of trust cannot make a TPM quote",
                          pv_rot_kind_name(rot->ops->kind));
    }
    if (qualifying == NULL || attest == NULL || sig == NULL) {
        return pv_err_set(e, PV_ERR_INVALID_ARG, "no qualifying data or no room for the quote");
    }
    return rot->ops->quote(rot->b, qualifying, attest, sig, e);
}
