#!/usr/bin/env bash
# Runs pybankid (an independent client from PyPI) against the bankid-sim binary, using the
# certificate files it writes with --certs. Needs `bash scripts/setup.sh` (the .venv with
# pybankid) and a built bankid-sim.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
SIM=${BANKID_SIM:-target/debug/bankid-sim}
[ -x "$SIM" ] || cargo build --quiet -p bankid-sim
certs=$(mktemp -d)
out=$(mktemp)
"$SIM" --certs "$certs" --speed 0.01 >"$out" 2>"$certs/sim.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$certs" "$out"' EXIT
for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.1; done
line=$(head -n 1 "$out")
case "$line" in
  "listening https://127.0.0.1:"*"/rp/v6.0/") ;;
  *) echo "FAIL: bankid-sim's first line was: '$line'"; cat "$certs/sim.log"; exit 1 ;;
esac
url=${line#listening }
"$PY" tests/peers/pybankid_peer.py "$url" "$certs"
