/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libpavise-app-tls: the device's client identity for an app's OpenSSL TLS connections
 * (docs/sdk.md). The private key of the device's client certificate never enters the
 * app's compartment; this library gives OpenSSL a key object whose signatures are made by
 * the runtime (pv_app_device_sign), so an app can present the certificate in TLS 1.2 and
 * 1.3 as if it held the key.
 *
 * A separate library from libpavise-app, which stays libc-only: link both
 * (libpavise-app-tls.a, libpavise-app.a) and OpenSSL 3 (libssl, libcrypto). An app using
 * another TLS library signs with pv_app_device_sign itself.
 */
#ifndef PAVISE_APP_TLS_H
#define PAVISE_APP_TLS_H

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "pavise/app.h"

/* A P-256 key whose public half is the device certificate's (read from the file
 * PAVISE_DEVICE_CERT names) and whose signing goes through pv_app_device_sign: each
 * signature is one request to the runtime (waiting up to PV_APP_SIGN_TIMEOUT_MS). A
 * refusal by the runtime fails the signature, and so the handshake; the reason is on
 * OpenSSL's error queue ("device key: ..."). The key does not follow a renewed
 * certificate: take a new one after PV_APP_EVENT_DEVICE_AUTH.
 * Returns a new reference (EVP_PKEY_free it), or NULL: no DeviceAuthentication (no
 * certificate path in the environment), no certificate file yet, or a certificate that is
 * not ECDSA P-256. Without a runtime it still returns the key, whose signatures then fail
 * (PV_APP_ERR_NO_RUNTIME on the error queue). */
EVP_PKEY *pv_app_tls_device_key(void);

/* Sets the device's client identity on ctx: the certificate (PAVISE_DEVICE_CERT), the
 * certificates of PAVISE_DEVICE_CHAIN as its chain (sent after it in the handshake;
 * replaces any chain set by an earlier call, so it may be called again after a renewal)
 * and pv_app_tls_device_key() as its key. Because the key is the runtime's, it checks
 * that the two match by having the runtime sign a random digest and verifying that with
 * the certificate: one signature request per call.
 * PV_APP_OK; PV_APP_ERR_INVALID (ctx NULL; the files are not PEM certificates; the
 * certificate is not P-256; the runtime's key does not match the certificate);
 * PV_APP_ERR_DENIED (no DeviceAuthentication); PV_APP_ERR_NO_RUNTIME;
 * PV_APP_ERR_NOT_READY (no certificate yet, or the runtime holds no key yet);
 * PV_APP_ERR_LIMIT; PV_APP_ERR_IO (signing or OpenSSL failed). On failure ctx may hold
 * the certificate without a key: do not use it for client authentication. */
int pv_app_tls_use_device_identity(SSL_CTX *ctx);

#endif
