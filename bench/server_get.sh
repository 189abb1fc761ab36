#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/server_get.sh BUILD_DIR
# Requests per second and p99 latency of `GET /v1/tenants/T/devices/ID` on pavise-server
# over mTLS on loopback, next to nginx (the anchor) serving the same bytes as a static
# file with the same server certificate and key, TLS 1.2-1.3, `ssl_verify_client on`
# against the same CA. Both are driven by bench/mtls_load.c with the operator's client
# certificate, the same connections, threads and duration, alternating
# (nginx, pavise, nginx, pavise, ...), in the same run; reports the medians and the
# ratios pavise/nginx.
#
# CPU split: the load generator runs on the same machine, so the server side gets half
# the cores (WORKERS, default nproc/2, at least 1) and the client the rest (THREADS);
# pavise-server gets `--workers WORKERS`, nginx `worker_processes WORKERS`, and with two
# or more cores each side is pinned to its own CPUs (taskset), so neither steals from
# the other and "server CPU" shows whether the server was the bottleneck.
# Environment: WORKERS, THREADS, CONNECTIONS (default 32), DURATION (s, default 10),
# WARMUP (s, default 2), ROUNDS (runs of each, default 5), PIN (0: no taskset).
set -euo pipefail
build=${1:-build-bench}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/$build/bin"
ncpu=$(nproc)
workers=${WORKERS:-$((ncpu / 2 > 0 ? ncpu / 2 : 1))}
threads=${THREADS:-$((ncpu - workers > 0 ? ncpu - workers : 1))}
conns=${CONNECTIONS:-32}
secs=${DURATION:-10}
warm=${WARMUP:-2}
rounds=${ROUNDS:-5}

die() { echo "server_get: $*" >&2; exit 1; }
for p in pavise pavise-server pavise-device mtls-load; do
    [ -x "$bin/$p" ] || die "$bin/$p is missing (build first: cmake --build $build)"
done
nginx=/usr/sbin/nginx
[ -x "$nginx" ] || die "nginx is missing (scripts/install-deps installs it)"

work=$(mktemp -d "$root/$build/bench-server-get-XXXXXX")
server_pid=
nginx_pid=
stop() { # PID: TERM, then wait for it to go
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
}
cleanup() {
    [ -z "$server_pid" ] || stop "$server_pid"
    [ -z "$nginx_pid" ] || stop "$nginx_pid"
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

# Pinning: server side on CPUs 0..WORKERS-1, the load generator on the rest.
if [ "${PIN:-1}" = 1 ] && [ "$ncpu" -ge 2 ] && [ "$workers" -lt "$ncpu" ]; then
    pin_server=(taskset -c "0-$((workers - 1))")
    pin_client=(taskset -c "$workers-$((ncpu - 1))")
else
    pin_server=()
    pin_client=()
fi

wait_for() { # SECONDS COMMAND...: until COMMAND succeeds, or fail
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}
json() { python3 -c 'import json, sys; print(eval("json.load(open(sys.argv[1]))" + sys.argv[2]))' "$1" "$2"; }

# ---- the service: data directory, a trusted factory, a manufactured device ----
D=$work/data
"$bin/pavise-server" init --data "$D" >init.txt 2>&1 || { cat init.txt >&2; die "pavise-server init failed"; }
code=$(grep -oE '[A-Z2-7]{4}(-[A-Z2-7]{4}){7}' init.txt | head -1)
[ -n "$code" ] || { cat init.txt >&2; die "no enrollment code in the output of pavise-server init"; }
"$bin/pavise" keys create-ca --output-key root.key --output-cert root.crt --subject "CN=Bench Update Root" >/dev/null
"$bin/pavise" keys create-ca --output-key factory-ca.key --output-cert factory-ca.crt \
    --subject "CN=Bench Factory CA" >/dev/null
"$bin/pavise" keys create-signing --ca-key factory-ca.key --ca-cert factory-ca.crt \
    --output-key factory.key --output-cert factory.crt --subject "CN=Bench Line 1" >/dev/null
"$bin/pavise-device" manufacture --state dev --rot software --trust-anchor root.crt \
    --factory-key factory.key --factory-cert factory.crt --output json >mfg.json
device=$(json mfg.json "['deviceId']")
"$bin/pavise-server" factory add --data "$D" --cert factory-ca.crt >/dev/null

"${pin_server[@]}" "$bin/pavise-server" serve --data "$D" --listen 127.0.0.1:0 \
    --ready-file "$work/ready" --workers "$workers" --log-level error >server.log 2>&1 &
server_pid=$!
wait_for 20 test -s "$work/ready" || { cat server.log >&2; die "pavise-server did not start"; }
server_addr=$(head -1 ready)
server_url="https://$server_addr"

# ---- an operator (the CLI's login), a tenant, the claimed device ----
export PAVISE_CONFIG_DIR=$work/cli
"$bin/pavise" login --server "$server_url" --ca "$D/ca.crt" --enroll "$code" >login.txt 2>&1 ||
    { cat login.txt >&2; die "pavise login failed"; }
cert=$PAVISE_CONFIG_DIR/operator.crt
key=$PAVISE_CONFIG_DIR/operator.key
if [ ! -s "$cert" ] || [ ! -s "$key" ]; then
    die "pavise login left no operator.crt/operator.key in $PAVISE_CONFIG_DIR"
fi
api() { # METHOD PATH [BODY-FILE] -> body in api.out, prints the status
    curl -sS --cacert "$D/ca.crt" --cert "$cert" --key "$key" -X "$1" -o api.out -w '%{http_code}' \
        ${3:+-H 'Content-Type: application/json' --data-binary @"$3"} "$server_url$2"
}
echo '{"name": "bench"}' >tenant.json
[ "$(api POST /v1/tenants tenant.json)" = 201 ] || { cat api.out >&2; die "creating the tenant failed"; }
tenant=$(json api.out "['id']")
printf '{"device_id": "%s", "manufacturing_record": "%s"}\n' "$device" \
    "$(base64 -w0 dev/manufacturing-record.cbor)" >claim.json
[ "$(api POST "/v1/tenants/$tenant/devices" claim.json)" = 201 ] ||
    { cat api.out >&2; die "claiming the device failed"; }
path=/v1/tenants/$tenant/devices/$device
[ "$(api GET "$path")" = 200 ] || { cat api.out >&2; die "GET $path failed"; }

# ---- nginx: the device record's own bytes as a static file ----
N=$work/nginx
mkdir -p "$N/www/devices" "$N/tmp"
cp api.out "$N/www/devices/$device"
nginx_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$N/nginx.conf" <<EOF
user root;
daemon off;
worker_processes $workers;
pid $N/nginx.pid;
error_log $N/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    default_type application/json;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path $N/tmp;
    proxy_temp_path $N/tmp;
    fastcgi_temp_path $N/tmp;
    uwsgi_temp_path $N/tmp;
    scgi_temp_path $N/tmp;
    server {
        listen 127.0.0.1:$nginx_port ssl;
        ssl_certificate $D/server.crt;
        ssl_certificate_key $D/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_verify_client on;
        ssl_client_certificate $D/ca.crt;
        location /v1/tenants/$tenant/devices/ { alias $N/www/devices/; }
    }
}
EOF
"${pin_server[@]}" "$nginx" -p "$N" -c "$N/nginx.conf" >"$N/stdout.log" 2>&1 &
nginx_pid=$!
nginx_url=https://127.0.0.1:$nginx_port
nginx_get() {
    [ "$(curl -sS --cacert "$D/ca.crt" --cert "$cert" --key "$key" -o nginx.out -w '%{http_code}' \
        "$nginx_url$path")" = 200 ]
}
wait_for 10 nginx_get || { cat "$N/error.log" "$N/stdout.log" >&2; die "nginx does not answer 200 for $path"; }
cmp -s nginx.out api.out || die "nginx does not serve the same bytes as pavise-server"
[ "$(api GET "$path")" = 200 ] || { cat api.out >&2; die "pavise-server does not answer 200 for $path"; }
# Without a client certificate nginx answers 400 (as pavise-server answers 401: the TLS
# handshake cannot require one, since POST /v1/enroll is made before the client has any).
[ "$(curl -sS --cacert "$D/ca.crt" -o /dev/null -w '%{http_code}' "$nginx_url$path" 2>/dev/null)" = 200 ] &&
    die "nginx answers without a client certificate: ssl_verify_client is not in effect"

# ---- the runs ----
tck=$(getconf CLK_TCK)
cpu_ticks() { # PID...: user + system clock ticks of these processes (all their threads)
    local t=0 p f
    for p in "$@"; do
        f=$(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null) || continue
        t=$((t + ${f% *} + ${f#* }))
    done
    echo "$t"
}
server_pids() { # NAME: the processes doing the work (nginx: its workers)
    if [ "$1" = nginx ]; then cat "/proc/$nginx_pid/task/$nginx_pid/children"; else echo "$server_pid"; fi
}
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$2"; }
declare -A rps p50 p99 cpu ccpu eff
disturbed=0
run_one() { # NAME URL ROUND
    local out="run-$1-$3.json" pids t0 t1 e n c
    pids=$(server_pids "$1")
    # shellcheck disable=SC2086
    t0=$(cpu_ticks $pids)
    "${pin_client[@]}" "$bin/mtls-load" --url "$2$path" --ca "$D/ca.crt" --cert "$cert" --key "$key" \
        --connections "$conns" --threads "$threads" --duration "$secs" --warmup "$warm" --json \
        >"$out" 2>"run-$1-$3.err" || { cat "run-$1-$3.err" >&2; die "$1: the load generator failed"; }
    # shellcheck disable=SC2086
    t1=$(cpu_ticks $pids)
    e=$(field errors "$out"); n=$(field non2xx "$out")
    if [ "$e" != 0 ] || [ "$n" != 0 ]; then
        cat "$out" "run-$1-$3.err" >&2
        die "$1: $e errors, $n non-2xx responses"
    fi
    rps[$1]+="$(field rps "$out") "
    p50[$1]+="$(field p50_us "$out") "
    p99[$1]+="$(field p99_us "$out") "
    # Server CPU over warm-up and measurement, as a share of the cores it was given.
    c=$(awk -v d="$((t1 - t0))" -v hz="$tck" -v s="$secs" -v w="$warm" -v n="$workers" \
        'BEGIN { printf "%.0f", 100 * d / hz / (s + w) / n }')
    cpu[$1]+="$c "
    # Requests per second of server CPU: less sensitive than req/s to other load.
    eff[$1]+="$(awk -v r="$(field rps "$out")" -v c="$c" -v n="$workers" \
        'BEGIN { printf "%.0f", (c > 0 ? r / (c / 100 * n) : 0) }') "
    # A server that is the bottleneck runs near 100%; far below, something else was.
    [ "$c" -ge 85 ] || disturbed=$((disturbed + 1))
    ccpu[$1]+="$(field client_cpu_pct "$out") "
    printf '  round %d %-7s %10.1f req/s  p50 %6d us  p99 %6d us  server CPU %3d%%  client CPU %3d%%\n' \
        "$3" "$1" "$(field rps "$out")" "$(field p50_us "$out")" "$(field p99_us "$out")" "$c" \
        "$(field client_cpu_pct "$out")"
}
# shellcheck disable=SC2086 # $1 is a space-separated list
median() { printf '%s\n' $1 | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# Other load on the machine skews both sides; say how idle it was before the runs.
idle_pct() { # over one second, from /proc/stat
    local a b
    read -ra a </proc/stat; sleep 1; read -ra b </proc/stat
    local total=0 i
    for ((i = 1; i < ${#a[@]}; i++)); do total=$((total + b[i] - a[i])); done
    echo $((100 * (b[4] - a[4]) / (total > 0 ? total : 1)))
}
nginx_version=$("$nginx" -v 2>&1 | sed 's|.*nginx/||')
echo "server_get: GET $path"
echo "  over mTLS (TLS 1.3), $conns keep-alive connections, load generator $threads thread(s);"
echo "  server side: pavise-server --workers $workers, nginx $nginx_version worker_processes $workers;"
echo "  ${pin_server[*]:-no pinning} / ${pin_client[*]:-no pinning}; ${warm} s warm-up + ${secs} s, $rounds rounds, alternating"
echo "  machine: $ncpu cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -r), $(openssl version | cut -d' ' -f1-2)"
echo "  response body: $(stat -c %s api.out) bytes (the same bytes from both)"
echo "  machine idle before the runs: $(idle_pct)% (load average $(cut -d' ' -f1-3 /proc/loadavg))"
for ((i = 1; i <= rounds; i++)); do
    run_one nginx "$nginx_url" "$i"
    run_one pavise "$server_url" "$i"
done

awk -v nr="$(median "${rps[nginx]}")" -v pr="$(median "${rps[pavise]}")" \
    -v n50="$(median "${p50[nginx]}")" -v p50="$(median "${p50[pavise]}")" \
    -v n99="$(median "${p99[nginx]}")" -v p99="$(median "${p99[pavise]}")" \
    -v nc="$(median "${cpu[nginx]}")" -v pc="$(median "${cpu[pavise]}")" \
    -v ncc="$(median "${ccpu[nginx]}")" -v pcc="$(median "${ccpu[pavise]}")" \
    -v ne="$(median "${eff[nginx]}")" -v pe="$(median "${eff[pavise]}")" -v runs="$rounds" 'BEGIN {
    printf "server_get: medians of %d runs each\n", runs;
    printf "  %-16s %10s %9s %9s %11s %11s %14s\n", "", "req/s", "p50 us", "p99 us", "server CPU",
        "client CPU", "req/CPU-s";
    printf "  %-16s %10.1f %9d %9d %10d%% %10d%% %14d\n", "nginx (anchor)", nr, n50, n99, nc, ncc, ne;
    printf "  %-16s %10.1f %9d %9d %10d%% %10d%% %14d\n", "pavise-server", pr, p50, p99, pc, pcc, pe;
    printf "  ratio pavise/nginx: req/s %.2f (target >= 0.50), p99 %.2f (lower is better), req/CPU-s %.2f\n",
        pr / nr, p99 / n99, pe / ne;
}'
if [ "$disturbed" -gt 0 ]; then
    echo "server_get: warning: in $disturbed of $((2 * rounds)) runs the server used less than 85% of its" \
        "CPUs, so other load on the machine, not the server, limited them; rerun on an idle machine"
fi
