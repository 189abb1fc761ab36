#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Security Service end to end with the real programs: pavise-server (init, factory,
# serve), the pavise CLI of four operators (admin, contributor, reader, outsider), records
# made by pavise-device, and curl for what the CLI never sends. The whole scenario runs
# on SQLite (the default) and again on a throwaway PostgreSQL cluster, where two replicas
# also serve one database. Every refused request is checked twice: its status and error,
# and a dump of the database before and after showing that nothing changed.
# Usage: server_test.sh PAVISE_SERVER PAVISE PAVISE_DEVICE SOURCE_DIR TMPBASE [GOLDEN_DIR]
# PV_SERVER_TEST_BACKENDS="sqlite postgres" (default) chooses the runs;
# PV_UPDATE_GOLDEN=1 rewrites golden/server_*.exp.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PSERVER=$(realpath "$1")
PAVISE=$(realpath "$2")
PDEV=$(realpath "$3")
SRC=$(realpath "$4")
TMPBASE=${5:-/tmp}
GOLDEN=$(realpath "${6:-$SRC/tests/integration/golden}")
BACKENDS=${PV_SERVER_TEST_BACKENDS:-sqlite postgres}
mkdir -p "$TMPBASE" && TMPBASE=$(realpath "$TMPBASE")
T=$(mktemp -d "$TMPBASE/server-XXXXXX")
PIDS=()
PGDIR=
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [ -n "$PGDIR" ]; then
        "$SRC/scripts/pg-stop" "$PGDIR" >/dev/null 2>&1
        case $PGDIR in /tmp/pv-pg-*) rm -rf "$PGDIR" ;; esac
    fi
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
. "$HERE/testlib.sh"

# Exit codes of the pavise CLI for answers of the server (docs/cli.md).
EX_FAIL=1 EX_USAGE=2 EX_REJECTED=3 EX_AUTH=4 EX_NOTFOUND=5 EX_CONFLICT=6

# json FILE EXPR: prints a value of a JSON document (strings bare, others as JSON).
json() {
    python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
v = eval("d" + sys.argv[2])
print(v if isinstance(v, str) else json.dumps(v))' "$1" "$2" 2>/dev/null
}
# items FILE EXPR: like json, on the items of a list (the CLI prints a JSON array, the
# API a page {"items": [...]}).
items() {
    python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
d = d["items"] if isinstance(d, dict) else d
v = eval("d" + sys.argv[2])
print(v if isinstance(v, str) else json.dumps(v))' "$1" "$2" 2>/dev/null
}
is() { # WHAT GOT WANT
    if [ "$2" = "$3" ]; then ok; else bad "$1: got '$2', wanted '$3'"; fi
}
# The pavise CLI as one of the operators: each has its own configuration directory.
cli() { local who=$1; shift; PAVISE_CONFIG_DIR="$T/op-$who" "$PAVISE" "$@"; }

# golden NAME FILE: FILE with IDs, times, fingerprints and the port replaced, against
# golden/server_NAME.exp.
golden() {
    sed -E -e "s#$T#@T@#g" -e 's#https://127\.0\.0\.1:[0-9]+#https://@SERVER@#g' \
        -e 's/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/<uuid>/g' \
        -e 's/[0-9a-f]{64}/<hex64>/g' \
        -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}Z?/<time>/g' \
        "$2" >"$2.norm"
    if [ "${PV_UPDATE_GOLDEN:-0}" = 1 ]; then cp "$2.norm" "$GOLDEN/server_$1.exp"; ok; return; fi
    if diff -u "$GOLDEN/server_$1.exp" "$2.norm" >diff.txt; then ok; else
        bad "golden server_$1 differs:"; cat diff.txt >&2
    fi
}

# ---- servers: started in the background, waited for through their ready file ----
# start_server NAME ARGS...: sets URL_<NAME> ("https://HOST:PORT") and PID_<NAME>.
start_server() {
    local name=$1; shift
    rm -f "$T/ready-$name"
    "$PSERVER" serve --listen 127.0.0.1:0 --ready-file "$T/ready-$name" --workers 2 "$@" \
        >"$T/server-$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    local deadline=$((SECONDS + 30)) addr=
    while :; do
        addr=$(cat "$T/ready-$name" 2>/dev/null)
        [[ "$addr" =~ ^[0-9.]+:[0-9]+$ ]] && break
        if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
            bad "server $name did not start:"; sed 's/^/  log: /' "$T/server-$name.log" >&2
            return 1
        fi
        sleep 0.05
    done
    printf -v "URL_$name" 'https://%s' "$addr"
    printf -v "PID_$name" '%s' "$pid"
    ok
}
# stop_server NAME: SIGTERM, and it must finish in time with exit status 0.
stop_server() {
    local name=$1 pidvar="PID_$1" pid rc
    pid=${!pidvar}
    kill -TERM "$pid"
    local deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null; then
        bad "server $name still runs 20 s after SIGTERM"; kill -KILL "$pid"
    fi
    wait "$pid"; rc=$?
    is "exit status of server $name after SIGTERM" "$rc" 0
    # Sanitizer builds: a report in the log is a failure even when the server went on.
    if grep -qE 'runtime error:|AddressSanitizer|LeakSanitizer' "$T/server-$name.log"; then
        bad "sanitizer report in the log of server $name:"; grep -m5 -E 'runtime error:|Sanitizer' "$T/server-$name.log" >&2
    else ok; fi
    local p keep=()
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# ---- raw HTTP ----
# http WHO METHOD PATH [CURL-ARGS...]: status in $status, body in body.json. WHO is a raw
# client made by raw_enroll, or "none" for no client certificate.
http() {
    local who=$1 method=$2 path=$3; shift 3
    local auth=()
    [ "$who" = none ] || auth=(--cert "$T/raw-$who.crt" --key "$T/raw-$who.key")
    status=$(curl -sS -o body.json -w '%{http_code}' --max-time 20 --cacert "$D/ca.crt" \
        "${auth[@]}" -X "$method" "$@" "$URL$path" 2>curl.err)
}
# want STATUS [ERROR-CODE]: the last http answer ($WHAT names the case in failures).
WHAT=
want() {
    if [ "$status" = "$1" ]; then ok; else
        bad "${WHAT:+$WHAT: }HTTP $status (wanted $1): $(head -c 400 body.json) $(cat curl.err)"
    fi
    if [ $# -ge 2 ]; then
        local code msg
        code=$(json body.json "['error']['code']")
        is "${WHAT:+$WHAT: }error code of an HTTP $1" "$code" "$2"
        msg=$(json body.json "['error']['message']")
        [ -n "$msg" ] && ok || bad "${WHAT:+$WHAT: }HTTP $1 without an error message: $(head -c 300 body.json)"
    fi
}
# raw_enroll NAME CODE: a client key and CSR made with openssl, sent to POST /v1/enroll.
raw_enroll() {
    openssl ecparam -name prime256v1 -genkey -noout -out "$T/raw-$1.key" 2>/dev/null
    openssl req -new -key "$T/raw-$1.key" -subj "/CN=$1" -out "$T/raw-$1.csr" 2>/dev/null
    python3 -c 'import json, sys; print(json.dumps({"code": sys.argv[1], "csr": open(sys.argv[2]).read()}))' \
        "$2" "$T/raw-$1.csr" >"$T/raw-$1.req"
    http none POST /v1/enroll -H 'Content-Type: application/json' --data-binary "@$T/raw-$1.req"
    want 201
    json body.json "['certificate']" >"$T/raw-$1.crt"
}

# ---- the database, dumped to prove that refused requests change nothing ----
dump() { # FILE
    if [ "$BACKEND" = sqlite ]; then
        sqlite3 "$D/pavise.db" .dump >"$1"
    else
        # \restrict carries a random key on each run: not data.
        pg_dump --data-only --no-owner --no-privileges -d "$PGCONN" | sed '/^\\\(un\)\{0,1\}restrict /d' >"$1"
    fi
}
snap() { dump "$T/db-before.sql"; }
sql() { # STATEMENT: run on the database behind the server's back (to make a code expire)
    if [ "$BACKEND" = sqlite ]; then sqlite3 "$D/pavise.db" "$1"; else psql -q -d "$PGCONN" -c "$1"; fi
}
# sqlv QUERY: one value (or one line per row) without headers, on either backend.
sqlv() {
    if [ "$BACKEND" = sqlite ]; then sqlite3 "$D/pavise.db" "$1"; else psql -tAq -d "$PGCONN" -c "$1"; fi
}
# same WHAT: the database is as it was at the last snap.
same() {
    dump "$T/db-after.sql"
    if cmp -s "$T/db-before.sql" "$T/db-after.sql"; then ok; else
        bad "$1 changed the database:"; diff "$T/db-before.sql" "$T/db-after.sql" | head -20 >&2
    fi
}
# refused WHAT STATUS CODE WHO METHOD PATH [CURL-ARGS...]: one raw request, refused with
# STATUS/CODE, and the database unchanged.
refused() {
    local what=$1 st=$2 code=$3; shift 3
    snap
    http "$@"
    if [ -n "$code" ]; then WHAT=$what want "$st" "$code"; else WHAT=$what want "$st"; fi
    same "$what"
}
# cli_refused WHAT EXIT WHO ARGS...: a CLI command refused with EXIT, database unchanged.
cli_refused() {
    local what=$1 ex=$2; shift 2
    snap
    expect "$ex" cli "$@"
    [ -s err.txt ] && ok || bad "$what: no message on standard error"
    same "$what"
}

# ---- keys and devices (shared by both runs) ----
expect 0 "$PAVISE" keys create-ca --output-key root.key --output-cert root.crt --subject "CN=Update Root,O=Pavise Test"
expect 0 "$PAVISE" keys create-ca --output-key factory-ca.key --output-cert factory-ca.crt --subject "CN=Factory CA,O=Pavise Test"
expect 0 "$PAVISE" keys create-signing --ca-key factory-ca.key --ca-cert factory-ca.crt \
    --output-key factory.key --output-cert factory.crt --subject "CN=Line 1,O=Pavise Test"
expect 0 "$PAVISE" keys create-ca --output-key rogue-ca.key --output-cert rogue-ca.crt --subject "CN=Rogue Factory CA"
expect 0 "$PAVISE" keys create-signing --ca-key rogue-ca.key --ca-cert rogue-ca.crt \
    --output-key rogue.key --output-cert rogue.crt --subject "CN=Rogue Line"
# manufacture NAME [FACTORY]: a device with the software root of trust; sets DEV_<NAME>
# and leaves its record in $T/NAME.rec.
manufacture() {
    local f=${2:-factory}
    expect 0 "$PDEV" manufacture --state "$T/dev-$1" --rot software --trust-anchor root.crt \
        --factory-key "$f.key" --factory-cert "$f.crt" --output json
    local id
    id=$(json out.txt "['deviceId']")
    [[ "$id" =~ ^[0-9a-f]{64}$ ]] && ok || bad "manufacture $1: device ID '$id'"
    cp "$T/dev-$1/manufacturing-record.cbor" "$T/$1.rec"
    printf -v "DEV_$1" '%s' "$id"
}
for d in d1 d2 d3 d4 d5 unknown; do manufacture $d; done
manufacture rogue rogue
NOSUCH=$(printf '%064d' 0 | tr 0 a)
# A valid CSR for requests whose code must be what is refused.
openssl ecparam -name prime256v1 -genkey -noout -out spare.key 2>/dev/null
openssl req -new -key spare.key -subj "/CN=spare" -out spare.csr 2>/dev/null
enroll_body() { # CODE: a POST /v1/enroll body with the spare CSR
    python3 -c 'import json, sys; print(json.dumps({"code": sys.argv[1], "csr": open(sys.argv[2]).read()}))' "$1" "$T/spare.csr"
}
# Image signers: a production root, a development root, and a root the server never trusts;
# an application package and an OS package of each (image IDs are fresh each time).
for k in img dev evil; do
    expect 0 "$PAVISE" keys create-ca --output-key $k-root.key --output-cert $k-root.crt --subject "CN=$k image root"
    expect 0 "$PAVISE" keys create-signing --ca-key $k-root.key --ca-cert $k-root.crt \
        --output-key $k-sign.key --output-cert $k-sign.crt --subject "CN=$k signing"
done
# The capability signer: a leaf under the update root with the Pavise capability-signing
# extended key usage (docs/formats/capability.md §3), made with openssl as a service
# operator would.
openssl ecparam -name prime256v1 -genkey -noout -out capsign.key 2>/dev/null
openssl req -new -key capsign.key -subj "/CN=Capability Signer/O=Pavise Test" -out capsign.csr 2>/dev/null
cat >capsign.ext <<'EXT'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = 2.25.234793168919905953341970457922793849159
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EXT
if openssl x509 -req -in capsign.csr -CA root.crt -CAkey root.key -CAcreateserial -days 30 -sha256 \
    -extfile capsign.ext -out capsign.crt 2>capsign.err; then ok; else bad "capability signer: $(cat capsign.err)"; fi
mkdir -p appdir/bin osdir/bin
printf '#!/bin/sh\n' >appdir/bin/hello && chmod 755 appdir/bin/hello
printf '#!/bin/sh\n' >osdir/bin/runtime && chmod 755 osdir/bin/runtime
pack_app() { # DEST SIGNER
    expect 0 "$PAVISE" image-package pack-application --manifest "$SRC/apps/hello/app_manifest.json" \
        --package-directory appdir --key "$2-sign.key" --cert "$2-sign.crt" --destination "$1" --force
}
pack_osimg() { # DEST SIGNER
    expect 0 "$PAVISE" image-package pack-os --package-directory osdir --entry-point /bin/runtime \
        --component-id 6b1f4b0e-3c1a-4d55-9a0e-6f3e2c1d0b0a --name pavise-os --version 1.0.0 \
        --security-counter 1 --key "$2-sign.key" --cert "$2-sign.crt" --destination "$1" --force
}

run_suite() { # BACKEND
    BACKEND=$1
    echo "== $BACKEND"
    D=$T/data-$BACKEND
    # The database is chosen once, at init (DATA/server.conf); every other command of
    # pavise-server finds it there.
    DB_INIT=()
    if [ "$BACKEND" = postgres ]; then DB_INIT=(--db "postgres:$PGCONN"); fi
    rm -rf "$T"/op-*

    # -- init: the CA, its fingerprint, the first administrator's code --
    expect 0 "$PSERVER" init --data "$D" "${DB_INIT[@]}"
    cp out.txt init.txt
    [ -s "$D/ca.crt" ] && ok || bad "init wrote no $D/ca.crt"
    [ "$(stat -c %a "$D")" = 700 ] && ok || bad "data directory mode $(stat -c %a "$D")"
    [ "$(stat -c %a "$D/ca.key")" = 600 ] && ok || bad "ca.key mode $(stat -c %a "$D/ca.key")"
    local fp fpcolon code
    fp=$(openssl x509 -in "$D/ca.crt" -outform DER | sha256sum | cut -d' ' -f1)
    fpcolon=$(openssl x509 -in "$D/ca.crt" -noout -fingerprint -sha256 | sed 's/.*=//')
    if grep -qiF "$fp" init.txt || grep -qiF "$fpcolon" init.txt; then ok; else
        bad "init does not print the CA's SHA-256 fingerprint $fp: $(cat init.txt)"
    fi
    code=$(grep -oE '[A-Z2-7]{4}(-[A-Z2-7]{4}){7}' init.txt | head -1)
    [ -n "$code" ] && ok || bad "init printed no enrollment code: $(cat init.txt)"
    # A second init refuses and keeps the CA.
    cp "$D/ca.crt" ca.before
    expect 1 "$PSERVER" init --data "$D" "${DB_INIT[@]}"
    cmp -s ca.before "$D/ca.crt" && ok || bad "a second init replaced the CA"
    # Factories and records, offline.
    expect 0 "$PSERVER" factory add --data "$D" --cert factory-ca.crt
    expect 1 "$PSERVER" factory add --data "$D" --cert factory-ca.crt
    contains err.txt "already"
    expect 0 "$PSERVER" factory import --data "$D" --record "$T/d2.rec"
    contains out.txt "$DEV_d2"
    expect 0 "$PSERVER" factory import --data "$D" --record "$T/d3.rec"
    expect 0 "$PSERVER" factory import --data "$D" --record "$T/d4.rec"
    expect 0 "$PSERVER" factory import --data "$D" --record "$T/d5.rec"
    expect 3 "$PSERVER" factory import --data "$D" --record "$T/rogue.rec"
    head -c 100 /dev/urandom >garbage.rec
    expect 3 "$PSERVER" factory import --data "$D" --record garbage.rec

    start_server main --data "$D" || return
    URL=$URL_main

    # -- health and the server's certificate --
    http none GET /healthz
    want 200
    is "healthz status" "$(json body.json "['status']")" ok
    is "healthz database" "$(json body.json "['database']")" "$BACKEND"
    is "healthz schema" "$(json body.json "['schema_version']")" 4
    # TLS 1.1 is refused; 1.2 and 1.3 are served.
    if curl -sS -o /dev/null --cacert "$D/ca.crt" --tls-max 1.1 "$URL/healthz" 2>/dev/null; then
        bad "TLS 1.1 accepted"; else ok; fi
    curl -sS -o /dev/null --cacert "$D/ca.crt" --tlsv1.2 --tls-max 1.2 "$URL/healthz" && ok || bad "TLS 1.2 refused"
    curl -sS -o /dev/null --cacert "$D/ca.crt" --tlsv1.3 "$URL/healthz" && ok || bad "TLS 1.3 refused"
    # Without a client certificate, nothing but the public routes.
    refused "GET /v1/me without a certificate" 401 unauthenticated none GET /v1/me
    refused "tenant list without a certificate" 401 unauthenticated none GET /v1/tenants

    # -- login: wrong fingerprint refused before anything is sent or saved --
    local wrongfp
    wrongfp=$(printf '%s' "$fp" | tr '0-9a-f' '1-9a-f0')
    snap
    expect $EX_REJECTED cli admin login --server "$URL" --fingerprint "$wrongfp" --enroll "$code"
    contains err.txt "fingerprint"
    [ -z "$(find "$T/op-admin" -type f 2>/dev/null)" ] && ok || bad "a refused login saved $(find "$T/op-admin" -type f)"
    same "login with a wrong fingerprint"
    # A garbage code and a well-formed unknown code: refused, nothing saved.
    cli_refused "login with a garbage code" $EX_AUTH admin login --server "$URL" --fingerprint "$fp" --enroll "not a code"
    [ -z "$(find "$T/op-admin" -type f -name '*.crt' 2>/dev/null)" ] && ok || bad "a refused login saved a certificate"
    cli_refused "login to an http:// URL" $EX_USAGE admin login --server "http://${URL#https://}" --fingerprint "$fp" --enroll "$code"
    cli_refused "login with an unknown code" $EX_AUTH admin login --server "$URL" --fingerprint "$fp" \
        --enroll AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH
    contains err.txt "enrollment code is not valid"
    golden login-bad-code err.txt
    # The right fingerprint (the code was not spent by the refusals above).
    expect 0 cli admin login --server "$URL" --fingerprint "$fp" --enroll "$code"
    # The code is single-use.
    cli_refused "a reused enrollment code" $EX_AUTH other login --server "$URL" --fingerprint "$fp" --enroll "$code"
    contains err.txt "enrollment code is not valid"
    refused "a reused enrollment code (raw)" 401 unauthenticated none POST /v1/enroll \
        -H 'Content-Type: application/json' --data-binary "$(enroll_body "$code")"
    contains body.json "enrollment code is not valid (unknown, used or expired)"
    refused "an unknown enrollment code (raw)" 401 unauthenticated none POST /v1/enroll \
        -H 'Content-Type: application/json' --data-binary "$(enroll_body ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567)"
    contains body.json "enrollment code is not valid (unknown, used or expired)"
    expect 0 cli admin me --output json
    local admin_id
    admin_id=$(json out.txt "['id']")
    is "admin has no role yet" "$(json out.txt "['roles']")" "[]"

    # -- tenants --
    expect 0 cli admin tenant create --name "Acme Devices" --output json
    local acme
    acme=$(json out.txt "['id']")
    is "creator's role" "$(json out.txt "['role']")" Administrator
    expect 0 cli admin tenant create --name "Spare Tenant" --output json
    local spare
    spare=$(json out.txt "['id']")
    # The dumps see what the server writes (else "nothing changed" would prove nothing).
    dump "$T/db-now.sql"
    if grep -q "$spare" "$T/db-now.sql"; then ok; else
        bad "the database dump does not show the tenant the server just created ($spare): the server's writes are not visible to other processes"
    fi
    expect 0 cli admin tenant list
    contains out.txt "Acme Devices"
    contains out.txt "Spare Tenant"
    # The same table, tenants ordered by ID: normalise the order for the golden file.
    if [[ "$acme" < "$spare" ]]; then golden tenant-list out.txt; else
        awk 'NR==1 || /Acme/ {print} /Spare/ {s=$0} END {print s}' out.txt >out2.txt
        golden tenant-list out2.txt
    fi
    expect 0 cli admin tenant select --tenant "$acme"
    expect 0 cli admin tenant show --output json
    is "selected tenant" "$(json out.txt "['id']")" "$acme"

    # -- products: five groups each --
    expect 0 cli admin product create --name "Widget" --description "the first product" --output json
    local widget
    widget=$(json out.txt "['id']")
    cli_refused "a second product named Widget" $EX_CONFLICT admin product create --name "Widget"
    expect 0 cli admin device-group list --product "$widget" --output json
    cp out.txt groups.json
    is "groups of a new product" "$(items groups.json ".__len__()")" 5
    python3 - groups.json >g.txt <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for g in sorted(d["items"] if isinstance(d, dict) else d, key=lambda g: g["name"]):
    print(g["name"], g["os_feed"], g["update_policy"], g["device_count"])
PY
    printf '%s\n' "Development Retail No3rdPartyAppUpdates 0" "Field Test Retail UpdateAll 0" \
        "Field Test OS Evaluation RetailEval UpdateAll 0" "Production Retail UpdateAll 0" \
        "Production OS Evaluation RetailEval UpdateAll 0" >g.want
    diff -u g.want g.txt >/dev/null && ok || bad "default groups: $(cat g.txt)"
    local g_dev g_field g_prod
    g_dev=$(items groups.json "[[g['name'] for g in d].index('Development')]['id']")
    g_field=$(items groups.json "[[g['name'] for g in d].index('Field Test')]['id']")
    g_prod=$(items groups.json "[[g['name'] for g in d].index('Production')]['id']")
    expect 0 cli admin product update --product "$widget" --description "renamed" --output json
    is "product description" "$(json out.txt "['description']")" renamed
    expect 0 cli admin product list --output json
    is "products" "$(items out.txt ".__len__()")" 1

    # -- device groups --
    expect 0 cli admin device-group create --product "$widget" --name Canary --os-feed RetailEval \
        --update-policy NoUpdates --output json
    local canary
    canary=$(json out.txt "['id']")
    is "new group feed" "$(json out.txt "['os_feed']") $(json out.txt "['update_policy']")" "RetailEval NoUpdates"
    cli_refused "a second group named Canary" $EX_CONFLICT admin device-group create --product "$widget" --name Canary
    cli_refused "a bad OS feed" $EX_USAGE admin device-group create --product "$widget" --name X --os-feed Beta
    expect 0 cli admin device-group update --device-group "$canary" --name "Canary 2" --update-policy UpdateAll --output json
    is "updated group" "$(json out.txt "['name']") $(json out.txt "['update_policy']")" "Canary 2 UpdateAll"
    expect 0 cli admin device-group show --device-group "$canary" --output json
    is "shown group" "$(json out.txt "['name']")" "Canary 2"
    expect 0 cli admin device-group delete --device-group "$canary"
    cli_refused "showing a deleted group" $EX_NOTFOUND admin device-group show --device-group "$canary"

    # -- claiming --
    expect 0 cli admin device claim --device "$DEV_d1" --manufacturing-record "$T/d1.rec" --output json
    is "claimed device" "$(json out.txt "['id']") $(json out.txt "['tenant_id']")" "$DEV_d1 $acme"
    is "claimed device's root of trust" "$(json out.txt "['rot_kind']")" software
    expect 0 cli admin device claim --device "$DEV_d2" --output json
    is "claim by an imported ID" "$(json out.txt "['id']")" "$DEV_d2"
    cli_refused "claiming an unknown device" $EX_NOTFOUND admin device claim --device "$DEV_unknown"
    contains err.txt "no manufacturing record"
    golden claim-unknown err.txt
    cli_refused "claiming a device twice" $EX_CONFLICT admin device claim --device "$DEV_d1"
    cli_refused "claiming with a record of an untrusted factory" $EX_REJECTED admin device claim \
        --device "$DEV_rogue" --manufacturing-record "$T/rogue.rec"
    cli_refused "claiming with another device's record" $EX_REJECTED admin device claim \
        --device "$DEV_unknown" --manufacturing-record "$T/d1.rec"

    # -- assign, development, cloud test --
    expect 0 cli admin device assign --device "$DEV_d2" --device-group "$g_prod" --output json
    is "assigned group" "$(json out.txt "['device_group_id']") $(json out.txt "['product_id']")" "$g_prod $widget"
    expect 0 cli admin device enable-development --device "$DEV_d2" --output json
    is "development" "$(json out.txt "['device_group_id']") $(json out.txt "['development']") $(json out.txt "['cloud_test']")" "$g_dev true false"
    expect 0 cli admin device enable-cloud-test --device "$DEV_d2" --output json
    is "cloud test" "$(json out.txt "['device_group_id']") $(json out.txt "['development']") $(json out.txt "['cloud_test']")" "$g_field false true"
    expect 0 cli admin device show --device "$DEV_d2"
    contains out.txt "$DEV_d2"
    contains out.txt "Field Test"
    golden device-show out.txt
    cli_refused "enable-development outside any product" $EX_CONFLICT admin device enable-development --device "$DEV_d1"
    cli_refused "deleting a group that has devices" $EX_CONFLICT admin device-group delete --device-group "$g_field"
    cli_refused "deleting a product whose group has devices" $EX_CONFLICT admin product delete --product "$widget"

    # -- roles: invitations, logins with --ca, rights --
    local who role c
    for who in contributor reader outsider; do
        case $who in contributor) role=Contributor ;; *) role=Reader ;; esac
        expect 0 cli admin role add --user "$who" --role "$role" --output json
        c=$(json out.txt "['enrollment_code']")
        [ -n "$c" ] && ok || bad "no enrollment code for $who: $(cat out.txt)"
        expect 0 cli "$who" login --server "$URL" --ca "$D/ca.crt" --enroll "$c"
        expect 0 cli "$who" tenant select --tenant "$acme"
    done
    expect 0 cli admin role add --user rawadmin --role Administrator --output json
    raw_enroll rawadmin "$(json out.txt "['enrollment_code']")"
    http rawadmin GET "/v1/tenants?name=Acme%20Devices"
    want 200
    is "tenant list by name" "$(json body.json "['items'][0]['id']") $(json body.json "['items'].__len__()")" "$acme 1"
    http rawadmin GET "/v1/tenants?name=Spare%20Tenant"
    want 200
    is "a tenant without a role, by name" "$(json body.json "['items'].__len__()")" 0
    expect 0 cli admin role list --output json
    items out.txt "" | python3 -c 'import json,sys; print(" ".join(r["user"]+":"+r["role"] for r in json.load(sys.stdin)))' >roles.txt
    is "roles" "$(cat roles.txt)" "admin:Administrator contributor:Contributor outsider:Reader rawadmin:Administrator reader:Reader"
    expect 0 cli admin role delete --user outsider
    cli_refused "deleting a role that is not there" $EX_NOTFOUND admin role delete --user outsider
    # The outsider now has no role in Acme, and makes a tenant of their own.
    expect 0 cli outsider tenant create --name "Globex" --output json
    local globex
    globex=$(json out.txt "['id']")
    expect 0 cli outsider tenant select --tenant "$globex"
    expect 0 cli outsider product create --name "Gizmo" --output json
    local gizmo gizmo_group
    gizmo=$(json out.txt "['id']")
    expect 0 cli outsider device-group list --product Gizmo --output json
    gizmo_group=$(items out.txt "[0]['id']")
    expect 0 cli outsider tenant list --output json
    is "outsider's tenants" "$(items out.txt ".__len__()") $(items out.txt "[0]['id']")" "1 $globex"
    # A name is not an identity. Globex's Administrator invites the name "reader" (an
    # operator of Acme): an invitation, not a grant; someone else holding the code cannot
    # take the name (409, the code stays usable); the real reader accepts it from its
    # own login, keeping its Acme role.
    expect 0 cli outsider role add --user reader --role Reader --output json
    c=$(json out.txt "['enrollment_code']")
    [ -n "$c" ] && ok || bad "no invitation for an operator of another tenant: $(cat out.txt)"
    cli_refused "taking an enrolled operator's name with a code" $EX_CONFLICT squatter login \
        --server "$URL" --ca "$D/ca.crt" --enroll "$c"
    contains err.txt "already enrolled"
    expect 0 cli reader login --server "$URL" --ca "$D/ca.crt" --enroll "$c"
    contains out.txt "Accepted the invitation"
    expect 0 cli reader me --output json
    is "reader's roles after accepting" "$(json out.txt "['roles'].__len__()")" 2
    expect 0 cli outsider role delete --user reader
    # A lost key: the server's operator revokes the certificates (the next request is a
    # 401) and makes a code that gives the same operator, same roles, a new login.
    expect 0 "$PSERVER" operator revoke --data "$D" --user rawadmin
    contains out.txt "1"
    refused "a revoked operator certificate" 401 unauthenticated rawadmin GET /v1/me
    expect 0 "$PSERVER" operator invite --data "$D" --user rawadmin --output json
    raw_enroll rawadmin "$(json out.txt "['enrollment_code']")"
    http rawadmin GET "/v1/tenants/$acme"
    want 200
    is "a re-keyed operator keeps its role" "$(json body.json "['role']")" Administrator
    expect 0 "$PSERVER" operator list --data "$D"
    contains out.txt rawadmin
    # The Administrator cannot leave the tenant without one.
    expect 0 cli admin tenant select --tenant "$spare"
    cli_refused "removing the last Administrator" $EX_CONFLICT admin role delete --user admin
    expect 0 cli admin tenant select --tenant "$acme"

    # Reader: reads, cannot change anything.
    expect 0 cli reader device list --output json
    expect 0 cli reader device show --device "$DEV_d2" --output json
    expect 0 cli reader audit list --output json
    cli_refused "a Reader creating a product" $EX_AUTH reader product create --name "Nope"
    contains err.txt "this needs the Contributor role in tenant"
    contains err.txt "you have Reader"
    golden forbidden err.txt
    cli_refused "a Reader claiming" $EX_AUTH reader device claim --device "$DEV_d3"
    cli_refused "a Reader assigning" $EX_AUTH reader device assign --device "$DEV_d2" --device-group "$g_dev"
    cli_refused "a Reader inviting" $EX_AUTH reader role add --user x --role Reader
    # Contributor: creates and updates, never deletes, releases or manages roles.
    expect 0 cli contributor product create --name "Contraption" --output json
    local contraption
    contraption=$(json out.txt "['id']")
    expect 0 cli contributor product update --product "$contraption" --name "Contraption 2"
    expect 0 cli contributor device claim --device "$DEV_d3" --output json
    expect 0 cli contributor device assign --device "$DEV_d3" --device-group "$g_prod"
    cli_refused "a Contributor deleting a product" $EX_AUTH contributor product delete --product "$contraption"
    contains err.txt "this needs the Administrator role in tenant"
    cli_refused "a Contributor deleting a group" $EX_AUTH contributor device-group delete --device-group "$g_prod"
    cli_refused "a Contributor releasing a device" $EX_AUTH contributor device release --device "$DEV_d3"
    cli_refused "a Contributor adding a role" $EX_AUTH contributor role add --user x --role Reader
    cli_refused "a Contributor deleting a role" $EX_AUTH contributor role delete --user reader
    # The outsider: Acme's resources do not exist for them.
    cli_refused "an outsider showing Acme" $EX_NOTFOUND outsider tenant show --tenant "$acme"
    cli_refused "an outsider showing Acme's device" $EX_NOTFOUND outsider device show --tenant "$acme" --device "$DEV_d2"
    cli_refused "an outsider listing Acme's devices" $EX_NOTFOUND outsider device list --tenant "$acme"
    cli_refused "an outsider creating in Acme" $EX_NOTFOUND outsider product create --tenant "$acme" --name X
    cli_refused "an outsider showing Acme's product from Globex" $EX_NOTFOUND outsider product show --product "$widget"
    cli_refused "an outsider showing Acme's group" $EX_NOTFOUND outsider device-group show --device-group "$g_prod"

    # -- one tenant at a time: already claimed, release, claim by the other --
    cli_refused "claiming Acme's device into Globex" $EX_CONFLICT outsider device claim --device "$DEV_d1" \
        --manufacturing-record "$T/d1.rec"
    lacks err.txt "Acme"
    lacks err.txt "$acme"
    expect 0 cli admin device release --device "$DEV_d1"
    cli_refused "showing a released device" $EX_NOTFOUND admin device show --device "$DEV_d1"
    expect 0 cli outsider device claim --device "$DEV_d1" --output json
    is "claimed by Globex" "$(json out.txt "['tenant_id']")" "$globex"
    cli_refused "Acme claiming Globex's device" $EX_CONFLICT admin device claim --device "$DEV_d1"

    # -- raw HTTP: what the CLI never sends --
    local J=(-H 'Content-Type: application/json')
    local P=/v1/tenants/$acme/products
    refused "malformed JSON" 400 bad_request rawadmin POST "$P" "${J[@]}" --data-binary '{"name": "x"'
    refused "a JSON array" 400 bad_request rawadmin POST "$P" "${J[@]}" --data-binary '["x"]'
    refused "a wrong type" 400 bad_request rawadmin POST "$P" "${J[@]}" --data-binary '{"name": 5}'
    contains body.json "name"
    refused "a missing field" 400 bad_request rawadmin POST "$P" "${J[@]}" --data-binary '{"description": "d"}'
    refused "an unknown field" 400 bad_request rawadmin POST "$P" "${J[@]}" --data-binary '{"name": "x", "colour": "red"}'
    contains body.json "colour"
    refused "a name of control characters" 400 bad_request rawadmin POST "$P" "${J[@]}" --data-binary '{"name": "a\u0001b"}'
    refused "a name of spaces" 400 bad_request rawadmin POST "$P" "${J[@]}" --data-binary '{"name": "   "}'
    refused "a name too long" 400 bad_request rawadmin POST "$P" "${J[@]}" --data-binary "{\"name\": \"$(printf 'n%.0s' $(seq 65))\"}"
    head -c 200000 /dev/zero | tr '\0' 'x' | sed 's/^/{"name": "/; s/$/"}/' >huge.json
    refused "a huge body" 413 payload_too_large rawadmin POST "$P" "${J[@]}" --data-binary @huge.json
    refused "a body that is not JSON" 415 unsupported_media_type rawadmin POST "$P" -H 'Content-Type: text/plain' --data-binary '{"name": "x"}'
    refused "a GET with a body" 400 bad_request rawadmin GET "$P" "${J[@]}" --data-binary '{"name": "x"}'
    refused "a DELETE with a body" 400 bad_request rawadmin DELETE "$P/$contraption" "${J[@]}" --data-binary '{}'
    refused "an unknown route" 404 not_found rawadmin GET /v1/nothing-here
    refused "an unknown route under a tenant" 404 not_found rawadmin GET "/v1/tenants/$acme/nothing"
    refused "a method the route does not have" 405 method_not_allowed rawadmin PUT "$P" "${J[@]}" --data-binary '{}'
    refused "a malformed tenant ID" 400 bad_request rawadmin GET /v1/tenants/not-a-uuid/devices
    refused "a malformed device ID" 400 bad_request rawadmin GET "/v1/tenants/$acme/devices/ABC"
    refused "an unknown query parameter" 400 bad_request rawadmin GET "/v1/tenants/$acme/devices?colour=red"
    refused "a limit of 0" 400 bad_request rawadmin GET "/v1/tenants/$acme/devices?limit=0"
    refused "a limit of 1001" 400 bad_request rawadmin GET "/v1/tenants/$acme/devices?limit=1001"
    refused "a garbage continuation token" 400 bad_request rawadmin GET "/v1/tenants/$acme/devices?continuation_token=%00%01"
    refused "another tenant" 404 not_found rawadmin GET "/v1/tenants/$globex"
    refused "another tenant's device" 404 not_found rawadmin GET "/v1/tenants/$globex/devices/$DEV_d1"
    refused "another tenant's device through ours" 404 not_found rawadmin GET "/v1/tenants/$acme/devices/$DEV_d1"
    refused "another tenant's product through ours" 404 not_found rawadmin GET "$P/$gizmo"
    refused "deleting another tenant's product" 404 not_found rawadmin DELETE "$P/$gizmo"
    refused "renaming another tenant's product" 404 not_found rawadmin PATCH "$P/$gizmo" "${J[@]}" --data-binary '{"name": "mine"}'
    refused "assigning into another tenant's group" 404 not_found rawadmin PATCH "/v1/tenants/$acme/devices/$DEV_d2" \
        "${J[@]}" --data-binary "{\"device_group_id\": \"$gizmo_group\"}"
    refused "assigning into a group that does not exist" 404 not_found rawadmin PATCH "/v1/tenants/$acme/devices/$DEV_d2" \
        "${J[@]}" --data-binary "{\"device_group_id\": \"$(python3 -c 'import uuid; print(uuid.uuid4())')\"}"
    refused "enable-development into another tenant's group" 404 not_found rawadmin POST \
        "/v1/tenants/$acme/devices/$DEV_d2/enable-development" "${J[@]}" --data-binary "{\"device_group_id\": \"$gizmo_group\"}"
    refused "showing another tenant's group" 404 not_found rawadmin GET "/v1/tenants/$acme/device-groups/$gizmo_group"
    refused "deleting another tenant's group" 404 not_found rawadmin DELETE "/v1/tenants/$acme/device-groups/$gizmo_group"
    refused "listing devices of another tenant's group" 200 "" rawadmin GET "/v1/tenants/$acme/devices?device_group_id=$gizmo_group"
    is "devices of another tenant's group" "$(json body.json "['items']")" "[]"
    refused "a group for another tenant's product" 404 not_found rawadmin POST "/v1/tenants/$acme/device-groups" \
        "${J[@]}" --data-binary "{\"product_id\": \"$gizmo\", \"name\": \"G\"}"
    refused "a bad update policy" 400 bad_request rawadmin POST "/v1/tenants/$acme/device-groups" \
        "${J[@]}" --data-binary "{\"product_id\": \"$widget\", \"name\": \"G\", \"update_policy\": \"Sometimes\"}"
    refused "a wrong device_group_id type" 400 bad_request rawadmin PATCH "/v1/tenants/$acme/devices/$DEV_d2" \
        "${J[@]}" --data-binary '{"device_group_id": 7}'
    refused "a record that is not base64" 400 bad_request rawadmin POST "/v1/tenants/$acme/devices" \
        "${J[@]}" --data-binary "{\"device_id\": \"$DEV_unknown\", \"manufacturing_record\": \"***\"}"
    refused "claiming an unknown device (raw)" 404 not_found rawadmin POST "/v1/tenants/$acme/devices" \
        "${J[@]}" --data-binary "{\"device_id\": \"$NOSUCH\"}"
    refused "claiming a claimed device (raw)" 409 conflict rawadmin POST "/v1/tenants/$acme/devices" \
        "${J[@]}" --data-binary "{\"device_id\": \"$DEV_d2\"}"
    refused "a role that does not exist" 400 bad_request rawadmin POST "/v1/tenants/$acme/roles" \
        "${J[@]}" --data-binary '{"user": "x", "role": "Owner"}'
    refused "a user name with a slash" 400 bad_request rawadmin POST "/v1/tenants/$acme/roles" \
        "${J[@]}" --data-binary '{"user": "a/b", "role": "Reader"}'
    # A client certificate of another CA: the handshake fails, or the API refuses it.
    snap
    http none GET /v1/me --cert factory.crt --key factory.key
    case $status in 000 | 401) ok ;; *) bad "a client certificate of another CA: HTTP $status" ;; esac
    same "a client certificate of another CA"
    # Enrollment: an invitation's CSR must be valid; a failed try does not spend the code.
    expect 0 cli admin role add --user late --role Reader --output json
    local late
    late=$(json out.txt "['enrollment_code']")
    refused "enrolling with a garbage CSR" 400 bad_request none POST /v1/enroll "${J[@]}" \
        --data-binary "{\"code\": \"$late\", \"csr\": \"garbage\"}"
    raw_enroll late "$late"
    # An expired code: its time has passed (moved back in the database, as a day would).
    expect 0 cli admin role add --user expired --role Reader --output json
    local expired
    expired=$(json out.txt "['enrollment_code']")
    sql "UPDATE enrollment_codes SET expires_at = expires_at - 86401 WHERE user_name = 'expired'"
    cli_refused "an expired enrollment code" $EX_AUTH expired login --server "$URL" --ca "$D/ca.crt" --enroll "$expired"
    contains err.txt "enrollment code is not valid (unknown, used or expired)"
    refused "an expired enrollment code (raw)" 401 unauthenticated none POST /v1/enroll "${J[@]}" \
        --data-binary "$(enroll_body "$expired")"
    http late GET /v1/me
    want 200
    is "late's roles" "$(json body.json "['roles'][0]['role']") $(json body.json "['roles'][0]['tenant_id']")" "Reader $acme"

    # -- pagination: three devices in Acme, pages of two --
    expect 0 cli admin device claim --device "$DEV_d4"
    http rawadmin GET "/v1/tenants/$acme/devices?limit=2"
    want 200
    local page1 token
    page1=$(python3 -c 'import json,sys; print(" ".join(d["id"] for d in json.load(open(sys.argv[1]))["items"]))' body.json)
    token=$(json body.json "['continuation_token']")
    is "first page" "$(echo "$page1" | wc -w)" 2
    [ -n "$token" ] && [ "$token" != null ] && ok || bad "no continuation token on a full page: $(cat body.json)"
    http rawadmin GET "/v1/tenants/$acme/devices?limit=2&continuation_token=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$token")"
    want 200
    local page2
    page2=$(python3 -c 'import json,sys; print(" ".join(d["id"] for d in json.load(open(sys.argv[1]))["items"]))' body.json)
    is "last page's token" "$(json body.json "['continuation_token']")" null
    is "all devices over two pages, by ID" "$page1 $page2" "$(printf '%s\n' "$DEV_d2" "$DEV_d3" "$DEV_d4" | sort | tr '\n' ' ' | sed 's/ $//')"
    expect 0 cli admin device list --output json
    is "CLI device list" "$(items out.txt ".__len__()")" 3
    expect 0 cli admin device list --limit 2 --output json
    is "CLI device list --limit 2" "$(items out.txt "[1]['id']") $(items out.txt ".__len__()")" "$(echo "$page1" | cut -d' ' -f2) 2"
    expect 0 cli admin device list
    contains out.txt "$DEV_d2"
    contains out.txt "$DEV_d3"
    contains out.txt "$DEV_d4"
    http rawadmin GET "/v1/tenants/$acme/devices?device_group_id=$g_prod"
    want 200
    is "devices in Production" "$(json body.json "['items'][0]['id']") $(json body.json "['items'].__len__()")" "$DEV_d3 1"

    # -- tenant CAs (docs/protocol/attestation.md §3) --
    is "tenant-ca.kek mode and size" "$(stat -c '%a %s' "$D/tenant-ca.kek")" "600 32"
    expect 0 cli reader ca-certificate list --output json
    is "a new tenant has one CA" "$(items out.txt ".__len__()") $(items out.txt "[0]['status']")" "1 active"
    local ca1 ca2
    ca1=$(items out.txt "[0]['id']")
    expect 0 cli reader ca-certificate show --id "$ca1"
    contains out.txt "CN=Pavise tenant $acme"
    expect 0 cli reader ca-certificate download --id "$ca1" --output-file ca1.pem
    contains out.txt "Wrote CA certificate $ca1 to ca1.pem."
    is "downloaded CA subject" "$(openssl x509 -in ca1.pem -noout -subject -nameopt RFC2253)" "subject=CN=Pavise tenant $acme"
    openssl x509 -in ca1.pem -noout -text >ca1.txt 2>&1
    contains ca1.txt "CA:TRUE, pathlen:0"
    contains ca1.txt "Certificate Sign, CRL Sign"
    contains ca1.txt "prime256v1"
    cli_refused "a Reader rotating the tenant CA" $EX_AUTH reader ca-certificate rotate
    contains err.txt "this needs the Administrator role in tenant"
    cli_refused "a Contributor rotating the tenant CA" $EX_AUTH contributor ca-certificate rotate
    cli_refused "another tenant's CA" $EX_NOTFOUND outsider ca-certificate show --id "$ca1"
    cli_refused "a malformed CA ID" $EX_USAGE reader ca-certificate show --id not-an-id
    expect 0 cli admin ca-certificate rotate --output json
    ca2=$(json out.txt "['id']")
    is "the new CA" "$(json out.txt "['status']")" active
    expect 0 cli reader ca-certificate list
    golden ca-list out.txt
    # The chain: both CAs during the overlap, the active one first, as PEM and PKCS#7.
    expect 0 cli reader ca-certificate download-chain --output-file chain.pem
    is "CAs in the PEM chain" "$(grep -c 'BEGIN CERTIFICATE' chain.pem)" 2
    expect 0 cli reader ca-certificate download --id "$ca2" --output-file ca2.pem
    is "the active CA comes first" "$(openssl x509 -in chain.pem -noout -fingerprint -sha256)" \
        "$(openssl x509 -in ca2.pem -noout -fingerprint -sha256)"
    expect 0 cli reader ca-certificate download-chain --format pkcs7 --output-file chain.p7b --output json
    is "download-chain JSON" "$(json out.txt "['format']") $(json out.txt "['output']")" "pkcs7 chain.p7b"
    openssl pkcs7 -inform DER -in chain.p7b -print_certs -out p7certs.pem 2>p7.err && ok || bad "openssl pkcs7: $(cat p7.err)"
    is "CAs in the PKCS#7 chain" "$(grep -c 'BEGIN CERTIFICATE' p7certs.pem)" 2
    openssl pkcs7 -inform DER -in chain.p7b -print >p7.txt 2>&1
    contains p7.txt "signer_info:"
    lacks p7.txt "issuer_and_serial"
    cli_refused "a chain format that does not exist" $EX_USAGE reader ca-certificate download-chain --format der --output-file x
    # Proof of possession: CN = the code, issued by the CA, checked by openssl.
    expect 0 cli contributor ca-certificate download-proof --id "$ca2" --verification-code 9F3A-C0DE --output-file proof2.pem
    is "proof subject" "$(openssl x509 -in proof2.pem -noout -subject -nameopt RFC2253)" "subject=CN=9F3A-C0DE"
    openssl verify -CAfile chain.pem proof2.pem >verify.txt 2>&1 && ok || bad "openssl verify proof2: $(cat verify.txt)"
    openssl verify -CAfile ca2.pem proof2.pem >verify.txt 2>&1 && ok || bad "openssl verify proof2 with ca2: $(cat verify.txt)"
    if openssl verify -CAfile ca1.pem proof2.pem >verify.txt 2>&1; then bad "a proof of the new CA verifies with the old one"; else ok; fi
    expect 0 cli contributor ca-certificate download-proof --id "$ca1" --verification-code old-ca --output-file proof1.pem --output json
    is "proof JSON" "$(json out.txt "['verification_code']")" old-ca
    openssl verify -CAfile chain.pem proof1.pem >verify.txt 2>&1 && ok || bad "openssl verify proof1: $(cat verify.txt)"
    cli_refused "a verification code with a space" $EX_REJECTED contributor ca-certificate download-proof \
        --id "$ca2" --verification-code "a b" --output-file x.pem
    contains err.txt "verification_code"
    [ -e x.pem ] && bad "a refused proof wrote its file" || ok
    cli_refused "a Reader asking for a proof" $EX_AUTH reader ca-certificate download-proof \
        --id "$ca2" --verification-code ABC --output-file x.pem
    refused "a chain in an unknown format (raw)" 400 bad_request rawadmin GET "/v1/tenants/$acme/ca-certificates/chain?format=der"
    http rawadmin GET "/v1/tenants/$acme/ca-certificates/chain?format=pkcs7" -D headers.txt
    want 200
    contains headers.txt "application/pkcs7-mime"
    # An MQTT-style relying party's check of the chain file, as installed: the other tenant's
    # chain does not vouch for this tenant's CA.
    expect 0 cli outsider ca-certificate download-chain --output-file globex.pem
    if openssl verify -CAfile globex.pem proof2.pem >verify.txt 2>&1; then bad "another tenant's chain accepts our proof"; else ok; fi

    # -- images: roots and OS images offline, the tenant's application images by API --
    expect 0 "$PSERVER" migrate --data "$D" --output json
    is "schema version" "$(json out.txt "['schema_version']")" 4
    expect 0 "$PSERVER" image-root list --data "$D"
    contains out.txt "No image roots"
    pack_app app1.imagepackage img
    cli_refused "an image before any image root" $EX_REJECTED contributor image add --image-package app1.imagepackage
    contains err.txt "image-root add"
    expect 0 "$PSERVER" image-root add --data "$D" --cert img-root.crt --output json
    local imgfp
    imgfp=$(json out.txt "['fingerprint']")
    is "image root fingerprint" "$imgfp" "$(openssl x509 -in img-root.crt -outform DER | sha256sum | cut -d' ' -f1)"
    expect $EX_CONFLICT "$PSERVER" image-root add --data "$D" --cert img-root.crt
    expect 0 "$PSERVER" image-root add --data "$D" --cert dev-root.crt --development
    expect $EX_REJECTED "$PSERVER" image-root add --data "$D" --cert img-sign.crt
    contains err.txt "not a CA"
    expect 0 "$PSERVER" image-root list --data "$D" --output json
    # Listed by time added, then fingerprint, and both may be added in the same second:
    # the production root's flag first, then the development root's.
    is "image roots" "$(json out.txt ".__len__()") $(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(" ".join(str(r["development"]).lower() for r in sorted(d, key=lambda r: r["fingerprint"] != sys.argv[2])))' out.txt "$imgfp")" "2 false true"
    # An application image: uploaded as its head, recorded with the manifest's digest.
    expect 0 cli contributor image add --image-package app1.imagepackage --output json
    local app1
    app1=$(json out.txt "['id']")
    is "image kind" "$(json out.txt "['kind']") $(json out.txt "['development']") $(json out.txt "['revoked_at']")" "app false null"
    is "registered manifest digest" "$(sqlv "SELECT manifest_sha256 FROM images WHERE id = '$app1'")" \
        "$(json out.txt "['manifest_sha256']")"
    cli_refused "the same image twice" $EX_CONFLICT contributor image add --image-package app1.imagepackage
    cli_refused "a Reader adding an image" $EX_AUTH reader image add --image-package app1.imagepackage
    pack_app evil.imagepackage evil
    cli_refused "an image signed under no image root" $EX_REJECTED contributor image add --image-package evil.imagepackage
    contains err.txt "none of the image roots"
    pack_osimg os1.imagepackage img
    cli_refused "an OS image through the tenant API" $EX_REJECTED contributor image add --image-package os1.imagepackage
    # The head with its payload, tampered, truncated, as raw requests.
    python3 - app1.imagepackage <<'PY'
import base64, json, struct, sys
d = open(sys.argv[1], "rb").read()
s, c = struct.unpack(">II", d[16:24])
head = d[:48 + s + c]
def body(b): return json.dumps({"package": base64.b64encode(b).decode()})
open("whole.json", "w").write(body(d))
open("cut.json", "w").write(body(head[:-1]))
t = bytearray(head); t[48 + s - 1] ^= 1
open("tampered.json", "w").write(body(bytes(t)))
PY
    refused "a whole package instead of its head" 400 bad_request rawadmin POST "/v1/tenants/$acme/images" "${J[@]}" --data-binary @whole.json
    refused "a truncated head" 400 bad_request rawadmin POST "/v1/tenants/$acme/images" "${J[@]}" --data-binary @cut.json
    refused "a tampered head" 400 bad_request rawadmin POST "/v1/tenants/$acme/images" "${J[@]}" --data-binary @tampered.json
    pack_app dev.imagepackage dev
    expect 0 cli contributor image add --image-package dev.imagepackage --output json
    is "a development image" "$(json out.txt "['development']")" true
    expect 0 cli reader image list --output json
    is "images listed" "$(items out.txt ".__len__()")" 2
    expect 0 cli reader image show --image-id "$app1"
    contains out.txt "Manifest SHA-256:"
    cli_refused "another tenant's image" $EX_NOTFOUND outsider image show --image-id "$app1"
    cli_refused "a malformed image ID" $EX_USAGE reader image show --image-id not-an-id
    cli_refused "a Contributor revoking an image" $EX_AUTH contributor image revoke --image-id "$app1"
    expect 0 cli admin image revoke --image-id "$app1" --output json
    local revoked
    revoked=$(json out.txt "['revoked_at']")
    [ "$revoked" != null ] && ok || bad "revoke left revoked_at null"
    expect 0 cli admin image revoke --image-id "$app1" --output json
    is "revoking twice keeps the first time" "$(json out.txt "['revoked_at']")" "$revoked"
    # OS images, offline.
    expect 0 "$PSERVER" os-image add --data "$D" --image-package os1.imagepackage --feed Retail --output json
    local os1
    os1=$(json out.txt "['id']")
    is "OS image digest" "$(json out.txt "['manifest_sha256']")" "$(sqlv "SELECT manifest_sha256 FROM images WHERE id = '$os1' AND tenant_id IS NULL")"
    expect $EX_CONFLICT "$PSERVER" os-image add --data "$D" --image-package os1.imagepackage --feed Retail
    expect $EX_USAGE "$PSERVER" os-image add --data "$D" --image-package os1.imagepackage --feed Nightly
    expect $EX_REJECTED "$PSERVER" os-image add --data "$D" --image-package dev.imagepackage --feed Retail
    contains err.txt "application image"
    pack_osimg evil-os.imagepackage evil
    expect $EX_REJECTED "$PSERVER" os-image add --data "$D" --image-package evil-os.imagepackage --feed RetailEval
    expect 0 "$PSERVER" os-image list --data "$D"
    contains out.txt "pavise-os"
    expect 0 "$PSERVER" os-image revoke --data "$D" --image-id "$os1"
    expect 0 "$PSERVER" os-image revoke --data "$D" --image-id "$os1"
    expect $EX_NOTFOUND "$PSERVER" os-image revoke --data "$D" --image-id 00000000-0000-4000-8000-000000000001
    expect 0 "$PSERVER" os-image list --data "$D" --output json
    [ "$(json out.txt "[0]['revoked_at']")" != null ] && ok || bad "OS image not revoked"
    cli_refused "an OS image through the tenant API" $EX_NOTFOUND reader image show --image-id "$os1"
    expect $EX_NOTFOUND "$PSERVER" image-root remove --data "$D" --fingerprint "$(printf '%064d' 0)"
    expect 0 "$PSERVER" image-root remove --data "$D" --fingerprint "SHA256:$imgfp"
    pack_app app2.imagepackage img
    cli_refused "an image under a removed root" $EX_REJECTED contributor image add --image-package app2.imagepackage
    for a in "server image_root.add $imgfp" "server image_root.remove $imgfp" "server os_image.add $os1" "server os_image.revoke $os1"; do
        [ "$(sqlv "SELECT COUNT(*) FROM audit WHERE operator || ' ' || action || ' ' || target = '$a'")" = 1 ] && ok || bad "audit lacks '$a' once"
    done

    # -- development capability files: the signer offline, the file through the API --
    local capkid capurl=/v1/tenants/$acme/devices/$DEV_d2/capabilities
    expect $EX_NOTFOUND "$PSERVER" capability-signer show --data "$D"
    contains err.txt "capability-signer set"
    expect 0 cli admin device enable-development --device "$DEV_d2"
    refused "a capability before the service has a signer" 503 unavailable rawadmin POST "$capurl" "${J[@]}" \
        --data-binary '{"capabilities": ["AppDevelopment"]}'
    contains body.json "capability-signer set"
    expect $EX_REJECTED "$PSERVER" capability-signer set --data "$D" --key img-sign.key --cert-chain img-sign.crt
    contains err.txt "capability signing"
    expect $EX_REJECTED "$PSERVER" capability-signer set --data "$D" --key dev-sign.key --cert-chain capsign.crt
    contains err.txt "does not hold the key"
    [ -e "$D/capability-signer.key" ] && bad "a refused signer was installed" || ok
    expect 0 "$PSERVER" capability-signer set --data "$D" --key capsign.key --cert-chain capsign.crt --output json
    capkid=$(json out.txt "['key_id']")
    [[ "$capkid" =~ ^[0-9a-f]{64}$ ]] && ok || bad "capability signer key ID '$capkid'"
    is "capability signer key file mode" "$(stat -c %a "$D/capability-signer.key")" 600
    expect 0 "$PSERVER" capability-signer show --data "$D"
    contains out.txt "CN=Capability Signer"
    # The running server signs with it from the next request on.
    http rawadmin POST "$capurl" "${J[@]}" --data-binary '{"capabilities": ["AppDevelopment"], "valid_days": 7}'
    want 200
    is "capability answer" "$(json body.json "['device_id']") $(json body.json "['capabilities']")" "$DEV_d2 [\"AppDevelopment\"]"
    [ "$(json body.json "['expires_at']")" != null ] && ok || bad "valid_days gave no expiry"
    # The file: [1, COSE_Sign1, chain], naming the device and carrying the development root
    # (and not the production one) and the signer's certificate.
    python3 - body.json dev-root.crt img-root.crt capsign.crt "$DEV_d2" >capcheck.txt 2>&1 <<'PY' && ok || bad "capability file: $(cat capcheck.txt)"
import base64, json, ssl, sys
f = base64.b64decode(json.load(open(sys.argv[1]))["capability"], validate=True)
der = lambda p: ssl.PEM_cert_to_DER_cert(open(p).read())
assert f[:3] == bytes([0x83, 0x01, 0x59]), f[:3].hex()
assert sys.argv[5].encode() in f, "no device ID"
assert b"AppDevelopment" in f and b"application/vnd.pavise.capability+cbor; v=1" in f
assert der(sys.argv[2]) in f, "no development root"
assert der(sys.argv[3]) not in f, "the production root is in it"
assert der(sys.argv[4]) in f, "no signer certificate"
PY
    refused "an unknown capability" 400 bad_request rawadmin POST "$capurl" "${J[@]}" --data-binary '{"capabilities": ["EnableRfTestMode"]}'
    refused "a capability without a body" 400 bad_request rawadmin POST "$capurl"
    refused "a capability for a device the tenant does not hold" 404 not_found rawadmin POST \
        "/v1/tenants/$acme/devices/$NOSUCH/capabilities" "${J[@]}" --data-binary '{"capabilities": ["AppDevelopment"]}'
    # The CLI writes the file the service signed.
    expect 0 cli contributor device capability download --device "$DEV_d2" --output-file cap.bin
    contains out.txt "AppDevelopment"
    golden capability-download out.txt
    [ "$(head -c 2 cap.bin | od -An -tx1 | tr -d ' ')" = 8301 ] && ok || bad "cap.bin is not a capability file"
    expect 0 cli contributor device capability download --device "$DEV_d2" --output-file cap.bin --valid-days 30
    contains out.txt "Expires: 20"
    cli_refused "a Reader downloading a capability" $EX_AUTH reader device capability download --device "$DEV_d2" --output-file x.bin
    cli_refused "another tenant's device's capability" $EX_NOTFOUND outsider device capability download --device "$DEV_d2" --output-file x.bin
    cli_refused "a capability valid for 0 days" $EX_USAGE contributor device capability download --device "$DEV_d2" --output-file x.bin --valid-days 0
    [ -e x.bin ] && bad "a refused download wrote its file" || ok
    expect 0 cli admin device enable-cloud-test --device "$DEV_d2"
    refused "a capability for a device out of development mode" 409 conflict rawadmin POST "$capurl" "${J[@]}" \
        --data-binary '{"capabilities": ["AppDevelopment"]}'
    contains body.json "development mode"
    [ "$(sqlv "SELECT COUNT(*) FROM audit WHERE operator = 'server' AND action = 'capability_signer.set' AND target = '$capkid'")" = 1 ] && ok || bad "audit lacks the capability signer"
    [ "$(sqlv "SELECT COUNT(*) FROM audit WHERE operator = 'rawadmin' AND action = 'device.capability' AND target = '$DEV_d2'")" = 1 ] && ok || bad "audit lacks the capability"

    # -- audit: every mutation, with its operator --
    expect 0 cli admin audit list --output json
    python3 - out.txt >audit.txt <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for e in (d["items"] if isinstance(d, dict) else d):
    print(e["seq"], e["operator"], e["action"], e["target"])
PY
    local a
    for a in "admin tenant.create" "admin product.create" "admin product.update" "admin device_group.create" \
        "admin device_group.update" "admin device_group.delete" "admin device.claim $DEV_d1" \
        "admin device.claim $DEV_d2" "admin device.update $DEV_d2" "admin device.enable_development $DEV_d2" \
        "admin device.enable_cloud_test $DEV_d2" "admin role.invite" "admin role.delete" "admin device.release $DEV_d1" \
        "contributor product.create" "contributor product.update" "contributor device.claim $DEV_d3" \
        "contributor operator.enroll" "reader operator.enroll" "rawadmin operator.enroll" \
        "admin ca_certificate.rotate $ca2" "contributor ca_certificate.proof $ca2" \
        "contributor ca_certificate.proof $ca1" "contributor image.add $app1" "admin image.revoke $app1"; do
        grep -q " $a" audit.txt && ok || bad "audit lacks '$a'"
    done
    lacks audit.txt "outsider device.claim"
    lacks audit.txt "Gizmo"
    sort -n -c audit.txt 2>/dev/null && ok || bad "audit not ordered by seq"
    http rawadmin GET "/v1/tenants/$acme/audit?limit=3"
    want 200
    is "audit page" "$(json body.json "['items'].__len__()")" 3
    expect 0 cli outsider audit list --output json
    contains out.txt "device.claim"
    contains out.txt "$DEV_d1"

    # -- metrics --
    http none GET /metrics
    want 200
    contains body.json 'pavise_http_requests_total{route="/v1/tenants/{tenant}/devices/{device}",method="GET",status="200"}'
    contains body.json 'pavise_http_requests_total{route="/v1/tenants/{tenant}/devices/{device}",method="GET",status="404"}'
    contains body.json 'pavise_http_request_duration_seconds_bucket{route="/v1/tenants/{tenant}/devices/{device}"'
    contains body.json 'pavise_http_request_duration_seconds_count{route="/v1/tenants/{tenant}/devices/{device}"'

    # -- replicas: two servers, one PostgreSQL --
    if [ "$BACKEND" = postgres ]; then
        start_server second --data "$D" || return
        expect 0 cli admin device claim --device "$DEV_d5"
        expect 0 cli admin device show --server "$URL_second" --device "$DEV_d5" --output json
        is "a claim through one replica, read through the other" "$(json out.txt "['tenant_id']")" "$acme"
        expect 0 cli admin product create --server "$URL_second" --name "Second Replica" --output json
        local second
        second=$(json out.txt "['id']")
        expect 0 cli admin product list --output json
        contains out.txt "$second"
        # Both replicas race for the same device: exactly one claim wins.
        expect 0 cli admin device release --device "$DEV_d5"
        cli admin device claim --device "$DEV_d5" >race1.txt 2>&1 &
        local r1=$!
        cli admin device claim --server "$URL_second" --device "$DEV_d5" >race2.txt 2>&1 &
        local r2=$!
        wait $r1; local e1=$?
        wait $r2; local e2=$?
        is "two replicas claiming one device: exit codes" "$(printf '%s\n' $e1 $e2 | sort | tr '\n' ' ')" "0 $EX_CONFLICT "
        # An enrollment code is single-use across replicas too.
        expect 0 cli admin role add --user twice --role Reader --output json
        c=$(json out.txt "['enrollment_code']")
        local creq
        creq=$(python3 -c 'import json, sys; print(json.dumps({"code": sys.argv[1], "csr": open(sys.argv[2]).read()}))' "$c" "$T/raw-late.csr")
        curl -sS -o r1.json -w '%{http_code}\n' --cacert "$D/ca.crt" "${J[@]}" --data-binary "$creq" "$URL_main/v1/enroll" >code1.txt &
        local c1=$!
        curl -sS -o r2.json -w '%{http_code}\n' --cacert "$D/ca.crt" "${J[@]}" --data-binary "$creq" "$URL_second/v1/enroll" >code2.txt &
        local c2=$!
        wait $c1 $c2
        is "one code redeemed on two replicas" "$(cat code1.txt code2.txt | sort | tr '\n' ' ')" "201 401 "
        stop_server second
    fi
    stop_server main
    # The data survive a restart.
    start_server main --data "$D" || return
    URL=$URL_main
    expect 0 cli admin device show --server "$URL" --device "$DEV_d2" --output json
    is "device after a restart" "$(json out.txt "['device_group_name']")" "Field Test"
    stop_server main
}

for b in $BACKENDS; do
    case $b in
    sqlite) run_suite sqlite ;;
    postgres)
        # The cluster runs as the postgres user: it must reach its directory (o+x on the
        # way), whose socket path must stay short.
        chmod o+x "$T"
        PGDIR=$T/pg
        if [ ${#PGDIR} -gt 80 ]; then PGDIR=$(mktemp -d /tmp/pv-pg-XXXXXX) && chmod o+x "$PGDIR"; fi
        if ! PGCONN=$("$SRC/scripts/pg-start" "$PGDIR" 2>pg-start.err); then
            bad "scripts/pg-start failed: $(cat pg-start.err)"
            continue
        fi
        PGCONN=$(printf '%s\n' "$PGCONN" | tail -1)
        run_suite postgres
        "$SRC/scripts/pg-stop" "$PGDIR" >/dev/null 2>&1 && ok || bad "scripts/pg-stop failed"
        case $PGDIR in /tmp/pv-pg-*) rm -rf "$PGDIR" ;; esac
        PGDIR=
        ;;
    *) bad "unknown backend $b" ;;
    esac
done

echo "server_test: $pass passed, $failed failed"
[ "$failed" -eq 0 ]
