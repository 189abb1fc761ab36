#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# pavised end to end with the CLI on the device: a manufactured device (software root of
# trust) in the test's own network and mount namespaces; the sample apps installed, stopped,
# started, crashed and restarted; refusals that change nothing; a restart of pavised.
#
# usage: pavised_test.sh PAVISED PAVISE PAVISE_DEVICE BUILD_DIR SOURCE_DIR TMP_BASE PAVISE_SERVER
set -euo pipefail
if [ -z "${PV_TEST_NS:-}" ]; then
    exec env PV_TEST_NS=1 unshare --net --mount --propagation private -- bash "$0" "$@"
fi
PAVISED=$1 PAVISE=$2 PDEV=$3 BUILD=$4 SRC=$5 TMPBASE=$6 PSERVER=$7
mkdir -p "$TMPBASE"
T=$(mktemp -d "$TMPBASE/pavised.XXXXXX")
cleanup() {
    local rc=$?
    [ -n "${PAVISED_PID:-}" ] && kill "$PAVISED_PID" 2>/dev/null && wait "$PAVISED_PID" 2>/dev/null
    [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    if [ $rc -ne 0 ]; then
        echo "---- pavised.log (last 60 lines) ----" >&2
        tail -60 "$T/pavised.log" >&2 || true
    fi
    umount -R "$T/state/run/storage" 2>/dev/null || true
    [ -n "${PV_KEEP:-}" ] && echo "kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
ip link set lo up
. "$SRC/tests/lib/device-fixture.sh"
fail() { fx_fail "$@"; }
expect() { # CODE CMD...: runs it, output in out.txt, fails unless it exits with CODE
    local want=$1 rc=0; shift
    "$@" >out.txt 2>&1 || rc=$?
    [ "$rc" = "$want" ] || { cat out.txt >&2; fail "exit $rc, not $want: $*"; }
}
field() { python3 -c "import json,sys; d=json.load(open('out.txt')); print(d$1)"; }
fx_keys
fx_manufacture
fx_pavised --dns-upstream 127.0.0.1:5353 --restart-min-ms 200 --stop-grace-ms 1000

# ---- the device ----
expect 0 D show-attached --output json
[ "$(field "['deviceId']")" = "$DEVICE_ID" ] || fail "show-attached: wrong device ID"
[ "$(field "['developmentMode']")" = False ] || fail "a new device is in development mode"
[ "$(field "['rootOfTrust']")" = software ] || fail "root of trust"
expect 0 D show-attached
grep -q "Device ID" out.txt || fail "show-attached has no table output"

# ---- hello: install, run, quota ----
HELLO=6f1c0c8e-3a1e-4d5b-9a43-0c4f2e9b7d21
mkdir -p hello/bin
cp "$BUILD/apps/hello/bin/hello" hello/bin/hello
fx_pack hello "$(cat "$SRC/apps/hello/app_manifest.json")" hello
expect 0 D image install --image-package apps/hello.imagepackage --output json
[ "$(field "['componentId']")" = "$HELLO" ] || fail "install: wrong component"
state() { D app show-status --component-id "$1" --output json | python3 -c "import json,sys; print(json.load(sys.stdin)['state'])"; }
is_state() { [ "$(state "$1")" = "$2" ]; }
fx_wait_for 20 is_state "$HELLO" running || fail "hello is not running"
fx_wait_for 20 grep -q "app hello: heartbeat" pavised.log || fail "no heartbeat from hello"
expect 0 D app show-quota --component-id "$HELLO" --output json
[ "$(field "['quotaKB']")" = 64 ] || fail "quota"
expect 0 D image list-installed
grep -q "$HELLO" out.txt || fail "list-installed"

# ---- stop and start ----
expect 0 D app stop --component-id "$HELLO"
fx_wait_for 10 is_state "$HELLO" stopped || fail "hello did not stop"
expect 0 D app start --component-id "$HELLO"
fx_wait_for 10 is_state "$HELLO" running || fail "hello did not start again"
expect 5 D app start --component-id 00000000-0000-4000-8000-000000000000
expect 2 D app start --component-id not-a-uuid

# ---- a crash is recorded and the app restarted ----
CRASHER=c296243e-a44e-48ec-99e3-bef6412429ff
mkdir -p crasher/bin
cp "$BUILD/apps/crasher/bin/crasher" crasher/bin/crasher
fx_pack crasher '{"SchemaVersion": 1, "Name": "crasher", "ComponentId": "'$CRASHER'",
 "EntryPoint": "/bin/crasher", "CmdArgs": ["--mode", "segv", "--after", "0"], "Version": "1.0.0",
 "Capabilities": {"MemoryLimitKB": 16384}}' crasher
expect 0 D image install --image-package apps/crasher.imagepackage
crashed() {
    D app show-status --component-id "$CRASHER" --output json | python3 -c "
import json,sys; d=json.load(sys.stdin)
ev=[e for e in d.get('failureEvents',[]) if e['kind']=='crash' and e['signal']==11]
sys.exit(0 if ev and ev[0]['count']>=2 and d['restarts']>=2 else 1)"
}
fx_wait_for 30 crashed || { D app show-status --component-id "$CRASHER" --output json; fail "crashes not recorded or not restarted"; }
expect 0 D app stop --component-id "$CRASHER"

# ---- refusals change nothing ----
before=$(D image list-installed --output json)
cp apps/hello.imagepackage tampered.imagepackage
python3 - <<'PY'
p = "tampered.imagepackage"
b = bytearray(open(p, "rb").read())
b[-3] ^= 1
open(p, "wb").write(b)
PY
expect 3 D image install --image-package tampered.imagepackage
head -c 100 apps/hello.imagepackage >truncated.imagepackage
expect 3 D image install --image-package truncated.imagepackage
expect 6 D image install --image-package apps/hello.imagepackage # the same image again
# a lower security counter for the same component
sed 's/"SecurityCounter": 1/"SecurityCounter": 0/' "$SRC/apps/hello/app_manifest.json" >old.json
fx_pack hello-old "$(cat old.json)" hello
expect 3 D image install --image-package apps/hello-old.imagepackage
grep -q "security counter 0 is below 1" out.txt || { cat out.txt; fail "rollback message"; }
# signed by a key the device does not trust
"$PAVISE" keys create-ca --output-key other.key --output-cert other.crt --subject "CN=Other" >/dev/null
"$PAVISE" keys create-signing --ca-key other.key --ca-cert other.crt --output-key os.key \
    --output-cert os.crt --subject "CN=Other Signing" >/dev/null
"$PAVISE" image-package pack-application --manifest "$SRC/apps/hello/app_manifest.json" \
    --package-directory hello --key os.key --cert os.crt --destination untrusted.imagepackage >/dev/null
expect 3 D image install --image-package untrusted.imagepackage
# development only: sideloading without a capability
expect 3 D sideload deploy --image-package apps/hello.imagepackage
grep -q "not in development mode" out.txt || fail "sideload refusal message"
expect 3 D sideload delete --component-id "$HELLO"
printf 'not a capability' >bad.cap
expect 3 D capability update --capability-file bad.cap
[ ! -e "$S/capability.cbor" ] || fail "a bad capability file was kept"
after=$(D image list-installed --output json)
[ "$before" = "$after" ] || fail "a refused install changed the installed images"

# ---- an update of a running app replaces it ----
sed 's/"SecurityCounter": 1/"SecurityCounter": 2/; s/"Version": "1.0.0"/"Version": "1.1.0"/' \
    "$SRC/apps/hello/app_manifest.json" >new.json
fx_pack hello-new "$(cat new.json)" hello
old_pid=$(D app show-status --component-id "$HELLO" --output json | python3 -c "import json,sys; print(json.load(sys.stdin)['pid'])")
expect 0 D image install --image-package apps/hello-new.imagepackage --output json
[ "$(field "['replaced']")" = True ] || fail "the update did not say it replaced the app"
new_running() { D app show-status --component-id "$HELLO" --output json | python3 -c "
import json,sys; d=json.load(sys.stdin); sys.exit(0 if d['state']=='running' and d['version']=='1.1.0' and d.get('pid') != $old_pid else 1)"; }
fx_wait_for 20 new_running || fail "the new version is not running"
kill -0 "$old_pid" 2>/dev/null && fail "the old version's init is still alive"
[ "$(D image list-installed --output json | python3 -c "import json,sys; print(len(json.load(sys.stdin)))")" = 2 ] ||
    fail "the old image was not removed"

# ---- an app that may defer updates: update-ready, a deferral, update-started, then the update ----
DEFER=5e7a0c1d-2b3c-4d5e-8f60-718293a4b5c6
defer_manifest() { # VERSION COUNTER
    printf '{"SchemaVersion": 1, "Name": "deferrer", "ComponentId": "%s", "EntryPoint": "/bin/hello",
 "CmdArgs": ["--interval", "60", "--defer-updates", "2"], "Version": "%s", "SecurityCounter": %s,
 "Capabilities": {"SoftwareUpdateDeferral": true, "SystemEventNotifications": true}}' "$DEFER" "$1" "$2"
}
fx_pack deferrer1 "$(defer_manifest 1.0.0 1)" hello
fx_pack deferrer2 "$(defer_manifest 2.0.0 2)" hello
expect 0 D image install --image-package apps/deferrer1.imagepackage
fx_wait_for 20 grep -q "app deferrer: update events: " pavised.log || fail "the deferrer did not register"
grep "app deferrer: update events: " pavised.log | grep -qi "ok\|success" || { grep "app deferrer" pavised.log; fail "registration refused"; }
dpid=$(D app show-status --component-id "$DEFER" --output json | python3 -c "import json,sys; print(json.load(sys.stdin)['pid'])")
expect 0 D image install --image-package apps/deferrer2.imagepackage --output json
[ "$(field "['updatePending']")" = True ] || { cat out.txt; fail "the update was not staged for the app to defer"; }
fx_wait_for 10 grep -q "app deferrer: defers its update by 2 s" pavised.log || fail "the app did not defer"
expect 0 D app show-status --component-id "$DEFER" --output json
[ "$(field "['version']")" = 1.0.0 ] && [ "$(field "['pid']")" = "$dpid" ] || fail "the deferred update stopped the app"
[ "$(field "['updatePending']['version']")" = 2.0.0 ] || fail "the pending update is not shown"
left=$(field "['updatePending']['deferralLeftSeconds']")
[ "$left" -le 86398 ] && [ "$left" -ge 86390 ] || fail "the deferral left: $left"
deferred_new() { D app show-status --component-id "$DEFER" --output json | python3 -c "
import json,sys; d=json.load(sys.stdin); sys.exit(0 if d['state']=='running' and d['version']=='2.0.0' and 'updatePending' not in d else 1)"; }
fx_wait_for 20 deferred_new || fail "the update did not go ahead after the deferral"
grep -q "app deferrer: agrees to its update" pavised.log || fail "the app was not asked again"
grep -q "app deferrer: update starting: saving state" pavised.log || fail "no update-started event"
kill -0 "$dpid" 2>/dev/null && fail "the deferring version's init is still alive"
# staged again, then the app is stopped by its operator: the update is applied at once
# and the app stays stopped
fx_pack deferrer3 "$(defer_manifest 3.0.0 3)" hello
expect 0 D image install --image-package apps/deferrer3.imagepackage --output json
[ "$(field "['updatePending']")" = True ] || fail "the second update was not staged"
expect 0 D app stop --component-id "$DEFER"
stopped_new() { D app show-status --component-id "$DEFER" --output json | python3 -c "
import json,sys; d=json.load(sys.stdin); sys.exit(0 if d['state']=='stopped' and d['version']=='3.0.0' and 'updatePending' not in d else 1)"; }
fx_wait_for 20 stopped_new || fail "a stop during a staged update did not apply it, stopped"
sleep 1
stopped_new || fail "the updated app was started although it was stopped"
# one that is not running has nobody to defer: updated at once
fx_pack deferrer4 "$(defer_manifest 4.0.0 4)" hello
expect 0 D image install --image-package apps/deferrer4.imagepackage --output json
[ "$(field "['updatePending']")" = False ] || fail "an update of a stopped app was staged"

# ---- the local API refuses bad requests, and changes nothing ----
before_api=$(D image list-installed --output json)
python3 - "$T/pavised.sock" apps/hello.imagepackage >api.txt 2>&1 <<'PY' || { cat api.txt; fail "local API bad input"; }
import json, os, socket, sys
path, pkg = sys.argv[1], sys.argv[2]
def call(payload, fds=()):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    socket.send_fds(s, [payload], list(fds)) if fds else s.send(payload)
    r = json.loads(s.recv(1 << 20))
    s.close()
    return r
def refused(payload, words, fds=()):
    r = call(payload, fds)
    assert r["ok"] is False and words in r["error"]["message"], (payload[:60], r)
refused(b'{"version":1,"op":"image.install"}', "carries no file")
wr = os.open(pkg, os.O_WRONLY)
refused(b'{"version":1,"op":"image.install"}', "not open for reading", [wr])
pa = os.open(pkg, os.O_PATH)
refused(b'{"version":1,"op":"image.install"}', "not open for reading", [pa])
refused(b'{"version":1,"op":"no.such"}', "unknown op")
refused(b'{"version":2,"op":"device.show"}', "version")
refused(b'{"version":1,"op":"device.show","extra":1}', "extra")
refused(b'{"version":1,"op":"app.start","componentId":"not-a-uuid"}', "UUID")
refused(b'{"version":1,"op":', "")
refused(b'{"version":1,"op":"device.show","op":"app.stop"}', "")
refused(b'x' * (65 * 1024), "larger than")
print("ok")
PY
[ "$(D image list-installed --output json)" = "$before_api" ] || fail "a refused API request changed the installed images"

# ---- only root may use the API ----
chmod 0666 "$T/pavised.sock"
chmod 0711 "$T"
expect 1 setpriv --reuid=65534 --regid=65534 --clear-groups "$PAVISE" device show-attached --socket "$T/pavised.sock"
grep -q "only root" out.txt || { cat out.txt; fail "a non-root caller was not refused by pavised"; }
chmod 0600 "$T/pavised.sock"

# ---- a restart keeps the apps and the failures ----
kill -TERM "$PAVISED_PID"
wait "$PAVISED_PID" || fail "pavised did not exit 0 on SIGTERM"
PAVISED_PID=
grep -q "stopping every app" pavised.log || fail "no shutdown"
fx_pavised --dns-upstream 127.0.0.1:5353 --restart-min-ms 200 --stop-grace-ms 1000
fx_wait_for 20 is_state "$HELLO" running || fail "hello did not start after a restart"
expect 0 D app show-status --component-id "$CRASHER" --output json
[ "$(field "['failures']")" -ge 2 ] || fail "the failure queue did not survive a restart"
# ---- development: a capability the service signs for this device, then sideloading ----
# The service: a development image root, a capability signer under the update root (made
# with openssl as a service operator would), the device claimed and in development mode.
"$PAVISE" keys create-ca --output-key dev-root.key --output-cert dev-root.crt --subject "CN=Dev Root" >/dev/null
"$PAVISE" keys create-signing --ca-key dev-root.key --ca-cert dev-root.crt --output-key dev.key \
    --output-cert dev.crt --subject "CN=Developer" >/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out capsign.key 2>/dev/null
openssl req -new -key capsign.key -subj "/CN=Capability Signer" -out capsign.csr 2>/dev/null
cat >capsign.ext <<'EXT'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = 2.25.234793168919905953341970457922793849159
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EXT
openssl x509 -req -in capsign.csr -CA root.crt -CAkey root.key -CAcreateserial -days 30 -sha256 \
    -extfile capsign.ext -out capsign.crt 2>/dev/null || fail "capability signer certificate"
DATA=$T/server
expect 0 "$PSERVER" init --data "$DATA"
code=$(grep -oE '[A-Z2-7]{4}(-[A-Z2-7]{4}){7}' out.txt | head -1)
expect 0 "$PSERVER" factory add --data "$DATA" --cert fca.crt
expect 0 "$PSERVER" image-root add --data "$DATA" --cert dev-root.crt --development
expect 0 "$PSERVER" capability-signer set --data "$DATA" --key capsign.key --cert-chain capsign.crt
"$PSERVER" serve --data "$DATA" --listen 127.0.0.1:0 --ready-file "$T/server-ready" --workers 1 >server.log 2>&1 &
SERVER_PID=$!
fx_wait_for 20 test -s "$T/server-ready" || fail "pavise-server did not start"
op() { PAVISE_CONFIG_DIR="$T/op" "$PAVISE" "$@"; }
expect 0 op login --server "https://$(head -1 "$T/server-ready")" --ca "$DATA/ca.crt" --enroll "$code"
expect 0 op tenant create --name "Devices"
expect 0 op tenant select --tenant "Devices"
expect 0 op product create --name "Board"
expect 0 op device claim --device "$DEVICE_ID" --manufacturing-record "$S/manufacturing-record.cbor"
expect 6 op device capability download --device "$DEVICE_ID" --output-file dev.cap # not in development mode
expect 0 op device enable-development --device "$DEVICE_ID" --device-group "Board/Development"
expect 0 op device capability download --device "$DEVICE_ID" --output-file dev.cap --output json
[ "$(field "['deviceId']") $(field "['developmentRoots']") $(field "['output']")" = "$DEVICE_ID 1 dev.cap" ] ||
    { cat out.txt; fail "capability download's JSON"; }

# a development image, signed under the development root
DEVAPP=3d7e0f1a-9b2c-4d5e-8f60-718293a4b5c6
cat >devapp.json <<JSON
{"SchemaVersion": 1, "Name": "devhello", "ComponentId": "$DEVAPP", "EntryPoint": "/bin/hello",
 "CmdArgs": ["--interval", "5"], "Version": "0.1.0", "Capabilities": {"MutableStorage": {"SizeKB": 16}}}
JSON
fx_p image-package pack-application --manifest devapp.json --package-directory hello \
    --key dev.key --cert dev.crt --destination devapp.imagepackage
expect 3 D sideload deploy --image-package devapp.imagepackage # no capability yet
# a capability file changed by one byte, or for another device: refused, nothing kept
python3 -c "b=bytearray(open('dev.cap','rb').read()); b[len(b)//2]^=1; open('bad2.cap','wb').write(b)"
expect 3 D capability update --capability-file bad2.cap
[ ! -e "$S/capability.cbor" ] || fail "a tampered capability file was kept"
expect 0 D capability update --capability-file dev.cap --output json
[ "$(field "['developmentMode']")" = True ] || fail "the capability did not enable development mode"
expect 3 D image install --image-package devapp.imagepackage # production install: not a dev image
expect 0 D sideload deploy --image-package devapp.imagepackage --output json
[ "$(field "['development']")" = True ] || fail "the sideloaded image is not marked development"
fx_wait_for 20 is_state "$DEVAPP" running || fail "the development app did not start"
# it survives a restart while the capability stays applied
kill -TERM "$PAVISED_PID"
wait "$PAVISED_PID" || fail "pavised did not exit 0"
PAVISED_PID=
fx_pavised --dns-upstream 127.0.0.1:5353 --restart-min-ms 200 --stop-grace-ms 1000
fx_wait_for 20 is_state "$DEVAPP" running || fail "the development app did not start after a restart"
# without the capability it is not loaded at all
kill -TERM "$PAVISED_PID"
wait "$PAVISED_PID" || fail "pavised did not exit 0"
PAVISED_PID=
rm "$S/capability.cbor"
fx_pavised --dns-upstream 127.0.0.1:5353 --restart-min-ms 200 --stop-grace-ms 1000
grep -q "component $DEVAPP is not loaded" pavised.log || fail "a development image was loaded without the capability"
expect 5 D app show-status --component-id "$DEVAPP"
fx_wait_for 20 is_state "$HELLO" running || fail "hello did not start"

# ---- a long install does not make a kicking app's watchdog fire ----
# pavised's loop waits while pavise-store verifies and extracts; the kicks that arrive
# meanwhile are read before the watchdog's (late) timer counts against the app.
KICKER=c296243e-a44e-48ec-99e3-bef6412429fe
fx_pack kicker '{"SchemaVersion": 1, "Name": "kicker", "ComponentId": "'$KICKER'",
 "EntryPoint": "/bin/crasher", "CmdArgs": ["--mode", "none", "--watchdog", "200"],
 "Version": "1.0.0", "Capabilities": {"MemoryLimitKB": 16384}}' crasher
expect 0 D image install --image-package apps/kicker.imagepackage
fx_wait_for 10 is_state "$KICKER" running || fail "kicker did not start"
mkdir -p big/bin
cp "$BUILD/apps/hello/bin/hello" big/bin/hello
head -c $((96 * 1024 * 1024)) /dev/urandom >big/blob
fx_pack big '{"SchemaVersion": 1, "Name": "big", "ComponentId": "c296243e-a44e-48ec-99e3-bef6412429fd",
 "EntryPoint": "/bin/hello", "Version": "1.0.0"}' big
rm -rf big
t0=$(date +%s%N)
expect 0 D image install --image-package apps/big.imagepackage
echo "a 96 MiB install held the loop $(( ($(date +%s%N) - t0) / 1000000 )) ms"
sleep 0.5 # an absence is checked: a late watchdog (200 ms) would have fired by now
expect 0 D app show-status --component-id "$KICKER" --output json
python3 -c "import json; d=json.load(open('out.txt')); assert d['state']=='running' and d['restarts']==0 and d['failures']==0, d" ||
    { cat out.txt; fail "the kicker's watchdog fired during a long install"; }
expect 0 D app stop --component-id "$KICKER"

echo "PASS: pavised"
