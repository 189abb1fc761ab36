/* SPDX-License-Identifier: Apache-2.0 */
/*
 * attest-attack: the device's attestation client (src/agent) with one hostile change,
 * for tests/attacks/attest_attacks.sh. Each attack is what a compromised or cloned
 * device, or a thief holding one device's files, would try:
 *
 *   attest-attack --state DIR --server URL --ca FILE --attack A [--other DIR] [--file F]
 *     honest        no change (checks the harness itself)
 *     save          honest, and the attestation request is written to --file
 *     replay        the request in --file is sent instead of a fresh one
 *     other-nonce   the challenge is asked for the device in --other, its nonce used
 *     other-signer  the evidence is signed by the device in --other's attestation key
 *     swap-key      the CSR is for a second key, not the one the evidence binds
 *     edit-log      the OS image event's description is edited after measurement
 *     forge-image   the OS image event's digest is replaced (and the measurement with it)
 *
 * Prints `<verdict> <reason>` and exits 0 when the service answered with a verdict.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/attest.h"
#include "pavise/buf.h"
#include "pavise/devstate.h"
#include "pavise/fs.h"

#include "attest_internal.h"

typedef struct attack {
    const char *name;
    const char *file;
} attack;

static int save_request(void *ctx, pv_buf *body, pv_err *e)
{
    const attack *a = ctx;
    return pv_fs_write_file(a->file, pv_buf_data(body), pv_buf_len(body), 0600, true, e);
}

static int replay_request(void *ctx, pv_buf *body, pv_err *e)
{
    const attack *a = ctx;
    uint8_t *old = NULL;
    size_t n = 0;
    int r = pv_fs_read_file(a->file, PV_ATTEST_MAX_BODY, &old, &n, e);
    if (r == PV_OK) {
        pv_buf_reset(body);
        r = pv_buf_append(body, old, n);
    }
    free(old);
    return r;
}

static pv_rot_event *os_event(pv_evidence *ev)
{
    for (size_t i = 0; i < ev->n_events; i++) {
        if (strcmp(ev->events[i].type, "os-image") == 0) {
            return &ev->events[i];
        }
    }
    return NULL;
}

/* The log says something else than what was measured: the digests no longer replay. */
static int edit_log(void *ctx, pv_evidence *ev, pv_err *e)
{
    (void)ctx;
    pv_rot_event *o = os_event(ev);
    if (o == NULL) {
        return pv_err_set(e, PV_ERR_NOT_FOUND, "no os-image event to edit");
    }
    o->digest[0] ^= 0x01;
    return PV_OK;
}

/* A consistent lie: another OS image's digest, with the measurement recomputed to match
 * (what a device whose boot loader was replaced could claim on a software root of trust:
 * the only defence left is that the service does not know the image). */
static int forge_image(void *ctx, pv_evidence *ev, pv_err *e)
{
    (void)ctx;
    pv_rot_event *o = os_event(ev);
    if (o == NULL) {
        return pv_err_set(e, PV_ERR_NOT_FOUND, "no os-image event to forge");
    }
    memset(o->digest, 0x5a, sizeof(o->digest));
    pv_rot_replay(ev->events, ev->n_events, ev->measurement);
    for (size_t i = 0; i < ev->n_images; i++) {
        if (ev->images[i].kind == PV_EVIDENCE_IMAGE_OS) {
            memcpy(ev->images[i].manifest_digest, o->digest, sizeof(o->digest));
        }
    }
    return PV_OK;
}

static int usage(void)
{
    fprintf(stderr, "usage: attest-attack --state DIR --server URL --ca FILE --attack A "
                    "[--other DIR] [--file F]\n");
    return 2;
}

int main(int argc, char **argv)
{
    pv_attest_opts o = {0};
    attack a = {0};
    const char *other = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--state") == 0) {
            o.state_dir = argv[i + 1];
        } else if (strcmp(argv[i], "--server") == 0) {
            o.server_url = argv[i + 1];
        } else if (strcmp(argv[i], "--ca") == 0) {
            o.ca_file = argv[i + 1];
        } else if (strcmp(argv[i], "--attack") == 0) {
            a.name = argv[i + 1];
        } else if (strcmp(argv[i], "--other") == 0) {
            other = argv[i + 1];
        } else if (strcmp(argv[i], "--file") == 0) {
            a.file = argv[i + 1];
        } else {
            return usage();
        }
    }
    if (argc % 2 != 1 || o.state_dir == NULL || o.server_url == NULL || a.name == NULL) {
        return usage();
    }
    attest_hooks h = {.ctx = &a};
    pv_err e = {0};
    pv_rot *other_rot = NULL;
    char other_id[PV_DEVICE_ID_HEX_LEN + 1] = "";
    if (other != NULL && (pv_devstate_open_rot(other, NULL, NULL, &other_rot, &e) != PV_OK ||
                          pv_rot_device_id(other_rot, other_id, &e) != PV_OK)) {
        fprintf(stderr, "attest-attack: the other device: %s\n", pv_err_msg(&e));
        return 1;
    }
    if (strcmp(a.name, "save") == 0 && a.file) {
        h.edit_request = save_request;
    } else if (strcmp(a.name, "replay") == 0 && a.file) {
        h.edit_request = replay_request;
    } else if (strcmp(a.name, "other-nonce") == 0 && other_rot) {
        h.challenge_device_id = other_id;
    } else if (strcmp(a.name, "other-signer") == 0 && other_rot) {
        h.sign_rot = other_rot;
    } else if (strcmp(a.name, "swap-key") == 0) {
        h.swap_tls_key = true;
    } else if (strcmp(a.name, "edit-log") == 0) {
        h.edit_evidence = edit_log;
    } else if (strcmp(a.name, "forge-image") == 0) {
        h.edit_evidence = forge_image;
    } else if (strcmp(a.name, "honest") != 0) {
        pv_rot_close(other_rot);
        return usage();
    }
    pv_attest_result res;
    int r = attest_run(&o, &h, &res, &e);
    pv_rot_close(other_rot);
    if (r != PV_OK) {
        fprintf(stderr, "attest-attack: %s\n", pv_err_msg(&e));
        return 1;
    }
    printf("%s %s\n", pv_attest_verdict_name(res.verdict), res.reason);
    return 0;
}
