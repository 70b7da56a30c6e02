#!/usr/bin/env bash
# Soak: 2 000 identifications in flight for 10 minutes against bankid-sim over mutual TLS, 5 % of
# all requests faulted at random; prints RSS and threads every 10 s and fails if an order is not
# final by its deadline or one is left pending at the simulator. See examples/soak.rs.
#   bash bench/soak.sh [--minutes N] [--orders N] [--fault-share F]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p bankid-sim
cargo build --release -q -p bankid-ivr --example soak
exec "${CARGO_TARGET_DIR:-target}/release/examples/soak" "$@"
