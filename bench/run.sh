#!/usr/bin/env bash
# Benchmarks against bankid-sim on 127.0.0.1 over mutual TLS. Prints a table.
#   bash bench/run.sh            # full (about 5 minutes after the release build)
#   bash bench/run.sh --quick    # reduced (CI): small sizes, same code paths
# 1. bankid_poll latency from C (here); 2. concurrent orders, 3. cost per identification against
# curl, pybankid and the npm `bankid` package, 4. detection latency (bench/bench.py), 5. the FastAGI
# server holding --max-calls concurrent calls (bench/fastagi.py), 7. the audit writer into one
# SQLite file and one PostgreSQL database (examples/audit_bench.rs; PostgreSQL when
# BANKID_TEST_POSTGRES names a cluster, as scripts/test.sh and scripts/pg-test.sh give one).
# Peers are installed here when missing: pybankid into .venv, `bankid` from npm into bench/peers.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0; [ "${1:-}" = "--quick" ] && quick=1
cargo build --release -q -p bankid-ivr -p bankid-sim -p bankid-ivr-cli
cargo build --release -q -p bankid-ivr --example audit_bench
# Honour CARGO_TARGET_DIR (the build above does); bench.py reads BANKID_BENCH_TARGET.
rel=${CARGO_TARGET_DIR:-target}/release
export BANKID_BENCH_TARGET=$rel
out=${CARGO_TARGET_DIR:-target}/bench; mkdir -p "$out"
cc -std=c11 -O2 -Wall -Wextra -Werror -Iinclude bench/poll_latency.c -ldl -o "$out/poll_latency"
cc -std=c11 -O2 -Wall -Wextra -Werror -Iinclude bench/orders.c -ldl -o "$out/orders"

certs=$(mktemp -d)
simout=$(mktemp)
# --speed 10: every order stays pending for 80 s, far longer than a measurement.
"$rel/bankid-sim" --certs "$certs" --speed 10 >"$simout" 2>"$certs/sim.log" &
sim=$!
trap 'kill $sim 2>/dev/null || true; wait $sim 2>/dev/null || true; rm -rf "$certs" "$simout"' EXIT
for _ in $(seq 100); do [ -s "$simout" ] && break; sleep 0.1; done
url=$(head -n 1 "$simout"); url=${url#listening }
cat >"$certs/bankid.toml" <<TOML
url = "$url"
ca_file = "ca.pem"
cert_file = "client.pem"
key_file = "client.key"
poll_interval_ms = 2000
audit_database = "audit.db"
audit_spool_dir = "audit-spool"
audit_key_file = "audit.key"
TOML

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo
echo "## 1. bankid_poll latency from C (libbankid.so loaded with dlopen)"
echo
echo "| bankid_poll from C | live orders | polls | median | p99 | clock overhead (median/p99) | share pending |"
echo "|---|---|---|---|---|---|---|"
if [ $quick = 1 ]; then sizes="200"; polls=100000; else sizes="1000 10000"; polls=1000000; fi
for n in $sizes; do
  line=$("$out/poll_latency" "$rel/libbankid.so" "$certs/bankid.toml" "$n" "$polls")
  eval "$(echo "$line" | tr ' ' '\n' | grep '=' | sed 's/^/r_/')"
  echo "| libbankid.so | $r_orders | $r_polls | ${r_median_ns} ns | ${r_p99_ns} ns | ${r_clock_median_ns}/${r_clock_p99_ns} ns | ${r_pending_share} |"
done

# The simulator above is only for part 1; each later part starts its own.
kill $sim 2>/dev/null; wait $sim 2>/dev/null || true
if [ $quick = 1 ]; then python3 bench/bench.py --quick; else python3 bench/bench.py; fi
echo
echo "## 5. The FastAGI server (bankid-ivr fastagi) holding --max-calls concurrent calls"
echo
if [ $quick = 1 ]; then python3 bench/fastagi.py --quick; else python3 bench/fastagi.py; fi
echo
echo "## 7. The audit trail: records per second and CPU per record through the writer"
echo
echo "| database | records handed over | records | seconds | records/s | CPU per record (this process) |"
echo "|---|---|---|---|---|---|"
if [ $quick = 1 ]; then burst=2000; single=200; else burst=50000; single=2000; fi
pg=""; [ -n "${BANKID_TEST_POSTGRES:-}" ] && pg="--postgres"
"$rel/examples/audit_bench" --burst $burst --one-by-one $single $pg | while read -r line; do
  eval "$(echo "$line" | tr ' ' '\n' | grep '=' | sed 's/^/a_/')"
  case $a_mode in burst) how="all at once (batches of up to 256)";; *) how="one by one, each flushed";; esac
  echo "| $a_database | $how | $a_records | $a_seconds | $a_per_second | ${a_cpu_per_record_us} µs |"
done
[ -n "$pg" ] || echo "(PostgreSQL not measured: BANKID_TEST_POSTGRES is not set)"
