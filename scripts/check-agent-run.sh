#!/usr/bin/env bash
# The README's run command, as a newcomer runs it with nothing configured: it must print an
# address and a login, and an agent must be able to identify the simulator's test person with it.
# (A free port and a throw-away accounts file are added, so a developer's own are not touched.)
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
out="$tmp/out"
setsid env -u BANKID_PRESET -u BANKID_URL BANKID_SIM_SPEED=0.05 \
  cargo run --release -q --bin bankid-agent -- --listen 127.0.0.1:0 --accounts "$tmp/agents.toml" \
  >"$out" 2>"$tmp/err" &
pid=$!
trap 'kill -TERM -- -$pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 1200); do grep -q '^open ' "$out" 2>/dev/null && break; sleep 0.5; done
grep -q '^open ' "$out" || { echo "no address printed"; cat "$out" "$tmp/err"; exit 1; }
cat "$out"
base=$(sed -n 's/^open \(http:[^ ]*\)\/ .*/\1/p' "$out")
user=$(sed -n 's/.*user name: \([^ ]*\) .*/\1/p' "$out")
pass=$(sed -n 's/.*password: \([^ ]*\) .*/\1/p' "$out")
grep -q 'embedded simulator' "$out" || { echo "the simulator is not announced"; exit 1; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
csrf=$(curl -sf -c "$tmp/jar" -H 'Content-Type: application/json' \
  -d "{\"username\":\"$user\",\"password\":\"$pass\"}" "$base/api/login" | json '["csrf"]')
id=$(curl -sf -b "$tmp/jar" -H 'Content-Type: application/json' -H "X-CSRF-Token: $csrf" \
  -d '{"personalNumber":"850312-1116"}' "$base/api/identify" | json '["id"]')
for _ in $(seq 200); do
  state=$(curl -sf -b "$tmp/jar" "$base/api/orders/$id" | json '["state"]')
  [ "$state" != pending ] && break
  sleep 0.1
done
name=$(curl -sf -b "$tmp/jar" "$base/api/orders/$id" | json '["person"]["name"]')
[ "$state" = complete ] && [ "$name" = "Anna Lindqvist" ] || { echo "unexpected: $state $name"; exit 1; }
echo "logged in as $user, identified the test person: $name"
