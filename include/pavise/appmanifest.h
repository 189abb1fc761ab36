/* SPDX-License-Identifier: Apache-2.0 */
/*
 * app_manifest.json, as developers write it (docs/formats/app-manifest.md), turned into
 * the fields of an image manifest.
 */
#ifndef PAVISE_APPMANIFEST_H
#define PAVISE_APPMANIFEST_H

#include <stddef.h>

#include "pavise/err.h"
#include "pavise/manifest.h"

#define PV_APP_MANIFEST_MAX_FILE (64 * 1024)

/* Parses and validates an app manifest. label names the input in errors (the file
 * name). Fills component ID, type (application), name, version, security counter,
 * target, entry point, arguments and capabilities of *out; *out is zeroed on entry and
 * filled only on success. Errors say what is wrong and where:
 *   "app_manifest.json: Capabilities.MutableStorage.SizeKB: 0 is out of range (1..65536)".
 * PV_ERR_MANIFEST for every invalid manifest; PV_ERR_NOMEM. */
int pv_app_manifest_parse(const char *text, size_t len, const char *label, pv_manifest *out,
                          pv_err *e);
/* Reads the file (at most PV_APP_MANIFEST_MAX_FILE bytes) and parses it. */
int pv_app_manifest_load(const char *path, pv_manifest *out, pv_err *e);

#endif
