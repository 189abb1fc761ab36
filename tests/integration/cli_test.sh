#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End-to-end checks of the pavise CLI: every command, its exit codes, its refusals, and
# golden outputs for what users read.
set -uo pipefail
PAVISE=$1
APP=$2
GOLDEN=$3
TMPBASE=${4:-/tmp}
mkdir -p "$TMPBASE"
T=$(mktemp -d "$TMPBASE/cli-XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"

. "$(dirname "$0")/testlib.sh"
golden() { # NAME FILE: compare FILE (with the temp dir replaced by @T@) to golden/NAME.exp
    sed "s#$T#@T@#g" "$2" >"$2.norm"
    if [ "${PV_UPDATE_GOLDEN:-0}" = 1 ]; then cp "$2.norm" "$GOLDEN/$1.exp"; ok; return; fi
    if diff -u "$GOLDEN/$1.exp" "$2.norm" >diff.txt; then ok; else bad "golden $1 differs:"; cat diff.txt >&2; fi
}

# ---- help and usage ----
expect 0 "$PAVISE" --help;                                        golden help out.txt
expect 0 "$PAVISE" image-package --help;                          golden image-package-help out.txt
expect 0 "$PAVISE" image-package pack-application --help;         golden pack-application-help out.txt
expect 0 "$PAVISE" image-package verify --help;                   golden verify-help out.txt
expect 0 "$PAVISE" keys create-ca --help;                         golden create-ca-help out.txt
expect 2 "$PAVISE"
expect 2 "$PAVISE" nonsense
expect 2 "$PAVISE" image-package nonsense
expect 2 "$PAVISE" image-package verify --package;                contains err.txt "needs a value"
expect 2 "$PAVISE" image-package verify --bogus x;                contains err.txt "unknown option '--bogus'"
expect 2 "$PAVISE" image-package show;                            contains err.txt "missing --package"
expect 2 "$PAVISE" image-package show --package a --package b;    contains err.txt "given twice"
expect 2 "$PAVISE" image-package show --package a stray;          contains err.txt "unexpected argument 'stray'"
expect 2 "$PAVISE" image-package show --package a --output yaml;  contains err.txt "--output takes"

# ---- keys ----
expect 0 "$PAVISE" keys create-ca --output-key ca.key --output-cert ca.crt --subject "CN=Test Root,O=Pavise Test"
contains out.txt "CN=Test Root"
[ "$(stat -c %a ca.key)" = 600 ] && ok || bad "ca.key mode $(stat -c %a ca.key)"
expect 0 "$PAVISE" keys create-signing --ca-key ca.key --ca-cert ca.crt --output-key s.key \
    --output-cert s.crt --subject "CN=Test Signing" --output json
contains out.txt '"fingerprint":'
cp ca.key ca.key.before
expect 1 "$PAVISE" keys create-ca --output-key ca.key --output-cert other.crt --subject "CN=X"
contains err.txt "already exists"
cmp -s ca.key ca.key.before && ok || bad "existing key was changed"
[ ! -e other.crt ] && ok || bad "certificate written although the key was refused"
expect 2 "$PAVISE" keys create-ca --output-key x.key --output-cert x.crt --subject "O=No Common Name"
[ ! -e x.key ] && ok || bad "key written for a refused subject"
expect 2 "$PAVISE" keys create-ca --output-key x.key --output-cert x.crt --subject "CN=X" --days 0
expect 0 "$PAVISE" keys create-ca --output-key other.key --output-cert other.crt --subject "CN=Other Root"

# ---- pack, show, verify, extract ----
export SOURCE_DATE_EPOCH=1700000000
IMAGE_ID=0f0e0d0c-0b0a-4908-8706-050403020100
expect 0 "$PAVISE" image-package pack-application --manifest "$APP/app_manifest.json" \
    --package-directory "$APP" --key s.key --cert s.crt --destination hello.imagepackage --image-id $IMAGE_ID
golden pack-output out.txt
expect 1 "$PAVISE" image-package pack-application --manifest "$APP/app_manifest.json" \
    --package-directory "$APP" --key s.key --cert s.crt --destination hello.imagepackage
contains err.txt "already exists"
expect 0 "$PAVISE" image-package show --package hello.imagepackage
contains out.txt "intact"
contains out.txt "CN=Test Signing"
expect 0 "$PAVISE" image-package show --package hello.imagepackage --output json
contains out.txt "\"imageId\": \"$IMAGE_ID\""
contains out.txt '"mutableStorageKB": 64'
expect 0 "$PAVISE" image-package verify --package hello.imagepackage --trust-anchor ca.crt
golden verify-output out.txt
expect 0 "$PAVISE" image-package verify --package hello.imagepackage --trust-anchor ca.crt --output json
contains out.txt '"securityCounter": 1'
PAVISE_TRUST_ANCHOR=ca.crt expect 0 "$PAVISE" image-package verify --package hello.imagepackage
expect 2 env -u PAVISE_TRUST_ANCHOR "$PAVISE" image-package verify --package hello.imagepackage
contains err.txt "--trust-anchor"
expect 3 "$PAVISE" image-package verify --package hello.imagepackage --trust-anchor other.crt
contains err.txt "image package hello.imagepackage: certificate chain"
expect 0 "$PAVISE" image-package extract --package hello.imagepackage --trust-anchor ca.crt --destination out
[ -x out/bin/hello ] && ok || bad "extracted entry point missing"
out/bin/hello --once >run.txt && contains run.txt "heartbeat 1" || bad "extracted app did not run"
expect 1 "$PAVISE" image-package extract --package hello.imagepackage --trust-anchor ca.crt --destination out
contains err.txt "not empty"
expect 3 "$PAVISE" image-package extract --package hello.imagepackage --trust-anchor other.crt --destination out2
[ ! -e out2 ] && ok || bad "extraction happened with the wrong trust anchor"

# ---- tampering and truncation ----
size=$(stat -c %s hello.imagepackage)
for off in 0 9 20 60 300 900 $((size / 2)) $((size - 1)); do
    cp hello.imagepackage t.imagepackage
    byte=$(od -An -tu1 -j "$off" -N1 t.imagepackage | tr -d ' ')
    printf "\\$(printf '%03o' $(( (byte + 1) % 256 )))" | dd of=t.imagepackage bs=1 seek="$off" conv=notrunc status=none
    expect 3 "$PAVISE" image-package verify --package t.imagepackage --trust-anchor ca.crt
    expect 3 "$PAVISE" image-package extract --package t.imagepackage --trust-anchor ca.crt --destination tx
    [ ! -e tx ] && ok || bad "tampered package (byte $off) was extracted"
done
head -c $((size - 1)) hello.imagepackage >cut.imagepackage
expect 3 "$PAVISE" image-package verify --package cut.imagepackage --trust-anchor ca.crt
contains err.txt "truncated"
expect 1 "$PAVISE" image-package verify --package missing.imagepackage --trust-anchor ca.crt
contains err.txt "missing.imagepackage"
# Text that reaches the terminal never carries control characters.
expect 1 "$PAVISE" image-package show --package "$(printf 'evil\033[2J')"
contains err.txt 'evil\x1b[2J'
grep -q "$(printf '\033')" err.txt && bad "escape character reached the terminal" || ok

# ---- app manifest errors name the file and the field ----
mkdir -p app/bin && cp "$APP/bin/hello" app/bin/hello
sed 's/"SizeKB": 64/"SizeKB": 0/' "$APP/app_manifest.json" >bad.json
expect 3 "$PAVISE" image-package pack-application --manifest bad.json --package-directory app \
    --key s.key --cert s.crt --destination bad.imagepackage
golden bad-manifest-error err.txt
[ ! -e bad.imagepackage ] && ok || bad "package written from an invalid manifest"
sed 's/"EntryPoint": "\/bin\/hello"/"EntryPoint": "\/bin\/nothere"/' "$APP/app_manifest.json" >noentry.json
expect 3 "$PAVISE" image-package pack-application --manifest noentry.json --package-directory app \
    --key s.key --cert s.crt --destination bad.imagepackage
contains err.txt "/bin/nothere"
ls -A | grep -q 'tmp-' && bad "temporary files left behind: $(ls -A)" || ok

# ---- operator commands without a server: help, usage, configuration, refusals ----
expect 0 "$PAVISE" login --help;                                  golden login-help out.txt
expect 0 "$PAVISE" device --help;                                 golden device-help out.txt
expect 0 "$PAVISE" device claim --help;                           golden device-claim-help out.txt
expect 0 "$PAVISE" device capability download --help;             golden device-capability-download-help out.txt
expect 2 "$PAVISE" device capability download --device xyz --output-file x.cap; contains err.txt "not a device ID"
expect 0 "$PAVISE" device-group create --help;                    golden device-group-create-help out.txt
expect 0 "$PAVISE" role add --help;                               golden role-add-help out.txt
expect 0 "$PAVISE" tenant list --help;                            golden tenant-list-help out.txt
expect 0 "$PAVISE" audit list --help;                             golden audit-list-help out.txt
export PAVISE_CONFIG_DIR="$T/config"
FP=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
expect 2 "$PAVISE" login --server http://127.0.0.1:1 --ca ca.crt --enroll X
contains err.txt "only talks to the server over HTTPS"
expect 2 "$PAVISE" login --server https://127.0.0.1:1 --enroll X;   contains err.txt "either --ca FILE"
expect 2 "$PAVISE" login --server https://127.0.0.1:1 --ca ca.crt --fingerprint $FP --enroll X
expect 2 "$PAVISE" login --server https://127.0.0.1:1 --fingerprint 0123 --enroll X
contains err.txt "not a SHA-256 fingerprint"
expect 2 "$PAVISE" login --server https://127.0.0.1:1 --fingerprint "${FP}00" --enroll X
expect 2 "$PAVISE" login --server https://127.0.0.1:1 --fingerprint "SHA256:${FP%?}g" --enroll X
expect 2 "$PAVISE" login --server https://127.0.0.1:1 --fingerprint "01::23${FP:4}" --enroll X
expect 3 "$PAVISE" login --server https://127.0.0.1:1 --ca s.crt --enroll X
contains err.txt "not a CA certificate"
# Colons and the SHA256: prefix are accepted: the login gets as far as the network.
colons=$(printf '%s' "$FP" | tr a-f A-F | sed 's/../&:/g; s/:$//')
expect 1 "$PAVISE" login --server https://127.0.0.1:1 --fingerprint "SHA256:$colons" --enroll SECRET-CODE
contains err.txt "cannot reach https://127.0.0.1:1"
lacks err.txt "SECRET-CODE"
expect 1 "$PAVISE" login --server https://127.0.0.1:1 --ca ca.crt --enroll SECRET-CODE
[ -z "$(find "$T/config" -type f 2>/dev/null)" ] && ok || bad "a failed login left $(find "$T/config" -type f)"
[ "$(stat -c %a "$T/config")" = 700 ] && ok || bad "config directory mode $(stat -c %a "$T/config")"
# Not logged in: every server command refuses (exit 4) before any network.
for cmd in "tenant list" "me" "product list" "device show --device $FP" "audit list"; do
    expect 4 "$PAVISE" $cmd
    contains err.txt "not logged in"
done
expect 2 "$PAVISE" tenant list --server http://127.0.0.1:1;      contains err.txt "not https"
expect 2 "$PAVISE" tenant list --server https://user@127.0.0.1:1
expect 2 "$PAVISE" device show --device xyz;                       contains err.txt "not a device ID"
expect 2 "$PAVISE" role add --user u --role Boss;                  contains err.txt "not a role"
expect 2 "$PAVISE" device-group create --product P --name N --os-feed Beta
contains err.txt "--os-feed: 'Beta' is not one of Retail, RetailEval"
expect 2 "$PAVISE" product update --product P;                     contains err.txt "nothing to update"
expect 2 "$PAVISE" audit list --limit 0
expect 2 "$PAVISE" audit list --limit x
# A login's files, with a server that does not answer.
mkdir -p "$T/config"
cp ca.crt "$T/config/ca.crt"; cp s.crt "$T/config/operator.crt"; cp s.key "$T/config/operator.key"
printf '{"server": "https://127.0.0.1:1", "tenant": null}\n' >"$T/config/config.json"
expect 2 "$PAVISE" product list;                                   golden no-tenant-error err.txt
expect 1 "$PAVISE" tenant list;                                    contains err.txt "cannot reach https://127.0.0.1:1"
# Another server: refused without --force. The same server: the code is taken as an
# invitation accepted with the current certificate (here the server does not answer),
# and a failure leaves the login as it was.
expect 1 "$PAVISE" login --server https://127.0.0.1:2 --ca ca.crt --enroll X
contains err.txt "already logged in to https://127.0.0.1:1"
expect 1 "$PAVISE" login --server https://127.0.0.1:1 --ca ca.crt --enroll X
contains err.txt "cannot reach https://127.0.0.1:1"
cmp -s s.key "$T/config/operator.key" && cmp -s s.crt "$T/config/operator.crt" &&
    ok "a failed invitation acceptance keeps the login" || bad "the login changed"
cmp -s s.key "$T/config/operator.key" && ok || bad "a refused login changed the key"
chmod 644 "$T/config/operator.key"
expect 3 "$PAVISE" tenant list;                                    contains err.txt "chmod 600"
chmod 600 "$T/config/operator.key"
# Damaged configuration files are named, with what is wrong.
printf '{"server": "https://127.0.0.1:1"' >"$T/config/config.json"
expect 3 "$PAVISE" tenant list;                                    contains err.txt "damaged configuration"
contains err.txt "config.json"
printf '{"server": "http://127.0.0.1:1"}\n' >"$T/config/config.json"
expect 3 "$PAVISE" tenant list;                                    contains err.txt "not https"
printf '{"server": "https://127.0.0.1:1", "tenant": "acme"}\n' >"$T/config/config.json"
expect 3 "$PAVISE" tenant list;                                    contains err.txt "field 'tenant'"
printf '{"server": "https://127.0.0.1:1", "colour": 1}\n' >"$T/config/config.json"
expect 3 "$PAVISE" tenant list;                                    contains err.txt "unknown field 'colour'"
printf '[]\n' >"$T/config/config.json"
expect 3 "$PAVISE" tenant list;                                    contains err.txt "not a JSON object"
head -c 70000 /dev/zero | tr '\0' ' ' >"$T/config/config.json"
expect 3 "$PAVISE" tenant list;                                    contains err.txt "damaged configuration"
# A selected tenant is used without asking the server for it.
printf '{"server": "https://127.0.0.1:1", "tenant": "0F0E0D0C-0B0A-4908-8706-050403020100"}\n' >"$T/config/config.json"
expect 1 "$PAVISE" product list;                                   contains err.txt "cannot reach"
rm -f "$T/config/operator.key"
expect 4 "$PAVISE" tenant list;                                    contains err.txt "operator.key is missing"
unset PAVISE_CONFIG_DIR
# The configuration directory: XDG_CONFIG_HOME, then HOME.
env -u PAVISE_CONFIG_DIR XDG_CONFIG_HOME="$T/xdg" "$PAVISE" tenant list >out.txt 2>err.txt
contains err.txt "$T/xdg/pavise/config.json"
env -u PAVISE_CONFIG_DIR -u XDG_CONFIG_HOME HOME="$T/home" "$PAVISE" tenant list >out.txt 2>err.txt
contains err.txt "$T/home/.config/pavise/config.json"

echo "$pass passed, $failed failed"
[ "$failed" -eq 0 ]
