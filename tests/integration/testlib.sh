# SPDX-License-Identifier: Apache-2.0
# Shared by the integration tests (sourced): counters and checks that print what failed.
pass=0
failed=0
ok() { pass=$((pass + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

# expect CODE CMD...: runs CMD, keeps stdout in out.txt and stderr in err.txt.
expect() {
    local want=$1; shift
    "$@" >out.txt 2>err.txt
    local got=$?
    if [ "$got" -eq "$want" ]; then ok; else
        bad "exit $got (wanted $want): $*"; sed 's/^/  stdout: /' out.txt >&2; sed 's/^/  stderr: /' err.txt >&2
    fi
}
contains() { # FILE TEXT
    if grep -qF -- "$2" "$1"; then ok; else bad "'$2' not in $1: $(head -c 600 "$1")"; fi
}
lacks() { # FILE TEXT
    if grep -qF -- "$2" "$1"; then bad "'$2' unexpectedly in $1"; else ok; fi
}
