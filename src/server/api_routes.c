/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every route the server serves. docs/api/openapi.yaml describes exactly these; a test
 * (`pavise-server routes` against the document) keeps the two equal.
 */
#include "api.h"

static const char *const q_page[] = {"limit", "continuation_token", NULL};
static const char *const q_devices[] = {"limit", "continuation_token", "device_group_id", NULL};
static const char *const q_named[] = {"limit", "continuation_token", "name", NULL};
static const char *const q_groups[] = {"limit", "continuation_token", "name", "product_id", NULL};
static const char *const q_format[] = {"format", NULL};

#define T "/v1/tenants/{tenant}"

const api_route api_routes[] = {
    {"GET", "/healthz", API_PUBLIC, api_healthz, NULL},
    {"GET", "/metrics", API_PUBLIC, api_metrics, NULL},
    {"POST", "/v1/enroll", API_PUBLIC, api_enroll, NULL},
    {"GET", "/v1/me", API_OPERATOR, api_me, NULL},

    {"GET", "/v1/tenants", API_OPERATOR, api_tenant_list, q_named},
    {"POST", "/v1/tenants", API_OPERATOR, api_tenant_create, NULL},
    {"GET", T, API_READER, api_tenant_show, NULL},

    {"GET", T "/roles", API_READER, api_role_list, q_page},
    {"POST", T "/roles", API_ADMIN, api_role_add, NULL},
    {"DELETE", T "/roles/{user}", API_ADMIN, api_role_delete, NULL},

    {"GET", T "/devices", API_READER, api_device_list, q_devices},
    {"POST", T "/devices", API_CONTRIBUTOR, api_device_claim, NULL},
    {"GET", T "/devices/{device}", API_READER, api_device_show, NULL},
    {"PATCH", T "/devices/{device}", API_CONTRIBUTOR, api_device_update, NULL},
    {"POST", T "/devices/{device}/enable-development", API_CONTRIBUTOR,
     api_device_enable_development, NULL},
    {"POST", T "/devices/{device}/enable-cloud-test", API_CONTRIBUTOR, api_device_enable_cloud_test,
     NULL},
    {"POST", T "/devices/{device}/release", API_ADMIN, api_device_release, NULL},
    {"POST", T "/devices/{device}/capabilities", API_CONTRIBUTOR, api_device_capability, NULL},

    {"GET", T "/products", API_READER, api_product_list, q_named},
    {"POST", T "/products", API_CONTRIBUTOR, api_product_create, NULL},
    {"GET", T "/products/{product}", API_READER, api_product_show, NULL},
    {"PATCH", T "/products/{product}", API_CONTRIBUTOR, api_product_update, NULL},
    {"DELETE", T "/products/{product}", API_ADMIN, api_product_delete, NULL},

    {"GET", T "/device-groups", API_READER, api_group_list, q_groups},
    {"POST", T "/device-groups", API_CONTRIBUTOR, api_group_create, NULL},
    {"GET", T "/device-groups/{device_group}", API_READER, api_group_show, NULL},
    {"PATCH", T "/device-groups/{device_group}", API_CONTRIBUTOR, api_group_update, NULL},
    {"DELETE", T "/device-groups/{device_group}", API_ADMIN, api_group_delete, NULL},

    {"GET", T "/audit", API_READER, api_audit_list, q_page},

    /* "chain" and "rotate" before {ca_certificate}: the first match wins. */
    {"GET", T "/ca-certificates", API_READER, api_ca_list, q_page},
    {"GET", T "/ca-certificates/chain", API_READER, api_ca_chain, q_format},
    {"POST", T "/ca-certificates/rotate", API_ADMIN, api_ca_rotate, NULL},
    {"GET", T "/ca-certificates/{ca_certificate}", API_READER, api_ca_show, NULL},
    {"POST", T "/ca-certificates/{ca_certificate}/proof", API_CONTRIBUTOR, api_ca_proof, NULL},

    {"GET", T "/images", API_READER, api_image_list, q_page},
    {"POST", T "/images", API_CONTRIBUTOR, api_image_create, NULL},
    {"GET", T "/images/{image}", API_READER, api_image_show, NULL},
    {"POST", T "/images/{image}/revoke", API_ADMIN, api_image_revoke, NULL},
    /* Devices (docs/protocol/attestation.md): CBOR bodies and errors. */
    {"POST", "/v1/attestation/challenge", API_DEVICE_PUBLIC, api_attest_challenge, NULL},
    {"POST", "/v1/attestation", API_DEVICE_PUBLIC, api_attest, NULL},
    {"GET", "/v1/device/attestation", API_DEVICE, api_device_attestation, NULL},
};

const size_t api_route_count = sizeof(api_routes) / sizeof(api_routes[0]);
