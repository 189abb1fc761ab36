/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavise-device: the device-side tool for the factory and for inspection.
 *   pavise-device manufacture --state DIR --rot tpm|software [--tcti TCTI]
 *                 --trust-anchor update-root.crt --factory-key F.key --factory-cert F.crt
 *   pavise-device show --state DIR [--output json]
 *   pavise-device advance-counter --state DIR --counter os|N --to VALUE
 *   pavise-device attest --state DIR --server URL [--ca FILE] [--tcti TCTI] [--development]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/x509v3.h>

#include "cli.h"
#include "pavise/attest.h"
#include "pavise/devstate.h"
#include "pavise/fs.h"
#include "pavise/json.h"
#include "pavise/log.h"
#include "pavise/mfgrec.h"
#include "pavise/platform.h"
#include "pavise/rot.h"

#ifndef PAVISE_VERSION
#define PAVISE_VERSION "0.1.0"
#endif

/* The update root: exactly one CA certificate. Its public key's hash is what is fused. */
static int load_update_root(const char *path, pv_chain **out, uint8_t hash[PV_SHA256_LEN],
                            pv_err *e)
{
    pv_chain *c = NULL;
    int r = pv_chain_load_pem(path, &c, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "--trust-anchor %s", path);
    }
    if (pv_chain_count(c) != 1) {
        r = pv_err_set(e, PV_ERR_FORMAT, "--trust-anchor %s must hold exactly one certificate",
                       path);
    } else if (X509_check_ca(pv_cert_x509(pv_chain_get(c, 0))) != 1) {
        r = pv_err_set(e, PV_ERR_FORMAT, "--trust-anchor %s is not a CA certificate", path);
    } else {
        r = pv_trust_anchor_hash(pv_chain_get(c, 0), hash, e);
    }
    if (r != PV_OK) {
        pv_chain_free(c);
        return r;
    }
    *out = c;
    return PV_OK;
}

static int load_factory(const cli_cmd *cmd, const cli_args *args, pv_key **key, pv_chain **chain,
                        pv_err *e)
{
    const char *key_path = cli_get(cmd, args, "factory-key");
    const char *cert_path = cli_get(cmd, args, "factory-cert");
    pv_key *cert_key = NULL;
    int r = pv_key_load_private_pem(key_path, key, e);
    if (r == PV_OK) {
        r = pv_chain_load_pem(cert_path, chain, e);
    }
    if (r == PV_OK) {
        r = pv_cert_public_key(pv_chain_get(*chain, 0), &cert_key, e);
    }
    if (r == PV_OK && !pv_key_equal_public(*key, cert_key)) {
        r = pv_err_set(e, PV_ERR_INVALID_ARG, "--factory-cert %s is not for --factory-key %s",
                       cert_path, key_path);
    }
    pv_key_free(cert_key);
    return r;
}

static int save_update_root(const char *state, const pv_chain *root, pv_err *e)
{
    char *dir = pv_devstate_path(state, "trust");
    char *path = pv_devstate_path(state, PV_DEVSTATE_UPDATE_ROOT);
    int r = PV_ERR_NOMEM;
    if (dir == NULL || path == NULL) {
        pv_err_set(e, r, "out of memory");
    } else if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        r = pv_err_sys(e, PV_ERR_IO, errno, "cannot create %s", dir);
    } else {
        r = pv_chain_save_pem(root, path, false, e);
    }
    free(dir);
    free(path);
    return r;
}

/* Fills the manufacturing record from the root of trust. */
static int build_record(pv_rot *rot, const uint8_t anchor[PV_SHA256_LEN], pv_mfgrec *rec, pv_err *e)
{
    rec->version = PV_MFGREC_VERSION;
    rec->rot_kind = pv_rot_get_kind(rot);
    rec->manufactured_at = pv_time_now();
    memcpy(rec->trust_anchor, anchor, PV_SHA256_LEN);
    int r = pv_rot_identity_key(rot, &rec->identity_key, e);
    if (r == PV_OK) {
        r = pv_rot_attestation_key(rot, &rec->attestation_key, e);
    }
    if (r == PV_OK) {
        r = pv_rot_device_id(rot, rec->device_id, e);
    }
    if (r != PV_OK) {
        return r;
    }
    /* Only a TPM has an endorsement key; the software backend says so. */
    pv_buf *ek = pv_buf_new(PV_CERT_MAX_DER);
    pv_buf *akpub = pv_buf_new(1024);
    if (ek == NULL || akpub == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    } else if ((r = pv_rot_ek_certificate(rot, ek, e)) == PV_OK &&
               (r = pv_rot_attestation_key_tpm_public(rot, akpub, e)) == PV_OK) {
        rec->ek_cert_der = pv_buf_steal(ek, &rec->ek_cert_len);
        rec->ak_tpm_public = pv_buf_steal(akpub, &rec->ak_tpm_public_len);
        if (rec->ek_cert_der == NULL || rec->ak_tpm_public == NULL) {
            r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        }
    } else if (r == PV_ERR_UNSUPPORTED) {
        r = PV_OK;
    }
    pv_buf_free(ek);
    pv_buf_free(akpub);
    return r;
}

/* The manufacturing record, built and signed in memory (nothing is written yet). */
static int sign_record(pv_rot *rot, const uint8_t anchor[PV_SHA256_LEN], const pv_key *fkey,
                       const pv_chain *fchain, pv_buf *out,
                       char device_id[PV_DEVICE_ID_HEX_LEN + 1], pv_err *e)
{
    pv_mfgrec rec;
    memset(&rec, 0, sizeof(rec));
    int r = build_record(rot, anchor, &rec, e);
    if (r == PV_OK) {
        r = pv_mfgrec_sign(&rec, fkey, fchain, out, e);
    }
    if (r == PV_OK) {
        memcpy(device_id, rec.device_id, sizeof(rec.device_id));
    }
    pv_mfgrec_free(&rec);
    return r == PV_OK ? r : pv_err_wrap(e, r, "manufacturing record");
}

/* Nothing of a device may be in the state directory yet. */
static int check_fresh(const char *state, pv_err *e)
{
    static const char *const files[] = {PV_DEVSTATE_CONFIG, PV_DEVSTATE_UPDATE_ROOT,
                                        PV_DEVSTATE_MFG_RECORD};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *path = pv_devstate_path(state, files[i]);
        if (path == NULL) {
            return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        }
        struct stat st;
        bool exists = lstat(path, &st) == 0 || errno != ENOENT;
        free(path);
        if (exists) {
            return pv_err_set(e, PV_ERR_EXISTS, "%s already holds a manufactured device (%s)",
                              state, files[i]);
        }
    }
    return PV_OK;
}

static int write_outputs(const char *state, const pv_chain *root, const pv_buf *record,
                         const pv_devstate *st, pv_err *e)
{
    char *path = pv_devstate_path(state, PV_DEVSTATE_MFG_RECORD);
    if (path == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    int r = save_update_root(state, root, e);
    if (r == PV_OK) {
        r = pv_fs_write_file(path, pv_buf_data(record), pv_buf_len(record), 0644, false, e);
        if (r != PV_OK) {
            pv_err_wrap(e, r, "%s", path);
        }
    }
    /* Last: device.conf marks the device as manufactured. */
    if (r == PV_OK) {
        r = pv_devstate_save(state, st, e);
    }
    free(path);
    return r;
}

static int manufacture(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    const char *state = cli_get(cmd, args, "state");
    const char *tcti = cli_get(cmd, args, "tcti");
    uint8_t anchor[PV_SHA256_LEN];
    char anchor_hex[2 * PV_SHA256_LEN + 1], device_id[PV_DEVICE_ID_HEX_LEN + 1];
    pv_devstate st;
    memset(&st, 0, sizeof(st));
    pv_chain *root = NULL, *fchain = NULL;
    pv_key *fkey = NULL;
    pv_rot *rot = NULL;
    pv_buf *record = NULL;
    bool fused = false;
    int r = PV_ERR_INTERNAL;

    if (pv_rot_kind_parse(cli_get(cmd, args, "rot"), &st.kind) != PV_OK) {
        return pv_err_set(e, PV_ERR_USAGE, "--rot is tpm or software");
    }
    if (tcti != NULL && st.kind != PV_ROT_TPM) {
        return pv_err_set(e, PV_ERR_USAGE, "--tcti is for --rot tpm");
    }
    if (tcti != NULL && strlen(tcti) > PV_ROT_MAX_TCTI) {
        return pv_err_set(e, PV_ERR_USAGE, "--tcti is longer than %d bytes", PV_ROT_MAX_TCTI);
    }
    if (tcti != NULL) {
        memcpy(st.tcti, tcti, strlen(tcti) + 1);
    }
    if ((r = check_fresh(state, e)) != PV_OK ||
        (r = load_update_root(cli_get(cmd, args, "trust-anchor"), &root, anchor, e)) != PV_OK ||
        (r = load_factory(cmd, args, &fkey, &fchain, e)) != PV_OK) {
        goto out;
    }
    if ((record = pv_buf_new(PV_MFGREC_MAX_SIZE)) == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    pv_rot_config cfg = {.kind = st.kind, .state_dir = state, .tcti = tcti};
    if ((r = pv_rot_provision(&cfg, &rot, e)) != PV_OK) {
        pv_err_wrap(e, r, "creating the device identity in the %s root of trust",
                    pv_rot_kind_name(st.kind));
        goto out;
    }
    /* Everything that can fail for a reason of this device (no EK certificate, say) comes
     * before the fuse, so that the identity can still be taken back and the run retried. */
    if ((r = sign_record(rot, anchor, fkey, fchain, record, device_id, e)) != PV_OK) {
        goto out;
    }
    if ((r = pv_rot_fuse_trust_anchor(rot, anchor, e)) != PV_OK) {
        pv_err_wrap(e, r, "fusing the trust anchor");
        goto out;
    }
    fused = true;
    if ((r = write_outputs(state, root, record, &st, e)) != PV_OK) {
        goto out;
    }
    pv_hex_encode(anchor, sizeof(anchor), anchor_hex, sizeof(anchor_hex));
    char *record_path = pv_devstate_path(state, PV_DEVSTATE_MFG_RECORD);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s?}", "deviceId", device_id, "rot", pv_rot_kind_name(st.kind),
                  "trustAnchor", anchor_hex, "manufacturingRecord", record_path);
    free(record_path);
    static const char *const fields[] = {"deviceId",
                                         "Device ID:",
                                         "rot",
                                         "Root of trust:",
                                         "trustAnchor",
                                         "Trust anchor:",
                                         "manufacturingRecord",
                                         "Record:",
                                         NULL};
    r = cli_print_object(args->json, o, fields);
out:
    if (r != PV_OK && rot != NULL && !fused) {
        pv_err undo;
        if (pv_rot_unprovision(rot, &undo) != PV_OK) {
            pv_warn("could not take the new identity back: %s", pv_err_msg(&undo));
        }
    }
    pv_buf_free(record);
    pv_rot_close(rot);
    pv_key_free(fkey);
    pv_chain_free(fchain);
    pv_chain_free(root);
    return r;
}

/* ---- show ---- */

static json_t *event_json(const pv_rot_event *ev)
{
    char hex[2 * PV_SHA256_LEN + 1];
    pv_hex_encode(ev->digest, PV_SHA256_LEN, hex, sizeof(hex));
    json_t *o = json_pack("{s:s, s:s}", "type", ev->type, "digest", hex);
    if (o != NULL && ev->data_len > 0) {
        json_t *d = json_stringn((const char *)ev->data, ev->data_len);
        if (d == NULL) { /* not UTF-8: show it as hex */
            char *h = malloc(2 * ev->data_len + 1);
            if (h != NULL) {
                pv_hex_encode(ev->data, ev->data_len, h, 2 * ev->data_len + 1);
                d = json_string(h);
                free(h);
            }
        }
        json_object_set_new(o, "data", d);
    }
    return o;
}

static json_t *device_json(pv_rot *rot, pv_err *e)
{
    char device_id[PV_DEVICE_ID_HEX_LEN + 1], hex[2 * PV_SHA256_LEN + 1];
    uint8_t anchor[PV_SHA256_LEN], pcr[PV_SHA256_LEN], replay[PV_SHA256_LEN];
    pv_rot_event *ev = NULL;
    size_t n = 0;
    json_t *o = NULL, *counters = NULL, *events = NULL;
    int r = pv_rot_device_id(rot, device_id, e);
    if (r != PV_OK) {
        return NULL;
    }
    o = json_pack("{s:s, s:s}", "deviceId", device_id, "rot",
                  pv_rot_kind_name(pv_rot_get_kind(rot)));
    counters = json_object();
    events = json_array();
    if (o == NULL || counters == NULL || events == NULL) {
        pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    r = pv_rot_trust_anchor(rot, anchor, e);
    if (r == PV_OK) {
        pv_hex_encode(anchor, sizeof(anchor), hex, sizeof(hex));
        json_object_set_new(o, "trustAnchor", json_string(hex));
    } else if (r == PV_ERR_NOT_FOUND) {
        json_object_set_new(o, "trustAnchor", json_string("not fused"));
    } else {
        goto fail;
    }
    for (unsigned i = 0; i < PV_ROT_COUNTERS; i++) {
        uint64_t v = 0;
        char name[16];
        if (pv_rot_counter_read(rot, i, &v, e) != PV_OK) {
            goto fail;
        }
        snprintf(name, sizeof(name), i == PV_ROT_COUNTER_OS ? "os" : "%u", i);
        json_object_set_new(counters, name, json_integer((json_int_t)v));
    }
    if (pv_rot_read_measurement(rot, pcr, e) != PV_OK ||
        pv_rot_event_log(rot, &ev, &n, e) != PV_OK) {
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(events, event_json(&ev[i]));
    }
    pv_rot_replay(ev, n, replay);
    pv_hex_encode(pcr, sizeof(pcr), hex, sizeof(hex));
    json_object_set_new(o, "counters", counters);
    json_object_set_new(o, "pcr", json_integer(PV_ROT_PCR));
    json_object_set_new(o, "measurement", json_string(hex));
    json_object_set_new(o, "eventLogReplays", json_boolean(pv_ct_equal(pcr, replay, sizeof(pcr))));
    json_object_set_new(o, "events", events);
    pv_rot_events_free(ev, n);
    return o;
fail:
    pv_rot_events_free(ev, n);
    json_decref(o);
    json_decref(counters);
    json_decref(events);
    return NULL;
}

static void print_device_table(const json_t *o)
{
    printf("Device ID:        %s\n", json_string_value(json_object_get(o, "deviceId")));
    printf("Root of trust:    %s\n", json_string_value(json_object_get(o, "rot")));
    printf("Trust anchor:     %s\n", json_string_value(json_object_get(o, "trustAnchor")));
    printf("Counters:        ");
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(o, "counters"), k, v)
    {
        printf(" %s=%lld", k, (long long)json_integer_value(v));
    }
    printf("\nMeasurement:      PCR %lld = %s\n",
           (long long)json_integer_value(json_object_get(o, "pcr")),
           json_string_value(json_object_get(o, "measurement")));
    printf("Event log:        %s\n", json_is_true(json_object_get(o, "eventLogReplays"))
                                         ? "replays to the PCR"
                                         : "DOES NOT replay to the PCR");
    size_t i;
    json_array_foreach(json_object_get(o, "events"), i, v)
    {
        printf("  %2zu %-12s %s ", i, json_string_value(json_object_get(v, "type")),
               json_string_value(json_object_get(v, "digest")));
        const char *d = json_string_value(json_object_get(v, "data"));
        cli_put_escaped(stdout, d != NULL ? d : "");
        putchar('\n');
    }
}

static int show(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    pv_rot *rot = NULL;
    int r = pv_devstate_open_rot(cli_get(cmd, args, "state"), NULL, cli_get(cmd, args, "tcti"),
                                 &rot, e);
    if (r != PV_OK) {
        return r;
    }
    json_t *o = device_json(rot, e);
    pv_rot_close(rot);
    if (o == NULL) {
        return e->code != PV_OK ? e->code : PV_ERR_NOMEM;
    }
    if (args->json) {
        r = pv_json_print(o);
    } else {
        print_device_table(o);
        r = PV_OK;
    }
    json_decref(o);
    return r;
}

/* ---- advance-counter ---- */

static int advance_counter(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    const char *which = cli_get(cmd, args, "counter");
    uint64_t id = 0, to = 0, now = 0;
    if (strcmp(which, "os") == 0) {
        id = PV_ROT_COUNTER_OS;
    } else if (cli_parse_uint(which, "--counter", PV_ROT_COUNTERS - 1, &id, e) != PV_OK) {
        return pv_err_set(e, PV_ERR_USAGE, "--counter is os or 0-%d", PV_ROT_COUNTERS - 1);
    }
    if (cli_parse_uint(cli_get(cmd, args, "to"), "--to", INT64_MAX, &to, e) != PV_OK) {
        return PV_ERR_USAGE;
    }
    pv_rot *rot = NULL;
    int r = pv_devstate_open_rot(cli_get(cmd, args, "state"), NULL, cli_get(cmd, args, "tcti"),
                                 &rot, e);
    if (r == PV_OK) {
        r = pv_rot_counter_advance(rot, (unsigned)id, to, e);
    }
    if (r == PV_OK) {
        r = pv_rot_counter_read(rot, (unsigned)id, &now, e);
    }
    pv_rot_close(rot);
    if (r != PV_OK) {
        return r;
    }
    json_t *o = json_pack("{s:s, s:I}", "counter", which, "value", (json_int_t)now);
    static const char *const fields[] = {"counter", "Counter:", "value", "Value:", NULL};
    return cli_print_object(args->json, o, fields);
}

/* ---- attest ---- */

static json_t *time_json(int64_t t)
{
    char s[PV_TIME_TEXT_LEN + 1];
    return t > 0 && pv_time_format(t, s) ? json_string(s) : json_null();
}

static int attest(const cli_cmd *cmd, const cli_args *args, pv_err *e)
{
    pv_attest_opts o = {
        .state_dir = cli_get(cmd, args, "state"),
        .server_url = cli_get(cmd, args, "server"),
        .ca_file = cli_get(cmd, args, "ca"),
        .tcti = cli_get(cmd, args, "tcti"),
        .development = cli_flag(cmd, args, "development"),
    };
    pv_attest_result res;
    int r = pv_attest_run(&o, &res, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "attestation");
    }
    char *certs = pv_devstate_path(o.state_dir, PV_ATTEST_CERTS_DIR);
    json_t *obj = json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:s?}", "deviceId", res.device_id, "rot",
        pv_rot_kind_name(res.rot_kind), "result", pv_attest_verdict_name(res.verdict), "reason",
        res.reason, "at", time_json(res.at), "serviceNotAfter", time_json(res.service_not_after),
        "clientNotAfter", time_json(res.client_not_after), "certificates", certs);
    free(certs);
    static const char *const fields[] = {"deviceId",
                                         "Device ID:",
                                         "rot",
                                         "Root of trust:",
                                         "result",
                                         "Result:",
                                         "reason",
                                         "Reason:",
                                         "at",
                                         "At:",
                                         "serviceNotAfter",
                                         "Service cert until:",
                                         "clientNotAfter",
                                         "Client cert until:",
                                         "certificates",
                                         "Certificates:",
                                         NULL};
    if ((r = cli_print_object(args->json, obj, fields)) != PV_OK) {
        return r;
    }
    /* Only a pass leaves the device with a client certificate: anything else is a
     * refusal by the service, which scripts must be able to tell from success. */
    if (res.verdict != PV_ATTEST_PASSED) {
        return pv_err_set(e, CLI_ERR_DENIED, "the service did not pass this device: %s%s%s",
                          pv_attest_verdict_name(res.verdict), res.reason[0] != '\0' ? ": " : "",
                          res.reason);
    }
    return PV_OK;
}

/* ---- dispatch ---- */

static const cli_opt manufacture_opts[] = {
    {"state", "DIR", true, "the device state directory to create"},
    {"rot", "KIND", true, "the root of trust: tpm or software"},
    {"tcti", "TCTI", false, "TPM connection, e.g. device:/dev/tpmrm0 (default: tpm2-tss's)"},
    {"trust-anchor", "CERT", true, "the update root certificate whose key hash is fused"},
    {"factory-key", "FILE", true, "the factory's signing key (PEM)"},
    {"factory-cert", "FILE", true, "the factory's certificate, optionally with intermediates"},
    {NULL, NULL, false, NULL},
};

static const cli_opt show_opts[] = {
    {"state", "DIR", true, "the device state directory"},
    {"tcti", "TCTI", false, "TPM connection (default: device.conf, $PAVISE_TCTI)"},
    {NULL, NULL, false, NULL},
};

static const cli_opt advance_opts[] = {
    {"state", "DIR", true, "the device state directory"},
    {"counter", "ID", true, "os, or a counter number 0-7"},
    {"to", "N", true, "the new value; counters never go back"},
    {"tcti", "TCTI", false, "TPM connection (default: device.conf, $PAVISE_TCTI)"},
    {NULL, NULL, false, NULL},
};

static const cli_opt attest_opts[] = {
    {"state", "DIR", true, "the device state directory"},
    {"server", "URL", true, "the Security Service, https://host[:port]"},
    {"ca", "FILE", false, "the service CA (default: DIR/certs/service-ca.crt from before)"},
    {"tcti", "TCTI", false, "TPM connection (default: device.conf, $PAVISE_TCTI)"},
    {"development", NULL, false, "report development mode (dbgstat enabled)"},
    {NULL, NULL, false, NULL},
};

static const cli_cmd cmds[] = {
    {NULL, "manufacture",
     "Create the device identity in the root of trust and fuse the trust anchor",
     "Generates the identity and attestation keys inside the root of trust (they never leave a "
     "TPM), creates the anti-rollback counters, fuses the hash of the update root's public key "
     "(write-once), and writes a manufacturing record signed by the factory key. Done once per "
     "device.",
     manufacture_opts, true, manufacture},
    {NULL, "show", "Show the device ID, root of trust, counters and measurements", NULL, show_opts,
     true, show},
    {NULL, "advance-counter", "Raise an anti-rollback counter",
     "Sets an anti-rollback floor, for instance at the factory. A counter never goes back: a "
     "lower value is refused.",
     advance_opts, true, advance_counter},
    {NULL, "attest", "Attest to the Security Service and keep the certificates it issues",
     "Asks the service for a challenge, makes a new TLS key (inside the TPM on a TPM device), "
     "sends evidence signed by the root of trust and a certificate request, and stores the "
     "service certificate and, when policy passed, the client certificate and tenant CA chain "
     "under DIR/certs. Exit code 0 only when the device passed; 4 when the service refused "
     "it or issued the service certificate only.",
     attest_opts, true, attest},
    {NULL, NULL, NULL, NULL, NULL, false, NULL},
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: pavise-device [--log-level debug|info|warn|error] <command> [options]\n\n"
            "The device's root of trust: manufacture, inspection and attestation.\n\nCommands:\n");
    for (const cli_cmd *c = cmds; c->name != NULL; c++) {
        fprintf(out, "  %-18s %s\n", c->name, c->summary);
    }
    fprintf(out, "\nRun 'pavise-device <command> --help' for its options.\n"
                 "Exit codes: 0 success, 1 failure, 2 usage error, 3 input rejected.\n");
}

int main(int argc, char **argv)
{
    pv_log_level level = PV_LOG_WARN;
    int i = 1;
    cli_program = "pavise-device";
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("pavise-device %s\n", PAVISE_VERSION);
            return CLI_EXIT_OK;
        } else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc &&
                   pv_log_level_parse(argv[i + 1], &level) == PV_OK) {
            i++;
        } else {
            fprintf(stderr, "pavise-device: unknown or incomplete option '%s'\n", argv[i]);
            return CLI_EXIT_USAGE;
        }
    }
    pv_log_init(level, false, NULL, "pavise-device");
    if (i >= argc) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    for (const cli_cmd *c = cmds; c->name != NULL; c++) {
        if (strcmp(argv[i], c->name) != 0) {
            continue;
        }
        cli_args args;
        bool help = false;
        pv_err e;
        pv_err_clear(&e);
        if (cli_parse(c, argc - i - 1, argv + i + 1, &args, &help, &e) != PV_OK) {
            fprintf(stderr, "pavise-device %s: ", c->name);
            cli_put_escaped(stderr, pv_err_msg(&e));
            fprintf(stderr, "\nRun 'pavise-device %s --help' for usage.\n", c->name);
            return CLI_EXIT_USAGE;
        }
        if (help) {
            cli_print_help(c);
            return CLI_EXIT_OK;
        }
        int r = c->run(c, &args, &e);
        if (r != PV_OK) {
            fflush(stdout);
            fputs("pavise-device: error: ", stderr);
            cli_put_escaped(stderr, pv_err_msg(&e));
            fputc('\n', stderr);
        }
        return cli_exit_code(r);
    }
    fprintf(stderr, "pavise-device: unknown command '%s'\n\n", argv[i]);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
