#!/usr/bin/env bash
# Builds the repository's WebAssembly plugins from source and installs the components
# where they are checked in, so that building or depending on the `palisade` crate
# never needs the wasm32-wasip2 target or a nested cargo build:
#
#   plugins/dist/                         every first-party component (tests, benches)
#   conformance/plugins/dist/             the hostile test components
#   policy-bundles/pci-dss/plugins/       the components the pci-dss bundle pins
#   conformance/fixtures/broken/plugins/  the components the broken fixture pins
#
# The build is reproducible (pinned toolchain, --locked, paths remapped), so the
# bytes, and the sha256 a bundle pins, do not depend on the machine or checkout.
#
#   scripts/build-plugins.sh          build and install (then `palisade bundle pin`
#                                     the bundles if a component changed)
#   scripts/build-plugins.sh --check  build and compare with the checked-in files;
#                                     exit 1 naming every file that differs (CI)
#
# Needs the wasm32-wasip2 target; the script adds it with rustup when it is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

check=false
case "${1:-}" in
  "") ;;
  --check) check=true ;;
  *) echo "usage: scripts/build-plugins.sh [--check]" >&2; exit 2 ;;
esac

target=wasm32-wasip2
sysroot=$(rustc --print sysroot)
if [ ! -d "$sysroot/lib/rustlib/$target" ]; then
  if command -v rustup >/dev/null 2>&1; then
    echo "build-plugins: adding the $target target to the pinned toolchain (rustup target add $target)" >&2
    rustup target add "$target" >&2
  else
    echo "build-plugins: the $target target is not installed in $sysroot and rustup is not available;" >&2
    echo "  install the $target standard library for this Rust toolchain, then rerun" >&2
    exit 2
  fi
fi

cargo_home=${CARGO_HOME:-$HOME/.cargo}
target_dir="$root/target/wasm-plugins"
# Remapped paths keep the checkout and cargo home out of the bytes.
flags="--remap-path-prefix=$cargo_home=/cargo"$'\x1f'"--remap-path-prefix=$root=/palisade"
for workspace in plugins conformance/plugins; do
  echo "build-plugins: building $workspace/ for $target" >&2
  env -u RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS -u CARGO_BUILD_TARGET -u RUSTC_WRAPPER -u RUSTC_WORKSPACE_WRAPPER \
    CARGO_ENCODED_RUSTFLAGS="$flags" \
    cargo build --release --locked --target "$target" --manifest-path "$workspace/Cargo.toml" \
    --target-dir "$target_dir"
done
built="$target_dir/$target/release"

# Where each component is checked in: built file, then its copies.
installs=(
  "default_credentials.wasm plugins/dist/default_credentials.wasm"
  "pod_security.wasm plugins/dist/pod_security.wasm"
  "pci_workloads.wasm plugins/dist/pci_workloads.wasm policy-bundles/pci-dss/plugins/pci-workloads.wasm"
  "pod_privileged.wasm plugins/dist/pod_privileged.wasm conformance/fixtures/broken/plugins/pod-privileged.wasm"
  "signed_images.wasm plugins/dist/signed_images.wasm"
  "hostile.wasm conformance/plugins/dist/hostile.wasm"
  "abi_liar.wasm conformance/plugins/dist/abi_liar.wasm"
  "nondeterministic.wasm conformance/plugins/dist/nondeterministic.wasm conformance/fixtures/broken/plugins/nondeterministic.wasm"
  "legacy_abi.wasm conformance/plugins/dist/legacy_abi.wasm"
  "network.wasm conformance/plugins/dist/network.wasm"
)

differ=0
for line in "${installs[@]}"; do
  read -r name dests <<<"$line"
  for dest in $dests; do
    if $check; then
      if ! cmp -s "$built/$name" "$dest"; then
        echo "build-plugins: $dest differs from $name built from source (sha256 $(sha256sum <"$built/$name" | cut -c1-64))" >&2
        differ=1
      fi
    elif ! cmp -s "$built/$name" "$dest"; then
      mkdir -p "$(dirname "$dest")"
      cp "$built/$name" "$dest"
      echo "build-plugins: updated $dest" >&2
    fi
  done
done
if $check; then
  if [ "$differ" = 1 ]; then
    echo "build-plugins: checked-in components are not what their sources build: run scripts/build-plugins.sh and commit" >&2
    exit 1
  fi
  echo "build-plugins: every checked-in component matches its source" >&2
fi
