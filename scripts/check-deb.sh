#!/usr/bin/env bash
# The Debian package, end to end on this machine: build it (cargo-deb, release), install it with
# dpkg -i, check the units with systemd-analyze, use what it installed (the library from C via
# pkg-config, bankid-ivr, bankid-sim, the agent page), then dpkg -r and check nothing it
# installed is left but its conffile, then dpkg --purge and check that, the state and the user
# are gone too. Needs root (CI runs as root); elsewhere it says so and skips.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
pkg=bankid-ivr

if [ "$(id -u)" -ne 0 ]; then
  echo "check-deb: SKIPPED: installing a package with dpkg -i needs root (CI runs as root)"
  exit 0
fi
for tool in cargo-deb dpkg systemd-analyze readelf pkg-config curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "check-deb: $tool is missing: run scripts/setup.sh"; exit 1; }
done
status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
if [ -n "$status" ] && [ "$status" != not-installed ]; then
  echo "check-deb: $pkg is on this machine ($status); not replacing or removing it (dpkg --purge $pkg first)"
  exit 1
fi

target="${CARGO_TARGET_DIR:-$repo/target}"
tmp=$(mktemp -d)
chmod 0755 "$tmp"
installed=0
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ "$installed" = 1 ]; then dpkg --purge "$pkg" >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "check-deb: FAIL: $*"; exit 1; }

echo "-- build: the release workspace, the staged library tree, the .deb"
rm -rf "$target/release/deb-root"
bash scripts/install.sh --profile release --prefix /usr --destdir "$target/release/deb-root" >/dev/null
rm -rf "$target/debian"
# --strip: the release profile keeps line tables for the suite's backtraces; the package need not.
deb=$(cargo deb -p bankid-ivr --no-build --strip --quiet --output "$target/debian/" | tail -1)
[ -f "$deb" ] || fail "cargo deb gave no package: $deb"
echo "package: $(basename "$deb"), $(du -k "$deb" | cut -f1) KiB ($(stat -c %s "$deb") bytes); installed size $(dpkg-deb -f "$deb" Installed-Size) KiB"
dpkg-deb -c "$deb" | awk '{print $1, $3, $6, $7, $8}'

echo "-- dpkg -i"
# What exists before, so a leftover after removal is told from a directory others own.
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|/$||' | grep -v '^$' | sort -u >"$tmp/contents"
while read -r p; do [ -e "$p" ] || [ -L "$p" ] && echo "$p"; done <"$tmp/contents" >"$tmp/existed-before" || true
installed=1
dpkg -i "$deb"
dpkg -L "$pkg" | grep -v '^/\.$' | sort -u >"$tmp/listed"
dpkg-query -W -f='${Conffiles}\n' "$pkg" | awk 'NF {print $1}' >"$tmp/conffiles"
echo "conffiles: $(tr '\n' ' ' <"$tmp/conffiles")"
grep -qx /etc/bankid/bankid.toml "$tmp/conffiles" || fail "/etc/bankid/bankid.toml is not a conffile"

echo "-- what postinst set up"
getent passwd bankid >/dev/null || fail "no system user bankid"
[ "$(id -u bankid)" -lt 1000 ] || fail "bankid is not a system user (uid $(id -u bankid))"
perm=$(stat -c '%a %U:%G' /etc/bankid/bankid.toml)
[ "$perm" = "640 root:bankid" ] || fail "/etc/bankid/bankid.toml is $perm, not 640 root:bankid"
echo "/etc/bankid/bankid.toml: $perm; /var/lib/bankid: $(stat -c '%a %U:%G' /var/lib/bankid)"

echo "-- systemd-analyze verify"
units=(/usr/lib/systemd/system/bankid-agent.service /usr/lib/systemd/system/bankid-fastagi.service)
systemd-analyze verify "${units[@]}"
echo "both units verify"
for u in "${units[@]}"; do
  systemd-analyze security --offline=yes "$u" 2>/dev/null | tail -1 | sed "s|^|$(basename "$u"): |" || true
done

echo "-- the library from C, as an integrator builds against the package"
soname=$(readelf -d /usr/lib/libbankid.so.0.* | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = libbankid.so.0 ] || fail "SONAME is '$soname'"
cmp include/bankid.h /usr/include/bankid.h || fail "the installed header differs from include/bankid.h"
echo "SONAME $soname, pkg-config bankid $(pkg-config --modversion bankid): $(pkg-config --cflags --libs bankid)"
# shellcheck disable=SC2046 # pkg-config's flags are meant to be split
cc -std=c11 -Wall -Wextra -Werror -DBANKID_LINKED examples/identify.c $(pkg-config --cflags --libs bankid) -o "$tmp/identify-linked"

echo "-- the installed tools"
/usr/bin/bankid-ivr --version
/usr/bin/bankid-ivr flow check /usr/share/bankid-ivr/ivr-flows/*.xml
# As shipped nothing is configured: a real-caller command refuses (exit 2), no simulator.
set +e
out=$(/usr/bin/bankid-ivr identify --config /etc/bankid/bankid.toml 198503121116 2>&1)
rc=$?
set -e
[ "$rc" = 2 ] || fail "identify with the shipped configuration exited $rc, not 2: $out"
echo "shipped configuration, unfilled: identify refuses (exit 2): $(echo "$out" | tail -1)"

mkdir -p "$tmp/sim"
/usr/bin/bankid-sim --certs "$tmp/sim" --speed 0.05 >"$tmp/sim.out" 2>"$tmp/sim.err" &
pids+=($!)
for _ in $(seq 100); do grep -q '^listening ' "$tmp/sim.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening \(https:.*\)$/\1/p' "$tmp/sim.out")
[ -n "$url" ] || fail "bankid-sim did not start: $(cat "$tmp/sim.err")"
cat >"$tmp/client.toml" <<EOF
url = "$url"
ca_file = "$tmp/sim/ca.pem"
p12_file = "$tmp/sim/client.p12"
p12_password = "qwerty123"
poll_interval_ms = 100
EOF
chmod 0644 "$tmp/client.toml" "$tmp/sim/"*
# The runs below made as root keep their records apart: a root-run tool using the state
# directory's default would leave a root-owned /var/lib/bankid/audit.db (0600) that the
# services, as the user bankid, cannot open.
{ cat "$tmp/client.toml"; printf 'audit_database = "%s"\naudit_spool_dir = "%s"\naudit_key_file = "%s"\n' \
    "$tmp/root-audit/audit.db" "$tmp/root-audit/spool" "$tmp/root-audit/audit.key"; } >"$tmp/client-root.toml"
echo "bankid-sim: $url"
# doctor from the package: every check passes against the simulator; the shipped, unfilled
# configuration fails with the settings to give.
out=$(/usr/bin/bankid-ivr doctor --config "$tmp/client.toml" 2>&1) || fail "doctor against bankid-sim: $out"
echo "bankid-ivr doctor: $(echo "$out" | tail -1)"
rc=0
out=$(/usr/bin/bankid-ivr doctor --config /etc/bankid/bankid.toml 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "doctor with the shipped configuration exited $rc, not 1: $out"
echo "bankid-ivr doctor, shipped configuration: $(echo "$out" | grep -m1 '✗')"
out=$(/usr/bin/bankid-ivr identify --config "$tmp/client-root.toml" 198503121116 2>/dev/null)
[ "$out" = "Identification successful for social security number 850312-1116" ] || fail "identify: $out"
echo "bankid-ivr identify: $out"
out=$("$tmp/identify-linked" 197709083336 failed "$tmp/client-root.toml" | tail -2 | tr '\n' ' ')
echo "identify.c linked with -lbankid: $out"

# MemoryDenyWriteExecute= is a seccomp filter systemd adds; without systemd here, the kernel's
# own PR_SET_MDWE (Linux 6.3+), which refuses the same writable+executable mappings and holds
# across exec, shows the binaries run under it.
mdwe() {
  python3 -c 'import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    print("no PR_SET_MDWE on this kernel", file=sys.stderr); sys.exit(97)
os.execv(sys.argv[1], sys.argv[1:])' "$@"
}
set +e
out=$(mdwe /usr/bin/bankid-ivr identify --config "$tmp/client-root.toml" 196801642395 2>/dev/null)
rc=$?
set -e
if [ "$rc" = 97 ]; then
  echo "MemoryDenyWriteExecute: not checked (this kernel has no PR_SET_MDWE)"
else
  [ "$rc" = 0 ] || fail "bankid-ivr identify under PR_SET_MDWE exited $rc: $out"
  echo "under PR_SET_MDWE (what MemoryDenyWriteExecute= enforces): bankid-ivr identify: $out"
fi

# The agent page as its unit runs it, as the user bankid, against that simulator.
setpriv --reuid=bankid --regid=bankid --init-groups --no-new-privs \
  /usr/bin/bankid-agent --listen 127.0.0.1:0 --config "$tmp/client.toml" --accounts /var/lib/bankid/agents.toml \
  >"$tmp/agent.out" 2>"$tmp/agent.err" &
pids+=($!)
for _ in $(seq 200); do grep -q '^open ' "$tmp/agent.out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^open \(http:[^ ]*\)\/ .*/\1/p' "$tmp/agent.out")
[ -n "$base" ] || fail "bankid-agent did not start: $(cat "$tmp/agent.out" "$tmp/agent.err")"
code=$(curl -s -o "$tmp/page.html" -w '%{http_code}' "$base/")
[ "$code" = 200 ] && grep -qi '<html' "$tmp/page.html" || fail "the agent page answered $code"
user=$(sed -n 's/.*user name: \([^ ]*\) .*/\1/p' "$tmp/agent.out")
pass=$(sed -n 's/.*password: \([^ ]*\) .*/\1/p' "$tmp/agent.out")
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
# The password goes in a file, not on curl's command line (where ps would show it).
printf '{"username":"%s","password":"%s"}' "$user" "$pass" >"$tmp/login.json"
csrf=$(curl -sf -c "$tmp/jar" -H 'Content-Type: application/json' \
  -d @"$tmp/login.json" "$base/api/login" | json '["csrf"]')
id=$(curl -sf -b "$tmp/jar" -H 'Content-Type: application/json' -H "X-CSRF-Token: $csrf" \
  -d '{"personalNumber":"850312-1116"}' "$base/api/identify" | json '["id"]')
state=pending
for _ in $(seq 300); do
  state=$(curl -sf -b "$tmp/jar" "$base/api/orders/$id" | json '["state"]')
  [ "$state" != pending ] && break
  sleep 0.1
done
[ "$state" = complete ] || fail "the agent page's identification ended $state"
echo "bankid-agent as user bankid: $base/ answers 200; logged in and identified the test person"
[ "$(stat -c '%a %U' /var/lib/bankid/agents.toml)" = "600 bankid" ] ||
  fail "agents.toml is $(stat -c '%a %U' /var/lib/bankid/agents.toml)"

# The FastAGI server as its unit runs it: user bankid, the same configuration; it listens, takes
# a connection, and SIGTERM stops it cleanly (exit 0).
setpriv --reuid=bankid --regid=bankid --init-groups --no-new-privs \
  /usr/bin/bankid-ivr fastagi --listen 127.0.0.1:0 --config "$tmp/client.toml" \
  >"$tmp/agi.out" 2>"$tmp/agi.err" &
agi=$!
pids+=("$agi")
for _ in $(seq 100); do grep -q '^listening agi://' "$tmp/agi.out" 2>/dev/null && break; sleep 0.1; done
agi_addr=$(sed -n 's|^listening agi://\([^/]*\)/.*|\1|p' "$tmp/agi.out")
[ -n "$agi_addr" ] || fail "bankid-ivr fastagi did not start: $(cat "$tmp/agi.err")"
python3 -c 'import socket, sys; h, p = sys.argv[1].rsplit(":", 1); socket.create_connection((h, int(p)), 5).close()' "$agi_addr" ||
  fail "bankid-ivr fastagi at $agi_addr takes no connection"
kill -TERM "$agi"
rc=0
wait "$agi" || rc=$?
[ "$rc" = 0 ] || fail "bankid-ivr fastagi exited $rc on SIGTERM: $(cat "$tmp/agi.err")"
echo "bankid-ivr fastagi as user bankid: listening agi://$agi_addr/bankid-identify, stopped cleanly on SIGTERM"

for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
pids=()

echo "-- dpkg -r: nothing it installed is left but the conffiles"
dpkg -r "$pkg"
left=()
while read -r p; do
  grep -qxF "$p" "$tmp/conffiles" && continue
  grep -qxF "$p" "$tmp/existed-before" && continue
  # /etc/bankid holds the conffile, so it stays with it.
  [ "$p" = /etc/bankid ] && continue
  if [ -e "$p" ] || [ -L "$p" ]; then left+=("$p"); fi
done <"$tmp/listed"
[ ${#left[@]} -eq 0 ] || fail "left after dpkg -r: ${left[*]}"
[ -f /etc/bankid/bankid.toml ] || fail "dpkg -r removed the conffile"
echo "$(wc -l <"$tmp/listed") paths were installed; after dpkg -r left: $(tr '\n' ' ' <"$tmp/conffiles")(conffile), /var/lib/bankid (state), user bankid"

echo "-- dpkg --purge: the conffile, the state and the user go too"
dpkg --purge "$pkg"
installed=0
for p in /etc/bankid/bankid.toml /etc/bankid /var/lib/bankid; do
  [ ! -e "$p" ] || fail "$p is left after purge"
done
! getent passwd bankid >/dev/null || fail "the user bankid is left after purge"
! getent group bankid >/dev/null || fail "the group bankid is left after purge"
echo "after purge: /etc/bankid, /var/lib/bankid and the user bankid are gone"
echo "check-deb: ok"
