#!/usr/bin/env bash
# sigstore's cosign for palisade's image-signature tests (cli/tests/oci.rs), which sign
# images on the loopback registry with it and check that palisade verifies what the
# real signer writes.
#
# Prints the path of the cosign binary as the LAST line of stdout: built once from the
# Go module proxy (`go install github.com/sigstore/cosign/v2/cmd/cosign@VERSION`, a few
# minutes on 2 cores) into target/test-cosign/VERSION/ (or $PALISADE_TEST_COSIGN_CACHE),
# under a lock so that concurrent callers build it once.
set -euo pipefail

VERSION=v2.6.5
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${PALISADE_TEST_COSIGN_CACHE:-$ROOT/target/test-cosign}/$VERSION"
BIN="$CACHE/cosign"

die() { echo "test-cosign: error: $*" >&2; exit 1; }

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
if [[ ! -x $BIN ]]; then
  command -v go >/dev/null || die "go not found: cosign is built from the Go module proxy"
  echo "test-cosign: building cosign $VERSION from the Go module proxy (once)" >&2
  GOBIN="$CACHE/bin.tmp" go install "github.com/sigstore/cosign/v2/cmd/cosign@$VERSION" >&2 \
    || die "go install github.com/sigstore/cosign/v2/cmd/cosign@$VERSION failed"
  mv "$CACHE/bin.tmp/cosign" "$BIN"
  rmdir "$CACHE/bin.tmp"
fi
"$BIN" version >/dev/null 2>&1 || die "$BIN does not run"
echo "$BIN"
