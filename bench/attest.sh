#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/attest.sh BUILD_DIR
# Attestations per second of pavise-server, with p50/p99 of a whole attestation (TCP
# connect, full TLS handshake, challenge, evidence, both certificates), at 100 and 1000
# concurrent devices, on SQLite and on PostgreSQL, next to the crypto ceiling measured
# in the same run with `openssl speed ecdsap256` on the server's cores.
#
# The ceiling: an attestation costs the server at least two ECDSA P-256 verifies (the
# evidence and the CSR) and two signs (the service and the client certificate), so with
# S signs/s and V verifies/s per core the server's cores cannot do more than
# WORKERS / (2/S + 2/V) attestations per second. (The TLS handshake's own signature and
# key exchange come on top, so reaching the ceiling itself is impossible.)
#
# CPU split as bench/server_get.sh: the server gets WORKERS cores (default nproc/2),
# pinned, and pavise-fleet (bench/fleet.c) the rest. Devices: FLEET (default 1000)
# simulated devices with software keys, manufactured by a test factory and claimed into
# one tenant, booted with an OS image the service knows.
# Environment: WORKERS, THREADS, FLEET, DURATION (s, default 10), WARMUP (s, default 2),
# ROUNDS (default 3), CONCURRENCY (default "100 1000"), BACKENDS (default
# "sqlite postgres"), PIN (0: no taskset), PERF_OUT (a file prefix: perf record the
# machine, server and generator, during the first round of each run).
set -euo pipefail
build=${1:-build-bench}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/$build/bin"
ncpu=$(nproc)
workers=${WORKERS:-$((ncpu / 2 > 0 ? ncpu / 2 : 1))}
threads=${THREADS:-$((ncpu - workers > 0 ? ncpu - workers : 1))}
fleet=${FLEET:-1000}
secs=${DURATION:-10}
warm=${WARMUP:-2}
rounds=${ROUNDS:-3}
concs=${CONCURRENCY:-100 1000}
backends=${BACKENDS:-sqlite postgres}

die() { echo "attest: $*" >&2; exit 1; }
for p in pavise pavise-server pavise-fleet; do
    [ -x "$bin/$p" ] || die "$bin/$p is missing (build first: cmake --build $build)"
done

work=$(mktemp -d "$root/$build/bench-attest-XXXXXX")
chmod o+x "$work" # the postgres user reaches its cluster under it (scripts/pg-start)
server_pid=
pg_dir=
stop() {
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
}
cleanup() {
    [ -z "$server_pid" ] || stop "$server_pid"
    [ -z "$pg_dir" ] || "$root/scripts/pg-stop" "$pg_dir" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

if [ "${PIN:-1}" = 1 ] && [ "$ncpu" -ge 2 ] && [ "$workers" -lt "$ncpu" ]; then
    pin_server=(taskset -c "0-$((workers - 1))")
    pin_client=(taskset -c "$workers-$((ncpu - 1))")
else
    pin_server=()
    pin_client=()
fi
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}
tck=$(getconf CLK_TCK)
cpu_ticks() { # PID: user + system clock ticks of the process (all its threads)
    local f
    f=$(cut -d' ' -f14,15 "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    echo $((${f% *} + ${f#* }))
}
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$2"; }
# shellcheck disable=SC2086
median() { printf '%s\n' $1 | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# ---- keys, the OS image, the fleet (shared by both backends) ----
P() { "$bin/pavise" "$@" >/dev/null; }
P keys create-ca --output-key root.key --output-cert root.crt --subject "CN=Bench Update Root"
P keys create-signing --ca-key root.key --ca-cert root.crt --output-key os.key --output-cert os.crt \
    --subject "CN=Bench OS signing"
P keys create-ca --output-key factory-ca.key --output-cert factory-ca.crt --subject "CN=Bench Factory CA"
P keys create-signing --ca-key factory-ca.key --ca-cert factory-ca.crt --output-key factory.key \
    --output-cert factory.crt --subject "CN=Bench Line 1"
mkdir -p osroot/bin
printf '#!/bin/sh\nexit 0\n' >osroot/bin/runtime
chmod 755 osroot/bin/runtime
P image-package pack-os --package-directory osroot --entry-point /bin/runtime \
    --component-id 6b1f4b0e-3c1a-4d55-9a0e-6f3e2c1d0b0a --name pavise-os --version 1.0.0 \
    --security-counter 1 --key os.key --cert os.crt --destination os.imagepackage
"$bin/pavise-fleet" prepare --count "$fleet" --factory-key factory.key --factory-cert factory.crt \
    --trust-anchor root.crt --out fleet >/dev/null

# ---- the crypto ceiling, on the server's cores ----
speed=$("${pin_server[@]}" openssl speed -seconds 3 ecdsap256 2>/dev/null | awk '/nistp256/ {print $(NF-1), $NF}')
sign_s=${speed% *}
verify_s=${speed#* }
[ -n "$sign_s" ] && [ -n "$verify_s" ] || die "could not read openssl speed ecdsap256"
ceiling=$(awk -v s="$sign_s" -v v="$verify_s" -v n="$workers" 'BEGIN { printf "%.0f", n / (2 / s + 2 / v) }')
# With the TLS 1.3 handshake's own crypto on top (one more sign, CertificateVerify, and
# one X25519 derive; the key share's generation is left out): the most a core could do
# were everything else (TLS records, HTTP, the database, the kernel) free.
x25519_s=$("${pin_server[@]}" openssl speed -seconds 3 ecdhx25519 2>/dev/null | awk '/X25519/ {print $NF}')
[ -n "$x25519_s" ] || die "could not read openssl speed ecdhx25519"
floor=$(awk -v s="$sign_s" -v v="$verify_s" -v x="$x25519_s" -v n="$workers" \
    'BEGIN { printf "%.0f", n / (3 / s + 2 / v + 1 / x) }')

# ---- one backend: a service, the tenant, the claimed fleet, the runs ----
declare -A rate p50 p99 gcpu scpu
setup_service() { # BACKEND
    local D=$work/data-$1 db=()
    if [ "$1" = postgres ]; then
        pg_dir=$work/pg
        local conn
        conn=$("$root/scripts/pg-start" "$pg_dir") || die "scripts/pg-start failed"
        db=(--db "postgres:$conn")
    fi
    "$bin/pavise-server" init --data "$D" "${db[@]}" >init.txt 2>&1 || { cat init.txt >&2; die "init failed"; }
    code=$(grep -oE '[A-Z2-7]{4}(-[A-Z2-7]{4}){7}' init.txt | head -1)
    "$bin/pavise-server" factory add --data "$D" --cert factory-ca.crt >/dev/null
    "$bin/pavise-server" image-root add --data "$D" --cert root.crt >/dev/null
    "$bin/pavise-server" os-image add --data "$D" --image-package os.imagepackage --feed Retail >/dev/null
    "${pin_server[@]}" "$bin/pavise-server" serve --data "$D" --listen 127.0.0.1:0 \
        --ready-file "$work/ready-$1" --workers "$workers" --log-level error >"server-$1.log" 2>&1 &
    server_pid=$!
    wait_for 20 test -s "$work/ready-$1" || { cat "server-$1.log" >&2; die "pavise-server did not start"; }
    url="https://$(head -1 "$work/ready-$1")"
    export PAVISE_CONFIG_DIR=$work/cli-$1
    "$bin/pavise" login --server "$url" --ca "$D/ca.crt" --enroll "$code" >login.txt 2>&1 ||
        { cat login.txt >&2; die "pavise login failed"; }
    # The tenant and N claims over one keep-alive connection.
    python3 - "$url" "$D/ca.crt" "$PAVISE_CONFIG_DIR/operator.crt" "$PAVISE_CONFIG_DIR/operator.key" \
        fleet/records <<'EOF' || die "claiming the fleet failed"
import base64, http.client, json, os, ssl, sys
url, ca, cert, key, records = sys.argv[1:6]
host, port = url[len("https://"):].rsplit(":", 1)
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
c = http.client.HTTPSConnection(host, int(port), context=ctx)
def call(method, path, body):
    c.request(method, path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    if r.status != 201:
        sys.exit(f"{method} {path}: {r.status} {data[:200]!r}")
    return json.loads(data)
tenant = call("POST", "/v1/tenants", {"name": "bench"})["id"]
for f in sorted(os.listdir(records)):
    rec = open(os.path.join(records, f), "rb").read()
    call("POST", f"/v1/tenants/{tenant}/devices",
         {"device_id": f[:-len(".cbor")], "manufacturing_record": base64.b64encode(rec).decode()})
EOF
    ca_file=$D/ca.crt
}
run_backend() { # BACKEND
    setup_service "$1"
    local c i out t0 t1 sc
    for c in $concs; do
        for ((i = 1; i <= rounds; i++)); do
            out="run-$1-$c-$i.json"
            if [ -n "${PERF_OUT:-}" ] && [ "$i" = 1 ]; then
                # Profiling on request (PERF_OUT=FILE): the whole machine (server and generator) during this run.
                perf record --call-graph dwarf,16384 -F 499 -o "$PERF_OUT-$1-$c" -a -- sleep "$((warm + secs))" >/dev/null 2>&1 &
            fi
            t0=$(cpu_ticks "$server_pid")
            "${pin_client[@]}" "$bin/pavise-fleet" run --server "$url" --ca "$ca_file" --fleet fleet \
                --os-image os.imagepackage --concurrency "$c" --threads "$threads" --duration "$secs" \
                --warmup "$warm" --json >"$out" 2>"run-$1-$c-$i.err" ||
                { cat "run-$1-$c-$i.err" >&2; die "$1, $c devices: the fleet failed"; }
            t1=$(cpu_ticks "$server_pid")
            # Server CPU over warm-up and measurement, as a share of its cores.
            sc=$(awk -v d="$((t1 - t0))" -v hz="$tck" -v s="$secs" -v w="$warm" -v n="$workers" \
                'BEGIN { printf "%.0f", 100 * d / hz / (s + w) / n }')
            scpu[$1-$c]+="$sc "
            [ "$(field failures "$out")" = 0 ] ||
                { cat "$out" "run-$1-$c-$i.err" >&2; die "$1, $c devices: attestations failed"; }
            rate[$1-$c]+="$(field rate "$out") "
            p50[$1-$c]+="$(field p50_us "$out") "
            p99[$1-$c]+="$(field p99_us "$out") "
            gcpu[$1-$c]+="$(field client_cpu_pct "$out") "
            printf '  %-8s %5d devices  round %d  %8.1f attest/s  p50 %7d us  p99 %7d us  server CPU %3d%%  generator CPU %3d%%\n' \
                "$1" "$c" "$i" "$(field rate "$out")" "$(field p50_us "$out")" "$(field p99_us "$out")" \
                "$sc" "$(field client_cpu_pct "$out")"
        done
    done
    stop "$server_pid"
    server_pid=
    if [ "$1" = postgres ]; then "$root/scripts/pg-stop" "$pg_dir" >/dev/null 2>&1 || true; pg_dir=; fi
}

echo "attest: full attestations (connect, TLS handshake, challenge, evidence, certificates)"
echo "  $fleet software-key devices; server: pavise-server --workers $workers; pavise-fleet $threads thread(s)"
echo "  ${pin_server[*]:-no pinning} / ${pin_client[*]:-no pinning}; ${warm} s warm-up + ${secs} s, $rounds rounds"
echo "  machine: $ncpu cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -r), $(openssl version | cut -d' ' -f1-2)"
echo "  openssl speed ecdsap256 on the server's cores: $sign_s sign/s, $verify_s verify/s per core"
echo "  crypto ceiling for $workers server core(s): $ceiling attest/s (2 signs + 2 verifies each)"
echo "  openssl speed ecdhx25519: $x25519_s derives/s; with the handshake's sign and derive: $floor attest/s"
for b in $backends; do
    run_backend "$b"
done
echo "attest: medians of $rounds runs"
printf '  %-10s %8s %12s %9s %9s %11s %14s %14s\n' backend devices attest/s "p50 us" "p99 us" "server CPU" "generator CPU" "ratio/ceiling"
for b in $backends; do
    for c in $concs; do
        r=$(median "${rate[$b-$c]}")
        printf '  %-10s %8d %12.1f %9d %9d %10d%% %13d%% %14.2f\n' "$b" "$c" "$r" "$(median "${p50[$b-$c]}")" \
            "$(median "${p99[$b-$c]}")" "$(median "${scpu[$b-$c]}")" "$(median "${gcpu[$b-$c]}")" "$(awk -v r="$r" -v c="$ceiling" 'BEGIN { print r / c }')"
    done
done
echo "  targets: ratio >= 0.50 of the ceiling ($((ceiling / 2)) attest/s); >= 2000 attest/s on this machine with the generator beside it"
