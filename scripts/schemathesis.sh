#!/usr/bin/env bash
# Property-based requests against the running local stack, generated from openapi.yaml by
# schemathesis (PyPI): valid and invalid bodies, parameters and headers on every operation.
# Fails on any 5xx answer and on any answer that openapi.yaml does not describe (status,
# content type, schema). Prints how many requests were made and their statuses.
#
#   scripts/schemathesis.sh API_URL API_KEY [EXAMPLES]   # EXAMPLES per operation (80)
#
# Access cases, when the keys are given in the environment (scripts/e2e.sh makes them with the
# CLI): READ_KEY (a key of the same tenant with only the read scope) gets a second, shorter
# generated run, where every write answers 403 as openapi.yaml says, and explicit requests:
# each route outside a key's scope answers 403 problem+json naming the scope; OTHER_KEY (a key
# of another tenant) gets 404 for every id of API_KEY's tenant; SUSPENDED_KEY (a key of a
# suspended tenant) is refused by the authorizer with 403 {"message": "Forbidden"}.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
api="$1" key="$2" examples="${3:-80}"
venv=.venv
spec="schemathesis==4.32.5"
if ! "$venv/bin/python" -m pip show schemathesis 2>/dev/null | grep -q '^Version: 4.32.5$'; then
  echo "==> installing $spec"
  "$venv/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check "$spec"
fi
report=$(mktemp -d)
root=$(pwd)
status=0
# Run from the scratch directory: schemathesis keeps a cache in its working directory.
(cd "$report" && "$root/$venv/bin/schemathesis" run "$root/openapi.yaml" --url "$api" \
  -H "Authorization: Bearer $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$examples" --workers 2 --seed 20261204 --no-color \
  --generation-database none --request-timeout 30 \
  --suppress-health-check all \
  --report ndjson --report-dir "$report") || status=$?
python3 - "$report" <<'PY'
import collections, glob, json, sys
statuses = collections.Counter()
for path in glob.glob(sys.argv[1] + "/*.ndjson"):
    for line in open(path):
        event = json.loads(line)
        # Every recorded interaction carries the response status.
        stack = [event]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                if "status_code" in item and isinstance(item["status_code"], int):
                    statuses[item["status_code"]] += 1
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
total = sum(statuses.values())
five = sum(n for s, n in statuses.items() if s >= 500)
print(f"schemathesis: {total} answers checked; by status: "
      + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
      + f"; 5xx: {five}")
PY
rm -rf "$report"

if [[ -n "${READ_KEY:-}" ]]; then
  echo "==> schemathesis with a read-only key"
  report=$(mktemp -d)
  (cd "$report" && "$root/$venv/bin/schemathesis" run "$root/openapi.yaml" --url "$api" \
    -H "Authorization: Bearer $READ_KEY" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples 10 --workers 2 --seed 20261205 --no-color \
    --generation-database none --request-timeout 30 \
    --suppress-health-check all) || status=$?
  rm -rf "$report"
fi
if [[ -n "${READ_KEY:-}${OTHER_KEY:-}${SUSPENDED_KEY:-}" ]]; then
  echo "==> wrong-scope, wrong-tenant and suspended-tenant requests"
  python3 - "$api" "$key" <<'PY' || status=$?
import json, os, sys, urllib.error, urllib.request

api, key = sys.argv[1], sys.argv[2]
failures = []
checked = 0

def call(method, path, key, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(api + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()

def expect(what, got, status, content_type=None, check=None):
    global checked
    checked += 1
    code, ctype, body = got
    problem = None
    if code != status:
        problem = f"answered {code}, not {status}"
    elif content_type and not ctype.startswith(content_type):
        problem = f"answered {ctype}, not {content_type}"
    elif check:
        try:
            problem = check(json.loads(body))
        except ValueError:
            problem = "the body is not JSON"
    if problem:
        failures.append(f"{what}: {problem}: {body[:300]!r}")

trigger = {"name": "access check", "pattern": {"type": ["access.check"]},
           "actions": [{"url": "https://hooks.example.com/access"}]}
code, _, body = call("POST", "/v1/triggers", key, trigger)
if code != 201:
    sys.exit(f"could not create the trigger to check with: {code} {body[:300]!r}")
tid = json.loads(body)["id"]
missing = "00000000-0000-7000-8000-000000000000"

def scope_named(scope):
    return lambda p: None if p.get("type", "").endswith("/missing-scope") and scope in p.get("detail", "") else f"not a missing-scope problem naming {scope}"

if os.environ.get("READ_KEY"):
    rk = os.environ["READ_KEY"]
    for method, path, body in [
        ("POST", "/v1/triggers", trigger),
        ("PUT", f"/v1/triggers/{tid}", dict(trigger, version=1)),
        ("DELETE", f"/v1/triggers/{tid}", None),
        ("POST", f"/v1/deliveries/{missing}/retry", None),
        ("POST", "/v1/signing-secret/rotate", None),
        ("GET", "/v1/signing-secret", None),
    ]:
        got = call(method, path, rk, body)
        expect(f"read key: {method} {path}", got, 403, "application/problem+json", scope_named("admin"))
    expect("read key: POST /v1/events", call("POST", "/v1/events", rk, {"id": "access-1", "type": "access.check"}),
           403, "application/problem+json", scope_named("ingest"))
    expect("read key: GET /v1/triggers/{id}", call("GET", f"/v1/triggers/{tid}", rk), 200)
    expect("read key: POST /v1/patterns/test",
           call("POST", "/v1/patterns/test", rk, {"pattern": {"type": ["a"]}, "event": {"type": "a"}}), 200)
    expect("read key: POST /v1/triggers/test",
           call("POST", "/v1/triggers/test", rk,
                {"trigger": trigger, "events": [{"type": "a", "time": "2026-04-01T09:00:00Z"}]}), 200)

if os.environ.get("OTHER_KEY"):
    ok = os.environ["OTHER_KEY"]
    for method, path, body in [
        ("GET", f"/v1/triggers/{tid}", None),
        ("PUT", f"/v1/triggers/{tid}", dict(trigger, version=1)),
        ("DELETE", f"/v1/triggers/{tid}", None),
    ]:
        expect(f"other tenant: {method} {path}", call(method, path, ok, body), 404, "application/problem+json")
    expect("the trigger is untouched", call("GET", f"/v1/triggers/{tid}", key), 200)

if os.environ.get("SUSPENDED_KEY"):
    sk = os.environ["SUSPENDED_KEY"]
    for method, path in [("GET", "/v1/triggers"), ("POST", "/v1/events")]:
        expect(f"suspended tenant: {method} {path}", call(method, path, sk, {} if method == "POST" else None),
               403, "application/json", lambda p: None if p == {"message": "Forbidden"} else "not API Gateway's deny")

call("DELETE", f"/v1/triggers/{tid}", key)
print(f"access cases: {checked} checked, {len(failures)} failed")
for f in failures:
    print("  " + f)
sys.exit(1 if failures else 0)
PY
fi
exit "$status"
