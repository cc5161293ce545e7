#!/usr/bin/env bash
# Proves that depending on the `palisade` library is cheap: built with
# `--no-default-features` (the Rego engine) and with `--no-default-features
# --features wasm` (plus the plugin host), it pulls in none of the command line's
# or the webhook's crates, and building it writes nothing into the source tree
# (no nested build of the plugins). Run by CI; exits 1 naming what it found.
set -euo pipefail
cd "$(dirname "$0")/.."

forbidden='clap|tokio|axum|hyper|hyper-util|tower|rustls|tokio-rustls|indicatif|tracing-subscriber|notify|wasmtime-wasi'
before=$(git status --porcelain --untracked-files=all)
failed=0
for features in "--no-default-features" "--no-default-features --features wasm"; do
  echo "check-lib-deps: cargo build -p palisade --lib $features" >&2
  # shellcheck disable=SC2086 # the feature flags are words
  cargo build -q -p palisade --lib $features
  # shellcheck disable=SC2086
  found=$(cargo tree -q -p palisade $features -e normal,build --prefix none \
    | awk '{print $1}' | sort -u | grep -xE "$forbidden" || true)
  if [ -n "$found" ]; then
    echo "check-lib-deps: palisade $features depends on: $(echo "$found" | tr '\n' ' ')" >&2
    failed=1
  fi
done
after=$(git status --porcelain --untracked-files=all)
if [ "$before" != "$after" ]; then
  echo "check-lib-deps: building the library changed the source tree:" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  failed=1
fi
[ "$failed" = 0 ] && echo "check-lib-deps: the library builds without the CLI's or the webhook's crates" >&2
exit "$failed"
