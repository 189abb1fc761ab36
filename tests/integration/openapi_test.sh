#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# docs/api/openapi.yaml describes exactly the routes the server registers: compares the
# "METHOD PATTERN" pairs of `pavise-server routes` with those of the document, both ways,
# and (when python3 with PyYAML is there) checks that the document parses and is
# consistent: every $ref resolves, every path parameter is declared, the query
# parameters equal the route table's, request bodies refuse unknown fields, and every
# 4xx/5xx answer is the Error schema.
# Usage: openapi_test.sh PAVISE_SERVER SOURCE_DIR TMPBASE
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SERVER=$(realpath "$1")
SRC=$(realpath "$2")
TMPBASE=${3:-/tmp}
mkdir -p "$TMPBASE" && TMPBASE=$(realpath "$TMPBASE")
T=$(mktemp -d "$TMPBASE/openapi-XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
. "$HERE/testlib.sh"
DOC=$SRC/docs/api/openapi.yaml

# The document's pairs: a path is a 2-space-indented key starting with "/" under
# `paths:`, a method a 4-space-indented HTTP verb under it.
awk '
    /^[^ #]/ { inpaths = ($0 ~ /^paths:[ ]*$/); next }
    !inpaths { next }
    /^  \/[^ ]*:[ ]*$/ { path = $1; sub(/:$/, "", path); gsub(/"/, "", path); next }
    /^    (get|put|post|patch|delete|head|options|trace):[ ]*$/ {
        m = $1; sub(/:$/, "", m); print toupper(m) " " path
    }' "$DOC" | sort >doc.txt
if "$SERVER" routes >routes.raw 2>err.txt; then ok; else bad "pavise-server routes failed: $(cat err.txt)"; fi
sort routes.raw >routes.txt
[ -s routes.txt ] && ok || bad "pavise-server routes printed nothing"
[ -s doc.txt ] && ok || bad "no METHOD PATH pairs found under paths: in $DOC"
comm -23 routes.txt doc.txt >missing-in-doc.txt
comm -13 routes.txt doc.txt >missing-in-server.txt
if [ -s missing-in-doc.txt ]; then
    bad "routes the server serves that $DOC does not describe:"; sed 's/^/  /' missing-in-doc.txt >&2
else ok; fi
if [ -s missing-in-server.txt ]; then
    bad "routes $DOC describes that the server does not serve:"; sed 's/^/  /' missing-in-server.txt >&2
else ok; fi
# Each pair once: no duplicate routes on either side.
dups=$(uniq -d routes.txt; uniq -d doc.txt)
[ -z "$dups" ] && ok || bad "duplicate routes: $dups"
echo "routes: $(wc -l <routes.txt) served, $(wc -l <doc.txt) documented"

if python3 -c 'import yaml' 2>/dev/null; then
    if python3 - "$DOC" "$SRC/src/server/api_routes.c" >py.txt 2>&1 <<'PY'; then ok; else bad "openapi.yaml consistency:"; sed 's/^/  /' py.txt >&2; fi
import re, sys, yaml

doc = yaml.safe_load(open(sys.argv[1]))
src = open(sys.argv[2]).read()
errors = []

def resolve(node):
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            errors.append("external $ref %s" % ref)
            return {}
        cur = doc
        for part in ref[2:].split("/"):
            if not isinstance(cur, dict) or part not in cur:
                errors.append("unresolved $ref %s" % ref)
                return {}
            cur = cur[part]
        node = cur
        seen += 1
        if seen > 20:
            errors.append("$ref loop at %s" % ref)
            return {}
    return node

def walk(node):
    if isinstance(node, dict):
        if "$ref" in node:
            resolve(node)
        for v in node.values():
            walk(v)
    elif isinstance(node, list):
        for v in node:
            walk(v)

walk(doc)
if not str(doc.get("openapi", "")).startswith("3."):
    errors.append("openapi version missing")
for key in ("info", "paths", "components"):
    if key not in doc:
        errors.append("no %s" % key)
if doc["components"]["securitySchemes"]["operatorCertificate"]["type"] != "mutualTLS":
    errors.append("operatorCertificate is not mutualTLS")

# The route table's query parameters, by route.
arrays = {m.group(1): re.findall(r'"([^"]+)"', m.group(2))
          for m in re.finditer(r'q_(\w+)\[\]\s*=\s*\{([^}]*)\}', src)}
prefix = re.search(r'#define T "([^"]+)"', src).group(1)
table = {}
for m in re.finditer(r'\{"(GET|POST|PATCH|PUT|DELETE)",\s*(T\s*)?("[^"]*")?,\s*(API_\w+),\s*\w+,\s*(q_\w+|NULL)\s*\}', src):
    path = (prefix if m.group(2) else "") + (m.group(3) or '""').strip('"')
    q = arrays.get(m.group(5)[2:], []) if m.group(5) != "NULL" else []
    table[(m.group(1), path)] = (m.group(4), sorted(q))
if len(table) < 10:
    errors.append("could not read the route table of api_routes.c (%d routes)" % len(table))

def obj_closed(schema, where):
    s = resolve(schema)
    if s.get("type") == "object" and s.get("additionalProperties") is not False:
        errors.append("%s: object schema does not set additionalProperties: false" % where)

for path, item in doc["paths"].items():
    declared_path_params = re.findall(r"\{(\w+)\}", path)
    for method, op in item.items():
        where = "%s %s" % (method.upper(), path)
        params = [resolve(p) for p in op.get("parameters", [])]
        pp = sorted(p["name"] for p in params if p.get("in") == "path")
        if pp != sorted(declared_path_params):
            errors.append("%s: path parameters %s, path has %s" % (where, pp, declared_path_params))
        qp = sorted(p["name"] for p in params if p.get("in") == "query")
        key = (method.upper(), path)
        if key in table:
            access, q = table[key]
            if qp != q:
                errors.append("%s: query parameters %s, the server allows %s" % (where, qp, q))
            public = op.get("security") == []
            if public != (access in ("API_PUBLIC", "API_DEVICE_PUBLIC")):
                errors.append("%s: security %s but the route is %s" % (where, op.get("security"), access))
            codes = set(op.get("responses", {}))
            if access not in ("API_PUBLIC", "API_DEVICE_PUBLIC") and "401" not in codes:
                errors.append("%s: no 401" % where)
            if access in ("API_CONTRIBUTOR", "API_ADMIN") and "403" not in codes:
                errors.append("%s: no 403 for a role check" % where)
            if "{" in path and "404" not in codes:
                errors.append("%s: no 404 for a path ID" % where)
            if access not in ("API_PUBLIC", "API_DEVICE_PUBLIC", "API_DEVICE") and "400" not in codes:
                errors.append("%s: no 400" % where)
        # Device routes (attestation.md) speak CBOR, errors included.
        cbor = table.get((method.upper(), path), ("",))[0] in ("API_DEVICE_PUBLIC", "API_DEVICE")
        if "requestBody" in op:
            if method not in ("post", "patch", "put"):
                errors.append("%s: a body on a %s" % (where, method))
            rb = resolve(op["requestBody"])
            for ctype, media in rb.get("content", {}).items():
                if ctype != ("application/cbor" if cbor else "application/json"):
                    errors.append("%s: body type %s" % (where, ctype))
                if not cbor:
                    obj_closed(media["schema"], where + " request body")
            codes = set(op.get("responses", {}))
            for c in ("400", "413", "415"):
                if c not in codes:
                    errors.append("%s: takes a body but has no %s" % (where, c))
        responses = op.get("responses", {})
        if not any(c.startswith("2") for c in responses):
            errors.append("%s: no success response" % where)
        for code, resp in responses.items():
            r = resolve(resp)
            if "description" not in r:
                errors.append("%s %s: no description" % (where, code))
            if code[0] in "45" and cbor:
                if resp.get("$ref") != "#/components/responses/CborFailure":
                    errors.append("%s %s: not the CborFailure response" % (where, code))
            elif code[0] in "45":
                schema = r.get("content", {}).get("application/json", {}).get("schema", {})
                if schema.get("$ref") != "#/components/schemas/Error":
                    errors.append("%s %s: not the Error schema" % (where, code))
for name, schema in doc["components"]["schemas"].items():
    obj_closed(schema, "schema " + name)
for want in ("Tenant", "Role", "Device", "Product", "DeviceGroup", "AuditEvent", "Error",
             "TenantList", "RoleList", "DeviceList", "ProductList", "DeviceGroupList", "AuditList"):
    if want not in doc["components"]["schemas"]:
        errors.append("no schema %s" % want)
for e in errors:
    print(e)
sys.exit(1 if errors else 0)
PY
else
    echo "python3 with PyYAML not found: skipped parsing the document"
fi

echo "openapi: $pass passed, $failed failed"
[ "$failed" -eq 0 ]
