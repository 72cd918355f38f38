#!/usr/bin/env bash
# Load test (issue 11), run by hand: a release `magpie serve` on SQLite or PostgreSQL, a user with
# 100,000 demo transactions and a personal access token, then wrk for 60 s each at 64 and 256
# connections on the main read routes (a page of transactions with a month filter, a one-year summary
# by category) and the main write route (creating a transaction, categorized by the model). Prints
# wrk's figures, the non-2xx count and the server's resident memory before and after.
#
#   scripts/load.sh                                   # SQLite in a temporary folder
#   scripts/load.sh postgres://postgres@127.0.0.1:5432/magpie_load
set -euo pipefail
DB_URL="${1:-}"
SECONDS_EACH="${LOAD_SECONDS:-60}"
BIN="${LOAD_BIN:-${CARGO_TARGET_DIR:-target}/release/magpie}"
WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
export MAGPIE_DATA_DIR="$WORK" MAGPIE_LISTEN_ADDR="127.0.0.1:$PORT" MAGPIE_LOG_LEVEL=warn MAGPIE_BCRYPT_COST=10
[ -n "$DB_URL" ] && export MAGPIE_DATABASE_URL="$DB_URL"
"$BIN" migrate >/dev/null
EMAIL="load-$(date +%s)@example.com"
printf "%s\n" "a load test password" | "$BIN" user create --email "$EMAIL" >/dev/null
"$BIN" seed-demo --user "$EMAIL" --transactions 100000 >/dev/null
"$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 600); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.2; done
json() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
ACCESS="$(curl -sf -XPOST "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"$EMAIL\",\"password\":\"a load test password\"}" | json access_token)"
PAT="$(curl -sf -XPOST "$BASE/api/v1/me/tokens" -H "authorization: Bearer $ACCESS" -H 'content-type: application/json' \
  -d '{"name":"load","scope":"read-write"}' | json token)"
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$SERVER/status"; }
MONTH_FROM="$(date +%Y-%m-01)"; TODAY="$(date +%F)"; YEAR_AGO="$(date -d '-1 year' +%F)"
cat >"$WORK/read.lua" <<LUA
local paths = {"/api/v1/transactions?limit=50&from=$MONTH_FROM&to=$TODAY", "/api/v1/reports/summary?from=$YEAR_AGO&to=$TODAY&group_by=category"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % 2) + 1], {["Authorization"] = "Bearer $PAT"})
end
LUA
cat >"$WORK/write.lua" <<LUA
local i = 0
local merchants = {"STARBUCKS STORE", "SHELL OIL", "WHOLEFDS MKT", "UBER TRIP", "NETFLIX.COM", "CORNER BAKERY"}
request = function()
  i = i + 1
  local body = string.format('{"amount":"%d.%02d","date":"$TODAY","description":"%s %d","type":"EXPENSE"}', 1 + i % 200, i % 100, merchants[(i % 6) + 1], i)
  return wrk.format("POST", "/api/v1/transactions", {["Authorization"] = "Bearer $PAT", ["Content-Type"] = "application/json"}, body)
end
LUA
ENGINE=sqlite; [ -n "$DB_URL" ] && ENGINE=postgres
echo "engine: $ENGINE, 100,000 transactions; server RSS at start: $(rss)"
if [ "${LOAD_MODE:-}" = soak ]; then
  wrk -t1 -c32 -d"${SECONDS_EACH}s" -s "$WORK/read.lua" "$BASE" >"$WORK/soak-read.txt" &
  R=$!
  wrk -t1 -c8 -d"${SECONDS_EACH}s" -s "$WORK/write.lua" "$BASE" >"$WORK/soak-write.txt" &
  W=$!
  elapsed=0
  while kill -0 $R 2>/dev/null || kill -0 $W 2>/dev/null; do
    sleep 30; elapsed=$((elapsed + 30)); echo "   ${elapsed}s: server RSS $(rss)"
  done
  wait $R $W || true
  echo "== soak reads:"; grep -E 'Requests/sec|Latency |Non-2xx|Socket errors|requests in' "$WORK/soak-read.txt"
  echo "== soak writes:"; grep -E 'Requests/sec|Latency |Non-2xx|Socket errors|requests in' "$WORK/soak-write.txt"
  echo "   server RSS at the end: $(rss)"
  exit 0
fi
for kind in read write; do
  for conns in 64 256; do
    echo "== $kind, $conns connections, ${SECONDS_EACH}s"
    wrk -t2 -c"$conns" -d"${SECONDS_EACH}s" --latency -s "$WORK/$kind.lua" "$BASE" | grep -E 'Requests/sec|Latency |50%|99%|Non-2xx|Socket errors|requests in'
    echo "   server RSS after: $(rss)"
  done
done
if grep -q 'panicked\|ERROR' "$WORK/server.log"; then echo "the server logged errors:"; grep 'panicked\|ERROR' "$WORK/server.log" | head; exit 1; fi
