#!/usr/bin/env bash
# The API against its own OpenAPI document: schemathesis (PyPI) drives a live `magpie serve` on a fresh
# SQLite database, authenticated as a test user with a read-write personal access token (a token, not a
# session, so that the fuzzer's calls to sign out or change the password cannot lock it out), with a
# bounded number of examples per operation. Fails on any 5xx, any response that violates the document
# (status, media type, headers, body schema), or a panic in the server's log.
set -euo pipefail
BIN="${1:?usage: schemathesis.sh path/to/magpie}"
EXAMPLES="${SCHEMATHESIS_EXAMPLES:-20}"
VENV=/var/tmp/magpie-schemathesis-venv
if ! "$VENV/bin/schemathesis" --version >/dev/null 2>&1; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==4.32.5"
fi
WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
MAGPIE_DATA_DIR="$WORK" MAGPIE_LISTEN_ADDR="127.0.0.1:$PORT" MAGPIE_BCRYPT_COST=4 MAGPIE_LOG_LEVEL=warn \
  "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 600); do
  curl -sf "$BASE/readyz" >/dev/null && break
  sleep 0.2
done
curl -sf "$BASE/readyz" >/dev/null || { echo "schemathesis: the server did not start"; cat "$WORK/server.log"; exit 1; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
curl -sf -XPOST "$BASE/api/v1/auth/register" -H 'content-type: application/json' \
  -d '{"email":"fuzz@example.com","password":"a fuzzing password"}' >/dev/null
ACCESS="$(curl -sf -XPOST "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"email":"fuzz@example.com","password":"a fuzzing password"}' | json access_token)"
PAT="$(curl -sf -XPOST "$BASE/api/v1/me/tokens" -H "authorization: Bearer $ACCESS" -H 'content-type: application/json' \
  -d '{"name":"schemathesis","scope":"read-write"}' | json token)"
status=0
"$VENV/bin/schemathesis" run "$BASE/openapi.json" -H "Authorization: Bearer $PAT" -n "$EXAMPLES" --seed 1 \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  || status=$?
if grep -q 'panicked' "$WORK/server.log"; then
  echo "schemathesis: the server panicked:"; grep -A5 'panicked' "$WORK/server.log"; status=1
fi
exit $status
