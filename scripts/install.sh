#!/usr/bin/env bash
# Installs libbankid and the tools in the usual Unix layout, for C integrators and packagers:
#
#   PREFIX/lib/libbankid.so.X.Y.Z          the library (version from Cargo.toml), SONAME libbankid.so.X
#   PREFIX/lib/libbankid.so.X -> …X.Y.Z    what programs linked with -lbankid load
#   PREFIX/lib/libbankid.so   -> …X        what `cc -lbankid` links against
#   PREFIX/lib/pkgconfig/bankid.pc         `pkg-config --cflags --libs bankid`
#   PREFIX/include/bankid.h                the checked-in header, byte for byte
#   PREFIX/bin/bankid-ivr, bankid-agent, bankid-sim
#   PREFIX/share/bankid-ivr/ivr-flows/     the Cally Square exports
#
#   scripts/install.sh [--prefix /usr/local] [--destdir DIR] [--profile release|debug] [--no-build]
#
# --destdir stages the tree under DIR (as `make install DESTDIR=`): bankid.pc still names PREFIX.
# --no-build installs what is already in the target directory (CARGO_TARGET_DIR, else ./target).
#
# Why a script and not cargo-c (which rustls-ffi uses): `cargo install cargo-c --locked`
# (0.10.24) builds 419 crates — Cargo itself as a library, with libgit2, libcurl, libssh2 and
# SQLite compiled from C, and it needs OpenSSL's headers — several times the 95 of cargo-deb,
# which CI installs anyway for the Debian package, on a 2-core CI machine shared by the whole
# suite. What cargo-c would give us here is this layout; the SONAME comes from build.rs, so the
# library cargo builds is already the one installed, and the header is the checked-in one
# (cbindgen, checked in CI), which cargo-c would otherwise regenerate.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=/usr/local
destdir=""
profile=release
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) prefix="${1#*=}"; shift ;;
    --destdir) destdir="${2:?--destdir needs a directory}"; shift 2 ;;
    --destdir=*) destdir="${1#*=}"; shift ;;
    --profile) profile="${2:?--profile needs release or debug}"; shift 2 ;;
    --profile=*) profile="${1#*=}"; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$profile" in
  release|debug) ;;
  *) echo "install.sh: --profile must be release or debug, not $profile" >&2; exit 2 ;;
esac
case "$prefix" in
  /*) ;;
  *) echo "install.sh: --prefix must be an absolute path, not $prefix" >&2; exit 2 ;;
esac
prefix="${prefix%/}"

cargo="${CARGO:-cargo}"
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
major="${version%%.*}"
[ -n "$version" ] && [ "$major" != "$version" ] || { echo "install.sh: no version in Cargo.toml" >&2; exit 1; }
target="${CARGO_TARGET_DIR:-target}"
out="$target/$profile"

if [ "$build" = 1 ]; then
  flag=()
  [ "$profile" = release ] && flag=(--release)
  # The same command as scripts/test.sh, so after the test suite it only checks and the
  # artifacts are the ones the suite tested (a narrower -p/--bins set unifies other features).
  "$cargo" build "${flag[@]}" --quiet --workspace --all-targets
fi

for f in libbankid.so bankid-ivr bankid-agent bankid-sim; do
  [ -f "$out/$f" ] || { echo "install.sh: $out/$f is missing (build it, or drop --no-build)" >&2; exit 1; }
done
# Fail closed: a library without the SONAME would be installed under a name nothing loads.
if command -v readelf >/dev/null 2>&1; then
  readelf -d "$out/libbankid.so" | grep -q "Library soname: \[libbankid.so.$major\]" ||
    { echo "install.sh: $out/libbankid.so has no SONAME libbankid.so.$major (built without build.rs?)" >&2; exit 1; }
fi

root="$destdir$prefix"
install -d "$root/lib/pkgconfig" "$root/include" "$root/bin" "$root/share/bankid-ivr/ivr-flows"
install -m 0755 "$out/libbankid.so" "$root/lib/libbankid.so.$version"
ln -sfn "libbankid.so.$version" "$root/lib/libbankid.so.$major"
ln -sfn "libbankid.so.$major" "$root/lib/libbankid.so"
install -m 0644 include/bankid.h "$root/include/bankid.h"
for b in bankid-ivr bankid-agent bankid-sim; do
  install -m 0755 "$out/$b" "$root/bin/$b"
done
install -m 0644 ivr-flows/*.xml ivr-flows/README.md "$root/share/bankid-ivr/ivr-flows/"
description=$(sed -n '/^\[package\]/,/^\[/s/^description = "\(.*\)"/\1/p' Cargo.toml)
cat >"$root/lib/pkgconfig/bankid.pc" <<EOF
prefix=$prefix
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=\${prefix}/include

Name: bankid
Description: $description
Version: $version
Libs: -L\${libdir} -lbankid
Cflags: -I\${includedir}
EOF
chmod 0644 "$root/lib/pkgconfig/bankid.pc"
echo "installed libbankid $version ($profile) into $root"
