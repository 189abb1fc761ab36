#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Compartment attacks: a real pavised (software root of trust) runs hostile apps, each trying
# one way out of its compartment, next to a bystander that must keep running. The test runs
# in its own network and mount namespaces (so the firewall and the mounts are its own), with
# dnsmasq as the upstream resolver and TCP listeners on loopback addresses standing in for a
# listed host (allowed.test -> 127.0.0.2) and an unlisted one (other.test -> 127.0.0.4).
#
# usage: compartment_attacks.sh PAVISED PAVISE PAVISE_DEVICE HOSTILE SOURCE_DIR TMP_BASE
set -euo pipefail
if [ -z "${PV_ATTACK_NS:-}" ]; then
    exec env PV_ATTACK_NS=1 unshare --net --mount --propagation private -- bash "$0" "$@"
fi
PAVISED=$1 PAVISE=$2 PDEV=$3 HOSTILE=$4 SRC=$5 TMPBASE=$6
mkdir -p "$TMPBASE"
T=$(mktemp -d "$TMPBASE/compartment.XXXXXX")
PIDS=()
cleanup() {
    local rc=$?
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ $rc -ne 0 ]; then
        echo "---- pavised.log (last 80 lines) ----" >&2
        tail -80 "$T/pavised.log" >&2 || true
    fi
    umount -R "$T/state/run/storage" 2>/dev/null || true
    umount "${PERIPH:-/nonexistent}" 2>/dev/null || true
    [ -n "${PV_KEEP:-}" ] && echo "kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
ip link set lo up

. "$SRC/tests/lib/device-fixture.sh"
fail() { fx_fail "$@"; }
wait_for() { fx_wait_for "$@"; }
P() { fx_p "$@"; }
fx_keys
fx_manufacture

# ---- a peripheral: a node of the test's own, bound over a /dev path in this namespace, so
# that what pavised does to it (owner, mode) never touches the host's ----
PERIPH=/dev/ttyS0
[ -c "$PERIPH" ] || PERIPH=/dev/console
mknod "$T/periph" c 1 3
mount --bind "$T/periph" "$PERIPH"

# ---- the network the apps see: an upstream resolver and two hosts ----
ip addr add 127.0.0.2/8 dev lo 2>/dev/null || true
/usr/sbin/dnsmasq --keep-in-foreground --no-resolv --no-hosts --port=5353 \
    --listen-address=127.0.0.1 --bind-interfaces --address=/allowed.test/127.0.0.2 \
    --address=/other.test/127.0.0.4 --pid-file="$T/dnsmasq.pid" --user=root --log-facility=- \
    >dnsmasq.log 2>&1 &
PIDS+=($!)
python3 - >listeners.log 2>&1 <<'PY' &
import socket, threading
def serve(addr):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 8080)); s.listen(64)
    while True:
        c, _ = s.accept(); c.close()
for a in ("127.0.0.2", "127.0.0.4"):
    threading.Thread(target=serve, args=(a,), daemon=True).start()
threading.Event().wait()
PY
PIDS+=($!)

# ---- pavised ----
fx_pavised --dns-upstream 127.0.0.1:5353 --restart-min-ms 600000 --stop-grace-ms 2000 \
    --peripherals "$PERIPH"
PIDS+=("$PAVISED_PID")

# ---- the apps ----
n=0
app() { # NAME ATTACK-ARGS(JSON array) [CAPABILITIES(JSON)]
    n=$((n + 1))
    local dir=$T/src/$1 cid
    cid=$(printf '5a5a5a5a-0000-4000-8000-%012d' "$n")
    mkdir -p "$dir/bin"
    cp "$HOSTILE" "$dir/bin/hostile"
    cp "$HOSTILE" "$dir/bin/other"
    fx_pack "$1" "{\"SchemaVersion\": 1, \"Name\": \"$1\", \"ComponentId\": \"$cid\",
 \"EntryPoint\": \"/bin/hostile\", \"CmdArgs\": $2, \"Version\": \"1.0.0\",
 \"Capabilities\": ${3:-{\}}}" "$dir"
    eval "CID_${1//-/_}=$cid"
}
cid_of() { local v="CID_${1//-/_}"; echo "${!v}"; }
install() { fx_install "$@"; }

app bystander '["idle"]' '{"MutableStorage": {"SizeKB": 64}}'
install bystander
wait_for 20 grep -q "app bystander: RESULT idle ok" pavised.log || fail "the bystander did not start"
IMG_bystander=$(D image list-installed --output json | python3 -c "import json,sys; print([i['imageId'] for i in json.load(sys.stdin) if i['name']=='bystander'][0])")

# attack name -> CmdArgs, capabilities, expected outcome (blocked: an error; killed: FAILURE KIND)
declare -A EXPECT
attack() { # NAME ARGS CAPS EXPECT
    app "$1" "$2" "$3"
    EXPECT[$1]=$4
    install "$1"
}
attack read-storage "[\"read\", \"$S/run/storage/$CID_bystander/starts\"]" '' blocked
attack read-image "[\"read\", \"$S/apps/images/$IMG_bystander/bin/hostile\"]" '' blocked
attack read-state "[\"read\", \"$S/device.conf\"]" '' blocked
attack write-app '["write", "/app/planted"]' '' blocked
attack write-etc '["write", "/etc/planted"]' '' blocked
attack write-root '["write", "/planted"]' '' blocked
attack quota '["fill", "64", "64"]' '{"MutableStorage": {"SizeKB": 64}}' blocked
attack exec-sh '["exec", "/bin/sh"]' '' blocked
attack exec-other '["exec", "/app/bin/other"]' '' blocked
attack forkbomb '["forkbomb"]' '' blocked
attack memory '["memory", "256"]' '{"MemoryLimitKB": 16384}' oom
attack raw-socket '["raw-socket"]' '' seccomp
attack packet-socket '["packet-socket"]' '' seccomp
attack ptrace '["ptrace", "1"]' '' seccomp
attack mount '["mount"]' '' seccomp
attack seccomp-retry '["seccomp-retry"]' '' seccomp
attack connect-ip '["connect", "127.0.0.4", "8080"]' '{"AllowedConnections": ["allowed.test"]}' blocked
attack connect-name '["resolve", "other.test", "8080"]' '{"AllowedConnections": ["allowed.test"]}' blocked
attack reach '["reach", "allowed.test", "8080"]' '{"AllowedConnections": ["allowed.test"]}' ok
attack dns-other '["dns", "127.0.0.1", "5353"]' '{"AllowedConnections": ["allowed.test"]}' blocked
attack udp-reuse '["udp-reuse", "127.0.0.1", "5353"]' '{"AllowedConnections": ["allowed.test"]}' blocked
attack device-undeclared "[\"device\", \"$PERIPH\"]" '' blocked
attack signal '["signal"]' '' blocked
# The device key: never in a compartment; signing only with DeviceAuthentication, at a
# bounded rate, with a digest of a real hash's length.
attack read-key '["read", "/run/pavise/device/tls.key"]' '{"DeviceAuthentication": true}' blocked
attack sign-denied '["sign", "denied"]' '' blocked
attack sign-flood '["sign", "flood"]' '{"DeviceAuthentication": true}' blocked
attack sign-malformed '["sign", "malformed"]' '{"DeviceAuthentication": true}' blocked
attack sign-order '["sign", "order"]' '{"DeviceAuthentication": true}' ok
attack sign-exit '["sign", "exit"]' '{"DeviceAuthentication": true}' blocked

# A peripheral the board allows is the declaring app's own; one it does not allow never is.
attack serial "[\"device\", \"$PERIPH\", \"declared\"]" "{\"Peripherals\": [\"$PERIPH\"]}" ok
attack devmem '["device", "/dev/mem", "declared"]' '{"Peripherals": ["/dev/mem"]}' setup
# A peripheral is held by one app only: a second app declaring it is refused.
app serial2 '["idle"]' "{\"Peripherals\": [\"$PERIPH\"]}"
if D image install --image-package "$T/apps/serial2.imagepackage" >out.txt 2>&1; then
    fail "a second app declaring $PERIPH was installed"
fi
grep -q "held by" out.txt || { cat out.txt; fail "the refusal does not say the peripheral is held"; }

status_of() { D app show-status --component-id "$1" --output json >st.json; }
for name in "${!EXPECT[@]}"; do
    cid=$(cid_of "$name")
    want=${EXPECT[$name]}
    case $want in
    blocked)
        wait_for 30 grep -q "app $name: RESULT .* blocked" pavised.log ||
            { grep "app $name:" pavised.log >&2 || true; fail "$name: not blocked"; }
        ;;
    ok)
        wait_for 30 grep -q "app $name: RESULT .* ok" pavised.log ||
            { grep "app $name:" pavised.log >&2 || true; fail "$name: a listed host could not be reached"; }
        ;;
    esac
    if grep -q "app $name: RESULT .* ESCAPED" pavised.log; then
        fail "$name: ESCAPED"
    fi
    if [ "$want" != ok ]; then
        # the failure is recorded, of the right kind
        kind=$want
        [ "$want" = blocked ] && kind=
        wait_for 30 bash -c "'$PAVISE' device app show-status --component-id $cid --socket '$T/pavised.sock' --output json | python3 -c \"import json,sys; d=json.load(sys.stdin); ev=d.get('failureEvents',[]); sys.exit(0 if ev and ('$kind'=='' or any(e['kind']=='$kind' for e in ev)) else 1)\"" ||
            { status_of "$cid"; cat st.json >&2; fail "$name: no failure recorded (want ${kind:-any})"; }
    fi
    echo "ok: $name ($want)"
done

# seccomp failures name the syscall (x86_64 numbers)
if [ "$(uname -m)" = x86_64 ]; then
    for pair in raw-socket:41 packet-socket:41 ptrace:101 mount:165; do
        name=${pair%%:*} nr=${pair##*:}
        status_of "$(cid_of "$name")"
        python3 -c "import json; d=json.load(open('st.json')); assert any(e.get('syscall')==$nr for e in d['failureEvents']), d" ||
            fail "$name: syscall $nr not recorded"
    done
fi

# a sign without the grant, and a malformed one, are policy failures of the app
for name in sign-denied sign-malformed; do
    status_of "$(cid_of "$name")"
    python3 -c "import json; d=json.load(open('st.json')); assert any(e['kind']=='policy' for e in d['failureEvents']), d" ||
        fail "$name: no policy failure recorded"
done
[ ! -e "$S/run/apps/$(cid_of read-key)/tls.key" ] || fail "the device key was copied for an app"

# the bystander kept running, never restarted, and its storage is intact
status_of "$CID_bystander"
python3 -c "import json; d=json.load(open('st.json')); assert d['state']=='running' and d['restarts']==0 and d['failures']==0, d" ||
    { cat st.json; fail "the bystander was disturbed"; }
kill -0 "$PAVISED_PID" || fail "pavised died"
echo "PASS: every attack was stopped and recorded; the bystander kept running"
