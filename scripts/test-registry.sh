#!/usr/bin/env bash
# Debian's docker-registry (the CNCF distribution registry, 2.8) for palisade's OCI
# tests, which start it themselves on a free loopback port (cli/tests/common/registry.rs).
#
# Prints the path of the registry binary as the LAST line of stdout: the installed
# `docker-registry` when there is one, else the package fetched once with
# `apt-get download docker-registry` and unpacked with `dpkg -x` (no root needed) into
# target/test-registry/ (or $PALISADE_TEST_REGISTRY_CACHE). When the package lists are
# missing and this runs as root, `apt-get update` is run first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${PALISADE_TEST_REGISTRY_CACHE:-$ROOT/target/test-registry}"
BIN="$CACHE/root/usr/bin/docker-registry"

die() { echo "test-registry: error: $*" >&2; exit 1; }

if command -v docker-registry >/dev/null; then
  command -v docker-registry
  exit 0
fi
if [[ ! -x $BIN ]]; then
  command -v apt-get >/dev/null || die "apt-get not found: install Debian's docker-registry package"
  mkdir -p "$CACHE/deb"
  cd "$CACHE/deb"
  if ! apt-get download docker-registry >&2 2>"$CACHE/deb/download.log"; then
    [[ $(id -u) == 0 ]] || die "apt-get download docker-registry failed (see $CACHE/deb/download.log); as root, run apt-get update first"
    apt-get update >&2 && apt-get download docker-registry >&2 || die "apt-get download docker-registry failed"
  fi
  rm -rf "$CACHE/root.tmp"
  dpkg -x docker-registry_*.deb "$CACHE/root.tmp"
  rm -rf "$CACHE/root" && mv "$CACHE/root.tmp" "$CACHE/root"
fi
"$BIN" --version >&2 || die "$BIN does not run"
echo "$BIN"
