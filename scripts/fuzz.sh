#!/usr/bin/env bash
# Fuzzes what palisade reads from untrusted hands with cargo fuzz (libFuzzer): one target
# per input kind (fuzz/fuzz_targets). Every target runs for a bounded time, seeded from
# the repository's fixtures (plus fuzz/seeds, and fuzz/regressions/TARGET if a crash input is
# ever kept there; none is: the one overflow found has unit tests in decision_log.rs);
# any crash, panic, timeout or out-of-memory fails the run and leaves the input under
# target/fuzz-artifacts/TARGET/. Nothing is written outside target/ (the corpora grow in
# target/fuzz-corpus/TARGET, so a later run starts where the last one stopped).
#
#   scripts/fuzz.sh                 # every target, FUZZ_SECONDS (default 30) each
#   FUZZ_SECONDS=1800 scripts/fuzz.sh manifests    # a long run of one target
#
# FUZZ_JOBS targets run side by side (default 2). cargo-fuzz is installed once (by
# version) under target/tools/cargo-fuzz. Without a sanitizer (`-s none`) the build
# works on the stable toolchain: the library denies `unsafe`, so AddressSanitizer would
# watch only dependencies, and libFuzzer still finds panics, aborts, hangs and OOMs.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-30}
jobs=${FUZZ_JOBS:-2}
version=0.13.2
tools=$PWD/target/tools/cargo-fuzz
targets=(manifests bundle_manifest admission_review gator_suite test_cases policy_exception decision_log)
[ $# -gt 0 ] && targets=("$@")

if ! "$tools/bin/cargo-fuzz" --version 2>/dev/null | grep -q "$version"; then
  cargo install cargo-fuzz --version "$version" --locked --root "$tools"
fi
export PATH="$tools/bin:$PATH"
# The targets build from fuzz/Cargo.lock as committed (cargo fuzz has no --locked).
cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null \
  || { echo "fuzz: fuzz/Cargo.lock is out of date" >&2; exit 2; }
# The targets' scratch directories (never removed by a fuzzer) stay under target/.
export TMPDIR="$PWD/target/fuzz-tmp"
mkdir -p "$TMPDIR"
cargo fuzz build -s none --target-dir target/fuzz >/dev/null 2>target/fuzz-build.log \
  || { tail -40 target/fuzz-build.log >&2; exit 2; }

# The seed corpus of a target: fixture files of the kind it reads.
seeds() {
  case $1 in
    manifests) find examples engine/tests/fixtures/manifests engine/tests/bundles/basic/tests/objects \
      benches/fixtures engine/tests/gatekeeper/objects -name '*.yaml' -o -name '*.json' ;;
    bundle_manifest) find policy-bundles engine/tests/bundles engine/tests/fixtures/bad-bundles -name bundle.toml ;;
    admission_review) echo engine/tests/fixtures/manifests/admission-review.json ;;
    gator_suite) find engine/tests/gatekeeper/suites -name '*.yaml' ;;
    test_cases) find engine/tests/bundles/basic/tests policy-bundles/pci-dss/tests -maxdepth 1 -name '*.yaml' ;;
    policy_exception) ;;
    decision_log) ;;
  esac
}

run() {
  local t=$1 corpus=target/fuzz-corpus/$1 artifacts=target/fuzz-artifacts/$1/
  mkdir -p "$corpus" "$artifacts"
  seeds "$t" | while read -r f; do cp "$f" "$corpus/seed-$(echo "$f" | tr / _)"; done
  local extra=() status=0
  for d in fuzz/seeds/"$t" fuzz/regressions/"$t"; do [ -d "$d" ] && extra+=("$d"); done
  # The binary `cargo fuzz build` made, run directly: `cargo fuzz run` would also create
  # fuzz/artifacts/ in the source tree. (By hand: cargo fuzz run -s none TARGET INPUT.)
  target/fuzz/"$host"/release/"$t" "$corpus" "${extra[@]}" \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -artifact_prefix="$artifacts" \
    -print_final_stats=1 >target/fuzz-logs/"$t".log 2>&1 || status=$?
  local done execs speed rss
  done=$(grep -aE '^#[0-9]+[[:space:]]+DONE' target/fuzz-logs/"$t".log | tail -1 | sed -E 's/^#[0-9]+[[:space:]]+DONE[[:space:]]+//; s/ lim:.*//')
  execs=$(sed -nE 's/^stat::number_of_executed_units: +//p' target/fuzz-logs/"$t".log)
  speed=$(sed -nE 's/^stat::average_exec_per_sec: +//p' target/fuzz-logs/"$t".log)
  rss=$(sed -nE 's/^stat::peak_rss_mb: +//p' target/fuzz-logs/"$t".log)
  if [ "$status" = 0 ]; then
    printf 'fuzz: %-17s ok    %ss, %s runs (%s/s), %s, peak RSS %s MB\n' "$t" "$seconds" "$execs" "$speed" "$done" "$rss"
  else
    printf 'fuzz: %-17s FAIL  exit %s; input(s): %s\n' "$t" "$status" "$(ls "$artifacts" | tr '\n' ' ')"
    grep -E -A30 '^==[0-9]+== ERROR|panicked at|^thread .* panicked' target/fuzz-logs/"$t".log | head -60
    return 1
  fi
}

mkdir -p target/fuzz-logs
host=$(rustc -vV | sed -n 's/^host: //p')
export -f run seeds
export seconds host
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run {}' || { echo "fuzz: a target failed" >&2; exit 1; }
