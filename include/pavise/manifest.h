/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The image manifest: what an image is, what it may do, and the digest of its payload.
 * Encoded as deterministic CBOR with integer keys (docs/formats/image-package.md §4) and
 * signed inside the image package with COSE_Sign1.
 */
#ifndef PAVISE_MANIFEST_H
#define PAVISE_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "pavise/buf.h"
#include "pavise/crypto.h"
#include "pavise/err.h"
#include "pavise/uuid.h"

#define PV_MANIFEST_VERSION 1

/* Limits (bytes for strings, entries for lists); both encoder and decoder enforce them. */
#define PV_MANIFEST_MAX_SIZE  65536
#define PV_MAX_NAME           64
#define PV_MAX_VERSION        64
#define PV_MAX_TARGET         64
#define PV_MAX_ENTRY_POINT    255
#define PV_MAX_ARGS           32
#define PV_MAX_ARG            1024
#define PV_MAX_CONNECTIONS    64
#define PV_MAX_HOSTNAME       253
#define PV_MAX_TCP_PORTS      32
#define PV_MAX_PERIPHERALS    32
#define PV_MAX_PERIPHERAL     64
#define PV_MAX_POWER_CONTROLS 4
#define PV_MAX_STORAGE_KB     (64u * 1024u)        /* 64 MiB of mutable storage */
#define PV_MAX_MEMORY_KB      (4u * 1024u * 1024u) /* 4 GiB */
#define PV_MIN_MEMORY_KB      1024u

typedef enum pv_image_type {
    PV_IMAGE_APPLICATION = 1,
    PV_IMAGE_OS = 2,
} pv_image_type;

/* A list of owned strings. */
typedef struct pv_strlist {
    char **v;
    size_t n;
} pv_strlist;

int pv_strlist_add(pv_strlist *l, const char *s);
void pv_strlist_free(pv_strlist *l);

typedef struct pv_capabilities {
    pv_strlist allowed_connections; /* host names and IP addresses */
    uint16_t tcp_server_ports[PV_MAX_TCP_PORTS];
    size_t n_tcp_server_ports;
    pv_strlist peripherals;      /* device node paths, e.g. /dev/ttyS1 */
    uint32_t mutable_storage_kb; /* 0: no mutable storage */
    bool device_authentication;
    bool system_event_notifications;
    bool software_update_deferral;
    pv_strlist power_controls; /* ForceReboot, ForcePowerDown, SetPowerProfile */
    uint32_t memory_limit_kb;  /* 0: the runtime's default */
} pv_capabilities;

typedef struct pv_manifest {
    uint8_t component_id[PV_UUID_LEN];
    uint8_t image_id[PV_UUID_LEN];
    pv_image_type type;
    char *name;
    char *version;             /* human version, informational */
    uint64_t security_counter; /* anti-rollback; separate from version */
    uint64_t build_time;       /* seconds since the epoch */
    char *target;              /* optional product or hardware class; NULL when absent */
    char *entry_point;         /* absolute path inside the payload, e.g. /bin/app */
    pv_strlist args;
    pv_capabilities caps;
    uint64_t payload_size;
    uint8_t payload_sha256[PV_SHA256_LEN];
    uint8_t signer_key_id[PV_KEY_ID_LEN];
} pv_manifest;

/* Frees what m owns and zeroes it. Accepts NULL. */
void pv_manifest_free(pv_manifest *m);

/* Checks every field against the limits and rules of the format (also done by encode
 * and decode). PV_ERR_FORMAT naming the field. */
int pv_manifest_validate(const pv_manifest *m, pv_err *e);

/* Checks the capabilities alone (limits, syntax, nothing listed twice). */
int pv_capabilities_validate(const pv_capabilities *c, pv_err *e);

/* Appends the deterministic CBOR encoding to out. */
int pv_manifest_encode(const pv_manifest *m, pv_buf *out, pv_err *e);

/* Decodes and validates. Unknown keys, missing required keys, wrong types, values out
 * of range: PV_ERR_FORMAT naming the field. PV_ERR_UNSUPPORTED for another version.
 * *out is zeroed on entry and filled only on success. */
int pv_manifest_decode(const uint8_t *p, size_t len, pv_manifest *out, pv_err *e);

const char *pv_image_type_name(pv_image_type t);

/* A JSON object describing the manifest (for `show`). NULL on out of memory. */
json_t *pv_manifest_to_json(const pv_manifest *m);

/* Validation helpers shared with the app manifest parser: PV_OK or PV_ERR_FORMAT
 * with the reason. */
int pv_manifest_check_hostname(const char *s, pv_err *e);
int pv_manifest_check_peripheral(const char *s, pv_err *e);
int pv_manifest_check_entry_point(const char *s, pv_err *e);
int pv_manifest_check_power_control(const char *s, pv_err *e);

#endif
