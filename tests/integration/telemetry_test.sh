#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The telemetry sample app against a real mosquitto on loopback that requires client
# certificates, run directly (not in a compartment) with the environment pavised would
# give it: PAVISE_DEVICE_CERT/CHAIN, PAVISE_STORAGE, and PAVISE_FD, the app channel, whose
# other end is a small stand-in for pavised (fake-runtime.py below): it prints the app's
# log lines and answers its sign requests with the device's key, which the app never sees.
#
# The device's certificate is issued by an intermediate of a tenant CA whose root alone
# the broker trusts, so the app must send the chain. Checked: it waits until the device
# certificate appears, publishes N readings a subscriber receives, exits 0; it retries
# with backoff until a late broker comes up; it refuses a broker its CA does not vouch
# for; a broker refuses a device certificate from another CA; without device
# authentication it gives up; a runtime that refuses to sign keeps it from connecting; a
# broker whose certificate names another host is refused; SIGTERM stops it at once.
# Usage: telemetry_test.sh TELEMETRY SRC TMPBASE
set -uo pipefail
TEL=$1
SRC=$2
TMPBASE=${3:-/tmp}
mkdir -p "$TMPBASE"
T=$(mktemp -d "$TMPBASE/telemetry-XXXXXX")
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
. "$SRC/tests/integration/testlib.sh"
for tool in mosquitto mosquitto_sub openssl python3; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
        { echo "FAIL: $tool is not installed (scripts/install-deps)" >&2; exit 1; }
done
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # SECONDS COMMAND...: until COMMAND succeeds, at most SECONDS
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}
exited() { ! kill -0 "$1" 2>/dev/null; }
# wait_exit PID SECONDS: the process's exit status, or 124 (and it is killed) at the deadline.
wait_exit() {
    if wait_for "$2" exited "$1"; then wait "$1"; return $?; fi
    kill -9 "$1" 2>/dev/null; wait "$1" 2>/dev/null; return 124
}

# ---- a throwaway PKI: the broker's CA, a tenant root with an intermediate, another CA ----
ssl() { openssl "$@" >>openssl.log 2>&1 || bad "openssl $*: $(tail -3 openssl.log)"; }
newkey() { ssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
selfsigned() { # NAME CN
    newkey "$1.key"
    ssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 2 -out "$1.crt" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
issue() { # NAME CN ISSUER EXTENSIONS
    newkey "$1.key"
    ssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
    printf '%s\n' "$4" >"$1.ext"
    ssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -days 2 \
        -extfile "$1.ext" -out "$1.crt"
}
LEAF='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'
DEVICE_ID=5e1f0c2a9b7d43e8a6c1f0e2d3b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f70
selfsigned broker-ca "Broker CA"
issue broker 127.0.0.1 broker-ca 'subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth'
selfsigned tenant-root "Tenant Root CA"
issue tenant-int "Tenant Issuing CA" tenant-root 'basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign'
issue device "$DEVICE_ID" tenant-int "$LEAF"
issue subscriber "subscriber" tenant-root "$LEAF"
selfsigned other-ca "Other CA"
issue stranger "$DEVICE_ID" other-ca "$LEAF"
[ -s device.crt ] && [ -s stranger.crt ] && ok || { bad "could not make the certificates"; exit 1; }
# The device would not verify against the root without its intermediate: the chain matters.
openssl verify -CAfile tenant-root.crt device.crt >/dev/null 2>&1 && bad "device verifies alone" || ok
openssl verify -CAfile tenant-root.crt -untrusted tenant-int.crt device.crt >/dev/null 2>&1 && ok ||
    bad "device does not verify with its chain"

broker() { # NAME PORT: a broker trusting the tenant root, requiring client certificates
    cat >"$1.conf" <<EOF
listener $2 127.0.0.1
cafile $T/tenant-root.crt
certfile $T/broker.crt
keyfile $T/broker.key
require_certificate true
use_identity_as_username true
persistence false
user root
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
log_type subscribe
EOF
    "$MOSQUITTO" -c "$1.conf" >"$1.log" 2>&1 &
    PIDS+=($!)
    wait_for 10 bash -c "echo >/dev/tcp/127.0.0.1/$2" || bad "broker $1 did not start: $(cat "$1.log")"
}
subscribe() { # BROKER NAME PORT TOPIC COUNT: a subscriber, subscribed when this returns; sets SUB
    timeout 60 mosquitto_sub -h 127.0.0.1 -p "$3" --cafile broker-ca.crt --cert subscriber.crt \
        --key subscriber.key -i "sub-$2" -t "$4" -C "$5" >"sub-$2.txt" 2>"sub-$2.err" &
    SUB=$!
    PIDS+=($SUB)
    wait_for 20 grep -qF "sub-$2 0 $4" "$1.log" || bad "subscriber $2 did not subscribe: $(cat "sub-$2.err")"
}
# The device's files appear the way the attestation client writes them: renamed into place.
install_device() { # DIR CERT KEY
    mkdir -p "$1"
    cp "$3" "$1/.k" && mv "$1/.k" "$1/tls.key"
    cp tenant-int.crt "$1/.c" && mv "$1/.c" "$1/chain.pem"
    cp "$2" "$1/.d" && mv "$1/.d" "$1/client.crt"
}
# The runtime's side of the app channel (docs/protocol/app-channel.md), as much of it as
# telemetry uses: log lines are printed as the SDK prints them without a runtime, a
# registration is accepted, a sign request is answered with a signature made with KEY (by
# the openssl tool) or, with REFUSE set, with that result; NOT_READY while KEY is missing.
# It runs the app as its child, forwards SIGTERM and exits with the app's status.
cat >fake-runtime.py <<'EOF'
import os, signal, socket, struct, subprocess, sys
key, refuse, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rt, app = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
env = dict(os.environ, PAVISE_FD=str(app.fileno()))
child = subprocess.Popen(cmd, pass_fds=[app.fileno()], env=env)
app.close()
signal.signal(signal.SIGTERM, lambda s, f: child.send_signal(s))
def send(t, body):
    rt.send(struct.pack(">BBH", 1, t, len(body)) + body)
def result(req, code):
    send(66, struct.pack(">Bi", req, code))
def r_s(der):  # ECDSA-Sig-Value DER -> r || s, 32 bytes each
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7f)
    out = b""
    for _ in range(2):
        assert der[i] == 2
        n = der[i + 1]
        out += der[i + 2:i + 2 + n].lstrip(b"\0").rjust(32, b"\0")
        i += 2 + n
    return out
levels = ["debug", "info", "warn", "error"]
while True:
    p = rt.recv(4096)
    if not p:
        break
    t, body = p[1], p[4:]
    if t == 1:
        print("telemetry: %s: %s" % (levels[body[0]], body[1:].decode()), flush=True)
    elif t in (2, 3, 4, 7):
        result(t, 0)
    elif t == 8:
        if refuse:
            result(8, refuse)
        elif not os.path.exists(key):
            result(8, -6)
        else:
            der = subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", key], input=body,
                                 capture_output=True, check=True).stdout
            send(67, r_s(der))
rc = child.wait()
sys.exit(rc if rc >= 0 else 128 - rc)
EOF
mkdir -p storage tmp
run_app() { # LOG DEVICE-DIR ARGS...: starts telemetry as pavised would; sets APP
    local log=$1 dev=$2; shift 2
    env -i PATH="$PATH" TMPDIR="$T/tmp" PAVISE_APP_NAME=telemetry PAVISE_STORAGE="$T/storage" \
        PAVISE_DEVICE_CERT="$dev/client.crt" PAVISE_DEVICE_CHAIN="$dev/chain.pem" \
        ${ASAN_OPTIONS:+ASAN_OPTIONS="$ASAN_OPTIONS"} \
        python3 "$T/fake-runtime.py" "$dev/tls.key" "${REFUSE:-0}" \
        "$TEL" --ca "$T/broker-ca.crt" "$@" >"$log" 2>&1 &
    APP=$!
    PIDS+=($APP)
}

# ---- 1. waits for the device certificate, then publishes three readings ----
PORT=$(free_port)
broker b1 "$PORT"
subscribe b1 one "$PORT" pavise/test/telemetry 3
run_app app1.log "$T/dev1" --host 127.0.0.1 --port "$PORT" --topic pavise/test/telemetry \
    --interval 1 --count 3
wait_for 20 grep -q "waiting for the device certificate" app1.log || bad "not waiting: $(cat app1.log)"
kill -0 "$APP" 2>/dev/null && ok || bad "telemetry gave up without a certificate: $(cat app1.log)"
install_device "$T/dev1" device.crt device.key
wait_exit "$APP" 60
rc=$?
[ "$rc" -eq 0 ] && ok || bad "telemetry exited $rc: $(cat app1.log)"
contains app1.log "3 readings acknowledged"
wait_exit "$SUB" 30 && ok || bad "the subscriber did not get three readings: $(cat sub-one.err)"
python3 - sub-one.txt <<'EOF' && ok || bad "readings: $(cat sub-one.txt)"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 3, lines
for i, line in enumerate(lines):
    r = json.loads(line)
    assert sorted(r) == ["seq", "storage_quota_kb", "storage_used_kb", "uptime_s"], r
    assert r["seq"] == i + 1 and isinstance(r["uptime_s"], int) and r["uptime_s"] > 0, r
    assert isinstance(r["storage_quota_kb"], int) and r["storage_quota_kb"] > 0, r
    assert 0 <= r["storage_used_kb"] <= r["storage_quota_kb"], r
EOF
# The broker took the device certificate's subject as the client's identity.
contains b1.log "u'$DEVICE_ID'"
# Nothing of the identity is written anywhere for libmosquitto.
[ -z "$(ls -A tmp)" ] && ok || bad "left in TMPDIR: $(ls -A tmp)"

# ---- 2. the broker comes up late: it retries with backoff, then publishes ----
PORT2=$(free_port)
run_app app2.log "$T/dev1" --host 127.0.0.1 --port "$PORT2" --topic pavise/test/late \
    --interval 1 --count 1
wait_for 20 grep -q "reconnecting in" app2.log || bad "no retry: $(cat app2.log)"
broker b2 "$PORT2"
subscribe b2 late "$PORT2" pavise/test/late 1
wait_exit "$APP" 90
rc=$?
[ "$rc" -eq 0 ] && ok || bad "late broker: telemetry exited $rc: $(cat app2.log)"
wait_exit "$SUB" 30 && ok || bad "late broker: nothing received"
contains sub-late.txt '"seq":1,'
grep -q "cannot connect to 127.0.0.1:$PORT2" app2.log && ok || bad "no failed attempt logged: $(cat app2.log)"

# ---- 3. a broker its CA does not vouch for: refused, never published to ----
run_app app3.log "$T/dev1" --host 127.0.0.1 --port "$PORT" --topic pavise/test/wrong-ca \
    --interval 1 --count 1 --ca "$T/other-ca.crt"
wait_for 30 grep -q "reconnecting in" app3.log || bad "wrong CA: no retry: $(cat app3.log)"
kill -TERM "$APP"
wait_exit "$APP" 10
rc=$?
[ "$rc" -eq 0 ] && ok || bad "wrong CA: exit $rc after SIGTERM"
lacks app3.log "connected to"
lacks app3.log "acknowledged"
contains app3.log "certificate verify failed"

# ---- 4. a device certificate from another CA: the broker refuses it ----
install_device "$T/dev4" stranger.crt stranger.key
run_app app4.log "$T/dev4" --host 127.0.0.1 --port "$PORT" --topic pavise/test/stranger \
    --interval 1 --count 1
wait_for 30 grep -q "reconnecting in" app4.log || bad "stranger: no retry: $(cat app4.log)"
kill -TERM "$APP"
wait_exit "$APP" 10
lacks app4.log "acknowledged"
lacks app4.log "connected to"
grep -qiE "certificate verify failed|unknown ca|ssl|tls" b1.log && ok ||
    bad "the broker did not say why it refused the stranger: $(tail -5 b1.log)"

# ---- 5. without DeviceAuthentication it gives up; 6. SIGTERM while waiting ----
env -i PATH="$PATH" PAVISE_APP_NAME=telemetry python3 "$T/fake-runtime.py" "$T/dev1/tls.key" 0 \
    "$TEL" --host 127.0.0.1 --port "$PORT" >app5.log 2>&1
rc=$?
[ "$rc" -eq 1 ] && ok || bad "no device authentication: exit $rc"
contains app5.log "no device certificate: not granted"
run_app app6.log "$T/nothing-yet" --host 127.0.0.1 --port "$PORT" --count 1
wait_for 20 grep -q "waiting for the device certificate" app6.log || bad "app6 not waiting"
kill -TERM "$APP"
wait_exit "$APP" 5
rc=$?
[ "$rc" -eq 0 ] && ok || bad "SIGTERM while waiting: exit $rc"
# ---- 7. the runtime refuses to sign (over its rate for the app): no connection ----
REFUSE=-5 run_app app7.log "$T/dev1" --host 127.0.0.1 --port "$PORT" \
    --topic pavise/test/refused --interval 1 --count 1
wait_for 30 grep -q "reconnecting in" app7.log || bad "refused: no retry: $(cat app7.log)"
kill -TERM "$APP"
wait_exit "$APP" 10
rc=$?
[ "$rc" -eq 0 ] && ok || bad "refused: exit $rc after SIGTERM"
contains app7.log "cannot use the device identity: over a limit"
lacks app7.log "connected to"

# ---- 8. the broker's certificate does not name the host asked for: refused ----
run_app app8.log "$T/dev1" --host localhost --port "$PORT" --topic pavise/test/wrong-name \
    --interval 1 --count 1
wait_for 30 grep -q "reconnecting in" app8.log || bad "wrong name: no retry: $(cat app8.log)"
kill -TERM "$APP"
wait_exit "$APP" 10
lacks app8.log "connected to"
contains app8.log "certificate verify failed"
expect 2 "$TEL" --port 1
expect 2 "$TEL" --host h --topic 'a/#'
expect 2 "$TEL" --host h --interval 0

echo "integration.telemetry: $pass passed, $failed failed"
[ "$failed" -eq 0 ]
