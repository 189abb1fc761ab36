#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Manufacturing and verified, measured boot, end to end with the real programs: once on
# a real swtpm (started here, in this test's own directory) and once on the software root
# of trust. Usage: boot_test.sh PAVISE PAVISE_DEVICE PAVISE_BOOT SOURCE_DIR TMPBASE
set -uo pipefail
PAVISE=$1
PDEV=$2
PBOOT=$3
SRC=$4
TMPBASE=${5:-/tmp}
mkdir -p "$TMPBASE"
T=$(mktemp -d "$TMPBASE/boot-XXXXXX")
cleanup() {
    "$SRC/scripts/swtpm-stop" "$T/tpm" >/dev/null 2>&1
    "$SRC/scripts/swtpm-stop" "$T/tpm2" >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"

. "$(dirname "$0")/testlib.sh"
json() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval("d" + sys.argv[2]))' "$1" "$2"; }

# ---- keys: the update root signs OS images; the factory signs manufacturing records ----
expect 0 "$PAVISE" keys create-ca --output-key root.key --output-cert root.crt --subject "CN=Update Root,O=Pavise Test"
expect 0 "$PAVISE" keys create-signing --ca-key root.key --ca-cert root.crt --output-key os.key \
    --output-cert os.crt --subject "CN=OS Signing"
expect 0 "$PAVISE" keys create-ca --output-key other.key --output-cert other.crt --subject "CN=Other Root"
expect 0 "$PAVISE" keys create-signing --ca-key other.key --ca-cert other.crt --output-key evil.key \
    --output-cert evil.crt --subject "CN=Evil Signing"
expect 0 "$PAVISE" keys create-ca --output-key factory-ca.key --output-cert factory-ca.crt --subject "CN=Factory CA"
expect 0 "$PAVISE" keys create-signing --ca-key factory-ca.key --ca-cert factory-ca.crt \
    --output-key factory.key --output-cert factory.crt --subject "CN=Line 1"

# ---- OS images: a runtime that records that it ran, and where from ----
mkdir -p osroot/bin
cat >osroot/bin/runtime <<'EOF'
#!/bin/sh
echo "$PAVISE_BOOT_SLOT $PAVISE_OS_VERSION" >"$PAVISE_STATE_DIR/../ran"
EOF
chmod 755 osroot/bin/runtime
OSID=6b1f4b0e-3c1a-4d55-9a0e-6f3e2c1d0b0a
pack_os() { # DEST VERSION COUNTER KEY CERT
    expect 0 "$PAVISE" image-package pack-os --package-directory osroot --entry-point /bin/runtime \
        --component-id $OSID --name pavise-os --version "$2" --security-counter "$3" \
        --key "$4" --cert "$5" --destination "$1"
}
pack_os os1.imagepackage 1.0.0 1 os.key os.crt
pack_os os2.imagepackage 2.0.0 2 os.key os.crt
pack_os evil.imagepackage 9.0.0 9 evil.key evil.crt
expect 2 "$PAVISE" image-package pack-os --package-directory osroot --entry-point /bin/runtime \
    --component-id $OSID --name x --version 1 --security-counter -1 --key os.key --cert os.crt \
    --destination x.imagepackage
[ ! -e x.imagepackage ] && ok || bad "package written for a refused counter"
cp os1.imagepackage tampered.imagepackage
size=$(stat -c %s tampered.imagepackage)
printf '\x01' | dd of=tampered.imagepackage bs=1 seek=$((size - 700)) conv=notrunc status=none
mkdir -p appdir/bin && cp osroot/bin/runtime appdir/bin/app
cat >app.json <<'EOF'
{"SchemaVersion": 1, "Name": "app", "ComponentId": "11111111-2222-4333-8444-555555555555",
 "EntryPoint": "/bin/app", "Capabilities": {}}
EOF
expect 0 "$PAVISE" image-package pack-application --manifest app.json --package-directory appdir \
    --key os.key --cert os.crt --destination app.imagepackage

# install SLOT PACKAGE (or "none")
install_slot() {
    mkdir -p "$S/slots/$1"
    rm -f "$S/slots/$1/os.imagepackage"
    [ "$2" = none ] || cp "$2" "$S/slots/$1/os.imagepackage"
}
boot_ok() { # SLOT VERSION: boots and the runtime from SLOT ran
    rm -f "$T/ran"
    expect 0 "$PBOOT" --state "$S" "${BOOTARGS[@]}"
    if [ -f "$T/ran" ] && [ "$(cat "$T/ran")" = "$1 $2" ]; then ok; else
        bad "expected the runtime of slot $1 ($2) to run; ran: $(cat "$T/ran" 2>/dev/null)"; cat err.txt >&2
    fi
}
boot_refused() { # nothing runs, non-zero exit
    rm -f "$T/ran"
    expect 1 "$PBOOT" --state "$S" "${BOOTARGS[@]}"
    [ ! -e "$T/ran" ] && ok || bad "a runtime ran although boot was refused"
}

run_suite() { # KIND MANUFACTURE-ARGS...
    local kind=$1; shift
    S=$T/dev-$kind
    echo "== $kind"

    # -- manufacture --
    expect 0 "$PDEV" manufacture --state "$S" --rot "$kind" "$@" --trust-anchor root.crt \
        --factory-key factory.key --factory-cert factory.crt --output json
    cp out.txt mfg.json
    local id
    id=$(json mfg.json "['deviceId']")
    [[ "$id" =~ ^[0-9a-f]{64}$ ]] && ok || bad "device ID '$id'"
    [ "$(json mfg.json "['rot']")" = "$kind" ] && ok || bad "kind"
    [ -s "$S/manufacturing-record.cbor" ] && ok || bad "no manufacturing record"
    expect 1 "$PDEV" manufacture --state "$S" --rot "$kind" "$@" --trust-anchor root.crt \
        --factory-key factory.key --factory-cert factory.crt
    contains err.txt "already holds a manufactured device"
    expect 0 "$PDEV" show --state "$S" --output json
    cp out.txt show.json
    [ "$(json show.json "['deviceId']")" = "$id" ] && ok || bad "show: device ID differs"
    [ "$(json show.json "['counters']['os']")" = 0 ] && ok || bad "counter not 0"
    [ "$(json show.json "['trustAnchor']")" != "not fused" ] && ok || bad "not fused"
    expect 0 "$PDEV" show --state "$S"
    contains out.txt "Device ID:        $id"
    contains out.txt "Root of trust:    $kind"

    # -- boot --
    install_slot a none; install_slot b none
    boot_refused
    contains err.txt "no slot holds an OS image that verifies"
    contains "$S/boot/last-boot.json" '"bootedSlot": null'

    install_slot a os1.imagepackage; install_slot b os1.imagepackage
    boot_ok a 1.0.0
    expect 0 "$PDEV" show --state "$S" --output json
    cp out.txt show.json
    [ "$(json show.json "['eventLogReplays']")" = True ] && ok || bad "event log does not replay"
    [ "$(json show.json "[\"events\"][0][\"type\"]")" = os-image ] && ok || bad "no os-image event"
    [ "$(json show.json "[\"events\"][1][\"type\"]")" = boot-config ] && ok || bad "no boot-config event"
    contains show.json "slot=a image-id="

    # Tampered active slot: boots b, and records why a was refused.
    install_slot a tampered.imagepackage
    boot_ok b 1.0.0
    contains err.txt "slot a refused"
    contains "$S/boot/last-boot.json" '"bootedSlot": "b"'
    contains "$S/boot/last-boot.json" 'does not match'

    # The active pointer is honoured.
    install_slot a os1.imagepackage; install_slot b os2.imagepackage
    echo b >"$S/slots/active"
    boot_ok b 2.0.0
    echo garbage >"$S/slots/active"
    boot_ok a 1.0.0
    rm -f "$S/slots/active"

    # Wrong signer, wrong image type: refused, other slot boots.
    install_slot a evil.imagepackage
    boot_ok b 2.0.0
    contains "$S/boot/last-boot.json" 'unable to get local issuer certificate'
    install_slot a app.imagepackage
    boot_ok b 2.0.0
    contains "$S/boot/last-boot.json" 'not an OS image'

    # Anti-rollback: raise the floor to 2; image 1 is refused, in both slots.
    expect 0 "$PDEV" advance-counter --state "$S" --counter os --to 2
    expect 3 "$PDEV" advance-counter --state "$S" --counter os --to 1
    contains err.txt "cannot go back"
    install_slot a os1.imagepackage; install_slot b os1.imagepackage
    boot_refused
    contains err.txt "security counter 1 is below the root of trust's 2"
    install_slot b os2.imagepackage
    boot_ok b 2.0.0

    # --check verifies and reports, running nothing.
    rm -f "$T/ran"
    expect 0 "$PBOOT" --state "$S" "${BOOTARGS[@]}" --check
    contains out.txt "slot a: refused"
    contains out.txt "slot b: ok: pavise-os 2.0.0"
    [ ! -e "$T/ran" ] && ok || bad "--check ran the runtime"

    # An update root that is not the fused one: nothing verifies.
    cp "$S/trust/update-root.crt" saved-root.crt
    cp other.crt "$S/trust/update-root.crt"
    boot_refused
    contains err.txt "does not match the trust anchor fused"
    cp saved-root.crt "$S/trust/update-root.crt"

    # A symlink planted for run/ sends nothing elsewhere: both slots are refused.
    mkdir -p "$T/elsewhere/os" && touch "$T/elsewhere/os/keep"
    rm -rf "$S/run" && ln -s "$T/elsewhere" "$S/run"
    boot_refused
    contains "$S/boot/last-boot.json" "is not a directory"
    [ -e "$T/elsewhere/os/keep" ] && ok || bad "boot removed files through a symlink"
    rm -f "$S/run"
    boot_ok b 2.0.0

    # Usage.
    expect 2 "$PBOOT"
    expect 2 "$PBOOT" --state "$S" stray
    expect 2 "$PDEV" advance-counter --state "$S" --counter 9 --to 1
    expect 1 "$PDEV" show --state "$T/nowhere"
    contains err.txt "not a manufactured device"
}

# ---- software root of trust ----
BOOTARGS=(--rot software)
run_suite software
S=$T/dev-software
[ "$(stat -c %a "$S/rot")" = 700 ] && ok || bad "rot dir mode $(stat -c %a "$S/rot")"
# The boot's own default is the TPM: a device.conf saying "software" cannot choose.
rm -f "$T/ran"
expect 1 "$PBOOT" --state "$S"
contains err.txt "the device says it has a software root of trust; this boot expects tpm"
[ ! -e "$T/ran" ] && ok || bad "a runtime ran on a downgraded root of trust"
# A damaged device.conf: a clear error, nothing runs, and it is left as it was.
cp "$S/device.conf" conf.saved
for bad_conf in 'not json' '{"version":1,"rot":"software","extra":1}' '{"version":1,"rot":"dice"}' \
    '{"version":2,"rot":"software"}' '{"version":1}' "$(head -c 5000 /dev/zero | tr '\0' ' ')"; do
    printf '%s' "$bad_conf" >"$S/device.conf"
    rm -f "$T/ran"
    expect 1 "$PBOOT" --state "$S" --rot software
    contains err.txt "device.conf"
    [ ! -e "$T/ran" ] && ok || bad "a runtime ran with a damaged device.conf"
    expect 3 "$PDEV" show --state "$S"
done
cp conf.saved "$S/device.conf"

# ---- TPM (swtpm) ----
TCTI=$("$SRC/scripts/swtpm-start" "$T/tpm") || { bad "swtpm did not start"; TCTI=; }
if [ -n "$TCTI" ]; then
    BOOTARGS=(--tcti "$TCTI")
    run_suite tpm --tcti "$TCTI"
    S=$T/dev-tpm
    # pavise-boot takes the TPM connection only from its command line: not from
    # device.conf (which records the swtpm here), not from the environment.
    rm -f "$T/ran"
    PAVISE_TCTI=$TCTI expect 1 "$PBOOT" --state "$S"
    [ ! -e "$T/ran" ] && ok || bad "pavise-boot used a TCTI from device.conf or the environment"
    expect 1 "$PBOOT" --state "$S" --rot software
    contains err.txt "the device says it has a tpm root of trust; this boot expects software"
    # No private key anywhere in the state directory.
    if grep -rlE 'PRIVATE KEY' "$S" >/dev/null; then bad "a private key is in $S"; else ok; fi
    # Counters survive a TPM restart; the PCR and the log start again.
    "$SRC/scripts/swtpm-stop" "$T/tpm"
    "$SRC/scripts/swtpm-start" "$T/tpm" >/dev/null || bad "swtpm did not restart"
    expect 0 "$PDEV" show --state "$S" --output json
    cp out.txt show.json
    [ "$(json show.json "['counters']['os']")" = 2 ] && ok || bad "counter lost across a TPM restart"
    [ "$(json show.json "['measurement']")" = "$(printf '0%.0s' {1..64})" ] && ok || bad "PCR not reset"
    [ "$(json show.json "['events']")" = "[]" ] && ok || bad "stale event log shown"
    boot_ok b 2.0.0
    # A device manufactured on another TPM cannot use this one's identity.
    TCTI2=$("$SRC/scripts/swtpm-start" "$T/tpm2") || bad "second swtpm did not start"
    expect 1 "$PDEV" show --state "$S" --tcti "$TCTI2"
    "$SRC/scripts/swtpm-stop" "$T/tpm2"

    # A TPM without an EK certificate: manufacture fails before fusing anything, takes the
    # identity back, and can be retried (here it fails the same way, not "already holds").
    mkdir -p "$T/bare"
    swtpm socket --tpm2 --tpmstate dir="$T/bare" --server type=unixio,path="$T/bare/sock" \
        --ctrl type=unixio,path="$T/bare/sock.ctrl" --flags startup-clear \
        --pid file="$T/bare/swtpm.pid" --daemon
    for _ in $(seq 1 100); do [ -S "$T/bare/sock" ] && break; sleep 0.05; done
    for attempt in 1 2; do
        expect 1 "$PDEV" manufacture --state "$T/dev-bare-$attempt" --rot tpm --tcti "swtpm:path=$T/bare/sock" \
            --trust-anchor root.crt --factory-key factory.key --factory-cert factory.crt
        contains err.txt "EK certificate"
        lacks err.txt "already holds"
        [ ! -e "$T/dev-bare-$attempt/device.conf" ] && ok || bad "device.conf written by a failed manufacture"
    done
    "$SRC/scripts/swtpm-stop" "$T/bare"
fi

echo "boot_test: $pass passed, $failed failed"
[ "$failed" -eq 0 ]
