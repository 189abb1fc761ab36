#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Idle memory of pavised running three apps (the issue's target: at most 4 MiB RSS).
# A manufactured device (software root of trust) in the benchmark's own network and mount
# namespaces; three copies of the hello app (each its own component) installed and running;
# after they settle, VmRSS of pavised (the target's), and separately of pavise-netd (its
# child: the network policy) and of the DNS stub pavise-netd forked, read from /proc.
# PV_RSS_DETAIL=1 adds pavised's mappings by RSS.
#
# usage: bench/pavised_rss.sh [BUILD_DIR]
set -euo pipefail
if [ -z "${PV_BENCH_NS:-}" ]; then
    exec env PV_BENCH_NS=1 unshare --net --mount --propagation private -- bash "$0" "$@"
fi
build=$(cd "${1:-build-bench}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
PAVISED=$build/bin/pavised PAVISE=$build/bin/pavise PDEV=$build/bin/pavise-device
T=$(mktemp -d "${TMPDIR:-/tmp}/pavised-rss.XXXXXX")
cleanup() {
    [ -n "${PAVISED_PID:-}" ] && kill "$PAVISED_PID" 2>/dev/null && wait "$PAVISED_PID" 2>/dev/null
    umount -R "$T/state/run/storage" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
ip link set lo up
. "$here/../tests/lib/device-fixture.sh"
fx_keys
fx_manufacture
fx_pavised --dns-upstream 127.0.0.1:5353
mkdir -p src/bin
cp "$build/apps/hello/bin/hello" src/bin/hello
for i in 1 2 3; do
    fx_pack "hello$i" "{\"SchemaVersion\": 1, \"Name\": \"hello$i\",
 \"ComponentId\": \"4e110000-0000-4000-8000-00000000000$i\", \"EntryPoint\": \"/bin/hello\",
 \"CmdArgs\": [\"--interval\", \"5\"], \"Version\": \"1.0.0\",
 \"Capabilities\": {\"MutableStorage\": {\"SizeKB\": 64}}}" src
    fx_install "hello$i"
done
running() { [ "$(D app show-status --output json | python3 -c "import json,sys; print(sum(a['state']=='running' for a in json.load(sys.stdin)))")" = 3 ]; }
fx_wait_for 30 running || fx_fail "the three apps are not running"
sleep 3 # idle: heartbeats only
detail() { awk '/^[0-9a-f]+-[0-9a-f]+ / {name = $6} /^Rss:/ {r[name] += $2} END {for (n in r) if (r[n] > 64) printf "%8d KiB %s\n", r[n], n}' "/proc/$1/smaps" | sort -rn | head -25; }
[ -n "${PV_RSS_DETAIL:-}" ] && detail "$PAVISED_PID"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
main_kb=$(rss "$PAVISED_PID")
# pavise-netd: pavised's child running that file (its name may be the fd's on older kernels)
netd_pid=
for p in $(pgrep -P "$PAVISED_PID" || true); do
    [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$build/bin/pavise-netd" ] && netd_pid=$p && break
done
[ -n "$netd_pid" ] || fx_fail "pavise-netd is not running"
netd_kb=$(rss "$netd_pid")
stub_pid=$(pgrep -P "$netd_pid" -u 69999 | head -1 || true) # the stub's uid: the app range's base - 1
stub_kb=$([ -n "$stub_pid" ] && rss "$stub_pid" || echo 0)
[ -n "${PV_RSS_DETAIL:-}" ] && echo "pavise-netd:" && detail "$netd_pid"
pss() { awk '/^Pss:/ {s += $2} END {print s + 0}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
pss_kb=$(pss "$PAVISED_PID")
netd_pss=$(pss "$netd_pid")
stub_pss=$([ -n "$stub_pid" ] && pss "$stub_pid" || echo 0)
awk -v m="$main_kb" -v p="$pss_kb" -v n="$netd_kb" -v s="$stub_kb" -v np="$netd_pss" -v sp="$stub_pss" 'BEGIN {
    printf "pavised idle with 3 apps: VmRSS %d KiB (%.2f MiB), PSS %d KiB\n", m, m / 1024, p
    printf "pavise-netd VmRSS %d KiB (PSS %d); DNS stub VmRSS %d KiB (PSS %d)\n", n, np, s, sp
    printf "the three resident processes together (pavised, pavise-netd, stub): PSS %d KiB (%.2f MiB)\n", p + np + sp, (p + np + sp) / 1024
    printf "pavised VmRSS / 4096 KiB target: %.2f\n", m / 4096 }'
