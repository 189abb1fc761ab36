#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The apps' power actions (PowerControls): refused while the board gives none (--power
# none, the default); with --power kernel, a reboot or power-down asked for by an app stops
# every app and ends in reboot(2). pavised runs as the init of a PID namespace this test
# creates, where reboot(2) ends the namespace (its init killed with SIGHUP for a reboot,
# SIGINT for a power-down) and never the machine: `unshare --pid --fork` makes pavised that
# init, and the test also checks it did.
#
# usage: power_test.sh PAVISED PAVISE PAVISE_DEVICE POWER_APP SOURCE_DIR TMP_BASE
set -euo pipefail
if [ -z "${PV_TEST_NS:-}" ]; then
    exec env PV_TEST_NS=1 unshare --net --mount --propagation private -- bash "$0" "$@"
fi
PAVISED=$1 PAVISE=$2 PDEV=$3 POWER_APP=$4 SRC=$5 TMPBASE=$6
mkdir -p "$TMPBASE"
T=$(mktemp -d "$TMPBASE/power.XXXXXX")
cleanup() {
    local rc=$?
    [ -n "${PAVISED_PID:-}" ] && kill "$PAVISED_PID" 2>/dev/null && wait "$PAVISED_PID" 2>/dev/null
    if [ $rc -ne 0 ]; then
        echo "---- pavised.log (last 40 lines) ----" >&2
        tail -40 "$T/pavised.log" >&2 || true
    fi
    [ -n "${PV_KEEP:-}" ] && echo "kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
ip link set lo up
. "$SRC/tests/lib/device-fixture.sh"
fail() { fx_fail "$@"; }
expect() { # CODE CMD...
    local want=$1 rc=0; shift
    "$@" >out.txt 2>&1 || rc=$?
    [ "$rc" = "$want" ] || { cat out.txt >&2; fail "exit $rc, not $want: $*"; }
}
fx_keys
fx_manufacture
POWER=7a3c1e52-94b0-4f6d-8e21-3c5d7f9a0b14
mkdir -p power/bin
cp "$POWER_APP" power/bin/power-app
power_manifest() { # COUNTER CONTROLS-JSON ACTION...
    local counter=$1 controls=$2 args
    shift 2
    args=$(printf '"%s", ' "$@")
    printf '{"SchemaVersion": 1, "Name": "power", "ComponentId": "%s", "EntryPoint": "/bin/power-app",
 "CmdArgs": [%s], "Version": "1.0.%s", "SecurityCounter": %s,
 "Capabilities": {"PowerControls": %s}}' "$POWER" "${args%, }" "$counter" "$counter" "$controls"
}

# ---- without a board integration (--power none): refused, not faked; a control the
# manifest does not list: denied ----
fx_pavised --dns-upstream 127.0.0.1:5353 --stop-grace-ms 1000
fx_pack power1 "$(power_manifest 1 '["ForceReboot", "SetPowerProfile"]' low-power power-down wait reboot)" power
expect 0 D image install --image-package apps/power1.imagepackage
fx_wait_for 20 grep -q "app power: power reboot: " pavised.log || fail "the app did not ask"
has() { grep -q "$1" pavised.log || { grep "app power" pavised.log >&2; fail "$2"; }; }
has "app power: power low-power: not ready" "low-power without --power was not refused"
has "app power: power power-down: not granted by the app's manifest" "an unlisted control was not denied"
has "app power: power reboot: not ready" "reboot without --power was not refused"
kill -0 "$PAVISED_PID" || fail "pavised stopped"
expect 0 D app show-status --component-id "$POWER" --output json
python3 -c "import json; d=json.load(open('out.txt')); assert d['state']=='running' and any(e['kind']=='policy' for e in d['failureEvents']), d" ||
    fail "the denied control was not recorded as a policy failure"
kill -TERM "$PAVISED_PID"
wait "$PAVISED_PID" || fail "pavised did not exit 0"
PAVISED_PID=

# pavised as the init of a new PID namespace, with the power actions on.
start_in_pidns() { # EXPECTED-SIGNAL
    rm -f ready
    unshare --pid --fork --kill-child -- "$PAVISED" --state "$S" --socket "$T/pavised.sock" \
        --dns-upstream 127.0.0.1:5353 --stop-grace-ms 1000 --power kernel --ready-file "$T/ready" \
        >>pavised.log 2>&1 &
    PAVISED_PID=$!
    # While it runs (the app waits a second before it asks): pavised is PID 1 of a namespace
    # of its own, as unshare --pid --fork makes it. The status below proves it again: on the
    # machine's own namespace reboot(2) would not come back as a signal.
    local inner=
    fx_wait_for 5 pgrep -P "$PAVISED_PID" && inner=$(pgrep -P "$PAVISED_PID" | head -1) || true
    if [ -n "$inner" ] && [ -e "/proc/$inner/ns/pid" ]; then
        [ "$(readlink "/proc/$inner/ns/pid")" != "$(readlink /proc/self/ns/pid)" ] &&
            [ "$(awk '/^NSpid:/ {print $NF}' "/proc/$inner/status")" = 1 ] || {
            kill -KILL "$PAVISED_PID"; fail "pavised is not the init of a PID namespace of its own"; }
    fi
    local rc=0
    wait "$PAVISED_PID" || rc=$?
    PAVISED_PID=
    [ "$rc" = $((128 + $1)) ] || fail "the namespace ended with status $rc, not signal $1"
}

# ---- a reboot: the app is answered, every app stopped, then reboot(2) ----
: >pavised.log
start_in_pidns 1 # SIGHUP: reboot
has "app power: power reboot: success" "the reboot was not granted"
has "power: reboot asked for: stopping every app" "no orderly stop"
has "app power: stopping" "the app was not stopped before the reboot"
has "power: rebooting now" "no reboot"
[ "$(grep -n "app power: stopping" pavised.log | head -1 | cut -d: -f1)" -lt \
  "$(grep -n "power: rebooting now" pavised.log | cut -d: -f1)" ] || fail "rebooted before the app stopped"

# ---- a power-down, by an update that grants it ----
: >pavised.log
fx_pavised --dns-upstream 127.0.0.1:5353 --stop-grace-ms 1000 # --power none: the app is refused
fx_pack power2 "$(power_manifest 2 '["ForcePowerDown"]' wait power-down)" power
expect 0 D image install --image-package apps/power2.imagepackage
fx_wait_for 20 grep -q "app power: power power-down: " pavised.log || fail "the updated app did not ask"
kill -TERM "$PAVISED_PID"
wait "$PAVISED_PID" || fail "pavised did not exit 0"
PAVISED_PID=
: >pavised.log
start_in_pidns 2 # SIGINT: power-down
has "app power: power power-down: success" "the power-down was not granted"
has "power: powering down now" "no power-down"
echo "PASS: power"
