#!/usr/bin/env bash
# The whole test suite, as CI runs it. Run `bash scripts/setup.sh` once first
# (or simply `bash .ci/run`, which does both).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
step() { printf '\n== %s\n' "$*"; }

# The audit trail is tested against a real PostgreSQL too: a throw-away cluster unless one is
# given (BANKID_TEST_POSTGRES=postgres://superuser:password@host:port/postgres).
if [ -z "${BANKID_TEST_POSTGRES:-}" ]; then
  step "a throw-away PostgreSQL cluster for the audit tests"
  eval "$(bash scripts/pg-test.sh start)"
  trap 'bash scripts/pg-test.sh stop "$PGTEST_DIR"' EXIT
  echo "listening on ${BANKID_TEST_POSTGRES##*@}"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "include/bankid.h is what cbindgen generates"
mkdir -p target
cbindgen --config cbindgen.toml --quiet --output target/bankid.h.generated
diff -u include/bankid.h target/bankid.h.generated

step "the header compiles alone as C and as C++"
echo '#include "bankid.h"' > target/header-alone.c
cc -std=c11 -Wall -Wextra -Wpedantic -Werror -Iinclude -c target/header-alone.c -o target/header-alone.o
c++ -std=c++17 -Wall -Wextra -Wpedantic -Werror -x c++ -Iinclude -c target/header-alone.c -o target/header-alone-cpp.o

step "build the workspace (libbankid.so, bankid-sim, bankid-ivr, bankid-agent)"
cargo build --workspace --all-targets

step "cargo test (library, C example plain/ASan/valgrind, simulator, IVR tools, agent page in Chromium)"
cargo test --workspace --no-fail-fast

step "the whole suite again in release (what integrators ship; the C example plain, ASan/UBSan, valgrind)"
# The C tests load target/release/libbankid.so, which `cargo test` alone does not build.
cargo build --workspace --release --all-targets
cargo test --workspace --release --no-fail-fast

step "the Debian package: build, dpkg -i, systemd-analyze verify, use it, dpkg -r and --purge leave nothing"
bash scripts/check-deb.sh

step "the README's run command (the agent page) works on a machine with no BankID configured"
bash scripts/check-agent-run.sh

step "bankid-ivr identify (Cally Square's System block) with the embedded simulator, asked for with --simulator"
out=$(env -u BANKID_PRESET -u BANKID_URL BANKID_SIM_SPEED=0.05 cargo run -q --bin bankid-ivr -- identify --simulator 198503121116)
[ "$out" = "Identification successful for social security number 850312-1116" ] || { echo "unexpected: $out"; exit 1; }
echo "$out"

step "every IVR flow export passes flow check"
target/debug/bankid-ivr flow check ivr-flows/*.xml

step "pybankid (an independent client) against bankid-sim"
bash tests/peers/pybankid_peer.sh

step "benchmarks, reduced (figures only; nothing is asserted about speed)"
bash bench/run.sh --quick

printf '\nall test steps passed\n'
