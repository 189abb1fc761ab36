#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Attestation under attack, end to end, and the relying party that depends on it.
#
# A real pavise-server (SQLite) on loopback; software-root-of-trust devices manufactured
# by pavise-device and booted by pavise-boot; the device's own client (pavise-device
# attest) and the same client with one hostile change (attest-attack); mosquitto, started
# here on loopback with require_certificate and the tenant's CA chain, as the customer's
# MQTT broker.
#
# Each attack must be refused with its own recorded reason and leave the device without a
# client certificate; the broker must let in only a device that passed, of its tenant,
# with an unexpired certificate.
# Usage: attest_attacks.sh PAVISE_SERVER PAVISE PAVISE_DEVICE PAVISE_BOOT ATTEST_ATTACK SRC TMPBASE
set -uo pipefail
PSERVER=$1
PAVISE=$2
PDEV=$3
PBOOT=$4
ATTACK=$5
SRC=$6
TMPBASE=${7:-/tmp}
mkdir -p "$TMPBASE"
T=$(mktemp -d "$TMPBASE/attacks-XXXXXX")
PIDS=()
cleanup() {
    local p
    "$SRC/scripts/swtpm-stop" "$T/tpm" >/dev/null 2>&1
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
. "$SRC/tests/integration/testlib.sh"
json() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval("d" + sys.argv[2]))' "$1" "$2"; }
is() { if [ "$2" = "$3" ]; then ok; else bad "$1: got '$2', wanted '$3'"; fi; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # SECONDS COMMAND...
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}
for tool in mosquitto mosquitto_pub mosquitto_sub faketime openssl; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "FAIL: $tool is not installed (scripts/install-deps)" >&2; exit 1; }
done
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

# ---- keys and images: the update root signs OS images; the factory signs records ----
P() { expect 0 "$PAVISE" "$@"; }
P keys create-ca --output-key root.key --output-cert root.crt --subject "CN=Update Root,O=Pavise Test"
P keys create-signing --ca-key root.key --ca-cert root.crt --output-key os.key --output-cert os.crt \
    --subject "CN=OS Signing,O=Pavise Test"
P keys create-ca --output-key factory-ca.key --output-cert factory-ca.crt --subject "CN=Factory CA"
P keys create-signing --ca-key factory-ca.key --ca-cert factory-ca.crt --output-key factory.key \
    --output-cert factory.crt --subject "CN=Factory Line 1"
mkdir -p osroot/bin
printf '#!/bin/sh\nexit 0\n' >osroot/bin/runtime
chmod 755 osroot/bin/runtime
for v in 1 2; do
    P image-package pack-os --package-directory osroot --entry-point /bin/runtime \
        --component-id 6b1f4b0e-3c1a-4d55-9a0e-6f3e2c1d0b0a --name pavise-os --version "$v.0.0" \
        --security-counter "$v" --key os.key --cert os.crt --destination "os$v.imagepackage"
done

# ---- the service: knows the factory, the update root and OS image 1 (not 2) ----
D=$T/data
expect 0 "$PSERVER" init --data "$D"
code=$(grep -oE '[A-Z2-7]{4}(-[A-Z2-7]{4}){7}' out.txt | head -1)
expect 0 "$PSERVER" factory add --data "$D" --cert factory-ca.crt
expect 0 "$PSERVER" image-root add --data "$D" --cert root.crt
expect 0 "$PSERVER" os-image add --data "$D" --image-package os1.imagepackage --feed Retail
"$PSERVER" serve --data "$D" --listen 127.0.0.1:0 --ready-file "$T/ready" --workers 1 >server.log 2>&1 &
PIDS+=($!)
wait_for 20 test -s "$T/ready" || { cat server.log >&2; echo "FAIL: pavise-server did not start" >&2; exit 1; }
URL="https://$(head -1 "$T/ready")"
cli() { PAVISE_CONFIG_DIR="$T/op" "$PAVISE" "$@"; }
expect 0 cli login --server "$URL" --ca "$D/ca.crt" --enroll "$code"
expect 0 cli tenant create --name "Tenant A" --output json
TA=$(json out.txt "['id']")
expect 0 cli tenant create --name "Tenant B" --output json
TB=$(json out.txt "['id']")

# ---- devices: manufactured, booted, claimed (or not) ----
device() { # NAME OS-IMAGE TENANT|none
    local S=$T/$1
    expect 0 "$PDEV" manufacture --state "$S" --rot software --trust-anchor root.crt \
        --factory-key factory.key --factory-cert factory.crt --output json
    eval "ID_$1=$(json out.txt "['deviceId']")"
    mkdir -p "$S/slots/a"
    cp "$2" "$S/slots/a/os.imagepackage"
    expect 0 "$PBOOT" --state "$S" --rot software
    if [ "$3" != none ]; then
        expect 0 cli tenant select --tenant "$3"
        expect 0 cli device claim --device "$(eval echo "\$ID_$1")" \
            --manufacturing-record "$S/manufacturing-record.cbor"
    else
        expect 0 "$PSERVER" factory import --data "$D" --record "$S/manufacturing-record.cbor"
    fi
}
device d1 os1.imagepackage "$TA"    # the honest device, and the attacker's own device
device d2 os1.imagepackage "$TA"    # another device of the same tenant
device d3 os1.imagepackage "$TB"    # a device of another tenant
device d4 os1.imagepackage none     # manufactured, never claimed
device d5 os2.imagepackage "$TA"    # runs an OS image the service does not know

attest() { "$PDEV" attest --state "$T/$1" --server "$URL" --ca "$D/ca.crt" --output json; }
attack() { # DEVICE ATTACK [ARGS...] -> "verdict reason" in out.txt
    local dev=$1 a=$2; shift 2
    expect 0 "$ATTACK" --state "$T/$dev" --server "$URL" --ca "$D/ca.crt" --attack "$a" "$@"
}
# refused NAME DEVICE WANT-VERDICT WANT-REASON: the verdict of the last attack, and the
# device left without a client certificate.
refused() {
    is "$1: verdict and reason" "$(cat out.txt)" "$3 $4"
    [ ! -e "$T/$2/certs/client.crt" ] && ok || bad "$1: the device kept a client certificate"
    expect 0 cli tenant select --tenant "$TA"
    expect 0 cli device show --device "$(eval echo "\$ID_$2")" --output json
    contains out.txt "\"$4\""
}

# ---- the honest path ----
expect 0 attest d1
is "d1 result" "$(json out.txt "['result']")" passed
for f in tls.key service.crt service-ca.crt client.crt client-chain.crt attestation.json; do
    [ -s "$T/d1/certs/$f" ] && ok || bad "d1: no certs/$f after passing"
done
expect 0 "$ATTACK" --state "$T/d1" --server "$URL" --ca "$D/ca.crt" --attack honest
is "the attack harness, unchanged" "$(cat out.txt)" "passed "

# ---- a TPM device (swtpm): the key, the evidence and the quote come from the TPM ----
TCTI=$("$SRC/scripts/swtpm-start" "$T/tpm") || { bad "swtpm did not start"; TCTI=; }
if [ -n "$TCTI" ]; then
    S=$T/t1
    expect 0 "$PDEV" manufacture --state "$S" --rot tpm --tcti "$TCTI" --trust-anchor root.crt \
        --factory-key factory.key --factory-cert factory.crt --output json
    ID_t1=$(json out.txt "['deviceId']")
    mkdir -p "$S/slots/a"
    cp os1.imagepackage "$S/slots/a/os.imagepackage"
    expect 0 "$PBOOT" --state "$S" --tcti "$TCTI"
    expect 0 cli tenant select --tenant "$TA"
    expect 0 cli device claim --device "$ID_t1" --manufacturing-record "$S/manufacturing-record.cbor"
    expect 0 "$PDEV" attest --state "$S" --server "$URL" --ca "$D/ca.crt" --tcti "$TCTI" --output json
    is "TPM device result" "$(json out.txt "['result']")" passed
    contains "$S/certs/tls.key" "BEGIN TSS2 PRIVATE KEY"
    expect 0 cli device show --device "$ID_t1" --output json
    is "TPM device: recorded root of trust" "$(json out.txt "['last_attestation']['rot_kind']")" tpm
    # The client certificate says so in its attestation extension (rotKind "tpm").
    openssl x509 -in "$S/certs/client.crt" -noout -text >t1.txt 2>&1
    contains t1.txt "2.25.102576691726157819091001912716521458267"
    # (openssl prints the extension's DER with non-printable bytes as dots)
    contains t1.txt "tpm..passed"
fi

# ---- attacks ----
attack d1 save --file "$T/saved.req"
is "a saved request passes" "$(cat out.txt)" "passed "
attack d1 replay --file "$T/saved.req"
refused "replayed request" d1 failed nonce-replayed
attack d1 other-nonce --other "$T/d2"
refused "another device's nonce" d1 failed nonce-other-device
attack d1 other-signer --other "$T/d2"
refused "evidence signed by another device" d1 failed bad-signature
attack d1 swap-key
refused "TLS key swapped after the evidence" d1 failed binding-mismatch
attack d1 edit-log
refused "edited event log" d1 identity-only event-log-mismatch
attack d1 forge-image
refused "a forged OS image digest" d1 identity-only unknown-image
expect 4 attest d4
is "unclaimed device" "$(json out.txt "['result']") $(json out.txt "['reason']")" "identity-only unclaimed"
expect 4 attest d5
is "unknown OS image" "$(json out.txt "['result']") $(json out.txt "['reason']")" "identity-only unknown-image"
[ -s "$T/d5/certs/service.crt" ] && ok || bad "identity-only: no service certificate for updates"
[ ! -e "$T/d5/certs/client.crt" ] && ok || bad "identity-only: a client certificate"

# ---- the relying party: mosquitto with tenant A's CA chain ----
expect 0 attest d1
expect 0 attest d3
is "d3 (tenant B) passes at the service" "$(json out.txt "['result']")" passed
expect 0 cli tenant select --tenant "$TA"
expect 0 cli ca-certificate download-chain --output-file "$T/tenant-a-chain.pem"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=Broker CA" \
    -keyout broker-ca.key -out broker-ca.crt >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout broker.key -out broker.csr >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1\n' >broker.ext
openssl x509 -req -in broker.csr -CA broker-ca.crt -CAkey broker-ca.key -CAcreateserial -days 2 \
    -extfile broker.ext -out broker.crt >/dev/null 2>&1
[ -s broker.crt ] && ok || bad "could not make the broker's certificate"
broker() { # NAME [FAKETIME-OFFSET]: starts a broker, sets BPORT
    BPORT=$(free_port)
    cat >"$1.conf" <<EOF
listener $BPORT 127.0.0.1
cafile $T/tenant-a-chain.pem
certfile $T/broker.crt
keyfile $T/broker.key
require_certificate true
use_identity_as_username true
persistence false
user root
log_dest stderr
log_type error
log_type notice
EOF
    if [ -n "${2:-}" ]; then
        faketime -f "$2" "$MOSQUITTO" -c "$1.conf" >"$1.log" 2>&1 &
    else
        "$MOSQUITTO" -c "$1.conf" >"$1.log" 2>&1 &
    fi
    PIDS+=($!)
    wait_for 10 bash -c "echo >/dev/tcp/127.0.0.1/$BPORT" || bad "broker $1 did not start: $(cat "$1.log")"
}
pub() { # DEVICE CERT-FILE MESSAGE
    timeout 20 mosquitto_pub -h 127.0.0.1 -p "$BPORT" --cafile broker-ca.crt --cert "$T/$1/certs/$2" \
        --key "$T/$1/certs/tls.key" -i "pub-$1" -t telemetry -m "$3" -q 1
}
expect 0 attest d2
broker now
timeout 20 mosquitto_sub -h 127.0.0.1 -p "$BPORT" --cafile broker-ca.crt --cert "$T/d2/certs/client.crt" \
    --key "$T/d2/certs/tls.key" -i sub-d2 -t telemetry -C 1 -W 15 >sub.txt 2>sub.err &
SUB=$!
sleep 1
expect 0 pub d1 client.crt "hello from d1"
wait $SUB && ok || bad "the subscriber got nothing: $(cat sub.err)"
contains sub.txt "hello from d1"
expect_refused() { # WHAT DEVICE CERT
    if pub "$2" "$3" "from $2" >pub.out 2>&1; then bad "$1: the broker accepted it"; else ok; fi
}
expect_refused "a device of another tenant" d3 client.crt
expect_refused "an identity-only device's service certificate" d5 service.crt
expect_refused "an unclaimed device's service certificate" d4 service.crt
# A device that stops passing loses its client certificate at once (checked above); one
# that kept a copy is refused once it expires: the same certificate, 23 h and 25 h later.
broker later "+23h"
expect 0 pub d1 client.crt "d1, 23 hours later"
broker expired "+25h"
expect_refused "an expired client certificate" d1 client.crt
grep -qiE "certificate (has )?expired|certificate verify failed|OpenSSL Error" expired.log && ok ||
    bad "the broker did not log why it refused the expired certificate: $(cat expired.log)"

echo "attacks.attestation: $pass passed, $failed failed"
[ "$failed" -eq 0 ]
