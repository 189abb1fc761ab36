#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/compartment.sh [BUILD_DIR] [RUNS]
# The time to start an app in its compartment with every layer on, from sb_start to the
# reaped init, for a static program that exits at once and for /bin/true; in the same run
# and alternating with them, `bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc
# --tmpfs /tmp /bin/true` (the anchor). Prints the median and p90 of RUNS (default 300) of
# each and the ratio of the medians to bwrap's. Target: at most 1.0. Needs root.
set -euo pipefail
build=${1:-build-bench}
runs=${2:-300}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/$build/bin/compartment-bench"
if [ "$(id -u)" != 0 ]; then
    echo "compartment.sh: needs root (namespaces, mounts, uid changes)" >&2
    exit 2
fi
bwrap=$(command -v bwrap) || { echo "compartment.sh: bwrap is not installed" >&2; exit 2; }
[ -x "$bin" ] || { echo "compartment.sh: $bin not built" >&2; exit 2; }
TMPDIR="$root/$build" "$bin" -n "$runs" -b "$bwrap"
