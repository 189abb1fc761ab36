#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Device authentication from inside a compartment, end to end: a device is manufactured,
# booted, claimed and attested by a real pavise-server (so it holds a 24-hour client
# certificate from the tenant CA); pavised runs the telemetry sample app in its
# compartment with DeviceAuthentication and AllowedConnections ["broker.test"]; the app
# resolves the name through its DNS stub (dnsmasq upstream, in the test's own network
# namespace) and publishes over TLS with the device's certificate to a real mosquitto that
# requires client certificates of the tenant's chain. A second copy without
# DeviceAuthentication cannot: it is given no certificate.
#
# usage: device_auth_test.sh PAVISED PAVISE PAVISE_DEVICE PAVISE_BOOT PAVISE_SERVER BUILD SRC TMP
set -euo pipefail
if [ -z "${PV_TEST_NS:-}" ]; then
    exec env PV_TEST_NS=1 unshare --net --mount --propagation private -- bash "$0" "$@"
fi
PAVISED=$1 PAVISE=$2 PDEV=$3 PBOOT=$4 PSERVER=$5 BUILD=$6 SRC=$7 TMPBASE=$8 ROT=${9:-software}
mkdir -p "$TMPBASE"
T=$(mktemp -d "$TMPBASE/devauth.XXXXXX")
PIDS=()
cleanup() {
    local rc=$?
    [ -n "${PAVISED_PID:-}" ] && kill "$PAVISED_PID" 2>/dev/null && wait "$PAVISED_PID" 2>/dev/null
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    [ "$ROT" = tpm ] && "$SRC/scripts/swtpm-stop" "$T/tpm" >/dev/null 2>&1
    if [ $rc -ne 0 ]; then
        echo "---- pavised.log (last 40 lines) ----" >&2
        tail -40 "$T/pavised.log" >&2 || true
        echo "---- broker.log ----" >&2
        cat "$T/broker.log" >&2 || true
    fi
    umount -R "$T/state/run/storage" 2>/dev/null || true
    [ -n "${PV_KEEP:-}" ] && echo "kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
ip link set lo up
. "$SRC/tests/lib/device-fixture.sh"
fail() { fx_fail "$@"; }
expect() {
    local want=$1 rc=0; shift
    "$@" >out.txt 2>&1 || rc=$?
    [ "$rc" = "$want" ] || { cat out.txt >&2; fail "exit $rc, not $want: $*"; }
}
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
fx_keys
ROTARGS=(--rot software) TCTIARGS=()
if [ "$ROT" = tpm ]; then
    TCTI=$("$SRC/scripts/swtpm-start" "$T/tpm") || fail "swtpm did not start"
    ROTARGS=(--rot tpm --tcti "$TCTI") TCTIARGS=(--tcti "$TCTI")
fi
fx_manufacture "${ROTARGS[@]}"

# ---- an OS image, booted ----
mkdir -p osroot/bin
printf '#!/bin/sh\nexit 0\n' >osroot/bin/runtime
chmod 755 osroot/bin/runtime
fx_p image-package pack-os --package-directory osroot --entry-point /bin/runtime \
    --component-id 6b1f4b0e-3c1a-4d55-9a0e-6f3e2c1d0b0a --name pavise-os --version 1.0.0 \
    --security-counter 1 --key app.key --cert app.crt --destination os.imagepackage
mkdir -p "$S/slots/a"
cp os.imagepackage "$S/slots/a/os.imagepackage"
if [ "$ROT" = tpm ]; then
    expect 0 "$PBOOT" --state "$S" --tcti "$TCTI"
else
    expect 0 "$PBOOT" --state "$S" --rot software
fi

# ---- the service: knows the factory, the update root and the OS image; claims; attests ----
DATA=$T/server
expect 0 "$PSERVER" init --data "$DATA"
code=$(grep -oE '[A-Z2-7]{4}(-[A-Z2-7]{4}){7}' out.txt | head -1)
expect 0 "$PSERVER" factory add --data "$DATA" --cert fca.crt
expect 0 "$PSERVER" image-root add --data "$DATA" --cert root.crt
expect 0 "$PSERVER" os-image add --data "$DATA" --image-package os.imagepackage --feed Retail
"$PSERVER" serve --data "$DATA" --listen 127.0.0.1:0 --ready-file "$T/server-ready" --workers 1 >server.log 2>&1 &
PIDS+=($!)
fx_wait_for 20 test -s "$T/server-ready" || fail "pavise-server did not start"
URL="https://$(head -1 "$T/server-ready")"
op() { PAVISE_CONFIG_DIR="$T/op" "$PAVISE" "$@"; }
expect 0 op login --server "$URL" --ca "$DATA/ca.crt" --enroll "$code"
expect 0 op tenant create --name "Fleet"
expect 0 op tenant select --tenant "Fleet"
expect 0 op device claim --device "$DEVICE_ID" --manufacturing-record "$S/manufacturing-record.cbor"
expect 0 "$PDEV" attest --state "$S" --server "$URL" --ca "$DATA/ca.crt" "${TCTIARGS[@]}" --output json
[ -s "$S/certs/client.crt" ] || fail "the device has no client certificate after attesting"
expect 0 op ca-certificate download-chain --output-file "$T/tenant-chain.pem"

# ---- the customer's cloud: broker.test -> 127.0.0.5, mosquitto with the tenant's chain ----
ip addr add 127.0.0.5/8 dev lo 2>/dev/null || true
/usr/sbin/dnsmasq --keep-in-foreground --no-resolv --no-hosts --port=5353 \
    --listen-address=127.0.0.1 --bind-interfaces --address=/broker.test/127.0.0.5 \
    --pid-file="$T/dnsmasq.pid" --user=root --log-facility=- >dnsmasq.log 2>&1 &
PIDS+=($!)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=Broker CA" \
    -keyout broker-ca.key -out broker-ca.crt >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=broker.test" \
    -keyout broker.key -out broker.csr >/dev/null 2>&1
printf 'subjectAltName=DNS:broker.test,IP:127.0.0.5\n' >broker.ext
openssl x509 -req -in broker.csr -CA broker-ca.crt -CAkey broker-ca.key -CAcreateserial -days 2 \
    -extfile broker.ext -out broker.crt >/dev/null 2>&1
# The device's listener (TLS, client certificates of the tenant chain), and one for the
# test's subscriber on 127.0.0.1, which the app's network policy does not let it reach.
cat >broker.conf <<CONF
per_listener_settings true
listener 8883 127.0.0.5
cafile $T/tenant-chain.pem
certfile $T/broker.crt
keyfile $T/broker.key
require_certificate true
use_identity_as_username true
listener 1883 127.0.0.1
allow_anonymous true
persistence false
user root
log_dest stderr
log_type error
log_type notice
CONF
"$MOSQUITTO" -c broker.conf >broker.log 2>&1 &
PIDS+=($!)
fx_wait_for 10 bash -c "echo >/dev/tcp/127.0.0.5/8883" || fail "mosquitto did not start"
fx_wait_for 10 bash -c "echo >/dev/tcp/127.0.0.1/1883" || fail "mosquitto's local listener did not start"
timeout 60 mosquitto_sub -h 127.0.0.1 -p 1883 -t 'pavise/#' -C 3 -v >received.txt 2>sub.err &
SUB=$!
PIDS+=($SUB)

# ---- pavised and the telemetry app in its compartment ----
fx_pavised --dns-upstream 127.0.0.1:5353 --restart-min-ms 600000
mkdir -p tel/bin tel/etc
cp "$BUILD/apps/telemetry/bin/telemetry" tel/bin/telemetry
cp broker-ca.crt tel/etc/broker-ca.pem
manifest() { # NAME CID DEVICE-AUTH
    cat <<JSON
{"SchemaVersion": 1, "Name": "$1", "ComponentId": "$2", "EntryPoint": "/bin/telemetry",
 "CmdArgs": ["--host", "broker.test", "--port", "8883", "--topic", "pavise/$1",
             "--ca", "/app/etc/broker-ca.pem", "--interval", "1", "--count", "3"],
 "Version": "1.0.0",
 "Capabilities": {"AllowedConnections": ["broker.test"], "DeviceAuthentication": $3,
                  "SystemEventNotifications": $3, "MutableStorage": {"SizeKB": 16}}}
JSON
}
fx_pack telemetry "$(manifest telemetry 7e1e0000-0000-4000-8000-000000000001 true)" tel
fx_install telemetry
wait "$SUB" || { cat sub.err >&2; fail "the subscriber did not receive three readings"; }
grep -c '^pavise/telemetry {' received.txt | grep -qx 3 || { cat received.txt >&2; fail "readings"; }
echo "received: $(head -1 received.txt)"

# without DeviceAuthentication the app is given no certificate: it cannot connect
fx_pack nocert "$(manifest nocert 7e1e0000-0000-4000-8000-000000000002 false)" tel
fx_install nocert
fx_wait_for 30 grep -q "app nocert: .*" pavised.log || fail "nocert did not run"
fx_wait_for 30 bash -c "'$PAVISE' device app show-status --component-id 7e1e0000-0000-4000-8000-000000000002 --socket '$T/pavised.sock' --output json | python3 -c \"import json,sys; d=json.load(sys.stdin); sys.exit(0 if d['failures']>=1 else 1)\"" ||
    fail "an app without DeviceAuthentication did not fail"
grep -q "CONNECT\|nocert" broker.log && grep "nocert" broker.log >&2 && fail "the broker let the app without a certificate in" || true
# a renewed certificate reaches a running app: fresh copies and the DEVICE_AUTH event
LONG=7e1e0000-0000-4000-8000-000000000003
manifest long "$LONG" true | sed 's/"--count", "3"/"--count", "100000"/' >long.json
fx_pack long "$(cat long.json)" tel
fx_install long
fx_wait_for 30 grep -q "app long: connected to broker.test" pavised.log || fail "long did not connect"
old_serial=$(openssl x509 -in "$S/certs/client.crt" -noout -serial)
expect 0 "$PDEV" attest --state "$S" --server "$URL" --ca "$DATA/ca.crt" "${TCTIARGS[@]}" --output json
[ "$(openssl x509 -in "$S/certs/client.crt" -noout -serial)" != "$old_serial" ] || fail "attestation did not renew"
same_cert() { cmp -s "$S/certs/client.crt" "$S/run/apps/$LONG/client.crt"; }
fx_wait_for 20 same_cert || fail "the app's copy of the certificate was not refreshed"
fx_wait_for 20 grep -q "app long: the device certificate was renewed" pavised.log || fail "no DEVICE_AUTH event"
reconnected() { [ "$(grep -c "app long: connected to broker.test" pavised.log)" -ge 2 ]; }
fx_wait_for 30 reconnected || fail "the app did not reconnect with the renewed certificate"
[ "$(stat -c '%u %a' "$S/run/apps/$LONG/client.crt")" = "$(( 70000 + 2 )) 400" ] ||
    fail "the copy's owner or mode: $(stat -c '%u %a' "$S/run/apps/$LONG/client.crt")"
# the key itself was never given to an app (a TPM key cannot be; a software one is not)
[ ! -e "$S/run/apps/$LONG/tls.key" ] || fail "the device key was copied for the app"
if [ "$ROT" = tpm ]; then
    grep -q "BEGIN TSS2 PRIVATE KEY" "$S/certs/tls.key" || fail "the TLS key is not the TPM's"
fi
echo "PASS: device authentication from a compartment ($ROT root of trust)"
