# SPDX-License-Identifier: Apache-2.0
# Sourced by the device runtime's tests and benchmarks: a manufactured device (software root
# of trust) and a running pavised, in the caller's network and mount namespaces.
#
# Needs: T (the test's directory, current directory), PAVISED, PAVISE, PDEV.
# Gives: fx_fail, fx_wait_for, fx_keys, fx_manufacture, fx_pavised, fx_pack, fx_install, D.

fx_fail() { echo "FAIL: $*" >&2; exit 1; }
fx_wait_for() { # SECONDS CMD...
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}
fx_p() { "$PAVISE" "$@" >"$T/out.txt" 2>&1 || { cat "$T/out.txt" >&2; fx_fail "pavise $*"; }; }

# The update root (root.key/crt) and an app signer under it (app.key/crt); a factory.
fx_keys() {
    fx_p keys create-ca --output-key "$T/root.key" --output-cert "$T/root.crt" --subject "CN=Update Root"
    fx_p keys create-signing --ca-key "$T/root.key" --ca-cert "$T/root.crt" \
        --output-key "$T/app.key" --output-cert "$T/app.crt" --subject "CN=App Signing"
    fx_p keys create-ca --output-key "$T/fca.key" --output-cert "$T/fca.crt" --subject "CN=Factory CA"
    fx_p keys create-signing --ca-key "$T/fca.key" --ca-cert "$T/fca.crt" \
        --output-key "$T/factory.key" --output-cert "$T/factory.crt" --subject "CN=Factory"
}

# A device in $T/state; root-of-trust options in "$@" (default: --rot software).
fx_manufacture() {
    S=$T/state
    [ $# -gt 0 ] || set -- --rot software
    "$PDEV" manufacture --state "$S" "$@" --trust-anchor "$T/root.crt" \
        --factory-key "$T/factory.key" --factory-cert "$T/factory.crt" --output json \
        >"$T/out.txt" 2>&1 || { cat "$T/out.txt" >&2; fx_fail manufacture; }
    DEVICE_ID=$(python3 -c "import json; print(json.load(open('$T/out.txt'))['deviceId'])")
}

# pavised in the background (PAVISED_PID), logging to $T/pavised.log; extra options in "$@".
fx_pavised() {
    rm -f "$T/ready"
    "$PAVISED" --state "$S" --socket "$T/pavised.sock" "$@" --ready-file "$T/ready" \
        >>"$T/pavised.log" 2>&1 &
    PAVISED_PID=$!
    fx_wait_for 30 test -s "$T/ready" || { tail -30 "$T/pavised.log" >&2; fx_fail "pavised did not start"; }
}
D() { "$PAVISE" device "$@" --socket "$T/pavised.sock"; }

# fx_pack NAME MANIFEST-JSON SOURCE-DIR: $T/apps/NAME.imagepackage signed with app.key
fx_pack() {
    mkdir -p "$T/apps"
    printf '%s\n' "$2" >"$T/apps/$1.json"
    fx_p image-package pack-application --manifest "$T/apps/$1.json" --package-directory "$3" \
        --key "$T/app.key" --cert "$T/app.crt" --destination "$T/apps/$1.imagepackage" --force
}
fx_install() { D image install --image-package "$T/apps/$1.imagepackage" >"$T/out.txt" 2>&1 ||
    { cat "$T/out.txt" >&2; fx_fail "install $1"; }; }
