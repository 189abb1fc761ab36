/* SPDX-License-Identifier: Apache-2.0 */
#include "schema.h"

/* Conventions: IDs are text (UUIDs; a device's ID is its 64-hex identity); times are
 * integer seconds since the epoch; booleans are integers 0/1. */
const char *const schema_migrations[] = {
    /* 1: operators, tenants and roles, claiming, products, device groups, audit. */
    "CREATE TABLE operators (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  name TEXT NOT NULL UNIQUE,\n"
    "  created_at BIGINT NOT NULL\n"
    ");\n"
    /* Client certificates issued to operators, by SHA-256 of the certificate's DER. A
     * request is authenticated by the TLS layer's chain check and then by this row. */
    "CREATE TABLE operator_certs (\n"
    "  fingerprint TEXT PRIMARY KEY,\n"
    "  operator_id TEXT NOT NULL REFERENCES operators(id),\n"
    "  serial TEXT NOT NULL,\n"
    "  not_after BIGINT NOT NULL,\n"
    "  created_at BIGINT NOT NULL,\n"
    "  revoked_at BIGINT\n"
    ");\n"
    "CREATE INDEX operator_certs_operator ON operator_certs(operator_id);\n"
    "CREATE TABLE tenants (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  name TEXT NOT NULL,\n"
    "  created_at BIGINT NOT NULL,\n"
    "  created_by TEXT NOT NULL REFERENCES operators(id)\n"
    ");\n"
    "CREATE TABLE roles (\n"
    "  tenant_id TEXT NOT NULL REFERENCES tenants(id),\n"
    "  operator_id TEXT NOT NULL REFERENCES operators(id),\n"
    "  role TEXT NOT NULL CHECK (role IN ('Administrator', 'Contributor', 'Reader')),\n"
    "  created_at BIGINT NOT NULL,\n"
    "  PRIMARY KEY (tenant_id, operator_id)\n"
    ");\n"
    "CREATE INDEX roles_operator ON roles(operator_id);\n"
    /* One-time enrollment codes, by SHA-256 of the code (the code itself is never
     * stored). tenant_id NULL: the first administrator, made by `pavise-server init`. */
    "CREATE TABLE enrollment_codes (\n"
    "  code_hash TEXT PRIMARY KEY,\n"
    "  user_name TEXT NOT NULL,\n"
    "  tenant_id TEXT REFERENCES tenants(id),\n"
    "  role TEXT CHECK (role IN ('Administrator', 'Contributor', 'Reader')),\n"
    "  created_by TEXT,\n"
    "  created_at BIGINT NOT NULL,\n"
    "  expires_at BIGINT NOT NULL,\n"
    "  used_at BIGINT\n"
    ");\n"
    /* Factory certificates the service trusts to sign manufacturing records. */
    "CREATE TABLE factories (\n"
    "  fingerprint TEXT PRIMARY KEY,\n"
    "  subject TEXT NOT NULL,\n"
    "  cert_pem TEXT NOT NULL,\n"
    "  created_at BIGINT NOT NULL\n"
    ");\n"
    /* Verified manufacturing records, by device ID; not tenant data. manufactured_at is
     * the record's own field, kept as a column so that reading a device needs no decode
     * (records.c always sets it; the default only serves rows written by hand). */
    "CREATE TABLE manufacturing_records (\n"
    "  device_id TEXT PRIMARY KEY,\n"
    "  record {BLOB} NOT NULL,\n"
    "  rot_kind TEXT NOT NULL,\n"
    "  manufactured_at BIGINT NOT NULL DEFAULT 0,\n"
    "  factory_fingerprint TEXT NOT NULL,\n"
    "  created_at BIGINT NOT NULL\n"
    ");\n"
    "CREATE TABLE products (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  tenant_id TEXT NOT NULL REFERENCES tenants(id),\n"
    "  name TEXT NOT NULL,\n"
    "  description TEXT NOT NULL,\n"
    "  created_at BIGINT NOT NULL,\n"
    "  updated_at BIGINT NOT NULL,\n"
    "  UNIQUE (tenant_id, name)\n"
    ");\n"
    "CREATE TABLE device_groups (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  tenant_id TEXT NOT NULL REFERENCES tenants(id),\n"
    "  product_id TEXT NOT NULL REFERENCES products(id),\n"
    "  name TEXT NOT NULL,\n"
    "  description TEXT NOT NULL,\n"
    "  os_feed TEXT NOT NULL CHECK (os_feed IN ('Retail', 'RetailEval')),\n"
    "  update_policy TEXT NOT NULL\n"
    "    CHECK (update_policy IN ('UpdateAll', 'No3rdPartyAppUpdates', 'NoUpdates')),\n"
    "  created_at BIGINT NOT NULL,\n"
    "  updated_at BIGINT NOT NULL,\n"
    "  UNIQUE (product_id, name)\n"
    ");\n"
    "CREATE INDEX device_groups_tenant ON device_groups(tenant_id, id);\n"
    /* A claimed device. The primary key makes a device belong to one tenant: a second
     * claim fails on it until the first tenant releases (deletes) the row. */
    "CREATE TABLE devices (\n"
    "  id TEXT PRIMARY KEY REFERENCES manufacturing_records(device_id),\n"
    "  tenant_id TEXT NOT NULL REFERENCES tenants(id),\n"
    "  device_group_id TEXT REFERENCES device_groups(id),\n"
    "  development INTEGER NOT NULL DEFAULT 0,\n"
    "  cloud_test INTEGER NOT NULL DEFAULT 0,\n"
    "  claimed_at BIGINT NOT NULL,\n"
    "  updated_at BIGINT NOT NULL\n"
    ");\n"
    "CREATE INDEX devices_tenant ON devices(tenant_id, id);\n"
    "CREATE INDEX devices_group ON devices(device_group_id);\n"
    /* Every mutating call, in the same transaction as the change. tenant_id NULL: a
     * server-wide event (first enrollment, factory added). */
    "CREATE TABLE audit (\n"
    "  seq {SERIAL},\n"
    "  tenant_id TEXT,\n"
    "  at BIGINT NOT NULL,\n"
    "  operator TEXT NOT NULL,\n"
    "  action TEXT NOT NULL,\n"
    "  target TEXT NOT NULL,\n"
    "  detail TEXT NOT NULL\n"
    ");\n"
    "CREATE INDEX audit_tenant ON audit(tenant_id, seq);\n",

    /* 2: attestation (docs/protocol/attestation.md): tenant CAs, the images the service
     * knows, spent nonces, attestation results, devices' service certificates. */
    /* A tenant's CAs: the current one ('active') issues; a 'retiring' one (rotated out)
     * stays in the chain until the certificates it issued have expired. key_sealed is
     * the private key's PKCS#8 DER sealed with AES-256-GCM under DATA/tenant-ca.kek. */
    "CREATE TABLE tenant_cas (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  tenant_id TEXT NOT NULL REFERENCES tenants(id),\n"
    "  fingerprint TEXT NOT NULL UNIQUE,\n"
    "  cert_pem TEXT NOT NULL,\n"
    "  key_sealed {BLOB} NOT NULL,\n"
    "  status TEXT NOT NULL CHECK (status IN ('active', 'retiring', 'retired')),\n"
    "  not_before BIGINT NOT NULL,\n"
    "  not_after BIGINT NOT NULL,\n"
    "  created_at BIGINT NOT NULL,\n"
    "  retire_after BIGINT\n"
    ");\n"
    "CREATE INDEX tenant_cas_tenant ON tenant_cas(tenant_id, created_at);\n"
    /* Images the service knows, by image ID. tenant_id NULL: an OS image of the
     * service's feeds. manifest_sha256 is what a device measures. */
    "CREATE TABLE images (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  tenant_id TEXT REFERENCES tenants(id),\n"
    "  component_id TEXT NOT NULL,\n"
    "  kind TEXT NOT NULL CHECK (kind IN ('os', 'app')),\n"
    "  name TEXT NOT NULL,\n"
    "  version TEXT NOT NULL,\n"
    "  security_counter BIGINT NOT NULL,\n"
    "  manifest_sha256 TEXT NOT NULL,\n"
    "  os_feed TEXT CHECK (os_feed IN ('Retail', 'RetailEval')),\n"
    "  development INTEGER NOT NULL DEFAULT 0,\n"
    "  created_at BIGINT NOT NULL,\n"
    "  revoked_at BIGINT\n"
    ");\n"
    "CREATE INDEX images_manifest ON images(manifest_sha256);\n"
    "CREATE INDEX images_tenant ON images(tenant_id, id);\n"
    /* Nonces spent by an attestation (the SHA-256 of the nonce), kept until they expire:
     * the primary key is what makes a nonce single-use. */
    "CREATE TABLE used_nonces (\n"
    "  nonce_hash TEXT PRIMARY KEY,\n"
    "  expires_at BIGINT NOT NULL\n"
    ");\n"
    "CREATE INDEX used_nonces_expiry ON used_nonces(expires_at);\n"
    /* Every attestation and its result; tenant_id is the device's tenant at the time
     * (NULL: unclaimed). */
    "CREATE TABLE attestations (\n"
    "  seq {SERIAL},\n"
    "  device_id TEXT NOT NULL,\n"
    "  tenant_id TEXT,\n"
    "  at BIGINT NOT NULL,\n"
    "  result TEXT NOT NULL CHECK (result IN ('passed', 'identity-only', 'failed')),\n"
    "  reason TEXT NOT NULL,\n"
    "  rot_kind TEXT,\n"
    "  development INTEGER,\n"
    "  boot_count BIGINT,\n"
    "  service_cert_serial TEXT,\n"
    "  client_cert_serial TEXT,\n"
    "  client_not_after BIGINT,\n"
    "  detail TEXT NOT NULL\n"
    ");\n"
    "CREATE INDEX attestations_device ON attestations(device_id, seq);\n"
    /* Service certificates issued to devices, by SHA-256 of the DER: the device
     * endpoints accept a client certificate only when it is recorded here and unexpired,
     * as operator_certs does for operators. */
    "CREATE TABLE device_service_certs (\n"
    "  fingerprint TEXT PRIMARY KEY,\n"
    "  device_id TEXT NOT NULL,\n"
    "  serial TEXT NOT NULL,\n"
    "  not_after BIGINT NOT NULL,\n"
    "  created_at BIGINT NOT NULL\n"
    ");\n"
    "CREATE INDEX device_service_certs_device ON device_service_certs(device_id);\n",

    /* 3: image roots: the CA certificates an image's signer chain must lead to before
     * the image is registered (`pavise-server image-root add`). development = 1: images
     * signed under this root are development (sideloaded) images. */
    "CREATE TABLE image_roots (\n"
    "  fingerprint TEXT PRIMARY KEY,\n"
    "  subject TEXT NOT NULL,\n"
    "  cert_pem TEXT NOT NULL,\n"
    "  development INTEGER NOT NULL,\n"
    "  created_at BIGINT NOT NULL\n"
    ");\n",

    /* 4: the verified record's attestation key (its SubjectPublicKeyInfo DER), written
     * at import so that attestation reads it without decoding the record and its
     * factory chain. NULL in rows imported before: those are decoded (api_attest.c). */
    "ALTER TABLE manufacturing_records ADD COLUMN attestation_key {BLOB};\n",
};

const size_t schema_migration_count = sizeof(schema_migrations) / sizeof(schema_migrations[0]);
